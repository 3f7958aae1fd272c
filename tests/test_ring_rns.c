/*
 * tests/test_ring_rns.c - RNS bases and polynomials: element-wise ops against
 * per-coefficient references, integer/double conversions, exact CRT
 * reconstruction, basis conversion (approximate within its documented error,
 * exact), ModDown and rescale against big-integer round(x / P), and OpenMP
 * 1-vs-2-thread bit identity.
 */
#include "testutil.h"
#include "ring_ref.h"

#include "tessera.h"
#include "core/alloc.h"
#include "ring/ring.h"

#include <float.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

static tsr_rns_basis *make_basis(size_t n, int bits, size_t count, const uint64_t *exclude,
                                 size_t n_ex, uint64_t *primes_out) {
    uint64_t q[TSR_RNS_MAX_PRIMES];
    tt_ok(tsr_prime_generate(bits, n, count, exclude, n_ex, q));
    if (primes_out) memcpy(primes_out, q, count * 8);
    tsr_rns_basis *b;
    tt_ok(tsr_rns_basis_create(n, q, count, &b));
    return b;
}

static uint64_t *new_poly(const tsr_rns_basis *b) {
    uint64_t *p;
    tt_ok(tsr_rns_poly_new(b, &p));
    assert_int_equal((uintptr_t)p % 64, 0);
    return p;
}

static void random_poly(tsr_prng *g, const tsr_rns_basis *b, uint64_t *a) {
    for (size_t i = 0; i < b->count; i++)
        for (size_t k = 0; k < b->n; k++) a[i * b->n + k] = tsr_prng_uniform(g, b->q[i]);
}

/* Residues of big integers x[k] (k < n) into a polynomial over b. */
static void big_to_poly(const tsr_rns_basis *b, const big *x, uint64_t *a) {
    for (size_t i = 0; i < b->count; i++)
        for (size_t k = 0; k < b->n; k++) a[i * b->n + k] = big_mod_small(&x[k], b->q[i]);
}

static void test_basis_errors(void **state) {
    (void)state;
    uint64_t q[3];
    tt_ok(tsr_prime_generate(40, 64, 3, NULL, 0, q));
    tsr_rns_basis *b = NULL, *s = NULL;
    uint64_t dup[2] = { q[0], q[0] };
    tt_fails(tsr_rns_basis_create(64, dup, 2, &b), TSR_ERR_INVALID_ARG);
    tt_fails(tsr_rns_basis_create(48, q, 3, &b), TSR_ERR_INVALID_ARG);
    tt_fails(tsr_rns_basis_create(64, q, 0, &b), TSR_ERR_INVALID_ARG);
    uint64_t bad[2] = { q[0], 1000000007 };
    tt_fails(tsr_rns_basis_create(64, bad, 2, &b), TSR_ERR_INVALID_ARG);
    assert_non_null(strstr(tsr_last_error(), "prime 1 of 2"));
    assert_null(b);
    tt_ok(tsr_rns_basis_create(64, q, 3, &b));
    assert_int_equal(b->count, 3);
    assert_int_equal(b->n, 64);
    assert_int_equal(b->log_n, 6);
    size_t idx[2] = { 2, 0 };
    tt_ok(tsr_rns_basis_select(b, idx, 2, &s));
    assert_int_equal(s->q[0], q[2]);
    assert_int_equal(s->q[1], q[0]);
    size_t bad_idx[2] = { 0, 7 };
    tsr_rns_basis *t = NULL;
    tt_fails(tsr_rns_basis_select(b, bad_idx, 2, &t), TSR_ERR_INVALID_ARG);
    size_t dup_idx[2] = { 1, 1 };
    tt_fails(tsr_rns_basis_select(b, dup_idx, 2, &t), TSR_ERR_INVALID_ARG);
    tt_fails(tsr_rns_basis_prefix(b, 4, &t), TSR_ERR_INVALID_ARG);
    tt_fails(tsr_rns_basis_concat(b, s, &t), TSR_ERR_INVALID_ARG); /* overlapping */
    assert_int_equal(tsr_rns_basis_find(b, q[1]), 1);
    assert_int_equal(tsr_rns_basis_find(b, 17), -1);
    /* Children outlive the parent. */
    tsr_rns_basis_free(b);
    assert_int_equal(s->ntt[0]->mod.q, q[2]);
    tsr_rns_basis_free(s);
    tsr_rns_basis_free(NULL);
}

