/*
 * tests/test_circuits_lt.c - linear transforms (plaintext matrix times an
 * encrypted slot vector): precision in bits against a naive plaintext
 * matrix-vector product for sparse-diagonal and dense (replicated) matrices
 * and every baby-step count, the rotation steps listed before keygen, the
 * output level and exact canonical scale, and the error cases; double
 * hoisting against the single-hoisted reference with complex diagonals
 * (precision and key-switching counts).
 */
#include "testutil.h"

#include "circuits/circuits_internal.h"
#include "ckks/evaluator_internal.h"
#include "core/alloc.h"
#include "ring/ntt.h"
#include "ring/vec.h"
#include "tessera.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif

typedef struct he {
    tsr_ckks_params *p;
    tsr_ckks_secret_key *sk;
    tsr_ckks_public_key *pk;
    tsr_ckks_encoder *enc;
    tsr_ckks_plaintext *pt;
    size_t slots;
    tsr_prng g;
} he;

/* Insecure small ring (tests only): N = 2^log_n, `levels` levels of 40 bits. */
static int he_setup_ring(void **state, unsigned log_n, unsigned levels, unsigned special,
                         unsigned dnum) {
    he *h = calloc(1, sizeof *h);
    if (!h) return -1;
    tsr_ckks_param_spec spec = { .log_n = log_n,
                                 .first_prime_bits = 55,
                                 .scale_bits = 40,
                                 .levels = levels,
                                 .special_primes = special,
                                 .special_prime_bits = 60,
                                 .dnum = dnum,
                                 .secret = TSR_CKKS_SECRET_TERNARY,
                                 .hamming_weight = 0,
                                 .flags = TSR_CKKS_ALLOW_INSECURE_PARAMETERS };
    tt_ok(tsr_ckks_params_create(&h->p, &spec));
    tt_ok(tsr_ckks_secret_key_create(&h->sk, h->p));
    tt_ok(tsr_ckks_public_key_create(&h->pk, h->sk));
    tt_ok(tsr_ckks_encoder_create(&h->enc, h->p));
    tt_ok(tsr_ckks_plaintext_create(&h->pt, h->p));
    h->slots = tsr_ckks_params_slots(h->p);
    tt_prng(&h->g, 11);
    *state = h;
    return 0;
}

/* N = 2^11 (1024 slots). */
static int he_setup_spec(void **state, unsigned levels, unsigned special, unsigned dnum) {
    return he_setup_ring(state, 11, levels, special, dnum);
}

/* 2 levels, 1 special prime. */
static int he_setup(void **state) {
    return he_setup_spec(state, 2, 1, 0);
}

/* 5 levels, 2 special primes, 3 key-switching digits at the top level. */
static int he_setup_digits(void **state) {
    return he_setup_spec(state, 5, 2, 3);
}

