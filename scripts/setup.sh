#!/usr/bin/env bash
# Idempotent installer for everything pitstop needs on a fresh Debian machine:
# system packages, cargo-pgrx (pinned) and `cargo pgrx init` for PostgreSQL 15.
# Each step is skipped when already satisfied; any failing step stops the script
# with a message naming that step.
set -euo pipefail

# --pg 17,18: also the chroots of those majors (scripts/pgchroot.sh) and their pgrx entries.
EXTRA_MAJORS=()
while [ $# -gt 0 ]; do
    case "$1" in
        --pg) IFS=, read -r -a EXTRA_MAJORS <<< "${2:?--pg needs majors, e.g. 17,18}"; shift 2 ;;
        *) printf 'setup: unknown argument %s (usage: setup.sh [--pg 17,18])\n' "$1" >&2; exit 2 ;;
    esac
done

PGRX_VERSION="0.18.1"
PG_CONFIG="/usr/bin/pg_config"
PACKAGES=(postgresql-15 postgresql-server-dev-15 postgresql-contrib libclang-dev clang
          redis-server redis-tools sudo make pkg-config libssl-dev openssl valgrind
          dpkg-dev man-db debootstrap)
PACKAGES+=(chromium)  # the console's browser tests (tests/tests/console.rs)
PACKAGES+=(prometheus)  # promtool, for tests/tests/metrics.rs (the service it ships is not needed)
PACKAGES+=(tmux)  # pitstop top under a real terminal (tests/tests/top.rs)

say()  { printf 'setup: %s\n' "$*"; }
fail() { printf 'setup: FAILED: %s\n' "$*" >&2; exit 1; }

if [ "$(id -u)" -eq 0 ]; then SUDO=""; else SUDO="sudo"; fi

# 1. System packages.
missing=()
for pkg in "${PACKAGES[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed"; then
        missing+=("$pkg")
    fi
done
if [ "${#missing[@]}" -gt 0 ]; then
    say "installing packages: ${missing[*]}"
    $SUDO apt-get update -qq || fail "apt-get update"
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null \
        || fail "apt-get install ${missing[*]}"
else
    say "system packages present"
fi

# The Debian package starts its own cluster on 5432 and a redis on 6379; pitstop's tests and
# demo use private instances on free ports, so the system services are left as they are.

# 2. cargo-pgrx, pinned (0.19 needs a newer Rust than this machine has).
command -v cargo >/dev/null || fail "cargo not found: install the Rust toolchain first"
if cargo pgrx --version 2>/dev/null | grep -q " ${PGRX_VERSION}\$"; then
    say "cargo-pgrx ${PGRX_VERSION} present"
else
    say "installing cargo-pgrx ${PGRX_VERSION} (takes several minutes once)"
    cargo install cargo-pgrx --version "=${PGRX_VERSION}" --locked \
        || fail "cargo install cargo-pgrx ${PGRX_VERSION}"
fi

# 3. cargo pgrx init against the system PostgreSQL 15.
PGRX_HOME="${PGRX_HOME:-$HOME/.pgrx}"
if [ -f "$PGRX_HOME/config.toml" ] && grep -q "^pg15 = \"${PG_CONFIG}\"" "$PGRX_HOME/config.toml"; then
    say "cargo pgrx already initialised for pg15"
else
    say "cargo pgrx init --pg15 ${PG_CONFIG}"
    cargo pgrx init --pg15 "$PG_CONFIG" || fail "cargo pgrx init"
fi

# 4. The postgres OS user runs test clusters; it must be able to reach the checkout
#    (tests place data directories under target/).
id postgres >/dev/null 2>&1 || fail "OS user 'postgres' missing (postgresql-15 should create it)"

# 5. Other majors, in chroots, known to pgrx by their pg_config wrappers.
for major in "${EXTRA_MAJORS[@]}"; do
    [ "$major" = 15 ] && continue
    bash "$(dirname "$0")/pgchroot.sh" "$major" || fail "PostgreSQL $major chroot"
    wrapper="/opt/pitstop-pg/$major/pg_config"
    if ! grep -q "^pg${major} = \"${wrapper}\"" "$PGRX_HOME/config.toml"; then
        sed -i "/^pg${major} = /d" "$PGRX_HOME/config.toml"
        echo "pg${major} = \"${wrapper}\"" >> "$PGRX_HOME/config.toml"
    fi
done

say "ready"
