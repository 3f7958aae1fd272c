/*
 * ckks/evaluator_internal.h - the evaluator object and the key-switching
 * phases shared by relinearization, rotations and hoisted rotations.
 */
#ifndef TSR_CKKS_EVALUATOR_INTERNAL_H
#define TSR_CKKS_EVALUATOR_INTERNAL_H

#include "ckks/ckks_internal.h"

struct tsr_ckks_evaluator {
    tsr_ckks_params *params;
    const tsr_ckks_relin_key *rk;
    const tsr_ckks_galois_keys *gk;
    /* Key-switching scratch (allocated on first use, at the top level). */
    uint64_t *ks_coef;   /* 2 (L+1) limbs: inverse-transformed d, then ModDown conversions */
    uint64_t *ks_digits; /* dnum polynomials over Q_l u P (outer forward stages done) */
    uint64_t *ks_acc;    /* the "P" limbs of both accumulators */
    uint64_t *ks_tls;    /* per thread: dnum digit blocks, 2 accumulator blocks, 1 temporary */
    uint64_t *ks_limb;   /* per thread: one limb of both outputs (rotations: permuted from here) */
    int ks_tls_threads;
    /* Rotations of many ciphertexts with one key (ckks_ks_apply_galois_many): the scratch of a
     * chunk's ciphertexts but the first, and their limb buffers per thread; grown when needed,
     * freed with the key-switching scratch. */
    uint64_t *ks_many, *ks_many_limb;
    size_t ks_many_words, ks_many_limb_words;
    size_t ks_many_bytes; /* the chunks' budget: 0 = CKKS_KS_MANY_BYTES (tests lower it) */
    /* Linear transforms' limbs converted on the fly (circuits/linear_transform.c,
     * fly_inner_sum: per thread), kept between transforms; grown when more are needed, freed
     * with the key-switching scratch. */
    uint64_t *lt_scratch;
    size_t lt_scratch_words;
    const uint64_t *ks_src; /* the switched polynomial (its limbs are the digits' own) */
    int ks_level;           /* level of the decomposed polynomial */
    int ks_digits_done;     /* the digits' inner forward stages are done too */
    /* Temporaries for results computed before they may overwrite an input. */
    tsr_ckks_ciphertext *tmp[3];
    uint64_t *poly; /* 2 polynomials over Q_L: general scratch */
    /* Rotation composition over the available keys: via[s] is the last key
     * step of a shortest path 0 -> s (mod slots), 0 for s = 0, -1 if none. */
    int32_t *via;
    size_t via_keys;   /* Galois key count when via was built (rebuilt if it changes) */
    uint8_t *via_mask; /* via_keys flags: key i was a generator (it served the level) */
    /* Counts since creation (tests check the cost of circuits by them). */
    unsigned long n_decompose; /* key-switching decompositions (ModUp) */
    unsigned long n_moddown;   /* key-switching ModDowns (two polynomials or one: 1) */
    /* A second evaluator over the same (read-only) keys with its own scratch, for work a
     * circuit runs on two threads at once (EvalMod's two halves); ckks_evaluator_twin. */
    struct tsr_ckks_evaluator *twin;
};

/**
 * ev's twin: an evaluator with the same parameters and keys and scratch of its
 * own (created on first use, freed with ev), so that ev and the twin may run
 * on two threads at once. A caller that is done with it for now frees its
 * key-switching scratch (ckks_ks_scratch_free), the bulk of its memory. Its operation counts are
 * its own: a caller that uses it adds them to ev's (n_decompose, n_moddown).
 */
tsr_status ckks_evaluator_twin(tsr_ckks_evaluator *ev, tsr_ckks_evaluator **twin);

/** Allocate the key-switching scratch. */
tsr_status ckks_ks_scratch(tsr_ckks_evaluator *ev);
/** Free it and lt_scratch (the next key switch or transform allocates them again). */
void ckks_ks_scratch_free(tsr_ckks_evaluator *ev);
/**
 * Decompose d (NTT form, level l) for one or more key switches (hoisting):
 * every digit is converted, NTT'd and stored once. d must stay unchanged
 * until the last switch.
 */
tsr_status ckks_ks_decompose(tsr_ckks_evaluator *ev, int level, const uint64_t *d);
/**
 * Finish the forward transforms of the stored digits (in place), so that
 * several ckks_ks_apply calls on one decomposition (hoisting) do not each
 * redo them. Optional: ckks_ks_apply finishes them block by block otherwise.
 */