static void test_elementwise(void **state) {
    (void)state;
    tsr_prng g;
    tt_prng(&g, 10);
    const size_t n = 256;
    static const int bits[] = { 30, 49, 60, 62 };
    for (size_t bi = 0; bi < 4; bi++) {
        tsr_rns_basis *b = make_basis(n, bits[bi], 3, NULL, 0, NULL);
        uint64_t *x = new_poly(b), *y = new_poly(b), *o = new_poly(b), *acc = new_poly(b);
        random_poly(&g, b, x);
        random_poly(&g, b, y);
        random_poly(&g, b, acc);
        x[0] = 0;
        y[1] = 0;
        x[2] = b->q[0] - 1;
        y[2] = b->q[0] - 1;
        uint64_t s[3], s2[3];
        for (size_t i = 0; i < 3; i++) {
            s[i] = tsr_prng_uniform(&g, b->q[i]);
            s2[i] = tsr_prng_uniform(&g, b->q[i]);
        }
        const size_t W = tsr_rns_poly_words(b);
#define EACH(expr_out, ref)                      \
    do {                                         \
        for (size_t i = 0; i < b->count; i++) {  \
            uint64_t q = b->q[i];                \
            (void)q;                             \
            for (size_t k = 0; k < n; k++) {     \
                size_t j = i * n + k;            \
                (void)j;                         \
                assert_int_equal(expr_out, ref); \
            }                                    \
        }                                        \
    } while (0)
        tsr_rns_add(b, o, x, y);
        EACH(o[j], (x[j] + y[j]) % q);
        tsr_rns_sub(b, o, x, y);
        EACH(o[j], (x[j] + q - y[j]) % q);
        tsr_rns_neg(b, o, x);
        EACH(o[j], (q - x[j]) % q);
        tsr_rns_mul(b, o, x, y);
        EACH(o[j], ref_mulmod(x[j], y[j], q));
        memcpy(o, acc, W * 8);
        tsr_rns_mul_add(b, o, x, y);
        EACH(o[j], (acc[j] + ref_mulmod(x[j], y[j], q)) % q);
        tsr_rns_mul_scalar(b, o, x, s);
        EACH(o[j], ref_mulmod(x[j], s[i], q));
        memcpy(o, acc, W * 8);
        tsr_rns_mul_scalar_add(b, o, x, s2);
        EACH(o[j], (acc[j] + ref_mulmod(x[j], s2[i], q)) % q);
        tsr_rns_add_scalar(b, o, x, s);
        EACH(o[j], (x[j] + s[i]) % q);
        /* in place */
        memcpy(o, x, W * 8);
        tsr_rns_mul(b, o, o, y);
        EACH(o[j], ref_mulmod(x[j], y[j], q));
        /* single-limb API including Shoup-precomputed operands */
        uint64_t *wp = tsr_alloc(n * 8);
        tsr_vec_shoup_precompute(&b->mod[1], wp, y + n, n);
        tsr_vec_mul_shoup(&b->mod[1], o, x + n, y + n, wp, n);
        for (size_t k = 0; k < n; k++)
            assert_int_equal(o[k], ref_mulmod(x[n + k], y[n + k], b->q[1]));
        tsr_vec_mul_scalar(&b->mod[2], o, x + 2 * n, s[2], n);
        for (size_t k = 0; k < n; k++)
            assert_int_equal(o[k], ref_mulmod(x[2 * n + k], s[2], b->q[2]));
        tsr_free(wp);
#undef EACH
        tsr_free(x);
        tsr_free(y);
        tsr_free(o);
        tsr_free(acc);
        tsr_rns_basis_free(b);
    }
}

