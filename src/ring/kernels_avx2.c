/*
 * ring/kernels_avx2.c - AVX2 kernels (4 x 64-bit lanes, any q < 2^62).
 *
 * AVX2 lacks unsigned 64-bit compares and 64-bit multiplies: a conditional
 * subtraction blends on the sign bit of x - m (valid for m <= 2^63, x < 2m),
 * and 64-bit products are assembled from 32x32 -> 64 vpmuludq. That makes
 * Shoup products (NTT butterflies, whole and split, scalar multiplies, the
 * ModDown tail) worthwhile (about 1.5x the portable NTT on Zen 3, docs/BENCHMARKS.md).
 * Basis-conversion rows stay scalar, where one mulx beats the emulation, but
 * with Montgomery reductions (two multiplies instead of the portable
 * reference's five; conv_row_x64 contains no AVX2 instruction, it is in this
 * table only so that AVX2 CPUs select it); general products (mul, mul_add, scalar too) reduce
 * with the inner products' one-multiply Barrett step, and inner products (dot2_x64, scalar too:
 * mulx with BMI2) the portable ones on two coefficients at a time with a one-multiply Barrett
 * reduction. Automorphism gathers (permute) use two vpermd per half group of 8 words (about 1.4x
 * the portable gather in `bench ring`; figures for every kernel in docs/BENCHMARKS.md).
 *
 * NTT: Harvey butterflies, values in [0, 4q); the last three forward stages
 * (first three inverse) run in registers on 8-word groups using the same
 * interleave scheme as the AVX-512 kernels, so all twiddle loads are plain
 * (broadcast) loads.
 *
 * The ChaCha keystream of seeded keys runs 8 blocks at once, one per 32-bit
 * lane.
 */
#include "ring/kernels.h"
#include "core/error.h"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>
#include <string.h>

/* conv_row_x64 takes rows of up to this many terms on its stack (the largest
 * conversions have TSR_RNS_MAX_PRIMES + 1 terms); longer rows go portable. */
#define CONV_MAX_TERMS 130

#define TGT __attribute__((target("avx2")))
#define INL inline __attribute__((always_inline))

#define LOADU(p)     _mm256_loadu_si256((const __m256i *)(p))
#define STOREU(p, v) _mm256_storeu_si256((__m256i *)(p), (v))

TGT static INL __m256i bc(uint64_t v) {
    return _mm256_set1_epi64x((long long)v);
}

/* x - m if x >= m else x, for m <= 2^63 and x < 2m (blend on the sign of x - m). */
TGT static INL __m256i csub(__m256i x, __m256i m) {
    __m256i y = _mm256_sub_epi64(x, m);
    return _mm256_castpd_si256(
        _mm256_blendv_pd(_mm256_castsi256_pd(y), _mm256_castsi256_pd(x), _mm256_castsi256_pd(y)));
}

/* High 64 bits of a * b; ah = a >> 32, bh = b >> 32. */
TGT static INL __m256i mulhi(__m256i a, __m256i ah, __m256i b, __m256i bh) {
    const __m256i m32 = _mm256_set1_epi64x(0xffffffffLL);
    __m256i p00 = _mm256_mul_epu32(a, b);
    __m256i p01 = _mm256_mul_epu32(a, bh);
    __m256i p10 = _mm256_mul_epu32(ah, b);
    __m256i p11 = _mm256_mul_epu32(ah, bh);
    __m256i mid = _mm256_add_epi64(_mm256_srli_epi64(p00, 32), _mm256_and_si256(p01, m32));
    mid = _mm256_add_epi64(mid, _mm256_and_si256(p10, m32));
    __m256i hi = _mm256_add_epi64(p11, _mm256_srli_epi64(p01, 32));
    hi = _mm256_add_epi64(hi, _mm256_srli_epi64(p10, 32));
    return _mm256_add_epi64(hi, _mm256_srli_epi64(mid, 32));
}

/* Low 64 bits of a * b; ah = a >> 32, bh = b >> 32. */
TGT static INL __m256i mullo(__m256i a, __m256i ah, __m256i b, __m256i bh) {
    __m256i cross = _mm256_add_epi64(_mm256_mul_epu32(a, bh), _mm256_mul_epu32(ah, b));
    return _mm256_add_epi64(_mm256_mul_epu32(a, b), _mm256_slli_epi64(cross, 32));
}

/* a * w mod q in [0, 2q) for any 64-bit a (Shoup); wh, wph, qh = high halves. */
TGT static INL __m256i shoup_lazy(__m256i a, __m256i w, __m256i wh, __m256i wp, __m256i wph,
                                  __m256i q, __m256i qh) {
    __m256i ah = _mm256_srli_epi64(a, 32);
    __m256i quot = mulhi(a, ah, wp, wph);
    __m256i t = mullo(a, ah, w, wh);
    return _mm256_sub_epi64(t, mullo(quot, _mm256_srli_epi64(quot, 32), q, qh));
}

/* ---- element-wise ------------------------------------------------------- */

TGT static void add_avx2(const tsr_modulus *m, uint64_t *out, const uint64_t *a, const uint64_t *b,
                         size_t n) {
    const __m256i q = bc(m->q);
    size_t i = 0;
    for (; i + 4 <= n; i += 4)
        STOREU(out + i, csub(_mm256_add_epi64(LOADU(a + i), LOADU(b + i)), q));
    for (; i < n; i++) out[i] = tsr_modq_add(a[i], b[i], m->q);
}

TGT static void sub_avx2(const tsr_modulus *m, uint64_t *out, const uint64_t *a, const uint64_t *b,
                         size_t n) {
    const __m256i q = bc(m->q);
    size_t i = 0;
    for (; i + 4 <= n; i += 4) {
        __m256i d = _mm256_sub_epi64(LOADU(a + i), LOADU(b + i)); /* sign set iff a < b */
        __m256i e = _mm256_add_epi64(d, q);
        STOREU(out + i,
               _mm256_castpd_si256(_mm256_blendv_pd(_mm256_castsi256_pd(d), _mm256_castsi256_pd(e),
                                                    _mm256_castsi256_pd(d))));
    }
    for (; i < n; i++) out[i] = tsr_modq_sub(a[i], b[i], m->q);
}

TGT static void neg_avx2(const tsr_modulus *m, uint64_t *out, const uint64_t *a, size_t n) {
    const __m256i q = bc(m->q), zero = _mm256_setzero_si256();
    size_t i = 0;
    for (; i + 4 <= n; i += 4) {
        __m256i x = LOADU(a + i);
        __m256i is0 = _mm256_cmpeq_epi64(x, zero);
        STOREU(out + i, _mm256_andnot_si256(is0, _mm256_sub_epi64(q, x)));
    }
    for (; i < n; i++) out[i] = tsr_modq_neg(a[i], m->q);
}

