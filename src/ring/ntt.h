/*
 * ring/ntt.h - negacyclic number-theoretic transform over Z_q[X]/(X^N + 1).
 *
 * Forward: Cooley-Tukey butterflies on psi-twisted input with twiddles
 * psi^bitrev(k) (psi a primitive 2N-th root of unity), natural-order input,
 * bit-reversed output. Inverse: Gentleman-Sande butterflies undoing it, with
 * the factor N^-1 merged into the last stage. Both use Harvey's lazy
 * butterflies with Shoup-precomputed twiddles (values kept in [0, 4q) resp.
 * [0, 2q)), and fully reduce at the end.
 * (Longa & Naehrig, "Speeding up the NTT ...", CANS 2016, Alg. 1-2;
 *  Harvey, "Faster arithmetic for number-theoretic transforms", 2014.)
 *
 * Evaluation order: after tsr_ntt_forward, a[j] = A(psi^(2*bitrev(j)+1)),
 * where A is the input polynomial and bitrev reverses log2(N) bits.
 * tsr_ntt_eval_exponent() gives that exponent; automorphisms use it.
 *
 * The transform functions pick the kernel of tsr_simd_active() on every call
 * (portable, AVX2, AVX-512, or AVX-512 IFMA when q < 2^50); all produce
 * bit-identical results.
 */
#ifndef TSR_RING_NTT_H
#define TSR_RING_NTT_H

#include "tessera/common.h"
#include "ring/modq.h"

#include <stddef.h>
#include <stdint.h>

/** Largest ring degree the ring layer supports. */
#define TSR_NTT_MAX_LOG_N 17

/** Block size (words) of the split transforms (tsr_ntt_split_log): 32 KiB, L1-resident. */
#define TSR_NTT_SPLIT_BLOCK 4096

/**
 * Precomputed tables for one prime and one degree. Immutable after creation
 * and shared by reference between bases (see tsr_ntt_table_ref), so it is
 * safe to use from any number of threads.
 */
typedef struct tsr_ntt_table {
    size_t n;          /* ring degree N, power of two in [2, 2^17] */
    int log_n;         /* log2(N) */
    tsr_modulus mod;   /* the prime q < 2^62, q = 1 mod 2N */
    uint64_t psi;      /* primitive 2N-th root of unity (smallest) */
    uint64_t *fwd;     /* [N] psi^bitrev(k); stage m uses fwd[m .. 2m) */
    uint64_t *fwd_sh;  /* [N] Shoup constants of fwd */
    uint64_t *inv;     /* [N] psi^-bitrev(k); inverse stage with h blocks uses inv[h .. 2h) */
    uint64_t *inv_sh;  /* [N] Shoup constants of inv */
    uint64_t n_inv;    /* N^-1 mod q */
    uint64_t n_inv_sh; /* Shoup constant of n_inv */
    uint64_t inv_last, inv_last_sh; /* N^-1 * inv[1] (last inverse stage), Shoup */
    /* SIMD layouts, built once at creation (NULL when not applicable). */
    uint64_t *fwd52_sh; /* [N] floor(fwd * 2^52 / q), only when q < 2^50 (IFMA) */
    uint64_t *inv52_sh; /* [N] floor(inv * 2^52 / q), only when q < 2^50 (IFMA) */
    uint64_t n_inv52_sh, inv_last52_sh;
    /* Every 4th / 8th twiddle for the IFMA kernels' factored last two
     * stages, with radix-2^52 Shoup constants ([N/16] each; q < 2^50):
     * fwd4[m] = fwd[4m], fwd8[m] = fwd[8m], inv4[m] = inv[4m], inv8[m] = inv[8m]. */
    uint64_t *fwd4, *fwd4_sh, *fwd8, *fwd8_sh, *inv4, *inv4_sh, *inv8, *inv8_sh;
    int refs; /* reference count (atomic) */
} tsr_ntt_table;

/**
 * Build the tables for degree n and prime q into *out (free with
 * tsr_ntt_table_free). Fails with TSR_ERR_INVALID_ARG when n is not a power
 * of two in [2, 2^17], q >= 2^62, q is not prime or q != 1 mod 2n;
 * TSR_ERR_NOMEM on allocation failure.
 */
tsr_status tsr_ntt_table_create(size_t n, uint64_t q, tsr_ntt_table **out);

/** Take another reference to t (returns t). Thread-safe. */
tsr_ntt_table *tsr_ntt_table_ref(const tsr_ntt_table *t);

/** Drop a reference; the last one frees the tables. NULL is a no-op. */
void tsr_ntt_table_free(tsr_ntt_table *t);

/**
 * In-place forward negacyclic NTT of a[0..N). Input values < 4q (fully
 * reduced input is fine); output fully reduced, bit-reversed order.
 * Thread-safe for distinct arrays.
 */
void tsr_ntt_forward(const tsr_ntt_table *t, uint64_t *a);

/**
 * In-place inverse of tsr_ntt_forward (including the N^-1 factor). Input
 * values < 2q; output fully reduced, natural coefficient order.
 */
