/*
 * tile/tile.c - the tile tensor object: encrypt/encode/decrypt, elementwise
 * operations with `*` broadcasting, products by plaintexts and scalars,
 * level and scale management, clearing unknowns and reshaping.
 */
#include "tile/tile_internal.h"

#include "core/alloc.h"
#include "core/error.h"

#include <math.h>
#include <string.h>

/* ---- object ------------------------------------------------------------------ */

tsr_status tl_new(tsr_backend *be, const tsr_tile_shape *s, int encrypted, tsr_tile **out) {
    *out = NULL;
    tsr_tile *t = tsr_calloc(sizeof *t);
    if (!t) return tsr_fail(TSR_ERR_NOMEM, "out of memory allocating a tile tensor");
    t->be = be;
    t->shape = *s;
    t->ntiles = tsr_tile_shape_num_tiles(s);
    t->encrypted = encrypted;
    t->v = tsr_calloc_array((size_t)t->ntiles, sizeof *t->v);
    if (!t->v) {
        tsr_free(t);
        return tsr_fail(TSR_ERR_NOMEM, "out of memory allocating %lld tiles", (long long)t->ntiles);
    }
    *out = t;
    return TSR_OK;
}

void tsr_tile_free(tsr_tile *t) {
    if (!t) return;
    for (int64_t i = 0; i < t->ntiles; i++) tsr_bvec_free(t->be, t->v[i]);
    tsr_free(t->v);
    tsr_free(t);
}

const tsr_tile_shape *tsr_tile_get_shape(const tsr_tile *t) {
    return &t->shape;
}

tsr_backend *tsr_tile_backend(const tsr_tile *t) {
    return t->be;
}

/* The first encoded tile (NULL: an all-zero plaintext, nothing encoded). */
static const tsr_bvec *first_vec(const tsr_tile *t) {
    for (int64_t i = 0; i < t->ntiles; i++)
        if (t->v[i]) return t->v[i];
    return NULL;
}

int tsr_tile_level(const tsr_tile *t) {
    const tsr_bvec *v = first_vec(t);
    return v ? v->level : t->level;
}

double tsr_tile_scale(const tsr_tile *t) {
    const tsr_bvec *v = first_vec(t);
    return v ? v->scale : t->scale;
}

int64_t tsr_tile_num_encoded(const tsr_tile *t) {
    int64_t n = 0;
    for (int64_t i = 0; i < t->ntiles; i++) n += t->v[i] != NULL;
    return n;
}

int tsr_tile_is_encrypted(const tsr_tile *t) {
    return t->encrypted;
}

/* Finish an operation: on failure free the partial result. */
static tsr_status finish(tsr_status st, tsr_tile *res, tsr_tile **out) {
    if (st != TSR_OK) {
        tsr_tile_free(res);
        *out = NULL;
        return st;
    }
    *out = res;
    return TSR_OK;
}

tsr_status tsr_tile_copy(const tsr_tile *t, tsr_tile **out) {
    tsr_tile *r;
    TSR_TRY(tl_new(t->be, &t->shape, t->encrypted, &r));
    r->level = t->level;
    r->scale = t->scale;
    tsr_status st = TSR_OK;
    for (int64_t i = 0; i < t->ntiles && st == TSR_OK; i++)
        if (t->v[i]) st = tsr_bvec_copy(t->be, t->v[i], &r->v[i]);
    return finish(st, r, out);
}

/* ---- encrypt / encode / decrypt ----------------------------------------------- */

