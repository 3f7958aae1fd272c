/*
 * tests/test_cli_args.c - the command lines of `tessera ckks`, `demo`, `train`, `eval` and the
 * benchmark programs (all parsed by cli_parse_args, cli/args.c): --help, unknown options,
 * malformed and out-of-range values, extra arguments (exit 2, nothing run), what
 * `tessera ckks params` makes of its options, and `bench ckks --level 0` (N = 2^13, one run
 * of each op). Runs the built binary (tests/support/clitest.h); nothing here trains, reads
 * Fashion-MNIST or checks a timing.
 */
#include "clitest.h"

#include <stdio.h>
#include <string.h>

static int count(const char *hay, const char *needle) {
    int n = 0;
    for (const char *p = strstr(hay, needle); p; p = strstr(p + 1, needle)) n++;
    return n;
}

static void test_help(void **state) {
    (void)state;
    const char *cmds[] = { "ckks",       "ckks params", "ckks presets", "demo",
                           "demo ckks",  "train",       "eval",         "bench",
                           "bench ckks", "bench fl",    "bench model",  "bench noise",
                           "bench ring", "bench tile",  "bench train",  "fl",
                           "version" };
    for (size_t i = 0; i < sizeof cmds / sizeof cmds[0]; i++) {
        tt_cli_expect(tt_cli_run("%s --help", cmds[i]), 0, cmds[i]);
        if (!strstr(tt_cli_output(), "usage: tessera"))
            fail_msg("%s --help: no usage line:\n%s", cmds[i], tt_cli_output());
    }
}

static void test_unknown_options(void **state) {
    (void)state;
    const char *cmds[] = { "ckks params", "ckks presets", "demo",       "train",
                           "eval m.onnx", "bench ckks",   "bench fl",   "bench model m.onnx",
                           "bench noise", "bench ring",   "bench tile", "bench train" };
    for (size_t i = 0; i < sizeof cmds / sizeof cmds[0]; i++) {
        tt_cli_expect(tt_cli_run("%s --no-such-option", cmds[i]), 2, cmds[i]);
        tt_cli_expect_fail(2, cmds[i], "unknown option '--no-such-option'");
    }
}

