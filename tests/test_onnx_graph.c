/*
 * tests/test_onnx_graph.c - ONNX <-> graph: the standalone TensorProto
 * reader (every check has a failing case), the importer's report of
 * non-polynomial nodes with their replacements, --approx replacements
 * checked exactly at the Chebyshev points, polynomial recognition of
 * PyTorch-style Mul/Add/Pow subgraphs, export round trips, and the node-test
 * runner on a sample of Debian's libonnx-testdata (plus a tampered test it
 * must fail).
 */
#include "clitest.h"
#include "testutil.h"

#include "tessera.h"
#include "core/alloc.h"
#include "core/io.h"
#include "onnx.pb-c.h"
#include "onnx/onnx_graph.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define NODE_DIR "/usr/share/libonnx-testdata/data/node"

static void expect_msg(const char *needle) {
    if (!strstr(tsr_last_error(), needle))
        fail_msg("error '%s' does not mention '%s'", tsr_last_error(), needle);
}

/* ---- TensorProto reader ---------------------------------------------------------- */

static tsr_status parse_tp(const Onnx__TensorProto *tp, tsr_onnx_data **d) {
    size_t n = onnx__tensor_proto__get_packed_size(tp);
    uint8_t *buf = malloc(n + 1);
    assert_non_null(buf);
    onnx__tensor_proto__pack(tp, buf);
    tsr_status st = tsr_onnx_data_parse(d, buf, n);
    free(buf);
    return st;
}

static void test_tensor_reader(void **state) {
    (void)state;
    Onnx__TensorProto tp;
    tsr_onnx_data *d;
    /* FLOAT as raw little-endian bytes */
    onnx__tensor_proto__init(&tp);
    int64_t dims[2] = { 2, 3 };
    uint8_t raw[24];
    for (int i = 0; i < 6; i++) {
        float f = (float)i * 0.5f - 1.0f;
        uint32_t u;
        memcpy(&u, &f, 4);
        for (int b = 0; b < 4; b++) raw[4 * i + b] = (uint8_t)(u >> (8 * b));
    }
    tp.name = "x";
    tp.n_dims = 2;
    tp.dims = dims;
    tp.has_data_type = 1;
    tp.data_type = TSR_ONNX_FLOAT;
    tp.has_raw_data = 1;
    tp.raw_data.len = 24;
    tp.raw_data.data = raw;
    tt_ok(parse_tp(&tp, &d));
    assert_string_equal(d->name, "x");
    assert_int_equal(d->a->rank, 2);
    assert_int_equal(d->a->dims[1], 3);
    assert_null(d->i);
    for (int i = 0; i < 6; i++) assert_true(d->a->data[i] == i * 0.5 - 1.0);
    tsr_onnx_data_free(d);
    /* raw data one byte short */
    tp.raw_data.len = 23;
    tt_fails(parse_tp(&tp, &d), TSR_ERR_FORMAT);
    expect_msg("6 elements");
    tp.raw_data.len = 24;
    /* a negative dimension */
    dims[0] = -2;
    tt_fails(parse_tp(&tp, &d), TSR_ERR_FORMAT);
    expect_msg("negative");
    /* 2^40 elements with no data: refused before any allocation */
    dims[0] = (int64_t)1 << 20;
    dims[1] = (int64_t)1 << 20;
    tt_fails(parse_tp(&tp, &d), TSR_ERR_FORMAT);
    expect_msg("too large");
    dims[0] = 2, dims[1] = 3;
    /* raw and typed data together */
    float fd[6] = { 0 };
    tp.n_float_data = 6;
    tp.float_data = fd;
    tt_fails(parse_tp(&tp, &d), TSR_ERR_FORMAT);
    tp.has_raw_data = 0;
    tp.raw_data.len = 0;
    tt_ok(parse_tp(&tp, &d));
    tsr_onnx_data_free(d);
    /* data in the field of another type */
    tp.data_type = TSR_ONNX_DOUBLE;
    tt_fails(parse_tp(&tp, &d), TSR_ERR_FORMAT);
    expect_msg("another type");
    tp.n_float_data = 0;
    tp.float_data = NULL;
    /* DOUBLE typed */
    double dd[6] = { 1e300, -2, 3.25, 0, 5, -1e-300 };
    tp.n_double_data = 6;
    tp.double_data = dd;
    tt_ok(parse_tp(&tp, &d));
    assert_true(d->a->data[0] == 1e300 && d->a->data[5] == -1e-300);
    tsr_onnx_data_free(d);
    tp.n_double_data = 0;
    tp.double_data = NULL;
    /* INT64 keeps exact values (Slice's INT64_MAX ends) */
    int64_t iv[6] = { INT64_MAX, INT64_MIN, -1, 0, 1, ((int64_t)1 << 53) + 1 };
    tp.data_type = TSR_ONNX_INT64;
    tp.n_int64_data = 6;
    tp.int64_data = iv;
    tt_ok(parse_tp(&tp, &d));
    assert_non_null(d->i);
    assert_true(d->i[0] == INT64_MAX && d->i[1] == INT64_MIN && d->i[5] == iv[5]);
    tsr_onnx_data_free(d);
    tp.n_int64_data = 0;
    tp.int64_data = NULL;
    /* INT8 as raw bytes: sign extension */
    uint8_t bytes[6] = { 0x80, 0xff, 0, 1, 0x7f, 2 };
    tp.data_type = TSR_ONNX_INT8;
    tp.has_raw_data = 1;
    tp.raw_data.len = 6;
    tp.raw_data.data = bytes;
    tt_ok(parse_tp(&tp, &d));
    assert_true(d->i[0] == -128 && d->i[1] == -1 && d->i[4] == 127 && d->a->data[0] == -128);
    tsr_onnx_data_free(d);
    /* unsupported types, missing type */
    tp.data_type = 8; /* STRING */
    tt_fails(parse_tp(&tp, &d), TSR_ERR_UNSUPPORTED);
    expect_msg("data type 8");
    tp.has_data_type = 0;
    tt_fails(parse_tp(&tp, &d), TSR_ERR_FORMAT);
    /* not a protobuf */
    const uint8_t junk[5] = { 0xff, 0xff, 0xff, 0xff, 0xff };
    tt_fails(tsr_onnx_data_parse(&d, junk, sizeof junk), TSR_ERR_FORMAT);
    assert_null(d);
    tt_fails(tsr_onnx_data_load(&d, "/nonexistent/x.pb"), TSR_ERR_NOT_FOUND);
}