TGT static void add_scalar_avx2(const tsr_modulus *m, uint64_t *out, const uint64_t *a, uint64_t s,
                                size_t n) {
    const __m256i q = bc(m->q), sv = bc(s);
    size_t i = 0;
    for (; i + 4 <= n; i += 4) STOREU(out + i, csub(_mm256_add_epi64(LOADU(a + i), sv), q));
    for (; i < n; i++) out[i] = tsr_modq_add(a[i], s, m->q);
}

TGT static void mul_scalar_avx2(const tsr_modulus *m, uint64_t *out, const uint64_t *a, uint64_t w,
                                uint64_t wp, size_t n) {
    const __m256i q = bc(m->q), qh = bc(m->q >> 32), wv = bc(w), wh = bc(w >> 32);
    const __m256i wpv = bc(wp), wph = bc(wp >> 32);
    size_t i = 0;
    for (; i + 4 <= n; i += 4)
        STOREU(out + i, csub(shoup_lazy(LOADU(a + i), wv, wh, wpv, wph, q, qh), q));
    for (; i < n; i++) out[i] = tsr_modq_mul_shoup(a[i], w, wp, m->q);
}

TGT static void mul_scalar_add_avx2(const tsr_modulus *m, uint64_t *out, const uint64_t *a,
                                    uint64_t w, uint64_t wp, size_t n) {
    const __m256i q = bc(m->q), qh = bc(m->q >> 32), wv = bc(w), wh = bc(w >> 32);
    const __m256i wpv = bc(wp), wph = bc(wp >> 32);
    size_t i = 0;
    for (; i + 4 <= n; i += 4) {
        __m256i r = csub(shoup_lazy(LOADU(a + i), wv, wh, wpv, wph, q, qh), q);
        STOREU(out + i, csub(_mm256_add_epi64(LOADU(out + i), r), q));
    }
    for (; i < n; i++) out[i] = tsr_modq_add(out[i], tsr_modq_mul_shoup(a[i], w, wp, m->q), m->q);
}

TGT static void mul_shoup_avx2(const tsr_modulus *m, uint64_t *out, const uint64_t *a,
                               const uint64_t *w, const uint64_t *wp, size_t n) {
    const __m256i q = bc(m->q), qh = bc(m->q >> 32);
    size_t i = 0;
    for (; i + 4 <= n; i += 4) {
        __m256i wv = LOADU(w + i), wpv = LOADU(wp + i);
        __m256i r = shoup_lazy(LOADU(a + i), wv, _mm256_srli_epi64(wv, 32), wpv,
                               _mm256_srli_epi64(wpv, 32), q, qh);
        STOREU(out + i, csub(r, q));
    }
    for (; i < n; i++) out[i] = tsr_modq_mul_shoup(a[i], w[i], wp[i], m->q);
}

/* ModDown tail: out = (a - b) w (+ c) mod q (Shoup), streaming stores on request. */
TGT static void sub_mul_scalar_add_avx2(const tsr_modulus *m, uint64_t *out, const uint64_t *a,
                                        const uint64_t *b, uint64_t w, uint64_t wp,
                                        const uint64_t *c, int stream, size_t n) {
    const __m256i q = bc(m->q), qh = bc(m->q >> 32), wv = bc(w), wh = bc(w >> 32);
    const __m256i wpv = bc(wp), wph = bc(wp >> 32);
    const int st = stream && ((uintptr_t)out & 31) == 0;
    size_t i = 0;
    for (; i + 4 <= n; i += 4) {
        __m256i d = _mm256_sub_epi64(LOADU(a + i), LOADU(b + i)); /* sign set iff a < b */
        d = _mm256_castpd_si256(_mm256_blendv_pd(_mm256_castsi256_pd(d),
                                                 _mm256_castsi256_pd(_mm256_add_epi64(d, q)),
                                                 _mm256_castsi256_pd(d)));
        __m256i r = csub(shoup_lazy(d, wv, wh, wpv, wph, q, qh), q);
        if (c) r = csub(_mm256_add_epi64(r, LOADU(c + i)), q);
        if (st)
            _mm256_stream_si256((__m256i *)(out + i), r);
        else
            STOREU(out + i, r);
    }
    for (; i < n; i++) {
        uint64_t r = tsr_modq_mul_shoup(tsr_modq_sub(a[i], b[i], m->q), w, wp, m->q);
        out[i] = c ? tsr_modq_add(r, c[i], m->q) : r;
    }
}

/* ---- NTT ------------------------------------------------------------------ */

typedef struct ntt_c {
    __m256i q, qh, q2;
} ntt_c;

/* A twiddle with its Shoup constant, high halves precomputed. */
typedef struct tw {
    __m256i w, wh, wp, wph;
} tw;

TGT static INL tw tw_bcast(uint64_t w, uint64_t wp) {
    tw t = { bc(w), bc(w >> 32), bc(wp), bc(wp >> 32) };
    return t;
}

TGT static INL tw tw_vec(__m256i w, __m256i wp) {
    tw t = { w, _mm256_srli_epi64(w, 32), wp, _mm256_srli_epi64(wp, 32) };
    return t;
}

/* Harvey forward butterfly: x, y < 4q -> x + wy, x - wy + 2q, both < 4q. */
TGT static INL void bf_fwd(__m256i *x, __m256i *y, const tw *w, const ntt_c *c) {
    __m256i xx = csub(*x, c->q2);
    __m256i t = shoup_lazy(*y, w->w, w->wh, w->wp, w->wph, c->q, c->qh);
    *x = _mm256_add_epi64(xx, t);
    *y = _mm256_sub_epi64(_mm256_add_epi64(xx, c->q2), t);
}

/* Harvey inverse butterfly: x, y < 2q -> x + y, (x - y + 2q) w, both < 2q. */
TGT static INL void bf_inv(__m256i *x, __m256i *y, const tw *w, const ntt_c *c) {
    __m256i xx = *x, yy = *y;
    *x = csub(_mm256_add_epi64(xx, yy), c->q2);
    *y = shoup_lazy(_mm256_add_epi64(_mm256_sub_epi64(xx, yy), c->q2), w->w, w->wh, w->wp, w->wph,
                    c->q, c->qh);
}

/* lo = [x0 y0 x1 y1], hi = [x2 y2 x3 y3] (see kernels_ifma.c for the scheme). */
TGT static INL void ilv(__m256i *x, __m256i *y) {
    __m256i t = _mm256_unpacklo_epi64(*x, *y), u = _mm256_unpackhi_epi64(*x, *y);
    *x = _mm256_permute2x128_si256(t, u, 0x20);
    *y = _mm256_permute2x128_si256(t, u, 0x31);
}

