/*
 * tests/test_serve_faults.c - `tessera serve` against misbehaving clients on
 * 127.0.0.1, each followed by a check that the server still answers and
 * left no file: a client that disconnects mid-upload, one that sends a
 * truncated body and half-closes, one that disconnects before reading its
 * answer, a slowloris client (headers never finished: closed by the idle
 * timeout), and a graceful stop while a job runs, both in process
 * (tsr_serve_stop) and through the real signal path of `tessera serve`
 * (SIGTERM to the command: it stops listening, the job finishes, its answer
 * arrives and decrypts, the process exits 0). Synchronisation by the
 * server's own counters (/metrics) and the job hook, never by sleeping a
 * fixed time; every wait has a generous bound against a hung test.
 */
#include "clitest.h"

#include "serve/serve_internal.h"
#include "tessera/serve.h"
#include "train/model.h"
#include "train/model_onnx.h"

#include <arpa/inet.h>
#include <curl/curl.h>
#include <dirent.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <semaphore.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#define INSECURE " --insecure-parameters-for-testing"

static char plan_a[65], keys_a[65], in_ct[1024], state_dir[1024];

static int setup(void **state) {
    if (tt_cli_setup(state) != 0) return -1;
    tsr_act_spec as;
    tt_ok(tsr_act_parse("poly2", &as));
    tsr_model *m;
    tt_ok(tsr_model_build(&m, "cryptonets", &as, 4));
    tt_ok(tsr_model_save_onnx(m, NULL, tt_cli_path("m.onnx")));
    tsr_model_free(m);
    char ap[1024];
    snprintf(ap, sizeof ap, "%s", tt_cli_path("a.plan")); /* tt_cli_path's buffers rotate */
    tt_cli_compile_keygen(tt_cli_path("m.onnx"), "--batch 2 --log-n 11 --no-measure", ap,
                          tt_cli_path("c.sk"), tt_cli_path("s.evk"));
    tt_write_inputs_csv(tt_cli_path("in.csv"), 2, 784, 7);
    tt_cli_expect(tt_cli_run("encrypt %s %s --in %s --out %s" INSECURE, tt_cli_path("a.plan"),
                             tt_cli_path("c.sk"), tt_cli_path("in.csv"), tt_cli_path("in.ct")),
                  0, "encrypt");
    snprintf(in_ct, sizeof in_ct, "%s", tt_cli_path("in.ct"));
    snprintf(state_dir, sizeof state_dir, "%s", tt_cli_path("state"));
    tsr_nn_plan *p;
    tt_ok(tsr_nn_plan_load(&p, tt_cli_path("a.plan"), TSR_CKKS_ALLOW_INSECURE_PARAMETERS));
    uint8_t id[32];
    tsr_nn_plan_id(p, id);
    serve_format_id(id, plan_a);
    tsr_nn_plan_free(p);
    tt_ok(tsr_client_file_hash(tt_cli_path("s.evk"), keys_a));
    return 0;
}

static tt_gate job_gate; /* the job hook's gate (tt_gate_hook) */

/* After a test that holds jobs at the gate: a failed one leaves no server worker blocked. */
static int gate_teardown(void **state) {
    (void)state;
    tt_gate_open(&job_gate);
    return 0;
}

/* A server on an ephemeral port; idle_timeout 0 keeps the default (long enough that a loaded
 * machine never trips it), the slowloris case alone asks for 1 second. */
static tsr_server *start(int idle_timeout) {
    static const char *plans[1];
    static char pa[1024];
    snprintf(pa, sizeof pa, "%s", tt_cli_path("a.plan"));
    plans[0] = pa;
    tsr_serve_opts o;
    tsr_serve_opts_default(&o);
    o.plans = plans;
    o.n_plans = 1;
    o.state_dir = state_dir;
    o.port = 0;
    o.ckks_flags = TSR_CKKS_ALLOW_INSECURE_PARAMETERS;
    if (idle_timeout > 0) o.client_timeout = idle_timeout;
    o.job_hook = tt_gate_hook;
    o.job_hook_arg = &job_gate;
    tsr_server *s = NULL;
    tt_ok(tsr_serve_start(&o, &s));
    return s;
}

