/*
 * tests/test_fl_cli.c - the `tessera fl` verbs on the synthetic problem: a
 * sweep, the same sweep resumed from a partial results.csv (kept runs are not
 * run again, missing histories are, the tables come out the same), refusals
 * of --resume with other settings or a foreign results.csv, and usage errors.
 * Runs the binary built next to the tests (tests/support/clitest.h).
 */
#include "clitest.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* results.csv without its last column (wall seconds), lines sorted: comparable across runs. */
static void normalized(const char *path, char *out, size_t n) {
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "sed 's/,[^,]*$//' '%s' | sort > '%s.norm'", path, path);
    assert_int_equal(system(cmd), 0);
    snprintf(cmd, sizeof cmd, "%s.norm", path);
    const char *s = tt_slurp(cmd);
    assert_non_null(s);
    snprintf(out, n, "%s", s);
}

static int count_lines(const char *path) {
    const char *s = tt_slurp(path);
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
    tt_cli_expect(tt_cli_run(GRID " --out-dir %s", tt_cli_path("a")), 0, "full sweep");
    assert_int_equal(count_lines(tt_cli_path("a/results.csv")), 1 + 3 * 2 * 2);
    normalized(tt_cli_path("a/results.csv"), full, sizeof full);
    snprintf(md_full, sizeof md_full, "%s", tt_slurp(tt_cli_path("a/results.md")));

    /* Keep the header and the first 5 runs; lose one kept run's history. */
    char cmd[4096];
    snprintf(cmd, sizeof cmd,
             "mkdir -p '%s/runs' && head -6 '%s' > '%s' && cp '%s'/runs/*.csv '%s/runs/' && "
             "cp '%s' '%s' && rm '%s'",
             tt_cli_path("b"), tt_cli_path("a/results.csv"), tt_cli_path("b/results.csv"),
             tt_cli_path("a"), tt_cli_path("b"), tt_cli_path("a/sweep.conf"),
             tt_cli_path("b/sweep.conf"), tt_cli_path("b/runs/mean__none__s2.csv"));
    assert_int_equal(system(cmd), 0);
    tt_cli_expect(tt_cli_run(GRID " --out-dir %s --resume", tt_cli_path("b")), 0, "resumed sweep");
    assert_non_null(strstr(tt_cli_output(), "runs/mean__none__s2.csv is missing or malformed"));
    assert_int_equal(count_lines(tt_cli_path("b/results.csv")), 1 + 3 * 2 * 2);
    normalized(tt_cli_path("b/results.csv"), resumed, sizeof resumed);
    assert_string_equal(full, resumed);
    /* The table is the same but for the minutes in its caption. */
    const char *md = tt_slurp(tt_cli_path("b/results.md"));
    assert_non_null(md);
    const char *t1 = strstr(md_full, "| defence |"), *t2 = strstr(md, "| defence |");
    assert_non_null(t1);
    assert_non_null(t2);
    assert_string_equal(t1, t2);

    /* Everything kept: nothing runs, same table again. */
    tt_cli_expect(tt_cli_run(GRID " --out-dir %s --resume", tt_cli_path("b")), 0,
                  "resume of a complete sweep");
    assert_null(strstr(tt_cli_output(), "missing or malformed"));
    normalized(tt_cli_path("b/results.csv"), resumed, sizeof resumed);
    assert_string_equal(full, resumed);

    /* A smaller grid over the same directory: its table has one row, the file keeps all runs. */
    tt_cli_expect(
        tt_cli_run(
            "fl sweep --dataset synthetic --model linear --workers 11 --corrupt 2 --rounds 30 "
            "--defenses median --attacks alie --seed 2 --threads 2 --out-dir %s --resume",
            tt_cli_path("b")),
        0, "resume of a sub-grid");
    assert_null(strstr(tt_cli_output(), "missing or malformed"));
    normalized(tt_cli_path("b/results.csv"), resumed, sizeof resumed);
    assert_string_equal(full, resumed);
    md = tt_slurp(tt_cli_path("b/results.md"));
    assert_non_null(strstr(md, "| median |"));
    assert_null(strstr(md, "| mean |"));

    /* Other settings are refused; so is a file that is not ours. */
    tt_cli_expect_fail(tt_cli_run(GRID " --lr 0.2 --out-dir %s --resume", tt_cli_path("b")),
                       "resume with another lr", "made with other settings");
    snprintf(cmd, sizeof cmd, "echo 'a,b,c' > '%s'", tt_cli_path("b/results.csv"));
    assert_int_equal(system(cmd), 0);
    tt_cli_expect_fail(tt_cli_run(GRID " --out-dir %s --resume", tt_cli_path("b")),
                       "resume of a foreign results.csv", "not a results.csv");
    snprintf(cmd, sizeof cmd,
             "head -1 '%s' > '%s' && echo 'synthetic/linear,mean,none,x,11,2,2,30,0.5,,,,1' >> "
             "'%s'",
             tt_cli_path("a/results.csv"), tt_cli_path("b/results.csv"),
             tt_cli_path("b/results.csv"));
    assert_int_equal(system(cmd), 0);
    tt_cli_expect_fail(tt_cli_run(GRID " --out-dir %s --resume", tt_cli_path("b")),
                       "resume of a malformed line", "malformed line");
}

static void test_usage(void **state) {
    (void)state;
    tt_cli_expect(tt_cli_run("fl zmax --workers 51 --corrupt 12"), 0, "zmax");
    assert_non_null(strstr(tt_cli_output(), "0.599"));
    tt_cli_expect_fail(tt_cli_run("fl sweep --dataset synthetic --model linear"),
                       "sweep without --out-dir", "--out-dir");
    tt_cli_expect_fail(
        tt_cli_run("fl run --workers 5 --corrupt 5 --dataset synthetic --model linear"),
        "all workers corrupt", "smaller than --workers");
    tt_cli_expect_fail(
        tt_cli_run("fl run --defense bulyan --workers 11 --corrupt 3 --dataset synthetic "
                   "--model linear --rounds 2"),
        "bulyan with n < 4f + 3", "4f + 3");
    tt_cli_expect_fail(tt_cli_run("fl run --rounds x"), "bad integer", "needs an integer");
    tt_cli_expect_fail(tt_cli_run("fl run --bogus"), "unknown option", "unknown option");
    tt_cli_expect(tt_cli_run("fl sweep --help"), 0, "help");
    assert_non_null(strstr(tt_cli_output(), "--resume"));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sweep_resume),
        cmocka_unit_test(test_usage),
    };
    return cmocka_run_group_tests(tests, tt_cli_setup, tt_cli_teardown);
}
