-- pitstop 0.2.0 -> 0.3.0 (ALTER EXTENSION pitstop UPDATE). The result must equal a fresh
-- CREATE EXTENSION pitstop of 0.3.0 (tests/tests/upgrade.rs compares the two): new or changed
-- objects are written here exactly as in sql/schema/*.sql and the generated functions.

-- Latency percentiles per statement (issue 17): the functions over the shared-memory
-- histograms, then sql/schema/latency.sql.
CREATE  FUNCTION "query_latency_raw"() RETURNS TABLE (
	"dbid" oid,  /* pgrx_pg_sys :: submodules :: oids :: Oid */
	"userid" oid,  /* pgrx_pg_sys :: submodules :: oids :: Oid */
	"queryid" bigint,  /* i64 */
	"calls" bigint,  /* i64 */
	"p50" double precision,  /* f64 */
	"p90" double precision,  /* f64 */
	"p95" double precision,  /* f64 */
	"p99" double precision,  /* f64 */
	"p999" double precision,  /* f64 */
	"max" double precision,  /* f64 */
	"since" timestamp with time zone  /* pgrx :: datum :: time_stamp_with_timezone :: TimestampWithTimeZone */
)
STRICT VOLATILE PARALLEL RESTRICTED
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'query_latency_raw_wrapper';

CREATE  FUNCTION "query_latency_histogram"() RETURNS TABLE (
	"dbid" oid,  /* pgrx_pg_sys :: submodules :: oids :: Oid */
	"userid" oid,  /* pgrx_pg_sys :: submodules :: oids :: Oid */
	"queryid" bigint,  /* i64 */
	"calls" bigint,  /* i64 */
	"since" timestamp with time zone,  /* pgrx :: datum :: time_stamp_with_timezone :: TimestampWithTimeZone */
	"max_ms" double precision,  /* f64 */
	"below" bigint,  /* i64 */
	"above" bigint,  /* i64 */
	"buckets" INT[],  /* alloc :: vec :: Vec < i32 > */
	"counts" bigint[],  /* alloc :: vec :: Vec < i64 > */
	"bucket_ms" double precision[]  /* alloc :: vec :: Vec < f64 > */
)
STRICT VOLATILE PARALLEL RESTRICTED
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'query_latency_histogram_wrapper';

CREATE  FUNCTION "query_latency_reset"() RETURNS bigint /* i64 */
STRICT VOLATILE PARALLEL UNSAFE
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'query_latency_reset_wrapper';

CREATE  FUNCTION "latency_stats"() RETURNS TABLE (
	"statements" bigint,  /* i64 */
	"capacity" bigint,  /* i64 */
	"recorded" bigint,  /* i64 */
	"evictions" bigint,  /* i64 */
	"missed_samples" bigint,  /* i64 */
	"no_queryid" bigint,  /* i64 */
	"since" timestamp with time zone,  /* pgrx :: datum :: time_stamp_with_timezone :: TimestampWithTimeZone */
	"min_ms" double precision,  /* f64 */
	"max_ms" double precision,  /* f64 */
	"relative_error" double precision  /* f64 */
)
STRICT VOLATILE PARALLEL RESTRICTED
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'latency_stats_wrapper';

CREATE VIEW query_latency AS
SELECT l.dbid,
       d.datname,
       l.userid,
       r.rolname,
       l.queryid,
       l.calls,
       l.p50,
       l.p90,
       l.p95,
       l.p99,
       l.p999,
       l.max,
       l.since
FROM @extschema@.query_latency_raw() AS l
LEFT JOIN pg_catalog.pg_roles r ON r.oid = l.userid
LEFT JOIN pg_catalog.pg_database d ON d.oid = l.dbid;

COMMENT ON VIEW query_latency IS
  'Execution time percentiles (ms, within 2 %) of each top-level statement since its first call (needs shared_preload_libraries)';

-- Resetting discards other users' histograms: superuser only unless granted.
REVOKE ALL ON FUNCTION query_latency_reset() FROM PUBLIC;
GRANT SELECT ON query_latency TO pg_monitor;

-- query_snapshots keeps each statement's latency histogram.
ALTER TABLE query_snapshots ADD COLUMN latency jsonb;
COMMENT ON COLUMN query_snapshots.latency IS
  'The statement''s latency histogram at the snapshot (pitstop.query_latency_histogram() as JSON), NULL when pitstop kept none';
ALTER TABLE query_snapshots ADD COLUMN stats_reset timestamptz;
COMMENT ON COLUMN query_snapshots.stats_reset IS
  'When pg_stat_statements was last reset as a whole (pg_stat_statements_info), so that a difference never spans a reset';