void ckks_ks_finish_digits(tsr_ckks_evaluator *ev);
/** TSR_ERR_LEVEL unless key serves `level` (level <= key->max_level). */
tsr_status ckks_ks_check_level(const ckks_ksk *key, int level);
/**
 * Switch the decomposed polynomial with key: (out0, out1) ~ d * s' under s.
 * TSR_ERR_LEVEL when the key does not serve the decomposed level.
 * rescale = 0: out = ModDown_P(acc) + (c0, c1) (either may be NULL), l+1
 * limbs. rescale = 1: out = round((acc + P (c0, c1)) / (q_l P)), l limbs
 * (c0, c1 required). out may alias c0 / c1, not d.
 */
tsr_status ckks_ks_apply(tsr_ckks_evaluator *ev, const ckks_ksk *key, int rescale,
                         const uint64_t *c0, const uint64_t *c1, uint64_t *out0, uint64_t *out1);
/**
 * Key switching of a product (mul + relin fused): ckks_ks_decompose_prod
 * writes d = x * y (limbs 0..level, NTT form) and decomposes it in the same
 * pass (each block of d is transformed while still in L1; d must stay
 * unchanged until the last switch); ckks_ks_apply_prod is ckks_ks_apply with
 * c0 = a0 b0 and c1 = a0 b1 + a1 b0 computed block by block as they are
 * consumed, so the tensor product's c0, c1 never reach memory. out must not
 * alias a0..b1 or d.
 */
tsr_status ckks_ks_decompose_prod(tsr_ckks_evaluator *ev, int level, const uint64_t *x,
                                  const uint64_t *y, uint64_t *d);
tsr_status ckks_ks_apply_prod(tsr_ckks_evaluator *ev, const ckks_ksk *key, int rescale,
                              const uint64_t *a0, const uint64_t *a1, const uint64_t *b0,
                              const uint64_t *b1, uint64_t *out0, uint64_t *out1);
/**
 * Rotation: plain-mode ckks_ks_apply with c1 = NULL whose outputs are then
 * permuted by perm (tsr_rns_automorphism_ntt): each output limb is finished
 * in a per-thread buffer and permuted from cache into out, which must not
 * alias c0 or the decomposed polynomial.
 */
tsr_status ckks_ks_apply_galois(tsr_ckks_evaluator *ev, const ckks_ksk *key, const uint64_t *c0,
                                const uint32_t *perm, uint64_t *out0, uint64_t *out1);
/** Decompose + apply (plain mode). */
/** Ciphertexts per chunk of ckks_ks_apply_galois_many: at most CKKS_KS_MANY_CHUNK. */
#define CKKS_KS_MANY_CHUNK TSR_CKKS_ROTATE_MANY_CHUNK
/** Bound on a chunk's scratch beyond the evaluator's own (ckks_ks_many_chunk). */
#define CKKS_KS_MANY_BYTES ((size_t)32 << 20)
/**
 * Ciphertexts per chunk at level: 1..CKKS_KS_MANY_CHUNK, as many as fit the evaluator's budget
 * (ks_many_bytes, by default CKKS_KS_MANY_BYTES) with each one's digits, accumulators' P limbs,
 * ModDown conversions and one limb pair (AE1's chain, N = 2^14, 8 levels, 2 special primes,
 * dnum 5: 7.75 MiB each at level 7, so 4: 24.5 MiB beyond the evaluator's own scratch with two
 * threads; 64 MiB, 8 of them, measured no faster, docs/BENCHMARKS.md).
 */
size_t ckks_ks_many_chunk(const tsr_ckks_evaluator *ev, int level);
/**
 * Rotations of n ciphertexts (c0[i], c1[i] at `level`, NTT form) with one Galois key: out0[i],
 * out1[i] receive word for word what ckks_ks_decompose(c1[i]) + ckks_ks_apply_galois(c0[i])
 * give. Chunk by chunk of ckks_ks_many_chunk ciphertexts: their decompositions are kept side by
 * side and each block of the key (a seeded key's a_j regenerated, b_j read from memory) is
 * made once per chunk instead of once per ciphertext. The outputs (level + 1 limbs each) must
 * not alias any input. The evaluator's decomposition afterwards is the last chunk's first.
 * Extra memory: below the budget plus one limb pair per chunk ciphertext and thread,
 * kept in the evaluator (ckks_ks_scratch_free frees it).
 */
tsr_status ckks_ks_apply_galois_many(tsr_ckks_evaluator *ev, const ckks_ksk *key, int level,
                                     size_t n, const uint64_t *const *c0, const uint64_t *const *c1,
                                     const uint32_t *perm, uint64_t *const *out0,
                                     uint64_t *const *out1);
tsr_status ckks_keyswitch(tsr_ckks_evaluator *ev, int level, const uint64_t *d, const ckks_ksk *key,
                          const uint64_t *c0, const uint64_t *c1, uint64_t *out0, uint64_t *out1);

