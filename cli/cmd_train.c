/*
 * cli/cmd_train.c - `tessera train`: train a built-in architecture on
 * Fashion-MNIST (ReLU, GELU or polynomial activations; optional distillation
 * from a teacher ONNX model and range loss) and save it as ONNX.
 */
#include "cli.h"

#include "core/progress.h"
#include "train/data.h"
#include "train/model.h"
#include "train/model_onnx.h"
#include "train/train.h"
#include "train_cli.h"
#include "tessera/train.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void usage(FILE *out) {
    fprintf(
        out,
        "usage: tessera train --arch NAME --act ACT --epochs E --out M.onnx [options]\n"
        "       tessera train --init MODEL.onnx --data X,Y --epochs E --out M.onnx [options]\n"
        "\n"
        "Train a model on Fashion-MNIST and save it as ONNX (conventions: docs/ONNX.md).\n"
        "With --init, train any model Tessera imports (a PyTorch export, ReLU or\n"
        "polynomial) on X,Y: two .npy or IDX files, inputs and labels (integers, one\n"
        "per sample: cross-entropy) or targets (the output's shape: MSE).\n"
        "\n"
        "own model (--init):\n"
        "  --init M.onnx       the model to train (its weights are the starting point)\n"
        "  --data X,Y          training inputs and labels/targets (.npy or IDX; integer\n"
        "                      images of rank >= 2 are scaled by --pixel-norm)\n"
        "  --test X,Y          evaluated at the end (optional)\n"
        "  --loss L            auto (default: ce for integer labels, else mse), ce or mse\n"
        "  --pixel-norm M,S    integer pixels p become (p / 255 - M) / S (0.2860,0.3530:\n"
        "                      Fashion-MNIST's statistics, as the built-in training uses)\n"
        "  --teacher, --kd-temp, --kd-alpha, --range-loss, --optim, --lr, --wd,\n"
        "  --schedule, --batch, --seed, --threads, --limit: as below\n"
        "\n"
        "model:\n"
        "  --arch NAME         mlp, cryptonets, lenet, resnet or conv8\n"
        "  --act ACT           relu, gelu or polyD (polynomial of degree D = 1..8)\n"
        "  --per-channel       one polynomial per channel (default: one per layer)\n"
        "  --poly-bound B      polynomials start as the fit of ReLU on [-B, B] (default 4,\n"
        "                      or the --range-loss bound); B is also their valid range\n"
        "  --poly-init M       initial fit: lsq (least squares, default) or cheb\n"
        "training:\n"
        "  --epochs E          epochs (required)\n"
        "  --batch N           batch size (128)\n"
        "  --optim O           adam (default), adamw or sgd\n"
        "  --lr LR             learning rate (adam/adamw 1e-3, sgd 0.05)\n"
        "  --wd W              weight decay on conv/dense weights (0)\n"
        "  --momentum M        SGD momentum (0.9)\n"
        "  --schedule S        const, step or cosine (default cosine)\n"
        "  --warmup E          linear warm-up epochs (0)\n"
        "  --clip C            clip the gradient norm to C (off)\n"
        "  --augment           random shifts of up to 2 pixels and horizontal flips\n"
        "  --seed S            seed of initialisation, shuffling, augmentation (1)\n"
        "  --threads N         OpenMP threads (default: all)\n"
        "HE-friendly methodology (Baruch et al. 2021, 2023):\n"
        "  --teacher T.onnx    distil from this model (e.g. the ReLU version)\n"
        "  --kd-temp T         distillation temperature (4)\n"
        "  --kd-alpha A        weight of the distillation term (0.7)\n"
        "  --range-loss B,W    add W * mean relu(|x| - B)^2 over polynomial inputs\n"
        "data and output:\n"
        "  --data DIR          Fashion-MNIST directory (%s)\n"
        "  --limit N           use only the first N training images\n"
        "  --out M.onnx        output model (required)\n"
        "  --csv FILE          learning curves (epoch, lr, losses, accuracies, time)\n"
        "  --no-fold-bn        keep BatchNormalization nodes (default: folded into conv/dense)\n"
        "  --quiet             no progress bar\n"
        "  --force             replace --out / --csv even if one holds a secret key (an\n"
        "                      output equal to an input is always refused)\n"
        "\n"
        "Runs are reproducible for a seed and thread count. Example (docs/TRAINING.md):\n"
        "  tessera train --arch lenet --act relu --epochs 15 --out relu.onnx\n"
        "  tessera train --arch lenet --act poly2 --teacher relu.onnx --range-loss 4,0.01 "
        "--epochs 15 --out poly.onnx\n",
        TSR_FMNIST_DIR);
}

