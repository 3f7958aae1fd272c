/*
 * tests/test_ckks.c - the CKKS scheme: parameters and the security table,
 * the special FFT against the naive canonical embedding, encoding,
 * encryption, every evaluator operation with precision in bits against
 * plaintext doubles, level/scale rules and their errors, rotations
 * (exact, negative, composed, hoisted), conjugation, thread-count
 * independence, and a depth-10 squaring chain at N = 2^15.
 */
#include "testutil.h"

#include "tessera.h"
#include "tessera/ckks.h"
#include "ckks/ckks_internal.h"
#include "ckks/evaluator_internal.h"
#include "core/alloc.h"
#include "ckks/fft.h"
#include "ring/prime.h"
#include "ring/rns.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- fixture ----------------------------------------------------------------------- */

typedef struct fixture {
    tsr_ckks_params *p;
    tsr_ckks_secret_key *sk;
    tsr_ckks_public_key *pk;
    tsr_ckks_relin_key *rk;
    tsr_ckks_galois_keys *gk;
    tsr_ckks_encoder *enc;
    tsr_ckks_evaluator *ev;
    tsr_ckks_plaintext *pt;
    size_t slots;
    tsr_prng g;
} fixture;

static const int rot_steps[] = { 1, 2, 3, -1, 7 };

static void fx_init(fixture *f, const char *preset, const tsr_ckks_param_spec *spec, int galois) {
    memset(f, 0, sizeof *f);
    if (preset)
        tt_ok(tsr_ckks_params_create_preset(&f->p, preset));
    else
        tt_ok(tsr_ckks_params_create(&f->p, spec));
    tt_ok(tsr_ckks_secret_key_create(&f->sk, f->p));
    tt_ok(tsr_ckks_public_key_create(&f->pk, f->sk));
    tt_ok(tsr_ckks_relin_key_create(&f->rk, f->sk));
    if (galois)
        tt_ok(tsr_ckks_galois_keys_create(&f->gk, f->sk, rot_steps,
                                          sizeof rot_steps / sizeof rot_steps[0],
                                          TSR_CKKS_GALOIS_CONJUGATE));
    tt_ok(tsr_ckks_encoder_create(&f->enc, f->p));
    tt_ok(tsr_ckks_evaluator_create(&f->ev, f->p, f->rk, f->gk));
    tt_ok(tsr_ckks_plaintext_create(&f->pt, f->p));
    f->slots = tsr_ckks_params_slots(f->p);
    tt_prng(&f->g, 7);
}

static void fx_free(fixture *f) {
    tsr_ckks_plaintext_free(f->pt);
    tsr_ckks_evaluator_free(f->ev);
    tsr_ckks_encoder_free(f->enc);
    tsr_ckks_galois_keys_free(f->gk);
    tsr_ckks_relin_key_free(f->rk);
    tsr_ckks_public_key_free(f->pk);
    tsr_ckks_secret_key_free(f->sk);
    tsr_ckks_params_free(f->p);
}

/* n random values in [-1, 1). */
static double *rand_vec(fixture *f, size_t n) {
    double *v = malloc(n * sizeof *v);
    assert_non_null(v);
    for (size_t i = 0; i < n; i++) v[i] = 2 * tsr_prng_double(&f->g) - 1;
    return v;
}

static tsr_ckks_ciphertext *encrypt_vec(fixture *f, const double *v, int level) {
    tsr_ckks_ciphertext *ct;
    tt_ok(tsr_ckks_ciphertext_create(&ct, f->p));
    tt_ok(tsr_ckks_encode_real(f->enc, f->pt, v, f->slots, level, 0));
    tt_ok(tsr_ckks_encrypt(f->pk, ct, f->pt));
    return ct;
}

/* Precision (bits) of ct's slots against want; *est receives the estimate. */
static double prec_of(fixture *f, const tsr_ckks_ciphertext *ct, const double *want, double *est) {
    double *got = malloc(f->slots * sizeof *got);
    assert_non_null(got);
    tt_ok(tsr_ckks_decrypt(f->sk, f->pt, ct));
    tt_ok(tsr_ckks_decode_real(f->enc, f->pt, got, f->slots, est));
    double b = tt_precision_bits(got, want, f->slots);
    free(got);
    return b;
}

static int ct_equal(const tsr_ckks_ciphertext *a, const tsr_ckks_ciphertext *b) {
    if (a->level != b->level || a->size != b->size || a->scale != b->scale) return 0;
    size_t words = (size_t)(a->level + 1) * a->params->n;
    for (int k = 0; k < a->size; k++)
        if (memcmp(ckks_ct_poly(a, k), ckks_ct_poly(b, k), words * 8) != 0) return 0;
    return 1;
}

/* A small insecure set: N = 2^11, 3 levels (tests of rules, not of security). */
static tsr_ckks_param_spec small_spec(void) {
    tsr_ckks_param_spec s = { .log_n = 11,
                              .first_prime_bits = 50,
                              .scale_bits = 40,
                              .levels = 3,
                              .special_primes = 1,
                              .special_prime_bits = 55,
                              .dnum = 0,
                              .secret = TSR_CKKS_SECRET_TERNARY,
                              .hamming_weight = 0,
                              .flags = TSR_CKKS_ALLOW_INSECURE_PARAMETERS };
    return s;
}

/* ---- parameters ------------------------------------------------------------------------ */

static void test_security_table(void **state) {
    (void)state;
    /* The HomomorphicEncryption.org values (ternary, 128-bit). */
    const double want[][2] = { { 10, 27 },  { 11, 54 },  { 12, 109 }, { 13, 218 },
                               { 14, 438 }, { 15, 881 }, { 16, 1772 } };
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++)
        assert_true(tsr_ckks_security_bound((unsigned)want[i][0], TSR_CKKS_SECRET_TERNARY, 0) ==
                    want[i][1]);
    assert_true(tsr_ckks_security_bound(17, TSR_CKKS_SECRET_TERNARY, 0) == 0);
    assert_true(tsr_ckks_security_bound(13, TSR_CKKS_SECRET_FIXED_HW, 64) == 0);
    assert_true(tsr_ckks_security_bound(13, TSR_CKKS_SECRET_FIXED_HW, 5462) == 218);

    /* Every preset is secure and within its bound. */
    for (size_t i = 0; tsr_ckks_preset_name(i); i++) {
        tsr_ckks_param_spec s;
        tt_ok(tsr_ckks_preset_spec(tsr_ckks_preset_name(i), &s));
        assert_non_null(tsr_ckks_preset_description(i));
        if (s.log_n > 14 && tt_sanitized()) continue; /* table building is slow under ASan */
        tsr_ckks_params *p;
        tt_ok(tsr_ckks_params_create(&p, &s));
        assert_int_equal(tsr_ckks_params_is_secure(p), 1);
        assert_true(tsr_ckks_params_log_qp(p) <= tsr_ckks_security_bound(s.log_n, s.secret, 0));
        tsr_ckks_params_free(p);
    }
    tsr_ckks_param_spec s;
    tsr_ckks_params *p = NULL;
    tt_fails(tsr_ckks_preset_spec("n99", &s), TSR_ERR_NOT_FOUND);
    assert_non_null(strstr(tsr_last_error(), "n13-l3"));

    /* One level too many for N = 2^13 -> insecure, unless flagged. */
    tt_ok(tsr_ckks_preset_spec("n13-l3", &s));
    s.levels = 5;
    s.dnum = 0;
    tt_fails(tsr_ckks_params_create(&p, &s), TSR_ERR_INSECURE);
    assert_null(p);
    assert_non_null(strstr(tsr_last_error(), "218"));
    s.flags = TSR_CKKS_ALLOW_INSECURE_PARAMETERS;
    tt_ok(tsr_ckks_params_create(&p, &s));
    assert_int_equal(tsr_ckks_params_is_secure(p), 0);
    tsr_ckks_params_free(p);

    /* Sparse secrets and N = 2^17 have no established bound. */
    tt_ok(tsr_ckks_preset_spec("n13-l3", &s));
    s.secret = TSR_CKKS_SECRET_FIXED_HW;
    s.hamming_weight = 64;
    tt_fails(tsr_ckks_params_create(&p, &s), TSR_ERR_INSECURE);
    s.hamming_weight = 5462;
    tt_ok(tsr_ckks_params_create(&p, &s));
    tsr_ckks_params_free(p);
    s = small_spec();
    s.log_n = 17;
    s.flags = 0;
    tt_fails(tsr_ckks_params_create(&p, &s), TSR_ERR_INSECURE);

    /* Out-of-range fields name themselves. */
    s = small_spec();
    s.log_n = 3;
    tt_fails(tsr_ckks_params_create(&p, &s), TSR_ERR_INVALID_ARG);
    assert_non_null(strstr(tsr_last_error(), "log_n"));
    s = small_spec();
    s.first_prime_bits = 40;
    tt_fails(tsr_ckks_params_create(&p, &s), TSR_ERR_INVALID_ARG);
    s = small_spec();
    s.special_primes = 0;
    tt_fails(tsr_ckks_params_create(&p, &s), TSR_ERR_INVALID_ARG);
    s = small_spec();
    s.dnum = 9;
    tt_fails(tsr_ckks_params_create(&p, &s), TSR_ERR_INVALID_ARG);
    s = small_spec();
    s.hamming_weight = 3;
    tt_fails(tsr_ckks_params_create(&p, &s), TSR_ERR_INVALID_ARG);
    /* P smaller than a digit would make key switching lossy. */
    s = small_spec();
    s.dnum = 1;
    tt_fails(tsr_ckks_params_create(&p, &s), TSR_ERR_INVALID_ARG);
    assert_non_null(strstr(tsr_last_error(), "special modulus"));
}

/* A mixed chain (spec.low_levels): the low primes near 2^low_scale_bits, the canonical scale
 * exactly 2^low_scale_bits at the top low level and the usual recursion on both sides of it,
 * P covering every digit, the new fields validated and part of the fingerprint. */
static void check_mixed_chain(tsr_ckks_params *p, const tsr_ckks_param_spec *s) {
    int L = tsr_ckks_params_max_level(p), low = (int)s->low_levels;
    assert_true(tsr_ckks_params_scale(p, low) == ldexp(1.0, (int)s->low_scale_bits));
    assert_true(tsr_ckks_params_scale(p, L) == ldexp(1.0, (int)s->scale_bits));
    for (int l = 1; l <= L; l++) {
        double bits = log2((double)tsr_ckks_params_prime(p, l));
        double want = l <= low ? s->low_scale_bits : s->scale_bits;
        assert_true(fabs(bits - want) < 0.05);
        double sc = tsr_ckks_params_scale(p, l);
        assert_true(fabs(log2(sc) - want) < 1e-3);
        if (l != low + 1) { /* the recursion Delta_{l-1} = Delta_l^2 / q_l, except at the reset */
            double next = sc * (sc / (double)tsr_ckks_params_prime(p, l));
            assert_true(fabs(tsr_ckks_params_scale(p, l - 1) - next) <= 1e-12 * next);
        }
    }
    /* P covers the largest key-switching digit */
    int nq = L + 1, dnum = tsr_ckks_params_dnum(p), alpha = (nq + dnum - 1) / dnum;
    double log_p = 0, worst = 0, log_qp = 0;
    for (int j = 0; j < tsr_ckks_params_special_count(p); j++)
        log_p += log2((double)tsr_ckks_params_special_prime(p, j));
    for (int j = 0; j < dnum; j++) {
        double d = 0;
        for (int i = j * alpha; i < nq && i < (j + 1) * alpha; i++)
            d += log2((double)tsr_ckks_params_prime(p, i));
        if (d > worst) worst = d;
    }
    assert_true(log_p + 1.0 >= worst);
    for (int i = 0; i < nq; i++) log_qp += log2((double)tsr_ckks_params_prime(p, i));
    assert_true(fabs(log_qp + log_p - tsr_ckks_params_log_qp(p)) < 1e-6);
}

/* n16-boot-ifma: n16-boot-d4's chain with q_0 and the special primes below 2^50 (the AVX-512
 * IFMA kernels' bound), 128-bit secure with the bootstrapping keys counted in log2 QP, dnum 4,
 * P covering every digit; only the 14 bootstrapping primes are >= 2^50 (the d4 chain's). */
