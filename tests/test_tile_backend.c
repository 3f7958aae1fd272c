/*
 * tests/test_tile_backend.c - the backend interface on the mockup: levels
 * and scales tracked like CKKS, refusals (depth, keys, scales, overflow),
 * operation counts by kind, rotation-step collection, shape-only dry runs
 * and the noise model; bootstrapping on the mockup and on ckks (through the
 * debug backend, on a small insecure ring).
 */
#include "boot_check.h"
#include "tile_check.h"

#include "tile/backend.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define SLOTS 16

static tsr_bvec *enc(tsr_backend *be, const double *x, int level) {
    tsr_bvec *v = NULL;
    tt_ok(tsr_bvec_encrypt(be, x, level, tsr_backend_default_scale(be), &v));
    return v;
}

static void dec(tsr_backend *be, const tsr_bvec *v, double *out) {
    tt_ok(tsr_bvec_decrypt(be, v, out));
}

static void test_arith_levels_scales(void **state) {
    (void)state;
    tsr_backend *be = tc_mockup(SLOTS, 3);
    assert_string_equal(tsr_backend_name(be), "mockup");
    assert_int_equal(tsr_backend_slots(be), SLOTS);
    assert_int_equal(tsr_backend_top_level(be), 3);
    double x[SLOTS], y[SLOTS], z[SLOTS];
    for (int i = 0; i < SLOTS; i++) {
        x[i] = 0.1 * i - 0.7;
        y[i] = 0.05 * i + 0.3;
    }
    tsr_bvec *a = enc(be, x, 3), *b = enc(be, y, 3);
    double s0 = a->scale;
    assert_true(s0 == ldexp(1, 40));
    tt_ok(tsr_bvec_add(be, a, b));
    dec(be, a, z);
    for (int i = 0; i < SLOTS; i++) assert_true(fabs(z[i] - (x[i] + y[i])) < 1e-12);
    tt_ok(tsr_bvec_sub(be, a, b));
    tt_ok(tsr_bvec_mul(be, a, b));
    assert_true(a->scale == s0 * s0);
    /* Adding an unrescaled product to a fresh vector: scales differ. */
    tt_fails(tsr_bvec_add(be, a, b), TSR_ERR_SCALE);
    tt_ok(tsr_bvec_rescale(be, a));
    assert_int_equal(a->level, 2);
    assert_true(a->scale == s0 * s0 / tsr_backend_prime(be, 3));
    /* The primes are not powers of two: the scale drifted a little. */
    assert_true(a->scale != s0 && fabs(a->scale / s0 - 1) < 1e-4);
    dec(be, a, z);
    for (int i = 0; i < SLOTS; i++) assert_true(fabs(z[i] - x[i] * y[i]) < 1e-12);
    /* Levels must match. */
    tt_fails(tsr_bvec_add(be, a, b), TSR_ERR_LEVEL);
    tt_fails(tsr_bvec_mul(be, a, b), TSR_ERR_LEVEL);
    tt_ok(tsr_bvec_drop_level(be, b, 2));
    tt_fails(tsr_bvec_drop_level(be, b, 3), TSR_ERR_LEVEL);
    /* A dropped vector keeps its scale, which is not the canonical one of level 2. */
    assert_true(fabs(a->scale / tsr_backend_scale(be, 2) - 1) < 1e-15);
    tt_fails(tsr_bvec_add(be, a, b), TSR_ERR_SCALE);
    tsr_bvec *b2;
    tt_ok(tsr_bvec_encrypt(be, y, 2, tsr_backend_scale(be, 2), &b2));
    tt_ok(tsr_bvec_add(be, a, b2));
    tsr_bvec_free(be, b2);
    /* Scalar product keeping the scale, then exhaust the depth. */
    tt_ok(tsr_bvec_mul_const(be, a, 0.5, tsr_backend_prime(be, 2)));
    tt_ok(tsr_bvec_rescale(be, a));
    tt_ok(tsr_bvec_mul_const(be, a, 2.0, tsr_backend_prime(be, 1)));
    tt_ok(tsr_bvec_rescale(be, a));
    assert_int_equal(a->level, 0);
    tsr_bvec *c;
    tt_ok(tsr_bvec_copy(be, a, &c));
    tt_fails(tsr_bvec_mul(be, a, c), TSR_ERR_LEVEL);
    tt_fails(tsr_bvec_rescale(be, a), TSR_ERR_LEVEL);
    tt_fails(tsr_bvec_mul_const(be, a, 3.5, tsr_backend_prime(be, 1)), TSR_ERR_LEVEL);
    /* Integer constants need no scale. */
    tt_ok(tsr_bvec_mul_const(be, a, 3.0, 1.0));
    /* Rescaling a vector that was not multiplied is refused. */
    tsr_bvec *f = enc(be, x, 3);
    tt_fails(tsr_bvec_rescale(be, f), TSR_ERR_SCALE);
    /* Plaintexts: level must match the ciphertext's. */
    tsr_bvec *p;
    tt_ok(tsr_bvec_encode(be, y, 2, tsr_backend_prime(be, 3), &p));
    tt_fails(tsr_bvec_mul(be, f, p), TSR_ERR_LEVEL);
    tt_fails(tsr_bvec_add(be, p, f), TSR_ERR_INVALID_ARG);
    tt_ok(tsr_bvec_drop_level(be, p, 2));
    tt_ok(tsr_bvec_drop_level(be, f, 2));
    tt_ok(tsr_bvec_mul(be, f, p));
    tt_ok(tsr_bvec_rescale(be, f));
    dec(be, f, z);
    for (int i = 0; i < SLOTS; i++) assert_true(fabs(z[i] - x[i] * y[i]) < 1e-12);
    /* Encrypting at an impossible level or scale. */
    tsr_bvec *bad;
    tt_fails(tsr_bvec_encrypt(be, x, 4, ldexp(1, 40), &bad), TSR_ERR_LEVEL);
    tt_fails(tsr_bvec_encrypt(be, x, 0, ldexp(1, 70), &bad), TSR_ERR_SCALE);
    tsr_bvec_free(be, a);
    tsr_bvec_free(be, b);
    tsr_bvec_free(be, c);
    tsr_bvec_free(be, f);
    tsr_bvec_free(be, p);
    tsr_bvec_free(be, NULL);
    tsr_backend_free(be);
    tsr_backend_free(NULL);
}

