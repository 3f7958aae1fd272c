/*
 * train/gtrain.c - training on the one graph (tessera/train.h): the
 * trainable constants as one float parameter vector, forward with every
 * activation kept, backward in reverse execution order, range statistics
 * and the range loss.
 *
 * A batch is cut into one slice per thread; each slice runs the whole graph
 * in doubles with the graph's own kernels (tsr_graph_node_exec: dgemm,
 * im2col) and the backward kernels of gbackward.c, keeping its own
 * activations and gradients. Parameter gradients and statistics are then
 * added in slice order, so results depend on the thread count only.
 */
#include "train/gtrain_internal.h"

#include "core/alloc.h"
#include "core/error.h"
#include "tessera/core.h"

#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ---- graph copies ------------------------------------------------------------- */

tsr_status gt_graph_copy(const tsr_graph *g, const tsr_array *const *repl, tsr_graph **out) {
    TSR_REQUIRE(g && g->finalized, "gt_graph_copy: finalize the graph first");
    *out = NULL;
    tsr_graph *c;
    TSR_TRY(tsr_graph_create(&c));
    tsr_status st = TSR_OK;
    for (int i = 0; st == TSR_OK && i < g->n_inputs; i++) {
        const tsr_graph_value *v = &g->values[g->inputs[i]];
        st = tsr_graph_add_input(c, v->name, v->rank, v->dims);
    }
    for (int v = 0; st == TSR_OK && v < g->n_values; v++) {
        const tsr_graph_value *val = &g->values[v];
        if (val->kind != TSR_VALUE_CONST) continue;
        const tsr_array *d = repl && repl[v] ? repl[v] : val->data;
        TSR_ASSERT(d->numel == val->data->numel);
        st = tsr_graph_add_const(c, val->name, d);
    }
    for (int i = 0; st == TSR_OK && i < g->n_nodes; i++) {
        const tsr_graph_node *n = &g->nodes[i];
        st = tsr_graph_add_node(c, n->kind, n->name, n->n_in, (const char *const *)n->in_names,
                                g->values[n->out].name, &n->a);
    }
    for (int i = 0; st == TSR_OK && i < g->n_outputs; i++)
        st = tsr_graph_add_output(c, g->output_names[i]);
    if (st == TSR_OK) st = tsr_graph_finalize(c);
    if (st != TSR_OK) {
        tsr_graph_free(c);
        return st;
    }
    *out = c;
    return TSR_OK;
}

/* ---- parameters ----------------------------------------------------------------- */

int gt_param_slot(tsr_graph_kind kind, int k) {
    switch (kind) {
    case TSR_NODE_CONV:
        return k >= 1;
    case TSR_NODE_GEMM:
    case TSR_NODE_MATMUL:
    case TSR_NODE_ADD:
    case TSR_NODE_SUB:
    case TSR_NODE_MUL:
        return 1;
    case TSR_NODE_BATCHNORM:
        return k == 1 || k == 2;
    case TSR_NODE_POLY:
    case TSR_NODE_CHEBYSHEV:
        return k == 1;
    default:
        return 0;
    }
}

static int elementwise(tsr_graph_kind k) {
    return k == TSR_NODE_ADD || k == TSR_NODE_SUB || k == TSR_NODE_MUL;
}

/* Default rule of tessera/train.h. */
static int default_trainable(const tsr_graph *g, int v) {
    int param = 0, fixed = 0;
    for (int i = 0; i < g->n_nodes; i++) {
        const tsr_graph_node *n = &g->nodes[i];
        for (int k = 0; k < n->n_in; k++) {
            if (n->in[k] != v) continue;
            if (gt_param_slot(n->kind, k) &&
                !(elementwise(n->kind) && g->values[v].data->numel <= 1))
                param = 1;
            else
                fixed = 1;
        }
    }
    return param && !fixed;
}

static tsr_status layout_params(tsr_trainer *t) {
    const tsr_graph *g = t->g;
    size_t n = 0;
    for (int v = 0; v < g->n_values; v++) {
        t->p_off[v] = n;
        if (t->trainable[v]) n += g->values[v].data->numel;
    }
    float *p = tsr_calloc_array(n ? n : 1, sizeof *p), *d = tsr_calloc_array(n ? n : 1, sizeof *d);
    if (!p || !d) {
        tsr_free(p);
        tsr_free(d);
        return tsr_fail(TSR_ERR_NOMEM, "out of memory for %zu parameters", n);
    }
    for (int v = 0; v < g->n_values; v++)
        if (t->trainable[v])
            for (size_t i = 0; i < g->values[v].data->numel; i++)
                p[t->p_off[v] + i] = (float)g->values[v].data->data[i];
    tsr_free(t->params);
    tsr_free(t->grads);
    t->params = p;
    t->grads = d;
    t->n_params = n;
    return TSR_OK;
}

