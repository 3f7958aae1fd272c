/*
 * tile/tile_internal.h - what the tile-tensor sources share: the tile tensor
 * object, layout arithmetic (which logical element sits in which tile and
 * slot) and small helpers used by several operations.
 */
#ifndef TSR_TILE_INTERNAL_H
#define TSR_TILE_INTERNAL_H

#include "tile/backend.h"

#include <stdint.h>

/**
 * A tile tensor: a shape and its tiles in external row-major order. An
 * encoded plaintext's all-zero tiles are never encoded: v[t] is NULL (no
 * plaintext, no memory), and every operation treats such a tile as zero
 * (products skip it, sums copy the other side). Ciphertext tiles are never
 * NULL. level and scale are the plaintext tiles' (NULL ones included).
 */
struct tsr_tile {
    tsr_backend *be;
    tsr_tile_shape shape;
    int64_t ntiles;
    int encrypted;
    int level;    /* plaintexts: level of every tile, encoded or not */
    double scale; /* plaintexts: scale of every tile */
    tsr_bvec **v; /* [ntiles]; NULL: an all-zero plaintext tile */
};

/** Layout of a shape: external sizes and strides inside a tile and across tiles. */
typedef struct tl_layout {
    int nd;
    int64_t ext[TSR_TILE_MAX_DIMS];     /* tiles along each dimension */
    int64_t stride[TSR_TILE_MAX_DIMS];  /* slot stride of each dimension inside a tile */
    int64_t tstride[TSR_TILE_MAX_DIMS]; /* tile-index stride in the external grid */
    int64_t slots;                      /* product of the tile sizes */
    int64_t ntiles;                     /* product of the external sizes */
} tl_layout;

void tl_layout_init(tl_layout *L, const tsr_tile_shape *s);

/** 1 if dimension d has padding slots (positions that hold no element). */
int tl_dim_padded(const tsr_tile_dim *d);
/** Number of valid slot positions (a prefix) of dimension d in external tile k. */
int64_t tl_dim_valid(const tsr_tile_dim *d, int64_t ext, int64_t k);
/** Logical index of slot position s in external tile k, or -1 for padding (0 for `*`). */
int64_t tl_dim_index(const tsr_tile_dim *d, int64_t ext, int64_t k, int64_t s);
/** External tile and slot position of logical index j (j < size). */
void tl_dim_locate(const tsr_tile_dim *d, int64_t ext, int64_t j, int64_t *k, int64_t *s);

/**
 * For tile number t, map[slot] = row-major offset of the logical element in
 * that slot, or -1 for a padding slot. map has L->slots entries.
 */
void tl_slot_map(const tsr_tile_shape *s, const tl_layout *L, int64_t t, int64_t *map);

/** Format a shape into a static per-thread buffer (for error messages). */
const char *tl_fmt(const tsr_tile_shape *s);
/** Second buffer, so one message can show two shapes. */
const char *tl_fmt2(const tsr_tile_shape *s);

/** 1 if any padded dimension of s is `?`. */
int tl_has_unknown(const tsr_tile_shape *s);
/** Clear `?` flags on dimensions without padding (they mean nothing there). */
void tl_normalize(tsr_tile_shape *s);

/** A new tile tensor with ntiles NULL vectors. */
tsr_status tl_new(tsr_backend *be, const tsr_tile_shape *s, int encrypted, tsr_tile **out);

/**
 * Check that a and b can be combined elementwise and compute the result
 * shape. mul != 0: products (padding is zero where either side's is);
 * otherwise sums (padding is zero where both sides' are). op names the
 * operation in messages.
 */
tsr_status tl_broadcast(const tsr_tile_shape *a, const tsr_tile_shape *b, int mul, const char *op,
                        tsr_tile_shape *out);

/**
 * Index of the tile of an operand for tile number t of the result: `*`
 * dimensions of the operand have one tile, so their index is 0.
 */
int64_t tl_operand_tile(const tl_layout *res, const tl_layout *opnd, int64_t t);

/** Bring a copy of v to (level, scale): level drop, and a product by 1 if the scale differs. */
tsr_status tl_vec_to(tsr_backend *be, tsr_bvec *v, int level, double scale);

/** 1 if the scales are equal up to rounding. */
int tl_same_scale(double a, double b);

/** Encode slot values for multiplying a ciphertext at (level, scale) keeping its scale. */
tsr_status tl_encode_for_mul(tsr_backend *be, const double *slots, int level, double ct_scale,
                             tsr_bvec **out);

/** First dimension with a tile size > 1 (-1 if none). */
int tl_first_nontrivial(const tsr_tile_shape *s);

/** In-place rotate-and-sum of every tile over dimension d (log2 t rotations). */
tsr_status tl_rotate_sum(tsr_tile *t, int d);
/**
 * As tl_rotate_sum, skipping the tiles with skip[i] != 0 (known to be zero:
 * a rotation of zero is zero). skip may be NULL.
 */
tsr_status tl_rotate_sum_skip(tsr_tile *t, int d, const uint8_t *skip);

/**
 * *out = an encryption of zero shaped like the product of ciphertext a with
 * a plaintext at scale pscale: a copy of a times the constant 0 at scale
 * pscale (one counted constant product; no plaintext, no key), rescaled
 * when rescale != 0. This is what a product by an all-zero plaintext tile
 * costs.
 */
tsr_status tl_zero_product(tsr_backend *be, const tsr_bvec *a, double pscale, int rescale,
                           tsr_bvec **out);

/*
 * Sums of products of two encrypted tile tensors over their external tiles
 * (one sample per slot; attention's Q K^T and scores x V as one step):
 * output tile j = sum_k vals[k] * a tile ia[k] * b tile ib[k] (+ bias[j]),
 * k in [row_ptr[j], row_ptr[j+1]), products summed before one
 * relinearization per output (tsr_bvec_prod_lincomb). a and b at one level
 * and scale, shapes differing from out_shape only in external dimensions.
 * Two levels (products, constants), like tsr_tile_sq_lincomb.
 */
tsr_status tsr_tile_prod_lincomb(const tsr_tile *a, const tsr_tile *b,
                                 const tsr_tile_shape *out_shape, const int64_t *row_ptr,
                                 const int64_t *ia, const int64_t *ib, const double *vals,
                                 const double *bias, tsr_tile **out);

#endif /* TSR_TILE_INTERNAL_H */
