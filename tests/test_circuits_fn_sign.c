/*
 * tests/test_circuits_fn_sign.c - sign and ReLU by composite minimax
 * polynomials: the Remez result checked by the alternation theorem, the
 * composite's error against its stated delta, oddness and the range
 * scaling, the plans, precision in bits against plaintext sign(x) / ReLU(x)
 * outside the gap and against the plaintext composite everywhere, and the
 * error cases.
 */
#include "testutil.h"

#include "tessera.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define HE_LEVELS 16

static double sgn(double x) {
    return x > 0 ? 1 : x < 0 ? -1 : 0;
}

static int clog2(size_t n) {
    int r = 0;
    while (((size_t)1 << r) < n) r++;
    return r;
}

/*
 * Chebyshev's alternation theorem: the odd minimax approximation of 1 on
 * [l, 1] with n basis functions has an error reaching +-delta alternately
 * at n + 1 points (and nowhere more). Checked on a fine grid for a single
 * component.
 */
static void test_sign_remez_alternation(void **state) {
    (void)state;
    const size_t degs[] = { 3, 7, 15, 27 };
    const double ls[] = { 0.3, 0.1, 0.05, 0.02 };
    for (size_t k = 0; k < 4; k++) {
        tsr_circuits_sign_poly *s;
        tt_ok(tsr_circuits_sign_poly_create(&s, 1, ls[k], &degs[k], 1));
        tsr_circuits_fn_info info;
        tt_ok(tsr_circuits_sign_plan(s, 0, 10, &info));
        double delta = exp2(-info.approx_bits);
        size_t alternations = 0;
        int last = 0;
        double emax = 0;
        const int M = 200000;
        for (int i = 0; i <= M; i++) {
            double x = ls[k] + (1 - ls[k]) * i / M;
            double e = tsr_circuits_sign_poly_eval(s, x) - 1;
            emax = fmax(emax, fabs(e));
            int side = e >= delta * (1 - 1e-4) ? 1 : e <= -delta * (1 - 1e-4) ? -1 : 0;
            if (side && side != last) {
                alternations++;
                last = side;
            }
        }
        printf("sign degree %2zu on [%g, 1]: delta %.3e, %zu alternations\n", degs[k], ls[k], delta,
               alternations);
        assert_true(emax <= delta * (1 + 1e-6));
        assert_int_equal(alternations, (degs[k] + 1) / 2 + 1);
        /* odd: even coefficients are exactly zero */
        size_t count;
        const tsr_cheb *c = tsr_circuits_sign_poly_component(s, 0, &count);
        assert_int_equal(count, 1);
        assert_int_equal(c->degree, degs[k]);
        for (size_t j = 0; j <= c->degree; j += 2) assert_true(c->coeffs[j] == 0);
        assert_null(tsr_circuits_sign_poly_component(s, 1, NULL));
        tsr_circuits_sign_poly_free(s);
    }
}

/* The composite: error outside the gap = delta (reached), oddness, scaling, more components. */
static void test_sign_composite(void **state) {
    (void)state;
    const size_t d3[] = { 15, 15, 27 };
    const double eps = 0x1p-8;
    double prev_bits = -1;
    tsr_circuits_sign_poly *s1 = NULL;
    for (size_t n = 1; n <= 3; n++) {
        tsr_circuits_sign_poly *s;
        tt_ok(tsr_circuits_sign_poly_create(&s, 1, eps, d3, n));
        tsr_circuits_fn_info info;
        tt_ok(tsr_circuits_sign_plan(s, 0, 20, &info));
        double delta = exp2(-info.approx_bits), emax = 0;
        const int M = 100000;
        for (int i = 0; i <= M; i++) {
            /* denser near the gap, where the first component varies fastest */
            double x = eps + (1 - eps) * pow((double)i / M, 2);
            double p = tsr_circuits_sign_poly_eval(s, x);
            assert_true(fabs(tsr_circuits_sign_poly_eval(s, -x) + p) <= 1e-12);
            emax = fmax(emax, fabs(p - 1));
        }
        printf("sign 15/15/27, %zu components, eps 2^-8: %.2f bits outside the gap\n", n,
               info.approx_bits);
        assert_true(emax <= delta * (1 + 1e-6) + 1e-15);
        assert_true(emax >= delta * (1 - 1e-2));
        assert_true(info.approx_bits > prev_bits + 1);
        prev_bits = info.approx_bits;
        /* intermediate components keep their values in [-1, 1] */
        size_t count;
        tsr_circuits_sign_poly_component(s, 0, &count);
        assert_int_equal(count, n);
        for (size_t c = 0; c + 1 < count; c++) {
            const tsr_cheb *ser = tsr_circuits_sign_poly_component(s, c, NULL);
            for (int i = 0; i <= 4000; i++)
                assert_true(fabs(tsr_circuits_cheb_eval(ser, -1 + i / 2000.0)) <= 1 + 1e-12);
        }
        if (n == 3)
            s1 = s;
        else
            tsr_circuits_sign_poly_free(s);
    }
    assert_true(prev_bits > 20);
    /* B = 4: the same composite on x / 4 */
    tsr_circuits_sign_poly *s4;
    tt_ok(tsr_circuits_sign_poly_create(&s4, 4, eps, d3, 3));
    for (int i = -100; i <= 100; i++) {
        double x = i / 100.0;
        assert_true(fabs(tsr_circuits_sign_poly_eval(s4, 4 * x) -
                         tsr_circuits_sign_poly_eval(s1, x)) < 1e-12);
    }
    tsr_circuits_sign_poly_free(s4);
    tsr_circuits_sign_poly_free(s1);
}

