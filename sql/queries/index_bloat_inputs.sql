-- One row per column of each valid, plain-column btree index: what the size model needs, then
-- where the index lives (bare and quote_ident-qualified names, for fixes that name it).
-- $1 (include_self): also the indexes of pitstop's own tables (own_relation.sql).
SELECT i.indexrelid::regclass::text       AS index_name,
       i.indrelid::regclass::text         AS table_name,
       -- Sized from relpages while another session holds (or awaits) ACCESS EXCLUSIVE on it:
       -- pg_relation_size would wait for the lock.
       CASE WHEN i.indexrelid IN (SELECT relation FROM pg_catalog.pg_locks
                                   WHERE locktype = 'relation' AND mode = 'AccessExclusiveLock' AND pid <> pg_backend_pid())
            THEN ic.relpages::float8 * current_setting('block_size')::float8
            ELSE pg_catalog.pg_relation_size(i.indexrelid)::float8 END AS bytes,
       greatest(ic.reltuples, 0)::float8  AS tuples,
       i.indisunique,
       i.indnkeyatts::int4                AS key_columns,
       k.ord::int4                        AS position,
       coalesce(s.avg_width, nullif(a.attlen, -1))::float8 AS width,
       s.n_distinct::float8,
       n.nspname::text                    AS schema_name,
       t.relname::text                    AS table_relname,
       ic.relname::text                   AS index_relname,
       quote_ident(n.nspname) || '.' || quote_ident(t.relname)  AS qualified_table,
       quote_ident(n.nspname) || '.' || quote_ident(ic.relname) AS qualified_index
FROM pg_catalog.pg_index i
JOIN pg_catalog.pg_class ic ON ic.oid = i.indexrelid
JOIN pg_catalog.pg_am am ON am.oid = ic.relam AND am.amname = 'btree'
JOIN pg_catalog.pg_class t ON t.oid = i.indrelid
JOIN pg_catalog.pg_namespace n ON n.oid = t.relnamespace
CROSS JOIN LATERAL unnest(i.indkey::int2[]) WITH ORDINALITY AS k(attnum, ord)
JOIN pg_catalog.pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
LEFT JOIN pg_catalog.pg_stats s
       ON s.schemaname = n.nspname AND s.tablename = t.relname AND s.attname = a.attname AND NOT s.inherited
WHERE i.indisvalid AND ic.relkind = 'i' AND i.indexprs IS NULL AND i.indpred IS NULL
  AND n.nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast') AND n.nspname NOT LIKE 'pg_temp%'
  AND ($1 OR NOT {own_relation:t.oid})
ORDER BY 1, k.ord
