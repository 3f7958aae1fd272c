/*
 * tests/test_serve.c - the HTTP service (include/tessera/serve.h) on
 * 127.0.0.1 with an ephemeral port, a small model and test-only parameters:
 * keys uploaded and stored under their hash, an inference whose output
 * decrypts to the plaintext prediction, and the refusals: a secret key,
 * keys of another plan, garbage and truncated bodies, unknown keys, inputs
 * of another plan, corrupted inputs, oversized bodies, a full job queue
 * (503 with Retry-After, made deterministic by the job hook), bad paths and
 * methods; the server still answers after each, and no request leaves a
 * file behind. Plans, keys and ciphertexts come from the `tessera` command.
 */
#include "clitest.h"

#include "core/io.h"
#include "core/rng.h"
#include "serve/serve_internal.h"
#include "tessera/serve.h"
#include "train/model.h"
#include "train/model_onnx.h"

#include <curl/curl.h>
#include <dirent.h>
#include <fcntl.h>
#include <pthread.h>
#include <semaphore.h>
#include <signal.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define INSECURE " --insecure-parameters-for-testing"

static char plan_a[65], plan_b[65];

/* ---- a small HTTP client over libcurl --------------------------------------------------- */

typedef struct http_res {
    long code;
    char body[32768]; /* text bodies (cut) */
    size_t n;
    FILE *out; /* binary body to a file instead, if set */
    int retry_after;
} http_res;

static size_t on_body(char *p, size_t sz, size_t nm, void *arg) {
    http_res *r = arg;
    size_t n = sz * nm;
    if (r->out) return fwrite(p, 1, n, r->out);
    size_t k = n < sizeof r->body - 1 - r->n ? n : sizeof r->body - 1 - r->n;
    memcpy(r->body + r->n, p, k);
    r->n += k;
    r->body[r->n] = '\0';
    return n;
}

static size_t on_header(char *p, size_t sz, size_t nm, void *arg) {
    http_res *r = arg;
    if (sz * nm > 12 && strncasecmp(p, "Retry-After:", 12) == 0) r->retry_after = atoi(p + 12);
    return sz * nm;
}

/* method path [body file] [output file]: the status code (0 if the connection failed). */
static long http(int port, const char *method, const char *path, const char *in, const char *out,
                 http_res *r) {
    memset(r, 0, sizeof *r);
    CURL *c = curl_easy_init();
    assert_non_null(c);
    char url[1024];
    snprintf(url, sizeof url, "http://127.0.0.1:%d%s", port, path);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, r);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, r);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 300L); /* generous: only against a hung test */
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    FILE *fin = NULL;
    if (in) {
        fin = fopen(in, "rb");
        assert_non_null(fin);
        struct stat sb;
        assert_int_equal(fstat(fileno(fin), &sb), 0);
        curl_easy_setopt(c, CURLOPT_UPLOAD, 1L);
        curl_easy_setopt(c, CURLOPT_READDATA, fin);
        curl_easy_setopt(c, CURLOPT_INFILESIZE_LARGE, (curl_off_t)sb.st_size);
    }
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    if (out) {
        r->out = fopen(out, "wb");
        assert_non_null(r->out);
    }
    CURLcode cc = curl_easy_perform(c);
    if (cc == CURLE_OK) curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r->code);
    if (fin) fclose(fin);
    if (r->out) fclose(r->out);
    r->out = NULL;
    curl_easy_cleanup(c);
    return r->code;
}

static void expect_code(long got, long want, const http_res *r, const char *what) {
    if (got != want) fail_msg("%s: HTTP %ld (want %ld): %s", what, got, want, r->body);
}

static void expect_body(const http_res *r, const char *needle) {
    if (!strstr(r->body, needle)) fail_msg("the answer lacks '%s': %s", needle, r->body);
}

/* ---- fixtures ---------------------------------------------------------------------------- */

static void plan_id(const char *path, char hex[65]) {
    tsr_nn_plan *p;
    tt_ok(tsr_nn_plan_load(&p, path, TSR_CKKS_ALLOW_INSECURE_PARAMETERS));
    uint8_t id[32];
    tsr_nn_plan_id(p, id);
    serve_format_id(id, hex);
    tsr_nn_plan_free(p);
}

static void file_hash(const char *path, char hex[65]) {
    uint8_t *buf;
    size_t n;
    char *s = tt_slurp(path); /* only to check it exists */
    assert_non_null(s);
    FILE *fp = fopen(path, "rb");
    fseek(fp, 0, SEEK_END);
    n = (size_t)ftell(fp);
    rewind(fp);
    buf = malloc(n);
    assert_int_equal(fread(buf, 1, n, fp), n);
    fclose(fp);
    uint8_t h[32];
    crypto_generichash(h, 32, buf, n, NULL, 0);
    free(buf);
    serve_format_id(h, hex);
}

static int count_files(const char *dir) {
    DIR *d = opendir(dir);
    if (!d) return -1;
    int n = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) n += de->d_name[0] != '.';
    closedir(d);
    return n;
}

