/*
 * tests/test_ckks_lincomb.c - tsr_ckks_lincomb (many linear combinations of
 * ciphertexts with real constants): decrypted results against the plaintext
 * linear combination (precision in bits), bit-exact agreement between SIMD
 * kernel families, rows longer than a kernel group (64 terms), empty rows,
 * refusals (mixed levels, mixed sizes, oversized constants), and sums of
 * unrelinearized products (size 3) relinearized once per output.
 */
#include "testutil.h"

#include "tessera.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static void run(tsr_ckks_params *p, tsr_ckks_secret_key *sk, int n_in, int n_out, int dense,
                double min_bits, tsr_prng *g) {
    size_t slots = tsr_ckks_params_slots(p);
    int L = tsr_ckks_params_max_level(p);
    tsr_ckks_encoder *enc;
    tt_ok(tsr_ckks_encoder_create(&enc, p));
    double *x = malloc((size_t)n_in * slots * sizeof *x);
    tsr_ckks_ciphertext **in = calloc((size_t)n_in, sizeof *in);
    tsr_ckks_plaintext *pt;
    tt_ok(tsr_ckks_plaintext_create(&pt, p));
    for (int i = 0; i < n_in; i++) {
        for (size_t k = 0; k < slots; k++) x[(size_t)i * slots + k] = 2 * tsr_prng_double(g) - 1;
        tt_ok(tsr_ckks_encode_real(enc, pt, x + (size_t)i * slots, slots, L, 0));
        tt_ok(tsr_ckks_ciphertext_create(&in[i], p));
        tt_ok(tsr_ckks_encrypt_symmetric(sk, in[i], pt));
    }
    /* a random sparse (or dense) matrix with one empty row */
    int64_t *rp = calloc((size_t)n_out + 1, sizeof *rp);
    int64_t *cols = malloc((size_t)n_out * (size_t)n_in * sizeof *cols);
    double *vals = malloc((size_t)n_out * (size_t)n_in * sizeof *vals);
    int64_t nnz = 0;
    for (int j = 0; j < n_out; j++) {
        for (int i = 0; i < n_in && j != 1; i++) {
            if (!dense && tsr_prng_double(g) < 0.7) continue;
            cols[nnz] = i;
            vals[nnz++] = 0.5 * (2 * tsr_prng_double(g) - 1);
        }
        rp[j + 1] = nnz;
    }
    double cscale = tsr_ckks_params_scale(p, L - 1) * (double)tsr_ckks_params_prime(p, L) /
                    tsr_ckks_params_scale(p, L);
    tsr_ckks_ciphertext **out = calloc((size_t)n_out, sizeof *out),
                        **out2 = calloc((size_t)n_out, sizeof *out2);
    for (int j = 0; j < n_out; j++) {
        tt_ok(tsr_ckks_ciphertext_create(&out[j], p));
        tt_ok(tsr_ckks_ciphertext_create(&out2[j], p));
    }
    tt_ok(tsr_ckks_lincomb(out, (size_t)n_out, (const tsr_ckks_ciphertext *const *)in, (size_t)n_in,
                           rp, cols, vals, cscale));
    /* the portable kernels give exactly the same ciphertexts */
    tsr_simd was = tsr_simd_active();
    tt_ok(tsr_simd_force(TSR_SIMD_PORTABLE));
    tt_ok(tsr_ckks_lincomb(out2, (size_t)n_out, (const tsr_ckks_ciphertext *const *)in,
                           (size_t)n_in, rp, cols, vals, cscale));
    tt_ok(tsr_simd_force(was));
    tsr_ckks_evaluator *ev;
    tt_ok(tsr_ckks_evaluator_create(&ev, p, NULL, NULL));
    double *got = malloc(slots * sizeof *got), *want = malloc(slots * sizeof *want);
    for (int j = 0; j < n_out; j++) {
        uint8_t *b1, *b2;
        size_t l1, l2;
        tt_ok(tsr_ckks_ciphertext_to_bytes(out[j], &b1, &l1));
        tt_ok(tsr_ckks_ciphertext_to_bytes(out2[j], &b2, &l2));
        assert_int_equal(l1, l2);
        assert_memory_equal(b1, b2, l1);
        tsr_ckks_bytes_free(b1);
        tsr_ckks_bytes_free(b2);
        assert_int_equal(tsr_ckks_ciphertext_level(out[j]), L);
        tt_ok(tsr_ckks_rescale(ev, out[j], out[j]));
        assert_true(fabs(tsr_ckks_ciphertext_scale(out[j]) / tsr_ckks_params_scale(p, L - 1) - 1) <
                    1e-9);
        tt_ok(tsr_ckks_decrypt(sk, pt, out[j]));
        tt_ok(tsr_ckks_decode_real(enc, pt, got, slots, NULL));
        for (size_t k = 0; k < slots; k++) {
            double s = 0;
            for (int64_t t = rp[j]; t < rp[j + 1]; t++)
                s += vals[t] * x[(size_t)cols[t] * slots + k];
            want[k] = s;
        }
        double bits = tt_precision_bits(got, want, slots);
        /* fresh-encryption and rescale noise leave about scale_bits - 10 bits */
        if (bits < min_bits)
            fail_msg("row %d (%lld terms): %.1f bits", j, (long long)(rp[j + 1] - rp[j]), bits);
    }
    /* refusals: a rescaled input among fresh ones; constants beyond 62 bits */
    tsr_ckks_ciphertext *keep = in[0];
    in[0] = out[0];
    tt_fails(tsr_ckks_lincomb(out2, (size_t)n_out, (const tsr_ckks_ciphertext *const *)in,
                              (size_t)n_in, rp, cols, vals, cscale),
             TSR_ERR_INVALID_ARG);
    in[0] = keep;
    double big = vals[0];
    vals[0] = 1e30;
    tt_fails(tsr_ckks_lincomb(out2, (size_t)n_out, (const tsr_ckks_ciphertext *const *)in,
                              (size_t)n_in, rp, cols, vals, cscale),
             TSR_ERR_SCALE);
    vals[0] = big;
    for (int j = 0; j < n_out; j++) {
        tsr_ckks_ciphertext_free(out[j]);
        tsr_ckks_ciphertext_free(out2[j]);
    }
    for (int i = 0; i < n_in; i++) tsr_ckks_ciphertext_free(in[i]);
    free(out);
    free(out2);
    free(in);
    free(x);
    free(rp);
    free(cols);
    free(vals);
    free(got);
    free(want);
    tsr_ckks_evaluator_free(ev);
    tsr_ckks_plaintext_free(pt);
    tsr_ckks_encoder_free(enc);
}