-- No noise by default (issue 15, part 3): pitstop's own statements and tables are left out
-- unless include_self; index_health can point a foreign key at the advisor's suggestion;
-- table_bloat lists only relations past min_bloat_pct and min_bloat_bytes; vacuum_health
-- says which threshold a table crossed.
DROP VIEW index_health;
DROP FUNCTION index_health(double precision, bigint);
CREATE  FUNCTION "index_health"(
	"min_bloat_pct" double precision DEFAULT 40.0, /* Option < f64 > */
	"min_bloat_bytes" bigint DEFAULT 1048576, /* Option < i64 > */
	"include_self" bool DEFAULT false, /* Option < bool > */
	"with_advice" bool DEFAULT false /* Option < bool > */
) RETURNS TABLE (
	"problem" TEXT,  /* String */
	"table_name" TEXT,  /* String */
	"index_name" TEXT,  /* Option < String > */
	"index_bytes" bigint,  /* Option < i64 > */
	"detail" TEXT,  /* String */
	"fix" TEXT  /* String */
)
VOLATILE PARALLEL UNSAFE
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'index_health_wrapper';
CREATE VIEW index_health AS SELECT * FROM @extschema@.index_health();
GRANT SELECT ON index_health TO pg_monitor;

DROP FUNCTION top_queries(text, integer);
CREATE  FUNCTION "top_queries"(
	"sort" TEXT DEFAULT 'total_time', /* Option < & str > */
	"lim" INT DEFAULT 20, /* Option < i32 > */
	"include_self" bool DEFAULT false /* Option < bool > */
) RETURNS TABLE (
	"queryid" bigint,  /* Option < i64 > */
	"username" TEXT,  /* Option < String > */
	"calls" bigint,  /* Option < i64 > */
	"total_ms" double precision,  /* Option < f64 > */
	"mean_ms" double precision,  /* Option < f64 > */
	"stddev_ms" double precision,  /* Option < f64 > */
	"max_ms" double precision,  /* Option < f64 > */
	"rows" bigint,  /* Option < i64 > */
	"shared_hit_pct" double precision,  /* Option < f64 > */
	"temp_blks" bigint,  /* Option < i64 > */
	"pct_total_time" double precision,  /* Option < f64 > */
	"query" TEXT  /* Option < String > */
)
STABLE PARALLEL SAFE
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'top_queries_wrapper';

DROP FUNCTION suggest_indexes(text[], double precision, integer, double precision, integer, double precision);
CREATE  FUNCTION "suggest_indexes"(
	"queries" TEXT[] DEFAULT NULL, /* :: std :: option :: Option < Vec < Option < String > > > */
	"budget_mb" double precision DEFAULT NULL, /* Option < f64 > */
	"max_indexes" INT DEFAULT NULL, /* Option < i32 > */
	"min_improvement" double precision DEFAULT 0.05, /* Option < f64 > */
	"top_n" INT DEFAULT 100, /* Option < i32 > */
	"min_workload_gain" double precision DEFAULT 0.01, /* Option < f64 > */
	"include_self" bool DEFAULT false /* Option < bool > */
) RETURNS TABLE (
	"rank" INT,  /* i32 */
	"ddl" TEXT,  /* String */
	"table_name" TEXT,  /* String */
	"estimated_bytes" bigint,  /* i64 */
	"workload_cost_before" double precision,  /* f64 */
	"workload_cost_after" double precision,  /* f64 */
	"improvement_pct" double precision,  /* f64 */
	"write_cost" double precision,  /* f64 */
	"queries_helped" INT,  /* i32 */
	"helped" jsonb,  /* pgrx :: JsonB */
	"reason" TEXT  /* String */
)
VOLATILE PARALLEL UNSAFE
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'suggest_indexes_wrapper';

DROP FUNCTION unhelped_queries(text[], double precision, integer, double precision, integer, double precision);
CREATE  FUNCTION "unhelped_queries"(
	"queries" TEXT[] DEFAULT NULL, /* :: std :: option :: Option < Vec < Option < String > > > */
	"budget_mb" double precision DEFAULT NULL, /* Option < f64 > */
	"max_indexes" INT DEFAULT NULL, /* Option < i32 > */
	"min_improvement" double precision DEFAULT 0.05, /* Option < f64 > */
	"top_n" INT DEFAULT 100, /* Option < i32 > */
	"min_workload_gain" double precision DEFAULT 0.01, /* Option < f64 > */
	"include_self" bool DEFAULT false /* Option < bool > */
) RETURNS TABLE (
	"queryid" bigint,  /* Option < i64 > */
	"query" TEXT,  /* String */
	"calls" double precision,  /* f64 */
	"cost" double precision,  /* Option < f64 > */
	"reason" TEXT,  /* String */
	"role" TEXT  /* String */
)
VOLATILE PARALLEL UNSAFE
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'unhelped_queries_wrapper';

