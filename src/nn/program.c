/*
 * nn/program.c - lowering a model onto tile tensors (see program.h) and
 * running the recorded steps.
 *
 * Layout rules of the TILED packing (dimensions [D0, X, Y, D3, B]):
 *  - a value keeps its channels (features) in D0 or D3 (cdim); the other
 *    one is `*` (replicated) or a size-1 leftover of a sum;
 *  - convolution: channels in D3 -> layout I (filters into D0, channels
 *    summed in D3); channels in D0 -> layout II (filters into D3, channels
 *    summed in D0); a one-channel input puts its filters in D0 or D3 as
 *    the configuration says;
 *  - dense: channels in D3 -> outputs into D0 (sum over X, Y, D3);
 *    channels in D0 -> outputs into D3 (sum over D0, X, Y);
 *  - the output dimension must be `*` in the input; when it holds a `1?`
 *    leftover instead, a CLEAR_DUP step (mask: one level, then log2 t
 *    rotations) makes it `*`.
 * Products by zero-padded plaintexts (filters, weights) clear unknown
 * padding for free, so only CLEAR_DUP ever spends a level on layout.
 */
#include "nn/program.h"

#include "core/alloc.h"
#include "core/error.h"
#include "tile/tile_internal.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

static const char *const op_names[NN_OP_COUNT_] = {
    [NN_OP_CONV] = "conv",
    [NN_OP_POOL] = "avgpool",
    [NN_OP_DENSE] = "dense",
    [NN_OP_LINEAR] = "linear",
    [NN_OP_SQUARE] = "square",
    [NN_OP_POLY] = "poly",
    [NN_OP_ADD] = "add",
    [NN_OP_CLEAR_DUP] = "clear+dup",
    [NN_OP_RESHAPE] = "reshape",
    [NN_OP_REORIENT] = "reorient",
    [NN_OP_SQ_LINEAR] = "square+linear",
    [NN_OP_MUL] = "mul",
    [NN_OP_CONTRACT] = "contract",
    [NN_OP_SQMUL] = "sqmul",
};

const char *nn_op_name(nn_op op) {
    return (unsigned)op < NN_OP_COUNT_ ? op_names[op] : "?";
}

void nn_program_free(nn_program *p) {
    if (!p) return;
    tsr_free(p->steps);
    tsr_free(p->values);
    tsr_free(p->rot);
    tsr_free(p);
}

/* ---- configuration and the input layout ----------------------------------------- */

static int is_pow2(int64_t x) {
    return x >= 1 && (x & (x - 1)) == 0;
}

/* A dimension n/t (`*`/t when dup); image dimensions spanning several tiles interleave. */
static tsr_tile_dim mk_dim(int64_t size, int64_t tile, int dup, int image) {
    tsr_tile_dim d;
    memset(&d, 0, sizeof d);
    d.size = dup ? 1 : size;
    d.tile = tile;
    d.dup = (uint8_t)dup;
    d.interleaved = (uint8_t)(image && !dup && tile > 1 && (size + tile - 1) / tile > 1);
    return d;
}

tsr_status nn_config_check(const tsr_nn_model *m, const nn_config *c, nn_value *in) {
    memset(in, 0, sizeof *in);
    nn_shape s = m->shapes[0];
    if (c->batch < 1) return tsr_fail(TSR_ERR_INVALID_ARG, "batch %d must be >= 1", c->batch);
    if (!is_pow2(c->slots) || c->slots < 2)
        return tsr_fail(TSR_ERR_INVALID_ARG, "slots %lld must be a power of two >= 2",
                        (long long)c->slots);
    if (c->packing == TSR_NN_PACK_BATCH) {
        if (c->batch > c->slots)
            return tsr_fail(TSR_ERR_UNSUPPORTED,
                            "batch packing holds one sample per slot: batch %d > %lld slots",
                            c->batch, (long long)c->slots);
        in->shape.ndims = 4;
        in->shape.dim[0] = mk_dim(s.c, 1, 0, 0);
        in->shape.dim[1] = mk_dim(s.h, 1, 0, 0);
        in->shape.dim[2] = mk_dim(s.w, 1, 0, 0);
        in->shape.dim[3] = mk_dim(c->batch, c->slots, 0, 0);
        in->cdim = 0;
        in->vec = s.h == 1 && s.w == 1;
        return tsr_tile_shape_validate(&in->shape, c->slots);
    }
    if (c->packing != TSR_NN_PACK_TILED)
        return tsr_fail(TSR_ERR_INVALID_ARG, "unknown packing %d", (int)c->packing);
    int64_t prod = 1;
    for (int i = 0; i < 5; i++) {
        if (!is_pow2(c->t[i]))
            return tsr_fail(TSR_ERR_INVALID_ARG, "tile size t%d = %lld is not a power of two", i,
                            (long long)c->t[i]);
        prod *= c->t[i];
    }
    if (prod != c->slots)
        return tsr_fail(TSR_ERR_INVALID_ARG, "tile sizes multiply to %lld, not %lld slots",
                        (long long)prod, (long long)c->slots);
    if (c->orient != 0 && c->orient != 3)
        return tsr_fail(TSR_ERR_INVALID_ARG, "orientation %d must be 0 or 3", c->orient);
    const int64_t *t = c->t;
    in->shape.ndims = 5;
    int flat = s.h == 1 && s.w == 1;
    in->vec = flat;
    if (s.c == 1 && !flat) {
        in->shape.dim[0] = mk_dim(1, t[0], 1, 0);
        in->shape.dim[3] = mk_dim(1, t[3], 1, 0);
        in->cdim = -1;
    } else {
        int cd = c->orient;
        in->shape.dim[cd] = mk_dim(s.c, t[cd], 0, 0);
        in->shape.dim[3 - cd] = mk_dim(1, t[3 - cd], 1, 0);
        in->cdim = cd;
    }
    in->shape.dim[1] = mk_dim(s.h, t[1], 0, 1);
    in->shape.dim[2] = mk_dim(s.w, t[2], 0, 1);
    in->shape.dim[4] = mk_dim(c->batch, t[4], 0, 0);
    return tsr_tile_shape_validate(&in->shape, c->slots);
}

/* ---- prepared data ---------------------------------------------------------------- */

struct nn_prep {
    tsr_tile_conv *conv;
    tsr_tile *w;    /* dense weights (plaintext) */
    tsr_tile *bias; /* plaintext bias (dense; conv bias map) */
    int64_t *row_ptr, *cols;
    double *vals, *lbias; /* LINEAR */
    int64_t *cols_b;      /* CONTRACT: the second operand's tile per term (cols: the first's) */
};

void nn_prep_free(nn_prep *pp) {
    if (!pp) return;
    tsr_tile_conv_free(pp->conv);
    tsr_tile_free(pp->w);
    tsr_tile_free(pp->bias);
    tsr_free(pp->row_ptr);
    tsr_free(pp->cols);
    tsr_free(pp->vals);
    tsr_free(pp->lbias);
    tsr_free(pp->cols_b);
    tsr_free(pp);
}

/* Logical sizes of a shape (`*` counts 1) and their row-major strides. */
static int64_t dense_strides(const tsr_tile_shape *s, int64_t *stride) {
    int64_t n = 1;
    for (int d = s->ndims - 1; d >= 0; d--) {
        stride[d] = n;
        n *= s->dim[d].dup ? 1 : s->dim[d].size;
    }
    return n;
}

static int64_t dsize(const tsr_tile_shape *s, int d) {
    return s->dim[d].dup ? 1 : s->dim[d].size;
}

/*
 * Coordinates (c, y, x) of a per-sample tensor held by dense element i of a
 * value laid out as ps with channels in cdim (-1: none) and, for images,
 * rows / columns in dimensions 1 / 2 (when those are not cdim).
 */
static void elem_chw(const tsr_tile_shape *ps, const int64_t *st, int cdim, int skip, int64_t i,
                     int64_t *c, int64_t *y, int64_t *x) {
    *c = *y = *x = 0;
    for (int d = 0; d < ps->ndims; d++) {
        int64_t k = (i / st[d]) % dsize(ps, d);
        if (d == skip) continue;
        if (d == cdim)
            *c = k;
        else if (ps->dim[d].size == 1 || ps->dim[d].dup)
            continue;
        else if (d == 1)
            *y = k;
        else if (d == 2)
            *x = k;
    }
}

/* Plaintext of per-sample values map[(c, y, x)] laid out like value shape vs (batch `*`). */
static tsr_status encode_map(tsr_backend *be, const tsr_tile_shape *vs, int cdim, int batch_dim,
                             nn_shape ms, const double *map, int level, tsr_tile **out) {
    tsr_tile_shape ps = *vs;
    for (int d = 0; d < ps.ndims; d++) ps.dim[d].unknown = 0;
    ps.dim[batch_dim] = mk_dim(1, vs->dim[batch_dim].tile, 1, 0);
    int64_t st[TSR_TILE_MAX_DIMS];
    int64_t n = dense_strides(&ps, st);
    double *dense = tsr_calloc_array((size_t)n, sizeof *dense);
    if (!dense) return tsr_fail(TSR_ERR_NOMEM, "out of memory");
    /* Laid out even for a dry run: all-zero tiles are not encoded, and the counts see it. */
    for (int64_t i = 0; i < n; i++) {
        int64_t c, y, x;
        elem_chw(&ps, st, cdim, -1, i, &c, &y, &x);
        if (c >= ms.c || y >= ms.h || x >= ms.w) {
            tsr_free(dense);
            return tsr_fail(TSR_ERR_INTERNAL, "bias layout %s does not match (%d, %d, %d)",
                            tl_fmt(&ps), ms.c, ms.h, ms.w);
        }
        dense[i] = map[(c * ms.h + y) * ms.w + x];
    }
    tsr_status s = tsr_tile_encode(be, &ps, dense, level, 0, out);
    tsr_free(dense);
    return s;
}