static void test_lincomb(void **state) {
    (void)state;
    tsr_prng g;
    tt_prng(&g, 71);
    /* 50-bit primes (IFMA with frequent reductions) and 30-bit ones */
    const unsigned scales[2] = { 40, 30 };
    for (int s = 0; s < 2; s++) {
        tsr_ckks_param_spec spec = { .log_n = 10,
                                     .first_prime_bits = scales[s] + 10,
                                     .scale_bits = scales[s],
                                     .levels = 2,
                                     .special_primes = 1,
                                     .special_prime_bits = 50,
                                     .dnum = 0,
                                     .secret = TSR_CKKS_SECRET_TERNARY,
                                     .flags = TSR_CKKS_ALLOW_INSECURE_PARAMETERS };
        tsr_ckks_params *p;
        tt_ok(tsr_ckks_params_create(&p, &spec));
        tsr_ckks_secret_key *sk;
        tt_ok(tsr_ckks_secret_key_create(&sk, p));
        double min_bits = scales[s] - 14.0;
        run(p, sk, tt_sanitized() ? 70 : 150, 5, 1, min_bits, &g); /* rows longer than 64 terms */
        run(p, sk, 20, 9, 0, min_bits, &g);                        /* sparse rows */
        tsr_ckks_secret_key_free(sk);
        tsr_ckks_params_free(p);
    }
}

