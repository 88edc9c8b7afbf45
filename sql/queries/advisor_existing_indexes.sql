-- pitstop.suggest_indexes: valid indexes of the workload's tables, except those hidden with
-- pitstop.hypo_hide, for the "already covered" check. indoption bit 1 is DESC.
SELECT i.indrelid,
       a.amname::text                         AS amname,
       i.indpred IS NOT NULL                  AS partial,
       -- An index with another operator class (text_pattern_ops, a bloom BRIN) does other
       -- work than the default one a candidate would have.
       NOT EXISTS (SELECT FROM pg_catalog.unnest(i.indclass::oid[]) AS k(opclass)
                     JOIN pg_catalog.pg_opclass AS o ON o.oid = k.opclass
                    WHERE NOT o.opcdefault)   AS default_opclasses,
       i.indnkeyatts::int4                    AS key_columns,
       i.indkey::int2[]                       AS columns,
       i.indoption::int2[]                    AS options
FROM pg_catalog.pg_index AS i
JOIN pg_catalog.pg_class AS c ON c.oid = i.indexrelid
JOIN pg_catalog.pg_am AS a ON a.oid = c.relam
WHERE i.indrelid = ANY ($1)
  AND i.indisvalid
  AND NOT i.indexrelid = ANY ($2)