/* CSR matrix of a linear layer over external tiles (BATCH packing). */
static tsr_status linear_matrix(const tsr_nn_model *m, const nn_layer *L, nn_prep *pp) {
    nn_shape is = nn_in_shape(m, L), os = nn_out_shape(m, L);
    int64_t nout = nn_numel(os), nin = nn_numel(is), nnz = 0;
    int64_t per = L->kind == NN_DENSE  ? nin
                  : L->kind == NN_CONV ? (int64_t)is.c * L->kh * L->kw
                                       : (int64_t)L->kh * L->kw;
    pp->row_ptr = tsr_calloc_array((size_t)nout + 1, sizeof *pp->row_ptr);
    pp->cols = tsr_calloc_array((size_t)(nout * per), sizeof *pp->cols);
    pp->vals = tsr_calloc_array((size_t)(nout * per), sizeof *pp->vals);
    pp->lbias = tsr_calloc_array((size_t)nout, sizeof *pp->lbias);
    if (!pp->row_ptr || !pp->cols || !pp->vals || !pp->lbias)
        return tsr_fail(TSR_ERR_NOMEM, "out of memory preparing '%s'", L->name);
    for (int64_t j = 0; j < nout; j++) {
        int64_t f = j / ((int64_t)os.h * os.w), oy = (j / os.w) % os.h, ox = j % os.w;
        if (L->kind == NN_DENSE) {
            for (int64_t i = 0; i < nin; i++) {
                if (L->w[j * nin + i] == 0.0) continue;
                pp->cols[nnz] = i;
                pp->vals[nnz++] = L->w[j * nin + i];
            }
            pp->lbias[j] = L->b_len ? L->b[j] : 0.0;
        } else {
            int64_t c0 = L->kind == NN_CONV ? 0 : f, c1 = L->kind == NN_CONV ? is.c : f + 1;
            for (int64_t c = c0; c < c1; c++)
                for (int ky = 0; ky < L->kh; ky++) {
                    int iy = (int)oy * L->sh + ky - L->ph;
                    if (iy < 0 || iy >= is.h) continue;
                    for (int kx = 0; kx < L->kw; kx++) {
                        int ix = (int)ox * L->sw + kx - L->pw;
                        if (ix < 0 || ix >= is.w) continue;
                        double v;
                        if (L->kind == NN_CONV)
                            v = L->w[((f * is.c + c) * L->kh + ky) * L->kw + kx];
                        else
                            v = 1.0 / nn_pool_taps(L, is, (int)oy, (int)ox);
                        if (v == 0.0) continue;
                        pp->cols[nnz] = (c * is.h + iy) * is.w + ix;
                        pp->vals[nnz++] = v;
                    }
                }
            if (L->kind == NN_CONV && L->b_len) pp->lbias[j] = L->b_len == os.c ? L->b[f] : L->b[j];
        }
        pp->row_ptr[j + 1] = nnz;
    }
    return TSR_OK;
}

/*
 * The layers of a contraction whose sum is layer q (NN_OP_CONTRACT): the mul reading the
 * two expansions, and the expansions. 0 when q is not such a sum.
 */
static int contract_layers(const tsr_nn_model *m, int q, int *mul, int *ea, int *eb) {
    const nn_layer *Q = &m->layers[q];
    if (Q->kind != NN_DENSE || Q->in[1] >= 0) return 0;
    int t = Q->in[0], u = nn_producer(m, t);
    if (u < 0 || m->layers[u].kind != NN_MUL || t == m->output || nn_consumers(m, t) != 1) return 0;
    const nn_layer *U = &m->layers[u];
    if (U->in[0] == U->in[1]) return 0;
    int e[2];
    for (int k = 0; k < 2; k++) {
        int tk = U->in[k];
        e[k] = nn_producer(m, tk);
        if (e[k] < 0 || tk == m->output || nn_consumers(m, tk) != 1) return 0;
        const nn_layer *E = &m->layers[e[k]];
        if (E->kind != NN_DENSE || E->in[1] >= 0) return 0;
        for (int64_t i = 0; i < E->b_len; i++)
            if (E->b[i] != 0.0) return 0;
        /* a selection: at most one nonzero per row */
        int64_t M = nn_numel(m->shapes[E->out]), K = nn_numel(m->shapes[E->in[0]]);
        for (int64_t o = 0; o < M; o++) {
            int nz = 0;
            for (int64_t i = 0; i < K; i++) nz += E->w[o * K + i] != 0.0;
            if (nz > 1) return 0;
        }
    }
    *mul = u;
    *ea = e[0];
    *eb = e[1];
    return 1;
}

/* The terms of a contraction (sum layer L): out[o] = b[o] + sum w * A[ia] * B[ib]. */
static tsr_status contract_matrix(const tsr_nn_model *m, int q, nn_prep *pp) {
    int u, ea, eb;
    if (!contract_layers(m, q, &u, &ea, &eb))
        return tsr_fail(TSR_ERR_INTERNAL, "'%s' is not the sum of a contraction",
                        m->layers[q].name);
    const nn_layer *Q = &m->layers[q], *EA = &m->layers[ea], *EB = &m->layers[eb];
    int64_t nout = nn_numel(m->shapes[Q->out]), P = nn_numel(m->shapes[Q->in[0]]);
    int64_t KA = nn_numel(m->shapes[EA->in[0]]), KB = nn_numel(m->shapes[EB->in[0]]);
    int64_t *ia = tsr_alloc((size_t)P * sizeof *ia), *ib = tsr_alloc((size_t)P * sizeof *ib);
    double *ca = tsr_alloc((size_t)P * sizeof *ca), *cb = tsr_alloc((size_t)P * sizeof *cb);
    int64_t nnz = 0;
    tsr_status st = (ia && ib && ca && cb) ? TSR_OK : tsr_fail(TSR_ERR_NOMEM, "out of memory");
    for (int64_t p = 0; st == TSR_OK && p < P; p++) {
        ia[p] = ib[p] = -1;
        ca[p] = cb[p] = 0;
        for (int64_t i = 0; i < KA; i++)
            if (EA->w[p * KA + i] != 0.0) {
                ia[p] = i;
                ca[p] = EA->w[p * KA + i];
            }
        for (int64_t i = 0; i < KB; i++)
            if (EB->w[p * KB + i] != 0.0) {
                ib[p] = i;
                cb[p] = EB->w[p * KB + i];
            }
    }
    for (int64_t o = 0; st == TSR_OK && o < nout; o++)
        for (int64_t p = 0; p < P; p++) nnz += Q->w[o * P + p] != 0.0 && ia[p] >= 0 && ib[p] >= 0;
    if (st == TSR_OK) {
        pp->row_ptr = tsr_calloc_array((size_t)nout + 1, sizeof *pp->row_ptr);
        pp->cols = tsr_calloc_array((size_t)(nnz ? nnz : 1), sizeof *pp->cols);
        pp->cols_b = tsr_calloc_array((size_t)(nnz ? nnz : 1), sizeof *pp->cols_b);
        pp->vals = tsr_calloc_array((size_t)(nnz ? nnz : 1), sizeof *pp->vals);
        pp->lbias = tsr_calloc_array((size_t)nout, sizeof *pp->lbias);
        if (!pp->row_ptr || !pp->cols || !pp->cols_b || !pp->vals || !pp->lbias)
            st = tsr_fail(TSR_ERR_NOMEM, "out of memory preparing '%s'", Q->name);
    }
    nnz = 0;
    for (int64_t o = 0; st == TSR_OK && o < nout; o++) {
        for (int64_t p = 0; p < P; p++) {
            double w = Q->w[o * P + p];
            if (w == 0.0 || ia[p] < 0 || ib[p] < 0) continue;
            pp->cols[nnz] = ia[p];
            pp->cols_b[nnz] = ib[p];
            pp->vals[nnz++] = w * ca[p] * cb[p];
        }
        pp->row_ptr[o + 1] = nnz;
        pp->lbias[o] = Q->b_len ? Q->b[o] : 0.0;
    }
    tsr_free(ia);
    tsr_free(ib);
    tsr_free(ca);
    tsr_free(cb);
    return st;
}

