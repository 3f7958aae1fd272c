/*
 * bench/bench_main.c - `tessera bench <name>`: dispatch to benchmark programs.
 */
#include "bench.h"
#include "cli.h"

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
