/*
 * circuits/bootstrap_internal.h - pieces of bootstrapping shared by its
 * files: sparse-diagonal complex matrices (the factored special FFT) and
 * the one-level transform that applies one of them (bootstrap_dft.c).
 */
#ifndef TSR_CIRCUITS_BOOTSTRAP_INTERNAL_H
#define TSR_CIRCUITS_BOOTSTRAP_INTERNAL_H

#include "tessera/circuits.h"

#include "circuits/circuits_internal.h"
#include "ckks/fft.h"

/** An n x n complex matrix by generalized diagonals: (M v)[j] = sum_i d[i][j] v[(j + i) mod n]. */
typedef struct boot_dmat {
    size_t n;
    ckks_cplx **d; /* (n) diagonal i: n values, or NULL when zero */
} boot_dmat;

void boot_dmat_free(boot_dmat *m);

/**
 * The special FFT of f (f->n points) as `groups` factors in application
 * order: forward (F_{n/2} ... F_1, bit-reversed input) or inverse
 * (F_1^-1 ... F_{n/2}^-1 = P U^-1). Group sizes differ by at most one stage.
 */
tsr_status boot_dft_factors(boot_dmat *mats, int groups, const ckks_fft *f, int inverse);

/** One factor encoded for a ciphertext at `level` with scale in_scale (output: canonical l-1):
 * the one linear transform of circuits/linear_transform.c. */
typedef circuits_bsgs boot_lt;

/** Encode factor * m (replicated with period n over all slots) for inputs at level, in_scale
 * (on_the_fly, config.diagonals_on_the_fly: 1 every diagonal kept as coefficients; 2 every
 * diagonal encoded; 0 those of slot period at most slots / 32 as coefficients, the others
 * encoded: CIRCUITS_DIAGS_SUBRING, circuits_bsgs_create_ex). */
tsr_status boot_lt_create(boot_lt *lt, tsr_ckks_encoder *enc, tsr_ckks_params *p,
                          const boot_dmat *m, double factor, int level, double in_scale,
                          int on_the_fly);
void boot_lt_free(boot_lt *lt);
/** out = M in (keys checked by the caller); out at level - 1 with its canonical scale. */
tsr_status boot_lt_apply(tsr_ckks_evaluator *ev, tsr_ckks_ciphertext *out,
                         const tsr_ckks_ciphertext *in, const boot_lt *lt);
/** Set ct's scale to want after checking it agrees to 1e-9 (else TSR_ERR_INTERNAL). */
tsr_status boot_snap_scale(tsr_ckks_ciphertext *ct, double want);
/* TSR_ERR_INSECURE unless the key to the sparse secret k lives over at most
 * TSR_CIRCUITS_ENCAP_MAX_LOG_MODULUS bits or p carries the insecure flag. */
tsr_status boot_check_encap_modulus(const tsr_ckks_params *p, const tsr_ckks_switch_key *k);
/** EvalMod's cosine as the series in y = 2 x'^2 - 1 that is evaluated (owned by b). */
tsr_cheb boot_cos_series(const tsr_circuits_boot *b);

#endif /* TSR_CIRCUITS_BOOTSTRAP_INTERNAL_H */