static tsr_status make_tiles(tsr_backend *be, const tsr_tile_shape *shape, const double *dense,
                             int level, double scale, int encrypted, tsr_tile **out) {
    *out = NULL;
    TSR_TRY(tsr_tile_shape_validate(shape, be->slots));
    if (level < 0) level = be->top_level;
    if (level > be->top_level)
        return tsr_fail(TSR_ERR_LEVEL, "level %d is above the backend's top level %d", level,
                        be->top_level);
    if (scale <= 0) scale = be->scales[level];
    tsr_tile_shape s = *shape;
    tsr_tile *r;
    TSR_TRY(tl_new(be, &s, encrypted, &r));
    r->level = level;
    r->scale = scale;
    tl_layout L;
    tl_layout_init(&L, &s);
    double *buf = NULL;
    int64_t *map = NULL;
    if (dense) {
        buf = tsr_calloc_array((size_t)L.slots, sizeof *buf);
        map = tsr_calloc_array((size_t)L.slots, sizeof *map);
        if (!buf || !map) {
            tsr_free(buf);
            tsr_free(map);
            tsr_tile_free(r);
            return tsr_fail(TSR_ERR_NOMEM, "out of memory packing a tile tensor");
        }
    }
    /* Plaintexts: which tiles hold a nonzero, found from the nonzeros (each lives in one
     * tile), so all-zero tiles of a sparse tensor cost no slot mapping at all. */
    uint8_t *nz = NULL;
    if (dense && !encrypted) {
        nz = tsr_calloc((size_t)r->ntiles);
        if (!nz) {
            tsr_free(buf);
            tsr_free(map);
            tsr_tile_free(r);
            return tsr_fail(TSR_ERR_NOMEM, "out of memory packing a tile tensor");
        }
        int64_t n = 1; /* the dense layout of tl_slot_map */
        for (int i = 0; i < s.ndims; i++) n *= s.dim[i].size;
        for (int64_t e = 0; e < n; e++) {
            if (dense[e] == 0.0) continue;
            int64_t rem = e, t = 0;
            int read = 1;
            for (int i = s.ndims - 1; i >= 0; i--) {
                int64_t j = rem % s.dim[i].size, k, sl;
                rem /= s.dim[i].size;
                if (s.dim[i].dup && j != 0) read = 0; /* `*` reads index 0 only */
                tl_dim_locate(&s.dim[i], L.ext[i], j, &k, &sl);
                t += k * L.tstride[i];
            }
            if (read) nz[t] = 1;
        }
    }
    /* A shape-only mockup (a dry run) stores no values: which tiles are encoded is all
     * that matters, and the slot mapping (the cost of packing) is skipped. */
    int values = !(nz && !be->can_decrypt && strcmp(be->vt->name, "mockup") == 0);
    tsr_status st = TSR_OK;
    for (int64_t t = 0; t < r->ntiles && st == TSR_OK; t++) {
        if (nz && !nz[t]) continue; /* an all-zero plaintext tile: not encoded */
        if (dense && values) {
            int any = 0;
            tl_slot_map(&s, &L, t, map);
            for (int64_t i = 0; i < L.slots; i++) {
                buf[i] = map[i] >= 0 ? dense[map[i]] : 0.0;
                any |= buf[i] != 0.0;
            }
            if (!encrypted && !any) continue; /* an all-zero plaintext tile: not encoded */
        }
        st = encrypted ? tsr_bvec_encrypt(be, buf, level, scale, &r->v[t])
                       : tsr_bvec_encode(be, buf, level, scale, &r->v[t]);
    }
    tsr_free(buf);
    tsr_free(map);
    tsr_free(nz);
    return finish(st, r, out);
}

tsr_status tsr_tile_encrypt(tsr_backend *be, const tsr_tile_shape *shape, const double *dense,
                            int level, double scale, tsr_tile **out) {
    return make_tiles(be, shape, dense, level, scale, 1, out);
}

tsr_status tsr_tile_encode(tsr_backend *be, const tsr_tile_shape *shape, const double *dense,
                           int level, double scale, tsr_tile **out) {
    return make_tiles(be, shape, dense, level, scale, 0, out);
}

tsr_status tsr_tile_decrypt_raw(const tsr_tile *t, double *out) {
    int64_t slots = t->be->slots;
    for (int64_t i = 0; i < t->ntiles; i++) {
        if (!t->v[i])
            memset(out + i * slots, 0, (size_t)slots * sizeof *out);
        else
            TSR_TRY(tsr_bvec_decrypt(t->be, t->v[i], out + i * slots));
    }
    return TSR_OK;
}

tsr_status tsr_tile_decrypt(const tsr_tile *t, double *dense) {
    size_t n;
    if (tsr_mul_size((size_t)t->ntiles, (size_t)t->be->slots, &n))
        return tsr_fail(TSR_ERR_NOMEM, "tile tensor too large to decrypt");
    double *raw = tsr_calloc_array(n, sizeof *raw);
    if (!raw) return tsr_fail(TSR_ERR_NOMEM, "out of memory decrypting a tile tensor");
    tsr_status st = tsr_tile_decrypt_raw(t, raw);
    if (st == TSR_OK) st = tsr_tile_unpack(&t->shape, raw, dense);
    tsr_free(raw);
    return st;
}

/* ---- shared helpers ---------------------------------------------------------- */

int tl_same_scale(double a, double b) {
    return fabs(a / b - 1.0) < 1e-9;
}

