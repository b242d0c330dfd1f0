#!/usr/bin/env bash
# Runs every fuzz target for SECONDS each (default 60), with the committed seed corpus and
# a scratch corpus under fuzz/target (not committed). Exits non-zero when a target crashes.
#
#   bash fuzz/run.sh [SECONDS]
#
# Needs cargo-fuzz (installed here when missing) and a nightly toolchain; without one, the
# stable toolchain is used with RUSTC_BOOTSTRAP=1 (cargo-fuzz passes -Z flags).
set -euo pipefail
cd "$(dirname "$0")"
seconds="${1:-60}"

if ! cargo fuzz --version >/dev/null 2>&1; then
    cargo install cargo-fuzz --locked
fi
if rustup toolchain list 2>/dev/null | grep -q '^nightly'; then
    fuzz=(cargo +nightly fuzz)
else
    echo "fuzz: no nightly toolchain; using stable with RUSTC_BOOTSTRAP=1"
    export RUSTC_BOOTSTRAP=1
    fuzz=(cargo fuzz)
fi

"${fuzz[@]}" build
for target in header record legacy_line reader restore_line; do
    scratch="target/corpus-scratch/$target"
    mkdir -p "$scratch"
    echo "fuzz: $target for ${seconds}s"
    log="target/fuzz-$target.log"
    set +e
    # A target's libFuzzer dictionary, when it has one (<target>.dict: tokens of its format).
    dict=()
    if [ -f "$target.dict" ]; then
        dict=(-dict="$target.dict")
    fi
    "${fuzz[@]}" run "$target" "$scratch" "corpus/$target" -- \
        -max_total_time="$seconds" -max_len=131072 -rss_limit_mb=4096 -print_final_stats=1 \
        "${dict[@]}" >"$log" 2>&1
    rc=$?
    set -e
    grep -E '^(Done|stat::average_exec_per_sec)' "$log" || true
    if [ "$rc" -ne 0 ]; then
        tail -40 "$log"
        echo "fuzz: $target FOUND A CRASH (exit $rc; see fuzz/artifacts/$target/)"
        exit 1
    fi
done
echo "fuzz: no crashes"
