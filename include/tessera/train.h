/*
 * tessera/train.h - training on the one model graph (tessera/graph.h):
 * forward with saved activations and backward for every node kind, the
 * graph's constants as trainable parameters (one float vector, as in
 * llm.c), MSE / softmax cross-entropy / distillation losses, SGD / Adam,
 * the range loss on polynomial inputs, and the training loop.
 *
 *   tsr_trainer *t;
 *   tsr_trainer_create(&t, graph);           // a copy of the graph is trained
 *   tsr_train_opts o; tsr_train_opts_default(&o);
 *   o.epochs = 5;
 *   tsr_trainer_fit(t, &o, x, y, NULL, NULL, NULL);   // x (N, ...), y labels (N) or targets
 *   tsr_trainer_graph(t, &trained);          // the graph with the trained constants
 *
 * Which constants train: a constant is a parameter when some node reads it
 * as a weight (Conv weight and bias, Gemm B and C, a constant MatMul
 * operand, BatchNormalization scale and bias, polynomial and Chebyshev
 * coefficients, a non-scalar constant operand of Add / Sub / Mul) and no
 * node reads it as a fixed operand (batch-norm mean and variance, Pow
 * exponents, Div divisors, Pad values). tsr_trainer_set_trainable changes
 * that per constant.
 *
 * Batches: the first dimension of the (single) graph input and of the
 * output is the batch, and samples must not interact (no node mixes rows
 * of the batch). Batch norm runs in inference mode (fixed mean and
 * variance, trainable scale and bias).
 *
 * Threads: forward and backward split the batch into one slice per OpenMP
 * thread (tsr_get_num_threads); each slice computes in doubles with the
 * graph's kernels (dgemm, im2col) and the parameter gradients of the slices
 * are added in slice order, so a seed and a thread count give bitwise
 * identical results. A trainer is not safe to use from two threads at once.
 *
 * Memory: a trainer holds the last forward's activations (doubles, for the
 * backward), also after tsr_trainer_fit / tsr_trainer_evaluate return, until
 * the next forward, tsr_trainer_set_trainable or tsr_trainer_free. The next
 * forward writes into those arrays where the sizes match instead of
 * allocating, and frees the rest.
 */
#ifndef TESSERA_TRAIN_H
#define TESSERA_TRAIN_H

#include "tessera/common.h"
#include "tessera/graph.h"

#include <stddef.h>
#include <stdint.h>

TSR_BEGIN_DECLS

typedef struct tsr_trainer tsr_trainer;

/**
 * New trainer over a copy of the finalized graph g (g is not kept). g must
 * have exactly one input and one output, both of rank >= 1 with the batch
 * first. TSR_ERR_INVALID_ARG otherwise. Free with tsr_trainer_free.
 */
TSR_API tsr_status tsr_trainer_create(tsr_trainer **out, const tsr_graph *g);
/** Free (NULL is a no-op). */
TSR_API void tsr_trainer_free(tsr_trainer *t);

/**
 * Make the constant `name` trainable (on = 1) or fixed (0); the parameter
 * vector is re-laid out and the optimiser state of tsr_trainer_fit starts
 * afresh. TSR_ERR_NOT_FOUND for a name that is not a constant.
 */
TSR_API tsr_status tsr_trainer_set_trainable(tsr_trainer *t, const char *name, int on);
/** 1 when the constant `name` is trainable. */
TSR_API int tsr_trainer_is_trainable(const tsr_trainer *t, const char *name);
/** Number of trainable parameters (floats). */
TSR_API size_t tsr_trainer_num_params(const tsr_trainer *t);
/**
 * The parameter and gradient vectors (num_params floats each; constants in
 * graph order). Writing the parameters changes the model from the next
 * forward on.
 */
TSR_API float *tsr_trainer_params(tsr_trainer *t);
TSR_API float *tsr_trainer_grads(tsr_trainer *t);
/** Set every gradient to 0 (backward accumulates). */
TSR_API void tsr_trainer_zero_grad(tsr_trainer *t);

/**
 * Forward a batch x (B, ...) keeping every activation for the backward;
 * *y (may be NULL) points at the output (B, ...), owned by the trainer and
 * valid until the next forward. TSR_ERR_SHAPE when x does not fit the
 * graph input or the output's first dimension is not B.
 */
