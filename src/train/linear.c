/*
 * train/linear.c - dense and 2-D convolution layers: fast kernels on
 * OpenBLAS SGEMM (convolution through im2col) and their naive references.
 */
#include "train/layers.h"

#include <cblas.h>
#include <string.h>

/* ---- dense --------------------------------------------------------------- */

void tsr_dense_forward(float *out, const float *inp, const float *w, const float *b, int B, int IC,
                       int OC) {
    if (b)
        for (int i = 0; i < B; i++) memcpy(out + (size_t)i * OC, b, (size_t)OC * sizeof *out);
    /* out (B, OC) = inp (B, IC) · wᵀ (IC, OC) [+ out] */
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, B, OC, IC, 1.0f, inp, IC, w, IC,
                b ? 1.0f : 0.0f, out, OC);
}

void tsr_dense_backward(float *dinp, float *dw, float *db, const float *dout, const float *inp,
                        const float *w, int B, int IC, int OC) {
    /* dinp (B, IC) += dout (B, OC) · w (OC, IC) */
    if (dinp)
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, B, IC, OC, 1.0f, dout, OC, w, IC,
                    1.0f, dinp, IC);
    /* dw (OC, IC) += doutᵀ (OC, B) · inp (B, IC) */
    if (dw)
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, OC, IC, B, 1.0f, dout, OC, inp, IC,
                    1.0f, dw, IC);
    if (db)
        for (int i = 0; i < B; i++) {
            const float *d = dout + (size_t)i * OC;
            for (int o = 0; o < OC; o++) db[o] += d[o];
        }
}

void tsr_dense_forward_ref(float *out, const float *inp, const float *w, const float *b, int B,
                           int IC, int OC) {
    for (int i = 0; i < B; i++)
        for (int o = 0; o < OC; o++) {
            double acc = b ? b[o] : 0.0;
            for (int k = 0; k < IC; k++)
                acc += (double)inp[(size_t)i * IC + k] * w[(size_t)o * IC + k];
            out[(size_t)i * OC + o] = (float)acc;
        }
}

void tsr_dense_backward_ref(float *dinp, float *dw, float *db, const float *dout, const float *inp,
                            const float *w, int B, int IC, int OC) {
    for (int i = 0; i < B; i++)
        for (int o = 0; o < OC; o++) {
            float d = dout[(size_t)i * OC + o];
            if (db) db[o] += d;
            for (int k = 0; k < IC; k++) {
                if (dinp) dinp[(size_t)i * IC + k] += d * w[(size_t)o * IC + k];
                if (dw) dw[(size_t)o * IC + k] += d * inp[(size_t)i * IC + k];
            }
        }
}

/* ---- convolution geometry -------------------------------------------------- */

int tsr_conv_geom_finish(tsr_conv_geom *g) {
    if (g->C < 1 || g->H < 1 || g->W < 1 || g->OC < 1 || g->KH < 1 || g->KW < 1 || g->SH < 1 ||
        g->SW < 1 || g->PH < 0 || g->PW < 0 || g->PH >= g->KH || g->PW >= g->KW)
        return -1;
    if (g->C > 65536 || g->H > 65536 || g->W > 65536 || g->OC > 65536 || g->KH > 1024 ||
        g->KW > 1024 || g->SH > 1024 || g->SW > 1024)
        return -1;
    long hp = (long)g->H + 2L * g->PH, wp = (long)g->W + 2L * g->PW;
    if (hp < g->KH || wp < g->KW) return -1;
    g->OH = (int)((hp - g->KH) / g->SH + 1);
    g->OW = (int)((wp - g->KW) / g->SW + 1);
    return 0;
}

/*
 * The im2col matrix of a whole batch is CKK times larger than the input;
 * streaming it through memory made convolution memory-bound. The fast
 * kernels therefore work on chunks of samples whose im2col matrix fits in
 * about CHUNK_BYTES (L2-sized), so im2col, GEMM packing and the scatter to
 * NCHW all hit the cache.
 */