static void test_overflow(void **state) {
    (void)state;
    tsr_backend *be = tc_mockup(SLOTS, 2);
    double x[SLOTS];
    for (int i = 0; i < SLOTS; i++) x[i] = 1e15;
    tsr_bvec *a = enc(be, x, 2), *b = enc(be, x, 2);
    /* 10^30 * 2^80 > Q_2 ~ 2^140 / 2: the product would wrap around. */
    tt_fails(tsr_bvec_mul(be, a, b), TSR_ERR_SCALE);
    /* At level 0, 10^12 * 2^40 does not fit 2^60. */
    tsr_bvec *c;
    tt_fails(tsr_bvec_encrypt(be, (double[SLOTS]){ [3] = 1e12 }, 0, ldexp(1, 40), &c),
             TSR_ERR_SCALE);
    /* A NaN anywhere is refused, also when finite values follow it. */
    double nan_first[SLOTS] = { 0.5, NAN, 0.25 };
    tt_fails(tsr_bvec_encrypt(be, nan_first, 2, tsr_backend_default_scale(be), &c), TSR_ERR_SCALE);
    double nan_last[SLOTS] = { [SLOTS - 1] = NAN };
    tt_fails(tsr_bvec_encrypt(be, nan_last, 2, tsr_backend_default_scale(be), &c), TSR_ERR_SCALE);
    tsr_bvec_free(be, a);
    tsr_bvec_free(be, b);
    tsr_backend_free(be);
}

static void test_rotations(void **state) {
    (void)state;
    tsr_backend *be = tc_mockup(SLOTS, 1);
    double x[SLOTS], z[SLOTS];
    for (int i = 0; i < SLOTS; i++) x[i] = i;
    tsr_bvec *a = enc(be, x, 1), *r = NULL;
    tt_fails(tsr_bvec_rotate(be, a, 3, &r), TSR_ERR_KEY_MISSING);
    assert_null(r);
    int64_t steps[] = { 3, -2, 16, 19 };
    tt_ok(tsr_backend_declare_rotations(be, steps, 4));
    int64_t got[8];
    assert_int_equal(tsr_backend_declared_rotations(be, got, 8), 2);
    assert_int_equal(got[0], 3);
    assert_int_equal(got[1], 14);
    tt_ok(tsr_bvec_rotate(be, a, 3, &r));
    dec(be, r, z);
    for (int i = 0; i < SLOTS; i++) assert_true(z[i] == x[(i + 3) % SLOTS]);
    tsr_bvec_free(be, r);
    tt_ok(tsr_bvec_rotate(be, a, -2, &r));
    dec(be, r, z);
    for (int i = 0; i < SLOTS; i++) assert_true(z[i] == x[(i + 14) % SLOTS]);
    tsr_bvec_free(be, r);
    /* Step 0 (and multiples of slots) is a copy, no key needed. */
    tt_ok(tsr_bvec_rotate(be, a, 32, &r));
    dec(be, r, z);
    assert_memory_equal(z, x, sizeof x);
    tsr_bvec_free(be, r);
    /* Hoisted group: all or nothing. */
    tsr_bvec *outs[3];
    int64_t hs[3] = { 3, 5, 14 };
    tt_fails(tsr_bvec_rotate_many(be, a, hs, 3, outs), TSR_ERR_KEY_MISSING);
    assert_null(outs[0]);
    hs[1] = 0;
    tsr_backend_counts cnt;
    tsr_backend_reset_counts(be);
    tt_ok(tsr_bvec_rotate_many(be, a, hs, 3, outs));
    tsr_backend_get_counts(be, &cnt);
    assert_int_equal(cnt.rotations, 2);
    assert_int_equal(cnt.hoisted, 1);
    assert_int_equal(cnt.key_switch, 2);
    for (int k = 0; k < 3; k++) {
        dec(be, outs[k], z);
        for (int i = 0; i < SLOTS; i++) assert_true(z[i] == x[(i + hs[k]) % SLOTS]);
        tsr_bvec_free(be, outs[k]);
    }
    assert_int_equal(tsr_backend_used_rotations(be, got, 8), 2);
    /* Collecting policy: anything goes and is recorded. */
    tsr_backend_reset_counts(be);
    assert_int_equal(tsr_backend_used_rotations(be, NULL, 0), 0);
    tsr_backend_set_rotation_policy(be, TSR_ROTATIONS_COLLECT);
    tt_ok(tsr_bvec_rotate(be, a, 7, &r));
    tsr_bvec_free(be, r);
    tt_ok(tsr_bvec_rotate(be, a, -1, &r));
    tsr_bvec_free(be, r);
    assert_int_equal(tsr_backend_used_rotations(be, got, 8), 2);
    assert_int_equal(got[0], 7);
    assert_int_equal(got[1], 15);
    tsr_bvec_free(be, a);
    tsr_backend_free(be);
}

/* A scripted sequence with every kind counted; shape-only gives the same counts. */
static void run_script(tsr_backend *be, tsr_backend_counts *cnt) {
    double x[SLOTS] = { 1, 2, 3 };
    tsr_backend_reset_counts(be);
    tsr_bvec *a, *b, *p, *r;
    tt_ok(tsr_bvec_encrypt(be, x, 3, ldexp(1, 40), &a));
    tt_ok(tsr_bvec_encrypt(be, x, 3, ldexp(1, 40), &b));
    tt_ok(tsr_bvec_encode(be, x, 3, tsr_backend_prime(be, 3), &p));
    tt_ok(tsr_bvec_add(be, a, b));
    tt_ok(tsr_bvec_add_const(be, a, 1.5));
    tt_ok(tsr_bvec_mul(be, a, b));
    tt_ok(tsr_bvec_rescale(be, a));
    tt_ok(tsr_bvec_mul(be, b, p));
    tt_ok(tsr_bvec_rescale(be, b));
    tt_ok(tsr_bvec_mul_const(be, b, 0.25, tsr_backend_prime(be, 2)));
    tt_ok(tsr_bvec_rescale(be, b));
    tt_ok(tsr_bvec_drop_level(be, a, 1));
    tt_ok(tsr_bvec_rotate(be, a, 1, &r));
    tsr_backend_get_counts(be, cnt);
    tsr_bvec_free(be, a);
    tsr_bvec_free(be, b);
    tsr_bvec_free(be, p);
    tsr_bvec_free(be, r);
}