/* Inner products (key-switching shape) against a naive reference. */
static void test_vec_dot(void **state) {
    (void)state;
    tsr_prng g;
    tt_prng(&g, 17);
    static const int bits[] = { 20, 40, 49, 50, 60, 62 };
    static const size_t terms_list[] = { 1, 3, 15, 16, 17, 40 };
    const size_t n = 77;
    uint64_t *x[40], *y0[40], *y1[40];
    for (int j = 0; j < 40; j++) {
        x[j] = tsr_alloc(n * 8);
        y0[j] = tsr_alloc(n * 8);
        y1[j] = tsr_alloc(n * 8);
    }
    uint64_t *o0 = tsr_alloc(n * 8), *o1 = tsr_alloc(n * 8), *o2 = tsr_alloc(n * 8);
    for (size_t bi = 0; bi < sizeof bits / sizeof bits[0]; bi++) {
        uint64_t q;
        tt_ok(tsr_prime_generate(bits[bi], 8, 1, NULL, 0, &q));
        tsr_modulus m;
        tsr_modulus_init(&m, q);
        for (size_t ti = 0; ti < sizeof terms_list / sizeof terms_list[0]; ti++) {
            const size_t terms = terms_list[ti];
            for (size_t j = 0; j < terms; j++)
                for (size_t k = 0; k < n; k++) {
                    x[j][k] = k < 3 ? q - 1 : tsr_prng_uniform(&g, q);
                    y0[j][k] = k < 3 ? q - 1 : tsr_prng_uniform(&g, q);
                    y1[j][k] = tsr_prng_uniform(&g, q);
                }
            tsr_vec_dot2(&m, o0, o1, (const uint64_t *const *)x, (const uint64_t *const *)y0,
                         (const uint64_t *const *)y1, terms, n);
            tsr_vec_dot(&m, o2, (const uint64_t *const *)x, (const uint64_t *const *)y1, terms, n);
            for (size_t k = 0; k < n; k++) {
                uint64_t r0 = 0, r1 = 0;
                for (size_t j = 0; j < terms; j++) {
                    r0 = (r0 + ref_mulmod(x[j][k], y0[j][k], q)) % q;
                    r1 = (r1 + ref_mulmod(x[j][k], y1[j][k], q)) % q;
                }
                assert_int_equal(o0[k], r0);
                assert_int_equal(o1[k], r1);
                assert_int_equal(o2[k], r1);
            }
        }
    }
    for (int j = 0; j < 40; j++) {
        tsr_free(x[j]);
        tsr_free(y0[j]);
        tsr_free(y1[j]);
    }
    tsr_free(o0);
    tsr_free(o1);
    tsr_free(o2);
}

/* Reference: x mod q for a double rounded half away from zero. */
static uint64_t ref_double_mod(double v, uint64_t q) {
    double r = round(v);
    double a = fabs(r);
    int e;
    double f = frexp(a, &e);
    uint64_t res;
    if (a == 0) {
        res = 0;
    } else if (e <= 64) {
        res = (uint64_t)a % q;
    } else {
        uint64_t mant = (uint64_t)ldexp(f, 64); /* top 64 bits, exact */
        big t;
        big_set_u64(&t, mant);
        for (int i = 0; i < e - 64; i++) big_mul_small_add(&t, 2, 0);
        res = big_mod_small(&t, q);
    }
    return r < 0 ? (q - res) % q : res;
}

static void test_integer_conversions(void **state) {
    (void)state;
    tsr_prng g;
    tt_prng(&g, 11);
    const size_t n = 64;
    tsr_rns_basis *b = make_basis(n, 55, 4, NULL, 0, NULL);
    uint64_t *o = new_poly(b);
    int64_t iv[64];
    int8_t sv[64];
    double dv[64];
    for (size_t k = 0; k < n; k++) {
        iv[k] = (int64_t)tsr_prng_u64(&g) >> (k % 64);
        sv[k] = (int8_t)(tsr_prng_u64(&g) & 0xff);
        double mag = ldexp(tsr_prng_double(&g) + 0.5, (int)(k * 7 % 300) - 3);
        dv[k] = k % 2 ? -mag : mag;
    }
    iv[0] = INT64_MIN;
    iv[1] = INT64_MAX;
    sv[0] = -128;
    dv[0] = 2.5;  /* rounds to 3 */
    dv[1] = -2.5; /* rounds to -3 */
    dv[2] = 0x1p63;
    dv[3] = -0x1p200 * 1.75;
    dv[4] = 0x1p1023;
    dv[5] = 0.49999999999999994;
    tsr_rns_from_i64(b, o, iv);
    for (size_t i = 0; i < b->count; i++)
        for (size_t k = 0; k < n; k++) {
            uint64_t q = b->q[i];
            ref_u128 mag = iv[k] < 0 ? (ref_u128)(-(__int128)iv[k]) : (ref_u128)iv[k];
            uint64_t w = (uint64_t)(mag % q);
            assert_int_equal(o[i * n + k], iv[k] < 0 ? (q - w) % q : w);
        }
    tsr_rns_from_i8(b, o, sv);
    for (size_t i = 0; i < b->count; i++)
        for (size_t k = 0; k < n; k++)
            assert_int_equal(o[i * n + k], sv[k] < 0 ? b->q[i] + (uint64_t)sv[k] : (uint64_t)sv[k]);
    tt_ok(tsr_rns_from_double(b, o, dv));
    for (size_t i = 0; i < b->count; i++)
        for (size_t k = 0; k < n; k++)
            assert_int_equal(o[i * n + k], ref_double_mod(dv[k], b->q[i]));
    assert_int_equal(o[0], 3);
    assert_int_equal(o[1], b->q[0] - 3);
    assert_int_equal(o[5], 0);
    uint64_t s[4];
    tt_ok(tsr_rns_scalar_from_double(b, dv[3], s));
    for (size_t i = 0; i < 4; i++) assert_int_equal(s[i], ref_double_mod(dv[3], b->q[i]));
    tsr_rns_scalar_from_i64(b, -5, s);
    for (size_t i = 0; i < 4; i++) assert_int_equal(s[i], b->q[i] - 5);
    dv[7] = NAN;
    tt_fails(tsr_rns_from_double(b, o, dv), TSR_ERR_INVALID_ARG);
    tt_fails(tsr_rns_scalar_from_double(b, INFINITY, s), TSR_ERR_INVALID_ARG);
    tsr_free(o);
    tsr_rns_basis_free(b);
}

