/*
 * tests/test_attacks_cli.c - the `tessera attack` verbs: `attack pe` on a
 * Debian-shipped DLL, `attack train` and `attack eval` on a tiny corpus
 * written here (random files, the flagged ones carrying a marker; some longer
 * than max_len, so truncated) with tiny model sizes, and usage errors. Runs the binary built next
 * to the tests.
 */
#include "clitest.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void write_corpus(void) {
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "mkdir -p '%s'", tt_cli_path("corpus/files"));
    assert_int_equal(system(cmd), 0);
    FILE *man = fopen(tt_cli_path("corpus/manifest.csv"), "w");
    assert_non_null(man);
    fprintf(man, "file,label,split,source,bytes,sha256\n");
    tsr_prng g;
    tt_prng(&g, 77);
    for (int i = 0; i < 96; i++) {
        uint8_t b[300];
        size_t len = 150 + (size_t)tsr_prng_uniform(&g, 150);
        tsr_prng_bytes(&g, b, len);
        int y = i & 1;
        if (y) memset(b + tsr_prng_uniform(&g, len - 16), 0xaa, 16);
        char name[32];
        snprintf(name, sizeof name, "corpus/files/f%d.bin", i);
        FILE *f = fopen(tt_cli_path(name), "wb");
        assert_non_null(f);
        assert_int_equal(fwrite(b, 1, len, f), len);
        fclose(f);
        fprintf(man, "f%d.bin,%d,%s,src%d,%zu,-\n", i, y, i % 8 >= 6 ? "test" : "train", i, len);
    }
    fclose(man);
}

#define TINY \
    "--emb 4 --filters 8 --window 8 --hidden 8 --max-len 256 --batch 8 --lr 0.01 --threads 1"

