/*
 * core/rng.c - OS CSPRNG access and seeded XChaCha20 streams (libsodium).
 */
#include "core/rng.h"
#include "core/alloc.h"
#include "core/error.h"
#include "tessera/core.h"

#include <math.h>
#include <sodium.h>
#include <string.h>

tsr_status tsr_random_bytes(void *buf, size_t n) {
    TSR_TRY(tsr_init());
    randombytes_buf(buf, n);
    return TSR_OK;
}

void tsr_prng_init(tsr_prng *g, const uint8_t seed[TSR_SEED_BYTES], uint64_t domain) {
    memcpy(g->key, seed, TSR_SEED_BYTES);
    memset(g->nonce, 0, sizeof g->nonce);
    for (int i = 0; i < 8; i++) g->nonce[i] = (uint8_t)(domain >> (8 * i));
    g->block = 0;
    g->pos = sizeof g->buf;
}

tsr_status tsr_prng_init_random(tsr_prng *g, uint64_t domain) {
    uint8_t seed[TSR_SEED_BYTES];
    TSR_TRY(tsr_random_bytes(seed, sizeof seed));
    tsr_prng_init(g, seed, domain);
    tsr_wipe(seed, sizeof seed);
    return TSR_OK;
}

static void refill(tsr_prng *g) {
    memset(g->buf, 0, sizeof g->buf);
    crypto_stream_xchacha20_xor_ic(g->buf, g->buf, sizeof g->buf, g->nonce, g->block, g->key);
    g->block += sizeof g->buf / 64;
    g->pos = 0;
}

void tsr_prng_bytes(tsr_prng *g, void *out, size_t n) {
    uint8_t *o = out;
    while (n > 0) {
        if (g->pos == sizeof g->buf) refill(g);
        size_t take = sizeof g->buf - g->pos;
        if (take > n) take = n;
        memcpy(o, g->buf + g->pos, take);
        g->pos += take;
        o += take;
        n -= take;
    }
}

uint64_t tsr_prng_u64(tsr_prng *g) {
    uint8_t b[8];
    uint64_t v = 0;
    tsr_prng_bytes(g, b, 8);
    for (int i = 0; i < 8; i++) v |= (uint64_t)b[i] << (8 * i);
    return v;
}

uint64_t tsr_prng_uniform(tsr_prng *g, uint64_t bound) {
    TSR_REQUIRE(bound >= 1, "tsr_prng_uniform: bound must be >= 1");
    if ((bound & (bound - 1)) == 0) return tsr_prng_u64(g) & (bound - 1);
    /* 2^64 mod bound values at the bottom would make small results more likely:
     * reject them, leaving a range whose size is a multiple of bound. */
    uint64_t threshold = (0 - bound) % bound;
    for (;;) {
        uint64_t v = tsr_prng_u64(g);
        if (v >= threshold) return v % bound;
    }
}

double tsr_prng_double(tsr_prng *g) {
    return (double)(tsr_prng_u64(g) >> 11) * 0x1.0p-53;
}

double tsr_prng_normal(tsr_prng *g) {
    double u1 = tsr_prng_double(g);
    double u2 = tsr_prng_double(g);
    if (u1 < 0x1.0p-60) u1 = 0x1.0p-60;
    return sqrt(-2.0 * log(u1)) * cos(6.283185307179586476925 * u2);
}

void tsr_stream_chacha20(void *out, size_t n, const uint8_t key[TSR_SEED_BYTES],
                         const uint8_t nonce[TSR_STREAM_NONCE_BYTES], uint32_t counter) {
    TSR_REQUIRE((uint64_t)counter + (n + TSR_STREAM_BLOCK_BYTES - 1) / TSR_STREAM_BLOCK_BYTES <=
                    ((uint64_t)1 << 32),
                "tsr_stream_chacha20: the block counter would wrap");
    /* xor over zeros: the _ic variant is the one taking a starting counter */
    memset(out, 0, n);
    crypto_stream_chacha20_ietf_xor_ic(out, out, n, nonce, counter, key);
}

void tsr_prng_wipe(tsr_prng *g) {
    tsr_wipe(g, sizeof *g);
}
