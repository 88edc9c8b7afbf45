#!/usr/bin/env bash
# Workload index advice on TPC-DS (run as `WORKLOAD=tpcds bash bench/advisor.sh`): the 99
# queries at scale SF (DuckDB's tpcds extension, bench/tpcds/load.sh) run for real, then
#  a) suggest_indexes() timed over what pg_stat_statements recorded, and over the 99 literal
#     texts; how many could not be planned (target: 99 planned, under 10 s);
#  b) the 99 timed (median of RUNS per query, statement_timeout TIMEOUT; a timeout counts as
#     TIMEOUT and is not run again in that configuration) on: the primary keys only; one btree
#     per filtered or joined column (found in the plans: every column a Filter, Index/Hash/
#     Merge Cond or Join Filter of the 99 plans names, except those a key already leads: what
#     per-column advisors suggest); pitstop's default advice; pitstop's advice with budget_mb
#     = 0.6 × the per-column indexes' bytes. Targets (issue 15): at ≤ 0.6× the per-column
#     bytes ≤ 0.8× its time; the default list ≤ 2× its bytes unless the knee says otherwise.
# Usage: WORKLOAD=tpcds bash bench/advisor.sh   (env: SF, RUNS, TIMEOUT, PORT, PITSTOP_PACKAGE)
# ADVICE_ONLY=1 stops after a): the advice timings (default and budget_mb => BUDGET_MB, default
# 29), the DEBUG1 profile lines of each run and each list's estimated workload cost, to iterate
# on advice speed. KEEP=1 reuses the cluster and data a previous run left in PITSTOP_BENCH_DIR
# (the installation copy is refreshed from PITSTOP_PACKAGE; pg_stat_statements keeps what that
# run recorded with KEEP_PGSS=1, else the 99 are run again first), so loading SF 0.1
# (minutes) is done once.
set -euo pipefail
cd "$(dirname "$0")/../.."
source bench/lib.sh
SF="${SF:-0.1}"; RUNS="${RUNS:-3}"; TIMEOUT="${TIMEOUT:-60}"
DIR="${PITSTOP_BENCH_DIR:-/tmp/pitstop-advisor-tpcds}"; PORT="${PORT:-55710}"
say() { echo "[$(date +%T)] $*" >&2; }
die() { echo "tpcds/advisor.sh: $*" >&2; exit 1; }

W="$DIR/workload"
REUSED=""
if [ -n "${KEEP:-}" ] && [ -f "$DIR/data/PG_VERSION" ] && [ -d "$W" ]; then
    say "reusing the cluster in $DIR"
    stop_private_cluster "$DIR"
    rm -rf "$DIR/pg"
    private_install "$DIR"
    as_postgres "$BIN/pg_ctl" start -D "$DIR/data" -l "$DIR/log" -w >/dev/null
    export PGHOST="$DIR" PGPORT="$(awk -F' = ' '/^port = / {p = $2} END {print p}' "$DIR/data/postgresql.conf")" PGUSER=postgres
    REUSED=1
else
    private_cluster "$DIR" "$PORT" "shared_buffers = 256MB
max_wal_size = 4GB
maintenance_work_mem = 512MB
shared_preload_libraries = 'pg_stat_statements,pitstop'"
fi
trap 'stop_private_cluster "$DIR"' EXIT
psql() { bench_psql "$@"; }
export PGDATABASE=tpcds PSQL="$BIN/psql"
if [ -z "$REUSED" ]; then
    PGDATABASE=postgres bench_psql -c "CREATE DATABASE tpcds"
    say "loading TPC-DS scale $SF"
    SF="$SF" W="$W" bash bench/tpcds/load.sh
    psql -c "CREATE EXTENSION pitstop" -c "CREATE EXTENSION pg_stat_statements"
else
    psql -c "ALTER EXTENSION pitstop UPDATE" 2>/dev/null || true
fi
QUERIES=$(cd "$W" && ls q*.sql | sed 's/\.sql$//' | xargs)