DROP VIEW vacuum_health;
DROP FUNCTION vacuum_health_raw();
CREATE  FUNCTION "vacuum_health_raw"() RETURNS TABLE (
	"schema" TEXT,  /* String */
	"table_name" TEXT,  /* String */
	"n_live_tup" bigint,  /* i64 */
	"n_dead_tup" bigint,  /* i64 */
	"dead_ratio" double precision,  /* f64 */
	"last_vacuum" timestamp with time zone,  /* Option < TimestampWithTimeZone > */
	"last_autovacuum" timestamp with time zone,  /* Option < TimestampWithTimeZone > */
	"last_analyze" timestamp with time zone,  /* Option < TimestampWithTimeZone > */
	"last_autoanalyze" timestamp with time zone,  /* Option < TimestampWithTimeZone > */
	"n_mod_since_analyze" bigint,  /* i64 */
	"n_ins_since_vacuum" bigint,  /* i64 */
	"xid_age" bigint,  /* i64 */
	"wraparound_pct" double precision,  /* f64 */
	"mxid_age" bigint,  /* i64 */
	"freeze_max_age" bigint,  /* i64 */
	"autovacuum_enabled" bool,  /* bool */
	"vacuum_threshold" bigint,  /* i64 */
	"analyze_threshold" bigint,  /* i64 */
	"insert_threshold" bigint,  /* Option < i64 > */
	"status" TEXT,  /* String */
	"action" TEXT,  /* Option < String > */
	"reason" TEXT  /* Option < String > */
)
STRICT STABLE
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'vacuum_health_raw_wrapper';

CREATE VIEW vacuum_health AS
SELECT v.schema::name       AS schema,
       v.table_name::name   AS table_name,
       v.n_live_tup, v.n_dead_tup, v.dead_ratio,
       v.last_vacuum, v.last_autovacuum, v.last_analyze, v.last_autoanalyze,
       v.n_mod_since_analyze, v.n_ins_since_vacuum,
       v.xid_age, v.wraparound_pct, v.mxid_age, v.freeze_max_age,
       v.autovacuum_enabled, v.vacuum_threshold, v.analyze_threshold, v.insert_threshold,
       v.status, v.action, v.reason
FROM @extschema@.vacuum_health_raw() AS v;

COMMENT ON VIEW vacuum_health IS
  'Per user table: dead tuples, last (auto)vacuum/analyze, xid age and % to wraparound, the autovacuum thresholds '
  'from its own reloptions over the server settings (vacuum when n_dead_tup > vacuum_threshold or '
  'n_ins_since_vacuum > insert_threshold, analyze when n_mod_since_analyze > analyze_threshold), a status '
  '(wraparound risk, freeze due, vacuum overdue, analyze overdue, autovacuum disabled, ok), the command for it '
  'and the reason with the threshold crossed (dead tuples 12000 > 10050, inserts 200000 > 100050)';
GRANT SELECT ON vacuum_health TO pg_monitor;

DROP VIEW table_bloat;
DROP FUNCTION table_bloat(boolean);
DROP FUNCTION table_bloat_raw(boolean);
CREATE  FUNCTION "table_bloat_raw"(
	"exact" bool DEFAULT false, /* Option < bool > */
	"min_bloat_pct" double precision DEFAULT 20.0, /* Option < f64 > */
	"min_bloat_bytes" bigint DEFAULT 10485760, /* Option < i64 > */
	"include_self" bool DEFAULT false /* Option < bool > */
) RETURNS TABLE (
	"schema" TEXT,  /* String */
	"table_name" TEXT,  /* String */
	"index_name" TEXT,  /* Option < String > */
	"kind" TEXT,  /* String */
	"bytes" bigint,  /* i64 */
	"expected_bytes" bigint,  /* Option < i64 > */
	"bloat_bytes" bigint,  /* Option < i64 > */
	"bloat_pct" double precision,  /* Option < f64 > */
	"method" TEXT,  /* String */
	"fix" TEXT  /* Option < String > */
)
STABLE
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'table_bloat_raw_wrapper';

CREATE FUNCTION table_bloat(exact boolean DEFAULT false,
                            min_bloat_pct float8 DEFAULT 20,
                            min_bloat_bytes bigint DEFAULT 10485760,
                            include_self boolean DEFAULT false)
RETURNS TABLE (schema name, table_name name, index_name name, kind text, bytes bigint,
               expected_bytes bigint, bloat_bytes bigint, bloat_pct float8, method text, fix text)
LANGUAGE sql STABLE SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT b.schema::name, b.table_name::name, b.index_name::name, b.kind, b.bytes,
           b.expected_bytes, b.bloat_bytes, b.bloat_pct, b.method, b.fix
    FROM @extschema@.table_bloat_raw(exact, min_bloat_pct, min_bloat_bytes, include_self) AS b
$$;

