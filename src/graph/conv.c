/*
 * graph/conv.c - the set-up of a Conv node on one input shape, shared by the
 * executor (exec.c) and the trainer's backward (train/gbackward.c): geometry,
 * per-sample counts, the tap table and the im2col column buffer; the tap
 * table and the average-pool divisor of any window geometry.
 */
#include "graph/graph_internal.h"

#include "core/alloc.h"
#include "core/error.h"

#include <string.h>

void tsr_conv_plan_init(tsr_conv_plan *cp, const tsr_graph_node *n, const tsr_array *x,
                        const tsr_array *w, int buffers) {
    memset(cp, 0, sizeof *cp);
    tsr_status st = tsr_graph_pool_geom(n, x->rank, x->dims, w->dims + 2, &cp->geo);
    TSR_ASSERT(st == TSR_OK); /* shape.c checked the node */
    const int ns = cp->geo.ns;
    cp->N = x->dims[0];
    cp->C = x->dims[1];
    cp->M = w->dims[0];
    cp->G = n->a.group;
    cp->cg = cp->C / cp->G;
    cp->mg = cp->M / cp->G;
    cp->nin = tsr_spatial_count(cp->geo.in, ns);
    cp->nout = tsr_spatial_count(cp->geo.out, ns);
    cp->nk = tsr_spatial_count(cp->geo.k, ns);
    cp->ck = cp->cg * cp->nk;
    if (!buffers) return;
    cp->tab = tsr_pool_tap_table(&cp->geo);
    cp->col = tsr_alloc((size_t)(cp->ck * cp->nout > 0 ? cp->ck * cp->nout : 1) * sizeof *cp->col);
    if (!cp->tab || !cp->col) tsr_conv_plan_free(cp);
}

int64_t *tsr_pool_tap_table(const tsr_pool_geom *geo) {
    const int ns = geo->ns;
    const int64_t nk = tsr_spatial_count(geo->k, ns), nout = tsr_spatial_count(geo->out, ns);
    int64_t *tab = tsr_alloc((size_t)(nk * nout > 0 ? nk * nout : 1) * sizeof *tab);
    if (!tab) return NULL;
    int64_t op[TSR_GRAPH_MAX_SPATIAL], kp[TSR_GRAPH_MAX_SPATIAL];
    for (int64_t q = 0; q < nk; q++) {
        tsr_unravel(q, geo->k, ns, kp);
        for (int64_t p = 0; p < nout; p++) {
            tsr_unravel(p, geo->out, ns, op);
            tab[q * nout + p] = tsr_pool_tap(geo, op, kp);
        }
    }
    return tab;
}

int64_t *tsr_pool_tap_table_for(const tsr_pool_geom *geo, int64_t planes) {
    const int ns = geo->ns;
    const int64_t nin = tsr_spatial_count(geo->in, ns), nout = tsr_spatial_count(geo->out, ns);
    const int64_t nk = tsr_spatial_count(geo->k, ns);
    const int64_t act = planes * (nin + nout), lim = act > (1 << 16) ? act : (1 << 16);
    if (nout > 0 && nk > lim / nout) return NULL; /* nk * nout > lim, without overflow */
    return tsr_pool_tap_table(geo);
}

int64_t tsr_pool_divisor(const tsr_pool_geom *geo, const int64_t *op, int count_include_pad) {
    const int ns = geo->ns;
    const int64_t nk = tsr_spatial_count(geo->k, ns);
    int64_t kp[TSR_GRAPH_MAX_SPATIAL], cnt = 0;
    for (int64_t q = 0; q < nk; q++) {
        tsr_unravel(q, geo->k, ns, kp);
        int in_pad = 1, in_x = 1;
        for (int i = 0; i < ns; i++) {
            int64_t pos = op[i] * geo->s[i] - geo->pb[i] + kp[i] * geo->d[i];
            if (pos < 0 || pos >= geo->in[i]) in_x = 0;
            if (pos < -geo->pb[i] || pos >= geo->in[i] + geo->pe[i]) in_pad = 0;
        }
        cnt += count_include_pad ? in_pad : in_x;
    }
    return cnt;
}

void tsr_conv_plan_free(tsr_conv_plan *cp) {
    tsr_free(cp->tab);
    tsr_free(cp->col);
    cp->tab = NULL;
    cp->col = NULL;
}

/* Smallest integer >= a / b for b > 0, a of any sign. */
static int64_t ceil_div(int64_t a, int64_t b) {
    return a >= 0 ? (a + b - 1) / b : -((-a) / b);
}

/*
 * Row by row of the output's last spatial dimension: for kernel position q the taps of one
 * output row are inside the input exactly for ow in [lo, hi) (from the last dimension's
 * geometry) unless the row's leading coordinates fall into padding, which the tap table says
 * at ow = lo; inside, they step by the stride, so a row is a strided (stride 1: contiguous)
 * copy between zeros. Same values as reading the tap table entry by entry.
 */
void tsr_conv_im2col(const tsr_conv_plan *cp, const double *xg) {
    const tsr_pool_geom *geo = &cp->geo;
    const int ls = geo->ns - 1;
    const int64_t nk = cp->nk, nout = cp->nout, nin = cp->nin, W = geo->out[ls];
    const int64_t st = geo->s[ls], kw_n = geo->k[ls];
    if (W <= 0) return;
    for (int64_t q = 0; q < nk; q++) {
        const int64_t off = (q % kw_n) * geo->d[ls] - geo->pb[ls]; /* pos = ow * st + off */
        int64_t lo = ceil_div(-off, st), hi = ceil_div(geo->in[ls] - off, st);
        lo = lo < 0 ? 0 : lo > W ? W : lo;
        hi = hi < lo ? lo : hi > W ? W : hi;
        const int64_t *tq = cp->tab + q * nout;
        for (int64_t c = 0; c < cp->cg; c++) {
            double *row = cp->col + (c * nk + q) * nout;
            const double *xc = xg + c * nin;
            for (int64_t base = 0; base < nout; base += W) {
                double *r = row + base;
                if (lo >= hi || tq[base + lo] < 0) {
                    memset(r, 0, (size_t)W * sizeof *r);
                    continue;
                }
                const double *src = xc + tq[base + lo];
                for (int64_t j = 0; j < lo; j++) r[j] = 0;
                if (st == 1)
                    memcpy(r + lo, src, (size_t)(hi - lo) * sizeof *r);
                else
                    for (int64_t j = lo; j < hi; j++) r[j] = src[(j - lo) * st];
                for (int64_t j = hi; j < W; j++) r[j] = 0;
            }
        }
    }
}
