/*
 * ring/sample.c - uniform, ternary and discrete Gaussian samplers.
 */
#include "ring/sample.h"
#include "core/alloc.h"
#include "core/error.h"
#include "ring/kernels.h"

#include <string.h>

/* Stream for the limb of prime q: tsr_prng_init puts the domain in nonce
 * bytes 0..7 and zeroes bytes 8..23; bytes 8..15 carry q so that every
 * (seed, domain, q) has an independent XChaCha20 stream. */
static void limb_stream(tsr_prng *g, const uint8_t seed[TSR_SEED_BYTES], uint64_t domain,
                        uint64_t q) {
    tsr_prng_init(g, seed, domain);
    for (int i = 0; i < 8; i++) g->nonce[8 + i] = (uint8_t)(q >> (8 * i));
}

static uint64_t load_le64(const uint8_t *p) {
    uint64_t v = 0;
    for (int i = 0; i < 8; i++) v |= (uint64_t)p[i] << (8 * i);
    return v;
}

void tsr_sample_uniform(const tsr_rns_basis *b, const uint8_t seed[TSR_SEED_BYTES], uint64_t domain,
                        uint64_t *out) {
    TSR_REQUIRE(b && seed && out, "tsr_sample_uniform: NULL argument");
    const size_t n = b->n;
#ifdef _OPENMP
#pragma omp parallel for schedule(static) if (b->count > 1 && n >= 2048)
#endif
    for (size_t i = 0; i < b->count; i++) {
        tsr_prng g;
        limb_stream(&g, seed, domain, b->q[i]);
        const uint64_t q = b->q[i];
        const uint64_t mask =
            b->mod[i].bits >= 64 ? ~(uint64_t)0 : (((uint64_t)1 << b->mod[i].bits) - 1);
        uint64_t *o = out + i * n;
        uint8_t buf[512];
        size_t pos = sizeof buf, k = 0;
        while (k < n) {
            if (pos == sizeof buf) {
                tsr_prng_bytes(&g, buf, sizeof buf);
                pos = 0;
            }
            uint64_t v = load_le64(buf + pos) & mask;
            pos += 8;
            if (v < q) o[k++] = v;
        }
        tsr_prng_wipe(&g);
    }
}

/* A keystream word as written by the cipher, read little-endian (as load_le64) so that a seed
 * expands to the same a on every host: a no-op on little-endian hosts, a byte swap elsewhere. */
static inline uint64_t le_word(uint64_t v) {
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
    return __builtin_bswap64(v);
#elif defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    return v;
#else
#error "ring/sample.c: unknown byte order (the seeded key stream is little-endian)"
#endif
}

/* The keystream of one chunk: seed and nonce as bytes (libsodium's ChaCha20) and as the
 * little-endian words of the ring's ChaCha kernel. */
typedef struct chunk_stream {
    const uint8_t *seed;
    uint8_t nonce[TSR_STREAM_NONCE_BYTES];
    uint32_t key_w[8], nonce_w[3];
    unsigned stream, rounds; /* TSR_SAMPLE_STREAM_*, and its ChaCha round count */
    const tsr_ring_kernels *k;
} chunk_stream;

static uint32_t load_le32(const uint8_t *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* Blocks ctr .. ctr + blocks - 1 of the stream as little-endian words (8 per block). ChaCha20
 * is libsodium's (the same words as the ring's kernel at 20 rounds: test_ring_sample), other
 * round counts the ring's kernel. */
static void stream_words(const chunk_stream *st, uint64_t *out, uint32_t ctr, size_t blocks) {
    if (st->stream == TSR_SAMPLE_STREAM_CHACHA20) {
        tsr_stream_chacha20(out, blocks * TSR_STREAM_BLOCK_BYTES, st->seed, st->nonce, ctr);
        for (size_t i = 0; i < blocks * (TSR_STREAM_BLOCK_BYTES / 8); i++) out[i] = le_word(out[i]);
    } else {
        st->k->chacha(out, st->key_w, st->nonce_w, ctr, blocks, st->rounds);
    }
}

