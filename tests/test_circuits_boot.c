/*
 * tests/test_circuits_boot.c - CKKS bootstrapping on a small insecure test
 * ring (N = 2^12, flagged insecure; the full-size run is `tessera bench
 * boot`): precision in bits against the plaintext for full slots,
 * sparse slots and real slots (two real ciphertexts per bootstrap), every stage's output level and
 * exact canonical scale, the levels left, the rotation steps listed before keygen, and the errors
 * (too few levels, scales off the expected one, missing keys, bad config), and level-aware keys
 * (bit-identical to full keys at the levels bootstrapping lists).
 */
#include "boot_check.h"

#include "circuits/bootstrap_internal.h"
#include "circuits/circuits_internal.h"
#include "ckks/evaluator_internal.h"
#include "tessera.h"

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

/* The insecure test ring of boot_check.h (boot_test_spec) with the given secret. */
static int he_setup_with(void **state, tsr_ckks_secret_dist secret) {
    tsr_ckks_param_spec spec = boot_test_spec();
    spec.secret = secret;
    spec.hamming_weight = secret == TSR_CKKS_SECRET_FIXED_HW ? 32 : 0;
    return he_create(state, &spec, 12);
}

static int he_setup(void **state) {
    return he_setup_with(state, TSR_CKKS_SECRET_FIXED_HW);
}

/* The same ring with a dense ternary main secret (for the encapsulation). */
static int he_setup_dense(void **state) {
    return he_setup_with(state, TSR_CKKS_SECRET_TERNARY);
}

static tsr_ckks_ciphertext *encrypt_at(he *h, const double *v, int level) {
    tsr_ckks_ciphertext *ct;
    tt_ok(tsr_ckks_ciphertext_create(&ct, h->p));
    tt_ok(tsr_ckks_encode_complex(h->enc, h->pt, v, h->slots, level, 0));
    tt_ok(tsr_ckks_encrypt(h->pk, ct, h->pt));
    return ct;
}

/* Bootstrap n-periodic slots stage by stage, checking levels and scales; returns worst bits. */
static void run_boot(he *h, size_t n, const tsr_circuits_boot_config *cfg, const char *label,
                     double *worst_out, double *mean_out) {
    tsr_circuits_boot *b;
    tt_ok(tsr_circuits_boot_create(&b, h->enc, h->p, cfg));
    tsr_ckks_switch_key *to_sparse = NULL, *to_dense = NULL;
    if (cfg && cfg->encapsulation_hw) {
        tt_ok(tsr_circuits_boot_switch_keys_create(b, h->sk, &to_sparse, &to_dense));
        assert_int_equal(tsr_ckks_switch_key_max_level(to_sparse), 0);
        /* the key to the sparse secret lives over q_0 p_0 only, below 121 bits, with p_0
         * as large as that allows (60 bits beside the 61-bit q_0) */
        assert_int_equal(tsr_ckks_switch_key_limbs(to_sparse), 2);
        double lg = tsr_ckks_switch_key_log_modulus(to_sparse);
        assert_true(lg < TSR_CIRCUITS_ENCAP_MAX_LOG_MODULUS);
        assert_true(lg - log2((double)tsr_ckks_params_prime(h->p, 0)) > 59.9);
        assert_int_equal(tsr_ckks_switch_key_limbs(to_dense),
                         tsr_ckks_params_max_level(h->p) + 1 + tsr_ckks_params_special_count(h->p));
        assert_int_equal(tsr_ckks_switch_key_max_level(to_dense), tsr_ckks_params_max_level(h->p));
        tt_ok(tsr_circuits_boot_set_switch_keys(b, to_sparse, to_dense));
    }
    tsr_circuits_boot_info info;
    tsr_circuits_boot_get_info(b, &info);
    int top = tsr_ckks_params_max_level(h->p);
    assert_int_equal(info.slots, n);
    assert_int_equal(info.depth, info.cts_levels + info.evalmod_levels + info.stc_levels);
    assert_int_equal(info.out_level, top - info.depth);
    assert_true(info.out_level >= 1);
    assert_true(info.cos_error < 0x1p-40);
    tsr_ckks_galois_keys *gk = keys_for(h, b, 0);
    tsr_ckks_evaluator *ev;
    tt_ok(tsr_ckks_evaluator_create(&ev, h->p, h->rk, gk));
    tt_ok(tsr_circuits_boot_check_keys(b, ev));

    double *want = rand_slots(h, n);
    tsr_ckks_ciphertext *ct = encrypt_at(h, want, 1), *out;
    tt_ok(tsr_ckks_ciphertext_create(&out, h->p));

    /* stage by stage: levels and exact scales */
    tt_ok(tsr_circuits_boot_mod_raise(b, ev, out, ct));
    assert_int_equal(tsr_ckks_ciphertext_level(out), top);
    tt_ok(tsr_circuits_boot_coeffs_to_slots(b, ev, out, out));
    int l = top - info.cts_levels;
    assert_int_equal(tsr_ckks_ciphertext_level(out), l);
    assert_true(tsr_ckks_ciphertext_scale(out) == tsr_ckks_params_scale(h->p, l));
    tt_ok(tsr_circuits_boot_eval_mod(b, ev, out, out));
    l -= info.evalmod_levels;
    assert_int_equal(tsr_ckks_ciphertext_level(out), l);
    assert_true(tsr_ckks_ciphertext_scale(out) == tsr_ckks_params_scale(h->p, l));
    tt_ok(tsr_circuits_boot_slots_to_coeffs(b, ev, out, out));
    assert_int_equal(tsr_ckks_ciphertext_level(out), info.out_level);
    assert_true(tsr_ckks_ciphertext_scale(out) == info.out_scale);
    assert_true(tsr_ckks_ciphertext_scale(out) == tsr_ckks_params_scale(h->p, info.out_level));

    double *got = decrypt(h, out), worst, mean;
    precision(got, want, h->slots, &worst, &mean);
    printf("# bootstrap %s: n = %zu of %zu slots, K = %u, cosine degree %u (error %.1e), r = %u, "
           "levels %d + %d + %d, %d left at scale 2^%.2f: precision mean %.1f bits, worst %.1f "
           "bits\n",
           label, n, h->slots, info.k, info.cos_degree, info.cos_error, info.double_angle,
           info.cts_levels, info.evalmod_levels, info.stc_levels, info.out_level,
           log2(info.out_scale), mean, worst);
    free(got);

    /* the one-call form gives the same precision class and may alias */
    tt_ok(tsr_circuits_bootstrap(b, ev, ct, ct));
    assert_int_equal(tsr_ckks_ciphertext_level(ct), info.out_level);
    got = decrypt(h, ct);
    double worst2, mean2;
    precision(got, want, h->slots, &worst2, &mean2);
    free(got);

    /* the result can be computed on: one multiplication by itself uses a level left */
    tt_ok(tsr_ckks_mul_relin_rescale(ev, out, ct, ct));
    got = decrypt(h, out);
    double max_err = 0;
    for (size_t i = 0; i < h->slots; i++) {
        double re = want[2 * i], im = want[2 * i + 1];
        max_err = fmax(max_err, fabs(got[2 * i] - (re * re - im * im)));
        max_err = fmax(max_err, fabs(got[2 * i + 1] - 2 * re * im));
    }
    free(got);
    assert_true(-log2(max_err) > 15);

    tsr_ckks_ciphertext_free(out);
    tsr_ckks_ciphertext_free(ct);
    free(want);
    tsr_ckks_evaluator_free(ev);
    tsr_ckks_galois_keys_free(gk);
    tsr_circuits_boot_free(b);
    tsr_ckks_switch_key_free(to_sparse);
    tsr_ckks_switch_key_free(to_dense);
    *worst_out = fmin(worst, worst2);
    *mean_out = fmin(mean, mean2);
}

static void test_boot_full(void **state) {
    he *h = *state;
    double worst, mean;
    run_boot(h, h->slots, NULL, "full", &worst, &mean);
    /* measured mean 25.9, worst 22.4-22.8 bits (docs/CIRCUITS.md) */
    assert_true(mean > 23);
    assert_true(worst > 19);
}

/* Key-switching decompositions of one EvalMod (cfg's circuit, on a CoeffsToSlots output). */
static unsigned long eval_mod_switches(he *h, const tsr_circuits_boot_config *cfg) {
    tsr_circuits_boot *b;
    tt_ok(tsr_circuits_boot_create(&b, h->enc, h->p, cfg));
    tsr_ckks_galois_keys *gk = keys_for(h, b, 0);
    tsr_ckks_evaluator *ev;
    tt_ok(tsr_ckks_evaluator_create(&ev, h->p, h->rk, gk));
    tsr_circuits_boot_info info;
    tsr_circuits_boot_get_info(b, &info);
    double *v = rand_slots(h, info.slots);
    tsr_ckks_ciphertext *ct = encrypt_at(h, v, 1);
    tt_ok(tsr_circuits_boot_mod_raise(b, ev, ct, ct));
    tt_ok(tsr_circuits_boot_coeffs_to_slots(b, ev, ct, ct));
    unsigned long d0 = ev->n_decompose;
    tt_ok(tsr_circuits_boot_eval_mod(b, ev, ct, ct));
    unsigned long d = ev->n_decompose - d0;
    free(v);
    tsr_ckks_ciphertext_free(ct);
    tsr_ckks_evaluator_free(ev);
    tsr_ckks_galois_keys_free(gk);
    tsr_circuits_boot_free(b);
    return d;
}

/*
 * Sparse slots: CoeffsToSlots leaves [u | -i u] with period 2n, so one
 * EvalMod serves the real and imaginary parts (slots [0, n) and [n, 2n)) and
 * SlotsToCoeffs' first factor reads them from there.
 */
static void test_boot_sparse(void **state) {
    he *h = *state;
    tsr_circuits_boot_config cfg = { .slots = h->slots / 16, .cts_levels = 2, .stc_levels = 2 };
    double worst, mean;
    run_boot(h, h->slots / 16, &cfg, "sparse", &worst, &mean);
    /* measured mean 22.0-22.2, worst 20.5-20.6 bits, with two EvalMods and with one */
    assert_true(mean > 21);
    assert_true(worst > 19);
    /* full slots: one conjugation and two halves; sparse: one conjugation and one EvalMod */
    unsigned long full = eval_mod_switches(h, NULL), sparse = eval_mod_switches(h, &cfg);
    assert_true(full > 3);
    assert_int_equal(sparse - 1, (full - 1) / 2);
    /* per half: the square y = 2 x'^2 - 1, the cosine's series in y (its real coefficients,
     * degree cos_degree / 2, as planned), the r double angles; plus the conjugation */
    tsr_circuits_boot *b;
    tt_ok(tsr_circuits_boot_create(&b, h->enc, h->p, &cfg));
    tsr_circuits_boot_info info;
    tsr_circuits_boot_get_info(b, &info);
    tsr_cheb q = boot_cos_series(b);
    assert_int_equal(2 * q.degree, info.cos_degree);
    tsr_circuits_poly_info plan;
    tt_ok(tsr_circuits_poly_plan(&q, 20, &plan));
    tsr_circuits_boot_free(b);
    assert_int_equal(info.evalmod_levels, 1 + plan.depth + (int)info.double_angle);
    assert_int_equal(sparse, 1 + 1 + plan.relins + info.double_angle);
    printf("# EvalMod key switches: full slots %lu, sparse slots %lu\n", full, sparse);
}

