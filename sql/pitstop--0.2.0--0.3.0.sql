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
