#!/usr/bin/env bash
# Overhead of preloading pitstop, measured as paired ratios on one machine in one run.
#
# Two clusters run side by side with the same pgbench data: "base" (nothing preloaded) and
# "pitstop" (pitstop preloaded, pitstop.slow_query_ms = 1000, so nothing is captured). Each
# round runs the same workload against both, back to back, in alternating order, and
# records the ratio pitstop/base; the median ratio over rounds cancels most of the drift a
# shared VM has between rounds (a single run varies by ±15 % here).
# Then the cost of capturing: select-only, one client, on the pitstop cluster with
# slow_query_ms = -1 (off) versus 0 (every statement captured with its plan), paired the same way.
#
# Usage: bash bench/overhead.sh   (env: ROUNDS, CAPTURE_ROUNDS, DURATION, SCALE, CLIENTS)
set -euo pipefail
cd "$(dirname "$0")/.."

ROUNDS="${ROUNDS:-15}"; CAPTURE_ROUNDS="${CAPTURE_ROUNDS:-10}"; DURATION="${DURATION:-8}"
SCALE="${SCALE:-10}"; CLIENTS="${CLIENTS:-4}"
# PRELOAD="" runs an A/A control (both clusters without pitstop) to show the method's own bias.
PRELOAD="${PRELOAD-pitstop}"; WORKLOADS="${WORKLOADS:-tpcb select}"
DIR="${PITSTOP_BENCH_DIR:-/tmp/pitstop-bench}"; PORT_BASE="${PORT:-55632}"
BIN="$(pg_config --bindir)"
as_postgres() { if [ "$(id -u)" -eq 0 ]; then sudo -u postgres -- "$@"; else "$@"; fi; }
port_of() { if [ "$1" = base ]; then echo "$PORT_BASE"; else echo $((PORT_BASE + 1)); fi; }
export PGHOST=127.0.0.1 PGUSER=postgres PGDATABASE=postgres

stop_all() {
    for c in base pitstop; do
        [ -f "$DIR/$c/postmaster.pid" ] && as_postgres "$BIN/pg_ctl" stop -D "$DIR/$c" -m fast -w >/dev/null || true
    done
}
stop_all
rm -rf "$DIR"; mkdir -p "$DIR"; [ "$(id -u)" -eq 0 ] && chown postgres "$DIR"
trap 'stop_all; rm -rf "$DIR"' EXIT

for c in base pitstop; do
    as_postgres "$BIN/initdb" -D "$DIR/$c" -U postgres --auth=trust >/dev/null
    preload=""; [ "$c" = pitstop ] && preload="$PRELOAD"
    cat <<CONF | as_postgres tee -a "$DIR/$c/postgresql.conf" >/dev/null
port = $(port_of $c)
listen_addresses = '127.0.0.1'
unix_socket_directories = '$DIR'
shared_buffers = 256MB
max_wal_size = 4GB
shared_preload_libraries = '$preload'
CONF
    [ "$c" = pitstop ] && echo "pitstop.slow_query_ms = 1000" | as_postgres tee -a "$DIR/$c/postgresql.conf" >/dev/null
    as_postgres "$BIN/pg_ctl" start -D "$DIR/$c" -l "$DIR/$c.log" -w >/dev/null
    PGPORT="$(port_of $c)" "$BIN/pgbench" -i -q -s "$SCALE" >/dev/null 2>&1
done

tps() { # cluster, pgbench args...
    local port; port="$(port_of "$1")"; shift
    PGPORT="$port" "$BIN/pgbench" -n -T "$DURATION" "$@" 2>/dev/null | awk '/^tps/ {print $3; exit}'
}
median() { sort -g | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
declare -A runs ratios
for c in base pitstop; do tps "$c" -c "$CLIENTS" -j 2 -T 5 >/dev/null; done   # warm-up
for round in $(seq 1 "$ROUNDS"); do
    order="base pitstop"; [ $((round % 2)) -eq 0 ] && order="pitstop base"
    for workload in $WORKLOADS; do
        args=(-c "$CLIENTS" -j 2); [ "$workload" = select ] && args+=(-S)
        declare -A this
        for c in $order; do this[$c]="$(tps "$c" "${args[@]}")"; runs[$c-$workload]+="${this[$c]} "; done
        ratios[$workload]+="$(awk -v p="${this[pitstop]}" -v b="${this[base]}" 'BEGIN {printf "%.4f", p / b}') "
    done
    echo "round $round/$ROUNDS done" >&2
done

set_capture() { # slow_query_ms
    PGPORT="$(port_of pitstop)" psql -qAt -c "ALTER SYSTEM SET pitstop.slow_query_ms = $1" -c "SELECT pg_reload_conf()" >/dev/null
    sleep 0.5
}
[ "$PRELOAD" = pitstop ] || CAPTURE_ROUNDS=0
for round in $(seq 1 "$CAPTURE_ROUNDS"); do
    order="-1 0"; [ $((round % 2)) -eq 0 ] && order="0 -1"
    declare -A cap
    for ms in $order; do set_capture "$ms"; cap[$ms]="$(tps pitstop -S -c 1)"; runs[capture$ms]+="${cap[$ms]} "; done
    ratios[cost]+="$(awk -v on="${cap[0]}" -v off="${cap[-1]}" 'BEGIN {printf "%.2f", 1e6 / on - 1e6 / off}') "
done

m() { tr ' ' '\n' <<<"$1" | grep -v '^$' | median; }
range() { tr ' ' '\n' <<<"$1" | grep -v '^$' | sort -g | awk 'NR==1 {lo=$1} {hi=$1} END {printf "%s – %s", lo, hi}'; }
echo
echo "machine: $(nproc) cores, $(free -g | awk '/Mem/ {print $2}') GiB RAM, kernel $(uname -r), PostgreSQL $("$BIN/postgres" --version | awk '{print $3}')"
echo "preload of the second cluster: '$PRELOAD'"
echo "method: pgbench scale $SCALE, $CLIENTS clients / 2 threads, ${DURATION}s per run, $ROUNDS paired rounds (alternating order)"
echo
echo "| workload | base TPS (median) | pitstop TPS (median) | pitstop/base, median of paired ratios | ratio range |"
echo "|---|---|---|---|---|"
for w in $WORKLOADS; do
    echo "| $w | $(m "${runs[base-$w]}") | $(m "${runs[pitstop-$w]}") | $(m "${ratios[$w]}") | $(range "${ratios[$w]}") |"
done
[ "$CAPTURE_ROUNDS" -gt 0 ] || exit 0
echo
echo "| select-only, 1 client, $CAPTURE_ROUNDS paired rounds | TPS (median) |"
echo "|---|---|"
echo "| capture off (slow_query_ms = -1) | $(m "${runs[capture-1]}") |"
echo "| every statement captured (slow_query_ms = 0) | $(m "${runs[capture0]}") |"
echo "| cost per captured statement, µs (median of paired differences) | $(m "${ratios[cost]}") (range $(range "${ratios[cost]}")) |"