/* Inverse of ilv: x = [x0 x2 y0 y2], y = [x1 x3 y1 y3]. */
TGT static INL void dilv(__m256i *x, __m256i *y) {
    __m256i t = _mm256_permute2x128_si256(*x, *y, 0x20),
            u = _mm256_permute2x128_si256(*x, *y, 0x31);
    *x = _mm256_unpacklo_epi64(t, u);
    *y = _mm256_unpackhi_epi64(t, u);
}

TGT static INL __m256i bcast2(const uint64_t *p) {
    return _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)p));
}

/* ---- scalar kernels with cheaper reductions -------------------------------
 * Sums of full 64x64-bit products (no Shoup constant) would need the
 * 128-bit result assembled from four vpmuludq per lane and carried across
 * 32-bit halves, about one mulx's cost per product: these kernels stay
 * scalar and save multiplies in the reductions instead. Outputs are fully
 * reduced, so they equal the portable ones bit for bit. */

/*
 * Basis-conversion row with Montgomery reductions (P. Montgomery, Math. Comp.
 * 1985): with c'_i = c_i 2^64 mod p, a chunk of L terms sums to x = sum y_i c'_i
 * < L ymax p <= 2^64 p, and REDC(x) = (x + ((x mod 2^64) (-p^-1) mod 2^64) p) /
 * 2^64 = sum y_i c_i mod p, in [0, 2p): two multiplies where a 128-bit Barrett
 * reduction takes five. p must be odd (every NTT prime is).
 */
static INL uint64_t redc(tsr_u128 x, uint64_t p, uint64_t pinv_neg) {
    const uint64_t mq = (uint64_t)x * pinv_neg;
    const tsr_u128 s = (x >> 64) + (((tsr_u128)mq * p) >> 64) + ((uint64_t)x != 0);
    const uint64_t r = (uint64_t)s; /* < 2p */
    return r >= p ? r - p : r;
}

static void conv_row_x64(const tsr_modulus *m, uint64_t *out, const uint64_t *const *y,
                         const tsr_conv_coeffs *r, size_t n) {
    const uint64_t p = m->q;
    const size_t terms = r->terms;
    if (!(p & 1) || terms > CONV_MAX_TERMS || r->ymax == 0) {
        tsr_ring_kernels_portable.conv_row(m, out, y, r, n);
        return;
    }
    /* -p^-1 mod 2^64 by Newton iteration (p odd). */
    uint64_t inv = p;
    for (int i = 0; i < 6; i++) inv *= 2 - p * inv;
    const uint64_t pinv_neg = (uint64_t)0 - inv;
    uint64_t cm[CONV_MAX_TERMS];
    for (size_t i = 0; i < terms; i++) cm[i] = tsr_modq_reduce128(m, r->c[i], 0);
    /* L (ymax - 1)(p - 1) < 2^64 p when L ymax <= 2^64. */
    const tsr_u128 lmax = ((tsr_u128)1 << 64) / r->ymax; /* >= 4 (ymax <= 2^62) */
    const size_t L = lmax < terms ? (size_t)lmax : (terms ? terms : 1);
    size_t k = 0;
    for (; k + 4 <= n; k += 4) { /* four chains: each y[i] and c'_i loaded once for four */
        uint64_t r0 = 0, r1 = 0, r2 = 0, r3 = 0;
        for (size_t i = 0; i < terms;) {
            const size_t end = i + L < terms ? i + L : terms;
            tsr_u128 a0 = 0, a1 = 0, a2 = 0, a3 = 0;
            for (; i < end; i++) {
                const uint64_t *yi = y[i] + k, c = cm[i];
                a0 += (tsr_u128)yi[0] * c;
                a1 += (tsr_u128)yi[1] * c;
                a2 += (tsr_u128)yi[2] * c;
                a3 += (tsr_u128)yi[3] * c;
            }
            r0 = tsr_modq_add(r0, redc(a0, p, pinv_neg), p);
            r1 = tsr_modq_add(r1, redc(a1, p, pinv_neg), p);
            r2 = tsr_modq_add(r2, redc(a2, p, pinv_neg), p);
            r3 = tsr_modq_add(r3, redc(a3, p, pinv_neg), p);
        }
        out[k] = r0;
        out[k + 1] = r1;
        out[k + 2] = r2;
        out[k + 3] = r3;
    }
    for (; k < n; k++) {
        uint64_t r0 = 0;
        for (size_t i = 0; i < terms;) {
            const size_t end = i + L < terms ? i + L : terms;
            tsr_u128 a0 = 0;
            for (; i < end; i++) a0 += (tsr_u128)y[i][k] * cm[i];
            r0 = tsr_modq_add(r0, redc(a0, p, pinv_neg), p);
        }
        out[k] = r0;
    }
}

/*
 * Inner products of the key switch and of the transforms' plaintext sums:
 * out0 = sum_j x_j y0_j, out1 = sum_j x_j y1_j mod q, on two coefficients at
 * a time: 128-bit accumulators (four independent add/adc chains, one load of
 * each x_j for both outputs, the pointers read once per pair), reduced by a
 * one-multiply Barrett step instead of the portable kernel's 128-bit Barrett
 * (five multiplies): for s < 2^(b+63), b = bitlen(q), t = floor(s / 2^(b-1))
 * fits in 64 bits, est = floor(t mu / 2^64) with mu = floor(2^(b+63) / q)
 * is floor(s / q) minus 0, 1 or 2 (t mu / 2^64 > s/q - 2: the dropped low
 * bits of s are below q, the dropped fraction of mu costs t/2^64 < 1), so
 * s - est q < 3q < 2^64 is exact in 64 bits and two conditional
 * subtractions finish. The accumulator of a chunk stays below 2^(b+63):
 * the first chunk takes up to floor((2^(b+63) - 1) / (q-1)^2) products
 * (4 for 61-bit primes, 8 for 60-bit, 2^(63-b) and more below), the next
 * ones add the reduced carry (< q). Outputs are fully reduced, so they equal
 * the portable ones bit for bit.
 */
typedef struct dot_red {
    uint64_t q, mu;
    unsigned sh;        /* b - 1 */
    size_t first, next; /* products per chunk: the first, the later ones (after a carry < q) */
} dot_red;

static dot_red dot_red_init(const tsr_modulus *m) {
    TSR_ASSERT(m->q & (m->q - 1)); /* not a power of two: the callers send those portable */
    dot_red d;
    d.q = m->q;
    d.sh = (unsigned)m->bits - 1; /* q >= 2: b >= 2, so 1 <= sh <= 61 */
    /* floor(2^(b+63) / q) = floor(floor(2^128 / q) / 2^(65-b)) */
    d.mu = (m->mu_hi << (d.sh)) | (m->mu_lo >> (65 - m->bits));
    const tsr_u128 lim = ((tsr_u128)1 << (m->bits + 63)) - 1;
    const tsr_u128 sq = (tsr_u128)(m->q - 1) * (m->q - 1);
    tsr_u128 f = sq ? lim / sq : lim, nx = sq ? (lim - (m->q - 1)) / sq : lim;
    d.first = f > 64 ? 64 : (size_t)f;
    d.next = nx > 64 ? 64 : (size_t)nx;
    return d;
}

