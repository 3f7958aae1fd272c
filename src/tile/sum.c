/*
 * tile/sum.c - summation over a dimension (Aharoni et al., arXiv 2011.01805,
 * section 4: add the external tiles, then rotate-and-add inside each tile
 * with log2(t) rotations), the fused product-and-sum that gives
 * transpose-free matrix products, and duplication of a size-1 dimension.
 *
 * Products by plaintexts skip all-zero plaintext tiles (never encoded, see
 * tsr_tile_encode): no product for them, and an output tile that only such
 * tiles reach is an encryption of zero whose rotate-and-sum is skipped
 * (HE-PEx, Aharoni et al., arXiv 2207.03384: a pruned tile costs nothing).
 */
#include "tile/tile_internal.h"

#include "core/alloc.h"
#include "core/error.h"

#include <string.h>

tsr_status tl_rotate_sum(tsr_tile *t, int d) {
    return tl_rotate_sum_skip(t, d, NULL);
}

/* Every tile but the skipped ones: v[i] += rotate(v[i], steps[k]) for each k in order
 * (tsr_bvec_rotate_sums: on CKKS step by step, one key serving every tile). */
static tsr_status rotate_sums(tsr_tile *t, const uint8_t *skip, const int64_t *steps,
                              size_t nsteps) {
    tsr_bvec **vs = tsr_calloc_array(t->ntiles ? (size_t)t->ntiles : 1, sizeof *vs);
    if (!vs) return tsr_fail(TSR_ERR_NOMEM, "out of memory in rotate-and-sum");
    size_t n = 0;
    for (int64_t i = 0; i < t->ntiles; i++)
        if (!skip || !skip[i]) vs[n++] = t->v[i];
    tsr_status st = tsr_bvec_rotate_sums(t->be, vs, n, steps, nsteps);
    tsr_free(vs);
    return st;
}

tsr_status tl_rotate_sum_skip(tsr_tile *t, int d, const uint8_t *skip) {
    tl_layout L;
    tl_layout_init(&L, &t->shape);
    int64_t tile = t->shape.dim[d].tile, stride = L.stride[d], steps[64];
    size_t nsteps = 0;
    for (int64_t k = tile / 2; k >= 1; k /= 2) steps[nsteps++] = k * stride;
    return rotate_sums(t, skip, steps, nsteps);
}

/* Shape after summing dimension d of s. */
static void summed_shape(const tsr_tile_shape *s, int d, tsr_tile_shape *out) {
    *out = *s;
    tsr_tile_dim *x = &out->dim[d];
    int64_t t = x->tile;
    memset(x, 0, sizeof *x);
    x->size = 1;
    x->tile = t;
    if (t > 1) {
        if (tl_first_nontrivial(s) == d)
            x->dup = 1;
        else
            x->unknown = 1;
    }
}

static tsr_status check_dim(const tsr_tile_shape *s, int d, const char *op) {
    if (d < 0 || d >= s->ndims)
        return tsr_fail(TSR_ERR_INVALID_ARG, "%s: dimension %d does not exist in %s", op, d,
                        tl_fmt(s));
    return TSR_OK;
}

static tsr_status check_summable(const tsr_tile_shape *s, int d, const char *op) {
    const tsr_tile_dim *x = &s->dim[d];
    if (x->unknown && tl_dim_padded(x))
        return tsr_fail(TSR_ERR_SHAPE,
                        "%s over dimension %d of %s: its padding holds unknown values that would "
                        "be summed in; clear the tensor first (tsr_tile_clear, one level) or "
                        "multiply by a zero-padded plaintext",
                        op, d, tl_fmt(s));
    return TSR_OK;
}

static tsr_status finish(tsr_status st, tsr_tile *res, tsr_tile **out) {
    if (st != TSR_OK) {
        tsr_tile_free(res);
        *out = NULL;
        return st;
    }
    *out = res;
    return TSR_OK;
}

/* Index of the first input tile summed into output tile t (k_d = 0). */
static int64_t first_input_tile(const tl_layout *Lo, const tl_layout *Li, int64_t t) {
    return tl_operand_tile(Lo, Li, t);
}