typedef struct opts {
    const char *arch, *act, *out, *csv, *teacher, *data, *optim, *schedule, *poly_init, *range;
    const char *init, *test, *loss, *pixel_norm;
    long epochs, batch, limit, threads, seed;
    double lr, wd, momentum, warmup, clip, kd_temp, kd_alpha, range_b, range_w, poly_bound;
    int per_channel, augment, no_fold, quiet, force, have_lr, have_bound, have_range;
} opts;

static int parse(int argc, char **argv, opts *o) {
    memset(o, 0, sizeof *o);
    o->batch = 128;
    o->seed = 1;
    o->kd_temp = 4;
    o->kd_alpha = 0.7;
    o->momentum = NAN; /* NAN: not given (0.9, 0 and 0 below) */
    o->warmup = NAN;
    o->clip = NAN;
    o->lr = NAN;         /* NAN: not given, the optimizer's default */
    o->poly_bound = NAN; /* NAN: not given, the --range-loss bound or 4 */
    o->optim = "adam";
    o->schedule = "cosine";
    const cli_opt defs[] = {
        { "--arch", CLI_STR, &o->arch, 0, 0 },
        { "--act", CLI_STR, &o->act, 0, 0 },
        { "--out", CLI_STR, &o->out, 0, 0 },
        { "--csv", CLI_STR, &o->csv, 0, 0 },
        { "--teacher", CLI_STR, &o->teacher, 0, 0 },
        { "--data", CLI_STR, &o->data, 0, 0 },
        { "--optim", CLI_STR, &o->optim, 0, 0 },
        { "--schedule", CLI_STR, &o->schedule, 0, 0 },
        { "--poly-init", CLI_STR, &o->poly_init, 0, 0 },
        { "--range-loss", CLI_STR, &o->range, 0, 0 },
        { "--init", CLI_STR, &o->init, 0, 0 },
        { "--test", CLI_STR, &o->test, 0, 0 },
        { "--loss", CLI_STR, &o->loss, 0, 0 },
        { "--pixel-norm", CLI_STR, &o->pixel_norm, 0, 0 },
        { "--epochs", CLI_LONG, &o->epochs, 1, 10000 },
        { "--batch", CLI_LONG, &o->batch, 1, 65536 },
        { "--limit", CLI_LONG, &o->limit, 1, 100000000 },
        { "--threads", CLI_LONG, &o->threads, 1, 64 },
        { "--seed", CLI_LONG, &o->seed, 0, 0x7fffffffL },
        { "--lr", CLI_DOUBLE, &o->lr, 0, 0 },
        { "--wd", CLI_DOUBLE, &o->wd, 0, 0 },
        { "--momentum", CLI_DOUBLE, &o->momentum, 0, 0 },
        { "--warmup", CLI_DOUBLE, &o->warmup, 0, 0 },
        { "--clip", CLI_DOUBLE, &o->clip, 0, 0 },
        { "--kd-temp", CLI_DOUBLE, &o->kd_temp, 0, 0 },
        { "--kd-alpha", CLI_DOUBLE, &o->kd_alpha, 0, 0 },
        { "--poly-bound", CLI_DOUBLE, &o->poly_bound, 0, 0 },
        { "--per-channel", CLI_FLAG, &o->per_channel, 0, 0 },
        { "--augment", CLI_FLAG, &o->augment, 0, 0 },
        { "--no-fold-bn", CLI_FLAG, &o->no_fold, 0, 0 },
        { "--quiet", CLI_FLAG, &o->quiet, 0, 0 },
        { "--force", CLI_FLAG, &o->force, 0, 0 },
    };
    int rc = cli_parse_args("train", argc, argv, defs, sizeof defs / sizeof defs[0], NULL, 0);
    if (rc) return rc;
    o->have_lr = !isnan(o->lr);
    o->have_bound = !isnan(o->poly_bound);
    const struct {
        const char *flag;
        double val, lo, hi;
        int given;
    } ranges[] = {
        { "--lr", o->lr, 1e-9, 10, o->have_lr },
        { "--wd", o->wd, 0, 10, 1 },
        { "--momentum", o->momentum, 0, 0.9999, !isnan(o->momentum) },
        { "--warmup", o->warmup, 0, 10000, !isnan(o->warmup) },
        { "--clip", o->clip, 0, 1e9, !isnan(o->clip) },
        { "--kd-temp", o->kd_temp, 1e-3, 1000, 1 },
        { "--kd-alpha", o->kd_alpha, 0, 1, 1 },
        { "--poly-bound", o->poly_bound, 1e-3, 1e6, o->have_bound },
    };
    for (size_t k = 0; k < sizeof ranges / sizeof ranges[0]; k++)
        if (ranges[k].given && !(ranges[k].val >= ranges[k].lo && ranges[k].val <= ranges[k].hi))
            return cli_usage_error("train", "%s needs a number in [%g, %g]", ranges[k].flag,
                                   ranges[k].lo, ranges[k].hi);
    if (o->range) {
        char *end;
        o->range_b = strtod(o->range, &end);
        if (*end != ',' || !(o->range_b > 0) || !isfinite(o->range_b))
            return cli_usage_error("train", "--range-loss needs B,W with B > 0, e.g. 4,0.01");
        if (cli_parse_double(end + 1, &o->range_w) != 0 || !(o->range_w >= 0))
            return cli_usage_error("train", "--range-loss needs B,W with W >= 0, e.g. 4,0.01");
        o->have_range = 1;
    }
    if (o->init) {
        if (o->arch || o->act || o->per_channel || o->have_bound || o->augment || o->no_fold ||
            o->csv || o->poly_init || !isnan(o->momentum) || !isnan(o->warmup) || !isnan(o->clip))
            return cli_usage_error("train",
                                   "--arch, --act, --per-channel, --poly-bound, --poly-init, "
                                   "--augment, --no-fold-bn, --csv, --momentum, --warmup and "
                                   "--clip are for the built-in architectures, not --init");
        if (!o->data) return cli_usage_error("train", "--init needs --data X,Y");
    } else {
        if (o->test || o->loss || o->pixel_norm)
            return cli_usage_error("train", "--test, --loss and --pixel-norm need --init");
        if (!o->arch) return cli_usage_error("train", "--arch is required");
        if (!o->act) return cli_usage_error("train", "--act is required");
    }
    if (isnan(o->momentum)) o->momentum = 0.9;
    if (isnan(o->warmup)) o->warmup = 0;
    if (isnan(o->clip)) o->clip = 0;
    if (!o->poly_init) o->poly_init = "lsq";
    if (!o->epochs) return cli_usage_error("train", "--epochs is required");
    if (!o->out) return cli_usage_error("train", "--out is required");
    return 0;
}

