-- pitstop.suggest_indexes: valid indexes of the workload's tables, except those hidden with
-- pitstop.hypo_hide, for the "already covered" check. indoption bit 1 is DESC.
SELECT i.indrelid,
       a.amname::text                         AS amname,
       i.indpred IS NOT NULL                  AS partial,
       i.indnkeyatts::int4                    AS key_columns,
       i.indkey::int2[]                       AS columns,
       i.indoption::int2[]                    AS options,
       -- Per key column, whether it orders the column as a candidate's key would: under the
       -- type's default operator class (not text_pattern_ops, not a bloom BRIN) and the
       -- column's own collation (the planner uses an index only for comparisons in its
       -- collation). indclass and indcollation hold one entry per key column.
       ARRAY(SELECT coalesce(k.attnum <> 0 AND o.opcdefault AND k.coll = att.attcollation,
                             false)
               FROM ROWS FROM (pg_catalog.unnest(i.indkey::int2[]),
                               pg_catalog.unnest(i.indclass::oid[]),
                               pg_catalog.unnest(i.indcollation::oid[]))
                    WITH ORDINALITY AS k(attnum, opclass, coll, n)
               JOIN pg_catalog.pg_opclass AS o ON o.oid = k.opclass
               LEFT JOIN pg_catalog.pg_attribute AS att
                      ON att.attrelid = i.indrelid AND att.attnum = k.attnum
              WHERE k.n <= i.indnkeyatts
              ORDER BY k.n)                   AS plain_keys
FROM pg_catalog.pg_index AS i
JOIN pg_catalog.pg_class AS c ON c.oid = i.indexrelid
JOIN pg_catalog.pg_am AS a ON a.oid = c.relam
WHERE i.indrelid = ANY ($1)
  AND i.indisvalid
  AND NOT i.indexrelid = ANY ($2)
