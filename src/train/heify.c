/*
 * train/heify.c - a HE-friendly student from a user's teacher graph (the
 * methodology of Baruch et al., arXiv 2111.03362 and 2304.14836, on any
 * graph): calibrate the input range of every non-polynomial activation on
 * data, replace ReLU / sigmoid / tanh / erf by a Chebyshev series of the
 * chosen degree fitted on [-B, B] (B the calibrated largest |x| times a
 * margin: the series' interval is then the range-loss bound the trainer
 * uses), MaxPool by AveragePool with the same window, and fold inference
 * batch norm into the Conv / Gemm before it. Distillation is the caller's
 * tsr_trainer_fit with the teacher.
 */
#include "train/gtrain_internal.h"

#include "core/alloc.h"
#include "core/error.h"
#include "train/poly.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void tsr_heify_opts_default(tsr_heify_opts *o) {
    memset(o, 0, sizeof *o);
    o->degree = 2;
    o->margin = 1.0;
    o->fold_bn = 1;
    o->batch = 256;
}

static double fn_sigmoid(double x) {
    return 1 / (1 + exp(-x));
}

static double fn_tanh(double x) {
    return tanh(x);
}

static double fn_erf(double x) {
    return erf(x);
}

/* The function a replaceable kind computes (NULL: ReLU, as tsr_poly_fit_fn takes it). */
static int replaceable(tsr_graph_kind k, double (**f)(double)) {
    switch (k) {
    case TSR_NODE_RELU:
        *f = NULL;
        return 1;
    case TSR_NODE_SIGMOID:
        *f = fn_sigmoid;
        return 1;
    case TSR_NODE_TANH:
        *f = fn_tanh;
        return 1;
    case TSR_NODE_ERF:
        *f = fn_erf;
        return 1;
    default:
        return 0;
    }
}

/*
 * Chebyshev coefficients on [-B, B] (u = x / B) of the least-squares fit of f:
 * the power-basis fit interpolated at d + 1 Chebyshev nodes (exact for degree d).
 */
static tsr_status cheb_fit(double *c, int d, double B, double (*f)(double)) {
    double p[TSR_POLY_MAX_DEGREE + 1];
    TSR_TRY(tsr_poly_fit_fn(p, d, B, TSR_POLY_FIT_LSQ, f));
    for (int j = 0; j <= d; j++) {
        double s = 0;
        for (int k = 0; k <= d; k++) {
            double th = M_PI * (k + 0.5) / (d + 1);
            s += tsr_poly_eval(p, d, B * cos(th)) * cos(j * th);
        }
        c[j] = s * 2 / (d + 1) / (j == 0 ? 2 : 1);
    }
    return TSR_OK;
}

/* Calibration: per node, the min / max of its first input over x. */
static tsr_status calibrate(const tsr_graph *g, const tsr_array *x, int batch, double *lo,
                            double *hi) {
    tsr_trainer *t;
    TSR_TRY(tsr_trainer_create(&t, g));
    t->input_grad = 0;
    tsr_trainer_track_ranges(t, 1, 1);
    int64_t N = x->dims[0];
    size_t row = x->numel / (size_t)N;
    tsr_status st = TSR_OK;
    for (int64_t at = 0; st == TSR_OK && at < N; at += batch) {
        tsr_array view = *x;
        view.dims[0] = N - at < batch ? N - at : batch;
        view.numel = row * (size_t)view.dims[0];
        view.data = x->data + (size_t)at * row;
        st = tsr_trainer_forward(t, &view, NULL);
    }
    for (int i = 0; st == TSR_OK && i < g->n_nodes; i++) {
        int ni = g->order[i];
        st = tsr_trainer_node_range(t, i, &lo[ni], &hi[ni]);
    }
    tsr_trainer_free(t);
    return st;
}

/*
 * Name for a new constant: base (cut to 200 bytes, so that the suffix and
 * the counter always fit in out) + suffix, made unique in g and c.
 */
static void fresh_name(const tsr_graph *g, const tsr_graph *c, const char *base, const char *suf,
                       char *out, size_t n) {
    TSR_ASSERT(n >= 256 && strlen(suf) <= 16);
    snprintf(out, n, "%.200s%s", base, suf);
    for (int k = 2; tsr_graph_find_value(g, out) >= 0 || tsr_graph_find_value(c, out) >= 0; k++)
        snprintf(out, n, "%.200s%s%d", base, suf, k);
}

/* Whether BN node b can fold into the Conv / Gemm that produces its input. */
static int foldable(const tsr_graph *g, const tsr_graph_node *b) {
    int v = b->in[0];
    if (g->values[v].kind != TSR_VALUE_NODE || g->values[v].n_uses != 1) return 0;
    for (int i = 0; i < g->n_outputs; i++)
        if (g->outputs[i] == v) return 0;
    const tsr_graph_node *p = &g->nodes[g->values[v].producer];
    if (p->kind != TSR_NODE_CONV && p->kind != TSR_NODE_GEMM) return 0;
    if (g->values[p->in[1]].kind != TSR_VALUE_CONST) return 0;
    if (p->n_in > 2 && p->in[2] >= 0 && g->values[p->in[2]].kind != TSR_VALUE_CONST) return 0;
    if (p->kind == TSR_NODE_GEMM) { /* per output column: B (K, M) or (M, K), bias (M) or none */
        const tsr_array *bias = p->n_in > 2 && p->in[2] >= 0 ? g->values[p->in[2]].data : NULL;
        int64_t M = g->values[v].dims[1];
        if (p->a.trans_a || g->values[v].rank != 2 ||
            (bias && bias->numel != (size_t)M && bias->numel != 1))
            return 0;
    }
    return 1;
}

