/*
 * ring/kernels.h - the leaf kernels of the ring layer and their run-time
 * dispatch (internal to src/ring; other modules call ntt.h / vec.h / rns.h).
 *
 * One table of function pointers per SIMD family. Every family computes
 * exactly the same fully reduced outputs as the portable one (tests compare
 * them bit for bit). Kernels work on one limb (n words) and never start
 * threads; callers parallelise over limbs.
 *
 * Argument order: modulus/table first, outputs, inputs, length last.
 * Inputs are fully reduced (< q) unless stated; outputs are fully reduced.
 * Any n (SIMD kernels finish tails with scalar code); NTT kernels handle
 * every N >= 2 (SIMD ones fall back to portable code for small N).
 */
#ifndef TSR_RING_KERNELS_H
#define TSR_RING_KERNELS_H

#include "tessera/core.h"
#include "ring/modq.h"
#include "ring/ntt.h"

#include <stddef.h>
#include <stdint.h>

/** Coefficients of one basis-conversion row (modulo p), in the forms kernels need. */
typedef struct tsr_conv_coeffs {
    const uint64_t *c;    /* [terms] c_i < p */
    const uint64_t *c_sh; /* [terms] Shoup constants floor(c_i 2^64 / p) */
    const uint64_t *c52;  /* [terms] c_i 2^52 mod p (Montgomery form for IFMA) */
    size_t terms;         /* number of terms */
    uint64_t ymax;        /* every input y < ymax <= 2^62 */
} tsr_conv_coeffs;

