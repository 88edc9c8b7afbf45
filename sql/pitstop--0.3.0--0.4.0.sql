-- pitstop 0.3.0 -> 0.4.0 (ALTER EXTENSION pitstop UPDATE). The result must equal a fresh
-- CREATE EXTENSION pitstop of 0.4.0 (tests/tests/upgrade.rs compares the two): new or changed
-- objects are written here exactly as in sql/schema/*.sql and the generated functions.

-- index_effect follows BRIN and expression suggestions (issue 15): index_suggestions records
-- each suggestion's access method and its expression keys' texts, and
-- index_suggestions_observe matches on them. 0.3.0 remembered btree and BRIN suggestions
-- (never hash); a BRIN's DDL is `CREATE INDEX CONCURRENTLY ON <table_name> USING brin (`, the
-- table written as in table_name. Their expression keys' texts were not recorded (NULL: they
-- match on the attnum 0 alone until suggest_indexes suggests them again). The default is
-- set after the rows are written: ADD COLUMN with a default would also keep it as the
-- column's "missing value", which a fresh table has not.
ALTER TABLE index_suggestions ADD COLUMN access_method text;
UPDATE index_suggestions
   SET access_method = CASE WHEN starts_with(ddl, 'CREATE INDEX CONCURRENTLY ON ' || table_name || ' USING brin (')
                              OR starts_with(ddl, 'CREATE INDEX ON ' || table_name || ' USING brin (')
                            THEN 'brin' ELSE 'btree' END;
ALTER TABLE index_suggestions ALTER COLUMN access_method SET DEFAULT 'btree',
                              ALTER COLUMN access_method SET NOT NULL;
ALTER TABLE index_suggestions ADD COLUMN key_expressions text[];
-- A partial suggestion's predicate and its keys' operator classes: NULL for 0.3.0's rows too.
ALTER TABLE index_suggestions ADD COLUMN predicate text;
ALTER TABLE index_suggestions ADD COLUMN key_opclasses text[];

CREATE OR REPLACE FUNCTION index_suggestions_observe() RETURNS integer
LANGUAGE sql VOLATILE SET search_path = pg_catalog, pg_temp
-- The settings suggest_indexes deparses the remembered expressions under: constants print alike.
SET DateStyle = 'ISO, MDY' SET IntervalStyle = 'postgres' SET extra_float_digits = 3 AS $$
    WITH found AS (
        SELECT DISTINCT ON (s.id) s.id, i.indexrelid,
               i.indexrelid::regclass::text AS index_name,
               coalesce(t.n_tup_ins + t.n_tup_upd - t.n_tup_hot_upd + t.n_tup_del, 0) AS writes
          FROM @extschema@.index_suggestions s
          JOIN pg_index i ON i.indrelid = s.relid AND i.indisvalid
          JOIN pg_class c ON c.oid = i.indexrelid
          JOIN pg_am a ON a.oid = c.relam AND a.amname = s.access_method
          LEFT JOIN pg_stat_all_tables t ON t.relid = s.relid
         WHERE s.index_oid IS NULL
           AND s.dbid = (SELECT oid FROM pg_database WHERE datname = current_database())
           AND ARRAY(SELECT k FROM unnest((i.indkey::int2[])[0:i.indnkeyatts - 1]) WITH ORDINALITY AS u(k, n) ORDER BY n)
               = s.key_attnums
           AND ARRAY(SELECT k FROM unnest((i.indkey::int2[])[i.indnkeyatts:]) AS k ORDER BY k)
               = ARRAY(SELECT k FROM unnest(s.include_attnums) AS k ORDER BY k)
           AND (i.indpred IS NOT NULL) = s.partial
           AND NOT EXISTS (SELECT 1 FROM unnest(s.key_expressions) WITH ORDINALITY AS e(expression, n)
                            WHERE e.expression IS NOT NULL
                              AND regexp_replace(coalesce(pg_get_indexdef(i.indexrelid, e.n::int4, false), ''), '\s+', '', 'g')
                                  NOT IN (regexp_replace(e.expression, '\s+', '', 'g'),
                                          '(' || regexp_replace(e.expression, '\s+', '', 'g') || ')'))
           AND (s.predicate IS NULL
                OR regexp_replace(coalesce(pg_get_expr(i.indpred, i.indrelid), ''), '\s+', '', 'g')
                   IN (regexp_replace(s.predicate, '\s+', '', 'g'),
                       '(' || regexp_replace(s.predicate, '\s+', '', 'g') || ')'))
           AND NOT EXISTS (SELECT 1 FROM unnest(s.key_opclasses) WITH ORDINALITY AS o(opclass, n)
                             JOIN unnest(i.indclass::oid[]) WITH ORDINALITY AS k(opclass, n) ON k.n = o.n
                             JOIN pg_opclass AS c ON c.oid = k.opclass
                            WHERE CASE WHEN o.opclass IS NULL THEN NOT c.opcdefault
                                       ELSE c.opcname <> o.opclass END)
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
