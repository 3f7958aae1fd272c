/*
 * test_graph_io.c - the wire form of the model graph (graph/graph_io.c): a
 * graph with every value kind, optional inputs and attributes round-trips
 * (same bytes when written again, same outputs when run), clones, and every
 * truncated or corrupted input fails with a message instead of a crash.
 */
#include "testutil.h"

#include "onnx/onnx.h"
#include "onnx/onnx_graph.h"
#include "tessera/graph.h"

#include <math.h>
#include <stdio.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* With TSR_WRITE_FUZZ_CORPUS=DIR the graph is written as a seed of fuzz/fuzz_graph_read.c. */
static void write_seed(const uint8_t *b, size_t n) {
    const char *dir = getenv("TSR_WRITE_FUZZ_CORPUS");
    if (!dir) return;
    char path[1024];
    snprintf(path, sizeof path, "%s/fuzz_graph_read/small.graph", dir);
    FILE *fp = fopen(path, "wb");
    if (!fp) fail_msg("cannot write %s", path);
    fwrite(b, 1, n, fp);
    fclose(fp);
}

static tsr_array *arr(int rank, const int64_t *dims, double base) {
    tsr_array *t;
    tt_ok(tsr_array_create(&t, rank, dims));
    for (size_t i = 0; i < t->numel; i++) t->data[i] = base + 0.125 * (double)i - 0.3;
    return t;
}

/* x (N, 2, 4, 4) -> conv 3x3 pad 1 (+b) -> avgpool 2x2 -> poly -> flatten -> gemm (+c) */
static tsr_graph *small_graph(void) {
    tsr_graph *g;
    tt_ok(tsr_graph_create(&g));
    const int64_t xd[4] = { -1, 2, 4, 4 }, wd[4] = { 3, 2, 3, 3 }, bd[1] = { 3 }, pd[1] = { 3 },
                  md[2] = { 5, 12 }, cd[1] = { 5 };
    tt_ok(tsr_graph_add_input(g, "x", 4, xd));
    tsr_array *w = arr(4, wd, 0.1), *b = arr(1, bd, 0.2), *pc = arr(1, pd, 0.5),
              *mw = arr(2, md, -0.4), *mc = arr(1, cd, 1.0);
    tt_ok(tsr_graph_add_const(g, "w", w));
    tt_ok(tsr_graph_add_const(g, "b", b));
    tsr_graph_attrs a;
    tsr_graph_attrs_default(&a);
    a.pads[0] = a.pads[1] = a.pads[2] = a.pads[3] = 1;
    tt_ok(tsr_graph_add_node(g, TSR_NODE_CONV, "conv", 3, (const char *const[]){ "x", "w", "b" },
                             "c", &a));
    tsr_graph_attrs_default(&a);
    a.n_kernel = 2;
    a.kernel[0] = a.kernel[1] = 2;
    a.strides[0] = a.strides[1] = 2;
    tt_ok(tsr_graph_add_node(g, TSR_NODE_AVGPOOL, "", 1, (const char *const[]){ "c" }, "p", &a));
    /* a node reading a constant added after it */
    tt_ok(tsr_graph_add_node(g, TSR_NODE_POLY, "poly", 2, (const char *const[]){ "p", "pc" }, "q",
                             NULL));
    tt_ok(tsr_graph_add_const(g, "pc", pc));
    tt_ok(tsr_graph_add_node(g, TSR_NODE_FLATTEN, "flat", 1, (const char *const[]){ "q" }, "f",
                             NULL));
    tt_ok(tsr_graph_add_const(g, "mw", mw));
    tt_ok(tsr_graph_add_const(g, "mc", mc));
    tsr_graph_attrs_default(&a);
    a.trans_b = 1;
    a.alpha = 0.75;
    tt_ok(tsr_graph_add_node(g, TSR_NODE_GEMM, "fc", 3, (const char *const[]){ "f", "mw", "mc" },
                             "y", &a));
    tt_ok(tsr_graph_add_output(g, "y"));
    tt_ok(tsr_graph_finalize(g));
    tsr_array_free(w);
    tsr_array_free(b);
    tsr_array_free(pc);
    tsr_array_free(mw);
    tsr_array_free(mc);
    return g;
}

static tsr_array *run(const tsr_graph *g, const tsr_array *x) {
    tsr_array *y;
    tt_ok(tsr_graph_run(g, (const tsr_array *const[]){ x }, &y));
    return y;
}

