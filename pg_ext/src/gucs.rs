//! Every `pitstop.*` setting: one private static per GUC, registered in `init()`,
//! read through a typed getter.

use pgrx::{GucContext, GucFlags, GucRegistry, GucSetting};

/// Statements running at least this long (ms) are captured; -1 disables capture.
/// Default 1000 like auto_explain's common setting; SUSET because a low value costs every user.
static SLOW_QUERY_MS: GucSetting<i32> = GucSetting::<i32>::new(1000);

/// Capture plans with actual rows, timing and buffers. Off by default: it instruments every
/// statement (the same cost as auto_explain.log_analyze), not just the slow ones.
static CAPTURE_ANALYZE: GucSetting<bool> = GucSetting::<bool>::new(false);

/// Also capture statements run inside functions and procedures (nesting level > 0).
static CAPTURE_NESTED: GucSetting<bool> = GucSetting::<bool>::new(false);

/// Entries in the shared-memory ring of captured statements; fixed at server start.
static SLOW_QUERY_BUFFER: GucSetting<i32> = GucSetting::<i32>::new(100);

/// Shared memory for the result cache, in MB; fixed at server start.
static CACHE_SIZE: GucSetting<i32> = GucSetting::<i32>::new(64);
/// Largest result (encoded, kB) the cache stores; bigger ones are returned uncached.
static CACHE_MAX_ENTRY: GucSetting<i32> = GucSetting::<i32>::new(1024);
/// Lifetime of a cached result when `cached()` is called without a ttl; 0 = until invalidated.
static CACHE_DEFAULT_TTL: GucSetting<i32> = GucSetting::<i32>::new(300);
/// Lets a session (or the DBA for everyone) turn the cache off: every call then runs its query.
static CACHE_ENABLED: GucSetting<bool> = GucSetting::<bool>::new(true);
/// Off: on a standby and for tables a subscription writes (changes pitstop cannot see) the
/// cache is bypassed. On: calls that pass an explicit ttl are served from the cache there,
/// at most ttl old (bounded staleness the caller asked for).
static CACHE_REPLICA_TTL_ONLY: GucSetting<bool> = GucSetting::<bool>::new(false);

/// Longest the advisor plans one statement (or estimates one candidate's coverage), in ms;
/// 0 = no limit. Planning runs the statement's IMMUTABLE/STABLE functions, which may be slow.
static ADVISOR_PLAN_TIMEOUT: GucSetting<i32> = GucSetting::<i32>::new(5000);

/// The advisor says how far it got as NOTICE messages (sent to the client at once, while the
/// call runs): the command line turns it on for its own sessions. Off by default: a plain
/// SQL call stays silent.
static ADVISOR_PROGRESS: GucSetting<bool> = GucSetting::<bool>::new(false);

/// Statements whose latency histograms are kept in shared memory; fixed at server start.
static LATENCY_MAX_STATEMENTS: GucSetting<i32> = GucSetting::<i32>::new(5000);

pub const LATENCY_MAX_STATEMENTS_MIN: i32 = 10;
pub const SLOW_QUERY_BUFFER_MIN: i32 = 10;
pub const SLOW_QUERY_BUFFER_MAX: i32 = 10_000;

