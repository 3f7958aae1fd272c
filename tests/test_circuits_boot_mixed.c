/*
 * tests/test_circuits_boot_mixed.c - bootstrapping on a mixed prime chain
 * (spec.low_levels: network levels at 2^40 under bootstrapping levels at
 * 2^60; the full-size set is the preset n16-boot-d4, measured by `tessera
 * bench boot --preset n16-boot-d4`). Small insecure test ring (N = 2^11,
 * 2^10 under the sanitizers, flagged insecure): the refreshed ciphertext
 * lands on the top network level at its 40-bit canonical scale exactly,
 * whether the stages use every high level or leave some (then a final
 * adjustment), and the network levels left are used (two squarings),
 * precision in bits against plaintext; real slots in one call; one and two
 * threads give the same bytes; a level budget that would run a stage on a
 * network prime is refused with a clear message.
 */
#include "boot_check.h"

#include "tessera.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define LOW_LEVELS 2

/*
 * test_circuits_boot's ring (boot_test_spec: q_0 of 61 bits, 3 special primes of 61 bits,
 * a secret of Hamming weight 32) with a low tier: q_1, q_2 of 40 bits (scale 2^40 at level
 * 2), q_3..q_16 of 60 bits (3 CoeffsToSlots + 8 EvalMod + 3 SlotsToCoeffs).
 */
static tsr_ckks_param_spec mixed_spec(void) {
    tsr_ckks_param_spec spec = boot_test_spec();
    spec.levels = 14 + LOW_LEVELS;
    spec.low_levels = LOW_LEVELS;
    spec.low_scale_bits = 40;
    return spec;
}

static int he_setup(void **state) {
    tsr_ckks_param_spec spec = mixed_spec();
    return he_create(state, &spec, 15);
}

/*
 * The shape of the preset n16-boot-ifma at N = 2^11: q_0 of 50 bits and the special primes
 * of 49 bits, so only the 14 bootstrapping primes are >= 2^50 (the AVX-512 IFMA kernels take
 * the others); 4 x 49 bits cover digits of 3 x 60 bits (dnum 6).
 */
static int he_setup_ifma(void **state) {
    tsr_ckks_param_spec spec = mixed_spec();
    spec.first_prime_bits = 50;
    spec.special_primes = 4;
    spec.special_prime_bits = 49;
    spec.dnum = 6;
    return he_create(state, &spec, 15);
}

/* z -> z^2 on interleaved (re, im) pairs */
static void square_slots(double *v, size_t slots) {
    for (size_t i = 0; i < slots; i++) {
        double re = v[2 * i], im = v[2 * i + 1];
        v[2 * i] = re * re - im * im;
        v[2 * i + 1] = 2 * re * im;
    }
}

/* Bootstrap n-periodic slots from the network's level 1 (scale 2^40), check the output lands on
 * level LOW_LEVELS at scale 2^40 exactly, then square twice (the two network levels left). */