/* The command line, for tessera.train.command. */
static void join_args(char *buf, size_t n, int argc, char **argv) {
    size_t len = (size_t)snprintf(buf, n, "tessera");
    for (int i = 0; i < argc && len < n; i++)
        len += (size_t)snprintf(buf + len, n - len, " %s", argv[i]);
}

/* `tessera train --init`: the graph trainer (tessera/train.h) on the user's model and data. */
static int train_graph(const opts *o) {
    double mean = TSR_FMNIST_MEAN, sd = TSR_FMNIST_STD;
    int rc;
    if (o->pixel_norm && (rc = tcli_parse_norm("train", o->pixel_norm, &mean, &sd)) != 0) return rc;
    tsr_train_opts to;
    tsr_train_opts_default(&to);
    if ((rc = tcli_parse_loss("train", o->loss, &to.loss)) != 0) return rc;
    tsr_optim_kind ok;
    tsr_sched_kind sk;
    if (tsr_optim_parse(o->optim, &ok) != TSR_OK || tsr_sched_parse(o->schedule, &sk) != TSR_OK)
        return cli_usage_error("train", "%s", tsr_last_error());
    if (o->threads) tsr_set_num_threads((int)o->threads);
    cli_output outs[] = { { o->out, 0, NULL } };
    const char *ins[] = { o->init, o->teacher };
    if ((rc = cli_outputs_check("train", outs, 1, ins, 2, o->force)) != 0) return rc;
    tsr_graph *g = NULL, *teacher = NULL, *trained = NULL;
    tsr_onnx_model *om = NULL; /* the model file's metadata */
    tsr_array *x = NULL, *y = NULL, *xt = NULL, *yt = NULL;
    tsr_trainer *t = NULL;
    tsr_status st;
    int pixels = 0;
    if ((rc = tcli_load_graph_om("train", o->init, 1, &g, &om)) != 0) goto out;
    if (o->teacher && (rc = tcli_load_graph("train", o->teacher, 1, &teacher)) != 0) goto out;
    if ((rc = tcli_load_pair("train", o->data, g, mean, sd, o->limit, 1, &x, &y, &pixels)) != 0)
        goto out;
    if (o->test && (rc = tcli_load_pair("train", o->test, g, mean, sd, 0, 1, &xt, &yt, NULL)) != 0)
        goto out;
    if ((st = tsr_trainer_create(&t, g)) != TSR_OK) {
        rc = cli_fail("train", st, "preparing the model");
        goto out;
    }
    /* the model's declared bounds travel to the trained model; --range-loss B replaces them */
    if ((rc = tcli_meta_bounds("train", om, g, t)) != 0) goto out;
    if (o->have_range)
        for (int i = 0; i < tsr_graph_num_nodes(g); i++) {
            tsr_graph_kind k = tsr_graph_node_kind(g, i);
            if (k == TSR_NODE_POLY || k == TSR_NODE_CHEBYSHEV)
                (void)tsr_trainer_set_node_bound(t, i, o->range_b);
        }
    to.epochs = (int)o->epochs;
    to.batch = (int)o->batch;
    to.optim = o->optim;
    to.schedule = o->schedule;
    to.lr = o->have_lr ? o->lr : ok == TSR_OPT_SGD ? 0.05 : 1e-3;
    to.weight_decay = o->wd;
    to.seed = (uint64_t)o->seed;
    to.teacher = teacher;
    to.kd_temp = o->kd_temp;
    to.kd_alpha = o->kd_alpha;
    to.range_weight = o->have_range ? o->range_w : 0;
    to.progress = !o->quiet;
    fprintf(stderr, "training %s: %zu parameters, %lld samples, %d threads\n", o->init,
            tsr_trainer_num_params(t), (long long)x->dims[0], tsr_get_num_threads());
    tsr_train_report rep;
    double t0 = tsr_now();
    if ((st = tsr_trainer_fit(t, &to, x, y, xt, yt, &rep)) != TSR_OK) {
        rc = cli_fail("train", st, "training");
        goto out;
    }
    if ((st = tsr_trainer_graph(t, &trained)) != TSR_OK) {
        rc = cli_fail("train", st, "exporting the trained graph");
        goto out;
    }
    if ((rc = tcli_save_graph("train", trained, t, o->out, o->force, pixels, mean, sd)) != 0)
        goto out;
    printf("trained %d epochs in %.1f s: training loss %.5f", to.epochs, tsr_now() - t0,
           rep.train_loss);
    if (!isnan(rep.test_loss)) printf(", test loss %.5f", rep.test_loss);
    if (!isnan(rep.test_acc)) printf(", test accuracy %.2f%%", 100 * rep.test_acc);
    printf("\nsaved %s\n", o->out);
    rc = 0;
out:
    tsr_trainer_free(t);
    tsr_onnx_free(om);
    tsr_graph_free(g);
    tsr_graph_free(teacher);
    tsr_graph_free(trained);
    tsr_array_free(x);
    tsr_array_free(y);
    tsr_array_free(xt);
    tsr_array_free(yt);
    return rc;
}