COMMENT ON FUNCTION table_bloat(boolean, float8, bigint, boolean) IS
  'Table and btree index bloat: bytes against the bytes a fresh copy would take. exact => false estimates from '
  'pg_class and pg_stats (no scan; NULL until the table is analyzed); exact => true reads every page through '
  'pgstattuple/pgstatindex (CREATE EXTENSION pgstattuple first). Lists a relation when its bloat is at least '
  'min_bloat_pct % and min_bloat_bytes (one without an estimate when it is at least min_bloat_bytes); '
  'pitstop''s own tables only with include_self';

CREATE VIEW table_bloat AS SELECT * FROM @extschema@.table_bloat(false);

COMMENT ON VIEW table_bloat IS
  'Estimated table and btree index bloat from statistics, at least 20 % and 10 MB; see table_bloat(...)';
GRANT SELECT ON table_bloat TO pg_monitor;

-- The quantile of a histogram of query_snapshots (index_effect reads the p95 with it).
CREATE  FUNCTION "latency_quantile"(
	"histogram" jsonb, /* pgrx :: JsonB */
	"q" double precision, /* f64 */
	"earlier" jsonb DEFAULT NULL /* Option < pgrx :: JsonB > */
) RETURNS double precision /* Option < f64 > */
IMMUTABLE PARALLEL SAFE
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'latency_quantile_wrapper';

-- index_effect: suggestions remembered, built indexes noted, their effect from the snapshots.
-- Did an index help? pitstop.suggest_indexes remembers what it suggested over
-- pg_stat_statements (when its caller may write here); the snapshot job notes when a valid
-- btree index matching a suggestion appears; index_effect compares the statements the
-- suggestion was meant for in the snapshots before and after.

CREATE TABLE index_suggestions (
    id                   bigserial   PRIMARY KEY,
    dbid                 oid         NOT NULL,
    relid                oid         NOT NULL,
    table_name           text        NOT NULL,
    -- The index's key columns in order and its INCLUDE columns, as attribute numbers: an
    -- index matches on these (sort order and operator class aside) and on being partial.
    key_attnums          int2[]      NOT NULL,
    include_attnums      int2[]      NOT NULL,
    partial              boolean     NOT NULL,
    ddl                  text        NOT NULL,
    -- The pg_stat_statements statements it was estimated to help.
    queryids             bigint[]    NOT NULL,
    improvement_pct      float8,
    first_suggested_at   timestamptz NOT NULL,
    last_suggested_at    timestamptz NOT NULL,
    -- Set when a matching index is first seen.
    index_oid            oid,
    index_name           text,
    built_seen_at        timestamptz,
    -- The last snapshot taken before it was seen: the end of the "before" window.
    before_until         timestamptz,
    -- The table's index-maintaining writes (inserts, non-HOT updates, deletes) when seen.
    table_writes_at_seen bigint
);
COMMENT ON TABLE index_suggestions IS
  'Indexes pitstop.suggest_indexes suggested over pg_stat_statements, and the index later built for each (pitstop.index_effect)';
CREATE UNIQUE INDEX index_suggestions_open ON index_suggestions (dbid, ddl) WHERE index_oid IS NULL;
SELECT pg_catalog.pg_extension_config_dump('index_suggestions', '');
SELECT pg_catalog.pg_extension_config_dump('index_suggestions_id_seq', '');

-- Marks the suggestions of this database whose index now exists; returns how many. Run by the
-- snapshot job before each snapshot (its role needs UPDATE here), so the window between the
-- previous snapshot and this one, when the index was built, belongs to neither side.
CREATE FUNCTION index_suggestions_observe() RETURNS integer
LANGUAGE sql VOLATILE SET search_path = pg_catalog, pg_temp AS $$
    WITH found AS (
        SELECT DISTINCT ON (s.id) s.id, i.indexrelid,
               i.indexrelid::regclass::text AS index_name,
               coalesce(t.n_tup_ins + t.n_tup_upd - t.n_tup_hot_upd + t.n_tup_del, 0) AS writes
          FROM @extschema@.index_suggestions s
          JOIN pg_index i ON i.indrelid = s.relid AND i.indisvalid
          JOIN pg_class c ON c.oid = i.indexrelid
          JOIN pg_am a ON a.oid = c.relam AND a.amname = 'btree'
          LEFT JOIN pg_stat_all_tables t ON t.relid = s.relid
         WHERE s.index_oid IS NULL
           AND s.dbid = (SELECT oid FROM pg_database WHERE datname = current_database())
           AND ARRAY(SELECT k FROM unnest((i.indkey::int2[])[0:i.indnkeyatts - 1]) WITH ORDINALITY AS u(k, n) ORDER BY n)
               = s.key_attnums
           AND ARRAY(SELECT k FROM unnest((i.indkey::int2[])[i.indnkeyatts:]) AS k ORDER BY k)
               = ARRAY(SELECT k FROM unnest(s.include_attnums) AS k ORDER BY k)
           AND (i.indpred IS NOT NULL) = s.partial
         ORDER BY s.id, i.indexrelid
    ), marked AS (
        UPDATE @extschema@.index_suggestions s
           SET index_oid = f.indexrelid, index_name = f.index_name, built_seen_at = now(),
               table_writes_at_seen = f.writes,
               before_until = (SELECT max(captured_at) FROM @extschema@.query_snapshots q
                                WHERE q.dbid = s.dbid AND q.captured_at < now())
          FROM found f
         WHERE s.id = f.id
        RETURNING 1
    )
    SELECT count(*)::integer FROM marked