static void test_preset_boot_ifma(void **state) {
    (void)state;
    tsr_ckks_param_spec s, d4;
    tt_ok(tsr_ckks_preset_spec("n16-boot-ifma", &s));
    tt_ok(tsr_ckks_preset_spec("n16-boot-d4", &d4));
    assert_int_equal(s.levels, 24);
    assert_int_equal(s.low_levels, 10);
    assert_int_equal(s.low_scale_bits, 40);
    assert_int_equal(s.scale_bits, 60);
    assert_int_equal(s.secret, TSR_CKKS_SECRET_TERNARY);
    if (tt_sanitized()) return; /* N = 2^16 tables are slow under ASan */
    tsr_ckks_params *p = NULL, *q = NULL;
    tt_ok(tsr_ckks_params_create(&p, &s));
    tt_ok(tsr_ckks_params_create(&q, &d4));
    assert_int_equal(tsr_ckks_params_is_secure(p), 1);
    assert_int_equal(tsr_ckks_params_dnum(p), 4);
    assert_true(tsr_ckks_params_log_qp(p) <= 1772);
    check_mixed_chain(p, &s);
    const uint64_t ifma_max = (uint64_t)1 << 50;
    int big = 0;
    for (int l = 0; l <= 24; l++) {
        uint64_t v = tsr_ckks_params_prime(p, l);
        big += v >= ifma_max;
        if (l >= 1) assert_true(v == tsr_ckks_params_prime(q, l)); /* d4's q_1..q_24 */
    }
    assert_int_equal(big, 14);
    for (int j = 0; j < tsr_ckks_params_special_count(p); j++)
        assert_true(tsr_ckks_params_special_prime(p, j) < ifma_max);
    tsr_ckks_params_free(q);
    tsr_ckks_params_free(p);
}

static void test_mixed_chain(void **state) {
    (void)state;
    tsr_ckks_param_spec s, back;
    tsr_ckks_params *p = NULL, *u = NULL;
    /* the preset: q_0 61, ten 40-bit levels, fourteen 60-bit ones, 7 special primes, dnum 4 */
    tt_ok(tsr_ckks_preset_spec("n16-boot-d4", &s));
    assert_int_equal(s.low_levels, 10);
    assert_int_equal(s.low_scale_bits, 40);
    if (!tt_sanitized()) { /* N = 2^16 tables are slow under ASan */
        tt_ok(tsr_ckks_params_create(&p, &s));
        assert_int_equal(tsr_ckks_params_is_secure(p), 1);
        assert_int_equal(tsr_ckks_params_dnum(p), 4);
        assert_true(tsr_ckks_params_log_qp(p) <= 1772);
        assert_true(tsr_ckks_params_log_qp(p) < 1745 - 10); /* below n16-boot's uniform chain */
        check_mixed_chain(p, &s);
        tsr_ckks_params_spec(p, &back);
        assert_int_equal(back.low_levels, 10);
        assert_int_equal(back.low_scale_bits, 40);
        tsr_ckks_params_free(p);
        p = NULL;
    }
    /* a small insecure mixed chain; the same spec uniform has another fingerprint */
    s = small_spec();
    s.levels = 6;
    s.first_prime_bits = 55;
    s.scale_bits = 50;
    s.special_primes = 2;
    s.special_prime_bits = 58;
    s.low_levels = 3;
    s.low_scale_bits = 30;
    tt_ok(tsr_ckks_params_create(&p, &s));
    check_mixed_chain(p, &s);
    tsr_ckks_param_spec us = s;
    us.low_levels = 0;
    us.low_scale_bits = 0;
    tt_ok(tsr_ckks_params_create(&u, &us));
    uint8_t f1[16], f2[16];
    tsr_ckks_params_fingerprint(p, f1);
    tsr_ckks_params_fingerprint(u, f2);
    assert_true(memcmp(f1, f2, 16) != 0);
    for (int l = 4; l <= 6; l++) /* the primes above the low levels are the uniform chain's */
        assert_true(tsr_ckks_params_prime(p, l) == tsr_ckks_params_prime(u, l));
    tsr_ckks_params_free(u);
    tsr_ckks_params_free(p);
    p = NULL;
    /* validation: each field names itself */
    tsr_ckks_param_spec bad = s;
    bad.low_levels = 0;
    tt_fails(tsr_ckks_params_create(&p, &bad), TSR_ERR_INVALID_ARG);
    assert_non_null(strstr(tsr_last_error(), "low_scale_bits = 30 without low_levels"));
    bad = s;
    bad.low_levels = 6;
    tt_fails(tsr_ckks_params_create(&p, &bad), TSR_ERR_INVALID_ARG);
    assert_non_null(strstr(tsr_last_error(), "low_levels = 6 must be below levels (6)"));
    bad = s;
    bad.low_scale_bits = 19;
    tt_fails(tsr_ckks_params_create(&p, &bad), TSR_ERR_INVALID_ARG);
    assert_non_null(strstr(tsr_last_error(), "low_scale_bits = 19 is out of range"));
    bad.low_scale_bits = 0;
    tt_fails(tsr_ckks_params_create(&p, &bad), TSR_ERR_INVALID_ARG);
    bad = s;
    bad.low_scale_bits = 61;
    tt_fails(tsr_ckks_params_create(&p, &bad), TSR_ERR_INVALID_ARG);
    /* q_0 must exceed the low scale (level 0 follows it), not the top one */
    bad = s;
    bad.first_prime_bits = 30;
    tt_fails(tsr_ckks_params_create(&p, &bad), TSR_ERR_INVALID_ARG);
    assert_non_null(strstr(tsr_last_error(), "must exceed low_scale_bits (30)"));
    bad.first_prime_bits = 45; /* below scale_bits 50: fine on a mixed chain */
    tt_ok(tsr_ckks_params_create(&p, &bad));
    tsr_ckks_params_free(p);
    p = NULL;
    /* the 128-bit check counts the mixed chain's real primes: q_0 55, three levels of 30 bits
     * under three of 50, P 2 x 58 (about 411 bits > 218 at N = 2^13): refused unflagged */
    bad = s;
    bad.log_n = 13;
    bad.flags = 0;
    tt_fails(tsr_ckks_params_create(&p, &bad), TSR_ERR_INSECURE);
    assert_null(p);
}

static void test_primes_and_scales(void **state) {
    (void)state;
    tsr_ckks_params *p;
    tt_ok(tsr_ckks_params_create_preset(&p, "n14-l7"));
    int L = tsr_ckks_params_max_level(p), k = tsr_ckks_params_special_count(p);
    uint64_t two_n = 2 * tsr_ckks_params_n(p);
    uint64_t all[64];
    int na = 0;
    for (int i = 0; i <= L; i++) all[na++] = tsr_ckks_params_prime(p, i);
    for (int i = 0; i < k; i++) all[na++] = tsr_ckks_params_special_prime(p, i);
    double logqp = 0;
    for (int i = 0; i < na; i++) {
        assert_true(tsr_prime_is_prime(all[i]));
        assert_int_equal(all[i] % two_n, 1);
        assert_true(all[i] < ((uint64_t)1 << 50)); /* IFMA-friendly */
        for (int j = 0; j < i; j++) assert_true(all[i] != all[j]);
        logqp += log2((double)all[i]);
    }
    assert_true(fabs(logqp - tsr_ckks_params_log_qp(p)) < 1e-9);
    /* Canonical scales: Delta_L = 2^40, Delta_{l-1} = Delta_l^2 / q_l, all near 2^40. */
    assert_true(tsr_ckks_params_scale(p, L) == 0x1p40);
    for (int l = L; l >= 1; l--) {
        double d = tsr_ckks_params_scale(p, l);
        assert_true(tsr_ckks_params_scale(p, l - 1) == d * (d / (double)all[l]));
        assert_true(fabs(log2(tsr_ckks_params_scale(p, l - 1)) - 40) < 0.01);
    }
    /* Fingerprints: equal for equal specs, different otherwise. */
    tsr_ckks_params *p2, *p3;
    tt_ok(tsr_ckks_params_create_preset(&p2, "n14-l7"));
    tsr_ckks_param_spec s;
    tsr_ckks_params_spec(p, &s);
    s.dnum = 8;
    tt_ok(tsr_ckks_params_create(&p3, &s));
    uint8_t f1[16], f2[16], f3[16];
    tsr_ckks_params_fingerprint(p, f1);
    tsr_ckks_params_fingerprint(p2, f2);
    tsr_ckks_params_fingerprint(p3, f3);
    assert_memory_equal(f1, f2, 16);
    assert_memory_not_equal(f1, f3, 16);
    assert_int_equal(tsr_ckks_params_dnum(p3), 8);
    char *buf = NULL;
    size_t len = 0;
    FILE *mf = open_memstream(&buf, &len);
    tsr_ckks_params_print(p, mf);
    fclose(mf);
    assert_non_null(strstr(buf, "secure"));
    free(buf);
    tsr_ckks_params_free(p);
    tsr_ckks_params_free(p2);
    tsr_ckks_params_free(p3);
}

/* ---- encoder ------------------------------------------------------------------------------ */

static void test_special_fft(void **state) {
    (void)state;
    tsr_prng g;
    tt_prng(&g, 1);
    for (size_t n = 1; n <= 512; n *= 2) {
        ckks_fft f;
        tt_ok(ckks_fft_init(&f, n));
        uint64_t m = 4 * n;
        ckks_cplx *w = malloc(n * sizeof *w), *v = malloc(n * sizeof *v);
        for (size_t k = 0; k < n; k++) {
            w[k].re = tsr_prng_double(&g) - 0.5;
            w[k].im = tsr_prng_double(&g) - 0.5;
            v[k] = w[k];
        }
        ckks_fft_forward(&f, v);
        /* slot j = w(zeta^(5^j)), zeta = exp(2 pi i / 2N), naive O(n^2) in long double */
        uint64_t gj = 1;
        double worst = 0;
        for (size_t j = 0; j < n; j++) {
            long double zr = 0, zi = 0;
            for (size_t k = 0; k < n; k++) {
                long double a = 2 * 3.14159265358979323846264338327950288L *
                                (long double)((gj * k) % m) / (long double)m;
                zr += w[k].re * cosl(a) - w[k].im * sinl(a);
                zi += w[k].re * sinl(a) + w[k].im * cosl(a);
            }
            double e = hypot((double)zr - v[j].re, (double)zi - v[j].im);
            if (e > worst) worst = e;
            gj = gj * 5 % m;
        }
        assert_true(worst < 1e-13 * (double)(n + 1));
        ckks_fft_inverse(&f, v);
        for (size_t k = 0; k < n; k++) {
            assert_true(fabs(v[k].re - w[k].re) < 1e-14);
            assert_true(fabs(v[k].im - w[k].im) < 1e-14);
        }
        free(w);
        free(v);
        ckks_fft_free(&f);
    }
    /* Galois elements: rotations are powers of 5, conjugation is 2N-1. */
    assert_int_equal(ckks_galois_elt_rotation(8, 1), 5);
    assert_int_equal(ckks_galois_elt_rotation(8, 2), 25 % 32);
    assert_int_equal(ckks_galois_elt_rotation(8, -1), ckks_galois_elt_rotation(8, 7));
    assert_int_equal(ckks_galois_elt_conjugate(8), 31);
}

