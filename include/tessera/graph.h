/*
 * tessera/graph.h - the one model graph: tensors of any rank in doubles,
 * named values, a DAG of nodes, shape inference and the plaintext reference
 * executor (docs/ONNX.md lists the node kinds with their ONNX semantics).
 *
 * A graph holds *values* (graph inputs, constants with their f64 data, and
 * node outputs), each with a unique name, and *nodes*, each of one kind with
 * its attributes, reading values and producing values. Nodes may be added in
 * any order; tsr_graph_finalize checks the graph (every input defined once,
 * no cycle, attributes in range, constant-only operands constant, shapes
 * consistent) and fixes a topological order. Only a finalized graph runs.
 *
 * Shapes: every value has a declared shape; a dimension of -1 in a graph
 * input is the batch size (or any size) chosen at run time. Shape inference
 * (tsr_graph_infer_shapes) computes concrete shapes from concrete input
 * shapes; finalize runs it with every free dimension set to 1.
 *
 * The executor computes in doubles, batch included (one call runs a whole
 * batch); it is the reference the encrypted compiler and the training engine
 * are compared against.
 *
 * Ownership: a graph owns its values, constants and nodes; strings and data
 * are copied in. Tensors from tsr_array_create or tsr_graph_run belong to
 * the caller (tsr_array_free). Thread-safety: a finalized graph is
 * immutable; tsr_graph_run may be called from several threads at once.
 */
#ifndef TESSERA_GRAPH_H
#define TESSERA_GRAPH_H

#include "tessera/common.h"

#include <stddef.h>
#include <stdint.h>

TSR_BEGIN_DECLS

#define TSR_ARRAY_MAX_RANK    8
#define TSR_ARRAY_MAX_NUMEL   ((int64_t)1 << 31) /* elements of one tensor */
#define TSR_GRAPH_MAX_SPATIAL 3                  /* spatial dimensions of Conv / pools */

/* ======================================================================== */
/* Tensors                                                                    */
/* ======================================================================== */

/** A dense row-major tensor of doubles (rank 0 = scalar, numel 1). */
typedef struct tsr_array {
    int rank;
    int64_t dims[TSR_ARRAY_MAX_RANK];
    size_t numel; /* product of dims */
    double *data; /* (numel), owned; never NULL (one element allocated when numel is 0) */
} tsr_array;

/**
 * Allocate a zero-filled tensor of the given shape (dims may be NULL when
 * rank is 0). TSR_ERR_SHAPE for a negative dimension, a rank above
 * TSR_ARRAY_MAX_RANK, or a dimension or a total of more than
 * TSR_ARRAY_MAX_NUMEL elements (an empty shape included: (0, 2^40) is refused).
 */
TSR_API tsr_status tsr_array_create(tsr_array **out, int rank, const int64_t *dims);
/** Deep copy. */
TSR_API tsr_status tsr_array_clone(tsr_array **out, const tsr_array *t);
/** Free a tensor (NULL is a no-op). */
TSR_API void tsr_array_free(tsr_array *t);
/** Product of dims; -1 on a negative dim, a dim or a product above TSR_ARRAY_MAX_NUMEL. */
TSR_API int64_t tsr_dims_numel(int rank, const int64_t *dims);
/** "(2, 3, 4)" into buf; dims of -1 print as "N". Returns buf. */
TSR_API const char *tsr_dims_str(int rank, const int64_t *dims, char *buf, size_t n);

/* ======================================================================== */
/* Node kinds and attributes                                                  */
/* ======================================================================== */

/**
 * Node kinds. Inputs are listed as (x, w, ...); "const" operands must be
 * constants when the graph is finalized. All elementwise binary kinds
 * broadcast as NumPy (and ONNX) do.
 */
