/*
 * core/idx.c - the IDX reader (raw or gzip via zlib), every byte validated
 * (core/idx.h). Used by the training datasets and by the inference inputs.
 */
#include "core/idx.h"
#include "core/alloc.h"
#include "core/error.h"
#include "core/io.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <zlib.h>

#define IDX_TYPE_UBYTE 0x08
/* deflate cannot expand data by more than ~1032:1; a larger claim is corrupt. */
#define DEFLATE_MAX_RATIO 1100u

static int valid_type(uint8_t t) {
    return t == 0x08 || t == 0x09 || t == 0x0B || t == 0x0C || t == 0x0D || t == 0x0E;
}

/*
 * Validate the header (at least 4 bytes available in h) and return the
 * header size and the data byte count.
 */
static tsr_status parse_header(const uint8_t *h, size_t avail, size_t *hdr, tsr_idx *out) {
    if (avail < 4)
        return tsr_fail(TSR_ERR_FORMAT, "IDX file is truncated: %zu bytes, the header needs 4",
                        avail);
    if (h[0] != 0 || h[1] != 0 || !valid_type(h[2]))
        return tsr_fail(TSR_ERR_FORMAT,
                        "not an IDX file: magic bytes %02x %02x %02x %02x (expected 00 00 <type> "
                        "<dims>)",
                        h[0], h[1], h[2], h[3]);
    if (h[2] != IDX_TYPE_UBYTE)
        return tsr_fail(TSR_ERR_UNSUPPORTED,
                        "IDX element type 0x%02x is not supported: only unsigned bytes (0x08)",
                        h[2]);
    int nd = h[3];
    if (nd < 1 || nd > TSR_IDX_MAX_DIMS)
        return tsr_fail(TSR_ERR_FORMAT, "IDX file has %d dimensions: expected 1..%d", nd,
                        TSR_IDX_MAX_DIMS);
    *hdr = 4 + 4 * (size_t)nd;
    if (avail < *hdr)
        return tsr_fail(TSR_ERR_FORMAT,
                        "IDX file is truncated inside its header (%zu of %zu bytes)", avail, *hdr);
    size_t count = 1;
    out->ndims = nd;
    for (int i = 0; i < nd; i++) {
        const uint8_t *p = h + 4 + 4 * i;
        uint32_t d = (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
        if (d == 0) return tsr_fail(TSR_ERR_FORMAT, "IDX dimension %d is 0", i);
        out->dims[i] = d;
        if (tsr_mul_size(count, d, &count) != 0 || count > TSR_IDX_MAX_BYTES)
            return tsr_fail(TSR_ERR_FORMAT, "IDX dimensions are too large (over %zu bytes)",
                            (size_t)TSR_IDX_MAX_BYTES);
    }
    out->count = count;
    return TSR_OK;
}

/* Keep rows [first, first + max_rows) of dimension 0 (max_rows 0: to the end); sets first, rows
 * and count (the bytes kept) in out and returns the byte offset and length of the kept part. */
static tsr_status select_rows(tsr_idx *out, size_t total, uint32_t first, uint32_t max_rows,
                              size_t *skip, size_t *keep) {
    if (first >= out->dims[0])
        return tsr_fail(TSR_ERR_INVALID_ARG, "offset %u is outside the %u samples of the IDX file",
                        first, out->dims[0]);
    size_t row = total / out->dims[0];
    uint32_t avail = out->dims[0] - first;
    out->first = first;
    out->rows = max_rows > 0 && max_rows < avail ? max_rows : avail;
    out->count = (size_t)out->rows * row;
    *skip = (size_t)first * row;
    *keep = out->count;
    return TSR_OK;
}

static tsr_status parse_raw(tsr_idx *out, const uint8_t *buf, size_t len, uint32_t first,
                            uint32_t max_rows) {
    size_t hdr, skip = 0, keep = 0;
    TSR_TRY(parse_header(buf, len, &hdr, out));
    size_t total = out->count;
    if (len - hdr < total)
        return tsr_fail(TSR_ERR_FORMAT, "IDX file is truncated: %zu data bytes, header says %zu",
                        len - hdr, total);
    if (len - hdr > total)
        return tsr_fail(TSR_ERR_FORMAT, "IDX file has %zu bytes of trailing data after %zu",
                        len - hdr - total, total);
    TSR_TRY(select_rows(out, total, first, max_rows, &skip, &keep));
    out->data = tsr_alloc(keep);
    if (!out->data) return tsr_fail(TSR_ERR_NOMEM, "out of memory for %zu IDX bytes", keep);
    memcpy(out->data, buf + hdr + skip, keep);
    return TSR_OK;
}

/* Inflate exactly n more bytes into dst, or through a small scratch buffer when dst is NULL
 * (bytes that are validated but not kept); Z_OK/Z_STREAM_END handling by caller. */
static int inflate_into(z_stream *z, uint8_t *dst, size_t n) {
    uint8_t scratch[1 << 14];
    int rc = Z_OK;
    while (n > 0) {
        size_t cap = dst ? (size_t)1 << 30 : sizeof scratch;
        uInt chunk = n > cap ? (uInt)cap : (uInt)n;
        z->next_out = dst ? dst : scratch;
        z->avail_out = chunk;
        rc = inflate(z, Z_NO_FLUSH);
        size_t got = chunk - z->avail_out;
        if (dst) dst += got;
        n -= got;
        if (rc == Z_STREAM_END) break;
        if (rc != Z_OK) return rc;
        if (got == 0 && z->avail_in == 0) return Z_BUF_ERROR; /* truncated */
    }
    return n == 0 ? (rc == Z_STREAM_END ? Z_STREAM_END : Z_OK) : Z_BUF_ERROR;
}

static tsr_status gz_error(int rc, z_stream *z, const char *where) {
    if (rc == Z_BUF_ERROR || rc == Z_OK || rc == Z_STREAM_END)
        return tsr_fail(TSR_ERR_FORMAT, "gzip stream is truncated (%s)", where);
    return tsr_fail(TSR_ERR_FORMAT, "gzip stream is corrupt (%s): %s", where,
                    z->msg ? z->msg : zError(rc));
}

/* The data: skip bytes streamed through, keep bytes into out->data, the rest streamed through;
 * a stream ending early is a truncated file. *rc: zlib's last code (Z_OK or Z_STREAM_END). */
static tsr_status inflate_data(z_stream *z, tsr_idx *out, size_t hdr, size_t total, size_t skip,
                               size_t keep, int *last_rc) {
    size_t part[3] = { skip, keep, total - skip - keep };
    for (int k = 0; k < 3; k++) {
        if (part[k] == 0) continue;
        int rc = inflate_into(z, k == 1 ? out->data : NULL, part[k]);
        int last = k == 2 || (k == 1 && part[2] == 0);
        *last_rc = rc;
        if (rc == Z_OK || (rc == Z_STREAM_END && last)) continue;
        if (rc == Z_STREAM_END || (z->avail_in == 0 && rc == Z_BUF_ERROR))
            return tsr_fail(TSR_ERR_FORMAT, "IDX file is truncated: %lu of %zu bytes",
                            (unsigned long)z->total_out, hdr + total);
        return gz_error(rc, z, "IDX data");
    }
    return TSR_OK;
}

static tsr_status parse_gzip(tsr_idx *out, const uint8_t *buf, size_t len, uint32_t first,
                             uint32_t max_rows) {
    z_stream z;
    memset(&z, 0, sizeof z);
    if (inflateInit2(&z, 15 + 16) != Z_OK)
        return tsr_fail(TSR_ERR_NOMEM, "zlib could not initialise an inflate stream");
    z.next_in = (Bytef *)(uintptr_t)buf;
    z.avail_in = len > UINT32_MAX ? UINT32_MAX : (uInt)len;
    if (len > UINT32_MAX) {
        inflateEnd(&z);
        return tsr_fail(TSR_ERR_FORMAT, "gzip IDX file is too large (%zu bytes)", len);
    }
    tsr_status st = TSR_OK;
    uint8_t head[4 + 4 * TSR_IDX_MAX_DIMS];
    size_t hdr, total, skip = 0, keep = 0;
    int rc = inflate_into(&z, head, 4);
    if (rc != Z_OK && rc != Z_STREAM_END) {
        st = gz_error(rc, &z, "IDX header");
        goto done;
    }
    if (rc == Z_STREAM_END) {
        st = tsr_fail(TSR_ERR_FORMAT, "IDX file is truncated: the gzip stream ends in the header");
        goto done;
    }
    if (head[0] != 0 || head[1] != 0 || head[3] < 1 || head[3] > TSR_IDX_MAX_DIMS) {
        st = parse_header(head, 4, &hdr, out);
        if (st == TSR_OK) st = tsr_fail(TSR_ERR_FORMAT, "IDX header is malformed");
        goto done;
    }
    rc = inflate_into(&z, head + 4, 4 * (size_t)head[3]);
    if (rc != Z_OK) {
        st = rc == Z_STREAM_END
                 ? tsr_fail(TSR_ERR_FORMAT,
                            "IDX file is truncated: the gzip stream ends in the header")
                 : gz_error(rc, &z, "IDX header");
        goto done;
    }
    st = parse_header(head, 4 + 4 * (size_t)head[3], &hdr, out);
    if (st != TSR_OK) goto done;
    total = out->count;
    if (total / DEFLATE_MAX_RATIO > len) {
        st = tsr_fail(TSR_ERR_FORMAT,
                      "IDX header claims %zu bytes but the %zu-byte gzip stream cannot hold them",
                      total, len);
        goto done;
    }
    if ((st = select_rows(out, total, first, max_rows, &skip, &keep)) != TSR_OK) goto done;
    out->data = tsr_alloc(keep);
    if (!out->data) {
        st = tsr_fail(TSR_ERR_NOMEM, "out of memory for %zu IDX bytes", keep);
        goto done;
    }
    if ((st = inflate_data(&z, out, hdr, total, skip, keep, &rc)) != TSR_OK) goto done;
    /* All data is in: the stream must end here (trailer and CRC), with nothing after. */
    while (rc == Z_OK) {
        uint8_t extra[16];
        uLong before_in = z.total_in;
        z.next_out = extra;
        z.avail_out = sizeof extra;
        rc = inflate(&z, Z_NO_FLUSH);
        if (z.avail_out != sizeof extra) {
            st = tsr_fail(TSR_ERR_FORMAT, "IDX file has trailing data after %zu bytes", total);
            goto done;
        }
        if (rc == Z_OK && z.total_in == before_in) rc = Z_BUF_ERROR; /* no progress */
    }
    if (rc != Z_STREAM_END) {
        st = rc == Z_BUF_ERROR
                 ? tsr_fail(TSR_ERR_FORMAT, "gzip stream is truncated (missing its end and CRC)")
                 : gz_error(rc, &z, "gzip trailer");
        goto done;
    }
    if (z.avail_in != 0)
        st =
            tsr_fail(TSR_ERR_FORMAT, "%u bytes of trailing data after the gzip stream", z.avail_in);
done:
    inflateEnd(&z);
    if (st != TSR_OK) tsr_idx_free(out);
    return st;
}

tsr_status tsr_idx_parse_rows(tsr_idx *out, const uint8_t *buf, size_t len, uint32_t first,
                              uint32_t max_rows) {
    memset(out, 0, sizeof *out);
    if (!buf && len) return tsr_fail(TSR_ERR_INVALID_ARG, "IDX buffer is NULL");
    tsr_status st;
    if (len >= 2 && buf[0] == 0x1f && buf[1] == 0x8b)
        st = parse_gzip(out, buf, len, first, max_rows);
    else
        st = parse_raw(out, buf, len, first, max_rows);
    if (st != TSR_OK) tsr_idx_free(out);
    return st;
}

tsr_status tsr_idx_parse(tsr_idx *out, const uint8_t *buf, size_t len) {
    return tsr_idx_parse_rows(out, buf, len, 0, 0);
}

void tsr_idx_free(tsr_idx *idx) {
    if (!idx) return;
    tsr_free(idx->data);
    memset(idx, 0, sizeof *idx);
}

tsr_status tsr_idx_read_file_rows(tsr_idx *out, const char *path, uint32_t first,
                                  uint32_t max_rows) {
    memset(out, 0, sizeof *out);
    uint8_t *buf = NULL;
    size_t len = 0;
    TSR_TRY(tsr_read_whole_file(path, (uint64_t)TSR_IDX_MAX_BYTES + 64, "an IDX file", &buf, &len));
    tsr_status st = tsr_idx_parse_rows(out, buf, len, first, max_rows);
    tsr_free(buf);
    if (st != TSR_OK) return tsr_fail_context(st, "reading '%s': ", path);
    return TSR_OK;
}

tsr_status tsr_idx_read_file(tsr_idx *out, const char *path) {
    return tsr_idx_read_file_rows(out, path, 0, 0);
}
