/*
 * tests/test_serve_client.c - `tessera client` against an in-process
 * `tessera serve` (include/tessera/serve.h) on 127.0.0.1: encrypt, upload
 * the keys only when the server lacks them, infer, decrypt to the plaintext
 * prediction; a busy server's 503 retried until it answers (the queue is
 * held full by the job hook, and released once the server has counted a
 * refusal: no timing involved); refusals reported with the server's
 * message and exit code 2; a reconstruction (no class vector) compared by
 * its largest error, never by an argmax.
 */
#include "clitest.h"

#include "tessera/ckks.h"
#include "tessera/serve.h"
#include "train/model.h"
#include "train/model_onnx.h"

#include <curl/curl.h>
#include <pthread.h>
#include <semaphore.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define INSECURE " --insecure-parameters-for-testing"

/* The model: 1x12x12 inputs, dense 16, square-like poly2, dense 10 (one relinearization and
 * rotations per layer: the whole protocol at a fraction of a convolutional network's cost). */
#define IN_H   12
#define INPUTS (IN_H * IN_H)

static int setup(void **state) {
    if (tt_cli_setup(state) != 0) return -1;
    tsr_act_spec as;
    tt_ok(tsr_act_parse("poly2", &as));
    tsr_model *m;
    int t = 0;
    tt_ok(tsr_model_create(&m, 1, IN_H, IN_H));
    tt_ok(tsr_model_add_flatten(m, &t, "flatten", t));
    tt_ok(tsr_model_add_dense(m, &t, "fc1", t, 16, 1));
    tt_ok(tsr_model_add_act(m, &t, "act", t, &as));
    tt_ok(tsr_model_add_dense(m, &t, "fc2", t, 10, 1));
    tt_ok(tsr_model_finish(m, t));
    tt_ok(tsr_model_init(m, 3));
    tt_ok(tsr_model_save_onnx(m, NULL, tt_cli_path("m.onnx")));
    tsr_model_free(m);
    char ap[1024];
    snprintf(ap, sizeof ap, "%s", tt_cli_path("a.plan")); /* tt_cli_path's buffers rotate */
    tt_cli_compile_keygen(tt_cli_path("m.onnx"), "--batch 3 --log-n 11 --no-measure", ap,
                          tt_cli_path("c.sk"), tt_cli_path("s.evk"));
    tt_cli_expect(tt_cli_run("keygen %s --out-secret %s --out-eval %s" INSECURE,
                             tt_cli_path("a.plan"), tt_cli_path("c2.sk"), tt_cli_path("s2.evk")),
                  0, "a second keygen");
    tt_write_inputs_csv(tt_cli_path("in.csv"), 3, INPUTS, 13);
    return 0;
}

static tt_gate job_gate; /* the job hook's gate (tt_gate_hook) */

/* After a test that holds jobs at the gate: a failed one leaves no server worker blocked. */
static int gate_teardown(void **state) {
    (void)state;
    tt_gate_open(&job_gate);
    return 0;
}

static tsr_server *start_plan(const char *name, const char *plan, tsr_serve_opts *o) {
    static const char *plans[1];
    static char pa[1024], st[1024];
    snprintf(pa, sizeof pa, "%s", tt_cli_path(plan));
    snprintf(st, sizeof st, "%s", tt_cli_path(name));
    plans[0] = pa;
    o->plans = plans;
    o->n_plans = 1;
    o->state_dir = st;
    o->port = 0;
    o->ckks_flags = TSR_CKKS_ALLOW_INSECURE_PARAMETERS;
    tsr_server *s = NULL;
    tt_ok(tsr_serve_start(o, &s));
    return s;
}

static tsr_server *start(const char *name, tsr_serve_opts *o) {
    return start_plan(name, "a.plan", o);
}

