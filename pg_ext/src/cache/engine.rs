//! One call of `pitstop.cached` / `cached_json`: decide whether the cache may be used (the
//! correctness rules), look the key up, or run the query and store its result. The query's
//! own errors reach the caller; a failure inside the cache path only costs the caching.

use crate::cache::key::{self, Flavor, KeyParts};
use crate::cache::store::{Dep, Lookup, NewEntry, StoreError};
use crate::cache::{attached, tracking};
use crate::cache::{Bypass, Counter, Store};
use crate::error::PitstopError;
use crate::gucs;
use crate::pg::cacheability::{self, Analysis};
use crate::pg::result_set::{Executed, NotKept, Outcome, Target};
use crate::pg::{backend, guc, result_set, subxact, xact};
use pgrx::pg_sys;
use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;
use xxhash_rust::xxh3::Xxh3DefaultBuilder;

/// One analysed statement, remembered per backend (parsing on every hit would cost more
/// than the hit itself); forgotten when any definition may have changed.
struct Remembered {
    generation: u64,
    analysis: Rc<Analysis>,
}

type OwnedMemoKey = (u32, Vec<u8>, String);

/// Borrowed view of a memo key, so lookups need no allocation.
trait MemoKey {
    fn parts(&self) -> (u32, &[u8], &str);
}

impl MemoKey for OwnedMemoKey {
    fn parts(&self) -> (u32, &[u8], &str) {
        (self.0, &self.1, &self.2)
    }
}

impl MemoKey for (u32, &[u8], &str) {
    fn parts(&self) -> (u32, &[u8], &str) {
        *self
    }
}

impl<'a> std::borrow::Borrow<dyn MemoKey + 'a> for OwnedMemoKey {
    fn borrow(&self) -> &(dyn MemoKey + 'a) {
        self
    }
}

impl PartialEq for dyn MemoKey + '_ {
    fn eq(&self, other: &Self) -> bool {
        self.parts() == other.parts()
    }
}

impl Eq for dyn MemoKey + '_ {}

impl std::hash::Hash for dyn MemoKey + '_ {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.parts().hash(state);
    }
}

thread_local! {
    // XXH3 rather than SipHash: the key is the statement text, hashed on every hit.
    static ANALYSES: RefCell<HashMap<OwnedMemoKey, Remembered, Xxh3DefaultBuilder>> =
        const { RefCell::new(HashMap::with_hasher(Xxh3DefaultBuilder)) };
}

const MAX_REMEMBERED: usize = 1000;
/// The texts and search_paths remembered, in bytes: the memo lives outside PostgreSQL's
/// memory contexts for the backend's life, so it is bounded by size as well as by count.
const MAX_REMEMBERED_BYTES: usize = 8 << 20;
/// A text this long is analysed on every call instead: one would take an eighth of the memo.
const MAX_REMEMBERED_TEXT: usize = MAX_REMEMBERED_BYTES / 8;

