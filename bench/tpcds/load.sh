#!/usr/bin/env bash
# TPC-DS into the database $PGDATABASE of a running cluster (PG* variables set): generates the
# data at scale SF with DuckDB's tpcds extension (bench/tpcds/generate.py, cached under
# /tmp/pitstop-tpcds/sfSF), creates the 24 tables with their primary keys (TPC-DS spec 2.2: the
# surrogate key of each dimension, the ticket/order key with the item of each fact table),
# loads them, VACUUM ANALYZE, and writes the 99 queries, translated where PostgreSQL refuses
# DuckDB's dialect (bench/tpcds/translate.sed, one line and its reason per change), to $W/qNN.sql.
# Usage: SF=0.1 W=dir bash bench/tpcds/load.sh   (psql on PATH or as $PSQL)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
SF="${SF:-0.1}"; OUT="/tmp/pitstop-tpcds/sf$SF"; PSQL="${PSQL:-psql}"
VENV=/tmp/pitstop-tpcds/venv
if [ ! -f "$OUT/schema.sql" ]; then
    if [ ! -x "$VENV/bin/python" ]; then
        python3 -m venv "$VENV"
        # The extension's wheel is built for one DuckDB release: the two versions must match.
        "$VENV/bin/pip" install --quiet duckdb==1.5.5 duckdb-extension-tpcds==1.5.5
    fi
    "$VENV/bin/python" "$here/generate.py" "$SF" "$OUT"
fi
chmod -R a+rX /tmp/pitstop-tpcds
"$PSQL" -X -q -v ON_ERROR_STOP=1 -f "$OUT/schema.sql"
while read -r t; do
    "$PSQL" -X -q -v ON_ERROR_STOP=1 -c "\\copy $t FROM '$OUT/data/$t.csv' (FORMAT csv, DELIMITER '|', NULL '')"
done < "$OUT/tables"
"$PSQL" -X -q -v ON_ERROR_STOP=1 -f "$here/keys.sql" -c "VACUUM ANALYZE"
if [ -n "${W:-}" ]; then
    mkdir -p "$W"
    for f in "$OUT"/queries/*.sql; do sed -E -f "$here/translate.sed" "$f" > "$W/q$(basename "$f")"; done
fi