static void test_counts_and_dry_run(void **state) {
    (void)state;
    tsr_backend *be = tc_mockup(SLOTS, 3);
    int64_t one = 1;
    tt_ok(tsr_backend_declare_rotations(be, &one, 1));
    tsr_backend_counts c;
    run_script(be, &c);
    assert_int_equal(c.encrypt, 2);
    assert_int_equal(c.encode, 1);
    assert_int_equal(c.add, 2);
    assert_int_equal(c.mul_ct, 1);
    assert_int_equal(c.mul_plain, 1);
    assert_int_equal(c.mul_const, 1);
    assert_int_equal(c.rescale, 3);
    assert_int_equal(c.drop_level, 1);
    assert_int_equal(c.rotations, 1);
    assert_int_equal(c.key_switch, 2);
    assert_int_equal(c.min_level, 1);
    assert_int_equal(tsr_backend_depth_used(be), 2);
    assert_int_equal(c.peak_vectors, 4);
    FILE *devnull = fopen("/dev/null", "w");
    tsr_backend_print_counts(be, devnull);
    fclose(devnull);

    tsr_mockup_params mp;
    tsr_mockup_params_default(&mp, SLOTS, 3);
    mp.track_values = 0;
    mp.rotations = TSR_ROTATIONS_COLLECT;
    tsr_backend *dry;
    tt_ok(tsr_backend_mockup_create(&mp, &dry));
    tsr_backend_counts d;
    run_script(dry, &d);
    assert_int_equal(c.rotations, d.rotations);
    assert_int_equal(c.hoisted, d.hoisted);
    assert_int_equal(c.mul_ct, d.mul_ct);
    assert_int_equal(c.mul_plain, d.mul_plain);
    assert_int_equal(c.mul_const, d.mul_const);
    assert_int_equal(c.add, d.add);
    assert_int_equal(c.rescale, d.rescale);
    assert_int_equal(c.drop_level, d.drop_level);
    assert_int_equal(c.key_switch, d.key_switch);
    assert_int_equal(c.encode, d.encode);
    assert_int_equal(c.encrypt, d.encrypt);
    assert_int_equal(c.min_level, d.min_level);
    assert_int_equal(c.peak_vectors, d.peak_vectors);
    int64_t used[4];
    assert_int_equal(tsr_backend_used_rotations(dry, used, 4), 1);
    assert_int_equal(used[0], 1);
    /* A shape-only backend cannot decrypt. */
    tsr_bvec *v;
    double z[SLOTS];
    tt_ok(tsr_bvec_encrypt(dry, NULL, 3, ldexp(1, 40), &v));
    tt_fails(tsr_bvec_decrypt(dry, v, z), TSR_ERR_UNSUPPORTED);
    tsr_bvec_free(dry, v);
    tsr_backend_free(dry);
    tsr_backend_free(be);
}

/* Memory in limbs: a vector counts polynomials x (level + 1) when made; a square-and-sum
 * counts what the fused CKKS form holds (every square and output at 3 polynomials). */
static void test_limb_counts(void **state) {
    (void)state;
    tsr_backend *be = tc_mockup(SLOTS, 3);
    double x[SLOTS];
    for (int i = 0; i < SLOTS; i++) x[i] = 0.01 * i;
    tsr_backend_reset_counts(be);
    tsr_bvec *a = enc(be, x, 3), *b = enc(be, x, 2), *p;
    tt_ok(tsr_bvec_encode(be, x, 1, ldexp(1, 30), &p));
    tsr_backend_counts c;
    tsr_backend_get_counts(be, &c);
    assert_int_equal(c.live_limbs, 2 * 4 + 2 * 3 + 1 * 2);
    assert_int_equal(c.peak_limbs, c.live_limbs);
    tsr_bvec_free(be, p);
    tsr_bvec_free(be, b);
    tsr_backend_get_counts(be, &c);
    assert_int_equal(c.live_limbs, 8);
    assert_int_equal(c.peak_limbs, 16);
    /* two inputs at level 3, three outputs */
    tsr_bvec *ins[2] = { a, NULL }, *outs[3];
    tt_ok(tsr_bvec_copy(be, a, &ins[1]));
    tsr_backend_reset_counts(be);
    const int64_t rp[4] = { 0, 1, 2, 4 }, cols[4] = { 0, 1, 0, 1 };
    const double vals[4] = { 0.5, -0.25, 1, 2 };
    tt_ok(tsr_bvec_sq_lincomb(be, outs, 3, (const tsr_bvec *const *)ins, 2, rp, cols, vals,
                              ldexp(1, 20)));
    tsr_backend_get_counts(be, &c);
    assert_int_equal(c.live_limbs, 2 * 8 + 3 * 2 * 3); /* inputs, outputs at level 2 */
    assert_int_equal(c.peak_limbs, 2 * 8 + 3 * 4 * 5); /* inputs + 5 temporaries of 3 x 4 */
    for (int j = 0; j < 3; j++) tsr_bvec_free(be, outs[j]);
    tsr_bvec_free(be, ins[1]);
    tsr_bvec_free(be, a);
    tsr_backend_get_counts(be, &c);
    assert_int_equal(c.live_limbs, 0);
    tsr_backend_free(be);
}

/* Sums of products (contract steps): on the mockup (the generic path) the values, the
 * counts and limbs of the fused form, an empty row, operands at one level with different
 * scales, and the refusals. */
