/*
 * ring/kernels_portable.c - portable C leaf kernels: the reference every
 * SIMD family is tested against, and the fallback on any CPU.
 */
#include "ring/kernels.h"

#include <math.h>
#include <string.h>

/* ---- NTT (Harvey lazy butterflies, Shoup twiddles) ---------------------- */

/* Forward butterflies of one block: x, y < 4q -> x + W y, x - W y + 2q < 4q. */
static inline void fwd_block(uint64_t *x, uint64_t *y, size_t gap, uint64_t W, uint64_t Wp,
                             uint64_t q) {
    const uint64_t q2 = 2 * q;
    for (size_t j = 0; j < gap; j++) {
        uint64_t X = x[j];
        X = X >= q2 ? X - q2 : X;                             /* [0, 2q) */
        uint64_t T = tsr_modq_mul_shoup_lazy(y[j], W, Wp, q); /* [0, 2q) */
        x[j] = X + T;                                         /* [0, 4q) */
        y[j] = X - T + q2;                                    /* [0, 4q) */
    }
}

/* Inverse butterflies of one block: x, y < 2q -> x + y, (x - y + 2q) W, both < 2q. */
static inline void inv_block(uint64_t *x, uint64_t *y, size_t gap, uint64_t W, uint64_t Wp,
                             uint64_t q) {
    const uint64_t q2 = 2 * q;
    for (size_t j = 0; j < gap; j++) {
        uint64_t X = x[j], Y = y[j];
        uint64_t U = X + Y;
        x[j] = U >= q2 ? U - q2 : U;
        y[j] = tsr_modq_mul_shoup_lazy(X - Y + q2, W, Wp, q);
    }
}

/*
 * Split transforms (ntt.h). Stage s of the forward transform has 2^s blocks
 * with gap n >> (s+1) and twiddle fwd[2^s + block]; the first r stages pair
 * words of different segments (of n >> r words) at equal offsets, so on a
 * buffer of 2^r segments of len words they are the first r stages of a
 * transform of size len << r with the same twiddle indices.
 */
static void ntt_fwd_outer_portable(const tsr_ntt_table *t, uint64_t *a, size_t len, unsigned r) {
    const size_t size = len << r;
    for (unsigned s = 0; s < r; s++) {
        const size_t m = (size_t)1 << s, gap = size >> (s + 1);
        for (size_t i = 0; i < m; i++)
            fwd_block(a + 2 * i * gap, a + 2 * i * gap + gap, gap, t->fwd[m + i], t->fwd_sh[m + i],
                      t->mod.q);
    }
}

static void ntt_fwd_inner_portable(const tsr_ntt_table *t, uint64_t *a, const uint64_t *src,
                                   size_t b, unsigned r, tsr_prefetch *pf) {
    const size_t n = t->n, B = n >> r;
    (void)pf;
    if (a != src) memcpy(a, src, B * sizeof *a);
    for (unsigned s = r; s < (unsigned)t->log_n; s++) {
        const size_t m = (size_t)1 << s, gap = n >> (s + 1), per = m >> r;
        for (size_t i = 0; i < per; i++) {
            const size_t k = m + b * per + i;
            fwd_block(a + 2 * i * gap, a + 2 * i * gap + gap, gap, t->fwd[k], t->fwd_sh[k],
                      t->mod.q);
        }
    }
    for (size_t j = 0; j < B; j++) a[j] = tsr_modq_fix4(a[j], t->mod.q);
}

/* Last inverse stage (gap half, one block) with N^-1 folded in; output < q. */
static void inv_last_portable(const tsr_ntt_table *t, uint64_t *a, size_t half) {
    const uint64_t q = t->mod.q, q2 = 2 * q;
    uint64_t *x = a, *y = a + half;
    for (size_t j = 0; j < half; j++) {
        uint64_t X = x[j], Y = y[j];
        x[j] = tsr_modq_mul_shoup(X + Y, t->n_inv, t->n_inv_sh, q);
        y[j] = tsr_modq_mul_shoup(X - Y + q2, t->inv_last, t->inv_last_sh, q);
    }
}

