/*
 * ckks/params.c - CKKS parameter sets: named presets, validation of custom
 * chains, the 128-bit security table, prime selection, canonical scales,
 * the parameter fingerprint and all precomputed tables.
 */
#include "ckks/ckks_internal.h"
#include "core/alloc.h"
#include "core/error.h"
#include "tessera/core.h"
#include "ring/prime.h"

#include <math.h>
#include <sodium.h>
#include <stdio.h>
#include <string.h>

/* ---- security ---------------------------------------------------------------
 * Largest log2(QP) for 128-bit classical security with a uniform ternary
 * secret and error sigma = 3.2:
 *   N <= 32768: M. Albrecht et al., "Homomorphic Encryption Security
 *   Standard", HomomorphicEncryption.org, Nov 2018 (Table 1, "uniform
 *   ternary", 128 bits; the same values SEAL's hestdparms.h uses).
 *   N = 65536: 1772, the lattice-estimator value used by OpenFHE
 *   (src/core/lib/lattice/stdlatticeparms.cpp, HEStd_ternary,
 *   HEStd_128_classic); the 2018 standard stops at 32768.
 *   N = 131072: no published estimate we rely on -> no bound (insecure flag).
 * Fixed-Hamming-weight secrets are covered only when h >= 2N/3 (the
 * expected weight of a uniform ternary secret); sparser secrets are weaker
 * than the table assumes and need the insecure flag. */
static const struct {
    unsigned log_n;
    double max_log_qp;
} security_table[] = {
    { 10, 27 }, { 11, 54 }, { 12, 109 }, { 13, 218 }, { 14, 438 }, { 15, 881 }, { 16, 1772 },
};

double tsr_ckks_security_bound(unsigned log_n, tsr_ckks_secret_dist secret,
                               unsigned hamming_weight) {
    if (secret == TSR_CKKS_SECRET_FIXED_HW) {
        uint64_t n = (uint64_t)1 << (log_n < 63 ? log_n : 0);
        if ((uint64_t)hamming_weight * 3 < 2 * n) return 0;
    } else if (secret != TSR_CKKS_SECRET_TERNARY) {
        return 0;
    }
    for (size_t i = 0; i < sizeof security_table / sizeof security_table[0]; i++)
        if (security_table[i].log_n == log_n) return security_table[i].max_log_qp;
    return 0;
}

/* ---- presets ---------------------------------------------------------------
 * All 128-bit secure. P covers the largest digit, so key switching adds only
 * rounding-size noise. n13-l3 .. n16-l35: chain primes other than q_0 are
 * ~40 bits (scale 2^40), q_0 and the special primes are below 2^50, so the
 * AVX-512 IFMA kernels (Montgomery, q < 2^50) apply to every limb. The
 * bootstrapping presets have 60-bit levels; n16-boot and n16-boot-d4 also have
 * a 61-bit q_0 and 61-bit special primes, n16-boot-ifma keeps q_0 and P below
 * 2^50. On limbs above 2^50 the IFMA family runs the AVX-512F NTTs and
 * element-wise kernels, and IFMA only in its inner products and conversion
 * rows (ring/kernels_ifma.c). */
typedef struct preset {
    const char *name;
    const char *desc;
    tsr_ckks_param_spec spec;
} preset;

/* low, low_bits: a mixed chain's low_levels and low_scale_bits (0, 0: uniform) */
#define PRESET(nm, ds, logn, q0, s, lv, k, kb, dn, low, low_bits)                                  \
    {                                                                                              \
        nm, ds, {                                                                                  \
            .log_n = logn, .first_prime_bits = q0, .scale_bits = s, .levels = lv,                  \
            .special_primes = k, .special_prime_bits = kb, .dnum = dn,                             \
            .secret = TSR_CKKS_SECRET_TERNARY, .hamming_weight = 0, .flags = 0, .low_levels = low, \
            .low_scale_bits = low_bits                                                             \
        }                                                                                          \
    }

