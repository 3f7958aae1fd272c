/*
 * tests/test_tile_ops.c - tile-tensor operations on the mockup backend,
 * checked slot by slot against dense references on many random shapes and
 * tile shapes (awkward sizes, interleaving, `*` and `?`): elementwise
 * arithmetic with broadcasting, plaintext and scalar products, polynomials,
 * sums, duplication, clearing, reshaping, levels and scales, and the
 * operation counts and rotation steps the paper predicts.
 */
#include "tile_check.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define TOL 1e-9

static double *dense_new(const tsr_tile_shape *s) {
    double *x = calloc((size_t)tsr_tile_shape_num_elements(s), sizeof *x);
    assert_non_null(x);
    return x;
}

static tsr_tile *encrypt(tsr_backend *be, const tsr_tile_shape *s, const double *x) {
    tsr_tile *t = NULL;
    tt_ok(tsr_tile_encrypt(be, s, x, -1, 0, &t));
    return t;
}

/* Next multi-index (row-major); returns 0 after the last. */
static int next_index(const tsr_tile_shape *s, int64_t *c) {
    for (int i = s->ndims - 1; i >= 0; i--) {
        if (++c[i] < s->dim[i].size) return 1;
        c[i] = 0;
    }
    return 0;
}

/* Offset in operand o of result coordinates c (size-1 dimensions broadcast). */
static int64_t bcast_offset(const tsr_tile_shape *o, const int64_t *c) {
    int64_t off = 0;
    for (int i = 0; i < o->ndims; i++)
        off = off * o->dim[i].size + (o->dim[i].size == 1 ? 0 : c[i]);
    return off;
}

/* A random shape and a partner that is `*` in some dimensions. */
static void random_pair(tsr_prng *g, int64_t slots, unsigned flags, tsr_tile_shape *a,
                        tsr_tile_shape *b) {
    tc_random_shape(g, slots, 1 + (int)tsr_prng_uniform(g, 4), flags, 24, a);
    *b = *a;
    for (int i = 0; i < a->ndims; i++) {
        if (tsr_prng_uniform(g, 4) == 0) {
            b->dim[i] = (tsr_tile_dim){ .size = 1, .tile = a->dim[i].tile, .dup = 1 };
        } else if (tsr_prng_uniform(g, 4) == 0 && !a->dim[i].dup) {
            b->dim[i].unknown ^= 1;
        }
    }
    if (tsr_prng_uniform(g, 2)) {
        tsr_tile_shape t = *a;
        *a = *b;
        *b = t;
    }
}

/* random_pair, then data for both shapes drawn uniformly in [lo, hi) (a first, then b). */
static void random_data_pair(tsr_prng *g, int64_t slots, unsigned flags, double lo, double hi,
                             tsr_tile_shape *sa, tsr_tile_shape *sb, double **xa, double **xb) {
    random_pair(g, slots, flags, sa, sb);
    *xa = dense_new(sa);
    *xb = dense_new(sb);
    tc_random_dense(g, *xa, (size_t)tsr_tile_shape_num_elements(sa), lo, hi);
    tc_random_dense(g, *xb, (size_t)tsr_tile_shape_num_elements(sb), lo, hi);
}

/* y (shape ps, allocated) = xa * xb element by element, both broadcast to ps. */
static double *dense_product(const tsr_tile_shape *ps, const tsr_tile_shape *sa, const double *xa,
                             const tsr_tile_shape *sb, const double *xb) {
    double *y = dense_new(ps);
    int64_t c[TSR_TILE_MAX_DIMS] = { 0 }, e = 0;
    do y[e++] = xa[bcast_offset(sa, c)] * xb[bcast_offset(sb, c)];
    while (next_index(ps, c));
    return y;
}