tsr_status tsr_tile_sum(const tsr_tile *a, int d, tsr_tile **out) {
    *out = NULL;
    TSR_TRY(check_dim(&a->shape, d, "sum"));
    if (!a->encrypted) return tsr_fail(TSR_ERR_INVALID_ARG, "sum: the tensor must be encrypted");
    if (a->shape.dim[d].dup) return tsr_tile_copy(a, out);
    TSR_TRY(check_summable(&a->shape, d, "sum"));
    tsr_tile_shape rs;
    summed_shape(&a->shape, d, &rs);
    tsr_tile *r;
    TSR_TRY(tl_new(a->be, &rs, 1, &r));
    tl_layout Lr, La;
    tl_layout_init(&Lr, &rs);
    tl_layout_init(&La, &a->shape);
    tsr_status st = TSR_OK;
    for (int64_t t = 0; t < r->ntiles && st == TSR_OK; t++) {
        int64_t i0 = first_input_tile(&Lr, &La, t);
        st = tsr_bvec_copy(a->be, a->v[i0], &r->v[t]);
        for (int64_t k = 1; k < La.ext[d] && st == TSR_OK; k++)
            st = tsr_bvec_add(a->be, r->v[t], a->v[i0 + k * La.tstride[d]]);
    }
    if (st == TSR_OK && rs.dim[d].tile > 1) st = tl_rotate_sum(r, d);
    return finish(st, r, out);
}

tsr_status tsr_tile_mul_sum_dims(const tsr_tile *a, const tsr_tile *b, const int *dims, int ndims,
                                 tsr_tile **out) {
    *out = NULL;
    if (a->be != b->be)
        return tsr_fail(TSR_ERR_MISMATCH, "mul_sum: the operands live on different backends");
    if (!a->encrypted && b->encrypted) {
        const tsr_tile *t = a;
        a = b;
        b = t;
    }
    if (!a->encrypted)
        return tsr_fail(TSR_ERR_INVALID_ARG, "mul_sum: at least one operand must be encrypted");
    if (ndims < 1 || ndims > a->shape.ndims)
        return tsr_fail(TSR_ERR_INVALID_ARG, "mul_sum: %d dimensions to sum", ndims);
    tsr_tile_shape ps;
    TSR_TRY(tl_broadcast(&a->shape, &b->shape, 1, "multiply", &ps));
    /* The dimensions actually summed: distinct, not '*' (a '*' sum is the identity). */
    int sd[TSR_TILE_MAX_DIMS], ns = 0;
    for (int i = 0; i < ndims; i++) {
        TSR_TRY(check_dim(&a->shape, dims[i], "mul_sum"));
        for (int j = 0; j < i; j++)
            if (dims[j] == dims[i])
                return tsr_fail(TSR_ERR_INVALID_ARG, "mul_sum: dimension %d listed twice", dims[i]);
        if (ps.dim[dims[i]].dup) continue;
        TSR_TRY(check_summable(&ps, dims[i], "mul_sum"));
        sd[ns++] = dims[i];
    }
    if (ns == 0) return tsr_tile_mul(a, b, out);
    int level = tsr_tile_level(a) < tsr_tile_level(b) ? tsr_tile_level(a) : tsr_tile_level(b);
    if (level < 1)
        return tsr_fail(TSR_ERR_LEVEL,
                        "mul_sum at level 0: no multiplicative depth left (use parameters with "
                        "more levels, or a plan with less depth)");
    tsr_backend *be = a->be;
    tsr_tile_shape rs = ps;
    for (int i = 0; i < ns; i++) {
        tsr_tile_shape t = rs;
        summed_shape(&t, sd[i], &rs);
        /* summed_shape looks for the first nontrivial dimension in its input; tiles
         * do not change, so the answer is the same for every step. */
    }
    tsr_tile *r;
    TSR_TRY(tl_new(be, &rs, 1, &r));
    tl_layout Lp, Lr, La, Lb;
    tl_layout_init(&Lp, &ps);
    tl_layout_init(&Lr, &rs);
    tl_layout_init(&La, &a->shape);
    tl_layout_init(&Lb, &b->shape);
    /* Operands at a higher level are dropped once, not per use. */
    tsr_bvec **da = NULL, **db = NULL;
    tsr_status st = TSR_OK;
    if (tsr_tile_level(a) != level || tsr_tile_level(b) != level) {
        da = tsr_calloc_array((size_t)a->ntiles, sizeof *da);
        db = tsr_calloc_array((size_t)b->ntiles, sizeof *db);
        if (!da || !db) st = tsr_fail(TSR_ERR_NOMEM, "out of memory in mul_sum");
        for (int64_t i = 0; i < a->ntiles && st == TSR_OK; i++) {
            st = tsr_bvec_copy(be, a->v[i], &da[i]);
            if (st == TSR_OK) st = tsr_bvec_drop_level(be, da[i], level);
        }
        for (int64_t i = 0; i < b->ntiles && st == TSR_OK; i++) {
            if (!b->v[i]) continue; /* an all-zero plaintext tile */
            st = tsr_bvec_copy(be, b->v[i], &db[i]);
            if (st == TSR_OK) st = tsr_bvec_drop_level(be, db[i], level);
        }
    }
    tsr_bvec *const *va = da ? da : a->v, *const *vb = db ? db : b->v;
    tsr_bvec *scratch = NULL;
    uint8_t *zero = tsr_calloc((size_t)r->ntiles); /* 1: output tile known to be zero */
    if (!zero && st == TSR_OK) st = tsr_fail(TSR_ERR_NOMEM, "out of memory in mul_sum");
    for (int64_t t = 0; t < r->ntiles && st == TSR_OK; t++) {
        /* Product tile with the summed dimensions' external indices at 0; walk them all. */
        int64_t p0 = tl_operand_tile(&Lr, &Lp, t), k[TSR_TILE_MAX_DIMS] = { 0 }, ia0 = -1;
        for (;;) {
            int64_t p = p0;
            for (int i = 0; i < ns; i++) p += k[i] * Lp.tstride[sd[i]];
            int64_t ia = tl_operand_tile(&Lp, &La, p), ib = tl_operand_tile(&Lp, &Lb, p);
            int first = r->v[t] == NULL;
            if (ia0 < 0) ia0 = ia;
            if (!vb[ib]) {
                /* All-zero plaintext tile: no product. */
            } else if (first) {
                st = tsr_bvec_mul_new(be, va[ia], vb[ib], &r->v[t]);
            } else {
                /* Later products go through one scratch vector: no allocation each time. */
                st = scratch ? tsr_bvec_mul_to(be, scratch, va[ia], vb[ib])
                             : tsr_bvec_mul_new(be, va[ia], vb[ib], &scratch);
                if (st == TSR_OK) st = tsr_bvec_add(be, r->v[t], scratch);
            }
            if (st != TSR_OK) break;
            int i = ns - 1;
            while (i >= 0 && ++k[i] == Lp.ext[sd[i]]) k[i--] = 0;
            if (i < 0) break;
        }
        if (st == TSR_OK && !r->v[t]) {
            /* Only all-zero plaintext tiles reach this output tile. */
            zero[t] = 1;
            st = tl_zero_product(be, va[ia0], tsr_tile_scale(b), 0, &r->v[t]);
        }
        if (st == TSR_OK) st = tsr_bvec_rescale(be, r->v[t]);
    }
    tsr_bvec_free(be, scratch);
    for (int64_t i = 0; da && i < a->ntiles; i++) tsr_bvec_free(be, da[i]);
    for (int64_t i = 0; db && i < b->ntiles; i++) tsr_bvec_free(be, db[i]);
    tsr_free(da);
    tsr_free(db);
    for (int i = 0; i < ns && st == TSR_OK; i++)
        if (rs.dim[sd[i]].tile > 1) st = tl_rotate_sum_skip(r, sd[i], zero);
    tsr_free(zero);
    return finish(st, r, out);
}

