/*
 * ring/kernels_ifma.c - AVX-512 IFMA52 kernels: NTTs and products for primes q < 2^50,
 * inner products and conversion rows for any q < 2^62 (52-bit limbs above 2^50).
 *
 * Radix 2^52 Harvey butterflies in the style of Intel HEXL (Boemer et al.,
 * "Intel HEXL: Accelerating Homomorphic Encryption with Intel AVX512-IFMA52",
 * WAHC 2021): vpmadd52luq / vpmadd52huq multiply the low 52 bits of each
 * 64-bit lane, so with q < 2^50 every lazy value (< 4q) is a valid operand.
 * Shoup constants in radix 2^52, floor(w * 2^52 / q), come from the
 * fwd52_sh / inv52_sh tables that ntt.c builds for every q < 2^50.
 *
 * Forward NTT layout: radix-4 passes (two stages per load/store) over the
 * whole array while sub-transforms exceed 4096 words (32 KiB, so that the
 * rest runs in L1), then each 4096-word block is finished depth-first:
 * radix-4 passes, and a final in-register pass for the last four or five
 * stages (gaps 16/8 as whole vectors, 4/2/1 with lane shuffles), which also
 * reduces the output to [0, q). The inverse mirrors it.
 *
 * Every function carries its own target attribute: the library is built for
 * baseline x86-64 and this file only runs after run-time CPU detection.
 */
#include "ring/kernels.h"
#include "ring/rns.h"

#include <string.h>

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>

#define TGT        __attribute__((target("avx512f,avx512vl,avx512dq,avx512bw,avx512ifma")))
#define INL        inline __attribute__((always_inline))
#define IFMA_MAX_Q ((uint64_t)1 << 50)
#define BLOCK      4096 /* words per L1-resident sub-transform */
/* Products per Montgomery chunk at most: madd52lo adds values < 2^52 into 64-bit lanes,
 * and 4096 (2^52 - 1) < 2^64 (small moduli would otherwise allow chunks of ~2^44). */
#define IFMA_MAX_CHUNK 4096

typedef struct ifma_c {
    __m512i q, q2, corr, negq, mask, zero;
    int lazy; /* q < 2^49: forward values may grow to 8q, correct every other stage */
} ifma_c;

TGT static INL ifma_c ifma_consts(uint64_t q) {
    ifma_c c;
    c.q = _mm512_set1_epi64((long long)q);
    c.q2 = _mm512_set1_epi64((long long)(2 * q));
    c.lazy = q < ((uint64_t)1 << 49);
    c.corr = _mm512_set1_epi64((long long)(c.lazy ? 4 * q : 2 * q));
    c.negq = _mm512_set1_epi64((long long)(((uint64_t)1 << 52) - q));
    c.mask = _mm512_set1_epi64((long long)(((uint64_t)1 << 52) - 1));
    c.zero = _mm512_setzero_si512();
    return c;
}

/* x - m if x >= m else x (unsigned; x < 2m). */
TGT static INL __m512i csub(__m512i x, __m512i m) {
    return _mm512_min_epu64(x, _mm512_sub_epi64(x, m));
}

/* y * w mod q in [0, 2q) for y < 2^52, w < q, wp = floor(w 2^52 / q). */
TGT static INL __m512i mulmod_lazy(__m512i y, __m512i w, __m512i wp, const ifma_c c) {
    __m512i qh = _mm512_madd52hi_epu64(c.zero, y, wp);
    __m512i t = _mm512_madd52lo_epu64(c.zero, y, w);
    t = _mm512_madd52lo_epu64(t, qh, c.negq); /* + lo52(-qh q): = y w - qh q (mod 2^52) */
    return _mm512_and_si512(t, c.mask);
}

/*
 * Harvey forward butterfly x, y -> x + wy, x - wy + 2q with T = wy mod q in
 * [0, 2q). Bounds: standard (q < 2^50): inputs < 4q, x corrected to < 2q
 * every stage, outputs < 4q. Lazy (q < 2^49): "correcting" stages take
 * inputs < 8q and correct x to < 4q (outputs < 6q); the stage after skips
 * the correction (inputs < 6q, outputs < 8q); 8q < 2^52 keeps every value a
 * valid IFMA operand.
 */
TGT static INL void bf_fwd(__m512i *x, __m512i *y, __m512i w, __m512i wp, const ifma_c c,
                           int correct) {
    __m512i xx = correct ? csub(*x, c.corr) : *x;
    __m512i t = mulmod_lazy(*y, w, wp, c);
    *x = _mm512_add_epi64(xx, t);
    *y = _mm512_sub_epi64(_mm512_add_epi64(xx, c.q2), t);
}

/* Harvey inverse butterfly: x, y < 2q -> x + y, (x - y + 2q) w, both < 2q. */
TGT static INL void bf_inv(__m512i *x, __m512i *y, __m512i w, __m512i wp, const ifma_c c) {
    __m512i xx = *x, yy = *y;
    *x = csub(_mm512_add_epi64(xx, yy), c.q2);
    *y = mulmod_lazy(_mm512_add_epi64(_mm512_sub_epi64(xx, yy), c.q2), w, wp, c);
}

/* Forward output (< 8q lazy, < 4q standard) to [0, q). */
TGT static INL __m512i fwd_reduce(__m512i x, const ifma_c c) {
    if (c.lazy) x = csub(x, _mm512_add_epi64(c.q2, c.q2));
    return csub(csub(x, c.q2), c.q);
}

TGT static INL __m512i bcast(uint64_t v) {
    return _mm512_set1_epi64((long long)v);
}

#define LOAD(p)     _mm512_loadu_si512((const void *)(p))
#define STORE(p, v) _mm512_storeu_si512((void *)(p), (v))

/*
 * Every pass below works on a window a[0 .. e1) of the array whose word 0 is
 * word `base` of the transform: data indices are window-relative, twiddle
 * indices use base + e. A full transform has base = 0; an inner block of a
 * split transform has base = b * B. The outer stages of a split transform run
 * on a buffer of segments with base = 0 (their twiddles depend on the block
 * index alone, see ntt.h).
 */

/*
 * Forward radix-4 pass over elements [e0, e1) for stages with M and 2M
 * blocks (gaps g and g/2, g/2 >= 8). Blocks of stage M are 2g words.
 */
TGT static INL void fwd_radix4(const tsr_ntt_table *t, uint64_t *a, const uint64_t *src, size_t M,
                               size_t g, size_t e0, size_t e1, size_t base, const ifma_c c,
                               tsr_prefetch *pf) {
    const size_t h = g / 2;
    const uint64_t *w = t->fwd, *wp = t->fwd52_sh;
    size_t ib = (base + e0) / (2 * g);
    for (size_t e = e0; e < e1; e += 2 * g, ib++) {
        const __m512i w1 = bcast(w[M + ib]), w1p = bcast(wp[M + ib]);
        const __m512i w2 = bcast(w[2 * M + 2 * ib]), w2p = bcast(wp[2 * M + 2 * ib]);
        const __m512i w3 = bcast(w[2 * M + 2 * ib + 1]), w3p = bcast(wp[2 * M + 2 * ib + 1]);
        uint64_t *p0 = a + e, *p1 = p0 + h, *p2 = p0 + g, *p3 = p2 + h;
        const uint64_t *s0 = src + e, *s1 = s0 + h, *s2 = s0 + g, *s3 = s2 + h;
        for (size_t j = 0; j < h; j += 8) {
            tsr_prefetch_step(pf);
            __m512i A = LOAD(s0 + j), B = LOAD(s1 + j), C = LOAD(s2 + j), D = LOAD(s3 + j);
            bf_fwd(&A, &C, w1, w1p, c, 1);
            bf_fwd(&B, &D, w1, w1p, c, 1);
            bf_fwd(&A, &B, w2, w2p, c, !c.lazy);
            bf_fwd(&C, &D, w3, w3p, c, !c.lazy);
            STORE(p0 + j, A);
            STORE(p1 + j, B);
            STORE(p2 + j, C);
            STORE(p3 + j, D);
        }
    }
}

/* Forward radix-2 pass (one correcting stage with M blocks, gap g >= 8). */
TGT static INL void fwd_radix2(const tsr_ntt_table *t, uint64_t *a, size_t M, size_t g, size_t e0,
                               size_t e1, size_t base, const ifma_c c) {
    size_t ib = (base + e0) / (2 * g);
    for (size_t e = e0; e < e1; e += 2 * g, ib++) {
        const __m512i w = bcast(t->fwd[M + ib]), wp = bcast(t->fwd52_sh[M + ib]);
        uint64_t *p0 = a + e, *p1 = p0 + g;
        for (size_t j = 0; j < g; j += 8) {
            __m512i X = LOAD(p0 + j), Y = LOAD(p1 + j);
            bf_fwd(&X, &Y, w, wp, c, 1);
            STORE(p0 + j, X);
            STORE(p1 + j, Y);
        }
    }
}

