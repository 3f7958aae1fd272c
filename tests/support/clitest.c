/*
 * tests/support/clitest.c - see clitest.h.
 */
#include "clitest.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

/* dir: the test's directory (absolute); cwd0: the working directory before tt_cli_setup. The
 * commands run in dir and name their files relative to it (tt_cli_path): a TMPDIR with a space
 * or another character the shell splits on never reaches a command line. */
static char dir[512], cwd0[4096], exe[3200], bin[3300];
static const char log_path[] = "log.txt";

int tt_cli_setup(void **state) {
    (void)state;
    const char *b = getenv("TSR_BINARY_DIR");
    snprintf(exe, sizeof exe, "%.3000s/bin/tessera", b ? b : "build");
    if (exe[0] != '/') { /* relative to where the test started */
        if (!getcwd(cwd0, sizeof cwd0)) return -1;
        snprintf(exe, sizeof exe, "%.2048s/%.1024s/bin/tessera", cwd0, b ? b : "build");
    }
    if (strchr(exe, '\'')) return -1; /* not quotable below */
    snprintf(bin, sizeof bin, "TSR_PROGRESS=0 '%s'", exe);
    snprintf(dir, sizeof dir, "%s", tt_temp_path(".d"));
    if (strchr(dir, '\'')) return -1; /* tt_cli_teardown quotes it */
    if (mkdir(dir, 0700) != 0) return -1;
    if (!getcwd(cwd0, sizeof cwd0) || chdir(dir) != 0) return -1;
    /* The commands run with a home of their own: no test reads or writes the real $HOME. */
    char home[600];
    snprintf(home, sizeof home, "%s/home", dir);
    if (mkdir(home, 0700) != 0) return -1;
    setenv("HOME", home, 1);
    unsetenv("XDG_CACHE_HOME");
    unsetenv("XDG_CONFIG_HOME");
    return 0;
}

int tt_cli_teardown(void **state) {
    (void)state;
    if (chdir(cwd0) != 0) return -1;
    char cmd[1200];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    return system(cmd) == 0 ? 0 : -1;
}

const char *tt_cli_path(const char *name) {
    static char buf[8][1024];
    static int k;
    k = (k + 1) % 8;
    snprintf(buf[k], sizeof buf[k], "%s", name[0] ? name : "./");
    return buf[k];
}

static int run(const char *prefix, const char *fmt, va_list ap) {
    char args[4096], cmd[12288];
    vsnprintf(args, sizeof args, fmt, ap);
    snprintf(cmd, sizeof cmd, "%s%s%s %s >%s 2>&1", prefix ? prefix : "", prefix ? "; " : "", bin,
             args, log_path);
    int rc = system(cmd);
    if (rc == -1 || !WIFEXITED(rc)) fail_msg("could not run: %s", cmd);
    return WEXITSTATUS(rc);
}

int tt_cli_run(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int rc = run(NULL, fmt, ap);
    va_end(ap);
    return rc;
}

int tt_cli_run_after(const char *prefix, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int rc = run(prefix, fmt, ap);
    va_end(ap);
    return rc;
}

char *tt_slurp(const char *path) {
    static char buf[2][1 << 16];
    static int k;
    k ^= 1;
    FILE *fp = fopen(path, "rb");
    if (!fp) return NULL;
    size_t n = fread(buf[k], 1, sizeof buf[k] - 1, fp);
    buf[k][n] = 0;
    fclose(fp);
    return buf[k];
}

const char *tt_cli_output(void) {
    const char *s = tt_slurp(log_path);
    return s ? s : "";
}

void tt_cli_expect(int rc, int want, const char *what) {
    if (rc != want) fail_msg("%s: exit %d (want %d); output:\n%s", what, rc, want, tt_cli_output());
}

void tt_cli_expect_fail(int rc, const char *what, const char *needle) {
    if (rc == 0) fail_msg("%s: succeeded; output:\n%s", what, tt_cli_output());
    const char *out = tt_cli_output();
    if (needle && !strstr(out, needle)) fail_msg("%s: output lacks '%s':\n%s", what, needle, out);
}

