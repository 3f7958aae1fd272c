/*
 * tile/mockup.c - the mockup backend: vectors of plaintext doubles with the
 * CKKS interface. The generic layer (backend.c) tracks levels and scales and
 * refuses what CKKS would; this file does the arithmetic and, optionally,
 * adds CKKS-like noise so that precision problems show up without
 * cryptography. In shape-only mode no values are stored at all: a dry run
 * then costs only the bookkeeping (operation counts, levels, rotation steps).
 *
 * Noise model (all noise Gaussian, "integer units" divided by the vector's
 * scale at that moment; N = 2 * slots is the ring degree, sigma = 3.2,
 * uniform ternary secret with Hamming weight about 2N/3):
 *   fresh encryption  same as rescale: the CKKS core encrypts over Q*P and
 *                     divides by P, which leaves only that rounding (an
 *                     encryption directly over Q would be sigma * N * sqrt(2/3):
 *                     set noise_fresh for that)
 *   rescale           sqrt(N/2 * (1 + 2N/3) / 12)   (rounding tau0 + tau1*s)
 *   key switch        same as rescale (rotations, relinearization)
 *   encoding          sqrt(N / 24)                  (coefficient rounding)
 * Scalar products round the constant to cscale as CKKS does, and adding
 * vectors whose scales differ (within the tolerance) scales the second
 * operand by the scale ratio, exactly as a decryption would see it.
 */
#include "tile/backend.h"

#include "core/alloc.h"
#include "core/error.h"
#include "core/io.h"
#include "core/rng.h"

#include <math.h>
#include <pthread.h>
#include <string.h>

typedef struct mockup {
    int track;
    int noise;
    double sd_fresh, sd_rescale, sd_ks, sd_encode;
    double sd_boot; /* bootstrapping: absolute noise per slot (value units) */
    tsr_prng prng;
    pthread_mutex_t mu;
} mockup;

void tsr_mockup_params_default(tsr_mockup_params *p, int64_t slots, int top_level) {
    memset(p, 0, sizeof *p);
    p->slots = slots;
    p->top_level = top_level;
    p->scale_bits = 40;
    p->base_bits = 60;
    p->track_values = 1;
    p->noise = 0;
    p->seed = 1;
    p->scale_tolerance = 0x1p-40;
    p->rotations = TSR_ROTATIONS_STRICT;
}

static mockup *M(const tsr_backend *be) {
    return (mockup *)be->impl;
}

static double *vals(const tsr_bvec *v) {
    return (double *)v->impl;
}

static tsr_status alloc_vals(const tsr_backend *be, tsr_bvec *v) {
    if (!M(be)->track) return TSR_OK;
    v->impl = tsr_alloc((size_t)be->slots * sizeof(double));
    if (!v->impl) return tsr_fail(TSR_ERR_NOMEM, "out of memory allocating a mockup vector");
    return TSR_OK;
}

/* Add Gaussian noise of standard deviation sd / scale to every slot. */
static void add_noise(tsr_backend *be, double *x, double sd, double scale) {
    mockup *m = M(be);
    if (!m->noise || !x || sd <= 0) return;
    double s = sd / scale;
    pthread_mutex_lock(&m->mu);
    for (int64_t i = 0; i < be->slots; i++) x[i] += s * tsr_prng_normal(&m->prng);
    pthread_mutex_unlock(&m->mu);
}

/* CKKS decrypts garbage once |value| * scale reaches Q_level / 2: refuse instead. */
static tsr_status check_range(const tsr_backend *be, const double *x, int level, double scale,
                              const char *op) {
    if (!x) return TSR_OK;
    double mx = 0;
    for (int64_t i = 0; i < be->slots; i++) {
        double a = fabs(x[i]);
        if (isnan(a) || a > mx) mx = a; /* a NaN sticks (refused below) */
    }
    if (!isfinite(mx)) return tsr_fail(TSR_ERR_SCALE, "mockup %s produced a non-finite value", op);
    if (mx == 0) return TSR_OK;
    double room = tsr_backend_headroom_bits(be, level, scale);
    if (log2(mx) < room) return TSR_OK;
    return tsr_fail(TSR_ERR_SCALE,
                    "mockup %s: a value of magnitude %.3g at scale 2^%.1f needs 2^%.1f but level "
                    "%d has only 2^%.1f of modulus; CKKS would decrypt garbage (keep values "
                    "smaller or use a smaller scale)",
                    op, mx, log2(scale), log2(mx) + log2(scale) + 1.0, level, be->log2_q[level]);
}