/* CRT: exact centred values for random and extreme x; doubles accurate. */
static void test_crt(void **state) {
    (void)state;
    tsr_prng g;
    tt_prng(&g, 12);
    const size_t n = tt_sanitized() ? 64 : 256;
    static const struct {
        int bits;
        size_t count;
    } shapes[] = { { 60, 1 }, { 40, 3 }, { 60, 8 }, { 50, 20 }, { 60, 30 }, { 62, 40 } };
    for (size_t si = 0; si < sizeof shapes / sizeof shapes[0]; si++) {
        tsr_rns_basis *b = make_basis(n, shapes[si].bits, shapes[si].count, NULL, 0, NULL);
        big Q, halfQ;
        big_prod(&Q, b->q, b->count);
        halfQ = Q;
        big_divmod_small(&halfQ, 2); /* floor(Q/2) */
        big *x = tsr_calloc_array(n, sizeof(big));
        int *neg = tsr_calloc_array(n, sizeof(int));
        big *mag = tsr_calloc_array(n, sizeof(big));
        for (size_t k = 0; k < n; k++) {
            /* magnitudes: full range, CKKS-like 2^40..2^70, tiny, and the extremes */
            neg[k] = (int)(k & 1);
            if (k < 4) {
                big_set_u64(&mag[k], k / 2); /* 0, -0 (= 0), 1, -1 */
                if (k == 1) neg[k] = 0;
            } else if (k < 6) {
                mag[k] = halfQ; /* +floor(Q/2) (largest positive), -floor(Q/2) */
            } else if (k % 3 == 0) {
                big_random_below(&mag[k], &halfQ, &g);
            } else {
                big_set_u64(&mag[k], tsr_prng_u64(&g) >> (k % 24));
                big_mul_small_add(&mag[k], 1ULL << (k % 7), tsr_prng_u64(&g) & 0xff);
                if (big_cmp(&mag[k], &halfQ) > 0) big_random_below(&mag[k], &halfQ, &g);
            }
            if (neg[k] && big_is_zero(&mag[k])) neg[k] = 0;
            if (neg[k])
                big_sub(&x[k], &Q, &mag[k]);
            else
                x[k] = mag[k];
        }
        uint64_t *a = new_poly(b);
        big_to_poly(b, x, a);
        double *d = tsr_calloc_array(n, sizeof(double));
        long double *ld = tsr_calloc_array(n, sizeof(long double));
        tsr_rns_to_double(b, a, 1.0, d);
        tsr_rns_to_long_double(b, a, 1.0L, ld);
        double *ds = tsr_calloc_array(n, sizeof(double));
        tsr_rns_to_double(b, a, 0x1p-50, ds);
        for (size_t k = 0; k < n; k++) {
            uint64_t got[TSR_RNS_MAX_PRIMES + 2];
            int gneg;
            tsr_rns_coeff_centered(b, a, k, got, &gneg);
            assert_int_equal(gneg, neg[k]);
            for (size_t w = 0; w < b->words; w++) assert_int_equal(got[w], mag[k].w[w]);
            for (size_t w = b->words; w < BIG_WORDS; w++) assert_int_equal(mag[k].w[w], 0);
            long double want = big_to_ld(&mag[k]) * (neg[k] ? -1 : 1);
            /* exact when it fits one word (64-bit mantissa); else within 2^-62 relative */
            int one_word = 1;
            for (size_t w = 1; w < BIG_WORDS; w++) one_word &= mag[k].w[w] == 0;
            if (one_word) assert_true(ld[k] == want);
            long double tol = fabsl(want) * 0x1p-62L;
            assert_true(fabsl(ld[k] - want) <= tol);
            /* doubles: within one ulp, or +-inf beyond the double range */
            long double wants = want * 0x1p-50L;
            if (fabsl(want) > DBL_MAX) {
                assert_true(isinf(d[k]) && (d[k] < 0) == neg[k]);
            } else {
                if (fabs(d[k] - (double)want) > fabs((double)want) * 0x1p-52)
                    fail_msg("k=%zu d=%a want=%La", k, d[k], want);
            }
            if (fabsl(wants) > DBL_MAX)
                assert_true(isinf(ds[k]));
            else
                assert_true(fabs(ds[k] - (double)wants) <= fabs((double)wants) * 0x1p-52);
        }
        tsr_free(d);
        tsr_free(ds);
        tsr_free(ld);
        tsr_free(a);
        tsr_free(x);
        tsr_free(neg);
        tsr_free(mag);
        tsr_rns_basis_free(b);
    }
}