/* Dense-layer weights laid out for the activation shape with outputs on s->odim. */
/* L NULL: the identity over a flat vector whose features are in s->cdim (a layout move). */
static tsr_status dense_weights(tsr_backend *be, const tsr_nn_model *m, const nn_layer *L,
                                const nn_step *s, tsr_tile **out) {
    const tsr_tile_shape *as = &s->in_shape;
    nn_shape is = L ? nn_in_shape(m, L) : (nn_shape){ (int)dsize(as, s->cdim), 1, 1 };
    int64_t M = L ? nn_out_shape(m, L).c : is.c, nin = nn_numel(is);
    tsr_tile_shape ws = *as;
    int bd = as->ndims - 1;
    for (int d = 0; d < bd; d++) {
        tsr_tile_dim *x = &ws.dim[d];
        x->unknown = 0;
        if (d == s->odim)
            *x = mk_dim(M, as->dim[d].tile, 0, 0);
        else if (x->dup || x->size == 1)
            *x = mk_dim(1, as->dim[d].tile, 0, 0);
    }
    ws.dim[bd] = mk_dim(1, as->dim[bd].tile, 1, 0);
    int64_t st[TSR_TILE_MAX_DIMS];
    int64_t n = dense_strides(&ws, st);
    double *dense = tsr_calloc_array((size_t)n, sizeof *dense);
    if (!dense) return tsr_fail(TSR_ERR_NOMEM, "out of memory");
    int64_t C = s->cdim >= 0 ? dsize(&ws, s->cdim) : 1;
    int64_t Y = (s->cdim == 1 || s->odim == 1) ? 1 : dsize(&ws, 1);
    int64_t X = (s->cdim == 2 || s->odim == 2) ? 1 : dsize(&ws, 2);
    if (C != is.c || Y != is.h || X != is.w) {
        tsr_free(dense);
        return tsr_fail(TSR_ERR_INTERNAL, "dense '%s': layout %s does not hold (%d, %d, %d)",
                        L ? L->name : "(layout move)", tl_fmt(as), is.c, is.h, is.w);
    }
    /* Laid out even for a dry run: all-zero tiles are not encoded, and the counts see it.
     * Every element of the layout is one weight (C Y X = nin): the nonzeros are scattered
     * to their places (the expansions of attention are 8192 x 512 with one per row). */
    if (!L) {
        if (n != M * nin || s->cdim < 0) {
            tsr_free(dense);
            return tsr_fail(TSR_ERR_INTERNAL, "layout move of %s", tl_fmt(as));
        }
        for (int64_t o = 0; o < M; o++) dense[o * st[s->odim] + o * st[s->cdim]] = 1.0;
    } else if (n == M * nin) {
        int64_t sc = s->cdim >= 0 ? st[s->cdim] : 0, sy = Y > 1 ? st[1] : 0, sx = X > 1 ? st[2] : 0;
        for (int64_t o = 0; o < M; o++)
            for (int64_t j = 0; j < nin; j++) {
                double v = L->w[o * nin + j];
                if (v == 0.0) continue;
                int64_t c = j / (Y * X), y = (j / X) % Y, x = j % X;
                dense[o * st[s->odim] + c * sc + y * sy + x * sx] = v;
            }
    } else {
        for (int64_t i = 0; i < n; i++) {
            int64_t c, y, x;
            elem_chw(&ws, st, s->cdim, s->odim, i, &c, &y, &x);
            int64_t o = (i / st[s->odim]) % M;
            dense[i] = L->w[o * nin + (c * Y + y) * X + x];
        }
    }
    tsr_status r = tsr_tile_encode(be, &ws, dense, s->level_in, 0, out);
    tsr_free(dense);
    return r;
}

tsr_status nn_prepare_step(const tsr_nn_model *m, const nn_program *p, const nn_step *s,
                           tsr_backend *be, nn_prep **out) {
    *out = NULL;
    nn_prep *pp = tsr_calloc(sizeof *pp);
    if (!pp) return tsr_fail(TSR_ERR_NOMEM, "out of memory");
    const nn_layer *L = s->layer >= 0 ? &m->layers[s->layer] : NULL;
    tsr_status st = TSR_OK;
    switch (s->op) {
    case NN_OP_CONV:
    case NN_OP_POOL: {
        tsr_tile_conv_params cp = { .x_dim = 1,
                                    .y_dim = 2,
                                    .c_dim = s->cdim,
                                    .f_dim = s->fdim,
                                    .stride_x = L->sh,
                                    .stride_y = L->sw,
                                    .pad_x = L->ph,
                                    .pad_y = L->pw,
                                    .depthwise = s->op == NN_OP_POOL };
        nn_shape is = nn_in_shape(m, L), os = nn_out_shape(m, L);
        double *filt = NULL;
        const double *w = L->w, *b = NULL;
        int F = os.c;
        if (s->op == NN_OP_POOL) {
            if (!L->count_pad && (L->ph || L->pw)) {
                st = tsr_fail(TSR_ERR_UNSUPPORTED,
                              "average pooling '%s' with padding that is not counted has a "
                              "position-dependent divisor; only a following dense layer can "
                              "absorb it",
                              L->name);
                break;
            }
            filt = tsr_alloc((size_t)is.c * L->kh * L->kw * sizeof *filt);
            if (!filt) {
                st = tsr_fail(TSR_ERR_NOMEM, "out of memory");
                break;
            }
            for (int64_t i = 0; i < (int64_t)is.c * L->kh * L->kw; i++)
                filt[i] = 1.0 / (L->kh * L->kw);
            w = filt;
            F = is.c;
            if (s->cdim < 0 && F != 1) {
                st = tsr_fail(TSR_ERR_INTERNAL, "pool without channel dimension");
                break;
            }
        } else if (L->b_len == os.c) {
            b = L->b;
        }
        st = tsr_tile_conv_create(be, &s->in_shape, &cp, w, F, L->kh, L->kw, b, s->level_in, 0,
                                  &pp->conv);
        tsr_free(filt);
        if (st == TSR_OK && s->op == NN_OP_CONV && L->b_len && L->b_len != os.c)
            st = encode_map(be, tsr_tile_conv_output_shape(pp->conv), s->fdim, 4, os, L->b,
                            s->level_out, &pp->bias);
        break;
    }
    case NN_OP_DENSE: {
        st = dense_weights(be, m, L, s, &pp->w);
        if (st == TSR_OK && L && L->b_len) {
            nn_shape os = nn_out_shape(m, L);
            st = encode_map(be, &s->out_shape, s->odim, 4, os, L->b, s->level_out, &pp->bias);
        }
        break;
    }
    case NN_OP_LINEAR:
    case NN_OP_SQ_LINEAR:
        st = linear_matrix(m, L, pp);
        break;
    case NN_OP_CONTRACT:
        st = contract_matrix(m, s->layer, pp);
        break;
    case NN_OP_REORIENT: {
        /* An identity 1x1 convolution moves the channels to the other dimension. */
        tsr_tile_conv_params cp = {
            .x_dim = 1, .y_dim = 2, .c_dim = s->cdim, .f_dim = s->fdim, .stride_x = 1, .stride_y = 1
        };
        int C = (int)s->in_shape.dim[s->cdim].size;
        double *id = tsr_calloc_array((size_t)C * (size_t)C, sizeof *id);
        if (!id) {
            st = tsr_fail(TSR_ERR_NOMEM, "out of memory");
            break;
        }
        for (int c = 0; c < C; c++) id[(size_t)c * C + c] = 1.0;
        st = tsr_tile_conv_create(be, &s->in_shape, &cp, id, C, 1, 1, NULL, s->level_in, 0,
                                  &pp->conv);
        tsr_free(id);
        break;
    }
    default:
        break;
    }
    if (st != TSR_OK) {
        nn_prep_free(pp);
        return st;
    }
    *out = pp;
    return TSR_OK;
}

/*
 * A copy of hi brought to lo's level *and scale* by a constant product (no depth:
 * tl_vec_to), so a product of the two keeps the canonical scale that the plaintexts of the
 * layers after it are encoded at (a bare level drop, as tsr_tile_mul does, would leave
 * D_a D_b / q). Shared by par_mul and contract.
 */
static tsr_status align_down(const tsr_tile *hi, const tsr_tile *lo, tsr_tile **out) {
    *out = NULL;
    tsr_tile *a;
    TSR_TRY(tl_new(hi->be, &hi->shape, 1, &a));
    tsr_status st = TSR_OK;
    for (int64_t t = 0; t < hi->ntiles && st == TSR_OK; t++) {
        if (!hi->v[t]) continue;
        st = tsr_bvec_copy(hi->be, hi->v[t], &a->v[t]);
        if (st == TSR_OK) st = tl_vec_to(hi->be, a->v[t], tsr_tile_level(lo), tsr_tile_scale(lo));
    }
    if (st != TSR_OK) {
        tsr_tile_free(a);
        return st;
    }
    *out = a;
    return TSR_OK;
}

/*
 * x * y (y = x: the square), tile by tile on OpenMP threads: with one sample
 * per slot a value is hundreds of ciphertexts, and threads over ciphertexts
 * beat threads over the limbs of one (the evaluators are pooled per backend,
 * so this is safe). Two different values go through tsr_tile_mul unless
 * they have one shape and one level (it aligns levels and broadcasts).
 */
