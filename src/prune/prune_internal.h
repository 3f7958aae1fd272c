/*
 * prune/prune_internal.h - what the pruning sources share: the working copy
 * of a graph's constants, the prunable layers seen as matrices of rows x
 * cols entries of k weights, tile norms, and the hidden dimensions between
 * chained layers (the permutation and expansion of permute.c).
 */
#ifndef TSR_PRUNE_INTERNAL_H
#define TSR_PRUNE_INTERNAL_H

#include "graph/graph_internal.h"
#include "tessera/prune.h"

#include <stdint.h>

/** A prunable layer: node, weight and bias constants, matrix view, tile. */
typedef struct pr_layer {
    int node;              /* index into g->nodes */
    int wval, bval;        /* value indices of the weights and the bias (-1: none) */
    int64_t rows, cols, k; /* rows = output features, cols = input features */
    int rows_major;        /* 1: stored (rows, cols, k) (GEMM trans_b, CONV); 0: (cols, rows) */
    int64_t R, C;          /* tile */
    int64_t sp_h, sp_w;    /* input flattened from (channels, sp_h, sp_w) images (0: flat) */
    int64_t ty, tx;        /* then a tile is C channels x a ty x tx spatial block */
    int prune;             /* 0: skipped */
    double sparsity;       /* target of this layer (the options' or its own) */
    double row_sparsity;   /* share of tile rows emptied whole before the tiles (TILE units) */
    uint8_t *mask;         /* (rows * cols * k) 1 = pruned, fixed; NULL before pruning */
    double feat_thresh;    /* permutation features count only |w| >= this (0: all) */
    int offsets;           /* 1: a tile is R x C at one of the k kernel offsets (k > 1 only) */
} pr_layer;

/** One constant to remap along a feature axis with a hidden dimension. */
typedef struct pr_feat_const {
    int val;     /* value index */
    int axis;    /* axis of the constant that runs over the features */
    double fill; /* value of new features (expansion); NAN: copy feature 0 */
} pr_feat_const;

/** A hidden dimension: layer a's outputs are layer b's inputs. */
typedef struct pr_hidden {
    int a, b;       /* layer indices */
    int64_t stride; /* b's columns per feature (a flatten of S spatial positions), else 1 */
    int n_fc;
    pr_feat_const fc[16];
    int no_expand; /* a node on the way (Sqrt, Reciprocal, Pow) where new features would not vanish
                    */
    int fixed_count; /* a Reshape on the way states the feature count: no removal either */
} pr_hidden;

/** A graph with working copies of its constants. */
typedef struct pr_model {
    const tsr_graph *g;
    tsr_array **data; /* (g->n_values) working copy, NULL = the graph's own */
    int n_layers;
    pr_layer *layers;
    int n_hidden;
    pr_hidden *hidden;
} pr_model;

/** The current data of constant value v. */
const tsr_array *pr_const(const pr_model *m, int v);
/** A writable working copy of constant value v (cloned on first use). */
tsr_status pr_const_mut(pr_model *m, int v, tsr_array **out);
/** Replace the working copy of v (takes ownership of a). */
void pr_const_set(pr_model *m, int v, tsr_array *a);

/** Offset of weight (r, c, j) of layer L in its array. */
static inline size_t pr_widx(const pr_layer *L, int64_t r, int64_t c, int64_t j) {
    return L->rows_major ? (size_t)((r * L->cols + c) * L->k + j) : (size_t)(c * L->rows + r);
}

/**
 * Tile columns of layer L. A flat input: blocks of C input features. An
 * input flattened from (channels, h, w) images: the compiler's dense tile
 * holds C channels at a ty x tx block of positions (docs/TILES.md), so a
 * tile column is (channel block, row block, column block).
 */
static inline int64_t pr_tcols(const pr_layer *L) {
    if (!L->sp_h) return (L->cols + L->C - 1) / L->C;
    int64_t ch = L->cols / (L->sp_h * L->sp_w);
    return ((ch + L->C - 1) / L->C) * ((L->sp_h + L->ty - 1) / L->ty) *
           ((L->sp_w + L->tx - 1) / L->tx);
}