#define CHUNK_BYTES (192u * 1024u)

static int chunk_samples(const tsr_conv_geom *g, int B) {
    size_t per = ((size_t)g->C * g->KH * g->KW + (size_t)g->OC) * g->OH * g->OW * sizeof(float);
    size_t s = per ? CHUNK_BYTES / per : 1;
    if (s < 1) s = 1;
    return (size_t)B < s ? B : (int)s;
}

size_t tsr_conv2d_scratch_floats(const tsr_conv_geom *g, int B) {
    size_t ohw = (size_t)g->OH * g->OW, ckk = (size_t)g->C * g->KH * g->KW;
    return (ckk + (size_t)g->OC) * ohw * (size_t)chunk_samples(g, B < 1 ? 1 : B);
}

/*
 * im2col over a slice of B samples:
 * col (C·KH·KW, B·OH·OW), col[(c KH + kh) KW + kw][b OHW + oh OW + ow]
 *   = inp[b][c][oh SH - PH + kh][ow SW - PW + kw] (0 outside the image).
 */
/*
 * Stride 1 with OW == W (and OH == H): output position p = oh·W + ow reads
 * input p + (kh - PH)·W + (kw - PW), a linear shift of the whole plane, except
 * rows shifted off the image and columns that wrap around a row edge, which
 * are padding (zero).
 */
static int is_same_stride1(const tsr_conv_geom *g) {
    return g->SH == 1 && g->SW == 1 && g->OW == g->W && g->OH == g->H;
}

/* Output range [p0, p1) of a plane whose source row is in the image, for offset (kh, kw), and
 * within it the range [q0, q1) whose source p + off lies inside the plane: the positions of
 * [p0, q0) and [q1, p1) wrap around the first or last row and are padding. */
static void shift_range(const tsr_conv_geom *g, int kh, int *p0, int *p1, long *off, int kw,
                        int *q0, int *q1) {
    int oh0 = g->PH - kh, oh1 = g->H + g->PH - kh; /* 0 <= oh + kh - PH < H */
    if (oh0 < 0) oh0 = 0;
    if (oh1 > g->OH) oh1 = g->OH;
    *p0 = oh0 * g->W;
    *p1 = oh1 > oh0 ? oh1 * g->W : *p0;
    *off = (long)(kh - g->PH) * g->W + (kw - g->PW);
    long hw = (long)g->H * g->W, a = *p0, b = *p1;
    if (a < -*off) a = -*off;
    if (b > hw - *off) b = hw - *off;
    if (b < a) b = a;
    *q0 = (int)a;
    *q1 = (int)b;
}

static void im2col_same(float *col, const float *inp, int B, const tsr_conv_geom *g) {
    const int W = g->W, dw0 = g->PW;
    const size_t hw = (size_t)g->H * W, ncol = hw * (size_t)B;
    for (int c = 0; c < g->C; c++)
        for (int kh = 0; kh < g->KH; kh++)
            for (int kw = 0; kw < g->KW; kw++) {
                float *row = col + ((size_t)(c * g->KH + kh) * g->KW + kw) * ncol;
                int p0, p1, q0, q1;
                long off;
                shift_range(g, kh, &p0, &p1, &off, kw, &q0, &q1);
                int dw = kw - dw0; /* columns ow with ow + dw outside [0, W) are padding */
                for (int b = 0; b < B; b++) {
                    const float *src = inp + ((size_t)b * g->C + c) * hw;
                    float *dst = row + (size_t)b * hw;
                    for (int p = 0; p < q0; p++) dst[p] = 0;
#pragma omp simd
                    for (int p = q0; p < q1; p++) dst[p] = src[p + off];
                    for (int p = q1; p < (int)hw; p++) dst[p] = 0;
                    /* column-outer loops: strided stores, not one memset call per row */
                    if (dw < 0)
                        for (int ow = 0; ow < -dw; ow++)
                            for (int r = p0; r < p1; r += W) dst[r + ow] = 0;
                    else if (dw > 0)
                        for (int ow = W - dw; ow < W; ow++)
                            for (int r = p0; r < p1; r += W) dst[r + ow] = 0;
                }
            }
}