static tsr_status par_mul(const tsr_tile *x, const tsr_tile *y, tsr_tile **out) {
    *out = NULL;
    if (x != y && x->encrypted && y->encrypted && tsr_tile_level(x) != tsr_tile_level(y)) {
        const tsr_tile *hi = tsr_tile_level(x) > tsr_tile_level(y) ? x : y;
        const tsr_tile *lo = hi == x ? y : x;
        tsr_tile *a;
        TSR_TRY(align_down(hi, lo, &a));
        tsr_status st = par_mul(lo, a, out);
        tsr_tile_free(a);
        return st;
    }
    if (x->ntiles < 4 || (x != y && (!tsr_tile_shape_equal(&x->shape, &y->shape) ||
                                     tsr_tile_level(x) != tsr_tile_level(y) || !y->encrypted)))
        return tsr_tile_mul(x, y, out);
    tsr_backend *be = x->be;
    tsr_tile *r;
    TSR_TRY(tl_new(be, &x->shape, 1, &r));
    int stop = 0;
    char msg[512] = "";
    tsr_status first = TSR_OK;
#ifdef _OPENMP
#pragma omp parallel for schedule(dynamic, 1)
#endif
    for (int64_t t = 0; t < x->ntiles; t++) {
        if (__atomic_load_n(&stop, __ATOMIC_RELAXED)) continue;
        tsr_status st = tsr_bvec_mul_new(be, x->v[t], y->v[t], &r->v[t]);
        if (st == TSR_OK) st = tsr_bvec_rescale(be, r->v[t]);
        if (st != TSR_OK) {
#ifdef _OPENMP
#pragma omp critical(nn_par_mul)
#endif
            if (!stop) {
                first = st;
                snprintf(msg, sizeof msg, "%s", tsr_last_error());
                __atomic_store_n(&stop, 1, __ATOMIC_RELAXED);
            }
        }
    }
    if (stop) {
        tsr_tile_free(r);
        return tsr_fail(first, "%s", msg);
    }
    *out = r;
    return TSR_OK;
}

/*
 * The channel of element i of a per-channel plaintext laid out like value v of p (shape ps,
 * strides stv, as dense_strides gives them) for a layer of C input channels: the channel
 * dimension's index (dimension 0 in batch packing), 0 without a channel dimension and past C
 * (the padding, where any channel's constant will do).
 */
static int64_t plain_channel(const nn_program *p, int v, const tsr_tile_shape *ps,
                             const int64_t *stv, int64_t C, int64_t i) {
    int cd = p->cfg.packing == TSR_NN_PACK_BATCH ? 0 : p->values[v].cdim;
    int64_t c = cd >= 0 ? (i / stv[cd]) % dsize(ps, cd) : 0;
    return c < C ? c : 0;
}

/* The highest power of per-channel polynomial layer L with a non-zero coefficient in any
 * channel (0: a constant). */
static int poly_top_power(const nn_layer *L) {
    int top = 0;
    for (int k = 1; k <= L->degree; k++)
        for (int c = 0; c < L->nc; c++)
            if (L->w[(int64_t)c * (L->degree + 1) + k] != 0.0) top = k;
    return top;
}

static int ceil_log2(int64_t n) {
    int k = 0;
    while (((int64_t)1 << k) < n) k++;
    return k;
}

/*
 * A per-channel polynomial being evaluated on x: its coefficients as cleartext tensors laid
 * out by ps (x's shape with one batch element, broadcast over the batch), and the powers
 * x^(2^j) computed so far.
 */
typedef struct pc_ctx {
    const tsr_tile *x;
    tsr_tile_shape ps;
    double *coef[NN_MAX_DEGREE + 1]; /* coef[k]: (elements of ps) the channels' k-th ones */
    int zero[NN_MAX_DEGREE + 1];     /* coef[k] is 0 in every channel */
    tsr_tile *pow[6];                /* pow[j] = x^(2^j) for 1 <= j < npow (owned) */
    int npow;
} pc_ctx;

/* *out = (*v) + w, consuming *v (freed, NULL afterwards, also on failure). */
static tsr_status pc_add(tsr_tile **v, const tsr_tile *w, tsr_tile **out) {
    tsr_status st = tsr_tile_add(*v, w, out);
    tsr_tile_free(*v);
    *v = NULL;
    return st;
}

/* *out = (*v) + coefficient k (encoded at *v's level and scale), consuming *v. */
static tsr_status pc_add_coef(pc_ctx *c, tsr_tile **v, int k, tsr_tile **out) {
    tsr_status st = tsr_tile_add_plain(*v, &c->ps, c->coef[k], out);
    tsr_tile_free(*v);
    *v = NULL;
    return st;
}

/* x^(2^j) by repeated squaring (one level each, the scales as the products leave them). */
static tsr_status pc_power(pc_ctx *c, int j, const tsr_tile **out) {
    while (c->npow <= j) {
        const tsr_tile *prev = c->npow == 1 ? c->x : c->pow[c->npow - 1];
        TSR_TRY(tsr_tile_mul(prev, prev, &c->pow[c->npow]));
        c->npow++;
    }
    *out = j == 0 ? c->x : c->pow[j];
    return TSR_OK;
}

/*
 * *out = v * coefficient k exactly at (level, scale): v brought to level + 1 by a bare drop,
 * the coefficients encoded at the scale that makes the product's rescale land on `scale`
 * (times_const_to in tile/poly.c, with a plaintext for the constant). One level.
 */
static tsr_status pc_times_coef(pc_ctx *c, const tsr_tile *v, int k, int level, double scale,
                                tsr_tile **out) {
    *out = NULL;
    tsr_backend *be = v->be;
    tsr_tile *d, *pt;
    TSR_TRY(tsr_tile_relevel(v, level + 1, &d));
    double cscale = scale * be->primes[level + 1] / tsr_tile_scale(d);
    tsr_status st = tsr_tile_encode(be, &c->ps, c->coef[k], level + 1, cscale, &pt);
    if (st == TSR_OK) st = tsr_tile_mul(d, pt, out);
    tsr_tile_free(pt);
    tsr_tile_free(d);
    return st;
}

/*
 * sum_{i <= deg} coef[lo + i] x^i exactly at (level, scale), split as tile/poly.c's eval does:
 * p = q(x) x^(2^k) + r(x), 2^k the largest power of two <= deg, q evaluated one level higher
 * at the scale that makes the product land on `scale`; the coefficients enter as plaintext
 * products with x (degree-1 pieces) or with a power (a constant q), so the depth is
 * ceil(log2(deg + 1)), a per-tensor polynomial's. *out NULL: the polynomial is the constant
 * coef[lo] (the caller adds it).
 */
static tsr_status pc_eval(pc_ctx *c, int lo, int deg, int level, double scale, tsr_tile **out) {
    *out = NULL;
    while (deg > 0 && c->zero[lo + deg]) deg--;
    if (deg == 0) return TSR_OK;
    tsr_tile *v = NULL, *r = NULL;
    tsr_status st;
    if (deg == 1) {
        st = pc_times_coef(c, c->x, lo + 1, level, scale, &v);
    } else {
        int k = ceil_log2((int64_t)deg + 1) - 1, half = 1 << k;
        const tsr_tile *X;
        TSR_TRY(pc_power(c, k, &X));
        tsr_tile *q = NULL, *d = NULL;
        st = pc_eval(c, lo + half, deg - half, level + 1,
                     scale * X->be->primes[level + 1] / tsr_tile_scale(X), &q);
        if (st == TSR_OK && q) {
            st = tsr_tile_relevel(X, level + 1, &d);
            if (st == TSR_OK) st = tsr_tile_mul(d, q, &v);
        } else if (st == TSR_OK) {
            st = pc_times_coef(c, X, lo + half, level, scale, &v);
        }
        tsr_tile_free(d);
        tsr_tile_free(q);
        if (st == TSR_OK) st = pc_eval(c, lo, half - 1, level, scale, &r);
    }
    tsr_tile *sum = NULL;
    if (st == TSR_OK && r)
        st = pc_add(&v, r, &sum);
    else if (st == TSR_OK && !c->zero[lo])
        st = pc_add_coef(c, &v, lo, &sum);
    tsr_tile_free(r);
    if (st != TSR_OK) {
        tsr_tile_free(v);
        return st;
    }
    *out = sum ? sum : v;
    return TSR_OK;
}

/*
 * The powers-then-coefficients lowering for polynomials up to the square (highest power
 * top <= 2, where it has the optimal depth too): x^2 = x x, each power times its
 * coefficients as a plaintext (one level), summed at the lowest level. Kept as it was so
 * that the programs of degrees 1 and 2 compute bit for bit what they did.
 */
static tsr_status pc_direct(pc_ctx *c, int top, tsr_tile **out) {
    *out = NULL;
    tsr_tile *pw[3] = { 0 }, *acc = NULL;
    tsr_status st = TSR_OK;
    if (top >= 1) st = tsr_tile_copy(c->x, &pw[1]);
    if (st == TSR_OK && top == 2) st = tsr_tile_mul(pw[1], pw[1], &pw[2]);
    for (int k = 1; k <= top && st == TSR_OK; k++) {
        if (c->zero[k]) continue;
        tsr_tile *t, *sum = NULL;
        st = tsr_tile_mul_plain(pw[k], &c->ps, c->coef[k], &t);
        if (st != TSR_OK) break;
        if (acc) {
            st = pc_add(&acc, t, &sum);
            tsr_tile_free(t);
            acc = sum;
        } else {
            acc = t;
        }
    }
    for (int k = 1; k <= 2; k++) tsr_tile_free(pw[k]);
    if (st != TSR_OK) {
        tsr_tile_free(acc);
        return st;
    }
    *out = acc;
    return TSR_OK;
}