/* Copy the float parameters into the graph's constants. */
static void sync_params(tsr_trainer *t) {
    for (int v = 0; v < t->g->n_values; v++)
        if (t->trainable[v]) {
            tsr_array *d = t->g->values[v].data;
            for (size_t i = 0; i < d->numel; i++) d->data[i] = t->params[t->p_off[v] + i];
        }
}

/* ---- creation ------------------------------------------------------------------- */

/* Free the spares of slice s that no forward took (the lists stay). */
static void drop_spares(const tsr_trainer *t, gt_slice *s) {
    for (int v = 0; s->spare && v < t->g->n_values; v++) {
        tsr_array_free(s->spare[v]);
        s->spare[v] = NULL;
    }
}

/*
 * Ends a run's slice. With keep (a forward starting), its activations become spares that this
 * forward reuses for the same value when the element count matches (every batch but a shorter
 * last one): reallocating and zeroing them per batch cost about as much as the kernels. Kernels
 * write all of their output (the contract of tsr_graph_node_exec, checked by
 * test_reused_activations). Without keep, activations and spares are freed.
 */
static void slice_clear(tsr_trainer *t, gt_slice *s, int keep) {
    const tsr_graph *g = t->g;
    if (!keep) drop_spares(t, s);
    if (keep && !s->spare && s->act) s->spare = calloc((size_t)g->n_values, sizeof *s->spare);
    if (s->act)
        for (int v = 0; v < g->n_values; v++) {
            if (g->values[v].kind == TSR_VALUE_CONST || !s->act[v]) continue;
            if (keep && s->spare) {
                tsr_array_free(s->spare[v]);
                s->spare[v] = s->act[v];
            } else {
                tsr_array_free(s->act[v]);
            }
        }
    if (s->grad)
        for (int v = 0; v < g->n_values; v++) tsr_array_free(s->grad[v]);
    free(s->act);
    free(s->grad);
    free(s->stats);
    tsr_array **spare = s->spare;
    memset(s, 0, sizeof *s);
    s->spare = spare;
}

/* Activation v of a slice: its spare when it has n elements, else a new array. */
static tsr_status slice_array(gt_slice *s, int v, int rank, const int64_t *dims) {
    tsr_array *a = s->spare ? s->spare[v] : NULL;
    if (a) s->spare[v] = NULL;
    if (a && (int64_t)a->numel == tsr_dims_numel(rank, dims)) {
        a->rank = rank;
        memset(a->dims, 0, sizeof a->dims);
        for (int k = 0; k < rank; k++) a->dims[k] = dims[k];
        s->act[v] = a;
        return TSR_OK;
    }
    tsr_array_free(a);
    return tsr_array_create(&s->act[v], rank, dims);
}

/* Ends the last run: its activations become spares (keep, a forward starting) or are freed. */
static void clear_run(tsr_trainer *t, int keep) {
    for (int i = 0; i < GT_MAX_THREADS; i++) slice_clear(t, &t->sl[i], keep);
    tsr_array_free(t->y);
    tsr_array_free(t->dx);
    t->y = t->dx = NULL;
    t->B = 0;
    t->T = 0;
}

static void free_spares(tsr_trainer *t) {
    for (int i = 0; i < GT_MAX_THREADS; i++) {
        gt_slice *s = &t->sl[i];
        drop_spares(t, s);
        free(s->spare);
        s->spare = NULL;
    }
}

void tsr_trainer_free(tsr_trainer *t) {
    if (!t) return;
    if (t->g) {
        clear_run(t, 0);
        free_spares(t);
    }
    tsr_graph_free(t->g);
    free(t->trainable);
    free(t->p_off);
    free(t->bound);
    free(t->seen);
    tsr_free(t->params);
    tsr_free(t->grads);
    free(t);
}

