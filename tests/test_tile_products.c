/*
 * tests/test_tile_products.c - products chosen by packing, on the mockup:
 * matrix x vector and matrix x matrix in both orientations, consecutive
 * products alternating orientation without repacking, batch dimensions,
 * the operation counts and rotation steps they need, and planning dry runs
 * (shape-only mockup collecting the rotation keys, then a strict run with
 * exactly those keys).
 */
#include "tile_check.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TOL 1e-9

static void expect_shape(const tsr_tile *t, const char *want) {
    char buf[256];
    tsr_tile_shape_format(tsr_tile_get_shape(t), buf, sizeof buf);
    if (strcmp(buf, want) != 0) fail_msg("shape %s, want %s", buf, want);
}

/* Matrix x vector, both orientations, random sizes and tiles. */
static void test_matvec(void **state) {
    (void)state;
    tsr_prng g;
    tt_prng(&g, 20);
    for (int it = 0; it < tc_iters(60); it++) {
        int64_t slots = (int64_t)1 << (2 + tsr_prng_uniform(&g, 6));
        int b0 = (int)tsr_prng_uniform(&g, (uint64_t)tc_lg(slots) + 1);
        int64_t t0 = (int64_t)1 << b0, t1 = slots / t0;
        int64_t m = 1 + (int64_t)tsr_prng_uniform(&g, 3 * (uint64_t)t0),
                n = 1 + (int64_t)tsr_prng_uniform(&g, 3 * (uint64_t)t1);
        if (m * n > 4000) continue;
        tsr_backend *be = tc_mockup_collecting(slots, 2, 1);
        double *M = calloc((size_t)(m * n), sizeof *M), *MT = calloc((size_t)(m * n), sizeof *MT);
        double *v = calloc((size_t)n, sizeof *v), *y = calloc((size_t)m, sizeof *y);
        tc_random_dense(&g, M, (size_t)(m * n), -1, 1);
        tc_random_dense(&g, v, (size_t)n, -1, 1);
        for (int64_t i = 0; i < m; i++)
            for (int64_t j = 0; j < n; j++) {
                y[i] += M[i * n + j] * v[j];
                MT[j * m + i] = M[i * n + j];
            }
        /* A: [m/t0, n/t1] x [*\/t0, n/t1], sum over dim 1 -> [m/t0, 1?/t1]. */
        tsr_tile_shape sm, sv;
        tc_shape_make(&sm, 2, (int64_t[]){ m, n }, (int64_t[]){ t0, t1 }, slots);
        tc_shape_make(&sv, 2, (int64_t[]){ 0, n }, (int64_t[]){ t0, t1 }, slots);
        tsr_tile *W, *x, *r;
        tt_ok(tsr_tile_encode(be, &sm, M, -1, 0, &W));
        tt_ok(tsr_tile_encrypt(be, &sv, v, -1, 0, &x));
        tsr_backend_reset_counts(be);
        tt_ok(tsr_tile_mul_sum(x, W, 1, &r));
        tc_check(r, y, TOL);
        const tsr_tile_dim *d1 = &tsr_tile_get_shape(r)->dim[1];
        assert_true(t0 == 1 && t1 > 1 ? d1->dup : (t1 == 1 || d1->unknown));
        int64_t e0 = (m + t0 - 1) / t0, e1 = (n + t1 - 1) / t1;
        tsr_backend_counts c;
        tsr_backend_get_counts(be, &c);
        assert_int_equal(c.mul_plain, (uint64_t)(e0 * e1));
        assert_int_equal(c.rescale, (uint64_t)e0);
        assert_int_equal(c.rotations, (uint64_t)(e0 * tc_lg(t1)));
        assert_int_equal(c.add, (uint64_t)(e0 * (e1 - 1 + tc_lg(t1))));
        assert_int_equal(tsr_backend_depth_used(be), 1);
        int64_t steps[32];
        assert_int_equal(tsr_backend_used_rotations(be, steps, 32), (size_t)tc_lg(t1));
        for (int k = 0; k < tc_lg(t1); k++) assert_int_equal(steps[k], (int64_t)1 << k);
        tsr_tile_free(r);
        tsr_tile_free(W);
        tsr_tile_free(x);
        /* B: [n/t0, m/t1] (transposed) x [n/t0, *\/t1], sum over dim 0 -> [*\/t0, m/t1]. */
        tc_shape_make(&sm, 2, (int64_t[]){ n, m }, (int64_t[]){ t0, t1 }, slots);
        tc_shape_make(&sv, 2, (int64_t[]){ n, 0 }, (int64_t[]){ t0, t1 }, slots);
        tt_ok(tsr_tile_encode(be, &sm, MT, -1, 0, &W));
        tt_ok(tsr_tile_encrypt(be, &sv, v, -1, 0, &x));
        tt_ok(tsr_tile_mul_sum(x, W, 0, &r));
        tc_check(r, y, TOL);
        if (t0 > 1) assert_true(tsr_tile_get_shape(r)->dim[0].dup);
        tsr_tile_free(r);
        tsr_tile_free(W);
        tsr_tile_free(x);
        free(M);
        free(MT);
        free(v);
        free(y);
        tsr_backend_free(be);
    }
}