/*
 * Sparse-secret encapsulation: a dense main secret (whose |I| would need
 * K ~ 60 here), switched at level 0 to a secret of Hamming weight 32 and
 * back after ModRaise: K = 18 suffices for certain, as in test_boot_full.
 */
static void test_boot_encapsulated(void **state) {
    he *h = *state;
    tsr_circuits_boot_config cfg = { .encapsulation_hw = 32 };
    double worst, mean;
    run_boot(h, h->slots, &cfg, "encapsulated", &worst, &mean);
    assert_true(mean > 23);
    assert_true(worst > 19);

    /* without its switching keys: a clear error before any work */
    tsr_circuits_boot *b;
    tt_ok(tsr_circuits_boot_create(&b, h->enc, h->p, &cfg));
    tsr_ckks_galois_keys *gk = keys_for(h, b, 0);
    tsr_ckks_evaluator *ev;
    tt_ok(tsr_ckks_evaluator_create(&ev, h->p, h->rk, gk));
    tt_fails(tsr_circuits_boot_check_keys(b, ev), TSR_ERR_KEY_MISSING);
    double *v = rand_slots(h, h->slots);
    tsr_ckks_ciphertext *ct = encrypt_at(h, v, 1), *out;
    tt_ok(tsr_ckks_ciphertext_create(&out, h->p));
    tt_fails(tsr_circuits_bootstrap(b, ev, out, ct), TSR_ERR_KEY_MISSING);

    /* precision against the plaintext with the q_0 p_0 key and with a key over q_0 P
     * (the key of earlier versions, accepted here only because the ring is flagged
     * insecure): the same ciphertext, the same sparse secret */
    {
        tsr_ckks_secret_key *sparse;
        tt_ok(tsr_ckks_secret_key_create_sparse(&sparse, h->p, 32, h->sk));
        tsr_ckks_switch_key *small, *wide, *back;
        tt_ok(tsr_ckks_switch_key_create_q0p0(&small, h->sk, sparse,
                                              TSR_CIRCUITS_ENCAP_MAX_LOG_MODULUS));
        tt_ok(tsr_ckks_switch_key_create(&wide, h->sk, sparse, 0));
        tt_ok(tsr_ckks_switch_key_create(&back, sparse, h->sk, TSR_CKKS_TOP_LEVEL));
        assert_int_equal(tsr_ckks_switch_key_limbs(small), 2);
        assert_int_equal(tsr_ckks_switch_key_limbs(wide), 1 + tsr_ckks_params_special_count(h->p));
        assert_true(tsr_ckks_switch_key_bytes(small) < tsr_ckks_switch_key_bytes(wide));
        double w[2], m[2];
        const tsr_ckks_switch_key *keys[2] = { small, wide };
        for (int i = 0; i < 2; i++) {
            tt_ok(tsr_circuits_boot_set_switch_keys(b, keys[i], back));
            tt_ok(tsr_circuits_bootstrap(b, ev, out, ct));
            double *got = decrypt(h, out);
            precision(got, v, h->slots, &w[i], &m[i]);
            free(got);
        }
        printf("# encapsulated, key to the sparse secret over q_0 p_0: mean %.2f worst %.2f "
               "bits; over q_0 P: mean %.2f worst %.2f bits\n",
               m[0], w[0], m[1], w[1]);
        assert_true(m[0] > 23 && w[0] > 19);
        assert_true(m[0] > m[1] - 0.5);
        assert_true(w[0] > w[1] - 1);
        /* the sparse secret decrypts a level-0 ciphertext switched with the small key */
        tsr_ckks_ciphertext *c0 = encrypt_at(h, v, 0);
        tt_ok(tsr_ckks_key_switch(ev, c0, c0, small));
        double *got = malloc(2 * h->slots * sizeof *got);
        assert_non_null(got);
        tt_ok(tsr_ckks_decrypt(sparse, h->pt, c0));
        tt_ok(tsr_ckks_decode_complex(h->enc, h->pt, got, h->slots, NULL));
        precision(got, v, h->slots, &w[0], &m[0]);
        assert_true(w[0] > 20);
        free(got);
        tsr_ckks_ciphertext_free(c0);
        tsr_ckks_switch_key_free(small);
        tsr_ckks_switch_key_free(wide);
        tsr_ckks_switch_key_free(back);
        tsr_ckks_secret_key_free(sparse);
    }
    /* keys the wrong way round: the key back must serve the top level */
    tsr_ckks_switch_key *to_sparse, *to_dense;
    tt_ok(tsr_circuits_boot_switch_keys_create(b, h->sk, &to_sparse, &to_dense));
    tt_fails(tsr_circuits_boot_set_switch_keys(b, to_dense, to_sparse), TSR_ERR_INVALID_ARG);
    /* the key towards the sparse secret refuses ciphertexts above level 0 */
    tt_fails(tsr_ckks_key_switch(ev, out, ct, to_sparse), TSR_ERR_LEVEL);
    /* a circuit without encapsulation has no switching keys */
    tsr_circuits_boot *plain;
    tsr_circuits_boot_config cfg_k = { .k = 20 };
    tt_ok(tsr_circuits_boot_create(&plain, h->enc, h->p, &cfg_k));
    tsr_ckks_switch_key *x = NULL, *y = NULL;
    tt_fails(tsr_circuits_boot_switch_keys_create(plain, h->sk, &x, &y), TSR_ERR_INVALID_ARG);
    tt_fails(tsr_circuits_boot_set_switch_keys(plain, to_sparse, to_dense), TSR_ERR_INVALID_ARG);
    tsr_circuits_boot_free(plain);
    tsr_ckks_switch_key_free(to_sparse);
    tsr_ckks_switch_key_free(to_dense);
    tsr_ckks_ciphertext_free(out);
    tsr_ckks_ciphertext_free(ct);
    free(v);
    tsr_ckks_evaluator_free(ev);
    tsr_ckks_galois_keys_free(gk);
    tsr_circuits_boot_free(b);
}

/*
 * The bound: a key to the sparse secret over more than 121 bits needs the insecure flag.
 * Secure rings (N = 2^13, two special primes, no flag): the q_0 p_0 key stays below 121
 * bits (61 + 60, 50 + 61: p_0 is the key's own prime) and is accepted; a key over q_0 P
 * (183 and 148 bits) is refused; the flagged test ring accepts it.
 */
static void test_encap_modulus_bound(void **state) {
    he *h = *state;
    const unsigned bits[2][2] = { { 61, 61 }, { 50, 49 } };
    for (int i = 0; i < 2; i++) {
        tsr_ckks_param_spec spec = { .log_n = 13,
                                     .first_prime_bits = bits[i][0],
                                     .scale_bits = 30,
                                     .levels = 1,
                                     .special_primes = 2,
                                     .special_prime_bits = bits[i][1],
                                     .secret = TSR_CKKS_SECRET_TERNARY };
        tsr_ckks_params *p;
        tt_ok(tsr_ckks_params_create(&p, &spec));
        assert_true(tsr_ckks_params_is_secure(p));
        tsr_ckks_secret_key *sk, *sparse;
        tt_ok(tsr_ckks_secret_key_create(&sk, p));
        tt_ok(tsr_ckks_secret_key_create_sparse(&sparse, p, 32, sk));
        tsr_ckks_switch_key *k, *wide, *bad = NULL;
        tt_ok(tsr_ckks_switch_key_create_q0p0(&k, sk, sparse, TSR_CIRCUITS_ENCAP_MAX_LOG_MODULUS));
        double lg = tsr_ckks_switch_key_log_modulus(k);
        double q0 = log2((double)tsr_ckks_params_prime(p, 0));
        assert_int_equal(tsr_ckks_switch_key_limbs(k), 2);
        assert_true(lg < TSR_CIRCUITS_ENCAP_MAX_LOG_MODULUS);
        assert_true(lg - q0 > (i == 0 ? 59.9 : 60.9)); /* p_0 of 60, 61 bits */
        tt_ok(boot_check_encap_modulus(p, k));
        tt_ok(tsr_ckks_switch_key_create(&wide, sk, sparse, 0));
        assert_int_equal(tsr_ckks_switch_key_limbs(wide), 3);
        assert_true(tsr_ckks_switch_key_log_modulus(wide) > TSR_CIRCUITS_ENCAP_MAX_LOG_MODULUS);
        tt_fails(boot_check_encap_modulus(p, wide), TSR_ERR_INSECURE);
        /* no room for a 20-bit p_0 */
        tt_fails(tsr_ckks_switch_key_create_q0p0(&bad, sk, sparse, bits[i][0] + 19),
                 TSR_ERR_INVALID_ARG);
        assert_null(bad);
        tsr_ckks_switch_key_free(wide);
        tsr_ckks_switch_key_free(k);
        tsr_ckks_secret_key_free(sparse);
        tsr_ckks_secret_key_free(sk);
        tsr_ckks_params_free(p);
    }
    /* the flagged test ring accepts a key over q_0 P */
    tsr_ckks_secret_key *sparse;
    tt_ok(tsr_ckks_secret_key_create_sparse(&sparse, h->p, 32, h->sk));
    tsr_ckks_switch_key *k;
    tt_ok(tsr_ckks_switch_key_create(&k, h->sk, sparse, 0));
    assert_true(tsr_ckks_switch_key_log_modulus(k) > TSR_CIRCUITS_ENCAP_MAX_LOG_MODULUS);
    tt_ok(boot_check_encap_modulus(h->p, k));
    tsr_ckks_switch_key_free(k);
    tsr_ckks_secret_key_free(sparse);
}

