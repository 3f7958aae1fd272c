/*
 * tests/test_nn_graph.c - the model graph lowered onto inference layers
 * (nn/lower.c): hand-built graphs whose every node takes another rule
 * (grouped and dilated convolution, a Pad merged into a pool, a Transpose
 * and rank-3 MatMul measured as dense layers, per-channel affine maps,
 * Gemm with transB/alpha/beta, rank-3 inputs, products of two activations:
 * attention's MatMuls, broadcast Mul), each compared with the
 * graph's own reference executor before and after the CKKS
 * simplifications; the PyTorch fixtures of tests/data/torch against
 * PyTorch's outputs; and the report for what cannot be lowered.
 */
#include "testutil.h"

#include "core/alloc.h"
#include "graph/graph_internal.h"
#include "nn/nn_internal.h"
#include "onnx/onnx_graph.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void rnd(tsr_prng *g, double *x, int64_t n, double s) {
    for (int64_t i = 0; i < n; i++) x[i] = s * (2 * tsr_prng_double(g) - 1);
}

static void add_const(tsr_graph *g, const char *name, int rank, const int64_t *dims, tsr_prng *r,
                      double s) {
    tsr_array *a;
    tt_ok(tsr_array_create(&a, rank, dims));
    rnd(r, a->data, (int64_t)a->numel, s);
    tt_ok(tsr_graph_add_const(g, name, a));
    tsr_array_free(a);
}

static void add_scalar(tsr_graph *g, const char *name, double v) {
    tsr_array *a;
    tt_ok(tsr_array_create(&a, 0, NULL));
    a->data[0] = v;
    tt_ok(tsr_graph_add_const(g, name, a));
    tsr_array_free(a);
}

static void node(tsr_graph *g, tsr_graph_kind k, const char *out, int n_in, const char *a,
                 const char *b, const char *c, const tsr_graph_attrs *at) {
    const char *in[3] = { a, b, c };
    tt_ok(tsr_graph_add_node(g, k, out, n_in, in, out, at));
}

/* Largest |a - b|. */
/* A new graph whose input "x" has the given dims (-1: the batch). */
static tsr_graph *with_input(int rank, const int64_t *dims) {
    tsr_graph *g;
    tt_ok(tsr_graph_create(&g));
    tt_ok(tsr_graph_add_input(g, "x", rank, dims));
    return g;
}

/* A REDUCE_SUM / REDUCE_MEAN node over one axis. */
static void reduce_node(tsr_graph *g, tsr_graph_kind k, const char *out, const char *in, int axis,
                        int keepdims) {
    tsr_graph_attrs a;
    tsr_graph_attrs_default(&a);
    a.n_axes = 1;
    a.axes[0] = axis;
    a.keepdims = keepdims;
    node(g, k, out, 1, in, NULL, NULL, &a);
}

/* A TRANSPOSE node with permutation perm[0..n). */
static void transpose_node(tsr_graph *g, const char *out, const char *in, int n,
                           const int64_t *perm) {
    tsr_graph_attrs a;
    tsr_graph_attrs_default(&a);
    a.n_perm = n;
    for (int i = 0; i < n; i++) a.perm[i] = perm[i];
    node(g, TSR_NODE_TRANSPOSE, out, 1, in, NULL, NULL, &a);
}

static double max_err(const double *a, const double *b, size_t n) {
    double e = 0;
    for (size_t i = 0; i < n; i++) e = fmax(e, fabs(a[i] - b[i]));
    return e;
}

