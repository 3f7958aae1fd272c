/*
 * tests/test_ring_simd.c - every SIMD kernel family against the portable
 * reference, bit for bit, on random inputs: forward/inverse NTT, element-wise
 * operations, basis conversion, ModDown; several N and prime sizes (30, 40,
 * 49, 50, 59, 60, 61 bits; IFMA NTTs and products take over only below 2^50 and fall
 * back above, IFMA inner products and conversion rows run up to 2^62 with 52-bit limbs);
 * the ChaCha keystream of seeded keys. Families this CPU lacks are skipped with a
 * printed note.
 */
#include "testutil.h"

#include "tessera.h"
#include "core/alloc.h"
#include "ring/kernels.h"
#include "ring/ring.h"
#include "ring/vec.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const int prime_bits[] = { 30, 40, 49, 50, 59, 60, 61 };
#define N_BITS (sizeof prime_bits / sizeof prime_bits[0])

static int family_available(tsr_simd f) {
    if (f <= tsr_simd_detected()) return 1;
    static int noted[8];
    if (!noted[f]) {
        fprintf(stderr, "[note: this CPU lacks %s; its kernels are not tested here]\n",
                tsr_simd_name(f));
        noted[f] = 1;
    }
    return 0;
}

static void random_vec(tsr_prng *g, uint64_t *a, size_t n, uint64_t bound) {
    for (size_t i = 0; i < n; i++) a[i] = tsr_prng_uniform(g, bound);
}

/* Random values plus the extremes 0 and q-1 at a few places. */
static void random_vec_edges(tsr_prng *g, uint64_t *a, size_t n, uint64_t q) {
    random_vec(g, a, n, q);
    a[0] = 0;
    a[n - 1] = q - 1;
    a[n / 2] = q - 1;
    if (n > 8) a[5] = 1;
}

static void test_ntt_families(void **state) {
    (void)state;
    tsr_prng g;
    tt_prng(&g, 40);
    const tsr_ring_kernels *ref = tsr_ring_kernels_for(TSR_SIMD_PORTABLE);
    const size_t max_log = tt_sanitized() ? 13 : 16;
    for (int f = TSR_SIMD_AVX2; f <= TSR_SIMD_AVX512IFMA; f++) {
        if (!family_available((tsr_simd)f)) continue;
        const tsr_ring_kernels *k = tsr_ring_kernels_for((tsr_simd)f);
        for (size_t bi = 0; bi < N_BITS; bi++) {
            for (size_t lg = 1; lg <= max_log; lg++) {
                const size_t n = (size_t)1 << lg;
                if (2 * n + 1 >= ((uint64_t)1 << prime_bits[bi])) continue;
                /* skip some mid sizes at large bit counts to keep the test short */
                if (lg > 6 && lg < 12 && (lg + bi) % 2) continue;
                uint64_t q;
                tt_ok(tsr_prime_generate(prime_bits[bi], n, 1, NULL, 0, &q));
                tsr_ntt_table *t;
                tt_ok(tsr_ntt_table_create(n, q, &t));
                uint64_t *a = tsr_alloc(n * 8), *b0 = tsr_alloc((n + 1) * 8);
                for (int rep = 0; rep < 2; rep++) {
                    /* rep 1 transforms a buffer that is only 8-byte aligned: no kernel may
                     * assume 64-byte alignment (it crashed the IFMA NTT on malloc'd limbs) */
                    uint64_t *b = b0 + rep;
                    random_vec_edges(&g, a, n, q);
                    /* forward accepts < 4q, inverse < 2q */
                    if (rep)
                        for (size_t i = 0; i < n; i++) a[i] += q * tsr_prng_uniform(&g, 4);
                    memcpy(b, a, n * 8);
                    ref->ntt_fwd(t, a);
                    k->ntt_fwd(t, b);
                    if (memcmp(a, b, n * 8) != 0)
                        fail_msg("%s forward NTT differs: N=%zu q=%llu (%d bits)",
                                 tsr_simd_name((tsr_simd)f), n, (unsigned long long)q,
                                 prime_bits[bi]);
                    if (rep)
                        for (size_t i = 0; i < n; i++) a[i] += q * tsr_prng_uniform(&g, 2);
                    memcpy(b, a, n * 8);
                    ref->ntt_inv(t, a);
                    k->ntt_inv(t, b);
                    if (memcmp(a, b, n * 8) != 0)
                        fail_msg("%s inverse NTT differs: N=%zu q=%llu (%d bits)",
                                 tsr_simd_name((tsr_simd)f), n, (unsigned long long)q,
                                 prime_bits[bi]);
                }
                tsr_free(a);
                tsr_free(b0);
                tsr_ntt_table_free(t);
            }
        }
    }
}

/*
 * Split NTTs: the outer stages applied column range by column range on a
 * gathered buffer, then the inner stages block by block (each block in its
 * own buffer), equal the whole transform of the portable family, for every
 * family, several N, segment exponents r and column widths len (including
 * widths the SIMD kernels hand to the portable code).
 */
static void split_case(const tsr_ring_kernels *ref, const tsr_ring_kernels *k, tsr_ntt_table *t,
                       unsigned r, size_t len, tsr_prng *g, const char *fam) {
    const size_t n = t->n, R = (size_t)1 << r, B = n >> r;
    const uint64_t q = t->mod.q;
    uint64_t *a = tsr_alloc(n * 8), *want = tsr_alloc(n * 8), *got = tsr_alloc(n * 8);
    uint64_t *buf = tsr_alloc(R * len * 8), *blk = tsr_alloc(B * 8);
    /* passes 0, 1: random inputs with edges; 2, 3: every word the largest
     * allowed input, so both butterfly inputs are at the maximum at once */
    for (int pass = 0; pass < 4; pass++) {
        const int dir = pass & 1;
        if (pass >= 2) {
            for (size_t i = 0; i < n; i++) a[i] = (dir ? 2 : 4) * q - 1;
        } else {
            random_vec_edges(g, a, n, q);
            /* forward accepts < 4q, inverse < 2q */
            for (size_t i = 0; i < n; i++) a[i] += q * tsr_prng_uniform(g, dir ? 2 : 4);
            /* the largest inputs allowed (4q - 1 forward, 2q - 1 inverse) and q, 2q */
            a[1] = (dir ? 2 : 4) * q - 1;
            a[n - 2] = q;
            if (n > 8) a[n / 2 + 1] = dir ? q + 1 : 2 * q;
        }
        memcpy(want, a, n * 8);
        memcpy(got, a, n * 8);
        if (dir == 0) {
            ref->ntt_fwd(t, want);
            for (size_t c = 0; c < B; c += len) {
                for (size_t m = 0; m < R; m++) memcpy(buf + m * len, got + m * B + c, len * 8);
                k->ntt_fwd_outer(t, buf, len, r);
                for (size_t m = 0; m < R; m++) {
                    for (size_t i = 0; i < len; i++)
                        if (buf[m * len + i] >= 4 * q) fail_msg("%s outer output >= 4q", fam);
                    memcpy(got + m * B + c, buf + m * len, len * 8);
                }
            }
            for (size_t b = 0; b < R; b++) {
                /* out of place from the array (the AVX-512F kernel's first pass is the
                 * copy from B = 64 on), with a prefetch list; every third block in place */
                tsr_prefetch pf;
                tsr_prefetch_reset(&pf);
                tsr_prefetch_add(&pf, a, n * 8);
                if (b % 3 == 2) {
                    memcpy(blk, got + b * B, B * 8);
                    k->ntt_fwd_inner(t, blk, blk, b, r, NULL);
                } else {
                    k->ntt_fwd_inner(t, blk, got + b * B, b, r, (b % 2) ? &pf : NULL);
                }
                memcpy(got + b * B, blk, B * 8);
            }
        } else {
            ref->ntt_inv(t, want);
            for (size_t b = 0; b < R; b++) {
                if (b % 2) { /* in place on a copy */
                    memcpy(blk, got + b * B, B * 8);
                    k->ntt_inv_inner(t, blk, blk, b, r, NULL);
                } else {
                    k->ntt_inv_inner(t, blk, got + b * B, b, r, NULL);
                }
                for (size_t i = 0; i < B; i++)
                    if (blk[i] >= 2 * q) fail_msg("%s inverse inner output >= 2q", fam);
                memcpy(got + b * B, blk, B * 8);
            }
            for (size_t c = 0; c < B; c += len) {
                for (size_t m = 0; m < R; m++) memcpy(buf + m * len, got + m * B + c, len * 8);
                k->ntt_inv_outer(t, buf, len, r);
                for (size_t m = 0; m < R; m++) memcpy(got + m * B + c, buf + m * len, len * 8);
            }
        }
        if (memcmp(want, got, n * 8) != 0)
            fail_msg("%s split %s NTT differs: N=%zu r=%u len=%zu q=%llu%s", fam,
                     dir ? "inverse" : "forward", n, r, len, (unsigned long long)q,
                     pass >= 2 ? " (all inputs maximal)" : "");
    }
    tsr_free(a);
    tsr_free(want);
    tsr_free(got);
    tsr_free(buf);
    tsr_free(blk);
}

