/*
 * circuits/circuits_internal.h - helpers shared by the circuits files.
 */
#ifndef TSR_CIRCUITS_INTERNAL_H
#define TSR_CIRCUITS_INTERNAL_H

#include "tessera/circuits.h"

#include "ckks/fft.h"

#include <stddef.h>
#include <stdint.h>

/** TSR_ERR_INVALID_ARG unless s is a valid series (see tsr_cheb); NULL aborts. */
tsr_status circuits_check_series(const tsr_cheb *s);

/**
 * tsr_circuits_poly_plan with the baby-step count fixed to k (a power of two;
 * 0: the default 2^ceil(m/2)) instead of the one with the fewest
 * relinearizations; TSR_ERR_LEVEL if that k does not fit in_level. For tests.
 */
tsr_status circuits_poly_plan_k(const tsr_cheb *s, int in_level, size_t k,
                                tsr_circuits_poly_info *info);

/**
 * The checks every circuit makes of its encrypted input (circuits/input.c): in, out and the
 * evaluator share one parameter set (TSR_ERR_MISMATCH), in is a non-empty ciphertext of 2
 * polynomials (TSR_ERR_INVALID_ARG) at its level's canonical scale (TSR_ERR_SCALE).
 * *level receives in's level.
 */
tsr_status circuits_check_input(const tsr_ckks_evaluator *ev, const tsr_ckks_ciphertext *out,
                                const tsr_ckks_ciphertext *in, int *level);

/**
 * The one linear transform (linear_transform.c): complex diagonals with
 * period n, baby-step giant-step, double hoisting. Used by tsr_circuits_lt
 * (real diagonals, n = slots) and by bootstrapping's DFT factors
 * (bootstrap_dft.c). Immutable after creation: shareable between threads
 * (each with its own evaluator).
 */
typedef struct circuits_bsgs {
    int level;       /* input level */
    int limbs;       /* level + 1 + k: the limbs of Q_l u P */
    double in_scale; /* input scale; the output is at Delta_{level-1} up to rounding */
    size_t n;        /* period of the diagonals (a power of two dividing the slot count) */
    size_t n1;       /* baby steps */
    size_t n_diags;  /* diagonals */
    size_t *index;   /* (n_diags) sorted, distinct diagonal indices in [0, n) */
    uint64_t **pt;   /* (n_diags) diagonal t encoded: rot(diag_t, -g) over Q_l u P, NTT form,
                        (level + 1 + k) N words; NULL when it is kept as coefficients */
    /* The diagonals kept as coefficients (pt[t] NULL), converted when applied: the exact
     * rounded coefficients they are encoded from. Diagonal t with slot period p_t is a
     * polynomial in X^(N / 2 p_t): its 2 p_t coefficients (of X^(k N / 2 p_t), k < 2 p_t) are
     * words coef_off[t] .. coef_off[t + 1] (none when encoded), converted limb by limb (a
     * 2 p_t-point NTT written out: the words pt[t] would hold). */
    int64_t *coef_i;  /* every |c| < 2^62 (always at bootstrapping's scales) */
    double *coef;     /* otherwise (coef_i NULL): the same as doubles */
    size_t *coef_off; /* (n_diags + 1) */
    size_t n_fly;     /* diagonals kept as coefficients (pt[t] NULL) */
    /* Limbs 0 .. pt_limbs - 1 (Q_l u P order) of each stored diagonal are encoded in pt[t];
     * the others are converted from its coefficients when applied, like a diagonal on the fly
     * (pt_limbs < level + 1 + k only after circuits_bsgs_limit). */
    size_t pt_limbs;
    double coef_max; /* the largest |coefficient| of any diagonal (as rounded at creation) */
    double *pt_mag;  /* (n_diags) largest |value| of each diagonal */
    double pt_scale; /* scale of the diagonals: in_scale * pt_scale / q_l = Delta_{l-1} */
    double pt_err;   /* rounding error of one encoded diagonal (value units) */
    int *steps;      /* rotation steps (babies b > 0, giants g n1 > 0), sorted, distinct */
    size_t n_steps;
} circuits_bsgs;

/** Whether some of lt's diagonals (or limbs of them) are converted when applied. */
static inline int circuits_bsgs_on_the_fly(const circuits_bsgs *lt) {
    return lt->n_fly > 0 || lt->pt_limbs < (size_t)lt->limbs;
}

/** CIRCUITS_DIAGS_SUBRING keeps as coefficients the diagonals of slot period p with
 * CIRCUITS_SUBRING_MIN_RATIO * p <= slots (the one owner of that threshold). */
enum { CIRCUITS_SUBRING_MIN_RATIO = 32 };

