#!/usr/bin/env bash
# Workload index advice on TPC-H: how long pitstop.suggest_indexes takes, what its indexes
# buy, and how its hypothetical indexes compare with HypoPG's.
#
# A throwaway cluster gets the eight TPC-H tables with no indexes and no keys (the untuned
# start), loaded at scale SCALE by tpchgen-cli. Then:
#  a) suggest_indexes is timed on the 22 TPC-H queries (validation parameters,
#     bench/tpch/queries) and on 100 statements (those 22 plus 78 parameter variants,
#     bench/tpch/variants.tsv); target: under 10 s for 100.
#  b) its suggestions for the 22 are listed, with the queries each helps, and
#     unhelped_queries says why the others were not helped.
#  c) the 22 queries are run RUNS times (median per query, statement_timeout TIMEOUT) on
#     three configurations: no indexes; pitstop's suggestions built for real; a single-column
#     btree on every column the queries filter or join on (bench/tpch/per_column_indexes.sql,
#     the per-column advice of index_advisor / Dexter style); and pitstop's advice once more
#     with budget_mb set to BUDGET_SHARE (0.6) × the per-column indexes' real size; and every
#     index of those sets at once (the ceiling of what they can buy). A query that times out is not
#     run again in that configuration and counts as TIMEOUT in totals (a lower bound).
#     Planner cost is the top-level Total Cost of EXPLAIN (FORMAT JSON).
#  d) each suggested index: pitstop.hypo_size vs HypoPG's hypopg_relation_size vs the real
#     pg_relation_size; each query's EXPLAIN cost with pitstop's hypothetical indexes, with
#     HypoPG's, and with the real ones (hypothetical indexes are session-local, so each set
#     is created and explained in its own psql session).
#
# The cluster runs from a private copy of the PostgreSQL installation: `cargo pgrx install`
# or `cargo pgrx test` rewrites the system pitstop.so in place, which crashes a server that
# has it loaded (seen while writing this), and a copy pins one build for the whole run.
#
# Usage: bash bench/advisor.sh   (as root or postgres; env: SCALE, RUNS, TIMEOUT, PORT, BUDGET_SHARE, ROUNDS, TUNED)
# WORKLOAD=tpcds runs bench/tpcds/advisor.sh instead (TPC-DS, its 99 queries).
set -euo pipefail
cd "$(dirname "$0")/.."
case "${WORKLOAD:-tpch}" in
    tpch) ;;
    tpcds) exec bash bench/tpcds/advisor.sh ;;
    *) echo "advisor.sh: WORKLOAD is tpch or tpcds, not ${WORKLOAD}" >&2; exit 2 ;;
esac
source bench/lib.sh

SCALE="${SCALE:-1}"; RUNS="${RUNS:-3}"; TIMEOUT="${TIMEOUT:-120}"; BUDGET_SHARE="${BUDGET_SHARE:-0.6}"
DIR="${PITSTOP_BENCH_DIR:-/tmp/pitstop-advisor}"; PORT="${PORT:-55700}"
TPCH=bench/tpch
MAJOR="$(pg_config --version | sed -E 's/^PostgreSQL ([0-9]+).*/\1/')"
die() { echo "advisor.sh: $*" >&2; exit 1; }
say() { echo "[$(date +%T)] $*" >&2; }

# 1. Tools, installed once.
command -v tpchgen-cli >/dev/null || pip install --quiet tpchgen-cli
if [ ! -f "$(pg_config --sharedir)/extension/hypopg.control" ]; then
    [ "$(id -u)" -eq 0 ] || die "HypoPG is missing: apt-get install postgresql-$MAJOR-hypopg (as root)"
    apt-get install -y -qq "postgresql-$MAJOR-hypopg" >/dev/null
fi
[ -f "$(pg_config --pkglibdir)/pitstop.so" ] || die "pitstop is not installed: make install-ext"

# 2. A private copy of the installation and a cluster on it.
PREFIX="$DIR/pg"; BIN="$PREFIX$(pg_config --bindir)"
stop() { [ -f "$DIR/data/postmaster.pid" ] && as_postgres "$BIN/pg_ctl" stop -D "$DIR/data" -m fast -w >/dev/null || true; }
[ -x "$BIN/pg_ctl" ] && stop
rm -rf "$DIR"
trap 'stop; rm -rf "$DIR"' EXIT
# Postgres finds lib/ and share/ relative to its binary, so the copy is self-contained.
for d in "$(dirname "$(pg_config --bindir)")" "$(pg_config --sharedir)"; do
    mkdir -p "$PREFIX$(dirname "$d")"; cp -a "$d" "$PREFIX$d"
