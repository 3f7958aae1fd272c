/*
 * bench/bench_serve.c - `tessera bench serve model.plan [--clients N[,N...]]
 * [--requests R] [--jobs J] [--key-cache SIZE]`: load on `tessera serve`
 * over loopback. The server is the real command in a process of its own
 * (this binary's `serve`, 127.0.0.1, an ephemeral port, a fresh start per
 * client count), so its peak resident memory is its own: read from its
 * /metrics (VmHWM) and compared with the bound its limits imply
 * (tsr_serve_memory_bound). N client threads here each send R inferences
 * of one encrypted batch (tsr_client_infer, 503s retried). Every answer is
 * decrypted and its predictions compared with the plaintext reference:
 * lost (failed) and corrupted (wrong prediction or undecryptable) answers
 * are counted, not hidden. Reports p50 / p99 latency and throughput.
 */
#include "bench.h"

#include "cli.h"
#include "core/progress.h"
#include "tessera/nn.h"
#include "tessera/serve.h"

#include <curl/curl.h>

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

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

/* A server process: `tessera serve` from this binary, its port read from --port-file. */
typedef struct server_proc {
    pid_t pid;
    int port;
    char log[4300];
} server_proc;

static int server_spawn(server_proc *sp, const char *plan, const char *state, const char *dir,
                        long jobs, long queue, const char *key_cache, long threads, int insecure) {
    char exe[4096], pf[4300], sj[32], sq[32], st[32];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n <= 0) return -1;
    exe[n] = '\0';
    snprintf(pf, sizeof pf, "%s/port", dir);
    snprintf(sp->log, sizeof sp->log, "%s/serve.log", dir);
    unlink(pf);
    snprintf(sj, sizeof sj, "%ld", jobs);
    snprintf(sq, sizeof sq, "%ld", queue);
    snprintf(st, sizeof st, "%ld", threads);
    const char *args[24];
    int k = 0;
    args[k++] = exe;
    args[k++] = "serve";
    args[k++] = "--plan";
    args[k++] = plan;
    args[k++] = "--state-dir";
    args[k++] = state;
    args[k++] = "--listen";
    args[k++] = "127.0.0.1:0";
    args[k++] = "--port-file";
    args[k++] = pf;
    args[k++] = "--jobs";
    args[k++] = sj;
    args[k++] = "--queue";
    args[k++] = sq;
    args[k++] = "--retry-after";
    args[k++] = "1";
    args[k++] = "--key-cache";
    args[k++] = key_cache;
    if (threads) {
        args[k++] = "--threads";
        args[k++] = st;
    }
    if (insecure) args[k++] = "--insecure-parameters-for-testing";
    args[k] = NULL;
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 1, sp->log, O_WRONLY | O_CREAT | O_APPEND, 0600);
    posix_spawn_file_actions_adddup2(&fa, 1, 2);
    int rc = posix_spawn(&sp->pid, exe, &fa, NULL, (char *const *)args, environ);
    posix_spawn_file_actions_destroy(&fa);
    if (rc != 0) return -1;
    sp->port = 0;
    for (int i = 0; i < 6000 && !sp->port; i++) { /* 10 minutes at most */
        FILE *fp = fopen(pf, "r");
        if (fp) {
            if (fscanf(fp, "%d", &sp->port) != 1) sp->port = 0;
            fclose(fp);
        }
        int status;
        if (!sp->port && waitpid(sp->pid, &status, WNOHANG) == sp->pid) {
            sp->pid = 0;
            return -1;
        }
        if (!sp->port) usleep(100000);
    }
    return sp->port > 0 ? 0 : -1;
}

/*
 * SIGTERM (sent once the clients are done: the server is idle), then wait at most 10 minutes
 * (a drain of an idle server is immediate): 0 if it exited 0. Past the bound the server is
 * killed (SIGKILL to its pid only) and reaped, and the stop counts as failed.
 */