tsr_status tl_vec_to(tsr_backend *be, tsr_bvec *v, int level, double scale) {
    if (v->level < level)
        return tsr_fail(TSR_ERR_LEVEL, "cannot raise a vector from level %d to level %d", v->level,
                        level);
    if (tl_same_scale(v->scale, scale) || v->is_plain) return tsr_bvec_drop_level(be, v, level);
    if (v->level == level)
        return tsr_fail(TSR_ERR_SCALE,
                        "operands at level %d have scales 2^%.6f and 2^%.6f; changing a scale "
                        "needs one level (align them one level higher)",
                        level, log2(v->scale), log2(scale));
    double q = be->primes[level + 1];
    TSR_TRY(tsr_bvec_drop_level(be, v, level + 1));
    TSR_TRY(tsr_bvec_mul_const(be, v, 1.0, scale * q / v->scale));
    return tsr_bvec_rescale(be, v);
}

tsr_status tl_encode_for_mul(tsr_backend *be, const double *slots, int level, double ct_scale,
                             tsr_bvec **out) {
    (void)ct_scale;
    if (level < 1) {
        *out = NULL;
        return tsr_fail(TSR_ERR_LEVEL,
                        "product at level 0: no multiplicative depth left (use parameters with "
                        "more levels, or a plan with less depth)");
    }
    return tsr_bvec_encode(be, slots, level, be->scales[level], out);
}

int64_t tl_operand_tile(const tl_layout *res, const tl_layout *opnd, int64_t t) {
    int64_t idx = 0;
    for (int i = 0; i < res->nd; i++) {
        int64_t k = (t / res->tstride[i]) % res->ext[i];
        if (opnd->ext[i] > 1) idx += k * opnd->tstride[i];
    }
    return idx;
}

/*
 * Padding semantics: a padding slot is zero unless one of the dimensions in
 * which it is padding is `?`. The result flags below are sound for that
 * rule. Sums: a slot of a + b is zero when it is zero in both, which is
 * guaranteed where both sides are non-`*` and known. Products: a slot of
 * a * b is zero when it is zero in either; that holds where each non-`*`
 * side is known, and everywhere one side is padded if that side has no
 * unknown padding at all (this is how a zero-padded plaintext clears).
 */
tsr_status tl_broadcast(const tsr_tile_shape *a, const tsr_tile_shape *b, int mul, const char *op,
                        tsr_tile_shape *out) {
    if (a->ndims != b->ndims)
        return tsr_fail(TSR_ERR_SHAPE,
                        "cannot %s %s and %s: they have %d and %d dimensions (add a */t "
                        "dimension to the smaller one)",
                        op, tl_fmt(a), tl_fmt2(b), a->ndims, b->ndims);
    int za = !tl_has_unknown(a), zb = !tl_has_unknown(b);
    *out = *a;
    for (int i = 0; i < a->ndims; i++) {
        const tsr_tile_dim *x = &a->dim[i], *y = &b->dim[i];
        tsr_tile_dim *r = &out->dim[i];
        if (x->tile != y->tile)
            return tsr_fail(TSR_ERR_SHAPE,
                            "cannot %s %s and %s: dimension %d has tile sizes %lld and %lld; "
                            "elementwise operations need equal tile sizes",
                            op, tl_fmt(a), tl_fmt2(b), i, (long long)x->tile, (long long)y->tile);
        if (x->dup && y->dup) {
            *r = *x;
            continue;
        }
        if (!x->dup && !y->dup) {
            if (x->size != y->size)
                return tsr_fail(TSR_ERR_SHAPE,
                                "cannot %s %s and %s: dimension %d has sizes %lld and %lld; "
                                "sizes must be equal, or one side must be */%lld",
                                op, tl_fmt(a), tl_fmt2(b), i, (long long)x->size,
                                (long long)y->size, (long long)x->tile);
            if (!x->interleaved != !y->interleaved)
                return tsr_fail(TSR_ERR_SHAPE,
                                "cannot %s %s and %s: dimension %d is interleaved (~) on one "
                                "side only; pack both the same way",
                                op, tl_fmt(a), tl_fmt2(b), i);
        }
        *r = x->dup ? *y : *x;
        int ka = x->dup || !x->unknown, kb = y->dup || !y->unknown;
        int known;
        if (mul)
            known = (ka && kb) || (zb && !y->dup) || (za && !x->dup);
        else
            known = !x->dup && !y->dup && ka && kb;
        r->unknown = !known;
    }
    tl_normalize(out);
    return TSR_OK;
}

static tsr_status same_backend(const tsr_tile *a, const tsr_tile *b, const char *op) {
    if (a->be != b->be)
        return tsr_fail(TSR_ERR_MISMATCH, "%s: the operands live on different backends", op);
    return TSR_OK;
}

/*
 * Operands brought to one level (the lower one); for sums also to one scale
 * (the lower-level operand's). use_a/use_b point at the original tiles or at
 * aligned copies (own_a/own_b, freed by aligned_free).
 */
