/*
 * ring/ntt_sub.h - the forward NTT of a polynomial of a subring,
 * A(X) = B(X^s) with B of degree < m = N / s, at the cost of an m-point
 * transform: A's N evaluations take only m distinct values.
 *
 * With the layout of ring/ntt.h (a[j] = A(psi^(2 bitrev_N(j) + 1))),
 * A(psi^e) = B((psi^s)^e), and for k < m the table word fwd[k] =
 * psi^bitrev_N(k) equals (psi^s)^bitrev_m(k): the first m words of the
 * degree-N table are the degree-m table of the root psi^s. So the m-point
 * forward NTT of B with those words gives b[j'] = B((psi^s)^(2 bitrev_m(j') + 1)),
 * and A's transform at j is b[j >> log2(s)] (bitrev_N(j) mod m =
 * bitrev_m(j >> log2(s))). Exact: the same values as tsr_ntt_forward of A.
 * Used by circuits/linear_transform.c for the DFT factors' diagonals, whose
 * slot period p makes them polynomials in X^(N / 2p) (m = 2p coefficients).
 */
#ifndef TSR_RING_NTT_SUB_H
#define TSR_RING_NTT_SUB_H

#include "ring/ntt.h"

#include <stddef.h>
#include <stdint.h>

/**
 * In place: a[0..m) holds B's coefficients (each < 4q; A = B(X^(N/m))); on
 * return a[0..m) holds the m distinct values of A's forward NTT, fully
 * reduced: tsr_ntt_forward of A gives a[j >> log2(N/m)] at index j.
 * m a power of two in [1, N]; m = N is tsr_ntt_forward. Thread-safe for
 * distinct arrays (t is only read).
 */
void tsr_ntt_forward_sub(const tsr_ntt_table *t, uint64_t *a, size_t m);

/**
 * tsr_ntt_forward_sub, then a[0..N) = A's forward NTT (each of the m values
 * repeated N/m times in a row): bit-identical to tsr_ntt_forward of A. a
 * has N words; only a[0..m) is read.
 */
void tsr_ntt_forward_sparse(const tsr_ntt_table *t, uint64_t *a, size_t m);

#endif /* TSR_RING_NTT_SUB_H */
