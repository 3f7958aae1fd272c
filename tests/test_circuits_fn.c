/*
 * tests/test_circuits_fn.c - the inverse (Goldschmidt) and the inverse
 * square root (Newton from a Chebyshev guess) on ciphertexts: the plans
 * (depth, counts, keys) against formulas worked out here, approx_bits
 * against the closed-form error of Goldschmidt, precision in bits against
 * plaintext 1/x and 1/sqrt(x) over the stated ranges, exact output level
 * and canonical scale, and the error cases.
 */
#include "testutil.h"

#include "tessera.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define HE_LEVELS 12

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

/* Insecure small ring (tests only): N = 2^12 (2^11 under sanitizers), 12 levels of 40 bits. */
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

/* Slots uniform in [a, b] with both ends included. */
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

/* Decrypt ct; precision in bits against want; check level and exact canonical scale. */
static double check_out(he *h, const tsr_ckks_ciphertext *ct, int level, const double *want) {
    assert_int_equal(tsr_ckks_ciphertext_level(ct), level);
    assert_true(tsr_ckks_ciphertext_scale(ct) == tsr_ckks_params_scale(h->p, level));
    assert_int_equal(tsr_ckks_ciphertext_size(ct), 2);
    double *got = malloc(h->slots * sizeof *got);
    assert_non_null(got);
    tt_ok(tsr_ckks_decrypt(h->sk, h->pt, ct));
    tt_ok(tsr_ckks_decode_real(h->enc, h->pt, got, h->slots, NULL));
    double bits = tt_precision_bits(got, want, h->slots);
    free(got);
    return bits;
}

/* ---- inverse ------------------------------------------------------------------------- */

/* Goldschmidt's error at x = a is rho^(2^(r+1)) / a, the largest over [a, b]. */
static double goldschmidt_bits(double a, double b, int r) {
    double rho = (b - a) / (b + a);
    return -(ldexp(1.0, r + 1) * log2(rho) - log2(a));
}

static void test_inverse_plan(void **state) {
    (void)state;
    tsr_circuits_fn_info info;
    const double ranges[][2] = { { 0.5, 2 }, { 1, 16 }, { 0.01, 1 }, { 3, 4 } };
    for (size_t k = 0; k < 4; k++) {
        double a = ranges[k][0], b = ranges[k][1], prev = -INFINITY;
        for (int r = 0; r <= 12; r++) {
            tt_ok(tsr_circuits_inverse_plan(a, b, r, 20, &info));
            int depth = r == 0 ? 1 : r + 2;
            assert_int_equal(info.depth, depth);
            assert_int_equal(info.out_level, 20 - depth);
            assert_int_equal(info.ct_mults, 2 * r);
            assert_int_equal(info.const_mults, 2);
            assert_int_equal(info.needs_relin_key, r > 0);
            double want = goldschmidt_bits(a, b, r);
            if (want < 45) assert_true(fabs(info.approx_bits - want) < 0.01);
            assert_true(info.approx_bits >= prev - 1e-9);
            prev = info.approx_bits;
            tt_fails(tsr_circuits_inverse_plan(a, b, r, depth - 1, &info), TSR_ERR_LEVEL);
            assert_non_null(strstr(tsr_last_error(), "levels"));
        }
        /* the smallest iteration count reaching 20 bits */
        int it;
        tt_ok(tsr_circuits_inverse_iterations(a, b, 20, &it));
        tt_ok(tsr_circuits_inverse_plan(a, b, it, 40, &info));
        assert_true(info.approx_bits >= 20);
        if (it > 0) {
            tt_ok(tsr_circuits_inverse_plan(a, b, it - 1, 40, &info));
            assert_true(info.approx_bits < 20);
        }
        printf("inverse [%g, %g]: %d iterations for 20 bits\n", a, b, it);
    }
    int it;
    tt_fails(tsr_circuits_inverse_iterations(1e-9, 1, 20, &it), TSR_ERR_INVALID_ARG);
    tt_fails(tsr_circuits_inverse_iterations(1, 2, 60, &it), TSR_ERR_INVALID_ARG);
    tt_fails(tsr_circuits_inverse_plan(0, 1, 3, 20, &info), TSR_ERR_INVALID_ARG);
    tt_fails(tsr_circuits_inverse_plan(-1, 1, 3, 20, &info), TSR_ERR_INVALID_ARG);
    tt_fails(tsr_circuits_inverse_plan(2, 1, 3, 20, &info), TSR_ERR_INVALID_ARG);
    tt_fails(tsr_circuits_inverse_plan(1, INFINITY, 3, 20, &info), TSR_ERR_INVALID_ARG);
    tt_fails(tsr_circuits_inverse_plan(1, 2, -1, 20, &info), TSR_ERR_INVALID_ARG);
    tt_fails(tsr_circuits_inverse_plan(1, 2, 41, 60, &info), TSR_ERR_INVALID_ARG);
}

