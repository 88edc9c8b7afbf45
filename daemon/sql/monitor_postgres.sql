-- pitstop monitor: one sample of server-wide metrics. Read-only, statistics views only (no
-- table is scanned); run by the daemon every monitor.sample_interval. Counters are summed over
-- all databases; rates come from the difference between two samples.
SELECT
    current_setting('max_connections')::float8 AS max_connections,
    (SELECT coalesce(json_object_agg(s.state, s.n), '{}')::text
       FROM (SELECT rtrim(regexp_replace(coalesce(state, 'unknown'), '[^a-z]+', '_', 'g'), '_') AS state, count(*)::float8 AS n
               FROM pg_catalog.pg_stat_activity
              WHERE backend_type = 'client backend'
              GROUP BY 1) s) AS connections,
    d.xacts, d.blks_hit, d.blks_read, d.deadlocks, d.temp_bytes,
    (SELECT extract(epoch FROM max(clock_timestamp() - xact_start))::float8
       FROM pg_catalog.pg_stat_activity
      WHERE backend_type = 'client backend' AND xact_start IS NOT NULL AND pid <> pg_catalog.pg_backend_pid()) AS longest_transaction_seconds,
    (SELECT max(pg_catalog.age(datfrozenxid))::float8 FROM pg_catalog.pg_database) AS xid_age,
    pg_catalog.pg_is_in_recovery() AS standby,
    CASE WHEN pg_catalog.pg_is_in_recovery() THEN
             CASE WHEN pg_catalog.pg_last_wal_receive_lsn() = pg_catalog.pg_last_wal_replay_lsn() THEN 0::float8
                  ELSE extract(epoch FROM now() - pg_catalog.pg_last_xact_replay_timestamp())::float8 END
         ELSE (SELECT extract(epoch FROM max(replay_lag))::float8 FROM pg_catalog.pg_stat_replication) END AS replication_lag_seconds,
    pg_catalog.pg_backend_pid() AS backend_pid
FROM (SELECT sum(xact_commit + xact_rollback)::float8 AS xacts,
             sum(blks_hit)::float8 AS blks_hit,
             sum(blks_read)::float8 AS blks_read,
             sum(deadlocks)::float8 AS deadlocks,
             sum(temp_bytes)::float8 AS temp_bytes
        FROM pg_catalog.pg_stat_database) d