thread_local! {
    static REMEMBERED_BYTES: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

fn analysis_for(sql: &str, roleid: u32, search_path: &[u8]) -> Result<Rc<Analysis>, PitstopError> {
    let Some(generation) = tracking::definitions_generation() else {
        return Ok(Rc::new(cacheability::analyze(sql)?));
    };
    let known = ANALYSES.with(|a| {
        let a = a.borrow();
        // Looked up without building an owned key (this runs on every hit).
        a.get(&(roleid, search_path, sql) as &dyn MemoKey)
            .filter(|r| r.generation == generation)
            .map(|r| r.analysis.clone())
    });
    if let Some(analysis) = known {
        return Ok(analysis);
    }
    let bytes = sql.len() + search_path.len();
    if bytes > MAX_REMEMBERED_TEXT {
        return Ok(Rc::new(cacheability::analyze(sql)?));
    }
    let memo_key = (
        roleid,
        copy_of(search_path, "a remembered search_path")?,
        String::from_utf8(copy_of(sql.as_bytes(), "a remembered query")?).unwrap_or_default(),
    );
    let analysis = Rc::new(cacheability::analyze(sql)?);
    ANALYSES.with(|a| {
        let mut a = a.borrow_mut();
        if a.len() >= MAX_REMEMBERED || REMEMBERED_BYTES.get() + bytes > MAX_REMEMBERED_BYTES {
            a.clear();
            REMEMBERED_BYTES.set(0);
        }
        if a.insert(memo_key, Remembered { generation, analysis: analysis.clone() }).is_none() {
            REMEMBERED_BYTES.set(REMEMBERED_BYTES.get() + bytes);
        }
    });
    Ok(analysis)
}

/// The bytes the memo holds now.
#[cfg(any(test, feature = "pg_test"))]
pub fn remembered_bytes() -> usize {
    REMEMBERED_BYTES.get()
}

/// A copy of user-sized bytes whose allocation may fail (an ERROR, never an abort).
fn copy_of(bytes: &[u8], what: &'static str) -> Result<Vec<u8>, PitstopError> {
    let mut copy = Vec::new();
    copy.try_reserve_exact(bytes.len()).map_err(|_| PitstopError::OutOfMemory(what))?;
    copy.extend_from_slice(bytes);
    Ok(copy)
}

/// Conditions of the session or server under which no entry can be trusted.
fn session_bypass() -> Option<Bypass> {
    if !gucs::cache_enabled() {
        return Some(Bypass::Disabled);
    }
    if xact::repeatable_read_or_stricter() {
        return Some(Bypass::RepeatableRead);
    }
    // WAL replay writes without the executor: versions would never move.
    if xact::recovery_in_progress() {
        return Some(Bypass::Standby);
    }
    None
}

/// The ttl to serve by, when the only reasons to bypass are replica situations (standby,
/// subscribed tables), the caller gave an explicit ttl and pitstop.cache_replica_ttl_only is on.
fn replica_ttl_only(
    bypass: Option<Bypass>,
    analysis: Option<Bypass>,
    ttl_micros: Option<i64>,
) -> Option<i64> {
    let replica =
        |reason: Option<Bypass>| matches!(reason, Some(Bypass::Standby | Bypass::Subscriber));
    // A standby hides the analysis' own reasons behind its own: those must be replica ones too.
    let only_replica = replica(bypass) && (analysis.is_none() || replica(analysis));
    (only_replica && gucs::cache_replica_ttl_only())
        .then_some(ttl_micros)
        .flatten()
        .filter(|ttl| *ttl > 0)
}

/// `ttl` (microseconds; None = the default setting) as an absolute expiry (0 = none).
fn expiry(now: i64, ttl_micros: Option<i64>) -> i64 {
    let ttl = ttl_micros.unwrap_or(gucs::cache_default_ttl_seconds() * 1_000_000);
    if ttl <= 0 {
        0
    } else {
        now.saturating_add(ttl)
    }
}

/// The statement a flavor runs: the caller's, or it wrapped into one jsonb array.
pub fn statement(flavor: Flavor, query: &str) -> Result<std::borrow::Cow<'_, str>, PitstopError> {
    match flavor {
        Flavor::Rows => Ok(query.into()),
        Flavor::Json => {
            let (head, tail) = (
                "SELECT coalesce(pg_catalog.jsonb_agg(pitstop_row), '[]'::pg_catalog.jsonb) FROM (",
                "\n) AS pitstop_row",
            );
            let body = query.trim_end().trim_end_matches(';');
            let mut wrapped = String::new();
            wrapped
                .try_reserve_exact(head.len() + body.len() + tail.len())
                .map_err(|_| PitstopError::OutOfMemory("the wrapped query"))?;
            wrapped.extend([head, body, tail]);
            Ok(wrapped.into())
        }
    }
}

/// The caller's answer, or the error its column definition list earns.
fn answer(outcome: Result<Outcome, String>) -> Result<Outcome, PitstopError> {
    outcome.map_err(PitstopError::ColumnMismatch)
}