static void test_bad_values(void **state) {
    (void)state;
    const struct {
        const char *args, *needle;
    } cases[] = {
        { "ckks params --levels x", "--levels needs an integer" },
        { "ckks params --log-n 99", "--log-n needs an integer" },
        { "ckks params --preset", "--preset needs a value" },
        { "ckks params extra", "unexpected argument 'extra'" },
        { "ckks presets extra", "unexpected argument 'extra'" },
        { "ckks frobnicate", "unknown subcommand" },
        { "demo --threads 0", "--threads needs an integer" },
        { "demo other", "unknown demo 'other'" },
        { "train --arch mlp --act relu --epochs 1 --out x.onnx --lr 100", "--lr needs a number" },
        { "train --arch mlp --act relu --epochs 1 --out x.onnx --kd-alpha 2",
          "--kd-alpha needs a number" },
        { "train --arch mlp --act relu --epochs 1 --out x.onnx --range-loss 4",
          "--range-loss needs B,W" },
        { "train --arch mlp --act relu --epochs 1 --out x.onnx --quiet=1", "takes no value" },
        { "train --arch mlp --act relu --epochs 0 --out x.onnx", "--epochs needs an integer" },
        { "train --arch mlp --act relu --out x.onnx", "--epochs is required" },
        { "eval", "give the model file" },
        { "eval a.onnx b.onnx", "one model at a time" },
        { "eval a.onnx --batch 0", "--batch needs an integer" },
        { "eval a.onnx --loss l1", "--loss is auto, ce or mse" },
        { "eval a.onnx --pixel-norm 0.5", "--pixel-norm needs MEAN,STD" },
        /* infer and infer --mpi share one option table and parser (cli/infer_cli.h) */
        { "infer p.plan k.evk --in a.ct", "give the plan, the evaluation keys" },
        { "infer p.plan k.evk --in a.ct --out b.ct --in c.ct --out d.ct", "several need --mpi" },
        { "infer p.plan k.evk --in a.ct --out b.ct --threads 0", "--threads needs an integer" },
        { "infer --mpi p.plan k.evk --in a.ct --in b.ct --out x.ct", "one --out per --in" },
        { "infer --mpi p.plan k.evk --in a.ct --out b.ct --report r.json", "not --mpi" },
        { "infer --mpi p.plan k.evk --in a.ct --out b.ct --threads 0",
          "--threads needs an integer" },
        { "infer --mpi p.plan --in a.ct --out b.ct", "give the plan, the evaluation keys" },
        { "bench ckks --runs 0", "--runs needs an integer" },
        { "bench ckks --preset a --preset b --preset c --preset d --preset e --preset f "
          "--preset g --preset h --preset i",
          "at most 8 times" },
        { "bench ckks --special-primes 2", "give --chain too" },
        { "bench ckks --chain 14", "expected LOGN:LEVELS[-HI][@SCALE]" },
        { "bench ckks --chain 14:8-2", "expected LOGN:LEVELS[-HI][@SCALE]" },
        { "bench ckks --chain 14:8@", "expected LOGN:LEVELS[-HI][@SCALE]" },
        { "bench ckks --chain 14:8xyz", "expected LOGN:LEVELS[-HI][@SCALE]" },
        { "bench ckks --chain 14:-8", "expected LOGN:LEVELS[-HI][@SCALE]" },
        { "bench ckks --chain 12:2", "LOGN 13..16" },
        { "bench ckks --chain 15:1-41", "1 <= LEVELS <= HI <= 40" },
        { "bench ckks --only rotate --only frobnicate", "--only 'frobnicate': no such operation" },
        { "bench ckks --level 64", "--level needs an integer" },
        { "bench ckks --chain 14:8 --special-primes 4", "--special-primes needs an integer" },
        { "bench ckks --chain 13:2 --level 0 --only rotate --only rescale",
          "--only rescale: consumes a level, so it cannot run at --level 0" },
        { "bench model", "give the model" },
        /* a negative or non-numeric trade is refused, not taken for the default */
        { "bench model m.onnx --max-precision-trade -1",
          "--max-precision-trade needs a whole number of bits from 0 to 20, not '-1'" },
        { "bench model m.onnx --max-precision-trade two",
          "--max-precision-trade needs a whole number of bits from 0 to 20, not 'two'" },
        { "compile m.onnx --batch 1 --out p.plan --max-precision-trade -0.5",
          "--max-precision-trade needs a whole number of bits from 0 to 20, not '-0.5'" },
        { "compile m.onnx --batch 1 --out p.plan --max-precision-trade 2.6",
          "--max-precision-trade needs a whole number of bits from 0 to 20, not '2.6'" },
        { "compile m.onnx --batch 1 --out p.plan --max-precision-trade 21",
          "--max-precision-trade needs a whole number of bits from 0 to 20, not '21'" },
        { "compile m.onnx --batch 1 --out p.plan --max-precision-trade nan",
          "--max-precision-trade needs a whole number of bits from 0 to 20, not 'nan'" },
        { "bench model a.onnx b.onnx", "one model at a time" },
        { "bench model a.onnx --log-n 5", "--log-n needs an integer" },
        { "bench model a.onnx --expand-keys=1", "takes no value" },
        { "bench noise --chain 14", "expected LOGN:LEVELS" },
        { "bench noise --chain 9:4", "expected LOGN:LEVELS" },
        /* one parser for both benches (bench_parse_chain): trailing text is refused */
        { "bench noise --chain 14:8xyz", "expected LOGN:LEVELS[-HI][@SCALE]" },
        { "bench noise --chain 12:4", "LOGN 13..16" },
        { "bench noise --chain 14:1-8", "no -HI or @SCALE" },
        { "bench noise --chain 14:8@37", "no -HI or @SCALE" },
        { "bench noise --chain 14:1", "needs at least 2 levels" },
        /* the options of the other mode are refused, not ignored */
        { "bench noise --model m.onnx --chain 13:5", "not a --model plan" },
        { "bench noise --model m.onnx --samples 8", "not a --model plan" },
        { "bench noise --keys 3", "need --model" },
        { "bench noise --chain 13:5 --packing tiled", "need --model" },
        { "bench noise --batch 4", "need --model" },
        { "bench noise --log-n 14", "need --model" },
        { "bench noise --samples 0", "--samples needs an integer" },
        { "bench noise --model m.onnx --packing rows", "--packing is auto, batch or tiled" },
        { "bench tile --threads 0", "--threads needs an integer" },
        { "bench train --epochs", "--epochs needs a value" },
        { "bench fl extra", "unexpected argument 'extra'" },
        { "version extra", "unexpected argument 'extra'" },
        { "version --verbose", "unknown option '--verbose'" },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        tt_cli_expect(tt_cli_run("%s", cases[i].args), 2, cases[i].args);
        tt_cli_expect_fail(2, cases[i].args, cases[i].needle);
    }
}