static void test_prod_lincomb(void **state) {
    (void)state;
    tsr_backend *be = tc_mockup(SLOTS, 3);
    double x[SLOTS], y[SLOTS], z[SLOTS];
    for (int i = 0; i < SLOTS; i++) {
        x[i] = 0.01 * i;
        y[i] = 0.5 - 0.02 * i;
    }
    double sd = tsr_backend_default_scale(be);
    tsr_bvec *a[2] = { enc(be, x, 3), enc(be, y, 3) }, *b[1], *outs[3];
    /* b at the same level, twice the scale (as par_mul's operands may be) */
    tt_ok(tsr_bvec_encrypt(be, y, 3, 2 * sd, &b[0]));
    tsr_backend_reset_counts(be);
    const int64_t rp[4] = { 0, 2, 2, 3 }, ia[3] = { 0, 1, 1 }, ib[3] = { 0, 0, 0 };
    const double vals[3] = { 0.5, -0.25, 2 };
    tt_ok(tsr_bvec_prod_lincomb(be, outs, 3, (const tsr_bvec *const *)a, 2,
                                (const tsr_bvec *const *)b, 1, rp, ia, ib, vals, ldexp(1, 20)));
    tsr_backend_counts c;
    tsr_backend_get_counts(be, &c);
    assert_int_equal(c.mul_ct, 3);
    assert_int_equal(c.key_switch, 3);
    assert_int_equal(c.rescale, 3);
    assert_int_equal(c.mul_const, 3); /* nonzero terms */
    assert_int_equal(c.add, 1);
    assert_int_equal(c.live_limbs, 3 * 2 * 4 + 3 * 2 * 3); /* inputs, outputs at level 2 */
    /* inputs + (2 threads x widest row 2 + 3 outputs) x 3 polynomials x 4 limbs */
    assert_int_equal(c.peak_limbs, 3 * 2 * 4 + (TSR_PROD_LINCOMB_THREADS * 2 + 3) * 3 * 4);
    for (int j = 0; j < 3; j++) {
        assert_int_equal(outs[j]->level, 2);
        /* the product scale s_a s_b / q_3 times cscale (rounded as the generic lincomb does) */
        assert_true(fabs(outs[j]->scale / (sd * 2 * sd / be->primes[3] * ldexp(1, 20)) - 1) < 1e-5);
        dec(be, outs[j], z);
        for (int i = 0; i < SLOTS; i++) {
            double want = j == 0   ? 0.5 * x[i] * y[i] - 0.25 * y[i] * y[i]
                          : j == 1 ? 0.0
                                   : 2 * y[i] * y[i];
            assert_true(fabs(z[i] - want) < 1e-6);
        }
        tsr_bvec_free(be, outs[j]);
    }
    /* refusals: a term out of range, a decreasing row, level 0, a's at two scales */
    const int64_t bad_ia[3] = { 0, 2, 1 }, bad_ib[3] = { 0, 0, 1 }, dec_rp[4] = { 0, 2, 1, 3 };
    const tsr_bvec *const *ca = (const tsr_bvec *const *)a, *const *cb = (const tsr_bvec *const *)b;
    tt_fails(tsr_bvec_prod_lincomb(be, outs, 3, ca, 2, cb, 1, rp, bad_ia, ib, vals, 1.0),
             TSR_ERR_INVALID_ARG);
    tt_fails(tsr_bvec_prod_lincomb(be, outs, 3, ca, 2, cb, 1, rp, ia, bad_ib, vals, 1.0),
             TSR_ERR_INVALID_ARG);
    tt_fails(tsr_bvec_prod_lincomb(be, outs, 3, ca, 2, cb, 1, dec_rp, ia, ib, vals, 1.0),
             TSR_ERR_INVALID_ARG);
    tt_fails(tsr_bvec_prod_lincomb(be, outs, 3, ca, 2, cb, 0, rp, ia, ib, vals, 1.0),
             TSR_ERR_INVALID_ARG);
    for (int j = 0; j < 3; j++) assert_null(outs[j]);
    tsr_bvec *a2[2] = { a[0], b[0] }; /* the a's at two scales */
    tt_fails(tsr_bvec_prod_lincomb(be, outs, 3, (const tsr_bvec *const *)a2, 2, cb, 1, rp, ia, ib,
                                   vals, 1.0),
             TSR_ERR_SCALE);
    tsr_bvec *lo;
    tt_ok(tsr_bvec_encrypt(be, x, 2, sd, &lo));
    tsr_bvec *a3[2] = { a[0], lo }; /* two levels */
    tt_fails(tsr_bvec_prod_lincomb(be, outs, 3, (const tsr_bvec *const *)a3, 2, cb, 1, rp, ia, ib,
                                   vals, 1.0),
             TSR_ERR_LEVEL);
    tsr_bvec_free(be, lo);
    tsr_bvec *z0[1];
    tt_ok(tsr_bvec_encrypt(be, x, 0, sd, &z0[0]));
    tt_fails(tsr_bvec_prod_lincomb(be, outs, 1, (const tsr_bvec *const *)z0, 1,
                                   (const tsr_bvec *const *)z0, 1, rp, ia, ib, vals, 1.0),
             TSR_ERR_LEVEL);
    tsr_bvec_free(be, z0[0]);
    for (int i = 0; i < 2; i++) tsr_bvec_free(be, a[i]);
    tsr_bvec_free(be, b[0]);
    tsr_backend_free(be);
}

/* The fused ckks prod_lincomb kernel against the generic path (products, rescales, one
 * lincomb per output) on the same small insecure ring: both within 2^-20 of the exact
 * sums and of each other. */
static void test_prod_lincomb_ckks(void **state) {
    (void)state;
    tsr_ckks_param_spec spec = { .log_n = 10,
                                 .first_prime_bits = 60,
                                 .scale_bits = 40,
                                 .levels = 3,
                                 .special_primes = 1,
                                 .special_prime_bits = 61,
                                 .flags = TSR_CKKS_ALLOW_INSECURE_PARAMETERS };
    tsr_ckks_params *p;
    tsr_ckks_secret_key *sk;
    tsr_ckks_public_key *pk;
    tsr_ckks_relin_key *rk;
    tt_ok(tsr_ckks_params_create(&p, &spec));
    tt_ok(tsr_ckks_secret_key_create(&sk, p));
    tt_ok(tsr_ckks_public_key_create(&pk, sk));
    tt_ok(tsr_ckks_relin_key_create(&rk, sk));
    tsr_backend *be;
    tt_ok(tsr_backend_ckks_create(p, pk, sk, rk, NULL, &be));
    int64_t slots = tsr_backend_slots(be);
    double *x = malloc(5 * (size_t)slots * sizeof *x);
    assert_non_null(x);
    tsr_prng g;
    tt_prng(&g, 13);
    tc_random_dense(&g, x, 4 * (size_t)slots, -1, 1);
    double *z = x + 4 * slots, sd = tsr_backend_default_scale(be);
    tsr_bvec *a[2], *b[2], *fused[3], *gen[3];
    for (int i = 0; i < 2; i++) {
        tt_ok(tsr_bvec_encrypt(be, x + i * slots, 3, sd, &a[i]));
        tt_ok(tsr_bvec_encrypt(be, x + (2 + i) * slots, 3, 2 * sd, &b[i]));
    }
    const int64_t rp[4] = { 0, 3, 3, 5 }, ia[5] = { 0, 1, 1, 0, 1 }, ib[5] = { 0, 1, 0, 1, 1 };
    const double vals[5] = { 0.5, -0.25, 0.75, 1, -1 }, cs = ldexp(1, 20);
    tt_ok(tsr_bvec_prod_lincomb(be, fused, 3, (const tsr_bvec *const *)a, 2,
                                (const tsr_bvec *const *)b, 2, rp, ia, ib, vals, cs));
    double worst = 0;
    for (int j = 0; j < 3; j++) {
        int64_t nk = rp[j + 1] - rp[j], cols[3] = { 0, 1, 2 }, r1[2] = { 0, nk };
        tsr_bvec *pr[3];
        for (int64_t k = 0; k < nk; k++) {
            tt_ok(tsr_bvec_mul_new(be, a[ia[rp[j] + k]], b[ib[rp[j] + k]], &pr[k]));
            tt_ok(tsr_bvec_rescale(be, pr[k]));
        }
        double *want = malloc((size_t)slots * sizeof *want);
        assert_non_null(want);
        for (int64_t i = 0; i < slots; i++) {
            want[i] = 0;
            for (int64_t k = rp[j]; k < rp[j + 1]; k++)
                want[i] += vals[k] * x[ia[k] * slots + i] * x[(2 + ib[k]) * slots + i];
        }
        dec(be, fused[j], z);
        assert_int_equal(fused[j]->level, 2);
        if (nk) {
            tt_ok(tsr_bvec_lincomb(be, &gen[j], 1, (const tsr_bvec *const *)pr, (size_t)nk, r1,
                                   cols, vals + rp[j], cs));
            assert_int_equal(gen[j]->level, fused[j]->level);
            assert_true(fabs(gen[j]->scale / fused[j]->scale - 1) < 1e-9);
            double *g2 = malloc((size_t)slots * sizeof *g2);
            assert_non_null(g2);
            dec(be, gen[j], g2);
            for (int64_t i = 0; i < slots; i++) {
                worst = fmax(worst, fabs(z[i] - want[i]));
                worst = fmax(worst, fabs(g2[i] - want[i]));
                worst = fmax(worst, fabs(g2[i] - z[i]));
            }
            free(g2);
            tsr_bvec_free(be, gen[j]);
        } else {
            for (int64_t i = 0; i < slots; i++) worst = fmax(worst, fabs(z[i]));
        }
        free(want);
        for (int64_t k = 0; k < nk; k++) tsr_bvec_free(be, pr[k]);
        tsr_bvec_free(be, fused[j]);
    }
    print_message("# prod_lincomb ckks fused vs generic vs exact: worst 2^%.1f\n", log2(worst));
    assert_true(worst < ldexp(1, -20));
    for (int i = 0; i < 2; i++) {
        tsr_bvec_free(be, a[i]);
        tsr_bvec_free(be, b[i]);
    }
    free(x);
    tsr_backend_free(be);
    tsr_ckks_relin_key_free(rk);
    tsr_ckks_public_key_free(pk);
    tsr_ckks_secret_key_free(sk);
    tsr_ckks_params_free(p);
}