static void test_sign_plan(void **state) {
    (void)state;
    const size_t d3[] = { 15, 15, 27 };
    tsr_circuits_sign_poly *s;
    tsr_circuits_fn_info info, relu;
    for (int bound = 1; bound <= 2; bound++) {
        tt_ok(tsr_circuits_sign_poly_create(&s, bound, 0.01, d3, 3));
        int want = clog2(16) + clog2(16) + clog2(28) + (bound != 1);
        tt_ok(tsr_circuits_sign_plan(s, 0, 20, &info));
        assert_int_equal(info.depth, want);
        assert_int_equal(info.out_level, 20 - want);
        assert_int_equal(info.needs_relin_key, 1);
        tt_ok(tsr_circuits_sign_plan(s, 1, 20, &relu));
        assert_int_equal(relu.depth, want + 1);
        assert_int_equal(relu.ct_mults, info.ct_mults + 1);
        /* ReLU's error outside the gap is |x| |sign error| / 2 <= B delta / 2 */
        assert_true(fabs(relu.approx_bits - (info.approx_bits + 1 - log2(bound))) < 1e-9);
        tt_fails(tsr_circuits_sign_plan(s, 0, want - 1, &info), TSR_ERR_LEVEL);
        assert_non_null(strstr(tsr_last_error(), "levels"));
        tt_fails(tsr_circuits_sign_plan(s, 1, want, &info), TSR_ERR_LEVEL);
        assert_non_null(strstr(tsr_last_error(), "product with x"));
        tsr_circuits_sign_poly_free(s);
    }
    /* bad arguments */
    size_t bad[] = { 15, 16 };
    tt_fails(tsr_circuits_sign_poly_create(&s, 1, 0.01, bad, 2), TSR_ERR_INVALID_ARG);
    bad[1] = 1;
    tt_fails(tsr_circuits_sign_poly_create(&s, 1, 0.01, bad, 2), TSR_ERR_INVALID_ARG);
    bad[1] = TSR_CIRCUITS_SIGN_MAX_DEGREE + 2;
    tt_fails(tsr_circuits_sign_poly_create(&s, 1, 0.01, bad, 2), TSR_ERR_INVALID_ARG);
    tt_fails(tsr_circuits_sign_poly_create(&s, 1, 0.01, d3, 0), TSR_ERR_INVALID_ARG);
    tt_fails(tsr_circuits_sign_poly_create(&s, 1, 0, d3, 3), TSR_ERR_INVALID_ARG);
    tt_fails(tsr_circuits_sign_poly_create(&s, 1, 1, d3, 3), TSR_ERR_INVALID_ARG);
    tt_fails(tsr_circuits_sign_poly_create(&s, 0, 0.01, d3, 3), TSR_ERR_INVALID_ARG);
    tt_fails(tsr_circuits_sign_poly_create(&s, NAN, 0.01, d3, 3), TSR_ERR_INVALID_ARG);
    size_t many[TSR_CIRCUITS_SIGN_MAX_COMPONENTS + 1];
    for (size_t i = 0; i <= TSR_CIRCUITS_SIGN_MAX_COMPONENTS; i++) many[i] = 3;
    tt_fails(tsr_circuits_sign_poly_create(&s, 1, 0.01, many, TSR_CIRCUITS_SIGN_MAX_COMPONENTS + 1),
             TSR_ERR_INVALID_ARG);
    tsr_circuits_sign_poly_free(NULL);
}

