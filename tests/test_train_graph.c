/*
 * tests/test_train_graph.c - training on the one graph (tessera/train.h):
 * the gradient of every node kind (inputs and every constant made
 * trainable) against central finite differences of the loss
 * sum(out * R), the range loss's gradient, the default trainable rule, the
 * exported graph, small graphs trained to a loss threshold
 * deterministically (cross-entropy, MSE, distillation), and a second forward
 * on reused activations against a fresh trainer.
 */
#include "testutil.h"

#include "tessera.h"
#include "tessera/train.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static tsr_array *arr(int rank, const int64_t *dims, uint64_t seed, double lo, double hi) {
    tsr_array *t;
    tt_ok(tsr_array_create(&t, rank, dims));
    tsr_prng g;
    tt_prng(&g, seed);
    for (size_t i = 0; i < t->numel; i++) t->data[i] = lo + (hi - lo) * tsr_prng_double(&g);
    return t;
}

static void add_const(tsr_graph *g, const char *name, int rank, const int64_t *dims, uint64_t seed,
                      double lo, double hi) {
    tsr_array *c = arr(rank, dims, seed, lo, hi);
    tt_ok(tsr_graph_add_const(g, name, c));
    tsr_array_free(c);
}

static void node(tsr_graph *g, tsr_graph_kind k, const char *out, int n_in, const char *a,
                 const char *b, const char *c, const tsr_graph_attrs *at) {
    const char *in[5] = { a, b, c, NULL, NULL };
    tt_ok(tsr_graph_add_node(g, k, out, n_in, in, out, at));
}

/* L = sum(out * R) (+ W * range loss) of the current trainer state at x. */
static double loss_at(tsr_trainer *t, const tsr_array *x, const tsr_array *R, double W) {
    const tsr_array *y;
    tt_ok(tsr_trainer_forward(t, x, &y));
    assert_int_equal(y->numel, R->numel);
    double s = 0;
    for (size_t i = 0; i < y->numel; i++) s += y->data[i] * R->data[i];
    return s + W * tsr_trainer_range_loss(t);
}

static void expect_grad(double an, double num, double tol, const char *what, size_t i) {
    if (fabs(an - num) > tol * (1 + fabs(num)))
        fail_msg("%s %zu: backward %.9g, finite differences %.9g", what, i, an, num);
}

/*
 * Finite-difference check of a finalized graph at x: every input entry and
 * every parameter entry (every constant trainable when all_consts) up to a
 * stride so that large tensors cost little.
 */
static void fd_check(tsr_graph *g, const tsr_array *x, int all_consts, double W) {
    tsr_trainer *t;
    tt_ok(tsr_trainer_create(&t, g));
    if (all_consts)
        for (int i = 0; i < tsr_graph_num_nodes(g); i++)
            for (int k = 0; k < tsr_graph_node_num_inputs(g, i); k++) {
                const char *nm = tsr_graph_node_input(g, i, k);
                if (nm[0] && tsr_graph_const(g, nm)) tt_ok(tsr_trainer_set_trainable(t, nm, 1));
            }
    tsr_trainer_set_range_weight(t, W);
    if (W > 0) /* a bound every power-basis polynomial's inputs exceed */
        for (int i = 0; i < tsr_graph_num_nodes(g); i++)
            if (tsr_graph_node_kind(g, i) == TSR_NODE_POLY)
                tt_ok(tsr_trainer_set_bound(t, tsr_graph_node_name(g, i), 0.5));
    const tsr_array *y;
    tt_ok(tsr_trainer_forward(t, x, &y));
    tsr_array *R = arr(y->rank, y->dims, 99, -1, 1);
    tsr_trainer_zero_grad(t);
    tt_ok(tsr_trainer_backward(t, R));
    assert_non_null(tsr_trainer_input_grad(t));
    tsr_array *dx; /* the next forward frees the trainer's copy */
    tt_ok(tsr_array_clone(&dx, tsr_trainer_input_grad(t)));
    assert_int_equal(dx->numel, x->numel);
    tsr_array *xp;
    tt_ok(tsr_array_clone(&xp, x));
    size_t stride = x->numel > 60 ? x->numel / 60 : 1;
    const double h = 1e-6;
    for (size_t i = 0; i < x->numel; i += stride) {
        double v = xp->data[i];
        xp->data[i] = v + h;
        double lp = loss_at(t, xp, R, W);
        xp->data[i] = v - h;
        double lm = loss_at(t, xp, R, W);
        xp->data[i] = v;
        expect_grad(dx->data[i], (lp - lm) / (2 * h), 1e-5, "input", i);
    }
    size_t np = tsr_trainer_num_params(t);
    float *p = tsr_trainer_params(t);
    float *gr = malloc((np ? np : 1) * sizeof *gr);
    memcpy(gr, tsr_trainer_grads(t), np * sizeof *gr);
    stride = np > 80 ? np / 80 : 1;
    for (size_t i = 0; i < np; i += stride) {
        float v = p[i], a = v + 1e-3f, b = v - 1e-3f;
        p[i] = a;
        double lp = loss_at(t, x, R, W);
        p[i] = b;
        double lm = loss_at(t, x, R, W);
        p[i] = v;
        expect_grad(gr[i], (lp - lm) / ((double)a - (double)b), 2e-4, "parameter", i);
    }
    free(gr);
    tsr_array_free(dx);
    tsr_array_free(xp);
    tsr_array_free(R);
    tsr_trainer_free(t);
}

static tsr_graph *start(int rank, const int64_t *dims) {
    tsr_graph *g;
    tt_ok(tsr_graph_create(&g));
    tt_ok(tsr_graph_add_input(g, "x", rank, dims));
    return g;
}

static void finish_check(tsr_graph *g, const char *out, const tsr_array *x, int all, double W) {
    tt_ok(tsr_graph_add_output(g, out));
    tt_ok(tsr_graph_finalize(g));
    fd_check(g, x, all, W);
    tsr_graph_free(g);
}

