/*
 * ring/kernels_avx512.c - AVX-512F/DQ kernels with 64-bit lanes for any
 * prime q < 2^62 (the IFMA family uses its NTTs and element-wise kernels for primes >= 2^50;
 * its inner products and conversion rows have 52-bit-limb versions there, kernels_ifma.c).
 *
 * AVX-512F has no 64x64 -> 128-bit multiply: the high word is assembled from
 * four 32x32 -> 64 products (vpmuludq), the low word comes from vpmullq
 * (AVX512DQ). Shoup products (NTT twiddles, scalars) need one high word and
 * two low words; Barrett products (a * b with both varying) need the full
 * 128-bit product plus one high word.
 *
 * Forward NTT: Harvey butterflies with values in [0, 4q) (q < 2^62 keeps
 * 4q < 2^64); the last three stages are done in registers with the same
 * interleave scheme as the IFMA kernel (see kernels_ifma.c).
 *
 * Every function carries its own target attribute (run-time dispatch).
 */
#include "ring/kernels.h"

#include <string.h>

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>
#include <math.h>

#define TGT __attribute__((target("avx512f,avx512vl,avx512dq,avx512bw")))
#define INL inline __attribute__((always_inline))

#define LOADU(p)     _mm512_loadu_si512((const void *)(p))
#define STOREU(p, v) _mm512_storeu_si512((void *)(p), (v))

TGT static INL __m512i bc(uint64_t v) {
    return _mm512_set1_epi64((long long)v);
}

/* x - m if x >= m else x (unsigned; x < 2m). */
TGT static INL __m512i csub(__m512i x, __m512i m) {
    return _mm512_min_epu64(x, _mm512_sub_epi64(x, m));
}

/* High 64 bits of a * b (exact), from four 32x32 products. bh = b >> 32. */
TGT static INL __m512i mulhi(__m512i a, __m512i b, __m512i bh) {
    const __m512i m32 = _mm512_set1_epi64(0xffffffffLL);
    __m512i ah = _mm512_srli_epi64(a, 32);
    __m512i p00 = _mm512_mul_epu32(a, b);
    __m512i p01 = _mm512_mul_epu32(a, bh);
    __m512i p10 = _mm512_mul_epu32(ah, b);
    __m512i p11 = _mm512_mul_epu32(ah, bh);
    __m512i mid = _mm512_add_epi64(_mm512_srli_epi64(p00, 32), _mm512_and_si512(p01, m32));
    mid = _mm512_add_epi64(mid, _mm512_and_si512(p10, m32));
    __m512i hi = _mm512_add_epi64(p11, _mm512_srli_epi64(p01, 32));
    hi = _mm512_add_epi64(hi, _mm512_srli_epi64(p10, 32));
    return _mm512_add_epi64(hi, _mm512_srli_epi64(mid, 32));
}

/* Full 128-bit product a * b: returns the high word, *lo the low word. */
TGT static INL __m512i mul128(__m512i a, __m512i b, __m512i *lo) {
    *lo = _mm512_mullo_epi64(a, b);
    return mulhi(a, b, _mm512_srli_epi64(b, 32));
}

/* a * w mod q in [0, 2q) for any 64-bit a; w < q, wp = floor(w 2^64 / q), wph = wp >> 32. */
TGT static INL __m512i shoup_lazy(__m512i a, __m512i w, __m512i wp, __m512i wph, __m512i q) {
    __m512i qh = mulhi(a, wp, wph);
    return _mm512_sub_epi64(_mm512_mullo_epi64(a, w), _mm512_mullo_epi64(qh, q));
}

/* Barrett constants for 64-bit lanes: x < q^2 -> x mod q. See barrett() below. */
typedef struct bar64 {
    __m512i q, mu, muh;
    __m128i sh_lo, sh_hi; /* shift counts s - 2 and 66 - s */
} bar64;

TGT static INL bar64 bar64_make(const tsr_modulus *m) {
    bar64 b;
    const int s = m->bits;
    /* mu = floor(2^(s + 62) / q) < 2^63 */
    uint64_t mu = (uint64_t)((((tsr_u128)1) << (s + 62)) / m->q);
    b.q = bc(m->q);
    b.mu = bc(mu);
    b.muh = bc(mu >> 32);
    b.sh_lo = _mm_cvtsi32_si128(s - 2);
    b.sh_hi = _mm_cvtsi32_si128(66 - s);
    return b;
}

/*
 * x = hi 2^64 + lo < q^2 (q < 2^62 with s = bitlen(q)) -> x mod q.
 * t = floor(x / 2^(s-2)) < 2^(s+2) <= 2^64; qhat = floor(t mu / 2^64) is at
 * most 2 below floor(x / q), so r = x - qhat q < 3q < 2^64 (computed mod 2^64).
 */
TGT static INL __m512i barrett(__m512i hi, __m512i lo, const bar64 *b) {
    __m512i t = _mm512_or_si512(_mm512_sll_epi64(hi, b->sh_hi), _mm512_srl_epi64(lo, b->sh_lo));
    __m512i qh = mulhi(t, b->mu, b->muh);
    __m512i r = _mm512_sub_epi64(lo, _mm512_mullo_epi64(qh, b->q));
    r = csub(r, _mm512_add_epi64(b->q, b->q));
    return csub(r, b->q);
}

/* ---- element-wise ------------------------------------------------------- */

TGT static void add_avx512(const tsr_modulus *m, uint64_t *out, const uint64_t *a,
                           const uint64_t *b, size_t n) {
    const __m512i q = bc(m->q);
    size_t i = 0;
    for (; i + 8 <= n; i += 8)
        STOREU(out + i, csub(_mm512_add_epi64(LOADU(a + i), LOADU(b + i)), q));
    for (; i < n; i++) out[i] = tsr_modq_add(a[i], b[i], m->q);
}

TGT static void sub_avx512(const tsr_modulus *m, uint64_t *out, const uint64_t *a,
                           const uint64_t *b, size_t n) {
    const __m512i q = bc(m->q);
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m512i d = _mm512_sub_epi64(LOADU(a + i), LOADU(b + i));
        STOREU(out + i, _mm512_min_epu64(d, _mm512_add_epi64(d, q)));
    }
    for (; i < n; i++) out[i] = tsr_modq_sub(a[i], b[i], m->q);
}

TGT static void neg_avx512(const tsr_modulus *m, uint64_t *out, const uint64_t *a, size_t n) {
    const __m512i q = bc(m->q);
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m512i x = LOADU(a + i);
        STOREU(out + i, _mm512_maskz_sub_epi64(_mm512_test_epi64_mask(x, x), q, x));
    }
    for (; i < n; i++) out[i] = tsr_modq_neg(a[i], m->q);
}

