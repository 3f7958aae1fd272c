/*
 * tile/lincomb.c - linear maps over the external grid of a tile tensor with
 * scalar coefficients: output tile j = sum_k c_jk * input tile i_k (+ b_j),
 * one rescale per output tile. The slot layout is untouched, so this is the
 * whole of a dense or convolution layer when every model dimension lives in
 * the external grid and the slots hold a batch (one sample per slot, as in
 * CryptoNets, Gilad-Bachrach et al. 2016): no rotations, no plaintexts.
 *
 * A backend may provide a fused kernel (vtable `lincomb`: the ckks backend
 * uses tsr_ckks_lincomb); otherwise each term is a copy, a constant product
 * and an addition (tsr_bvec_lincomb).
 */
#include "tile/tile_internal.h"

#include "core/alloc.h"
#include "core/error.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

/* Only dimensions with tile 1 (external only) may differ between a and out. */
static tsr_status check_shapes(const tsr_tile_shape *a, const tsr_tile_shape *o, int64_t slots) {
    TSR_TRY(tsr_tile_shape_validate(o, slots));
    if (a->ndims != o->ndims)
        return tsr_fail(TSR_ERR_SHAPE, "lincomb: %s and %s have different numbers of dimensions",
                        tl_fmt(a), tl_fmt2(o));
    for (int d = 0; d < a->ndims; d++) {
        const tsr_tile_dim *x = &a->dim[d], *y = &o->dim[d];
        if (x->tile != y->tile)
            return tsr_fail(TSR_ERR_SHAPE,
                            "lincomb: dimension %d has tile %lld in %s and %lld in %s", d,
                            (long long)x->tile, tl_fmt(a), (long long)y->tile, tl_fmt2(o));
        if (x->tile > 1 &&
            (x->size != y->size || !x->dup != !y->dup || !x->interleaved != !y->interleaved))
            return tsr_fail(TSR_ERR_SHAPE,
                            "lincomb: dimension %d lives inside the tiles (tile %lld) and must be "
                            "the same in %s and %s; only external dimensions can be remapped",
                            d, (long long)x->tile, tl_fmt(a), tl_fmt2(o));
    }
    return TSR_OK;
}

/*
 * The result tensor of a sum of products: out_shape, whose inside dimensions are flagged as
 * holding unknown padding when the inputs' padding is unknown (unknown_in) or a bias reaches
 * it (any non-zero bias).
 */
static tsr_status new_result(tsr_backend *be, const tsr_tile_shape *out_shape, int64_t nout,
                             const double *bias, int unknown_in, tsr_tile **r) {
    tsr_tile_shape rs = *out_shape;
    int any_bias = 0;
    for (int64_t j = 0; bias && j < nout; j++) any_bias |= bias[j] != 0.0;
    int unknown = any_bias || unknown_in;
    for (int d = 0; d < rs.ndims; d++) rs.dim[d].unknown = unknown && rs.dim[d].tile > 1;
    tl_normalize(&rs);
    return tl_new(be, &rs, 1, r);
}

/*
 * Ends a sum of products whose kernel returned st: rescales every output ciphertext of r and
 * adds its bias (non-zero entries), on OpenMP threads over the outputs. On any failure r is
 * freed and the first failure's status returned with its message.
 */
static tsr_status rescale_add_bias(tsr_backend *be, tsr_tile *r, int64_t nout, const double *bias,
                                   tsr_status st) {
    int stop = 0;
    tsr_status first = TSR_OK;
    char msg[512] = "";
#ifdef _OPENMP
#pragma omp parallel for schedule(dynamic, 4) if (st == TSR_OK)
#endif
    for (int64_t j = 0; j < nout; j++) {
        if (st != TSR_OK || __atomic_load_n(&stop, __ATOMIC_RELAXED)) continue;
        tsr_status s = tsr_bvec_rescale(be, r->v[j]);
        if (s == TSR_OK && bias && bias[j] != 0.0) s = tsr_bvec_add_const(be, r->v[j], bias[j]);
        if (s != TSR_OK) {
#ifdef _OPENMP
#pragma omp critical(tsr_tile_lincomb_err)
#endif
            if (!stop) {
                snprintf(msg, sizeof msg, "%s", tsr_last_error());
                first = s;
                __atomic_store_n(&stop, 1, __ATOMIC_RELAXED);
            }
        }
    }
    if (st == TSR_OK && stop) st = tsr_fail(first, "%s", msg);
    if (st != TSR_OK) tsr_tile_free(r);
    return st;
}

