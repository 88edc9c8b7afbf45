# pitstop: the two commands of the README, and the steps they are made of.
SHELL := /bin/bash
# The PostgreSQL major to build and test against: 15 is the host's; 17 and 18 run in chroots
# (scripts/pgchroot.sh) whose pg_config wrapper and server wrappers make them look local.
PG ?= 15
MATRIX := 15 17 18
ifeq ($(PG),15)
PG_CONFIG ?= /usr/bin/pg_config
# Outside the checkout: the postgres user may not be able to enter the clone's directory.
PGRX_PGDATA ?= /tmp/pitstop-pgrx-test-data
else
PG_CONFIG ?= /opt/pitstop-pg/$(PG)/pg_config
PGRX_PGDATA ?= /tmp/pitstop-pgrx-test-data-$(PG)
endif
# The integration tests' clusters use this major's binaries (tests/src/lib.rs).
export PG_CONFIG
# A chroot's mounts do not survive a reboot: pgchroot.sh (idempotent) makes it ready.
PG_READY := $(if $(filter-out 15,$(PG)),bash scripts/pgchroot.sh $(PG) >/dev/null,true)

.PHONY: setup build install-ext test test-matrix lint test-unit test-pg test-integration package test-package demo demo-stop bench clean

setup:
	@bash scripts/setup.sh $(if $(filter-out 15,$(PG)),--pg $(PG))

build:
	cargo build -p pitstop-daemon

# Installs the freshly built extension into the PostgreSQL of PG_CONFIG (used by the demo and
# by the integration tests' private clusters).
## Packaged, then moved into place file by file: a rename keeps running servers on the old
## library (overwriting a loaded .so in place crashes them).
install-ext:
	$(PG_READY)
	rm -rf target/pitstop-package
	cargo pgrx package -p pitstop --pg-config $(PG_CONFIG) --out-dir target/pitstop-package
	@# pgrx packages the upgrade scripts (pitstop--A--B.sql) but not the frozen install
	@# scripts of earlier versions, which CREATE EXTENSION pitstop VERSION 'A' needs.
	cp sql/pitstop--*.sql target/pitstop-package$$($(PG_CONFIG) --sharedir)/extension/
	cd target/pitstop-package && find . -type f | while read -r f; do \
		dest="/$${f#./}"; mkdir -p "$$(dirname "$$dest")"; \
		cp "$$f" "$$dest.pitstop-new" && mv -f "$$dest.pitstop-new" "$$dest"; done

## Tier 1: pure-logic unit tests: the core crate (the extension's decisions), the daemon and
## the harness.
test-unit:
	cargo test -p pitstop-core -p pitstop-daemon -p pitstop-tests --lib --bins

## The written rules, checked: one format (rustfmt.toml) and no clippy warning on any crate,
## for every major of TEST_MAJORS (each major compiles its own #[cfg] code).
lint:
	cargo fmt --all -- --check
	set -e; for major in $(TEST_MAJORS); do \
		features="pg$$major pg_test"; \
		cargo clippy -p pitstop --no-default-features --features "$$features" --all-targets -- -D warnings; done
	cargo clippy -p pitstop-core -p pitstop-daemon -p pitstop-tests --all-targets -- -D warnings

## Tier 2: #[pg_test] inside Postgres with pitstop preloaded.
## In a chroot the server wrappers switch to postgres themselves: pgrx runs them as root and
## connects as USER, and initdb makes a fresh data directory each run.
test-pg:
ifeq ($(PG),15)
	mkdir -p $(PGRX_PGDATA) && chown postgres $(PGRX_PGDATA) 2>/dev/null || true
	cargo pgrx test pg15 -p pitstop --runas postgres --pgdata $(PGRX_PGDATA)
else
	$(PG_READY)
	rm -rf $(PGRX_PGDATA) && mkdir -p $(PGRX_PGDATA) && chown postgres $(PGRX_PGDATA)
	USER=postgres cargo pgrx test pg$(PG) -p pitstop --pgdata $(PGRX_PGDATA)
endif

## Tier 3: private clusters + redis + the pitstop binary.
test-integration: install-ext build
	cargo test -p pitstop-tests --tests --no-fail-fast -- --test-threads=2

## Debian packages into $CARGO_TARGET_DIR/debian (else target/debian): pitstop, and
## postgresql-MAJOR-pitstop for each major of PACKAGE_MAJORS (default PG; e.g.
## `make package PACKAGE_MAJORS="15 17 18"`), built with the pg_configs of PACKAGE_PG:
## PG_CONFIG=PREFIX strips PREFIX, the chroot's root, from that pg_config's paths.
PACKAGE_MAJORS ?= $(PG)
PACKAGE_PG ?= $(foreach m,$(PACKAGE_MAJORS),$(if $(filter 15,$(m)),/usr/bin/pg_config,/opt/pitstop-pg/$(m)/pg_config=/opt/pitstop-pg/$(m)/root))
package:
	bash scripts/package.sh $(PACKAGE_PG)

## The packages installed with dpkg, used and purged (tests/tests/package.rs). dpkg replaces
## the system's pitstop.so that test clusters load: after the other tiers, never alongside
## them, and the development build is installed again afterwards, pass or fail.
test-package: package build
	status=0; cargo test -p pitstop-tests --test package -- --ignored --test-threads=1 || status=$$?; \
		$(MAKE) install-ext && exit $$status

## Every tier: tier 1 once, tiers 2 and 3 for each major of TEST_MAJORS (all supported ones,
## or the one given as `make test PG=17`), then the packages (host major 15 only: dpkg needs
## its postgresql-15).
ifeq ($(origin PG),command line)
TEST_MAJORS ?= $(PG)
else
TEST_MAJORS ?= $(MATRIX)
endif
test:
	bash scripts/setup.sh $(if $(filter-out 15,$(TEST_MAJORS)),--pg $$(echo $(filter-out 15,$(TEST_MAJORS)) | tr ' ' ,))
	$(MAKE) lint test-unit
	set -e; for major in $(TEST_MAJORS); do \
		echo "== PostgreSQL $$major: tiers 2 and 3"; \
		env -u PG_CONFIG -u PGRX_PGDATA $(MAKE) PG=$$major test-pg test-integration; done
	$(if $(filter 15,$(TEST_MAJORS)),$(MAKE) test-package)

test-matrix:
	$(MAKE) test TEST_MAJORS="$(MATRIX)"

demo: setup install-ext
	cargo build -p pitstop-daemon --release
	bash scripts/demo.sh start

demo-stop:
	bash scripts/demo.sh stop

bench: setup install-ext
	bash bench/overhead.sh
