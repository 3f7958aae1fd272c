/*
 * tests/test_graph.c - the model graph: every kernel against the test's own
 * loops (convolution with groups/strides/dilations/pads, Gemm with its
 * attributes, broadcast MatMul, average pooling with count_include_pad and
 * ceil_mode, data movement, reductions), dgemm against the naive kernels,
 * a DAG with shared values, polynomial recognition, and every error path of
 * building, finalizing and running a graph.
 */
#include "testutil.h"

#include "tessera.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static void expect_msg(const char *needle) {
    if (!strstr(tsr_last_error(), needle))
        fail_msg("error '%s' does not mention '%s'", tsr_last_error(), needle);
}

static tsr_array *arr(int rank, const int64_t *dims, uint64_t seed) {
    tsr_array *t;
    tt_ok(tsr_array_create(&t, rank, dims));
    tsr_prng g;
    tt_prng(&g, seed);
    for (size_t i = 0; i < t->numel; i++)
        t->data[i] = (double)(tsr_prng_u64(&g) % 2001) / 1000.0 - 1.0;
    return t;
}

/* Run a one-input graph and return output 0. */
static tsr_array *run1(const tsr_graph *g, const tsr_array *x) {
    const tsr_array *in[1] = { x };
    tsr_array *out[4] = { NULL };
    tt_ok(tsr_graph_run(g, in, out));
    return out[0];
}

static void expect_close(const tsr_array *got, const double *want, size_t n, double tol) {
    assert_int_equal(got->numel, n);
    for (size_t i = 0; i < n; i++)
        if (fabs(got->data[i] - want[i]) > tol)
            fail_msg("element %zu: got %.12g, want %.12g", i, got->data[i], want[i]);
}

/* ---- convolution ------------------------------------------------------------- */

static void test_conv(void **state) {
    (void)state;
    /* x (2, 4, 7, 6), w (6, 2, 3, 2), group 2, stride (2, 1), dilation (1, 2), pads (1,0,2,1) */
    int64_t xd[4] = { 2, 4, 7, 6 }, wd[4] = { 6, 2, 3, 2 }, bd[1] = { 6 };
    tsr_array *x = arr(4, xd, 1), *w = arr(4, wd, 2), *b = arr(1, bd, 3);
    tsr_graph *g;
    tt_ok(tsr_graph_create(&g));
    tt_ok(tsr_graph_add_input(g, "x", 4, (int64_t[]){ -1, 4, 7, 6 }));
    tt_ok(tsr_graph_add_const(g, "w", w));
    tt_ok(tsr_graph_add_const(g, "b", b));
    tsr_graph_attrs a;
    tsr_graph_attrs_default(&a);
    a.group = 2;
    a.strides[0] = 2;
    a.strides[1] = 1;
    a.dilations[0] = 1;
    a.dilations[1] = 2;
    a.pads[0] = 1, a.pads[1] = 0, a.pads[2] = 2, a.pads[3] = 1;
    tt_ok(tsr_graph_add_node(g, TSR_NODE_CONV, "c", 3, (const char *[]){ "x", "w", "b" }, "y", &a));
    tt_ok(tsr_graph_add_output(g, "y"));
    tt_ok(tsr_graph_finalize(g));
    /* Output: H = (7 + 3 - 3) / 2 + 1 = 4, W = (6 + 1 - 3) / 1 + 1 = 5. */
    int64_t OH = 4, OW = 5;
    double *want = calloc((size_t)(2 * 6 * OH * OW), sizeof *want);
    for (int n = 0; n < 2; n++)
        for (int m = 0; m < 6; m++)
            for (int oh = 0; oh < OH; oh++)
                for (int ow = 0; ow < OW; ow++) {
                    double s = b->data[m];
                    int gi = m / 3;
                    for (int c = 0; c < 2; c++)
                        for (int kh = 0; kh < 3; kh++)
                            for (int kw = 0; kw < 2; kw++) {
                                int ih = oh * 2 - 1 + kh, iw = ow - 0 + kw * 2;
                                if (ih < 0 || ih >= 7 || iw < 0 || iw >= 6) continue;
                                s += w->data[((m * 2 + c) * 3 + kh) * 2 + kw] *
                                     x->data[((n * 4 + gi * 2 + c) * 7 + ih) * 6 + iw];
                            }
                    want[((n * 6 + m) * OH + oh) * OW + ow] = s;
                }
    for (int naive = 0; naive < 2; naive++) {
        tsr_graph_set_naive(naive);
        tsr_array *y = run1(g, x);
        assert_int_equal(y->rank, 4);
        assert_int_equal(y->dims[2], OH);
        assert_int_equal(y->dims[3], OW);
        expect_close(y, want, (size_t)(2 * 6 * OH * OW), 1e-12);
        tsr_array_free(y);
    }
    tsr_graph_set_naive(0);
    free(want);
    tsr_array_free(x);
    tsr_array_free(w);
    tsr_array_free(b);
    tsr_graph_free(g);
}

/*
 * The dgemm path's im2col copies whole rows of the output's last dimension between zeros;
 * against the naive loop on geometries where rows start and end in padding, lie wholly in
 * padding (a kernel taller than the input plus its pads), step by a stride, in 1-D, 2-D, 3-D.
 */