static void test_elementwise(void **state) {
    (void)state;
    tsr_prng g;
    tt_prng(&g, 10);
    for (int it = 0; it < tc_iters(150); it++) {
        int64_t slots = (int64_t)1 << (2 + tsr_prng_uniform(&g, 5));
        tsr_backend *be = tc_mockup(slots, 3);
        tsr_tile_shape sa, sb;
        double *xa, *xb;
        random_data_pair(&g, slots, TC_ALL, -2, 2, &sa, &sb, &xa, &xb);
        tsr_tile *a = encrypt(be, &sa, xa), *b = encrypt(be, &sb, xb), *r;
        for (int op = 0; op < 4; op++) {
            switch (op) {
            case 0:
                tt_ok(tsr_tile_add(a, b, &r));
                break;
            case 1:
                tt_ok(tsr_tile_sub(a, b, &r));
                break;
            case 2:
                tt_ok(tsr_tile_mul(a, b, &r));
                break;
            default:
                tt_ok(tsr_tile_mul_lazy(a, b, &r));
                break;
            }
            const tsr_tile_shape *rs = tsr_tile_get_shape(r);
            double *want = dense_new(rs);
            int64_t c[TSR_TILE_MAX_DIMS] = { 0 }, e = 0;
            do {
                double u = xa[bcast_offset(&sa, c)], v = xb[bcast_offset(&sb, c)];
                want[e++] = op == 0 ? u + v : op == 1 ? u - v : u * v;
            } while (next_index(rs, c));
            tc_check(r, want, TOL);
            assert_int_equal(tsr_tile_level(r), op == 2 ? 2 : 3);
            free(want);
            tsr_tile_free(r);
        }
        /* Plaintext operands (encoded weights) on either side. */
        tsr_tile *pb;
        tt_ok(tsr_tile_encode(be, &sb, xb, -1, 0, &pb));
        tt_ok(tsr_tile_mul(pb, a, &r));
        double *want = dense_new(tsr_tile_get_shape(r));
        int64_t c[TSR_TILE_MAX_DIMS] = { 0 }, e = 0;
        do want[e++] = xa[bcast_offset(&sa, c)] * xb[bcast_offset(&sb, c)];
        while (next_index(tsr_tile_get_shape(r), c));
        tc_check(r, want, TOL);
        assert_true(fabs(tsr_tile_scale(r) / tsr_backend_scale(be, 2) - 1) < 1e-15);
        free(want);
        tsr_tile_free(r);
        tt_fails(tsr_tile_sub(pb, a, &r), TSR_ERR_INVALID_ARG);
        tsr_tile_free(pb);
        tsr_tile_free(a);
        tsr_tile_free(b);
        free(xa);
        free(xb);
        tsr_backend_free(be);
    }
}