void tsr_ntt_inverse(const tsr_ntt_table *t, uint64_t *a);

/*
 * Split transforms, for callers that fuse the transform with other passes
 * (key switching: a basis conversion produces many limbs a few columns at a
 * time, and an inner product consumes them a block at a time). View the
 * array x[0..N) as R = 2^r segments of B = N >> r words:
 *  - the first r forward stages (gaps N/2 .. B) only combine words at the
 *    same offset c of different segments, with twiddles that depend on the
 *    segment alone: tsr_ntt_forward_outer applies them to a buffer a of R
 *    segments of len words (a[m*len + i] = x[m*B + c + i], any c, len <= B),
 *    so any column range can be transformed on its own;
 *  - the remaining stages stay inside one block: tsr_ntt_forward_inner
 *    applies them to blk = x[b*B .. (b+1)*B) in place.
 * Forward outer on every column range, then forward inner on every block,
 * is tsr_ntt_forward. The inverse runs the other way: inner stages per
 * block, then outer stages (with N^-1) per column range. The values between
 * the two halves are lazy (forward: < 4q; inverse: < 2q), so only the pairs
 * documented here compose. r = 0 makes the outer halves no-ops and the inner
 * halves the whole transform. Every kernel family gives identical results;
 * len and B should be multiples of 8 (others use the portable code).
 */

/**
 * Memory to bring into cache (L2) while a transform computes: a list of
 * address ranges that the inner-stage kernels fetch a few lines at a time
 * between their butterflies, so that the loads of the next piece of work
 * overlap this one's arithmetic. Only a hint: results never depend on it.
 */
#define TSR_PREFETCH_MAX 16
typedef struct tsr_prefetch {
    const char *ptr[TSR_PREFETCH_MAX];
    size_t lines[TSR_PREFETCH_MAX]; /* 64-byte lines left in each range */
    int count, cur;
} tsr_prefetch;

/** Empty the list. */
static inline void tsr_prefetch_reset(tsr_prefetch *pf) {
    pf->count = pf->cur = 0;
}

/** Append [p, p + bytes) (ignored when the list is full). */
static inline void tsr_prefetch_add(tsr_prefetch *pf, const void *p, size_t bytes) {
    if (pf->count == TSR_PREFETCH_MAX || bytes == 0) return;
    pf->ptr[pf->count] = (const char *)p;
    pf->lines[pf->count++] = (bytes + 63) / 64;
}

/**
 * Fetch the next line of the list into L2 (kernels call this once per loop
 * iteration; pf may be NULL). One line per iteration measured best: more
 * saturates the line-fill buffers and stalls the arithmetic.
 */
static inline void tsr_prefetch_step(tsr_prefetch *pf) {
    if (!pf) return;
    while (pf->cur < pf->count && pf->lines[pf->cur] == 0) pf->cur++;
    if (pf->cur == pf->count) return;
    __builtin_prefetch(pf->ptr[pf->cur], 0, 2);
    pf->ptr[pf->cur] += 64;
    pf->lines[pf->cur]--;
}

/** Segment-count exponent r the library uses for degree n: B = n >> r <= 4096 words (32 KiB). */
unsigned tsr_ntt_split_log(size_t n);

/** Outer forward stages on 2^r segments of len words (input < 4q; output < 4q). */
void tsr_ntt_forward_outer(const tsr_ntt_table *t, uint64_t *a, size_t len, unsigned r);

/**
 * Inner forward stages of block b (n >> r words): dst = the transform of src
 * (output of the outer stages), fully reduced. src may equal dst (in place);
 * otherwise they must not overlap and src is not modified. pf: memory to
 * prefetch meanwhile, or NULL.
 */
void tsr_ntt_forward_inner(const tsr_ntt_table *t, uint64_t *dst, const uint64_t *src, size_t b,
                           unsigned r, tsr_prefetch *pf);

/**
 * Inner inverse stages of block b (n >> r words): dst from src (input < 2q;
 * output < 2q, fully reduced if r = 0). src, dst and pf as for the forward.
 */
void tsr_ntt_inverse_inner(const tsr_ntt_table *t, uint64_t *dst, const uint64_t *src, size_t b,
                           unsigned r, tsr_prefetch *pf);

/** Outer inverse stages incl. N^-1 on 2^r segments of len words (input < 2q); reduced output. */
void tsr_ntt_inverse_outer(const tsr_ntt_table *t, uint64_t *a, size_t len, unsigned r);

/**
 * Exponent e (odd, < 2N) with a[j] = A(psi^e) after the forward transform:
 * e = 2 * bitrev(j) + 1.
 */
static inline uint64_t tsr_ntt_eval_exponent(size_t j, int log_n) {
    uint64_t r = 0;
    for (int b = 0; b < log_n; b++) r |= (uint64_t)((j >> b) & 1) << (log_n - 1 - b);
    return 2 * r + 1;
}

#endif /* TSR_RING_NTT_H */
