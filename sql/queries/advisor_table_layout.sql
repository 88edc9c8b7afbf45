-- pitstop.suggest_indexes: what decides whether a BRIN index suits each table of $1: its
-- pages (the file's size: relpages may be stale), its write counters (NULL without a
-- pg_stat_all_tables row) and, one row per analyzed column, the column's physical
-- correlation (attnum and correlation NULL when none is known).
SELECT c.oid AS relid,
       -- pg_relation_size takes a lock: a table another session holds (or awaits) in ACCESS
       -- EXCLUSIVE mode is sized from relpages instead of waiting behind it.
       CASE WHEN c.oid IN (SELECT relation FROM pg_catalog.pg_locks
                            WHERE locktype = 'relation' AND mode = 'AccessExclusiveLock'
                              AND pid <> pg_catalog.pg_backend_pid())
            THEN c.relpages::float8
            ELSE (pg_catalog.pg_relation_size(c.oid)
                    / pg_catalog.current_setting('block_size')::int8)::float8 END AS pages,
       t.n_tup_ins::float8 AS inserted,
       t.n_tup_upd::float8 AS updated,
       t.n_tup_del::float8 AS deleted,
       a.attnum,
       s.correlation::float8 AS correlation
FROM pg_catalog.pg_class AS c
JOIN pg_catalog.pg_namespace AS n ON n.oid = c.relnamespace
LEFT JOIN pg_catalog.pg_stat_all_tables AS t ON t.relid = c.oid
LEFT JOIN pg_catalog.pg_stats AS s
       ON s.schemaname = n.nspname AND s.tablename = c.relname AND NOT s.inherited
      AND s.correlation IS NOT NULL
LEFT JOIN pg_catalog.pg_attribute AS a
       ON a.attrelid = c.oid AND a.attname = s.attname AND NOT a.attisdropped
WHERE c.oid = ANY ($1) AND c.relkind IN ('r', 'm')