static void test_encode_decode(void **state) {
    (void)state;
    tsr_ckks_params *p;
    tt_ok(tsr_ckks_params_create_preset(&p, "n13-l3"));
    tsr_ckks_encoder *e;
    tsr_ckks_plaintext *pt;
    tt_ok(tsr_ckks_encoder_create(&e, p));
    tt_ok(tsr_ckks_plaintext_create(&pt, p));
    size_t slots = tsr_ckks_params_slots(p);
    tsr_prng g;
    tt_prng(&g, 2);
    double *z = malloc(2 * slots * sizeof *z), *out = malloc(2 * slots * sizeof *out);
    for (size_t i = 0; i < 2 * slots; i++) z[i] = 2 * tsr_prng_double(&g) - 1;
    for (int level = 0; level <= 3; level++) {
        double est;
        tt_ok(tsr_ckks_encode_complex(e, pt, z, slots, level, 0));
        assert_int_equal(tsr_ckks_plaintext_level(pt), level);
        assert_true(tsr_ckks_plaintext_scale(pt) == tsr_ckks_params_scale(p, level));
        tt_ok(tsr_ckks_decode_complex(e, pt, out, slots, &est));
        double b = tt_precision_bits(out, z, 2 * slots);
        assert_true(b >= 30);
        assert_true(fabs(b - est) < 3);
    }
    /* Fewer values: the rest of the slots are zero. Real variant. */
    tt_ok(tsr_ckks_encode_real(e, pt, z, 10, TSR_CKKS_TOP_LEVEL, 0x1p30));
    tt_ok(tsr_ckks_decode_complex(e, pt, out, slots, NULL));
    for (size_t i = 0; i < slots; i++) {
        double want = i < 10 ? z[i] : 0;
        assert_true(fabs(out[2 * i] - want) < 1e-6);
        assert_true(fabs(out[2 * i + 1]) < 1e-6);
    }
    /* Large scales take the wide reduction path exactly. */
    tt_ok(tsr_ckks_encode_real(e, pt, z, slots, TSR_CKKS_TOP_LEVEL, 0x1p100));
    tt_ok(tsr_ckks_decode_real(e, pt, out, slots, NULL));
    assert_true(tt_precision_bits(out, z, slots) >= 45);
    /* Errors: scale overflow, non-finite values, bad level, too many values. */
    tt_fails(tsr_ckks_encode_real(e, pt, z, slots, 0, 0x1p50), TSR_ERR_SCALE);
    assert_non_null(strstr(tsr_last_error(), "does not fit"));
    z[3] = NAN;
    tt_fails(tsr_ckks_encode_real(e, pt, z, slots, 0, 0), TSR_ERR_INVALID_ARG);
    z[3] = 0;
    tt_fails(tsr_ckks_encode_real(e, pt, z, slots, 4, 0), TSR_ERR_INVALID_ARG);
    tt_fails(tsr_ckks_encode_real(e, pt, z, slots + 1, 0, 0), TSR_ERR_INVALID_ARG);
    free(z);
    free(out);
    tsr_ckks_plaintext_free(pt);
    tsr_ckks_encoder_free(e);
    tsr_ckks_params_free(p);
}

/* ---- encryption ---------------------------------------------------------------------------- */

static void test_encrypt_decrypt(void **state) {
    (void)state;
    fixture f;
    fx_init(&f, "n13-l3", NULL, 0);
    double *x = rand_vec(&f, f.slots), est;
    /* Public-key encryption at scale 2^40. */
    tsr_ckks_ciphertext *ct = encrypt_vec(&f, x, TSR_CKKS_TOP_LEVEL);
    assert_true(tsr_ckks_ciphertext_scale(ct) == 0x1p40);
    double b = prec_of(&f, ct, x, &est);
    printf("  fresh public-key encryption: %.1f bits (estimate %.1f)\n", b, est);
    assert_true(b >= 25);
    assert_true(fabs(b - est) < 3);
    assert_true(fabs(tsr_ckks_ciphertext_precision_estimate(ct) - est) < 1e-9);
    /* Seeded secret-key encryption. */
    tt_ok(tsr_ckks_encode_real(f.enc, f.pt, x, f.slots, TSR_CKKS_TOP_LEVEL, 0));
    tt_ok(tsr_ckks_encrypt_symmetric(f.sk, ct, f.pt));
    assert_int_equal(ct->seeded, 1);
    b = prec_of(&f, ct, x, &est);
    printf("  fresh secret-key encryption: %.1f bits (estimate %.1f)\n", b, est);
    assert_true(b >= 25);
    assert_true(fabs(b - est) < 3);
    /* At a lower level too, and two encryptions differ (fresh randomness). */
    tsr_ckks_ciphertext *c2 = encrypt_vec(&f, x, 1), *c3 = encrypt_vec(&f, x, 1);
    assert_int_equal(tsr_ckks_ciphertext_level(c2), 1);
    assert_true(prec_of(&f, c2, x, NULL) >= 25);
    assert_false(ct_equal(c2, c3));
    /* Empty objects are refused. */
    tsr_ckks_plaintext *empty;
    tt_ok(tsr_ckks_plaintext_create(&empty, f.p));
    tt_fails(tsr_ckks_encrypt(f.pk, ct, empty), TSR_ERR_INVALID_ARG);
    tsr_ckks_plaintext_free(empty);
    tsr_ckks_ciphertext_free(ct);
    tsr_ckks_ciphertext_free(c2);
    tsr_ckks_ciphertext_free(c3);
    free(x);
    fx_free(&f);
}

/* ---- evaluator ------------------------------------------------------------------------------- */

static void test_arithmetic(void **state) {
    (void)state;
    fixture f;
    fx_init(&f, "n13-l3", NULL, 0);
    size_t n = f.slots;
    double *x = rand_vec(&f, n), *y = rand_vec(&f, n), *w = malloc(n * sizeof *w), est;
    tsr_ckks_ciphertext *cx = encrypt_vec(&f, x, TSR_CKKS_TOP_LEVEL);
    tsr_ckks_ciphertext *cy = encrypt_vec(&f, y, TSR_CKKS_TOP_LEVEL);
    tsr_ckks_ciphertext *out;
    tt_ok(tsr_ckks_ciphertext_create(&out, f.p));
    tsr_ckks_evaluator *ev = f.ev;

#define CHECK(bits)                                                                       \
    do {                                                                                  \
        double b_ = prec_of(&f, out, w, &est);                                            \
        if (!(b_ >= (bits)) || fabs(b_ - est) > 4)                                        \
            fail_msg("line %d: %.1f bits (estimate %.1f), want >= %d", __LINE__, b_, est, \
                     (int)(bits));                                                        \
    } while (0)

    tt_ok(tsr_ckks_add(ev, out, cx, cy));
    for (size_t i = 0; i < n; i++) w[i] = x[i] + y[i];
    CHECK(24);
    tt_ok(tsr_ckks_sub(ev, out, cx, cy));
    for (size_t i = 0; i < n; i++) w[i] = x[i] - y[i];
    CHECK(24);
    tt_ok(tsr_ckks_negate(ev, out, cx));
    for (size_t i = 0; i < n; i++) w[i] = -x[i];
    CHECK(24);
    /* plaintext operands (py: prec_of decrypts into f.pt) */
    tsr_ckks_plaintext *py;
    tt_ok(tsr_ckks_plaintext_create(&py, f.p));
    tt_ok(tsr_ckks_encode_real(f.enc, py, y, n, TSR_CKKS_TOP_LEVEL, 0));
    tt_ok(tsr_ckks_add_plain(ev, out, cx, py));
    for (size_t i = 0; i < n; i++) w[i] = x[i] + y[i];
    CHECK(24);
    tt_ok(tsr_ckks_sub_plain(ev, out, cx, py));
    for (size_t i = 0; i < n; i++) w[i] = x[i] - y[i];
    CHECK(24);
    tt_ok(tsr_ckks_mul_plain(ev, out, cx, py));
    tt_ok(tsr_ckks_rescale(ev, out, out));
    for (size_t i = 0; i < n; i++) w[i] = x[i] * y[i];
    CHECK(22);
    assert_true(tsr_ckks_ciphertext_scale(out) == tsr_ckks_params_scale(f.p, 2));
    /* constants */
    tt_ok(tsr_ckks_add_const(ev, out, cx, 0.25, 0));
    for (size_t i = 0; i < n; i++) w[i] = x[i] + 0.25;
    CHECK(24);
    tt_ok(tsr_ckks_sub_const(ev, out, cx, 0.625, 0));
    for (size_t i = 0; i < n; i++) w[i] = x[i] - 0.625;
    CHECK(24);
    tt_ok(tsr_ckks_mul_const(ev, out, cx, -1.75, 0));
    tt_ok(tsr_ckks_rescale(ev, out, out));
    for (size_t i = 0; i < n; i++) w[i] = -1.75 * x[i];
    CHECK(22);
    assert_true(tsr_ckks_ciphertext_scale(out) == tsr_ckks_params_scale(f.p, 2));
    /* A constant at an explicit scale: scale multiplies; rescale divides by q_l. */
    tt_ok(tsr_ckks_mul_const_scaled(ev, out, cx, 0.375, 0, 0x1p30));
    assert_true(tsr_ckks_ciphertext_scale(out) == tsr_ckks_ciphertext_scale(cx) * 0x1p30);
    for (size_t i = 0; i < n; i++) w[i] = 0.375 * x[i];
    CHECK(22);
    tt_fails(tsr_ckks_mul_const_scaled(ev, out, cx, 1, 0, 0.5), TSR_ERR_INVALID_ARG);
    tt_fails(tsr_ckks_mul_const_scaled(ev, out, cx, 1, 0, 0x1p130), TSR_ERR_SCALE);
    tt_ok(tsr_ckks_mul_int(ev, out, cx, -3));
    for (size_t i = 0; i < n; i++) w[i] = -3 * x[i];
    CHECK(22);
    /* ct-ct multiplication: mul + relinearize + rescale, >= 20 bits */
    tt_ok(tsr_ckks_mul_relin_rescale(ev, out, cx, cy));
    for (size_t i = 0; i < n; i++) w[i] = x[i] * y[i];
    double b = prec_of(&f, out, w, &est);
    printf("  after mul+relin+rescale: %.1f bits (estimate %.1f)\n", b, est);
    assert_true(b >= 20);
    assert_int_equal(tsr_ckks_ciphertext_level(out), 2);
    assert_true(tsr_ckks_ciphertext_scale(out) == tsr_ckks_params_scale(f.p, 2));
    /* The separate steps agree (the fused op rounds once instead of twice);
     * the size-3 product decrypts too. */
    tsr_ckks_ciphertext *t;
    tt_ok(tsr_ckks_ciphertext_create(&t, f.p));
    tt_ok(tsr_ckks_mul(ev, t, cx, cy));
    assert_int_equal(tsr_ckks_ciphertext_size(t), 3);
    for (size_t i = 0; i < n; i++) w[i] = x[i] * y[i];
    assert_true(prec_of(&f, t, w, NULL) >= 22);
    tt_ok(tsr_ckks_relinearize(ev, t, t));
    assert_int_equal(tsr_ckks_ciphertext_size(t), 2);
    tt_ok(tsr_ckks_rescale(ev, t, t));
    assert_true(tsr_ckks_ciphertext_scale(t) == tsr_ckks_ciphertext_scale(out));
    assert_int_equal(tsr_ckks_ciphertext_level(t), tsr_ckks_ciphertext_level(out));
    tt_ok(tsr_ckks_sub(ev, t, t, out));
    for (size_t i = 0; i < n; i++) w[i] = 0;
    assert_true(prec_of(&f, t, w, NULL) >= 24);
    /* Squaring (in place) */
    tt_ok(tsr_ckks_ciphertext_copy(t, cx));
    tt_ok(tsr_ckks_mul_relin(ev, t, t, t));
    tt_ok(tsr_ckks_rescale(ev, out, t));
    for (size_t i = 0; i < n; i++) w[i] = x[i] * x[i];
    CHECK(20);
    /* Complex constants: multiply by i, add (0.5 - 0.25i). */
    {
        double *zc = malloc(2 * n * sizeof *zc), *got = malloc(2 * n * sizeof *got);
        double *want = malloc(2 * n * sizeof *want);
        for (size_t i = 0; i < 2 * n; i++) zc[i] = 2 * tsr_prng_double(&f.g) - 1;
        tt_ok(tsr_ckks_encode_complex(f.enc, f.pt, zc, n, TSR_CKKS_TOP_LEVEL, 0));
        tt_ok(tsr_ckks_encrypt(f.pk, t, f.pt));
        tt_ok(tsr_ckks_mul_const(ev, t, t, 0, 1));
        tt_ok(tsr_ckks_rescale(ev, t, t));
        tt_ok(tsr_ckks_add_const(ev, t, t, 0.5, -0.25));
        for (size_t i = 0; i < n; i++) {
            want[2 * i] = -zc[2 * i + 1] + 0.5;
            want[2 * i + 1] = zc[2 * i] - 0.25;
        }
        tt_ok(tsr_ckks_decrypt(f.sk, f.pt, t));
        tt_ok(tsr_ckks_decode_complex(f.enc, f.pt, got, n, NULL));
        assert_true(tt_precision_bits(got, want, 2 * n) >= 22);
        free(zc);
        free(got);
        free(want);
    }
#undef CHECK
    tsr_ckks_plaintext_free(py);
    tsr_ckks_ciphertext_free(t);
    tsr_ckks_ciphertext_free(out);
    tsr_ckks_ciphertext_free(cx);
    tsr_ckks_ciphertext_free(cy);
    free(x);
    free(y);
    free(w);
    fx_free(&f);
}