/* ---- per node kind ------------------------------------------------------------ */

static void test_grad_conv(void **state) {
    (void)state;
    /* conv with groups, strides, dilations, asymmetric pads, bias; then a 1-D conv */
    tsr_graph *g = start(4, (int64_t[]){ -1, 4, 6, 5 });
    add_const(g, "w", 4, (int64_t[]){ 6, 2, 3, 2 }, 1, -1, 1);
    add_const(g, "b", 1, (int64_t[]){ 6 }, 2, -1, 1);
    tsr_graph_attrs a;
    tsr_graph_attrs_default(&a);
    a.group = 2;
    a.strides[0] = 2;
    a.strides[1] = 1;
    a.dilations[0] = 1;
    a.dilations[1] = 2;
    a.pads[0] = 1;
    a.pads[1] = 0;
    a.pads[2] = 2;
    a.pads[3] = 1;
    node(g, TSR_NODE_CONV, "c", 3, "x", "w", "b", &a);
    tsr_array *x = arr(4, (int64_t[]){ 3, 4, 6, 5 }, 3, -1, 1);
    finish_check(g, "c", x, 0, 0);
    tsr_array_free(x);

    g = start(3, (int64_t[]){ -1, 3, 7 });
    add_const(g, "w", 3, (int64_t[]){ 2, 3, 3 }, 4, -1, 1);
    tsr_graph_attrs_default(&a);
    a.auto_pad = TSR_AUTOPAD_SAME_UPPER;
    node(g, TSR_NODE_CONV, "c", 2, "x", "w", NULL, &a);
    x = arr(3, (int64_t[]){ 2, 3, 7 }, 5, -1, 1);
    finish_check(g, "c", x, 0, 0);
    tsr_array_free(x);
}

static void test_grad_gemm_matmul(void **state) {
    (void)state;
    tsr_graph_attrs a;
    for (int tb = 0; tb < 2; tb++)
        for (int cr = 0; cr < 3; cr++) { /* bias (n), (1, n), scalar */
            tsr_graph *g = start(2, (int64_t[]){ -1, 4 });
            add_const(g, "w", 2, tb ? (int64_t[]){ 3, 4 } : (int64_t[]){ 4, 3 }, 1, -1, 1);
            add_const(g, "c",
                      cr == 0   ? 1
                      : cr == 1 ? 2
                                : 0,
                      cr == 0 ? (int64_t[]){ 3 } : (int64_t[]){ 1, 3 }, 2, -1, 1);
            tsr_graph_attrs_default(&a);
            a.trans_b = tb;
            a.alpha = 0.7;
            a.beta = 1.3;
            node(g, TSR_NODE_GEMM, "y", 3, "x", "w", "c", &a);
            tsr_array *x = arr(2, (int64_t[]){ 3, 4 }, 3, -1, 1);
            finish_check(g, "y", x, 1, 0);
            tsr_array_free(x);
        }
    /* Gemm with the constant first and transposes: y^T = W x^T -> (n, B) then back */
    tsr_graph *g = start(2, (int64_t[]){ -1, 4 });
    add_const(g, "w", 2, (int64_t[]){ 4, 3 }, 6, -1, 1);
    tsr_graph_attrs_default(&a);
    a.trans_a = 1;
    a.trans_b = 1;
    node(g, TSR_NODE_GEMM, "yt", 2, "w", "x", NULL, &a);
    tsr_graph_attrs_default(&a);
    node(g, TSR_NODE_TRANSPOSE, "y", 1, "yt", NULL, NULL, &a);
    tsr_array *x = arr(2, (int64_t[]){ 2, 4 }, 7, -1, 1);
    finish_check(g, "y", x, 1, 0);
    tsr_array_free(x);

    /* MatMul by a broadcast constant, then of two activations: (B,3,4) x (B,4,3) */
    g = start(3, (int64_t[]){ -1, 3, 4 });
    add_const(g, "w", 2, (int64_t[]){ 4, 4 }, 8, -1, 1);
    node(g, TSR_NODE_MATMUL, "m", 2, "x", "w", NULL, NULL);
    tsr_graph_attrs_default(&a);
    a.n_perm = 3;
    a.perm[0] = 0;
    a.perm[1] = 2;
    a.perm[2] = 1;
    node(g, TSR_NODE_TRANSPOSE, "mt", 1, "m", NULL, NULL, &a);
    node(g, TSR_NODE_MATMUL, "y", 2, "x", "mt", NULL, NULL);
    x = arr(3, (int64_t[]){ 2, 3, 4 }, 9, -1, 1);
    finish_check(g, "y", x, 1, 0);
    tsr_array_free(x);
}

static void test_grad_pool_bn(void **state) {
    (void)state;
    tsr_graph *g = start(4, (int64_t[]){ -1, 2, 5, 6 });
    add_const(g, "s", 1, (int64_t[]){ 2 }, 1, 0.5, 1.5);
    add_const(g, "b", 1, (int64_t[]){ 2 }, 2, -1, 1);
    add_const(g, "m", 1, (int64_t[]){ 2 }, 3, -1, 1);
    add_const(g, "v", 1, (int64_t[]){ 2 }, 4, 0.5, 2);
    const char *bn[5] = { "x", "s", "b", "m", "v" };
    tt_ok(tsr_graph_add_node(g, TSR_NODE_BATCHNORM, "bn", 5, bn, "bn", NULL));
    tsr_graph_attrs a;
    tsr_graph_attrs_default(&a);
    a.n_kernel = 2;
    a.kernel[0] = 3;
    a.kernel[1] = 2;
    a.strides[0] = 2;
    a.strides[1] = 2;
    a.pads[0] = 1;
    a.pads[2] = 1;
    a.ceil_mode = 1;
    a.count_include_pad = 1;
    node(g, TSR_NODE_AVGPOOL, "p", 1, "bn", NULL, NULL, &a);
    a.count_include_pad = 0;
    node(g, TSR_NODE_AVGPOOL, "p2", 1, "bn", NULL, NULL, &a);
    node(g, TSR_NODE_MAXPOOL, "mp", 1, "bn", NULL, NULL, &a);
    node(g, TSR_NODE_ADD, "s1", 2, "p", "p2", NULL, NULL);
    node(g, TSR_NODE_ADD, "s2", 2, "s1", "mp", NULL, NULL);
    node(g, TSR_NODE_GLOBAL_AVGPOOL, "gp", 1, "bn", NULL, NULL, NULL);
    node(g, TSR_NODE_MUL, "y", 2, "s2", "gp", NULL, NULL);
    tsr_array *x = arr(4, (int64_t[]){ 2, 2, 5, 6 }, 5, -1, 1);
    finish_check(g, "y", x, 1, 0);
    tsr_array_free(x);
}