static void test_client(void **state) {
    (void)state;
    tsr_serve_opts o;
    tsr_serve_opts_default(&o);
    tsr_server *s = start("state", &o);
    char url[64];
    snprintf(url, sizeof url, "http://127.0.0.1:%d", tsr_serve_port(s));
    tt_cli_expect(tt_cli_run("client --server %s %s %s %s --in %s --out %s --compare %s" INSECURE,
                             url, tt_cli_path("a.plan"), tt_cli_path("c.sk"), tt_cli_path("s.evk"),
                             tt_cli_path("in.csv"), tt_cli_path("p.csv"), tt_cli_path("in.csv")),
                  0, "client");
    const char *log = tt_cli_output();
    if (!strstr(log, "keys uploaded") ||
        !strstr(log, "agreement with plaintext inference: 100.00% of 3"))
        fail_msg("client output:\n%s", log);
    char *csv = tt_slurp(tt_cli_path("p.csv"));
    assert_non_null(csv);
    int lines = 0;
    for (char *c = csv; *c; c++) lines += *c == '\n';
    assert_int_equal(lines, 4);
    /* the second time the keys are there already */
    tt_cli_expect(tt_cli_run("client --server %s %s %s %s --in %s --count 2 --out %s --force "
                             "--compare %s" INSECURE,
                             url, tt_cli_path("a.plan"), tt_cli_path("c.sk"), tt_cli_path("s.evk"),
                             tt_cli_path("in.csv"), tt_cli_path("p.csv"), tt_cli_path("in.csv")),
                  0, "client again");
    log = tt_cli_output();
    if (!strstr(log, "keys already there") ||
        !strstr(log, "agreement with plaintext inference: 100.00% of 2"))
        fail_msg("client output:\n%s", log);
    /* refusals: the server's message, exit 2 */
    tt_cli_expect_fail(tt_cli_run("client --server %s %s %s %s --in %s --out %s" INSECURE, url,
                                  tt_cli_path("a.plan"), tt_cli_path("c.sk"), tt_cli_path("s2.evk"),
                                  tt_cli_path("in.csv"), tt_cli_path("x.csv")),
                       "client with another key set's evaluation keys", "another key set");
    tt_cli_expect(tt_cli_run("client --server %s %s %s %s --in %s --out %s" INSECURE, url,
                             tt_cli_path("a.plan"), tt_cli_path("c.sk"), tt_cli_path("c.sk"),
                             tt_cli_path("in.csv"), tt_cli_path("x.csv")),
                  2, "client uploading its secret key");
    if (!strstr(tt_cli_output(), "refusing to upload a secret key"))
        fail_msg("%s", tt_cli_output());
    tt_cli_expect(tt_cli_run("client --server http://127.0.0.1:1 %s %s %s --in %s --out %s "
                             "--retries 0" INSECURE,
                             tt_cli_path("a.plan"), tt_cli_path("c.sk"), tt_cli_path("s.evk"),
                             tt_cli_path("in.csv"), tt_cli_path("x.csv")),
                  1, "client without a server");
    tt_cli_expect(tt_cli_run("client --server ftp://x %s %s %s --in %s --out %s" INSECURE,
                             tt_cli_path("a.plan"), tt_cli_path("c.sk"), tt_cli_path("s.evk"),
                             tt_cli_path("in.csv"), tt_cli_path("x.csv")),
                  2, "client --server ftp://");
    tt_cli_expect(tt_cli_run("client %s %s %s --in %s --out %s" INSECURE, tt_cli_path("a.plan"),
                             tt_cli_path("c.sk"), tt_cli_path("s.evk"), tt_cli_path("in.csv"),
                             tt_cli_path("x.csv")),
                  2, "client without --server");
    tsr_serve_stop(s, 60);
}

/* A model whose output is not a class vector (the torch autoencoder of tests/data/torch, 784 ->
 * 784): --compare reports the largest error against plaintext inference, not an argmax
 * "agreement"; --labels is refused (no accuracy of a reconstruction), as decrypt does. */
static void test_client_reconstruction(void **state) {
    (void)state;
    char ap[1024];
    snprintf(ap, sizeof ap, "%s", tt_cli_path("ae.plan"));
    tt_cli_compile_keygen(tt_source_path("tests/data/torch/autoencoder.onnx"),
                          "--batch 2 --log-n 11 --packing tiled --no-measure", ap,
                          tt_cli_path("ae.sk"), tt_cli_path("ae.evk"));
    tt_write_inputs_csv(tt_cli_path("ae_in.csv"), 2, 784, 7);
    tt_write_inputs_csv(tt_cli_path("labels.csv"), 2, 1, 3);
    tsr_serve_opts o;
    tsr_serve_opts_default(&o);
    tsr_server *s = start_plan("state_ae", "ae.plan", &o);
    char url[64];
    snprintf(url, sizeof url, "http://127.0.0.1:%d", tsr_serve_port(s));
    tt_cli_expect(tt_cli_run("client --server %s %s %s %s --in %s --out %s --compare %s" INSECURE,
                             url, tt_cli_path("ae.plan"), tt_cli_path("ae.sk"),
                             tt_cli_path("ae.evk"), tt_cli_path("ae_in.csv"), tt_cli_path("ae.csv"),
                             tt_cli_path("ae_in.csv")),
                  0, "client on the autoencoder");
    const char *log = tt_cli_output(), *line;
    line = strstr(log, "largest error against plaintext inference: ");
    if (!line || strstr(log, "agreement") || strstr(log, "logit"))
        fail_msg("client output:\n%s", log);
    double err = -1;
    int n = 0, k = 0;
    if (sscanf(line, "largest error against plaintext inference: %lf (%d samples x %d values)",
               &err, &n, &k) != 3 ||
        n != 2 || k != 784 || !(err >= 0 && err < 1e-3))
        fail_msg("client output:\n%s", log);
    tt_cli_expect_fail(tt_cli_run("client --server %s %s %s %s --in %s --out %s --force --labels "
                                  "%s" INSECURE,
                                  url, tt_cli_path("ae.plan"), tt_cli_path("ae.sk"),
                                  tt_cli_path("ae.evk"), tt_cli_path("ae_in.csv"),
                                  tt_cli_path("ae.csv"), tt_cli_path("labels.csv")),
                       "client --labels on the autoencoder", "not a class vector");
    tsr_serve_stop(s, 60);
}