/* g and h have the same nodes: kind, name, inputs, output and every attribute field (both
 * hold memset-initialised attributes). */
static void same_nodes(const tsr_graph *g, const tsr_graph *h) {
    assert_int_equal(tsr_graph_num_nodes(g), tsr_graph_num_nodes(h));
    for (int i = 0; i < tsr_graph_num_nodes(g); i++) {
        assert_int_equal(tsr_graph_node_kind(g, i), tsr_graph_node_kind(h, i));
        assert_string_equal(tsr_graph_node_name(g, i), tsr_graph_node_name(h, i));
        assert_string_equal(tsr_graph_node_output(g, i), tsr_graph_node_output(h, i));
        assert_int_equal(tsr_graph_node_num_inputs(g, i), tsr_graph_node_num_inputs(h, i));
        for (int k = 0; k < tsr_graph_node_num_inputs(g, i); k++)
            assert_string_equal(tsr_graph_node_input(g, i, k), tsr_graph_node_input(h, i, k));
        if (memcmp(tsr_graph_node_attrs(g, i), tsr_graph_node_attrs(h, i), sizeof(tsr_graph_attrs)))
            fail_msg("node %d '%s': attributes differ after a round trip", i,
                     tsr_graph_node_name(g, i));
    }
}

/* g written and read back: the same nodes and the same bytes written again. */
static void check_round_trip(const tsr_graph *g) {
    uint8_t *a, *b;
    size_t na, nb;
    tsr_graph *h;
    tt_ok(tsr_graph_to_bytes(g, &a, &na));
    tt_ok(tsr_graph_from_bytes(&h, a, na));
    same_nodes(g, h);
    tt_ok(tsr_graph_to_bytes(h, &b, &nb));
    assert_int_equal(na, nb);
    assert_memory_equal(a, b, na);
    tsr_graph_bytes_free(a);
    tsr_graph_bytes_free(b);
    tsr_graph_free(h);
}

/* x (N, 2, 3, 4) -> Transpose -> Slice -> Pad -> ReduceSum -> Reshape -> Chebyshev ->
 * LeakyRelu: every kind whose attributes small_graph does not set. */
static tsr_graph *attr_graph(void) {
    tsr_graph *g;
    tt_ok(tsr_graph_create(&g));
    const int64_t xd[4] = { -1, 2, 3, 4 }, cd[1] = { 3 };
    tt_ok(tsr_graph_add_input(g, "x", 4, xd));
    tsr_array *cc = arr(1, cd, 0.3);
    tt_ok(tsr_graph_add_const(g, "cc", cc));
    tsr_array_free(cc);
    tsr_graph_attrs a;
    tsr_graph_attrs_default(&a);
    a.n_perm = 4;
    a.perm[0] = 0, a.perm[1] = 1, a.perm[2] = 3, a.perm[3] = 2;
    tt_ok(
        tsr_graph_add_node(g, TSR_NODE_TRANSPOSE, "tr", 1, (const char *const[]){ "x" }, "t", &a));
    tsr_graph_attrs_default(&a);
    a.n_axes = 1;
    a.axes[0] = 3, a.starts[0] = 0, a.ends[0] = 2, a.steps[0] = 1;
    tt_ok(tsr_graph_add_node(g, TSR_NODE_SLICE, "sl", 1, (const char *const[]){ "t" }, "s", &a));
    tsr_graph_attrs_default(&a);
    a.n_pads = 8;
    a.pad_list[2] = 1, a.pad_list[7] = 1;
    a.value = 0.5;
    tt_ok(tsr_graph_add_node(g, TSR_NODE_PAD, "pd", 1, (const char *const[]){ "s" }, "p", &a));
    tsr_graph_attrs_default(&a);
    a.n_axes = 1;
    a.axes[0] = 2;
    tt_ok(
        tsr_graph_add_node(g, TSR_NODE_REDUCE_SUM, "rs", 1, (const char *const[]){ "p" }, "r", &a));
    tsr_graph_attrs_default(&a);
    a.n_shape = 2;
    a.shape[0] = 0, a.shape[1] = 6;
    tt_ok(tsr_graph_add_node(g, TSR_NODE_RESHAPE, "re", 1, (const char *const[]){ "r" }, "q", &a));
    tsr_graph_attrs_default(&a);
    a.lo = -3, a.hi = 4;
    tt_ok(tsr_graph_add_node(g, TSR_NODE_CHEBYSHEV, "ch", 2, (const char *const[]){ "q", "cc" },
                             "c", &a));
    tsr_graph_attrs_default(&a);
    a.leak = 0.125;
    tt_ok(
        tsr_graph_add_node(g, TSR_NODE_LEAKY_RELU, "lr", 1, (const char *const[]){ "c" }, "y", &a));
    tt_ok(tsr_graph_add_output(g, "y"));
    tt_ok(tsr_graph_finalize(g));
    return g;
}