/* Basis conversion: approximate = x + uQ with 0 <= u < F; exact = x; ModUp = x centred. */
static void test_baseconv(void **state) {
    (void)state;
    tsr_prng g;
    tt_prng(&g, 13);
    const size_t n = tt_sanitized() ? 64 : 256;
    static const struct {
        int qbits, pbits;
        size_t f, t;
    } shapes[] = { { 60, 61, 1, 3 },  { 49, 50, 4, 2 },  { 40, 60, 6, 5 },
                   { 60, 60, 15, 4 }, { 50, 59, 22, 8 }, { 30, 62, 3, 3 } };
    for (size_t si = 0; si < sizeof shapes / sizeof shapes[0]; si++) {
        uint64_t qp[64], pp[64];
        tsr_rns_basis *from = make_basis(n, shapes[si].qbits, shapes[si].f, NULL, 0, qp);
        tsr_rns_basis *to = make_basis(n, shapes[si].pbits, shapes[si].t, qp, shapes[si].f, pp);
        tsr_baseconv *bc;
        tt_ok(tsr_baseconv_create(from, to, &bc));
        big Q;
        big_prod(&Q, from->q, from->count);
        big *x = tsr_calloc_array(n, sizeof(big));
        for (size_t k = 0; k < n; k++) {
            if (k < 4) {
                big_set_u64(&x[k], k); /* 0..3: fraction near 0 (exact path fallback) */
            } else if (k < 8) {
                big_set_u64(&x[k], k - 3);
                big_sub(&x[k], &Q, &x[k]); /* Q-1..Q-4: fraction near 1 */
            } else if (k < 12) {
                /* near multiples of Q / q_0 (fractions with small denominators) */
                big t = Q;
                big_divmod_small(&t, from->q[0]);
                big_mul_small_add(&t, (uint64_t)(k - 7), (uint64_t)(k % 2));
                if (big_cmp(&t, &Q) < 0)
                    x[k] = t;
                else
                    big_set_u64(&x[k], 5);
            } else if (k < 14) {
                /* (Q - 1) / 2 and (Q + 1) / 2: where ModUp's rounding of x / Q decides */
                x[k] = Q;
                big_divmod_small(&x[k], 2);
                if (k == 13) big_mul_small_add(&x[k], 1, 1);
            } else {
                big_random_below(&x[k], &Q, &g);
            }
        }
        uint64_t *in = new_poly(from), *oa = new_poly(to), *oe = new_poly(to), *om = new_poly(to);
        big_to_poly(from, x, in);
        uint64_t *inp[64], *oap[64], *oep[64], *omp[64];
        tsr_rns_limb_ptrs(from, in, inp);
        tsr_rns_limb_ptrs(to, oa, oap);
        tsr_rns_limb_ptrs(to, oe, oep);
        tsr_rns_limb_ptrs(to, om, omp);
        tt_ok(tsr_baseconv_approx(bc, oap, (const uint64_t *const *)inp));
        tt_ok(tsr_baseconv_exact(bc, oep, (const uint64_t *const *)inp));
        tt_ok(tsr_baseconv_modup(bc, omp, (const uint64_t *const *)inp));
        tsr_rns_intt(to, om);
        big half = Q; /* (Q - 1) / 2: ModUp's lift is x, or x - Q above it */
        big_divmod_small(&half, 2);
        for (size_t k = 0; k < n; k++) {
            const int above = big_cmp(&x[k], &half) > 0;
            /* several primes: x = (Q -/+ 1) / 2 may get either representative (baseconv.h),
             * the same one for every p_j; everything else and one prime: the exact one */
            const int either = from->count > 1 && (k == 12 || k == 13);
            int is_x = 1, is_xq = 1;
            for (size_t j = 0; j < to->count; j++) {
                const uint64_t p = to->q[j], xm = big_mod_small(&x[k], p);
                const uint64_t qm = big_mod_small(&Q, p);
                const uint64_t xq = xm >= qm ? xm - qm : xm + (p - qm);
                is_x &= om[j * n + k] == xm;
                is_xq &= om[j * n + k] == xq;
            }
            if (either ? !(is_x || is_xq) : !(above ? is_xq : is_x))
                fail_msg("ModUp not centred: shape %zu, k %zu", si, k);
        }
        for (size_t k = 0; k < n; k++) {
            /* find u with oa = x + uQ (mod every p_j), 0 <= u < F */
            int found = 0;
            big xu = x[k];
            for (size_t u = 0; u < from->count && !found; u++) {
                int ok = 1;
                for (size_t j = 0; j < to->count && ok; j++)
                    ok = oa[j * n + k] == big_mod_small(&xu, to->q[j]);
                found = ok;
                big_add(&xu, &xu, &Q);
            }
            assert_true(found);
            for (size_t j = 0; j < to->count; j++)
                assert_int_equal(oe[j * n + k], big_mod_small(&x[k], to->q[j]));
        }
        tsr_free(x);
        tsr_free(in);
        tsr_free(oa);
        tsr_free(oe);
        tsr_free(om);
        tsr_baseconv_free(bc);
        tsr_rns_basis_free(from);
        tsr_rns_basis_free(to);
    }
}

