/*
 * train/model.h - a trainable model: a list of layers in topological order
 * over numbered activation tensors (tensor 0 is the input), with every
 * trainable parameter in one allocation (and its gradient in another), as in
 * llm.c. This is the API the inference (src/nn) and distributed-learning
 * (src/fl) modules build on:
 *
 *   tsr_model *m;
 *   tsr_model_build(&m, "cryptonets", &act, seed);    // or builder calls below
 *   tsr_model_set_training(m, 1);
 *   tsr_model_forward(m, x, B);                        // x (B, C, H, W)
 *   tsr_loss_softmax_ce(&loss, dlogits, tsr_model_output(m), y, B, K);   (train/loss.h)
 *   tsr_model_zero_grad(m);
 *   tsr_model_backward(m, dlogits, B);
 *   ... optimizer step on tsr_model_params(m) / tsr_model_grads(m) ...
 *
 * Shapes: a tensor has a per-sample shape (c, h, w); dense/flattened tensors
 * are (features, 1, 1). Memory is NCHW with the batch first. Activations
 * are allocated for the largest batch seen so far.
 *
 * Threads: forward/backward split the batch in one slice per OpenMP thread
 * (tsr_get_num_threads()); kernels are single-threaded (OpenBLAS is set to
 * one thread) and per-slice parameter gradients and batch-norm statistics are
 * reduced in slice order, so a given seed and thread count give bitwise
 * identical results run after run. Different thread counts differ by float
 * rounding only. A model is not safe to use from two threads at once.
 */
#ifndef TSR_TRAIN_MODEL_H
#define TSR_TRAIN_MODEL_H

#include "tessera/common.h"
#include "core/rng.h"
#include "train/layers.h"
#include "train/poly.h"

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define TSR_NAME_MAX 64

typedef enum tsr_layer_kind {
    TSR_LAYER_DENSE = 0, /* in (IC,1,1) -> out (OC,1,1); params W (OC, IC), b (OC) */
    TSR_LAYER_CONV,      /* params W (OC, C, KH, KW), b (OC) */
    TSR_LAYER_AVGPOOL,   /* count_include_pad = 0 */
    TSR_LAYER_MAXPOOL,   /* teachers only: not HE-friendly */
    TSR_LAYER_GAP,       /* (C, H, W) -> (C, 1, 1) */
    TSR_LAYER_BATCHNORM, /* params gamma (C), beta (C); state running mean (C), var (C) */
    TSR_LAYER_FLATTEN,   /* (C, H, W) -> (C·H·W, 1, 1), a copy */
    TSR_LAYER_ADD,       /* residual: out = in0 + in1, same shapes */
    TSR_LAYER_DROPOUT,   /* inverted dropout, identity in evaluation */
    TSR_LAYER_RELU,
    TSR_LAYER_GELU,
    TSR_LAYER_POLY, /* params coef (NC, degree + 1), NC = 1 or C */
    /* Reserved for the transformer issue: embedding, layer norm, attention,
     * power-softmax. The tensor shape (c, h, w) can hold (tokens, dim, 1). */
    TSR_LAYER_KIND_COUNT_
} tsr_layer_kind;

/** Short lower-case name of a kind ("conv", "poly", ...). */
const char *tsr_layer_kind_name(tsr_layer_kind kind);

typedef struct tsr_shape {
    int c, h, w;
} tsr_shape;

static inline size_t tsr_shape_numel(tsr_shape s) {
    return (size_t)s.c * (size_t)s.h * (size_t)s.w;
}

/** What activation a builder should insert. */
typedef enum tsr_act_kind { TSR_ACT_RELU = 0, TSR_ACT_GELU, TSR_ACT_POLY } tsr_act_kind;

typedef struct tsr_act_spec {
    tsr_act_kind kind;
    int degree;       /* poly: 1 .. TSR_POLY_MAX_DEGREE */
    int per_channel;  /* poly: one polynomial per channel instead of per layer */
    float bound;      /* poly: valid input range [-bound, bound] (fit interval, range loss) */
    tsr_poly_fit fit; /* poly: initial fit of ReLU on [-bound, bound] */
} tsr_act_spec;