/* ---- on ciphertexts ----------------------------------------------------------------------- */

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

/* Insecure small ring (tests only): N = 2^12 (2^11 under sanitizers), 16 levels of 40 bits. */
static int he_setup(void **state) {
    he *h = calloc(1, sizeof *h);
    if (!h) return -1;
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
    *state = h;
    return 0;
}

static int he_teardown(void **state) {
    he *h = *state;
    tsr_ckks_plaintext_free(h->pt);
    tsr_ckks_evaluator_free(h->ev);
    tsr_ckks_encoder_free(h->enc);
    tsr_ckks_relin_key_free(h->rk);
    tsr_ckks_public_key_free(h->pk);
    tsr_ckks_secret_key_free(h->sk);
    tsr_ckks_params_free(h->p);
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

/*
 * Slots in [-B, B]: one in 8 inside the gap (-eps B, eps B), the others
 * outside with |x| uniform in [eps B, B] and the ends included.
 */
static double *inputs(he *h, double B, double eps, uint64_t domain) {
    tsr_prng g;
    tt_prng(&g, domain);
    double *x = malloc(h->slots * sizeof *x);
    assert_non_null(x);
    for (size_t i = 0; i < h->slots; i++) {
        double u = tsr_prng_double(&g), s = tsr_prng_double(&g) < 0.5 ? -1 : 1;
        x[i] = i % 8 == 7 ? s * eps * B * u : s * B * (eps + (1 - eps) * u);
    }
    x[0] = eps * B;
    x[1] = -eps * B;
    x[2] = B;
    x[3] = -B;
    return x;
}

typedef struct sign_case {
    double bound, eps;
    size_t degrees[3];
    size_t n;
    int relu;
    double min_bits; /* outside the gap vs sign / ReLU: measured minus about 3 bits */
} sign_case;

static void test_sign_encrypted(void **state) {
    he *h = *state;
    const sign_case cases[] = {
        { 1, 0x1p-8, { 15, 15, 27 }, 3, 0, 21 },
        { 1, 0x1p-6, { 7, 7, 7 }, 3, 0, 0 }, /* approximation-limited */
        { 4, 0x1p-8, { 15, 15, 27 }, 3, 1, 20 },
        { 1, 0x1p-5, { 15, 27 }, 2, 1, 21 },
    };
    double *got = malloc(h->slots * sizeof *got), *want = malloc(h->slots * sizeof *want);
    double *plain = malloc(h->slots * sizeof *plain);
    assert_true(got && want && plain);
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        const sign_case *k = &cases[c];
        tsr_circuits_sign_poly *s;
        tt_ok(tsr_circuits_sign_poly_create(&s, k->bound, k->eps, k->degrees, k->n));
        double *x = inputs(h, k->bound, k->eps, 60 + c);
        tsr_ckks_ciphertext *ct = encrypt_at(h, x, HE_LEVELS);
        tsr_circuits_fn_info info, plan;
        if (k->relu)
            tt_ok(tsr_circuits_relu(h->ev, ct, ct, s, &info));
        else
            tt_ok(tsr_circuits_sign(h->ev, ct, ct, s, &info));
        tt_ok(tsr_circuits_sign_plan(s, k->relu, HE_LEVELS, &plan));
        assert_memory_equal(&info, &plan, sizeof info);
        int level = HE_LEVELS - info.depth;
        assert_int_equal(tsr_ckks_ciphertext_level(ct), level);
        assert_true(tsr_ckks_ciphertext_scale(ct) == tsr_ckks_params_scale(h->p, level));
        tt_ok(tsr_ckks_decrypt(h->sk, h->pt, ct));
        tt_ok(tsr_ckks_decode_real(h->enc, h->pt, got, h->slots, NULL));
        /* against the plaintext composite everywhere, and against sign / ReLU outside the gap */
        double worst_out = 0, worst_plain = 0;
        for (size_t i = 0; i < h->slots; i++) {
            double p = tsr_circuits_sign_poly_eval(s, x[i]);
            plain[i] = k->relu ? x[i] * (1 + p) / 2 : p;
            want[i] = k->relu ? fmax(x[i], 0) : sgn(x[i]);
            worst_plain = fmax(worst_plain, fabs(got[i] - plain[i]));
            if (fabs(x[i]) >= k->eps * k->bound)
                worst_out = fmax(worst_out, fabs(got[i] - want[i]));
        }
        double bits_out = -log2(worst_out), bits_plain = -log2(worst_plain);
        printf("%s B=%g eps=2^%.0f degrees %zu", k->relu ? "relu" : "sign", k->bound, log2(k->eps),
               k->degrees[0]);
        for (size_t i = 1; i < k->n; i++) printf("/%zu", k->degrees[i]);
        printf(", %d levels: %.1f bits outside the gap (algorithm %.1f), %.1f bits vs the "
               "plaintext composite\n",
               info.depth, bits_out, info.approx_bits, bits_plain);
        assert_true(bits_out <= info.approx_bits + 0.5);
        assert_true(bits_out >= fmin(k->min_bits, info.approx_bits - 1));
        assert_true(bits_plain >= 16); /* inside the gap the composite is steep */
        tsr_ckks_ciphertext_free(ct);
        free(x);
        tsr_circuits_sign_poly_free(s);
    }
    free(got);
    free(want);
    free(plain);
}