static int he_teardown(void **state) {
    he *h = *state;
    tsr_ckks_plaintext_free(h->pt);
    tsr_ckks_encoder_free(h->enc);
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

static double *rand_vec(he *h, size_t n) {
    double *v = malloc(n * sizeof *v);
    assert_non_null(v);
    for (size_t i = 0; i < n; i++) v[i] = 2 * tsr_prng_double(&h->g) - 1;
    return v;
}

/* An evaluator with a relinearization-free key set: Galois keys for exactly lt's steps. */
static tsr_ckks_galois_keys *keys_for(he *h, const tsr_circuits_lt *lt) {
    size_t n = tsr_circuits_lt_rotations(lt, NULL, 0);
    int *steps = malloc((n ? n : 1) * sizeof *steps);
    assert_non_null(steps);
    assert_int_equal(tsr_circuits_lt_rotations(lt, steps, n), n);
    for (size_t i = 1; i < n; i++) assert_true(steps[i - 1] < steps[i]);
    tsr_ckks_galois_keys *gk;
    tt_ok(tsr_ckks_galois_keys_create(&gk, h->sk, steps, n, 0));
    free(steps);
    return gk;
}

/* Decrypt ct and return the precision (bits) against want. */
static double prec(he *h, const tsr_ckks_ciphertext *ct, const double *want) {
    double *got = malloc(h->slots * sizeof *got);
    assert_non_null(got);
    tt_ok(tsr_ckks_decrypt(h->sk, h->pt, ct));
    tt_ok(tsr_ckks_decode_real(h->enc, h->pt, got, h->slots, NULL));
    double b = tt_precision_bits(got, want, h->slots);
    free(got);
    return b;
}

/* Apply lt to x (at level 2) and check level, scale and precision against want. */
static double apply_check(he *h, const tsr_circuits_lt *lt, const double *x, const double *want) {
    tsr_ckks_galois_keys *gk = keys_for(h, lt);
    tsr_ckks_evaluator *ev;
    tt_ok(tsr_ckks_evaluator_create(&ev, h->p, NULL, gk));
    tsr_ckks_ciphertext *ct = encrypt_at(h, x, 2);
    tt_ok(tsr_circuits_lt_apply(ev, ct, ct, lt)); /* out aliases in */
    assert_int_equal(tsr_ckks_ciphertext_level(ct), 1);
    assert_true(tsr_ckks_ciphertext_scale(ct) == tsr_ckks_params_scale(h->p, 1));
    double b = prec(h, ct, want);
    tsr_ckks_ciphertext_free(ct);
    tsr_ckks_evaluator_free(ev);
    tsr_ckks_galois_keys_free(gk);
    return b;
}

/*
 * A sparse matrix given by diagonals (indices include negatives and ones
 * past a giant step): (M v)[j] = sum_i diag_i[j] v[(j + i) mod slots],
 * computed naively here, for every baby-step count.
 */
static void test_lt_sparse(void **state) {
    he *h = *state;
    const int idx[] = { 0, 1, 2, 3, 7, 64, 100, -1, -5, 511, 513 };
    const size_t nd = sizeof idx / sizeof idx[0];
    size_t S = h->slots;
    double *diag[sizeof idx / sizeof idx[0]];
    for (size_t t = 0; t < nd; t++) diag[t] = rand_vec(h, S);
    double *x = rand_vec(h, S), *want = calloc(S, sizeof *want);
    assert_non_null(want);
    for (size_t t = 0; t < nd; t++) {
        size_t i = (size_t)((idx[t] % (long)S + (long)S) % (long)S);
        for (size_t j = 0; j < S; j++) want[j] += diag[t][j] * x[(j + i) % S];
    }
    const double *const *dp = (const double *const *)diag;
    size_t best_keys = SIZE_MAX, auto_keys = 0;
    for (size_t n1 = 0; n1 <= S; n1 = n1 ? 2 * n1 : 1) {
        if (tt_sanitized() && n1 != 0 && n1 != 1 && n1 != 16 && n1 != S) continue;
        tsr_circuits_lt *lt;
        tt_ok(tsr_circuits_lt_create(&lt, h->enc, h->p, idx, dp, nd, n1, 2));
        size_t keys = tsr_circuits_lt_rotations(lt, NULL, 0);
        if (n1 == 0)
            auto_keys = keys;
        else if (keys < best_keys)
            best_keys = keys;
        double b = apply_check(h, lt, x, want);
        printf("sparse, %zu diagonals, n1 = %4zu: %2zu rotation keys, %.1f bits\n", nd,
               tsr_circuits_lt_baby_steps(lt), keys, b);
        assert_true(b >= 25);
        tsr_circuits_lt_free(lt);
    }
    if (!tt_sanitized()) assert_int_equal(auto_keys, best_keys);
    for (size_t t = 0; t < nd; t++) free(diag[t]);
    free(x);
    free(want);
}

/*
 * A dense n x n matrix on a vector replicated with period n (n divides the
 * slot count): diag_i[j] = M[j mod n][(j mod n + i) mod n], i < n, checked
 * against the naive product M v.
 */
static void test_lt_dense(void **state) {
    he *h = *state;
    const size_t n = 32, S = h->slots;
    double *M = rand_vec(h, n * n), *v = rand_vec(h, n);
    double *x = malloc(S * sizeof *x), *want = malloc(S * sizeof *want);
    double **diag = malloc(n * sizeof *diag);
    int *idx = malloc(n * sizeof *idx);
    assert_true(x && want && diag && idx);
    for (size_t j = 0; j < S; j++) x[j] = v[j % n];
    for (size_t r = 0; r < n; r++) {
        double s = 0;
        for (size_t c = 0; c < n; c++) s += M[r * n + c] * v[c];
        for (size_t j = r; j < S; j += n) want[j] = s;
    }
    for (size_t i = 0; i < n; i++) {
        idx[i] = (int)i;
        diag[i] = malloc(S * sizeof **diag);
        assert_non_null(diag[i]);
        for (size_t j = 0; j < S; j++) diag[i][j] = M[(j % n) * n + (j % n + i) % n];
    }
    tsr_circuits_lt *lt;
    tt_ok(tsr_circuits_lt_create(&lt, h->enc, h->p, idx, (const double *const *)diag, n, 0, 2));
    size_t keys = tsr_circuits_lt_rotations(lt, NULL, 0);
    /* 32 contiguous diagonals: n1 = 4 or 8 gives 3 + 7 or 7 + 3 keys */
    assert_int_equal(keys, 10);
    /* same keys for 4 and 8: the cheaper split, 7 babies + 3 giants (giants cost a ModDown) */
    assert_int_equal(tsr_circuits_lt_baby_steps(lt), 8);
    double b = apply_check(h, lt, x, want);
    printf("dense %zu x %zu, n1 = %zu: %zu rotation keys, %.1f bits\n", n, n,
           tsr_circuits_lt_baby_steps(lt), keys, b);
    assert_true(b >= 24);
    tsr_circuits_lt_free(lt);
    for (size_t i = 0; i < n; i++) free(diag[i]);
    free(diag);
    free(idx);
    free(M);
    free(v);
    free(x);
    free(want);
}

static tsr_status cplx_diag(void *ctx, size_t t, ckks_cplx *out);

static void test_lt_errors(void **state) {
    he *h = *state;
    size_t S = h->slots;
    double *d0 = rand_vec(h, S), *d1 = rand_vec(h, S);
    const double *diags[2] = { d0, d1 };
    int idx[2] = { 0, 3 };
    tsr_circuits_lt *lt = NULL;
    /* creation */
    tt_fails(tsr_circuits_lt_create(&lt, h->enc, h->p, idx, diags, 0, 0, 2), TSR_ERR_INVALID_ARG);
    tt_fails(tsr_circuits_lt_create(&lt, h->enc, h->p, idx, diags, 2, 3, 2), TSR_ERR_INVALID_ARG);
    tt_fails(tsr_circuits_lt_create(&lt, h->enc, h->p, idx, diags, 2, 0, 0), TSR_ERR_LEVEL);
    tt_fails(tsr_circuits_lt_create(&lt, h->enc, h->p, idx, diags, 2, 0, 3), TSR_ERR_LEVEL);
    /* the one transform itself (bootstrapping's factors reach it without the public checks),
     * in every store: a non-finite complex value, then one too large for the modulus */
    double *bad = rand_vec(h, 2 * S);
    double *bd[1] = { bad };
    const size_t at5 = 5;
    for (int store = CIRCUITS_DIAGS_ENCODED; store <= CIRCUITS_DIAGS_SUBRING; store++) {
        circuits_bsgs cb;
        bad[2 * 7 + 1] = NAN;
        tt_fails(circuits_bsgs_create_ex(&cb, h->enc, h->p, &at5, 1, S, 0, cplx_diag, bd, 2,
                                         tsr_ckks_params_scale(h->p, 2),
                                         (circuits_diag_store)store),
                 TSR_ERR_INVALID_ARG);
        bad[2 * 7 + 1] = 1e40;
        tt_fails(circuits_bsgs_create_ex(&cb, h->enc, h->p, &at5, 1, S, 0, cplx_diag, bd, 2,
                                         tsr_ckks_params_scale(h->p, 2),
                                         (circuits_diag_store)store),
                 TSR_ERR_SCALE);
    }
    free(bad);
    idx[1] = (int)S; /* same as 0 modulo slots */
    tt_fails(tsr_circuits_lt_create(&lt, h->enc, h->p, idx, diags, 2, 0, 2), TSR_ERR_INVALID_ARG);
    idx[1] = 3;
    d1[5] = NAN;
    tt_fails(tsr_circuits_lt_create(&lt, h->enc, h->p, idx, diags, 2, 0, 2), TSR_ERR_INVALID_ARG);
    d1[5] = 0.5;
    assert_null(lt);
    tt_ok(tsr_circuits_lt_create(&lt, h->enc, h->p, idx, diags, 2, 2, 2));
    int steps[4];
    assert_int_equal(tsr_circuits_lt_rotations(lt, steps, 4), 2);
    assert_int_equal(steps[0], 1); /* 3 = 1 * 2 + 1: baby 1, giant 2 */
    assert_int_equal(steps[1], 2);
    /* application */
    tsr_ckks_galois_keys *gk;
    tt_ok(tsr_ckks_galois_keys_create(&gk, h->sk, steps, 1, 0)); /* step 2 missing */
    tsr_ckks_evaluator *ev, *ev_none;
    tt_ok(tsr_ckks_evaluator_create(&ev, h->p, NULL, gk));
    tt_ok(tsr_ckks_evaluator_create(&ev_none, h->p, NULL, NULL));
    tsr_ckks_ciphertext *in = encrypt_at(h, d0, 2), *out;
    tt_ok(tsr_ckks_ciphertext_create(&out, h->p));
    tt_fails(tsr_circuits_lt_apply(ev, out, in, lt), TSR_ERR_KEY_MISSING);
    assert_non_null(strstr(tsr_last_error(), ": 2;"));
    tt_fails(tsr_circuits_lt_apply(ev_none, out, in, lt), TSR_ERR_KEY_MISSING);
    assert_non_null(strstr(tsr_last_error(), "2 rotation step(s)"));
    tsr_ckks_ciphertext *low = encrypt_at(h, d0, 1);
    tt_fails(tsr_circuits_lt_apply(ev, out, low, lt), TSR_ERR_LEVEL);
    assert_non_null(strstr(tsr_last_error(), "prepared for inputs at level 2"));
    tsr_ckks_ciphertext_free(low);
    tsr_ckks_ciphertext *off;
    tt_ok(tsr_ckks_ciphertext_clone(&off, in));
    tt_ok(tsr_ckks_ciphertext_set_scale(off, tsr_ckks_ciphertext_scale(in) * 2));
    tt_fails(tsr_circuits_lt_apply(ev, out, off, lt), TSR_ERR_SCALE);
    tsr_ckks_ciphertext_free(off);
    /* a transform prepared for other parameters */
    tsr_ckks_param_spec spec;
    tsr_ckks_params_spec(h->p, &spec);
    tsr_ckks_params *p2;
    tsr_ckks_encoder *enc2;
    tsr_circuits_lt *lt2;
    tt_ok(tsr_ckks_params_create(&p2, &spec));
    tt_ok(tsr_ckks_encoder_create(&enc2, p2));
    tt_ok(tsr_circuits_lt_create(&lt2, enc2, p2, idx, diags, 2, 2, 2));
    tt_fails(tsr_circuits_lt_apply(ev, out, in, lt2), TSR_ERR_MISMATCH);
    tsr_circuits_lt_free(lt2);
    tsr_ckks_encoder_free(enc2);
    tsr_ckks_params_free(p2);
    /* an encoder of a larger ring than the transform's parameters: refused, nothing written
     * (the diagonals' buffers are sized from the parameters, not from the encoder) */
    spec.log_n = 12;
    tt_ok(tsr_ckks_params_create(&p2, &spec));
    tt_ok(tsr_ckks_encoder_create(&enc2, p2));
    lt2 = NULL;
    tt_fails(tsr_circuits_lt_create(&lt2, enc2, h->p, idx, diags, 2, 2, 2), TSR_ERR_MISMATCH);
    assert_non_null(strstr(tsr_last_error(), "the encoder"));
    assert_null(lt2);
    tsr_ckks_encoder_free(enc2);
    tsr_ckks_params_free(p2);
    tsr_ckks_ciphertext_free(out);
    tsr_ckks_ciphertext_free(in);
    tsr_ckks_evaluator_free(ev_none);
    tsr_ckks_evaluator_free(ev);
    tsr_ckks_galois_keys_free(gk);
    tsr_circuits_lt_free(lt);
    tsr_circuits_lt_free(NULL);
    free(d0);
    free(d1);
}

/* Complex diagonals for circuits_bsgs_create: ctx = (2 slots doubles) per diagonal. */
static tsr_status cplx_diag(void *ctx, size_t t, ckks_cplx *out) {
    double *const *d = ctx;
    const size_t S = 1024; /* he_setup_digits's slots */
    for (size_t j = 0; j < S; j++) {
        out[j].re = d[t][2 * j];
        out[j].im = d[t][2 * j + 1];
    }
    return TSR_OK;
}

/*
 * Double hoisting against the single-hoisted reference path on complex
 * diagonals (ring with 2 special primes and 3 digits): both >= 24 bits
 * against the naive product, double hoisting at most a bit below the
 * reference (it rounds fewer ModDowns, so it is often above), same output level
 * and scale, and the key-switching counts: 1 + ng decompositions either
 * way; ng + 1 ModDowns hoisted, nb + ng single-hoisted (nb baby steps b > 0,
 * ng giant steps g > 0, counted here from the indices).
 */
/*
 * The QP key switch's addends, exactly: ckks_ks_apply_qp with lift0 = c0 equals the two-pass
 * apply + ckks_qp_add_lifted (the baby steps before the fifth round), and with add0 = w (a QP
 * polynomial, also in place: add0 = acc0) equals apply + perm(w) limb by limb (the giant
 * steps' c0 half), word for word, at `level` (ckks/evaluator_internal.h).
 */
static void qp_addends_exact(he *h, tsr_ckks_evaluator *ev, const tsr_ckks_ciphertext *in,
                             int level, int step) {
    const tsr_ckks_params *p = h->p;
    const size_t n = p->n, ne = (size_t)level + 1 + (size_t)p->k, poly = ne * n;
    const ckks_galois_entry *e =
        ckks_galois_find(ev->gk, ckks_galois_elt_rotation(h->slots, (long)step));
    assert_non_null(e);
    uint64_t *buf = tsr_alloc(7 * poly * sizeof *buf);
    assert_non_null(buf);
    uint64_t *u0 = buf, *u1 = u0 + poly, *v0 = u1 + poly, *v1 = v0 + poly, *w = v1 + poly,
             *tmp = w + poly, *x0 = tmp + poly;
    for (size_t i = 0; i < ne; i++) /* w: uniform words of each prime of Q_l u P */
        for (size_t j = 0; j < n; j++)
            w[i * n + j] =
                tsr_prng_uniform(&h->g, ckks_mod(p, ckks_ext_prime(p, level, (int)i))->q);
    tt_ok(ckks_ks_decompose(ev, level, ckks_ct_poly(in, 1)));
    tt_ok(ckks_ks_apply_qp(ev, &e->key, e->perm, NULL, ckks_ct_poly(in, 0), u0, u1));
    tt_ok(ckks_ks_apply_qp(ev, &e->key, e->perm, NULL, NULL, v0, v1));
    assert_memory_equal(u1, v1, poly * sizeof *u1);
    tt_ok(ckks_qp_add_lifted(ev, level, e->perm, ckks_ct_poly(in, 0), v0));
    assert_memory_equal(u0, v0, poly * sizeof *u0);
    /* add0 = w; then in place (acc0 = add0 = a copy of w) */
    tt_ok(ckks_ks_apply_qp(ev, &e->key, e->perm, w, NULL, u0, u1));
    memcpy(x0, w, poly * sizeof *x0);
    tt_ok(ckks_ks_apply_qp(ev, &e->key, e->perm, x0, NULL, x0, u1));
    tt_ok(ckks_ks_apply_qp(ev, &e->key, e->perm, NULL, NULL, v0, v1));
    for (size_t i = 0; i < ne; i++) {
        tsr_vec_permute(tmp, w + i * n, e->perm, n, 0);
        tsr_vec_add(ckks_mod(p, ckks_ext_prime(p, level, (int)i)), v0 + i * n, v0 + i * n, tmp, n);
    }
    assert_memory_equal(u0, v0, poly * sizeof *u0);
    assert_memory_equal(x0, v0, poly * sizeof *x0);
    assert_memory_equal(u1, v1, poly * sizeof *u1);
    /* the same words with 1, 2 and 3 threads, permuted or not: where the threads do not divide
     * the l + 1 + k limbs, the last limb's blocks are shared out (each count decomposes again:
     * the per-thread scratch is sized there) */
    const int saved = tsr_get_num_threads();
    for (int permuted = 0; permuted < 2; permuted++)
        for (int th = 1; th <= 3; th++) {
            tsr_set_num_threads(th);
            tt_ok(ckks_ks_decompose(ev, level, ckks_ct_poly(in, 1)));
            uint64_t *a0 = th == 1 ? u0 : v0, *a1 = th == 1 ? u1 : v1;
            tt_ok(ckks_ks_apply_qp(ev, &e->key, permuted ? e->perm : NULL, NULL,
                                   ckks_ct_poly(in, 0), a0, a1));
            if (th > 1) {
                assert_memory_equal(u0, v0, poly * sizeof *u0);
                assert_memory_equal(u1, v1, poly * sizeof *u1);
            }
        }
    tsr_set_num_threads(saved);
    tsr_free(buf);
}

/*
 * Every diagonal on the fly is kept as the 2p coefficients of a polynomial in X^(N/2p) (p its
 * slot period): checked against the encoder's N coefficients of the same (pre-rotated,
 * replicated) slots, recomputed here: equal at the multiples of N/2p up to the FFT's
 * rounding (1), and at most 1 elsewhere (where the exact value is 0).
 */
static void subring_layout(he *h, const circuits_bsgs *fly, double *const *diag,
                           const size_t *period) {
    const size_t S = h->slots, N = 2 * S;
    double *v = malloc(2 * S * sizeof *v), *full = malloc(N * sizeof *full), mag, err;
    assert_true(v && full);
    for (size_t t = 0; t < fly->n_diags; t++) {
        const size_t m = fly->coef_off[t + 1] - fly->coef_off[t], s = N / m;
        assert_int_equal(m, 2 * (period ? period[t] : S));
        const size_t g = fly->index[t] - fly->index[t] % fly->n1;
        for (size_t j = 0; j < S; j++) {
            v[2 * j] = diag[t][2 * ((j + S - g) % S)];
            v[2 * j + 1] = diag[t][2 * ((j + S - g) % S) + 1];
        }
        tt_ok(ckks_encode_complex_coef(h->enc, h->p, full, v, S, fly->level, fly->pt_scale, &mag,
                                       &err));
        assert_true(mag == fly->pt_mag[t]);
        const int64_t *c = fly->coef_i + fly->coef_off[t];
        for (size_t j = 0; j < N; j++)
            assert_true(fabs(full[j] - (j % s == 0 ? (double)c[j / s] : 0.0)) <= 1.0);
    }
    free(v);
    free(full);
}

/*
 * circuits_bsgs_limit: the stored diagonals keep their first `keep` limbs (none, one, all but
 * one, all) and convert the others from N coefficients recovered from two limbs; the results
 * are bit-identical to the fully encoded transform's (out[k], with dec[k] decompositions and
 * md[k] ModDowns) on both paths, and the bytes are those kept. Both stores with encoded
 * diagonals: every diagonal encoded, and the subring mix (some already as coefficients).
 */
static void budget_cuts(he *h, tsr_ckks_evaluator *ev, const tsr_ckks_ciphertext *in,
                        const size_t *idx, size_t nd, size_t n1, circuits_diag_fn fn, void *diag,
                        int level, tsr_ckks_ciphertext *const out[2], const unsigned long dec[2],
                        const unsigned long md[2]) {
    const size_t N = tsr_ckks_params_n(h->p);
    const size_t limbs = (size_t)(level + 1 + tsr_ckks_params_special_count(h->p));
    const size_t keeps[] = { 0, 1, limbs - 1, limbs };
    const circuits_diag_store stores[] = { CIRCUITS_DIAGS_ENCODED, CIRCUITS_DIAGS_SUBRING };
    for (size_t si = 0; si < 2; si++)
        for (size_t ki = 0; ki < sizeof keeps / sizeof keeps[0]; ki++) {
            const size_t keep = keeps[ki];
            circuits_bsgs cut;
            tt_ok(circuits_bsgs_create_ex(&cut, h->enc, h->p, idx, nd, h->slots, n1, fn, diag,
                                          level, tsr_ckks_params_scale(h->p, level), stores[si]));
            size_t stored = 0;
            for (size_t t = 0; t < nd; t++) stored += cut.pt[t] != NULL;
            const size_t fly0 = cut.n_fly, coef0 = cut.coef_off[nd];
            const uint64_t bytes0 = circuits_bsgs_bytes(&cut, h->p), limb = stored * N * 8;
            /* a remainder below one limb of every stored diagonal buys nothing */
            tt_ok(circuits_bsgs_limit(&cut, h->p, keep * limb + (keep ? limb - 1 : 0)));
            if (keep == limbs || stored == 0) {
                assert_int_equal(cut.pt_limbs, limbs);
                assert_int_equal(circuits_bsgs_bytes(&cut, h->p), bytes0);
                assert_int_equal(cut.n_fly, fly0);
            } else {
                assert_int_equal(cut.pt_limbs, keep);
                assert_int_equal(cut.n_fly, fly0 + (keep ? 0 : stored));
                assert_int_equal(circuits_bsgs_bytes(&cut, h->p),
                                 (coef0 + stored * N) * 8 + keep * limb);
                assert_true(circuits_bsgs_on_the_fly(&cut));
                /* a second limit changes nothing */
                tt_ok(circuits_bsgs_limit(&cut, h->p, 0));
                assert_int_equal(cut.pt_limbs, keep);
            }
            for (int k = 0; k < 2; k++) {
                tsr_ckks_ciphertext *o;
                tt_ok(tsr_ckks_ciphertext_create(&o, h->p));
                unsigned long d0 = ev->n_decompose, m0 = ev->n_moddown;
                if (k == 0)
                    tt_ok(circuits_bsgs_apply(ev, o, in, &cut));
                else
                    tt_ok(circuits_bsgs_apply_ref(ev, o, in, &cut));
                assert_int_equal(ev->n_decompose - d0, dec[k]);
                assert_int_equal(ev->n_moddown - m0, md[k]);
                for (int q = 0; q < 2; q++)
                    assert_memory_equal(ckks_ct_poly(o, q), ckks_ct_poly(out[k], q),
                                        (size_t)level * N * sizeof(uint64_t));
                tsr_ckks_ciphertext_free(o);
            }
            circuits_bsgs_free(&cut);
        }
}

static void double_hoisting_p(he *h, const size_t *idx, size_t nd, const size_t *n1s, size_t n_n1,
                              int level, const size_t *period) {
    const size_t S = h->slots;
    assert_int_equal(S, 1024);
    assert_true(nd <= 16);
    double *diag[16];
    for (size_t t = 0; t < nd; t++) { /* random, with period[t] (S if NULL) */
        const size_t per = period ? period[t] : S;
        diag[t] = rand_vec(h, 2 * S);
        for (size_t j = per; j < S; j++) {
            diag[t][2 * j] = diag[t][2 * (j % per)];
            diag[t][2 * j + 1] = diag[t][2 * (j % per) + 1];
        }
    }
    double *x = rand_vec(h, 2 * S), *want = calloc(2 * S, sizeof *want);
    double *got = malloc(2 * S * sizeof *got);
    assert_true(want && got);
    for (size_t t = 0; t < nd; t++)
        for (size_t j = 0; j < S; j++) {
            const double *d = diag[t] + 2 * j, *v = x + 2 * ((j + idx[t]) % S);
            want[2 * j] += d[0] * v[0] - d[1] * v[1];
            want[2 * j + 1] += d[0] * v[1] + d[1] * v[0];
        }
    for (size_t c = 0; c < n_n1; c++) {
        circuits_bsgs lt;
        tt_ok(circuits_bsgs_create(&lt, h->enc, h->p, idx, nd, S, n1s[c], cplx_diag, diag, level,
                                   tsr_ckks_params_scale(h->p, level)));
        size_t nb = 0, ng = 0;
        for (size_t b = 1; b < lt.n1; b++) {
            int used = 0;
            for (size_t t = 0; t < nd; t++) used |= idx[t] % lt.n1 == b;
            nb += (size_t)used;
        }
        for (size_t g = 1; g * lt.n1 < S; g++) {
            int used = 0;
            for (size_t t = 0; t < nd; t++) used |= idx[t] / lt.n1 == g;
            ng += (size_t)used;
        }
        tsr_ckks_galois_keys *gk;
        tt_ok(tsr_ckks_galois_keys_create(&gk, h->sk, lt.steps, lt.n_steps, 0));
        tsr_ckks_evaluator *ev;
        tt_ok(tsr_ckks_evaluator_create(&ev, h->p, NULL, gk));
        tt_ok(circuits_bsgs_check_keys(ev, &lt));
        tsr_ckks_ciphertext *in, *out[2];
        tt_ok(tsr_ckks_ciphertext_create(&in, h->p));
        tt_ok(tsr_ckks_encode_complex(h->enc, h->pt, x, S, level, 0));
        tt_ok(tsr_ckks_encrypt(h->pk, in, h->pt));
        if (lt.n_steps) qp_addends_exact(h, ev, in, level, lt.steps[0]);
        double bits[2];
        unsigned long dec[2], md[2];
        for (int k = 0; k < 2; k++) {
            tt_ok(tsr_ckks_ciphertext_create(&out[k], h->p));
            unsigned long d0 = ev->n_decompose, m0 = ev->n_moddown;
            if (k == 0)
                tt_ok(circuits_bsgs_apply(ev, out[k], in, &lt));
            else
                tt_ok(circuits_bsgs_apply_ref(ev, out[k], in, &lt));
            dec[k] = ev->n_decompose - d0;
            md[k] = ev->n_moddown - m0;
            assert_int_equal(tsr_ckks_ciphertext_level(out[k]), level - 1);
            double sc = tsr_ckks_ciphertext_scale(out[k]),
                   want_sc = tsr_ckks_params_scale(h->p, level - 1);
            assert_true(fabs(sc - want_sc) <= 1e-9 * want_sc);
            tt_ok(tsr_ckks_decrypt(h->sk, h->pt, out[k]));
            tt_ok(tsr_ckks_decode_complex(h->enc, h->pt, got, S, NULL));
            bits[k] = tt_precision_bits(got, want, 2 * S);
        }
        printf("level %d, n1 = %4zu (%zu babies, %zu giants): %.1f bits double-hoisted (%lu "
               "decompositions, %lu ModDowns), %.1f bits single (%lu, %lu)\n",
               level, lt.n1, nb, ng, bits[0], dec[0], md[0], bits[1], dec[1], md[1]);
        assert_true(bits[0] >= 24 && bits[1] >= 24);
        /* fewer ModDown roundings: double hoisting may only gain precision */
        assert_true(bits[0] >= bits[1] - 1.0);
        assert_int_equal(dec[0], (nb > 0) + ng);
        assert_int_equal(dec[1], (nb > 0) + ng);
        assert_int_equal(md[0], ng + 1);
        assert_int_equal(md[1], nb + ng);
        /* diagonals on the fly (kept as coefficients, N words each): bit-identical to the encoded
         * ones, both paths, and the same counts */
        /* diagonals on the fly (every one, then the subring mix: as coefficients those of
         * period <= S/32, the others encoded): bit-identical to the encoded ones, both paths,
         * the same counts, and the memory of what each keeps */
        const size_t limb_words = (size_t)(level + 1 + tsr_ckks_params_special_count(h->p)) * 2 * S;
        assert_int_equal(circuits_bsgs_bytes(&lt, h->p), nd * limb_words * 8);
        for (int store = CIRCUITS_DIAGS_ON_THE_FLY; store <= CIRCUITS_DIAGS_SUBRING; store++) {
            circuits_bsgs fly;
            tt_ok(circuits_bsgs_create_ex(&fly, h->enc, h->p, idx, nd, S, n1s[c], cplx_diag, diag,
                                          level, tsr_ckks_params_scale(h->p, level),
                                          (circuits_diag_store)store));
            assert_int_equal(fly.n1, lt.n1);
            size_t words = 0, n_fly = 0;
            for (size_t t = 0; t < nd; t++) {
                const size_t per = period ? period[t] : S;
                const int kept =
                    store == CIRCUITS_DIAGS_ON_THE_FLY || CIRCUITS_SUBRING_MIN_RATIO * per <= S;
                assert_true(kept == (fly.pt[t] == NULL));
                words += kept ? 2 * per : limb_words;
                n_fly += (size_t)kept;
            }
            assert_int_equal(fly.n_fly, n_fly);
            assert_int_equal(circuits_bsgs_bytes(&fly, h->p), words * 8);
            if (n_fly) {
                assert_non_null(fly.coef_i); /* integer coefficients: converted without rounding */
                assert_null(fly.coef);       /* nothing reads them as doubles */
#ifdef __GLIBC__
                /* the buffer holds just the coefficients (its growth's slack trimmed): at most
                 * malloc's rounding, a page for a large block */
                const size_t coef_bytes = fly.coef_off[nd] * sizeof *fly.coef_i;
                assert_true(malloc_usable_size(fly.coef_i) < coef_bytes + 4096 + 64);
#endif
            }
            if (store == CIRCUITS_DIAGS_ON_THE_FLY) subring_layout(h, &fly, diag, period);
            for (int k = 0; k < 2; k++) {
                tsr_ckks_ciphertext *o;
                tt_ok(tsr_ckks_ciphertext_create(&o, h->p));
                unsigned long d0 = ev->n_decompose, m0 = ev->n_moddown;
                if (k == 0)
                    tt_ok(circuits_bsgs_apply(ev, o, in, &fly));
                else
                    tt_ok(circuits_bsgs_apply_ref(ev, o, in, &fly));
                assert_int_equal(ev->n_decompose - d0, dec[k]);
                assert_int_equal(ev->n_moddown - m0, md[k]);
                assert_int_equal(tsr_ckks_ciphertext_level(o), level - 1);
                for (int q = 0; q < 2; q++) /* level limbs of N = 2S words each */
                    assert_memory_equal(ckks_ct_poly(o, q), ckks_ct_poly(out[k], q),
                                        (size_t)level * 2 * S * sizeof(uint64_t));
                tsr_ckks_ciphertext_free(o);
            }
            /* the on-the-fly limbs' scratch is the evaluator's, kept for the next transform */
            if (n_fly) {
                const uint64_t *kept = ev->lt_scratch;
                assert_non_null(kept);
                tsr_ckks_ciphertext *o;
                tt_ok(tsr_ckks_ciphertext_create(&o, h->p));
                tt_ok(circuits_bsgs_apply(ev, o, in, &fly));
                assert_ptr_equal(ev->lt_scratch, kept);
                tsr_ckks_ciphertext_free(o);
            }
            circuits_bsgs_free(&fly);
        }
        budget_cuts(h, ev, in, idx, nd, n1s[c], cplx_diag, diag, level, out, dec, md);
        for (int k = 0; k < 2; k++) tsr_ckks_ciphertext_free(out[k]);
        tsr_ckks_ciphertext_free(in);
        tsr_ckks_evaluator_free(ev);
        tsr_ckks_galois_keys_free(gk);
        circuits_bsgs_free(&lt);
    }
    for (size_t t = 0; t < nd; t++) free(diag[t]);
    free(x);
    free(want);
    free(got);
}

static void double_hoisting(he *h, const size_t *idx, size_t nd, const size_t *n1s, size_t n_n1,
                            int level) {
    double_hoisting_p(h, idx, nd, n1s, n_n1, level, NULL);
}

static void test_lt_double_hoisting(void **state) {
    he *h = *state;
    const int top = tsr_ckks_params_max_level(h->p);
    const size_t idx[] = { 0, 1, 2, 5, 9, 17, 30, 64, 100, 511, 1021 };
    const size_t n1s[] = { 0, 1, 8, 1024 };
    double_hoisting(h, idx, sizeof idx / sizeof idx[0], n1s, sizeof n1s / sizeof n1s[0], top);
    /* no diagonal in giant step 0 at n1 = 2 and 4: the first giant step's key switch goes
     * straight to the accumulator, with its c0 half (kept over Q_l u P) added on the way */
    const size_t idx2[] = { 5, 9, 100, 1021 };
    const size_t n1s2[] = { 2, 4 };
    double_hoisting(h, idx2, sizeof idx2 / sizeof idx2[0], n1s2, sizeof n1s2 / sizeof n1s2[0], top);
    /* two special primes, digits of two primes: a partial last digit one level down (5
     * limbs, 3 digits), a single digit at level 1 (2 limbs) */
    const size_t n1s3[] = { 8 };
    double_hoisting(h, idx, sizeof idx / sizeof idx[0], n1s3, 1, top - 1);
    double_hoisting(h, idx2, sizeof idx2 / sizeof idx2[0], n1s2, 1, 1);
}

/*
 * Diagonals with slot periods 1 to 1024 (bootstrapping's DFT factors have periods 32, 1024 and
 * the slot count): kept as 2p coefficients on the fly, the same words either way, the same
 * precision (double_hoisting's checks).
 */
static void test_lt_periodic(void **state) {
    he *h = *state;
    const int top = tsr_ckks_params_max_level(h->p);
    const size_t idx[] = { 0, 1, 2, 5, 9, 17, 30, 64, 100, 511, 1021 };
    const size_t per[] = { 1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024 };
    const size_t n1s[] = { 0, 8 };
    double_hoisting_p(h, idx, sizeof idx / sizeof idx[0], n1s, sizeof n1s / sizeof n1s[0], top,
                      per);
    const size_t per2[] = { 32, 1024, 32, 32, 1, 2, 32, 1024, 4, 2, 32 };
    double_hoisting_p(h, idx, sizeof idx / sizeof idx[0], n1s + 1, 1, 1, per2);
}

/* One special prime (digits of one prime each): the same checks at the top and one level down. */
/* N = 2^13 (two NTT blocks of TSR_NTT_SPLIT_BLOCK words), 2 levels, 1 special prime. */
static int he_setup_blocks(void **state) {
    return he_setup_ring(state, 13, 2, 1, 0);
}

/*
 * ckks_ks_apply_qp's shared last limb on a ring of several NTT blocks: where the threads do not
 * divide the l + 1 + k limbs, the last limb's blocks are dealt out; with one block (the rings
 * above) there is nothing to deal. qp_addends_exact's 1 / 2 / 3-thread word-for-word comparison
 * at levels 1 and 2 (3 and 4 limbs: odd for two threads at level 1, for three at level 2).
 */
static void test_qp_threads_blocks(void **state) {
    he *h = *state;
    assert_true(tsr_ntt_split_log(h->p->n) >= 1);
    const int step = 1;
    tsr_ckks_galois_keys *gk;
    tt_ok(tsr_ckks_galois_keys_create(&gk, h->sk, &step, 1, 0));
    tsr_ckks_evaluator *ev;
    tt_ok(tsr_ckks_evaluator_create(&ev, h->p, NULL, gk));
    tsr_ckks_ciphertext *in;
    tt_ok(tsr_ckks_ciphertext_create(&in, h->p));
    double *x = malloc(2 * h->slots * sizeof *x);
    assert_non_null(x);
    for (size_t j = 0; j < 2 * h->slots; j++) x[j] = tsr_prng_double(&h->g) - 0.5;
    for (int level = 1; level <= 2; level++) {
        tt_ok(tsr_ckks_encode_complex(h->enc, h->pt, x, h->slots, level, 0));
        tt_ok(tsr_ckks_encrypt(h->pk, in, h->pt));
        qp_addends_exact(h, ev, in, level, step);
    }
    free(x);
    tsr_ckks_ciphertext_free(in);
    tsr_ckks_evaluator_free(ev);
    tsr_ckks_galois_keys_free(gk);
}

static int he_setup_k1(void **state) {
    return he_setup_spec(state, 3, 1, 0);
}

static void test_lt_double_hoisting_k1(void **state) {
    he *h = *state;
    const int top = tsr_ckks_params_max_level(h->p);
    const size_t idx[] = { 0, 1, 2, 5, 9, 17, 30, 64, 100, 511, 1021 };
    const size_t n1s[] = { 0, 8 };
    double_hoisting(h, idx, sizeof idx / sizeof idx[0], n1s, sizeof n1s / sizeof n1s[0], top);
    const size_t idx2[] = { 5, 9, 100, 1021 };
    const size_t n1s2[] = { 4 };
    double_hoisting(h, idx2, sizeof idx2 / sizeof idx2[0], n1s2, 1, top - 1);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_lt_sparse, he_setup, he_teardown),
        cmocka_unit_test_setup_teardown(test_lt_dense, he_setup, he_teardown),
        cmocka_unit_test_setup_teardown(test_lt_errors, he_setup, he_teardown),
        cmocka_unit_test_setup_teardown(test_lt_double_hoisting, he_setup_digits, he_teardown),
        cmocka_unit_test_setup_teardown(test_lt_double_hoisting_k1, he_setup_k1, he_teardown),
        cmocka_unit_test_setup_teardown(test_qp_threads_blocks, he_setup_blocks, he_teardown),
        cmocka_unit_test_setup_teardown(test_lt_periodic, he_setup_digits, he_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