static void matmul_ref(const double *A, const double *B, int64_t m, int64_t n, int64_t k,
                       double *C) {
    for (int64_t i = 0; i < m; i++)
        for (int64_t j = 0; j < k; j++) {
            double s = 0;
            for (int64_t l = 0; l < n; l++) s += A[i * n + l] * B[l * k + j];
            C[i * k + j] = s;
        }
}

/* Matrix x matrix (both encrypted), both orientations. */
static void test_matmat(void **state) {
    (void)state;
    tsr_prng g;
    tt_prng(&g, 21);
    for (int it = 0; it < tc_iters(40); it++) {
        int64_t slots = (int64_t)1 << (3 + tsr_prng_uniform(&g, 5));
        int bits = tc_lg(slots);
        int64_t t[3] = { 1, 1, 1 };
        for (int b = 0; b < bits; b++) t[tsr_prng_uniform(&g, 3)] *= 2;
        int64_t m = 1 + (int64_t)tsr_prng_uniform(&g, 2 * (uint64_t)t[0] + 2),
                n = 1 + (int64_t)tsr_prng_uniform(&g, 2 * (uint64_t)t[1] + 2),
                k = 1 + (int64_t)tsr_prng_uniform(&g, 2 * (uint64_t)t[2] + 2);
        tsr_backend *be = tc_mockup_collecting(slots, 2, 1);
        double *A = calloc((size_t)(m * n), sizeof *A), *B = calloc((size_t)(n * k), sizeof *B);
        double *AT = calloc((size_t)(m * n), sizeof *AT), *C = calloc((size_t)(m * k), sizeof *C);
        tc_random_dense(&g, A, (size_t)(m * n), -1, 1);
        tc_random_dense(&g, B, (size_t)(n * k), -1, 1);
        for (int64_t i = 0; i < m; i++)
            for (int64_t j = 0; j < n; j++) AT[j * m + i] = A[i * n + j];
        matmul_ref(A, B, m, n, k, C);
        tsr_tile_shape sa, sb;
        tsr_tile *ta, *tb, *r;
        /* [m/t0, n/t1, *\/t2] x [*\/t0, n/t1, k/t2], sum over dim 1. */
        tc_shape_make(&sa, 3, (int64_t[]){ m, n, 0 }, t, slots);
        tc_shape_make(&sb, 3, (int64_t[]){ 0, n, k }, t, slots);
        tt_ok(tsr_tile_encrypt(be, &sa, A, -1, 0, &ta));
        tt_ok(tsr_tile_encrypt(be, &sb, B, -1, 0, &tb));
        tt_ok(tsr_tile_mul_sum(ta, tb, 1, &r));
        tc_check(r, C, TOL);
        tsr_tile_free(r);
        tsr_tile_free(ta);
        /* [n/t0, m/t1, *\/t2] (A transposed) x [n/t0, *\/t1, k/t2], sum over dim 0. */
        tsr_tile_free(tb);
        tc_shape_make(&sa, 3, (int64_t[]){ n, m, 0 }, t, slots);
        tc_shape_make(&sb, 3, (int64_t[]){ n, 0, k }, t, slots);
        tt_ok(tsr_tile_encrypt(be, &sa, AT, -1, 0, &ta));
        tt_ok(tsr_tile_encrypt(be, &sb, B, -1, 0, &tb));
        tt_ok(tsr_tile_mul_sum(ta, tb, 0, &r));
        tc_check(r, C, TOL);
        if (t[0] > 1) assert_true(tsr_tile_get_shape(r)->dim[0].dup);
        tsr_tile_free(r);
        tsr_tile_free(ta);
        tsr_tile_free(tb);
        free(A);
        free(AT);
        free(B);
        free(C);
        tsr_backend_free(be);
    }
}