/*
 * Interleave of two vectors: lo = [x0 y0 x1 y1 x2 y2 x3 y3], hi = [x4 y4 ... x7 y7].
 * Applied to 16 words (v0, v1) it moves the element index bits one place,
 * so four applications are the identity. The last three forward stages use
 * it between stages: with 16 words a0..a15 in natural order,
 *   gap 4: X = [a0 a8 a1 a9 a2 a10 a3 a11], Y = [a4 a12 ...]: lane l is in
 *          block l mod 2 -> twiddles = the 2 twiddles broadcast (128-bit);
 *   gap 2: X = [a0 a4 a8 a12 a1 a5 a9 a13]: lane l in block l mod 4 ->
 *          the 4 twiddles broadcast (256-bit);
 *   gap 1: X = evens, Y = odds: lane l in block l -> 8 contiguous twiddles;
 * so every twiddle vector is a plain (broadcast) load, and one more
 * interleave restores natural order. The inverse runs it backwards with the
 * matching de-interleave.
 */
TGT static INL void ilv(__m512i *x, __m512i *y) {
    const __m512i lo = _mm512_set_epi64(11, 3, 10, 2, 9, 1, 8, 0);
    const __m512i hi = _mm512_set_epi64(15, 7, 14, 6, 13, 5, 12, 4);
    __m512i a = _mm512_permutex2var_epi64(*x, lo, *y);
    *y = _mm512_permutex2var_epi64(*x, hi, *y);
    *x = a;
}

/* Inverse of ilv: x = [x0 x2 x4 x6 y0 y2 y4 y6], y = [x1 x3 x5 x7 y1 y3 y5 y7]. */
TGT static INL void dilv(__m512i *x, __m512i *y) {
    const __m512i ev = _mm512_set_epi64(14, 12, 10, 8, 6, 4, 2, 0);
    const __m512i od = _mm512_set_epi64(15, 13, 11, 9, 7, 5, 3, 1);
    __m512i a = _mm512_permutex2var_epi64(*x, ev, *y);
    *y = _mm512_permutex2var_epi64(*x, od, *y);
    *x = a;
}

TGT static INL __m512i bcast2(const uint64_t *p) {
    return _mm512_broadcast_i64x2(_mm_loadu_si128((const __m128i *)p));
}

TGT static INL __m512i bcast4(const uint64_t *p) {
    return _mm512_broadcast_i64x4(_mm256_loadu_si256((const __m256i *)p));
}

/*
 * Twiddles of the last two stages without their full tables (ntt.h,
 * fwd4/fwd8): with disjoint bits, psi^bitrev(x + l) = psi^bitrev(x) *
 * psi^bitrev(l), so for the 16-word group e = 16m the gap-2 twiddles are
 * fwd[n/4 + 4m + l] = fwd[4m] * fwd[n/4 + l] (l < 4) and the gap-1 ones
 * fwd[n/2 + 8m + l] = fwd[8m] * fwd[n/2 + l] (l < 8): one scalar per group
 * times a constant vector. y * w is then two lazy Shoup products, which
 * costs three multiplies more per stage and saves 3/8 of the table
 * traffic of a transform (the last two stages hold 3/4 of its twiddles).
 */
typedef struct last_tw {
    __m512i v4, v4p, v8, v8p; /* fwd[n/4 + (l mod 4)], fwd[n/2 + l] and their Shoup constants */
} last_tw;

TGT static INL last_tw last_tw_fwd(const tsr_ntt_table *t) {
    const size_t n = t->n;
    last_tw k;
    k.v4 = bcast4(t->fwd + n / 4);
    k.v4p = bcast4(t->fwd52_sh + n / 4);
    k.v8 = _mm512_loadu_si512((const void *)(t->fwd + n / 2));
    k.v8p = _mm512_loadu_si512((const void *)(t->fwd52_sh + n / 2));
    return k;
}

TGT static INL last_tw last_tw_inv(const tsr_ntt_table *t) {
    const size_t n = t->n;
    last_tw k;
    k.v4 = bcast4(t->inv + n / 4);
    k.v4p = bcast4(t->inv52_sh + n / 4);
    k.v8 = _mm512_loadu_si512((const void *)(t->inv + n / 2));
    k.v8p = _mm512_loadu_si512((const void *)(t->inv52_sh + n / 2));
    return k;
}

/* Forward butterfly with the product t = w y (< 2q) given. */
TGT static INL void bf_fwd_t(__m512i *x, __m512i *y, __m512i t, const ifma_c c, int correct) {
    __m512i xx = correct ? csub(*x, c.corr) : *x;
    *x = _mm512_add_epi64(xx, t);
    *y = _mm512_sub_epi64(_mm512_add_epi64(xx, c.q2), t);
}

/*
 * Last three forward stages (gaps 4, 2, 1) on the 16 words held in v0, v1
 * (transform elements e .. e+15), then full reduction to [0, q). corr1:
 * whether the gap-4 stage is a correcting one (lazy mode alternates from there).
 */
TGT static INL void fwd_last3(const tsr_ntt_table *t, size_t e, __m512i *v0, __m512i *v1,
                              const ifma_c c, const last_tw *k, int corr1) {
    const size_t n = t->n, m = e / 16;
    const uint64_t *w = t->fwd, *wp = t->fwd52_sh;
    const int corr2 = c.lazy ? !corr1 : 1, corr3 = c.lazy ? corr1 : 1;
    if (!c.lazy) corr1 = 1;
    __m512i X = *v0, Y = *v1;
    ilv(&X, &Y);
    bf_fwd(&X, &Y, bcast2(w + n / 8 + e / 8), bcast2(wp + n / 8 + e / 8), c, corr1);
    ilv(&X, &Y);
    __m512i T = mulmod_lazy(Y, bcast(t->fwd4[m]), bcast(t->fwd4_sh[m]), c);
    bf_fwd_t(&X, &Y, mulmod_lazy(T, k->v4, k->v4p, c), c, corr2);
    ilv(&X, &Y);
    T = mulmod_lazy(Y, bcast(t->fwd8[m]), bcast(t->fwd8_sh[m]), c);
    bf_fwd_t(&X, &Y, mulmod_lazy(T, k->v8, k->v8p, c), c, corr3);
    X = fwd_reduce(X, c);
    Y = fwd_reduce(Y, c);
    ilv(&X, &Y);
    *v0 = X;
    *v1 = Y;
}

/* Final forward pass for gaps 8, 4, 2, 1 over [e0, e1) (16-word groups). */
TGT static INL void fwd_final4(const tsr_ntt_table *t, uint64_t *a, const uint64_t *src, size_t e0,
                               size_t e1, size_t base, const ifma_c c, tsr_prefetch *pf) {
    const size_t n = t->n;
    const last_tw k = last_tw_fwd(t);
    for (size_t e = e0; e < e1; e += 16) {
        tsr_prefetch_step(pf);
        __m512i v0 = LOAD(src + e), v1 = LOAD(src + e + 8);
        const size_t ib = (base + e) / 16;
        bf_fwd(&v0, &v1, bcast(t->fwd[n / 16 + ib]), bcast(t->fwd52_sh[n / 16 + ib]), c, 1);
        fwd_last3(t, base + e, &v0, &v1, c, &k, 0);
        STORE(a + e, v0);
        STORE(a + e + 8, v1);
    }
}

