/*
 * ring/rns.c - RNS bases (tables, CRT constants), polynomial arithmetic over
 * limbs, integer conversions, CRT reconstruction and automorphisms.
 */
#include "ring/rns.h"
#include "ring/kernels.h"
#include "ring/mw.h"
#include "ring/prime.h"
#include "core/alloc.h"
#include "core/error.h"

#include <math.h>
#include <string.h>

/* OpenMP over limbs only when there is enough work to pay for the threads. */
#ifdef _OPENMP
#define TSR_PRAGMA_(x) _Pragma(#x)
#define PAR_LIMBS(b) TSR_PRAGMA_(omp parallel for schedule(static) if ((b)->count > 1 && (b)->n >= 2048))
#else
#define PAR_LIMBS(b)
#endif

/* ---- bases ------------------------------------------------------------ */

static tsr_status basis_alloc(size_t n, size_t count, tsr_rns_basis **out) {
    *out = NULL;
    tsr_rns_basis *b = tsr_calloc(sizeof *b);
    if (!b) return tsr_fail(TSR_ERR_NOMEM, "out of memory for an RNS basis");
    b->n = n;
    b->log_n = 0;
    while (((size_t)1 << b->log_n) < n) b->log_n++;
    b->count = count;
    b->q = tsr_calloc_array(count, sizeof *b->q);
    b->mod = tsr_calloc_array(count, sizeof *b->mod);
    b->ntt = tsr_calloc_array(count, sizeof *b->ntt);
    b->qhat_inv = tsr_calloc_array(count, 8);
    b->qhat_inv_sh = tsr_calloc_array(count, 8);
    b->inv_q_hi = tsr_calloc_array(count, 8);
    b->inv_q_lo = tsr_calloc_array(count, 8);
    if (!b->q || !b->mod || !b->ntt || !b->qhat_inv || !b->qhat_inv_sh || !b->inv_q_hi ||
        !b->inv_q_lo) {
        tsr_rns_basis_free(b);
        return tsr_fail(TSR_ERR_NOMEM, "out of memory for an RNS basis");
    }
    *out = b;
    return TSR_OK;
}

/* Fill the CRT constants of b from b->q / b->mod. */
static tsr_status basis_crt(tsr_rns_basis *b) {
    size_t L = b->count, bits = 0;
    for (size_t i = 0; i < L; i++) bits += (size_t)b->mod[i].bits;
    b->words = (bits + 63) / 64 + 1; /* room for values up to L * Q */
    size_t W = b->words;
    b->big_q = tsr_calloc_array(W, 8);
    b->qhat = tsr_calloc_array(L * W, 8);
    if (!b->big_q || !b->qhat) return tsr_fail(TSR_ERR_NOMEM, "out of memory for CRT constants");
    b->big_q[0] = 1;
    for (size_t i = 0; i < L; i++) {
        uint64_t tmp[TSR_RNS_MAX_PRIMES + 2] = { 0 };
        TSR_ASSERT(tsr_mw_addmul(tmp, b->big_q, W, b->q[i]) == 0);
        memcpy(b->big_q, tmp, W * 8);
    }
    for (size_t i = 0; i < L; i++) {
        uint64_t *qh = b->qhat + i * W;
        qh[0] = 1;
        uint64_t qh_mod = 1; /* (Q / q_i) mod q_i */
        for (size_t j = 0; j < L; j++) {
            if (j == i) continue;
            uint64_t tmp[TSR_RNS_MAX_PRIMES + 2] = { 0 };
            TSR_ASSERT(tsr_mw_addmul(tmp, qh, W, b->q[j]) == 0);
            memcpy(qh, tmp, W * 8);
            qh_mod = tsr_modq_mul(&b->mod[i], qh_mod, b->q[j] % b->q[i]);
        }
        b->qhat_inv[i] = tsr_modq_inv(qh_mod, b->q[i]);
        TSR_ASSERT(b->qhat_inv[i] != 0 || b->q[i] == 1);
        b->qhat_inv_sh[i] = tsr_modq_shoup(b->qhat_inv[i], b->q[i]);
        b->inv_q_hi[i] = b->mod[i].mu_hi;
        b->inv_q_lo[i] = b->mod[i].mu_lo;
    }
    return TSR_OK;
}

