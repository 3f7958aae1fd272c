/*
 * train/data.c - IDX reader (raw or gzip via zlib), datasets and batching.
 */
#include "train/data.h"
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

/* ---- datasets ------------------------------------------------------------- */

void tsr_dataset_free(tsr_dataset *ds) {
    if (!ds) return;
    tsr_free(ds->x);
    tsr_free(ds->y);
    memset(ds, 0, sizeof *ds);
}

tsr_status tsr_dataset_load_idx(tsr_dataset *ds, const char *images, const char *labels, float mean,
                                float std, int limit) {
    memset(ds, 0, sizeof *ds);
    if (!(std > 0)) return tsr_fail(TSR_ERR_INVALID_ARG, "normalisation std must be > 0");
    tsr_idx im, lb;
    TSR_TRY(tsr_idx_read_file(&im, images));
    tsr_status st = tsr_idx_read_file(&lb, labels);
    if (st != TSR_OK) {
        tsr_idx_free(&im);
        return st;
    }
    if (im.ndims != 3 || lb.ndims != 1) {
        st = tsr_fail(TSR_ERR_FORMAT,
                      "'%s' must be an image file (n, h, w) and '%s' a label file (n); got %d and "
                      "%d dimensions",
                      images, labels, im.ndims, lb.ndims);
        goto out;
    }
    if (im.dims[0] != lb.dims[0]) {
        st = tsr_fail(TSR_ERR_FORMAT, "'%s' has %u images but '%s' has %u labels", images,
                      im.dims[0], labels, lb.dims[0]);
        goto out;
    }
    if (im.dims[0] > (uint32_t)INT32_MAX || im.dims[1] > 4096 || im.dims[2] > 4096) {
        st = tsr_fail(TSR_ERR_FORMAT, "'%s': image dimensions are too large", images);
        goto out;
    }
    int n = (int)im.dims[0];
    if (limit > 0 && limit < n) n = limit;
    ds->n = n;
    ds->c = 1;
    ds->h = (int)im.dims[1];
    ds->w = (int)im.dims[2];
    ds->mean = mean;
    ds->std = std;
    size_t per = (size_t)ds->h * ds->w;
    ds->x = tsr_calloc_array((size_t)n * per, sizeof(float));
    ds->y = tsr_calloc_array((size_t)n, sizeof(int32_t));
    if (!ds->x || !ds->y) {
        st = tsr_fail(TSR_ERR_NOMEM, "out of memory for %d images", n);
        goto out;
    }
    float lut[256];
    for (int v = 0; v < 256; v++) lut[v] = ((float)v / 255.0f - mean) / std;
    for (size_t i = 0; i < (size_t)n * per; i++) ds->x[i] = lut[im.data[i]];
    int maxl = 0;
    for (int i = 0; i < n; i++) {
        ds->y[i] = lb.data[i];
        if (lb.data[i] > maxl) maxl = lb.data[i];
    }
    ds->classes = maxl + 1;
out:
    tsr_idx_free(&im);
    tsr_idx_free(&lb);
    if (st != TSR_OK) tsr_dataset_free(ds);
    return st;
}

/* path of "<dir>/<stem>" or "<dir>/<stem>.gz", whichever exists (gz preferred). */
static int find_file(char *buf, size_t n, const char *dir, const char *stem) {
    struct stat sb;
    snprintf(buf, n, "%s/%s.gz", dir, stem);
    if (stat(buf, &sb) == 0) return 0;
    snprintf(buf, n, "%s/%s", dir, stem);
    return stat(buf, &sb) == 0 ? 0 : -1;
}

tsr_status tsr_dataset_load_fashion(tsr_dataset *ds, const char *dir, int train, int limit) {
    memset(ds, 0, sizeof *ds);
    if (!dir) dir = TSR_FMNIST_DIR;
    char im[4096], lb[4096];
    const char *pre = train ? "train" : "t10k";
    char s1[64], s2[64];
    snprintf(s1, sizeof s1, "%s-images-idx3-ubyte", pre);
    snprintf(s2, sizeof s2, "%s-labels-idx1-ubyte", pre);
    if (find_file(im, sizeof im, dir, s1) != 0 || find_file(lb, sizeof lb, dir, s2) != 0)
        return tsr_fail(TSR_ERR_NOT_FOUND,
                        "Fashion-MNIST %s files (%s[.gz], %s[.gz]) not found in '%s': install the "
                        "Debian package dataset-fashion-mnist (scripts/deps.sh) or pass --data DIR",
                        pre, s1, s2, dir);
    return tsr_dataset_load_idx(ds, im, lb, TSR_FMNIST_MEAN, TSR_FMNIST_STD, limit);
}

tsr_status tsr_dataset_from_arrays(tsr_dataset *ds, const float *x, const int32_t *y, int n, int c,
                                   int h, int w, int classes) {
    memset(ds, 0, sizeof *ds);
    if (n < 1 || c < 1 || h < 1 || w < 1 || classes < 1)
        return tsr_fail(TSR_ERR_INVALID_ARG, "dataset sizes must be positive");
    size_t per = (size_t)c * h * w;
    ds->x = tsr_calloc_array((size_t)n * per, sizeof(float));
    ds->y = tsr_calloc_array((size_t)n, sizeof(int32_t));
    if (!ds->x || !ds->y) {
        tsr_dataset_free(ds);
        return tsr_fail(TSR_ERR_NOMEM, "out of memory for %d samples", n);
    }
    for (int i = 0; i < n; i++)
        if (y[i] < 0 || y[i] >= classes) {
            tsr_dataset_free(ds);
            return tsr_fail(TSR_ERR_INVALID_ARG, "label %d of sample %d is not in [0, %d)", y[i], i,
                            classes);
        }
    memcpy(ds->x, x, (size_t)n * per * sizeof *x);
    memcpy(ds->y, y, (size_t)n * sizeof *y);
    ds->n = n;
    ds->c = c;
    ds->h = h;
    ds->w = w;
    ds->classes = classes;
    ds->mean = 0;
    ds->std = 1;
    return TSR_OK;
}

