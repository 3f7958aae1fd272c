/*
 * circuits/bootstrap.c - CKKS bootstrapping composed from the circuits:
 * ModRaise, CoeffsToSlots (bootstrap_dft.c), EvalMod (poly_eval.c plus
 * double-angle steps), SlotsToCoeffs. See tessera/circuits.h for the
 * stages and docs/CIRCUITS.md for the parameters and measured precision.
 *
 * References:
 *  - J. H. Cheon, K. Han, A. Kim, M. Kim, Y. Song, "Bootstrapping for
 *    Approximate Homomorphic Encryption", EUROCRYPT 2018 (the pipeline;
 *    the scaled sine (q_0 / 2 pi) sin(2 pi x / q_0) for x mod q_0; sparse
 *    slots by the trace onto a subring).
 *  - K. Han, D. Ki, "Better Bootstrapping for Approximate Homomorphic
 *    Encryption", CT-RSA 2020, section 3 (the cosine evaluated at a
 *    fraction 2^-r of the angle, then r double-angle steps).
 *  - J.-P. Bossuat, C. Mouchet, J. Troncoso-Pastoriza, J.-P. Hubaux,
 *    EUROCRYPT 2021 (level-optimal polynomial evaluation, scale management:
 *    every stage lands on the next canonical scale).
 */
#include "tessera/circuits.h"

#include "circuits/bootstrap_internal.h"
#include "circuits/circuits_internal.h"
#include "ckks/evaluator_internal.h"
#include "ckks/fft.h"
#include "core/error.h"
#include "core/threads.h"

#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define BOOT_MAX_GROUPS 16

struct tsr_circuits_boot {
    tsr_ckks_params *p;
    size_t n;           /* slots of the transform (a power of two <= N/2) */
    int top;            /* L */
    int kc, ks;         /* CoeffsToSlots / SlotsToCoeffs levels */
    int out_level;      /* the output's level: top - depth, or the top network level of a
                           mixed chain (spec.low_levels) */
    int cos_depth, r;   /* EvalMod: cosine levels (the square included), double-angle steps */
    unsigned k;         /* EvalMod range */
    double k_eval;      /* K' = K + 1/4: the slots hold x = c / (K' q_0) */
    double in_scale;    /* q_0 / 2^R */
    double raise_scale; /* the scale given to the raised ciphertext: K' q_0 N / (2n) */
    size_t cos_degree;  /* degree of the cosine interpolant in x' (even: 2 deg q) */
    double *cos_coeffs; /* q, (cos_degree / 2 + 1): the cosine as a series in y = T_2(x') */
    double cos_err;     /* its max error */
    boot_lt cts[BOOT_MAX_GROUPS], stc[BOOT_MAX_GROUPS];
    int trace_steps; /* log2(N / 2n) */
    int *steps;      /* all rotation steps, sorted, distinct */
    size_t n_steps;
    unsigned encap_h; /* Hamming weight of the temporary secret, 0: no encapsulation */
    int on_the_fly;   /* config.diagonals_on_the_fly: 0 subring mix, 1 coefficients, 2 encoded */
    uint64_t diag_budget; /* on_the_fly = 0: bytes of encoded diagonals (config.diagonals_mib) */
    size_t budget_mib;    /* the same in MiB (info.diagonals_mib) */
    const tsr_ckks_switch_key *to_sparse, *to_dense; /* borrowed */
};

static int ilog2(size_t x) {
    int l = 0;
    while (((size_t)1 << l) < x) l++;
    return l;
}

static int cmp_int(const void *a, const void *b) {
    int x = *(const int *)a, y = *(const int *)b;
    return (x > y) - (x < y);
}

typedef struct cos_ctx {
    double k; /* K' */
    int r;
} cos_ctx;

/*
 * EvalMod's cosine, even: with x = c / (K' q_0) and x' = x - 1/(4K'),
 * cos(2 pi K' x' / 2^r) = cos(2 pi (c / q_0 - 1/4) / 2^r), which after r
 * double angles is sin(2 pi c / q_0). As an even function of x' it is a
 * function of y = T_2(x') = 2 x'^2 - 1 (x'^2 = (y + 1) / 2), and its
 * Chebyshev series in x' has only even terms: T_2j(x') = T_j(y). So it is
 * evaluated as one square (y) and a series of half the degree in y: the
 * same depth (1 + ceil(log2(d/2 + 1)) = ceil(log2(d + 1)) for d = 2^m - 2),
 * about a third fewer ciphertext products, half the scalar terms.
 */
static double cos_fn(double y, void *ctx) {
    const cos_ctx *c = ctx;
    double x2 = (y + 1) / 2;
    return cos(6.283185307179586476925286766559 * c->k * sqrt(x2 > 0 ? x2 : 0) / ldexp(1.0, c->r));
}

void tsr_circuits_boot_free(tsr_circuits_boot *b) {
    if (!b) return;
    for (int g = 0; g < BOOT_MAX_GROUPS; g++) {
        boot_lt_free(&b->cts[g]);
        boot_lt_free(&b->stc[g]);
    }
    free(b->cos_coeffs);
    free(b->steps);
    tsr_ckks_params_free(b->p);
    free(b);
}

/*
 * The cosine interpolant (cos_fn, a series q in y): degree / 2 in y (degree
 * in x' rounded down to even), or the smallest degree in y whose error is
 * < cos_target (the first 2^d - 1 that reaches it, then the smallest degree
 * above the previous 2^(d-1) - 1 that does). Fewer terms can mean fewer key
 * switches (K = 18, r = 2: degree 28 in y, error 2^-41.4, 8
 * relinearizations, against 10 for degree 31).
 */
static tsr_status fit_cosine(tsr_circuits_boot *b, unsigned degree, unsigned ratio) {
    /* The error times the double angles' gain (up to 4^r) and 2^R / 2 pi must stay under the
     * 2^-24 the bootstrap's noise leaves, with 2^4 to spare: 2^-40 while r = 2, R <= 9
     * (2^-29.7), less for larger R or r (R rises above 9 for very sparse slots, and both are
     * settable), but not below 2^-48, about what a fit in doubles reaches. */
    double target = fmin(0x1p-40, 0x1p-28 * 6.283185307179586476925286766559 /
                                      ldexp(1.0, 2 * b->r + (int)ratio));
    target = fmax(target, 0x1p-48);
    cos_ctx c = { b->k_eval, b->r };
    size_t cap = degree ? degree / 2 : (TSR_CIRCUITS_MAX_DEGREE - 1) / 2;
    b->cos_coeffs = malloc((cap + 1) * sizeof *b->cos_coeffs);
    if (!b->cos_coeffs) return tsr_fail(TSR_ERR_NOMEM, "out of memory for the EvalMod polynomial");
    size_t first = degree ? degree / 2 : 3, lo = first;
    for (size_t d = first; d <= cap; d = 2 * d + 1) {
        TSR_TRY(tsr_circuits_cheb_fit(b->cos_coeffs, d, 0, -1, 1, cos_fn, &c));
        tsr_cheb s = { -1, 1, d, b->cos_coeffs };
        TSR_TRY(tsr_circuits_cheb_max_error(&s, cos_fn, &c, 8193, &b->cos_err, NULL));
        b->cos_degree = 2 * d;
        if (degree) return TSR_OK;
        if (b->cos_err < target) {
            /* the smallest degree in (lo, d] that reaches it (d does) */
            for (size_t e = lo + 1; e < d; e++) {
                double err;
                TSR_TRY(tsr_circuits_cheb_fit(b->cos_coeffs, e, 0, -1, 1, cos_fn, &c));
                tsr_cheb t = { -1, 1, e, b->cos_coeffs };
                TSR_TRY(tsr_circuits_cheb_max_error(&t, cos_fn, &c, 8193, &err, NULL));
                if (err < target) {
                    b->cos_err = err;
                    b->cos_degree = 2 * e;
                    return TSR_OK;
                }
            }
            return tsr_circuits_cheb_fit(b->cos_coeffs, d, 0, -1, 1, cos_fn, &c);
        }
        lo = d;
    }
    return tsr_fail(TSR_ERR_INVALID_ARG,
                    "no cosine interpolant of degree <= %d reaches 2^%.1f for K = %u and %d "
                    "double angles: use more double angles (config.double_angle)",
                    TSR_CIRCUITS_MAX_DEGREE, log2(target), b->k, b->r);
}

