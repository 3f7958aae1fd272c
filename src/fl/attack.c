/*
 * fl/attack.c - Byzantine attacks (ALIE drift and backdoor clipping, sign
 * flip, Gaussian noise, omniscient large change), the normal quantile and
 * ALIE's z_max. Definitions and references in fl/attack.h.
 */
#include "fl/attack.h"
#include "core/alloc.h"
#include "core/error.h"

#include <float.h>
#include <math.h>
#include <string.h>

#define PAR_MIN_WORK 32768

static const char *const attack_names[TSR_FL_ATTACK_COUNT_] = {
    "none", "alie", "backdoor", "signflip", "gaussian", "omniscient",
};

const char *tsr_fl_attack_name(tsr_fl_attack_kind k) {
    return (unsigned)k < TSR_FL_ATTACK_COUNT_ ? attack_names[k] : "unknown";
}

tsr_status tsr_fl_attack_parse(const char *name, tsr_fl_attack_kind *out) {
    for (int k = 0; k < TSR_FL_ATTACK_COUNT_; k++)
        if (name && strcmp(name, attack_names[k]) == 0) {
            *out = (tsr_fl_attack_kind)k;
            return TSR_OK;
        }
    return tsr_fail(TSR_ERR_INVALID_ARG,
                    "unknown attack '%s'; use one of none, alie, backdoor, signflip, gaussian, "
                    "omniscient",
                    name ? name : "(null)");
}

double tsr_fl_attack_default_scale(tsr_fl_attack_kind k) {
    switch (k) {
    case TSR_FL_ATTACK_SIGNFLIP:
        return 4.0;
    case TSR_FL_ATTACK_GAUSSIAN:
        return 200.0;
    case TSR_FL_ATTACK_OMNISCIENT:
    case TSR_FL_ATTACK_BACKDOOR:
        return 1.0;
    default:
        return 0.0;
    }
}

/* ---- normal distribution ------------------------------------------------- */

double tsr_fl_normal_cdf(double z) {
    return 0.5 * erfc(-z / M_SQRT2);
}

/* Quantile for 0 < p <= 1/2 (z <= 0), where erfc keeps full relative precision. */
static double lower_quantile(double p) {
    double lo = -40.0, hi = 0.0, z = -1.0;
    const double inv_sqrt_2pi = 0.39894228040143267794;
    for (int it = 0; it < 300; it++) {
        double f = tsr_fl_normal_cdf(z) - p;
        if (f == 0) return z;
        if (f < 0)
            lo = z;
        else
            hi = z;
        double pdf = inv_sqrt_2pi * exp(-0.5 * z * z);
        double zn = pdf > 0 ? z - f / pdf : 0.5 * (lo + hi);
        if (!(zn > lo && zn < hi)) zn = 0.5 * (lo + hi); /* Newton left the bracket: bisect */
        if (fabs(zn - z) <= 4 * DBL_EPSILON * fabs(z) + 1e-300) return zn;
        z = zn;
    }
    return z;
}

tsr_status tsr_fl_normal_quantile(double p, double *z) {
    TSR_REQUIRE(z != NULL, "tsr_fl_normal_quantile: z is NULL");
    if (!(p > 0 && p < 1))
        return tsr_fail(TSR_ERR_INVALID_ARG, "normal quantile needs 0 < p < 1, got %g", p);
    *z = p <= 0.5 ? lower_quantile(p) : -lower_quantile(1.0 - p);
    return TSR_OK;
}

tsr_status tsr_fl_alie_zmax(size_t n, size_t m, double *z) {
    TSR_REQUIRE(z != NULL, "tsr_fl_alie_zmax: z is NULL");
    if (m >= n)
        return tsr_fail(TSR_ERR_INVALID_ARG,
                        "ALIE z_max: m=%zu corrupt workers out of n=%zu; need m < n", m, n);
    long s = (long)(n / 2 + 1) - (long)m; /* floor(n/2 + 1) - m supporters */
    if (s <= 0)
        return tsr_fail(TSR_ERR_INVALID_ARG,
                        "ALIE z_max: m=%zu of n=%zu workers are corrupt, a majority: they need no "
                        "honest supporters and z_max is unbounded; give z explicitly",
                        m, n);
    if ((size_t)s >= n)
        return tsr_fail(TSR_ERR_INVALID_ARG,
                        "ALIE z_max: n=%zu is too small (s=%ld supporters needed of %zu)", n, s, n);
    return tsr_fl_normal_quantile((double)((long)n - s) / (double)n, z);
}

/* ---- building blocks ----------------------------------------------------- */

void tsr_fl_mean_std(const float *rows, size_t r, size_t d, float *mu, float *sigma) {
    TSR_REQUIRE(rows && mu && sigma && r >= 1, "tsr_fl_mean_std: bad argument");
    long dl = (long)d;
#pragma omp parallel for schedule(static) if (r * d >= PAR_MIN_WORK)
    for (long j = 0; j < dl; j++) {
        double s = 0;
        for (size_t i = 0; i < r; i++) s += rows[i * d + (size_t)j];
        double mean = s / (double)r, v = 0;
        for (size_t i = 0; i < r; i++) {
            double e = rows[i * d + (size_t)j] - mean;
            v += e * e;
        }
        mu[j] = (float)mean;
        sigma[j] = (float)sqrt(v / (double)r);
    }
}

void tsr_fl_alie_vector(const float *mu, const float *sigma, double z, size_t d, float *out) {
    for (size_t j = 0; j < d; j++) out[j] = (float)((double)mu[j] - z * (double)sigma[j]);
}