static void test_grad_poly(void **state) {
    (void)state;
    /* per-channel power basis, then a Chebyshev series, range loss on both */
    tsr_graph *g = start(3, (int64_t[]){ -1, 3, 4 });
    add_const(g, "c", 2, (int64_t[]){ 3, 4 }, 1, -1, 1);
    add_const(g, "ch", 1, (int64_t[]){ 5 }, 2, -1, 1);
    node(g, TSR_NODE_POLY, "p", 2, "x", "c", NULL, NULL);
    tsr_graph_attrs a;
    tsr_graph_attrs_default(&a);
    a.lo = -1.5;
    a.hi = 2;
    node(g, TSR_NODE_CHEBYSHEV, "y", 2, "p", "ch", NULL, &a);
    tt_ok(tsr_graph_add_output(g, "y"));
    tt_ok(tsr_graph_finalize(g));
    tsr_array *x = arr(3, (int64_t[]){ 2, 3, 4 }, 3, -1.5, 1.5);
    fd_check(g, x, 0, 0);
    /* the range loss (fd_check bounds the power basis by 0.5; the series by its interval) */
    tsr_trainer *t;
    tt_ok(tsr_trainer_create(&t, g));
    assert_true(tsr_trainer_is_trainable(t, "c") && tsr_trainer_is_trainable(t, "ch"));
    tt_fails(tsr_trainer_set_bound(t, "nope", 1), TSR_ERR_NOT_FOUND);
    tsr_trainer_free(t);
    fd_check(g, x, 0, 0.7);
    tsr_graph_free(g);
    tsr_array_free(x);
}

/* Two polynomials h = p(x), y = p(h) of one power basis c, both nodes called "act". */
static tsr_graph *two_polys_one_name(void) {
    tsr_graph *g = start(2, (int64_t[]){ -1, 3 });
    add_const(g, "c", 1, (int64_t[]){ 3 }, 7, -1, 1);
    tt_ok(tsr_graph_add_node(g, TSR_NODE_POLY, "act", 2, (const char *[]){ "x", "c" }, "h", NULL));
    tt_ok(tsr_graph_add_node(g, TSR_NODE_POLY, "act", 2, (const char *[]){ "h", "c" }, "y", NULL));
    tt_ok(tsr_graph_add_output(g, "y"));
    tt_ok(tsr_graph_finalize(g));
    assert_string_equal(tsr_graph_node_input(g, 1, 0), "h"); /* execution order */
    return g;
}

/* Names need not be unique (imported models): a bound is set by position; by an ambiguous name
 * it is refused instead of landing on the first node so called. */
static void test_bounds_by_position(void **state) {
    (void)state;
    tsr_graph *g = two_polys_one_name();
    tsr_trainer *t;
    tt_ok(tsr_trainer_create(&t, g));
    tt_fails(tsr_trainer_set_bound(t, "act", 1), TSR_ERR_INVALID_ARG);
    assert_non_null(strstr(tsr_last_error(), "set_node_bound")); /* points at positions */
    double lo, hi;
    tt_fails(tsr_trainer_node_bound(t, 0, &lo, &hi), TSR_ERR_NOT_FOUND); /* nothing was set */
    tt_ok(tsr_trainer_set_node_bound(t, 1, 0.25));
    tt_ok(tsr_trainer_node_bound(t, 1, &lo, &hi));
    assert_true(lo == -0.25 && hi == 0.25);
    tt_fails(tsr_trainer_node_bound(t, 0, &lo, &hi), TSR_ERR_NOT_FOUND);
    tt_fails(tsr_trainer_set_node_bound(t, 2, 1), TSR_ERR_NOT_FOUND);
    tt_fails(tsr_trainer_set_node_bound(t, -1, 1), TSR_ERR_NOT_FOUND);
    tt_fails(tsr_trainer_set_node_bound(t, 1, -1), TSR_ERR_INVALID_ARG);
    tsr_trainer_free(t);
    tsr_graph_free(g);
}

/* tsr_trainer_node_outside's contract (tessera/train.h): NOT_FOUND before anything was recorded
 * and out of range; 0 of 0 for a node without a bound; for a bounded one, the entries of its
 * first input beyond the bound, counted here from h = c0 + c1 x + c2 x^2. */