/// Runs (or serves) one call; its rows go to `target`.
pub fn call(
    target: Target,
    query: &str,
    params: &[Option<&str>],
    ttl_micros: Option<i64>,
) -> Result<Outcome, PitstopError> {
    let flavor = match target {
        Target::Rows(_) => Flavor::Rows,
        Target::FirstValue => Flavor::Json,
    };
    if flavor == Flavor::Json {
        // Checked before wrapping, so a non-SELECT gets the same error as with `cached`.
        cacheability::require_select(query)?;
    }
    let sql = statement(flavor, query)?;
    let roleid = backend::current_user().to_u32();
    let output = guc::output_settings();
    let settings = output.key_parts();
    let analysis = analysis_for(&sql, roleid, output.search_path)?;
    if analysis.param_types.len() != params.len() {
        return Err(PitstopError::ParameterCount {
            expected: analysis.param_types.len(),
            given: params.len(),
        });
    }
    let execute = |keep_up_to: usize| {
        result_set::execute(&sql, &analysis.param_types, params, target, keep_up_to)
    };
    let run = || answer(execute(0).outcome);
    let Some((store, locks)) = attached() else { return run() };
    let own_ddl = tracking::wrote_definitions().then_some(Bypass::OwnWrite);
    let analysis_bypass = analysis.bypass.or_else(|| analysis.params_bypass(params));
    let bypass = session_bypass().or(analysis_bypass).or(own_ddl);
    let ttl_only = replica_ttl_only(bypass, analysis_bypass, ttl_micros);
    if let Some(reason) = bypass.filter(|_| ttl_only.is_none()) {
        store.count_bypass(reason);
        return run();
    }
    if ttl_only.is_some() {
        store.count(Counter::TtlOnly);
    }

    let dbid = backend::current_database().to_u32();
    let key = key::encode(&KeyParts {
        flavor,
        dbid,
        roleid,
        query,
        params,
        settings: &settings,
        ttl_only,
    })
    .map_err(|_| PitstopError::OutOfMemory("a cache key"))?;
    let hash = key::hash(&key);
    let now = backend::now();
    let found = subxact::shielded(|| {
        let mut out = Vec::new();
        store.lookup(locks, hash, &key, now, &mut out).map(|(found, reads)| (found, reads, out))
    });
    match found {
        // No memory for the copy of the entry: the query still runs (rule 6).
        Some(Err(_)) => {
            store.count_bypass(Bypass::InternalError);
            return run();
        }
        Some(Ok((Lookup::Hit, _, out))) if !result_set::servable(&out) => {
            // Never stored that way; refused here all the same (defence in depth).
            store.count_bypass(if result_set::is_well_formed(&out) {
                Bypass::AnonymousRecord
            } else {
                Bypass::InternalError
            });
            return run();
        }
        Some(Ok((Lookup::Hit, reads, out))) => {
            // Also makes the entry's relations reads of a fill under way (a call inside a
            // function that fill's query runs); see `tracking::serving`.
            if !tracking::serving(&reads) {
                store.count(Counter::Hits);
                return answer(result_set::serve(target, &out));
            }
            store.count_bypass(Bypass::OwnWrite);
            return run();
        }
        Some(Ok((Lookup::Stale, ..))) => {
            store.count(Counter::Stale);
            store.count(Counter::Misses);
        }
        Some(Ok((Lookup::Miss, ..))) => store.count(Counter::Misses),
        None => {
            store.count_bypass(Bypass::InternalError);
            return run();
        }
    }

    // Rule 5: versions are read before the fill's snapshot (taken inside `execute`).
    let versions = store.versions_snapshot();
    let epoch = store.epoch();
    // Encoding stops where the entry could no longer be stored; the rows are delivered anyway.
    let keep_up_to =
        gucs::cache_max_entry_bytes().min(store.max_payload().saturating_sub(key.len())).max(1);
    let (Executed { outcome, kept }, reads) = tracking::collecting_reads(|| execute(keep_up_to));
    if outcome.is_err() {
        return answer(outcome);
    }
    let refused = match (kept, reads) {
        (Err(NotKept::TooLarge), _) => Some(Bypass::TooLarge),
        (Err(NotKept::AnonymousRecord), _) => Some(Bypass::AnonymousRecord),
        (Err(NotKept::NotWanted | NotKept::OutOfMemory), _) | (_, None) => {
            Some(Bypass::InternalError)
        }
        (Ok(result), Some(reads)) => {
            let input = StoreInput {
                key: &key,
                hash,
                result: &result,
                dbid,
                roleid,
                now,
                ttl_micros,
                ttl_only: ttl_only.is_some(),
                epoch,
                versions: &versions,
                reads,
            };
            // In a subtransaction: the checks run SQL and take locks, which an error must not
            // leave behind (nor the search_path they pin).
            subxact::try_rolled_back(|| store_result(&store, locks, &input))
                .map_or(Some(Bypass::InternalError), Result::err)
        }
    };
    if let Some(reason) = refused {
        store.count_bypass(reason);
    }
    answer(outcome)
}

