/*
 * ring/baseconv.h - RNS basis conversion, ModUp, ModDown and rescaling.
 *
 * Fast basis conversion (Bajard et al. 2016; Halevi-Polyakov-Shoup 2018,
 * "HPS") from Q = q_0...q_{F-1} to primes p_0...p_{T-1}: for x in [0, Q),
 *     y_i = [x_i * (Q/q_i)^-1]_{q_i},  x = sum_i y_i (Q/q_i) - u Q,
 * with u = floor(sum_i y_i / q_i) in [0, F).
 *  - tsr_baseconv_approx drops the -uQ term: it returns (x + u Q) mod p_j,
 *    an error of u*Q with 0 <= u < F. This is the standard "ModUp" of hybrid
 *    key switching (the extra multiple of Q is absorbed as noise).
 *  - tsr_baseconv_exact also computes u exactly: a 64.64 fixed-point sum of
 *    y_i/q_i decides it unless the fraction lies within 2F*2^-64 of an
 *    integer, in which case a multi-word comparison settles it. The result
 *    is x mod p_j exactly, always.
 *
 * ModDown (tsr_moddown_*): given a over the basis Q u P (Q limbs first, then
 * P limbs), computes round(a / P) mod Q EXACTLY (round half up, which never
 * ties since P is odd): floor((a + (P-1)/2) / P) via an exact conversion of
 * [a + (P-1)/2]_P to Q. Rescaling by the last prime q_l is the case
 * Q = Q_{l-1}, P = {q_l}, and a Q_l polynomial already has that layout.
 * Results are exact for the non-negative representative a in [0, QP); for
 * the centred representative they agree modulo Q (as CKKS needs).
 *
 * Every object here is immutable after creation and safe to share between
 * threads; the apply functions parallelise over output limbs with OpenMP.
 * Limbs are passed as arrays of pointers (each to N words) so callers can
 * convert between non-contiguous limb sets (e.g. one key-switching digit).
 */
#ifndef TSR_RING_BASECONV_H
#define TSR_RING_BASECONV_H

#include "tessera/common.h"
#include "ring/rns.h"

#include <stddef.h>
#include <stdint.h>

/** Precomputed conversion from one basis to another (same N). */
typedef struct tsr_baseconv {
    tsr_rns_basis *from; /* own copy (shares NTT tables) */
    tsr_rns_basis *to;   /* own copy */
    uint64_t *mat;       /* [to->count][from->count + 1]: (Q/q_i) mod p_j; last: (-Q) mod p_j */
    uint64_t *mat_sh;    /* Shoup constants of the entries of mat (mod p_j) */
    uint64_t *mat52;     /* entries times 2^52 mod p_j (Montgomery form for IFMA kernels) */
    uint64_t ymax;       /* bound on the conversion inputs y_i (and u): max q_i, > from->count */
} tsr_baseconv;

/**
 * Conversion from `from` to `to` (bases of the same degree; the primes may
 * overlap, a shared prime converts to the input residue). Free with
 * tsr_baseconv_free. TSR_ERR_MISMATCH for different degrees, TSR_ERR_NOMEM.
 */
tsr_status tsr_baseconv_create(const tsr_rns_basis *from, const tsr_rns_basis *to,
                               tsr_baseconv **out);

/** Free a conversion. NULL is a no-op. */
void tsr_baseconv_free(tsr_baseconv *bc);

/**
 * Approximate conversion, coefficient domain: out[j][k] = (x_k + u_k Q) mod
 * p_j with 0 <= u_k < from->count, where x_k is coefficient k of the
 * polynomial whose residues are in[i][k] < q_i. in: from->count limb
 * pointers; out: to->count limb pointers (distinct from the inputs).
 * TSR_ERR_NOMEM if scratch cannot be allocated.
 */
tsr_status tsr_baseconv_approx(const tsr_baseconv *bc, uint64_t *const *out,
                               const uint64_t *const *in);

/** Exact conversion, coefficient domain: out[j][k] = x_k mod p_j, x_k in [0, Q). */
tsr_status tsr_baseconv_exact(const tsr_baseconv *bc, uint64_t *const *out,
                              const uint64_t *const *in);

/**
 * ModUp step of key switching, centred: out[j][k] = x'_k mod p_j for the
 * representative x'_k = x_k - Q round(x_k / Q) in (-Q/2, Q/2] of the input
 * (HPS's centred fast conversion: the multiple of Q is rounded in double
 * precision, so an x_k within 2^-40 Q of Q/2 may get x_k - Q or x_k; one
 * prime: exact), then the forward NTT of every output limb (outputs in the
 * NTT domain of the `to` primes). Centred digits make the key-switching
 * error zero-mean: tsr_baseconv_approx's [0, Q) digits add a fixed
 * (Q/2)(1 + X + ... + X^(N-1)) e-shaped term that concentrates in a few
 * slots (docs/CKKS.md).
 */
tsr_status tsr_baseconv_modup(const tsr_baseconv *bc, uint64_t *const *out,
                              const uint64_t *const *in);

