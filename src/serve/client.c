/*
 * serve/client.c - the client side of the HTTP service over libcurl
 * (include/tessera/serve.h): evaluation keys and encrypted inputs streamed
 * from files, encrypted outputs streamed into a temporary file renamed into
 * place once complete, 503 answers retried after their Retry-After, error
 * answers turned back into the status and message the server gave.
 */
#include "serve/serve_internal.h"

#include "core/alloc.h"
#include "core/error.h"
#include "core/io.h"
#include "core/progress.h"

#include <curl/curl.h>
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

void tsr_client_opts_default(tsr_client_opts *o) {
    memset(o, 0, sizeof *o);
    o->retries = 8;
    o->max_wait = 60;
}

static void curl_init_once(void) {
    curl_global_init(CURL_GLOBAL_DEFAULT);
}

tsr_status tsr_client_file_hash(const char *path, char hash[65]) {
    FILE *fp = fopen(path, "rb");
    if (!fp) return tsr_fail(TSR_ERR_NOT_FOUND, "cannot open '%s': %s", path, strerror(errno));
    crypto_generichash_state h;
    crypto_generichash_init(&h, NULL, 0, 32);
    unsigned char buf[1 << 16];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, fp)) > 0) crypto_generichash_update(&h, buf, n);
    int err = ferror(fp);
    fclose(fp);
    if (err) return tsr_fail(TSR_ERR_IO, "reading '%s' failed", path);
    uint8_t id[32];
    crypto_generichash_final(&h, id, sizeof id);
    serve_format_id(id, hash);
    return TSR_OK;
}

/* One exchange: the answer's status, headers of interest, a text body or a file body. */
typedef struct exchange {
    long code;
    char text[4096]; /* the body of an answer that is not 200/201 (cut) */
    size_t text_n;
    FILE *out; /* the body of a 200 answer, if given */
    int out_failed;
    double retry_after; /* -1: none */
    int unknown_keys;   /* X-Tessera-Error: unknown-keys */
    CURL *c;
    tsr_progress pr;
    int progress, pr_begun, up;
} exchange;

static size_t on_write(char *p, size_t sz, size_t nm, void *arg) {
    exchange *x = arg;
    size_t n = sz * nm;
    long code = 0;
    curl_easy_getinfo(x->c, CURLINFO_RESPONSE_CODE, &code);
    if (code == 200 && x->out) {
        if (fwrite(p, 1, n, x->out) != n) {
            x->out_failed = 1;
            return 0; /* abort the transfer */
        }
        return n;
    }
    size_t k = n < sizeof x->text - 1 - x->text_n ? n : sizeof x->text - 1 - x->text_n;
    memcpy(x->text + x->text_n, p, k);
    x->text_n += k;
    x->text[x->text_n] = '\0';
    return n;
}

static size_t on_header(char *p, size_t sz, size_t nm, void *arg) {
    exchange *x = arg;
    size_t n = sz * nm;
    if (n > 12 && strncasecmp(p, "Retry-After:", 12) == 0) {
        char v[32];
        snprintf(v, sizeof v, "%.*s", (int)(n - 12 < 31 ? n - 12 : 31), p + 12);
        double s = strtod(v, NULL);
        x->retry_after = isfinite(s) && s >= 0 ? s : 1;
    }
    if (n > 15 && strncasecmp(p, "X-Tessera-Error:", 16) == 0 && strstr(p, "unknown-keys"))
        x->unknown_keys = 1;
    return n;
}

static int on_progress(void *arg, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal,
                       curl_off_t ulnow) {
    exchange *x = arg;
    if (!x->progress) return 0;
    curl_off_t total = x->up ? ultotal : dltotal, now = x->up ? ulnow : dlnow;
    if (x->up && ulnow >= ultotal && ultotal > 0 && dltotal > 0) {
        /* the upload is done: follow the download */
        x->up = 0;
        if (x->pr_begun) tsr_progress_end(&x->pr, NULL);
        x->pr_begun = 0;
        total = dltotal;
        now = dlnow;
    }
    if (total <= 0) return 0;
    if (!x->pr_begun) {
        tsr_progress_begin(&x->pr, x->up ? "uploading" : "downloading", (uint64_t)total / 1024,
                           "KiB");
        x->pr_begun = 1;
    }
    tsr_progress_update(&x->pr, (uint64_t)now / 1024, NULL);
    return 0;
}

