/*
 * bench/bench_ring.c - `tessera bench ring`: the ring layer's hot kernels,
 * one thread, per SIMD kernel family available on this CPU:
 *   - forward / inverse NTT of one limb, N = 2^13 .. 2^16, 49- and 60-bit primes,
 *     whole (ntt_fwd/inv) and split (outer stages, then inner stages per block,
 *     as key switching runs them; the inner forward stages out of place, from the
 *     source block and after a copy of it);
 *   - element-wise multiply, multiply-add, scalar multiply of one limb, the
 *     key-switching inner product (3 digits, two outputs; and 7 digits on 16 blocks of
 *     4096 words, target_block's shape at dnum 7) and the automorphism
 *     gather (permute, Galois element 5) (N = 2^16);
 *   - basis conversion (ModUp shapes 15->4, 8->23, 22->8 limbs, N = 2^16), and a diagonal's
 *     coefficients into 29 limbs from doubles and from int64 (N = 2^16);
 *   - ModDown 22+4 -> 22 limbs and rescale 23 -> 22 limbs (NTT domain, N = 2^16);
 *   - once: the uniform streams of key halves (per-limb XChaCha20, chunked ChaCha20, raw
 *     ChaCha20; one limb, N = 2^16).
 * Each figure is the median (and minimum) of repeated runs after a warm-up.
 * Record results in docs/BENCHMARKS.md with the command, commit and CPU.
 */
#include "bench.h"
#include "cli.h"
#include "core/alloc.h"
#include "core/progress.h"
#include "ring/kernels.h"
#include "ring/ring.h"

#include <stdlib.h>
#include <string.h>

typedef struct ring_bench_ctx {
    int json, first, reps;
} ring_bench_ctx;

static void report(ring_bench_ctx *c, const char *what, tsr_simd fam, size_t n, int bits,
                   const char *shape, double *samples, int reps) {
    double mn = samples[0];
    for (int i = 1; i < reps; i++)
        if (samples[i] < mn) mn = samples[i];
    double med = bench_median(samples, (size_t)reps);
    if (c->json) {
        printf("%s\n    {\"op\": \"%s\", \"simd\": \"%s\", \"n\": %zu, \"bits\": %d, "
               "\"shape\": \"%s\", \"median_us\": %.2f, \"min_us\": %.2f, \"runs\": %d}",
               c->first ? "" : ",", what, tsr_simd_name(fam), n, bits, shape ? shape : "",
               med * 1e6, mn * 1e6, reps);
        c->first = 0;
    } else {
        printf("%-12s %-11s N=2^%-2d %2d-bit %-12s median %9.2f us   min %9.2f us\n", what,
               tsr_simd_name(fam), __builtin_ctzll(n), bits, shape ? shape : "", med * 1e6,
               mn * 1e6);
    }
    fflush(stdout);
}

static void fill_random(tsr_prng *g, uint64_t *a, size_t n, uint64_t q) {
    for (size_t i = 0; i < n; i++) a[i] = tsr_prng_uniform(g, q);
}