/* Final forward pass for gaps 16, 8, 4, 2, 1 over [e0, e1) (32-word groups). */
TGT static INL void fwd_final5(const tsr_ntt_table *t, uint64_t *a, const uint64_t *src, size_t e0,
                               size_t e1, size_t base, const ifma_c c, tsr_prefetch *pf) {
    const size_t n = t->n;
    const uint64_t *w = t->fwd, *wp = t->fwd52_sh;
    const last_tw k = last_tw_fwd(t);
    for (size_t e = e0; e < e1; e += 32) {
        tsr_prefetch_step(pf);
        tsr_prefetch_step(pf);
        __m512i v0 = LOAD(src + e), v1 = LOAD(src + e + 8), v2 = LOAD(src + e + 16),
                v3 = LOAD(src + e + 24);
        const size_t i32 = (base + e) / 32, i16 = (base + e) / 16;
        const __m512i w0 = bcast(w[n / 32 + i32]), w0p = bcast(wp[n / 32 + i32]);
        bf_fwd(&v0, &v2, w0, w0p, c, 1);
        bf_fwd(&v1, &v3, w0, w0p, c, 1);
        bf_fwd(&v0, &v1, bcast(w[n / 16 + i16]), bcast(wp[n / 16 + i16]), c, !c.lazy);
        bf_fwd(&v2, &v3, bcast(w[n / 16 + i16 + 1]), bcast(wp[n / 16 + i16 + 1]), c, !c.lazy);
        fwd_last3(t, base + e, &v0, &v1, c, &k, 1);
        fwd_last3(t, base + e + 16, &v2, &v3, c, &k, 1);
        STORE(a + e, v0);
        STORE(a + e + 8, v1);
        STORE(a + e + 16, v2);
        STORE(a + e + 24, v3);
    }
}

/*
 * Stages of a sub-transform [e0, e1) whose first stage has M blocks, gap g
 * (down to gap 1, then full reduction). The first pass reads src (a itself
 * for an in-place transform); pf is advanced as the passes run.
 */
TGT static INL void fwd_local(const tsr_ntt_table *t, uint64_t *a, const uint64_t *src, size_t M,
                              size_t g, size_t e0, size_t e1, size_t base, const ifma_c c,
                              tsr_prefetch *pf) {
    /* remaining stages r = log2(g) + 1; radix-4 down to 4 or 5 stages */
    while (g > 16) {
        fwd_radix4(t, a, src, M, g, e0, e1, base, c, pf);
        src = a;
        M *= 4;
        g /= 4;
    }
    if (g == 16)
        fwd_final5(t, a, src, e0, e1, base, c, pf);
    else
        fwd_final4(t, a, src, e0, e1, base, c, pf);
}

/*
 * The first r stages on size = len << r words (gaps size/2 .. len >= 8):
 * radix-4 passes, a radix-2 pass if r is odd. Output < 8q in lazy mode,
 * < 4q otherwise.
 */
TGT static INL void fwd_outer_body(const tsr_ntt_table *t, uint64_t *a, size_t len, unsigned r,
                                   const ifma_c c) {
    const size_t size = len << r;
    size_t M = 1, g = size / 2;
    for (unsigned s = 0; s < r;) {
        if (r - s >= 2) {
            fwd_radix4(t, a, a, M, g, 0, size, 0, c, NULL);
            M *= 4;
            g /= 4;
            s += 2;
        } else {
            fwd_radix2(t, a, M, g, 0, size, 0, c);
            M *= 2;
            g /= 2;
            s += 1;
        }
    }
}

/* Segment exponent of the full transform: blocks of at most BLOCK words. */
static unsigned full_split(size_t n) {
    unsigned r = 0;
    while ((n >> r) > BLOCK) r++;
    return r;
}

TGT static INL void ntt_fwd_body(const tsr_ntt_table *t, uint64_t *a, const ifma_c c) {
    const size_t n = t->n;
    const unsigned r = full_split(n);
    const size_t B = n >> r;
    fwd_outer_body(t, a, B, r, c);
    for (size_t e = 0; e < n; e += B)
        fwd_local(t, a + e, a + e, (size_t)1 << r, B / 2, 0, B, e, c, NULL);
}

/* Two instances so that the compiler drops the unused correction branches. */
TGT static void ntt_fwd_ifma_lazy(const tsr_ntt_table *t, uint64_t *a) {
    ifma_c c = ifma_consts(t->mod.q);
    c.lazy = 1;
    ntt_fwd_body(t, a, c);
}

TGT static void ntt_fwd_ifma_std(const tsr_ntt_table *t, uint64_t *a) {
    ifma_c c = ifma_consts(t->mod.q);
    c.lazy = 0;
    ntt_fwd_body(t, a, c);
}

static void ntt_fwd_ifma(const tsr_ntt_table *t, uint64_t *a) {
    if (t->n < 16 || t->mod.q >= IFMA_MAX_Q) {
        tsr_ring_kernels_for(TSR_SIMD_AVX512)->ntt_fwd(t, a);
    } else if (t->mod.q < ((uint64_t)1 << 49)) {
        ntt_fwd_ifma_lazy(t, a);
    } else {
        ntt_fwd_ifma_std(t, a);
    }
}

/* Split forward transform (ntt.h). The outer output is brought below 4q. */
TGT static void fwd_outer_lazy(const tsr_ntt_table *t, uint64_t *a, size_t len, unsigned r) {
    ifma_c c = ifma_consts(t->mod.q);
    c.lazy = 1;
    fwd_outer_body(t, a, len, r, c);
    const __m512i q4 = _mm512_add_epi64(c.q2, c.q2);
    for (size_t j = 0; j < (len << r); j += 8) STORE(a + j, csub(LOAD(a + j), q4));
}

TGT static void fwd_outer_std(const tsr_ntt_table *t, uint64_t *a, size_t len, unsigned r) {
    ifma_c c = ifma_consts(t->mod.q);
    c.lazy = 0;
    fwd_outer_body(t, a, len, r, c);
}

static void ntt_fwd_outer_ifma(const tsr_ntt_table *t, uint64_t *a, size_t len, unsigned r) {
    if (r == 0) return;
    if (len < 8 || len % 8 || t->mod.q >= IFMA_MAX_Q) {
        tsr_ring_kernels_for(TSR_SIMD_AVX512)->ntt_fwd_outer(t, a, len, r);
    } else if (t->mod.q < ((uint64_t)1 << 49)) {
        fwd_outer_lazy(t, a, len, r);
    } else {
        fwd_outer_std(t, a, len, r);
    }
}

TGT static void fwd_inner_lazy(const tsr_ntt_table *t, uint64_t *a, const uint64_t *src, size_t b,
                               unsigned r, tsr_prefetch *pf) {
    ifma_c c = ifma_consts(t->mod.q);
    c.lazy = 1;
    const size_t B = t->n >> r;
    fwd_local(t, a, src, (size_t)1 << r, B / 2, 0, B, b * B, c, pf);
}

TGT static void fwd_inner_std(const tsr_ntt_table *t, uint64_t *a, const uint64_t *src, size_t b,
                              unsigned r, tsr_prefetch *pf) {
    ifma_c c = ifma_consts(t->mod.q);
    c.lazy = 0;
    const size_t B = t->n >> r;
    fwd_local(t, a, src, (size_t)1 << r, B / 2, 0, B, b * B, c, pf);
}

static void ntt_fwd_inner_ifma(const tsr_ntt_table *t, uint64_t *a, const uint64_t *src, size_t b,
                               unsigned r, tsr_prefetch *pf) {
    if ((t->n >> r) < 16 || t->mod.q >= IFMA_MAX_Q) {
        tsr_ring_kernels_for(TSR_SIMD_AVX512)->ntt_fwd_inner(t, a, src, b, r, pf);
    } else if (t->mod.q < ((uint64_t)1 << 49)) {
        fwd_inner_lazy(t, a, src, b, r, pf);
    } else {
        fwd_inner_std(t, a, src, b, r, pf);
    }
}

/* ---- inverse ------------------------------------------------------------ */

/* First three inverse stages (gaps 1, 2, 4) on transform elements e..e+15 in
 * v0, v1 (see ilv); the gap-1 and gap-2 twiddles factored as in fwd_last3. */
TGT static INL void inv_first3(const tsr_ntt_table *t, size_t e, __m512i *v0, __m512i *v1,
                               const ifma_c c, const last_tw *k) {
    const size_t n = t->n, m = e / 16;
    const uint64_t *w = t->inv, *wp = t->inv52_sh;
    __m512i X = *v0, Y = *v1;
    dilv(&X, &Y);
    __m512i d = _mm512_add_epi64(_mm512_sub_epi64(X, Y), c.q2);
    X = csub(_mm512_add_epi64(X, Y), c.q2);
    d = mulmod_lazy(d, bcast(t->inv8[m]), bcast(t->inv8_sh[m]), c);
    Y = mulmod_lazy(d, k->v8, k->v8p, c);
    dilv(&X, &Y);
    d = _mm512_add_epi64(_mm512_sub_epi64(X, Y), c.q2);
    X = csub(_mm512_add_epi64(X, Y), c.q2);
    d = mulmod_lazy(d, bcast(t->inv4[m]), bcast(t->inv4_sh[m]), c);
    Y = mulmod_lazy(d, k->v4, k->v4p, c);
    dilv(&X, &Y);
    bf_inv(&X, &Y, bcast2(w + n / 8 + e / 8), bcast2(wp + n / 8 + e / 8), c);
    dilv(&X, &Y);
    *v0 = X;
    *v1 = Y;
}

