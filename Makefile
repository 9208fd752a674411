# containerbuild developer entry points.
#
#   make test   system deps + stock koji CLI in .venv, release build, all tests
#   make lint   rustfmt and clippy, warnings are errors
#   make demo   run a local hub on 127.0.0.1:8480 with data in .data (admin user: admin/admin)

KOJI_VERSION := 1.36.1
VENV         := $(CURDIR)/.venv
KOJI_BIN     := $(VENV)/bin/koji
BIN          := target/release/containerbuild
DEMO_DATA    := .data
DEMO_LISTEN  := 127.0.0.1:8480
TEST_THREADS ?= 2

.PHONY: test lint demo deps venv build

test: deps venv build
	KOJI_BIN=$(KOJI_BIN) cargo test --release --no-fail-fast -- --test-threads=$(TEST_THREADS)

lint:
	cargo fmt --check
	cargo clippy --all-targets -- -D warnings

build:
	cargo build --release

deps:
	@scripts/ensure-deps.sh

venv: deps
	@scripts/koji-venv.sh $(VENV) $(KOJI_VERSION)

demo: venv build
	@echo "koji CLI: $(KOJI_BIN) -c <profile file printed below> --user admin --password admin hello"
	@if [ -z "$$(ls -A $(DEMO_DATA) 2>/dev/null)" ]; then \
		printf 'admin\n' | $(BIN) user add admin --data-dir $(DEMO_DATA) --password-stdin --admin || true; \
	fi
	exec $(BIN) serve --data-dir $(DEMO_DATA) --listen $(DEMO_LISTEN)
