/*
 * graph/exec.c - the reference kernels of every node kind, in doubles, whole
 * batch at once. Shapes were checked by shape.c. Matrix products and
 * convolutions (im2col, as Chellapilla et al. 2006) call OpenBLAS dgemm; the
 * naive loops stay as the reference (tsr_graph_set_naive, compared in tests).
 */
#include "graph/graph_internal.h"

#include "core/alloc.h"
#include "core/error.h"

#include <cblas.h>
#include <math.h>
#include <stdatomic.h>
#include <string.h>

static atomic_int use_naive;

void tsr_graph_set_naive(int naive) {
    atomic_store(&use_naive, naive != 0);
}

/* ---- elementwise ------------------------------------------------------------- */

static double bin_op(tsr_graph_kind k, double a, double b) {
    switch (k) {
    case TSR_NODE_ADD:
        return a + b;
    case TSR_NODE_SUB:
        return a - b;
    case TSR_NODE_MUL:
        return a * b;
    case TSR_NODE_DIV:
        return a / b;
    default:
        return pow(a, b);
    }
}

static void exec_binary(tsr_graph_kind kind, const tsr_array *a, const tsr_array *b, tsr_array *o) {
    int r = o->rank;
    if (a->numel == o->numel && b->numel == o->numel) {
        for (size_t i = 0; i < o->numel; i++) o->data[i] = bin_op(kind, a->data[i], b->data[i]);
        return;
    }
    int64_t sa[TSR_ARRAY_MAX_RANK], sb[TSR_ARRAY_MAX_RANK];
    tsr_bstrides(a, r, o->dims, sa);
    tsr_bstrides(b, r, o->dims, sb);
    tsr_walk w;
    tsr_walk_init(&w, r, o->dims, sa, sb);
    for (size_t i = 0; i < o->numel; i++, tsr_walk_next(&w))
        o->data[i] = bin_op(kind, a->data[w.off[0]], b->data[w.off[1]]);
}

/*
 * POLY / CHEBYSHEV: coefficients (D+1) for every element, or (C, D+1) along the axis. The
 * elements sharing one coefficient row are contiguous runs of `inner` values (the whole array
 * for one row). A power-basis run is evaluated four elements at a time, four independent Horner
 * chains in registers: every element gets the same operations in the same order as one Horner
 * loop per element (y = 0, then y = y * x + c_k from the top coefficient down).
 */
static void poly_run(const tsr_graph_node *n, const double *cf, int64_t m, const double *x,
                     double *o, int64_t len) {
    if (n->kind == TSR_NODE_POLY) {
        int64_t j = 0;
        for (; j + 4 <= len; j += 4) {
            const double x0 = x[j], x1 = x[j + 1], x2 = x[j + 2], x3 = x[j + 3];
            double y0 = 0, y1 = 0, y2 = 0, y3 = 0;
            for (int64_t k = m - 1; k >= 0; k--) {
                y0 = y0 * x0 + cf[k];
                y1 = y1 * x1 + cf[k];
                y2 = y2 * x2 + cf[k];
                y3 = y3 * x3 + cf[k];
            }
            o[j] = y0;
            o[j + 1] = y1;
            o[j + 2] = y2;
            o[j + 3] = y3;
        }
        for (; j < len; j++) {
            double y = 0;
            for (int64_t k = m - 1; k >= 0; k--) y = y * x[j] + cf[k];
            o[j] = y;
        }
        return;
    }
    for (int64_t j = 0; j < len; j++) { /* Clenshaw on u in [-1, 1] */
        double u = (2 * x[j] - n->a.lo - n->a.hi) / (n->a.hi - n->a.lo), b1 = 0, b2 = 0;
        for (int64_t k = m - 1; k >= 1; k--) {
            double t = 2 * u * b1 - b2 + cf[k];
            b2 = b1;
            b1 = t;
        }
        o[j] = u * b1 - b2 + cf[0];
    }
}

