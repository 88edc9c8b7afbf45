-- One row per live column of each user table (and materialized view): what the heap size model
-- needs. Size now (a stat() of the file, no scan; relpages for a locked table), relpages and reltuples as of the last
-- VACUUM/ANALYZE, fillfactor, and each column's pg_stats width and null fraction (NULL when the
-- column has no statistics, or the caller may not read them). $1 (include_self): also pitstop's
-- own tables (own_relation.sql).
SELECT n.nspname::text                                         AS schema_name,
       c.relname::text                                         AS table_name,
       quote_ident(n.nspname) || '.' || quote_ident(c.relname) AS qualified,
       -- pg_relation_size takes a lock: a table another session holds (or awaits) in ACCESS
       -- EXCLUSIVE mode is sized from relpages instead of waiting behind it.
       CASE WHEN c.oid IN (SELECT relation FROM pg_catalog.pg_locks
                            WHERE locktype = 'relation' AND mode = 'AccessExclusiveLock' AND pid <> pg_backend_pid())
            THEN c.relpages::float8 * current_setting('block_size')::float8
            ELSE pg_catalog.pg_relation_size(c.oid)::float8 END AS bytes,
       c.relpages::float8,
       c.reltuples::float8,
       coalesce((SELECT option_value::float8 FROM pg_catalog.pg_options_to_table(c.reloptions)
                  WHERE option_name = 'fillfactor'), 100)      AS fillfactor,
       a.attlen::int4,
       a.attalign::text,
       s.avg_width::float8,
       coalesce(s.null_frac, 0)::float8                        AS null_frac
FROM pg_catalog.pg_class c
JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
JOIN pg_catalog.pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
LEFT JOIN pg_catalog.pg_stats s
       ON s.schemaname = n.nspname AND s.tablename = c.relname AND s.attname = a.attname AND NOT s.inherited
WHERE c.relkind IN ('r', 'm') AND c.relpersistence <> 't'
  AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname !~ '^pg_toast'
  AND ($1 OR NOT {own_relation:c.oid})
ORDER BY 1, 2, a.attnum
