-- Every database's oldest unfrozen xid and multixact, oldest first.
SELECT d.datname::text,
       pg_catalog.age(d.datfrozenxid)::int8,
       pg_catalog.mxid_age(d.datminmxid)::int8
FROM pg_catalog.pg_database d
ORDER BY 2 DESC, 1
