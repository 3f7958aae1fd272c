#!/bin/sh
# The ctest `mpi`: scale-out over MPI (docs/SCALING.md) at 2 ranks on this
# machine (--oversubscribe), every mpirun bounded by `timeout`.
#  - tessera infer --mpi over three encrypted batches: each output is
#    byte-identical to the single-process `tessera infer` of the same input
#    (HE evaluation is deterministic), and decrypts to the plaintext prediction;
#    plan and keys reach the node once (rank 1 maps rank 0's copy: it receives
#    only its input over MPI);
#  - tessera fl run --mpi (ALIE against Krum, backdoor against the median):
#    the accuracy history equals the single-process simulator's for the seed
#    (every column but the wall time).
# Usage: test_mpi.sh BUILD SOURCE
set -eu
build=$1
src=$2
tessera=$build/bin/tessera
# awk's printf follows LC_NUMERIC: under de_DE.UTF-8 it wrote the inputs as "0,37", which the
# CSV reader refuses. Every number here is written and read in the C locale.
export LC_ALL=C
tmp=$(mktemp -d "${TMPDIR:-/tmp}/tessera-mpi-XXXXXX")
# a failing step (set -e) shows the commands' log before the directory goes
trap 'rc=$?; if [ $rc -ne 0 ] && [ -f "$tmp/log" ]; then cat "$tmp/log"; fi; rm -rf "$tmp"' EXIT
if [ "$(id -u)" -eq 0 ]; then # OpenMPI refuses root unless told (CI containers run as root)
    export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
fi
export OMP_NUM_THREADS=1 TSR_PROGRESS=0
mpi() { timeout 300 mpirun -n 2 --oversubscribe "$@"; }
I="--insecure-parameters-for-testing"

# ---- infer --mpi -------------------------------------------------------------------------
"$tessera" compile "$src/tests/data/nn_torch_poly.onnx" --batch 2 --log-n 11 --no-measure \
    --out "$tmp/m.plan" $I >"$tmp/log" 2>&1
"$tessera" keygen "$tmp/m.plan" --out-secret "$tmp/c.sk" --out-eval "$tmp/s.evk" $I >>"$tmp/log" 2>&1
awk 'BEGIN { for (i = 0; i < 6; i++) { for (k = 0; k < 256; k++)
    printf "%g%s", ((i * 37 + k * 11) % 100) / 100, k == 255 ? "\n" : ","; } }' >"$tmp/in.csv"
for b in 0 1 2; do
    "$tessera" encrypt "$tmp/m.plan" "$tmp/c.sk" --in "$tmp/in.csv" --offset $((2 * b)) --count 2 \
        --out "$tmp/in$b.ct" $I >>"$tmp/log" 2>&1
    "$tessera" infer "$tmp/m.plan" "$tmp/s.evk" --in "$tmp/in$b.ct" --out "$tmp/ref$b.ct" $I \
        >>"$tmp/log" 2>&1
done
mpi "$tessera" infer --mpi "$tmp/m.plan" "$tmp/s.evk" --in "$tmp/in0.ct" --in "$tmp/in1.ct" \
    --in "$tmp/in2.ct" --out "$tmp/out0.ct" --out "$tmp/out1.ct" --out "$tmp/out2.ct" $I \
    >"$tmp/mpi.log" 2>&1 || { cat "$tmp/mpi.log"; exit 1; }
grep -q "^2 ranks, 3 inputs, 6 samples" "$tmp/mpi.log" || { cat "$tmp/mpi.log"; exit 1; }
# plan and keys once per node: both ranks share rank 0's copy, so rank 1 received over MPI
# only its input (in1.ct), far less than the keys
grep -q "sent once to each of the 0 other nodes, shared in place by the ranks of a node (2 on rank 0's, 1 node)" \
    "$tmp/mpi.log" || { cat "$tmp/mpi.log"; exit 1; }
keys=$(wc -c <"$tmp/s.evk")
in1=$(wc -c <"$tmp/in1.ct")
awk -v keys="$keys" -v in1="$in1" '$1 == "1" && NF == 8 { got = $7; found = 1 }
    END { if (!found || got > in1 * 1.01 || got < in1 * 0.99 || got >= keys) {
          printf "rank 1 received %s bytes; its input has %s, the keys %s\n", got, in1, keys; exit 1 } }' \
    "$tmp/mpi.log" || { cat "$tmp/mpi.log"; exit 1; }
for b in 0 1 2; do
    cmp "$tmp/ref$b.ct" "$tmp/out$b.ct"
done
"$tessera" decrypt "$tmp/m.plan" "$tmp/c.sk" --in "$tmp/out1.ct" --out "$tmp/p1.csv" \
    --compare "$tmp/in.csv" --offset 2 $I >"$tmp/dec.log" 2>&1 || { cat "$tmp/dec.log"; exit 1; }
grep -q "agreement with plaintext inference: 100.00% of 2" "$tmp/dec.log" || { cat "$tmp/dec.log"; exit 1; }
# a bad input fails the job, and no output appears
if mpi "$tessera" infer --mpi "$tmp/m.plan" "$tmp/s.evk" --in "$tmp/in0.ct" --in "$tmp/m.plan" \
    --out "$tmp/bad0.ct" --out "$tmp/bad1.ct" $I >"$tmp/bad.log" 2>&1; then
    echo "infer --mpi accepted a plan as encrypted inputs"; exit 1
fi
test ! -e "$tmp/bad0.ct" && test ! -e "$tmp/bad1.ct"
grep -q "rank 1" "$tmp/bad.log" || { cat "$tmp/bad.log"; exit 1; }

# ---- fl run --mpi ------------------------------------------------------------------------
fl() {
    "$tessera" fl run --dataset synthetic --workers 7 --corrupt 2 --rounds 12 --eval-every 4 \
        --seed 5 "$@" >>"$tmp/fl.log" 2>&1 || { cat "$tmp/fl.log"; exit 1; }
}
for case in "krum alie" "median backdoor"; do
    set -- $case
    fl --defense "$1" --attack "$2" --out "$tmp/fl1.csv"
    mpi "$tessera" fl run --mpi --dataset synthetic --workers 7 --corrupt 2 --rounds 12 \
        --eval-every 4 --seed 5 --defense "$1" --attack "$2" --out "$tmp/fl2.csv" \
        >>"$tmp/fl.log" 2>&1 || { cat "$tmp/fl.log"; exit 1; }
    # every column but the last (seconds)
    sed 's/,[^,]*$//' "$tmp/fl1.csv" >"$tmp/a"
    sed 's/,[^,]*$//' "$tmp/fl2.csv" >"$tmp/b"
    test "$(wc -l <"$tmp/a")" -ge 4
    cmp "$tmp/a" "$tmp/b" || { echo "fl run --mpi differs ($case)"; diff "$tmp/a" "$tmp/b"; exit 1; }
done
echo "mpi: ok"
