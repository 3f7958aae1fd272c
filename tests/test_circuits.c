/*
 * tests/test_circuits.c - the circuits layer: Chebyshev series in doubles
 * (exact identities, known expansions, least-squares fits, error grids) and
 * polynomial evaluation on ciphertexts (precision in bits against the
 * plaintext Clenshaw evaluation of the same series, the predicted output
 * level and canonical scale, the depth bound ceil(log2(d+1)) for every
 * degree up to 255 by the plan, and the error cases).
 */
#include "testutil.h"

#include "ckks/evaluator_internal.h"
#include "circuits/circuits_internal.h"

#include "tessera.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- plaintext Chebyshev series ---------------------------------------------------- */

/* The series e_n (c_n = 1) evaluated at cos(t) is cos(n t), on [-1, 1] and mapped. */
static void test_cheb_identity(void **state) {
    (void)state;
    double c[41];
    const double ivals[3][2] = { { -1, 1 }, { 1, 2 }, { -8, 8 } };
    for (size_t iv = 0; iv < 3; iv++)
        for (size_t n = 0; n <= 40; n++) {
            memset(c, 0, sizeof c);
            c[n] = 1;
            tsr_cheb s = { ivals[iv][0], ivals[iv][1], n, c };
            for (int j = 0; j <= 16; j++) {
                double t = M_PI * j / 16.0 + 0.01 * j;
                double x = s.a + (s.b - s.a) * (cos(t) + 1) / 2;
                double got = tsr_circuits_cheb_eval(&s, x);
                assert_true(fabs(got - cos((double)n * t)) < 1e-12);
            }
        }
}

static double series_fn(double x, void *ctx) {
    return tsr_circuits_cheb_eval((const tsr_cheb *)ctx, x);
}

/* Fitting a polynomial of degree d at degree >= d gives its coefficients back (zeros above d). */
static void test_cheb_fit_exact(void **state) {
    (void)state;
    tsr_prng g;
    tt_prng(&g, 1);
    double c[64], got[80];
    for (size_t d = 0; d <= 60; d += 3) {
        for (size_t i = 0; i <= d; i++) c[i] = 2 * tsr_prng_double(&g) - 1;
        tsr_cheb s = { -3, 5, d, c };
        /* interpolation at d + 1 nodes, then least squares at 3d + 7 nodes, at degree d + 10 */
        tt_ok(tsr_circuits_cheb_fit(got, d, 0, s.a, s.b, series_fn, &s));
        for (size_t i = 0; i <= d; i++) assert_true(fabs(got[i] - c[i]) < 1e-13);
        tt_ok(tsr_circuits_cheb_fit(got, d + 10, 3 * d + 7 + 10, s.a, s.b, series_fn, &s));
        for (size_t i = 0; i <= d + 10; i++)
            assert_true(fabs(got[i] - (i <= d ? c[i] : 0)) < 1e-13);
    }
}

/* I_j(1) and J_j(1) by their power series. */
static double bessel_1(int j, int modified) {
    double sum = 0, term = 1;
    for (int i = 1; i <= j; i++) term /= 2.0 * i; /* (1/2)^j / j! */
    for (int k = 0; k < 30; k++) {
        sum += (modified || k % 2 == 0 ? 1 : -1) * term;
        term *= 0.25 / ((k + 1.0) * (k + 1.0 + j));
    }
    return sum;
}

static double f_exp(double x, void *ctx) {
    (void)ctx;
    return exp(x);
}
static double f_sin(double x, void *ctx) {
    (void)ctx;
    return sin(x);
}
static double f_inv(double x, void *ctx) {
    (void)ctx;
    return 1 / x;
}
static double f_tanh(double x, void *ctx) {
    (void)ctx;
    return tanh(x);
}
static double f_sigmoid(double x, void *ctx) {
    (void)ctx;
    return 1 / (1 + exp(-x));
}
static double f_relu(double x, void *ctx) {
    (void)ctx;
    return x > 0 ? x : 0;
}