/* Key switching to another secret and back keeps the slots (the encapsulation's keys). */
static void test_key_switch(void **state) {
    he *h = *state;
    tsr_ckks_secret_key *sparse;
    tt_ok(tsr_ckks_secret_key_create_sparse(&sparse, h->p, 32, h->sk));
    tsr_ckks_switch_key *there, *back;
    tt_ok(tsr_ckks_switch_key_create(&there, h->sk, sparse, TSR_CKKS_TOP_LEVEL));
    tt_ok(tsr_ckks_switch_key_create(&back, sparse, h->sk, 3));
    assert_true(tsr_ckks_switch_key_bytes(back) < tsr_ckks_switch_key_bytes(there));
    tsr_ckks_evaluator *ev;
    tt_ok(tsr_ckks_evaluator_create(&ev, h->p, NULL, NULL));
    double *v = rand_slots(h, h->slots);
    tsr_ckks_ciphertext *ct = encrypt_at(h, v, 3);
    tt_ok(tsr_ckks_key_switch(ev, ct, ct, there));
    /* decrypts under the sparse secret, not under the main one */
    double *got = malloc(2 * h->slots * sizeof *got), worst, mean;
    assert_non_null(got);
    tt_ok(tsr_ckks_decrypt(sparse, h->pt, ct));
    tt_ok(tsr_ckks_decode_complex(h->enc, h->pt, got, h->slots, NULL));
    precision(got, v, h->slots, &worst, &mean);
    assert_true(worst > 30);
    free(got);
    got = decrypt(h, ct);
    precision(got, v, h->slots, &worst, &mean);
    assert_true(worst < 0);
    free(got);
    tt_ok(tsr_ckks_key_switch(ev, ct, ct, back));
    got = decrypt(h, ct);
    precision(got, v, h->slots, &worst, &mean);
    assert_true(worst > 30);
    free(got);
    tsr_ckks_ciphertext *high = encrypt_at(h, v, 4);
    tt_fails(tsr_ckks_key_switch(ev, high, high, back), TSR_ERR_LEVEL);
    tsr_ckks_ciphertext_free(high);
    tsr_ckks_ciphertext_free(ct);
    free(v);
    tsr_ckks_evaluator_free(ev);
    tsr_ckks_switch_key_free(there);
    tsr_ckks_switch_key_free(back);
    tsr_ckks_secret_key_free(sparse);
    tsr_ckks_secret_key *bad;
    tt_fails(tsr_ckks_secret_key_create_sparse(&bad, h->p, 0, NULL), TSR_ERR_INVALID_ARG);
}

static void test_boot_errors(void **state) {
    he *h = *state;
    tsr_circuits_boot *b;
    tt_ok(tsr_circuits_boot_create(&b, h->enc, h->p, NULL));
    tsr_circuits_boot_info info;
    tsr_circuits_boot_get_info(b, &info);

    /* config errors */
    tsr_circuits_boot *bad = NULL;
    tsr_circuits_boot_config cfg = { .slots = 3 };
    tt_fails(tsr_circuits_boot_create(&bad, h->enc, h->p, &cfg), TSR_ERR_INVALID_ARG);
    /* sparse slot counts: powers of two in 2..N/2 only */
    cfg = (tsr_circuits_boot_config){ .slots = 1 };
    tt_fails(tsr_circuits_boot_create(&bad, h->enc, h->p, &cfg), TSR_ERR_INVALID_ARG);
    cfg = (tsr_circuits_boot_config){ .slots = 2 * h->slots };
    tt_fails(tsr_circuits_boot_create(&bad, h->enc, h->p, &cfg), TSR_ERR_INVALID_ARG);
    cfg = (tsr_circuits_boot_config){ .slots = h->slots / 16 + h->slots / 32 };
    tt_fails(tsr_circuits_boot_create(&bad, h->enc, h->p, &cfg), TSR_ERR_INVALID_ARG);
    assert_null(bad);
    cfg = (tsr_circuits_boot_config){ .cts_levels = 40 };
    tt_fails(tsr_circuits_boot_create(&bad, h->enc, h->p, &cfg), TSR_ERR_INVALID_ARG);
    /* a larger R (or r) tightens the cosine's error: 2^-28 2 pi / (4^r 2^R) at R = 13, r = 2
     * (2^-42.4), where the default degree of R <= 9 gives 2^-41.4 */
    cfg = (tsr_circuits_boot_config){ .log_message_ratio = 13 };
    tt_ok(tsr_circuits_boot_create(&bad, h->enc, h->p, &cfg));
    tsr_circuits_boot_info big_r;
    tsr_circuits_boot_get_info(bad, &big_r);
    tsr_circuits_boot_free(bad);
    bad = NULL;
    assert_int_equal(big_r.double_angle, 2);
    printf("# R = 13: cosine degree %u, error 2^%.1f (R default: %u, 2^%.1f)\n", big_r.cos_degree,
           log2(big_r.cos_error), info.cos_degree, log2(info.cos_error));
    assert_true(big_r.cos_error < 0x1p-28 * 6.283185307179586 / 0x1p17);
    assert_true(big_r.cos_degree > info.cos_degree);
    /* the cosine's degree in x' (even, 2..TSR_CIRCUITS_MAX_DEGREE) */
    cfg = (tsr_circuits_boot_config){ .cos_degree = 1 };
    tt_fails(tsr_circuits_boot_create(&bad, h->enc, h->p, &cfg), TSR_ERR_INVALID_ARG);
    cfg = (tsr_circuits_boot_config){ .cos_degree = TSR_CIRCUITS_MAX_DEGREE + 1 };
    tt_fails(tsr_circuits_boot_create(&bad, h->enc, h->p, &cfg), TSR_ERR_INVALID_ARG);
    cfg = (tsr_circuits_boot_config){ .cos_degree = 4000000000u };
    tt_fails(tsr_circuits_boot_create(&bad, h->enc, h->p, &cfg), TSR_ERR_INVALID_ARG);
    /* a chain too short for the circuit */
    cfg = (tsr_circuits_boot_config){ .cts_levels = 6, .stc_levels = 6 };
    tt_fails(tsr_circuits_boot_create(&bad, h->enc, h->p, &cfg), TSR_ERR_LEVEL);
    assert_null(bad);
    /* a dense secret without K */
    tsr_ckks_param_spec spec;
    tsr_ckks_params_spec(h->p, &spec);
    spec.secret = TSR_CKKS_SECRET_TERNARY;
    spec.hamming_weight = 0;
    tsr_ckks_params *p2;
    tsr_ckks_encoder *enc2;
    tt_ok(tsr_ckks_params_create(&p2, &spec));
    tt_ok(tsr_ckks_encoder_create(&enc2, p2));
    tt_fails(tsr_circuits_boot_create(&bad, enc2, p2, NULL), TSR_ERR_INVALID_ARG);

    /* missing keys: none, no relinearization key, no conjugation, a missing rotation */
    tsr_ckks_galois_keys *gk = keys_for(h, b, 0);
    int steps[4];
    assert_true(tsr_circuits_boot_rotations(b, steps, 1) > 1);
    tsr_ckks_galois_keys *gk_noconj, *gk_one;
    tt_ok(tsr_ckks_galois_keys_create(&gk_noconj, h->sk, steps, 1, 0));
    tt_ok(tsr_ckks_galois_keys_create(&gk_one, h->sk, steps, 1, TSR_CKKS_GALOIS_CONJUGATE));
    tsr_ckks_evaluator *ev, *ev_none, *ev_norelin, *ev_noconj, *ev_one;
    tt_ok(tsr_ckks_evaluator_create(&ev, h->p, h->rk, gk));
    tt_ok(tsr_ckks_evaluator_create(&ev_none, h->p, NULL, NULL));
    tt_ok(tsr_ckks_evaluator_create(&ev_norelin, h->p, NULL, gk));
    tt_ok(tsr_ckks_evaluator_create(&ev_noconj, h->p, h->rk, gk_noconj));
    tt_ok(tsr_ckks_evaluator_create(&ev_one, h->p, h->rk, gk_one));
    double *v = rand_slots(h, h->slots);
    tsr_ckks_ciphertext *ct = encrypt_at(h, v, 1), *out;
    tt_ok(tsr_ckks_ciphertext_create(&out, h->p));
    tt_fails(tsr_circuits_bootstrap(b, ev_none, out, ct), TSR_ERR_KEY_MISSING);
    tt_fails(tsr_circuits_bootstrap(b, ev_norelin, out, ct), TSR_ERR_KEY_MISSING);
    tt_fails(tsr_circuits_bootstrap(b, ev_noconj, out, ct), TSR_ERR_KEY_MISSING);
    tt_fails(tsr_circuits_bootstrap(b, ev_one, out, ct), TSR_ERR_KEY_MISSING);
    tt_fails(tsr_circuits_boot_check_keys(b, ev_one), TSR_ERR_KEY_MISSING);

    /* too few levels: an input at level 0 */
    tsr_ckks_ciphertext *ct0 = encrypt_at(h, v, 0);
    tt_fails(tsr_circuits_bootstrap(b, ev, out, ct0), TSR_ERR_LEVEL);
    /* a scale off the canonical one */
    tsr_ckks_ciphertext *odd;
    tt_ok(tsr_ckks_ciphertext_clone(&odd, ct));
    tt_ok(tsr_ckks_ciphertext_set_scale(odd, tsr_ckks_ciphertext_scale(ct) * 1.5));
    tt_fails(tsr_circuits_bootstrap(b, ev, out, odd), TSR_ERR_SCALE);
    /* stages fed with something other than the previous stage's output */
    tt_fails(tsr_circuits_boot_coeffs_to_slots(b, ev, out, ct), TSR_ERR_LEVEL);
    tsr_ckks_ciphertext *top = encrypt_at(h, v, TSR_CKKS_TOP_LEVEL);
    tt_fails(tsr_circuits_boot_coeffs_to_slots(b, ev, out, top), TSR_ERR_SCALE);
    tt_fails(tsr_circuits_boot_eval_mod(b, ev, out, top), TSR_ERR_LEVEL);
    tt_fails(tsr_circuits_boot_slots_to_coeffs(b, ev, out, ct), TSR_ERR_LEVEL);
    tt_ok(tsr_circuits_boot_mod_raise(b, ev, out, ct));
    tt_ok(tsr_circuits_boot_coeffs_to_slots(b, ev, out, out));
    tt_ok(tsr_ckks_ciphertext_set_scale(out, tsr_ckks_ciphertext_scale(out) * 2));
    tt_fails(tsr_circuits_boot_eval_mod(b, ev, out, out), TSR_ERR_SCALE);
    /* objects of other parameters */
    tsr_ckks_evaluator *ev2;
    tt_ok(tsr_ckks_evaluator_create(&ev2, p2, NULL, NULL));
    tt_fails(tsr_circuits_bootstrap(b, ev2, out, ct), TSR_ERR_MISMATCH);

    tsr_ckks_evaluator_free(ev2);
    tsr_ckks_ciphertext_free(top);
    tsr_ckks_ciphertext_free(odd);
    tsr_ckks_ciphertext_free(ct0);
    tsr_ckks_ciphertext_free(out);
    tsr_ckks_ciphertext_free(ct);
    free(v);
    tsr_ckks_evaluator_free(ev_one);
    tsr_ckks_evaluator_free(ev_noconj);
    tsr_ckks_evaluator_free(ev_norelin);
    tsr_ckks_evaluator_free(ev_none);
    tsr_ckks_evaluator_free(ev);
    tsr_ckks_galois_keys_free(gk_one);
    tsr_ckks_galois_keys_free(gk_noconj);
    tsr_ckks_galois_keys_free(gk);
    tsr_ckks_encoder_free(enc2);
    tsr_ckks_params_free(p2);
    tsr_circuits_boot_free(b);
    tsr_circuits_boot_free(NULL);
}

