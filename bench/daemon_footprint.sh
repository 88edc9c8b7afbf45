#!/usr/bin/env bash
# The daemon's own footprint with monitoring on: RSS and CPU time of `pitstop run` per profile
# (monitor on, the default alert rules, the default maintenance jobs, no Redis so the relay
# is disabled), the time to serve /metrics and the / dashboard, and the rows the monitor
# writes to pitstop.host_metrics.
#
# One throwaway cluster (bench/lib.sh: a private copy of the installation, pitstop and
# pg_stat_statements preloaded, pgbench tables at scale 5) with a light read-only pgbench
# load of LOAD_TPS transactions/s running throughout, so that the PostgreSQL metrics move.
# For each entry of PROFILES, a profile name with an optional `:INTERVAL` that overrides its
# monitor.sample_interval (`aggressive:1s`):
#   1. the release `pitstop run` is started and left to settle for WARMUP s;
#   2. for DURATION s, its VmRSS is read from /proc/<pid>/status every EVERY s; its CPU time
#      (utime + stime from /proc/<pid>/stat) over the whole DURATION gives the mean CPU;
#   3. SCRAPES sequential GETs of /metrics, then of / (curl's time_total each, one connection
#      per request), and the daemon's CPU time spent while they ran;
#   4. the daemon is stopped (SIGTERM flushes the monitor's buffer) and the rows of
#      pitstop.host_metrics sampled during the DURATION s are counted, per minute and per day
#      (with the table's size per row so far: the write volume per day).
# Not a test (not run by CI); numbers go to BENCHMARKS.md with the machine they ran on.
#
# Usage: bash bench/daemon_footprint.sh
#        (env: PROFILES, DURATION, WARMUP, EVERY, SCRAPES, LOAD_TPS, PORT, PITSTOP_BENCH_DIR)
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/lib.sh

PROFILES="${PROFILES:-balanced aggressive aggressive:1s}"; DURATION="${DURATION:-180}"; WARMUP="${WARMUP:-20}"; EVERY="${EVERY:-5}"
SCRAPES="${SCRAPES:-100}"; LOAD_TPS="${LOAD_TPS:-20}"
DIR="${PITSTOP_BENCH_DIR:-/tmp/pitstop-footprint-bench}"; PORT="${PORT:-55730}"

cargo build --release -q -p pitstop-daemon
PITSTOP="$PWD/target/release/pitstop"

private_cluster "$DIR" "$PORT" "shared_preload_libraries = 'pitstop,pg_stat_statements'
max_connections = 100
shared_buffers = 128MB"
daemon_pid=""; load_pid=""
# A killed process's wait status is non-zero: under `set -e` that would end the cleanup
# before the cluster is stopped, so every step here tolerates failure.
cleanup() {
    if [ -n "$daemon_pid" ]; then kill "$daemon_pid" 2>/dev/null || true; wait "$daemon_pid" 2>/dev/null || true; fi
    if [ -n "$load_pid" ]; then kill "$load_pid" 2>/dev/null || true; wait "$load_pid" 2>/dev/null || true; fi
    stop_private_cluster "$DIR"; rm -rf "$DIR"
}
trap cleanup EXIT

PGOPTIONS="-c client_min_messages=warning" bench_psql -c "CREATE EXTENSION pitstop" -c "CREATE EXTENSION pg_stat_statements"
"$BIN/pgbench" -i -q -s 5 postgres >/dev/null 2>&1
"$BIN/pgbench" -n -S -c 2 -j 1 -R "$LOAD_TPS" -T 86400 postgres >/dev/null 2>&1 &
load_pid=$!