static tsr_status collect_steps(tsr_circuits_boot *b) {
    size_t cap = (size_t)b->trace_steps + 1;
    for (int g = 0; g < b->kc; g++) cap += b->cts[g].n_steps;
    for (int g = 0; g < b->ks; g++) cap += b->stc[g].n_steps;
    b->steps = malloc(cap * sizeof *b->steps);
    if (!b->steps) return tsr_fail(TSR_ERR_NOMEM, "out of memory for the rotation steps");
    size_t m = 0;
    for (int t = 0; t < b->trace_steps; t++) b->steps[m++] = (int)(b->n << t);
    for (int g = 0; g < b->kc; g++)
        for (size_t t = 0; t < b->cts[g].n_steps; t++) b->steps[m++] = b->cts[g].steps[t];
    for (int g = 0; g < b->ks; g++)
        for (size_t t = 0; t < b->stc[g].n_steps; t++) b->steps[m++] = b->stc[g].steps[t];
    qsort(b->steps, m, sizeof *b->steps, cmp_int);
    b->n_steps = 0;
    for (size_t t = 0; t < m; t++)
        if (b->n_steps == 0 || b->steps[b->n_steps - 1] != b->steps[t])
            b->steps[b->n_steps++] = b->steps[t];
    return TSR_OK;
}

/* A zeroed 2n x 2n diagonal matrix with room for every diagonal index < 2n (NULL = zero). */
static tsr_status dmat_twice(boot_dmat *w, size_t n) {
    w->n = 2 * n;
    w->d = calloc(2 * n, sizeof *w->d);
    if (!w->d) return tsr_fail(TSR_ERR_NOMEM, "out of memory for a DFT factor");
    return TSR_OK;
}

static ckks_cplx *dmat_diag(boot_dmat *w, size_t e) {
    if (!w->d[e]) w->d[e] = calloc(w->n, sizeof *w->d[e]);
    return w->d[e];
}

/*
 * Sparse slots (2n <= N/2): between CoeffsToSlots' first factor and
 * SlotsToCoeffs' last, the slots hold two vectors of n, [x | y] with period
 * 2n, so that one EvalMod serves the real and imaginary parts (Bossuat et
 * al. 2021, the sparse repacking). The factors that move them there and
 * back are the ones holding the butterfly stage of half-length n/2, the only
 * stage whose pairs (j, j + n/2) wrap around the n slots: every other factor
 * (stages h <= n/4) pairs slots inside aligned blocks of 2h, which divide n,
 * so on [x | y] it is [M x | M y] with the same count of diagonals
 * (sparse_block2), and its diagonals keep their short slot period (stored as
 * subring coefficients, circuits/linear_transform.c). Packing in the last
 * CoeffsToSlots factor and unpacking in the first SlotsToCoeffs one instead
 * made those factors, the two with the most diagonals, full-period (encoded
 * over Q_l P: about 1 GiB at N = 2^16, 2^12 slots) and doubled the second's
 * diagonals where the wrapping factor has the fewest (docs/CIRCUITS.md).
 *
 * CoeffsToSlots' first factor M (n x n, input n-periodic: the trace's
 * output) becomes the 2n x 2n factor [M; -i M]: out = [u | -i u] with period
 * 2n, so that EvalMod's out + conj(out) = [a | b] holds both real parts of
 * u = (a + i b) / 2 in one ciphertext. The input is n-periodic, so diagonal
 * i keeps its index (its rotation step): the same keys, the same count of
 * diagonals.
 */
static tsr_status sparse_pack_cts(boot_dmat *m) {
    size_t n = m->n;
    boot_dmat w;
    TSR_TRY(dmat_twice(&w, n));
    for (size_t i = 0; i < n; i++) {
        if (!m->d[i]) continue;
        ckks_cplx *d = dmat_diag(&w, i);
        if (!d) {
            boot_dmat_free(&w);
            return tsr_fail(TSR_ERR_NOMEM, "out of memory for a DFT factor");
        }
        for (size_t j = 0; j < n; j++) {
            d[j] = m->d[i][j];
            d[j + n].re = m->d[i][j].im; /* -i (x + i y) = y - i x */
            d[j + n].im = -m->d[i][j].re;
        }
    }
    boot_dmat_free(m);
    *m = w;
    return TSR_OK;
}

/*
 * Sparse slots, SlotsToCoeffs' last factor M (n x n, on v = a + i b, the
 * one holding the stage h = n/2) becomes a 2n x 2n factor reading [a | b]
 * (period 2n: EvalMod's output through the factors before, sparse_block2):
 * (M v)[j] = sum_i d_i[j0] (y[A] + i y[A + n]), j0 = j mod n, A = (j0 + i)
 * mod n, so diagonal i of M splits into the diagonals (A - j) mod 2n and
 * (A - j + n) mod 2n, which are i and i + n in some order. Twice the
 * diagonals (16 -> 32 for 2^12 slots in 3 factors), and steps i + n beside
 * the steps i (listed by collect_steps). The output is n-periodic: the
 * bootstrapped ciphertext's slots repeat with period n, as its input's did.
 */
static tsr_status sparse_unpack_stc(boot_dmat *m) {
    size_t n = m->n;
    boot_dmat w;
    TSR_TRY(dmat_twice(&w, n));
    for (size_t i = 0; i < n; i++) {
        if (!m->d[i]) continue;
        for (size_t j = 0; j < 2 * n; j++) {
            size_t j0 = j % n, a = (j0 + i) % n;
            size_t e1 = (a + 2 * n - j) % (2 * n), e2 = (e1 + n) % (2 * n);
            ckks_cplx *d1 = dmat_diag(&w, e1), *d2 = dmat_diag(&w, e2);
            if (!d1 || !d2) {
                boot_dmat_free(&w);
                return tsr_fail(TSR_ERR_NOMEM, "out of memory for a DFT factor");
            }
            ckks_cplx c = m->d[i][j0];
            d1[j].re += c.re;
            d1[j].im += c.im;
            d2[j].re -= c.im; /* i (x + i y) = -y + i x */
            d2[j].im += c.re;
        }
    }
    boot_dmat_free(m);
    *m = w;
    return TSR_OK;
}