/* Inverse radix-2 pass: stage with h blocks (gap g >= 8) over [e0, e1). */
TGT static void inv_radix2(const tsr_ntt_table *t, uint64_t *a, size_t h, size_t g, size_t e0,
                           size_t e1, size_t base, const ifma_c c) {
    for (size_t e = e0; e < e1; e += 2 * g) {
        const size_t ib = (base + e) / (2 * g);
        const __m512i w = bcast(t->inv[h + ib]), wp = bcast(t->inv52_sh[h + ib]);
        uint64_t *p0 = a + e, *p1 = p0 + g;
        for (size_t j = 0; j < g; j += 8) {
            __m512i X = LOAD(p0 + j), Y = LOAD(p1 + j);
            bf_inv(&X, &Y, w, wp, c);
            STORE(p0 + j, X);
            STORE(p1 + j, Y);
        }
    }
}

/*
 * Inverse radix-4 pass over [e0, e1): stage with 2H blocks (gap g) then the
 * stage with H blocks (gap 2g); g >= 8. Blocks of the second stage are 4g words.
 */
TGT static void inv_radix4(const tsr_ntt_table *t, uint64_t *a, size_t H, size_t g, size_t e0,
                           size_t e1, size_t base, const ifma_c c, tsr_prefetch *pf) {
    for (size_t e = e0; e < e1; e += 4 * g) {
        const size_t ib = (base + e) / (4 * g);
        const __m512i w1 = bcast(t->inv[2 * H + 2 * ib]);
        const __m512i w1p = bcast(t->inv52_sh[2 * H + 2 * ib]);
        const __m512i w2 = bcast(t->inv[2 * H + 2 * ib + 1]);
        const __m512i w2p = bcast(t->inv52_sh[2 * H + 2 * ib + 1]);
        const __m512i w3 = bcast(t->inv[H + ib]), w3p = bcast(t->inv52_sh[H + ib]);
        uint64_t *p0 = a + e, *p1 = p0 + g, *p2 = p0 + 2 * g, *p3 = p2 + g;
        for (size_t j = 0; j < g; j += 8) {
            tsr_prefetch_step(pf);
            __m512i A = LOAD(p0 + j), B = LOAD(p1 + j), C = LOAD(p2 + j), D = LOAD(p3 + j);
            bf_inv(&A, &B, w1, w1p, c);
            bf_inv(&C, &D, w2, w2p, c);
            bf_inv(&A, &C, w3, w3p, c);
            bf_inv(&B, &D, w3, w3p, c);
            STORE(p0 + j, A);
            STORE(p1 + j, B);
            STORE(p2 + j, C);
            STORE(p3 + j, D);
        }
    }
}

/* First inverse pass for gaps 1, 2, 4, 8 over [e0, e1) (16-word groups). */
TGT static void inv_first4(const tsr_ntt_table *t, uint64_t *a, const uint64_t *src, size_t e0,
                           size_t e1, size_t base, const ifma_c c, tsr_prefetch *pf) {
    const size_t n = t->n;
    const last_tw k = last_tw_inv(t);
    for (size_t e = e0; e < e1; e += 16) {
        tsr_prefetch_step(pf);
        __m512i v0 = LOAD(src + e), v1 = LOAD(src + e + 8);
        inv_first3(t, base + e, &v0, &v1, c, &k);
        const size_t ib = (base + e) / 16;
        bf_inv(&v0, &v1, bcast(t->inv[n / 16 + ib]), bcast(t->inv52_sh[n / 16 + ib]), c);
        STORE(a + e, v0);
        STORE(a + e + 8, v1);
    }
}

/* First inverse pass for gaps 1, 2, 4, 8, 16 over [e0, e1) (32-word groups). */
TGT static void inv_first5(const tsr_ntt_table *t, uint64_t *a, const uint64_t *src, size_t e0,
                           size_t e1, size_t base, const ifma_c c, tsr_prefetch *pf) {
    const size_t n = t->n;
    const last_tw k = last_tw_inv(t);
    for (size_t e = e0; e < e1; e += 32) {
        tsr_prefetch_step(pf);
        tsr_prefetch_step(pf);
        __m512i v0 = LOAD(src + e), v1 = LOAD(src + e + 8), v2 = LOAD(src + e + 16),
                v3 = LOAD(src + e + 24);
        inv_first3(t, base + e, &v0, &v1, c, &k);
        inv_first3(t, base + e + 16, &v2, &v3, c, &k);
        const size_t i16 = (base + e) / 16, i32 = (base + e) / 32;
        bf_inv(&v0, &v1, bcast(t->inv[n / 16 + i16]), bcast(t->inv52_sh[n / 16 + i16]), c);
        bf_inv(&v2, &v3, bcast(t->inv[n / 16 + i16 + 1]), bcast(t->inv52_sh[n / 16 + i16 + 1]), c);
        const __m512i w = bcast(t->inv[n / 32 + i32]), wp = bcast(t->inv52_sh[n / 32 + i32]);
        bf_inv(&v0, &v2, w, wp, c);
        bf_inv(&v1, &v3, w, wp, c);
        STORE(a + e, v0);
        STORE(a + e + 8, v1);
        STORE(a + e + 16, v2);
        STORE(a + e + 24, v3);
    }
}

/* Last inverse stage (one block, gap half) with N^-1 folded in; output < q. */
TGT static void inv_last(const tsr_ntt_table *t, uint64_t *a, size_t half, const ifma_c c) {
    const __m512i ni = bcast(t->n_inv), nip = bcast(t->n_inv52_sh);
    const __m512i wl = bcast(t->inv_last), wlp = bcast(t->inv_last52_sh);
    for (size_t j = 0; j < half; j += 8) {
        __m512i X = LOAD(a + j), Y = LOAD(a + half + j);
        __m512i u = mulmod_lazy(_mm512_add_epi64(X, Y), ni, nip, c);
        __m512i v = mulmod_lazy(_mm512_add_epi64(_mm512_sub_epi64(X, Y), c.q2), wl, wlp, c);
        STORE(a + j, csub(u, c.q));
        STORE(a + half + j, csub(v, c.q));
    }
}

/*
 * Inverse stages of a sub-transform of S words (window [0, S), transform
 * offset base), from gap 1 up to gap S/2; S >= 16, a power of two. The first
 * pass reads src (a itself in place); pf is advanced as the passes run.
 */
TGT static void inv_local(const tsr_ntt_table *t, uint64_t *a, const uint64_t *src, size_t S,
                          size_t base, const ifma_c c, tsr_prefetch *pf) {
    const size_t n = t->n;
    /* stages in the block: log2(S); the first pass does 4 or 5 of them */
    int r = 0;
    while (((size_t)1 << r) < S) r++;
    size_t g;
    if (r % 2 == 0) {
        inv_first4(t, a, src, 0, S, base, c, pf);
        g = 16;
    } else {
        inv_first5(t, a, src, 0, S, base, c, pf);
        g = 32;
    }
    while (g < S) { /* stages with gaps g and 2g */
        inv_radix4(t, a, n / (4 * g), g, 0, S, base, c, pf);
        g *= 4;
    }
}

/* Stages with gaps len .. size/4, then the last one (gap size/2, N^-1). */
TGT static void inv_outer_body(const tsr_ntt_table *t, uint64_t *a, size_t len, unsigned r,
                               const ifma_c c) {
    const size_t size = len << r;
    size_t g = len;
    while (g < size / 2) {
        if (2 * g < size / 2) {
            inv_radix4(t, a, size / (4 * g), g, 0, size, 0, c, NULL);
            g *= 4;
        } else {
            inv_radix2(t, a, size / (2 * g), g, 0, size, 0, c);
            g *= 2;
        }
    }
    inv_last(t, a, size / 2, c);
}

TGT static void ntt_inv_ifma(const tsr_ntt_table *t, uint64_t *a) {
    const size_t n = t->n;
    if (n < 32 || t->mod.q >= IFMA_MAX_Q) {
        tsr_ring_kernels_for(TSR_SIMD_AVX512)->ntt_inv(t, a);
        return;
    }
    const ifma_c c = ifma_consts(t->mod.q);
    /* Blocks of S words hold every stage below gap S/2; the last stage (gap
     * n/2) is done separately with the N^-1 factor. S: at most BLOCK, at most
     * n/2, and a power of four times 16 or 32 so that inv_local ends exactly. */
    const unsigned r = n / 2 < BLOCK ? 1 : full_split(n);
    const size_t S = n >> r;
    for (size_t e = 0; e < n; e += S) inv_local(t, a + e, a + e, S, e, c, NULL);
    inv_outer_body(t, a, S, r, c);
}

