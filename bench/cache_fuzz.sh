#!/usr/bin/env bash
# Long differential fuzzing run of the result cache (tests/src/cache_fuzz): every read through
# pitstop.cached is compared with the same query run plainly right after it, by the same
# session in the same transaction. SEEDS seeds of STATEMENTS steps each, JOBS seeds at a time;
# each job runs its seeds one after the other on its own throwaway cluster made from a
# private copy of the installation (lib.sh), so reinstalling pitstop meanwhile cannot touch it.
#
# Usage: bash bench/cache_fuzz.sh   (env: SEEDS="1 2 3 4", STATEMENTS=250000, SESSIONS=4,
#        JOBS=2, FUZZ_ARGS="--skip-known", MAX_DIFFERENCES=20, OUT=/tmp/pitstop-cache-fuzz)
# Per seed: OUT/seed-N.out (the summary line) and OUT/seed-N.log (differences, progress).
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/lib.sh

SEEDS="${SEEDS:-1 2 3 4}"; STATEMENTS="${STATEMENTS:-250000}"; SESSIONS="${SESSIONS:-4}"; JOBS="${JOBS:-2}"
FUZZ_ARGS="${FUZZ_ARGS:-}"; MAX_DIFFERENCES="${MAX_DIFFERENCES:-20}"
OUT="${OUT:-/tmp/pitstop-cache-fuzz}"; PORT="${PORT:-55760}"

# A debug build: the client spends ~2 % of the time, the server the rest.
cargo build -q -p pitstop-tests --example cache_fuzz
# What runs: the installed pitstop.so is copied into each job's private installation now.
built="pitstop $(git rev-parse --short HEAD)$(git diff --quiet HEAD -- pg_ext sql || echo ' + uncommitted pg_ext changes'), pitstop.so of $(date -u -r "$(pg_config --pkglibdir)/pitstop.so" '+%Y-%m-%d %H:%M UTC')"
FUZZ="$PWD/target/debug/examples/cache_fuzz"
mkdir -p "$OUT"
rm -f "$OUT"/seed-*.out "$OUT"/seed-*.log

cleanup() { for j in $(seq 0 $((JOBS - 1))); do stop_private_cluster "$OUT/cluster-$j"; done; }
trap cleanup EXIT

# job J: its own cluster, then seeds J, J + JOBS, … of the list in turn.
job() {
    local j="$1" dir="$OUT/cluster-$j" i=0 seed
    private_cluster "$dir" "$((PORT + j))" "shared_preload_libraries = 'pitstop'
autovacuum = off
max_prepared_transactions = 10
fsync = off
synchronous_commit = off
max_connections = 40" >/dev/null
    for seed in $SEEDS; do
        if [ $((i % JOBS)) -eq "$j" ]; then
            # shellcheck disable=SC2086
            "$FUZZ" --dsn "host=$dir port=$((PORT + j)) user=postgres dbname=postgres" --seed "$seed" \
                --statements "$STATEMENTS" --sessions "$SESSIONS" --max-differences "$MAX_DIFFERENCES" \
                --progress 50000 $FUZZ_ARGS >"$OUT/seed-$seed.out" 2>"$OUT/seed-$seed.log" || true
        fi
        i=$((i + 1))
    done
    stop_private_cluster "$dir"
}

started=$(date +%s)
for j in $(seq 0 $((JOBS - 1))); do job "$j" & done
wait
elapsed=$(($(date +%s) - started))

echo "machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2 / 1048576}' /proc/meminfo); PostgreSQL $("$(pg_config --bindir)/postgres" --version | awk '{print $3}'); $built"
echo "command: SEEDS=\"$SEEDS\" STATEMENTS=$STATEMENTS SESSIONS=$SESSIONS JOBS=$JOBS FUZZ_ARGS=\"$FUZZ_ARGS\" bash bench/cache_fuzz.sh"
cat "$OUT"/seed-*.out
# shellcheck disable=SC2046
awk '{for (i = 1; i <= NF; i++) {split($i, kv, "="); v[kv[1]] += kv[2]}; if ($0 ~ /fatal=/) fatal++}
     END {printf "total: statements=%d cached_reads=%d hits=%d hit_pct=%.1f read_errors=%d differences=%d fatal=%d wall_seconds=%d\n",
          v["statements"], v["cached_reads"], v["hits"], (v["cached_reads"] ? 100 * v["hits"] / v["cached_reads"] : 0),
          v["read_errors"], v["differences"], fatal, '"$elapsed"'}' "$OUT"/seed-*.out