/* s mod q for s = hi:lo < 2^(b+63) (above), fully reduced. */
static INL uint64_t dot_reduce(const dot_red *d, tsr_u128 s) {
    const uint64_t hi = (uint64_t)(s >> 64), lo = (uint64_t)s;
    const uint64_t t = (hi << (64 - d->sh)) | (lo >> d->sh);
    const uint64_t est = (uint64_t)(((tsr_u128)t * d->mu) >> 64);
    uint64_t r = lo - est * d->q; /* < 3q */
    r = r >= 2 * d->q ? r - 2 * d->q : r;
    return r >= d->q ? r - d->q : r;
}

static INL void dot2_pairs(const tsr_modulus *m, uint64_t *out0, uint64_t *out1,
                           const uint64_t *const *x, const uint64_t *const *y0,
                           const uint64_t *const *y1, size_t terms, size_t n) {
    const dot_red d = dot_red_init(m);
    size_t k = 0;
    for (; k + 2 <= n; k += 2) {
        uint64_t r00 = 0, r01 = 0, r10 = 0, r11 = 0; /* r<output><coefficient> */
        size_t j = 0, chunk = d.first;
        while (j < terms) {
            const size_t end = j + chunk < terms ? j + chunk : terms;
            tsr_u128 s00 = r00, s01 = r01, s10 = r10, s11 = r11;
            for (; j < end; j++) {
                const uint64_t *xj = x[j] + k, *aj = y0[j] + k, *bj = y1[j] + k;
                const uint64_t v0 = xj[0], v1 = xj[1];
                s00 += (tsr_u128)v0 * aj[0];
                s01 += (tsr_u128)v1 * aj[1];
                s10 += (tsr_u128)v0 * bj[0];
                s11 += (tsr_u128)v1 * bj[1];
            }
            r00 = dot_reduce(&d, s00);
            r01 = dot_reduce(&d, s01);
            r10 = dot_reduce(&d, s10);
            r11 = dot_reduce(&d, s11);
            chunk = d.next;
        }
        out0[k] = r00;
        out0[k + 1] = r01;
        out1[k] = r10;
        out1[k + 1] = r11;
    }
    if (k < n) { /* the last coefficient of an odd n */
        uint64_t r0 = 0, r1 = 0;
        size_t j = 0, chunk = d.first;
        while (j < terms) {
            const size_t end = j + chunk < terms ? j + chunk : terms;
            tsr_u128 s0 = r0, s1 = r1;
            for (; j < end; j++) {
                s0 += (tsr_u128)x[j][k] * y0[j][k];
                s1 += (tsr_u128)x[j][k] * y1[j][k];
            }
            r0 = dot_reduce(&d, s0);
            r1 = dot_reduce(&d, s1);
            chunk = d.next;
        }
        out0[k] = r0;
        out1[k] = r1;
    }
}

/* One output (out1 == NULL: the transforms' plaintext inner sums), four coefficients at a time. */
static INL void dot1_quads(const tsr_modulus *m, uint64_t *out0, const uint64_t *const *x,
                           const uint64_t *const *y0, size_t terms, size_t n) {
    const dot_red d = dot_red_init(m);
    size_t k = 0;
    for (; k + 4 <= n; k += 4) {
        uint64_t r0 = 0, r1 = 0, r2 = 0, r3 = 0;
        size_t j = 0, chunk = d.first;
        while (j < terms) {
            const size_t end = j + chunk < terms ? j + chunk : terms;
            tsr_u128 s0 = r0, s1 = r1, s2 = r2, s3 = r3;
            for (; j < end; j++) {
                const uint64_t *xj = x[j] + k, *aj = y0[j] + k;
                s0 += (tsr_u128)xj[0] * aj[0];
                s1 += (tsr_u128)xj[1] * aj[1];
                s2 += (tsr_u128)xj[2] * aj[2];
                s3 += (tsr_u128)xj[3] * aj[3];
            }
            r0 = dot_reduce(&d, s0);
            r1 = dot_reduce(&d, s1);
            r2 = dot_reduce(&d, s2);
            r3 = dot_reduce(&d, s3);
            chunk = d.next;
        }
        out0[k] = r0;
        out0[k + 1] = r1;
        out0[k + 2] = r2;
        out0[k + 3] = r3;
    }
    for (; k < n; k++) {
        uint64_t r0 = 0;
        size_t j = 0, chunk = d.first;
        while (j < terms) {
            const size_t end = j + chunk < terms ? j + chunk : terms;
            tsr_u128 s0 = r0;
            for (; j < end; j++) s0 += (tsr_u128)x[j][k] * y0[j][k];
            r0 = dot_reduce(&d, s0);
            chunk = d.next;
        }
        out0[k] = r0;
    }
}

/* Element-wise products with the same one-multiply reduction (inputs < q: a b + out < q^2 <
 * 2^(b+63)); four independent words per pass. */
static INL void mul_words(const tsr_modulus *m, uint64_t *out, const uint64_t *a, const uint64_t *b,
                          int add, size_t n) {
    const dot_red d = dot_red_init(m);
    size_t i = 0;
    for (; i + 4 <= n; i += 4) {
        tsr_u128 s0 = (tsr_u128)a[i] * b[i], s1 = (tsr_u128)a[i + 1] * b[i + 1];
        tsr_u128 s2 = (tsr_u128)a[i + 2] * b[i + 2], s3 = (tsr_u128)a[i + 3] * b[i + 3];
        if (add) {
            s0 += out[i];
            s1 += out[i + 1];
            s2 += out[i + 2];
            s3 += out[i + 3];
        }
        out[i] = dot_reduce(&d, s0);
        out[i + 1] = dot_reduce(&d, s1);
        out[i + 2] = dot_reduce(&d, s2);
        out[i + 3] = dot_reduce(&d, s3);
    }
    for (; i < n; i++) out[i] = dot_reduce(&d, (tsr_u128)a[i] * b[i] + (add ? out[i] : 0));
}

__attribute__((target("bmi2"))) static void mul_bmi2(const tsr_modulus *m, uint64_t *out,
                                                     const uint64_t *a, const uint64_t *b, int add,
                                                     size_t n) {
    mul_words(m, out, a, b, add, n);
}

/* q a power of two: mu = 2^64 does not fit the one-multiply step (dot_red_init), so such
 * moduli (never an NTT prime) take the portable kernels. */