TGT static void ntt_inv_inner_ifma(const tsr_ntt_table *t, uint64_t *a, const uint64_t *src,
                                   size_t b, unsigned r, tsr_prefetch *pf) {
    const size_t B = t->n >> r;
    if (t->mod.q >= IFMA_MAX_Q || (r == 0 && t->n < 32) || (r > 0 && B < 16)) {
        tsr_ring_kernels_for(TSR_SIMD_AVX512)->ntt_inv_inner(t, a, src, b, r, pf);
    } else if (r == 0) { /* the whole transform */
        if (a != src) memcpy(a, src, t->n * sizeof *a);
        ntt_inv_ifma(t, a);
    } else {
        inv_local(t, a, src, B, b * B, ifma_consts(t->mod.q), pf);
    }
}

TGT static void ntt_inv_outer_ifma(const tsr_ntt_table *t, uint64_t *a, size_t len, unsigned r) {
    if (r == 0) return;
    if (len < 8 || len % 8 || t->mod.q >= IFMA_MAX_Q) {
        tsr_ring_kernels_for(TSR_SIMD_AVX512)->ntt_inv_outer(t, a, len, r);
        return;
    }
    inv_outer_body(t, a, len, r, ifma_consts(t->mod.q));
}

/* ---- element-wise (q < 2^50; larger primes use the AVX-512 kernels) ---- */

#define FALLBACK(op, ...)                                              \
    do {                                                               \
        if (m->q >= IFMA_MAX_Q) {                                      \
            tsr_ring_kernels_for(TSR_SIMD_AVX512)->op(m, __VA_ARGS__); \
            return;                                                    \
        }                                                              \
    } while (0)

#define LOADU(p)     _mm512_loadu_si512((const void *)(p))
#define STOREU(p, v) _mm512_storeu_si512((void *)(p), (v))

/* 52-bit Barrett for a * b with a, b < q < 2^50 (s = bitlen(q)): P = a b,
 * t = floor(P / 2^(s-2)) < 2^(s+2) <= 2^52, mu = floor(2^(s+50) / q) < 2^51,
 * qhat = floor(t mu / 2^52) >= floor(P / q) - 2, so P - qhat q < 3q. */
typedef struct bar52 {
    __m512i q, q2, mu, negq, mask, zero;
    __m128i sh_hi, sh_lo;
} bar52;

TGT static INL bar52 bar52_make(const tsr_modulus *m) {
    bar52 b;
    const int s = m->bits;
    b.q = bcast(m->q);
    b.q2 = bcast(2 * m->q);
    b.mu = bcast((uint64_t)((((tsr_u128)1) << (s + 50)) / m->q));
    b.negq = bcast(((uint64_t)1 << 52) - m->q);
    b.mask = bcast(((uint64_t)1 << 52) - 1);
    b.zero = _mm512_setzero_si512();
    b.sh_hi = _mm_cvtsi32_si128(54 - s);
    b.sh_lo = _mm_cvtsi32_si128(s - 2);
    return b;
}

TGT static INL __m512i bar52_mul(__m512i a, __m512i b, const bar52 *k) {
    __m512i lo = _mm512_madd52lo_epu64(k->zero, a, b);
    __m512i hi = _mm512_madd52hi_epu64(k->zero, a, b);
    __m512i t = _mm512_or_si512(_mm512_sll_epi64(hi, k->sh_hi), _mm512_srl_epi64(lo, k->sh_lo));
    __m512i qh = _mm512_madd52hi_epu64(k->zero, t, k->mu);
    __m512i r = _mm512_and_si512(_mm512_madd52lo_epu64(lo, qh, k->negq), k->mask);
    return csub(csub(r, k->q2), k->q);
}

/* a * w mod q in [0, q): Shoup in radix 2^52, wp52 = floor(w 2^52 / q), a < 2^52. */
TGT static INL __m512i shoup52(__m512i a, __m512i w, __m512i wp52, const bar52 *k) {
    __m512i qh = _mm512_madd52hi_epu64(k->zero, a, wp52);
    __m512i t = _mm512_madd52lo_epu64(k->zero, a, w);
    t = _mm512_and_si512(_mm512_madd52lo_epu64(t, qh, k->negq), k->mask);
    return csub(t, k->q);
}

TGT static void mul_ifma(const tsr_modulus *m, uint64_t *out, const uint64_t *a, const uint64_t *b,
                         size_t n) {
    FALLBACK(mul, out, a, b, n);
    const bar52 k = bar52_make(m);
    size_t i = 0;
    for (; i + 8 <= n; i += 8) STOREU(out + i, bar52_mul(LOADU(a + i), LOADU(b + i), &k));
    for (; i < n; i++) out[i] = tsr_modq_mul(m, a[i], b[i]);
}

TGT static void mul_add_ifma(const tsr_modulus *m, uint64_t *out, const uint64_t *a,
                             const uint64_t *b, size_t n) {
    FALLBACK(mul_add, out, a, b, n);
    const bar52 k = bar52_make(m);
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m512i r = bar52_mul(LOADU(a + i), LOADU(b + i), &k);
        STOREU(out + i, csub(_mm512_add_epi64(LOADU(out + i), r), k.q));
    }
    for (; i < n; i++) out[i] = tsr_modq_add(out[i], tsr_modq_mul(m, a[i], b[i]), m->q);
}

TGT static void mul_scalar_ifma(const tsr_modulus *m, uint64_t *out, const uint64_t *a, uint64_t w,
                                uint64_t wp, size_t n) {
    FALLBACK(mul_scalar, out, a, w, wp, n);
    const bar52 k = bar52_make(m);
    const __m512i wv = bcast(w), wpv = bcast(wp >> 12);
    size_t i = 0;
    for (; i + 8 <= n; i += 8) STOREU(out + i, shoup52(LOADU(a + i), wv, wpv, &k));
    for (; i < n; i++) out[i] = tsr_modq_mul_shoup(a[i], w, wp, m->q);
}

TGT static void mul_scalar_add_ifma(const tsr_modulus *m, uint64_t *out, const uint64_t *a,
                                    uint64_t w, uint64_t wp, size_t n) {
    FALLBACK(mul_scalar_add, out, a, w, wp, n);
    const bar52 k = bar52_make(m);
    const __m512i wv = bcast(w), wpv = bcast(wp >> 12);
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m512i r = shoup52(LOADU(a + i), wv, wpv, &k);
        STOREU(out + i, csub(_mm512_add_epi64(LOADU(out + i), r), k.q));
    }
    for (; i < n; i++) out[i] = tsr_modq_add(out[i], tsr_modq_mul_shoup(a[i], w, wp, m->q), m->q);
}

TGT static void sub_mul_scalar_add_ifma(const tsr_modulus *m, uint64_t *out, const uint64_t *a,
                                        const uint64_t *b, uint64_t w, uint64_t wp,
                                        const uint64_t *c, int stream, size_t n) {
    FALLBACK(sub_mul_scalar_add, out, a, b, w, wp, c, stream, n);
    const bar52 k = bar52_make(m);
    const __m512i wv = bcast(w), wpv = bcast(wp >> 12);
    const int nt = stream && ((uintptr_t)out & 63) == 0;
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m512i d = _mm512_sub_epi64(LOADU(a + i), LOADU(b + i));
        d = _mm512_min_epu64(d, _mm512_add_epi64(d, k.q));
        __m512i r = shoup52(d, wv, wpv, &k);
        if (c) r = csub(_mm512_add_epi64(r, LOADU(c + i)), k.q);
        if (nt)
            _mm512_stream_si512((void *)(out + i), r);
        else
            STOREU(out + i, r);
    }
    tsr_ring_kernels_portable.sub_mul_scalar_add(m, out + i, a + i, b + i, w, wp, c ? c + i : NULL,
                                                 0, n - i);
}

TGT static void mul_shoup_ifma(const tsr_modulus *m, uint64_t *out, const uint64_t *a,
                               const uint64_t *w, const uint64_t *wp, size_t n) {
    FALLBACK(mul_shoup, out, a, w, wp, n);
    const bar52 k = bar52_make(m);
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m512i wpv = _mm512_srli_epi64(LOADU(wp + i), 12);
        STOREU(out + i, shoup52(LOADU(a + i), LOADU(w + i), wpv, &k));
    }
    for (; i < n; i++) out[i] = tsr_modq_mul_shoup(a[i], w[i], wp[i], m->q);
}