static void test_flags(void **state) {
    (void)state;
    tsr_backend *be = tc_mockup(8, 3);
    tsr_tile_shape s5, sd, s5u;
    tc_shape("[5/8]", 8, &s5);
    tc_shape("[*/8]", 8, &sd);
    tc_shape("[5?/8]", 8, &s5u);
    double x[5] = { 1, 2, 3, 4, 5 }, d = 10;
    tsr_tile *a = encrypt(be, &s5, x), *b = encrypt(be, &sd, &d), *r, *r2;
    /* [5/8] + [*\/8]: padding now holds 10: unknown. */
    tt_ok(tsr_tile_add(a, b, &r));
    assert_true(tsr_tile_get_shape(r)->dim[0].unknown);
    double raw[8];
    tt_ok(tsr_tile_decrypt_raw(r, raw));
    assert_true(raw[7] == 10);
    /* Multiplying by a zero-padded plaintext clears it. */
    double ones[5] = { 1, 1, 1, 1, 1 };
    tt_ok(tsr_tile_mul_plain(r, &s5, ones, &r2));
    assert_false(tsr_tile_get_shape(r2)->dim[0].unknown);
    double want[5] = { 11, 12, 13, 14, 15 };
    tc_check(r2, want, TOL);
    tsr_tile_free(r2);
    /* So does clear, at one level. */
    tt_ok(tsr_tile_clear(r, &r2));
    assert_false(tsr_tile_get_shape(r2)->dim[0].unknown);
    assert_int_equal(tsr_tile_level(r2), 2);
    tc_check(r2, want, TOL);
    tsr_tile_free(r2);
    /* [5/8] * [*\/8] keeps zeros. */
    tt_ok(tsr_tile_mul(a, b, &r2));
    assert_false(tsr_tile_get_shape(r2)->dim[0].unknown);
    tsr_tile_free(r2);
    /* A sum over unknown padding is refused with a hint. */
    tt_fails(tsr_tile_sum(r, 0, &r2), TSR_ERR_SHAPE);
    assert_non_null(strstr(tsr_last_error(), "clear"));
    /* Clearing a tensor without unknowns uses no level. */
    tt_ok(tsr_tile_clear(a, &r2));
    assert_int_equal(tsr_tile_level(r2), 3);
    tsr_tile_free(r2);
    tsr_tile_free(r);
    /* Shape errors say what is wrong. */
    tsr_tile_shape s6, s4x2, s6i;
    tc_shape("[6/8]", 8, &s6);
    tc_shape("[4/4, 2/2]", 8, &s4x2);
    tc_shape("[5~/8]", 8, &s6i);
    double x6[8] = { 0 };
    tsr_tile *c6 = encrypt(be, &s6, x6), *c42 = encrypt(be, &s4x2, x6), *ci = encrypt(be, &s6i, x6);
    tt_fails(tsr_tile_add(a, c6, &r), TSR_ERR_SHAPE);
    assert_non_null(strstr(tsr_last_error(), "sizes 5 and 6"));
    assert_non_null(strstr(tsr_last_error(), "*/8"));
    tt_fails(tsr_tile_add(a, c42, &r), TSR_ERR_SHAPE);
    assert_non_null(strstr(tsr_last_error(), "1 and 2 dimensions"));
    tt_fails(tsr_tile_mul(a, ci, &r), TSR_ERR_SHAPE);
    assert_non_null(strstr(tsr_last_error(), "interleaved"));
    tsr_backend *be2 = tc_mockup(8, 3);
    tsr_tile *o = encrypt(be2, &s5, x);
    tt_fails(tsr_tile_add(a, o, &r), TSR_ERR_MISMATCH);
    tsr_tile_free(o);
    tsr_backend_free(be2);
    tsr_tile_free(c6);
    tsr_tile_free(c42);
    tsr_tile_free(ci);
    tsr_tile_free(a);
    tsr_tile_free(b);
    (void)s5u;
    tsr_backend_free(be);
}

static void test_scalars_plain(void **state) {
    (void)state;
    tsr_prng g;
    tt_prng(&g, 11);
    for (int it = 0; it < tc_iters(100); it++) {
        int64_t slots = (int64_t)1 << (2 + tsr_prng_uniform(&g, 5));
        tsr_backend *be = tc_mockup(slots, 3);
        tsr_tile_shape sa, sp;
        double *xa, *xp;
        random_data_pair(&g, slots, TC_INTERLEAVE | TC_DUP, -3, 3, &sa, &sp, &xa, &xp);
        int64_t n = tsr_tile_shape_num_elements(&sa);
        tsr_tile *a = encrypt(be, &sa, xa), *r;
        double cs[3] = { 0.37, -3.0, 1e-3 };
        for (int k = 0; k < 3; k++) {
            tt_ok(tsr_tile_mul_scalar(a, cs[k], &r));
            double *w = dense_new(&sa);
            for (int64_t i = 0; i < n; i++) w[i] = xa[i] * cs[k];
            tc_check(r, w, TOL);
            /* Integers need no level. */
            assert_int_equal(tsr_tile_level(r), k == 1 ? 3 : 2);
            assert_true(fabs(tsr_tile_scale(r) / tsr_backend_scale(be, tsr_tile_level(r)) - 1) <
                        1e-15);
            tsr_tile_free(r);
            tt_ok(tsr_tile_add_scalar(a, cs[k], &r));
            for (int64_t i = 0; i < n; i++) w[i] = xa[i] + cs[k];
            tc_check(r, w, TOL);
            assert_true(tsr_tile_shape_equal(tsr_tile_get_shape(r), &sa));
            tsr_tile_free(r);
            free(w);
        }
        for (int k = 0; k < 2; k++) {
            if (k == 0)
                tt_ok(tsr_tile_mul_plain(a, &sp, xp, &r));
            else
                tt_ok(tsr_tile_add_plain(a, &sp, xp, &r));
            const tsr_tile_shape *rs = tsr_tile_get_shape(r);
            double *w = dense_new(rs);
            int64_t c[TSR_TILE_MAX_DIMS] = { 0 }, e = 0;
            do {
                double u = xa[bcast_offset(&sa, c)], v = xp[bcast_offset(&sp, c)];
                w[e++] = k == 0 ? u * v : u + v;
            } while (next_index(rs, c));
            tc_check(r, w, TOL);
            assert_int_equal(tsr_tile_level(r), k == 0 ? 2 : 3);
            free(w);
            tsr_tile_free(r);
        }
        tsr_tile_free(a);
        free(xa);
        free(xp);
        tsr_backend_free(be);
    }
}