tsr_status tsr_trainer_create(tsr_trainer **out, const tsr_graph *g) {
    TSR_REQUIRE(out && g, "tsr_trainer_create: NULL argument");
    *out = NULL;
    if (!g->finalized) return tsr_fail(TSR_ERR_INVALID_ARG, "finalize the graph before training");
    if (g->n_inputs != 1 || g->n_outputs != 1)
        return tsr_fail(TSR_ERR_INVALID_ARG,
                        "the trainer takes graphs with one input and one output (this one has "
                        "%d and %d)",
                        g->n_inputs, g->n_outputs);
    tsr_trainer *t = calloc(1, sizeof *t);
    if (!t) return tsr_fail(TSR_ERR_NOMEM, "out of memory");
    tsr_status st = gt_graph_copy(g, NULL, &t->g);
    if (st != TSR_OK) {
        free(t);
        return st;
    }
    const tsr_graph *c = t->g;
    t->in_v = c->inputs[0];
    t->out_v = c->outputs[0];
    if (c->values[t->in_v].rank < 1 || c->values[t->out_v].rank < 1) {
        tsr_trainer_free(t);
        return tsr_fail(TSR_ERR_INVALID_ARG,
                        "the trainer needs a batch dimension first in the input and the output");
    }
    size_t nv = (size_t)c->n_values, nn = (size_t)(c->n_nodes ? c->n_nodes : 1);
    t->trainable = calloc(nv, 1);
    t->p_off = calloc(nv, sizeof *t->p_off);
    t->bound = calloc(2 * nn, sizeof *t->bound);
    t->seen = calloc(4 * nn, sizeof *t->seen);
    if (!t->trainable || !t->p_off || !t->bound || !t->seen) {
        tsr_trainer_free(t);
        return tsr_fail(TSR_ERR_NOMEM, "out of memory");
    }
    for (int v = 0; v < c->n_values; v++)
        t->trainable[v] = c->values[v].kind == TSR_VALUE_CONST && default_trainable(c, v);
    for (int i = 0; i < c->n_nodes; i++)
        if (c->nodes[i].kind == TSR_NODE_CHEBYSHEV) {
            t->bound[2 * i] = c->nodes[i].a.lo;
            t->bound[2 * i + 1] = c->nodes[i].a.hi;
        }
    st = layout_params(t);
    if (st != TSR_OK) {
        tsr_trainer_free(t);
        return st;
    }
    tsr_trainer_track_ranges(t, 0, 1);
    t->input_grad = 1;
    openblas_set_num_threads(1); /* kernels run single-threaded inside the slices */
    *out = t;
    return TSR_OK;
}

tsr_status tsr_trainer_set_trainable(tsr_trainer *t, const char *name, int on) {
    TSR_REQUIRE(t && name, "tsr_trainer_set_trainable: NULL argument");
    int v = tsr_graph_find_value(t->g, name);
    if (v < 0 || t->g->values[v].kind != TSR_VALUE_CONST) {
        char esc[160];
        tsr_escape_controls(esc, sizeof esc, name, 0);
        return tsr_fail(TSR_ERR_NOT_FOUND, "'%s' is not a constant of the graph", esc);
    }
    sync_params(t);
    t->trainable[v] = on != 0;
    clear_run(t, 0);
    return layout_params(t);
}

int tsr_trainer_is_trainable(const tsr_trainer *t, const char *name) {
    int v = tsr_graph_find_value(t->g, name);
    return v >= 0 && t->trainable[v];
}

size_t tsr_trainer_num_params(const tsr_trainer *t) {
    return t->n_params;
}

float *tsr_trainer_params(tsr_trainer *t) {
    return t->params;
}

float *tsr_trainer_grads(tsr_trainer *t) {
    return t->grads;
}

void tsr_trainer_zero_grad(tsr_trainer *t) {
    memset(t->grads, 0, t->n_params * sizeof *t->grads);
}

tsr_status tsr_trainer_graph(const tsr_trainer *t, tsr_graph **out) {
    TSR_REQUIRE(t && out, "tsr_trainer_graph: NULL argument");
    sync_params((tsr_trainer *)t);
    return gt_graph_copy(t->g, NULL, out);
}

/* The node called name (storage index): -1 when none; *n_same how many are called so. */
static int find_node(const tsr_graph *g, const char *name, int *n_same) {
    int at = -1;
    *n_same = 0;
    for (int i = 0; i < g->n_nodes; i++)
        if (strcmp(g->nodes[i].name, name) == 0) {
            if (at < 0) at = i;
            ++*n_same;
        }
    return at;
}

static tsr_status set_bound_at(tsr_trainer *t, int i, const char *esc, double bound) {
    tsr_graph_kind k = t->g->nodes[i].kind;
    if (k != TSR_NODE_POLY && k != TSR_NODE_CHEBYSHEV)
        return tsr_fail(TSR_ERR_INVALID_ARG, "node '%s' is not a polynomial", esc);
    if (!(bound >= 0) || !isfinite(bound))
        return tsr_fail(TSR_ERR_INVALID_ARG, "bound %g of '%s' must be finite and >= 0", bound,
                        esc);
    t->bound[2 * i] = -bound;
    t->bound[2 * i + 1] = bound;
    return TSR_OK;
}

