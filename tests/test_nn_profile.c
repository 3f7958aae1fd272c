/*
 * tests/test_nn_profile.c - the optimizer's cost profiles (nn/cost.c) and
 * deterministic compilation: the reader accepts what the writer makes and
 * refuses malformed text with its line number; costs interpolate between
 * measured chains; key switches are priced by a model of the digits and
 * primes at the level they run at on the plan's own chain; the built-in profile covers every ring
 * degree; the same model, options and profile give a byte-identical plan, and a plan's id does not
 * depend on its predictions.
 */
#include "testutil.h"

#include "core/error.h"
#include "nn/nn_internal.h"
#include "train/model.h"
#include "train/model_onnx.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define COSTS1                                                                                     \
    "add=2e-05 mul_plain=5e-05 mul_const=5e-05 mul_ct=0.005 rescale=0.0004 rotate=0.004 "          \
    "hoist_extra=0.001 encode=0.0005 encrypt=0.002 decrypt=0.0002 lincomb_term=0.0001 copy=2e-05 " \
    "sq_lincomb_term=0.0002"
#define COSTS5                                                                                     \
    "add=6e-05 mul_plain=0.00015 mul_const=0.00015 mul_ct=0.015 rescale=0.0012 rotate=0.012 "      \
    "hoist_extra=0.003 encode=0.0015 encrypt=0.006 decrypt=0.0006 lincomb_term=0.0003 copy=6e-05 " \
    "sq_lincomb_term=0.0006"
#define HEADER "tessera-profile 2\ncpu Example CPU 9000\nsimd avx2\nthreads 2\n"

static tsr_status parse(const char *text, nn_profile **p) {
    return nn_profile_parse((const uint8_t *)text, strlen(text), p);
}

static void test_parse_and_interpolate(void **state) {
    (void)state;
    nn_profile *p;
    /* points out of order, comments, CRLF */
    tt_ok(parse(HEADER "# comment\r\npoint log_n=13 levels=5 " COSTS5 "\r\n"
                       "point log_n=13 levels=1 " COSTS1 "\n",
                &p));
    assert_int_equal(p->n, 2);
    assert_string_equal(p->cpu, "Example CPU 9000");
    assert_string_equal(p->simd, "avx2");
    assert_int_equal(p->threads, 2);
    assert_int_equal(p->pts[0].levels, 1);
    assert_int_equal(p->pts[1].levels, 5);
    assert_true(nn_profile_has(p, 13));
    assert_false(nn_profile_has(p, 14));
    nn_costs c;
    nn_profile_costs_at(p, 13, 3, &c); /* half way */
    assert_true(fabs(c.rotate - 0.008) < 1e-12);
    assert_true(fabs(c.mul_ct - 0.010) < 1e-12);
    nn_profile_costs_at(p, 13, 9, &c); /* beyond: the last segment's line */
    assert_true(fabs(c.rotate - 0.020) < 1e-12);
    nn_profile_costs_at(p, 13, 0, &c); /* below: proportional to the limbs */
    assert_true(fabs(c.rotate - 0.002) < 1e-12);
    nn_profile_costs_at(p, 14, 3, &c); /* not measured: zeros */
    assert_true(c.rotate == 0 && c.add == 0);
    /* without prod_lincomb_term (profiles made before it was measured): 2 mul_plain +
     * lincomb_term, the estimate of the contract steps' terms until then */
    assert_true(fabs(p->pts[0].c.prod_lincomb_term - (2 * 5e-05 + 0.0001)) < 1e-15);
    nn_profile_free(p);
    tt_ok(parse(HEADER "point log_n=13 levels=1 " COSTS1 " prod_lincomb_term=0.003\n", &p));
    assert_true(p->pts[0].c.prod_lincomb_term == 0.003);
    nn_profile_free(p);
    tt_fails(parse(HEADER "point log_n=13 levels=1 " COSTS1
                          " prod_lincomb_term=0.003 prod_lincomb_term=0.003\n",
                   &p),
             TSR_ERR_FORMAT);
}