/* Inverse stage with gap g has n / (2g) blocks, twiddle inv[n / (2g) + block]. */
static void ntt_inv_inner_portable(const tsr_ntt_table *t, uint64_t *a, const uint64_t *src,
                                   size_t b, unsigned r, tsr_prefetch *pf) {
    const size_t n = t->n, B = n >> r;
    (void)pf;
    if (a != src) memcpy(a, src, B * sizeof *a);
    for (size_t gap = 1; 2 * gap <= B && 2 * gap < n; gap <<= 1) {
        const size_t h = n / (2 * gap), per = B / (2 * gap);
        for (size_t i = 0; i < per; i++) {
            const size_t k = h + b * per + i;
            inv_block(a + 2 * i * gap, a + 2 * i * gap + gap, gap, t->inv[k], t->inv_sh[k],
                      t->mod.q);
        }
    }
    if (r == 0) inv_last_portable(t, a, n / 2);
}

static void ntt_inv_outer_portable(const tsr_ntt_table *t, uint64_t *a, size_t len, unsigned r) {
    if (r == 0) return;
    const size_t size = len << r;
    for (size_t gap = len; 2 * gap < size; gap <<= 1) {
        const size_t h = size / (2 * gap);
        for (size_t i = 0; i < h; i++)
            inv_block(a + 2 * i * gap, a + 2 * i * gap + gap, gap, t->inv[h + i], t->inv_sh[h + i],
                      t->mod.q);
    }
    inv_last_portable(t, a, size / 2);
}

static void ntt_fwd_portable(const tsr_ntt_table *t, uint64_t *a) {
    ntt_fwd_inner_portable(t, a, a, 0, 0, NULL);
}

static void ntt_inv_portable(const tsr_ntt_table *t, uint64_t *a) {
    ntt_inv_inner_portable(t, a, a, 0, 0, NULL);
}

/* ---- element-wise ----------------------------------------------------- */

static void add_portable(const tsr_modulus *m, uint64_t *out, const uint64_t *a, const uint64_t *b,
                         size_t n) {
    const uint64_t q = m->q;
    for (size_t i = 0; i < n; i++) out[i] = tsr_modq_add(a[i], b[i], q);
}

static void sub_portable(const tsr_modulus *m, uint64_t *out, const uint64_t *a, const uint64_t *b,
                         size_t n) {
    const uint64_t q = m->q;
    for (size_t i = 0; i < n; i++) out[i] = tsr_modq_sub(a[i], b[i], q);
}

static void neg_portable(const tsr_modulus *m, uint64_t *out, const uint64_t *a, size_t n) {
    const uint64_t q = m->q;
    for (size_t i = 0; i < n; i++) out[i] = tsr_modq_neg(a[i], q);
}

static void mul_portable(const tsr_modulus *m, uint64_t *out, const uint64_t *a, const uint64_t *b,
                         size_t n) {
    for (size_t i = 0; i < n; i++) out[i] = tsr_modq_mul(m, a[i], b[i]);
}

static void mul_add_portable(const tsr_modulus *m, uint64_t *out, const uint64_t *a,
                             const uint64_t *b, size_t n) {
    for (size_t i = 0; i < n; i++) {
        /* out + a*b < 2^62 + 2^124: reduce the 128-bit sum once. */
        tsr_u128 x = (tsr_u128)a[i] * b[i] + out[i];
        out[i] = tsr_modq_reduce128(m, (uint64_t)(x >> 64), (uint64_t)x);
    }
}

static void mul_scalar_portable(const tsr_modulus *m, uint64_t *out, const uint64_t *a, uint64_t w,
                                uint64_t wp, size_t n) {
    const uint64_t q = m->q;
    for (size_t i = 0; i < n; i++) out[i] = tsr_modq_mul_shoup(a[i], w, wp, q);
}

static void mul_scalar_add_portable(const tsr_modulus *m, uint64_t *out, const uint64_t *a,
                                    uint64_t w, uint64_t wp, size_t n) {
    const uint64_t q = m->q;
    for (size_t i = 0; i < n; i++)
        out[i] = tsr_modq_add(out[i], tsr_modq_mul_shoup(a[i], w, wp, q), q);
}

static void add_scalar_portable(const tsr_modulus *m, uint64_t *out, const uint64_t *a, uint64_t s,
                                size_t n) {
    const uint64_t q = m->q;
    for (size_t i = 0; i < n; i++) out[i] = tsr_modq_add(a[i], s, q);
}