static void exec_poly(const tsr_graph_node *n, const tsr_array *x, const tsr_array *c,
                      tsr_array *o) {
    if (c->rank == 1) {
        poly_run(n, c->data, c->dims[0], x->data, o->data, (int64_t)x->numel);
        return;
    }
    int64_t ax = n->a.axis < 0 ? n->a.axis + x->rank : n->a.axis;
    int64_t inner = 1, outer = 1;
    for (int k = (int)ax + 1; k < x->rank; k++) inner *= x->dims[k];
    for (int k = 0; k < (int)ax; k++) outer *= x->dims[k];
    const int64_t C = x->dims[ax], m = c->dims[1];
    for (int64_t b = 0; b < outer; b++)
        for (int64_t ch = 0; ch < C; ch++) {
            const int64_t at = (b * C + ch) * inner;
            poly_run(n, c->data + ch * m, m, x->data + at, o->data + at, inner);
        }
}

/* ---- matrix products --------------------------------------------------------- */

/* C (m, n) = alpha * op(A) op(B) + beta_c * C, row-major, lda/ldb as stored. */
static void gemm(int ta, int tb, int64_t m, int64_t nn, int64_t k, double alpha, const double *a,
                 int64_t lda, const double *b, int64_t ldb, double beta, double *c, int64_t ldc) {
    if (m == 0 || nn == 0) return;
    if (!atomic_load(&use_naive) && k > 0 && m < INT32_MAX && nn < INT32_MAX && k < INT32_MAX) {
        cblas_dgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans,
                    (int)m, (int)nn, (int)k, alpha, a, (int)lda, b, (int)ldb, beta, c, (int)ldc);
        return;
    }
    for (int64_t i = 0; i < m; i++)
        for (int64_t j = 0; j < nn; j++) {
            double s = 0;
            for (int64_t q = 0; q < k; q++)
                s +=
                    (ta ? a[q * lda + i] : a[i * lda + q]) * (tb ? b[j * ldb + q] : b[q * ldb + j]);
            c[i * ldc + j] = alpha * s + (beta == 0 ? 0 : beta * c[i * ldc + j]);
        }
}

static void exec_gemm(const tsr_graph_node *n, const tsr_array *a, const tsr_array *b,
                      const tsr_array *c, tsr_array *o) {
    const tsr_graph_attrs *at = &n->a;
    int64_t m = o->dims[0], nn = o->dims[1], k = at->trans_a ? a->dims[0] : a->dims[1];
    double beta = 0;
    if (c && at->beta != 0) {
        int64_t cm = c->rank == 2 ? c->dims[0] : 1, cn = c->rank >= 1 ? c->dims[c->rank - 1] : 1;
        for (int64_t i = 0; i < m; i++)
            for (int64_t j = 0; j < nn; j++)
                o->data[i * nn + j] = c->data[(cm == 1 ? 0 : i) * cn + (cn == 1 ? 0 : j)];
        beta = at->beta;
    }
    gemm(at->trans_a, at->trans_b, m, nn, k, at->alpha, a->data, a->dims[1], b->data, b->dims[1],
         beta, o->data, nn);
}

void tsr_matmul_geom_init(tsr_matmul_geom *mg, const tsr_array *a, const tsr_array *b,
                          const tsr_array *o) {
    int ra = a->rank, rb = b->rank;
    memset(mg, 0, sizeof *mg);
    mg->m = ra >= 2 ? a->dims[ra - 2] : 1;
    mg->k = a->dims[ra - 1];
    mg->nn = rb >= 2 ? b->dims[rb - 1] : 1;
    /* Batch dims of the output: everything before the matrix dims. */
    mg->rbat = o->rank - (ra >= 2) - (rb >= 2);
    mg->nb = 1;
    for (int q = 0; q < mg->rbat; q++) mg->nb *= o->dims[q];
    /* Broadcast strides (in matrices) of a and b over the batch dims. */
    int64_t acc = 1;
    for (int q = ra - 3; q >= 0; q--) {
        int j = q + (mg->rbat - (ra - 2));
        mg->sa[j] = a->dims[q] == 1 ? 0 : acc;
        acc *= a->dims[q];
    }
    acc = 1;
    for (int q = rb - 3; q >= 0; q--) {
        int j = q + (mg->rbat - (rb - 2));
        mg->sb[j] = b->dims[q] == 1 ? 0 : acc;
        acc *= b->dims[q];
    }
}