/* Lower g, run both (simplified too) on B random samples against tsr_graph_run. */
static tsr_nn_model *check_lowering(const tsr_graph *g, int B, int expect_layers_max) {
    tsr_nn_model *m = NULL;
    char *rep = NULL;
    int nb = -1;
    tsr_status st = nn_model_from_graph(g, &m, &rep, &nb);
    if (st != TSR_OK) fail_msg("lowering failed: %s\n%s", tsr_last_error(), rep ? rep : "");
    assert_int_equal(nb, 0);
    assert_null(rep);
    int rank;
    int64_t dims[TSR_ARRAY_MAX_RANK];
    tt_ok(tsr_graph_value_shape(g, tsr_graph_input_name(g, 0), &rank, dims));
    dims[0] = B;
    tsr_array *x;
    tt_ok(tsr_array_create(&x, rank, dims));
    tsr_prng r;
    tt_prng(&r, 77);
    rnd(&r, x->data, (int64_t)x->numel, 1.0);
    tsr_array *y[1] = { NULL };
    const tsr_array *ins[1] = { x };
    tt_ok(tsr_graph_run(g, ins, y));
    int64_t no = tsr_nn_model_output_size(m);
    assert_int_equal((int64_t)y[0]->numel, no * B);
    /* the output dimensions are the graph's, batch left out */
    int64_t od[TSR_ARRAY_MAX_RANK];
    int orank = tsr_nn_model_output_dims(m, od);
    assert_int_equal(orank, y[0]->rank - 1);
    for (int i = 0; i < orank; i++) assert_int_equal(od[i], y[0]->dims[i + 1]);
    double *out = malloc((size_t)(no * B) * sizeof *out);
    tt_ok(tsr_nn_model_forward(m, x->data, B, out));
    double e = max_err(out, y[0]->data, y[0]->numel);
    if (e > 1e-9) fail_msg("lowered model differs from the graph by %.3g", e);
    tsr_nn_model *s;
    tt_ok(nn_model_clone(m, &s));
    tt_ok(nn_model_simplify(s));
    tt_ok(nn_model_validate(s));
    tt_ok(tsr_nn_model_forward(s, x->data, B, out));
    e = max_err(out, y[0]->data, y[0]->numel);
    if (e > 1e-9) fail_msg("simplified model differs from the graph by %.3g", e);
    if (expect_layers_max > 0 && s->n_layers > expect_layers_max)
        fail_msg("%d layers after simplification (expected at most %d)", s->n_layers,
                 expect_layers_max);
    tsr_nn_model_free(s);
    free(out);
    tsr_array_free(x);
    tsr_array_free(y[0]);
    return m;
}

static int count_kind(const tsr_nn_model *m, nn_kind k) {
    int n = 0;
    for (int i = 0; i < m->n_layers; i++) n += m->layers[i].kind == k;
    return n;
}

/* Images: grouped dilated conv, merged Pad + pool, transpose (dense), per-channel affine,
 * cube, flatten, Gemm with transB / alpha / beta. */
static void test_lower_image_graph(void **state) {
    (void)state;
    tsr_prng r;
    tt_prng(&r, 1);
    tsr_graph *g = with_input(4, (int64_t[]){ -1, 2, 7, 7 });
    int64_t wd[4] = { 4, 1, 2, 2 }, bd[1] = { 4 }, cd[4] = { 1, 4, 1, 1 }, gw[2] = { 5, 4 * 7 * 7 },
            gb[1] = { 5 };
    add_const(g, "w", 4, wd, &r, 0.5);
    add_const(g, "b", 1, bd, &r, 0.5);
    add_const(g, "scale", 4, cd, &r, 1.0);
    add_const(g, "gw", 2, gw, &r, 0.1);
    add_const(g, "gb", 1, gb, &r, 0.1);
    add_scalar(g, "three", 3.0);
    tsr_graph_attrs a;
    tsr_graph_attrs_default(&a);
    a.group = 2;
    a.dilations[0] = a.dilations[1] = 2;
    a.auto_pad = TSR_AUTOPAD_SAME_UPPER; /* extent 3, stride 1: one on each side */
    node(g, TSR_NODE_CONV, "conv", 3, "x", "w", "b", &a);
    tsr_graph_attrs_default(&a);
    a.n_pads = 8;
    a.pad_list[2] = a.pad_list[3] = a.pad_list[6] = a.pad_list[7] = 1;
    node(g, TSR_NODE_PAD, "pad", 1, "conv", NULL, NULL, &a);
    tsr_graph_attrs_default(&a);
    a.n_kernel = 2;
    a.kernel[0] = a.kernel[1] = 3;
    node(g, TSR_NODE_AVGPOOL, "pool", 1, "pad", NULL, NULL, &a);
    node(g, TSR_NODE_MUL, "affine", 2, "scale", "pool", NULL, NULL);
    transpose_node(g, "tr", "affine", 4, (int64_t[]){ 0, 1, 3, 2 });
    node(g, TSR_NODE_POW, "cube", 2, "tr", "three", NULL, NULL);
    tsr_graph_attrs_default(&a);
    node(g, TSR_NODE_FLATTEN, "flat", 1, "cube", NULL, NULL, &a);
    tsr_graph_attrs_default(&a);
    a.trans_b = 1;
    a.alpha = 0.5;
    a.beta = 2;
    node(g, TSR_NODE_GEMM, "fc", 3, "flat", "gw", "gb", &a);
    tt_ok(tsr_graph_add_output(g, "fc"));
    tt_ok(tsr_graph_finalize(g));
    tsr_nn_model *m = check_lowering(g, 3, 0);
    /* conv and pool kept their geometry (the Pad merged); the transpose became a dense layer */
    assert_int_equal(count_kind(m, NN_CONV), 1);
    assert_int_equal(count_kind(m, NN_AVGPOOL), 1);
    assert_int_equal(count_kind(m, NN_DENSE), 2);
    assert_int_equal(count_kind(m, NN_POLY), 2); /* per-channel affine, cube */
    for (int i = 0; i < m->n_layers; i++)
        if (m->layers[i].kind == NN_AVGPOOL) {
            assert_int_equal(m->layers[i].ph, 1);
            assert_int_equal(m->layers[i].count_pad, 1);
        }
    assert_true(tsr_nn_model_is_classifier(m));
    tsr_nn_model_free(m);
    tsr_graph_free(g);
}

