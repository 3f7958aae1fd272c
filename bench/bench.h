/*
 * bench/bench.h - benchmark programs run by `tessera bench <name>`.
 * Benchmarks measure time (median of repeated runs); tests never do.
 * Each benchmark is a function registered in bench/bench_main.c.
 */
#ifndef TSR_BENCH_H
#define TSR_BENCH_H

#include <stddef.h>

/** Median of n samples (sorts the array in place). */
double bench_median(double *samples, size_t n);

/* Benchmark programs (registered in bench/bench_main.c). */
int bench_boot_main(int argc, char **argv);
int bench_ckks_main(int argc, char **argv);
int bench_circuits_main(int argc, char **argv);
int bench_fl_main(int argc, char **argv);
int bench_model_main(int argc, char **argv);
int bench_noise_main(int argc, char **argv);
int bench_ring_main(int argc, char **argv);
int bench_serve_main(int argc, char **argv);
int bench_tile_main(int argc, char **argv);
int bench_train_main(int argc, char **argv);

#endif /* TSR_BENCH_H */