/* A connected socket to the server with a 5-minute receive bound. */
static int dial(int port) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    struct sockaddr_in sa;
    memset(&sa, 0, sizeof sa);
    sa.sin_family = AF_INET;
    sa.sin_port = htons((uint16_t)port);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof sa), 0);
    struct timeval tv = { 300, 0 };
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    return fd;
}

static void send_all(int fd, const void *buf, size_t n) {
    const char *p = buf;
    while (n > 0) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
        assert_true(w > 0);
        p += w;
        n -= (size_t)w;
    }
}

static size_t collect(char *p, size_t sz, size_t nm, void *arg) {
    char *buf = arg;
    size_t have = strlen(buf), n = sz * nm;
    size_t k = n < 32767 - have ? n : 32767 - have;
    memcpy(buf + have, p, k);
    buf[have + k] = '\0';
    return n;
}

/* GET path: the status (0: no connection); the body in a static buffer. */
static long get(int port, const char *path, const char **body) {
    static char buf[32768];
    buf[0] = '\0';
    char url[256];
    snprintf(url, sizeof url, "http://127.0.0.1:%d%s", port, path);
    CURL *c = curl_easy_init();
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, collect);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, buf);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 300L);
    long code = 0;
    if (curl_easy_perform(c) == CURLE_OK) curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &code);
    curl_easy_cleanup(c);
    if (body) *body = buf;
    return code;
}

/* The value of a metrics line (-1 if absent). */
static long metric(int port, const char *line) {
    const char *b;
    if (get(port, "/metrics", &b) != 200) return -1;
    const char *v = strstr(b, line);
    return v ? atol(v + strlen(line)) : -1;
}

/* Wait (at most 5 minutes) until a counter reaches want. */
static void wait_metric(int port, const char *line, long want) {
    for (int i = 0; i < 6000 && metric(port, line) < want; i++) usleep(50000);
    if (metric(port, line) < want) fail_msg("%s never reached %ld", line, want);
}

/* Files left in a server's state directory's tmp/ (-1: no such directory). */
static int tmp_files_in(const char *state) {
    char d[1100];
    snprintf(d, sizeof d, "%s/tmp", state);
    DIR *dp = opendir(d);
    if (!dp) return -1;
    int n = 0;
    struct dirent *de;
    while ((de = readdir(dp)) != NULL) n += de->d_name[0] != '.';
    closedir(dp);
    return n;
}

static int tmp_files(void) {
    return tmp_files_in(state_dir);
}

static void upload_keys(int port) {
    CURL *c = curl_easy_init();
    char url[256], buf[32768] = "";
    snprintf(url, sizeof url, "http://127.0.0.1:%d/v1/keys", port);
    FILE *fp = fopen(tt_cli_path("s.evk"), "rb");
    struct stat sb;
    fstat(fileno(fp), &sb);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_UPLOAD, 1L);
    curl_easy_setopt(c, CURLOPT_READDATA, fp);
    curl_easy_setopt(c, CURLOPT_INFILESIZE_LARGE, (curl_off_t)sb.st_size);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, collect);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, buf);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    long code = 0;
    if (curl_easy_perform(c) == CURLE_OK) curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &code);
    curl_easy_cleanup(c);
    fclose(fp);
    if (code != 201 && code != 200) fail_msg("key upload: %ld %s", code, buf);
}

#define ABORTED_INFER "tessera_requests_total{endpoint=\"infer\",code=\"aborted\"} "
#define ABORTED_KEYS  "tessera_requests_total{endpoint=\"keys\",code=\"aborted\"} "