static int is_pow2(size_t n) {
    return n >= 2 && (n & (n - 1)) == 0;
}

tsr_status tsr_rns_basis_create(size_t n, const uint64_t *primes, size_t count,
                                tsr_rns_basis **out) {
    TSR_REQUIRE(out != NULL, "tsr_rns_basis_create: out is NULL");
    TSR_REQUIRE(primes != NULL || count == 0, "tsr_rns_basis_create: primes is NULL");
    *out = NULL;
    if (!is_pow2(n) || n > ((size_t)1 << TSR_NTT_MAX_LOG_N))
        return tsr_fail(TSR_ERR_INVALID_ARG, "ring degree %zu is not a power of two in [2, 2^%d]",
                        n, TSR_NTT_MAX_LOG_N);
    if (count == 0 || count > TSR_RNS_MAX_PRIMES)
        return tsr_fail(TSR_ERR_INVALID_ARG, "an RNS basis needs 1..%d primes (got %zu)",
                        TSR_RNS_MAX_PRIMES, count);
    for (size_t i = 0; i < count; i++)
        for (size_t j = 0; j < i; j++)
            if (primes[i] == primes[j])
                return tsr_fail(TSR_ERR_INVALID_ARG,
                                "prime %llu appears twice in the basis (positions %zu and %zu)",
                                (unsigned long long)primes[i], j, i);
    tsr_rns_basis *b;
    TSR_TRY(basis_alloc(n, count, &b));
    tsr_status st = TSR_OK;
    /* Table construction is the expensive part (4N Shoup divisions per prime). */
#ifdef _OPENMP
#pragma omp parallel for schedule(dynamic) if (count > 1 && n >= 1024)
#endif
    for (size_t i = 0; i < count; i++) {
        tsr_status s = tsr_ntt_table_create(n, primes[i], &b->ntt[i]);
        if (s != TSR_OK) {
#ifdef _OPENMP
#pragma omp critical(tsr_rns_basis_create)
#endif
            {
                if (st == TSR_OK || i == 0) st = s;
            }
        }
    }
    if (st != TSR_OK) {
        /* Re-run serially on the first bad prime so this thread holds its message. */
        for (size_t i = 0; i < count; i++) {
            if (b->ntt[i]) continue;
            tsr_ntt_table *t = NULL;
            st = tsr_ntt_table_create(n, primes[i], &t);
            tsr_ntt_table_free(t);
            if (st != TSR_OK) {
                tsr_fail_context(st, "RNS basis prime %zu of %zu: ", i, count);
                break;
            }
        }
        tsr_rns_basis_free(b);
        return st != TSR_OK ? st : tsr_fail(TSR_ERR_INTERNAL, "NTT table construction failed");
    }
    for (size_t i = 0; i < count; i++) {
        b->q[i] = primes[i];
        b->mod[i] = b->ntt[i]->mod;
    }
    st = basis_crt(b);
    if (st != TSR_OK) {
        tsr_rns_basis_free(b);
        return st;
    }
    *out = b;
    return TSR_OK;
}

