/*
 * circuits/bootstrap_dft.c - the homomorphic special FFT of bootstrapping:
 * the FFT's butterfly stages as sparse-diagonal matrices, merged into a few
 * factors (the level budget), each applied in one level by the one linear
 * transform (circuits/linear_transform.c) with complex diagonals.
 *
 * References:
 *  - J. H. Cheon, K. Han, A. Kim, M. Kim, Y. Song, "Bootstrapping for
 *    Approximate Homomorphic Encryption", EUROCRYPT 2018, section 4
 *    (CoeffsToSlots / SlotsToCoeffs as linear maps of the slots).
 *  - H. Chen, I. Chillotti, Y. Song, "Improved Bootstrapping for Approximate
 *    Homomorphic Encryption", EUROCRYPT 2019, section 3 (the special FFT
 *    factored into log2(n) sparse matrices of three diagonals, grouped into
 *    a level budget).
 *  - J.-P. Bossuat et al., EUROCRYPT 2021, section 3 (baby-step giant-step
 *    with double hoisting, one rescale per factor: the transform itself is
 *    circuits/linear_transform.c's).
 *
 * Layout: ckks/fft.c computes slots = F_{n/2} ... F_2 F_1 P w, where P is
 * the bit reversal and F_h the stage with half-length h (x' = x + w_j y,
 * y' = x - w_j y on pairs (i + j, i + j + h)). SlotsToCoeffs applies
 * F_{n/2} ... F_1 (it skips P: the slots it starts from are in bit-reversed
 * order, as CoeffsToSlots leaves them), CoeffsToSlots applies
 * F_1^-1 ... F_{n/2}^-1 = P U^-1. A stage, as a matrix acting on a slot
 * vector v by (M v)[j] = sum_i diag_i[j] v[j + i], has the diagonals 0, +h
 * and -h; a product of stages has sums of those.
 */
#include "circuits/bootstrap_internal.h"

#include "ckks/evaluator_internal.h"
#include "core/error.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void boot_dmat_free(boot_dmat *m) {
    if (!m->d) return;
    for (size_t i = 0; i < m->n; i++) free(m->d[i]);
    free(m->d);
    m->d = NULL;
}

static tsr_status dmat_init(boot_dmat *m, size_t n) {
    m->n = n;
    m->d = calloc(n, sizeof *m->d);
    if (!m->d) return tsr_fail(TSR_ERR_NOMEM, "out of memory for a DFT matrix");
    return TSR_OK;
}

/* The diagonal i (mod n) of m, created as zeros if absent (NULL if out of memory). */
static ckks_cplx *dmat_diag(boot_dmat *m, long i) {
    long n = (long)m->n;
    size_t k = (size_t)(((i % n) + n) % n);
    if (!m->d[k]) m->d[k] = calloc(m->n, sizeof *m->d[k]);
    return m->d[k];
}

static ckks_cplx cmul(ckks_cplx a, ckks_cplx b) {
    ckks_cplx r = { a.re * b.re - a.im * b.im, a.re * b.im + a.im * b.re };
    return r;
}

/* Stage with half-length h (twiddles w = f->w + h - 1), forward or inverse. */
static tsr_status stage_matrix(boot_dmat *m, const ckks_fft *f, size_t h, int inverse) {
    size_t n = f->n;
    TSR_TRY(dmat_init(m, n));
    const ckks_cplx *w = f->w + (h - 1);
    ckks_cplx *d0 = dmat_diag(m, 0), *dp = dmat_diag(m, (long)h), *dm = dmat_diag(m, -(long)h);
    if (!d0 || !dp || !dm) {
        boot_dmat_free(m);
        return tsr_fail(TSR_ERR_NOMEM, "out of memory for a DFT stage");
    }
    for (size_t r = 0; r < n; r++) {
        size_t j = r % (2 * h);
        if (j < h) {
            /* forward: x' = x + w_j y; inverse: x = (x' + y') / 2 */
            ckks_cplx one = { inverse ? 0.5 : 1.0, 0 };
            ckks_cplx t = inverse ? one : w[j];
            d0[r].re += one.re;
            dp[r].re += t.re;
            dp[r].im += t.im;
        } else {
            j -= h;
            /* forward: y' = x - w_j y; inverse: y = (x' - y') conj(w_j) / 2 */
            ckks_cplx a, b;
            if (inverse) {
                a.re = 0.5 * w[j].re;
                a.im = -0.5 * w[j].im;
            } else {
                a.re = 1;
                a.im = 0;
            }
            b = inverse ? a : w[j];
            dm[r].re += a.re;
            dm[r].im += a.im;
            d0[r].re -= b.re;
            d0[r].im -= b.im;
        }
    }
    return TSR_OK;
}

