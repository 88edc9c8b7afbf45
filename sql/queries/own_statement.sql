-- Whether a pg_stat_statements entry `s` is pitstop's own or catalog tooling rather than the
-- application's workload (top_queries, suggest_indexes and unhelped_queries leave these out
-- unless include_self): its text names pitstop as a word (the CLI's and the daemon's statements
-- and direct calls all qualify pitstop's objects with its schema; CREATE/ALTER EXTENSION
-- pitstop), reads or resets pg_stat_statements, or names a system catalog schema explicitly
-- (pitstop's SPI statements always qualify catalog objects, as do psql's \d and pg_dump; no
-- index can be added to a catalog anyway).
(s.query ~* '\mpitstop\M'
 OR s.query ~* '\mpg_stat_statements'
 OR s.query ~* '\m(pg_catalog|information_schema)"?[[:space:]]*\.')