static int server_stop(server_proc *sp) {
    if (sp->pid <= 0) return -1;
    kill(sp->pid, SIGTERM);
    int status = 0, exited = 0;
    for (int i = 0; i < 6000; i++) {
        pid_t w = waitpid(sp->pid, &status, WNOHANG);
        if (w == sp->pid) {
            exited = 1;
            break;
        }
        if (w < 0 && errno == EINTR) continue;
        if (w < 0) { /* ECHILD: not (or no longer) our child: never signal that pid */
            fprintf(stderr, "bench serve: waiting for the server (pid %d): %s\n", (int)sp->pid,
                    strerror(errno));
            sp->pid = 0;
            return -1;
        }
        usleep(100000);
    }
    if (!exited) {
        fprintf(stderr, "bench serve: the server did not exit within 10 minutes of SIGTERM: "
                        "killed\n");
        if (kill(sp->pid, SIGKILL) == 0) waitpid(sp->pid, &status, 0); /* cannot be caught */
    }
    sp->pid = 0;
    return exited && WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : -1;
}

static size_t collect(char *p, size_t sz, size_t nm, void *arg) {
    char *buf = arg;
    size_t have = strlen(buf), n = sz * nm;
    size_t k = n < 65535 - have ? n : 65535 - have;
    memcpy(buf + have, p, k);
    buf[have + k] = '\0';
    return n;
}

/* Values of metrics lines "NAME VALUE" of the server (-1 where absent). */
static void server_metrics(int port, const char *const *names, double *values, int n) {
    static char buf[65536];
    buf[0] = '\0';
    char url[128];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/metrics", port);
    CURL *c = curl_easy_init();
    if (c) {
        curl_easy_setopt(c, CURLOPT_URL, url);
        curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, collect);
        curl_easy_setopt(c, CURLOPT_WRITEDATA, (void *)buf);
        curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
        curl_easy_setopt(c, CURLOPT_TIMEOUT, 60L);
        if (curl_easy_perform(c) != CURLE_OK) buf[0] = '\0';
        curl_easy_cleanup(c);
    }
    for (int i = 0; i < n; i++) {
        char key[128];
        snprintf(key, sizeof key, "\n%s ", names[i]);
        const char *v = strstr(buf, key);
        values[i] = v ? atof(v + strlen(key)) : -1;
    }
}

static int argmax(const double *v, int k) {
    int b = 0;
    for (int i = 1; i < k; i++)
        if (v[i] > v[b]) b = i;
    return b;
}