static void copy_prefix(const char *from, const char *to, long n, long flip_at) {
    FILE *a = fopen(from, "rb"), *b = fopen(to, "wb");
    assert_non_null(a);
    assert_non_null(b);
    int ch;
    for (long i = 0; (n < 0 || i < n) && (ch = fgetc(a)) != EOF; i++)
        fputc(i == flip_at ? ch ^ 0x40 : ch, b);
    fclose(a);
    fclose(b);
}

static int setup(void **state) {
    if (tt_cli_setup(state) != 0) return -1;
    curl_global_init(CURL_GLOBAL_DEFAULT);
    tsr_act_spec as;
    tt_ok(tsr_act_parse("poly2", &as));
    tsr_model *m;
    tt_ok(tsr_model_build(&m, "cryptonets", &as, 4));
    tt_ok(tsr_model_save_onnx(m, NULL, tt_cli_path("m.onnx")));
    tsr_model_free(m);
    char ap[1024];
    snprintf(ap, sizeof ap, "%s", tt_cli_path("a.plan")); /* tt_cli_path's buffers rotate */
    tt_cli_compile_keygen(tt_cli_path("m.onnx"), "--batch 4 --log-n 11 --no-measure", ap,
                          tt_cli_path("c.sk"), tt_cli_path("s.evk"));
    /* plan b: a linear model (flatten + dense): rotations, no relinearization key */
    int t = 0;
    tt_ok(tsr_model_create(&m, 1, 28, 28));
    tt_ok(tsr_model_add_flatten(m, &t, "flatten", t));
    tt_ok(tsr_model_add_dense(m, &t, "fc", t, 10, 1));
    tt_ok(tsr_model_finish(m, t));
    tt_ok(tsr_model_init(m, 5));
    tt_ok(tsr_model_save_onnx(m, NULL, tt_cli_path("lin.onnx")));
    tsr_model_free(m);
    snprintf(ap, sizeof ap, "%s", tt_cli_path("b.plan"));
    tt_cli_compile_keygen(tt_cli_path("lin.onnx"),
                          "--batch 2 --log-n 11 --packing tiled --no-measure", ap,
                          tt_cli_path("c2.sk"), tt_cli_path("s2.evk"));
    tt_write_inputs_csv(tt_cli_path("in.csv"), 4, 784, 7);
    tt_cli_expect(tt_cli_run("encrypt %s %s --in %s --out %s" INSECURE, tt_cli_path("a.plan"),
                             tt_cli_path("c.sk"), tt_cli_path("in.csv"), tt_cli_path("in.ct")),
                  0, "encrypt");
    tt_cli_expect(tt_cli_run("encrypt %s %s --in %s --count 2 --out %s" INSECURE,
                             tt_cli_path("b.plan"), tt_cli_path("c2.sk"), tt_cli_path("in.csv"),
                             tt_cli_path("in_b.ct")),
                  0, "encrypt for the second plan");
    plan_id(tt_cli_path("a.plan"), plan_a);
    plan_id(tt_cli_path("b.plan"), plan_b);
    return 0;
}

static int teardown(void **state) {
    curl_global_cleanup();
    return tt_cli_teardown(state);
}

static tsr_server *start(const char *state_name, tsr_serve_opts *o) {
    static const char *plans[2];
    static char pa[1024], pb[1024], st[1024];
    snprintf(pa, sizeof pa, "%s", tt_cli_path("a.plan"));
    snprintf(pb, sizeof pb, "%s", tt_cli_path("b.plan"));
    snprintf(st, sizeof st, "%s", tt_cli_path(state_name));
    plans[0] = pa;
    plans[1] = pb;
    o->plans = plans;
    o->n_plans = 2;
    o->state_dir = st;
    o->port = 0;
    o->ckks_flags = TSR_CKKS_ALLOW_INSECURE_PARAMETERS;
    tsr_server *s = NULL;
    tt_ok(tsr_serve_start(o, &s));
    assert_true(tsr_serve_port(s) > 0);
    return s;
}

/* ---- tests ------------------------------------------------------------------------------- */

static void test_routes(void **state) {
    (void)state;
    serve_route r;
    char path[256];
    snprintf(path, sizeof path, "/v1/plans/%s/infer", plan_a);
    serve_route_parse("POST", path, NULL, plan_b, &r);
    assert_int_equal(r.status, 0);
    assert_int_equal(r.ep, EP_INFER);
    char hex[65];
    serve_format_id(r.plan, hex);
    assert_string_equal(hex, plan_a);
    serve_format_id(r.keys, hex);
    assert_string_equal(hex, plan_b);
    serve_route_parse("GET", path, NULL, plan_b, &r);
    assert_int_equal(r.status, 405);
    serve_route_parse("POST", path, NULL, "abc", &r);
    assert_int_equal(r.status, 400);
    serve_route_parse("POST", path, NULL, NULL, &r);
    assert_int_equal(r.status, 400);
    path[12] = 'g'; /* not hexadecimal */
    serve_route_parse("POST", path, NULL, plan_b, &r);
    assert_int_equal(r.status, 404);
    serve_route_parse("PUT", "/v1/keys", NULL, NULL, &r);
    assert_int_equal(r.ep, EP_KEYS);
    assert_int_equal(r.has_plan, 0);
    serve_route_parse("PUT", "/v1/keys", "12", NULL, &r);
    assert_int_equal(r.status, 400);
    serve_route_parse("GET", "/v1/plans/", NULL, NULL, &r);
    assert_int_equal(r.status, 404);
    serve_route_parse("GET", "/healthz", NULL, NULL, &r);
    assert_int_equal(r.ep, EP_HEALTH);
    serve_route_parse("DELETE", "/metrics", NULL, NULL, &r);
    assert_int_equal(r.status, 405);
}