static void test_parse_errors(void **state) {
    (void)state;
    static const struct {
        const char *text, *needle;
    } bad[] = {
        { "", "empty" },
        { "# only a comment\n", "empty" },
        { "tessera-profile 2\n", "no measurements" },
        { "costs 1\n", "not a Tessera cost profile" },
        { "tessera-profile 7\npoint log_n=13 levels=1 " COSTS1 "\n", "version 7" },
        { "tessera-profile 1\npoint log_n=13 levels=1 " COSTS1 "\n", "version 1" },
        { HEADER "point log_n=13 " COSTS1 "\n", "line 5" },
        { HEADER "point log_n=13 levels=1 add=1\n", "has no 'mul_plain'" },
        { HEADER "point log_n=13 levels=1 " COSTS1 " add=1\n", "'add' is given twice" },
        { HEADER "point log_n=13 levels=1 " COSTS1 " speed=1\n", "unknown key 'speed'" },
        { HEADER "point log_n=13 levels=1 " COSTS1 " x\n", "not key=value" },
        { HEADER "point log_n=99 levels=1 " COSTS1 "\n", "log_n" },
        { HEADER "point log_n=13 levels=0 " COSTS1 "\n", "levels" },
        { HEADER "point log_n=13 levels=1 add=-1 mul_plain=5e-05\n", "not a time" },
        { HEADER "point log_n=13 levels=1 add=nan\n", "not a time" },
        { HEADER "point log_n=13 levels=1 add=1e300\n", "not a time" },
        { HEADER "point log_n=13 levels=1 add=0x1p3\n", NULL },
        { HEADER "point log_n=13 levels=1 " COSTS1 "\npoint log_n=13 levels=1 " COSTS1 "\n",
          "two points" },
        { HEADER "speed 3\n", "unknown record 'speed'" },
        { HEADER "threads 0\n", "thread count" },
        { HEADER "threads 2 3\n", "unexpected '3'" },
        /* ks records: version 3 only, every key once, levels consistent */
        { HEADER "ks log_n=13 levels=5 level=1 alpha=1 special=1 rotate=1 hoist_extra=1 "
                 "mul_ct=1\n",
          "unknown record 'ks'" },
        { "tessera-profile 3\nks log_n=13 levels=5 level=1 alpha=1 special=1 rotate=1\n",
          "no 'hoist_extra'" },
        { "tessera-profile 3\nks log_n=13 levels=5 level=6 alpha=1 special=1 rotate=1 "
          "hoist_extra=1 mul_ct=1\n",
          "above the chain" },
        { "tessera-profile 3\nks log_n=13 levels=5 level=1 alpha=7 special=1 rotate=1 "
          "hoist_extra=1 mul_ct=1\n",
          "alpha" },
        { "tessera-profile 3\nks log_n=13 levels=5 level=1 alpha=1 special=0 rotate=1 "
          "hoist_extra=1 mul_ct=1\n",
          "special" },
        { "tessera-profile 3\nks log_n=13 levels=5 level=1 alpha=1 special=1 rotate=1 "
          "hoist_extra=1 mul_ct=1 rotate=2\n",
          "given twice" },
        { "tessera-profile 3\npoint log_n=13 levels=1 " COSTS1
          "\nks log_n=13 levels=5 level=1 alpha=1 special=1 rotate=1 hoist_extra=1 mul_ct=1\n"
          "ks log_n=13 levels=5 level=1 alpha=2 special=1 rotate=1 hoist_extra=1 mul_ct=1\n",
          "two ks records" },
        { "tessera-profile 3\nks log_n=13 levels=5 level=1 alpha=1 special=1 rotate=1 "
          "hoist_extra=1 mul_ct=1\n",
          "no measurements" },
        { "tessera-profile 2\ncpu A\x01"
          "B\n",
          "non-printable" },
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        nn_profile *p = (nn_profile *)(uintptr_t)1;
        tsr_clear_error();
        tsr_status st = parse(bad[i].text, &p);
        if (st == TSR_OK) fail_msg("case %zu was accepted", i);
        assert_null(p);
        if (bad[i].needle && !strstr(tsr_last_error(), bad[i].needle))
            fail_msg("case %zu: '%s' lacks '%s'", i, tsr_last_error(), bad[i].needle);
    }
    /* a NUL byte inside a line */
    const char nul[] = "tessera-profile 2\ncpu A\0B\n";
    nn_profile *p;
    assert_int_equal(nn_profile_parse((const uint8_t *)nul, sizeof nul - 1, &p), TSR_ERR_FORMAT);
    /* an overlong line */
    size_t n = 4000;
    char *big = malloc(n + 64);
    snprintf(big, n + 64, HEADER "cpu ");
    size_t k = strlen(big);
    memset(big + k, 'x', n);
    big[k + n] = 0;
    assert_int_equal(parse(big, &p), TSR_ERR_FORMAT);
    assert_non_null(strstr(tsr_last_error(), "longer than"));
    free(big);
}