/* Weight and bias of producer p with batch norm b folded in (new arrays). */
static tsr_status fold(const tsr_graph *g, const tsr_graph_node *p, const tsr_graph_node *b,
                       tsr_array **w_out, tsr_array **b_out) {
    const tsr_array *w = g->values[p->in[1]].data;
    const tsr_array *bias = p->n_in > 2 && p->in[2] >= 0 ? g->values[p->in[2]].data : NULL;
    const tsr_array *sc = g->values[b->in[1]].data, *be = g->values[b->in[2]].data,
                    *mu = g->values[b->in[3]].data, *var = g->values[b->in[4]].data;
    int64_t M = (int64_t)sc->numel;
    TSR_TRY(tsr_array_clone(w_out, w));
    tsr_status st = tsr_array_create(b_out, 1, &M);
    if (st != TSR_OK) {
        tsr_array_free(*w_out);
        return st;
    }
    double alpha = p->kind == TSR_NODE_GEMM ? p->a.alpha : 1;
    double beta = p->kind == TSR_NODE_GEMM ? p->a.beta : 1;
    for (int64_t m = 0; m < M; m++) {
        double s = sc->data[m] / sqrt(var->data[m] + b->a.epsilon);
        double b0 = bias ? beta * bias->data[bias->numel == 1 ? 0 : m] : 0;
        (*b_out)->data[m] = (b0 - mu->data[m]) * s + be->data[m];
        if (p->kind == TSR_NODE_CONV) {
            size_t per = w->numel / (size_t)w->dims[0];
            for (size_t k = 0; k < per; k++) (*w_out)->data[(size_t)m * per + k] *= s;
        } else if (p->a.trans_b) { /* B (M, K) */
            int64_t K = w->dims[1];
            for (int64_t k = 0; k < K; k++) (*w_out)->data[m * K + k] *= s * alpha;
        } else { /* B (K, M) */
            int64_t K = w->dims[0];
            for (int64_t k = 0; k < K; k++) (*w_out)->data[k * M + m] *= s * alpha;
        }
    }
    return TSR_OK;
}

static tsr_status add_const_once(tsr_graph *c, const tsr_graph *g, const char *name) {
    if (!name[0] || tsr_graph_find_value(c, name) >= 0) return TSR_OK;
    int v = tsr_graph_find_value(g, name);
    if (v < 0 || g->values[v].kind != TSR_VALUE_CONST) return TSR_OK;
    return tsr_graph_add_const(c, name, g->values[v].data);
}