static void test_serve(void **state) {
    (void)state;
    tsr_serve_opts o;
    tsr_serve_opts_default(&o);
    FILE *log = fopen(tt_cli_path("serve.log"), "w");
    o.log = log;
    tsr_server *s = start("state", &o);
    int port = tsr_serve_port(s);
    http_res r;
    expect_code(http(port, "GET", "/healthz", NULL, NULL, &r), 200, &r, "healthz");
    assert_string_equal(r.body, "ok\n");
    expect_code(http(port, "GET", "/v1/plans", NULL, NULL, &r), 200, &r, "plans");
    expect_body(&r, plan_a);
    expect_body(&r, plan_b);
    expect_body(&r, "\"input\": [1, 28, 28]");
    expect_body(&r, "\"batch\": 4");
    expect_code(http(port, "GET", "/nope", NULL, NULL, &r), 404, &r, "unknown path");
    expect_code(http(port, "POST", "/healthz", NULL, NULL, &r), 405, &r, "wrong method");

    /* keys: stored under their BLAKE2b-256 hash; a second upload finds them */
    char kh[65], kh2[65], path[512];
    file_hash(tt_cli_path("s.evk"), kh);
    file_hash(tt_cli_path("s2.evk"), kh2);
    expect_code(http(port, "PUT", "/v1/keys", tt_cli_path("s.evk"), NULL, &r), 201, &r, "keys");
    expect_body(&r, kh);
    expect_body(&r, plan_a);
    expect_code(http(port, "PUT", "/v1/keys", tt_cli_path("s.evk"), NULL, &r), 200, &r,
                "keys again");
    snprintf(path, sizeof path, "/v1/keys?plan=%s", plan_b);
    expect_code(http(port, "PUT", path, tt_cli_path("s2.evk"), NULL, &r), 201, &r,
                "keys of plan b");
    assert_null(strstr(r.body, plan_a)); /* no relinearization key: they cannot serve plan a */
    assert_int_equal(count_files(tt_cli_path("state/keys")), 2);

    /* the inference: its output decrypts to the plaintext prediction */
    snprintf(path, sizeof path, "/v1/plans/%s/infer?keys=%s", plan_a, kh);
    expect_code(http(port, "POST", path, tt_cli_path("in.ct"), tt_cli_path("out.ct"), &r), 200, &r,
                "infer");
    tt_cli_expect(tt_cli_run("decrypt %s %s --in %s --out %s --compare %s" INSECURE,
                             tt_cli_path("a.plan"), tt_cli_path("c.sk"), tt_cli_path("out.ct"),
                             tt_cli_path("pred.csv"), tt_cli_path("in.csv")),
                  0, "decrypt the server's output");
    assert_non_null(strstr(tt_cli_output(), "agreement with plaintext inference: 100.00% of 4"));
    snprintf(path, sizeof path, "/v1/plans/%s/infer?keys=%s", plan_b, kh2);
    expect_code(http(port, "POST", path, tt_cli_path("in_b.ct"), tt_cli_path("out_b.ct"), &r), 200,
                &r, "infer plan b");
    tt_cli_expect(tt_cli_run("decrypt %s %s --in %s --out %s --compare %s" INSECURE,
                             tt_cli_path("b.plan"), tt_cli_path("c2.sk"), tt_cli_path("out_b.ct"),
                             tt_cli_path("pred_b.csv"), tt_cli_path("in.csv")),
                  0, "decrypt the server's output for plan b");
    assert_non_null(strstr(tt_cli_output(), "agreement with plaintext inference: 100.00% of 2"));

    /* refusals, each with the command line's message */
    expect_code(http(port, "PUT", "/v1/keys", tt_cli_path("c.sk"), NULL, &r), 403, &r,
                "a secret key");
    expect_body(&r, "secret key");
    snprintf(path, sizeof path, "/v1/keys?plan=%s", plan_a);
    expect_code(http(port, "PUT", path, tt_cli_path("s2.evk"), NULL, &r), 422, &r,
                "keys of another plan");
    expect_body(&r, "another plan");
    expect_code(http(port, "PUT", "/v1/keys", tt_cli_path("in.csv"), NULL, &r), 400, &r,
                "not keys");
    expect_code(http(port, "PUT", "/v1/keys", tt_cli_path("a.plan"), NULL, &r), 400, &r,
                "a plan as keys");
    copy_prefix(tt_cli_path("s.evk"), tt_cli_path("half.evk"), 3000, -1);
    expect_code(http(port, "PUT", "/v1/keys", tt_cli_path("half.evk"), NULL, &r), 400, &r,
                "truncated keys");
    /* bit 62 of the first coefficient of the relinearization key's b_0 (every value is below
     * its prime < 2^62): frame header, key-set id, has_relin, has_galois, then the key's u32
     * max_level, u32 dnum, u8 stream and seed (format 3, serialize.c) */
    const long coef0 =
        TSR_FRAME_HEADER_SIZE + TSR_CKKS_KEY_ID_BYTES + 2 + 4 + 4 + 1 + TSR_SEED_BYTES;
    {
        FILE *kf = fopen(tt_cli_path("s.evk"), "rb");
        assert_non_null(kf);
        uint8_t head[TSR_FRAME_HEADER_SIZE + TSR_CKKS_KEY_ID_BYTES + 2];
        assert_int_equal(fread(head, 1, sizeof head, kf), sizeof head);
        fclose(kf);
        assert_int_equal(head[4], TSR_FRAME_VERSION_KSK); /* the layout above */
        assert_int_equal(head[TSR_FRAME_HEADER_SIZE + TSR_CKKS_KEY_ID_BYTES], 1); /* has_relin */
    }
    copy_prefix(tt_cli_path("s.evk"), tt_cli_path("bad.evk"), -1, coef0 + 7);
    expect_code(http(port, "PUT", "/v1/keys", tt_cli_path("bad.evk"), NULL, &r), 400, &r,
                "corrupted keys");
    expect_body(&r, "malformed");
    expect_body(&r, "not below");
    /* the server's paths are not told: neither its state directory ("state", relative to the
     * test's directory, or under an absolute one) nor /tmp (TMPDIR may lie elsewhere) */
    assert_null(strstr(r.body, "state/"));
    assert_null(strstr(r.body, "/tmp/"));
    assert_int_equal(count_files(tt_cli_path("state/keys")), 2);
    snprintf(path, sizeof path, "/v1/plans/%s/infer?keys=%s", plan_a, plan_a);
    expect_code(http(port, "POST", path, tt_cli_path("in.ct"), NULL, &r), 404, &r, "unknown keys");
    expect_body(&r, "PUT /v1/keys");
    snprintf(path, sizeof path, "/v1/plans/%s/infer?keys=%s", plan_a, kh2);
    expect_code(http(port, "POST", path, tt_cli_path("in.ct"), NULL, &r), 422, &r,
                "keys of another plan at inference");
    snprintf(path, sizeof path, "/v1/plans/%s/infer?keys=%s", plan_b, kh2);
    expect_code(http(port, "POST", path, tt_cli_path("in.ct"), NULL, &r), 422, &r,
                "inputs of another plan");
    expect_body(&r, "reading the encrypted inputs");
    expect_body(&r, "another plan");
    copy_prefix(tt_cli_path("in.ct"), tt_cli_path("bad.ct"), -1, 5000);
    snprintf(path, sizeof path, "/v1/plans/%s/infer?keys=%s", plan_a, kh);
    expect_code(http(port, "POST", path, tt_cli_path("bad.ct"), NULL, &r), 400, &r,
                "corrupted inputs");
    expect_body(&r, "reading the encrypted inputs: ");
    expect_body(&r, "the request body");
    assert_null(strstr(r.body, "state/"));
    assert_null(strstr(r.body, "/tmp/"));
    copy_prefix(tt_cli_path("in.ct"), tt_cli_path("half.ct"), 2000, -1);
    expect_code(http(port, "POST", path, tt_cli_path("half.ct"), NULL, &r), 400, &r,
                "truncated inputs");
    expect_code(http(port, "POST", path, tt_cli_path("out.ct"), NULL, &r), 422, &r,
                "outputs as inputs");
    snprintf(path, sizeof path, "/v1/plans/%s/infer?keys=%s", plan_b + 1, kh);
    expect_code(http(port, "POST", path, tt_cli_path("in.ct"), NULL, &r), 404, &r,
                "malformed plan id");
    char other[65];
    snprintf(other, sizeof other, "%s", plan_a);
    other[0] = other[0] == '0' ? '1' : '0';
    snprintf(path, sizeof path, "/v1/plans/%s/infer?keys=%s", other, kh);
    expect_code(http(port, "POST", path, tt_cli_path("in.ct"), NULL, &r), 404, &r, "unknown plan");

    /* still serving, nothing left behind, and the metrics count it all */
    expect_code(http(port, "GET", "/healthz", NULL, NULL, &r), 200, &r, "healthz after");
    assert_int_equal(count_files(tt_cli_path("state/tmp")), 0);
    expect_code(http(port, "GET", "/metrics", NULL, NULL, &r), 200, &r, "metrics");
    expect_body(&r, "tessera_requests_total{endpoint=\"infer\",code=\"2xx\"} 2\n");
    expect_body(&r, "tessera_requests_total{endpoint=\"keys\",code=\"2xx\"} 3\n");
    expect_body(&r, "tessera_infer_seconds_count 2\n");
    expect_body(&r, "tessera_jobs_in_flight 0\n");
    assert_null(strstr(r.body, "tessera_key_cache_bytes 0\n"));
    /* the memory bound: what the limits imply, beside the process's resident memory */
    uint64_t bound = tsr_serve_memory_bound(s);
    char line[128];
    snprintf(line, sizeof line, "\ntessera_memory_bound_bytes %llu\n", (unsigned long long)bound);
    expect_body(&r, line);
    assert_true(bound > o.key_cache);
    static const char peak_key[] = "\ntessera_resident_peak_bytes ";
    const char *rss = strstr(r.body, peak_key);
    assert_non_null(rss);
    assert_true(strtoull(rss + strlen(peak_key), NULL, 10) > 0);
    /* the key cache counts the loaded entries at their plans' predicted memory: two entries */
    tsr_nn_plan *pa, *pb;
    tt_ok(tsr_nn_plan_load(&pa, tt_cli_path("a.plan"), TSR_CKKS_ALLOW_INSECURE_PARAMETERS));
    tt_ok(tsr_nn_plan_load(&pb, tt_cli_path("b.plan"), TSR_CKKS_ALLOW_INSECURE_PARAMETERS));
    struct stat ka, kb;
    assert_int_equal(stat(tt_cli_path("s.evk"), &ka), 0);
    assert_int_equal(stat(tt_cli_path("s2.evk"), &kb), 0);
    /* recomputed here, not with ks_entry_bytes: an entry counts the larger of its plan's
     * predicted memory and twice its key file (seeded keys expand) */
    uint64_t pred_a = (uint64_t)(tsr_nn_plan_predicted_mib(pa) * 1048576.0);
    uint64_t pred_b = (uint64_t)(tsr_nn_plan_predicted_mib(pb) * 1048576.0);
    uint64_t file_a = 2 * (uint64_t)ka.st_size, file_b = 2 * (uint64_t)kb.st_size;
    uint64_t want = (pred_a > file_a ? pred_a : file_a) + (pred_b > file_b ? pred_b : file_b);
    assert_true(pred_a > 0 && pred_b > 0);
    snprintf(line, sizeof line, "\ntessera_key_cache_bytes %llu\n", (unsigned long long)want);
    expect_body(&r, line);
    assert_true(ks_entry_bytes(pa, (uint64_t)1 << 40) == (uint64_t)2 << 40);
    /* the bound: resident at start + key cache + (2 x jobs + 1) x the largest plan's predicted
     * memory (per job an entry beyond the cache and its ciphertexts; one upload being validated)
     * + 64 KiB per connection; the resident memory at start is in the metrics too (more than
     * nothing, at most the peak) */
    static const char start_key[] = "\ntessera_resident_start_bytes ";
    const char *rs = strstr(r.body, start_key);
    assert_non_null(rs);
    uint64_t start_rss = strtoull(rs + strlen(start_key), NULL, 10);
    uint64_t peak = strtoull(rss + strlen(peak_key), NULL, 10);
    assert_true(start_rss > 0 && start_rss <= peak);
    uint64_t largest = pred_a > pred_b ? pred_a : pred_b;
    uint64_t limits = o.key_cache + (2 * (uint64_t)o.max_jobs + 1) * largest +
                      (uint64_t)o.max_connections * (64 << 10);
    if (bound != start_rss + limits)
        fail_msg("memory bound %llu, not resident at start %llu + limits %llu",
                 (unsigned long long)bound, (unsigned long long)start_rss,
                 (unsigned long long)limits);
    tsr_nn_plan_free(pa);
    tsr_nn_plan_free(pb);
    tsr_serve_stop(s, 60);

    /* a restarted server finds the stored keys */
    s = start("state", &o);
    port = tsr_serve_port(s);
    snprintf(path, sizeof path, "/v1/plans/%s/infer?keys=%s", plan_a, kh);
    expect_code(http(port, "POST", path, tt_cli_path("in.ct"), tt_cli_path("out2.ct"), &r), 200, &r,
                "infer after a restart");
    tsr_serve_stop(s, 60);
    fclose(log);
}