$$;

-- Per statement a suggestion was meant for: calls, mean and p95 before (pg_stat_statements'
-- counters at the last snapshot before the index was seen, i.e. since its last reset) and
-- after (the latest snapshot minus the first one taken once the index was seen).
CREATE FUNCTION index_effect(index regclass)
RETURNS TABLE (index_name text, queryid bigint, query text,
               calls_before bigint, mean_ms_before float8, p95_ms_before float8,
               calls_after bigint, mean_ms_after float8, p95_ms_after float8, change_pct float8)
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
    WITH s AS (
        SELECT * FROM @extschema@.index_suggestions x
         WHERE x.index_oid = index::oid
           AND x.dbid = (SELECT oid FROM pg_database WHERE datname = current_database())
           -- Still the index that was built: an OID can be reused after a DROP.
           AND EXISTS (SELECT 1 FROM pg_index i WHERE i.indexrelid = x.index_oid AND i.indrelid = x.relid)
         ORDER BY x.built_seen_at DESC LIMIT 1
    ), statement AS (
        SELECT s.index_name, s.before_until, s.built_seen_at, s.dbid, q.queryid
          FROM s, unnest(s.queryids) AS q(queryid)
    ), per_role AS (
        -- Each role's entry of the statement: its counters at the last snapshot before the
        -- index (b), the first once it was seen (a0) and the latest (a1).
        SELECT st.index_name, st.queryid, b.userid,
               b.calls AS b_calls, b.total_exec_time_ms AS b_total, b.latency AS b_latency,
               a0.calls AS a0_calls, a0.total_exec_time_ms AS a0_total, a0.latency AS a0_latency, a0.stats_reset AS a0_reset,
               a1.calls AS a1_calls, a1.total_exec_time_ms AS a1_total, a1.latency AS a1_latency, a1.stats_reset AS a1_reset,
               coalesce(a1.query, b.query) AS query
          FROM statement st
          JOIN (SELECT DISTINCT q.userid, q.queryid FROM @extschema@.query_snapshots q, statement st2
                 WHERE q.dbid = st2.dbid AND q.queryid = st2.queryid) r ON r.queryid = st.queryid
          LEFT JOIN @extschema@.query_snapshots b
                 ON (b.dbid, b.userid, b.queryid, b.captured_at) = (st.dbid, r.userid, st.queryid, st.before_until)
          LEFT JOIN LATERAL (SELECT * FROM @extschema@.query_snapshots p
                              WHERE (p.dbid, p.userid, p.queryid) = (st.dbid, r.userid, st.queryid) AND p.captured_at >= st.built_seen_at
                              ORDER BY p.captured_at LIMIT 1) a0 ON true
          LEFT JOIN LATERAL (SELECT * FROM @extschema@.query_snapshots p
                              WHERE (p.dbid, p.userid, p.queryid) = (st.dbid, r.userid, st.queryid) AND p.captured_at >= st.built_seen_at
                              ORDER BY p.captured_at DESC LIMIT 1) a1 ON true
    ), window_after AS (
        -- A reset of pg_stat_statements in between (its reset time changed, or a counter
        -- fell: the entry was evicted and made again): the latest counters alone.
        SELECT *, a1_reset IS NOT DISTINCT FROM a0_reset AND a1_calls >= a0_calls AND a1_total >= a0_total AS continued
          FROM per_role
    ), summed AS (
        SELECT index_name, queryid, min(query) AS query,
               sum(b_calls)::bigint AS calls_before, sum(b_total) AS total_before,
               sum(CASE WHEN continued THEN a1_calls - a0_calls ELSE a1_calls END)::bigint AS calls_after,
               sum(CASE WHEN continued THEN a1_total - a0_total ELSE a1_total END) AS total_after,
               -- Histograms of several roles do not add up here: a p95 only for one role.
               CASE WHEN count(*) = 1 THEN min(b_latency::text)::jsonb END AS b_latency,
               CASE WHEN count(*) = 1 THEN min(a1_latency::text)::jsonb END AS a1_latency,
               CASE WHEN count(*) = 1 AND bool_and(continued) THEN min(a0_latency::text)::jsonb END AS a0_latency
          FROM window_after GROUP BY index_name, queryid
    ), measured AS (
        SELECT index_name, queryid, query, calls_before,
               total_before / nullif(calls_before, 0) AS mean_ms_before,
               CASE WHEN b_latency IS NOT NULL THEN @extschema@.latency_quantile(b_latency, 0.95) END AS p95_ms_before,
               calls_after,
               total_after / nullif(calls_after, 0) AS mean_ms_after,
               CASE WHEN a1_latency IS NOT NULL THEN @extschema@.latency_quantile(a1_latency, 0.95, a0_latency) END AS p95_ms_after
          FROM summed
    )
    SELECT index_name, queryid, query, calls_before, mean_ms_before, p95_ms_before,
           calls_after, mean_ms_after, p95_ms_after,
           round((100 * (mean_ms_after / nullif(mean_ms_before, 0) - 1))::numeric, 1)::float8
      FROM measured
     ORDER BY queryid