/*
 * Known expansions (Trefethen ch. 3, Abramowitz-Stegun 9.6.34, 9.1.45):
 * exp(x) = I_0(1) + 2 sum I_j(1) T_j(x); sin(x) = 2 sum (-1)^k J_{2k+1}(1)
 * T_{2k+1}(x); 1/(a + y) = (1/sqrt(a^2-1)) (1 + 2 sum (-rho)^k T_k(y)) with
 * rho = a - sqrt(a^2 - 1); 1/x on [1, 2] is 2/(3 + y).
 */
static void test_cheb_known(void **state) {
    (void)state;
    double c[25];
    tt_ok(tsr_circuits_cheb_fit(c, 24, 0, -1, 1, f_exp, NULL));
    for (int j = 0; j <= 20; j++) assert_true(fabs(c[j] - (j ? 2 : 1) * bessel_1(j, 1)) < 1e-14);
    tt_ok(tsr_circuits_cheb_fit(c, 24, 0, -1, 1, f_sin, NULL));
    for (int j = 0; j <= 20; j++) {
        double want = j % 2 ? 2 * ((j / 2) % 2 ? -1 : 1) * bessel_1(j, 0) : 0;
        assert_true(fabs(c[j] - want) < 1e-14);
    }
    tt_ok(tsr_circuits_cheb_fit(c, 24, 0, 1, 2, f_inv, NULL));
    double r8 = sqrt(8.0), rho = 3 - r8;
    for (int j = 0; j <= 20; j++) {
        double want = 2 / r8 * (j ? 2 * pow(-rho, j) : 1);
        assert_true(fabs(c[j] - want) < 1e-14);
    }
}

/* Max error on a grid: within Trefethen's bound 2 sum_{j>d} |c_j|, shrinking with d. */
static void test_cheb_max_error(void **state) {
    (void)state;
    double ref[201], c[64];
    tt_ok(tsr_circuits_cheb_fit(ref, 200, 0, -4, 4, f_tanh, NULL));
    double prev = INFINITY;
    const size_t degs[] = { 7, 15, 31, 63 };
    for (size_t i = 0; i < 4; i++) {
        size_t d = degs[i];
        tt_ok(tsr_circuits_cheb_fit(c, d, 0, -4, 4, f_tanh, NULL));
        tsr_cheb s = { -4, 4, d, c };
        double err, at;
        tt_ok(tsr_circuits_cheb_max_error(&s, f_tanh, NULL, 4001, &err, &at));
        double tail = 0;
        for (size_t j = d + 1; j <= 200; j++) tail += fabs(ref[j]);
        assert_true(err <= 2 * tail + 1e-15);
        assert_true(err > 0 && err < prev);
        assert_true(at >= -4 && at <= 4);
        assert_true(fabs(fabs(tsr_circuits_cheb_eval(&s, at) - tanh(at)) - err) == 0);
        prev = err;
    }
    assert_true(prev < 1e-6);
}

static double f_bad(double x, void *ctx) {
    (void)ctx;
    return x > 0.5 ? NAN : x;
}

