-- pitstop.suggest_indexes: the workload from pg_stat_statements for the current database, one
-- row per statement and role that ran it (each is planned as that role), the most
-- time-consuming first. Statements of other roles that the caller may not read
-- ('<insufficient privilege>', no queryid) are left out, and so are pitstop's own statements
-- (own_statement.sql) unless $2 (include_self). A text longer than $3 bytes comes as its
-- beginning only, with its length: it is reported, not planned. {pgss} is the quoted view.
SELECT s.queryid,
       s.userid,
       coalesce(r.rolname::text, s.userid::text) AS role_name,
       CASE WHEN octet_length(min(s.query)) > $3 THEN left(min(s.query), 1000) ELSE min(s.query) END AS query,
       octet_length(min(s.query))::int8 AS text_bytes,
       sum(s.calls)::float8  AS calls,
       sum(s.rows)::float8   AS rows
FROM {pgss} AS s
LEFT JOIN pg_catalog.pg_roles AS r ON r.oid = s.userid
WHERE s.dbid = (SELECT oid FROM pg_catalog.pg_database WHERE datname = current_database())
  AND s.queryid IS NOT NULL
  AND ($2 OR NOT {own_statement})
GROUP BY s.queryid, s.userid, r.rolname
ORDER BY sum(s.total_exec_time) DESC, s.queryid, s.userid
LIMIT $1
