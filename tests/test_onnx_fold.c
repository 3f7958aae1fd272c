/*
 * tests/test_onnx_fold.c - constant folding of shape subgraphs in the ONNX
 * import (src/onnx/onnx_graph.c): PyTorch's x.view(x.size(0), -1) and
 * x.reshape(B, T, H, D) with a free batch dimension become Reshape nodes with
 * 0 (copy) and -1 (infer); Shape / Gather / Unsqueeze / Concat / Slice /
 * Squeeze / Cast / ConstantOfShape / arithmetic on constants fold into
 * constants; shapes that a Reshape cannot express, and shape values used as
 * data, are refused with a message. Models are written with the ONNX builder
 * exactly as PyTorch 1.13 exports them (opset 13).
 */
#include "testutil.h"

#include "tessera.h"
#include "core/alloc.h"
#include "onnx/onnx.h"
#include "onnx/onnx_graph.h"

#include <math.h>
#include <string.h>

static const char *const dyn[] = { "N", NULL, NULL, NULL };

static void node(tsr_onnx_model *m, const char *op, int n_in, const char *const *in,
                 const char *out) {
    tt_ok(tsr_onnx_add_node(m, op, out, n_in, in, 1, (const char *[]){ out }));
}

static void init_i64(tsr_onnx_model *m, const char *name, int ndims, int64_t n, const int64_t *v) {
    tt_ok(tsr_onnx_add_init_i64(m, name, ndims, &n, v));
}

/* Serialise and read back (the reader's normalisation and checks apply). */
static tsr_onnx_model *reread(tsr_onnx_model *m) {
    uint8_t *buf;
    size_t len;
    tt_ok(tsr_onnx_serialize(m, &buf, &len));
    tsr_onnx_model *r;
    tt_ok(tsr_onnx_parse(&r, buf, len));
    tsr_free(buf);
    tsr_onnx_free(m);
    return r;
}

static tsr_array *ramp(int rank, const int64_t *dims) {
    tsr_array *a;
    tt_ok(tsr_array_create(&a, rank, dims));
    for (size_t i = 0; i < a->numel; i++) a->data[i] = 0.25 * (double)i - 3.0;
    return a;
}

/* x.view(x.size(0), -1): Shape, Gather 0, Unsqueeze, Concat with [-1], Reshape. */
static void test_view_batch_flat(void **state) {
    (void)state;
    tsr_onnx_model *m;
    tt_ok(tsr_onnx_create(&m, 13, 7));
    tt_ok(tsr_onnx_add_io(m, 0, "x", 3, (const int64_t[]){ -1, 2, 3 }, dyn));
    tt_ok(tsr_onnx_add_io(m, 1, "y", 2, (const int64_t[]){ -1, 6 }, dyn));
    init_i64(m, "zero", 0, 1, (const int64_t[]){ 0 });
    init_i64(m, "ax0", 1, 1, (const int64_t[]){ 0 });
    init_i64(m, "minus1", 1, 1, (const int64_t[]){ -1 });
    node(m, "Shape", 1, (const char *[]){ "x" }, "s");
    node(m, "Gather", 2, (const char *[]){ "s", "zero" }, "b");
    node(m, "Unsqueeze", 2, (const char *[]){ "b", "ax0" }, "bu");
    node(m, "Concat", 2, (const char *[]){ "bu", "minus1" }, "shape");
    tt_ok(tsr_onnx_add_attr_int(m, "axis", 0));
    node(m, "Reshape", 2, (const char *[]){ "x", "shape" }, "y");
    m = reread(m);
    tsr_graph *g;
    tt_ok(tsr_onnx_to_graph(m, NULL, &g, NULL));
    assert_int_equal(tsr_graph_num_nodes(g), 1);
    assert_int_equal(tsr_graph_node_kind(g, 0), TSR_NODE_RESHAPE);
    const tsr_graph_attrs *a = tsr_graph_node_attrs(g, 0);
    assert_int_equal(a->n_shape, 2);
    assert_int_equal(a->shape[0], 0);
    assert_int_equal(a->shape[1], -1);
    tsr_array *x = ramp(3, (const int64_t[]){ 5, 2, 3 }), *y;
    tt_ok(tsr_graph_run(g, (const tsr_array *[]){ x }, &y));
    assert_int_equal(y->rank, 2);
    assert_int_equal(y->dims[0], 5);
    assert_int_equal(y->dims[1], 6);
    for (size_t i = 0; i < x->numel; i++) assert_true(y->data[i] == x->data[i]);
    tsr_array_free(x);
    tsr_array_free(y);
    tsr_graph_free(g);
    tsr_onnx_free(m);
}