TSR_API tsr_status tsr_trainer_forward(tsr_trainer *t, const tsr_array *x, const tsr_array **y);
/**
 * Backward of the last forward: dy has the output's shape (gradient of the
 * loss w.r.t. the output). Accumulates into tsr_trainer_grads; when the
 * range loss is on (tsr_trainer_set_range_weight) adds its gradient too.
 */
TSR_API tsr_status tsr_trainer_backward(tsr_trainer *t, const tsr_array *dy);
/** Gradient w.r.t. the input of the last backward (x's shape). */
TSR_API const tsr_array *tsr_trainer_input_grad(const tsr_trainer *t);

/**
 * Range loss (Baruch et al. 2023, arXiv 2304.14836) over the inputs of the
 * polynomial nodes (POLY, CHEBYSHEV) that have a bound:
 *   L_range = (1/L) sum_l mean_i relu(|x_li| - B_l)^2,
 * added as weight * L_range to the loss of tsr_trainer_fit and to the
 * gradient of tsr_trainer_backward. Bounds default to the Chebyshev
 * interval's half-width (0 = none for POLY); set them by node name
 * (TSR_ERR_NOT_FOUND when no node has it, TSR_ERR_INVALID_ARG when several
 * do: imported names need not be unique) or by position.
 */
TSR_API tsr_status tsr_trainer_set_bound(tsr_trainer *t, const char *node, double bound);
/** As tsr_trainer_set_bound for node i in execution order (TSR_ERR_NOT_FOUND out of range). */
TSR_API tsr_status tsr_trainer_set_node_bound(tsr_trainer *t, int i, double bound);
TSR_API void tsr_trainer_set_range_weight(tsr_trainer *t, double weight);
/** L_range of the last forward (0 when no polynomial has a bound). */
TSR_API double tsr_trainer_range_loss(const tsr_trainer *t);

/**
 * Activation ranges: while tracking is on, every forward records for each
 * node the min and max of its first input, and for the polynomials with a
 * bound how many entries fell outside it. reset clears the records.
 * tsr_trainer_node_range gives them for node i in execution order
 * (TSR_ERR_NOT_FOUND before anything was recorded).
 */
TSR_API void tsr_trainer_track_ranges(tsr_trainer *t, int on, int reset);
TSR_API tsr_status tsr_trainer_node_range(const tsr_trainer *t, int i, double *lo, double *hi);
/**
 * Out-of-range counts of node i (execution order) since the last reset: how
 * many entries of its first input fell outside its bound (see
 * tsr_trainer_node_bound), out of how many were seen; 0 of 0 for a node
 * without a bound. TSR_ERR_NOT_FOUND as tsr_trainer_node_range.
 */
TSR_API tsr_status tsr_trainer_node_outside(const tsr_trainer *t, int i, uint64_t *outside,
                                            uint64_t *count);
/**
 * The valid input interval [lo, hi] of polynomial node i (execution order):
 * the Chebyshev interval or the bound set by tsr_trainer_set_bound.
 * TSR_ERR_NOT_FOUND when the node has none.
 */
TSR_API tsr_status tsr_trainer_node_bound(const tsr_trainer *t, int i, double *lo, double *hi);

/** The graph with the current parameters, finalized (caller frees). */
TSR_API tsr_status tsr_trainer_graph(const tsr_trainer *t, tsr_graph **out);

/* ---- the training loop ---------------------------------------------------- */

typedef enum tsr_train_loss {
    TSR_TRAIN_LOSS_AUTO = 0, /**< CE when y is one label per sample, else MSE */
    TSR_TRAIN_LOSS_MSE,      /**< mean over all entries of (out - y)^2 */
    TSR_TRAIN_LOSS_CE        /**< softmax cross-entropy, output (B, K), y labels (B) */
} tsr_train_loss;