/* ModDown / rescale: round(A / P) mod q_j for A in [0, QP), vs big integers. */
static void check_moddown(tsr_prng *g, size_t n, int qbits, size_t lq, int pbits, size_t k, int ntt,
                          int in_place) {
    uint64_t qq[64], pq[64];
    tsr_rns_basis *qb = make_basis(n, qbits, lq, NULL, 0, qq);
    tsr_rns_basis *pb = make_basis(n, pbits, k, qq, lq, pq);
    tsr_rns_basis *qpb;
    tt_ok(tsr_rns_basis_concat(qb, pb, &qpb));
    tsr_moddown *md;
    tt_ok(tsr_moddown_create(qb, pb, &md));
    big Q, P, QP, h;
    big_prod(&Q, qq, lq);
    big_prod(&P, pq, k);
    big_mul(&QP, &Q, &P);
    h = P;
    big_divmod_small(&h, 2); /* (P-1)/2 */
    big *a = tsr_calloc_array(n, sizeof(big));
    for (size_t c = 0; c < n; c++) {
        big t;
        if (c < 8) {
            /* rounding boundaries: m*P + h (down), m*P + h + 1 (up), m*P, m*P - 1 */
            big_random_below(&t, &Q, g);
            if (c < 2) big_set_u64(&t, c);
            big_mul(&a[c], &t, &P);
            big r;
            if (c % 4 == 0) r = h;
            if (c % 4 == 1) {
                r = h;
                big_mul_small_add(&r, 1, 1);
            }
            if (c % 4 == 2) big_set_u64(&r, 0);
            if (c % 4 == 3) {
                big_sub(&r, &P, &(big){ .w = { 1 } });
            }
            big_add(&a[c], &a[c], &r);
            if (big_cmp(&a[c], &QP) >= 0) big_set_u64(&a[c], 7);
        } else if (c == 8) {
            big_sub(&a[c], &QP, &(big){ .w = { 1 } });
        } else {
            big_random_below(&a[c], &QP, g);
        }
    }
    uint64_t *in = new_poly(qpb), *out = new_poly(qb);
    big_to_poly(qpb, a, in);
    if (ntt) tsr_rns_ntt(qpb, in);
    uint64_t *res = in_place ? in : out;
    if (ntt)
        tt_ok(tsr_moddown_apply(md, res, in));
    else
        tt_ok(tsr_moddown_apply_coeff(md, res, in));
    if (ntt) tsr_rns_intt(qb, res);
    for (size_t c = 0; c < n; c++) {
        big want;
        big_add(&want, &a[c], &h);
        for (size_t i = 0; i < k; i++) big_divmod_small(&want, pq[i]); /* floor((A+h)/P) */
        for (size_t j = 0; j < lq; j++)
            assert_int_equal(res[j * n + c], big_mod_small(&want, qq[j]));
    }
    tsr_free(a);
    tsr_free(in);
    tsr_free(out);
    tsr_moddown_free(md);
    tsr_rns_basis_free(qb);
    tsr_rns_basis_free(pb);
    tsr_rns_basis_free(qpb);
}

