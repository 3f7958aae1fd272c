/*
 * prune/shrink.c - removing the hidden features that pruning emptied, so
 * that the pruned graph is physically narrower (a graph rewrite after the
 * pruning; nothing in nn changes).
 *
 * Between chained layers a and b (prune_internal.h, pr_hidden) a feature f
 * can go when
 *  - its outgoing weights are all zero (column f of W_b, every spatial
 *    position and kernel offset): it contributes nothing to b; or
 *  - its incoming weights are all zero (row f of W_a): its value at b's
 *    input is the same constant for every input (a's bias through the
 *    per-feature nodes on the way, e.g. act(bias)), so b's bias absorbs
 *    W_b[:, f] times that constant. Only when b is a Gemm with a bias of
 *    its own (the fold needs somewhere to go) and a per-column constant
 *    stays a per-row constant of b's output (a dense layer; a convolution's
 *    zero padding would make it vary with the position).
 * The constants are read from the reference executor (graph.h,
 * tsr_graph_run) on an all-zero input, as the value entering b: whatever
 * the nodes between a and b are, the dead features' entries there do not
 * depend on the input. Removing features of one dimension can empty
 * features of another (a removed row of W_b empties nothing, but a removed
 * column of W_b's layer may leave a column of W_a's consumer all zero), so
 * the passes repeat until nothing changes. A dimension keeps at least one
 * feature; one whose features a Reshape on the way counts is left alone
 * (a Sqrt, Reciprocal or Pow, which forbid expansion, do not matter here).
 * A non-finite constant (0 x inf on the zero input) or a failed run keeps
 * its features, and a removal that would add nonzero tiles is cut down to
 * whole tile-aligned groups (keep_tiles_aligned).
 */
#include "prune/prune_internal.h"

#include "core/alloc.h"
#include "core/error.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* The value entering layer b (row 0 of a run on all-zero inputs of batch 1): *out is new. */
static tsr_status input_of_layer_on_zeros(const pr_model *m, const pr_layer *B, tsr_array **out) {
    *out = NULL;
    const tsr_graph *g = m->g;
    const char *name = g->values[g->nodes[B->node].in[0]].name;
    tsr_graph *ng;
    TSR_TRY(pr_rebuild(m, name, &ng));
    int ni = tsr_graph_num_inputs(ng), no = tsr_graph_num_outputs(ng);
    tsr_array **in = tsr_calloc_array((size_t)ni + 1, sizeof *in);
    tsr_array **res = tsr_calloc_array((size_t)no + 1, sizeof *res);
    tsr_status st = in && res ? TSR_OK : tsr_fail(TSR_ERR_NOMEM, "out of memory");
    for (int i = 0; st == TSR_OK && i < ni; i++) {
        const tsr_graph_value *v = &g->values[g->inputs[i]];
        int64_t dims[TSR_ARRAY_MAX_RANK];
        for (int d = 0; d < v->rank; d++) dims[d] = v->dims[d] < 0 ? 1 : v->dims[d];
        st = tsr_array_create(&in[i], v->rank, dims); /* zero-filled */
    }
    if (st == TSR_OK) st = tsr_graph_run(ng, (const tsr_array *const *)in, res);
    if (st == TSR_OK) {
        *out = res[no - 1]; /* the extra output comes last */
        res[no - 1] = NULL;
    }
    for (int i = 0; in && i < ni; i++) tsr_array_free(in[i]);
    for (int i = 0; res && i < no; i++) tsr_array_free(res[i]);
    tsr_free(in);
    tsr_free(res);
    tsr_graph_free(ng);
    return st;
}

/* Fold the constant features (drop[f] && fold[f]) of hidden dimension h into b's bias; x is
 * the value entering b on all-zero inputs (input_of_layer_on_zeros). */
static void fold_into_bias(pr_model *m, const pr_hidden *h, const uint8_t *drop,
                           const uint8_t *fold, const tsr_array *x, tsr_array *bias) {
    const pr_layer *B = &m->layers[h->b];
    const tsr_graph_attrs *at = &m->g->nodes[B->node].a;
    const tsr_array *wb = pr_const(m, B->wval);
    int64_t S = h->stride, H = B->cols / S;
    double scale = at->alpha / at->beta; /* Y = alpha x W + beta C */
    for (int64_t r = 0; r < B->rows; r++) {
        double acc = 0;
        for (int64_t f = 0; f < H; f++)
            if (drop[f] && fold[f])
                for (int64_t s = 0; s < S; s++) {
                    int64_t c = f * S + s;
                    acc += wb->data[pr_widx(B, r, c, 0)] * x->data[c];
                }
        bias->data[r] += scale * acc;
    }
}