/* Key-switch times of the model c0 + c1 D P + c2 P + c3 B (D digits, P primes, B the base
 * conversions' products: each digit of s primes to the other P - s, the special primes to
 * the level's l + 1; nn/cost.c). */
static const double KS_C[3][4] = { { 1e-5, 2e-5, 3e-5, 1e-6 },
                                   { 5e-6, 1e-5, 2e-5, 0 },
                                   { 2e-5, 2.5e-5, 0, 2e-6 } };
static double ks_true(int op, int alpha, int special, int level) {
    const int d = (level + alpha) / alpha;
    const double p = level + 1.0 + special;
    double b = special * (level + 1.0);
    for (int j = 0; j < d; j++) {
        const int sz = level + 1 - j * alpha < alpha ? level + 1 - j * alpha : alpha;
        b += sz * (p - sz);
    }
    return KS_C[op][0] + KS_C[op][1] * d * p + KS_C[op][2] * p + KS_C[op][3] * b;
}

/* A version 3 profile at 2^13: two points and ks records of the model above on three chains
 * (levels, alpha, special) = (5, 1, 1), (3, 2, 2), (7, 3, 3). */
static char *ks_profile(void) {
    size_t cap = 8192, n = 0;
    char *t = malloc(cap);
    assert_non_null(t);
    n += (size_t)snprintf(t + n, cap - n,
                          "tessera-profile 3\ncpu Example\nsimd avx2\nthreads 1\n"
                          "point log_n=13 levels=1 " COSTS1 "\npoint log_n=13 levels=5 " COSTS5
                          "\n");
    const int ch[3][3] = { { 5, 1, 1 }, { 3, 2, 2 }, { 7, 3, 3 } };
    for (int c = 0; c < 3; c++)
        for (int l = 0; l <= ch[c][0]; l += 2)
            n += (size_t)snprintf(
                t + n, cap - n,
                "ks log_n=13 levels=%d level=%d alpha=%d special=%d "
                "rotate=%.17g hoist_extra=%.17g mul_ct=%.17g\n",
                ch[c][0], l, ch[c][1], ch[c][2], ks_true(0, ch[c][1], ch[c][2], l),
                ks_true(1, ch[c][1], ch[c][2], l), ks_true(2, ch[c][1], ch[c][2], l));
    assert_true(n < cap);
    return t;
}

/* The key-switch model: fitted exactly to exact samples, more digits or more special primes
 * cost more, a higher level costs more. */