/* ---- importer ------------------------------------------------------------------------- */

static tsr_onnx_model *model_begin(int rank, const int64_t *in_dims, int out_rank,
                                   const int64_t *out_dims) {
    tsr_onnx_model *m;
    tt_ok(tsr_onnx_create(&m, 13, 7));
    const char *dp[8] = { "N", "N", "N", "N", "N", "N", "N", "N" };
    tt_ok(tsr_onnx_add_io(m, 0, "x", rank, in_dims, dp));
    tt_ok(tsr_onnx_add_io(m, 1, "y", out_rank, out_dims, dp));
    return m;
}

static void add1(tsr_onnx_model *m, const char *op, const char *name, const char *in,
                 const char *out) {
    tt_ok(tsr_onnx_add_node(m, op, name, 1, (const char *[]){ in }, 1, (const char *[]){ out }));
}

static void add2(tsr_onnx_model *m, const char *op, const char *name, const char *a, const char *b,
                 const char *out) {
    tt_ok(tsr_onnx_add_node(m, op, name, 2, (const char *[]){ a, b }, 1, (const char *[]){ out }));
}

static void scalar(tsr_onnx_model *m, const char *name, float v) {
    tt_ok(tsr_onnx_add_init(m, name, 0, NULL, &v));
}

static void test_report(void **state) {
    (void)state;
    int64_t xd[4] = { -1, 1, 4, 4 }, yd[2] = { -1, 4 };
    tsr_onnx_model *m = model_begin(4, xd, 2, yd);
    add1(m, "Relu", "act", "x", "r");
    add1(m, "MaxPool", "pool", "r", "p");
    tt_ok(tsr_onnx_add_attr_ints(m, "kernel_shape", (const int64_t[]){ 2, 2 }, 2));
    tt_ok(tsr_onnx_add_attr_ints(m, "strides", (const int64_t[]){ 2, 2 }, 2));
    add1(m, "Flatten", "flat", "p", "f");
    add1(m, "Softmax", "soft", "f", "s");
    float ones[4] = { 1, 1, 1, 1 };
    tt_ok(tsr_onnx_add_init(m, "g", 1, (const int64_t[]){ 4 }, ones));
    add2(m, "LayerNormalization", "ln", "s", "g", "l");
    add2(m, "Div", "div", "l", "f", "q");
    add1(m, "Hardmax", "hm", "q", "y");
    tsr_graph *g;
    tt_fails(tsr_onnx_to_graph(m, NULL, &g, NULL), TSR_ERR_UNSUPPORTED);
    assert_null(g);
    expect_msg("6 nodes cannot run under CKKS");
    expect_msg("'act' (Relu): not a polynomial; --approx Relu=DEG@RANGE");
    expect_msg("'pool' (MaxPool)");
    expect_msg("AveragePool");
    expect_msg("'soft' (Softmax)");
    expect_msg("power-softmax");
    expect_msg("'ln' (LayerNormalization)");
    expect_msg("'div' (Div): division by an activation");
    expect_msg("--approx Div=DEG@LO:HI");
    expect_msg("'hm' (Hardmax): operator Hardmax is not supported");
    /* The polynomial nodes are not listed. */
    if (strstr(tsr_last_error(), "Flatten")) fail_msg("Flatten listed: %s", tsr_last_error());
    /* Kept as plaintext nodes, only the operator without any graph kind remains. */
    tsr_onnx_import_opts o;
    tsr_onnx_import_opts_default(&o);
    o.keep_non_polynomial = 1;
    tt_fails(tsr_onnx_to_graph(m, &o, &g, NULL), TSR_ERR_UNSUPPORTED);
    expect_msg("1 node cannot run under CKKS");
    expect_msg("'hm' (Hardmax)");
    tsr_onnx_free(m);
    /* Integer inputs, missing shapes */
    m = model_begin(2, yd, 2, yd);
    m->inputs[0].elem_type = TSR_ONNX_INT64;
    add1(m, "Identity", "id", "x", "y");
    tt_fails(tsr_onnx_to_graph(m, NULL, &g, NULL), TSR_ERR_UNSUPPORTED);
    expect_msg("real numbers");
    m->inputs[0].elem_type = TSR_ONNX_FLOAT;
    m->inputs[0].ndims = -1;
    tt_fails(tsr_onnx_to_graph(m, NULL, &g, NULL), TSR_ERR_UNSUPPORTED);
    expect_msg("no shape");
    tsr_onnx_free(m);
}

