#!/usr/bin/env bash
# Debian packages of pitstop, staged by hand and built with plain `dpkg-deb` (no debhelper):
#
#   postgresql-MAJOR-pitstop   the extension for one PostgreSQL major: pitstop.so, pitstop.control,
#                              the install script of this version and of every earlier one, and
#                              the upgrade scripts (pitstop--A--B.sql)
#   pitstop                    the command line and daemon: /usr/bin/pitstop, the systemd unit,
#                              /etc/pitstop/pitstop.toml (conffile), manual pages
#
#   scripts/package.sh [PG_CONFIG[=PREFIX]]...      (make package)
#
# One extension package per PG_CONFIG (default: pg_config on the PATH). PREFIX is a directory
# that PG_CONFIG's paths carry and the installed system's do not, such as the root of a chroot
# whose pg_config wrapper prefixes every path with it (scripts/pgchroot.sh): it is stripped, so
# the package installs into the real /usr/... directories.
#
# Environment: OUT_DIR (default $CARGO_TARGET_DIR/debian, else target/debian), DEB_REVISION
# (the Debian revision, default 1), DEBFULLNAME and DEBEMAIL (the Maintainer field; default
# git's user.name and user.email). The version is the workspace's (Cargo.toml).
set -euo pipefail
cd "$(dirname "$0")/.."

say()  { printf 'package: %s\n' "$*"; }
fail() { printf 'package: FAILED: %s\n' "$*" >&2; exit 1; }

for tool in dpkg-deb dpkg-shlibdeps cargo; do
    command -v "$tool" >/dev/null || fail "$tool is missing (dpkg-dev, cargo)"
done

