/*
 * train/gbackward.c - the backward of every tsr_graph node kind, in doubles,
 * for the trainer of gtrain.c. Each kernel mirrors its forward in
 * graph/exec.c (same index walks, same broadcasting) and ACCUMULATES into
 * the input gradients it is given (NULL = not wanted). Matrix products and
 * convolutions go through dgemm (convolution: im2col / col2im with the tap
 * table of graph/conv.c's tsr_conv_plan, the executor's set-up; Chellapilla
 * et al. 2006). tests/test_train_graph.c checks every
 * kind against central finite differences.
 */
#include "train/gtrain_internal.h"

#include "core/alloc.h"
#include "core/error.h"

#include <cblas.h>
#include <math.h>
#include <string.h>

/* ---- index helpers (graph/graph_internal.h has the shared ones) --------------- */

static void gemm(int ta, int tb, int64_t m, int64_t n, int64_t k, double alpha, const double *a,
                 int64_t lda, const double *b, int64_t ldb, double beta, double *c, int64_t ldc) {
    if (m == 0 || n == 0) return;
    if (k == 0) {
        if (beta != 1)
            for (int64_t i = 0; i < m; i++)
                for (int64_t j = 0; j < n; j++) c[i * ldc + j] *= beta;
        return;
    }
    TSR_ASSERT(m < INT32_MAX && n < INT32_MAX && k < INT32_MAX);
    cblas_dgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans,
                (int)m, (int)n, (int)k, alpha, a, (int)lda, b, (int)ldb, beta, c, (int)ldc);
}

/* ---- elementwise ---------------------------------------------------------------- */

static void binary_backward(tsr_graph_kind kind, const tsr_array *a, const tsr_array *b,
                            const tsr_array *dout, tsr_array *da, tsr_array *db) {
    int r = dout->rank;
    int64_t sa[TSR_ARRAY_MAX_RANK], sb[TSR_ARRAY_MAX_RANK];
    tsr_bstrides(a, r, dout->dims, sa);
    tsr_bstrides(b, r, dout->dims, sb);
    tsr_walk w;
    tsr_walk_init(&w, r, dout->dims, sa, sb);
    for (size_t i = 0; i < dout->numel; i++, tsr_walk_next(&w)) {
        const int64_t ia = w.off[0], ib = w.off[1];
        double g = dout->data[i], av = a->data[ia], bv = b->data[ib];
        switch (kind) {
        case TSR_NODE_ADD:
            if (da) da->data[ia] += g;
            if (db) db->data[ib] += g;
            break;
        case TSR_NODE_SUB:
            if (da) da->data[ia] += g;
            if (db) db->data[ib] -= g;
            break;
        case TSR_NODE_MUL:
            if (da) da->data[ia] += g * bv;
            if (db) db->data[ib] += g * av;
            break;
        case TSR_NODE_DIV:
            if (da) da->data[ia] += g / bv;
            if (db) db->data[ib] -= g * av / (bv * bv);
            break;
        default: /* POW */
            if (da && g != 0) da->data[ia] += g * bv * pow(av, bv - 1);
            if (db && av > 0) db->data[ib] += g * pow(av, bv) * log(av);
            break;
        }
    }
}

/* Coefficient row index of element i (POLY / CHEBYSHEV, as graph/exec.c). */
static int64_t coeff_row(const tsr_graph_node *n, const tsr_array *x, const tsr_array *c,
                         size_t i) {
    if (c->rank == 1) return 0;
    int64_t ax = n->a.axis < 0 ? n->a.axis + x->rank : n->a.axis;
    int64_t inner = 1;
    for (int k = (int)ax + 1; k < x->rank; k++) inner *= x->dims[k];
    return ((int64_t)i / inner) % x->dims[ax];
}

