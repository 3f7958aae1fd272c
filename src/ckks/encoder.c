/*
 * ckks/encoder.c - CKKS encoding: slots -> special inverse FFT -> scaled,
 * rounded integer coefficients -> RNS limbs -> NTT; and decoding: INTT ->
 * exact CRT reconstruction of each centred coefficient -> special FFT.
 * (Cheon-Kim-Kim-Song 2017, section 3.2-3.3; RNS form: Cheon et al. 2018.)
 */
#include "ckks/ckks_internal.h"
#include "core/alloc.h"
#include "core/error.h"

#include <math.h>
#include <string.h>

struct tsr_ckks_encoder {
    tsr_ckks_params *params;
    ckks_cplx *buf; /* slots */
    double *coef;   /* N coefficients (as doubles) */
    uint64_t *tmp;  /* (L+1) limbs for decoding */
};

tsr_status tsr_ckks_encoder_create(tsr_ckks_encoder **out, tsr_ckks_params *p) {
    TSR_REQUIRE(out && p, "tsr_ckks_encoder_create: NULL argument");
    *out = NULL;
    tsr_ckks_encoder *e = tsr_calloc(sizeof *e);
    if (!e) return tsr_fail(TSR_ERR_NOMEM, "cannot allocate an encoder");
    e->params = ckks_params_ref(p);
    e->buf = tsr_calloc_array(p->slots, sizeof *e->buf);
    e->coef = tsr_calloc_array(p->n, sizeof *e->coef);
    e->tmp = tsr_calloc_array((size_t)(p->L + 1) * p->n, sizeof *e->tmp);
    if (!e->buf || !e->coef || !e->tmp) {
        tsr_ckks_encoder_free(e);
        return tsr_fail(TSR_ERR_NOMEM, "cannot allocate encoder buffers");
    }
    *out = e;
    return TSR_OK;
}

void tsr_ckks_encoder_free(tsr_ckks_encoder *e) {
    if (!e) return;
    tsr_free(e->buf);
    tsr_free(e->tmp);
    tsr_free(e->coef);
    tsr_ckks_params_free(e->params);
    tsr_free(e);
}

/* ---- noise model --------------------------------------------------------------
 * Errors are tracked as the standard deviation of the complex slot error in
 * value units (the decoded value's unit). An independent error of variance V
 * on every coefficient becomes a slot error of variance N*V (the canonical
 * embedding sums N terms of modulus 1); dividing by the scale converts to
 * value units. */

/* Rounding each of the N coefficients (uniform in [-1/2, 1/2), var 1/12). */
double ckks_noise_rounding(const tsr_ckks_params *p, double scale) {
    return sqrt((double)p->n / 12.0) / scale;
}

double tsr_ckks_ciphertext_precision_estimate(const tsr_ckks_ciphertext *ct) {
    return ckks_precision_bits(ct->params, ct->err, ct->mag);
}

/* Bits of precision of the worst slot: the error's real part has std
 * err/sqrt(2); the largest of `slots` such Gaussians is about
 * sqrt(2 ln(2 slots)) standard deviations. Capped by double precision. */
double ckks_precision_bits(const tsr_ckks_params *p, double err, double mag) {
    double tail = sqrt(2.0 * log(2.0 * (double)p->slots));
    double worst = err / sqrt(2.0) * tail;
    double dbl = 52.0 - log2(mag > 1 ? mag : 1);
    if (!(worst > 0)) return dbl;
    double b = -log2(worst);
    if (b > dbl) b = dbl;
    return b < 0 ? 0 : b;
}

/* ---- encoding ------------------------------------------------------------------- */

/*
 * The scaled, rounded coefficients of the values into e->coef (after the
 * checks); *mag: the largest |value|. level and scale as given (resolved).
 */
static tsr_status encode_coef(tsr_ckks_encoder *e, const double *values, size_t n,
                              int complex_values, int level, double scale, double *mag_out) {
    tsr_ckks_params *p = e->params;
    if (n > p->slots)
        return tsr_fail(TSR_ERR_INVALID_ARG, "%zu values do not fit in %zu slots", n, p->slots);
    if (!(scale >= 1) || !isfinite(scale))
        return tsr_fail(TSR_ERR_INVALID_ARG, "scale must be finite and >= 1 (got %g)", scale);

    double mag = 0;
    for (size_t i = 0; i < p->slots; i++) {
        double re = 0, im = 0;
        if (i < n) {
            re = complex_values ? values[2 * i] : values[i];
            im = complex_values ? values[2 * i + 1] : 0;
            if (!isfinite(re) || !isfinite(im))
                return tsr_fail(TSR_ERR_INVALID_ARG, "value %zu is not finite", i);
        }
        e->buf[i].re = re;
        e->buf[i].im = im;
        double a = hypot(re, im);
        if (a > mag) mag = a;
    }
    ckks_fft_inverse(&p->fft, e->buf);

    /* Scaled coefficients must satisfy |c| < Q_level / 2 to decode right. */
    double limit_log2 = tsr_ckks_params_log_q(p, level) - 1.0;
    double maxc = 0;
    for (size_t i = 0; i < p->slots; i++) {
        double a = nearbyint(e->buf[i].re * scale), b = nearbyint(e->buf[i].im * scale);
        e->coef[i] = a;
        e->coef[i + p->slots] = b;
        if (fabs(a) > maxc) maxc = fabs(a);
        if (fabs(b) > maxc) maxc = fabs(b);
    }
    if (!isfinite(maxc) || (maxc > 0 && log2(maxc) >= limit_log2))
        return tsr_fail(TSR_ERR_SCALE,
                        "the scaled message does not fit the modulus: a coefficient needs "
                        "%.1f bits but level %d holds %.1f (values up to %.3g at scale 2^%.1f); "
                        "use a smaller scale, smaller values or a higher level",
                        log2(maxc) + 1, level, limit_log2 + 1, mag, log2(scale));
    *mag_out = mag;
    return TSR_OK;
}