TGT static void add_scalar_avx512(const tsr_modulus *m, uint64_t *out, const uint64_t *a,
                                  uint64_t s, size_t n) {
    const __m512i q = bc(m->q), sv = bc(s);
    size_t i = 0;
    for (; i + 8 <= n; i += 8) STOREU(out + i, csub(_mm512_add_epi64(LOADU(a + i), sv), q));
    for (; i < n; i++) out[i] = tsr_modq_add(a[i], s, m->q);
}

TGT static void mul_scalar_avx512(const tsr_modulus *m, uint64_t *out, const uint64_t *a,
                                  uint64_t w, uint64_t wp, size_t n) {
    const __m512i q = bc(m->q), wv = bc(w), wpv = bc(wp), wph = bc(wp >> 32);
    size_t i = 0;
    for (; i + 8 <= n; i += 8) STOREU(out + i, csub(shoup_lazy(LOADU(a + i), wv, wpv, wph, q), q));
    for (; i < n; i++) out[i] = tsr_modq_mul_shoup(a[i], w, wp, m->q);
}

TGT static void mul_scalar_add_avx512(const tsr_modulus *m, uint64_t *out, const uint64_t *a,
                                      uint64_t w, uint64_t wp, size_t n) {
    const __m512i q = bc(m->q), wv = bc(w), wpv = bc(wp), wph = bc(wp >> 32);
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m512i r = csub(shoup_lazy(LOADU(a + i), wv, wpv, wph, q), q);
        STOREU(out + i, csub(_mm512_add_epi64(LOADU(out + i), r), q));
    }
    for (; i < n; i++) out[i] = tsr_modq_add(out[i], tsr_modq_mul_shoup(a[i], w, wp, m->q), m->q);
}

TGT static void mul_shoup_avx512(const tsr_modulus *m, uint64_t *out, const uint64_t *a,
                                 const uint64_t *w, const uint64_t *wp, size_t n) {
    const __m512i q = bc(m->q);
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m512i wpv = LOADU(wp + i);
        __m512i r = shoup_lazy(LOADU(a + i), LOADU(w + i), wpv, _mm512_srli_epi64(wpv, 32), q);
        STOREU(out + i, csub(r, q));
    }
    for (; i < n; i++) out[i] = tsr_modq_mul_shoup(a[i], w[i], wp[i], m->q);
}

TGT static void mul_avx512(const tsr_modulus *m, uint64_t *out, const uint64_t *a,
                           const uint64_t *b, size_t n) {
    const bar64 br = bar64_make(m);
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m512i lo, hi = mul128(LOADU(a + i), LOADU(b + i), &lo);
        STOREU(out + i, barrett(hi, lo, &br));
    }
    for (; i < n; i++) out[i] = tsr_modq_mul(m, a[i], b[i]);
}

TGT static void mul_add_avx512(const tsr_modulus *m, uint64_t *out, const uint64_t *a,
                               const uint64_t *b, size_t n) {
    const bar64 br = bar64_make(m);
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m512i lo, hi = mul128(LOADU(a + i), LOADU(b + i), &lo);
        __m512i r = barrett(hi, lo, &br);
        STOREU(out + i, csub(_mm512_add_epi64(LOADU(out + i), r), br.q));
    }
    for (; i < n; i++) {
        tsr_u128 x = (tsr_u128)a[i] * b[i] + out[i];
        out[i] = tsr_modq_reduce128(m, (uint64_t)(x >> 64), (uint64_t)x);
    }
}

/*
 * Basis-conversion row with 64-bit lanes: each term is a lazy Shoup product
 * y c mod p in [0, 2p) (any y < 2^64, c_sh = Shoup constant of c), reduced
 * to [0, p) and added modulo p.
 */
TGT static void conv_row_avx512(const tsr_modulus *m, uint64_t *out, const uint64_t *const *y,
                                const tsr_conv_coeffs *r, size_t n) {
    const __m512i q = bc(m->q);
    size_t k = 0;
    for (; k + 8 <= n; k += 8) {
        __m512i acc = _mm512_setzero_si512();
        for (size_t i = 0; i < r->terms; i++) {
            const uint64_t ci = r->c[i], cs = r->c_sh[i];
            __m512i t = shoup_lazy(LOADU(y[i] + k), bc(ci), bc(cs), bc(cs >> 32), q);
            acc = csub(_mm512_add_epi64(acc, csub(t, q)), q);
        }
        STOREU(out + k, acc);
    }
    tsr_conv_row_tail(m, out, y, r, k, n);
}

/* ---- NTT (64-bit lanes, q < 2^62) -------------------------------------- */

typedef struct ntt64_c {
    __m512i q, q2;
} ntt64_c;

/* Harvey forward butterfly: x, y < 4q -> x + wy, x - wy + 2q, both < 4q. */
TGT static INL void bf_fwd(__m512i *x, __m512i *y, __m512i w, __m512i wp, __m512i wph,
                           const ntt64_c c) {
    __m512i xx = csub(*x, c.q2);
    __m512i t = shoup_lazy(*y, w, wp, wph, c.q);
    *x = _mm512_add_epi64(xx, t);
    *y = _mm512_sub_epi64(_mm512_add_epi64(xx, c.q2), t);
}

/* Harvey inverse butterfly: x, y < 2q -> x + y, (x - y + 2q) w, both < 2q. */
TGT static INL void bf_inv(__m512i *x, __m512i *y, __m512i w, __m512i wp, __m512i wph,
                           const ntt64_c c) {
    __m512i xx = *x, yy = *y;
    *x = csub(_mm512_add_epi64(xx, yy), c.q2);
    *y = shoup_lazy(_mm512_add_epi64(_mm512_sub_epi64(xx, yy), c.q2), w, wp, wph, c.q);
}

/* Interleave / de-interleave of two vectors (see kernels_ifma.c). */
TGT static INL void ilv(__m512i *x, __m512i *y) {
    const __m512i lo = _mm512_set_epi64(11, 3, 10, 2, 9, 1, 8, 0);
    const __m512i hi = _mm512_set_epi64(15, 7, 14, 6, 13, 5, 12, 4);
    __m512i a = _mm512_permutex2var_epi64(*x, lo, *y);
    *y = _mm512_permutex2var_epi64(*x, hi, *y);
    *x = a;
}

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

#define BLOCK 4096

/* Passes work on a window a[0..e1) whose word 0 is transform word `base`
 * (twiddle indices use base + e; see kernels_ifma.c). */