/* Basis from a list of table references (taking new references). */
static tsr_status basis_from_tables(size_t n, tsr_ntt_table *const *tabs, size_t count,
                                    tsr_rns_basis **out) {
    *out = NULL;
    if (count == 0 || count > TSR_RNS_MAX_PRIMES)
        return tsr_fail(TSR_ERR_INVALID_ARG, "an RNS basis needs 1..%d primes (got %zu)",
                        TSR_RNS_MAX_PRIMES, count);
    for (size_t i = 0; i < count; i++)
        for (size_t j = 0; j < i; j++)
            if (tabs[i]->mod.q == tabs[j]->mod.q)
                return tsr_fail(TSR_ERR_INVALID_ARG, "prime %llu appears twice in the basis",
                                (unsigned long long)tabs[i]->mod.q);
    tsr_rns_basis *b;
    TSR_TRY(basis_alloc(n, count, &b));
    for (size_t i = 0; i < count; i++) {
        b->ntt[i] = tsr_ntt_table_ref(tabs[i]);
        b->q[i] = tabs[i]->mod.q;
        b->mod[i] = tabs[i]->mod;
    }
    tsr_status st = basis_crt(b);
    if (st != TSR_OK) {
        tsr_rns_basis_free(b);
        return st;
    }
    *out = b;
    return TSR_OK;
}

tsr_status tsr_rns_basis_select(const tsr_rns_basis *from, const size_t *idx, size_t count,
                                tsr_rns_basis **out) {
    TSR_REQUIRE(from != NULL && out != NULL, "tsr_rns_basis_select: NULL argument");
    TSR_REQUIRE(idx != NULL || count == 0, "tsr_rns_basis_select: idx is NULL");
    tsr_ntt_table *tabs[TSR_RNS_MAX_PRIMES];
    if (count > TSR_RNS_MAX_PRIMES)
        return tsr_fail(TSR_ERR_INVALID_ARG, "an RNS basis holds at most %d primes",
                        TSR_RNS_MAX_PRIMES);
    for (size_t i = 0; i < count; i++) {
        if (idx[i] >= from->count)
            return tsr_fail(TSR_ERR_INVALID_ARG, "prime index %zu is out of range (basis has %zu)",
                            idx[i], from->count);
        tabs[i] = from->ntt[idx[i]];
    }
    return basis_from_tables(from->n, tabs, count, out);
}

tsr_status tsr_rns_basis_prefix(const tsr_rns_basis *from, size_t count, tsr_rns_basis **out) {
    TSR_REQUIRE(from != NULL && out != NULL, "tsr_rns_basis_prefix: NULL argument");
    if (count == 0 || count > from->count)
        return tsr_fail(TSR_ERR_INVALID_ARG, "prefix of %zu primes from a basis of %zu", count,
                        from->count);
    return basis_from_tables(from->n, from->ntt, count, out);
}

tsr_status tsr_rns_basis_concat(const tsr_rns_basis *a, const tsr_rns_basis *b,
                                tsr_rns_basis **out) {
    TSR_REQUIRE(a != NULL && b != NULL && out != NULL, "tsr_rns_basis_concat: NULL argument");
    if (a->n != b->n)
        return tsr_fail(TSR_ERR_MISMATCH, "bases have different ring degrees (%zu and %zu)", a->n,
                        b->n);
    if (a->count + b->count > TSR_RNS_MAX_PRIMES)
        return tsr_fail(TSR_ERR_INVALID_ARG, "an RNS basis holds at most %d primes",
                        TSR_RNS_MAX_PRIMES);
    tsr_ntt_table *tabs[TSR_RNS_MAX_PRIMES];
    for (size_t i = 0; i < a->count; i++) tabs[i] = a->ntt[i];
    for (size_t i = 0; i < b->count; i++) tabs[a->count + i] = b->ntt[i];
    return basis_from_tables(a->n, tabs, a->count + b->count, out);
}

void tsr_rns_basis_free(tsr_rns_basis *b) {
    if (!b) return;
    if (b->ntt)
        for (size_t i = 0; i < b->count; i++) tsr_ntt_table_free(b->ntt[i]);
    tsr_free(b->ntt);
    tsr_free(b->q);
    tsr_free(b->mod);
    tsr_free(b->big_q);
    tsr_free(b->qhat);
    tsr_free(b->qhat_inv);
    tsr_free(b->qhat_inv_sh);
    tsr_free(b->inv_q_hi);
    tsr_free(b->inv_q_lo);
    tsr_free(b);
}