static void conv_fast_vs_naive(int ns, const int64_t *xd, const int64_t *wd, const int64_t *s,
                               const int64_t *d, const int64_t *pads, int group) {
    const int r = ns + 2;
    tsr_array *x = arr(r, xd, 11), *w = arr(r, wd, 12);
    tsr_graph *g;
    tt_ok(tsr_graph_create(&g));
    tt_ok(tsr_graph_add_input(g, "x", r, xd));
    tt_ok(tsr_graph_add_const(g, "w", w));
    tsr_graph_attrs a;
    tsr_graph_attrs_default(&a);
    a.group = group;
    for (int i = 0; i < ns; i++) {
        a.strides[i] = s[i];
        a.dilations[i] = d[i];
        a.pads[i] = pads[i];
        a.pads[ns + i] = pads[ns + i];
    }
    tt_ok(tsr_graph_add_node(g, TSR_NODE_CONV, "c", 2, (const char *[]){ "x", "w" }, "y", &a));
    tt_ok(tsr_graph_add_output(g, "y"));
    tt_ok(tsr_graph_finalize(g));
    tsr_graph_set_naive(1);
    tsr_array *want = run1(g, x);
    tsr_graph_set_naive(0);
    tsr_array *got = run1(g, x);
    assert_int_equal(got->numel, want->numel);
    assert_true(want->numel > 0);
    for (size_t i = 0; i < got->numel; i++)
        if (fabs(got->data[i] - want->data[i]) > 1e-12 * (1 + fabs(want->data[i])))
            fail_msg("element %zu: got %.17g, want %.17g", i, got->data[i], want->data[i]);
    tsr_array_free(got);
    tsr_array_free(want);
    tsr_array_free(x);
    tsr_array_free(w);
    tsr_graph_free(g);
}

static void test_conv_rows(void **state) {
    (void)state;
    /* 2-D 3x3, stride 1, pads 1: the common case (contiguous rows, one zero at each end) */
    conv_fast_vs_naive(2, (int64_t[]){ 2, 3, 6, 5 }, (int64_t[]){ 4, 3, 3, 3 }, (int64_t[]){ 1, 1 },
                       (int64_t[]){ 1, 1 }, (int64_t[]){ 1, 1, 1, 1 }, 1);
    /* 2-D kernel 5x4 on a 2x4 input, pads (2,0,2,3): whole rows in padding, zeros at the end */
    conv_fast_vs_naive(2, (int64_t[]){ 1, 2, 2, 4 }, (int64_t[]){ 2, 1, 5, 4 }, (int64_t[]){ 1, 1 },
                       (int64_t[]){ 1, 1 }, (int64_t[]){ 2, 0, 2, 3 }, 2);
    /* 1-D stride 2, dilation 2, pads (3, 1) */
    conv_fast_vs_naive(1, (int64_t[]){ 2, 2, 9 }, (int64_t[]){ 3, 2, 3 }, (int64_t[]){ 2 },
                       (int64_t[]){ 2 }, (int64_t[]){ 3, 1 }, 1);
    /* 3-D strides (1, 2, 3), dilations (1, 1, 2), asymmetric pads */
    conv_fast_vs_naive(3, (int64_t[]){ 1, 2, 3, 5, 7 }, (int64_t[]){ 2, 2, 2, 3, 2 },
                       (int64_t[]){ 1, 2, 3 }, (int64_t[]){ 1, 1, 2 },
                       (int64_t[]){ 1, 0, 2, 0, 1, 1 }, 1);
}

/* ---- polynomials ----------------------------------------------------------------- */

/* POLY with one coefficient row per channel (axis 1) on runs that are no multiple of four:
 * the same bits as one Horner loop per element (y = 0; y = y * x + c_k, top down). */
static void test_poly_channels(void **state) {
    (void)state;
    int64_t xd[3] = { 2, 3, 7 }, cd[2] = { 3, 4 };
    tsr_array *x = arr(3, xd, 21), *c = arr(2, cd, 22);
    x->data[5] = INFINITY;
    x->data[9] = NAN;
    tsr_graph *g;
    tt_ok(tsr_graph_create(&g));
    tt_ok(tsr_graph_add_input(g, "x", 3, xd));
    tt_ok(tsr_graph_add_const(g, "c", c));
    tsr_graph_attrs a;
    tsr_graph_attrs_default(&a);
    a.axis = 1;
    tt_ok(tsr_graph_add_node(g, TSR_NODE_POLY, "p", 2, (const char *[]){ "x", "c" }, "y", &a));
    tt_ok(tsr_graph_add_output(g, "y"));
    tt_ok(tsr_graph_finalize(g));
    tsr_array *y = run1(g, x);
    assert_int_equal(y->numel, x->numel);
    for (size_t i = 0; i < x->numel; i++) {
        const double *cf = c->data + ((i / 7) % 3) * 4;
        double want = 0;
        for (int k = 3; k >= 0; k--) want = want * x->data[i] + cf[k];
        if (memcmp(&want, &y->data[i], sizeof want) != 0)
            fail_msg("element %zu: got %.17g, want %.17g", i, y->data[i], want);
    }
    tsr_array_free(y);
    tsr_array_free(x);
    tsr_array_free(c);
    tsr_graph_free(g);
}

/* ---- Gemm and MatMul ----------------------------------------------------------- */

static void test_gemm(void **state) {
    (void)state;
    /* A' (4, 3) stored as (3, 4) with transA; B' (3, 5) stored (5, 3) with transB; C (5). */
    int64_t ad[2] = { 3, 4 }, bd[2] = { 5, 3 }, cd[1] = { 5 };
    tsr_array *A = arr(2, ad, 4), *B = arr(2, bd, 5), *C = arr(1, cd, 6);
    tsr_graph *g;
    tt_ok(tsr_graph_create(&g));
    tt_ok(tsr_graph_add_input(g, "a", 2, ad));
    tt_ok(tsr_graph_add_input(g, "b", 2, bd));
    tt_ok(tsr_graph_add_const(g, "c", C));
    tsr_graph_attrs at;
    tsr_graph_attrs_default(&at);
    at.trans_a = at.trans_b = 1;
    at.alpha = 0.25;
    at.beta = -2;
    tt_ok(
        tsr_graph_add_node(g, TSR_NODE_GEMM, NULL, 3, (const char *[]){ "a", "b", "c" }, "y", &at));
    tt_ok(tsr_graph_add_output(g, "y"));
    tt_ok(tsr_graph_finalize(g));
    double want[20];
    for (int i = 0; i < 4; i++)
        for (int j = 0; j < 5; j++) {
            double s = 0;
            for (int k = 0; k < 3; k++) s += A->data[k * 4 + i] * B->data[j * 3 + k];
            want[i * 5 + j] = 0.25 * s - 2 * C->data[j];
        }
    for (int naive = 0; naive < 2; naive++) {
        tsr_graph_set_naive(naive);
        const tsr_array *in[2] = { A, B };
        tsr_array *out[1];
        tt_ok(tsr_graph_run(g, in, out));
        expect_close(out[0], want, 20, 1e-12);
        tsr_array_free(out[0]);
    }
    tsr_graph_set_naive(0);
    tsr_graph_free(g);
    tsr_array_free(A);
    tsr_array_free(B);
    tsr_array_free(C);
}