/** Parse "relu", "gelu" or "polyD" (D = degree) into spec (other fields defaulted). */
tsr_status tsr_act_parse(const char *name, tsr_act_spec *spec);
/** Default spec: relu; for poly: per layer, bound 4, least squares. */
void tsr_act_default(tsr_act_spec *spec, tsr_act_kind kind, int degree);
/** "relu", "gelu", "poly2", ... (static buffer per call site is not used: writes into buf). */
const char *tsr_act_name(const tsr_act_spec *spec, char *buf, size_t n);

/** One layer. Parameter offsets index tsr_model.params (and .grads). */
typedef struct tsr_layer {
    tsr_layer_kind kind;
    char name[TSR_NAME_MAX];
    int in[2];        /* input tensor ids; in[1] = -1 except for ADD */
    int out;          /* output tensor id */
    tsr_conv_geom g;  /* CONV, AVGPOOL, MAXPOOL geometry */
    int has_bias;     /* DENSE, CONV */
    float eps;        /* BATCHNORM epsilon */
    float momentum;   /* BATCHNORM running-stat momentum (PyTorch convention, 0.1) */
    float p;          /* DROPOUT probability */
    int degree, nc;   /* POLY degree and number of polynomials (1 or C) */
    float bound;      /* POLY valid input range [-bound, bound] */
    tsr_poly_fit fit; /* POLY initial fit of ReLU used by tsr_model_init */
    /* parameters: [0] weight / gamma / coef, [1] bias / beta; len 0 = none */
    size_t p_off[2], p_len[2];
    size_t s_off, s_len; /* state (BATCHNORM running mean then var) in tsr_model.state */
    /* statistics of activation inputs (POLY, RELU, GELU), updated by every forward
     * with tracking on (see tsr_model_track_ranges): */
    float seen_min, seen_max;
    uint64_t seen_count, seen_outside; /* inputs seen, and those outside [-bound, bound] */
    double range_sum;                  /* Σ relu(|x| - bound)² over the last training forward */
    double t_fwd, t_bwd;               /* seconds spent in this layer when m->profile is set */
    int alias; /* FLATTEN sharing its input's buffers (it is the only reader; run.c) */
    /* runtime buffers (owned by the model) */
    float *aux;    /* BATCHNORM: batch mean (C), rstd (C) of the last training forward */
    int32_t *idx;  /* MAXPOOL argmax (B, C, OH, OW) */
    uint8_t *mask; /* DROPOUT mask */
} tsr_layer;

typedef struct tsr_tensor {
    tsr_shape shape; /* per sample */
    float *act;      /* (cap_batch, shape) activations */
    float *grad;     /* (cap_batch, shape) gradient of the loss */
    int producer;    /* layer that writes it, -1 for the input */
} tsr_tensor;

/** A named block of parameters (for ONNX export, weight decay and the flat vector). */
typedef struct tsr_param_block {
    char name[TSR_NAME_MAX + 8]; /* "<layer>.weight", "<layer>.bias", "<layer>.coef", ... */
    int layer;
    int slot; /* 0 or 1: p_off index in the layer */
    size_t off, len;
    int decay; /* weight decay applies (conv/dense weights only) */
    int ndims;
    int64_t dims[4];
} tsr_param_block;

typedef struct tsr_model {
    int n_layers, cap_layers;
    tsr_layer *layers;
    int n_tensors, cap_tensors;
    tsr_tensor *tensors; /* tensors[0] is the input */
    int output;          /* tensor id of the output (logits), -1 until finished */
    int n_blocks, cap_blocks;
    tsr_param_block *blocks;
    size_t n_params, n_state;
    float *params; /* (n_params) all trainable parameters, one allocation */
    float *grads;  /* (n_params) their gradients */
    float *state;  /* (n_state) non-trainable state (batch-norm running stats) */
    int finished;
    int training;       /* 1: batch statistics, dropout, range penalties */
    int track_ranges;   /* record activation-input ranges (layer.seen_*) */
    int input_grad;     /* backward also computes the input tensor's gradient */
    int profile;        /* accumulate per-layer wall time into layer.t_fwd / t_bwd */
    float range_weight; /* weight W of the range loss (0 = off) */
    double range_loss;  /* L_range of the last training forward (see tsr_model_forward) */
    /* execution buffers (train/run.c) */
    int cap_batch;        /* batch the buffers hold */
    float *arena;         /* activations and their gradients */
    int threads;          /* number of batch slices the scratch is laid out for */
    size_t thread_floats; /* per-thread scratch size in floats */
    float *scratch;       /* (threads, thread_floats): see run.c */
    tsr_prng rng;         /* dropout masks */
    char arch[32];        /* name the model was built from (or "onnx") */
    tsr_act_spec act;     /* activation it was built with */
} tsr_model;