/* Errors of fresh encryptions and rescales match the documented model. */
static void test_noise_model(void **state) {
    (void)state;
    int64_t slots = 4096;
    tsr_mockup_params mp;
    tsr_mockup_params_default(&mp, slots, 2);
    mp.noise = 1;
    mp.scale_bits = 30;
    mp.seed = 7;
    tsr_backend *be;
    tt_ok(tsr_backend_mockup_create(&mp, &be));
    double *x = calloc((size_t)slots, sizeof *x), *z = calloc((size_t)slots, sizeof *z);
    tsr_prng g;
    tt_prng(&g, 3);
    tc_random_dense(&g, x, (size_t)slots, -1, 1);
    tsr_bvec *a;
    tt_ok(tsr_bvec_encrypt(be, x, 2, ldexp(1, 30), &a));
    dec(be, a, z);
    double N = 2.0 * slots, var = 0;
    for (int64_t i = 0; i < slots; i++) var += (z[i] - x[i]) * (z[i] - x[i]);
    /* Fresh noise: the rounding of the division by P (as the CKKS core encrypts). */
    double sd = sqrt(var / slots) * ldexp(1, 30), want = sqrt(N / 2 * (1 + 2 * N / 3) / 12);
    assert_true(sd > 0.9 * want && sd < 1.1 * want);
    /* A product of fresh vectors: relative error grows; then rescale adds its own. */
    tsr_bvec *p;
    double *ones = calloc((size_t)slots, sizeof *ones);
    for (int64_t i = 0; i < slots; i++) ones[i] = 1;
    tt_ok(tsr_bvec_encode(be, ones, 2, tsr_backend_prime(be, 2), &p));
    tt_ok(tsr_bvec_mul(be, a, p));
    tt_ok(tsr_bvec_rescale(be, a));
    double *z2 = calloc((size_t)slots, sizeof *z2);
    dec(be, a, z2);
    var = 0;
    for (int64_t i = 0; i < slots; i++) var += (z2[i] - z[i]) * (z2[i] - z[i]);
    sd = sqrt(var / slots) * a->scale;
    want = sqrt(N / 2 * (1 + 2 * N / 3) / 12);
    assert_true(sd > 0.9 * want && sd < 1.1 * want);
    /* Fresh precision at scale 2^30 and N = 8192: about 17 bits. */
    double bits = tt_precision_bits(z, x, (size_t)slots);
    assert_true(bits > 14 && bits < 20);
    tsr_bvec_free(be, a);
    tsr_bvec_free(be, p);
    free(x);
    free(z);
    free(z2);
    free(ones);
    tsr_backend_free(be);
}

static void test_bad_params(void **state) {
    (void)state;
    tsr_mockup_params mp;
    tsr_backend *be;
    tsr_mockup_params_default(&mp, 12, 2);
    tt_fails(tsr_backend_mockup_create(&mp, &be), TSR_ERR_INVALID_ARG);
    tsr_mockup_params_default(&mp, 16, -1);
    tt_fails(tsr_backend_mockup_create(&mp, &be), TSR_ERR_INVALID_ARG);
    tsr_mockup_params_default(&mp, 16, 2);
    mp.base_bits = 80;
    tt_fails(tsr_backend_mockup_create(&mp, &be), TSR_ERR_INVALID_ARG);
    tsr_mockup_params_default(&mp, 16, 2);
    mp.scale_bits = 70;
    tt_fails(tsr_backend_mockup_create(&mp, &be), TSR_ERR_INVALID_ARG);
    double primes[3] = { ldexp(1, 50), ldexp(1, 30), 0 };
    tsr_mockup_params_default(&mp, 16, 2);
    mp.scale_bits = 30;
    mp.primes = primes;
    tt_fails(tsr_backend_mockup_create(&mp, &be), TSR_ERR_INVALID_ARG);
    primes[2] = ldexp(1, 30) + 1;
    tt_ok(tsr_backend_mockup_create(&mp, &be));
    assert_true(tsr_backend_prime(be, 2) == primes[2]);
    /* Canonical scales follow D_{l-1} = D_l^2 / q_l. */
    assert_true(tsr_backend_scale(be, 2) == ldexp(1, 30));
    assert_true(tsr_backend_scale(be, 1) == ldexp(1, 60) / primes[2]);
    assert_true(tsr_backend_scale(be, 0) ==
                tsr_backend_scale(be, 1) * tsr_backend_scale(be, 1) / primes[1]);
    tsr_backend_free(be);
}

