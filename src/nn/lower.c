/*
 * nn/lower.c - the one model graph (tessera/graph.h) onto the inference
 * model (nn/model.h): every node that reaches the graph output becomes
 * conv / dense / avgpool / poly / square / add / mul layers, aliases
 * nothing, or a line of the report.
 *
 * Invariant: each graph activation (a value computed from the input) maps
 * onto an nn tensor holding the same per-sample values in the same
 * row-major order. Its nn shape (c, h, w) is the *natural* one of its
 * per-sample dimensions (d1, d2, d3...) -> (d1, d2, d3 * ...) when the layer
 * that made it could produce that shape (conv, pools, elementwise layers),
 * else the flat (n, 1, 1) of a dense layer. Layers that look at the
 * geometry (conv, pools, per-channel polynomials) need the natural shape.
 *
 * Rules, per node kind:
 *   Identity, Flatten, Reshape, Squeeze, Unsqueeze   same tensor (the order
 *       of the data is unchanged), once the batch is checked to stay
 *       dimension 0 (shapes inferred at batch 1 and 2);
 *   Conv (groups and dilations expanded into a full kernel with zeros,
 *       symmetric explicit or auto padding), AveragePool (count_include_pad,
 *       symmetric padding, ceil_mode without effect), GlobalAveragePool
 *       -> conv / avgpool; 1D (N, C, L) as (C, L, 1);
 *   Gemm (transB, alpha, beta, bias scalar / (M) / (1, M)), MatMul of an
 *       (N, F) activation by a constant -> dense;
 *   BatchNormalization, Add / Sub / Mul / Div / Neg by scalar or
 *       per-channel constants -> poly of degree 1 (the simplifier folds it);
 *   Pow by a constant integer, Square, polynomials -> poly / square;
 *       Chebyshev series (--approx replacements) -> power-basis poly, lossy;
 *   Add / Sub of two activations of one shape -> add (Sub: negated first);
 *       Mul of an activation by itself -> square; Mul of two activations ->
 *       mul (ciphertext x ciphertext; a broadcast operand first replicated
 *       by a 0/1 dense layer);
 *   MatMul of two activations (attention's Q K^T, scores V) -> two 0/1
 *       dense "expand" layers laying out A[.., i, k] and B[.., k, j] for
 *       every (output, k), one mul, one 0/1 dense "sum" over k
 *       (lower_matmul_act: three levels, P = numel(out) * K products);
 *   anything else affine in its activations (Transpose, Slice, Pad, Concat,
 *       ReduceSum / ReduceMean, MatMul of rank >= 3, convolutions and pools
 *       the rules above do not take, elementwise constants of full shape)
 *       -> one dense layer per activation input (plus an add), the matrix
 *       measured column by column on the graph's own kernel (exact: the
 *       reference executor computes it), at most NN_LOWER_MAX_MATRIX
 *       entries each.
 * Gemm of two activations and non-polynomial kinds are reported.
 */
#include "nn/model.h"

#include "core/alloc.h"
#include "core/error.h"
#include "core/io.h"
#include "graph/graph_internal.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

/* Largest matrix (entries) a measured dense layer may have: 2^22 doubles = 32 MiB. */
#define NN_LOWER_MAX_MATRIX ((int64_t)1 << 22)

typedef struct vinfo {
    int t;                               /* nn tensor (activations), else -1 */
    int rank[2];                         /* full rank at batch 1 and batch 2 (-1: unknown) */
    int64_t dims[2][TSR_ARRAY_MAX_RANK]; /* full dims at batch 1 and batch 2 */
    tsr_array *folded;                   /* constant computed here from constants (owned) */
    /* A zero Pad merged into the convolution / pool reading it: the unpadded value and the
     * pads of its (up to 2) spatial dimensions, begins then ends; pad_src -1 otherwise. */
    int pad_src;
    int64_t pad[4];
} vinfo;

#define T_PENDING (-3) /* lower_node: the output is a pending pad (vinfo.pad_src) */

typedef struct lower {
    const tsr_graph *g;
    tsr_nn_model *m;
    vinfo *v;
    char *rep;
    size_t rep_len, rep_cap;
    int n_bad;
    nn_budget *budget;       /* NULL: no cap */
    const tsr_graph_node *n; /* node being lowered */
    char name[NN_NAME_MAX];  /* its display name */
    char lab[224];           /* "'name' (kind)" */
} lower;

/* ---- helpers ----------------------------------------------------------------------- */