static tsr_status status_of(long code) {
    switch (code) {
    case 400:
        return TSR_ERR_FORMAT;
    case 403:
        return TSR_ERR_SECRET;
    case 404:
        return TSR_ERR_NOT_FOUND;
    case 405:
    case 413:
        return TSR_ERR_INVALID_ARG;
    case 422:
        return TSR_ERR_MISMATCH;
    default:
        return TSR_ERR_IO;
    }
}

/*
 * Send method url with the file `in` as body (may be NULL); a 200 body goes to `out` (may be
 * NULL). Retries 503 answers. On an answer other than 2xx fails with its status and message.
 */
static tsr_status exchange_run(const tsr_client_opts *o, const char *method, const char *url,
                               const char *in, FILE *out, exchange *x) {
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, curl_init_once);
    for (int attempt = 0;; attempt++) {
        memset(x, 0, sizeof *x);
        x->retry_after = -1;
        x->out = out;
        x->progress = o->progress;
        x->up = in != NULL;
        if (out && (fflush(out) != 0 || fseek(out, 0, SEEK_SET) != 0 || ftruncate(fileno(out), 0)))
            return tsr_fail(TSR_ERR_IO, "cannot rewind the output file");
        FILE *fin = NULL;
        struct stat sb;
        if (in) {
            fin = fopen(in, "rb");
            if (!fin || fstat(fileno(fin), &sb) != 0) {
                if (fin) fclose(fin);
                return tsr_fail(TSR_ERR_NOT_FOUND, "cannot open '%s': %s", in, strerror(errno));
            }
        }
        CURL *c = curl_easy_init();
        if (!c) {
            if (fin) fclose(fin);
            return tsr_fail(TSR_ERR_NOMEM, "cannot create an HTTP handle");
        }
        x->c = c;
        char err[CURL_ERROR_SIZE] = "";
        curl_easy_setopt(c, CURLOPT_URL, url);
        curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
        curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_write);
        curl_easy_setopt(c, CURLOPT_WRITEDATA, x);
        curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
        curl_easy_setopt(c, CURLOPT_HEADERDATA, x);
        curl_easy_setopt(c, CURLOPT_NOPROGRESS, o->progress ? 0L : 1L);
        curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, on_progress);
        curl_easy_setopt(c, CURLOPT_XFERINFODATA, x);
        curl_easy_setopt(c, CURLOPT_ERRORBUFFER, err);
        curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
        curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
        if (o->timeout > 0) curl_easy_setopt(c, CURLOPT_TIMEOUT, o->timeout);
        if (o->ca_file) curl_easy_setopt(c, CURLOPT_CAINFO, o->ca_file);
        if (fin) {
            curl_easy_setopt(c, CURLOPT_UPLOAD, 1L);
            curl_easy_setopt(c, CURLOPT_READDATA, fin);
            curl_easy_setopt(c, CURLOPT_INFILESIZE_LARGE, (curl_off_t)sb.st_size);
        }
        CURLcode cc = curl_easy_perform(c);
        if (cc == CURLE_OK) curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &x->code);
        curl_easy_cleanup(c);
        if (fin) fclose(fin);
        if (x->pr_begun) tsr_progress_end(&x->pr, NULL);
        if (x->out_failed) return tsr_fail(TSR_ERR_IO, "writing the answer failed");
        if (cc != CURLE_OK)
            return tsr_fail(TSR_ERR_IO, "%s %s: %s", method, url,
                            err[0] ? err : curl_easy_strerror(cc));
        if (x->code == 503 && attempt < o->retries) {
            double w = x->retry_after >= 0 ? x->retry_after : 1;
            if (w > o->max_wait) w = o->max_wait;
            if (o->progress)
                fprintf(stderr,
                        "tessera client: the server is busy (503): retry %d of %d in "
                        "%.0f s\n",
                        attempt + 1, o->retries, w);
            struct timespec ts = { (time_t)w, (long)((w - floor(w)) * 1e9) };
            while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
            }
            continue;
        }
        if (x->code == 200 || x->code == 201) return TSR_OK;
        size_t n = x->text_n;
        while (n && (x->text[n - 1] == '\n' || x->text[n - 1] == '\r')) x->text[--n] = '\0';
        return tsr_fail(status_of(x->code), "the server answered %ld%s: %s", x->code,
                        x->code == 503 ? " (still busy after the retries)" : "",
                        x->text_n ? x->text : "(no message)");
    }
}