/*
 * Sparse slots, a factor M (n x n) between the packing and the unpacking:
 * the 2n x 2n factor [M 0; 0 M] acting on [x | y] (period 2n). Output slot j
 * (j0 = j mod n) reads slot A = (j0 + i) mod n of its own half, at offset
 * (A - j0) mod 2n from j: diagonal i of M goes to diagonal i where j0 + i <
 * n and i + n where it wraps. Entries that are exactly zero are skipped, so
 * a factor whose pairs stay inside blocks of n (no wrap) keeps its diagonals
 * and their count; only the negative ones move (n - h -> 2n - h, other
 * rotation steps, as many).
 */
static tsr_status sparse_block2(boot_dmat *m) {
    size_t n = m->n;
    boot_dmat w;
    TSR_TRY(dmat_twice(&w, n));
    for (size_t i = 0; i < n; i++) {
        if (!m->d[i]) continue;
        for (size_t j = 0; j < 2 * n; j++) {
            size_t j0 = j % n;
            ckks_cplx c = m->d[i][j0];
            if (c.re == 0 && c.im == 0) continue;
            ckks_cplx *d = dmat_diag(&w, j0 + i < n ? i : i + n);
            if (!d) {
                boot_dmat_free(&w);
                return tsr_fail(TSR_ERR_NOMEM, "out of memory for a DFT factor");
            }
            d[j] = c;
        }
    }
    boot_dmat_free(m);
    *m = w;
    return TSR_OK;
}

/* The default layout: lt's encoded limbs within what is left of the budget (*left, bytes). */
static tsr_status fit_budget(const tsr_circuits_boot *b, boot_lt *lt, uint64_t *left) {
    if (b->on_the_fly != 0) return TSR_OK;
    TSR_TRY(circuits_bsgs_limit(lt, b->p, *left));
    uint64_t used = 0;
    for (size_t t = 0; t < lt->n_diags; t++)
        if (lt->pt[t]) used += (uint64_t)lt->pt_limbs * tsr_ckks_params_n(b->p) * sizeof(uint64_t);
    *left = used < *left ? *left - used : 0;
    return TSR_OK;
}

/* Build and encode the DFT factors (CoeffsToSlots at the top, SlotsToCoeffs at the bottom). */
static tsr_status build_transforms(tsr_circuits_boot *b, tsr_ckks_encoder *enc) {
    uint64_t left = b->diag_budget;
    ckks_fft f;
    TSR_TRY(ckks_fft_init(&f, b->n));
    boot_dmat mats[BOOT_MAX_GROUPS];
    memset(mats, 0, sizeof mats);
    tsr_status st = boot_dft_factors(mats, b->kc, &f, 1);
    int sparse = b->n < tsr_ckks_params_slots(b->p);
    /* sparse: packed by the first factor (stage h = n/2), the others on [x | y] */
    if (st == TSR_OK && sparse) st = sparse_pack_cts(&mats[0]);
    for (int g = 1; g < b->kc && st == TSR_OK && sparse; g++) st = sparse_block2(&mats[g]);
    for (int g = 0; g < b->kc && st == TSR_OK; g++) {
        int level = b->top - g;
        double in = g == 0 ? b->raise_scale : tsr_ckks_params_scale(b->p, level);
        /* the 1/2 lets EvalMod split u into u + conj(u) and -i (u - conj(u)) */
        st = boot_lt_create(&b->cts[g], enc, b->p, &mats[g], g == 0 ? 0.5 : 1.0, level, in,
                            b->on_the_fly);
        if (st == TSR_OK) st = fit_budget(b, &b->cts[g], &left);
    }
    for (int g = 0; g < b->kc; g++) boot_dmat_free(&mats[g]);
    if (st == TSR_OK) st = boot_dft_factors(mats, b->ks, &f, 0);
    /* sparse: the factors before the last (stage h = n/2, the unpacking) on [a | b] */
    for (int g = 0; g + 1 < b->ks && st == TSR_OK && sparse; g++) st = sparse_block2(&mats[g]);
    if (st == TSR_OK && sparse) st = sparse_unpack_stc(&mats[b->ks - 1]);
    int stc_top = b->top - b->kc - b->cos_depth - b->r;
    /* sin(2 pi c / q_0) ~ 2 pi c / q_0 and c = in_scale m: multiply by q_0 / (2 pi in_scale) */
    double q0 = (double)tsr_ckks_params_prime(b->p, 0);
    double factor = q0 / (6.283185307179586476925286766559 * b->in_scale);
    for (int g = 0; g < b->ks && st == TSR_OK; g++) {
        int level = stc_top - g;
        st = boot_lt_create(&b->stc[g], enc, b->p, &mats[g], g == 0 ? factor : 1.0, level,
                            tsr_ckks_params_scale(b->p, level), b->on_the_fly);
        if (st == TSR_OK) st = fit_budget(b, &b->stc[g], &left);
    }
    for (int g = 0; g < b->ks; g++) boot_dmat_free(&mats[g]);
    ckks_fft_free(&f);
    return st;
}