static double horner(const double *c, int deg, double x) {
    double y = 0;
    for (int i = deg; i >= 0; i--) y = y * x + c[i];
    return y;
}

static void test_poly(void **state) {
    (void)state;
    tsr_prng g;
    tt_prng(&g, 12);
    assert_int_equal(tsr_tile_poly_depth(NULL, 1), 1);
    assert_int_equal(tsr_tile_poly_depth(NULL, 2), 2);
    assert_int_equal(tsr_tile_poly_depth(NULL, 3), 2);
    assert_int_equal(tsr_tile_poly_depth(NULL, 4), 3);
    assert_int_equal(tsr_tile_poly_depth(NULL, 7), 3);
    assert_int_equal(tsr_tile_poly_depth(NULL, 8), 4);
    assert_int_equal(tsr_tile_poly_depth(NULL, 31), 5);
    double trailing[4] = { 1, 2, 0, 0 };
    assert_int_equal(tsr_tile_poly_depth(trailing, 3), 1);
    for (int it = 0; it < tc_iters(60); it++) {
        int64_t slots = (int64_t)1 << (2 + tsr_prng_uniform(&g, 4));
        tsr_backend *be = tc_mockup(slots, 7);
        tsr_tile_shape s;
        tc_random_shape(&g, slots, 1 + (int)tsr_prng_uniform(&g, 3), TC_INTERLEAVE | TC_DUP, 8, &s);
        int64_t n = tsr_tile_shape_num_elements(&s);
        double *x = dense_new(&s), *w = dense_new(&s);
        tc_random_dense(&g, x, (size_t)n, -1, 1);
        int deg = 1 + (int)tsr_prng_uniform(&g, 12);
        double coef[16];
        tc_random_dense(&g, coef, (size_t)deg + 1, -1, 1);
        if (it % 3 == 0) coef[0] = 0;
        if (it % 5 == 0) coef[1] = 0;
        tsr_tile *a = encrypt(be, &s, x), *r;
        tsr_backend_reset_counts(be);
        tt_ok(tsr_tile_poly(a, coef, deg, &r));
        int depth = tsr_tile_poly_depth(coef, deg);
        assert_int_equal(tsr_tile_level(r), 7 - depth);
        assert_int_equal(tsr_backend_depth_used(be), depth);
        assert_true(fabs(tsr_tile_scale(r) / tsr_backend_scale(be, 7 - depth) - 1) < 1e-15);
        for (int i = 0; i < s.ndims; i++) {
            int padded =
                !s.dim[i].dup && s.dim[i].size < tsr_tile_shape_external(&s, i) * s.dim[i].tile;
            assert_int_equal(tsr_tile_get_shape(r)->dim[i].unknown, coef[0] != 0 && padded);
        }
        for (int64_t i = 0; i < n; i++) w[i] = horner(coef, deg, x[i]);
        tc_check(r, w, 1e-8);
        tsr_tile_free(r);
        tsr_tile_free(a);
        free(x);
        free(w);
        tsr_backend_free(be);
    }
    /* Not enough levels. */
    tsr_backend *be = tc_mockup(8, 2);
    tsr_tile_shape s;
    tc_shape("[8/8]", 8, &s);
    double x[8] = { 0 }, c[5] = { 1, 1, 1, 1, 1 };
    tsr_tile *a = encrypt(be, &s, x), *r;
    tt_fails(tsr_tile_poly(a, c, 4, &r), TSR_ERR_LEVEL);
    assert_non_null(strstr(tsr_last_error(), "depth 3"));
    tt_ok(tsr_tile_poly(a, c, 3, &r));
    tsr_tile_free(r);
    tsr_tile_free(a);
    tsr_backend_free(be);
}