/* The fused products (mul_relin, mul_relin_rescale compute c0, c1, c2 block
 * by block inside the key switch) are bit-identical to the separate steps,
 * with aliased outputs, squares and operands at different levels. */
static void test_fused_mul_keyswitch(void **state) {
    (void)state;
    fixture f;
    fx_init(&f, "n13-l3", NULL, 0);
    tsr_ckks_evaluator *ev = f.ev;
    double *x = rand_vec(&f, f.slots), *y = rand_vec(&f, f.slots);
    tsr_ckks_ciphertext *cx = encrypt_vec(&f, x, TSR_CKKS_TOP_LEVEL);
    tsr_ckks_ciphertext *cy = encrypt_vec(&f, y, TSR_CKKS_TOP_LEVEL);
    tsr_ckks_ciphertext *cz = encrypt_vec(&f, y, 2); /* a level below, same scale */
    tsr_ckks_ciphertext *out, *ref, *u;
    tt_ok(tsr_ckks_ciphertext_create(&out, f.p));
    tt_ok(tsr_ckks_ciphertext_create(&ref, f.p));
    tt_ok(tsr_ckks_ciphertext_create(&u, f.p));
    const tsr_ckks_ciphertext *ops[][2] = { { cx, cy }, { cx, cx }, { cx, cz }, { cz, cx } };
    for (size_t c = 0; c < sizeof ops / sizeof ops[0]; c++) {
        const tsr_ckks_ciphertext *a = ops[c][0], *b = ops[c][1];
        tt_ok(tsr_ckks_mul(ev, ref, a, b));
        tt_ok(tsr_ckks_relinearize(ev, ref, ref));
        tt_ok(tsr_ckks_mul_relin(ev, out, a, b));
        assert_true(ct_equal(out, ref));
        /* in place: out is the first, then the second operand */
        tt_ok(tsr_ckks_ciphertext_copy(u, a));
        tt_ok(tsr_ckks_mul_relin(ev, u, u, a == b ? u : b));
        assert_true(ct_equal(u, ref));
        tt_ok(tsr_ckks_ciphertext_copy(u, b));
        tt_ok(tsr_ckks_mul_relin(ev, u, a == b ? u : a, u));
        assert_true(ct_equal(u, ref));

        /* rescale mode against the unfused key switch of the product */
        tt_ok(tsr_ckks_mul(ev, ref, a, b));
        const int level = ref->level;
        tsr_ckks_ciphertext *r2;
        tt_ok(tsr_ckks_ciphertext_create(&r2, f.p));
        tt_ok(ckks_ct_reserve(r2, level - 1, 2));
        tt_ok(ckks_ks_decompose(ev, level, ckks_ct_poly(ref, 2)));
        tt_ok(ckks_ks_apply(ev, &ev->rk->key, 1, ckks_ct_poly(ref, 0), ckks_ct_poly(ref, 1),
                            ckks_ct_poly(r2, 0), ckks_ct_poly(r2, 1)));
        tt_ok(tsr_ckks_mul_relin_rescale(ev, out, a, b));
        assert_int_equal(out->level, level - 1);
        assert_int_equal(out->size, 2);
        assert_true(out->scale == ref->scale / (double)f.p->primes[level]);
        const size_t words = (size_t)level * f.p->n * 8;
        assert_memory_equal(ckks_ct_poly(out, 0), ckks_ct_poly(r2, 0), words);
        assert_memory_equal(ckks_ct_poly(out, 1), ckks_ct_poly(r2, 1), words);
        tt_ok(tsr_ckks_ciphertext_copy(u, a));
        tt_ok(tsr_ckks_mul_relin_rescale(ev, u, u, a == b ? u : b));
        assert_memory_equal(ckks_ct_poly(u, 0), ckks_ct_poly(r2, 0), words);
        assert_memory_equal(ckks_ct_poly(u, 1), ckks_ct_poly(r2, 1), words);
        tsr_ckks_ciphertext_free(r2);
    }
    tsr_ckks_ciphertext_free(u);
    tsr_ckks_ciphertext_free(ref);
    tsr_ckks_ciphertext_free(out);
    tsr_ckks_ciphertext_free(cz);
    tsr_ckks_ciphertext_free(cy);
    tsr_ckks_ciphertext_free(cx);
    free(x);
    free(y);
    fx_free(&f);
}

/* ckks.h rule 1: a plaintext below the ciphertext's level drops the ciphertext to the
 * plaintext's level (limbs discarded, scale kept); the results are right there. */
static void test_plain_below_level(void **state) {
    (void)state;
    fixture f;
    fx_init(&f, "n13-l3", NULL, 0);
    size_t n = f.slots;
    double *x = rand_vec(&f, n), *y = rand_vec(&f, n), *want = malloc(n * sizeof *want);
    tsr_ckks_ciphertext *cx = encrypt_vec(&f, x, TSR_CKKS_TOP_LEVEL), *out;
    tt_ok(tsr_ckks_ciphertext_create(&out, f.p));
    tsr_ckks_plaintext *pt;
    tt_ok(tsr_ckks_plaintext_create(&pt, f.p));
    const int top = cx->level, low = 1;
    assert_true(low < top);
    double est;
    /* add: the plaintext at the ciphertext's scale, two levels below */
    tt_ok(tsr_ckks_encode_real(f.enc, pt, y, n, low, tsr_ckks_ciphertext_scale(cx)));
    tt_ok(tsr_ckks_add_plain(f.ev, out, cx, pt));
    assert_int_equal(tsr_ckks_ciphertext_level(out), low);
    assert_true(tsr_ckks_ciphertext_scale(out) == tsr_ckks_ciphertext_scale(cx));
    for (size_t i = 0; i < n; i++) want[i] = x[i] + y[i];
    assert_true(prec_of(&f, out, want, &est) > 20);
    /* mul: any scale; the product lives at the plaintext's level */
    tt_ok(tsr_ckks_encode_real(f.enc, pt, y, n, low, 0));
    tt_ok(tsr_ckks_mul_plain(f.ev, out, cx, pt));
    assert_int_equal(tsr_ckks_ciphertext_level(out), low);
    for (size_t i = 0; i < n; i++) want[i] = x[i] * y[i];
    assert_true(prec_of(&f, out, want, &est) > 20);
    /* in place too */
    tt_ok(tsr_ckks_mul_plain(f.ev, cx, cx, pt));
    assert_int_equal(tsr_ckks_ciphertext_level(cx), low);
    assert_true(prec_of(&f, cx, want, &est) > 20);
    tsr_ckks_plaintext_free(pt);
    tsr_ckks_ciphertext_free(out);
    tsr_ckks_ciphertext_free(cx);
    free(x);
    free(y);
    free(want);
    fx_free(&f);
}

static void test_levels_and_scales(void **state) {
    (void)state;
    fixture f;
    fx_init(&f, "n13-l3", NULL, 0);
    size_t n = f.slots;
    tsr_ckks_evaluator *ev = f.ev;
    double *x = rand_vec(&f, n), *y = rand_vec(&f, n), *w = malloc(n * sizeof *w);
    tsr_ckks_ciphertext *cx = encrypt_vec(&f, x, TSR_CKKS_TOP_LEVEL);
    tsr_ckks_ciphertext *cy = encrypt_vec(&f, y, TSR_CKKS_TOP_LEVEL);
    tsr_ckks_ciphertext *xy, *t;
    tt_ok(tsr_ckks_ciphertext_create(&xy, f.p));
    tt_ok(tsr_ckks_ciphertext_create(&t, f.p));
    tt_ok(tsr_ckks_mul_relin_rescale(ev, xy, cx, cy)); /* level 2, Delta_2 */

    /* Rule 1: add/mul at different levels adjust the higher operand exactly. */
    tt_ok(tsr_ckks_add(ev, t, cx, xy));
    assert_int_equal(tsr_ckks_ciphertext_level(t), 2);
    assert_true(tsr_ckks_ciphertext_scale(t) == tsr_ckks_ciphertext_scale(xy));
    for (size_t i = 0; i < n; i++) w[i] = x[i] + x[i] * y[i];
    assert_true(prec_of(&f, t, w, NULL) >= 20);
    tt_ok(tsr_ckks_mul_relin_rescale(ev, t, xy, cx)); /* x^2 y */
    assert_int_equal(tsr_ckks_ciphertext_level(t), 1);
    assert_true(tsr_ckks_ciphertext_scale(t) == tsr_ckks_params_scale(f.p, 1));
    for (size_t i = 0; i < n; i++) w[i] = x[i] * x[i] * y[i];
    assert_true(prec_of(&f, t, w, NULL) >= 20);

    /* Rule 6: dropping keeps the scale; rule 2: then adding to xy is a scale mismatch. */
    tt_ok(tsr_ckks_drop_level(ev, t, cx, 2));
    assert_int_equal(tsr_ckks_ciphertext_level(t), 2);
    assert_true(tsr_ckks_ciphertext_scale(t) == tsr_ckks_ciphertext_scale(cx));
    assert_true(prec_of(&f, t, x, NULL) >= 24);
    tt_fails(tsr_ckks_add(ev, t, t, xy), TSR_ERR_SCALE);
    assert_non_null(strstr(tsr_last_error(), "scale"));
    /* ... unless adjusted explicitly (which needs a level to spend). */
    tt_ok(tsr_ckks_adjust(ev, t, cx, 2, tsr_ckks_ciphertext_scale(xy)));
    tt_ok(tsr_ckks_add(ev, t, t, xy));
    tt_fails(tsr_ckks_adjust(ev, t, xy, 2, 0x1p41), TSR_ERR_SCALE);
    tt_fails(tsr_ckks_adjust(ev, t, xy, 3, 0x1p40), TSR_ERR_LEVEL);

    /* Plaintexts at another scale cannot be added; a lower plaintext drops the ciphertext. */
    tt_ok(tsr_ckks_encode_real(f.enc, f.pt, y, n, TSR_CKKS_TOP_LEVEL, 0x1p39));
    tt_fails(tsr_ckks_add_plain(ev, t, cx, f.pt), TSR_ERR_SCALE);
    tt_ok(tsr_ckks_encode_real(f.enc, f.pt, y, n, 1, tsr_ckks_ciphertext_scale(cx)));
    tt_ok(tsr_ckks_add_plain(ev, t, cx, f.pt));
    assert_int_equal(tsr_ckks_ciphertext_level(t), 1);
    for (size_t i = 0; i < n; i++) w[i] = x[i] + y[i];
    assert_true(prec_of(&f, t, w, NULL) >= 24);

    /* Depth exhaustion: level 0 cannot rescale or multiply. */
    tt_ok(tsr_ckks_drop_level(ev, t, cx, 0));
    tt_fails(tsr_ckks_rescale(ev, t, t), TSR_ERR_LEVEL);
    assert_non_null(strstr(tsr_last_error(), "level 0: no multiplicative depth left"));
    tt_fails(tsr_ckks_mul_relin_rescale(ev, xy, t, t), TSR_ERR_LEVEL);
    tt_fails(tsr_ckks_mul_const(ev, xy, t, 2.0, 0), TSR_ERR_LEVEL);
    tt_fails(tsr_ckks_drop_level(ev, t, t, 1), TSR_ERR_LEVEL);
    /* A product not rescaled cannot be multiplied again at level 1 (scale overflow). */
    tt_ok(tsr_ckks_drop_level(ev, t, cx, 1));
    tt_ok(tsr_ckks_mul_relin(ev, t, t, t));
    tt_fails(tsr_ckks_mul_relin(ev, xy, t, t), TSR_ERR_SCALE);
    assert_non_null(strstr(tsr_last_error(), "rescale"));
    /* Relinearization without a key, rotation without keys. */
    tsr_ckks_evaluator *bare;
    tt_ok(tsr_ckks_evaluator_create(&bare, f.p, NULL, NULL));
    tt_ok(tsr_ckks_mul(bare, t, cx, cy));
    tt_fails(tsr_ckks_relinearize(bare, t, t), TSR_ERR_KEY_MISSING);
    tt_fails(tsr_ckks_rotate(bare, t, cx, 1), TSR_ERR_KEY_MISSING);
    tt_fails(tsr_ckks_conjugate(bare, t, cx), TSR_ERR_KEY_MISSING);
    tt_fails(tsr_ckks_mul(bare, xy, t, cx), TSR_ERR_INVALID_ARG); /* size 3 */
    tsr_ckks_evaluator_free(bare);

    /* Objects of other parameters. */
    tsr_ckks_param_spec s = small_spec();
    tsr_ckks_params *other;
    tt_ok(tsr_ckks_params_create(&other, &s));
    tsr_ckks_ciphertext *foreign;
    tt_ok(tsr_ckks_ciphertext_create(&foreign, other));
    tt_fails(tsr_ckks_add(ev, foreign, cx, cy), TSR_ERR_MISMATCH);
    tt_fails(tsr_ckks_add(ev, t, cx, foreign), TSR_ERR_MISMATCH);
    tt_fails(tsr_ckks_decrypt(f.sk, f.pt, foreign), TSR_ERR_MISMATCH);
    tsr_ckks_ciphertext_free(foreign);
    tsr_ckks_params_free(other); /* parameters are reference counted */

    tsr_ckks_ciphertext_free(cx);
    tsr_ckks_ciphertext_free(cy);
    tsr_ckks_ciphertext_free(xy);
    tsr_ckks_ciphertext_free(t);
    free(x);
    free(y);
    free(w);
    fx_free(&f);
}