tsr_status tsr_circuits_boot_create(tsr_circuits_boot **out, tsr_ckks_encoder *enc,
                                    tsr_ckks_params *p, const tsr_circuits_boot_config *cfg) {
    TSR_REQUIRE(out && enc && p, "tsr_circuits_boot_create: NULL argument");
    *out = NULL;
    tsr_circuits_boot_config c;
    memset(&c, 0, sizeof c);
    if (cfg) c = *cfg;
    size_t full = tsr_ckks_params_slots(p);
    size_t n = c.slots ? c.slots : full;
    if (n < 2 || n > full || (n & (n - 1)))
        return tsr_fail(TSR_ERR_INVALID_ARG,
                        "config.slots = %zu: bootstrapping needs a power of two in 2..%zu", n,
                        full);
    int logn = ilog2(n);
    int kc = c.cts_levels ? c.cts_levels : (logn < 3 ? logn : 3);
    int ks = c.stc_levels ? c.stc_levels : (logn < 3 ? logn : 3);
    if (kc < 1 || kc > logn || kc > BOOT_MAX_GROUPS)
        return tsr_fail(TSR_ERR_INVALID_ARG, "config.cts_levels = %d: must be in 1..%d", kc,
                        logn < BOOT_MAX_GROUPS ? logn : BOOT_MAX_GROUPS);
    if (ks < 1 || ks > logn || ks > BOOT_MAX_GROUPS)
        return tsr_fail(TSR_ERR_INVALID_ARG, "config.stc_levels = %d: must be in 1..%d", ks,
                        logn < BOOT_MAX_GROUPS ? logn : BOOT_MAX_GROUPS);
    unsigned k = c.k;
    if (c.encapsulation_hw > 64 || c.encapsulation_hw > tsr_ckks_params_n(p))
        return tsr_fail(TSR_ERR_INVALID_ARG,
                        "config.encapsulation_hw = %u: the temporary secret's Hamming weight "
                        "must be at most 64 (32 is the usual choice)",
                        c.encapsulation_hw);
    if (k == 0 && c.encapsulation_hw) k = c.encapsulation_hw / 2 + 2; /* > (h + 1) / 2 */
    if (k == 0) {
        tsr_ckks_param_spec spec;
        tsr_ckks_params_spec(p, &spec);
        if (spec.secret != TSR_CKKS_SECRET_FIXED_HW || spec.hamming_weight > 64)
            return tsr_fail(TSR_ERR_INVALID_ARG,
                            "bootstrapping with a dense secret needs config.k, a bound on the "
                            "integer multiple of q_0 ModRaise adds (about 6 sqrt(N/18) for a "
                            "failure rate near 2^-25 per coefficient), or sparse-secret "
                            "encapsulation (config.encapsulation_hw = 32), or a secret of fixed "
                            "Hamming weight <= 64");
        k = spec.hamming_weight / 2 + 2; /* > (h + 1) / 2 >= |I| */
    }
    if (k > 4096) return tsr_fail(TSR_ERR_INVALID_ARG, "config.k = %u is above 4096", k);
    unsigned r = c.double_angle ? c.double_angle : 2;
    if (r > 12) return tsr_fail(TSR_ERR_INVALID_ARG, "config.double_angle = %u is above 12", r);
    /*
     * R: ModRaise's message sits in the coefficients, whose size falls as
     * 1/sqrt(N) for slots of size 1, while the noise of CoeffsToSlots,
     * EvalMod and SlotsToCoeffs reaches each slot summed over N coefficients
     * (sqrt(N) larger). So a larger ring affords a larger input scale for
     * the same sine error: 9 up to N = 2^12, then about one less per factor
     * 4 of N (9 - floor((log2 N - 10) / 2): 8 at 2^13, 7 at 2^14 and 2^15,
     * 6 at 2^16, where the noise dominates: 23.39 bits mean at R = 7, 24.14
     * at R = 6). Sparse slots have sqrt(N / 2n) larger coefficients, so a
     * cubic sine error larger by N / 2n: one more per factor 4 of N / 2n (7
     * for 2^12 slots at 2^16, where the whole bootstrap gives 23.85 bits).
     * docs/CIRCUITS.md.
     */
    int log_n = ilog2(tsr_ckks_params_n(p));
    int sparse_log = ilog2(full / n); /* log2(N / 2n) */
    unsigned ratio = c.log_message_ratio
                         ? c.log_message_ratio
                         : (unsigned)(log_n <= 12 ? 9 : 9 - (log_n - 10) / 2 + sparse_log / 2);
    double q0 = (double)tsr_ckks_params_prime(p, 0);
    if (ratio < 4 || ldexp(q0, -(int)ratio) < 0x1p20)
        return tsr_fail(TSR_ERR_INVALID_ARG,
                        "config.log_message_ratio = %u: the input scale q_0 / 2^R must be at "
                        "least 2^20 and R at least 4 (q_0 has %.1f bits)",
                        ratio, log2(q0));

    if (c.diagonals_on_the_fly > 2)
        return tsr_fail(TSR_ERR_INVALID_ARG,
                        "config.diagonals_on_the_fly = %u: 0 (default mix), 1 (every diagonal as "
                        "coefficients) or 2 (every diagonal encoded)",
                        c.diagonals_on_the_fly);

    tsr_circuits_boot *b = calloc(1, sizeof *b);
    if (!b) return tsr_fail(TSR_ERR_NOMEM, "out of memory for bootstrapping");
    b->p = ckks_params_ref(p);
    b->n = n;
    b->top = tsr_ckks_params_max_level(p);
    b->kc = kc;
    b->ks = ks;
    b->k = k;
    b->encap_h = c.encapsulation_hw;
    b->on_the_fly = (int)c.diagonals_on_the_fly;
    /* slots <= N/16 hold fewer keys: room for both full-period factors encoded (at N = 2^16) */
    size_t budget_mib = c.diagonals_mib   ? c.diagonals_mib
                        : sparse_log >= 3 ? TSR_CIRCUITS_BOOT_SPARSE_DIAGONALS_MIB
                                          : TSR_CIRCUITS_BOOT_DIAGONALS_MIB;
    b->budget_mib = c.diagonals_on_the_fly ? 0 : budget_mib;
    b->diag_budget = budget_mib >= UINT64_MAX >> 20 ? UINT64_MAX : (uint64_t)budget_mib << 20;
    b->r = (int)r;
    b->in_scale = ldexp(q0, -(int)ratio);
    b->trace_steps = ilog2(full / n);
    b->k_eval = (double)k + 0.25;
    b->raise_scale = b->k_eval * q0 * (double)(full / n);
    tsr_status st = TSR_OK;
    if (c.cos_degree == 1)
        st = tsr_fail(TSR_ERR_INVALID_ARG,
                      "config.cos_degree = 1: EvalMod's cosine is even, of degree >= 2");
    if (c.cos_degree > TSR_CIRCUITS_MAX_DEGREE)
        st = tsr_fail(TSR_ERR_INVALID_ARG, "config.cos_degree = %u: at most %d", c.cos_degree,
                      TSR_CIRCUITS_MAX_DEGREE);
    if (st == TSR_OK) st = fit_cosine(b, c.cos_degree, ratio);
    if (st == TSR_OK) {
        tsr_cheb s = { -1, 1, b->cos_degree / 2, b->cos_coeffs };
        tsr_circuits_poly_info info;
        st = tsr_circuits_poly_plan(&s, INT_MAX / 2, &info);
        b->cos_depth = 1 + info.depth; /* the square y = 2 x'^2 - 1, then q */
    }
    if (st == TSR_OK) {
        int depth = kc + b->cos_depth + b->r + ks;
        tsr_ckks_param_spec spec;
        tsr_ckks_params_spec(p, &spec);
        int low = (int)spec.low_levels;
        b->out_level = low ? low : b->top - depth;
        if (b->top - depth < 1)
            st = tsr_fail(TSR_ERR_LEVEL,
                          "bootstrapping needs %d levels (CoeffsToSlots %d, EvalMod %d, "
                          "SlotsToCoeffs %d) plus one left, but the chain has %d: use more levels "
                          "or smaller level budgets",
                          depth, kc, b->cos_depth + b->r, ks, b->top);
        else if (b->top - depth < low)
            /* a mixed chain: every stage runs on its high levels and ends on the network's top
             * level at the low scale (a stage on a low prime would lose its precision) */
            st = tsr_fail(TSR_ERR_LEVEL,
                          "bootstrapping needs %d levels (CoeffsToSlots %d, EvalMod %d, "
                          "SlotsToCoeffs %d) but the mixed chain has %d above its %d network "
                          "levels: use more high levels (levels - low_levels) or smaller level "
                          "budgets",
                          depth, kc, b->cos_depth + b->r, ks, b->top - low, low);
    }
    if (st == TSR_OK) st = build_transforms(b, enc);
    if (st == TSR_OK) st = collect_steps(b);
    if (st != TSR_OK) {
        tsr_circuits_boot_free(b);
        return st;
    }
    *out = b;
    return TSR_OK;
}

void tsr_circuits_boot_get_info(const tsr_circuits_boot *b, tsr_circuits_boot_info *info) {
    TSR_REQUIRE(b && info, "tsr_circuits_boot_get_info: NULL argument");
    memset(info, 0, sizeof *info);
    info->slots = b->n;
    info->cts_levels = b->kc;
    info->evalmod_levels = b->cos_depth + b->r;
    info->stc_levels = b->ks;
    info->depth = b->kc + b->cos_depth + b->r + b->ks;
    info->out_level = b->out_level;
    info->out_scale = tsr_ckks_params_scale(b->p, info->out_level);
    info->k = b->k;
    info->double_angle = (unsigned)b->r;
    info->cos_degree = (unsigned)b->cos_degree;
    info->cos_error = b->cos_err;
    info->in_scale = b->in_scale;
    info->rotations = b->n_steps;
    info->diagonals_mib = b->budget_mib;
}

