/*
 * bench/bench_train.c - `tessera bench train`: wall time of training epochs
 * on Fashion-MNIST (batch 128, Adam lr 1e-3, shuffled, no augmentation) for
 * the CryptoNets-style CNN, the conv8/16 CNN and the MLP 784-100-10, plus the
 * test accuracy reached, for comparison with bench/train_torch.py (the same
 * models, optimizer and data in PyTorch). Results: docs/BENCHMARKS.md.
 */
#include "bench.h"
#include "cli.h"

#include "core/progress.h"
#include "train/data.h"
#include "train/model.h"
#include "train/train.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void usage(FILE *out) {
    fprintf(out,
            "usage: tessera bench train [--epochs E] [--threads N] [--models LIST] [--act LIST]\n"
            "                           [--data DIR]\n"
            "\n"
            "Trains each model for E epochs (default 3) on the 60000 Fashion-MNIST training\n"
            "images (batch 128, Adam, learning rate 1e-3 constant, seeded shuffling) and\n"
            "reports the median and fastest epoch (training only, no evaluation), images/s\n"
            "and the test accuracy after the last epoch.\n"
            "Compare with: /usr/bin/python3 bench/train_torch.py (same models and options).\n"
            "\n"
            "  --models LIST   comma-separated from cryptonets,conv8,mlp (default all)\n"
            "  --act LIST      comma-separated activations (default relu,poly2)\n"
            "  --threads N     OpenMP threads (default 2, as the PyTorch reference)\n");
}

static int in_list(const char *list, const char *name) {
    size_t n = strlen(name);
    for (const char *p = list; p && *p;) {
        const char *e = strchr(p, ',');
        size_t len = e ? (size_t)(e - p) : strlen(p);
        if (len == n && strncmp(p, name, n) == 0) return 1;
        p = e ? e + 1 : NULL;
    }
    return 0;
}

typedef struct epoch_log {
    double t[100];
    int n;
} epoch_log;

static int record_epoch(const tsr_epoch_stats *s, void *user) {
    epoch_log *l = user;
    if (l->n < 100) l->t[l->n++] = s->seconds;
    return 0;
}

int bench_train_main(int argc, char **argv) {
    if (cli_wants_help(argc, argv)) {
        usage(stdout);
        return 0;
    }
    long epochs = 3, threads = 2;
    const char *models = "cryptonets,conv8,mlp", *acts = "relu,poly2", *data = NULL;
    const cli_opt opts[] = {
        { "--epochs", CLI_LONG, &epochs, 1, 100 }, { "--threads", CLI_LONG, &threads, 1, 64 },
        { "--models", CLI_STR, &models, 0, 0 },    { "--act", CLI_STR, &acts, 0, 0 },
        { "--data", CLI_STR, &data, 0, 0 },
    };
    int prc =
        cli_parse_args("bench train", argc, argv, opts, sizeof opts / sizeof opts[0], NULL, 0);
    if (prc) return prc;
    tsr_set_num_threads((int)threads);
    tsr_dataset train, test;
    tsr_status st = tsr_dataset_load_fashion(&train, data, 1, 0);
    if (st == TSR_OK) st = tsr_dataset_load_fashion(&test, data, 0, 0);
    if (st != TSR_OK) return cli_fail("bench train", st, "loading Fashion-MNIST");
    printf("bench train: %ld epochs, batch 128, Adam lr 1e-3, %d threads, %d training images\n",
           epochs, tsr_get_num_threads(), train.n);
    printf("%-11s %-6s %10s %10s %10s %9s\n", "model", "act", "epoch s", "min s", "img/s",
           "test acc");
    const char *names[3] = { "cryptonets", "conv8", "mlp" };
    const char *actl[2] = { "relu", "poly2" };
    int rc = 0;
    for (int k = 0; k < 3 && rc == 0; k++) {
        if (!in_list(models, names[k])) continue;
        for (int a = 0; a < 2 && rc == 0; a++) {
            if (!in_list(acts, actl[a])) continue;
            tsr_act_spec act;
            tsr_act_parse(actl[a], &act);
            tsr_model *m;
            if ((st = tsr_model_build(&m, names[k], &act, 1)) != TSR_OK) {
                rc = cli_fail("bench train", st, "building");
                break;
            }
            tsr_train_config cfg;
            tsr_train_config_default(&cfg);
            cfg.epochs = (int)epochs;
            cfg.sched = TSR_SCHED_CONST;
            cfg.seed = 1;
            cfg.on_epoch = record_epoch;
            epoch_log log = { { 0 }, 0 };
            cfg.user = &log;
            tsr_train_result res;
            if ((st = tsr_train_run(m, &cfg, &train, &test, &res)) != TSR_OK)
                rc = cli_fail("bench train", st, "training");
            double best = 1e30, acc = res.last.test_acc;
            for (int e = 0; e < log.n; e++)
                if (log.t[e] < best) best = log.t[e];
            double *t = log.t;
            if (rc == 0) {
                double med = bench_median(t, (size_t)epochs);
                printf("%-11s %-6s %10.3f %10.3f %10.0f %8.2f%%\n", names[k], actl[a], med, best,
                       train.n / med, 100 * acc);
                fflush(stdout);
            }
            tsr_model_free(m);
        }
    }
    tsr_dataset_free(&train);
    tsr_dataset_free(&test);
    return rc;
}
