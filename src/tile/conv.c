/*
 * tile/conv.c - 2D convolution over image-packed tile tensors with
 * interleaved image dimensions (Aharoni et al., HeLayers, arXiv 2011.01805,
 * section 5; layouts I and II in docs/TILES.md).
 *
 * With x interleaved over e tiles (element x in tile x mod e, slot x div e),
 * the output element x' (same layout, e' = e / stride tiles) needs input
 * element x = stride * x' + dx - pad. For output tile k' that is input tile
 * r = (stride*k' + dx - pad) mod e at slot offset q = floor((stride*k' + dx -
 * pad) / e): a neighbour tile plus a rotation by q slots, q in {-1, 0, 1}
 * for small kernels. Whenever the source element exists, the rotated slot
 * is exactly right (no borrow between slot coordinates), so multiplying by
 * a plaintext filter tile that is zero wherever the output is padding or
 * the source falls outside the image implements the zero padding and
 * clears every unknown for free. The kernel offsets FX, FY therefore live
 * only in the external grid; products are accumulated over offsets and
 * channel tiles before one rescale, then the channels are summed inside
 * each tile by rotate-and-add.
 */
#include "tile/tile_internal.h"

#include "core/alloc.h"
#include "core/error.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

typedef struct conv_use {
    int64_t src;  /* image tile */
    int64_t step; /* rotation (normalized) */
    int64_t prod; /* product tile */
    int64_t filt; /* index into filt[] */
} conv_use;

struct tsr_tile_conv {
    tsr_backend *be;
    tsr_tile_conv_params p;
    tsr_tile_shape in, prod, out;
    int F, C, FX, FY;
    int level;
    double scale;
    int sum_channels;
    int64_t nuse;
    conv_use *use;     /* sorted by (src, step) */
    int64_t max_group; /* most uses of one image tile */
    int64_t nfilt;     /* weight tiles x offsets */
    tsr_bvec **filt;   /* encoded filter tiles (NULL: all zero, never used) */
    int64_t nout;
    tsr_bvec **bias; /* per output tile, or NULL */
};

void tsr_tile_conv_free(tsr_tile_conv *c) {
    if (!c) return;
    for (int64_t i = 0; c->filt && i < c->nfilt; i++) tsr_bvec_free(c->be, c->filt[i]);
    for (int64_t i = 0; c->bias && i < c->nout; i++) tsr_bvec_free(c->be, c->bias[i]);
    tsr_free(c->filt);
    tsr_free(c->bias);
    tsr_free(c->use);
    tsr_free(c);
}

const tsr_tile_shape *tsr_tile_conv_output_shape(const tsr_tile_conv *c) {
    return &c->out;
}

void tsr_tile_conv_filter_shape(const tsr_tile_conv *c, tsr_tile_shape *out) {
    memset(out, 0, sizeof *out);
    int nd = c->prod.ndims;
    out->ndims = nd + 2 <= TSR_TILE_MAX_DIMS ? nd + 2 : nd;
    int o = out->ndims - nd;
    if (o == 2) {
        out->dim[0] = (tsr_tile_dim){ .size = c->FX, .tile = 1 };
        out->dim[1] = (tsr_tile_dim){ .size = c->FY, .tile = 1 };
    }
    for (int i = 0; i < nd; i++) {
        tsr_tile_dim d = c->prod.dim[i];
        if (i != c->p.f_dim && i != c->p.c_dim) {
            int64_t t = d.tile;
            d = (tsr_tile_dim){ .size = 1, .tile = t, .dup = 1 };
        }
        d.unknown = 0;
        out->dim[o + i] = d;
    }
}

static int cmp_use(const void *x, const void *y) {
    const conv_use *a = x, *b = y;
    if (a->src != b->src) return a->src < b->src ? -1 : 1;
    if (a->step != b->step) return a->step < b->step ? -1 : 1;
    if (a->prod != b->prod) return a->prod < b->prod ? -1 : 1;
    return 0;
}

static int64_t floor_div(int64_t a, int64_t b) {
    int64_t q = a / b;
    return (a % b != 0 && ((a < 0) != (b < 0))) ? q - 1 : q;
}

