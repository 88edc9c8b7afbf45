#!/usr/bin/env bash
# Result cache: what a hit costs next to the cheapest query and next to the query it saves.
#
# One throwaway cluster (pitstop preloaded) holds `orders` (ROWS rows, no index on customer,
# so the underlying query is a ~20 ms sequential scan returning 10 rows). pgbench runs four
# one-statement scripts with prepared statements, CLIENTS clients each, DURATION seconds,
# alternating their order every round (ROUNDS rounds), and reports per-script median latency
# (clients / TPS: pgbench's own latency figure is rounded to 1 µs, coarse next to a 20 µs
# statement) and the ratios to SELECT 1 and uncached/hit from the same rounds:
#   select1   SELECT 1
#   srf       SELECT * FROM generate_series(1, 10) AS t(i): the floor of any set-returning
#             function call returning 10 rows, for reference
#   hit       SELECT * FROM pitstop.cached(<query>, '{42}') AS t(id int, total numeric)
#   uncached  <query> with 42
# The hit script's key is warmed first; cache_stats confirms every call was a hit.
#
# Runs from a private copy of the PostgreSQL installation (lib/bench.sh) so that installing
# pitstop meanwhile cannot crash it.
#
# Usage: bash bench/cache.sh   (env: ROWS, ROUNDS, DURATION, CLIENTS="1 2", PORT)
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/lib.sh

ROWS="${ROWS:-200000}"; ROUNDS="${ROUNDS:-7}"; DURATION="${DURATION:-5}"; CLIENTS="${CLIENTS:-1 2}"
DIR="${PITSTOP_BENCH_DIR:-/tmp/pitstop-cache-bench}"; PORT="${PORT:-55710}"

private_cluster "$DIR" "$PORT" "shared_preload_libraries = 'pitstop'
shared_buffers = 256MB
max_parallel_workers_per_gather = 0"
trap 'stop_private_cluster "$DIR"; rm -rf "$DIR"' EXIT

QUERY="select id, total from orders where customer = \$1 order by total desc, id limit 10"
bench_psql -c "CREATE EXTENSION pitstop" \
     -c "CREATE TABLE orders(id int PRIMARY KEY, customer int, total numeric)" \
     -c "INSERT INTO orders SELECT g, g % 20000, (g::int8 * 7919) % 10000 FROM generate_series(1, $ROWS) g" \
     -c "VACUUM ANALYZE orders"

scripts="$DIR/scripts"; mkdir -p "$scripts"
echo "SELECT 1;" > "$scripts/select1.sql"
echo "SELECT * FROM generate_series(1, 10) AS t(i);" > "$scripts/srf.sql"
echo "SELECT * FROM pitstop.cached('$QUERY', '{42}') AS t(id int, total numeric);" > "$scripts/hit.sql"
echo "${QUERY/\$1/42};" > "$scripts/uncached.sql"
bench_psql -f "$scripts/hit.sql" >/dev/null
bench_psql -c "SELECT pitstop.cache_clear()" -f "$scripts/hit.sql" >/dev/null

latency() { # script clients -> average latency in ms, from the TPS (pgbench prints the
    # latency itself rounded to 1 µs, coarse next to a 20 µs statement)
    "$BIN/pgbench" -n -M prepared -c "$2" -j "$2" -T "$DURATION" -f "$scripts/$1.sql" postgres 2>/dev/null |
        awk -v c="$2" '/^tps/ {printf "%.5f\n", 1000 * c / $3; exit}'
}
median() { sort -g | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }

echo "machine: $(nproc) cores, $(free -g | awk '/^Mem/ {print $2}') GiB; rows: $ROWS; rounds: $ROUNDS x ${DURATION}s"
printf "%-8s %12s %10s %10s %12s %14s %14s %14s\n" clients "SELECT 1 ms" "srf ms" "hit ms" "uncached ms" "srf/SELECT 1" "hit/SELECT 1" "uncached/hit"
for c in $CLIENTS; do
    declare -A got=()
    for round in $(seq 1 "$ROUNDS"); do
        order="select1 srf hit uncached"; [ $((round % 2)) -eq 0 ] && order="uncached hit srf select1"
        for s in $order; do got[$s]+="$(latency "$s" "$c") "; done
    done
    s1=$(tr ' ' '\n' <<<"${got[select1]}" | grep . | median)
    srf=$(tr ' ' '\n' <<<"${got[srf]}" | grep . | median)
    hit=$(tr ' ' '\n' <<<"${got[hit]}" | grep . | median)
    unc=$(tr ' ' '\n' <<<"${got[uncached]}" | grep . | median)
    printf "%-8s %12s %10s %10s %12s %14.2f %14.2f %14.1f\n" "$c" "$s1" "$srf" "$hit" "$unc" \
        "$(echo "$srf / $s1" | bc -l)" "$(echo "$hit / $s1" | bc -l)" "$(echo "$unc / $hit" | bc -l)"
    unset got
done
bench_psql -c "SELECT hits, misses, fills, bypasses, hit_ratio FROM pitstop.cache_stats()"
