/*
 * tessera/prune.h - HE-aware pruning of a model graph over the tile shapes
 * its weights are packed in (HE-PEx: Aharoni et al., arXiv 2207.03384;
 * docs/PRUNING.md).
 *
 * Under CKKS a zero weight saves work only when its whole packed tile is
 * zero: the compiler then encodes no plaintext for the tile and does no
 * ciphertext-plaintext product for it (docs/TILES.md, "All-zero plaintext
 * tiles"). This module zeroes whole tiles, and permutes hidden neurons so
 * that the surviving weights gather into few tiles.
 *
 * Prunable layers are the nodes with a constant weight matrix: GEMM and
 * MATMUL with a constant rank-2 second operand, and CONV with constant
 * weights and group 1. Each is seen as a matrix of rows = output features
 * (neurons, filters) by cols = input features (inputs, channels), one
 * entry holding k weights (k = 1 for dense layers, the kernel size for
 * convolutions: a tile of the compiler's filter layout covers a block of
 * filters x channels at every kernel offset). A layer's *tile* is a block
 * of R rows x C cols of that matrix; layer i gets (R, C) from the options,
 * and with `alternate` every other layer gets (C, R), which is how the
 * compiler's TILED packing alternates the dimension holding the features
 * (a layer with outputs in D0 is followed by one with outputs in D3).
 *
 * Methods (each to a target sparsity s in [0, 1)):
 *  - TILE: zero the round(s * tiles) tiles of smallest L2 norm per layer,
 *    in `steps` steps of a cubic schedule (Zhu and Gupta 2017) with the
 *    fine-tuning hook called after each step.
 *  - MAGNITUDE: unstructured, zero the round(s * weights) weights of
 *    smallest magnitude per layer (the plaintext baseline).
 *  - HUNTER: structured, zero the round(s * rows) rows (whole neurons or
 *    filters) of smallest L2 norm per layer (Hunter-style structured
 *    pruning adapted to row-packed tiles).
 *  - HEPEX: MAGNITUDE to s, then the permutation, then TILE to s. With a
 *    fine-tuning hook the magnitude pruning is real (gradual, fine-tuned);
 *    without one it only guides the permutation (the features count the
 *    weights it would keep) and TILE prunes the permuted weights, which keep
 *    their values inside kept tiles.
 * A permutation that lowers the squared weight mass in the best (1 - s)
 * share of tiles is undone (k-means groups tile patterns, which need not
 * raise that mass), so the reported mass after is never below the mass
 * before.
 * The permutation (also available on its own and with TILE): for each
 * hidden feature dimension between two chained layers (l's outputs are
 * l+1's inputs, through elementwise nodes, per-feature constants,
 * polynomials and batch norms only), order the features so that features
 * whose weights fall into the same tiles of both layers share a tile.
 * Search: balanced k-means (capacity R per cluster) over the features'
 * per-tile weight mass, k-means++ seeding from `seed`, greedy capacity-
 * respecting assignment, at most `kmeans_iters` iterations; cost per
 * hidden dimension O(iters * H * k * (d + log(H k))) for H features, k =
 * H / R clusters and d tile columns. The permuted graph computes the same
 * function (every per-feature constant on the way is permuted with it).
 * Expansion (`expand` > 1) widens every hidden dimension to a multiple of
 * its tile size near expand * H before pruning: new features get small
 * random incoming weights and zero outgoing weights (the function is
 * unchanged; refused with TSR_ERR_UNSUPPORTED when a Sqrt, Reciprocal or
 * Pow between the two layers, or a Reshape stating the feature count, would
 * break that); with fine-tuning they win back accuracy at about the same
 * tile count. Layers whose per-feature bias cannot move with their rows (a
 * bias shared with other nodes or computed) are not permuted or expanded.
 *
 * Shrink (`shrink`): after the last fine-tuning, every hidden feature left
 * with all-zero outgoing weights (column of W_{l+1}) is removed, and so is
 * one with all-zero incoming weights (row of W_l) when layer l+1 is a Gemm
 * with a bias: its value is a constant (act(bias)), read from the graph's
 * reference executor on an all-zero input, that the bias absorbs
 * (alpha / beta x W_{l+1}'s column times it). Rows of W_l and b_l, every
 * per-feature constant on the way and columns of W_{l+1} go; passes repeat
 * until nothing changes; a dimension keeps at least one feature, and one
 * whose feature count a Reshape on the way states is left alone. A
 * constant that is not finite on the all-zero input (or a run that fails
 * there) keeps its features
 * (`features_not_folded`); a removal that would raise the two layers'
 * nonzero tile count (tile units: per kernel offset with `offset_tiles`;
 * later features moving across tile boundaries) is cut
 * down to whole tile-aligned groups, or to nothing (`shrink_realigned`).
 * The graph is narrower and computes the same function up to rounding.
 *
 * Masks: the positions this call prunes. After each fine-tuning call they
 * are zeroed again, so they stay fixed whatever the trainer does; weights
 * that were already zero in the input, and the zero outgoing weights of
 * expanded features, are not masked (fine-tuning may make them nonzero).
 * Output graphs export to ordinary ONNX (onnx/onnx_graph.h).
 *
 * Thread-safety: functions are reentrant; graphs are read only.
 */
