#!/usr/bin/env bash
# PostgreSQL majors that Debian bookworm does not ship (17 from trixie, 18 from forky), installed
# from Debian's binary packages into a chroot, for building and testing pitstop against them.
#
#   scripts/pgchroot.sh MAJOR     prepare /opt/pitstop-pg/MAJOR (idempotent; mounts after a reboot)
#
# What it makes, under /opt/pitstop-pg/MAJOR:
#   root/       the chroot (debootstrap minbase + postgresql-MAJOR + its server headers)
#   bin/        one wrapper per server binary: run as root, it runs the chroot's binary as the
#               postgres user inside the chroot (`chroot --userspec`), so host paths and ports work
#   pg_config   the chroot's pg_config with every path prefixed by root/ (headers and install
#               directories), except --bindir, which names bin/: pgrx builds and installs with it
#
# The chroot shares the host's /tmp (test clusters and sockets live there), /dev and /proc, and
# has a postgres user with the host's uid and gid, so data directories are owned alike on both
# sides. The Debian mirror is the one apt on this machine is configured with.
set -euo pipefail

MAJOR="${1:?usage: pgchroot.sh MAJOR (17 or 18)}"
BASE="/opt/pitstop-pg/$MAJOR"
ROOT="$BASE/root"

say()  { printf 'pgchroot %s: %s\n' "$MAJOR" "$*"; }
fail() { printf 'pgchroot %s: FAILED: %s\n' "$MAJOR" "$*" >&2; exit 1; }

[ "$(id -u)" -eq 0 ] || fail "run as root (debootstrap, chroot and mount need it)"

case "$MAJOR" in
    17) SUITE=trixie; SCRIPT=trixie; APT_OPTS=() ;;
    # forky's debootstrap script is sid's; its Release file is past its Valid-Until date.
    18) SUITE=forky; SCRIPT=sid; APT_OPTS=(-o Acquire::Check-Valid-Until=false) ;;
    *) fail "unsupported major $MAJOR (17 or 18; 15 is the host's own)" ;;
esac
APT_OPTS+=(-o APT::Install-Recommends=false -qq)