static void test_ks_model(void **state) {
    (void)state;
    char *t = ks_profile();
    nn_profile *p;
    tt_ok(parse(t, &p));
    free(t);
    assert_int_equal(p->version, 3);
    assert_int_equal(p->n_ks, 3 + 2 + 4);
    assert_int_equal(p->has_fit[13], 7);
    for (int op = 0; op < NN_KS_OPS; op++)
        for (int j = 0; j < NN_KS_TERMS; j++)
            if (!(fabs(p->fit[13][op][j] - KS_C[op][j]) <= 1e-9 * 3e-5))
                fail_msg("op %d term %d: %g, want %g", op, j, p->fit[13][op][j], KS_C[op][j]);
    for (int op = 0; op < NN_KS_OPS; op++)
        for (int l = 0; l <= 12; l++) {
            const double v = nn_ks_seconds(p, 13, 1, 1, l, op);
            assert_true(fabs(v - ks_true(op, 1, 1, l)) <= 1e-9 * v);
            if (l) assert_true(v > nn_ks_seconds(p, 13, 1, 1, l - 1, op)); /* the level */
            if (l) assert_true(v > nn_ks_seconds(p, 13, 2, 1, l, op));     /* the digits */
            assert_true(nn_ks_seconds(p, 13, 1, 2, l, op) >= v);           /* special primes */
            /* between two levels: interpolated */
            const double h = nn_ks_seconds(p, 13, 1, 1, l + 0.5, op);
            assert_true(fabs(h - 0.5 * (v + nn_ks_seconds(p, 13, 1, 1, l + 1, op))) <= 1e-9 * h);
        }
    /* the top of the 8-level chain of one digit per prime (9 digits x 10 primes) costs more
     * than its neighbours' tops would say: 7 levels with alpha 2 (4 x 10), 11 levels with
     * alpha 1 (12 x 13) interpolated at 8 is 69 D P, against 90 */
    assert_true(nn_ks_seconds(p, 13, 1, 1, 8, 0) >
                nn_ks_seconds(p, 13, 2, 2, 7, 0) +
                    0.25 * (nn_ks_seconds(p, 13, 1, 1, 11, 0) - nn_ks_seconds(p, 13, 2, 2, 7, 0)));
    /* a ring degree without a model: the old price, the top of the level-deep chain */
    assert_true(nn_ks_seconds(p, 14, 1, 1, 3, NN_KS_ROTATE) == 0);
    nn_profile_free(p);
    /* a version 2 profile: the model is fitted to the points' tops on the profiler's chains */
    tt_ok(parse(HEADER "point log_n=13 levels=1 " COSTS1 "\npoint log_n=13 levels=5 " COSTS5 "\n",
                &p));
    assert_int_equal(p->version, 2);
    assert_int_equal(p->n_ks, 0);
    assert_int_equal(p->has_fit[13], 7);
    tsr_nn_profile_opts o;
    tsr_nn_profile_opts_default(&o);
    for (int i = 0; i < 2; i++) {
        tsr_ckks_param_spec sp;
        tt_ok(nn_profile_chain(&o, 13, p->pts[i].levels, &sp));
        const int alpha = (int)((sp.levels + sp.dnum) / sp.dnum);
        const double v =
            nn_ks_seconds(p, 13, alpha, (int)sp.special_primes, p->pts[i].levels, NN_KS_ROTATE);
        assert_true(fabs(v / p->pts[i].c.rotate - 1) < 0.25); /* two points, two terms */
    }
    nn_profile_free(p);
    /* a point whose chain does not exist at 128 bits (30 levels at 2^13) is left out of the
     * fit, and the caller's error detail survives the parse */
    tsr_fail(TSR_ERR_IO, "the caller's own error");
    tt_ok(parse(HEADER "point log_n=13 levels=1 " COSTS1 "\npoint log_n=13 levels=5 " COSTS5
                       "\npoint log_n=13 levels=30 " COSTS5 "\n",
                &p));
    assert_int_equal(p->has_fit[13], 7);
    assert_string_equal(tsr_last_error(), "the caller's own error");
    tsr_clear_error();
    nn_profile_free(p);
}

/* A step's key switches are priced on the plan's chain at the level they run at: a dense
 * layer's rotate-and-sum after its rescale (level_out), a square's relinearization before
 * it (level_in), a convolution's hoisted rotations on its input (level_in). */
static void test_step_levels(void **state) {
    (void)state;
    char *t = ks_profile();
    nn_profile *p;
    tt_ok(parse(t, &p));
    free(t);
    tsr_ckks_param_spec sp;
    memset(&sp, 0, sizeof sp);
    sp.log_n = 13;
    sp.levels = 7;
    sp.dnum = 8; /* one prime per digit */
    sp.special_primes = 1;
    nn_step s;
    memset(&s, 0, sizeof s);
    s.level_in = 5;
    s.level_out = 4;
    s.op = NN_OP_DENSE;
    s.counts.rotations = 10;
    double v = nn_step_seconds(p, &sp, &s);
    assert_true(fabs(v - 10 * ks_true(NN_KS_ROTATE, 1, 1, 4)) <= 1e-9 * v);
    s.op = NN_OP_CLEAR_DUP;
    assert_true(fabs(nn_step_seconds(p, &sp, &s) - v) <= 1e-9 * v);
    /* the chain matters: two primes per digit (dnum 4) halves the digits at level 4 */
    tsr_ckks_param_spec sp2 = sp;
    sp2.dnum = 4;
    sp2.special_primes = 2;
    const double v2 = nn_step_seconds(p, &sp2, &s);
    assert_true(fabs(v2 - 10 * ks_true(NN_KS_ROTATE, 2, 2, 4)) <= 1e-9 * v2);
    assert_true(v2 < v);
    s.op = NN_OP_CONV;
    s.counts.hoisted = 2;
    v = nn_step_seconds(p, &sp, &s);
    const double want =
        2 * ks_true(NN_KS_ROTATE, 1, 1, 5) + 8 * ks_true(NN_KS_HOIST_EXTRA, 1, 1, 5);
    assert_true(fabs(v - want) <= 1e-9 * v);
    memset(&s.counts, 0, sizeof s.counts);
    s.op = NN_OP_SQUARE;
    s.counts.mul_ct = 3;
    v = nn_step_seconds(p, &sp, &s);
    assert_true(fabs(v - 3 * ks_true(NN_KS_MUL_CT, 1, 1, 5)) <= 1e-9 * v);
    nn_profile_free(p);
}