static void test_train_eval(void **state) {
    (void)state;
    write_corpus();
    tt_cli_expect(tt_cli_run("attack train --corpus %s --out %s --epochs 30 " TINY " --report %s",
                             tt_cli_path("corpus"), tt_cli_path("m.tmc"), tt_cli_path("r.csv")),
                  0, "attack train");
    assert_non_null(strstr(tt_cli_output(), "ROC-AUC"));
    assert_non_null(strstr(tt_cli_output(), "no validation: kept the last epoch (30)"));
    char *csv = tt_slurp(tt_cli_path("r.csv"));
    assert_non_null(csv);
    char train_csv[1024];
    snprintf(train_csv, sizeof train_csv, "%s", csv);
    /* 72 training files are learnt (the unit test checks generalisation); 24 test files */
    const char *t = strstr(csv, "\ntrain,72,36,36,0.5000,");
    if (!t || !strstr(csv, "\ntest,24,12,12,0.5000,")) fail_msg("unexpected rows in %s", csv);
    double acc, auc;
    assert_int_equal(sscanf(t + strlen("\ntrain,72,36,36,0.5000,"), "%lf,%lf", &acc, &auc), 2);
    if (acc < 0.95 || auc < 0.95) fail_msg("training accuracy %.3f, AUC %.3f", acc, auc);
    /* eval of the saved model reports the same numbers */
    tt_cli_expect(tt_cli_run("attack eval --corpus %s --model %s --report %s --threads 1",
                             tt_cli_path("corpus"), tt_cli_path("m.tmc"), tt_cli_path("e.csv")),
                  0, "attack eval");
    assert_string_equal(tt_slurp(tt_cli_path("e.csv")), train_csv);
    /* against saturation: smoothing, weight decay, a validation split and early stopping */
    tt_cli_expect(tt_cli_run("attack train --corpus %s --out %s --epochs 6 " TINY
                             " --label-smoothing 0.1 --weight-decay 0.01 --val-frac 0.3 "
                             "--patience 2 --force",
                             tt_cli_path("corpus"), tt_cli_path("m2.tmc")),
                  0, "attack train with validation");
    assert_non_null(strstr(tt_cli_output(), "validation:"));
    assert_non_null(strstr(tt_cli_output(), "\nval "));
    /* the operating threshold for a target FPR, chosen on the same validation sources:
       the validation row of the report keeps its FPR at or under the target */
    tt_cli_expect(tt_cli_run("attack eval --corpus %s --model %s --val-frac 0.3 --target-fpr 0.1 "
                             "--threads 1 --report %s",
                             tt_cli_path("corpus"), tt_cli_path("m2.tmc"), tt_cli_path("t.csv")),
                  0, "attack eval --target-fpr");
    const char *th = strstr(tt_cli_output(), "threshold ");
    assert_non_null(th);
    double thr;
    assert_int_equal(sscanf(th, "threshold %lf for a target FPR of 0.1", &thr), 1);
    assert_true(thr > 0 && thr < 1);
    const char *vr = strstr(tt_slurp(tt_cli_path("t.csv")), "\nval,");
    assert_non_null(vr);
    size_t vn, vpos, vneg;
    double vthr, vacc, vauc, vtpr, vfpr;
    assert_int_equal(sscanf(vr, "\nval,%zu,%zu,%zu,%lf,%lf,%lf,%lf,%lf", &vn, &vpos, &vneg, &vthr,
                            &vacc, &vauc, &vtpr, &vfpr),
                     8);
    print_message("threshold %.6f for FPR 0.1: validation %zu clean, FPR %.4f, TPR %.4f\n", thr,
                  vneg, vfpr, vtpr);
    assert_true(vneg > 0 && vfpr <= 0.1 + 1e-12);
    assert_true(fabs(vthr - thr) < 1e-4);
    tt_cli_expect(tt_cli_run("attack eval --corpus %s --model %s --target-fpr 0.1",
                             tt_cli_path("corpus"), tt_cli_path("m2.tmc")),
                  2, "--target-fpr without validation files");
    /* the model records the --val-frac it was trained with: another value, or validation
       files of a model trained without any, would pick the threshold partly on training
       files and are refused */
    tt_cli_expect(tt_cli_run("attack eval --corpus %s --model %s --val-frac 0.2 --target-fpr 0.1",
                             tt_cli_path("corpus"), tt_cli_path("m2.tmc")),
                  2, "--val-frac other than the model's");
    assert_non_null(strstr(tt_cli_output(), "give --val-frac 0.3"));
    tt_cli_expect(tt_cli_run("attack eval --corpus %s --model %s --val-frac 0.3",
                             tt_cli_path("corpus"), tt_cli_path("m.tmc")),
                  2, "--val-frac on a model trained without validation");
    assert_non_null(strstr(tt_cli_output(), "no validation split"));
    tt_cli_expect(tt_cli_run("attack eval --corpus %s --model %s --val-frac 0.3 --target-fpr 1",
                             tt_cli_path("corpus"), tt_cli_path("m2.tmc")),
                  2, "--target-fpr out of range");
    tt_cli_expect(tt_cli_run("attack eval --corpus %s --model %s --val-frac 0.3 --target-fpr -1",
                             tt_cli_path("corpus"), tt_cli_path("m2.tmc")),
                  2, "--target-fpr -1 (once the 'not given' mark)");
    /* an eval option: attack train refuses it instead of ignoring it */
    tt_cli_expect(tt_cli_run("attack train --corpus %s --out %s --epochs 1 " TINY
                             " --val-frac 0.3 --target-fpr 0.1 --force",
                             tt_cli_path("corpus"), tt_cli_path("m3.tmc")),
                  2, "attack train --target-fpr");
    assert_non_null(strstr(tt_cli_output(), "--target-fpr is an option of"));
    /* the second detector on the same corpus (no PE files: histogram and size features) */
    tt_cli_expect(tt_cli_run("attack mlp --corpus %s --epochs 5 --threads 1 --report %s",
                             tt_cli_path("corpus"), tt_cli_path("mlp.csv")),
                  0, "attack mlp");
    assert_non_null(strstr(tt_cli_output(), "feature MLP"));
    assert_non_null(strstr(tt_slurp(tt_cli_path("mlp.csv")), "\ntest,24,12,12,"));
    /* transfer from a directory of files named like corpus files: the unmodified
       originals, so every flagged one stays flagged and the mean score is unchanged */
    tt_cli_expect(tt_cli_run("attack mlp --corpus %s --epochs 5 --threads 1 --attacked %s "
                             "--report %s",
                             tt_cli_path("corpus"), tt_cli_path("corpus/files"),
                             tt_cli_path("mlp2.csv")),
                  0, "attack mlp --attacked");
    const char *tl = strstr(tt_cli_output(), "transfer ");
    assert_non_null(tl);
    size_t seen, flagged, evaded;
    double before, after;
    const char *fl = strstr(tl, " attacked files; flagged originals ");
    assert_non_null(fl);
    while (fl > tl && fl[-1] != ' ') fl--;
    assert_int_equal(sscanf(fl, "%zu attacked files; flagged originals %zu, no longer flagged %zu",
                            &seen, &flagged, &evaded),
                     3);
    const char *ms = strstr(tl, "mean score ");
    assert_non_null(ms);
    assert_int_equal(sscanf(ms, "mean score %lf -> %lf", &before, &after), 2);
    print_message("transfer on the originals: %zu files, %zu flagged, %zu no longer\n", seen,
                  flagged, evaded);
    assert_int_equal(seen, 96);
    assert_true(flagged > 0);
    assert_int_equal(evaded, 0);
    assert_true(before == after);
    char row[64];
    snprintf(row, sizeof row, ",%zu,%zu,,,,,,0,0.000000\n", seen, flagged);
    assert_non_null(strstr(tt_slurp(tt_cli_path("mlp2.csv")), row));
    tt_cli_expect(tt_cli_run("attack mlp --corpus %s --epochs 5 --attacked /nonexistent",
                             tt_cli_path("corpus")),
                  2, "attack mlp without attacked files");
    assert_non_null(strstr(tt_cli_output(), "named like a corpus file"));
}