/*
 * Three dense layers with a square activation: the orientation alternates
 * so that no layer repacks its input (a dim-1 result is cleared and
 * duplicated, a dim-0 result is used as is).
 */
typedef struct chain_result {
    tsr_backend_counts counts;
    int64_t steps[64];
    size_t nsteps;
    int level;
} chain_result;

static void run_chain(tsr_backend *be, int64_t t0, int64_t t1, const int64_t *dims,
                      double *const *W, const double *v, double *out, chain_result *res) {
    int64_t slots = t0 * t1;
    tsr_tile_shape s;
    tsr_tile *x, *w, *r, *c;
    double act[3] = { 0, 0.5, 0.25 }; /* 0.5 x + 0.25 x^2 */
    tc_shape_make(&s, 2, (int64_t[]){ 0, dims[0] }, (int64_t[]){ t0, t1 }, slots);
    tsr_backend_reset_counts(be);
    tt_ok(tsr_tile_encrypt(be, &s, v, -1, 0, &x));
    /* Layer 1, orientation A: W1 is [d1/t0, d0/t1]; sum over dim 1. */
    tc_shape_make(&s, 2, (int64_t[]){ dims[1], dims[0] }, (int64_t[]){ t0, t1 }, slots);
    tt_ok(tsr_tile_encode(be, &s, W[0], tsr_tile_level(x), 0, &w));
    tt_ok(tsr_tile_mul_sum(x, w, 1, &r));
    tsr_tile_free(x);
    tsr_tile_free(w);
    tt_ok(tsr_tile_poly(r, act, 2, &x));
    tsr_tile_free(r);
    /* [d1/t0, 1?/t1] -> clear -> duplicate -> [d1/t0, *\/t1]. */
    tt_ok(tsr_tile_clear(x, &c));
    tsr_tile_free(x);
    tt_ok(tsr_tile_duplicate(c, 1, &x));
    tsr_tile_free(c);
    /* Layer 2, orientation B: W2 transposed is [d1/t0, d2/t1]; sum over dim 0. */
    tc_shape_make(&s, 2, (int64_t[]){ dims[1], dims[2] }, (int64_t[]){ t0, t1 }, slots);
    tt_ok(tsr_tile_encode(be, &s, W[1], tsr_tile_level(x), 0, &w));
    tt_ok(tsr_tile_mul_sum(x, w, 0, &r));
    tsr_tile_free(x);
    tsr_tile_free(w);
    tt_ok(tsr_tile_poly(r, act, 2, &x));
    tsr_tile_free(r);
    /* [*\/t0, d2/t1]: exactly the input layout of orientation A. Layer 3. */
    tc_shape_make(&s, 2, (int64_t[]){ dims[3], dims[2] }, (int64_t[]){ t0, t1 }, slots);
    tt_ok(tsr_tile_encode(be, &s, W[2], tsr_tile_level(x), 0, &w));
    tt_ok(tsr_tile_mul_sum(x, w, 1, &r));
    tsr_tile_free(x);
    tsr_tile_free(w);
    res->level = tsr_tile_level(r);
    if (out) tt_ok(tsr_tile_decrypt(r, out));
    tsr_tile_free(r);
    tsr_backend_get_counts(be, &res->counts);
    res->nsteps = tsr_backend_used_rotations(be, res->steps, 64);
}

