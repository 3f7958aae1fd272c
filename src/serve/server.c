/*
 * serve/server.c - `tessera serve`: encrypted inference over HTTP/1.1 with
 * libmicrohttpd (include/tessera/serve.h, docs/SERVING.md).
 *
 * One thread per connection (libmicrohttpd's thread-per-connection mode):
 * a request's handler may block while its inference runs. Request bodies
 * are streamed to files under state_dir/tmp (never whole in memory), hashed
 * as they arrive (keys), and refused as early as their bytes allow: a body
 * declared larger than max_body before it is read, a secret key from its
 * first 36 bytes. An inference holds a ticket from its first byte to its
 * end: at most max_jobs run and max_queue wait; past that, 503 with
 * Retry-After before the body is read. Outputs go to an unlinked temporary
 * file streamed back from its descriptor, so nothing of a request stays on
 * disk once it is done, failed or not.
 */
#include "serve/serve_internal.h"

#include "core/alloc.h"
#include "core/error.h"
#include "core/io.h"
#include "core/progress.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif

/* Latency histogram buckets of inference requests (seconds). */
static const double BUCKETS[] = { 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300 };
#define N_BUCKETS (sizeof BUCKETS / sizeof BUCKETS[0])

enum { CODE_2XX, CODE_4XX, CODE_5XX, CODE_ABORTED, N_CODES };

struct tsr_server {
    tsr_serve_opts o;
    char state[4096], keys_dir[4200], tmp_dir[4200];
    tsr_nn_plan **plans;
    uint8_t (*plan_ids)[32];
    keystore *ks;
    struct MHD_Daemon *d;
    char *tls_cert, *tls_key;
    int port;
    pthread_mutex_t mu; /* below */
    pthread_cond_t cv;
    int tickets;  /* inferences admitted (running + waiting) */
    int running;  /* inferences running */
    int active;   /* requests being handled */
    int stopping; /* no new work */
    uint64_t tmp_seq;
    /* metrics (under mu) */
    uint64_t requests[EP_COUNT_][N_CODES];
    uint64_t bytes_in, bytes_out, rejected_busy;
    uint64_t hist[N_BUCKETS + 1];
    double hist_sum;
    uint64_t hist_count;
    uint64_t rss_start, mem_bound; /* resident bytes once the plans were loaded; the bound */
};

typedef struct req {
    serve_route rt;
    int plan; /* index of the plan (infer) */
    int want; /* PUT /v1/keys?plan=: its index, else -1 */
    double t0;
    int status; /* an error decided while the body arrives: sent at its end */
    char msg[2048];
    int fd; /* body file */
    char tmp[4300];
    crypto_generichash_state h;
    uint64_t got, discarded;
    uint8_t head[TSR_FRAME_HEADER_SIZE];
    size_t head_n;
    int ticket;
    int code; /* the status answered */
} req;

void tsr_serve_opts_default(tsr_serve_opts *o) {
    memset(o, 0, sizeof *o);
    o->host = "127.0.0.1";
    o->max_body = (uint64_t)4 << 30;
    o->max_jobs = 1;
    o->max_queue = 4;
    o->queue_timeout = 600;
    o->request_timeout = 600;
    o->client_timeout = 30;
    o->max_connections = 64;
    o->key_cache = (uint64_t)2 << 30;
    o->key_store = (uint64_t)16 << 30;
    o->retry_after = 5;
    o->trim_memory = 1;
}

