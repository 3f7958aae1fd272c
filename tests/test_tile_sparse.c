/*
 * tests/test_tile_sparse.c - all-zero plaintext tiles cost nothing
 * (HE-PEx, arXiv 2207.03384): tsr_tile_encode does not encode them, products
 * skip them, an output tile that only they reach gets no rotation, sums with
 * them are copies, convolution filters that are all zero need no product and
 * no channel-sum rotation. Every result is checked against a dense
 * reference, and every count against a formula computed here from which
 * tiles were zeroed.
 */
#include "tile_check.h"
#include "tile/tile_internal.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TOL 1e-9

/*
 * A random m x n matrix whose (t0 x t1)-blocks are zeroed with probability
 * 1/2; zb[i * e1 + j] = 1 for a zeroed block (blocks that are zero by chance
 * do not happen with uniform values).
 */
static void sparse_matrix(tsr_prng *g, int64_t m, int64_t n, int64_t t0, int64_t t1, double *M,
                          uint8_t *zb) {
    int64_t e0 = (m + t0 - 1) / t0, e1 = (n + t1 - 1) / t1;
    tc_random_dense(g, M, (size_t)(m * n), -1, 1);
    for (int64_t b = 0; b < e0 * e1; b++) zb[b] = (uint8_t)tsr_prng_uniform(g, 2);
    for (int64_t i = 0; i < m; i++)
        for (int64_t j = 0; j < n; j++)
            if (zb[(i / t0) * e1 + j / t1]) M[i * n + j] = 0.0;
}

/* Matrix x vector with zeroed blocks, orientation A ([m/t0, n/t1] x [*\/t0, n/t1], dim 1). */
static void test_matvec_a(void **state) {
    (void)state;
    tsr_prng g;
    tt_prng(&g, 1300);
    for (int it = 0; it < tc_iters(60); it++) {
        int64_t slots = (int64_t)1 << (2 + tsr_prng_uniform(&g, 6));
        int b0 = (int)tsr_prng_uniform(&g, (uint64_t)tc_lg(slots) + 1);
        int64_t t0 = (int64_t)1 << b0, t1 = slots / t0;
        int64_t m = 1 + (int64_t)tsr_prng_uniform(&g, 4 * (uint64_t)t0),
                n = 1 + (int64_t)tsr_prng_uniform(&g, 4 * (uint64_t)t1);
        if (m * n > 4000) continue;
        int64_t e0 = (m + t0 - 1) / t0, e1 = (n + t1 - 1) / t1;
        double *M = calloc((size_t)(m * n), sizeof *M), *v = calloc((size_t)n, sizeof *v);
        double *y = calloc((size_t)m, sizeof *y);
        uint8_t *zb = calloc((size_t)(e0 * e1), 1);
        sparse_matrix(&g, m, n, t0, t1, M, zb);
        tc_random_dense(&g, v, (size_t)n, -1, 1);
        for (int64_t i = 0; i < m; i++)
            for (int64_t j = 0; j < n; j++) y[i] += M[i * n + j] * v[j];
        /* Expected: one product per nonzero block; rows of blocks that are all zero
         * get an encryption of zero (one constant product) and no rotation. */
        uint64_t nnz = 0, zero_rows = 0;
        for (int64_t i = 0; i < e0; i++) {
            uint64_t r = 0;
            for (int64_t j = 0; j < e1; j++) r += !zb[i * e1 + j];
            nnz += r;
            zero_rows += r == 0;
        }
        tsr_tile_shape sm, sv;
        tc_shape_make(&sm, 2, (int64_t[]){ m, n }, (int64_t[]){ t0, t1 }, slots);
        tc_shape_make(&sv, 2, (int64_t[]){ 0, n }, (int64_t[]){ t0, t1 }, slots);
        for (int track = 1; track >= 0; track--) {
            /* track 0: a shape-only dry run given the weights counts the same. */
            tsr_backend *be = tc_mockup_collecting(slots, 2, track);
            tsr_tile *W, *x, *r;
            tsr_backend_counts c;
            tsr_backend_reset_counts(be);
            tt_ok(tsr_tile_encode(be, &sm, M, -1, 0, &W));
            tsr_backend_get_counts(be, &c);
            assert_int_equal(c.encode, nnz);
            assert_int_equal(c.live_vectors, nnz);
            assert_int_equal(tsr_tile_num_encoded(W), (int64_t)nnz);
            assert_int_equal(tsr_tile_level(W), 2);
            tt_ok(tsr_tile_encrypt(be, &sv, track ? v : NULL, -1, 0, &x));
            tsr_backend_reset_counts(be);
            tt_ok(tsr_tile_mul_sum(x, W, 1, &r));
            tsr_backend_get_counts(be, &c);
            assert_int_equal(c.mul_plain, nnz);
            assert_int_equal(c.mul_const, zero_rows);
            assert_int_equal(c.encode, 0);
            assert_int_equal(c.rescale, (uint64_t)e0);
            assert_int_equal(c.rotations, (e0 - zero_rows) * (uint64_t)tc_lg(t1));
            assert_int_equal(c.add, (nnz - (e0 - zero_rows)) + (e0 - zero_rows) * tc_lg(t1));
            assert_int_equal(tsr_tile_level(r), 1);
            if (track) tc_check(r, y, TOL);
            tsr_tile_free(r);
            tsr_tile_free(W);
            tsr_tile_free(x);
            tsr_backend_free(be);
        }
        free(M);
        free(v);
        free(y);
        free(zb);
    }
}