static void test_cheb_errors(void **state) {
    (void)state;
    double c[8] = { 0 };
    tt_fails(tsr_circuits_cheb_fit(c, 7, 0, 1, 1, f_exp, NULL), TSR_ERR_INVALID_ARG);
    tt_fails(tsr_circuits_cheb_fit(c, 7, 0, 0, INFINITY, f_exp, NULL), TSR_ERR_INVALID_ARG);
    tt_fails(tsr_circuits_cheb_fit(c, 7, 5, -1, 1, f_exp, NULL), TSR_ERR_INVALID_ARG);
    tt_fails(tsr_circuits_cheb_fit(c, 7, 0, -1, 1, f_bad, NULL), TSR_ERR_INVALID_ARG);
    tt_fails(tsr_circuits_cheb_fit(c, TSR_CIRCUITS_MAX_DEGREE + 1, 0, -1, 1, f_exp, NULL),
             TSR_ERR_INVALID_ARG);
    tsr_cheb s = { -1, 1, 7, c };
    double err;
    tt_fails(tsr_circuits_cheb_max_error(&s, f_exp, NULL, 1, &err, NULL), TSR_ERR_INVALID_ARG);
    tt_fails(tsr_circuits_cheb_max_error(&s, f_bad, NULL, 11, &err, NULL), TSR_ERR_INVALID_ARG);
    s.b = -2;
    tt_fails(tsr_circuits_cheb_max_error(&s, f_exp, NULL, 11, &err, NULL), TSR_ERR_INVALID_ARG);
    s.b = 1;
    c[3] = NAN;
    tt_fails(tsr_circuits_cheb_max_error(&s, f_exp, NULL, 11, &err, NULL), TSR_ERR_INVALID_ARG);
}

/* ---- the plan: depth for every degree ----------------------------------------------- */

static int clog2(size_t n) {
    int r = 0;
    while (((size_t)1 << r) < n) r++;
    return r;
}

/*
 * For every degree 1..255, dense, odd-only and even-only coefficients: the
 * plan fits in exactly ceil(log2(d+1)) levels (+1 for the interval map) and
 * fails with TSR_ERR_LEVEL one level below.
 */
