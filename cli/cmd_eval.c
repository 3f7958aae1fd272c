/*
 * cli/cmd_eval.c - `tessera eval M.onnx`: plaintext accuracy (or MSE) of any
 * model the graph importer accepts, on IDX or .npy data, and for every
 * activation the inputs it saw against the range its polynomial is valid on
 * (declared tessera.bound.*, calibrated tessera.range.*, or a Chebyshev
 * node's interval), with how many fell outside. Runs on the graph trainer's
 * forward (tessera/train.h), which records the ranges and the counts.
 */
#include "cli.h"

#include "onnx/onnx.h"
#include "train/data.h"
#include "train_cli.h"
#include "tessera/train.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static void usage(FILE *out) {
    fprintf(out,
            "usage: tessera eval M.onnx [--data DIR | --data X,Y] [options]\n"
            "\n"
            "Evaluate any model Tessera imports (ours or another exporter's, ReLU or\n"
            "polynomial; docs/ONNX.md) in plaintext: accuracy and cross-entropy when the\n"
            "labels are one integer per sample and the output is (N, classes), else the\n"
            "mean squared error against targets of the output's shape. Then, for each\n"
            "activation, the smallest and largest input seen against the range its\n"
            "polynomial is valid on, and how many inputs fell outside it. The range is\n"
            "the model's tessera.bound.<x> metadata (declared), else tessera.range.<x>\n"
            "(calibrated), else a Chebyshev node's own interval; a polynomial with none\n"
            "(no tessera metadata) shows '-' and is not counted (no bound is assumed).\n"
            "Under HE inputs cannot be clamped: out-of-range inputs are only counted.\n"
            "\n"
            "  --data DIR       Fashion-MNIST directory, its t10k test files (default %s;\n"
            "                   an existing directory is one even with a ',' in its path)\n"
            "  --data X,Y       inputs and labels/targets: two .npy or IDX files\n"
            "  --loss L         auto (default: ce for integer labels and a class output,\n"
            "                   else mse), ce or mse\n"
            "  --pixel-norm M,S pixels p become (p / 255 - M) / S (default: the model's\n"
            "                   tessera.input.mean/std, else Fashion-MNIST's). Pixels are\n"
            "                   inputs of rank >= 2 in bytes (IDX, uint8 .npy), or of any\n"
            "                   integer type with this option or the model's metadata;\n"
            "                   other inputs (floats, integer token ids) are used as read\n"
            "  --limit N        evaluate the first N samples only\n"
            "  --batch N        evaluation batch (256)\n"
            "  --threads N      OpenMP threads\n"
            "\n"
            "Exit status 0 also when inputs fall outside a range (a warning says so).\n",
            TSR_FMNIST_DIR);
}

/* dir/stem.gz or dir/stem into buf; -1 when neither exists. */
static int find_file(char *buf, size_t n, const char *dir, const char *stem) {
    struct stat sb;
    if ((size_t)snprintf(buf, n, "%s/%s.gz", dir, stem) < n && stat(buf, &sb) == 0) return 0;
    if ((size_t)snprintf(buf, n, "%s/%s", dir, stem) < n && stat(buf, &sb) == 0) return 0;
    return -1;
}

/* "X,Y" of the Fashion-MNIST test files in dir. */
static int fashion_spec(const char *dir, char *spec, size_t n) {
    char im[2048], lb[2048];
    if (find_file(im, sizeof im, dir, "t10k-images-idx3-ubyte") != 0 ||
        find_file(lb, sizeof lb, dir, "t10k-labels-idx1-ubyte") != 0) {
        fprintf(stderr,
                "tessera eval: Fashion-MNIST test files (t10k-images-idx3-ubyte[.gz], "
                "t10k-labels-idx1-ubyte[.gz]) not found in '%s': install the Debian package "
                "dataset-fashion-mnist or pass --data DIR or --data X,Y\n",
                dir);
        return 2; /* a missing input, as cli_fail's TSR_ERR_NOT_FOUND */
    }
    if ((size_t)snprintf(spec, n, "%s,%s", im, lb) >= n)
        return cli_usage_error("eval", "path too long");
    return 0;
}