static void poly_backward(const tsr_graph_node *n, const tsr_array *x, const tsr_array *c,
                          const tsr_array *dout, tsr_array *dx, tsr_array *dc) {
    int64_t m = c->dims[c->rank - 1];
    for (size_t i = 0; i < x->numel; i++) {
        int64_t row = coeff_row(n, x, c, i);
        const double *cf = c->data + row * m;
        double *dcf = dc ? dc->data + row * m : NULL;
        double g = dout->data[i], v = x->data[i], d = 0;
        if (n->kind == TSR_NODE_POLY) {
            double pw = 1; /* x^k */
            for (int64_t k = 0; k < m; k++) {
                if (dcf) dcf[k] += g * pw;
                if (k + 1 < m) d += (double)(k + 1) * cf[k + 1] * pw;
                pw *= v;
            }
        } else { /* T_k(u), and dT_k/du = k U_{k-1}(u) */
            double sc = 2 / (n->a.hi - n->a.lo),
                   u = (2 * v - n->a.lo - n->a.hi) / (n->a.hi - n->a.lo);
            double tp = 1, tc = u, up = 0, uc = 1; /* T_{k-1}, T_k, U_{k-2}, U_{k-1} at k = 1 */
            if (dcf) dcf[0] += g;
            for (int64_t k = 1; k < m; k++) {
                if (dcf) dcf[k] += g * tc;
                d += cf[k] * (double)k * uc;
                double tn = 2 * u * tc - tp, un = (k == 1 ? 2 * u : 2 * u * uc - up);
                tp = tc;
                tc = tn;
                up = uc;
                uc = un;
            }
            d *= sc;
        }
        if (dx) dx->data[i] += g * d;
    }
}

/* ---- matrix products --------------------------------------------------------------- */

static void gemm_backward(const tsr_graph_node *n, const tsr_array *a, const tsr_array *b,
                          const tsr_array *c, const tsr_array *dy, tsr_array *da, tsr_array *db,
                          tsr_array *dc) {
    const tsr_graph_attrs *at = &n->a;
    int ta = at->trans_a, tb = at->trans_b;
    int64_t m = dy->dims[0], nn = dy->dims[1], k = ta ? a->dims[0] : a->dims[1];
    double al = at->alpha;
    if (da) {
        if (!ta)
            gemm(0, !tb, m, k, nn, al, dy->data, nn, b->data, b->dims[1], 1, da->data, k);
        else
            gemm(tb, 1, k, m, nn, al, b->data, b->dims[1], dy->data, nn, 1, da->data, m);
    }
    if (db) {
        if (!tb)
            gemm(!ta, 0, k, nn, m, al, a->data, a->dims[1], dy->data, nn, 1, db->data, nn);
        else
            gemm(1, ta, nn, k, m, al, dy->data, nn, a->data, a->dims[1], 1, db->data, k);
    }
    if (dc && c) {
        int64_t cm = c->rank == 2 ? c->dims[0] : 1, cn = c->rank >= 1 ? c->dims[c->rank - 1] : 1;
        for (int64_t i = 0; i < m; i++)
            for (int64_t j = 0; j < nn; j++)
                dc->data[(cm == 1 ? 0 : i) * cn + (cn == 1 ? 0 : j)] +=
                    at->beta * dy->data[i * nn + j];
    }
}

static void matmul_backward(const tsr_array *a, const tsr_array *b, const tsr_array *o,
                            tsr_array *da, tsr_array *db) {
    tsr_matmul_geom g;
    tsr_matmul_geom_init(&g, a, b, o);
    const int64_t m = g.m, k = g.k, nn = g.nn;
    tsr_walk w;
    tsr_walk_init(&w, g.rbat, o->dims, g.sa, g.sb);
    for (int64_t bi = 0; bi < g.nb; bi++, tsr_walk_next(&w)) {
        const int64_t ia = w.off[0], ib = w.off[1];
        const double *dyb = o->data + bi * m * nn;
        if (da) /* dA (m, k) += dY (m, n) B^T */
            gemm(0, 1, m, k, nn, 1, dyb, nn, b->data + ib * k * nn, nn, 1, da->data + ia * m * k,
                 k);
        if (db) /* dB (k, n) += A^T dY */
            gemm(1, 0, k, nn, m, 1, a->data + ia * m * k, k, dyb, nn, 1, db->data + ib * k * nn,
                 nn);
    }
}

/* ---- convolution and pooling ---------------------------------------------------------- */

