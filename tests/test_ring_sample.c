/*
 * tests/test_ring_sample.c - samplers: ranges, distributions (mean,
 * variance, chi-square), exact Hamming weight, determinism from the seed,
 * limb consistency across an RNS basis and across sub-bases.
 */
#include "testutil.h"

#include "tessera.h"
#include "core/alloc.h"
#include "ring/ring.h"

#include <math.h>
#include <string.h>

static tsr_rns_basis *make_basis(size_t n, int bits, size_t count) {
    uint64_t q[16];
    tt_ok(tsr_prime_generate(bits, n, count, NULL, 0, q));
    tsr_rns_basis *b;
    tt_ok(tsr_rns_basis_create(n, q, count, &b));
    return b;
}

static void test_uniform(void **state) {
    (void)state;
    const size_t n = 4096;
    tsr_rns_basis *b = make_basis(n, 50, 3);
    tsr_rns_basis *b17 = make_basis(n, 17, 1); /* small prime: easy chi-square */
    uint64_t *a, *a2, *c;
    tt_ok(tsr_rns_poly_new(b, &a));
    tt_ok(tsr_rns_poly_new(b, &a2));
    tt_ok(tsr_rns_poly_new(b, &c));
    uint8_t seed[TSR_SEED_BYTES] = { 7, 7, 7 }, seed2[TSR_SEED_BYTES] = { 7, 7, 8 };
    tsr_sample_uniform(b, seed, 1, a);
    tsr_sample_uniform(b, seed, 1, a2);
    assert_memory_equal(a, a2, tsr_rns_poly_words(b) * 8);
    tsr_sample_uniform(b, seed, 2, c);
    assert_memory_not_equal(a, c, n * 8);
    tsr_sample_uniform(b, seed2, 1, c);
    assert_memory_not_equal(a, c, n * 8);
    /* Limbs are independent streams: no two limbs equal. */
    assert_memory_not_equal(a, a + n, n * 8);
    for (size_t i = 0; i < b->count; i++) {
        double mean = 0;
        for (size_t k = 0; k < n; k++) {
            assert_true(a[i * n + k] < b->q[i]);
            mean += (double)a[i * n + k] / (double)b->q[i];
        }
        mean /= (double)n;
        /* uniform [0,1): sd of the mean = 1/sqrt(12 n) ~ 0.0045 */
        assert_true(fabs(mean - 0.5) < 0.025);
    }
    /* Any sub-basis (reordered, a lower level) regenerates the same limbs. */
    size_t idx[2] = { 2, 0 };
    tsr_rns_basis *sub;
    tt_ok(tsr_rns_basis_select(b, idx, 2, &sub));
    tsr_sample_uniform(sub, seed, 1, c);
    assert_memory_equal(c, a + 2 * n, n * 8);
    assert_memory_equal(c + n, a, n * 8);
    /* Chi-square on a small prime: counts of each residue. */
    uint64_t *s;
    tt_ok(tsr_rns_poly_new(b17, &s));
    uint64_t q = b17->q[0];
    double *cnt = tsr_calloc_array(q, sizeof(double));
    const int reps = tt_sanitized() ? 4 : 32;
    for (int r = 0; r < reps; r++) {
        tsr_sample_uniform(b17, seed, 100 + (uint64_t)r, s);
        for (size_t k = 0; k < n; k++) {
            assert_true(s[k] < q);
            cnt[s[k]] += 1;
        }
    }
    double expect = (double)n * reps / (double)q, chi2 = 0;
    for (uint64_t v = 0; v < q; v++) chi2 += (cnt[v] - expect) * (cnt[v] - expect) / expect;
    /* dof = q - 1 (~1e5 for a 17-bit prime); 6 sigma above the mean */
    double dof = (double)q - 1;
    assert_true(chi2 < dof + 6 * sqrt(2 * dof));
    assert_true(chi2 > dof - 6 * sqrt(2 * dof));
    tsr_free(cnt);
    tsr_free(s);
    tsr_free(a);
    tsr_free(a2);
    tsr_free(c);
    tsr_rns_basis_free(sub);
    tsr_rns_basis_free(b);
    tsr_rns_basis_free(b17);
}