/* Streaming copies equal memcpy for every family, aligned or not, any length. */
static void test_copy_stream_families(void **state) {
    (void)state;
    tsr_prng g;
    tt_prng(&g, 45);
    uint64_t *src = tsr_alloc(1100 * 8), *dst = tsr_alloc(1100 * 8);
    random_vec(&g, src, 1100, UINT64_MAX);
    for (int f = TSR_SIMD_PORTABLE; f <= TSR_SIMD_AVX512IFMA; f++) {
        if (!family_available((tsr_simd)f)) continue;
        const tsr_ring_kernels *k = tsr_ring_kernels_for((tsr_simd)f);
        static const size_t offs[] = { 0, 1, 8 }, lens[] = { 0, 7, 8, 1000, 1091 };
        for (size_t oi = 0; oi < 3; oi++)
            for (size_t li = 0; li < 5; li++) {
                memset(dst, 0, 1100 * 8);
                k->copy_stream(dst + offs[oi], src + 1, lens[li]);
                tsr_ring_stream_fence();
                assert_memory_equal(dst + offs[oi], src + 1, lens[li] * 8);
                for (size_t i = offs[oi] + lens[li]; i < 1100; i++) assert_int_equal(dst[i], 0);
            }
    }
    tsr_free(src);
    tsr_free(dst);
}

/* Gathers (automorphism permutations) equal the portable loop for every
 * family: automorphism indices (grouped) and random ones (hardware gather). */
static void test_permute_families(void **state) {
    (void)state;
    tsr_prng g;
    tt_prng(&g, 46);
    const size_t nmax = 4096;
    uint64_t *a = tsr_alloc(nmax * 8), *want = tsr_alloc(nmax * 8), *got = tsr_alloc(nmax * 8);
    uint32_t *idx = tsr_alloc(nmax * sizeof *idx);
    random_vec(&g, a, nmax, UINT64_MAX);
    const tsr_ring_kernels *ref = tsr_ring_kernels_for(TSR_SIMD_PORTABLE);
    static const size_t ns[] = { 2, 4, 8, 16, 64, 4096 };
    static const uint64_t gs[] = { 5, 25, 3, 8191, 2 * 4096 - 1 };
    for (size_t ni = 0; ni < sizeof ns / sizeof ns[0]; ni++) {
        const size_t n = ns[ni];
        for (size_t gi = 0; gi <= sizeof gs / sizeof gs[0]; gi++) {
            if (gi < sizeof gs / sizeof gs[0]) {
                tsr_rns_automorphism_ntt_index(n, gs[gi], idx);
            } else { /* random indices */
                for (size_t j = 0; j < n; j++) idx[j] = (uint32_t)tsr_prng_uniform(&g, n);
            }
            ref->permute(want, a, idx, n, 1);
            for (size_t j = 0; j < n; j++) assert_int_equal(want[j], a[idx[j]]);
            for (int f = TSR_SIMD_PORTABLE; f <= TSR_SIMD_AVX512IFMA; f++) {
                if (!family_available((tsr_simd)f)) continue;
                for (int st = 0; st < 2; st++) { /* plain and streaming stores */
                    memset(got, 0, n * 8);
                    tsr_ring_kernels_for((tsr_simd)f)->permute(got, a, idx, n, st);
                    if (memcmp(want, got, n * 8) != 0)
                        fail_msg("%s permute differs: n=%zu case %zu stream %d",
                                 tsr_simd_name((tsr_simd)f), n, gi, st);
                }
            }
        }
    }
    /* n not a multiple of 8, every index in the last, partial group of 8:
     * the input is exactly n words (a read past a[n - 1] fails under ASan) */
    static const size_t ps[] = { 9, 12, 20 };
    for (size_t pi = 0; pi < sizeof ps / sizeof ps[0]; pi++) {
        const size_t n = ps[pi], g0 = n & ~(size_t)7;
        uint64_t *src = malloc(n * sizeof *src);
        assert_non_null(src);
        memcpy(src, a, n * 8);
        for (size_t j = 0; j < n; j++) idx[j] = (uint32_t)(g0 + (j * 5 + 1) % (n - g0));
        for (size_t j = 0; j < n; j++) want[j] = src[idx[j]];
        for (int f = TSR_SIMD_PORTABLE; f <= TSR_SIMD_AVX512IFMA; f++) {
            if (!family_available((tsr_simd)f)) continue;
            memset(got, 0, n * 8);
            tsr_ring_kernels_for((tsr_simd)f)->permute(got, src, idx, n, 1);
            if (memcmp(want, got, n * 8) != 0)
                fail_msg("%s permute differs: n=%zu, last group only", tsr_simd_name((tsr_simd)f),
                         n);
        }
        free(src);
    }
    tsr_free(a);
    tsr_free(want);
    tsr_free(got);
    tsr_free(idx);
}

static void test_split_ntt_families(void **state) {
    (void)state;
    tsr_prng g;
    tt_prng(&g, 44);
    const tsr_ring_kernels *ref = tsr_ring_kernels_for(TSR_SIMD_PORTABLE);
    /* 61 bits: n16-boot's q0 and special primes (the 4q lazy bound is
     * tightest there); 62: the largest q the kernels accept */
    static const int bits[] = { 40, 49, 50, 60, 61, 62 };
    const size_t max_log = tt_sanitized() ? 12 : 15;
    for (int f = TSR_SIMD_PORTABLE; f <= TSR_SIMD_AVX512IFMA; f++) {
        if (!family_available((tsr_simd)f)) continue;
        const tsr_ring_kernels *k = tsr_ring_kernels_for((tsr_simd)f);
        const char *fam = tsr_simd_name((tsr_simd)f);
        for (size_t bi = 0; bi < sizeof bits / sizeof bits[0]; bi++) {
            for (size_t lg = 4; lg <= max_log; lg += (lg < 8 ? 1 : 3)) {
                const size_t n = (size_t)1 << lg;
                uint64_t q;
                tt_ok(tsr_prime_generate(bits[bi], n, 1, NULL, 0, &q));
                tsr_ntt_table *t;
                tt_ok(tsr_ntt_table_create(n, q, &t));
                const unsigned rs[] = { 0, 1, 2, 3, 4, tsr_ntt_split_log(n) };
                for (size_t ri = 0; ri < sizeof rs / sizeof rs[0]; ri++) {
                    const unsigned r = rs[ri];
                    if (r > lg) continue;
                    const size_t B = n >> r;
                    /* column widths: whole segments, 8 words, 4 words (portable fallback) */
                    const size_t lens[] = { B, B >= 8 ? 8 : B, B >= 64 ? 64 : B, B >= 4 ? 4 : B };
                    for (size_t li = 0; li < sizeof lens / sizeof lens[0]; li++)
                        split_case(ref, k, t, r, lens[li], &g, fam);
                }
                tsr_ntt_table_free(t);
            }
        }
    }
}