/* Validate the geometry and derive the product and output shapes. */
static tsr_status setup(tsr_tile_conv *c, const tsr_tile_shape *img, int F, int FX, int FY) {
    const tsr_tile_conv_params *p = &c->p;
    int nd = img->ndims;
    int dims[4] = { p->x_dim, p->y_dim, p->c_dim, p->f_dim };
    const char *names[4] = { "x_dim", "y_dim", "c_dim", "f_dim" };
    for (int i = 0; i < 4; i++) {
        if (dims[i] < (i < 2 ? 0 : -1) || dims[i] >= nd)
            return tsr_fail(TSR_ERR_INVALID_ARG, "conv: %s = %d is not a dimension of %s%s",
                            names[i], dims[i], tl_fmt(img), i >= 2 ? " (or -1)" : "");
        for (int j = 0; j < i; j++)
            if (dims[i] >= 0 && dims[i] == dims[j])
                return tsr_fail(TSR_ERR_INVALID_ARG, "conv: %s and %s are both dimension %d",
                                names[j], names[i], dims[i]);
    }
    if (FX < 1 || FY < 1 || FX > 64 || FY > 64)
        return tsr_fail(TSR_ERR_INVALID_ARG, "conv: kernel %dx%d must be between 1x1 and 64x64", FX,
                        FY);
    if (p->stride_x < 1 || p->stride_y < 1 || p->pad_x < 0 || p->pad_y < 0 || p->pad_x >= FX ||
        p->pad_y >= FY)
        return tsr_fail(TSR_ERR_INVALID_ARG,
                        "conv: strides (%d, %d) must be >= 1 and paddings (%d, %d) in [0, kernel)",
                        p->stride_x, p->stride_y, p->pad_x, p->pad_y);
    c->C = p->c_dim >= 0 ? (int)img->dim[p->c_dim].size : 1;
    if (p->c_dim >= 0 && img->dim[p->c_dim].dup)
        return tsr_fail(TSR_ERR_SHAPE, "conv: the channel dimension %d of %s must not be '*'",
                        p->c_dim, tl_fmt(img));
    if (p->depthwise) {
        if (p->f_dim >= 0)
            return tsr_fail(TSR_ERR_INVALID_ARG,
                            "conv: a depthwise convolution keeps the channels in place; set "
                            "f_dim to -1");
        if (F != c->C)
            return tsr_fail(TSR_ERR_INVALID_ARG,
                            "conv: a depthwise convolution has one filter per channel (F = C = "
                            "%d, not %d)",
                            c->C, F);
    } else if (p->f_dim < 0 && F != 1) {
        return tsr_fail(TSR_ERR_INVALID_ARG,
                        "conv: %d filters need a filter dimension (f_dim) that is '*' in the "
                        "image",
                        F);
    }
    if (F < 1) return tsr_fail(TSR_ERR_INVALID_ARG, "conv: F = %d filters", F);
    if (p->f_dim >= 0 && !img->dim[p->f_dim].dup)
        return tsr_fail(TSR_ERR_SHAPE,
                        "conv: dimension %d of %s receives the filters and must be */t in the "
                        "image (duplicate it first: tsr_tile_clear + tsr_tile_duplicate)",
                        p->f_dim, tl_fmt(img));
    c->F = F;
    c->FX = FX;
    c->FY = FY;
    c->prod = *img;
    for (int a = 0; a < 2; a++) {
        int d = a ? p->y_dim : p->x_dim;
        int fk = a ? FY : FX, pad = a ? p->pad_y : p->pad_x, s = a ? p->stride_y : p->stride_x;
        const tsr_tile_dim *x = &img->dim[d];
        int64_t e = tsr_tile_shape_external(img, d);
        if (x->dup)
            return tsr_fail(TSR_ERR_SHAPE, "conv: image dimension %d of %s must not be '*'", d,
                            tl_fmt(img));
        if (!x->interleaved && e > 1)
            return tsr_fail(TSR_ERR_SHAPE,
                            "conv: image dimension %d of %s spans %lld tiles contiguously; pack "
                            "it interleaved (%lld~/%lld) or use a tile >= %lld",
                            d, tl_fmt(img), (long long)e, (long long)x->size, (long long)x->tile,
                            (long long)x->size);
        int64_t n = x->size + 2 * pad - fk;
        if (n < 0)
            return tsr_fail(TSR_ERR_SHAPE, "conv: kernel %d is larger than image size %lld + 2*%d",
                            fk, (long long)x->size, pad);
        int64_t no = n / s + 1;
        if (e % s != 0)
            return tsr_fail(TSR_ERR_SHAPE,
                            "conv: stride %d along dimension %d needs its number of tiles (%lld "
                            "in %s) to be a multiple of %d; use a smaller tile size",
                            s, d, (long long)e, tl_fmt(img), s);
        int64_t eo = e / s, need = (no + x->tile - 1) / x->tile;
        if (need != eo)
            return tsr_fail(TSR_ERR_SHAPE,
                            "conv: the output size %lld along dimension %d would need %lld tiles "
                            "of %lld but the convolution of %s produces %lld; choose a tile size "
                            "t with ceil(%lld/t) == ceil(%lld/t)/%d",
                            (long long)no, d, (long long)need, (long long)x->tile, tl_fmt(img),
                            (long long)eo, (long long)no, (long long)x->size, s);
        tsr_tile_dim *r = &c->prod.dim[d];
        r->size = no;
        r->unknown = 0;
    }
    if (p->f_dim >= 0) {
        tsr_tile_dim *r = &c->prod.dim[p->f_dim];
        r->dup = 0;
        r->size = F;
        r->unknown = 0;
        r->interleaved = 0;
    }
    if (p->c_dim >= 0) c->prod.dim[p->c_dim].unknown = 0;
    tl_normalize(&c->prod);
    c->sum_channels = p->c_dim >= 0 && !p->depthwise;
    c->out = c->prod;
    if (c->sum_channels) {
        tsr_tile_dim *r = &c->out.dim[p->c_dim];
        int64_t t = r->tile;
        memset(r, 0, sizeof *r);
        r->size = 1;
        r->tile = t;
        if (t > 1) {
            if (tl_first_nontrivial(&c->prod) == p->c_dim)
                r->dup = 1;
            else
                r->unknown = 1;
        }
    }
    return TSR_OK;
}