long tsr_rns_basis_find(const tsr_rns_basis *b, uint64_t q) {
    for (size_t i = 0; i < b->count; i++)
        if (b->q[i] == q) return (long)i;
    return -1;
}

tsr_status tsr_rns_poly_new(const tsr_rns_basis *b, uint64_t **out) {
    TSR_REQUIRE(b != NULL && out != NULL, "tsr_rns_poly_new: NULL argument");
    *out = tsr_calloc_array(tsr_rns_poly_words(b), sizeof(uint64_t));
    if (!*out)
        return tsr_fail(TSR_ERR_NOMEM, "out of memory for a polynomial (%zu limbs of N = %zu)",
                        b->count, b->n);
    return TSR_OK;
}

/* ---- transforms and element-wise ops ------------------------------------ */

void tsr_rns_ntt(const tsr_rns_basis *b, uint64_t *a) {
    const tsr_ring_kernels *k = tsr_ring_kernels_active();
    PAR_LIMBS(b)
    for (size_t i = 0; i < b->count; i++) k->ntt_fwd(b->ntt[i], a + i * b->n);
}

void tsr_rns_intt(const tsr_rns_basis *b, uint64_t *a) {
    const tsr_ring_kernels *k = tsr_ring_kernels_active();
    PAR_LIMBS(b)
    for (size_t i = 0; i < b->count; i++) k->ntt_inv(b->ntt[i], a + i * b->n);
}

void tsr_rns_add(const tsr_rns_basis *b, uint64_t *out, const uint64_t *x, const uint64_t *y) {
    const tsr_ring_kernels *k = tsr_ring_kernels_active();
    const size_t n = b->n;
    PAR_LIMBS(b)
    for (size_t i = 0; i < b->count; i++) k->add(&b->mod[i], out + i * n, x + i * n, y + i * n, n);
}

void tsr_rns_sub(const tsr_rns_basis *b, uint64_t *out, const uint64_t *x, const uint64_t *y) {
    const tsr_ring_kernels *k = tsr_ring_kernels_active();
    const size_t n = b->n;
    PAR_LIMBS(b)
    for (size_t i = 0; i < b->count; i++) k->sub(&b->mod[i], out + i * n, x + i * n, y + i * n, n);
}

void tsr_rns_neg(const tsr_rns_basis *b, uint64_t *out, const uint64_t *x) {
    const tsr_ring_kernels *k = tsr_ring_kernels_active();
    const size_t n = b->n;
    PAR_LIMBS(b)
    for (size_t i = 0; i < b->count; i++) k->neg(&b->mod[i], out + i * n, x + i * n, n);
}

void tsr_rns_mul(const tsr_rns_basis *b, uint64_t *out, const uint64_t *x, const uint64_t *y) {
    const tsr_ring_kernels *k = tsr_ring_kernels_active();
    const size_t n = b->n;
    PAR_LIMBS(b)
    for (size_t i = 0; i < b->count; i++) k->mul(&b->mod[i], out + i * n, x + i * n, y + i * n, n);
}

void tsr_rns_mul_add(const tsr_rns_basis *b, uint64_t *out, const uint64_t *x, const uint64_t *y) {
    const tsr_ring_kernels *k = tsr_ring_kernels_active();
    const size_t n = b->n;
    PAR_LIMBS(b)
    for (size_t i = 0; i < b->count; i++)
        k->mul_add(&b->mod[i], out + i * n, x + i * n, y + i * n, n);
}

void tsr_rns_mul_scalar(const tsr_rns_basis *b, uint64_t *out, const uint64_t *x,
                        const uint64_t *s) {
    const tsr_ring_kernels *k = tsr_ring_kernels_active();
    const size_t n = b->n;
    PAR_LIMBS(b)
    for (size_t i = 0; i < b->count; i++) {
        TSR_REQUIRE(s[i] < b->q[i], "tsr_rns_mul_scalar: scalar not reduced");
        k->mul_scalar(&b->mod[i], out + i * n, x + i * n, s[i], tsr_modq_shoup(s[i], b->q[i]), n);
    }
}