/*
 * Attention heads: B, T from Shape (T is static), Reshape to (B, T, 2, 3),
 * and a scale computed from the last dimension: Shape, Slice, Squeeze, Cast,
 * Pow(-0.5); plus a ConstantOfShape of a constant shape added on.
 */
static tsr_onnx_model *heads_model(void) {
    tsr_onnx_model *m;
    tt_ok(tsr_onnx_create(&m, 13, 7));
    tt_ok(tsr_onnx_add_io(m, 0, "x", 3, (const int64_t[]){ -1, 4, 6 }, dyn));
    tt_ok(tsr_onnx_add_io(m, 1, "y", 4, (const int64_t[]){ -1, 4, 2, 3 }, dyn));
    init_i64(m, "i0", 0, 1, (const int64_t[]){ 0 });
    init_i64(m, "i1", 0, 1, (const int64_t[]){ 1 });
    init_i64(m, "ax0", 1, 1, (const int64_t[]){ 0 });
    init_i64(m, "hd", 1, 2, (const int64_t[]){ 2, 3 });
    init_i64(m, "m1", 1, 1, (const int64_t[]){ -1 });
    init_i64(m, "big", 1, 1, (const int64_t[]){ INT64_MAX });
    tt_ok(tsr_onnx_add_init(m, "mhalf", 0, NULL, (const float[]){ -0.5f }));
    node(m, "Shape", 1, (const char *[]){ "x" }, "s");
    node(m, "Gather", 2, (const char *[]){ "s", "i0" }, "B");
    node(m, "Gather", 2, (const char *[]){ "s", "i1" }, "T");
    node(m, "Unsqueeze", 2, (const char *[]){ "B", "ax0" }, "Bu");
    node(m, "Unsqueeze", 2, (const char *[]){ "T", "ax0" }, "Tu");
    node(m, "Concat", 3, (const char *[]){ "Bu", "Tu", "hd" }, "shape");
    tt_ok(tsr_onnx_add_attr_int(m, "axis", 0));
    node(m, "Reshape", 2, (const char *[]){ "x", "shape" }, "r");
    node(m, "Shape", 1, (const char *[]){ "r" }, "rs");
    node(m, "Slice", 3, (const char *[]){ "rs", "m1", "big" }, "last");
    node(m, "Squeeze", 2, (const char *[]){ "last", "ax0" }, "D");
    node(m, "Cast", 1, (const char *[]){ "D" }, "Df");
    tt_ok(tsr_onnx_add_attr_int(m, "to", 1));
    node(m, "Pow", 2, (const char *[]){ "Df", "mhalf" }, "scale");
    node(m, "Mul", 2, (const char *[]){ "r", "scale" }, "rscaled");
    node(m, "ConstantOfShape", 1, (const char *[]){ "hd" }, "zeros");
    node(m, "Add", 2, (const char *[]){ "rscaled", "zeros" }, "y");
    return reread(m);
}

static void test_heads_reshape_and_scale(void **state) {
    (void)state;
    tsr_onnx_model *m = heads_model();
    tsr_graph *g;
    tt_ok(tsr_onnx_to_graph(m, NULL, &g, NULL));
    int reshapes = 0;
    for (int i = 0; i < tsr_graph_num_nodes(g); i++) {
        tsr_graph_kind k = tsr_graph_node_kind(g, i);
        if (k != TSR_NODE_RESHAPE) continue;
        reshapes++;
        const tsr_graph_attrs *a = tsr_graph_node_attrs(g, i);
        assert_int_equal(a->n_shape, 4);
        assert_int_equal(a->shape[0], 0); /* the batch: copied */
        assert_int_equal(a->shape[1], 4);
        assert_int_equal(a->shape[2], 2);
        assert_int_equal(a->shape[3], 3);
    }
    assert_int_equal(reshapes, 1);
    tsr_array *x = ramp(3, (const int64_t[]){ 3, 4, 6 }), *y;
    tt_ok(tsr_graph_run(g, (const tsr_array *[]){ x }, &y));
    assert_int_equal(y->rank, 4);
    assert_int_equal(y->dims[0], 3);
    double s = 1.0 / sqrt(3.0), e = 0;
    for (size_t i = 0; i < x->numel; i++) e = fmax(e, fabs(y->data[i] - s * x->data[i]));
    if (e > 1e-7) fail_msg("scaled reshape: error %.3g", e);
    tsr_array_free(x);
    tsr_array_free(y);
    tsr_graph_free(g);
    tsr_onnx_free(m);
}