/* The model's pixel preprocessing from tessera.input.mean / std, when it has both (1). */
static int meta_norm(const tsr_onnx_model *om, double *mean, double *sd) {
    const char *m = tsr_onnx_meta(om, "tessera.input.mean"),
               *s = tsr_onnx_meta(om, "tessera.input.std");
    if (!m || !s) return 0;
    double a, b;
    if (cli_parse_double(m, &a) == 0 && cli_parse_double(s, &b) == 0 && isfinite(a) &&
        isfinite(b) && b > 0) {
        *mean = a;
        *sd = b;
        return 1;
    }
    return 0;
}

/* "(N, d1, d2, ...)" of a graph value, batch first. */
static void sample_shape(const tsr_graph *g, const char *name, char *buf, size_t n) {
    int rank;
    int64_t dims[TSR_ARRAY_MAX_RANK];
    size_t at = (size_t)snprintf(buf, n, "(N");
    if (tsr_graph_value_shape(g, name, &rank, dims) != TSR_OK) rank = 0;
    for (int k = 1; k < rank && at < n; k++)
        at += dims[k] < 0 ? (size_t)snprintf(buf + at, n - at, ", ?")
                          : (size_t)snprintf(buf + at, n - at, ", %lld", (long long)dims[k]);
    if (at < n) snprintf(buf + at, n - at, ")");
}

/* Activations worth reporting: polynomials and the elementwise non-polynomial functions. */
static int is_activation(tsr_graph_kind k) {
    if (k == TSR_NODE_POLY || k == TSR_NODE_CHEBYSHEV) return 1;
    return !tsr_graph_kind_is_polynomial(k) && k != TSR_NODE_SOFTMAX && k != TSR_NODE_MAXPOOL;
}

/* The activation table; returns the number of inputs outside their ranges. */
static uint64_t report_ranges(const tsr_graph *g, const tsr_onnx_model *om, const tsr_trainer *t) {
    int header = 0;
    uint64_t outside = 0;
    for (int i = 0; i < tsr_graph_num_nodes(g); i++) {
        tsr_graph_kind k = tsr_graph_node_kind(g, i);
        double lo, hi, blo, bhi, b;
        if (!is_activation(k) || tsr_trainer_node_range(t, i, &lo, &hi) != TSR_OK) continue;
        if (!header) {
            printf("%-16s %-10s %10s %10s %10s %20s %-10s %s\n", "activation", "kind", "min input",
                   "max input", "max |x|", "valid range", "from", "outside");
            header = 1;
        }
        char range[48] = "-";
        const char *from = "-";
        int bounded = tsr_trainer_node_bound(t, i, &blo, &bhi) == TSR_OK;
        if (bounded) {
            snprintf(range, sizeof range, "[%g, %g]", blo, bhi);
            int src = tcli_meta_bound(om, g, i, &b);
            from = k == TSR_NODE_CHEBYSHEV                     ? "interval"
                   : src == TCLI_BOUND_DECLARED && -b == blo   ? "declared"
                   : src == TCLI_BOUND_CALIBRATED && -b == blo ? "calibrated"
                                                               : "set";
        }
        double mx = fmax(fabs(lo), fabs(hi));
        printf("%-16s %-10s %10.4f %10.4f %10.4f %20s %-10s", tsr_graph_node_output(g, i),
               tsr_graph_kind_name(k), lo, hi, mx, range, from);
        uint64_t out = 0, cnt = 0;
        if (bounded && tsr_trainer_node_outside(t, i, &out, &cnt) == TSR_OK) {
            printf(" %llu of %llu (%.4f%%)%s\n", (unsigned long long)out, (unsigned long long)cnt,
                   cnt ? 100.0 * (double)out / (double)cnt : 0.0,
                   lo < blo || hi > bhi ? "  inputs beyond the range" : "");
            outside += out;
        } else {
            printf(" -\n");
        }
    }
    if (!header) printf("no activations\n");
    return outside;
}

