#!/bin/sh
# Run every libFuzzer target in BUILD/fuzz.
#
#   scripts/fuzz.sh BUILD --smoke    the check's run: deterministic (see below)
#   scripts/fuzz.sh BUILD SECONDS    exploration: a random seed, SECONDS per target
#
# Seeds: fuzz/corpus/<target>/ (committed; crashes found once stay there as regress-* inputs).
#
# --smoke is part of `make check`, so it must give the same verdict on every machine and every
# run: every committed seed, then a fixed number of mutations (fuzz/smoke-runs.txt, about 3 s per
# target on the reference machine under ASan) from a fixed libFuzzer seed (FUZZ_SEED, default 1),
# starting from an empty work directory. Nothing depends on the clock or on earlier runs; a
# slower machine runs the same inputs, only later. (A time-bounded run with a random seed found
# a real bug in CI once, and by the same token could fail one run in many: exploration is
# `make fuzz`'s job, and what it finds becomes a regress-* seed and a unit test.)
#
# SECONDS: new inputs accumulate in BUILD/corpus/<target>/ across runs.
set -eu
build=$1
mode=$2
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
seed=${FUZZ_SEED:-1}
runs_file="$top/fuzz/smoke-runs.txt"
case $mode in
--smoke) ;;
*[!0-9]* | "")
    echo "usage: scripts/fuzz.sh BUILD --smoke | SECONDS" >&2
    exit 2
    ;;
esac
# Address-space randomisation changes the paths a few targets take (allocation addresses reach
# the coverage: two runs of fuzz_onnx_graph with the same seed part after ~12 000 inputs), so the
# smoke run turns it off for the fuzzer when the kernel allows (setarch -R); -reload=0 keeps
# libFuzzer from re-reading its work directory on the clock.
norand=""
if [ "$mode" = --smoke ] && setarch "$(uname -m)" -R true 2>/dev/null; then
    norand="setarch $(uname -m) -R"
fi
found=0
for f in "$build"/fuzz/fuzz_*; do
    [ -x "$f" ] || continue
    found=1
    name=$(basename "$f")
    work="$build/corpus/$name"
    seeds="$top/fuzz/corpus/$name"
    [ -d "$seeds" ] || seeds=""
    if [ "$mode" = --smoke ]; then
        runs=$(awk -v t="$name" '$1 == t { print $2 }' "$runs_file")
        if [ -z "$runs" ]; then
            echo "fuzz: $name has no line in fuzz/smoke-runs.txt (target runs)" >&2
            exit 1
        fi
        work="$build/smoke/$name"
        rm -rf "$work"
        mkdir -p "$work"
        echo "fuzz: $name, seed $seed, $runs runs"
        limit="-seed=$seed -runs=$runs -reload=0"
    else
        mkdir -p "$work"
        echo "fuzz: $name for ${mode}s"
        limit="-max_total_time=$mode"
    fi
    # shellcheck disable=SC2086 # $limit, $seeds and $norand are word lists on purpose
    if ! $norand "$f" $limit -rss_limit_mb=4096 -timeout="$timeout" -print_final_stats=0 \
           -artifact_prefix="$build/" "$work" $seeds >"$build/$name.log" 2>&1; then
        tail -n 60 "$build/$name.log"
        echo "fuzz: $name FAILED (crash input saved under $build/)" >&2
        [ "$mode" = --smoke ] && echo "fuzz: reproduce with FUZZ_SEED=$seed" >&2
        exit 1
    fi
    grep -E "^(#[0-9]+ +DONE|Done)" "$build/$name.log" | tail -n 1 || true
done
[ "$found" = 1 ] || echo "fuzz: no fuzz targets built"