static tsr_status lincomb(const tsr_tile *a, int square, const tsr_tile_shape *out_shape,
                          const int64_t *row_ptr, const int64_t *cols, const double *vals,
                          const double *bias, tsr_tile **out) {
    *out = NULL;
    tsr_backend *be = a->be;
    if (!a->encrypted) return tsr_fail(TSR_ERR_INVALID_ARG, "lincomb: the input must be encrypted");
    TSR_TRY(check_shapes(&a->shape, out_shape, be->slots));
    int64_t nout = tsr_tile_shape_num_tiles(out_shape);
    if (row_ptr[0] != 0) return tsr_fail(TSR_ERR_INVALID_ARG, "lincomb: row_ptr[0] must be 0");
    for (int64_t j = 0; j < nout; j++) {
        if (row_ptr[j + 1] < row_ptr[j])
            return tsr_fail(TSR_ERR_INVALID_ARG, "lincomb: row_ptr decreases at row %lld",
                            (long long)j);
        for (int64_t k = row_ptr[j]; k < row_ptr[j + 1]; k++) {
            if (cols[k] < 0 || cols[k] >= a->ntiles)
                return tsr_fail(TSR_ERR_INVALID_ARG,
                                "lincomb: row %lld reads tile %lld of a tensor with %lld tiles",
                                (long long)j, (long long)cols[k], (long long)a->ntiles);
            if (!isfinite(vals[k]))
                return tsr_fail(TSR_ERR_INVALID_ARG, "lincomb: coefficient %lld is not finite",
                                (long long)k);
        }
        if (bias && !isfinite(bias[j]))
            return tsr_fail(TSR_ERR_INVALID_ARG, "lincomb: bias %lld is not finite", (long long)j);
    }
    int level = tsr_tile_level(a);
    double sin = tsr_tile_scale(a);
    if (square) {
        /* The combination reads the squares, which sit one level lower. */
        if (level < 2)
            return tsr_fail(TSR_ERR_LEVEL,
                            "square + lincomb at level %d: needs two levels (use parameters with "
                            "more levels)",
                            level);
        sin = sin * sin / be->primes[level];
        level--;
    }
    if (level < 1)
        return tsr_fail(TSR_ERR_LEVEL,
                        "lincomb at level 0: no multiplicative depth left (use parameters with "
                        "more levels)");
    double cscale = be->scales[level - 1] * be->primes[level] / sin;
    tsr_tile *r;
    TSR_TRY(new_result(be, out_shape, nout, bias, tl_has_unknown(&a->shape), &r));
    tsr_status st = square
                        ? tsr_bvec_sq_lincomb(be, r->v, (size_t)nout, (const tsr_bvec *const *)a->v,
                                              (size_t)a->ntiles, row_ptr, cols, vals, cscale)
                        : tsr_bvec_lincomb(be, r->v, (size_t)nout, (const tsr_bvec *const *)a->v,
                                           (size_t)a->ntiles, row_ptr, cols, vals, cscale);
    TSR_TRY(rescale_add_bias(be, r, nout, bias, st));
    *out = r;
    return TSR_OK;
}

tsr_status tsr_tile_lincomb(const tsr_tile *a, const tsr_tile_shape *out_shape,
                            const int64_t *row_ptr, const int64_t *cols, const double *vals,
                            const double *bias, tsr_tile **out) {
    return lincomb(a, 0, out_shape, row_ptr, cols, vals, bias, out);
}