/**
 * ModUp with split NTTs (see ntt.h; r as there, e.g. tsr_ntt_split_log(N)):
 * in[i] is limb i of the `from` basis in the NTT domain with the inner
 * inverse stages done on every block (tsr_ntt_inverse_inner); out[j]
 * receives the centred conversion to p_j (as tsr_baseconv_modup, with
 * which it agrees word for word) with the outer forward stages
 * done (finish each block with tsr_ntt_forward_inner). The outer inverse
 * stages, the conversion and the outer forward stages run a few columns at a
 * time in cache, so every limb is read and written once. Inputs are not
 * modified. Limbs 64-byte aligned. TSR_ERR_NOMEM if scratch cannot be
 * allocated.
 */
tsr_status tsr_baseconv_modup_split(const tsr_baseconv *bc, uint64_t *const *out,
                                    const uint64_t *const *in, unsigned r);

/** Fill ptrs[i] = a + i*N for the count limbs of a polynomial over b. */
void tsr_rns_limb_ptrs(const tsr_rns_basis *b, uint64_t *a, uint64_t **ptrs);

/** Precomputed division by P = prod of the primes of p, rounding, onto basis q. */
typedef struct tsr_moddown {
    tsr_rns_basis *q, *p; /* own copies */
    tsr_baseconv *conv;   /* p -> q, exact */
    uint64_t *p_inv;      /* [q->count] P^-1 mod q_j */
    uint64_t *p_inv_sh;   /* [q->count] Shoup constants */
    uint64_t *h_p;        /* [p->count] ((P-1)/2) mod p_i */
    uint64_t *h_q;        /* [q->count] ((P-1)/2) mod q_j */
} tsr_moddown;

/**
 * Division by P with rounding from basis q u p down to q. The primes of q
 * and p must be distinct and share N. Free with tsr_moddown_free.
 */
tsr_status tsr_moddown_create(const tsr_rns_basis *q, const tsr_rns_basis *p, tsr_moddown **out);

/** Free a ModDown object. NULL is a no-op. */
void tsr_moddown_free(tsr_moddown *md);

/**
 * NTT domain: in holds q->count + p->count limbs (Q limbs, then P limbs),
 * out receives q->count limbs = round(in / P) mod q_j, fully reduced. out may
 * equal in (in-place rescale). The P limbs of in are used as scratch and
 * left with unspecified contents. TSR_ERR_NOMEM if scratch allocation fails.
 */
tsr_status tsr_moddown_apply(const tsr_moddown *md, uint64_t *out, uint64_t *in);

/*
 * Row-at-a-time ModDown (NTT domain), for callers that produce the Q limbs
 * of the input one by one:
 *   tsr_moddown_prepare: transforms the P limbs of the input in place
 *     (in_p: p->count limbs, NTT domain on entry, clobbered) and, when P has
 *     several primes, writes the exact quotients to u (N words);
 *   tsr_moddown_row: out_j = round(in / P) mod q_j from in_j (limb j of the
 *     Q part, NTT domain) and the prepared P limbs; tmp is N words of
 *     scratch. out_j may equal in_j. Thread-safe for distinct out_j / tmp.
 * Together they compute exactly what tsr_moddown_apply computes.
 */
tsr_status tsr_moddown_prepare(const tsr_moddown *md, uint64_t *in_p, uint64_t *u);
void tsr_moddown_row(const tsr_moddown *md, size_t j, uint64_t *out_j, const uint64_t *in_j,
                     const uint64_t *in_p, const uint64_t *u, uint64_t *tmp);

/*
 * ModDown with split NTTs (see ntt.h; r as there), for callers that produce
 * and consume the limbs block by block:
 *   tsr_moddown_prepare_split: in_p holds the p->count P limbs of the input
 *     in the NTT domain with the inner inverse stages done on every block
 *     (tsr_ntt_inverse_inner); not modified. conv[j] (q->count limbs)
 *     receives the exact conversion of [in + (P-1)/2]_P to q_j minus
 *     (P-1)/2, with the outer forward stages done;
 *   tsr_moddown_block: block b (N >> r words) of limb j of the result,
 *     out = (in - NTT(conv)) P^-1 mod q_j (+ add when add is not NULL), from
 *     block b of limb j of the input's Q part (in) and of conv[j] (conv,
 *     not modified); tmp is a block of scratch. out may equal in or add.
 *     stream: write out with streaming stores (call tsr_ring_stream_fence,
 *     vec.h, before other threads read it). pf: memory to prefetch
 *     meanwhile (ntt.h), or NULL. Thread-safe for distinct out / tmp.
 * Together they compute exactly what tsr_moddown_apply computes (plus add).
 */
tsr_status tsr_moddown_prepare_split(const tsr_moddown *md, const uint64_t *in_p,
                                     uint64_t *const *conv, unsigned r);
void tsr_moddown_block(const tsr_moddown *md, size_t j, size_t b, unsigned r, uint64_t *out,
                       const uint64_t *in, const uint64_t *conv, uint64_t *tmp, const uint64_t *add,
                       int stream, tsr_prefetch *pf);

/** As tsr_moddown_apply with input and output in the coefficient domain. */
tsr_status tsr_moddown_apply_coeff(const tsr_moddown *md, uint64_t *out, uint64_t *in);

#endif /* TSR_RING_BASECONV_H */