void tsr_rns_mul_scalar_add(const tsr_rns_basis *b, uint64_t *out, const uint64_t *x,
                            const uint64_t *s) {
    const tsr_ring_kernels *k = tsr_ring_kernels_active();
    const size_t n = b->n;
    PAR_LIMBS(b)
    for (size_t i = 0; i < b->count; i++) {
        TSR_REQUIRE(s[i] < b->q[i], "tsr_rns_mul_scalar_add: scalar not reduced");
        k->mul_scalar_add(&b->mod[i], out + i * n, x + i * n, s[i], tsr_modq_shoup(s[i], b->q[i]),
                          n);
    }
}

void tsr_rns_add_scalar(const tsr_rns_basis *b, uint64_t *out, const uint64_t *x,
                        const uint64_t *s) {
    const tsr_ring_kernels *k = tsr_ring_kernels_active();
    const size_t n = b->n;
    PAR_LIMBS(b)
    for (size_t i = 0; i < b->count; i++) {
        TSR_REQUIRE(s[i] < b->q[i], "tsr_rns_add_scalar: scalar not reduced");
        k->add_scalar(&b->mod[i], out + i * n, x + i * n, s[i], n);
    }
}

/* ---- integers <-> RNS ------------------------------------------------- */

void tsr_rns_scalar_from_i64(const tsr_rns_basis *b, int64_t v, uint64_t *s) {
    for (size_t i = 0; i < b->count; i++) s[i] = tsr_modq_from_i64(&b->mod[i], v);
}

/* round(v) mod q for a finite double: exact at any magnitude. */
static uint64_t double_mod(const tsr_modulus *m, double v) {
    double r = round(v);
    double a = fabs(r);
    uint64_t res;
    if (a < 0x1p63) {
        res = tsr_modq_reduce64(m, (uint64_t)a);
    } else {
        int e;
        double f = frexp(a, &e);                              /* a = f * 2^e, f in [0.5, 1) */
        uint64_t mant = (uint64_t)ldexp(f, 53);               /* exact 53-bit integer */
        uint64_t p2 = tsr_modq_pow(m, 2, (uint64_t)(e - 53)); /* e >= 64 here */
        res = tsr_modq_mul(m, tsr_modq_reduce64(m, mant), p2);
    }
    return r < 0 ? tsr_modq_neg(res, m->q) : res;
}

tsr_status tsr_rns_scalar_from_double(const tsr_rns_basis *b, double v, uint64_t *s) {
    if (!isfinite(v))
        return tsr_fail(TSR_ERR_INVALID_ARG, "cannot encode a non-finite value (%g)", v);
    for (size_t i = 0; i < b->count; i++) s[i] = double_mod(&b->mod[i], v);
    return TSR_OK;
}

void tsr_rns_from_i64(const tsr_rns_basis *b, uint64_t *out, const int64_t *v) {
    const size_t n = b->n;
    PAR_LIMBS(b)
    for (size_t i = 0; i < b->count; i++) {
        const tsr_modulus *m = &b->mod[i];
        uint64_t *o = out + i * n;
        for (size_t k = 0; k < n; k++) o[k] = tsr_modq_from_i64(m, v[k]);
    }
}

void tsr_rns_from_i8(const tsr_rns_basis *b, uint64_t *out, const int8_t *v) {
    const size_t n = b->n;
    PAR_LIMBS(b)
    for (size_t i = 0; i < b->count; i++) {
        const uint64_t q = b->q[i];
        uint64_t *o = out + i * n;
        /* |v| < 128 < q for every prime here (q = 1 mod 2N, N >= 2 ... and q > 2^7 is
         * not guaranteed for tiny test primes, so reduce generally). */
        for (size_t k = 0; k < n; k++) {
            int64_t x = v[k];
            uint64_t ax = (uint64_t)(x < 0 ? -x : x) % q;
            o[k] = x < 0 ? tsr_modq_neg(ax, q) : ax;
        }
    }
}