/* Sums of squares before relinearization: relinearize + rescale each output once. */
static void test_lincomb_size3(void **state) {
    (void)state;
    tsr_prng g;
    tt_prng(&g, 72);
    tsr_ckks_param_spec spec = { .log_n = 10,
                                 .first_prime_bits = 40,
                                 .scale_bits = 30,
                                 .levels = 3,
                                 .special_primes = 1,
                                 .special_prime_bits = 50,
                                 .dnum = 0,
                                 .secret = TSR_CKKS_SECRET_TERNARY,
                                 .flags = TSR_CKKS_ALLOW_INSECURE_PARAMETERS };
    tsr_ckks_params *p;
    tt_ok(tsr_ckks_params_create(&p, &spec));
    tsr_ckks_secret_key *sk;
    tt_ok(tsr_ckks_secret_key_create(&sk, p));
    tsr_ckks_relin_key *rk;
    tt_ok(tsr_ckks_relin_key_create(&rk, sk));
    tsr_ckks_evaluator *ev;
    tt_ok(tsr_ckks_evaluator_create(&ev, p, rk, NULL));
    tsr_ckks_encoder *enc;
    tt_ok(tsr_ckks_encoder_create(&enc, p));
    tsr_ckks_plaintext *pt;
    tt_ok(tsr_ckks_plaintext_create(&pt, p));
    size_t slots = tsr_ckks_params_slots(p);
    int L = tsr_ckks_params_max_level(p), n_in = 12, n_out = 3;
    double *x = malloc((size_t)n_in * slots * sizeof *x);
    tsr_ckks_ciphertext *in[12], *sq[12], *out[3];
    for (int i = 0; i < n_in; i++) {
        for (size_t k = 0; k < slots; k++) x[(size_t)i * slots + k] = 2 * tsr_prng_double(&g) - 1;
        tt_ok(tsr_ckks_encode_real(enc, pt, x + (size_t)i * slots, slots, L, 0));
        tt_ok(tsr_ckks_ciphertext_create(&in[i], p));
        tt_ok(tsr_ckks_encrypt_symmetric(sk, in[i], pt));
        tt_ok(tsr_ckks_ciphertext_create(&sq[i], p));
        tt_ok(tsr_ckks_mul(ev, sq[i], in[i], in[i]));
        assert_int_equal(tsr_ckks_ciphertext_size(sq[i]), 3);
    }
    int64_t rp[4] = { 0, 12, 16, 16 }, cols[16];
    double vals[16];
    for (int k = 0; k < 16; k++) {
        cols[k] = k < 12 ? k : 2 * (k - 12);
        vals[k] = 0.3 * (2 * tsr_prng_double(&g) - 1);
    }
    double s2 = tsr_ckks_ciphertext_scale(sq[0]);
    double cscale = tsr_ckks_params_scale(p, L - 2) * (double)tsr_ckks_params_prime(p, L - 1) *
                    (double)tsr_ckks_params_prime(p, L) / s2;
    for (int j = 0; j < n_out; j++) tt_ok(tsr_ckks_ciphertext_create(&out[j], p));
    /* a size-2 input among size-3 ones is refused */
    tsr_ckks_ciphertext *keep = sq[1];
    sq[1] = in[1];
    tt_fails(tsr_ckks_lincomb(out, 3, (const tsr_ckks_ciphertext *const *)sq, 12, rp, cols, vals,
                              cscale),
             TSR_ERR_INVALID_ARG);
    sq[1] = keep;
    tt_ok(tsr_ckks_lincomb(out, 3, (const tsr_ckks_ciphertext *const *)sq, 12, rp, cols, vals,
                           cscale));
    double *got = malloc(slots * sizeof *got), *want = malloc(slots * sizeof *want);
    for (int j = 0; j < n_out; j++) {
        assert_int_equal(tsr_ckks_ciphertext_size(out[j]), 3);
        tt_ok(tsr_ckks_relinearize(ev, out[j], out[j]));
        tt_ok(tsr_ckks_rescale(ev, out[j], out[j]));
        tt_ok(tsr_ckks_rescale(ev, out[j], out[j]));
        assert_int_equal(tsr_ckks_ciphertext_level(out[j]), L - 2);
        assert_true(fabs(tsr_ckks_ciphertext_scale(out[j]) / tsr_ckks_params_scale(p, L - 2) - 1) <
                    1e-9);
        tt_ok(tsr_ckks_decrypt(sk, pt, out[j]));
        tt_ok(tsr_ckks_decode_real(enc, pt, got, slots, NULL));
        for (size_t k = 0; k < slots; k++) {
            double s = 0;
            for (int64_t t = rp[j]; t < rp[j + 1]; t++) {
                double v = x[(size_t)cols[t] * slots + k];
                s += vals[t] * v * v;
            }
            want[k] = s;
        }
        double bits = tt_precision_bits(got, want, slots);
        if (bits < 16) fail_msg("sum of squares, row %d: %.1f bits", j, bits);
    }
    for (int i = 0; i < n_in; i++) {
        tsr_ckks_ciphertext_free(in[i]);
        tsr_ckks_ciphertext_free(sq[i]);
    }
    for (int j = 0; j < n_out; j++) tsr_ckks_ciphertext_free(out[j]);
    free(x);
    free(got);
    free(want);
    tsr_ckks_plaintext_free(pt);
    tsr_ckks_encoder_free(enc);
    tsr_ckks_evaluator_free(ev);
    tsr_ckks_relin_key_free(rk);
    tsr_ckks_secret_key_free(sk);
    tsr_ckks_params_free(p);
}

int main(void) {
    const struct CMUnitTest tests[] = { cmocka_unit_test(test_lincomb),
                                        cmocka_unit_test(test_lincomb_size3) };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