static void test_outside_counts(void **state) {
    (void)state;
    tsr_graph *g = two_polys_one_name();
    tsr_trainer *t;
    tt_ok(tsr_trainer_create(&t, g));
    tsr_array *x = arr(2, (int64_t[]){ 4, 3 }, 9, -1, 1);
    const double *c = tsr_graph_const(g, "c")->data;
    double h[12], lo = INFINITY, hi = 0;
    for (size_t i = 0; i < x->numel; i++) {
        double v = x->data[i];
        h[i] = c[0] + c[1] * v + c[2] * v * v;
        lo = fmin(lo, fabs(h[i]));
        hi = fmax(hi, fabs(h[i]));
    }
    const double B = (lo + hi) / 2; /* some inside, some outside */
    uint64_t want = 0;
    for (size_t i = 0; i < x->numel; i++) want += fabs(h[i]) > B;
    assert_true(want > 0 && want < x->numel);
    tt_ok(tsr_trainer_set_node_bound(t, 1, B)); /* the second polynomial, input h */
    uint64_t out = 7, cnt = 7;
    tsr_trainer_track_ranges(t, 1, 1);
    tt_fails(tsr_trainer_node_outside(t, 0, &out, &cnt), TSR_ERR_NOT_FOUND); /* no forward yet */
    const tsr_array *y;
    tt_ok(tsr_trainer_forward(t, x, &y));
    tt_ok(tsr_trainer_node_outside(t, 0, &out, &cnt));
    assert_true(out == 0 && cnt == 0); /* no bound */
    tt_ok(tsr_trainer_node_outside(t, 1, &out, &cnt));
    assert_int_equal(cnt, x->numel);
    assert_int_equal(out, want);
    tt_fails(tsr_trainer_node_outside(t, 2, &out, &cnt), TSR_ERR_NOT_FOUND);
    tt_fails(tsr_trainer_node_outside(t, -1, &out, &cnt), TSR_ERR_NOT_FOUND);
    tsr_array_free(x);
    tsr_trainer_free(t);
    tsr_graph_free(g);
}

/* The recorded range of a node's input: the same bits as the serial loop lo = v < lo ? v : lo
 * (NaN skipped, the first of +0 and -0 kept), on inputs whose smallest or largest value is a
 * zero of either sign reached in a different interleaving lane first. */
static void expect_range_bits(const double *v, size_t n) {
    tsr_graph *g = two_polys_one_name();
    tsr_trainer *t;
    tt_ok(tsr_trainer_create(&t, g));
    tsr_array *x;
    tt_ok(tsr_array_create(&x, 2, (int64_t[]){ (int64_t)n / 3, 3 }));
    memcpy(x->data, v, n * sizeof *v);
    double wlo = INFINITY, whi = -INFINITY, lo, hi;
    for (size_t i = 0; i < n; i++) {
        wlo = v[i] < wlo ? v[i] : wlo;
        whi = v[i] > whi ? v[i] : whi;
    }
    tsr_trainer_track_ranges(t, 1, 1);
    tt_ok(tsr_trainer_forward(t, x, NULL));
    tt_ok(tsr_trainer_node_range(t, 0, &lo, &hi));
    assert_memory_equal(&lo, &wlo, sizeof lo);
    assert_memory_equal(&hi, &whi, sizeof hi);
    tsr_array_free(x);
    tsr_trainer_free(t);
    tsr_graph_free(g);
}

static void test_range_zero_signs(void **state) {
    (void)state;
    const double nz = -0.0;
    double a[12] = { 1, 2, 3, 4, 5, 0.0, 6, 7, nz, 8, 9, NAN }; /* lo +0: lane 1 before lane 0 */
    double b[12] = { 1, 2, 3, 4, 5, nz, 6, 7, 0.0, 8, 9, 1 };   /* lo -0 */
    double c[15] = { -1, -2, -3, -4, -5, nz, -6, -7, 0.0, -8, NAN, -9, -1, -2, -3 }; /* hi -0 */
    double d[15] = { -1, -2, -3, -4, 5, -2, 0.0, -7, 3, -8, -1, -9, -1, -2, 5 };     /* no zero */
    expect_range_bits(a, 12);
    expect_range_bits(b, 12);
    expect_range_bits(c, 15);
    expect_range_bits(d, 15);
}

static void test_grad_elementwise(void **state) {
    (void)state;
    /* broadcasting Add/Sub/Mul/Div/Pow, Neg, Square on positive inputs */
    tsr_graph *g = start(3, (int64_t[]){ -1, 3, 4 });
    add_const(g, "a", 3, (int64_t[]){ 1, 3, 1 }, 1, 0.5, 1.5);
    add_const(g, "b", 1, (int64_t[]){ 4 }, 2, 0.5, 1.5);
    add_const(g, "d", 2, (int64_t[]){ 3, 1 }, 3, 1, 2);
    add_const(g, "e", 0, NULL, 4, 1.5, 2.5);
    node(g, TSR_NODE_ADD, "s", 2, "x", "a", NULL, NULL);
    node(g, TSR_NODE_MUL, "m", 2, "b", "s", NULL, NULL);
    node(g, TSR_NODE_DIV, "q", 2, "m", "d", NULL, NULL);
    node(g, TSR_NODE_POW, "p", 2, "q", "e", NULL, NULL);
    node(g, TSR_NODE_SUB, "u", 2, "p", "x", NULL, NULL);
    node(g, TSR_NODE_NEG, "n", 1, "u", NULL, NULL, NULL);
    node(g, TSR_NODE_SQUARE, "sq", 1, "n", NULL, NULL, NULL);
    node(g, TSR_NODE_MUL, "y", 2, "sq", "x", NULL, NULL); /* two activations */
    tsr_array *x = arr(3, (int64_t[]){ 2, 3, 4 }, 5, 0.2, 1);
    finish_check(g, "y", x, 1, 0);
    tsr_array_free(x);
}