static void test_disconnects(void **state) {
    (void)state;
    tsr_server *s = start(0);
    int port = tsr_serve_port(s);
    upload_keys(port);
    char head[512];
    /* 1. keys: headers and part of the body, then the client goes away */
    int fd = dial(port);
    snprintf(head, sizeof head,
             "PUT /v1/keys HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n");
    send_all(fd, head, strlen(head));
    char junk[3000];
    memset(junk, 'x', sizeof junk);
    memcpy(junk, "TSR\x1a", 4);
    junk[6] = 8; /* kind: evaluation keys */
    junk[7] = 0;
    memset(junk + 8, 0, 4);
    send_all(fd, junk, sizeof junk);
    close(fd);
    wait_metric(port, ABORTED_KEYS, 1);
    assert_int_equal(tmp_files(), 0);
    /* 2. an inference body cut short, the write side closed */
    FILE *fp = fopen(in_ct, "rb");
    fseek(fp, 0, SEEK_END);
    long n = ftell(fp);
    rewind(fp);
    char *ct = malloc((size_t)n);
    assert_int_equal(fread(ct, 1, (size_t)n, fp), (size_t)n);
    fclose(fp);
    fd = dial(port);
    snprintf(head, sizeof head,
             "POST /v1/plans/%s/infer?keys=%s HTTP/1.1\r\nHost: x\r\nContent-Length: %ld\r\n\r\n",
             plan_a, keys_a, n);
    send_all(fd, head, strlen(head));
    send_all(fd, ct, (size_t)n / 2);
    shutdown(fd, SHUT_WR);
    char rb[256];
    while (recv(fd, rb, sizeof rb, 0) > 0) {
    } /* the server closes (or answers): never a job */
    close(fd);
    wait_metric(port, ABORTED_INFER, 1);
    assert_int_equal(tmp_files(), 0);
    assert_int_equal(metric(port, "tessera_infer_seconds_count "), 0);
    /* 3. a whole body, then the client leaves before reading the answer */
    fd = dial(port);
    send_all(fd, head, strlen(head));
    send_all(fd, ct, (size_t)n);
    close(fd);
    wait_metric(port, "tessera_infer_seconds_count ", 1); /* the job ran (its answer may sit in
                                                             the socket's buffer: not counted) */
    assert_int_equal(tmp_files(), 0);
    assert_int_equal(metric(port, "tessera_jobs_in_flight "), 0);
    assert_int_equal(metric(port, "tessera_jobs_queued "), 0);
    /* 4. slowloris, on a second server with a 1-second idle timeout (only this connection and
     * one short request meet it): headers never finished; the idle timeout closes it */
    tsr_server *s1 = start(1);
    int port1 = tsr_serve_port(s1);
    fd = dial(port1);
    const char *slow = "GET /healthz HTTP/1.1\r\nHost: x\r\n";
    send_all(fd, slow, strlen(slow));
    assert_int_equal(get(port1, "/healthz", NULL), 200); /* others are served meanwhile */
    ssize_t got = recv(fd, rb, sizeof rb, 0);
    assert_true(got <= 0); /* closed by the server, without an answer */
    close(fd);
    assert_int_equal(get(port1, "/healthz", NULL), 200);
    tsr_serve_stop(s1, 60);
    /* still serving */
    const char *body;
    assert_int_equal(get(port, "/healthz", &body), 200);
    assert_string_equal(body, "ok\n");
    free(ct);
    tsr_serve_stop(s, 60);
}

typedef struct infer_job {
    int port;
    long code;
    char out[1024];
} infer_job;

static void *infer_thread(void *arg) {
    infer_job *j = arg;
    tsr_client_opts o;
    tsr_client_opts_default(&o);
    char url[64];
    snprintf(url, sizeof url, "http://127.0.0.1:%d", j->port);
    o.server = url;
    uint8_t id[32];
    serve_parse_id(plan_a, id);
    j->code = tsr_client_infer(&o, id, keys_a, in_ct, j->out, NULL) == TSR_OK ? 200 : 0;
    return NULL;
}

/* The answer in `out` decrypts to the plaintext prediction of every input. */
static void expect_plaintext_agreement(const char *out, const char *csv, const char *what) {
    tt_cli_expect(tt_cli_run("decrypt %s %s --in %s --out %s --compare %s" INSECURE,
                             tt_cli_path("a.plan"), tt_cli_path("c.sk"), out, tt_cli_path(csv),
                             tt_cli_path("in.csv")),
                  0, what);
    if (!strstr(tt_cli_output(), "agreement with plaintext inference: 100.00%"))
        fail_msg("%s", tt_cli_output());
}

