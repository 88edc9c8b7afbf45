#!/usr/bin/env bash
# Overhead of preloading pitstop, measured side by side in one run.
#   1. pgbench TPC-B and select-only, scale $SCALE, with and without pitstop preloaded
#      (pitstop.slow_query_ms = 1000, so nothing is captured), configurations alternating
#      round by round so drift hits both; medians and ratios reported.
#   2. Cost per captured statement: select-only with one client, slow_query_ms = -1 (off)
#      versus 0 (every statement captured, plan included).
# Usage: bash bench/overhead.sh   (env: ROUNDS, DURATION, SCALE, CLIENTS)
set -euo pipefail
cd "$(dirname "$0")/.."

ROUNDS="${ROUNDS:-5}"; DURATION="${DURATION:-20}"; SCALE="${SCALE:-10}"; CLIENTS="${CLIENTS:-4}"
DIR="${PITSTOP_BENCH_DIR:-/tmp/pitstop-bench}"; DATA="$DIR/data"; PORT="${PORT:-55632}"
BIN="$(pg_config --bindir)"
as_postgres() { if [ "$(id -u)" -eq 0 ]; then sudo -u postgres -- "$@"; else "$@"; fi; }
pg() { as_postgres "$BIN/pg_ctl" "$@" -D "$DATA" -l "$DIR/server.log" -w >/dev/null; }
export PGHOST=127.0.0.1 PGPORT="$PORT" PGUSER=postgres PGDATABASE=postgres

[ -f "$DATA/postmaster.pid" ] && pg stop -m fast || true
rm -rf "$DIR"; mkdir -p "$DIR"; [ "$(id -u)" -eq 0 ] && chown postgres "$DIR"
as_postgres "$BIN/initdb" -D "$DATA" -U postgres --auth=trust >/dev/null
cat <<CONF | as_postgres tee -a "$DATA/postgresql.conf" >/dev/null
port = $PORT
listen_addresses = '127.0.0.1'
unix_socket_directories = '$DIR'
shared_buffers = 512MB
max_wal_size = 4GB
include_if_exists = '$DIR/preload.conf'
CONF

configure() { # $1 = preload list, $2 = slow_query_ms
    printf "shared_preload_libraries = '%s'\npitstop.slow_query_ms = %s\n" "$1" "$2" \
        | as_postgres tee "$DIR/preload.conf" >/dev/null
    if [ -f "$DATA/postmaster.pid" ]; then pg restart -m fast; else pg start; fi
}
tps() { # extra pgbench args...
    "$BIN/pgbench" -n -T "$DURATION" "$@" 2>/dev/null | awk '/^tps/ {print $3; exit}'
}
median() { sort -n | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }

configure "" 1000
"$BIN/pgbench" -i -q -s "$SCALE" >/dev/null 2>&1
declare -A results
for round in $(seq 1 "$ROUNDS"); do
    for cfg in base pitstop; do
        if [ "$cfg" = base ]; then configure "" 1000; else configure "pitstop" 1000; fi
        tps -c "$CLIENTS" -j 2 -T 3 >/dev/null   # warm-up after restart
        results[$cfg-tpcb]+="$(tps -c "$CLIENTS" -j 2) "
        results[$cfg-select]+="$(tps -S -c "$CLIENTS" -j 2) "
    done
    echo "round $round of $ROUNDS done" >&2
done
for round in $(seq 1 "$ROUNDS"); do
    for ms in -1 0; do
        configure "pitstop" "$ms"
        tps -S -c 1 -T 3 >/dev/null
        results[capture$ms]+="$(tps -S -c 1) "
    done
done

m() { tr ' ' '\n' <<<"${results[$1]}" | grep -v '^$' | median; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.4f", a / b}'; }
echo
echo "machine: $(nproc) cores, $(free -g | awk '/Mem/ {print $2}') GiB, $(uname -r); PostgreSQL $("$BIN/postgres" --version | awk '{print $3}')"
echo "method: pgbench scale $SCALE, $CLIENTS clients, ${DURATION}s per run, $ROUNDS alternating rounds"
echo
echo "| workload | without pitstop (TPS, median) | with pitstop (TPS, median) | ratio | all runs without / with |"
echo "|---|---|---|---|---|"
for w in tpcb select; do
    echo "| $w | $(m base-$w) | $(m pitstop-$w) | $(ratio "$(m pitstop-$w)" "$(m base-$w)") | ${results[base-$w]}/ ${results[pitstop-$w]}|"
done
off="$(m capture-1)"; on="$(m capture0)"
echo
echo "| select-only, 1 client | TPS median | µs per statement |"
echo "|---|---|---|"
echo "| capture off (slow_query_ms = -1) | $off | $(awk -v t="$off" 'BEGIN {printf "%.1f", 1e6 / t}') |"
echo "| capture every statement (slow_query_ms = 0) | $on | $(awk -v t="$on" 'BEGIN {printf "%.1f", 1e6 / t}') |"
echo "| cost per captured statement | | $(awk -v a="$on" -v b="$off" 'BEGIN {printf "%.1f", 1e6 / a - 1e6 / b}') |"
pg stop -m fast
rm -rf "$DIR"