/* ---- rotations --------------------------------------------------------------------------------
 */

static void rotated(const double *x, size_t n, long step, double *w) {
    for (size_t i = 0; i < n; i++) w[i] = x[(size_t)(((long)i + step) % (long)n + (long)n) % n];
}

/*
 * Key switching with centred digits (ring/baseconv.h, tsr_baseconv_modup): the error a rotation
 * adds is zero-mean and spread evenly over the slots. Digits in [0, Q_j) would add the fixed
 * part (Q_j/2)(1 + X + ... + X^(N-1)) e_j / P, whose transform is a spike in the slots near
 * theta = 0. Measured against the decrypted input (so the input's own noise cancels): the
 * largest slot error over the rms error, rotations by 1 and 7. With P about the digit's size
 * (key switching dominates), 6 key sets per shape: centred 5.0-7.6, uncentred 18-52 (one prime
 * per digit) and 23-52 (two), so the smallest of 3 key sets is held below 12.
 */
static void test_keyswitch_centred(void **state) {
    (void)state;
    static const struct {
        int log_n, dnum, levels;
    } shapes[] = { { 11, 0, 3 }, { 12, 0, 3 }, { 11, 2, 3 }, { 12, 3, 5 } };
    for (size_t si = 0; si < sizeof shapes / sizeof shapes[0]; si++) {
        tsr_ckks_param_spec s = small_spec();
        s.log_n = shapes[si].log_n;
        s.levels = shapes[si].levels;
        s.dnum = shapes[si].dnum;
        /* P = the largest digit: 50 bits for one prime, 90 for a 50- and a 40-bit one */
        s.special_primes = s.dnum ? 2 : 1;
        s.special_prime_bits = s.dnum ? 45 : 50;
        double best = INFINITY;
        for (int keys = 0; keys < 3; keys++) {
            fixture f;
            fx_init(&f, NULL, &s, 1);
            const size_t n = f.slots;
            double *x = rand_vec(&f, n), *d = malloc(n * sizeof *d), *w = malloc(n * sizeof *w);
            assert_non_null(d);
            assert_non_null(w);
            tsr_ckks_ciphertext *cx = encrypt_vec(&f, x, TSR_CKKS_TOP_LEVEL), *t;
            tt_ok(tsr_ckks_ciphertext_create(&t, f.p));
            tt_ok(tsr_ckks_decrypt(f.sk, f.pt, cx));
            tt_ok(tsr_ckks_decode_real(f.enc, f.pt, d, n, NULL));
            double worst = 0, ss = 0;
            for (int r = 0; r < 2; r++) {
                const int step = r ? 7 : 1;
                tt_ok(tsr_ckks_rotate(f.ev, t, cx, step));
                tt_ok(tsr_ckks_decrypt(f.sk, f.pt, t));
                tt_ok(tsr_ckks_decode_real(f.enc, f.pt, w, n, NULL));
                for (size_t i = 0; i < n; i++) {
                    const double e = w[i] - d[(i + (size_t)step) % n];
                    ss += e * e;
                    if (fabs(e) > worst) worst = fabs(e);
                }
            }
            assert_true(ss > 0);
            const double ratio = worst / sqrt(ss / (2.0 * (double)n));
            if (ratio < best) best = ratio;
            free(x);
            free(d);
            free(w);
            tsr_ckks_ciphertext_free(cx);
            tsr_ckks_ciphertext_free(t);
            fx_free(&f);
        }
        if (!(best < 12))
            fail_msg("log_n %d dnum %d: a rotation's largest slot error is %.1f x its rms (a "
                     "spike: uncentred key-switching digits?)",
                     s.log_n, s.dnum, best);
    }
}

static void test_rotations(void **state) {
    (void)state;
    fixture f;
    fx_init(&f, "n13-l3", NULL, 1);
    size_t n = f.slots;
    tsr_ckks_evaluator *ev = f.ev;
    double *x = rand_vec(&f, n), *w = malloc(n * sizeof *w), est;
    tsr_ckks_ciphertext *cx = encrypt_vec(&f, x, TSR_CKKS_TOP_LEVEL), *t;
    tt_ok(tsr_ckks_ciphertext_create(&t, f.p));
    /* Every key step, its negative twin and steps needing composition. */
    const int steps[] = { 1, 2, 3, -1, 7, 4, 5, -2, 100, -37, (int)n + 3, 0 };
    for (size_t s = 0; s < sizeof steps / sizeof steps[0]; s++) {
        tt_ok(tsr_ckks_rotate(ev, t, cx, steps[s]));
        rotated(x, n, steps[s], w);
        double b = prec_of(&f, t, w, &est);
        if (b < 22 || fabs(b - est) > 4)
            fail_msg("rotation by %d: %.1f bits (estimate %.1f)", steps[s], b, est);
    }
    assert_int_equal(tsr_ckks_galois_keys_has_rotation(f.gk, -1), 1);
    assert_int_equal(tsr_ckks_galois_keys_has_rotation(f.gk, (int)n - 1), 1);
    assert_int_equal(tsr_ckks_galois_keys_has_rotation(f.gk, 4), 0);
    assert_int_equal(tsr_ckks_galois_keys_has_conjugate(f.gk), 1);
    assert_int_equal(tsr_ckks_galois_keys_count(f.gk), 6);
    int got[8];
    assert_int_equal(tsr_ckks_galois_keys_steps(f.gk, got, 8), 5);
    assert_int_equal(got[0], 1);
    assert_int_equal(got[4], (int)n - 1);
    /* In place. */
    tt_ok(tsr_ckks_ciphertext_copy(t, cx));
    tt_ok(tsr_ckks_rotate(ev, t, t, 3));
    rotated(x, n, 3, w);
    assert_true(prec_of(&f, t, w, NULL) >= 22);

    /* The fused rotation (each output limb permuted from cache) is
     * bit-identical to the key switch followed by the automorphism. */
    {
        const int lv = tsr_ckks_ciphertext_level(cx);
        const size_t words = (size_t)(lv + 1) * f.p->n;
        uint64_t *v = tsr_alloc(2 * words * sizeof *v), *want = tsr_alloc(2 * words * sizeof *v);
        assert_non_null(v);
        assert_non_null(want);
        const uint64_t elts[] = { ckks_galois_elt_rotation(n, 3), ckks_galois_elt_conjugate(n) };
        for (int i = 0; i < 2; i++) {
            const ckks_galois_entry *e = ckks_galois_find(f.gk, elts[i]);
            assert_non_null(e);
            tt_ok(ckks_keyswitch(ev, lv, ckks_ct_poly(cx, 1), &e->key, ckks_ct_poly(cx, 0), NULL, v,
                                 v + words));
            tsr_rns_automorphism_ntt(f.p->q[lv], want, v, e->perm);
            tsr_rns_automorphism_ntt(f.p->q[lv], want + words, v + words, e->perm);
            if (i == 0)
                tt_ok(tsr_ckks_rotate(ev, t, cx, 3));
            else
                tt_ok(tsr_ckks_conjugate(ev, t, cx));
            assert_memory_equal(ckks_ct_poly(t, 0), want, words * 8);
            assert_memory_equal(ckks_ct_poly(t, 1), want + words, words * 8);
        }
        tsr_free(v);
        tsr_free(want);
    }

    /* Hoisted rotations are bit-identical to plain ones. */
    const int hs[] = { 1, 2, 3, -1, 7, 0 };
    enum { NH = sizeof hs / sizeof hs[0] };
    tsr_ckks_ciphertext *outs[NH];
    for (int i = 0; i < NH; i++) tt_ok(tsr_ckks_ciphertext_create(&outs[i], f.p));
    tt_ok(tsr_ckks_rotate_hoisted(ev, outs, cx, hs, NH));
    for (int i = 0; i < NH; i++) {
        tt_ok(tsr_ckks_rotate(ev, t, cx, hs[i]));
        if (!ct_equal(t, outs[i])) fail_msg("hoisted rotation by %d differs", hs[i]);
    }
    /* ...at a lower level too. */
    tsr_ckks_ciphertext *low;
    tt_ok(tsr_ckks_ciphertext_create(&low, f.p));
    tt_ok(tsr_ckks_drop_level(ev, low, cx, 1));
    tt_ok(tsr_ckks_rotate_hoisted(ev, outs, low, hs, 2));
    tt_ok(tsr_ckks_rotate(ev, t, low, hs[1]));
    assert_true(ct_equal(t, outs[1]));
    rotated(x, n, hs[1], w);
    assert_true(prec_of(&f, outs[1], w, NULL) >= 22);
    /* Hoisted rotations need exact keys and distinct outputs. */
    const int bad[] = { 1, 4 };
    tt_fails(tsr_ckks_rotate_hoisted(ev, outs, cx, bad, 2), TSR_ERR_KEY_MISSING);
    assert_non_null(strstr(tsr_last_error(), "rotation by 4"));
    tsr_ckks_ciphertext *dup[2] = { outs[0], outs[0] };
    tt_fails(tsr_ckks_rotate_hoisted(ev, dup, cx, hs, 2), TSR_ERR_INVALID_ARG);
    for (int i = 0; i < NH; i++) tsr_ckks_ciphertext_free(outs[i]);
    tsr_ckks_ciphertext_free(low);

    /* Conjugation of complex slots. */
    double *z = malloc(2 * n * sizeof *z), *zo = malloc(2 * n * sizeof *zo);
    for (size_t i = 0; i < 2 * n; i++) z[i] = 2 * tsr_prng_double(&f.g) - 1;
    tt_ok(tsr_ckks_encode_complex(f.enc, f.pt, z, n, TSR_CKKS_TOP_LEVEL, 0));
    tt_ok(tsr_ckks_encrypt(f.pk, t, f.pt));
    tt_ok(tsr_ckks_conjugate(ev, t, t));
    tt_ok(tsr_ckks_decrypt(f.sk, f.pt, t));
    tt_ok(tsr_ckks_decode_complex(f.enc, f.pt, zo, n, NULL));
    for (size_t i = 0; i < n; i++) z[2 * i + 1] = -z[2 * i + 1];
    assert_true(tt_precision_bits(zo, z, 2 * n) >= 22);
    free(z);
    free(zo);

    /* A set that cannot compose a step names it. */
    tsr_ckks_galois_keys *even;
    const int two = 2;
    tt_ok(tsr_ckks_galois_keys_create(&even, f.sk, &two, 1, 0));
    tsr_ckks_evaluator *ev2;
    tt_ok(tsr_ckks_evaluator_create(&ev2, f.p, f.rk, even));
    tt_ok(tsr_ckks_rotate(ev2, t, cx, 6));
    tt_fails(tsr_ckks_rotate(ev2, t, cx, 5), TSR_ERR_KEY_MISSING);
    assert_non_null(strstr(tsr_last_error(), "rotation by 5"));
    tt_fails(tsr_ckks_conjugate(ev2, t, cx), TSR_ERR_KEY_MISSING);
    /* Adding keys later (the same evaluator sees them), power-of-two sets. */
    tt_ok(tsr_ckks_galois_keys_add(even, f.sk, NULL, 0, TSR_CKKS_GALOIS_POW2));
    assert_int_equal(tsr_ckks_galois_keys_count(even), (size_t)log2((double)n));
    tt_ok(tsr_ckks_rotate(ev2, t, cx, -5));
    rotated(x, n, -5, w);
    assert_true(prec_of(&f, t, w, NULL) >= 20);
    tsr_ckks_evaluator_free(ev2);
    tsr_ckks_galois_keys_free(even);

    tsr_ckks_ciphertext_free(cx);
    tsr_ckks_ciphertext_free(t);
    free(x);
    free(w);
    fx_free(&f);
}

