/*
 * fuzz/fuzz_onnx_graph.c - libFuzzer target for the ONNX -> graph importer
 * (on top of the validated reader): any model gives a status, never a crash;
 * a graph that imports runs once on small inputs and exports back to ONNX.
 */
#include "core/alloc.h"
#include "onnx/onnx_graph.h"

#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void run_small(const tsr_graph *g) {
    int ni = tsr_graph_num_inputs(g), no = tsr_graph_num_outputs(g);
    if (ni > 8 || no > 8) return;
    tsr_array *in[8] = { 0 }, *out[8] = { 0 };
    int ok = 1;
    for (int i = 0; i < ni && ok; i++) {
        int rank;
        int64_t dims[TSR_ARRAY_MAX_RANK];
        ok = tsr_graph_value_shape(g, tsr_graph_input_name(g, i), &rank, dims) == TSR_OK;
        for (int k = 0; ok && k < rank; k++)
            if (dims[k] < 0) dims[k] = 1; /* as in the declared shapes */
        int64_t n = ok ? tsr_dims_numel(rank, dims) : -1;
        ok = n >= 0 && n <= 4096 && tsr_array_create(&in[i], rank, dims) == TSR_OK;
        for (int64_t k = 0; ok && k < n; k++) in[i]->data[k] = (double)(k % 7) - 3.0;
    }
    if (ok) (void)tsr_graph_run(g, (const tsr_array *const *)in, out);
    for (int i = 0; i < 8; i++) {
        tsr_array_free(in[i]);
        tsr_array_free(out[i]);
    }
}

static double numel_of(const tsr_graph *g, const char *name) {
    int rank;
    int64_t dims[TSR_ARRAY_MAX_RANK];
    if (!name[0] || tsr_graph_value_shape(g, name, &rank, dims) != TSR_OK) return 0;
    int64_t n = tsr_dims_numel(rank, dims);
    return n < 0 ? 1e30 : (double)n;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    tsr_onnx_model *om;
    if (tsr_onnx_parse(&om, data, size) != TSR_OK) return 0;
    tsr_onnx_import_opts o;
    tsr_onnx_import_opts_default(&o);
    o.keep_non_polynomial = (int)(size & 1); /* both import modes */
    o.n_approx = 1;
    (void)tsr_onnx_parse_approx("Relu=4@3", &o.approx[0]);
    tsr_graph *g;
    if (tsr_onnx_to_graph(om, &o, &g, NULL) == TSR_OK) {
        /* Bound the work: per node, output size x (largest input or kernel taps). */
        double work = 0;
        for (int i = 0; i < tsr_graph_num_nodes(g); i++) {
            double in_max = 1, taps = 1;
            for (int k = 0; k < tsr_graph_node_num_inputs(g, i); k++)
                in_max = fmax(in_max, numel_of(g, tsr_graph_node_input(g, i, k)));
            const tsr_graph_attrs *a = tsr_graph_node_attrs(g, i);
            for (int k = 0; k < a->n_kernel; k++) taps *= (double)a->kernel[k];
            work += numel_of(g, tsr_graph_node_output(g, i)) * fmax(in_max, taps);
        }
        if (work <= (double)(1 << 24)) run_small(g);
        tsr_onnx_model *back;
        if (tsr_onnx_from_graph(g, &back) == TSR_OK) tsr_onnx_free(back);
        tsr_graph_free(g);
    }
    tsr_onnx_free(om);
    return 0;
}