static void test_limits(void **state) {
    (void)state;
    tsr_serve_opts o;
    tsr_serve_opts_default(&o);
    o.max_body = 4096;
    o.key_store = 1; /* every new upload evicts the others */
    o.key_cache = 1; /* smaller than any plan's predicted memory: a warning at start */
    FILE *log = fopen(tt_cli_path("limits.log"), "w");
    assert_non_null(log);
    o.log = log;
    tsr_server *s = start("state_small", &o);
    fflush(log);
    if (!strstr(tt_slurp(tt_cli_path("limits.log")), "warning: the key cache (0 MiB) is smaller"))
        fail_msg("no key-cache warning at start:\n%s", tt_slurp(tt_cli_path("limits.log")));
    int port = tsr_serve_port(s);
    http_res r;
    expect_code(http(port, "PUT", "/v1/keys", tt_cli_path("s.evk"), NULL, &r), 413, &r,
                "oversized keys");
    expect_body(&r, "--max-body");
    char path[512];
    snprintf(path, sizeof path, "/v1/plans/%s/infer?keys=%s", plan_a, plan_a);
    expect_code(http(port, "POST", path, tt_cli_path("in.ct"), NULL, &r), 413, &r,
                "oversized inputs");
    expect_code(http(port, "GET", "/healthz", NULL, NULL, &r), 200, &r, "healthz after");
    assert_int_equal(count_files(tt_cli_path("state_small/tmp")), 0);
    tsr_serve_stop(s, 60);
    fclose(log);

    /* the key store keeps at most key_store bytes: the older keys are evicted (never the
     * ones just uploaded), and an inference with them asks for a new upload */
    tsr_serve_opts_default(&o);
    o.key_store = 1;
    s = start("state_lru", &o);
    port = tsr_serve_port(s);
    char kh[65];
    file_hash(tt_cli_path("s.evk"), kh);
    expect_code(http(port, "PUT", "/v1/keys", tt_cli_path("s.evk"), NULL, &r), 201, &r, "keys");
    expect_code(http(port, "PUT", "/v1/keys", tt_cli_path("s2.evk"), NULL, &r), 201, &r, "keys b");
    assert_int_equal(count_files(tt_cli_path("state_lru/keys")), 1);
    snprintf(path, sizeof path, "/v1/plans/%s/infer?keys=%s", plan_a, kh);
    expect_code(http(port, "POST", path, tt_cli_path("in.ct"), NULL, &r), 404, &r, "evicted keys");
    tsr_serve_stop(s, 60);
}