/*
 * Per-channel polynomial (coefficients differ per channel: L->w is (nc, degree + 1)), at the
 * depth of a per-tensor one, ceil(log2(top + 1)) for the highest power `top` in use
 * (nn_poly_depth counts it): pc_eval's power-of-two split with the coefficients as
 * plaintexts, every term landing exactly on the output level's canonical scale. Up to the
 * square, pc_direct (the same depth).
 */
static tsr_status poly_channels(const tsr_nn_model *m, const nn_layer *L, const nn_program *p,
                                const nn_step *s, const tsr_tile *x, tsr_tile **out) {
    *out = NULL;
    int D = L->degree, top = poly_top_power(L);
    int depth = top ? ceil_log2((int64_t)top + 1) : 0, level = tsr_tile_level(x) - depth;
    if (level < 0)
        return tsr_fail(TSR_ERR_LEVEL,
                        "poly: a per-channel polynomial of degree %d needs depth %d but the "
                        "tensor is at level %d (use parameters with more levels)",
                        top, depth, tsr_tile_level(x));
    pc_ctx c = { .x = x, .ps = x->shape, .npow = 1 };
    for (int d = 0; d < c.ps.ndims; d++) c.ps.dim[d].unknown = 0;
    int bd = c.ps.ndims - 1;
    c.ps.dim[bd] = mk_dim(1, c.ps.dim[bd].tile, 1, 0);
    int64_t stv[TSR_TILE_MAX_DIMS];
    int64_t n = dense_strides(&c.ps, stv);
    double *dense = tsr_calloc_array((size_t)n * (size_t)(top + 1), sizeof *dense);
    if (!dense) return tsr_fail(TSR_ERR_NOMEM, "out of memory");
    nn_shape is = nn_in_shape(m, L);
    for (int k = 0; k <= top; k++) {
        c.coef[k] = dense + (size_t)k * (size_t)n;
        c.zero[k] = 1;
        for (int64_t i = 0; i < n; i++) {
            c.coef[k][i] = L->w[plain_channel(p, s->in[0], &c.ps, stv, is.c, i) * (D + 1) + k];
            c.zero[k] &= c.coef[k][i] == 0.0;
        }
    }
    tsr_tile *acc = NULL, *r = NULL;
    tsr_status st;
    if (top >= 3) {
        st = pc_eval(&c, 0, top, level, x->be->scales[level], &acc);
    } else {
        st = pc_direct(&c, top, &acc);
        if (st == TSR_OK && !acc) st = tsr_tile_mul_scalar(x, 0.0, &acc);
        if (st == TSR_OK) st = pc_add_coef(&c, &acc, 0, &r);
        acc = r;
    }
    for (int j = 1; j < c.npow; j++) tsr_tile_free(c.pow[j]);
    tsr_free(dense);
    if (st != TSR_OK) {
        tsr_tile_free(acc);
        return st;
    }
    *out = acc;
    return TSR_OK;
}

int nn_poly_depth(const nn_layer *L) {
    TSR_ASSERT(L->kind == NN_POLY);
    if (L->nc == 1) return tsr_tile_poly_depth(L->w, L->degree);
    int top = poly_top_power(L);
    return top ? ceil_log2((int64_t)top + 1) : 0;
}

int nn_model_depth(const tsr_nn_model *m) {
    int *d = tsr_calloc_array((size_t)m->n_tensors, sizeof *d);
    if (!d) return -1;
    for (int i = 0; i < m->n_layers; i++) {
        const nn_layer *L = &m->layers[i];
        int in = d[L->in[0]], cost = 0;
        if (nn_kind_binary(L->kind) && d[L->in[1]] > in) in = d[L->in[1]];
        switch (L->kind) {
        case NN_CONV:
        case NN_DENSE:
        case NN_AVGPOOL:
        case NN_SQUARE:
        case NN_SQMUL:
        case NN_MUL:
            cost = 1;
            break;
        case NN_POLY:
            cost = nn_poly_depth(L);
            break;
        default:
            cost = 0;
        }
        d[L->out] = in + cost;
    }
    int r = d[m->output];
    tsr_free(d);
    return r;
}

/*
 * x + d for NN_SQMUL layer S (x: value `value` of p): d[c] (one per channel, or one) added to
 * every element of channel c, laid out as x (the batch too, so the sum has x's shape). x + d
 * is d in x's zero padding; the product x (x + d) is ~0 there again (x's error times
 * |d|, bounded by SQMUL_MAX_PRODUCT in simplify.c). No level; one plaintext encoded per tile.
 */
static tsr_status sqmul_offset(const tsr_nn_model *m, const nn_layer *S, const nn_program *p,
                               int value, const tsr_tile *x, tsr_tile **out) {
    tsr_tile_shape ps = x->shape;
    for (int d = 0; d < ps.ndims; d++) ps.dim[d].unknown = 0;
    int64_t stv[TSR_TILE_MAX_DIMS];
    int64_t n = dense_strides(&ps, stv), C = nn_in_shape(m, S).c;
    double *dense = tsr_alloc((size_t)n * sizeof *dense);
    if (!dense) return tsr_fail(TSR_ERR_NOMEM, "out of memory");
    for (int64_t i = 0; i < n; i++)
        dense[i] = S->w[S->nc > 1 ? plain_channel(p, value, &ps, stv, C, i) : 0];
    tsr_status st = tsr_tile_add_plain(x, &ps, dense, out);
    tsr_free(dense);
    return st;
}

/*
 * A contraction: the operands brought to one level (the higher one to the lower one's level
 * and scale by a constant product, no depth, align_down), then tsr_tile_prod_lincomb.
 * At one level their scales may differ (the products are at s_x s_y / q, as par_mul's).
 */
static tsr_status contract(const tsr_tile *x, const tsr_tile *y, const nn_step *s,
                           const nn_prep *pp, tsr_tile **out) {
    *out = NULL;
    int lx = tsr_tile_level(x), ly = tsr_tile_level(y);
    if (lx != ly) {
        const tsr_tile *hi = lx > ly ? x : y;
        tsr_tile *a;
        TSR_TRY(align_down(hi, hi == x ? y : x, &a));
        tsr_status st =
            tsr_tile_prod_lincomb(hi == x ? a : x, hi == x ? y : a, &s->out_shape, pp->row_ptr,
                                  pp->cols, pp->cols_b, pp->vals, pp->lbias, out);
        tsr_tile_free(a);
        return st;
    }
    return tsr_tile_prod_lincomb(x, y, &s->out_shape, pp->row_ptr, pp->cols, pp->cols_b, pp->vals,
                                 pp->lbias, out);
}

tsr_status nn_apply_step(const tsr_nn_model *m, const nn_program *p, const nn_step *s,
                         const nn_prep *pp, tsr_tile **vals) {
    const nn_layer *L = s->layer >= 0 ? &m->layers[s->layer] : NULL;
    const tsr_tile *x = vals[s->in[0]];
    if (!x) return tsr_fail(TSR_ERR_INTERNAL, "step reads value %d, which is gone", s->in[0]);
    tsr_tile *r = NULL, *t = NULL;
    tsr_status st = TSR_OK;
    switch (s->op) {
    case NN_OP_CONV:
    case NN_OP_POOL:
    case NN_OP_REORIENT:
        st = tsr_tile_conv_apply(pp->conv, x, &r);
        if (st == TSR_OK && pp->bias) {
            st = tsr_tile_add(r, pp->bias, &t);
            tsr_tile_free(r);
            r = st == TSR_OK ? t : NULL;
        }
        break;
    case NN_OP_DENSE:
        if (s->nsum > 0)
            st = tsr_tile_mul_sum_dims(x, pp->w, s->sum, s->nsum, &r);
        else
            st = tsr_tile_mul(x, pp->w, &r);
        if (st == TSR_OK && pp->bias) {
            st = tsr_tile_add(r, pp->bias, &t);
            tsr_tile_free(r);
            r = st == TSR_OK ? t : NULL;
        }
        break;
    case NN_OP_LINEAR:
        st = tsr_tile_lincomb(x, &s->out_shape, pp->row_ptr, pp->cols, pp->vals, pp->lbias, &r);
        break;
    case NN_OP_SQ_LINEAR:
        st = tsr_tile_sq_lincomb(x, &s->out_shape, pp->row_ptr, pp->cols, pp->vals, pp->lbias, &r);
        break;
    case NN_OP_SQUARE:
        st = par_mul(x, x, &r);
        break;
    case NN_OP_SQMUL:
        st = sqmul_offset(m, L, p, s->in[0], x, &t);
        if (st == TSR_OK) st = par_mul(x, t, &r);
        tsr_tile_free(t);
        break;
    case NN_OP_MUL:
        if (!vals[s->in[1]])
            return tsr_fail(TSR_ERR_INTERNAL, "step reads value %d, which is gone", s->in[1]);
        st = par_mul(x, vals[s->in[1]], &r);
        break;
    case NN_OP_CONTRACT: {
        const tsr_tile *y = vals[s->in[1]];
        if (!y) return tsr_fail(TSR_ERR_INTERNAL, "step reads value %d, which is gone", s->in[1]);
        st = contract(x, y, s, pp, &r);
        break;
    }
    case NN_OP_POLY:
        if (L->nc == 1)
            st = tsr_tile_poly(x, L->w, L->degree, &r);
        else
            st = poly_channels(m, L, p, s, x, &r);
        break;
    case NN_OP_ADD:
        if (!vals[s->in[1]])
            return tsr_fail(TSR_ERR_INTERNAL, "step reads value %d, which is gone", s->in[1]);
        st = tsr_tile_add(x, vals[s->in[1]], &r);
        break;
    case NN_OP_CLEAR_DUP:
        st = tsr_tile_clear(x, &t);
        if (st == TSR_OK) st = tsr_tile_duplicate(t, s->odim, &r);
        tsr_tile_free(t);
        break;
    case NN_OP_RESHAPE:
        st = tsr_tile_reshape(x, &s->out_shape, &r);
        break;
    default:
        st = tsr_fail(TSR_ERR_INTERNAL, "unknown step %d", (int)s->op);
    }
    if (st != TSR_OK) {
        if (L) return tsr_fail_context(st, "%s '%s': ", nn_op_name(s->op), L->name);
        return tsr_fail_context(st, "%s: ", nn_op_name(s->op));
    }
    tsr_tile_free(vals[s->out]);
    vals[s->out] = r;
    return TSR_OK;
}