/* Is dimension d one of the weight dimensions (f, c, x, y)? */
static int weight_dim(const tsr_tile_conv_params *p, int d) {
    return d == p->x_dim || d == p->y_dim || d == p->c_dim || d == p->f_dim;
}

/*
 * Slot values of the filter tile for product tile kp (multi-index) and
 * offset (dx, dy): w[f][c][dx][dy] where the output element is valid and
 * its source lies inside the image, 0 elsewhere. Returns 1 if any slot is
 * nonzero.
 */
static int build_filter(const tsr_tile_conv *c, const tl_layout *Lp, const int64_t *kp, int dx,
                        int dy, const double *w, double *buf) {
    const tsr_tile_conv_params *p = &c->p;
    const tsr_tile_shape *ps = &c->prod;
    int nd = ps->ndims;
    int64_t pos[TSR_TILE_MAX_DIMS] = { 0 };
    int any = 0;
    for (int64_t slot = 0; slot < Lp->slots; slot++) {
        double v = 0;
        int ok = 1;
        int64_t f = 0, ch = 0;
        for (int a = 0; a < 2 && ok; a++) {
            int d = a ? p->y_dim : p->x_dim;
            int s = a ? p->stride_y : p->stride_x, pad = a ? p->pad_y : p->pad_x;
            int off = a ? dy : dx;
            int64_t xo = tl_dim_index(&ps->dim[d], Lp->ext[d], kp[d], pos[d]);
            if (xo < 0) {
                ok = 0;
                break;
            }
            int64_t xi = s * xo + off - pad;
            if (xi < 0 || xi >= c->in.dim[d].size) ok = 0;
        }
        if (ok && p->f_dim >= 0) {
            f = tl_dim_index(&ps->dim[p->f_dim], Lp->ext[p->f_dim], kp[p->f_dim], pos[p->f_dim]);
            ok = f >= 0;
        }
        if (ok && p->c_dim >= 0) {
            ch = tl_dim_index(&ps->dim[p->c_dim], Lp->ext[p->c_dim], kp[p->c_dim], pos[p->c_dim]);
            ok = ch >= 0;
        }
        if (ok) {
            if (p->depthwise)
                v = w[(ch * c->FX + dx) * c->FY + dy];
            else
                v = w[((f * c->C + ch) * c->FX + dx) * c->FY + dy];
        }
        buf[slot] = v;
        any |= v != 0.0;
        for (int i = nd - 1; i >= 0; i--) {
            if (++pos[i] < ps->dim[i].tile) break;
            pos[i] = 0;
        }
    }
    return any;
}

