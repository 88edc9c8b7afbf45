# Shared by the benchmark scripts: a throwaway cluster running from a private copy of the
# PostgreSQL installation. `cargo pgrx install`/`test` rewrite the system pitstop.so in place,
# which crashes a server that has it loaded; a copy also pins one build for the whole run.
# shellcheck shell=bash

as_postgres() { if [ "$(id -u)" -eq 0 ]; then sudo -u postgres -- "$@"; else "$@"; fi; }

# private_cluster DIR PORT EXTRA_CONF: copies the installation under DIR/pg, creates and starts
# a cluster in DIR/data listening on a Unix socket in DIR; sets BIN and the PG* variables.
private_cluster() {
    local dir="$1" port="$2" conf="$3"
    stop_private_cluster "$dir"
    rm -rf "$dir"
    private_install "$dir"
    as_postgres "$BIN/initdb" -D "$dir/data" -U postgres --auth=trust >/dev/null
    printf "port = %s\nlisten_addresses = ''\nunix_socket_directories = '%s'\n%s\n" "$port" "$dir" "$conf" |
        as_postgres tee -a "$dir/data/postgresql.conf" >/dev/null
    as_postgres "$BIN/pg_ctl" start -D "$dir/data" -l "$dir/log" -w >/dev/null
    export PGHOST="$dir" PGPORT="$port" PGUSER=postgres PGDATABASE=postgres
}

# private_install DIR: a copy of the PostgreSQL installation (with pitstop, or the build of
# PITSTOP_PACKAGE) under DIR/pg, owned by postgres; sets BIN to its bindir.
private_install() {
    local dir="$1" prefix="$1/pg" d
    BIN="$prefix$(pg_config --bindir)"
    [ -f "$(pg_config --pkglibdir)/pitstop.so" ] || [ -n "${PITSTOP_PACKAGE:-}" ] ||
        { echo "pitstop is not installed: make install-ext" >&2; exit 1; }
    # Postgres finds lib/ and share/ relative to its binary, so the copy is self-contained.
    for d in "$(dirname "$(pg_config --bindir)")" "$(pg_config --sharedir)"; do
        mkdir -p "$prefix$(dirname "$d")"; cp -a "$d" "$prefix$d"
    done
    overlay_package "$prefix"
    if [ "$(id -u)" -eq 0 ]; then chown -R postgres "$dir"; fi
}

# overlay_package PREFIX: with PITSTOP_PACKAGE set (a `cargo pgrx package --out-dir`
# directory), that build of pitstop replaces the installed one in the copy under PREFIX, so a
# build can be measured without installing it.
overlay_package() {
    if [ -n "${PITSTOP_PACKAGE:-}" ]; then
        [ -f "$PITSTOP_PACKAGE$(pg_config --pkglibdir)/pitstop.so" ] || { echo "PITSTOP_PACKAGE=$PITSTOP_PACKAGE has no pitstop.so" >&2; exit 1; }
        cp -a "$PITSTOP_PACKAGE"/. "$1"/
    fi
}

stop_private_cluster() {
    local bin="$1/pg$(pg_config --bindir)"
    if [ -f "$1/data/postmaster.pid" ] && [ -x "$bin/pg_ctl" ]; then
        as_postgres "$bin/pg_ctl" stop -D "$1/data" -m fast -w >/dev/null || true
    fi
}

bench_psql() { "$BIN/psql" -X -q -v ON_ERROR_STOP=1 "$@"; }

# Readings of a process from /proc: CPU time in clock ticks (utime + stime, all threads) and a
# /proc/PID/status field in kB (VmRSS, VmHWM).
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
status_kb() { awk -v k="$2:" '$1 == k {print $2}' "/proc/$1/status"; }
now() { date +%s.%N; }

# start_daemon_with CONFIG_TEXT READY_PATTERN: runs `$PITSTOP run` with CONFIG_TEXT (written
# to $DIR/pitstop.toml; its [http] should listen on 127.0.0.1:0), log in $DIR/daemon.log, and
# waits until /status contains READY_PATTERN; sets daemon_pid and HTTP_PORT.
start_daemon_with() {
    printf '%s\n' "$1" > "$DIR/pitstop.toml"
    : > "$DIR/daemon.log"
    "$PITSTOP" run --config "$DIR/pitstop.toml" 2>>"$DIR/daemon.log" &
    daemon_pid=$!
    for _ in $(seq 1 200); do grep -q "http: listening on" "$DIR/daemon.log" && break; sleep 0.05; done
    HTTP_PORT="$(grep -o 'listening on 127.0.0.1:[0-9]*' "$DIR/daemon.log" | head -1 | cut -d: -f2)"
    for _ in $(seq 1 300); do
        curl -sf "http://127.0.0.1:$HTTP_PORT/status" | grep -q "$2" && return 0; sleep 0.05
    done
    echo "daemon did not come up:" >&2; cat "$DIR/daemon.log" >&2; exit 1
}
stop_daemon() { kill -TERM "$daemon_pid"; wait "$daemon_pid" || true; daemon_pid=""; }

# The median of the numbers on stdin, one per line.
median() { sort -g | awk '{a[NR] = $1} END {print (NR % 2 ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2)}'; }

# time_workload LABEL: runs every query of $QUERIES $RUNS times with the caller's run_ms (its
# time in ms, or "timeout"; a query that timed out is not run again) and fills the caller's
# TIME[LABEL:q] with the median, or "timeout", and LOADAVG[LABEL].
time_workload() {
    local run q ms; declare -A runs=()
    for run in $(seq 1 "$RUNS"); do
        for q in $QUERIES; do
            [ "${runs[$q]:-}" = timeout ] && continue
            ms=$(run_ms "$q")
            if [ "$ms" = timeout ]; then runs[$q]=timeout; else runs[$q]+="$ms "; fi
        done
        say "$1: run $run/$RUNS done"
    done
    # A shared 2-core VM: other work during the runs shows here and is worth knowing.
    LOADAVG[$1]="$(cut -d' ' -f1-3 /proc/loadavg)"
    for q in $QUERIES; do
        if [ "${runs[$q]}" = timeout ]; then TIME[$1:$q]=timeout; else TIME[$1:$q]=$(tr ' ' '\n' <<<"${runs[$q]}" | grep -v '^$' | median); fi
    done
}
