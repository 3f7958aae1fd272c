/*
 * tessera/onnx.h - ONNX files as model graphs (docs/ONNX.md): the public
 * entry points of the importer and the exporter for programs and bindings
 * (the Python package) that want the plaintext graph of an ONNX file
 * without the encrypted-inference pipeline of tessera/nn.h.
 */
#ifndef TESSERA_ONNX_H
#define TESSERA_ONNX_H

#include "tessera/common.h"
#include "tessera/graph.h"

TSR_BEGIN_DECLS

/** Import options: TSR_ONNX_KEEP_NON_POLYNOMIAL or 0. */
#define TSR_ONNX_KEEP_NON_POLYNOMIAL 0x1u

/**
 * Read the ONNX file at path (validated: TSR_ERR_IO, TSR_ERR_FORMAT) and
 * build its finalized model graph in *out (free with tsr_graph_free), with
 * polynomial subgraphs recognised. Every node that cannot be mapped is
 * listed in one TSR_ERR_UNSUPPORTED message with the replacement Tessera
 * suggests; with TSR_ONNX_KEEP_NON_POLYNOMIAL in flags, ReLU, sigmoid,
 * softmax, max pooling and the other non-polynomial operators are imported
 * as such (the graph then runs in plaintext only: CKKS refuses them).
 * Thread-safe.
 */
TSR_API tsr_status tsr_onnx_import_graph(const char *path, uint32_t flags, tsr_graph **out);

/**
 * Write the finalized graph g as an ONNX file at path (opset 13, producer
 * "tessera"; constants as FLOAT initializers, doubles rounded to float;
 * polynomials as Mul/Pow/Add, so tsr_onnx_import_graph reads back the same
 * function). The file is written atomically (temporary file + rename).
 * Errors: TSR_ERR_IO, TSR_ERR_UNSUPPORTED for a node kind ONNX cannot say.
 * Thread-safe.
 */
TSR_API tsr_status tsr_onnx_export_graph(const tsr_graph *g, const char *path);

TSR_END_DECLS

#endif /* TESSERA_ONNX_H */
