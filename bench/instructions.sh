#!/usr/bin/env bash
# Deterministic overhead of preloading pitstop: CPU instructions per statement, counted by
# callgrind in a single-user backend running N primary-key lookups, with and without
# shared_preload_libraries = 'pitstop' (nothing captured: slow_query_ms = 1000).
# Two statement counts are run so start-up cost cancels: per statement = (I(6300) - I(2100)) / 4200.
# Instruction counts do not depend on what else the machine is doing, unlike TPS. Each run
# starts from the same copy of the data directory.
# BASE_PRELOAD=pg_stat_statements measures pitstop on top of pg_stat_statements, as most
# servers run it. WORKLOAD=tpcb runs pgbench's TPC-B transaction instead (BEGIN, three
# UPDATEs, a SELECT, an INSERT, END): the writes the result cache tracks and the commits at
# which it bumps versions (cache enabled, nothing cached). WORKLOAD=cache counts, with pitstop
# preloaded, SELECT 1, a 10-row set-returning function and a 10-row `pitstop.cached` hit.
set -euo pipefail
cd "$(dirname "$0")/.."
DIR="${PITSTOP_BENCH_DIR:-/tmp/pitstop-instructions}"
BASE_PRELOAD="${BASE_PRELOAD:-}"; WORKLOAD="${WORKLOAD:-select}"
WITH_PRELOAD="${BASE_PRELOAD:+$BASE_PRELOAD,}pitstop"
# shellcheck source=bench/lib.sh
source bench/lib.sh
command -v valgrind >/dev/null || { echo "valgrind is required (apt-get install valgrind)" >&2; exit 1; }

# A private copy of the installation (PITSTOP_PACKAGE: a `cargo pgrx package` output to count
# instead of the installed build), so two builds are counted side by side without installing.
rm -rf "$DIR"; mkdir -p "$DIR"
private_install "$DIR"
trap 'as_postgres "$BIN/pg_ctl" stop -D "$DIR/data" -m fast >/dev/null 2>&1 || true; rm -rf "$DIR"' EXIT
as_postgres "$BIN/initdb" -D "$DIR/data" -U postgres --auth=trust >/dev/null
printf "port = 55731\nlisten_addresses = ''\nunix_socket_directories = '%s'\n" "$DIR" | as_postgres tee -a "$DIR/data/postgresql.conf" >/dev/null
as_postgres "$BIN/pg_ctl" start -D "$DIR/data" -l "$DIR/log" -w >/dev/null
PGHOST="$DIR" PGPORT=55731 PGUSER=postgres "$BIN/pgbench" -i -q -s 1 postgres >/dev/null 2>&1
CACHED_QUERY="select id, total from orders where customer = \$1 order by total desc, id limit 10"
if [ "$WORKLOAD" = cache ]; then
    "$BIN/psql" -X -q -h "$DIR" -p 55731 -U postgres -v ON_ERROR_STOP=1 postgres \
        -c "CREATE EXTENSION pitstop" -c "CREATE TABLE orders(id int PRIMARY KEY, customer int, total numeric)" \
        -c "INSERT INTO orders SELECT g, g % 20000, (g::int8 * 7919) % 10000 FROM generate_series(1, 200000) g" \
        -c "VACUUM ANALYZE orders" >/dev/null
fi
as_postgres "$BIN/pg_ctl" stop -D "$DIR/data" -w >/dev/null
# Every run starts from this copy: the statements write, and a run on the tables the previous
# run left behind would do more pruning (dead tuples) and be charged for it.
as_postgres cp -a "$DIR/data" "$DIR/pristine"
# Statement counts: multiples of a TPC-B transaction's 7 statements.
LOW=2100; HIGH=6300
for n in $LOW $HIGH; do
    awk -v n="$n" -v w="$WORKLOAD" 'BEGIN { srand(1); for (i = 0; i < n; i++) {
        aid = 1 + int(rand() * 100000); tid = 1 + int(rand() * 10); d = int(rand() * 10000) - 5000
        if (w == "tpcb") {
            if (i % 7 == 0) print "BEGIN;"
            if (i % 7 == 1) printf "UPDATE pgbench_accounts SET abalance = abalance + %d WHERE aid = %d;\n", d, aid
            if (i % 7 == 2) printf "SELECT abalance FROM pgbench_accounts WHERE aid = %d;\n", aid
            if (i % 7 == 3) printf "UPDATE pgbench_tellers SET tbalance = tbalance + %d WHERE tid = %d;\n", d, tid
            if (i % 7 == 4) printf "UPDATE pgbench_branches SET bbalance = bbalance + %d WHERE bid = 1;\n", d
            if (i % 7 == 5) printf "INSERT INTO pgbench_history (tid, bid, aid, delta, mtime) VALUES (%d, 1, %d, %d, now());\n", tid, aid, d
            if (i % 7 == 6) print "END;"
        } else printf "SELECT abalance FROM pgbench_accounts WHERE aid = %d;\n", aid } }' > "$DIR/stmts$n.sql"
done
chmod 644 "$DIR"/stmts*.sql

count() { # preload, statements
    as_postgres rm -rf "$DIR/data"; as_postgres cp -a "$DIR/pristine" "$DIR/data"
    as_postgres valgrind --tool=callgrind --callgrind-out-file=/dev/null "$BIN/postgres" --single -D "$DIR/data" \
        -c shared_preload_libraries="$1" -c pitstop.slow_query_ms=1000 -c jit=off postgres \
        < "$DIR/stmts$2.sql" 2>&1 >/dev/null | grep -o 'Collected : [0-9]*' | grep -o '[0-9]*'
}
per_statement() { echo $(( ($(count "$1" $HIGH) - $(count "$1" $LOW)) / (HIGH - LOW) )); }

if [ "$WORKLOAD" = cache ]; then
    # Each statement prepared once and EXECUTEd N times, as pgbench -M prepared does; the
    # aggregate keeps the single-user backend's row printing (costly, and absent from a real
    # server) out of the count. The hit's key is filled by the first EXECUTE.
    statement() { # name -> SQL
        case "$1" in
            select1) echo "SELECT 1" ;;
            srf) echo "SELECT count(*) FROM generate_series(1, 10) AS t(i)" ;;
            hit) echo "SELECT count(*) FROM pitstop.cached('$CACHED_QUERY', '{42}') AS t(id int, total numeric)" ;;
        esac
    }
    echo "| statement (pitstop preloaded, prepared) | instructions per statement |"
    echo "|---|---|"
    for name in select1 srf hit; do
        for n in $LOW $HIGH; do
            { echo "PREPARE p AS $(statement $name);"; for _ in $(seq 1 "$n"); do echo "EXECUTE p;"; done; } > "$DIR/stmts$n.sql"
        done
        chmod 644 "$DIR"/stmts*.sql
        echo "| $(statement $name) | $(per_statement "$WITH_PRELOAD") |"
    done
    exit 0
fi

base=$(per_statement "$BASE_PRELOAD")
with=$(per_statement "$WITH_PRELOAD")
echo "| preload | instructions per statement |"
echo "|---|---|"
echo "| '${BASE_PRELOAD}' | $base |"
echo "| '${WITH_PRELOAD}' (nothing captured, cache unused; $WORKLOAD) | $with |"
awk -v a="$with" -v b="$base" 'BEGIN { printf "| ratio | %.4f (+%.2f %%) |\n", a / b, 100 * (a - b) / b }'