tsr_status tsr_tile_sq_lincomb(const tsr_tile *a, const tsr_tile_shape *out_shape,
                               const int64_t *row_ptr, const int64_t *cols, const double *vals,
                               const double *bias, tsr_tile **out) {
    return lincomb(a, 1, out_shape, row_ptr, cols, vals, bias, out);
}

tsr_status tsr_tile_prod_lincomb(const tsr_tile *a, const tsr_tile *b,
                                 const tsr_tile_shape *out_shape, const int64_t *row_ptr,
                                 const int64_t *ia, const int64_t *ib, const double *vals,
                                 const double *bias, tsr_tile **out) {
    *out = NULL;
    tsr_backend *be = a->be;
    if (!a->encrypted || !b->encrypted || b->be != be)
        return tsr_fail(TSR_ERR_INVALID_ARG,
                        "prod_lincomb: both inputs must be encrypted on one backend");
    TSR_TRY(check_shapes(&a->shape, out_shape, be->slots));
    TSR_TRY(check_shapes(&b->shape, out_shape, be->slots));
    int64_t nout = tsr_tile_shape_num_tiles(out_shape);
    if (row_ptr[0] != 0) return tsr_fail(TSR_ERR_INVALID_ARG, "prod_lincomb: row_ptr[0] must be 0");
    for (int64_t j = 0; j < nout; j++) {
        if (row_ptr[j + 1] < row_ptr[j])
            return tsr_fail(TSR_ERR_INVALID_ARG, "prod_lincomb: row_ptr decreases at row %lld",
                            (long long)j);
        for (int64_t k = row_ptr[j]; k < row_ptr[j + 1]; k++) {
            if (ia[k] < 0 || ia[k] >= a->ntiles || ib[k] < 0 || ib[k] >= b->ntiles)
                return tsr_fail(TSR_ERR_INVALID_ARG,
                                "prod_lincomb: term %lld reads tiles %lld and %lld of tensors with "
                                "%lld and %lld tiles",
                                (long long)k, (long long)ia[k], (long long)ib[k],
                                (long long)a->ntiles, (long long)b->ntiles);
            if (!isfinite(vals[k]))
                return tsr_fail(TSR_ERR_INVALID_ARG, "prod_lincomb: coefficient %lld is not finite",
                                (long long)k);
        }
        if (bias && !isfinite(bias[j]))
            return tsr_fail(TSR_ERR_INVALID_ARG, "prod_lincomb: bias %lld is not finite",
                            (long long)j);
    }
    int level = tsr_tile_level(a);
    if (tsr_tile_level(b) != level)
        return tsr_fail(TSR_ERR_LEVEL, "prod_lincomb: inputs at levels %d and %d", level,
                        tsr_tile_level(b));
    if (level < 2)
        return tsr_fail(TSR_ERR_LEVEL,
                        "products + lincomb at level %d: needs two levels (use parameters with "
                        "more levels)",
                        level);
    double sin = tsr_tile_scale(a) * tsr_tile_scale(b) / be->primes[level];
    level--;
    double cscale = be->scales[level - 1] * be->primes[level] / sin;
    tsr_tile *r;
    TSR_TRY(new_result(be, out_shape, nout, bias,
                       tl_has_unknown(&a->shape) || tl_has_unknown(&b->shape), &r));
    tsr_status st = tsr_bvec_prod_lincomb(be, r->v, (size_t)nout, (const tsr_bvec *const *)a->v,
                                          (size_t)a->ntiles, (const tsr_bvec *const *)b->v,
                                          (size_t)b->ntiles, row_ptr, ia, ib, vals, cscale);
    TSR_TRY(rescale_add_bias(be, r, nout, bias, st));
    *out = r;
    return TSR_OK;
}
