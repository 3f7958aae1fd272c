/*
 * tests/test_ring_split.c - the split-NTT forms of ModUp and ModDown
 * (tsr_baseconv_modup_split, tsr_moddown_prepare_split + tsr_moddown_block,
 * used by CKKS key switching) compute exactly what the whole-limb forms
 * compute (tsr_baseconv_modup after an inverse NTT, tsr_moddown_apply), for
 * several N and segment exponents r, one and several P primes, in place and
 * with an added term, with every SIMD family this CPU has.
 */
#include "testutil.h"

#include "tessera.h"
#include "core/alloc.h"
#include "ring/baseconv.h"
#include "ring/vec.h"
#include "ring/prime.h"
#include "ring/rns.h"

#include <string.h>

typedef struct shape {
    size_t n, nq, np;
    unsigned r;
    unsigned qbits, pbits; /* bits of the Q and P primes (0: 45 and 50) */
} shape;

/* Inner inverse stages on every block of limb a (prime table t). */
static void inv_inner_all(const tsr_ntt_table *t, uint64_t *a, unsigned r) {
    const size_t B = t->n >> r;
    for (size_t b = 0; b < ((size_t)1 << r); b++)
        tsr_ntt_inverse_inner(t, a + b * B, a + b * B, b, r, NULL);
}

static void fwd_inner_all(const tsr_ntt_table *t, uint64_t *a, unsigned r) {
    const size_t B = t->n >> r;
    for (size_t b = 0; b < ((size_t)1 << r); b++)
        tsr_ntt_forward_inner(t, a + b * B, a + b * B, b, r, NULL);
}

static void make_bases(const shape *s, uint64_t *primes, tsr_rns_basis **q, tsr_rns_basis **p) {
    tt_ok(tsr_prime_generate(s->qbits ? s->qbits : 45, s->n, s->nq, NULL, 0, primes));
    tt_ok(tsr_prime_generate(s->pbits ? s->pbits : 50, s->n, s->np, primes, s->nq, primes + s->nq));
    tt_ok(tsr_rns_basis_create(s->n, primes, s->nq, q));
    tt_ok(tsr_rns_basis_create(s->n, primes + s->nq, s->np, p));
}

static void check_modup(const shape *s, tsr_prng *g) {
    uint64_t primes[32];
    tsr_rns_basis *q, *p;
    make_bases(s, primes, &q, &p);
    const size_t n = s->n;
    tsr_baseconv *bc;
    tt_ok(tsr_baseconv_create(q, p, &bc));
    uint64_t *in = tsr_alloc(s->nq * n * 8), *coef = tsr_alloc(s->nq * n * 8);
    uint64_t *want = tsr_alloc(s->np * n * 8), *got = tsr_alloc(s->np * n * 8);
    for (size_t i = 0; i < s->nq; i++)
        for (size_t k = 0; k < n; k++) in[i * n + k] = tsr_prng_uniform(g, primes[i]);
    uint64_t *ip[16], *op[16];
    /* reference: whole inverse NTT, then ModUp (conversion + NTT) */
    memcpy(coef, in, s->nq * n * 8);
    tsr_rns_intt(q, coef);
    tsr_rns_limb_ptrs(q, coef, ip);
    tsr_rns_limb_ptrs(p, want, op);
    tt_ok(tsr_baseconv_modup(bc, op, (const uint64_t *const *)ip));
    /* split: inner inverse stages per block, ModUp, inner forward stages */
    memcpy(coef, in, s->nq * n * 8);
    for (size_t i = 0; i < s->nq; i++) inv_inner_all(q->ntt[i], coef + i * n, s->r);
    tsr_rns_limb_ptrs(p, got, op);
    tt_ok(tsr_baseconv_modup_split(bc, op, (const uint64_t *const *)ip, s->r));
    for (size_t j = 0; j < s->np; j++) fwd_inner_all(p->ntt[j], got + j * n, s->r);
    assert_memory_equal(got, want, s->np * n * 8);
    tsr_free(in);
    tsr_free(coef);
    tsr_free(want);
    tsr_free(got);
    tsr_baseconv_free(bc);
    tsr_rns_basis_free(q);
    tsr_rns_basis_free(p);
}

