/*
 * nn/model.h - the inference graph: what an imported model becomes after
 * import and simplification (batch norm folded, affine maps merged into
 * their neighbours, degree-2 activations rewritten as squares), with every
 * weight in double precision. It is the input of the compiler (nn/lower.h),
 * is stored inside plans, and has a plaintext reference executor used for
 * the agreement checks between encrypted and plaintext inference.
 *
 * Tensors are numbered; tensor 0 is the input. Every tensor has a
 * per-sample shape (c, h, w); flat tensors are (n, 1, 1). Data are NCHW
 * with the batch first, like ONNX. A DENSE layer reads its input flattened
 * in that order (there is no separate flatten layer).
 */
#ifndef TSR_NN_MODEL_H
#define TSR_NN_MODEL_H

#include "tessera/nn.h"

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define NN_NAME_MAX   64
#define NN_ORIGIN_MAX 160
#define NN_MAX_DEGREE 31 /* largest polynomial degree a plan may hold */
#define NN_MAX_RANK   7  /* per-sample rank of model inputs and outputs (graph rank - 1) */

typedef enum nn_kind {
    NN_CONV = 0, /* w (F, C, KH, KW); b (F) or a bias map (F, OH, OW) */
    NN_DENSE,    /* w (M, C*H*W) over the flattened input; b (M) */
    NN_AVGPOOL,  /* mean over KH x KW windows, strides, zero padding (see count_pad) */
    NN_POLY,     /* y = sum_k coef[ch][k] x^k; w = coef (nc, degree + 1), nc = 1 or C */
    NN_SQUARE,   /* y = x * x */
    NN_ADD,      /* y = in0 + in1 (same shapes) */
    NN_MUL,      /* y = in0 * in1 elementwise (same shapes; ciphertext x ciphertext, one level) */
    NN_SQMUL,    /* y = x * (x + d[ch]): w = d (nc values, nc = 1 or C); one level (rule 3's
                    product form of a near-linear degree-2 activation, nn/simplify.c) */
    NN_KIND_COUNT_
} nn_kind;

/** Short lower-case name of a kind ("conv", "square", ...). */
const char *nn_kind_name(nn_kind k);

/** 1 for the kinds reading two tensors (in[1] >= 0): ADD and MUL. */
static inline int nn_kind_binary(nn_kind k) {
    return k == NN_ADD || k == NN_MUL;
}

typedef struct nn_shape {
    int c, h, w;
} nn_shape;

static inline int64_t nn_numel(nn_shape s) {
    return (int64_t)s.c * s.h * s.w;
}

typedef struct nn_layer {
    nn_kind kind;
    char name[NN_NAME_MAX];
    char origin[NN_ORIGIN_MAX]; /* the ONNX nodes / rewrites it stands for */
    int in[2];                  /* input tensor ids; in[1] = -1 except ADD, MUL */
    int out;                    /* output tensor id */
    int kh, kw, sh, sw, ph, pw; /* CONV, AVGPOOL geometry */
    int count_pad;              /* AVGPOOL: 1 divide by KH*KW; 0 by the taps inside the image */
    int degree, nc;             /* POLY (nc also SQMUL) */
    int lossy;                  /* POLY approximating a non-polynomial activation */
    double bound; /* POLY / SQUARE / SQMUL: inputs expected in [-bound, bound] (0: unknown) */
    int64_t w_len, b_len;
    double *w; /* CONV/DENSE weights, POLY coefficients (owned) */
    double *b; /* CONV/DENSE bias: F or M values, or (CONV) a map of F*OH*OW (owned) */
} nn_layer;

enum { NN_OUTPUT_GUESS = 0, NN_OUTPUT_CLASSES = 1, NN_OUTPUT_VALUES = 2 };