tsr_status tsr_rns_from_double(const tsr_rns_basis *b, uint64_t *out, const double *v) {
    const size_t n = b->n;
    for (size_t k = 0; k < n; k++)
        if (!isfinite(v[k]))
            return tsr_fail(TSR_ERR_INVALID_ARG, "cannot encode a non-finite value at index %zu",
                            k);
    PAR_LIMBS(b)
    for (size_t i = 0; i < b->count; i++) {
        const tsr_modulus *m = &b->mod[i];
        uint64_t *o = out + i * n;
        for (size_t k = 0; k < n; k++) {
            double r = round(v[k]);
            if (fabs(r) < 0x1p62)
                o[k] = tsr_modq_from_i64(m, (int64_t)r);
            else
                o[k] = double_mod(m, v[k]);
        }
    }
    return TSR_OK;
}

/* ---- CRT reconstruction ----------------------------------------------- */

void tsr_rns_coeff_centered(const tsr_rns_basis *b, const uint64_t *a, size_t k, uint64_t *mag,
                            int *negative) {
    const size_t L = b->count, W = b->words, n = b->n;
    uint64_t x[TSR_RNS_MAX_PRIMES + 2] = { 0 };
    double est = 0;
    for (size_t i = 0; i < L; i++) {
        uint64_t y = tsr_modq_mul_shoup(a[i * n + k], b->qhat_inv[i], b->qhat_inv_sh[i], b->q[i]);
        TSR_ASSERT(tsr_mw_addmul(x, b->qhat + i * W, W, y) == 0);
        est += (double)y / (double)b->q[i];
    }
    /* x = sum y_i qhat_i < L*Q; est ~ x/Q with error < 2^-44: take a quotient that
     * is never too large, then finish exactly. */
    uint64_t u = est > 1e-6 ? (uint64_t)(est - 1e-6) : 0;
    TSR_ASSERT(tsr_mw_submul(x, b->big_q, W, u) == 0);
    while (tsr_mw_cmp(x, b->big_q, W) >= 0) tsr_mw_sub(x, x, b->big_q, W);
    /* x in [0, Q): centred value is x - Q when x >= Q - x (Q is odd: no tie). */
    uint64_t d[TSR_RNS_MAX_PRIMES + 2];
    tsr_mw_sub(d, b->big_q, x, W);
    if (tsr_mw_cmp(d, x, W) <= 0) {
        memcpy(mag, d, W * 8);
        *negative = 1;
    } else {
        memcpy(mag, x, W * 8);
        *negative = 0;
    }
}

/* Magnitude words -> long double, correctly rounded from the top 128 bits
 * with a sticky bit for everything below. */
static long double mw_to_ld(const uint64_t *m, size_t w) {
    size_t t = w;
    while (t > 0 && m[t - 1] == 0) t--;
    if (t == 0) return 0.0L;
    if (t == 1) return (long double)m[0];
    int lz = __builtin_clzll(m[t - 1]);
    uint64_t w1 = m[t - 1], w2 = m[t - 2], w3 = t >= 3 ? m[t - 3] : 0;
    uint64_t hi = lz ? (w1 << lz) | (w2 >> (64 - lz)) : w1;
    uint64_t lo = lz ? (w2 << lz) | (w3 >> (64 - lz)) : w2;
    /* Bits below the 128-bit window: the rest of w3 when shifted, then lower words. */
    int sticky = lz ? (w3 << lz) != 0 : w3 != 0;
    for (size_t i = 0; i + 3 < t && !sticky; i++) sticky = m[i] != 0;
    tsr_u128 v = ((tsr_u128)hi << 64) | lo;
    if (sticky) v |= 1;
    /* v holds bits [64*t - lz - 128, 64*t - lz) of the value. */
    return ldexpl((long double)v, (int)(64 * (t - 2)) - lz);
}