static void test_builtin(void **state) {
    (void)state;
    nn_profile *p;
    tt_ok(nn_profile_load(NULL, &p));
    assert_true(p->builtin);
    for (int ln = 10; ln <= 16; ln++) {
        assert_true(nn_profile_has(p, ln));
        nn_costs c;
        nn_profile_costs_at(p, ln, 4, &c);
        /* a key switch costs more than a plaintext product, which costs more than an add */
        assert_true(c.rotate > c.mul_plain && c.mul_ct > c.mul_plain && c.mul_plain > 0);
        assert_true(c.add > 0 && c.lincomb_term > 0 && c.encrypt > 0);
        assert_true(c.sq_lincomb_term >= c.lincomb_term);
    }
    nn_profile_free(p);
}

/* The chains a profile times are the compiler's: from 2^13 on the 128-bit chain even with
 * the insecure flag (which opens the test rings below 2^13 only). The built-in profile was
 * once made with the flag and timed insecure chains of one digit at 2^13..2^16, whose key
 * switches are several times cheaper than the secure chains' (dnum 9 at 2^14, 8 levels). */
static void test_profile_chains(void **state) {
    (void)state;
    tsr_nn_profile_opts o;
    tsr_nn_profile_opts_default(&o);
    o.ckks_flags = TSR_CKKS_ALLOW_INSECURE_PARAMETERS;
    for (int ln = 13; ln <= 15; ln++)
        for (int L = 1; L <= 12; L++) {
            tsr_ckks_param_spec got, want, loose;
            if (nn_choose_params((unsigned)ln, L, NN_DEFAULT_OUTPUT_BITS, 0, 0, &want) != TSR_OK) {
                /* no secure chain that deep (2^13: 6 levels): none measured either */
                assert_int_not_equal(nn_profile_chain(&o, ln, L, &got), TSR_OK);
                tsr_clear_error();
                continue;
            }
            tt_ok(nn_profile_chain(&o, ln, L, &got));
            assert_memory_equal(&got, &want, sizeof got);
            assert_int_equal(got.flags & TSR_CKKS_ALLOW_INSECURE_PARAMETERS, 0);
            tt_ok(
                nn_choose_params((unsigned)ln, L, NN_DEFAULT_OUTPUT_BITS, 0, o.ckks_flags, &loose));
            assert_true(loose.dnum <= want.dnum);
        }
    /* the case that was wrong: 2^14 with 8 levels, secure dnum 9, insecure one digit */
    tsr_ckks_param_spec s;
    tt_ok(nn_profile_chain(&o, 14, 8, &s));
    assert_int_equal(s.dnum, 9);
    tt_ok(nn_choose_params(14, 8, NN_DEFAULT_OUTPUT_BITS, 0, o.ckks_flags, &s));
    assert_int_equal(s.dnum, 1);
    /* below 2^13: test chains with the flag, none without */
    tt_ok(nn_profile_chain(&o, 10, 4, &s));
    assert_true(s.flags & TSR_CKKS_ALLOW_INSECURE_PARAMETERS);
    o.ckks_flags = 0;
    assert_int_not_equal(nn_profile_chain(&o, 10, 4, &s), TSR_OK);
    tsr_clear_error();
}

static tsr_nn_model *small_model(void) {
    tsr_act_spec as;
    tt_ok(tsr_act_parse("poly2", &as));
    tsr_model *tm;
    tt_ok(tsr_model_build(&tm, "cryptonets", &as, 4));
    const char *path = tt_temp_path(".onnx");
    tt_ok(tsr_model_save_onnx(tm, NULL, path));
    tsr_model_free(tm);
    tsr_nn_model *m;
    char *rep = NULL;
    tt_ok(tsr_nn_import_onnx(path, NULL, &m, &rep));
    tsr_nn_string_free(rep);
    remove(path);
    return m;
}

static void plan_bytes(const tsr_nn_model *m, const char *profile, int batch, uint8_t **b,
                       size_t *n, uint8_t id[32], double *pred) {
    tsr_nn_compile_opts o;
    tsr_nn_compile_opts_default(&o);
    o.batch = batch;
    o.min_log_n = 10;
    o.max_log_n = 12;
    o.ckks_flags = TSR_CKKS_ALLOW_INSECURE_PARAMETERS;
    o.profile = profile;
    tsr_nn_plan *p;
    tt_ok(tsr_nn_compile(m, &o, &p));
    tt_ok(tsr_nn_plan_to_bytes(p, b, n));
    tsr_nn_plan_id(p, id);
    *pred = tsr_nn_plan_predicted_seconds(p);
    tsr_nn_plan_free(p);
}