static void exec_matmul(const tsr_array *a, const tsr_array *b, tsr_array *o) {
    tsr_matmul_geom g;
    tsr_matmul_geom_init(&g, a, b, o);
    const int64_t m = g.m, k = g.k, nn = g.nn;
    tsr_walk w;
    tsr_walk_init(&w, g.rbat, o->dims, g.sa, g.sb);
    for (int64_t bi = 0; bi < g.nb; bi++, tsr_walk_next(&w))
        gemm(0, 0, m, nn, k, 1.0, a->data + w.off[0] * m * k, k, b->data + w.off[1] * k * nn, nn,
             0.0, o->data + bi * m * nn, nn);
}

/* ---- convolution and pooling --------------------------------------------------- */

static void exec_conv(const tsr_graph_node *n, const tsr_array *x, const tsr_array *w,
                      const tsr_array *bias, tsr_array *o) {
    tsr_conv_plan cp; /* tap table and column buffer unless naive (or out of memory) */
    tsr_conv_plan_init(&cp, n, x, w, !atomic_load(&use_naive));
    const tsr_pool_geom *geo = &cp.geo;
    const int ns = geo->ns;
    const int64_t C = cp.C, M = cp.M, cg = cp.cg, mg = cp.mg, nin = cp.nin, nout = cp.nout;
    const int64_t nk = cp.nk, ck = cp.ck;
    int64_t op[TSR_GRAPH_MAX_SPATIAL], kp[TSR_GRAPH_MAX_SPATIAL];
    for (int64_t b = 0; b < cp.N; b++)
        for (int64_t gi = 0; gi < cp.G; gi++) {
            const double *xg = x->data + (b * C + gi * cg) * nin;
            const double *wg = w->data + gi * mg * ck;
            double *og = o->data + (b * M + gi * mg) * nout;
            if (cp.col) { /* im2col: rows (c, kernel position), columns output positions */
                tsr_conv_im2col(&cp, xg);
                gemm(0, 0, mg, nout, ck, 1.0, wg, ck, cp.col, nout, 0.0, og, nout);
            } else {
                for (int64_t m = 0; m < mg; m++)
                    for (int64_t p = 0; p < nout; p++) {
                        tsr_unravel(p, geo->out, ns, op);
                        double s = 0;
                        for (int64_t c = 0; c < cg; c++)
                            for (int64_t q = 0; q < nk; q++) {
                                tsr_unravel(q, geo->k, ns, kp);
                                int64_t t = tsr_pool_tap(geo, op, kp);
                                if (t >= 0) s += wg[m * ck + c * nk + q] * xg[c * nin + t];
                            }
                        og[m * nout + p] = s;
                    }
            }
            if (bias)
                for (int64_t m = 0; m < mg; m++)
                    for (int64_t p = 0; p < nout; p++) og[m * nout + p] += bias->data[gi * mg + m];
        }
    tsr_conv_plan_free(&cp);
}

/*
 * Pooling walks each plane with the window's tap table (graph/conv.c; -1 in padding) and, for
 * AveragePool, the divisor of every output position: both computed once per call. The table
 * holds nk x nout taps, nk times one output plane, so it is only built when it is no larger
 * than the call's activations (input and output planes; at least 2^16 entries) and the
 * allocation succeeds; otherwise each tap is unravelled per element (same sums, same order).
 */