static void check_moddown(const shape *s, tsr_prng *g) {
    uint64_t primes[32];
    tsr_rns_basis *q, *p;
    make_bases(s, primes, &q, &p);
    const size_t n = s->n, nq = s->nq, np = s->np, B = n >> s->r;
    tsr_moddown *md;
    tt_ok(tsr_moddown_create(q, p, &md));
    const size_t words = (nq + np) * n;
    uint64_t *in = tsr_alloc(words * 8), *a = tsr_alloc(words * 8);
    uint64_t *want = tsr_alloc(nq * n * 8), *got = tsr_alloc(nq * n * 8);
    uint64_t *conv = tsr_alloc(nq * n * 8), *add = tsr_alloc(nq * n * 8), *tmp = tsr_alloc(B * 8);
    for (size_t i = 0; i < nq + np; i++)
        for (size_t k = 0; k < n; k++) in[i * n + k] = tsr_prng_uniform(g, primes[i]);
    for (size_t i = 0; i < nq; i++)
        for (size_t k = 0; k < n; k++) add[i * n + k] = tsr_prng_uniform(g, primes[i]);
    memcpy(a, in, words * 8);
    tt_ok(tsr_moddown_apply(md, want, a));
    /* round 0: out separate; 1: out == in, plus add; 2: out == add */
    for (int with_add = 0; with_add < 3; with_add++) {
        memcpy(a, in, words * 8);
        for (size_t i = 0; i < np; i++) inv_inner_all(p->ntt[i], a + (nq + i) * n, s->r);
        uint64_t *cp[16];
        tsr_rns_limb_ptrs(q, conv, cp);
        tt_ok(tsr_moddown_prepare_split(md, a + nq * n, cp, s->r));
        uint64_t *out = with_add == 0 ? got : with_add == 1 ? a : got;
        if (with_add == 2) memcpy(got, add, nq * n * 8);
        const uint64_t *ad = with_add == 1 ? add : with_add == 2 ? got : NULL;
        for (size_t j = 0; j < nq; j++)
            for (size_t b = 0; b < ((size_t)1 << s->r); b++) {
                const size_t off = j * n + b * B;
                tsr_prefetch pf;
                tsr_prefetch_reset(&pf);
                tsr_prefetch_add(&pf, in, n * 8);
                tsr_moddown_block(md, j, b, s->r, out + off, a + off, conv + off, tmp,
                                  ad ? ad + off : NULL, (int)((j + b) % 2), &pf);
            }
        tsr_ring_stream_fence();
        if (ad) {
            for (size_t j = 0; j < nq; j++)
                for (size_t k = 0; k < n; k++)
                    out[j * n + k] = tsr_modq_sub(out[j * n + k], add[j * n + k], primes[j]);
        }
        assert_memory_equal(out, want, nq * n * 8);
    }
    tsr_free(in);
    tsr_free(a);
    tsr_free(want);
    tsr_free(got);
    tsr_free(conv);
    tsr_free(add);
    tsr_free(tmp);
    tsr_moddown_free(md);
    tsr_rns_basis_free(q);
    tsr_rns_basis_free(p);
}

static void test_split_equals_whole(void **state) {
    (void)state;
    tsr_prng g;
    tt_prng(&g, 32);
    const shape shapes[] = {
        { 64, 3, 1, 0, 0, 0 },
        { 64, 3, 2, 2, 0, 0 },
        { 1024, 4, 3, 3, 0, 0 },
        { 2048, 3, 2, 1, 0, 0 },
        { 4096, 5, 2, 4, 0, 0 },
        { 8192, 3, 2, 1, 0, 0 },
        { 16384, 2, 3, 2, 0, 0 },
        /* one-prime digits (the compiler's chains): q_0 below 4 p_j takes the conditional add
         * (2 p_j <= q_0 < 4 p_j: 49 over 47 bits), one above the conversion with the centring
         * quotient v; 59 bits: the portable and AVX2 kernels' primes */
        { 1024, 1, 3, 2, 39, 50 },
        { 4096, 1, 4, 1, 50, 39 },
        { 16384, 1, 2, 2, 49, 47 },
        { 2048, 1, 3, 1, 59, 58 },
        { 64, 1, 2, 0, 40, 39 },
    };
    const size_t count = sizeof shapes / sizeof shapes[0];
    tsr_simd best = tsr_simd_detected();
    for (int f = 0; f <= (int)best; f++) {
        tt_ok(tsr_simd_force((tsr_simd)f));
        for (size_t i = 0; i < count; i++) {
            if (tt_sanitized() && shapes[i].n >= 8192) continue;
            check_modup(&shapes[i], &g);
            check_moddown(&shapes[i], &g);
        }
    }
    tt_ok(tsr_simd_force(best));
}

int main(void) {
    const struct CMUnitTest tests[] = { cmocka_unit_test(test_split_equals_whole) };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