/* Orientation B: [n/t0, m/t1] (transposed weights) x [n/t0, *\/t1], dim 0, with batches. */
static void test_matvec_b(void **state) {
    (void)state;
    tsr_prng g;
    tt_prng(&g, 1301);
    for (int it = 0; it < tc_iters(40); it++) {
        int64_t slots = (int64_t)1 << (3 + tsr_prng_uniform(&g, 5));
        int64_t t[3] = { 1, 1, 1 };
        for (int b = 0; b < tc_lg(slots); b++) t[tsr_prng_uniform(&g, 3)] *= 2;
        int64_t n = 1 + (int64_t)tsr_prng_uniform(&g, 3 * (uint64_t)t[0]),
                m = 1 + (int64_t)tsr_prng_uniform(&g, 3 * (uint64_t)t[1]),
                B = 1 + (int64_t)tsr_prng_uniform(&g, 2 * (uint64_t)t[2]);
        if (m * n > 3000 || n * B > 3000) continue;
        int64_t e0 = (n + t[0] - 1) / t[0], e1 = (m + t[1] - 1) / t[1], eb = (B + t[2] - 1) / t[2];
        double *WT = calloc((size_t)(n * m), sizeof *WT), *X = calloc((size_t)(n * B), sizeof *X);
        double *Y = calloc((size_t)(m * B), sizeof *Y);
        uint8_t *zb = calloc((size_t)(e0 * e1), 1);
        sparse_matrix(&g, n, m, t[0], t[1], WT, zb);
        tc_random_dense(&g, X, (size_t)(n * B), -1, 1);
        for (int64_t i = 0; i < m; i++)
            for (int64_t b = 0; b < B; b++)
                for (int64_t j = 0; j < n; j++) Y[i * B + b] += WT[j * m + i] * X[j * B + b];
        uint64_t nnz = 0, zero_cols = 0;
        for (int64_t j = 0; j < e1; j++) {
            uint64_t r = 0;
            for (int64_t i = 0; i < e0; i++) r += !zb[i * e1 + j];
            nnz += r;
            zero_cols += r == 0;
        }
        tsr_backend *be = tc_mockup_collecting(slots, 2, 1);
        tsr_tile_shape sw, sx;
        tc_shape_make(&sw, 3, (int64_t[]){ n, m, 0 }, t, slots);
        tc_shape_make(&sx, 3, (int64_t[]){ n, 0, B }, t, slots);
        tsr_tile *W, *x, *r;
        tt_ok(tsr_tile_encode(be, &sw, WT, -1, 0, &W));
        tt_ok(tsr_tile_encrypt(be, &sx, X, -1, 0, &x));
        tsr_backend_reset_counts(be);
        tt_ok(tsr_tile_mul_sum(W, x, 0, &r)); /* plaintext first: swapped inside */
        tc_check(r, Y, TOL);
        tsr_backend_counts c;
        tsr_backend_get_counts(be, &c);
        assert_int_equal(c.mul_plain, nnz * (uint64_t)eb);
        assert_int_equal(c.mul_const, zero_cols * (uint64_t)eb);
        assert_int_equal(c.rotations, (e1 - zero_cols) * (uint64_t)eb * (uint64_t)tc_lg(t[0]));
        tsr_tile_free(r);
        tsr_tile_free(W);
        tsr_tile_free(x);
        tsr_backend_free(be);
        free(WT);
        free(X);
        free(Y);
        free(zb);
    }
}