/* Every node's attributes survive, of small_graph, attr_graph and the PyTorch fixtures. */
static void test_every_attribute(void **state) {
    (void)state;
    tsr_graph *g = small_graph();
    check_round_trip(g);
    tsr_graph_free(g);
    g = attr_graph();
    check_round_trip(g);
    tsr_graph_free(g);
    const char *fx[] = { "tests/data/torch/cnn.onnx", "tests/data/torch/transformer.onnx" };
    for (int i = 0; i < 2; i++) {
        tsr_onnx_model *om;
        tt_ok(tsr_onnx_load(&om, tt_source_path(fx[i])));
        tt_ok(tsr_onnx_to_graph(om, NULL, &g, NULL));
        check_round_trip(g);
        tsr_graph_free(g);
        tsr_onnx_free(om);
    }
}

static void test_round_trip(void **state) {
    (void)state;
    tsr_graph *g = small_graph(), *h, *c;
    uint8_t *a, *b;
    size_t na, nb;
    tt_ok(tsr_graph_to_bytes(g, &a, &na));
    write_seed(a, na);
    tt_ok(tsr_graph_from_bytes(&h, a, na));
    tt_ok(tsr_graph_to_bytes(h, &b, &nb));
    assert_int_equal(na, nb);
    assert_memory_equal(a, b, na);
    tt_ok(tsr_graph_clone(h, &c));
    assert_int_equal(tsr_graph_num_nodes(c), 5);
    assert_string_equal(tsr_graph_node_name(c, 1), "p"); /* an empty node name: the output's */
    const tsr_graph_attrs *at = tsr_graph_node_attrs(c, 4);
    assert_int_equal(at->trans_b, 1);
    assert_true(at->alpha == 0.75);
    const int64_t xd[4] = { 3, 2, 4, 4 };
    tsr_array *x = arr(4, xd, -1.0), *y0 = run(g, x), *y1 = run(h, x), *y2 = run(c, x);
    assert_int_equal(y0->numel, 15);
    assert_memory_equal(y0->data, y1->data, y0->numel * sizeof(double));
    assert_memory_equal(y0->data, y2->data, y0->numel * sizeof(double));
    tsr_array_free(x);
    tsr_array_free(y0);
    tsr_array_free(y1);
    tsr_array_free(y2);
    /* a graph that is not finalized is not written */
    tsr_graph *e;
    tt_ok(tsr_graph_create(&e));
    uint8_t *eb = NULL;
    size_t el = 0;
    tt_fails(tsr_graph_to_bytes(e, &eb, &el), TSR_ERR_INVALID_ARG);
    assert_null(eb);
    tsr_graph_free(e);
    tsr_graph_bytes_free(a);
    tsr_graph_bytes_free(b);
    tsr_graph_free(c);
    tsr_graph_free(h);
    tsr_graph_free(g);
}

static void test_bad_input(void **state) {
    (void)state;
    tsr_graph *g = small_graph(), *h = NULL;
    uint8_t *a;
    size_t n;
    tt_ok(tsr_graph_to_bytes(g, &a, &n));
    /* every truncation */
    for (size_t cut = 0; cut < n; cut += cut < 400 ? 1 : 37) {
        tsr_status st = tsr_graph_from_bytes(&h, a, cut);
        if (st == TSR_OK) fail_msg("a graph cut at %zu of %zu bytes read", cut, n);
        assert_null(h);
        assert_int_equal(st, TSR_ERR_FORMAT);
    }
    /* trailing bytes */
    uint8_t *longer = malloc(n + 1);
    memcpy(longer, a, n);
    longer[n] = 0;
    tt_fails(tsr_graph_from_bytes(&h, longer, n + 1), TSR_ERR_FORMAT);
    assert_non_null(strstr(tsr_last_error(), "after its end"));
    free(longer);
    /* magic, version, counts, and a value record kind */
    static const struct {
        size_t at;
        uint8_t v;
        tsr_status want;
        const char *msg;
    } bad[] = {
        { 0, 'X', TSR_ERR_FORMAT, "magic" },       { 4, 2, TSR_ERR_VERSION, "wire version" },
        { 11, 0x7f, TSR_ERR_FORMAT, "values" },    { 15, 0x7f, TSR_ERR_FORMAT, "outputs" },
        { 16, 9, TSR_ERR_FORMAT, "value record" },
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        uint8_t *c = malloc(n);
        memcpy(c, a, n);
        c[bad[i].at] = bad[i].v;
        tt_fails(tsr_graph_from_bytes(&h, c, n), bad[i].want);
        if (!strstr(tsr_last_error(), bad[i].msg))
            fail_msg("byte %zu: message '%s'", bad[i].at, tsr_last_error());
        assert_null(h);
        free(c);
    }
    /* any single byte changed: a status, never a crash (most still read: data bytes) */
    for (size_t i = 0; i < n; i += 3) {
        uint8_t *c = malloc(n);
        memcpy(c, a, n);
        c[i] ^= 0xa5;
        if (tsr_graph_from_bytes(&h, c, n) == TSR_OK) tsr_graph_free(h);
        h = NULL;
        free(c);
    }
    tsr_graph_bytes_free(a);
    tsr_graph_free(g);
}

