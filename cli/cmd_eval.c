/*
 * cli/cmd_eval.c - `tessera eval M.onnx`: test accuracy of a model on
 * Fashion-MNIST and, for every activation, the inputs it saw against the
 * range its polynomial is valid on.
 */
#include "cli.h"

#include "train/data.h"
#include "train/model.h"
#include "train/model_onnx.h"
#include "train/train.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

static void usage(FILE *out) {
    fprintf(out,
            "usage: tessera eval M.onnx [--data DIR] [--limit N] [--batch N] [--threads N]\n"
            "\n"
            "Evaluate an ONNX model (ours or another exporter's, see docs/ONNX.md) on the\n"
            "Fashion-MNIST test set: accuracy and loss, then for each activation layer the\n"
            "smallest and largest input seen against the range [-B, B] its polynomial is valid\n"
            "on (B from the model's tessera.bound metadata), and how many inputs fell outside.\n"
            "Under HE inputs cannot be clamped: out-of-range inputs are only counted.\n"
            "\n"
            "  --data DIR      Fashion-MNIST directory (%s)\n"
            "  --limit N       evaluate the first N test images only\n"
            "  --batch N       evaluation batch (256)\n"
            "  --threads N     OpenMP threads\n",
            TSR_FMNIST_DIR);
}

int tsr_cmd_eval(int argc, char **argv) {
    if (cli_wants_help(argc, argv)) {
        usage(stdout);
        return 0;
    }
    const char *pos[2] = { NULL, NULL }, *data = NULL;
    long limit = 0, batch = 256, threads = 0;
    const cli_opt opts[] = {
        { "--data", CLI_STR, &data, 0, 0 },
        { "--limit", CLI_LONG, &limit, 1, 100000000 },
        { "--batch", CLI_LONG, &batch, 1, 65536 },
        { "--threads", CLI_LONG, &threads, 1, 64 },
    };
    int prc = cli_parse_args("eval", argc, argv, opts, sizeof opts / sizeof opts[0], pos, 2);
    if (prc) return prc;
    const char *path = pos[0];
    if (pos[1]) return cli_usage_error("eval", "one model at a time ('%s' and '%s')", path, pos[1]);
    if (!path) return cli_usage_error("eval", "give the model file: tessera eval M.onnx");
    if (threads) tsr_set_num_threads((int)threads);
    tsr_model *m = NULL;
    tsr_dataset test;
    memset(&test, 0, sizeof test);
    int rc = 0;
    tsr_status st = tsr_model_load_onnx(&m, path);
    if (st != TSR_OK) return cli_fail("eval", st, "loading the model");
    if ((st = tsr_dataset_load_fashion(&test, data, 0, (int)limit)) != TSR_OK) {
        rc = cli_fail("eval", st, "loading the test set");
        goto out;
    }
    double loss, acc;
    tsr_model_track_ranges(m, 1, 1);
    if ((st = tsr_evaluate(m, &test, (int)batch, &loss, &acc)) != TSR_OK) {
        rc = cli_fail("eval", st, "evaluating");
        goto out;
    }
    char act[16];
    printf("model %s (%s, %s), %zu parameters\n", path, m->arch,
           tsr_act_name(&m->act, act, sizeof act), tsr_model_num_params(m));
    printf("test accuracy %.2f%% (%d images), loss %.4f\n", 100 * acc, test.n, loss);
    int header = 0;
    uint64_t outside = 0;
    for (int i = 0; i < m->n_layers; i++) {
        const tsr_layer *L = &m->layers[i];
        if (L->kind != TSR_LAYER_POLY && L->kind != TSR_LAYER_RELU && L->kind != TSR_LAYER_GELU)
            continue;
        if (!header) {
            printf("%-14s %-6s %10s %10s %10s %12s %s\n", "activation", "kind", "min input",
                   "max input", "max |x|", "valid range", "outside");
            header = 1;
        }
        double mx = fmax(fabs(L->seen_min), fabs(L->seen_max));
        char range[32] = "-";
        if (L->kind == TSR_LAYER_POLY)
            snprintf(range, sizeof range, "[-%g, %g]", (double)L->bound, (double)L->bound);
        printf("%-14s %-6s %10.4f %10.4f %10.4f %12s", L->name, tsr_layer_kind_name(L->kind),
               (double)L->seen_min, (double)L->seen_max, mx, range);
        if (L->kind == TSR_LAYER_POLY) {
            printf(" %llu of %llu (%.4f%%)%s\n", (unsigned long long)L->seen_outside,
                   (unsigned long long)L->seen_count,
                   L->seen_count ? 100.0 * (double)L->seen_outside / (double)L->seen_count : 0.0,
                   mx > L->bound ? "  max |x| exceeds the range" : "");
            outside += L->seen_outside;
        } else {
            printf(" -\n");
        }
    }
    if (outside)
        printf("warning: %llu polynomial inputs fell outside their valid range\n",
               (unsigned long long)outside);
out:
    tsr_model_free(m);
    tsr_dataset_free(&test);
    return rc;
}
