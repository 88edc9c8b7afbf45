-- Row counts and statistics presence of the relations a plan reads ($1 schemas, $2 names).
SELECT r.schema_name,
       r.rel_name,
       c.reltuples::float8,
       EXISTS (SELECT 1 FROM pg_catalog.pg_stats s
                WHERE s.schemaname = r.schema_name AND s.tablename = r.rel_name) AS has_column_stats
FROM unnest($1::text[], $2::text[]) AS r(schema_name, rel_name)
JOIN pg_catalog.pg_namespace n ON n.nspname = r.schema_name
JOIN pg_catalog.pg_class c ON c.relnamespace = n.oid AND c.relname = r.rel_name
WHERE c.relkind IN ('r', 'm', 'p')
