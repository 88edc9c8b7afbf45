#!/usr/bin/env bash
# Redis invalidation relay: commit -> Redis key gone latency at a steady commit rate, the
# relay's maximum delivery rate, and the daemon's RSS and CPU when idle and under load.
#
# One throwaway cluster (bench/lib.sh: a private copy of the installation, pitstop preloaded)
# with TABLES tracked tables bench_w0…, one redis-server without persistence, and the release
# `pitstop run` relaying between them (PostgreSQL over its Unix socket, Redis over loopback).
# The cluster runs with synchronous_commit = off so that this machine's fsync does not bound
# the commit rate (the relay is measured, not the disk).
#   1. idle     the daemon connected and polling (profile balanced), nothing written, IDLE s.
#   2. latency  RATE commits/s for DURATION s from WRITERS writers on an even open-loop
#               schedule (tests/examples/relay_load.rs), each table written every TABLES/RATE
#               s: before each single-row INSERT (autocommit) the writer registers a fresh key
#               under the table's tag (SET + SADD pitstop:tag:…); Redis keyspace notifications
#               time its deletion. Percentiles from
#               COMMIT sent and from COMMIT acknowledged to key gone; daemon CPU over the window.
#   3. drain    with the daemon stopped and the outbox emptied, pgbench commits ROWS single-row
#               transactions spread over the TABLES tables; the daemon is started and
#               /metrics is polled until it delivered them all: invalidations/s after the first
#               batch, per profile in DRAIN_PROFILES (batch 1000 / 5000).
# Not a test (not run by CI); numbers go to BENCHMARKS.md with the machine they ran on.
#
# Usage: bash bench/relay.sh   (env: RATE, DURATION, WRITERS, TABLES, IDLE, ROWS, DRAIN_PROFILES,
#                               PORT, REDIS_PORT, PITSTOP_BENCH_DIR)
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/lib.sh

RATE="${RATE:-1000}"; DURATION="${DURATION:-30}"; WRITERS="${WRITERS:-8}"; TABLES="${TABLES:-40}"; IDLE="${IDLE:-30}"
ROWS="${ROWS:-200000}"; DRAIN_PROFILES="${DRAIN_PROFILES:-balanced aggressive}"
DIR="${PITSTOP_BENCH_DIR:-/tmp/pitstop-relay-bench}"; PORT="${PORT:-55720}"; REDIS_PORT="${REDIS_PORT:-55721}"

cargo build --release -q -p pitstop-daemon
cargo build --release -q -p pitstop-tests --example relay_load
PITSTOP="$PWD/target/release/pitstop"; LOAD="$PWD/target/release/examples/relay_load"

# synchronous_commit = off: the commit rate must not be bounded by this machine's fsync (the
# relay is measured, not the disk); NOTIFY and visibility still happen at commit.
private_cluster "$DIR" "$PORT" "shared_preload_libraries = 'pitstop'
max_connections = 100
shared_buffers = 256MB
synchronous_commit = off"
redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save "" --appendonly no --dir "$DIR" \
    --daemonize yes --pidfile "$DIR/redis.pid" --logfile "$DIR/redis.log"
daemon_pid=""
cleanup() {
    [ -n "$daemon_pid" ] && kill "$daemon_pid" 2>/dev/null && wait "$daemon_pid" 2>/dev/null
    redis-cli -p "$REDIS_PORT" shutdown nosave >/dev/null 2>&1 || true
    stop_private_cluster "$DIR"; rm -rf "$DIR"
}
trap cleanup EXIT

PGOPTIONS="-c client_min_messages=warning" bench_psql -c "CREATE EXTENSION pitstop" \
    -c "DO \$\$ BEGIN FOR i IN 0..$((TABLES - 1)) LOOP
            EXECUTE format('CREATE TABLE bench_w%s (v int)', i);
            PERFORM pitstop.cache_track(format('bench_w%s', i)::regclass);
        END LOOP; END \$\$" \
    -c "CREATE FUNCTION bench_write(w int) RETURNS void LANGUAGE plpgsql AS
        \$\$ BEGIN EXECUTE format('INSERT INTO bench_w%s VALUES (1)', w); END \$\$"

