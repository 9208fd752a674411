#!/usr/bin/env bash
# Fuzzing the parsers of untrusted input (fuzz/README.md).
#
#   scripts/fuzz.sh smoke            every target for a few seconds (60 s in all), for CI
#   scripts/fuzz.sh long [SECONDS]   every target for SECONDS each (default 600), one at a time
#   scripts/fuzz.sh run TARGET [SECONDS]
#   scripts/fuzz.sh build            only build the targets
#   scripts/fuzz.sh list
#
# Installs cargo-fuzz when it is missing. Uses the nightly toolchain when rustup has one, else
# the default toolchain with RUSTC_BOOTSTRAP=1 (cargo-fuzz needs -Z flags); FUZZ_TOOLCHAIN
# forces one (e.g. FUZZ_TOOLCHAIN=stable). Builds go to fuzz/target, away from the main build.
# The working corpus is fuzz/corpus/<target> (not committed), started from the committed seeds in
# fuzz/seeds/<target>; crashes land in fuzz/artifacts/<target>/, logs in fuzz/logs/.
# Exits non-zero when a target finds a crash, a timeout or an out-of-memory input.
set -euo pipefail
cd "$(dirname "$0")/.."

TARGETS=(xmlrpc_request rpm_header rpmdb_sqlite rpmdb_bdb rpmdb_ndb layer_tar dockerfile_labels)
SMOKE_TOTAL=60
# A single input taking longer than this is a hang; more memory than this is an OOM.
TIMEOUT=10
RSS_MB=2048

die() {
    echo "fuzz.sh: $*" >&2
    exit 2
}

setup() {
    command -v cargo >/dev/null 2>&1 || die "cargo not found"
    TOOLCHAIN=()
    local tc="${FUZZ_TOOLCHAIN:-}"
    if [ -z "$tc" ] && command -v rustup >/dev/null 2>&1 &&
        rustup toolchain list 2>/dev/null | grep -q '^nightly'; then
        tc=nightly
    fi
    if [ -n "$tc" ]; then
        TOOLCHAIN=("+$tc")
    fi
    if [ "$tc" != nightly ]; then
        # cargo-fuzz passes -Zsanitizer and friends; stable accepts them with this.
        export RUSTC_BOOTSTRAP=1
    fi
    if ! cargo fuzz --version >/dev/null 2>&1; then
        echo "==> installing cargo-fuzz"
        cargo install cargo-fuzz --locked
    fi
    HOST=$(rustc "${TOOLCHAIN[@]}" -vV | sed -n 's/^host: //p')
    BIN_DIR="${CARGO_TARGET_DIR:-fuzz/target}/$HOST/release"
    echo "==> toolchain: $(rustc "${TOOLCHAIN[@]}" --version)${RUSTC_BOOTSTRAP:+ (RUSTC_BOOTSTRAP=1)}"
}

build() {
    echo "==> building fuzz targets"
    cargo "${TOOLCHAIN[@]}" fuzz build --fuzz-dir fuzz
}

# run TARGET SECONDS: fuzz one target; prints a summary line and returns non-zero on a finding.
run() {
    local t="$1" secs="$2"
    local corpus="fuzz/corpus/$t" seeds="fuzz/seeds/$t" art="fuzz/artifacts/$t/" log="fuzz/logs/$t.log"
    [ -x "$BIN_DIR/$t" ] || die "no binary $BIN_DIR/$t (build first)"
    mkdir -p "$corpus" "$art" fuzz/logs
    local rc=0
    "$BIN_DIR/$t" "$corpus" "$seeds" \
        -max_total_time="$secs" -timeout="$TIMEOUT" -rss_limit_mb="$RSS_MB" \
        -artifact_prefix="$art" -print_final_stats=1 >"$log" 2>&1 || rc=$?
    local execs rate
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
    rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
    printf '%-18s %6ss  %10s execs  %7s exec/s  corpus %s  %s\n' "$t" "$secs" "${execs:-?}" \
        "${rate:-?}" "$(find "$corpus" -type f | wc -l)" "$([ "$rc" = 0 ] && echo ok || echo "FOUND (rc $rc)")"
    if [ "$rc" != 0 ]; then
        grep -E 'panicked|ERROR: libFuzzer|SUMMARY|Test unit written' "$log" | head -20 | sed 's/^/    /'
        echo "    full log: $log"
    fi
    return "$rc"
}

run_all() {
    local secs="$1" failed=()
    for t in "${TARGETS[@]}"; do
        run "$t" "$secs" || failed+=("$t")
    done
    if [ "${#failed[@]}" != 0 ]; then
        echo "fuzz.sh: findings in: ${failed[*]} (inputs in fuzz/artifacts/)" >&2
        exit 1
    fi
}

cmd="${1:-smoke}"
case "$cmd" in
list)
    printf '%s\n' "${TARGETS[@]}"
    ;;
build)
    setup
    build
    ;;
smoke)
    setup
    build
    run_all $((SMOKE_TOTAL / ${#TARGETS[@]}))
    ;;
long)
    secs="${2:-600}"
    [[ "$secs" =~ ^[0-9]+$ ]] || die "SECONDS must be a number"
    setup
    build
    run_all "$secs"
    ;;
run)
    t="${2:-}"
    secs="${3:-600}"
    printf '%s\n' "${TARGETS[@]}" | grep -qx -- "$t" || die "unknown target '$t' (see: scripts/fuzz.sh list)"
    [[ "$secs" =~ ^[0-9]+$ ]] || die "SECONDS must be a number"
    setup
    [ -n "${FUZZ_NO_BUILD:-}" ] || build
    run "$t" "$secs"
    ;;
*)
    die "usage: scripts/fuzz.sh smoke | long [SECONDS] | run TARGET [SECONDS] | build | list"
    ;;
esac