run_ms() {
    local out
    out=$(PGOPTIONS="-c statement_timeout=${TIMEOUT}s" "$BIN/psql" -X -q -c '\timing on' -f "$W/$1.sql" -o /dev/null 2>&1) || true
    if grep -q 'statement timeout' <<<"$out"; then echo timeout
    elif grep -q '^Time:' <<<"$out"; then awk '/^Time:/ {s += $2} END {print s}' <<<"$out"
    else die "$1 failed: $out"; fi
}
declare -A TIME BYTES LOADAVG COUNT
# total_s CONFIG [EXCLUDED...]: the workload's seconds, without the EXCLUDED queries.
total_s() {
    local c="$1" q; shift
    for q in $QUERIES; do
        [[ " $* " == *" $q "* ]] && continue
        v=${TIME[$c:$q]}; [ "$v" = timeout ] && v=$((TIMEOUT * 1000)); echo "$v"
    done | awk '{s += $1} END {printf "%.1f", s / 1000}'
}
# q04 and q11 spend their time joining a CTE materialized once (year_total, referenced 6 and
# 4 times) with itself: no index reaches those scans, so their time is the same with any index
# set. On SF 0.1 they are 81 % of the per-column time, which puts "0.8x its time" out of any
# index set's reach (BENCHMARKS.md); the other 97 statements are also reported alone.
INDEX_BLIND="q04 q11"
timeouts() { local q n=0; for q in $QUERIES; do [ "${TIME[$1:$q]}" = timeout ] && n=$((n + 1)); done; echo $n; }
# Indexes beyond the primary keys.
extra_bytes() { psql -At -c "SELECT coalesce(sum(pg_relation_size(indexrelid)), 0) FROM pg_index i JOIN pg_class c ON c.oid = i.indrelid WHERE c.relnamespace = 'public'::regnamespace AND NOT i.indisprimary"; }
drop_extra() { psql -At -c "SELECT format('DROP INDEX %s;', indexrelid::regclass) FROM pg_index i JOIN pg_class c ON c.oid = i.indrelid WHERE c.relnamespace = 'public'::regnamespace AND NOT i.indisprimary" | psql; }
build() { local ddl; while IFS= read -r ddl; do [ -n "$ddl" ] && psql -c "${ddl/CONCURRENTLY /}"; done; psql -c "ANALYZE"; }
mb() { awk -v b="$1" 'BEGIN {printf "%.1f", b / 1048576}'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {if (b == 0) print "–"; else printf "%.2f", a / b}'; }

[ -n "$REUSED" ] && drop_extra # a run stopped half-way may have left indexes behind
if [ -n "$REUSED" ] && [ -n "${KEEP_PGSS:-}" ]; then
    say "pg_stat_statements as the last run left it"
else
    # The workload run once for pg_stat_statements (and as the no-index timing's first run).
    psql -c "SELECT pg_stat_statements_reset()" >/dev/null
    say "keys only"
    time_workload none
    BYTES[none]=0
fi

say "a) advice"
adv() { # label sql-file-or-args -> DDL list in $DIR/label.ddl, seconds in ADV_S[label]
    local t0; t0=$(date +%s.%N)
    # Also the list's estimated workload cost (the last row's) and the DEBUG1 profile lines.
    printf 'SELECT ddl, workload_cost_after FROM pitstop.suggest_indexes(%s) ORDER BY rank' "$2" > "$DIR/$1.sql"
    PGOPTIONS="-c client_min_messages=debug1" "$BIN/psql" -X -q -v ON_ERROR_STOP=1 -At -F $'\t' -f "$DIR/$1.sql" \
        > "$DIR/$1.out" 2> "$DIR/$1.debug"
    ADV_S[$1]=$(echo "$(date +%s.%N) - $t0" | bc)
    cut -f1 "$DIR/$1.out" > "$DIR/$1.ddl"; COUNT[$1]=$(wc -l < "$DIR/$1.ddl")
    COST[$1]=$(tail -1 "$DIR/$1.out" | cut -f2)
}
declare -A ADV_S COST
adv pgss ""
if [ -n "${ADVICE_ONLY:-}" ]; then
    BUDGET_MB="${BUDGET_MB:-29}"
    adv budget "budget_mb => $BUDGET_MB"
    echo
    echo "load average $(cut -d' ' -f1-3 /proc/loadavg); pitstop.so md5 $(md5sum < "$DIR/pg$(pg_config --pkglibdir)/pitstop.so" | cut -c1-12)"
    echo "| advice | wall time, s | indexes | estimated workload cost after |"
    echo "|---|---|---|---|"
    echo "| suggest_indexes() | $(printf '%.1f' "${ADV_S[pgss]}") | ${COUNT[pgss]} | ${COST[pgss]} |"
    echo "| suggest_indexes(budget_mb => $BUDGET_MB) | $(printf '%.1f' "${ADV_S[budget]}") | ${COUNT[budget]} | ${COST[budget]} |"
    for l in pgss budget; do
        echo; echo "$l:"; sed 's/^/- /' "$DIR/$l.ddl"; grep -h 'suggest_indexes:' "$DIR/$l.debug" | sed 's/^/  /'
    done
    exit 0
fi
UNPLANNED=$(psql -At -c "SELECT count(*) FROM pitstop.unhelped_queries() WHERE reason LIKE 'could not be planned%'")
RECORDED=$(psql -At -c "SELECT count(*) FROM pg_stat_statements s JOIN pg_database d ON d.oid = s.dbid AND d.datname = current_database() WHERE query ~* '^\s*(select|with)\s' AND query !~ 'pitstop|pg_stat_statements'")
{ printf 'queries => ARRAY['; sep=""; for q in $QUERIES; do printf '%s$q$%s$q$' "$sep" "$(sed 's/;\s*$//' "$W/$q.sql")"; sep=", "; done; printf ']'; } > "$DIR/array.sql"
adv literal "$(cat "$DIR/array.sql")"

# Per-column baseline from the plans with the keys only.
for q in $QUERIES; do printf 'EXPLAIN (VERBOSE, FORMAT JSON) %s\n' "$(cat "$W/$q.sql")"; done > "$DIR/explain.sql"
psql -At -f "$DIR/explain.sql" > "$DIR/explain.json"
grep -oE '"(Filter|Index Cond|Hash Cond|Merge Cond|Join Filter|Recheck Cond)": "[^"]*"' "$DIR/explain.json" |
    grep -oE '\b[a-z]+\.[a-z]+_[a-z0-9_]+\b' | sed 's/^[a-z0-9_]*\.//' | sort -u > "$DIR/columns"
psql -At -c "SELECT format('CREATE INDEX ON %I (%I)', c.table_name, c.column_name)
               FROM information_schema.columns c
              WHERE c.table_schema = 'public' AND c.column_name = ANY (string_to_array('$(paste -sd, "$DIR/columns")', ','))
                AND NOT EXISTS (SELECT FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0]
                                 WHERE i.indrelid = format('%I', c.table_name)::regclass AND a.attname = c.column_name)
              ORDER BY 1" > "$DIR/per_column.ddl"