static void *stop_thread(void *arg) {
    tsr_serve_stop(arg, 300);
    return NULL;
}

static void test_drain(void **state) {
    (void)state;
    tt_gate_init(&job_gate, 0);
    tsr_server *s = start(0);
    int port = tsr_serve_port(s);
    upload_keys(port);
    infer_job j = { .port = port, .code = 0, .out = "" };
    snprintf(j.out, sizeof j.out, "%s", tt_cli_path("drained.ct"));
    __atomic_store_n(&job_gate.hold, 1, __ATOMIC_SEQ_CST);
    pthread_t tj, ts;
    assert_int_equal(pthread_create(&tj, NULL, infer_thread, &j), 0);
    tt_gate_wait_started(&job_gate); /* the job runs */
    assert_int_equal(pthread_create(&ts, NULL, stop_thread, s), 0);
    /* the server stops listening (new connections fail) but the job goes on */
    for (int i = 0; i < 6000 && get(port, "/healthz", NULL) != 0; i++) usleep(50000);
    assert_int_equal(get(port, "/healthz", NULL), 0);
    sem_post(&job_gate.release);
    pthread_join(tj, NULL);
    pthread_join(ts, NULL);
    __atomic_store_n(&job_gate.hold, 0, __ATOMIC_SEQ_CST);
    assert_int_equal(j.code, 200);
    expect_plaintext_agreement(j.out, "p.csv", "decrypt the drained job's answer");
    assert_int_equal(tmp_files(), 0);
    tt_gate_destroy(&job_gate);
}

/* Wait (at most 5 minutes) until a file exists. */
static void wait_file(const char *path) {
    for (int i = 0; i < 6000 && access(path, F_OK) != 0; i++) usleep(50000);
    if (access(path, F_OK) != 0) fail_msg("%s never appeared", path);
}

/* The `tessera serve` process of test_sigterm_drain and its client thread, for the teardown. */
static int serve_pid;
static pthread_t serve_client;
static int serve_client_running;

/* Whatever happened in the test: no server is left running, no client thread unjoined. */
static int sigterm_teardown(void **state) {
    (void)state;
    if (serve_pid > 0) {
        tt_wait_child(serve_pid, 0, NULL); /* kills and reaps it */
        serve_pid = 0;
    }
    if (serve_client_running) { /* its connection is gone with the server */
        pthread_join(serve_client, NULL);
        serve_client_running = 0;
    }
    return 0;
}

/* `tessera serve` as a process, SIGTERM while a job runs: the job is held by the command's test
 * gate (TSR_SERVE_TEST_GATE) until the server has stopped listening, then released: its answer
 * arrives and decrypts to the plaintext prediction, and the process exits 0 after draining. */
