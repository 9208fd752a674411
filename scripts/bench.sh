#!/usr/bin/env bash
# Every benchmark of the performance suite, one after another, into one report.
#
#   scripts/bench.sh [REPORT]      (make bench)
#
# Prints every figure and writes them, with the command, date, commit and machine, to REPORT
# (default target/bench/report.txt). Figures that compare against a baseline (hand buildah,
# rpm -qa, gzip, cp) measure both in the same run. Needs the system packages of
# scripts/ensure-deps.sh (make bench runs it first).
set -euo pipefail
cd "$(dirname "$0")/.."
report=${1:-target/bench/report.txt}
mkdir -p "$(dirname "$report")"
: > "$report"

say() { printf '%s\n' "$*" | tee -a "$report"; }

say "# containerbuild benchmark report"
say "command: make bench"
say "date: $(date -u '+%Y-%m-%d %H:%M:%S UTC')"
say "commit: $(git rev-parse --short HEAD 2>/dev/null || echo unknown)$(git diff --quiet 2>/dev/null || echo ' (with local changes)')"
say "machine: $(nproc) cores, $(free -g | awk '/^Mem:/ {print $2}') GiB, $(uname -sr), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')"
say "buildah: $(buildah --version 2>/dev/null || echo absent); rpm: $(rpm --version 2>/dev/null || echo absent)"
say ""

cargo build --release --benches --bins

run() {
    local title=$1
    shift
    say "## $title"
    say "\$ $*"
    local start=$SECONDS
    # Bench output goes to the report as it comes; a failing bench fails the run.
    env "$@" 2>&1 | grep -v -E '^\s*(Compiling|Finished|Running|Blocking)' | tee -a "$report"
    say "(took $((SECONDS - start)) s)"
    say ""
}

run "1. build overhead" cargo bench --bench build_overhead
run "2-3. dispatch and log latency" cargo bench --bench builder_latency
run "4. hub throughput, 1000 tasks" BENCH_TASKS=1000 BENCH_BUILDS=100 cargo bench --bench hub_throughput
run "5. store scale, 1M tasks and 100k builds" BENCH_TASKS=1000000 BENCH_BUILDS=100000 cargo bench --bench hub_throughput
run "6a. rpmdb read vs rpm -qa" cargo bench --bench rpmdb_read
run "6b. rpm-manifest --layers" cargo bench --bench rpm_manifest_layers
run "7. archive compression" cargo bench --bench archive
run "8. uploads and downloads" cargo bench --bench transfer
run "micro: XML-RPC codec (criterion)" cargo bench --bench xmlrpc_codec
run "micro: rpmdb header parse (criterion)" cargo bench --bench rpmdb_header

say "report: $report"