/* Elementwise products and sums with plaintexts that have zero tiles. */
static void test_elementwise(void **state) {
    (void)state;
    tsr_prng g;
    tt_prng(&g, 1302);
    for (int it = 0; it < tc_iters(30); it++) {
        int64_t slots = (int64_t)1 << (2 + tsr_prng_uniform(&g, 5));
        int b0 = (int)tsr_prng_uniform(&g, (uint64_t)tc_lg(slots) + 1);
        int64_t t0 = (int64_t)1 << b0, t1 = slots / t0;
        int64_t m = 1 + (int64_t)tsr_prng_uniform(&g, 3 * (uint64_t)t0),
                n = 1 + (int64_t)tsr_prng_uniform(&g, 3 * (uint64_t)t1);
        if (m * n > 3000) continue;
        int64_t e0 = (m + t0 - 1) / t0, e1 = (n + t1 - 1) / t1;
        double *P = calloc((size_t)(m * n), sizeof *P), *X = calloc((size_t)(m * n), sizeof *X);
        double *R = calloc((size_t)(m * n), sizeof *R);
        uint8_t *zb = calloc((size_t)(e0 * e1), 1);
        sparse_matrix(&g, m, n, t0, t1, P, zb);
        tc_random_dense(&g, X, (size_t)(m * n), -1, 1);
        uint64_t nnz = 0;
        for (int64_t b = 0; b < e0 * e1; b++) nnz += !zb[b];
        tsr_backend *be = tc_mockup_collecting(slots, 2, 1);
        tsr_tile_shape s;
        tc_shape_make(&s, 2, (int64_t[]){ m, n }, (int64_t[]){ t0, t1 }, slots);
        tsr_tile *p, *x, *r;
        tt_ok(tsr_tile_encode(be, &s, P, -1, 0, &p));
        tt_ok(tsr_tile_encrypt(be, &s, X, -1, 0, &x));
        tsr_backend_counts c;
        /* Product: one per nonzero tile, zeros elsewhere. */
        tsr_backend_reset_counts(be);
        tt_ok(tsr_tile_mul(p, x, &r));
        tsr_backend_get_counts(be, &c);
        assert_int_equal(c.mul_plain, nnz);
        assert_int_equal(c.mul_const, (uint64_t)(e0 * e1) - nnz);
        assert_int_equal(c.rescale, (uint64_t)(e0 * e1));
        for (int64_t i = 0; i < m * n; i++) R[i] = P[i] * X[i];
        tc_check(r, R, TOL);
        tsr_tile_free(r);
        /* Lazy product then rescale: the same values. */
        tsr_tile *lz;
        tt_ok(tsr_tile_mul_lazy(x, p, &lz));
        tt_ok(tsr_tile_rescale(lz, &r));
        tc_check(r, R, TOL);
        tsr_tile_free(lz);
        tsr_tile_free(r);
        /* Sum and difference: one addition per nonzero tile. */
        tsr_tile *pa;
        tt_ok(tsr_tile_encode(be, &s, P, -1, tsr_tile_scale(x), &pa));
        tsr_backend_reset_counts(be);
        tt_ok(tsr_tile_add(x, pa, &r));
        tsr_backend_get_counts(be, &c);
        assert_int_equal(c.add, nnz);
        for (int64_t i = 0; i < m * n; i++) R[i] = X[i] + P[i];
        tc_check(r, R, TOL);
        tsr_tile_free(r);
        tt_ok(tsr_tile_sub(x, pa, &r));
        for (int64_t i = 0; i < m * n; i++) R[i] = X[i] - P[i];
        tc_check(r, R, TOL);
        tsr_tile_free(r);
        /* mul_plain / add_plain encode on the fly: zero tiles are skipped there too. */
        tsr_backend_reset_counts(be);
        tt_ok(tsr_tile_mul_plain(x, &s, P, &r));
        tsr_backend_get_counts(be, &c);
        assert_int_equal(c.encode, nnz);
        assert_int_equal(c.mul_plain, nnz);
        for (int64_t i = 0; i < m * n; i++) R[i] = P[i] * X[i];
        tc_check(r, R, TOL);
        tsr_tile_free(r);
        tt_ok(tsr_tile_add_plain(x, &s, P, &r));
        for (int64_t i = 0; i < m * n; i++) R[i] = X[i] + P[i];
        tc_check(r, R, TOL);
        tsr_tile_free(r);
        /* Copies, level drops and decoding keep the zero tiles. */
        tsr_tile *cp, *dl;
        tt_ok(tsr_tile_copy(p, &cp));
        assert_int_equal(tsr_tile_num_encoded(cp), (int64_t)nnz);
        tt_ok(tsr_tile_relevel(cp, 1, &dl));
        assert_int_equal(tsr_tile_level(dl), 1);
        assert_int_equal(tsr_tile_num_encoded(dl), (int64_t)nnz);
        tc_check(dl, P, 0.0);
        tsr_tile_free(cp);
        tsr_tile_free(dl);
        tsr_tile_free(pa);
        tsr_tile_free(p);
        tsr_tile_free(x);
        tsr_backend_free(be);
        free(P);
        free(X);
        free(R);
        free(zb);
    }
}

