-- History tables the daemon writes and DBAs read: host and server samples, alerts, every
-- maintenance run and action, and pg_stat_statements snapshots. Plain tables, so they work with
-- any backup; pg_dump keeps their rows (pg_extension_config_dump). Readable by pg_monitor;
-- the daemon's role needs INSERT/UPDATE/DELETE on them (see the README).

-- One row per metric per sample, in Prometheus naming (pitstop_host_cpu_usage_ratio, …).
CREATE TABLE host_metrics (
    sampled_at  timestamptz      NOT NULL,
    host        text             NOT NULL,
    metric      text             NOT NULL,
    labels      jsonb            NOT NULL DEFAULT '{}',
    value       double precision NOT NULL
);
COMMENT ON TABLE host_metrics IS 'Host and PostgreSQL samples written by the pitstop daemon (kept for monitor.retention)';
CREATE INDEX host_metrics_sampled_at ON host_metrics (sampled_at);
CREATE INDEX host_metrics_metric ON host_metrics (metric, sampled_at);

-- One row per alert episode: it moves pending -> firing -> resolved (or pending -> resolved
-- when the condition cleared before its `for` duration). At most one open row per rule and
-- labels, so a still-firing alert never duplicates.
CREATE TABLE alerts (
    id          bigserial        PRIMARY KEY,
    rule        text             NOT NULL,
    metric      text             NOT NULL,
    labels      jsonb            NOT NULL DEFAULT '{}',
    severity    text             NOT NULL CHECK (severity IN ('info', 'warning', 'critical')),
    state       text             NOT NULL CHECK (state IN ('pending', 'firing', 'resolved')),
    value       double precision,
    threshold   double precision NOT NULL,
    summary     text             NOT NULL,
    started_at  timestamptz      NOT NULL,
    fired_at    timestamptz,
    resolved_at timestamptz,
    updated_at  timestamptz      NOT NULL DEFAULT now()
);
COMMENT ON TABLE alerts IS 'Alerts raised by the pitstop daemon: pending -> firing -> resolved, one row per episode';
CREATE UNIQUE INDEX alerts_open ON alerts (rule, labels) WHERE state <> 'resolved';
CREATE INDEX alerts_started_at ON alerts (started_at);

-- One row per run of a job (action = 'run', target NULL) and one per action it took.
CREATE TABLE maintenance_log (
    id          bigserial        PRIMARY KEY,
    run_id      bigint           NOT NULL,
    job         text             NOT NULL,
    action      text             NOT NULL,
    target      text,
    command     text,
    started_at  timestamptz      NOT NULL,
    duration_ms double precision,
    outcome     text             NOT NULL CHECK (outcome IN ('running', 'ok', 'failed', 'skipped', 'cancelled')),
    attempt     integer          NOT NULL DEFAULT 1,
    error       text,
    detail      text
);
COMMENT ON TABLE maintenance_log IS 'Every maintenance run and action of the pitstop daemon, with its outcome';
CREATE INDEX maintenance_log_started_at ON maintenance_log (started_at);
CREATE INDEX maintenance_log_run ON maintenance_log (run_id);

-- Snapshots of pg_stat_statements, for regression detection between two points in time.
CREATE TABLE query_snapshots (
    captured_at        timestamptz      NOT NULL,
    dbid               oid              NOT NULL,
    userid             oid              NOT NULL,
    queryid            bigint           NOT NULL,
    query              text,
    calls              bigint           NOT NULL,
    total_exec_time_ms double precision NOT NULL,
    mean_exec_time_ms  double precision NOT NULL,
    rows               bigint           NOT NULL,
    shared_blks_hit    bigint           NOT NULL,
    shared_blks_read   bigint           NOT NULL,
    temp_blks_written  bigint           NOT NULL,
    -- Since 0.3.0 (its update adds the columns last, as here).
    latency            jsonb,
    stats_reset        timestamptz,
    PRIMARY KEY (captured_at, dbid, userid, queryid)
);
COMMENT ON TABLE query_snapshots IS 'pg_stat_statements snapshots taken by pitstop maintenance (job kind "snapshot")';
COMMENT ON COLUMN query_snapshots.latency IS
  'The statement''s latency histogram at the snapshot (pitstop.query_latency_histogram() as JSON), NULL when pitstop kept none';
COMMENT ON COLUMN query_snapshots.stats_reset IS
  'When pg_stat_statements was last reset as a whole (pg_stat_statements_info), so that a difference never spans a reset';
-- Since 0.5.0. One statement's snapshots (index_effect, query_history): the primary key leads
-- with the time. On 1.44 M rows the view index_effects went from 1.7 s to 13 ms.
CREATE INDEX query_snapshots_statement ON query_snapshots (dbid, queryid, userid, captured_at);

SELECT pg_catalog.pg_extension_config_dump('host_metrics', '');
SELECT pg_catalog.pg_extension_config_dump('alerts', '');
SELECT pg_catalog.pg_extension_config_dump('alerts_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('maintenance_log', '');
SELECT pg_catalog.pg_extension_config_dump('maintenance_log_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('query_snapshots', '');

GRANT SELECT ON host_metrics, alerts, maintenance_log, query_snapshots TO pg_monitor;