static int pow2_modulus(const tsr_modulus *m) {
    return (m->q & (m->q - 1)) == 0;
}

static void mul_x64(const tsr_modulus *m, uint64_t *out, const uint64_t *a, const uint64_t *b,
                    size_t n) {
    if (pow2_modulus(m))
        tsr_ring_kernels_portable.mul(m, out, a, b, n);
    else if (__builtin_cpu_supports("bmi2"))
        mul_bmi2(m, out, a, b, 0, n);
    else
        mul_words(m, out, a, b, 0, n);
}

static void mul_add_x64(const tsr_modulus *m, uint64_t *out, const uint64_t *a, const uint64_t *b,
                        size_t n) {
    if (pow2_modulus(m))
        tsr_ring_kernels_portable.mul_add(m, out, a, b, n);
    else if (__builtin_cpu_supports("bmi2"))
        mul_bmi2(m, out, a, b, 1, n);
    else
        mul_words(m, out, a, b, 1, n);
}

/* With BMI2 (every AVX2 CPU we know of, checked anyway): mulx, whose free
 * destination registers keep the four accumulators out of the stack. */
__attribute__((target("bmi2"))) static void
dot2_bmi2(const tsr_modulus *m, uint64_t *out0, uint64_t *out1, const uint64_t *const *x,
          const uint64_t *const *y0, const uint64_t *const *y1, size_t terms, size_t n) {
    if (out1)
        dot2_pairs(m, out0, out1, x, y0, y1, terms, n);
    else
        dot1_quads(m, out0, x, y0, terms, n);
}

static void dot2_x64(const tsr_modulus *m, uint64_t *out0, uint64_t *out1, const uint64_t *const *x,
                     const uint64_t *const *y0, const uint64_t *const *y1, size_t terms, size_t n) {
    if (pow2_modulus(m))
        tsr_ring_kernels_portable.dot2(m, out0, out1, x, y0, y1, terms, n);
    else if (__builtin_cpu_supports("bmi2"))
        dot2_bmi2(m, out0, out1, x, y0, y1, terms, n);
    else if (out1)
        dot2_pairs(m, out0, out1, x, y0, y1, terms, n);
    else
        dot1_quads(m, out0, x, y0, terms, n);
}

/*
 * Gather out[j] = a[idx[j]], 8 outputs at a time. When the 8 indices lie in
 * one aligned group of 8 words (always for the NTT-domain automorphisms),
 * two loads and, per half of the output, two vpermd (one per input half)
 * and a blend on bit 2 of the index; other groups, and a last group of 8
 * that would reach past a[n - 1] (n not a multiple of 8), take the scalar loop.
 * Streaming stores when asked and out is 32-byte aligned (fenced before returning).
 */
TGT static void permute_avx2(uint64_t *out, const uint64_t *a, const uint32_t *idx, size_t n,
                             int stream_ok) {
    const int stream = stream_ok && ((uintptr_t)out & 31) == 0;
    const __m256i hi_mask = _mm256_set1_epi32(~7), three = _mm256_set1_epi64x(3),
                  four = _mm256_set1_epi64x(4);
    size_t j = 0;
    for (; j + 8 <= n; j += 8) {
        const __m256i iv = LOADU(idx + j);
        const uint32_t g = idx[j] & ~(uint32_t)7;
        const __m256i same =
            _mm256_cmpeq_epi32(_mm256_and_si256(iv, hi_mask), _mm256_set1_epi32((int)g));
        /* g + 8 <= n: a group may be partial when n is not a multiple of 8 */
        if (_mm256_movemask_epi8(same) != -1 || g + 8 > n) {
            for (size_t i = 0; i < 8; i++) out[j + i] = a[idx[j + i]];
            continue;
        }
        const __m256i lo = LOADU(a + g), hi = LOADU(a + g + 4);
        for (int h = 0; h < 2; h++) {
            /* e: the 4 indices of this half as 64-bit lanes; the 32-bit
             * permutation takes dwords 2(e & 3) and 2(e & 3) + 1 */
            const __m256i e =
                _mm256_cvtepu32_epi64(_mm_loadu_si128((const __m128i *)(idx + j) + h));
            const __m256i d = _mm256_slli_epi64(_mm256_and_si256(e, three), 1);
            const __m256i pi = _mm256_or_si256(
                d, _mm256_slli_epi64(_mm256_add_epi64(d, _mm256_set1_epi64x(1)), 32));
            const __m256i sel = _mm256_cmpeq_epi64(_mm256_and_si256(e, four), four);
            const __m256i v = _mm256_blendv_epi8(_mm256_permutevar8x32_epi32(lo, pi),
                                                 _mm256_permutevar8x32_epi32(hi, pi), sel);
            if (stream)
                _mm256_stream_si256((__m256i *)(out + j + 4 * h), v);
            else
                STOREU(out + j + 4 * h, v);
        }
    }
    for (; j < n; j++) out[j] = a[idx[j]];
    if (stream) _mm_sfence();
}

/* ---- split NTTs (ntt.h): the same passes on a window of the transform ----
 * A pass works on a[0..e1) whose word 0 is transform word `base` (twiddle
 * indices use base + e), as in kernels_avx512.c. */

/* Forward radix-4 pass for stages with M and 2M blocks (gaps g, g/2 >= 4) over [0, e1): reads
 * s (a itself, or the source of an out-of-place first pass), writes a. */
TGT static INL void fwd_radix4_w(const tsr_ntt_table *t, uint64_t *a, const uint64_t *s, size_t M,
                                 size_t g, size_t e1, size_t base, const ntt_c *c) {
    const size_t h = g / 2;
    const uint64_t *W = t->fwd, *Wp = t->fwd_sh;
    size_t ib = base / (2 * g);
    for (size_t e = 0; e < e1; e += 2 * g, ib++) {
        const size_t i1 = M + ib, i2 = 2 * M + 2 * ib, i3 = i2 + 1;
        const tw w1 = tw_bcast(W[i1], Wp[i1]), w2 = tw_bcast(W[i2], Wp[i2]),
                 w3 = tw_bcast(W[i3], Wp[i3]);
        uint64_t *p0 = a + e, *p1 = p0 + h, *p2 = p0 + g, *p3 = p2 + h;
        const uint64_t *s0 = s + e, *s1 = s0 + h, *s2 = s0 + g, *s3 = s2 + h;
        for (size_t j = 0; j < h; j += 4) {
            __m256i A = LOADU(s0 + j), B = LOADU(s1 + j), C = LOADU(s2 + j), D = LOADU(s3 + j);
            bf_fwd(&A, &C, &w1, c);
            bf_fwd(&B, &D, &w1, c);
            bf_fwd(&A, &B, &w2, c);
            bf_fwd(&C, &D, &w3, c);
            STOREU(p0 + j, A);
            STOREU(p1 + j, B);
            STOREU(p2 + j, C);
            STOREU(p3 + j, D);
        }
    }
}

