/*
 * bench/bench_serve.c - `tessera bench serve model.plan [--clients N]
 * [--requests R] [--jobs J]`: load on `tessera serve` over loopback. One
 * process: a server (include/tessera/serve.h) on 127.0.0.1 with an
 * ephemeral port, N client threads each sending R inferences of one
 * encrypted batch (tsr_client_infer, 503s retried). Every answer is
 * decrypted and its predictions compared with the plaintext reference:
 * lost (failed) and corrupted (wrong prediction or undecryptable) answers
 * are counted, not hidden. Reports p50 / p99 latency, throughput and the
 * process's peak resident memory (server and clients together).
 */
#include "bench.h"

#include "cli.h"
#include "core/progress.h"
#include "tessera/nn.h"
#include "tessera/serve.h"

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define VERB "bench serve"

typedef struct client {
    int id, requests;
    const tsr_client_opts *co;
    const uint8_t *plan_id;
    const char *keys, *in, *dir;
    double *lat; /* per request, NAN if it failed */
    int failed;
} client;

static void *client_main(void *arg) {
    client *c = arg;
    for (int r = 0; r < c->requests; r++) {
        char out[4300];
        snprintf(out, sizeof out, "%s/out-%d-%d.ct", c->dir, c->id, r);
        double t0 = tsr_now();
        tsr_status st = tsr_client_infer(c->co, c->plan_id, c->keys, c->in, out, NULL);
        c->lat[r] = st == TSR_OK ? tsr_now() - t0 : NAN;
        if (st != TSR_OK) {
            c->failed++;
            fprintf(stderr, "bench serve: client %d request %d failed: %s\n", c->id, r,
                    tsr_last_error());
        }
    }
    return NULL;
}

static double peak_rss_mib(void) {
    FILE *fp = fopen("/proc/self/status", "r");
    char line[256];
    double kib = 0;
    while (fp && fgets(line, sizeof line, fp))
        if (strncmp(line, "VmHWM:", 6) == 0) kib = atof(line + 6);
    if (fp) fclose(fp);
    return kib / 1024;
}

static int argmax(const double *v, int k) {
    int b = 0;
    for (int i = 1; i < k; i++)
        if (v[i] > v[b]) b = i;
    return b;
}

