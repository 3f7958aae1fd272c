/*
 * tests/test_prune.c - HE-aware pruning on model graphs (tessera/prune.h):
 * the permutation and the expansion leave the network's function unchanged
 * (MLP through biases, per-channel polynomials, batch norm; CNN through
 * pooling and a flatten) on random inputs; the permutation gathers a known
 * block pattern into the fewest tiles; tile, magnitude and Hunter-style
 * pruning zero exactly the requested number of units and the smallest ones
 * (checked against norms recomputed here); masks stay fixed around the
 * fine-tuning hook; bad options and models are refused.
 */
#include "graphgen.h"

#include "core/error.h"
#include "tessera.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* x(N,12) -> Gemm(W1 10x12, b1) -> +c -> poly per channel -> *0.5 -> MatMul(10x8) -> BN ->
 * square -> Gemm(8x6 not transposed, bias (1,6)). */
static tsr_graph *mlp(tsr_prng *g) {
    tsr_graph *gr;
    tt_ok(tsr_graph_create(&gr));
    tt_ok(tsr_graph_add_input(gr, "x", 2, (int64_t[]){ -1, 12 }));
    tt_graph_const(gr, "W1", tt_rand_array(2, (int64_t[]){ 10, 12 }, g, 0.5));
    tt_graph_const(gr, "b1", tt_rand_array(1, (int64_t[]){ 10 }, g, 0.5));
    tt_graph_const(gr, "c1", tt_rand_array(1, (int64_t[]){ 10 }, g, 0.5));
    tt_graph_const(gr, "p1", tt_rand_array(2, (int64_t[]){ 10, 3 }, g, 0.5));
    tt_graph_const(gr, "half", tt_rand_array(0, NULL, g, 1.0));
    tt_graph_const(gr, "W2", tt_rand_array(2, (int64_t[]){ 10, 8 }, g, 0.5));
    tsr_array *var = tt_rand_array(1, (int64_t[]){ 8 }, g, 0.5);
    for (size_t i = 0; i < var->numel; i++) var->data[i] = 1.0 + fabs(var->data[i]);
    tt_graph_const(gr, "bn_s", tt_rand_array(1, (int64_t[]){ 8 }, g, 1.0));
    tt_graph_const(gr, "bn_b", tt_rand_array(1, (int64_t[]){ 8 }, g, 1.0));
    tt_graph_const(gr, "bn_m", tt_rand_array(1, (int64_t[]){ 8 }, g, 1.0));
    tt_graph_const(gr, "bn_v", var);
    tt_graph_const(gr, "W3", tt_rand_array(2, (int64_t[]){ 8, 6 }, g, 0.5));
    tt_graph_const(gr, "b3", tt_rand_array(2, (int64_t[]){ 1, 6 }, g, 0.5));
    tsr_graph_attrs a;
    tsr_graph_attrs_default(&a);
    a.trans_b = 1;
    tt_graph_node(gr, TSR_NODE_GEMM, 3, (const char *[]){ "x", "W1", "b1" }, "h1", &a);
    tt_graph_node(gr, TSR_NODE_ADD, 2, (const char *[]){ "c1", "h1" }, "h2", NULL);
    tsr_graph_attrs_default(&a);
    a.axis = 1;
    tt_graph_node(gr, TSR_NODE_POLY, 2, (const char *[]){ "h2", "p1" }, "h3", &a);
    tt_graph_node(gr, TSR_NODE_MUL, 2, (const char *[]){ "h3", "half" }, "h4", NULL);
    tt_graph_node(gr, TSR_NODE_MATMUL, 2, (const char *[]){ "h4", "W2" }, "h5", NULL);
    tt_graph_node(gr, TSR_NODE_BATCHNORM, 5,
                  (const char *[]){ "h5", "bn_s", "bn_b", "bn_m", "bn_v" }, "h6", NULL);
    tt_graph_node(gr, TSR_NODE_SQUARE, 1, (const char *[]){ "h6" }, "h7", NULL);
    tt_graph_node(gr, TSR_NODE_GEMM, 3, (const char *[]){ "h7", "W3", "b3" }, "y", NULL);
    tt_ok(tsr_graph_add_output(gr, "y"));
    tt_ok(tsr_graph_finalize(gr));
    return gr;
}

/* x(N,2,6,6) -> Conv(4,2,3,3)+b pad 1 -> poly -> AvgPool 2 -> Conv(6,4,3,3) pad 1 ->
 * Flatten -> Gemm(5 x 54). */
static tsr_graph *cnn(tsr_prng *g) {
    tsr_graph *gr;
    tt_ok(tsr_graph_create(&gr));
    tt_ok(tsr_graph_add_input(gr, "x", 4, (int64_t[]){ -1, 2, 6, 6 }));
    tt_graph_const(gr, "K1", tt_rand_array(4, (int64_t[]){ 4, 2, 3, 3 }, g, 0.5));
    tt_graph_const(gr, "kb1", tt_rand_array(1, (int64_t[]){ 4 }, g, 0.5));
    tt_graph_const(gr, "pc", tt_rand_array(1, (int64_t[]){ 3 }, g, 0.5));
    tt_graph_const(gr, "K2", tt_rand_array(4, (int64_t[]){ 6, 4, 3, 3 }, g, 0.5));
    tt_graph_const(gr, "F", tt_rand_array(2, (int64_t[]){ 5, 54 }, g, 0.5));
    tsr_graph_attrs a;
    tsr_graph_attrs_default(&a);
    for (int i = 0; i < 4; i++) a.pads[i] = 1;
    tt_graph_node(gr, TSR_NODE_CONV, 3, (const char *[]){ "x", "K1", "kb1" }, "c1", &a);
    tsr_graph_attrs_default(&a);
    tt_graph_node(gr, TSR_NODE_POLY, 2, (const char *[]){ "c1", "pc" }, "c2", &a);
    tsr_graph_attrs_default(&a);
    a.n_kernel = 2;
    a.kernel[0] = a.kernel[1] = 2;
    a.strides[0] = a.strides[1] = 2;
    tt_graph_node(gr, TSR_NODE_AVGPOOL, 1, (const char *[]){ "c2" }, "c3", &a);
    tsr_graph_attrs_default(&a);
    for (int i = 0; i < 4; i++) a.pads[i] = 1;
    tt_graph_node(gr, TSR_NODE_CONV, 2, (const char *[]){ "c3", "K2" }, "c4", &a);
    tsr_graph_attrs_default(&a);
    a.axis = 1;
    tt_graph_node(gr, TSR_NODE_FLATTEN, 1, (const char *[]){ "c4" }, "c5", &a);
    tsr_graph_attrs_default(&a);
    a.trans_b = 1;
    tt_graph_node(gr, TSR_NODE_GEMM, 2, (const char *[]){ "c5", "F" }, "y", &a);
    tt_ok(tsr_graph_add_output(gr, "y"));
    tt_ok(tsr_graph_finalize(gr));
    return gr;
}