static void im2col(float *col, const float *inp, int B, const tsr_conv_geom *g) {
    if (is_same_stride1(g)) {
        im2col_same(col, inp, B, g);
        return;
    }
    const int OH = g->OH, OW = g->OW, H = g->H, W = g->W;
    const size_t ohw = (size_t)OH * OW, ncol = ohw * (size_t)B;
    for (int c = 0; c < g->C; c++)
        for (int kh = 0; kh < g->KH; kh++)
            for (int kw = 0; kw < g->KW; kw++) {
                float *row = col + ((size_t)(c * g->KH + kh) * g->KW + kw) * ncol;
                /* valid ow range: 0 <= ow*SW - PW + kw < W */
                int ow0 = 0, ow1 = OW;
                while (ow0 < OW && ow0 * g->SW - g->PW + kw < 0) ow0++;
                while (ow1 > ow0 && (ow1 - 1) * g->SW - g->PW + kw >= W) ow1--;
                for (int b = 0; b < B; b++) {
                    const float *plane = inp + ((size_t)b * g->C + c) * H * W;
                    float *dst = row + (size_t)b * ohw;
                    for (int oh = 0; oh < OH; oh++, dst += OW) {
                        int ih = oh * g->SH - g->PH + kh;
                        if (ih < 0 || ih >= H) {
                            for (int ow = 0; ow < OW; ow++) dst[ow] = 0;
                            continue;
                        }
                        const float *src = plane + (size_t)ih * W - g->PW + kw;
                        for (int ow = 0; ow < ow0; ow++) dst[ow] = 0;
                        if (g->SW == 1) /* rows are short: a loop beats a memcpy call */
#pragma omp simd
                            for (int ow = ow0; ow < ow1; ow++) dst[ow] = src[ow];
                        else
                            for (int ow = ow0; ow < ow1; ow++) dst[ow] = src[ow * g->SW];
                        for (int ow = ow1; ow < OW; ow++) dst[ow] = 0;
                    }
                }
            }
}

/* col2im for is_same_stride1 geometries; clears the padding entries of col first. */
static void col2im_same(float *dinp, float *col, int B, const tsr_conv_geom *g) {
    const int W = g->W, dw0 = g->PW;
    const size_t hw = (size_t)g->H * W, ncol = hw * (size_t)B;
    for (int c = 0; c < g->C; c++)
        for (int kh = 0; kh < g->KH; kh++)
            for (int kw = 0; kw < g->KW; kw++) {
                float *row = col + ((size_t)(c * g->KH + kh) * g->KW + kw) * ncol;
                int p0, p1, q0, q1;
                long off;
                shift_range(g, kh, &p0, &p1, &off, kw, &q0, &q1);
                int dw = kw - dw0;
                for (int b = 0; b < B; b++) {
                    float *dst = dinp + ((size_t)b * g->C + c) * hw;
                    float *src = row + (size_t)b * hw;
                    if (dw < 0)
                        for (int ow = 0; ow < -dw; ow++)
                            for (int r = p0; r < p1; r += W) src[r + ow] = 0;
                    else if (dw > 0)
                        for (int ow = W - dw; ow < W; ow++)
                            for (int r = p0; r < p1; r += W) src[r + ow] = 0;
#pragma omp simd
                    for (int p = q0; p < q1; p++) dst[p + off] += src[p];
                }
            }
}