/* Sequences (N, T, D): MatMul by a constant (measured), a full-shape constant, a residual Sub,
 * a reduction; the output keeps its shape (N, T). */
static void test_lower_sequence_graph(void **state) {
    (void)state;
    tsr_prng r;
    tt_prng(&r, 2);
    tsr_graph *g = with_input(3, (int64_t[]){ -1, 4, 3 });
    int64_t wd[2] = { 3, 3 }, pd[2] = { 4, 3 };
    add_const(g, "w", 2, wd, &r, 0.7);
    add_const(g, "pos", 2, pd, &r, 0.3);
    node(g, TSR_NODE_MATMUL, "mm", 2, "x", "w", NULL, NULL);
    node(g, TSR_NODE_ADD, "addpos", 2, "mm", "pos", NULL, NULL);
    node(g, TSR_NODE_SQUARE, "sq", 1, "addpos", NULL, NULL, NULL);
    node(g, TSR_NODE_SUB, "res", 2, "x", "sq", NULL, NULL);
    reduce_node(g, TSR_NODE_REDUCE_MEAN, "mean", "res", 2, 0);
    tt_ok(tsr_graph_add_output(g, "mean"));
    tt_ok(tsr_graph_finalize(g));
    tsr_nn_model *m = check_lowering(g, 2, 0);
    int64_t d[8];
    assert_int_equal(tsr_nn_model_input_dims(m, d), 2);
    assert_int_equal(d[0], 4);
    assert_int_equal(d[1], 3);
    assert_int_equal(count_kind(m, NN_ADD), 1);
    tsr_nn_model_free(m);
    tsr_graph_free(g);
}

/*
 * Products of two activations: polynomial attention on (N, T, D) = (N, 4, 6),
 * S = (Q K^T)^2 / 4, A = S V, an elementwise product with a broadcast
 * reduction, a residual; and a batched MatMul of rank 4 whose second operand
 * broadcasts over the heads.
 */
