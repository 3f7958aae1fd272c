/*
 * prune/permute.c - hidden features between chained layers: finding them
 * (layer a's outputs reach layer b's inputs through elementwise nodes,
 * per-feature constants, polynomials and batch norms only), permuting them
 * so that weights gather into few tiles (HE-PEx, Aharoni et al., arXiv
 * 2207.03384, section 4: permute the rows of W_l and b_l with the columns
 * of W_{l+1}), and widening them (expansion).
 *
 * The search is balanced k-means over per-feature tile-mass vectors: for
 * feature h, entry j is the L2 norm of W_a's row h inside a's tile column
 * j, and entry d_a + i the norm of W_b's column h inside b's tile row i
 * (HE-PEx: counting only the weights that magnitude pruning would keep;
 * with per-offset convolution tiles, one entry per tile and kernel offset);
 * the vector is normalised, so features whose weights sit in the same
 * tiles are close. k = ceil(H / P) clusters of capacity P (P = a's tile
 * rows) are seeded by k-means++ and assigned greedily in order of
 * distance under the capacities; centroids are recomputed until the
 * assignment is stable or the iteration limit. Per iteration O(H k d)
 * distances and an O(H k log(H k)) sort.
 */
#include "prune/prune_internal.h"

#include "core/alloc.h"
#include "core/error.h"
#include "core/rng.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ---- remapping an axis ----------------------------------------------------------- */

tsr_status pr_remap_axis(const tsr_array *a, int ax, const int64_t *src, int64_t n, double fill,
                         tsr_array **out) {
    *out = NULL;
    TSR_ASSERT(ax >= 0 && ax < a->rank);
    int64_t dims[TSR_ARRAY_MAX_RANK];
    memcpy(dims, a->dims, sizeof dims);
    dims[ax] = n;
    tsr_array *r;
    TSR_TRY(tsr_array_create(&r, a->rank, dims));
    int64_t outer = 1, inner = 1;
    for (int i = 0; i < ax; i++) outer *= a->dims[i];
    for (int i = ax + 1; i < a->rank; i++) inner *= a->dims[i];
    int64_t old = a->dims[ax];
    for (int64_t o = 0; o < outer; o++)
        for (int64_t i = 0; i < n; i++) {
            double *d = r->data + (o * n + i) * inner;
            int64_t s = src[i] >= 0 ? src[i] : (isnan(fill) ? 0 : -1);
            if (s < 0) {
                for (int64_t j = 0; j < inner; j++) d[j] = fill;
            } else {
                memcpy(d, a->data + (o * old + s) * inner, (size_t)inner * sizeof *d);
            }
        }
    *out = r;
    return TSR_OK;
}

/* ---- finding hidden dimensions ---------------------------------------------------- */

static int is_output(const tsr_graph *g, int v) {
    for (int i = 0; i < g->n_outputs; i++)
        if (g->outputs[i] == v) return 1;
    return 0;
}

/* The one node reading value v (-1 if none or several). */
static int sole_reader(const tsr_graph *g, int v) {
    if (g->values[v].n_uses != 1) return -1;
    for (int n = 0; n < g->n_nodes; n++)
        for (int k = 0; k < g->nodes[n].n_in; k++)
            if (g->nodes[n].in[k] == v) return n;
    return -1;
}

static int layer_at_node(const pr_model *m, int n) {
    for (int i = 0; i < m->n_layers; i++)
        if (m->layers[i].node == n) return i;
    return -1;
}

static int feature_axis_out(const tsr_graph *g, const pr_layer *L) {
    const tsr_graph_node *nd = &g->nodes[L->node];
    if (nd->kind == TSR_NODE_MATMUL) return g->values[nd->out].rank - 1;
    return 1;
}

/* Does layer L read its features from axis ax of a value of rank vr? */
static int reads_axis(const tsr_graph *g, const pr_layer *L, int ax, int vr) {
    const tsr_graph_node *nd = &g->nodes[L->node];
    if (nd->kind == TSR_NODE_MATMUL) return ax == vr - 1;
    if (nd->kind == TSR_NODE_GEMM) return vr == 2 && ax == 1;
    return ax == 1; /* CONV: channels */
}