static void test_matmul_broadcast(void **state) {
    (void)state;
    /* (2, 1, 3, 4) x (3, 4, 5) -> (2, 3, 3, 5): two activations */
    int64_t ad[4] = { 2, 1, 3, 4 }, bd[3] = { 3, 4, 5 };
    tsr_array *A = arr(4, ad, 7), *B = arr(3, bd, 8);
    tsr_graph *g;
    tt_ok(tsr_graph_create(&g));
    tt_ok(tsr_graph_add_input(g, "a", 4, ad));
    tt_ok(tsr_graph_add_input(g, "b", 3, bd));
    tt_ok(tsr_graph_add_node(g, TSR_NODE_MATMUL, "mm", 2, (const char *[]){ "a", "b" }, "y", NULL));
    tt_ok(tsr_graph_add_output(g, "y"));
    tt_ok(tsr_graph_finalize(g));
    double want[2 * 3 * 3 * 5];
    for (int p = 0; p < 2; p++)
        for (int q = 0; q < 3; q++)
            for (int i = 0; i < 3; i++)
                for (int j = 0; j < 5; j++) {
                    double s = 0;
                    for (int k = 0; k < 4; k++)
                        s += A->data[(p * 3 + i) * 4 + k] * B->data[(q * 4 + k) * 5 + j];
                    want[((p * 3 + q) * 3 + i) * 5 + j] = s;
                }
    for (int naive = 0; naive < 2; naive++) {
        tsr_graph_set_naive(naive);
        const tsr_array *in[2] = { A, B };
        tsr_array *out[1];
        tt_ok(tsr_graph_run(g, in, out));
        assert_int_equal(out[0]->rank, 4);
        assert_int_equal(out[0]->dims[1], 3);
        expect_close(out[0], want, 90, 1e-12);
        tsr_array_free(out[0]);
    }
    tsr_graph_set_naive(0);
    tsr_graph_free(g);
    tsr_array_free(A);
    tsr_array_free(B);
}

/* ---- pooling ------------------------------------------------------------------- */

static void check_avgpool(int include_pad, int ceil_mode, tsr_graph_autopad ap) {
    int64_t xd[4] = { 1, 2, 5, 5 };
    tsr_array *x = arr(4, xd, 9);
    tsr_graph *g;
    tt_ok(tsr_graph_create(&g));
    tt_ok(tsr_graph_add_input(g, "x", 4, xd));
    tsr_graph_attrs a;
    tsr_graph_attrs_default(&a);
    a.n_kernel = 2;
    a.kernel[0] = a.kernel[1] = 3;
    a.strides[0] = a.strides[1] = 2;
    a.auto_pad = ap;
    if (ap == TSR_AUTOPAD_NOTSET) a.pads[0] = a.pads[1] = a.pads[2] = a.pads[3] = 1;
    a.count_include_pad = include_pad;
    a.ceil_mode = ceil_mode;
    tt_ok(tsr_graph_add_node(g, TSR_NODE_AVGPOOL, "p", 1, (const char *[]){ "x" }, "y", &a));
    tt_ok(tsr_graph_add_output(g, "y"));
    tt_ok(tsr_graph_finalize(g));
    tsr_array *y = run1(g, x);
    /* pads 1: (5 + 2 - 3) / 2 + 1 = 3 either way; SAME: ceil(5 / 2) = 3, total pad 2 -> 1, 1;
       SAME_LOWER equal here. */
    assert_int_equal(y->dims[2], 3);
    double want[18];
    for (int c = 0; c < 2; c++)
        for (int oh = 0; oh < 3; oh++)
            for (int ow = 0; ow < 3; ow++) {
                double s = 0;
                int cnt = 0;
                for (int kh = 0; kh < 3; kh++)
                    for (int kw = 0; kw < 3; kw++) {
                        int ih = oh * 2 - 1 + kh, iw = ow * 2 - 1 + kw;
                        int inside = ih >= 0 && ih < 5 && iw >= 0 && iw < 5;
                        if (inside) s += x->data[(c * 5 + ih) * 5 + iw];
                        cnt += include_pad ? 1 : inside;
                    }
                want[(c * 3 + oh) * 3 + ow] = s / cnt;
            }
    expect_close(y, want, 18, 1e-12);
    tsr_array_free(y);
    tsr_array_free(x);
    tsr_graph_free(g);
}

