#!/usr/bin/env bash
# Fuzzes every parser and decoder with cargo-fuzz (libFuzzer, AddressSanitizer) on nightly Rust.
# The targets are fuzz/fuzz_targets/*.rs, their bodies fuzz/src/lib.rs.
#
#   scripts/fuzz.sh                   every target for 10 minutes (the run before a release)
#   scripts/fuzz.sh --seconds N       every target for N seconds
#   scripts/fuzz.sh --smoke           every target for a few seconds from the seed corpus and the
#                                     regressions (the test command runs this)
#   scripts/fuzz.sh [...] TARGET...   only these targets
#
# Each target starts from fuzz/corpus/TARGET (the seeds, written by `fuzz/examples/seeds.rs`) and
# fuzz/regressions/TARGET (every input that once crashed it, replayed first on every run); what it
# learns goes to fuzz/target/work/TARGET, kept between runs. A crash stops the script with the
# input in fuzz/artifacts/TARGET/: fix the code, add a test beside it, and keep the input in
# fuzz/regressions/TARGET/. The table at the end gives each target's executions and time.
#
# Installs what is missing: the nightly toolchain (rustup; without it, the pinned toolchain with
# RUSTC_BOOTSTRAP=1) and cargo-fuzz (crates.io).
set -euo pipefail
cd "$(dirname "$0")/.."

seconds=600
targets=()
while (($#)); do
    case "$1" in
        --smoke) seconds=5 ;;
        --seconds) seconds="$2"; shift ;;
        -h|--help) sed -n '2,/^set -euo/p' "$0" | grep '^#'; exit 0 ;;
        -*) echo "fuzz.sh: unknown option $1" >&2; exit 2 ;;
        *) targets+=("$1") ;;
    esac
    shift
done
if ((${#targets[@]} == 0)); then
    for file in fuzz/fuzz_targets/*.rs; do
        targets+=("$(basename "$file" .rs)")
    done
fi

# cargo-fuzz passes -Z flags (the sanitizer, coverage), which need nightly. Without a nightly that
# rustup can install, the pinned stable toolchain builds the same with RUSTC_BOOTSTRAP=1: stable
# ships the AddressSanitizer runtime too.
toolchain=(+nightly)
if ! rustup toolchain list | grep -q '^nightly'; then
    echo "fuzz.sh: installing the nightly toolchain (cargo-fuzz needs its sanitizer support)"
    if ! rustup toolchain install nightly --profile minimal; then
        echo "fuzz.sh: rustup could not install nightly: building with the pinned toolchain and RUSTC_BOOTSTRAP=1"
        toolchain=()
        export RUSTC_BOOTSTRAP=1
    fi
fi
if ! command -v cargo-fuzz > /dev/null; then
    echo "fuzz.sh: installing cargo-fuzz 0.13.2 from crates.io"
    cargo install --locked cargo-fuzz --version 0.13.2 || {
        echo "fuzz.sh: cargo install cargo-fuzz failed; fuzzing needs it" >&2
        exit 1
    }
fi

# One build of every target: address sanitizer, debug assertions (overflow checks) on.
cargo "${toolchain[@]}" fuzz build --debug-assertions
bin_dir=fuzz/target/x86_64-unknown-linux-gnu/release

declare -a report
for target in "${targets[@]}"; do
    work="fuzz/target/work/$target"
    mkdir -p "$work" "fuzz/corpus/$target" "fuzz/regressions/$target" "fuzz/artifacts/$target"
    log="fuzz/target/work/$target.log"
    echo "fuzz.sh: $target for ${seconds}s"
    status=0
    # -rss_limit_mb: a target that holds more than this for one input is a bug (memory bounded by
    # the input's size, not its content); -timeout: one input may not take seconds.
    "$bin_dir/$target" "$work" "fuzz/corpus/$target" "fuzz/regressions/$target" \
        -max_total_time="$seconds" -rss_limit_mb=2048 -timeout=10 -max_len=65536 \
        -artifact_prefix="fuzz/artifacts/$target/" -print_final_stats=1 > "$log" 2>&1 || status=$?
    runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || echo '?')
    corpus=$(find "$work" -type f | wc -l)
    if ((status != 0)); then
        tail -n 60 "$log" >&2
        echo "fuzz.sh: $target FAILED (exit $status); the input is in fuzz/artifacts/$target/" >&2
        exit 1
    fi
    report+=("$(printf '| %-10s | %8ss | %12s | %8s | no crash |' "$target" "$seconds" "$runs" "$corpus")")
done

echo
echo "| target     |     time |   executions |   corpus | result   |"
echo "|------------|----------|--------------|----------|----------|"
printf '%s\n' "${report[@]}"
