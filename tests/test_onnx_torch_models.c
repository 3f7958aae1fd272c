/*
 * tests/test_onnx_torch_models.c - the PyTorch models of issue 11
 * (tests/data/torch/, made by scripts/make_torch_fixtures.py with Debian's
 * PyTorch; untrained small random weights): an MLP autoencoder
 * 784-128-32-128-784, a CNN with depthwise convolution, padded average
 * pooling (PyTorch's count_include_pad, exported as Pad + AveragePool) and x.view(x.size(0), -1),
 * and a one-block transformer encoder on (N, 16, 32) with power attention (Q K^T)^2 V / L (and
 * the same block on (N, 4, 8), which tests/test_nn_he.c runs encrypted). Each is
 * imported through the graph importer (polynomial activations must be single nodes, shape subgraphs
 * folded) and run by the plaintext executor on PyTorch's inputs; the outputs must be PyTorch's (max
 * abs error printed, float32 PyTorch vs double executor).
 */
#include "testutil.h"

#include "tessera.h"
#include "onnx/onnx_graph.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

typedef struct expect {
    const char *name;
    int polys;  /* POLY / SQUARE nodes */
    int convs;  /* depthwise CONV nodes (group > 1) */
    int pools;  /* AVGPOOL with padding counted: PyTorch writes a zero Pad first */
    int copies; /* RESHAPE nodes whose target copies the batch (0 first) */
    double tol; /* max abs error allowed */
} expect;

static void run_model(const expect *e) {
    char path[128];
    snprintf(path, sizeof path, "tests/data/torch/%s.onnx", e->name);
    tsr_onnx_model *m;
    tt_ok(tsr_onnx_load(&m, tt_source_path(path)));
    tsr_graph *g;
    tt_ok(tsr_onnx_to_graph(m, NULL, &g, NULL));
    int polys = 0, convs = 0, pools = 0, copies = 0;
    for (int i = 0; i < tsr_graph_num_nodes(g); i++) {
        tsr_graph_kind k = tsr_graph_node_kind(g, i);
        const tsr_graph_attrs *a = tsr_graph_node_attrs(g, i);
        polys += k == TSR_NODE_POLY || k == TSR_NODE_SQUARE;
        convs += k == TSR_NODE_CONV && a->group > 1;
        pools += (k == TSR_NODE_AVGPOOL && a->count_include_pad && a->pads[0] > 0) ||
                 (k == TSR_NODE_PAD && a->value == 0 && a->n_pads == 8 && a->pad_list[2] > 0);
        copies += k == TSR_NODE_RESHAPE && a->n_shape > 0 && a->shape[0] == 0;
        if (k == TSR_NODE_POW || k == TSR_NODE_DIV || k == TSR_NODE_SUB)
            fail_msg("%s: node %s (%s) was not folded into a polynomial", e->name,
                     tsr_graph_node_name(g, i), tsr_graph_kind_name(k));
        assert_true(tsr_graph_kind_is_polynomial(k));
    }
    assert_int_equal(polys, e->polys);
    assert_int_equal(convs, e->convs);
    assert_int_equal(pools, e->pools);
    assert_int_equal(copies, e->copies);

    tsr_onnx_data *x, *want;
    snprintf(path, sizeof path, "tests/data/torch/%s_input.pb", e->name);
    tt_ok(tsr_onnx_data_load(&x, tt_source_path(path)));
    snprintf(path, sizeof path, "tests/data/torch/%s_output.pb", e->name);
    tt_ok(tsr_onnx_data_load(&want, tt_source_path(path)));
    tsr_array *y;
    tt_ok(tsr_graph_run(g, (const tsr_array *[]){ x->a }, &y));
    assert_int_equal(y->rank, want->a->rank);
    for (int k = 0; k < y->rank; k++) assert_int_equal(y->dims[k], want->a->dims[k]);
    double err = 0, mag = 0;
    for (size_t i = 0; i < y->numel; i++) {
        err = fmax(err, fabs(y->data[i] - want->a->data[i]));
        mag = fmax(mag, fabs(want->a->data[i]));
    }
    print_message("%s: %lld samples, max abs error %.3g (outputs up to %.3g)\n", e->name,
                  (long long)x->a->dims[0], err, mag);
    if (!(err <= e->tol)) fail_msg("%s: max abs error %.3g > %.3g", e->name, err, e->tol);
    tsr_array_free(y);
    tsr_onnx_data_free(x);
    tsr_onnx_data_free(want);
    tsr_graph_free(g);
    tsr_onnx_free(m);
}

static void test_autoencoder(void **state) {
    (void)state;
    const expect e = { "autoencoder", 3, 0, 0, 0, 1e-5 };
    run_model(&e);
}

static void test_cnn(void **state) {
    (void)state;
    const expect e = { "cnn", 3, 1, 2, 1, 1e-5 };
    run_model(&e);
}

/* Attention scores (Q K^T)^2 / L are one polynomial of Q K^T; FFN activation another. */
static void test_transformer(void **state) {
    (void)state;
    const expect e = { "transformer", 2, 0, 0, 4, 1e-5 };
    run_model(&e);
}

/* The same block at (N, 4, 8), 2 heads: the one the encrypted unit test runs. */
static void test_transformer_small(void **state) {
    (void)state;
    const expect e = { "transformer_small", 2, 0, 0, 4, 1e-5 };
    run_model(&e);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_autoencoder),
        cmocka_unit_test(test_cnn),
        cmocka_unit_test(test_transformer),
        cmocka_unit_test(test_transformer_small),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