done
[ "$(id -u)" -eq 0 ] && chown -R postgres "$DIR"
PITSTOP_SO="$(md5sum < "$PREFIX$(pg_config --pkglibdir)/pitstop.so" | cut -c1-12)"
[ "$PITSTOP_SO" = "$(md5sum < "$(pg_config --pkglibdir)/pitstop.so" | cut -c1-12)" ] || die "pitstop.so changed while it was copied (an install running?); run again"
overlay_package "$PREFIX"
[ -n "${PITSTOP_PACKAGE:-}" ] && PITSTOP_SO="$(md5sum < "$PREFIX$(pg_config --pkglibdir)/pitstop.so" | cut -c1-12) (from $PITSTOP_PACKAGE)"

as_postgres "$BIN/initdb" -D "$DIR/data" -U postgres --auth=trust >/dev/null
cat <<CONF | as_postgres tee -a "$DIR/data/postgresql.conf" >/dev/null
port = $PORT
listen_addresses = ''
unix_socket_directories = '$DIR'
shared_buffers = 256MB
max_wal_size = 4GB
shared_preload_libraries = 'pg_stat_statements,pitstop'
# Only speeds up the index builds; no query plan depends on it.
maintenance_work_mem = 512MB
CONF
as_postgres "$BIN/pg_ctl" start -D "$DIR/data" -l "$DIR/log" -w >/dev/null
export PGHOST="$DIR" PGPORT="$PORT" PGUSER=postgres PGDATABASE=tpch
psql() { "$BIN/psql" -X -q -v ON_ERROR_STOP=1 "$@"; }
psql -d postgres -c "CREATE DATABASE tpch"
psql -f "$TPCH/schema.sql" -c "CREATE EXTENSION pitstop" -c "CREATE EXTENSION hypopg"

# 3. Data, straight from the generator into COPY.
say "loading TPC-H scale $SCALE"
t0=$(date +%s)
for t in region nation part supplier partsupp customer orders lineitem; do
    tpchgen-cli csv -s "$SCALE" -T "$t" --stdout | psql -c "COPY $t FROM STDIN (FORMAT csv, HEADER)"
done
# VACUUM as well: sets hint bits and the visibility map, so the first timed run does not
# pay for them and index-only scans are possible.
psql -c "VACUUM ANALYZE"
# TUNED=1: the server as pitstop's own config_advice('dw') would set it, every suggested
# setting that needs no restart (random_page_cost, work_mem, effective_cache_size, parallel
# workers...): the planner whose estimates the advice follows then prices cached data closer
# to what it costs. Both the advice and every timed configuration run with them.
SETTINGS="defaults"
if [ -n "${TUNED:-}" ]; then
    psql -At -c "SELECT format('ALTER SYSTEM SET %s = %L;', name, suggested) FROM pitstop.config_advice('dw') WHERE differs AND NOT restart_required" | psql
    psql -c "SELECT pg_reload_conf()" >/dev/null
    SETTINGS="pitstop.config_advice('dw') applied: $(psql -At -c "SELECT string_agg(name || ' = ' || setting || coalesce(unit, ''), ', ' ORDER BY name) FROM pg_settings WHERE source = 'configuration file' AND name IN (SELECT name FROM pitstop.config_advice('dw') WHERE NOT restart_required)")"
fi
LOAD_S=$(( $(date +%s) - t0 ))
TABLE_BYTES=$(psql -At -c "SELECT sum(pg_total_relation_size(oid)) FROM pg_class WHERE relkind = 'r' AND relnamespace = 'public'::regnamespace")

# 4. The workloads: qNN is a validation query, vNNN a variant of one.
QUERIES=$(cd "$TPCH/queries" && ls q*.sql | sed 's/\.sql$//' | xargs)
W="$DIR/workload"; mkdir -p "$W"
for q in $QUERIES; do grep -v '^--' "$TPCH/queries/$q.sql" > "$W/$q.sql"; done
n=0
while IFS=$'\t' read -r q subs; do
    [ -z "$q" ] || [ "${q:0:1}" = "#" ] && continue
    text="$(cat "$W/$q.sql")"
    IFS=$'\t' read -ra pairs <<<"$subs"
    for pair in "${pairs[@]}"; do
        old="${pair%%=>*}"; new="${pair#*=>}"
        [[ "$text" == *"$old"* ]] || die "variants.tsv: '$old' is not in $q"
        text="${text//"$old"/"$new"}"
    done
    n=$((n + 1)); printf '%s\n' "$text" > "$W/$(printf 'v%03d' "$n").sql"
done < "$TPCH/variants.tsv"
WORKLOAD100=$(cd "$W" && ls q*.sql v*.sql | sed 's/\.sql$//' | xargs)
[ "$(wc -w <<<"$WORKLOAD100")" -eq 100 ] || die "the variant workload has $(wc -w <<<"$WORKLOAD100") statements, not 100"

