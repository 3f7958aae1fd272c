/*
 * ring/sample.h - samplers for RLWE: uniform polynomials expanded from a
 * seed, ternary secrets (dense or fixed Hamming weight) and the centred
 * discrete Gaussian error (sigma = 3.2).
 *
 * Randomness comes only from core/rng.h: deterministic XChaCha20 streams
 * (tsr_prng) keyed by a 32-byte seed; fresh seeds come from the OS CSPRNG
 * (tsr_random_bytes / tsr_prng_init_random). Samplers consume the stream
 * they are given and are deterministic given its seed and domain.
 * A tsr_prng is not thread-safe: one per thread.
 *
 * Small-integer samplers produce one integer vector; tsr_rns_from_i8 /
 * tsr_rns_from_i64 (rns.h) then write the SAME integers into every limb, so
 * the polynomial is consistent across the RNS basis. The *_rns helpers do
 * both and wipe their temporaries.
 */
#ifndef TSR_RING_SAMPLE_H
#define TSR_RING_SAMPLE_H

#include "tessera/common.h"
#include "core/rng.h"
#include "ring/rns.h"

#include <stddef.h>
#include <stdint.h>

/** Standard deviation of the RLWE error (HomomorphicEncryption.org standard). */
#define TSR_SAMPLE_SIGMA 3.2
/** Tail cut of the error sampler: |e| <= 19 (about 6 sigma). */
#define TSR_SAMPLE_GAUSS_BOUND 19

/**
 * Uniform polynomial over b, expanded from (seed, domain): limb i is
 * uniform in [0, q_i)^N, drawn from its own XChaCha20 stream keyed by the
 * seed, with nonce (domain, q_i), by rejection sampling (take bitlen(q_i)
 * bits of each 64-bit word, reject values >= q_i: no modulo bias).
 * Deterministic: the limb of prime q_i depends only on (seed, domain, q_i,
 * N), never on the other primes of b, so any sub-basis (a lower level, Q_l u
 * P) regenerates the same limbs. Uniform residues per prime are uniform
 * modulo Q (CRT), and uniform in either domain: treat out as NTT-domain.
 */
void tsr_sample_uniform(const tsr_rns_basis *b, const uint8_t seed[TSR_SEED_BYTES], uint64_t domain,
                        uint64_t *out);

/** Words per chunk of the chunked uniform stream (a fixed part of the key format). */
#define TSR_SAMPLE_CHUNK 1024

/**
 * Streams of the chunked uniform expansion, by id (the key format's prg byte):
 * an id fixes both the ChaCha round count and the rejection rule, and is never
 * redefined; a new combination (other rounds, other rule) takes a new id.
 * 1: ChaCha20 + Barrett rejection (key files up to format 3's prg 1);
 * 2: ChaCha12 + Lemire rejection (prg 2).
 */
#define TSR_SAMPLE_STREAM_CHACHA20 1
#define TSR_SAMPLE_STREAM_CHACHA12 2

/**
 * Words [off, off + len) of a uniform limb modulo m->q expanded from
 * (seed, domain): the limb is cut into chunks of TSR_SAMPLE_CHUNK words
 * (the last one shorter when N is not a multiple), and chunk c is drawn
 * from its own ChaCha stream chosen by `stream` (TSR_SAMPLE_STREAM_CHACHA20:
 * ChaCha20, RFC 8439, libsodium's tsr_stream_chacha20; TSR_SAMPLE_STREAM_CHACHA12:
 * ChaCha12, the same construction with 12 rounds, from the ring's SIMD kernels): key = seed, nonce
 * = q (u64 LE) then domain (u32 LE), blocks from c * 2^16 on, each 8-byte group read as a
 * little-endian word v. ChaCha20: v is kept when v < q * floor(2^64 / q)
 * and reduced mod q (Barrett); ChaCha12: v is kept when (v q mod 2^64) >=
 * 2^64 mod q and becomes floor(v q / 2^64) (Lemire 2019; the same
 * acceptance, one multiply). Other words are dropped, and the chunk's stream
 * continues until the chunk is full. So any
 * range of any limb is regenerated on its own, in any order, from any
 * thread, and a limb depends only on (seed, domain, q, stream): sub-bases
 * and lower levels see the same words. Uniform in either domain: treat as
 * NTT form. This is the expansion of the a halves of seeded key-switching
 * keys (ckks/keys.c: the key records which stream), generated during the
 * key-switch inner products.
 * Precondition: domain < 2^32, off + len <= 2^16 * TSR_SAMPLE_CHUNK,
 * stream TSR_SAMPLE_STREAM_CHACHA20 or TSR_SAMPLE_STREAM_CHACHA12.
 */
void tsr_sample_uniform_range(const tsr_modulus *m, const uint8_t seed[TSR_SEED_BYTES],
                              uint32_t domain, unsigned stream, size_t off, size_t len,
                              uint64_t *out);

/**
 * Test hook: the rejection rule of `stream` (TSR_SAMPLE_STREAM_*) on the
 * words in[0..n): writes the kept, mapped words to out in order (out may
 * equal in) and returns how many. Not for other callers.
 */
size_t tsr_sample_squeeze_for_test(unsigned stream, const tsr_modulus *m, uint64_t *out,
                                   const uint64_t *in, size_t n);

/** out[0..n) uniform in {-1, 0, 1} (each with probability 1/3, rejection on bytes). */
void tsr_sample_ternary(tsr_prng *g, int8_t *out, size_t n);

/**
 * out[0..n) in {-1, 0, 1} with exactly h non-zero entries at uniformly
 * random positions (partial Fisher-Yates) and uniformly random signs; used
 * for sparse secrets. TSR_ERR_INVALID_ARG if h > n.
 */
tsr_status tsr_sample_ternary_hw(tsr_prng *g, int8_t *out, size_t n, size_t h);

/**
 * out[0..n) from the centred discrete Gaussian with sigma = 3.2, truncated to
 * |x| <= 19: |x| by inversion of a 64-bit cumulative table (probabilities
 * P(|x| = k) proportional to exp(-k^2 / (2 sigma^2)), doubled for k > 0,
 * computed to 200 bits and rounded to 2^-64), then a uniform sign. The whole
 * table is scanned for every sample (no data-dependent early exit).
 */
void tsr_sample_gaussian(tsr_prng *g, int64_t *out, size_t n);

/** Ternary secret written into every limb of out (coefficient domain). */
tsr_status tsr_sample_ternary_rns(const tsr_rns_basis *b, tsr_prng *g, uint64_t *out);
/** Gaussian error written into every limb of out (coefficient domain). */
tsr_status tsr_sample_gaussian_rns(const tsr_rns_basis *b, tsr_prng *g, uint64_t *out);

#endif /* TSR_RING_SAMPLE_H */