/* ---- building ------------------------------------------------------------------- */

/* What lowering does with a layer (BATCH packing); b.role is zeroed: ROLE_OWN. */
typedef enum {
    ROLE_OWN = 0,  /* its own step */
    ROLE_FUSED,    /* an expansion or the mul of a contraction: no step, done by the sum */
    ROLE_CONTRACT, /* the sum of a contraction: one NN_OP_CONTRACT step */
} layer_role;

typedef struct builder {
    const tsr_nn_model *m;
    nn_program *p;
    tsr_backend *be;
    tsr_tile **vals; /* live tile tensors per value (cap_values) */
    int *last_use;   /* per value: last step reading it (filled in a pre-pass on layers) */
    int *tval;       /* model tensor -> value id */
    uint8_t *sq;     /* model tensor -> 1: the square of its value (fused into the reader) */
    uint8_t *role;   /* per layer (BATCH packing): a layer_role */
    int *ca, *cb;    /* per layer with ROLE_CONTRACT: the tensors the expansions read */
} builder;

static tsr_status new_value(builder *b, int *id) {
    nn_program *p = b->p;
    if (p->n_values == p->cap_values) {
        int cap = p->cap_values ? 2 * p->cap_values : 32;
        nn_value *nv = tsr_calloc_array((size_t)cap, sizeof *nv);
        tsr_tile **vv = tsr_calloc_array((size_t)cap, sizeof *vv);
        if (!nv || !vv) {
            tsr_free(nv);
            tsr_free(vv);
            return tsr_fail(TSR_ERR_NOMEM, "out of memory");
        }
        if (p->n_values) {
            memcpy(nv, p->values, (size_t)p->n_values * sizeof *nv);
            memcpy(vv, b->vals, (size_t)p->n_values * sizeof *vv);
        }
        tsr_free(p->values);
        tsr_free(b->vals);
        p->values = nv;
        b->vals = vv;
        p->cap_values = cap;
    }
    *id = p->n_values++;
    return TSR_OK;
}

static tsr_status add_rotations(nn_program *p, tsr_backend *be) {
    int64_t n = (int64_t)tsr_backend_used_rotations(be, NULL, 0);
    if (n == 0) return TSR_OK;
    int64_t *cur = tsr_alloc((size_t)n * sizeof *cur);
    int64_t *mer = tsr_alloc((size_t)(n + p->n_rot) * sizeof *mer);
    if (!cur || !mer) {
        tsr_free(cur);
        tsr_free(mer);
        return tsr_fail(TSR_ERR_NOMEM, "out of memory");
    }
    tsr_backend_used_rotations(be, cur, (size_t)n);
    int64_t i = 0, j = 0, k = 0;
    while (i < p->n_rot || j < n) {
        int64_t v;
        if (j >= n || (i < p->n_rot && p->rot[i] < cur[j]))
            v = p->rot[i++];
        else if (i >= p->n_rot || cur[j] < p->rot[i])
            v = cur[j++];
        else
            v = p->rot[i++], j++;
        mer[k++] = v;
    }
    tsr_free(cur);
    tsr_free(p->rot);
    p->rot = mer;
    p->n_rot = k;
    return TSR_OK;
}

/* Run one step on the builder's backend and record it; *id receives the output value. */
static tsr_status emit(builder *b, nn_step s, int *id_out) {
    nn_program *p = b->p;
    tsr_tile *x = b->vals[s.in[0]];
    s.in_shape = x->shape;
    s.level_in = tsr_tile_level(x);
    s.level_out = s.level_in;
    if (s.op == NN_OP_DENSE || s.op == NN_OP_CONV || s.op == NN_OP_REORIENT)
        s.level_out = s.level_in - 1;
    int id;
    TSR_TRY(new_value(b, &id));
    s.out = id;
    tsr_status st = TSR_OK;
    if (s.op == NN_OP_DENSE && s.layer >= 0 && b->m->layers[s.layer].b_len) {
        /* The bias is laid out like the product: learn its shape from a probe run. */
        tsr_tile *w = NULL, *r = NULL;
        st = dense_weights(b->be, b->m, &b->m->layers[s.layer], &s, &w);
        if (st == TSR_OK)
            st = s.nsum ? tsr_tile_mul_sum_dims(x, w, s.sum, s.nsum, &r) : tsr_tile_mul(x, w, &r);
        if (st == TSR_OK) s.out_shape = r->shape;
        tsr_tile_free(w);
        tsr_tile_free(r);
        if (st != TSR_OK) return tsr_fail_context(st, "dense '%s': ", b->m->layers[s.layer].name);
    }
    nn_prep *pp = NULL;
    tsr_backend_counts pc, c0;
    tsr_backend_reset_counts(b->be);
    tsr_backend_get_counts(b->be, &c0);
    st = nn_prepare_step(b->m, p, &s, b->be, &pp);
    if (st != TSR_OK) return st;
    tsr_backend_get_counts(b->be, &pc);
    p->n_plain += pc.encode;
    uint64_t prep_limbs = pc.live_limbs - c0.live_limbs;
    p->plain_limbs += prep_limbs;
    tsr_backend_reset_counts(b->be);
    st = nn_apply_step(b->m, p, &s, pp, b->vals);
    nn_prep_free(pp);
    if (st != TSR_OK) return st;
    tsr_backend_get_counts(b->be, &s.counts);
    if (s.counts.peak_limbs - prep_limbs > p->peak_limbs)
        p->peak_limbs = s.counts.peak_limbs - prep_limbs;
    TSR_TRY(add_rotations(p, b->be));
    tsr_tile *r = b->vals[id];
    s.out_shape = r->shape;
    s.level_out = tsr_tile_level(r);
    if (s.counts.mul_ct) p->needs_relin = 1;
    if (s.counts.peak_vectors > p->peak_vectors) p->peak_vectors = s.counts.peak_vectors;
    if (p->n_steps == p->cap_steps) {
        int cap = p->cap_steps ? 2 * p->cap_steps : 32;
        nn_step *ns = tsr_calloc_array((size_t)cap, sizeof *ns);
        if (!ns) return tsr_fail(TSR_ERR_NOMEM, "out of memory");
        if (p->n_steps) memcpy(ns, p->steps, (size_t)p->n_steps * sizeof *ns);
        tsr_free(p->steps);
        p->steps = ns;
        p->cap_steps = cap;
    }
    p->steps[p->n_steps++] = s;
    p->values[id].shape = r->shape;
    p->values[id].cdim = p->values[s.in[0]].cdim;
    p->values[id].vec = p->values[s.in[0]].vec;
    *id_out = id;
    return TSR_OK;
}

/* Make dimension d of value *v replicated (`*`): free if it already is or is a bare 1/1. */
static tsr_status ensure_dup(builder *b, int *v, int d) {
    const tsr_tile_dim *x = &b->p->values[*v].shape.dim[d];
    if (x->dup) return TSR_OK;
    if (x->size != 1)
        return tsr_fail(TSR_ERR_INTERNAL, "dimension %d of %s holds data", d,
                        tl_fmt(&b->p->values[*v].shape));
    nn_step s;
    memset(&s, 0, sizeof s);
    s.layer = -1;
    s.in[0] = *v;
    s.in[1] = -1;
    s.fdim = s.cdim = -1;
    s.odim = d;
    if (x->tile == 1) {
        s.op = NN_OP_RESHAPE;
        s.out_shape = b->p->values[*v].shape;
        s.out_shape.dim[d].dup = 1;
        s.out_shape.dim[d].unknown = 0;
        s.out_shape.dim[d].interleaved = 0;
    } else {
        s.op = NN_OP_CLEAR_DUP;
    }
    int id;
    TSR_TRY(emit(b, s, &id));
    *v = id;
    return TSR_OK;
}