static int bench_ntt(ring_bench_ctx *c, tsr_simd fam, tsr_prng *g) {
    static const int bits[] = { 49, 60 };
    for (int bi = 0; bi < 2; bi++) {
        for (size_t n = 1 << 13; n <= (1 << 16); n <<= 1) {
            uint64_t q;
            tsr_ntt_table *t;
            if (tsr_prime_generate(bits[bi], n, 1, NULL, 0, &q) != TSR_OK) return 1;
            if (tsr_ntt_table_create(n, q, &t) != TSR_OK) return 1;
            const tsr_ring_kernels *k = tsr_ring_kernels_for(fam);
            uint64_t *a = tsr_alloc(n * 8);
            fill_random(g, a, n, q);
            double s[256];
            for (int w = 0; w < 5; w++) k->ntt_fwd(t, a);
            for (int r = 0; r < c->reps; r++) {
                double t0 = tsr_now();
                k->ntt_fwd(t, a);
                s[r] = tsr_now() - t0;
            }
            report(c, "ntt_forward", fam, n, bits[bi], NULL, s, c->reps);
            for (int w = 0; w < 5; w++) k->ntt_inv(t, a);
            for (int r = 0; r < c->reps; r++) {
                double t0 = tsr_now();
                k->ntt_inv(t, a);
                s[r] = tsr_now() - t0;
            }
            report(c, "ntt_inverse", fam, n, bits[bi], NULL, s, c->reps);
            /* split transforms as key switching runs them: the outer stages on
             * every column at once, then the inner stages block by block */
            const unsigned rs = tsr_ntt_split_log(n);
            const size_t B = n >> rs;
            for (int dir = 0; dir < 2; dir++) {
                for (int r = -5; r < c->reps; r++) {
                    double t0 = tsr_now();
                    if (dir == 0) {
                        k->ntt_fwd_outer(t, a, B, rs);
                        for (size_t b = 0; b < ((size_t)1 << rs); b++)
                            k->ntt_fwd_inner(t, a + b * B, a + b * B, b, rs, NULL);
                    } else {
                        for (size_t b = 0; b < ((size_t)1 << rs); b++)
                            k->ntt_inv_inner(t, a + b * B, a + b * B, b, rs, NULL);
                        k->ntt_inv_outer(t, a, B, rs);
                    }
                    if (r >= 0) s[r] = tsr_now() - t0;
                }
                report(c, dir ? "split_inv" : "split_fwd", fam, n, bits[bi], NULL, s, c->reps);
            }
            /* the inner forward stages out of place, block by block into one B-word buffer
             * (as the key switch's inner products finish the digits): from the source, and
             * after a copy of it (what every kernel did before the fifth round) */
            uint64_t *blk = tsr_alloc(B * sizeof *blk);
            for (int cp = 0; cp < 2 && blk; cp++) {
                for (int r = -5; r < c->reps; r++) {
                    double t0 = tsr_now();
                    for (size_t b = 0; b < ((size_t)1 << rs); b++) {
                        if (cp) memcpy(blk, a + b * B, B * sizeof *blk);
                        k->ntt_fwd_inner(t, blk, cp ? blk : a + b * B, b, rs, NULL);
                    }
                    if (r >= 0) s[r] = tsr_now() - t0;
                }
                report(c, cp ? "fwd_in_copy" : "fwd_in_src", fam, n, bits[bi], NULL, s, c->reps);
            }
            tsr_free(blk);
            tsr_free(a);
            tsr_ntt_table_free(t);
        }
    }
    return 0;
}