static void test_ternary(void **state) {
    (void)state;
    const size_t n = 1 << 16;
    int8_t *s = tsr_alloc(n), *s2 = tsr_alloc(n);
    uint8_t seed[TSR_SEED_BYTES] = { 1 };
    tsr_prng g, g2;
    tsr_prng_init(&g, seed, 5);
    tsr_prng_init(&g2, seed, 5);
    tsr_sample_ternary(&g, s, n);
    tsr_sample_ternary(&g2, s2, n);
    assert_memory_equal(s, s2, n);
    double cnt[3] = { 0 };
    for (size_t k = 0; k < n; k++) {
        assert_true(s[k] >= -1 && s[k] <= 1);
        cnt[s[k] + 1] += 1;
    }
    double e = n / 3.0, chi2 = 0;
    for (int i = 0; i < 3; i++) chi2 += (cnt[i] - e) * (cnt[i] - e) / e;
    assert_true(chi2 < 25); /* 2 dof */

    static const size_t weights[] = { 0, 1, 64, 192, 4096, 1 << 16 };
    for (size_t wi = 0; wi < sizeof weights / sizeof weights[0]; wi++) {
        size_t h = weights[wi];
        tt_ok(tsr_sample_ternary_hw(&g, s, n, h));
        size_t nz = 0, pos = 0;
        for (size_t k = 0; k < n; k++) {
            assert_true(s[k] >= -1 && s[k] <= 1);
            nz += s[k] != 0;
            pos += s[k] == 1;
        }
        assert_int_equal(nz, h);
        if (h >= 4096) assert_true(fabs((double)pos / (double)h - 0.5) < 0.05);
    }
    /* Positions spread over the whole range (first/second half both hit). */
    double half[2] = { 0 };
    for (int r = 0; r < 50; r++) {
        tt_ok(tsr_sample_ternary_hw(&g, s, n, 64));
        for (size_t k = 0; k < n; k++) half[k >= n / 2] += s[k] != 0;
    }
    assert_true(fabs(half[0] - half[1]) < 6 * sqrt(50 * 64.0));
    /* Determinism */
    tsr_prng_init(&g, seed, 6);
    tsr_prng_init(&g2, seed, 6);
    tt_ok(tsr_sample_ternary_hw(&g, s, n, 192));
    tt_ok(tsr_sample_ternary_hw(&g2, s2, n, 192));
    assert_memory_equal(s, s2, n);
    tt_fails(tsr_sample_ternary_hw(&g, s, 8, 9), TSR_ERR_INVALID_ARG);
    tsr_free(s);
    tsr_free(s2);
}

static void test_gaussian(void **state) {
    (void)state;
    const size_t n = (size_t)1 << (tt_sanitized() ? 17 : 19);
    int64_t *e = tsr_alloc(n * sizeof *e), *e2 = tsr_alloc(n * sizeof *e2);
    uint8_t seed[TSR_SEED_BYTES] = { 2 };
    tsr_prng g, g2;
    tsr_prng_init(&g, seed, 1);
    tsr_prng_init(&g2, seed, 1);
    tsr_sample_gaussian(&g, e, n);
    tsr_sample_gaussian(&g2, e2, n);
    assert_memory_equal(e, e2, n * sizeof *e);
    double sum = 0, sum2 = 0;
    double hist[2 * TSR_SAMPLE_GAUSS_BOUND + 1] = { 0 };
    for (size_t k = 0; k < n; k++) {
        assert_true(e[k] >= -TSR_SAMPLE_GAUSS_BOUND && e[k] <= TSR_SAMPLE_GAUSS_BOUND);
        sum += (double)e[k];
        sum2 += (double)e[k] * (double)e[k];
        hist[e[k] + TSR_SAMPLE_GAUSS_BOUND] += 1;
    }
    double mean = sum / (double)n, var = sum2 / (double)n - mean * mean;
    const double s2 = TSR_SAMPLE_SIGMA * TSR_SAMPLE_SIGMA;
    assert_true(fabs(mean) < 6 * sqrt(s2 / (double)n));
    assert_true(fabs(var - s2) < 6 * sqrt(2.0 * s2 * s2 / (double)n));
    /* Chi-square against exp(-x^2 / 2 sigma^2) for |x| <= 8 (bins with >= 100 expected). */
    double z = 0;
    for (int x = -TSR_SAMPLE_GAUSS_BOUND; x <= TSR_SAMPLE_GAUSS_BOUND; x++)
        z += exp(-(double)x * x / (2 * s2));
    double chi2 = 0;
    int bins = 0;
    for (int x = -8; x <= 8; x++) {
        double want = (double)n * exp(-(double)x * x / (2 * s2)) / z;
        double got = hist[x + TSR_SAMPLE_GAUSS_BOUND];
        chi2 += (got - want) * (got - want) / want;
        bins++;
    }
    assert_true(chi2 < bins + 6 * sqrt(2.0 * bins));
    /* symmetric: as many positives as negatives */
    double pos = 0, negc = 0;
    for (size_t k = 0; k < n; k++) pos += e[k] > 0, negc += e[k] < 0;
    assert_true(fabs(pos - negc) < 6 * sqrt(pos + negc));
    tsr_free(e);
    tsr_free(e2);
}