static void exec_avgpool(const tsr_graph_node *n, const tsr_array *x, tsr_array *o) {
    tsr_pool_geom geo;
    tsr_status st = tsr_graph_pool_geom(n, x->rank, x->dims, n->a.kernel, &geo);
    TSR_ASSERT(st == TSR_OK);
    int ns = geo.ns;
    int64_t planes = x->dims[0] * x->dims[1];
    int64_t nin = tsr_spatial_count(geo.in, ns), nout = tsr_spatial_count(geo.out, ns);
    int64_t nk = tsr_spatial_count(geo.k, ns);
    int64_t *tab = tsr_pool_tap_table_for(&geo, planes);
    /* Divisor: taps inside the input, or inside input + explicit pads; per position once when
       the table is there (the same size as one output plane), else per element. */
    double *div = tab ? tsr_alloc((size_t)(nout > 0 ? nout : 1) * sizeof *div) : NULL;
    int64_t op[TSR_GRAPH_MAX_SPATIAL], kp[TSR_GRAPH_MAX_SPATIAL];
    for (int64_t p = 0; div && p < nout; p++) {
        tsr_unravel(p, geo.out, ns, op);
        div[p] = (double)tsr_pool_divisor(&geo, op, n->a.count_include_pad);
    }
    for (int64_t pl = 0; tab && div && pl < planes; pl++) {
        /* tap by tap over the whole plane: each output adds its taps in the same order */
        const double *xp = x->data + pl * nin;
        double *yp = o->data + pl * nout;
        for (int64_t p = 0; p < nout; p++) yp[p] = 0;
        for (int64_t q = 0; q < nk; q++) {
            const int64_t *tq = tab + q * nout;
            for (int64_t p = 0; p < nout; p++)
                if (tq[p] >= 0) yp[p] += xp[tq[p]];
        }
        for (int64_t p = 0; p < nout; p++) yp[p] = div[p] != 0 ? yp[p] / div[p] : 0.0;
    }
    for (int64_t pl = 0; !(tab && div) && pl < planes; pl++) {
        const double *xp = x->data + pl * nin;
        double *yp = o->data + pl * nout;
        for (int64_t p = 0; p < nout; p++) {
            double s = 0;
            for (int64_t q = 0; q < nk; q++) {
                int64_t t = tsr_pool_tap_at(&geo, tab, nout, q, p, op, kp);
                if (t >= 0) s += xp[t];
            }
            tsr_unravel(p, geo.out, ns, op);
            double d = (double)tsr_pool_divisor(&geo, op, n->a.count_include_pad);
            yp[p] = d != 0 ? s / d : 0.0;
        }
    }
    tsr_free(div);
    tsr_free(tab);
}

static void exec_global_avgpool(const tsr_array *x, tsr_array *o) {
    int64_t planes = x->dims[0] * x->dims[1],
            sp = (int64_t)(x->numel / (size_t)(planes ? planes : 1));
    for (int64_t pl = 0; pl < planes; pl++) {
        double s = 0;
        for (int64_t i = 0; i < sp; i++) s += x->data[pl * sp + i];
        o->data[pl] = s / (double)sp;
    }
}

static void exec_batchnorm(const tsr_graph_node *n, const tsr_array *const *in, tsr_array *o) {
    const tsr_array *x = in[0];
    int64_t C = x->dims[1], inner = 1;
    for (int k = 2; k < x->rank; k++) inner *= x->dims[k];
    for (size_t i = 0; i < x->numel; i++) {
        int64_t c = ((int64_t)i / inner) % C;
        double sc = in[1]->data[c] / sqrt(in[4]->data[c] + n->a.epsilon);
        o->data[i] = (x->data[i] - in[3]->data[c]) * sc + in[2]->data[c];
    }
}

/* ---- data movement ------------------------------------------------------------- */

int64_t tsr_transpose_strides(const tsr_graph_node *n, const tsr_array *x, int64_t *s) {
    int r = x->rank;
    int64_t sx[TSR_ARRAY_MAX_RANK];
    tsr_strides_of(r, x->dims, sx);
    for (int k = 0; k < r; k++) s[k] = sx[n->a.n_perm ? n->a.perm[k] : r - 1 - k];
    return 0;
}