static int bench_elementwise(ring_bench_ctx *c, tsr_simd fam, tsr_prng *g) {
    static const int bits[] = { 49, 60 };
    const size_t n = 1 << 16;
    for (int bi = 0; bi < 2; bi++) {
        uint64_t q;
        if (tsr_prime_generate(bits[bi], n, 1, NULL, 0, &q) != TSR_OK) return 1;
        tsr_modulus m;
        tsr_modulus_init(&m, q);
        const tsr_ring_kernels *k = tsr_ring_kernels_for(fam);
        uint64_t *a = tsr_alloc(n * 8), *b = tsr_alloc(n * 8), *o = tsr_alloc(n * 8);
        fill_random(g, a, n, q);
        fill_random(g, b, n, q);
        fill_random(g, o, n, q);
        double s[256];
        for (int r = 0; r < c->reps; r++) {
            double t0 = tsr_now();
            k->mul(&m, o, a, b, n);
            s[r] = tsr_now() - t0;
        }
        report(c, "mul", fam, n, bits[bi], NULL, s, c->reps);
        for (int r = 0; r < c->reps; r++) {
            double t0 = tsr_now();
            k->mul_add(&m, o, a, b, n);
            s[r] = tsr_now() - t0;
        }
        report(c, "mul_add", fam, n, bits[bi], NULL, s, c->reps);
        uint64_t w = b[0], wp = tsr_modq_shoup(w, q);
        for (int r = 0; r < c->reps; r++) {
            double t0 = tsr_now();
            k->mul_scalar(&m, o, a, w, wp, n);
            s[r] = tsr_now() - t0;
        }
        report(c, "mul_scalar", fam, n, bits[bi], NULL, s, c->reps);
        /* key-switching inner product: 3 digits times the two halves of a key */
        uint64_t *d[3], *kb[3], *ka[3], *o1 = tsr_alloc(n * 8);
        for (int j = 0; j < 3; j++) {
            d[j] = tsr_alloc(n * 8);
            kb[j] = tsr_alloc(n * 8);
            ka[j] = tsr_alloc(n * 8);
            fill_random(g, d[j], n, q);
            fill_random(g, kb[j], n, q);
            fill_random(g, ka[j], n, q);
        }
        for (int r = -5; r < c->reps; r++) { /* 5 warm-up runs (first touch) */
            double t0 = tsr_now();
            k->dot2(&m, o, o1, (const uint64_t *const *)d, (const uint64_t *const *)kb,
                    (const uint64_t *const *)ka, 3, n);
            if (r >= 0) s[r] = tsr_now() - t0;
        }
        report(c, "dot2", fam, n, bits[bi], "3 terms", s, c->reps);
        /* the key switch's block shape: 7 digits of 4096 words, 21 x 32 KiB (L2 and L3) */
        {
            enum { T7 = 7, B7 = 4096 };
            uint64_t *d7[T7], *kb7[T7], *ka7[T7];
            for (int j = 0; j < T7; j++) {
                d7[j] = tsr_alloc(B7 * 8);
                kb7[j] = tsr_alloc(B7 * 8);
                ka7[j] = tsr_alloc(B7 * 8);
                fill_random(g, d7[j], B7, q);
                fill_random(g, kb7[j], B7, q);
                fill_random(g, ka7[j], B7, q);
            }
            for (int r = -5; r < c->reps; r++) {
                double t0 = tsr_now();
                for (int rep = 0; rep < 16; rep++)
                    k->dot2(&m, o, o1, (const uint64_t *const *)d7, (const uint64_t *const *)kb7,
                            (const uint64_t *const *)ka7, T7, B7);
                if (r >= 0) s[r] = tsr_now() - t0;
            }
            report(c, "dot2", fam, 16 * B7, bits[bi], "7 t, 16 blk", s, c->reps);
            for (int j = 0; j < T7; j++) {
                tsr_free(d7[j]);
                tsr_free(kb7[j]);
                tsr_free(ka7[j]);
            }
        }
        /* automorphism gather (rotation by one slot step, Galois element 5) */
        uint32_t *idx = tsr_alloc(n * sizeof *idx);
        tsr_rns_automorphism_ntt_index(n, 5, idx);
        for (int r = 0; r < c->reps; r++) {
            double t0 = tsr_now();
            k->permute(o1, a, idx, n, 1);
            s[r] = tsr_now() - t0;
        }
        report(c, "permute", fam, n, bits[bi], "galois 5", s, c->reps);
        tsr_free(idx);
        for (int j = 0; j < 3; j++) {
            tsr_free(d[j]);
            tsr_free(kb[j]);
            tsr_free(ka[j]);
        }
        tsr_free(o1);
        tsr_free(a);
        tsr_free(b);
        tsr_free(o);
    }
    return 0;
}

/* Build bases of `f` and `t` primes (bits each) for degree n. */
static int make_bases(size_t n, int fbits, size_t f, int tbits, size_t t, tsr_rns_basis **from,
                      tsr_rns_basis **to) {
    uint64_t qf[64], qt[64];
    if (tsr_prime_generate(fbits, n, f, NULL, 0, qf) != TSR_OK) return 1;
    if (tsr_prime_generate(tbits, n, t, qf, f, qt) != TSR_OK) return 1;
    if (tsr_rns_basis_create(n, qf, f, from) != TSR_OK) return 1;
    if (tsr_rns_basis_create(n, qt, t, to) != TSR_OK) return 1;
    return 0;
}