void tsr_fl_clip_box(float *v, const float *mu, const float *sigma, double z, size_t d) {
    for (size_t j = 0; j < d; j++) {
        double lo = (double)mu[j] - z * (double)sigma[j];
        double hi = (double)mu[j] + z * (double)sigma[j];
        double x = v[j];
        if (x < lo) x = lo;
        if (x > hi) x = hi;
        if (isnan(x)) x = mu[j]; /* a NaN backdoor coordinate falls back to the mean */
        v[j] = (float)x;
    }
}

/* ---- the attacks --------------------------------------------------------- */

/* out[0..d) = scale * N(0, 1), Box-Muller using both variates of each pair. */
static void fill_normal(tsr_prng *g, float *out, size_t d, double scale) {
    for (size_t j = 0; j < d; j += 2) {
        double u1 = tsr_prng_double(g), u2 = tsr_prng_double(g);
        if (u1 < 0x1.0p-60) u1 = 0x1.0p-60;
        double r = scale * sqrt(-2.0 * log(u1)), sn, cs;
        sincos(6.283185307179586476925 * u2, &sn, &cs);
        out[j] = (float)(r * cs);
        if (j + 1 < d) out[j + 1] = (float)(r * sn);
    }
}

tsr_status tsr_fl_attack_apply(const tsr_fl_attack_params *p, float *grads, size_t n, size_t m,
                               size_t d, const float *backdoor, tsr_prng *rng, double *z_used) {
    TSR_REQUIRE(p && grads, "tsr_fl_attack_apply: NULL argument");
    if (m > n)
        return tsr_fail(TSR_ERR_INVALID_ARG, "attack: m=%zu corrupt workers out of n=%zu", m, n);
    if ((unsigned)p->kind >= TSR_FL_ATTACK_COUNT_)
        return tsr_fail(TSR_ERR_INVALID_ARG, "attack: unknown kind %d", (int)p->kind);
    if (m == 0 || p->kind == TSR_FL_ATTACK_NONE || d == 0) return TSR_OK;
    double scale = p->scale != 0 ? p->scale : tsr_fl_attack_default_scale(p->kind);
    if (!isfinite(scale))
        return tsr_fail(TSR_ERR_INVALID_ARG, "attack %s: scale must be finite",
                        tsr_fl_attack_name(p->kind));

    switch (p->kind) {
    case TSR_FL_ATTACK_ALIE:
    case TSR_FL_ATTACK_BACKDOOR: {
        double z = p->z;
        if (!p->has_z) TSR_TRY(tsr_fl_alie_zmax(n, m, &z));
        if (!isfinite(z) || (p->kind == TSR_FL_ATTACK_BACKDOOR && z < 0))
            return tsr_fail(TSR_ERR_INVALID_ARG, "attack %s: z must be finite%s, got %g",
                            tsr_fl_attack_name(p->kind),
                            p->kind == TSR_FL_ATTACK_BACKDOOR ? " and >= 0" : "", z);
        if (p->kind == TSR_FL_ATTACK_BACKDOOR && !backdoor)
            return tsr_fail(TSR_ERR_INVALID_ARG, "backdoor attack: no backdoor gradient given");
        if (z_used) *z_used = z;
        float *mu = tsr_calloc_array(2 * d, sizeof(float));
        if (!mu) return tsr_fail(TSR_ERR_NOMEM, "attack: cannot allocate 2 x %zu floats", d);
        float *sigma = mu + d;
        tsr_fl_mean_std(grads, m, d, mu, sigma);
        if (p->kind == TSR_FL_ATTACK_ALIE) {
            tsr_fl_alie_vector(mu, sigma, z, d, grads);
        } else {
            /* mu + scale (backdoor - mu), then into the box */
            for (size_t j = 0; j < d; j++)
                grads[j] = (float)((double)mu[j] + scale * ((double)backdoor[j] - (double)mu[j]));
            tsr_fl_clip_box(grads, mu, sigma, z, d);
        }
        for (size_t i = 1; i < m; i++) memcpy(grads + i * d, grads, d * sizeof(float));
        tsr_free(mu);
        return TSR_OK;
    }
    case TSR_FL_ATTACK_SIGNFLIP:
        for (size_t k = 0; k < m * d; k++) grads[k] = (float)(-scale * (double)grads[k]);
        return TSR_OK;
    case TSR_FL_ATTACK_GAUSSIAN: {
        if (!rng) return tsr_fail(TSR_ERR_INVALID_ARG, "gaussian attack: no random stream given");
        /* One stream per corrupt worker, keyed from rng: workers fill in parallel. */
        uint8_t key[TSR_SEED_BYTES];
        tsr_prng_bytes(rng, key, sizeof key);
        long ml = (long)m;
#pragma omp parallel for schedule(static) if (m * d >= PAR_MIN_WORK)
        for (long i = 0; i < ml; i++) {
            tsr_prng g;
            tsr_prng_init(&g, key, (uint64_t)i);
            fill_normal(&g, grads + (size_t)i * d, d, scale);
        }
        tsr_wipe(key, sizeof key);
        return TSR_OK;
    }
    case TSR_FL_ATTACK_OMNISCIENT: {
        if (m == n)
            return tsr_fail(TSR_ERR_INVALID_ARG,
                            "omniscient attack: every worker is corrupt, no honest gradient to "
                            "reverse");
        long dl = (long)d;
#pragma omp parallel for schedule(static) if (n * d >= PAR_MIN_WORK)
        for (long j = 0; j < dl; j++) {
            double s = 0;
            for (size_t i = m; i < n; i++) s += grads[i * d + (size_t)j];
            grads[j] = (float)(-scale * s);
        }
        for (size_t i = 1; i < m; i++) memcpy(grads + i * d, grads, d * sizeof(float));
        return TSR_OK;
    }
    default:
        return tsr_fail(TSR_ERR_INTERNAL, "attack %d not handled", (int)p->kind);
    }
}
