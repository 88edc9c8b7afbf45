#!/usr/bin/env bash
# `pitstop bench` against pgbench on pgbench's own TPC-B (tpcb-like) transaction.
#
# A private cluster (bench/lib.sh, nothing preloaded) with `pgbench -i -s $SCALE`. For each
# client count, ROUNDS rounds each run pgbench and `pitstop bench -b tpcb-like` (release
# build) for DURATION seconds, in alternating order, both over the Unix socket, both with
# one client thread (-j 1) and the simple query protocol (pgbench's default; MODE=prepared
# runs both with prepared statements). Per run: TPS, and the client's CPU (user + system
# time of the client process from getrusage, i.e. /proc/PID/stat's utime + stime at exit)
# per transaction, and its voluntary context switches per transaction (each time it slept
# waiting for the server: one per statement is the least). Reported: the median over rounds
# of the paired ratio pitstop/pgbench, and the medians per transaction of each client; the
# load average of the machine around the runs (others share it).
#
# CALLGRIND=1 instead counts the client's user-space instructions per transaction (valgrind
# callgrind, 1 client, both protocols): the slope between a SHORT and a LONG run (seconds), so
# start-up is not counted. Instruction counts do not depend on the machine's load.
#
# Usage: bash bench/bench_vs_pgbench.sh   (env: ROUNDS, DURATION, SCALE, CLIENT_COUNTS, MODE,
#        CALLGRIND, SHORT, LONG)
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/lib.sh

ROUNDS="${ROUNDS:-3}"; DURATION="${DURATION:-10}"; SCALE="${SCALE:-10}"
CLIENT_COUNTS="${CLIENT_COUNTS:-1 2 4 8}"; MODE="${MODE:-simple}"
DIR="${PITSTOP_BENCH_DIR:-/tmp/pitstop-bench-vs-pgbench}"; PORT="${PORT:-55741}"
PITSTOP="${PITSTOP:-${CARGO_TARGET_DIR:-target}/release/pitstop}"
[ -x "$PITSTOP" ] || { echo "$PITSTOP missing: cargo build --release -p pitstop-daemon" >&2; exit 1; }

private_cluster "$DIR" "$PORT" "max_connections = 50"
trap 'stop_private_cluster "$DIR"; rm -rf "$DIR"' EXIT
"$BIN/pgbench" -i -q -s "$SCALE" postgres >/dev/null 2>&1
out="$DIR/out"; mkdir -p "$out"

prepared_pgbench=(); prepared_pitstop=()
if [ "$MODE" = prepared ]; then prepared_pgbench=(-M prepared); prepared_pitstop=(--prepared); fi

# run_client KIND CLIENTS ROUND: one run; prints "tps transactions cpu_seconds voluntary_switches".
run_client() {
    local kind="$1" c="$2" r="$3" f="$out/$1-$2-$3"
    if [ "$kind" = pgbench ]; then
        /usr/bin/time -f "%U %S %w" -o "$f.time" "$BIN/pgbench" -n "${prepared_pgbench[@]}" -b tpcb-like -c "$c" -j 1 -T "$DURATION" postgres >"$f.out" 2>"$f.err"
        tps=$(awk '/^tps = / {print $3}' "$f.out")
        tx=$(awk -F': ' '/^number of transactions actually processed/ {print $2}' "$f.out" | cut -d/ -f1)
    else
        /usr/bin/time -f "%U %S %w" -o "$f.time" "$PITSTOP" bench "${prepared_pitstop[@]}" -b tpcb-like -c "$c" -j 1 -T "${DURATION}s" --json >"$f.out" 2>"$f.err"
        tps=$(jq -r '.tps' "$f.out")
        tx=$(jq -r '.transactions' "$f.out")
    fi
    echo "$tps $tx $(awk '{print $1 + $2, $3}' "$f.time")"
}