#ifndef TESSERA_PRUNE_H
#define TESSERA_PRUNE_H

#include "tessera/common.h"
#include "tessera/graph.h"

#include <stdint.h>
#include <stdio.h>

TSR_BEGIN_DECLS

typedef enum tsr_prune_method {
    TSR_PRUNE_NONE = 0,  /**< no zeroing (permutation / expansion / statistics only) */
    TSR_PRUNE_TILE,      /**< whole tiles of smallest norm */
    TSR_PRUNE_MAGNITUDE, /**< unstructured: weights of smallest magnitude */
    TSR_PRUNE_HUNTER,    /**< structured: whole rows of smallest norm */
    TSR_PRUNE_HEPEX      /**< magnitude, permutation, then tiles */
} tsr_prune_method;

/** The fixed masks of a pruning run (opaque; valid during a fine-tuning call). */
typedef struct tsr_prune_masks tsr_prune_masks;

/**
 * Fine-tuning hook: replace *model by a fine-tuned graph (free the old one).
 * The pruned weights are zeroed again after the call; a trainer keeps them
 * at zero during the call with tsr_prune_masks_apply (e.g. every few
 * steps). step counts from 1; return non-OK to stop.
 */
typedef tsr_status (*tsr_prune_finetune_fn)(void *ctx, int step, const tsr_prune_masks *masks,
                                            tsr_graph **model);

/**
 * *out = a new finalized graph equal to g with every pruned weight zeroed
 * (weights found by name). TSR_ERR_SHAPE when a pruned weight is missing or
 * changed shape. g is unchanged.
 */
TSR_API tsr_status tsr_prune_masks_apply(const tsr_prune_masks *masks, const tsr_graph *g,
                                         tsr_graph **out);

/**
 * The mask of constant `name` in its storage order: pruned[i] = 1 where
 * element i is pruned, 0 elsewhere (numel entries, the constant's current
 * element count). Returns 1 when the constant has a mask, 0 when it has
 * none (pruned is then all 0), -1 when it has one of another element count
 * (the error is set: training it unmasked would move pruned weights). For trainers that
 * keep pruned weights at zero at every step (mask the gradient and the
 * optimiser update) instead of re-imposing the masks afterwards.
 */
TSR_API int tsr_prune_masks_get(const tsr_prune_masks *masks, const char *name, uint8_t *pruned,
                                size_t numel);

/** Progress callback: done out of total units of work, with a phase name. */
typedef void (*tsr_prune_progress_fn)(void *ctx, const char *phase, int64_t done, int64_t total);

typedef struct tsr_prune_opts {
    tsr_prune_method method;
    double sparsity; /**< target fraction in [0, 1) (tiles, weights or rows) */
    /** per prunable layer (graph order) a sparsity overriding `sparsity` (< 0: use it);
        NULL: every layer gets `sparsity`. Layers beyond n_layer_sparsity get `sparsity`. */
    const double *layer_sparsity;
    int n_layer_sparsity;
    /** tile-row-aware TILE pruning: this share of each layer's tile rows (R output features
        x every input) is emptied whole first, smallest L2 norm first, on the same gradual
        schedule; their tiles count towards `sparsity`. An empty tile row costs no
        rotate-and-sum. Default 0. */
    double row_sparsity;
    /** per prunable layer a tile-row sparsity overriding `row_sparsity` (< 0: use it) */
    const double *layer_row_sparsity;
    int n_layer_row_sparsity;
    int64_t tile_rows; /**< R: rows (output features) per tile of the first layer */
    int64_t tile_cols; /**< C: cols (input features) per tile of the first layer */
    int alternate;     /**< 1 (default): layers alternate R x C and C x R */
    /** a dense layer reading (N, ch, h, w) images through a Flatten / Reshape: its tile is
        C channels at a tile_y x tile_x block of positions (the compiler's t1 x t2; default
        1 x 1) */
    int64_t tile_y, tile_x;
    int permute;      /**< 1: permute hidden features before TILE (HEPEX always does) */
    double expand;    /**< widen hidden dimensions by this factor first (1 = none) */
    int steps;        /**< gradual schedule steps (default 1) */
    int kmeans_iters; /**< balanced k-means iterations (default 20) */
    uint64_t seed;    /**< k-means seeding and expansion weights (default 1) */
    int skip_first;   /**< 1: leave the first prunable layer dense */
    int skip_last;    /**< 1: leave the last prunable layer dense */
    /** 1: after pruning (and the last fine-tuning), remove every hidden feature whose
        incoming or outgoing weights are all zero, so the graph is narrower: a feature with
        zero outgoing weights adds nothing; one with zero incoming weights is a constant
        (act(bias)) that the next layer's bias absorbs (only when that layer is a Gemm with a
        bias; else it stays). The function is unchanged up to rounding. Default 0. */
    int shrink;
    /** 1: a convolution's tile unit is its R x C block of filters x channels at *one* kernel
        offset (k units per tile), which is what the compiler encodes and skips when all zero
        (src/tile/conv.c: one plaintext per weight tile and offset); TILE pruning, the
        permutation's features, the kept-mass measure and the report count these units.
        0 (default): a tile covers every kernel offset. Dense layers (k = 1) are unchanged. */
    int offset_tiles;
    tsr_prune_finetune_fn finetune; /**< NULL: no fine-tuning */
    void *finetune_ctx;
    tsr_prune_progress_fn progress; /**< NULL: silent */
    void *progress_ctx;
} tsr_prune_opts;