static tsr_status base_url(const tsr_client_opts *o, char *out, size_t n) {
    if (!o || !o->server || !o->server[0])
        return tsr_fail(TSR_ERR_INVALID_ARG, "give the server's URL (http://HOST:PORT)");
    if (strncmp(o->server, "http://", 7) != 0 && strncmp(o->server, "https://", 8) != 0)
        return tsr_fail(TSR_ERR_INVALID_ARG, "the server URL must start with http:// or https://");
    size_t len = strlen(o->server);
    while (len && o->server[len - 1] == '/') len--;
    if (len + 200 > n) return tsr_fail(TSR_ERR_INVALID_ARG, "the server URL is too long");
    snprintf(out, n, "%.*s", (int)len, o->server);
    return TSR_OK;
}

/* Never send a secret key: check the file's frame header before anything goes out. */
tsr_status tsr_client_check_keys_file(const char *path) {
    uint8_t h[TSR_FRAME_HEADER_SIZE];
    FILE *fp = fopen(path, "rb");
    if (!fp) return tsr_fail(TSR_ERR_NOT_FOUND, "cannot open '%s': %s", path, strerror(errno));
    size_t got = fread(h, 1, sizeof h, fp);
    fclose(fp);
    if (got < sizeof h || memcmp(h, TSR_FRAME_MAGIC, 4) != 0)
        return tsr_fail(TSR_ERR_FORMAT, "'%s' is not a Tessera evaluation-key file", path);
    unsigned kind = (unsigned)h[6] | (unsigned)h[7] << 8;
    if (kind == TSR_OBJ_SECRET_KEY || (h[8] & TSR_FRAME_SECRET))
        return tsr_fail(TSR_ERR_SECRET,
                        "refusing to upload a secret key ('%s'): it never leaves the client; "
                        "give the evaluation keys (tessera keygen --out-eval)",
                        path);
    if (kind != TSR_OBJ_EVAL_KEYS)
        return tsr_fail(TSR_ERR_FORMAT,
                        "'%s' holds no evaluation keys (tessera keygen "
                        "--out-eval)",
                        path);
    return TSR_OK;
}

tsr_status tsr_client_put_keys(const tsr_client_opts *o, const char *keys_path,
                               const uint8_t *plan_id, char hash[65]) {
    char url[4096];
    TSR_TRY(base_url(o, url, sizeof url));
    TSR_TRY(tsr_client_check_keys_file(keys_path));
    size_t k = strlen(url);
    snprintf(url + k, sizeof url - k, "/v1/keys");
    if (plan_id) {
        char id[65];
        serve_format_id(plan_id, id);
        k = strlen(url);
        snprintf(url + k, sizeof url - k, "?plan=%s", id);
    }
    exchange x;
    tsr_status st = exchange_run(o, "PUT", url, keys_path, NULL, &x);
    if (st != TSR_OK) return tsr_fail_context(st, "uploading the evaluation keys: ");
    const char *h = strstr(x.text, "\"keys\": \"");
    uint8_t id[32];
    char hex[65];
    if (!h || (snprintf(hex, sizeof hex, "%.64s", h + 9), serve_parse_id(hex, id) != 0))
        return tsr_fail(TSR_ERR_FORMAT, "the server's answer to the key upload has no key id");
    serve_format_id(id, hash);
    return TSR_OK;
}

tsr_status tsr_client_infer(const tsr_client_opts *o, const uint8_t plan_id[32],
                            const char *keys_hash, const char *in_path, const char *out_path,
                            int *unknown_keys) {
    if (unknown_keys) *unknown_keys = 0;
    char url[4096], id[65];
    uint8_t kid[32];
    TSR_TRY(base_url(o, url, sizeof url));
    if (serve_parse_id(keys_hash, kid) != 0)
        return tsr_fail(TSR_ERR_INVALID_ARG, "the key id must be 64 hexadecimal digits");
    serve_format_id(plan_id, id);
    size_t k = strlen(url);
    snprintf(url + k, sizeof url - k, "/v1/plans/%s/infer?keys=%s", id, keys_hash);
    tsr_outset set;
    FILE *fp;
    tsr_outset_init(&set);
    TSR_TRY(tsr_outset_open(&set, out_path, 0, &fp));
    exchange x;
    tsr_status st = exchange_run(o, "POST", url, in_path, fp, &x);
    if (st == TSR_OK) st = tsr_outset_commit(&set);
    tsr_outset_abort(&set);
    if (st != TSR_OK && x.unknown_keys && unknown_keys) *unknown_keys = 1;
    if (st != TSR_OK) return tsr_fail_context(st, "running the inference on the server: ");
    return TSR_OK;
}
