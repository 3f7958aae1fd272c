#!/bin/sh
# Measurements of docs/SCALING.md: tessera infer --mpi and tessera fl run --mpi at
# 1, 2 and 4 ranks (4 oversubscribes a 2-core machine), one OpenMP thread per rank.
# Not a test (it times things). Usage: scripts/bench_mpi.sh [BUILD] [OUT_DIR]
# Prints each run's output; the tables of docs/SCALING.md are read off them.
set -eu
build=${1:-build}
out=${2:-build/bench-mpi}
tessera=$build/bin/tessera
mkdir -p "$out"
if [ "$(id -u)" -eq 0 ]; then
    export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
fi
export OMP_NUM_THREADS=1 TSR_PROGRESS=0 OMP_WAIT_POLICY=passive
F=${F:-8}
# infer: the Fashion-MNIST CryptoNets of the demo, batches of 16, 128-bit parameters
"$tessera" compile models/fmnist_cryptonets_poly2.onnx --batch 16 --no-measure \
    --out "$out/cn16.plan" --force
"$tessera" keygen "$out/cn16.plan" --out-secret "$out/c.sk" --out-eval "$out/s.evk" --force
ins="" outs=""
for b in $(seq 0 $((F - 1))); do
    "$tessera" encrypt "$out/cn16.plan" "$out/c.sk" --in \
        /usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz --offset $((16 * b)) \
        --count 16 --out "$out/in$b.ct" --force >/dev/null
    ins="$ins --in $out/in$b.ct"
    outs="$outs --out $out/out$b.ct"
done
ls -l "$out/cn16.plan" "$out/s.evk" "$out/in0.ct"
for k in 1 2 4; do
    echo "== infer --mpi, $k rank(s), $F batches of 16"
    mpirun -n $k --oversubscribe "$tessera" infer --mpi "$out/cn16.plan" "$out/s.evk" $ins $outs \
        --threads 1 --force
done
ls -l "$out/out0.ct"
# fl: Fashion-MNIST MLP, 8 workers (2 corrupt, ALIE) against Krum
for k in 1 2 4; do
    echo "== fl run --mpi, $k rank(s)"
    mpirun -n $k --oversubscribe "$tessera" fl run --mpi --dataset fashion-mnist --model mlp \
        --workers 8 --corrupt 2 --defense krum --attack alie --rounds 40 --eval-every 40 \
        --seed 1 --threads 1 --out "$out/fl$k.csv"
done
