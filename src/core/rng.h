/*
 * core/rng.h - randomness. Fresh randomness comes only from the OS CSPRNG
 * through libsodium; deterministic streams (for seeded "a" polynomials and
 * reproducible experiments) are XChaCha20 keystreams keyed by a 32-byte seed.
 */
#ifndef TSR_CORE_RNG_H
#define TSR_CORE_RNG_H

#include "tessera/common.h"

#include <stddef.h>
#include <stdint.h>

#define TSR_SEED_BYTES 32

/** Fill buf with n bytes from the OS CSPRNG (initialises libsodium if needed). */
tsr_status tsr_random_bytes(void *buf, size_t n);

/**
 * Deterministic pseudo-random stream: XChaCha20 keystream under a 32-byte
 * seed and a 64-bit domain (separates independent streams from one seed).
 * Not thread-safe; one per thread. Wipe with tsr_prng_wipe when the seed is
 * secret.
 */
typedef struct tsr_prng {
    uint8_t key[TSR_SEED_BYTES];
    uint8_t nonce[24];
    uint64_t block;    /* next keystream block counter (64-byte blocks) */
    uint8_t buf[1024]; /* buffered keystream */
    size_t pos;        /* next unread byte in buf (== sizeof buf when empty) */
} tsr_prng;

/** Start a stream from seed and domain. */
void tsr_prng_init(tsr_prng *g, const uint8_t seed[TSR_SEED_BYTES], uint64_t domain);
/** Start a stream from a fresh OS-random seed. */
tsr_status tsr_prng_init_random(tsr_prng *g, uint64_t domain);
/** Next n bytes of the stream. */
void tsr_prng_bytes(tsr_prng *g, void *out, size_t n);
/** Next 64 uniformly random bits. */
uint64_t tsr_prng_u64(tsr_prng *g);
/** Uniform integer in [0, bound) with rejection sampling (no modulo bias); bound >= 1. */
uint64_t tsr_prng_uniform(tsr_prng *g, uint64_t bound);
/** Uniform double in [0, 1) with 53 random bits. */
double tsr_prng_double(tsr_prng *g);
/** Standard normal variate (Box-Muller on tsr_prng_double). */
double tsr_prng_normal(tsr_prng *g);
/** Erase the key and buffered keystream. */
void tsr_prng_wipe(tsr_prng *g);

/** Bytes of the nonce of tsr_stream_chacha20. */
#define TSR_STREAM_NONCE_BYTES 12
/** Bytes of one ChaCha20 block (the unit of the counter). */
#define TSR_STREAM_BLOCK_BYTES 64

/**
 * Raw keystream for bulk expansion: out[0..n) = ChaCha20 (RFC 8439, 20
 * rounds, libsodium's crypto_stream_chacha20_ietf_xor_ic: its SIMD code, the
 * same bytes on every machine) under key, nonce, starting at 64-byte block
 * `counter`. n must keep the counter below 2^32. Stateless and thread-safe;
 * no buffering, so the caller's buffer is written once (the fast path of
 * seeded key halves, ring/sample.h).
 */
void tsr_stream_chacha20(void *out, size_t n, const uint8_t key[TSR_SEED_BYTES],
                         const uint8_t nonce[TSR_STREAM_NONCE_BYTES], uint32_t counter);

#endif /* TSR_CORE_RNG_H */