/* out = a b (b applied first): out_{x+y} += a_x * rot(b_y, x). */
static tsr_status dmat_mul(boot_dmat *out, const boot_dmat *a, const boot_dmat *b) {
    size_t n = a->n;
    TSR_TRY(dmat_init(out, n));
    for (size_t x = 0; x < n; x++) {
        if (!a->d[x]) continue;
        for (size_t y = 0; y < n; y++) {
            if (!b->d[y]) continue;
            ckks_cplx *o = dmat_diag(out, (long)(x + y));
            if (!o) {
                boot_dmat_free(out);
                return tsr_fail(TSR_ERR_NOMEM, "out of memory for a DFT matrix");
            }
            const ckks_cplx *ax = a->d[x], *by = b->d[y];
            for (size_t j = 0; j < n; j++) {
                ckks_cplx t = cmul(ax[j], by[(j + x) % n]);
                o[j].re += t.re;
                o[j].im += t.im;
            }
        }
    }
    /* drop diagonals that cancelled exactly (e.g. in products of inverse stages) */
    for (size_t i = 0; i < n; i++) {
        if (!out->d[i]) continue;
        double mx = 0;
        for (size_t j = 0; j < n; j++) mx = fmax(mx, fabs(out->d[i][j].re) + fabs(out->d[i][j].im));
        if (mx < 1e-13) {
            free(out->d[i]);
            out->d[i] = NULL;
        }
    }
    return TSR_OK;
}

tsr_status boot_dft_factors(boot_dmat *mats, int groups, const ckks_fft *f, int inverse) {
    size_t n = f->n;
    int logn = 0;
    while (((size_t)1 << logn) < n) logn++;
    TSR_ASSERT(groups >= 1 && groups <= logn);
    for (int g = 0; g < groups; g++) mats[g].d = NULL;
    /* stage s (0-based, in application order) has h = 2^s (forward) or n / 2^(s+1) (inverse) */
    int s = 0;
    tsr_status st = TSR_OK;
    for (int g = 0; g < groups && st == TSR_OK; g++) {
        /* the first groups take the remainder: sizes differ by at most one */
        int size = logn / groups + (g < logn % groups ? 1 : 0);
        boot_dmat acc = { 0, NULL };
        for (int t = 0; t < size && st == TSR_OK; t++, s++) {
            size_t h = inverse ? n >> (s + 1) : (size_t)1 << s;
            boot_dmat stage = { 0, NULL };
            st = stage_matrix(&stage, f, h, inverse);
            if (st != TSR_OK) break;
            if (!acc.d) {
                acc = stage;
                continue;
            }
            boot_dmat prod = { 0, NULL };
            st = dmat_mul(&prod, &stage, &acc);
            boot_dmat_free(&stage);
            boot_dmat_free(&acc);
            acc = prod;
        }
        mats[g] = acc;
    }
    if (st != TSR_OK)
        for (int g = 0; g < groups; g++) boot_dmat_free(&mats[g]);
    return st;
}

/* ---- the transform: circuits/linear_transform.c ------------------------------------------ */

typedef struct dmat_diags {
    const boot_dmat *m;
    const size_t *index; /* sorted position -> diagonal of m */
    double factor;
} dmat_diags;

static tsr_status dmat_diag_fn(void *ctx, size_t t, ckks_cplx *out) {
    const dmat_diags *c = ctx;
    const ckks_cplx *d = c->m->d[c->index[t]];
    for (size_t j = 0; j < c->m->n; j++) {
        out[j].re = d[j].re * c->factor;
        out[j].im = d[j].im * c->factor;
    }
    return TSR_OK;
}

void boot_lt_free(boot_lt *lt) {
    circuits_bsgs_free(lt);
}

tsr_status boot_lt_create(boot_lt *lt, tsr_ckks_encoder *enc, tsr_ckks_params *p,
                          const boot_dmat *m, double factor, int level, double in_scale,
                          int on_the_fly) {
    size_t count = 0, n = m->n;
    for (size_t i = 0; i < n; i++) count += m->d[i] != NULL;
    size_t *index = malloc((count ? count : 1) * sizeof *index);
    if (!index) {
        memset(lt, 0, sizeof *lt);
        return tsr_fail(TSR_ERR_NOMEM, "out of memory for a DFT factor");
    }
    count = 0;
    for (size_t i = 0; i < n; i++)
        if (m->d[i]) index[count++] = i;
    dmat_diags ctx = { m, index, factor };
    /* on the fly: every diagonal as coefficients; otherwise those of slot period at most
     * slots / 32 (full slots in 3 + 3 factors: all but the factors holding the stage h = n/2),
     * whose conversion costs 2p-point NTTs, about as much as reading them encoded
     * (docs/BENCHMARKS.md) */
    tsr_status st =
        circuits_bsgs_create_ex(lt, enc, p, index, count, n, 0, dmat_diag_fn, &ctx, level, in_scale,
                                on_the_fly == 2   ? CIRCUITS_DIAGS_ENCODED
                                : on_the_fly == 1 ? CIRCUITS_DIAGS_ON_THE_FLY
                                                  : CIRCUITS_DIAGS_SUBRING);
    free(index);
    return st;
}

tsr_status boot_lt_apply(tsr_ckks_evaluator *ev, tsr_ckks_ciphertext *out,
                         const tsr_ckks_ciphertext *in, const boot_lt *lt) {
    TSR_TRY(circuits_bsgs_apply(ev, out, in, lt));
    return boot_snap_scale(out, tsr_ckks_params_scale(ev->params, lt->level - 1));
}

tsr_status boot_snap_scale(tsr_ckks_ciphertext *ct, double want) {
    double got = tsr_ckks_ciphertext_scale(ct);
    if (fabs(got - want) > 1e-9 * want)
        return tsr_fail(TSR_ERR_INTERNAL,
                        "bootstrapping: an intermediate scale 2^%.6f is off the expected 2^%.6f "
                        "(a bug in Tessera)",
                        log2(got), log2(want));
    return tsr_ckks_ciphertext_set_scale(ct, want);
}
