/*
 * circuits/bootstrap_dft.c - the homomorphic special FFT of bootstrapping:
 * the FFT's butterfly stages as sparse-diagonal matrices, merged into a few
 * factors (the level budget), and a baby-step giant-step transform with
 * complex diagonals that applies one factor in one level.
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
 *    with hoisted baby rotations, one rescale per factor).
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

/* ---- the transform ------------------------------------------------------------------- */

static int cmp_int(const void *a, const void *b) {
    int x = *(const int *)a, y = *(const int *)b;
    return (x > y) - (x < y);
}

/*
 * Rotations of a factor with baby-step count n1: *babies (b > 0, hoisted: one
 * shared decomposition) and *giants (g > 0, one full key switch each); the
 * rotation keys needed are their sum. SIZE_MAX babies if out of memory.
 */
static void bsgs_count(const size_t *index, size_t count, size_t n1, size_t *babies,
                       size_t *giants) {
    *babies = 0;
    *giants = 0;
    unsigned char *seen = calloc(n1, 1);
    if (!seen) {
        *babies = SIZE_MAX;
        return;
    }
    size_t last_g = SIZE_MAX;
    for (size_t t = 0; t < count; t++) {
        size_t b = index[t] % n1, g = index[t] / n1;
        if (!seen[b]) {
            seen[b] = 1;
            *babies += b != 0;
        }
        if (g != last_g) {
            *giants += g != 0;
            last_g = g;
        }
    }
    free(seen);
}

void boot_lt_free(boot_lt *lt) {
    if (lt->pt)
        for (size_t t = 0; t < lt->n_diags; t++) tsr_ckks_plaintext_free(lt->pt[t]);
    free(lt->pt);
    free(lt->index);
    free(lt->steps);
    memset(lt, 0, sizeof *lt);
}

tsr_status boot_lt_create(boot_lt *lt, tsr_ckks_encoder *enc, tsr_ckks_params *p,
                          const boot_dmat *m, double factor, int level, double in_scale) {
    memset(lt, 0, sizeof *lt);
    size_t n = m->n, slots = tsr_ckks_params_slots(p);
    lt->level = level;
    lt->in_scale = in_scale;
    lt->n = n;
    for (size_t i = 0; i < n; i++) lt->n_diags += m->d[i] != NULL;
    lt->index = malloc((lt->n_diags ? lt->n_diags : 1) * sizeof *lt->index);
    lt->pt = calloc(lt->n_diags ? lt->n_diags : 1, sizeof *lt->pt);
    lt->steps = malloc((2 * lt->n_diags + 1) * sizeof *lt->steps);
    double *buf = malloc(2 * slots * sizeof *buf);
    tsr_status st = TSR_OK;
    if (!lt->index || !lt->pt || !lt->steps || !buf) {
        st = tsr_fail(TSR_ERR_NOMEM, "out of memory for a DFT factor");
        goto done;
    }
    size_t c = 0;
    for (size_t i = 0; i < n; i++)
        if (m->d[i]) lt->index[c++] = i;
    /*
     * n1: the fewest rotation keys, and among those the cheapest split. A
     * hoisted baby rotation skips the decomposition (ModUp), which is about
     * two thirds of a key switch with the bootstrapping parameters (dnum 7,
     * docs/BENCHMARKS.md), so it costs about a third of a giant rotation:
     * 32 diagonals take 7 babies + 3 giants rather than 3 + 7, same keys.
     */
    size_t best_keys = SIZE_MAX, best_cost = SIZE_MAX;
    for (size_t n1 = 1; n1 <= n; n1 *= 2) {
        size_t nb, ng;
        bsgs_count(lt->index, lt->n_diags, n1, &nb, &ng);
        if (nb == SIZE_MAX) {
            st = tsr_fail(TSR_ERR_NOMEM, "out of memory for a DFT factor");
            goto done;
        }
        size_t keys = nb + ng, cost = nb + 3 * ng;
        if (keys < best_keys || (keys == best_keys && cost < best_cost)) {
            best_keys = keys;
            best_cost = cost;
            lt->n1 = n1;
        }
    }
    /* steps: babies b > 0 and giants g n1 > 0 */
    size_t ns = 0;
    for (size_t t = 0; t < lt->n_diags; t++) {
        size_t b = lt->index[t] % lt->n1, g = lt->index[t] - b;
        if (b) lt->steps[ns++] = (int)b;
        if (g) lt->steps[ns++] = (int)g;
    }
    qsort(lt->steps, ns, sizeof *lt->steps, cmp_int);
    lt->n_steps = 0;
    for (size_t t = 0; t < ns; t++)
        if (lt->n_steps == 0 || lt->steps[lt->n_steps - 1] != lt->steps[t])
            lt->steps[lt->n_steps++] = lt->steps[t];
    /* Delta_l^in * s_pt / q_l = Delta_{l-1} */
    double s_pt =
        tsr_ckks_params_scale(p, level - 1) * (double)tsr_ckks_params_prime(p, level) / in_scale;
    for (size_t t = 0; t < lt->n_diags && st == TSR_OK; t++) {
        size_t i = lt->index[t], g = i - i % lt->n1;
        const ckks_cplx *d = m->d[i];
        /* rot(d, -g)[j] = d[(j - g) mod n], repeated with period n over all slots */
        for (size_t j = 0; j < slots; j++) {
            const ckks_cplx v = d[(j % n + n - g) % n];
            buf[2 * j] = v.re * factor;
            buf[2 * j + 1] = v.im * factor;
        }
        st = tsr_ckks_plaintext_create(&lt->pt[t], p);
        if (st == TSR_OK) st = tsr_ckks_encode_complex(enc, lt->pt[t], buf, slots, level, s_pt);
    }
done:
    free(buf);
    if (st != TSR_OK) boot_lt_free(lt);
    return st;
}

