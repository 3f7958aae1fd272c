/*
 * cli/cmd_serve.c - `tessera serve --plan a.plan [--plan b.plan ...]
 * --state-dir DIR [--listen HOST:PORT] [--tls-cert C --tls-key K]`: the
 * encrypted-inference HTTP service (include/tessera/serve.h,
 * docs/SERVING.md). Runs until SIGTERM or SIGINT, then drains: running and
 * queued jobs finish and their answers go out before it exits.
 */
#include "nn_cli.h"

#include "tessera/serve.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define VERB      "serve"
#define MAX_PLANS 64

static void usage(FILE *out) {
    fprintf(out,
            "usage: tessera serve --plan model.plan [--plan other.plan ...] --state-dir DIR\n"
            "                     [--listen HOST:PORT] [--tls-cert cert.pem --tls-key key.pem]\n"
            "                     [limits ...]\n"
            "\n"
            "Serve encrypted inference over HTTP/1.1 (HTTPS with --tls-cert/--tls-key):\n"
            "  PUT  /v1/keys[?plan=ID]            upload evaluation keys (a secret key is\n"
            "                                     refused); answers their hash\n"
            "  POST /v1/plans/ID/infer?keys=HASH  encrypted inputs in, encrypted outputs out\n"
            "  GET  /v1/plans, /healthz, /metrics (Prometheus)\n"
            "Keys and request bodies are kept under --state-dir (created mode 0700; keys are\n"
            "reused by later runs). Stops on SIGTERM or SIGINT after draining the jobs.\n"
            "See docs/SERVING.md; `tessera client` is the matching client.\n"
            "\n"
            "  --listen HOST:PORT     IPv4 address and port (default 127.0.0.1:8480; port 0:\n"
            "                         any free port, printed)\n"
            "  --port-file FILE       write the port to FILE once listening (for scripts)\n"
            "  --max-body SIZE        largest request body (default 4G)\n"
            "  --jobs N               inferences running at once (default 1)\n"
            "  --queue N              inferences waiting beyond those; more get 503 with\n"
            "                         Retry-After (default 4)\n"
            "  --queue-timeout SEC    longest wait in the queue, then 503 (default 600)\n"
            "  --request-timeout SEC  longest time to receive a body (default 600)\n"
            "  --client-timeout SEC   idle connections are closed after SEC (default 30)\n"
            "  --max-connections N    open connections at once (default 64)\n"
            "  --key-cache SIZE       evaluation keys kept loaded with their prepared plan,\n"
            "                         least recently used out; each counts its plan's\n"
            "                         predicted memory (default 2G)\n"
            "  --key-store SIZE       evaluation keys kept on disk, LRU (default 16G)\n"
            "  --retry-after SEC      the Retry-After of a 503 (default 5)\n"
            "  --drain-timeout SEC    on SIGTERM, wait at most SEC for jobs (default 600)\n"
            "  --threads N            OpenMP threads per job (default: all)\n"
            "  --no-trim              do not give a finished job's freed memory back to the\n"
            "                         system (malloc_trim, on by default)\n"
            "  " NN_CLI_INSECURE "   accept plans made with it (tests only)\n");
}

/*
 * Tests only: with TSR_SERVE_TEST_GATE=DIR in the environment *and*
 * --insecure-parameters-for-testing on the command line, every job, once it holds its running
 * slot, creates DIR/started and waits (at most 10 minutes) until DIR/go exists, so a test can
 * signal the process while a job is known to run (tests/test_serve_faults.c). A production
 * server (without the flag) ignores the variable; with both, a warning says so on stderr.
 */
static char gate_dir[4096];

static void gate_hook(void *arg) {
    (void)arg;
    char p[4200];
    snprintf(p, sizeof p, "%s/started", gate_dir);
    FILE *fp = fopen(p, "w");
    if (fp) fclose(fp);
    snprintf(p, sizeof p, "%s/go", gate_dir);
    for (int i = 0; i < 60000 && access(p, F_OK) != 0; i++) usleep(10000);
}

static int parse_listen(const char *s, char *host, size_t n, int *port) {
    const char *colon = strrchr(s, ':');
    if (!colon || colon == s || (size_t)(colon - s) >= n) return -1;
    long p;
    if (cli_parse_long(colon + 1, 0, 65535, &p) != 0) return -1;
    snprintf(host, n, "%.*s", (int)(colon - s), s);
    *port = (int)p;
    return 0;
}

static int size_bytes(const char *name, const char *v, uint64_t *out) {
    double mib;
    if (cli_parse_size(v, &mib) != 0 || mib * 1048576.0 >= 1.8e19)
        return cli_usage_error(VERB, "%s needs a size such as 4G or 512M, not '%s'", name, v);
    *out = (uint64_t)(mib * 1048576.0);
    return 0;
}

