# pitstop: the two commands of the README, and the steps they are made of.
SHELL := /bin/bash
PG_CONFIG ?= /usr/bin/pg_config
# Outside the checkout: the postgres user may not be able to enter the clone's directory.
PGRX_PGDATA ?= /tmp/pitstop-pgrx-test-data

.PHONY: setup build install-ext test test-unit test-pg test-integration demo demo-stop bench clean

setup:
	@bash scripts/setup.sh

build:
	cargo build -p pitstop-daemon

# Installs the freshly built extension into the local PostgreSQL 15 (used by the demo and
# by the integration tests' private clusters).
## Packaged, then moved into place file by file: a rename keeps running servers on the old
## library (overwriting a loaded .so in place crashes them).
install-ext:
	rm -rf target/pitstop-package
	cargo pgrx package -p pitstop --pg-config $(PG_CONFIG) --out-dir target/pitstop-package
	@# pgrx packages the upgrade scripts (pitstop--A--B.sql) but not the frozen install
	@# scripts of earlier versions, which CREATE EXTENSION pitstop VERSION 'A' needs.
	cp sql/pitstop--*.sql target/pitstop-package$$($(PG_CONFIG) --sharedir)/extension/
	cd target/pitstop-package && find . -type f | while read -r f; do \
		dest="/$${f#./}"; mkdir -p "$$(dirname "$$dest")"; \
		cp "$$f" "$$dest.pitstop-new" && mv -f "$$dest.pitstop-new" "$$dest"; done

## Tier 1: pure-logic unit tests of the daemon and the harness (the extension's pure
## modules run their #[test]s inside tier 2's test binary).
test-unit:
	cargo test -p pitstop-daemon -p pitstop-tests --lib --bins

## Tier 2: #[pg_test] inside Postgres with pitstop preloaded.
test-pg:
	mkdir -p $(PGRX_PGDATA) && chown postgres $(PGRX_PGDATA) 2>/dev/null || true
	cargo pgrx test pg15 -p pitstop --runas postgres --pgdata $(PGRX_PGDATA)

## Tier 3: private clusters + redis + the pitstop binary.
test-integration: install-ext build
	cargo test -p pitstop-tests --tests -- --test-threads=2

test: setup
	$(MAKE) test-unit
	$(MAKE) test-pg
	$(MAKE) test-integration

demo: setup install-ext
	cargo build -p pitstop-daemon --release
	bash scripts/demo.sh start

demo-stop:
	bash scripts/demo.sh stop

bench: setup install-ext
	bash bench/overhead.sh