/* Stream 1 (ChaCha20): a word v is kept when v < limit = q floor(2^64 / q)
 * (0 when q is a power of 2: every word) and becomes v mod q (Barrett). Writes
 * the kept words of in[0..n) to out in order (out may equal in); returns how
 * many. Branch-free: out[k] is written for every word, k advances on a keep. */
static size_t squeeze_barrett(const tsr_modulus *m, uint64_t *out, const uint64_t *in, size_t n) {
    const uint64_t limit = m->q * m->mu64;
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        const uint64_t v = in[i];
        out[k] = tsr_modq_reduce64(m, v);
        k += (v < limit) | (limit == 0);
    }
    return k;
}

/* Stream 2 (ChaCha12): Lemire's multiply-shift with rejection ("Fast random
 * integer generation in an interval", ACM TOMACS 2019): w = v q as a 128-bit
 * product; v is kept when low64(w) >= 2^64 mod q and becomes high64(w). Every
 * residue has exactly floor(2^64 / q) kept preimages (no bias), the same
 * acceptance rate as stream 1's, for one multiply instead of Barrett's two
 * and a correction (about half the time per word on Zen 3). */
static size_t squeeze_lemire(const chunk_stream *st, const tsr_modulus *m, uint64_t *out,
                             const uint64_t *in, size_t n) {
    return st->k->squeeze_lemire(m->q, out, in, n); /* ring/kernels.h */
}

static size_t squeeze(const chunk_stream *st, const tsr_modulus *m, uint64_t *out,
                      const uint64_t *in, size_t n) {
    /* by stream id, never by round count: the rule is part of the stream's definition */
    return st->stream == TSR_SAMPLE_STREAM_CHACHA20 ? squeeze_barrett(m, out, in, n)
                                                    : squeeze_lemire(st, m, out, in, n);
}

size_t tsr_sample_squeeze_for_test(unsigned stream, const tsr_modulus *m, uint64_t *out,
                                   const uint64_t *in, size_t n) {
    TSR_REQUIRE(stream == TSR_SAMPLE_STREAM_CHACHA20 || stream == TSR_SAMPLE_STREAM_CHACHA12,
                "tsr_sample_squeeze_for_test: unknown stream");
    const chunk_stream st = { .stream = stream, .k = tsr_ring_kernels_active() };
    return squeeze(&st, m, out, in, n);
}

/* Chunk c of the chunked stream: fill out[0..cnt) (cnt <= TSR_SAMPLE_CHUNK)
 * with the first cnt kept words of the chunk's keystream (squeeze_barrett for
 * ChaCha20, squeeze_lemire for ChaCha12): at least 3/4 of the words are kept
 * even for a prime just above a power of two (masking to bitlen(q) bits
 * would keep only half there). The keystream is written straight into out,
 * squeezed in place, and refilled in bulk from the following blocks: blocks
 * are consumed in order, so a shorter cnt yields a prefix of a longer one. */
static void uniform_chunk(const tsr_modulus *m, const chunk_stream *st, size_t c, size_t cnt,
                          uint64_t *out) {
    const size_t per_block = TSR_STREAM_BLOCK_BYTES / 8;
    uint32_t ctr = (uint32_t)(c << 16);
    uint64_t more[TSR_SAMPLE_CHUNK];
    size_t k = 0;
    /* whole blocks straight into out; the rest (a partial block, rejections) through more */
    size_t whole = cnt / per_block * per_block;
    if (whole) stream_words(st, out, ctr, whole / per_block);
    ctr += (uint32_t)(whole / per_block);
    k = squeeze(st, m, out, out, whole);
    while (k < cnt) {
        /* what is missing, plus 1/8 for the words that will be rejected, in whole blocks */
        size_t want = cnt - k + (cnt - k) / 8 + 1;
        size_t blocks = (want + per_block - 1) / per_block;
        /* the kernel's width (the words are the same, a few more are drawn) */
        if (st->stream != TSR_SAMPLE_STREAM_CHACHA20)
            blocks = (blocks + TSR_CHACHA_KERNEL_BLOCKS - 1) / TSR_CHACHA_KERNEL_BLOCKS *
                     TSR_CHACHA_KERNEL_BLOCKS;
        if (blocks * per_block > TSR_SAMPLE_CHUNK) blocks = TSR_SAMPLE_CHUNK / per_block;
        stream_words(st, more, ctr, blocks);
        ctr += (uint32_t)blocks;
        size_t got = squeeze(st, m, more, more, blocks * per_block);
        if (got > cnt - k) got = cnt - k;
        memcpy(out + k, more, got * sizeof *out);
        k += got;
    }
}