/* Element-wise kernels: every family equals the portable one, bit for bit. */
static void test_elementwise_families(void **state) {
    (void)state;
    tsr_prng g;
    tt_prng(&g, 41);
    const tsr_ring_kernels *ref = tsr_ring_kernels_for(TSR_SIMD_PORTABLE);
    static const size_t lens[] = { 1, 7, 8, 9, 64, 1000, 4096 };
    for (int f = TSR_SIMD_AVX2; f <= TSR_SIMD_AVX512IFMA; f++) {
        if (!family_available((tsr_simd)f)) continue;
        const tsr_ring_kernels *k = tsr_ring_kernels_for((tsr_simd)f);
        const char *fn = tsr_simd_name((tsr_simd)f);
        for (size_t bi = 0; bi < N_BITS + 2; bi++) {
            /* the listed sizes, plus 17 bits and 62 bits */
            int bits = bi < N_BITS ? prime_bits[bi] : (bi == N_BITS ? 17 : 62);
            uint64_t q;
            tt_ok(tsr_prime_generate(bits, 8, 1, NULL, 0, &q));
            tsr_modulus m;
            tsr_modulus_init(&m, q);
            for (size_t li = 0; li < sizeof lens / sizeof lens[0]; li++) {
                const size_t n = lens[li];
                uint64_t *a = tsr_alloc(n * 8 + 64), *b = tsr_alloc(n * 8 + 64);
                uint64_t *o1 = tsr_alloc(n * 8 + 64), *o2 = tsr_alloc(n * 8 + 64);
                uint64_t *wv = tsr_alloc(n * 8 + 64), *wpv = tsr_alloc(n * 8 + 64);
                random_vec_edges(&g, a, n, q);
                random_vec_edges(&g, b, n, q);
                random_vec(&g, wv, n, q);
                tsr_vec_shoup_precompute(&m, wpv, wv, n);
                uint64_t w = tsr_prng_uniform(&g, q), wp = tsr_modq_shoup(w, q);
#define CMP(what)                                                                                 \
    do {                                                                                          \
        if (memcmp(o1, o2, n * 8) != 0)                                                           \
            fail_msg("%s %s differs: n=%zu q=%llu (%d bits)", fn, what, n, (unsigned long long)q, \
                     bits);                                                                       \
    } while (0)
                ref->add(&m, o1, a, b, n);
                k->add(&m, o2, a, b, n);
                CMP("add");
                ref->sub(&m, o1, a, b, n);
                k->sub(&m, o2, a, b, n);
                CMP("sub");
                ref->neg(&m, o1, a, n);
                k->neg(&m, o2, a, n);
                CMP("neg");
                ref->mul(&m, o1, a, b, n);
                k->mul(&m, o2, a, b, n);
                CMP("mul");
                memcpy(o1, b, n * 8);
                memcpy(o2, b, n * 8);
                ref->mul_add(&m, o1, a, wv, n);
                k->mul_add(&m, o2, a, wv, n);
                CMP("mul_add");
                { /* the largest product and sum: every operand q - 1 */
                    uint64_t *qa = tsr_alloc(n * 8 + 64);
                    for (size_t i = 0; i < n; i++) qa[i] = o1[i] = o2[i] = q - 1;
                    ref->mul_add(&m, o1, qa, qa, n);
                    k->mul_add(&m, o2, qa, qa, n);
                    CMP("mul_add (q - 1)");
                    ref->mul(&m, o1, qa, qa, n);
                    k->mul(&m, o2, qa, qa, n);
                    CMP("mul (q - 1)");
                    tsr_free(qa);
                }
                ref->mul_scalar(&m, o1, a, w, wp, n);
                k->mul_scalar(&m, o2, a, w, wp, n);
                CMP("mul_scalar");
                memcpy(o1, b, n * 8);
                memcpy(o2, b, n * 8);
                ref->mul_scalar_add(&m, o1, a, w, wp, n);
                k->mul_scalar_add(&m, o2, a, w, wp, n);
                CMP("mul_scalar_add");
                ref->add_scalar(&m, o1, a, w, n);
                k->add_scalar(&m, o2, a, w, n);
                CMP("add_scalar");
                /* the centred one-prime lift: threshold q/2 (and w, any), added 2q - q' */
                ref->add_above(o1, a, q >> 1, q - (q >> 2), n);
                k->add_above(o2, a, q >> 1, q - (q >> 2), n);
                CMP("add_above");
                ref->add_above(o1, a, w, w >> 1, n);
                k->add_above(o2, a, w, w >> 1, n);
                CMP("add_above (w)");
                ref->mul_shoup(&m, o1, a, wv, wpv, n);
                k->mul_shoup(&m, o2, a, wv, wpv, n);
                CMP("mul_shoup");
                /* fused ModDown tail = sub, mul_scalar, add (with and without
                 * the addend, streaming or not, and in place) */
                for (int v = 0; v < 6; v++) {
                    const uint64_t *c = v & 1 ? wv : NULL;
                    ref->sub(&m, o1, a, b, n);
                    ref->mul_scalar(&m, o1, o1, w, wp, n);
                    if (c) ref->add(&m, o1, o1, c, n);
                    const uint64_t *src = a;
                    if (v >= 4) { /* out = a */
                        memcpy(o2, a, n * 8);
                        src = o2;
                    }
                    k->sub_mul_scalar_add(&m, o2, src, b, w, wp, c, v >> 1 & 1, n);
                    tsr_ring_stream_fence();
                    CMP("sub_mul_scalar_add");
                    if (v >= 4) memcpy(o2, a, n * 8);
                    ref->sub_mul_scalar_add(&m, o2, src, b, w, wp, c, 0, n);
                    CMP("portable sub_mul_scalar_add");
                }
                /* in place */
                memcpy(o1, a, n * 8);
                memcpy(o2, a, n * 8);
                ref->mul(&m, o1, o1, b, n);
                k->mul(&m, o2, o2, b, n);
                CMP("mul in place");
                tsr_free(a);
                tsr_free(b);
                tsr_free(o1);
                tsr_free(o2);
                tsr_free(wv);
                tsr_free(wpv);
            }
        }
    }
}

/*
 * Quotient estimates of exact conversions: every family agrees with the
 * portable kernel wherever neither marks a coefficient as undecided, the
 * unmarked values are floor(sum y_i / q_i) (checked against a 128-bit
 * fixed-point sum that is exact away from integers), and an integer sum
 * (all y = 0) is marked.
 */
static void test_quotient_families(void **state) {
    (void)state;
    tsr_prng g;
    tt_prng(&g, 47);
    const tsr_ring_kernels *ref = tsr_ring_kernels_for(TSR_SIMD_PORTABLE);
    static const size_t counts[] = { 1, 3, 7, 13 };
    static const int bits[] = { 30, 49, 50, 60, 62 };
    const size_t n = 1000;
    uint64_t *y[13], *u0 = tsr_alloc(n * 8), *u1 = tsr_alloc(n * 8);
    for (size_t i = 0; i < 13; i++) y[i] = tsr_alloc(n * 8);
    for (size_t bi = 0; bi < sizeof bits / sizeof bits[0]; bi++)
        for (size_t ci = 0; ci < sizeof counts / sizeof counts[0]; ci++) {
            const size_t F = counts[ci];
            uint64_t q[13];
            double inv[13];
            tt_ok(tsr_prime_generate(bits[bi], 8, F, NULL, 0, q));
            for (size_t i = 0; i < F; i++) {
                inv[i] = 1.0 / (double)q[i];
                random_vec(&g, y[i], n, q[i]);
                y[i][0] = 0; /* sum 0: an integer, must be marked */
                y[i][1] = q[i] - 1;
            }
            ref->quotient_est(u0, (const uint64_t *const *)y, inv, F, n);
            assert_true(u0[0] == UINT64_MAX);
            for (size_t k = 0; k < n; k++) {
                /* 64.64 fixed point: within F 2^-63 of the true sum */
                tsr_u128 t = 0;
                for (size_t i = 0; i < F; i++) t += (((tsr_u128)y[i][k]) << 64) / q[i];
                const uint64_t frac = (uint64_t)t;
                if (u0[k] != UINT64_MAX && frac > 64 && frac < (uint64_t)0 - 64)
                    assert_int_equal(u0[k], (uint64_t)(t >> 64));
            }
            for (int f = TSR_SIMD_AVX2; f <= TSR_SIMD_AVX512IFMA; f++) {
                if (!family_available((tsr_simd)f)) continue;
                tsr_ring_kernels_for((tsr_simd)f)
                    ->quotient_est(u1, (const uint64_t *const *)y, inv, F, n);
                assert_true(u1[0] == UINT64_MAX);
                for (size_t k = 0; k < n; k++)
                    if (u0[k] != UINT64_MAX && u1[k] != UINT64_MAX && u0[k] != u1[k])
                        fail_msg("%s quotient differs at %zu (F=%zu, %d bits)",
                                 tsr_simd_name((tsr_simd)f), k, F, bits[bi]);
            }
        }
    for (size_t i = 0; i < 13; i++) tsr_free(y[i]);
    tsr_free(u0);
    tsr_free(u1);
}

/*
 * Centring quotients of ModUp (quotient_round): every family returns the portable kernel's
 * words bit for bit, on every coefficient (no mark to skip: the centred lift's representative
 * near Q/2 must not depend on the CPU), for every tail length; and the portable words are
 * round(x / Q) wherever the sum is not within 2^-40 of a half (a 64.64 fixed-point sum, exact
 * to F 2^-64). Inputs: y_i = x_i (Q/q_i)^-1 mod q_i for x = 0, 1, 2, Q - 1 and x = (Q - 1)/2 - m,
 * (Q + 1)/2 + m (m < 4: the centred-lift boundary of test_ring_rns, where the double sum's
 * rounding decides), then random y.
 */