static void logf_(tsr_server *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void logf_(tsr_server *s, const char *fmt, ...) {
    if (!s->o.log) return;
    char line[2048], safe[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    tsr_escape_controls(safe, sizeof safe, line, 0);
    time_t now = time(NULL);
    struct tm tm;
    char ts[32];
    gmtime_r(&now, &tm);
    strftime(ts, sizeof ts, "%Y-%m-%dT%H:%M:%SZ", &tm);
    fprintf(s->o.log, "%s tessera serve: %s\n", ts, safe);
    fflush(s->o.log);
}

/* A "Vm...:" line of /proc/self/status in bytes (0 where there is none: not Linux). */
static uint64_t proc_status_bytes(const char *key) {
    FILE *fp = fopen("/proc/self/status", "r");
    if (!fp) return 0;
    char line[256];
    size_t n = strlen(key);
    unsigned long long kib = 0;
    while (fgets(line, sizeof line, fp))
        if (strncmp(line, key, n) == 0 && line[n] == ':') {
            kib = strtoull(line + n + 1, NULL, 10);
            break;
        }
    fclose(fp);
    return (uint64_t)kib * 1024;
}

/*
 * Give what a finished job freed back to the system. Each connection runs its job on its own
 * thread (and its own OpenMP team). With glibc's default per-thread arenas (a program linking
 * libtessera) a thread's freed memory stays in that thread's arena: without this, resident
 * memory would grow with the number of connections that ever ran a job (measured: 889 MiB at
 * 8 clients, 1140 MiB at 16 for one job at a time) instead of staying with the jobs running
 * at once. The `tessera` command runs with one arena and does not trim it by itself
 * (cli/main.c); malloc_trim(0) covers both: it trims every arena and hands the free pages
 * inside them back (madvise), so the resident memory follows the jobs either way.
 */
static void release_freed_memory(const tsr_server *s) {
#ifdef __GLIBC__
    if (s->o.trim_memory) malloc_trim(0);
#else
    (void)s;
#endif
}

/* Per connection: libmicrohttpd's memory pool (32 KiB by default) and our request state. */
#define CONNECTION_BYTES ((uint64_t)64 << 10)

/* The largest plan's predicted server memory of one inference (bytes). */
static uint64_t largest_plan_bytes(const tsr_server *s) {
    uint64_t job = 0;
    for (int i = 0; i < s->o.n_plans; i++) {
        uint64_t b = ks_entry_bytes(s->plans[i], 0);
        if (b > job) job = b;
    }
    return job;
}

/*
 * The most memory the server's limits let it use, an estimate (docs/SERVING.md, "Memory"):
 * what it held once the plans were loaded, plus the key cache, plus per running job one entry
 * held in the cache beyond it (an entry in use is never evicted) and its ciphertexts, plus one
 * key set being validated (PUT /v1/keys: uploads are validated one at a time), each at most the
 * largest plan's predicted server memory of one inference, plus the connections' buffers.
 */
static uint64_t memory_bound(const tsr_server *s) {
    uint64_t job = largest_plan_bytes(s);
    return s->rss_start + s->o.key_cache + (2 * (uint64_t)s->o.max_jobs + 1) * job +
           (uint64_t)s->o.max_connections * CONNECTION_BYTES;
}

/* ---- responses ------------------------------------------------------------------------- */

static int code_class(int code) {
    return code < 400 ? CODE_2XX : code < 500 ? CODE_4XX : CODE_5XX;
}

static enum MHD_Result send_response(tsr_server *s, struct MHD_Connection *c, req *r, int code,
                                     struct MHD_Response *resp, uint64_t len) {
    if (!resp) return MHD_NO;
    if (code == 503) {
        char ra[32];
        snprintf(ra, sizeof ra, "%d", s->o.retry_after);
        MHD_add_response_header(resp, MHD_HTTP_HEADER_RETRY_AFTER, ra);
    }
    pthread_mutex_lock(&s->mu);
    if (s->stopping) MHD_add_response_header(resp, MHD_HTTP_HEADER_CONNECTION, "close");
    s->requests[r ? r->rt.ep : EP_NONE][code_class(code)]++;
    s->bytes_out += len;
    pthread_mutex_unlock(&s->mu);
    if (r) r->code = code;
    enum MHD_Result ret = MHD_queue_response(c, (unsigned)code, resp);
    MHD_destroy_response(resp);
    return ret;
}

static enum MHD_Result send_text(tsr_server *s, struct MHD_Connection *c, req *r, int code,
                                 const char *ctype, const char *body) {
    size_t n = strlen(body);
    struct MHD_Response *resp =
        MHD_create_response_from_buffer(n, (void *)body, MHD_RESPMEM_MUST_COPY);
    if (resp) MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, ctype);
    return send_response(s, c, r, code, resp, n);
}

static enum MHD_Result send_error(tsr_server *s, struct MHD_Connection *c, req *r, int code,
                                  const char *msg) {
    char body[2200];
    snprintf(body, sizeof body, "%s\n", msg);
    logf_(s, "%s %s: %d %s", r ? serve_endpoint_name(r->rt.ep) : "?", "refused", code, msg);
    return send_text(s, c, r, code, "text/plain; charset=utf-8", body);
}

/* The HTTP status for a library failure: bad input 4xx (as the CLI's exit 2), else 5xx. */
static int status_code(tsr_status st) {
    switch (st) {
    case TSR_ERR_SECRET:
        return 403;
    case TSR_ERR_NOT_FOUND:
        return 404;
    case TSR_ERR_MISMATCH:
    case TSR_ERR_KEY_MISSING:
    case TSR_ERR_INSECURE:
    case TSR_ERR_UNSUPPORTED:
        return 422;
    case TSR_ERR_INVALID_ARG:
    case TSR_ERR_FORMAT:
    case TSR_ERR_VERSION:
    case TSR_ERR_CHECKSUM:
    case TSR_ERR_SHAPE:
    case TSR_ERR_SCALE:
        return 400;
    case TSR_ERR_NOMEM:
        return 503;
    default:
        return 500;
    }
}

/*
 * "what: status: detail", the command line's wording, control characters escaped; the
 * server's temporary file (named in messages as 'PATH') becomes "the request body".
 */
static void failure_text(char *out, size_t n, tsr_status st, const char *what, const char *tmp) {
    char raw[1800], detail[1800];
    snprintf(raw, sizeof raw, "%s", tsr_last_error());
    size_t tl = tmp ? strlen(tmp) : 0;
    char *hit = tl ? strstr(raw, tmp) : NULL;
    if (hit && hit > raw && hit[-1] == '\'' && hit[tl] == '\'') {
        char rest[1800];
        snprintf(rest, sizeof rest, "%s", hit + tl + 1);
        snprintf(hit - 1, sizeof raw - (size_t)(hit - 1 - raw), "the request body%s", rest);
    }
    tsr_escape_controls(detail, sizeof detail, raw, 1);
    snprintf(out, n, "%s: %s%s%s", what, tsr_strerror(st), detail[0] ? ": " : "", detail);
}

static enum MHD_Result send_failure(tsr_server *s, struct MHD_Connection *c, req *r, tsr_status st,
                                    const char *what, const char *tmp) {
    char msg[2048];
    failure_text(msg, sizeof msg, st, what, tmp);
    return send_error(s, c, r, status_code(st), msg);
}

/* 404 for keys the store does not hold, marked so a client knows to upload them. */
static enum MHD_Result send_unknown_keys(tsr_server *s, struct MHD_Connection *c, req *r) {
    static const char msg[] = "no evaluation keys with this hash are stored here (never "
                              "uploaded, or evicted from the key store): upload them with PUT "
                              "/v1/keys\n";
    struct MHD_Response *resp =
        MHD_create_response_from_buffer(sizeof msg - 1, (void *)msg, MHD_RESPMEM_PERSISTENT);
    if (resp) {
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "text/plain; charset=utf-8");
        MHD_add_response_header(resp, "X-Tessera-Error", "unknown-keys");
    }
    logf_(s, "infer refused: 404 unknown keys");
    return send_response(s, c, r, 404, resp, sizeof msg - 1);
}

/* ---- GET endpoints --------------------------------------------------------------------- */