typedef struct tsr_ring_kernels {
    tsr_simd family;
    /* In-place NTTs (see ntt.h for pre/postconditions).
     * Contract of every ntt_fwd kernel (ring/ntt_sub.c relies on it: it runs
     * the degree-m transform on a copy of the degree-N table with n = m): it
     * reads only t->n, t->log_n, t->mod and the twiddle tables fwd, fwd_sh,
     * fwd52_sh, fwd4, fwd4_sh, fwd8, fwd8_sh, each only by index and only at
     * indices < t->n (fwd4/fwd8 and theirs at k with 4k resp. 8k < t->n), so
     * that the prefix of a larger table is a valid smaller one. A kernel that
     * needs a per-n layout (a precomputed table whose words depend on n, not
     * on the index alone) must build it for the m-point view too, or
     * ntt_sub.c must switch to real m-point tables; test_ring_ntt_sub checks
     * the view against the full transform with every SIMD family the CPU has. */
    void (*ntt_fwd)(const tsr_ntt_table *t, uint64_t *a);
    void (*ntt_inv)(const tsr_ntt_table *t, uint64_t *a);
    /* Split NTTs (ntt.h, tsr_ntt_forward_outer etc.): the outer stages on
     * 2^r segments of len words, the inner stages on block b of n >> r words
     * (a = transform of src; src == a in place, else the two do not overlap;
     * pf may be NULL).
     * Forward outer output < 4q; inverse inner output < 2q (fully reduced
     * when r = 0). */
    void (*ntt_fwd_outer)(const tsr_ntt_table *t, uint64_t *a, size_t len, unsigned r);
    void (*ntt_fwd_inner)(const tsr_ntt_table *t, uint64_t *a, const uint64_t *src, size_t b,
                          unsigned r, tsr_prefetch *pf);
    void (*ntt_inv_inner)(const tsr_ntt_table *t, uint64_t *a, const uint64_t *src, size_t b,
                          unsigned r, tsr_prefetch *pf);
    void (*ntt_inv_outer)(const tsr_ntt_table *t, uint64_t *a, size_t len, unsigned r);
    /* out = a + b, a - b, -a (mod q). */
    void (*add)(const tsr_modulus *m, uint64_t *out, const uint64_t *a, const uint64_t *b,
                size_t n);
    void (*sub)(const tsr_modulus *m, uint64_t *out, const uint64_t *a, const uint64_t *b,
                size_t n);
    void (*neg)(const tsr_modulus *m, uint64_t *out, const uint64_t *a, size_t n);
    /* out = a * b (Barrett); out += a * b. Inputs a, b and (mul_add) out < q:
     * the AVX2 family's one-multiply reduction is exact only for
     * a b + out < 2^(bitlen(q) + 63), while the portable kernels accept any
     * 64-bit a, b; lazy (< 2q, < 4q) values must be reduced first. */
    void (*mul)(const tsr_modulus *m, uint64_t *out, const uint64_t *a, const uint64_t *b,
                size_t n);
    void (*mul_add)(const tsr_modulus *m, uint64_t *out, const uint64_t *a, const uint64_t *b,
                    size_t n);
    /* out = a * w, out += a * w, for one constant w < q with Shoup constant wp.
     * (inputs < q, like every element-wise kernel). */
    void (*mul_scalar)(const tsr_modulus *m, uint64_t *out, const uint64_t *a, uint64_t w,
                       uint64_t wp, size_t n);
    void (*mul_scalar_add)(const tsr_modulus *m, uint64_t *out, const uint64_t *a, uint64_t w,
                           uint64_t wp, size_t n);
    /* out = a + s for one constant s < q. */
    void (*add_scalar)(const tsr_modulus *m, uint64_t *out, const uint64_t *a, uint64_t s,
                       size_t n);
    /*
     * The centred lift of a one-prime key-switching digit (baseconv.c): out = a + d where
     * a > h, else a (no modulus: a + d must not wrap, e.g. a < q_0 and d = 4 p - q_0 < 2^64
     * for p < 2^62; out may equal a).
     */
    void (*add_above)(uint64_t *out, const uint64_t *a, uint64_t h, uint64_t d, size_t n);
    /* out = a * w elementwise with per-element Shoup constants wp (w < q). */
    void (*mul_shoup)(const tsr_modulus *m, uint64_t *out, const uint64_t *a, const uint64_t *w,
                      const uint64_t *wp, size_t n);
    /*
     * Basis-conversion row: out[k] = sum_{i < r->terms} y[i][k] * r->c[i] mod p
     * with every y[i][k] < r->ymax <= 2^62 (not necessarily reduced mod p), any
     * r->terms (tests/test_ring_simd.c checks 1 .. 80, and 12000 modulo a 30-bit
     * prime, against the portable row; the SIMD rows finish their coefficient
     * tails with tsr_conv_row_tail, the IFMA rows reduce every <= 4096 terms).
     * The AVX2 family's row (conv_row_x64) is scalar code, Montgomery REDC
     * on 64x64 -> 128-bit scalar products, no AVX2 instruction, so only CPUs
     * that report AVX2 get it; the portable row (the reference) keeps the
     * 128-bit Barrett reduction.
     */
    void (*conv_row)(const tsr_modulus *m, uint64_t *out, const uint64_t *const *y,
                     const struct tsr_conv_coeffs *r, size_t n);
    /*
     * Inner products over `terms` limb pairs: out0 = sum_j x[j] * y0[j],
     * out1 = sum_j x[j] * y1[j] (out1 and y1 may be NULL: one product only).
     * Inputs < q (required: the AVX2 family's chunk lengths assume it); outputs overwritten, fully
     * reduced; no aliasing. Any modulus tsr_modulus_init accepts: the AVX2 family's one-multiply
     * reduction needs q not a power of two and sends those (never an NTT
     * prime) to the portable kernel, as its mul and mul_add do. Any `terms` (the IFMA
     * kernel reduces every <= 4096 products; tests/test_ring_simd.c checks 12000).
     */
    void (*dot2)(const tsr_modulus *m, uint64_t *out0, uint64_t *out1, const uint64_t *const *x,
                 const uint64_t *const *y0, const uint64_t *const *y1, size_t terms, size_t n);
    /*
     * dst = src (n words, no overlap) with stores that bypass the caches where
     * the CPU has them (data written once and read much later: it skips the
     * read-for-ownership). Other threads see it after tsr_ring_stream_fence (vec.h).
     */
    void (*copy_stream)(uint64_t *dst, const uint64_t *src, size_t n);
    /*
     * Gather: out[j] = a[idx[j]] for j < n, every idx[j] < n, out != a (the
     * NTT-domain automorphisms; their indices permute aligned groups of 8
     * words, which the SIMD kernels exploit; any idx works, any n, and no
     * word past a[n - 1] is read). stream: SIMD kernels write out with
     * streaming stores where the CPU has them (out 32-byte aligned; for a
     * limb read much later) and fence them before returning; 0 when the
     * caller reads out at once.
     */
    void (*permute)(uint64_t *out, const uint64_t *a, const uint32_t *idx, size_t n, int stream);
    /*
     * The tail of a ModDown row in one pass: out = (a - b) * w (+ c[i] when c
     * is not NULL) mod q, w < q with Shoup constant wp. out may equal a, b or
     * c. stream: write with streaming stores where the CPU has them (out
     * 64-byte aligned; call tsr_ring_stream_fence before others read it).
     */
    void (*sub_mul_scalar_add)(const tsr_modulus *m, uint64_t *out, const uint64_t *a,
                               const uint64_t *b, uint64_t w, uint64_t wp, const uint64_t *c,
                               int stream, size_t n);
    /*
     * Quotient estimate of an exact basis conversion: u[k] = floor(sum_i
     * y[i][k] * inv[i]) in double precision, inv[i] = 1.0 / q_i, y[i][k] < q_i,
     * terms <= TSR_RNS_MAX_PRIMES; u[k] = UINT64_MAX where the sum lies within
     * 2^-32 of an integer. The rounding error is below 2^-40 (terms <= 64),
     * so every other u[k] is the exact floor(sum_i y_i / q_i) (families agree
     * wherever neither marks); the caller settles the marked ones exactly.
     */
    void (*quotient_est)(uint64_t *u, const uint64_t *const *y, const double *inv, size_t terms,
                         size_t n);
    /*
     * Centring quotient of a ModUp (baseconv.c, HPS's centred fast conversion): v[k] =
     * (uint64_t)(0.5 + sum_i y[i][k] * inv[i]) in double precision, each product and each sum
     * rounded to nearest in the order 0.5 + t_0 + t_1 + ... (no fused multiply-add: the build
     * compiles with -ffp-contract=off, CMakeLists.txt; ring/kernels.h's
     * tsr_quotient_round_tail is that expression), inv[i] = 1.0 / q_i, y[i][k] <
     * q_i < 2^62, 1 <= terms <= TSR_RNS_MAX_PRIMES: round(sum_i y_i / q_i) up to an error below
     * 2^-40 (terms <= 64). Every family returns the portable kernel's words bit for bit, so the
     * representative a conversion picks within 2^-40 Q of Q/2 does not depend on the CPU.
     */
    void (*quotient_round)(uint64_t *v, const uint64_t *const *y, const double *inv, size_t terms,
                           size_t n);
    /*
     * ChaCha keystream (Bernstein 2008, with RFC 8439's layout: key in state
     * words 4-11, 32-bit block counter in word 12, 96-bit nonce in 13-15):
     * blocks ctr .. ctr + nblocks - 1 of (key, nonce) after `rounds` rounds
     * (even, >= 2: 20 is ChaCha20, whose output equals libsodium's
     * crypto_stream_chacha20_ietf; 12 is ChaCha12), each block written as 8
     * words out[8i + w] = x[2w] | x[2w + 1] << 32 of its 16 output words x
     * (the keystream bytes read as little-endian u64). Precondition:
     * ctr + nblocks <= 2^32 (no wrap). The seeded keys' a halves (sample.h).
     */
    void (*chacha)(uint64_t *out, const uint32_t key[8], const uint32_t nonce[3], uint32_t ctr,
                   size_t nblocks, unsigned rounds);
    /*
     * Lemire's rejection rule (the ChaCha12 key stream, ring/sample.c): each word v of
     * in[0..n) gives w = v q (128 bits); v is kept when low64(w) >= 2^64 mod q and becomes
     * high64(w). Writes the kept values to out in order and returns how many; out may equal
     * in, else out has room for n words (words of out past the count are undefined). Any q >= 1.
     */
    size_t (*squeeze_lemire)(uint64_t q, uint64_t *out, const uint64_t *in, size_t n);
} tsr_ring_kernels;