typedef struct inv_case {
    double a, b;
    int iterations;
    double min_bits; /* against 1/x: measured (docs/CIRCUITS.md) minus about 3 bits */
} inv_case;

static void test_inverse_precision(void **state) {
    he *h = *state;
    const inv_case cases[] = {
        { 0.5, 2, 2, 0 }, /* approximation-limited: checked against approx_bits */
        { 0.5, 2, 4, 20 },
        { 1, 16, 7, 21 },
        { 0.05, 1, 9, 17 },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const inv_case *k = &cases[i];
        double *x = inputs(h, k->a, k->b, 10 + i), *want = malloc(h->slots * sizeof *want);
        assert_non_null(want);
        for (size_t j = 0; j < h->slots; j++) want[j] = 1 / x[j];
        tsr_ckks_ciphertext *ct = encrypt_at(h, x, HE_LEVELS);
        tsr_circuits_fn_info info, plan;
        tt_ok(tsr_circuits_inverse(h->ev, ct, ct, k->a, k->b, k->iterations, &info));
        tt_ok(tsr_circuits_inverse_plan(k->a, k->b, k->iterations, HE_LEVELS, &plan));
        assert_memory_equal(&info, &plan, sizeof info);
        double bits = check_out(h, ct, HE_LEVELS - info.depth, want);
        printf("inverse [%g, %g], %d iterations, %d levels: %.1f bits vs 1/x (algorithm %.1f)\n",
               k->a, k->b, k->iterations, info.depth, bits, info.approx_bits);
        /* never better than the algorithm allows; close to it when it limits */
        assert_true(bits <= info.approx_bits + 1);
        assert_true(bits >= fmin(k->min_bits, info.approx_bits - 1));
        tsr_ckks_ciphertext_free(ct);
        free(want);
        free(x);
    }
}