static void test_avgpool(void **state) {
    (void)state;
    check_avgpool(0, 0, TSR_AUTOPAD_NOTSET);
    check_avgpool(1, 0, TSR_AUTOPAD_NOTSET);
    check_avgpool(1, 1, TSR_AUTOPAD_NOTSET); /* ceil changes nothing: (7-3)%2 == 0 */
    check_avgpool(0, 0, TSR_AUTOPAD_SAME_UPPER);
    /* ceil_mode: 1x1x4x4, k 3, s 2 -> 2x2 (the last window clipped). */
    int64_t xd[4] = { 1, 1, 4, 4 };
    tsr_array *x = arr(4, xd, 10);
    tsr_graph *g;
    tt_ok(tsr_graph_create(&g));
    tt_ok(tsr_graph_add_input(g, "x", 4, xd));
    tsr_graph_attrs a;
    tsr_graph_attrs_default(&a);
    a.n_kernel = 2;
    a.kernel[0] = a.kernel[1] = 3;
    a.strides[0] = a.strides[1] = 2;
    a.ceil_mode = 1;
    tt_ok(tsr_graph_add_node(g, TSR_NODE_AVGPOOL, "p", 1, (const char *[]){ "x" }, "y", &a));
    tt_ok(tsr_graph_add_output(g, "y"));
    tt_ok(tsr_graph_finalize(g));
    tsr_array *y = run1(g, x);
    assert_int_equal(y->dims[2], 2);
    assert_int_equal(y->dims[3], 2);
    double s = 0;
    for (int i = 2; i < 4; i++)
        for (int j = 2; j < 4; j++) s += x->data[i * 4 + j];
    assert_true(fabs(y->data[3] - s / 4) < 1e-12);
    tsr_array_free(y);
    tsr_array_free(x);
    tsr_graph_free(g);
}

/* Build a one-node pooling graph over xd with a k x k window, stride 1, no padding. */
static tsr_graph *pool_graph(tsr_graph_kind kind, const int64_t *xd, int k) {
    tsr_graph *g;
    tt_ok(tsr_graph_create(&g));
    tt_ok(tsr_graph_add_input(g, "x", 4, xd));
    tsr_graph_attrs a;
    tsr_graph_attrs_default(&a);
    a.n_kernel = 2;
    a.kernel[0] = a.kernel[1] = k;
    tt_ok(tsr_graph_add_node(g, kind, "p", 1, (const char *[]){ "x" }, "y", &a));
    tt_ok(tsr_graph_add_output(g, "y"));
    tt_ok(tsr_graph_finalize(g));
    return g;
}

/*
 * A pooling window whose tap table (taps x output positions) would be far larger than the
 * activations is walked without one: a 1024 x 1024 window over 2047 x 2047 with no sample
 * would have asked for 2^40 entries (8 TiB) and aborted; a 32 x 32 window over 40 x 40 (a
 * table of 82944 entries for 1681 values) gives the sums and maxima computed here.
 */
static void test_pool_large_window(void **state) {
    (void)state;
    for (int kind = 0; kind < 2; kind++) {
        tsr_graph_kind kd = kind ? TSR_NODE_MAXPOOL : TSR_NODE_AVGPOOL;
        int64_t zd[4] = { 0, 1, 2047, 2047 };
        tsr_graph *g = pool_graph(kd, zd, 1024);
        tsr_array *z;
        tt_ok(tsr_array_create(&z, 4, zd));
        tsr_array *y = run1(g, z);
        assert_int_equal(y->dims[0], 0);
        assert_int_equal(y->dims[2], 1024);
        tsr_array_free(y);
        tsr_array_free(z);
        tsr_graph_free(g);

        int64_t xd[4] = { 1, 2, 40, 40 };
        g = pool_graph(kd, xd, 32);
        tsr_array *x = arr(4, xd, 12);
        y = run1(g, x);
        assert_int_equal(y->dims[2], 9);
        double want[2 * 81];
        for (int c = 0; c < 2; c++)
            for (int oh = 0; oh < 9; oh++)
                for (int ow = 0; ow < 9; ow++) {
                    double s = 0, m = -INFINITY;
                    for (int kh = 0; kh < 32; kh++)
                        for (int kw = 0; kw < 32; kw++) {
                            double v = x->data[(c * 40 + oh + kh) * 40 + ow + kw];
                            s += v;
                            m = fmax(m, v);
                        }
                    want[(c * 9 + oh) * 9 + ow] = kind ? m : s / 1024;
                }
        expect_close(y, want, 2 * 81, 1e-12);
        tsr_array_free(y);
        tsr_array_free(x);
        tsr_graph_free(g);
    }
}

/* ---- data movement and reductions ------------------------------------------------- */

static void test_movement(void **state) {
    (void)state;
    int64_t xd[3] = { 2, 3, 4 };
    tsr_array *x = arr(3, xd, 11);
    tsr_graph *g;
    tt_ok(tsr_graph_create(&g));
    tt_ok(tsr_graph_add_input(g, "x", 3, (int64_t[]){ -1, 3, 4 }));
    tsr_graph_attrs t;
    tsr_graph_attrs_default(&t);
    t.n_perm = 3;
    t.perm[0] = 2, t.perm[1] = 0, t.perm[2] = 1; /* (4, 2, 3) */
    tt_ok(tsr_graph_add_node(g, TSR_NODE_TRANSPOSE, NULL, 1, (const char *[]){ "x" }, "t", &t));
    tsr_graph_attrs s;
    tsr_graph_attrs_default(&s);
    s.n_axes = 2;
    s.axes[0] = 0, s.starts[0] = -1, s.ends[0] = -100, s.steps[0] = -2; /* rows 3, 1 */
    s.axes[1] = 2, s.starts[1] = 1, s.ends[1] = 1000, s.steps[1] = 1;   /* cols 1, 2 */
    tt_ok(tsr_graph_add_node(g, TSR_NODE_SLICE, NULL, 1, (const char *[]){ "t" }, "s", &s));
    tsr_graph_attrs c;
    tsr_graph_attrs_default(&c);
    c.axis = -1;
    tt_ok(tsr_graph_add_node(g, TSR_NODE_CONCAT, NULL, 2, (const char *[]){ "s", "s" }, "c", &c));
    tsr_graph_attrs r;
    tsr_graph_attrs_default(&r);
    r.n_axes = 1;
    r.axes[0] = 1;
    r.keepdims = 0;
    tt_ok(tsr_graph_add_node(g, TSR_NODE_REDUCE_MEAN, NULL, 1, (const char *[]){ "c" }, "m", &r));
    tsr_graph_attrs rs;
    tsr_graph_attrs_default(&rs);
    rs.n_shape = 2;
    rs.shape[0] = -1, rs.shape[1] = 2;
    tt_ok(tsr_graph_add_node(g, TSR_NODE_RESHAPE, NULL, 1, (const char *[]){ "m" }, "out", &rs));
    tt_ok(tsr_graph_add_output(g, "out"));
    tt_ok(tsr_graph_add_output(g, "t"));
    tt_ok(tsr_graph_finalize(g));
    const tsr_array *in[1] = { x };
    tsr_array *out[2];
    tt_ok(tsr_graph_run(g, in, out));
    /* t[i][j][k] = x[j][k][i]; s = t[{3,1}][:][{1,2}]; c = [s, s] on the last axis (2, 2, 4);
       m = mean over axis 1 (2, 4); out = reshape (4, 2). */
    double want[8];
    int rows[2] = { 3, 1 };
    for (int a = 0; a < 2; a++)
        for (int cc = 0; cc < 4; cc++) {
            int kk = 1 + cc % 2;
            double sum = 0;
            for (int j = 0; j < 2; j++) sum += x->data[(j * 3 + kk) * 4 + rows[a]];
            want[a * 4 + cc] = sum / 2;
        }
    assert_int_equal(out[0]->dims[0], 4);
    assert_int_equal(out[0]->dims[1], 2);
    expect_close(out[0], want, 8, 1e-12);
    assert_int_equal(out[1]->dims[0], 4);
    assert_true(out[1]->data[1 * 6 + 1 * 3 + 2] == x->data[(1 * 3 + 2) * 4 + 1]);
    tsr_array_free(out[0]);
    tsr_array_free(out[1]);
    tsr_array_free(x);
    tsr_graph_free(g);
}