static void test_parse_approx(void **state) {
    (void)state;
    tsr_onnx_approx a;
    tt_ok(tsr_onnx_parse_approx("Relu=8@10", &a));
    assert_string_equal(a.op, "Relu");
    assert_int_equal(a.degree, 8);
    assert_true(a.lo == -10 && a.hi == 10);
    tt_ok(tsr_onnx_parse_approx("Sqrt=6@0.5:4", &a));
    assert_true(a.lo == 0.5 && a.hi == 4);
    const char *bad[] = { "Relu=0@3",   "Relu=64@3", "Foo=3@1", "Sqrt=4@3",   "Relu=4@",
                          "Relu=4@2:1", "Relu4@2",   "=4@2",    "Relu=4@nan", "Exp=x@2" };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        tt_fails(tsr_onnx_parse_approx(bad[i], &a), TSR_ERR_INVALID_ARG);
}

/* Inputs at the Chebyshev points of [lo, hi] (degree deg): the interpolant is exact there. */
static tsr_array *cheb_points(int deg, double lo, double hi) {
    tsr_array *x;
    tt_ok(tsr_array_create(&x, 2, (int64_t[]){ 1, deg + 1 }));
    for (int j = 0; j <= deg; j++)
        x->data[j] = 0.5 * (lo + hi) + 0.5 * (hi - lo) * cos(M_PI * (j + 0.5) / (deg + 1));
    return x;
}