/* col2im: the adjoint of im2col, accumulating into dinp (B, C, H, W). col is clobbered. */
static void col2im(float *dinp, float *col, int B, const tsr_conv_geom *g) {
    if (is_same_stride1(g)) {
        col2im_same(dinp, col, B, g);
        return;
    }
    const int OH = g->OH, OW = g->OW, H = g->H, W = g->W;
    const size_t ohw = (size_t)OH * OW, ncol = ohw * (size_t)B;
    for (int c = 0; c < g->C; c++)
        for (int kh = 0; kh < g->KH; kh++)
            for (int kw = 0; kw < g->KW; kw++) {
                const float *row = col + ((size_t)(c * g->KH + kh) * g->KW + kw) * ncol;
                int ow0 = 0, ow1 = OW;
                while (ow0 < OW && ow0 * g->SW - g->PW + kw < 0) ow0++;
                while (ow1 > ow0 && (ow1 - 1) * g->SW - g->PW + kw >= W) ow1--;
                for (int b = 0; b < B; b++) {
                    float *plane = dinp + ((size_t)b * g->C + c) * H * W;
                    const float *src = row + (size_t)b * ohw;
                    for (int oh = 0; oh < OH; oh++, src += OW) {
                        int ih = oh * g->SH - g->PH + kh;
                        if (ih < 0 || ih >= H) continue;
                        float *dst = plane + (size_t)ih * W - g->PW + kw;
                        if (g->SW == 1)
#pragma omp simd
                            for (int ow = ow0; ow < ow1; ow++) dst[ow] += src[ow];
                        else
                            for (int ow = ow0; ow < ow1; ow++) dst[ow * g->SW] += src[ow];
                    }
                }
            }
}

/* Forward of one chunk of B samples (see tsr_conv2d_forward). */
static void conv_forward_chunk(float *out, float *scratch, const float *inp, const float *w,
                               const float *b, int B, const tsr_conv_geom *g) {
    const size_t ohw = (size_t)g->OH * g->OW, ncol = ohw * (size_t)B;
    const int ckk = g->C * g->KH * g->KW;
    float *col = scratch;                      /* (CKK, B·OHW) */
    float *tmp = scratch + (size_t)ckk * ncol; /* (OC, B·OHW) */
    im2col(col, inp, B, g);
    /* tmp (OC, B·OHW) = w (OC, CKK) · col (CKK, B·OHW) */
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, g->OC, (int)ncol, ckk, 1.0f, w, ckk, col,
                (int)ncol, 0.0f, tmp, (int)ncol);
    /* out[b][oc][p] = tmp[oc][b·OHW + p] + bias */
    for (int i = 0; i < B; i++)
        for (int oc = 0; oc < g->OC; oc++) {
            float *dst = out + ((size_t)i * g->OC + oc) * ohw;
            const float *src = tmp + (size_t)oc * ncol + (size_t)i * ohw;
            float bias = b ? b[oc] : 0.0f;
#pragma omp simd
            for (size_t p = 0; p < ohw; p++) dst[p] = src[p] + bias;
        }
}

static void conv_backward_chunk(float *dinp, float *dw, float *db, float *scratch,
                                const float *dout, const float *inp, const float *w, int B,
                                const tsr_conv_geom *g) {
    const size_t ohw = (size_t)g->OH * g->OW, ncol = ohw * (size_t)B;
    const int ckk = g->C * g->KH * g->KW;
    float *col = scratch;                       /* (CKK, B·OHW) */
    float *dtmp = scratch + (size_t)ckk * ncol; /* (OC, B·OHW) */
    for (int i = 0; i < B; i++)
        for (int oc = 0; oc < g->OC; oc++) {
            const float *src = dout + ((size_t)i * g->OC + oc) * ohw;
            float *dst = dtmp + (size_t)oc * ncol + (size_t)i * ohw;
            float s = 0;
#pragma omp simd reduction(+ : s)
            for (size_t p = 0; p < ohw; p++) {
                dst[p] = src[p];
                s += src[p];
            }
            if (db) db[oc] += s;
        }
    if (dw) {
        im2col(col, inp, B, g);
        /* dw (OC, CKK) += dtmp (OC, B·OHW) · colᵀ (B·OHW, CKK) */
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, g->OC, ckk, (int)ncol, 1.0f, dtmp,
                    (int)ncol, col, (int)ncol, 1.0f, dw, ckk);
    }
    if (dinp) {
        /* dcol (CKK, B·OHW) = wᵀ (CKK, OC) · dtmp (OC, B·OHW), reusing col */
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, ckk, (int)ncol, g->OC, 1.0f, w, ckk,
                    dtmp, (int)ncol, 0.0f, col, (int)ncol);
        col2im(dinp, col, B, g);
    }
}

