/*
 * tests/support/boot_check.h - what the bootstrapping tests share
 * (test_circuits_boot, test_circuits_boot_mixed): a small insecure ring and
 * its keys, Galois keys for a circuit's steps, random slots, decryption and
 * precision in bits. Header-only (static inline): include it in one test.
 */
#ifndef TSR_TESTS_BOOT_CHECK_H
#define TSR_TESTS_BOOT_CHECK_H

#include "testutil.h"

#include "tessera.h"

#include <math.h>
#include <stdlib.h>

typedef struct he {
    tsr_ckks_params *p;
    tsr_ckks_secret_key *sk;
    tsr_ckks_public_key *pk;
    tsr_ckks_relin_key *rk;
    tsr_ckks_encoder *enc;
    tsr_ckks_plaintext *pt;
    size_t slots;
    tsr_prng g;
} he;

/*
 * The bootstrapping tests' insecure ring: N = 2^11 (2^10 under the sanitizers), q_0 of 61
 * bits, 16 levels of 60 bits (3 CoeffsToSlots + 8 EvalMod + 3 SlotsToCoeffs, 2 left), 3
 * special primes of 61 bits, a secret of Hamming weight 32 (so K = 18 bounds ModRaise's
 * multiple of q_0 for certain). Tests change the fields they vary.
 */
static inline tsr_ckks_param_spec boot_test_spec(void) {
    tsr_ckks_param_spec spec = { .log_n = tt_sanitized() ? 10 : 11,
                                 .first_prime_bits = 61,
                                 .scale_bits = 60,
                                 .levels = 16,
                                 .special_primes = 3,
                                 .special_prime_bits = 61,
                                 .dnum = 0,
                                 .secret = TSR_CKKS_SECRET_FIXED_HW,
                                 .hamming_weight = 32,
                                 .flags = TSR_CKKS_ALLOW_INSECURE_PARAMETERS };
    return spec;
}

/* The ring of spec with a secret, public and relinearization key; slots drawn from seed. */
static inline int he_create(void **state, const tsr_ckks_param_spec *spec, uint64_t seed) {
    he *h = calloc(1, sizeof *h);
    if (!h) return -1;
    tt_ok(tsr_ckks_params_create(&h->p, spec));
    tt_ok(tsr_ckks_secret_key_create(&h->sk, h->p));
    tt_ok(tsr_ckks_public_key_create(&h->pk, h->sk));
    tt_ok(tsr_ckks_relin_key_create(&h->rk, h->sk));
    tt_ok(tsr_ckks_encoder_create(&h->enc, h->p));
    tt_ok(tsr_ckks_plaintext_create(&h->pt, h->p));
    h->slots = tsr_ckks_params_slots(h->p);
    tt_prng(&h->g, seed);
    *state = h;
    return 0;
}

static inline int he_teardown(void **state) {
    he *h = *state;
    tsr_ckks_plaintext_free(h->pt);
    tsr_ckks_encoder_free(h->enc);
    tsr_ckks_relin_key_free(h->rk);
    tsr_ckks_public_key_free(h->pk);
    tsr_ckks_secret_key_free(h->sk);
    tsr_ckks_params_free(h->p);
    free(h);
    return 0;
}

/* Galois keys for b's steps (plus conjugation unless no_conj). */
static inline tsr_ckks_galois_keys *keys_for(he *h, const tsr_circuits_boot *b, int no_conj) {
    size_t n = tsr_circuits_boot_rotations(b, NULL, 0);
    int *steps = malloc((n ? n : 1) * sizeof *steps);
    assert_non_null(steps);
    assert_int_equal(tsr_circuits_boot_rotations(b, steps, n), n);
    for (size_t i = 1; i < n; i++) assert_true(steps[i - 1] < steps[i]);
    for (size_t i = 0; i < n; i++) assert_true(steps[i] >= 1 && (size_t)steps[i] < h->slots);
    tsr_ckks_galois_keys *gk;
    tt_ok(
        tsr_ckks_galois_keys_create(&gk, h->sk, steps, n, no_conj ? 0 : TSR_CKKS_GALOIS_CONJUGATE));
    free(steps);
    return gk;
}

/* n complex values in [-1, 1] + i [-1, 1], repeated with period n over all slots. */
static inline double *rand_slots(he *h, size_t n) {
    double *v = malloc(2 * h->slots * sizeof *v);
    assert_non_null(v);
    for (size_t i = 0; i < 2 * n; i++) v[i] = 2 * tsr_prng_double(&h->g) - 1;
    for (size_t i = 2 * n; i < 2 * h->slots; i++) v[i] = v[i % (2 * n)];
    return v;
}

static inline double *decrypt(he *h, const tsr_ckks_ciphertext *ct) {
    double *v = malloc(2 * h->slots * sizeof *v);
    assert_non_null(v);
    tt_ok(tsr_ckks_decrypt(h->sk, h->pt, ct));
    tt_ok(tsr_ckks_decode_complex(h->enc, h->pt, v, h->slots, NULL));
    return v;
}

/* Precision in bits: -log2 of the worst and of the mean absolute error over real and imaginary
 * parts (worst first). */
static inline void precision(const double *got, const double *want, size_t n, double *worst,
                             double *mean) {
    double w = 0, s = 0;
    for (size_t i = 0; i < 2 * n; i++) {
        double e = fabs(got[i] - want[i]);
        assert_true(e == e);
        if (e > w) w = e;
        s += e;
    }
    *worst = w > 0 ? -log2(w) : 60;
    *mean = s > 0 ? -log2(s / (double)(2 * n)) : 60;
}

#endif