static void test_grad_movement(void **state) {
    (void)state;
    tsr_graph *g = start(3, (int64_t[]){ -1, 4, 6 });
    tsr_graph_attrs a;
    tsr_graph_attrs_default(&a);
    a.n_axes = 2; /* slice rows 1..3 of axis 1, every other column backwards */
    a.axes[0] = 1;
    a.starts[0] = 1;
    a.ends[0] = 4;
    a.steps[0] = 1;
    a.axes[1] = 2;
    a.starts[1] = 5;
    a.ends[1] = -100;
    a.steps[1] = -2;
    node(g, TSR_NODE_SLICE, "sl", 1, "x", NULL, NULL, &a); /* (B, 3, 3) */
    tsr_graph_attrs_default(&a);
    a.n_pads = 6;
    a.pad_list[1] = 1;
    a.pad_list[5] = 2;
    a.value = 0.5;
    node(g, TSR_NODE_PAD, "pd", 1, "sl", NULL, NULL, &a); /* (B, 4, 5) */
    tsr_graph_attrs_default(&a);
    a.axis = 2;
    const char *cc[2] = { "pd", "x" };
    tt_ok(tsr_graph_add_node(g, TSR_NODE_CONCAT, "cat", 2, cc, "cat", &a)); /* (B, 4, 11) */
    tsr_graph_attrs_default(&a);
    a.n_axes = 1;
    a.axes[0] = 1;
    node(g, TSR_NODE_UNSQUEEZE, "un", 1, "cat", NULL, NULL, &a); /* (B, 1, 4, 11) */
    node(g, TSR_NODE_SQUEEZE, "sq", 1, "un", NULL, NULL, &a);
    tsr_graph_attrs_default(&a);
    a.n_axes = 1;
    a.axes[0] = 1;
    a.keepdims = 1;
    node(g, TSR_NODE_REDUCE_MEAN, "rm", 1, "sq", NULL, NULL, &a); /* (B, 1, 11) */
    a.axes[0] = -1;
    node(g, TSR_NODE_REDUCE_SUM, "rs", 1, "sq", NULL, NULL, &a); /* (B, 4, 1) */
    node(g, TSR_NODE_MUL, "o", 2, "rs", "rm", NULL, NULL);       /* (B, 4, 11) */
    tsr_graph_attrs_default(&a);
    a.n_shape = 3;
    a.shape[0] = 0;
    a.shape[1] = 11;
    a.shape[2] = -1;
    node(g, TSR_NODE_RESHAPE, "r", 1, "o", NULL, NULL, &a);
    tsr_graph_attrs_default(&a);
    node(g, TSR_NODE_FLATTEN, "f", 1, "r", NULL, NULL, &a);
    node(g, TSR_NODE_IDENTITY, "y", 1, "f", NULL, NULL, NULL);
    tsr_array *x = arr(3, (int64_t[]){ 2, 4, 6 }, 6, -1, 1);
    finish_check(g, "y", x, 1, 0);
    tsr_array_free(x);
}

/* A Concat of 20 inputs (wider than any fixed scratch array): forward and backward. */
static void test_grad_wide_concat(void **state) {
    (void)state;
    tsr_graph *g = start(2, (int64_t[]){ -1, 3 });
    tsr_graph_attrs a;
    tsr_graph_attrs_default(&a);
    a.axis = 1;
    const char *cc[20];
    char names[20][16];
    for (int i = 0; i < 20; i++) {
        snprintf(names[i], sizeof names[i], "s%d", i);
        node(g, TSR_NODE_MUL, names[i], 2, "x", "x", NULL, NULL); /* x^2, one per input */
        cc[i] = i % 3 ? names[i] : "x";
    }
    tt_ok(tsr_graph_add_node(g, TSR_NODE_CONCAT, "cat", 20, cc, "cat", &a)); /* (B, 60) */
    tsr_array *x = arr(2, (int64_t[]){ 2, 3 }, 7, -1, 1);
    finish_check(g, "cat", x, 1, 0);
    tsr_array_free(x);
}

static void test_grad_nonpoly(void **state) {
    (void)state;
    const tsr_graph_kind kinds[] = { TSR_NODE_RELU, TSR_NODE_LEAKY_RELU, TSR_NODE_SIGMOID,
                                     TSR_NODE_TANH, TSR_NODE_ERF,        TSR_NODE_EXP,
                                     TSR_NODE_SQRT, TSR_NODE_RECIPROCAL, TSR_NODE_SOFTMAX };
    for (size_t k = 0; k < sizeof kinds / sizeof kinds[0]; k++) {
        tsr_graph *g = start(2, (int64_t[]){ -1, 5 });
        tsr_graph_attrs a;
        tsr_graph_attrs_default(&a);
        a.leak = 0.1;
        a.axis = -1;
        node(g, kinds[k], "y", 1, "x", NULL, NULL, &a);
        int pos = kinds[k] == TSR_NODE_SQRT || kinds[k] == TSR_NODE_RECIPROCAL;
        tsr_array *x = arr(2, (int64_t[]){ 3, 5 }, 10 + k, pos ? 0.5 : -2, 2);
        finish_check(g, "y", x, 0, 0);
        tsr_array_free(x);
    }
}

/* ---- the trainer's contract ------------------------------------------------------ */

