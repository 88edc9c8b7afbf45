-- Index problems a DBA fixes with DDL: unused, invalid, duplicate, prefix-redundant indexes and
-- foreign keys without a supporting index. Columns: problem, table, index, size, detail, fix,
-- and for a foreign key its table and columns.
-- $1 (include_self): also pitstop's own tables (own_relation.sql), left out otherwise.
WITH idx AS (
    SELECT i.indexrelid, i.indrelid, i.indisunique, i.indisprimary, i.indisvalid,
           i.indkey::int2[] AS keys, i.indnkeyatts AS nkeys, i.indclass::oid[] AS classes,
           i.indcollation::oid[] AS collations, i.indoption::int2[] AS options,
           i.indexprs IS NOT NULL AS has_exprs, i.indpred IS NOT NULL AS has_pred,
           pg_catalog.pg_get_expr(i.indexprs, i.indrelid) AS exprs,
           pg_catalog.pg_get_expr(i.indpred, i.indrelid) AS pred,
           c.relam, c.oid::regclass::text AS index_name, t.oid::regclass::text AS table_name,
           pg_catalog.pg_relation_size(c.oid) AS bytes,
           EXISTS (SELECT 1 FROM pg_catalog.pg_constraint k WHERE k.conindid = c.oid) AS backs_constraint
    FROM pg_catalog.pg_index i
    JOIN pg_catalog.pg_class c ON c.oid = i.indexrelid
    JOIN pg_catalog.pg_class t ON t.oid = i.indrelid
    JOIN pg_catalog.pg_namespace n ON n.oid = t.relnamespace
    WHERE n.nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast')
      AND n.nspname NOT LIKE 'pg_temp%'
      AND ($1 OR NOT {own_relation:t.oid})
),
stats_since AS (
    SELECT coalesce(to_char(d.stats_reset, 'YYYY-MM-DD HH24:MI'), 'server start') AS since
    FROM pg_catalog.pg_stat_database d WHERE d.datname = current_database()
)
SELECT 'invalid'::text AS problem, table_name, index_name, bytes,
       'index is invalid (a failed CREATE INDEX CONCURRENTLY or REINDEX): it costs writes and serves no reads' AS detail,
       'DROP INDEX CONCURRENTLY ' || index_name || '; '
         || regexp_replace(pg_catalog.pg_get_indexdef(indexrelid), '^CREATE (UNIQUE )?INDEX ', 'CREATE \1INDEX CONCURRENTLY ') || ';' AS fix,
       NULL::oid AS fk_table, NULL::int2[] AS fk_columns
FROM idx WHERE NOT indisvalid
UNION ALL
SELECT 'unused', x.table_name, x.index_name, x.bytes,
       'no scans since ' || (SELECT since FROM stats_since) || ' (' || pg_catalog.pg_size_pretty(x.bytes) || '); check replicas before dropping',
       'DROP INDEX CONCURRENTLY ' || x.index_name || ';', NULL, NULL
FROM idx x JOIN pg_catalog.pg_stat_user_indexes s ON s.indexrelid = x.indexrelid
WHERE s.idx_scan = 0 AND x.indisvalid AND NOT x.indisunique AND NOT x.indisprimary AND NOT x.backs_constraint
UNION ALL
SELECT 'duplicate', b.table_name, b.index_name, b.bytes,
       'same definition as ' || a.index_name,
       'DROP INDEX CONCURRENTLY ' || b.index_name || ';', NULL, NULL
FROM idx a JOIN idx b
  ON a.indrelid = b.indrelid AND a.indexrelid <> b.indexrelid AND a.relam = b.relam
 AND a.keys = b.keys AND a.nkeys = b.nkeys AND a.classes = b.classes AND a.collations = b.collations
 AND a.options = b.options AND a.exprs IS NOT DISTINCT FROM b.exprs AND a.pred IS NOT DISTINCT FROM b.pred
 AND a.indisunique = b.indisunique
-- keep the one that backs a constraint, else the older one
WHERE NOT b.backs_constraint AND NOT b.indisprimary
  AND (a.backs_constraint OR a.indisprimary OR a.indexrelid < b.indexrelid)
UNION ALL
SELECT 'redundant_prefix', a.table_name, a.index_name, a.bytes,
       'its columns are a leading prefix of ' || b.index_name || ', which serves the same lookups',
       'DROP INDEX CONCURRENTLY ' || a.index_name || ';', NULL, NULL
FROM idx a JOIN idx b
  ON a.indrelid = b.indrelid AND a.indexrelid <> b.indexrelid
 AND a.relam = b.relam AND a.relam = (SELECT oid FROM pg_catalog.pg_am WHERE amname = 'btree')
 AND a.nkeys < b.nkeys
 AND a.keys[0:a.nkeys - 1] = b.keys[0:a.nkeys - 1]
 AND a.classes[0:a.nkeys - 1] = b.classes[0:a.nkeys - 1]
 AND a.collations[0:a.nkeys - 1] = b.collations[0:a.nkeys - 1]
 AND a.options[0:a.nkeys - 1] = b.options[0:a.nkeys - 1]
WHERE NOT a.has_exprs AND NOT b.has_exprs AND NOT a.has_pred AND NOT b.has_pred
  AND NOT a.indisunique AND NOT a.backs_constraint AND a.indisvalid AND b.indisvalid
UNION ALL
SELECT 'missing_fk_index', f.conrelid::regclass::text, NULL, NULL,
       'foreign key ' || quote_ident(f.conname) || ' to ' || f.confrelid::regclass::text
         || ' has no index starting with (' || cols.list || '): deletes and key updates on the parent scan this table',
       'CREATE INDEX CONCURRENTLY ON ' || f.conrelid::regclass::text || ' (' || cols.list || ');',
       -- the table and columns, to match the advisor's suggestions (with_advice)
       f.conrelid, f.conkey
FROM pg_catalog.pg_constraint f
JOIN pg_catalog.pg_namespace n ON n.oid = f.connamespace
CROSS JOIN LATERAL (
    SELECT string_agg(quote_ident(a.attname), ', ' ORDER BY k.ord) AS list
    FROM unnest(f.conkey) WITH ORDINALITY AS k(attnum, ord)
    JOIN pg_catalog.pg_attribute a ON a.attrelid = f.conrelid AND a.attnum = k.attnum
) cols
WHERE f.contype = 'f' AND n.nspname NOT IN ('pg_catalog', 'information_schema')
  AND ($1 OR NOT {own_relation:f.conrelid})
  AND NOT EXISTS (
      SELECT 1 FROM pg_catalog.pg_index i
      WHERE i.indrelid = f.conrelid AND i.indisvalid AND i.indpred IS NULL
        AND i.indnkeyatts >= cardinality(f.conkey)
        -- the index's leading key columns are exactly the foreign key's columns, in any order
        AND (SELECT array_agg(x ORDER BY x) FROM unnest((i.indkey::int2[])[0:cardinality(f.conkey) - 1]) x)
          = (SELECT array_agg(x ORDER BY x) FROM unnest(f.conkey) x))
ORDER BY 1, 2, 3