static const preset presets[] = {
    PRESET("n13-l3", "N=2^13, 3 levels, scale 2^40, dnum 4: fast tests and the demo", 13, 45, 40, 3,
           1, 50, 4, 0, 0),
    PRESET("n14-l7", "N=2^14, 7 levels, scale 2^40, dnum 4", 14, 50, 40, 7, 2, 50, 4, 0, 0),
    PRESET("n15-l14", "N=2^15, 14 levels (15 limbs), scale 2^40, dnum 3", 15, 50, 40, 14, 5, 50, 3,
           0, 0),
    PRESET("n16-l21", "N=2^16, 21 levels (22 limbs), scale 2^40, dnum 3", 16, 50, 40, 21, 7, 50, 3,
           0, 0),
    PRESET("n16-l35", "N=2^16, 35 levels (36 limbs), scale 2^40, dnum 6", 16, 50, 40, 35, 5, 50, 6,
           0, 0),
    /* bench/bench_boot.c's set: CoeffsToSlots 3 + EvalMod 8 + SlotsToCoeffs 3 levels, 10 left */
    PRESET("n16-boot",
           "N=2^16, 24 levels of 60 bits (25 limbs), 4 x 61-bit special primes, dnum 7: "
           "bootstrapping (14 levels) with 10 left at 2^60",
           16, 61, 60, 24, 4, 61, 0, 0, 0),
    /* the same bootstrapping levels on a mixed chain: the 10 network levels at 40 bits free
     * 200 bits of Q for 3 more special primes, so dnum 4 (log2 QP ~ 1728 of 1772) */
    PRESET("n16-boot-d4",
           "N=2^16, q_0 61 bits, 10 levels of 40 bits under 14 of 60 (25 limbs), 7 x 61-bit "
           "special primes, dnum 4: bootstrapping (14 levels) with 10 left at 2^40",
           16, 61, 60, 24, 7, 61, 4, 10, 40),
    /* n16-boot-d4 with q_0 and P below 2^50, where the AVX-512 IFMA kernels apply: 9 special
     * primes of 49 bits (P = 441 bits covers the 420-bit digit of seven 60-bit primes), so 20
     * of the 34 limbs are IFMA limbs instead of 10 of 32 (log2 QP ~ 1730 of 1772) */
    PRESET("n16-boot-ifma",
           "N=2^16, q_0 50 bits, 10 levels of 40 bits under 14 of 60 (25 limbs), 9 x 49-bit "
           "special primes, dnum 4: bootstrapping (14 levels) with 10 left at 2^40, q_0 and P "
           "on the IFMA kernels",
           16, 50, 60, 24, 9, 49, 4, 10, 40),
};
#define N_PRESETS (sizeof presets / sizeof presets[0])

const char *tsr_ckks_preset_name(size_t i) {
    return i < N_PRESETS ? presets[i].name : NULL;
}

const char *tsr_ckks_preset_description(size_t i) {
    return i < N_PRESETS ? presets[i].desc : NULL;
}

tsr_status tsr_ckks_preset_spec(const char *name, tsr_ckks_param_spec *spec) {
    for (size_t i = 0; i < N_PRESETS; i++) {
        if (name && strcmp(name, presets[i].name) == 0) {
            *spec = presets[i].spec;
            return TSR_OK;
        }
    }
    char list[256] = "";
    for (size_t i = 0; i < N_PRESETS; i++) {
        strncat(list, presets[i].name, sizeof list - strlen(list) - 1);
        if (i + 1 < N_PRESETS) strncat(list, ", ", sizeof list - strlen(list) - 1);
    }
    return tsr_fail(TSR_ERR_NOT_FOUND, "unknown CKKS preset '%s': use one of %s",
                    name ? name : "(null)", list);
}

/* ---- validation -------------------------------------------------------------- */