TARGET="${CARGO_TARGET_DIR:-target}"
case "$TARGET" in /*) ;; *) TARGET="$PWD/$TARGET" ;; esac
OUT_DIR="${OUT_DIR:-$TARGET/debian}"
UPSTREAM=$(awk '/^\[workspace.package\]/ { s = 1; next } /^\[/ { s = 0 } s && $1 == "version" { gsub(/"/, "", $3); print $3 }' Cargo.toml)
[ -n "$UPSTREAM" ] || fail "no version in Cargo.toml's [workspace.package]"
VERSION="$UPSTREAM-${DEB_REVISION:-1}"
ARCH=$(dpkg --print-architecture)
name="${DEBFULLNAME:-$(git config user.name || true)}"
email="${DEBEMAIL:-$(git config user.email || true)}"
# Without either (a CI machine), the project as Maintainer at a reserved .invalid address:
# set DEBFULLNAME and DEBEMAIL for packages that leave this machine.
MAINTAINER="${name:-pitstop developers} <${email:-maintainers@pitstop.invalid}>"
# Reproducible: the changelog date and the files' times are the commit's.
EPOCH="${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct)}"
export SOURCE_DATE_EPOCH="$EPOCH"
DATE=$(date -u -R -d "@$EPOCH")

WORK="$TARGET/debian-stage"
rm -rf "$WORK"
mkdir -p "$WORK" "$OUT_DIR"

PG_CONFIGS=("$@")
[ ${#PG_CONFIGS[@]} -gt 0 ] || PG_CONFIGS=("$(command -v pg_config || fail "no pg_config on the PATH")")

# `dpkg-shlibdeps` for the given ELF files: "libc6 (>= 2.34), …". It wants a source package
# around it; an empty control file is enough.
shlibs() {
    mkdir -p "$WORK/shlibs/debian"
    printf 'Source: pitstop\n\nPackage: pitstop\nArchitecture: any\n' > "$WORK/shlibs/debian/control"
    # The extension's symbols from the postgres executable are resolved at load time: not a
    # library dependency (the warnings say so).
    (cd "$WORK/shlibs" && dpkg-shlibdeps -O --warnings=0 "$@") | sed -n 's/^shlibs:Depends=//p'
}

# The Rust crates linked into the binaries, one Comment line each, for the copyright file.
crate_licenses() {
    cargo metadata --format-version 1 --locked --filter-platform "$(rustc -vV | sed -n 's/^host: //p')" \
        | python3 -c '
import json, sys
m = json.load(sys.stdin)
pkgs = {p["id"]: p for p in m["packages"]}
nodes = {n["id"]: n for n in m["resolve"]["nodes"]}
roots = [p["id"] for p in m["packages"] if p["name"] in ("pitstop-daemon", "pitstop")]
seen, todo = set(), list(roots)
while todo:
    node = nodes[todo.pop()]
    for dep in node["deps"]:
        linked = any(k["kind"] is None for k in dep["dep_kinds"])
        macro = any("proc-macro" in t["kind"] for t in pkgs[dep["pkg"]]["targets"])
        if linked and not macro and dep["pkg"] not in seen:
            seen.add(dep["pkg"]); todo.append(dep["pkg"])
for p in sorted((pkgs[i] for i in seen), key=lambda p: (p["name"], p["version"])):
    print(" %s %s: %s" % (p["name"], p["version"], p["license"] or "see the crate"))
'
}

# fill TEMPLATE DEST KEY=VALUE...: the template with every @KEY@ replaced.
fill() {
    local template="$1" dest="$2"; shift 2
    python3 - "$template" "$dest" "$@" <<'PY'
import re, sys
template, dest, *pairs = sys.argv[1:]
values = dict(p.split("=", 1) for p in pairs)
text = open(template).read()
def value(m):
    if m.group(1) not in values:
        sys.exit(f"{template}: no value for @{m.group(1)}@")
    return values[m.group(1)]
open(dest, "w").write(re.sub(r"@([A-Z_]+)@", value, text))
PY
}

# docs PACKAGE ROOT DIR [MAJOR]: copyright and changelog.Debian.gz in /usr/share/doc/PACKAGE,
# the lintian overrides of packaging/DIR.
docs() {
    local doc="$2/usr/share/doc/$1"
    install -d "$doc"
    fill packaging/copyright "$doc/copyright" CRATES="$CRATES" YEAR="$(date -u -d "@$EPOCH" +%Y)"
    # Tags that do not apply to packages built outside the Debian archive (see the file).
    install -d "$2/usr/share/lintian/overrides"
    fill "packaging/$3/lintian-overrides" "$2/usr/share/lintian/overrides/$1" MAJOR="${4:-}"
    fill packaging/changelog "$doc/changelog.Debian" VERSION="$VERSION" MAINTAINER="$MAINTAINER" DATE="$DATE"
    gzip -9n "$doc/changelog.Debian"
}

# build ROOT: DEBIAN/md5sums, fixed times and permissions, then the .deb into OUT_DIR.
build() {
    local root="$1"
    (cd "$root" && find . -path ./DEBIAN -prune -o -type f -printf '%P\0' | LC_ALL=C sort -z | xargs -0r md5sum) > "$root/DEBIAN/md5sums"
    chmod 0644 "$root/DEBIAN/md5sums" "$root/DEBIAN/control"
    find "$root" -type d -exec chmod 0755 {} +
    find "$root" -exec touch --no-dereference -d "@$EPOCH" {} +
    dpkg-deb --root-owner-group -Zxz --build "$root" "$OUT_DIR" >/dev/null
}

installed_size() {
    du -sk --exclude=DEBIAN "$1" | cut -f1
}

# ELF files as dh_strip leaves them: no debug information, no symbols the loader does not need.
strip_elf() {
    strip --strip-unneeded --remove-section=.comment --remove-section=.note "$@"
}

CRATES=$(crate_licenses)
[ -n "$CRATES" ] || fail "cargo metadata listed no crates"

# ---- postgresql-MAJOR-pitstop, one per pg_config ----------------------------------------------
MAJORS=()
for spec in "${PG_CONFIGS[@]}"; do
    pg_config="${spec%%=*}"
    prefix=""
    [ "$spec" = "$pg_config" ] || prefix="${spec#*=}"
    prefix="${prefix%/}"
    [ -x "$pg_config" ] || fail "$pg_config is not an executable pg_config"
    major=$("$pg_config" --version | sed -n 's/^PostgreSQL \([0-9][0-9]*\).*/\1/p')
    [ -n "$major" ] || fail "$pg_config --version: $("$pg_config" --version)"
    pkglibdir=$("$pg_config" --pkglibdir)
    sharedir=$("$pg_config" --sharedir)
    # The paths on the target system: PG_CONFIG's without PREFIX.
    if [ -n "$prefix" ]; then
        case "$pkglibdir/" in "$prefix"/*) ;; *) fail "$pkglibdir does not start with $prefix" ;; esac
        case "$sharedir/" in "$prefix"/*) ;; *) fail "$sharedir does not start with $prefix" ;; esac
    fi
    real_libdir="${pkglibdir#"$prefix"}"
    real_extdir="${sharedir#"$prefix"}/extension"
    case "$real_libdir:$real_extdir" in
        /usr/*:/usr/*) ;;
        *) fail "$pg_config installs into $real_libdir and $real_extdir, not /usr: a chroot's pg_config needs =PREFIX" ;;
    esac

    say "postgresql-$major-pitstop $VERSION ($pg_config${prefix:+, without $prefix})"
    pgrx_out="$WORK/pgrx-$major"
    cargo pgrx package -p pitstop --pg-config "$pg_config" --out-dir "$pgrx_out" >&2
    built_lib="$pgrx_out$pkglibdir"
    built_ext="$pgrx_out$sharedir/extension"
    if [ ! -f "$built_lib/pitstop.so" ] || [ ! -f "$built_ext/pitstop.control" ]; then
        fail "cargo pgrx package left no pitstop.so or pitstop.control under $pgrx_out"
    fi
    unexpected=$(cd "$pgrx_out" && find . -type f ! -path ".$pkglibdir/pitstop.so" ! -path ".$sharedir/extension/pitstop*" )
    [ -z "$unexpected" ] || fail "cargo pgrx package made files this script does not ship: $unexpected"

    root="$WORK/postgresql-$major-pitstop"
    install -d "$root/DEBIAN" "$root$real_libdir" "$root$real_extdir"
    install -m 0644 "$built_lib/pitstop.so" "$root$real_libdir/pitstop.so"
    strip_elf "$root$real_libdir/pitstop.so"
    # pgrx ships this version's install script and the upgrade scripts; CREATE EXTENSION
    # pitstop VERSION 'A' (and the upgrade test) needs the frozen install scripts of earlier
    # versions too, as `make install-ext` copies them.
    install -m 0644 "$built_ext"/pitstop.control "$built_ext"/pitstop--*.sql "$root$real_extdir/"
    for script in sql/pitstop--*.sql; do
        shipped="$root$real_extdir/$(basename "$script")"
        if [ -e "$shipped" ]; then
            cmp -s "$script" "$shipped" || fail "pgrx packaged another $(basename "$script") than sql/ has"
        else
            install -m 0644 "$script" "$shipped"
        fi
    done
    docs "postgresql-$major-pitstop" "$root" extension "$major"
    deps=$(shlibs "$root$real_libdir/pitstop.so")
    [ -n "$deps" ] || fail "dpkg-shlibdeps found no library pitstop.so needs"
    fill packaging/extension/control "$root/DEBIAN/control" MAJOR="$major" VERSION="$VERSION" ARCH="$ARCH" \
        MAINTAINER="$MAINTAINER" INSTALLED_SIZE="$(installed_size "$root")" SHLIBS="$deps"
    build "$root"
    MAJORS+=("$major")
done

# ---- pitstop ------------------------------------------------------------------------------
say "pitstop $VERSION"
cargo build -p pitstop-daemon --release --locked >&2
bin="$TARGET/release/pitstop"
root="$WORK/pitstop"
install -d "$root/DEBIAN" "$root/usr/bin" "$root/lib/systemd/system" "$root/etc/pitstop" \
    "$root/usr/share/man/man1" "$root/usr/share/doc/pitstop/examples"
install -m 0755 "$bin" "$root/usr/bin/pitstop"
strip_elf "$root/usr/bin/pitstop"
# The unit in the repository is installed by hand, with the binary in /usr/local/bin and no
# manual page (systemd-analyze verify fails on a Documentation= page that is not installed).
sed -e 's|^ExecStart=/usr/local/bin/pitstop |ExecStart=/usr/bin/pitstop |' \
    -e 's|^Documentation=.*|Documentation=man:pitstop-run(1)|' daemon/systemd/pitstop.service \
    > "$root/lib/systemd/system/pitstop.service"
grep -q '^ExecStart=/usr/bin/pitstop run ' "$root/lib/systemd/system/pitstop.service" \
    || fail "daemon/systemd/pitstop.service: ExecStart=/usr/local/bin/pitstop run … not found"
chmod 0644 "$root/lib/systemd/system/pitstop.service"
# Shipped 0644; postinst makes it 0640 root:pitstop once the group exists.
install -m 0644 packaging/pitstop/pitstop.toml "$root/etc/pitstop/pitstop.toml"
install -m 0644 daemon/pitstop.example.toml "$root/usr/share/doc/pitstop/examples/pitstop.example.toml"
"$root/usr/bin/pitstop" man-pages "$root/usr/share/man/man1" >/dev/null
chmod 0644 "$root"/usr/share/man/man1/*.1
gzip -9n "$root"/usr/share/man/man1/*.1
docs pitstop "$root" pitstop
install -m 0644 packaging/pitstop/conffiles "$root/DEBIAN/conffiles"
install -m 0755 packaging/pitstop/postinst packaging/pitstop/prerm packaging/pitstop/postrm "$root/DEBIAN/"
suggests=""
for major in "${MAJORS[@]}"; do suggests="${suggests:+$suggests | }postgresql-$major-pitstop"; done
deps=$(shlibs "$root/usr/bin/pitstop")
[ -n "$deps" ] || fail "dpkg-shlibdeps found no library pitstop needs"
fill packaging/pitstop/control "$root/DEBIAN/control" VERSION="$VERSION" ARCH="$ARCH" MAINTAINER="$MAINTAINER" \
    INSTALLED_SIZE="$(installed_size "$root")" SHLIBS="$deps" SUGGESTS="$suggests"
build "$root"

for major in "${MAJORS[@]}"; do say "$OUT_DIR/postgresql-${major}-pitstop_${VERSION}_$ARCH.deb"; done
say "$OUT_DIR/pitstop_${VERSION}_$ARCH.deb"