size_t tsr_circuits_boot_rotations(const tsr_circuits_boot *b, int *steps, size_t cap) {
    TSR_REQUIRE(b && (steps || cap == 0), "tsr_circuits_boot_rotations: NULL argument");
    for (size_t t = 0; t < b->n_steps && t < cap; t++) steps[t] = b->steps[t];
    return b->n_steps;
}

/* The highest level rotation step s (one of b->steps) runs at. */
static int boot_step_level(const tsr_circuits_boot *b, int s) {
    int level = -1, stc_top = b->top - b->kc - b->cos_depth - b->r;
    /* the subring trace rotates right after ModRaise, at the top */
    for (int i = 0; i < b->trace_steps; i++)
        if (s == (int)(b->n << i)) level = b->top;
    for (int g = 0; g < b->kc; g++)
        for (size_t i = 0; i < b->cts[g].n_steps; i++)
            if (b->cts[g].steps[i] == s && b->top - g > level) level = b->top - g;
    for (int g = 0; g < b->ks; g++)
        for (size_t i = 0; i < b->stc[g].n_steps; i++)
            if (b->stc[g].steps[i] == s && stc_top - g > level) level = stc_top - g;
    TSR_ASSERT(level >= 0);
    return level;
}

/* EvalMod's first products and its conjugation run at its input level; the real split lower */
static int boot_relin_level(const tsr_circuits_boot *b) {
    return b->top - b->kc;
}

size_t tsr_circuits_boot_rotation_levels(const tsr_circuits_boot *b, int *steps, int *levels,
                                         size_t cap, int *relin_level, int *conj_level) {
    TSR_REQUIRE(b && (steps || cap == 0), "tsr_circuits_boot_rotation_levels: NULL argument");
    if (relin_level) *relin_level = boot_relin_level(b);
    if (conj_level) *conj_level = boot_relin_level(b);
    for (size_t t = 0; t < b->n_steps && t < cap; t++) {
        steps[t] = b->steps[t];
        if (levels) levels[t] = boot_step_level(b, b->steps[t]);
    }
    return b->n_steps;
}

size_t tsr_circuits_boot_factors(const tsr_circuits_boot *b, tsr_circuits_boot_factor *out,
                                 size_t cap, size_t which, int *steps_of, size_t steps_cap) {
    TSR_REQUIRE(b && (out || cap == 0) && (steps_of || steps_cap == 0),
                "tsr_circuits_boot_factors: NULL argument");
    size_t count = (size_t)b->kc + (size_t)b->ks;
    for (size_t i = 0; i < count; i++) {
        const boot_lt *lt = i < (size_t)b->kc ? &b->cts[i] : &b->stc[i - (size_t)b->kc];
        if (i < cap) {
            tsr_circuits_boot_factor *f = &out[i];
            f->stage = i < (size_t)b->kc ? 0 : 1;
            f->index = (int)(i < (size_t)b->kc ? i : i - (size_t)b->kc);
            f->level = lt->level;
            f->diagonals = lt->n_diags;
            f->baby_steps = lt->n1;
            f->rotations = lt->n_steps;
            f->diag_bytes = circuits_bsgs_bytes(lt, b->p);
        }
        if (i == which && steps_of)
            for (size_t t = 0; t < lt->n_steps && t < steps_cap; t++) steps_of[t] = lt->steps[t];
    }
    return count;
}

/* TSR_ERR_INSECURE unless the to_sparse key k lives over at most
 * TSR_CIRCUITS_ENCAP_MAX_LOG_MODULUS bits or p carries the insecure flag. */
tsr_status boot_check_encap_modulus(const tsr_ckks_params *p, const tsr_ckks_switch_key *k) {
    tsr_ckks_param_spec spec;
    tsr_ckks_params_spec(p, &spec);
    double bits = tsr_ckks_switch_key_log_modulus(k);
    if (bits <= TSR_CIRCUITS_ENCAP_MAX_LOG_MODULUS ||
        (spec.flags & TSR_CKKS_ALLOW_INSECURE_PARAMETERS))
        return TSR_OK;
    return tsr_fail(TSR_ERR_INSECURE,
                    "bootstrapping's key to the sparse secret lives over a %.1f-bit "
                    "modulus; the only sourced 128-bit bound for such a key (Hamming weight 32, "
                    "N = 2^16) is %d "
                    "bits (Lattigo's EphemeralSecretWeight, SparseLWEkit's lattice-estimator "
                    "table; docs/SECURITY.md, \"The sparse encapsulation key\"): make it with "
                    "tsr_circuits_boot_switch_keys_create, or use "
                    "TSR_CKKS_ALLOW_INSECURE_PARAMETERS with your own estimate",
                    bits, TSR_CIRCUITS_ENCAP_MAX_LOG_MODULUS);
}

tsr_status tsr_circuits_boot_switch_keys_create(const tsr_circuits_boot *b,
                                                const tsr_ckks_secret_key *sk,
                                                tsr_ckks_switch_key **to_sparse,
                                                tsr_ckks_switch_key **to_dense) {
    TSR_REQUIRE(b && sk && to_sparse && to_dense,
                "tsr_circuits_boot_switch_keys_create: NULL argument");
    *to_sparse = NULL;
    *to_dense = NULL;
    if (!b->encap_h)
        return tsr_fail(TSR_ERR_INVALID_ARG, "this bootstrapping circuit has no sparse-secret "
                                             "encapsulation (config.encapsulation_hw = 0)");
    tsr_ckks_secret_key *sparse = NULL;
    TSR_TRY(tsr_ckks_secret_key_create_sparse(&sparse, b->p, b->encap_h, sk));
    tsr_status st =
        tsr_ckks_switch_key_create_q0p0(to_sparse, sk, sparse, TSR_CIRCUITS_ENCAP_MAX_LOG_MODULUS);
    if (st == TSR_OK) st = boot_check_encap_modulus(b->p, *to_sparse);
    if (st == TSR_OK) st = tsr_ckks_switch_key_create(to_dense, sparse, sk, TSR_CKKS_TOP_LEVEL);
    tsr_ckks_secret_key_free(sparse);
    if (st != TSR_OK) {
        tsr_ckks_switch_key_free(*to_sparse);
        *to_sparse = NULL;
    }
    return st;
}

tsr_status tsr_circuits_boot_set_switch_keys(tsr_circuits_boot *b,
                                             const tsr_ckks_switch_key *to_sparse,
                                             const tsr_ckks_switch_key *to_dense) {
    TSR_REQUIRE(b && to_sparse && to_dense, "tsr_circuits_boot_set_switch_keys: NULL argument");
    if (!b->encap_h)
        return tsr_fail(TSR_ERR_INVALID_ARG, "this bootstrapping circuit has no sparse-secret "
                                             "encapsulation (config.encapsulation_hw = 0)");
    if (tsr_ckks_switch_key_max_level(to_dense) < b->top)
        return tsr_fail(TSR_ERR_INVALID_ARG,
                        "the switching key back to the main secret serves levels up to %d but "
                        "bootstrapping uses it at the top level %d",
                        tsr_ckks_switch_key_max_level(to_dense), b->top);
    TSR_TRY(boot_check_encap_modulus(b->p, to_sparse));
    b->to_sparse = to_sparse;
    b->to_dense = to_dense;
    return TSR_OK;
}