static void run_mixed(he *h, const tsr_circuits_boot_config *cfg, const char *label,
                      double *mean_out, double *worst_out, double *mean_sq_out) {
    size_t n = cfg && cfg->slots ? cfg->slots : h->slots;
    tsr_circuits_boot *b;
    tt_ok(tsr_circuits_boot_create(&b, h->enc, h->p, cfg));
    tsr_circuits_boot_info info;
    tsr_circuits_boot_get_info(b, &info);
    int top = tsr_ckks_params_max_level(h->p);
    assert_int_equal(info.out_level, LOW_LEVELS);
    assert_true(info.out_scale == 0x1p40);
    assert_true(top - info.depth >= LOW_LEVELS);
    tsr_ckks_galois_keys *gk = keys_for(h, b, 0);
    tsr_ckks_evaluator *ev;
    tt_ok(tsr_ckks_evaluator_create(&ev, h->p, h->rk, gk));

    double *want = rand_slots(h, n);
    tsr_ckks_ciphertext *ct, *out;
    tt_ok(tsr_ckks_ciphertext_create(&ct, h->p));
    tt_ok(tsr_ckks_ciphertext_create(&out, h->p));
    tt_ok(tsr_ckks_encode_complex(h->enc, h->pt, want, h->slots, 1, 0));
    assert_true(tsr_ckks_plaintext_scale(h->pt) == tsr_ckks_params_scale(h->p, 1));
    tt_ok(tsr_ckks_encrypt(h->pk, ct, h->pt));

    /* ModRaise from q_0 to the top, the stages on the 60-bit levels, the output on level 2 */
    tt_ok(tsr_circuits_boot_mod_raise(b, ev, out, ct));
    assert_int_equal(tsr_ckks_ciphertext_level(out), top);
    tt_ok(tsr_circuits_boot_coeffs_to_slots(b, ev, out, out));
    tt_ok(tsr_circuits_boot_eval_mod(b, ev, out, out));
    assert_int_equal(tsr_ckks_ciphertext_level(out), top - info.cts_levels - info.evalmod_levels);
    tt_ok(tsr_circuits_boot_slots_to_coeffs(b, ev, out, out));
    assert_int_equal(tsr_ckks_ciphertext_level(out), LOW_LEVELS);
    assert_true(tsr_ckks_ciphertext_scale(out) == 0x1p40);

    double *got = decrypt(h, out), mean, worst;
    precision(got, want, h->slots, &worst, &mean);
    free(got);

    /* the network levels left: two squarings down to level 0 */
    for (int i = 0; i < LOW_LEVELS; i++) {
        tt_ok(tsr_ckks_mul_relin_rescale(ev, out, out, out));
        square_slots(want, h->slots);
        assert_int_equal(tsr_ckks_ciphertext_level(out), LOW_LEVELS - 1 - i);
        assert_true(tsr_ckks_ciphertext_scale(out) ==
                    tsr_ckks_params_scale(h->p, LOW_LEVELS - 1 - i));
    }
    double mean_sq, worst_sq;
    got = decrypt(h, out);
    precision(got, want, h->slots, &worst_sq, &mean_sq);
    free(got);
    printf("# mixed chain, %s: n = %zu of %zu slots, levels %d + %d + %d of 60 bits, %d left at "
           "2^%.2f: precision mean %.1f bits, worst %.1f; after two squarings mean %.1f, worst "
           "%.1f\n",
           label, n, h->slots, info.cts_levels, info.evalmod_levels, info.stc_levels,
           info.out_level, log2(info.out_scale), mean, worst, mean_sq, worst_sq);

    /* one thread and two (full slots: EvalMod's halves at once, the second on the twin; sparse:
     * one EvalMod) give the same bytes on a mixed chain too */
    int saved = tsr_get_num_threads();
    uint8_t *bytes[2];
    size_t len[2];
    for (int t = 0; t < 2; t++) {
        tsr_set_num_threads(t + 1);
        tt_ok(tsr_circuits_bootstrap(b, ev, out, ct));
        assert_int_equal(tsr_ckks_ciphertext_level(out), LOW_LEVELS);
        tt_ok(tsr_ckks_ciphertext_to_bytes(out, &bytes[t], &len[t]));
    }
    tsr_set_num_threads(saved);
    assert_int_equal(len[0], len[1]);
    assert_memory_equal(bytes[0], bytes[1], len[0]);
    for (int t = 0; t < 2; t++) tsr_ckks_bytes_free(bytes[t]);

    tsr_ckks_ciphertext_free(out);
    tsr_ckks_ciphertext_free(ct);
    free(want);
    tsr_ckks_evaluator_free(ev);
    tsr_ckks_galois_keys_free(gk);
    tsr_circuits_boot_free(b);
    *mean_out = mean;
    *worst_out = worst;
    *mean_sq_out = mean_sq;
}

static void test_chain(void **state) {
    he *h = *state;
    int top = tsr_ckks_params_max_level(h->p);
    for (int l = 1; l <= top; l++) {
        double bits = log2((double)tsr_ckks_params_prime(h->p, l));
        assert_true(fabs(bits - (l <= LOW_LEVELS ? 40 : 60)) < 0.05);
    }
    assert_true(tsr_ckks_params_scale(h->p, LOW_LEVELS) == 0x1p40);
}

