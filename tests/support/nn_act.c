/*
 * tests/support/nn_act.c - the simplifier tests' small activation model (nn_act.h).
 */
#include "nn_act.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

tsr_nn_model *tt_nn_act_model(tsr_prng *g, const double *coef, int nc) {
    return tt_nn_poly_model(g, coef, 2, nc);
}

tsr_nn_model *tt_nn_poly_model(tsr_prng *g, const double *coef, int degree, int nc) {
    tsr_nn_model *m;
    tt_ok(nn_model_create(&m, TT_ACT_NIN, 1, 1));
    double w[TT_ACT_NIN * TT_ACT_NHID], b[TT_ACT_NHID];
    nn_layer L;
    int t;
    memset(&L, 0, sizeof L);
    L.kind = NN_DENSE;
    snprintf(L.name, sizeof L.name, "fc1");
    tt_uniform(g, w, TT_ACT_NIN * TT_ACT_NHID, 0.3);
    tt_uniform(g, b, TT_ACT_NHID, 0.2);
    L.w = w;
    L.w_len = TT_ACT_NIN * TT_ACT_NHID;
    L.b = b;
    L.b_len = TT_ACT_NHID;
    tt_ok(nn_model_add(m, &L, (nn_shape){ TT_ACT_NHID, 1, 1 }, &t));
    memset(&L, 0, sizeof L);
    L.kind = NN_POLY;
    snprintf(L.name, sizeof L.name, "act");
    L.in[0] = t;
    L.degree = degree;
    L.nc = nc;
    L.w = (double *)coef;
    L.w_len = (int64_t)(degree + 1) * nc;
    tt_ok(nn_model_add(m, &L, (nn_shape){ TT_ACT_NHID, 1, 1 }, &t));
    memset(&L, 0, sizeof L);
    L.kind = NN_DENSE;
    snprintf(L.name, sizeof L.name, "fc2");
    L.in[0] = t;
    tt_uniform(g, w, TT_ACT_NHID * TT_ACT_NOUT, 0.4);
    tt_uniform(g, b, TT_ACT_NOUT, 0.2);
    L.w = w;
    L.w_len = TT_ACT_NHID * TT_ACT_NOUT;
    L.b = b;
    L.b_len = TT_ACT_NOUT;
    tt_ok(nn_model_add(m, &L, (nn_shape){ TT_ACT_NOUT, 1, 1 }, &t));
    m->classes = TT_ACT_NOUT;
    tt_ok(nn_model_validate(m));
    return m;
}

int tt_nn_count_kind(const tsr_nn_model *m, nn_kind k) {
    int n = 0;
    for (int i = 0; i < m->n_layers; i++) n += m->layers[i].kind == k;
    return n;
}

tsr_graph *tt_nn_act_graph(tsr_prng *g, const double *coef) {
    tsr_graph *gr;
    tt_ok(tsr_graph_create(&gr));
    int64_t in[2] = { -1, TT_ACT_NIN }, w1d[2] = { TT_ACT_NIN, TT_ACT_NHID },
            b1d[1] = { TT_ACT_NHID }, w2d[2] = { TT_ACT_NHID, TT_ACT_NOUT },
            b2d[1] = { TT_ACT_NOUT }, cd[1] = { 3 };
    tt_ok(tsr_graph_add_input(gr, "x", 2, in));
    const char *names[5] = { "w1", "b1", "w2", "b2", "c" };
    const int64_t *dims[5] = { w1d, b1d, w2d, b2d, cd };
    const int ranks[5] = { 2, 1, 2, 1, 1 };
    const double scale[4] = { 0.3, 0.2, 0.4, 0.2 };
    for (int k = 0; k < 5; k++) {
        tsr_array *t;
        tt_ok(tsr_array_create(&t, ranks[k], dims[k]));
        if (k < 4)
            tt_uniform(g, t->data, (int64_t)t->numel, scale[k]);
        else
            memcpy(t->data, coef, 3 * sizeof *coef);
        tt_ok(tsr_graph_add_const(gr, names[k], t));
        tsr_array_free(t);
    }
    tsr_graph_attrs a;
    tsr_graph_attrs_default(&a);
    tt_ok(tsr_graph_add_node(gr, TSR_NODE_GEMM, "fc1", 3, (const char *[]){ "x", "w1", "b1" }, "h",
                             &a));
    tt_ok(tsr_graph_add_node(gr, TSR_NODE_POLY, "act", 2, (const char *[]){ "h", "c" }, "p", &a));
    tt_ok(tsr_graph_add_node(gr, TSR_NODE_GEMM, "fc2", 3, (const char *[]){ "p", "w2", "b2" },
                             "out", &a));
    tt_ok(tsr_graph_add_output(gr, "out"));
    tt_ok(tsr_graph_finalize(gr));
    return gr;
}