/* One load run against a fresh server process: n clients x R requests; the row of the table. */
static int load_run(const char *plan_path, const char *dir, const char *state, long clients,
                    long requests, long jobs, long queue, const char *key_cache, long threads,
                    int insecure, const char *evk, const char *in, const tsr_nn_plan *p,
                    tsr_backend *be, const uint8_t *key_id, const double *ref) {
    int n = tsr_nn_plan_batch(p), K = (int)tsr_nn_model_output_size(tsr_nn_plan_model(p));
    uint8_t plan_id[32];
    tsr_nn_plan_id(p, plan_id);
    long q = queue >= 0 ? queue : clients;
    server_proc sp = { 0 };
    if (server_spawn(&sp, plan_path, state, dir, jobs, q, key_cache, threads, insecure) != 0) {
        fprintf(stderr, "bench serve: the server did not start; its log (%s):\n", sp.log);
        char cmd[4400];
        snprintf(cmd, sizeof cmd, "cat '%s' >&2", sp.log);
        if (system(cmd) != 0) fprintf(stderr, "(no log)\n");
        if (sp.pid > 0) server_stop(&sp);
        return 1;
    }
    char url[64], keys[65];
    snprintf(url, sizeof url, "http://127.0.0.1:%d", sp.port);
    tsr_client_opts co;
    tsr_client_opts_default(&co);
    co.server = url;
    co.retries = 100000;
    co.max_wait = 1;
    int rc = 1;
    double *lat = NULL, *got = NULL, *ok = NULL;
    client *cs = NULL;
    pthread_t *th = NULL;
    tsr_status st = tsr_client_put_keys(&co, evk, plan_id, keys);
    if (st != TSR_OK) {
        cli_fail(VERB, st, "uploading the keys");
        goto out;
    }
    /* one warm-up request: loads the keys and prepares the runner */
    char warm[4300];
    snprintf(warm, sizeof warm, "%s/warm.ct", dir);
    double tw = tsr_now();
    if ((st = tsr_client_infer(&co, plan_id, keys, in, warm, NULL)) != TSR_OK) {
        cli_fail(VERB, st, "the first inference");
        goto out;
    }
    tw = tsr_now() - tw;
    unlink(warm);
    int total = (int)(clients * requests);
    cs = calloc((size_t)clients, sizeof *cs);
    th = calloc((size_t)clients, sizeof *th);
    lat = calloc((size_t)total, sizeof *lat);
    got = malloc((size_t)n * (size_t)K * sizeof *got);
    ok = malloc((size_t)total * sizeof *ok);
    if (!cs || !th || !lat || !got || !ok) goto out;
    double tl = tsr_now();
    int started = 0;
    for (int c = 0; c < clients; c++) {
        cs[c] = (client){ .id = c,
                          .requests = (int)requests,
                          .co = &co,
                          .plan_id = plan_id,
                          .keys = keys,
                          .in = in,
                          .dir = dir,
                          .lat = lat + c * requests };
        if (pthread_create(&th[c], NULL, client_main, &cs[c]) != 0) break;
        started++;
    }
    int failed = (int)((clients - started) * requests);
    for (int c = 0; c < started; c++) {
        pthread_join(th[c], NULL);
        failed += cs[c].failed;
    }
    double wall = tsr_now() - tl;
    static const char *const names[] = { "tessera_resident_peak_bytes",
                                         "tessera_memory_bound_bytes",
                                         "tessera_rejected_busy_total" };
    double mv[3];
    server_metrics(sp.port, names, mv, 3);
    int drained = server_stop(&sp) == 0;
    /* every answer decrypted and checked */
    int corrupted = 0;
    for (int c = 0; c < started; c++)
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
    int nok = 0;
    for (int i = 0; i < total; i++)
        if (!isnan(lat[i]) && i < started * requests) ok[nok++] = lat[i];
    double p50 = nok ? bench_median(ok, (size_t)nok) : NAN; /* sorts ok */
    double p99 = nok ? ok[(int)ceil(0.99 * nok) - 1] : NAN;
    double peak = mv[0] / 1048576.0, bound = mv[1] / 1048576.0;
    printf("bench serve: %ld clients x %ld requests, jobs %ld, queue %ld, key cache %s: first "
           "request %.2f s (keys loaded, weights prepared)\n",
           clients, requests, jobs, q, key_cache, tw);
    printf("  latency p50 %.3f s, p99 %.3f s; throughput %.2f requests/s = %.1f samples/s; "
           "503s retried %.0f\n",
           p50, p99, nok / wall, nok * (double)n / wall, mv[2]);
    printf("  lost (failed) %d, corrupted (wrong prediction or garbage) %d of %d; server peak RSS "
           "%.0f MiB of its bound %.0f MiB (%s); idle server exited 0 on SIGTERM: %s\n",
           failed, corrupted, total, peak, bound,
           peak < 0 || bound < 0 ? "not measured"
           : peak <= bound       ? "within"
                                 : "EXCEEDED",
           drained ? "yes" : "NO");
    rc = failed || corrupted || !drained || peak < 0 || peak > bound ? 1 : 0;
out:
    if (sp.pid > 0) server_stop(&sp);
    free(ok);
    free(got);
    free(cs);
    free(th);
    free(lat);
    return rc;
}