/* n real values in [-1, 1] (imaginary parts 0), repeated with period n over all slots. */
static double *rand_real_slots(he *h, size_t n) {
    double *v = rand_slots(h, n);
    for (size_t i = 0; i < h->slots; i++) v[2 * i + 1] = 0;
    return v;
}

/* Precision in bits of the real parts, and the largest imaginary part, over all slots. */
static double real_bits(he *h, const tsr_ckks_ciphertext *ct, const double *want, double *mean,
                        double *max_im) {
    double *got = decrypt(h, ct), w = 0, s = 0, im = 0;
    for (size_t i = 0; i < h->slots; i++) {
        double e = fabs(got[2 * i] - want[2 * i]);
        assert_true(e == e);
        w = fmax(w, e);
        s += e;
        im = fmax(im, fabs(got[2 * i + 1]));
    }
    free(got);
    *mean = -log2(s / (double)h->slots);
    *max_im = im;
    return -log2(w);
}

/*
 * Real slots: two real vectors in one bootstrap (joined as (a + i b) / 2,
 * split by one conjugation), full and sparse slots; one vector alone;
 * aliasing; inputs at different levels refused.
 */
static void test_boot_real(void **state) {
    he *h = *state;
    for (int sparse = 0; sparse < 2; sparse++) {
        size_t n = sparse ? h->slots / 16 : h->slots;
        tsr_circuits_boot_config cfg = { .slots = n };
        if (sparse) cfg.cts_levels = cfg.stc_levels = 2;
        tsr_circuits_boot *b;
        tt_ok(tsr_circuits_boot_create(&b, h->enc, h->p, &cfg));
        tsr_circuits_boot_info info;
        tsr_circuits_boot_get_info(b, &info);
        tsr_ckks_galois_keys *gk = keys_for(h, b, 0);
        tsr_ckks_evaluator *ev;
        tt_ok(tsr_ckks_evaluator_create(&ev, h->p, h->rk, gk));
        double *a = rand_real_slots(h, n), *bv = rand_real_slots(h, n);
        tsr_ckks_ciphertext *ca = encrypt_at(h, a, 1), *cb = encrypt_at(h, bv, 1), *oa, *ob;
        tt_ok(tsr_ckks_ciphertext_create(&oa, h->p));
        tt_ok(tsr_ckks_ciphertext_create(&ob, h->p));

        tt_ok(tsr_circuits_bootstrap_real(b, ev, oa, ob, ca, cb));
        double mean_a, mean_b, im_a, im_b;
        double worst_a = real_bits(h, oa, a, &mean_a, &im_a);
        double worst_b = real_bits(h, ob, bv, &mean_b, &im_b);
        assert_int_equal(tsr_ckks_ciphertext_level(oa), info.out_level);
        assert_int_equal(tsr_ckks_ciphertext_level(ob), info.out_level);
        assert_true(tsr_ckks_ciphertext_scale(oa) == info.out_scale);
        assert_true(tsr_ckks_ciphertext_scale(ob) == info.out_scale);
        printf("# bootstrap real pair (%s, n = %zu): a mean %.1f worst %.1f bits, b mean %.1f "
               "worst %.1f bits, largest imaginary part 2^%.1f\n",
               sparse ? "sparse" : "full", n, mean_a, worst_a, mean_b, worst_b,
               log2(fmax(im_a, im_b)));
        /* complex bootstrapping gives mean > 23 / 20 here; the join costs about a bit */
        assert_true(mean_a > (sparse ? 19 : 22) && mean_b > (sparse ? 19 : 22));
        assert_true(worst_a > (sparse ? 17 : 18) && worst_b > (sparse ? 17 : 18));
        /* the outputs are real: imaginary parts at the noise level */
        assert_true(fmax(im_a, im_b) < 0x1p-15);

        /* one vector alone, in place (out_a aliases in_a, no out_b) */
        tsr_ckks_ciphertext *c1 = encrypt_at(h, bv, 1);
        tt_ok(tsr_circuits_bootstrap_real(b, ev, c1, NULL, c1, NULL));
        double mean1, im1, worst1 = real_bits(h, c1, bv, &mean1, &im1);
        assert_true(mean1 > (sparse ? 19 : 22) && worst1 > (sparse ? 17 : 18));

        /* stage by stage, out_b aliasing the stage's input */
        tt_ok(tsr_circuits_boot_mod_raise_real(b, ev, c1, ca, cb));
        tt_ok(tsr_circuits_boot_coeffs_to_slots(b, ev, c1, c1));
        tt_ok(tsr_circuits_boot_eval_mod(b, ev, c1, c1));
        tt_ok(tsr_circuits_boot_slots_to_coeffs(b, ev, c1, c1));
        tt_ok(tsr_circuits_boot_split_real(b, ev, oa, c1, c1));
        double mean2, im2, worst2 = real_bits(h, c1, bv, &mean2, &im2);
        assert_true(worst2 > (sparse ? 17 : 18));
        worst2 = real_bits(h, oa, a, &mean2, &im2);
        assert_true(worst2 > (sparse ? 17 : 18));

        /* different levels: refused with a clear error */
        tsr_ckks_ciphertext *c2 = encrypt_at(h, bv, info.out_level + 1);
        assert_int_equal(tsr_circuits_bootstrap_real(b, ev, oa, ob, ca, c2), TSR_ERR_LEVEL);
        /* the split wants stage 4's output */
        assert_int_equal(tsr_circuits_boot_split_real(b, ev, oa, ob, c2), TSR_ERR_LEVEL);

        tsr_ckks_ciphertext_free(c1);
        tsr_ckks_ciphertext_free(c2);
        tsr_ckks_ciphertext_free(ca);
        tsr_ckks_ciphertext_free(cb);
        tsr_ckks_ciphertext_free(oa);
        tsr_ckks_ciphertext_free(ob);
        free(a);
        free(bv);
        tsr_ckks_evaluator_free(ev);
        tsr_ckks_galois_keys_free(gk);
        tsr_circuits_boot_free(b);
    }
}

/* X^(N/2) multiplies every slot by i, X^(3N/2) by -i, X^N by -1: exactly, no level. */
static void test_mul_monomial(void **state) {
    he *h = *state;
    double *v = rand_slots(h, h->slots);
    tsr_ckks_ciphertext *ct = encrypt_at(h, v, 2), *out;
    tt_ok(tsr_ckks_ciphertext_create(&out, h->p));
    tsr_ckks_evaluator *ev;
    tt_ok(tsr_ckks_evaluator_create(&ev, h->p, NULL, NULL));
    long n = (long)tsr_ckks_params_n(h->p);
    const long ks[4] = { n / 2, 3 * n / 2, n, -n / 2 };
    /* (re, im) -> multiplier (a + i b) */
    const double mre[4] = { 0, 0, -1, 0 }, mim[4] = { 1, -1, 0, -1 };
    for (int t = 0; t < 4; t++) {
        tt_ok(tsr_ckks_mul_monomial(ev, out, ct, ks[t]));
        assert_int_equal(tsr_ckks_ciphertext_level(out), 2);
        assert_true(tsr_ckks_ciphertext_scale(out) == tsr_ckks_ciphertext_scale(ct));
        double *got = decrypt(h, out), *want = malloc(2 * h->slots * sizeof *want);
        assert_non_null(want);
        for (size_t i = 0; i < h->slots; i++) {
            want[2 * i] = v[2 * i] * mre[t] - v[2 * i + 1] * mim[t];
            want[2 * i + 1] = v[2 * i] * mim[t] + v[2 * i + 1] * mre[t];
        }
        double worst, mean;
        precision(got, want, h->slots, &worst, &mean);
        assert_true(worst > 40);
        free(got);
        free(want);
    }
    /* the same bytes with 1 and 2 threads (the limbs are split between threads) */
    int saved = tsr_get_num_threads();
    uint8_t *bytes[2];
    size_t len[2];
    for (int t = 0; t < 2; t++) {
        tsr_set_num_threads(t + 1);
        tt_ok(tsr_ckks_mul_monomial(ev, out, ct, 3 * n / 2 + 5));
        tt_ok(tsr_ckks_ciphertext_to_bytes(out, &bytes[t], &len[t]));
    }
    tsr_set_num_threads(saved);
    assert_int_equal(len[0], len[1]);
    assert_memory_equal(bytes[0], bytes[1], len[0]);
    for (int t = 0; t < 2; t++) tsr_ckks_bytes_free(bytes[t]);
    /* in place */
    tt_ok(tsr_ckks_mul_monomial(ev, ct, ct, n / 2));
    tt_ok(tsr_ckks_mul_monomial(ev, ct, ct, n / 2));
    double *got = decrypt(h, ct);
    for (size_t i = 0; i < 2 * h->slots; i++) v[i] = -v[i];
    double worst, mean;
    precision(got, v, h->slots, &worst, &mean);
    assert_true(worst > 40);
    free(got);
    free(v);
    tsr_ckks_ciphertext_free(out);
    tsr_ckks_ciphertext_free(ct);
    tsr_ckks_evaluator_free(ev);
}

/* Bytes of a key serving `level`, by the test's own formula: digits used there x 2 halves x
 * (level + 1 + k) limbs x N words. */
static uint64_t key_bytes(const tsr_ckks_params *p, int level) {
    int L = tsr_ckks_params_max_level(p), dnum = tsr_ckks_params_dnum(p);
    int alpha = (L + 1 + dnum - 1) / dnum, digits = (level + alpha) / alpha;
    /* seeded keys: the b halves only (the a halves are regenerated from a seed) */
    return (uint64_t)digits * (uint64_t)(level + 1 + tsr_ckks_params_special_count(p)) *
           tsr_ckks_params_n(p) * 8;
}

/*
 * Level-aware keys: the levels bootstrapping lists for each key, keys
 * trimmed to them give bit-identical results to the full keys (and less
 * memory, by the formula), a key trimmed one level too low (rotation,
 * conjugation, relinearization) is refused by tsr_circuits_boot_check_keys
 * with TSR_ERR_LEVEL and the output is left as it was, trimmed keys are refused by the writers, and
 * keys generated directly at those levels bootstrap at the full keys' precision.
 */
