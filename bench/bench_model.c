/*
 * bench/bench_model.c - `tessera bench model M.onnx --batch B[,B2,...]`:
 * encrypted inference of a model on CKKS at 128-bit security, for each batch
 * size: the optimizer's plan, the server's inference time (median of the
 * runs; keys, encryption and weight encoding excluded and reported apart),
 * throughput, CPU time, and how the decrypted outputs compare with plaintext
 * inference over at least 100 samples (batch 1: 100 single-image runs): for a
 * classifier (tsr_nn_model_is_classifier: a class vector) the argmax agreement,
 * the largest logit error and (10 classes only) the accuracy; for other outputs (an autoencoder's
 * reconstruction) the largest output error and the mean squared error, since
 * an argmax of a reconstruction means nothing. Record results in
 * docs/BENCHMARKS.md.
 */
#include "bench.h"
#include "cli.h"
#include "nn_cli.h"

#include "core/progress.h"
#include "nn/nn_internal.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#define VERB "bench model"

static void usage(FILE *out) {
    fprintf(out,
            "usage: tessera bench model M.onnx [--batch B[,B2,...]] [--samples N] [--runs K]\n"
            "                                [--threads T] [--log-n N] [--scale-bits S]\n"
            "                                [--profile FILE] [--expand-keys]\n"
            "                                [--max-precision-trade BITS]\n"
            "                                [--data DIR]\n"
            "\n"
            "Encrypted inference on CKKS (128-bit security) for each batch size (default\n"
            "1,4096,8192): compile (the optimizer picks packing and parameters), keys, encrypt\n"
            "Fashion-MNIST test images, run, decrypt. Reports the median server time per batch\n"
            "and per image, images per second, process CPU time per batch, how the decrypted\n"
            "outputs compare with plaintext inference over at least N samples (--samples,\n"
            "default 100; batch 1 runs N single images), and the server's memory: the peak of\n"
            "the CKKS ciphertexts and plaintexts it held (keys excluded). A classifier (the\n"
            "output is a class vector: rank 1, at least two values, and not as many values as\n"
            "the input has, which is taken for a reconstruction; ONNX metadata tessera.output =\n"
            "classes | values decides instead) gets the agreement of the encrypted with the\n"
            "plaintext argmax, the largest logit error and, with 10 classes, the accuracy on\n"
            "the Fashion-MNIST labels (n/a otherwise); any other model (an autoencoder) the\n"
            "largest output error and the mean squared error against plaintext inference.\n"
            "\n"
            "  --runs K      timed runs per batch size beyond the samples (default 3)\n"
            "  --threads T   OpenMP threads (default: all)\n"
            "  --log-n N     force the ring degree 2^N (default: the optimizer's choice)\n"
            "  --scale-bits S  force the CKKS scale 2^S (default: the optimizer's choice)\n"
            "  --profile FILE  the cost profile the optimizer predicts with (tessera profile;\n"
            "                default: the built-in one)\n"
            "  --expand-keys  store the evaluation keys' a halves (tsr_ckks_*_expand): twice the\n"
            "                keys' memory, no ChaCha12 regeneration in every key switch\n"
            "  --max-precision-trade BITS  whole bits of scale the optimizer may give up for\n"
            "                a faster CKKS chain (default 2; 0: the largest scale; 0 to 20;\n"
            "                the rule: tessera compile --help)\n"
            "  --data DIR    Fashion-MNIST directory (/usr/share/datasets/fashion-mnist)\n");
}

static double cpu_seconds(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + 1e-6 * (double)ru.ru_utime.tv_usec +
           (double)ru.ru_stime.tv_sec + 1e-6 * (double)ru.ru_stime.tv_usec;
}