static void test_inverse_errors(void **state) {
    he *h = *state;
    double *x = inputs(h, 1, 2, 30);
    tsr_ckks_ciphertext *in = encrypt_at(h, x, 5), *out;
    tt_ok(tsr_ckks_ciphertext_create(&out, h->p));
    /* 4 iterations need 6 levels */
    tt_fails(tsr_circuits_inverse(h->ev, out, in, 1, 2, 4, NULL), TSR_ERR_LEVEL);
    assert_non_null(strstr(tsr_last_error(), "needs 6 levels"));
    assert_non_null(strstr(tsr_last_error(), "at level 5"));
    tt_ok(tsr_circuits_inverse(h->ev, out, in, 1, 2, 3, NULL));
    assert_int_equal(tsr_ckks_ciphertext_level(out), 0);
    /* scale off the canonical one */
    tsr_ckks_ciphertext *off;
    tt_ok(tsr_ckks_ciphertext_clone(&off, in));
    tt_ok(tsr_ckks_ciphertext_set_scale(off, tsr_ckks_ciphertext_scale(in) * 1.001));
    tt_fails(tsr_circuits_inverse(h->ev, out, off, 1, 2, 2, NULL), TSR_ERR_SCALE);
    assert_non_null(strstr(tsr_last_error(), "canonical"));
    /* size 3 */
    tt_ok(tsr_ckks_mul(h->ev, off, in, in));
    tt_fails(tsr_circuits_inverse(h->ev, out, off, 1, 2, 2, NULL), TSR_ERR_INVALID_ARG);
    tsr_ckks_ciphertext_free(off);
    /* no relinearization key: iterations need one, r = 0 does not */
    tsr_ckks_evaluator *bare;
    tt_ok(tsr_ckks_evaluator_create(&bare, h->p, NULL, NULL));
    tt_fails(tsr_circuits_inverse(bare, out, in, 1, 2, 2, NULL), TSR_ERR_KEY_MISSING);
    assert_non_null(strstr(tsr_last_error(), "relinearization key"));
    tt_ok(tsr_circuits_inverse(bare, out, in, 1, 2, 0, NULL));
    assert_int_equal(tsr_ckks_ciphertext_level(out), 4);
    tsr_ckks_evaluator_free(bare);
    /* a range whose inverse cannot fit the output modulus at scale 2^40 (2^60 at level 0) */
    tt_fails(tsr_circuits_inverse(h->ev, out, in, 1e-7, 2, 3, NULL), TSR_ERR_SCALE);
    tt_fails(tsr_circuits_inverse(h->ev, out, in, 0, 2, 3, NULL), TSR_ERR_INVALID_ARG);
    /* empty input */
    tsr_ckks_ciphertext *empty;
    tt_ok(tsr_ckks_ciphertext_create(&empty, h->p));
    tt_fails(tsr_circuits_inverse(h->ev, out, empty, 1, 2, 2, NULL), TSR_ERR_INVALID_ARG);
    tsr_ckks_ciphertext_free(empty);
    tsr_ckks_ciphertext_free(out);
    tsr_ckks_ciphertext_free(in);
    free(x);
}

/* ---- inverse square root ----------------------------------------------------------------- */

static int clog2(size_t n) {
    int r = 0;
    while (((size_t)1 << r) < n) r++;
    return r;
}

static void test_invsqrt_plan(void **state) {
    (void)state;
    tsr_circuits_fn_info info;
    const size_t degs[] = { 3, 7, 15 };
    for (size_t k = 0; k < 3; k++)
        for (int r = 0; r <= 4; r++) {
            size_t d = degs[k];
            tt_ok(tsr_circuits_invsqrt_plan(0.25, 4, d, r, 30, &info));
            int depth = 1 + clog2(d + 1) + 2 * r;
            assert_int_equal(info.depth, depth);
            assert_int_equal(info.out_level, 30 - depth);
            assert_int_equal(info.needs_relin_key, 1);
            tt_fails(tsr_circuits_invsqrt_plan(0.25, 4, d, r, depth - 1, &info), TSR_ERR_LEVEL);
        }
    /* each Newton step roughly doubles the bits (relative error e -> 1.5 e^2) */
    double bits[4];
    for (int r = 0; r < 4; r++) {
        tt_ok(tsr_circuits_invsqrt_plan(0.25, 4, 7, r, 30, &info));
        bits[r] = info.approx_bits;
        printf("invsqrt [0.25, 4] degree 7, %d iterations: %.1f bits (algorithm)\n", r, bits[r]);
    }
    assert_true(bits[0] > 2 && bits[1] > 2 * bits[0] - 2 && bits[2] > 2 * bits[1] - 2);
    assert_true(bits[3] > 45);
    /* a start too poor for Newton */
    tt_fails(tsr_circuits_invsqrt_plan(1e-4, 1, 3, 3, 30, &info), TSR_ERR_INVALID_ARG);
    assert_non_null(strstr(tsr_last_error(), "raise the degree"));
    tt_fails(tsr_circuits_invsqrt_plan(0, 1, 7, 1, 30, &info), TSR_ERR_INVALID_ARG);
    tt_fails(tsr_circuits_invsqrt_plan(1, 2, 0, 1, 30, &info), TSR_ERR_INVALID_ARG);
    tt_fails(tsr_circuits_invsqrt_plan(1, 2, 256, 1, 30, &info), TSR_ERR_INVALID_ARG);
    tt_fails(tsr_circuits_invsqrt_plan(1, 2, 7, 9, 60, &info), TSR_ERR_INVALID_ARG);
}

typedef struct isq_case {
    double a, b;
    size_t degree;
    int iterations;
    double min_bits;
} isq_case;

