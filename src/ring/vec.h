/*
 * ring/vec.h - element-wise arithmetic on one limb: n words modulo one prime.
 *
 * These are the building blocks for code that handles limbs individually
 * (e.g. key-switching inner products over non-contiguous key limbs); whole
 * polynomials use the tsr_rns_* functions in rns.h. Each call runs the
 * kernel of tsr_simd_active(); outputs are fully reduced and identical for
 * every kernel family. Inputs must be fully reduced (< q) unless stated.
 * out may alias any input (exactly, not partially overlapping). Any n. No
 * threads are started; calls on distinct outputs are thread-safe.
 */
#ifndef TSR_RING_VEC_H
#define TSR_RING_VEC_H

#include "ring/modq.h"

#include <stddef.h>
#include <stdint.h>

/** out = a + b mod q. */
void tsr_vec_add(const tsr_modulus *m, uint64_t *out, const uint64_t *a, const uint64_t *b,
                 size_t n);
/** out = a - b mod q. */
void tsr_vec_sub(const tsr_modulus *m, uint64_t *out, const uint64_t *a, const uint64_t *b,
                 size_t n);
/** out = -a mod q. */
void tsr_vec_neg(const tsr_modulus *m, uint64_t *out, const uint64_t *a, size_t n);
/** out = a * b mod q (Barrett). Precondition: a, b < q (fully reduced; kernels.h). */
void tsr_vec_mul(const tsr_modulus *m, uint64_t *out, const uint64_t *a, const uint64_t *b,
                 size_t n);
/** out = out + a * b mod q. Precondition: a, b, out < q (fully reduced; kernels.h). */
void tsr_vec_mul_add(const tsr_modulus *m, uint64_t *out, const uint64_t *a, const uint64_t *b,
                     size_t n);
/** out = a * s mod q for one constant s < q (Shoup). */
void tsr_vec_mul_scalar(const tsr_modulus *m, uint64_t *out, const uint64_t *a, uint64_t s,
                        size_t n);
/** out = out + a * s mod q for one constant s < q. */
void tsr_vec_mul_scalar_add(const tsr_modulus *m, uint64_t *out, const uint64_t *a, uint64_t s,
                            size_t n);
/** out = a + s mod q for one constant s < q. */
void tsr_vec_add_scalar(const tsr_modulus *m, uint64_t *out, const uint64_t *a, uint64_t s,
                        size_t n);
/**
 * out = a * w mod q with w fixed and its Shoup constants wp[i] =
 * tsr_modq_shoup(w[i], q) precomputed (tsr_vec_shoup_precompute): faster
 * than tsr_vec_mul when w is reused (plaintexts, keys).
 */
void tsr_vec_mul_shoup(const tsr_modulus *m, uint64_t *out, const uint64_t *a, const uint64_t *w,
                       const uint64_t *wp, size_t n);
/**
 * Inner product of limb vectors: out[k] = sum_{j < terms} x[j][k] * y[j][k]
 * mod q (e.g. key-switching digits times key limbs; products are accumulated
 * before one reduction). Inputs < q; out must not alias any input.
 */
void tsr_vec_dot(const tsr_modulus *m, uint64_t *out, const uint64_t *const *x,
                 const uint64_t *const *y, size_t terms, size_t n);
/**
 * Two inner products sharing x (one pass over x): out0 = sum_j x[j] * y0[j],
 * out1 = sum_j x[j] * y1[j] mod q; the key-switching inner product with the
 * (b_j, a_j) halves of a key. Inputs < q; outputs must not alias inputs.
 */
void tsr_vec_dot2(const tsr_modulus *m, uint64_t *out0, uint64_t *out1, const uint64_t *const *x,
                  const uint64_t *const *y0, const uint64_t *const *y1, size_t terms, size_t n);
/**
 * Forms of constant coefficients c[i] < q for tsr_vec_lincomb: Shoup
 * constants c_sh[i] = floor(c[i] 2^64 / q) and c52[i] = c[i] 2^52 mod q.
 */
void tsr_vec_lincomb_forms(const tsr_modulus *m, uint64_t *c_sh, uint64_t *c52, const uint64_t *c,
                           size_t terms);
/**
 * Linear combination of limbs with constant coefficients: out[k] = sum_{i <
 * terms} x[i][k] * c[i] mod q, x[i][k] < q, with the coefficient forms of
 * tsr_vec_lincomb_forms (products accumulated before reductions: the
 * basis-conversion kernel of each SIMD family). Any terms and n; out must
 * not alias an input.
 */
void tsr_vec_lincomb(const tsr_modulus *m, uint64_t *out, const uint64_t *const *x,
                     const uint64_t *c, const uint64_t *c_sh, const uint64_t *c52, size_t terms,
                     size_t n);
/**
 * dst = src (n words, no overlap) with stores that bypass the caches where
 * the CPU has them: for data written once and read again only much later
 * (skips the read-for-ownership of the destination). Call
 * tsr_ring_stream_fence before another thread reads dst.
 */
void tsr_vec_copy_stream(uint64_t *dst, const uint64_t *src, size_t n);
/**
 * out[j] = a[idx[j]] for j < n (every idx[j] < n; out and a must not overlap).
 * stream: 1 when out is read only much later (streaming stores where the CPU
 * has them, fenced before returning), 0 when the caller reads it at once.
 */
void tsr_vec_permute(uint64_t *out, const uint64_t *a, const uint32_t *idx, size_t n, int stream);
/** Make this thread's streaming stores visible to other threads (a store fence). */
void tsr_ring_stream_fence(void);
/** wp[i] = floor(w[i] * 2^64 / q) for w[i] < q. */
void tsr_vec_shoup_precompute(const tsr_modulus *m, uint64_t *wp, const uint64_t *w, size_t n);

#endif /* TSR_RING_VEC_H */