CLK="$(getconf CLK_TCK)"
cpu_percent() { echo "($2 - $1) / $CLK / ($4 - $3) * 100" | bc -l; } # ticks0 ticks1 t0 t1

start_daemon() { # profile
    start_daemon_with "$(printf 'profile = "%s"\n[postgres]\ndsn = "host=%s port=%s user=postgres dbname=postgres"\n[redis]\nurl = "redis://127.0.0.1:%s/"\n[http]\nlisten = "127.0.0.1:0"' \
        "$1" "$DIR" "$PORT" "$REDIS_PORT")" '"relay":{"state":"up"'
}

echo "machine: $(nproc) cores, $(free -g | awk '/^Mem/ {print $2}') GiB; $(redis-server --version | cut -d' ' -f3); PostgreSQL $(pg_config --version | cut -d' ' -f2)"

# 1. idle
start_daemon balanced
sleep 2
t0=$(now); c0=$(cpu_ticks "$daemon_pid"); sleep "$IDLE"; c1=$(cpu_ticks "$daemon_pid"); t1=$(now)
printf "idle (%ss): CPU %.3f%% of a core, RSS %s kB\n" "$IDLE" "$(cpu_percent "$c0" "$c1" "$t0" "$t1")" "$(status_kb "$daemon_pid" VmRSS)"

# 2. latency at a steady commit rate
backend=$(bench_psql -Atc "SELECT pid FROM pg_stat_activity WHERE application_name = 'pitstop-relay'")
t0=$(now); c0=$(cpu_ticks "$daemon_pid"); b0=$(cpu_ticks "$backend")
"$LOAD" latency --dsn "host=$DIR port=$PORT user=postgres dbname=postgres" --redis "redis://127.0.0.1:$REDIS_PORT/" \
    --rate "$RATE" --seconds "$DURATION" --writers "$WRITERS" --tables "$TABLES"
c1=$(cpu_ticks "$daemon_pid"); b1=$(cpu_ticks "$backend"); t1=$(now)
printf "under %s commits/s: CPU %.1f%% of a core, RSS %s kB (peak %s kB); its PostgreSQL backend: CPU %.1f%% of a core\n" \
    "$RATE" "$(cpu_percent "$c0" "$c1" "$t0" "$t1")" "$(status_kb "$daemon_pid" VmRSS)" "$(status_kb "$daemon_pid" VmHWM)" \
    "$(cpu_percent "$b0" "$b1" "$t0" "$t1")"
stop_daemon

# 3. maximum delivery rate: a backlog of ROWS committed invalidations
cat > "$DIR/write.sql" <<EOF
\set w random(0, $((TABLES - 1)))
SELECT bench_write(:w);
EOF
for profile in $DRAIN_PROFILES; do
    bench_psql -c "DELETE FROM pitstop.invalidation_outbox" -c "VACUUM ANALYZE pitstop.invalidation_outbox"
    "$BIN/pgbench" -n -c 4 -j 2 -t $((ROWS / 4)) -f "$DIR/write.sql" postgres >/dev/null
    backlog=$(bench_psql -Atc "SELECT count(*) FROM pitstop.invalidation_outbox")
    start_daemon "$profile"
    t0=$(now); c0=$(cpu_ticks "$daemon_pid")
    printf "drain %s rows (profile %s): " "$backlog" "$profile"
    "$LOAD" drain --metrics-port "$HTTP_PORT" --rows "$backlog"
    c1=$(cpu_ticks "$daemon_pid"); t1=$(now)
    printf "  daemon CPU %.0f%% of a core, peak RSS %s kB\n" "$(cpu_percent "$c0" "$c1" "$t0" "$t1")" "$(status_kb "$daemon_pid" VmHWM)"
    stop_daemon
done
