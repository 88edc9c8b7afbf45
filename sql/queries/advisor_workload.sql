-- pitstop.suggest_indexes: the workload from pg_stat_statements for the current database,
-- one row per statement (summed over users), the most time-consuming first.
-- {pgss} is the quoted schema-qualified view.
SELECT s.queryid,
       min(s.query)          AS query,
       sum(s.calls)::float8  AS calls,
       sum(s.rows)::float8   AS rows
FROM {pgss} AS s
WHERE s.dbid = (SELECT oid FROM pg_catalog.pg_database WHERE datname = current_database())
GROUP BY s.queryid
ORDER BY sum(s.total_exec_time) DESC, s.queryid
LIMIT $1