void tsr_conv2d_forward(float *out, float *scratch, const float *inp, const float *w,
                        const float *b, int B, const tsr_conv_geom *g) {
    const size_t in_n = (size_t)g->C * g->H * g->W, out_n = (size_t)g->OC * g->OH * g->OW;
    const int S = chunk_samples(g, B);
    for (int i = 0; i < B; i += S)
        conv_forward_chunk(out + (size_t)i * out_n, scratch, inp + (size_t)i * in_n, w, b,
                           B - i < S ? B - i : S, g);
}

void tsr_conv2d_backward(float *dinp, float *dw, float *db, float *scratch, const float *dout,
                         const float *inp, const float *w, int B, const tsr_conv_geom *g) {
    const size_t in_n = (size_t)g->C * g->H * g->W, out_n = (size_t)g->OC * g->OH * g->OW;
    const int S = chunk_samples(g, B);
    for (int i = 0; i < B; i += S)
        conv_backward_chunk(dinp ? dinp + (size_t)i * in_n : NULL, dw, db, scratch,
                            dout + (size_t)i * out_n, inp + (size_t)i * in_n, w,
                            B - i < S ? B - i : S, g);
}

void tsr_conv2d_forward_ref(float *out, const float *inp, const float *w, const float *b, int B,
                            const tsr_conv_geom *g) {
    for (int i = 0; i < B; i++)
        for (int oc = 0; oc < g->OC; oc++)
            for (int oh = 0; oh < g->OH; oh++)
                for (int ow = 0; ow < g->OW; ow++) {
                    double acc = b ? b[oc] : 0.0;
                    for (int c = 0; c < g->C; c++)
                        for (int kh = 0; kh < g->KH; kh++)
                            for (int kw = 0; kw < g->KW; kw++) {
                                int ih = oh * g->SH - g->PH + kh, iw = ow * g->SW - g->PW + kw;
                                if (ih < 0 || ih >= g->H || iw < 0 || iw >= g->W) continue;
                                acc +=
                                    (double)inp[(((size_t)i * g->C + c) * g->H + ih) * g->W + iw] *
                                    w[(((size_t)oc * g->C + c) * g->KH + kh) * g->KW + kw];
                            }
                    out[(((size_t)i * g->OC + oc) * g->OH + oh) * g->OW + ow] = (float)acc;
                }
}

void tsr_conv2d_backward_ref(float *dinp, float *dw, float *db, const float *dout, const float *inp,
                             const float *w, int B, const tsr_conv_geom *g) {
    for (int i = 0; i < B; i++)
        for (int oc = 0; oc < g->OC; oc++)
            for (int oh = 0; oh < g->OH; oh++)
                for (int ow = 0; ow < g->OW; ow++) {
                    float d = dout[(((size_t)i * g->OC + oc) * g->OH + oh) * g->OW + ow];
                    if (db) db[oc] += d;
                    for (int c = 0; c < g->C; c++)
                        for (int kh = 0; kh < g->KH; kh++)
                            for (int kw = 0; kw < g->KW; kw++) {
                                int ih = oh * g->SH - g->PH + kh, iw = ow * g->SW - g->PW + kw;
                                if (ih < 0 || ih >= g->H || iw < 0 || iw >= g->W) continue;
                                size_t ii = (((size_t)i * g->C + c) * g->H + ih) * g->W + iw;
                                size_t wi = (((size_t)oc * g->C + c) * g->KH + kh) * g->KW + kw;
                                if (dinp) dinp[ii] += d * w[wi];
                                if (dw) dw[wi] += d * inp[ii];
                            }
                }
}
