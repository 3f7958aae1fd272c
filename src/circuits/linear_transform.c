/*
 * circuits/linear_transform.c - a plaintext matrix times an encrypted slot
 * vector by the diagonal method with baby-step giant-step and double
 * hoisting: the one linear transform of Tessera (tsr_circuits_lt with real
 * diagonals, bootstrapping's DFT factors with complex ones).
 *
 * References:
 *  - S. Halevi, V. Shoup, "Algorithms in HElib", CRYPTO 2014, section 4.3:
 *    M v = sum_i diag_i * rot(v, i), diag_i[j] = M[j][(j + i) mod n].
 *  - S. Halevi, V. Shoup, "Faster Homomorphic Linear Transformations in
 *    HElib", CRYPTO 2018, sections 4-5: baby-step giant-step over the
 *    diagonals, i = g n1 + b, with the giant rotation moved out of the
 *    inner sum by pre-rotating the diagonals (plaintext work):
 *      M v = sum_g rot( sum_b rot(diag_{g n1 + b}, -g n1) * rot(v, b), g n1 ),
 *    and hoisting: the baby rotations of v share one decomposition.
 *  - J.-P. Bossuat, C. Mouchet, J. Troncoso-Pastoriza, J.-P. Hubaux,
 *    "Efficient Bootstrapping for Approximate Homomorphic Encryption with
 *    Non-Sparse Keys", EUROCRYPT 2021, section 3.3 (double hoisting): the
 *    baby rotations stay over Q_l u P (no ModDown), the diagonals are
 *    encoded over Q_l u P, each giant inner sum is ModDown'ed once, its
 *    giant rotation's key switch is again kept over Q_l u P and summed
 *    there, and one ModDown and one rescale end the transform.
 *
 * Phases of circuits_bsgs_apply at level l (k special primes, nb baby
 * steps b > 0, ng giant steps g > 0):
 *  (1) one decomposition of c1; per baby b: the key switch's inner products
 *      over Q_l u P, permuted by phi_b, plus P phi_b(c0) (the rotation
 *      before its ModDown); b = 0: P (c0, c1).
 *  (2) per giant step g: the inner sum (s0, s1) of plaintext products over
 *      Q_l u P (scale Delta_l * s_pt); g = 0: added to the accumulator as it
 *      is; g > 0: the ModDown of s1 alone, its decomposition, and the key
 *      switch of phi_g over Q_l u P plus phi_g(s0), s0 never leaving Q_l u P
 *      (as Lattigo's BSGS does), added to the accumulator.
 *  (3) one ModDown of the accumulator and one rescale onto Delta_{l-1}.
 * Key-switching work: 1 + ng decompositions, nb + ng inner products, ng
 * ModDowns of one polynomial and one of two (single hoisting: nb + ng of
 * two), and the plaintext products over l + 1 + k limbs instead of l + 1.
 */
#include "tessera/circuits.h"

#include "circuits/circuits_internal.h"
#include "ckks/evaluator_internal.h"
#include "core/alloc.h"
#include "core/error.h"
#include "core/threads.h"
#include "ring/ntt_sub.h"
#include "ring/vec.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct tsr_circuits_lt {
    tsr_ckks_params *p;
    circuits_bsgs core; /* period: the slot count */
};

static int is_pow2(size_t x) {
    return x && (x & (x - 1)) == 0;
}

static int cmp_size(const void *a, const void *b) {
    size_t x = *(const size_t *)a, y = *(const size_t *)b;
    return (x > y) - (x < y);
}

static int cmp_int(const void *a, const void *b) {
    int x = *(const int *)a, y = *(const int *)b;
    return (x > y) - (x < y);
}

/* ---- the transform: encoding ------------------------------------------------------------ */

/*
 * Rotations of a transform with baby-step count n1: *babies (b > 0, hoisted:
 * one shared decomposition) and *giants (g > 0, one decomposition each); the
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

void circuits_bsgs_free(circuits_bsgs *lt) {
    if (lt->pt)
        for (size_t t = 0; t < lt->n_diags; t++) tsr_free(lt->pt[t]);
    free(lt->pt);
    free(lt->coef);
    free(lt->coef_i);
    free(lt->coef_off);
    free(lt->pt_mag);
    free(lt->index);
    free(lt->steps);
    memset(lt, 0, sizeof *lt);
}

/*
 * n1: the fewest rotation keys, and among those the cheapest split. A baby
 * step costs the inner products of its key switch over Q_l u P; a giant
 * step also a ModDown and a decomposition (ModUp), about three times as much
 * with the bootstrapping parameters (dnum 7, docs/BENCHMARKS.md; nearer two
 * since the giant steps ModDown one polynomial, which orders these splits the
 * same way): 32 contiguous diagonals take 7 babies + 3 giants rather than
 * 3 + 7, same keys.
 */
static tsr_status choose_n1(circuits_bsgs *lt) {
    size_t best_keys = SIZE_MAX, best_cost = SIZE_MAX;
    for (size_t n1 = 1; n1 <= lt->n; n1 *= 2) {
        size_t nb, ng;
        bsgs_count(lt->index, lt->n_diags, n1, &nb, &ng);
        if (nb == SIZE_MAX) return tsr_fail(TSR_ERR_NOMEM, "out of memory for a linear transform");
        size_t keys = nb + ng, cost = nb + 3 * ng;
        if (keys < best_keys || (keys == best_keys && cost < best_cost)) {
            best_keys = keys;
            best_cost = cost;
            lt->n1 = n1;
        }
    }
    return TSR_OK;
}

/* The sorted, distinct rotation steps (babies b > 0 and giants g n1 > 0). */
static void collect_steps(circuits_bsgs *lt) {
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
}

uint64_t circuits_bsgs_bytes(const circuits_bsgs *lt, const tsr_ckks_params *p) {
    uint64_t words = lt->coef_off ? lt->coef_off[lt->n_diags] : 0;
    (void)p;
    for (size_t t = 0; lt->pt && t < lt->n_diags; t++)
        if (lt->pt[t]) words += (uint64_t)lt->pt_limbs * p->n;
    return words * sizeof(uint64_t);
}

tsr_status circuits_bsgs_create(circuits_bsgs *lt, tsr_ckks_encoder *enc, tsr_ckks_params *p,
                                const size_t *index, size_t n_diags, size_t n, size_t n1,
                                circuits_diag_fn diag, void *ctx, int level, double in_scale) {
    return circuits_bsgs_create_ex(lt, enc, p, index, n_diags, n, n1, diag, ctx, level, in_scale,
                                   CIRCUITS_DIAGS_ENCODED);
}

/* ---- the diagonals: exact integer coefficients, a polynomial of a subring each ------------- */

