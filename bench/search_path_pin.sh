#!/usr/bin/env bash
# What pinning the search_path of pitstop's own SQL costs (0.5.0 security fix): the same
# calls timed in two private clusters side by side, one per build, in alternating rounds.
#   BEFORE=<package dir> AFTER=<package dir> [ROUNDS=5] bash bench/search_path_pin.sh
# (package dirs as `cargo pgrx package --out-dir` makes them).
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/lib.sh
: "${BEFORE:?a package of the build before}" "${AFTER:?a package of the build after}"
ROUNDS="${ROUNDS:-5}"
BASE="${BASE:-/tmp/pitstop-pin-bench}"

SETUP="CREATE EXTENSION pg_stat_statements; CREATE EXTENSION pitstop;
CREATE TABLE customers(id int PRIMARY KEY, email text, region int);
CREATE TABLE orders(id int PRIMARY KEY, customer_id int REFERENCES customers, status int, created_at timestamptz, total numeric);
INSERT INTO customers SELECT g, 'c' || g || '@x', g % 50 FROM generate_series(1, 50000) g;
INSERT INTO orders SELECT g, 1 + g % 50000, g % 7, now() - g * interval '1 minute', g % 1000 FROM generate_series(1, 300000) g;
ANALYZE;"
WORKLOAD="ARRAY['SELECT * FROM orders WHERE customer_id = 42',
  'SELECT count(*) FROM orders WHERE status = 3 AND created_at > now() - interval ''1 day''',
  'SELECT c.email, sum(o.total) FROM customers c JOIN orders o ON o.customer_id = c.id WHERE c.region = 7 GROUP BY c.email',
  'SELECT * FROM customers WHERE lower(email) = ''c5@x''',
  'SELECT * FROM orders WHERE total > 990 ORDER BY created_at DESC LIMIT 10']"
CALLS=(
  "advice|SELECT count(*) FROM pitstop.suggest_indexes(queries => $WORKLOAD)"
  "index_health|SELECT count(*) FROM pitstop.index_health"
  "vacuum_health|SELECT count(*) FROM pitstop.vacuum_health"
  "top_queries|SELECT count(*) FROM pitstop.top_queries()"
)
declare -A DIRS=([before]="$BASE/before" [after]="$BASE/after") PORTS=([before]=55951 [after]=55952)
for build in before after; do
    pkg="$BEFORE"; [ "$build" = after ] && pkg="$AFTER"
    PITSTOP_PACKAGE="$pkg" private_cluster "${DIRS[$build]}" "${PORTS[$build]}" \
        "shared_preload_libraries = 'pg_stat_statements,pitstop'"
    bench_psql -c "$SETUP" >/dev/null
done
trap 'for b in before after; do stop_private_cluster "${DIRS[$b]}"; done' EXIT

# ms per call of $2 in the cluster of build $1: 20 calls in one session, timed by the server
timed() {
    PGHOST="${DIRS[$1]}" PGPORT="${PORTS[$1]}" bench_psql -At -c "DO \$\$
        DECLARE t0 timestamptz := clock_timestamp();
        BEGIN
            FOR i IN 1..20 LOOP PERFORM ($2); END LOOP;
            RAISE NOTICE 'ms %', extract(epoch FROM clock_timestamp() - t0) * 1000 / 20;
        END \$\$" 2>&1 | sed -n 's/.*NOTICE:  ms //p'
}
printf '%-14s %12s %12s %8s\n' call "before ms" "after ms" ratio
for call in "${CALLS[@]}"; do
    name="${call%%|*}" sql="${call#*|}"
    : > "$BASE/$name.before"; : > "$BASE/$name.after"
    for _ in $(seq 1 "$ROUNDS"); do
        timed before "$sql" >> "$BASE/$name.before"
        timed after "$sql" >> "$BASE/$name.after"
    done
    b=$(median < "$BASE/$name.before"); a=$(median < "$BASE/$name.after")
    printf '%-14s %12.2f %12.2f %8.3f\n' "$name" "$b" "$a" "$(echo "$a / $b" | bc -l)"
done