static void test_rns_consistency(void **state) {
    (void)state;
    const size_t n = 1024;
    tsr_rns_basis *b = make_basis(n, 40, 4);
    uint64_t *s, *e;
    tt_ok(tsr_rns_poly_new(b, &s));
    tt_ok(tsr_rns_poly_new(b, &e));
    tsr_prng g;
    tt_prng(&g, 30);
    tt_ok(tsr_sample_ternary_rns(b, &g, s));
    tt_ok(tsr_sample_gaussian_rns(b, &g, e));
    for (size_t k = 0; k < n; k++) {
        /* the same small integer in every limb */
        int64_t sv = s[k] == 0 ? 0 : (s[k] == 1 ? 1 : -1);
        assert_true(s[k] <= 1 || s[k] == b->q[0] - 1);
        uint64_t e0 = e[k];
        int64_t ev = e0 <= TSR_SAMPLE_GAUSS_BOUND ? (int64_t)e0 : -(int64_t)(b->q[0] - e0);
        assert_true(ev >= -TSR_SAMPLE_GAUSS_BOUND && ev <= TSR_SAMPLE_GAUSS_BOUND);
        for (size_t i = 1; i < b->count; i++) {
            assert_int_equal(s[i * n + k], tsr_modq_from_i64(&b->mod[i], sv));
            assert_int_equal(e[i * n + k], tsr_modq_from_i64(&b->mod[i], ev));
        }
    }
    uint8_t seed[TSR_SEED_BYTES];
    tt_ok(tsr_random_bytes(seed, sizeof seed));
    tsr_sample_uniform(b, seed, 0, s);
    for (size_t i = 0; i < b->count; i++)
        for (size_t k = 0; k < n; k++) assert_true(s[i * n + k] < b->q[i]);
    tsr_free(s);
    tsr_free(e);
    tsr_rns_basis_free(b);
}

/*
 * The chunked stream of seeded key halves: any range equals the slice of the
 * whole limb (in any order, across chunk borders, a limb shorter than a
 * chunk is a prefix of a longer one); values below q; seed, domain and prime
 * separate the streams; the mean is that of a uniform variable; a prime
 * just above a power of two (half the words rejected) still fills the limb.
 */
