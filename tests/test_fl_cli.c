/*
 * tests/test_fl_cli.c - the `tessera fl` verbs on the synthetic problem: a
 * sweep, the same sweep resumed from a partial results.csv (kept runs are not
 * run again, missing histories are, the tables come out the same), refusals
 * of --resume with other settings or a foreign results.csv, and usage errors.
 * Runs the binary built next to the tests (TSR_BINARY_DIR).
 */
#include "testutil.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>

static char dir[512], bin[1024], log_path[1024];

static const char *P(const char *name) {
    static char buf[8][1024];
    static int k;
    k = (k + 1) % 8;
    snprintf(buf[k], sizeof buf[k], "%s/%s", dir, name);
    return buf[k];
}

static int run(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int run(const char *fmt, ...) {
    char args[4096], cmd[8192];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(args, sizeof args, fmt, ap);
    va_end(ap);
    snprintf(cmd, sizeof cmd, "%s %s >%s 2>&1", bin, args, log_path);
    int rc = system(cmd);
    if (rc == -1 || !WIFEXITED(rc)) fail_msg("could not run: %s", cmd);
    return WEXITSTATUS(rc);
}

/* Whole file into a static buffer (one of two, so two files can be compared). */
static char *slurp(const char *path) {
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

static void expect(int rc, int want, const char *what) {
    if (rc != want) fail_msg("%s: exit %d (want %d); output:\n%s", what, rc, want, slurp(log_path));
}

static void expect_fail(int rc, const char *what, const char *needle) {
    if (rc == 0) fail_msg("%s: succeeded; output:\n%s", what, slurp(log_path));
    const char *out = slurp(log_path);
    if (needle && !strstr(out, needle)) fail_msg("%s: output lacks '%s':\n%s", what, needle, out);
}

/* results.csv without its last column (wall seconds), lines sorted: comparable across runs. */
static void normalized(const char *path, char *out, size_t n) {
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "sed 's/,[^,]*$//' '%s' | sort > '%s.norm'", path, path);
    assert_int_equal(system(cmd), 0);
    snprintf(cmd, sizeof cmd, "%s.norm", path);
    const char *s = slurp(cmd);
    assert_non_null(s);
    snprintf(out, n, "%s", s);
}

static int count_lines(const char *path) {
    const char *s = slurp(path);
    int n = 0;
    for (; s && *s; s++) n += *s == '\n';
    return n;
}

#define GRID                                                                            \
    "fl sweep --dataset synthetic --model linear --workers 11 --corrupt 2 --rounds 30 " \
    "--defenses mean,median,krum --attacks none,alie --seeds 2 --threads 2"

static void test_sweep_resume(void **state) {
    (void)state;
    static char full[1 << 15], resumed[1 << 15], md_full[1 << 15];
    expect(run(GRID " --out-dir %s", P("a")), 0, "full sweep");
    assert_int_equal(count_lines(P("a/results.csv")), 1 + 3 * 2 * 2);
    normalized(P("a/results.csv"), full, sizeof full);
    snprintf(md_full, sizeof md_full, "%s", slurp(P("a/results.md")));

    /* Keep the header and the first 5 runs; lose one kept run's history. */
    char cmd[4096];
    snprintf(cmd, sizeof cmd,
             "mkdir -p '%s/runs' && head -6 '%s' > '%s' && cp '%s'/runs/*.csv '%s/runs/' && "
             "cp '%s' '%s' && rm '%s'",
             P("b"), P("a/results.csv"), P("b/results.csv"), P("a"), P("b"), P("a/sweep.conf"),
             P("b/sweep.conf"), P("b/runs/mean__none__s2.csv"));
    assert_int_equal(system(cmd), 0);
    expect(run(GRID " --out-dir %s --resume", P("b")), 0, "resumed sweep");
    assert_non_null(strstr(slurp(log_path), "runs/mean__none__s2.csv is missing or malformed"));
    assert_int_equal(count_lines(P("b/results.csv")), 1 + 3 * 2 * 2);
    normalized(P("b/results.csv"), resumed, sizeof resumed);
    assert_string_equal(full, resumed);
    /* The table is the same but for the minutes in its caption. */
    const char *md = slurp(P("b/results.md"));
    assert_non_null(md);
    const char *t1 = strstr(md_full, "| defence |"), *t2 = strstr(md, "| defence |");
    assert_non_null(t1);
    assert_non_null(t2);
    assert_string_equal(t1, t2);

    /* Everything kept: nothing runs, same table again. */
    expect(run(GRID " --out-dir %s --resume", P("b")), 0, "resume of a complete sweep");
    assert_null(strstr(slurp(log_path), "missing or malformed"));
    normalized(P("b/results.csv"), resumed, sizeof resumed);
    assert_string_equal(full, resumed);

    /* A smaller grid over the same directory: its table has one row, the file keeps all runs. */
    expect(run("fl sweep --dataset synthetic --model linear --workers 11 --corrupt 2 --rounds 30 "
               "--defenses median --attacks alie --seed 2 --threads 2 --out-dir %s --resume",
               P("b")),
           0, "resume of a sub-grid");
    assert_null(strstr(slurp(log_path), "missing or malformed"));
    normalized(P("b/results.csv"), resumed, sizeof resumed);
    assert_string_equal(full, resumed);
    md = slurp(P("b/results.md"));
    assert_non_null(strstr(md, "| median |"));
    assert_null(strstr(md, "| mean |"));

    /* Other settings are refused; so is a file that is not ours. */
    expect_fail(run(GRID " --lr 0.2 --out-dir %s --resume", P("b")), "resume with another lr",
                "made with other settings");
    snprintf(cmd, sizeof cmd, "echo 'a,b,c' > '%s'", P("b/results.csv"));
    assert_int_equal(system(cmd), 0);
    expect_fail(run(GRID " --out-dir %s --resume", P("b")), "resume of a foreign results.csv",
                "not a results.csv");
    snprintf(cmd, sizeof cmd,
             "head -1 '%s' > '%s' && echo 'synthetic/linear,mean,none,x,11,2,2,30,0.5,,,,1' >> "
             "'%s'",
             P("a/results.csv"), P("b/results.csv"), P("b/results.csv"));
    assert_int_equal(system(cmd), 0);
    expect_fail(run(GRID " --out-dir %s --resume", P("b")), "resume of a malformed line",
                "malformed line");
}

static void test_usage(void **state) {
    (void)state;
    expect(run("fl zmax --workers 51 --corrupt 12"), 0, "zmax");
    assert_non_null(strstr(slurp(log_path), "0.599"));
    expect_fail(run("fl sweep --dataset synthetic --model linear"), "sweep without --out-dir",
                "--out-dir");
    expect_fail(run("fl run --workers 5 --corrupt 5 --dataset synthetic --model linear"),
                "all workers corrupt", "smaller than --workers");
    expect_fail(run("fl run --defense bulyan --workers 11 --corrupt 3 --dataset synthetic "
                    "--model linear --rounds 2"),
                "bulyan with n < 4f + 3", "4f + 3");
    expect_fail(run("fl run --rounds x"), "bad integer", "not an integer");
    expect_fail(run("fl run --bogus"), "unknown option", "unknown option");
    expect(run("fl sweep --help"), 0, "help");
    assert_non_null(strstr(slurp(log_path), "--resume"));
}

static int setup(void **state) {
    (void)state;
    const char *b = getenv("TSR_BINARY_DIR");
    snprintf(bin, sizeof bin, "TSR_PROGRESS=0 %s/bin/tessera", b ? b : "build");
    snprintf(dir, sizeof dir, "%s", tt_temp_path(".d"));
    if (mkdir(dir, 0700) != 0) return -1;
    snprintf(log_path, sizeof log_path, "%s/log.txt", dir);
    return 0;
}

static int teardown(void **state) {
    (void)state;
    char cmd[1200];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    return system(cmd) == 0 ? 0 : -1;
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sweep_resume),
        cmocka_unit_test(test_usage),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