static void test_invsqrt_precision(void **state) {
    he *h = *state;
    const isq_case cases[] = {
        { 0.25, 4, 7, 1, 0 }, /* approximation-limited */
        { 0.25, 4, 7, 2, 20 },
        { 1, 100, 15, 3, 22 },
        { 0.01, 1, 15, 3, 15 },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const isq_case *k = &cases[i];
        double *x = inputs(h, k->a, k->b, 40 + i), *want = malloc(h->slots * sizeof *want);
        assert_non_null(want);
        for (size_t j = 0; j < h->slots; j++) want[j] = 1 / sqrt(x[j]);
        tsr_ckks_ciphertext *ct = encrypt_at(h, x, HE_LEVELS);
        tsr_circuits_fn_info info, plan;
        tt_ok(tsr_circuits_invsqrt(h->ev, ct, ct, k->a, k->b, k->degree, k->iterations, &info));
        tt_ok(tsr_circuits_invsqrt_plan(k->a, k->b, k->degree, k->iterations, HE_LEVELS, &plan));
        assert_memory_equal(&info, &plan, sizeof info);
        double bits = check_out(h, ct, HE_LEVELS - info.depth, want);
        printf("invsqrt [%g, %g], degree %zu, %d iterations, %d levels: %.1f bits vs 1/sqrt(x) "
               "(algorithm %.1f)\n",
               k->a, k->b, k->degree, k->iterations, info.depth, bits, info.approx_bits);
        assert_true(bits <= info.approx_bits + 1);
        assert_true(bits >= fmin(k->min_bits, info.approx_bits - 1));
        tsr_ckks_ciphertext_free(ct);
        free(want);
        free(x);
    }
}

static void test_invsqrt_errors(void **state) {
    he *h = *state;
    double *x = inputs(h, 1, 4, 50);
    tsr_ckks_ciphertext *in = encrypt_at(h, x, 7), *out;
    tt_ok(tsr_ckks_ciphertext_create(&out, h->p));
    /* degree 7 (4 levels) + 2 iterations (4) = 8 levels */
    tt_fails(tsr_circuits_invsqrt(h->ev, out, in, 1, 4, 7, 2, NULL), TSR_ERR_LEVEL);
    assert_non_null(strstr(tsr_last_error(), "needs 8 levels"));
    assert_non_null(strstr(tsr_last_error(), "at level 7"));
    tsr_ckks_ciphertext *off;
    tt_ok(tsr_ckks_ciphertext_clone(&off, in));
    tt_ok(tsr_ckks_ciphertext_set_scale(off, tsr_ckks_ciphertext_scale(in) / 3));
    tt_fails(tsr_circuits_invsqrt(h->ev, out, off, 1, 4, 7, 1, NULL), TSR_ERR_SCALE);
    tsr_ckks_ciphertext_free(off);
    tsr_ckks_evaluator *bare;
    tt_ok(tsr_ckks_evaluator_create(&bare, h->p, NULL, NULL));
    tt_fails(tsr_circuits_invsqrt(bare, out, in, 1, 4, 7, 1, NULL), TSR_ERR_KEY_MISSING);
    tsr_ckks_evaluator_free(bare);
    tt_fails(tsr_circuits_invsqrt(h->ev, out, in, 1e-4, 4, 3, 1, NULL), TSR_ERR_INVALID_ARG);
    tt_ok(tsr_circuits_invsqrt(h->ev, out, in, 1, 4, 7, 1, NULL));
    assert_int_equal(tsr_ckks_ciphertext_level(out), 1);
    tsr_ckks_ciphertext_free(out);
    tsr_ckks_ciphertext_free(in);
    free(x);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_inverse_plan),
        cmocka_unit_test(test_invsqrt_plan),
        cmocka_unit_test_setup_teardown(test_inverse_precision, he_setup, he_teardown),
        cmocka_unit_test_setup_teardown(test_inverse_errors, he_setup, he_teardown),
        cmocka_unit_test_setup_teardown(test_invsqrt_precision, he_setup, he_teardown),
        cmocka_unit_test_setup_teardown(test_invsqrt_errors, he_setup, he_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