/* Forward radix-2 pass, stage with M blocks of gap g >= 4, over [0, e1) (reads s, writes a). */
TGT static INL void fwd_radix2_w(const tsr_ntt_table *t, uint64_t *a, const uint64_t *s, size_t M,
                                 size_t g, size_t e1, size_t base, const ntt_c *c) {
    size_t ib = base / (2 * g);
    for (size_t e = 0; e < e1; e += 2 * g, ib++) {
        const tw w = tw_bcast(t->fwd[M + ib], t->fwd_sh[M + ib]);
        uint64_t *p0 = a + e, *p1 = p0 + g;
        const uint64_t *s0 = s + e, *s1 = s0 + g;
        for (size_t j = 0; j < g; j += 4) {
            __m256i X = LOADU(s0 + j), Y = LOADU(s1 + j);
            bf_fwd(&X, &Y, &w, c);
            STOREU(p0 + j, X);
            STOREU(p1 + j, Y);
        }
    }
}

/* Gaps 4, 2, 1 on 8-word groups of a[0..e1), output reduced to [0, q). */
TGT static INL void fwd_final3_w(const tsr_ntt_table *t, uint64_t *a, size_t e1, size_t base,
                                 const ntt_c *c, tsr_prefetch *pf) {
    const size_t n = t->n;
    const uint64_t *W = t->fwd, *Wp = t->fwd_sh;
    for (size_t le = 0; le < e1; le += 8) {
        const size_t e = base + le;
        tsr_prefetch_step(pf);
        __m256i X = LOADU(a + le), Y = LOADU(a + le + 4);
        const tw w4 = tw_bcast(W[n / 8 + e / 8], Wp[n / 8 + e / 8]);
        bf_fwd(&X, &Y, &w4, c);
        ilv(&X, &Y);
        const tw w2 = tw_vec(bcast2(W + n / 4 + e / 4), bcast2(Wp + n / 4 + e / 4));
        bf_fwd(&X, &Y, &w2, c);
        ilv(&X, &Y);
        const tw w1 = tw_vec(LOADU(W + n / 2 + e / 2), LOADU(Wp + n / 2 + e / 2));
        bf_fwd(&X, &Y, &w1, c);
        X = csub(csub(X, c->q2), c->q);
        Y = csub(csub(Y, c->q2), c->q);
        ilv(&X, &Y);
        STOREU(a + le, X);
        STOREU(a + le + 4, Y);
    }
}

/* The first r stages on len << r words (gaps down to len >= 4); output < 4q. */
TGT static void ntt_fwd_outer_avx2(const tsr_ntt_table *t, uint64_t *a, size_t len, unsigned r) {
    if (len < 8 || len % 8) {
        tsr_ring_kernels_portable.ntt_fwd_outer(t, a, len, r);
        return;
    }
    const ntt_c c = { bc(t->mod.q), bc(t->mod.q >> 32), bc(2 * t->mod.q) };
    const size_t size = len << r;
    size_t M = 1, g = size / 2;
    for (unsigned s = 0; s < r;) {
        if (r - s >= 2) {
            fwd_radix4_w(t, a, a, M, g, size, 0, &c);
            M *= 4;
            g /= 4;
            s += 2;
        } else {
            fwd_radix2_w(t, a, a, M, g, size, 0, &c);
            M *= 2;
            g /= 2;
            s += 1;
        }
    }
}

/* Inner forward stages of block b (B = n >> r >= 16 words). */
TGT static void ntt_fwd_inner_avx2(const tsr_ntt_table *t, uint64_t *a, const uint64_t *src,
                                   size_t b, unsigned r, tsr_prefetch *pf) {
    const size_t B = t->n >> r;
    if (B < 16) {
        tsr_ring_kernels_portable.ntt_fwd_inner(t, a, src, b, r, pf);
        return;
    }
    const ntt_c c = { bc(t->mod.q), bc(t->mod.q >> 32), bc(2 * t->mod.q) };
    const size_t base = b * B;
    size_t M = (size_t)1 << r, g = B / 2;
    /* the first pass (g = B / 2 >= 8: there is one) reads src: no copy of it into a first */
    const uint64_t *s = src;
    while (g > 4) {
        if (g >= 16) {
            fwd_radix4_w(t, a, s, M, g, B, base, &c);
            M *= 4;
            g /= 4;
        } else {
            fwd_radix2_w(t, a, s, M, g, B, base, &c);
            M *= 2;
            g /= 2;
        }
        s = a;
    }
    fwd_final3_w(t, a, B, base, &c, pf);
}

/* Inverse: gaps 1, 2, 4 on 8-word groups of a[0..e1) (inputs < 2q, outputs < 2q). */
TGT static INL void inv_first3_w(const tsr_ntt_table *t, uint64_t *a, size_t e1, size_t base,
                                 const ntt_c *c, tsr_prefetch *pf) {
    const size_t n = t->n;
    const uint64_t *W = t->inv, *Wp = t->inv_sh;
    for (size_t le = 0; le < e1; le += 8) {
        const size_t e = base + le;
        tsr_prefetch_step(pf);
        __m256i X = LOADU(a + le), Y = LOADU(a + le + 4);
        dilv(&X, &Y);
        const tw w1 = tw_vec(LOADU(W + n / 2 + e / 2), LOADU(Wp + n / 2 + e / 2));
        bf_inv(&X, &Y, &w1, c);
        dilv(&X, &Y);
        const tw w2 = tw_vec(bcast2(W + n / 4 + e / 4), bcast2(Wp + n / 4 + e / 4));
        bf_inv(&X, &Y, &w2, c);
        dilv(&X, &Y);
        const tw w4 = tw_bcast(W[n / 8 + e / 8], Wp[n / 8 + e / 8]);
        bf_inv(&X, &Y, &w4, c);
        STOREU(a + le, X);
        STOREU(a + le + 4, Y);
    }
}