static enum MHD_Result get_plans(tsr_server *s, struct MHD_Connection *c, req *r) {
    serve_text t = { 0 };
    serve_text_appendf(&t, "{\"plans\": [");
    for (int i = 0; i < s->o.n_plans; i++) {
        const tsr_nn_plan *p = s->plans[i];
        const tsr_nn_model *m = tsr_nn_plan_model(p);
        int ch, h, w;
        tsr_nn_model_input_shape(m, &ch, &h, &w);
        double lo, hi;
        tsr_nn_plan_input_range(p, &lo, &hi);
        char id[65];
        serve_format_id(s->plan_ids[i], id);
        const char *base = strrchr(s->o.plans[i], '/');
        serve_text_appendf(&t, "%s\n  {\"id\": \"%s\", \"file\": ", i ? "," : "", id);
        serve_text_json_string(&t, base ? base + 1 : s->o.plans[i]);
        serve_text_appendf(&t,
                           ", \"input\": [%d, %d, %d], \"batch\": %d, \"outputs\": %lld, "
                           "\"input_range\": [%.17g, %.17g], \"predicted_seconds\": %.6g, "
                           "\"predicted_mib\": %.1f}",
                           ch, h, w, tsr_nn_plan_batch(p), (long long)tsr_nn_model_output_size(m),
                           lo, hi, tsr_nn_plan_predicted_seconds(p), tsr_nn_plan_predicted_mib(p));
    }
    serve_text_appendf(&t, "\n]}\n");
    char *buf = serve_text_take(&t);
    if (!buf) return send_error(s, c, r, 503, "out of memory");
    enum MHD_Result ret = send_text(s, c, r, 200, "application/json", buf);
    free(buf);
    return ret;
}

/*
 * Append to the text b (capacity cap, *k bytes used): never writes past cap, and *k stays
 * below cap when the text would not fit (it is cut short then).
 */