static void test_plan_depth(void **state) {
    (void)state;
    tsr_prng g;
    tt_prng(&g, 2);
    double c[256];
    for (int pattern = 0; pattern < 3; pattern++)
        for (size_t d = 1; d <= 255; d++) {
            for (size_t i = 0; i <= d; i++) {
                int keep = pattern == 0 || (pattern == 1 ? i % 2 == 1 : i % 2 == 0) || i == d;
                c[i] = keep ? 2 * tsr_prng_double(&g) - 1 : 0;
            }
            tsr_cheb s = { -1, 1, d, c };
            tsr_circuits_poly_info info;
            int want = clog2(d + 1);
            tt_ok(tsr_circuits_poly_plan(&s, want, &info));
            assert_int_equal(info.poly_depth, want);
            assert_int_equal(info.map_depth, 0);
            assert_int_equal(info.depth, want);
            assert_int_equal(info.out_level, 0);
            assert_true(info.ct_mults + 1 >= (size_t)want); /* degree 2^(m-1) needs m - 1 */
            tt_fails(tsr_circuits_poly_plan(&s, want - 1, &info), TSR_ERR_LEVEL);
            s.a = -8;
            tt_ok(tsr_circuits_poly_plan(&s, want + 1, &info));
            assert_int_equal(info.depth, want + 1);
            tt_fails(tsr_circuits_poly_plan(&s, want, &info), TSR_ERR_LEVEL);
        }
    /* Trailing zeros do not count; degree 0 costs nothing. */
    memset(c, 0, sizeof c);
    c[0] = 3;
    c[5] = 1;
    tsr_cheb s = { 0, 1, 200, c };
    tsr_circuits_poly_info info;
    tt_ok(tsr_circuits_poly_plan(&s, 10, &info));
    assert_int_equal(info.degree, 5);
    assert_int_equal(info.depth, 1 + 3);
    assert_int_equal(info.out_level, 6);
    c[5] = 0;
    tt_ok(tsr_circuits_poly_plan(&s, 0, &info));
    assert_int_equal(info.depth, 0);
    assert_int_equal(info.ct_mults, 0);
    /* Operation counts of dense series (reported in docs/CIRCUITS.md). */
    for (size_t d = 7; d <= 255; d = 2 * d + 1) {
        for (size_t i = 0; i <= d; i++) c[i] = 1.0 / (double)(i + 1);
        tsr_cheb sd = { -1, 1, d, c };
        tt_ok(tsr_circuits_poly_plan(&sd, 20, &info));
        printf("plan: degree %3zu: depth %d, k = %zu baby steps, %zu ciphertext products, %zu "
               "relinearizations, %zu constant products\n",
               d, info.depth, info.baby_steps, info.ct_mults, info.relins, info.const_mults);
        /* k is chosen for the fewest relinearizations: never more than the default's */
        tsr_circuits_poly_info def;
        tt_ok(circuits_poly_plan_k(&sd, 20, 0, &def));
        printf("plan: degree %3zu default k = %zu: %zu ciphertext products, %zu "
               "relinearizations\n",
               d, def.baby_steps, def.ct_mults, def.relins);
        assert_true(info.relins <= def.relins);
        assert_true(info.relins < def.relins || info.ct_mults <= def.ct_mults);
        assert_true(info.relins <= info.ct_mults);
        /* docs/CIRCUITS.md item 6 */
        if (d == 7) assert_int_equal(info.relins, 4);
        if (d == 15) assert_int_equal(info.relins, 7);
        if (d == 31) assert_int_equal(info.relins, 10);
        if (d == 31) assert_int_equal(def.relins, 12);
        if (d == 63) assert_int_equal(info.relins, 15);
        /* an odd series skips the even terms and the powers only they need */
        tsr_circuits_poly_info odd, odd_k;
        for (size_t i = 0; i <= d; i += 2) c[i] = 0;
        tt_ok(tsr_circuits_poly_plan(&sd, 20, &odd));
        printf("plan: degree %3zu odd: k = %zu, %zu ciphertext products, %zu relinearizations, "
               "%zu constant products\n",
               d, odd.baby_steps, odd.ct_mults, odd.relins, odd.const_mults);
        assert_int_equal(odd.depth, info.depth);
        assert_true(odd.relins <= info.relins);
        /* at the default k, strictly fewer constant products and no more ciphertext ones
         * (at k = 2, which the chosen plans of degree 7 use, the leaves are T_0 and T_1 only,
         * and T_0 is added without a product: there equality is possible) */
        tt_ok(circuits_poly_plan_k(&sd, 20, 0, &odd_k));
        assert_true(odd_k.ct_mults <= def.ct_mults);
        assert_true(odd_k.const_mults < def.const_mults);
        if (d == 255) {
            assert_int_equal(odd.ct_mults, 33);
            assert_int_equal(odd.const_mults, 128);
        }
    }
}

/* ---- evaluation on ciphertexts ------------------------------------------------------- */

#define HE_LEVELS 9

typedef struct he {
    tsr_ckks_params *p;
    tsr_ckks_secret_key *sk;
    tsr_ckks_public_key *pk;
    tsr_ckks_relin_key *rk;
    tsr_ckks_encoder *enc;
    tsr_ckks_evaluator *ev;
    tsr_ckks_plaintext *pt;
    size_t slots;
} he;

/* Insecure small ring (tests only): N = 2^12 (2^11 under sanitizers), 9 levels of 40 bits. */
static void he_init(he *h) {
    memset(h, 0, sizeof *h);
    tsr_ckks_param_spec spec = { .log_n = tt_sanitized() ? 11 : 12,
                                 .first_prime_bits = 60,
                                 .scale_bits = 40,
                                 .levels = HE_LEVELS,
                                 .special_primes = 2,
                                 .special_prime_bits = 60,
                                 .dnum = 0,
                                 .secret = TSR_CKKS_SECRET_TERNARY,
                                 .hamming_weight = 0,
                                 .flags = TSR_CKKS_ALLOW_INSECURE_PARAMETERS };
    tt_ok(tsr_ckks_params_create(&h->p, &spec));
    tt_ok(tsr_ckks_secret_key_create(&h->sk, h->p));
    tt_ok(tsr_ckks_public_key_create(&h->pk, h->sk));
    tt_ok(tsr_ckks_relin_key_create(&h->rk, h->sk));
    tt_ok(tsr_ckks_encoder_create(&h->enc, h->p));
    tt_ok(tsr_ckks_evaluator_create(&h->ev, h->p, h->rk, NULL));
    tt_ok(tsr_ckks_plaintext_create(&h->pt, h->p));
    h->slots = tsr_ckks_params_slots(h->p);
}