typedef struct aligned {
    const tsr_bvec **use_a, **use_b;
    tsr_bvec **own_a, **own_b;
    int64_t na, nb;
} aligned;

static void aligned_free(tsr_backend *be, aligned *al) {
    for (int64_t i = 0; al->own_a && i < al->na; i++) tsr_bvec_free(be, al->own_a[i]);
    for (int64_t i = 0; al->own_b && i < al->nb; i++) tsr_bvec_free(be, al->own_b[i]);
    tsr_free(al->use_a);
    tsr_free(al->use_b);
    tsr_free(al->own_a);
    tsr_free(al->own_b);
    memset(al, 0, sizeof *al);
}

static tsr_status align_side(tsr_backend *be, const tsr_tile *x, int level, double scale,
                             int for_mul, const tsr_bvec **use, tsr_bvec **own) {
    int same = tsr_tile_level(x) == level;
    for (int64_t i = 0; i < x->ntiles; i++) {
        if (same || !x->v[i]) { /* all-zero plaintext tiles stay NULL */
            use[i] = x->v[i];
            continue;
        }
        TSR_TRY(tsr_bvec_copy(be, x->v[i], &own[i]));
        TSR_TRY(for_mul ? tsr_bvec_drop_level(be, own[i], level)
                        : tl_vec_to(be, own[i], level, scale));
        use[i] = own[i];
    }
    return TSR_OK;
}

static tsr_status align_operands(const tsr_tile *a, const tsr_tile *b, int for_mul, aligned *al) {
    tsr_backend *be = a->be;
    memset(al, 0, sizeof *al);
    al->na = a->ntiles;
    al->nb = b->ntiles;
    al->use_a = tsr_calloc_array((size_t)a->ntiles, sizeof *al->use_a);
    al->use_b = tsr_calloc_array((size_t)b->ntiles, sizeof *al->use_b);
    al->own_a = tsr_calloc_array((size_t)a->ntiles, sizeof *al->own_a);
    al->own_b = tsr_calloc_array((size_t)b->ntiles, sizeof *al->own_b);
    if (!al->use_a || !al->use_b || !al->own_a || !al->own_b) {
        aligned_free(be, al);
        return tsr_fail(TSR_ERR_NOMEM, "out of memory aligning operands");
    }
    int la = tsr_tile_level(a), lb = tsr_tile_level(b);
    int level = la < lb ? la : lb;
    /* The scale of the operand that is already at the target level wins. */
    double scale = la <= lb ? tsr_tile_scale(a) : tsr_tile_scale(b);
    tsr_status st = align_side(be, a, level, scale, for_mul, al->use_a, al->own_a);
    if (st == TSR_OK) st = align_side(be, b, level, scale, for_mul, al->use_b, al->own_b);
    if (st != TSR_OK) aligned_free(be, al);
    return st;
}

enum { OP_ADD, OP_SUB, OP_MUL, OP_MUL_LAZY };

static tsr_status binary(const tsr_tile *a, const tsr_tile *b, int op, tsr_tile **out) {
    static const char *names[] = { "add", "subtract", "multiply", "multiply" };
    *out = NULL;
    TSR_TRY(same_backend(a, b, names[op]));
    if (!a->encrypted && b->encrypted && op != OP_SUB) {
        const tsr_tile *t = a;
        a = b;
        b = t;
    }
    if (!a->encrypted)
        return tsr_fail(TSR_ERR_INVALID_ARG,
                        "%s: the first operand must be encrypted (plaintext-only arithmetic is "
                        "done before encoding)",
                        names[op]);
    int mul = op == OP_MUL || op == OP_MUL_LAZY;
    tsr_tile_shape rs;
    TSR_TRY(tl_broadcast(&a->shape, &b->shape, mul, names[op], &rs));
    if (mul && (tsr_tile_level(a) < 1 || tsr_tile_level(b) < 1) && op == OP_MUL)
        return tsr_fail(TSR_ERR_LEVEL,
                        "multiply at level 0: no multiplicative depth left (use parameters with "
                        "more levels, or a plan with less depth)");
    tsr_backend *be = a->be;
    aligned al;
    TSR_TRY(align_operands(a, b, mul, &al));
    tsr_tile *r;
    tsr_status st = tl_new(be, &rs, 1, &r);
    if (st != TSR_OK) {
        aligned_free(be, &al);
        return st;
    }
    tl_layout Lr, La, Lb;
    tl_layout_init(&Lr, &rs);
    tl_layout_init(&La, &a->shape);
    tl_layout_init(&Lb, &b->shape);
    for (int64_t t = 0; t < r->ntiles && st == TSR_OK; t++) {
        int64_t ia = tl_operand_tile(&Lr, &La, t), ib = tl_operand_tile(&Lr, &Lb, t);
        if (mul && !al.use_b[ib]) {
            /* An all-zero plaintext tile: no product, an encryption of zero. */
            st = tl_zero_product(be, al.use_a[ia], tsr_tile_scale(b), op == OP_MUL, &r->v[t]);
            continue;
        }
        if (mul) {
            st = tsr_bvec_mul_new(be, al.use_a[ia], al.use_b[ib], &r->v[t]);
            if (st == TSR_OK && op == OP_MUL) st = tsr_bvec_rescale(be, r->v[t]);
            continue;
        }
        st = tsr_bvec_copy(be, al.use_a[ia], &r->v[t]);
        if (st == TSR_OK && al.use_b[ib])
            st = op == OP_ADD ? tsr_bvec_add(be, r->v[t], al.use_b[ib])
                              : tsr_bvec_sub(be, r->v[t], al.use_b[ib]);
    }
    aligned_free(be, &al);
    return finish(st, r, out);
}