static void test_quotient_round_families(void **state) {
    (void)state;
    tsr_prng g;
    tt_prng(&g, 53);
    const tsr_ring_kernels *ref = tsr_ring_kernels_for(TSR_SIMD_PORTABLE);
    static const size_t counts[] = { 1, 2, 3, 5, 7, 13, 64 };
    static const int bits[] = { 30, 40, 49, 50, 59, 60, 61, 62 };
    enum { NE = 12 }; /* the chosen x first */
    const size_t n = 1003;
    uint64_t *y[64], *v0 = tsr_alloc(n * 8), *v1 = tsr_alloc(n * 8);
    for (size_t i = 0; i < 64; i++) y[i] = tsr_alloc(n * 8);
    for (size_t bi = 0; bi < sizeof bits / sizeof bits[0]; bi++)
        for (size_t ci = 0; ci < sizeof counts / sizeof counts[0]; ci++) {
            const size_t F = counts[ci];
            /* 64 primes: the smallest and the contract's largest (q < 2^62, terms <= 64) */
            if (F == 64 && bits[bi] != 30 && bits[bi] != 62) continue;
            uint64_t q[64];
            double inv[64];
            tt_ok(tsr_prime_generate(bits[bi], 8, F, NULL, 0, q));
            for (size_t i = 0; i < F; i++) {
                tsr_modulus m;
                tsr_modulus_init(&m, q[i]);
                uint64_t qhat = 1; /* Q / q_i mod q_i */
                for (size_t j = 0; j < F; j++)
                    if (j != i) qhat = tsr_modq_mul(&m, qhat, q[j] % q[i]);
                const uint64_t qhat_inv = tsr_modq_inv(qhat, q[i]), h = (q[i] - 1) / 2;
                /* x mod q_i: (Q - 1)/2 = -1/2 = (q_i - 1)/2, (Q + 1)/2 = (q_i + 1)/2 */
                const uint64_t xs[NE] = { 0,     1,     2,     q[i] - 1, h,     h - 1,
                                          h - 2, h - 3, h + 1, h + 2,    h + 3, h + 4 };
                random_vec(&g, y[i], n, q[i]);
                for (size_t e = 0; e < NE; e++) y[i][e] = tsr_modq_mul(&m, xs[e] % q[i], qhat_inv);
                inv[i] = 1.0 / (double)q[i];
            }
            ref->quotient_round(v0, (const uint64_t *const *)y, inv, F, n);
            for (size_t k = 0; k < n; k++) {
                tsr_u128 t = 0; /* within (-F, 0] of 2^64 sum_i y_i / q_i */
                for (size_t i = 0; i < F; i++) t += (((tsr_u128)y[i][k]) << 64) / q[i];
                const uint64_t frac = (uint64_t)t, half = (uint64_t)1 << 63,
                               far = (uint64_t)1 << 24;
                if (frac < half - far || frac > half + far)
                    assert_int_equal(v0[k], (uint64_t)((t + half) >> 64));
                else
                    assert_true(v0[k] == (uint64_t)(t >> 64) || v0[k] == (uint64_t)(t >> 64) + 1);
            }
            for (int f = TSR_SIMD_PORTABLE + 1; f <= TSR_SIMD_AVX512IFMA; f++) {
                if (!family_available((tsr_simd)f)) continue;
                const tsr_ring_kernels *k = tsr_ring_kernels_for((tsr_simd)f);
                k->quotient_round(v1, (const uint64_t *const *)y, inv, F, n);
                for (size_t c = 0; c < n; c++)
                    if (v1[c] != v0[c])
                        fail_msg("%s centring quotient differs at %zu (F=%zu, %d bits): %llu, "
                                 "portable %llu",
                                 tsr_simd_name((tsr_simd)f), c, F, bits[bi],
                                 (unsigned long long)v1[c], (unsigned long long)v0[c]);
                for (size_t len = 0; len <= 17; len++) { /* every tail length */
                    memset(v1, 0xa5, 17 * sizeof *v1);
                    k->quotient_round(v1, (const uint64_t *const *)y, inv, F, len);
                    assert_memory_equal(v1, v0, len * sizeof *v1);
                    assert_true(len == 17 || v1[len] == 0xa5a5a5a5a5a5a5a5ull);
                }
            }
        }
    for (size_t i = 0; i < 64; i++) tsr_free(y[i]);
    tsr_free(v0);
    tsr_free(v1);
}

/* Conversion rows: many terms (chunked reductions), inputs up to ymax, c52 given. */
static void test_conv_row_families(void **state) {
    (void)state;
    tsr_prng g;
    tt_prng(&g, 42);
    const tsr_ring_kernels *ref = tsr_ring_kernels_for(TSR_SIMD_PORTABLE);
    static const int pbits[] = { 30, 40, 49, 50, 55, 60, 62 };
    static const uint64_t ymaxes[] = {
        5, 1ULL << 30, 1ULL << 49, 1ULL << 50, 1ULL << 52, 1ULL << 62
    };
    static const size_t terms_list[] = { 1, 2, 4, 5, 7, 8, 9, 16, 40, 65 };
    const size_t n = 203; /* not a multiple of 8 or 4: exercises tails */
    uint64_t *y[65];
    for (int i = 0; i < 65; i++) y[i] = tsr_alloc(n * 8);
    uint64_t *o1 = tsr_alloc(n * 8), *o2 = tsr_alloc(n * 8);
    uint64_t c[65], c52[65], csh[65];
    for (int f = TSR_SIMD_AVX2; f <= TSR_SIMD_AVX512IFMA; f++) {
        if (!family_available((tsr_simd)f)) continue;
        const tsr_ring_kernels *k = tsr_ring_kernels_for((tsr_simd)f);
        for (size_t pi = 0; pi < sizeof pbits / sizeof pbits[0]; pi++) {
            uint64_t p;
            tt_ok(tsr_prime_generate(pbits[pi], 8, 1, NULL, 0, &p));
            tsr_modulus m;
            tsr_modulus_init(&m, p);
            const uint64_t r52 = tsr_modq_reduce64(&m, 1ULL << 52);
            for (size_t yi = 0; yi < sizeof ymaxes / sizeof ymaxes[0]; yi++) {
                for (size_t ti = 0; ti < 2 * (sizeof terms_list / sizeof terms_list[0]); ti++) {
                    const size_t terms = terms_list[ti / 2];
                    const int all_max = ti % 2; /* every input ymax - 1, every c p - 1 */
                    const uint64_t ymax = ymaxes[yi];
                    for (size_t i = 0; i < terms; i++) {
                        random_vec(&g, y[i], n, ymax);
                        y[i][0] = ymax - 1; /* extremes */
                        y[i][1] = 0;
                        if (all_max)
                            for (size_t j = 0; j < n; j++) y[i][j] = ymax - 1;
                        c[i] = i == 0 || all_max ? p - 1 : tsr_prng_uniform(&g, p);
                        c52[i] = tsr_modq_mul(&m, c[i], r52);
                        csh[i] = tsr_modq_shoup(c[i], p);
                    }
                    const tsr_conv_coeffs r = { c, csh, c52, terms, ymax };
                    ref->conv_row(&m, o1, (const uint64_t *const *)y, &r, n);
                    k->conv_row(&m, o2, (const uint64_t *const *)y, &r, n);
                    if (memcmp(o1, o2, n * 8) != 0)
                        fail_msg("%s conv_row differs: p=%llu terms=%zu ymax=2^%d",
                                 tsr_simd_name((tsr_simd)f), (unsigned long long)p, terms,
                                 63 - __builtin_clzll(ymax));
                }
            }
        }
    }
    for (int i = 0; i < 65; i++) tsr_free(y[i]);
    tsr_free(o1);
    tsr_free(o2);
}

/* Inner products: every family equals the portable one, on random values with 0 and q - 1 at
 * a few places and on all-(q - 1) inputs (the largest sums: the reduction chunks of the fast
 * kernels are as long as their 2^(b+63) bound allows), for term counts around those chunk
 * lengths (4 for 61-bit primes, 8 for 60-bit) and primes from 2 to 62 bits, just below a
 * power of two and just above one. */