/*
 * A diagonal whose slot vector (replicated over all slots) has period p is
 * invariant under the rotation by p, so it is a polynomial in X^(N / 2p):
 * B(X^(N/2p)) with B the p-slot encoding of its first p values (2p
 * coefficients; ckks/fft.h with p slots). Encoded that way, it costs 2p
 * rounded coefficients instead of N, and its NTT over a prime is a 2p-point
 * transform written out N / 2p times (ring/ntt_sub.h). A DFT factor of
 * bootstrapping whose butterflies have half-lengths up to h has period 2h:
 * only the factor holding the largest stage (h = n/2) is full-period. Both
 * the stored (pt) and the on-the-fly diagonals are made from these
 * coefficients, so both give the same words.
 */

/* Smallest power-of-two period of v (S values, S a power of two): v[j] == v[j - p] for j >= p. */
static size_t slot_period(const ckks_cplx *v, size_t S) {
    size_t p = S;
    while (p > 1) {
        const size_t h = p / 2;
        for (size_t j = h; j < S; j++)
            if (v[j].re != v[j - h].re || v[j].im != v[j - h].im) return p;
        p = h;
    }
    return p;
}

/* Special-FFT tables per period (index log2 p), made on first use; the full period uses the
 * parameters' own (the encoder's: the same words as tsr_ckks_encode_complex). */
typedef struct fft_cache {
    const ckks_fft *full;
    size_t slots;
    ckks_fft f[TSR_NTT_MAX_LOG_N + 1];
    unsigned char made[TSR_NTT_MAX_LOG_N + 1];
} fft_cache;

static tsr_status fft_for(fft_cache *fc, size_t period, const ckks_fft **out) {
    if (period == fc->slots) {
        *out = fc->full;
        return TSR_OK;
    }
    int lg = 0;
    while (((size_t)1 << lg) < period) lg++;
    if (!fc->made[lg]) {
        TSR_TRY(ckks_fft_init(&fc->f[lg], period));
        fc->made[lg] = 1;
    }
    *out = &fc->f[lg];
    return TSR_OK;
}

static void fft_cache_free(fft_cache *fc) {
    for (int lg = 0; lg <= TSR_NTT_MAX_LOG_N; lg++)
        if (fc->made[lg]) ckks_fft_free(&fc->f[lg]);
}

/*
 * The 2p rounded coefficients at `scale` of the slot vector v (S slots, period p): c[k] and
 * c[k + p] (k < p) are those of X^(k N/2p) and X^((k + p) N/2p). With p = S these are the
 * encoder's words (ckks/encoder.c: the same inverse FFT and rounding). w: p scratch values.
 * *maxc: the largest |c|.
 */
static tsr_status encode_period(fft_cache *fc, const ckks_cplx *v, size_t p, double scale,
                                ckks_cplx *w, double *c, double *maxc) {
    const ckks_fft *f;
    TSR_TRY(fft_for(fc, p, &f));
    memcpy(w, v, p * sizeof *w);
    ckks_fft_inverse(f, w);
    double mx = 0;
    for (size_t k = 0; k < p; k++) {
        c[k] = nearbyint(w[k].re * scale);
        c[k + p] = nearbyint(w[k].im * scale);
        mx = fmax(mx, fmax(fabs(c[k]), fabs(c[k + p])));
    }
    *maxc = mx;
    return TSR_OK;
}

/* round(v) mod q for an integer-valued finite double, exact at any magnitude (as ring/rns.c). */
static uint64_t coef_mod(const tsr_modulus *m, double v) {
    const double a = fabs(v);
    uint64_t r;
    if (a < 0x1p62) {
        r = tsr_modq_reduce64(m, (uint64_t)a);
    } else {
        int e;
        const double f = frexp(a, &e); /* a = f 2^e, e >= 63 */
        r = tsr_modq_mul(m, tsr_modq_reduce64(m, (uint64_t)ldexp(f, 53)),
                         tsr_modq_pow(m, 2, (uint64_t)(e - 53)));
    }
    return v < 0 ? tsr_modq_neg(r, m->q) : r;
}

/* The m coefficients ci (int64) or cd (doubles) as residues modulo mod, into dst. */
static void coef_residues(const int64_t *ci, const double *cd, size_t m, const tsr_modulus *mod,
                          uint64_t *dst) {
    if (ci)
        for (size_t k = 0; k < m; k++) dst[k] = tsr_modq_from_i64(mod, ci[k]);
    else
        for (size_t k = 0; k < m; k++) dst[k] = coef_mod(mod, cd[k]);
}

/* Limb i of Q_l u P (basis qp) of the diagonal with the m coefficients ci (or cd), NTT form:
 * N words into dst (an m-point NTT written out when m < N). */
static void coef_limb(const int64_t *ci, const double *cd, size_t m, const tsr_rns_basis *qp,
                      size_t i, uint64_t *dst) {
    coef_residues(ci, cd, m, &qp->mod[i], dst);
    tsr_ntt_forward_sparse(qp->ntt[i], dst, m);
}

/* Limb i of diagonal d of an on-the-fly transform (as the stored pt would hold it). */
static void diag_limb(const circuits_bsgs *lt, size_t d, const tsr_rns_basis *qp, size_t i,
                      uint64_t *dst) {
    const size_t off = lt->coef_off[d], m = lt->coef_off[d + 1] - off;
    coef_limb(lt->coef_i ? lt->coef_i + off : NULL, lt->coef_i ? NULL : lt->coef + off, m, qp, i,
              dst);
}

/* Diagonal d of an on-the-fly transform over Q_l u P, NTT form (the reference path). */
static void diag_to_qp(const tsr_ckks_params *p, const circuits_bsgs *lt, size_t d, uint64_t *dst) {
    const tsr_rns_basis *qp = p->qlp[lt->level];
    for (size_t i = 0; i < qp->count; i++) diag_limb(lt, d, qp, i, dst + i * p->n);
}

/* On the fly: every |c| < 2^62 (always at the bootstrapping scales) -> int64, converted by
 * tsr_modq_from_i64 (the same words as coef_mod). In place, no second copy: each word is read
 * as a double before the int64 is stored there (malloc'd storage takes the type of the last
 * store); coef is cleared so that nothing reads these words as doubles again. */
static void coef_to_int(circuits_bsgs *lt) {
    const size_t words = lt->coef_off[lt->n_diags];
    for (size_t i = 0; i < words; i++)
        if (!(fabs(lt->coef[i]) < 0x1p62)) return;
    int64_t *ci = (int64_t *)(void *)lt->coef;
    for (size_t i = 0; i < words; i++) {
        const double c = lt->coef[i];
        ci[i] = (int64_t)c;
    }
    lt->coef = NULL;
    lt->coef_i = ci;
}