typedef enum tsr_graph_kind {
    TSR_NODE_IDENTITY = 0, /**< (x): y = x (ONNX Identity, Dropout at inference) */
    TSR_NODE_ADD,          /**< (a, b): a + b */
    TSR_NODE_SUB,          /**< (a, b): a - b */
    TSR_NODE_MUL,          /**< (a, b): a * b (two activations allowed) */
    TSR_NODE_DIV,          /**< (a, const b): a / b */
    TSR_NODE_NEG,          /**< (x): -x */
    TSR_NODE_POW,          /**< (x, const e): x ^ e */
    TSR_NODE_SQUARE,       /**< (x): x * x */
    /**
     * (x, const c): power-basis polynomial y = sum_k c_k x^k; c of shape
     * (D+1) (one polynomial) or (C, D+1) (one per index along attrs.axis).
     */
    TSR_NODE_POLY,
    /**
     * (x, const c): Chebyshev series y = sum_k c_k T_k(u), u = (2x - lo - hi)
     * / (hi - lo) with attrs.lo < attrs.hi; c shaped as for POLY.
     */
    TSR_NODE_CHEBYSHEV,
    /** (x, const w[, const b]): ONNX Conv, x (N, C, spatial...), w (M, C/group, k...) */
    TSR_NODE_CONV,
    /** (a, b[, c]): ONNX Gemm: alpha * A' B' + beta * C, a and b of rank 2 */
    TSR_NODE_GEMM,
    /** (a, b): ONNX MatMul (NumPy matmul: rank >= 1, batch dims broadcast) */
    TSR_NODE_MATMUL,
    /** (x): ONNX AveragePool */
    TSR_NODE_AVGPOOL,
    /** (x): mean over every spatial dimension, kept as size 1 */
    TSR_NODE_GLOBAL_AVGPOOL,
    /** (x, const scale, const bias, const mean, const var): inference batch norm */
    TSR_NODE_BATCHNORM,
    /** (x): ONNX Flatten at attrs.axis */
    TSR_NODE_FLATTEN,
    /** (x): ONNX Reshape to attrs.shape (0 copies, -1 infers; attrs.allowzero) */
    TSR_NODE_RESHAPE,
    /** (x): ONNX Transpose by attrs.perm (empty: reverse) */
    TSR_NODE_TRANSPOSE,
    /** (x1, x2, ...): ONNX Concat along attrs.axis */
    TSR_NODE_CONCAT,
    /** (x): ONNX Slice with attrs.starts/ends/axes/steps (n_axes entries) */
    TSR_NODE_SLICE,
    /** (x): ONNX Squeeze of attrs.axes (none: every size-1 dimension) */
    TSR_NODE_SQUEEZE,
    /** (x): ONNX Unsqueeze at attrs.axes (positions in the output) */
    TSR_NODE_UNSQUEEZE,
    /** (x): ONNX ReduceSum over attrs.axes (none: all, or identity with noop) */
    TSR_NODE_REDUCE_SUM,
    /** (x): ONNX ReduceMean, as REDUCE_SUM */
    TSR_NODE_REDUCE_MEAN,
    /** (x): ONNX Pad, constant mode, attrs.pad_list and attrs.value */
    TSR_NODE_PAD,
    /*
     * Non-polynomial kinds: the plaintext executor runs them (ReLU teachers,
     * training), CKKS cannot (tsr_graph_kind_is_polynomial is 0 for them).
     */
    TSR_NODE_RELU,       /**< (x): max(x, 0) */
    TSR_NODE_LEAKY_RELU, /**< (x): x >= 0 ? x : attrs.alpha * x */
    TSR_NODE_SIGMOID,    /**< (x): 1 / (1 + exp(-x)) */
    TSR_NODE_TANH,       /**< (x) */
    TSR_NODE_ERF,        /**< (x) */
    TSR_NODE_EXP,        /**< (x) */
    TSR_NODE_SQRT,       /**< (x) */
    TSR_NODE_RECIPROCAL, /**< (x): 1 / x */
    TSR_NODE_SOFTMAX,    /**< (x): ONNX Softmax (opset 13) along attrs.axis */
    TSR_NODE_MAXPOOL,    /**< (x): ONNX MaxPool: attributes as AVGPOOL (+ dilations) */
    TSR_NODE_KIND_COUNT_
} tsr_graph_kind;

typedef enum tsr_graph_autopad {
    TSR_AUTOPAD_NOTSET = 0, /**< explicit pads */
    TSR_AUTOPAD_VALID,      /**< no padding */
    TSR_AUTOPAD_SAME_UPPER, /**< output = ceil(in / stride); extra padding at the end */
    TSR_AUTOPAD_SAME_LOWER  /**< as SAME_UPPER, extra padding at the beginning */
} tsr_graph_autopad;

/**
 * Attributes of a node (only the fields of its kind are read; start from
 * tsr_graph_attrs_default). Axes may be negative (counted from the end).
 */