$$;
COMMENT ON FUNCTION index_effect(regclass) IS
  'The statements an index was suggested for: calls, mean and p95 before and after it was built, from pitstop.query_snapshots';

-- One row per suggestion whose index was built: the statements' mean before and after
-- (weighted by their calls after), the index's scans, size and the writes it has had to
-- follow since, and a verdict with the DROP for an index that did not help: never scanned,
-- or its statements less than 10 % faster.
CREATE VIEW index_effects AS
WITH e AS (
    SELECT s.id, x.*
      FROM @extschema@.index_suggestions s
     CROSS JOIN LATERAL @extschema@.index_effect(s.index_oid::regclass) x
     WHERE s.index_oid IS NOT NULL
       AND s.dbid = (SELECT oid FROM pg_catalog.pg_database WHERE datname = current_database())
       AND EXISTS (SELECT 1 FROM pg_catalog.pg_index i WHERE i.indexrelid = s.index_oid AND i.indrelid = s.relid)
), summary AS (
    SELECT id,
           count(*) FILTER (WHERE calls_before > 0 AND calls_after > 0) AS statements_measured,
           sum(calls_after * mean_ms_before) FILTER (WHERE calls_before > 0 AND calls_after > 0)
             / nullif(sum(calls_after) FILTER (WHERE calls_before > 0 AND calls_after > 0), 0) AS mean_ms_before,
           sum(calls_after * mean_ms_after) FILTER (WHERE calls_before > 0 AND calls_after > 0)
             / nullif(sum(calls_after) FILTER (WHERE calls_before > 0 AND calls_after > 0), 0) AS mean_ms_after
      FROM e GROUP BY id
)
SELECT pg_catalog.format('%I.%I', n.nspname, c.relname) AS index_name,
       s.table_name,
       s.ddl AS suggested_ddl,
       s.first_suggested_at,
       s.built_seen_at,
       coalesce(m.statements_measured, 0) AS statements_measured,
       cardinality(s.queryids) AS statements_suggested_for,
       round(m.mean_ms_before::numeric, 3)::float8 AS mean_ms_before,
       round(m.mean_ms_after::numeric, 3)::float8 AS mean_ms_after,
       round((100 * (m.mean_ms_after / nullif(m.mean_ms_before, 0) - 1))::numeric, 1)::float8 AS change_pct,
       coalesce(st.idx_scan, 0) AS index_scans,
       pg_catalog.pg_relation_size(s.index_oid) AS index_bytes,
       greatest(coalesce(t.n_tup_ins + t.n_tup_upd - t.n_tup_hot_upd + t.n_tup_del, 0) - s.table_writes_at_seen, 0)
         AS table_writes_since,
       CASE WHEN coalesce(m.statements_measured, 0) = 0
              THEN 'not measured yet: needs a snapshot before and two after it was built, with calls'
            WHEN coalesce(st.idx_scan, 0) = 0
              THEN 'did not help: never used'
            WHEN m.mean_ms_after <= 0.9 * m.mean_ms_before
              THEN 'helped: the statements it was meant for got faster'
            ELSE 'did not help: the statements it was meant for are not faster'
       END AS verdict,
       CASE WHEN m.statements_measured > 0 AND (coalesce(st.idx_scan, 0) = 0 OR m.mean_ms_after > 0.9 * m.mean_ms_before)
              THEN pg_catalog.format('DROP INDEX CONCURRENTLY %I.%I;', n.nspname, c.relname)
       END AS action
  FROM @extschema@.index_suggestions s
  -- Still the index that was built: an OID can be reused after a DROP.
  JOIN pg_catalog.pg_index i ON i.indexrelid = s.index_oid AND i.indrelid = s.relid
  JOIN pg_catalog.pg_class c ON c.oid = s.index_oid
  JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
  LEFT JOIN summary m ON m.id = s.id
  LEFT JOIN pg_catalog.pg_stat_all_indexes st ON st.indexrelid = s.index_oid
  LEFT JOIN pg_catalog.pg_stat_all_tables t ON t.relid = s.relid
 WHERE s.dbid = (SELECT oid FROM pg_catalog.pg_database WHERE datname = current_database());
COMMENT ON VIEW index_effects IS
  'Each index built on pitstop''s advice: its statements before and after, its scans, size and writes since, and whether it helped';