tsr_status tsr_heify_graph(const tsr_graph *g, const tsr_array *calib, const tsr_heify_opts *o,
                           tsr_graph **out, tsr_heify_report *rep) {
    TSR_REQUIRE(g && calib && o && out, "tsr_heify_graph: NULL argument");
    *out = NULL;
    if (!g->finalized) return tsr_fail(TSR_ERR_INVALID_ARG, "finalize the graph first");
    if (o->degree < 1 || o->degree > TSR_POLY_MAX_DEGREE)
        return tsr_fail(TSR_ERR_INVALID_ARG, "degree %d is out of range 1..%d", o->degree,
                        TSR_POLY_MAX_DEGREE);
    if (!(o->margin >= 1) || !isfinite(o->margin) || o->batch < 1)
        return tsr_fail(TSR_ERR_INVALID_ARG, "margin must be >= 1 and batch >= 1");
    if (rep) memset(rep, 0, sizeof *rep);
    size_t nn = g->n_nodes > 0 ? (size_t)g->n_nodes : 1;
    double *lo = calloc(nn, sizeof *lo), *hi = calloc(nn, sizeof *hi);
    char *skip = calloc(nn, 1);
    int *fold_bn = malloc(nn * sizeof *fold_bn); /* producer -> BN node folded into it */
    tsr_graph *c = NULL;
    tsr_status st = TSR_OK;
    if (!lo || !hi || !skip || !fold_bn) st = tsr_fail(TSR_ERR_NOMEM, "out of memory");
    if (st == TSR_OK) st = calibrate(g, calib, o->batch, lo, hi);
    if (st == TSR_OK) st = tsr_graph_create(&c);
    if (fold_bn)
        for (size_t i = 0; i < nn; i++) fold_bn[i] = -1;
    for (int i = 0; st == TSR_OK && o->fold_bn && i < g->n_nodes; i++) {
        const tsr_graph_node *b = &g->nodes[i];
        if (b->kind != TSR_NODE_BATCHNORM || !foldable(g, b)) continue;
        fold_bn[g->values[b->in[0]].producer] = i;
        skip[i] = 1;
        if (rep) rep->folded++;
    }
    for (int i = 0; st == TSR_OK && i < g->n_inputs; i++) {
        const tsr_graph_value *v = &g->values[g->inputs[i]];
        st = tsr_graph_add_input(c, v->name, v->rank, v->dims);
    }
    char nm[2][256], lab[224];
    for (int oi = 0; st == TSR_OK && oi < g->n_nodes; oi++) {
        int ni = g->order[oi];
        const tsr_graph_node *n = &g->nodes[ni];
        if (skip[ni]) continue;
        const char *outn = g->values[n->out].name;
        double (*f)(double) = NULL;
        if (fold_bn[ni] >= 0) { /* Conv / Gemm with the batch norm after it folded in */
            const tsr_graph_node *b = &g->nodes[fold_bn[ni]];
            tsr_array *w, *bb;
            st = fold(g, n, b, &w, &bb);
            if (st != TSR_OK) break;
            fresh_name(g, c, n->name, ".w_bn", nm[0], sizeof nm[0]);
            fresh_name(g, c, n->name, ".b_bn", nm[1], sizeof nm[1]);
            st = tsr_graph_add_const(c, nm[0], w);
            if (st == TSR_OK) st = tsr_graph_add_const(c, nm[1], bb);
            tsr_array_free(w);
            tsr_array_free(bb);
            tsr_graph_attrs a = n->a;
            if (n->kind == TSR_NODE_GEMM) {
                a.alpha = 1; /* folded into the weights */
                a.beta = 1;
            }
            const char *in[3] = { n->in_names[0], nm[0], nm[1] };
            if (st == TSR_OK) st = add_const_once(c, g, in[0]);
            if (st == TSR_OK)
                st = tsr_graph_add_node(c, n->kind, n->name, 3, in, g->values[b->out].name, &a);
        } else if (replaceable(n->kind, &f)) {
            double B = fmax(fabs(lo[ni]), fabs(hi[ni])) * o->margin;
            if (!(B > 0) || !isfinite(B)) B = 1;
            double coef[TSR_POLY_MAX_DEGREE + 1];
            st = cheb_fit(coef, o->degree, B, f);
            tsr_array *ca = NULL;
            int64_t len = o->degree + 1;
            if (st == TSR_OK) st = tsr_array_create(&ca, 1, &len);
            if (st != TSR_OK) break;
            memcpy(ca->data, coef, (size_t)len * sizeof *coef);
            fresh_name(g, c, n->name, ".cheb", nm[0], sizeof nm[0]);
            st = tsr_graph_add_const(c, nm[0], ca);
            tsr_array_free(ca);
            tsr_graph_attrs a;
            tsr_graph_attrs_default(&a);
            a.lo = -B;
            a.hi = B;
            const char *in[2] = { n->in_names[0], nm[0] };
            if (st == TSR_OK) st = add_const_once(c, g, in[0]);
            if (st == TSR_OK)
                st = tsr_graph_add_node(c, TSR_NODE_CHEBYSHEV, n->name, 2, in, outn, &a);
            if (rep && rep->n_acts < TSR_HEIFY_MAX_ACTS) {
                tsr_heify_act *ha = &rep->acts[rep->n_acts++];
                snprintf(ha->node, sizeof ha->node, "%s", n->name);
                ha->was = n->kind;
                ha->lo = lo[ni];
                ha->hi = hi[ni];
                ha->bound = B;
            }
        } else if (n->kind == TSR_NODE_MAXPOOL) {
            tsr_graph_attrs a = n->a;
            a.count_include_pad = 0;
            st = tsr_graph_add_node(c, TSR_NODE_AVGPOOL, n->name, 1,
                                    (const char *const *)n->in_names, outn, &a);
            if (rep) rep->maxpools++;
        } else if (!tsr_graph_kind_is_polynomial(n->kind)) {
            st = tsr_fail(TSR_ERR_UNSUPPORTED,
                          "%s has no polynomial replacement in heify (ReLU, sigmoid, tanh, erf "
                          "and MaxPool have); replace it in the model or approximate it at "
                          "import (--approx)",
                          tsr_graph_node_label(n, lab, sizeof lab));
        } else {
            for (int k = 0; st == TSR_OK && k < n->n_in; k++)
                st = add_const_once(c, g, n->in_names[k]);
            if (st == TSR_OK)
                st = tsr_graph_add_node(c, n->kind, n->name, n->n_in,
                                        (const char *const *)n->in_names, outn, &n->a);
        }
    }
    for (int i = 0; st == TSR_OK && i < g->n_outputs; i++)
        st = tsr_graph_add_output(c, g->output_names[i]);
    if (st == TSR_OK) st = tsr_graph_finalize(c);
    free(lo);
    free(hi);
    free(skip);
    free(fold_bn);
    if (st != TSR_OK) {
        tsr_graph_free(c);
        return st;
    }
    *out = c;
    return TSR_OK;
}