static tsr_status check_spec(const tsr_ckks_param_spec *s) {
    if (s->log_n < TSR_CKKS_MIN_LOG_N || s->log_n > TSR_CKKS_MAX_LOG_N)
        return tsr_fail(TSR_ERR_INVALID_ARG, "log_n = %u is out of range: use %d..%d", s->log_n,
                        TSR_CKKS_MIN_LOG_N, TSR_CKKS_MAX_LOG_N);
    if (s->scale_bits < 20 || s->scale_bits > 60)
        return tsr_fail(TSR_ERR_INVALID_ARG, "scale_bits = %u is out of range: use 20..60",
                        s->scale_bits);
    if (s->levels > TSR_CKKS_MAX_PRIMES - 1)
        return tsr_fail(TSR_ERR_INVALID_ARG, "levels = %u is too many: at most %d", s->levels,
                        TSR_CKKS_MAX_PRIMES - 1);
    if (s->low_levels == 0 && s->low_scale_bits != 0)
        return tsr_fail(TSR_ERR_INVALID_ARG,
                        "low_scale_bits = %u without low_levels: set both (a mixed chain) or "
                        "neither (a uniform chain)",
                        s->low_scale_bits);
    if (s->low_levels != 0) {
        if (s->low_levels >= s->levels)
            return tsr_fail(TSR_ERR_INVALID_ARG,
                            "low_levels = %u must be below levels (%u): a mixed chain keeps at "
                            "least one level at scale_bits above its low levels",
                            s->low_levels, s->levels);
        if (s->low_scale_bits < 20 || s->low_scale_bits > 60)
            return tsr_fail(TSR_ERR_INVALID_ARG,
                            "low_scale_bits = %u is out of range: use 20..60 with low_levels",
                            s->low_scale_bits);
    }
    /* the scale of level 0 follows the low scale on a mixed chain */
    unsigned bottom = s->low_levels ? s->low_scale_bits : s->scale_bits;
    if (s->first_prime_bits <= bottom || s->first_prime_bits > 61)
        return tsr_fail(TSR_ERR_INVALID_ARG,
                        "first_prime_bits = %u must exceed %s (%u) and be at most 61: "
                        "q_0 must hold the scaled message at level 0",
                        s->first_prime_bits, s->low_levels ? "low_scale_bits" : "scale_bits",
                        bottom);
    if (s->special_primes < 1 || s->special_primes > TSR_CKKS_MAX_SPECIAL_PRIMES)
        return tsr_fail(TSR_ERR_INVALID_ARG,
                        "special_primes = %u is out of range: use 1..%d (key switching needs P)",
                        s->special_primes, TSR_CKKS_MAX_SPECIAL_PRIMES);
    if (s->special_prime_bits < 20 || s->special_prime_bits > 61)
        return tsr_fail(TSR_ERR_INVALID_ARG, "special_prime_bits = %u is out of range: use 20..61",
                        s->special_prime_bits);
    if (s->dnum > s->levels + 1)
        return tsr_fail(TSR_ERR_INVALID_ARG,
                        "dnum = %u exceeds the number of chain primes (%u): use 0 (automatic) or "
                        "1..%u",
                        s->dnum, s->levels + 1, s->levels + 1);
    if (s->secret == TSR_CKKS_SECRET_TERNARY) {
        if (s->hamming_weight != 0)
            return tsr_fail(TSR_ERR_INVALID_ARG,
                            "hamming_weight must be 0 for uniform ternary secrets (use "
                            "TSR_CKKS_SECRET_FIXED_HW to fix the weight)");
    } else if (s->secret == TSR_CKKS_SECRET_FIXED_HW) {
        if (s->hamming_weight < 1 || s->hamming_weight > (1u << s->log_n))
            return tsr_fail(TSR_ERR_INVALID_ARG, "hamming_weight = %u is out of range: use 1..N",
                            s->hamming_weight);
    } else {
        return tsr_fail(TSR_ERR_INVALID_ARG, "unknown secret distribution %d", (int)s->secret);
    }
    if (s->flags & ~TSR_CKKS_ALLOW_INSECURE_PARAMETERS)
        return tsr_fail(TSR_ERR_INVALID_ARG, "unknown parameter flags 0x%x", s->flags);
    return TSR_OK;
}

/* ---- prime selection ----------------------------------------------------------- */

static int in_list(uint64_t v, const uint64_t *list, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (list[i] == v) return 1;
    return 0;
}

/*
 * The prime q = 1 (mod 2N), not in used[], nearest to target (ties: the
 * smaller). Candidates step by 2N outwards from the one nearest to target.
 */
static tsr_status nearest_prime(double target, uint64_t two_n, const uint64_t *used, size_t n_used,
                                uint64_t *out) {
    uint64_t t = (uint64_t)llround(target);
    uint64_t base = t - (t - 1) % two_n; /* largest candidate <= t */
    uint64_t up = base + two_n;
    uint64_t down = base;
    for (int iter = 0; iter < 1 << 22; iter++) {
        /* Try the closer of the two frontier candidates first. */
        int take_down = down > two_n && (t - down <= up - t);
        uint64_t c = take_down ? down : up;
        if (c < ((uint64_t)1 << 62) && tsr_prime_is_prime(c) && !in_list(c, used, n_used)) {
            *out = c;
            return TSR_OK;
        }
        if (take_down)
            down -= two_n;
        else
            up += two_n;
    }
    return tsr_fail(TSR_ERR_INVALID_ARG, "no NTT-friendly prime near 2^%.1f", log2(target));
}