static void test_consecutive(void **state) {
    (void)state;
    tsr_prng g;
    tt_prng(&g, 22);
    int64_t t0 = 8, t1 = 16, slots = t0 * t1;
    int64_t dims[4] = { 20, 13, 9, 5 };
    double *W[3];
    for (int l = 0; l < 3; l++) {
        W[l] = calloc((size_t)(dims[l] * dims[l + 1]), sizeof *W[l]);
        tc_random_dense(&g, W[l], (size_t)(dims[l] * dims[l + 1]), -0.5, 0.5);
    }
    /* Layer 2 is stored transposed: W[1] holds (d1 x d2) = W2^T. */
    double v[20], h1[13], h2[9], y[5], got[5];
    tc_random_dense(&g, v, 20, -1, 1);
    for (int i = 0; i < 13; i++) {
        double s = 0;
        for (int j = 0; j < 20; j++) s += W[0][i * 20 + j] * v[j];
        h1[i] = 0.5 * s + 0.25 * s * s;
    }
    for (int i = 0; i < 9; i++) {
        double s = 0;
        for (int j = 0; j < 13; j++) s += W[1][j * 9 + i] * h1[j];
        h2[i] = 0.5 * s + 0.25 * s * s;
    }
    for (int i = 0; i < 5; i++) {
        double s = 0;
        for (int j = 0; j < 9; j++) s += W[2][i * 9 + j] * h2[j];
        y[i] = s;
    }
    /* Plan: shape-only dry run collecting rotations. */
    chain_result plan, real, strict;
    tsr_backend *dry = tc_mockup_collecting(slots, 8, 0);
    run_chain(dry, t0, t1, dims, W, v, NULL, &plan);
    /* Depth: layer 1, square, clear, layer 2, square, layer 3 = 1+2+1+1+2+1. */
    assert_int_equal(plan.level, 0);
    assert_int_equal(tsr_backend_depth_used(dry), 8);
    /* Rotations: sums over dim 1 by 1..8, dim 0 by 16..64, duplication by -1..-8. */
    assert_int_equal(plan.nsteps, 4 + 3 + 4);
    /* Real run on a collecting mockup with values. */
    tsr_backend *be = tc_mockup_collecting(slots, 8, 1);
    run_chain(be, t0, t1, dims, W, v, got, &real);
    assert_true(tt_precision_bits(got, y, 5) > 30);
    assert_int_equal(real.counts.rotations, plan.counts.rotations);
    assert_int_equal(real.counts.mul_plain, plan.counts.mul_plain);
    assert_int_equal(real.counts.mul_ct, plan.counts.mul_ct);
    assert_int_equal(real.counts.add, plan.counts.add);
    assert_int_equal(real.counts.encode, plan.counts.encode);
    assert_int_equal(real.nsteps, plan.nsteps);
    /* Strict backend with exactly the planned keys: runs. */
    tsr_mockup_params mp;
    tsr_mockup_params_default(&mp, slots, 8);
    tsr_backend *sb;
    tt_ok(tsr_backend_mockup_create(&mp, &sb));
    tt_ok(tsr_backend_declare_rotations(sb, plan.steps, plan.nsteps));
    run_chain(sb, t0, t1, dims, W, v, got, &strict);
    assert_true(tt_precision_bits(got, y, 5) > 30);
    tsr_backend_free(sb);
    /* One key fewer: the run fails with a missing key. */
    tt_ok(tsr_backend_mockup_create(&mp, &sb));
    tt_ok(tsr_backend_declare_rotations(sb, plan.steps + 1, plan.nsteps - 1));
    tsr_tile_shape s;
    tc_shape_make(&s, 2, (int64_t[]){ 0, dims[0] }, (int64_t[]){ t0, t1 }, slots);
    tsr_tile *x, *w, *r;
    tt_ok(tsr_tile_encrypt(sb, &s, v, -1, 0, &x));
    tc_shape_make(&s, 2, (int64_t[]){ dims[1], dims[0] }, (int64_t[]){ t0, t1 }, slots);
    tt_ok(tsr_tile_encode(sb, &s, W[0], -1, 0, &w));
    tt_fails(tsr_tile_mul_sum(x, w, 1, &r), TSR_ERR_KEY_MISSING);
    tsr_tile_free(x);
    tsr_tile_free(w);
    tsr_backend_free(sb);
    for (int l = 0; l < 3; l++) free(W[l]);
    tsr_backend_free(be);
    tsr_backend_free(dry);
}