static void exec_transpose(const tsr_graph_node *n, const tsr_array *x, tsr_array *o) {
    tsr_walk w;
    tsr_walk_init(&w, o->rank, o->dims, NULL, NULL);
    w.off[0] = tsr_transpose_strides(n, x, w.s[0]);
    for (size_t i = 0; i < o->numel; i++, tsr_walk_next(&w)) o->data[i] = x->data[w.off[0]];
}

static void exec_concat(const tsr_graph_node *n, const tsr_array *const *in, tsr_array *o) {
    int r = o->rank;
    int64_t ax = n->a.axis < 0 ? n->a.axis + r : n->a.axis;
    int64_t outer = 1, inner = 1;
    for (int k = 0; k < ax; k++) outer *= o->dims[k];
    for (int k = (int)ax + 1; k < r; k++) inner *= o->dims[k];
    int64_t at = 0;
    for (int q = 0; q < n->n_in; q++) {
        int64_t len = in[q]->dims[ax] * inner;
        for (int64_t i = 0; i < outer; i++)
            if (len)
                memcpy(o->data + i * o->dims[ax] * inner + at, in[q]->data + i * len,
                       (size_t)len * sizeof(double));
        at += len;
    }
}

int64_t tsr_slice_strides(const tsr_graph_node *n, const tsr_array *x, int64_t *s) {
    int r = x->rank;
    int64_t start[TSR_ARRAY_MAX_RANK] = { 0 }, step[TSR_ARRAY_MAX_RANK], sx[TSR_ARRAY_MAX_RANK];
    for (int k = 0; k < r; k++) step[k] = 1;
    for (int i = 0; i < n->a.n_axes; i++) {
        int64_t ax = n->a.axes[i] < 0 ? n->a.axes[i] + r : n->a.axes[i];
        int64_t dim = x->dims[ax], st = tsr_clamp62(n->a.starts[i]), sp = n->a.steps[i];
        if (st < 0) st += dim;
        if (sp > 0)
            st = st < 0 ? 0 : st > dim ? dim : st;
        else
            st = st < 0 ? 0 : st > dim - 1 ? dim - 1 : st;
        start[ax] = st;
        step[ax] = sp;
    }
    tsr_strides_of(r, x->dims, sx);
    int64_t base = 0;
    for (int k = 0; k < r; k++) {
        base += start[k] * sx[k];
        s[k] = step[k] * sx[k];
    }
    return base;
}

static void exec_slice(const tsr_graph_node *n, const tsr_array *x, tsr_array *o) {
    tsr_walk w;
    tsr_walk_init(&w, o->rank, o->dims, NULL, NULL);
    w.off[0] = tsr_slice_strides(n, x, w.s[0]);
    for (size_t i = 0; i < o->numel; i++, tsr_walk_next(&w)) o->data[i] = x->data[w.off[0]];
}

int64_t tsr_reduce_strides(const tsr_graph_node *n, const tsr_array *x, int64_t *os) {
    int r = x->rank;
    unsigned mask = 0;
    for (int i = 0; i < n->a.n_axes; i++)
        mask |= 1u << (n->a.axes[i] < 0 ? n->a.axes[i] + r : n->a.axes[i]);
    if (n->a.n_axes == 0) mask = n->a.noop_with_empty_axes ? 0 : (1u << r) - 1u;
    if (n->a.n_axes == 0 && n->a.reduce_tail) {
        int64_t ax = n->a.axis < 0 ? n->a.axis + r : n->a.axis;
        mask = ((1u << r) - 1u) & ~((1u << ax) - 1u);
    }
    /* Output strides per input dimension (0 on reduced dims). */
    int64_t kd[TSR_ARRAY_MAX_RANK], s = 1;
    for (int k = 0; k < r; k++) kd[k] = (mask >> k & 1u) ? 1 : x->dims[k];
    for (int k = r - 1; k >= 0; k--) {
        os[k] = (mask >> k & 1u) ? 0 : s;
        s *= kd[k];
    }
    return 0;
}

