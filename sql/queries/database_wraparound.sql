-- Every database's oldest unfrozen xid and multixact, oldest first.
SELECT d.datname::text                         AS datname,
       pg_catalog.age(d.datfrozenxid)::int8     AS xid_age,
       pg_catalog.mxid_age(d.datminmxid)::int8  AS mxid_age
FROM pg_catalog.pg_database d
ORDER BY 2 DESC, 1