tsr_status tsr_circuits_boot_check_keys(const tsr_circuits_boot *b, const tsr_ckks_evaluator *ev) {
    TSR_REQUIRE(b && ev, "tsr_circuits_boot_check_keys: NULL argument");
    if (ev->params != b->p)
        return tsr_fail(TSR_ERR_MISMATCH,
                        "the bootstrapping circuit and the evaluator belong to different "
                        "parameter sets");
    if (b->encap_h && (!b->to_sparse || !b->to_dense))
        return tsr_fail(TSR_ERR_KEY_MISSING,
                        "bootstrapping with sparse-secret encapsulation needs its two switching "
                        "keys: make them with tsr_circuits_boot_switch_keys_create and attach "
                        "them with tsr_circuits_boot_set_switch_keys");
    if (!ev->rk)
        return tsr_fail(TSR_ERR_KEY_MISSING,
                        "bootstrapping needs a relinearization key in the evaluator (EvalMod "
                        "multiplies ciphertexts)");
    if (!ev->gk || !tsr_ckks_galois_keys_has_conjugate(ev->gk))
        return tsr_fail(TSR_ERR_KEY_MISSING,
                        "bootstrapping needs the conjugation key: create the Galois keys with "
                        "TSR_CKKS_GALOIS_CONJUGATE and the steps of tsr_circuits_boot_rotations");
    char list[160];
    size_t len = 0, missing = 0;
    list[0] = '\0';
    for (size_t t = 0; t < b->n_steps; t++) {
        if (tsr_ckks_galois_keys_has_rotation(ev->gk, b->steps[t])) continue;
        if (missing < 12 && len < sizeof list) {
            int w =
                snprintf(list + len, sizeof list - len, "%s%d", missing ? ", " : "", b->steps[t]);
            if (w > 0) len += (size_t)w;
        }
        missing++;
    }
    if (missing)
        return tsr_fail(TSR_ERR_KEY_MISSING,
                        "bootstrapping needs Galois keys for %zu rotation step(s) the evaluator "
                        "lacks: %s%s; create the keys with the steps of "
                        "tsr_circuits_boot_rotations",
                        missing, list, missing > 12 ? ", ..." : "");
    /* level-aware keys: each must serve the highest level bootstrapping uses it at, checked
     * here so a key trimmed too low fails before the output is touched */
    int need = boot_relin_level(b), have = tsr_ckks_relin_key_max_level(ev->rk);
    if (have < need)
        return tsr_fail(TSR_ERR_LEVEL,
                        "the relinearization key serves levels up to %d but bootstrapping "
                        "multiplies at level %d (tsr_circuits_boot_rotation_levels)",
                        have, need);
    have = ckks_galois_find(ev->gk, ckks_galois_elt_conjugate(ev->params->slots))->key.max_level;
    if (have < need)
        return tsr_fail(TSR_ERR_LEVEL,
                        "the conjugation key serves levels up to %d but bootstrapping "
                        "conjugates at level %d (tsr_circuits_boot_rotation_levels)",
                        have, need);
    for (size_t t = 0; t < b->n_steps; t++) {
        need = boot_step_level(b, b->steps[t]);
        have = tsr_ckks_galois_keys_rotation_level(ev->gk, b->steps[t]);
        if (have < need)
            return tsr_fail(TSR_ERR_LEVEL,
                            "the Galois key of rotation step %d serves levels up to %d but "
                            "bootstrapping rotates by it at level %d "
                            "(tsr_circuits_boot_rotation_levels)",
                            b->steps[t], have, need);
    }
    return TSR_OK;
}

/* in at `level` with scale `scale` (relative 1e-9), else a clear error naming the stage. */
static tsr_status check_stage_input(const tsr_circuits_boot *b, tsr_ckks_evaluator *ev,
                                    const tsr_ckks_ciphertext *out, const tsr_ckks_ciphertext *in,
                                    const char *stage, int level, double scale) {
    TSR_REQUIRE(b && ev && out && in, "tsr_circuits_boot: NULL argument");
    TSR_TRY(tsr_circuits_boot_check_keys(b, ev));
    if (tsr_ckks_ciphertext_params(in) != b->p || tsr_ckks_ciphertext_params(out) != b->p)
        return tsr_fail(TSR_ERR_MISMATCH,
                        "the ciphertexts and the bootstrapping circuit belong to different "
                        "parameter sets");
    int l = tsr_ckks_ciphertext_level(in);
    if (l < 0) return tsr_fail(TSR_ERR_INVALID_ARG, "the input ciphertext is empty");
    if (tsr_ckks_ciphertext_size(in) != 2)
        return tsr_fail(TSR_ERR_INVALID_ARG,
                        "the input of %s has %d polynomials: relinearize "
                        "it first",
                        stage, tsr_ckks_ciphertext_size(in));
    if (l != level)
        return tsr_fail(TSR_ERR_LEVEL,
                        "%s expects its input at level %d (the previous stage's output) but it "
                        "is at level %d",
                        stage, level, l);
    double s = tsr_ckks_ciphertext_scale(in);
    if (fabs(s - scale) > 1e-9 * scale)
        return tsr_fail(TSR_ERR_SCALE,
                        "%s expects its input at scale 2^%.6f (the previous stage's output) but "
                        "it has 2^%.6f",
                        stage, log2(scale), log2(s));
    return TSR_OK;
}

/* in at level >= 1 with its canonical scale (the input of ModRaise), else a clear error. */
static tsr_status check_raise_input(const tsr_circuits_boot *b, tsr_ckks_evaluator *ev,
                                    const tsr_ckks_ciphertext *out, const tsr_ckks_ciphertext *in) {
    TSR_TRY(tsr_circuits_boot_check_keys(b, ev));
    int level;
    TSR_TRY(circuits_check_input(ev, out, in, &level));
    if (level < 1)
        return tsr_fail(TSR_ERR_LEVEL,
                        "bootstrapping needs its input at level >= 1 (it spends one level "
                        "bringing the scale to q_0 / 2^R exactly) but the ciphertext is at level "
                        "0: bootstrap one operation earlier");
    return TSR_OK;
}

/*
 * ModRaise of in (checked) times `factor` (1, or 1/2 for real pairs): the
 * exact adjustment to level 0 lands on in_scale * factor and is then read at
 * in_scale, which multiplies the message by factor at no cost.
 */
static tsr_status mod_raise(const tsr_circuits_boot *b, tsr_ckks_evaluator *ev,
                            tsr_ckks_ciphertext *out, const tsr_ckks_ciphertext *in,
                            double factor) {
    TSR_TRY(tsr_ckks_adjust(ev, out, in, 0, b->in_scale * factor));
    TSR_TRY(tsr_ckks_ciphertext_set_scale(out, b->in_scale));
    if (b->encap_h) TSR_TRY(tsr_ckks_key_switch(ev, out, out, b->to_sparse));
    TSR_TRY(tsr_ckks_mod_raise(ev, out, out));
    if (b->encap_h) TSR_TRY(tsr_ckks_key_switch(ev, out, out, b->to_dense));
    if (b->trace_steps > 0) {
        tsr_ckks_ciphertext *t;
        TSR_TRY(tsr_ckks_ciphertext_create(&t, b->p));
        tsr_status st = TSR_OK;
        for (int i = 0; i < b->trace_steps && st == TSR_OK; i++) {
            st = tsr_ckks_rotate(ev, t, out, (int)(b->n << i));
            if (st == TSR_OK) st = tsr_ckks_add(ev, out, out, t);
        }
        tsr_ckks_ciphertext_free(t);
        TSR_TRY(st);
    }
    return tsr_ckks_ciphertext_set_scale(out, b->raise_scale);
}