static int cmp_dbl(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/*
 * Whether the features of a hidden dimension are in the same order in `to` as in `from`,
 * read from their incoming weights: column j of a (rows x n) row-major matrix, sorted (the
 * previous dimension's permutation reorders each column; sorting makes it irrelevant). Every
 * feature of `to` must be one of `from` (a permutation moves features, never changes them).
 * Incoming weights, not outgoing ones: the new features of an expansion have all-zero
 * outgoing weights, so those would not tell them apart.
 */
static int same_order(const tsr_array *from, const tsr_array *to, int64_t rows, int64_t n) {
    assert_int_equal(from->numel, (size_t)(rows * n));
    assert_int_equal(to->numel, (size_t)(rows * n));
    double *cf = malloc((size_t)(rows * n) * sizeof *cf), *ct = malloc((size_t)rows * sizeof *ct);
    assert_non_null(cf);
    assert_non_null(ct);
    for (int64_t j = 0; j < n; j++) {
        for (int64_t r = 0; r < rows; r++) cf[j * rows + r] = from->data[r * n + j];
        qsort(cf + j * rows, (size_t)rows, sizeof *cf, cmp_dbl);
    }
    int identity = 1;
    for (int64_t i = 0; i < n; i++) {
        for (int64_t r = 0; r < rows; r++) ct[r] = to->data[r * n + i];
        qsort(ct, (size_t)rows, sizeof *ct, cmp_dbl);
        int64_t j = 0;
        while (j < n && memcmp(ct, cf + j * rows, (size_t)rows * sizeof *ct) != 0) j++;
        if (j == n)
            fail_msg("feature %lld of the permuted model is none of the original", (long long)i);
        if (j != i) identity = 0;
    }
    free(cf);
    free(ct);
    return identity;
}

static void test_permute_mlp_function(void **state) {
    (void)state;
    tsr_prng g;
    tt_prng(&g, 1400);
    tsr_graph *gr = mlp(&g);
    tsr_prune_opts o;
    tsr_prune_opts_default(&o);
    o.method = TSR_PRUNE_NONE;
    o.permute = 1;
    o.tile_rows = 2;
    o.tile_cols = 4;
    for (int expand = 0; expand < 2; expand++) {
        o.expand = expand ? 1.7 : 1.0;
        tsr_graph *p;
        tsr_prune_report *r;
        tt_ok(tsr_prune_graph(gr, &o, &p, &r));
        assert_int_equal(r->n_layers, 3);
        assert_int_equal(r->n_hidden, 2);
        assert_int_equal(r->n_permuted, 2);
        /* a permutation losing kept mass is undone (the features go back to their order):
         * the mass never drops, and every undone dimension is left in its order, read from
         * the rows of W1 (hidden 1) and the sorted columns of W2 (hidden 2; sorting hides
         * hidden 1's reordering of W2's rows) against the model the permutation started from
         * (the expanded one: expansion comes first). A dimension in its order is undone or
         * kept with k-means' order unchanged (the identity, which loses no mass and is never
         * undone); the two leave the same model, so the in-order count bounds n_undone from
         * above rather than giving it exactly. */
        tsr_graph *e = NULL;
        if (expand) {
            tsr_prune_opts eo = o;
            eo.permute = 0;
            tt_ok(tsr_prune_graph(gr, &eo, &e, NULL));
        }
        const tsr_graph *from = expand ? e : gr;
        const tsr_array *w2 = tsr_graph_const(p, "W2"); /* (hidden 1, hidden 2) */
        int64_t h1 = w2->dims[0], h2 = w2->dims[1];
        /* hidden 1: the rows of W1 (h1 x 12), i.e. the columns of its transpose; hidden 2: the
         * columns of W2 */
        tsr_array *t0, *t1;
        const tsr_array *a0 = tsr_graph_const(from, "W1"), *a1 = tsr_graph_const(p, "W1");
        tt_ok(tsr_array_create(&t0, 2, (int64_t[]){ 12, h1 }));
        tt_ok(tsr_array_create(&t1, 2, (int64_t[]){ 12, h1 }));
        for (int64_t i = 0; i < h1; i++)
            for (int64_t c = 0; c < 12; c++) {
                t0->data[c * h1 + i] = a0->data[i * 12 + c];
                t1->data[c * h1 + i] = a1->data[i * 12 + c];
            }
        int in_order =
            same_order(t0, t1, 12, h1) + same_order(tsr_graph_const(from, "W2"), w2, h1, h2);
        tsr_array_free(t0);
        tsr_array_free(t1);
        assert_true(r->n_undone >= 0 && r->n_undone <= in_order);
        assert_true(r->mass_in_tiles >= r->mass_before);
        tsr_graph_free(e);
        double d = tt_graph_max_diff(gr, p, &g, 2, (int64_t[]){ 7, 12 });
        if (d > 1e-12) fail_msg("expand %d: permuted MLP differs by %g", expand, d);
        if (expand) {
            /* 10 -> ceil(17 / 2) * 2 = 18 features; 8 -> 13.6 rounded up to layer 2 tile rows 4:
             * ceil(3.4) * 4 = 16 */
            assert_int_equal(r->layers[0].rows, 18);
            assert_int_equal(r->layers[1].cols, 18);
            assert_int_equal(r->layers[1].rows, 16);
            assert_int_equal(r->layers[2].cols, 16);
        }
        tsr_prune_report_free(r);
        tsr_graph_free(p);
    }
    tsr_graph_free(gr);
}

/*
 * A layer whose bias is shared with another node cannot have its rows
 * permuted (the bias would stay in the old order): the chain is refused and
 * the function stays unchanged.
 */
static void test_permute_shared_bias(void **state) {
    (void)state;
    tsr_prng g;
    tt_prng(&g, 1401);
    tsr_graph *gr;
    tt_ok(tsr_graph_create(&gr));
    tt_ok(tsr_graph_add_input(gr, "x", 2, (int64_t[]){ -1, 4 }));
    tt_graph_const(gr, "W1", tt_rand_array(2, (int64_t[]){ 6, 4 }, &g, 0.5));
    tt_graph_const(gr, "bs", tt_rand_array(1, (int64_t[]){ 6 }, &g, 0.5));
    tt_graph_const(gr, "W2", tt_rand_array(2, (int64_t[]){ 6, 6 }, &g, 0.5));
    tt_graph_const(gr, "b2", tt_rand_array(1, (int64_t[]){ 6 }, &g, 0.5));
    tsr_graph_attrs a;
    tsr_graph_attrs_default(&a);
    a.trans_b = 1;
    tt_graph_node(gr, TSR_NODE_GEMM, 3, (const char *[]){ "x", "W1", "bs" }, "h1", &a);
    tt_graph_node(gr, TSR_NODE_SQUARE, 1, (const char *[]){ "h1" }, "h2", NULL);
    tt_graph_node(gr, TSR_NODE_GEMM, 3, (const char *[]){ "h2", "W2", "b2" }, "h3", &a);
    tt_graph_node(gr, TSR_NODE_ADD, 2, (const char *[]){ "h3", "bs" }, "y", NULL);
    tt_ok(tsr_graph_add_output(gr, "y"));
    tt_ok(tsr_graph_finalize(gr));
    tsr_prune_opts o;
    tsr_prune_opts_default(&o);
    o.method = TSR_PRUNE_NONE;
    o.permute = 1;
    o.tile_rows = 2;
    o.tile_cols = 2;
    tsr_graph *p;
    tsr_prune_report *r;
    tt_ok(tsr_prune_graph(gr, &o, &p, &r));
    assert_int_equal(r->n_hidden, 0);
    double d = tt_graph_max_diff(gr, p, &g, 2, (int64_t[]){ 5, 4 });
    if (d > 1e-12) fail_msg("a shared bias: the pruned model differs by %g", d);
    tsr_prune_report_free(r);
    tsr_graph_free(p);
    tsr_graph_free(gr);
}

static void test_permute_cnn_function(void **state) {
    (void)state;
    tsr_prng g;
    tt_prng(&g, 1401);
    tsr_graph *gr = cnn(&g);
    tsr_prune_opts o;
    tsr_prune_opts_default(&o);
    o.method = TSR_PRUNE_NONE;
    o.permute = 1;
    o.tile_rows = 2;
    o.tile_cols = 2;
    o.expand = 1.5;
    tsr_graph *p;
    tsr_prune_report *r;
    tt_ok(tsr_prune_graph(gr, &o, &p, &r));
    assert_int_equal(r->n_layers, 3);
    assert_int_equal(r->n_hidden,
                     2); /* conv1 -> conv2 through pool, conv2 -> dense through flatten */
    assert_int_equal(r->layers[0].k, 9);
    assert_int_equal(r->layers[2].cols, 10 * 9); /* 6 -> 10 filters, 9 positions each */
    double d = tt_graph_max_diff(gr, p, &g, 4, (int64_t[]){ 3, 2, 6, 6 });
    if (d > 1e-12) fail_msg("permuted CNN differs by %g", d);
    tsr_prune_report_free(r);
    tsr_graph_free(p);
    tsr_graph_free(gr);
}

/*
 * W1 (16 x 8), tiles 4 x 4: row h is nonzero only in column block h % 2;
 * W2 (8 x 16) as MatMul (16, 8): column h nonzero only in row block h % 2
 * (tiles 4 x 4 alternate to 4 x 4). Unpermuted every tile holds a weight;
 * grouping the features by parity empties half of them.
 */
static void test_permute_gathers(void **state) {
    (void)state;
    tsr_prng g;
    tt_prng(&g, 1402);
    tsr_graph *gr;
    tt_ok(tsr_graph_create(&gr));
    tt_ok(tsr_graph_add_input(gr, "x", 2, (int64_t[]){ -1, 8 }));
    tsr_array *w1 = tt_rand_array(2, (int64_t[]){ 16, 8 }, &g, 1.0),
              *w2 = tt_rand_array(2, (int64_t[]){ 16, 8 }, &g, 1.0);
    for (int h = 0; h < 16; h++)
        for (int c = 0; c < 8; c++) {
            if (c / 4 != h % 2) w1->data[h * 8 + c] = 0.0; /* (rows=16 features, cols=8) */
            if (c / 4 != h % 2) w2->data[h * 8 + c] = 0.0; /* MatMul (in=16, out=8) */
        }
    tt_graph_const(gr, "W1", w1);
    tt_graph_const(gr, "W2", w2);
    tsr_graph_attrs a;
    tsr_graph_attrs_default(&a);
    a.trans_b = 1;
    tt_graph_node(gr, TSR_NODE_GEMM, 2, (const char *[]){ "x", "W1" }, "h", &a);
    tt_graph_node(gr, TSR_NODE_SQUARE, 1, (const char *[]){ "h" }, "h2", NULL);
    tt_graph_node(gr, TSR_NODE_MATMUL, 2, (const char *[]){ "h2", "W2" }, "y", NULL);
    tt_ok(tsr_graph_add_output(gr, "y"));
    tt_ok(tsr_graph_finalize(gr));
    tsr_prune_opts o;
    tsr_prune_opts_default(&o);
    o.method = TSR_PRUNE_NONE;
    o.permute = 1;
    o.tile_rows = o.tile_cols = 4;
    tsr_prune_report *before;
    tt_ok(tsr_prune_stats(gr, &o, &before));
    assert_int_equal(before->layers[0].tiles, 8);
    assert_int_equal(before->layers[0].tiles_nz_before, 8);
    assert_int_equal(before->layers[1].tiles_nz_before, 8);
    tsr_prune_report_free(before);
    tsr_graph *p;
    tsr_prune_report *r;
    tt_ok(tsr_prune_graph(gr, &o, &p, &r));
    assert_int_equal(r->layers[0].tiles_nz_after, 4);
    assert_int_equal(r->layers[1].tiles_nz_after, 4);
    assert_int_equal(r->layers[0].rowblocks_zero_after, 0);
    assert_true(r->mass_in_tiles > r->mass_before);
    double d = tt_graph_max_diff(gr, p, &g, 2, (int64_t[]){ 5, 8 });
    if (d > 1e-12) fail_msg("permuted model differs by %g", d);
    tsr_prune_report_free(r);
    tsr_graph_free(p);
    tsr_graph_free(gr);
}

/* Squared norms of the R x C tiles of a (rows x cols) row-major matrix. */
static void tile_norms(const double *w, int rows, int cols, int R, int C, double *n) {
    int bc = (cols + C - 1) / C, br = (rows + R - 1) / R;
    memset(n, 0, (size_t)(br * bc) * sizeof *n);
    for (int r = 0; r < rows; r++)
        for (int c = 0; c < cols; c++) n[(r / R) * bc + c / C] += w[r * cols + c] * w[r * cols + c];
}

static void test_methods(void **state) {
    (void)state;
    tsr_prng g;
    tt_prng(&g, 1403);
    tsr_graph *gr = mlp(&g);
    const double *w1 = tsr_graph_const(gr, "W1")->data; /* 10 x 12, rows = features */
    tsr_prune_opts o;
    tsr_prune_opts_default(&o);
    o.tile_rows = 4;
    o.tile_cols = 5;
    o.sparsity = 0.4;
    tsr_graph *p;
    tsr_prune_report *r;
    /* Tiles: 3 x 3 = 9 tiles, round(3.6) = 4 zeroed, the smallest. */
    o.method = TSR_PRUNE_TILE;
    o.steps = 3;
    tt_ok(tsr_prune_graph(gr, &o, &p, &r));
    assert_int_equal(r->layers[0].tiles, 9);
    assert_int_equal(r->layers[0].tiles_nz_after, 5);
    const double *q = tsr_graph_const(p, "W1")->data;
    double n0[9], n1[9];
    tile_norms(w1, 10, 12, 4, 5, n0);
    tile_norms(q, 10, 12, 4, 5, n1);
    double max_zeroed = 0, min_kept = INFINITY;
    for (int t = 0; t < 9; t++) {
        if (n1[t] == 0)
            max_zeroed = fmax(max_zeroed, n0[t]);
        else {
            min_kept = fmin(min_kept, n0[t]);
            assert_true(n1[t] == n0[t]); /* kept tiles untouched */
        }
    }
    assert_true(max_zeroed <= min_kept);
    /* Layer 2 alternates to 5 x 4 tiles: (8 rows, 10 cols) -> 2 x 3 = 6 tiles. */
    assert_int_equal(r->layers[1].tile_r, 5);
    assert_int_equal(r->layers[1].tiles, 6);
    assert_int_equal(r->layers[1].tiles_nz_after, 6 - 2);
    tsr_prune_report_free(r);
    tsr_graph_free(p);
    /* Magnitude: round(0.4 * 120) = 48 smallest weights of W1. */
    o.method = TSR_PRUNE_MAGNITUDE;
    o.steps = 1;
    tt_ok(tsr_prune_graph(gr, &o, &p, &r));
    assert_int_equal(r->layers[0].weights_nz_after, 120 - 48);
    q = tsr_graph_const(p, "W1")->data;
    double mz = 0, mk = INFINITY;
    for (int i = 0; i < 120; i++) {
        if (q[i] == 0)
            mz = fmax(mz, fabs(w1[i]));
        else
            mk = fmin(mk, fabs(w1[i]));
    }
    assert_true(mz <= mk);
    tsr_prune_report_free(r);
    tsr_graph_free(p);
    /* Hunter-style rows: round(0.4 * 10) = 4 whole rows of W1, the smallest. */
    o.method = TSR_PRUNE_HUNTER;
    tt_ok(tsr_prune_graph(gr, &o, &p, &r));
    q = tsr_graph_const(p, "W1")->data;
    int zero_rows = 0;
    double rz = 0, rk = INFINITY;
    for (int h = 0; h < 10; h++) {
        double s = 0, s0 = 0;
        for (int c = 0; c < 12; c++) {
            s += fabs(q[h * 12 + c]);
            s0 += w1[h * 12 + c] * w1[h * 12 + c];
        }
        if (s == 0) {
            zero_rows++;
            rz = fmax(rz, s0);
        } else {
            rk = fmin(rk, s0);
        }
    }
    assert_int_equal(zero_rows, 4);
    assert_true(rz <= rk);
    tsr_prune_report_free(r);
    tsr_graph_free(p);
    /* HE-PEx: tiles removed exactly as TILE at the same sparsity; function of the graph
     * with skip flags: the first and last layers stay dense. */
    o.method = TSR_PRUNE_HEPEX;
    o.skip_first = o.skip_last = 1;
    tt_ok(tsr_prune_graph(gr, &o, &p, &r));
    assert_int_equal(r->layers[0].tiles_nz_after, r->layers[0].tiles);
    assert_int_equal(r->layers[2].weights_nz_after, r->layers[2].weights);
    assert_int_equal(r->layers[1].tiles_nz_after, 4);
    assert_int_equal(r->n_permuted, 2);
    tsr_prune_report_free(r);
    tsr_graph_free(p);
    tsr_graph_free(gr);
}

/*
 * A "trainer" that sets every weight to 1: masked positions must come back as 0.
 * Its checks return an error instead of asserting: a cmocka assert in a library callback
 * would longjmp through tsr_prune_graph and leak its state; the test asserts on
 * tsr_prune_graph's status, whose message names the failed check.
 */
typedef struct ft_ctx {
    int calls;
} ft_ctx;

#define HOOK_CHECK(cond)                                                                       \
    do {                                                                                       \
        if (!(cond)) {                                                                         \
            st = tsr_fail(TSR_ERR_INTERNAL, "fine-tuning hook, %s:%d: %s", __FILE__, __LINE__, \
                          #cond);                                                              \
            goto done;                                                                         \
        }                                                                                      \
    } while (0)
#define HOOK_OK(expr)                           \
    do {                                        \
        if ((st = (expr)) != TSR_OK) goto done; \
    } while (0)

static tsr_status all_ones(void *ctx, int step, const tsr_prune_masks *masks, tsr_graph **model) {
    ft_ctx *c = ctx;
    c->calls++;
    tsr_status st = TSR_OK;
    tsr_graph *m = *model, *ng = NULL, *masked = NULL;
    HOOK_CHECK(step == c->calls);
    HOOK_OK(tsr_graph_create(&ng));
    HOOK_OK(tsr_graph_add_input(ng, "x", 2, (int64_t[]){ -1, 12 }));
    const char *names[] = { "W1",   "b1",   "c1",   "p1",   "half", "W2",
                            "bn_s", "bn_b", "bn_m", "bn_v", "W3",   "b3" };
    for (int i = 0; i < 12; i++) {
        tsr_array *a;
        HOOK_OK(tsr_array_clone(&a, tsr_graph_const(m, names[i])));
        if (names[i][0] == 'W')
            for (size_t k = 0; k < a->numel; k++) a->data[k] = 1.0;
        st = tsr_graph_add_const(ng, names[i], a);
        tsr_array_free(a);
        HOOK_OK(st);
    }
    for (int i = 0; i < tsr_graph_num_nodes(m); i++) {
        const char *in[8];
        int n = tsr_graph_node_num_inputs(m, i);
        for (int k = 0; k < n; k++) in[k] = tsr_graph_node_input(m, i, k);
        HOOK_OK(tsr_graph_add_node(ng, tsr_graph_node_kind(m, i), tsr_graph_node_name(m, i), n, in,
                                   tsr_graph_node_output(m, i), tsr_graph_node_attrs(m, i)));
    }
    HOOK_OK(tsr_graph_add_output(ng, "y"));
    HOOK_OK(tsr_graph_finalize(ng));
    /* The masks zero the pruned weights of any graph with the same constants. */
    HOOK_OK(tsr_prune_masks_apply(masks, ng, &masked));
    const tsr_array *w = tsr_graph_const(masked, "W1");
    size_t zeros = 0;
    for (size_t i = 0; i < w->numel; i++) zeros += w->data[i] == 0.0;
    HOOK_CHECK(zeros > 0 && zeros < w->numel);
    /* tsr_prune_masks_get gives the same positions in storage order. */
    uint8_t pruned[10 * 12];
    HOOK_CHECK(w->numel == 10 * 12);
    HOOK_CHECK(tsr_prune_masks_get(masks, "W1", pruned, w->numel) == 1);
    for (size_t i = 0; i < w->numel; i++) HOOK_CHECK(pruned[i] == (w->data[i] == 0.0));
    HOOK_CHECK(tsr_prune_masks_get(masks, "W1", pruned, w->numel - 1) == -1);
    HOOK_CHECK(strstr(tsr_last_error(), "the mask of 'W1' covers") != NULL);
    HOOK_CHECK(tsr_prune_masks_get(masks, "b1", pruned, 10) == 0);
    for (int i = 0; i < 10; i++) HOOK_CHECK(pruned[i] == 0);
done:
    tsr_graph_free(masked);
    if (st != TSR_OK) {
        tsr_graph_free(ng); /* *model stays the library's */
        return st;
    }
    tsr_graph_free(m);
    *model = ng;
    return TSR_OK;
}

static void test_finetune_masks(void **state) {
    (void)state;
    tsr_prng g;
    tt_prng(&g, 1404);
    tsr_graph *gr = mlp(&g);
    tsr_prune_opts o;
    tsr_prune_opts_default(&o);
    o.method = TSR_PRUNE_TILE;
    o.tile_rows = 2;
    o.tile_cols = 4;
    o.sparsity = 0.5;
    o.steps = 2;
    /* TILE, then HEPEX: magnitude steps, the permutation moving the masks, the tile step. */
    for (int hepex = 0; hepex < 2; hepex++) {
        o.method = hepex ? TSR_PRUNE_HEPEX : TSR_PRUNE_TILE;
        ft_ctx c = { 0 };
        o.finetune = all_ones;
        o.finetune_ctx = &c;
        tsr_graph *p;
        tsr_prune_report *r;
        tt_ok(tsr_prune_graph(gr, &o, &p, &r));
        assert_int_equal(c.calls, hepex ? 3 : 2);
        const tsr_array *w = tsr_graph_const(p, "W1");
        int64_t zeros = 0;
        for (size_t i = 0; i < w->numel; i++) {
            assert_true(w->data[i] == 0.0 || w->data[i] == 1.0);
            zeros += w->data[i] == 0.0;
        }
        /* 5 x 3 = 15 tiles of 2 x 4, round(7.5) = 8 zeroed, 8 weights each. */
        assert_int_equal(r->layers[0].tiles_nz_after, 15 - 8);
        assert_int_equal(zeros, 8 * 8);
        tsr_prune_report_free(r);
        tsr_graph_free(p);
    }
    tsr_graph_free(gr);
}

/* Per-layer sparsity: layer 0 to 0.8 of its tiles, layer 1 left dense, layer 2 the global 0.5. */
static void test_layer_sparsity(void **state) {
    (void)state;
    tsr_prng g;
    tt_prng(&g, 1406);
    tsr_graph *gr = mlp(&g), *p;
    tsr_prune_opts o;
    tsr_prune_opts_default(&o);
    o.tile_rows = 2;
    o.tile_cols = 4;
    o.sparsity = 0.5;
    const double ls[3] = { 0.8, 0.0, -1.0 };
    o.layer_sparsity = ls;
    o.n_layer_sparsity = 3;
    tsr_prune_report *r;
    tt_ok(tsr_prune_graph(gr, &o, &p, &r));
    assert_int_equal(r->n_layers, 3);
    /* W1 10x12 in 2x4 tiles: 15, round(12) zeroed; W2 8x10 in 4x2 tiles: 10, none;
     * W3 6x8 in 2x4 tiles: 6, round(3) zeroed. */
    assert_int_equal(r->layers[0].tiles_nz_after, 15 - 12);
    assert_int_equal(r->layers[1].tiles_nz_after, 10);
    assert_int_equal(r->layers[2].tiles_nz_after, 6 - 3);
    tsr_prune_report_free(r);
    tsr_graph_free(p);
    /* More values than layers, or a value out of range, is refused. */
    const double l4[4] = { 0.1, 0.1, 0.1, 0.1 }, bad[1] = { 1.0 };
    o.layer_sparsity = l4;
    o.n_layer_sparsity = 4;
    assert_int_equal(tsr_prune_graph(gr, &o, &p, NULL), TSR_ERR_INVALID_ARG);
    o.layer_sparsity = bad;
    o.n_layer_sparsity = 1;
    assert_int_equal(tsr_prune_graph(gr, &o, &p, NULL), TSR_ERR_INVALID_ARG);
    tsr_graph_free(gr);
}

/*
 * Tile-row-aware pruning: W1 (10 x 12 in 2 x 4 tiles: 5 tile rows of 3 tiles) empties
 * round(0.4 x 5) = 2 whole tile rows, those of smallest norm, then zeroes tiles up to
 * round(0.5 x 15) = 8, the 2 smallest of the other tile rows' tiles; W2 keeps the global
 * row sparsity 0 (tile pruning only).
 */
static void test_row_sparsity(void **state) {
    (void)state;
    tsr_prng g;
    tt_prng(&g, 1407);
    tsr_graph *gr = mlp(&g), *p;
    const double *w1 = tsr_graph_const(gr, "W1")->data;
    tsr_prune_opts o;
    tsr_prune_opts_default(&o);
    o.tile_rows = 2;
    o.tile_cols = 4;
    o.sparsity = 0.5;
    const double rs[2] = { 0.4, -1.0 };
    o.layer_row_sparsity = rs;
    o.n_layer_row_sparsity = 2;
    tsr_prune_report *r;
    tt_ok(tsr_prune_graph(gr, &o, &p, &r));
    double n0[15], n1[15], rown[5] = { 0 }, sorted[5];
    tile_norms(w1, 10, 12, 2, 4, n0);
    tile_norms(tsr_graph_const(p, "W1")->data, 10, 12, 2, 4, n1);
    for (int t = 0; t < 15; t++) rown[t / 3] += n0[t];
    memcpy(sorted, rown, sizeof sorted);
    qsort(sorted, 5, sizeof *sorted, cmp_dbl);
    int empty_rows = 0;
    double rest[15];
    int nrest = 0;
    for (int br = 0; br < 5; br++) {
        int weak = rown[br] <= sorted[1];
        double kept = n1[3 * br] + n1[3 * br + 1] + n1[3 * br + 2];
        if (weak) {
            if (kept != 0) fail_msg("tile row %d (norm %g) is not empty", br, rown[br]);
            empty_rows++;
        } else {
            for (int j = 0; j < 3; j++) rest[nrest++] = n0[3 * br + j];
        }
    }
    assert_int_equal(empty_rows, 2);
    assert_int_equal(nrest, 9);
    qsort(rest, (size_t)nrest, sizeof *rest, cmp_dbl);
    for (int t = 0; t < 15; t++) {
        if (rown[t / 3] <= sorted[1]) continue;
        /* outside the emptied tile rows: the 2 smallest tiles zeroed, the others untouched */
        if (n0[t] <= rest[1])
            assert_true(n1[t] == 0);
        else
            assert_true(n1[t] == n0[t]);
    }
    assert_int_equal(r->layers[0].tiles_nz_after, 15 - 8);
    assert_int_equal(r->layers[0].rowblocks_zero_after, 2);
    /* W2 (8 x 10 in 4 x 2 tiles: 2 x 5 = 10) loses round(5) tiles */
    assert_int_equal(r->layers[1].tiles_nz_after, 10 - 5);
    tsr_prune_report_free(r);
    tsr_graph_free(p);
    const double bad[1] = { 1.0 };
    o.layer_row_sparsity = bad;
    o.n_layer_row_sparsity = 1;
    tt_fails(tsr_prune_graph(gr, &o, &p, NULL), TSR_ERR_INVALID_ARG);
    o.layer_row_sparsity = NULL;
    o.n_layer_row_sparsity = 0;
    o.row_sparsity = -0.5;
    tt_fails(tsr_prune_graph(gr, &o, &p, NULL), TSR_ERR_INVALID_ARG);
    tsr_graph_free(gr);
}

/* Options of the shrink tests: no pruning method, R x C tiles, shrink on. */
static void shrink_opts(tsr_prune_opts *o, int rows, int cols) {
    tsr_prune_opts_default(o);
    o->method = TSR_PRUNE_NONE;
    o->tile_rows = rows;
    o->tile_cols = cols;
    o->shrink = 1;
}

/* x(N,12) -> Gemm(W1 10x12, b1) -> per-channel poly -> Gemm(W2 8x10, b2) -> square ->
 * MatMul(W3 8x6) -> y: hidden 1 feeds a Gemm with a bias (constant features fold into b2),
 * hidden 2 a MatMul (they cannot). */
static tsr_graph *mlp_dead(tsr_prng *g) {
    tsr_graph *gr;
    tt_ok(tsr_graph_create(&gr));
    tt_ok(tsr_graph_add_input(gr, "x", 2, (int64_t[]){ -1, 12 }));
    tsr_array *w1 = tt_rand_array(2, (int64_t[]){ 10, 12 }, g, 0.5);
    tsr_array *w2 = tt_rand_array(2, (int64_t[]){ 8, 10 }, g, 0.5);
    tsr_array *w3 = tt_rand_array(2, (int64_t[]){ 8, 6 }, g, 0.5);
    /* hidden 1 (10): rows 1, 4, 7 of W1 zero (constant, folded); columns 2, 5 of W2 zero
     * (unused); column 9 of W2 nonzero only in row 6, which goes below, so 9 goes in a
     * second pass. hidden 2 (8): row 3 of W2 zero (constant, but a MatMul follows: it
     * stays), row 6 of W3 zero (unused). */
    for (int c = 0; c < 12; c++)
        w1->data[1 * 12 + c] = w1->data[4 * 12 + c] = w1->data[7 * 12 + c] = 0;
    for (int r = 0; r < 8; r++) {
        w2->data[r * 10 + 2] = w2->data[r * 10 + 5] = 0;
        if (r != 6) w2->data[r * 10 + 9] = 0;
    }
    for (int c = 0; c < 10; c++) w2->data[3 * 10 + c] = 0;
    for (int c = 0; c < 6; c++) w3->data[6 * 6 + c] = 0;
    tt_graph_const(gr, "W1", w1);
    tt_graph_const(gr, "b1", tt_rand_array(1, (int64_t[]){ 10 }, g, 0.5));
    tt_graph_const(gr, "p1", tt_rand_array(2, (int64_t[]){ 10, 3 }, g, 0.5));
    tt_graph_const(gr, "W2", w2);
    tt_graph_const(gr, "b2", tt_rand_array(1, (int64_t[]){ 8 }, g, 0.5));
    tt_graph_const(gr, "W3", w3);
    tsr_graph_attrs a;
    tsr_graph_attrs_default(&a);
    a.trans_b = 1;
    tt_graph_node(gr, TSR_NODE_GEMM, 3, (const char *[]){ "x", "W1", "b1" }, "h1", &a);
    tsr_graph_attrs pa;
    tsr_graph_attrs_default(&pa);
    pa.axis = 1;
    tt_graph_node(gr, TSR_NODE_POLY, 2, (const char *[]){ "h1", "p1" }, "h2", &pa);
    a.alpha = 0.5; /* the fold scales by alpha / beta */
    a.beta = 2.0;
    tt_graph_node(gr, TSR_NODE_GEMM, 3, (const char *[]){ "h2", "W2", "b2" }, "h3", &a);
    tt_graph_node(gr, TSR_NODE_SQUARE, 1, (const char *[]){ "h3" }, "h4", NULL);
    tt_graph_node(gr, TSR_NODE_MATMUL, 2, (const char *[]){ "h4", "W3" }, "y", NULL);
    tt_ok(tsr_graph_add_output(gr, "y"));
    tt_ok(tsr_graph_finalize(gr));
    return gr;
}

/*
 * Shrink: the hidden features whose weights pruning emptied disappear (rows of
 * W_l and b_l, per-feature constants, columns of W_{l+1}), constant ones folded
 * into the next Gemm's bias, and the narrower graph computes the same function.
 */
static void test_shrink(void **state) {
    (void)state;
    tsr_prng g;
    tt_prng(&g, 1410);
    tsr_graph *gr = mlp_dead(&g), *p;
    tsr_prune_opts o;
    shrink_opts(&o, 2, 4);
    tsr_prune_report *r;
    tt_ok(tsr_prune_graph(gr, &o, &p, &r));
    /* hidden 1: 10 - 3 constant - 2 unused - 1 (second pass) = 4; hidden 2: 8 - 1 = 7 */
    assert_int_equal(r->features_removed, 7);
    const tsr_array *w1 = tsr_graph_const(p, "W1"), *w2 = tsr_graph_const(p, "W2");
    assert_int_equal(w1->dims[0], 4);
    assert_int_equal(tsr_graph_const(p, "b1")->dims[0], 4);
    assert_int_equal(tsr_graph_const(p, "p1")->dims[0], 4);
    assert_int_equal(w2->dims[0], 7);
    assert_int_equal(w2->dims[1], 4);
    assert_int_equal(tsr_graph_const(p, "W3")->dims[0], 7);
    assert_int_equal(r->layers[0].rows, 4);
    assert_int_equal(r->layers[1].cols, 4);
    /* the kept features are 0, 3, 6, 8 in order: W1's rows unchanged */
    const double *w1o = tsr_graph_const(gr, "W1")->data;
    const int kept[4] = { 0, 3, 6, 8 };
    for (int i = 0; i < 4; i++)
        for (int c = 0; c < 12; c++) assert_true(w1->data[i * 12 + c] == w1o[kept[i] * 12 + c]);
    double d = tt_graph_max_diff(gr, p, &g, 2, (int64_t[]){ 9, 12 });
    if (d > 1e-12) fail_msg("the shrunk MLP differs by %g", d);
    tsr_prune_report_free(r);
    tsr_graph_free(p);
    /* without shrink: nothing removed */
    o.shrink = 0;
    tt_ok(tsr_prune_graph(gr, &o, &p, &r));
    assert_int_equal(r->features_removed, 0);
    assert_int_equal(tsr_graph_const(p, "W1")->dims[0], 10);
    tsr_prune_report_free(r);
    tsr_graph_free(p);
    tsr_graph_free(gr);
}

/* Tile-row pruning with and without shrink: the same function, the shrunk one narrower by the
 * emptied tile rows' features. */
static void test_shrink_rows(void **state) {
    (void)state;
    tsr_prng g;
    tt_prng(&g, 1411);
    tsr_graph *gr = mlp_dead(&g), *p0, *p1;
    tsr_prune_opts o;
    tsr_prune_opts_default(&o);
    o.tile_rows = 2;
    o.tile_cols = 4;
    o.sparsity = 0.5;
    const double rs[3] = { 0.4, 0.0, 0.0 }, ls[3] = { 0.5, 0.0, 0.0 };
    o.layer_row_sparsity = rs;
    o.n_layer_row_sparsity = 3;
    o.layer_sparsity = ls;
    o.n_layer_sparsity = 3;
    tt_ok(tsr_prune_graph(gr, &o, &p0, NULL));
    o.shrink = 1;
    tsr_prune_report *r;
    tt_ok(tsr_prune_graph(gr, &o, &p1, &r));
    /* W1 (10 x 12 in 2 x 4 tiles, 5 tile rows): 2 of its tile rows empty, 4 features; the rows
     * already zero and the W2 columns already zero overlap with them or go too */
    const double *a = tsr_graph_const(p0, "W1")->data;
    int64_t zero_rows = 0;
    for (int f = 0; f < 10; f++) {
        int z = 1;
        for (int c = 0; c < 12; c++) z &= a[f * 12 + c] == 0.0;
        const double *w2 = tsr_graph_const(p0, "W2")->data;
        int out = 1;
        for (int q = 0; q < 8; q++) out &= w2[q * 10 + f] == 0.0;
        zero_rows += z || out;
    }
    assert_true(zero_rows >= 4);
    assert_true(tsr_graph_const(p1, "W1")->dims[0] <= 10 - zero_rows);
    assert_int_equal(r->layers[0].rows, tsr_graph_const(p1, "W1")->dims[0]);
    double d = tt_graph_max_diff(p0, p1, &g, 2, (int64_t[]){ 9, 12 });
    if (d > 1e-12) fail_msg("the shrunk pruned MLP differs by %g", d);
    tsr_prune_report_free(r);
    tsr_graph_free(p0);
    tsr_graph_free(p1);
    tsr_graph_free(gr);
}

/* x(N,16) -> Gemm(W1 10x16, b1) -> square -> Gemm(W2 6x10, b2) -> y, tiles 2 x 4 (W2: 4 x 2):
 * feature 0 is unused (W2's column 0 zero) and sits before W1's tile-pruned rows (tile rows
 * 1 - 4 keep every other tile), features 8, 9 (a whole tile group) are unused too. */
static tsr_graph *mlp_stray(tsr_prng *g) {
    tsr_graph *gr;
    tt_ok(tsr_graph_create(&gr));
    tt_ok(tsr_graph_add_input(gr, "x", 2, (int64_t[]){ -1, 16 }));
    tsr_array *w1 = tt_rand_array(2, (int64_t[]){ 10, 16 }, g, 0.5);
    tsr_array *w2 = tt_rand_array(2, (int64_t[]){ 6, 10 }, g, 0.5);
    for (int f = 2; f < 10; f++)
        for (int c = 0; c < 16; c++)
            if ((f / 2 + c / 4) % 2 == 0) w1->data[f * 16 + c] = 0;
    for (int r = 0; r < 6; r++)
        w2->data[r * 10 + 0] = w2->data[r * 10 + 8] = w2->data[r * 10 + 9] = 0;
    tt_graph_const(gr, "W1", w1);
    tt_graph_const(gr, "b1", tt_rand_array(1, (int64_t[]){ 10 }, g, 0.5));
    tt_graph_const(gr, "W2", w2);
    tt_graph_const(gr, "b2", tt_rand_array(1, (int64_t[]){ 6 }, g, 0.5));
    tsr_graph_attrs a;
    tsr_graph_attrs_default(&a);
    a.trans_b = 1;
    tt_graph_node(gr, TSR_NODE_GEMM, 3, (const char *[]){ "x", "W1", "b1" }, "h1", &a);
    tt_graph_node(gr, TSR_NODE_SQUARE, 1, (const char *[]){ "h1" }, "h2", NULL);
    tt_graph_node(gr, TSR_NODE_GEMM, 3, (const char *[]){ "h2", "W2", "b2" }, "y", &a);
    tt_ok(tsr_graph_add_output(gr, "y"));
    tt_ok(tsr_graph_finalize(gr));
    return gr;
}

static int64_t tiles_nz(const tsr_prune_report *r, int after) {
    int64_t t = 0;
    for (int i = 0; i < r->n_layers; i++)
        t += after ? r->layers[i].tiles_nz_after : r->layers[i].tiles_nz_before;
    return t;
}

/* Shrink never adds tiles: removing the unused features 0, 8, 9 one by one would move
 * features 1 - 7 up one row of W1, and its 8 zero tiles would all become mixed (20 -> 22
 * nonzero tiles of W1 and W2); only the aligned group 8, 9 goes (18). */
static void test_shrink_aligned(void **state) {
    (void)state;
    tsr_prng g;
    tt_prng(&g, 1412);
    tsr_graph *gr = mlp_stray(&g), *p;
    tsr_prune_opts o;
    shrink_opts(&o, 2, 4);
    tsr_prune_report *r;
    tt_ok(tsr_prune_graph(gr, &o, &p, &r));
    assert_int_equal(tiles_nz(r, 0), 12 + 8);
    assert_int_equal(r->features_removed, 2);
    assert_int_equal(r->shrink_realigned, 1);
    assert_int_equal(tsr_graph_const(p, "W1")->dims[0], 8);
    assert_int_equal(tiles_nz(r, 1), 10 + 8);
    assert_int_equal(r->layers[0].tiles_before, 5 * 4);
    assert_int_equal(r->layers[0].tiles, 4 * 4);
    /* W1's rows 0 - 7 unchanged (feature 0 stays) */
    const double *a = tsr_graph_const(gr, "W1")->data, *b = tsr_graph_const(p, "W1")->data;
    for (int i = 0; i < 8 * 16; i++) assert_true(a[i] == b[i]);
    double d = tt_graph_max_diff(gr, p, &g, 2, (int64_t[]){ 5, 16 });
    if (!(d <= 1e-12)) fail_msg("the shrunk MLP differs by %g", d);
    tsr_prune_report_free(r);
    tsr_graph_free(p);
    tsr_graph_free(gr);
}

/* x -> Reciprocal -> Gemm(W1 6x4, b1) -> square -> Gemm(W2 3x6, b2): W1's row 2 is zero, but
 * on the all-zero input 0 x inf = NaN reaches its "constant"; it is kept, not folded. */
static void test_shrink_nonfinite(void **state) {
    (void)state;
    tsr_prng g;
    tt_prng(&g, 1413);
    tsr_graph *gr, *p;
    tt_ok(tsr_graph_create(&gr));
    tt_ok(tsr_graph_add_input(gr, "x", 2, (int64_t[]){ -1, 4 }));
    tsr_array *w1 = tt_rand_array(2, (int64_t[]){ 6, 4 }, &g, 0.5);
    for (int c = 0; c < 4; c++) w1->data[2 * 4 + c] = 0;
    tt_graph_const(gr, "W1", w1);
    tt_graph_const(gr, "b1", tt_rand_array(1, (int64_t[]){ 6 }, &g, 0.5));
    tt_graph_const(gr, "W2", tt_rand_array(2, (int64_t[]){ 3, 6 }, &g, 0.5));
    tt_graph_const(gr, "b2", tt_rand_array(1, (int64_t[]){ 3 }, &g, 0.5));
    tsr_graph_attrs a;
    tsr_graph_attrs_default(&a);
    a.trans_b = 1;
    tt_graph_node(gr, TSR_NODE_RECIPROCAL, 1, (const char *[]){ "x" }, "r", NULL);
    tt_graph_node(gr, TSR_NODE_GEMM, 3, (const char *[]){ "r", "W1", "b1" }, "h1", &a);
    tt_graph_node(gr, TSR_NODE_SQUARE, 1, (const char *[]){ "h1" }, "h2", NULL);
    tt_graph_node(gr, TSR_NODE_GEMM, 3, (const char *[]){ "h2", "W2", "b2" }, "y", &a);
    tt_ok(tsr_graph_add_output(gr, "y"));
    tt_ok(tsr_graph_finalize(gr));
    tsr_prune_opts o;
    shrink_opts(&o, 1, 1);
    o.alternate = 0;
    tsr_prune_report *r;
    tt_ok(tsr_prune_graph(gr, &o, &p, &r));
    assert_int_equal(r->features_removed, 0);
    assert_int_equal(r->features_not_folded, 1);
    for (int i = 0; i < 3; i++) assert_true(isfinite(tsr_graph_const(p, "b2")->data[i]));
    double d = tt_graph_max_diff(gr, p, &g, 2, (int64_t[]){ 5, 4 });
    if (!(d <= 1e-12)) fail_msg("the shrunk MLP differs by %g", d);
    tsr_prune_report_free(r);
    tsr_graph_free(p);
    tsr_graph_free(gr);
}

/*
 * The dense layer after the CNN's flatten reads (6 channels, 3, 3) images:
 * its tiles are 2 outputs x 4 channels x a 2 x 2 block of positions, the
 * compiler's dense tile (recomputed here from the flatten order (c, y, x)).
 */
static void test_spatial_tiles(void **state) {
    (void)state;
    tsr_prng g;
    tt_prng(&g, 1407);
    tsr_graph *gr = cnn(&g), *p;
    tsr_prune_opts o;
    tsr_prune_opts_default(&o);
    o.tile_rows = 2;
    o.tile_cols = 4;
    o.tile_y = 2;
    o.tile_x = 2;
    o.sparsity = 0.5;
    tsr_prune_report *r;
    tt_ok(tsr_prune_graph(gr, &o, &p, &r));
    assert_int_equal(r->n_layers, 3);
    /* 5 rows -> 3 row blocks; channels 6 -> 2 blocks, 3 x 3 positions -> 2 x 2 blocks. */
    assert_int_equal(r->layers[2].tiles, 3 * 2 * 2 * 2);
    assert_int_equal(r->layers[2].tiles_nz_after, 24 - 12);
    const tsr_array *w = tsr_graph_const(p, "F"); /* (5, 54) */
    int zero[3][2][2][2] = { { { { 0 } } } }, nz[3][2][2][2] = { { { { 0 } } } };
    for (int o_ = 0; o_ < 5; o_++)
        for (int c = 0; c < 6; c++)
            for (int y = 0; y < 3; y++)
                for (int x = 0; x < 3; x++) {
                    double v = w->data[o_ * 54 + (c * 3 + y) * 3 + x];
                    (v == 0.0 ? zero : nz)[o_ / 2][c / 4][y / 2][x / 2]++;
                }
    int zt = 0;
    for (int a = 0; a < 3; a++)
        for (int b = 0; b < 2; b++)
            for (int y = 0; y < 2; y++)
                for (int x = 0; x < 2; x++) {
                    assert_true(zero[a][b][y][x] == 0 || nz[a][b][y][x] == 0); /* whole tiles */
                    zt += nz[a][b][y][x] == 0;
                }
    assert_int_equal(zt, 12);
    tsr_prune_report_free(r);
    tsr_graph_free(p);
    /* Permutation through the flatten keeps the function with spatial tiles too. */
    o.method = TSR_PRUNE_NONE;
    o.permute = 1;
    tt_ok(tsr_prune_graph(gr, &o, &p, NULL));
    double d = tt_graph_max_diff(gr, p, &g, 4, (int64_t[]){ 3, 2, 6, 6 });
    if (d > 1e-12) fail_msg("permuted CNN with spatial tiles differs by %g", d);
    tsr_graph_free(p);
    tsr_graph_free(gr);
}

/* x -> Gemm(W1 6x4, b1) -> square -> Sqrt -> Gemm(W2 3x6, b2): the Sqrt forbids expansion,
 * not removal; W2's column 1 is zero and feature 1 goes. */
static void test_shrink_sqrt(void **state) {
    (void)state;
    tsr_prng g;
    tt_prng(&g, 1415);
    tsr_graph *gr, *p;
    tt_ok(tsr_graph_create(&gr));
    tt_ok(tsr_graph_add_input(gr, "x", 2, (int64_t[]){ -1, 4 }));
    tt_graph_const(gr, "W1", tt_rand_array(2, (int64_t[]){ 6, 4 }, &g, 0.5));
    tt_graph_const(gr, "b1", tt_rand_array(1, (int64_t[]){ 6 }, &g, 0.5));
    tsr_array *w2 = tt_rand_array(2, (int64_t[]){ 3, 6 }, &g, 0.5);
    for (int r = 0; r < 3; r++) w2->data[r * 6 + 1] = 0;
    tt_graph_const(gr, "W2", w2);
    tt_graph_const(gr, "b2", tt_rand_array(1, (int64_t[]){ 3 }, &g, 0.5));
    tsr_graph_attrs a;
    tsr_graph_attrs_default(&a);
    a.trans_b = 1;
    tt_graph_node(gr, TSR_NODE_GEMM, 3, (const char *[]){ "x", "W1", "b1" }, "h1", &a);
    tt_graph_node(gr, TSR_NODE_SQUARE, 1, (const char *[]){ "h1" }, "h2", NULL);
    tt_graph_node(gr, TSR_NODE_SQRT, 1, (const char *[]){ "h2" }, "h3", NULL);
    tt_graph_node(gr, TSR_NODE_GEMM, 3, (const char *[]){ "h3", "W2", "b2" }, "y", &a);
    tt_ok(tsr_graph_add_output(gr, "y"));
    tt_ok(tsr_graph_finalize(gr));
    tsr_prune_opts o;
    shrink_opts(&o, 1, 1);
    tsr_prune_report *r;
    tt_ok(tsr_prune_graph(gr, &o, &p, &r));
    assert_int_equal(r->features_removed, 1);
    assert_int_equal(tsr_graph_const(p, "W2")->dims[1], 5);
    double d = tt_graph_max_diff(gr, p, &g, 2, (int64_t[]){ 5, 4 });
    if (!(d <= 1e-12)) fail_msg("the shrunk MLP differs by %g", d);
    tsr_prune_report_free(r);
    tsr_graph_free(p);
    tsr_graph_free(gr);
}

/* The fold through a flatten: x -> Conv(K1, kb1) -> poly -> AvgPool -> Conv(K2, kb2) -> square
 * -> Flatten -> Gemm(F 5x54, fb): filter 2 of K2 is zero, so channel 2 is kb2[2]^2 at every
 * one of its 9 positions, which F's columns 18 - 26 fold into fb. */
static void test_shrink_flatten(void **state) {
    (void)state;
    tsr_prng g;
    tt_prng(&g, 1414);
    tsr_graph *gr, *p;
    tt_ok(tsr_graph_create(&gr));
    tt_ok(tsr_graph_add_input(gr, "x", 4, (int64_t[]){ -1, 2, 6, 6 }));
    tt_graph_const(gr, "K1", tt_rand_array(4, (int64_t[]){ 4, 2, 3, 3 }, &g, 0.5));
    tt_graph_const(gr, "kb1", tt_rand_array(1, (int64_t[]){ 4 }, &g, 0.5));
    tt_graph_const(gr, "pc", tt_rand_array(1, (int64_t[]){ 3 }, &g, 0.5));
    tsr_array *k2 = tt_rand_array(4, (int64_t[]){ 6, 4, 3, 3 }, &g, 0.5);
    for (int i = 0; i < 4 * 9; i++) k2->data[2 * 36 + i] = 0;
    tt_graph_const(gr, "K2", k2);
    tt_graph_const(gr, "kb2", tt_rand_array(1, (int64_t[]){ 6 }, &g, 0.5));
    tt_graph_const(gr, "F", tt_rand_array(2, (int64_t[]){ 5, 54 }, &g, 0.5));
    tt_graph_const(gr, "fb", tt_rand_array(1, (int64_t[]){ 5 }, &g, 0.5));
    tsr_graph_attrs a;
    tsr_graph_attrs_default(&a);
    for (int i = 0; i < 4; i++) a.pads[i] = 1;
    tt_graph_node(gr, TSR_NODE_CONV, 3, (const char *[]){ "x", "K1", "kb1" }, "c1", &a);
    tsr_graph_attrs_default(&a);
    tt_graph_node(gr, TSR_NODE_POLY, 2, (const char *[]){ "c1", "pc" }, "c2", &a);
    tsr_graph_attrs_default(&a);
    a.n_kernel = 2;
    a.kernel[0] = a.kernel[1] = 2;
    a.strides[0] = a.strides[1] = 2;
    tt_graph_node(gr, TSR_NODE_AVGPOOL, 1, (const char *[]){ "c2" }, "c3", &a);
    tsr_graph_attrs_default(&a);
    for (int i = 0; i < 4; i++) a.pads[i] = 1;
    tt_graph_node(gr, TSR_NODE_CONV, 3, (const char *[]){ "c3", "K2", "kb2" }, "c4", &a);
    tt_graph_node(gr, TSR_NODE_SQUARE, 1, (const char *[]){ "c4" }, "c5", NULL);
    tsr_graph_attrs_default(&a);
    a.axis = 1;
    tt_graph_node(gr, TSR_NODE_FLATTEN, 1, (const char *[]){ "c5" }, "c6", &a);
    tsr_graph_attrs_default(&a);
    a.trans_b = 1;
    tt_graph_node(gr, TSR_NODE_GEMM, 3, (const char *[]){ "c6", "F", "fb" }, "y", &a);
    tt_ok(tsr_graph_add_output(gr, "y"));
    tt_ok(tsr_graph_finalize(gr));
    tsr_prune_opts o;
    shrink_opts(&o, 1, 1);
    tsr_prune_report *r;
    tt_ok(tsr_prune_graph(gr, &o, &p, &r));
    assert_int_equal(r->features_removed, 1);
    assert_int_equal(r->features_not_folded, 0);
    assert_int_equal(tsr_graph_const(p, "K2")->dims[0], 5);
    assert_int_equal(tsr_graph_const(p, "F")->dims[1], 45);
    double d = tt_graph_max_diff(gr, p, &g, 4, (int64_t[]){ 3, 2, 6, 6 });
    if (!(d <= 1e-12)) fail_msg("the shrunk CNN differs by %g", d);
    tsr_prune_report_free(r);
    tsr_graph_free(p);
    tsr_graph_free(gr);
}

static void test_errors(void **state) {
    (void)state;
    tsr_prng g;
    tt_prng(&g, 1405);
    tsr_graph *gr = mlp(&g), *p;
    tsr_prune_opts o;
    tsr_prune_opts_default(&o);
    o.sparsity = 1.0;
    tt_fails(tsr_prune_graph(gr, &o, &p, NULL), TSR_ERR_INVALID_ARG);
    o.sparsity = -0.1;
    tt_fails(tsr_prune_graph(gr, &o, &p, NULL), TSR_ERR_INVALID_ARG);
    tsr_prune_opts_default(&o);
    o.tile_rows = 0;
    tt_fails(tsr_prune_graph(gr, &o, &p, NULL), TSR_ERR_INVALID_ARG);
    tsr_prune_opts_default(&o);
    o.expand = 0.5;
    tt_fails(tsr_prune_graph(gr, &o, &p, NULL), TSR_ERR_INVALID_ARG);
    tsr_prune_method m;
    tt_fails(tsr_prune_method_parse("random", &m), TSR_ERR_INVALID_ARG);
    tt_ok(tsr_prune_method_parse("hepex", &m));
    assert_int_equal(m, TSR_PRUNE_HEPEX);
    tsr_graph_free(gr);
    /* No layer with constant weights. */
    tt_ok(tsr_graph_create(&gr));
    tt_ok(tsr_graph_add_input(gr, "x", 2, (int64_t[]){ -1, 4 }));
    tt_graph_node(gr, TSR_NODE_SQUARE, 1, (const char *[]){ "x" }, "y", NULL);
    tt_ok(tsr_graph_add_output(gr, "y"));
    tt_ok(tsr_graph_finalize(gr));
    tsr_prune_opts_default(&o);
    tt_fails(tsr_prune_graph(gr, &o, &p, NULL), TSR_ERR_UNSUPPORTED);
    tsr_graph_free(gr);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_permute_mlp_function),
        cmocka_unit_test(test_permute_shared_bias),
        cmocka_unit_test(test_permute_cnn_function),
        cmocka_unit_test(test_permute_gathers),
        cmocka_unit_test(test_methods),
        cmocka_unit_test(test_finetune_masks),
        cmocka_unit_test(test_layer_sparsity),
        cmocka_unit_test(test_row_sparsity),
        cmocka_unit_test(test_spatial_tiles),
        cmocka_unit_test(test_shrink),
        cmocka_unit_test(test_shrink_rows),
        cmocka_unit_test(test_shrink_aligned),
        cmocka_unit_test(test_shrink_nonfinite),
        cmocka_unit_test(test_shrink_flatten),
        cmocka_unit_test(test_shrink_sqrt),
        cmocka_unit_test(test_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