static int cmp_d(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

typedef struct result {
    int batch;
    char plan[128];
    int classes; /* tsr_nn_model_is_classifier: agree and acc mean something */
    double median, cpu, predicted, agree, max_err, mse, acc, prep, enc;
    double server_mib; /* peak of the server backend's live ciphertexts + plaintexts */
    int samples;
} result;

static const char *bench_profile;   /* --profile FILE, or NULL: the built-in costs */
static int bench_expand;            /* --expand-keys */
static const char *bench_trade_arg; /* --max-precision-trade BITS, or NULL: the default */
static double bench_trade;

static int bench_one(const tsr_nn_model *m, int batch, int want_samples, int runs, int log_n,
                     int scale_bits, const double *x, const int32_t *y, int nx, result *res) {
    memset(res, 0, sizeof *res);
    res->batch = batch;
    tsr_nn_compile_opts co;
    tsr_nn_compile_opts_default(&co);
    co.batch = batch;
    co.max_log_n = 15;
    co.log_n = log_n;
    co.scale_bits = scale_bits;
    co.profile = bench_profile;
    if (bench_trade_arg) co.max_precision_trade = bench_trade;
    tsr_nn_plan *p = NULL;
    printf("\n-- batch %d: compiling\n", batch);
    co.log = stdout;
    tsr_status st = tsr_nn_compile(m, &co, &p);
    if (st != TSR_OK) return cli_fail(VERB, st, "compiling");
    tsr_nn_plan_print(p, stdout);
    tsr_ckks_params *params = NULL;
    tsr_ckks_secret_key *sk = NULL;
    tsr_ckks_relin_key *rk = NULL;
    tsr_ckks_galois_keys *gk = NULL;
    tsr_backend *client = NULL, *server = NULL;
    tsr_nn_runner *r = NULL;
    int K = (int)tsr_nn_model_output_size(m), rc = 0;
    int64_t per = tsr_nn_model_input_size(m);
    st = tsr_nn_plan_params(p, &params);
    if (st == TSR_OK) st = tsr_nn_keygen(p, params, &sk, &rk, &gk);
    if (st == TSR_OK && bench_expand) st = tsr_ckks_relin_key_expand(rk);
    if (st == TSR_OK && bench_expand) st = tsr_ckks_galois_keys_expand(gk);
    if (st == TSR_OK)
        printf("evaluation keys in memory: %.1f MiB (%s)\n",
               (double)(tsr_ckks_relin_key_memory(rk) + tsr_ckks_galois_keys_memory(gk)) /
                   1048576.0,
               bench_expand ? "a halves stored: --expand-keys" : "seeded: b halves only");
    if (st == TSR_OK) st = tsr_backend_ckks_create(params, NULL, sk, NULL, NULL, &client);
    if (st == TSR_OK) st = tsr_backend_ckks_create(params, NULL, NULL, rk, gk, &server);
    double t0 = tsr_now();
    if (st == TSR_OK) st = tsr_nn_runner_create(p, server, &r);
    res->prep = tsr_now() - t0;
    if (st != TSR_OK) {
        rc = cli_fail(VERB, st, "setting up");
        goto out;
    }
    /* Enough batches to cover want_samples, plus timed repetitions of the first. */
    int per_batch = batch < nx ? batch : nx;
    int nb = (want_samples + per_batch - 1) / per_batch;
    if (nb < 1) nb = 1;
    int total = nb + runs;
    double *times = calloc((size_t)total, sizeof *times),
           *cpus = calloc((size_t)total, sizeof *cpus);
    double *logits = malloc((size_t)per_batch * (size_t)K * sizeof *logits);
    double *ref = malloc((size_t)per_batch * (size_t)K * sizeof *ref);
    int agree = 0, correct = 0, seen = 0;
    uint64_t peak_limbs = 0; /* limbs of N words */
    double max_err = 0, sq_err = 0, enc = 0;
    res->classes = tsr_nn_model_is_classifier(m);
    for (int it = 0; it < total && st == TSR_OK; it++) {
        int b = it < nb ? it : 0;
        int off = (b * per_batch) % (nx - per_batch + 1);
        tsr_tile *ct = NULL, *out = NULL;
        double te = tsr_now();
        st = tsr_nn_encrypt(p, client, x + (int64_t)off * per, per_batch, &ct);
        enc += tsr_now() - te;
        double c0 = cpu_seconds(), w0 = tsr_now();
        tsr_nn_stats stats;
        memset(&stats, 0, sizeof stats);
        if (st == TSR_OK) st = tsr_nn_run(r, ct, &out, it == 0 ? &stats : NULL);
        /* Measured on the real run: the runner's backend counts every CKKS vector it holds
         * (prepared weight plaintexts and live ciphertexts), per step from a reset that keeps
         * the live ones; the largest step peak is the server's peak. */
        for (int k = 0; it == 0 && st == TSR_OK && k < stats.n_steps; k++)
            if (stats.steps[k].ops.peak_limbs > peak_limbs)
                peak_limbs = stats.steps[k].ops.peak_limbs;
        if (it == 0) tsr_nn_stats_free(&stats);
        times[it] = tsr_now() - w0;
        cpus[it] = cpu_seconds() - c0;
        tsr_tile_free(ct);
        if (st == TSR_OK && it < nb) {
            /* the server sends the output to the client, which decrypts it */
            uint8_t *buf = NULL;
            size_t len = 0;
            tsr_tile *o2 = NULL;
            st = tsr_tile_to_bytes(out, &buf, &len);
            if (st == TSR_OK) st = tsr_tile_from_bytes(client, buf, len, &o2);
            tsr_tile_bytes_free(buf);
            if (st == TSR_OK) st = tsr_nn_decrypt(p, o2, per_batch, logits);
            tsr_tile_free(o2);
            if (st == TSR_OK) st = tsr_nn_model_forward(m, x + (int64_t)off * per, per_batch, ref);
            for (int i = 0; st == TSR_OK && i < per_batch; i++) {
                int a = nn_cli_argmax(logits + (size_t)i * K, K);
                agree += a == nn_cli_argmax(ref + (size_t)i * K, K);
                if (y && K == 10) correct += a == y[off + i]; /* Fashion-MNIST's 10 labels */
                for (int k = 0; k < K; k++) {
                    double e = fabs(logits[(size_t)i * K + k] - ref[(size_t)i * K + k]);
                    if (isnan(e) || e > max_err) max_err = e; /* a NaN sticks */
                    sq_err += e * e;
                }
            }
            seen += per_batch;
        }
        tsr_tile_free(out);
    }
    if (st != TSR_OK) {
        rc = cli_fail(VERB, st, "running");
    } else {
        double *sorted = malloc((size_t)total * sizeof *sorted);
        memcpy(sorted, times, (size_t)total * sizeof *sorted);
        qsort(sorted, (size_t)total, sizeof *sorted, cmp_d);
        res->median = sorted[total / 2];
        memcpy(sorted, cpus, (size_t)total * sizeof *sorted);
        qsort(sorted, (size_t)total, sizeof *sorted, cmp_d);
        res->cpu = sorted[total / 2];
        free(sorted);
        res->predicted = tsr_nn_plan_predicted_seconds(p);
        res->samples = seen;
        res->agree = seen ? (double)agree / seen : 0;
        res->acc = y && K == 10 && seen ? (double)correct / seen : -1;
        res->max_err = max_err;
        res->mse = seen ? sq_err / ((double)seen * K) : 0;
        res->enc = enc / total;
        res->server_mib =
            (double)peak_limbs * (double)(2 * tsr_backend_slots(server)) * 8.0 / (1024.0 * 1024.0);
        snprintf(res->plan, sizeof res->plan, "N=2^%u %s, scale 2^%u, dnum %u", p->spec.log_n,
                 p->prog->cfg.packing == TSR_NN_PACK_BATCH ? "batch" : "tiled", p->spec.scale_bits,
                 p->spec.dnum);
        printf("batch %d: median %.4f s over %d runs (CPU %.3f s), %.1f images/s, predicted "
               "%.4f s; ",
               batch, res->median, total, res->cpu, per_batch / res->median, res->predicted);
        if (res->classes)
            printf("agreement %.2f%% over %d samples, largest logit error %.3g; ", 100 * res->agree,
                   seen, res->max_err);
        else /* the same "largest ... error X;" shape: scripts/prune_experiments.py parses it */
            printf("largest output error %.3g; mean squared error %.3g over %d samples x %d "
                   "outputs; ",
                   res->max_err, res->mse, seen, K);
        printf("server memory %.1f MiB (ciphertexts + plaintexts at peak)\n", res->server_mib);
    }
    free(times);
    free(cpus);
    free(logits);
    free(ref);
out:
    tsr_nn_runner_free(r);
    tsr_backend_free(server);
    tsr_backend_free(client);
    tsr_ckks_galois_keys_free(gk);
    tsr_ckks_relin_key_free(rk);
    tsr_ckks_secret_key_free(sk);
    tsr_ckks_params_free(params);
    tsr_nn_plan_free(p);
    return rc;
}

int bench_model_main(int argc, char **argv) {
    if (cli_wants_help(argc, argv)) {
        usage(stdout);
        return 0;
    }
    const char *pos[2] = { NULL, NULL }, *batches = "1,4096,8192", *dir = NULL;
    long samples = 100, runs = 3, threads = 0, log_n = 0, scale_bits = 0;
    const cli_opt opts[] = {
        { "--batch", CLI_STR, &batches, 0, 0 },
        { "--samples", CLI_LONG, &samples, 1, 100000 },
        { "--runs", CLI_LONG, &runs, 0, 1000 },
        { "--threads", CLI_LONG, &threads, 1, 256 },
        { "--log-n", CLI_LONG, &log_n, 13, 17 },
        { "--scale-bits", CLI_LONG, &scale_bits, 20, 40 },
        { "--data", CLI_STR, &dir, 0, 0 },
        { "--profile", CLI_STR, &bench_profile, 0, 0 },
        { "--expand-keys", CLI_FLAG, &bench_expand, 0, 0 },
        { "--max-precision-trade", CLI_STR, &bench_trade_arg, 0, 0 },
    };
    int prc = cli_parse_args(VERB, argc, argv, opts, sizeof opts / sizeof opts[0], pos, 2);
    if (prc) return prc;
    if (bench_trade_arg && nn_cli_parse_trade(VERB, bench_trade_arg, &bench_trade)) return 2;
    const char *model = pos[0];
    if (pos[1]) return cli_usage_error(VERB, "one model at a time");
    if (!model) return cli_usage_error(VERB, "give the model: tessera bench model M.onnx");
    if (threads) tsr_set_num_threads((int)threads);
    tsr_nn_model *m = NULL;
    char *rep = NULL;
    tsr_status st = tsr_nn_import_onnx(model, NULL, &m, &rep);
    tsr_nn_string_free(rep);
    if (st != TSR_OK) return cli_fail(VERB, st, "importing the model");
    char images[1024], labels[1024];
    snprintf(images, sizeof images, "%s/t10k-images-idx3-ubyte.gz",
             dir ? dir : "/usr/share/datasets/fashion-mnist");
    snprintf(labels, sizeof labels, "%s/t10k-labels-idx1-ubyte.gz",
             dir ? dir : "/usr/share/datasets/fashion-mnist");
    double *x = NULL;
    int32_t *y = NULL;
    int nx = 0, ny = 0;
    if ((st = tsr_nn_load_inputs(m, images, 0, 0, &x, &nx)) != TSR_OK ||
        (st = tsr_nn_load_labels(labels, 0, 0, &y, &ny)) != TSR_OK) {
        tsr_nn_model_free(m);
        return cli_fail(VERB, st, "reading the Fashion-MNIST test set");
    }
    printf("tessera bench model %s: %d threads, SIMD %s\n", model, tsr_get_num_threads(),
           tsr_simd_name(tsr_simd_active()));
    result res[16];
    int nr = 0, rc = 0;
    const char *s = batches;
    while (*s && nr < 16 && rc == 0) {
        char *end;
        long b = strtol(s, &end, 10);
        if (end == s || b < 1 || b > nx) {
            rc = cli_usage_error(VERB, "--batch takes sizes in [1, %d] separated by commas", nx);
            break;
        }
        rc = bench_one(m, (int)b, (int)samples, (int)runs, (int)log_n, (int)scale_bits, x, y, nx,
                       &res[nr]);
        if (rc == 0) nr++;
        s = *end == ',' ? end + 1 : end;
    }
    if (nr) {
        const int classes = res[0].classes; /* one model: the same for every row */
        printf("\n| batch | plan | server time per batch (median) | per image | images/s | "
               "CPU per batch | predicted | %s | server memory |\n"
               "|---|---|---|---|---|---|---|---|---|---|---|\n",
               classes ? "agreement (samples) | max logit error | accuracy"
                       : "samples | max output error | output MSE");
        for (int i = 0; i < nr; i++) {
            printf("| %d | %s | %.4f s | %.3f ms | %.1f | %.3f s | %.4f s | ", res[i].batch,
                   res[i].plan, res[i].median, 1e3 * res[i].median / res[i].batch,
                   res[i].batch / res[i].median, res[i].cpu, res[i].predicted);
            if (classes && res[i].acc >= 0)
                printf("%.2f%% (%d) | %.2g | %.2f%% | ", 100 * res[i].agree, res[i].samples,
                       res[i].max_err, 100 * res[i].acc);
            else if (classes) /* not 10 classes: Fashion-MNIST's labels mean nothing there */
                printf("%.2f%% (%d) | %.2g | n/a | ", 100 * res[i].agree, res[i].samples,
                       res[i].max_err);
            else
                printf("%d | %.2g | %.2g | ", res[i].samples, res[i].max_err, res[i].mse);
            printf("%.1f MiB |\n", res[i].server_mib);
        }
    }
    tsr_nn_array_free(x);
    tsr_nn_array_free(y);
    tsr_nn_model_free(m);
    return rc;
}