static void test_boot_level_keys(void **state) {
    he *h = *state;
    tsr_circuits_boot *b;
    tt_ok(tsr_circuits_boot_create(&b, h->enc, h->p, NULL));
    tsr_circuits_boot_info info;
    tsr_circuits_boot_get_info(b, &info);
    int top = tsr_ckks_params_max_level(h->p);
    size_t n = tsr_circuits_boot_rotations(b, NULL, 0);
    int *steps = malloc(n * sizeof *steps), *levels = malloc(n * sizeof *levels);
    int *all = malloc(n * sizeof *all);
    assert_true(steps && levels && all);
    int rl = -1, cl = -1;
    assert_int_equal(tsr_circuits_boot_rotation_levels(b, steps, levels, n, &rl, &cl), n);
    tsr_circuits_boot_rotations(b, all, n);
    assert_memory_equal(all, steps, n * sizeof *steps);
    assert_int_equal(rl, top - info.cts_levels);
    assert_int_equal(cl, top - info.cts_levels);
    /* every step's level is a factor's input level; the top and lower levels occur */
    /* kc + ks factors, each stage at most 16 (BOOT_MAX_GROUPS) */
    tsr_circuits_boot_factor fac[32];
    size_t nf = tsr_circuits_boot_factors(b, fac, 32, 0, NULL, 0);
    assert_true(nf <= 32);
    assert_int_equal(nf, (size_t)(info.cts_levels + info.stc_levels));
    int seen_top = 0, seen_low = 0, stc_top = info.out_level + info.stc_levels;
    for (size_t i = 0; i < n; i++) {
        int found = 0;
        for (size_t f = 0; f < nf; f++) found |= fac[f].level == levels[i];
        assert_true(found);
        seen_top |= levels[i] == top;
        seen_low |= levels[i] < top;
    }
    assert_true(seen_top && seen_low);
    for (size_t f = 0; f < nf; f++)
        assert_int_equal(fac[f].level, fac[f].stage ? stc_top - fac[f].index : top - fac[f].index);

    tsr_ckks_galois_keys *gk = keys_for(h, b, 0);
    tsr_ckks_evaluator *ev;
    tt_ok(tsr_ckks_evaluator_create(&ev, h->p, h->rk, gk));
    double *want = rand_slots(h, h->slots);
    tsr_ckks_ciphertext *ct = encrypt_at(h, want, 1), *out;
    tt_ok(tsr_ckks_ciphertext_create(&out, h->p));
    tt_ok(tsr_circuits_bootstrap(b, ev, out, ct));
    double *full = decrypt(h, out);

    /* diagonals on the fly: the same steps and a bit-identical result, 1 word per coefficient
     * of a polynomial in X^(N/2p), p the slot period of the factor's butterflies: a factor
     * whose stages have half-lengths up to h has period 2h (CoeffsToSlots runs the stages
     * h = S/2, S/4, ..., SlotsToCoeffs h = 1, 2, ...; the first groups take one stage more) */
    tsr_circuits_boot_config fly_cfg = { .diagonals_on_the_fly = 1 };
    tsr_circuits_boot *fly;
    tt_ok(tsr_circuits_boot_create(&fly, h->enc, h->p, &fly_cfg));
    assert_int_equal(tsr_circuits_boot_rotations(fly, all, n), n);
    assert_memory_equal(all, steps, n * sizeof *steps);
    tsr_circuits_boot_factor fly_fac[32];
    assert_int_equal(tsr_circuits_boot_factors(fly, fly_fac, 32, 0, NULL, 0), nf);
    int log_s = 0;
    while (((size_t)1 << log_s) < h->slots) log_s++;
    for (size_t f = 0; f < nf; f++) {
        const int groups = fac[f].stage ? info.stc_levels : info.cts_levels;
        int start = 0, size = 0; /* the factor's stages [start, start + size) */
        for (int g = 0; g <= fac[f].index; g++) {
            start += size;
            size = log_s / groups + (g < log_s % groups ? 1 : 0);
        }
        const size_t period = fac[f].stage ? (size_t)1 << (start + size) : h->slots >> start;
        uint64_t words = (uint64_t)fac[f].diagonals * tsr_ckks_params_n(h->p);
        printf("factor %d/%d: %zu diagonals, slot period %zu, %llu bytes on the fly\n",
               fac[f].stage, fac[f].index, fac[f].diagonals, period,
               (unsigned long long)fly_fac[f].diag_bytes);
        assert_int_equal(fly_fac[f].diag_bytes, (uint64_t)fac[f].diagonals * 2 * period * 8);
        /* by default the factors of period <= S/32 as coefficients, the others encoded */
        assert_int_equal(
            fac[f].diag_bytes,
            CIRCUITS_SUBRING_MIN_RATIO * period <= h->slots
                ? (uint64_t)fac[f].diagonals * 2 * period * 8
                : words * 8 * (uint64_t)(fac[f].level + 1 + tsr_ckks_params_special_count(h->p)));
    }
    tt_ok(tsr_circuits_bootstrap(fly, ev, out, ct));
    double *fly_got = decrypt(h, out);
    assert_memory_equal(full, fly_got, 2 * h->slots * sizeof *full);
    free(fly_got);

    /* a budget of 1 MiB for the encoded diagonals (config.diagonals_mib): the encoded factors,
     * in order, keep the first limbs that fit and convert the others from their N coefficients
     * per diagonal; the same steps, a bit-identical result */
    tsr_circuits_boot_config cut_cfg = { .diagonals_mib = 1 };
    tsr_circuits_boot *cut;
    tt_ok(tsr_circuits_boot_create(&cut, h->enc, h->p, &cut_cfg));
    assert_int_equal(tsr_circuits_boot_rotations(cut, all, n), n);
    assert_memory_equal(all, steps, n * sizeof *steps);
    tsr_circuits_boot_factor cut_fac[32];
    assert_int_equal(tsr_circuits_boot_factors(cut, cut_fac, 32, 0, NULL, 0), nf);
    uint64_t encoded = 0, encoded_default = 0;
    for (size_t f = 0; f < nf; f++) {
        const uint64_t diag = (uint64_t)fac[f].diagonals * tsr_ckks_params_n(h->p) * 8;
        const uint64_t limbs = (uint64_t)(fac[f].level + 1 + tsr_ckks_params_special_count(h->p));
        if (fac[f].diag_bytes == fly_fac[f].diag_bytes) { /* coefficients by default */
            assert_int_equal(cut_fac[f].diag_bytes, fac[f].diag_bytes);
            continue;
        }
        encoded_default += fac[f].diag_bytes;
        /* encoded by default: all its limbs, or N coefficients and 0 .. limbs - 1 limbs */
        assert_true(cut_fac[f].diag_bytes % diag == 0 && cut_fac[f].diag_bytes <= limbs * diag);
        const uint64_t kept = cut_fac[f].diag_bytes / diag;
        encoded += kept == limbs ? kept * diag : (kept - 1) * diag;
    }
    assert_true(encoded <= 1u << 20);
    assert_true(encoded_default > 1u << 20); /* the budget did cut */
    tt_ok(tsr_circuits_bootstrap(cut, ev, out, ct));
    double *cut_got = decrypt(h, out);
    assert_memory_equal(full, cut_got, 2 * h->slots * sizeof *full);
    free(cut_got);
    tsr_circuits_boot_free(cut);
    tsr_circuits_boot_free(fly);

    uint64_t gmem = tsr_ckks_galois_keys_memory(gk), want_mem = key_bytes(h->p, cl);
    assert_int_equal(gmem, (uint64_t)(n + 1) * key_bytes(h->p, top));
    for (size_t i = 0; i < n; i++) want_mem += key_bytes(h->p, levels[i]);
    /* trimming mutates the keys: no evaluator may hold them meanwhile (ckks.h) */
    tsr_ckks_evaluator_free(ev);
    tt_ok(tsr_ckks_galois_keys_trim(gk, steps, levels, n, cl));
    tt_ok(tsr_ckks_relin_key_trim(h->rk, rl));
    tt_ok(tsr_ckks_evaluator_create(&ev, h->p, h->rk, gk));
    assert_int_equal(tsr_ckks_galois_keys_memory(gk), want_mem);
    assert_true(want_mem < gmem);
    assert_int_equal(tsr_ckks_relin_key_memory(h->rk), key_bytes(h->p, rl));
    assert_int_equal(tsr_ckks_relin_key_max_level(h->rk), rl);
    for (size_t i = 0; i < n; i++)
        assert_int_equal(tsr_ckks_galois_keys_rotation_level(gk, steps[i]), levels[i]);
    printf("# level-aware keys: Galois %.1f of %.1f MiB, relinearization %.1f of %.1f MiB\n",
           (double)want_mem / 1048576.0, (double)gmem / 1048576.0,
           (double)key_bytes(h->p, rl) / 1048576.0, (double)key_bytes(h->p, top) / 1048576.0);

    /* the same bootstrap with the trimmed keys: bit-identical */
    tt_ok(tsr_circuits_bootstrap(b, ev, out, ct));
    double *trimmed = decrypt(h, out);
    assert_memory_equal(full, trimmed, 2 * h->slots * sizeof *full);
    free(trimmed);

    /* level-limited keys are written (format 3) with their levels, and read back as they were */
    uint8_t *buf = NULL;
    size_t len = 0;
    tt_ok(tsr_ckks_galois_keys_to_bytes(gk, &buf, &len));
    assert_int_equal(len, tsr_ckks_galois_keys_serialized_size(gk));
    assert_true(len < want_mem + 4096 * (n + 2));
    tsr_ckks_galois_keys *gk_read;
    tt_ok(tsr_ckks_galois_keys_from_bytes(&gk_read, h->p, buf, len));
    tsr_ckks_bytes_free(buf);
    assert_int_equal(tsr_ckks_galois_keys_memory(gk_read), want_mem);
    for (size_t i = 0; i < n; i++)
        assert_int_equal(tsr_ckks_galois_keys_rotation_level(gk_read, steps[i]), levels[i]);
    tsr_ckks_galois_keys_free(gk_read);

    /* one level too low: a top-level CoeffsToSlots step, then the relinearization key */
    size_t at = 0;
    while (levels[at] != top) at++;
    int lower = top - 1;
    tsr_ckks_evaluator_free(ev);
    tt_ok(tsr_ckks_galois_keys_trim(gk, &steps[at], &lower, 1, TSR_CKKS_TOP_LEVEL));
    tt_ok(tsr_ckks_evaluator_create(&ev, h->p, h->rk, gk));
    /* refused up front, before the output is touched */
    assert_int_equal(tsr_circuits_boot_check_keys(b, ev), TSR_ERR_LEVEL);
    assert_non_null(strstr(tsr_last_error(), "Galois key of rotation step"));
    tt_ok(tsr_ckks_ciphertext_copy(out, ct));
    assert_int_equal(tsr_circuits_bootstrap(b, ev, out, ct), TSR_ERR_LEVEL);
    double *kept = decrypt(h, out);
    double *fresh = decrypt(h, ct);
    assert_memory_equal(kept, fresh, 2 * h->slots * sizeof *kept);
    free(kept);
    free(fresh);
    /* the conjugation key one level too low */
    lower = top;
    tsr_ckks_evaluator_free(ev);
    tt_ok(tsr_ckks_galois_keys_trim(gk, &steps[at], &lower, 1, cl - 1));
    tt_ok(tsr_ckks_evaluator_create(&ev, h->p, h->rk, gk));
    assert_int_equal(tsr_circuits_boot_check_keys(b, ev), TSR_ERR_LEVEL);
    assert_non_null(strstr(tsr_last_error(), "conjugation key"));
    tsr_ckks_evaluator_free(ev);
    tsr_ckks_galois_keys_free(gk);

    /* keys generated at those levels directly */
    tt_ok(tsr_ckks_galois_keys_create(&gk, h->sk, NULL, 0, 0));
    for (size_t i = 0; i < n; i++)
        tt_ok(tsr_ckks_galois_keys_add_level(gk, h->sk, &steps[i], 1, 0, levels[i]));
    tt_ok(tsr_ckks_galois_keys_add_level(gk, h->sk, NULL, 0, TSR_CKKS_GALOIS_CONJUGATE, cl));
    tsr_ckks_relin_key *rk;
    tt_ok(tsr_ckks_relin_key_create_level(&rk, h->sk, rl));
    assert_int_equal(tsr_ckks_galois_keys_memory(gk), want_mem);
    tt_ok(tsr_ckks_evaluator_create(&ev, h->p, rk, gk));
    tt_ok(tsr_circuits_bootstrap(b, ev, out, ct));
    double *got = decrypt(h, out), worst, mean, worst_full, mean_full;
    precision(got, want, h->slots, &worst, &mean);
    precision(full, want, h->slots, &worst_full, &mean_full);
    printf("# generated level-aware keys: mean %.1f bits, worst %.1f (full keys %.1f, %.1f)\n",
           mean, worst, mean_full, worst_full);
    assert_true(mean > 23 && mean > mean_full - 1);
    assert_true(worst > 19);
    /* the relinearization key one level too low for EvalMod */
    tsr_ckks_relin_key *rk_low;
    tt_ok(tsr_ckks_relin_key_create_level(&rk_low, h->sk, rl - 1));
    tsr_ckks_evaluator *ev_low;
    tt_ok(tsr_ckks_evaluator_create(&ev_low, h->p, rk_low, gk));
    assert_int_equal(tsr_circuits_boot_check_keys(b, ev_low), TSR_ERR_LEVEL);
    assert_non_null(strstr(tsr_last_error(), "relinearization key"));
    assert_int_equal(tsr_circuits_bootstrap(b, ev_low, out, ct), TSR_ERR_LEVEL);
    tsr_ckks_evaluator_free(ev_low);
    tsr_ckks_relin_key_free(rk_low);

    free(got);
    free(full);
    free(want);
    free(steps);
    free(levels);
    free(all);
    tsr_ckks_ciphertext_free(out);
    tsr_ckks_ciphertext_free(ct);
    tsr_ckks_evaluator_free(ev);
    tsr_ckks_relin_key_free(rk);
    tsr_ckks_galois_keys_free(gk);
    tsr_circuits_boot_free(b);
}