int bench_serve_main(int argc, char **argv) {
    if (cli_wants_help(argc, argv)) {
        printf("usage: tessera bench serve model.plan [--clients N] [--requests R] [--jobs J]\n"
               "                          [--queue Q] [--threads T] "
               "[--insecure-parameters-for-testing]\n"
               "Load test of tessera serve on 127.0.0.1: N clients x R inferences of one full\n"
               "batch; every answer decrypted and checked against the plaintext prediction.\n");
        return 0;
    }
    const char *plan_path = NULL;
    long clients = 8, requests = 4, jobs = 1, queue = -1, threads = 0;
    int insecure = 0;
    const cli_opt opts[] = {
        { "--clients", CLI_LONG, &clients, 1, 256 },
        { "--requests", CLI_LONG, &requests, 1, 10000 },
        { "--jobs", CLI_LONG, &jobs, 1, 64 },
        { "--queue", CLI_LONG, &queue, 0, 10000 },
        { "--threads", CLI_LONG, &threads, 1, 256 },
        { "--insecure-parameters-for-testing", CLI_FLAG, &insecure, 0, 0 },
    };
    int prc = cli_parse_args(VERB, argc, argv, opts, sizeof opts / sizeof opts[0], &plan_path, 1);
    if (prc) return prc;
    if (!plan_path) return cli_usage_error(VERB, "give a plan");
    if (threads) tsr_set_num_threads((int)threads);
    uint32_t flags = insecure ? TSR_CKKS_ALLOW_INSECURE_PARAMETERS : 0;
    tsr_nn_plan *p = NULL;
    tsr_ckks_params *params = NULL;
    tsr_ckks_secret_key *sk = NULL;
    tsr_ckks_relin_key *rk = NULL;
    tsr_ckks_galois_keys *gk = NULL;
    tsr_backend *be = NULL;
    tsr_tile *t = NULL;
    tsr_server *srv = NULL;
    double *x = NULL, *ref = NULL, *lat = NULL, *got = NULL;
    client *cs = NULL;
    pthread_t *th = NULL;
    char dir[4096];
    snprintf(dir, sizeof dir, "%s/tessera-bench-serve-XXXXXX",
             getenv("TMPDIR") && *getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    if (!mkdtemp(dir)) return cli_usage_error(VERB, "cannot create a temporary directory");
    char evk[4200], in[4200], state[4200];
    snprintf(evk, sizeof evk, "%s/server.evk", dir);
    snprintf(in, sizeof in, "%s/in.ct", dir);
    snprintf(state, sizeof state, "%s/state", dir);
    int rc = 1;
    tsr_status st = tsr_nn_plan_load(&p, plan_path, flags);
    if (st != TSR_OK) {
        rc = cli_fail(VERB, st, "loading the plan");
        goto out;
    }
    const tsr_nn_model *m = tsr_nn_plan_model(p);
    int n = tsr_nn_plan_batch(p), K = (int)tsr_nn_model_output_size(m);
    int64_t ni = tsr_nn_model_input_size(m);
    double lo, hi;
    tsr_nn_plan_input_range(p, &lo, &hi);
    x = malloc((size_t)n * (size_t)ni * sizeof *x);
    ref = malloc((size_t)n * (size_t)K * sizeof *ref);
    got = malloc((size_t)n * (size_t)K * sizeof *got);
    if (!x || !ref || !got) goto out;
    uint64_t s = 0x9e3779b97f4a7c15ull;
    for (int64_t i = 0; i < (int64_t)n * ni; i++) {
        s = s * 6364136223846793005ull + 1442695040888963407ull;
        x[i] = lo + (hi - lo) * (double)(s >> 11) / 9007199254740992.0;
    }
    uint8_t key_id[TSR_CKKS_KEY_ID_BYTES], plan_id[32];
    tsr_nn_plan_id(p, plan_id);
    double t0 = tsr_now();
    if ((st = tsr_nn_model_forward(m, x, n, ref)) != TSR_OK ||
        (st = tsr_nn_plan_params(p, &params)) != TSR_OK ||
        (st = tsr_nn_keygen(p, params, &sk, &rk, &gk)) != TSR_OK) {
        rc = cli_fail(VERB, st, "keys");
        goto out;
    }
    tsr_ckks_secret_key_id(sk, key_id);
    if ((st = tsr_ckks_eval_keys_save(params, key_id, rk, gk, evk)) != TSR_OK ||
        (st = tsr_backend_ckks_create(params, NULL, sk, NULL, NULL, &be)) != TSR_OK ||
        (st = tsr_nn_encrypt(p, be, x, n, &t)) != TSR_OK ||
        (st = tsr_nn_ct_save(p, t, TSR_NN_CT_INPUT, n, key_id, in)) != TSR_OK) {
        rc = cli_fail(VERB, st, "encrypting");
        goto out;
    }
    FILE *fs = fopen(evk, "rb");
    long evk_bytes = 0, in_bytes = 0;
    if (fs) {
        fseek(fs, 0, SEEK_END);
        evk_bytes = ftell(fs);
        fclose(fs);
    }
    fs = fopen(in, "rb");
    if (fs) {
        fseek(fs, 0, SEEK_END);
        in_bytes = ftell(fs);
        fclose(fs);
    }
    printf("bench serve: %s, batch %d; keys %.1f MiB, encrypted batch %.1f MiB (set-up %.1f s)\n",
           plan_path, n, evk_bytes / 1048576.0, in_bytes / 1048576.0, tsr_now() - t0);
    tsr_serve_opts so;
    tsr_serve_opts_default(&so);
    const char *plans[1] = { plan_path };
    so.plans = plans;
    so.n_plans = 1;
    so.state_dir = state;
    so.port = 0;
    so.ckks_flags = flags;
    so.max_jobs = (int)jobs;
    so.max_queue = queue >= 0 ? (int)queue : (int)clients;
    so.retry_after = 1;
    if ((st = tsr_serve_start(&so, &srv)) != TSR_OK) {
        rc = cli_fail(VERB, st, "starting the server");
        goto out;
    }
    char url[64], keys[65];
    snprintf(url, sizeof url, "http://127.0.0.1:%d", tsr_serve_port(srv));
    tsr_client_opts co;
    tsr_client_opts_default(&co);
    co.server = url;
    co.retries = 100000;
    co.max_wait = 1;
    if ((st = tsr_client_put_keys(&co, evk, plan_id, keys)) != TSR_OK) {
        rc = cli_fail(VERB, st, "uploading the keys");
        goto out;
    }
    /* one warm-up request: loads the keys and prepares the runner */
    char warm[4300];
    snprintf(warm, sizeof warm, "%s/warm.ct", dir);
    double tw = tsr_now();
    if ((st = tsr_client_infer(&co, plan_id, keys, in, warm, NULL)) != TSR_OK) {
        rc = cli_fail(VERB, st, "the first inference");
        goto out;
    }
    tw = tsr_now() - tw;
    unlink(warm);
    int total = (int)(clients * requests);
    cs = calloc((size_t)clients, sizeof *cs);
    th = calloc((size_t)clients, sizeof *th);
    lat = calloc((size_t)total, sizeof *lat);
    if (!cs || !th || !lat) goto out;
    double tl = tsr_now();
    for (int c = 0; c < clients; c++) {
        cs[c] = (client){ .id = c,
                          .requests = (int)requests,
                          .co = &co,
                          .plan_id = plan_id,
                          .keys = keys,
                          .in = in,
                          .dir = dir,
                          .lat = lat + c * requests };
        pthread_create(&th[c], NULL, client_main, &cs[c]);
    }
    int failed = 0;
    for (int c = 0; c < clients; c++) {
        pthread_join(th[c], NULL);
        failed += cs[c].failed;
    }
    double wall = tsr_now() - tl;
    /* every answer decrypted and checked */
    int corrupted = 0;
    for (int c = 0; c < clients; c++)
        for (int r = 0; r < requests; r++) {
            if (isnan(lat[c * requests + r])) continue;
            char out[4300];
            snprintf(out, sizeof out, "%s/out-%d-%d.ct", dir, c, r);
            tsr_tile *o = NULL;
            int no = 0, bad = 0;
            st = tsr_nn_ct_load(p, be, TSR_NN_CT_OUTPUT, out, key_id, &o, &no);
            if (st == TSR_OK && no == n) st = tsr_nn_decrypt(p, o, n, got);
            if (st != TSR_OK || no != n || tsr_nn_check_outputs(p, o, got, n, NULL, NULL) > 0)
                bad = 1;
            for (int i = 0; !bad && i < n; i++)
                bad = argmax(got + (size_t)i * K, K) != argmax(ref + (size_t)i * K, K);
            corrupted += bad;
            tsr_tile_free(o);
            unlink(out);
        }
    double *ok = malloc((size_t)total * sizeof *ok);
    int nok = 0;
    for (int i = 0; ok && i < total; i++)
        if (!isnan(lat[i])) ok[nok++] = lat[i];
    double p50 = nok ? bench_median(ok, (size_t)nok) : NAN; /* sorts ok */
    double p99 = nok ? ok[(int)ceil(0.99 * nok) - 1] : NAN;
    free(ok);
    printf("bench serve: %ld clients x %ld requests, jobs %ld, queue %d, %d threads: first "
           "request %.2f s (keys loaded, weights prepared)\n",
           clients, requests, jobs, so.max_queue, tsr_get_num_threads(), tw);
    printf("  latency p50 %.3f s, p99 %.3f s; throughput %.2f requests/s = %.1f samples/s\n", p50,
           p99, nok / wall, nok * (double)n / wall);
    printf("  lost (failed) %d, corrupted (wrong prediction or garbage) %d of %d; peak RSS %.0f "
           "MiB (server and clients, one process)\n",
           failed, corrupted, total, peak_rss_mib());
    rc = failed || corrupted ? 1 : 0;
out:
    tsr_serve_stop(srv, 60);
    free(cs);
    free(th);
    free(lat);
    free(got);
    free(ref);
    free(x);
    tsr_tile_free(t);
    tsr_backend_free(be);
    tsr_ckks_galois_keys_free(gk);
    tsr_ckks_relin_key_free(rk);
    tsr_ckks_secret_key_free(sk);
    tsr_ckks_params_free(params);
    tsr_nn_plan_free(p);
    unlink(evk);
    unlink(in);
    char cmd[4300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0) fprintf(stderr, "bench serve: could not remove %s\n", dir);
    return rc;
}
