#!/bin/bash
# Runs the `store` bench of two commits alternately on the same fixtures (A, B, A, B, ...), so
# that a before/after comparison shares the machine's state: how docs/benchmarks.md,
# "The read family, before and after the redesign", was measured.
#
#   tools/bench_compare.sh BEFORE AFTER [FILTER] [ROUNDS]
#   tools/bench_compare.sh 28b843d HEAD "lookup|track|cached" 2
#
# Each commit's bench binary is built in a worktree under target/bench-compare/; the fixtures
# (built by the first run) are shared in target/bench-compare/shared. Logs: target/bench-compare/
# <commit>-<round>.log (criterion's output and the interleaved ratios).
set -euo pipefail
[ $# -ge 2 ] || { sed -n '2,10p' "$0"; exit 2; }
root=$(git rev-parse --show-toplevel)
out="$root/target/bench-compare"
mkdir -p "$out/shared"
filter=${3:-"lookup|track|cached"}
rounds=${4:-2}
bins=()
for rev in "$1" "$2"; do
  sha=$(git -C "$root" rev-parse --short "$rev")
  wt="$out/wt-$sha"
  [ -d "$wt" ] || git -C "$root" worktree add -f --detach "$wt" "$sha" >/dev/null
  exe=$(cd "$wt" && CARGO_TARGET_DIR="$out/target-$sha" cargo bench --bench store --no-run \
    --message-format=json 2>/dev/null | python3 -c 'import json,sys
for l in sys.stdin:
    m=json.loads(l)
    if m.get("reason")=="compiler-artifact" and m["target"]["name"]=="store" and m.get("executable"): print(m["executable"])' | tail -1)
  bins+=("$sha=$exe")
done
for r in $(seq 1 "$rounds"); do
  for b in "${bins[@]}"; do
    sha=${b%%=*}; exe=${b#*=}
    echo "== $sha round $r: $(date +%T), load $(cut -d' ' -f1-3 /proc/loadavg)"
    CARGO_TARGET_DIR="$out/shared" "$exe" --bench "$filter" > "$out/$sha-$r.log" 2>&1
  done
done
echo "== done: $(date +%T), load $(cut -d' ' -f1-3 /proc/loadavg); logs in $out"