/* Dense sum of x (shape s) over dimension d into y (shape with size 1 there). */
static void dense_sum(const tsr_tile_shape *s, const double *x, int d, double *y) {
    tsr_tile_shape o = *s;
    o.dim[d].size = 1;
    memset(y, 0, (size_t)tsr_tile_shape_num_elements(&o) * sizeof *y);
    int64_t c[TSR_TILE_MAX_DIMS] = { 0 }, e = 0;
    do {
        int64_t k = c[d];
        c[d] = 0;
        y[tc_offset(&o, c)] += x[e++];
        c[d] = k;
    } while (next_index(s, c));
}

static void test_sum_duplicate(void **state) {
    (void)state;
    tsr_prng g;
    tt_prng(&g, 13);
    for (int it = 0; it < tc_iters(120); it++) {
        int64_t slots = (int64_t)1 << (2 + tsr_prng_uniform(&g, 5));
        tsr_backend *be = tc_mockup_collecting(slots, 2, 1);
        tsr_tile_shape s;
        tc_random_shape(&g, slots, 1 + (int)tsr_prng_uniform(&g, 4), TC_INTERLEAVE | TC_DUP, 24,
                        &s);
        int64_t n = tsr_tile_shape_num_elements(&s);
        double *x = dense_new(&s), *y = dense_new(&s);
        tc_random_dense(&g, x, (size_t)n, -1, 1);
        tsr_tile *a = encrypt(be, &s, x);
        int d = (int)tsr_prng_uniform(&g, (uint64_t)s.ndims);
        tsr_tile *r, *c, *u;
        tsr_backend_reset_counts(be);
        tt_ok(tsr_tile_sum(a, d, &r));
        dense_sum(&s, x, d, y);
        tc_check(r, y, TOL);
        const tsr_tile_dim *rd = &tsr_tile_get_shape(r)->dim[d];
        assert_int_equal(rd->size, 1);
        int first = 1;
        for (int i = 0; i < d; i++) first &= s.dim[i].tile == 1;
        if (s.dim[d].dup) {
            assert_true(rd->dup);
        } else if (s.dim[d].tile > 1) {
            assert_true(first ? rd->dup : (rd->unknown && !rd->dup));
            /* log2(t) rotations per output tile, by stride * t/2, ..., stride. */
            tsr_backend_counts cnt;
            tsr_backend_get_counts(be, &cnt);
            int lg = 0;
            while (((int64_t)1 << lg) < s.dim[d].tile) lg++;
            int64_t out_tiles = tsr_tile_shape_num_tiles(tsr_tile_get_shape(r));
            assert_int_equal(cnt.rotations, (uint64_t)(lg * out_tiles));
            assert_int_equal(cnt.add,
                             (uint64_t)(out_tiles * (lg + tsr_tile_shape_external(&s, d) - 1)));
            assert_int_equal(tsr_backend_depth_used(be), 0);
            int64_t stride = 1, steps[32];
            for (int i = d + 1; i < s.ndims; i++) stride *= s.dim[i].tile;
            assert_int_equal(tsr_backend_used_rotations(be, steps, 32), (size_t)lg);
            for (int k = 0; k < lg; k++) assert_int_equal(steps[k], stride << k);
        }
        /* 1? -> clear -> duplicate gives a star dimension with every replica right. */
        tt_ok(tsr_tile_clear(r, &c));
        tt_ok(tsr_tile_duplicate(c, d, &u));
        assert_true(tsr_tile_get_shape(u)->dim[d].dup);
        tc_check(u, y, TOL);
        tsr_tile_free(u);
        if (rd->unknown) tt_fails(tsr_tile_duplicate(r, d, &u), TSR_ERR_SHAPE);
        tsr_tile_free(c);
        tsr_tile_free(r);
        if (!s.dim[d].dup && s.dim[d].size > 1)
            tt_fails(tsr_tile_duplicate(a, d, &r), TSR_ERR_SHAPE);
        tsr_tile_free(a);
        free(x);
        free(y);
        tsr_backend_free(be);
    }
}

