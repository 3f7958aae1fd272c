/*
 * cli/cmd_heify.c - `tessera heify`: the HE-friendly methodology on a user's
 * own model (docs/TRAINING.md): import the teacher with its non-polynomial
 * nodes, calibrate activation ranges on the data, replace activations by
 * trainable polynomials and max pooling by average pooling, fold batch
 * norm, distil from the teacher with the range loss, export, and check that
 * the result imports with no non-polynomial node.
 */
#include "cli.h"

#include "core/progress.h"
#include "onnx/onnx_graph.h"
#include "tessera/core.h"
#include "tessera/train.h"
#include "train/data.h"
#include "train_cli.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define VERB "heify"

static void usage(FILE *out) {
    fprintf(out, "usage: tessera heify TEACHER.onnx --data X,Y --out STUDENT.onnx [options]\n"
                 "\n"
                 "Make a HE-friendly student of your own model (Baruch et al. 2021, 2023):\n"
                 "calibrate the input range of every ReLU / sigmoid / tanh / erf on the data,\n"
                 "replace each by a trainable polynomial fitted on that range, MaxPool by\n"
                 "AveragePool, fold batch norm into the convolution or Gemm before it, then\n"
                 "distil from the teacher with a range loss and save the student as ONNX.\n"
                 "\n"
                 "  --data X,Y          training inputs and integer labels (.npy or IDX files;\n"
                 "                      integer images are scaled by --pixel-norm)\n"
                 "  --out S.onnx        the student (required)\n"
                 "  --test X,Y          report teacher and student accuracy on these\n"
                 "  --degree D          polynomial degree (2; 1..8)\n"
                 "  --margin M          fit on [-M b, M b], b the largest |x| seen (1.0)\n"
                 "  --calib N           calibrate on the first N training samples (5000)\n"
                 "  --epochs E          distillation epochs (3)\n"
                 "  --batch N           batch size (64)\n"
                 "  --lr LR             Adam learning rate (1e-3)\n"
                 "  --kd-temp T         distillation temperature (4)\n"
                 "  --alpha A           weight of the distillation term against the labels' (0.7)\n"
                 "  --range-loss W      weight of the range loss, 0 = off (0.01)\n"
                 "  --no-fold-bn        keep batch-norm nodes\n"
                 "  --pixel-norm M,S    integer pixels p become (p / 255 - M) / S (0.2860,0.3530)\n"
                 "  --limit N           train on the first N samples only\n"
                 "  --seed S            shuffling seed (1)\n"
                 "  --threads N         OpenMP threads (default: all)\n"
                 "  --quiet             no per-epoch lines\n"
                 "  --force             replace --out even if it holds a secret key\n"
                 "\n"
                 "Then: tessera compile STUDENT.onnx ... (docs/INFERENCE.md).\n");
}

typedef struct opts {
    const char *teacher, *data, *out, *test, *pixel_norm;
    long degree, calib, epochs, batch, limit, seed, threads;
    double margin, lr, kd_temp, alpha, range_w;
    int no_fold, quiet, force;
} opts;