/* Forward radix-4 pass for stages with M and 2M blocks (gaps g, g/2 >= 8) over [e0, e1),
 * reading src (a itself, or a block's input: the pass is the copy). */
TGT static INL void fwd_radix4(const tsr_ntt_table *t, uint64_t *a, const uint64_t *src, size_t M,
                               size_t g, size_t e0, size_t e1, size_t base, const ntt64_c c) {
    const size_t h = g / 2;
    const uint64_t *w = t->fwd, *wp = t->fwd_sh;
    size_t ib = (base + e0) / (2 * g);
    for (size_t e = e0; e < e1; e += 2 * g, ib++) {
        const size_t i1 = M + ib, i2 = 2 * M + 2 * ib, i3 = i2 + 1;
        const __m512i w1 = bc(w[i1]), w1p = bc(wp[i1]), w1h = bc(wp[i1] >> 32);
        const __m512i w2 = bc(w[i2]), w2p = bc(wp[i2]), w2h = bc(wp[i2] >> 32);
        const __m512i w3 = bc(w[i3]), w3p = bc(wp[i3]), w3h = bc(wp[i3] >> 32);
        uint64_t *p0 = a + e, *p1 = p0 + h, *p2 = p0 + g, *p3 = p2 + h;
        const uint64_t *s0 = src + e, *s1 = s0 + h, *s2 = s0 + g, *s3 = s2 + h;
        for (size_t j = 0; j < h; j += 8) {
            __m512i A = LOADU(s0 + j), B = LOADU(s1 + j), C = LOADU(s2 + j), D = LOADU(s3 + j);
            bf_fwd(&A, &C, w1, w1p, w1h, c);
            bf_fwd(&B, &D, w1, w1p, w1h, c);
            bf_fwd(&A, &B, w2, w2p, w2h, c);
            bf_fwd(&C, &D, w3, w3p, w3h, c);
            STOREU(p0 + j, A);
            STOREU(p1 + j, B);
            STOREU(p2 + j, C);
            STOREU(p3 + j, D);
        }
    }
}

TGT static INL void fwd_radix2(const tsr_ntt_table *t, uint64_t *a, size_t M, size_t g, size_t e0,
                               size_t e1, size_t base, const ntt64_c c) {
    size_t ib = (base + e0) / (2 * g);
    for (size_t e = e0; e < e1; e += 2 * g, ib++) {
        const uint64_t W = t->fwd[M + ib], Wp = t->fwd_sh[M + ib];
        const __m512i w = bc(W), wp = bc(Wp), wh = bc(Wp >> 32);
        uint64_t *p0 = a + e, *p1 = p0 + g;
        for (size_t j = 0; j < g; j += 8) {
            __m512i X = LOADU(p0 + j), Y = LOADU(p1 + j);
            bf_fwd(&X, &Y, w, wp, wh, c);
            STOREU(p0 + j, X);
            STOREU(p1 + j, Y);
        }
    }
}

/* Gaps 8, 4, 2, 1 on 16-word groups, output reduced to [0, q). */
TGT static INL void fwd_final4(const tsr_ntt_table *t, uint64_t *a, size_t e0, size_t e1,
                               size_t base, const ntt64_c c) {
    const size_t n = t->n;
    const uint64_t *w = t->fwd, *wp = t->fwd_sh;
    for (size_t le = e0; le < e1; le += 16) {
        const size_t e = base + le;
        __m512i X = LOADU(a + le), Y = LOADU(a + le + 8);
        const size_t i8 = n / 16 + e / 16;
        bf_fwd(&X, &Y, bc(w[i8]), bc(wp[i8]), bc(wp[i8] >> 32), c);
        ilv(&X, &Y);
        __m512i v = bcast2(wp + n / 8 + e / 8);
        bf_fwd(&X, &Y, bcast2(w + n / 8 + e / 8), v, _mm512_srli_epi64(v, 32), c);
        ilv(&X, &Y);
        v = bcast4(wp + n / 4 + e / 4);
        bf_fwd(&X, &Y, bcast4(w + n / 4 + e / 4), v, _mm512_srli_epi64(v, 32), c);
        ilv(&X, &Y);
        v = LOADU(wp + n / 2 + e / 2);
        bf_fwd(&X, &Y, LOADU(w + n / 2 + e / 2), v, _mm512_srli_epi64(v, 32), c);
        X = csub(csub(X, c.q2), c.q);
        Y = csub(csub(Y, c.q2), c.q);
        ilv(&X, &Y);
        STOREU(a + le, X);
        STOREU(a + le + 8, Y);
    }
}