GRANT SELECT ON index_suggestions, index_effects TO pg_monitor;
GRANT EXECUTE ON FUNCTION index_effect(regclass) TO pg_monitor;

-- query_history and regressions over the snapshots.
-- Statement history and regressions from pitstop.query_snapshots: each snapshot holds
-- pg_stat_statements' cumulative counters (and the latency histogram), so what happened
-- between two snapshots is their difference; a counter that went down was reset in between,
-- and the later value alone is the window's.

-- Per role that ran the statement, one row per snapshot after the first: the calls, times and
-- percentiles of the window that snapshot closes.
CREATE FUNCTION query_history(queryid bigint)
RETURNS TABLE (captured_at timestamptz, role text, calls bigint, total_ms float8, mean_ms float8,
               p50_ms float8, p95_ms float8, p99_ms float8, rows bigint, shared_blks_read bigint, query text)
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
    WITH s AS (
        SELECT q.captured_at, q.userid, q.calls, q.total_exec_time_ms, q.rows, q.shared_blks_read, q.query, q.latency,
               q.stats_reset, lag(q.stats_reset) OVER w AS prev_reset,
               lag(q.calls) OVER w AS prev_calls, lag(q.total_exec_time_ms) OVER w AS prev_total,
               lag(q.rows) OVER w AS prev_rows, lag(q.shared_blks_read) OVER w AS prev_read,
               lag(q.latency) OVER w AS prev_latency
          FROM @extschema@.query_snapshots q
         WHERE q.queryid = query_history.queryid
           AND q.dbid = (SELECT oid FROM pg_database WHERE datname = current_database())
        WINDOW w AS (PARTITION BY q.userid ORDER BY q.captured_at)
    ), d AS (
        SELECT captured_at, userid, query, latency, prev_latency,
               calls >= prev_calls AND total_exec_time_ms >= prev_total AND stats_reset IS NOT DISTINCT FROM prev_reset AS continued,
               calls, prev_calls, total_exec_time_ms, prev_total, rows, prev_rows, shared_blks_read, prev_read
          FROM s WHERE prev_calls IS NOT NULL
    )
    SELECT d.captured_at,
           coalesce(r.rolname::text, d.userid::text),
           CASE WHEN continued THEN calls - prev_calls ELSE calls END,
           CASE WHEN continued THEN total_exec_time_ms - prev_total ELSE total_exec_time_ms END,
           CASE WHEN continued THEN (total_exec_time_ms - prev_total) / nullif(calls - prev_calls, 0)
                ELSE total_exec_time_ms / nullif(calls, 0) END,
           CASE WHEN latency IS NOT NULL THEN @extschema@.latency_quantile(latency, 0.50, CASE WHEN continued THEN prev_latency END) END,
           CASE WHEN latency IS NOT NULL THEN @extschema@.latency_quantile(latency, 0.95, CASE WHEN continued THEN prev_latency END) END,
           CASE WHEN latency IS NOT NULL THEN @extschema@.latency_quantile(latency, 0.99, CASE WHEN continued THEN prev_latency END) END,
           CASE WHEN continued THEN rows - prev_rows ELSE rows END,
           CASE WHEN continued THEN shared_blks_read - prev_read ELSE shared_blks_read END,
           d.query
      FROM d LEFT JOIN pg_roles r ON r.oid = d.userid
     ORDER BY d.captured_at, 2
$$;
COMMENT ON FUNCTION query_history(bigint) IS
  'A statement''s calls, times and percentiles between consecutive snapshots of pitstop.query_snapshots, per role';

-- Statements (per role) whose mean or p95 over the last `since` is at least `factor` times
-- that of the window of the same length before it, with at least `min_calls` calls in each,
-- worst first; the plan pitstop captured most recently for it, when there is one.
CREATE FUNCTION regressions(since interval DEFAULT '1 day', min_calls bigint DEFAULT 10, factor float8 DEFAULT 1.5)
RETURNS TABLE (queryid bigint, role text, query text,
               calls_before bigint, mean_ms_before float8, p95_ms_before float8,
               calls_now bigint, mean_ms_now float8, p95_ms_now float8,
               mean_factor float8, p95_factor float8, window_start timestamptz, window_end timestamptz,
               captured_plan json)
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    db oid := (SELECT oid FROM pg_database WHERE datname = current_database());
    t_end timestamptz;
    t_mid timestamptz;
    t_start timestamptz;
    plans jsonb;