/* Append m words to lt->coef (capacity *cap words), growing it geometrically. */
static tsr_status coef_append(circuits_bsgs *lt, size_t *cap, size_t len, const double *c,
                              size_t m) {
    if (len + m > *cap) {
        size_t want = *cap ? 2 * *cap : 4096;
        while (want < len + m) want *= 2;
        double *grown = realloc(lt->coef, want * sizeof *grown);
        if (!grown) return tsr_fail(TSR_ERR_NOMEM, "out of memory for a transform's diagonals");
        lt->coef = grown;
        *cap = want;
    }
    memcpy(lt->coef + len, c, m * sizeof *c);
    return TSR_OK;
}

/* Diagonals converted at a time per limb on the fly (each N words, per thread). */
enum { FLY_GROUP = 8 };

tsr_status circuits_bsgs_create_ex(circuits_bsgs *lt, tsr_ckks_encoder *enc, tsr_ckks_params *p,
                                   const size_t *index, size_t n_diags, size_t n, size_t n1,
                                   circuits_diag_fn diag, void *ctx, int level, double in_scale,
                                   circuits_diag_store store) {
    memset(lt, 0, sizeof *lt);
    const size_t slots = tsr_ckks_params_slots(p), N = 2 * slots;
    const size_t limbs = (size_t)level + 1 + (size_t)p->k;
    TSR_ASSERT(level >= 1 && is_pow2(n) && n <= slots && (n1 == 0 || (is_pow2(n1) && n1 <= n)));
    lt->level = level;
    lt->limbs = (int)limbs;
    lt->pt_limbs = limbs;
    lt->in_scale = in_scale;
    lt->n = n;
    lt->n_diags = n_diags;
    size_t nd = n_diags ? n_diags : 1;
    lt->index = malloc(nd * sizeof *lt->index);
    lt->pt_mag = calloc(nd, sizeof *lt->pt_mag);
    lt->steps = malloc(2 * nd * sizeof *lt->steps);
    lt->coef_off = calloc(nd + 1, sizeof *lt->coef_off);
    lt->pt = calloc(nd, sizeof *lt->pt);
    ckks_cplx *d = malloc(n * sizeof *d), *v = malloc(slots * sizeof *v),
              *w = malloc(slots * sizeof *w);
    double *c = malloc(N * sizeof *c);
    fft_cache fc = { .full = &p->fft, .slots = slots };
    size_t cap = 0;
    tsr_status st = TSR_OK;
    if (!lt->index || !lt->pt_mag || !lt->steps || !lt->coef_off || !lt->pt || !d || !v || !w ||
        !c) {
        st =
            tsr_fail(TSR_ERR_NOMEM,
                     "out of memory for a linear transform (%zu diagonals of %zu MiB over Q_l u P)",
                     n_diags, limbs * N * sizeof(uint64_t) >> 20);
        goto done;
    }
    /* the diagonals are encoded here with the parameters' own FFT tables (the encoder's); the
     * encoder must still belong to p: an empty encoding makes its check */
    double mag0, err0;
    st = ckks_encode_complex_coef(enc, p, c, NULL, 0, level, 1.0, &mag0, &err0);
    if (st != TSR_OK) goto done;
    for (size_t t = 0; t < n_diags; t++) {
        TSR_ASSERT(index[t] < n && (t == 0 || index[t] > index[t - 1]));
        lt->index[t] = index[t];
    }
    lt->n1 = n1;
    if (n1 == 0) st = choose_n1(lt);
    if (st != TSR_OK) goto done;
    collect_steps(lt);
    /* Delta_l^in * s_pt / q_l = Delta_{l-1} */
    lt->pt_scale =
        tsr_ckks_params_scale(p, level - 1) * (double)tsr_ckks_params_prime(p, level) / in_scale;
    lt->pt_err = ckks_noise_rounding(p, lt->pt_scale); /* N rounded coefficients: a bound */
    const double limit_log2 = tsr_ckks_params_log_q(p, level) - 1.0;
    const tsr_rns_basis *qp = p->qlp[level];
    for (size_t t = 0; t < n_diags && st == TSR_OK; t++) {
        st = diag(ctx, t, d);
        if (st != TSR_OK) break;
        size_t g = lt->index[t] - lt->index[t] % lt->n1;
        /* rot(d, -g)[j] = d[(j - g) mod n], repeated with period n over all slots */
        double mag = 0;
        int finite = 1;
        for (size_t j = 0; j < slots; j++) {
            v[j] = d[(j % n + n - g) % n];
            finite &= isfinite(v[j].re) && isfinite(v[j].im);
            mag = fmax(mag, hypot(v[j].re, v[j].im));
        }
        if (!finite) {
            st = tsr_fail(TSR_ERR_INVALID_ARG,
                          "diagonal %zu of a linear transform has a non-finite value", t);
            break;
        }
        const size_t per = slot_period(v, slots), m = 2 * per;
        double maxc;
        st = encode_period(&fc, v, per, lt->pt_scale, w, c, &maxc);
        if (st != TSR_OK) break;
        if (!isfinite(maxc) || (maxc > 0 && log2(maxc) >= limit_log2)) {
            st = tsr_fail(TSR_ERR_SCALE,
                          "a diagonal of a linear transform does not fit the modulus: a "
                          "coefficient needs %.1f bits but level %d holds %.1f (values up to "
                          "%.3g at scale 2^%.1f); use smaller diagonals or a higher level",
                          log2(maxc) + 1, level, limit_log2 + 1, mag, log2(lt->pt_scale));
            break;
        }
        lt->pt_mag[t] = mag;
        lt->coef_max = fmax(lt->coef_max, maxc);
        lt->coef_off[t + 1] = lt->coef_off[t];
        if (store == CIRCUITS_DIAGS_ON_THE_FLY ||
            (store == CIRCUITS_DIAGS_SUBRING && CIRCUITS_SUBRING_MIN_RATIO * per <= slots)) {
            st = coef_append(lt, &cap, lt->coef_off[t], c, m);
            lt->coef_off[t + 1] += m;
            lt->n_fly++;
            continue;
        }
        uint64_t *dst = lt->pt[t] = tsr_alloc(limbs * N * sizeof *dst);
        if (!dst) {
            st = tsr_fail(TSR_ERR_NOMEM,
                          "out of memory for a linear transform's diagonal (%zu MiB over Q_l u P)",
                          limbs * N * sizeof *dst >> 20);
            break;
        }
#pragma omp parallel for schedule(static) if (limbs > 1 && N >= 2048)
        for (int i = 0; i < (int)limbs; i++) coef_limb(NULL, c, m, qp, (size_t)i, dst + i * N);
    }
    if (st == TSR_OK && lt->n_fly) {
        /* trim the geometric growth's slack (up to as much again as the coefficients) */
        double *fit = realloc(lt->coef, lt->coef_off[n_diags] * sizeof *fit);
        if (fit) lt->coef = fit;
        coef_to_int(lt);
    }
done:
    fft_cache_free(&fc);
    free(d);
    free(v);
    free(w);
    free(c);
    if (st != TSR_OK) circuits_bsgs_free(lt);
    return st;
}

