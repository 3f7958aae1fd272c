/*
 * train/gtrain_internal.h - the trainer over tsr_graph behind
 * tessera/train.h: its structure (gtrain.c), the per-kind backward kernels
 * (gbackward.c) and graph rebuilding with edits (gedit.c, used by heify).
 */
#ifndef TSR_TRAIN_GTRAIN_INTERNAL_H
#define TSR_TRAIN_GTRAIN_INTERNAL_H

#include "graph/graph_internal.h"
#include "tessera/train.h"

#define GT_MAX_THREADS 64

/* One batch slice: activations and gradients of every value. */
typedef struct gt_slice {
    int lo, n;         /* rows [lo, lo + n) of the batch */
    tsr_array **act;   /* (n_values): NODE / INPUT owned, CONST borrowed from the graph */
    tsr_array **grad;  /* (n_values): owned, NULL = no gradient flows */
    double *stats;     /* (n_nodes, 4): min, max of input 0, outside count, range penalty */
    tsr_array **spare; /* (n_values): the last run's activations, reused when the size matches */
} gt_slice;

struct tsr_trainer {
    tsr_graph *g;       /* own copy; trainable constants' data follow params */
    int in_v, out_v;    /* value indices of the input and the output */
    uint8_t *trainable; /* (n_values) */
    size_t *p_off;      /* (n_values) offset in params of a trainable constant */
    size_t n_params;
    float *params, *grads; /* (n_params) */
    double *bound;         /* (n_nodes, by node index) range-loss bound, 0 = none */
    double range_weight, range_loss;
    int track;
    int input_grad; /* backward computes the input gradient (fit turns it off) */
    double *seen;   /* (n_nodes, 4) tracked min, max, outside, count (by node index) */
    int seen_any;
    int T; /* slices of the last forward */
    gt_slice sl[GT_MAX_THREADS];
    int B;         /* batch of the last forward, 0 = none */
    tsr_array *y;  /* (B, ...) output of the last forward */
    tsr_array *dx; /* (B, ...) input gradient of the last backward */
};

/**
 * Backward of node n: in[k] its inputs, out its output, dout the gradient
 * w.r.t. out. Accumulates into din[k] (NULL: not wanted), which have the
 * shapes of in[k].
 */
void gt_node_backward(const tsr_graph_node *n, const tsr_array *const *in, const tsr_array *out,
                      const tsr_array *dout, tsr_array *const *din);

/** TSR_ERR_SHAPE when x (B, ...) does not fit the graph input. */
tsr_status gt_check_input(const tsr_trainer *t, const tsr_array *x);

/** 1 when input k of a node of this kind is a weight (a constant there trains). */
int gt_param_slot(tsr_graph_kind kind, int k);

/**
 * A finalized copy of g in which every constant v for which repl[v] is not
 * NULL holds repl[v] instead (same shape required). repl may be NULL.
 */
tsr_status gt_graph_copy(const tsr_graph *g, const tsr_array *const *repl, tsr_graph **out);

#endif /* TSR_TRAIN_GTRAIN_INTERNAL_H */