static void test_moddown(void **state) {
    (void)state;
    tsr_prng g;
    tt_prng(&g, 14);
    const size_t n = tt_sanitized() ? 64 : 256;
    check_moddown(&g, n, 50, 3, 60, 1, 1, 0);
    check_moddown(&g, n, 50, 3, 60, 1, 1, 1);
    check_moddown(&g, n, 40, 5, 61, 2, 1, 1);
    check_moddown(&g, n, 59, 12, 60, 4, 1, 0);
    check_moddown(&g, n, 60, 20, 62, 8, 0, 0);
    check_moddown(&g, n, 30, 2, 30, 3, 0, 1);
    check_moddown(&g, n, 49, 1, 49, 1, 1, 0);
    tsr_rns_basis *a = make_basis(64, 40, 2, NULL, 0, NULL);
    tsr_moddown *md = NULL;
    tt_fails(tsr_moddown_create(a, a, &md), TSR_ERR_INVALID_ARG);
    tsr_rns_basis_free(a);
    tsr_moddown_free(NULL);
}

/* Rescale a Q_l polynomial by its last prime, in place, as CKKS does. */
static void test_rescale(void **state) {
    (void)state;
    tsr_prng g;
    tt_prng(&g, 15);
    const size_t n = tt_sanitized() ? 128 : 1024, L = 6;
    uint64_t q[8];
    tsr_rns_basis *full = make_basis(n, 45, L, NULL, 0, q);
    tsr_rns_basis *lower, *last;
    tt_ok(tsr_rns_basis_prefix(full, L - 1, &lower));
    size_t li = L - 1;
    tt_ok(tsr_rns_basis_select(full, &li, 1, &last));
    tsr_moddown *md;
    tt_ok(tsr_moddown_create(lower, last, &md));
    big Q;
    big_prod(&Q, q, L);
    big *x = tsr_calloc_array(n, sizeof(big));
    int *neg = tsr_calloc_array(n, sizeof(int));
    for (size_t c = 0; c < n; c++) {
        /* centred CKKS-like values: |x| up to 2^100, sign random */
        big_set_u64(&x[c], tsr_prng_u64(&g));
        big_mul_small_add(&x[c], tsr_prng_u64(&g) >> 28, 0);
        neg[c] = (int)(tsr_prng_u64(&g) & 1);
    }
    uint64_t *a = new_poly(full);
    for (size_t i = 0; i < L; i++)
        for (size_t c = 0; c < n; c++) {
            uint64_t r = big_mod_small(&x[c], q[i]);
            a[i * n + c] = neg[c] ? (q[i] - r) % q[i] : r;
        }
    tsr_rns_ntt(full, a);
    tt_ok(tsr_moddown_apply(md, a, a));
    tsr_rns_intt(lower, a);
    /* want round(x / q_last) for signed x: sign * floor((|x| + (q-1)/2) / q) when the
     * rounding is symmetric; q odd, so round half never arises. */
    for (size_t c = 0; c < n; c++) {
        big t;
        big half;
        big_set_u64(&half, (q[L - 1] - 1) / 2);
        big_add(&t, &x[c], &half);
        big_divmod_small(&t, q[L - 1]);
        for (size_t i = 0; i < L - 1; i++) {
            uint64_t r = big_mod_small(&t, q[i]);
            assert_int_equal(a[i * n + c], neg[c] ? (q[i] - r) % q[i] : r);
        }
    }
    tsr_free(x);
    tsr_free(neg);
    tsr_free(a);
    tsr_moddown_free(md);
    tsr_rns_basis_free(full);
    tsr_rns_basis_free(lower);
    tsr_rns_basis_free(last);
}