static void test_approx(void **state) {
    (void)state;
    /* y = Relu(x) with Relu=12@4 */
    int64_t d[2] = { -1, 13 };
    tsr_onnx_model *m = model_begin(2, d, 2, d);
    add1(m, "Relu", "act", "x", "y");
    tsr_onnx_import_opts o;
    tsr_onnx_import_opts_default(&o);
    o.n_approx = 1;
    tt_ok(tsr_onnx_parse_approx("Relu=12@4", &o.approx[0]));
    tsr_graph *g;
    int lossy = -1;
    tt_ok(tsr_onnx_to_graph(m, &o, &g, &lossy));
    assert_int_equal(lossy, 1);
    assert_int_equal(tsr_graph_num_nodes(g), 1);
    assert_int_equal(tsr_graph_node_kind(g, 0), TSR_NODE_CHEBYSHEV);
    tsr_array *x = cheb_points(12, -4, 4), *y;
    tt_ok(tsr_graph_run(g, (const tsr_array *[]){ x }, &y));
    for (int j = 0; j < 13; j++) assert_true(fabs(y->data[j] - fmax(x->data[j], 0)) < 1e-9);
    tsr_array_free(y);
    tsr_graph_free(g);
    tsr_onnx_free(m);
    tsr_array_free(x);
    /* q = a / z with the divisor an activation: Div=10@1:3 -> a * p(z), p(z) ~ 1/z */
    m = model_begin(2, d, 2, d);
    tt_ok(tsr_onnx_add_io(m, 0, "z", 2, d, (const char *[]){ "N", NULL }));
    add2(m, "Div", "div", "x", "z", "y");
    tt_ok(tsr_onnx_parse_approx("Div=10@1:3", &o.approx[0]));
    tsr_onnx_free(m);
    int64_t d11[2] = { -1, 11 };
    m = model_begin(2, d11, 2, d11);
    tt_ok(tsr_onnx_add_io(m, 0, "z", 2, d11, (const char *[]){ "N", NULL }));
    add2(m, "Div", "div", "x", "z", "y");
    tt_ok(tsr_onnx_to_graph(m, &o, &g, &lossy));
    assert_int_equal(lossy, 1);
    tsr_array *z = cheb_points(10, 1, 3), *a;
    tt_ok(tsr_array_create(&a, 2, (int64_t[]){ 1, 11 }));
    for (int j = 0; j < 11; j++) a->data[j] = j - 5;
    tt_ok(tsr_graph_run(g, (const tsr_array *[]){ a, z }, &y));
    for (int j = 0; j < 11; j++) assert_true(fabs(y->data[j] - a->data[j] / z->data[j]) < 1e-9);
    tsr_array_free(y);
    tsr_array_free(a);
    tsr_array_free(z);
    tsr_graph_free(g);
    tsr_onnx_free(m);
}

/* LayerNormalization over the last axis of (N, 3, 4), with its Mean output. */
static tsr_onnx_model *layernorm_model(void) {
    tsr_onnx_model *m;
    tt_ok(tsr_onnx_create(&m, 17, 8));
    const char *dp[3] = { "N", NULL, NULL };
    int64_t d[3] = { -1, 3, 4 }, md[3] = { -1, 3, 1 };
    tt_ok(tsr_onnx_add_io(m, 0, "x", 3, d, dp));
    tt_ok(tsr_onnx_add_io(m, 1, "y", 3, d, dp));
    tt_ok(tsr_onnx_add_io(m, 1, "mean", 3, md, dp));
    float sc[4] = { 1, 2, -1, 0.5f }, bi[4] = { 0, 0.25f, -0.5f, 1 };
    tt_ok(tsr_onnx_add_init(m, "scale", 1, (const int64_t[]){ 4 }, sc));
    tt_ok(tsr_onnx_add_init(m, "bias", 1, (const int64_t[]){ 4 }, bi));
    tt_ok(tsr_onnx_add_node(m, "LayerNormalization", "ln", 3,
                            (const char *[]){ "x", "scale", "bias" }, 2,
                            (const char *[]){ "y", "mean" }));
    tt_ok(tsr_onnx_add_attr_int(m, "axis", -1));
    tt_ok(tsr_onnx_add_attr_float(m, "epsilon", 1e-3f));
    return m;
}