/* The debug backend runs two backends side by side and names the first op that diverges. */
static void test_debug_backend(void **state) {
    (void)state;
    int64_t slots = 256;
    tsr_mockup_params mp;
    tsr_mockup_params_default(&mp, slots, 3);
    mp.scale_bits = 30;
    tsr_backend *exact, *noisy, *dbg;
    tt_ok(tsr_backend_mockup_create(&mp, &exact));
    mp.noise = 1;
    tt_ok(tsr_backend_mockup_create(&mp, &noisy));
    tt_ok(tsr_backend_debug_create(noisy, exact, 1e-4, &dbg));
    assert_string_equal(tsr_backend_name(dbg), "debug");
    int64_t steps[2] = { 1, 2 };
    tt_ok(tsr_backend_declare_rotations(dbg, steps, 2));
    assert_int_equal(tsr_backend_declared_rotations(noisy, NULL, 0), 2);
    FILE *trace = tmpfile();
    assert_non_null(trace);
    tsr_backend_debug_trace(dbg, trace);
    tsr_tile_shape s;
    tc_shape("[8/64, 4/4]", slots, &s);
    double x[32], w[32], want[32];
    tsr_prng g;
    tt_prng(&g, 40);
    tc_random_dense(&g, x, 32, -1, 1);
    tc_random_dense(&g, w, 32, -1, 1);
    tsr_tile *a, *b, *p, *q;
    tt_ok(tsr_tile_encrypt(dbg, &s, x, -1, 0, &a));
    tt_ok(tsr_tile_encrypt(dbg, &s, w, -1, 0, &b));
    tt_ok(tsr_tile_mul(a, b, &p));
    tt_ok(tsr_tile_sum(p, 1, &q));
    for (int i = 0; i < 8; i++) {
        want[i] = 0;
        for (int j = 0; j < 4; j++) want[i] += x[i * 4 + j] * w[i * 4 + j];
    }
    double got[8];
    tt_ok(tsr_tile_decrypt(q, got));
    /* The subject's (noisy) values come back: about 2^-17 of error at scale 2^30. */
    double bits = tt_precision_bits(got, want, 8);
    assert_true(bits > 12 && bits < 25);
    tsr_debug_report r;
    tsr_backend_debug_report(dbg, &r);
    /* 2 encrypts, mul, rescale, 2 x (rotate, add). */
    assert_int_equal(r.ops, 8);
    assert_int_equal(r.count[TSR_DEBUG_ENCRYPT], 2);
    assert_int_equal(r.count[TSR_DEBUG_MUL_CT], 1);
    assert_int_equal(r.count[TSR_DEBUG_RESCALE], 1);
    assert_int_equal(r.count[TSR_DEBUG_ROTATE], 2);
    assert_int_equal(r.count[TSR_DEBUG_ADD], 2);
    assert_true(r.max_divergence > 1e-9 && r.max_divergence < 1e-4);
    /* Fresh noise at scale 2^30 and N = 512 is about 2^-23: below the threshold. */
    assert_true(r.max_by_op[TSR_DEBUG_ENCRYPT] < 1e-4);
    assert_true(r.first_index < 0 || r.first_index >= 2);
    /* Each side counted its own operations. */
    tsr_backend_counts cn, ce;
    tsr_backend_get_counts(noisy, &cn);
    tsr_backend_get_counts(exact, &ce);
    assert_int_equal(cn.rotations, 2);
    assert_int_equal(ce.rotations, 2);
    assert_int_equal(cn.mul_ct, 1);
    /* A zero threshold names operation 0. */
    tsr_backend *dbg0;
    tt_ok(tsr_backend_debug_create(noisy, exact, 0, &dbg0));
    tsr_tile *z;
    tt_ok(tsr_tile_encrypt(dbg0, &s, x, -1, 0, &z));
    tsr_backend_debug_report(dbg0, &r);
    assert_int_equal(r.first_index, 0);
    assert_int_equal(r.first_op, TSR_DEBUG_ENCRYPT);
    assert_int_equal(r.first_level, 3);
    tsr_tile_free(z);
    tsr_backend_free(dbg0);
    /* The trace has one line per operation. */
    rewind(trace);
    char line[512];
    int lines = 0;
    while (fgets(line, sizeof line, trace)) lines += strncmp(line, "debug #", 7) == 0;
    assert_int_equal(lines, 8);
    fclose(trace);
    tsr_backend_debug_trace(dbg, NULL);
    FILE *devnull = fopen("/dev/null", "w");
    tsr_backend_debug_print(dbg, devnull);
    fclose(devnull);
    assert_string_equal(tsr_debug_op_name(TSR_DEBUG_MUL_PLAIN), "mul_plain");
    tsr_tile_free(a);
    tsr_tile_free(b);
    tsr_tile_free(p);
    tsr_tile_free(q);
    /* Mismatched partners are refused. */
    tsr_backend *other, *dry, *bad;
    tsr_mockup_params_default(&mp, slots, 4);
    tt_ok(tsr_backend_mockup_create(&mp, &other));
    tt_fails(tsr_backend_debug_create(noisy, other, 1e-3, &bad), TSR_ERR_MISMATCH);
    tsr_mockup_params_default(&mp, slots, 3);
    mp.scale_bits = 30;
    mp.track_values = 0;
    tt_ok(tsr_backend_mockup_create(&mp, &dry));
    tt_fails(tsr_backend_debug_create(noisy, dry, 1e-3, &bad), TSR_ERR_UNSUPPORTED);
    tsr_backend_free(other);
    tsr_backend_free(dry);
    tsr_backend_free(dbg);
    tsr_backend_free(noisy);
    tsr_backend_free(exact);
}

/* A subject whose decryption differs from the truth by { 0.5, NaN, 0.25, 0, ... }. */
static tsr_backend_vtable nan_vt;
static tsr_status (*nan_inner_decrypt)(tsr_backend *, const tsr_bvec *, double *);

static tsr_status nan_decrypt(tsr_backend *be, const tsr_bvec *v, double *values) {
    tsr_status st = nan_inner_decrypt(be, v, values);
    if (st == TSR_OK) {
        values[0] += 0.5;
        values[1] = NAN;
        values[2] += 0.25;
    }
    return st;
}