typedef struct tsr_train_opts {
    int epochs;               /**< 1 */
    int batch;                /**< 64 */
    const char *optim;        /**< "adam" (or "sgd", "adamw") */
    double lr;                /**< 1e-3 */
    double weight_decay;      /**< 0 */
    const char *schedule;     /**< "cosine" (or "const", "step") */
    uint64_t seed;            /**< 1: shuffling */
    tsr_train_loss loss;      /**< AUTO */
    const tsr_graph *teacher; /**< distil from this graph (CE only) or NULL */
    double kd_temp;           /**< 4 */
    double kd_alpha;          /**< 0.7; 1 = no labels needed */
    double range_weight;      /**< 0 */
    int max_batches;          /**< stop each epoch after this many (0 = all) */
    int progress;             /**< progress line on stderr */
} tsr_train_opts;

TSR_API void tsr_train_opts_default(tsr_train_opts *o);

/** What a training run ended with (test fields NaN without test data). */
typedef struct tsr_train_report {
    double train_loss;          /**< mean loss of the last epoch */
    double range_loss;          /**< mean L_range of the last epoch */
    double test_loss, test_acc; /**< acc: classification only (else NaN) */
    int steps;
} tsr_train_report;

/**
 * Train on x (N, ...) and y: labels (N) (integral values) for CE, targets of
 * the output's shape for MSE. xt, yt (may be NULL) are evaluated at the
 * end. TSR_ERR_SHAPE when data and graph disagree, TSR_ERR_INVALID_ARG for
 * bad options or a diverged run (non-finite loss).
 */
TSR_API tsr_status tsr_trainer_fit(tsr_trainer *t, const tsr_train_opts *o, const tsr_array *x,
                                   const tsr_array *y, const tsr_array *xt, const tsr_array *yt,
                                   tsr_train_report *rep);

/**
 * Mean loss (as fit computes it, without distillation or range terms) and
 * accuracy (NaN for MSE) of the current parameters on x, y.
 */
TSR_API tsr_status tsr_trainer_evaluate(tsr_trainer *t, tsr_train_loss loss, const tsr_array *x,
                                        const tsr_array *y, int batch, double *mean_loss,
                                        double *acc);

/* ---- HE-friendly students (heify) ------------------------------------------ */

/**
 * tsr_heify_graph turns a teacher graph into a polynomial student (Baruch et
 * al., arXiv 2111.03362, 2304.14836):
 *  - calibration: the teacher runs on calib; every node's input range is
 *    recorded;
 *  - every ReLU / sigmoid / tanh / erf becomes a CHEBYSHEV node of the given
 *    degree on [-B, B], B = margin * the largest |input| seen, starting as the
 *    least-squares fit of the function there (its coefficients train; its
 *    interval is the trainer's range-loss bound);
 *  - MaxPool becomes AveragePool with the same window;
 *  - inference batch norm right after a Conv or Gemm (its only reader) is
 *    folded into that node's weight and bias.
 * Other non-polynomial nodes are refused (TSR_ERR_UNSUPPORTED naming the
 * node). Distillation is then tsr_trainer_fit with the teacher.
 */
typedef struct tsr_heify_opts {
    int degree;    /**< 2 (1..8) */
    double margin; /**< 1.0 (>= 1) */
    int fold_bn;   /**< 1 */
    int batch;     /**< calibration batch, 256 */
} tsr_heify_opts;

TSR_API void tsr_heify_opts_default(tsr_heify_opts *o);

#define TSR_HEIFY_MAX_ACTS 64

/** One replaced activation: its node, what it was, the range seen and the bound chosen. */
typedef struct tsr_heify_act {
    char node[64];
    tsr_graph_kind was;
    double lo, hi, bound;
} tsr_heify_act;

typedef struct tsr_heify_report {
    int n_acts; /**< activations replaced (first TSR_HEIFY_MAX_ACTS listed) */
    tsr_heify_act acts[TSR_HEIFY_MAX_ACTS];
    int folded;   /**< batch norms folded */
    int maxpools; /**< max pools replaced */
} tsr_heify_report;

/**
 * The student of the finalized teacher g, calibrated on calib (N, ...)
 * (caller frees *student). rep may be NULL.
 */
TSR_API tsr_status tsr_heify_graph(const tsr_graph *g, const tsr_array *calib,
                                   const tsr_heify_opts *o, tsr_graph **student,
                                   tsr_heify_report *rep);

TSR_END_DECLS

#endif /* TESSERA_TRAIN_H */
