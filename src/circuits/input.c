/*
 * circuits/input.c - the checks of an encrypted input shared by the circuits
 * (polynomial evaluation, linear transforms).
 */
#include "circuits/circuits_internal.h"

#include "ckks/ckks_internal.h"
#include "ckks/evaluator_internal.h"
#include "core/error.h"

#include <math.h>

tsr_status circuits_check_input(const tsr_ckks_evaluator *ev, const tsr_ckks_ciphertext *out,
                                const tsr_ckks_ciphertext *in, int *level) {
    tsr_ckks_params *p = ev->params;
    if (tsr_ckks_ciphertext_params(in) != p || tsr_ckks_ciphertext_params(out) != p)
        return tsr_fail(TSR_ERR_MISMATCH,
                        "the ciphertexts and the evaluator belong to different parameter sets");
    *level = tsr_ckks_ciphertext_level(in);
    if (*level < 0) return tsr_fail(TSR_ERR_INVALID_ARG, "the input ciphertext is empty");
    if (tsr_ckks_ciphertext_size(in) != 2)
        return tsr_fail(TSR_ERR_INVALID_ARG,
                        "the input ciphertext has %d polynomials: relinearize it first",
                        tsr_ckks_ciphertext_size(in));
    double scale = tsr_ckks_ciphertext_scale(in), canon = tsr_ckks_params_scale(p, *level);
    if (fabs(scale - canon) > CKKS_SCALE_TOL * fmax(fabs(scale), fabs(canon)))
        return tsr_fail(TSR_ERR_SCALE,
                        "the input's scale 2^%.6f is not the canonical scale 2^%.6f of its level "
                        "%d: rescale it, or bring it to a lower level's canonical scale with "
                        "tsr_ckks_adjust",
                        log2(scale), log2(canon), *level);
    return TSR_OK;
}