tsr_status tsr_trainer_set_bound(tsr_trainer *t, const char *node, double bound) {
    TSR_REQUIRE(t && node, "tsr_trainer_set_bound: NULL argument");
    int same, i = find_node(t->g, node, &same);
    char esc[160];
    tsr_escape_controls(esc, sizeof esc, node, 0);
    if (i < 0) return tsr_fail(TSR_ERR_NOT_FOUND, "no node is called '%s'", esc);
    if (same > 1)
        return tsr_fail(TSR_ERR_INVALID_ARG,
                        "%d nodes are called '%s': set the bound by position "
                        "(tsr_trainer_set_node_bound)",
                        same, esc);
    return set_bound_at(t, i, esc, bound);
}

tsr_status tsr_trainer_set_node_bound(tsr_trainer *t, int i, double bound) {
    TSR_REQUIRE(t, "tsr_trainer_set_node_bound: NULL argument");
    if (i < 0 || i >= t->g->n_nodes)
        return tsr_fail(TSR_ERR_NOT_FOUND, "no node %d (the graph has %d)", i, t->g->n_nodes);
    char esc[160];
    int ni = t->g->order[i];
    tsr_escape_controls(esc, sizeof esc, t->g->nodes[ni].name, 0);
    return set_bound_at(t, ni, esc, bound);
}

void tsr_trainer_set_range_weight(tsr_trainer *t, double weight) {
    t->range_weight = weight > 0 ? weight : 0;
}

double tsr_trainer_range_loss(const tsr_trainer *t) {
    return t->range_loss;
}

void tsr_trainer_track_ranges(tsr_trainer *t, int on, int reset) {
    t->track = on != 0;
    if (!reset) return;
    for (int i = 0; i < t->g->n_nodes; i++) {
        t->seen[4 * i] = INFINITY;
        t->seen[4 * i + 1] = -INFINITY;
        t->seen[4 * i + 2] = t->seen[4 * i + 3] = 0;
    }
    t->seen_any = 0;
}

tsr_status tsr_trainer_node_range(const tsr_trainer *t, int i, double *lo, double *hi) {
    TSR_REQUIRE(t && lo && hi, "tsr_trainer_node_range: NULL argument");
    if (i < 0 || i >= t->g->n_nodes || !t->seen_any)
        return tsr_fail(TSR_ERR_NOT_FOUND, "no range recorded for node %d", i);
    int ni = t->g->order[i];
    *lo = t->seen[4 * ni];
    *hi = t->seen[4 * ni + 1];
    return TSR_OK;
}

tsr_status tsr_trainer_node_outside(const tsr_trainer *t, int i, uint64_t *outside,
                                    uint64_t *count) {
    TSR_REQUIRE(t && outside && count, "tsr_trainer_node_outside: NULL argument");
    if (i < 0 || i >= t->g->n_nodes || !t->seen_any)
        return tsr_fail(TSR_ERR_NOT_FOUND, "no range recorded for node %d", i);
    int ni = t->g->order[i];
    *outside = (uint64_t)t->seen[4 * ni + 2];
    *count = (uint64_t)t->seen[4 * ni + 3];
    return TSR_OK;
}

/* ---- forward ------------------------------------------------------------------------ */

/* Polynomial nodes with a range-loss interval. */
static int has_bound(const tsr_trainer *t, int ni) {
    tsr_graph_kind k = t->g->nodes[ni].kind;
    return (k == TSR_NODE_POLY || k == TSR_NODE_CHEBYSHEV) &&
           t->bound[2 * ni + 1] > t->bound[2 * ni];
}

tsr_status tsr_trainer_node_bound(const tsr_trainer *t, int i, double *lo, double *hi) {
    TSR_REQUIRE(t && lo && hi, "tsr_trainer_node_bound: NULL argument");
    if (i < 0 || i >= t->g->n_nodes || !has_bound(t, t->g->order[i]))
        return tsr_fail(TSR_ERR_NOT_FOUND, "node %d has no bound", i);
    int ni = t->g->order[i];
    *lo = t->bound[2 * ni];
    *hi = t->bound[2 * ni + 1];
    return TSR_OK;
}