/* The built-in profile with every cost multiplied by f, written to a file. */
static const char *scaled_builtin(double f) {
    _Static_assert(sizeof(nn_costs) == 14 * sizeof(double), "nn_costs is 14 doubles");
    nn_profile *p;
    tt_ok(nn_profile_load(NULL, &p));
    const char *path = tt_temp_path(".prof");
    FILE *fp = fopen(path, "w");
    assert_non_null(fp);
    fprintf(fp, "tessera-profile 3\ncpu scaled\nsimd portable\nthreads 1\n");
    static const char *const names[] = {
        "add",          "mul_plain",   "mul_const",       "mul_ct",           "rescale",
        "rotate",       "hoist_extra", "encode",          "encrypt",          "decrypt",
        "lincomb_term", "copy",        "sq_lincomb_term", "prod_lincomb_term"
    };
    for (int i = 0; i < p->n; i++) {
        fprintf(fp, "point log_n=%d levels=%d", p->pts[i].log_n, p->pts[i].levels);
        double v[14];
        memcpy(v, &p->pts[i].c, sizeof v);
        for (int k = 0; k < 14; k++) fprintf(fp, " %s=%.17g", names[k], v[k] * f);
        fprintf(fp, "\n");
    }
    for (int i = 0; i < p->n_ks; i++) {
        const nn_profile_ks *k = &p->ks[i];
        fprintf(fp,
                "ks log_n=%d levels=%d level=%d alpha=%d special=%d rotate=%.17g "
                "hoist_extra=%.17g mul_ct=%.17g\n",
                k->log_n, k->levels, k->level, k->alpha, k->special, k->t[0] * f, k->t[1] * f,
                k->t[2] * f);
    }
    fclose(fp);
    nn_profile_free(p);
    return path;
}

static void test_deterministic_compile(void **state) {
    (void)state;
    tsr_nn_model *m = small_model();
    uint8_t *a, *b, ida[32], idb[32];
    size_t na, nb;
    double pa, pb;
    for (int batch = 1; batch <= 64; batch *= 64) {
        plan_bytes(m, NULL, batch, &a, &na, ida, &pa);
        plan_bytes(m, NULL, batch, &b, &nb, idb, &pb);
        assert_int_equal(na, nb);
        assert_memory_equal(a, b, na);
        tsr_nn_bytes_free(b);
        /* costs three times higher: the same plan and id, three times the prediction */
        const char *prof = scaled_builtin(3.0);
        plan_bytes(m, prof, batch, &b, &nb, idb, &pb);
        remove(prof);
        assert_memory_equal(ida, idb, 32);
        assert_true(fabs(pb / pa - 3.0) < 1e-9);
        assert_true(na != nb || memcmp(a, b, na) != 0); /* the predictions are in the file */
        tsr_nn_bytes_free(a);
        tsr_nn_bytes_free(b);
    }
    /* a profile without the ring degrees asked for */
    const char *path = tt_temp_path(".prof");
    FILE *fp = fopen(path, "w");
    assert_non_null(fp);
    fprintf(fp, HEADER "point log_n=16 levels=1 " COSTS1 "\n");
    fclose(fp);
    tsr_nn_compile_opts o;
    tsr_nn_compile_opts_default(&o);
    o.min_log_n = 10;
    o.max_log_n = 12;
    o.ckks_flags = TSR_CKKS_ALLOW_INSECURE_PARAMETERS;
    o.profile = path;
    tsr_nn_plan *p = NULL;
    assert_int_equal(tsr_nn_compile(m, &o, &p), TSR_ERR_UNSUPPORTED);
    assert_non_null(strstr(tsr_last_error(), "no measurements for N = 2^1"));
    /* a memory budget nothing fits in */
    o.profile = NULL;
    o.max_memory_mib = 0.01;
    assert_int_equal(tsr_nn_compile(m, &o, &p), TSR_ERR_UNSUPPORTED);
    assert_non_null(strstr(tsr_last_error(), "MiB of server memory"));
    remove(path);
    tsr_nn_model_free(m);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_and_interpolate),
        cmocka_unit_test(test_parse_errors),
        cmocka_unit_test(test_ks_model),
        cmocka_unit_test(test_step_levels),
        cmocka_unit_test(test_builtin),
        cmocka_unit_test(test_profile_chains),
        cmocka_unit_test(test_deterministic_compile),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