static void test_lower_attention_graph(void **state) {
    (void)state;
    tsr_prng r;
    tt_prng(&r, 4);
    tsr_graph *g = with_input(3, (int64_t[]){ -1, 4, 6 });
    int64_t wd[2] = { 6, 6 };
    add_const(g, "wq", 2, wd, &r, 0.5);
    add_const(g, "wk", 2, wd, &r, 0.5);
    add_const(g, "wv", 2, wd, &r, 0.5);
    add_scalar(g, "quarter", 0.25);
    node(g, TSR_NODE_MATMUL, "q", 2, "x", "wq", NULL, NULL);
    node(g, TSR_NODE_MATMUL, "k", 2, "x", "wk", NULL, NULL);
    node(g, TSR_NODE_MATMUL, "v", 2, "x", "wv", NULL, NULL);
    transpose_node(g, "kt", "k", 3, (int64_t[]){ 0, 2, 1 });
    node(g, TSR_NODE_MATMUL, "s", 2, "q", "kt", NULL, NULL);
    node(g, TSR_NODE_SQUARE, "s2", 1, "s", NULL, NULL, NULL);
    node(g, TSR_NODE_MUL, "s3", 2, "s2", "quarter", NULL, NULL);
    node(g, TSR_NODE_MATMUL, "att", 2, "s3", "v", NULL, NULL);
    reduce_node(g, TSR_NODE_REDUCE_SUM, "vs", "v", 2, 1);      /* (N, 4, 1) */
    node(g, TSR_NODE_MUL, "gate", 2, "att", "vs", NULL, NULL); /* broadcast over D */
    node(g, TSR_NODE_ADD, "y", 2, "gate", "x", NULL, NULL);
    tt_ok(tsr_graph_add_output(g, "y"));
    tt_ok(tsr_graph_finalize(g));
    tsr_nn_model *m = check_lowering(g, 3, 0);
    assert_int_equal(count_kind(m, NN_MUL), 3);
    /* the simplified model takes K^T from K directly: the transpose merged into the expansion */
    tsr_nn_model *sm;
    tt_ok(nn_model_clone(m, &sm));
    tt_ok(nn_model_simplify(sm));
    assert_true(sm->n_layers < m->n_layers);
    assert_true(nn_model_depth(sm) < nn_model_depth(m));
    tsr_nn_model_free(sm);
    tsr_nn_model_free(m);
    tsr_graph_free(g);

    /* heads: (N, 2, 3, 2) x (N, 1, 2, 3) -> (N, 2, 3, 3), the second broadcast over heads */
    g = with_input(4, (int64_t[]){ -1, 2, 3, 2 });
    reduce_node(g, TSR_NODE_REDUCE_SUM, "b", "x", 1, 1);
    transpose_node(g, "bt", "b", 4, (int64_t[]){ 0, 1, 3, 2 });
    node(g, TSR_NODE_MATMUL, "y", 2, "x", "bt", NULL, NULL);
    tt_ok(tsr_graph_add_output(g, "y"));
    tt_ok(tsr_graph_finalize(g));
    m = check_lowering(g, 2, 0);
    assert_int_equal(count_kind(m, NN_MUL), 1);
    int64_t od[8];
    assert_int_equal(tsr_nn_model_output_dims(m, od), 3);
    assert_int_equal(od[0], 2);
    assert_int_equal(od[1], 3);
    assert_int_equal(od[2], 3);
    tsr_nn_model_free(m);
    tsr_graph_free(g);
}

/* What cannot be lowered is reported, every node of it, and nothing crashes. */
static void test_lower_report(void **state) {
    (void)state;
    tsr_prng r;
    tt_prng(&r, 3);
    tsr_graph *g = with_input(2, (int64_t[]){ -1, 6 });
    int64_t wd[2] = { 6, 6 };
    add_const(g, "w", 2, wd, &r, 0.5);
    node(g, TSR_NODE_MATMUL, "a", 2, "x", "w", NULL, NULL);
    node(g, TSR_NODE_MUL, "prod", 2, "x", "a", NULL, NULL); /* ciphertext x ciphertext: lowered */
    node(g, TSR_NODE_RELU, "relu", 1, "a", NULL, NULL, NULL);
    tsr_graph_attrs at;
    tsr_graph_attrs_default(&at);
    at.n_perm = 2;
    at.perm[0] = 1;
    at.perm[1] = 0;
    node(g, TSR_NODE_TRANSPOSE, "mix", 1, "x", NULL, NULL, &at); /* batch moved */
    node(g, TSR_NODE_ADD, "s1", 2, "prod", "relu", NULL, NULL);
    node(g, TSR_NODE_TRANSPOSE, "mix2", 1, "mix", NULL, NULL, &at);
    node(g, TSR_NODE_ADD, "s2", 2, "s1", "mix2", NULL, NULL);
    tt_ok(tsr_graph_add_output(g, "s2"));
    tt_ok(tsr_graph_finalize(g));
    tsr_nn_model *m = NULL;
    char *rep = NULL;
    int nb = 0;
    tt_fails(nn_model_from_graph(g, &m, &rep, &nb), TSR_ERR_UNSUPPORTED);
    assert_null(m);
    assert_non_null(rep);
    assert_int_equal(nb, 2);
    assert_null(strstr(rep, "'prod'"));
    assert_non_null(strstr(rep, "'relu' (relu): not a polynomial"));
    assert_non_null(strstr(rep, "'mix' (transpose): mixes the samples"));
    tsr_free(rep);
    tsr_graph_free(g);
}