static tsr_status choose_primes(tsr_ckks_params *p) {
    const tsr_ckks_param_spec *s = &p->spec;
    uint64_t two_n = 2 * (uint64_t)p->n;
    uint64_t used[CKKS_MAX_ALL];
    size_t n_used = 0;
    /* Special primes: the largest below 2^special_prime_bits. */
    tsr_status st = tsr_prime_generate((int)s->special_prime_bits, p->n, (size_t)p->k, NULL, 0,
                                       p->primes + p->L + 1);
    if (st != TSR_OK)
        return tsr_fail_context(st, "choosing %d special primes of %u bits: ", p->k,
                                s->special_prime_bits);
    for (int i = 0; i < p->k; i++) used[n_used++] = p->primes[p->L + 1 + i];
    /* q_0: the largest below 2^first_prime_bits not used yet. */
    st = tsr_prime_generate((int)s->first_prime_bits, p->n, 1, used, n_used, p->primes);
    if (st != TSR_OK) return tsr_fail_context(st, "choosing q_0 of %u bits: ", s->first_prime_bits);
    used[n_used++] = p->primes[0];
    /* q_L .. q_1: each the prime nearest to the canonical scale of its level,
     * so that Delta_{l-1} = Delta_l^2 / q_l stays close to 2^scale_bits. A mixed
     * chain restarts at level low_levels with Delta = 2^low_scale_bits exactly. */
    p->scale[p->L] = ldexp(1.0, (int)s->scale_bits);
    for (int l = p->L; l >= 1; l--) {
        if (s->low_levels && l == (int)s->low_levels)
            p->scale[l] = ldexp(1.0, (int)s->low_scale_bits);
        TSR_TRY(nearest_prime(p->scale[l], two_n, used, n_used, &p->primes[l]));
        used[n_used++] = p->primes[l];
        p->scale[l - 1] = p->scale[l] * (p->scale[l] / (double)p->primes[l]);
    }
    return TSR_OK;
}

/* ---- fingerprint ------------------------------------------------------------------ */

static void put_u32(uint8_t *b, uint32_t v) {
    for (int i = 0; i < 4; i++) b[i] = (uint8_t)(v >> (8 * i));
}
static void put_u64(uint8_t *b, uint64_t v) {
    for (int i = 0; i < 8; i++) b[i] = (uint8_t)(v >> (8 * i));
}

/* BLAKE2b-128 over: tag, log_n, L, k, dnum, scale_bits, secret, h, sigma,
 * the chain primes and the special primes (all little-endian). A mixed chain
 * has encoding version 2 and adds low_levels and low_scale_bits after h; a
 * uniform one keeps version 1, so every existing fingerprint is unchanged. */
static void compute_fingerprint(tsr_ckks_params *p) {
    crypto_generichash_state h;
    uint8_t b[8];
    static const char tag[16] = "TSR-CKKS-PARAMS";
    crypto_generichash_init(&h, NULL, 0, sizeof p->fingerprint);
    crypto_generichash_update(&h, (const uint8_t *)tag, sizeof tag);
    int mixed = p->spec.low_levels != 0;
    const uint32_t fields[] = { mixed ? 2 : 1 /* encoding version */,
                                (uint32_t)p->log_n,
                                (uint32_t)p->L,
                                (uint32_t)p->k,
                                (uint32_t)p->dnum,
                                p->spec.scale_bits,
                                (uint32_t)p->spec.secret,
                                p->spec.hamming_weight,
                                p->spec.low_levels,
                                p->spec.low_scale_bits };
    for (size_t i = 0; i < sizeof fields / sizeof fields[0] - (mixed ? 0 : 2); i++) {
        put_u32(b, fields[i]);
        crypto_generichash_update(&h, b, 4);
    }
    double sigma = CKKS_SIGMA;
    uint64_t sb;
    memcpy(&sb, &sigma, 8);
    put_u64(b, sb);
    crypto_generichash_update(&h, b, 8);
    for (int i = 0; i < p->nall; i++) {
        put_u64(b, p->primes[i]);
        crypto_generichash_update(&h, b, 8);
    }
    crypto_generichash_final(&h, p->fingerprint, sizeof p->fingerprint);
}

