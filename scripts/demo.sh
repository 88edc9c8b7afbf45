#!/usr/bin/env bash
# pitstop demo: a throwaway cluster with pitstop preloaded, a skewed shop data set and a
# mixed workload, then the slow-query, top-query, plan advice, index advice, health and
# maintenance-plan reports, and the result cache.
#   scripts/demo.sh start   (what `make demo` runs; assumes the extension is installed)
#   scripts/demo.sh stop
set -euo pipefail
cd "$(dirname "$0")/.."

DEMO_DIR="${PITSTOP_DEMO_DIR:-/tmp/pitstop-demo}"
DATA="$DEMO_DIR/data"
PITSTOP="${PITSTOP_BIN:-$PWD/target/release/pitstop}"
BIN="$(pg_config --bindir)"
WORKLOAD_SECONDS="${PITSTOP_DEMO_SECONDS:-30}"

as_postgres() { if [ "$(id -u)" -eq 0 ]; then sudo -u postgres -- "$@"; else "$@"; fi; }
say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

stop() {
    if [ -f "$DEMO_DIR/daemon.pid" ]; then
        kill "$(cat "$DEMO_DIR/daemon.pid")" 2>/dev/null || true
    fi
    if [ -f "$DATA/postmaster.pid" ]; then
        as_postgres "$BIN/pg_ctl" stop -D "$DATA" -m fast >/dev/null || true
    fi
    rm -rf "$DEMO_DIR"
}

free_port() {
    for port in $(seq 55432 55532); do
        if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then echo "$port"; return; fi
    done
    echo "no free port in 55432-55532" >&2; exit 1
}

workload() {
    local w=sql/demo/workload
    "$BIN/pgbench" -n -c 4 -j 2 -T "$WORKLOAD_SECONDS" \
        -f "$w/customer_lookup.sql@60" -f "$w/ship_order.sql@30" -f "$w/customer_orders.sql@8" \
        -f "$w/revenue_report.sql@1" -f "$w/open_orders_events.sql@1" 2>/dev/null \
        | grep -E "^(number of transactions actually processed|tps)" || true
}

# The daemon's statement snapshot job, run once from the CLI.
snapshot() {
    "$PITSTOP" maintenance --job snapshot --yes --config "$DEMO_DIR/pitstop.toml" | tail -n 1
}