static void conv_backward(const tsr_graph_node *n, const tsr_array *x, const tsr_array *w,
                          const tsr_array *dy, tsr_array *dx, tsr_array *dw, tsr_array *dbias) {
    tsr_conv_plan cp; /* the executor's set-up: geometry, tap table, column buffer */
    tsr_conv_plan_init(&cp, n, x, w, 1);
    TSR_ASSERT(cp.tab && cp.col); /* sizes of one sample's im2col: small next to the activations */
    const int64_t C = cp.C, M = cp.M, cg = cp.cg, mg = cp.mg, nin = cp.nin, nout = cp.nout;
    const int64_t nk = cp.nk, ck = cp.ck;
    double *col = cp.col;
    for (int64_t b = 0; b < cp.N; b++)
        for (int64_t gi = 0; gi < cp.G; gi++) {
            const double *xg = x->data + (b * C + gi * cg) * nin;
            const double *wg = w->data + gi * mg * ck;
            const double *dyg = dy->data + (b * M + gi * mg) * nout;
            if (dw) { /* dW (mg, ck) += dY (mg, nout) col^T */
                tsr_conv_im2col(&cp, xg);
                gemm(0, 1, mg, ck, nout, 1, dyg, nout, col, nout, 1, dw->data + gi * mg * ck, ck);
            }
            if (dx) { /* dcol (ck, nout) = W^T dY, then col2im */
                gemm(1, 0, ck, nout, mg, 1, wg, ck, dyg, nout, 0, col, nout);
                double *dxg = dx->data + (b * C + gi * cg) * nin;
                for (int64_t c = 0; c < cg; c++)
                    for (int64_t q = 0; q < nk; q++) {
                        const double *row = col + (c * nk + q) * nout;
                        const int64_t *tq = cp.tab + q * nout;
                        for (int64_t p = 0; p < nout; p++)
                            if (tq[p] >= 0) dxg[c * nin + tq[p]] += row[p];
                    }
            }
            if (dbias)
                for (int64_t m = 0; m < mg; m++) {
                    double s = 0;
                    for (int64_t p = 0; p < nout; p++) s += dyg[m * nout + p];
                    dbias->data[gi * mg + m] += s;
                }
        }
    tsr_conv_plan_free(&cp);
}

static void pool_backward(const tsr_graph_node *n, const tsr_array *x, const tsr_array *dy,
                          tsr_array *dx) {
    tsr_pool_geom geo;
    tsr_status st = tsr_graph_pool_geom(n, x->rank, x->dims, n->a.kernel, &geo);
    TSR_ASSERT(st == TSR_OK);
    int ns = geo.ns;
    int64_t planes = x->dims[0] * x->dims[1];
    int64_t nin = tsr_spatial_count(geo.in, ns), nout = tsr_spatial_count(geo.out, ns);
    int64_t nk = tsr_spatial_count(geo.k, ns);
    int64_t op[TSR_GRAPH_MAX_SPATIAL], top[TSR_GRAPH_MAX_SPATIAL], kp[TSR_GRAPH_MAX_SPATIAL];
    int64_t *tab = tsr_pool_tap_table_for(&geo, planes); /* NULL: unravel each tap (exec.c's) */
    for (int64_t p = 0; p < nout; p++) {
        tsr_unravel(p, geo.out, ns, op);
        if (n->kind == TSR_NODE_MAXPOOL) { /* the gradient goes to the first maximum */
            for (int64_t pl = 0; pl < planes; pl++) {
                const double *xp = x->data + pl * nin;
                double mx = -INFINITY;
                int64_t at = -1;
                for (int64_t q = 0; q < nk; q++) {
                    int64_t t = tsr_pool_tap_at(&geo, tab, nout, q, p, top, kp);
                    if (t >= 0 && (at < 0 || xp[t] > mx)) {
                        mx = xp[t];
                        at = t;
                    }
                }
                if (at >= 0) dx->data[pl * nin + at] += dy->data[pl * nout + p];
            }
            continue;
        }
        int64_t cnt = tsr_pool_divisor(&geo, op, n->a.count_include_pad); /* exec.c's */
        if (!cnt) continue;
        for (int64_t pl = 0; pl < planes; pl++) {
            double g = dy->data[pl * nout + p] / (double)cnt;
            double *dp = dx->data + pl * nin;
            for (int64_t q = 0; q < nk; q++) {
                int64_t t = tsr_pool_tap_at(&geo, tab, nout, q, p, top, kp);
                if (t >= 0) dp[t] += g;
            }
        }
    }
    tsr_free(tab);
}

static void batchnorm_backward(const tsr_graph_node *n, const tsr_array *const *in,
                               const tsr_array *dy, tsr_array *const *din) {
    const tsr_array *x = in[0];
    int64_t C = x->dims[1], inner = 1;
    for (int k = 2; k < x->rank; k++) inner *= x->dims[k];
    for (size_t i = 0; i < x->numel; i++) {
        int64_t c = ((int64_t)i / inner) % C;
        double g = dy->data[i], ve = in[4]->data[c] + n->a.epsilon, r = 1 / sqrt(ve);
        double sc = in[1]->data[c] * r, xc = x->data[i] - in[3]->data[c];
        if (din[0]) din[0]->data[i] += g * sc;
        if (din[1]) din[1]->data[c] += g * xc * r;
        if (din[2]) din[2]->data[c] += g;
        if (din[3]) din[3]->data[c] -= g * sc;
        if (din[4]) din[4]->data[c] -= 0.5 * g * xc * in[1]->data[c] * r / ve;
    }
}

