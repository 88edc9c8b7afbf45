-- Exact live-tuple counts of one table ($1, a qualified name) through pgstattuple, which reads
-- every page. {pgstattuple} is replaced by the schema pgstattuple is installed in.
SELECT s.table_len::float8, s.tuple_count::float8, s.tuple_len::float8
FROM {pgstattuple}.pgstattuple($1::text::regclass) s