tsr_status tsr_tile_add(const tsr_tile *a, const tsr_tile *b, tsr_tile **out) {
    return binary(a, b, OP_ADD, out);
}

tsr_status tsr_tile_sub(const tsr_tile *a, const tsr_tile *b, tsr_tile **out) {
    return binary(a, b, OP_SUB, out);
}

tsr_status tsr_tile_mul(const tsr_tile *a, const tsr_tile *b, tsr_tile **out) {
    return binary(a, b, OP_MUL, out);
}

tsr_status tsr_tile_mul_lazy(const tsr_tile *a, const tsr_tile *b, tsr_tile **out) {
    return binary(a, b, OP_MUL_LAZY, out);
}

/* Apply f to a copy of every tile. */
typedef tsr_status (*tile_fn)(tsr_backend *be, tsr_bvec *v, const void *arg);

static tsr_status map_tiles(const tsr_tile *a, const tsr_tile_shape *rs, tile_fn f, const void *arg,
                            tsr_tile **out) {
    *out = NULL;
    tsr_tile *r;
    TSR_TRY(tl_new(a->be, rs ? rs : &a->shape, a->encrypted, &r));
    r->level = a->level;
    r->scale = a->scale;
    tsr_status st = TSR_OK;
    for (int64_t t = 0; t < a->ntiles && st == TSR_OK; t++) {
        if (!a->v[t]) continue; /* an all-zero plaintext tile stays zero */
        st = tsr_bvec_copy(a->be, a->v[t], &r->v[t]);
        if (st == TSR_OK) st = f(a->be, r->v[t], arg);
    }
    return finish(st, r, out);
}

static tsr_status fn_rescale(tsr_backend *be, tsr_bvec *v, const void *arg) {
    (void)arg;
    return tsr_bvec_rescale(be, v);
}

tsr_status tsr_tile_rescale(const tsr_tile *a, tsr_tile **out) {
    return map_tiles(a, NULL, fn_rescale, NULL, out);
}

static tsr_status fn_drop(tsr_backend *be, tsr_bvec *v, const void *arg) {
    return tsr_bvec_drop_level(be, v, *(const int *)arg);
}

tsr_status tsr_tile_relevel(const tsr_tile *a, int level, tsr_tile **out) {
    if (level < 0 || level > tsr_tile_level(a)) {
        *out = NULL;
        return tsr_fail(TSR_ERR_LEVEL, "relevel: cannot go from level %d to level %d",
                        tsr_tile_level(a), level);
    }
    TSR_TRY(map_tiles(a, NULL, fn_drop, &level, out));
    (*out)->level = level;
    return TSR_OK;
}

typedef struct level_scale {
    int level;
    double scale;
} level_scale;

static tsr_status fn_to(tsr_backend *be, tsr_bvec *v, const void *arg) {
    const level_scale *ls = arg;
    return tl_vec_to(be, v, ls->level, ls->scale);
}

tsr_status tsr_tile_set_level_scale(const tsr_tile *a, int level, double scale, tsr_tile **out) {
    level_scale ls = { level, scale };
    if (!(scale >= 1.0)) {
        *out = NULL;
        return tsr_fail(TSR_ERR_SCALE, "set_level_scale: scale %g must be >= 1", scale);
    }
    TSR_TRY(map_tiles(a, NULL, fn_to, &ls, out));
    (*out)->level = level;
    (*out)->scale = scale;
    return TSR_OK;
}

typedef struct const_arg {
    double c;
} const_arg;

static int small_integer(double c) {
    return c == nearbyint(c) && fabs(c) <= 1048576.0;
}

