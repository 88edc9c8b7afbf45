-- Checkpoints by cause since the counters were reset (PostgreSQL 17+: pg_stat_checkpointer).
SELECT num_timed::float8, num_requested::float8,
       coalesce(to_char(stats_reset, 'YYYY-MM-DD HH24:MI'), 'server start')
FROM pg_catalog.pg_stat_checkpointer