/*
 * The wide SIMD products' Barrett setup (kernels_avx512.c dot2, kernels_ifma.c wide rows):
 * returns mu = floor(2^(b+63) / q) (b = bits of q) from floor(2^128 / q), and sets *first /
 * *next to how many products of at most sq fit below 2^(b+63) before the first reduction and
 * before each later one (a reduced partial sum < q added), at most 64.
 */
static inline uint64_t tsr_wide_barrett(const tsr_modulus *m, tsr_u128 sq, size_t *first,
                                        size_t *next) {
    const unsigned sh = (unsigned)m->bits - 1;
    /* floor(2^(b+63) / q) = floor(floor(2^128 / q) / 2^(65-b)) */
    const uint64_t mu = (m->mu_hi << sh) | (m->mu_lo >> (65 - m->bits));
    const tsr_u128 lim = ((tsr_u128)1 << (m->bits + 63)) - 1;
    const tsr_u128 f = lim / sq, nx = (lim - (m->q - 1)) / sq;
    *first = f > 64 ? 64 : (size_t)f;
    *next = nx > 64 ? 64 : (size_t)nx;
    return mu;
}

/*
 * One coefficient of a conversion row: sum_{i < terms} y[i][k] c[i] mod q, fully reduced.
 * 128-bit accumulator: products < 2^124 (y < 2^62, c < q < 2^62), so 15 of them plus a
 * reduced partial sum fit before each reduction.
 */
