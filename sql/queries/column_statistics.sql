-- Average width and n_distinct of each column of table $1 (NULLs when never analyzed); of a
-- partitioned table, over all its partitions (the only statistics it has).
SELECT a.attnum,
       s.avg_width::float8  AS avg_width,
       s.n_distinct::float8 AS n_distinct
FROM pg_catalog.pg_attribute a
JOIN pg_catalog.pg_class c ON c.oid = a.attrelid
JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
LEFT JOIN pg_catalog.pg_stats s
       ON s.schemaname = n.nspname AND s.tablename = c.relname
      AND s.attname = a.attname AND s.inherited = (c.relkind = 'p')
WHERE a.attrelid = $1 AND a.attnum > 0 AND NOT a.attisdropped