/* Inverse radix-4: stages with 2H blocks (gap g) then H blocks (gap 2g), g >= 4. */
TGT static INL void inv_radix4_w(const tsr_ntt_table *t, uint64_t *a, size_t H, size_t g, size_t e1,
                                 size_t base, const ntt_c *c) {
    const uint64_t *W = t->inv, *Wp = t->inv_sh;
    size_t ib = base / (4 * g);
    for (size_t e = 0; e < e1; e += 4 * g, ib++) {
        const size_t i1 = 2 * H + 2 * ib, i2 = i1 + 1, i3 = H + ib;
        const tw w1 = tw_bcast(W[i1], Wp[i1]), w2 = tw_bcast(W[i2], Wp[i2]),
                 w3 = tw_bcast(W[i3], Wp[i3]);
        uint64_t *p0 = a + e, *p1 = p0 + g, *p2 = p0 + 2 * g, *p3 = p2 + g;
        for (size_t j = 0; j < g; j += 4) {
            __m256i A = LOADU(p0 + j), B = LOADU(p1 + j), C = LOADU(p2 + j), D = LOADU(p3 + j);
            bf_inv(&A, &B, &w1, c);
            bf_inv(&C, &D, &w2, c);
            bf_inv(&A, &C, &w3, c);
            bf_inv(&B, &D, &w3, c);
            STOREU(p0 + j, A);
            STOREU(p1 + j, B);
            STOREU(p2 + j, C);
            STOREU(p3 + j, D);
        }
    }
}

TGT static INL void inv_radix2_w(const tsr_ntt_table *t, uint64_t *a, size_t h, size_t g, size_t e1,
                                 size_t base, const ntt_c *c) {
    size_t ib = base / (2 * g);
    for (size_t e = 0; e < e1; e += 2 * g, ib++) {
        const tw w = tw_bcast(t->inv[h + ib], t->inv_sh[h + ib]);
        uint64_t *p0 = a + e, *p1 = p0 + g;
        for (size_t j = 0; j < g; j += 4) {
            __m256i X = LOADU(p0 + j), Y = LOADU(p1 + j);
            bf_inv(&X, &Y, &w, c);
            STOREU(p0 + j, X);
            STOREU(p1 + j, Y);
        }
    }
}

/* Last inverse stage (one block of 2 half words) with N^-1 folded in; output < q. */
TGT static INL void inv_last_w(const tsr_ntt_table *t, uint64_t *a, size_t half, const ntt_c *c) {
    const tw ni = tw_bcast(t->n_inv, t->n_inv_sh), wl = tw_bcast(t->inv_last, t->inv_last_sh);
    for (size_t j = 0; j < half; j += 4) {
        __m256i X = LOADU(a + j), Y = LOADU(a + half + j);
        __m256i u = shoup_lazy(_mm256_add_epi64(X, Y), ni.w, ni.wh, ni.wp, ni.wph, c->q, c->qh);
        __m256i v = shoup_lazy(_mm256_add_epi64(_mm256_sub_epi64(X, Y), c->q2), wl.w, wl.wh, wl.wp,
                               wl.wph, c->q, c->qh);
        STOREU(a + j, csub(u, c->q));
        STOREU(a + half + j, csub(v, c->q));
    }
}

/* ---- whole-limb NTTs: the window passes over [0, n) ---- */

TGT static void ntt_fwd_avx2(const tsr_ntt_table *t, uint64_t *a) {
    const size_t n = t->n;
    if (n < 8) {
        tsr_ring_kernels_portable.ntt_fwd(t, a);
        return;
    }
    const ntt_c c = { bc(t->mod.q), bc(t->mod.q >> 32), bc(2 * t->mod.q) };
    /* Vertical stages (gap >= 8), radix 4 where two remain. */
    size_t M = 1, g = n / 2;
    while (g >= 8) {
        if (g >= 16) {
            fwd_radix4_w(t, a, a, M, g, n, 0, &c);
            M *= 4;
            g /= 4;
        } else {
            fwd_radix2_w(t, a, a, M, g, n, 0, &c);
            M *= 2;
            g /= 2;
        }
    }
    /* Gaps 4, 2, 1 on 8-word groups, then reduction to [0, q). */
    fwd_final3_w(t, a, n, 0, &c, NULL);
}

TGT static void ntt_inv_avx2(const tsr_ntt_table *t, uint64_t *a) {
    const size_t n = t->n;
    if (n < 16) {
        tsr_ring_kernels_portable.ntt_inv(t, a);
        return;
    }
    const ntt_c c = { bc(t->mod.q), bc(t->mod.q >> 32), bc(2 * t->mod.q) };
    /* Gaps 1, 2, 4 on 8-word groups. */
    inv_first3_w(t, a, n, 0, &c, NULL);
    /* Vertical stages with gap 8 .. n/4, radix 4 where two remain. */
    size_t g = 8;
    while (g < n / 2) {
        if (2 * g < n / 2) {
            inv_radix4_w(t, a, n / (4 * g), g, n, 0, &c);
            g *= 4;
        } else {
            inv_radix2_w(t, a, n / (2 * g), g, n, 0, &c);
            g *= 2;
        }
    }
    /* Last stage with N^-1 folded in; output < q. */
    inv_last_w(t, a, n / 2, &c);
}

/* Inner inverse stages of block b (gaps 1 .. B/2, B = n >> r >= 16). */
TGT static void ntt_inv_inner_avx2(const tsr_ntt_table *t, uint64_t *a, const uint64_t *src,
                                   size_t b, unsigned r, tsr_prefetch *pf) {
    const size_t n = t->n, B = n >> r;
    if (r == 0 || B < 16) {
        if (r == 0 && n >= 16) {
            if (a != src) memcpy(a, src, n * sizeof *a);
            ntt_inv_avx2(t, a);
            return;
        }
        tsr_ring_kernels_portable.ntt_inv_inner(t, a, src, b, r, pf);
        return;
    }
    if (a != src) memcpy(a, src, B * sizeof *a);
    const ntt_c c = { bc(t->mod.q), bc(t->mod.q >> 32), bc(2 * t->mod.q) };
    const size_t base = b * B;
    inv_first3_w(t, a, B, base, &c, pf);
    size_t g = 8;
    while (g < B) {
        if (4 * g <= B) {
            inv_radix4_w(t, a, n / (4 * g), g, B, base, &c);
            g *= 4;
        } else {
            inv_radix2_w(t, a, n / (2 * g), g, B, base, &c);
            g *= 2;
        }
    }
}

/* Outer inverse stages (gaps len .. size/4) and the last one with N^-1; output < q. */
TGT static void ntt_inv_outer_avx2(const tsr_ntt_table *t, uint64_t *a, size_t len, unsigned r) {
    if (r == 0) return;
    if (len < 8 || len % 8) {
        tsr_ring_kernels_portable.ntt_inv_outer(t, a, len, r);
        return;
    }
    const ntt_c c = { bc(t->mod.q), bc(t->mod.q >> 32), bc(2 * t->mod.q) };
    const size_t size = len << r;
    size_t g = len;
    while (g < size / 2) {
        if (2 * g < size / 2) {
            inv_radix4_w(t, a, size / (4 * g), g, size, 0, &c);
            g *= 4;
        } else {
            inv_radix2_w(t, a, size / (2 * g), g, size, 0, &c);
            g *= 2;
        }
    }
    inv_last_w(t, a, size / 2, &c);
}