static inline uint64_t tsr_conv_one(const tsr_modulus *m, const uint64_t *const *y,
                                    const uint64_t *c, size_t terms, size_t k) {
    uint64_t r = 0;
    size_t i = 0;
    while (i < terms) {
        const size_t end = i + 15 < terms ? i + 15 : terms;
        tsr_u128 acc = r;
        for (; i < end; i++) acc += (tsr_u128)y[i][k] * c[i];
        r = tsr_modq_reduce128(m, (uint64_t)(acc >> 64), (uint64_t)acc);
    }
    return r;
}

/*
 * The SIMD conv_row kernels' scalar tail: coefficients k .. n - 1 of the row one at a time
 * (the contract of tsr_ring_kernels.conv_row, any r->terms: y is indexed at k directly, no
 * array of offset pointers).
 */
static inline void tsr_conv_row_tail(const tsr_modulus *m, uint64_t *out, const uint64_t *const *y,
                                     const tsr_conv_coeffs *r, size_t k, size_t n) {
    for (; k < n; k++) out[k] = tsr_conv_one(m, y, r->c, r->terms, k);
}

/*
 * The SIMD dot2 kernels' scalar tail: coefficients k .. n - 1 of dot2 one at a time (the
 * contract of tsr_ring_kernels.dot2; out1 / y1 may be NULL).
 */
static inline void tsr_dot2_tail(const tsr_modulus *m, uint64_t *out0, uint64_t *out1,
                                 const uint64_t *const *x, const uint64_t *const *y0,
                                 const uint64_t *const *y1, size_t terms, size_t k, size_t n) {
    for (; k < n; k++) {
        uint64_t s0 = 0, s1 = 0;
        for (size_t j = 0; j < terms; j++) {
            s0 = tsr_modq_add(s0, tsr_modq_mul(m, x[j][k], y0[j][k]), m->q);
            if (out1) s1 = tsr_modq_add(s1, tsr_modq_mul(m, x[j][k], y1[j][k]), m->q);
        }
        out0[k] = s0;
        if (out1) out1[k] = s1;
    }
}

/*
 * The centring quotient (tsr_ring_kernels.quotient_round) of coefficients k .. n - 1 one at a
 * time: the portable kernel (k = 0) and the SIMD kernels' scalar tails. (double)(int64_t) is
 * exact-rounded like the unsigned conversion for y < 2^63, and a single instruction without
 * AVX-512. No product and sum may be fused into one FMA (the SIMD files' tails could, the
 * portable build cannot, and the words would differ): CMakeLists.txt compiles everything with
 * -ffp-contract=off, whatever the C standard mode or CFLAGS; the separate statements also keep
 * clang's default (-ffp-contract=on, within an expression) from fusing them in a file compiled
 * without it. test_quotient_round_families fails on any fusion.
 */
static inline void tsr_quotient_round_tail(uint64_t *v, const uint64_t *const *y, const double *inv,
                                           size_t terms, size_t k, size_t n) {
    for (; k < n; k++) {
        double s = 0.5;
        for (size_t i = 0; i < terms; i++) {
            const double t = (double)(int64_t)y[i][k] * inv[i];
            s += t;
        }
        v[k] = (uint64_t)s;
    }
}

/*
 * Lemire's rule on words i .. n - 1 of in, one at a time (the contract of
 * tsr_ring_kernels.squeeze_lemire, t = 2^64 mod q): each kept high word is appended to out at
 * k; returns the new count. Branch-free: out[k] is written for every word and k advances on a
 * keep, so out must have room for k + (n - i) words (in place, out = in: k <= i keeps it
 * behind the reads). The portable kernel (i = k = 0) and the SIMD kernels' scalar tails.
 */
static inline size_t tsr_squeeze_lemire_tail(uint64_t q, uint64_t t, uint64_t *out, size_t k,
                                             const uint64_t *in, size_t i, size_t n) {
    for (; i < n; i++) {
        const tsr_u128 w = (tsr_u128)in[i] * q;
        out[k] = (uint64_t)(w >> 64);
        k += (uint64_t)w >= t;
    }
    return k;
}

/* The widest chacha kernel's blocks per pass (AVX-512: 16, AVX2: 8, one per
 * 32-bit lane; a tail goes to the next narrower kernel): ring/sample.c rounds
 * its refills up to a multiple. Only speed depends on it (the sampler consumes
 * a prefix of the blocks drawn); a wider family raises it. */
#define TSR_CHACHA_KERNEL_BLOCKS 16

/** Kernels of one family (the portable table for families this build lacks). */
const tsr_ring_kernels *tsr_ring_kernels_for(tsr_simd family);

/** Kernels of tsr_simd_active() (an atomic load; call per operation). */
const tsr_ring_kernels *tsr_ring_kernels_active(void);

/** The portable C reference kernels (always available). */
extern const tsr_ring_kernels tsr_ring_kernels_portable;

#endif /* TSR_RING_KERNELS_H */