COUNT[per_column]=$(wc -l < "$DIR/per_column.ddl")

say "per-column: ${COUNT[per_column]} indexes"
build < "$DIR/per_column.ddl"; BYTES[per_column]=$(extra_bytes); time_workload per_column; drop_extra
BUDGET_MB=$(awk -v b="${BYTES[per_column]}" 'BEGIN {printf "%.1f", 0.6 * b / 1048576}')
adv budget "budget_mb => $BUDGET_MB"
adv literal_budget "$(cat "$DIR/array.sql"), budget_mb => $BUDGET_MB"
say "pitstop default: ${COUNT[pgss]} indexes"
build < "$DIR/pgss.ddl"; BYTES[pgss]=$(extra_bytes); time_workload pgss; drop_extra
say "pitstop budget $BUDGET_MB MB: ${COUNT[budget]} indexes"
build < "$DIR/budget.ddl"; BYTES[budget]=$(extra_bytes); time_workload budget; drop_extra
# Advice from the normalized texts against the advice on the literal ones (issue 15: the same
# indexes, or a workload time no worse than 1.05x): timed only when the lists differ.
SAME=no; [ "$(sort "$DIR/pgss.ddl")" = "$(sort "$DIR/literal.ddl")" ] && SAME=yes
CONFIGS="none per_column pgss budget"
if [ $SAME = no ]; then
    say "advice on the literal texts: ${COUNT[literal]} indexes"
    build < "$DIR/literal.ddl"; BYTES[literal]=$(extra_bytes); time_workload literal; drop_extra
    CONFIGS="$CONFIGS literal"