int tsr_cmd_serve(int argc, char **argv) {
    if (cli_wants_help(argc, argv)) {
        usage(stdout);
        return 0;
    }
    const char *plan_items[MAX_PLANS];
    cli_list plans = { plan_items, 0, MAX_PLANS };
    const char *listen = "127.0.0.1:8480", *state = NULL, *cert = NULL, *key = NULL;
    const char *port_file = NULL, *max_body = NULL, *key_cache = NULL, *key_store = NULL;
    long jobs = 1, queue = 4, client_timeout = 30, max_conn = 64, retry_after = 5, threads = 0;
    double queue_timeout = 600, request_timeout = 600, drain = 600;
    int insecure = 0, no_trim = 0;
    const cli_opt opts[] = {
        { "--plan", CLI_LIST, &plans, 0, 0 },
        { "--listen", CLI_STR, &listen, 0, 0 },
        { "--state-dir", CLI_STR, &state, 0, 0 },
        { "--tls-cert", CLI_STR, &cert, 0, 0 },
        { "--tls-key", CLI_STR, &key, 0, 0 },
        { "--port-file", CLI_STR, &port_file, 0, 0 },
        { "--max-body", CLI_STR, &max_body, 0, 0 },
        { "--jobs", CLI_LONG, &jobs, 1, 256 },
        { "--queue", CLI_LONG, &queue, 0, 100000 },
        { "--queue-timeout", CLI_DOUBLE, &queue_timeout, 0, 0 },
        { "--request-timeout", CLI_DOUBLE, &request_timeout, 0, 0 },
        { "--client-timeout", CLI_LONG, &client_timeout, 1, 86400 },
        { "--max-connections", CLI_LONG, &max_conn, 1, 100000 },
        { "--key-cache", CLI_STR, &key_cache, 0, 0 },
        { "--key-store", CLI_STR, &key_store, 0, 0 },
        { "--retry-after", CLI_LONG, &retry_after, 0, 86400 },
        { "--drain-timeout", CLI_DOUBLE, &drain, 0, 0 },
        { "--threads", CLI_LONG, &threads, 1, 256 },
        { "--no-trim", CLI_FLAG, &no_trim, 0, 0 },
        { NN_CLI_INSECURE, CLI_FLAG, &insecure, 0, 0 },
    };
    int prc = cli_parse_args(VERB, argc, argv, opts, sizeof opts / sizeof opts[0], NULL, 0);
    if (prc) return prc;
    if (plans.n == 0 || !state)
        return cli_usage_error(VERB, "give at least one --plan FILE and --state-dir DIR");
    if (!cert != !key) return cli_usage_error(VERB, "--tls-cert and --tls-key go together");
    if (!(queue_timeout > 0) || !(request_timeout > 0) || drain < 0)
        return cli_usage_error(VERB, "timeouts must be positive");
    tsr_serve_opts o;
    tsr_serve_opts_default(&o);
    char host[256];
    if (parse_listen(listen, host, sizeof host, &o.port) != 0)
        return cli_usage_error(VERB, "--listen needs HOST:PORT (127.0.0.1:8480), not '%s'", listen);
    int rc;
    if (max_body && (rc = size_bytes("--max-body", max_body, &o.max_body)) != 0) return rc;
    if (key_cache && (rc = size_bytes("--key-cache", key_cache, &o.key_cache)) != 0) return rc;
    if (key_store && (rc = size_bytes("--key-store", key_store, &o.key_store)) != 0) return rc;
    o.plans = plans.items;
    o.n_plans = plans.n;
    o.host = host;
    o.state_dir = state;
    o.tls_cert = cert;
    o.tls_key = key;
    o.ckks_flags = insecure ? TSR_CKKS_ALLOW_INSECURE_PARAMETERS : 0;
    o.max_jobs = (int)jobs;
    o.max_queue = (int)queue;
    o.queue_timeout = queue_timeout;
    o.request_timeout = request_timeout;
    o.client_timeout = (unsigned)client_timeout;
    o.max_connections = (unsigned)max_conn;
    o.retry_after = (int)retry_after;
    o.log = stderr;
    o.trim_memory = !no_trim;
    const char *gate = getenv("TSR_SERVE_TEST_GATE");
    if (gate && *gate && insecure) {
        fprintf(stderr,
                "tessera serve: WARNING: TSR_SERVE_TEST_GATE is set: every job waits "
                "for %s/go before it runs (tests only; unset it in production)\n",
                gate);
        snprintf(gate_dir, sizeof gate_dir, "%s", gate);
        o.job_hook = gate_hook;
    }
    if (insecure) nn_cli_insecure_warning(VERB);
    if (threads) tsr_set_num_threads((int)threads);
    setenv("TSR_PROGRESS", "0", 1); /* concurrent jobs: the server logs one line per request */
    /* The signals are taken by sigwait below: block them before any thread starts. */
    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGTERM);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);
    signal(SIGPIPE, SIG_IGN);
    tsr_server *s = NULL;
    tsr_status st = tsr_serve_start(&o, &s);
    if (st != TSR_OK) return cli_fail(VERB, st, "starting the server");
    int port = tsr_serve_port(s);
    if (port_file) {
        char tmp[4200];
        snprintf(tmp, sizeof tmp, "%s.tmp", port_file);
        FILE *fp = fopen(tmp, "w");
        if (!fp || fprintf(fp, "%d\n", port) < 0 || fclose(fp) != 0 || rename(tmp, port_file)) {
            tsr_serve_stop(s, 0);
            return cli_usage_error(VERB, "cannot write --port-file '%s'", port_file);
        }
    }
    printf("tessera serve: listening on %s://%s:%d (%d plan%s, state in %s; memory bound %.0f "
           "MiB)\n",
           cert ? "https" : "http", host, port, plans.n, plans.n == 1 ? "" : "s", state,
           (double)tsr_serve_memory_bound(s) / 1048576.0);
    fflush(stdout);
    int sig = 0;
    sigwait(&sigs, &sig);
    fprintf(stderr, "tessera serve: %s: draining (at most %.0f s)\n",
            sig == SIGTERM  ? "SIGTERM"
            : sig == SIGINT ? "SIGINT"
                            : "SIGHUP",
            drain);
    tsr_serve_stop(s, drain);
    printf("tessera serve: stopped\n");
    return 0;
}