static void appendf(char *b, size_t cap, size_t *k, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void appendf(char *b, size_t cap, size_t *k, const char *fmt, ...) {
    if (*k + 1 >= cap) return;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(b + *k, cap - *k, fmt, ap);
    va_end(ap);
    if (n < 0) return;
    *k = (size_t)n < cap - *k ? *k + (size_t)n : cap - 1;
}

static enum MHD_Result get_metrics(tsr_server *s, struct MHD_Connection *c, req *r) {
    uint64_t cache = 0, store = 0;
    ks_usage(s->ks, &cache, &store);
    /* read before taking mu: a file read does not belong under the lock every request takes */
    uint64_t rss = proc_status_bytes("VmRSS"), hwm = proc_status_bytes("VmHWM");
    size_t cap = 16384, k = 0;
    char *b = malloc(cap);
    if (!b) return send_error(s, c, r, 503, "out of memory");
    static const char *const codes[N_CODES] = { "2xx", "4xx", "5xx", "aborted" };
    pthread_mutex_lock(&s->mu);
    appendf(b, cap, &k,
            "# HELP tessera_requests_total HTTP requests by endpoint and status "
            "class (aborted: the connection was dropped).\n"
            "# TYPE tessera_requests_total counter\n");
    for (int e = 0; e < EP_COUNT_; e++)
        for (int q = 0; q < N_CODES; q++)
            appendf(b, cap, &k, "tessera_requests_total{endpoint=\"%s\",code=\"%s\"} %llu\n",
                    serve_endpoint_name((serve_endpoint)e), codes[q],
                    (unsigned long long)s->requests[e][q]);
    appendf(b, cap, &k,
            "# HELP tessera_request_bytes_total Request body bytes received.\n"
            "# TYPE tessera_request_bytes_total counter\ntessera_request_bytes_total %llu\n"
            "# HELP tessera_response_bytes_total Response body bytes queued.\n"
            "# TYPE tessera_response_bytes_total counter\ntessera_response_bytes_total %llu\n"
            "# HELP tessera_rejected_busy_total Inferences refused with 503 (queue full, draining "
            "or waited too long).\n"
            "# TYPE tessera_rejected_busy_total counter\ntessera_rejected_busy_total %llu\n"
            "# HELP tessera_jobs_in_flight Inferences running.\n"
            "# TYPE tessera_jobs_in_flight gauge\ntessera_jobs_in_flight %d\n"
            "# HELP tessera_jobs_queued Inferences admitted and waiting (or uploading).\n"
            "# TYPE tessera_jobs_queued gauge\ntessera_jobs_queued %d\n"
            "# HELP tessera_key_cache_bytes Evaluation keys with prepared plans loaded in memory "
            "(estimate: each entry counts its plan's predicted memory).\n"
            "# TYPE tessera_key_cache_bytes gauge\ntessera_key_cache_bytes %llu\n"
            "# HELP tessera_key_store_bytes Evaluation keys stored on disk.\n"
            "# TYPE tessera_key_store_bytes gauge\ntessera_key_store_bytes %llu\n"
            "# HELP tessera_memory_bound_bytes The most memory the server's limits let it use "
            "(an estimate: resident at start + key cache + (2 x jobs + 1) x largest plan's "
            "predicted memory + connections).\n"
            "# TYPE tessera_memory_bound_bytes gauge\ntessera_memory_bound_bytes %llu\n"
            "# HELP tessera_resident_start_bytes Resident memory once the plans were loaded "
            "(VmRSS; the first term of the bound).\n"
            "# TYPE tessera_resident_start_bytes gauge\ntessera_resident_start_bytes %llu\n"
            "# HELP tessera_resident_bytes Resident memory of the process now (VmRSS).\n"
            "# TYPE tessera_resident_bytes gauge\ntessera_resident_bytes %llu\n"
            "# HELP tessera_resident_peak_bytes Peak resident memory of the process (VmHWM).\n"
            "# TYPE tessera_resident_peak_bytes gauge\ntessera_resident_peak_bytes %llu\n"
            "# HELP tessera_infer_seconds Latency of successful inferences (turn in the queue to "
            "output ready).\n"
            "# TYPE tessera_infer_seconds histogram\n",
            (unsigned long long)s->bytes_in, (unsigned long long)s->bytes_out,
            (unsigned long long)s->rejected_busy, s->running, s->tickets - s->running,
            (unsigned long long)cache, (unsigned long long)store, (unsigned long long)s->mem_bound,
            (unsigned long long)s->rss_start, (unsigned long long)rss, (unsigned long long)hwm);
    uint64_t cum = 0;
    for (size_t i = 0; i <= N_BUCKETS; i++) {
        cum += s->hist[i];
        if (i < N_BUCKETS)
            appendf(b, cap, &k, "tessera_infer_seconds_bucket{le=\"%g\"} %llu\n", BUCKETS[i],
                    (unsigned long long)cum);
        else
            appendf(b, cap, &k, "tessera_infer_seconds_bucket{le=\"+Inf\"} %llu\n",
                    (unsigned long long)cum);
    }
    appendf(b, cap, &k, "tessera_infer_seconds_sum %.6f\ntessera_infer_seconds_count %llu\n",
            s->hist_sum, (unsigned long long)s->hist_count);
    pthread_mutex_unlock(&s->mu);
    enum MHD_Result ret = send_text(s, c, r, 200, "text/plain; version=0.0.4", b);
    free(b);
    return ret;
}

/* ---- bodies ---------------------------------------------------------------------------- */

static int open_tmp(tsr_server *s, req *r, const char *prefix) {
    pthread_mutex_lock(&s->mu);
    uint64_t seq = ++s->tmp_seq;
    pthread_mutex_unlock(&s->mu);
    snprintf(r->tmp, sizeof r->tmp, "%s/%s-%ld-%llu", s->tmp_dir, prefix, (long)getpid(),
             (unsigned long long)seq);
    r->fd = open(r->tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (r->fd < 0) {
        r->tmp[0] = '\0';
        return -1;
    }
    return 0;
}

static void drop_tmp(req *r) {
    if (r->fd >= 0) close(r->fd);
    r->fd = -1;
    if (r->tmp[0]) unlink(r->tmp);
    r->tmp[0] = '\0';
}

static void release_ticket(tsr_server *s, req *r) {
    if (!r->ticket) return;
    pthread_mutex_lock(&s->mu);
    s->tickets--;
    r->ticket = 0;
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
}

/* Decide an error while the body arrives: the rest is read and dropped, then it is sent. */
static void fail_body(req *r, int code, const char *msg) {
    if (r->status) return;
    r->status = code;
    snprintf(r->msg, sizeof r->msg, "%s", msg);
    drop_tmp(r);
}

static void take_body(tsr_server *s, req *r, const char *data, size_t n) {
    pthread_mutex_lock(&s->mu);
    s->bytes_in += n;
    pthread_mutex_unlock(&s->mu);
    if (r->status) {
        r->discarded += n;
        return;
    }
    if (n > s->o.max_body - r->got) {
        char m[256];
        snprintf(m, sizeof m,
                 "the request body is larger than this server's limit of %llu bytes "
                 "(--max-body)",
                 (unsigned long long)s->o.max_body);
        fail_body(r, 413, m);
        r->discarded += n;
        return;
    }
    if (r->rt.ep == EP_KEYS) {
        crypto_generichash_update(&r->h, (const unsigned char *)data, n);
        size_t k = n < sizeof r->head - r->head_n ? n : sizeof r->head - r->head_n;
        memcpy(r->head + r->head_n, data, k);
        r->head_n += k;
        if (k && r->head_n == sizeof r->head) {
            /* Refuse a secret key by its frame before storing any more of it. */
            unsigned kind = (unsigned)r->head[6] | (unsigned)r->head[7] << 8;
            uint32_t flags = (uint32_t)r->head[8] | (uint32_t)r->head[9] << 8 |
                             (uint32_t)r->head[10] << 16 | (uint32_t)r->head[11] << 24;
            if (memcmp(r->head, TSR_FRAME_MAGIC, 4) != 0)
                fail_body(r, 400,
                          "the body is not a Tessera evaluation-key file (tessera keygen "
                          "--out-eval)");
            else if (kind == TSR_OBJ_SECRET_KEY || (flags & TSR_FRAME_SECRET))
                fail_body(r, 403,
                          "this is a secret key: the server never takes one (it was not "
                          "stored); upload the evaluation keys (tessera keygen --out-eval) and "
                          "keep the secret key on the client");
            else if (kind != TSR_OBJ_EVAL_KEYS)
                fail_body(r, 400,
                          "the body is a Tessera file but not evaluation keys (tessera keygen "
                          "--out-eval)");
            if (r->status) {
                r->discarded += n;
                return;
            }
        }
    }
    r->got += n;
    while (n > 0) {
        ssize_t w = write(r->fd, data, n);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) {
            char m[256];
            snprintf(m, sizeof m, "the server could not store the body: %s", strerror(errno));
            fail_body(r, 507, m);
            return;
        }
        data += w;
        n -= (size_t)w;
    }
}

/*
 * The idle timeout of a connection whose request the server is working on: off while it works
 * (a long job is not a stalled client), back on after it (libmicrohttpd restarts the timer when a
 * timeout is set where there was none).
 */
static void idle_timeout(tsr_server *s, struct MHD_Connection *c, int on) {
    MHD_set_connection_option(c, MHD_CONNECTION_OPTION_TIMEOUT, on ? s->o.client_timeout : 0u);
}

/* ---- PUT /v1/keys ---------------------------------------------------------------------- */

static enum MHD_Result finish_keys(tsr_server *s, struct MHD_Connection *c, req *r) {
    uint8_t hash[32];
    crypto_generichash_final(&r->h, hash, sizeof hash);
    if (r->got < TSR_FRAME_HEADER_SIZE) {
        drop_tmp(r);
        return send_error(s, c, r, 400,
                          "the body is not a Tessera evaluation-key file (too short; tessera "
                          "keygen --out-eval)");
    }
    if (close(r->fd) != 0) {
        r->fd = -1;
        drop_tmp(r);
        return send_error(s, c, r, 507, "the server could not store the body");
    }
    r->fd = -1;
    uint8_t *matched = calloc((size_t)s->o.n_plans, 1);
    if (!matched) {
        drop_tmp(r);
        return send_error(s, c, r, 503, "out of memory");
    }
    int existed = 0;
    idle_timeout(s, c, 0); /* validating large keys takes a while */
    tsr_status st = ks_add(s->ks, r->tmp, hash, r->want, matched, &existed);
    idle_timeout(s, c, 1);
    if (st != TSR_OK) {
        free(matched);
        enum MHD_Result ret = send_failure(s, c, r, st, "checking the evaluation keys", r->tmp);
        r->tmp[0] = '\0'; /* removed by ks_add */
        return ret;
    }
    r->tmp[0] = '\0'; /* moved into the store */
    char hex[65];
    serve_format_id(hash, hex);
    char *body = serve_keys_reply(hash, (const uint8_t(*)[32])s->plan_ids, matched, s->o.n_plans);
    free(matched);
    logf_(s, "keys %.16s... %s (%.1f MiB)", hex, existed ? "known" : "stored",
          (double)r->got / 1048576.0);
    char brief[128]; /* the keys are stored: out of memory only costs the plan list */
    if (!body) {
        snprintf(brief, sizeof brief, "{\"keys\": \"%s\", \"plans\": null}\n", hex);
        logf_(s, "keys %.16s...: out of memory listing the plans they serve", hex);
    }
    enum MHD_Result ret =
        send_text(s, c, r, existed ? 200 : 201, "application/json", body ? body : brief);
    free(body);
    return ret;
}

/* ---- POST /v1/plans/{id}/infer --------------------------------------------------------- */

/* Wait for a running slot; 0 once running, else the job waited too long or the server stops. */
static int wait_turn(tsr_server *s) {
    struct timespec dl;
    clock_gettime(CLOCK_REALTIME, &dl);
    double q = s->o.queue_timeout;
    dl.tv_sec += (time_t)q;
    dl.tv_nsec += (long)((q - floor(q)) * 1e9);
    if (dl.tv_nsec >= 1000000000L) {
        dl.tv_sec++;
        dl.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&s->mu);
    int rc = 0;
    while (s->running >= s->o.max_jobs && rc == 0) rc = pthread_cond_timedwait(&s->cv, &s->mu, &dl);
    int ok = s->running < s->o.max_jobs;
    if (ok) s->running++;
    pthread_mutex_unlock(&s->mu);
    return ok ? 0 : -1;
}

/* End a job's turn; the latency of a successful one goes into the histogram. */
static void end_turn(tsr_server *s, double seconds, int ok) {
    pthread_mutex_lock(&s->mu);
    s->running--;
    size_t b = 0;
    while (b < N_BUCKETS && seconds > BUCKETS[b]) b++;
    if (ok) {
        s->hist[b]++;
        s->hist_sum += seconds;
        s->hist_count++;
    }
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
}

/* Run the job; on success *fd_out holds the output (unlinked file at offset 0). */
static tsr_status run_job(tsr_server *s, req *r, ks_loaded *e, int *fd_out, uint64_t *len,
                          int *n_out, const char **what) {
    const tsr_nn_plan *p = s->plans[r->plan];
    tsr_tile *x = NULL, *y = NULL;
    int n = 0;
    *fd_out = -1;
    *what = "reading the encrypted inputs";
    pthread_mutex_lock(&e->run);
    tsr_status st = tsr_nn_ct_load(p, tsr_nn_runner_backend(e->runner), TSR_NN_CT_INPUT, r->tmp,
                                   e->key_id, &x, &n);
    if (st == TSR_OK) {
        *what = "running the network";
        st = tsr_nn_run(e->runner, x, &y, NULL);
    }
    tsr_tile_free(x);
    FILE *fp = NULL;
    if (st == TSR_OK) {
        *what = "writing the encrypted outputs";
        char path[4300];
        pthread_mutex_lock(&s->mu);
        uint64_t seq = ++s->tmp_seq;
        pthread_mutex_unlock(&s->mu);
        snprintf(path, sizeof path, "%s/out-%ld-%llu", s->tmp_dir, (long)getpid(),
                 (unsigned long long)seq);
        int fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
        if (fd >= 0) unlink(path); /* nothing stays on disk, whatever happens next */
        fp = fd >= 0 ? fdopen(fd, "w+b") : NULL;
        if (!fp) {
            if (fd >= 0) close(fd);
            st = tsr_fail(TSR_ERR_IO, "cannot create the output file: %s", strerror(errno));
        }
    }
    if (st == TSR_OK) st = tsr_nn_ct_write(p, y, TSR_NN_CT_OUTPUT, n, e->key_id, fp);
    tsr_tile_free(y);
    pthread_mutex_unlock(&e->run);
    if (st == TSR_OK && fflush(fp) != 0)
        st = tsr_fail(TSR_ERR_IO, "writing the output: %s", strerror(errno));
    if (st == TSR_OK) {
        long end = ftell(fp);
        int fd = dup(fileno(fp));
        if (end < 0 || fd < 0 || lseek(fd, 0, SEEK_SET) != 0) {
            if (fd >= 0) close(fd);
            st = tsr_fail(TSR_ERR_IO, "rewinding the output: %s", strerror(errno));
        } else {
            *fd_out = fd;
            *len = (uint64_t)end;
            *n_out = n;
        }
    }
    if (fp) fclose(fp);
    return st;
}

static enum MHD_Result finish_infer(tsr_server *s, struct MHD_Connection *c, req *r) {
    if (close(r->fd) != 0) {
        r->fd = -1;
        drop_tmp(r);
        release_ticket(s, r);
        return send_error(s, c, r, 507, "the server could not store the body");
    }
    r->fd = -1;
    idle_timeout(s, c, 0); /* waiting and running are not a stalled client */
    if (wait_turn(s) != 0) {
        drop_tmp(r);
        release_ticket(s, r);
        idle_timeout(s, c, 1);
        pthread_mutex_lock(&s->mu);
        s->rejected_busy++;
        pthread_mutex_unlock(&s->mu);
        return send_error(s, c, r, 503,
                          "the job waited longer than the server's queue timeout: it is busy; "
                          "retry later");
    }
    if (s->o.job_hook) s->o.job_hook(s->o.job_hook_arg);
    double t0 = tsr_now();
    ks_loaded *e = NULL;
    tsr_status st = ks_acquire(s->ks, r->rt.keys, r->plan, &e);
    const char *what = "loading the evaluation keys";
    if (st == TSR_ERR_NOT_FOUND) { /* evicted while this job waited */
        drop_tmp(r);
        end_turn(s, 0, 0);
        release_ticket(s, r);
        idle_timeout(s, c, 1);
        return send_unknown_keys(s, c, r);
    }
    int fd = -1, n = 0;
    uint64_t len = 0;
    if (st == TSR_OK) st = run_job(s, r, e, &fd, &len, &n, &what);
    ks_release(s->ks, e);
    release_freed_memory(s);
    double dt = tsr_now() - t0;
    char tmp[sizeof r->tmp];
    snprintf(tmp, sizeof tmp, "%s", r->tmp);
    drop_tmp(r); /* before the job counts as done: nothing of it is left then */
    end_turn(s, dt, st == TSR_OK);
    release_ticket(s, r);
    idle_timeout(s, c, 1);
    if (st != TSR_OK) return send_failure(s, c, r, st, what, tmp);
    struct MHD_Response *resp = MHD_create_response_from_fd64(len, fd);
    if (!resp) {
        close(fd);
        return send_error(s, c, r, 500, "could not create the response");
    }
    char ns[32];
    snprintf(ns, sizeof ns, "%d", n);
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "application/octet-stream");
    MHD_add_response_header(resp, "X-Tessera-Samples", ns);
    logf_(s, "infer plan %d: %d sample%s in %.2f s, %.1f MiB out", r->plan, n, n == 1 ? "" : "s",
          dt, (double)len / 1048576.0);
    return send_response(s, c, r, 200, resp, len);
}