static void uniform_range_stream(unsigned stream) {
    const size_t n = 3 * TSR_SAMPLE_CHUNK + 100;
    tsr_modulus m, m2, mh;
    tsr_modulus_init(&m, (1ULL << 50) - 27);  /* 2^50 - 27 is prime */
    tsr_modulus_init(&m2, (1ULL << 50) - 35); /* 2^50 - 35 is prime */
    tsr_modulus_init(&mh, (1ULL << 40) + 15); /* 2^40 + 15 is prime, just above 2^40 */
    uint64_t *all = tsr_alloc(n * 8), *part = tsr_alloc(n * 8), *other = tsr_alloc(n * 8);
    assert_non_null(all);
    assert_non_null(part);
    assert_non_null(other);
    uint8_t seed[TSR_SEED_BYTES] = { 1, 2, 3 }, seed2[TSR_SEED_BYTES] = { 1, 2, 4 };
    tsr_sample_uniform_range(&m, seed, 0x100, stream, 0, n, all);
    double mean = 0;
    for (size_t k = 0; k < n; k++) {
        assert_true(all[k] < m.q);
        mean += (double)all[k] / (double)m.q;
    }
    assert_true(fabs(mean / (double)n - 0.5) < 0.025); /* sd of the mean ~0.0047 */
    /* ranges in reverse order, crossing chunk borders, odd sizes */
    const size_t cuts[] = { 0, 1, 700, TSR_SAMPLE_CHUNK, TSR_SAMPLE_CHUNK + 3, 2500, n };
    for (int i = (int)(sizeof cuts / sizeof cuts[0]) - 2; i >= 0; i--)
        tsr_sample_uniform_range(&m, seed, 0x100, stream, cuts[i], cuts[i + 1] - cuts[i],
                                 part + cuts[i]);
    assert_memory_equal(all, part, n * 8);
    /* a shorter limb (N below one chunk) is the prefix */
    tsr_sample_uniform_range(&m, seed, 0x100, stream, 0, 64, part);
    assert_memory_equal(all, part, 64 * 8);
    tsr_sample_uniform_range(&m, seed, 0x101, stream, 0, n, other);
    assert_memory_not_equal(all, other, n * 8);
    tsr_sample_uniform_range(&m, seed2, 0x100, stream, 0, n, other);
    assert_memory_not_equal(all, other, n * 8);
    tsr_sample_uniform_range(&m2, seed, 0x100, stream, 0, n, other);
    assert_memory_not_equal(all, other, n * 8);
    /* chunks differ from each other */
    assert_memory_not_equal(all, all + TSR_SAMPLE_CHUNK, TSR_SAMPLE_CHUNK * 8);
    tsr_sample_uniform_range(&mh, seed, 7, stream, 0, n, other);
    tsr_sample_uniform_range(&mh, seed, 7, stream, TSR_SAMPLE_CHUNK - 5, 10, part);
    assert_memory_equal(other + TSR_SAMPLE_CHUNK - 5, part, 10 * 8);
    size_t high = 0;
    for (size_t k = 0; k < n; k++) {
        assert_true(other[k] < mh.q);
        high += other[k] >= (1ULL << 39);
    }
    assert_true(high > n / 2 - n / 20 && high < n / 2 + n / 20);
    tsr_free(all);
    tsr_free(part);
    tsr_free(other);
}

/* Lemire's rule (stream 2) at its edges: w = v q, kept iff low64(w) >= t = 2^64 mod q, value
 * high64(w); and Barrett's (stream 1) next to it. */