static void test_dot_families(void **state) {
    (void)state;
    tsr_prng g;
    tt_prng(&g, 44);
    const tsr_ring_kernels *ref = tsr_ring_kernels_for(TSR_SIMD_PORTABLE);
    /* 65 and 129: past the AVX-512 kernel's 64-term chunks */
    static const size_t terms_list[] = { 1, 2, 3, 4, 5, 7, 8, 9, 13, 16, 17, 30, 64, 65, 129 };
    const size_t n = 131;
    uint64_t *x[129], *y0[129], *y1[129];
    for (int j = 0; j < 129; j++) {
        x[j] = tsr_alloc(n * 8);
        y0[j] = tsr_alloc(n * 8);
        y1[j] = tsr_alloc(n * 8);
    }
    uint64_t *a0 = tsr_alloc(n * 8), *a1 = tsr_alloc(n * 8), *b0 = tsr_alloc(n * 8),
             *b1 = tsr_alloc(n * 8);
    uint64_t qs[N_BITS + 11];
    size_t nq = 0;
    for (size_t bi = 0; bi < N_BITS; bi++)
        tt_ok(tsr_prime_generate(prime_bits[bi], 8, 1, NULL, 0, &qs[nq++]));
    tt_ok(tsr_prime_generate(62, 8, 1, NULL, 0, &qs[nq++]));
    qs[nq++] = 0x1000000000000021ULL; /* 2^60 + 33: 61 bits, just above 2^60 */
    qs[nq++] = (1ULL << 61) - 1;      /* Mersenne prime, just below 2^61 */
    qs[nq++] = (1ULL << 31) - 1;
    qs[nq++] = 3;
    qs[nq++] = 1ULL << 40; /* powers of two (tsr_modulus_init accepts them): mu = 2^64 */
    qs[nq++] = 1ULL << 61;
    qs[nq++] = 2;
    qs[nq++] = (1ULL << 61) + 2; /* even, not a power of two: any modulus is allowed */
    qs[nq++] = 6;
    for (int f = TSR_SIMD_AVX2; f <= TSR_SIMD_AVX512IFMA; f++) {
        if (!family_available((tsr_simd)f)) continue;
        const tsr_ring_kernels *k = tsr_ring_kernels_for((tsr_simd)f);
        for (size_t qi = 0; qi < nq; qi++) {
            const uint64_t q = qs[qi];
            tsr_modulus m;
            tsr_modulus_init(&m, q);
            for (size_t ti = 0; ti < 2 * (sizeof terms_list / sizeof terms_list[0]); ti++) {
                const size_t terms = terms_list[ti / 2];
                const int all_max = ti % 2;
                for (size_t j = 0; j < terms; j++) {
                    random_vec_edges(&g, x[j], n, q);
                    random_vec_edges(&g, y0[j], n, q);
                    random_vec_edges(&g, y1[j], n, q);
                    if (all_max)
                        for (size_t i = 0; i < n; i++) x[j][i] = y0[j][i] = y1[j][i] = q - 1;
                }
                ref->dot2(&m, a0, a1, (const uint64_t *const *)x, (const uint64_t *const *)y0,
                          (const uint64_t *const *)y1, terms, n);
                k->dot2(&m, b0, b1, (const uint64_t *const *)x, (const uint64_t *const *)y0,
                        (const uint64_t *const *)y1, terms, n);
                if (memcmp(a0, b0, n * 8) || memcmp(a1, b1, n * 8))
                    fail_msg("%s dot2 differs: q=%llu terms=%zu%s", tsr_simd_name((tsr_simd)f),
                             (unsigned long long)q, terms, all_max ? " (all q-1)" : "");
                for (size_t len = n - 7; len <= n;
                     len++) { /* every tail of the 4- and 8-wide loops */
                    k->dot2(&m, b0, NULL, (const uint64_t *const *)x, (const uint64_t *const *)y0,
                            NULL, terms, len);
                    if (memcmp(a0, b0, len * 8))
                        fail_msg("%s single dot differs: q=%llu terms=%zu n=%zu%s",
                                 tsr_simd_name((tsr_simd)f), (unsigned long long)q, terms, len,
                                 all_max ? " (all q-1)" : "");
                }
            }
            /* the element-wise products share the reduction */
            random_vec_edges(&g, x[0], n, q);
            random_vec_edges(&g, y0[0], n, q);
            random_vec_edges(&g, a0, n, q);
            memcpy(b0, a0, n * 8);
            ref->mul_add(&m, a0, x[0], y0[0], n);
            k->mul_add(&m, b0, x[0], y0[0], n);
            ref->mul(&m, a1, x[0], y0[0], n);
            k->mul(&m, b1, x[0], y0[0], n);
            if (memcmp(a0, b0, n * 8) || memcmp(a1, b1, n * 8))
                fail_msg("%s mul / mul_add differ: q=%llu", tsr_simd_name((tsr_simd)f),
                         (unsigned long long)q);
        }
    }
    for (int j = 0; j < 129; j++) {
        tsr_free(x[j]);
        tsr_free(y0[j]);
        tsr_free(y1[j]);
    }
    tsr_free(a0);
    tsr_free(a1);
    tsr_free(b0);
    tsr_free(b1);
}

/*
 * The IFMA family's 52-bit-limb inner products and conversion rows for moduli from 2^50 to
 * 2^62 (and even ones below, which its Montgomery kernels cannot take): against the portable
 * kernels on buffers one word off a 64-byte boundary, every length 1..40 (all the tails of
 * the 8-wide loops) and a longer one, term counts around the chunk lengths (a Barrett step
 * every 8 products for 60-bit moduli, 4 for 61-bit, 2 for 62-bit, at most every 64: 65 terms
 * need a second chunk everywhere; conversion rows take the AVX-512F row when the chunks fall
 * below 8), conversion inputs below 2^52 (four madds) and above (seven: ymax 2^56 and 2^60
 * give several chunks of 8 or 64 terms, 2^61 and 2^62 the AVX-512F row), random inputs with 0
 * and the largest value in places, and all-maximum inputs (the largest sums).
 */