/* ---- dispatch -------------------------------------------------------------------------- */

static int find_plan(tsr_server *s, const uint8_t id[32]) {
    for (int i = 0; i < s->o.n_plans; i++)
        if (memcmp(s->plan_ids[i], id, 32) == 0) return i;
    return -1;
}

/* First call of a request (headers only): route it, refuse what can be refused now. */
static enum MHD_Result begin(tsr_server *s, struct MHD_Connection *c, const char *url,
                             const char *method, req *r) {
    serve_route_parse(method, url, MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "plan"),
                      MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "keys"), &r->rt);
    if (r->rt.status) return send_error(s, c, r, r->rt.status, r->rt.msg);
    switch (r->rt.ep) {
    case EP_HEALTH:
        return send_text(s, c, r, 200, "text/plain", "ok\n");
    case EP_PLANS:
        return get_plans(s, c, r);
    case EP_METRICS:
        return get_metrics(s, c, r);
    default:
        break;
    }
    /* Bodies: PUT /v1/keys, POST .../infer */
    const char *cl =
        MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
    if (cl) {
        char *end;
        errno = 0;
        unsigned long long v = strtoull(cl, &end, 10);
        if (!errno && end != cl && *end == '\0' && v > s->o.max_body) {
            char m[256];
            snprintf(m, sizeof m,
                     "the request body (%llu bytes) is larger than this server's limit of %llu "
                     "bytes (--max-body)",
                     v, (unsigned long long)s->o.max_body);
            return send_error(s, c, r, 413, m);
        }
    }
    pthread_mutex_lock(&s->mu);
    int stopping = s->stopping;
    pthread_mutex_unlock(&s->mu);
    if (stopping) return send_error(s, c, r, 503, "the server is shutting down; retry later");
    if (r->rt.ep == EP_KEYS) {
        r->want = -1;
        if (r->rt.has_plan && (r->want = find_plan(s, r->rt.plan)) < 0)
            return send_error(s, c, r, 404, "no such plan on this server (GET /v1/plans)");
        crypto_generichash_init(&r->h, NULL, 0, 32);
    } else {
        if ((r->plan = find_plan(s, r->rt.plan)) < 0)
            return send_error(s, c, r, 404, "no such plan on this server (GET /v1/plans)");
        if (!ks_has(s->ks, r->rt.keys)) /* before the body: the client uploads them first */
            return send_unknown_keys(s, c, r);
        pthread_mutex_lock(&s->mu);
        int full = s->tickets >= s->o.max_jobs + s->o.max_queue;
        if (full)
            s->rejected_busy++;
        else
            s->tickets++;
        pthread_mutex_unlock(&s->mu);
        if (full)
            return send_error(s, c, r, 503,
                              "the server is busy: its job queue is full; retry after the "
                              "Retry-After seconds");
        r->ticket = 1;
    }
    if (open_tmp(s, r, r->rt.ep == EP_KEYS ? "keys" : "in") != 0) {
        release_ticket(s, r);
        return send_error(s, c, r, 507, "the server cannot store request bodies");
    }
    return MHD_YES;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url,
                                  const char *method, const char *version, const char *data,
                                  size_t *size, void **con_cls) {
    tsr_server *s = cls;
    req *r = *con_cls;
    if (!r) {
        r = calloc(1, sizeof *r);
        if (!r) return MHD_NO;
        r->fd = -1;
        r->t0 = tsr_now();
        *con_cls = r;
        pthread_mutex_lock(&s->mu);
        s->active++;
        pthread_mutex_unlock(&s->mu);
        return begin(s, c, url, method, r);
    }
    if (r->code) { /* answered already (an early refusal): drop the rest of the body */
        *size = 0;
        return MHD_YES;
    }
    if (*size > 0) {
        if (tsr_now() - r->t0 > s->o.request_timeout) {
            logf_(s, "%s: the body took longer than %.0f s: connection dropped",
                  serve_endpoint_name(r->rt.ep), s->o.request_timeout);
            return MHD_NO;
        }
        take_body(s, r, data, *size);
        *size = 0;
        /* an attacker streaming an endless body after an error is cut off */
        if (r->discarded > s->o.max_body) return MHD_NO;
        return MHD_YES;
    }
    if (r->status) {
        release_ticket(s, r);
        return send_error(s, c, r, r->status, r->msg);
    }
    return r->rt.ep == EP_KEYS ? finish_keys(s, c, r) : finish_infer(s, c, r);
}