static int count_bounded(const tsr_trainer *t) {
    int L = 0;
    for (int i = 0; i < t->g->n_nodes; i++) L += has_bound(t, i);
    return L;
}

/* The first element of v equal to zero (+0 or -0); v holds one. */
static double first_zero(const double *v, size_t n) {
    size_t i = 0;
    while (i + 1 < n && v[i] != 0) i++;
    return v[i];
}

/*
 * *lo, *hi: the smallest and largest of v[0..n) (+inf and -inf when none; NaNs skipped), the
 * same bits as the serial loop `lo = v < lo ? v : lo` from +inf: four interleaved accumulators
 * (independent dependency chains), then, when the result is a zero, the first zero of v (the
 * serial loop keeps the first of +0 and -0; any other tie is the same bits).
 */
static void min_max(const double *v, size_t n, double *lo, double *hi) {
    double l0 = INFINITY, l1 = INFINITY, l2 = INFINITY, l3 = INFINITY;
    double h0 = -INFINITY, h1 = -INFINITY, h2 = -INFINITY, h3 = -INFINITY;
    size_t i = 0;
    for (; i + 4 <= n; i += 4) {
        l0 = v[i] < l0 ? v[i] : l0;
        l1 = v[i + 1] < l1 ? v[i + 1] : l1;
        l2 = v[i + 2] < l2 ? v[i + 2] : l2;
        l3 = v[i + 3] < l3 ? v[i + 3] : l3;
        h0 = v[i] > h0 ? v[i] : h0;
        h1 = v[i + 1] > h1 ? v[i + 1] : h1;
        h2 = v[i + 2] > h2 ? v[i + 2] : h2;
        h3 = v[i + 3] > h3 ? v[i + 3] : h3;
    }
    for (; i < n; i++) {
        l0 = v[i] < l0 ? v[i] : l0;
        h0 = v[i] > h0 ? v[i] : h0;
    }
    l0 = l1 < l0 ? l1 : l0;
    l0 = l2 < l0 ? l2 : l0;
    l0 = l3 < l0 ? l3 : l0;
    h0 = h1 > h0 ? h1 : h0;
    h0 = h2 > h0 ? h2 : h0;
    h0 = h3 > h0 ? h3 : h0;
    *lo = l0 == 0 ? first_zero(v, n) : l0;
    *hi = h0 == 0 ? first_zero(v, n) : h0;
}

static tsr_status slice_forward(tsr_trainer *t, gt_slice *s, const tsr_array *x, int want_pen) {
    const tsr_graph *g = t->g;
    size_t nv = (size_t)g->n_values;
    s->act = calloc(nv, sizeof *s->act);
    s->grad = calloc(nv, sizeof *s->grad);
    s->stats = calloc(4 * (size_t)(g->n_nodes ? g->n_nodes : 1), sizeof *s->stats);
    int maxin = 1;
    for (int i = 0; i < g->n_nodes; i++)
        if (g->nodes[i].n_in > maxin) maxin = g->nodes[i].n_in;
    int *r = calloc((size_t)maxin, sizeof *r);
    int64_t(*d)[TSR_ARRAY_MAX_RANK] = calloc((size_t)maxin, sizeof *d);
    const tsr_array **c = calloc((size_t)maxin, sizeof *c);
    const tsr_array **in = calloc((size_t)maxin, sizeof *in);
    tsr_status st = TSR_OK;
    if (!s->act || !s->grad || !s->stats || !r || !d || !c || !in) st = TSR_ERR_NOMEM;
    /* the input rows */
    int64_t dims[TSR_ARRAY_MAX_RANK];
    memcpy(dims, x->dims, sizeof dims);
    dims[0] = s->n;
    if (st == TSR_OK) st = slice_array(s, t->in_v, x->rank, dims);
    if (st == TSR_OK) {
        size_t row = x->numel / (size_t)x->dims[0];
        memcpy(s->act[t->in_v]->data, x->data + (size_t)s->lo * row,
               (size_t)s->n * row * sizeof(double));
    }
    for (int v = 0; st == TSR_OK && v < g->n_values; v++)
        if (g->values[v].kind == TSR_VALUE_CONST) s->act[v] = g->values[v].data;
    for (int oi = 0; st == TSR_OK && oi < g->n_nodes; oi++) {
        int ni = g->order[oi];
        const tsr_graph_node *n = &g->nodes[ni];
        for (int k = 0; k < n->n_in; k++) {
            int v = n->in[k];
            r[k] = -1;
            c[k] = NULL;
            if (v < 0) continue;
            r[k] = s->act[v]->rank;
            memcpy(d[k], s->act[v]->dims, sizeof d[k]);
            c[k] = g->values[v].data;
        }
        int orank;
        int64_t odims[TSR_ARRAY_MAX_RANK];
        st = tsr_graph_node_shape(g, n, r, (const int64_t(*)[TSR_ARRAY_MAX_RANK])d, c, &orank,
                                  odims);
        if (st == TSR_OK) st = slice_array(s, n->out, orank, odims);
        if (st != TSR_OK) break;
        for (int k = 0; k < n->n_in; k++) in[k] = n->in[k] >= 0 ? s->act[n->in[k]] : NULL;
        tsr_graph_node_exec(n, in, s->act[n->out]);
        /* statistics of the first input (outside: beyond the bound, tracked or penalised) */
        int pen = want_pen && has_bound(t, ni);
        if (!t->track && !pen) continue;
        const int bounded = has_bound(t, ni);
        const tsr_array *a = in[0];
        double lo, hi, out = 0, sum = 0;
        const double blo = t->bound[2 * ni], bhi = t->bound[2 * ni + 1];
        min_max(a->data, a->numel, &lo, &hi);
        /* only inputs beyond the bound add to out and sum (adding e * e = +0 changes neither) */
        for (size_t i = 0; bounded && i < a->numel; i++) {
            double v = a->data[i];
            if (v > bhi || v < blo) {
                double e = v > bhi ? v - bhi : blo - v;
                out += e > 0;
                sum += e * e;
            }
        }
        double *sp = s->stats + 4 * (size_t)ni;
        sp[0] = lo;
        sp[1] = hi;
        sp[2] = out;
        sp[3] = sum;
    }
    free(r);
    free(d);
    free(c);
    free(in);
    return st;
}