struct StoreInput<'a> {
    key: &'a [u8],
    hash: u64,
    result: &'a [u8],
    dbid: u32,
    roleid: u32,
    now: i64,
    ttl_micros: Option<i64>,
    /// Filled to be served by TTL only (replica situations were accepted by the caller).
    ttl_only: bool,
    epoch: u64,
    versions: &'a [u64],
    reads: std::collections::BTreeSet<u32>,
}

fn store_result(
    store: &Store,
    locks: &crate::pg::lwlock::LwLocks,
    input: &StoreInput<'_>,
) -> Result<(), Bypass> {
    if input.result.len() > gucs::cache_max_entry_bytes() {
        return Err(Bypass::TooLarge);
    }
    // A partition's writes go through its parents too: depend on them as well.
    let mut relations: std::collections::BTreeSet<u32> = input.reads.clone();
    for relid in &input.reads {
        relations
            .extend(result_set::ancestors(pg_sys::Oid::from(*relid)).iter().map(|o| o.to_u32()));
    }
    let relations: Vec<u32> = relations.into_iter().collect();
    // Every bypass rule applies to every relation the fill read, not only to those the query
    // names: partitions, inheritance children, tables read inside functions. (Both checks
    // look at the ancestors themselves.)
    let read: Vec<pg_sys::Oid> = input.reads.iter().map(|r| pg_sys::Oid::from(*r)).collect();
    if let Some(reason) = read.iter().find_map(|relid| cacheability::relation_bypass(*relid, None))
    {
        return Err(reason);
    }
    if !input.ttl_only && cacheability::replicated_into(&read) {
        return Err(Bypass::Subscriber);
    }
    // The result includes this transaction's uncommitted writes: nobody else may see it.
    if tracking::wrote_any(&relations) {
        return Err(Bypass::OwnWrite);
    }
    let deps: Vec<Dep> = relations
        .iter()
        .map(|relid| {
            let slot = Store::version_slot(input.dbid, *relid);
            Dep { relid: *relid, slot, version: input.versions[slot as usize] }
        })
        .collect();
    let entry = NewEntry {
        key_hash: input.hash,
        key: input.key,
        result: input.result,
        dbid: input.dbid,
        roleid: input.roleid,
        created: input.now,
        expires: expiry(input.now, input.ttl_micros),
        epoch: input.epoch,
        deps: &deps,
    };
    store.insert(locks, &entry, input.now).map_err(|e| match e {
        StoreError::TooLarge => Bypass::TooLarge,
        StoreError::TooManyRelations => Bypass::TooManyRelations,
        StoreError::Full => Bypass::CacheFull,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_flavor_wraps_the_query_once() {
        assert_eq!(statement(Flavor::Rows, "select 1").unwrap(), "select 1");
        let wrapped = statement(Flavor::Json, "select 1;  ").unwrap();
        assert!(wrapped.contains("FROM (select 1\n) AS pitstop_row"), "{wrapped}");
    }

    #[test]
    fn ttl_becomes_an_expiry() {
        assert_eq!(expiry(100, Some(50)), 150);
        assert_eq!(expiry(100, Some(0)), 0);
    }
}