static tsr_status fn_mul_scalar(tsr_backend *be, tsr_bvec *v, const void *arg) {
    double c = ((const const_arg *)arg)->c;
    if (small_integer(c)) return tsr_bvec_mul_const(be, v, c, 1.0);
    /* Encoded so that the rescale lands on the next level's canonical scale. */
    double cscale = be->scales[v->level - 1] * be->primes[v->level] / v->scale;
    TSR_TRY(tsr_bvec_mul_const(be, v, c, cscale));
    return tsr_bvec_rescale(be, v);
}

tsr_status tsr_tile_mul_scalar(const tsr_tile *a, double c, tsr_tile **out) {
    *out = NULL;
    if (!a->encrypted)
        return tsr_fail(TSR_ERR_INVALID_ARG, "mul_scalar: the tensor must be encrypted");
    if (!isfinite(c)) return tsr_fail(TSR_ERR_INVALID_ARG, "mul_scalar: %g is not finite", c);
    if (!small_integer(c) && tsr_tile_level(a) < 1)
        return tsr_fail(TSR_ERR_LEVEL,
                        "mul_scalar at level 0: no multiplicative depth left for a non-integer "
                        "scalar");
    const_arg ca = { c };
    return map_tiles(a, NULL, fn_mul_scalar, &ca, out);
}

/* ---- products and sums with cleartext tensors ---------------------------------- */

tsr_status tl_zero_product(tsr_backend *be, const tsr_bvec *a, double pscale, int rescale,
                           tsr_bvec **out) {
    *out = NULL;
    tsr_bvec *z;
    TSR_TRY(tsr_bvec_copy(be, a, &z));
    tsr_status st = tsr_bvec_mul_const(be, z, 0.0, pscale);
    if (st == TSR_OK && rescale) st = tsr_bvec_rescale(be, z);
    if (st != TSR_OK) {
        tsr_bvec_free(be, z);
        return st;
    }
    *out = z;
    return TSR_OK;
}

/*
 * Encode every tile of a cleartext tensor laid out by ps, at a level and
 * scale; scale <= 0 means "for a product": q_level.
 */
static tsr_status encode_plain(tsr_backend *be, const tsr_tile_shape *ps, const double *p,
                               int level, double scale, tsr_tile **out) {
    if (scale <= 0) {
        if (level < 1) {
            *out = NULL;
            return tsr_fail(TSR_ERR_LEVEL,
                            "product at level 0: no multiplicative depth left (use parameters "
                            "with more levels, or a plan with less depth)");
        }
        scale = be->scales[level];
    }
    return tsr_tile_encode(be, ps, p, level, scale, out);
}

tsr_status tsr_tile_mul_plain(const tsr_tile *a, const tsr_tile_shape *pshape, const double *p,
                              tsr_tile **out) {
    *out = NULL;
    TSR_TRY(tsr_tile_shape_validate(pshape, a->be->slots));
    tsr_tile_shape rs;
    TSR_TRY(tl_broadcast(&a->shape, pshape, 1, "multiply", &rs));
    tsr_tile *pt;
    TSR_TRY(encode_plain(a->be, pshape, p, tsr_tile_level(a), 0, &pt));
    tsr_status st = tsr_tile_mul(a, pt, out);
    tsr_tile_free(pt);
    return st;
}

tsr_status tsr_tile_add_plain(const tsr_tile *a, const tsr_tile_shape *pshape, const double *p,
                              tsr_tile **out) {
    *out = NULL;
    TSR_TRY(tsr_tile_shape_validate(pshape, a->be->slots));
    tsr_tile_shape rs;
    TSR_TRY(tl_broadcast(&a->shape, pshape, 0, "add", &rs));
    tsr_tile *pt;
    TSR_TRY(encode_plain(a->be, pshape, p, tsr_tile_level(a), tsr_tile_scale(a), &pt));
    tsr_status st = tsr_tile_add(a, pt, out);
    tsr_tile_free(pt);
    return st;
}

/*
 * Per-tile masks that depend only on how many slots of each dimension are
 * valid in that tile; identical masks are encoded once. value is written at
 * valid slots, 0 elsewhere. for_mul: encoded for a product at the tile's
 * level, else at its level and scale.
 */
typedef struct mask_cache {
    int64_t key[64][TSR_TILE_MAX_DIMS];
    tsr_bvec *v[64];
    int n;
} mask_cache;

static void mask_cache_free(tsr_backend *be, mask_cache *mc) {
    for (int i = 0; i < mc->n; i++) tsr_bvec_free(be, mc->v[i]);
    mc->n = 0;
}