tsr_status tsr_circuits_boot_mod_raise(const tsr_circuits_boot *b, tsr_ckks_evaluator *ev,
                                       tsr_ckks_ciphertext *out, const tsr_ckks_ciphertext *in) {
    TSR_REQUIRE(b && ev && out && in, "tsr_circuits_boot_mod_raise: NULL argument");
    TSR_TRY(check_raise_input(b, ev, out, in));
    return mod_raise(b, ev, out, in, 1.0);
}

tsr_status tsr_circuits_boot_mod_raise_real(const tsr_circuits_boot *b, tsr_ckks_evaluator *ev,
                                            tsr_ckks_ciphertext *out,
                                            const tsr_ckks_ciphertext *in_a,
                                            const tsr_ckks_ciphertext *in_b) {
    TSR_REQUIRE(b && ev && out && in_a, "tsr_circuits_boot_mod_raise_real: NULL argument");
    TSR_TRY(check_raise_input(b, ev, out, in_a));
    if (!in_b) return mod_raise(b, ev, out, in_a, 0.5);
    TSR_TRY(check_raise_input(b, ev, out, in_b));
    if (tsr_ckks_ciphertext_level(in_a) != tsr_ckks_ciphertext_level(in_b))
        return tsr_fail(TSR_ERR_LEVEL,
                        "the two real ciphertexts to bootstrap together are at levels %d and %d: "
                        "bring them to one level first (tsr_ckks_adjust)",
                        tsr_ckks_ciphertext_level(in_a), tsr_ckks_ciphertext_level(in_b));
    /* joined = in_a + i in_b (X^(N/2) multiplies every slot by i, exactly) */
    tsr_ckks_ciphertext *joined = NULL;
    tsr_status st = tsr_ckks_ciphertext_create(&joined, b->p);
    if (st == TSR_OK)
        st = tsr_ckks_mul_monomial(ev, joined, in_b, (long)tsr_ckks_params_n(b->p) / 2);
    if (st == TSR_OK) st = tsr_ckks_add(ev, joined, joined, in_a);
    if (st == TSR_OK) st = mod_raise(b, ev, out, joined, 0.5);
    tsr_ckks_ciphertext_free(joined);
    return st;
}

tsr_status tsr_circuits_boot_coeffs_to_slots(const tsr_circuits_boot *b, tsr_ckks_evaluator *ev,
                                             tsr_ckks_ciphertext *out,
                                             const tsr_ckks_ciphertext *in) {
    TSR_TRY(check_stage_input(b, ev, out, in, "CoeffsToSlots", b->top, b->raise_scale));
    const tsr_ckks_ciphertext *src = in;
    for (int g = 0; g < b->kc; g++) {
        TSR_TRY(boot_lt_apply(ev, out, src, &b->cts[g]));
        src = out;
    }
    return TSR_OK;
}

tsr_cheb boot_cos_series(const tsr_circuits_boot *b) {
    tsr_cheb s = { -1, 1, b->cos_degree / 2, b->cos_coeffs };
    return s;
}

/*
 * x' = x - 1/(4K') (|x'| < 1: |c| < K q_0), y = 2 x'^2 - 1, the cosine by
 * its series in y (cos_fn), then r double angles: y = 2 y^2 - 1.
 */
static tsr_status eval_mod_part(const tsr_circuits_boot *b, tsr_ckks_evaluator *ev,
                                tsr_ckks_ciphertext *y) {
    TSR_TRY(tsr_ckks_sub_const(ev, y, y, 0.25 / b->k_eval, 0.0));
    TSR_TRY(tsr_ckks_mul_relin_rescale(ev, y, y, y));
    TSR_TRY(tsr_ckks_mul_int(ev, y, y, 2));
    TSR_TRY(tsr_ckks_sub_const(ev, y, y, 1.0, 0.0));
    TSR_TRY(boot_snap_scale(y, tsr_ckks_params_scale(b->p, tsr_ckks_ciphertext_level(y))));
    /* |2 x'^2 - 1| <= 1 for |x'| <= 1: the exact bound, for the Chebyshev powers' checks.
     * It assumes bootstrapping's precondition |I| < K (then |x'| < 1). When that fails, |y|
     * reaches 2 |x'|^2 - 1 > 1 and this bound understates it (the result is wrong then
     * anyway: the cosine is fitted on [-1, 1] only). */
    y->mag = 1.0;
    tsr_cheb s = { -1, 1, b->cos_degree / 2, b->cos_coeffs };
    TSR_TRY(tsr_circuits_poly_eval(ev, y, y, &s, NULL));
    for (int i = 0; i < b->r; i++) {
        TSR_TRY(tsr_ckks_mul_relin_rescale(ev, y, y, y));
        TSR_TRY(tsr_ckks_mul_int(ev, y, y, 2));
        TSR_TRY(tsr_ckks_sub_const(ev, y, y, 1.0, 0.0));
        TSR_TRY(boot_snap_scale(y, tsr_ckks_params_scale(b->p, tsr_ckks_ciphertext_level(y))));
    }
    return TSR_OK;
}

/* One half of eval_mod_pair: its ciphertext and evaluator; its status and error message
 * (tsr_last_error is per thread) carried back to the caller. */
typedef struct eval_mod_half {
    const tsr_circuits_boot *b;
    tsr_ckks_evaluator *ev;
    tsr_ckks_ciphertext *ct;
    tsr_status st;
    char msg[512];
} eval_mod_half;

static void eval_mod_half_run(void *arg) {
    eval_mod_half *h = arg;
    h->st = eval_mod_part(h->b, h->ev, h->ct);
    if (h->st != TSR_OK) snprintf(h->msg, sizeof h->msg, "%s", tsr_last_error());
}

/*
 * eval_mod_part on x and on y. With T >= 2 threads (and not already inside a
 * parallel region) the two run at once through tsr_thread_pair (core/threads.h:
 * for T >= 3 the second half runs on a POSIX thread of its own), y on the
 * evaluator's twin (its own scratch, the same read-only keys), each with about
 * T/2 threads for its inner loops; every operation is the same as in the
 * sequential order, so the results are bit-identical to it.
 * The twin's key-switching scratch (dnum (L+1+k) N words of digits and more:
 * about 0.2 GiB at N = 2^16) is freed at the end, so an evaluator does not
 * hold two sets of it between bootstraps; reallocating it costs far less
 * than an EvalMod.
 */
static tsr_status eval_mod_pair(const tsr_circuits_boot *b, tsr_ckks_evaluator *ev,
                                tsr_ckks_ciphertext *x, tsr_ckks_ciphertext *y) {
    int threads = tsr_thread_max();
    if (threads >= 2 && !tsr_thread_in_parallel()) {
        tsr_ckks_evaluator *tw;
        TSR_TRY(ckks_evaluator_twin(ev, &tw));
        unsigned long dec0 = tw->n_decompose, md0 = tw->n_moddown;
        eval_mod_half half[2] = { { .b = b, .ev = ev, .ct = x }, { .b = b, .ev = tw, .ct = y } };
        tsr_thread_pair(eval_mod_half_run, &half[0], &half[1], threads - threads / 2, threads / 2);
        ckks_ks_scratch_free(tw);
        ev->n_decompose += tw->n_decompose - dec0;
        ev->n_moddown += tw->n_moddown - md0;
        for (int i = 0; i < 2; i++)
            if (half[i].st != TSR_OK) return tsr_fail(half[i].st, "%s", half[i].msg);
        return TSR_OK;
    }
    TSR_TRY(eval_mod_part(b, ev, x));
    return eval_mod_part(b, ev, y);
}