/** Where a transform keeps its diagonals (circuits_bsgs_create_ex). */
typedef enum circuits_diag_store {
    /** every diagonal encoded over Q_l u P at creation ((l + 1 + k) N words) */
    CIRCUITS_DIAGS_ENCODED = 0,
    /** every diagonal as its 2p coefficients (slot period p), converted when applied */
    CIRCUITS_DIAGS_ON_THE_FLY = 1,
    /** as coefficients the diagonals of slot period p <= slots / 32 (converted by 2p-point
     * NTTs of at most N/32 points, about the cost of reading them encoded), the others encoded */
    CIRCUITS_DIAGS_SUBRING = 2,
} circuits_diag_store;

/** Writes diagonal t (sorted order) as n complex values to out; ctx is the caller's. */
typedef tsr_status (*circuits_diag_fn)(void *ctx, size_t t, ckks_cplx *out);

/**
 * Encode a transform: index (n_diags sorted, distinct values in [0, n)),
 * diag(ctx, t, .) gives diagonal t; n1 = 0 picks the baby-step count with the
 * fewest rotation keys, then the cheapest split. Inputs at `level` (>= 1)
 * with scale in_scale. lt is zeroed first; free it with circuits_bsgs_free.
 */
tsr_status circuits_bsgs_create(circuits_bsgs *lt, tsr_ckks_encoder *enc, tsr_ckks_params *p,
                                const size_t *index, size_t n_diags, size_t n, size_t n1,
                                circuits_diag_fn diag, void *ctx, int level, double in_scale);
/**
 * circuits_bsgs_create, with the diagonals kept as `store` says: encoded at
 * creation, or as their rounded coefficients (2p words for a diagonal of slot
 * period p, at most N, instead of (level + 1 + k) N) converted to Q_l u P limb
 * by limb when applied (a 2p-point NTT per limb), or the subring mix. Either
 * way each diagonal is encoded from its first p values as a polynomial in
 * X^(N/2p) (linear_transform.c), so every store gives bit-identical results.
 */
tsr_status circuits_bsgs_create_ex(circuits_bsgs *lt, tsr_ckks_encoder *enc, tsr_ckks_params *p,
                                   const size_t *index, size_t n_diags, size_t n, size_t n1,
                                   circuits_diag_fn diag, void *ctx, int level, double in_scale,
                                   circuits_diag_store store);
/**
 * Keep at most `budget` bytes of lt's encoded diagonals: when the stored
 * diagonals (pt[t] != NULL) hold more, each keeps only its first
 * floor(budget / (stored N 8)) limbs (possibly none: then it is kept as
 * coefficients alone) and its other limbs are converted when applied, from
 * its N coefficients, recovered exactly from its first two limbs (CRT of two
 * inverse NTTs; int64, or doubles when some |c| may reach 2^62, as on the
 * fly). Bit-identical results, fewer bytes (N words of coefficients per cut
 * diagonal added), an N-point NTT per converted limb and use. Nothing changes
 * when they fit, or when a coefficient may reach q_0 q_1 / 4 (coef_max).
 */
tsr_status circuits_bsgs_limit(circuits_bsgs *lt, const tsr_ckks_params *p, uint64_t budget);
/** Bytes the diagonals of lt hold. */
uint64_t circuits_bsgs_bytes(const circuits_bsgs *lt, const tsr_ckks_params *p);
void circuits_bsgs_free(circuits_bsgs *lt);

/** TSR_ERR_KEY_MISSING listing the rotation steps of lt the evaluator has no key for. */
tsr_status circuits_bsgs_check_keys(const tsr_ckks_evaluator *ev, const circuits_bsgs *lt);

/**
 * out = M in, rescaled once (level - 1, scale in_scale * pt_scale / q_l,
 * unsnapped). in: size 2 at lt->level with scale lt->in_scale, every key
 * present (the callers check). Double hoisting (Bossuat et al., EUROCRYPT
 * 2021, section 3.3): one decomposition for the babies, their key switches
 * kept over Q_l u P, the giant inner sums there, one ModDown per giant step
 * and one at the end. out may equal in. An error before the last ModDown
 * leaves out untouched; if that ModDown or the rescale after it fails, out
 * (and in, when out == in) may be left half-written: the ModDown writes
 * straight into out.
 */
tsr_status circuits_bsgs_apply(tsr_ckks_evaluator *ev, tsr_ckks_ciphertext *out,
                               const tsr_ckks_ciphertext *in, const circuits_bsgs *lt);
/**
 * The same product with single hoisting (every rotation ModDown'ed, the
 * products over Q_l): the reference the tests compare with.
 */
tsr_status circuits_bsgs_apply_ref(tsr_ckks_evaluator *ev, tsr_ckks_ciphertext *out,
                                   const tsr_ckks_ciphertext *in, const circuits_bsgs *lt);

#endif /* TSR_CIRCUITS_INTERNAL_H */