void tsr_sample_uniform_range(const tsr_modulus *m, const uint8_t seed[TSR_SEED_BYTES],
                              uint32_t domain, unsigned stream, size_t off, size_t len,
                              uint64_t *out) {
    TSR_REQUIRE(m && seed && (out || len == 0), "tsr_sample_uniform_range: NULL argument");
    TSR_REQUIRE(off + len <= ((size_t)1 << 16) * TSR_SAMPLE_CHUNK,
                "tsr_sample_uniform_range: range beyond the stream");
    TSR_REQUIRE(stream == TSR_SAMPLE_STREAM_CHACHA20 || stream == TSR_SAMPLE_STREAM_CHACHA12,
                "tsr_sample_uniform_range: unknown stream");
    chunk_stream st;
    st.seed = seed;
    st.stream = stream;
    st.rounds = stream == TSR_SAMPLE_STREAM_CHACHA20 ? 20 : 12;
    st.k = tsr_ring_kernels_active();
    for (int i = 0; i < 8; i++) st.nonce[i] = (uint8_t)(m->q >> (8 * i));
    for (int i = 0; i < 4; i++) st.nonce[8 + i] = (uint8_t)(domain >> (8 * i));
    for (int i = 0; i < 8; i++) st.key_w[i] = load_le32(seed + 4 * i);
    for (int i = 0; i < 3; i++) st.nonce_w[i] = load_le32(st.nonce + 4 * i);
    uint64_t tmp[TSR_SAMPLE_CHUNK];
    size_t end = off + len;
    while (off < end) {
        size_t c = off / TSR_SAMPLE_CHUNK, lo = c * TSR_SAMPLE_CHUNK;
        size_t hi = lo + TSR_SAMPLE_CHUNK < end ? lo + TSR_SAMPLE_CHUNK : end;
        if (off == lo && hi == lo + TSR_SAMPLE_CHUNK) {
            uniform_chunk(m, &st, c, TSR_SAMPLE_CHUNK, out);
        } else {
            /* a partial chunk: its prefix up to hi is drawn, the wanted words copied */
            uniform_chunk(m, &st, c, hi - lo, tmp);
            memcpy(out, tmp + (off - lo), (hi - off) * sizeof *out);
        }
        out += hi - off;
        off = hi;
    }
}

void tsr_sample_ternary(tsr_prng *g, int8_t *out, size_t n) {
    TSR_REQUIRE(g && (out || n == 0), "tsr_sample_ternary: NULL argument");
    uint8_t buf[256];
    size_t pos = sizeof buf, k = 0;
    while (k < n) {
        if (pos == sizeof buf) {
            tsr_prng_bytes(g, buf, sizeof buf);
            pos = 0;
        }
        uint8_t v = buf[pos++];
        if (v >= 255) continue; /* 255 = 3 * 85: keep 0..254 */
        out[k++] = (int8_t)((int)(v % 3) - 1);
    }
    tsr_wipe(buf, sizeof buf);
}