/* A batch size used as data, and a Reshape whose target follows another input's batch. */
static void test_refusals(void **state) {
    (void)state;
    tsr_onnx_model *m;
    tt_ok(tsr_onnx_create(&m, 13, 7));
    tt_ok(tsr_onnx_add_io(m, 0, "x", 2, (const int64_t[]){ -1, 6 }, dyn));
    tt_ok(tsr_onnx_add_io(m, 1, "y", 2, (const int64_t[]){ -1, 6 }, dyn));
    init_i64(m, "i0", 0, 1, (const int64_t[]){ 0 });
    node(m, "Shape", 1, (const char *[]){ "x" }, "s");
    node(m, "Gather", 2, (const char *[]){ "s", "i0" }, "B");
    node(m, "Cast", 1, (const char *[]){ "B" }, "Bf");
    tt_ok(tsr_onnx_add_attr_int(m, "to", 1));
    node(m, "Mul", 2, (const char *[]){ "x", "Bf" }, "y");
    m = reread(m);
    tsr_graph *g = NULL;
    tt_fails(tsr_onnx_to_graph(m, NULL, &g, NULL), TSR_ERR_UNSUPPORTED);
    if (!strstr(tsr_last_error(), "'Bf'") || !strstr(tsr_last_error(), "batch"))
        fail_msg("message: %s", tsr_last_error());
    assert_null(g);
    tsr_onnx_free(m);

    tt_ok(tsr_onnx_create(&m, 13, 7));
    tt_ok(tsr_onnx_add_io(m, 0, "x", 2, (const int64_t[]){ -1, 6 }, dyn));
    tt_ok(tsr_onnx_add_io(m, 0, "z", 2, (const int64_t[]){ -1, 6 }, dyn));
    tt_ok(tsr_onnx_add_io(m, 1, "y", 2, (const int64_t[]){ -1, -1 }, (const char *[]){ "a", "b" }));
    init_i64(m, "ax0", 1, 1, (const int64_t[]){ 0 });
    init_i64(m, "one", 1, 1, (const int64_t[]){ 1 });
    init_i64(m, "m1", 1, 1, (const int64_t[]){ -1 });
    node(m, "Shape", 1, (const char *[]){ "z" }, "s");
    node(m, "Slice", 3, (const char *[]){ "s", "ax0", "one" }, "M");
    node(m, "Concat", 2, (const char *[]){ "M", "m1" }, "shape");
    tt_ok(tsr_onnx_add_attr_int(m, "axis", 0));
    node(m, "Reshape", 2, (const char *[]){ "x", "shape" }, "y");
    m = reread(m);
    tt_fails(tsr_onnx_to_graph(m, NULL, &g, NULL), TSR_ERR_UNSUPPORTED);
    if (!strstr(tsr_last_error(), "Reshape") || !strstr(tsr_last_error(), "batch size"))
        fail_msg("message: %s", tsr_last_error());
    tsr_onnx_free(m);
}

/* With a fixed batch the same subgraph folds to a plain constant divisor. */
static void test_static_batch(void **state) {
    (void)state;
    tsr_onnx_model *m;
    tt_ok(tsr_onnx_create(&m, 13, 7));
    tt_ok(tsr_onnx_add_io(m, 0, "x", 2, (const int64_t[]){ 2, 6 }, NULL));
    tt_ok(tsr_onnx_add_io(m, 1, "y", 0, NULL, NULL));
    init_i64(m, "i0", 0, 1, (const int64_t[]){ 0 });
    node(m, "Shape", 1, (const char *[]){ "x" }, "s");
    node(m, "Gather", 2, (const char *[]){ "s", "i0" }, "B");
    node(m, "Cast", 1, (const char *[]){ "B" }, "Bf");
    tt_ok(tsr_onnx_add_attr_int(m, "to", 1));
    node(m, "ReduceSum", 1, (const char *[]){ "x" }, "t");
    tt_ok(tsr_onnx_add_attr_int(m, "keepdims", 0));
    node(m, "Div", 2, (const char *[]){ "t", "Bf" }, "y");
    m = reread(m);
    tsr_graph *g;
    tt_ok(tsr_onnx_to_graph(m, NULL, &g, NULL));
    assert_int_equal(tsr_graph_num_inputs(g), 1);
    tsr_array *x = ramp(2, (const int64_t[]){ 2, 6 }), *y;
    tt_ok(tsr_graph_run(g, (const tsr_array *[]){ x }, &y));
    double want = 0;
    for (size_t i = 0; i < x->numel; i++) want += x->data[i];
    assert_true(fabs(y->data[0] - want / 2) < 1e-12);
    tsr_array_free(x);
    tsr_array_free(y);
    tsr_graph_free(g);
    tsr_onnx_free(m);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_view_batch_flat),
        cmocka_unit_test(test_heads_reshape_and_scale),
        cmocka_unit_test(test_refusals),
        cmocka_unit_test(test_static_batch),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