/* ---- primes 2^50 <= q < 2^62: 128-bit products from 52-bit limbs --------- */

/*
 * The AVX-512F kernels assemble each 64 x 64 -> 128-bit product from vpmullq and four
 * 32 x 32 products (kernels_avx512.c, mul128) plus shifts, masks and a carry: about 17
 * instructions. With IFMA a value a < 2^62 is a0 + a1 2^52 (a0 its low 52 bits, which is all
 * vpmadd52 reads, so a itself serves as a0; a1 = a >> 52 < 2^10), and a product is summed
 * into three columns of weight 1, 2^52 and 2^104 with seven madds and no carries:
 *   col0 += lo52(a0 b0)
 *   col1 += hi52(a0 b0) + lo52(a0 b1) + lo52(a1 b0)
 *   col2 += hi52(a0 b1) + hi52(a1 b0) + lo52(a1 b1)      (a1 b1 < 2^20)
 * or four when a < 2^52 (a1 = 0). Each madd has an accumulator of its own (wide_acc: seven
 * registers, summed per column at the end of a chunk): on Zen 5 a chain of dependent madds,
 * not their number, bounds the loop (three accumulators per product measured 14 % slower).
 * A chunk of at most 64 products plus a carry below 2^62 keeps col0 < 2^63 and col1 < 2^60;
 * the columns are then joined into the exact 128-bit sum and reduced as the AVX-512F dot2
 * does (the same chunk lengths and Barrett step as kernels_avx512.c's dot_reduce64): a sum
 * s < 2^(b+63) (b = bitlen(q), q not a power of two) gives t = floor(s / 2^(b-1)) < 2^64
 * and est = floor(t mu / 2^64), mu = floor(2^(b+63) / q), at most 2 below floor(s / q), so
 * r = s - est q < 3q. The results are the exact residues: bit-identical to every family's.
 */
typedef struct wide_c {
    __m512i q, q2, mu, muh, one;
    __m128i sh, shl;    /* b - 1 and 65 - b */
    size_t first, next; /* products per chunk: the first one, then with room for the carry */
} wide_c;

/* Constants for sums of products a b with a < amax, b < bmax (amax, bmax >= 2) modulo m
 * (q not a power of two, bitlen(q) <= 62). */
TGT static INL wide_c wide_make(const tsr_modulus *m, uint64_t amax, uint64_t bmax) {
    wide_c d;
    const uint64_t q = m->q;
    const unsigned sh = (unsigned)m->bits - 1;
    const uint64_t mu = tsr_wide_barrett(m, (tsr_u128)(amax - 1) * (bmax - 1), &d.first, &d.next);
    d.q = bcast(q);
    d.q2 = bcast(2 * q);
    d.mu = bcast(mu);
    d.muh = bcast(mu >> 32);
    d.one = bcast(1);
    d.sh = _mm_cvtsi32_si128((int)sh);
    d.shl = _mm_cvtsi32_si128((int)(64 - sh));
    return d;
}

/* High 64 bits of a * b from four 32 x 32 products (bh = b >> 32): once per chunk. */
TGT static INL __m512i mulhi64(__m512i a, __m512i b, __m512i bh) {
    const __m512i m32 = bcast(0xffffffffULL);
    const __m512i ah = _mm512_srli_epi64(a, 32);
    const __m512i p00 = _mm512_mul_epu32(a, b), p01 = _mm512_mul_epu32(a, bh);
    const __m512i p10 = _mm512_mul_epu32(ah, b), p11 = _mm512_mul_epu32(ah, bh);
    __m512i mid = _mm512_add_epi64(_mm512_srli_epi64(p00, 32), _mm512_and_si512(p01, m32));
    mid = _mm512_add_epi64(mid, _mm512_and_si512(p10, m32));
    __m512i hi = _mm512_add_epi64(p11, _mm512_srli_epi64(p01, 32));
    hi = _mm512_add_epi64(hi, _mm512_srli_epi64(p10, 32));
    return _mm512_add_epi64(hi, _mm512_srli_epi64(mid, 32));
}

/* One column sum per madd: col0 = l, col1 = m0 + m1 + m2, col2 = h0 + h1 + h2. */
typedef struct wide_acc {
    __m512i l, m0, m1, m2, h0, h1, h2;
} wide_acc;

/* A chunk's accumulators, col0 starting at the carry r < q. */
TGT static INL wide_acc wide_start(__m512i r) {
    const __m512i z = _mm512_setzero_si512();
    const wide_acc a = { r, z, z, z, z, z, z };
    return a;
}

/* acc += a b, a and b < 2^62 (ah = a >> 52, bh = b >> 52). */
TGT static INL void wide_mac(wide_acc *c, __m512i a, __m512i ah, __m512i b, __m512i bh) {
    c->l = _mm512_madd52lo_epu64(c->l, a, b);
    c->m0 = _mm512_madd52hi_epu64(c->m0, a, b);
    c->m1 = _mm512_madd52lo_epu64(c->m1, a, bh);
    c->m2 = _mm512_madd52lo_epu64(c->m2, ah, b);
    c->h0 = _mm512_madd52hi_epu64(c->h0, a, bh);
    c->h1 = _mm512_madd52hi_epu64(c->h1, ah, b);
    c->h2 = _mm512_madd52lo_epu64(c->h2, ah, bh);
}

/* acc += a b, a < 2^52, b < 2^62 (bh = b >> 52). */
TGT static INL void wide_mac_a52(wide_acc *c, __m512i a, __m512i b, __m512i bh) {
    c->l = _mm512_madd52lo_epu64(c->l, a, b);
    c->m0 = _mm512_madd52hi_epu64(c->m0, a, b);
    c->m1 = _mm512_madd52lo_epu64(c->m1, a, bh);
    c->h0 = _mm512_madd52hi_epu64(c->h0, a, bh);
}

/* col0 + col1 2^52 + col2 2^104 (< 2^(b+63)) mod q, fully reduced. */
TGT static INL __m512i wide_reduce(const wide_acc *c, const wide_c *d) {
    const __m512i c1 = _mm512_add_epi64(_mm512_add_epi64(c->m0, c->m1), c->m2);
    const __m512i c2 = _mm512_add_epi64(_mm512_add_epi64(c->h0, c->h1), c->h2);
    const __m512i a = _mm512_slli_epi64(c1, 52);
    const __m512i lo = _mm512_add_epi64(c->l, a);
    __m512i hi = _mm512_add_epi64(_mm512_srli_epi64(c1, 12), _mm512_slli_epi64(c2, 40));
    hi = _mm512_mask_add_epi64(hi, _mm512_cmplt_epu64_mask(lo, a), hi, d->one);
    const __m512i t = _mm512_or_si512(_mm512_sll_epi64(hi, d->shl), _mm512_srl_epi64(lo, d->sh));
    const __m512i est = mulhi64(t, d->mu, d->muh);
    const __m512i r = _mm512_sub_epi64(lo, _mm512_mullo_epi64(est, d->q)); /* < 3q */
    return csub(csub(r, d->q2), d->q);
}

/* kernels.h dot2 for any q < 2^62 not a power of two (the IFMA family's for q >= 2^50 and
 * even q): seven madds per product, eight coefficients per pass. */
TGT static void dot2_wide(const tsr_modulus *m, uint64_t *out0, uint64_t *out1,
                          const uint64_t *const *x, const uint64_t *const *y0,
                          const uint64_t *const *y1, size_t terms, size_t n) {
    const wide_c d = wide_make(m, m->q, m->q);
    const __m512i zero = _mm512_setzero_si512();
    size_t k = 0;
    for (; k + 8 <= n; k += 8) {
        __m512i r0 = zero, r1 = zero;
        size_t j = 0, chunk = d.first;
        while (j < terms) {
            const size_t end = j + chunk < terms ? j + chunk : terms;
            wide_acc a = wide_start(r0), b = wide_start(r1);
            for (; j < end; j++) {
                const __m512i xv = LOADU(x[j] + k), xh = _mm512_srli_epi64(xv, 52);
                const __m512i u = LOADU(y0[j] + k);
                wide_mac(&a, xv, xh, u, _mm512_srli_epi64(u, 52));
                if (out1) {
                    const __m512i v = LOADU(y1[j] + k);
                    wide_mac(&b, xv, xh, v, _mm512_srli_epi64(v, 52));
                }
            }
            r0 = wide_reduce(&a, &d);
            if (out1) r1 = wide_reduce(&b, &d);
            chunk = d.next;
        }
        STOREU(out0 + k, r0);
        if (out1) STOREU(out1 + k, r1);
    }
    tsr_dot2_tail(m, out0, out1, x, y0, y1, terms, k, n);
}

