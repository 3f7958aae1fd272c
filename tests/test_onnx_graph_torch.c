/*
 * tests/test_onnx_graph_torch.c - models exported by PyTorch (fixtures made
 * by tests/data/gen_nn_torch.py and gen_torch_onnx.py with PyTorch's outputs)
 * through the graph importer and the plaintext executor: the outputs must be
 * PyTorch's, the polynomial activations must be recognised as one node each,
 * and PyTorch's GELU (Erf) must be reported with its replacement, then run
 * once --approx replaces Erf.
 */
#include "testutil.h"
#include "train_ref.h"

#include "tessera.h"
#include "onnx/onnx_graph.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* Max |got - want| relative to max(|want|, 1e-3) (tt_rel_err of want in doubles). */
static double rel_err(const tsr_array *got, const ref_tensor *want) {
    assert_int_equal(got->numel, want->n);
    double *w = malloc((want->n ? want->n : 1) * sizeof *w);
    assert_non_null(w);
    for (size_t i = 0; i < want->n; i++) w[i] = want->data[i];
    double e = tt_rel_err(got->data, w, want->n, 1e-3);
    free(w);
    return e;
}

static tsr_array *input_of(const ref_tensor *x) {
    int64_t dims[8];
    for (int k = 0; k < x->ndims; k++) dims[k] = x->dims[k];
    tsr_array *a;
    tt_ok(tsr_array_create(&a, x->ndims, dims));
    for (size_t i = 0; i < x->n; i++) a->data[i] = x->data[i];
    return a;
}

static void test_nn_torch_poly(void **state) {
    (void)state;
    tsr_onnx_model *m;
    tt_ok(tsr_onnx_load(&m, tt_source_path("tests/data/nn_torch_poly.onnx")));
    tsr_graph *g;
    tt_ok(tsr_onnx_to_graph(m, NULL, &g, NULL));
    ref_file rf;
    ref_load(&rf, "tests/data/nn_torch_poly.bin");
    tsr_array *x = input_of(ref_get(&rf, "x")), *y;
    tt_ok(tsr_graph_run(g, (const tsr_array *[]){ x }, &y));
    double e = rel_err(y, ref_get(&rf, "logits"));
    if (e > 1e-5) fail_msg("PyTorch logits: relative error %.3g", e);
    /* Three activations, each one polynomial node; nothing of their Mul/Pow/Add/Sub left. */
    int polys = 0;
    for (int i = 0; i < tsr_graph_num_nodes(g); i++) {
        tsr_graph_kind k = tsr_graph_node_kind(g, i);
        polys += k == TSR_NODE_POLY || k == TSR_NODE_SQUARE;
        if (k == TSR_NODE_POW || k == TSR_NODE_SUB || k == TSR_NODE_MUL)
            fail_msg("node %s (%s) was not folded", tsr_graph_node_name(g, i),
                     tsr_graph_kind_name(k));
    }
    assert_int_equal(polys, 3);
    tsr_array_free(x);
    tsr_array_free(y);
    ref_free(&rf);
    tsr_graph_free(g);
    tsr_onnx_free(m);
}

static void test_torch_fixture_gelu(void **state) {
    (void)state;
    tsr_onnx_model *m;
    tt_ok(tsr_onnx_load(&m, tt_source_path("tests/data/torch_fixture.onnx")));
    tsr_graph *g;
    tt_fails(tsr_onnx_to_graph(m, NULL, &g, NULL), TSR_ERR_UNSUPPORTED);
    if (!strstr(tsr_last_error(), "1 node cannot") || !strstr(tsr_last_error(), "(Erf)") ||
        !strstr(tsr_last_error(), "--approx Erf"))
        fail_msg("report: %s", tsr_last_error());
    tsr_onnx_import_opts o;
    tsr_onnx_import_opts_default(&o);
    o.n_approx = 1;
    tt_ok(tsr_onnx_parse_approx("Erf=31@6", &o.approx[0]));
    int lossy = 0;
    tt_ok(tsr_onnx_to_graph(m, &o, &g, &lossy));
    assert_int_equal(lossy, 1);
    ref_file rf;
    ref_load(&rf, "tests/data/torch_fixture.bin");
    tsr_array *x = input_of(ref_get(&rf, "x")), *y;
    tt_ok(tsr_graph_run(g, (const tsr_array *[]){ x }, &y));
    double e = rel_err(y, ref_get(&rf, "logits"));
    print_message("torch_fixture with Erf=31@6: relative error %.3g\n", e);
    if (e > 1e-4) fail_msg("PyTorch logits with Erf replaced: relative error %.3g", e);
    tsr_array_free(x);
    tsr_array_free(y);
    ref_free(&rf);
    tsr_graph_free(g);
    tsr_onnx_free(m);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_nn_torch_poly),
        cmocka_unit_test(test_torch_fixture_gelu),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