/*
 * Constant c (value cv) combined elementwise with a value of rank vr whose
 * features (H of them) are on axis ax: add the remap to h (returns 1), or
 * nothing to remap (returns 1), or not a per-feature constant (returns 0).
 */
static int add_bcast_const(const tsr_graph *g, pr_hidden *h, int cv, int vr, int ax, int64_t H,
                           double fill) {
    const tsr_graph_value *c = &g->values[cv];
    if (c->n_uses != 1) return tsr_dims_numel(c->rank, c->dims) == 1;
    int ca = ax - (vr - c->rank);
    for (int i = 0; i < c->rank; i++)
        if (i != ca && c->dims[i] != 1) return 0; /* varies along other axes: leave alone */
    if (ca < 0 || c->dims[ca] == 1) return 1;
    if (c->dims[ca] != H || h->n_fc >= 16) return 0;
    h->fc[h->n_fc++] = (pr_feat_const){ cv, ca, fill };
    return 1;
}

static int is_unary_elementwise(tsr_graph_kind k) {
    switch (k) {
    case TSR_NODE_IDENTITY:
    case TSR_NODE_NEG:
    case TSR_NODE_SQUARE:
    case TSR_NODE_RELU:
    case TSR_NODE_LEAKY_RELU:
    case TSR_NODE_SIGMOID:
    case TSR_NODE_TANH:
    case TSR_NODE_ERF:
    case TSR_NODE_EXP:
    case TSR_NODE_SQRT:
    case TSR_NODE_RECIPROCAL:
        return 1;
    default:
        return 0;
    }
}