struct tsr_nn_model {
    int n_layers, cap_layers;
    nn_layer *layers; /* topological order */
    int n_tensors, cap_tensors;
    nn_shape *shapes; /* per-sample shape of each tensor; [0] is the input */
    int output;       /* tensor id of the output */
    /* Client-side preprocessing of raw pixels p: x = (p * in_scale - in_mean) / in_std. */
    double in_scale, in_mean, in_std;
    int classes; /* output values per sample (output numel) */
    /* ONNX metadata tessera.output: NN_OUTPUT_GUESS (absent), NN_OUTPUT_CLASSES or
     * NN_OUTPUT_VALUES; overrides tsr_nn_model_is_classifier's guess from shapes. */
    int out_kind;
    /*
     * Per-sample shapes of the model's input and output as the imported
     * graph had them (batch dimension left out; rank 0 = unknown: then the
     * input is (c, h, w) and the output a vector). The data order is the
     * nn tensors' order (row-major), so these only name the dimensions.
     */
    int in_rank, out_rank;
    int64_t in_dims[NN_MAX_RANK], out_dims[NN_MAX_RANK];
    uint8_t source_hash[32]; /* BLAKE2b-256 of the ONNX file (zero if built by hand) */
    char source[256];        /* file name it was imported from */
    char notes[512];         /* rewrites and warnings from import (lossy approximations, ...) */
    /*
     * The graph the layers were lowered from (owned; NULL when the model was
     * built by hand) and whether nn_model_simplify ran after the lowering, with which rules:
     * 0 not simplified, NN_SIMPLIFY_V1 (rule 3 up to a shift of 4 x the bound: plans of
     * format 6 with flags 1), NN_SIMPLIFY_V2 (the shift budget in bits: flags 3) or
     * NN_SIMPLIFY_V3 (past the budget, the product form x (x + d): flags 7).
     * Plans of format 6 store the graph and redo both (nn/plan.c); a model
     * changed after import no longer matches its graph, and its plans fall
     * back to format 5 (nn_plan_assemble checks).
     */
    struct tsr_graph *graph;
    int simplified;
};

/** Empty model with input shape (c, h, w). */
tsr_status nn_model_create(tsr_nn_model **out, int c, int h, int w);
/**
 * Append a layer (copied; w and b are copied when non-NULL with w_len/b_len
 * values) and create its output tensor of shape oshape. *out_tensor receives
 * the new tensor id. Shapes are checked against the kind (TSR_ERR_SHAPE).
 */
tsr_status nn_model_add(tsr_nn_model *m, const nn_layer *proto, nn_shape oshape, int *out_tensor);
/** As nn_model_add, with the output shape computed from the kind. */
tsr_status nn_model_push(tsr_nn_model *m, const nn_layer *proto, int *out_tensor);
/** Check a whole model: shapes, sizes, finite weights, topological order, one output. */
tsr_status nn_model_validate(const tsr_nn_model *m);
/** Deep copy (the graph too). */
tsr_status nn_model_clone(const tsr_nn_model *m, tsr_nn_model **out);
/**
 * 1 when a and b compute the same thing the same way: the same layers (kinds,
 * names, geometry, weights bit for bit), tensor shapes, output and
 * input/output dimensions. Preprocessing, source and notes are not compared.
 */
int nn_model_same(const tsr_nn_model *a, const tsr_nn_model *b);
/** Layer index producing tensor t (-1 for the input). */
int nn_producer(const tsr_nn_model *m, int t);
/** Number of layer inputs reading tensor t (+1 if it is the output). */
int nn_consumers(const tsr_nn_model *m, int t);
/** Output spatial size of a window op: (n + 2 pad - k) / s + 1, or -1 if invalid. */
int nn_out_size(int n, int k, int s, int pad);
/** Divisor of average pooling L at output (oy, ox) for input shape is. */
int nn_pool_taps(const nn_layer *L, nn_shape is, int oy, int ox);
/** Remove layer i (its output tensor must be unused); tensors are renumbered. */
void nn_model_remove_layer(tsr_nn_model *m, int i);
/** Replace every read of tensor `from` by tensor `to`. */
void nn_model_rename_input(tsr_nn_model *m, int from, int to);

/** Shapes of a layer's single input / output. */
static inline nn_shape nn_in_shape(const tsr_nn_model *m, const nn_layer *L) {
    return m->shapes[L->in[0]];
}
static inline nn_shape nn_out_shape(const tsr_nn_model *m, const nn_layer *L) {
    return m->shapes[L->out];
}

/**
 * The plaintext reference: forward a batch x (B, input numel) in double
 * precision; out receives (B, output numel). Single-threaded per sample,
 * OpenMP over samples.
 */
tsr_status nn_model_forward(const tsr_nn_model *m, const double *x, int B, double *out);
/**
 * As nn_model_forward, also recording per tensor the largest |value| seen
 * (absmax has n_tensors entries; values are max-accumulated).
 */
tsr_status nn_model_forward_stats(const tsr_nn_model *m, const double *x, int B, double *out,
                                  double *absmax);