static tsr_status m_encrypt(tsr_backend *be, const double *values, tsr_bvec *out) {
    TSR_TRY(alloc_vals(be, out));
    double *x = vals(out);
    if (!x) return TSR_OK;
    if (values)
        memcpy(x, values, (size_t)be->slots * sizeof(double));
    else
        memset(x, 0, (size_t)be->slots * sizeof(double));
    TSR_TRY(check_range(be, x, out->level, out->scale, "encryption"));
    add_noise(be, x, M(be)->sd_fresh, out->scale);
    return TSR_OK;
}

static tsr_status m_encode(tsr_backend *be, const double *values, tsr_bvec *out) {
    TSR_TRY(alloc_vals(be, out));
    double *x = vals(out);
    if (!x) return TSR_OK;
    if (values)
        memcpy(x, values, (size_t)be->slots * sizeof(double));
    else
        memset(x, 0, (size_t)be->slots * sizeof(double));
    TSR_TRY(check_range(be, x, out->level, out->scale, "encoding"));
    add_noise(be, x, M(be)->sd_encode, out->scale);
    return TSR_OK;
}

static tsr_status m_decrypt(tsr_backend *be, const tsr_bvec *v, double *values) {
    if (!vals(v)) return tsr_fail(TSR_ERR_UNSUPPORTED, "shape-only mockup vectors hold no values");
    memcpy(values, vals(v), (size_t)be->slots * sizeof(double));
    return TSR_OK;
}

static tsr_status m_copy(tsr_backend *be, const tsr_bvec *src, tsr_bvec *dst) {
    if (!vals(src)) return TSR_OK;
    TSR_TRY(alloc_vals(be, dst));
    memcpy(vals(dst), vals(src), (size_t)be->slots * sizeof(double));
    return TSR_OK;
}

static void m_release(tsr_backend *be, tsr_bvec *v) {
    (void)be;
    tsr_free(v->impl);
    v->impl = NULL;
}

static tsr_status m_add(tsr_backend *be, tsr_bvec *dst, const tsr_bvec *src, int sign) {
    double *x = vals(dst);
    const double *y = vals(src);
    if (!x || !y) return TSR_OK;
    double f = sign * (src->scale / dst->scale);
    if (f == 1.0)
        for (int64_t i = 0; i < be->slots; i++) x[i] += y[i];
    else if (f == -1.0)
        for (int64_t i = 0; i < be->slots; i++) x[i] -= y[i];
    else
        for (int64_t i = 0; i < be->slots; i++) x[i] += f * y[i];
    return check_range(be, x, dst->level, dst->scale, sign > 0 ? "add" : "sub");
}

static tsr_status m_add_const(tsr_backend *be, tsr_bvec *dst, double c) {
    double *x = vals(dst);
    if (!x) return TSR_OK;
    double cr = nearbyint(c * dst->scale) / dst->scale;
    for (int64_t i = 0; i < be->slots; i++) x[i] += cr;
    return check_range(be, x, dst->level, dst->scale, "add_const");
}

static tsr_status m_mul(tsr_backend *be, tsr_bvec *dst, const tsr_bvec *src) {
    double *x = vals(dst);
    const double *y = vals(src);
    if (!x || !y) return TSR_OK;
    for (int64_t i = 0; i < be->slots; i++) x[i] *= y[i];
    double scale = dst->scale * src->scale;
    if (!src->is_plain) add_noise(be, x, M(be)->sd_ks, scale);
    return check_range(be, x, dst->level, scale, "mul");
}

static tsr_status m_mul_to(tsr_backend *be, tsr_bvec *out, const tsr_bvec *a, const tsr_bvec *b) {
    const double *x = vals(a), *y = vals(b);
    if (!x || !y) return TSR_OK;
    if (!out->impl) TSR_TRY(alloc_vals(be, out));
    double *z = vals(out);
    for (int64_t i = 0; i < be->slots; i++) z[i] = x[i] * y[i];
    if (!b->is_plain) add_noise(be, z, M(be)->sd_ks, out->scale);
    return check_range(be, z, out->level, out->scale, "mul");
}

static tsr_status m_mul_const(tsr_backend *be, tsr_bvec *dst, double c, double cscale) {
    double *x = vals(dst);
    if (!x) return TSR_OK;
    double cr = nearbyint(c * cscale) / cscale;
    for (int64_t i = 0; i < be->slots; i++) x[i] *= cr;
    return check_range(be, x, dst->level, dst->scale * cscale, "mul_const");
}