static void test_layernorm(void **state) {
    (void)state;
    tsr_onnx_model *m = layernorm_model();
    tsr_graph *g;
    tt_fails(tsr_onnx_to_graph(m, NULL, &g, NULL), TSR_ERR_UNSUPPORTED);
    expect_msg("--approx LayerNormalization=DEG@LO:HI");
    /* rows with variances in [0.5, 4] */
    tsr_array *x;
    tt_ok(tsr_array_create(&x, 3, (int64_t[]){ 2, 3, 4 }));
    for (int r = 0; r < 6; r++)
        for (int k = 0; k < 4; k++) x->data[r * 4 + k] = (0.7 + 0.2 * r) * (k - 1.5) + r;
    for (int approx = 0; approx < 2; approx++) {
        tsr_onnx_import_opts o;
        tsr_onnx_import_opts_default(&o);
        if (approx) {
            o.n_approx = 1;
            tt_ok(tsr_onnx_parse_approx("LayerNormalization=24@0.5:4", &o.approx[0]));
        } else {
            o.keep_non_polynomial = 1;
        }
        int lossy = -1;
        tt_ok(tsr_onnx_to_graph(m, &o, &g, &lossy));
        assert_int_equal(lossy, approx);
        tsr_array *y[2];
        tt_ok(tsr_graph_run(g, (const tsr_array *[]){ x }, y));
        for (int r = 0; r < 6; r++) {
            double mean = 0, var = 0;
            for (int k = 0; k < 4; k++) mean += x->data[r * 4 + k] / 4;
            for (int k = 0; k < 4; k++) var += pow(x->data[r * 4 + k] - mean, 2) / 4;
            assert_true(var + 1e-3 > 0.5 && var + 1e-3 < 4);
            assert_true(fabs(y[1]->data[r] - mean) < 1e-12);
            for (int k = 0; k < 4; k++) {
                double sc = (double[]){ 1, 2, -1, 0.5 }[k], bi = (double[]){ 0, 0.25, -0.5, 1 }[k];
                double want = (x->data[r * 4 + k] - mean) / sqrt(var + (double)1e-3f) * sc + bi;
                if (fabs(y[0]->data[r * 4 + k] - want) > (approx ? 1e-5 : 1e-12))
                    fail_msg("approx %d row %d: %.12g vs %.12g", approx, r, y[0]->data[r * 4 + k],
                             want);
            }
        }
        /* Only the inverse square root is not polynomial. */
        int non_poly = 0;
        for (int i = 0; i < tsr_graph_num_nodes(g); i++)
            non_poly += !tsr_graph_kind_is_polynomial(tsr_graph_node_kind(g, i));
        assert_int_equal(non_poly, approx ? 0 : 2);
        tsr_array_free(y[0]);
        tsr_array_free(y[1]);
        tsr_graph_free(g);
    }
    tsr_array_free(x);
    tsr_onnx_free(m);
}

/* PyTorch's export of k * (a * x**2 + b * x + c) + x * x * x with per-channel k (C, 1, 1). */
static tsr_onnx_model *poly_model(void) {
    int64_t d[4] = { -1, 3, 2, 2 };
    tsr_onnx_model *m = model_begin(4, d, 4, d);
    scalar(m, "two", 2.0f);
    scalar(m, "a", 0.25f);
    scalar(m, "b", -1.5f);
    scalar(m, "c", 0.5f);
    float k[3] = { 1, 2, -0.5f };
    tt_ok(tsr_onnx_add_init(m, "k", 3, (const int64_t[]){ 3, 1, 1 }, k));
    add2(m, "Pow", "pow", "x", "two", "x2");
    add2(m, "Mul", "m1", "a", "x2", "t1");
    add2(m, "Mul", "m2", "x", "b", "t2");
    add2(m, "Add", "a1", "t1", "t2", "s1");
    add2(m, "Add", "a2", "s1", "c", "s2");
    add2(m, "Mul", "m3", "s2", "k", "s3");
    add2(m, "Mul", "m4", "x", "x", "xx");
    add2(m, "Mul", "m5", "xx", "x", "x3");
    add2(m, "Add", "a3", "s3", "x3", "y");
    return m;
}