static void test_wide_kernels(void **state) {
    (void)state;
    tsr_prng g;
    tt_prng(&g, 48);
    const tsr_ring_kernels *ref = tsr_ring_kernels_for(TSR_SIMD_PORTABLE);
    uint64_t qs[8];
    size_t nq = 0;
    static const int wide_bits[] = { 50, 55, 60, 62 };
    for (size_t bi = 0; bi < 4; bi++)
        tt_ok(tsr_prime_generate(wide_bits[bi], 8, 1, NULL, 0, &qs[nq++]));
    qs[nq++] = 0x1000000000000021ULL;       /* 61 bits, just above 2^60 */
    qs[nq++] = (1ULL << 60) + 2;            /* even, 61 bits */
    qs[nq++] = (1ULL << 49) - 2;            /* even, 49 bits: below 2^50 but not Montgomery */
    qs[nq++] = (1ULL << 62) - (1ULL << 40); /* even, 62 bits, just below 2^62 */
    static const size_t terms_list[] = { 1, 2, 3, 4, 5, 8, 9, 17, 65 };
    static const uint64_t ymaxes[] = { 1ULL << 52, (1ULL << 52) + 1, 1ULL << 56,
                                       1ULL << 60, 1ULL << 61,       1ULL << 62 };
    const size_t nmax = 203, T = 65;
    uint64_t *buf[3 * 65], *x[65], *y0[65], *y1[65];
    for (size_t j = 0; j < 3 * T; j++) buf[j] = tsr_alloc((nmax + 1) * 8);
    for (size_t j = 0; j < T; j++) { /* one word past the allocation's 64-byte alignment */
        x[j] = buf[j] + 1;
        y0[j] = buf[T + j] + 1;
        y1[j] = buf[2 * T + j] + 1;
    }
    uint64_t *o[4];
    for (int i = 0; i < 4; i++) o[i] = tsr_alloc((nmax + 1) * 8);
    uint64_t c[65], csh[65], c52[65];
    for (int f = TSR_SIMD_AVX2; f <= TSR_SIMD_AVX512IFMA; f++) {
        if (!family_available((tsr_simd)f)) continue;
        const tsr_ring_kernels *k = tsr_ring_kernels_for((tsr_simd)f);
        for (size_t qi = 0; qi < nq; qi++) {
            const uint64_t q = qs[qi];
            tsr_modulus m;
            tsr_modulus_init(&m, q);
            const uint64_t r52 = tsr_modq_reduce64(&m, 1ULL << 52);
            for (size_t ti = 0; ti < 2 * (sizeof terms_list / sizeof terms_list[0]); ti++) {
                const size_t terms = terms_list[ti / 2];
                const int all_max = ti % 2;
                for (size_t n = 1; n <= nmax; n = n < 40 ? n + 1 : nmax) {
                    for (size_t j = 0; j < terms; j++) {
                        random_vec_edges(&g, x[j], n, q);
                        random_vec_edges(&g, y0[j], n, q);
                        random_vec_edges(&g, y1[j], n, q);
                        if (all_max)
                            for (size_t i = 0; i < n; i++) x[j][i] = y0[j][i] = y1[j][i] = q - 1;
                    }
                    uint64_t *a0 = o[0] + 1, *a1 = o[1] + 1, *b0 = o[2] + 1, *b1 = o[3] + 1;
                    ref->dot2(&m, a0, a1, (const uint64_t *const *)x, (const uint64_t *const *)y0,
                              (const uint64_t *const *)y1, terms, n);
                    k->dot2(&m, b0, b1, (const uint64_t *const *)x, (const uint64_t *const *)y0,
                            (const uint64_t *const *)y1, terms, n);
                    if (memcmp(a0, b0, n * 8) || memcmp(a1, b1, n * 8))
                        fail_msg("%s dot2 differs: q=%llu terms=%zu n=%zu%s",
                                 tsr_simd_name((tsr_simd)f), (unsigned long long)q, terms, n,
                                 all_max ? " (all q-1)" : "");
                    k->dot2(&m, b0, NULL, (const uint64_t *const *)x, (const uint64_t *const *)y0,
                            NULL, terms, n);
                    if (memcmp(a0, b0, n * 8))
                        fail_msg("%s single dot differs: q=%llu terms=%zu n=%zu",
                                 tsr_simd_name((tsr_simd)f), (unsigned long long)q, terms, n);
                    for (size_t yi = 0; yi < sizeof ymaxes / sizeof ymaxes[0]; yi++) {
                        const uint64_t ymax = ymaxes[yi];
                        for (size_t j = 0; j < terms; j++) {
                            random_vec(&g, y0[j], n, ymax);
                            y0[j][0] = ymax - 1;
                            y0[j][n - 1] = 0;
                            if (all_max)
                                for (size_t i = 0; i < n; i++) y0[j][i] = ymax - 1;
                            c[j] = j == 0 || all_max ? q - 1 : tsr_prng_uniform(&g, q);
                            c52[j] = tsr_modq_mul(&m, c[j], r52);
                            csh[j] = tsr_modq_shoup(c[j], q);
                        }
                        const tsr_conv_coeffs r = { c, csh, c52, terms, ymax };
                        ref->conv_row(&m, a0, (const uint64_t *const *)y0, &r, n);
                        k->conv_row(&m, b0, (const uint64_t *const *)y0, &r, n);
                        if (memcmp(a0, b0, n * 8))
                            fail_msg("%s conv_row differs: q=%llu terms=%zu n=%zu ymax=2^%d%s",
                                     tsr_simd_name((tsr_simd)f), (unsigned long long)q, terms, n,
                                     63 - __builtin_clzll(ymax), all_max ? " (all max)" : "");
                    }
                    if (n == nmax) break;
                }
            }
        }
    }
    for (size_t j = 0; j < 3 * T; j++) tsr_free(buf[j]);
    for (int i = 0; i < 4; i++) tsr_free(o[i]);
}

/* Conversion rows of every length 1 .. 80 (more than TSR_RNS_MAX_PRIMES + 1 = 65), with
 * coefficient counts n that leave a tail after the SIMD blocks of 8 and 32: bit-identical to
 * the portable row. The primes and bounds reach every path (IFMA Montgomery p < 2^50 with
 * y < 2^52, IFMA wide, the AVX-512F lazy Shoup row, the AVX2 family's REDC row). */
static void test_conv_row_any_terms(void **state) {
    (void)state;
    tsr_prng g;
    tt_prng(&g, 7);
    enum { MAXT = 80 };
    const tsr_ring_kernels *ref = tsr_ring_kernels_for(TSR_SIMD_PORTABLE);
    static const int pbits[] = { 40, 55, 62 };
    static const uint64_t ymaxes[] = { 1ULL << 52, 1ULL << 62 };
    static const size_t ns[] = { 7, 45 }; /* 45 = 32 + 8 + 5 */
    uint64_t *y[MAXT];
    for (int i = 0; i < MAXT; i++) y[i] = tsr_alloc(45 * 8);
    uint64_t o1[45], o2[45], c[MAXT], c52[MAXT], csh[MAXT];
    for (int f = TSR_SIMD_AVX2; f <= TSR_SIMD_AVX512IFMA; f++) {
        if (!family_available((tsr_simd)f)) continue;
        const tsr_ring_kernels *k = tsr_ring_kernels_for((tsr_simd)f);
        for (size_t pi = 0; pi < sizeof pbits / sizeof pbits[0]; pi++) {
            uint64_t p;
            tt_ok(tsr_prime_generate(pbits[pi], 8, 1, NULL, 0, &p));
            tsr_modulus m;
            tsr_modulus_init(&m, p);
            for (size_t yi = 0; yi < sizeof ymaxes / sizeof ymaxes[0]; yi++) {
                const uint64_t ymax = ymaxes[yi];
                for (size_t i = 0; i < MAXT; i++) {
                    random_vec(&g, y[i], 45, ymax);
                    y[i][0] = ymax - 1;
                    y[i][44] = ymax - 1; /* in the scalar tail of n = 45 */
                    c[i] = i % 3 == 0 ? p - 1 : tsr_prng_uniform(&g, p);
                }
                tsr_vec_lincomb_forms(&m, csh, c52, c, MAXT);
                for (size_t terms = 1; terms <= MAXT; terms++) {
                    for (size_t ni = 0; ni < sizeof ns / sizeof ns[0]; ni++) {
                        const size_t n = ns[ni];
                        const tsr_conv_coeffs r = { c, csh, c52, terms, ymax };
                        ref->conv_row(&m, o1, (const uint64_t *const *)y, &r, n);
                        k->conv_row(&m, o2, (const uint64_t *const *)y, &r, n);
                        if (memcmp(o1, o2, n * 8) != 0)
                            fail_msg("%s conv_row differs: p=%llu terms=%zu n=%zu ymax=2^%d",
                                     tsr_simd_name((tsr_simd)f), (unsigned long long)p, terms, n,
                                     63 - __builtin_clzll(ymax));
                    }
                }
            }
        }
    }
    for (int i = 0; i < MAXT; i++) tsr_free(y[i]);
}

/* Rows and inner products of 12000 terms modulo a 30-bit prime (inputs < 2^30): there the IFMA
 * Montgomery kernels' chunk bound (2^52 - p - 2) / (hmax + 2) allows ~2^44 terms, but their
 * 64-bit low-half accumulators hold at most 4096 52-bit values; bit-identical to the portable
 * kernels on every family. */
static void test_long_rows_small_modulus(void **state) {
    (void)state;
    enum { T = 12000, N = 40 }; /* N = 32 + 8: both IFMA blocks */
    tsr_prng g;
    tt_prng(&g, 45);
    const tsr_ring_kernels *ref = tsr_ring_kernels_for(TSR_SIMD_PORTABLE);
    uint64_t p;
    tt_ok(tsr_prime_generate(30, 8, 1, NULL, 0, &p));
    tsr_modulus m;
    tsr_modulus_init(&m, p);
    uint64_t *buf = tsr_alloc((size_t)2 * T * N * 8), *c = tsr_alloc(3 * (size_t)T * 8);
    const uint64_t **x = tsr_alloc(2 * (size_t)T * sizeof *x), **y = x + T;
    uint64_t *csh = c + T, *c52 = c + 2 * (size_t)T;
    for (size_t i = 0; i < T; i++) {
        x[i] = buf + i * N;
        y[i] = buf + ((size_t)T + i) * N;
        random_vec(&g, buf + i * N, N, p);
        random_vec(&g, buf + ((size_t)T + i) * N, N, p);
        c[i] = tsr_prng_uniform(&g, p);
    }
    tsr_vec_lincomb_forms(&m, csh, c52, c, T);
    const tsr_conv_coeffs r = { c, csh, c52, T, p };
    uint64_t a0[N], a1[N], b0[N], b1[N];
    for (int f = TSR_SIMD_AVX2; f <= TSR_SIMD_AVX512IFMA; f++) {
        if (!family_available((tsr_simd)f)) continue;
        const tsr_ring_kernels *k = tsr_ring_kernels_for((tsr_simd)f);
        ref->conv_row(&m, a0, x, &r, N);
        k->conv_row(&m, b0, x, &r, N);
        if (memcmp(a0, b0, sizeof a0))
            fail_msg("%s conv_row of %d terms differs (p=%llu)", tsr_simd_name((tsr_simd)f), T,
                     (unsigned long long)p);
        ref->dot2(&m, a0, a1, x, y, x, T, N);
        k->dot2(&m, b0, b1, x, y, x, T, N);
        if (memcmp(a0, b0, sizeof a0) || memcmp(a1, b1, sizeof a1))
            fail_msg("%s dot2 of %d terms differs (q=%llu)", tsr_simd_name((tsr_simd)f), T,
                     (unsigned long long)p);
    }
    tsr_free(x);
    tsr_free(c);
    tsr_free(buf);
}