/*
 * The N coefficients of a stored diagonal from its limbs 0 and 1 (NTT form over q_0, q_1):
 * both inverse transformed (into w0, w1), then c = x_0 + q_0 ((x_1 - x_0) q_0^-1 mod q_1),
 * centred mod q_0 q_1: exact for |c| < q_0 q_1 / 2. Written as int64 to ci, or (ci NULL) as
 * doubles to cd, exact too: the coefficients were rounded doubles.
 */
static void coef_from_limbs(const tsr_rns_basis *qp, const uint64_t *pt, size_t N, int64_t *ci,
                            double *cd, uint64_t *w0, uint64_t *w1) {
    const tsr_modulus *m1 = &qp->mod[1];
    const uint64_t q0 = qp->mod[0].q, q1 = m1->q, inv = tsr_modq_inv(q0 % q1, q1);
    const tsr_u128 M = (tsr_u128)q0 * q1;
    memcpy(w0, pt, N * sizeof *w0);
    tsr_ntt_inverse(qp->ntt[0], w0);
    memcpy(w1, pt + N, N * sizeof *w1);
    tsr_ntt_inverse(qp->ntt[1], w1);
    for (size_t k = 0; k < N; k++) {
        const uint64_t x0 = w0[k], d = tsr_modq_sub(w1[k], x0 % q1, q1);
        const tsr_u128 v = x0 + (tsr_u128)q0 * tsr_modq_mul(m1, d, inv);
        const int neg = v > M / 2;
        const tsr_u128 a = neg ? M - v : v;
        if (ci)
            ci[k] = neg ? -(int64_t)(uint64_t)a : (int64_t)(uint64_t)a;
        else
            cd[k] = neg ? -(double)a : (double)a;
    }
}

tsr_status circuits_bsgs_limit(circuits_bsgs *lt, const tsr_ckks_params *p, uint64_t budget) {
    const size_t N = p->n, limbs = (size_t)lt->limbs;
    size_t stored = 0;
    for (size_t t = 0; t < lt->n_diags; t++) stored += lt->pt[t] != NULL;
    if (!stored || lt->pt_limbs < limbs) return TSR_OK; /* nothing stored, or cut already */
    const uint64_t per_limb = (uint64_t)stored * N * sizeof(uint64_t);
    const size_t keep = budget / per_limb < limbs ? (size_t)(budget / per_limb) : limbs;
    const tsr_rns_basis *qp = p->qlp[lt->level];
    /* the coefficients must come back exactly from two limbs (always at the usual scales) */
    if (keep == limbs || !(lt->coef_max < (double)qp->mod[0].q * (double)qp->mod[1].q / 4))
        return TSR_OK;
    /* every diagonal's coefficients in one new array (the stored ones get N words each): int64
     * as before when every |c| < 2^62, else doubles (as on the fly, coef_to_int) */
    const int as_int = lt->coef_max < 0x1p62 && (lt->n_fly == 0 || lt->coef_i);
    const size_t old_words = lt->coef_off[lt->n_diags], words = old_words + stored * N;
    int64_t *ci = as_int ? malloc(words * sizeof *ci) : NULL;
    double *cd = as_int ? NULL : malloc(words * sizeof *cd);
    size_t *off = malloc((lt->n_diags + 1) * sizeof *off);
    uint64_t *w = tsr_alloc(2 * N * sizeof *w);
    uint64_t **cut = calloc(stored, sizeof *cut);
    tsr_status st = (ci || cd) && off && w && cut
                        ? TSR_OK
                        : tsr_fail(TSR_ERR_NOMEM, "out of memory for a transform's coefficients");
    for (size_t t = 0, s = 0; st == TSR_OK && t < lt->n_diags; t++)
        if (lt->pt[t] && keep && !(cut[s++] = tsr_alloc(keep * N * sizeof(uint64_t))))
            st = tsr_fail(TSR_ERR_NOMEM, "out of memory for a transform's diagonals");
    if (st != TSR_OK) {
        for (size_t s = 0; cut && s < stored; s++) tsr_free(cut[s]);
        free(ci);
        free(cd);
        free(off);
        tsr_free(w);
        free(cut);
        return st;
    }
    off[0] = 0;
    for (size_t t = 0, s = 0; t < lt->n_diags; t++) {
        if (lt->pt[t]) {
            coef_from_limbs(qp, lt->pt[t], N, ci ? ci + off[t] : NULL, cd ? cd + off[t] : NULL, w,
                            w + N);
            off[t + 1] = off[t] + N;
            if (keep) memcpy(cut[s], lt->pt[t], keep * N * sizeof(uint64_t));
            tsr_free(lt->pt[t]);
            lt->pt[t] = cut[s++];
            lt->n_fly += !keep;
            continue;
        }
        const size_t from = lt->coef_off[t], m = lt->coef_off[t + 1] - from;
        for (size_t k = 0; k < m; k++) { /* int64 to double: exact, they were doubles */
            if (ci)
                ci[off[t] + k] = lt->coef_i[from + k];
            else
                cd[off[t] + k] = lt->coef_i ? (double)lt->coef_i[from + k] : lt->coef[from + k];
        }
        off[t + 1] = off[t] + m;
    }
    free(lt->coef_i);
    free(lt->coef);
    free(lt->coef_off);
    lt->coef_i = ci;
    lt->coef = cd;
    lt->coef_off = off;
    lt->pt_limbs = keep;
    tsr_free(w);
    free(cut);
    return TSR_OK;
}

tsr_status circuits_bsgs_check_keys(const tsr_ckks_evaluator *ev, const circuits_bsgs *lt) {
    char list[160];
    size_t len = 0, missing = 0;
    list[0] = '\0';
    for (size_t t = 0; t < lt->n_steps; t++) {
        if (ev->gk && tsr_ckks_galois_keys_has_rotation(ev->gk, lt->steps[t])) continue;
        if (missing < 12 && len < sizeof list) {
            int w =
                snprintf(list + len, sizeof list - len, "%s%d", missing ? ", " : "", lt->steps[t]);
            if (w > 0) len += (size_t)w;
        }
        missing++;
    }
    if (missing == 0) return TSR_OK;
    return tsr_fail(TSR_ERR_KEY_MISSING,
                    "the linear transform needs Galois keys for %zu rotation step(s) the "
                    "evaluator lacks: %s%s; create the keys with the steps of "
                    "tsr_circuits_lt_rotations",
                    missing, list, missing > 12 ? ", ..." : "");
}