static void test_trainable_rule_and_export(void **state) {
    (void)state;
    tsr_graph *g = start(4, (int64_t[]){ -1, 1, 4, 4 });
    add_const(g, "w", 4, (int64_t[]){ 2, 1, 3, 3 }, 1, -1, 1);
    add_const(g, "s", 1, (int64_t[]){ 2 }, 2, 0.5, 1.5);
    add_const(g, "b", 1, (int64_t[]){ 2 }, 3, -1, 1);
    add_const(g, "m", 1, (int64_t[]){ 2 }, 4, -1, 1);
    add_const(g, "v", 1, (int64_t[]){ 2 }, 5, 0.5, 2);
    add_const(g, "half", 0, NULL, 6, 0.5, 0.5);
    tsr_graph_attrs a;
    tsr_graph_attrs_default(&a);
    a.pads[0] = a.pads[1] = a.pads[2] = a.pads[3] = 1;
    node(g, TSR_NODE_CONV, "c", 2, "x", "w", NULL, &a);
    const char *bn[5] = { "c", "s", "b", "m", "v" };
    tt_ok(tsr_graph_add_node(g, TSR_NODE_BATCHNORM, "bn", 5, bn, "bn", NULL));
    node(g, TSR_NODE_MUL, "y", 2, "bn", "half", NULL, NULL);
    tt_ok(tsr_graph_add_output(g, "y"));
    tt_ok(tsr_graph_finalize(g));
    tsr_trainer *t;
    tt_ok(tsr_trainer_create(&t, g));
    assert_true(tsr_trainer_is_trainable(t, "w"));
    assert_true(tsr_trainer_is_trainable(t, "s") && tsr_trainer_is_trainable(t, "b"));
    assert_false(tsr_trainer_is_trainable(t, "m") || tsr_trainer_is_trainable(t, "v"));
    assert_false(tsr_trainer_is_trainable(t, "half")); /* a scalar factor */
    assert_int_equal(tsr_trainer_num_params(t), 18 + 2 + 2);
    tt_fails(tsr_trainer_set_trainable(t, "c", 1), TSR_ERR_NOT_FOUND);
    tt_ok(tsr_trainer_set_trainable(t, "w", 0));
    assert_int_equal(tsr_trainer_num_params(t), 4);
    /* changed parameters show in the exported graph, which computes what the trainer does */
    float *p = tsr_trainer_params(t);
    p[0] = 2.5f; /* s[0] */
    tsr_array *x = arr(4, (int64_t[]){ 3, 1, 4, 4 }, 7, -1, 1);
    const tsr_array *y;
    tt_ok(tsr_trainer_forward(t, x, &y));
    tsr_graph *e;
    tt_ok(tsr_trainer_graph(t, &e));
    assert_true(tsr_graph_const(e, "s")->data[0] == 2.5);
    tsr_array *out[1];
    tt_ok(tsr_graph_run(e, (const tsr_array *const *)&x, out));
    for (size_t i = 0; i < y->numel; i++) assert_true(fabs(out[0]->data[i] - y->data[i]) < 1e-12);
    tsr_array_free(out[0]);
    /* shape errors */
    tsr_array *bad = arr(4, (int64_t[]){ 3, 2, 4, 4 }, 8, -1, 1);
    tt_fails(tsr_trainer_forward(t, bad, &y), TSR_ERR_SHAPE);
    tt_ok(tsr_trainer_forward(t, x, &y));
    tsr_array *bad2 = arr(4, (int64_t[]){ 3, 2, 4, 3 }, 8, -1, 1);
    tt_fails(tsr_trainer_backward(t, bad2), TSR_ERR_SHAPE);
    tsr_array_free(bad2);
    tsr_array_free(bad);
    tsr_array_free(x);
    tsr_graph_free(e);
    tsr_trainer_free(t);
    tsr_trainer_free(NULL);
    tsr_graph_free(g);
}

/* Three Gaussian blobs in 4-D; labels 0..2. */
static void blobs(int n, uint64_t seed, tsr_array **x, tsr_array **y) {
    tt_ok(tsr_array_create(x, 2, (int64_t[]){ n, 4 }));
    tt_ok(tsr_array_create(y, 1, (int64_t[]){ n }));
    tsr_prng g;
    tt_prng(&g, seed);
    for (int i = 0; i < n; i++) {
        int c = (int)tsr_prng_uniform(&g, 3);
        (*y)->data[i] = c;
        for (int k = 0; k < 4; k++)
            (*x)->data[i * 4 + k] =
                (k == c ? 2.0 : 0.0) - (k == 3 ? c - 1.0 : 0.0) + 0.5 * tsr_prng_normal(&g);
    }
}

/* x -> Gemm 4x8 -> poly2 -> Gemm 8xK */
static tsr_graph *mlp(int K, uint64_t seed) {
    tsr_graph *g = start(2, (int64_t[]){ -1, 4 });
    add_const(g, "w1", 2, (int64_t[]){ 8, 4 }, seed, -0.5, 0.5);
    add_const(g, "b1", 1, (int64_t[]){ 8 }, seed + 1, -0.5, 0.5);
    add_const(g, "w2", 2, (int64_t[]){ K, 8 }, seed + 2, -0.35, 0.35);
    add_const(g, "b2", 1, (int64_t[]){ K }, seed + 3, -0.35, 0.35);
    tsr_array *c;
    tt_ok(tsr_array_create(&c, 1, (int64_t[]){ 3 }));
    c->data[0] = 0.5; /* ReLU-like start */
    c->data[1] = 0.5;
    c->data[2] = 0.125;
    tt_ok(tsr_graph_add_const(g, "act", c));
    tsr_array_free(c);
    tsr_graph_attrs a;
    tsr_graph_attrs_default(&a);
    a.trans_b = 1;
    node(g, TSR_NODE_GEMM, "h", 3, "x", "w1", "b1", &a);
    node(g, TSR_NODE_POLY, "p", 2, "h", "act", NULL, NULL);
    node(g, TSR_NODE_GEMM, "y", 3, "p", "w2", "b2", &a);
    tt_ok(tsr_graph_add_output(g, "y"));
    tt_ok(tsr_graph_finalize(g));
    return g;
}

