/*
 * ckks/monomial.c - multiplication of a ciphertext by a monomial X^k.
 *
 * In every slot j, X evaluates to zeta^(5^j) with zeta = exp(i pi / N), so
 * X^(N/2) is i in every slot (5^j = 1 mod 4) and X^(3N/2) is -i: the
 * bootstrapping circuits use this to multiply by +-i exactly, without a
 * level (Cheon et al., "Bootstrapping for Approximate Homomorphic
 * Encryption", EUROCRYPT 2018, section 4). In the NTT domain the product is
 * a pointwise product with the transform of X^k, limb by limb.
 */
#include "ckks/evaluator_internal.h"
#include "core/alloc.h"
#include "core/error.h"
#include "core/threads.h"
#include "ring/vec.h"

#include <string.h>

tsr_status tsr_ckks_mul_monomial(tsr_ckks_evaluator *ev, tsr_ckks_ciphertext *out,
                                 const tsr_ckks_ciphertext *a, long k) {
    TSR_REQUIRE(ev && out && a, "tsr_ckks_mul_monomial: NULL argument");
    tsr_ckks_params *p = ev->params;
    TSR_TRY(ckks_params_check(p, a->params, "the ciphertext"));
    TSR_TRY(ckks_params_check(p, out->params, "the output ciphertext"));
    if (a->level < 0) return tsr_fail(TSR_ERR_INVALID_ARG, "the ciphertext is empty");
    size_t n = p->n;
    long m = 2 * (long)n;
    long e = k % m;
    if (e < 0) e += m;
    int negate = e >= (long)n; /* X^(N + j) = -X^j */
    size_t pos = (size_t)(negate ? e - (long)n : e);
    int level = a->level, size = a->size;
    double scale = a->scale, err = a->err, mag = a->mag;
    /* one transform of X^k per limb and thread */
    uint64_t *mono = tsr_alloc((size_t)tsr_thread_max() * n * sizeof *mono);
    if (!mono) return tsr_fail(TSR_ERR_NOMEM, "cannot allocate a monomial");
    if (out != a) {
        tsr_status st = ckks_ct_reserve(out, level, size);
        if (st != TSR_OK) {
            tsr_free(mono);
            return st;
        }
    }
    /* Limb by limb in parallel: each limb's words depend on that limb only (the
     * bootstrapping's split and join of EvalMod ran this loop on one thread). */
#pragma omp parallel for schedule(static) if (level > 0 && n >= 2048)
    for (int i = 0; i <= level; i++) {
        const tsr_modulus *q = ckks_mod(p, i);
        uint64_t *x = mono + (size_t)tsr_thread_index() * n; /* X^k over q_i */
        memset(x, 0, n * sizeof *x);
        x[pos] = negate ? q->q - 1 : 1;
        tsr_ntt_forward(ckks_ntt(p, i), x);
        for (int c = 0; c < size; c++) {
            uint64_t *dst = ckks_ct_poly(out, c) + (size_t)i * n;
            const uint64_t *src = ckks_ct_poly(a, c) + (size_t)i * n;
            tsr_vec_mul(q, dst, src, x, n);
        }
    }
    tsr_free(mono);
    out->level = level;
    out->size = size;
    out->scale = scale;
    out->err = err;
    out->mag = mag;
    out->seeded = 0;
    return TSR_OK;
}