tsr_status gt_check_input(const tsr_trainer *t, const tsr_array *x) {
    const tsr_graph_value *v = &t->g->values[t->in_v];
    int ok = x->rank == v->rank && x->dims[0] >= 1;
    for (int k = 1; ok && k < x->rank; k++)
        if (v->dims[k] >= 0 && x->dims[k] != v->dims[k]) ok = 0;
    if (ok) return TSR_OK;
    char a[160], b[160];
    return tsr_fail(TSR_ERR_SHAPE, "input of shape %s: the graph takes %s (batch first)",
                    tsr_dims_str(x->rank, x->dims, a, sizeof a),
                    tsr_dims_str(v->rank, v->dims, b, sizeof b));
}

static int num_slices(int B) {
    int T = tsr_get_num_threads();
    T = T < 1 ? 1 : T > GT_MAX_THREADS ? GT_MAX_THREADS : T;
    return T > B ? B : T;
}

tsr_status tsr_trainer_forward(tsr_trainer *t, const tsr_array *x, const tsr_array **y) {
    TSR_REQUIRE(t && x, "tsr_trainer_forward: NULL argument");
    if (y) *y = NULL;
    TSR_TRY(gt_check_input(t, x));
    if (x->dims[0] > INT32_MAX) return tsr_fail(TSR_ERR_SHAPE, "batch too large");
    const int B = (int)x->dims[0];
    /* shapes first, serially: errors carry their message on this thread */
    int in_rank = x->rank, orank;
    int64_t in_dims[1][TSR_ARRAY_MAX_RANK], odims[1][TSR_ARRAY_MAX_RANK];
    memcpy(in_dims[0], x->dims, sizeof in_dims[0]);
    TSR_TRY(tsr_graph_infer_shapes(t->g, &in_rank, (const int64_t(*)[TSR_ARRAY_MAX_RANK])in_dims,
                                   &orank, odims));
    if (orank < 1 || odims[0][0] != B)
        return tsr_fail(TSR_ERR_SHAPE,
                        "the graph's output does not keep the batch first (batch %d in, first "
                        "dimension %lld out)",
                        B, orank < 1 ? 0LL : (long long)odims[0][0]);
    clear_run(t, 1);
    sync_params(t);
    const int T = num_slices(B);
    const int L = count_bounded(t);
    const int want_pen = L > 0;
    tsr_status sts[GT_MAX_THREADS];
    for (int i = 0; i < T; i++) {
        t->sl[i].lo = (int)((long)B * i / T);
        t->sl[i].n = (int)((long)B * (i + 1) / T) - t->sl[i].lo;
    }
#pragma omp parallel for schedule(static, 1) if (T > 1)
    for (int i = 0; i < T; i++) sts[i] = slice_forward(t, &t->sl[i], x, want_pen);
    t->T = T;
    for (int i = 0; i < T; i++)
        if (sts[i] != TSR_OK) {
            clear_run(t, 0);
            return tsr_fail(sts[i], "out of memory for a batch of %d", B);
        }
    /* the output, and statistics in slice order */
    tsr_status st = tsr_array_create(&t->y, orank, odims[0]);
    if (st != TSR_OK) {
        clear_run(t, 0);
        return st;
    }
    size_t row = t->y->numel / (size_t)B;
    for (int i = 0; i < T; i++)
        memcpy(t->y->data + (size_t)t->sl[i].lo * row, t->sl[i].act[t->out_v]->data,
               (size_t)t->sl[i].n * row * sizeof(double));
    const tsr_graph *g = t->g;
    t->range_loss = 0;
    for (int ni = 0; ni < g->n_nodes; ni++) {
        double sum = 0;
        for (int i = 0; i < T; i++) {
            const double *sp = t->sl[i].stats + 4 * (size_t)ni;
            if (t->track) {
                if (sp[0] < t->seen[4 * ni]) t->seen[4 * ni] = sp[0];
                if (sp[1] > t->seen[4 * ni + 1]) t->seen[4 * ni + 1] = sp[1];
                if (has_bound(t, ni)) {
                    t->seen[4 * ni + 2] += sp[2];
                    t->seen[4 * ni + 3] += (double)t->sl[i].act[g->nodes[ni].in[0]]->numel;
                }
            }
            sum += sp[3];
        }
        if (want_pen && has_bound(t, ni)) {
            size_t cnt = 0;
            for (int i = 0; i < T; i++) cnt += t->sl[i].act[g->nodes[ni].in[0]]->numel;
            t->range_loss += sum / (double)(cnt ? cnt : 1) / L;
        }
    }
    if (t->track) t->seen_any = 1;
    /* spares no slice took (a run with fewer slices, a value of another size): freed, so that
     * between calls the trainer holds the last forward's activations only */
    for (int i = 0; i < GT_MAX_THREADS; i++) drop_spares(t, &t->sl[i]);
    t->B = B;
    if (y) *y = t->y;
    return TSR_OK;
}