static int bench_conv(ring_bench_ctx *c, tsr_simd fam, tsr_prng *g) {
    static const struct {
        size_t f, t;
        int bits;
    } shapes[] = { { 15, 4, 49 }, { 8, 23, 49 }, { 22, 8, 49 }, { 15, 4, 60 }, { 22, 8, 60 } };
    const size_t n = 1 << 16;
    if (tsr_simd_force(fam) != TSR_OK) return 1;
    for (size_t si = 0; si < sizeof shapes / sizeof shapes[0]; si++) {
        tsr_rns_basis *from, *to;
        if (make_bases(n, shapes[si].bits, shapes[si].f, shapes[si].bits, shapes[si].t, &from, &to))
            return 1;
        tsr_baseconv *bc;
        if (tsr_baseconv_create(from, to, &bc) != TSR_OK) return 1;
        uint64_t *in, *out;
        if (tsr_rns_poly_new(from, &in) != TSR_OK || tsr_rns_poly_new(to, &out) != TSR_OK) return 1;
        for (size_t i = 0; i < from->count; i++) fill_random(g, in + i * n, n, from->q[i]);
        uint64_t *ip[64], *op[64];
        tsr_rns_limb_ptrs(from, in, ip);
        tsr_rns_limb_ptrs(to, out, op);
        char shape[32];
        snprintf(shape, sizeof shape, "%zu->%zu", shapes[si].f, shapes[si].t);
        double s[256];
        int reps = c->reps > 30 ? 30 : c->reps;
        for (int r = 0; r < reps; r++) {
            double t0 = tsr_now();
            if (tsr_baseconv_approx(bc, op, (const uint64_t *const *)ip) != TSR_OK) return 1;
            s[r] = tsr_now() - t0;
        }
        report(c, "baseconv", fam, n, shapes[si].bits, shape, s, reps);
        tsr_free(in);
        tsr_free(out);
        tsr_baseconv_free(bc);
        tsr_rns_basis_free(from);
        tsr_rns_basis_free(to);
    }
    /* A diagonal's coefficients (|c| < 2^50, integers) into 25 + 4 limbs (a level-24 diagonal
     * of n16-boot over Q_l u P), from doubles (finiteness pass, round() per limb) and from
     * int64 (diagonals on the fly), without the NTTs. */
    {
        tsr_rns_basis *qb, *pb, *qpb;
        if (make_bases(n, 60, 25, 60, 4, &qb, &pb)) return 1;
        if (tsr_rns_basis_concat(qb, pb, &qpb) != TSR_OK) return 1;
        uint64_t *dst;
        double *cd = tsr_alloc(n * sizeof *cd);
        int64_t *ci = tsr_alloc(n * sizeof *ci);
        if (tsr_rns_poly_new(qpb, &dst) != TSR_OK || !cd || !ci) return 1;
        for (size_t i = 0; i < n; i++) {
            ci[i] = (int64_t)(tsr_prng_u64(g) >> 14) - ((int64_t)1 << 49);
            cd[i] = (double)ci[i];
        }
        double s[2][256];
        int reps = c->reps > 30 ? 30 : c->reps;
        for (int r = 0; r < reps; r++) {
            double t0 = tsr_now();
            if (tsr_rns_from_double(qpb, dst, cd) != TSR_OK) return 1;
            double t1 = tsr_now();
            tsr_rns_from_i64(qpb, dst, ci);
            s[0][r] = t1 - t0;
            s[1][r] = tsr_now() - t1;
        }
        report(c, "from-dbl", fam, n, 60, "29 limbs", s[0], reps);
        report(c, "from-i64", fam, n, 60, "29 limbs", s[1], reps);
        tsr_free(dst);
        tsr_free(cd);
        tsr_free(ci);
        tsr_rns_basis_free(qb);
        tsr_rns_basis_free(pb);
        tsr_rns_basis_free(qpb);
    }
    /* ModDown 22+4 -> 22 (special primes of 49 and of 60 bits) and rescale 23 -> 22,
     * NTT domain, in place. */
    static const struct {
        const char *op, *shape;
        size_t k;
        int pbits;
    } md_shapes[] = { { "moddown", "26->22", 4, 49 },
                      { "moddown", "26->22", 4, 60 },
                      { "rescale", "23->22", 1, 49 } };
    for (size_t mi = 0; mi < sizeof md_shapes / sizeof md_shapes[0]; mi++) {
        tsr_rns_basis *qb, *pb, *qpb;
        const size_t lq = 22, k = md_shapes[mi].k;
        if (make_bases(n, 49, lq, md_shapes[mi].pbits, k, &qb, &pb)) return 1;
        if (tsr_rns_basis_concat(qb, pb, &qpb) != TSR_OK) return 1;
        tsr_moddown *md;
        if (tsr_moddown_create(qb, pb, &md) != TSR_OK) return 1;
        uint64_t *a, *work;
        if (tsr_rns_poly_new(qpb, &a) != TSR_OK || tsr_rns_poly_new(qpb, &work) != TSR_OK) return 1;
        for (size_t i = 0; i < qpb->count; i++) fill_random(g, a + i * n, n, qpb->q[i]);
        double s[256];
        int reps = c->reps > 30 ? 30 : c->reps;
        for (int r = 0; r < reps; r++) {
            memcpy(work, a, tsr_rns_poly_words(qpb) * 8);
            double t0 = tsr_now();
            if (tsr_moddown_apply(md, work, work) != TSR_OK) return 1;
            s[r] = tsr_now() - t0;
        }
        char shape[48];
        snprintf(shape, sizeof shape, "%s,P%d", md_shapes[mi].shape, md_shapes[mi].pbits);
        report(c, md_shapes[mi].op, fam, n, 49, shape, s, reps);
        tsr_free(a);
        tsr_free(work);
        tsr_moddown_free(md);
        tsr_rns_basis_free(qb);
        tsr_rns_basis_free(pb);
        tsr_rns_basis_free(qpb);
    }
    return 0;
}