static tt_gate job_gate; /* the job hook's gate (tt_gate_hook) */

/* After a test that holds jobs at the gate: a failed one leaves no server worker blocked. */
static int gate_teardown(void **state) {
    (void)state;
    tt_gate_open(&job_gate);
    return 0;
}

typedef struct infer_arg {
    int port;
    char path[512];
    const char *in, *out;
    long code;
} infer_arg;

static void *infer_thread(void *p) {
    infer_arg *a = p;
    http_res r;
    a->code = http(a->port, "POST", a->path, a->in, a->out, &r);
    return NULL;
}

static void test_queue_full(void **state) {
    (void)state;
    tt_gate_init(&job_gate, 1); /* the first job tells the test it runs and waits to be released */
    tsr_serve_opts o;
    tsr_serve_opts_default(&o);
    o.max_jobs = 1;
    o.max_queue = 0;
    o.retry_after = 7;
    o.job_hook = tt_gate_hook;
    o.job_hook_arg = &job_gate;
    tsr_server *s = start("state_q", &o);
    int port = tsr_serve_port(s);
    http_res r;
    char kh[65];
    file_hash(tt_cli_path("s.evk"), kh);
    expect_code(http(port, "PUT", "/v1/keys", tt_cli_path("s.evk"), NULL, &r), 201, &r, "keys");
    infer_arg a = { .port = port, .in = tt_cli_path("in.ct"), .out = NULL, .code = 0 };
    char out[1024];
    snprintf(out, sizeof out, "%s", tt_cli_path("out_q.ct"));
    a.out = out;
    char in[1024];
    snprintf(in, sizeof in, "%s", tt_cli_path("in.ct"));
    a.in = in;
    snprintf(a.path, sizeof a.path, "/v1/plans/%s/infer?keys=%s", plan_a, kh);
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, infer_thread, &a), 0);
    tt_gate_wait_started(&job_gate); /* the first job holds the only slot */
    expect_code(http(port, "POST", a.path, in, NULL, &r), 503, &r, "a second job");
    assert_int_equal(r.retry_after, 7);
    expect_body(&r, "busy");
    expect_code(http(port, "GET", "/metrics", NULL, NULL, &r), 200, &r, "metrics");
    expect_body(&r, "tessera_jobs_in_flight 1\n");
    expect_body(&r, "tessera_rejected_busy_total 1\n");
    expect_code(http(port, "GET", "/healthz", NULL, NULL, &r), 200, &r, "healthz while busy");
    sem_post(&job_gate.release);
    pthread_join(th, NULL);
    assert_int_equal(a.code, 200);
    /* and the slot is free again */
    o.job_hook = NULL;
    sem_post(&job_gate.release); /* the hook still runs for the next job: let it through */
    infer_arg b = a;
    assert_int_equal(pthread_create(&th, NULL, infer_thread, &b), 0);
    tt_gate_wait_started(&job_gate);
    pthread_join(th, NULL);
    assert_int_equal(b.code, 200);
    tsr_serve_stop(s, 60);
    assert_int_equal(count_files(tt_cli_path("state_q/tmp")), 0);
    tt_gate_destroy(&job_gate);
}