static tsr_status m_rotate(tsr_backend *be, const tsr_bvec *src, const int64_t *steps, size_t n,
                           tsr_bvec **outs) {
    const double *y = vals(src);
    for (size_t k = 0; k < n; k++) {
        if (!y) continue;
        TSR_TRY(alloc_vals(be, outs[k]));
        double *x = vals(outs[k]);
        int64_t s = steps[k], n1 = be->slots - s;
        memcpy(x, y + s, (size_t)n1 * sizeof(double));
        memcpy(x + n1, y, (size_t)s * sizeof(double));
        add_noise(be, x, M(be)->sd_ks, src->scale);
    }
    return TSR_OK;
}

static tsr_status m_rescale(tsr_backend *be, tsr_bvec *v) {
    add_noise(be, vals(v), M(be)->sd_rescale, v->scale / be->primes[v->level]);
    return TSR_OK;
}

/* Bootstrapping: values must lie in [-1, 1] (the circuit's sine garbles larger ones). */
static tsr_status m_bootstrap(tsr_backend *be, tsr_bvec *const *vs, size_t n) {
    mockup *m = M(be);
    for (size_t i = 0; i < n; i++) {
        double *x = vals(vs[i]);
        for (int64_t j = 0; x && j < be->slots; j++)
            if (!(fabs(x[j]) <= 1.0 + 0x1p-20))
                return tsr_fail(TSR_ERR_SCALE,
                                "bootstrap: slot %lld holds %.6g but bootstrapping needs values "
                                "in [-1, 1] (CKKS's sine would garble it): scale the values down "
                                "before bootstrapping",
                                (long long)j, x[j]);
    }
    if (!m->noise) return TSR_OK;
    pthread_mutex_lock(&m->mu);
    for (size_t i = 0; i < n; i++) {
        double *x = vals(vs[i]);
        for (int64_t j = 0; x && j < be->slots; j++) x[j] += m->sd_boot * tsr_prng_normal(&m->prng);
    }
    pthread_mutex_unlock(&m->mu);
    return TSR_OK;
}

static tsr_status m_drop_level(tsr_backend *be, tsr_bvec *v, int level) {
    return check_range(be, vals(v), level, v->scale, "drop_level");
}

static uint64_t m_vec_size(const tsr_backend *be, const tsr_bvec *v) {
    return vals(v) ? (uint64_t)be->slots * 8 : 0;
}

static uint64_t m_vec_max_size(const tsr_backend *be) {
    return (uint64_t)be->slots * 8;
}

static tsr_status m_write_vec(tsr_backend *be, const tsr_bvec *v, struct tsr_writer *w) {
    const double *x = vals(v);
    for (int64_t i = 0; x && i < be->slots; i++) tsr_write_f64(w, x[i]);
    return TSR_OK;
}

static tsr_status m_read_vec(tsr_backend *be, const uint8_t *blob, uint64_t len, tsr_bvec *out) {
    if (!M(be)->track) {
        if (len != 0)
            return tsr_fail(TSR_ERR_MISMATCH,
                            "a shape-only mockup cannot hold the values stored in this file");
        return TSR_OK;
    }
    if (len != (uint64_t)be->slots * 8)
        return tsr_fail(TSR_ERR_FORMAT,
                        "mockup vector of %llu bytes: expected %lld slots of 8 bytes%s",
                        (unsigned long long)len, (long long)be->slots,
                        len == 0 ? " (the file was written by a shape-only dry run)" : "");
    TSR_TRY(alloc_vals(be, out));
    double *x = vals(out);
    for (int64_t i = 0; i < be->slots; i++) {
        uint64_t u = 0;
        for (int b = 0; b < 8; b++) u |= (uint64_t)blob[8 * i + b] << (8 * b);
        memcpy(&x[i], &u, 8);
        if (!isfinite(x[i]))
            return tsr_fail(TSR_ERR_FORMAT, "mockup vector slot %lld is not a finite number",
                            (long long)i);
    }
    return check_range(be, x, out->level, out->scale, "reading");
}

static void m_destroy(tsr_backend *be) {
    mockup *m = M(be);
    if (!m) return;
    pthread_mutex_destroy(&m->mu);
    tsr_free(m);
    be->impl = NULL;
}

static const tsr_backend_vtable mockup_vt = {
    .name = "mockup",
    .encrypt = m_encrypt,
    .encode = m_encode,
    .decrypt = m_decrypt,
    .copy = m_copy,
    .release = m_release,
    .add = m_add,
    .add_const = m_add_const,
    .mul = m_mul,
    .mul_to = m_mul_to,
    .mul_const = m_mul_const,
    .rotate = m_rotate,
    .rescale = m_rescale,
    .drop_level = m_drop_level,
    .bootstrap = m_bootstrap,
    .declare_rotations = NULL,
    .file_kind = 1,
    .vec_size = m_vec_size,
    .vec_max_size = m_vec_max_size,
    .write_vec = m_write_vec,
    .read_vec = m_read_vec,
    .fingerprint = NULL,
    .destroy = m_destroy,
};