start() {
    stop
    mkdir -p "$DEMO_DIR"
    [ "$(id -u)" -eq 0 ] && chown postgres "$DEMO_DIR"
    PORT="$(free_port)"
    say "Starting a throwaway PostgreSQL on 127.0.0.1:$PORT ($DATA)"
    as_postgres "$BIN/initdb" -D "$DATA" -U postgres --auth=trust -E UTF8 --locale=C >/dev/null
    cat <<CONF | as_postgres tee -a "$DATA/postgresql.conf" >/dev/null
port = $PORT
listen_addresses = '127.0.0.1'
unix_socket_directories = '$DEMO_DIR'
shared_preload_libraries = 'pg_stat_statements,pitstop'
compute_query_id = on
pitstop.slow_query_ms = 100
pitstop.capture_analyze = on
shared_buffers = 256MB
work_mem = 4MB
CONF
    as_postgres "$BIN/pg_ctl" start -w -D "$DATA" -l "$DEMO_DIR/server.log" >/dev/null
    export PGHOST=127.0.0.1 PGPORT="$PORT" PGUSER=postgres PGDATABASE=pitstop_demo
    psql -q -d postgres -c "CREATE DATABASE pitstop_demo"
    psql -q -c "CREATE EXTENSION pg_stat_statements; CREATE EXTENSION pitstop;"

    say "Loading the shop data set (50k customers, 800k orders, power-law skew)"
    psql -q -f sql/demo/schema.sql
    psql -q -c "SELECT pg_stat_statements_reset(); SELECT pitstop.slow_queries_reset();" >/dev/null

    say "Running a mixed workload for ${WORKLOAD_SECONDS}s (pgbench, 4 clients)"
    workload

    say "pitstop report slow-queries   (statements over pitstop.slow_query_ms = 100 ms)"
    "$PITSTOP" report slow-queries --limit 10
    say "pitstop report top-queries --sort total_time"
    "$PITSTOP" report top-queries --limit 8
    # Advice for the two slowest kinds of statement captured (one example of each).
    { psql -Atc "SELECT query FROM (SELECT DISTINCT ON (queryid) queryid, query, duration_ms
                                    FROM pitstop.slow_queries ORDER BY queryid, duration_ms DESC) s
               ORDER BY duration_ms DESC LIMIT 2" -R $'\x1e' || true; } | tr '\n\036' ' \n' > "$DEMO_DIR/advice.txt"
    echo >> "$DEMO_DIR/advice.txt"
    while IFS= read -r statement; do
        [ -n "$statement" ] || continue
        say "pitstop report advice --analyze  (a captured slow statement)"
        echo "$statement"
        "$PITSTOP" report advice "$statement" --analyze --wide
    done < "$DEMO_DIR/advice.txt"
    say "The captured plan of that statement is in SQL:"
    echo "  SELECT duration_ms, plan FROM pitstop.slow_queries ORDER BY duration_ms DESC LIMIT 1;"

    say "pitstop report indexes   (pitstop.suggest_indexes over the workload pg_stat_statements saw)"
    "$PITSTOP" report indexes
    say "pitstop report unhelped  (statements no suggested index helps, and why)"
    "$PITSTOP" report unhelped
    say "pitstop report index-health --with-advice   (a foreign key the advice above serves points at it)"
    "$PITSTOP" report index-health --with-advice

    say "pitstop report vacuum   (pitstop.vacuum_health: what autovacuum has not caught up with)"
    "$PITSTOP" report vacuum
    say "pitstop report bloat    (pitstop.table_bloat, estimated from statistics)"
    "$PITSTOP" report bloat
    say "pitstop report config --workload oltp   (pitstop.config_advice for this host)"
    "$PITSTOP" report config --workload oltp
    say "pitstop maintenance --dry-run   (pitstop.maintenance_plan: what a maintenance run would do now)"
    "$PITSTOP" maintenance --dry-run

    say "Did the index help? Build the top suggestion, run the same workload again (pitstop report index-effect)"
    HTTP_PORT="$(free_port)"
    cat >"$DEMO_DIR/pitstop.toml" <<TOML
[postgres]
dsn = "host=127.0.0.1 port=$PORT user=postgres dbname=pitstop_demo"

[http]
listen = "127.0.0.1:$HTTP_PORT"
console = true

[[maintenance.jobs]]
name = "snapshot"
kind = "snapshot"
schedule = "0 * * * *"
TOML
    snapshot
    ddl="$(psql -Atc "SELECT ddl FROM pitstop.index_suggestions WHERE index_oid IS NULL
                      ORDER BY improvement_pct DESC NULLS LAST LIMIT 1")"
    if [ -n "$ddl" ]; then
        echo "$ddl"
        psql -q -c "$ddl"
        snapshot
        workload
        snapshot
        "$PITSTOP" report index-effect
    else
        echo "(no suggestion remembered: nothing to build)"
    fi

    say "Result cache: the same report twice, a write, then again (pitstop.cached)"
    cached="SELECT * FROM pitstop.cached('select status, count(*) from shop.orders group by status order by status')
            AS t(status text, orders int8)"
    psql -c '\timing on' -c "$cached" -c "$cached" \
         -c "UPDATE shop.orders SET status = 'cancelled' WHERE id = (SELECT min(id) FROM shop.orders WHERE status = 'open')" \
         -c "$cached" \
         -c "SELECT hits, misses, fills, invalidations, entries, hit_ratio FROM pitstop.cache_stats()"

    say "pitstop bench: the demo workload for 10 s, 3 clients; the client's percentiles next to the server's (pitstop.query_latency)"
    # pitstop.query_latency counts since its last reset: reset, so both sides see the same calls.
    psql -q -c "SELECT pitstop.query_latency_reset()" >/dev/null
    w=sql/demo/workload
    PGSSLMODE=disable "$PITSTOP" bench -c 3 -T 10s --save "$DEMO_DIR/bench.json" \
        -f "$w/customer_lookup.sql@60" -f "$w/ship_order.sql@30" -f "$w/customer_orders.sql@8" \
        -f "$w/revenue_report.sql@1" -f "$w/open_orders_events.sql@1" || true
    # The agreement in one line: per statement, client minus server at p50 and p95 (the client's
    # time includes the round trip; the server's histogram is within 2 %).
    BENCH_NOTE="$(jq -r '[.statements[] | select(.server_p50_ms != null and .client_p50_ms != null and .server_p95_ms != null and .client_p95_ms != null)] as $s
        | if ($s | length) == 0 then "no statement with both views"
          else "\($s | length) statements; client - server: p50 \([$s[] | .client_p50_ms - .server_p50_ms] | min * 100 | round / 100) to \([$s[] | .client_p50_ms - .server_p50_ms] | max * 100 | round / 100) ms, p95 \([$s[] | .client_p95_ms - .server_p95_ms] | min * 100 | round / 100) to \([$s[] | .client_p95_ms - .server_p95_ms] | max * 100 | round / 100) ms" end' \
        "$DEMO_DIR/bench.json" 2>/dev/null || echo "not measured")"
    echo "pitstop bench against pitstop.query_latency: $BENCH_NOTE"

    say "The daemon: console, /metrics and the hourly snapshot (pitstop run)"
    setsid "$PITSTOP" run --config "$DEMO_DIR/pitstop.toml" >"$DEMO_DIR/daemon.log" 2>&1 </dev/null &
    echo $! >"$DEMO_DIR/daemon.pid"
    for _ in $(seq 1 50); do
        "$PITSTOP" status --url "http://127.0.0.1:$HTTP_PORT/status" >/dev/null 2>&1 && break
        sleep 0.2
    done
    "$PITSTOP" status --url "http://127.0.0.1:$HTTP_PORT/status" || true

    cat <<EOT

The demo cluster and the daemon keep running.
  Console:   http://127.0.0.1:$HTTP_PORT/   (over SSH: ssh -L $HTTP_PORT:127.0.0.1:$HTTP_PORT this-host)
  Connect:   psql -h 127.0.0.1 -p $PORT -U postgres pitstop_demo
  Reports:   PGHOST=127.0.0.1 PGPORT=$PORT PGUSER=postgres PGDATABASE=pitstop_demo $PITSTOP report slow-queries
  Bench:     pitstop bench vs pitstop.query_latency, same statements: $BENCH_NOTE
  Stop:      make demo-stop
EOT
}

case "${1:-start}" in
    start) start ;;
    stop) stop; echo "demo stopped" ;;
    *) echo "usage: $0 start|stop" >&2; exit 2 ;;
esac