/* ---- data movement ------------------------------------------------------------------ */

static void transpose_backward(const tsr_graph_node *n, const tsr_array *x, const tsr_array *dy,
                               tsr_array *dx) {
    tsr_walk w;
    tsr_walk_init(&w, dy->rank, dy->dims, NULL, NULL);
    w.off[0] = tsr_transpose_strides(n, x, w.s[0]);
    for (size_t i = 0; i < dy->numel; i++, tsr_walk_next(&w)) dx->data[w.off[0]] += dy->data[i];
}

static void concat_backward(const tsr_graph_node *n, const tsr_array *const *in,
                            const tsr_array *dy, tsr_array *const *din) {
    int r = dy->rank;
    int64_t ax = n->a.axis < 0 ? n->a.axis + r : n->a.axis;
    int64_t outer = 1, inner = 1;
    for (int k = 0; k < ax; k++) outer *= dy->dims[k];
    for (int k = (int)ax + 1; k < r; k++) inner *= dy->dims[k];
    int64_t at = 0;
    for (int q = 0; q < n->n_in; q++) {
        int64_t len = in[q]->dims[ax] * inner;
        if (din[q])
            for (int64_t i = 0; i < outer; i++)
                for (int64_t j = 0; j < len; j++)
                    din[q]->data[i * len + j] += dy->data[i * dy->dims[ax] * inner + at + j];
        at += len;
    }
}

static void slice_backward(const tsr_graph_node *n, const tsr_array *x, const tsr_array *dy,
                           tsr_array *dx) {
    tsr_walk w;
    tsr_walk_init(&w, dy->rank, dy->dims, NULL, NULL);
    w.off[0] = tsr_slice_strides(n, x, w.s[0]);
    for (size_t i = 0; i < dy->numel; i++, tsr_walk_next(&w)) dx->data[w.off[0]] += dy->data[i];
}

static void reduce_backward(const tsr_graph_node *n, const tsr_array *x, const tsr_array *dy,
                            tsr_array *dx) {
    double sc = 1;
    if (n->kind == TSR_NODE_REDUCE_MEAN && dy->numel) sc = (double)dy->numel / (double)x->numel;
    tsr_walk w;
    tsr_walk_init(&w, x->rank, x->dims, NULL, NULL);
    w.off[0] = tsr_reduce_strides(n, x, w.s[0]);
    for (size_t i = 0; i < x->numel; i++, tsr_walk_next(&w)) dx->data[i] += sc * dy->data[w.off[0]];
}

static void pad_backward(const tsr_graph_node *n, const tsr_array *x, const tsr_array *dy,
                         tsr_array *dx) {
    tsr_walk w;
    tsr_walk_init(&w, x->rank, x->dims, NULL, NULL);
    w.off[0] = tsr_pad_strides(n, dy, w.s[0]);
    for (size_t i = 0; i < x->numel; i++, tsr_walk_next(&w)) dx->data[i] += dy->data[w.off[0]];
}

/* d out / d x of the unary kinds, from x and y = f(x). */
static double unary_grad(const tsr_graph_node *n, double x, double y) {
    switch (n->kind) {
    case TSR_NODE_RELU:
        return x > 0 ? 1 : 0;
    case TSR_NODE_LEAKY_RELU:
        return x >= 0 ? 1 : n->a.leak;
    case TSR_NODE_SIGMOID:
        return y * (1 - y);
    case TSR_NODE_TANH:
        return 1 - y * y;
    case TSR_NODE_ERF:
        return 2 / sqrt(M_PI) * exp(-x * x);
    case TSR_NODE_EXP:
        return y;
    case TSR_NODE_SQRT:
        return 0.5 / y;
    default: /* RECIPROCAL */
        return -y * y;
    }
}