static tsr_status mask_for_tile(const tsr_tile *a, const tl_layout *L, int64_t t, double value,
                                int for_mul, mask_cache *mc, tsr_bvec **owned, tsr_bvec **use) {
    const tsr_tile_shape *s = &a->shape;
    int64_t key[TSR_TILE_MAX_DIMS] = { 0 };
    for (int i = 0; i < s->ndims; i++)
        key[i] = tl_dim_valid(&s->dim[i], L->ext[i], (t / L->tstride[i]) % L->ext[i]);
    *owned = NULL;
    for (int i = 0; i < mc->n; i++) {
        if (memcmp(mc->key[i], key, sizeof key) == 0) {
            *use = mc->v[i];
            return TSR_OK;
        }
    }
    double *buf = tsr_calloc_array((size_t)L->slots, sizeof *buf);
    if (!buf) return tsr_fail(TSR_ERR_NOMEM, "out of memory building a mask");
    int64_t pos[TSR_TILE_MAX_DIMS] = { 0 };
    for (int64_t slot = 0; slot < L->slots; slot++) {
        int ok = 1;
        for (int i = 0; i < s->ndims; i++) ok &= pos[i] < key[i];
        buf[slot] = ok ? value : 0.0;
        for (int i = s->ndims - 1; i >= 0; i--) {
            if (++pos[i] < s->dim[i].tile) break;
            pos[i] = 0;
        }
    }
    const tsr_bvec *v = a->v[t];
    tsr_bvec *m;
    tsr_status st = for_mul ? tl_encode_for_mul(a->be, buf, v->level, v->scale, &m)
                            : tsr_bvec_encode(a->be, buf, v->level, v->scale, &m);
    tsr_free(buf);
    TSR_TRY(st);
    if (mc->n < 64) {
        memcpy(mc->key[mc->n], key, sizeof key);
        mc->v[mc->n++] = m;
    } else {
        *owned = m;
    }
    *use = m;
    return TSR_OK;
}

tsr_status tsr_tile_add_scalar(const tsr_tile *a, double c, tsr_tile **out) {
    *out = NULL;
    if (!a->encrypted)
        return tsr_fail(TSR_ERR_INVALID_ARG, "add_scalar: the tensor must be encrypted");
    if (!isfinite(c)) return tsr_fail(TSR_ERR_INVALID_ARG, "add_scalar: %g is not finite", c);
    int padded = 0;
    for (int i = 0; i < a->shape.ndims; i++) padded |= tl_dim_padded(&a->shape.dim[i]);
    tsr_tile *r;
    TSR_TRY(tsr_tile_copy(a, &r));
    tl_layout L;
    tl_layout_init(&L, &a->shape);
    mask_cache mc = { .n = 0 };
    tsr_status st = TSR_OK;
    for (int64_t t = 0; t < r->ntiles && st == TSR_OK; t++) {
        if (!padded) {
            st = tsr_bvec_add_const(a->be, r->v[t], c);
            continue;
        }
        tsr_bvec *owned, *m;
        st = mask_for_tile(a, &L, t, c, 0, &mc, &owned, &m);
        if (st == TSR_OK) st = tsr_bvec_add(a->be, r->v[t], m);
        tsr_bvec_free(a->be, owned);
    }
    mask_cache_free(a->be, &mc);
    return finish(st, r, out);
}

tsr_status tsr_tile_clear(const tsr_tile *a, tsr_tile **out) {
    *out = NULL;
    if (!tl_has_unknown(&a->shape)) {
        TSR_TRY(tsr_tile_copy(a, out));
        tl_normalize(&(*out)->shape);
        return TSR_OK;
    }
    if (!a->encrypted) return tsr_fail(TSR_ERR_INVALID_ARG, "clear: the tensor must be encrypted");
    if (tsr_tile_level(a) < 1)
        return tsr_fail(TSR_ERR_LEVEL,
                        "clear at level 0: the mask product needs one level (use parameters with "
                        "more levels)");
    tsr_tile *r;
    TSR_TRY(tsr_tile_copy(a, &r));
    for (int i = 0; i < r->shape.ndims; i++) r->shape.dim[i].unknown = 0;
    tl_layout L;
    tl_layout_init(&L, &a->shape);
    mask_cache mc = { .n = 0 };
    tsr_status st = TSR_OK;
    for (int64_t t = 0; t < r->ntiles && st == TSR_OK; t++) {
        tsr_bvec *owned, *m;
        st = mask_for_tile(a, &L, t, 1.0, 1, &mc, &owned, &m);
        if (st == TSR_OK) st = tsr_bvec_mul(a->be, r->v[t], m);
        if (st == TSR_OK) st = tsr_bvec_rescale(a->be, r->v[t]);
        tsr_bvec_free(a->be, owned);
    }
    mask_cache_free(a->be, &mc);
    return finish(st, r, out);
}