/* End to end with each family forced: basis conversion (exact, ModUp) and ModDown. */
static void test_forced_pipeline(void **state) {
    (void)state;
    const size_t n = tt_sanitized() ? 256 : 2048;
    tsr_prng g;
    tt_prng(&g, 43);
    static const struct {
        int qbits, pbits;
        size_t lq, k;
    } shapes[] = { { 49, 49, 6, 3 }, { 40, 60, 5, 2 }, { 60, 61, 4, 2 }, { 50, 50, 3, 1 } };
    const tsr_simd saved = tsr_simd_active();
    for (size_t si = 0; si < sizeof shapes / sizeof shapes[0]; si++) {
        uint64_t qq[8], pq[8];
        tt_ok(tsr_prime_generate(shapes[si].qbits, n, shapes[si].lq, NULL, 0, qq));
        tt_ok(tsr_prime_generate(shapes[si].pbits, n, shapes[si].k, qq, shapes[si].lq, pq));
        tsr_rns_basis *qb, *pb, *qpb;
        tt_ok(tsr_rns_basis_create(n, qq, shapes[si].lq, &qb));
        tt_ok(tsr_rns_basis_create(n, pq, shapes[si].k, &pb));
        tt_ok(tsr_rns_basis_concat(qb, pb, &qpb));
        tsr_baseconv *bc;
        tsr_moddown *md;
        tt_ok(tsr_baseconv_create(qb, pb, &bc));
        tt_ok(tsr_moddown_create(qb, pb, &md));
        const size_t W = tsr_rns_poly_words(qpb);
        uint64_t *src, *ref = tsr_alloc(W * 8), *work = tsr_alloc(W * 8);
        tt_ok(tsr_rns_poly_new(qpb, &src));
        for (size_t i = 0; i < qpb->count; i++) random_vec(&g, src + i * n, n, qpb->q[i]);
        for (int f = TSR_SIMD_PORTABLE; f <= TSR_SIMD_AVX512IFMA; f++) {
            if (!family_available((tsr_simd)f)) continue;
            tt_ok(tsr_simd_force((tsr_simd)f));
            /* exact conversion Q -> P, ModUp Q -> P, ModDown QP -> Q, NTT product */
            memcpy(work, src, W * 8);
            uint64_t *ip[8], *op[8];
            tsr_rns_limb_ptrs(qb, work, ip);
            tsr_rns_limb_ptrs(pb, work + qb->count * n, op);
            tt_ok(tsr_baseconv_exact(bc, op, (const uint64_t *const *)ip));
            tt_ok(tsr_baseconv_modup(bc, op, (const uint64_t *const *)ip));
            tsr_rns_mul(qpb, work, work, src);
            tsr_rns_mul_add(qpb, work, src, src);
            tt_ok(tsr_moddown_apply(md, work, work));
            tsr_rns_intt(qb, work);
            if (f == TSR_SIMD_PORTABLE)
                memcpy(ref, work, qb->count * n * 8);
            else if (memcmp(ref, work, qb->count * n * 8) != 0)
                fail_msg("%s pipeline differs from portable (shape %zu)",
                         tsr_simd_name((tsr_simd)f), si);
        }
        tt_ok(tsr_simd_force(saved));
        tsr_free(src);
        tsr_free(ref);
        tsr_free(work);
        tsr_baseconv_free(bc);
        tsr_moddown_free(md);
        tsr_rns_basis_free(qb);
        tsr_rns_basis_free(pb);
        tsr_rns_basis_free(qpb);
    }
}

/* Hex string of 2 * 8 * nw digits -> nw little-endian words (the keystream bytes as u64). */
static void hex_le_words(const char *hex, uint64_t *w, size_t nw) {
    for (size_t i = 0; i < nw; i++) {
        uint64_t v = 0;
        for (int b = 0; b < 8; b++) {
            unsigned byte = 0;
            assert_int_equal(sscanf(hex + 16 * i + 2 * (size_t)b, "%2x", &byte), 1);
            v |= (uint64_t)byte << (8 * b);
        }
        w[i] = v;
    }
}

/*
 * Published ChaCha vectors with reduced rounds, independent of Tessera and of
 * the Python reference of test_ring_sample's known answers: TC1 of
 * draft-strombergson-chacha-test-vectors-01 (all-zero 256-bit key and IV,
 * blocks 0 and 1) at 8, 12 and 20 rounds. With nonce 0 the draft's 64-bit
 * counter / 64-bit IV layout equals RFC 8439's 32-bit counter / 96-bit nonce
 * layout, so the vectors apply unchanged. Every family's kernel, from the
 * portable one on.
 */
static void test_chacha_published_vectors(void **state) {
    (void)state;
    static const struct {
        unsigned rounds;
        const char *hex; /* blocks 0 and 1 */
    } tc1[] = {
        { 8, "3e00ef2f895f40d67f5bb8e81f09a5a12c840ec3ce9a7f3b181be188ef711a1e"
             "984ce172b9216f419f445367456d5619314a42a3da86b001387bfdb80e0cfe42"
             "d2aefa0deaa5c151bf0adb6c01f2a5adc0fd581259f9a2aadcf20f8fd566a26b"
             "5032ec38bbc5da98ee0c6f568b872a65a08abf251deb21bb4b56e5d8821e68aa" },
        { 12, "9bf49a6a0755f953811fce125f2683d50429c3bb49e074147e0089a52eae155f"
              "0564f879d27ae3c02ce82834acfa8c793a629f2ca0de6919610be82f411326be"
              "0bd58841203e74fe86fc71338ce0173dc628ebb719bdcbcc151585214cc089b4"
              "42258dcda14cf111c602b8971b8cc843e91e46ca905151c02744a6b017e69316" },
        { 20, "76b8e0ada0f13d90405d6ae55386bd28bdd219b8a08ded1aa836efcc8b770dc7"
              "da41597c5157488d7724e03fb8d84a376a43b8f41518a11cc387b669b2ee6586"
              "9f07e7be5551387a98ba977c732d080dcb0f29a048e3656912c6533e32ee7aed"
              "29b721769ce64e43d57133b074d839d531ed1f28510afb45ace10a1f4b794d6f" },
    };
    const uint32_t key_w[8] = { 0 }, nonce_w[3] = { 0 };
    uint64_t want[16], got[16];
    for (size_t t = 0; t < sizeof tc1 / sizeof tc1[0]; t++) {
        hex_le_words(tc1[t].hex, want, 16);
        for (int f = TSR_SIMD_PORTABLE; f <= TSR_SIMD_AVX512IFMA; f++) {
            if (f != TSR_SIMD_PORTABLE && !family_available((tsr_simd)f)) continue;
            memset(got, 0, sizeof got);
            tsr_ring_kernels_for((tsr_simd)f)->chacha(got, key_w, nonce_w, 0, 2, tc1[t].rounds);
            if (memcmp(got, want, sizeof want) != 0)
                fail_msg("%s chacha: TC1 at %u rounds differs", tsr_simd_name((tsr_simd)f),
                         tc1[t].rounds);
            /* block 1 alone (counter 1) */
            tsr_ring_kernels_for((tsr_simd)f)->chacha(got, key_w, nonce_w, 1, 1, tc1[t].rounds);
            assert_memory_equal(got, want + 8, 8 * sizeof *got);
        }
    }
}

/*
 * ChaCha keystream: the portable kernel at 20 rounds is libsodium's ChaCha20 (IETF: the words
 * of tsr_stream_chacha20 read little-endian), and every family equals the portable kernel at
 * 2, 8, 12 and 20 rounds, for block counts around the 8- and 16-block widths and counters up to the
 * last block before the 32-bit counter wraps; the chunked ChaCha12 sampler is the same under every
 * family (its known answers: test_ring_sample).
 */