static int parse(int argc, char **argv, opts *o) {
    memset(o, 0, sizeof *o);
    o->degree = 2;
    o->calib = 5000;
    o->epochs = 3;
    o->batch = 64;
    o->seed = 1;
    o->margin = 1.0;
    o->lr = 1e-3;
    o->kd_temp = 4;
    o->alpha = 0.7;
    o->range_w = 0.01;
    const cli_opt defs[] = {
        { "--data", CLI_STR, &o->data, 0, 0 },
        { "--out", CLI_STR, &o->out, 0, 0 },
        { "--test", CLI_STR, &o->test, 0, 0 },
        { "--pixel-norm", CLI_STR, &o->pixel_norm, 0, 0 },
        { "--degree", CLI_LONG, &o->degree, 1, 8 },
        { "--calib", CLI_LONG, &o->calib, 1, 100000000 },
        { "--epochs", CLI_LONG, &o->epochs, 1, 10000 },
        { "--batch", CLI_LONG, &o->batch, 1, 65536 },
        { "--limit", CLI_LONG, &o->limit, 1, 100000000 },
        { "--seed", CLI_LONG, &o->seed, 0, 0x7fffffffL },
        { "--threads", CLI_LONG, &o->threads, 1, 64 },
        { "--margin", CLI_DOUBLE, &o->margin, 0, 0 },
        { "--lr", CLI_DOUBLE, &o->lr, 0, 0 },
        { "--kd-temp", CLI_DOUBLE, &o->kd_temp, 0, 0 },
        { "--alpha", CLI_DOUBLE, &o->alpha, 0, 0 },
        { "--range-loss", CLI_DOUBLE, &o->range_w, 0, 0 },
        { "--no-fold-bn", CLI_FLAG, &o->no_fold, 0, 0 },
        { "--quiet", CLI_FLAG, &o->quiet, 0, 0 },
        { "--force", CLI_FLAG, &o->force, 0, 0 },
    };
    const char *pos[1] = { NULL };
    int rc = cli_parse_args(VERB, argc, argv, defs, sizeof defs / sizeof defs[0], pos, 1);
    if (rc) return rc;
    o->teacher = pos[0];
    if (!o->teacher) return cli_usage_error(VERB, "the teacher model (TEACHER.onnx) is required");
    if (!o->data) return cli_usage_error(VERB, "--data X,Y is required");
    if (!o->out) return cli_usage_error(VERB, "--out is required");
    if (!(o->margin >= 1 && o->margin <= 100))
        return cli_usage_error(VERB, "--margin needs a number in [1, 100]");
    if (!(o->lr > 0 && o->lr <= 10)) return cli_usage_error(VERB, "--lr needs a number in (0, 10]");
    if (!(o->kd_temp >= 1e-3 && o->kd_temp <= 1000))
        return cli_usage_error(VERB, "--kd-temp needs a number in [0.001, 1000]");
    if (!(o->alpha >= 0 && o->alpha <= 1))
        return cli_usage_error(VERB, "--alpha needs a number in [0, 1]");
    if (!(o->range_w >= 0 && o->range_w <= 1e6))
        return cli_usage_error(VERB, "--range-loss needs a weight in [0, 1e6]");
    return 0;
}

static const char *kind_label(tsr_graph_kind k) {
    return tsr_graph_kind_name(k);
}