tsr_status tsr_sample_ternary_hw(tsr_prng *g, int8_t *out, size_t n, size_t h) {
    TSR_REQUIRE(g && (out || n == 0), "tsr_sample_ternary_hw: NULL argument");
    if (h > n)
        return tsr_fail(TSR_ERR_INVALID_ARG, "Hamming weight %zu exceeds the degree %zu", h, n);
    uint32_t *perm = tsr_alloc((n ? n : 1) * sizeof *perm);
    if (!perm) return tsr_fail(TSR_ERR_NOMEM, "out of memory sampling a sparse secret");
    for (size_t i = 0; i < n; i++) perm[i] = (uint32_t)i;
    memset(out, 0, n);
    uint64_t signs = 0;
    for (size_t i = 0; i < h; i++) {
        /* Partial Fisher-Yates: position i takes a uniform pick from [i, n). */
        size_t j = i + (size_t)tsr_prng_uniform(g, n - i);
        uint32_t t = perm[i];
        perm[i] = perm[j];
        perm[j] = t;
        if (i % 64 == 0) signs = tsr_prng_u64(g);
        out[perm[i]] = (signs >> (i % 64)) & 1 ? 1 : -1;
    }
    tsr_free_secret(perm, (n ? n : 1) * sizeof *perm);
    return TSR_OK;
}

/* round(2^64 * P(|x| <= k)) for k = 0..18, sigma = 3.2, support |x| <= 19
 * (mpmath at 200 bits; variance of the distribution 10.2399996). */
static const uint64_t gauss_cdt[TSR_SAMPLE_GAUSS_BOUND] = {
    0x1fea56814b22fe3aULL, 0x5cb44ba97e1c801dULL, 0x9135c4d2ab6097acULL, 0xba57841ec437e30bULL,
    0xd790d29879901feaULL, 0xea65b1358d74fb9eULL, 0xf5672d96e886cf32ULL, 0xfb3c9d22cc87d610ULL,
    0xfe0a92b033d640a3ULL, 0xff439d38007352aeULL, 0xffbf67e425d189d1ULL, 0xffebcdf3a4629f99ULL,
    0xfffa3f2f78880d45ULL, 0xfffe81f40111a23bULL, 0xffffa5d06bc38afbULL, 0xffffeca4870dfe3cULL,
    0xfffffc3b68ed3b4aULL, 0xffffff58143b9612ULL, 0xffffffe850ce70a6ULL,
};

void tsr_sample_gaussian(tsr_prng *g, int64_t *out, size_t n) {
    TSR_REQUIRE(g && (out || n == 0), "tsr_sample_gaussian: NULL argument");
    uint8_t buf[512];
    size_t pos = sizeof buf;
    uint64_t signs = 0;
    for (size_t k = 0; k < n; k++) {
        if (pos == sizeof buf) {
            tsr_prng_bytes(g, buf, sizeof buf);
            pos = 0;
        }
        uint64_t r = load_le64(buf + pos);
        pos += 8;
        int64_t mag = 0;
        for (int t = 0; t < TSR_SAMPLE_GAUSS_BOUND; t++) mag += r >= gauss_cdt[t];
        if (k % 64 == 0) signs = tsr_prng_u64(g);
        int64_t s = (int64_t)((signs >> (k % 64)) & 1);
        out[k] = mag * (1 - 2 * s); /* sign applied to 0 keeps it 0 */
    }
    tsr_wipe(buf, sizeof buf);
}

tsr_status tsr_sample_ternary_rns(const tsr_rns_basis *b, tsr_prng *g, uint64_t *out) {
    int8_t *s = tsr_alloc(b->n);
    if (!s) return tsr_fail(TSR_ERR_NOMEM, "out of memory sampling a secret");
    tsr_sample_ternary(g, s, b->n);
    tsr_rns_from_i8(b, out, s);
    tsr_free_secret(s, b->n);
    return TSR_OK;
}

tsr_status tsr_sample_gaussian_rns(const tsr_rns_basis *b, tsr_prng *g, uint64_t *out) {
    int64_t *e = tsr_alloc(b->n * sizeof *e);
    if (!e) return tsr_fail(TSR_ERR_NOMEM, "out of memory sampling an error polynomial");
    tsr_sample_gaussian(g, e, b->n);
    tsr_rns_from_i64(b, out, e);
    tsr_free_secret(e, b->n * sizeof *e);
    return TSR_OK;
}