/* A NaN slot is an infinite divergence wherever it sits among the slots. */
static void test_debug_nan(void **state) {
    (void)state;
    tsr_mockup_params mp;
    tsr_mockup_params_default(&mp, SLOTS, 2);
    tsr_backend *exact, *broken, *dbg;
    tt_ok(tsr_backend_mockup_create(&mp, &exact));
    tt_ok(tsr_backend_mockup_create(&mp, &broken));
    nan_vt = *broken->vt;
    nan_inner_decrypt = nan_vt.decrypt;
    nan_vt.decrypt = nan_decrypt;
    broken->vt = &nan_vt;
    tt_ok(tsr_backend_debug_create(broken, exact, 1e-3, &dbg));
    double x[SLOTS] = { 0.125, -0.25, 0.5 };
    tsr_bvec *v = enc(dbg, x, 2);
    tsr_debug_report r;
    tsr_backend_debug_report(dbg, &r);
    assert_int_equal(r.ops, 1);
    assert_true(isinf(r.max_divergence) && r.max_divergence > 0);
    assert_true(isinf(r.max_by_op[TSR_DEBUG_ENCRYPT]));
    assert_int_equal(r.first_index, 0);
    assert_true(isinf(r.first_divergence));
    tsr_bvec_free(dbg, v);
    tsr_backend_free(dbg);
    tsr_backend_free(broken);
    tsr_backend_free(exact);
}

/* n vectors of values in [-1, 1] encrypted at level with its canonical scale. */
static void enc_canonical(tsr_backend *be, tsr_prng *g, double *x, tsr_bvec **vs, size_t n,
                          int level) {
    int64_t slots = tsr_backend_slots(be);
    for (size_t k = 0; k < n; k++) {
        for (int64_t i = 0; i < slots; i++)
            x[k * (size_t)slots + (size_t)i] = 2 * tsr_prng_double(g) - 1;
        vs[k] = NULL;
        tt_ok(tsr_bvec_encrypt(be, x + k * (size_t)slots, level, tsr_backend_scale(be, level),
                               &vs[k]));
    }
}

/* Bootstrapping on the mockup: level refresh, noise, counts (two vectors per run), limbs, refusals.
 */
static void test_bootstrap_mockup(void **state) {
    (void)state;
    tsr_mockup_params mp;
    tsr_mockup_params_default(&mp, SLOTS, 6);
    mp.noise = 1;
    tsr_backend *be, *plain_be;
    tt_ok(tsr_backend_mockup_create(&mp, &be));
    tt_ok(tsr_backend_mockup_create(&mp, &plain_be));
    assert_int_equal(tsr_backend_boot_level(be), 0);
    tt_fails(tsr_backend_mockup_set_bootstrap(be, 0, 30), TSR_ERR_INVALID_ARG);
    tt_fails(tsr_backend_mockup_set_bootstrap(be, 7, 30), TSR_ERR_INVALID_ARG);
    tt_ok(tsr_backend_mockup_set_bootstrap(be, 4, 30));
    assert_int_equal(tsr_backend_boot_level(be), 4);
    tsr_prng g;
    tt_prng(&g, 71);
    double x[3 * SLOTS], y[SLOTS];
    tsr_bvec *vs[3];
    enc_canonical(be, &g, x, vs, 3, 1);
    tsr_backend_counts c0, c1;
    tsr_backend_get_counts(be, &c0);
    tt_ok(tsr_bvec_bootstrap_many(be, vs, 3));
    tsr_backend_get_counts(be, &c1);
    /* ceil(3 / 2) runs, as ckks pairs real vectors */
    assert_int_equal(c1.bootstraps - c0.bootstraps, 2);
    /* each vector grew from 2 x 2 limbs to 2 x 5 */
    assert_int_equal(c1.live_limbs - c0.live_limbs, 3 * 2 * (5 - 2));
    for (int k = 0; k < 3; k++) {
        assert_int_equal(vs[k]->level, 4);
        assert_true(vs[k]->scale == tsr_backend_scale(be, 4));
        dec(be, vs[k], y);
        double err = 0;
        for (int i = 0; i < SLOTS; i++) err = fmax(err, fabs(y[i] - x[k * SLOTS + i]));
        /* noise 2^-30 per slot was added (plus rounding noise): present, and small */
        assert_true(err > 0 && err < 0x1p-24);
    }
    /* one vector: one run; the result can be computed on */
    tt_ok(tsr_bvec_bootstrap(be, vs[1]));
    tsr_backend_get_counts(be, &c1);
    assert_int_equal(c1.bootstraps - c0.bootstraps, 3);
    tt_ok(tsr_bvec_mul(be, vs[1], vs[2]));
    tt_ok(tsr_bvec_rescale(be, vs[1]));
    assert_int_equal(vs[1]->level, 3);
    /* refusals: level 0, a scale off the canonical one, a plaintext, values beyond [-1, 1] */
    tsr_bvec *low, *pt, *big;
    double ones[SLOTS];
    for (int i = 0; i < SLOTS; i++) ones[i] = i == 5 ? 1.5 : 0.5;
    tt_ok(tsr_bvec_encrypt(be, ones, 0, tsr_backend_scale(be, 0), &low));
    tt_fails(tsr_bvec_bootstrap(be, low), TSR_ERR_LEVEL);
    tt_ok(tsr_bvec_mul_const(be, vs[2], 0.5, 0x1p20));
    tt_fails(tsr_bvec_bootstrap(be, vs[2]), TSR_ERR_SCALE);
    tt_ok(tsr_bvec_encode(be, ones, 2, tsr_backend_scale(be, 2), &pt));
    tt_fails(tsr_bvec_bootstrap(be, pt), TSR_ERR_INVALID_ARG);
    tt_ok(tsr_bvec_encrypt(be, ones, 2, tsr_backend_scale(be, 2), &big));
    tt_fails(tsr_bvec_bootstrap(be, big), TSR_ERR_SCALE);
    /* a backend without bootstrapping says so */
    tsr_bvec *w;
    tt_ok(tsr_bvec_encrypt(plain_be, y, 2, tsr_backend_scale(plain_be, 2), &w));
    tt_fails(tsr_bvec_bootstrap(plain_be, w), TSR_ERR_UNSUPPORTED);
    tsr_bvec_free(plain_be, w);
    tsr_bvec_free(be, low);
    tsr_bvec_free(be, pt);
    tsr_bvec_free(be, big);
    for (int k = 0; k < 3; k++) tsr_bvec_free(be, vs[k]);
    tsr_backend_free(be);
    tsr_backend_free(plain_be);
}