/* Coefficients k .. k + 7 of a conversion row (conv_row_wide); a52: every y < 2^52. */
TGT static INL __m512i conv_wide8(const wide_c *d, const uint64_t *const *y,
                                  const tsr_conv_coeffs *cr, size_t k, int a52) {
    __m512i r = _mm512_setzero_si512();
    size_t i0 = 0, chunk = d->first;
    while (i0 < cr->terms) {
        const size_t i1 = i0 + chunk < cr->terms ? i0 + chunk : cr->terms;
        wide_acc a = wide_start(r);
        for (size_t i = i0; i < i1; i++) {
            const __m512i cv = bcast(cr->c[i]), ch = bcast(cr->c[i] >> 52);
            const __m512i yv = LOADU(y[i] + k);
            if (a52)
                wide_mac_a52(&a, yv, cv, ch);
            else
                wide_mac(&a, yv, _mm512_srli_epi64(yv, 52), cv, ch);
        }
        r = wide_reduce(&a, d);
        i0 = i1;
        chunk = d->next;
    }
    return r;
}

/* kernels.h conv_row for p < 2^62 not a power of two and ymax <= 2^62, when the products'
 * bound leaves a first chunk of at least 8 terms, whatever the row's length (shorter chunks:
 * a Barrett step every 2-4 terms costs more than the AVX-512F row's lazy Shoup products, and
 * rows that fit one short chunk were not measured). Four madds per term when ymax <= 2^52,
 * seven otherwise. Returns 0 (nothing written) when it does not apply. */
TGT static int conv_row_wide(const tsr_modulus *m, uint64_t *out, const uint64_t *const *y,
                             const tsr_conv_coeffs *cr, size_t n) {
    const wide_c d = wide_make(m, cr->ymax < 2 ? 2 : cr->ymax, m->q);
    if (d.first < 8) return 0;
    size_t k = 0;
    if (cr->ymax <= ((uint64_t)1 << 52))
        for (; k + 8 <= n; k += 8) STOREU(out + k, conv_wide8(&d, y, cr, k, 1));
    else
        for (; k + 8 <= n; k += 8) STOREU(out + k, conv_wide8(&d, y, cr, k, 0));
    tsr_conv_row_tail(m, out, y, cr, k, n);
    return 1;
}

/*
 * Basis-conversion row, p < 2^50 and inputs y < 2^52: per term two madds
 * accumulate the low and high 52-bit halves of y * c52 (c52 = c 2^52 mod p,
 * Montgomery form). A chunk of K terms is then one Montgomery reduction,
 *   V = hi 2^52 + lo,  m = lo * (-p^-1) mod 2^52,  r = hi + hi52(m p) + [lo != 0]
 * = (V + m p) / 2^52 = V 2^-52 = sum y c (mod p), with r < hi + p + 1 < 2^52
 * by the choice of K, followed by a Shoup reduction by one (r - floor(r
 * floor(2^52/p) / 2^52) p < 2p) and a conditional subtraction.
 */
TGT static void conv_row_ifma(const tsr_modulus *m, uint64_t *out, const uint64_t *const *y,
                              const tsr_conv_coeffs *cr, size_t n) {
    const uint64_t p = m->q, ymax = cr->ymax, *c52 = cr->c52;
    const size_t terms = cr->terms;
    /* Montgomery needs p odd (conversion targets are primes; checked for the contract's sake) */
    if ((p & (p - 1)) == 0 || m->bits > 62 || ymax > ((uint64_t)1 << 62) || terms == 0) {
        tsr_ring_kernels_for(TSR_SIMD_AVX512)->conv_row(m, out, y, cr, n);
        return;
    }
    if (p >= IFMA_MAX_Q || (p & 1) == 0 || ymax > ((uint64_t)1 << 52)) {
        if (!conv_row_wide(m, out, y, cr, n))
            tsr_ring_kernels_for(TSR_SIMD_AVX512)->conv_row(m, out, y, cr, n);
        return;
    }
    /* hi52 of one product is <= hmax; a chunk of K terms keeps hi < 2^52 - p - 2, and at most
     * IFMA_MAX_CHUNK keeps the 64-bit sum of the low halves from wrapping. */
    const uint64_t hmax = (uint64_t)(((tsr_u128)(ymax - 1) * (p - 1)) >> 52);
    size_t K = (size_t)((((uint64_t)1 << 52) - p - 2) / (hmax + 2));
    if (K > IFMA_MAX_CHUNK) K = IFMA_MAX_CHUNK;
    if (K > terms) K = terms;
    if (K < 1) K = 1;
    uint64_t pinv = 1; /* p^-1 mod 2^64 by Newton; then -p^-1 mod 2^52 */
    for (int it = 0; it < 6; it++) pinv *= 2 - p * pinv;
    const uint64_t mask52 = ((uint64_t)1 << 52) - 1;
    const __m512i pv = bcast(p), negp = bcast(((uint64_t)1 << 52) - p), mask = bcast(mask52);
    const __m512i pneg_inv = bcast((0 - pinv) & mask52), one_sh = bcast(((uint64_t)1 << 52) / p);
    const __m512i zero = _mm512_setzero_si512(), one = bcast(1);
#define CONV_MONT(lo_, hi_, r_)                                                      \
    do {                                                                             \
        __m512i h_ = _mm512_add_epi64(hi_, _mm512_srli_epi64(lo_, 52));              \
        __m512i l_ = _mm512_and_si512(lo_, mask);                                    \
        __m512i mm_ = _mm512_madd52lo_epu64(zero, l_, pneg_inv);                     \
        __m512i t_ = _mm512_madd52hi_epu64(h_, mm_, pv);                             \
        t_ = _mm512_mask_add_epi64(t_, _mm512_test_epi64_mask(l_, l_), t_, one);     \
        __m512i qh_ = _mm512_madd52hi_epu64(zero, t_, one_sh);                       \
        r_ = csub(_mm512_and_si512(_mm512_madd52lo_epu64(t_, qh_, negp), mask), pv); \
    } while (0)
    size_t k = 0;
    /* 32 coefficients per pass: eight independent madd chains hide the latency. */
    for (; k + 32 <= n; k += 32) {
        __m512i t0 = zero, t1 = zero, t2 = zero, t3 = zero;
        for (size_t i0 = 0; i0 < terms; i0 += K) {
            const size_t i1 = i0 + K < terms ? i0 + K : terms;
            __m512i l0 = zero, h0 = zero, l1 = zero, h1 = zero, l2 = zero, h2 = zero, l3 = zero,
                    h3 = zero;
            for (size_t i = i0; i < i1; i++) {
                const uint64_t *yi = y[i] + k;
                const __m512i cv = bcast(c52[i]);
                const __m512i y0 = LOADU(yi), y1 = LOADU(yi + 8), y2 = LOADU(yi + 16),
                              y3 = LOADU(yi + 24);
                l0 = _mm512_madd52lo_epu64(l0, y0, cv);
                h0 = _mm512_madd52hi_epu64(h0, y0, cv);
                l1 = _mm512_madd52lo_epu64(l1, y1, cv);
                h1 = _mm512_madd52hi_epu64(h1, y1, cv);
                l2 = _mm512_madd52lo_epu64(l2, y2, cv);
                h2 = _mm512_madd52hi_epu64(h2, y2, cv);
                l3 = _mm512_madd52lo_epu64(l3, y3, cv);
                h3 = _mm512_madd52hi_epu64(h3, y3, cv);
            }
            __m512i r0, r1, r2, r3;
            CONV_MONT(l0, h0, r0);
            CONV_MONT(l1, h1, r1);
            CONV_MONT(l2, h2, r2);
            CONV_MONT(l3, h3, r3);
            t0 = csub(_mm512_add_epi64(t0, r0), pv);
            t1 = csub(_mm512_add_epi64(t1, r1), pv);
            t2 = csub(_mm512_add_epi64(t2, r2), pv);
            t3 = csub(_mm512_add_epi64(t3, r3), pv);
        }
        STOREU(out + k, t0);
        STOREU(out + k + 8, t1);
        STOREU(out + k + 16, t2);
        STOREU(out + k + 24, t3);
    }
    for (; k + 8 <= n; k += 8) {
        __m512i total = zero;
        for (size_t i0 = 0; i0 < terms; i0 += K) {
            const size_t i1 = i0 + K < terms ? i0 + K : terms;
            __m512i lo = zero, hi = zero, r;
            for (size_t i = i0; i < i1; i++) {
                const __m512i yv = LOADU(y[i] + k), cv = bcast(c52[i]);
                lo = _mm512_madd52lo_epu64(lo, yv, cv);
                hi = _mm512_madd52hi_epu64(hi, yv, cv);
            }
            CONV_MONT(lo, hi, r);
            total = csub(_mm512_add_epi64(total, r), pv);
        }
        STOREU(out + k, total);
    }
#undef CONV_MONT
    tsr_conv_row_tail(m, out, y, cr, k, n);
}