int tt_cli_spawn_serve(const char *plan, const char *state, const char *log, int *pid) {
    char pl[1024], st[1024], pf[1100], lg[1024];
    snprintf(pl, sizeof pl, "%s", plan);
    snprintf(st, sizeof st, "%s", state);
    snprintf(pf, sizeof pf, "%s.port", state);
    snprintf(lg, sizeof lg, "%s", log);
    unlink(pf);
    char *args[] = { exe,
                     "serve",
                     "--plan",
                     pl,
                     "--state-dir",
                     st,
                     "--listen",
                     "127.0.0.1:0",
                     "--port-file",
                     pf,
                     "--insecure-parameters-for-testing",
                     NULL };
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 1, lg, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    posix_spawn_file_actions_adddup2(&fa, 1, 2);
    pid_t p;
    int rc = posix_spawn(&p, exe, &fa, NULL, args, environ);
    posix_spawn_file_actions_destroy(&fa);
    if (rc != 0) fail_msg("could not start %s serve", exe);
    *pid = (int)p;
    /* synchronisation, not a timed assertion: 5 minutes at most */
    int port = 0;
    for (int i = 0; i < 3000 && !port; i++) {
        char *s = tt_slurp(pf);
        if (s) port = atoi(s);
        if (!port) usleep(100000);
    }
    if (port <= 0) {
        tt_wait_child(*pid, 0, NULL); /* never leave the server running */
        *pid = 0;
        fail_msg("tessera serve never wrote its port; its output:\n%s", tt_slurp(lg));
    }
    return port;
}

int tt_wait_child(int pid, double seconds, int *status) {
    int st = 0;
    if (pid <= 0) return 0;
    for (long i = 0;; i++) {
        pid_t w = waitpid(pid, &st, WNOHANG);
        if (w == pid) {
            if (status) *status = st;
            return 1;
        }
        if (w < 0) {
            if (errno == EINTR) continue;
            return 0; /* ECHILD: not (or no longer) our child: that pid is not ours to signal */
        }
        if ((double)i * 0.05 >= seconds) break;
        usleep(50000);
    }
    if (kill(pid, SIGKILL) == 0) /* past the bound; SIGKILL cannot be caught: this returns */
        while (waitpid(pid, &st, 0) < 0 && errno == EINTR) {
        }
    return 0;
}

void tt_write_inputs_csv(const char *path, int rows, int cols, int mul) {
    FILE *fp = fopen(path, "w");
    if (!fp) fail_msg("cannot write %s", path);
    for (int i = 0; i < rows; i++)
        for (int k = 0; k < cols; k++)
            fprintf(fp, "%g%c", 0.001 * ((i * mul + k) % 100), k == cols - 1 ? '\n' : ',');
    if (fclose(fp) != 0) fail_msg("cannot write %s", path);
}

void tt_cli_compile_keygen(const char *onnx, const char *compile_args, const char *plan,
                           const char *sk, const char *evk) {
    tt_cli_expect(tt_cli_run("compile %s %s --out %s --insecure-parameters-for-testing", onnx,
                             compile_args, plan),
                  0, "compile");
    tt_cli_expect(tt_cli_run("keygen %s --out-secret %s --out-eval %s "
                             "--insecure-parameters-for-testing",
                             plan, sk, evk),
                  0, "keygen");
}

/* sem_timedwait for at most `seconds` (EINTR retried): 0 or -1 on timeout. */
static int sem_wait_bounded(sem_t *s, time_t seconds) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += seconds;
    int rc;
    while ((rc = sem_timedwait(s, &ts)) != 0 && errno == EINTR) {
    }
    return rc;
}

void tt_gate_init(tt_gate *g, int hold) {
    sem_init(&g->started, 0, 0);
    sem_init(&g->release, 0, 0);
    __atomic_store_n(&g->hold, hold, __ATOMIC_SEQ_CST);
    g->live = 1;
}

void tt_gate_wait_started(tt_gate *g) {
    if (sem_wait_bounded(&g->started, 300) != 0) fail_msg("no job reached the gate within 300 s");
}

void tt_gate_open(tt_gate *g) {
    if (!g->live) return;
    __atomic_store_n(&g->hold, 0, __ATOMIC_SEQ_CST);
    sem_post(&g->release);
}

void tt_gate_destroy(tt_gate *g) {
    if (!g->live) return;
    sem_destroy(&g->started);
    sem_destroy(&g->release);
    g->live = 0;
}

void tt_gate_hook(void *arg) { /* runs on a server worker: never fail_msg here */
    tt_gate *g = arg;
    if (!__atomic_load_n(&g->hold, __ATOMIC_SEQ_CST)) return;
    sem_post(&g->started);
    if (sem_wait_bounded(&g->release, 300) != 0)
        fprintf(stderr, "tt_gate_hook: not released within 300 s: the job goes on\n");
}