/* A batch dimension anywhere: batch last, batch first. */
static void test_batch(void **state) {
    (void)state;
    tsr_prng g;
    tt_prng(&g, 23);
    int64_t m = 6, n = 11, B = 5;
    double W[66], X[55], Y[30]; /* X[b][j], Y[b][i] */
    tc_random_dense(&g, W, 66, -1, 1);
    tc_random_dense(&g, X, 55, -1, 1);
    for (int64_t b = 0; b < B; b++)
        for (int64_t i = 0; i < m; i++) {
            double s = 0;
            for (int64_t j = 0; j < n; j++) s += W[i * n + j] * X[b * n + j];
            Y[b * m + i] = s;
        }
    tsr_backend *be = tc_mockup_collecting(64, 2, 1);
    /* Batch last: [*\/4, n/4, B/4] x [m/4, n/4, *\/4], sum over dim 1 -> [m/4, 1?/4, B/4]. */
    double XT[55], YT[30];
    for (int64_t b = 0; b < B; b++)
        for (int64_t j = 0; j < n; j++) XT[j * B + b] = X[b * n + j];
    tsr_tile_shape sx, sw;
    tsr_tile *x, *w, *r;
    tc_shape_make(&sx, 3, (int64_t[]){ 0, n, B }, (int64_t[]){ 4, 4, 4 }, 64);
    tc_shape_make(&sw, 3, (int64_t[]){ m, n, 0 }, (int64_t[]){ 4, 4, 4 }, 64);
    tt_ok(tsr_tile_encrypt(be, &sx, XT, -1, 0, &x));
    tt_ok(tsr_tile_encode(be, &sw, W, -1, 0, &w));
    tt_ok(tsr_tile_mul_sum(x, w, 1, &r));
    expect_shape(r, "[6/4, 1?/4, 5/4]");
    for (int64_t b = 0; b < B; b++)
        for (int64_t i = 0; i < m; i++) YT[i * B + b] = Y[b * m + i];
    tc_check(r, YT, TOL);
    tsr_tile_free(x);
    tsr_tile_free(w);
    tsr_tile_free(r);
    /* Batch first: [B/2, *\/4, n/8] x [*\/2, m/4, n/8], sum over dim 2 -> [B/2, m/4, 1?/8]. */
    tc_shape_make(&sx, 3, (int64_t[]){ B, 0, n }, (int64_t[]){ 2, 4, 8 }, 64);
    tc_shape_make(&sw, 3, (int64_t[]){ 0, m, n }, (int64_t[]){ 2, 4, 8 }, 64);
    tt_ok(tsr_tile_encrypt(be, &sx, X, -1, 0, &x));
    tt_ok(tsr_tile_encode(be, &sw, W, -1, 0, &w));
    tt_ok(tsr_tile_mul_sum(x, w, 2, &r));
    expect_shape(r, "[5/2, 6/4, 1?/8]");
    tc_check(r, Y, TOL);
    tsr_tile_free(x);
    tsr_tile_free(w);
    tsr_tile_free(r);
    /* Shapes that do not fit say why. */
    tc_shape_make(&sw, 3, (int64_t[]){ 0, m, n + 1 }, (int64_t[]){ 2, 4, 8 }, 64);
    tt_ok(tsr_tile_encrypt(be, &sx, X, -1, 0, &x));
    double W2[6 * 12] = { 0 };
    tt_ok(tsr_tile_encode(be, &sw, W2, -1, 0, &w));
    tt_fails(tsr_tile_mul_sum(x, w, 2, &r), TSR_ERR_SHAPE);
    assert_non_null(strstr(tsr_last_error(), "sizes 11 and 12"));
    tsr_tile_free(x);
    tsr_tile_free(w);
    tsr_backend_free(be);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_matvec),
        cmocka_unit_test(test_matmat),
        cmocka_unit_test(test_consecutive),
        cmocka_unit_test(test_batch),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
