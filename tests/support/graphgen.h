/*
 * tests/support/graphgen.h - small random model graphs for the tests that build them by
 * hand (test_prune, test_prune_conv): random constants, nodes named after their output,
 * and the largest difference of two graphs' outputs on one random batch.
 */
#ifndef TSR_GRAPHGEN_H
#define TSR_GRAPHGEN_H

#include "testutil.h"

#include "tessera.h"

/** A new array of the given shape, uniform in [-scale, scale) from g (tt_uniform). */
tsr_array *tt_rand_array(int rank, const int64_t *dims, tsr_prng *g, double scale);

/** Add constant `name` to gr (copied) and free a. */
void tt_graph_const(tsr_graph *gr, const char *name, tsr_array *a);

/** Add a node of kind k reading in[0 .. n), named after its output `out`; a may be NULL. */
void tt_graph_node(tsr_graph *gr, tsr_graph_kind k, int n, const char *const *in, const char *out,
                   const tsr_graph_attrs *a);

/**
 * Largest |difference| of the outputs of the finalized graphs a and b on one random batch x
 * of the given shape (uniform in [-1, 1) from g); asserts the outputs have as many values
 * and are not trivially zero (some |a(x)| > 1e-3).
 */
double tt_graph_max_diff(const tsr_graph *a, const tsr_graph *b, tsr_prng *g, int rank,
                         const int64_t *dims);

#endif /* TSR_GRAPHGEN_H */