void tsr_rns_to_long_double(const tsr_rns_basis *b, const uint64_t *a, long double scale,
                            long double *out) {
    const size_t n = b->n;
#ifdef _OPENMP
#pragma omp parallel for schedule(static) if (n * b->count >= 4096)
#endif
    for (size_t k = 0; k < n; k++) {
        uint64_t mag[TSR_RNS_MAX_PRIMES + 2];
        int neg;
        tsr_rns_coeff_centered(b, a, k, mag, &neg);
        long double v = mw_to_ld(mag, b->words) * scale;
        out[k] = neg ? -v : v;
    }
}

void tsr_rns_to_double(const tsr_rns_basis *b, const uint64_t *a, double scale, double *out) {
    const size_t n = b->n;
#ifdef _OPENMP
#pragma omp parallel for schedule(static) if (n * b->count >= 4096)
#endif
    for (size_t k = 0; k < n; k++) {
        uint64_t mag[TSR_RNS_MAX_PRIMES + 2];
        int neg;
        tsr_rns_coeff_centered(b, a, k, mag, &neg);
        long double v = mw_to_ld(mag, b->words) * (long double)scale;
        out[k] = (double)(neg ? -v : v);
    }
}

/* ---- automorphisms ---------------------------------------------------- */

static size_t bitrev(size_t x, int bits) {
    size_t r = 0;
    for (int i = 0; i < bits; i++) r |= ((x >> i) & 1) << (bits - 1 - i);
    return r;
}

void tsr_rns_automorphism_ntt_index(size_t n, uint64_t g, uint32_t *idx) {
    TSR_REQUIRE(is_pow2(n) && (g & 1), "automorphism: n must be a power of two and g odd");
    int log_n = 0;
    while (((size_t)1 << log_n) < n) log_n++;
    const uint64_t mask = 2 * (uint64_t)n - 1;
    g &= mask;
    for (size_t j = 0; j < n; j++) {
        uint64_t e = tsr_ntt_eval_exponent(j, log_n);
        uint64_t e2 = (e * g) & mask; /* odd */
        idx[j] = (uint32_t)bitrev((size_t)(e2 >> 1), log_n);
    }
}

void tsr_rns_automorphism_ntt(const tsr_rns_basis *b, uint64_t *out, const uint64_t *a,
                              const uint32_t *idx) {
    TSR_REQUIRE(out != a, "tsr_rns_automorphism_ntt: out must not alias the input");
    const tsr_ring_kernels *k = tsr_ring_kernels_active();
    const size_t n = b->n;
    PAR_LIMBS(b)
    for (size_t i = 0; i < b->count; i++) {
        const uint64_t *ai = a + i * n;
        uint64_t *oi = out + i * n;
        k->permute(oi, ai, idx, n, 1);
    }
}

void tsr_rns_automorphism_coeff(const tsr_rns_basis *b, uint64_t *out, const uint64_t *a,
                                uint64_t g) {
    TSR_REQUIRE(out != a, "tsr_rns_automorphism_coeff: out must not alias the input");
    TSR_REQUIRE(g & 1, "tsr_rns_automorphism_coeff: g must be odd");
    const size_t n = b->n;
    const uint64_t mask = 2 * (uint64_t)n - 1;
    g &= mask;
    PAR_LIMBS(b)
    for (size_t i = 0; i < b->count; i++) {
        const uint64_t *ai = a + i * n;
        uint64_t *oi = out + i * n;
        const uint64_t q = b->q[i];
        for (size_t j = 0; j < n; j++) {
            uint64_t e = ((uint64_t)j * g) & mask;
            if (e < n)
                oi[e] = ai[j];
            else
                oi[e - n] = tsr_modq_neg(ai[j], q);
        }
    }
}