int tsr_cmd_eval(int argc, char **argv) {
    if (cli_wants_help(argc, argv)) {
        usage(stdout);
        return 0;
    }
    const char *pos[2] = { NULL, NULL }, *data = NULL, *loss_s = NULL, *norm = NULL;
    long limit = 0, batch = 256, threads = 0;
    const cli_opt opts[] = {
        { "--data", CLI_STR, &data, 0, 0 },        { "--loss", CLI_STR, &loss_s, 0, 0 },
        { "--pixel-norm", CLI_STR, &norm, 0, 0 },  { "--limit", CLI_LONG, &limit, 1, 100000000 },
        { "--batch", CLI_LONG, &batch, 1, 65536 }, { "--threads", CLI_LONG, &threads, 1, 64 },
    };
    int rc = cli_parse_args("eval", argc, argv, opts, sizeof opts / sizeof opts[0], pos, 2);
    if (rc) return rc;
    const char *path = pos[0];
    if (pos[1]) return cli_usage_error("eval", "one model at a time ('%s' and '%s')", path, pos[1]);
    if (!path) return cli_usage_error("eval", "give the model file: tessera eval M.onnx");
    tsr_train_loss loss;
    if ((rc = tcli_parse_loss("eval", loss_s, &loss)) != 0) return rc;
    double mean = TSR_FMNIST_MEAN, sd = TSR_FMNIST_STD;
    if (norm && (rc = tcli_parse_norm("eval", norm, &mean, &sd)) != 0) return rc;
    char spec[4200];
    struct stat sb;
    if (!data || !strchr(data, ',') || (stat(data, &sb) == 0 && S_ISDIR(sb.st_mode))) {
        if ((rc = fashion_spec(data ? data : TSR_FMNIST_DIR, spec, sizeof spec)) != 0) return rc;
    } else if ((size_t)snprintf(spec, sizeof spec, "%s", data) >= sizeof spec) {
        return cli_usage_error("eval", "--data is too long");
    }
    if (threads) tsr_set_num_threads((int)threads);

    tsr_graph *g = NULL;
    tsr_onnx_model *om = NULL;
    tsr_trainer *t = NULL;
    tsr_array *x = NULL, *y = NULL;
    tsr_status st;
    if ((rc = tcli_load_graph_om("eval", path, 1, &g, &om)) != 0) goto out;
    /* integer X wider than bytes (token ids, counts) are pixels only when the model or
       --pixel-norm says so */
    int int_pixels = norm != NULL;
    if (!norm) int_pixels = meta_norm(om, &mean, &sd);
    if ((rc = tcli_load_pair("eval", spec, g, mean, sd, limit, int_pixels, &x, &y, NULL)) != 0)
        goto out;
    if ((st = tsr_trainer_create(&t, g)) != TSR_OK) {
        rc = cli_fail("eval", st, "preparing the model");
        goto out;
    }
    if ((rc = tcli_meta_bounds("eval", om, g, t)) != 0) goto out;
    tsr_trainer_track_ranges(t, 1, 1);
    double mloss, acc;
    if ((st = tsr_trainer_evaluate(t, loss, x, y, (int)batch, &mloss, &acc)) != TSR_OK) {
        rc = cli_fail("eval", st, "evaluating");
        goto out;
    }
    char ds[2][160];
    sample_shape(g, tsr_graph_input_name(g, 0), ds[0], sizeof ds[0]);
    sample_shape(g, tsr_graph_output_name(g, 0), ds[1], sizeof ds[1]);
    printf("model %s: %zu parameters, %d nodes, input %s, output %s\n", path,
           tsr_trainer_num_params(t), tsr_graph_num_nodes(g), ds[0], ds[1]);
    if (!isnan(acc))
        printf("accuracy %.2f%% (%lld samples), cross-entropy %.4f\n", 100 * acc,
               (long long)x->dims[0], mloss);
    else
        printf("MSE %.6g (%lld samples)\n", mloss, (long long)x->dims[0]);
    uint64_t outside = report_ranges(g, om, t);
    if (outside)
        printf("warning: %llu polynomial inputs fell outside their valid range\n",
               (unsigned long long)outside);
    rc = 0;
out:
    tsr_trainer_free(t);
    tsr_graph_free(g);
    tsr_onnx_free(om);
    tsr_array_free(x);
    tsr_array_free(y);
    return rc;
}