/*
 * Inner products for q < 2^50: per product two madds accumulate the low and
 * high 52-bit halves; each chunk of K products (K keeps hi < 2^52 - q - 2,
 * and K <= IFMA_MAX_CHUNK the low halves' sum below 2^64)
 * is Montgomery-reduced, r = V 2^-52 mod q with r < 2^52, then multiplied by
 * 2^52 mod q (Shoup) to remove the Montgomery factor.
 */
typedef struct dotc {
    __m512i q, negq, mask, zero, one, qinv, r52, r52p;
} dotc;

TGT static INL __m512i dot_reduce(__m512i lo, __m512i hi, const dotc *c) {
    hi = _mm512_add_epi64(hi, _mm512_srli_epi64(lo, 52));
    lo = _mm512_and_si512(lo, c->mask);
    __m512i mm = _mm512_madd52lo_epu64(c->zero, lo, c->qinv);
    __m512i r = _mm512_madd52hi_epu64(hi, mm, c->q);
    r = _mm512_mask_add_epi64(r, _mm512_test_epi64_mask(lo, lo), r, c->one);
    __m512i qh = _mm512_madd52hi_epu64(c->zero, r, c->r52p);
    __m512i t = _mm512_madd52lo_epu64(c->zero, r, c->r52);
    t = _mm512_and_si512(_mm512_madd52lo_epu64(t, qh, c->negq), c->mask);
    return csub(t, c->q);
}

TGT static void dot2_ifma(const tsr_modulus *m, uint64_t *out0, uint64_t *out1,
                          const uint64_t *const *x, const uint64_t *const *y0,
                          const uint64_t *const *y1, size_t terms, size_t n) {
    const uint64_t q = m->q;
    if ((q & (q - 1)) == 0 || m->bits > 62 || terms == 0) { /* Barrett needs q not 2^k */
        tsr_ring_kernels_for(TSR_SIMD_AVX512)->dot2(m, out0, out1, x, y0, y1, terms, n);
        return;
    }
    if (q >= IFMA_MAX_Q || (q & 1) == 0) { /* Montgomery needs q odd */
        dot2_wide(m, out0, out1, x, y0, y1, terms, n);
        return;
    }
    const uint64_t hmax = (uint64_t)(((tsr_u128)(q - 1) * (q - 1)) >> 52);
    size_t K = (size_t)((((uint64_t)1 << 52) - q - 2) / (hmax + 2));
    if (K > IFMA_MAX_CHUNK) K = IFMA_MAX_CHUNK; /* the low halves' 64-bit sum */
    if (K > terms) K = terms;
    if (K < 1) K = 1;
    uint64_t qinv = 1;
    for (int it = 0; it < 6; it++) qinv *= 2 - q * qinv;
    const uint64_t mask52 = ((uint64_t)1 << 52) - 1;
    const uint64_t r52 = tsr_modq_reduce64(m, (uint64_t)1 << 52);
    dotc c;
    c.q = bcast(q);
    c.negq = bcast(((uint64_t)1 << 52) - q);
    c.mask = bcast(mask52);
    c.zero = _mm512_setzero_si512();
    c.one = bcast(1);
    c.qinv = bcast((0 - qinv) & mask52);
    c.r52 = bcast(r52);
    c.r52p = bcast((uint64_t)(((tsr_u128)r52 << 52) / q));
    size_t k = 0;
    for (; k + 8 <= n; k += 8) {
        __m512i t0 = c.zero, t1 = c.zero;
        for (size_t j0 = 0; j0 < terms; j0 += K) {
            const size_t j1 = j0 + K < terms ? j0 + K : terms;
            __m512i lo0 = c.zero, hi0 = c.zero, lo1 = c.zero, hi1 = c.zero;
            for (size_t j = j0; j < j1; j++) {
                const __m512i xv = LOADU(x[j] + k), a = LOADU(y0[j] + k);
                lo0 = _mm512_madd52lo_epu64(lo0, xv, a);
                hi0 = _mm512_madd52hi_epu64(hi0, xv, a);
                if (out1) {
                    const __m512i b = LOADU(y1[j] + k);
                    lo1 = _mm512_madd52lo_epu64(lo1, xv, b);
                    hi1 = _mm512_madd52hi_epu64(hi1, xv, b);
                }
            }
            t0 = csub(_mm512_add_epi64(t0, dot_reduce(lo0, hi0, &c)), c.q);
            if (out1) t1 = csub(_mm512_add_epi64(t1, dot_reduce(lo1, hi1, &c)), c.q);
        }
        STOREU(out0 + k, t0);
        if (out1) STOREU(out1 + k, t1);
    }
    tsr_dot2_tail(m, out0, out1, x, y0, y1, terms, k, n);
}

/* ---- Lemire's rejection rule (ring/sample.c's ChaCha12 stream) ----------- */

/*
 * kernels.h's squeeze_lemire for q < 2^52: the high word of v q from one 52-bit product.
 * With v = vh 2^52 + vl (vh < 2^12, vl < 2^52) and vl q = H 2^52 + lo (H = madd52hi, lo <
 * 2^52): v q = 2^52 X + lo with X = vh q + H < 2^64, so floor(v q / 2^64) = X >> 12 (lo
 * cannot carry past the 12 bits dropped). The keep test is the AVX-512 one (low word of v q
 * against t = 2^64 mod q); the AVX-512 kernel's high word takes four 32-bit products.
 */
TGT static size_t squeeze_lemire_ifma(uint64_t q, uint64_t *out, const uint64_t *in, size_t n) {
    if (q >> 52) return tsr_ring_kernels_for(TSR_SIMD_AVX512)->squeeze_lemire(q, out, in, n);
    const uint64_t t = ((uint64_t)0 - q) % q;
    const __m512i qv = bcast(q), tv = bcast(t), mask52 = bcast(((uint64_t)1 << 52) - 1);
    const __m512i zero = _mm512_setzero_si512();
    size_t k = 0, i = 0;
    for (; i + 8 <= n; i += 8) {
        const __m512i v = LOAD(in + i);
        const __mmask8 keep = _mm512_cmpge_epu64_mask(_mm512_mullo_epi64(v, qv), tv);
        const __m512i h = _mm512_madd52hi_epu64(zero, _mm512_and_si512(v, mask52), qv);
        const __m512i x = _mm512_add_epi64(_mm512_mullo_epi64(_mm512_srli_epi64(v, 52), qv), h);
        STORE(out + k, _mm512_maskz_compress_epi64(keep, _mm512_srli_epi64(x, 12)));
        k += (size_t)__builtin_popcount((unsigned)keep);
    }
    return tsr_squeeze_lemire_tail(q, t, out, k, in, i, n);
}

/* ---- table ---------------------------------------------------------------- */

/* Only the kernels this file implements; kernels.c fills the rest from the
 * AVX-512 table. */
const tsr_ring_kernels tsr_ring_kernels_ifma = {
    .family = TSR_SIMD_AVX512IFMA,
    .ntt_fwd = ntt_fwd_ifma,
    .ntt_inv = ntt_inv_ifma,
    .ntt_fwd_outer = ntt_fwd_outer_ifma,
    .ntt_fwd_inner = ntt_fwd_inner_ifma,
    .ntt_inv_inner = ntt_inv_inner_ifma,
    .ntt_inv_outer = ntt_inv_outer_ifma,
    .mul = mul_ifma,
    .mul_add = mul_add_ifma,
    .mul_scalar = mul_scalar_ifma,
    .mul_scalar_add = mul_scalar_add_ifma,
    .mul_shoup = mul_shoup_ifma,
    .conv_row = conv_row_ifma,
    .dot2 = dot2_ifma,
    .sub_mul_scalar_add = sub_mul_scalar_add_ifma,
    .squeeze_lemire = squeeze_lemire_ifma,
};

#endif