/* ---- a DAG with shared values, and polynomial recognition ----------------------------- */

/* y = 0.5 x^2 + 2 x + 1 written as Mul/Mul/Add/Add, per-channel scale k[c] * x, residual. */
static tsr_graph *poly_graph(void) {
    tsr_graph *g;
    tt_ok(tsr_graph_create(&g));
    tt_ok(tsr_graph_add_input(g, "x", 4, (int64_t[]){ -1, 3, 2, 2 }));
    tsr_array *half, *two, *one, *k;
    tt_ok(tsr_array_create(&half, 0, NULL));
    tt_ok(tsr_array_create(&two, 0, NULL));
    tt_ok(tsr_array_create(&one, 1, (int64_t[]){ 1 }));
    tt_ok(tsr_array_create(&k, 3, (int64_t[]){ 3, 1, 1 }));
    half->data[0] = 0.5, two->data[0] = 2, one->data[0] = 1;
    k->data[0] = 1, k->data[1] = -2, k->data[2] = 3;
    tt_ok(tsr_graph_add_const(g, "half", half));
    tt_ok(tsr_graph_add_const(g, "two", two));
    tt_ok(tsr_graph_add_const(g, "one", one));
    tt_ok(tsr_graph_add_const(g, "k", k));
    tt_ok(tsr_graph_add_node(g, TSR_NODE_MUL, "sq", 2, (const char *[]){ "x", "x" }, "x2", NULL));
    tt_ok(
        tsr_graph_add_node(g, TSR_NODE_MUL, "m1", 2, (const char *[]){ "x2", "half" }, "a", NULL));
    tt_ok(tsr_graph_add_node(g, TSR_NODE_MUL, "m2", 2, (const char *[]){ "two", "x" }, "b", NULL));
    tt_ok(tsr_graph_add_node(g, TSR_NODE_ADD, "a1", 2, (const char *[]){ "a", "b" }, "ab", NULL));
    tt_ok(tsr_graph_add_node(g, TSR_NODE_ADD, "a2", 2, (const char *[]){ "ab", "one" }, "p", NULL));
    tt_ok(tsr_graph_add_node(g, TSR_NODE_MUL, "m3", 2, (const char *[]){ "p", "k" }, "q", NULL));
    /* q * x is a product with the base: still a polynomial of x (degree 3). Then a residual
       with another value (not fusable), and a second consumer of q. */
    tt_ok(tsr_graph_add_node(g, TSR_NODE_MUL, "m4", 2, (const char *[]){ "q", "x" }, "r", NULL));
    tt_ok(tsr_graph_add_node(g, TSR_NODE_GLOBAL_AVGPOOL, "gap", 1, (const char *[]){ "x" }, "gx",
                             NULL));
    tt_ok(tsr_graph_add_node(g, TSR_NODE_ADD, "res", 2, (const char *[]){ "r", "gx" }, "y", NULL));
    tt_ok(tsr_graph_add_output(g, "y"));
    tt_ok(tsr_graph_add_output(g, "q"));
    tsr_array_free(half);
    tsr_array_free(two);
    tsr_array_free(one);
    tsr_array_free(k);
    return g;
}