static void exec_reduce(const tsr_graph_node *n, const tsr_array *x, tsr_array *o) {
    tsr_walk w;
    tsr_walk_init(&w, x->rank, x->dims, NULL, NULL);
    w.off[0] = tsr_reduce_strides(n, x, w.s[0]);
    memset(o->data, 0, o->numel * sizeof(double));
    for (size_t i = 0; i < x->numel; i++, tsr_walk_next(&w)) o->data[w.off[0]] += x->data[i];
    if (n->kind == TSR_NODE_REDUCE_MEAN && o->numel) {
        double cnt = (double)x->numel / (double)o->numel;
        for (size_t i = 0; i < o->numel; i++) o->data[i] /= cnt;
    }
}

int64_t tsr_pad_strides(const tsr_graph_node *n, const tsr_array *p, int64_t *s) {
    tsr_strides_of(p->rank, p->dims, s);
    int64_t base = 0;
    for (int k = 0; k < p->rank; k++) base += n->a.pad_list[k] * s[k];
    return base;
}

static void exec_pad(const tsr_graph_node *n, const tsr_array *x, tsr_array *o) {
    for (size_t i = 0; i < o->numel; i++) o->data[i] = n->a.value;
    tsr_walk w;
    tsr_walk_init(&w, x->rank, x->dims, NULL, NULL);
    w.off[0] = tsr_pad_strides(n, o, w.s[0]);
    for (size_t i = 0; i < x->numel; i++, tsr_walk_next(&w)) o->data[w.off[0]] = x->data[i];
}

static double unary(const tsr_graph_node *n, double v) {
    switch (n->kind) {
    case TSR_NODE_RELU:
        return v > 0 ? v : 0;
    case TSR_NODE_LEAKY_RELU:
        return v >= 0 ? v : n->a.leak * v;
    case TSR_NODE_SIGMOID:
        return v >= 0 ? 1 / (1 + exp(-v)) : exp(v) / (1 + exp(v));
    case TSR_NODE_TANH:
        return tanh(v);
    case TSR_NODE_ERF:
        return erf(v);
    case TSR_NODE_EXP:
        return exp(v);
    case TSR_NODE_SQRT:
        return sqrt(v);
    default:
        return 1 / v; /* RECIPROCAL */
    }
}

static void exec_softmax(const tsr_graph_node *n, const tsr_array *x, tsr_array *o) {
    int r = x->rank;
    int64_t ax = n->a.axis < 0 ? n->a.axis + r : n->a.axis, outer = 1, inner = 1;
    for (int k = 0; k < ax; k++) outer *= x->dims[k];
    for (int k = (int)ax + 1; k < r; k++) inner *= x->dims[k];
    int64_t len = x->dims[ax];
    for (int64_t a = 0; a < outer; a++)
        for (int64_t b = 0; b < inner; b++) {
            const double *xp = x->data + a * len * inner + b;
            double *op = o->data + a * len * inner + b, mx = -INFINITY, s = 0;
            for (int64_t k = 0; k < len; k++) mx = fmax(mx, xp[k * inner]);
            for (int64_t k = 0; k < len; k++) s += op[k * inner] = exp(xp[k * inner] - mx);
            for (int64_t k = 0; k < len; k++) op[k * inner] /= s;
        }
}