static void he_free(he *h) {
    tsr_ckks_plaintext_free(h->pt);
    tsr_ckks_evaluator_free(h->ev);
    tsr_ckks_encoder_free(h->enc);
    tsr_ckks_relin_key_free(h->rk);
    tsr_ckks_public_key_free(h->pk);
    tsr_ckks_secret_key_free(h->sk);
    tsr_ckks_params_free(h->p);
}

static int he_setup(void **state) {
    he *h = malloc(sizeof *h);
    if (!h) return -1;
    he_init(h);
    *state = h;
    return 0;
}

static int he_teardown(void **state) {
    he *h = *state;
    he_free(h);
    free(h);
    return 0;
}

static tsr_ckks_ciphertext *encrypt_at(he *h, const double *x, int level) {
    tsr_ckks_ciphertext *ct;
    tt_ok(tsr_ckks_ciphertext_create(&ct, h->p));
    tt_ok(tsr_ckks_encode_real(h->enc, h->pt, x, h->slots, level, 0));
    tt_ok(tsr_ckks_encrypt(h->pk, ct, h->pt));
    return ct;
}

/* Slots uniform in [a, b], both ends included. */
static double *inputs(he *h, double a, double b, uint64_t domain) {
    tsr_prng g;
    tt_prng(&g, domain);
    double *x = malloc(h->slots * sizeof *x);
    assert_non_null(x);
    for (size_t i = 0; i < h->slots; i++) x[i] = a + (b - a) * tsr_prng_double(&g);
    x[0] = a;
    x[1] = b;
    return x;
}

/*
 * Evaluate s on encrypted x at level `level`; check the level, the exact
 * canonical scale and the precision (bits) against Clenshaw in doubles.
 * Returns the precision.
 */
/* Key switches (relinearizations) of the last eval_check. */
static unsigned long last_switches;

static double eval_check(he *h, const tsr_cheb *s, const double *x, int level) {
    tsr_ckks_ciphertext *in = encrypt_at(h, x, level), *out;
    tt_ok(tsr_ckks_ciphertext_create(&out, h->p));
    tsr_circuits_poly_info info, plan;
    unsigned long d0 = h->ev->n_decompose;
    tt_ok(tsr_circuits_poly_eval(h->ev, out, in, s, &info));
    last_switches = h->ev->n_decompose - d0;
    /* lazy relinearization: at most one per ciphertext product, as many as planned */
    assert_true(last_switches <= info.ct_mults);
    assert_int_equal(last_switches, info.relins);
    tt_ok(tsr_circuits_poly_plan(s, level, &plan));
    assert_memory_equal(&info, &plan, sizeof info);
    int map = s->a == -1 && s->b == 1 ? 0 : 1;
    assert_int_equal(info.depth, (info.degree ? map + clog2(info.degree + 1) : 0));
    assert_int_equal(tsr_ckks_ciphertext_level(out), level - info.depth);
    assert_int_equal(info.out_level, level - info.depth);
    assert_true(tsr_ckks_ciphertext_scale(out) == tsr_ckks_params_scale(h->p, info.out_level));
    assert_int_equal(tsr_ckks_ciphertext_size(out), 2);
    double *got = malloc(h->slots * sizeof *got), *want = malloc(h->slots * sizeof *want);
    assert_true(got && want);
    for (size_t i = 0; i < h->slots; i++) want[i] = tsr_circuits_cheb_eval(s, x[i]);
    tt_ok(tsr_ckks_decrypt(h->sk, h->pt, out));
    double est;
    tt_ok(tsr_ckks_decode_real(h->enc, h->pt, got, h->slots, &est));
    double bits = tt_precision_bits(got, want, h->slots);
    /* the evaluator's error estimate follows the measurement (poly_eval tightens the
     * magnitude bounds of the Chebyshev powers); a constant is exact up to its
     * encoding, which the estimate may underrate */
    if (est >= bits + 4 || (info.degree > 0 && est <= bits - 4))
        fail_msg("measured %.1f bits, estimated %.1f", bits, est);
    free(got);
    free(want);
    tsr_ckks_ciphertext_free(out);
    tsr_ckks_ciphertext_free(in);
    return bits;
}