# callgrind_run KIND MODE SECONDS: prints "instructions transactions" of one run under callgrind.
callgrind_run() {
    local kind="$1" mode="$2" t="$3" f="$out/cg-$1-$2-$3" flag=()
    if [ "$kind" = pgbench ]; then
        [ "$mode" = prepared ] && flag=(-M prepared)
        valgrind --tool=callgrind --callgrind-out-file=/dev/null "$BIN/pgbench" -n "${flag[@]}" -b tpcb-like -c 1 -j 1 -T "$t" postgres >"$f.out" 2>"$f.err"
        tx=$(awk -F': ' '/^number of transactions actually processed/ {print $2}' "$f.out" | cut -d/ -f1)
    else
        [ "$mode" = prepared ] && flag=(--prepared)
        valgrind --tool=callgrind --callgrind-out-file=/dev/null "$PITSTOP" bench "${flag[@]}" -b tpcb-like -c 1 -j 1 -T "${t}s" --json >"$f.out" 2>"$f.err"
        tx=$(jq -r '.transactions' "$f.out")
    fi
    echo "$(grep -o 'Collected : [0-9]*' "$f.err" | grep -o '[0-9]*') $tx"
}

if [ "${CALLGRIND:-0}" = 1 ]; then
    SHORT="${SHORT:-2}"; LONG="${LONG:-6}"
    echo "client instructions per tpcb-like transaction (callgrind, user space, 1 client, slope between ${SHORT} s and ${LONG} s runs)"
    printf "%-10s %16s %16s\n" protocol pgbench pitstop
    for mode in prepared simple; do
        row=()
        for kind in pgbench pitstop; do
            read -r i1 t1 < <(callgrind_run "$kind" "$mode" "$SHORT")
            read -r i2 t2 < <(callgrind_run "$kind" "$mode" "$LONG")
            row+=("$(awk -v a="$i1" -v b="$i2" -v x="$t1" -v y="$t2" 'BEGIN {printf "%.1f k", (b - a) / (y - x) / 1000}')")
        done
        printf "%-10s %16s %16s\n" "$mode" "${row[@]}"
    done
    exit 0
fi

median() { sort -g | awk '{a[NR] = $1} END {print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2}'; }

echo "pitstop bench vs pgbench: tpcb-like, scale $SCALE, $MODE protocol, $ROUNDS rounds x ${DURATION} s, alternating order"
echo "machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.1f GB", $2 / 1048576}' /proc/meminfo), $(uname -r); load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
printf "%-8s %12s %12s %10s %16s %16s %12s %12s %18s\n" clients pgbench_tps pitstop_tps ratio pgbench_cpu_us pitstop_cpu_us pgbench_cs pitstop_cs "load (1 min)"
for c in $CLIENT_COUNTS; do
    for f in ratios cpu-pgbench cpu-pitstop cs-pgbench cs-pitstop tps-pgbench tps-pitstop load; do : > "$out/$f-$c"; done
    for r in $(seq 1 "$ROUNDS"); do
        if [ $((r % 2)) -eq 1 ]; then order="pgbench pitstop"; else order="pitstop pgbench"; fi
        for kind in $order; do
            read -r tps tx cpu switches < <(run_client "$kind" "$c" "$r")
            echo "$tps" >> "$out/tps-$kind-$c"
            awk -v cpu="$cpu" -v tx="$tx" 'BEGIN {printf "%.2f\n", cpu * 1e6 / tx}' >> "$out/cpu-$kind-$c"
            awk -v n="$switches" -v tx="$tx" 'BEGIN {printf "%.2f\n", n / tx}' >> "$out/cs-$kind-$c"
            cut -d' ' -f1 /proc/loadavg >> "$out/load-$c"
        done
        paste -d' ' <(tail -1 "$out/tps-pitstop-$c") <(tail -1 "$out/tps-pgbench-$c") | awk '{printf "%.4f\n", $1 / $2}' >> "$out/ratios-$c"
    done
    printf "%-8s %12.1f %12.1f %10.3f %16.1f %16.1f %12.2f %12.2f %18s\n" "$c" \
        "$(median < "$out/tps-pgbench-$c")" "$(median < "$out/tps-pitstop-$c")" "$(median < "$out/ratios-$c")" \
        "$(median < "$out/cpu-pgbench-$c")" "$(median < "$out/cpu-pitstop-$c")" \
        "$(median < "$out/cs-pgbench-$c")" "$(median < "$out/cs-pitstop-$c")" \
        "$(sort -g "$out/load-$c" | sed -n '1p;$p' | paste -sd- -)"
done
echo "ratio: median over rounds of pitstop_tps / pgbench_tps (paired, same round); cpu: client user+system CPU per transaction, median; cs: the client's voluntary context switches per transaction, median"
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