# The Debian archive apt is configured with (deb822 .sources or one-line sources.list), never
# the security archive.
debian_mirror() {
    local uri
    uri=$(cat /etc/apt/sources.list.d/*.sources 2>/dev/null \
            | awk '/^URIs:/ { for (i = 2; i <= NF; i++) print $i }' | grep -v security | head -n1 || true)
    if [ -z "$uri" ]; then
        uri=$(cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null \
                | awk '$1 == "deb" { for (i = 2; i <= NF; i++) if ($i ~ /^[a-z]+:\/\//) { print $i; exit } }' \
                | grep -v security | head -n1 || true)
    fi
    [ -n "$uri" ] || fail "no Debian archive in apt's sources"
    echo "$uri"
}

mount_once() { # mount_once TARGET MOUNT-ARGS...
    local target="$1"; shift
    mountpoint -q "$target" || mount "$@" "$target" || fail "mount $target"
}

# 1. The base system.
if [ ! -x "$ROOT/usr/bin/apt-get" ]; then
    command -v debootstrap >/dev/null || apt-get install -y -qq debootstrap >/dev/null || fail "install debootstrap"
    mirror=$(debian_mirror)
    say "debootstrap $SUITE from $mirror"
    # Never into the host's /dev or /tmp, should a half-made chroot still have them mounted.
    rm -rf --one-file-system "$ROOT"; mkdir -p "$ROOT"
    debootstrap --variant=minbase "$SUITE" "$ROOT" "$mirror" "/usr/share/debootstrap/scripts/$SCRIPT" \
        > "$BASE/debootstrap.log" 2>&1 || fail "debootstrap (log: $BASE/debootstrap.log)"
fi

# 2. Shared directories: test clusters, sockets and shared memory.
mkdir -p "$ROOT/proc" "$ROOT/dev" "$ROOT/tmp"
mount_once "$ROOT/proc" -t proc proc
mount_once "$ROOT/dev" --rbind /dev
mount_once "$ROOT/tmp" --bind /tmp

# 3. The postgres user with the host's ids, then the server and its headers.
uid=$(id -u postgres) || fail "host user postgres missing (setup.sh installs postgresql-15 first)"
gid=$(id -g postgres)
if ! chroot "$ROOT" getent passwd postgres >/dev/null; then
    chroot "$ROOT" groupadd --gid "$gid" postgres || fail "groupadd postgres"
    chroot "$ROOT" useradd --system --uid "$uid" --gid "$gid" --home-dir /var/lib/postgresql \
        --shell /bin/bash postgres || fail "useradd postgres"
fi
[ "$(chroot "$ROOT" id -u postgres)" = "$uid" ] || fail "postgres has another uid in the chroot than on the host"
if [ ! -x "$ROOT/usr/lib/postgresql/$MAJOR/bin/postgres" ] || [ ! -x "$ROOT/usr/lib/postgresql/$MAJOR/bin/pg_config" ]; then
    say "installing postgresql-$MAJOR"
    # No cluster of its own: tests create theirs.
    mkdir -p "$ROOT/etc/postgresql-common/createcluster.d"
    echo "create_main_cluster = false" > "$ROOT/etc/postgresql-common/createcluster.d/pitstop.conf"
    chroot "$ROOT" apt-get "${APT_OPTS[@]}" update || fail "apt-get update in the chroot"
    DEBIAN_FRONTEND=noninteractive chroot "$ROOT" apt-get "${APT_OPTS[@]}" install -y \
        "postgresql-$MAJOR" "postgresql-server-dev-$MAJOR" > "$BASE/apt.log" 2>&1 \
        || fail "apt-get install postgresql-$MAJOR (log: $BASE/apt.log)"
fi

# 4. Wrappers: the server binaries run inside the chroot as postgres.
REAL_BINDIR="/usr/lib/postgresql/$MAJOR/bin"
mkdir -p "$BASE/bin"
for real in "$ROOT$REAL_BINDIR"/*; do
    name=$(basename "$real")
    [ "$name" = pg_config ] && continue
    cat > "$BASE/bin/$name.new" <<EOF
#!/bin/sh
# PostgreSQL $MAJOR's $name, inside $ROOT as the postgres user (made by scripts/pgchroot.sh).
[ "\$(id -u)" -eq 0 ] || { echo "$name: run as root: it enters the chroot $ROOT as postgres" >&2; exit 1; }
exec chroot --userspec=postgres:postgres "$ROOT" "$REAL_BINDIR/$name" "\$@"
EOF
    chmod 755 "$BASE/bin/$name.new"; mv -f "$BASE/bin/$name.new" "$BASE/bin/$name"
done
ln -sfn "$BASE/pg_config" "$BASE/bin/pg_config"
# Tells the test harness (tests/src/lib.rs) to run these as root, not through sudo -u postgres.
touch "$BASE/bin/.runs-as-postgres"

cat > "$BASE/pg_config.new" <<EOF
#!/bin/sh
# PostgreSQL $MAJOR's pg_config from the chroot $ROOT, its paths seen from the host
# (made by scripts/pgchroot.sh). --bindir names the wrappers that enter the chroot.
out=\$(chroot "$ROOT" "$REAL_BINDIR/pg_config" "\$@") || exit \$?
# Prefix absolute paths (whole values, and -I/-L arguments inside flag lists), then name the
# wrappers wherever the value is the bindir itself.
printf '%s\n' "\$out" \
    | sed -e 's#\(^\|[ =]\|-I\|-L\)/\(usr\|etc\|var\|lib\)/#\1$ROOT/\2/#g' \
          -e 's#^\(BINDIR = \)\?$ROOT$REAL_BINDIR\$#\1$BASE/bin#'
EOF
chmod 755 "$BASE/pg_config.new"; mv -f "$BASE/pg_config.new" "$BASE/pg_config"

version=$("$BASE/pg_config" --version)
say "ready: $version; pg_config $BASE/pg_config"