static void test_mul_sum_random(void **state) {
    (void)state;
    tsr_prng g;
    tt_prng(&g, 14);
    for (int it = 0; it < tc_iters(120); it++) {
        int64_t slots = (int64_t)1 << (2 + tsr_prng_uniform(&g, 5));
        tsr_backend *be = tc_mockup_collecting(slots, 2, 1);
        tsr_tile_shape sa, sb;
        double *xa, *xb;
        random_data_pair(&g, slots, TC_INTERLEAVE | TC_DUP, -1, 1, &sa, &sb, &xa, &xb);
        tsr_tile *a = encrypt(be, &sa, xa), *b, *r, *p;
        if (it % 2)
            tt_ok(tsr_tile_encode(be, &sb, xb, -1, 0, &b));
        else
            b = encrypt(be, &sb, xb);
        int d = (int)tsr_prng_uniform(&g, (uint64_t)sa.ndims);
        tt_ok(tsr_tile_mul_sum(a, b, d, &r));
        tt_ok(tsr_tile_mul(a, b, &p));
        const tsr_tile_shape *ps = tsr_tile_get_shape(p);
        double *prod = dense_product(ps, &sa, xa, &sb, xb), *y = dense_new(ps);
        dense_sum(ps, prod, d, y);
        tc_check(r, y, TOL);
        assert_int_equal(tsr_tile_level(r), 1);
        tsr_tile_free(r);
        tsr_tile_free(p);
        tsr_tile_free(a);
        tsr_tile_free(b);
        free(xa);
        free(xb);
        free(prod);
        free(y);
        tsr_backend_free(be);
    }
}

/* Products summed over several dimensions at once. */
static void test_mul_sum_dims(void **state) {
    (void)state;
    tsr_prng g;
    tt_prng(&g, 15);
    for (int it = 0; it < tc_iters(100); it++) {
        int64_t slots = (int64_t)1 << (2 + tsr_prng_uniform(&g, 5));
        tsr_backend *be = tc_mockup_collecting(slots, 2, 1);
        tsr_tile_shape sa, sb;
        double *xa, *xb;
        random_data_pair(&g, slots, TC_INTERLEAVE | TC_DUP, -1, 1, &sa, &sb, &xa, &xb);
        tsr_tile *a = encrypt(be, &sa, xa), *b, *r, *p;
        tt_ok(tsr_tile_encode(be, &sb, xb, -1, 0, &b));
        int dims[TSR_TILE_MAX_DIMS], nd = 0;
        for (int i = 0; i < sa.ndims; i++)
            if (tsr_prng_uniform(&g, 2) || (i == sa.ndims - 1 && nd == 0)) dims[nd++] = i;
        /* Any order. */
        if (nd > 1 && tsr_prng_uniform(&g, 2)) {
            int t = dims[0];
            dims[0] = dims[nd - 1];
            dims[nd - 1] = t;
        }
        tsr_backend_reset_counts(be);
        tt_ok(tsr_tile_mul_sum_dims(a, b, dims, nd, &r));
        tsr_backend_counts c;
        tsr_backend_get_counts(be, &c);
        /* One rescale per output tile, whatever the number of summed dimensions. */
        assert_int_equal(c.rescale, (uint64_t)tsr_tile_shape_num_tiles(tsr_tile_get_shape(r)));
        tt_ok(tsr_tile_mul(a, b, &p));
        const tsr_tile_shape *ps = tsr_tile_get_shape(p);
        double *y = dense_product(ps, &sa, xa, &sb, xb), *z = dense_new(ps);
        tsr_tile_shape cur = *ps;
        for (int k = 0; k < nd; k++) {
            dense_sum(&cur, y, dims[k], z);
            cur.dim[dims[k]].size = 1;
            memcpy(y, z, (size_t)tsr_tile_shape_num_elements(&cur) * sizeof *y);
        }
        tc_check(r, y, TOL);
        tsr_tile_free(r);
        tsr_tile_free(p);
        tsr_tile_free(a);
        tsr_tile_free(b);
        free(xa);
        free(xb);
        free(y);
        free(z);
        tsr_backend_free(be);
    }
}

