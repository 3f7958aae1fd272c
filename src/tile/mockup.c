/*
 * tile/mockup.c - the mockup backend: vectors of plaintext doubles with the
 * CKKS interface. The generic layer (backend.c) tracks levels and scales and
 * refuses what CKKS would; this file does the arithmetic and, optionally,
 * adds CKKS-like noise so that precision problems show up without
 * cryptography. In shape-only mode no values are stored at all: a dry run
 * then costs only the bookkeeping (operation counts, levels, rotation steps).
 *
 * Noise model: the average-case slot variances of the CKKS noise analysis
 * (Kim, Polyakov, Zucca, "Revisiting homomorphic encryption schemes for
 * finite fields", ASIACRYPT 2021, section 5 (CKKS); Costache, Curtis,
 * Hales, Murphy, Ogilvie, Player, "On the precision loss in approximate
 * homomorphic encryption", SAC 2023), written out for this CKKS core and
 * checked per operation against it (`tessera bench noise`,
 * docs/BENCHMARKS.md). Units: integers at the ciphertext's scale, divided
 * by the scale when added; N = 2 slots; sigma = 3.2; uniform ternary secret
 * s, ||s||^2 ~ h = 2N/3. A polynomial with independent coefficients of
 * variance V gives a slot error whose real part has variance N V / 2, except
 * for encoding (below).
 *   secret spectrum  in slot j a rounding term tau1 * s is tau1(zeta_j)
 *                    s(zeta_j): with the key fixed, slot j's variance is
 *                    h a_j / 12 per coefficient, a_j = |s(zeta_j)|^2 / h
 *                    ~ Exp(1) drawn once per mockup (seeded). Every rescale
 *                    hits the same slots hardest: Laplace-like tails, the
 *                    largest of 2^12-2^14 slot errors about 0.7-1 bit above
 *                    a Gaussian's.
 *   rescale          rounding (tau0 + tau1 s): N/2 (1 + h a_j) / 12
 *   encoding         N / 12: rounding a real-slot message keeps its
 *                    symmetry, so all the variance lands in the real part
 *                    (measured: imaginary error 0, real N/12, not N/24)
 *   fresh encryption encoding plus the public-key encryption over Q P
 *                    divided by P: the rescale rounding plus
 *                    N/2 (2N/3 + 1 + h) sigma^2 / P^2 (noise_fresh
 *                    replaces it with a Gaussian of that deviation)
 *   key switching    (hybrid, Han-Ki 2020; keyswitch_bits = log2 P and
 *                    keyswitch_alpha primes per digit) sum_j d_j e_j / P +
 *                    ModDown rounding. ModUp lifts digit j (D_j, alpha_j
 *                    primes at the level) centred (ring/baseconv.c: x - D_j
 *                    round(x / D_j)), so d_j is uniform in (-D_j/2, D_j/2]:
 *                    mean 0, variance D_j^2 / 12 whatever alpha_j. The slot
 *                    error is Gaussian with variance
 *                    N/2 N sigma^2 sum_j (D_j / P)^2 / 12 |eps|^2, eps =
 *                    e(zeta_j) / (sqrt(N) sigma) fixed by the key. (Before
 *                    2026-12-07 the digits were uncentred, sums of alpha_j
 *                    values in [0, D_j): a fixed per-key error 2^5-2^7 times
 *                    the rms near slot 0, which this model no longer adds.)
 *                    A rotation key's e(zeta_j) = sqrt(N) sigma eps_j is
 *                    drawn from (seed, step), so every rotation by a step
 *                    has the same per-slot variance, before the slots move,
 *                    as CKKS does. Relinearization noise is added at the
 *                    product's scale (negligible after the rescale), as a
 *                    Gaussian of the average variance. Without keyswitch_bits
 *                    (or with noise_keyswitch) key switching adds a Gaussian
 *                    of the rescale's deviation (the model before 2026-12).
 *   sums of products sq_lincomb and prod_lincomb are fused as on CKKS (one
 *                    relinearization and rescale per output, not per term).
 * Scalar products round the constant to cscale as CKKS does, and adding
 * vectors whose scales differ (within the tolerance) scales the second
 * operand by the scale ratio, exactly as a decryption would see it. Noise is
 * drawn in operation order from one seeded stream (the rotation keys' parts
 * from per-step streams), so a run is reproducible.
 */
