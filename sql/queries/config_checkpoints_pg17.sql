-- Checkpoints by cause since the counters were reset (PostgreSQL 17+: pg_stat_checkpointer).
SELECT num_timed::float8 AS checkpoints_timed, num_requested::float8 AS checkpoints_req,
       coalesce(to_char(stats_reset, 'YYYY-MM-DD HH24:MI'), 'server start') AS stats_since
FROM pg_catalog.pg_stat_checkpointer
