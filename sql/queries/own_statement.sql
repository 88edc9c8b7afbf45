-- Whether a pg_stat_statements entry `s` is pitstop's own rather than the application's
-- workload (top_queries, suggest_indexes and unhelped_queries leave these out unless
-- include_self). Comments are ignored (anyone can write "pitstop" in one); then the text
--   * qualifies one of pitstop's objects with its schema (the CLI's and the daemon's
--     statements and direct calls all do), except pitstop.cached(…), which is the
--     application's own workload going through the cache;
--   * is CREATE/ALTER/DROP EXTENSION pitstop;
--   * reads or resets pg_stat_statements;
--   * or qualifies a system catalog and touches nothing else: every FROM, JOIN, INTO and
--     UPDATE names a pg_catalog or information_schema relation (pitstop's SPI statements,
--     recorded with pg_stat_statements.track = all, the CLI's version check, psql's \d). A
--     statement that also reads a table or a subquery is the application's (PostgREST
--     writes pg_catalog.count(…) around every one).
(pg_catalog.regexp_replace(pg_catalog.regexp_replace(s.query, '/\*.*?\*/', ' ', 'g'), '--[^\n]*', ' ', 'g')
   ~* ('\mpitstop"?[[:space:]]*\.(?![[:space:]]*"?cached\M)'
       '|^[[:space:]]*(create|alter|drop)[[:space:]]+extension[[:space:]]+(if[[:space:]]+(not[[:space:]]+)?exists[[:space:]]+)?"?pitstop\M'
       '|\mpg_stat_statements')
 OR (s.query ~* '\m(pg_catalog|information_schema)"?[[:space:]]*\.'
     AND s.query !~* '\m(from|join|into|update)[[:space:]]+(?!"?(pg_catalog|information_schema)"?[[:space:]]*\.)'))