/* ---- precomputation --------------------------------------------------------------- */

static tsr_status build_tables(tsr_ckks_params *p) {
    int nq = p->L + 1;
    tsr_status st = tsr_rns_basis_create(p->n, p->primes, (size_t)p->nall, &p->qp);
    if (st != TSR_OK) return tsr_fail_context(st, "building the RNS basis: ");
    size_t idx[TSR_CKKS_MAX_SPECIAL_PRIMES];
    for (int j = 0; j < p->k; j++) idx[j] = (size_t)(nq + j);
    TSR_TRY(tsr_rns_basis_select(p->qp, idx, (size_t)p->k, &p->pb));
    for (int l = 0; l < nq; l++) {
        TSR_TRY(tsr_rns_basis_prefix(p->qp, (size_t)l + 1, &p->q[l]));
        TSR_TRY(tsr_rns_basis_concat(p->q[l], p->pb, &p->qlp[l]));
    }
    TSR_TRY(ckks_fft_init(&p->fft, p->slots));
    /* Rescale constants q_l^-1 mod q_i. */
    p->inv_q = tsr_calloc_array((size_t)nq * nq, sizeof(uint64_t));
    if (!p->inv_q) return tsr_fail(TSR_ERR_NOMEM, "cannot allocate CKKS tables");
    for (int l = 1; l < nq; l++) {
        for (int i = 0; i < l; i++) {
            uint64_t qi = p->primes[i];
            uint64_t v = tsr_modq_inv(p->primes[l] % qi, qi);
            TSR_ASSERT(v != 0);
            p->inv_q[(size_t)l * nq + i] = v;
        }
    }
    /* Key switching: ModUp per (level, digit), ModDown and rescale per level. */
    p->modup = tsr_calloc_array((size_t)nq * p->dnum, sizeof *p->modup);
    if (!p->modup) return tsr_fail(TSR_ERR_NOMEM, "cannot allocate CKKS tables");
    for (int l = 0; l < nq; l++) {
        for (int j = 0; j < ckks_digits_at(p, l); j++) {
            size_t from[TSR_CKKS_MAX_PRIMES], to[CKKS_MAX_ALL], nf = 0, nt = 0;
            int lo = j * p->alpha, hi = lo + p->alpha > l + 1 ? l + 1 : lo + p->alpha;
            for (int t = 0; t < l + 1 + p->k; t++) {
                int pi = ckks_ext_prime(p, l, t);
                if (t >= lo && t < hi)
                    from[nf++] = (size_t)pi;
                else
                    to[nt++] = (size_t)pi;
            }
            tsr_rns_basis *bf = NULL, *bt = NULL;
            st = tsr_rns_basis_select(p->qp, from, nf, &bf);
            if (st == TSR_OK) st = tsr_rns_basis_select(p->qp, to, nt, &bt);
            if (st == TSR_OK) st = tsr_baseconv_create(bf, bt, &p->modup[l * p->dnum + j]);
            tsr_rns_basis_free(bf);
            tsr_rns_basis_free(bt);
            TSR_TRY(st);
        }
        TSR_TRY(tsr_moddown_create(p->q[l], p->pb, &p->moddown[l]));
        if (l >= 1) {
            size_t tail[1 + TSR_CKKS_MAX_SPECIAL_PRIMES];
            tail[0] = (size_t)l;
            for (int j = 0; j < p->k; j++) tail[1 + j] = (size_t)(nq + j);
            tsr_rns_basis *bl = NULL, *blp = NULL;
            st = tsr_rns_basis_select(p->qp, tail, 1, &bl);
            if (st == TSR_OK) st = tsr_moddown_create(p->q[l - 1], bl, &p->rescale[l]);
            if (st == TSR_OK) st = tsr_rns_basis_select(p->qp, tail, (size_t)(1 + p->k), &blp);
            if (st == TSR_OK) st = tsr_moddown_create(p->q[l - 1], blp, &p->moddown_rs[l]);
            tsr_rns_basis_free(bl);
            tsr_rns_basis_free(blp);
            TSR_TRY(st);
        }
    }
    /* P mod q_i and P^-1 mod q_i. */
    for (int i = 0; i < nq; i++) {
        const tsr_modulus *m = ckks_mod(p, i);
        uint64_t pm = 1;
        for (int j = 0; j < p->k; j++) pm = tsr_modq_mul(m, pm, p->primes[nq + j] % m->q);
        p->p_mod[i] = pm;
        p->p_inv[i] = tsr_modq_inv(pm, m->q);
        TSR_ASSERT(p->p_inv[i] != 0);
    }
    return TSR_OK;
}

