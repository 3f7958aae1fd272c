/*
 * train/npy.c - NumPy .npy files (format versions 1-3) as tsr_arrays of
 * doubles, and IDX files as arrays: the data of `tessera train --init` and
 * `tessera heify`. Everything is validated before allocating: magic,
 * version, header length, an ASCII header with each of descr /
 * fortran_order / shape exactly once, a supported little-endian type, C
 * order, the rank, the element count and the exact data length.
 */
#include "train/data.h"

#include "core/alloc.h"
#include "core/error.h"
#include "core/io.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define NPY_MAX_BYTES ((uint64_t)1 << 32)

typedef enum npy_type { NPY_F4, NPY_F8, NPY_U1, NPY_I1, NPY_I4, NPY_I8 } npy_type;

static const struct {
    const char *descr;
    npy_type type;
    size_t size;
} npy_types[] = {
    { "'<f4'", NPY_F4, 4 }, { "'<f8'", NPY_F8, 8 }, { "'|u1'", NPY_U1, 1 }, { "'<u1'", NPY_U1, 1 },
    { "'|i1'", NPY_I1, 1 }, { "'<i1'", NPY_I1, 1 }, { "'<i4'", NPY_I4, 4 }, { "'<i8'", NPY_I8, 8 },
};

/* The value after "'key'" and a colon; each key exactly once. */
static const char *npy_key(const char *h, const char *key) {
    const char *at = strstr(h, key);
    if (!at || strstr(at + 1, key)) return NULL;
    at += strlen(key);
    while (*at == ' ') at++;
    if (*at != ':') return NULL;
    at++;
    while (*at == ' ') at++;
    return at;
}

static tsr_status npy_header(const char *h, size_t hl, npy_type *type, size_t *esize, int *rank,
                             int64_t *dims) {
    char buf[1024];
    if (hl >= sizeof buf)
        return tsr_fail(TSR_ERR_FORMAT, ".npy: header of %zu bytes is too long", hl);
    memcpy(buf, h, hl);
    buf[hl] = 0;
    for (size_t i = 0; i < hl; i++)
        if (!buf[i] || (unsigned char)buf[i] > 127)
            return tsr_fail(TSR_ERR_FORMAT, ".npy: the header is not ASCII");
    const char *d = npy_key(buf, "'descr'"), *f = npy_key(buf, "'fortran_order'"),
               *s = npy_key(buf, "'shape'");
    if (!d || !f || !s)
        return tsr_fail(TSR_ERR_FORMAT,
                        ".npy: the header needs descr, fortran_order and shape, each once");
    size_t k = 0;
    while (k < sizeof npy_types / sizeof npy_types[0] &&
           strncmp(d, npy_types[k].descr, strlen(npy_types[k].descr)) != 0)
        k++;
    if (k == sizeof npy_types / sizeof npy_types[0])
        return tsr_fail(TSR_ERR_UNSUPPORTED,
                        ".npy: element type %.8s is not supported (float32/64, uint8, int8/32/64, "
                        "little-endian)",
                        d);
    *type = npy_types[k].type;
    *esize = npy_types[k].size;
    if (strncmp(f, "False", 5) != 0)
        return tsr_fail(TSR_ERR_UNSUPPORTED, ".npy: Fortran-ordered arrays are not supported");
    if (*s != '(') return tsr_fail(TSR_ERR_FORMAT, ".npy: malformed shape");
    s++;
    *rank = 0;
    for (;;) {
        while (*s == ' ') s++;
        if (*s == ')') break;
        if (!isdigit((unsigned char)*s)) return tsr_fail(TSR_ERR_FORMAT, ".npy: malformed shape");
        if (*rank >= TSR_ARRAY_MAX_RANK)
            return tsr_fail(TSR_ERR_UNSUPPORTED, ".npy: more than %d dimensions",
                            TSR_ARRAY_MAX_RANK);
        char *end;
        errno = 0;
        long long v = strtoll(s, &end, 10);
        if (errno || v < 0 || v > TSR_ARRAY_MAX_NUMEL)
            return tsr_fail(TSR_ERR_FORMAT, ".npy: shape out of range");
        dims[(*rank)++] = v;
        s = end;
        while (*s == ' ') s++;
        if (*s == ',')
            s++;
        else if (*s != ')')
            return tsr_fail(TSR_ERR_FORMAT, ".npy: malformed shape");
    }
    return TSR_OK;
}