tsr_status tsr_tile_mul_sum(const tsr_tile *a, const tsr_tile *b, int d, tsr_tile **out) {
    return tsr_tile_mul_sum_dims(a, b, &d, 1, out);
}

tsr_status tsr_tile_duplicate(const tsr_tile *a, int d, tsr_tile **out) {
    *out = NULL;
    TSR_TRY(check_dim(&a->shape, d, "duplicate"));
    if (!a->encrypted)
        return tsr_fail(TSR_ERR_INVALID_ARG, "duplicate: the tensor must be encrypted");
    const tsr_tile_dim *x = &a->shape.dim[d];
    if (x->dup) return tsr_tile_copy(a, out);
    if (x->size != 1)
        return tsr_fail(TSR_ERR_SHAPE,
                        "duplicate: dimension %d of %s has size %lld; only a size-1 dimension "
                        "can be duplicated (sum over it first)",
                        d, tl_fmt(&a->shape), (long long)x->size);
    if (x->unknown && x->tile > 1)
        return tsr_fail(TSR_ERR_SHAPE,
                        "duplicate: dimension %d of %s holds unknown values in its padding; "
                        "clear the tensor first (tsr_tile_clear, one level)",
                        d, tl_fmt(&a->shape));
    tsr_tile *r;
    TSR_TRY(tsr_tile_copy(a, &r));
    r->shape.dim[d].dup = 1;
    r->shape.dim[d].unknown = 0;
    r->shape.dim[d].interleaved = 0;
    tl_layout L;
    tl_layout_init(&L, &a->shape);
    int64_t steps[64];
    size_t nsteps = 0;
    for (int64_t k = 1; k < x->tile; k *= 2) steps[nsteps++] = -k * L.stride[d];
    return finish(rotate_sums(r, NULL, steps, nsteps), r, out);
}