/* The uniform streams of key halves, one limb of N = 2^16 with a prime just above 2^60 (as in
 * n16-boot; the bit-mask rejection of the per-limb stream keeps only half its words there):
 * stream-x the per-limb XChaCha20 of format-2 keys (tsr_sample_uniform), stream-c the chunked
 * ChaCha20 of seeded keys (tsr_sample_uniform_range, 20 rounds: prg 1), chacha20 its raw
 * keystream (8 N bytes; libsodium, after tsr_init, picks its own SIMD code whatever the
 * family); stream-c12 the chunked ChaCha12 of prg 2, chacha12 its raw keystream and chacha20k
 * the ring's ChaCha kernel at 20 rounds (these three from the family's kernel); stream-c12 at
 * 39 bits the same stream for a modulus below 2^39, the size of the network compiler's scale
 * primes (the IFMA family's rejection kernel takes moduli below 2^52). */
static int bench_stream(ring_bench_ctx *c, tsr_simd fam) {
    /* without sodium_init, libsodium runs its reference ChaCha20 (about 4x slower here) */
    if (tsr_init() != TSR_OK || tsr_simd_force(fam) != TSR_OK) return 1;
    const size_t n = 1 << 16;
    const uint64_t q = 0x10000000006e0001ULL; /* 2^60 + 55 * 2^17 + 1, prime */
    tsr_rns_basis *b;
    if (tsr_rns_basis_create(n, &q, 1, &b) != TSR_OK) return 1;
    uint64_t *out = tsr_alloc(n * sizeof *out);
    if (!out) return 1;
    const uint8_t seed[TSR_SEED_BYTES] = { 7 }, nonce[TSR_STREAM_NONCE_BYTES] = { 1 };
    const uint32_t key_w[8] = { 7 }, nonce_w[3] = { 1 };
    const tsr_ring_kernels *k = tsr_ring_kernels_active();
    tsr_modulus m39;
    tsr_modulus_init(&m39, ((uint64_t)1 << 39) - 7);
    double s[7][256];
    int reps = c->reps > 30 ? 30 : c->reps;
    for (int r = 0; r < reps; r++) {
        double t0 = tsr_now();
        tsr_sample_uniform(b, seed, 0x100, out);
        double t1 = tsr_now();
        tsr_sample_uniform_range(&b->mod[0], seed, 0x100, TSR_SAMPLE_STREAM_CHACHA20, 0, n, out);
        double t2 = tsr_now();
        tsr_stream_chacha20(out, n * sizeof *out, seed, nonce, 0);
        double t3 = tsr_now();
        tsr_sample_uniform_range(&b->mod[0], seed, 0x100, TSR_SAMPLE_STREAM_CHACHA12, 0, n, out);
        double t4 = tsr_now();
        k->chacha(out, key_w, nonce_w, 0, n / 8, 12);
        double t5 = tsr_now();
        k->chacha(out, key_w, nonce_w, 0, n / 8, 20);
        s[0][r] = t1 - t0;
        s[1][r] = t2 - t1;
        s[2][r] = t3 - t2;
        s[3][r] = t4 - t3;
        s[4][r] = t5 - t4;
        double t6 = tsr_now();
        tsr_sample_uniform_range(&m39, seed, 0x100, TSR_SAMPLE_STREAM_CHACHA12, 0, n, out);
        s[5][r] = t6 - t5;
        s[6][r] = tsr_now() - t6;
    }
    report(c, "stream-x", fam, n, 61, "limb", s[0], reps);
    report(c, "stream-c", fam, n, 61, "limb", s[1], reps);
    report(c, "chacha20", fam, n, 61, "limb", s[2], reps);
    report(c, "stream-c12", fam, n, 61, "limb", s[3], reps);
    report(c, "chacha12", fam, n, 61, "limb", s[4], reps);
    report(c, "chacha20k", fam, n, 61, "limb", s[5], reps);
    report(c, "stream-c12", fam, n, 39, "limb", s[6], reps);
    tsr_free(out);
    tsr_rns_basis_free(b);
    return 0;
}

