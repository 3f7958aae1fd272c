/*
 * ring/ntt.c - NTT tables (roots, bit-reversed twiddles, Shoup constants)
 * and the dispatching transform entry points.
 */
#include "ring/ntt.h"
#include "ring/kernels.h"
#include "ring/prime.h"
#include "core/alloc.h"
#include "core/error.h"

static size_t bitrev(size_t x, int bits) {
    size_t r = 0;
    for (int b = 0; b < bits; b++) r |= ((x >> b) & 1) << (bits - 1 - b);
    return r;
}

static uint64_t shoup52(uint64_t w, uint64_t q) {
    return (uint64_t)(((tsr_u128)w << 52) / q);
}

tsr_status tsr_ntt_table_create(size_t n, uint64_t q, tsr_ntt_table **out) {
    TSR_REQUIRE(out != NULL, "tsr_ntt_table_create: out is NULL");
    *out = NULL;
    int log_n = 0;
    while (log_n < 63 && ((size_t)1 << log_n) < n) log_n++;
    if (n < 2 || ((size_t)1 << log_n) != n || log_n > TSR_NTT_MAX_LOG_N)
        return tsr_fail(TSR_ERR_INVALID_ARG, "ring degree %zu is not a power of two in [2, 2^%d]",
                        n, TSR_NTT_MAX_LOG_N);
    if (q >= ((uint64_t)1 << TSR_MODQ_MAX_BITS))
        return tsr_fail(TSR_ERR_INVALID_ARG,
                        "modulus %llu has more than %d bits: the ring layer needs q < 2^%d",
                        (unsigned long long)q, TSR_MODQ_MAX_BITS, TSR_MODQ_MAX_BITS);
    if (q < 3 || (q - 1) % (2 * (uint64_t)n) != 0)
        return tsr_fail(TSR_ERR_INVALID_ARG,
                        "modulus %llu is not 1 mod 2N = %llu: no negacyclic NTT exists; "
                        "generate primes with tsr_prime_generate",
                        (unsigned long long)q, (unsigned long long)(2 * n));
    if (!tsr_prime_is_prime(q))
        return tsr_fail(TSR_ERR_INVALID_ARG, "modulus %llu is not prime", (unsigned long long)q);

    tsr_ntt_table *t = tsr_calloc(sizeof *t);
    if (!t) return tsr_fail(TSR_ERR_NOMEM, "out of memory for NTT tables");
    t->n = n;
    t->log_n = log_n;
    t->refs = 1;
    tsr_modulus_init(&t->mod, q);
    t->psi = tsr_prime_root(q, n);
    TSR_ASSERT(t->psi != 0);
    int ifma = q < ((uint64_t)1 << 50);
    t->fwd = tsr_calloc_array(n, 8);
    t->fwd_sh = tsr_calloc_array(n, 8);
    t->inv = tsr_calloc_array(n, 8);
    t->inv_sh = tsr_calloc_array(n, 8);
    if (ifma) {
        t->fwd52_sh = tsr_calloc_array(n, 8);
        t->inv52_sh = tsr_calloc_array(n, 8);
    }
    const size_t n16 = n >= 16 ? n / 16 : 1;
    if (ifma) {
        t->fwd4 = tsr_calloc_array(n16, 8);
        t->fwd4_sh = tsr_calloc_array(n16, 8);
        t->fwd8 = tsr_calloc_array(n16, 8);
        t->fwd8_sh = tsr_calloc_array(n16, 8);
        t->inv4 = tsr_calloc_array(n16, 8);
        t->inv4_sh = tsr_calloc_array(n16, 8);
        t->inv8 = tsr_calloc_array(n16, 8);
        t->inv8_sh = tsr_calloc_array(n16, 8);
    }
    if (!t->fwd || !t->fwd_sh || !t->inv || !t->inv_sh ||
        (ifma && (!t->fwd52_sh || !t->inv52_sh || !t->fwd4 || !t->fwd4_sh || !t->fwd8 ||
                  !t->fwd8_sh || !t->inv4 || !t->inv4_sh || !t->inv8 || !t->inv8_sh))) {
        tsr_ntt_table_free(t);
        return tsr_fail(TSR_ERR_NOMEM, "out of memory for NTT tables (N = %zu)", n);
    }
    const tsr_modulus *m = &t->mod;
    uint64_t psi_inv = tsr_modq_inv(t->psi, q);
    /* Powers in natural order, then scatter to bit-reversed positions. */
    uint64_t pw = 1, pwi = 1;
    for (size_t k = 0; k < n; k++) {
        size_t r = bitrev(k, log_n);
        t->fwd[r] = pw;
        t->inv[r] = pwi;
        pw = tsr_modq_mul(m, pw, t->psi);
        pwi = tsr_modq_mul(m, pwi, psi_inv);
    }
    for (size_t k = 0; k < n; k++) {
        t->fwd_sh[k] = tsr_modq_shoup(t->fwd[k], q);
        t->inv_sh[k] = tsr_modq_shoup(t->inv[k], q);
        if (ifma) {
            t->fwd52_sh[k] = shoup52(t->fwd[k], q);
            t->inv52_sh[k] = shoup52(t->inv[k], q);
        }
    }
    if (ifma && n >= 16) {
        for (size_t k = 0; k < n / 16; k++) {
            t->fwd4[k] = t->fwd[4 * k];
            t->fwd8[k] = t->fwd[8 * k];
            t->inv4[k] = t->inv[4 * k];
            t->inv8[k] = t->inv[8 * k];
            t->fwd4_sh[k] = shoup52(t->fwd4[k], q);
            t->fwd8_sh[k] = shoup52(t->fwd8[k], q);
            t->inv4_sh[k] = shoup52(t->inv4[k], q);
            t->inv8_sh[k] = shoup52(t->inv8[k], q);
        }
    }
    t->n_inv = tsr_modq_inv(n % q, q);
    t->n_inv_sh = tsr_modq_shoup(t->n_inv, q);
    t->inv_last = tsr_modq_mul(m, t->n_inv, t->inv[1]);
    t->inv_last_sh = tsr_modq_shoup(t->inv_last, q);
    if (ifma) {
        t->n_inv52_sh = shoup52(t->n_inv, q);
        t->inv_last52_sh = shoup52(t->inv_last, q);
    }
    *out = t;
    return TSR_OK;
}