static void test_dag_and_fuse(void **state) {
    (void)state;
    tsr_graph *g = poly_graph(), *f;
    tt_ok(tsr_graph_finalize(g));
    tt_ok(tsr_graph_fuse_polynomials(g, &f));
    /* Fused: q = POLY(x), r = POLY(x), gap, add. */
    assert_int_equal(tsr_graph_num_nodes(f), 4);
    int polys = 0;
    for (int i = 0; i < 4; i++)
        if (tsr_graph_node_kind(f, i) == TSR_NODE_POLY) {
            polys++;
            const tsr_array *c = tsr_graph_const(f, tsr_graph_node_input(f, i, 1));
            assert_non_null(c);
            assert_int_equal(c->rank, 2); /* per channel */
            assert_int_equal(c->dims[0], 3);
            if (strcmp(tsr_graph_node_output(f, i), "q") == 0) {
                /* channel 1: -2 * (0.5 x^2 + 2 x + 1) */
                assert_int_equal(c->dims[1], 3);
                assert_true(c->data[3] == -2 && c->data[4] == -4 && c->data[5] == -1);
            }
        }
    assert_int_equal(polys, 2);
    int64_t xd[4] = { 2, 3, 2, 2 };
    tsr_array *x = arr(4, xd, 12);
    const tsr_array *in[1] = { x };
    tsr_array *o1[2], *o2[2];
    tt_ok(tsr_graph_run(g, in, o1));
    tt_ok(tsr_graph_run(f, in, o2));
    for (int k = 0; k < 2; k++) {
        /* Reference: the formula itself. */
        for (size_t i = 0; i < x->numel; i++) {
            double v = x->data[i], kc = (double[]){ 1, -2, 3 }[(i / 4) % 3];
            double q = kc * (0.5 * v * v + 2 * v + 1);
            if (k == 1) assert_true(fabs(o1[1]->data[i] - q) < 1e-12);
        }
        expect_close(o2[k], o1[k]->data, o1[k]->numel, 1e-12);
        tsr_array_free(o1[k]);
        tsr_array_free(o2[k]);
    }
    tsr_array_free(x);
    tsr_graph_free(f);
    tsr_graph_free(g);
}

static void test_chebyshev(void **state) {
    (void)state;
    /* T0 + 2 T1 - T2 + 0.5 T3 on [-2, 6] vs the direct cos formula. */
    tsr_graph *g;
    tt_ok(tsr_graph_create(&g));
    tt_ok(tsr_graph_add_input(g, "x", 1, (int64_t[]){ 5 }));
    tsr_array *c;
    tt_ok(tsr_array_create(&c, 1, (int64_t[]){ 4 }));
    c->data[0] = 1, c->data[1] = 2, c->data[2] = -1, c->data[3] = 0.5;
    tt_ok(tsr_graph_add_const(g, "c", c));
    tsr_graph_attrs a;
    tsr_graph_attrs_default(&a);
    a.lo = -2, a.hi = 6;
    tt_ok(
        tsr_graph_add_node(g, TSR_NODE_CHEBYSHEV, NULL, 2, (const char *[]){ "x", "c" }, "y", &a));
    tt_ok(tsr_graph_add_output(g, "y"));
    tt_ok(tsr_graph_finalize(g));
    tsr_array *x;
    tt_ok(tsr_array_create(&x, 1, (int64_t[]){ 5 }));
    double want[5];
    for (int i = 0; i < 5; i++) {
        x->data[i] = -2 + 2 * i;
        double t = acos((2 * x->data[i] - 4) / 8);
        want[i] = 0;
        for (int k = 0; k < 4; k++) want[i] += c->data[k] * cos(k * t);
    }
    tsr_array *y = run1(g, x);
    expect_close(y, want, 5, 1e-12);
    tsr_array_free(y);
    tsr_array_free(x);
    tsr_array_free(c);
    tsr_graph_free(g);
}

/* ---- non-polynomial kinds (plaintext only) --------------------------------------------- */