/* The first r stages on len << r words (gaps down to len >= 8); output < 4q. */
TGT static INL void fwd_outer_body(const tsr_ntt_table *t, uint64_t *a, size_t len, unsigned r,
                                   const ntt64_c c) {
    const size_t size = len << r;
    size_t M = 1, g = size / 2;
    for (unsigned s = 0; s < r;) {
        if (r - s >= 2) {
            fwd_radix4(t, a, a, M, g, 0, size, 0, c);
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

/* Stages of one block of B >= 16 words (transform offset base), first stage with M blocks. */
TGT static INL void fwd_block_stages(const tsr_ntt_table *t, uint64_t *a, const uint64_t *src,
                                     size_t M, size_t B, size_t base, const ntt64_c c) {
    size_t gg = B / 2;
    if (src != a) { /* the first pass reads src (a block of 64 words or more: gap >= 32) */
        fwd_radix4(t, a, src, M, gg, 0, B, base, c);
        M *= 4;
        gg /= 4;
    }
    while (gg > 8) {
        if (gg >= 32) {
            fwd_radix4(t, a, a, M, gg, 0, B, base, c);
            M *= 4;
            gg /= 4;
        } else {
            fwd_radix2(t, a, M, gg, 0, B, base, c);
            M *= 2;
            gg /= 2;
        }
    }
    fwd_final4(t, a, 0, B, base, c);
}

static unsigned full_split(size_t n) {
    unsigned r = 0;
    while ((n >> r) > BLOCK) r++;
    return r;
}

TGT static void ntt_fwd_avx512(const tsr_ntt_table *t, uint64_t *a) {
    const size_t n = t->n;
    if (n < 16) {
        tsr_ring_kernels_portable.ntt_fwd(t, a);
        return;
    }
    const ntt64_c c = { bc(t->mod.q), bc(2 * t->mod.q) };
    const unsigned r = full_split(n);
    const size_t B = n >> r;
    fwd_outer_body(t, a, B, r, c);
    for (size_t e0 = 0; e0 < n; e0 += B)
        fwd_block_stages(t, a + e0, a + e0, (size_t)1 << r, B, e0, c);
}

TGT static void ntt_fwd_outer_avx512(const tsr_ntt_table *t, uint64_t *a, size_t len, unsigned r) {
    if (len < 8 || len % 8) {
        tsr_ring_kernels_portable.ntt_fwd_outer(t, a, len, r);
        return;
    }
    const ntt64_c c = { bc(t->mod.q), bc(2 * t->mod.q) };
    fwd_outer_body(t, a, len, r, c);
}

TGT static void ntt_fwd_inner_avx512(const tsr_ntt_table *t, uint64_t *a, const uint64_t *src,
                                     size_t b, unsigned r, tsr_prefetch *pf) {
    const size_t B = t->n >> r;
    if (B < 16) {
        tsr_ring_kernels_portable.ntt_fwd_inner(t, a, src, b, r, pf);
        return;
    }
    if (a != src && B < 64) { /* below one radix-4 pass's span: copy first */
        memcpy(a, src, B * sizeof *a);
        src = a;
    }
    const ntt64_c c = { bc(t->mod.q), bc(2 * t->mod.q) };
    fwd_block_stages(t, a, src, (size_t)1 << r, B, b * B, c);
}

/* Inverse: gaps 1, 2, 4, 8 on 16-word groups (inputs < 2q, outputs < 2q). */
TGT static INL void inv_first4(const tsr_ntt_table *t, uint64_t *a, size_t e0, size_t e1,
                               size_t base, const ntt64_c c) {
    const size_t n = t->n;
    const uint64_t *w = t->inv, *wp = t->inv_sh;
    for (size_t le = e0; le < e1; le += 16) {
        const size_t e = base + le;
        __m512i X = LOADU(a + le), Y = LOADU(a + le + 8);
        dilv(&X, &Y);
        __m512i v = LOADU(wp + n / 2 + e / 2);
        bf_inv(&X, &Y, LOADU(w + n / 2 + e / 2), v, _mm512_srli_epi64(v, 32), c);
        dilv(&X, &Y);
        v = bcast4(wp + n / 4 + e / 4);
        bf_inv(&X, &Y, bcast4(w + n / 4 + e / 4), v, _mm512_srli_epi64(v, 32), c);
        dilv(&X, &Y);
        v = bcast2(wp + n / 8 + e / 8);
        bf_inv(&X, &Y, bcast2(w + n / 8 + e / 8), v, _mm512_srli_epi64(v, 32), c);
        dilv(&X, &Y);
        const size_t i8 = n / 16 + e / 16;
        bf_inv(&X, &Y, bc(w[i8]), bc(wp[i8]), bc(wp[i8] >> 32), c);
        STOREU(a + le, X);
        STOREU(a + le + 8, Y);
    }
}

/* Inverse radix-4: stages with 2H blocks (gap g) then H blocks (gap 2g), g >= 8. */
TGT static INL void inv_radix4(const tsr_ntt_table *t, uint64_t *a, size_t H, size_t g, size_t e0,
                               size_t e1, size_t base, const ntt64_c c) {
    const uint64_t *w = t->inv, *wp = t->inv_sh;
    size_t ib = (base + e0) / (4 * g);
    for (size_t e = e0; e < e1; e += 4 * g, ib++) {
        const size_t i1 = 2 * H + 2 * ib, i2 = i1 + 1, i3 = H + ib;
        const __m512i w1 = bc(w[i1]), w1p = bc(wp[i1]), w1h = bc(wp[i1] >> 32);
        const __m512i w2 = bc(w[i2]), w2p = bc(wp[i2]), w2h = bc(wp[i2] >> 32);
        const __m512i w3 = bc(w[i3]), w3p = bc(wp[i3]), w3h = bc(wp[i3] >> 32);
        uint64_t *p0 = a + e, *p1 = p0 + g, *p2 = p0 + 2 * g, *p3 = p2 + g;
        for (size_t j = 0; j < g; j += 8) {
            __m512i A = LOADU(p0 + j), B = LOADU(p1 + j), C = LOADU(p2 + j), D = LOADU(p3 + j);
            bf_inv(&A, &B, w1, w1p, w1h, c);
            bf_inv(&C, &D, w2, w2p, w2h, c);
            bf_inv(&A, &C, w3, w3p, w3h, c);
            bf_inv(&B, &D, w3, w3p, w3h, c);
            STOREU(p0 + j, A);
            STOREU(p1 + j, B);
            STOREU(p2 + j, C);
            STOREU(p3 + j, D);
        }
    }
}

TGT static INL void inv_radix2(const tsr_ntt_table *t, uint64_t *a, size_t h, size_t g, size_t e0,
                               size_t e1, size_t base, const ntt64_c c) {
    size_t ib = (base + e0) / (2 * g);
    for (size_t e = e0; e < e1; e += 2 * g, ib++) {
        const uint64_t W = t->inv[h + ib], Wp = t->inv_sh[h + ib];
        const __m512i w = bc(W), wp = bc(Wp), wh = bc(Wp >> 32);
        uint64_t *p0 = a + e, *p1 = p0 + g;
        for (size_t j = 0; j < g; j += 8) {
            __m512i X = LOADU(p0 + j), Y = LOADU(p1 + j);
            bf_inv(&X, &Y, w, wp, wh, c);
            STOREU(p0 + j, X);
            STOREU(p1 + j, Y);
        }
    }
}

/* Inverse stages with gaps 1 .. S/2 on one block of S >= 16 words (transform offset base). */
TGT static INL void inv_block_stages(const tsr_ntt_table *t, uint64_t *a, size_t S, size_t base,
                                     const ntt64_c c) {
    const size_t n = t->n;
    inv_first4(t, a, 0, S, base, c);
    size_t g = 16;
    while (g < S) {
        if (4 * g <= S) {
            inv_radix4(t, a, n / (4 * g), g, 0, S, base, c);
            g *= 4;
        } else {
            inv_radix2(t, a, n / (2 * g), g, 0, S, base, c);
            g *= 2;
        }
    }
}

/* Stages with gaps len .. size/4, then the last one with N^-1 folded in; output < q. */
TGT static INL void inv_outer_body(const tsr_ntt_table *t, uint64_t *a, size_t len, unsigned r,
                                   const ntt64_c c) {
    const size_t size = len << r;
    size_t g = len;
    while (g < size / 2) {
        if (2 * g < size / 2) {
            inv_radix4(t, a, size / (4 * g), g, 0, size, 0, c);
            g *= 4;
        } else {
            inv_radix2(t, a, size / (2 * g), g, 0, size, 0, c);
            g *= 2;
        }
    }
    const size_t half = size / 2;
    const __m512i ni = bc(t->n_inv), nip = bc(t->n_inv_sh), nih = bc(t->n_inv_sh >> 32);
    const __m512i wl = bc(t->inv_last), wlp = bc(t->inv_last_sh), wlh = bc(t->inv_last_sh >> 32);
    for (size_t j = 0; j < half; j += 8) {
        __m512i X = LOADU(a + j), Y = LOADU(a + half + j);
        __m512i u = shoup_lazy(_mm512_add_epi64(X, Y), ni, nip, nih, c.q);
        __m512i v = shoup_lazy(_mm512_add_epi64(_mm512_sub_epi64(X, Y), c.q2), wl, wlp, wlh, c.q);
        STOREU(a + j, csub(u, c.q));
        STOREU(a + half + j, csub(v, c.q));
    }
}

TGT static void ntt_inv_avx512(const tsr_ntt_table *t, uint64_t *a) {
    const size_t n = t->n;
    if (n < 32) {
        tsr_ring_kernels_portable.ntt_inv(t, a);
        return;
    }
    const ntt64_c c = { bc(t->mod.q), bc(2 * t->mod.q) };
    /* Stages with gap < n/2 in blocks of S words (first four in registers). */
    const unsigned r = n / 2 < BLOCK ? 1 : full_split(n);
    const size_t S = n >> r;
    for (size_t e0 = 0; e0 < n; e0 += S) inv_block_stages(t, a + e0, S, e0, c);
    inv_outer_body(t, a, S, r, c);
}

TGT static void ntt_inv_inner_avx512(const tsr_ntt_table *t, uint64_t *a, const uint64_t *src,
                                     size_t b, unsigned r, tsr_prefetch *pf) {
    const size_t B = t->n >> r;
    if (r > 0 && B < 16) {
        tsr_ring_kernels_portable.ntt_inv_inner(t, a, src, b, r, pf);
        return;
    }
    if (a != src) memcpy(a, src, B * sizeof *a);
    if (r == 0) {
        ntt_inv_avx512(t, a);
        return;
    }
    const ntt64_c c = { bc(t->mod.q), bc(2 * t->mod.q) };
    inv_block_stages(t, a, B, b * B, c);
}

TGT static void ntt_inv_outer_avx512(const tsr_ntt_table *t, uint64_t *a, size_t len, unsigned r) {
    if (r == 0) return;
    if (len < 8 || len % 8) {
        tsr_ring_kernels_portable.ntt_inv_outer(t, a, len, r);
        return;
    }
    const ntt64_c c = { bc(t->mod.q), bc(2 * t->mod.q) };
    inv_outer_body(t, a, len, r, c);
}

/* out = a + d where a > h (unsigned), else a; the tail is the portable kernel's loop. */
TGT static void add_above_avx512(uint64_t *out, const uint64_t *a, uint64_t h, uint64_t d,
                                 size_t n) {
    const __m512i vh = bc(h), vd = bc(d);
    size_t k = 0;
    for (; k + 8 <= n; k += 8) {
        const __m512i x = LOADU(a + k);
        STOREU(out + k, _mm512_mask_add_epi64(x, _mm512_cmpgt_epu64_mask(x, vh), x, vd));
    }
    for (; k < n; k++) out[k] = a[k] + (a[k] > h ? d : 0);
}

/* Streaming (non-temporal) copy; dst must be 64-byte aligned for the stores. */
TGT static void copy_stream_avx512(uint64_t *dst, const uint64_t *src, size_t n) {
    size_t i = 0;
    if (((uintptr_t)dst & 63) == 0)
        for (; i + 8 <= n; i += 8) _mm512_stream_si512((void *)(dst + i), LOADU(src + i));
    for (; i < n; i++) dst[i] = src[i];
}

/*
 * Gather out[j] = a[idx[j]], 8 outputs at a time. When the 8 indices lie in
 * one aligned group of 8 words (always for the NTT-domain automorphisms:
 * output group k reads one input group, permuted), one load and one
 * vpermq; otherwise a hardware gather.
 */
TGT static void permute_avx512(uint64_t *out, const uint64_t *a, const uint32_t *idx, size_t n,
                               int stream_ok) {
    const __m512i hi = _mm512_set1_epi64(~(int64_t)7);
    const int stream = stream_ok && ((uintptr_t)out & 63) == 0;
    size_t j = 0;
    for (; j + 8 <= n; j += 8) {
        const __m512i iv = _mm512_cvtepu32_epi64(_mm256_loadu_si256((const __m256i *)(idx + j)));
        const uint64_t g = idx[j] & ~(uint32_t)7;
        __m512i v;
        /* g + 8 <= n: a group may be partial when n is not a multiple of 8 */
        if (g + 8 <= n && _mm512_cmpeq_epi64_mask(_mm512_and_si512(iv, hi),
                                                  _mm512_set1_epi64((int64_t)g)) == 0xFF)
            v = _mm512_permutexvar_epi64(iv, LOADU(a + g));
        else
            v = _mm512_i64gather_epi64(iv, (const void *)a, 8);
        if (stream)
            _mm512_stream_si512((void *)(out + j), v);
        else
            STOREU(out + j, v);
    }
    for (; j < n; j++) out[j] = a[idx[j]];
    if (stream) _mm_sfence();
}

TGT static void sub_mul_scalar_add_avx512(const tsr_modulus *m, uint64_t *out, const uint64_t *a,
                                          const uint64_t *b, uint64_t w, uint64_t wp,
                                          const uint64_t *c, int stream, size_t n) {
    const __m512i q = bc(m->q), wv = bc(w), wpv = bc(wp), wph = bc(wp >> 32);
    const int nt = stream && ((uintptr_t)out & 63) == 0;
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m512i d = _mm512_sub_epi64(LOADU(a + i), LOADU(b + i));
        d = _mm512_min_epu64(d, _mm512_add_epi64(d, q));
        __m512i r = csub(shoup_lazy(d, wv, wpv, wph, q), q);
        if (c) r = csub(_mm512_add_epi64(r, LOADU(c + i)), q);
        if (nt)
            _mm512_stream_si512((void *)(out + i), r);
        else
            STOREU(out + i, r);
    }
    tsr_ring_kernels_portable.sub_mul_scalar_add(m, out + i, a + i, b + i, w, wp, c ? c + i : NULL,
                                                 0, n - i);
}

/* The portable loop 8 coefficients at a time (same operations in the same
 * order: separate multiply and add, so the doubles match bit for bit). */
TGT static void quotient_est_avx512(uint64_t *u, const uint64_t *const *y, const double *inv,
                                    size_t terms, size_t n) {
    const __m512d eps = _mm512_set1_pd(0x1p-32), one_eps = _mm512_set1_pd(1 - 0x1p-32);
    const __m512i none = _mm512_set1_epi64(-1);
    size_t k = 0;
    for (; k + 8 <= n; k += 8) {
        __m512d s = _mm512_setzero_pd();
        for (size_t i = 0; i < terms; i++) {
            const __m512d t =
                _mm512_mul_pd(_mm512_cvtepu64_pd(LOADU(y[i] + k)), _mm512_set1_pd(inv[i]));
            s = _mm512_add_pd(s, t);
        }
        const __m512d fl = _mm512_roundscale_pd(s, _MM_FROUND_TO_NEG_INF | _MM_FROUND_NO_EXC);
        const __m512d frac = _mm512_sub_pd(s, fl);
        const __mmask8 bad = _mm512_cmp_pd_mask(frac, eps, _CMP_LT_OQ) |
                             _mm512_cmp_pd_mask(frac, one_eps, _CMP_GT_OQ);
        STOREU(u + k, _mm512_mask_mov_epi64(_mm512_cvttpd_epu64(fl), bad, none));
    }
    for (; k < n; k++) { /* tail: the portable loop */
        double s = 0;
        for (size_t i = 0; i < terms; i++) s += (double)y[i][k] * inv[i];
        const double fl = floor(s), frac = s - fl;
        u[k] = frac < 0x1p-32 || frac > 1 - 0x1p-32 ? UINT64_MAX : (uint64_t)fl;
    }
}

/* kernels.h's quotient_round 8 coefficients at a time: tsr_quotient_round_tail's operations
 * in its order (vcvtqq2pd is the signed conversion, exact-rounded like cvtsi2sd; separate
 * multiply and add, truncation), so the words match it bit for bit. */
TGT static void quotient_round_avx512(uint64_t *v, const uint64_t *const *y, const double *inv,
                                      size_t terms, size_t n) {
    const __m512d half = _mm512_set1_pd(0.5);
    size_t k = 0;
    for (; k + 8 <= n; k += 8) {
        __m512d s = half;
        for (size_t i = 0; i < terms; i++) {
            const __m512d t =
                _mm512_mul_pd(_mm512_cvtepi64_pd(LOADU(y[i] + k)), _mm512_set1_pd(inv[i]));
            s = _mm512_add_pd(s, t);
        }
        STOREU(v + k, _mm512_cvttpd_epu64(s));
    }
    tsr_quotient_round_tail(v, y, inv, terms, k, n);
}

/* ---- inner products ------------------------------------------------------ */

/*
 * out0 = sum_j x[j] y0[j], out1 = sum_j x[j] y1[j] mod q (kernels.h), 8 coefficients per pass:
 * the 128-bit products (vpmullq and four vpmuludq) are summed exactly in two 64-bit words
 * (a carry mask per term) and reduced once per chunk, as the AVX2 family's scalar dot2 does
 * (kernels_avx2.c, dot_red): a sum s < 2^(b+63) (b = bitlen(q), q not a power of two) gives
 * t = floor(s / 2^(b-1)) < 2^64, est = floor(t mu / 2^64) with mu = floor(2^(b+63) / q) at
 * most 2 below floor(s / q), r = s - est q < 3q. Chunks: floor((2^(b+63) - 1) / (q-1)^2)
 * products first (8 for 60-bit primes, 4 for 61-bit), then one fewer room for the carry
 * r < q. The IFMA family has its own for these primes (kernels_ifma.c, dot2_wide: the same
 * chunks and reduction, seven madds per product).
 */
typedef struct dotc64 {
    __m512i q, q2, mu, muh;
    __m128i sh, shl; /* b - 1 and 65 - b */
    size_t first, next;
} dotc64;

TGT static INL __m512i dot_reduce64(__m512i hi, __m512i lo, const dotc64 *d) {
    const __m512i t = _mm512_or_si512(_mm512_sll_epi64(hi, d->shl), _mm512_srl_epi64(lo, d->sh));
    const __m512i est = mulhi(t, d->mu, d->muh);
    const __m512i r = _mm512_sub_epi64(lo, _mm512_mullo_epi64(est, d->q)); /* < 3q */
    return csub(csub(r, d->q2), d->q);
}

/* (hi:lo) += a * b, exactly (the caller keeps the sum below 2^128). */
TGT static INL void mac128(__m512i *hi, __m512i *lo, __m512i a, __m512i b) {
    __m512i plo, phi = mul128(a, b, &plo);
    *lo = _mm512_add_epi64(*lo, plo);
    const __mmask8 carry = _mm512_cmplt_epu64_mask(*lo, plo);
    const __m512i h = _mm512_add_epi64(*hi, phi);
    *hi = _mm512_mask_add_epi64(h, carry, h, _mm512_set1_epi64(1));
}

TGT static void dot2_avx512(const tsr_modulus *m, uint64_t *out0, uint64_t *out1,
                            const uint64_t *const *x, const uint64_t *const *y0,
                            const uint64_t *const *y1, size_t terms, size_t n) {
    const uint64_t q = m->q;
    if ((q & (q - 1)) == 0 || m->bits > 62 || terms == 0) { /* mu needs q not a power of 2 */
        tsr_ring_kernels_for(TSR_SIMD_AVX2)->dot2(m, out0, out1, x, y0, y1, terms, n);
        return;
    }
    dotc64 d;
    const unsigned sh = (unsigned)m->bits - 1;
    const uint64_t mu = tsr_wide_barrett(m, (tsr_u128)(q - 1) * (q - 1), &d.first, &d.next);
    d.q = bc(q);
    d.q2 = bc(2 * q);
    d.mu = bc(mu);
    d.muh = bc(mu >> 32);
    d.sh = _mm_cvtsi32_si128((int)sh);
    d.shl = _mm_cvtsi32_si128((int)(64 - sh));
    const __m512i zero = _mm512_setzero_si512();
    size_t k = 0;
    for (; k + 8 <= n; k += 8) {
        __m512i r0 = zero, r1 = zero;
        size_t j = 0, chunk = d.first;
        while (j < terms) {
            const size_t end = j + chunk < terms ? j + chunk : terms;
            __m512i lo0 = r0, hi0 = zero, lo1 = r1, hi1 = zero;
            for (; j < end; j++) {
                const __m512i xv = LOADU(x[j] + k);
                mac128(&hi0, &lo0, xv, LOADU(y0[j] + k));
                if (out1) mac128(&hi1, &lo1, xv, LOADU(y1[j] + k));
            }
            r0 = dot_reduce64(hi0, lo0, &d);
            if (out1) r1 = dot_reduce64(hi1, lo1, &d);
            chunk = d.next;
        }
        STOREU(out0 + k, r0);
        if (out1) STOREU(out1 + k, r1);
    }
    tsr_dot2_tail(m, out0, out1, x, y0, y1, terms, k, n);
}

/* ---- Lemire's rejection rule (ring/sample.c's ChaCha12 stream) ----------- */

/* kernels.h: 8 words per pass, w = v q as vpmullq + mulhi, the kept high words packed by a
 * register compress and stored whole (k <= i, so in place the store never reaches words not
 * yet loaded, and out of place it stays below out + n). */
TGT static size_t squeeze_lemire_avx512(uint64_t q, uint64_t *out, const uint64_t *in, size_t n) {
    const uint64_t t = ((uint64_t)0 - q) % q;
    const __m512i qv = bc(q), qh = bc(q >> 32), tv = bc(t);
    size_t k = 0, i = 0;
    for (; i + 8 <= n; i += 8) {
        const __m512i v = LOADU(in + i);
        const __mmask8 keep = _mm512_cmpge_epu64_mask(_mm512_mullo_epi64(v, qv), tv);
        STOREU(out + k, _mm512_maskz_compress_epi64(keep, mulhi(v, qv, qh)));
        k += (size_t)__builtin_popcount((unsigned)keep);
    }
    return tsr_squeeze_lemire_tail(q, t, out, k, in, i, n);
}

/* ---- ChaCha keystream, 16 blocks at a time (one per 32-bit lane) --------- */
_Static_assert(TSR_CHACHA_KERNEL_BLOCKS == 16, "kernels.h: TSR_CHACHA_KERNEL_BLOCKS is this width");

/* The quarter round on 16 lanes; AVX-512F rotates in one instruction (vprold), where AVX2
 * needs a byte shuffle or two shifts and an or. */
#define QRV(a, b, c, d)                                   \
    do {                                                  \
        a = _mm512_add_epi32(a, b);                       \
        d = _mm512_rol_epi32(_mm512_xor_si512(d, a), 16); \
        c = _mm512_add_epi32(c, d);                       \
        b = _mm512_rol_epi32(_mm512_xor_si512(b, c), 12); \
        a = _mm512_add_epi32(a, b);                       \
        d = _mm512_rol_epi32(_mm512_xor_si512(d, a), 8);  \
        c = _mm512_add_epi32(c, d);                       \
        b = _mm512_rol_epi32(_mm512_xor_si512(b, c), 7);  \
    } while (0)

/* Two independent quarter rounds, step by step. */
#define QRV2(a, b, c, d, e, f, g, h)                      \
    do {                                                  \
        a = _mm512_add_epi32(a, b);                       \
        e = _mm512_add_epi32(e, f);                       \
        d = _mm512_rol_epi32(_mm512_xor_si512(d, a), 16); \
        h = _mm512_rol_epi32(_mm512_xor_si512(h, e), 16); \
        c = _mm512_add_epi32(c, d);                       \
        g = _mm512_add_epi32(g, h);                       \
        b = _mm512_rol_epi32(_mm512_xor_si512(b, c), 12); \
        f = _mm512_rol_epi32(_mm512_xor_si512(f, g), 12); \
        a = _mm512_add_epi32(a, b);                       \
        e = _mm512_add_epi32(e, f);                       \
        d = _mm512_rol_epi32(_mm512_xor_si512(d, a), 8);  \
        h = _mm512_rol_epi32(_mm512_xor_si512(h, e), 8);  \
        c = _mm512_add_epi32(c, d);                       \
        g = _mm512_add_epi32(g, h);                       \
        b = _mm512_rol_epi32(_mm512_xor_si512(b, c), 7);  \
        f = _mm512_rol_epi32(_mm512_xor_si512(f, g), 7);  \
    } while (0)

/* Rows r[0..16) of 16 x 32-bit lanes -> r[b] = lane b of r[0..16) (16 x 16 transpose): 32-bit
 * and 64-bit unpacks transpose 4 x 4 blocks inside each 128-bit lane, then two rounds of
 * 128-bit lane shuffles transpose the 4 x 4 grid of lanes. */
TGT static INL void transpose16x32(__m512i r[16]) {
    __m512i t[16], u[16];
    for (int i = 0; i < 8; i++) {
        t[2 * i] = _mm512_unpacklo_epi32(r[2 * i], r[2 * i + 1]);
        t[2 * i + 1] = _mm512_unpackhi_epi32(r[2 * i], r[2 * i + 1]);
    }
    /* u[4h + j], 128-bit lane k: rows 4h .. 4h + 3 of block 4k + j */
    for (int h = 0; h < 4; h++) {
        const __m512i *v = t + 4 * h;
        u[4 * h + 0] = _mm512_unpacklo_epi64(v[0], v[2]);
        u[4 * h + 1] = _mm512_unpackhi_epi64(v[0], v[2]);
        u[4 * h + 2] = _mm512_unpacklo_epi64(v[1], v[3]);
        u[4 * h + 3] = _mm512_unpackhi_epi64(v[1], v[3]);
    }
    /* block 4k + j: lane k of u[j], u[4 + j], u[8 + j], u[12 + j] */
    for (int j = 0; j < 4; j++) {
        const __m512i v0 = _mm512_shuffle_i32x4(u[j], u[4 + j], 0x44); /* A0 A1 B0 B1 */
        const __m512i v1 = _mm512_shuffle_i32x4(u[j], u[4 + j], 0xee); /* A2 A3 B2 B3 */
        const __m512i w0 = _mm512_shuffle_i32x4(u[8 + j], u[12 + j], 0x44);
        const __m512i w1 = _mm512_shuffle_i32x4(u[8 + j], u[12 + j], 0xee);
        r[j] = _mm512_shuffle_i32x4(v0, w0, 0x88); /* A0 B0 C0 D0 */
        r[4 + j] = _mm512_shuffle_i32x4(v0, w0, 0xdd);
        r[8 + j] = _mm512_shuffle_i32x4(v1, w1, 0x88);
        r[12 + j] = _mm512_shuffle_i32x4(v1, w1, 0xdd);
    }
}

TGT static void chacha_avx512(uint64_t *out, const uint32_t key[8], const uint32_t nonce[3],
                              uint32_t ctr, size_t nblocks, unsigned rounds) {
    static const uint32_t sigma[4] = { 0x61707865u, 0x3320646eu, 0x79622d32u, 0x6b206574u };
    __m512i s[16];
    for (int i = 0; i < 4; i++) s[i] = _mm512_set1_epi32((int)sigma[i]);
    for (int i = 0; i < 8; i++) s[4 + i] = _mm512_set1_epi32((int)key[i]);
    for (int i = 0; i < 3; i++) s[13 + i] = _mm512_set1_epi32((int)nonce[i]);
    const __m512i lane = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
    size_t done = 0;
    /* 32 blocks per pass: two independent 16-lane states interleaved, so that each quarter
     * round's chain of dependent add / xor / rotate has another to overlap with */
    for (; done + 32 <= nblocks; done += 32) {
        const __m512i c0 = _mm512_add_epi32(_mm512_set1_epi32((int)(ctr + (uint32_t)done)), lane);
        const __m512i c1 = _mm512_add_epi32(c0, _mm512_set1_epi32(16));
        __m512i a0 = s[0], a1 = s[1], a2 = s[2], a3 = s[3], a4 = s[4], a5 = s[5], a6 = s[6],
                a7 = s[7], a8 = s[8], a9 = s[9], a10 = s[10], a11 = s[11], a12 = c0, a13 = s[13],
                a14 = s[14], a15 = s[15];
        __m512i b0 = s[0], b1 = s[1], b2 = s[2], b3 = s[3], b4 = s[4], b5 = s[5], b6 = s[6],
                b7 = s[7], b8 = s[8], b9 = s[9], b10 = s[10], b11 = s[11], b12 = c1, b13 = s[13],
                b14 = s[14], b15 = s[15];
        for (unsigned r = 0; r < rounds; r += 2) {
            QRV2(a0, a4, a8, a12, b0, b4, b8, b12); /* column round */
            QRV2(a1, a5, a9, a13, b1, b5, b9, b13);
            QRV2(a2, a6, a10, a14, b2, b6, b10, b14);
            QRV2(a3, a7, a11, a15, b3, b7, b11, b15);
            QRV2(a0, a5, a10, a15, b0, b5, b10, b15); /* diagonal round */
            QRV2(a1, a6, a11, a12, b1, b6, b11, b12);
            QRV2(a2, a7, a8, a13, b2, b7, b8, b13);
            QRV2(a3, a4, a9, a14, b3, b4, b9, b14);
        }
        __m512i x[16] = { a0, a1, a2, a3, a4, a5, a6, a7, a8, a9, a10, a11, a12, a13, a14, a15 };
        s[12] = c0;
        for (int i = 0; i < 16; i++) x[i] = _mm512_add_epi32(x[i], s[i]);
        transpose16x32(x);
        for (int b = 0; b < 16; b++) STOREU(out + 8 * (done + (size_t)b), x[b]);
        __m512i y[16] = { b0, b1, b2, b3, b4, b5, b6, b7, b8, b9, b10, b11, b12, b13, b14, b15 };
        s[12] = c1;
        for (int i = 0; i < 16; i++) y[i] = _mm512_add_epi32(y[i], s[i]);
        transpose16x32(y);
        for (int b = 0; b < 16; b++) STOREU(out + 8 * (done + 16 + (size_t)b), y[b]);
    }
    for (; done + 16 <= nblocks; done += 16) {
        s[12] = _mm512_add_epi32(_mm512_set1_epi32((int)(ctr + (uint32_t)done)), lane);
        __m512i x0 = s[0], x1 = s[1], x2 = s[2], x3 = s[3], x4 = s[4], x5 = s[5], x6 = s[6],
                x7 = s[7], x8 = s[8], x9 = s[9], x10 = s[10], x11 = s[11], x12 = s[12], x13 = s[13],
                x14 = s[14], x15 = s[15];
        for (unsigned r = 0; r < rounds; r += 2) {
            QRV(x0, x4, x8, x12); /* column round */
            QRV(x1, x5, x9, x13);
            QRV(x2, x6, x10, x14);
            QRV(x3, x7, x11, x15);
            QRV(x0, x5, x10, x15); /* diagonal round */
            QRV(x1, x6, x11, x12);
            QRV(x2, x7, x8, x13);
            QRV(x3, x4, x9, x14);
        }
        __m512i x[16] = { x0, x1, x2, x3, x4, x5, x6, x7, x8, x9, x10, x11, x12, x13, x14, x15 };
        for (int i = 0; i < 16; i++) x[i] = _mm512_add_epi32(x[i], s[i]);
        transpose16x32(x);
        /* block b is 16 little-endian words: out[8b + w] = x[2w] | x[2w + 1] << 32 */
        for (int b = 0; b < 16; b++) STOREU(out + 8 * (done + (size_t)b), x[b]);
    }
    if (done < nblocks) /* 8 at a time, then one by one */
        tsr_ring_kernels_for(TSR_SIMD_AVX2)
            ->chacha(out + 8 * done, key, nonce, ctr + (uint32_t)done, nblocks - done, rounds);
}
#undef QRV
#undef QRV2

const tsr_ring_kernels tsr_ring_kernels_avx512 = {
    .family = TSR_SIMD_AVX512,
    .ntt_fwd = ntt_fwd_avx512,
    .ntt_inv = ntt_inv_avx512,
    .ntt_fwd_outer = ntt_fwd_outer_avx512,
    .ntt_fwd_inner = ntt_fwd_inner_avx512,
    .ntt_inv_inner = ntt_inv_inner_avx512,
    .ntt_inv_outer = ntt_inv_outer_avx512,
    .add = add_avx512,
    .sub = sub_avx512,
    .neg = neg_avx512,
    .mul = mul_avx512,
    .mul_add = mul_add_avx512,
    .mul_scalar = mul_scalar_avx512,
    .mul_scalar_add = mul_scalar_add_avx512,
    .add_scalar = add_scalar_avx512,
    .add_above = add_above_avx512,
    .mul_shoup = mul_shoup_avx512,
    .conv_row = conv_row_avx512,
    .dot2 = dot2_avx512,
    .copy_stream = copy_stream_avx512,
    .permute = permute_avx512,
    .sub_mul_scalar_add = sub_mul_scalar_add_avx512,
    .quotient_est = quotient_est_avx512,
    .quotient_round = quotient_round_avx512,
    .chacha = chacha_avx512,
    .squeeze_lemire = squeeze_lemire_avx512,
};
#endif