/* ---- building ---------------------------------------------------------- */

/** New empty model whose input tensor (id 0) has per-sample shape (C, H, W). */
tsr_status tsr_model_create(tsr_model **out, int C, int H, int W);
/** Free a model (NULL is a no-op). */
void tsr_model_free(tsr_model *m);

/*
 * Builder calls: each appends one layer reading tensor `in` and writes the
 * new output tensor id to *out. They fail with TSR_ERR_SHAPE (message naming
 * the layer) when shapes do not fit, TSR_ERR_INVALID_ARG for bad settings.
 * A NULL or empty name gets "<kind><n>".
 */
tsr_status tsr_model_add_dense(tsr_model *m, int *out, const char *name, int in, int units,
                               int bias);
tsr_status tsr_model_add_conv(tsr_model *m, int *out, const char *name, int in, int oc, int kh,
                              int kw, int stride_h, int stride_w, int pad_h, int pad_w, int bias);
tsr_status tsr_model_add_pool(tsr_model *m, int *out, const char *name, tsr_layer_kind kind, int in,
                              int kh, int kw, int stride_h, int stride_w, int pad_h, int pad_w);
tsr_status tsr_model_add_gap(tsr_model *m, int *out, const char *name, int in);
tsr_status tsr_model_add_batchnorm(tsr_model *m, int *out, const char *name, int in, float eps,
                                   float momentum);
tsr_status tsr_model_add_flatten(tsr_model *m, int *out, const char *name, int in);
tsr_status tsr_model_add_residual(tsr_model *m, int *out, const char *name, int a, int b);
tsr_status tsr_model_add_dropout(tsr_model *m, int *out, const char *name, int in, float p);
/** ReLU, GELU or a polynomial as described by spec (coefficients set by tsr_model_init). */
tsr_status tsr_model_add_act(tsr_model *m, int *out, const char *name, int in,
                             const tsr_act_spec *spec);

/**
 * Finish building: tensor `output` is the model output; allocates the
 * parameter, gradient and state vectors (zeroed; BN gamma = 1, var = 1).
 */
tsr_status tsr_model_finish(tsr_model *m, int output);

/**
 * Initialise parameters from a seeded stream: weights and biases
 * U(-1/sqrt(fan_in), 1/sqrt(fan_in)) (PyTorch's default), batch norm
 * gamma = 1, beta = 0, running stats (0, 1), polynomial coefficients from the
 * layer's fit of ReLU on [-bound, bound] (layer.fit).
 */
tsr_status tsr_model_init(tsr_model *m, uint64_t seed);

/**
 * Build an architecture by name for input (1, 28, 28) with 10 classes and
 * initialise it from seed (act decides ReLU / GELU / polynomial; batch norm
 * sits before every activation, pooling is average pooling):
 *   "mlp"         flatten -> dense 100 -> act -> dense 10 (784-100-10)
 *   "cryptonets"  conv 5x5/2 pad 1 x5 -> BN -> act -> dense 100 -> BN -> act
 *                 -> dense 10 (CryptoNets, Gilad-Bachrach et al. 2016)
 *   "lenet"       conv 5x5 pad 2 x32 -> BN -> act -> avgpool 2 -> conv 5x5 x64
 *                 -> BN -> act -> avgpool 2 -> dense 256 -> BN -> act -> dense 10
 *   "resnet"      conv 3x3 x16 -> BN -> act -> avgpool 2 -> 3 basic residual
 *                 blocks (16, 32 stride 2, 32) -> global average pool -> dense 10
 *   "conv8"       conv 3x3 x8 -> BN -> act -> avgpool 2 -> conv 3x3 x16 -> BN
 *                 -> act -> avgpool 2 -> dense 10 (the benchmark CNN)
 * Unknown names give TSR_ERR_NOT_FOUND listing the known ones.
 */