static double poly_ref(double x, int ch) {
    double k = (double[]){ 1, 2, -0.5 }[ch];
    return k * (0.25 * x * x - 1.5 * x + 0.5) + x * x * x;
}

static void check_poly_graph(const tsr_graph *g, double tol) {
    assert_int_equal(tsr_graph_num_nodes(g), 1);
    assert_int_equal(tsr_graph_node_kind(g, 0), TSR_NODE_POLY);
    const tsr_array *c = tsr_graph_const(g, tsr_graph_node_input(g, 0, 1));
    assert_non_null(c);
    assert_int_equal(c->rank, 2);
    assert_int_equal(c->dims[0], 3);
    assert_int_equal(c->dims[1], 4);
    /* channel 2: -0.5 * (0.25 x^2 - 1.5 x + 0.5) + x^3 */
    assert_true(fabs(c->data[8] + 0.25) < tol && fabs(c->data[9] - 0.75) < tol);
    assert_true(fabs(c->data[10] + 0.125) < tol && fabs(c->data[11] - 1) < tol);
    tsr_array *x, *y;
    tt_ok(tsr_array_create(&x, 4, (int64_t[]){ 2, 3, 2, 2 }));
    for (size_t i = 0; i < x->numel; i++) x->data[i] = (double)i / 8.0 - 1.5;
    tt_ok(tsr_graph_run(g, (const tsr_array *[]){ x }, &y));
    for (size_t i = 0; i < x->numel; i++)
        if (fabs(y->data[i] - poly_ref(x->data[i], (int)(i / 4) % 3)) > tol * 10)
            fail_msg("element %zu: %.12g vs %.12g", i, y->data[i],
                     poly_ref(x->data[i], (int)(i / 4) % 3));
    tsr_array_free(x);
    tsr_array_free(y);
}

static void test_poly_recognition_and_export(void **state) {
    (void)state;
    tsr_onnx_model *m = poly_model(), *e, *back;
    tsr_graph *g, *g2, *raw;
    tt_ok(tsr_onnx_to_graph(m, NULL, &g, NULL));
    check_poly_graph(g, 1e-12);
    /* Without fusion the nodes stay as written and compute the same. */
    tsr_onnx_import_opts o;
    tsr_onnx_import_opts_default(&o);
    o.no_fuse = 1;
    tt_ok(tsr_onnx_to_graph(m, &o, &raw, NULL));
    assert_int_equal(tsr_graph_num_nodes(raw), 9);
    tsr_graph_free(raw);
    /* Export (Mul/Pow/Add pattern), serialise, read back: one polynomial again. */
    tt_ok(tsr_onnx_from_graph(g, &e));
    uint8_t *buf;
    size_t len;
    tt_ok(tsr_onnx_serialize(e, &buf, &len));
    tt_ok(tsr_onnx_parse(&back, buf, len));
    tt_ok(tsr_onnx_to_graph(back, NULL, &g2, NULL));
    check_poly_graph(g2, 1e-6); /* coefficients went through float */
    assert_int_equal(back->outputs[0].ndims, 4);
    assert_true(back->outputs[0].dims[0] < 0); /* the free batch dimension stays free */
    tsr_free(buf);
    tsr_graph_free(g2);
    tsr_onnx_free(back);
    tsr_onnx_free(e);
    tsr_graph_free(g);
    tsr_onnx_free(m);
}