typedef struct tsr_graph_attrs {
    int64_t axis; /**< FLATTEN (default 1), CONCAT, POLY/CHEBYSHEV per-channel axis (1) */
    int n_axes;   /**< SQUEEZE, UNSQUEEZE, REDUCE_*, SLICE: entries of axes */
    int64_t axes[TSR_ARRAY_MAX_RANK];
    int64_t starts[TSR_ARRAY_MAX_RANK], ends[TSR_ARRAY_MAX_RANK], steps[TSR_ARRAY_MAX_RANK];
    int keepdims;             /**< REDUCE_* (default 1) */
    int noop_with_empty_axes; /**< REDUCE_*: no axes means identity */
    int reduce_tail;          /**< REDUCE_* without axes: reduce dims attrs.axis .. rank-1 */
    int n_perm;               /**< TRANSPOSE: 0 or the rank */
    int64_t perm[TSR_ARRAY_MAX_RANK];
    int n_shape; /**< RESHAPE target rank */
    int64_t shape[TSR_ARRAY_MAX_RANK];
    int allowzero; /**< RESHAPE: 0 in shape means size 0 (not "copy") */
    /* CONV, AVGPOOL: n_spatial from the input rank - 2 (1..TSR_GRAPH_MAX_SPATIAL) */
    int n_kernel; /**< AVGPOOL: kernel rank (required); CONV: 0 = from the weights */
    int64_t kernel[TSR_GRAPH_MAX_SPATIAL];
    int64_t strides[TSR_GRAPH_MAX_SPATIAL];   /**< 0 = 1 */
    int64_t dilations[TSR_GRAPH_MAX_SPATIAL]; /**< 0 = 1 */
    int64_t pads[2 * TSR_GRAPH_MAX_SPATIAL];  /**< begins then ends; PAD: 2 * rank */
    tsr_graph_autopad auto_pad;
    int64_t group;         /**< CONV (default 1) */
    int ceil_mode;         /**< AVGPOOL */
    int count_include_pad; /**< AVGPOOL */
    int trans_a, trans_b;  /**< GEMM */
    double alpha, beta;    /**< GEMM (default 1, 1) */
    double epsilon;        /**< BATCHNORM (default 1e-5) */
    double lo, hi;         /**< CHEBYSHEV interval */
    double value;          /**< PAD constant */
    double leak;           /**< LEAKY_RELU slope for x < 0 (ONNX alpha, default 0.01) */
    int n_pads;            /**< PAD: entries of pads (2 * rank) */
    int64_t pad_list[2 * TSR_ARRAY_MAX_RANK];
} tsr_graph_attrs;

/** Defaults: axis 1, keepdims 1, group 1, alpha = beta = 1, epsilon 1e-5, rest 0. */
TSR_API void tsr_graph_attrs_default(tsr_graph_attrs *a);
/** Lower-case kind name ("conv", "matmul", ...). */
TSR_API const char *tsr_graph_kind_name(tsr_graph_kind k);
/**
 * 1 when the kind is a polynomial map of its non-constant inputs (so CKKS
 * can evaluate it exactly): every kind up to TSR_NODE_PAD; 0 for RELU and
 * the kinds after it.
 */
TSR_API int tsr_graph_kind_is_polynomial(tsr_graph_kind k);

/* ======================================================================== */
/* Graphs                                                                     */
/* ======================================================================== */

typedef struct tsr_graph tsr_graph;

/** Empty graph. Free with tsr_graph_free. */
TSR_API tsr_status tsr_graph_create(tsr_graph **out);
/** Free a graph (NULL is a no-op). */
TSR_API void tsr_graph_free(tsr_graph *g);

/**
 * Declare a graph input of the given shape (-1 = chosen at run time; any
 * other dimension is 0..TSR_ARRAY_MAX_NUMEL, TSR_ERR_SHAPE otherwise).
 * Inputs are fed to tsr_graph_run in declaration order. Names are unique
 * across all values (TSR_ERR_INVALID_ARG otherwise).
 */
TSR_API tsr_status tsr_graph_add_input(tsr_graph *g, const char *name, int rank,
                                       const int64_t *dims);
/** Add a constant value (data copied). */
TSR_API tsr_status tsr_graph_add_const(tsr_graph *g, const char *name, const tsr_array *t);
/**
 * Add a node of the given kind reading values in[0..n_in) (names of values
 * that exist now or are added later, "" for an omitted optional input) and
 * producing one new value named out. attrs NULL = defaults. The node name
 * (may be NULL: then out) is used in messages.
 */
TSR_API tsr_status tsr_graph_add_node(tsr_graph *g, tsr_graph_kind kind, const char *name, int n_in,
                                      const char *const *in, const char *out,
                                      const tsr_graph_attrs *attrs);
/** Mark a value as a graph output (outputs are returned in this order). */
TSR_API tsr_status tsr_graph_add_output(tsr_graph *g, const char *name);
/**
 * Check the whole graph and fix the execution order (see the file comment).
 * Errors name the node: TSR_ERR_FORMAT (undefined or duplicate values, a
 * cycle, an input count or attribute out of range, a non-constant operand
 * that must be constant), TSR_ERR_SHAPE (shapes that do not fit), and
 * TSR_ERR_UNSUPPORTED. After success the graph is immutable.
 */
TSR_API tsr_status tsr_graph_finalize(tsr_graph *g);

