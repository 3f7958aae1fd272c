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

/** A `--chain LOGN:LEVELS[-HI][@SCALE]` argument of `bench ckks` and `bench noise`: the
 * 128-bit chains nn_choose_params picks at N = 2^log_n for lo..hi levels (hi = lo without
 * -HI), with a scale of 2^scale_bits (0 without @SCALE: the compiler's choice). */
typedef struct bench_chain {
    int log_n, lo, hi, scale_bits;
} bench_chain;

/** Parses arg (the whole string) into *c: 0, or 2 after printing a usage error for verb when
 * it is malformed or out of range (LOGN 13..16, the ring degrees with a 128-bit bound;
 * 1 <= LEVELS <= HI <= 40; SCALE 1..60). */
int bench_parse_chain(const char *verb, const char *arg, bench_chain *c);

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