# e) Advice from what pg_stat_statements recorded (issue 15): the 22 queries run for real,
# then suggest_indexes() with no list reads their normalized texts (`date $1 - interval $2
# day`). Reported: how many were planned, and whether the advice equals the advice on the
# literal texts; when it does not, both index sets are built and the 22 timed (target: no
# worse than 1.05×). PGSS_ONLY=1 runs only this part.
pgss_part() {
    local q n ddl
    # The 22 run with the per-column indexes, so that each finishes (q20 without an index
    # outlasts any timeout): pg_stat_statements records the same texts whatever the plans.
    drop_indexes
    psql -q -f "$TPCH/per_column_indexes.sql" >/dev/null
    psql -c "CREATE EXTENSION IF NOT EXISTS pg_stat_statements" -c "SELECT pg_stat_statements_reset()" >/dev/null
    say "e) running the 22 queries for pg_stat_statements"
    for q in $QUERIES; do
        PGOPTIONS="-c statement_timeout=${TIMEOUT}s" "$BIN/psql" -X -q -v ON_ERROR_STOP=1 -f "$W/$q.sql" -o /dev/null \
            || die "$q failed or timed out (a cancelled statement is not recorded by pg_stat_statements)"
    done
    # Advice for the untuned start.
    drop_indexes
    PGSS_RECORDED=$(psql -At -c "SELECT count(*) FROM pg_stat_statements WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database()) AND query ~* '^\s*(select|with)\s' AND query !~ 'pitstop|pg_stat_statements'")
    psql -At -F $'\t' -c "SELECT query, reason FROM pitstop.unhelped_queries()" > "$DIR/pgss_unhelped.tsv"
    PGSS_UNPLANNED=$(grep -c $'\tcould not be planned' "$DIR/pgss_unhelped.tsv" || true)
    t0=$(date +%s.%N)
    mapfile -t PGSS_DDL < <(psql -At -c "SELECT ddl FROM pitstop.suggest_indexes() ORDER BY rank")
    PGSS_ADVICE_S=$(echo "$(date +%s.%N) - $t0" | bc)
    printf 'SELECT ddl FROM pitstop.suggest_indexes(queries => %s) ORDER BY rank' "$(workload_array $QUERIES)" > "$DIR/advise_literal.sql"
    mapfile -t LITERAL_DDL < <(psql -At -f "$DIR/advise_literal.sql")
    PGSS_SAME=no
    [ "$(printf '%s\n' "${PGSS_DDL[@]}" | sort)" = "$(printf '%s\n' "${LITERAL_DDL[@]}" | sort)" ] && PGSS_SAME=yes
    if [ "$PGSS_SAME" = no ]; then
        for set in literal pgss; do
            drop_indexes
            if [ $set = literal ]; then n=("${LITERAL_DDL[@]}"); else n=("${PGSS_DDL[@]}"); fi
            for ddl in "${n[@]}"; do psql -c "${ddl/CONCURRENTLY /}"; done
            psql -c "ANALYZE"
            BYTES[$set]=$(index_bytes)
            time_workload "$set"
        done
        drop_indexes
    fi
}
pgss_report() {
    echo
    echo "### e) advice from pg_stat_statements (normalized texts) vs the literal texts"
    echo
    echo "TPC-H scale $SCALE, the 22 queries run once each; pg_stat_statements recorded $PGSS_RECORDED SELECT/WITH statements in this database (pitstop's and pg_stat_statements' own excluded)."
    echo
    echo "| measure | value |"
    echo "|---|---|"
    echo "| statements \"could not be planned\" (unhelped_queries) | $PGSS_UNPLANNED |"
    echo "| planned | $((PGSS_RECORDED - PGSS_UNPLANNED)) of $PGSS_RECORDED ($(awk -v a="$((PGSS_RECORDED - PGSS_UNPLANNED))" -v b="$PGSS_RECORDED" 'BEGIN {printf "%.0f", b ? 100 * a / b : 0}') %) |"
    echo "| suggest_indexes() from pg_stat_statements, wall time | $(printf '%.1f' "$PGSS_ADVICE_S") s |"
    echo "| same indexes as the advice on the literal texts | $PGSS_SAME |"
    echo
    echo "| from pg_stat_statements | from the literal texts |"
    echo "|---|---|"
    local i max=$(( ${#PGSS_DDL[@]} > ${#LITERAL_DDL[@]} ? ${#PGSS_DDL[@]} : ${#LITERAL_DDL[@]} ))
    for ((i = 0; i < max; i++)); do
        echo "| \`${PGSS_DDL[$i]:-}\` | \`${LITERAL_DDL[$i]:-}\` |" | sed 's/CREATE INDEX CONCURRENTLY ON //g; s/``/–/g'
    done
    if [ "$PGSS_SAME" = no ]; then
        local tp tl
        tp=$(for q in $QUERIES; do echo "${TIME[pgss:$q]}"; done | awk '{s += $1} END {printf "%.0f", s}')
        tl=$(for q in $QUERIES; do echo "${TIME[literal:$q]}"; done | awk '{s += $1} END {printf "%.0f", s}')
        echo
        echo "workload time (the 22 queries, sum of per-query medians of $RUNS runs): with the indexes advised from pg_stat_statements ${tp} ms, $(mb "${BYTES[pgss]}") MB; with those advised on the literal texts ${tl} ms, $(mb "${BYTES[literal]}") MB; ratio $(ratio "$tp" "$tl") (target ≤ 1.05)"
        echo
        echo "| query | pgss-advised ms | literal-advised ms |"
        echo "|---|---|---|"
        for q in $QUERIES; do echo "| $q | $(fmt_ms "${TIME[pgss:$q]}") | $(fmt_ms "${TIME[literal:$q]}") |"; done
    fi
    if [ "$PGSS_UNPLANNED" -gt 0 ]; then
        echo
        echo "not planned:"
        grep $'\tcould not be planned' "$DIR/pgss_unhelped.tsv" | sed 's/^/- /'
    fi
}

# SQL: a CTE w(name, q) of the given statements.
workload_cte() {
    local sep=""; printf 'WITH w(name, q) AS (VALUES '
    for q in "$@"; do printf "%s('%s', \$q\$%s\$q\$)" "$sep" "$q" "$(cat "$W/$q.sql")"; sep=", "; done
    printf ')\n'
}
# SQL: the statements as an array literal.
workload_array() {
    local sep=""; printf 'ARRAY['
    for q in "$@"; do printf '%s$q$%s$q$' "$sep" "$(cat "$W/$q.sql")"; sep=", "; done
    printf ']'
}
# The advisor shortens and normalises query text; this maps it back to a name.
NAME_OF="(SELECT string_agg(w.name, ',') FROM w WHERE starts_with(btrim(regexp_replace(w.q, '\\s+', ' ', 'g')), rtrim(x.query, '…')))"

# a) Advice time. The 22-query call is also the one whose suggestions are used below.
if [ -z "${PGSS_ONLY:-}" ]; then
say "advice on 100 statements"
printf 'SELECT count(*), sum(estimated_bytes) FROM pitstop.suggest_indexes(queries => %s)' "$(workload_array $WORKLOAD100)" > "$DIR/advise100.sql"
t0=$(date +%s.%N)
ADVICE100="$(psql -At -F ' ' -f "$DIR/advise100.sql" 2>&1)" || ADVICE100="ERROR: $ADVICE100"
ADVICE100_S=$(echo "$(date +%s.%N) - $t0" | bc)

say "advice on the 22 queries"
{ workload_cte $QUERIES
  printf 'SELECT rank, ddl, estimated_bytes, improvement_pct, write_cost,
    coalesce((SELECT string_agg(n, %s ORDER BY n) FROM (SELECT %s AS n FROM jsonb_to_recordset(helped) AS x(query text)) h), %s),
    reason, workload_cost_before, workload_cost_after
FROM pitstop.suggest_indexes(queries => %s) ORDER BY rank' "','" "$NAME_OF" "'-'" "$(workload_array $QUERIES)"
} > "$DIR/advise22.sql"
t0=$(date +%s.%N)
psql -At -F $'\t' -f "$DIR/advise22.sql" > "$DIR/suggestions.tsv"
ADVICE22_S=$(echo "$(date +%s.%N) - $t0" | bc)
mapfile -t DDL < <(cut -f2 "$DIR/suggestions.tsv")
[ "${#DDL[@]}" -gt 0 ] || die "suggest_indexes returned no indexes for the 22 queries"

say "unhelped queries"
{ workload_cte $QUERIES
  printf 'SELECT %s, round(x.cost::numeric), x.reason FROM pitstop.unhelped_queries(queries => (SELECT array_agg(q ORDER BY name) FROM w)) x ORDER BY 1' "$NAME_OF"
} > "$DIR/unhelped.sql"
t0=$(date +%s.%N)
psql -At -F $'\t' -f "$DIR/unhelped.sql" > "$DIR/unhelped.tsv"
UNHELPED_S=$(echo "$(date +%s.%N) - $t0" | bc)
fi

# Reads a psql session's output where "@@ key" lines precede a value: a bare number (an
# index size) or an EXPLAIN (FORMAT JSON) whose first Total Cost is the top plan node's.
# Prints "key value" lines.
values_after_markers() {
    awk '/^@@ / {key = $2; next}
         key != "" && /^-?[0-9.]+$/ {print key, $1; key = ""; next}
         key != "" && /"Total Cost"/ {v = $0; sub(/.*"Total Cost": /, "", v); sub(/,.*/, "", v); print key, v; key = ""}'
}
explain_all() { for q in $QUERIES; do printf '\\echo @@ %s\nEXPLAIN (FORMAT JSON) %s;\n' "$q" "$(cat "$W/$q.sql")"; done; }
declare -A COST TIME SIZE BYTES BUILD_S LOADAVG
# setup SQL on stdin, label: fills COST[label:q] (and SIZE[label:i] from "@@ size:i" markers).
# One session that goes on after an error; the errors are reported at the end.
costs() {
    local key value
    { cat; explain_all; } | "$BIN/psql" -X -q -At > "$DIR/session-$1.out" 2>&1 || true
    while read -r key value; do
        case "$key" in size:*) SIZE[$1:${key#size:}]=$value ;; *) COST[$1:$key]=$value ;; esac
    done < <(values_after_markers < "$DIR/session-$1.out")
}

# One timed run of a query: milliseconds, or "timeout".
run_ms() {
    local out
    out=$(PGOPTIONS="-c statement_timeout=${TIMEOUT}s" "$BIN/psql" -X -q -c '\timing on' -c "$(cat "$W/$1.sql")" -o /dev/null 2>&1) || true
    if grep -q 'statement timeout' <<<"$out"; then echo timeout
    elif grep -q '^Time:' <<<"$out"; then awk '/^Time:/ {print $2}' <<<"$out"
    else die "$1 failed: $out"; fi
}
index_bytes() { psql -At -c "SELECT coalesce(sum(pg_relation_size(indexrelid)), 0) FROM pg_index i JOIN pg_class c ON c.oid = i.indrelid WHERE c.relnamespace = 'public'::regnamespace"; }
drop_indexes() {
    psql -At -c "SELECT format('DROP INDEX %s;', indexrelid::regclass) FROM pg_index i JOIN pg_class c ON c.oid = i.indrelid WHERE c.relnamespace = 'public'::regnamespace" | psql
}

# Report.
mb() { awk -v b="$1" 'BEGIN {printf "%.1f", b / 1048576}'; }
num() { [[ "$1" =~ ^-?[0-9.]+$ ]]; }
ratio() { num "$1" && num "$2" || { echo "?"; return; }; awk -v a="$1" -v b="$2" 'BEGIN {if (b == 0) print "–"; else printf "%.3g", a / b}'; }
pct_err() { num "$1" && num "$2" || { echo "?"; return; }; awk -v e="$1" -v r="$2" 'BEGIN {if (r == 0) print "–"; else printf "%+.1f %%", 100 * (e - r) / r}'; }
fmt_ms() { if [ "$1" = timeout ]; then echo "timeout"; else awk -v m="$1" 'BEGIN {printf "%.0f", m}'; fi; }
total_s() { # label -> "seconds timeouts"
    local q t=0 n=0
    for q in $QUERIES; do
        if [ "${TIME[$1:$q]}" = timeout ]; then n=$((n + 1)); t=$(echo "$t + $TIMEOUT * 1000" | bc)
        else t=$(echo "$t + ${TIME[$1:$q]}" | bc); fi
    done
    echo "$(awk -v t="$t" 'BEGIN {printf "%.3f", t / 1000}') $n"
}
total_cost() { local q; for q in $QUERIES; do echo "${COST[$1:$q]}"; done | awk '{s += $1} END {printf "%.0f", s}'; }

if [ -n "${PGSS_ONLY:-}" ]; then
    pgss_part
    echo "machine: $(nproc) cores, PostgreSQL $("$BIN/postgres" --version | awk '{print $3}'), pitstop.so md5 $PITSTOP_SO"
    pgss_report
    exit 0
fi

# c) + d), no indexes.
say "no indexes: costs and timing"
costs none < /dev/null
time_workload none

# d) Hypothetical indexes, each kind in its own session, before any is real.
say "hypothetical indexes: pitstop and HypoPG"
# (costs must not run in a pipeline's subshell: it fills arrays)
costs pitstop_hypo < <(for i in "${!DDL[@]}"; do printf '\\echo @@ size:%d\nSELECT pitstop.hypo_size(pitstop.hypo_create($d$%s$d$));\n' "$i" "${DDL[$i]}"; done)
costs hypopg < <(for i in "${!DDL[@]}"; do printf '\\echo @@ size:%d\nSELECT hypopg_relation_size(indexrelid) FROM hypopg_create_index($d$%s$d$);\n' "$i" "${DDL[$i]}"; done)

# c) pitstop's suggestions, built for real: without CONCURRENTLY (nothing else runs here),
# each named after its rank so its size can be matched.
say "building ${#DDL[@]} suggested indexes"
t0=$(date +%s)
for i in "${!DDL[@]}"; do psql -c "${DDL[$i]/CONCURRENTLY ON/adv_$i ON}"; done
psql -c "ANALYZE"
BUILD_S[pitstop]=$(( $(date +%s) - t0 ))
for i in "${!DDL[@]}"; do SIZE[real:$i]=$(psql -At -c "SELECT pg_relation_size('adv_$i')"); done
BYTES[pitstop]=$(index_bytes)
costs pitstop < /dev/null
time_workload pitstop

say "per-column baseline"
drop_indexes
t0=$(date +%s)
psql -f "$TPCH/per_column_indexes.sql" -c "ANALYZE"
BUILD_S[per_column]=$(( $(date +%s) - t0 ))
PER_COLUMN_N=$(grep -c '^CREATE INDEX' "$TPCH/per_column_indexes.sql")
BYTES[per_column]=$(index_bytes)
costs per_column < /dev/null
time_workload per_column
BYTES[none]=0

# c') pitstop's advice again, now with budget_mb = BUDGET_SHARE × the per-column indexes' real
# size (issue 15's target: at 0.6× per-column's bytes, at most 0.8× its workload time).
BUDGET_MB=$(awk -v b="${BYTES[per_column]}" -v s="$BUDGET_SHARE" 'BEGIN {printf "%.1f", s * b / 1048576}')
say "pitstop with budget_mb => $BUDGET_MB"
drop_indexes
printf 'SELECT ddl FROM pitstop.suggest_indexes(queries => %s, budget_mb => %s) ORDER BY rank' "$(workload_array $QUERIES)" "$BUDGET_MB" > "$DIR/advise_budget.sql"
mapfile -t BUDGET_DDL < <(psql -At -f "$DIR/advise_budget.sql")
t0=$(date +%s)
for i in "${!BUDGET_DDL[@]}"; do psql -c "${BUDGET_DDL[$i]/CONCURRENTLY ON/advb_$i ON}"; done
psql -c "ANALYZE"
BUILD_S[pitstop_budget]=$(( $(date +%s) - t0 ))
BYTES[pitstop_budget]=$(index_bytes)
costs pitstop_budget < /dev/null
time_workload pitstop_budget

# c4) Every index any configuration above built, all at once: what these indexes can buy
# with no byte limit, the ceiling for any subset of them (the budget picks a subset).
say "every index above at once (the ceiling)"
drop_indexes
t0=$(date +%s)
psql -q -f "$TPCH/per_column_indexes.sql" >/dev/null
for i in "${!DDL[@]}"; do psql -q -c "${DDL[$i]/CONCURRENTLY ON/adv_$i ON}"; done
for i in "${!BUDGET_DDL[@]}"; do psql -q -c "${BUDGET_DDL[$i]/CONCURRENTLY ON/advb_$i ON}"; done
psql -c "ANALYZE"
BUILD_S[every_index]=$(( $(date +%s) - t0 ))
EVERY_N=$(psql -At -c "SELECT count(*) FROM pg_index i JOIN pg_class c ON c.oid = i.indrelid WHERE c.relnamespace = 'public'::regnamespace")
BYTES[every_index]=$(index_bytes)
costs every_index < /dev/null
time_workload every_index

# c'') The budgeted and per-column sets again in ROUNDS alternating rounds (each round builds
# one set, runs the 22 once, drops it, then the other): the machine's load drifts between the
# configurations above, which run one after the other; a round's two runs share their load.
ROUNDS="${ROUNDS:-5}"
declare -A ROUND
build_set() { # per_column | pitstop_budget
    drop_indexes
    if [ "$1" = per_column ]; then psql -q -f "$TPCH/per_column_indexes.sql" >/dev/null
    else for i in "${!BUDGET_DDL[@]}"; do psql -q -c "${BUDGET_DDL[$i]/CONCURRENTLY ON/advb_$i ON}"; done; fi
    psql -q -c "ANALYZE"
}
for r in $(seq 1 "$ROUNDS"); do
    for c in per_column pitstop_budget; do
        build_set $c
        ROUND[$c:$r]=$(for q in $QUERIES; do t=$(run_ms "$q"); [ "$t" = timeout ] && t=$((TIMEOUT * 1000)); echo "$t"; done | awk '{s += $1} END {printf "%.0f", s}')
    done
    say "paired round $r/$ROUNDS: per-column ${ROUND[per_column:$r]} ms, budgeted ${ROUND[pitstop_budget:$r]} ms"
done
drop_indexes


echo
echo "machine: $(nproc) cores, $(free -g | awk '/Mem/ {print $2}') GiB RAM, kernel $(uname -r), PostgreSQL $("$BIN/postgres" --version | awk '{print $3}'), HypoPG $(psql -At -c "SELECT extversion FROM pg_extension WHERE extname = 'hypopg'"), pitstop.so md5 $PITSTOP_SO"
echo "method: TPC-H scale $SCALE ($(mb "$TABLE_BYTES") MB of tables, loaded in ${LOAD_S}s), no keys or indexes at start; shared_buffers 256MB; settings: $SETTINGS; $RUNS runs per query, median; statement_timeout ${TIMEOUT}s"
echo
echo "### a) advice run time"
echo
echo "| call | statements | wall time, s | result |"
echo "|---|---|---|---|"
echo "| suggest_indexes | 100 (22 + 78 variants) | $(printf '%.1f' "$ADVICE100_S") | $(if [[ "$ADVICE100" == ERROR* ]]; then echo "$ADVICE100" | head -1; else read -r c b <<<"$ADVICE100"; echo "$c indexes, $(mb "${b:-0}") MB estimated"; fi) |"
echo "| suggest_indexes | 22 | $(printf '%.1f' "$ADVICE22_S") | ${#DDL[@]} indexes, $(mb "$(cut -f3 "$DIR/suggestions.tsv" | paste -sd+ | bc)") MB estimated |"
echo "| unhelped_queries | 22 | $(printf '%.1f' "$UNHELPED_S") | $(wc -l < "$DIR/unhelped.tsv") queries |"
echo
echo "### b) suggestions for the 22 queries"
echo
echo "| rank | ddl | estimated bytes | improvement_pct (of the whole workload) | write cost | helps |"
echo "|---|---|---|---|---|---|"
while IFS=$'\t' read -r rank ddl bytes impr write helps _; do
    echo "| $rank | \`${ddl/CREATE INDEX CONCURRENTLY ON /}\` | $bytes | $impr | $write | $helps |"
done < "$DIR/suggestions.tsv"
echo
echo "unhelped_queries:"
echo
echo "| query | cost | reason |"
echo "|---|---|---|"
while IFS=$'\t' read -r q cost reason; do echo "| $q | $cost | $reason |"; done < "$DIR/unhelped.tsv"
echo
echo "### c) workload time, index bytes, planner cost"
echo
echo "| configuration | indexes | build, s | index MB | total time, s (median per query) | timeouts | total planner cost | load avg after runs |"
echo "|---|---|---|---|---|---|---|---|"
declare -A TOTAL
for c in none pitstop per_column pitstop_budget every_index; do
    read -r secs timeouts <<<"$(total_s $c)"; TOTAL[$c]=$secs
    case $c in none) n=0 ;; pitstop) n=${#DDL[@]} ;; per_column) n=$PER_COLUMN_N ;; pitstop_budget) n=${#BUDGET_DDL[@]} ;; every_index) n=$EVERY_N ;; esac
    echo "| $c | $n | ${BUILD_S[$c]:-–} | $(mb "${BYTES[$c]}") | ${secs}$([ "$timeouts" -gt 0 ] && echo " (≥, timeouts at ${TIMEOUT} s)") | $timeouts | $(total_cost $c) | ${LOADAVG[$c]} |"
done
echo
echo "| ratio | time | index bytes | planner cost |"
echo "|---|---|---|---|"
echo "| pitstop / none | $(ratio "${TOTAL[pitstop]}" "${TOTAL[none]}") | – | $(ratio "$(total_cost pitstop)" "$(total_cost none)") |"
echo "| pitstop / per-column | $(ratio "${TOTAL[pitstop]}" "${TOTAL[per_column]}") | $(ratio "${BYTES[pitstop]}" "${BYTES[per_column]}") | $(ratio "$(total_cost pitstop)" "$(total_cost per_column)") |"
echo "| pitstop (budget_mb => $BUDGET_MB) / per-column | $(ratio "${TOTAL[pitstop_budget]}" "${TOTAL[per_column]}") | $(ratio "${BYTES[pitstop_budget]}" "${BYTES[per_column]}") | $(ratio "$(total_cost pitstop_budget)" "$(total_cost per_column)") |"
echo "| every index above / per-column (the ceiling, c4) | $(ratio "${TOTAL[every_index]}" "${TOTAL[per_column]}") | $(ratio "${BYTES[every_index]}" "${BYTES[per_column]}") | $(ratio "$(total_cost every_index)" "$(total_cost per_column)") |"
echo
echo "Share of the ceiling's gain over per-column that the budgeted set gets: $(awk -v p="${TOTAL[per_column]}" -v b="${TOTAL[pitstop_budget]}" -v e="${TOTAL[every_index]}" 'BEGIN {if (p - e <= 0) print "–"; else printf "%.0f %%", 100 * (p - b) / (p - e)}') ((per-column − budgeted) / (per-column − every index))."
echo
echo "Paired rounds (c''): the 22 once per set per round, the sets alternating, budgeted / per-column per round:"
echo
echo "| round | per-column ms | budgeted ms | ratio |"
echo "|---|---|---|---|"
for r in $(seq 1 "$ROUNDS"); do
    echo "| $r | ${ROUND[per_column:$r]} | ${ROUND[pitstop_budget:$r]} | $(ratio "${ROUND[pitstop_budget:$r]}" "${ROUND[per_column:$r]}") |"
done
echo "| median | | | $(for r in $(seq 1 "$ROUNDS"); do awk -v a="${ROUND[pitstop_budget:$r]}" -v b="${ROUND[per_column:$r]}" 'BEGIN {printf "%.4f\n", a / b}'; done | sort -n | awk '{v[NR] = $1} END {printf "%.3g", NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2}') |"
echo
echo "Per query (time in ms, median of $RUNS; cost = EXPLAIN Total Cost):"
echo
echo "| query | none ms | pitstop ms | per-column ms | budgeted ms | every index ms | none cost | pitstop cost | per-column cost | budgeted cost | every index cost |"
echo "|---|---|---|---|---|---|---|---|---|---|---|"
for q in $QUERIES; do
    echo "| $q | $(fmt_ms "${TIME[none:$q]}") | $(fmt_ms "${TIME[pitstop:$q]}") | $(fmt_ms "${TIME[per_column:$q]}") | $(fmt_ms "${TIME[pitstop_budget:$q]}") | $(fmt_ms "${TIME[every_index:$q]}") | ${COST[none:$q]} | ${COST[pitstop:$q]} | ${COST[per_column:$q]} | ${COST[pitstop_budget:$q]} | ${COST[every_index:$q]} |"
done
echo
echo "budgeted suggestions (budget_mb => $BUDGET_MB):"
echo
for ddl in "${BUDGET_DDL[@]}"; do echo "- \`${ddl/CREATE INDEX CONCURRENTLY ON /}\`"; done
slower() { # a b: queries more than 10 % (and 5 ms) slower under a than under b
    local q out=""
    for q in $QUERIES; do
        num "${TIME[$1:$q]}" && num "${TIME[$2:$q]}" || continue
        awk -v a="${TIME[$1:$q]}" -v b="${TIME[$2:$q]}" 'BEGIN {exit !(a > 1.1 * b && a - b > 5)}' \
            && out+="$q ($(fmt_ms "${TIME[$2:$q]}") → $(fmt_ms "${TIME[$1:$q]}") ms) "
    done
    echo "${out:-none}"
}
echo
echo "slower with pitstop's indexes than with none: $(slower pitstop none)"
echo "slower with pitstop's indexes than with per-column: $(slower pitstop per_column)"
echo
echo "### d) hypothetical indexes: pitstop vs HypoPG vs real"
echo
echo "| rank | index | pitstop estimate | HypoPG estimate | real bytes | pitstop error | HypoPG error |"
echo "|---|---|---|---|---|---|---|"
for i in "${!DDL[@]}"; do
    p=${SIZE[pitstop_hypo:$i]:-?}; h=${SIZE[hypopg:$i]:-?}; r=${SIZE[real:$i]}
    echo "| $((i + 1)) | \`${DDL[$i]/CREATE INDEX CONCURRENTLY ON /}\` | $p | $h | $r | $(pct_err "$p" "$r") | $(pct_err "$h" "$r") |"
done
sum_sizes() { local i; for i in "${!DDL[@]}"; do echo "${SIZE[$1:$i]:-0}"; done | paste -sd+ | bc; }
echo "| all | | $(sum_sizes pitstop_hypo) | $(sum_sizes hypopg) | $(sum_sizes real) | $(pct_err "$(sum_sizes pitstop_hypo)" "$(sum_sizes real)") | $(pct_err "$(sum_sizes hypopg)" "$(sum_sizes real)") |"
echo
echo "| query | no index | pitstop hypothetical | HypoPG hypothetical | real | pitstop / real | HypoPG / real |"
echo "|---|---|---|---|---|---|---|"
for q in $QUERIES; do
    p=${COST[pitstop_hypo:$q]:-?}; h=${COST[hypopg:$q]:-?}; r=${COST[pitstop:$q]}
    echo "| $q | ${COST[none:$q]} | $p | $h | $r | $(ratio "$p" "$r") | $(ratio "$h" "$r") |"
done
echo "| total | $(total_cost none) | $(total_cost pitstop_hypo) | $(total_cost hypopg) | $(total_cost pitstop) | $(ratio "$(total_cost pitstop_hypo)" "$(total_cost pitstop)") | $(ratio "$(total_cost hypopg)" "$(total_cost pitstop)") |"
echo
read -r before after <<<"$(awk -F'\t' 'NR == 1 {b = $8} {a = $9} END {print b, a}' "$DIR/suggestions.tsv")"
echo "suggest_indexes' own workload cost for the 22: before $before (EXPLAIN sum, no index: $(total_cost none)), after $after (EXPLAIN sum, pitstop hypothetical: $(total_cost pitstop_hypo), real: $(total_cost pitstop))"
errors=$(grep -h -B1 'ERROR' "$DIR"/session-*.out 2>/dev/null || true)
[ -z "$errors" ] || { echo; echo "errors in the EXPLAIN sessions:"; echo "$errors"; }

# e) last in a full run: it builds and drops its own indexes.
pgss_part
pgss_report