#include "tile/backend.h"

#include "core/alloc.h"
#include "core/error.h"
#include "core/io.h"
#include "core/rng.h"

#include <math.h>
#include <pthread.h>
#include <string.h>

#define MOCKUP_SIGMA 3.2 /* the CKKS core's error deviation (TSR_SAMPLE_SIGMA) */

typedef struct mockup {
    int track;
    int noise;
    double n_ring;    /* N = 2 slots */
    double h;         /* expected ||s||^2 of the secret, 2N/3 */
    double var_pk;    /* public-key encryption's terms divided by P (coefficient variance) */
    double var_round; /* > 0: the user's rounding variance (noise_rescale^2) for every slot */
    double sd_encode, sd_boot; /* boot: absolute noise per slot (value units) */
    double sd_fresh, sd_ks;    /* > 0: the user's Gaussian overrides */
    double *spec;              /* a_j = |s(zeta_j)|^2 / h, per slot */
    /* key switching at level l (coefficient units, with P): ks_white[l] = N sigma^2
     * sum_j (D_j/P)^2 / 12 (centred digits); NULL: no key-switching modulus known */
    double *ks_white;
    uint8_t seed[TSR_SEED_BYTES];
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

/* Slot j's variance of a rounding term tau0 + tau1 s (coefficient variance of each tau 1/12). */
static double rounding_var(const mockup *m, int64_t j) {
    if (m->var_round > 0) return m->var_round;
    return m->n_ring / 2.0 * (1.0 + m->h * m->spec[j]) / 12.0;
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

/* Add a rounding term (rescale, ModDown) plus extra coefficient variance, per slot. */
static void add_rounding(tsr_backend *be, double *x, double extra_var, double scale) {
    mockup *m = M(be);
    if (!m->noise || !x) return;
    double half_n = m->n_ring / 2.0;
    pthread_mutex_lock(&m->mu);
    for (int64_t i = 0; i < be->slots; i++)
        x[i] += sqrt(rounding_var(m, i) + half_n * extra_var) / scale * tsr_prng_normal(&m->prng);
    pthread_mutex_unlock(&m->mu);
}

/*
 * The key-switching noise of a rotation by step at level into noise[j], in integer units,
 * indexed by the slot before the rotation: Gaussian, with the key's e(zeta_j) setting slot j's
 * variance.
 */
static void keyswitch_noise(tsr_backend *be, int level, int64_t step, double *noise) {
    mockup *m = M(be);
    tsr_prng key;
    uint8_t seed[TSR_SEED_BYTES];
    memcpy(seed, m->seed, sizeof seed);
    for (int b = 0; b < 8; b++) seed[16 + b] ^= (uint8_t)((uint64_t)step >> (8 * b));
    tsr_prng_init(&key, seed, 0x6b65797377ull /* "keysw" */);
    double half_n = m->n_ring / 2.0, w = m->ks_white[level];
    pthread_mutex_lock(&m->mu);
    for (int64_t j = 0; j < be->slots; j++) {
        /* eps = e(zeta_j) / (sqrt(N) sigma), a standard complex Gaussian */
        double er = tsr_prng_normal(&key) * M_SQRT1_2, ei = tsr_prng_normal(&key) * M_SQRT1_2;
        double var = rounding_var(m, j) + half_n * w * (er * er + ei * ei);
        noise[j] = sqrt(var) * tsr_prng_normal(&m->prng);
    }
    pthread_mutex_unlock(&m->mu);
    tsr_prng_wipe(&key);
}

/* Coefficient variance of the relinearization noise, averaged over slots. */
static double relin_var(const mockup *m, int level) {
    return m->ks_white[level] + (1.0 + m->h) / 12.0;
}

/* Add relinearization noise to a product at scale. */
static void add_relin(tsr_backend *be, double *x, int level, double scale) {
    mockup *m = M(be);
    if (!m->noise || !x) return;
    if (!m->ks_white) {
        add_noise(be, x, m->sd_ks, scale);
        return;
    }
    add_noise(be, x, sqrt(m->n_ring / 2.0 * relin_var(m, level)), scale);
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
    mockup *m = M(be);
    if (m->sd_fresh > 0) {
        add_noise(be, x, m->sd_fresh, out->scale);
    } else {
        add_noise(be, x, m->sd_encode, out->scale);
        add_rounding(be, x, m->var_pk, out->scale);
    }
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
    if (!src->is_plain) add_relin(be, x, dst->level, scale);
    return check_range(be, x, dst->level, scale, "mul");
}

static tsr_status m_mul_to(tsr_backend *be, tsr_bvec *out, const tsr_bvec *a, const tsr_bvec *b) {
    const double *x = vals(a), *y = vals(b);
    if (!x || !y) return TSR_OK;
    if (!out->impl) TSR_TRY(alloc_vals(be, out));
    double *z = vals(out);
    for (int64_t i = 0; i < be->slots; i++) z[i] = x[i] * y[i];
    if (!b->is_plain) add_relin(be, z, out->level, out->scale);
    return check_range(be, z, out->level, out->scale, "mul");
}

static tsr_status m_mul_const(tsr_backend *be, tsr_bvec *dst, double c, double cscale) {
    double *x = vals(dst);
    if (!x) return TSR_OK;
    double cr = nearbyint(c * cscale) / cscale;
    for (int64_t i = 0; i < be->slots; i++) x[i] *= cr;
    return check_range(be, x, dst->level, dst->scale * cscale, "mul_const");
}

/* Each output gets its key's noise (drawn in the source's slot order, as CKKS switches keys
 * before it permutes the slots) when the chain's key switching is known. */
static tsr_status m_rotate(tsr_backend *be, const tsr_bvec *src, const int64_t *steps, size_t n,
                           tsr_bvec **outs) {
    mockup *m = M(be);
    const double *y = vals(src);
    if (!y) return TSR_OK;
    double *t = NULL;
    if (m->noise && m->ks_white) {
        t = tsr_alloc((size_t)be->slots * sizeof(double));
        if (!t) return tsr_fail(TSR_ERR_NOMEM, "out of memory rotating");
    }
    tsr_status st = TSR_OK;
    for (size_t k = 0; k < n && st == TSR_OK; k++) {
        st = alloc_vals(be, outs[k]);
        if (st != TSR_OK) break;
        double *x = vals(outs[k]);
        int64_t s = steps[k], n1 = be->slots - s;
        const double *from = y;
        if (t) {
            keyswitch_noise(be, src->level, s, t);
            for (int64_t j = 0; j < be->slots; j++) t[j] = y[j] + t[j] / src->scale;
            from = t;
        }
        memcpy(x, from + s, (size_t)n1 * sizeof(double));
        memcpy(x + n1, from, (size_t)s * sizeof(double));
        if (!t) add_noise(be, x, m->sd_ks, src->scale);
    }
    tsr_free(t);
    return st;
}

static tsr_status m_rescale(tsr_backend *be, tsr_bvec *v) {
    add_rounding(be, vals(v), 0.0, v->scale / be->primes[v->level]);
    return TSR_OK;
}

/*
 * Fused sums of products (noisy mockups only, so that dry runs keep the generic path): the
 * exact sum with every constant rounded to cscale, one relinearization at the sum's scale and
 * one rescale per output, as the ckks backend computes them.
 */
static tsr_status fused_products(tsr_backend *be, tsr_bvec *const *outs, size_t n_out,
                                 const tsr_bvec *const *a, const tsr_bvec *const *b,
                                 const int64_t *row_ptr, const int64_t *ia, const int64_t *ib,
                                 const double *vals_, double cscale) {
    if (!vals(a[0])) return TSR_OK;
    int level = a[0]->level;
    double scale = a[0]->scale * b[0]->scale * cscale;
    for (size_t j = 0; j < n_out; j++) {
        TSR_TRY(alloc_vals(be, outs[j]));
        double *z = vals(outs[j]);
        memset(z, 0, (size_t)be->slots * sizeof(double));
        for (int64_t k = row_ptr[j]; k < row_ptr[j + 1]; k++) {
            double c = nearbyint(vals_[k] * cscale) / cscale;
            const double *x = vals(a[ia ? ia[k] : k]), *y = vals(b[ib ? ib[k] : k]);
            if (c != 0.0)
                for (int64_t i = 0; i < be->slots; i++) z[i] += c * x[i] * y[i];
        }
        add_relin(be, z, level, scale);
        add_rounding(be, z, 0.0, outs[j]->scale);
        TSR_TRY(check_range(be, z, outs[j]->level, outs[j]->scale, "sum of products"));
    }
    return TSR_OK;
}

static tsr_status m_sq_lincomb(tsr_backend *be, tsr_bvec *const *outs, size_t n_out,
                               const tsr_bvec *const *ins, size_t n_in, const int64_t *row_ptr,
                               const int64_t *cols, const double *vals_, double cscale) {
    (void)n_in;
    return fused_products(be, outs, n_out, ins, ins, row_ptr, cols, cols, vals_, cscale);
}

static tsr_status m_prod_lincomb(tsr_backend *be, tsr_bvec *const *outs, size_t n_out,
                                 const tsr_bvec *const *a, const tsr_bvec *const *b,
                                 const int64_t *row_ptr, const int64_t *ia, const int64_t *ib,
                                 const double *vals_, double cscale) {
    return fused_products(be, outs, n_out, a, b, row_ptr, ia, ib, vals_, cscale);
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

static void mockup_free(mockup *m) {
    if (!m) return;
    tsr_free(m->spec);
    tsr_free(m->ks_white);
    tsr_free(m);
}

static void m_destroy(tsr_backend *be) {
    mockup *m = M(be);
    if (!m) return;
    pthread_mutex_destroy(&m->mu);
    mockup_free(m);
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

/* A noisy mockup fuses sums of products as CKKS does (one relinearization and rescale per
 * output); others keep the generic path, so dry runs and noiseless references are unchanged. */
static tsr_backend_vtable mockup_noisy_vt;
static pthread_once_t noisy_once = PTHREAD_ONCE_INIT;

static void init_noisy_vt(void) {
    mockup_noisy_vt = mockup_vt;
    mockup_noisy_vt.sq_lincomb = m_sq_lincomb;
    mockup_noisy_vt.prod_lincomb = m_prod_lincomb;
}

static int is_mockup(const tsr_backend *be) {
    return be->vt == &mockup_vt || be->vt == &mockup_noisy_vt;
}

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

/* The slot table of the noise model: the secret spectrum a_j ~ Exp(1). */
static void noise_tables(mockup *m, int64_t slots) {
    tsr_prng g;
    tsr_prng_init(&g, m->seed, 0x736563726574ull /* "secret" */);
    for (int64_t j = 0; j < slots; j++) m->spec[j] = -log1p(-tsr_prng_double(&g));
    tsr_prng_wipe(&g);
}

/* Key switching at every level: centred digits of alpha primes (the last one partial) over P,
 * each uniform in (-D_j/2, D_j/2]. */
static void keyswitch_tables(mockup *m, const tsr_mockup_params *p, const double *primes) {
    int alpha = p->keyswitch_alpha > 0 ? p->keyswitch_alpha : 1;
    double s2n = MOCKUP_SIGMA * MOCKUP_SIGMA * m->n_ring;
    for (int l = 0; l <= p->top_level; l++) {
        double white = 0;
        for (int j0 = 0; j0 <= l; j0 += alpha) {
            double logd = 0;
            for (int i = j0; i <= l && i < j0 + alpha; i++) logd += log2(primes[i]);
            white += exp2(2.0 * (logd - p->keyswitch_bits)) / 12.0; /* (D_j / P)^2 / 12 */
        }
        m->ks_white[l] = s2n * white;
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
    if (!(p->keyswitch_bits == 0 || (p->keyswitch_bits >= 2 && p->keyswitch_bits <= 2048)))
        return tsr_fail(TSR_ERR_INVALID_ARG,
                        "mockup key-switching modulus of %g bits: must be 0 (unknown) or in "
                        "[2, 2048]",
                        p->keyswitch_bits);
    if (p->keyswitch_alpha < 0 || p->keyswitch_alpha > p->top_level + 1)
        return tsr_fail(TSR_ERR_INVALID_ARG,
                        "mockup key-switching digits of %d primes: must be in 0..%d",
                        p->keyswitch_alpha, p->top_level + 1);
    if (p->slots < 2 || p->slots > ((int64_t)1 << 24))
        return tsr_fail(TSR_ERR_INVALID_ARG,
                        "backend slot count %lld must be a power of two in [2, 2^24]",
                        (long long)p->slots);
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
    m->n_ring = N;
    m->h = 2.0 * N / 3.0;
    m->sd_encode = sqrt(N / 12.0);
    m->sd_fresh = p->noise_fresh;
    m->sd_ks = p->noise_keyswitch > 0 ? p->noise_keyswitch : sqrt(N / 2.0 * (1.0 + m->h) / 12.0);
    for (int i = 0; i < 8; i++) m->seed[i] = (uint8_t)(p->seed >> (8 * i));
    tsr_status st = TSR_OK;
    if (m->noise) {
        m->spec = tsr_calloc_array((size_t)p->slots, sizeof(double));
        if (!m->spec) st = tsr_fail(TSR_ERR_NOMEM, "out of memory creating the mockup");
    }
    if (st == TSR_OK && m->noise) {
        noise_tables(m, p->slots);
        m->var_round = p->noise_rescale * p->noise_rescale; /* 0: the model */
    }
    if (st == TSR_OK && m->noise && p->keyswitch_bits > 0) {
        double s2 = MOCKUP_SIGMA * MOCKUP_SIGMA;
        m->var_pk = (2.0 * N / 3.0 + 1.0 + m->h) * s2 * exp2(-2.0 * p->keyswitch_bits);
        if (p->noise_keyswitch <= 0) {
            m->ks_white = tsr_calloc_array((size_t)p->top_level + 1, sizeof(double));
            if (!m->ks_white)
                st = tsr_fail(TSR_ERR_NOMEM, "out of memory creating the mockup");
            else
                keyswitch_tables(m, p, primes);
        }
    }
    if (st != TSR_OK) {
        tsr_free(primes);
        mockup_free(m);
        return st;
    }
    tsr_prng_init(&m->prng, m->seed, 0x6d6f636b7570ull /* "mockup" */);
    pthread_mutex_init(&m->mu, NULL);
    pthread_once(&noisy_once, init_noisy_vt);
    tsr_backend *be;
    st = tsr_backend_init(&be, m->noise ? &mockup_noisy_vt : &mockup_vt, m, p->slots, p->top_level,
                          exp2(p->scale_bits), primes, p->scale_tolerance);
    tsr_free(primes);
    if (st != TSR_OK) {
        pthread_mutex_destroy(&m->mu);
        mockup_free(m);
        return st;
    }
    be->policy = p->rotations;
    be->can_decrypt = m->track;
    *out = be;
    return TSR_OK;
}

tsr_status tsr_backend_mockup_set_bootstrap(tsr_backend *be, int out_level, double bits) {
    TSR_REQUIRE(be, "tsr_backend_mockup_set_bootstrap: NULL backend");
    if (!is_mockup(be))
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