/*
 * Bootstrapping on the ckks backend (the insecure test ring of test_circuits_boot,
 * boot_check.h's boot_test_spec: N = 2^11, 2^10 under the sanitizers) through the debug backend
 * against a mockup of the same chain: three vectors (two runs), compared and decrypted.
 */
static void test_bootstrap_ckks_debug(void **state) {
    (void)state;
    tsr_ckks_param_spec spec = boot_test_spec();
    tsr_ckks_params *p;
    tsr_ckks_secret_key *sk;
    tsr_ckks_public_key *pk;
    tsr_ckks_relin_key *rk;
    tsr_ckks_encoder *encd;
    tsr_ckks_galois_keys *gk;
    tsr_circuits_boot *b;
    tt_ok(tsr_ckks_params_create(&p, &spec));
    tt_ok(tsr_ckks_secret_key_create(&sk, p));
    tt_ok(tsr_ckks_public_key_create(&pk, sk));
    tt_ok(tsr_ckks_relin_key_create(&rk, sk));
    tt_ok(tsr_ckks_encoder_create(&encd, p));
    tt_ok(tsr_circuits_boot_create(&b, encd, p, NULL));
    tsr_circuits_boot_info info;
    tsr_circuits_boot_get_info(b, &info);
    size_t ns = tsr_circuits_boot_rotations(b, NULL, 0);
    int *steps = malloc(ns * sizeof *steps);
    assert_non_null(steps);
    tsr_circuits_boot_rotations(b, steps, ns);
    tt_ok(tsr_ckks_galois_keys_create(&gk, sk, steps, ns, TSR_CKKS_GALOIS_CONJUGATE));
    free(steps);

    /* without the Galois keys: refused when set, naming what is missing */
    tsr_backend *nokeys;
    tt_ok(tsr_backend_ckks_create(p, pk, sk, rk, NULL, &nokeys));
    tt_fails(tsr_backend_ckks_set_bootstrap(nokeys, b), TSR_ERR_KEY_MISSING);
    assert_int_equal(tsr_backend_boot_level(nokeys), 0);
    tsr_backend_free(nokeys);

    tsr_backend *ck, *ref, *dbg;
    tt_ok(tsr_backend_ckks_create(p, pk, sk, rk, gk, &ck));
    tt_ok(tsr_backend_ckks_set_bootstrap(ck, b));
    assert_int_equal(tsr_backend_boot_level(ck), info.out_level);
    tt_fails(tsr_backend_mockup_set_bootstrap(ck, 2, 0), TSR_ERR_INVALID_ARG);
    tsr_mockup_params mp;
    tsr_mockup_params_default(&mp, 0, 0);
    mp.noise = 1;
    tt_ok(tsr_backend_mockup_create_for(p, &mp, &ref));
    tt_fails(tsr_backend_ckks_set_bootstrap(ref, b), TSR_ERR_INVALID_ARG);
    /* children that disagree on the level are refused */
    tt_ok(tsr_backend_mockup_set_bootstrap(ref, info.out_level - 1, 0));
    tt_fails(tsr_backend_debug_create(ck, ref, 1e-4, &dbg), TSR_ERR_MISMATCH);
    tt_ok(tsr_backend_mockup_set_bootstrap(ref, info.out_level, 0));
    tt_ok(tsr_backend_debug_create(ck, ref, 1e-4, &dbg));
    assert_int_equal(tsr_backend_boot_level(dbg), info.out_level);

    int64_t slots = tsr_backend_slots(dbg);
    double *x = malloc(3 * (size_t)slots * sizeof *x), *y = malloc((size_t)slots * sizeof *y);
    assert_non_null(x);
    assert_non_null(y);
    tsr_prng g;
    tt_prng(&g, 72);
    tsr_bvec *vs[3];
    enc_canonical(dbg, &g, x, vs, 3, 1);
    tt_ok(tsr_bvec_bootstrap_many(dbg, vs, 3));
    tsr_debug_report r;
    tsr_backend_debug_report(dbg, &r);
    assert_int_equal(r.count[TSR_DEBUG_BOOTSTRAP], 3);
    assert_string_equal(tsr_debug_op_name(TSR_DEBUG_BOOTSTRAP), "bootstrap");
    /* real bootstrapping vs the mockup's refresh: about 2^-20 apart */
    assert_true(r.max_by_op[TSR_DEBUG_BOOTSTRAP] < 0x1p-16);
    tsr_backend_counts cc, cd;
    tsr_backend_get_counts(ck, &cc);
    tsr_backend_get_counts(dbg, &cd);
    assert_int_equal(cc.bootstraps, 2);
    assert_int_equal(cd.bootstraps, 2);
    double worst = 60;
    for (int k = 0; k < 3; k++) {
        assert_int_equal(vs[k]->level, info.out_level);
        tt_ok(tsr_bvec_decrypt(dbg, vs[k], y)); /* the subject's (ckks) values */
        double bits = tt_precision_bits(y, x + k * (size_t)slots, (size_t)slots);
        worst = fmin(worst, bits);
    }
    printf("# tile bootstrap (ckks, N = %zu): worst %.1f bits over 3 vectors, ckks vs mockup "
           "2^%.1f\n",
           tsr_ckks_params_n(p), worst, log2(r.max_by_op[TSR_DEBUG_BOOTSTRAP]));
    assert_true(worst > 18);
    for (int k = 0; k < 3; k++) tsr_bvec_free(dbg, vs[k]);
    free(x);
    free(y);
    tsr_backend_free(dbg);
    tsr_backend_free(ck);
    tsr_backend_free(ref);
    tsr_circuits_boot_free(b);
    tsr_ckks_galois_keys_free(gk);
    tsr_ckks_encoder_free(encd);
    tsr_ckks_relin_key_free(rk);
    tsr_ckks_public_key_free(pk);
    tsr_ckks_secret_key_free(sk);
    tsr_ckks_params_free(p);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_arith_levels_scales), cmocka_unit_test(test_overflow),
        cmocka_unit_test(test_rotations),           cmocka_unit_test(test_counts_and_dry_run),
        cmocka_unit_test(test_noise_model),         cmocka_unit_test(test_bad_params),
        cmocka_unit_test(test_debug_backend),       cmocka_unit_test(test_limb_counts),
        cmocka_unit_test(test_prod_lincomb),        cmocka_unit_test(test_prod_lincomb_ckks),
        cmocka_unit_test(test_bootstrap_mockup),    cmocka_unit_test(test_bootstrap_ckks_debug),
        cmocka_unit_test(test_debug_nan),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