/* Follow layer a's output to the next layer; fills h and returns 1 when it is a chain. */
static int follow(const pr_model *m, int a, pr_hidden *h) {
    const tsr_graph *g = m->g;
    const pr_layer *A = &m->layers[a];
    memset(h, 0, sizeof *h);
    h->a = a;
    h->stride = 1;
    int64_t H = A->rows;
    int flat = 0; /* after a flatten: only elementwise nodes until the next layer */
    const tsr_graph_node *an = &g->nodes[A->node];
    if (A->bval >= 0) {
        const tsr_graph_value *b = &g->values[A->bval];
        h->fc[h->n_fc++] = (pr_feat_const){ A->bval, b->rank - 1, 0.0 };
    } else if (an->n_in >= 3 && an->in[2] >= 0 &&
               (g->values[an->in[2]].kind != TSR_VALUE_CONST ||
                tsr_dims_numel(g->values[an->in[2]].rank, g->values[an->in[2]].dims) != 1)) {
        return 0; /* a bias per feature that cannot move with the rows (shared or computed) */
    }
    int v = g->nodes[A->node].out, ax = feature_axis_out(g, A);
    for (int guard = 0; guard < 64; guard++) {
        if (is_output(g, v)) return 0;
        int n = sole_reader(g, v);
        if (n < 0) return 0;
        const tsr_graph_node *nd = &g->nodes[n];
        int vr = g->values[v].rank;
        int li = layer_at_node(m, n);
        if (li >= 0) {
            if (nd->in[0] != v || !reads_axis(g, &m->layers[li], ax, vr)) return 0;
            if (m->layers[li].cols != H * h->stride) return 0;
            h->b = li;
            return 1;
        }
        if (nd->in[0] != v && !(nd->n_in == 2 && nd->in[1] == v)) return 0;
        if (is_unary_elementwise(nd->kind)) {
            /* one input; sqrt(x < 0) and 1/0 of a new feature would not vanish times 0 */
            if (nd->kind == TSR_NODE_SQRT || nd->kind == TSR_NODE_RECIPROCAL) h->no_expand = 1;
        } else if ((nd->kind == TSR_NODE_AVGPOOL || nd->kind == TSR_NODE_GLOBAL_AVGPOOL ||
                    nd->kind == TSR_NODE_MAXPOOL) &&
                   ax == 1 && !flat) {
            /* per channel */
        } else if ((nd->kind == TSR_NODE_FLATTEN || nd->kind == TSR_NODE_RESHAPE) && ax == 1 &&
                   !flat && vr >= 2) {
            /* (N, C, spatial...) -> (N, C * S): feature c becomes columns [c S, (c+1) S). */
            const tsr_graph_value *o = &g->values[nd->out];
            int64_t S = 1;
            for (int i = 2; i < vr; i++) S *= g->values[v].dims[i];
            if (o->rank != 2 || o->dims[1] != H * S) return 0;
            if (nd->kind == TSR_NODE_FLATTEN && nd->a.axis != 1) return 0;
            if (nd->kind == TSR_NODE_RESHAPE && !(nd->a.n_shape == 2 && nd->a.shape[1] == -1))
                h->no_expand = h->fixed_count = 1; /* its target shape states the count */
            h->stride = S;
            flat = 1;
        } else if (flat) {
            return 0;
        } else if (nd->kind == TSR_NODE_POW) {
            h->no_expand = 1; /* negative bases, non-integer or negative exponents */
            if (nd->in[0] != v ||
                tsr_dims_numel(g->values[nd->in[1]].rank, g->values[nd->in[1]].dims) != 1)
                return 0;
        } else if (nd->kind == TSR_NODE_ADD || nd->kind == TSR_NODE_SUB ||
                   nd->kind == TSR_NODE_MUL || nd->kind == TSR_NODE_DIV) {
            int other = nd->in[0] == v ? nd->in[1] : nd->in[0];
            if (other == v || g->values[other].kind != TSR_VALUE_CONST) return 0;
            if (g->values[other].rank > vr) return 0;
            double fill = (nd->kind == TSR_NODE_MUL || nd->kind == TSR_NODE_DIV) ? 1.0 : 0.0;
            if (!add_bcast_const(g, h, other, vr, ax, H, fill)) return 0;
        } else if (nd->kind == TSR_NODE_POLY || nd->kind == TSR_NODE_CHEBYSHEV) {
            const tsr_graph_value *c = &g->values[nd->in[1]];
            if (c->rank == 2) {
                if (nd->a.axis != ax || c->dims[0] != H || c->n_uses != 1 || h->n_fc >= 16)
                    return 0;
                h->fc[h->n_fc++] = (pr_feat_const){ nd->in[1], 0, NAN };
            }
        } else if (nd->kind == TSR_NODE_BATCHNORM) {
            if (ax != 1 || h->n_fc + 4 > 16) return 0;
            static const double fills[4] = { 1.0, 0.0, 0.0, 1.0 };
            for (int k = 1; k <= 4; k++) {
                const tsr_graph_value *c = &g->values[nd->in[k]];
                if (c->rank != 1 || c->dims[0] != H || c->n_uses != 1) return 0;
                h->fc[h->n_fc++] = (pr_feat_const){ nd->in[k], 0, fills[k - 1] };
            }
        } else {
            return 0;
        }
        v = nd->out;
    }
    return 0;
}

tsr_status pr_find_hidden(pr_model *m) {
    tsr_free(m->hidden);
    m->hidden = tsr_calloc_array((size_t)m->n_layers + 1, sizeof *m->hidden);
    if (!m->hidden) return tsr_fail(TSR_ERR_NOMEM, "out of memory");
    m->n_hidden = 0;
    for (int a = 0; a < m->n_layers; a++) {
        pr_hidden h;
        if (follow(m, a, &h)) m->hidden[m->n_hidden++] = h;
    }
    return TSR_OK;
}

/* ---- applying a feature map --------------------------------------------------------- */

/*
 * New features i = 0..n-1 of hidden dimension h take old feature src[i]
 * (src[i] < 0: a new feature). Rows of A, columns of B, and every
 * per-feature constant on the way.
 */