/* ---- import from the model graph (nn/lower.c) -------------------------------------- */

struct tsr_graph;
/**
 * Lower a finalized graph (one input of rank 2..5 whose dimension 0 is the
 * batch, one output) onto an inference model: every node maps onto
 * conv / dense / avgpool / poly / square / add layers, or is reported.
 * Nodes the layer kinds do not express directly but that are affine in
 * their activation inputs (Transpose, Slice, Pad, Concat, Reduce*, MatMul of
 * rank >= 3 by constants, convolutions and pools with asymmetric padding,
 * ...) become dense layers whose matrix is measured on the graph's
 * reference kernels. On TSR_ERR_UNSUPPORTED *report (if not NULL) receives
 * one line per node that cannot be lowered ("  'name' (kind): why\n"; free
 * with tsr_free) and *n_bad their number. The model is not simplified.
 */
tsr_status nn_model_from_graph(const struct tsr_graph *g, tsr_nn_model **out, char **report,
                               int *n_bad);

/*
 * A cap on what lowering an untrusted graph may build (a plan's graph: a few
 * hundred bytes per node can ask for a measured dense layer of 2^22 weights).
 * Lowering fails with TSR_ERR_FORMAT and sets `over` as soon as the layers'
 * weights and biases would exceed max_weights or their number max_layers
 * (checked before a dense layer is measured, and again after simplification).
 */
typedef struct nn_budget {
    int64_t max_weights;
    int max_layers;
    int64_t weights; /* charged so far */
    int over;        /* set when the cap refused */
} nn_budget;

/* nn_model_from_graph within *budget (NULL: no cap). */
tsr_status nn_model_from_graph_capped(const struct tsr_graph *g, nn_budget *budget,
                                      tsr_nn_model **out, char **report, int *n_bad);

/**
 * The model of a finalized graph as import makes it (nn/import.c): the
 * lowering, then nn_model_simplify_rules(rules) unless `rules` is 0, then validation, within
 * *budget when not NULL. The model does not keep the graph; preprocessing,
 * source and notes are left at their defaults for the caller.
 */
tsr_status nn_model_rebuild(const struct tsr_graph *g, int rules, nn_budget *budget,
                            tsr_nn_model **out);

/* Charge more_weights in more_layers new layers of m to *budget (NULL: no cap); both 0: charge
 * all of m's layers. TSR_ERR_FORMAT (and budget->over) when that exceeds it. */
tsr_status nn_budget_check(nn_budget *budget, const tsr_nn_model *m, int64_t more_weights,
                           int more_layers);

/* ---- simplification (nn/simplify.c) ---------------------------------------- */

/**
 * Rewrite the model into an equivalent one that is cheaper under CKKS
 * (exactly equal in real arithmetic): degree-1 polynomials are merged into
 * a neighbouring convolution / dense layer, average pooling followed by a
 * dense layer is merged into it, and each degree-2 activation between two
 * linear layers becomes a plain square (the shift into the producer's bias,
 * the leading coefficient and the constant into the consumer) or, when it is
 * nearly linear, a product x (x + d) (NN_SQMUL: a scale k into the producer,
 * a / k^2 and the constant into the consumer), so it costs one level
 * instead of two. Rules NN_SIMPLIFY_V3. Notes on what was done are appended
 * to m->notes.
 */
tsr_status nn_model_simplify(tsr_nn_model *m);

/* The rule sets of nn_model_simplify (a plan records the one its model was simplified with). */
#define NN_SIMPLIFY_V1 1 /* rule 3 while |b / 2a| <= 4 x the input bound */
#define NN_SIMPLIFY_V2 2 /* rule 3 while the shift costs <= 10 bits (nn/simplify.c) */
#define NN_SIMPLIFY_V3 3 /* V2, then past the shift budget the product form (NN_SQMUL); current */
/* Bits of q_0 a plan with an NN_SQMUL layer needs: the product form's values, up to 2^20 times
 * the scale (nn/simplify.c, SQMUL_MAX_PRODUCT), stay below 2^(bits of q_0 - 1) at level >= 1
 * with 4 bits of margin (nn/compile.c refuses a chain with less). */
#define NN_SQMUL_MIN_Q0_BITS 25

/** nn_model_simplify with the rules of `rules` (NN_SIMPLIFY_V1, V2 or V3). */
tsr_status nn_model_simplify_rules(tsr_nn_model *m, int rules);

#endif /* TSR_NN_MODEL_H */