/* Nonzero tile units of a and b (h's layers; per kernel offset with offset tiles, the
 * compiler's plaintexts) once the features with drop[f] are gone (the kept ones renumbered in
 * order): *out. */
static tsr_status tiles_kept(const pr_model *m, const pr_hidden *h, const uint8_t *drop,
                             int64_t *out) {
    const pr_layer *A = &m->layers[h->a], *B = &m->layers[h->b];
    int64_t H = A->rows, S = h->stride;
    int64_t bca = pr_tcols(A), bcb = pr_tcols(B);
    int64_t na = ((H + A->R - 1) / A->R) * bca * pr_koff(A);
    int64_t nb = ((B->rows + B->R - 1) / B->R) * bcb * pr_koff(B);
    uint8_t *t = tsr_calloc((size_t)(na + nb));
    if (!t) return tsr_fail(TSR_ERR_NOMEM, "out of memory");
    const tsr_array *wa = pr_const(m, A->wval), *wb = pr_const(m, B->wval);
    int64_t n = 0;
    for (int64_t f = 0; f < H; f++) {
        if (drop[f]) continue;
        for (int64_t c = 0; c < A->cols; c++)
            for (int64_t j = 0; j < A->k; j++)
                if (wa->data[pr_widx(A, f, c, j)] != 0.0) t[pr_unit(A, bca, n, c, j)] = 1;
        for (int64_t r = 0; r < B->rows; r++)
            for (int64_t s = 0; s < S; s++)
                for (int64_t j = 0; j < B->k; j++)
                    if (wb->data[pr_widx(B, r, f * S + s, j)] != 0.0)
                        t[na + pr_unit(B, bcb, r, n * S + s, j)] = 1;
        n++;
    }
    int64_t cnt = 0;
    for (int64_t i = 0; i < na + nb; i++) cnt += t[i];
    tsr_free(t);
    *out = cnt;
    return TSR_OK;
}

static int64_t gcd64(int64_t a, int64_t b) {
    while (b) {
        int64_t t = a % b;
        a = b;
        b = t;
    }
    return a;
}

/*
 * Removing single features shifts the later ones across tile boundaries, so an all-zero tile
 * of a (rows) or b (columns) can become a mixed one the compiler must encode and multiply.
 * When the removal would raise the two layers' nonzero tile count, only whole groups of G
 * features stay dropped, G a multiple of both a's tile rows and the features per b tile
 * column (the later features then move by whole tiles); if even that raises it, none.
 * Returns 1 when the drop set was cut down.
 */
static tsr_status keep_tiles_aligned(const pr_model *m, const pr_hidden *h, uint8_t *drop,
                                     int *cut) {
    const pr_layer *A = &m->layers[h->a], *B = &m->layers[h->b];
    int64_t H = A->rows, S = h->stride;
    *cut = 0;
    uint8_t *none = tsr_calloc((size_t)H);
    if (!none) return tsr_fail(TSR_ERR_NOMEM, "out of memory");
    int64_t before, after;
    tsr_status st = tiles_kept(m, h, none, &before);
    if (st == TSR_OK) st = tiles_kept(m, h, drop, &after);
    if (st == TSR_OK && after > before) {
        *cut = 1;
        int64_t gb = B->sp_h ? B->C : B->C / gcd64(B->C, S); /* features per b tile column */
        int64_t G = A->R / gcd64(A->R, gb) * gb;
        for (int64_t g0 = 0; g0 < H; g0 += G) {
            int64_t g1 = g0 + G < H ? g0 + G : H;
            int all = 1;
            for (int64_t f = g0; f < g1; f++) all &= drop[f];
            if (!all)
                for (int64_t f = g0; f < g1; f++) drop[f] = 0;
        }
        st = tiles_kept(m, h, drop, &after);
        if (st == TSR_OK && after > before) memset(drop, 0, (size_t)H);
    }
    tsr_free(none);
    return st;
}