static tsr_status bad(lower *L, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static tsr_status bad(lower *L, const char *fmt, ...) {
    char line[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    size_t need = L->rep_len + strlen(L->lab) + strlen(line) + 8;
    if (need > L->rep_cap) {
        size_t cap = need * 2;
        char *p = tsr_alloc(cap);
        if (!p) return tsr_fail(TSR_ERR_NOMEM, "out of memory");
        if (L->rep_len) memcpy(p, L->rep, L->rep_len + 1);
        tsr_free(L->rep);
        L->rep = p;
        L->rep_cap = cap;
    }
    L->rep_len +=
        (size_t)snprintf(L->rep + L->rep_len, L->rep_cap - L->rep_len, "  %s: %s\n", L->lab, line);
    L->n_bad++;
    return TSR_OK;
}

/* Value index of input k of the current node (-1: omitted). */
static int vin(const lower *L, int k) {
    return k < L->n->n_in ? L->n->in[k] : -1;
}

/* The constant of input k, or NULL when it is an activation or omitted. */
static const tsr_array *cin(const lower *L, int k) {
    int vi = vin(L, k);
    if (vi < 0) return NULL;
    if (L->v[vi].folded) return L->v[vi].folded;
    return L->g->values[vi].kind == TSR_VALUE_CONST ? L->g->values[vi].data : NULL;
}

/* nn tensor of input k, or -1. */
static int tin(const lower *L, int k) {
    int vi = vin(L, k);
    return vi < 0 ? -1 : L->v[vi].t;
}

/* Per-sample rank and dims (batch left out) of value vi. */
static int ps_rank(const lower *L, int vi) {
    return L->v[vi].rank[0] - 1;
}
static const int64_t *ps_dims(const lower *L, int vi) {
    return L->v[vi].dims[0] + 1;
}
static int64_t ps_numel(const lower *L, int vi) {
    int64_t n = 1;
    for (int i = 0; i < ps_rank(L, vi); i++) n *= ps_dims(L, vi)[i];
    return n;
}

/* The natural nn shape of per-sample dims. */
static int natural(int r, const int64_t *d, nn_shape *s) {
    int64_t c = r > 0 ? d[0] : 1, h = r > 1 ? d[1] : 1, w = 1;
    for (int i = 2; i < r; i++) w *= d[i];
    if (c > INT32_MAX || h > INT32_MAX || w > INT32_MAX) return 0;
    *s = (nn_shape){ (int)c, (int)h, (int)w };
    return 1;
}

/* 1 when the activation vi sits in its natural nn shape. */
static int is_natural(const lower *L, int vi) {
    nn_shape s, have = L->m->shapes[L->v[vi].t];
    if (!natural(ps_rank(L, vi), ps_dims(L, vi), &s)) return 0;
    return s.c == have.c && s.h == have.h && s.w == have.w;
}

static void layer_init(lower *L, nn_layer *y, nn_kind kind, int in0, const char *suffix) {
    memset(y, 0, sizeof *y);
    y->kind = kind;
    y->in[0] = in0;
    y->in[1] = -1;
    snprintf(y->name, sizeof y->name, "%.*s%s", (int)(sizeof y->name - 1 - strlen(suffix)), L->name,
             suffix);
    tsr_escape_controls(y->origin, sizeof y->origin, L->n->name ? L->n->name : "", 0);
}

tsr_status nn_budget_check(nn_budget *b, const tsr_nn_model *m, int64_t more_weights,
                           int more_layers) {
    if (!b) return TSR_OK;
    int64_t w = b->weights + more_weights;
    int nl = m->n_layers + more_layers;
    if (more_layers == 0 && more_weights == 0) /* the whole model, counted */
        for (int i = 0; i < m->n_layers; i++) w += m->layers[i].w_len + m->layers[i].b_len;
    if (w <= b->max_weights && nl <= b->max_layers) {
        b->weights = w;
        return TSR_OK;
    }
    b->over = 1;
    return tsr_fail(TSR_ERR_FORMAT,
                    "plan: its graph lowers to %lld weights in %d layers (a plan of its size may "
                    "lower to at most %lld weights and %d layers)",
                    (long long)w, nl, (long long)b->max_weights, b->max_layers);
}

/* Append a layer (within the budget); *t its output tensor. */
static tsr_status push(lower *L, const nn_layer *y, int *t) {
    TSR_TRY(nn_budget_check(L->budget, L->m, y->w_len + y->b_len, 1));
    return nn_model_push(L->m, y, t);
}

/* y = sum_k coef[k] x^k with nc polynomials of degree deg. */
static tsr_status push_poly(lower *L, int in, int deg, int nc, const double *coef, int lossy,
                            double bound, const char *suffix, int *t) {
    nn_layer y;
    layer_init(L, &y, NN_POLY, in, suffix);
    y.degree = deg;
    y.nc = nc;
    y.lossy = lossy;
    y.bound = bound;
    y.w_len = (int64_t)nc * (deg + 1);
    y.w = (double *)coef;
    return push(L, &y, t);
}

/* ---- the measured dense layer ---------------------------------------------------------- */

/* Allocate an array of the given full rank/dims with dims[0] replaced by B. */
static tsr_status batch_array(tsr_array **out, int rank, const int64_t *dims, int64_t B) {
    int64_t d[TSR_ARRAY_MAX_RANK];
    memcpy(d, dims, (size_t)rank * sizeof *d);
    d[0] = B;
    return tsr_array_create(out, rank, d);
}

/*
 * Run the current node on a batch of B samples in which activation input
 * `probe` carries rows[B][numel] (NULL: zeros) and other activations zeros.
 * *y receives the output (caller frees).
 */
static tsr_status run_node(lower *L, int probe, int64_t B, const double *rows, tsr_array **y) {
    /* probe -1: constants only, no batch */
    const tsr_graph_node *n = L->n;
    tsr_array *own[16] = { 0 };
    const tsr_array *in[16] = { 0 };
    int rank[16];
    int64_t dims[16][TSR_ARRAY_MAX_RANK];
    tsr_status st = TSR_OK;
    *y = NULL;
    if (n->n_in > 16) return tsr_fail(TSR_ERR_UNSUPPORTED, "%s: too many inputs", L->lab);
    for (int k = 0; k < n->n_in && st == TSR_OK; k++) {
        int vi = n->in[k];
        rank[k] = -1;
        if (vi < 0) continue;
        const tsr_array *c = cin(L, k);
        if (c) {
            in[k] = c;
            rank[k] = c->rank;
            memcpy(dims[k], c->dims, sizeof dims[k]);
            continue;
        }
        st = batch_array(&own[k], L->v[vi].rank[0], L->v[vi].dims[0], B);
        if (st != TSR_OK) break;
        if (k == probe && rows) memcpy(own[k]->data, rows, own[k]->numel * sizeof(double));
        in[k] = own[k];
        rank[k] = own[k]->rank;
        memcpy(dims[k], own[k]->dims, sizeof dims[k]);
    }
    int orank;
    int64_t od[TSR_ARRAY_MAX_RANK];
    if (st == TSR_OK)
        st = tsr_graph_node_shape(L->g, n, rank, (const int64_t(*)[TSR_ARRAY_MAX_RANK])dims, in,
                                  &orank, od);
    if (st == TSR_OK && probe >= 0 && (orank < 1 || od[0] != B))
        st = tsr_fail(TSR_ERR_UNSUPPORTED, "%s: the batch does not stay dimension 0", L->lab);
    if (st == TSR_OK) st = tsr_array_create(y, orank, od);
    if (st == TSR_OK) tsr_graph_node_exec(n, in, *y);
    for (int k = 0; k < 16; k++) tsr_array_free(own[k]);
    if (st != TSR_OK) {
        tsr_array_free(*y);
        *y = NULL;
    }
    return st;
}

/*
 * A pure data movement that keeps each sample to itself: every output value is
 * one input value or 0, so its matrix has one 1 per row at most and its bias
 * is 0. A Transpose that keeps dimension 0 first; a Concat off dimension 0.
 */
static int moves_within_sample(const lower *L, int k) {
    const tsr_graph_node *n = L->n;
    int R = L->v[vin(L, k)].rank[0];
    switch (n->kind) {
    case TSR_NODE_TRANSPOSE:
        return n->a.n_perm ? n->a.perm[0] == 0 : R == 1;
    case TSR_NODE_CONCAT:
        return R >= 1 && n->a.axis != 0 && n->a.axis != -R && n->a.axis >= -R && n->a.axis < R;
    default:
        return 0;
    }
}

/* A measured matrix w (M x K, row-major) and bias b (M); *identity if it is y = x. */
typedef struct {
    double *w;
    double *b;
    int identity;
} measured;

static void measured_free(measured *d) {
    tsr_free(d->w);
    tsr_free(d->b);
}

static tsr_status mixes_samples(lower *L, tsr_status st) {
    if (st != TSR_ERR_UNSUPPORTED) return st;
    tsr_clear_error();
    return bad(L, "mixes the samples of a batch (the batch must stay dimension 0)");
}

/*
 * Activation input k through the node on K+1 samples: sample 0 all zeros
 * (the bias), sample i+1 the unit vector e_i; w[m][i] = y_{i+1}[m] - y_0[m].
 */
static tsr_status measure_units(lower *L, int k, int64_t K, int64_t M, int identity, measured *d) {
    int64_t B = K + 1;
    double *rows = tsr_calloc_array((size_t)(B * K), sizeof *rows);
    if (!rows) return tsr_fail(TSR_ERR_NOMEM, "out of memory");
    for (int64_t i = 0; i < K; i++) rows[(i + 1) * K + i] = 1.0;
    tsr_array *y = NULL;
    tsr_status st = run_node(L, k, B, rows, &y);
    tsr_free(rows);
    TSR_TRY(mixes_samples(L, st));
    if ((int64_t)y->numel != B * M) {
        tsr_array_free(y);
        return tsr_fail(TSR_ERR_INTERNAL, "%s: measured output of %zu values", L->lab, y->numel);
    }
    d->w = tsr_alloc((size_t)(M * K) * sizeof *d->w);
    d->b = tsr_alloc((size_t)M * sizeof *d->b);
    if (!d->w || !d->b) {
        tsr_array_free(y);
        measured_free(d);
        return tsr_fail(TSR_ERR_NOMEM, "out of memory");
    }
    const double *z = y->data;
    for (int64_t m = 0; m < M; m++)
        for (int64_t i = 0; i < K; i++) {
            double w = z[(i + 1) * M + m] - z[m];
            d->w[m * K + i] = w;
            if (w != (m == i ? 1.0 : 0.0)) identity = 0;
        }
    memcpy(d->b, z, (size_t)M * sizeof *d->b);
    tsr_array_free(y);
    d->identity = identity;
    return TSR_OK;
}

/*
 * The same matrix for a data movement (moves_within_sample): one sample whose
 * value i is i + 1 tells, for each output m, the input it copies (or 0: none).
 * One run on K values instead of K+1 runs' worth; the matrix and bias are
 * bit-identical to measure_units' (1.0 - 0.0, 0.0 - 0.0 and a bias of 0.0).
 */
static tsr_status measure_indices(lower *L, int k, int64_t K, int64_t M, int identity,
                                  measured *d) {
    double *rows = tsr_alloc((size_t)K * sizeof *rows);
    if (!rows) return tsr_fail(TSR_ERR_NOMEM, "out of memory");
    for (int64_t i = 0; i < K; i++) rows[i] = (double)(i + 1);
    tsr_array *y = NULL;
    tsr_status st = run_node(L, k, 1, rows, &y);
    tsr_free(rows);
    TSR_TRY(mixes_samples(L, st));
    if ((int64_t)y->numel != M) {
        tsr_array_free(y);
        return tsr_fail(TSR_ERR_INTERNAL, "%s: measured output of %zu values", L->lab, y->numel);
    }
    d->w = tsr_calloc_array((size_t)(M * K), sizeof *d->w);
    d->b = tsr_calloc_array((size_t)M, sizeof *d->b);
    if (!d->w || !d->b) {
        tsr_array_free(y);
        measured_free(d);
        return tsr_fail(TSR_ERR_NOMEM, "out of memory");
    }
    const double *z = y->data;
    for (int64_t m = 0; m < M; m++) {
        double v = z[m];
        if (v == 0) {
            identity = 0;
            continue;
        }
        int64_t i = (int64_t)v - 1;
        if (!(v >= 1 && v <= (double)K) || (double)(i + 1) != v) {
            tsr_array_free(y);
            measured_free(d);
            return tsr_fail(TSR_ERR_INTERNAL, "%s: output %lld is not a copy of an input", L->lab,
                            (long long)m);
        }
        d->w[m * K + i] = 1.0;
        if (i != m) identity = 0;
    }
    tsr_array_free(y);
    d->identity = identity;
    return TSR_OK;
}

/* The node as dense layers: one per activation input, summed. */
static tsr_status lower_measured(lower *L, int *t_out) {
    const tsr_graph_node *n = L->n;
    int out_v = n->out;
    int64_t M = ps_numel(L, out_v);
    int acc = -1;
    int first = 1, acts = 0;
    for (int k = 0; k < n->n_in; k++) acts += vin(L, k) >= 0 && !cin(L, k);
    for (int k = 0; k < n->n_in; k++) {
        int vi = vin(L, k);
        if (vi < 0 || cin(L, k)) continue;
        int64_t K = ps_numel(L, vi);
        if (K * M > NN_LOWER_MAX_MATRIX)
            return bad(L,
                       "as a dense layer it would need a %lld x %lld matrix (at most %lld "
                       "entries): not supported at this size",
                       (long long)M, (long long)K, (long long)NN_LOWER_MAX_MATRIX);
        if (L->budget) { /* before measuring: the matrix alone must fit */
            nn_budget probe = *L->budget;
            tsr_status bs = nn_budget_check(&probe, L->m, K * M, 1);
            L->budget->over = probe.over;
            TSR_TRY(bs);
        }
        measured md = { 0 };
        int identity = acts == 1 && M == K;
        TSR_TRY(moves_within_sample(L, k) ? measure_indices(L, k, K, M, identity, &md)
                                          : measure_units(L, k, K, M, identity, &md));
        nn_layer d;
        layer_init(L, &d, NN_DENSE, L->v[vi].t, k ? ".in2" : "");
        d.w_len = M * K;
        d.w = md.w;
        if (first) {
            d.b_len = M;
            d.b = md.b;
            for (int64_t m = 0; m < M; m++)
                if (md.b[m] != 0) md.identity = 0;
        }
        int t = -1;
        tsr_status st = TSR_OK;
        if (md.identity) {
            t = L->v[vi].t; /* an identity map (a transpose of size-1 axes, a full slice, ...) */
        } else {
            st = push(L, &d, &t);
        }
        measured_free(&md);
        TSR_TRY(st);
        if (acc < 0) {
            acc = t;
        } else {
            nn_layer a;
            layer_init(L, &a, NN_ADD, acc, ".sum");
            a.in[1] = t;
            TSR_TRY(push(L, &a, &acc));
        }
        first = 0;
    }
    *t_out = acc;
    return TSR_OK;
}

/* ---- kinds with their own layer ----------------------------------------------------------- */

/*
 * A constant against an activation of full rank R with dims d: 1 = scalar
 * (*vals = 1 value), 2 = one value per channel (dimension 1; d[1] values
 * written to vals), 0 = anything else.
 */
static int classify_const(const tsr_array *c, int R, const int64_t *d, double *vals, int cap) {
    if (c->numel == 1) {
        vals[0] = c->data[0];
        return 1;
    }
    if (c->rank > R || R < 2 || d[1] > cap) return 0;
    for (int a = 0; a < R; a++) {
        int ca = a - (R - c->rank);
        int64_t cd = ca >= 0 ? c->dims[ca] : 1;
        if (a != 1 && cd != 1) return 0;
        if (a == 1 && cd != d[1] && cd != 1) return 0;
    }
    for (int64_t j = 0; j < d[1]; j++) vals[j] = c->data[(size_t)j % c->numel];
    return 2;
}

#define MAX_CH 65536

/* x (op) c with a scalar or per-channel constant as a degree-1 polynomial; 0 if it does not fit. */
static tsr_status lower_affine_const(lower *L, int act_k, int *t, int *done) {
    *done = 0;
    const tsr_graph_node *n = L->n;
    int vi = vin(L, act_k);
    const tsr_array *c = n->kind == TSR_NODE_NEG ? NULL : cin(L, 1 - act_k);
    if (n->kind != TSR_NODE_NEG && !c) return TSR_OK;
    /* the output must have the activation's shape (no broadcast growth) */
    const vinfo *o = &L->v[n->out], *x = &L->v[vi];
    if (o->rank[0] != x->rank[0] || memcmp(o->dims[0], x->dims[0], (size_t)o->rank[0] * 8))
        return TSR_OK;
    int R = x->rank[0];
    double *vals = tsr_alloc(MAX_CH * sizeof *vals);
    if (!vals) return tsr_fail(TSR_ERR_NOMEM, "out of memory");
    int cls = c ? classify_const(c, R, x->dims[0], vals, MAX_CH) : 1;
    if (!c) vals[0] = 0;
    int nc = cls == 2 ? (int)x->dims[0][1] : 1;
    if (cls == 0 || (cls == 2 && (!is_natural(L, vi) || R < 2))) {
        tsr_free(vals);
        return TSR_OK;
    }
    double *coef = tsr_alloc((size_t)nc * 2 * sizeof *coef);
    if (!coef) {
        tsr_free(vals);
        return tsr_fail(TSR_ERR_NOMEM, "out of memory");
    }
    for (int j = 0; j < nc; j++) {
        double v = vals[j], c0 = 0, c1 = 1;
        switch (n->kind) {
        case TSR_NODE_ADD:
            c0 = v;
            break;
        case TSR_NODE_SUB:
            if (act_k == 0) {
                c0 = -v;
            } else {
                c0 = v;
                c1 = -1;
            }
            break;
        case TSR_NODE_MUL:
            c1 = v;
            break;
        case TSR_NODE_DIV:
            c1 = 1.0 / v;
            break;
        case TSR_NODE_NEG:
            c1 = -1;
            break;
        default:
            TSR_ASSERT(0);
        }
        coef[2 * j] = c0;
        coef[2 * j + 1] = c1;
    }
    tsr_free(vals);
    tsr_status st = TSR_OK;
    int before = L->n_bad;
    for (int j = 0; st == TSR_OK && j < 2 * nc; j++)
        if (!isfinite(coef[j])) st = bad(L, "the constant gives non-finite coefficients");
    if (st == TSR_OK && L->n_bad == before) st = push_poly(L, L->v[vi].t, 1, nc, coef, 0, 0, "", t);
    tsr_free(coef);
    *done = 1;
    return st;
}

/* Power-basis coefficients of sum_k c_k T_k(u), u = a x + b, degree D (p has D+1 entries). */
static void cheb_to_power(const double *c, int D, double lo, double hi, double *p) {
    double a = 2.0 / (hi - lo), b = -(lo + hi) / (hi - lo);
    double tk[NN_MAX_DEGREE + 2], tkm1[NN_MAX_DEGREE + 2], tmp[NN_MAX_DEGREE + 2];
    memset(p, 0, (size_t)(D + 1) * sizeof *p);
    memset(tkm1, 0, sizeof tkm1);
    memset(tk, 0, sizeof tk);
    tkm1[0] = 1; /* T_0 */
    tk[0] = b;   /* T_1 = a x + b */
    tk[1] = a;
    p[0] += c[0];
    for (int k = 1; k <= D; k++) {
        for (int j = 0; j <= D; j++) p[j] += c[k] * tk[j];
        /* T_{k+1} = 2 (a x + b) T_k - T_{k-1} */
        for (int j = 0; j <= NN_MAX_DEGREE + 1; j++) {
            double v = 2 * b * tk[j] - tkm1[j];
            if (j > 0) v += 2 * a * tk[j - 1];
            tmp[j] = v;
        }
        memcpy(tkm1, tk, sizeof tk);
        memcpy(tk, tmp, sizeof tk);
    }
}

static tsr_status lower_poly(lower *L, int *t) {
    const tsr_graph_node *n = L->n;
    const tsr_array *c = cin(L, 1);
    int vi = vin(L, 0);
    if (!c || tin(L, 0) < 0) return bad(L, "the coefficients must be constants");
    int D = (int)c->dims[c->rank - 1] - 1, nc = c->rank == 2 ? (int)c->dims[0] : 1;
    int R = L->v[vi].rank[0];
    int64_t axis = n->a.axis < 0 ? n->a.axis + R : n->a.axis;
    if (nc > 1 && (axis != 1 || !is_natural(L, vi) || L->v[vi].dims[0][1] != nc))
        return bad(L,
                   "one polynomial per index of axis %lld: only per channel (axis 1) is "
                   "supported",
                   (long long)n->a.axis);
    if (D > NN_MAX_DEGREE)
        return bad(L, "degree %d: at most %d (lower the degree of the approximation)", D,
                   NN_MAX_DEGREE);
    double *p = tsr_alloc((size_t)nc * (D + 1) * sizeof *p);
    if (!p) return tsr_fail(TSR_ERR_NOMEM, "out of memory");
    int cheb = n->kind == TSR_NODE_CHEBYSHEV;
    for (int j = 0; j < nc; j++) {
        if (cheb)
            cheb_to_power(c->data + (size_t)j * (D + 1), D, n->a.lo, n->a.hi, p + j * (D + 1));
        else
            memcpy(p + j * (D + 1), c->data + (size_t)j * (D + 1), (size_t)(D + 1) * sizeof *p);
    }
    /* trailing zero coefficients (all polynomials) do not count towards the degree */
    int deg = D;
    while (deg > 0) {
        int zero = 1;
        for (int j = 0; j < nc; j++)
            if (p[j * (D + 1) + deg] != 0) zero = 0;
        if (!zero) break;
        deg--;
    }
    tsr_status st;
    if (deg < 1) {
        st = bad(L, "a constant polynomial (degree 0) does not depend on its input");
    } else {
        for (int j = 0; j < nc; j++)
            memmove(p + j * (deg + 1), p + j * (D + 1), (size_t)(deg + 1) * sizeof *p);
        double bound = cheb ? fmax(fabs(n->a.lo), fabs(n->a.hi)) : 0;
        st = push_poly(L, tin(L, 0), deg, nc, p, cheb, bound, "", t);
        if (st == TSR_OK && cheb)
            snprintf(L->m->layers[L->m->n_layers - 1].origin, NN_ORIGIN_MAX,
                     "%s: degree-%d Chebyshev interpolant on [%g, %g]", L->name, D, n->a.lo,
                     n->a.hi);
    }
    tsr_free(p);
    return st;
}

static tsr_status lower_pow(lower *L, int *t) {
    const tsr_array *e = cin(L, 1);
    if (!e || e->numel != 1) return bad(L, "the exponent must be a constant scalar");
    double ev = e->data[0];
    if (!(ev >= 1 && ev <= NN_MAX_DEGREE && ev == floor(ev)))
        return bad(L, "exponent %g: only integers 1..%d are polynomial", ev, NN_MAX_DEGREE);
    int k = (int)ev;
    if (k == 1) {
        *t = tin(L, 0);
        return TSR_OK;
    }
    if (k == 2) {
        nn_layer y;
        layer_init(L, &y, NN_SQUARE, tin(L, 0), "");
        return push(L, &y, t);
    }
    double p[NN_MAX_DEGREE + 1] = { 0 };
    p[k] = 1;
    return push_poly(L, tin(L, 0), k, 1, p, 0, 0, "", t);
}

/*
 * Conv or AveragePool as one nn layer when the geometry fits: 1 or 2
 * spatial dims, symmetric padding smaller than the kernel, floor output
 * sizes. *done = 0 when it does not fit (the caller measures a dense layer).
 */
static tsr_status lower_window(lower *L, int *t, int *done) {
    const tsr_graph_node *n = L->n;
    *done = 0;
    int vp = vin(L, 0), vi = vp;
    const int64_t *extra = NULL; /* pads of a merged Pad node */
    if (L->v[vp].pad_src >= 0) {
        vi = L->v[vp].pad_src;
        extra = L->v[vp].pad;
    }
    if (L->v[vi].t < 0 || !is_natural(L, vi)) return TSR_OK;
    const vinfo *x = &L->v[vi];
    int R = x->rank[0];
    if (R != 3 && R != 4) return TSR_OK;
    int conv = n->kind == TSR_NODE_CONV, gap = n->kind == TSR_NODE_GLOBAL_AVGPOOL;
    const tsr_array *w = conv ? cin(L, 1) : NULL;
    if (conv && (!w || w->rank != R || (n->n_in > 2 && vin(L, 2) >= 0 && !cin(L, 2))))
        return TSR_OK;
    int64_t C = x->dims[0][1], H = x->dims[0][2], W = R == 4 ? x->dims[0][3] : 1;
    nn_layer y;
    layer_init(L, &y, conv ? NN_CONV : NN_AVGPOOL, x->t, "");
    if (gap) {
        if (H > 64 || W > 64) return TSR_OK;
        y.kh = (int)H;
        y.kw = (int)W;
        y.sh = y.sw = 1;
        y.count_pad = 1;
        *done = 1;
        return push(L, &y, t);
    }
    int64_t kern[TSR_GRAPH_MAX_SPATIAL];
    for (int i = 0; i < R - 2; i++) kern[i] = conv ? w->dims[2 + i] : n->a.kernel[i];
    tsr_pool_geom geo;
    if (tsr_graph_pool_geom(n, R, L->v[vp].dims[0], kern, &geo) != TSR_OK) {
        tsr_clear_error();
        return TSR_OK;
    }
    int64_t k[2] = { 1, 1 }, s[2] = { 1, 1 }, p[2] = { 0, 0 }, d[2] = { 1, 1 }, in[2] = { H, W },
            out[2] = { 1, 1 };
    for (int i = 0; i < geo.ns; i++) {
        int64_t pb = geo.pb[i] + (extra ? extra[i] : 0),
                pe = geo.pe[i] + (extra ? extra[2 + i] : 0);
        if (pb != pe) return TSR_OK;
        k[i] = geo.k[i];
        s[i] = geo.s[i];
        p[i] = pb;
        d[i] = geo.d[i];
        out[i] = geo.out[i];
    }
    if (geo.ns == 1) out[1] = 1;
    int64_t ek[2];
    for (int i = 0; i < 2; i++) {
        ek[i] = (k[i] - 1) * d[i] + 1;
        if (ek[i] > 64 || s[i] > 64 || p[i] >= ek[i]) return TSR_OK;
        if (nn_out_size((int)in[i], (int)ek[i], (int)s[i], (int)p[i]) != out[i]) return TSR_OK;
    }
    if (!conv && (d[0] != 1 || d[1] != 1)) return TSR_OK;
    y.kh = (int)ek[0];
    y.kw = (int)ek[1];
    y.sh = (int)s[0];
    y.sw = (int)s[1];
    y.ph = (int)p[0];
    y.pw = (int)p[1];
    if (!conv) {
        /* the zeros of a merged Pad are data: counted (its own pads are zero, see pad_merges) */
        y.count_pad = n->a.count_include_pad || extra || (p[0] == 0 && p[1] == 0);
        *done = 1;
        return push(L, &y, t);
    }
    /* full kernel (F, C, ekh, ekw): groups and dilations as zeros */
    int64_t F = w->dims[0], Cg = w->dims[1], G = n->a.group > 0 ? n->a.group : 1;
    if (Cg * G != C || F % G) return TSR_OK;
    int64_t len = F * C * ek[0] * ek[1];
    if (len > NN_LOWER_MAX_MATRIX) return TSR_OK;
    y.w_len = len;
    y.w = tsr_calloc_array((size_t)len, sizeof *y.w);
    if (!y.w) return tsr_fail(TSR_ERR_NOMEM, "out of memory");
    int64_t Fg = F / G;
    for (int64_t f = 0; f < F; f++) {
        int64_t gi = f / Fg;
        for (int64_t cg = 0; cg < Cg; cg++)
            for (int64_t a = 0; a < k[0]; a++)
                for (int64_t b = 0; b < k[1]; b++) {
                    double v = w->data[((f * Cg + cg) * k[0] + a) * k[1] + b];
                    int64_t ch = gi * Cg + cg;
                    y.w[((f * C + ch) * ek[0] + a * d[0]) * ek[1] + b * d[1]] = v;
                }
    }
    const tsr_array *bias = n->n_in > 2 ? cin(L, 2) : NULL;
    if (bias && bias->numel != (size_t)F) {
        tsr_free(y.w);
        return TSR_OK;
    }
    if (bias) {
        y.b_len = F;
        y.b = bias->data;
    }
    *done = 1;
    tsr_status st = push(L, &y, t);
    tsr_free(y.w);
    return st;
}

/* Gemm / MatMul of an (N, F) activation by a constant matrix as a dense layer. */
static tsr_status lower_dense(lower *L, int *t, int *done) {
    const tsr_graph_node *n = L->n;
    *done = 0;
    int vi = vin(L, 0);
    const tsr_array *B = cin(L, 1), *Cb = n->n_in > 2 ? cin(L, 2) : NULL;
    if (tin(L, 0) < 0 || !B || B->rank != 2 || L->v[vi].rank[0] != 2) return TSR_OK;
    int gemm = n->kind == TSR_NODE_GEMM;
    if (gemm && (n->a.trans_a || (n->n_in > 2 && vin(L, 2) >= 0 && !Cb))) return TSR_OK;
    int tb = gemm && n->a.trans_b;
    double alpha = gemm ? n->a.alpha : 1, beta = gemm ? n->a.beta : 1;
    int64_t F = L->v[vi].dims[0][1], M = tb ? B->dims[0] : B->dims[1];
    if ((tb ? B->dims[1] : B->dims[0]) != F || F * M > NN_LOWER_MAX_MATRIX) return TSR_OK;
    /* bias: scalar, (M) or (1, M) */
    if (Cb && !(Cb->numel == 1 || (Cb->rank == 1 && Cb->dims[0] == M) ||
                (Cb->rank == 2 && Cb->dims[0] == 1 && Cb->dims[1] == M)))
        return TSR_OK;
    nn_layer y;
    layer_init(L, &y, NN_DENSE, L->v[vi].t, "");
    y.w_len = M * F;
    y.w = tsr_alloc((size_t)(M * F) * sizeof *y.w);
    y.b = Cb ? tsr_alloc((size_t)M * sizeof *y.b) : NULL;
    if (!y.w || (Cb && !y.b)) {
        tsr_free(y.w);
        tsr_free(y.b);
        return tsr_fail(TSR_ERR_NOMEM, "out of memory");
    }
    for (int64_t m = 0; m < M; m++)
        for (int64_t f = 0; f < F; f++)
            y.w[m * F + f] = alpha * (tb ? B->data[m * F + f] : B->data[f * M + m]);
    if (Cb) {
        y.b_len = M;
        for (int64_t m = 0; m < M; m++) y.b[m] = beta * Cb->data[Cb->numel == 1 ? 0 : m];
    }
    *done = 1;
    tsr_status st = push(L, &y, t);
    tsr_free(y.w);
    tsr_free(y.b);
    return st;
}

static tsr_status lower_batchnorm(lower *L, int *t, int *done) {
    *done = 0;
    int vi = vin(L, 0);
    const tsr_array *sc = cin(L, 1), *bi = cin(L, 2), *mu = cin(L, 3), *var = cin(L, 4);
    if (tin(L, 0) < 0 || !sc || !bi || !mu || !var || !is_natural(L, vi) || L->v[vi].rank[0] < 2)
        return TSR_OK;
    int64_t C = L->v[vi].dims[0][1];
    if (sc->numel != (size_t)C || bi->numel != (size_t)C || mu->numel != (size_t)C ||
        var->numel != (size_t)C || C > MAX_CH)
        return TSR_OK;
    double *coef = tsr_alloc((size_t)C * 2 * sizeof *coef);
    if (!coef) return tsr_fail(TSR_ERR_NOMEM, "out of memory");
    for (int64_t c = 0; c < C; c++) {
        double k = sc->data[c] / sqrt(var->data[c] + L->n->a.epsilon);
        coef[2 * c + 1] = k;
        coef[2 * c] = bi->data[c] - mu->data[c] * k;
    }
    *done = 1;
    tsr_status st = push_poly(L, L->v[vi].t, 1, (int)C, coef, 0, 0, "", t);
    tsr_free(coef);
    return st;
}

/* Tensor *t as a flat (n, 1, 1) tensor: an identity dense layer. */
static tsr_status flatten(lower *L, int *t) {
    int64_t K = nn_numel(L->m->shapes[*t]);
    nn_layer d;
    layer_init(L, &d, NN_DENSE, *t, ".flat");
    d.w_len = K * K;
    d.w = tsr_calloc_array((size_t)(K * K), sizeof *d.w);
    if (!d.w) return tsr_fail(TSR_ERR_NOMEM, "out of memory");
    for (int64_t i = 0; i < K; i++) d.w[i * K + i] = 1;
    tsr_status st = push(L, &d, t);
    tsr_free(d.w);
    return st;
}

/* ---- products of two activations ------------------------------------------------------------ */

/* Largest number of pairwise products (P) a MatMul of two activations may expand into. */
#define NN_LOWER_MAX_PRODUCTS ((int64_t)1 << 16)

/*
 * MatMul of two activations A (..., T, D) and B (..., D, T') with the ONNX
 * (numpy) broadcasting of the leading dimensions, per sample:
 *   EA   dense, 0/1 matrix (P x numel A): EA x[p = (o, k)] = A[o's batch, i, k]
 *   EB   dense, 0/1 matrix (P x numel B): EB x[p = (o, k)] = B[o's batch, k, j]
 *   mul  EA * EB elementwise (ciphertext x ciphertext)
 *   sum  dense, 0/1 matrix (numel O x P) adding the D products of each output
 * where o = (batch..., i, j) runs over the output and k over D, so
 * P = numel O * D. Three levels; the expansions read each value once (all
 * but one entry of each row is zero, so a tiled product skips most weight
 * tiles).
 */
static tsr_status lower_matmul_act(lower *L, int *t) {
    const tsr_graph_node *n = L->n;
    int va = vin(L, 0), vb = vin(L, 1), vo = n->out;
    const vinfo *A = &L->v[va], *B = &L->v[vb], *O = &L->v[vo];
    int ra = A->rank[0], rb = B->rank[0], ro = O->rank[0];
    if (ra < 3 || rb < 3 || ro != (ra > rb ? ra : rb))
        return bad(L,
                   "product of two activations of ranks %d and %d: each needs a batch "
                   "dimension and a matrix (rank >= 3)",
                   ra, rb);
    if (ra != rb) /* numpy would line one batch dimension up with a feature dimension */
        return bad(L, "product of two activations of different ranks (%d and %d)", ra, rb);
    const int64_t *ad = A->dims[0], *bd = B->dims[0], *od = O->dims[0];
    int64_t T = ad[ra - 2], D = ad[ra - 1], Tp = bd[rb - 1];
    if (bd[rb - 2] != D || od[ro - 2] != T || od[ro - 1] != Tp)
        return tsr_fail(TSR_ERR_INTERNAL, "%s: MatMul shapes do not agree", L->lab);
    int64_t KA = ps_numel(L, va), KB = ps_numel(L, vb), M = ps_numel(L, vo), P = M * D;
    /* each of the three 0/1 matrices (P x KA, P x KB, M x P) at most 2^24 entries */
    if (P > NN_LOWER_MAX_PRODUCTS || P * (KA > KB ? KA : KB) > 4 * NN_LOWER_MAX_MATRIX ||
        M * P > 4 * NN_LOWER_MAX_MATRIX)
        return bad(L,
                   "product of two activations needing %lld pairwise products (at most %lld): "
                   "not supported at this size",
                   (long long)P, (long long)NN_LOWER_MAX_PRODUCTS);
    /* strides of A and B (full dims at batch 1), for broadcasting of the leading dims */
    int64_t sa[TSR_ARRAY_MAX_RANK], sb[TSR_ARRAY_MAX_RANK];
    sa[ra - 1] = 1;
    for (int i = ra - 2; i >= 0; i--) sa[i] = sa[i + 1] * ad[i + 1];
    sb[rb - 1] = 1;
    for (int i = rb - 2; i >= 0; i--) sb[i] = sb[i + 1] * bd[i + 1];
    nn_layer ea, eb, sum;
    layer_init(L, &ea, NN_DENSE, A->t, ".expand_a");
    layer_init(L, &eb, NN_DENSE, B->t, ".expand_b");
    layer_init(L, &sum, NN_DENSE, -1, ".sum");
    ea.w_len = P * KA;
    eb.w_len = P * KB;
    sum.w_len = M * P;
    ea.w = tsr_calloc_array((size_t)ea.w_len, sizeof *ea.w);
    eb.w = tsr_calloc_array((size_t)eb.w_len, sizeof *eb.w);
    sum.w = tsr_calloc_array((size_t)sum.w_len, sizeof *sum.w);
    tsr_status st = TSR_OK;
    if (!ea.w || !eb.w || !sum.w) st = tsr_fail(TSR_ERR_NOMEM, "out of memory");
    for (int64_t o = 0; st == TSR_OK && o < M; o++) {
        /* unravel o over the output dims (dimension 0 is the batch of 1) */
        int64_t idx[TSR_ARRAY_MAX_RANK], r = o;
        for (int d = ro - 1; d >= 1; d--) {
            idx[d] = r % od[d];
            r /= od[d];
        }
        idx[0] = 0;
        int64_t i = idx[ro - 2], j = idx[ro - 1], a0 = 0, b0 = 0;
        for (int d = 1; d < ro - 2; d++) {
            int da = d - (ro - ra), db = d - (ro - rb);
            if (da >= 1 && ad[da] > 1) a0 += idx[d] * sa[da];
            if (db >= 1 && bd[db] > 1) b0 += idx[d] * sb[db];
        }
        for (int64_t k = 0; k < D; k++) {
            int64_t p = o * D + k;
            ea.w[p * KA + a0 + i * sa[ra - 2] + k] = 1;
            eb.w[p * KB + b0 + k * sb[rb - 2] + j] = 1;
            sum.w[o * P + p] = 1;
        }
    }
    int ta = -1, tb = -1, tm = -1;
    if (st == TSR_OK) st = push(L, &ea, &ta);
    if (st == TSR_OK) st = push(L, &eb, &tb);
    if (st == TSR_OK) {
        nn_layer y;
        layer_init(L, &y, NN_MUL, ta, ".mul");
        y.in[1] = tb;
        st = push(L, &y, &tm);
    }
    if (st == TSR_OK) {
        sum.in[0] = tm;
        snprintf(sum.name, sizeof sum.name, "%.*s", (int)(sizeof sum.name - 1), L->name);
        st = push(L, &sum, t);
    }
    tsr_free(ea.w);
    tsr_free(eb.w);
    tsr_free(sum.w);
    return st;
}

/*
 * Activation k of the current node broadcast to the node's output shape
 * (numpy rules) as a 0/1 dense layer, or as it is when it has that shape
 * (flattened by an identity when `flat` and it is not flat). *t: the tensor.
 */
static tsr_status broadcast_act(lower *L, int k, int flat, int *t) {
    int vi = vin(L, k), vo = L->n->out;
    const vinfo *X = &L->v[vi], *O = &L->v[vo];
    int rx = X->rank[0], ro = O->rank[0];
    *t = X->t;
    if (rx == ro && !memcmp(X->dims[0], O->dims[0], (size_t)ro * 8)) {
        nn_shape s = L->m->shapes[*t];
        if (flat && (s.h != 1 || s.w != 1)) {
            if (nn_numel(s) * nn_numel(s) > NN_LOWER_MAX_MATRIX)
                return bad(L, "its inputs are laid out differently and too large to flatten");
            return flatten(L, t);
        }
        return TSR_OK;
    }
    if (rx != ro) /* numpy would line the batch dimension up with a feature dimension */
        return bad(L, "an activation of rank %d broadcast to rank %d", rx, ro);
    int64_t K = ps_numel(L, vi), M = ps_numel(L, vo);
    if (K * M > NN_LOWER_MAX_MATRIX)
        return bad(L, "broadcasting an activation of %lld values to %lld: too large", (long long)K,
                   (long long)M);
    int64_t sx[TSR_ARRAY_MAX_RANK];
    sx[rx - 1] = 1;
    for (int i = rx - 2; i >= 0; i--) sx[i] = sx[i + 1] * X->dims[0][i + 1];
    nn_layer d;
    layer_init(L, &d, NN_DENSE, X->t, k ? ".bcast_b" : ".bcast_a");
    d.w_len = M * K;
    d.w = tsr_calloc_array((size_t)d.w_len, sizeof *d.w);
    if (!d.w) return tsr_fail(TSR_ERR_NOMEM, "out of memory");
    for (int64_t o = 0; o < M; o++) {
        int64_t r = o, src = 0;
        for (int dd = ro - 1; dd >= 1; dd--) {
            int64_t id = r % O->dims[0][dd];
            r /= O->dims[0][dd];
            int dx = dd - (ro - rx);
            if (dx >= 1 && X->dims[0][dx] > 1) src += id * sx[dx];
        }
        d.w[o * K + src] = 1;
    }
    tsr_status st = push(L, &d, t);
    tsr_free(d.w);
    return st;
}

/* Mul of two different activations: the elementwise product (broadcast first if needed). */
static tsr_status lower_mul_act(lower *L, int a0, int a1, int *t) {
    int va = vin(L, a0), vb = vin(L, a1), vo = L->n->out;
    nn_shape sa = L->m->shapes[L->v[va].t], sb = L->m->shapes[L->v[vb].t];
    int same_a = L->v[va].rank[0] == L->v[vo].rank[0] &&
                 !memcmp(L->v[va].dims[0], L->v[vo].dims[0], (size_t)L->v[vo].rank[0] * 8);
    int same_b = L->v[vb].rank[0] == L->v[vo].rank[0] &&
                 !memcmp(L->v[vb].dims[0], L->v[vo].dims[0], (size_t)L->v[vo].rank[0] * 8);
    /* both in the output's layout: flat unless both already share one natural shape */
    int flat = !(same_a && same_b && sa.c == sb.c && sa.h == sb.h && sa.w == sb.w);
    int ta, tb, before = L->n_bad;
    TSR_TRY(broadcast_act(L, a0, flat, &ta));
    if (L->n_bad != before) return TSR_OK;
    TSR_TRY(broadcast_act(L, a1, flat, &tb));
    if (L->n_bad != before) return TSR_OK;
    nn_layer y;
    layer_init(L, &y, NN_MUL, ta, "");
    y.in[1] = tb;
    return push(L, &y, t);
}

/* ---- one node ---------------------------------------------------------------------------- */

/*
 * A zero Pad of the spatial dimensions of a 1D / 2D activation whose every
 * live reader is a convolution or pool without padding of its own (PyTorch
 * exports AvgPool2d(padding=p) as Pad + AveragePool): merged into them.
 */
static int pad_merges(lower *L) {
    const tsr_graph_node *n = L->n;
    const tsr_graph *g = L->g;
    int R = L->v[vin(L, 0)].rank[0];
    if ((R != 3 && R != 4) || n->a.value != 0 || n->a.n_pads != 2 * R) return 0;
    for (int i = 0; i < 2 * R; i++)
        if (n->a.pad_list[i] < 0 || ((i % R) < 2 && n->a.pad_list[i] != 0)) return 0;
    if (n->out == g->outputs[0]) return 0;
    int readers = 0;
    for (int j = 0; j < g->n_nodes; j++) {
        const tsr_graph_node *c = &g->nodes[j];
        for (int k = 0; k < c->n_in; k++) {
            if (c->in[k] != n->out) continue;
            if (k != 0 || (c->kind != TSR_NODE_CONV && c->kind != TSR_NODE_AVGPOOL)) return 0;
            if (c->a.auto_pad != TSR_AUTOPAD_NOTSET && c->a.auto_pad != TSR_AUTOPAD_VALID) return 0;
            for (int i = 0; i < 2 * TSR_GRAPH_MAX_SPATIAL; i++)
                if (c->a.pads[i]) return 0;
            readers++;
        }
    }
    return readers > 0;
}

static int is_linear_kind(tsr_graph_kind k) {
    switch (k) {
    case TSR_NODE_ADD:
    case TSR_NODE_SUB:
    case TSR_NODE_NEG:
    case TSR_NODE_CONV:
    case TSR_NODE_GEMM:
    case TSR_NODE_AVGPOOL:
    case TSR_NODE_GLOBAL_AVGPOOL:
    case TSR_NODE_BATCHNORM:
    case TSR_NODE_TRANSPOSE:
    case TSR_NODE_CONCAT:
    case TSR_NODE_SLICE:
    case TSR_NODE_PAD:
    case TSR_NODE_REDUCE_SUM:
    case TSR_NODE_REDUCE_MEAN:
    case TSR_NODE_FLATTEN:
    case TSR_NODE_RESHAPE:
    case TSR_NODE_SQUEEZE:
    case TSR_NODE_UNSQUEEZE:
    case TSR_NODE_IDENTITY:
        return 1;
    default:
        return 0;
    }
}

static tsr_status lower_node(lower *L, int *t) {
    const tsr_graph_node *n = L->n;
    int acts = 0, a0 = -1, a1 = -1;
    for (int k = 0; k < n->n_in; k++)
        if (vin(L, k) >= 0 && !cin(L, k)) {
            if (acts == 0) a0 = k;
            if (acts == 1) a1 = k;
            acts++;
        }
    int done = 0;
    *t = -1;
    if (!tsr_graph_kind_is_polynomial(n->kind))
        return bad(L, "not a polynomial: CKKS cannot evaluate it (replace it with --approx "
                      "OP=DEG@RANGE or train a polynomial student)");
    switch (n->kind) {
    case TSR_NODE_IDENTITY:
    case TSR_NODE_FLATTEN:
    case TSR_NODE_RESHAPE:
    case TSR_NODE_SQUEEZE:
    case TSR_NODE_UNSQUEEZE:
        if (a0 == 0) {
            *t = tin(L, 0); /* same values in the same order */
            return TSR_OK;
        }
        break;
    case TSR_NODE_SQUARE:
        *t = -2;
        break;
    case TSR_NODE_MUL:
        if (acts == 2) {
            if (vin(L, 0) == vin(L, 1)) {
                *t = -2;
                break;
            }
            return lower_mul_act(L, a0, a1, t);
        }
        TSR_TRY(lower_affine_const(L, a0, t, &done));
        if (done) return TSR_OK;
        return lower_measured(L, t);
    case TSR_NODE_DIV:
        if (acts != 1 || a0 != 0) return bad(L, "division by an activation is not a polynomial");
        TSR_TRY(lower_affine_const(L, a0, t, &done));
        if (done) return TSR_OK;
        return lower_measured(L, t);
    case TSR_NODE_ADD:
    case TSR_NODE_SUB:
        if (acts == 2) {
            int va = vin(L, a0), vb = vin(L, a1);
            const vinfo *A = &L->v[va], *Bv = &L->v[vb], *O = &L->v[n->out];
            nn_shape sa = L->m->shapes[A->t], sb = L->m->shapes[Bv->t];
            int same = A->rank[0] == O->rank[0] && Bv->rank[0] == O->rank[0] &&
                       !memcmp(A->dims[0], O->dims[0], (size_t)O->rank[0] * 8) &&
                       !memcmp(Bv->dims[0], O->dims[0], (size_t)O->rank[0] * 8);
            if (!same) break; /* broadcasting: measured below */
            int ta = A->t, tb = A->t == Bv->t ? -1 : Bv->t;
            if (sa.c != sb.c || sa.h != sb.h || sa.w != sb.w) {
                /* one came out of a dense layer (flat): flatten the other by an identity */
                int64_t K = nn_numel(sa);
                if (K * K > NN_LOWER_MAX_MATRIX)
                    return bad(L,
                               "its two inputs are laid out differently, (%d,%d,%d) and "
                               "(%d,%d,%d), and too large to flatten",
                               sa.c, sa.h, sa.w, sb.c, sb.h, sb.w);
                if (sa.h != 1 || sa.w != 1) TSR_TRY(flatten(L, &ta));
                if (sb.h != 1 || sb.w != 1) TSR_TRY(flatten(L, &tb));
            }
            if (tb < 0) { /* x + x = 2x, x - x = 0 */
                double c[2] = { 0, n->kind == TSR_NODE_ADD ? 2.0 : 0.0 };
                if (n->kind == TSR_NODE_SUB) return bad(L, "x - x is the constant 0");
                return push_poly(L, ta, 1, 1, c, 0, 0, "", t);
            }
            if (n->kind == TSR_NODE_SUB) {
                double c[2] = { 0, -1 };
                TSR_TRY(push_poly(L, Bv->t, 1, 1, c, 0, 0, ".neg", &tb));
            }
            nn_layer y;
            layer_init(L, &y, NN_ADD, ta, "");
            y.in[1] = tb;
            return push(L, &y, t);
        }
        TSR_TRY(lower_affine_const(L, a0, t, &done));
        if (done) return TSR_OK;
        return lower_measured(L, t);
    case TSR_NODE_NEG:
        TSR_TRY(lower_affine_const(L, 0, t, &done));
        if (done) return TSR_OK;
        return lower_measured(L, t);
    case TSR_NODE_POW:
        if (a0 != 0 || acts != 1) return bad(L, "the exponent must be a constant");
        return lower_pow(L, t);
    case TSR_NODE_POLY:
    case TSR_NODE_CHEBYSHEV:
        return lower_poly(L, t);
    case TSR_NODE_PAD:
        if (a0 == 0 && pad_merges(L)) {
            vinfo *o = &L->v[n->out];
            int R = L->v[vin(L, 0)].rank[0];
            o->pad_src = vin(L, 0);
            for (int i = 0; i < R - 2; i++) {
                o->pad[i] = n->a.pad_list[2 + i];
                o->pad[2 + i] = n->a.pad_list[R + 2 + i];
            }
            *t = T_PENDING;
            return TSR_OK;
        }
        return lower_measured(L, t);
    case TSR_NODE_CONV:
    case TSR_NODE_AVGPOOL:
    case TSR_NODE_GLOBAL_AVGPOOL:
        if (acts == 1 && a0 == 0) TSR_TRY(lower_window(L, t, &done));
        if (done) return TSR_OK;
        if (L->v[vin(L, 0)].pad_src >= 0)
            return bad(L, "the Pad before it cannot be merged into it (asymmetric total padding "
                          "or a geometry the layer does not take)");
        if (n->kind == TSR_NODE_CONV && acts == 1 && a0 != 0)
            return bad(L, "the weights of a convolution must be constants");
        return lower_measured(L, t);
    case TSR_NODE_GEMM:
    case TSR_NODE_MATMUL:
        if (acts >= 2 && (a0 < 2 && a1 < 2)) {
            if (n->kind == TSR_NODE_MATMUL) return lower_matmul_act(L, t);
            return bad(L, "Gemm of two activations: the second operand of a product of two "
                          "activations must keep the batch first (export it as MatMul)");
        }
        if (a0 == 0) TSR_TRY(lower_dense(L, t, &done));
        if (done) return TSR_OK;
        return lower_measured(L, t);
    case TSR_NODE_BATCHNORM:
        if (acts == 1 && a0 == 0) TSR_TRY(lower_batchnorm(L, t, &done));
        if (done) return TSR_OK;
        return lower_measured(L, t);
    default:
        if (is_linear_kind(n->kind)) return lower_measured(L, t);
        return bad(L, "not supported by the encrypted-inference compiler");
    }
    if (*t == -2) {
        nn_layer y;
        layer_init(L, &y, NN_SQUARE, tin(L, 0), "");
        return push(L, &y, t);
    }
    if (is_linear_kind(n->kind)) return lower_measured(L, t);
    return bad(L, "not supported by the encrypted-inference compiler");
}

/* ---- the graph ----------------------------------------------------------------------------- */

/* Shapes of node n's output at batch b (0: batch 1, 1: batch 2) from the table. */
static tsr_status node_shape_at(lower *L, const tsr_graph_node *n, int b) {
    int rank[16];
    int64_t dims[16][TSR_ARRAY_MAX_RANK];
    const tsr_array *consts[16];
    if (n->n_in > 16) return tsr_fail(TSR_ERR_UNSUPPORTED, "too many inputs");
    for (int k = 0; k < n->n_in; k++) {
        int vi = n->in[k];
        rank[k] = -1;
        consts[k] = NULL;
        if (vi < 0) continue;
        const tsr_array *c =
            L->v[vi].folded
                ? L->v[vi].folded
                : (L->g->values[vi].kind == TSR_VALUE_CONST ? L->g->values[vi].data : NULL);
        if (c) {
            consts[k] = c;
            rank[k] = c->rank;
            memcpy(dims[k], c->dims, sizeof dims[k]);
        } else {
            rank[k] = L->v[vi].rank[b];
            memcpy(dims[k], L->v[vi].dims[b], sizeof dims[k]);
        }
    }
    vinfo *o = &L->v[n->out];
    return tsr_graph_node_shape(L->g, n, rank, (const int64_t(*)[TSR_ARRAY_MAX_RANK])dims, consts,
                                &o->rank[b], o->dims[b]);
}

tsr_status nn_model_from_graph(const tsr_graph *g, tsr_nn_model **out, char **report, int *n_bad) {
    return nn_model_from_graph_capped(g, NULL, out, report, n_bad);
}

tsr_status nn_model_from_graph_capped(const tsr_graph *g, nn_budget *budget, tsr_nn_model **out,
                                      char **report, int *n_bad) {
    TSR_REQUIRE(g && g->finalized, "nn_model_from_graph: the graph is not finalized");
    *out = NULL;
    if (report) *report = NULL;
    if (n_bad) *n_bad = 0;
    if (g->n_inputs != 1 || g->n_outputs != 1)
        return tsr_fail(TSR_ERR_UNSUPPORTED,
                        "the model has %d inputs and %d outputs: encrypted inference takes one "
                        "input and one output",
                        g->n_inputs, g->n_outputs);
    const tsr_graph_value *in = &g->values[g->inputs[0]];
    if (in->rank < 2 || in->rank > NN_MAX_RANK + 1)
        return tsr_fail(TSR_ERR_UNSUPPORTED,
                        "the input '%s' has rank %d: encrypted inference takes (N, F), (N, T, D), "
                        "(N, C, H, W) or up to rank %d with the batch first",
                        in->name, in->rank, NN_MAX_RANK + 1);
    lower L;
    memset(&L, 0, sizeof L);
    L.g = g;
    L.budget = budget;
    L.v = tsr_calloc_array((size_t)g->n_values, sizeof *L.v);
    char *live = tsr_calloc((size_t)g->n_values + 1);
    if (!L.v || !live) {
        tsr_free(L.v);
        tsr_free(live);
        return tsr_fail(TSR_ERR_NOMEM, "out of memory");
    }
    for (int i = 0; i < g->n_values; i++) {
        L.v[i].t = -1;
        L.v[i].pad_src = -1;
        L.v[i].rank[0] = L.v[i].rank[1] = -1;
    }
    tsr_status st = TSR_OK;
    /* the input: its dimension 0 is the batch */
    vinfo *vi = &L.v[g->inputs[0]];
    int64_t ps[TSR_ARRAY_MAX_RANK];
    for (int b = 0; b < 2; b++) {
        vi->rank[b] = in->rank;
        memcpy(vi->dims[b], in->dims, sizeof in->dims);
        vi->dims[b][0] = b + 1;
    }
    for (int i = 1; i < in->rank; i++) {
        ps[i - 1] = in->dims[i];
        if (in->dims[i] < 1)
            st = tsr_fail(TSR_ERR_UNSUPPORTED,
                          "the input '%s' has a free dimension %d: only the batch (dimension "
                          "0) may be free; export with fixed sizes",
                          in->name, i);
    }
    nn_shape s0;
    if (st == TSR_OK && !natural(in->rank - 1, ps, &s0))
        st = tsr_fail(TSR_ERR_SHAPE, "the input is too large");
    if (st == TSR_OK) st = nn_model_create(&L.m, s0.c, s0.h, s0.w);
    if (st == TSR_OK) {
        vi->t = 0;
        L.m->in_rank = in->rank - 1;
        memcpy(L.m->in_dims, ps, (size_t)(in->rank - 1) * sizeof *ps);
    }
    /* liveness: nodes whose output reaches the graph output */
    int out_v = g->outputs[0];
    if (st == TSR_OK) {
        live[out_v] = 1;
        for (int k = g->n_nodes - 1; k >= 0; k--) {
            const tsr_graph_node *n = &g->nodes[g->order[k]];
            if (!live[n->out]) continue;
            for (int j = 0; j < n->n_in; j++)
                if (n->in[j] >= 0) live[n->in[j]] = 1;
        }
    }
    for (int k = 0; st == TSR_OK && k < g->n_nodes; k++) {
        const tsr_graph_node *n = &g->nodes[g->order[k]];
        if (!live[n->out]) continue;
        L.n = n;
        tsr_escape_controls(L.name, sizeof L.name, n->name ? n->name : "", 0);
        snprintf(L.lab, sizeof L.lab, "'%s' (%s)", L.name, tsr_graph_kind_name(n->kind));
        int acts = 0, unknown = 0;
        for (int j = 0; j < n->n_in; j++) {
            int v = n->in[j];
            if (v < 0 || L.v[v].folded || g->values[v].kind == TSR_VALUE_CONST) continue;
            acts++;
            if (L.v[v].t < 0 && L.v[v].pad_src < 0) unknown = 1; /* could not be lowered */
        }
        if (acts == 0) {
            /* constants only: computed here once */
            tsr_array *y = NULL;
            st = run_node(&L, -1, 1, NULL, &y);
            if (st == TSR_ERR_UNSUPPORTED) { /* no batch: run_node checks dimension 0 */
                tsr_clear_error();
                st = bad(&L, "a constant expression of unexpected shape");
            } else if (st == TSR_OK) {
                L.v[n->out].folded = y;
            }
            continue;
        }
        if (unknown) continue; /* already reported */
        /* the batch must stay dimension 0: shapes at batch 1 and 2 */
        tsr_status s1 = node_shape_at(&L, n, 0), s2 = s1 == TSR_OK ? node_shape_at(&L, n, 1) : s1;
        if (s1 != TSR_OK || s2 != TSR_OK) {
            char msg[400];
            snprintf(msg, sizeof msg, "%s", tsr_last_error());
            tsr_clear_error();
            st = bad(&L, "its shapes depend on a fixed batch size (%s)", msg);
            continue;
        }
        const vinfo *o = &L.v[n->out];
        int ok = o->rank[0] == o->rank[1] && o->rank[0] >= 1 && o->dims[0][0] == 1 &&
                 o->dims[1][0] == 2 &&
                 !memcmp(o->dims[0] + 1, o->dims[1] + 1, (size_t)(o->rank[0] - 1) * 8);
        if (!ok) {
            st = bad(&L, "mixes the samples of a batch (the batch must stay dimension 0)");
            continue;
        }
        if (o->rank[0] - 1 > NN_MAX_RANK) {
            st = bad(&L, "output of rank %d: at most %d", o->rank[0], NN_MAX_RANK + 1);
            continue;
        }
        int t = -1;
        int before = L.n_bad;
        st = lower_node(&L, &t);
        if (st == TSR_OK && t == T_PENDING) continue;
        if (st == TSR_OK && L.n_bad == before) {
            TSR_ASSERT(t >= 0);
            L.v[n->out].t = t;
            /* the layer's own shape must hold the same number of values */
            if (nn_numel(L.m->shapes[t]) != ps_numel(&L, n->out))
                st = tsr_fail(TSR_ERR_INTERNAL, "%s lowered to %lld values instead of %lld", L.lab,
                              (long long)nn_numel(L.m->shapes[t]), (long long)ps_numel(&L, n->out));
        }
    }
    if (st == TSR_OK && L.n_bad == 0) {
        int t = L.v[out_v].t;
        const vinfo *o = &L.v[out_v];
        if (t < 1 || t != L.m->n_tensors - 1)
            st = tsr_fail(TSR_ERR_UNSUPPORTED,
                          "the output '%s' is %s: encrypted inference needs at least one layer "
                          "computing it",
                          g->values[out_v].name, t == 0 ? "the input itself" : "not computed last");
        else if (o->rank[0] < 1)
            st = tsr_fail(TSR_ERR_UNSUPPORTED, "the output has no batch dimension");
        if (st == TSR_OK) {
            L.m->output = t;
            L.m->out_rank = o->rank[0] - 1;
            memcpy(L.m->out_dims, o->dims[0] + 1, (size_t)L.m->out_rank * sizeof(int64_t));
            L.m->classes = (int)nn_numel(L.m->shapes[t]);
            st = nn_model_validate(L.m);
        }
    }
    if (st == TSR_OK && L.n_bad) {
        st = tsr_fail(TSR_ERR_UNSUPPORTED, "%d node%s cannot be compiled for encrypted inference",
                      L.n_bad, L.n_bad == 1 ? "" : "s");
        if (n_bad) *n_bad = L.n_bad;
    }
    for (int i = 0; i < g->n_values; i++) tsr_array_free(L.v[i].folded);
    tsr_free(L.v);
    tsr_free(live);
    if (st != TSR_OK) {
        if (report && L.rep) {
            *report = L.rep;
            L.rep = NULL;
        }
        tsr_free(L.rep);
        tsr_nn_model_free(L.m);
        return st;
    }
    tsr_free(L.rep);
    *out = L.m;
    return TSR_OK;
}