/* ---- the transform: evaluation ---------------------------------------------------------- */

/* The baby steps in use: bsteps[0..*nb) in order of first use, slot_of[b] their position. */
static tsr_status list_babies(const circuits_bsgs *lt, int **bsteps, int **slot_of, size_t *nb) {
    *nb = 0;
    *bsteps = malloc(lt->n1 * sizeof **bsteps);
    *slot_of = malloc(lt->n1 * sizeof **slot_of);
    if (!*bsteps || !*slot_of) return tsr_fail(TSR_ERR_NOMEM, "out of memory for the baby steps");
    for (size_t b = 0; b < lt->n1; b++) (*slot_of)[b] = -1;
    for (size_t t = 0; t < lt->n_diags; t++) {
        size_t b = lt->index[t] % lt->n1;
        if ((*slot_of)[b] < 0) {
            (*slot_of)[b] = (int)*nb;
            (*bsteps)[(*nb)++] = (int)b;
        }
    }
    return TSR_OK;
}

static const ckks_galois_entry *rotation_key(const tsr_ckks_evaluator *ev, size_t step) {
    const ckks_galois_entry *e =
        ckks_galois_find(ev->gk, ckks_galois_elt_rotation(ev->params->slots, (long)step));
    TSR_ASSERT(e != NULL); /* the callers check the keys */
    return e;
}

/* Noise of a product of a ciphertext (err, mag) with diagonal t (as tsr_ckks_mul_plain). */
static void product_noise(const circuits_bsgs *lt, size_t t, double err, double mag, double *e_out,
                          double *m_out) {
    *e_out = hypot(mag * lt->pt_err, lt->pt_mag[t] * err) + err * lt->pt_err;
    *m_out = mag * lt->pt_mag[t];
}

/* Words per block of fly_inner_sum's subring path (at most N/2): a group's spread block
 * (FLY_GROUP x 16 KiB) stays in L1/L2 beside the babies' blocks it multiplies. */
enum { FLY_BLOCK = 2048 };

/* The m distinct NTT values of limb i of diagonal d (diag_limb before its spread), into dst. */
static void diag_limb_sub(const circuits_bsgs *lt, size_t d, const tsr_rns_basis *qp, size_t i,
                          uint64_t *dst) {
    const size_t off = lt->coef_off[d], m = lt->coef_off[d + 1] - off;
    coef_residues(lt->coef_i ? lt->coef_i + off : NULL, lt->coef_i ? NULL : lt->coef + off, m,
                  &qp->mod[i], dst);
    tsr_ntt_forward_sub(qp->ntt[i], dst, m);
}

/* Words c .. c + blk of a limb whose N NTT values are val[k] repeated 2^sh times in a row
 * (tsr_ntt_forward_sparse's layout), into out. c and blk are powers-of-two multiples. */
static void spread_block(uint64_t *out, const uint64_t *val, unsigned sh, size_t c, size_t blk) {
    const size_t s = (size_t)1 << sh;
    if (s >= blk) {
        const uint64_t x = val[c >> sh];
        for (size_t j = 0; j < blk; j++) out[j] = x;
        return;
    }
    for (size_t k = c >> sh; k < (c + blk) >> sh; k++) {
        const uint64_t x = val[k];
        uint64_t *o = out + (k << sh) - c;
        for (size_t j = 0; j < s; j++) o[j] = x;
    }
}

/*
 * On the fly: (s0, s1) = sum over diagonals d in [t, t + cnt) of diag_d * baby(d), over
 * Q_l u P, limb by limb, FLY_GROUP diagonals at a time in the thread's scratch (FLY_GROUP + 2
 * limbs of N words per thread). A group of subring diagonals only (each m = 2p <= N/2
 * coefficients, its NTT m distinct values repeated N/m times in a row, as
 * tsr_ntt_forward_sparse writes them) keeps the m values and spreads them block by block
 * (FLY_BLOCK words) just before multiplying, so no spread limb (N words: 512 KiB at N = 2^16)
 * leaves the cache; any other group converts its limbs whole. Exact modular sums, the words of
 * ckks_qp_dot_plain on the stored diagonals: bit-identical either way.
 */
static void fly_inner_sum(const tsr_ckks_params *p, const circuits_bsgs *lt, size_t t, size_t cnt,
                          const uint64_t *baby, const int *slot_of, uint64_t *s0, uint64_t *s1,
                          uint64_t *scratch) {
    const int level = lt->level;
    const size_t N = p->n, ne = (size_t)level + 1 + (size_t)p->k, poly = ne * N;
    const size_t blk = N / 2 < FLY_BLOCK ? N / 2 : FLY_BLOCK;
    const tsr_rns_basis *qp = p->qlp[level];
    /* dynamic, one limb at a time: under a budget (circuits_bsgs_limit) the first pt_limbs
     * limbs are stored and cheap, the rest converted and several times dearer, so static
     * halves left one thread idle (34 limbs, 16 stored: thread 0 had 1 to convert, thread 1
     * 17). Each limb's words do not depend on the thread: bit-identical either way. */
#pragma omp parallel for schedule(dynamic, 1) if (ne > 1 && N >= 2048)
    for (int i = 0; i < (int)ne; i++) {
        uint64_t *buf = scratch + (size_t)tsr_thread_index() * (FLY_GROUP + 2) * N;
        uint64_t *t0 = buf + FLY_GROUP * N, *t1 = t0 + N;
        const tsr_modulus *mod = ckks_mod(p, ckks_ext_prime(p, level, i));
        const size_t off = (size_t)i * N;
        const uint64_t *x[FLY_GROUP], *y0[FLY_GROUP], *y1[FLY_GROUP];
        unsigned sh[FLY_GROUP]; /* subring path: diagonal v's values repeat 2^sh[v] times */
        for (size_t v0 = 0; v0 < cnt; v0 += FLY_GROUP) {
            const size_t gc = cnt - v0 < FLY_GROUP ? cnt - v0 : FLY_GROUP;
            int sub = 1;
            for (size_t v = 0; v < gc && sub; v++) {
                const size_t d = t + v0 + v;
                sub = !(lt->pt[d] && (size_t)i < lt->pt_limbs) &&
                      lt->coef_off[d + 1] - lt->coef_off[d] <= N / 2;
            }
            for (size_t v = 0; v < gc; v++) {
                const size_t d = t + v0 + v;
                const uint64_t *bb = baby + 2 * (size_t)slot_of[lt->index[d] % lt->n1] * poly;
                if (sub) {
                    /* the m values at buf + v N, the spread block at buf + v N + N/2 */
                    const size_t m = lt->coef_off[d + 1] - lt->coef_off[d];
                    diag_limb_sub(lt, d, qp, (size_t)i, buf + v * N);
                    sh[v] = 0;
                    while (((size_t)m << sh[v]) < N) sh[v]++;
                    x[v] = buf + v * N + N / 2;
                } else if (lt->pt[d] && (size_t)i < lt->pt_limbs) {
                    x[v] = lt->pt[d] + off;
                } else {
                    diag_limb(lt, d, qp, (size_t)i, buf + v * N);
                    x[v] = buf + v * N;
                }
                y0[v] = bb + off;
                y1[v] = bb + poly + off;
            }
            uint64_t *o0 = v0 ? t0 : s0 + off, *o1 = v0 ? t1 : s1 + off;
            if (!sub) {
                tsr_vec_dot2(mod, o0, o1, x, y0, y1, gc, N);
            } else {
                const uint64_t *y0b[FLY_GROUP], *y1b[FLY_GROUP];
                for (size_t c = 0; c < N; c += blk) {
                    for (size_t v = 0; v < gc; v++) {
                        spread_block(buf + v * N + N / 2, buf + v * N, sh[v], c, blk);
                        y0b[v] = y0[v] + c;
                        y1b[v] = y1[v] + c;
                    }
                    tsr_vec_dot2(mod, o0 + c, o1 + c, x, y0b, y1b, gc, blk);
                }
            }
            if (v0) {
                tsr_vec_add(mod, s0 + off, s0 + off, t0, N);
                tsr_vec_add(mod, s1 + off, s1 + off, t1, N);
            }
        }
    }
}