/*
 * One bootstrap (complex, or a real pair when real) with full keys, then
 * with the same keys trimmed to tsr_circuits_boot_rotation_levels in a new
 * evaluator: bit-identical outputs. Returns how many rotation steps serve
 * SlotsToCoeffs only (their level is below EvalMod's input level).
 */
static size_t level_keys_identical(he *h, const tsr_circuits_boot_config *cfg, int real) {
    tsr_circuits_boot *b;
    tt_ok(tsr_circuits_boot_create(&b, h->enc, h->p, cfg));
    tsr_ckks_switch_key *to_sparse = NULL, *to_dense = NULL;
    if (cfg->encapsulation_hw) {
        tt_ok(tsr_circuits_boot_switch_keys_create(b, h->sk, &to_sparse, &to_dense));
        tt_ok(tsr_circuits_boot_set_switch_keys(b, to_sparse, to_dense));
    }
    tsr_circuits_boot_info info;
    tsr_circuits_boot_get_info(b, &info);
    int top = tsr_ckks_params_max_level(h->p), rl = -1, cl = -1;
    size_t n = tsr_circuits_boot_rotations(b, NULL, 0), stc_only = 0;
    int *steps = malloc(n * sizeof *steps), *levels = malloc(n * sizeof *levels);
    assert_true(steps && levels);
    assert_int_equal(tsr_circuits_boot_rotation_levels(b, steps, levels, n, &rl, &cl), n);
    for (size_t i = 0; i < n; i++) stc_only += levels[i] < top - info.cts_levels;
    tsr_ckks_relin_key *rk;
    tt_ok(tsr_ckks_relin_key_create(&rk, h->sk));
    tsr_ckks_galois_keys *gk = keys_for(h, b, 0);
    double *va = real ? rand_real_slots(h, info.slots) : rand_slots(h, info.slots);
    double *vb = rand_real_slots(h, info.slots);
    tsr_ckks_ciphertext *ca = encrypt_at(h, va, 1), *cb = encrypt_at(h, vb, 1), *oa, *ob;
    tt_ok(tsr_ckks_ciphertext_create(&oa, h->p));
    tt_ok(tsr_ckks_ciphertext_create(&ob, h->p));
    double *got[2][2] = { { NULL, NULL }, { NULL, NULL } };
    for (int trimmed = 0; trimmed < 2; trimmed++) {
        if (trimmed) {
            tt_ok(tsr_ckks_galois_keys_trim(gk, steps, levels, n, cl));
            tt_ok(tsr_ckks_relin_key_trim(rk, rl));
            assert_true(tsr_ckks_relin_key_max_level(rk) < top);
        }
        tsr_ckks_evaluator *ev;
        tt_ok(tsr_ckks_evaluator_create(&ev, h->p, rk, gk));
        tt_ok(tsr_circuits_boot_check_keys(b, ev));
        if (real)
            tt_ok(tsr_circuits_bootstrap_real(b, ev, oa, ob, ca, cb));
        else
            tt_ok(tsr_circuits_bootstrap(b, ev, oa, ca));
        got[trimmed][0] = decrypt(h, oa);
        if (real) got[trimmed][1] = decrypt(h, ob);
        tsr_ckks_evaluator_free(ev);
    }
    assert_memory_equal(got[0][0], got[1][0], 2 * h->slots * sizeof(double));
    if (real) assert_memory_equal(got[0][1], got[1][1], 2 * h->slots * sizeof(double));
    double worst, mean;
    precision(got[0][0], va, h->slots, &worst, &mean);
    assert_true(mean > 18); /* a bootstrap did run */
    for (int i = 0; i < 2; i++)
        for (int j = 0; j < 2; j++) free(got[i][j]);
    free(va);
    free(vb);
    free(steps);
    free(levels);
    tsr_ckks_ciphertext_free(ca);
    tsr_ckks_ciphertext_free(cb);
    tsr_ckks_ciphertext_free(oa);
    tsr_ckks_ciphertext_free(ob);
    tsr_ckks_galois_keys_free(gk);
    tsr_ckks_relin_key_free(rk);
    tsr_circuits_boot_free(b);
    tsr_ckks_switch_key_free(to_sparse);
    tsr_ckks_switch_key_free(to_dense);
    return stc_only;
}

/*
 * Sparse slots, diagonals on the fly (every diagonal as its 2p subring
 * coefficients) and stored (the default mix): the same rotation steps and a
 * bit-identical bootstrap. CoeffsToSlots' first factor is the packing
 * [M; -iM] and SlotsToCoeffs' last the unpacking (the factors holding the
 * stage h = n/2): slot period 2n exactly, so 2 * 2n coefficients per diagonal
 * on the fly, and encoded by default (32 * 2n > S). Every other factor works
 * on [x | y] inside blocks of n and keeps the periods of its stages (h <=
 * n/4: at most n/2), so it stays as subring coefficients by default.
 */