static void test_non_polynomial(void **state) {
    (void)state;
    static const tsr_graph_kind unary_kinds[] = { TSR_NODE_RELU,    TSR_NODE_LEAKY_RELU,
                                                  TSR_NODE_SIGMOID, TSR_NODE_TANH,
                                                  TSR_NODE_ERF,     TSR_NODE_EXP,
                                                  TSR_NODE_SQRT,    TSR_NODE_RECIPROCAL };
    int64_t d[2] = { 2, 5 };
    tsr_array *x;
    tt_ok(tsr_array_create(&x, 2, d));
    for (int i = 0; i < 10; i++) x->data[i] = (i - 4.5) / 2.0;
    for (size_t k = 0; k < sizeof unary_kinds / sizeof unary_kinds[0]; k++) {
        tsr_graph_kind kind = unary_kinds[k];
        assert_false(tsr_graph_kind_is_polynomial(kind));
        tsr_graph *g;
        tt_ok(tsr_graph_create(&g));
        tt_ok(tsr_graph_add_input(g, "x", 2, d));
        tsr_graph_attrs a;
        tsr_graph_attrs_default(&a);
        a.leak = 0.2;
        const char *src = "x";
        if (kind == TSR_NODE_SQRT) { /* on |x| */
            tt_ok(tsr_graph_add_node(g, TSR_NODE_MUL, "sq", 2, (const char *[]){ "x", "x" }, "x2",
                                     NULL));
            src = "x2";
        }
        tt_ok(tsr_graph_add_node(g, kind, "f", 1, (const char *[]){ src }, "y", &a));
        tt_ok(tsr_graph_add_output(g, "y"));
        tt_ok(tsr_graph_finalize(g));
        tsr_array *y = run1(g, x);
        for (int i = 0; i < 10; i++) {
            double v = x->data[i], want;
            switch (kind) {
            case TSR_NODE_RELU:
                want = v > 0 ? v : 0;
                break;
            case TSR_NODE_LEAKY_RELU:
                want = v > 0 ? v : 0.2 * v;
                break;
            case TSR_NODE_SIGMOID:
                want = 1 / (1 + exp(-v));
                break;
            case TSR_NODE_TANH:
                want = tanh(v);
                break;
            case TSR_NODE_ERF:
                want = erf(v);
                break;
            case TSR_NODE_EXP:
                want = exp(v);
                break;
            case TSR_NODE_SQRT:
                want = fabs(v);
                break;
            default:
                want = 1 / v;
                break;
            }
            if (fabs(y->data[i] - want) > 1e-12 * fmax(1, fabs(want)))
                fail_msg("%s(%g) = %.15g, want %.15g", tsr_graph_kind_name(kind), v, y->data[i],
                         want);
        }
        tsr_array_free(y);
        tsr_graph_free(g);
    }
    tsr_array_free(x);
    assert_true(tsr_graph_kind_is_polynomial(TSR_NODE_POLY));
    assert_true(tsr_graph_kind_is_polynomial(TSR_NODE_PAD));
    /* softmax over axis 1 of (2, 3, 4); max pooling 3x3 stride 2 pads 1 ceil_mode on 5x6 */
    int64_t sd[3] = { 2, 3, 4 };
    x = arr(3, sd, 13);
    tsr_graph *g;
    tt_ok(tsr_graph_create(&g));
    tt_ok(tsr_graph_add_input(g, "x", 3, sd));
    tsr_graph_attrs a;
    tsr_graph_attrs_default(&a);
    a.axis = 1;
    tt_ok(tsr_graph_add_node(g, TSR_NODE_SOFTMAX, "sm", 1, (const char *[]){ "x" }, "y", &a));
    tt_ok(tsr_graph_add_output(g, "y"));
    tt_ok(tsr_graph_finalize(g));
    tsr_array *y = run1(g, x);
    for (int b = 0; b < 2; b++)
        for (int k = 0; k < 4; k++) {
            double s = 0;
            for (int c = 0; c < 3; c++) s += exp(x->data[(b * 3 + c) * 4 + k]);
            for (int c = 0; c < 3; c++) {
                double want = exp(x->data[(b * 3 + c) * 4 + k]) / s;
                assert_true(fabs(y->data[(b * 3 + c) * 4 + k] - want) < 1e-12);
            }
        }
    tsr_array_free(y);
    tsr_array_free(x);
    tsr_graph_free(g);
    int64_t md[4] = { 1, 2, 5, 6 };
    x = arr(4, md, 14);
    tt_ok(tsr_graph_create(&g));
    tt_ok(tsr_graph_add_input(g, "x", 4, md));
    tsr_graph_attrs_default(&a);
    a.n_kernel = 2;
    a.kernel[0] = a.kernel[1] = 3;
    a.strides[0] = a.strides[1] = 2;
    a.pads[0] = a.pads[1] = a.pads[2] = a.pads[3] = 1;
    a.ceil_mode = 1;
    tt_ok(tsr_graph_add_node(g, TSR_NODE_MAXPOOL, "mp", 1, (const char *[]){ "x" }, "y", &a));
    tt_ok(tsr_graph_add_output(g, "y"));
    tt_ok(tsr_graph_finalize(g));
    y = run1(g, x);
    /* H: (5 + 2 - 3) / 2 + 1 = 3; W: (6 + 2 - 3) = 5, ceil(5 / 2) + 1 = 4, last start 6 < 6 + 1 */
    assert_int_equal(y->dims[2], 3);
    assert_int_equal(y->dims[3], 4);
    for (int c = 0; c < 2; c++)
        for (int oh = 0; oh < 3; oh++)
            for (int ow = 0; ow < 4; ow++) {
                double m = -INFINITY;
                for (int kh = 0; kh < 3; kh++)
                    for (int kw = 0; kw < 3; kw++) {
                        int ih = oh * 2 - 1 + kh, iw = ow * 2 - 1 + kw;
                        if (ih >= 0 && ih < 5 && iw >= 0 && iw < 6)
                            m = fmax(m, x->data[(c * 5 + ih) * 6 + iw]);
                    }
                assert_true(y->data[(c * 3 + oh) * 4 + ow] == m);
            }
    tsr_array_free(y);
    tsr_array_free(x);
    tsr_graph_free(g);
}

/* ---- errors ----------------------------------------------------------------------- */

/* A new graph with input x of the given shape. */
static tsr_graph *graph_x(int rank, const int64_t *dims) {
    tsr_graph *g;
    tt_ok(tsr_graph_create(&g));
    tt_ok(tsr_graph_add_input(g, "x", rank, dims));
    return g;
}

/* g, with output y, is refused by finalize with st and a message holding msg (NULL: any); freed. */
static void refused(tsr_graph *g, tsr_status st, const char *msg) {
    tt_ok(tsr_graph_add_output(g, "y"));
    tt_fails(tsr_graph_finalize(g), st);
    if (msg) expect_msg(msg);
    tsr_graph_free(g);
}

