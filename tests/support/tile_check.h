/*
 * tests/support/tile_check.h - helpers for the tile-tensor tests: random
 * tile shapes, dense reference tensors, and a checker that verifies every
 * slot of a tile tensor against the semantics of its shape (elements and
 * their replicas hold the reference values; a padding slot is zero unless a
 * dimension in which it is padding is `?`). The checker computes the layout with its own formulas,
 * not with the library's.
 */
#ifndef TSR_TILE_CHECK_H
#define TSR_TILE_CHECK_H

#include "testutil.h"

#include "tessera.h"

/**
 * A random valid shape with ndims dimensions over slots (a power of two),
 * at most max_tiles tiles. flags: bit 0 allows `~`, bit 1 allows `?`,
 * bit 2 allows `*` dimensions.
 */
void tc_random_shape(tsr_prng *g, int64_t slots, int ndims, unsigned flags, int64_t max_tiles,
                     tsr_tile_shape *out);
#define TC_INTERLEAVE 1u
#define TC_UNKNOWN    2u
#define TC_DUP        4u
#define TC_ALL        7u

/** n uniform values in [lo, hi). */
void tc_random_dense(tsr_prng *g, double *x, size_t n, double lo, double hi);

/** Parse a shape or fail the test. */
void tc_shape(const char *text, int64_t slots, tsr_tile_shape *out);

/**
 * Check t against the dense reference (row-major over the logical sizes of
 * t's shape) slot by slot; fails the test (with the shape, tile, slot and
 * values) on any difference above tol. Returns the largest error seen.
 */
double tc_check(const tsr_tile *t, const double *ref, double tol);

/** Reference (tile, slot) of a logical element by the paper's formulas. */
void tc_locate(const tsr_tile_shape *s, const int64_t *coords, int64_t *tile, int64_t *slot);

/** Row-major offset of coords in a dense tensor of the given logical sizes. */
int64_t tc_offset(const tsr_tile_shape *s, const int64_t *coords);

/** Make a mockup backend (values tracked, no noise, strict rotations). */
tsr_backend *tc_mockup(int64_t slots, int top_level);

/** A mockup backend that records the rotation steps asked of it (values tracked or not). */
tsr_backend *tc_mockup_collecting(int64_t slots, int top_level, int track_values);

/** tsr_tile_shape_make with every dimension plain (no `~`, `?`, `*`); fails the test if refused. */
void tc_shape_make(tsr_tile_shape *s, int nd, const int64_t *sizes, const int64_t *tiles,
                   int64_t slots);

/** Iterations of a randomised test: n, a third of it under the sanitizers. */
int tc_iters(int n);

/** Smallest k with 2^k >= t. */
int tc_lg(int64_t t);

#endif /* TSR_TILE_CHECK_H */