static void test_export_chebyshev(void **state) {
    (void)state;
    tsr_graph *g, *g2;
    tt_ok(tsr_graph_create(&g));
    tt_ok(tsr_graph_add_input(g, "x", 2, (int64_t[]){ -1, 9 }));
    tsr_array *c;
    tt_ok(tsr_array_create(&c, 2, (int64_t[]){ 9, 5 }));
    for (size_t i = 0; i < c->numel; i++) c->data[i] = sin((double)i);
    tt_ok(tsr_graph_add_const(g, "c", c));
    tsr_graph_attrs a;
    tsr_graph_attrs_default(&a);
    a.lo = -1.5, a.hi = 2.5;
    tt_ok(tsr_graph_add_node(g, TSR_NODE_CHEBYSHEV, "cheb", 2, (const char *[]){ "x", "c" }, "y",
                             &a));
    tt_ok(tsr_graph_add_output(g, "y"));
    tt_ok(tsr_graph_finalize(g));
    tsr_onnx_model *m;
    tt_ok(tsr_onnx_from_graph(g, &m));
    tt_ok(tsr_onnx_to_graph(m, NULL, &g2, NULL));
    tsr_array *x, *y1, *y2;
    tt_ok(tsr_array_create(&x, 2, (int64_t[]){ 3, 9 }));
    for (size_t i = 0; i < x->numel; i++) x->data[i] = -1.5 + 4.0 * (double)i / 26.0;
    tt_ok(tsr_graph_run(g, (const tsr_array *[]){ x }, &y1));
    tt_ok(tsr_graph_run(g2, (const tsr_array *[]){ x }, &y2));
    /* Reference: the cosine form of each row. */
    for (size_t i = 0; i < x->numel; i++) {
        double t = acos((2 * x->data[i] - 1.0) / 4.0), want = 0;
        for (int k = 0; k < 5; k++) want += c->data[(i % 9) * 5 + k] * cos(k * t);
        assert_true(fabs(y1->data[i] - want) < 1e-12);
        assert_true(fabs(y2->data[i] - want) < 1e-5);
    }
    tsr_array_free(x);
    tsr_array_free(y1);
    tsr_array_free(y2);
    tsr_array_free(c);
    tsr_onnx_free(m);
    tsr_graph_free(g2);
    tsr_graph_free(g);
}

/* ---- the node-test runner -------------------------------------------------------------- */

static void need_testdata(void) {
    struct stat st;
    if (stat(NODE_DIR, &st) != 0)
        fail_msg("%s is missing: install Debian's libonnx-testdata (scripts/deps.sh does)",
                 NODE_DIR);
}

/* A sample covering every supported operator and the attributes the issue names. */
static const char *const sample[] = { "test_conv_with_autopad_same",
                                      "test_conv_with_strides_and_asymmetric_padding",
                                      "test_averagepool_2d_pads_count_include_pad",
                                      "test_averagepool_2d_ceil",
                                      "test_averagepool_2d_same_lower",
                                      "test_averagepool_3d_default",
                                      "test_gemm_all_attributes",
                                      "test_gemm_default_scalar_bias",
                                      "test_matmul_4d",
                                      "test_flatten_negative_axis1",
                                      "test_reshape_negative_extended_dims",
                                      "test_transpose_all_permutations_3",
                                      "test_concat_3d_axis_negative_2",
                                      "test_slice_neg_steps",
                                      "test_squeeze_negative_axes",
                                      "test_unsqueeze_unsorted_axes",
                                      "test_reduce_mean_keepdims_random",
                                      "test_reduce_sum_empty_axes_input_noop_random",
                                      "test_batchnorm_epsilon",
                                      "test_pow_bcast_array",
                                      "test_mul_bcast",
                                      "test_div_bcast",
                                      "test_sub_bcast",
                                      "test_neg",
                                      "test_constant",
                                      "test_dropout_default",
                                      "test_identity",
                                      "test_globalaveragepool_precomputed",
                                      "test_constant_pad",
                                      "test_add_bcast" };