int tsr_cmd_heify(int argc, char **argv) {
    if (cli_wants_help(argc, argv)) {
        usage(stdout);
        return 0;
    }
    opts o;
    int rc = parse(argc, argv, &o);
    if (rc) return rc;
    double mean = TSR_FMNIST_MEAN, sd = TSR_FMNIST_STD;
    if (o.pixel_norm && (rc = tcli_parse_norm(VERB, o.pixel_norm, &mean, &sd)) != 0) return rc;
    if (o.threads) tsr_set_num_threads((int)o.threads);
    cli_output outs[] = { { o.out, 0, NULL } };
    const char *ins[] = { o.teacher };
    if ((rc = cli_outputs_check(VERB, outs, 1, ins, 1, o.force)) != 0) return rc;

    tsr_graph *teacher = NULL, *student = NULL, *trained = NULL;
    tsr_array *x = NULL, *y = NULL, *xt = NULL, *yt = NULL;
    tsr_trainer *t = NULL;
    tsr_onnx_model *back = NULL;
    tsr_graph *reimported = NULL;
    tsr_status st;
    int pixels = 0;
    double t0 = tsr_now();
    if ((rc = tcli_load_graph(VERB, o.teacher, 1, &teacher)) != 0) goto out;
    if ((rc = tcli_load_pair(VERB, o.data, teacher, mean, sd, o.limit, 1, &x, &y, &pixels)) != 0)
        goto out;
    if (o.test && (rc = tcli_load_pair(VERB, o.test, teacher, mean, sd, 0, 1, &xt, &yt, NULL)) != 0)
        goto out;
    /* calibrate and build the student */
    tsr_array calib = *x;
    if (calib.dims[0] > o.calib) {
        calib.numel = calib.numel / (size_t)calib.dims[0] * (size_t)o.calib;
        calib.dims[0] = o.calib;
    }
    tsr_heify_opts ho;
    tsr_heify_opts_default(&ho);
    ho.degree = (int)o.degree;
    ho.margin = o.margin;
    ho.fold_bn = !o.no_fold;
    tsr_heify_report rep;
    if ((st = tsr_heify_graph(teacher, &calib, &ho, &student, &rep)) != TSR_OK) {
        rc = cli_fail(VERB, st, "building the student");
        goto out;
    }
    printf("teacher %s: %d activations replaced by degree-%ld polynomials, %d batch norms "
           "folded, %d max pools averaged (calibrated on %lld samples)\n",
           o.teacher, rep.n_acts, o.degree, rep.folded, rep.maxpools, (long long)calib.dims[0]);
    for (int i = 0; i < rep.n_acts && i < TSR_HEIFY_MAX_ACTS; i++)
        printf("  %-24s %-8s inputs in [%.3f, %.3f] -> polynomial on [-%.3f, %.3f]\n",
               rep.acts[i].node, kind_label(rep.acts[i].was), rep.acts[i].lo, rep.acts[i].hi,
               rep.acts[i].bound, rep.acts[i].bound);
    double tacc = NAN, s0 = NAN;
    if (xt) {
        if ((tacc = tcli_accuracy(VERB, teacher, xt, yt)) < 0 ||
            (s0 = tcli_accuracy(VERB, student, xt, yt)) < 0) {
            rc = 1;
            goto out;
        }
        printf("test accuracy: teacher %.2f%%, student before distillation %.2f%%\n", 100 * tacc,
               100 * s0);
    }
    fflush(stdout);
    /* distil */
    if ((st = tsr_trainer_create(&t, student)) != TSR_OK) {
        rc = cli_fail(VERB, st, "preparing the student");
        goto out;
    }
    tsr_train_opts to;
    tsr_train_opts_default(&to);
    to.epochs = (int)o.epochs;
    to.batch = (int)o.batch;
    to.lr = o.lr;
    to.seed = (uint64_t)o.seed;
    to.loss = TSR_TRAIN_LOSS_CE;
    to.teacher = teacher;
    to.kd_temp = o.kd_temp;
    to.kd_alpha = o.alpha;
    to.range_weight = o.range_w;
    to.progress = !o.quiet;
    tsr_train_report tr;
    fprintf(stderr, "distilling: %zu parameters, %lld samples, %d threads\n",
            tsr_trainer_num_params(t), (long long)x->dims[0], tsr_get_num_threads());
    if ((st = tsr_trainer_fit(t, &to, x, y, NULL, NULL, &tr)) != TSR_OK) {
        rc = cli_fail(VERB, st, "distilling");
        goto out;
    }
    if ((st = tsr_trainer_graph(t, &trained)) != TSR_OK) {
        rc = cli_fail(VERB, st, "exporting the student");
        goto out;
    }
    /* ranges of the trained student's polynomial inputs on the calibration data */
    tsr_trainer_track_ranges(t, 1, 1);
    for (int64_t at = 0; at < calib.dims[0]; at += 256) {
        tsr_array view = calib;
        view.dims[0] = calib.dims[0] - at < 256 ? calib.dims[0] - at : 256;
        view.numel = calib.numel / (size_t)calib.dims[0] * (size_t)view.dims[0];
        view.data = calib.data + (calib.numel / (size_t)calib.dims[0]) * (size_t)at;
        if ((st = tsr_trainer_forward(t, &view, NULL)) != TSR_OK) {
            rc = cli_fail(VERB, st, "measuring ranges");
            goto out;
        }
    }
    for (int i = 0; i < tsr_graph_num_nodes(trained); i++) {
        if (tsr_graph_node_kind(trained, i) != TSR_NODE_CHEBYSHEV) continue;
        double lo, hi;
        const tsr_graph_attrs *a = tsr_graph_node_attrs(trained, i);
        if (tsr_trainer_node_range(t, i, &lo, &hi) == TSR_OK)
            printf("  %-24s student inputs in [%.3f, %.3f]%s\n", tsr_graph_node_name(trained, i),
                   lo, hi, lo < a->lo || hi > a->hi ? " (beyond the polynomial's interval)" : "");
    }
    if (xt) {
        double sacc = tcli_accuracy(VERB, trained, xt, yt);
        if (sacc < 0) {
            rc = 1;
            goto out;
        }
        printf("test accuracy: teacher %.2f%%, student %.2f%% (%+.2f points)\n", 100 * tacc,
               100 * sacc, 100 * (sacc - tacc));
    }
    if ((rc = tcli_save_graph(VERB, trained, t, o.out, o.force, pixels, mean, sd)) != 0) goto out;
    /* the check: the saved student imports with no non-polynomial node */
    if ((st = tsr_onnx_load(&back, o.out)) == TSR_OK) {
        tsr_onnx_import_opts io;
        tsr_onnx_import_opts_default(&io);
        st = tsr_onnx_to_graph(back, &io, &reimported, NULL);
    }
    if (st != TSR_OK) {
        rc = cli_fail(VERB, st, "checking the saved student (it should be polynomial)");
        goto out;
    }
    printf("saved %s: polynomial (imports with no non-polynomial node), %.1f s in all\n", o.out,
           tsr_now() - t0);
    rc = 0;
out:
    tsr_onnx_free(back);
    tsr_graph_free(reimported);
    tsr_trainer_free(t);
    tsr_graph_free(teacher);
    tsr_graph_free(student);
    tsr_graph_free(trained);
    tsr_array_free(x);
    tsr_array_free(y);
    tsr_array_free(xt);
    tsr_array_free(yt);
    return rc;
}