tsr_status boot_lt_apply(tsr_ckks_evaluator *ev, tsr_ckks_ciphertext *out,
                         const tsr_ckks_ciphertext *in, const boot_lt *lt) {
    tsr_ckks_params *p = ev->params;
    size_t n1 = lt->n1, nb = 0;
    int *bsteps = malloc(n1 * sizeof *bsteps);
    int *slot_of = malloc(n1 * sizeof *slot_of);
    tsr_ckks_ciphertext **baby = calloc(n1, sizeof *baby);
    tsr_ckks_ciphertext *inner = NULL, *acc = NULL, *tmp = NULL;
    tsr_status st = TSR_OK;
    if (!bsteps || !slot_of || !baby) {
        st = tsr_fail(TSR_ERR_NOMEM, "out of memory for the baby steps");
        goto done;
    }
    for (size_t b = 0; b < n1; b++) slot_of[b] = -1;
    for (size_t t = 0; t < lt->n_diags; t++) {
        size_t b = lt->index[t] % n1;
        if (slot_of[b] < 0) {
            slot_of[b] = (int)nb;
            bsteps[nb++] = (int)b;
        }
    }
    for (size_t t = 0; t < nb && st == TSR_OK; t++) st = tsr_ckks_ciphertext_create(&baby[t], p);
    if (st == TSR_OK) st = tsr_ckks_rotate_hoisted(ev, baby, in, bsteps, nb);
    if (st == TSR_OK) st = tsr_ckks_ciphertext_create(&inner, p);
    if (st == TSR_OK) st = tsr_ckks_ciphertext_create(&acc, p);
    if (st == TSR_OK) st = tsr_ckks_ciphertext_create(&tmp, p);
    int have_acc = 0;
    for (size_t t = 0; t < lt->n_diags && st == TSR_OK;) {
        size_t g = lt->index[t] / n1, u = t;
        int have_inner = 0;
        for (; u < lt->n_diags && lt->index[u] / n1 == g && st == TSR_OK; u++) {
            const tsr_ckks_ciphertext *v = baby[slot_of[lt->index[u] % n1]];
            if (!have_inner) {
                st = tsr_ckks_mul_plain(ev, inner, v, lt->pt[u]);
                have_inner = 1;
            } else {
                st = tsr_ckks_mul_plain(ev, tmp, v, lt->pt[u]);
                if (st == TSR_OK) st = tsr_ckks_add(ev, inner, inner, tmp);
            }
        }
        if (st == TSR_OK && g != 0) st = tsr_ckks_rotate(ev, inner, inner, (int)(g * n1));
        if (st == TSR_OK) {
            if (!have_acc)
                st = tsr_ckks_ciphertext_copy(acc, inner);
            else
                st = tsr_ckks_add(ev, acc, acc, inner);
            have_acc = 1;
        }
        t = u;
    }
    if (st == TSR_OK) st = tsr_ckks_rescale(ev, out, acc);
    if (st == TSR_OK) st = boot_snap_scale(out, tsr_ckks_params_scale(p, lt->level - 1));
done:
    if (baby)
        for (size_t t = 0; t < n1; t++) tsr_ckks_ciphertext_free(baby[t]);
    free(baby);
    free(bsteps);
    free(slot_of);
    tsr_ckks_ciphertext_free(inner);
    tsr_ckks_ciphertext_free(acc);
    tsr_ckks_ciphertext_free(tmp);
    return st;
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
