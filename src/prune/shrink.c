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
 * feature; one whose features a Reshape on the way counts is left alone.
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

/* Fold the constant features (fold[f]) of hidden dimension h into b's bias. */
static tsr_status fold_into_bias(pr_model *m, const pr_hidden *h, const uint8_t *fold) {
    const pr_layer *B = &m->layers[h->b];
    const tsr_graph_attrs *at = &m->g->nodes[B->node].a;
    tsr_array *x;
    TSR_TRY(input_of_layer_on_zeros(m, B, &x));
    if (x->numel < (size_t)B->cols) {
        tsr_array_free(x);
        return tsr_fail(TSR_ERR_INTERNAL, "prune: shrink: layer input of %zu values, not %lld",
                        x->numel, (long long)B->cols);
    }
    tsr_array *bias;
    tsr_status st = pr_const_mut(m, B->bval, &bias);
    const tsr_array *wb = pr_const(m, B->wval);
    int64_t S = h->stride, H = B->cols / S;
    double scale = at->alpha / at->beta; /* Y = alpha x W + beta C */
    for (int64_t r = 0; st == TSR_OK && r < B->rows; r++) {
        double acc = 0;
        for (int64_t f = 0; f < H; f++)
            if (fold[f])
                for (int64_t s = 0; s < S; s++) {
                    int64_t c = f * S + s;
                    acc += wb->data[pr_widx(B, r, c, 0)] * x->data[c];
                }
        bias->data[r] += scale * acc;
    }
    tsr_array_free(x);
    return st;
}

/* One pass over hidden dimension hi: remove its empty features; *removed counts them. */
static tsr_status shrink_hidden(pr_model *m, int hi, int64_t *removed) {
    const pr_hidden *h = &m->hidden[hi];
    const pr_layer *A = &m->layers[h->a], *B = &m->layers[h->b];
    if (h->no_expand) return TSR_OK; /* a Reshape counts the features (or Sqrt / Pow) */
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
    int64_t n_drop = 0, n_fold = 0;
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
            n_drop++;
            n_fold += !out_zero;
        }
    }
    if (n_drop == H) { /* keep feature 0, unfolded */
        drop[0] = 0;
        n_fold -= fold[0];
        fold[0] = 0;
        n_drop--;
    }
    tsr_status st = TSR_OK;
    if (n_fold) st = fold_into_bias(m, h, fold);
    int64_t n = 0;
    for (int64_t f = 0; f < H; f++)
        if (!drop[f]) src[n++] = f;
    if (st == TSR_OK && n_drop) st = pr_apply_map(m, hi, src, n);
    if (st == TSR_OK) *removed += n_drop;
    tsr_free(drop);
    tsr_free(fold);
    tsr_free(src);
    return st;
}

tsr_status pr_shrink(pr_model *m, int64_t *removed) {
    *removed = 0;
    for (int pass = 0; pass < 64; pass++) {
        int64_t before = *removed;
        for (int hi = 0; hi < m->n_hidden; hi++) TSR_TRY(shrink_hidden(m, hi, removed));
        if (*removed == before) break;
    }
    return TSR_OK;
}