tsr_status circuits_bsgs_apply(tsr_ckks_evaluator *ev, tsr_ckks_ciphertext *out,
                               const tsr_ckks_ciphertext *in, const circuits_bsgs *lt) {
    tsr_ckks_params *p = ev->params;
    const int level = lt->level;
    const size_t N = p->n, ne = (size_t)level + 1 + (size_t)p->k, poly = ne * N;
    TSR_ASSERT(in->level == level && in->size == 2 && lt->n_diags > 0);
    size_t nb = 0;
    int *bsteps = NULL, *slot_of = NULL;
    uint64_t *baby = NULL, *work = NULL, *scratch = NULL; /* scratch: ev's, not freed here */
    const uint64_t **terms = NULL;
    uint64_t *m1 = NULL; /* a giant step's ModDown'ed c1 half, l + 1 limbs */
    tsr_status st = list_babies(lt, &bsteps, &slot_of, &nb);
    if (st != TSR_OK) goto done;
    /* babies: nb QP ciphertexts; work: the inner sum and the accumulator */
    if (nb > SIZE_MAX / sizeof *baby / 2 / poly) {
        st = tsr_fail(TSR_ERR_NOMEM, "a linear transform's %zu baby steps overflow size_t", nb);
        goto done;
    }
    baby = tsr_alloc(nb * 2 * poly * sizeof *baby);
    /* the inner sum and the accumulator (4 polynomials); on the fly also FLY_GROUP + 2 limbs
     * per thread (fly_inner_sum) */
    const int fly = circuits_bsgs_on_the_fly(lt);
    work = tsr_alloc(4 * poly * sizeof *work);
    if (fly) { /* kept in the evaluator (one per thread of the caller, as is ev) */
        const size_t words = (size_t)tsr_thread_max() * (FLY_GROUP + 2) * N;
        if (ev->lt_scratch_words < words) {
            tsr_free(ev->lt_scratch);
            ev->lt_scratch = tsr_alloc(words * sizeof *ev->lt_scratch);
            ev->lt_scratch_words = ev->lt_scratch ? words : 0;
        }
        scratch = ev->lt_scratch;
    }
    terms = malloc(3 * (nb ? nb : 1) * sizeof *terms);
    if (!baby || !work || !terms || (fly && !scratch)) {
        st = tsr_fail(TSR_ERR_NOMEM,
                      "out of memory for the baby steps of a linear transform (%zu x %zu MiB)", nb,
                      2 * poly * sizeof(uint64_t) >> 20);
        goto done;
    }
    m1 = tsr_alloc(((size_t)level + 1) * N * sizeof *m1);
    if (!m1) {
        st = tsr_fail(TSR_ERR_NOMEM, "out of memory for a linear transform's giant steps");
        goto done;
    }
    uint64_t *inner0 = work, *inner1 = work + poly, *acc0 = work + 2 * poly,
             *acc1 = work + 3 * poly;
    const uint64_t *c0 = ckks_ct_poly(in, 0), *c1 = ckks_ct_poly(in, 1);
    const double ks_err = ckks_noise_keyswitch(p, level, in->scale);

    /* Phase 1: the babies over Q_l u P, one decomposition. */
    size_t keys = 0;
    for (size_t k = 0; k < nb; k++) keys += bsteps[k] != 0;
    int decomposed = 0;
    for (size_t k = 0; k < nb && st == TSR_OK; k++) {
        uint64_t *u0 = baby + 2 * k * poly, *u1 = u0 + poly;
        if (bsteps[k] == 0) {
            st = ckks_qp_set_lifted(ev, level, c0, c1, u0, u1);
            continue;
        }
        const ckks_galois_entry *e = rotation_key(ev, (size_t)bsteps[k]);
        if (!decomposed) {
            st = ckks_ks_decompose(ev, level, c1);
            if (st != TSR_OK) break;
            if (keys > 1) ckks_ks_finish_digits(ev);
            decomposed = 1;
        }
        st = ckks_ks_apply_qp(ev, &e->key, e->perm, NULL, c0, u0, u1); /* + P phi_b(c0) */
    }

    /* Phase 2: per giant step (runs of equal index / n1 in the sorted list). */
    int have_acc = 0;
    double acc_err = 0, acc_mag = 0;
    const double mid_scale = in->scale * lt->pt_scale;
    for (size_t t = 0; t < lt->n_diags && st == TSR_OK;) {
        const size_t g = lt->index[t] / lt->n1;
        size_t u = t;
        double err = 0, mag = 0;
        for (; u < lt->n_diags && lt->index[u] / lt->n1 == g; u++) {
            const size_t b = lt->index[u] % lt->n1;
            double e, m;
            product_noise(lt, u, b ? hypot(in->err, ks_err) : in->err, in->mag, &e, &m);
            err = hypot(err, e);
            mag += m;
        }
        const size_t cnt = u - t;
        /* the inner sum: sum_u pt_u * baby_u (both polynomials) */
        uint64_t *s0 = g == 0 && !have_acc ? acc0 : inner0,
                 *s1 = g == 0 && !have_acc ? acc1 : inner1;
        if (fly) {
            fly_inner_sum(p, lt, t, cnt, baby, slot_of, s0, s1, scratch);
        } else {
            for (size_t v = 0; v < cnt; v++) {
                const uint64_t *bb = baby + 2 * (size_t)slot_of[lt->index[t + v] % lt->n1] * poly;
                terms[v] = lt->pt[t + v];
                terms[nb + v] = bb;
                terms[2 * nb + v] = bb + poly;
            }
            st = ckks_qp_dot_plain(ev, level, s0, s1, terms, terms + nb, terms + 2 * nb, cnt);
        }
        if (st != TSR_OK) break;
        if (g != 0) {
            /* ModDown of the c1 half only, then the giant rotation's key switch over Q_l u P
             * with the c0 half added as it is, still over Q_l u P: phi_g(inner0) + the
             * inner products (as Lattigo's BSGS; a ModDown of inner0 and a lift of it by P
             * would only add a rounding) */
            const ckks_galois_entry *e = rotation_key(ev, g * lt->n1);
            st = ckks_qp_moddown1(ev, level, inner1, m1);
            if (st == TSR_OK) st = ckks_ks_decompose(ev, level, m1);
            if (st != TSR_OK) break;
            s0 = have_acc ? inner0 : acc0;
            s1 = have_acc ? inner1 : acc1;
            st = ckks_ks_apply_qp(ev, &e->key, e->perm, inner0, NULL, s0, s1);
            err = hypot(err, ckks_noise_keyswitch(p, level, mid_scale));
        }
        if (st == TSR_OK && have_acc) ckks_qp_add(ev, level, acc0, acc1, s0, s1);
        have_acc = 1;
        acc_err = hypot(acc_err, err);
        acc_mag += mag;
        t = u;
    }

    /* Phase 3: one ModDown straight into out, one rescale of out in place onto Delta_{l-1}
     * (in is not read after phase 1: out may be in; no copy of a whole ciphertext on one
     * thread, as a ModDown into a scratch ciphertext and a rescale from it into out made). */
    if (st == TSR_OK) st = ckks_ct_reserve(out, level, 2);
    if (st == TSR_OK)
        st = ckks_qp_moddown(ev, level, acc0, acc1, ckks_ct_poly(out, 0), ckks_ct_poly(out, 1));
    if (st == TSR_OK) {
        out->scale = mid_scale;
        out->err = acc_err;
        out->mag = acc_mag;
        out->seeded = 0;
        st = tsr_ckks_rescale(ev, out, out);
    }
done:
    free(bsteps);
    free(slot_of);
    tsr_free(baby);
    tsr_free(work);
    free(terms);
    tsr_free(m1);
    return st;
}