/* Every high level used: SlotsToCoeffs' last factor lands on 2^40 at level 2 by itself. */
static void test_boot_mixed_full(void **state) {
    he *h = *state;
    double mean, worst, mean_sq;
    run_mixed(h, NULL, "full slots", &mean, &worst, &mean_sq);
    /* the uniform chain's test_boot_full measures mean 25.9, worst 22.4-22.8 bits */
    assert_true(mean > 23);
    assert_true(worst > 19);
    /* |z| <= sqrt 2: two squarings scale an error e by up to 4 |z|^3 ~ 2^3.5 */
    assert_true(mean_sq > 21); /* measured 24.4 */
}

/* q_0 and P below 2^50 (he_setup_ifma): the circuit is the same and so is its precision; q_0
 * only sets ModRaise's input scale q_0 / 2^R and CoeffsToSlots' plaintext scale (larger for a
 * smaller q_0). */
static void test_boot_mixed_ifma(void **state) {
    he *h = *state;
    const uint64_t ifma_max = (uint64_t)1 << 50;
    int top = tsr_ckks_params_max_level(h->p);
    assert_true(tsr_ckks_params_prime(h->p, 0) < ifma_max);
    assert_true(tsr_ckks_params_prime(h->p, 0) > (uint64_t)1 << 49);
    for (int l = 1; l <= top; l++)
        assert_true((tsr_ckks_params_prime(h->p, l) < ifma_max) == (l <= LOW_LEVELS));
    for (int j = 0; j < tsr_ckks_params_special_count(h->p); j++)
        assert_true(tsr_ckks_params_special_prime(h->p, j) < (uint64_t)1 << 49);
    double mean, worst, mean_sq;
    run_mixed(h, NULL, "q_0 and P below 2^50", &mean, &worst, &mean_sq);
    /* the same thresholds as test_boot_mixed_full (q_0 61 bits, P 61 bits) */
    assert_true(mean > 23);
    assert_true(worst > 19);
    assert_true(mean_sq > 21);
}

/* Sparse slots with 2 + 2 transform levels leave two high levels: a final adjustment. */
static void test_boot_mixed_spare(void **state) {
    he *h = *state;
    tsr_circuits_boot_config cfg = { .slots = h->slots / 16, .cts_levels = 2, .stc_levels = 2 };
    double mean, worst, mean_sq;
    run_mixed(h, &cfg, "sparse slots, 2 high levels spare", &mean, &worst, &mean_sq);
    /* the uniform chain's test_boot_sparse measures mean 22.0-22.2, worst 20.5-20.6 bits */
    assert_true(mean > 20);
    assert_true(worst > 18);
    assert_true(mean_sq > 17); /* measured 20.2 */
}

/* Real slots in one call (tsr_circuits_bootstrap_real): both outputs on the top network level
 * at 2^40, real parts against plaintext, imaginary parts near 0. */
static void test_boot_mixed_real(void **state) {
    he *h = *state;
    tsr_circuits_boot *b;
    tt_ok(tsr_circuits_boot_create(&b, h->enc, h->p, NULL));
    tsr_ckks_galois_keys *gk = keys_for(h, b, 0);
    tsr_ckks_evaluator *ev;
    tt_ok(tsr_ckks_evaluator_create(&ev, h->p, h->rk, gk));
    double *v = rand_slots(h, h->slots), *re[2];
    tsr_ckks_ciphertext *in[2], *out[2];
    for (int k = 0; k < 2; k++) {
        re[k] = calloc(2 * h->slots, sizeof(double));
        assert_non_null(re[k]);
        for (size_t i = 0; i < h->slots; i++) re[k][2 * i] = v[2 * i + (size_t)k];
        tt_ok(tsr_ckks_ciphertext_create(&in[k], h->p));
        tt_ok(tsr_ckks_ciphertext_create(&out[k], h->p));
        tt_ok(tsr_ckks_encode_complex(h->enc, h->pt, re[k], h->slots, 1, 0));
        tt_ok(tsr_ckks_encrypt(h->pk, in[k], h->pt));
    }
    tt_ok(tsr_circuits_bootstrap_real(b, ev, out[0], out[1], in[0], in[1]));
    for (int k = 0; k < 2; k++) {
        assert_int_equal(tsr_ckks_ciphertext_level(out[k]), LOW_LEVELS);
        assert_true(tsr_ckks_ciphertext_scale(out[k]) == 0x1p40);
        double *got = decrypt(h, out[k]), mean, worst;
        precision(got, re[k], h->slots, &worst, &mean);
        printf("# mixed chain, real slots %c: precision mean %.1f bits, worst %.1f\n", "ab"[k],
               mean, worst);
        /* the uniform chain's test_boot_real measures mean 26.4-26.5, worst 21.8-24.3 bits */
        assert_true(mean > 23);
        assert_true(worst > 19);
        free(got);
        free(re[k]);
        tsr_ckks_ciphertext_free(in[k]);
        tsr_ckks_ciphertext_free(out[k]);
    }
    free(v);
    tsr_ckks_evaluator_free(ev);
    tsr_ckks_galois_keys_free(gk);
    tsr_circuits_boot_free(b);
}