/* A plaintext that is zero everywhere: nothing encoded, products give zeros. */
static void test_all_zero(void **state) {
    (void)state;
    tsr_backend *be = tc_mockup_collecting(64, 3, 1);
    tsr_tile_shape sw, sv;
    tc_shape("[10/8, 20/8]", 64, &sw);
    tc_shape("[*/8, 20/8]", 64, &sv);
    double *z = calloc(200, sizeof *z), v[20], y[10] = { 0 };
    tsr_prng g;
    tt_prng(&g, 1303);
    tc_random_dense(&g, v, 20, -1, 1);
    tsr_tile *W, *x, *r;
    tsr_backend_reset_counts(be);
    tt_ok(tsr_tile_encode(be, &sw, z, 2, 0, &W));
    tsr_backend_counts c;
    tsr_backend_get_counts(be, &c);
    assert_int_equal(c.encode, 0);
    assert_int_equal(c.live_limbs, 0);
    assert_int_equal(tsr_tile_num_encoded(W), 0);
    assert_int_equal(tsr_tile_level(W), 2);
    assert_true(tsr_tile_scale(W) == tsr_backend_scale(be, 2));
    double back[200];
    back[7] = 1.0;
    tt_ok(tsr_tile_decrypt(W, back));
    for (int i = 0; i < 200; i++) assert_true(back[i] == 0.0);
    tt_ok(tsr_tile_encrypt(be, &sv, v, -1, 0, &x));
    tsr_backend_reset_counts(be);
    tt_ok(tsr_tile_mul_sum(x, W, 1, &r));
    tsr_backend_get_counts(be, &c);
    assert_int_equal(c.mul_plain, 0);
    assert_int_equal(c.rotations, 0);
    assert_int_equal(tsr_tile_level(r), 1); /* x dropped to the weights' level 2, then rescaled */
    tc_check(r, y, 0.0);
    /* Files hold every tile: an unencoded one is refused, clearly. */
    FILE *fp = tmpfile();
    assert_non_null(fp);
    tt_fails(tsr_tile_write(W, fp), TSR_ERR_UNSUPPORTED);
    fclose(fp);
    tsr_tile_free(r);
    tsr_tile_free(W);
    tsr_tile_free(x);
    tsr_backend_free(be);
    free(z);
}

/*
 * tsr_tile_encode finds the tiles holding a nonzero from the nonzeros'
 * positions: against tsr_tile_encrypt of the same data (which maps every
 * slot of every tile), the encoded tiles are exactly those whose slots are
 * not all zero, with the same slots; a shape-only mockup encodes the same
 * tiles. Shapes with padding, `*` and an interleaved dimension.
 */
static void test_sparse_encode(void **state) {
    (void)state;
    const char *shapes[] = { "[10/4, */2, 20/8]", "[13~/4, 7/2, */8]", "[*/4, 9/4, 5/4]" };
    tsr_prng g;
    tt_prng(&g, 1304);
    tsr_backend *be = tc_mockup_collecting(64, 2, 1), *dry = tc_mockup_collecting(64, 2, 0);
    for (int k = 0; k < 3; k++) {
        tsr_tile_shape s;
        tc_shape(shapes[k], 64, &s);
        int64_t n = 1;
        for (int d = 0; d < s.ndims; d++) n *= s.dim[d].size;
        double *x = calloc((size_t)n, sizeof *x);
        for (int i = 0; i < 3; i++) x[tsr_prng_uniform(&g, (uint64_t)n)] = 1.0 + i;
        tsr_tile *P, *C, *D;
        tt_ok(tsr_tile_encode(be, &s, x, 1, 0, &P));
        tt_ok(tsr_tile_encrypt(be, &s, x, 1, 0, &C));
        tt_ok(tsr_tile_encode(dry, &s, x, 1, 0, &D));
        int64_t slots = 64, nt = C->ntiles;
        double *rp = calloc((size_t)(nt * slots), sizeof *rp),
               *rc = calloc((size_t)(nt * slots), sizeof *rc);
        tt_ok(tsr_tile_decrypt_raw(P, rp));
        tt_ok(tsr_tile_decrypt_raw(C, rc));
        int64_t want = 0;
        for (int64_t t = 0; t < nt; t++) {
            int any = 0;
            for (int64_t i = 0; i < slots; i++) {
                any |= rc[t * slots + i] != 0.0;
                assert_true(fabs(rp[t * slots + i] - rc[t * slots + i]) < TOL);
            }
            want += any;
            if ((P->v[t] != NULL) != any) fail_msg("%s: tile %lld", shapes[k], (long long)t);
            assert_int_equal(D->v[t] != NULL, any);
        }
        assert_int_equal(tsr_tile_num_encoded(P), want);
        tsr_tile_free(P);
        tsr_tile_free(C);
        tsr_tile_free(D);
        free(rp);
        free(rc);
        free(x);
    }
    tsr_backend_free(be);
    tsr_backend_free(dry);
}