/* ---- creation ---------------------------------------------------------------------- */

static void params_destroy(tsr_ckks_params *p) {
    if (p->modup)
        for (int i = 0; i < (p->L + 1) * p->dnum; i++) tsr_baseconv_free(p->modup[i]);
    tsr_free(p->modup);
    for (int l = 0; l < TSR_CKKS_MAX_PRIMES; l++) {
        tsr_rns_basis_free(p->q[l]);
        tsr_rns_basis_free(p->qlp[l]);
        tsr_moddown_free(p->moddown[l]);
        tsr_moddown_free(p->rescale[l]);
        tsr_moddown_free(p->moddown_rs[l]);
    }
    tsr_rns_basis_free(p->pb);
    tsr_rns_basis_free(p->qp);
    ckks_fft_free(&p->fft);
    tsr_free(p->inv_q);
    tsr_free(p);
}

/* force: NULL, or {q_0, p_0} to use instead of the chosen primes (levels 0, one special prime:
 * ckks_params_create_q0p0). */
static tsr_status params_create(tsr_ckks_params **out, const tsr_ckks_param_spec *spec,
                                const uint64_t *force) {
    *out = NULL;
    TSR_TRY(tsr_init());
    TSR_TRY(check_spec(spec));
    tsr_ckks_params *p = tsr_calloc(sizeof *p);
    if (!p) return tsr_fail(TSR_ERR_NOMEM, "cannot allocate CKKS parameters");
    p->refs = 1;
    p->spec = *spec;
    p->log_n = (int)spec->log_n;
    p->n = (size_t)1 << spec->log_n;
    p->slots = p->n / 2;
    p->L = (int)spec->levels;
    p->k = (int)spec->special_primes;
    p->nall = p->L + 1 + p->k;
    int nq = p->L + 1;
    p->dnum = spec->dnum ? (int)spec->dnum : (nq + p->k - 1) / p->k;
    p->alpha = (nq + p->dnum - 1) / p->dnum;
    /* A dnum like 5 for 6 primes gives alpha 2 and only 3 digits in use. */
    p->dnum = (nq + p->alpha - 1) / p->alpha;
    p->spec.dnum = (unsigned)p->dnum;

    tsr_status st = choose_primes(p);
    if (st != TSR_OK) goto fail;
    if (force) {
        p->primes[0] = force[0];
        p->primes[1] = force[1];
    }
    p->log_qp = 0;
    for (int i = 0; i < p->nall; i++) {
        p->log2_prime[i] = log2((double)p->primes[i]);
        p->log_qp += p->log2_prime[i];
    }
    /* Key-switching noise is scaled by (digit modulus / P): require P to cover
     * every digit (up to a factor 2), else relinearization would be lossy. */
    double log_p = 0, worst_digit = 0;
    for (int i = nq; i < p->nall; i++) log_p += p->log2_prime[i];
    for (int j = 0; j < p->dnum; j++) {
        double d = 0;
        for (int i = j * p->alpha; i < nq && i < (j + 1) * p->alpha; i++) d += p->log2_prime[i];
        if (d > worst_digit) worst_digit = d;
    }
    if (!force && log_p + 1.0 < worst_digit) {
        st = tsr_fail(TSR_ERR_INVALID_ARG,
                      "the special modulus P (%.1f bits) is smaller than the largest "
                      "key-switching digit (%.1f bits: %d primes per digit with dnum = %d): key "
                      "switching would add about %.0f bits of noise; use more or larger special "
                      "primes, or a larger dnum",
                      log_p, worst_digit, p->alpha, p->dnum, worst_digit - log_p);
        goto fail;
    }
    double bound = tsr_ckks_security_bound(spec->log_n, spec->secret, spec->hamming_weight);
    p->secure = bound > 0 && p->log_qp <= bound;
    if (!p->secure && !(spec->flags & TSR_CKKS_ALLOW_INSECURE_PARAMETERS)) {
        if (bound > 0)
            st = tsr_fail(TSR_ERR_INSECURE,
                          "log2(QP) = %.1f exceeds %.0f, the 128-bit security bound for N = "
                          "2^%u (HomomorphicEncryption.org standard): use fewer or smaller "
                          "primes, a larger N, or TSR_CKKS_ALLOW_INSECURE_PARAMETERS for tests",
                          p->log_qp, bound, spec->log_n);
        else if (spec->secret == TSR_CKKS_SECRET_FIXED_HW)
            st = tsr_fail(TSR_ERR_INSECURE,
                          "secrets of Hamming weight %u < 2N/3 are sparser than the "
                          "HomomorphicEncryption.org table assumes, so 128-bit security is not "
                          "established: use uniform ternary secrets, or "
                          "TSR_CKKS_ALLOW_INSECURE_PARAMETERS with your own estimate",
                          spec->hamming_weight);
        else
            st = tsr_fail(TSR_ERR_INSECURE,
                          "no 128-bit security bound is known for N = 2^%u: use N = 2^10..2^16 "
                          "or TSR_CKKS_ALLOW_INSECURE_PARAMETERS",
                          spec->log_n);
        goto fail;
    }
    compute_fingerprint(p);
    st = build_tables(p);
    if (st != TSR_OK) goto fail;
    *out = p;
    return TSR_OK;
fail:
    params_destroy(p);
    return st;
}