/* ---- reshape ------------------------------------------------------------------- */

/* zero[slot] = 1 if the slot is padding that s guarantees to be zero. */
static void zero_map(const tsr_tile_shape *s, const tl_layout *L, int64_t t, uint8_t *zero) {
    int nd = s->ndims;
    int64_t k[TSR_TILE_MAX_DIMS], pos[TSR_TILE_MAX_DIMS] = { 0 };
    for (int i = 0; i < nd; i++) k[i] = (t / L->tstride[i]) % L->ext[i];
    for (int64_t slot = 0; slot < L->slots; slot++) {
        int pad = 0, unknown = 0;
        for (int i = 0; i < nd; i++) {
            if (tl_dim_index(&s->dim[i], L->ext[i], k[i], pos[i]) >= 0) continue;
            pad = 1;
            unknown |= s->dim[i].unknown;
        }
        zero[slot] = pad && !unknown;
        for (int i = nd - 1; i >= 0; i--) {
            if (++pos[i] < s->dim[i].tile) break;
            pos[i] = 0;
        }
    }
}

tsr_status tsr_tile_reshape(const tsr_tile *a, const tsr_tile_shape *to, tsr_tile **out) {
    *out = NULL;
    TSR_TRY(tsr_tile_shape_validate(to, a->be->slots));
    const tsr_tile_shape *from = &a->shape;
    if (tsr_tile_shape_num_elements(from) != tsr_tile_shape_num_elements(to))
        return tsr_fail(TSR_ERR_SHAPE, "cannot reshape %s (%lld elements) to %s (%lld elements)",
                        tl_fmt(from), (long long)tsr_tile_shape_num_elements(from), tl_fmt2(to),
                        (long long)tsr_tile_shape_num_elements(to));
    if (tsr_tile_shape_num_tiles(from) != tsr_tile_shape_num_tiles(to))
        return tsr_fail(TSR_ERR_SHAPE,
                        "cannot reshape %s (%lld tiles) to %s (%lld tiles) without moving data; "
                        "choose tile sizes that keep every element in its slot",
                        tl_fmt(from), (long long)tsr_tile_shape_num_tiles(from), tl_fmt2(to),
                        (long long)tsr_tile_shape_num_tiles(to));
    tl_layout Lf, Lt;
    tl_layout_init(&Lf, from);
    tl_layout_init(&Lt, to);
    int64_t *mf = tsr_calloc_array((size_t)Lf.slots, sizeof *mf);
    int64_t *mt = tsr_calloc_array((size_t)Lf.slots, sizeof *mt);
    uint8_t *zf = tsr_calloc((size_t)Lf.slots), *zt = tsr_calloc((size_t)Lf.slots);
    tsr_status st = TSR_OK;
    if (!mf || !mt || !zf || !zt) st = tsr_fail(TSR_ERR_NOMEM, "out of memory reshaping");
    for (int64_t t = 0; t < Lf.ntiles && st == TSR_OK; t++) {
        tl_slot_map(from, &Lf, t, mf);
        tl_slot_map(to, &Lt, t, mt);
        zero_map(from, &Lf, t, zf);
        zero_map(to, &Lt, t, zt);
        for (int64_t i = 0; i < Lf.slots; i++) {
            if (mt[i] >= 0 && mf[i] != mt[i]) {
                st = tsr_fail(TSR_ERR_SHAPE,
                              "cannot reshape %s to %s without moving data: tile %lld slot %lld "
                              "holds element %lld in one and %lld in the other (-1: padding)",
                              tl_fmt(from), tl_fmt2(to), (long long)t, (long long)i,
                              (long long)mf[i], (long long)mt[i]);
                break;
            }
            if (mt[i] < 0 && zt[i] && !zf[i]) {
                st = tsr_fail(TSR_ERR_SHAPE,
                              "cannot reshape %s to %s: %s declares zero padding where the input "
                              "holds %s (mark that dimension '?' or clear first)",
                              tl_fmt(from), tl_fmt2(to), tl_fmt2(to),
                              mf[i] >= 0 ? "data" : "unknown values");
                break;
            }
        }
    }
    tsr_free(mf);
    tsr_free(mt);
    tsr_free(zf);
    tsr_free(zt);
    TSR_TRY(st);
    TSR_TRY(tsr_tile_copy(a, out));
    (*out)->shape = *to;
    tl_normalize(&(*out)->shape);
    return TSR_OK;
}