/* A budget deeper than the high levels would run SlotsToCoeffs on a 40-bit prime: refused. */
static void test_boot_mixed_too_deep(void **state) {
    he *h = *state;
    tsr_circuits_boot_config cfg = { .cts_levels = 4 };
    tsr_circuits_boot *b = NULL;
    tt_fails(tsr_circuits_boot_create(&b, h->enc, h->p, &cfg), TSR_ERR_LEVEL);
    assert_null(b);
    assert_non_null(strstr(tsr_last_error(), "mixed chain has 14 above its 2 network levels"));
}

/* A polynomial whose products would rescale across the boundary (level 3 -> 2) is refused with
 * a clear error; the same one below the boundary runs. */
static void test_poly_eval_boundary(void **state) {
    he *h = *state;
    tsr_ckks_evaluator *ev;
    tt_ok(tsr_ckks_evaluator_create(&ev, h->p, h->rk, NULL));
    static const double coeffs[4] = { 0.1, 0.5, 0.25, 0.125 };
    tsr_cheb s = { -1, 1, 3, coeffs };
    double *v = rand_slots(h, h->slots);
    for (size_t i = 0; i < 2 * h->slots; i++) v[i] *= 0.5;
    tsr_ckks_ciphertext *ct, *out;
    tt_ok(tsr_ckks_ciphertext_create(&ct, h->p));
    tt_ok(tsr_ckks_ciphertext_create(&out, h->p));
    for (int level = LOW_LEVELS + 1; level <= LOW_LEVELS + 2; level++) {
        tt_ok(tsr_ckks_encode_complex(h->enc, h->pt, v, h->slots, level, 0));
        tt_ok(tsr_ckks_encrypt(h->pk, ct, h->pt));
        tt_fails(tsr_circuits_poly_eval(ev, out, ct, &s, NULL), TSR_ERR_LEVEL);
        assert_non_null(strstr(tsr_last_error(), "cannot cross the mixed chain's boundary"));
    }
    tt_ok(tsr_ckks_encode_complex(h->enc, h->pt, v, h->slots, LOW_LEVELS, 0));
    tt_ok(tsr_ckks_encrypt(h->pk, ct, h->pt));
    tt_ok(tsr_circuits_poly_eval(ev, out, ct, &s, NULL));
    assert_int_equal(tsr_ckks_ciphertext_level(out), 0);
    free(v);
    tsr_ckks_ciphertext_free(out);
    tsr_ckks_ciphertext_free(ct);
    tsr_ckks_evaluator_free(ev);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_chain, he_setup, he_teardown),
        cmocka_unit_test_setup_teardown(test_boot_mixed_full, he_setup, he_teardown),
        cmocka_unit_test_setup_teardown(test_boot_mixed_ifma, he_setup_ifma, he_teardown),
        cmocka_unit_test_setup_teardown(test_boot_mixed_spare, he_setup, he_teardown),
        cmocka_unit_test_setup_teardown(test_boot_mixed_real, he_setup, he_teardown),
        cmocka_unit_test_setup_teardown(test_boot_mixed_too_deep, he_setup, he_teardown),
        cmocka_unit_test_setup_teardown(test_poly_eval_boundary, he_setup, he_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