static void test_squeeze_edges(void **state) {
    (void)state;
    tsr_modulus m;
    const uint64_t q = 0x1000000000000021ULL; /* 2^60 + 33 */
    tsr_modulus_init(&m, q);
    const uint64_t t = ((uint64_t)0 - q) % q; /* 2^64 mod q, > 0 */
    assert_true(t > 0);
    /* v = ceil(j 2^64 / q) for j = 5: v q just past 5 2^64, low word (v q) mod 2^64 = v q - 5 2^64
     */
    const tsr_u128 two64 = (tsr_u128)1 << 64;
    const uint64_t j = 5, vj = (uint64_t)((j * two64 + q - 1) / q);
    const uint64_t low_j = (uint64_t)((tsr_u128)vj * q);
    uint64_t in[] = { 0, 1, UINT64_MAX, vj, vj - 1 }, out[5];
    size_t k = tsr_sample_squeeze_for_test(TSR_SAMPLE_STREAM_CHACHA12, &m, out, in, 5);
    /* v = 0: low 0 < t, rejected; v = 1: low q >= t, kept as 0; UINT64_MAX: low 2^64 - q >= t,
     * kept as q - 1; vj: kept iff low_j >= t, value j; vj - 1: low_j - q wraps, kept (low ~
     * 2^64 - q + low_j >= t) as j - 1 */
    size_t want = 0;
    uint64_t exp[5];
    exp[want++] = 0;
    exp[want++] = q - 1;
    if (low_j >= t) exp[want++] = j;
    exp[want++] = j - 1;
    assert_int_equal(k, want);
    assert_memory_equal(out, exp, want * sizeof *exp);
    /* q = 2^40: t = 0, every word kept, the top 40 bits */
    tsr_modulus p2;
    tsr_modulus_init(&p2, 1ULL << 40);
    uint64_t in2[] = { 0, 1, UINT64_MAX, 0x123456789abcdef0ULL }, out2[4];
    assert_int_equal(tsr_sample_squeeze_for_test(TSR_SAMPLE_STREAM_CHACHA12, &p2, out2, in2, 4), 4);
    for (int i = 0; i < 4; i++) assert_int_equal(out2[i], in2[i] >> 24);
    assert_int_equal(tsr_sample_squeeze_for_test(TSR_SAMPLE_STREAM_CHACHA20, &p2, out2, in2, 4), 4);
    for (int i = 0; i < 4; i++) assert_int_equal(out2[i], in2[i] & ((1ULL << 40) - 1));
    /* Barrett (stream 1): v kept iff v < q floor(2^64 / q), value v mod q */
    const uint64_t limit = q * (UINT64_MAX / q);
    uint64_t in3[] = { 0, limit - 1, limit, UINT64_MAX }, out3[4];
    assert_int_equal(tsr_sample_squeeze_for_test(TSR_SAMPLE_STREAM_CHACHA20, &m, out3, in3, 4), 2);
    assert_int_equal(out3[0], 0);
    assert_int_equal(out3[1], (limit - 1) % q);
}

static void test_uniform_range(void **state) {
    (void)state;
    uniform_range_stream(TSR_SAMPLE_STREAM_CHACHA20);
    uniform_range_stream(TSR_SAMPLE_STREAM_CHACHA12);
    /* the two stream ids are two streams */
    tsr_modulus m;
    tsr_modulus_init(&m, (1ULL << 50) - 27);
    const uint8_t seed[TSR_SEED_BYTES] = { 1, 2, 3 };
    uint64_t a[300], b[300];
    tsr_sample_uniform_range(&m, seed, 0x100, TSR_SAMPLE_STREAM_CHACHA20, 0, 300, a);
    tsr_sample_uniform_range(&m, seed, 0x100, TSR_SAMPLE_STREAM_CHACHA12, 0, 300, b);
    assert_memory_not_equal(a, b, sizeof a);
}

/*
 * Known answers for the key streams, so that a change to the stream (chunk
 * size, nonce layout, counter, rejection rule, byte order) cannot pass as a
 * round trip: key files on disk hold only seeds for the a halves. The words
 * were computed outside Tessera (Python: `cryptography` ChaCha20 and a
 * from-RFC ChaCha20/HChaCha20 checked against the XChaCha20 draft vector):
 *  - chunked stream (format 3): chunk c = ChaCha20-IETF(key = seed, nonce =
 *    q LE64 || domain LE32, counter c << 16), words LE64, kept when below
 *    q * floor(2^64 / q), reduced mod q; q = 2^60 + 33 rejects 1/16 of the
 *    words (the 7th word of chunk 0 is the first rejected one);
 *  - chunked ChaCha12 (format 3, stream 2): the same with 12 rounds and
 *    Lemire's rule (below);
 *  - per-limb stream (format 2): XChaCha20(key = seed, nonce = domain LE64
 *    || q LE64 || 0^8), words LE64 masked to bitlen(q), kept when below q.
 */