/** Defaults: TILE, sparsity 0.5, 32 x 32 tiles (1 x 1 spatial), alternate, 1 step, 20
    iterations, seed 1. */
TSR_API void tsr_prune_opts_default(tsr_prune_opts *o);
/** "tile", "magnitude", "hunter", "hepex", "none"; TSR_ERR_INVALID_ARG otherwise. */
TSR_API tsr_status tsr_prune_method_parse(const char *s, tsr_prune_method *out);
TSR_API const char *tsr_prune_method_name(tsr_prune_method m);

/** Per prunable layer: its matrix view, tiles and what pruning removed. */
typedef struct tsr_prune_layer_stats {
    char name[96];          /**< node name */
    int64_t rows, cols, k;  /**< matrix view: rows x cols entries of k weights */
    int64_t tile_r, tile_c; /**< tile of this layer */
    int64_t tiles;          /**< ceil(rows / R) * ceil(cols / C) (x k with offset_tiles) */
    int64_t tiles_before;   /**< the same of the input (expand / shrink change the sizes) */
    int64_t tiles_nz_before, tiles_nz_after; /**< tiles holding a nonzero weight */
    int64_t weights, weights_nz_before, weights_nz_after;
    int64_t plain_before, plain_after; /**< plaintexts = nonzero (tile, kernel offset) pairs
                                            (per batch tile): the compiler's count, also when
                                            the tiles span every offset */
    int64_t rowblocks_zero_after;      /**< tile rows left all zero: no rotate-and-sum */
    int pruned;                        /**< 0: skipped (skip_first / skip_last) */
    int offsets; /**< 1: tiles are per kernel offset (offset_tiles, k > 1): the tile counts
                      above count (tile, offset) units */
} tsr_prune_layer_stats;

typedef struct tsr_prune_report {
    int n_layers;
    tsr_prune_layer_stats *layers;
    int n_hidden;                /**< hidden dimensions found between chained layers */
    int n_permuted;              /**< of which permuted */
    int n_undone;                /**< of those, permutations undone: they lowered the weight mass
                                      the kept share of tiles holds (mass_kept never decreases) */
    int64_t kmeans_iters;        /**< iterations run over all hidden dimensions */
    double mass_in_tiles;        /**< after permutation: share of squared weight mass kept by the
                                      best (1 - s) tiles per layer (1 = all), -1 if not permuted */
    double mass_before;          /**< the same share before permutation (-1 if not permuted) */
    int64_t features_removed;    /**< hidden features removed by `shrink` (layers' rows and
                                      cols above are after it; "before" counts the input's) */
    int64_t features_not_folded; /**< constant features `shrink` kept: their value on an
                                      all-zero input was not finite (or could not be run) */
    int shrink_realigned; /**< hidden dimensions where `shrink` removed only whole tile-aligned
                               groups (or nothing): single removals would have added tiles */
} tsr_prune_report;

/**
 * Prune a finalized graph g (unchanged) into *out (a new finalized graph)
 * and fill *rep (may be NULL; free with tsr_prune_report_free). Errors:
 * TSR_ERR_INVALID_ARG (options out of range), TSR_ERR_UNSUPPORTED (no
 * prunable layer), TSR_ERR_NOMEM, and whatever the fine-tuning hook returns.
 */
TSR_API tsr_status tsr_prune_graph(const tsr_graph *g, const tsr_prune_opts *o, tsr_graph **out,
                                   tsr_prune_report **rep);
/** Tile statistics of g for the tiles in o (nothing changed; "after" = "before"). */
TSR_API tsr_status tsr_prune_stats(const tsr_graph *g, const tsr_prune_opts *o,
                                   tsr_prune_report **rep);
/** Free a report (NULL is a no-op). */
TSR_API void tsr_prune_report_free(tsr_prune_report *r);
/** Print the per-layer table and totals (tiles, products, plaintexts removed). */
TSR_API void tsr_prune_report_print(const tsr_prune_report *r, FILE *fp);

TSR_END_DECLS

#endif /* TESSERA_PRUNE_H */