BEGIN
    IF since IS NULL OR since <= interval '0' THEN
        RAISE EXCEPTION 'argument "since" must be a positive interval (got %)', coalesce(since::text, 'NULL')
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    -- NaN sorts above every number in PostgreSQL: refused by name, like infinity.
    IF min_calls IS NULL OR min_calls < 1 OR factor IS NULL OR NOT factor > 0 OR factor IN ('NaN', 'Infinity') THEN
        RAISE EXCEPTION 'arguments "min_calls" (≥ 1) and "factor" (> 0, finite) are required (got %, %)', min_calls, factor
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    -- The windows end at snapshots: the latest, the last one at least `since` before it, and
    -- the last one at least `since` before that.
    SELECT max(s.captured_at) INTO t_end FROM @extschema@.query_snapshots s WHERE s.dbid = db;
    SELECT max(s.captured_at) INTO t_mid FROM @extschema@.query_snapshots s WHERE s.dbid = db AND s.captured_at <= t_end - since;
    SELECT max(s.captured_at) INTO t_start FROM @extschema@.query_snapshots s WHERE s.dbid = db AND s.captured_at <= t_mid - since;
    IF t_start IS NULL THEN
        RETURN;  -- not two windows of snapshots yet
    END IF;
    -- The newest captured plan of each statement of this database, read once; none without
    -- the preload (the capture is off then, and the snapshots still work).
    BEGIN
        SELECT jsonb_object_agg(p.queryid::text, p.plan) INTO plans
          FROM (SELECT DISTINCT ON (sq.queryid) sq.queryid, sq.plan::jsonb AS plan
                  FROM @extschema@.slow_queries sq
                 WHERE sq.database = current_database() AND sq.queryid IS NOT NULL AND sq.plan IS NOT NULL
                 ORDER BY sq.queryid, sq.started_at DESC) p;
    EXCEPTION WHEN object_not_in_prerequisite_state THEN
        plans := NULL;
    END;
    RETURN QUERY
    WITH at AS (
        SELECT s.userid, s.queryid, s.captured_at, s.calls, s.total_exec_time_ms AS total, s.latency, s.query, s.stats_reset
          FROM @extschema@.query_snapshots s
         WHERE s.dbid = db AND s.captured_at IN (t_start, t_mid, t_end)
    ), w AS (
        SELECT e.userid, e.queryid, e.query,
               -- A reset in between (pg_stat_statements' reset time changed, or a counter
               -- fell: the entry was evicted and made again): the later snapshot alone.
               CASE WHEN mc THEN m.calls - a.calls ELSE m.calls END AS b_calls,
               CASE WHEN mc THEN m.total - a.total ELSE m.total END AS b_total,
               CASE WHEN m.latency IS NOT NULL THEN @extschema@.latency_quantile(m.latency, 0.95, CASE WHEN mc THEN a.latency END) END AS b_p95,
               CASE WHEN ec THEN e.calls - m.calls ELSE e.calls END AS n_calls,
               CASE WHEN ec THEN e.total - m.total ELSE e.total END AS n_total,
               CASE WHEN e.latency IS NOT NULL THEN @extschema@.latency_quantile(e.latency, 0.95, CASE WHEN ec THEN m.latency END) END AS n_p95
          FROM at e
          JOIN at m ON (m.userid, m.queryid) = (e.userid, e.queryid) AND m.captured_at = t_mid
          JOIN at a ON (a.userid, a.queryid) = (e.userid, e.queryid) AND a.captured_at = t_start
         CROSS JOIN LATERAL (SELECT m.calls >= a.calls AND m.total >= a.total AND m.stats_reset IS NOT DISTINCT FROM a.stats_reset AS mc,
                                    e.calls >= m.calls AND e.total >= m.total AND e.stats_reset IS NOT DISTINCT FROM m.stats_reset AS ec) c
         WHERE e.captured_at = t_end
    ), r AS (
        SELECT w.*, w.b_total / nullif(w.b_calls, 0) AS b_mean, w.n_total / nullif(w.n_calls, 0) AS n_mean
          FROM w WHERE w.b_calls >= min_calls AND w.n_calls >= min_calls
    )
    SELECT r.queryid, coalesce(ro.rolname::text, r.userid::text), r.query,
           r.b_calls, r.b_mean, r.b_p95, r.n_calls, r.n_mean, r.n_p95,
           round((r.n_mean / nullif(r.b_mean, 0))::numeric, 2)::float8,
           round((r.n_p95 / nullif(r.b_p95, 0))::numeric, 2)::float8,
           t_mid, t_end,
           (plans -> r.queryid::text)::json
      FROM r LEFT JOIN pg_roles ro ON ro.oid = r.userid
     WHERE r.n_mean >= factor * r.b_mean OR r.n_p95 >= factor * r.b_p95
     ORDER BY greatest(r.n_mean / nullif(r.b_mean, 0), r.n_p95 / nullif(r.b_p95, 0)) DESC NULLS LAST;
END
$$;
COMMENT ON FUNCTION regressions(interval, bigint, float8) IS
  'Statements whose mean or p95 over the last window of snapshots is factor times the window before, with their latest captured plan';

GRANT EXECUTE ON FUNCTION query_history(bigint), regressions(interval, bigint, float8) TO pg_monitor;