/** Counts (any time). */
TSR_API int tsr_graph_num_inputs(const tsr_graph *g);
TSR_API int tsr_graph_num_outputs(const tsr_graph *g);
TSR_API int tsr_graph_num_nodes(const tsr_graph *g);
/** Name of input / output i, or NULL when out of range. */
TSR_API const char *tsr_graph_input_name(const tsr_graph *g, int i);
TSR_API const char *tsr_graph_output_name(const tsr_graph *g, int i);
/**
 * Declared (finalize: inferred with free dimensions 1) shape of a value;
 * TSR_ERR_NOT_FOUND for an unknown name. dims has room for TSR_ARRAY_MAX_RANK.
 */
TSR_API tsr_status tsr_graph_value_shape(const tsr_graph *g, const char *name, int *rank,
                                         int64_t *dims);
/** Constant data of a value, or NULL when it is not a constant. */
TSR_API const tsr_array *tsr_graph_const(const tsr_graph *g, const char *name);
/** Node i in execution order (finalized graph): kind, name, inputs and output. */
TSR_API tsr_graph_kind tsr_graph_node_kind(const tsr_graph *g, int i);
TSR_API const char *tsr_graph_node_name(const tsr_graph *g, int i);
TSR_API int tsr_graph_node_num_inputs(const tsr_graph *g, int i);
TSR_API const char *tsr_graph_node_input(const tsr_graph *g, int i, int k); /* "" if omitted */
TSR_API const char *tsr_graph_node_output(const tsr_graph *g, int i);
TSR_API const tsr_graph_attrs *tsr_graph_node_attrs(const tsr_graph *g, int i);

/**
 * Shapes of every graph output for concrete input shapes (in_dims[i] has
 * in_rank[i] entries, none -1); out_rank/out_dims have room for
 * tsr_graph_num_outputs entries (out_dims rows of TSR_ARRAY_MAX_RANK).
 * TSR_ERR_SHAPE naming the node whose inputs do not fit.
 */
TSR_API tsr_status tsr_graph_infer_shapes(const tsr_graph *g, const int *in_rank,
                                          const int64_t (*in_dims)[TSR_ARRAY_MAX_RANK],
                                          int *out_rank, int64_t (*out_dims)[TSR_ARRAY_MAX_RANK]);

/**
 * Run the finalized graph in doubles on inputs[0..num_inputs) (shapes must
 * match the declared ones where those are not -1) and return newly
 * allocated outputs[0..num_outputs) (caller frees each with
 * tsr_array_free). Errors: TSR_ERR_SHAPE (input shapes), TSR_ERR_NOMEM.
 * Matrix products and convolutions use OpenBLAS (dgemm); the naive kernels
 * stay as references (tsr_graph_set_naive).
 */
TSR_API tsr_status tsr_graph_run(const tsr_graph *g, const tsr_array *const *inputs,
                                 tsr_array **outputs);

/**
 * Polynomial recognition: a new finalized graph in which every maximal
 * subgraph of ADD / SUB / MUL / DIV (by a constant) / NEG / POW (constant
 * integer exponent) / SQUARE computing a polynomial of one value x (degree
 * <= 31; constants scalar or per channel along axis 1) is one POLY node
 * (SQUARE for exactly x*x), named after the node whose output it replaces.
 * Values keep their names; unused constants are dropped. g is unchanged.
 */
TSR_API tsr_status tsr_graph_fuse_polynomials(const tsr_graph *g, tsr_graph **out);

/**
 * Serialise a finalized graph (values in creation order, f64 constants,
 * every attribute; layout in graph/graph_io.c and docs/INFERENCE.md) into a
 * new buffer (free with tsr_graph_bytes_free). TSR_ERR_INVALID_ARG for a
 * graph that is not finalized.
 */
TSR_API tsr_status tsr_graph_to_bytes(const tsr_graph *g, uint8_t **buf, size_t *len);
/**
 * Read a graph written by tsr_graph_to_bytes: every field validated, sizes
 * checked before allocating, the result finalized (same value and node
 * numbering and execution order as the graph written). TSR_ERR_FORMAT /
 * TSR_ERR_VERSION with a message for bad input, never a crash
 * (fuzz/fuzz_graph_read.c).
 */
TSR_API tsr_status tsr_graph_from_bytes(tsr_graph **out, const uint8_t *buf, size_t len);
/** Free a buffer from tsr_graph_to_bytes (NULL is a no-op). */
TSR_API void tsr_graph_bytes_free(uint8_t *buf);
/** Deep copy of a finalized graph (finalized). */
TSR_API tsr_status tsr_graph_clone(const tsr_graph *g, tsr_graph **out);

/** Process-wide: 1 = use the naive loops instead of dgemm (tests compare both). */
TSR_API void tsr_graph_set_naive(int naive);

TSR_END_DECLS

#endif /* TESSERA_GRAPH_H */