tsr_status circuits_bsgs_apply_ref(tsr_ckks_evaluator *ev, tsr_ckks_ciphertext *out,
                                   const tsr_ckks_ciphertext *in, const circuits_bsgs *lt) {
    tsr_ckks_params *p = ev->params;
    const size_t N = p->n, poly = ((size_t)lt->level + 1 + (size_t)p->k) * N;
    size_t nb = 0;
    int *bsteps = NULL, *slot_of = NULL;
    tsr_ckks_ciphertext **baby = NULL;
    tsr_ckks_ciphertext *inner = NULL, *acc = NULL, *tmp = NULL;
    tsr_ckks_plaintext *pt = NULL;
    tsr_status st = list_babies(lt, &bsteps, &slot_of, &nb);
    if (st == TSR_OK && !(baby = calloc(nb, sizeof *baby)))
        st = tsr_fail(TSR_ERR_NOMEM, "out of memory for the baby steps");
    for (size_t t = 0; t < nb && st == TSR_OK; t++) st = tsr_ckks_ciphertext_create(&baby[t], p);
    if (st == TSR_OK) st = tsr_ckks_rotate_hoisted(ev, baby, in, bsteps, nb);
    if (st == TSR_OK) st = tsr_ckks_ciphertext_create(&inner, p);
    if (st == TSR_OK) st = tsr_ckks_ciphertext_create(&acc, p);
    if (st == TSR_OK) st = tsr_ckks_ciphertext_create(&tmp, p);
    if (st == TSR_OK) st = tsr_ckks_plaintext_create(&pt, p);
    if (st == TSR_OK) st = ckks_pt_reserve(pt, lt->level);
    uint64_t *qp = circuits_bsgs_on_the_fly(lt) ? tsr_alloc(poly * sizeof *qp) : NULL;
    if (st == TSR_OK && circuits_bsgs_on_the_fly(lt) && !qp)
        st = tsr_fail(TSR_ERR_NOMEM, "out of memory");
    int have_acc = 0;
    for (size_t t = 0; t < lt->n_diags && st == TSR_OK;) {
        size_t g = lt->index[t] / lt->n1, u = t;
        for (; u < lt->n_diags && lt->index[u] / lt->n1 == g && st == TSR_OK; u++) {
            const tsr_ckks_ciphertext *v = baby[slot_of[lt->index[u] % lt->n1]];
            /* the diagonal's Q_l limbs */
            const uint64_t *src = qp;
            if (lt->pt[u] && lt->pt_limbs == (size_t)lt->limbs)
                src = lt->pt[u];
            else
                diag_to_qp(p, lt, u, qp);
            memcpy(pt->data, src, ((size_t)lt->level + 1) * N * sizeof(uint64_t));
            pt->level = lt->level;
            pt->scale = lt->pt_scale;
            pt->err = lt->pt_err;
            pt->mag = lt->pt_mag[u];
            st = tsr_ckks_mul_plain(ev, u == t ? inner : tmp, v, pt);
            if (st == TSR_OK && u != t) st = tsr_ckks_add(ev, inner, inner, tmp);
        }
        if (st == TSR_OK && g != 0) st = tsr_ckks_rotate(ev, inner, inner, (int)(g * lt->n1));
        if (st == TSR_OK)
            st =
                have_acc ? tsr_ckks_add(ev, acc, acc, inner) : tsr_ckks_ciphertext_copy(acc, inner);
        have_acc = 1;
        t = u;
    }
    if (st == TSR_OK) st = tsr_ckks_rescale(ev, out, acc);
    if (baby)
        for (size_t t = 0; t < nb; t++) tsr_ckks_ciphertext_free(baby[t]);
    free(baby);
    free(bsteps);
    free(slot_of);
    tsr_ckks_ciphertext_free(inner);
    tsr_ckks_ciphertext_free(acc);
    tsr_ckks_ciphertext_free(tmp);
    tsr_ckks_plaintext_free(pt);
    tsr_free(qp);
    return st;
}

/* ---- tsr_circuits_lt: real diagonals, period the slot count ------------------------------ */