fi

echo
echo "machine: $(nproc) cores, $(free -g | awk '/Mem/ {print $2}') GiB RAM, PostgreSQL $("$BIN/postgres" --version | awk '{print $3}'), pitstop.so md5 $(md5sum < "$DIR/pg$(pg_config --pkglibdir)/pitstop.so" | cut -c1-12)"
echo "method: TPC-DS scale $SF (DuckDB tpcds extension), primary keys only at start; shared_buffers 256MB; $RUNS runs per query, median; statement_timeout ${TIMEOUT}s (a timeout counts as ${TIMEOUT}s)"
echo
echo "| advice | statements | wall time, s | indexes |"
echo "|---|---|---|---|"
echo "| suggest_indexes() from pg_stat_statements | $RECORDED recorded, $UNPLANNED not planned | $(printf '%.1f' "${ADV_S[pgss]}") | ${COUNT[pgss]} |"
echo "| suggest_indexes(queries => the 99 literal texts) | 99 | $(printf '%.1f' "${ADV_S[literal]}") | ${COUNT[literal]} |"
echo "| suggest_indexes(budget_mb => $BUDGET_MB) from pg_stat_statements | | $(printf '%.1f' "${ADV_S[budget]}") | ${COUNT[budget]} |"
echo "| suggest_indexes(literal texts, budget_mb => $BUDGET_MB) | 99 | $(printf '%.1f' "${ADV_S[literal_budget]}") | ${COUNT[literal_budget]} |"
echo
echo "| configuration | indexes | index MB (beyond the keys) | workload s (sum of medians) | timeouts | time / per-column | bytes / per-column | load avg |"
echo "|---|---|---|---|---|---|---|---|"
for c in $CONFIGS; do
    echo "| $c | ${COUNT[$c]:-0} | $(mb "${BYTES[$c]}") | $(total_s $c) | $(timeouts $c) | $(ratio "$(total_s $c)" "$(total_s per_column)") | $(ratio "${BYTES[$c]}" "${BYTES[per_column]}") | ${LOADAVG[$c]} |"
done
echo
echo "without $INDEX_BLIND (self-joins of a materialized CTE, which no index reaches): per-column $(total_s per_column $INDEX_BLIND) s; $(for c in $CONFIGS; do [ $c = per_column ] || printf '%s %s s (%s), ' "$c" "$(total_s $c $INDEX_BLIND)" "$(ratio "$(total_s $c $INDEX_BLIND)" "$(total_s per_column $INDEX_BLIND)")"; done | sed 's/, $//')"
echo
echo "advice from pg_stat_statements: $((RECORDED - UNPLANNED)) of $RECORDED statements planned; the same indexes as the advice on the literal texts: $SAME$([ $SAME = no ] && echo "; workload time pgss / literal $(ratio "$(total_s pgss)" "$(total_s literal)") (target ≤ 1.05)")"
echo
echo "pitstop default:"; sed 's/^/- /' "$DIR/pgss.ddl"
echo; echo "pitstop budget_mb => $BUDGET_MB:"; sed 's/^/- /' "$DIR/budget.ddl"
echo
[ $SAME = no ] && { echo; echo "advice on the literal texts:"; sed 's/^/- /' "$DIR/literal.ddl"; }
echo
echo "| query | none ms | per-column ms | pitstop ms | budget ms | literal-advice ms |"
echo "|---|---|---|---|---|---|"
for q in $QUERIES; do echo "| $q | ${TIME[none:$q]} | ${TIME[per_column:$q]} | ${TIME[pgss:$q]} | ${TIME[budget:$q]} | ${TIME[literal:$q]:-same} |"; done