tsr_status pr_apply_map(pr_model *m, int hi, const int64_t *src, int64_t n) {
    pr_hidden *h = &m->hidden[hi];
    pr_layer *A = &m->layers[h->a], *B = &m->layers[h->b];
    const tsr_array *wa = pr_const(m, A->wval), *wb = pr_const(m, B->wval);
    int64_t S = h->stride, nS = n * S;
    int64_t *srcb = tsr_alloc((size_t)nS * sizeof *srcb);
    if (!srcb) return tsr_fail(TSR_ERR_NOMEM, "out of memory");
    for (int64_t i = 0; i < n; i++)
        for (int64_t s = 0; s < S; s++) srcb[i * S + s] = src[i] >= 0 ? src[i] * S + s : -1;
    /* Every remapped array first, so that a failure leaves the model as it was. */
    tsr_array *na = NULL, *nb = NULL, *fc[16] = { NULL };
    /* A's rows: axis 0 of (rows, cols, k...) or axis 1 of (cols, rows). */
    tsr_status st = pr_remap_axis(wa, A->rows_major ? 0 : 1, src, n, 0.0, &na);
    if (st == TSR_OK) st = pr_remap_axis(wb, B->rows_major ? 1 : 0, srcb, nS, 0.0, &nb);
    for (int i = 0; st == TSR_OK && i < h->n_fc; i++)
        st = pr_remap_axis(pr_const(m, h->fc[i].val), h->fc[i].axis, src, n, h->fc[i].fill, &fc[i]);
    if (st != TSR_OK) {
        tsr_free(srcb);
        tsr_array_free(na);
        tsr_array_free(nb);
        for (int i = 0; i < h->n_fc; i++) tsr_array_free(fc[i]);
        return st;
    }
    pr_const_set(m, A->wval, na);
    pr_const_set(m, B->wval, nb);
    for (int i = 0; i < h->n_fc; i++) pr_const_set(m, h->fc[i].val, fc[i]);
    /* Fixed masks move with the weights. */
    uint8_t *ma = NULL, *mb = NULL;
    if (A->mask || B->mask) {
        ma = A->mask ? tsr_calloc((size_t)(n * A->cols * A->k)) : NULL;
        mb = B->mask ? tsr_calloc((size_t)(B->rows * nS * B->k)) : NULL;
        if ((A->mask && !ma) || (B->mask && !mb)) {
            tsr_free(ma);
            tsr_free(mb);
            tsr_free(srcb);
            return tsr_fail(TSR_ERR_NOMEM, "out of memory");
        }
        for (int64_t i = 0; i < n && ma; i++)
            if (src[i] >= 0)
                memcpy(ma + i * A->cols * A->k, A->mask + src[i] * A->cols * A->k,
                       (size_t)(A->cols * A->k));
        for (int64_t r = 0; r < B->rows && mb; r++)
            for (int64_t i = 0; i < nS; i++)
                if (srcb[i] >= 0)
                    memcpy(mb + (r * nS + i) * B->k, B->mask + (r * B->cols + srcb[i]) * B->k,
                           (size_t)B->k);
    }
    tsr_free(srcb);
    if (A->mask) {
        tsr_free(A->mask);
        A->mask = ma;
    }
    if (B->mask) {
        tsr_free(B->mask);
        B->mask = mb;
    }
    A->rows = n;
    B->cols = nS;
    return TSR_OK;
}

/* ---- balanced k-means -------------------------------------------------------------- */

typedef struct pair {
    double d;
    int32_t p, c;
} pair;

static int cmp_pair(const void *x, const void *y) {
    const pair *a = x, *b = y;
    if (a->d != b->d) return a->d < b->d ? -1 : 1;
    if (a->p != b->p) return a->p < b->p ? -1 : 1;
    return a->c < b->c ? -1 : a->c > b->c;
}

static double dist2(const double *a, const double *b, int64_t d) {
    double s = 0;
    for (int64_t i = 0; i < d; i++) {
        double t = a[i] - b[i];
        s += t * t;
    }
    return s;
}

