-- Per user table (and materialized view): what autovacuum looks at — pg_stat_user_tables
-- counters, pg_class.reltuples, xid and multixact ages — and the table's own autovacuum
-- reloptions (NULL where it sets none). Partitioned parents have no storage and are skipped.
SELECT n.nspname::text                                         AS schema_name,
       c.relname::text                                         AS table_name,
       quote_ident(n.nspname) || '.' || quote_ident(c.relname) AS qualified,
       c.reltuples::float8,
       s.n_live_tup, s.n_dead_tup, s.n_mod_since_analyze, s.n_ins_since_vacuum,
       s.last_vacuum, s.last_autovacuum, s.last_analyze, s.last_autoanalyze,
       pg_catalog.age(c.relfrozenxid)::int8                    AS xid_age,
       pg_catalog.mxid_age(c.relminmxid)::int8                 AS mxid_age,
       o.enabled, o.vacuum_threshold, o.vacuum_scale_factor, o.analyze_threshold, o.analyze_scale_factor,
       o.insert_threshold, o.insert_scale_factor, o.freeze_max_age, o.multixact_freeze_max_age
FROM pg_catalog.pg_stat_user_tables s
JOIN pg_catalog.pg_class c ON c.oid = s.relid
JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
CROSS JOIN LATERAL (
    -- CASE, not FILTER: only the matching option's value is cast.
    SELECT bool_and(CASE WHEN option_name = 'autovacuum_enabled' THEN option_value::bool END) AS enabled,
           max(CASE WHEN option_name = 'autovacuum_vacuum_threshold' THEN option_value::float8 END) AS vacuum_threshold,
           max(CASE WHEN option_name = 'autovacuum_vacuum_scale_factor' THEN option_value::float8 END) AS vacuum_scale_factor,
           max(CASE WHEN option_name = 'autovacuum_analyze_threshold' THEN option_value::float8 END) AS analyze_threshold,
           max(CASE WHEN option_name = 'autovacuum_analyze_scale_factor' THEN option_value::float8 END) AS analyze_scale_factor,
           max(CASE WHEN option_name = 'autovacuum_vacuum_insert_threshold' THEN option_value::float8 END) AS insert_threshold,
           max(CASE WHEN option_name = 'autovacuum_vacuum_insert_scale_factor' THEN option_value::float8 END) AS insert_scale_factor,
           max(CASE WHEN option_name = 'autovacuum_freeze_max_age' THEN option_value::float8 END) AS freeze_max_age,
           max(CASE WHEN option_name = 'autovacuum_multixact_freeze_max_age' THEN option_value::float8 END) AS multixact_freeze_max_age
    FROM pg_catalog.pg_options_to_table(c.reloptions)
) o
WHERE c.relkind IN ('r', 'm') AND c.relpersistence <> 't'
  AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname !~ '^pg_toast'
ORDER BY 1, 2