int bench_serve_main(int argc, char **argv) {
    if (cli_wants_help(argc, argv)) {
        printf("usage: tessera bench serve model.plan [--clients N[,N...]] [--requests R]\n"
               "                          [--jobs J] [--queue Q] [--key-cache SIZE] [--threads T]\n"
               "                          [--insecure-parameters-for-testing]\n"
               "Load test of tessera serve on 127.0.0.1, the server in a process of its own\n"
               "(this binary's `serve`, restarted for each client count): N client threads x R\n"
               "inferences of one full batch; every answer decrypted and checked against the\n"
               "plaintext prediction; the server's own peak resident memory (its /metrics)\n"
               "against the bound its limits imply. Exit 1 if anything was lost or corrupted,\n"
               "the bound was exceeded or the server did not drain on SIGTERM.\n"
               "  --clients LIST   client counts, one run each (default 8)\n"
               "  --requests R     inferences per client (default 4)\n"
               "  --jobs J         the server's --jobs (default 1)\n"
               "  --queue Q        the server's --queue (default: the client count)\n"
               "  --key-cache SIZE the server's --key-cache (default 2G)\n"
               "  --threads T      the server's OpenMP threads per job (default: all)\n");
        return 0;
    }
    const char *plan_path = NULL, *clients_s = "8", *key_cache = "2G";
    long requests = 4, jobs = 1, queue = -1, threads = 0;
    int insecure = 0;
    const cli_opt opts[] = {
        { "--clients", CLI_STR, &clients_s, 0, 0 },
        { "--requests", CLI_LONG, &requests, 1, 10000 },
        { "--jobs", CLI_LONG, &jobs, 1, 64 },
        { "--queue", CLI_LONG, &queue, 0, 10000 },
        { "--key-cache", CLI_STR, &key_cache, 0, 0 },
        { "--threads", CLI_LONG, &threads, 1, 256 },
        { "--insecure-parameters-for-testing", CLI_FLAG, &insecure, 0, 0 },
    };
    int prc = cli_parse_args(VERB, argc, argv, opts, sizeof opts / sizeof opts[0], &plan_path, 1);
    if (prc) return prc;
    if (!plan_path) return cli_usage_error(VERB, "give a plan");
    long counts[16];
    int n_counts = 0;
    for (const char *c = clients_s; *c;) {
        char item[32];
        size_t len = strcspn(c, ",");
        if (len == 0 || len >= sizeof item || n_counts == 16)
            return cli_usage_error(VERB, "--clients needs up to 16 counts such as 8,16,32");
        memcpy(item, c, len);
        item[len] = '\0';
        if (cli_parse_long(item, 1, 256, &counts[n_counts]) != 0)
            return cli_usage_error(VERB, "--clients: '%s' is not a count of 1..256", item);
        n_counts++;
        c += len + (c[len] == ',');
    }
    double kc_mib;
    if (cli_parse_size(key_cache, &kc_mib) != 0)
        return cli_usage_error(VERB, "--key-cache needs a size such as 2G or 512M, not '%s'",
                               key_cache);
    uint32_t flags = insecure ? TSR_CKKS_ALLOW_INSECURE_PARAMETERS : 0;
    tsr_nn_plan *p = NULL;
    tsr_ckks_params *params = NULL;
    tsr_ckks_secret_key *sk = NULL;
    tsr_ckks_relin_key *rk = NULL;
    tsr_ckks_galois_keys *gk = NULL;
    tsr_backend *be = NULL;
    tsr_tile *t = NULL;
    double *x = NULL, *ref = NULL;
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
    if (!x || !ref) goto out;
    uint64_t s = 0x9e3779b97f4a7c15ull;
    for (int64_t i = 0; i < (int64_t)n * ni; i++) {
        s = s * 6364136223846793005ull + 1442695040888963407ull;
        x[i] = lo + (hi - lo) * (double)(s >> 11) / 9007199254740992.0;
    }
    uint8_t key_id[TSR_CKKS_KEY_ID_BYTES];
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
    printf("bench serve: %s, batch %d, predicted %.0f MiB per inference; keys %.1f MiB, encrypted "
           "batch %.1f MiB (set-up %.1f s)\n",
           plan_path, n, tsr_nn_plan_predicted_mib(p), evk_bytes / 1048576.0, in_bytes / 1048576.0,
           tsr_now() - t0);
    fflush(stdout);
    rc = 0;
    for (int i = 0; i < n_counts; i++) {
        rc |= load_run(plan_path, dir, state, counts[i], requests, jobs, queue, key_cache, threads,
                       insecure, evk, in, p, be, key_id, ref);
        fflush(stdout);
    }
out:
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
