/*
 * ring/vec.c - single-limb element-wise operations (dispatch to kernels).
 */
#include "ring/vec.h"
#include "ring/kernels.h"
#include "core/error.h"

void tsr_vec_add(const tsr_modulus *m, uint64_t *out, const uint64_t *a, const uint64_t *b,
                 size_t n) {
    tsr_ring_kernels_active()->add(m, out, a, b, n);
}

void tsr_vec_sub(const tsr_modulus *m, uint64_t *out, const uint64_t *a, const uint64_t *b,
                 size_t n) {
    tsr_ring_kernels_active()->sub(m, out, a, b, n);
}

void tsr_vec_neg(const tsr_modulus *m, uint64_t *out, const uint64_t *a, size_t n) {
    tsr_ring_kernels_active()->neg(m, out, a, n);
}

void tsr_vec_mul(const tsr_modulus *m, uint64_t *out, const uint64_t *a, const uint64_t *b,
                 size_t n) {
    tsr_ring_kernels_active()->mul(m, out, a, b, n);
}

void tsr_vec_mul_add(const tsr_modulus *m, uint64_t *out, const uint64_t *a, const uint64_t *b,
                     size_t n) {
    tsr_ring_kernels_active()->mul_add(m, out, a, b, n);
}

void tsr_vec_mul_scalar(const tsr_modulus *m, uint64_t *out, const uint64_t *a, uint64_t s,
                        size_t n) {
    TSR_REQUIRE(s < m->q, "tsr_vec_mul_scalar: scalar must be reduced mod q");
    tsr_ring_kernels_active()->mul_scalar(m, out, a, s, tsr_modq_shoup(s, m->q), n);
}

void tsr_vec_mul_scalar_add(const tsr_modulus *m, uint64_t *out, const uint64_t *a, uint64_t s,
                            size_t n) {
    TSR_REQUIRE(s < m->q, "tsr_vec_mul_scalar_add: scalar must be reduced mod q");
    tsr_ring_kernels_active()->mul_scalar_add(m, out, a, s, tsr_modq_shoup(s, m->q), n);
}

void tsr_vec_add_scalar(const tsr_modulus *m, uint64_t *out, const uint64_t *a, uint64_t s,
                        size_t n) {
    TSR_REQUIRE(s < m->q, "tsr_vec_add_scalar: scalar must be reduced mod q");
    tsr_ring_kernels_active()->add_scalar(m, out, a, s, n);
}

void tsr_vec_mul_shoup(const tsr_modulus *m, uint64_t *out, const uint64_t *a, const uint64_t *w,
                       const uint64_t *wp, size_t n) {
    tsr_ring_kernels_active()->mul_shoup(m, out, a, w, wp, n);
}

void tsr_vec_dot(const tsr_modulus *m, uint64_t *out, const uint64_t *const *x,
                 const uint64_t *const *y, size_t terms, size_t n) {
    TSR_REQUIRE(out && ((x && y) || terms == 0), "tsr_vec_dot: NULL argument");
    if (terms == 0) {
        for (size_t i = 0; i < n; i++) out[i] = 0;
        return;
    }
    tsr_ring_kernels_active()->dot2(m, out, NULL, x, y, NULL, terms, n);
}

void tsr_vec_dot2(const tsr_modulus *m, uint64_t *out0, uint64_t *out1, const uint64_t *const *x,
                  const uint64_t *const *y0, const uint64_t *const *y1, size_t terms, size_t n) {
    TSR_REQUIRE(out0 && out1 && ((x && y0 && y1) || terms == 0), "tsr_vec_dot2: NULL argument");
    if (terms == 0) {
        for (size_t i = 0; i < n; i++) out0[i] = out1[i] = 0;
        return;
    }
    tsr_ring_kernels_active()->dot2(m, out0, out1, x, y0, y1, terms, n);
}

void tsr_vec_shoup_precompute(const tsr_modulus *m, uint64_t *wp, const uint64_t *w, size_t n) {
    for (size_t i = 0; i < n; i++) wp[i] = tsr_modq_shoup(w[i], m->q);
}

void tsr_vec_lincomb_forms(const tsr_modulus *m, uint64_t *c_sh, uint64_t *c52, const uint64_t *c,
                           size_t terms) {
    const uint64_t r52 = tsr_modq_reduce64(m, (uint64_t)1 << 52);
    for (size_t i = 0; i < terms; i++) {
        TSR_REQUIRE(c[i] < m->q, "tsr_vec_lincomb_forms: coefficients must be reduced mod q");
        c_sh[i] = tsr_modq_shoup(c[i], m->q);
        c52[i] = tsr_modq_mul(m, c[i], r52);
    }
}

/* Terms per conversion-kernel call. Any count is correct (kernels.h); groups keep every
 * row within the AVX2 family's REDC row, which hands rows over 130 terms to the portable one. */
#define LINCOMB_GROUP 64

void tsr_vec_lincomb(const tsr_modulus *m, uint64_t *out, const uint64_t *const *x,
                     const uint64_t *c, const uint64_t *c_sh, const uint64_t *c52, size_t terms,
                     size_t n) {
    const tsr_ring_kernels *k = tsr_ring_kernels_active();
    if (terms == 0) {
        for (size_t i = 0; i < n; i++) out[i] = 0;
        return;
    }
    uint64_t tmp[512];
    for (size_t i0 = 0; i0 < terms; i0 += LINCOMB_GROUP) {
        size_t g = terms - i0 < LINCOMB_GROUP ? terms - i0 : LINCOMB_GROUP;
        const tsr_conv_coeffs r = { c + i0, c_sh + i0, c52 + i0, g, m->q };
        if (i0 == 0) {
            k->conv_row(m, out, x + i0, &r, n);
            continue;
        }
        for (size_t k0 = 0; k0 < n; k0 += 512) {
            size_t len = n - k0 < 512 ? n - k0 : 512;
            const uint64_t *xs[LINCOMB_GROUP];
            for (size_t i = 0; i < g; i++) xs[i] = x[i0 + i] + k0;
            k->conv_row(m, tmp, xs, &r, len);
            k->add(m, out + k0, out + k0, tmp, len);
        }
    }
}

void tsr_vec_permute(uint64_t *out, const uint64_t *a, const uint32_t *idx, size_t n, int stream) {
    tsr_ring_kernels_active()->permute(out, a, idx, n, stream);
}

void tsr_vec_copy_stream(uint64_t *dst, const uint64_t *src, size_t n) {
    tsr_ring_kernels_active()->copy_stream(dst, src, n);
}