static void softmax_backward(const tsr_graph_node *n, const tsr_array *y, const tsr_array *dy,
                             tsr_array *dx) {
    int r = y->rank;
    int64_t ax = n->a.axis < 0 ? n->a.axis + r : n->a.axis, outer = 1, inner = 1;
    for (int k = 0; k < ax; k++) outer *= y->dims[k];
    for (int k = (int)ax + 1; k < r; k++) inner *= y->dims[k];
    int64_t len = y->dims[ax];
    for (int64_t a = 0; a < outer; a++)
        for (int64_t b = 0; b < inner; b++) {
            size_t base = (size_t)(a * len * inner + b);
            double s = 0;
            for (int64_t k = 0; k < len; k++)
                s += dy->data[base + k * inner] * y->data[base + k * inner];
            for (int64_t k = 0; k < len; k++)
                dx->data[base + k * inner] +=
                    y->data[base + k * inner] * (dy->data[base + k * inner] - s);
        }
}

void gt_node_backward(const tsr_graph_node *n, const tsr_array *const *in, const tsr_array *out,
                      const tsr_array *dout, tsr_array *const *din) {
    const tsr_array *x = in[0];
    tsr_array *dx = din[0];
    switch (n->kind) {
    case TSR_NODE_IDENTITY:
    case TSR_NODE_FLATTEN:
    case TSR_NODE_RESHAPE:
    case TSR_NODE_SQUEEZE:
    case TSR_NODE_UNSQUEEZE:
        if (dx)
            for (size_t i = 0; i < dout->numel; i++) dx->data[i] += dout->data[i];
        return;
    case TSR_NODE_NEG:
        if (dx)
            for (size_t i = 0; i < dout->numel; i++) dx->data[i] -= dout->data[i];
        return;
    case TSR_NODE_SQUARE:
        if (dx)
            for (size_t i = 0; i < dout->numel; i++) dx->data[i] += 2 * x->data[i] * dout->data[i];
        return;
    case TSR_NODE_ADD:
    case TSR_NODE_SUB:
    case TSR_NODE_MUL:
    case TSR_NODE_DIV:
    case TSR_NODE_POW:
        if (dx || din[1]) binary_backward(n->kind, x, in[1], dout, dx, din[1]);
        return;
    case TSR_NODE_POLY:
    case TSR_NODE_CHEBYSHEV:
        poly_backward(n, x, in[1], dout, dx, din[1]);
        return;
    case TSR_NODE_CONV:
        conv_backward(n, x, in[1], dout, dx, din[1], n->n_in > 2 ? din[2] : NULL);
        return;
    case TSR_NODE_GEMM:
        gemm_backward(n, x, in[1], n->n_in > 2 ? in[2] : NULL, dout, dx, din[1],
                      n->n_in > 2 ? din[2] : NULL);
        return;
    case TSR_NODE_MATMUL:
        matmul_backward(x, in[1], dout, dx, din[1]);
        return;
    case TSR_NODE_AVGPOOL:
    case TSR_NODE_MAXPOOL:
        if (dx) pool_backward(n, x, dout, dx);
        return;
    case TSR_NODE_GLOBAL_AVGPOOL:
        if (dx) {
            size_t planes = dout->numel, sp = x->numel / (planes ? planes : 1);
            for (size_t pl = 0; pl < planes; pl++)
                for (size_t i = 0; i < sp; i++)
                    dx->data[pl * sp + i] += dout->data[pl] / (double)sp;
        }
        return;
    case TSR_NODE_BATCHNORM:
        batchnorm_backward(n, in, dout, din);
        return;
    case TSR_NODE_TRANSPOSE:
        if (dx) transpose_backward(n, x, dout, dx);
        return;
    case TSR_NODE_CONCAT:
        concat_backward(n, in, dout, din);
        return;
    case TSR_NODE_SLICE:
        if (dx) slice_backward(n, x, dout, dx);
        return;
    case TSR_NODE_REDUCE_SUM:
    case TSR_NODE_REDUCE_MEAN:
        if (dx) reduce_backward(n, x, dout, dx);
        return;
    case TSR_NODE_PAD:
        if (dx) pad_backward(n, x, dout, dx);
        return;
    case TSR_NODE_RELU:
    case TSR_NODE_LEAKY_RELU:
    case TSR_NODE_SIGMOID:
    case TSR_NODE_TANH:
    case TSR_NODE_ERF:
    case TSR_NODE_EXP:
    case TSR_NODE_SQRT:
    case TSR_NODE_RECIPROCAL:
        if (dx)
            for (size_t i = 0; i < dout->numel; i++)
                dx->data[i] += dout->data[i] * unary_grad(n, x->data[i], out->data[i]);
        return;
    case TSR_NODE_SOFTMAX:
        if (dx) softmax_backward(n, out, dout, dx);
        return;
    case TSR_NODE_KIND_COUNT_:
        break;
    }
    TSR_ASSERT(!"unknown node kind");
}
