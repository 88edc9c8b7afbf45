-- Exact page counts of one btree index ($1, a qualified name) through pgstatindex, which reads
-- every page, and the index's fillfactor. {pgstattuple} is replaced by pgstattuple's schema.
SELECT s.index_size::float8, s.internal_pages::float8, s.leaf_pages::float8, s.avg_leaf_density::float8,
       coalesce((SELECT o.option_value::float8
                   FROM pg_catalog.pg_class c, pg_catalog.pg_options_to_table(c.reloptions) o
                  WHERE c.oid = $1::text::regclass AND o.option_name = 'fillfactor'), 90) AS fillfactor
FROM {pgstattuple}.pgstatindex($1::text::regclass) s