static void sparse_fly_identical(he *h, const tsr_circuits_boot_config *cfg) {
    tsr_circuits_boot_config fly_cfg = *cfg;
    fly_cfg.diagonals_on_the_fly = 1;
    tsr_circuits_boot *b, *fly;
    tt_ok(tsr_circuits_boot_create(&b, h->enc, h->p, cfg));
    tt_ok(tsr_circuits_boot_create(&fly, h->enc, h->p, &fly_cfg));
    tsr_circuits_boot_info info;
    tsr_circuits_boot_get_info(b, &info);
    assert_true(info.slots < h->slots);
    size_t n = tsr_circuits_boot_rotations(b, NULL, 0);
    int *steps = malloc(n * sizeof *steps), *fly_steps = malloc(n * sizeof *fly_steps);
    assert_true(steps && fly_steps);
    tsr_circuits_boot_rotations(b, steps, n);
    assert_int_equal(tsr_circuits_boot_rotations(fly, fly_steps, n), n);
    assert_memory_equal(steps, fly_steps, n * sizeof *steps);
    tsr_circuits_boot_factor fac[32], fly_fac[32];
    size_t nf = tsr_circuits_boot_factors(b, fac, 32, 0, NULL, 0);
    assert_int_equal(nf, (size_t)(info.cts_levels + info.stc_levels));
    assert_int_equal(tsr_circuits_boot_factors(fly, fly_fac, 32, 0, NULL, 0), nf);
    const uint64_t period2 = 2 * (uint64_t)info.slots, big_n = tsr_ckks_params_n(h->p);
    const uint64_t k = (uint64_t)tsr_ckks_params_special_count(h->p);
    for (size_t f = 0; f < nf; f++) {
        assert_int_equal(fac[f].diagonals, fly_fac[f].diagonals);
        const uint64_t d = fac[f].diagonals, fb = fly_fac[f].diag_bytes;
        /* on the fly: 16 bytes per slot of period, each period a power of two <= 2n */
        assert_true(fb % 16 == 0 && fb >= 16 * d && fb <= 16 * d * period2);
        if ((fac[f].stage == 0 && fac[f].index == 0) ||
            (fac[f].stage == 1 && fac[f].index == info.stc_levels - 1)) {
            assert_int_equal(fb, d * 2 * period2 * 8);
            assert_true(CIRCUITS_SUBRING_MIN_RATIO * period2 > h->slots);
            assert_int_equal(fac[f].diag_bytes, d * big_n * 8 * ((uint64_t)fac[f].level + 1 + k));
        } else {
            assert_true(fb <= 16 * d * (period2 / 4));
        }
        /* by default a diagonal is kept as coefficients or encoded (at least as large) */
        assert_true(fac[f].diag_bytes >= fb);
    }
    tsr_ckks_galois_keys *gk = keys_for(h, b, 0);
    tsr_ckks_evaluator *ev;
    tt_ok(tsr_ckks_evaluator_create(&ev, h->p, h->rk, gk));
    double *v = rand_slots(h, info.slots);
    tsr_ckks_ciphertext *ct = encrypt_at(h, v, 1), *out;
    tt_ok(tsr_ckks_ciphertext_create(&out, h->p));
    tt_ok(tsr_circuits_bootstrap(b, ev, out, ct));
    double *stored = decrypt(h, out);
    tt_ok(tsr_circuits_bootstrap(fly, ev, out, ct));
    double *on_fly = decrypt(h, out);
    assert_memory_equal(stored, on_fly, 2 * h->slots * sizeof *stored);
    /* 2: every diagonal encoded, the same words; 3 is refused */
    tsr_circuits_boot_config enc_cfg = *cfg;
    enc_cfg.diagonals_on_the_fly = 2;
    tsr_circuits_boot *all_enc;
    tt_ok(tsr_circuits_boot_create(&all_enc, h->enc, h->p, &enc_cfg));
    tsr_circuits_boot_factor enc_fac[32];
    assert_int_equal(tsr_circuits_boot_factors(all_enc, enc_fac, 32, 0, NULL, 0), nf);
    for (size_t f = 0; f < nf; f++)
        assert_int_equal(enc_fac[f].diag_bytes, (uint64_t)enc_fac[f].diagonals * big_n * 8 *
                                                    ((uint64_t)enc_fac[f].level + 1 + k));
    tt_ok(tsr_circuits_bootstrap(all_enc, ev, out, ct));
    double *encoded = decrypt(h, out);
    assert_memory_equal(stored, encoded, 2 * h->slots * sizeof *stored);
    free(encoded);
    tsr_circuits_boot_free(all_enc);
    /* a 1 MiB budget: the encoded factors keep the limbs that fit, the others are converted
     * from coefficients (doubles where they may pass 2^62), the same words */
    tsr_circuits_boot_config cut_cfg = *cfg;
    cut_cfg.diagonals_mib = 1;
    tsr_circuits_boot *cut;
    tt_ok(tsr_circuits_boot_create(&cut, h->enc, h->p, &cut_cfg));
    tsr_circuits_boot_factor cut_fac[32];
    assert_int_equal(tsr_circuits_boot_factors(cut, cut_fac, 32, 0, NULL, 0), nf);
    uint64_t cut_bytes = 0, default_bytes = 0;
    for (size_t f = 0; f < nf; f++) {
        cut_bytes += cut_fac[f].diag_bytes;
        default_bytes += fac[f].diag_bytes;
    }
    assert_true(cut_bytes < default_bytes);
    tt_ok(tsr_circuits_bootstrap(cut, ev, out, ct));
    double *cut_got = decrypt(h, out);
    assert_memory_equal(stored, cut_got, 2 * h->slots * sizeof *stored);
    free(cut_got);
    tsr_circuits_boot_free(cut);
    enc_cfg.diagonals_on_the_fly = 3;
    tsr_circuits_boot *bad = NULL;
    assert_int_equal(tsr_circuits_boot_create(&bad, h->enc, h->p, &enc_cfg), TSR_ERR_INVALID_ARG);
    assert_null(bad);
    double worst, mean;
    precision(stored, v, info.slots, &worst, &mean);
    assert_true(mean > 18); /* a bootstrap did run */
    free(stored);
    free(on_fly);
    free(v);
    free(steps);
    free(fly_steps);
    tsr_ckks_ciphertext_free(ct);
    tsr_ckks_ciphertext_free(out);
    tsr_ckks_evaluator_free(ev);
    tsr_ckks_galois_keys_free(gk);
    tsr_circuits_boot_free(fly);
    tsr_circuits_boot_free(b);
}

/*
 * Level-aware keys with sparse slots split 3 + 2 (SlotsToCoeffs then has
 * steps of its own at N = 2^10 and 2^11, so keys are trimmed below EvalMod's
 * level; with the default split at N = 2^10 every step is shared with
 * CoeffsToSlots) and with the real-pair bootstrap: trimmed keys
 * bit-identical to full ones; and diagonals on the fly bit-identical to the
 * stored ones with sparse slots (sparse_fly_identical).
 */
static void test_boot_level_keys_sparse_real(void **state) {
    he *h = *state;
    tsr_circuits_boot_config cfg = { .slots = h->slots / 16, .cts_levels = 3, .stc_levels = 2 };
    assert_true(level_keys_identical(h, &cfg, 0) > 0);
    level_keys_identical(h, &cfg, 1);
    sparse_fly_identical(h, &cfg);
}

/* Level-aware keys with sparse-secret encapsulation: bit-identical. */
static void test_boot_level_keys_encapsulated(void **state) {
    he *h = *state;
    tsr_circuits_boot_config cfg = { .encapsulation_hw = 32 };
    level_keys_identical(h, &cfg, 0);
}

/*
 * EvalMod with two or four threads (full slots: the two halves at once, the
 * second on the evaluator's twin, each with T/2 threads: with 2 the two
 * iterations of a parallel loop, with 4 the second half on a thread of its
 * own; sparse slots: one EvalMod, no pair, T threads in its inner loops)
 * gives the bytes of the sequential order, and counts the same key switches
 * on the caller's evaluator.
 */
static void eval_mod_threads(he *h, size_t n, const tsr_circuits_boot_config *cfg,
                             double min_mean) {
    int saved = tsr_get_num_threads();
    tsr_circuits_boot *b;
    tt_ok(tsr_circuits_boot_create(&b, h->enc, h->p, cfg));
    tsr_ckks_galois_keys *gk = keys_for(h, b, 0);
    tsr_ckks_evaluator *ev;
    tt_ok(tsr_ckks_evaluator_create(&ev, h->p, h->rk, gk));
    double *want = rand_slots(h, n);
    tsr_ckks_ciphertext *ct = encrypt_at(h, want, 1), *x, *out;
    tt_ok(tsr_ckks_ciphertext_create(&x, h->p));
    tt_ok(tsr_ckks_ciphertext_create(&out, h->p));
    tt_ok(tsr_circuits_boot_mod_raise(b, ev, x, ct));
    tt_ok(tsr_circuits_boot_coeffs_to_slots(b, ev, x, x));
    /* 1 thread, 2 (one per half), 4 (two per half: oversubscribed here) */
    static const int threads[3] = { 1, 2, 4 };
    uint8_t *bytes[3];
    size_t len[3];
    unsigned long dec[3], md[3];
    for (int t = 0; t < 3; t++) {
        tsr_set_num_threads(threads[t]);
        unsigned long d0 = ev->n_decompose, m0 = ev->n_moddown;
        tt_ok(tsr_circuits_boot_eval_mod(b, ev, out, x));
        dec[t] = ev->n_decompose - d0;
        md[t] = ev->n_moddown - m0;
        tt_ok(tsr_ckks_ciphertext_to_bytes(out, &bytes[t], &len[t]));
    }
    tsr_set_num_threads(saved);
#ifdef _OPENMP
    /* the runs with 2 and 4 threads took the two-thread path (full slots) or had no pair
     * (sparse): without OpenMP both would be the sequential code compared with itself */
    if (n == h->slots) {
        assert_non_null(ev->twin);
        /* the twin's key-switching scratch is not kept between EvalMods */
        assert_null(ev->twin->ks_digits);
        assert_null(ev->twin->ks_coef);
    } else
        assert_null(ev->twin);
#else
    printf("# skipped: no OpenMP (the runs compare the sequential code with itself)\n");
#endif
    assert_true(dec[0] > 0 && md[0] > 0);
    for (int t = 1; t < 3; t++) {
        assert_int_equal(len[0], len[t]);
        assert_memory_equal(bytes[0], bytes[t], len[0]);
        assert_int_equal(dec[0], dec[t]);
        assert_int_equal(md[0], md[t]);
    }

    /* and the whole bootstrap still lands on the input */
    tt_ok(tsr_circuits_boot_slots_to_coeffs(b, ev, out, out));
    double *got = decrypt(h, out), worst, mean;
    precision(got, want, h->slots, &worst, &mean);
    assert_true(mean > min_mean);
    free(got);
    for (int t = 0; t < 3; t++) tsr_ckks_bytes_free(bytes[t]);
    free(want);
    tsr_ckks_ciphertext_free(ct);
    tsr_ckks_ciphertext_free(x);
    tsr_ckks_ciphertext_free(out);
    tsr_ckks_evaluator_free(ev);
    tsr_ckks_galois_keys_free(gk);
    tsr_circuits_boot_free(b);
}

static void test_boot_eval_mod_threads(void **state) {
    he *h = *state;
    eval_mod_threads(h, h->slots, NULL, 23);
    /* sparse slots (the default for --slots 4096 at N = 2^16): as test_boot_sparse */
    tsr_circuits_boot_config cfg = { .slots = h->slots / 16, .cts_levels = 2, .stc_levels = 2 };
    eval_mod_threads(h, h->slots / 16, &cfg, 21);
}

/*
 * Two application threads bootstrapping at once, each with its own evaluator
 * over one circuit and one key set, and each with 4 OpenMP threads (so
 * EvalMod splits its halves with two threads each), give the bytes of the
 * same bootstraps run one at a time. A concurrency smoke test: the results
 * do not depend on thread counts, and the final max-active-levels check
 * cannot see the bootstrapping threads' settings (each thread has its own
 * in GCC 12's libgomp; test_thread_pair in test_core checks the levels
 * inside the halves, where a change shows). (A cmocka assert inside a thread
 * would longjmp across threads: the threads return a status and message.)
 */
typedef struct boot_job {
    const tsr_circuits_boot *b;
    tsr_ckks_evaluator *ev;
    tsr_ckks_ciphertext *out;
    const tsr_ckks_ciphertext *in;
    tsr_status st;
    char msg[512];
} boot_job;