int bench_ring_main(int argc, char **argv) {
    if (cli_wants_help(argc, argv)) {
        printf("usage: tessera bench ring [--json] [--quick] [--simd FAMILY]\n"
               "                          [--only ntt|elt|conv|stream]\n\n"
               "Ring-layer kernels on one thread for each SIMD family this CPU supports:\n"
               "NTT forward/inverse, whole and split (N = 2^13..2^16; 49- and 60-bit primes),\n"
               "element-wise multiply, automorphism gather, basis conversion, a diagonal into\n"
               "29 limbs from double and from int64, ModDown and rescale (N = 2^16);\n"
               "the uniform streams of key halves (one limb, N = 2^16; ChaCha20 by libsodium's\n"
               "SIMD code, ChaCha12 and the kernel's ChaCha20 by the family's kernel).\n"
               "Median and minimum of >= 20 runs (--quick: 5) in microseconds.\n");
        return 0;
    }
    ring_bench_ctx c = { .json = 0, .first = 1, .reps = 41 };
    int only_fam = -1, quick = 0;
    const char *only = NULL, *simd = NULL;
    const cli_opt opts[] = {
        { "--json", CLI_FLAG, &c.json, 0, 0 },
        { "--quick", CLI_FLAG, &quick, 0, 0 },
        { "--simd", CLI_STR, &simd, 0, 0 },
        { "--only", CLI_STR, &only, 0, 0 },
    };
    int prc = cli_parse_args("bench ring", argc, argv, opts, sizeof opts / sizeof opts[0], NULL, 0);
    if (prc) return prc;
    if (quick) c.reps = 5;
    if (simd) {
        tsr_simd s;
        if (tsr_simd_parse(simd, &s) != TSR_OK)
            return cli_fail("bench ring", TSR_ERR_INVALID_ARG, "--simd");
        only_fam = (int)s;
    }
    int saved_threads = tsr_get_num_threads();
    tsr_simd saved_simd = tsr_simd_active();
    tsr_set_num_threads(1);
    tsr_prng g;
    uint8_t seed[TSR_SEED_BYTES] = { 1 };
    tsr_prng_init(&g, seed, 0);
    if (c.json) printf("{\"bench\": \"ring\", \"threads\": 1, \"results\": [");
    int rc = 0;
    for (int f = 0; f <= (int)tsr_simd_detected() && !rc; f++) {
        if (only_fam >= 0 && f != only_fam) continue;
        tsr_simd fam = (tsr_simd)f;
        if (!only || strcmp(only, "ntt") == 0) rc |= bench_ntt(&c, fam, &g);
        if (!only || strcmp(only, "elt") == 0) rc |= bench_elementwise(&c, fam, &g);
        if (!only || strcmp(only, "conv") == 0) rc |= bench_conv(&c, fam, &g);
        if (!only || strcmp(only, "stream") == 0) rc |= bench_stream(&c, fam);
    }
    if (c.json) printf("\n]}\n");
    tsr_set_num_threads(saved_threads);
    (void)tsr_simd_force(saved_simd);
    if (rc) return cli_fail("bench ring", TSR_ERR_INTERNAL, "benchmark set-up failed");
    return 0;
}