/* ---- ChaCha keystream, 8 blocks at a time (one per 32-bit lane) ---------- */
_Static_assert(TSR_CHACHA_KERNEL_BLOCKS % 8 == 0,
               "kernels.h: TSR_CHACHA_KERNEL_BLOCKS is a multiple of this width");

TGT static INL __m256i rotl32_avx2(__m256i v, int c) {
    return _mm256_or_si256(_mm256_slli_epi32(v, c), _mm256_srli_epi32(v, 32 - c));
}

#define QRV(a, b, c, d)                                       \
    do {                                                      \
        a = _mm256_add_epi32(a, b);                           \
        d = _mm256_shuffle_epi8(_mm256_xor_si256(d, a), r16); \
        c = _mm256_add_epi32(c, d);                           \
        b = rotl32_avx2(_mm256_xor_si256(b, c), 12);          \
        a = _mm256_add_epi32(a, b);                           \
        d = _mm256_shuffle_epi8(_mm256_xor_si256(d, a), r8);  \
        c = _mm256_add_epi32(c, d);                           \
        b = rotl32_avx2(_mm256_xor_si256(b, c), 7);           \
    } while (0)

/* Rows r[0..8) of 8 x 32-bit lanes -> r[b] = lane b of r[0..8) (8 x 8 transpose). */
TGT static INL void transpose8x32(__m256i r[8]) {
    __m256i t[8], u[8];
    for (int i = 0; i < 4; i++) {
        t[2 * i] = _mm256_unpacklo_epi32(r[2 * i], r[2 * i + 1]);
        t[2 * i + 1] = _mm256_unpackhi_epi32(r[2 * i], r[2 * i + 1]);
    }
    for (int h = 0; h < 2; h++) {
        const __m256i *v = t + 4 * h;
        u[4 * h + 0] = _mm256_unpacklo_epi64(v[0], v[2]); /* lanes 0 | 4 */
        u[4 * h + 1] = _mm256_unpackhi_epi64(v[0], v[2]); /* lanes 1 | 5 */
        u[4 * h + 2] = _mm256_unpacklo_epi64(v[1], v[3]); /* lanes 2 | 6 */
        u[4 * h + 3] = _mm256_unpackhi_epi64(v[1], v[3]); /* lanes 3 | 7 */
    }
    for (int b = 0; b < 4; b++) {
        r[b] = _mm256_permute2x128_si256(u[b], u[4 + b], 0x20);
        r[b + 4] = _mm256_permute2x128_si256(u[b], u[4 + b], 0x31);
    }
}

TGT static void chacha_avx2(uint64_t *out, const uint32_t key[8], const uint32_t nonce[3],
                            uint32_t ctr, size_t nblocks, unsigned rounds) {
    const __m256i r16 = _mm256_setr_epi8(2, 3, 0, 1, 6, 7, 4, 5, 10, 11, 8, 9, 14, 15, 12, 13, 2, 3,
                                         0, 1, 6, 7, 4, 5, 10, 11, 8, 9, 14, 15, 12, 13);
    const __m256i r8 = _mm256_setr_epi8(3, 0, 1, 2, 7, 4, 5, 6, 11, 8, 9, 10, 15, 12, 13, 14, 3, 0,
                                        1, 2, 7, 4, 5, 6, 11, 8, 9, 10, 15, 12, 13, 14);
    static const uint32_t sigma[4] = { 0x61707865u, 0x3320646eu, 0x79622d32u, 0x6b206574u };
    __m256i s[16];
    for (int i = 0; i < 4; i++) s[i] = _mm256_set1_epi32((int)sigma[i]);
    for (int i = 0; i < 8; i++) s[4 + i] = _mm256_set1_epi32((int)key[i]);
    for (int i = 0; i < 3; i++) s[13 + i] = _mm256_set1_epi32((int)nonce[i]);
    const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    size_t done = 0;
    for (; done + 8 <= nblocks; done += 8) {
        s[12] = _mm256_add_epi32(_mm256_set1_epi32((int)(ctr + (uint32_t)done)), lane);
        __m256i x0 = s[0], x1 = s[1], x2 = s[2], x3 = s[3], x4 = s[4], x5 = s[5], x6 = s[6],
                x7 = s[7], x8 = s[8], x9 = s[9], x10 = s[10], x11 = s[11], x12 = s[12], x13 = s[13],
                x14 = s[14], x15 = s[15];
        for (unsigned r = 0; r < rounds; r += 2) {
            QRV(x0, x4, x8, x12);
            QRV(x1, x5, x9, x13);
            QRV(x2, x6, x10, x14);
            QRV(x3, x7, x11, x15);
            QRV(x0, x5, x10, x15);
            QRV(x1, x6, x11, x12);
            QRV(x2, x7, x8, x13);
            QRV(x3, x4, x9, x14);
        }
        __m256i lo[8] = { x0, x1, x2, x3, x4, x5, x6, x7 };
        __m256i hi[8] = { x8, x9, x10, x11, x12, x13, x14, x15 };
        for (int i = 0; i < 8; i++) {
            lo[i] = _mm256_add_epi32(lo[i], s[i]);
            hi[i] = _mm256_add_epi32(hi[i], s[8 + i]);
        }
        transpose8x32(lo);
        transpose8x32(hi);
        uint64_t *o = out + 8 * done;
        for (int b = 0; b < 8; b++) {
            STOREU(o + 8 * b, lo[b]);
            STOREU(o + 8 * b + 4, hi[b]);
        }
    }
    if (done < nblocks)
        tsr_ring_kernels_portable.chacha(out + 8 * done, key, nonce, ctr + (uint32_t)done,
                                         nblocks - done, rounds);
}
#undef QRV

const tsr_ring_kernels tsr_ring_kernels_avx2 = {
    .family = TSR_SIMD_AVX2,
    .ntt_fwd = ntt_fwd_avx2,
    .ntt_inv = ntt_inv_avx2,
    .ntt_fwd_outer = ntt_fwd_outer_avx2,
    .ntt_fwd_inner = ntt_fwd_inner_avx2,
    .ntt_inv_inner = ntt_inv_inner_avx2,
    .ntt_inv_outer = ntt_inv_outer_avx2,
    .add = add_avx2,
    .sub = sub_avx2,
    .neg = neg_avx2,
    .mul = mul_x64,
    .mul_add = mul_add_x64,
    .add_scalar = add_scalar_avx2,
    .mul_scalar = mul_scalar_avx2,
    .mul_scalar_add = mul_scalar_add_avx2,
    .mul_shoup = mul_shoup_avx2,
    .conv_row = conv_row_x64,
    .dot2 = dot2_x64,
    .permute = permute_avx2,
    .sub_mul_scalar_add = sub_mul_scalar_add_avx2,
    .chacha = chacha_avx2,
};
#endif