static void mul_shoup_portable(const tsr_modulus *m, uint64_t *out, const uint64_t *a,
                               const uint64_t *w, const uint64_t *wp, size_t n) {
    const uint64_t q = m->q;
    for (size_t i = 0; i < n; i++) out[i] = tsr_modq_mul_shoup(a[i], w[i], wp[i], q);
}

static void conv_row_portable(const tsr_modulus *m, uint64_t *out, const uint64_t *const *y,
                              const tsr_conv_coeffs *r, size_t n) {
    const uint64_t *c = r->c;
    const size_t terms = r->terms;
    size_t k = 0;
    /* Two coefficients at a time: two independent accumulation chains. */
    for (; k + 2 <= n; k += 2) {
        uint64_t r0 = 0, r1 = 0;
        size_t i = 0;
        while (i < terms) {
            const size_t end = i + 15 < terms ? i + 15 : terms;
            tsr_u128 a0 = r0, a1 = r1;
            for (; i < end; i++) {
                a0 += (tsr_u128)y[i][k] * c[i];
                a1 += (tsr_u128)y[i][k + 1] * c[i];
            }
            r0 = tsr_modq_reduce128(m, (uint64_t)(a0 >> 64), (uint64_t)a0);
            r1 = tsr_modq_reduce128(m, (uint64_t)(a1 >> 64), (uint64_t)a1);
        }
        out[k] = r0;
        out[k + 1] = r1;
    }
    tsr_conv_row_tail(m, out, y, r, k, n);
}

static void dot2_portable(const tsr_modulus *m, uint64_t *out0, uint64_t *out1,
                          const uint64_t *const *x, const uint64_t *const *y0,
                          const uint64_t *const *y1, size_t terms, size_t n) {
    /* 128-bit accumulators, reduced after every 15 products (< 2^124 each). */
    for (size_t k = 0; k < n; k++) {
        uint64_t r0 = 0, r1 = 0;
        size_t j = 0;
        while (j < terms) {
            const size_t end = j + 15 < terms ? j + 15 : terms;
            tsr_u128 s0 = r0, s1 = r1;
            for (; j < end; j++) {
                const uint64_t v = x[j][k];
                s0 += (tsr_u128)v * y0[j][k];
                if (out1) s1 += (tsr_u128)v * y1[j][k];
            }
            r0 = tsr_modq_reduce128(m, (uint64_t)(s0 >> 64), (uint64_t)s0);
            if (out1) r1 = tsr_modq_reduce128(m, (uint64_t)(s1 >> 64), (uint64_t)s1);
        }
        out0[k] = r0;
        if (out1) out1[k] = r1;
    }
}

static void copy_stream_portable(uint64_t *dst, const uint64_t *src, size_t n) {
    memcpy(dst, src, n * sizeof *dst);
}

static void sub_mul_scalar_add_portable(const tsr_modulus *m, uint64_t *out, const uint64_t *a,
                                        const uint64_t *b, uint64_t w, uint64_t wp,
                                        const uint64_t *c, int stream, size_t n) {
    (void)stream;
    const uint64_t q = m->q;
    for (size_t i = 0; i < n; i++) {
        uint64_t r = tsr_modq_mul_shoup(tsr_modq_sub(a[i], b[i], q), w, wp, q);
        out[i] = c ? tsr_modq_add(r, c[i], q) : r;
    }
}

static void quotient_est_portable(uint64_t *u, const uint64_t *const *y, const double *inv,
                                  size_t terms, size_t n) {
    const double eps = 0x1p-32;
    for (size_t k = 0; k < n; k++) {
        double s = 0;
        for (size_t i = 0; i < terms; i++) s += (double)y[i][k] * inv[i];
        const double fl = floor(s), frac = s - fl;
        u[k] = frac < eps || frac > 1 - eps ? UINT64_MAX : (uint64_t)fl;
    }
}

static void quotient_round_portable(uint64_t *v, const uint64_t *const *y, const double *inv,
                                    size_t terms, size_t n) {
    tsr_quotient_round_tail(v, y, inv, terms, 0, n);
}

static void add_above_portable(uint64_t *out, const uint64_t *a, uint64_t h, uint64_t d, size_t n) {
    for (size_t k = 0; k < n; k++) out[k] = a[k] + (a[k] > h ? d : 0);
}