/*
 * Convolution (layout I, 8 filters in 2 filter tiles): zeroing the filters of
 * one tile halves the products and drops exactly the channel-sum rotations
 * of the output tiles they made; the other outputs are unchanged.
 */
static void test_conv(void **state) {
    (void)state;
    tsr_prng g;
    tt_prng(&g, 1304);
    tsr_backend *be = tc_mockup_collecting(256, 3, 1);
    tsr_tile_shape is;
    tc_shape("[*/4, 7~/4, 6~/4, 3/2, 2/2]", 256, &is);
    double img[7 * 6 * 3 * 2], w[8 * 3 * 3 * 3];
    tc_random_dense(&g, img, sizeof img / sizeof *img, -1, 1);
    tc_random_dense(&g, w, sizeof w / sizeof *w, -1, 1);
    tsr_tile_conv_params p = { .x_dim = 1,
                               .y_dim = 2,
                               .c_dim = 3,
                               .f_dim = 0,
                               .stride_x = 1,
                               .stride_y = 1,
                               .pad_x = 1,
                               .pad_y = 1 };
    tsr_tile *x;
    tt_ok(tsr_tile_encrypt(be, &is, img, -1, 0, &x));
    tsr_backend_counts cd, cs;
    double out_d[8 * 7 * 6 * 2], out_s[8 * 7 * 6 * 2];
    for (int sparse = 0; sparse < 2; sparse++) {
        if (sparse)
            for (int i = 4 * 27; i < 8 * 27; i++) w[i] = 0.0; /* filters 4..7: filter tile 1 */
        tsr_tile_conv *cv;
        tsr_backend_reset_counts(be);
        tt_ok(tsr_tile_conv_create(be, &is, &p, w, 8, 3, 3, NULL, -1, 0, &cv));
        tsr_backend_counts ce;
        tsr_backend_get_counts(be, &ce);
        tsr_tile *r;
        tsr_backend_reset_counts(be);
        tt_ok(tsr_tile_conv_apply(cv, x, &r));
        tsr_backend_get_counts(be, sparse ? &cs : &cd);
        (sparse ? &cs : &cd)->encode = ce.encode;
        tt_ok(tsr_tile_decrypt(r, sparse ? out_s : out_d));
        tsr_tile_free(r);
        tsr_tile_conv_free(cv);
    }
    /* Output [8/4, 7~/4, 6~/4, 1?/2, 2/2]: filter f is the slowest index. */
    for (int i = 0; i < 8 * 7 * 6 * 2; i++) {
        int f = i / (7 * 6 * 2);
        double want = f < 4 ? out_d[i] : 0.0;
        if (fabs(out_s[i] - want) > TOL) fail_msg("element %d: %g, want %g", i, out_s[i], want);
    }
    assert_int_equal(cs.mul_plain * 2, cd.mul_plain);
    assert_int_equal(cs.encode * 2, cd.encode);
    /* 8 output tiles, 4 of them zero; each channel sum is log2(2) = 1 rotation. */
    assert_int_equal(cd.rotations - cs.rotations, 4);
    tsr_tile_free(x);
    tsr_backend_free(be);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_matvec_a),    cmocka_unit_test(test_matvec_b),
        cmocka_unit_test(test_elementwise), cmocka_unit_test(test_all_zero),
        cmocka_unit_test(test_conv),        cmocka_unit_test(test_sparse_encode),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