/* One pass over hidden dimension hi: remove its empty features (counted in stats). */
static tsr_status shrink_hidden(pr_model *m, int hi, pr_shrink_stats *stats) {
    const pr_hidden *h = &m->hidden[hi];
    const pr_layer *A = &m->layers[h->a], *B = &m->layers[h->b];
    /* A Reshape that counts the features forbids removal; Sqrt, Reciprocal or Pow forbid only
     * new features (a removed one is unused, or a constant checked for being finite). */
    if (h->fixed_count) return TSR_OK;
    const tsr_graph_node *bn = &m->g->nodes[B->node];
    int foldable = bn->kind == TSR_NODE_GEMM && B->bval >= 0 && B->k == 1 && bn->a.beta != 0.0 &&
                   isfinite(bn->a.alpha / bn->a.beta);
    int64_t H = A->rows, S = h->stride;
    const tsr_array *wa = pr_const(m, A->wval), *wb = pr_const(m, B->wval);
    uint8_t *drop = tsr_calloc((size_t)H), *fold = tsr_calloc((size_t)H);
    int64_t *src = tsr_alloc((size_t)H * sizeof *src);
    if (!drop || !fold || !src) {
        tsr_free(drop);
        tsr_free(fold);
        tsr_free(src);
        return tsr_fail(TSR_ERR_NOMEM, "out of memory");
    }
    int64_t n_fold = 0;
    for (int64_t f = 0; f < H; f++) {
        int out_zero = 1, in_zero = 1;
        for (int64_t r = 0; r < B->rows && out_zero; r++)
            for (int64_t s = 0; s < S && out_zero; s++)
                for (int64_t j = 0; j < B->k; j++)
                    if (wb->data[pr_widx(B, r, f * S + s, j)] != 0.0) {
                        out_zero = 0;
                        break;
                    }
        for (int64_t c = 0; c < A->cols && in_zero && !out_zero; c++)
            for (int64_t j = 0; j < A->k; j++)
                if (wa->data[pr_widx(A, f, c, j)] != 0.0) {
                    in_zero = 0;
                    break;
                }
        if (out_zero || (in_zero && foldable)) {
            drop[f] = 1;
            fold[f] = !out_zero;
            n_fold += !out_zero;
        }
    }
    tsr_status st = TSR_OK;
    tsr_array *x = NULL;
    if (n_fold) {
        /* The constants: a run that fails (e.g. a Reshape the all-zero input of unknown
         * sizes 1 does not fit) or a non-finite one (a Reciprocal or Log of the input on the
         * way) keeps those features. */
        if (input_of_layer_on_zeros(m, B, &x) != TSR_OK) {
            tsr_clear_error();
            x = NULL;
        } else if (x->numel < (size_t)B->cols) {
            st = tsr_fail(TSR_ERR_INTERNAL, "prune: shrink: layer input of %zu values, not %lld",
                          x->numel, (long long)B->cols);
        }
        for (int64_t f = 0; st == TSR_OK && f < H; f++) {
            if (!fold[f]) continue;
            int ok = x != NULL;
            for (int64_t s = 0; s < S && ok; s++) ok = isfinite(x->data[f * S + s]);
            if (!ok) {
                drop[f] = fold[f] = 0;
                stats->not_folded++;
            }
        }
    }
    int64_t n_drop = 0;
    for (int64_t f = 0; f < H; f++) n_drop += drop[f];
    if (n_drop == H) drop[0] = 0; /* keep feature 0, unfolded */
    int cut = 0;
    if (st == TSR_OK && n_drop) st = keep_tiles_aligned(m, h, drop, &cut);
    stats->realigned += cut;
    int64_t n = 0;
    for (int64_t f = 0; f < H; f++)
        if (!drop[f]) src[n++] = f;
    tsr_array *bias = NULL;
    int any_fold = 0;
    for (int64_t f = 0; f < H; f++) any_fold |= drop[f] && fold[f];
    if (st == TSR_OK && any_fold) {
        st = pr_const_mut(m, B->bval, &bias);
        if (st == TSR_OK) fold_into_bias(m, h, drop, fold, x, bias);
    }
    if (st == TSR_OK && n < H) st = pr_apply_map(m, hi, src, n);
    if (st == TSR_OK) stats->removed += H - n;
    tsr_array_free(x);
    tsr_free(drop);
    tsr_free(fold);
    tsr_free(src);
    return st;
}

tsr_status pr_shrink(pr_model *m, pr_shrink_stats *stats) {
    memset(stats, 0, sizeof *stats);
    /* Every pass but the last removes a feature of a finite set, so this ends. */
    for (;;) {
        int64_t before = stats->removed;
        stats->not_folded = 0; /* what the last pass (which removes nothing) still finds */
        stats->realigned = 0;
        for (int hi = 0; hi < m->n_hidden; hi++) TSR_TRY(shrink_hidden(m, hi, stats));
        if (stats->removed == before) break;
    }
    return TSR_OK;
}