static void test_levels_scales(void **state) {
    (void)state;
    tsr_backend *be = tc_mockup(16, 4);
    tsr_tile_shape s;
    tc_shape("[3/4, 5~/4]", 16, &s);
    double x[15], y[15], w[15];
    for (int i = 0; i < 15; i++) {
        x[i] = 0.1 * i;
        y[i] = 1 - 0.05 * i;
    }
    tsr_tile *a = encrypt(be, &s, x), *b = encrypt(be, &s, y), *a2, *r;
    /* a2 = a * 0.5 at level 3 with a (slightly) drifted scale after a product. */
    tt_ok(tsr_tile_mul(a, b, &a2));
    assert_int_equal(tsr_tile_level(a2), 3);
    assert_false(tsr_tile_scale(a2) == tsr_tile_scale(b));
    /* Adding operands at levels 4 and 3: b is brought down exactly. */
    tt_ok(tsr_tile_add(a2, b, &r));
    for (int i = 0; i < 15; i++) w[i] = x[i] * y[i] + y[i];
    tc_check(r, w, TOL);
    assert_int_equal(tsr_tile_level(r), 3);
    tsr_tile_free(r);
    tt_ok(tsr_tile_add(b, a2, &r));
    tc_check(r, w, TOL);
    tsr_tile_free(r);
    /* Explicit level and scale changes. */
    tt_ok(tsr_tile_relevel(b, 1, &r));
    assert_int_equal(tsr_tile_level(r), 1);
    assert_true(tsr_tile_scale(r) == tsr_tile_scale(b));
    tc_check(r, y, TOL);
    tsr_tile_free(r);
    tt_fails(tsr_tile_relevel(a2, 4, &r), TSR_ERR_LEVEL);
    tt_ok(tsr_tile_set_level_scale(b, 2, ldexp(1, 35), &r));
    assert_int_equal(tsr_tile_level(r), 2);
    assert_true(fabs(tsr_tile_scale(r) / ldexp(1, 35) - 1) < 1e-12);
    tc_check(r, y, TOL);
    tsr_tile_free(r);
    tt_fails(tsr_tile_set_level_scale(a2, 3, ldexp(1, 35), &r), TSR_ERR_SCALE);
    /* Lazy products accumulate at one scale, then one rescale. */
    tsr_tile *l1, *l2, *acc;
    tt_ok(tsr_tile_mul_lazy(a, b, &l1));
    tt_ok(tsr_tile_mul_lazy(b, b, &l2));
    tt_ok(tsr_tile_add(l1, l2, &acc));
    tt_ok(tsr_tile_rescale(acc, &r));
    for (int i = 0; i < 15; i++) w[i] = x[i] * y[i] + y[i] * y[i];
    tc_check(r, w, TOL);
    assert_int_equal(tsr_tile_level(r), 3);
    tsr_tile_free(r);
    /* Mixing a lazy product with a rescaled one is a scale error. */
    tt_fails(tsr_tile_add(l1, b, &r), TSR_ERR_SCALE);
    tsr_tile_free(l1);
    tsr_tile_free(l2);
    tsr_tile_free(acc);
    /* Depth exhausted. */
    tsr_tile *z;
    tt_ok(tsr_tile_relevel(a, 0, &z));
    tt_fails(tsr_tile_mul(z, z, &r), TSR_ERR_LEVEL);
    tt_fails(tsr_tile_mul_scalar(z, 0.5, &r), TSR_ERR_LEVEL);
    tt_fails(tsr_tile_mul_plain(z, &s, x, &r), TSR_ERR_LEVEL);
    tt_fails(tsr_tile_mul_sum(z, z, 0, &r), TSR_ERR_LEVEL);
    tsr_tile_free(z);
    tsr_tile_free(a);
    tsr_tile_free(a2);
    tsr_tile_free(b);
    tsr_backend_free(be);
}