/// Registers the settings. Server-start settings exist only when loaded at preload: Postgres
/// refuses to create them in a running server (the library may also be loaded on first use).
pub fn init(at_preload: bool) {
    GucRegistry::define_int_guc(
        c"pitstop.slow_query_ms",
        c"Minimum execution time (ms) above which a statement is captured; -1 disables capture.",
        c"Captured statements appear in pitstop.slow_queries with their plan.",
        &SLOW_QUERY_MS,
        -1,
        i32::MAX,
        GucContext::Suset,
        GucFlags::UNIT_MS,
    );
    GucRegistry::define_bool_guc(
        c"pitstop.capture_analyze",
        c"Capture plans with actual rows, timing and buffers.",
        c"Instruments every statement while on, as auto_explain.log_analyze does.",
        &CAPTURE_ANALYZE,
        GucContext::Suset,
        GucFlags::default(),
    );
    GucRegistry::define_bool_guc(
        c"pitstop.capture_nested",
        c"Also capture statements nested inside functions and procedures.",
        c"",
        &CAPTURE_NESTED,
        GucContext::Suset,
        GucFlags::default(),
    );
    GucRegistry::define_int_guc(
        c"pitstop.cache_max_entry",
        c"Largest result the result cache stores (encoded size).",
        c"Larger results are returned uncached and counted as result_too_large.",
        &CACHE_MAX_ENTRY,
        1,
        1024 * 1024,
        GucContext::Suset,
        GucFlags::UNIT_KB,
    );
    GucRegistry::define_int_guc(
        c"pitstop.cache_default_ttl",
        c"Lifetime of a cached result when pitstop.cached() gets no ttl; 0 keeps it until invalidated.",
        c"",
        &CACHE_DEFAULT_TTL,
        0,
        i32::MAX,
        GucContext::Userset,
        GucFlags::UNIT_S,
    );
    GucRegistry::define_bool_guc(
        c"pitstop.cache_enabled",
        c"Serve and store results in pitstop's result cache.",
        c"When off, pitstop.cached() runs its query every time.",
        &CACHE_ENABLED,
        GucContext::Userset,
        GucFlags::default(),
    );
    GucRegistry::define_bool_guc(
        c"pitstop.cache_replica_ttl_only",
        c"On a standby or for tables written by logical replication, serve results up to the call's ttl old.",
        c"Off (the default) bypasses the cache there: pitstop cannot see writes made by WAL replay or replication apply. Only calls with an explicit ttl are served.",
        &CACHE_REPLICA_TTL_ONLY,
        GucContext::Userset,
        GucFlags::default(),
    );
    GucRegistry::define_int_guc(
        c"pitstop.advisor_plan_timeout",
        c"Longest the index advisor plans one statement; 0 means no limit.",
        c"A statement that takes longer is reported by unhelped_queries as could not be planned.",
        &ADVISOR_PLAN_TIMEOUT,
        0,
        i32::MAX,
        GucContext::Userset,
        GucFlags::UNIT_MS,
    );
    GucRegistry::define_bool_guc(
        c"pitstop.advisor_progress",
        c"The index advisor reports its progress as NOTICE messages while it runs.",
        c"At each stage's start and end, and at most about once a second in between.",
        &ADVISOR_PROGRESS,
        GucContext::Userset,
        GucFlags::default(),
    );
    if at_preload {
        define_slow_query_buffer();
        GucRegistry::define_int_guc(
            c"pitstop.latency_max_statements",
            c"Number of statements whose latency histograms are kept in shared memory.",
            c"Each takes about 4 kB of shared memory; a new statement evicts the least recently used one of its 8-slot neighbourhood. Requires a server restart.",
            &LATENCY_MAX_STATEMENTS,
            LATENCY_MAX_STATEMENTS_MIN,
            100_000,
            GucContext::Postmaster,
            GucFlags::default(),
        );
        GucRegistry::define_int_guc(
            c"pitstop.cache_size",
            c"Shared memory for pitstop's result cache.",
            c"Requires a server restart.",
            &CACHE_SIZE,
            1,
            1024 * 1024,
            GucContext::Postmaster,
            GucFlags::UNIT_MB,
        );
    }
    crate::pg::guc::reserve_prefix(c"pitstop");
}

fn define_slow_query_buffer() {
    GucRegistry::define_int_guc(
        c"pitstop.slow_query_buffer",
        c"Number of captured statements kept in shared memory (oldest are overwritten).",
        c"Each entry takes about 37 kB of shared memory. Requires a server restart.",
        &SLOW_QUERY_BUFFER,
        SLOW_QUERY_BUFFER_MIN,
        SLOW_QUERY_BUFFER_MAX,
        GucContext::Postmaster,
        GucFlags::default(),
    );
}

pub fn slow_query_ms() -> i32 {
    SLOW_QUERY_MS.get()
}

pub fn capture_analyze() -> bool {
    CAPTURE_ANALYZE.get()
}

pub fn capture_nested() -> bool {
    CAPTURE_NESTED.get()
}

pub fn slow_query_buffer() -> usize {
    SLOW_QUERY_BUFFER.get().max(SLOW_QUERY_BUFFER_MIN) as usize
}

pub fn latency_max_statements() -> usize {
    LATENCY_MAX_STATEMENTS.get().max(LATENCY_MAX_STATEMENTS_MIN) as usize
}

pub fn cache_size_bytes() -> usize {
    CACHE_SIZE.get().max(1) as usize * 1024 * 1024
}

pub fn cache_max_entry_bytes() -> usize {
    CACHE_MAX_ENTRY.get().max(1) as usize * 1024
}

pub fn cache_default_ttl_seconds() -> i64 {
    i64::from(CACHE_DEFAULT_TTL.get())
}

pub fn cache_replica_ttl_only() -> bool {
    CACHE_REPLICA_TTL_ONLY.get()
}

pub fn cache_enabled() -> bool {
    CACHE_ENABLED.get()
}

pub fn advisor_plan_timeout_ms() -> i32 {
    ADVISOR_PLAN_TIMEOUT.get()
}

pub fn advisor_progress() -> bool {
    ADVISOR_PROGRESS.get()
}