/** The tile column of L's input column c (ONNX flatten order (channel, y, x)). */
static inline int64_t pr_tcol(const pr_layer *L, int64_t c) {
    if (!L->sp_h) return c / L->C;
    int64_t hw = L->sp_h * L->sp_w, ch = c / hw, y = (c % hw) / L->sp_w, x = c % L->sp_w;
    int64_t ny = (L->sp_h + L->ty - 1) / L->ty, nx = (L->sp_w + L->tx - 1) / L->tx;
    return ((ch / L->C) * ny + y / L->ty) * nx + x / L->tx;
}

/** Tile units per tile: k when L's tiles are per kernel offset, else 1. */
static inline int64_t pr_koff(const pr_layer *L) {
    return L->offsets ? L->k : 1;
}

/** Tile units of L: tiles x pr_koff (ceil(rows/R) x pr_tcols x pr_koff). */
static inline int64_t pr_ntiles(const pr_layer *L) {
    return ((L->rows + L->R - 1) / L->R) * pr_tcols(L) * pr_koff(L);
}

/**
 * The tile unit of weight (r, c, j) of L, bc = pr_tcols(L): tile (r / R, tile column of c),
 * and with per-offset tiles its kernel offset j inside it (units of one tile are adjacent, so
 * tile row i holds units [i bc koff, (i + 1) bc koff)).
 */
static inline int64_t pr_unit(const pr_layer *L, int64_t bc, int64_t r, int64_t c, int64_t j) {
    int64_t t = (r / L->R) * bc + pr_tcol(L, c);
    return L->offsets ? t * L->k + j : t;
}

/** Squared L2 norm per tile unit (pr_ntiles of them, indexed by pr_unit) of layer L. */
tsr_status pr_tile_norms(const pr_model *m, const pr_layer *L, double **out, int64_t *ntiles);

/** Find the hidden dimensions (chains a -> b) of m (fills m->hidden). */
tsr_status pr_find_hidden(pr_model *m);

/**
 * Permute the features of hidden dimension h by balanced k-means over
 * their per-tile weight mass (prune.h). *iters receives the iterations run;
 * perm (H entries, may be NULL) the new order: feature i was perm[i].
 */
tsr_status pr_permute_hidden(pr_model *m, int h, int max_iters, uint64_t seed, int64_t *iters,
                             int64_t *perm);

/**
 * New features i = 0..n-1 of hidden dimension h take old feature src[i]
 * (src[i] < 0: a new, zero feature): rows of layer a, columns of layer b,
 * every per-feature constant on the way and the fixed masks.
 */
tsr_status pr_apply_map(pr_model *m, int h, const int64_t *src, int64_t n);

/**
 * Widen hidden dimension h to newH features (> current): new features get
 * incoming weights N(0, sigma^2) (sigma = 0.1 x the rms of layer a's
 * weights) and zero outgoing weights, so the function is unchanged.
 */
tsr_status pr_expand_hidden(pr_model *m, int h, int64_t newH, uint64_t seed);

/**
 * Remap axis ax of a: output index i along ax takes input index src[i], or
 * the fill value (NAN: input index 0) where src[i] < 0; the axis gets n
 * entries. *out is new.
 */
tsr_status pr_remap_axis(const tsr_array *a, int ax, const int64_t *src, int64_t n, double fill,
                         tsr_array **out);

/**
 * A new finalized graph of m's current constants; extra_out (may be NULL) names a value
 * made an output after the graph's own (shrink.c reads an intermediate value with it).
 */
tsr_status pr_rebuild(const pr_model *m, const char *extra_out, tsr_graph **out);

/**
 * Remove the hidden features that pruning emptied (shrink.c): a feature whose outgoing
 * weights are all zero, and one whose incoming weights are all zero when the next layer is
 * a Gemm with a bias, which absorbs the feature's constant value. The function is unchanged
 * up to rounding; masks move with the weights. A constant that is not finite on the
 * all-zero input (or a run that fails) keeps its features; a removal that would raise the
 * two layers' nonzero tile count is cut down to whole tile-aligned groups, or to nothing.
 */
typedef struct pr_shrink_stats {
    int64_t removed;    /* features removed */
    int64_t not_folded; /* constant features kept: no finite value on the all-zero input */
    int realigned;      /* hidden dimensions whose removal was cut down to keep the tiles */
} pr_shrink_stats;
tsr_status pr_shrink(pr_model *m, pr_shrink_stats *stats);

#endif /* TSR_PRUNE_INTERNAL_H */
