/*
 * onnx/onnx_public.c - tsr_onnx_import_graph and tsr_onnx_export_graph
 * (include/tessera/onnx.h): a file in, a finalized graph out, through the
 * validated reader and the importer of onnx_graph.c; and back through the
 * exporter of onnx_export.c.
 */
#include "tessera/onnx.h"

#include "core/error.h"
#include "onnx/onnx_graph.h"

tsr_status tsr_onnx_import_graph(const char *path, uint32_t flags, tsr_graph **out) {
    if (!path || !out) return tsr_fail(TSR_ERR_INVALID_ARG, "tsr_onnx_import_graph: NULL argument");
    *out = NULL;
    if (flags & ~TSR_ONNX_KEEP_NON_POLYNOMIAL)
        return tsr_fail(TSR_ERR_INVALID_ARG, "tsr_onnx_import_graph: unknown flags 0x%x", flags);
    tsr_onnx_model *m = NULL;
    tsr_status st = tsr_onnx_load(&m, path);
    if (st != TSR_OK) return st;
    tsr_onnx_import_opts o;
    tsr_onnx_import_opts_default(&o);
    o.keep_non_polynomial = (flags & TSR_ONNX_KEEP_NON_POLYNOMIAL) != 0;
    st = tsr_onnx_to_graph(m, &o, out, NULL);
    tsr_onnx_free(m);
    return st;
}

tsr_status tsr_onnx_export_graph(const tsr_graph *g, const char *path) {
    if (!g || !path) return tsr_fail(TSR_ERR_INVALID_ARG, "tsr_onnx_export_graph: NULL argument");
    tsr_onnx_model *m = NULL;
    tsr_status st = tsr_onnx_from_graph(g, &m);
    if (st == TSR_OK) st = tsr_onnx_save(m, path);
    tsr_onnx_free(m);
    return st;
}