static void test_sign_errors(void **state) {
    he *h = *state;
    const size_t d[] = { 7, 15 };
    tsr_circuits_sign_poly *s;
    tt_ok(tsr_circuits_sign_poly_create(&s, 2, 0.05, d, 2));
    double *x = inputs(h, 2, 0.05, 70);
    /* depth 1 (map) + 3 + 4 = 8; ReLU 9 */
    tsr_ckks_ciphertext *in = encrypt_at(h, x, 8), *out;
    tt_ok(tsr_ckks_ciphertext_create(&out, h->p));
    tt_ok(tsr_circuits_sign(h->ev, out, in, s, NULL));
    assert_int_equal(tsr_ckks_ciphertext_level(out), 0);
    tt_fails(tsr_circuits_relu(h->ev, out, in, s, NULL), TSR_ERR_LEVEL);
    assert_non_null(strstr(tsr_last_error(), "needs 9 levels"));
    assert_non_null(strstr(tsr_last_error(), "at level 8"));
    tsr_ckks_ciphertext *off;
    tt_ok(tsr_ckks_ciphertext_clone(&off, in));
    tt_ok(tsr_ckks_ciphertext_set_scale(off, tsr_ckks_ciphertext_scale(in) * 1.5));
    tt_fails(tsr_circuits_sign(h->ev, out, off, s, NULL), TSR_ERR_SCALE);
    tt_fails(tsr_circuits_relu(h->ev, out, off, s, NULL), TSR_ERR_SCALE);
    tsr_ckks_ciphertext_free(off);
    tsr_ckks_evaluator *bare;
    tt_ok(tsr_ckks_evaluator_create(&bare, h->p, NULL, NULL));
    tt_fails(tsr_circuits_sign(bare, out, in, s, NULL), TSR_ERR_KEY_MISSING);
    assert_non_null(strstr(tsr_last_error(), "relinearization key"));
    tsr_ckks_evaluator_free(bare);
    tsr_ckks_ciphertext *empty;
    tt_ok(tsr_ckks_ciphertext_create(&empty, h->p));
    tt_fails(tsr_circuits_relu(h->ev, out, empty, s, NULL), TSR_ERR_INVALID_ARG);
    tsr_ckks_ciphertext_free(empty);
    tsr_ckks_ciphertext_free(out);
    tsr_ckks_ciphertext_free(in);
    tsr_circuits_sign_poly_free(s);
    free(x);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sign_remez_alternation),
        cmocka_unit_test(test_sign_composite),
        cmocka_unit_test(test_sign_plan),
        cmocka_unit_test_setup_teardown(test_sign_encrypted, he_setup, he_teardown),
        cmocka_unit_test_setup_teardown(test_sign_errors, he_setup, he_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