/* The writer is canonical: what it writes reads back. A flag of 2 is written as 1; a stray NaN
 * in a field the node's kind does not read fails at write, naming the node. */
static void test_stray_attrs(void **state) {
    (void)state;
    for (int k = 0; k < 2; k++) {
        tsr_graph *g;
        tt_ok(tsr_graph_create(&g));
        const int64_t xd[2] = { -1, 4 }, wd[2] = { 3, 4 };
        tt_ok(tsr_graph_add_input(g, "x", 2, xd));
        tsr_array *w = arr(2, wd, 0.1);
        tt_ok(tsr_graph_add_const(g, "w", w));
        tsr_array_free(w);
        tsr_graph_attrs a;
        tsr_graph_attrs_default(&a);
        a.trans_b = 1;
        if (k == 0)
            a.keepdims = 2;
        else
            a.value = NAN;
        tt_ok(tsr_graph_add_node(g, TSR_NODE_GEMM, "fc", 2, (const char *const[]){ "x", "w" }, "y",
                                 &a));
        tt_ok(tsr_graph_add_output(g, "y"));
        tt_ok(tsr_graph_finalize(g));
        uint8_t *b;
        size_t n;
        if (k == 0) {
            tt_ok(tsr_graph_to_bytes(g, &b, &n));
            tsr_graph *h;
            tt_ok(tsr_graph_from_bytes(&h, b, n));
            const tsr_graph_attrs *got = tsr_graph_node_attrs(h, 0);
            assert_int_equal(got->keepdims, 1);
            assert_int_equal(got->trans_b, 1);
            tsr_graph_free(h);
            tsr_graph_bytes_free(b);
        } else {
            tt_fails(tsr_graph_to_bytes(g, &b, &n), TSR_ERR_INVALID_ARG);
            assert_non_null(strstr(tsr_last_error(), "'fc'"));
        }
        tsr_graph_free(g);
    }
}

/* 2^17 graph inputs (distinct 3-byte names, 1.2 MB) are refused at the count: replaying them
 * would look every name up among the others (~10^10 comparisons). */
static void test_too_many_values(void **state) {
    (void)state;
    const uint32_t nv = 1u << 17, hdr[4] = { 0x46524754u, 1, nv, 1 };
    const size_t n = 16 + (size_t)nv * 9 + 4 + 3;
    uint8_t *b = malloc(n), *p = b;
    memcpy(p, hdr, 16); /* little-endian host, as the test machines */
    p += 16;
    for (uint32_t i = 0; i < nv; i++) {
        const uint32_t len = 3;
        *p++ = 0; /* an input */
        memcpy(p, &len, 4);
        p += 4;
        for (int k = 0; k < 3; k++) *p++ = (uint8_t)('A' + (i >> (6 * k)) % 64);
        *p++ = 0; /* rank 0 */
    }
    const uint32_t len = 3;
    memcpy(p, &len, 4);
    memcpy(p + 4, "AAA", 3);
    tsr_graph *h = NULL;
    tt_fails(tsr_graph_from_bytes(&h, b, n), TSR_ERR_FORMAT);
    assert_non_null(strstr(tsr_last_error(), "131072 values"));
    assert_null(h);
    free(b);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip),      cmocka_unit_test(test_bad_input),
        cmocka_unit_test(test_too_many_values), cmocka_unit_test(test_stray_attrs),
        cmocka_unit_test(test_every_attribute),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