static void test_errors(void **state) {
    (void)state;
    tsr_graph *g;
    /* duplicate name */
    g = graph_x(2, (int64_t[]){ 2, 3 });
    tt_fails(tsr_graph_add_input(g, "x", 1, (int64_t[]){ 2 }), TSR_ERR_INVALID_ARG);
    expect_msg("defined twice");
    /* undefined input */
    tt_ok(tsr_graph_add_node(g, TSR_NODE_ADD, "a", 2, (const char *[]){ "x", "nope" }, "y", NULL));
    refused(g, TSR_ERR_FORMAT, "'nope'");
    /* cycle */
    g = graph_x(1, (int64_t[]){ 2 });
    tt_ok(tsr_graph_add_node(g, TSR_NODE_ADD, "a", 2, (const char *[]){ "x", "c" }, "b", NULL));
    tt_ok(tsr_graph_add_node(g, TSR_NODE_NEG, "n", 1, (const char *[]){ "b" }, "c", NULL));
    tt_ok(tsr_graph_add_node(g, TSR_NODE_NEG, "o", 1, (const char *[]){ "c" }, "y", NULL));
    refused(g, TSR_ERR_FORMAT, "cycle");
    /* non-constant divisor; shape mismatch; wrong input count */
    g = graph_x(2, (int64_t[]){ -1, 3 });
    tt_ok(tsr_graph_add_input(g, "z", 2, (int64_t[]){ -1, 3 }));
    tt_ok(tsr_graph_add_node(g, TSR_NODE_DIV, "d", 2, (const char *[]){ "x", "z" }, "y", NULL));
    refused(g, TSR_ERR_UNSUPPORTED, "must be a constant");
    g = graph_x(2, (int64_t[]){ -1, 3 });
    tt_ok(tsr_graph_add_input(g, "z", 2, (int64_t[]){ -1, 4 }));
    tt_ok(tsr_graph_add_node(g, TSR_NODE_MUL, "m", 2, (const char *[]){ "x", "z" }, "y", NULL));
    refused(g, TSR_ERR_SHAPE, "do not broadcast");
    g = graph_x(2, (int64_t[]){ -1, 3 });
    tt_ok(tsr_graph_add_node(g, TSR_NODE_MATMUL, "m", 1, (const char *[]){ "x" }, "y", NULL));
    refused(g, TSR_ERR_FORMAT, "inputs");
    /* bad attributes: reshape to a wrong size, pool kernel larger than the input */
    g = graph_x(4, (int64_t[]){ -1, 1, 2, 2 });
    tsr_graph_attrs a;
    tsr_graph_attrs_default(&a);
    a.n_kernel = 2;
    a.kernel[0] = a.kernel[1] = 3;
    tt_ok(tsr_graph_add_node(g, TSR_NODE_AVGPOOL, "p", 1, (const char *[]){ "x" }, "y", &a));
    refused(g, TSR_ERR_SHAPE, "smaller than the kernel");
    g = graph_x(2, (int64_t[]){ -1, 6 });
    tsr_graph_attrs_default(&a);
    a.n_shape = 2;
    a.shape[0] = 0, a.shape[1] = 4;
    tt_ok(tsr_graph_add_node(g, TSR_NODE_RESHAPE, "r", 1, (const char *[]){ "x" }, "y", &a));
    refused(g, TSR_ERR_SHAPE, NULL);
    /* running with a wrong input shape; a finalized graph is immutable */
    tt_ok(tsr_graph_create(&g));
    tt_ok(tsr_graph_add_input(g, "x", 2, (int64_t[]){ -1, 3 }));
    tt_ok(tsr_graph_add_node(g, TSR_NODE_NEG, "n", 1, (const char *[]){ "x" }, "y", NULL));
    tt_ok(tsr_graph_add_output(g, "y"));
    tt_ok(tsr_graph_finalize(g));
    tt_fails(tsr_graph_add_output(g, "x"), TSR_ERR_INVALID_ARG);
    int64_t bad[2] = { 4, 2 };
    tsr_array *x;
    tt_ok(tsr_array_create(&x, 2, bad));
    const tsr_array *in[1] = { x };
    tsr_array *out[1];
    tt_fails(tsr_graph_run(g, in, out), TSR_ERR_SHAPE);
    expect_msg("(4, 2)");
    assert_null(out[0]);
    tsr_array_free(x);
    tsr_graph_free(g);
    tt_fails(tsr_array_create(&x, 2, (int64_t[]){ 1 << 30, 1 << 30 }), TSR_ERR_SHAPE);
}

/*
 * Session 23's fuzzing campaign (fuzz_graph_read/regress-empty-dim-overflow): an empty shape
 * bounded only its product, so (0, 2^63 - 1) was an array and a graph input, and Pad's
 * x + pads overflowed (signed, UB) in finalize. Every dimension is bounded now; the largest
 * legal one still passes and the Pad output above the bound is refused.
 */
static void test_dims_bounded(void **state) {
    (void)state;
    const int64_t huge[2] = { 0, INT64_MAX }, edge[2] = { 0, TSR_ARRAY_MAX_NUMEL };
    assert_int_equal(tsr_dims_numel(2, huge), -1);
    assert_int_equal(tsr_dims_numel(2, edge), 0);
    tsr_array *c;
    tt_fails(tsr_array_create(&c, 2, huge), TSR_ERR_SHAPE);
    assert_null(c);
    tsr_graph *g;
    tt_ok(tsr_graph_create(&g));
    tt_fails(tsr_graph_add_input(g, "x", 2, huge), TSR_ERR_SHAPE);
    expect_msg("at most");
    tt_ok(tsr_graph_add_input(g, "x", 2, edge));
    tsr_graph_attrs a;
    tsr_graph_attrs_default(&a);
    a.n_pads = 4;
    a.pad_list[1] = a.pad_list[3] = 1;
    tt_ok(tsr_graph_add_node(g, TSR_NODE_PAD, "p", 1, (const char *[]){ "x" }, "y", &a));
    refused(g, TSR_ERR_SHAPE, "more than");
}

/*
 * Session 23's fuzzing campaign (fuzz_graph_read/regress-conv-group-overflow): Conv's shape
 * check multiplied the weights' input channels by the group before bounding the group, so
 * empty weights (0, 2, 1) with group 2^62 overflowed int64 (UB) in finalize. Refused now.
 */
static void test_conv_group_bounded(void **state) {
    (void)state;
    tsr_array *w;
    tt_ok(tsr_array_create(&w, 3, (int64_t[]){ 0, 2, 1 }));
    tsr_graph *g = graph_x(3, (int64_t[]){ 1, 2, 4 });
    tt_ok(tsr_graph_add_const(g, "w", w));
    tsr_array_free(w);
    tsr_graph_attrs a;
    tsr_graph_attrs_default(&a);
    a.group = (int64_t)1 << 62;
    tt_ok(tsr_graph_add_node(g, TSR_NODE_CONV, "c", 2, (const char *[]){ "x", "w" }, "y", &a));
    refused(g, TSR_ERR_SHAPE, "group");
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_conv),
        cmocka_unit_test(test_gemm),
        cmocka_unit_test(test_matmul_broadcast),
        cmocka_unit_test(test_avgpool),
        cmocka_unit_test(test_pool_large_window),
        cmocka_unit_test(test_movement),
        cmocka_unit_test(test_dag_and_fuse),
        cmocka_unit_test(test_chebyshev),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_non_polynomial),
        cmocka_unit_test(test_conv_rows),
        cmocka_unit_test(test_poly_channels),
        cmocka_unit_test(test_dims_bounded),
        cmocka_unit_test(test_conv_group_bounded),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