/* ---- threads ------------------------------------------------------------------------------------
 */

static void test_thread_independence(void **state) {
    (void)state;
    fixture f;
    fx_init(&f, "n13-l3", NULL, 1);
    double *x = rand_vec(&f, f.slots), *y = rand_vec(&f, f.slots);
    tsr_ckks_ciphertext *cx = encrypt_vec(&f, x, TSR_CKKS_TOP_LEVEL);
    tsr_ckks_ciphertext *cy = encrypt_vec(&f, y, TSR_CKKS_TOP_LEVEL);
    tsr_ckks_ciphertext *r[2][3];
    int saved = tsr_get_num_threads();
    for (int th = 0; th < 2; th++) {
        tsr_set_num_threads(th + 1);
        for (int i = 0; i < 3; i++) tt_ok(tsr_ckks_ciphertext_create(&r[th][i], f.p));
        tt_ok(tsr_ckks_mul_relin_rescale(f.ev, r[th][0], cx, cy));
        tt_ok(tsr_ckks_rotate(f.ev, r[th][1], cx, 5)); /* composed: 2 + 3 */
        tt_ok(tsr_ckks_add(f.ev, r[th][2], r[th][0], cx));
        tt_ok(tsr_ckks_conjugate(f.ev, r[th][2], r[th][2]));
    }
    tsr_set_num_threads(saved);
    for (int i = 0; i < 3; i++) {
        assert_true(ct_equal(r[0][i], r[1][i]));
        tsr_ckks_ciphertext_free(r[0][i]);
        tsr_ckks_ciphertext_free(r[1][i]);
    }
    /* Encoding/decoding too. */
    tsr_ckks_ciphertext_free(cx);
    tsr_ckks_ciphertext_free(cy);
    free(x);
    free(y);
    fx_free(&f);
}

/* ---- depth
 * ---------------------------------------------------------------------------------------- */

static void test_depth10_squarings(void **state) {
    (void)state;
    /* N = 2^15 with the 14-level preset (under sanitizers: N = 2^12, insecure). */
    fixture f;
    tsr_ckks_param_spec s;
    tt_ok(tsr_ckks_preset_spec("n15-l14", &s));
    if (tt_sanitized()) {
        s.log_n = 12;
        s.flags = TSR_CKKS_ALLOW_INSECURE_PARAMETERS;
    }
    fx_init(&f, NULL, &s, 0);
    size_t n = f.slots;
    double *x = rand_vec(&f, n), *w = malloc(n * sizeof *w);
    /* Client-side fresh encryption with the secret key (seeded). Squaring
     * values near 1 doubles the error each time, so the rounding errors of
     * the rescales dominate the result whichever encryption is used. */
    tsr_ckks_ciphertext *c;
    tt_ok(tsr_ckks_ciphertext_create(&c, f.p));
    tt_ok(tsr_ckks_encode_real(f.enc, f.pt, x, n, TSR_CKKS_TOP_LEVEL, 0));
    tt_ok(tsr_ckks_encrypt_symmetric(f.sk, c, f.pt));
    memcpy(w, x, n * sizeof *w);
    for (int d = 0; d < 10; d++) {
        tt_ok(tsr_ckks_mul_relin_rescale(f.ev, c, c, c));
        for (size_t i = 0; i < n; i++) w[i] *= w[i];
    }
    double est, b = prec_of(&f, c, w, &est);
    printf("  after 10 squarings at N = 2^%u: %.1f bits (estimate %.1f), level %d\n", s.log_n, b,
           est, tsr_ckks_ciphertext_level(c));
    assert_true(b >= 15);
    assert_int_equal(tsr_ckks_ciphertext_level(c), tsr_ckks_params_max_level(f.p) - 10);
    tsr_ckks_ciphertext_free(c);
    free(x);
    free(w);
    fx_free(&f);
}

static void test_fixed_hamming_weight(void **state) {
    (void)state;
    tsr_ckks_param_spec s = small_spec();
    s.secret = TSR_CKKS_SECRET_FIXED_HW;
    s.hamming_weight = 64;
    fixture f;
    fx_init(&f, NULL, &s, 0);
    size_t w = 0;
    for (size_t i = 0; i < f.p->n; i++) {
        assert_true(f.sk->coeffs[i] >= -1 && f.sk->coeffs[i] <= 1);
        w += f.sk->coeffs[i] != 0;
    }
    assert_int_equal(w, 64);
    double *x = rand_vec(&f, f.slots), *y = malloc(f.slots * sizeof *y);
    tsr_ckks_ciphertext *c = encrypt_vec(&f, x, TSR_CKKS_TOP_LEVEL);
    tt_ok(tsr_ckks_mul_relin_rescale(f.ev, c, c, c));
    for (size_t i = 0; i < f.slots; i++) y[i] = x[i] * x[i];
    assert_true(prec_of(&f, c, y, NULL) >= 20);
    tsr_ckks_ciphertext_free(c);
    free(x);
    free(y);
    fx_free(&f);
}

static void test_mod_raise(void **state) {
    (void)state;
    fixture f;
    fx_init(&f, "n13-l3", NULL, 0);
    double *x = rand_vec(&f, f.slots);
    tsr_ckks_ciphertext *c = encrypt_vec(&f, x, 0), *r;
    tt_ok(tsr_ckks_ciphertext_create(&r, f.p));
    tt_ok(tsr_ckks_mod_raise(f.ev, r, c));
    assert_int_equal(tsr_ckks_ciphertext_level(r), tsr_ckks_params_max_level(f.p));
    /* Decryption at the top level is m + q_0 I: equal to m modulo q_0 ... */
    tsr_ckks_plaintext *m0, *mr;
    tt_ok(tsr_ckks_plaintext_create(&m0, f.p));
    tt_ok(tsr_ckks_plaintext_create(&mr, f.p));
    tt_ok(tsr_ckks_decrypt(f.sk, m0, c));
    tt_ok(tsr_ckks_decrypt(f.sk, mr, r));
    size_t n = f.p->n;
    uint64_t *a0 = tsr_alloc(n * 8), *ar = tsr_alloc((size_t)(f.p->L + 1) * n * 8); /* aligned */
    memcpy(a0, m0->data, n * 8);
    memcpy(ar, mr->data, (size_t)(f.p->L + 1) * n * 8);
    tsr_ntt_inverse(ckks_ntt(f.p, 0), a0);
    tsr_rns_intt(f.p->q[f.p->L], ar);
    assert_memory_equal(a0, ar, n * 8);
    /* ... with |I| small: the centred value over Q_L divided by q_0. */
    double *v = malloc(n * sizeof *v), worst = 0;
    tsr_rns_to_double(f.p->q[f.p->L], ar, 1.0 / (double)f.p->primes[0], v);
    for (size_t i = 0; i < n; i++) worst = fmax(worst, fabs(v[i]));
    assert_true(worst >= 1);                      /* I is not zero ... */
    assert_true(worst <= (2.0 * n / 3 + 64) / 2); /* ... and bounded by (|s|_1 + 1) / 2 */
    /* A ciphertext above level 0 is dropped first; in place works. */
    tsr_ckks_ciphertext *top = encrypt_vec(&f, x, TSR_CKKS_TOP_LEVEL);
    tt_ok(tsr_ckks_mod_raise(f.ev, top, top));
    assert_int_equal(tsr_ckks_ciphertext_level(top), tsr_ckks_params_max_level(f.p));
    tsr_free(a0);
    tsr_free(ar);
    free(v);
    free(x);
    tsr_ckks_plaintext_free(m0);
    tsr_ckks_plaintext_free(mr);
    tsr_ckks_ciphertext_free(top);
    tsr_ckks_ciphertext_free(c);
    tsr_ckks_ciphertext_free(r);
    fx_free(&f);
}

/*
 * Level-aware keys (tsr_ckks_relin_key_create_level / _trim,
 * tsr_ckks_galois_keys_add_level / _trim): memory by the test's own formula,
 * a trimmed key bit-identical to the full one at levels it serves,
 * TSR_ERR_LEVEL above, a step already present keeps its key, the level
 * queries, such keys round-trip through their files (format 3), bad levels
 * are rejected. Keys are seeded: only the b halves are in memory.
 */