static void test_reshape(void **state) {
    (void)state;
    tsr_backend *be = tc_mockup(16, 2);
    tsr_tile_shape s, f, bad, split, unk;
    tc_shape("[4/2, 8/8]", 16, &s);
    tc_shape("[32/16]", 16, &f);
    double x[32];
    for (int i = 0; i < 32; i++) x[i] = i + 1;
    tsr_tile *a = encrypt(be, &s, x), *r, *r2;
    tsr_backend_counts c0, c1;
    tsr_backend_get_counts(be, &c0);
    tt_ok(tsr_tile_reshape(a, &f, &r));
    tsr_backend_get_counts(be, &c1);
    assert_int_equal(c0.rotations + c0.mul_ct + c0.mul_plain + c0.add,
                     c1.rotations + c1.mul_ct + c1.mul_plain + c1.add);
    tc_check(r, x, TOL);
    /* And back, and split differently. */
    tt_ok(tsr_tile_reshape(r, &s, &r2));
    tc_check(r2, x, TOL);
    tsr_tile_free(r2);
    tc_shape("[2/1, 2/2, 8/8]", 16, &split);
    tt_ok(tsr_tile_reshape(r, &split, &r2));
    tc_check(r2, x, TOL);
    tsr_tile_free(r2);
    tsr_tile_free(r);
    /* Padding in the inner dimension moves data: refused. */
    tsr_tile_shape s3;
    tc_shape("[3/2, 6/8]", 16, &s3);
    tc_shape("[18/16]", 16, &bad);
    tsr_tile *b = encrypt(be, &s3, x);
    tt_fails(tsr_tile_reshape(b, &bad, &r), TSR_ERR_SHAPE);
    assert_non_null(strstr(tsr_last_error(), "moving data"));
    tsr_tile_free(b);
    /* Declaring unknowns is fine; declaring zeros over unknowns is not. */
    tsr_tile_shape s5, s5u;
    tc_shape("[5/16]", 16, &s5);
    tc_shape("[5?/16]", 16, &s5u);
    tsr_tile *c = encrypt(be, &s5, x);
    tt_ok(tsr_tile_reshape(c, &s5u, &r));
    tt_fails(tsr_tile_reshape(r, &s5, &r2), TSR_ERR_SHAPE);
    tsr_tile_free(r);
    tsr_tile_free(c);
    tc_shape("[2/2, 8/8]", 16, &unk);
    tt_fails(tsr_tile_reshape(a, &unk, &r), TSR_ERR_SHAPE);
    tsr_tile_free(a);
    tsr_backend_free(be);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_elementwise),   cmocka_unit_test(test_flags),
        cmocka_unit_test(test_scalars_plain), cmocka_unit_test(test_poly),
        cmocka_unit_test(test_sum_duplicate), cmocka_unit_test(test_mul_sum_random),
        cmocka_unit_test(test_mul_sum_dims),  cmocka_unit_test(test_levels_scales),
        cmocka_unit_test(test_reshape),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