static void test_runner_sample(void **state) {
    (void)state;
    need_testdata();
    char args[8192] = "onnx-test --all-pass --roundtrip";
    size_t n = sizeof sample / sizeof sample[0];
    for (size_t i = 0; i < n; i++) {
        size_t at = strlen(args);
        snprintf(args + at, sizeof args - at, " %s/%s", NODE_DIR, sample[i]);
    }
    tt_cli_expect(tt_cli_run("%s", args), 0, "node-test sample");
    char want[64];
    snprintf(want, sizeof want, "%zu passed, 0 failed, 0 unsupported", n);
    if (!strstr(tt_cli_output(), want)) fail_msg("runner output: %s", tt_cli_output());
    /* A non-polynomial operator is listed with its replacement, not failed. */
    tt_cli_expect(tt_cli_run("onnx-test %s/test_relu %s/test_softmax_example", NODE_DIR, NODE_DIR),
                  0, "unsupported ops");
    if (!strstr(tt_cli_output(), "UNSUPPORTED test_relu (Relu)") ||
        !strstr(tt_cli_output(), "--approx Relu") || !strstr(tt_cli_output(), "power-softmax"))
        fail_msg("runner output: %s", tt_cli_output());
    tt_cli_expect_fail(tt_cli_run("onnx-test --all-pass %s/test_relu", NODE_DIR), "--all-pass",
                       "0 passed, 0 failed, 1 unsupported");
    tt_cli_expect_fail(tt_cli_run("onnx-test /nonexistent"), "missing dir", "not a directory");
}

/* Copy a node test and change one expected value: the runner must fail it. */
static void test_runner_catches_wrong_output(void **state) {
    (void)state;
    need_testdata();
    const char *src = NODE_DIR "/test_gemm_default_vector_bias";
    const char *dir = tt_cli_path("gemm"), *set = tt_cli_path("gemm/test_data_set_0");
    char path[1024], from[1024];
    assert_int_equal(mkdir(dir, 0700), 0);
    assert_int_equal(mkdir(set, 0700), 0);
    const char *files[] = { "model.onnx", "test_data_set_0/input_0.pb",
                            "test_data_set_0/input_1.pb", "test_data_set_0/input_2.pb" };
    for (size_t i = 0; i < 4; i++) {
        snprintf(from, sizeof from, "%s/%s", src, files[i]);
        snprintf(path, sizeof path, "%s/%s", dir, files[i]);
        uint8_t *buf;
        size_t len;
        tt_ok(tsr_read_whole_file(from, 1 << 24, "a test file", &buf, &len));
        FILE *f = fopen(path, "wb");
        assert_non_null(f);
        assert_int_equal(fwrite(buf, 1, len, f), len);
        fclose(f);
        tsr_free(buf);
    }
    snprintf(from, sizeof from, "%s/test_data_set_0/output_0.pb", src);
    uint8_t *buf;
    size_t len;
    tt_ok(tsr_read_whole_file(from, 1 << 24, "a test file", &buf, &len));
    Onnx__TensorProto *tp = onnx__tensor_proto__unpack(NULL, len, buf);
    assert_non_null(tp);
    assert_true(tp->has_raw_data && tp->raw_data.len >= 4);
    float v;
    memcpy(&v, tp->raw_data.data + 4, 4);
    v = v * 1.01f + 0.01f; /* beyond rtol 1e-3 */
    memcpy(tp->raw_data.data + 4, &v, 4);
    size_t n = onnx__tensor_proto__get_packed_size(tp);
    uint8_t *out = malloc(n);
    assert_non_null(out);
    onnx__tensor_proto__pack(tp, out);
    snprintf(path, sizeof path, "%s/output_0.pb", set);
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(out, 1, n, f), n);
    fclose(f);
    free(out);
    onnx__tensor_proto__free_unpacked(tp, NULL);
    tsr_free(buf);
    tt_cli_expect_fail(tt_cli_run("onnx-test %s", dir), "tampered output", "element 1");
    if (!strstr(tt_cli_output(), "FAIL")) fail_msg("runner output: %s", tt_cli_output());
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tensor_reader),
        cmocka_unit_test(test_report),
        cmocka_unit_test(test_parse_approx),
        cmocka_unit_test(test_approx),
        cmocka_unit_test(test_layernorm),
        cmocka_unit_test(test_poly_recognition_and_export),
        cmocka_unit_test(test_export_chebyshev),
        cmocka_unit_test(test_runner_sample),
        cmocka_unit_test(test_runner_catches_wrong_output),
    };
    return cmocka_run_group_tests(tests, tt_cli_setup, tt_cli_teardown);
}