static void on_completed(void *cls, struct MHD_Connection *c, void **con_cls,
                         enum MHD_RequestTerminationCode toe) {
    tsr_server *s = cls;
    req *r = *con_cls;
    if (!r) return;
    drop_tmp(r); /* a dropped upload leaves nothing behind */
    release_ticket(s, r);
    pthread_mutex_lock(&s->mu);
    if (toe != MHD_REQUEST_TERMINATED_COMPLETED_OK) {
        s->requests[r->rt.ep][CODE_ABORTED]++;
        if (!r->code)
            logf_(s, "%s: connection closed before the answer (%d)", serve_endpoint_name(r->rt.ep),
                  (int)toe);
    }
    s->active--;
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
    free(r);
    *con_cls = NULL;
}

static void mhd_log(void *cls, const char *fmt, va_list ap) {
    tsr_server *s = cls;
    if (!s->o.log) return;
    char line[1024];
    vsnprintf(line, sizeof line, fmt, ap);
    size_t n = strlen(line);
    while (n && line[n - 1] == '\n') line[--n] = '\0';
    logf_(s, "libmicrohttpd: %s", line);
}

/* ---- start and stop -------------------------------------------------------------------- */

static tsr_status make_dir(const char *path) {
    if (mkdir(path, 0700) != 0 && errno != EEXIST)
        return tsr_fail(TSR_ERR_IO, "cannot create '%s': %s", path, strerror(errno));
    struct stat sb;
    if (lstat(path, &sb) != 0 || !S_ISDIR(sb.st_mode))
        return tsr_fail(TSR_ERR_IO, "'%s' is not a directory (symbolic links are not followed)",
                        path);
    return TSR_OK;
}