static void test_sigterm_drain(void **state) {
    (void)state;
    char st[1024], gate[1024], started_f[1100], go_f[1100];
    snprintf(st, sizeof st, "%s", tt_cli_path("state_sig"));
    snprintf(gate, sizeof gate, "%s", tt_cli_path("gate"));
    assert_int_equal(mkdir(gate, 0700), 0);
    snprintf(started_f, sizeof started_f, "%s/started", gate);
    snprintf(go_f, sizeof go_f, "%s/go", gate);
    setenv("TSR_SERVE_TEST_GATE", gate, 1);
    /* serve_pid is set before the spawn waits for the port: the teardown ends it either way */
    int port = tt_cli_spawn_serve(tt_cli_path("a.plan"), st, tt_cli_path("sig.out"), &serve_pid);
    int pid = serve_pid;
    unsetenv("TSR_SERVE_TEST_GATE");
    upload_keys(port);
    static infer_job j;
    j = (infer_job){ .port = port, .code = 0, .out = "" };
    snprintf(j.out, sizeof j.out, "%s", tt_cli_path("sig.ct"));
    assert_int_equal(pthread_create(&serve_client, NULL, infer_thread, &j), 0);
    serve_client_running = 1;
    wait_file(started_f); /* the job holds its running slot */
    assert_int_equal(kill(pid, SIGTERM), 0);
    /* the server stops listening (new connections fail) while the job waits */
    for (int i = 0; i < 6000 && get(port, "/healthz", NULL) != 0; i++) usleep(50000);
    assert_int_equal(get(port, "/healthz", NULL), 0);
    FILE *fp = fopen(go_f, "w");
    assert_non_null(fp);
    fclose(fp);
    pthread_join(serve_client, NULL);
    serve_client_running = 0;
    int status;
    int exited = tt_wait_child(pid, 300, &status);
    serve_pid = 0; /* exited, or killed and reaped */
    char *log = tt_slurp(tt_cli_path("sig.out"));
    if (!exited) fail_msg("the server did not exit within 300 s of SIGTERM; its log:\n%s", log);
    if (j.code != 200) fail_msg("the job's answer did not arrive; server log:\n%s", log);
    if (!strstr(log, "WARNING: TSR_SERVE_TEST_GATE is set"))
        fail_msg("the test gate ran without its warning; server log:\n%s", log);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
    if (!strstr(log, "SIGTERM: draining") || !strstr(log, "stopping: drained"))
        fail_msg("server log:\n%s", log);
    expect_plaintext_agreement(j.out, "sig.csv",
                               "decrypt the answer of the job SIGTERM "
                               "interrupted");
    assert_int_equal(tmp_files_in(st), 0);
}

/*
 * tt_wait_child on a live process that is not our child (an orphaned grandchild) returns 0 at
 * once and sends it no signal: it still answers afterwards. (It used to SIGKILL that pid.)
 */
static void test_wait_child_not_ours(void **state) {
    (void)state;
    int cmd[2], ans[2], gp[2];
    assert_int_equal(pipe(cmd), 0);
    assert_int_equal(pipe(ans), 0);
    assert_int_equal(pipe(gp), 0);
    pid_t a = fork();
    assert_true(a >= 0);
    if (a == 0) { /* the child starts the grandchild, reports its pid and exits */
        pid_t b = fork();
        if (b == 0) { /* the grandchild: on a byte from cmd, answer 'y' and exit */
            char c;
            close(cmd[1]); /* so that the test closing its end ends the read */
            close(ans[0]);
            close(gp[0]);
            close(gp[1]);
            if (read(cmd[0], &c, 1) == 1 && write(ans[1], "y", 1) != 1) _exit(1);
            _exit(0);
        }
        _exit(b > 0 && write(gp[1], &b, sizeof b) == (ssize_t)sizeof b ? 0 : 1);
    }
    close(cmd[0]);
    close(ans[1]);
    close(gp[1]);
    int st = 0;
    assert_int_equal(waitpid(a, &st, 0), a);
    pid_t b = 0;
    ssize_t got = read(gp[0], &b, sizeof b);
    close(gp[0]);
    assert_int_equal(got, (ssize_t)sizeof b);
    assert_true(b > 0);
    assert_int_equal(tt_wait_child((int)b, 300, &st), 0);
    void (*old)(int) = signal(SIGPIPE, SIG_IGN); /* a killed grandchild: EPIPE, not a signal */
    char r = 0;
    ssize_t w = write(cmd[1], "x", 1), n = read(ans[0], &r, 1);
    signal(SIGPIPE, old);
    close(cmd[1]);
    close(ans[0]);
    assert_int_equal(w, 1);
    assert_int_equal(n, 1); /* 0 (end of file): the grandchild was killed */
    assert_int_equal(r, 'y');
}

int main(void) {
    curl_global_init(CURL_GLOBAL_DEFAULT);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_wait_child_not_ours),
        cmocka_unit_test(test_disconnects),
        cmocka_unit_test_teardown(test_drain, gate_teardown),
        cmocka_unit_test_teardown(test_sigterm_drain, sigterm_teardown),
    };
    int rc = cmocka_run_group_tests(tests, setup, tt_cli_teardown);
    curl_global_cleanup();
    return rc;
}
