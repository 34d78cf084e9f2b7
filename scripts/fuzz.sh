#!/usr/bin/env bash
# Fuzzes the pure-Rust core parsers with cargo-fuzz (libFuzzer + AddressSanitizer).
#
#   bash scripts/fuzz.sh [SECONDS_PER_TARGET] [TARGET...]   (default: 60 s, every target)
#
# CI runs `bash scripts/fuzz.sh 20`; a thorough run is `bash scripts/fuzz.sh 600`.
# The machine has only a stable toolchain: cargo-fuzz's nightly flags (-Zsanitizer=address)
# are enabled on it with RUSTC_BOOTSTRAP=1. Installs cargo-fuzz (crates.io, ~2.5 min) when
# it is missing, into fuzz/target/tools. Writes only under fuzz/ (target/, artifacts/) and
# cargo's download cache: the
# committed seeds in fuzz/corpus/<target>/ are read, new inputs go to
# fuzz/target/corpus/<target>/, crashes to fuzz/artifacts/<target>/.
# Exits 1 when any target crashed, timed out or ran out of memory, naming each one.
# Keep a crash input: copy it to fuzz/regressions/<target>/ (tests/no_peers/fuzz_regressions.rs
# replays those files on every `cargo test`).
set -euo pipefail
cd "$(dirname "$0")/.."

SECONDS_PER_TARGET="${1:-60}"
shift || true
if ! [[ "$SECONDS_PER_TARGET" =~ ^[0-9]+$ ]] || [ "$SECONDS_PER_TARGET" -lt 1 ]; then
    echo "usage: bash scripts/fuzz.sh [SECONDS_PER_TARGET] [TARGET...]" >&2
    exit 2
fi
ALL_TARGETS=(key_any_format token_response www_authenticate auth_token_json redact_body scrub_secrets)
if [ $# -gt 0 ]; then TARGETS=("$@"); else TARGETS=("${ALL_TARGETS[@]}"); fi
for t in "${TARGETS[@]}"; do
    if [ ! -f "fuzz/fuzz_targets/$t.rs" ]; then echo "unknown fuzz target '$t' (have: ${ALL_TARGETS[*]})" >&2; exit 2; fi
done

export RUSTC_BOOTSTRAP=1
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"

# cargo-fuzz is installed inside the repository (fuzz/target/tools, ignored by git), so
# nothing outside the checkout is written but cargo's download cache.
TOOLS="$PWD/fuzz/target/tools"
export PATH="$TOOLS/bin:$PATH"
if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "== installing cargo-fuzz into fuzz/target/tools (cargo install cargo-fuzz --locked)"
    start=$(date +%s)
    cargo install --root "$TOOLS" cargo-fuzz --version '^0.13' --locked
    echo "== cargo-fuzz installed in $(( $(date +%s) - start )) s"
fi
echo "== $(cargo fuzz --version), $(rustc --version)"

echo "== building the fuzz targets (release, debug assertions, ASan)"
cargo fuzz build -O

mkdir -p fuzz/target/fuzz-logs
failed=()
for t in "${TARGETS[@]}"; do
    mkdir -p "fuzz/target/corpus/$t" "fuzz/artifacts/$t"
    log="fuzz/target/fuzz-logs/$t.log"
    before=$(ls "fuzz/artifacts/$t" | wc -l)
    echo "== $t: ${SECONDS_PER_TARGET} s"
    set +e
    # -timeout: one input taking >10 s is a finding (e.g. a huge PBKDF2 iteration count);
    # -rss_limit_mb: libFuzzer's default, stated. Seeds are read from fuzz/corpus/$t.
    # Redaction must be linear: large inputs (1 MiB) and 5 s per input, so a quadratic
    # scan (minutes at 1 MiB) is reported as a timeout.
    case "$t" in
        redact_body|scrub_secrets) limits=(-timeout=5 -max_len=1048576) ;;
        *) limits=(-timeout=10) ;;
    esac
    cargo fuzz run -O "$t" "fuzz/target/corpus/$t" "fuzz/corpus/$t" -- \
        -max_total_time="$SECONDS_PER_TARGET" "${limits[@]}" -rss_limit_mb=2048 \
        -print_final_stats=1 >"$log" 2>&1
    rc=$?
    set -e
    grep -E '^(stat::number_of_executed_units|stat::average_exec_per_sec|stat::new_units_added|stat::peak_rss_mb)' "$log" \
        | sed 's/^/   /' || true
    grep -E '^(#[0-9]+ +DONE|Done [0-9]+ runs)' "$log" | tail -1 | sed 's/^/   /' || true
    after=$(ls "fuzz/artifacts/$t" | wc -l)
    if [ $rc -ne 0 ] || [ "$after" -gt "$before" ]; then
        failed+=("$t")
        echo "!! $t FAILED (exit $rc), log: $log"
        grep -E -m3 "panicked at|ERROR: libFuzzer|ERROR: AddressSanitizer|==[0-9]+==ERROR" "$log" | sed 's/^/   /' || true
        grep -A3 -m1 "panicked at" "$log" | tail -n +2 | cut -c1-400 | sed 's/^/   /' || true
        grep -E -m1 "Test unit written to|artifact_prefix" "$log" | sed 's/^/   /' || true
        if [ $rc -ne 0 ] && ! grep -q "Test unit written to" "$log"; then
            tail -20 "$log" | sed 's/^/   /'
        fi
    fi
done

if [ ${#failed[@]} -gt 0 ]; then
    echo "== FUZZING FOUND PROBLEMS in: ${failed[*]}"
    echo "   reproduce: RUSTC_BOOTSTRAP=1 cargo fuzz run -O TARGET fuzz/artifacts/TARGET/<file>"
    exit 1
fi
echo "== all ${#TARGETS[@]} targets ran ${SECONDS_PER_TARGET} s without a crash"
