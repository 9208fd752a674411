# containerbuild developer entry points.
#
#   make test   system deps + stock koji CLI in .venv, release build, all tests
#   make lint   rustfmt and clippy, warnings are errors
#   make bench  every benchmark of the performance suite (BENCHMARKS.md), report in target/bench/
#   make fuzz        every fuzz target for FUZZ_SECONDS (default 600) each (fuzz/README.md)
#   make fuzz-smoke  every fuzz target for a few seconds, 60 s in all (what CI runs)
#   make load        200 pollers during 4 builds and 20 queued tasks for LOAD_SECONDS (default
#                    600), full output in target/bench/load.txt (make test runs it for 30 s)
#   make demo       hub + builder, registry and git daemon on 127.0.0.1 with state in .demo; builds
#                   the fixture container with the stock koji CLI and leaves the services running
#   make demo-stop  stop them (by pid file)

KOJI_VERSION := 1.36.1
VENV         := $(CURDIR)/.venv
KOJI_BIN     := $(VENV)/bin/koji
BIN          := target/release/containerbuild
TEST_THREADS ?= 2
FUZZ_SECONDS ?= 600

.PHONY: test lint bench demo demo-stop deps venv build fuzz fuzz-smoke load

test: deps venv build
	KOJI_BIN=$(KOJI_BIN) cargo test --release --no-fail-fast -- --test-threads=$(TEST_THREADS)

bench: deps
	@scripts/bench.sh

fuzz:
	@scripts/fuzz.sh long $(FUZZ_SECONDS)

fuzz-smoke:
	@scripts/fuzz.sh smoke

LOAD_SECONDS ?= 600
load: deps venv build
	@mkdir -p target/bench
	KOJI_BIN=$(KOJI_BIN) LOAD_SECONDS=$(LOAD_SECONDS) cargo test --release --test load -- --nocapture \
		> target/bench/load.txt 2>&1; s=$$?; grep -E '^(load|calls|  [a-zA-Z]|tasks|hub RSS)' target/bench/load.txt; exit $$s

lint:
	cargo fmt --check
	cargo clippy --all-targets -- -D warnings

build:
	cargo build --release

deps:
	@scripts/ensure-deps.sh

venv: deps
	@scripts/koji-venv.sh $(VENV) $(KOJI_VERSION)

demo:
	@KOJI_VERSION=$(KOJI_VERSION) scripts/demo.sh

demo-stop:
	@scripts/demo-stop.sh