static void *boot_job_run(void *arg) {
    boot_job *j = arg;
    tsr_set_num_threads(4); /* this thread's own OpenMP setting */
    j->st = tsr_circuits_bootstrap(j->b, j->ev, j->out, j->in);
    if (j->st != TSR_OK) snprintf(j->msg, sizeof j->msg, "%s", tsr_last_error());
    return NULL;
}

static void test_boot_two_threads(void **state) {
    he *h = *state;
    int saved = tsr_get_num_threads();
    tsr_circuits_boot *b;
    tt_ok(tsr_circuits_boot_create(&b, h->enc, h->p, NULL));
    tsr_ckks_galois_keys *gk = keys_for(h, b, 0);
    double *want[2];
    tsr_ckks_ciphertext *in[2], *out[2];
    tsr_ckks_evaluator *ev[2];
    boot_job job[2];
    uint8_t *seq[2], *par[2];
    size_t seq_len[2], par_len[2];
    for (int i = 0; i < 2; i++) {
        want[i] = rand_slots(h, h->slots);
        in[i] = encrypt_at(h, want[i], 1);
        tt_ok(tsr_ckks_ciphertext_create(&out[i], h->p));
        tt_ok(tsr_ckks_evaluator_create(&ev[i], h->p, h->rk, gk));
        job[i] = (boot_job){ .b = b, .ev = ev[i], .out = out[i], .in = in[i] };
    }
#ifdef _OPENMP
    int levels = omp_get_max_active_levels();
#endif
    /* one at a time, on this thread */
    tsr_set_num_threads(4);
    for (int i = 0; i < 2; i++) {
        tt_ok(tsr_circuits_bootstrap(b, ev[i], out[i], in[i]));
        tt_ok(tsr_ckks_ciphertext_to_bytes(out[i], &seq[i], &seq_len[i]));
    }
    tsr_set_num_threads(saved);
    /* at once, on two threads */
    pthread_t th[2];
    for (int i = 0; i < 2; i++)
        assert_int_equal(pthread_create(&th[i], NULL, boot_job_run, &job[i]), 0);
    for (int i = 0; i < 2; i++) assert_int_equal(pthread_join(th[i], NULL), 0);
    for (int i = 0; i < 2; i++) {
        if (job[i].st != TSR_OK)
            fail_msg("bootstrap on thread %d: %s: %s", i, tsr_strerror(job[i].st), job[i].msg);
        tt_ok(tsr_ckks_ciphertext_to_bytes(out[i], &par[i], &par_len[i]));
        assert_int_equal(seq_len[i], par_len[i]);
        assert_memory_equal(seq[i], par[i], seq_len[i]);
        double *got = decrypt(h, out[i]), worst, mean;
        precision(got, want[i], h->slots, &worst, &mean);
        assert_true(mean > 23);
        free(got);
    }
    /* the two inputs differ, so the comparison above is not of one ciphertext with itself */
    assert_true(seq_len[0] != seq_len[1] || memcmp(seq[0], seq[1], seq_len[0]) != 0);
#ifdef _OPENMP
    assert_int_equal(omp_get_max_active_levels(), levels);
#endif
    for (int i = 0; i < 2; i++) {
        tsr_ckks_bytes_free(seq[i]);
        tsr_ckks_bytes_free(par[i]);
        free(want[i]);
        tsr_ckks_ciphertext_free(in[i]);
        tsr_ckks_ciphertext_free(out[i]);
        tsr_ckks_evaluator_free(ev[i]);
    }
    tsr_ckks_galois_keys_free(gk);
    tsr_circuits_boot_free(b);
}

/*
 * EvalMod with 4 threads (two per half: tsr_thread_pair's POSIX-thread path,
 * seen through the twin) leaves the calling thread's OpenMP settings as it
 * found them: its thread count (tsr_thread_pair sets each half's count and
 * restores the caller's) and its max-active-levels (no nested regions; test_core's
 * test_thread_pair checks the levels inside the halves too). Both are settings of
 * the calling thread: with GCC 12's libgomp another thread cannot see them.
 */
static void test_boot_eval_mod_settings(void **state) {
    he *h = *state;
    int saved = tsr_get_num_threads();
    tsr_circuits_boot *b;
    tt_ok(tsr_circuits_boot_create(&b, h->enc, h->p, NULL));
    tsr_ckks_galois_keys *gk = keys_for(h, b, 0);
    tsr_ckks_evaluator *ev;
    tt_ok(tsr_ckks_evaluator_create(&ev, h->p, h->rk, gk));
    double *want = rand_slots(h, h->slots);
    tsr_ckks_ciphertext *ct = encrypt_at(h, want, 1), *x, *out;
    tt_ok(tsr_ckks_ciphertext_create(&x, h->p));
    tt_ok(tsr_ckks_ciphertext_create(&out, h->p));
    tt_ok(tsr_circuits_boot_mod_raise(b, ev, x, ct));
    tt_ok(tsr_circuits_boot_coeffs_to_slots(b, ev, x, x));
#ifdef _OPENMP
    int levels = omp_get_max_active_levels();
#endif
    tsr_set_num_threads(4);
    tt_ok(tsr_circuits_boot_eval_mod(b, ev, out, x));
    int after = tsr_get_num_threads();
    tsr_set_num_threads(saved);
#ifdef _OPENMP
    assert_non_null(ev->twin); /* the halves ran as a pair */
    assert_int_equal(after, 4);
    assert_int_equal(omp_get_max_active_levels(), levels);
#else
    assert_int_equal(after, 1);
    printf("# skipped: no OpenMP (no thread settings to change)\n");
#endif
    free(want);
    tsr_ckks_ciphertext_free(ct);
    tsr_ckks_ciphertext_free(x);
    tsr_ckks_ciphertext_free(out);
    tsr_ckks_evaluator_free(ev);
    tsr_ckks_galois_keys_free(gk);
    tsr_circuits_boot_free(b);
}

/*
 * The default R (ModRaise's input scale q_0 / 2^R) by ring and slots: 9 up to
 * N = 2^12, 9 - floor((log2 N - 10) / 2) above, plus floor(log2(N / 2n) / 2)
 * for sparse slots (the values are written out, not the formula: a change
 * of it must change this table). Circuit creation only, no keys; diagonals
 * on the fly keep it cheap at N = 2^14.
 */
static void test_boot_default_ratio(void **state) {
    (void)state;
    static const struct {
        int log_n, log_slots, r;
    } cases[] = {
        { 12, 11, 9 }, { 13, 12, 8 }, { 13, 10, 9 }, { 14, 13, 7 }, { 14, 11, 8 }, { 14, 9, 9 },
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        tsr_ckks_param_spec spec = boot_test_spec();
        spec.log_n = cases[c].log_n;
        tsr_ckks_params *p;
        tsr_ckks_encoder *enc;
        tt_ok(tsr_ckks_params_create(&p, &spec));
        tt_ok(tsr_ckks_encoder_create(&enc, p));
        tsr_circuits_boot_config cfg = { .slots = (size_t)1 << cases[c].log_slots,
                                         .diagonals_on_the_fly = 1 };
        tsr_circuits_boot *b;
        tt_ok(tsr_circuits_boot_create(&b, enc, p, &cfg));
        tsr_circuits_boot_info info;
        tsr_circuits_boot_get_info(b, &info);
        double q0 = (double)tsr_ckks_params_prime(p, 0);
        if (info.in_scale != ldexp(q0, -cases[c].r))
            fail_msg("N = 2^%d, %zu slots: in_scale = q_0 / 2^%.3f, want q_0 / 2^%d",
                     cases[c].log_n, cfg.slots, log2(q0 / info.in_scale), cases[c].r);
        tsr_circuits_boot_free(b);
        tsr_ckks_encoder_free(enc);
        tsr_ckks_params_free(p);
    }
}

/*
 * The encoded diagonals' default budget (header: TSR_CIRCUITS_BOOT_DIAGONALS_MIB, and
 * TSR_CIRCUITS_BOOT_SPARSE_DIAGONALS_MIB for slots <= N/16, whose circuits hold fewer keys),
 * an explicit config.diagonals_mib kept as given, none for the layouts without a budget.
 */
static void test_boot_default_budget(void **state) {
    he *h = *state;
    const size_t n_ring = 2 * h->slots;
    for (size_t n = h->slots; n >= h->slots / 32; n /= 2) {
        for (int mode = 0; mode < 3; mode++) {
            tsr_circuits_boot_config cfg = { .slots = n };
            if (mode == 1) cfg.diagonals_mib = 300;
            if (mode == 2) cfg.diagonals_on_the_fly = 1;
            tsr_circuits_boot *b;
            tt_ok(tsr_circuits_boot_create(&b, h->enc, h->p, &cfg));
            tsr_circuits_boot_info info;
            tsr_circuits_boot_get_info(b, &info);
            size_t want = mode == 1          ? 300
                          : mode == 2        ? 0
                          : 16 * n <= n_ring ? TSR_CIRCUITS_BOOT_SPARSE_DIAGONALS_MIB
                                             : TSR_CIRCUITS_BOOT_DIAGONALS_MIB;
            if (info.diagonals_mib != want)
                fail_msg("%zu of %zu slots, mode %d: budget %zu MiB, want %zu", n, h->slots, mode,
                         info.diagonals_mib, want);
            tsr_circuits_boot_free(b);
        }
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_mul_monomial, he_setup, he_teardown),
        cmocka_unit_test_setup_teardown(test_boot_full, he_setup, he_teardown),
        cmocka_unit_test_setup_teardown(test_boot_sparse, he_setup, he_teardown),
        cmocka_unit_test_setup_teardown(test_boot_eval_mod_threads, he_setup, he_teardown),
        cmocka_unit_test_setup_teardown(test_boot_two_threads, he_setup, he_teardown),
        cmocka_unit_test_setup_teardown(test_boot_eval_mod_settings, he_setup, he_teardown),
        cmocka_unit_test_setup_teardown(test_boot_level_keys, he_setup, he_teardown),
        cmocka_unit_test_setup_teardown(test_boot_level_keys_sparse_real, he_setup, he_teardown),
        cmocka_unit_test_setup_teardown(test_boot_level_keys_encapsulated, he_setup_dense,
                                        he_teardown),
        cmocka_unit_test_setup_teardown(test_boot_real, he_setup, he_teardown),
        cmocka_unit_test_setup_teardown(test_key_switch, he_setup_dense, he_teardown),
        cmocka_unit_test_setup_teardown(test_boot_encapsulated, he_setup_dense, he_teardown),
        cmocka_unit_test_setup_teardown(test_encap_modulus_bound, he_setup_dense, he_teardown),
        cmocka_unit_test_setup_teardown(test_boot_errors, he_setup, he_teardown),
        cmocka_unit_test(test_boot_default_ratio),
        cmocka_unit_test_setup_teardown(test_boot_default_budget, he_setup, he_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
