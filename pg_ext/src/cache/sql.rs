//! SQL surface of the result cache: `pitstop.cached` (SETOF record, the caller gives the
//! column list as with dblink), `cached_json`, `cache_stats`, `cache_entries_raw`,
//! `cache_invalidate` and `cache_clear`.

use crate::cache::key;
use crate::cache::{attached, tracking};
use crate::cache::{Bypass, Counter, Store};
use crate::error::{required, OrReport, PitstopError};
use crate::pg::backend;
use pgrx::prelude::*;
use pgrx::PgRelation;

// `cached` and `cached_json` are C functions taking `fcinfo` directly (`pg/cached_fn.rs`):
// `cached` returns a set of caller-described records, `cached_json` hands back the stored
// jsonb as is.
extension_sql!(
    r#"
CREATE FUNCTION cached(query text, params text[] DEFAULT NULL, ttl interval DEFAULT NULL)
    RETURNS SETOF record VOLATILE PARALLEL UNSAFE LANGUAGE c
    AS 'MODULE_PATHNAME', 'pitstop_cached';
COMMENT ON FUNCTION cached(text, text[], interval) IS
    'Runs a read-only SELECT through pitstop''s result cache; give the column list: AS t(col type, ...)';
CREATE FUNCTION cached_json(query text, params text[] DEFAULT NULL, ttl interval DEFAULT NULL)
    RETURNS jsonb VOLATILE PARALLEL UNSAFE LANGUAGE c
    AS 'MODULE_PATHNAME', 'pitstop_cached_json';
COMMENT ON FUNCTION cached_json(text, text[], interval) IS
    'Runs a read-only SELECT through pitstop''s result cache and returns its rows as a jsonb array';
"#,
    name = "cached_functions"
);

fn require_store() -> (Store, &'static crate::pg::lwlock::LwLocks) {
    attached().ok_or(PitstopError::NotPreloaded).or_report()
}

/// Counters of the result cache since the server started.
#[pg_extern(volatile, parallel_safe)]
#[allow(clippy::type_complexity)]
fn cache_stats() -> TableIterator<
    'static,
    (
        name!(hits, i64),
        name!(misses, i64),
        name!(fills, i64),
        name!(bypasses, i64),
        name!(invalidations, i64),
        name!(stale, i64),
        name!(evictions, i64),
        name!(entries, i64),
        name!(bytes_used, i64),
        name!(bytes_configured, i64),
        name!(hit_ratio, Option<f64>),
        name!(bypass_reasons, pgrx::JsonB),
        name!(ttl_only_calls, i64),
    ),
> {
    let (store, locks) = require_store();
    let c = |counter| store.counter(counter) as i64;
    let reasons: serde_json::Map<String, serde_json::Value> =
        Bypass::ALL.iter().map(|r| (r.name().to_string(), store.bypasses(*r).into())).collect();
    let bypasses: i64 = Bypass::ALL.iter().map(|r| store.bypasses(*r) as i64).sum();
    let (hits, misses) = (c(Counter::Hits), c(Counter::Misses));
    let lookups = hits + misses + bypasses;
    TableIterator::once((
        hits,
        misses,
        c(Counter::Fills),
        bypasses,
        c(Counter::Invalidations),
        c(Counter::Stale),
        c(Counter::Evictions),
        store.live_entries(locks) as i64,
        store.used_bytes() as i64,
        store.capacity_bytes() as i64,
        (lookups > 0).then(|| (hits as f64 / lookups as f64 * 10_000.0).round() / 10_000.0),
        pgrx::JsonB(serde_json::Value::Object(reasons)),
        c(Counter::TtlOnly),
    ))
}

/// Entries of the result cache this role may see (all of them with pg_read_all_stats).
#[pg_extern(volatile, parallel_safe)]
#[allow(clippy::type_complexity)]
fn cache_entries_raw() -> TableIterator<
    'static,
    (
        name!(query, String),
        name!(roleid, pg_sys::Oid),
        name!(dbid, pg_sys::Oid),
        name!(relations, Vec<pg_sys::Oid>),
        name!(bytes, i64),
        name!(hits, i64),
        name!(created_at, pgrx::datum::TimestampWithTimeZone),
        name!(expires_at, Option<pgrx::datum::TimestampWithTimeZone>),
        name!(fresh, bool),
    ),
> {
    let (store, locks) = require_store();
    let me = backend::current_user().to_u32();
    let everyone = backend::can_read_all_stats();
    let timestamp = |micros: i64| pgrx::datum::TimestampWithTimeZone::try_from(micros).ok();
    let rows: Vec<_> = store
        .entries(locks, backend::now())
        .map_err(|_| PitstopError::OutOfMemory("the list of cache entries"))
        .or_report()
        .into_iter()
        .filter(|e| everyone || e.roleid == me)
        .filter_map(|e| {
            Some((
                key::query_of(&e.key),
                pg_sys::Oid::from(e.roleid),
                pg_sys::Oid::from(e.dbid),
                e.deps.iter().map(|r| pg_sys::Oid::from(*r)).collect(),
                e.bytes as i64,
                e.hits as i64,
                timestamp(e.created)?,
                (e.expires > 0).then(|| timestamp(e.expires)).flatten(),
                e.fresh,
            ))
        })
        .collect();
    TableIterator::new(rows)
}

/// Makes every cached result that read `rel` stale (in every database's view of it).
#[pg_extern(volatile, parallel_unsafe)]
fn cache_invalidate(rel: Option<PgRelation>) -> bool {
    let rel = required(rel, "rel").or_report();
    let (store, _) = require_store();
    store.bump(Store::version_slot(backend::current_database().to_u32(), rel.oid().to_u32()));
    store.count(Counter::Invalidations);
    true
}

/// Removes every cached result; returns how many there were.
#[pg_extern(volatile, parallel_unsafe)]
fn cache_clear() -> i64 {
    let (store, locks) = require_store();
    store.bump_epoch();
    tracking::definitions_changed();
    store.clear(locks) as i64
}