tsr_status tsr_ckks_params_create(tsr_ckks_params **out, const tsr_ckks_param_spec *spec) {
    TSR_REQUIRE(out && spec, "tsr_ckks_params_create: out and spec must not be NULL");
    return params_create(out, spec, NULL);
}

tsr_status ckks_params_create_q0p0(tsr_ckks_params **out, const tsr_ckks_params *p,
                                   unsigned max_log_modulus) {
    TSR_REQUIRE(out && p, "ckks_params_create_q0p0: NULL argument");
    *out = NULL;
    /* p_0: the largest NTT prime below 2^b other than q_0, b = max_log_modulus minus
     * q_0's bit length (so log2(q_0 p_0) < max_log_modulus), at most 61 */
    int q0_bits = 0;
    while (q0_bits < 64 && (p->primes[0] >> q0_bits)) q0_bits++;
    int b = (int)max_log_modulus - q0_bits;
    if (b > 61) b = 61;
    if (b < 20)
        return tsr_fail(TSR_ERR_INVALID_ARG,
                        "a key over q_0 p_0 of at most %u bits leaves %d bits for p_0 beside "
                        "q_0 (%d bits): at least 20 are needed",
                        max_log_modulus, b, q0_bits);
    uint64_t p0;
    TSR_TRY(tsr_prime_generate(b, p->n, 1, p->primes, 1, &p0));
    tsr_ckks_param_spec s = p->spec;
    /* the bottom scale of p's chain keeps check_spec's q_0 > scale rule */
    if (s.low_levels) s.scale_bits = s.low_scale_bits;
    s.levels = 0;
    s.special_primes = 1;
    s.dnum = 0;
    s.low_levels = 0;
    s.low_scale_bits = 0;
    s.special_prime_bits = (unsigned)b;
    const uint64_t force[2] = { p->primes[0], p0 };
    return params_create(out, &s, force);
}

tsr_status tsr_ckks_params_create_preset(tsr_ckks_params **out, const char *name) {
    tsr_ckks_param_spec spec;
    TSR_REQUIRE(out, "tsr_ckks_params_create_preset: out must not be NULL");
    *out = NULL;
    TSR_TRY(tsr_ckks_preset_spec(name, &spec));
    return tsr_ckks_params_create(out, &spec);
}

tsr_ckks_params *ckks_params_ref(tsr_ckks_params *p) {
    __atomic_add_fetch(&p->refs, 1, __ATOMIC_RELAXED);
    return p;
}

void tsr_ckks_params_free(tsr_ckks_params *p) {
    if (!p) return;
    if (__atomic_sub_fetch(&p->refs, 1, __ATOMIC_ACQ_REL) == 0) params_destroy(p);
}

tsr_status ckks_params_check(const tsr_ckks_params *a, const tsr_ckks_params *b, const char *what) {
    if (a == b) return TSR_OK;
    if (a && b && memcmp(a->fingerprint, b->fingerprint, sizeof a->fingerprint) == 0) return TSR_OK;
    return tsr_fail(TSR_ERR_MISMATCH,
                    "%s belongs to other CKKS parameters (fingerprints differ): use objects made "
                    "with the same parameter set",
                    what);
}