/* Per-feature vectors (H x d), normalised. */
static tsr_status features(const pr_model *m, const pr_hidden *h, double **out, int64_t *dim) {
    const pr_layer *A = &m->layers[h->a], *B = &m->layers[h->b];
    /* With per-offset tiles an entry is one (tile, kernel offset) unit of the layer. */
    int64_t ka = pr_koff(A), kb = pr_koff(B);
    int64_t H = A->rows, da = pr_tcols(A) * ka, db = (B->rows + B->R - 1) / B->R * kb;
    int64_t d = da + db;
    double *f = tsr_calloc_array((size_t)(H * d), sizeof *f);
    if (!f) return tsr_fail(TSR_ERR_NOMEM, "out of memory");
    const double *wa = pr_const(m, A->wval)->data, *wb = pr_const(m, B->wval)->data;
    for (int64_t r = 0; r < H; r++)
        for (int64_t c = 0; c < A->cols; c++)
            for (int64_t j = 0; j < A->k; j++) {
                double x = wa[pr_widx(A, r, c, j)];
                if (fabs(x) >= A->feat_thresh)
                    f[r * d + pr_tcol(A, c) * ka + (A->offsets ? j : 0)] += x * x;
            }
    for (int64_t r = 0; r < B->rows; r++)
        for (int64_t c = 0; c < B->cols; c++)
            for (int64_t j = 0; j < B->k; j++) {
                double x = wb[pr_widx(B, r, c, j)];
                if (fabs(x) >= B->feat_thresh)
                    f[(c / h->stride) * d + da + (r / B->R) * kb + (B->offsets ? j : 0)] += x * x;
            }
    for (int64_t i = 0; i < H; i++) {
        double s = 0;
        for (int64_t j = 0; j < d; j++) {
            f[i * d + j] = sqrt(f[i * d + j]);
            s += f[i * d + j] * f[i * d + j];
        }
        if (s > 0)
            for (int64_t j = 0; j < d; j++) f[i * d + j] /= sqrt(s);
    }
    *out = f;
    *dim = d;
    return TSR_OK;
}

tsr_status pr_permute_hidden(pr_model *m, int hi, int max_iters, uint64_t seed, int64_t *iters,
                             int64_t *perm) {
    pr_hidden *h = &m->hidden[hi];
    const pr_layer *A = &m->layers[h->a];
    int64_t H = A->rows, P = A->R, K = (H + P - 1) / P;
    *iters = 0;
    if (perm)
        for (int64_t i = 0; i < H; i++) perm[i] = i;
    if (K <= 1) return TSR_OK; /* one tile row: nothing to gain */
    double *f = NULL, *cen = NULL;
    int64_t d = 0;
    TSR_TRY(features(m, h, &f, &d));
    cen = tsr_calloc_array((size_t)(K * d), sizeof *cen);
    int32_t *asg = tsr_alloc((size_t)H * sizeof *asg), *cnt = tsr_calloc_array((size_t)K, 4);
    pair *pairs = tsr_alloc((size_t)(H * K) * sizeof *pairs);
    double *dmin = tsr_alloc((size_t)H * sizeof *dmin);
    int64_t *src = tsr_alloc((size_t)H * sizeof *src);
    tsr_status st = TSR_OK;
    if (!cen || !asg || !cnt || !pairs || !dmin || !src)
        st = tsr_fail(TSR_ERR_NOMEM, "out of memory");
    if (st == TSR_OK) {
        /* k-means++ seeding. */
        uint8_t sb[TSR_SEED_BYTES] = { 0 };
        memcpy(sb, &seed, sizeof seed);
        tsr_prng g;
        tsr_prng_init(&g, sb, 0x707275u);
        int64_t first = (int64_t)tsr_prng_uniform(&g, (uint64_t)H);
        memcpy(cen, f + first * d, (size_t)d * sizeof *cen);
        for (int64_t i = 0; i < H; i++) dmin[i] = dist2(f + i * d, cen, d);
        for (int64_t c = 1; c < K; c++) {
            double tot = 0;
            for (int64_t i = 0; i < H; i++) tot += dmin[i];
            int64_t pick = 0;
            if (tot > 0) {
                double u = tsr_prng_double(&g) * tot, acc = 0;
                for (pick = 0; pick < H - 1; pick++) {
                    acc += dmin[pick];
                    if (acc > u) break;
                }
            } else {
                pick = (int64_t)tsr_prng_uniform(&g, (uint64_t)H);
            }
            memcpy(cen + c * d, f + pick * d, (size_t)d * sizeof *cen);
            for (int64_t i = 0; i < H; i++) {
                double t = dist2(f + i * d, cen + c * d, d);
                if (t < dmin[i]) dmin[i] = t;
            }
        }
        for (int64_t i = 0; i < H; i++) asg[i] = -1;
        for (int it = 0; it < max_iters; it++) {
            /* Greedy balanced assignment: closest (feature, cluster) pairs first. */
            for (int64_t i = 0; i < H; i++)
                for (int64_t c = 0; c < K; c++)
                    pairs[i * K + c] =
                        (pair){ dist2(f + i * d, cen + c * d, d), (int32_t)i, (int32_t)c };
            qsort(pairs, (size_t)(H * K), sizeof *pairs, cmp_pair);
            memset(cnt, 0, (size_t)K * sizeof *cnt);
            int32_t *na = (int32_t *)src; /* scratch: new assignment */
            for (int64_t i = 0; i < H; i++) na[i] = -1;
            for (int64_t q = 0, left = H; q < H * K && left > 0; q++) {
                const pair *pp = &pairs[q];
                int64_t cap = pp->c == K - 1 ? H - (K - 1) * P : P;
                if (na[pp->p] >= 0 || cnt[pp->c] >= cap) continue;
                na[pp->p] = pp->c;
                cnt[pp->c]++;
                left--;
            }
            int changed = 0;
            for (int64_t i = 0; i < H; i++) {
                changed |= na[i] != asg[i];
                asg[i] = na[i];
            }
            *iters = it + 1;
            if (!changed) break;
            memset(cen, 0, (size_t)(K * d) * sizeof *cen);
            for (int64_t i = 0; i < H; i++)
                for (int64_t j = 0; j < d; j++) cen[asg[i] * d + j] += f[i * d + j];
            for (int64_t c = 0; c < K; c++)
                for (int64_t j = 0; j < d && cnt[c]; j++) cen[c * d + j] /= cnt[c];
        }
        /* Features cluster by cluster, in their old order inside a cluster. */
        int32_t *tmp = (int32_t *)dmin; /* H int32 fit in H doubles */
        memcpy(tmp, asg, (size_t)H * sizeof *tmp);
        int64_t at = 0;
        for (int64_t c = 0; c < K; c++)
            for (int64_t i = 0; i < H; i++)
                if (tmp[i] == c) src[at++] = i;
        TSR_ASSERT(at == H);
        st = pr_apply_map(m, hi, src, H);
        if (st == TSR_OK && perm) memcpy(perm, src, (size_t)H * sizeof *perm);
    }
    tsr_free(f);
    tsr_free(cen);
    tsr_free(asg);
    tsr_free(cnt);
    tsr_free(pairs);
    tsr_free(dmin);
    tsr_free(src);
    return st;
}