typedef struct he_case {
    const char *name;
    tsr_circuits_fn f;
    double a, b;
    size_t degree, nodes; /* nodes: 0 = interpolation, else least squares */
    double min_bits;      /* measured (docs/CIRCUITS.md) minus about 3 bits */
} he_case;

static void test_poly_eval_functions(void **state) {
    he *h = *state;
    const he_case cases[] = {
        { "sigmoid [-8,8]", f_sigmoid, -8, 8, 7, 0, 23 },
        { "sigmoid [-8,8]", f_sigmoid, -8, 8, 15, 0, 23 },
        { "sigmoid [-8,8]", f_sigmoid, -8, 8, 31, 0, 23 },
        { "sigmoid [-8,8]", f_sigmoid, -8, 8, 63, 0, 23 },
        { "exp [-1,1]", f_exp, -1, 1, 7, 0, 23 },
        { "exp [-1,1]", f_exp, -1, 1, 15, 0, 23 },
        { "exp [-1,1]", f_exp, -1, 1, 31, 0, 23 },
        { "tanh [-4,4]", f_tanh, -4, 4, 31, 0, 22 },
        { "relu lsq [-1,1]", f_relu, -1, 1, 15, 512, 23 },
        { "relu lsq [-4,4]", f_relu, -4, 4, 63, 1024, 20 },
        { "sigmoid [-8,8]", f_sigmoid, -8, 8, 255, 0, 23 },
    };
    double c[256];
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const he_case *k = &cases[i];
        tt_ok(tsr_circuits_cheb_fit(c, k->degree, k->nodes, k->a, k->b, k->f, NULL));
        tsr_cheb s = { k->a, k->b, k->degree, c };
        double *x = inputs(h, k->a, k->b, 100 + i);
        int level = HE_LEVELS;
        double bits = eval_check(h, &s, x, level);
        double approx;
        tt_ok(tsr_circuits_cheb_max_error(&s, k->f, NULL, 2001, &approx, NULL));
        printf("%-16s degree %3zu: %.1f bits vs plaintext (approximation error %.2e)\n", k->name,
               k->degree, bits, approx);
        assert_true(bits >= k->min_bits);
        free(x);
    }
}