/* ---- accessors ------------------------------------------------------------------------ */

void tsr_ckks_params_spec(const tsr_ckks_params *p, tsr_ckks_param_spec *spec) {
    *spec = p->spec;
}
size_t tsr_ckks_params_n(const tsr_ckks_params *p) {
    return p->n;
}
size_t tsr_ckks_params_slots(const tsr_ckks_params *p) {
    return p->slots;
}
int tsr_ckks_params_max_level(const tsr_ckks_params *p) {
    return p->L;
}
double tsr_ckks_params_scale(const tsr_ckks_params *p, int level) {
    TSR_REQUIRE(level >= 0 && level <= p->L, "tsr_ckks_params_scale: level out of range");
    return p->scale[level];
}
uint64_t tsr_ckks_params_prime(const tsr_ckks_params *p, int i) {
    TSR_REQUIRE(i >= 0 && i <= p->L, "tsr_ckks_params_prime: index out of range");
    return p->primes[i];
}
int tsr_ckks_params_special_count(const tsr_ckks_params *p) {
    return p->k;
}
uint64_t tsr_ckks_params_special_prime(const tsr_ckks_params *p, int i) {
    TSR_REQUIRE(i >= 0 && i < p->k, "tsr_ckks_params_special_prime: index out of range");
    return p->primes[p->L + 1 + i];
}
int tsr_ckks_params_dnum(const tsr_ckks_params *p) {
    return p->dnum;
}
double tsr_ckks_params_log_qp(const tsr_ckks_params *p) {
    return p->log_qp;
}
double tsr_ckks_params_log_q(const tsr_ckks_params *p, int level) {
    TSR_REQUIRE(level >= 0 && level <= p->L, "tsr_ckks_params_log_q: level out of range");
    double s = 0;
    for (int i = 0; i <= level; i++) s += p->log2_prime[i];
    return s;
}
int tsr_ckks_params_is_secure(const tsr_ckks_params *p) {
    return p->secure;
}
void tsr_ckks_params_fingerprint(const tsr_ckks_params *p, uint8_t out[16]) {
    memcpy(out, p->fingerprint, sizeof p->fingerprint);
}

void tsr_ckks_params_print(const tsr_ckks_params *p, FILE *fp) {
    double bound = tsr_ckks_security_bound(p->spec.log_n, p->spec.secret, p->spec.hamming_weight);
    fprintf(fp, "CKKS parameters: N = 2^%d (%zu slots), levels = %d, scale = 2^%u\n", p->log_n,
            p->slots, p->L, p->spec.scale_bits);
    fprintf(fp, "  chain: q_0 = %.1f bits", p->log2_prime[0]);
    int low = (int)p->spec.low_levels;
    if (low > 0)
        fprintf(fp, ", q_1..q_%d ~ %.1f bits (scale 2^%u at level %d)", low, p->log2_prime[low],
                p->spec.low_scale_bits, low);
    if (p->L > low + 1)
        fprintf(fp, ", q_%d..q_%d ~ %.1f bits", low + 1, p->L, p->log2_prime[p->L]);
    else if (p->L == low + 1)
        fprintf(fp, ", q_%d ~ %.1f bits", p->L, p->log2_prime[p->L]);
    fprintf(fp, "; special primes: %d x %.1f bits; dnum = %d (%d primes per digit)\n", p->k,
            p->log2_prime[p->L + 1], p->dnum, p->alpha);
    if (bound > 0)
        fprintf(fp, "  log2(QP) = %.1f (128-bit bound %.0f): %s\n", p->log_qp, bound,
                p->secure ? "secure" : "INSECURE");
    else
        fprintf(fp, "  log2(QP) = %.1f (no 128-bit bound known): INSECURE\n", p->log_qp);
    fprintf(fp, "  secret: %s",
            p->spec.secret == TSR_CKKS_SECRET_TERNARY ? "uniform ternary" : "fixed Hamming weight");
    if (p->spec.secret == TSR_CKKS_SECRET_FIXED_HW) fprintf(fp, " h = %u", p->spec.hamming_weight);
    fprintf(fp, "\n");
}