static void test_fit_ce_deterministic(void **state) {
    (void)state;
    int saved = tsr_get_num_threads();
    tsr_array *x, *y, *xt, *yt;
    blobs(300, 1, &x, &y);
    blobs(200, 2, &xt, &yt);
    tsr_graph *g = mlp(3, 10);
    float *first = NULL;
    size_t np = 0;
    for (int run = 0; run < 2; run++) {
        tsr_set_num_threads(run + 1); /* slices differ; results only by rounding */
        tsr_trainer *t;
        tt_ok(tsr_trainer_create(&t, g));
        double l0, a0;
        tt_ok(tsr_trainer_evaluate(t, TSR_TRAIN_LOSS_AUTO, xt, yt, 50, &l0, &a0));
        tsr_train_opts o;
        tsr_train_opts_default(&o);
        o.epochs = 15;
        o.batch = 32;
        o.lr = 0.01;
        tsr_train_report rep;
        tt_ok(tsr_trainer_fit(t, &o, x, y, xt, yt, &rep));
        assert_true(rep.test_loss < 0.25 && rep.test_loss < l0 / 3);
        assert_true(rep.test_acc > 0.92);
        assert_int_equal(rep.steps, 15 * 10);
        np = tsr_trainer_num_params(t);
        if (!first) {
            first = malloc(np * sizeof *first);
            memcpy(first, tsr_trainer_params(t), np * sizeof *first);
        } else {
            double worst = 0;
            for (size_t i = 0; i < np; i++) {
                double d = fabs(first[i] - tsr_trainer_params(t)[i]);
                worst = d > worst ? d : worst;
            }
            assert_true(worst < 1e-3); /* two slices: the same up to rounding */
        }
        tsr_trainer_free(t);
    }
    /* the same seed and thread count: bit for bit */
    tsr_set_num_threads(1);
    tsr_trainer *t;
    tt_ok(tsr_trainer_create(&t, g));
    tsr_train_opts o;
    tsr_train_opts_default(&o);
    o.epochs = 15;
    o.batch = 32;
    o.lr = 0.01;
    tt_ok(tsr_trainer_fit(t, &o, x, y, NULL, NULL, NULL));
    assert_memory_equal(first, tsr_trainer_params(t), np * sizeof *first);
    /* bad data */
    tsr_array *y2;
    tt_ok(tsr_array_create(&y2, 1, (int64_t[]){ 300 }));
    y2->data[5] = 3; /* label beyond 3 classes */
    tt_fails(tsr_trainer_fit(t, &o, x, y2, NULL, NULL, NULL), TSR_ERR_SHAPE);
    y2->data[5] = 0.5; /* not a label: MSE against a 3-value output */
    tt_fails(tsr_trainer_fit(t, &o, x, y2, NULL, NULL, NULL), TSR_ERR_SHAPE);
    tsr_array_free(y2);
    o.lr = 1e6; /* diverges */
    o.optim = "sgd";
    tt_fails(tsr_trainer_fit(t, &o, x, y, NULL, NULL, NULL), TSR_ERR_INVALID_ARG);
    tsr_trainer_free(t);
    free(first);
    tsr_set_num_threads(saved);
    tsr_graph_free(g);
    tsr_array_free(x);
    tsr_array_free(y);
    tsr_array_free(xt);
    tsr_array_free(yt);
}

/*
 * One output and whole-number targets: AUTO means MSE (cross-entropy over one
 * class is always 0), and cross-entropy asked for is refused.
 */
static void test_fit_single_output(void **state) {
    (void)state;
    tsr_array *x, *lab;
    blobs(64, 3, &x, &lab); /* labels 0, 1, 2 as regression targets */
    tsr_graph *g = mlp(1, 70);
    tsr_trainer *t;
    tt_ok(tsr_trainer_create(&t, g));
    double l0, l1;
    tt_ok(tsr_trainer_evaluate(t, TSR_TRAIN_LOSS_MSE, x, lab, 64, &l0, NULL));
    tsr_train_opts o;
    tsr_train_opts_default(&o);
    o.epochs = 20;
    o.batch = 16;
    o.lr = 0.01;
    tt_ok(tsr_trainer_fit(t, &o, x, lab, NULL, NULL, NULL));
    tt_ok(tsr_trainer_evaluate(t, TSR_TRAIN_LOSS_MSE, x, lab, 64, &l1, NULL));
    assert_true(l1 < l0);
    o.loss = TSR_TRAIN_LOSS_CE;
    tt_fails(tsr_trainer_fit(t, &o, x, lab, NULL, NULL, NULL), TSR_ERR_SHAPE);
    tsr_trainer_free(t);
    tsr_graph_free(g);
    tsr_array_free(x);
    tsr_array_free(lab);
}

static void test_fit_mse_and_distill(void **state) {
    (void)state;
    /* regression: targets made by a teacher MLP; the student starts elsewhere */
    tsr_array *x, *lab;
    blobs(256, 3, &x, &lab);
    tsr_graph *teacher = mlp(2, 50), *student = mlp(2, 80);
    tsr_array *y[1];
    tt_ok(tsr_graph_run(teacher, (const tsr_array *const *)&x, y));
    tsr_trainer *t;
    tt_ok(tsr_trainer_create(&t, student));
    double l0;
    tt_ok(tsr_trainer_evaluate(t, TSR_TRAIN_LOSS_MSE, x, y[0], 64, &l0, NULL));
    tsr_train_opts o;
    tsr_train_opts_default(&o);
    o.epochs = 30;
    o.batch = 32;
    o.lr = 0.01;
    tsr_train_report rep;
    tt_ok(tsr_trainer_fit(t, &o, x, y[0], x, y[0], &rep));
    assert_true(isnan(rep.test_acc));
    assert_true(rep.test_loss < l0 / 10);
    tsr_trainer_free(t);
    /* distillation on 3 classes with alpha 1 (labels unused) and the range loss */
    tsr_graph *t3 = mlp(3, 60), *s3 = mlp(3, 90);
    tt_ok(tsr_trainer_create(&t, s3));
    tt_ok(tsr_trainer_set_bound(t, "p", 2));
    tsr_train_opts_default(&o);
    o.teacher = t3;
    o.kd_alpha = 1;
    o.range_weight = 0.1;
    o.epochs = 20;
    o.batch = 32;
    o.lr = 0.01;
    tsr_array *tl[1];
    tt_ok(tsr_graph_run(t3, (const tsr_array *const *)&x, tl));
    for (size_t i = 0; i < lab->numel; i++) { /* the teacher's own decisions as labels */
        int best = 0;
        for (int k = 1; k < 3; k++)
            if (tl[0]->data[i * 3 + k] > tl[0]->data[i * 3 + best]) best = k;
        lab->data[i] = best;
    }
    double a0;
    tt_ok(tsr_trainer_evaluate(t, TSR_TRAIN_LOSS_CE, x, lab, 64, NULL, &a0));
    tt_ok(tsr_trainer_fit(t, &o, x, lab, x, lab, &rep));
    assert_true(rep.test_acc > 0.9 && rep.test_acc > a0);
    o.loss = TSR_TRAIN_LOSS_MSE;
    tt_fails(tsr_trainer_fit(t, &o, x, tl[0], NULL, NULL, NULL), TSR_ERR_INVALID_ARG);
    tsr_trainer_free(t);
    tsr_array_free(tl[0]);
    tsr_graph_free(t3);
    tsr_graph_free(s3);
    tsr_array_free(y[0]);
    tsr_graph_free(teacher);
    tsr_graph_free(student);
    tsr_array_free(x);
    tsr_array_free(lab);
}