/* ---- backward ------------------------------------------------------------------------ */

static tsr_status want_grad(const tsr_trainer *t, gt_slice *s, int v) {
    if (v < 0) return TSR_OK;
    tsr_value_kind k = t->g->values[v].kind;
    if (k == TSR_VALUE_CONST && !t->trainable[v]) return TSR_OK;
    if (k == TSR_VALUE_INPUT && !t->input_grad) return TSR_OK;
    if (s->grad[v]) return TSR_OK;
    return tsr_array_create(&s->grad[v], s->act[v]->rank, s->act[v]->dims);
}

static tsr_status slice_backward_nodes(tsr_trainer *t, gt_slice *s, const tsr_array *dy, int L,
                                       size_t *pen_count, const tsr_array **in, tsr_array **din);

/* Backward of one slice; in/din are scratch for the widest node's inputs. */
static tsr_status slice_backward(tsr_trainer *t, gt_slice *s, const tsr_array *dy, int L,
                                 size_t *pen_count) {
    const tsr_graph *g = t->g;
    TSR_TRY(want_grad(t, s, t->out_v));
    int maxin = 1;
    for (int i = 0; i < g->n_nodes; i++)
        if (g->nodes[i].n_in > maxin) maxin = g->nodes[i].n_in;
    const tsr_array **in = calloc((size_t)maxin, sizeof *in);
    tsr_array **din = calloc((size_t)maxin, sizeof *din);
    tsr_status st = in && din ? TSR_OK : TSR_ERR_NOMEM;
    if (st == TSR_OK) st = slice_backward_nodes(t, s, dy, L, pen_count, in, din);
    free(in);
    free(din);
    return st;
}

