/*
 * tests/support/nn_act.h - the small model the simplifier's activation tests share
 * (test_nn_simplify_square, test_nn_simplify_sqmul): dense 16 -> 8, a degree-2 activation,
 * dense 8 -> 4, and two helpers to inspect and compare.
 */
#ifndef TSR_NN_ACT_H
#define TSR_NN_ACT_H

#include "testutil.h"

#include "nn/nn_internal.h"

#include <stddef.h>

#define TT_ACT_NIN  16
#define TT_ACT_NHID 8
#define TT_ACT_NOUT 4

/**
 * dense TT_ACT_NIN -> TT_ACT_NHID ("fc1", weights uniform in +-0.3, biases +-0.2), act = c0 +
 * c1 x + c2 x^2 ("act": coef holds nc sets of 3, nc = 1 or TT_ACT_NHID), dense TT_ACT_NHID ->
 * TT_ACT_NOUT ("fc2", +-0.4 / +-0.2), drawn from g; classes = TT_ACT_NOUT, validated.
 */
tsr_nn_model *tt_nn_act_model(tsr_prng *g, const double *coef, int nc);

/** tt_nn_act_model with an activation of any degree: coef holds nc sets of degree + 1. */
tsr_nn_model *tt_nn_poly_model(tsr_prng *g, const double *coef, int degree, int nc);

/**
 * The same network as a graph, as import keeps it: x (N, TT_ACT_NIN) -> Gemm fc1 -> Poly act
 * (one set coef[3]) -> Gemm fc2 -> out, weights drawn from g like tt_nn_act_model's.
 */
tsr_graph *tt_nn_act_graph(tsr_prng *g, const double *coef);

/** Number of layers of kind k in m. */
int tt_nn_count_kind(const tsr_nn_model *m, nn_kind k);

#endif /* TSR_NN_ACT_H */