static void test_usage_and_pe(void **state) {
    (void)state;
    tt_cli_expect(tt_cli_run("attack pe /usr/x86_64-w64-mingw32/lib/zlib1.dll"), 0, "attack pe");
    assert_non_null(strstr(tt_cli_output(), "PE32+"));
    assert_non_null(strstr(tt_cli_output(), "overlay"));
    tt_cli_expect(tt_cli_run("attack pe /etc/hostname"), 2, "attack pe on a non-PE file");
    assert_non_null(strstr(tt_cli_output(), "MZ"));
    tt_cli_expect(tt_cli_run("attack train --out x"), 2, "train without --corpus");
    tt_cli_expect(tt_cli_run("attack train --corpus /nonexistent --out %s", tt_cli_path("x")), 2,
                  "train on a missing corpus");
    tt_cli_expect(tt_cli_run("attack train --corpus c --out x --window 7 --max-len 100"), 2,
                  "max-len not a multiple of the window");
    tt_cli_expect(tt_cli_run("attack frobnicate"), 2, "unknown subcommand");
    tt_cli_expect(tt_cli_run("attack train --corpus c --out x --label-smoothing 1"), 2,
                  "label smoothing out of range");
    tt_cli_expect(tt_cli_run("attack mlp --corpus c --threshold 2"), 2, "mlp threshold");
    tt_cli_expect(tt_cli_run("attack mlp --help"), 0, "mlp help");
    assert_non_null(strstr(tt_cli_output(), "--attacked"));
    tt_cli_expect(tt_cli_run("attack train --help"), 0, "help");
    assert_non_null(strstr(tt_cli_output(), "--corpus"));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_usage_and_pe),
        cmocka_unit_test(test_train_eval),
    };
    return cmocka_run_group_tests(tests, tt_cli_setup, tt_cli_teardown);
}