tsr_status tsr_model_build(tsr_model **out, const char *arch, const tsr_act_spec *act,
                           uint64_t seed);
/** Names of the architectures, NULL-terminated. */
const char *const *tsr_model_arch_names(void);

/** Deep copy (layers, parameters, state; not activations or gradients). */
tsr_status tsr_model_clone(tsr_model **out, const tsr_model *src);

/* ---- running ----------------------------------------------------------- */

/** Free the activation buffers (they are re-made by the next forward). */
void tsr_model_release_buffers(tsr_model *m);
/** Training mode (batch statistics, dropout, range penalty) on/off. */
void tsr_model_set_training(tsr_model *m, int training);
/** Seed the dropout stream. */
void tsr_model_seed(tsr_model *m, uint64_t seed);
/**
 * Record, for every activation layer, the min/max of its inputs and how many
 * fall outside [-bound, bound] (layer.seen_*). reset != 0 clears the counts.
 */
void tsr_model_track_ranges(tsr_model *m, int on, int reset);

/**
 * Forward a batch: x (B, C, H, W) as the input tensor's shape. The output is
 * then at tsr_model_output(m) (B, output numel). In training mode with
 * range_weight > 0 (or always, for monitoring) m->range_loss is set to
 * L_range = (1/L) Σ_l mean_i relu(|x_li| - bound_l)² over the L polynomial
 * layers' inputs. Fails with TSR_ERR_NOMEM if buffers cannot grow,
 * TSR_ERR_INVALID_ARG for B < 1 or an unfinished model.
 */
tsr_status tsr_model_forward(tsr_model *m, const float *x, int B);
/** The output activations of the last forward (B, tsr_model_output_size(m)). */
const float *tsr_model_output(const tsr_model *m);
size_t tsr_model_output_size(const tsr_model *m);
/** Activations of tensor t after the last forward (B, numel of its shape). */
const float *tsr_model_activation(const tsr_model *m, int t);
/**
 * Gradient w.r.t. tensor t after the last backward (B, numel). For the
 * input (t = 0) only when m->input_grad was set before the backward.
 */
const float *tsr_model_tensor_grad(const tsr_model *m, int t);

/** Set all parameter gradients to 0. */
void tsr_model_zero_grad(tsr_model *m);
/**
 * Backward after a training-mode forward of the same batch: dout (B,
 * output numel) is the gradient of the loss w.r.t. the output. Accumulates
 * into tsr_model_grads(m); when m->range_weight > 0 adds the range-loss
 * gradient W · dL_range. Input gradients are not computed.
 */
tsr_status tsr_model_backward(tsr_model *m, const float *dout, int B);

/* ---- parameters as flat vectors ---------------------------------------- */

/** Number of trainable parameters. */
size_t tsr_model_num_params(const tsr_model *m);
/** The parameter / gradient vectors in place (n_params floats; layout = blocks order). */
float *tsr_model_params(tsr_model *m);
float *tsr_model_grads(tsr_model *m);
/** Copy the parameters out / in (n = tsr_model_num_params floats). */
void tsr_model_get_params(const tsr_model *m, float *out);
void tsr_model_set_params(tsr_model *m, const float *in);
/** Same for the non-trainable state (batch-norm running statistics). */
size_t tsr_model_num_state(const tsr_model *m);
void tsr_model_get_state(const tsr_model *m, float *out);
void tsr_model_set_state(tsr_model *m, const float *in);

/** Index of the layer called name, or -1. */
int tsr_model_find_layer(const tsr_model *m, const char *name);
/** Per-layer forward/backward time table (needs m->profile set while running). */
void tsr_model_print_profile(const tsr_model *m, FILE *fp);
/** One line per layer (kind, name, shapes, parameters) to fp. */
void tsr_model_print(const tsr_model *m, FILE *fp);

/**
 * Weight and bias of a CONV/DENSE layer with a directly following
 * BATCHNORM (in evaluation mode) folded in: W' = W·γ/σ per output channel,
 * b' = (b - μ)·γ/σ + β. w_out (p_len[0]), b_out (OC). bn = index of the
 * batch-norm layer or -1 for a plain copy.
 */
void tsr_model_fold_bn(const tsr_model *m, int layer, int bn, float *w_out, float *b_out);

#endif /* TSR_TRAIN_MODEL_H */