tsr_status tsr_circuits_boot_eval_mod(const tsr_circuits_boot *b, tsr_ckks_evaluator *ev,
                                      tsr_ckks_ciphertext *out, const tsr_ckks_ciphertext *in) {
    int level = b->top - b->kc;
    TSR_TRY(
        check_stage_input(b, ev, out, in, "EvalMod", level, tsr_ckks_params_scale(b->p, level)));
    long n = (long)tsr_ckks_params_n(b->p);
    tsr_ckks_ciphertext *conj = NULL, *im = NULL;
    tsr_status st = tsr_ckks_ciphertext_create(&conj, b->p);
    if (b->n < tsr_ckks_params_slots(b->p)) {
        /* sparse: in = [u | -i u] (period 2n), so in + conj(in) = [a | b], one EvalMod */
        if (st == TSR_OK) st = tsr_ckks_conjugate(ev, conj, in);
        if (st == TSR_OK) st = tsr_ckks_add(ev, out, in, conj);
        tsr_ckks_ciphertext_free(conj); /* before EvalMod's own ciphertexts: its peak */
        return st == TSR_OK ? eval_mod_part(b, ev, out) : st;
    }
    if (st == TSR_OK) st = tsr_ckks_ciphertext_create(&im, b->p);
    /* u = (a + i b) / 2: a = u + conj(u), b = -i (u - conj(u)) */
    if (st == TSR_OK) st = tsr_ckks_conjugate(ev, conj, in);
    if (st == TSR_OK) st = tsr_ckks_sub(ev, im, in, conj);
    if (st == TSR_OK) st = tsr_ckks_mul_monomial(ev, im, im, 3 * n / 2);
    if (st == TSR_OK) st = tsr_ckks_add(ev, out, in, conj);
    tsr_ckks_ciphertext_free(conj); /* before EvalMod's own ciphertexts: its peak */
    if (st == TSR_OK) st = eval_mod_pair(b, ev, out, im);
    /* join: a' + i b' */
    if (st == TSR_OK) st = tsr_ckks_mul_monomial(ev, im, im, n / 2);
    if (st == TSR_OK) st = tsr_ckks_add(ev, out, out, im);
    tsr_ckks_ciphertext_free(im);
    return st;
}

tsr_status tsr_circuits_boot_slots_to_coeffs(const tsr_circuits_boot *b, tsr_ckks_evaluator *ev,
                                             tsr_ckks_ciphertext *out,
                                             const tsr_ckks_ciphertext *in) {
    int level = b->top - b->kc - b->cos_depth - b->r;
    TSR_TRY(check_stage_input(b, ev, out, in, "SlotsToCoeffs", level,
                              tsr_ckks_params_scale(b->p, level)));
    const tsr_ckks_ciphertext *src = in;
    for (int g = 0; g < b->ks; g++) {
        TSR_TRY(boot_lt_apply(ev, out, src, &b->stc[g]));
        src = out;
    }
    /* a mixed chain with high levels to spare: down to the network's top level and scale */
    if (tsr_ckks_ciphertext_level(out) > b->out_level)
        TSR_TRY(
            tsr_ckks_adjust(ev, out, out, b->out_level, tsr_ckks_params_scale(b->p, b->out_level)));
    return TSR_OK;
}

tsr_status tsr_circuits_boot_split_real(const tsr_circuits_boot *b, tsr_ckks_evaluator *ev,
                                        tsr_ckks_ciphertext *out_a, tsr_ckks_ciphertext *out_b,
                                        const tsr_ckks_ciphertext *in) {
    TSR_REQUIRE(b && ev && out_a && in && out_a != out_b,
                "tsr_circuits_boot_split_real: NULL argument or out_a == out_b");
    int level = b->out_level;
    TSR_TRY(check_stage_input(b, ev, out_a, in, "the real split", level,
                              tsr_ckks_params_scale(b->p, level)));
    if (out_b && tsr_ckks_ciphertext_params(out_b) != b->p)
        return tsr_fail(TSR_ERR_MISMATCH, "out_b belongs to other parameters");
    /* in = (a + i b) / 2: a = in + conj(in), b = -i (in - conj(in)) */
    tsr_ckks_ciphertext *conj = NULL;
    tsr_status st = tsr_ckks_ciphertext_create(&conj, b->p);
    if (st == TSR_OK) st = tsr_ckks_conjugate(ev, conj, in);
    /* the output that may alias in is written last */
    for (int pass = 0; pass < 2 && st == TSR_OK; pass++) {
        if ((pass == 0) == (out_a != in)) {
            st = tsr_ckks_add(ev, out_a, in, conj);
        } else if (out_b) {
            st = tsr_ckks_sub(ev, out_b, in, conj);
            if (st == TSR_OK)
                st = tsr_ckks_mul_monomial(ev, out_b, out_b, 3 * (long)tsr_ckks_params_n(b->p) / 2);
        }
    }
    tsr_ckks_ciphertext_free(conj);
    return st;
}

tsr_status tsr_circuits_bootstrap_real(const tsr_circuits_boot *b, tsr_ckks_evaluator *ev,
                                       tsr_ckks_ciphertext *out_a, tsr_ckks_ciphertext *out_b,
                                       const tsr_ckks_ciphertext *in_a,
                                       const tsr_ckks_ciphertext *in_b) {
    TSR_REQUIRE(b && ev && out_a && in_a && out_a != out_b,
                "tsr_circuits_bootstrap_real: NULL argument or out_a == out_b");
    tsr_ckks_ciphertext *x = NULL;
    tsr_status st = tsr_ckks_ciphertext_create(&x, b->p);
    if (st == TSR_OK) st = tsr_circuits_boot_mod_raise_real(b, ev, x, in_a, in_b);
    if (st == TSR_OK) st = tsr_circuits_boot_coeffs_to_slots(b, ev, x, x);
    if (st == TSR_OK) st = tsr_circuits_boot_eval_mod(b, ev, x, x);
    if (st == TSR_OK) st = tsr_circuits_boot_slots_to_coeffs(b, ev, x, x);
    if (st == TSR_OK) st = tsr_circuits_boot_split_real(b, ev, out_a, out_b, x);
    tsr_ckks_ciphertext_free(x);
    return st;
}

tsr_status tsr_circuits_bootstrap(const tsr_circuits_boot *b, tsr_ckks_evaluator *ev,
                                  tsr_ckks_ciphertext *out, const tsr_ckks_ciphertext *in) {
    TSR_REQUIRE(b && ev && out && in, "tsr_circuits_bootstrap: NULL argument");
    TSR_TRY(tsr_circuits_boot_mod_raise(b, ev, out, in));
    TSR_TRY(tsr_circuits_boot_coeffs_to_slots(b, ev, out, out));
    TSR_TRY(tsr_circuits_boot_eval_mod(b, ev, out, out));
    return tsr_circuits_boot_slots_to_coeffs(b, ev, out, out);
}