static void test_level_keys(void **state) {
    (void)state;
    tsr_ckks_param_spec spec = small_spec();
    spec.levels = 5;
    fixture f;
    fx_init(&f, NULL, &spec, 0);
    const int L = tsr_ckks_params_max_level(f.p), k = tsr_ckks_params_special_count(f.p);
    const int dnum = tsr_ckks_params_dnum(f.p), alpha = (L + 1 + dnum - 1) / dnum;
    const uint64_t N = tsr_ckks_params_n(f.p);
#define KEY_BYTES(m) ((uint64_t)(((m) + alpha) / alpha) * (uint64_t)((m) + 1 + k) * N * 8)
    assert_int_equal(tsr_ckks_relin_key_memory(f.rk), KEY_BYTES(L));
    assert_int_equal(tsr_ckks_relin_key_max_level(f.rk), L);
    double *x = rand_vec(&f, f.slots);
    tsr_ckks_ciphertext *a = encrypt_vec(&f, x, 2), *full, *trim;
    tt_ok(tsr_ckks_ciphertext_create(&full, f.p));
    tt_ok(tsr_ckks_ciphertext_create(&trim, f.p));
    tt_ok(tsr_ckks_mul_relin(f.ev, full, a, a));
    assert_int_equal(tsr_ckks_relin_key_trim(f.rk, L + 1), TSR_ERR_INVALID_ARG);
    assert_true(tsr_ckks_relin_key_serialized_size(f.rk) > 0);
    tt_ok(tsr_ckks_relin_key_trim(f.rk, 2));
    /* a file holds the b halves, the level, the stream and the seed */
    assert_int_equal(tsr_ckks_relin_key_serialized_size(f.rk),
                     KEY_BYTES(2) + TSR_CKKS_KEY_ID_BYTES + 41 + 36 + 32);
    assert_int_equal(tsr_ckks_relin_key_max_level(f.rk), 2);
    assert_int_equal(tsr_ckks_relin_key_memory(f.rk), KEY_BYTES(2));
    assert_true(KEY_BYTES(2) < KEY_BYTES(L));
    tt_ok(tsr_ckks_mul_relin(f.ev, trim, a, a));
    assert_true(ct_equal(full, trim));
    uint8_t *buf = NULL;
    size_t len = 0;
    tt_ok(tsr_ckks_relin_key_to_bytes(f.rk, &buf, &len));
    assert_int_equal(len, tsr_ckks_relin_key_serialized_size(f.rk));
    tsr_ckks_relin_key *rk_read;
    tt_ok(tsr_ckks_relin_key_from_bytes(&rk_read, f.p, buf, len));
    tsr_ckks_bytes_free(buf);
    buf = NULL;
    assert_int_equal(tsr_ckks_relin_key_max_level(rk_read), 2);
    assert_int_equal(tsr_ckks_relin_key_memory(rk_read), KEY_BYTES(2));
    {
        tsr_ckks_evaluator *ev_read;
        tsr_ckks_ciphertext *again;
        tt_ok(tsr_ckks_evaluator_create(&ev_read, f.p, rk_read, NULL));
        tt_ok(tsr_ckks_ciphertext_create(&again, f.p));
        tt_ok(tsr_ckks_mul_relin(ev_read, again, a, a));
        assert_true(ct_equal(full, again));
        tsr_ckks_ciphertext_free(again);
        tsr_ckks_evaluator_free(ev_read);
    }
    tsr_ckks_relin_key_free(rk_read);
    tsr_ckks_ciphertext *b = encrypt_vec(&f, x, 3), *b2;
    /* refused before the output is touched */
    assert_int_equal(tsr_ckks_mul_relin(f.ev, trim, b, b), TSR_ERR_LEVEL);
    assert_true(ct_equal(full, trim));
    tt_ok(tsr_ckks_ciphertext_create(&b2, f.p));
    tt_ok(tsr_ckks_mul(f.ev, b2, b, b));
    assert_int_equal(tsr_ckks_relinearize(f.ev, trim, b2), TSR_ERR_LEVEL);
    assert_true(ct_equal(full, trim));
    tsr_ckks_ciphertext_free(b2);

    /* a relinearization key generated for level 1 */
    tsr_ckks_relin_key *rk1;
    assert_int_equal(tsr_ckks_relin_key_create_level(&rk1, f.sk, L + 1), TSR_ERR_INVALID_ARG);
    tt_ok(tsr_ckks_relin_key_create_level(&rk1, f.sk, 1));
    assert_int_equal(tsr_ckks_relin_key_memory(rk1), KEY_BYTES(1));

    /* Galois: rotation by 5 for levels <= 1, conjugation for every level */
    tsr_ckks_galois_keys *gk;
    const int step = 5;
    tt_ok(tsr_ckks_galois_keys_create(&gk, f.sk, NULL, 0, 0));
    assert_int_equal(tsr_ckks_galois_keys_add_level(gk, f.sk, &step, 1, 0, L + 1),
                     TSR_ERR_INVALID_ARG);
    tt_ok(tsr_ckks_galois_keys_add_level(gk, f.sk, &step, 1, 0, 1));
    tt_ok(tsr_ckks_galois_keys_add(gk, f.sk, &step, 1, TSR_CKKS_GALOIS_CONJUGATE));
    assert_int_equal(tsr_ckks_galois_keys_rotation_level(gk, step), 1); /* kept */
    assert_int_equal(tsr_ckks_galois_keys_rotation_level(gk, 0), L);
    assert_int_equal(tsr_ckks_galois_keys_rotation_level(gk, 11), -1);
    assert_int_equal(tsr_ckks_galois_keys_memory(gk), KEY_BYTES(1) + KEY_BYTES(L));
    tsr_ckks_evaluator *ev;
    tt_ok(tsr_ckks_evaluator_create(&ev, f.p, rk1, gk));
    tsr_ckks_ciphertext *c1 = encrypt_vec(&f, x, 1), *r;
    tt_ok(tsr_ckks_ciphertext_create(&r, f.p));
    tt_ok(tsr_ckks_rotate(ev, r, c1, step));
    double *want = malloc(f.slots * sizeof *want);
    assert_non_null(want);
    rotated(x, f.slots, step, want);
    assert_true(prec_of(&f, r, want, NULL) > 20);
    tsr_ckks_ciphertext *r_was;
    tt_ok(tsr_ckks_ciphertext_create(&r_was, f.p));
    tt_ok(tsr_ckks_ciphertext_copy(r_was, r));
    assert_int_equal(tsr_ckks_rotate(ev, r, a, step), TSR_ERR_LEVEL);
    assert_true(ct_equal(r_was, r)); /* refused before r is touched */
    assert_int_equal(tsr_ckks_rotate_hoisted(ev, &r, a, &step, 1), TSR_ERR_LEVEL);
    assert_true(ct_equal(r_was, r));
    tsr_ckks_ciphertext_free(r_was);
    tt_ok(tsr_ckks_mul_relin(ev, r, c1, c1));
    assert_int_equal(tsr_ckks_mul_relin(ev, r, a, a), TSR_ERR_LEVEL);
    tt_ok(tsr_ckks_galois_keys_to_bytes(gk, &buf, &len));
    assert_int_equal(len, tsr_ckks_galois_keys_serialized_size(gk));
    {
        tsr_ckks_galois_keys *gk_read;
        tt_ok(tsr_ckks_galois_keys_from_bytes(&gk_read, f.p, buf, len));
        assert_int_equal(tsr_ckks_galois_keys_rotation_level(gk_read, step), 1);
        assert_int_equal(tsr_ckks_galois_keys_memory(gk_read), tsr_ckks_galois_keys_memory(gk));
        tsr_ckks_evaluator *ev_read;
        tsr_ckks_ciphertext *again;
        tt_ok(tsr_ckks_evaluator_create(&ev_read, f.p, rk1, gk_read));
        tt_ok(tsr_ckks_ciphertext_create(&again, f.p));
        tt_ok(tsr_ckks_rotate(ev_read, again, c1, step));
        tt_ok(tsr_ckks_rotate(ev, r, c1, step));
        assert_true(ct_equal(r, again));
        tsr_ckks_ciphertext_free(again);
        tsr_ckks_evaluator_free(ev_read);
        tsr_ckks_galois_keys_free(gk_read);
    }
    tsr_ckks_bytes_free(buf);
    buf = NULL;
    /* composition skips keys too low for the level: steps 1 and 4 full, 2 and 5 for level 1
     * only; at a's level 2, rotations by 5 and 6 compose 4 + 1 (+ 1) */
    tsr_ckks_galois_keys *mixed;
    const int full_steps[2] = { 1, 4 }, low_steps[2] = { 2, 5 };
    tt_ok(tsr_ckks_galois_keys_create(&mixed, f.sk, full_steps, 2, 0));
    tt_ok(tsr_ckks_galois_keys_add_level(mixed, f.sk, low_steps, 2, 0, 1));
    tsr_ckks_evaluator *ev_mixed;
    tt_ok(tsr_ckks_evaluator_create(&ev_mixed, f.p, NULL, mixed));
    for (int by = 5; by <= 6; by++) {
        for (int lv = 1; lv <= 2; lv++) { /* level 1 (all keys), 2, 1 again: paths rebuilt */
            const tsr_ckks_ciphertext *in = lv == 2 ? a : c1;
            tt_ok(tsr_ckks_rotate(ev_mixed, r, in, by));
            rotated(x, f.slots, by, want);
            assert_true(prec_of(&f, r, want, NULL) > 20);
        }
    }
    tt_ok(tsr_ckks_rotate(ev_mixed, r, c1, 6));
    assert_true(prec_of(&f, r, want, NULL) > 20);
    /* a step the full keys cannot compose: its own key's level error */
    tsr_ckks_galois_keys_free(mixed);
    tt_ok(tsr_ckks_galois_keys_create(&mixed, f.sk, NULL, 0, 0));
    tt_ok(tsr_ckks_galois_keys_add_level(mixed, f.sk, &low_steps[1], 1, 0, 1));
    tsr_ckks_evaluator_free(ev_mixed);
    tt_ok(tsr_ckks_evaluator_create(&ev_mixed, f.p, NULL, mixed));
    assert_int_equal(tsr_ckks_rotate(ev_mixed, r, a, 5), TSR_ERR_LEVEL);
    tsr_ckks_evaluator_free(ev_mixed);
    tsr_ckks_galois_keys_free(mixed);
    /* trim: the conjugation key to level 0 */
    tt_ok(tsr_ckks_galois_keys_trim(gk, NULL, NULL, 0, 0));
    assert_int_equal(tsr_ckks_galois_keys_memory(gk), KEY_BYTES(1) + KEY_BYTES(0));
    assert_int_equal(tsr_ckks_conjugate(ev, r, c1), TSR_ERR_LEVEL);
    assert_int_equal(tsr_ckks_galois_keys_trim(gk, NULL, NULL, 0, L + 1), TSR_ERR_INVALID_ARG);
#undef KEY_BYTES
    free(want);
    free(x);
    tsr_ckks_ciphertext_free(a);
    tsr_ckks_ciphertext_free(b);
    tsr_ckks_ciphertext_free(c1);
    tsr_ckks_ciphertext_free(r);
    tsr_ckks_ciphertext_free(full);
    tsr_ckks_ciphertext_free(trim);
    tsr_ckks_evaluator_free(ev);
    tsr_ckks_galois_keys_free(gk);
    tsr_ckks_relin_key_free(rk1);
    fx_free(&f);
}

/* ---- many ciphertexts, one step ---------------------------------------------------------- */

/* ct_equal and the same error and magnitude estimates. */
static int ct_same(const tsr_ckks_ciphertext *a, const tsr_ckks_ciphertext *b) {
    return ct_equal(a, b) && a->err == b->err && a->mag == b->mag;
}

/* tsr_ckks_rotate_many(ev, ins[0..n), step) against n calls of tsr_ckks_rotate, word for word
 * (scratch outputs outs, refs of at least n). */
static void check_rotate_many(tsr_ckks_evaluator *ev, tsr_ckks_ciphertext *const *ins, size_t n,
                              int step, tsr_ckks_ciphertext *const *outs,
                              tsr_ckks_ciphertext *const *refs) {
    tt_ok(tsr_ckks_rotate_many(ev, outs, (const tsr_ckks_ciphertext *const *)ins, n, step));
    for (size_t i = 0; i < n; i++) {
        tt_ok(tsr_ckks_rotate(ev, refs[i], ins[i], step));
        if (!ct_same(outs[i], refs[i]))
            fail_msg("rotation %zu of %zu by %d differs from tsr_ckks_rotate", i, n, step);
    }
}

/*
 * Many ciphertexts rotated by one step with one key (chunks of decompositions sharing each
 * block of the key) give word for word what one rotation at a time gives: n = 1, even and odd
 * n, more than one chunk (CKKS_KS_MANY_CHUNK = 8: 17 is three chunks, the last of one), seeded
 * and expanded keys, 1, 2 and 3 threads, the top level and a lower one (fewer digits); split
 * NTTs (N = 2^13: two blocks per limb), two special primes and two-prime digits, so that the
 * P limbs, the digits' own limbs and the blocks all take part. Composed steps, step 0 and
 * mixed levels take the loop; aliased outputs are refused.
 */
static void test_rotate_many(void **state) {
    (void)state;
    tsr_ckks_param_spec spec = small_spec();
    spec.log_n = 13;
    spec.levels = 4;
    spec.special_primes = 2;
    spec.dnum = 3; /* alpha 2: digits {0,1}, {2,3}, {4} */
    fixture f;
    fx_init(&f, NULL, &spec, 1);
    assert_int_equal(CKKS_KS_MANY_CHUNK, 8);
    assert_true(ckks_ks_many_chunk(f.p, 4) == CKKS_KS_MANY_CHUNK);
    tsr_ckks_galois_keys *gk_x;
    uint8_t *buf = NULL;
    size_t len = 0;
    tt_ok(tsr_ckks_galois_keys_to_bytes(f.gk, &buf, &len));
    tt_ok(tsr_ckks_galois_keys_from_bytes(&gk_x, f.p, buf, len));
    tsr_ckks_bytes_free(buf);
    tt_ok(tsr_ckks_galois_keys_expand(gk_x));
    tsr_ckks_evaluator *ev_x;
    tt_ok(tsr_ckks_evaluator_create(&ev_x, f.p, f.rk, gk_x));
    enum { NMAX = 17 };
    tsr_ckks_ciphertext *ins[NMAX], *outs[NMAX], *refs[NMAX];
    for (int i = 0; i < NMAX; i++) {
        double *x = rand_vec(&f, f.slots);
        ins[i] = encrypt_vec(&f, x, TSR_CKKS_TOP_LEVEL);
        free(x);
        tt_ok(tsr_ckks_ciphertext_create(&outs[i], f.p));
        tt_ok(tsr_ckks_ciphertext_create(&refs[i], f.p));
    }
    const size_t ns[] = { 1, 2, 3, 8, 9, 17 };
    int saved = tsr_get_num_threads();
    for (int th = 1; th <= 3; th++) {
        tsr_set_num_threads(th);
        for (int keys = 0; keys < 2; keys++) {
            tsr_ckks_evaluator *ev = keys ? ev_x : f.ev;
            for (size_t k = 0; k < sizeof ns / sizeof ns[0]; k++)
                check_rotate_many(ev, ins, ns[k], k % 2 ? -1 : 7, outs, refs);
        }
    }
    tsr_set_num_threads(saved);
    /* the results are the rotations (not only equal to tsr_ckks_rotate) */
    {
        double *x = rand_vec(&f, f.slots), *w = malloc(f.slots * sizeof *w);
        assert_non_null(w);
        tsr_ckks_ciphertext *a = encrypt_vec(&f, x, TSR_CKKS_TOP_LEVEL);
        tsr_ckks_ciphertext *pair[2] = { a, ins[0] };
        tt_ok(tsr_ckks_rotate_many(f.ev, outs, (const tsr_ckks_ciphertext *const *)pair, 2, 3));
        rotated(x, f.slots, 3, w);
        assert_true(prec_of(&f, outs[0], w, NULL) >= 22);
        tsr_ckks_ciphertext_free(a);
        free(x);
        free(w);
    }
    /* a lower level: two digits, {0,1} and {2} */
    for (int i = 0; i < 5; i++) tt_ok(tsr_ckks_drop_level(f.ev, ins[i], ins[i], 2));
    check_rotate_many(f.ev, ins, 5, 2, outs, refs);
    check_rotate_many(ev_x, ins, 5, 2, outs, refs);
    /* the loop: a composed step (5 = 3 + 2 with these keys), step 0, mixed levels */
    check_rotate_many(f.ev, ins, 3, 5, outs, refs);
    check_rotate_many(f.ev, ins, 3, 0, outs, refs);
    check_rotate_many(f.ev, ins + 3, 4, 1, outs, refs); /* levels 2, 2, 4, 4 */
    /* outputs distinct from each other and from every input */
    tsr_ckks_ciphertext *dup[2] = { outs[0], outs[0] }, *alias[2] = { outs[0], ins[0] };
    tt_fails(tsr_ckks_rotate_many(f.ev, dup, (const tsr_ckks_ciphertext *const *)ins, 2, 1),
             TSR_ERR_INVALID_ARG);
    tt_fails(tsr_ckks_rotate_many(f.ev, alias, (const tsr_ckks_ciphertext *const *)ins, 2, 1),
             TSR_ERR_INVALID_ARG);
    assert_non_null(strstr(tsr_last_error(), "distinct outputs"));
    tt_ok(tsr_ckks_rotate_many(f.ev, NULL, NULL, 0, 1));
    for (int i = 0; i < NMAX; i++) {
        tsr_ckks_ciphertext_free(ins[i]);
        tsr_ckks_ciphertext_free(outs[i]);
        tsr_ckks_ciphertext_free(refs[i]);
    }
    tsr_ckks_evaluator_free(ev_x);
    tsr_ckks_galois_keys_free(gk_x);
    fx_free(&f);
}

