/*
 * onnx/onnx_graph.h - ONNX <-> tsr_graph: the importer (every supported
 * operator mapped onto one graph node kind, polynomial subgraphs recognised,
 * non-polynomial operators reported with the replacement Tessera can apply),
 * the exporter, and the reader of standalone TensorProto files (the ONNX
 * backend node tests' input_N.pb / output_N.pb). docs/ONNX.md has the
 * operator table.
 */
#ifndef TSR_ONNX_GRAPH_H
#define TSR_ONNX_GRAPH_H

#include "onnx/onnx.h"
#include "tessera/graph.h"

/* More TensorProto.DataType values (onnx.h has FLOAT and INT64). */
#define TSR_ONNX_UINT8  2
#define TSR_ONNX_INT8   3
#define TSR_ONNX_UINT16 4
#define TSR_ONNX_INT16  5
#define TSR_ONNX_INT32  6
#define TSR_ONNX_BOOL   9
#define TSR_ONNX_DOUBLE 11
#define TSR_ONNX_UINT32 12
#define TSR_ONNX_UINT64 13

/* ---- standalone tensors ------------------------------------------------------- */

/** A TensorProto read from a file: values as doubles, integer types also exactly. */
typedef struct tsr_onnx_data {
    char *name;    /* "" when the file names none */
    int32_t dtype; /* TensorProto.DataType */
    tsr_array *a;  /* values as doubles */
    int64_t *i;    /* (numel) exact values for integer and BOOL types, else NULL */
} tsr_onnx_data;

/**
 * Parse a serialised TensorProto. Checks: at most TSR_ONNX_MAX_BYTES, the
 * protobuf parses, a supported data type (FLOAT, DOUBLE, INT8/16/32/64,
 * UINT8/16/32/64 (below 2^63), BOOL; others TSR_ERR_UNSUPPORTED), dims >= 0 with at most
 * TSR_ONNX_MAX_NUMEL elements (checked before allocating), data in exactly
 * one field whose size matches the dims, no external or segmented data.
 * Free with tsr_onnx_data_free.
 */
tsr_status tsr_onnx_data_parse(tsr_onnx_data **out, const uint8_t *buf, size_t len);
/** Read a file and parse it; errors are prefixed with the path. */
tsr_status tsr_onnx_data_load(tsr_onnx_data **out, const char *path);
/** Free (NULL is a no-op). */
void tsr_onnx_data_free(tsr_onnx_data *d);

/* ---- import --------------------------------------------------------------------- */

/** One --approx OP=DEG@RANGE replacement: a Chebyshev interpolant of OP on [lo, hi]. */
typedef struct tsr_onnx_approx {
    char op[32]; /* ONNX operator: Relu, Sigmoid, Tanh, Erf, Exp, Sqrt, Reciprocal, Div, ... */
    int degree;  /* 1..63 */
    double lo, hi;
} tsr_onnx_approx;

#define TSR_ONNX_MAX_APPROX 16

typedef struct tsr_onnx_import_opts {
    int n_approx;
    tsr_onnx_approx approx[TSR_ONNX_MAX_APPROX];
    int no_fuse; /* 1: keep Mul/Add/Pow subgraphs as written */
    /*
     * 1: import Relu, LeakyRelu, Sigmoid, Tanh, Erf, Exp, Sqrt, Reciprocal,
     * Div by an activation, Softmax, LayerNormalization and MaxPool as
     * non-polynomial nodes (plaintext and training only; CKKS refuses them)
     * instead of reporting them. --approx replacements still apply first.
     */
    int keep_non_polynomial;
    /*
     * Graph inputs to treat as constants (the node tests' data for weights
     * and shape operands): n_bind entries of name -> data (borrowed).
     */
    int n_bind;
    const tsr_onnx_data *const *bind;
} tsr_onnx_import_opts;

/** Defaults: no replacement, polynomials fused, nothing bound. */
void tsr_onnx_import_opts_default(tsr_onnx_import_opts *o);

/**
 * Parse "OP=DEG@RANGE" (interval [-RANGE, RANGE]) or "OP=DEG@LO:HI" into *a.
 * TSR_ERR_INVALID_ARG naming what is wrong (unknown operator, degree outside
 * 1..63, empty or non-finite interval, Sqrt/Reciprocal/Div not on a positive
 * interval).
 */
tsr_status tsr_onnx_parse_approx(const char *spec, tsr_onnx_approx *a);

/**
 * The polynomial replacement Tessera suggests for a non-polynomial operator
 * (a sentence), or NULL when op_type is not one it knows.
 */
const char *tsr_onnx_suggestion(const char *op_type);

/**
 * Whether input `pos` of an ONNX operator must be a constant for Tessera
 * (weights of BatchNormalization, the divisor of Div, the exponent of Pow,
 * shape operands of Reshape / Slice / Squeeze / Unsqueeze / ReduceSum / Pad).
 */
int tsr_onnx_const_input(const char *op_type, int pos);

/**
 * Build a finalized graph from a validated model. Every node is mapped (see
 * docs/ONNX.md); every node that cannot be is listed in one
 * TSR_ERR_UNSUPPORTED message, one line per node: "'name' (Op): <why>;
 * <replacement>". Inputs and outputs must be FLOAT or DOUBLE tensors with a
 * shape (unknown dims are free). LayerNormalization becomes its parts
 * (ReduceMean, Sub, Mul, Sqrt, Reciprocal, ...: polynomial except the
 * inverse square root, which --approx LayerNormalization=DEG@LO:HI replaces
 * on the variance range). Operators replaced by opts->approx are
 * counted in *n_approximated (may be NULL): the graph is then lossy.
 */
tsr_status tsr_onnx_to_graph(const tsr_onnx_model *m, const tsr_onnx_import_opts *opts,
                             tsr_graph **out, int *n_approximated);

/* ---- export ---------------------------------------------------------------------- */

/**
 * ONNX model (opset 13, IR 7, producer "tessera") computing the same function
 * as the finalized graph g: constants become FLOAT initializers (doubles
 * rounded to float), POLY becomes Mul/Pow/Add, CHEBYSHEV its power-basis
 * form in the normalised variable, SQUARE Mul(x, x), auto_pad explicit pads.
 * Free with tsr_onnx_free.
 */
tsr_status tsr_onnx_from_graph(const tsr_graph *g, tsr_onnx_model **out);

#endif /* TSR_ONNX_GRAPH_H */