static void test_ckks_params(void **state) {
    (void)state;
    /* An insecure set is refused, and the way out is named once. */
    tt_cli_expect(tt_cli_run("ckks params --log-n 12 --levels 5"), 2, "insecure set");
    assert_int_equal(count(tt_cli_output(), "--insecure-parameters-for-testing"), 1);
    assert_int_equal(count(tt_cli_output(), "fingerprint"), 0);
    /* With the flag it is built, loudly. */
    tt_cli_expect(tt_cli_run("ckks params --log-n 12 --levels 5 "
                             "--insecure-parameters-for-testing"),
                  0, "insecure set allowed");
    assert_non_null(strstr(tt_cli_output(), "BELOW 128-bit security"));
    assert_non_null(strstr(tt_cli_output(), "fingerprint: "));
    /* The options change the preset: both spellings give the same set, other options another. */
    char a[256] = "", b[256] = "";
    tt_cli_expect(tt_cli_run("ckks params --levels 2 --scale-bits 30"), 0, "levels 2");
    const char *fp = strstr(tt_cli_output(), "fingerprint: ");
    assert_non_null(fp);
    snprintf(a, sizeof a, "%.45s", fp);
    tt_cli_expect(tt_cli_run("ckks params --preset=n13-l3 --scale-bits=30 --levels=2"), 0,
                  "levels=2");
    fp = strstr(tt_cli_output(), "fingerprint: ");
    assert_non_null(fp);
    snprintf(b, sizeof b, "%.45s", fp);
    assert_string_equal(a, b);
    tt_cli_expect(tt_cli_run("ckks params --levels 2 --scale-bits 31"), 0, "scale 31");
    fp = strstr(tt_cli_output(), "fingerprint: ");
    assert_non_null(fp);
    snprintf(b, sizeof b, "%.45s", fp);
    assert_string_not_equal(a, b);
    /* --hamming-weight switches to (sparse, so unproven) fixed-weight secrets; --out writes */
    tt_cli_expect(tt_cli_run("ckks params --hamming-weight 64 --out %s", tt_cli_path("p.bin")), 2,
                  "sparse secret");
    tt_cli_expect_fail(2, "sparse secret", "Hamming weight 64");
    assert_null(tt_slurp(tt_cli_path("p.bin")));
    tt_cli_expect(tt_cli_run("ckks params --hamming-weight 64 --out %s "
                             "--insecure-parameters-for-testing",
                             tt_cli_path("p.bin")),
                  0, "sparse secret allowed");
    assert_non_null(strstr(tt_cli_output(), "wrote "));
    assert_non_null(tt_slurp(tt_cli_path("p.bin")));
    tt_cli_expect(tt_cli_run("ckks presets"), 0, "presets");
    assert_non_null(strstr(tt_cli_output(), "n13-l3"));
    assert_non_null(strstr(tt_cli_output(), "n16-boot-d4"));
    /* a mixed chain: two 30-bit levels under one of 40 bits; its fingerprint is another set's */
    tt_cli_expect(tt_cli_run("ckks params --low-levels 2 --low-scale-bits 30"), 0, "mixed chain");
    assert_non_null(strstr(tt_cli_output(), "q_1..q_2 ~ 30.0 bits (scale 2^30 at level 2)"));
    assert_non_null(strstr(tt_cli_output(), "q_3 ~ 40.0 bits"));
    fp = strstr(tt_cli_output(), "fingerprint: ");
    assert_non_null(fp);
    snprintf(b, sizeof b, "%.45s", fp);
    assert_string_not_equal(a, b);
    tt_cli_expect(tt_cli_run("ckks params --low-levels 3"), 2, "all levels low");
    tt_cli_expect_fail(2, "building the parameters", "low_levels = 3 must be below levels (3)");
}

static double mib(const char *row) {
    const char *p = strstr(tt_cli_output(), row);
    double v = -1;
    if (p) sscanf(p + strlen(row), "%lf", &v);
    return v;
}

/* At --level 0 the ops that need a level are skipped (n/a), the others run, and the fresh
 * ciphertext's size is still that of a top-level one. */
static void test_bench_ckks_level0(void **state) {
    (void)state;
    tt_cli_expect(tt_cli_run("bench ckks --chain 13:2 --level 0 --runs 1"), 0, "level 0");
    assert_non_null(strstr(tt_cli_output(), "operands at level 0"));
    assert_non_null(strstr(tt_cli_output(), "rotate_hoisted_8 "));
    assert_non_null(strstr(tt_cli_output(), "mul_relin_rescale            n/a (level 0)"));
    assert_non_null(strstr(tt_cli_output(), "rescale                      n/a (level 0)"));
    double fresh = mib("ciphertext_fresh"), level0 = mib("ciphertext_level0");
    assert_true(level0 > 0);
    assert_true(fresh > 2.5 * level0); /* 3 limbs at the top, 1 at level 0 */
    tt_cli_expect(tt_cli_run("bench ckks --chain 13:2 --level 0 --only rotate --runs 1"), 0,
                  "level 0, rotate");
    assert_null(strstr(tt_cli_output(), "n/a"));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_help),
        cmocka_unit_test(test_unknown_options),
        cmocka_unit_test(test_bad_values),
        cmocka_unit_test(test_ckks_params),
        cmocka_unit_test(test_bench_ckks_level0),
    };
    return cmocka_run_group_tests(tests, tt_cli_setup, tt_cli_teardown);
}