/* Bias slots for output tile ko: b[f] (or b[c]) at valid positions. */
static int build_bias(const tsr_tile_conv *c, const tl_layout *Lo, const int64_t *ko,
                      const double *bias, double *buf) {
    const tsr_tile_conv_params *p = &c->p;
    const tsr_tile_shape *os = &c->out;
    int nd = os->ndims;
    int64_t pos[TSR_TILE_MAX_DIMS] = { 0 };
    int any = 0;
    for (int64_t slot = 0; slot < Lo->slots; slot++) {
        int ok = 1;
        int64_t which = 0;
        for (int i = 0; i < nd && ok; i++) {
            if (c->sum_channels && i == p->c_dim) continue; /* every channel slot */
            int64_t j = tl_dim_index(&os->dim[i], Lo->ext[i], ko[i], pos[i]);
            if (j < 0) ok = 0;
            if (i == p->f_dim || (p->depthwise && i == p->c_dim)) which = j;
        }
        buf[slot] = ok ? bias[which] : 0.0;
        any |= buf[slot] != 0.0;
        for (int i = nd - 1; i >= 0; i--) {
            if (++pos[i] < os->dim[i].tile) break;
            pos[i] = 0;
        }
    }
    return any;
}

tsr_status tsr_tile_conv_create(tsr_backend *be, const tsr_tile_shape *image,
                                const tsr_tile_conv_params *p, const double *filters, int F, int FX,
                                int FY, const double *bias, int level, double scale,
                                tsr_tile_conv **out) {
    *out = NULL;
    TSR_TRY(tsr_tile_shape_validate(image, be->slots));
    if (level < 0) level = be->top_level;
    if (level < 1 || level > be->top_level)
        return tsr_fail(TSR_ERR_LEVEL,
                        "conv at level %d: a convolution needs one level (levels 1..%d)", level,
                        be->top_level);
    if (scale <= 0) scale = be->scales[level];
    tsr_tile_conv *c = tsr_calloc(sizeof *c);
    if (!c) return tsr_fail(TSR_ERR_NOMEM, "out of memory preparing a convolution");
    c->be = be;
    c->p = *p;
    c->in = *image;
    c->level = level;
    c->scale = scale;
    tsr_status st = setup(c, image, F, FX, FY);
    if (st != TSR_OK) {
        tsr_tile_conv_free(c);
        return st;
    }
    tl_layout Li, Lp, Lo;
    tl_layout_init(&Li, &c->in);
    tl_layout_init(&Lp, &c->prod);
    tl_layout_init(&Lo, &c->out);
    int nd = c->prod.ndims, noff = FX * FY;
    /* Weight grid: the product grid restricted to f, c, x, y. */
    int64_t wstride[TSR_TILE_MAX_DIMS], nw = 1;
    for (int i = nd - 1; i >= 0; i--) {
        wstride[i] = weight_dim(p, i) ? nw : 0;
        if (weight_dim(p, i)) nw *= Lp.ext[i];
    }
    c->nfilt = nw * noff;
    c->filt = tsr_calloc_array((size_t)c->nfilt, sizeof *c->filt);
    c->nuse = Lp.ntiles * noff;
    c->use = tsr_calloc_array((size_t)c->nuse, sizeof *c->use);
    double *buf = tsr_calloc_array((size_t)Lp.slots, sizeof *buf);
    uint8_t *made = tsr_calloc((size_t)c->nfilt);
    if (!c->filt || !c->use || !buf || !made) st = tsr_fail(TSR_ERR_NOMEM, "out of memory");
    int64_t nu = 0;
    double pscale = be->scales[level];
    for (int64_t t = 0; t < Lp.ntiles && st == TSR_OK; t++) {
        int64_t kp[TSR_TILE_MAX_DIMS], widx = 0;
        for (int i = 0; i < nd; i++) {
            kp[i] = (t / Lp.tstride[i]) % Lp.ext[i];
            widx += kp[i] * wstride[i];
        }
        for (int dx = 0; dx < FX && st == TSR_OK; dx++) {
            for (int dy = 0; dy < FY && st == TSR_OK; dy++) {
                int64_t fi = widx * noff + dx * FY + dy;
                if (!made[fi]) {
                    made[fi] = 1;
                    if (build_filter(c, &Lp, kp, dx, dy, filters, buf))
                        st = tsr_bvec_encode(be, buf, level, pscale, &c->filt[fi]);
                }
                if (st != TSR_OK || !c->filt[fi]) continue;
                /* Source tile and rotation. */
                int64_t src = 0, step = 0;
                for (int i = 0; i < nd; i++) {
                    int64_t k = kp[i];
                    if (i == p->x_dim || i == p->y_dim) {
                        int a = i == p->y_dim;
                        int s = a ? p->stride_y : p->stride_x, pad = a ? p->pad_y : p->pad_x;
                        int64_t e = Li.ext[i];
                        int64_t v = s * kp[i] + (a ? dy : dx) - pad;
                        int64_t q = floor_div(v, e);
                        k = v - q * e;
                        step += q * Li.stride[i];
                    } else if (i == p->f_dim) {
                        k = 0;
                    }
                    src += k * Li.tstride[i];
                }
                c->use[nu++] = (conv_use){
                    .src = src, .step = tsr_backend_norm_step(be, step), .prod = t, .filt = fi
                };
            }
        }
    }
    c->nuse = nu;
    if (st == TSR_OK && nu > 0) qsort(c->use, (size_t)nu, sizeof *c->use, cmp_use);
    for (int64_t i = 0, j; i < nu; i = j) {
        for (j = i; j < nu && c->use[j].src == c->use[i].src;) j++;
        if (j - i > c->max_group) c->max_group = j - i;
    }
    if (st == TSR_OK && bias) {
        c->nout = Lo.ntiles;
        c->bias = tsr_calloc_array((size_t)c->nout, sizeof *c->bias);
        tsr_free(buf);
        buf = tsr_calloc_array((size_t)Lo.slots, sizeof *buf);
        if (!c->bias || !buf) st = tsr_fail(TSR_ERR_NOMEM, "out of memory");
        for (int64_t t = 0; t < Lo.ntiles && st == TSR_OK; t++) {
            int64_t ko[TSR_TILE_MAX_DIMS];
            for (int i = 0; i < nd; i++) ko[i] = (t / Lo.tstride[i]) % Lo.ext[i];
            if (build_bias(c, &Lo, ko, bias, buf))
                st = tsr_bvec_encode(be, buf, level - 1, scale * pscale / be->primes[level],
                                     &c->bias[t]);
        }
    }
    tsr_free(buf);
    tsr_free(made);
    if (st != TSR_OK) {
        tsr_tile_conv_free(c);
        return st;
    }
    *out = c;
    return TSR_OK;
}