static void permute_portable(uint64_t *out, const uint64_t *a, const uint32_t *idx, size_t n,
                             int stream) {
    (void)stream;
    for (size_t j = 0; j < n; j++) out[j] = a[idx[j]];
}

/* ---- ChaCha keystream (Bernstein 2008; RFC 8439 section 2.3) ------------ */

static inline uint32_t rotl32(uint32_t v, int c) {
    return (v << c) | (v >> (32 - c));
}

#define QR(a, b, c, d)         \
    do {                       \
        a += b;                \
        d = rotl32(d ^ a, 16); \
        c += d;                \
        b = rotl32(b ^ c, 12); \
        a += b;                \
        d = rotl32(d ^ a, 8);  \
        c += d;                \
        b = rotl32(b ^ c, 7);  \
    } while (0)

static void chacha_portable(uint64_t *out, const uint32_t key[8], const uint32_t nonce[3],
                            uint32_t ctr, size_t nblocks, unsigned rounds) {
    /* "expand 32-byte k" */
    static const uint32_t sigma[4] = { 0x61707865u, 0x3320646eu, 0x79622d32u, 0x6b206574u };
    uint32_t s[16];
    memcpy(s, sigma, sizeof sigma);
    memcpy(s + 4, key, 8 * sizeof *key);
    s[13] = nonce[0];
    s[14] = nonce[1];
    s[15] = nonce[2];
    for (size_t blk = 0; blk < nblocks; blk++) {
        s[12] = ctr + (uint32_t)blk;
        uint32_t x[16];
        memcpy(x, s, sizeof x);
        for (unsigned r = 0; r < rounds; r += 2) {
            QR(x[0], x[4], x[8], x[12]); /* column round */
            QR(x[1], x[5], x[9], x[13]);
            QR(x[2], x[6], x[10], x[14]);
            QR(x[3], x[7], x[11], x[15]);
            QR(x[0], x[5], x[10], x[15]); /* diagonal round */
            QR(x[1], x[6], x[11], x[12]);
            QR(x[2], x[7], x[8], x[13]);
            QR(x[3], x[4], x[9], x[14]);
        }
        for (int w = 0; w < 8; w++)
            out[8 * blk + (size_t)w] =
                (uint64_t)(x[2 * w] + s[2 * w]) | (uint64_t)(x[2 * w + 1] + s[2 * w + 1]) << 32;
    }
}
#undef QR

/* Lemire's multiply-shift with rejection ("Fast random integer generation in an interval", ACM
 * TOMACS 2019), branch-free: out[k] is written for every word, k advances on a keep. */
static size_t squeeze_lemire_portable(uint64_t q, uint64_t *out, const uint64_t *in, size_t n) {
    return tsr_squeeze_lemire_tail(q, ((uint64_t)0 - q) % q, out, 0, in, 0, n);
}

const tsr_ring_kernels tsr_ring_kernels_portable = {
    .family = TSR_SIMD_PORTABLE,
    .ntt_fwd = ntt_fwd_portable,
    .ntt_inv = ntt_inv_portable,
    .ntt_fwd_outer = ntt_fwd_outer_portable,
    .ntt_fwd_inner = ntt_fwd_inner_portable,
    .ntt_inv_inner = ntt_inv_inner_portable,
    .ntt_inv_outer = ntt_inv_outer_portable,
    .add = add_portable,
    .sub = sub_portable,
    .neg = neg_portable,
    .mul = mul_portable,
    .mul_add = mul_add_portable,
    .mul_scalar = mul_scalar_portable,
    .mul_scalar_add = mul_scalar_add_portable,
    .add_scalar = add_scalar_portable,
    .add_above = add_above_portable,
    .mul_shoup = mul_shoup_portable,
    .conv_row = conv_row_portable,
    .dot2 = dot2_portable,
    .copy_stream = copy_stream_portable,
    .permute = permute_portable,
    .sub_mul_scalar_add = sub_mul_scalar_add_portable,
    .quotient_est = quotient_est_portable,
    .quotient_round = quotient_round_portable,
    .chacha = chacha_portable,
    .squeeze_lemire = squeeze_lemire_portable,
};
