#!/usr/bin/env bash
# The advisor's candidate kinds of issue 15 part 7, each on a realistic table: what
# pitstop.suggest_indexes suggests for one statement, and the statement's execution time
# before and after that suggestion is built for real, with the index bytes it cost.
#
#  expression   users (ROWS rows): SELECT … WHERE lower(email) = '…' (a plain index on email
#               cannot serve it)
#  group-by     sales (2×ROWS rows): daily totals of the last week,
#               GROUP BY date_trunc('day', sold) ORDER BY 1 DESC LIMIT 7
#  partitioned  events (2×ROWS rows in 12 monthly partitions): SELECT … WHERE account = 42;
#               one index on the parent, built on every partition
#  brin         log (LOG_ROWS rows, an append-only event log, one row a second): one day's
#               rows, WHERE at >= … AND at < …; advised without a budget (the btree the
#               advisor prefers then) and with budget_mb => BUDGET_MB (the BRIN), each built,
#               measured and dropped
#
# Time: median "Execution Time" of RUNS runs of EXPLAIN (ANALYZE, TIMING OFF), caches warm
# (one run first is discarded). Bytes: every index of the table's partition tree, after minus
# before. The cluster is a throwaway one from a private copy of the installation (bench/lib.sh).
#
# Usage: bash bench/advisor_candidates.sh   (as root or postgres; env: ROWS, LOG_ROWS,
#        BUDGET_MB, RUNS, PORT, CASES="expression group-by partitioned brin")
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/lib.sh

ROWS="${ROWS:-1000000}"; RUNS="${RUNS:-5}"; LOG_ROWS="${LOG_ROWS:-8000000}"; BUDGET_MB="${BUDGET_MB:-1}"
CASES="${CASES:-expression group-by partitioned brin}"
DIR="${PITSTOP_BENCH_DIR:-/tmp/pitstop-advisor-candidates}"; PORT="${PORT:-55710}"
say() { echo "[$(date +%T)] $*" >&2; }

private_cluster "$DIR" "$PORT" "shared_buffers = 256MB
max_parallel_workers_per_gather = 0"
trap 'stop_private_cluster "$DIR"; rm -rf "$DIR"' EXIT
q() { as_postgres "$BIN/psql" -h "$DIR" -p "$PORT" -U postgres -d postgres -X -q -At -v ON_ERROR_STOP=1 "$@"; }
q -c "CREATE EXTENSION pitstop"

wanted() { [[ " $CASES " == *" $1 "* ]]; }
say "loading ($CASES)"
wanted brin && q <<SQL
CREATE TABLE log(id bigint, at timestamp, kind int, account int, payload text);
INSERT INTO log SELECT g, timestamp '2024-01-01' + g * interval '1 second', g % 7, g % 10000, md5(g::text)
  FROM generate_series(1, $LOG_ROWS) g;
VACUUM ANALYZE log;
SQL
wanted expression && q <<SQL
CREATE TABLE users(id int PRIMARY KEY, email text, plan text, signed_up timestamp);
INSERT INTO users SELECT g, 'User' || g || '@Example.com', CASE WHEN g % 3 = 0 THEN 'pro' ELSE 'free' END,
       timestamp '2020-01-01' + g * interval '1 minute' FROM generate_series(1, $ROWS) g;
VACUUM ANALYZE users;
SQL
wanted group-by && q <<SQL
CREATE TABLE sales(id bigint, store int, amount numeric(10,2), sold timestamp);
INSERT INTO sales SELECT g, g % 500, (g % 9973) / 100.0, timestamp '2024-01-01' + g * interval '15 seconds'
  FROM generate_series(1, 2 * $ROWS) g;
VACUUM ANALYZE sales;
SQL
wanted partitioned && q <<SQL
CREATE TABLE events(account int, at timestamp, payload text) PARTITION BY RANGE (at);
SELECT format('CREATE TABLE events_%s PARTITION OF events FOR VALUES FROM (%L) TO (%L)', m,
              timestamp '2024-01-01' + (m - 1) * interval '1 month', timestamp '2024-01-01' + m * interval '1 month')
  FROM generate_series(1, 12) m \gexec
INSERT INTO events SELECT g % 50000, timestamp '2024-01-01' + (g::float8 / (2 * $ROWS)) * interval '365 days', md5(g::text)
  FROM generate_series(1, 2 * $ROWS - 1) g;
VACUUM ANALYZE events;
SQL

median_ms() {
    local sql="$1" times=()
    q -c "EXPLAIN (ANALYZE, TIMING OFF) $sql" >/dev/null
    for _ in $(seq "$RUNS"); do
        times+=("$(q -c "EXPLAIN (ANALYZE, TIMING OFF) $sql" | sed -n 's/^Execution Time: \([0-9.]*\) ms$/\1/p')")
    done
    printf '%s\n' "${times[@]}" | sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'
}
index_bytes() {
    q -c "SELECT coalesce(sum(pg_relation_size(i.indexrelid)), 0) FROM pg_index i
           WHERE i.indrelid IN (SELECT '$1'::regclass UNION SELECT relid FROM pg_partition_tree('$1'))"
}

printf '| case | rows | suggestion | before (ms) | after (ms) | speed-up | index bytes |\n|---|---:|---|---:|---:|---:|---:|\n'
# run_case NAME TABLE SQL [BUDGET_MB]: the advice for SQL (within the budget, if any) built
# for real, and SQL measured before and after.
run_case() {
    local name="$1" table="$2" sql="$3" budget="${4:-NULL}" rows before after bytes0 bytes1 ddl
    rows=$(q -c "SELECT count(*) FROM $table")
    before=$(median_ms "$sql")
    bytes0=$(index_bytes "$table")
    say "$name: advising"
    mapfile -t ddl < <(q -c "SELECT ddl FROM pitstop.suggest_indexes(queries => ARRAY[\$q\$$sql\$q\$], budget_mb => $budget) ORDER BY rank")
    [ "${#ddl[@]}" -gt 0 ] || { echo "| $name | $rows | (none) | $before | | | |"; return; }
    for d in "${ddl[@]}"; do say "$name: $d"; q -c "$d"; done
    q -c "ANALYZE $table"
    after=$(median_ms "$sql")
    bytes1=$(index_bytes "$table")
    echo "| $name | $rows | \`$(IFS=';'; echo "${ddl[*]}")\` | $before | $after | $(awk -v b="$before" -v a="$after" 'BEGIN { printf "%.0f×", b / a }') | $((bytes1 - bytes0)) |"
}
# brin_case SQL: the advice for SQL on log without a budget and with BUDGET_MB, each built
# alone, measured and dropped again.
brin_case() {
    say "brin: log has $(q -c "SELECT pg_relation_size('log') / 8192") pages"
    for budget in NULL "$BUDGET_MB"; do
        run_case "brin, budget_mb $budget" log "$1" "$budget"
        q -c "SELECT format('DROP INDEX %s', indexrelid::regclass) FROM pg_index WHERE indrelid = 'log'::regclass" |
            while read -r drop; do q -c "$drop"; done
    done
}
wanted brin && brin_case "SELECT id, kind, payload FROM log WHERE at >= '2024-03-01' AND at < '2024-03-02'"
wanted expression && run_case expression users "SELECT id, plan FROM users WHERE lower(email) = 'user424242@example.com'"
wanted group-by && run_case group-by sales "SELECT date_trunc('day', sold) AS day, sum(amount) FROM sales GROUP BY date_trunc('day', sold) ORDER BY 1 DESC LIMIT 7"
wanted partitioned && run_case partitioned events "SELECT at, payload FROM events WHERE account = 42"
exit 0