/*
 * Synthetic rescaling primes as a CKKS core picks them: q_l close to
 * D_l^2 / 2^scale_bits so that the canonical scales D_{l-1} = D_l^2 / q_l stay
 * near 2^scale_bits, but off by a few 2^-21 (as NTT primes are) and never
 * powers of two, so scale bookkeeping errors show up.
 */
static void synth_primes(const tsr_mockup_params *p, double *primes) {
    double target = exp2(p->scale_bits), d = target;
    primes[0] = nearbyint(exp2(p->base_bits) * (1.0 - 0x1p-23));
    for (int l = p->top_level; l >= 1; l--) {
        double dev = (double)((l * 37) % 17 - 8) + 0.5;
        primes[l] = nearbyint(d * d / target * (1.0 + dev * 0x1p-21));
        d = d * d / primes[l];
    }
}

tsr_status tsr_backend_mockup_create(const tsr_mockup_params *p, tsr_backend **out) {
    *out = NULL;
    if (p->top_level < 0 || p->top_level > 256)
        return tsr_fail(TSR_ERR_INVALID_ARG, "mockup top level %d must be in [0, 256]",
                        p->top_level);
    if (!p->primes && (p->base_bits < 2 || p->base_bits > 62))
        return tsr_fail(TSR_ERR_INVALID_ARG, "mockup base prime of %g bits: must be in [2, 62]",
                        p->base_bits);
    if (p->scale_bits < 2 || p->scale_bits > 62)
        return tsr_fail(TSR_ERR_INVALID_ARG, "mockup scale of 2^%g: scale_bits must be in [2, 62]",
                        p->scale_bits);
    double *primes = tsr_calloc_array((size_t)p->top_level + 1, sizeof(double));
    mockup *m = tsr_calloc(sizeof *m);
    if (!primes || !m) {
        tsr_free(primes);
        tsr_free(m);
        return tsr_fail(TSR_ERR_NOMEM, "out of memory creating the mockup backend");
    }
    if (p->primes)
        memcpy(primes, p->primes, ((size_t)p->top_level + 1) * sizeof *primes);
    else
        synth_primes(p, primes);
    double N = 2.0 * (double)p->slots;
    m->track = p->track_values != 0;
    m->noise = p->noise != 0 && m->track;
    m->sd_rescale =
        p->noise_rescale > 0 ? p->noise_rescale : sqrt(N / 2.0 * (1.0 + 2.0 * N / 3.0) / 12.0);
    m->sd_fresh = p->noise_fresh > 0 ? p->noise_fresh : m->sd_rescale;
    m->sd_ks = p->noise_keyswitch > 0 ? p->noise_keyswitch : m->sd_rescale;
    m->sd_encode = sqrt(N / 24.0);
    uint8_t seed[TSR_SEED_BYTES] = { 0 };
    for (int i = 0; i < 8; i++) seed[i] = (uint8_t)(p->seed >> (8 * i));
    tsr_prng_init(&m->prng, seed, 0x6d6f636b7570ull /* "mockup" */);
    pthread_mutex_init(&m->mu, NULL);
    tsr_backend *be;
    tsr_status st = tsr_backend_init(&be, &mockup_vt, m, p->slots, p->top_level,
                                     exp2(p->scale_bits), primes, p->scale_tolerance);
    tsr_free(primes);
    if (st != TSR_OK) {
        pthread_mutex_destroy(&m->mu);
        tsr_free(m);
        return st;
    }
    be->policy = p->rotations;
    be->can_decrypt = m->track;
    *out = be;
    return TSR_OK;
}

tsr_status tsr_backend_mockup_set_bootstrap(tsr_backend *be, int out_level, double bits) {
    TSR_REQUIRE(be, "tsr_backend_mockup_set_bootstrap: NULL backend");
    if (be->vt != &mockup_vt)
        return tsr_fail(TSR_ERR_INVALID_ARG,
                        "tsr_backend_mockup_set_bootstrap: the %s backend is not a mockup",
                        be->vt->name);
    if (out_level < 1 || out_level > be->top_level)
        return tsr_fail(TSR_ERR_INVALID_ARG,
                        "mockup bootstrapping level %d: must be in 1..%d (the top level)",
                        out_level, be->top_level);
    M(be)->sd_boot = exp2(-(bits > 0 ? bits : 24.0));
    tsr_backend_set_boot_level(be, out_level);
    return TSR_OK;
}
