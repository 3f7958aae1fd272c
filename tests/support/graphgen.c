/*
 * tests/support/graphgen.c - small random model graphs for the tests (graphgen.h).
 */
#include "graphgen.h"

#include <math.h>

tsr_array *tt_rand_array(int rank, const int64_t *dims, tsr_prng *g, double scale) {
    tsr_array *a;
    tt_ok(tsr_array_create(&a, rank, dims));
    tt_uniform(g, a->data, (int64_t)a->numel, scale);
    return a;
}

void tt_graph_const(tsr_graph *gr, const char *name, tsr_array *a) {
    tt_ok(tsr_graph_add_const(gr, name, a));
    tsr_array_free(a);
}

void tt_graph_node(tsr_graph *gr, tsr_graph_kind k, int n, const char *const *in, const char *out,
                   const tsr_graph_attrs *a) {
    tt_ok(tsr_graph_add_node(gr, k, out, n, in, out, a));
}

double tt_graph_max_diff(const tsr_graph *a, const tsr_graph *b, tsr_prng *g, int rank,
                         const int64_t *dims) {
    tsr_array *x = tt_rand_array(rank, dims, g, 1.0);
    tsr_array *ya, *yb;
    tt_ok(tsr_graph_run(a, (const tsr_array *const *)&x, &ya));
    tt_ok(tsr_graph_run(b, (const tsr_array *const *)&x, &yb));
    assert_int_equal(ya->numel, yb->numel);
    double m = 0, mag = 0;
    for (size_t i = 0; i < ya->numel; i++) {
        m = fmax(m, fabs(ya->data[i] - yb->data[i]));
        mag = fmax(mag, fabs(ya->data[i]));
    }
    assert_true(mag > 1e-3); /* the outputs are not trivially zero */
    tsr_array_free(x);
    tsr_array_free(ya);
    tsr_array_free(yb);
    return m;
}
