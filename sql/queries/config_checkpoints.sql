-- Checkpoints by cause since the counters were reset (PostgreSQL 13-16: pg_stat_bgwriter).
SELECT checkpoints_timed::float8 AS checkpoints_timed, checkpoints_req::float8 AS checkpoints_req,
       coalesce(to_char(stats_reset, 'YYYY-MM-DD HH24:MI'), 'server start') AS stats_since
FROM pg_catalog.pg_stat_bgwriter
