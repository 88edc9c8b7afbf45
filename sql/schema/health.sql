-- Health views and functions over the Rust *_raw functions of pg_ext/src/health/sql.rs:
-- `name`-typed columns, the documented signatures and defaults, and read access for pg_monitor.
-- Every function is SECURITY INVOKER: callers see what their own privileges let them see.

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

CREATE VIEW database_wraparound AS
SELECT d.datname::name AS datname, d.xid_age, d.wraparound_pct, d.mxid_age, d.mxid_wraparound_pct, d.status
FROM @extschema@.database_wraparound_raw() AS d;

COMMENT ON VIEW database_wraparound IS
  'Per database: age of the oldest unfrozen xid and multixact, % of the way to wraparound (2^31), and a status';

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

CREATE FUNCTION maintenance_plan(vacuum_dead_ratio float8 DEFAULT 0.2,
                                 vacuum_min_dead bigint DEFAULT 1000,
                                 analyze_mod_ratio float8 DEFAULT 0.1,
                                 reindex_bloat_pct float8 DEFAULT 30,
                                 reindex_min_bytes bigint DEFAULT 10485760)
RETURNS TABLE (priority int, action text, schema name, relation name, index_name name,
               target text, command text, reason text)
LANGUAGE sql STABLE SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT p.priority, p.action, p.schema::name, p.relation::name, p.index_name::name,
           p.target, p.command, p.reason
    FROM @extschema@.maintenance_plan_raw(vacuum_dead_ratio, vacuum_min_dead, analyze_mod_ratio,
                                          reindex_bloat_pct, reindex_min_bytes) AS p
$$;

COMMENT ON FUNCTION maintenance_plan(float8, bigint, float8, float8, bigint) IS
  'The maintenance the daemon would run now, most urgent first: vacuum_freeze (xids near freeze_max_age), '
  'vacuum (dead tuples past both thresholds; it analyzes too), analyze (stale or missing statistics), reindex '
  '(btree bloat past both thresholds). target is the table each action works on';

GRANT USAGE ON SCHEMA @extschema@ TO pg_monitor;
GRANT SELECT ON vacuum_health, database_wraparound, table_bloat TO pg_monitor;