/* test_long_replies' in-process server and its log, for its teardown. */
static tsr_server *long_server;
static FILE *long_log;

/* The reply texts past any fixed size: the key reply listing many plans, a long escaped plan
 * file name in GET /v1/plans (the old fixed buffers cut both short). */
static void test_long_replies(void **state) {
    (void)state;
    enum { NP = 200 };
    static uint8_t ids[NP][32], matched[NP];
    uint8_t hash[32];
    static char want[NP * 70 + 256];
    size_t k = 0;
    for (int j = 0; j < 32; j++) hash[j] = (uint8_t)(255 - j);
    k += (size_t)sprintf(want + k, "{\"keys\": \"");
    for (int j = 0; j < 32; j++) k += (size_t)sprintf(want + k, "%02x", 255 - j);
    k += (size_t)sprintf(want + k, "\", \"plans\": [");
    int first = 1;
    for (int i = 0; i < NP; i++) {
        for (int j = 0; j < 32; j++) ids[i][j] = (uint8_t)(i * 7 + j);
        matched[i] = i % 7 != 3;
        if (!matched[i]) continue;
        k += (size_t)sprintf(want + k, "%s\"", first ? "" : ", ");
        for (int j = 0; j < 32; j++) k += (size_t)sprintf(want + k, "%02x", (i * 7 + j) & 0xff);
        k += (size_t)sprintf(want + k, "\"");
        first = 0;
    }
    sprintf(want + k, "]}\n");
    char *got = serve_keys_reply(hash, (const uint8_t(*)[32])ids, matched, NP);
    assert_non_null(got);
    assert_true(strlen(want) > 512 + 70 * 64); /* longer than the old fixed reply buffer */
    assert_string_equal(got, want);
    free(got);

    /* the growing text: many appends, escapes */
    serve_text t = { 0 };
    char chunk[1001];
    memset(chunk, 'x', 1000);
    chunk[1000] = '\0';
    for (int i = 0; i < 70; i++) serve_text_appendf(&t, "%s", chunk);
    serve_text_json_string(&t, "a\"b\\c\x01");
    char *txt = serve_text_take(&t);
    assert_non_null(txt);
    const char *esc_want = "\"a\\\"b\\\\c\\u0001\"";
    assert_int_equal(strlen(txt), 70000 + strlen(esc_want));
    assert_string_equal(txt + 70000, esc_want);
    free(txt);

    /* GET /v1/plans with a plan file name whose JSON form is longer than the old 600 bytes */
    char name[256], esc[1200], lp[1400];
    size_t e = 0;
    for (int i = 0; i < 200; i++) {
        name[i] = i % 2 ? '"' : '\x01';
        e += (size_t)sprintf(esc + e, "%s", i % 2 ? "\\\"" : "\\u0001");
    }
    name[200] = '\0';
    snprintf(lp, sizeof lp, "%s", tt_cli_path(name));
    assert_int_equal(symlink(tt_cli_path("b.plan"), lp), 0);
    static const char *plans[2];
    static char pa[1024], st[1024];
    snprintf(pa, sizeof pa, "%s", tt_cli_path("a.plan"));
    snprintf(st, sizeof st, "%s", tt_cli_path("state_long"));
    plans[0] = pa;
    plans[1] = lp;
    tsr_serve_opts o;
    tsr_serve_opts_default(&o);
    long_log = fopen(tt_cli_path("long.log"), "w");
    if (!long_log) fail_msg("cannot write %s", tt_cli_path("long.log"));
    o.log = long_log;
    o.plans = plans;
    o.n_plans = 2;
    o.state_dir = st;
    o.port = 0;
    o.ckks_flags = TSR_CKKS_ALLOW_INSECURE_PARAMETERS;
    tt_ok(tsr_serve_start(&o, &long_server));
    http_res r;
    expect_code(http(tsr_serve_port(long_server), "GET", "/v1/plans", NULL, NULL, &r), 200, &r,
                "plans");
    char field[1300];
    snprintf(field, sizeof field, "\"file\": \"%s\", \"input\"", esc);
    assert_true(strlen(esc) > 600);
    expect_body(&r, field);
    expect_body(&r, plan_b);
    assert_non_null(strstr(r.body, "\n]}\n"));
}

