/*
 * circuits/fn_internal.h - small helpers shared by the function circuits
 * (inverse.c, invsqrt.c, sign.c): products and constant products that keep
 * every intermediate at its level's canonical scale, the level and modulus
 * checks, and precision in bits.
 */
#ifndef TSR_CIRCUITS_FN_INTERNAL_H
#define TSR_CIRCUITS_FN_INTERNAL_H

#include "tessera/circuits.h"

#include "ckks/evaluator_internal.h"
#include "core/error.h"

#include <math.h>

/** Points per interval of the plaintext grids that measure approx_bits. */
#define FN_GRID 4097

/** -log2(err), capped at 60 (an exact result). */
static inline double fn_bits(double err) {
    return err > 0x1p-60 ? -log2(err) : 60.0;
}

/**
 * Set ct's scale to the canonical scale of `level` after checking that ct is
 * at that level with that scale up to the evaluator's tolerance (else a bug).
 */
static inline tsr_status fn_snap(tsr_ckks_ciphertext *ct, int level, const char *what) {
    tsr_ckks_params *p = tsr_ckks_ciphertext_params(ct);
    double want = tsr_ckks_params_scale(p, level), have = tsr_ckks_ciphertext_scale(ct);
    if (tsr_ckks_ciphertext_level(ct) != level ||
        fabs(have - want) > CKKS_SCALE_TOL * fmax(have, want))
        return tsr_fail(TSR_ERR_INTERNAL,
                        "%s is at level %d, scale 2^%.6f instead of level %d, scale 2^%.6f (a bug "
                        "in Tessera: please report it)",
                        what, tsr_ckks_ciphertext_level(ct), log2(have), level, log2(want));
    return tsr_ckks_ciphertext_set_scale(ct, want);
}

/** Tighten the evaluator's magnitude bound of ct to a known bound of its values. */
static inline void fn_bound(tsr_ckks_ciphertext *ct, double bound) {
    if (bound < ct->mag) ct->mag = bound;
}

/** out = a * b, relinearized and rescaled, at min(levels) - 1 with the canonical scale. */
static inline tsr_status fn_mul(tsr_ckks_evaluator *ev, tsr_ckks_ciphertext *out,
                                const tsr_ckks_ciphertext *a, const tsr_ckks_ciphertext *b,
                                const char *what) {
    int la = tsr_ckks_ciphertext_level(a), lb = tsr_ckks_ciphertext_level(b);
    TSR_TRY(tsr_ckks_mul_relin_rescale(ev, out, a, b));
    return fn_snap(out, (la < lb ? la : lb) - 1, what);
}

/** out = c * a, rescaled: one level below a, at the canonical scale. */
static inline tsr_status fn_mul_const(tsr_ckks_evaluator *ev, tsr_ckks_ciphertext *out,
                                      const tsr_ckks_ciphertext *a, double c, const char *what) {
    int l = tsr_ckks_ciphertext_level(a);
    TSR_TRY(tsr_ckks_mul_const(ev, out, a, c, 0.0));
    TSR_TRY(tsr_ckks_rescale(ev, out, out));
    return fn_snap(out, l - 1, what);
}

/** TSR_ERR_SCALE unless values up to `bound` fit the modulus of `level` at its scale. */
static inline tsr_status fn_check_fits(const tsr_ckks_params *p, double bound, int level,
                                       const char *what) {
    double need = log2(bound * tsr_ckks_params_scale(p, level) + 1);
    double have = tsr_ckks_params_log_q(p, level) - 1;
    if (need < have) return TSR_OK;
    return tsr_fail(TSR_ERR_SCALE,
                    "%s: values up to %.3g need %.1f bits at level %d but its modulus has %.1f: "
                    "narrow the range, scale the input, or use a larger first prime",
                    what, bound, need, level, have + 1);
}

/** TSR_ERR_KEY_MISSING if the evaluator has no relinearization key. */
static inline tsr_status fn_need_relin(const tsr_ckks_evaluator *ev, const char *what) {
    if (ev->rk) return TSR_OK;
    return tsr_fail(TSR_ERR_KEY_MISSING,
                    "%s needs ciphertext products but the evaluator has no relinearization key: "
                    "create it with tsr_ckks_relin_key_create and pass it to "
                    "tsr_ckks_evaluator_create",
                    what);
}

#endif /* TSR_CIRCUITS_FN_INTERNAL_H */
