-- pitstop.top_queries: pg_stat_statements for the current database, ranked.
-- {pgss} is the quoted schema-qualified view, {order_by} a whitelisted sort expression,
-- own_statement the predicate of own_statement.sql (pitstop's own statements), $2 include_self.
SELECT s.queryid,
       r.rolname::text                                                   AS username,
       s.calls,
       s.total_exec_time + s.total_plan_time                             AS total_ms,
       s.mean_exec_time                                                  AS mean_ms,
       s.stddev_exec_time                                                AS stddev_ms,
       s.max_exec_time                                                   AS max_ms,
       s.rows,
       CASE WHEN s.shared_blks_hit + s.shared_blks_read > 0
            THEN round((100.0 * s.shared_blks_hit
                        / (s.shared_blks_hit + s.shared_blks_read))::numeric, 2)::float8
       END                                                               AS shared_hit_pct,
       s.temp_blks_read + s.temp_blks_written                            AS temp_blks,
       round((100.0 * (s.total_exec_time + s.total_plan_time)
              / nullif(sum(s.total_exec_time + s.total_plan_time) OVER (), 0))::numeric, 2)::float8
                                                                         AS pct_total_time,
       s.query
FROM {pgss} AS s
LEFT JOIN pg_catalog.pg_roles AS r ON r.oid = s.userid
WHERE s.dbid = (SELECT oid FROM pg_catalog.pg_database WHERE datname = current_database())
  AND ($2 OR NOT {own_statement})
ORDER BY {order_by}
LIMIT $1