/*
 * A trainer reuses the last forward's activations uninitialised (gtrain.c's spares), which is
 * right only while every kernel writes all of its output (tsr_graph_node_exec). Forward x1 then
 * x2 through one trainer and x2 through a fresh one: the outputs must be the same bytes. The
 * graph has the kernels that could accumulate (Conv, batched MatMul of two activations,
 * ReduceSum, Pad, Concat, Slice, Transpose); one and two threads (one and two slices).
 */
static void test_reused_activations(void **state) {
    (void)state;
    tsr_graph *g = start(4, (int64_t[]){ -1, 2, 4, 5 });
    add_const(g, "w", 4, (int64_t[]){ 3, 2, 3, 3 }, 1, -1, 1);
    tsr_graph_attrs a;
    tsr_graph_attrs_default(&a);
    for (int k = 0; k < 4; k++) a.pads[k] = 1;
    node(g, TSR_NODE_CONV, "c", 2, "x", "w", NULL, &a); /* (B, 3, 4, 5) */
    tsr_graph_attrs_default(&a);
    a.n_axes = 1;
    a.axes[0] = 3;
    a.starts[0] = 0;
    a.ends[0] = 4;
    a.steps[0] = 1;
    node(g, TSR_NODE_SLICE, "sl", 1, "c", NULL, NULL, &a); /* (B, 3, 4, 4) */
    tsr_graph_attrs_default(&a);
    a.n_perm = 4;
    a.perm[0] = 0;
    a.perm[1] = 1;
    a.perm[2] = 3;
    a.perm[3] = 2;
    node(g, TSR_NODE_TRANSPOSE, "tr", 1, "sl", NULL, NULL, &a);
    node(g, TSR_NODE_MATMUL, "mm", 2, "sl", "tr", NULL, NULL); /* (B, 3, 4, 4) */
    tsr_graph_attrs_default(&a);
    a.n_pads = 8;
    a.pad_list[3] = 1;
    a.pad_list[7] = 2;
    a.value = 0.25;
    node(g, TSR_NODE_PAD, "pd", 1, "mm", NULL, NULL, &a); /* (B, 3, 4, 7) */
    tsr_graph_attrs_default(&a);
    a.n_axes = 1;
    a.axes[0] = -1;
    a.keepdims = 1;
    node(g, TSR_NODE_REDUCE_SUM, "rs", 1, "pd", NULL, NULL, &a); /* (B, 3, 4, 1) */
    tsr_graph_attrs_default(&a);
    a.axis = 3;
    const char *cc[2] = { "pd", "rs" };
    tt_ok(tsr_graph_add_node(g, TSR_NODE_CONCAT, "y", 2, cc, "y", &a)); /* (B, 3, 4, 8) */
    tt_ok(tsr_graph_add_output(g, "y"));
    tt_ok(tsr_graph_finalize(g));
    tsr_array *x1 = arr(4, (int64_t[]){ 4, 2, 4, 5 }, 11, -1, 1);
    tsr_array *x2 = arr(4, (int64_t[]){ 4, 2, 4, 5 }, 12, -2, 2);
    for (int th = 1; th <= 2; th++) {
        tsr_set_num_threads(th);
        tsr_trainer *t, *f;
        const tsr_array *y, *yf;
        tt_ok(tsr_trainer_create(&t, g));
        tt_ok(tsr_trainer_forward(t, x1, &y));
        tt_ok(tsr_trainer_forward(t, x2, &y));
        tt_ok(tsr_trainer_create(&f, g));
        tt_ok(tsr_trainer_forward(f, x2, &yf));
        assert_int_equal(y->numel, 4 * 3 * 4 * 8);
        assert_int_equal(yf->numel, y->numel);
        assert_memory_equal(y->data, yf->data, y->numel * sizeof *y->data);
        tsr_trainer_free(f);
        tsr_trainer_free(t);
    }
    /* a run with fewer slices than the last (spares left over), then with more again */
    tsr_array *want[2];
    for (int th = 1; th <= 2; th++) {
        tsr_set_num_threads(th);
        tsr_trainer *f;
        const tsr_array *yf;
        tt_ok(tsr_trainer_create(&f, g));
        tt_ok(tsr_trainer_forward(f, x2, &yf));
        tt_ok(tsr_array_clone(&want[th - 1], yf));
        tsr_trainer_free(f);
    }
    tsr_trainer *t;
    const tsr_array *y;
    tt_ok(tsr_trainer_create(&t, g));
    tt_ok(tsr_trainer_forward(t, x1, &y));
    for (int th = 1; th <= 2; th++) {
        tsr_set_num_threads(th);
        tt_ok(tsr_trainer_forward(t, x2, &y));
        assert_memory_equal(y->data, want[th - 1]->data, y->numel * sizeof *y->data);
    }
    tsr_trainer_free(t);
    tsr_array_free(want[0]);
    tsr_array_free(want[1]);
    tsr_set_num_threads(1);
    tsr_array_free(x1);
    tsr_array_free(x2);
    tsr_graph_free(g);
}

int main(void) {
    tsr_set_num_threads(1);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_grad_conv),
        cmocka_unit_test(test_grad_gemm_matmul),
        cmocka_unit_test(test_grad_pool_bn),
        cmocka_unit_test(test_grad_poly),
        cmocka_unit_test(test_bounds_by_position),
        cmocka_unit_test(test_outside_counts),
        cmocka_unit_test(test_range_zero_signs),
        cmocka_unit_test(test_grad_elementwise),
        cmocka_unit_test(test_grad_movement),
        cmocka_unit_test(test_grad_wide_concat),
        cmocka_unit_test(test_grad_nonpoly),
        cmocka_unit_test(test_trainable_rule_and_export),
        cmocka_unit_test(test_fit_ce_deterministic),
        cmocka_unit_test(test_fit_single_output),
        cmocka_unit_test(test_fit_mse_and_distill),
        cmocka_unit_test(test_reused_activations),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
