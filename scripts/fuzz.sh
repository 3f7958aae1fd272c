#!/bin/sh
# Run every libFuzzer target in BUILD/fuzz.
#
#   scripts/fuzz.sh BUILD --smoke    the check's run: replay every committed input, no mutation
#   scripts/fuzz.sh BUILD SECONDS    exploration: a random seed, SECONDS per target
#
# Inputs: fuzz/corpus/<target>/ (committed: hand-made seeds, the inputs earlier campaigns
# found that reach new code, and every input that once crashed, named regress-*).
#
# --smoke is part of `make check`, so its verdict must not depend on the machine, the clock or
# the run. It executes each committed input once, in name order, and mutates nothing: the same
# inputs on every machine. (Mutation cannot promise that: a time-bounded random-seed run found
# a real bug in CI once, and by the same token could fail one run in many; even with a fixed
# seed and run count, libFuzzer's path depends on the directory listing order, on stack
# addresses it copies into inputs from traced comparisons, and on which SIMD kernels the CPU
# runs.) Exploration is `make fuzz`; what it finds becomes a fix, a unit test and a regress-*
# input, and its new-coverage inputs are merged into the committed corpus (-merge=1).
# What still depends on the CPU: the kernels an input reaches (IFMA / AVX-512 / AVX2 /
# portable, chosen at run time), so a crash inside one family's kernel shows only on CPUs
# that run it.
#
# SECONDS: new inputs accumulate in BUILD/corpus/<target>/ across runs.
set -eu
if [ $# -ne 2 ]; then
    echo "usage: scripts/fuzz.sh BUILD --smoke | SECONDS" >&2
    exit 2
fi
build=$(cd "$1" && pwd)
mode=$2
top=$(cd "$(dirname "$0")/.." && pwd)
case $mode in
--smoke) ;;
*[!0-9]* | "" | 0)
    echo "usage: scripts/fuzz.sh BUILD --smoke | SECONDS (SECONDS >= 1)" >&2
    exit 2
    ;;
esac
# Undefined behaviour is a crash, not a line in the log (UBSan recovers by default); a caller's
# UBSAN_OPTIONS come after ours, so they can add to them.
UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1${UBSAN_OPTIONS:+:$UBSAN_OPTIONS}"
export UBSAN_OPTIONS
# Per-input time limit: a hang, not a slow input on a loaded machine. The largest
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
    seeds="$top/fuzz/corpus/$name"
    log="$build/$name.log"
    if [ "$mode" = --smoke ]; then
        if [ ! -d "$seeds" ] || [ -z "$(ls -A "$seeds")" ]; then
            echo "fuzz: $name has no committed inputs (fuzz/corpus/$name/)" >&2
            exit 1
        fi
        n=$(ls "$seeds" | wc -l)
        echo "fuzz: $name, replaying $n committed inputs"
        # File arguments: each runs once (no fuzzing, nothing written), in byte order of their
        # names, relative to the corpus directory (xargs splits on blanks: names have none).
        if ls "$seeds" | grep -q '[[:space:]]'; then
            echo "fuzz: fuzz/corpus/$name/ has a file name with a blank" >&2
            exit 1
        fi
        if ! (cd "$seeds" && LC_ALL=C ls | xargs "$f" -rss_limit_mb=4096 -timeout="$timeout" \
              >"$log" 2>&1); then
            tail -n 60 "$log"
            echo "fuzz: $name FAILED on a committed input (the log's last 'Running:' line names it)" >&2
            exit 1
        fi
        grep -c '^Executed' "$log" | sed "s/^/fuzz: $name ran /; s/\$/ inputs/"
    else
        [ -d "$seeds" ] || seeds=""
        work="$build/corpus/$name"
        mkdir -p "$work"
        echo "fuzz: $name for ${mode}s"
        if ! "$f" -max_total_time="$mode" -rss_limit_mb=4096 -timeout="$timeout" \
               -print_final_stats=0 -artifact_prefix="$build/" "$work" ${seeds:+"$seeds"} \
               >"$log" 2>&1; then
            tail -n 60 "$log"
            echo "fuzz: $name FAILED (crash input saved under $build/)" >&2
            exit 1
        fi
        grep -E "^(#[0-9]+ +DONE|Done)" "$log" | tail -n 1 || true
    fi
done
if [ "$found" = 0 ]; then
    echo "fuzz: no fuzz targets in $build/fuzz" >&2
    exit 1
fi