void tsr_circuits_lt_free(tsr_circuits_lt *lt) {
    if (!lt) return;
    circuits_bsgs_free(&lt->core);
    tsr_ckks_params_free(lt->p);
    free(lt);
}

/* Sorted diagonal indices in [0, slots) with perm[t] = the caller's diagonal at sorted t. */
static tsr_status sort_indices(size_t *sorted, const int *index, size_t n, size_t slots,
                               size_t *perm) {
    size_t *key = malloc(n * 2 * sizeof *key);
    if (!key) return tsr_fail(TSR_ERR_NOMEM, "out of memory for the diagonal indices");
    for (size_t t = 0; t < n; t++) {
        long r = (long)index[t] % (long)slots;
        if (r < 0) r += (long)slots;
        key[2 * t] = (size_t)r;
        key[2 * t + 1] = t;
    }
    /* sort pairs by index (pairs compare by their first member) */
    qsort(key, n, 2 * sizeof *key, cmp_size);
    for (size_t t = 0; t < n; t++) {
        sorted[t] = key[2 * t];
        perm[t] = key[2 * t + 1];
        if (t > 0 && sorted[t] == sorted[t - 1]) {
            tsr_status st = tsr_fail(TSR_ERR_INVALID_ARG,
                                     "diagonals %zu and %zu have the same index modulo %zu (%zu)",
                                     perm[t - 1], perm[t], slots, sorted[t]);
            free(key);
            return st;
        }
    }
    free(key);
    return TSR_OK;
}

typedef struct real_diags {
    const double *const *diags; /* the caller's */
    const size_t *perm;         /* sorted position -> the caller's diagonal */
    size_t slots;
} real_diags;

static tsr_status real_diag(void *ctx, size_t t, ckks_cplx *out) {
    const real_diags *r = ctx;
    const double *d = r->diags[r->perm[t]];
    for (size_t j = 0; j < r->slots; j++) {
        out[j].re = d[j];
        out[j].im = 0;
    }
    return TSR_OK;
}

tsr_status tsr_circuits_lt_create(tsr_circuits_lt **out, tsr_ckks_encoder *enc, tsr_ckks_params *p,
                                  const int *index, const double *const *diags, size_t n_diags,
                                  size_t n1, int level) {
    TSR_REQUIRE(out && enc && p, "tsr_circuits_lt_create: NULL argument");
    *out = NULL;
    if (n_diags == 0) return tsr_fail(TSR_ERR_INVALID_ARG, "a linear transform needs a diagonal");
    TSR_REQUIRE(index && diags, "tsr_circuits_lt_create: NULL diagonals");
    size_t slots = tsr_ckks_params_slots(p);
    if (n_diags > slots)
        return tsr_fail(TSR_ERR_INVALID_ARG, "%zu diagonals but only %zu slots", n_diags, slots);
    if (n1 != 0 && (!is_pow2(n1) || n1 > slots))
        return tsr_fail(TSR_ERR_INVALID_ARG,
                        "the baby-step count %zu is not a power of two <= %zu slots", n1, slots);
    int top = tsr_ckks_params_max_level(p);
    if (level < 1 || level > top)
        return tsr_fail(TSR_ERR_LEVEL,
                        "a linear transform uses one level: the input level must be in 1..%d "
                        "(got %d)",
                        top, level);
    for (size_t t = 0; t < n_diags; t++) {
        TSR_REQUIRE(diags[t], "tsr_circuits_lt_create: NULL diagonal");
        for (size_t j = 0; j < slots; j++)
            if (!isfinite(diags[t][j]))
                return tsr_fail(TSR_ERR_INVALID_ARG, "diagonal %zu has a non-finite value at %zu",
                                t, j);
    }
    tsr_circuits_lt *lt = calloc(1, sizeof *lt);
    size_t *perm = malloc(n_diags * sizeof *perm), *sorted = malloc(n_diags * sizeof *sorted);
    tsr_status st = TSR_OK;
    if (!lt || !perm || !sorted) {
        st = tsr_fail(TSR_ERR_NOMEM, "out of memory for a linear transform");
        goto done;
    }
    lt->p = ckks_params_ref(p);
    st = sort_indices(sorted, index, n_diags, slots, perm);
    if (st == TSR_OK) {
        real_diags ctx = { diags, perm, slots };
        st = circuits_bsgs_create(&lt->core, enc, p, sorted, n_diags, slots, n1, real_diag, &ctx,
                                  level, tsr_ckks_params_scale(p, level));
    }
done:
    free(perm);
    free(sorted);
    if (st != TSR_OK) {
        tsr_circuits_lt_free(lt);
        return st;
    }
    *out = lt;
    return TSR_OK;
}

size_t tsr_circuits_lt_rotations(const tsr_circuits_lt *lt, int *steps, size_t cap) {
    TSR_REQUIRE(lt && (steps || cap == 0), "tsr_circuits_lt_rotations: NULL argument");
    for (size_t t = 0; t < lt->core.n_steps && t < cap; t++) steps[t] = lt->core.steps[t];
    return lt->core.n_steps;
}

size_t tsr_circuits_lt_baby_steps(const tsr_circuits_lt *lt) {
    TSR_REQUIRE(lt, "tsr_circuits_lt_baby_steps: NULL transform");
    return lt->core.n1;
}

tsr_status tsr_circuits_lt_apply(tsr_ckks_evaluator *ev, tsr_ckks_ciphertext *out,
                                 const tsr_ckks_ciphertext *in, const tsr_circuits_lt *lt) {
    TSR_REQUIRE(ev && out && in && lt, "tsr_circuits_lt_apply: NULL argument");
    int level;
    TSR_TRY(circuits_check_input(ev, out, in, &level));
    tsr_ckks_params *p = ev->params;
    if (lt->p != p)
        return tsr_fail(TSR_ERR_MISMATCH, "the transform and the evaluator belong to different "
                                          "parameter sets");
    if (level != lt->core.level)
        return tsr_fail(TSR_ERR_LEVEL,
                        "the transform was prepared for inputs at level %d but the ciphertext is "
                        "at level %d: prepare it for level %d or bring the input to level %d",
                        lt->core.level, level, level, lt->core.level);
    TSR_TRY(circuits_bsgs_check_keys(ev, &lt->core));
    TSR_TRY(circuits_bsgs_apply(ev, out, in, &lt->core));
    double want = tsr_ckks_params_scale(p, level - 1);
    if (fabs(tsr_ckks_ciphertext_scale(out) - want) > CKKS_SCALE_TOL * want)
        return tsr_fail(TSR_ERR_INTERNAL, "linear transform: the output scale is off the "
                                          "canonical one (a bug in Tessera)");
    return tsr_ckks_ciphertext_set_scale(out, want);
}