/* NTT product over a basis equals the schoolbook product limb by limb. */
static void test_rns_ntt_product(void **state) {
    (void)state;
    tsr_prng g;
    tt_prng(&g, 16);
    const size_t n = 128;
    tsr_rns_basis *b = make_basis(n, 58, 4, NULL, 0, NULL);
    uint64_t *x = new_poly(b), *y = new_poly(b), *z = new_poly(b), *ref = new_poly(b);
    random_poly(&g, b, x);
    random_poly(&g, b, y);
    for (size_t i = 0; i < b->count; i++)
        ref_negacyclic(ref + i * n, x + i * n, y + i * n, n, b->q[i]);
    tsr_rns_ntt(b, x);
    tsr_rns_ntt(b, y);
    tsr_rns_mul(b, z, x, y);
    tsr_rns_intt(b, z);
    assert_memory_equal(z, ref, tsr_rns_poly_words(b) * 8);
    tsr_free(x);
    tsr_free(y);
    tsr_free(z);
    tsr_free(ref);
    tsr_rns_basis_free(b);
}

/* The same pipeline with 1 and 2 OpenMP threads gives identical bits. */
static void run_pipeline(const tsr_rns_basis *q, const tsr_rns_basis *p, const tsr_rns_basis *qp,
                         const tsr_moddown *md, const tsr_baseconv *bc, uint64_t *out,
                         double *dec) {
    const size_t n = q->n, W = tsr_rns_poly_words(qp);
    uint8_t seed[TSR_SEED_BYTES] = { 42 };
    uint64_t *a, *c;
    tt_ok(tsr_rns_poly_new(qp, &a));
    tt_ok(tsr_rns_poly_new(qp, &c));
    tsr_sample_uniform(qp, seed, 9, a);
    tsr_sample_uniform(qp, seed, 10, c);
    tsr_rns_mul(qp, c, c, a);
    tsr_rns_mul_add(qp, c, a, a);
    tsr_rns_intt(qp, c);
    tsr_rns_ntt(qp, c);
    tt_ok(tsr_moddown_apply(md, c, c));
    memcpy(out, c, q->count * n * 8);
    tsr_rns_intt(q, c);
    tsr_rns_to_double(q, c, 0x1p-40, dec);
    uint64_t *inp[64], *outp[64];
    tsr_rns_limb_ptrs(q, c, inp);
    tsr_rns_limb_ptrs(p, a, outp);
    tt_ok(tsr_baseconv_exact(bc, outp, (const uint64_t *const *)inp));
    memcpy(out + q->count * n, a, p->count * n * 8);
    (void)W;
    tsr_free(a);
    tsr_free(c);
}

static void test_threads_identical(void **state) {
    (void)state;
    const size_t n = tt_sanitized() ? 2048 : 4096;
    uint64_t qq[8], pq[3];
    tsr_rns_basis *q = make_basis(n, 50, 6, NULL, 0, qq);
    tsr_rns_basis *p = make_basis(n, 60, 3, qq, 6, pq);
    tsr_rns_basis *qp;
    tt_ok(tsr_rns_basis_concat(q, p, &qp));
    tsr_moddown *md;
    tt_ok(tsr_moddown_create(q, p, &md));
    tsr_baseconv *bc;
    tt_ok(tsr_baseconv_create(q, p, &bc));
    const size_t W = tsr_rns_poly_words(qp);
    uint64_t *o1 = tsr_calloc_array(W, 8), *o2 = tsr_calloc_array(W, 8);
    double *d1 = tsr_calloc_array(n, 8), *d2 = tsr_calloc_array(n, 8);
    int saved = tsr_get_num_threads();
    tsr_set_num_threads(1);
    run_pipeline(q, p, qp, md, bc, o1, d1);
    tsr_set_num_threads(2);
    run_pipeline(q, p, qp, md, bc, o2, d2);
    tsr_set_num_threads(saved);
    assert_memory_equal(o1, o2, W * 8);
    assert_memory_equal(d1, d2, n * 8);
    tsr_free(o1);
    tsr_free(o2);
    tsr_free(d1);
    tsr_free(d2);
    tsr_moddown_free(md);
    tsr_baseconv_free(bc);
    tsr_rns_basis_free(q);
    tsr_rns_basis_free(p);
    tsr_rns_basis_free(qp);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_basis_errors),
        cmocka_unit_test(test_vec_dot),
        cmocka_unit_test(test_elementwise),
        cmocka_unit_test(test_integer_conversions),
        cmocka_unit_test(test_crt),
        cmocka_unit_test(test_baseconv),
        cmocka_unit_test(test_moddown),
        cmocka_unit_test(test_rescale),
        cmocka_unit_test(test_rns_ntt_product),
        cmocka_unit_test(test_threads_identical),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