/* Odd/even series, inputs below the top level, degree 0 and 1, aliasing. */
static void test_poly_eval_shapes(void **state) {
    he *h = *state;
    double c[32];
    double *x = inputs(h, -1, 1, 200);
    /* tanh on [-1, 1] is odd: only odd coefficients are nonzero (to rounding) */
    tt_ok(tsr_circuits_cheb_fit(c, 31, 0, -1, 1, f_tanh, NULL));
    for (size_t i = 0; i <= 31; i += 2) c[i] = 0;
    tsr_cheb s = { -1, 1, 31, c };
    assert_true(eval_check(h, &s, x, HE_LEVELS) >= 22);
    assert_true(eval_check(h, &s, x, 5) >= 22);
    /* a dense degree-31 series: the products of a chain of remainders (q T_16 + q' T_8 + ...,
     * all at the output level) share one relinearization */
    for (size_t i = 0; i <= 31; i++) c[i] = 1.0 / (double)((i + 1) * (i + 1));
    tsr_circuits_poly_info dense;
    tt_ok(tsr_circuits_poly_plan(&s, HE_LEVELS, &dense));
    /* precision as the eager order's: measured 24.8-26.1 bits lazy, 25.2 eager (each run
     * encrypts afresh: the shapes here move by up to 1.3 bits between runs) */
    assert_true(eval_check(h, &s, x, HE_LEVELS) >= 22);
    printf("# dense degree 31: %zu ciphertext products, %lu relinearizations\n", dense.ct_mults,
           last_switches);
    assert_true(last_switches < dense.ct_mults);
    /* degree 0: no level used */
    double c0[4] = { 0.75, 0, 0, 0 };
    tsr_cheb s0 = { -2, 2, 3, c0 };
    assert_true(eval_check(h, &s0, x, 3) >= 25);
    assert_true(eval_check(h, &s0, x, 0) >= 25);
    /* degree 1: one level, two with the map */
    double c1[2] = { 0.25, -0.5 };
    tsr_cheb s1 = { -1, 1, 1, c1 };
    assert_true(eval_check(h, &s1, x, 1) >= 25);
    s1.a = -1.5;
    assert_true(eval_check(h, &s1, x, 2) >= 25);
    /* degree 8 = 2^3: the quotient by T_8 is a constant */
    double c8[9] = { 0.1, -0.2, 0.3, 0, 0.05, 0, 0, 0.01, 0.5 };
    tsr_cheb s8 = { -1, 1, 8, c8 };
    assert_true(eval_check(h, &s8, x, 4) >= 21);
    /* out may alias in */
    tsr_ckks_ciphertext *ct = encrypt_at(h, x, HE_LEVELS);
    tt_ok(tsr_circuits_poly_eval(h->ev, ct, ct, &s8, NULL));
    assert_int_equal(tsr_ckks_ciphertext_level(ct), HE_LEVELS - 4);
    double *got = malloc(h->slots * sizeof *got), *want = malloc(h->slots * sizeof *want);
    assert_true(got && want);
    for (size_t i = 0; i < h->slots; i++) want[i] = tsr_circuits_cheb_eval(&s8, x[i]);
    tt_ok(tsr_ckks_decrypt(h->sk, h->pt, ct));
    tt_ok(tsr_ckks_decode_real(h->enc, h->pt, got, h->slots, NULL));
    assert_true(tt_precision_bits(got, want, h->slots) >= 21);
    free(got);
    free(want);
    tsr_ckks_ciphertext_free(ct);
    free(x);
}