static void exec_maxpool(const tsr_graph_node *n, const tsr_array *x, tsr_array *o) {
    tsr_pool_geom geo;
    tsr_status st = tsr_graph_pool_geom(n, x->rank, x->dims, n->a.kernel, &geo);
    TSR_ASSERT(st == TSR_OK);
    int ns = geo.ns;
    int64_t planes = x->dims[0] * x->dims[1];
    int64_t nin = tsr_spatial_count(geo.in, ns), nout = tsr_spatial_count(geo.out, ns);
    int64_t nk = tsr_spatial_count(geo.k, ns);
    int64_t *tab = tsr_pool_tap_table_for(&geo, planes); /* NULL: unravel per element */
    int64_t op[TSR_GRAPH_MAX_SPATIAL], kp[TSR_GRAPH_MAX_SPATIAL];
    for (int64_t pl = 0; pl < planes; pl++) {
        const double *xp = x->data + pl * nin;
        for (int64_t p = 0; p < nout; p++) {
            double m = -INFINITY;
            for (int64_t q = 0; q < nk; q++) {
                int64_t t = tsr_pool_tap_at(&geo, tab, nout, q, p, op, kp);
                if (t >= 0) m = fmax(m, xp[t]);
            }
            o->data[pl * nout + p] = m;
        }
    }
    tsr_free(tab);
}

void tsr_graph_node_exec(const tsr_graph_node *n, const tsr_array *const *in, tsr_array *o) {
    const tsr_array *x = in[0];
    switch (n->kind) {
    case TSR_NODE_IDENTITY:
    case TSR_NODE_FLATTEN:
    case TSR_NODE_RESHAPE:
    case TSR_NODE_SQUEEZE:
    case TSR_NODE_UNSQUEEZE:
        TSR_ASSERT(x->numel == o->numel);
        if (o->numel) memcpy(o->data, x->data, o->numel * sizeof(double));
        return;
    case TSR_NODE_NEG:
        for (size_t i = 0; i < o->numel; i++) o->data[i] = -x->data[i];
        return;
    case TSR_NODE_SQUARE:
        for (size_t i = 0; i < o->numel; i++) o->data[i] = x->data[i] * x->data[i];
        return;
    case TSR_NODE_ADD:
    case TSR_NODE_SUB:
    case TSR_NODE_MUL:
    case TSR_NODE_DIV:
    case TSR_NODE_POW:
        exec_binary(n->kind, x, in[1], o);
        return;
    case TSR_NODE_POLY:
    case TSR_NODE_CHEBYSHEV:
        exec_poly(n, x, in[1], o);
        return;
    case TSR_NODE_CONV:
        exec_conv(n, x, in[1], n->n_in > 2 ? in[2] : NULL, o);
        return;
    case TSR_NODE_GEMM:
        exec_gemm(n, x, in[1], n->n_in > 2 ? in[2] : NULL, o);
        return;
    case TSR_NODE_MATMUL:
        exec_matmul(x, in[1], o);
        return;
    case TSR_NODE_AVGPOOL:
        exec_avgpool(n, x, o);
        return;
    case TSR_NODE_GLOBAL_AVGPOOL:
        exec_global_avgpool(x, o);
        return;
    case TSR_NODE_BATCHNORM:
        exec_batchnorm(n, in, o);
        return;
    case TSR_NODE_TRANSPOSE:
        exec_transpose(n, x, o);
        return;
    case TSR_NODE_CONCAT:
        exec_concat(n, in, o);
        return;
    case TSR_NODE_SLICE:
        exec_slice(n, x, o);
        return;
    case TSR_NODE_REDUCE_SUM:
    case TSR_NODE_REDUCE_MEAN:
        exec_reduce(n, x, o);
        return;
    case TSR_NODE_PAD:
        exec_pad(n, x, o);
        return;
    case TSR_NODE_RELU:
    case TSR_NODE_LEAKY_RELU:
    case TSR_NODE_SIGMOID:
    case TSR_NODE_TANH:
    case TSR_NODE_ERF:
    case TSR_NODE_EXP:
    case TSR_NODE_SQRT:
    case TSR_NODE_RECIPROCAL:
        for (size_t i = 0; i < o->numel; i++) o->data[i] = unary(n, x->data[i]);
        return;
    case TSR_NODE_SOFTMAX:
        exec_softmax(n, x, o);
        return;
    case TSR_NODE_MAXPOOL:
        exec_maxpool(n, x, o);
        return;
    case TSR_NODE_KIND_COUNT_:
        break;
    }
    TSR_ASSERT(!"unknown node kind");
}