CLK="$(getconf CLK_TCK)"
loadavg() { cut -d' ' -f1-3 /proc/loadavg; }
start_daemon() { # profile[:sample_interval]
    local monitor=""
    [[ "$1" == *:* ]] && monitor="$(printf '\n[monitor]\nsample_interval = "%s"' "${1#*:}")"
    start_daemon_with "$(printf 'profile = "%s"\n[postgres]\ndsn = "host=%s port=%s user=postgres dbname=postgres"\n[http]\nlisten = "127.0.0.1:0"%s' \
        "${1%%:*}" "$DIR" "$PORT" "$monitor")" '"monitor":{"state":"up"'
}

# scrape PATH: "p50 p95 max" milliseconds over SCRAPES GETs, then the mean response bytes.
scrape() {
    for _ in $(seq 1 "$SCRAPES"); do
        curl -sf -o /dev/null -w '%{time_total} %{size_download}\n' "http://127.0.0.1:$HTTP_PORT$1"
    done | sort -n | awk '{ms[NR] = $1 * 1000; bytes += $2}
        END {printf "%.2f / %.2f / %.2f ms, %d B", ms[int(NR * 0.5 + 0.5)], ms[int(NR * 0.95 + 0.5)], ms[NR], bytes / NR}'
}

echo "machine: $(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//'), shared), $(free -g | awk '/^Mem/ {print $2}') GiB;" \
     "PostgreSQL $(pg_config --version | cut -d' ' -f2); load average at start $(loadavg)"
echo "method: $DURATION s per profile after $WARMUP s warm-up, RSS every $EVERY s, $SCRAPES scrapes per endpoint, read-only pgbench at $LOAD_TPS tps alongside"
echo
echo "| profile | sample interval | daemon CPU (mean, % of a core) | RSS min / mean / max | peak RSS (VmHWM) | /metrics p50 / p95 / max, size | / (dashboard) p50 / p95 / max, size | daemon CPU per scrape | host_metrics rows / min | rows / day, MB / day | load avg during run |"
echo "|---|---|---|---|---|---|---|---|---|---|---|"
for profile in $PROFILES; do
    start_daemon "$profile"
    interval=$("$PITSTOP" check-config --config "$DIR/pitstop.toml" | awk '/^sample_interval/ {gsub(/"/, "", $3); print $3; exit}')
    sleep "$WARMUP"
    pg_t0=$(bench_psql -Atc "SELECT now()")
    t0=$(now); c0=$(cpu_ticks "$daemon_pid"); rss=()
    end=$(echo "$t0 + $DURATION" | bc)
    while [ "$(echo "$(now) < $end" | bc)" -eq 1 ]; do
        rss+=("$(status_kb "$daemon_pid" VmRSS)"); sleep "$EVERY"
    done
    c1=$(cpu_ticks "$daemon_pid"); t1=$(now)
    pg_t1=$(bench_psql -Atc "SELECT now()")
    load="$(loadavg)"
    cpu=$(echo "($c1 - $c0) / $CLK / ($t1 - $t0) * 100" | bc -l)
    rss_stats=$(printf '%s\n' "${rss[@]}" | awk '{s += $1; if (NR == 1 || $1 < lo) lo = $1; if ($1 > hi) hi = $1}
        END {printf "%.1f / %.1f / %.1f MiB", lo / 1024, s / NR / 1024, hi / 1024}')

    s0=$(cpu_ticks "$daemon_pid")
    metrics=$(scrape /metrics)
    dashboard=$(scrape /)
    s1=$(cpu_ticks "$daemon_pid")
    per_scrape=$(echo "($s1 - $s0) / $CLK * 1000 / (2 * $SCRAPES)" | bc -l)
    hwm=$(status_kb "$daemon_pid" VmHWM)

    stop_daemon
    rows=$(bench_psql -Atc "SELECT count(*) FROM pitstop.host_metrics WHERE sampled_at >= '$pg_t0' AND sampled_at < '$pg_t1'")
    per_minute=$(echo "$rows * 60 / ($t1 - $t0)" | bc -l)
    row_bytes=$(bench_psql -Atc "SELECT pg_total_relation_size('pitstop.host_metrics')::float8 / greatest(count(*), 1) FROM pitstop.host_metrics")
    printf "| %s | %s | %.2f%% | %s | %.1f MiB | %s | %s | %.2f ms | %.0f | %.0f, %.0f MB | %s |\n" \
        "${profile%%:*}" "${interval:-?}" "$cpu" "$rss_stats" "$(echo "$hwm / 1024" | bc -l)" "$metrics" "$dashboard" "$per_scrape" \
        "$per_minute" "$(echo "$per_minute * 1440" | bc -l)" "$(echo "$per_minute * 1440 * $row_bytes / 1000000" | bc -l)" "$load"
done
echo
echo "host_metrics: $(bench_psql -Atc "SELECT count(*) || ' rows, ' || pg_size_pretty(pg_total_relation_size('pitstop.host_metrics')) || ' with indexes' FROM pitstop.host_metrics");" \
     "load average at end $(loadavg)"