static tsr_status slice_backward_nodes(tsr_trainer *t, gt_slice *s, const tsr_array *dy, int L,
                                       size_t *pen_count, const tsr_array **in, tsr_array **din) {
    const tsr_graph *g = t->g;
    size_t row = dy->numel / dy->dims[0];
    memcpy(s->grad[t->out_v]->data, dy->data + (size_t)s->lo * row,
           (size_t)s->n * row * sizeof(double));
    for (int oi = g->n_nodes - 1; oi >= 0; oi--) {
        int ni = g->order[oi];
        const tsr_graph_node *n = &g->nodes[ni];
        const tsr_array *dout = s->grad[n->out];
        if (!dout) continue;
        for (int k = 0; k < n->n_in; k++) {
            TSR_TRY(want_grad(t, s, n->in[k]));
            in[k] = n->in[k] >= 0 ? s->act[n->in[k]] : NULL;
            din[k] = n->in[k] >= 0 ? s->grad[n->in[k]] : NULL;
        }
        gt_node_backward(n, in, s->act[n->out], dout, din);
        if (L > 0 && t->range_weight > 0 && has_bound(t, ni) && din[0]) {
            /* d/dx of W/L * mean relu(dist)^2: 2 W dist sign / (L count) */
            const double blo = t->bound[2 * ni], bhi = t->bound[2 * ni + 1];
            const double sc = 2 * t->range_weight / L / (double)pen_count[ni];
            const tsr_array *a = in[0];
            for (size_t i = 0; i < a->numel; i++) {
                double v = a->data[i];
                if (v > bhi) din[0]->data[i] += sc * (v - bhi);
                if (v < blo) din[0]->data[i] -= sc * (blo - v);
            }
        }
    }
    return TSR_OK;
}

tsr_status tsr_trainer_backward(tsr_trainer *t, const tsr_array *dy) {
    TSR_REQUIRE(t && dy, "tsr_trainer_backward: NULL argument");
    if (!t->B || !t->y) return tsr_fail(TSR_ERR_INVALID_ARG, "backward needs a forward first");
    int ok = dy->rank == t->y->rank;
    for (int k = 0; ok && k < dy->rank; k++) ok = dy->dims[k] == t->y->dims[k];
    if (!ok) {
        char a[160], b[160];
        return tsr_fail(TSR_ERR_SHAPE, "output gradient of shape %s for an output of shape %s",
                        tsr_dims_str(dy->rank, dy->dims, a, sizeof a),
                        tsr_dims_str(t->y->rank, t->y->dims, b, sizeof b));
    }
    const tsr_graph *g = t->g;
    const int T = t->T, L = count_bounded(t);
    size_t nn = g->n_nodes > 0 ? (size_t)g->n_nodes : 1;
    size_t *pen_count = calloc(nn, sizeof *pen_count);
    if (!pen_count) return tsr_fail(TSR_ERR_NOMEM, "out of memory");
    for (int ni = 0; ni < g->n_nodes; ni++)
        for (int i = 0; i < T; i++) pen_count[ni] += t->sl[i].act[g->nodes[ni].in[0]]->numel;
    /* gradients of an earlier backward on this forward start afresh */
    for (int i = 0; i < T; i++)
        for (int v = 0; v < g->n_values; v++) {
            tsr_array_free(t->sl[i].grad[v]);
            t->sl[i].grad[v] = NULL;
        }
    tsr_status sts[GT_MAX_THREADS];
#pragma omp parallel for schedule(static, 1) if (T > 1)
    for (int i = 0; i < T; i++) sts[i] = slice_backward(t, &t->sl[i], dy, L, pen_count);
    free(pen_count);
    for (int i = 0; i < T; i++)
        if (sts[i] != TSR_OK) return tsr_fail(sts[i], "out of memory in the backward");
    /* parameter gradients in slice order */
    for (int v = 0; v < g->n_values; v++) {
        if (!t->trainable[v]) continue;
        float *gp = t->grads + t->p_off[v];
        size_t n = g->values[v].data->numel;
        for (size_t j = 0; j < n; j++) {
            double acc = 0;
            for (int i = 0; i < T; i++)
                if (t->sl[i].grad[v]) acc += t->sl[i].grad[v]->data[j];
            gp[j] += (float)acc;
        }
    }
    /* the input gradient */
    tsr_array_free(t->dx);
    t->dx = NULL;
    if (t->sl[0].grad[t->in_v]) {
        const tsr_array *x0 = t->sl[0].act[t->in_v];
        int64_t dims[TSR_ARRAY_MAX_RANK];
        memcpy(dims, x0->dims, sizeof dims);
        dims[0] = t->B;
        TSR_TRY(tsr_array_create(&t->dx, x0->rank, dims));
        size_t row = t->dx->numel / (size_t)t->B;
        for (int i = 0; i < T; i++)
            if (t->sl[i].grad[t->in_v])
                memcpy(t->dx->data + (size_t)t->sl[i].lo * row, t->sl[i].grad[t->in_v]->data,
                       (size_t)t->sl[i].n * row * sizeof(double));
    }
    return TSR_OK;
}

const tsr_array *tsr_trainer_input_grad(const tsr_trainer *t) {
    return t->dx;
}
