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