/* Whatever happened in test_long_replies: its server stopped, its log closed. */
static int long_teardown(void **state) {
    (void)state;
    if (long_server) tsr_serve_stop(long_server, 60);
    long_server = NULL;
    if (long_log) fclose(long_log);
    long_log = NULL;
    return 0;
}

/* The server process of test_cli, for its teardown. */
static int cli_serve_pid;

/* Whatever happened in test_cli: no server is left running. */
static int cli_teardown(void **state) {
    (void)state;
    if (cli_serve_pid > 0) tt_wait_child(cli_serve_pid, 0, NULL); /* kills and reaps it */
    cli_serve_pid = 0;
    return 0;
}

/* `tessera serve` as a process: --port-file, then SIGTERM stops it cleanly (exit 0). */
static void test_cli(void **state) {
    (void)state;
    tt_cli_expect(tt_cli_run("serve --plan %s --state-dir %s --jobs 0" INSECURE,
                             tt_cli_path("a.plan"), tt_cli_path("st_cli")),
                  2, "serve --jobs 0");
    tt_cli_expect(tt_cli_run("serve --state-dir %s", tt_cli_path("st_cli")), 2, "serve no plan");
    tt_cli_expect(tt_cli_run("serve --plan %s --state-dir %s --listen nowhere" INSECURE,
                             tt_cli_path("a.plan"), tt_cli_path("st_cli")),
                  2, "serve --listen without a port");
    tt_cli_expect_fail(
        tt_cli_run("serve --plan %s --state-dir %s", tt_cli_path("a.plan"), tt_cli_path("st_cli")),
        "serve a test-only plan without the flag", "security");
    int port = tt_cli_spawn_serve(tt_cli_path("a.plan"), tt_cli_path("st_cli"),
                                  tt_cli_path("serve.out"), &cli_serve_pid);
    http_res r;
    expect_code(http(port, "GET", "/healthz", NULL, NULL, &r), 200, &r, "healthz");
    assert_int_equal(kill(cli_serve_pid, SIGTERM), 0);
    int status, exited = tt_wait_child(cli_serve_pid, 300, &status);
    cli_serve_pid = 0; /* exited, or killed and reaped */
    if (!exited)
        fail_msg("the server did not exit within 300 s of SIGTERM; its log:\n%s",
                 tt_slurp(tt_cli_path("serve.out")));
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
    assert_non_null(strstr(tt_slurp(tt_cli_path("serve.out")), "stopping: drained"));
}