/* The classifier guess: a rank-1 output with as many values as the input (of any shape) is a
 * reconstruction, other rank-1 outputs of >= 2 values are class vectors. */
static void test_classifier_guess(void **state) {
    (void)state;
    static const int64_t outs[] = { 16, 10, 1 };
    static const int want[] = { 0, 1, 0 };
    tsr_prng r;
    tt_prng(&r, 17);
    for (int i = 0; i < 3; i++) {
        tsr_graph *g = with_input(4, (int64_t[]){ -1, 1, 4, 4 });
        add_const(g, "w", 2, (int64_t[]){ outs[i], 16 }, &r, 0.1);
        add_const(g, "b", 1, (int64_t[]){ outs[i] }, &r, 0.1);
        tsr_graph_attrs a;
        tsr_graph_attrs_default(&a);
        node(g, TSR_NODE_FLATTEN, "flat", 1, "x", NULL, NULL, &a);
        a.trans_b = 1;
        node(g, TSR_NODE_GEMM, "fc", 3, "flat", "w", "b", &a);
        tt_ok(tsr_graph_add_output(g, "fc"));
        tt_ok(tsr_graph_finalize(g));
        tsr_nn_model *m = NULL;
        char *rep = NULL;
        int nb = 0;
        tt_ok(nn_model_from_graph(g, &m, &rep, &nb));
        tsr_free(rep);
        if (tsr_nn_model_is_classifier(m) != want[i])
            fail_msg("(1, 4, 4) -> %lld outputs: classifier %d, want %d", (long long)outs[i],
                     tsr_nn_model_is_classifier(m), want[i]);
        tsr_nn_model_free(m);
        tsr_graph_free(g);
    }
}

/* A TensorProto fixture as doubles. */
static tsr_array *load_pb(const char *rel) {
    tsr_onnx_data *d;
    tt_ok(tsr_onnx_data_load(&d, tt_source_path(rel)));
    tsr_array *a;
    tt_ok(tsr_array_clone(&a, d->a));
    tsr_onnx_data_free(d);
    return a;
}

/* The PyTorch fixtures through tsr_nn_import_onnx against PyTorch's own outputs. */
static void check_torch(const char *name, int classifier) {
    char path[256], in[256], outp[256];
    snprintf(path, sizeof path, "tests/data/torch/%s.onnx", name);
    snprintf(in, sizeof in, "tests/data/torch/%s_input.pb", name);
    snprintf(outp, sizeof outp, "tests/data/torch/%s_output.pb", name);
    tsr_nn_model *m = NULL;
    char *rep = NULL;
    tt_ok(tsr_nn_import_onnx(tt_source_path(path), NULL, &m, &rep));
    tsr_nn_string_free(rep);
    tsr_array *x = load_pb(in), *y = load_pb(outp);
    int B = (int)x->dims[0];
    int64_t no = tsr_nn_model_output_size(m), od[8];
    assert_int_equal((int64_t)y->numel, no * B);
    int orank = tsr_nn_model_output_dims(m, od);
    assert_int_equal(orank, y->rank - 1);
    for (int i = 0; i < orank; i++) assert_int_equal(od[i], y->dims[i + 1]);
    assert_int_equal(tsr_nn_model_is_classifier(m), classifier);
    double *out = malloc(y->numel * sizeof *out);
    tt_ok(tsr_nn_model_forward(m, x->data, B, out));
    double e = max_err(out, y->data, y->numel);
    if (e > 1e-5) fail_msg("%s: nn forward differs from PyTorch by %.3g", name, e);
    free(out);
    tsr_array_free(x);
    tsr_array_free(y);
    tsr_nn_model_free(m);
}

static void test_torch_fixtures(void **state) {
    (void)state;
    check_torch("autoencoder", 0);
    check_torch("cnn", 1);
    /* attention multiplies two activations (MatMul of Q and K^T, of the scores and V) */
    check_torch("transformer", 0);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_lower_image_graph),     cmocka_unit_test(test_lower_sequence_graph),
        cmocka_unit_test(test_lower_attention_graph), cmocka_unit_test(test_lower_report),
        cmocka_unit_test(test_torch_fixtures),        cmocka_unit_test(test_classifier_guess),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