static void test_chacha_families(void **state) {
    (void)state;
    tsr_prng g;
    tt_prng(&g, 46);
    uint8_t key[32], nonce[12];
    uint32_t key_w[8], nonce_w[3];
    tsr_prng_bytes(&g, key, sizeof key);
    tsr_prng_bytes(&g, nonce, sizeof nonce);
    for (int i = 0; i < 8; i++)
        key_w[i] = (uint32_t)key[4 * i] | (uint32_t)key[4 * i + 1] << 8 |
                   (uint32_t)key[4 * i + 2] << 16 | (uint32_t)key[4 * i + 3] << 24;
    for (int i = 0; i < 3; i++)
        nonce_w[i] = (uint32_t)nonce[4 * i] | (uint32_t)nonce[4 * i + 1] << 8 |
                     (uint32_t)nonce[4 * i + 2] << 16 | (uint32_t)nonce[4 * i + 3] << 24;
    enum { MAXB = 41 };
    uint64_t ref[8 * MAXB], got[8 * MAXB + 1];
    uint8_t sod[64 * MAXB];
    static const size_t counts[] = { 0, 1, 7, 8, 9, 15, 16, 17, 23, 24, 32, 33, MAXB };
    const uint32_t ctrs[] = { 0, 1, 0x10000, 0xffffffffu - MAXB, 0xffffffffu - 8 };
    const tsr_ring_kernels *port = tsr_ring_kernels_for(TSR_SIMD_PORTABLE);
    for (size_t ci = 0; ci < sizeof ctrs / sizeof ctrs[0]; ci++)
        for (size_t ni = 0; ni < sizeof counts / sizeof counts[0]; ni++) {
            const size_t nb = counts[ni];
            if ((uint64_t)ctrs[ci] + nb > ((uint64_t)1 << 32)) continue;
            port->chacha(ref, key_w, nonce_w, ctrs[ci], nb, 20);
            if (nb) {
                tsr_stream_chacha20(sod, nb * 64, key, nonce, ctrs[ci]);
                for (size_t w = 0; w < 8 * nb; w++) {
                    uint64_t v = 0;
                    for (int b = 0; b < 8; b++) v |= (uint64_t)sod[8 * w + (size_t)b] << (8 * b);
                    assert_int_equal(ref[w], v);
                }
            }
            static const unsigned rounds[] = { 2, 8, 12, 20 };
            for (size_t ri = 0; ri < 4; ri++) {
                port->chacha(ref, key_w, nonce_w, ctrs[ci], nb, rounds[ri]);
                for (int f = TSR_SIMD_PORTABLE + 1; f <= TSR_SIMD_AVX512IFMA; f++) {
                    if (!family_available((tsr_simd)f)) continue;
                    got[8 * nb] = 0x5a5a5a5a5a5a5a5aULL; /* nothing past the last block */
                    tsr_ring_kernels_for((tsr_simd)f)
                        ->chacha(got, key_w, nonce_w, ctrs[ci], nb, rounds[ri]);
                    if (memcmp(got, ref, 8 * nb * sizeof *got) != 0)
                        fail_msg("%s chacha differs: %u rounds, %zu blocks from %u",
                                 tsr_simd_name((tsr_simd)f), rounds[ri], nb, ctrs[ci]);
                    assert_int_equal(got[8 * nb], 0x5a5a5a5a5a5a5a5aULL);
                }
            }
        }
    /* the sampler on top of it, under every family */
    tsr_modulus m;
    tsr_modulus_init(&m, 0x1000000000000021ULL); /* 2^60 + 33 */
    const tsr_simd saved = tsr_simd_active();
    uint64_t a[2100], b[2100];
    tt_ok(tsr_simd_force(TSR_SIMD_PORTABLE));
    tsr_sample_uniform_range(&m, key, 7, TSR_SAMPLE_STREAM_CHACHA12, 0, 2100, a);
    for (int f = TSR_SIMD_PORTABLE + 1; f <= TSR_SIMD_AVX512IFMA; f++) {
        if (!family_available((tsr_simd)f)) continue;
        tt_ok(tsr_simd_force((tsr_simd)f));
        tsr_sample_uniform_range(&m, key, 7, TSR_SAMPLE_STREAM_CHACHA12, 0, 2100, b);
        assert_memory_equal(a, b, sizeof a);
    }
    tt_ok(tsr_simd_force(saved));
}

/*
 * Lemire's rejection rule (the ChaCha12 sampler's squeeze): every family keeps the same words
 * and values as the portable kernel, in place and out of place, for every tail length, with
 * words at the rule's edges (low64(v q) = t and t - 1, v = 0, 1, 2^64 - 1) among random ones;
 * q a power of two (t = 0: every word kept), 1, 3, 6, primes of 49 to 62 bits, 2^63 + 1
 * and 2^64 - 1.
 */
static void test_squeeze_families(void **state) {
    (void)state;
    tsr_prng g;
    tt_prng(&g, 47);
    enum { N = 83 };
    uint64_t in[N], ref[N], got[N], inplace[N];
    const uint64_t qs[] = { 1,
                            3,
                            1ULL << 40,
                            0x1000000000000021ULL,
                            562949951979521ULL,
                            (1ULL << 39) - 7, /* the compiler chains' scale primes' size */
                            (1ULL << 52) - 1, /* the largest the IFMA kernel takes */
                            (1ULL << 52) + 1,
                            1152921504606584833ULL,
                            (1ULL << 61) - 1,
                            4611686018427387847ULL,
                            6,                /* even, not a power of two */
                            (1ULL << 63) + 1, /* past 2^62: the contract allows any q */
                            UINT64_MAX };
    const tsr_ring_kernels *port = tsr_ring_kernels_for(TSR_SIMD_PORTABLE);
    for (size_t qi = 0; qi < sizeof qs / sizeof qs[0]; qi++) {
        const uint64_t q = qs[qi], t = ((uint64_t)0 - q) % q;
        tsr_prng_bytes(&g, (uint8_t *)in, sizeof in);
        /* v with low64(v q) = t + d, d in {-1, 0}: v = (t + d) q^-1 mod 2^64 (q odd) */
        if (q & 1) {
            uint64_t inv = q;
            for (int it = 0; it < 6; it++) inv *= 2 - q * inv;
            for (int d = 0; d < 2; d++) in[3 + 7 * d] = (t - (uint64_t)d) * inv;
        }
        in[0] = 0;
        in[20] = 1;
        in[41] = UINT64_MAX;
        for (size_t n = 0; n <= N; n += (n < 20 ? 1 : 7)) {
            const size_t want = port->squeeze_lemire(q, ref, in, n);
            for (int f = TSR_SIMD_PORTABLE + 1; f <= TSR_SIMD_AVX512IFMA; f++) {
                if (!family_available((tsr_simd)f)) continue;
                const tsr_ring_kernels *k = tsr_ring_kernels_for((tsr_simd)f);
                assert_int_equal(k->squeeze_lemire(q, got, in, n), want);
                assert_memory_equal(got, ref, want * sizeof *got);
                memcpy(inplace, in, sizeof in);
                assert_int_equal(k->squeeze_lemire(q, inplace, inplace, n), want);
                assert_memory_equal(inplace, ref, want * sizeof *got);
            }
        }
        /* the rule itself, on the portable kernel */
        size_t kept = port->squeeze_lemire(q, ref, in, N), j = 0;
        for (size_t i = 0; i < N; i++) {
            const tsr_u128 w = (tsr_u128)in[i] * q;
            if ((uint64_t)w < t) continue;
            assert_true(j < kept);
            assert_int_equal(ref[j++], (uint64_t)(w >> 64));
        }
        assert_int_equal(j, kept);
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ntt_families),       cmocka_unit_test(test_elementwise_families),
        cmocka_unit_test(test_conv_row_families),  cmocka_unit_test(test_conv_row_any_terms),
        cmocka_unit_test(test_dot_families),       cmocka_unit_test(test_long_rows_small_modulus),
        cmocka_unit_test(test_wide_kernels),       cmocka_unit_test(test_forced_pipeline),
        cmocka_unit_test(test_split_ntt_families), cmocka_unit_test(test_copy_stream_families),
        cmocka_unit_test(test_permute_families),   cmocka_unit_test(test_quotient_families),
        cmocka_unit_test(test_chacha_families),    cmocka_unit_test(test_chacha_published_vectors),
        cmocka_unit_test(test_squeeze_families),   cmocka_unit_test(test_quotient_round_families),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