/* Same geometry, ignoring `?` flags (the filters clear them anyway). */
static int same_geometry(const tsr_tile_shape *a, const tsr_tile_shape *b) {
    if (a->ndims != b->ndims) return 0;
    for (int i = 0; i < a->ndims; i++) {
        const tsr_tile_dim *x = &a->dim[i], *y = &b->dim[i];
        if (x->size != y->size || x->tile != y->tile || !x->dup != !y->dup ||
            !x->interleaved != !y->interleaved)
            return 0;
    }
    return 1;
}

tsr_status tsr_tile_conv_apply(const tsr_tile_conv *c, const tsr_tile *image, tsr_tile **out) {
    *out = NULL;
    tsr_backend *be = c->be;
    if (image->be != be)
        return tsr_fail(TSR_ERR_MISMATCH, "conv: the image lives on another backend");
    if (!image->encrypted)
        return tsr_fail(TSR_ERR_INVALID_ARG, "conv: the image must be encrypted");
    if (!same_geometry(&image->shape, &c->in))
        return tsr_fail(TSR_ERR_SHAPE, "conv: prepared for images %s, got %s", tl_fmt(&c->in),
                        tl_fmt2(&image->shape));
    int il = tsr_tile_level(image);
    if (il < c->level || (il == c->level && !tl_same_scale(tsr_tile_scale(image), c->scale)))
        return tsr_fail(TSR_ERR_LEVEL,
                        "conv: prepared for images at level %d and scale 2^%.3f, got level %d "
                        "and scale 2^%.3f; prepare it for the image's level (or bring the image "
                        "there with tsr_tile_set_level_scale)",
                        c->level, log2(c->scale), il, log2(tsr_tile_scale(image)));
    tsr_tile_shape os = c->out;
    /* Batch dimensions keep the image's unknowns. */
    for (int i = 0; i < os.ndims; i++)
        if (!weight_dim(&c->p, i)) os.dim[i].unknown = image->shape.dim[i].unknown;
    tl_normalize(&os);
    tsr_tile *r, *acc = NULL;
    TSR_TRY(tl_new(be, &os, 1, &r));
    tsr_status st = tl_new(be, &c->prod, 1, &acc);
    tl_layout Lp, Lo;
    tl_layout_init(&Lp, &c->prod);
    tl_layout_init(&Lo, &c->out);
    int64_t *steps = tsr_calloc_array((size_t)c->max_group + 1, sizeof *steps);
    tsr_bvec **rot = tsr_calloc_array((size_t)c->max_group + 1, sizeof *rot);
    if (st == TSR_OK && (!steps || !rot)) st = tsr_fail(TSR_ERR_NOMEM, "out of memory in conv");
    tsr_bvec *src = NULL, *scratch = NULL;
    int64_t i = 0;
    while (st == TSR_OK && i < c->nuse) {
        /* One hoisted rotation group per image tile. */
        int64_t j = i, ns = 0;
        while (j < c->nuse && c->use[j].src == c->use[i].src) {
            if (ns == 0 || steps[ns - 1] != c->use[j].step) steps[ns++] = c->use[j].step;
            j++;
        }
        st = tsr_bvec_copy(be, image->v[c->use[i].src], &src);
        if (st == TSR_OK) st = tl_vec_to(be, src, c->level, c->scale);
        if (st == TSR_OK) st = tsr_bvec_rotate_many(be, src, steps, (size_t)ns, rot);
        tsr_bvec_free(be, src);
        src = NULL;
        if (st != TSR_OK) break;
        for (int64_t u = i; u < j && st == TSR_OK; u++) {
            int64_t k = 0;
            while (steps[k] != c->use[u].step) k++;
            const tsr_bvec *f = c->filt[c->use[u].filt];
            int64_t pt = c->use[u].prod;
            if (!acc->v[pt]) {
                st = tsr_bvec_mul_new(be, rot[k], f, &acc->v[pt]);
            } else {
                /* Later products go through one scratch vector: no allocation each time. */
                st = scratch ? tsr_bvec_mul_to(be, scratch, rot[k], f)
                             : tsr_bvec_mul_new(be, rot[k], f, &scratch);
                if (st == TSR_OK) st = tsr_bvec_add(be, acc->v[pt], scratch);
            }
        }
        for (int64_t k = 0; k < ns; k++) tsr_bvec_free(be, rot[k]);
        i = j;
    }
    tsr_free(steps);
    tsr_free(rot);
    tsr_bvec_free(be, scratch);
    /* Sum the channel tiles into the output tiles, then rescale once. An output tile
     * that no filter tile reached is zero: its channel sum needs no rotation. */
    uint8_t *ozero = tsr_alloc((size_t)r->ntiles);
    if (st == TSR_OK && !ozero) st = tsr_fail(TSR_ERR_NOMEM, "out of memory in conv");
    if (ozero) memset(ozero, 1, (size_t)r->ntiles);
    for (int64_t t = 0; t < Lp.ntiles && st == TSR_OK; t++) {
        int64_t o = tl_operand_tile(&Lp, &Lo, t);
        if (acc->v[t]) ozero[o] = 0;
        if (!acc->v[t]) {
            /* Nothing reached this tile (all-zero filters): an encryption of zero. */
            st = tsr_bvec_copy(be, image->v[0], &acc->v[t]);
            if (st == TSR_OK) st = tl_vec_to(be, acc->v[t], c->level, c->scale);
            if (st == TSR_OK) st = tsr_bvec_mul_const(be, acc->v[t], 0.0, be->scales[c->level]);
        }
        if (st != TSR_OK) break;
        if (!r->v[o]) {
            r->v[o] = acc->v[t];
            acc->v[t] = NULL;
        } else {
            st = tsr_bvec_add(be, r->v[o], acc->v[t]);
        }
    }
    for (int64_t t = 0; t < r->ntiles && st == TSR_OK; t++) st = tsr_bvec_rescale(be, r->v[t]);
    tsr_tile_free(acc);
    if (st == TSR_OK && c->sum_channels && r->shape.dim[c->p.c_dim].tile > 1)
        st = tl_rotate_sum_skip(r, c->p.c_dim, ozero);
    tsr_free(ozero);
    for (int64_t t = 0; c->bias && t < r->ntiles && st == TSR_OK; t++)
        if (c->bias[t]) st = tsr_bvec_add(be, r->v[t], c->bias[t]);
    if (st != TSR_OK) {
        tsr_tile_free(r);
        return st;
    }
    *out = r;
    return TSR_OK;
}
