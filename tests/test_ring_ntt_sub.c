/*
 * tests/test_ring_ntt_sub.c - the NTT of a subring polynomial A(X) = B(X^(N/m))
 * (ring/ntt_sub.h): tsr_ntt_forward_sparse equals tsr_ntt_forward of A
 * written out word for word, and tsr_ntt_forward_sub gives its m distinct
 * values, for every m from 1 to N, several N and primes of 40 to 61 bits
 * (the IFMA kernels' range and above), with every SIMD family this CPU has.
 */
#include "testutil.h"

#include "tessera.h"
#include "core/alloc.h"
#include "ring/ntt_sub.h"
#include "ring/prime.h"

#include <string.h>

static void check_degree(size_t n, int bits, tsr_prng *g) {
    uint64_t q;
    tt_ok(tsr_prime_generate(bits, n, 1, NULL, 0, &q));
    tsr_ntt_table *t;
    tt_ok(tsr_ntt_table_create(n, q, &t));
    uint64_t *b = tsr_alloc(n * 8), *want = tsr_alloc(n * 8), *got = tsr_alloc(n * 8);
    assert_true(b && want && got);
    for (size_t m = 1; m <= n; m *= 2) {
        const size_t s = n / m;
        for (size_t k = 0; k < m; k++) b[k] = tsr_prng_uniform(g, q);
        /* A written out: b_k at X^(k s), zeros elsewhere */
        memset(want, 0, n * 8);
        for (size_t k = 0; k < m; k++) want[k * s] = b[k];
        tsr_ntt_forward(t, want);
        /* garbage past m must not be read */
        for (size_t k = 0; k < n; k++) got[k] = k < m ? b[k] : ~(uint64_t)0;
        tsr_ntt_forward_sparse(t, got, m);
        assert_memory_equal(got, want, n * 8);
        memcpy(got, b, m * 8);
        tsr_ntt_forward_sub(t, got, m);
        for (size_t j = 0; j < n; j++) assert_int_equal(got[j / s], want[j]);
        /* lazy input (< 4q, q < 2^62), as tsr_ntt_forward accepts it */
        for (size_t k = 0; k < m; k++) got[k] = b[k] + (k % 4) * q;
        tsr_ntt_forward_sparse(t, got, m);
        assert_memory_equal(got, want, n * 8);
    }
    tsr_free(b);
    tsr_free(want);
    tsr_free(got);
    tsr_ntt_table_free(t);
}

static void test_ntt_sub(void **state) {
    (void)state;
    tsr_prng g;
    tt_prng(&g, 61);
    const size_t ns[] = { 2, 16, 1024, 8192 };
    const int bits[] = { 40, 49, 55, 61 };
    tsr_simd best = tsr_simd_detected();
    for (int f = 0; f <= (int)best; f++) {
        tt_ok(tsr_simd_force((tsr_simd)f));
        for (size_t i = 0; i < sizeof ns / sizeof ns[0]; i++)
            for (size_t k = 0; k < sizeof bits / sizeof bits[0]; k++)
                check_degree(ns[i], bits[k], &g);
    }
    tt_ok(tsr_simd_force(best));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ntt_sub),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
