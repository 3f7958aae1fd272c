#!/bin/sh
# Run every libFuzzer target in BUILD/fuzz for SECONDS each.
# Seeds: fuzz/corpus/<target>/ (committed); new inputs go to BUILD/corpus/<target>/.
# Usage: scripts/fuzz.sh BUILD SECONDS
set -eu
build=$1
secs=$2
top=$(cd "$(dirname "$0")/.." && pwd)
# Undefined behaviour is a crash, not a line in the log (UBSan recovers by default).
UBSAN_OPTIONS=${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1}
export UBSAN_OPTIONS
# Per-input time limit: a hang, not a slow seed on a loaded machine. The largest
# committed plan seed (fuzz_nn_plan/transpose_chain_v6.plan) once took 11 s of CPU
# under ASan and timed out at 25 s of wall time at load average 8 on two cores; its
# load now takes about 2.4 s there (data movement lowered by one index run), so 60 s
# leaves a wide margin. Override with FUZZ_TIMEOUT.
timeout=${FUZZ_TIMEOUT:-60}
found=0
for f in "$build"/fuzz/fuzz_*; do
    [ -x "$f" ] || continue
    found=1
    name=$(basename "$f")
    work="$build/corpus/$name"
    mkdir -p "$work"
    seeds="$top/fuzz/corpus/$name"
    [ -d "$seeds" ] || seeds=""
    echo "fuzz: $name for ${secs}s"
    if ! "$f" -max_total_time="$secs" -rss_limit_mb=4096 -timeout="$timeout" -print_final_stats=0 \
           -artifact_prefix="$build/" "$work" $seeds >"$build/$name.log" 2>&1; then
        tail -n 60 "$build/$name.log"
        echo "fuzz: $name FAILED (crash input saved under $build/)" >&2
        exit 1
    fi
    grep -E "^(#[0-9]+ +DONE|Done)" "$build/$name.log" | tail -n 1 || true
done
[ "$found" = 1 ] || echo "fuzz: no fuzz targets built"