static uint64_t le(const uint8_t *p, size_t n) {
    uint64_t u = 0;
    for (size_t k = n; k-- > 0;) u = (u << 8) | p[k];
    return u;
}

tsr_status tsr_npy_parse(const uint8_t *b, size_t len, tsr_array **out, int *integral) {
    TSR_REQUIRE(out && (b || !len), "tsr_npy_parse: NULL argument");
    *out = NULL;
    if (len < 10 || memcmp(b, "\x93NUMPY", 6) != 0)
        return tsr_fail(TSR_ERR_FORMAT, ".npy: bad magic (not a NumPy .npy file)");
    size_t hl, off;
    if (b[6] == 1) {
        hl = (size_t)le(b + 8, 2);
        off = 10;
    } else if (b[6] == 2 || b[6] == 3) {
        if (len < 12) return tsr_fail(TSR_ERR_FORMAT, ".npy: truncated header");
        hl = (size_t)le(b + 8, 4);
        off = 12;
    } else {
        return tsr_fail(TSR_ERR_VERSION, ".npy: format version %u is not supported", b[6]);
    }
    if (hl > len - off) return tsr_fail(TSR_ERR_FORMAT, ".npy: truncated header");
    npy_type type;
    size_t es;
    int rank;
    int64_t dims[TSR_ARRAY_MAX_RANK];
    TSR_TRY(npy_header((const char *)b + off, hl, &type, &es, &rank, dims));
    off += hl;
    int64_t n = tsr_dims_numel(rank, dims);
    if (n < 0) return tsr_fail(TSR_ERR_FORMAT, ".npy: too many elements");
    if ((uint64_t)n * es != (uint64_t)(len - off))
        return tsr_fail(TSR_ERR_FORMAT, ".npy: %zu data bytes where the shape needs %llu",
                        len - off, (unsigned long long)((uint64_t)n * es));
    tsr_array *a;
    TSR_TRY(tsr_array_create(&a, rank, dims));
    const uint8_t *p = b + off;
    for (int64_t i = 0; i < n; i++, p += es) {
        double v;
        uint64_t u = le(p, es);
        switch (type) {
        case NPY_F4: {
            uint32_t w = (uint32_t)u;
            float f;
            memcpy(&f, &w, 4);
            v = f;
            break;
        }
        case NPY_F8:
            memcpy(&v, &u, 8);
            break;
        case NPY_U1:
            v = (double)u;
            break;
        case NPY_I1:
            v = (double)(int8_t)u;
            break;
        case NPY_I4:
            v = (double)(int32_t)(uint32_t)u;
            break;
        default:
            v = (double)(int64_t)u;
            break;
        }
        if (!isfinite(v)) {
            tsr_array_free(a);
            return tsr_fail(TSR_ERR_FORMAT, ".npy: value %lld is not finite", (long long)i);
        }
        a->data[i] = v;
    }
    if (integral) *integral = type == NPY_U1 ? 2 : type != NPY_F4 && type != NPY_F8;
    *out = a;
    return TSR_OK;
}

tsr_status tsr_npy_load(const char *path, tsr_array **out, int *integral) {
    uint8_t *buf;
    size_t len;
    TSR_TRY(tsr_read_whole_file(path, NPY_MAX_BYTES, "a .npy file", &buf, &len));
    tsr_status st = tsr_npy_parse(buf, len, out, integral);
    tsr_free(buf);
    if (st != TSR_OK) return tsr_fail_context(st, "'%s': ", path);
    return TSR_OK;
}

tsr_status tsr_array_load(const char *path, tsr_array **out, int *integral) {
    TSR_REQUIRE(path && out, "tsr_array_load: NULL argument");
    size_t n = strlen(path);
    if (n >= 4 && strcmp(path + n - 4, ".npy") == 0) return tsr_npy_load(path, out, integral);
    tsr_idx idx;
    TSR_TRY(tsr_idx_read_file(&idx, path));
    int64_t dims[TSR_IDX_MAX_DIMS];
    for (int k = 0; k < idx.ndims; k++) dims[k] = idx.dims[k];
    tsr_status st = tsr_array_create(out, idx.ndims, dims);
    if (st == TSR_OK)
        for (size_t i = 0; i < idx.count; i++) (*out)->data[i] = idx.data[i];
    tsr_idx_free(&idx);
    if (st == TSR_OK && integral) *integral = 2; /* unsigned bytes only */
    return st;
}