/* Remove what a killed server left in tmp/ (its files only: keys-*, in-*, out-*). */
static void clean_tmp(const char *dir) {
    DIR *d = opendir(dir);
    if (!d) return;
    struct dirent *de;
    while ((de = readdir(d)) != NULL)
        if (strncmp(de->d_name, "keys-", 5) == 0 || strncmp(de->d_name, "in-", 3) == 0 ||
            strncmp(de->d_name, "out-", 4) == 0) {
            char p[8192];
            snprintf(p, sizeof p, "%s/%s", dir, de->d_name);
            unlink(p);
        }
    closedir(d);
}

static tsr_status read_pem(const char *path, char **out) {
    uint8_t *buf;
    size_t len;
    TSR_TRY(tsr_read_whole_file(path, 1 << 20, "a PEM file", &buf, &len));
    char *s = malloc(len + 1);
    if (s) {
        memcpy(s, buf, len);
        s[len] = '\0';
    }
    tsr_free_secret(buf, len); /* the key file's copy: a private key */
    if (!s) return tsr_fail(TSR_ERR_NOMEM, "out of memory");
    *out = s;
    return TSR_OK;
}

static void server_free(tsr_server *s) {
    if (!s) return;
    ks_free(s->ks);
    for (int i = 0; s->plans && i < s->o.n_plans; i++) tsr_nn_plan_free(s->plans[i]);
    free(s->plans);
    free(s->plan_ids);
    if (s->tls_key) sodium_memzero(s->tls_key, strlen(s->tls_key));
    free(s->tls_key);
    free(s->tls_cert);
    pthread_mutex_destroy(&s->mu);
    pthread_cond_destroy(&s->cv);
    free(s);
}