/* GET url over TLS trusting ca (NULL: the system's CAs); the status code, 0 if the connection or
 * the TLS handshake failed. */
static long https_get(const char *url, const char *ca, http_res *r) {
    memset(r, 0, sizeof *r);
    CURL *c = curl_easy_init();
    assert_non_null(c);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, r);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 300L);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    if (ca) curl_easy_setopt(c, CURLOPT_CAINFO, ca);
    if (curl_easy_perform(c) == CURLE_OK) curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r->code);
    curl_easy_cleanup(c);
    return r->code;
}

/* HTTPS (libmicrohttpd's GnuTLS) with a throwaway self-signed certificate made by openssl: the
 * client trusting it uploads keys and reads /healthz; a client that does not trust it and a
 * plain-HTTP client get nothing; a certificate that is not PEM is refused at start. */
static void test_tls(void **state) {
    (void)state;
    char cmd[4096], cert[1024], key[1024], url[256];
    snprintf(cert, sizeof cert, "%s", tt_cli_path("tls.crt"));
    snprintf(key, sizeof key, "%s", tt_cli_path("tls.key"));
    snprintf(cmd, sizeof cmd,
             "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 "
             "-subj /CN=127.0.0.1 -addext subjectAltName=IP:127.0.0.1 -keyout %s -out %s "
             ">%s 2>&1",
             key, cert, tt_cli_path("openssl.log"));
    if (system(cmd) != 0) fail_msg("openssl failed: %s", tt_slurp(tt_cli_path("openssl.log")));
    tsr_serve_opts o;
    tsr_serve_opts_default(&o);
    o.tls_cert = cert;
    o.tls_key = key;
    tsr_server *s = start("state_tls", &o);
    int port = tsr_serve_port(s);
    http_res r;
    snprintf(url, sizeof url, "https://127.0.0.1:%d/healthz", port);
    expect_code(https_get(url, cert, &r), 200, &r, "healthz over TLS");
    assert_string_equal(r.body, "ok\n");
    assert_int_equal(https_get(url, NULL, &r), 0); /* not a trusted certificate */
    assert_int_equal(http(port, "GET", "/healthz", NULL, NULL, &r), 0); /* not TLS */
    tsr_client_opts co;
    tsr_client_opts_default(&co);
    snprintf(url, sizeof url, "https://127.0.0.1:%d", port);
    co.server = url;
    co.ca_file = cert;
    char kh[65], want[65];
    uint8_t id[32];
    assert_int_equal(serve_parse_id(plan_a, id), 0);
    tt_ok(tsr_client_put_keys(&co, tt_cli_path("s.evk"), id, kh));
    file_hash(tt_cli_path("s.evk"), want);
    assert_string_equal(kh, want);
    tsr_serve_stop(s, 60);
    /* a key file given as the certificate: refused with a message, nothing listens */
    tsr_serve_opts_default(&o);
    o.tls_cert = key;
    o.tls_key = key;
    static const char *plans[1];
    static char pa[1024], st[1024];
    snprintf(pa, sizeof pa, "%s", tt_cli_path("a.plan"));
    snprintf(st, sizeof st, "%s", tt_cli_path("state_tls2"));
    plans[0] = pa;
    o.plans = plans;
    o.n_plans = 1;
    o.state_dir = st;
    o.ckks_flags = TSR_CKKS_ALLOW_INSECURE_PARAMETERS;
    s = NULL;
    assert_int_not_equal(tsr_serve_start(&o, &s), TSR_OK);
    assert_null(s);
    assert_true(strlen(tsr_last_error()) > 0);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_routes),
        cmocka_unit_test(test_serve),
        cmocka_unit_test(test_limits),
        cmocka_unit_test_teardown(test_queue_full, gate_teardown),
        cmocka_unit_test_teardown(test_long_replies, long_teardown),
        cmocka_unit_test_teardown(test_cli, cli_teardown),
        cmocka_unit_test(test_tls),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