static nn_step layer_step(nn_op op, int layer, int in) {
    nn_step s;
    memset(&s, 0, sizeof s);
    s.op = op;
    s.layer = layer;
    s.in[0] = in;
    s.in[1] = -1;
    s.fdim = s.cdim = s.odim = -1;
    return s;
}

/*
 * With one sample per slot, a square whose only reader is a convolution, pool
 * or dense layer is done by that layer: the squares stay unrelinearized until
 * the layer's sums are formed, one relinearization per output instead of one
 * per input (845 -> 100 for the CryptoNets CNN's first dense layer).
 */
static int square_fuses(const builder *b, int li) {
    const tsr_nn_model *m = b->m;
    int t = m->layers[li].out;
    if (t == m->output || nn_consumers(m, t) != 1) return 0;
    for (int j = li + 1; j < m->n_layers; j++) {
        const nn_layer *R = &m->layers[j];
        if (R->in[0] != t && R->in[1] != t) continue;
        return R->in[0] == t && R->in[1] < 0 && b->role[j] == ROLE_OWN &&
               (R->kind == NN_CONV || R->kind == NN_AVGPOOL || R->kind == NN_DENSE);
    }
    return 0;
}

static tsr_status lower_layer(builder *b, int li) {
    const tsr_nn_model *m = b->m;
    const nn_layer *L = &m->layers[li];
    nn_program *p = b->p;
    int v = b->tval[L->in[0]], id = -1;
    int batch = p->cfg.packing == TSR_NN_PACK_BATCH;
    nn_step s;
    if (b->role[li] == ROLE_FUSED) return TSR_OK; /* done by the contraction's step */
    if (b->role[li] == ROLE_CONTRACT) {
        s = layer_step(NN_OP_CONTRACT, li, b->tval[b->ca[li]]);
        s.in[1] = b->tval[b->cb[li]];
        s.out_shape = p->values[s.in[0]].shape;
        s.out_shape.dim[0] = mk_dim(nn_out_shape(m, L).c, 1, 0, 0);
        s.out_shape.dim[1] = mk_dim(1, 1, 0, 0);
        s.out_shape.dim[2] = mk_dim(1, 1, 0, 0);
        TSR_TRY(emit(b, s, &id));
        p->values[id].vec = 1;
        b->tval[L->out] = id;
        return TSR_OK;
    }
    switch (L->kind) {
    case NN_CONV:
    case NN_AVGPOOL:
        if (batch) {
            s = layer_step(b->sq[L->in[0]] ? NN_OP_SQ_LINEAR : NN_OP_LINEAR, li, v);
            nn_shape os = nn_out_shape(m, L);
            s.out_shape = p->values[v].shape;
            s.out_shape.dim[0] = mk_dim(os.c, 1, 0, 0);
            s.out_shape.dim[1] = mk_dim(os.h, 1, 0, 0);
            s.out_shape.dim[2] = mk_dim(os.w, 1, 0, 0);
            TSR_TRY(emit(b, s, &id));
            break;
        }
        if (L->kind == NN_CONV) {
            int cd = p->values[v].cdim, fd;
            s = layer_step(NN_OP_CONV, li, v);
            if (cd < 0) {
                fd = p->cfg.orient;
                s.cdim = -1;
            } else {
                fd = 3 - cd;
                TSR_TRY(ensure_dup(b, &v, fd));
                s.in[0] = v;
                s.cdim = cd;
            }
            s.fdim = fd;
            TSR_TRY(emit(b, s, &id));
            p->values[id].cdim = fd;
        } else {
            s = layer_step(NN_OP_POOL, li, v);
            s.cdim = p->values[v].cdim;
            TSR_TRY(emit(b, s, &id));
        }
        break;
    case NN_DENSE:
        if (batch) {
            s = layer_step(b->sq[L->in[0]] ? NN_OP_SQ_LINEAR : NN_OP_LINEAR, li, v);
            s.out_shape = p->values[v].shape;
            s.out_shape.dim[0] = mk_dim(nn_out_shape(m, L).c, 1, 0, 0);
            s.out_shape.dim[1] = mk_dim(1, 1, 0, 0);
            s.out_shape.dim[2] = mk_dim(1, 1, 0, 0);
            TSR_TRY(emit(b, s, &id));
            p->values[id].vec = 1;
            break;
        } else {
            int cd = p->values[v].cdim;
            int od = cd < 0 ? p->cfg.orient : 3 - cd;
            if (p->values[v].vec) {
                /* A flat vector: any other replicated dimension can take the outputs;
                 * the widest gives the fewest output tiles. */
                const tsr_tile_shape *vs = &p->values[v].shape;
                int64_t best = 0;
                for (int d = 0; d < 4; d++)
                    if (d != cd && vs->dim[d].dup && vs->dim[d].tile > best) {
                        best = vs->dim[d].tile;
                        od = d;
                    }
                if (best == 0)
                    for (int d = 0; d < 4; d++)
                        if (d != cd && vs->dim[d].size == 1 && vs->dim[d].tile > best) {
                            best = vs->dim[d].tile;
                            od = d;
                        }
            }
            TSR_TRY(ensure_dup(b, &v, od));
            s = layer_step(NN_OP_DENSE, li, v);
            s.odim = od;
            s.cdim = cd;
            const tsr_tile_shape *vs = &p->values[v].shape;
            for (int d = 0; d < 4; d++)
                if (d != od && !vs->dim[d].dup && vs->dim[d].size > 1) s.sum[s.nsum++] = d;
            TSR_TRY(emit(b, s, &id));
            p->values[id].cdim = od;
            p->values[id].vec = 1;
        }
        break;
    case NN_SQUARE:
        if (batch && square_fuses(b, li)) {
            /* The linear layer reading it squares its inputs (NN_OP_SQ_LINEAR). */
            b->sq[L->out] = 1;
            id = v;
            break;
        }
        TSR_TRY(emit(b, layer_step(NN_OP_SQUARE, li, v), &id));
        break;
    case NN_SQMUL:
        /*
         * Not fused into the linear layer reading it, unlike a square. A sum of products
         * x (x + d) per output term (tsr_tile_prod_lincomb) forms M n ciphertext products
         * instead of n: for the 144 -> 784 last layer of a 784-144-144-144-784 autoencoder
         * (batch packing, N = 2^14) predicted 114.5 s against 9.2 s for the 144 products and
         * the plain linear step. Fusing as the square does needs the products formed once per
         * input and summed unrelinearized (a CKKS kernel like sq_lincomb's with the offsets),
         * or sq_lincomb(x; w) + lincomb(x; w d): a whole lincomb more than the fused square,
         * against the relinearizations it saves. Neither is done (docs/PRUNING.md, ninth round).
         */
        TSR_TRY(emit(b, layer_step(NN_OP_SQMUL, li, v), &id));
        break;
    case NN_POLY:
        TSR_TRY(emit(b, layer_step(NN_OP_POLY, li, v), &id));
        break;
    case NN_ADD:
    case NN_MUL: {
        int v2 = b->tval[L->in[1]];
        const nn_value *a = &p->values[v], *c = &p->values[v2];
        if (!batch && a->cdim != c->cdim && a->cdim >= 0 && c->cdim >= 0 && !a->vec && !c->vec &&
            (a->cdim == 0 || a->cdim == 3) && (c->cdim == 0 || c->cdim == 3)) {
            /* The branches alternate layouts differently (e.g. two convolutions against a
             * one-convolution shortcut): move the branch with more levels left. */
            int *w = tsr_tile_level(b->vals[v]) >= tsr_tile_level(b->vals[v2]) ? &v : &v2;
            int cd = p->values[*w].cdim;
            TSR_TRY(ensure_dup(b, w, 3 - cd));
            nn_step r = layer_step(NN_OP_REORIENT, -1, *w);
            r.cdim = cd;
            r.fdim = 3 - cd;
            int nid;
            TSR_TRY(emit(b, r, &nid));
            p->values[nid].cdim = 3 - cd;
            *w = nid;
            a = &p->values[v];
            c = &p->values[v2];
        }
        if (!batch && a->cdim != c->cdim && a->vec && c->vec && c->cdim >= 0 && a->cdim >= 0) {
            /* Flat vectors whose features arrived in different dimensions (a residual around
             * a stack of dense layers against one identity, attention's operands): the branch
             * with more levels left moves its features by an identity dense step. */
            int *w = tsr_tile_level(b->vals[v]) >= tsr_tile_level(b->vals[v2]) ? &v : &v2;
            int to = p->values[w == &v ? v2 : v].cdim, cd = p->values[*w].cdim;
            TSR_TRY(ensure_dup(b, w, to));
            nn_step r = layer_step(NN_OP_DENSE, -1, *w);
            r.odim = to;
            r.cdim = cd;
            const tsr_tile_shape *ws = &p->values[*w].shape;
            for (int d = 0; d < 4; d++)
                if (d != to && !ws->dim[d].dup && ws->dim[d].size > 1) r.sum[r.nsum++] = d;
            int nid;
            TSR_TRY(emit(b, r, &nid));
            p->values[nid].cdim = to;
            p->values[nid].vec = 1;
            *w = nid;
            a = &p->values[v];
            c = &p->values[v2];
        }
        if (a->cdim != c->cdim || a->shape.ndims != c->shape.ndims)
            return tsr_fail(TSR_ERR_UNSUPPORTED,
                            "%s '%s': its inputs arrive in different layouts (%s and %s)",
                            nn_kind_name(L->kind), L->name, tl_fmt(&a->shape), tl_fmt2(&c->shape));
        s = layer_step(L->kind == NN_ADD ? NN_OP_ADD : NN_OP_MUL, li, v);
        s.in[1] = v2;
        TSR_TRY(emit(b, s, &id));
        break;
    }
    default:
        return tsr_fail(TSR_ERR_INTERNAL, "layer kind %d", (int)L->kind);
    }
    b->tval[L->out] = id;
    return TSR_OK;
}

