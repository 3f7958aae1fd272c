/*
 * bench/bench_main.c - `tessera bench <name>`: dispatch to benchmark programs.
 */
#include "bench.h"
#include "cli.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

typedef struct bench_entry {
    const char *name;
    tsr_cli_fn fn;
    const char *summary;
} bench_entry;

/* Register benchmarks here: { "ckks", bench_ckks_main, "..." }. */
static const bench_entry benches[] = {
    { "boot", bench_boot_main,
      "CKKS bootstrapping: setup, key sizes, latency per stage, precision" },
    { "ckks", bench_ckks_main, "CKKS primitives: NTT, encode, encrypt, mul, relin, rotate, sizes" },
    { "circuits", bench_circuits_main, "inverse, inverse sqrt, sign, ReLU, linear transform" },
    { "fl", bench_fl_main, "distributed-learning lab: aggregation rules, rounds per second" },
    { "model", bench_model_main, "encrypted inference of an ONNX model: latency, throughput" },
    { "noise", bench_noise_main,
      "error added per HE operation: real CKKS vs the noisy mockup, in bits" },
    { "ring", bench_ring_main, "ring layer: NTT, element-wise, basis conversion per SIMD family" },
    { "serve", bench_serve_main, "tessera serve on loopback: N clients, latency, lost/corrupted" },
    { "tile", bench_tile_main, "tile tensors on CKKS: matrix products, convolution, per shape" },
    { "train", bench_train_main,
      "training epochs of the CNNs and MLP (compare bench/train_torch.py)" },
    { NULL, NULL, NULL },
};

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

double bench_median(double *samples, size_t n) {
    if (n == 0) return 0;
    qsort(samples, n, sizeof *samples, cmp_double);
    return n % 2 ? samples[n / 2] : 0.5 * (samples[n / 2 - 1] + samples[n / 2]);
}

/* a decimal integer at *p (no sign, no blanks): 0 with *v and *p past it, -1 without one */
static int parse_uint(const char **p, long *v) {
    if (**p < '0' || **p > '9') return -1;
    char *end;
    errno = 0;
    *v = strtol(*p, &end, 10);
    if (errno) return -1;
    *p = end;
    return 0;
}

int bench_parse_chain(const char *verb, const char *arg, bench_chain *c) {
    const char *p = arg;
    long log_n, lo, hi, scale = 0;
    int ok = parse_uint(&p, &log_n) == 0 && *p++ == ':' && parse_uint(&p, &lo) == 0;
    hi = lo;
    if (ok && *p == '-') {
        p++;
        ok = parse_uint(&p, &hi) == 0;
    }
    if (ok && *p == '@') {
        p++;
        ok = parse_uint(&p, &scale) == 0 && scale >= 1 && scale <= 60;
    }
    if (!ok || *p || log_n < 13 || log_n > 16 || lo < 1 || hi < lo || hi > 40)
        return cli_usage_error(verb,
                               "--chain '%s': expected LOGN:LEVELS[-HI][@SCALE] with LOGN "
                               "13..16, 1 <= LEVELS <= HI <= 40, SCALE 1..60 (e.g. 14:8, "
                               "14:1-8 or 14:8@37)",
                               arg);
    c->log_n = (int)log_n;
    c->lo = (int)lo;
    c->hi = (int)hi;
    c->scale_bits = (int)scale;
    return 0;
}

static void usage(FILE *out) {
    fprintf(out, "usage: tessera bench <name>|all [options]\n\nbenchmarks:\n");
    for (size_t i = 0; benches[i].name; i++)
        fprintf(out, "  %-8s %s\n", benches[i].name, benches[i].summary);
    fprintf(out,
            "\nResults are recorded in docs/BENCHMARKS.md with the command, commit and CPU.\n");
}

int tsr_cmd_bench(int argc, char **argv) {
    if (argc < 2 || strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    if (strcmp(argv[1], "all") == 0) {
        int rc = 0;
        for (size_t i = 0; benches[i].name; i++) {
            if (strcmp(benches[i].name, "model") == 0 || strcmp(benches[i].name, "serve") == 0)
                continue;                                       /* need a model or plan argument */
            if (strcmp(benches[i].name, "boot") == 0) continue; /* N = 2^16: run it alone */
            char *sub[] = { (char *)benches[i].name, NULL };
            int r = benches[i].fn(1, sub);
            if (r) rc = r;
        }
        return rc;
    }
    for (size_t i = 0; benches[i].name; i++)
        if (strcmp(argv[1], benches[i].name) == 0) return benches[i].fn(argc - 1, argv + 1);
    return cli_usage_error("bench", "unknown benchmark '%s'", argv[1]);
}