/* ---- batching ---------------------------------------------------------------- */

tsr_status tsr_batcher_init(tsr_batcher *b, const tsr_dataset *ds, int batch, int shuffle,
                            const tsr_augment *aug, uint64_t seed) {
    memset(b, 0, sizeof *b);
    if (batch < 1) return tsr_fail(TSR_ERR_INVALID_ARG, "batch size %d must be >= 1", batch);
    if (ds->n < 1) return tsr_fail(TSR_ERR_INVALID_ARG, "dataset is empty");
    if (aug && (aug->crop_pad < 0 || aug->crop_pad >= ds->h || aug->crop_pad >= ds->w))
        return tsr_fail(TSR_ERR_INVALID_ARG, "crop padding %d does not fit %dx%d images",
                        aug->crop_pad, ds->h, ds->w);
    if (batch > ds->n) batch = ds->n;
    b->ds = ds;
    b->batch = batch;
    b->shuffle = shuffle;
    if (aug) b->aug = *aug;
    size_t per = (size_t)ds->c * ds->h * ds->w;
    b->order = tsr_calloc_array((size_t)ds->n, sizeof(int32_t));
    b->x = tsr_calloc_array((size_t)batch * per, sizeof(float));
    b->y = tsr_calloc_array((size_t)batch, sizeof(int32_t));
    b->index = tsr_calloc_array((size_t)batch, sizeof(int32_t));
    if (!b->order || !b->x || !b->y || !b->index) {
        tsr_batcher_free(b);
        return tsr_fail(TSR_ERR_NOMEM, "out of memory for a batcher");
    }
    uint8_t key[TSR_SEED_BYTES] = { 0 };
    for (int i = 0; i < 8; i++) key[i] = (uint8_t)(seed >> (8 * i));
    tsr_prng_init(&b->rng, key, 2);
    tsr_batcher_reset(b);
    return TSR_OK;
}

void tsr_batcher_free(tsr_batcher *b) {
    if (!b) return;
    tsr_free(b->order);
    tsr_free(b->x);
    tsr_free(b->y);
    tsr_free(b->index);
    memset(b, 0, sizeof *b);
}

void tsr_batcher_reset(tsr_batcher *b) {
    int n = b->ds->n;
    for (int i = 0; i < n; i++) b->order[i] = i;
    if (b->shuffle)
        for (int i = n - 1; i > 0; i--) { /* Fisher-Yates */
            int j = (int)tsr_prng_uniform(&b->rng, (uint64_t)i + 1);
            int32_t t = b->order[i];
            b->order[i] = b->order[j];
            b->order[j] = t;
        }
    b->pos = 0;
}

int tsr_batcher_count(const tsr_batcher *b) {
    return (b->ds->n + b->batch - 1) / b->batch;
}

int tsr_batcher_next(tsr_batcher *b) {
    const tsr_dataset *ds = b->ds;
    int n = ds->n - b->pos;
    if (n <= 0) return 0;
    if (n > b->batch) n = b->batch;
    const int C = ds->c, H = ds->h, W = ds->w;
    const size_t per = (size_t)C * H * W;
    const float fill = (0.0f - ds->mean) / ds->std; /* a black pixel */
    for (int r = 0; r < n; r++) {
        int32_t k = b->order[b->pos + r];
        const float *src = ds->x + (size_t)k * per;
        float *dst = b->x + (size_t)r * per;
        b->y[r] = ds->y[k];
        b->index[r] = k;
        if (!b->aug.crop_pad && !b->aug.flip) {
            memcpy(dst, src, per * sizeof *dst);
            continue;
        }
        int dy = 0, dx = 0, flip = 0;
        if (b->aug.crop_pad) {
            int span = 2 * b->aug.crop_pad + 1;
            dy = (int)tsr_prng_uniform(&b->rng, (uint64_t)span) - b->aug.crop_pad;
            dx = (int)tsr_prng_uniform(&b->rng, (uint64_t)span) - b->aug.crop_pad;
        }
        if (b->aug.flip) flip = (int)tsr_prng_uniform(&b->rng, 2);
        /* dst[c][i][j] = src[c][i + dy][flip ? W-1-(j+dx) : j + dx] (fill outside) */
        for (int c = 0; c < C; c++)
            for (int i = 0; i < H; i++)
                for (int j = 0; j < W; j++) {
                    int si = i + dy, sj = j + dx;
                    float v = fill;
                    if (si >= 0 && si < H && sj >= 0 && sj < W)
                        v = src[((size_t)c * H + si) * W + (flip ? W - 1 - sj : sj)];
                    dst[((size_t)c * H + i) * W + j] = v;
                }
    }
    b->pos += n;
    return n;
}