/*
 * Double hoisting (Bossuat et al., EUROCRYPT 2021, section 3.3): key
 * switches whose results stay over Q_l u P, summed there, with one ModDown
 * at the end. A "QP polynomial" at level l has l + 1 + k limbs of N words,
 * NTT form: the Q_l limbs, then the special primes (p->qlp[l]).
 *
 * ckks_ks_apply_qp: after ckks_ks_decompose, the raw inner products of the
 * decomposed polynomial with key, acc = (sum_j D_j b_j, sum_j D_j a_j) over
 * Q_l u P, permuted by perm when not NULL (a rotation's phi_g). No ModDown:
 * ModDown(acc) is what ckks_ks_apply (plain mode, no c) returns. The inner
 * forward stages of the digits are done per block unless
 * ckks_ks_finish_digits ran. add0 (a QP polynomial) and P * lift0 (lift0:
 * l + 1 limbs over Q_l, as ckks_qp_add_lifted), each NULL or not, are added
 * to the first inner product before the permutation: acc0 = perm(sum_j D_j
 * b_j + add0 + P lift0), the rotated c0 half of a ciphertext kept over
 * Q_l u P (add0) or lifted from Q_l (lift0) in the same pass. They may be
 * acc0 itself only when perm is given.
 */
tsr_status ckks_ks_apply_qp(tsr_ckks_evaluator *ev, const ckks_ksk *key, const uint32_t *perm,
                            const uint64_t *add0, const uint64_t *lift0, uint64_t *acc0,
                            uint64_t *acc1);
/**
 * acc += P * perm(c) on the Q_l limbs of a QP polynomial (the P limbs are
 * unchanged: P * c is 0 there). c: l + 1 limbs; perm may be NULL.
 */
tsr_status ckks_qp_add_lifted(tsr_ckks_evaluator *ev, int level, const uint32_t *perm,
                              const uint64_t *c, uint64_t *acc);
/**
 * (acc0, acc1) = P * (c0, c1) as a QP polynomial pair at level: the words of
 * clearing acc0, acc1 and ckks_qp_add_lifted of c0 and c1 (no permutation),
 * limb by limb over the threads. c0, c1: l + 1 limbs each.
 */
tsr_status ckks_qp_set_lifted(tsr_ckks_evaluator *ev, int level, const uint64_t *c0,
                              const uint64_t *c1, uint64_t *acc0, uint64_t *acc1);
/**
 * Plaintext inner sum over Q_l u P: out_i = sum_{j < terms} pt[j] * c_i[j]
 * (i = 0, 1) limb by limb, products accumulated before one reduction. All
 * QP polynomials at level; out must not alias the inputs.
 */
tsr_status ckks_qp_dot_plain(tsr_ckks_evaluator *ev, int level, uint64_t *out0, uint64_t *out1,
                             const uint64_t *const *pt, const uint64_t *const *c0,
                             const uint64_t *const *c1, size_t terms);
/** (acc0, acc1) += (a0, a1) over Q_l u P. */
void ckks_qp_add(tsr_ckks_evaluator *ev, int level, uint64_t *acc0, uint64_t *acc1,
                 const uint64_t *a0, const uint64_t *a1);
/**
 * (out0, out1) = round((in0, in1) / P): the ModDown of two QP polynomials
 * at level l to l + 1 limbs. The P limbs of in0, in1 are clobbered; out may
 * equal in.
 */
tsr_status ckks_qp_moddown(tsr_ckks_evaluator *ev, int level, uint64_t *in0, uint64_t *in1,
                           uint64_t *out0, uint64_t *out1);
/** out = round(in / P) for one QP polynomial (as ckks_qp_moddown; counted as one ModDown). */
tsr_status ckks_qp_moddown1(tsr_ckks_evaluator *ev, int level, uint64_t *in, uint64_t *out);
/**
 * The rounded (integer-valued) coefficients of n complex values (re, im
 * interleaved) encoded at `level` and `scale`: N doubles, the coefficients
 * tsr_ckks_encode_complex rounds before its RNS form (circuits/
 * linear_transform.c converts them over Q_level u P itself, limb by limb).
 * *mag: the largest |value|; *err: the rounding error (value units), as
 * tsr_ckks_encode_complex records them. want: the parameters coef was sized
 * for; an encoder of other parameters is refused (TSR_ERR_MISMATCH) before
 * anything is written.
 */
tsr_status ckks_encode_complex_coef(tsr_ckks_encoder *e, const tsr_ckks_params *want, double *coef,
                                    const double *values, size_t n, int level, double scale,
                                    double *mag, double *err);

/* Noise model (encrypt.c). */
double ckks_noise_fresh_pk(const tsr_ckks_params *p, double scale);
double ckks_noise_fresh_sk(const tsr_ckks_params *p, double scale);
double ckks_noise_rescale(const tsr_ckks_params *p, double new_scale);
double ckks_noise_keyswitch(const tsr_ckks_params *p, int level, double scale);

#endif /* TSR_CKKS_EVALUATOR_INTERNAL_H */