/* A client run on its own thread, with its own log (tt_cli_run shares one). */
typedef struct job {
    char cmd[8192], log[1024];
    int rc;
} job;

static void job_init(job *j, int port, const char *name) {
    const char *b = getenv("TSR_BINARY_DIR");
    snprintf(j->log, sizeof j->log, "%s", tt_cli_path(name));
    snprintf(j->cmd, sizeof j->cmd,
             "TSR_PROGRESS=0 %s/bin/tessera client --server http://127.0.0.1:%d %s %s %s --in %s "
             "--out %s.csv --force --retries 1000 --compare %s" INSECURE " >%s 2>&1",
             b ? b : "build", port, tt_cli_path("a.plan"), tt_cli_path("c.sk"),
             tt_cli_path("s.evk"), tt_cli_path("in.csv"), j->log, tt_cli_path("in.csv"), j->log);
}

static void *client_thread(void *arg) {
    job *j = arg;
    int rc = system(j->cmd);
    j->rc = WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
    return NULL;
}

static size_t collect(char *p, size_t sz, size_t nm, void *arg) {
    char *buf = arg;
    size_t have = strlen(buf), n = sz * nm;
    size_t k = n < 16383 - have ? n : 16383 - have;
    memcpy(buf + have, p, k);
    buf[have + k] = '\0';
    return n;
}

/* The count of 503 refusals the server reports in its metrics. */
static long busy_count(int port) {
    static char buf[16384];
    buf[0] = '\0';
    char url[128];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/metrics", port);
    CURL *c = curl_easy_init();
    assert_non_null(c);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, collect);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, buf);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    CURLcode cc = curl_easy_perform(c);
    curl_easy_cleanup(c);
    static const char key[] = "\ntessera_rejected_busy_total ";
    const char *v = strstr(buf, key);
    return cc == CURLE_OK && v ? atol(v + strlen(key)) : -1;
}

static void test_retry(void **state) {
    (void)state;
    tt_gate_init(&job_gate, 0);
    tsr_serve_opts o;
    tsr_serve_opts_default(&o);
    o.max_jobs = 1;
    o.max_queue = 0;
    o.retry_after = 1;
    o.job_hook = tt_gate_hook;
    o.job_hook_arg = &job_gate;
    tsr_server *s = start("state_retry", &o);
    int port = tsr_serve_port(s);
    job a, b;
    job_init(&a, port, "a.log");
    job_init(&b, port, "b.log");
    /* a first client uploads the keys and holds the only slot */
    __atomic_store_n(&job_gate.hold, 1, __ATOMIC_SEQ_CST);
    pthread_t ta, tb;
    assert_int_equal(pthread_create(&ta, NULL, client_thread, &a), 0);
    tt_gate_wait_started(&job_gate);
    __atomic_store_n(&job_gate.hold, 0, __ATOMIC_SEQ_CST);
    /* a second one is refused with 503 until the slot is free (the server counts it) */
    assert_int_equal(pthread_create(&tb, NULL, client_thread, &b), 0);
    for (int i = 0; i < 6000 && busy_count(port) < 1; i++) usleep(50000); /* at most 5 min */
    assert_true(busy_count(port) >= 1);
    sem_post(&job_gate.release);
    pthread_join(ta, NULL);
    pthread_join(tb, NULL);
    char *out = tt_slurp(a.log);
    if (a.rc != 0) fail_msg("first client: exit %d\n%s", a.rc, out);
    out = tt_slurp(b.log);
    if (b.rc != 0) fail_msg("second client: exit %d\n%s", b.rc, out);
    if (!strstr(out, "busy (503)") || !strstr(out, "agreement with plaintext inference: 100.00%"))
        fail_msg("second client:\n%s", out);
    tsr_serve_stop(s, 60);
    tt_gate_destroy(&job_gate);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_client),
        cmocka_unit_test(test_client_reconstruction),
        cmocka_unit_test_teardown(test_retry, gate_teardown),
    };
    return cmocka_run_group_tests(tests, setup, tt_cli_teardown);
}