int tsr_cmd_train(int argc, char **argv) {
    if (cli_wants_help(argc, argv)) {
        usage(stdout);
        return 0;
    }
    opts o;
    int rc = parse(argc, argv, &o);
    if (rc) return rc;
    if (o.init) return train_graph(&o);
    tsr_act_spec act;
    tsr_status st = tsr_act_parse(o.act, &act);
    if (st != TSR_OK) return cli_usage_error("train", "%s", tsr_last_error());
    if (tsr_poly_fit_parse(o.poly_init, &act.fit) != TSR_OK)
        return cli_usage_error("train", "%s", tsr_last_error());
    tsr_train_config cfg;
    tsr_train_config_default(&cfg);
    if (tsr_optim_parse(o.optim, &cfg.optim) != TSR_OK ||
        tsr_sched_parse(o.schedule, &cfg.sched) != TSR_OK)
        return cli_usage_error("train", "%s", tsr_last_error());
    if (act.kind != TSR_ACT_POLY && (o.per_channel || o.have_bound || o.have_range))
        return cli_usage_error("train",
                               "--per-channel, --poly-bound and --range-loss need a polynomial "
                               "activation (--act polyD)");
    act.per_channel = o.per_channel;
    act.bound = (float)(o.have_bound ? o.poly_bound : o.have_range ? o.range_b : 4.0);
    if (o.threads) tsr_set_num_threads((int)o.threads);
    cli_output outs[] = { { o.out, 0, NULL }, { o.csv, 0, NULL } };
    const char *ins[] = { o.teacher, o.data };
    if ((rc = cli_outputs_check("train", outs, 2, ins, 2, o.force)) != 0) return rc;

    char cmdline[2048];
    join_args(cmdline, sizeof cmdline, argc, argv);
    tsr_dataset train, test;
    memset(&train, 0, sizeof train);
    memset(&test, 0, sizeof test);
    tsr_model *m = NULL, *teacher = NULL;
    if ((st = tsr_dataset_load_fashion(&train, o.data, 1, (int)o.limit)) != TSR_OK) {
        rc = cli_fail("train", st, "loading the training set");
        goto out;
    }
    if ((st = tsr_dataset_load_fashion(&test, o.data, 0, 0)) != TSR_OK) {
        rc = cli_fail("train", st, "loading the test set");
        goto out;
    }
    if ((st = tsr_model_build(&m, o.arch, &act, (uint64_t)o.seed)) != TSR_OK) {
        rc = cli_fail("train", st, "building the model");
        goto out;
    }
    if (o.teacher) {
        if ((st = tsr_model_load_onnx(&teacher, o.teacher)) != TSR_OK) {
            rc = cli_fail("train", st, "loading the teacher");
            goto out;
        }
        double tacc;
        if ((st = tsr_evaluate(teacher, &test, 256, NULL, &tacc)) != TSR_OK) {
            rc = cli_fail("train", st, "checking the teacher");
            goto out;
        }
        fprintf(stderr, "teacher %s (%s): test accuracy %.2f%%\n", o.teacher, teacher->arch,
                100 * tacc);
    }
    cfg.epochs = (int)o.epochs;
    cfg.batch = (int)o.batch;
    cfg.lr = (float)(o.have_lr ? o.lr : cfg.optim == TSR_OPT_SGD ? 0.05 : 1e-3);
    cfg.weight_decay = (float)o.wd;
    cfg.momentum = (float)o.momentum;
    cfg.warmup_epochs = (float)o.warmup;
    cfg.clip = (float)o.clip;
    cfg.seed = (uint64_t)o.seed;
    cfg.aug.crop_pad = o.augment ? 2 : 0;
    cfg.aug.flip = o.augment;
    cfg.teacher = teacher;
    cfg.kd_temp = (float)o.kd_temp;
    cfg.kd_alpha = (float)o.kd_alpha;
    cfg.range_weight = (float)(o.have_range ? o.range_w : 0);
    cfg.csv_path = o.csv;
    cfg.progress = !o.quiet;
    cfg.eval_each_epoch = o.csv != NULL;
    char actn[16];
    fprintf(stderr, "training %s (%s%s), %zu parameters, %d images, %d threads\n", o.arch,
            tsr_act_name(&act, actn, sizeof actn), act.per_channel ? ", per channel" : "",
            tsr_model_num_params(m), train.n, tsr_get_num_threads());
    tsr_train_result res;
    if ((st = tsr_train_run(m, &cfg, &train, &test, &res)) != TSR_OK) {
        rc = cli_fail("train", st, "training");
        goto out;
    }
    /* record activation ranges over (up to 10000) training images for the metadata */
    if ((st = tsr_calibrate(m, &train, 256, 10000)) != TSR_OK) {
        rc = cli_fail("train", st, "calibrating activation ranges");
        goto out;
    }
    tsr_export_opts eo;
    tsr_export_opts_default(&eo);
    eo.fold_bn = !o.no_fold;
    eo.command = cmdline;
    eo.test_accuracy = res.last.test_acc;
    eo.input_mean = train.mean;
    eo.input_std = train.std;
    if ((st = tsr_model_save_onnx(m, &eo, o.out)) != TSR_OK) {
        rc = cli_fail("train", st, "saving the model");
        goto out;
    }
    printf("%s %s: test accuracy %.2f%% (loss %.4f) after %d epochs, %.1f s (%.0f img/s)\n", o.arch,
           actn, 100 * res.last.test_acc, res.last.test_loss, cfg.epochs, res.total_seconds,
           res.last.images_per_s);
    for (int i = 0; i < m->n_layers; i++) {
        const tsr_layer *L = &m->layers[i];
        if (L->kind != TSR_LAYER_POLY) continue;
        printf("  %-12s inputs in [%.3f, %.3f], valid range [-%g, %g]%s\n", L->name,
               (double)L->seen_min, (double)L->seen_max, (double)L->bound, (double)L->bound,
               L->seen_outside ? " (some inputs outside)" : "");
    }
    printf("saved %s\n", o.out);
    rc = 0;
out:
    tsr_model_free(m);
    tsr_model_free(teacher);
    tsr_dataset_free(&train);
    tsr_dataset_free(&test);
    return rc;
}
