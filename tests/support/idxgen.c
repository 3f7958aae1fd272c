/*
 * tests/support/idxgen.c - see idxgen.h.
 */
#include "idxgen.h"

#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#define CHUNK ((size_t)1 << 20)

/* Append what deflate makes of in[0..n) with the given flush to out (grown as needed). */
static int put(z_stream *z, const uint8_t *in, size_t n, int flush, uint8_t **out, size_t *len,
               size_t *cap) {
    z->next_in = (Bytef *)(uintptr_t)in;
    z->avail_in = (uInt)n;
    do {
        if (*cap - *len < 65536) {
            *cap = 2 * *cap + 65536;
            uint8_t *b = realloc(*out, *cap);
            if (!b) return -1;
            *out = b;
        }
        z->next_out = *out + *len;
        z->avail_out = (uInt)(*cap - *len);
        int rc = deflate(z, flush);
        *len = *cap - z->avail_out;
        if (rc == Z_STREAM_ERROR) return -1;
        if (flush == Z_FINISH && rc == Z_STREAM_END) return 0;
    } while (z->avail_in > 0 || z->avail_out == 0 || flush == Z_FINISH);
    return 0;
}

uint8_t *tt_zero_idx_gz(uint32_t n, uint32_t h, uint32_t w, size_t *len) {
    uint8_t head[16] = { 0, 0, 8, 3 };
    const uint32_t d[3] = { n, h, w };
    for (int i = 0; i < 3; i++)
        for (int k = 0; k < 4; k++) head[4 + 4 * i + k] = (uint8_t)(d[i] >> (24 - 8 * k));
    uint64_t total = (uint64_t)n * h * w;
    uint8_t *zeros = calloc(1, CHUNK), *out = NULL, *block = NULL;
    size_t olen = 0, cap = 0, blen = 0, bcap = 0;
    static const uint8_t gz_head[10] = { 0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3 };
    z_stream z;
    memset(&z, 0, sizeof z);
    if (!zeros || deflateInit2(&z, 9, Z_DEFLATED, -15, 8, Z_DEFAULT_STRATEGY) != Z_OK) {
        free(zeros);
        return NULL;
    }
    cap = 1 << 16;
    out = malloc(cap);
    int ok = out != NULL;
    if (ok) memcpy(out, gz_head, sizeof gz_head);
    olen = sizeof gz_head;
    ok = ok && put(&z, head, sizeof head, Z_FULL_FLUSH, &out, &olen, &cap) == 0;
    uLong crc = crc32(crc32(0, NULL, 0), head, sizeof head);
    /* After a full flush deflate starts afresh, so every full chunk compresses to the same bytes:
     * make them once and repeat them. */
    uint64_t full = total / CHUNK, rest = total % CHUNK;
    if (ok && full > 0) ok = put(&z, zeros, CHUNK, Z_FULL_FLUSH, &block, &blen, &bcap) == 0;
    for (uint64_t i = 0; ok && i < full; i++) {
        if (cap - olen < blen) {
            cap = 2 * cap + blen;
            uint8_t *b = realloc(out, cap);
            if (!b)
                ok = 0;
            else
                out = b;
        }
        if (ok) memcpy(out + olen, block, blen);
        olen += blen;
        crc = crc32(crc, zeros, (uInt)CHUNK);
    }
    if (ok) ok = put(&z, zeros, (size_t)rest, Z_FINISH, &out, &olen, &cap) == 0;
    crc = crc32(crc, zeros, (uInt)rest);
    deflateEnd(&z);
    free(zeros);
    free(block);
    uint32_t isize = (uint32_t)(total + sizeof head);
    if (ok && cap - olen < 8) {
        uint8_t *b = realloc(out, olen + 8);
        if (!b)
            ok = 0;
        else
            out = b;
    }
    if (!ok) {
        free(out);
        return NULL;
    }
    for (int k = 0; k < 4; k++) out[olen + k] = (uint8_t)(crc >> (8 * k));
    for (int k = 0; k < 4; k++) out[olen + 4 + k] = (uint8_t)(isize >> (8 * k));
    *len = olen + 8;
    return out;
}