static void test_poly_eval_errors(void **state) {
    he *h = *state;
    double c[16];
    tt_ok(tsr_circuits_cheb_fit(c, 15, 0, -8, 8, f_sigmoid, NULL));
    tsr_cheb s = { -8, 8, 15, c };
    double *x = inputs(h, -8, 8, 300);
    tsr_ckks_ciphertext *in = encrypt_at(h, x, 4), *out;
    tt_ok(tsr_ckks_ciphertext_create(&out, h->p));
    /* degree 15 on [-8, 8] needs 4 + 1 levels */
    tt_fails(tsr_circuits_poly_eval(h->ev, out, in, &s, NULL), TSR_ERR_LEVEL);
    assert_non_null(strstr(tsr_last_error(), "needs 5 levels"));
    assert_non_null(strstr(tsr_last_error(), "at level 4"));
    tsr_ckks_ciphertext_free(in);
    in = encrypt_at(h, x, 5);
    /* a scale off the canonical one */
    tsr_ckks_ciphertext *off;
    tt_ok(tsr_ckks_ciphertext_clone(&off, in));
    tt_ok(tsr_ckks_ciphertext_set_scale(off, tsr_ckks_ciphertext_scale(in) * 1.001));
    tt_fails(tsr_circuits_poly_eval(h->ev, out, off, &s, NULL), TSR_ERR_SCALE);
    assert_non_null(strstr(tsr_last_error(), "canonical"));
    /* a size-3 ciphertext */
    tt_ok(tsr_ckks_mul(h->ev, off, in, in));
    tt_fails(tsr_circuits_poly_eval(h->ev, out, off, &s, NULL), TSR_ERR_INVALID_ARG);
    tsr_ckks_ciphertext_free(off);
    /* no relinearization key: degree >= 2 fails, degree 1 needs none */
    tsr_ckks_evaluator *bare;
    tt_ok(tsr_ckks_evaluator_create(&bare, h->p, NULL, NULL));
    tt_fails(tsr_circuits_poly_eval(bare, out, in, &s, NULL), TSR_ERR_KEY_MISSING);
    assert_non_null(strstr(tsr_last_error(), "relinearization key"));
    tsr_cheb s1 = { -8, 8, 1, c };
    tt_ok(tsr_circuits_poly_eval(bare, out, in, &s1, NULL));
    assert_int_equal(tsr_ckks_ciphertext_level(out), 3);
    tsr_ckks_evaluator_free(bare);
    /* invalid series */
    tsr_cheb bad = s;
    bad.b = bad.a;
    tt_fails(tsr_circuits_poly_eval(h->ev, out, in, &bad, NULL), TSR_ERR_INVALID_ARG);
    bad = s;
    double cn[16];
    memcpy(cn, c, sizeof cn);
    cn[7] = INFINITY;
    bad.coeffs = cn;
    tt_fails(tsr_circuits_poly_eval(h->ev, out, in, &bad, NULL), TSR_ERR_INVALID_ARG);
    /* values that cannot fit the output level's modulus (2^60 at scale 2^40) */
    double big[4] = { 0, 3e6, 0, 1e6 };
    tsr_cheb sb = { -8, 8, 3, big };
    tsr_ckks_ciphertext *in3 = encrypt_at(h, x, 3);
    tt_fails(tsr_circuits_poly_eval(h->ev, out, in3, &sb, NULL), TSR_ERR_SCALE);
    assert_non_null(strstr(tsr_last_error(), "modulus at level"));
    big[1] = 3e4;
    big[3] = 1e4;
    tt_ok(tsr_circuits_poly_eval(h->ev, out, in3, &sb, NULL));
    assert_int_equal(tsr_ckks_ciphertext_level(out), 0);
    tsr_ckks_ciphertext_free(in3);
    /* an empty ciphertext */
    tsr_ckks_ciphertext *empty;
    tt_ok(tsr_ckks_ciphertext_create(&empty, h->p));
    tt_fails(tsr_circuits_poly_eval(h->ev, out, empty, &s, NULL), TSR_ERR_INVALID_ARG);
    tsr_ckks_ciphertext_free(empty);
    /* objects of other parameters */
    he other;
    he_init(&other);
    tsr_ckks_ciphertext *foreign = encrypt_at(&other, x, 5);
    tt_fails(tsr_circuits_poly_eval(h->ev, out, foreign, &s, NULL), TSR_ERR_MISMATCH);
    tsr_ckks_ciphertext_free(foreign);
    he_free(&other);
    tsr_ckks_ciphertext_free(out);
    tsr_ckks_ciphertext_free(in);
    free(x);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cheb_identity),
        cmocka_unit_test(test_cheb_fit_exact),
        cmocka_unit_test(test_cheb_known),
        cmocka_unit_test(test_cheb_max_error),
        cmocka_unit_test(test_cheb_errors),
        cmocka_unit_test(test_plan_depth),
        cmocka_unit_test_setup_teardown(test_poly_eval_functions, he_setup, he_teardown),
        cmocka_unit_test_setup_teardown(test_poly_eval_shapes, he_setup, he_teardown),
        cmocka_unit_test_setup_teardown(test_poly_eval_errors, he_setup, he_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
