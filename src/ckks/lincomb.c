/*
 * ckks/lincomb.c - many linear combinations of many ciphertexts with real
 * constants at once (a dense or convolution layer when the slots hold a
 * batch, as in CryptoNets, Gilad-Bachrach et al. 2016): every constant is
 * the integer round(v * cscale), every output limb is one pass of the ring's
 * basis-conversion kernel (products accumulated before a reduction; IFMA
 * where available), and the work is cut into chunks of coefficients so
 * that a chunk of every input stays in cache while all outputs read it.
 */
#include "ckks/ckks_internal.h"

#include "core/alloc.h"
#include "core/error.h"
#include "ring/vec.h"

#include <math.h>
#include <string.h>

#define CHUNK 64 /* coefficients per task: 64 x 8 bytes per input limb (measured best) */

tsr_status tsr_ckks_lincomb(tsr_ckks_ciphertext *const *outs, size_t n_out,
                            const tsr_ckks_ciphertext *const *ins, size_t n_in,
                            const int64_t *row_ptr, const int64_t *cols, const double *vals,
                            double cscale) {
    TSR_REQUIRE(outs && ins && row_ptr && n_in > 0, "tsr_ckks_lincomb: NULL argument");
    const tsr_ckks_params *p = ins[0]->params;
    int level = ins[0]->level, size = ins[0]->size;
    double scale = ins[0]->scale, err2 = 0, mag = 0;
    if (size != 2 && size != 3)
        return tsr_fail(TSR_ERR_INVALID_ARG, "lincomb: input 0 has size %d (2 or 3 needed)", size);
    for (size_t i = 0; i < n_in; i++) {
        const tsr_ckks_ciphertext *c = ins[i];
        if (c->params != p && ckks_params_check(c->params, p, "lincomb") != TSR_OK)
            return tsr_fail(TSR_ERR_MISMATCH, "lincomb: input %zu has other parameters", i);
        if (c->level != level || c->size != size || fabs(c->scale / scale - 1) > CKKS_SCALE_TOL)
            return tsr_fail(TSR_ERR_INVALID_ARG,
                            "lincomb: input %zu is at level %d, size %d, scale 2^%.3f; all must "
                            "have size %d, level %d and scale 2^%.3f",
                            i, c->level, c->size, log2(c->scale), size, level, log2(scale));
        if (c->err * c->err > err2) err2 = c->err * c->err;
        if (c->mag > mag) mag = c->mag;
    }
    for (size_t j = 0; j < n_out; j++)
        if (!outs[j] || outs[j]->params != ins[0]->params)
            return tsr_fail(TSR_ERR_MISMATCH, "lincomb: output %zu has other parameters", j);
    if (row_ptr[0] != 0) return tsr_fail(TSR_ERR_INVALID_ARG, "lincomb: row_ptr[0] != 0");
    int64_t nnz = row_ptr[n_out];
    for (size_t j = 0; j < n_out; j++)
        if (row_ptr[j + 1] < row_ptr[j])
            return tsr_fail(TSR_ERR_INVALID_ARG, "lincomb: row_ptr decreases at %zu", j);
    if (!(cscale >= 1) || !isfinite(cscale))
        return tsr_fail(TSR_ERR_INVALID_ARG, "lincomb: constant scale %g", cscale);
    double out_scale = scale * cscale;
    if (!(log2(out_scale) < tsr_ckks_params_log_q((tsr_ckks_params *)p, level) - 1))
        return tsr_fail(TSR_ERR_SCALE,
                        "lincomb: the products' scale 2^%.1f does not fit the modulus at level %d",
                        log2(out_scale), level);
    const int L1 = level + 1;
    const size_t n = p->n;
    /* Integer constants, per limb, with their kernel forms. */
    uint64_t *cf = tsr_alloc((size_t)(nnz ? nnz : 1) * (size_t)L1 * 3 * sizeof *cf);
    const uint64_t **xp = NULL;
    if (!cf) return tsr_fail(TSR_ERR_NOMEM, "lincomb: out of memory");
    tsr_status st = TSR_OK;
    for (int64_t k = 0; k < nnz && st == TSR_OK; k++) {
        if (cols[k] < 0 || (size_t)cols[k] >= n_in) {
            st = tsr_fail(TSR_ERR_INVALID_ARG, "lincomb: column %lld out of range",
                          (long long)cols[k]);
            break;
        }
        double v = nearbyint(vals[k] * cscale);
        if (!(fabs(v) < 0x1p62)) {
            st = tsr_fail(TSR_ERR_SCALE, "lincomb: constant %g at scale 2^%.1f exceeds 62 bits",
                          vals[k], log2(cscale));
            break;
        }
        for (int l = 0; l < L1; l++)
            cf[(size_t)l * (size_t)nnz + (size_t)k] = tsr_modq_from_i64(ckks_mod(p, l), (int64_t)v);
    }
    if (st == TSR_OK)
        for (int l = 0; l < L1; l++) {
            uint64_t *c = cf + (size_t)l * (size_t)nnz;
            tsr_vec_lincomb_forms(ckks_mod(p, l), c + (size_t)L1 * (size_t)nnz,
                                  c + 2 * (size_t)L1 * (size_t)nnz, c, (size_t)nnz);
        }
    /* Error estimate: every row's sum, bounded by the largest. */
    double row_err = 0, row_mag = 0;
    for (size_t j = 0; j < n_out && st == TSR_OK; j++) {
        double s2 = 0, sm = 0;
        for (int64_t k = row_ptr[j]; k < row_ptr[j + 1]; k++) {
            s2 += vals[k] * vals[k];
            sm += fabs(vals[k]);
        }
        if (s2 > row_err) row_err = s2;
        if (sm > row_mag) row_mag = sm;
    }
    for (size_t j = 0; j < n_out && st == TSR_OK; j++) {
        outs[j]->level = -1;
        st = ckks_ct_reserve(outs[j], level, size);
    }
    /* Every term's polynomial base, once: the tasks only add their offset (following
     * ins[cols[k]] -> data for each term of each task cost as much as 1/8 of the MACs). */
    if (st == TSR_OK) {
        xp = tsr_alloc((size_t)(nnz ? nnz : 1) * (size_t)size * sizeof *xp);
        if (!xp) st = tsr_fail(TSR_ERR_NOMEM, "lincomb: out of memory");
        for (int poly = 0; poly < size && st == TSR_OK; poly++)
            for (int64_t k = 0; k < nnz; k++)
                xp[(size_t)poly * (size_t)nnz + (size_t)k] = ckks_ct_poly(ins[cols[k]], poly);
    }
    if (st != TSR_OK) {
        tsr_free(cf);
        tsr_free((void *)xp);
        return st;
    }
    size_t chunks = (n + CHUNK - 1) / CHUNK, tasks = (size_t)size * (size_t)L1 * chunks;
    int failed = 0;
#ifdef _OPENMP
#pragma omp parallel
#endif
    {
        const uint64_t **x = tsr_alloc((size_t)(nnz ? nnz : 1) * sizeof *x);
        if (!x) __atomic_store_n(&failed, 1, __ATOMIC_RELAXED);
#ifdef _OPENMP
#pragma omp for schedule(dynamic, 1)
#endif
        for (size_t t = 0; t < tasks; t++) {
            if (!x) continue;
            size_t poly = t / ((size_t)L1 * chunks), rest = t % ((size_t)L1 * chunks);
            int l = (int)(rest / chunks);
            size_t k0 = (rest % chunks) * CHUNK, len = n - k0 < CHUNK ? n - k0 : CHUNK;
            const tsr_modulus *m = ckks_mod(p, l);
            const uint64_t *c = cf + (size_t)l * (size_t)nnz;
            const uint64_t *csh = c + (size_t)L1 * (size_t)nnz,
                           *c52 = c + 2 * (size_t)L1 * (size_t)nnz;
            size_t off = (size_t)l * n + k0;
            const uint64_t *const *base = xp + poly * (size_t)nnz;
            for (int64_t k = 0; k < nnz; k++) x[k] = base[k] + off;
            for (size_t j = 0; j < n_out; j++) {
                int64_t a = row_ptr[j], b = row_ptr[j + 1];
                tsr_vec_lincomb(m, ckks_ct_poly(outs[j], (int)poly) + off, x + a, c + a, csh + a,
                                c52 + a, (size_t)(b - a), len);
            }
        }
        tsr_free((void *)x);
    }
    tsr_free(cf);
    tsr_free((void *)xp);
    if (failed) return tsr_fail(TSR_ERR_NOMEM, "lincomb: out of memory");
    for (size_t j = 0; j < n_out; j++) {
        outs[j]->level = level;
        outs[j]->size = size;
        outs[j]->scale = out_scale;
        outs[j]->err = sqrt(err2 * row_err) + mag * row_mag * 0.5 / cscale;
        outs[j]->mag = mag * row_mag;
        outs[j]->seeded = 0;
    }
    return TSR_OK;
}