static tsr_status encode(tsr_ckks_encoder *e, tsr_ckks_plaintext *pt, const double *values,
                         size_t n, int complex_values, int level, double scale) {
    tsr_ckks_params *p = e->params;
    TSR_REQUIRE(pt && (values || n == 0), "tsr_ckks_encode: NULL argument");
    TSR_TRY(ckks_params_check(p, pt->params, "the plaintext"));
    if (level == TSR_CKKS_TOP_LEVEL) level = p->L;
    if (level < 0 || level > p->L)
        return tsr_fail(TSR_ERR_INVALID_ARG, "level %d is out of range 0..%d", level, p->L);
    if (scale == 0) scale = p->scale[level];
    double mag;
    TSR_TRY(encode_coef(e, values, n, complex_values, level, scale, &mag));

    TSR_TRY(ckks_pt_reserve(pt, level));
    /* Exact reduction of each (integer-valued) coefficient, then NTT. */
    TSR_TRY(tsr_rns_from_double(p->q[level], pt->data, e->coef));
    tsr_rns_ntt(p->q[level], pt->data);
    pt->scale = scale;
    pt->mag = mag;
    pt->err = ckks_noise_rounding(p, scale);
    return TSR_OK;
}

tsr_status ckks_encode_complex_coef(tsr_ckks_encoder *e, const tsr_ckks_params *want, double *coef,
                                    const double *values, size_t n, int level, double scale,
                                    double *mag, double *err) {
    TSR_REQUIRE(e && want && coef && (values || n == 0) && mag && err,
                "ckks_encode_complex_coef: NULL argument");
    TSR_TRY(ckks_params_check(e->params, want, "the encoder"));
    tsr_ckks_params *p = e->params;
    TSR_REQUIRE(level >= 0 && level <= p->L, "ckks_encode_complex_coef: level out of range");
    TSR_TRY(encode_coef(e, values, n, 1, level, scale, mag));
    memcpy(coef, e->coef, p->n * sizeof *coef);
    *err = ckks_noise_rounding(p, scale);
    return TSR_OK;
}

tsr_status tsr_ckks_encode_complex(tsr_ckks_encoder *e, tsr_ckks_plaintext *pt,
                                   const double *values, size_t n, int level, double scale) {
    TSR_REQUIRE(e, "tsr_ckks_encode_complex: NULL encoder");
    return encode(e, pt, values, n, 1, level, scale);
}

tsr_status tsr_ckks_encode_real(tsr_ckks_encoder *e, tsr_ckks_plaintext *pt, const double *values,
                                size_t n, int level, double scale) {
    TSR_REQUIRE(e, "tsr_ckks_encode_real: NULL encoder");
    return encode(e, pt, values, n, 0, level, scale);
}

/* ---- decoding -------------------------------------------------------------------- */

static tsr_status decode(tsr_ckks_encoder *e, const tsr_ckks_plaintext *pt, double *values,
                         size_t n, int complex_values, double *precision_bits) {
    tsr_ckks_params *p = e->params;
    TSR_REQUIRE(pt && (values || n == 0), "tsr_ckks_decode: NULL argument");
    TSR_TRY(ckks_params_check(p, pt->params, "the plaintext"));
    if (pt->level < 0) return tsr_fail(TSR_ERR_INVALID_ARG, "cannot decode an empty plaintext");
    if (n > p->slots)
        return tsr_fail(TSR_ERR_INVALID_ARG, "asked for %zu values but there are %zu slots", n,
                        p->slots);
    int level = pt->level;
    size_t words = ((size_t)level + 1) * p->n;
    memcpy(e->tmp, pt->data, words * sizeof(uint64_t));
    tsr_rns_intt(p->q[level], e->tmp);
    /* Exact centred CRT value of each coefficient (ring layer), times 1/scale. */
    tsr_rns_to_double(p->q[level], e->tmp, 1.0 / pt->scale, e->coef);
    for (size_t i = 0; i < p->slots; i++) {
        e->buf[i].re = e->coef[i];
        e->buf[i].im = e->coef[i + p->slots];
    }
    ckks_fft_forward(&p->fft, e->buf);
    for (size_t i = 0; i < n; i++) {
        if (complex_values) {
            values[2 * i] = e->buf[i].re;
            values[2 * i + 1] = e->buf[i].im;
        } else {
            values[i] = e->buf[i].re;
        }
    }
    if (precision_bits) *precision_bits = ckks_precision_bits(p, pt->err, pt->mag);
    return TSR_OK;
}

tsr_status tsr_ckks_decode_complex(tsr_ckks_encoder *e, const tsr_ckks_plaintext *pt,
                                   double *values, size_t n, double *precision_bits) {
    TSR_REQUIRE(e, "tsr_ckks_decode_complex: NULL encoder");
    return decode(e, pt, values, n, 1, precision_bits);
}

tsr_status tsr_ckks_decode_real(tsr_ckks_encoder *e, const tsr_ckks_plaintext *pt, double *values,
                                size_t n, double *precision_bits) {
    TSR_REQUIRE(e, "tsr_ckks_decode_real: NULL encoder");
    return decode(e, pt, values, n, 0, precision_bits);
}