/*
 * Seeded keys: a relinearization and Galois key set holds only its b halves
 * (half the memory of the same keys expanded); the same keys with their a
 * halves expanded and stored (tsr_ckks_*_expand: twice the memory, the same
 * file bytes) give bit-identical products, rotations, hoisted rotations and
 * conjugations, at the top level and below.
 */
static void test_seeded_keys(void **state) {
    (void)state;
    tsr_ckks_param_spec spec = small_spec();
    spec.levels = 3;
    fixture f;
    fx_init(&f, NULL, &spec, 1);
    const uint64_t rk_mem = tsr_ckks_relin_key_memory(f.rk);
    const uint64_t gk_mem = tsr_ckks_galois_keys_memory(f.gk);
    assert_true(f.rk->key.seeded);
    /* copies through the file format, then expanded */
    uint8_t *buf = NULL;
    size_t len = 0;
    tsr_ckks_relin_key *rk_x;
    tsr_ckks_galois_keys *gk_x;
    tt_ok(tsr_ckks_relin_key_to_bytes(f.rk, &buf, &len));
    tt_ok(tsr_ckks_relin_key_from_bytes(&rk_x, f.p, buf, len));
    tsr_ckks_bytes_free(buf);
    tt_ok(tsr_ckks_galois_keys_to_bytes(f.gk, &buf, &len));
    tt_ok(tsr_ckks_galois_keys_from_bytes(&gk_x, f.p, buf, len));
    tsr_ckks_bytes_free(buf);
    tt_ok(tsr_ckks_relin_key_expand(rk_x));
    tt_ok(tsr_ckks_galois_keys_expand(gk_x));
    tt_ok(tsr_ckks_relin_key_expand(rk_x)); /* already expanded: a no-op */
    assert_false(rk_x->key.seeded);
    for (size_t i = 0; i < gk_x->count; i++) assert_false(gk_x->e[i].key.seeded);
    assert_int_equal(tsr_ckks_relin_key_memory(rk_x), 2 * rk_mem);
    assert_int_equal(tsr_ckks_galois_keys_memory(gk_x), 2 * gk_mem);
    /* expanded keys serialize to the bytes of the seeded ones */
    uint8_t *buf2 = NULL;
    size_t len2 = 0;
    tt_ok(tsr_ckks_relin_key_to_bytes(f.rk, &buf, &len));
    tt_ok(tsr_ckks_relin_key_to_bytes(rk_x, &buf2, &len2));
    assert_int_equal(len, len2);
    assert_memory_equal(buf, buf2, len);
    tsr_ckks_bytes_free(buf);
    tsr_ckks_bytes_free(buf2);
    tt_ok(tsr_ckks_galois_keys_to_bytes(f.gk, &buf, &len));
    tt_ok(tsr_ckks_galois_keys_to_bytes(gk_x, &buf2, &len2));
    assert_int_equal(len, len2);
    assert_memory_equal(buf, buf2, len);
    tsr_ckks_bytes_free(buf);
    tsr_ckks_bytes_free(buf2);
    tsr_ckks_evaluator *ev_x;
    tt_ok(tsr_ckks_evaluator_create(&ev_x, f.p, rk_x, gk_x));
    double *x = rand_vec(&f, f.slots);
    tsr_ckks_ciphertext *r1, *r2, *h1[3], *h2[3];
    tt_ok(tsr_ckks_ciphertext_create(&r1, f.p));
    tt_ok(tsr_ckks_ciphertext_create(&r2, f.p));
    for (int i = 0; i < 3; i++) {
        tt_ok(tsr_ckks_ciphertext_create(&h1[i], f.p));
        tt_ok(tsr_ckks_ciphertext_create(&h2[i], f.p));
    }
    const int steps[3] = { 1, 2, 7 };
    for (int level = 3; level >= 1; level -= 2) {
        tsr_ckks_ciphertext *a = encrypt_vec(&f, x, level);
        tt_ok(tsr_ckks_mul_relin(f.ev, r1, a, a));
        tt_ok(tsr_ckks_mul_relin(ev_x, r2, a, a));
        assert_true(ct_equal(r1, r2));
        tt_ok(tsr_ckks_rotate(f.ev, r1, a, 7));
        tt_ok(tsr_ckks_rotate(ev_x, r2, a, 7));
        assert_true(ct_equal(r1, r2));
        tt_ok(tsr_ckks_conjugate(f.ev, r1, a));
        tt_ok(tsr_ckks_conjugate(ev_x, r2, a));
        assert_true(ct_equal(r1, r2));
        tt_ok(tsr_ckks_rotate_hoisted(f.ev, h1, a, steps, 3));
        tt_ok(tsr_ckks_rotate_hoisted(ev_x, h2, a, steps, 3));
        for (int i = 0; i < 3; i++) assert_true(ct_equal(h1[i], h2[i]));
        tsr_ckks_ciphertext_free(a);
    }
    /* and the seeded result is right */
    tsr_ckks_ciphertext *a = encrypt_vec(&f, x, 3);
    tt_ok(tsr_ckks_rotate(f.ev, r1, a, 2));
    double *want = malloc(f.slots * sizeof *want);
    assert_non_null(want);
    rotated(x, f.slots, 2, want);
    assert_true(prec_of(&f, r1, want, NULL) > 20);
    free(want);
    free(x);
    tsr_ckks_ciphertext_free(a);
    tsr_ckks_ciphertext_free(r1);
    tsr_ckks_ciphertext_free(r2);
    for (int i = 0; i < 3; i++) {
        tsr_ckks_ciphertext_free(h1[i]);
        tsr_ckks_ciphertext_free(h2[i]);
    }
    tsr_ckks_evaluator_free(ev_x);
    tsr_ckks_relin_key_free(rk_x);
    tsr_ckks_galois_keys_free(gk_x);
    fx_free(&f);
}

/*
 * The same comparison where a key polynomial spans several regenerated blocks
 * (n13-l3: N = 2^13, blocks of 4096 words, so a_j is regenerated at offsets 0
 * and 4096 of every limb): one product and one rotation at the top level are
 * bit-identical with the seeded keys and with the same keys expanded.
 */
static void test_seeded_keys_blocks(void **state) {
    (void)state;
    fixture f;
    fx_init(&f, "n13-l3", NULL, 0);
    assert_int_equal(tsr_ckks_params_n(f.p), 8192);
    const int step = 1;
    tsr_ckks_galois_keys *gk, *gk_x;
    tt_ok(tsr_ckks_galois_keys_create(&gk, f.sk, &step, 1, 0));
    tsr_ckks_relin_key *rk_x;
    uint8_t *buf = NULL;
    size_t len = 0;
    tt_ok(tsr_ckks_relin_key_to_bytes(f.rk, &buf, &len));
    tt_ok(tsr_ckks_relin_key_from_bytes(&rk_x, f.p, buf, len));
    tsr_ckks_bytes_free(buf);
    tt_ok(tsr_ckks_galois_keys_to_bytes(gk, &buf, &len));
    tt_ok(tsr_ckks_galois_keys_from_bytes(&gk_x, f.p, buf, len));
    tsr_ckks_bytes_free(buf);
    assert_true(rk_x->key.seeded);
    tt_ok(tsr_ckks_relin_key_expand(rk_x));
    tt_ok(tsr_ckks_galois_keys_expand(gk_x));
    tsr_ckks_evaluator *ev, *ev_x;
    tt_ok(tsr_ckks_evaluator_create(&ev, f.p, f.rk, gk));
    tt_ok(tsr_ckks_evaluator_create(&ev_x, f.p, rk_x, gk_x));
    double *x = rand_vec(&f, f.slots);
    tsr_ckks_ciphertext *a = encrypt_vec(&f, x, TSR_CKKS_TOP_LEVEL), *r1, *r2;
    tt_ok(tsr_ckks_ciphertext_create(&r1, f.p));
    tt_ok(tsr_ckks_ciphertext_create(&r2, f.p));
    tt_ok(tsr_ckks_mul_relin(ev, r1, a, a));
    tt_ok(tsr_ckks_mul_relin(ev_x, r2, a, a));
    assert_true(ct_equal(r1, r2));
    tt_ok(tsr_ckks_rotate(ev, r1, a, step));
    tt_ok(tsr_ckks_rotate(ev_x, r2, a, step));
    assert_true(ct_equal(r1, r2));
    double *want = malloc(f.slots * sizeof *want);
    assert_non_null(want);
    rotated(x, f.slots, step, want);
    assert_true(prec_of(&f, r1, want, NULL) > 20);
    free(want);
    free(x);
    tsr_ckks_ciphertext_free(a);
    tsr_ckks_ciphertext_free(r1);
    tsr_ckks_ciphertext_free(r2);
    tsr_ckks_evaluator_free(ev);
    tsr_ckks_evaluator_free(ev_x);
    tsr_ckks_relin_key_free(rk_x);
    tsr_ckks_galois_keys_free(gk);
    tsr_ckks_galois_keys_free(gk_x);
    fx_free(&f);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_security_table),      cmocka_unit_test(test_primes_and_scales),
        cmocka_unit_test(test_mixed_chain),         cmocka_unit_test(test_special_fft),
        cmocka_unit_test(test_encode_decode),       cmocka_unit_test(test_encrypt_decrypt),
        cmocka_unit_test(test_arithmetic),          cmocka_unit_test(test_levels_and_scales),
        cmocka_unit_test(test_plain_below_level),   cmocka_unit_test(test_rotations),
        cmocka_unit_test(test_thread_independence), cmocka_unit_test(test_fixed_hamming_weight),
        cmocka_unit_test(test_mod_raise),           cmocka_unit_test(test_fused_mul_keyswitch),
        cmocka_unit_test(test_depth10_squarings),   cmocka_unit_test(test_level_keys),
        cmocka_unit_test(test_seeded_keys),         cmocka_unit_test(test_seeded_keys_blocks),
        cmocka_unit_test(test_preset_boot_ifma),    cmocka_unit_test(test_keyswitch_centred),
        cmocka_unit_test(test_rotate_many),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