tsr_status tsr_serve_start(const tsr_serve_opts *o, tsr_server **out) {
    *out = NULL;
    if (!o || !o->plans || o->n_plans < 1 || !o->state_dir || !o->state_dir[0])
        return tsr_fail(TSR_ERR_INVALID_ARG, "the server needs at least one plan and a state "
                                             "directory");
    if (o->max_jobs < 1 || o->max_queue < 0 || o->max_body < 64 || o->port < 0 || o->port > 65535 ||
        !(o->queue_timeout > 0) || !(o->request_timeout > 0) || o->max_connections < 1 ||
        o->retry_after < 0)
        return tsr_fail(TSR_ERR_INVALID_ARG,
                        "server limits out of range (jobs >= 1, queue >= 0, body >= 64 bytes, "
                        "positive timeouts, port 0..65535)");
    if (!o->tls_cert != !o->tls_key)
        return tsr_fail(TSR_ERR_INVALID_ARG, "TLS needs both a certificate and its key");
    if (o->tls_cert && MHD_is_feature_supported(MHD_FEATURE_TLS) != MHD_YES)
        return tsr_fail(TSR_ERR_UNSUPPORTED, "this libmicrohttpd was built without TLS");
    struct sockaddr_in sa;
    memset(&sa, 0, sizeof sa);
    sa.sin_family = AF_INET;
    sa.sin_port = htons((uint16_t)o->port);
    const char *host = o->host ? o->host : "127.0.0.1";
    if (strcmp(host, "localhost") == 0) host = "127.0.0.1";
    if (inet_pton(AF_INET, host, &sa.sin_addr) != 1)
        return tsr_fail(TSR_ERR_INVALID_ARG, "'%s' is not an IPv4 address to listen on", host);

    tsr_server *s = calloc(1, sizeof *s);
    if (!s) return tsr_fail(TSR_ERR_NOMEM, "out of memory");
    s->o = *o;
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->cv, NULL);
    snprintf(s->state, sizeof s->state, "%s", o->state_dir);
    snprintf(s->keys_dir, sizeof s->keys_dir, "%s/keys", s->state);
    snprintf(s->tmp_dir, sizeof s->tmp_dir, "%s/tmp", s->state);
    s->plans = calloc((size_t)o->n_plans, sizeof *s->plans);
    s->plan_ids = calloc((size_t)o->n_plans, sizeof *s->plan_ids);
    tsr_status st = s->plans && s->plan_ids ? TSR_OK : tsr_fail(TSR_ERR_NOMEM, "out of memory");
    for (int i = 0; st == TSR_OK && i < o->n_plans; i++) {
        st = tsr_nn_plan_load(&s->plans[i], o->plans[i], o->ckks_flags);
        if (st != TSR_OK) {
            st = tsr_fail_context(st, "loading the plan '%s': ", o->plans[i]);
            break;
        }
        tsr_nn_plan_id(s->plans[i], s->plan_ids[i]);
        for (int j = 0; j < i; j++)
            if (memcmp(s->plan_ids[i], s->plan_ids[j], 32) == 0)
                st = tsr_fail(TSR_ERR_INVALID_ARG, "'%s' and '%s' are the same plan", o->plans[j],
                              o->plans[i]);
    }
    if (st == TSR_OK) {
        s->rss_start = proc_status_bytes("VmRSS");
        s->mem_bound = memory_bound(s);
    }
    if (st == TSR_OK) st = make_dir(s->state);
    if (st == TSR_OK) st = make_dir(s->keys_dir);
    if (st == TSR_OK) st = make_dir(s->tmp_dir);
    if (st == TSR_OK) clean_tmp(s->tmp_dir);
    if (st == TSR_OK)
        st = ks_create(s->keys_dir, o->key_cache, o->key_store,
                       (const tsr_nn_plan *const *)s->plans, o->n_plans, &s->ks);
    if (st == TSR_OK && o->tls_cert) {
        st = read_pem(o->tls_cert, &s->tls_cert);
        if (st == TSR_OK) st = read_pem(o->tls_key, &s->tls_key);
    }
    if (st != TSR_OK) {
        server_free(s);
        return st;
    }
    unsigned flags = MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD |
                     MHD_USE_POLL | MHD_USE_ITC | MHD_USE_ERROR_LOG;
    if (s->tls_cert) flags |= MHD_USE_TLS;
    struct MHD_OptionItem tls_opts[] = {
        { MHD_OPTION_HTTPS_MEM_CERT, 0, s->tls_cert },
        { MHD_OPTION_HTTPS_MEM_KEY, 0, s->tls_key },
        { MHD_OPTION_END, 0, NULL },
    };
    s->d = MHD_start_daemon(flags, 0, NULL, NULL, on_request, s, MHD_OPTION_EXTERNAL_LOGGER,
                            mhd_log, s, MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&sa,
                            MHD_OPTION_CONNECTION_TIMEOUT, o->client_timeout,
                            MHD_OPTION_CONNECTION_LIMIT, o->max_connections,
                            MHD_OPTION_NOTIFY_COMPLETED, on_completed, s, MHD_OPTION_ARRAY,
                            s->tls_cert ? tls_opts : tls_opts + 2, MHD_OPTION_END);
    if (!s->d) {
        server_free(s);
        return tsr_fail(TSR_ERR_IO,
                        "cannot listen on %s:%d (address in use, or not this machine's; for "
                        "TLS: a bad certificate or key)",
                        host, o->port);
    }
    const union MHD_DaemonInfo *di = MHD_get_daemon_info(s->d, MHD_DAEMON_INFO_BIND_PORT);
    s->port = di ? di->port : o->port;
    uint64_t largest = largest_plan_bytes(s);
    if (o->key_cache < largest)
        logf_(s,
              "warning: the key cache (%.0f MiB) is smaller than the largest plan's predicted "
              "memory (%.0f MiB), what one loaded entry counts: keys never stay loaded and "
              "every inference with that plan reloads them (raise --key-cache)",
              (double)o->key_cache / 1048576.0, (double)largest / 1048576.0);
    logf_(s, "listening on %s://%s:%d with %d plan%s (jobs %d, queue %d; memory bound %.0f MiB)",
          s->tls_cert ? "https" : "http", host, s->port, o->n_plans, o->n_plans == 1 ? "" : "s",
          o->max_jobs, o->max_queue, (double)s->mem_bound / 1048576.0);
    *out = s;
    return TSR_OK;
}

int tsr_serve_port(const tsr_server *s) {
    return s->port;
}

uint64_t tsr_serve_memory_bound(const tsr_server *s) {
    return s->mem_bound;
}

void tsr_serve_stop(tsr_server *s, double drain_seconds) {
    if (!s) return;
    pthread_mutex_lock(&s->mu);
    s->stopping = 1;
    pthread_mutex_unlock(&s->mu);
    MHD_socket ls = MHD_quiesce_daemon(s->d);
    if (ls != MHD_INVALID_SOCKET) close(ls);
    /* Drain: every request being handled (running and queued jobs among them) ends and its
     * response goes out; idle keep-alive connections are closed below. */
    struct timespec dl;
    clock_gettime(CLOCK_REALTIME, &dl);
    dl.tv_sec += (time_t)(drain_seconds > 0 ? drain_seconds : 0);
    pthread_mutex_lock(&s->mu);
    int rc = 0;
    while (s->active > 0 && rc == 0) rc = pthread_cond_timedwait(&s->cv, &s->mu, &dl);
    int left = s->active;
    pthread_mutex_unlock(&s->mu);
    logf_(s, "stopping%s", left ? " (drain time over: open requests closed)" : ": drained");
    MHD_stop_daemon(s->d);
    server_free(s);
}