/* ---- expansion ---------------------------------------------------------------------- */

tsr_status pr_expand_hidden(pr_model *m, int hi, int64_t newH, uint64_t seed) {
    pr_hidden *h = &m->hidden[hi];
    pr_layer *A = &m->layers[h->a];
    int64_t H = A->rows;
    TSR_ASSERT(newH > H);
    if (h->no_expand)
        return tsr_fail(TSR_ERR_UNSUPPORTED,
                        "prune: cannot expand the features between layers %d and %d: a Sqrt, "
                        "Reciprocal or Pow on the way would not keep the function unchanged",
                        h->a, h->b);
    int64_t *src = tsr_alloc((size_t)newH * sizeof *src);
    if (!src) return tsr_fail(TSR_ERR_NOMEM, "out of memory");
    for (int64_t i = 0; i < newH; i++) src[i] = i < H ? i : -1;
    const tsr_array *wa = pr_const(m, A->wval);
    double rms = 0;
    for (size_t i = 0; i < wa->numel; i++) rms += wa->data[i] * wa->data[i];
    rms = sqrt(rms / (double)(wa->numel ? wa->numel : 1));
    tsr_status st = pr_apply_map(m, hi, src, newH);
    tsr_free(src);
    TSR_TRY(st);
    tsr_array *w;
    TSR_TRY(pr_const_mut(m, A->wval, &w));
    uint8_t sb[TSR_SEED_BYTES] = { 0 };
    memcpy(sb, &seed, sizeof seed);
    tsr_prng g;
    tsr_prng_init(&g, sb, 0x657870u);
    for (int64_t r = H; r < newH; r++)
        for (int64_t c = 0; c < A->cols; c++)
            for (int64_t j = 0; j < A->k; j++)
                w->data[pr_widx(A, r, c, j)] = 0.1 * rms * tsr_prng_normal(&g);
    return TSR_OK;
}