/* Free values nobody reads any more (keeps a dry run's memory like a real run's). */
/* Does layer j read tensor t (a contraction's sum reads what its expansions read)? */
static int layer_reads(const builder *b, int j, int t) {
    const nn_layer *L = &b->m->layers[j];
    if (b->role[j] == ROLE_FUSED) return 0;
    if (b->role[j] == ROLE_CONTRACT) return b->ca[j] == t || b->cb[j] == t;
    return L->in[0] == t || L->in[1] == t;
}

static void release_dead(builder *b, int li) {
    const tsr_nn_model *m = b->m;
    for (int v = 0; v < b->p->n_values; v++) {
        if (!b->vals[v]) continue;
        int live = 0;
        for (int t = 0; t < m->n_tensors && !live; t++) {
            if (b->tval[t] != v) continue;
            if (t == m->output) live = 1;
            for (int j = li + 1; j < m->n_layers && !live; j++) live = layer_reads(b, j, t);
        }
        if (!live) {
            tsr_tile_free(b->vals[v]);
            b->vals[v] = NULL;
        }
    }
}

tsr_status nn_program_build(const tsr_nn_model *m, const nn_config *c, tsr_backend *be,
                            nn_program **out) {
    *out = NULL;
    nn_value in;
    TSR_TRY(nn_config_check(m, c, &in));
    if (tsr_backend_slots(be) != c->slots)
        return tsr_fail(TSR_ERR_MISMATCH, "the backend has %lld slots, the configuration %lld",
                        (long long)tsr_backend_slots(be), (long long)c->slots);
    builder b;
    memset(&b, 0, sizeof b);
    b.m = m;
    b.be = be;
    nn_program *p = tsr_calloc(sizeof *p);
    b.tval = tsr_alloc((size_t)m->n_tensors * sizeof *b.tval);
    b.sq = tsr_calloc((size_t)m->n_tensors);
    b.role = tsr_calloc((size_t)m->n_layers + 1);
    b.ca = tsr_calloc_array((size_t)m->n_layers + 1, sizeof *b.ca);
    b.cb = tsr_calloc_array((size_t)m->n_layers + 1, sizeof *b.cb);
    if (!p || !b.tval || !b.sq || !b.role || !b.ca || !b.cb) {
        tsr_free(p);
        tsr_free(b.tval);
        tsr_free(b.sq);
        tsr_free(b.role);
        tsr_free(b.ca);
        tsr_free(b.cb);
        return tsr_fail(TSR_ERR_NOMEM, "out of memory");
    }
    /* Contractions (BATCH packing): expansions + mul + sum become one step of the sum. */
    for (int q = 0; c->packing == TSR_NN_PACK_BATCH && !c->no_contract && q < m->n_layers; q++) {
        int u, ea, eb;
        if (b.role[q] != ROLE_OWN || !contract_layers(m, q, &u, &ea, &eb)) continue;
        if (b.role[u] != ROLE_OWN || b.role[ea] != ROLE_OWN || b.role[eb] != ROLE_OWN) continue;
        b.role[u] = b.role[ea] = b.role[eb] = ROLE_FUSED;
        b.role[q] = ROLE_CONTRACT;
        b.ca[q] = m->layers[ea].in[0];
        b.cb[q] = m->layers[eb].in[0];
    }
    b.p = p;
    p->cfg = *c;
    p->top_level = tsr_backend_top_level(be);
    for (int t = 0; t < m->n_tensors; t++) b.tval[t] = -1;
    int v0;
    tsr_status st = new_value(&b, &v0);
    if (st == TSR_OK) {
        p->values[0] = in;
        b.tval[0] = 0;
        tsr_backend_reset_counts(be);
        st = tsr_tile_encrypt(be, &in.shape, NULL, -1, 0, &b.vals[0]);
    }
    for (int i = 0; i < m->n_layers && st == TSR_OK; i++) {
        st = lower_layer(&b, i);
        if (st == TSR_OK) release_dead(&b, i);
    }
    if (st == TSR_OK) {
        p->output = b.tval[m->output];
        p->depth = p->top_level - tsr_tile_level(b.vals[p->output]);
    }
    for (int v = 0; b.vals && v < p->n_values; v++) tsr_tile_free(b.vals[v]);
    tsr_free(b.vals);
    tsr_free(b.tval);
    tsr_free(b.sq);
    tsr_free(b.role);
    tsr_free(b.ca);
    tsr_free(b.cb);
    if (st != TSR_OK) {
        nn_program_free(p);
        return st;
    }
    *out = p;
    return TSR_OK;
}

/* ---- input packing and output unpacking ---------------------------------------------- */

tsr_status nn_pack_input(const tsr_nn_model *m, const nn_program *p, const double *x, int n,
                         double **out) {
    *out = NULL;
    const nn_value *v = &p->values[0];
    const tsr_tile_shape *s = &v->shape;
    nn_shape is = m->shapes[0];
    if (n < 1 || n > p->cfg.batch)
        return tsr_fail(TSR_ERR_INVALID_ARG, "%d samples for a plan of batch %d", n, p->cfg.batch);
    int64_t st[TSR_TILE_MAX_DIMS];
    int64_t total = dense_strides(s, st);
    double *d = tsr_calloc_array((size_t)total, sizeof *d);
    if (!d) return tsr_fail(TSR_ERR_NOMEM, "out of memory packing the input");
    int bd = s->ndims - 1;
    int cd = p->cfg.packing == TSR_NN_PACK_BATCH ? 0 : v->cdim;
    for (int b = 0; b < n; b++)
        for (int c = 0; c < is.c; c++)
            for (int y = 0; y < is.h; y++)
                for (int xx = 0; xx < is.w; xx++) {
                    int64_t o = b * st[bd] + (cd >= 0 ? c * st[cd] : 0) + y * st[1] + xx * st[2];
                    d[o] = x[(((int64_t)b * is.c + c) * is.h + y) * is.w + xx];
                }
    *out = d;
    return TSR_OK;
}

void nn_unpack_output(const tsr_nn_model *m, const nn_program *p, const double *dense, int n,
                      double *out) {
    const nn_value *v = &p->values[p->output];
    const tsr_tile_shape *s = &v->shape;
    int64_t st[TSR_TILE_MAX_DIMS];
    dense_strides(s, st);
    int bd = s->ndims - 1;
    int cd = p->cfg.packing == TSR_NN_PACK_BATCH ? 0 : v->cdim;
    nn_shape os = m->shapes[m->output];
    int64_t K = nn_numel(os);
    for (int b = 0; b < n; b++)
        for (int c = 0; c < os.c; c++)
            for (int y = 0; y < os.h; y++)
                for (int x = 0; x < os.w; x++) {
                    int64_t o = b * st[bd] + (cd >= 0 ? c * st[cd] : 0) +
                                (cd == 1 ? 0 : y * st[1]) + (cd == 2 ? 0 : x * st[2]);
                    out[(int64_t)b * K + ((int64_t)c * os.h + y) * os.w + x] = dense[o];
                }
}

int nn_program_compare(const nn_program *a, const nn_program *b, char *why, size_t n) {
    if (a->n_steps != b->n_steps) {
        snprintf(why, n, "%d steps instead of %d", b->n_steps, a->n_steps);
        return 1;
    }
    for (int i = 0; i < a->n_steps; i++) {
        const nn_step *x = &a->steps[i], *y = &b->steps[i];
        if (x->op != y->op || x->layer != y->layer || x->in[0] != y->in[0] ||
            x->in[1] != y->in[1] || x->out != y->out || x->fdim != y->fdim || x->cdim != y->cdim ||
            x->odim != y->odim || x->nsum != y->nsum || x->level_in != y->level_in ||
            x->level_out != y->level_out || !tsr_tile_shape_equal(&x->in_shape, &y->in_shape) ||
            !tsr_tile_shape_equal(&x->out_shape, &y->out_shape)) {
            snprintf(why, n, "step %d (%s) differs", i, nn_op_name(x->op));
            return 1;
        }
        for (int k = 0; k < x->nsum; k++)
            if (x->sum[k] != y->sum[k]) {
                snprintf(why, n, "step %d sums other dimensions", i);
                return 1;
            }
    }
    if (a->n_rot != b->n_rot || (a->n_rot && memcmp(a->rot, b->rot, (size_t)a->n_rot * 8))) {
        snprintf(why, n, "rotation steps differ");
        return 1;
    }
    if (a->output != b->output || a->depth != b->depth || a->needs_relin != b->needs_relin) {
        snprintf(why, n, "output or depth differ");
        return 1;
    }
    return 0;
}