tsr_ntt_table *tsr_ntt_table_ref(const tsr_ntt_table *t) {
    TSR_REQUIRE(t != NULL, "tsr_ntt_table_ref: t is NULL");
    tsr_ntt_table *mt = (tsr_ntt_table *)t;
    __atomic_add_fetch(&mt->refs, 1, __ATOMIC_RELAXED);
    return mt;
}

void tsr_ntt_table_free(tsr_ntt_table *t) {
    if (!t) return;
    if (__atomic_sub_fetch(&t->refs, 1, __ATOMIC_ACQ_REL) > 0) return;
    tsr_free(t->fwd);
    tsr_free(t->fwd_sh);
    tsr_free(t->inv);
    tsr_free(t->inv_sh);
    tsr_free(t->fwd52_sh);
    tsr_free(t->inv52_sh);
    tsr_free(t->fwd4);
    tsr_free(t->fwd4_sh);
    tsr_free(t->fwd8);
    tsr_free(t->fwd8_sh);
    tsr_free(t->inv4);
    tsr_free(t->inv4_sh);
    tsr_free(t->inv8);
    tsr_free(t->inv8_sh);
    tsr_free(t);
}

void tsr_ntt_forward(const tsr_ntt_table *t, uint64_t *a) {
    tsr_ring_kernels_active()->ntt_fwd(t, a);
}

void tsr_ntt_inverse(const tsr_ntt_table *t, uint64_t *a) {
    tsr_ring_kernels_active()->ntt_inv(t, a);
}

unsigned tsr_ntt_split_log(size_t n) {
    unsigned r = 0;
    while ((n >> r) > TSR_NTT_SPLIT_BLOCK) r++;
    return r;
}

void tsr_ntt_forward_outer(const tsr_ntt_table *t, uint64_t *a, size_t len, unsigned r) {
    tsr_ring_kernels_active()->ntt_fwd_outer(t, a, len, r);
}

void tsr_ntt_forward_inner(const tsr_ntt_table *t, uint64_t *dst, const uint64_t *src, size_t b,
                           unsigned r, tsr_prefetch *pf) {
    tsr_ring_kernels_active()->ntt_fwd_inner(t, dst, src, b, r, pf);
}

void tsr_ntt_inverse_inner(const tsr_ntt_table *t, uint64_t *dst, const uint64_t *src, size_t b,
                           unsigned r, tsr_prefetch *pf) {
    tsr_ring_kernels_active()->ntt_inv_inner(t, dst, src, b, r, pf);
}

void tsr_ntt_inverse_outer(const tsr_ntt_table *t, uint64_t *a, size_t len, unsigned r) {
    tsr_ring_kernels_active()->ntt_inv_outer(t, a, len, r);
}