static void test_uniform_known_answers(void **state) {
    (void)state;
    const uint8_t seed[TSR_SEED_BYTES] = { 1, 2, 3 };
    tsr_modulus m;
    tsr_modulus_init(&m, 0x1000000000000021ULL); /* 2^60 + 33, prime */
    const struct {
        size_t off;
        uint64_t want;
    } kat[] = {
        { 0, 0x3627a8a37e7b95aULL },    { 1, 0xf40b87cfcf6f5f6ULL },
        { 6, 0xf1080690d1cf5daULL },    /* after the first rejected word */
        { 1023, 0xea0ca76e1707869ULL }, /* end of chunk 0 */
        { 1024, 0xe6e172442e7d19bULL }, /* chunk 1 */
        { 1025, 0xcc6f534353dfa17ULL },
    };
    assert_int_equal(TSR_SAMPLE_CHUNK, 1024);
    uint64_t all[2 * 1024];
    tsr_sample_uniform_range(&m, seed, 0x105, TSR_SAMPLE_STREAM_CHACHA20, 0, 2 * 1024, all);
    for (size_t i = 0; i < sizeof kat / sizeof kat[0]; i++) {
        assert_int_equal(all[kat[i].off], kat[i].want);
        uint64_t one = 0;
        tsr_sample_uniform_range(&m, seed, 0x105, TSR_SAMPLE_STREAM_CHACHA20, kat[i].off, 1, &one);
        assert_int_equal(one, kat[i].want);
    }

    /* ChaCha12 (stream 2): the same chunks with 12 rounds, a word v kept when
     * (v q mod 2^64) >= 2^64 mod q and sampled as floor(v q / 2^64) (Lemire); the 7th word of
     * chunk 0 is the first rejected one (from the same Python reference, which reproduces the
     * ChaCha20 words above and `cryptography`'s ChaCha20 keystream at 20 rounds; the kernel's
     * 12 rounds are pinned independently by a published vector: test_ring_simd,
     * test_chacha_published_vectors) */
    const struct {
        size_t off;
        uint64_t want;
    } kat12[] = {
        { 0, 0x166430bec8845b3ULL },    { 1, 0x8a4386b72c1b8e0ULL },
        { 5, 0xd55c5eb705e847dULL },    { 6, 0x6e88d7e13ab5a8dULL }, /* after the rejected word */
        { 1023, 0xf786528d7cac232ULL }, { 1024, 0x66ec674e69798c0ULL },
        { 1025, 0x6f56330422a433cULL },
    };
    tsr_sample_uniform_range(&m, seed, 0x105, TSR_SAMPLE_STREAM_CHACHA12, 0, 2 * 1024, all);
    for (size_t i = 0; i < sizeof kat12 / sizeof kat12[0]; i++) {
        assert_int_equal(all[kat12[i].off], kat12[i].want);
        uint64_t one = 0;
        tsr_sample_uniform_range(&m, seed, 0x105, TSR_SAMPLE_STREAM_CHACHA12, kat12[i].off, 1,
                                 &one);
        assert_int_equal(one, kat12[i].want);
    }

    const uint64_t q[2] = { 1125899906843009ULL, 0x2000000000000581ULL }; /* 1 mod 128, prime */
    tsr_rns_basis *b;
    tt_ok(tsr_rns_basis_create(64, q, 2, &b));
    uint64_t *a;
    tt_ok(tsr_rns_poly_new(b, &a));
    tsr_sample_uniform(b, seed, 0x1234, a);
    const uint64_t want2[2][3] = {
        { 0x3a5913480ed75ULL, 0x1d7243d71d548ULL, 0x23b41af9f2aa7ULL },
        { 0x1d348b7f7b33dd80ULL, 0x191d5cc08a24e1baULL, 0xb2122aef0bf06ffULL },
    };
    for (int t = 0; t < 2; t++) {
        assert_int_equal(a[t * 64 + 0], want2[t][0]);
        assert_int_equal(a[t * 64 + 1], want2[t][1]);
        assert_int_equal(a[t * 64 + 63], want2[t][2]);
    }
    tsr_free(a);
    tsr_rns_basis_free(b);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_uniform),         cmocka_unit_test(test_uniform_range),
        cmocka_unit_test(test_squeeze_edges),   cmocka_unit_test(test_uniform_known_answers),
        cmocka_unit_test(test_ternary),         cmocka_unit_test(test_gaussian),
        cmocka_unit_test(test_rns_consistency),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
