/*
 * nn/data.c - model inputs and labels from files, every byte validated:
 *   IDX  (MNIST / Fashion-MNIST; raw or gzip): unsigned-byte images (n, h, w)
 *        or (n, c, h, w); pixels are preprocessed with the model's
 *        tessera.input.* metadata: x = (p * scale - mean) / std;
 *   .npy (NumPy v1-v3, little-endian float32 / float64 / uint8, C order)
 *        of shape (n, C, H, W), (n, C*H*W) or (C, H, W): float values are
 *        model inputs as they are, uint8 values are pixels (preprocessed);
 *   CSV  one sample per line, C*H*W numbers separated by commas (model
 *        inputs as they are); blank lines and lines starting with '#' are
 *        skipped.
 * Labels: IDX unsigned bytes (n) or CSV / text with one integer per line.
 * Reference outputs (tsr_nn_load_outputs): .npy or CSV as for inputs, with
 * the model's output size per sample (uint8 values taken as they are).
 */
#include "nn/nn_internal.h"

#include "core/alloc.h"
#include "core/error.h"
#include "core/idx.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_FILE ((size_t)1 << 31)

static tsr_status read_all(const char *path, uint8_t **buf, size_t *len) {
    *buf = NULL;
    *len = 0;
    FILE *fp = fopen(path, "rb");
    if (!fp) return tsr_fail(TSR_ERR_NOT_FOUND, "cannot open '%s': %s", path, strerror(errno));
    size_t cap = 1 << 16, n = 0;
    uint8_t *b = tsr_alloc(cap);
    tsr_status st = b ? TSR_OK : tsr_fail(TSR_ERR_NOMEM, "out of memory");
    while (st == TSR_OK) {
        if (n == cap) {
            if (cap >= MAX_FILE) {
                st = tsr_fail(TSR_ERR_FORMAT, "'%s' is larger than 2 GiB", path);
                break;
            }
            uint8_t *nb = tsr_alloc(cap * 2);
            if (!nb) {
                st = tsr_fail(TSR_ERR_NOMEM, "out of memory reading '%s'", path);
                break;
            }
            memcpy(nb, b, n);
            tsr_free(b);
            b = nb;
            cap *= 2;
        }
        size_t got = fread(b + n, 1, cap - n, fp);
        n += got;
        if (got == 0) {
            if (ferror(fp)) st = tsr_fail(TSR_ERR_IO, "error reading '%s'", path);
            break;
        }
    }
    fclose(fp);
    if (st != TSR_OK) {
        tsr_free(b);
        return st;
    }
    *buf = b;
    *len = n;
    return TSR_OK;
}

static int ends_with(const char *s, const char *suf) {
    size_t a = strlen(s), b = strlen(suf);
    return a >= b && strcmp(s + a - b, suf) == 0;
}

/* ---- .npy ------------------------------------------------------------------------ */

/* Parse the header dict; *dtype: 1 = <f4, 2 = <f8, 3 = |u1. */
static tsr_status npy_header(const char *h, size_t hl, int *dtype, int64_t *shape, int *nd) {
    char buf[1024];
    if (hl >= sizeof buf)
        return tsr_fail(TSR_ERR_FORMAT, ".npy: header of %zu bytes is too long", hl);
    memcpy(buf, h, hl);
    buf[hl] = 0;
    for (size_t i = 0; i < hl; i++)
        if (!buf[i] || (unsigned char)buf[i] > 127)
            return tsr_fail(TSR_ERR_FORMAT, ".npy: the header is not ASCII");
    const char *d = strstr(buf, "'descr'");
    const char *f = strstr(buf, "'fortran_order'");
    const char *s = strstr(buf, "'shape'");
    if (!d || !f || !s)
        return tsr_fail(TSR_ERR_FORMAT, ".npy: the header lacks descr, fortran_order or shape");
    /* A key given twice is ambiguous (NumPy refuses it): never pick one silently. */
    const char *keys[3] = { "'descr'", "'fortran_order'", "'shape'" }, *at[3] = { d, f, s };
    for (int k = 0; k < 3; k++)
        if (strstr(at[k] + 1, keys[k]))
            return tsr_fail(TSR_ERR_FORMAT, ".npy: the header gives the key %s twice", keys[k]);
    d = strchr(d + 7, '\'');
    if (!d) return tsr_fail(TSR_ERR_FORMAT, ".npy: malformed descr");
    if (strncmp(d, "'<f4'", 5) == 0)
        *dtype = 1;
    else if (strncmp(d, "'<f8'", 5) == 0)
        *dtype = 2;
    else if (strncmp(d, "'|u1'", 5) == 0 || strncmp(d, "'<u1'", 5) == 0)
        *dtype = 3;
    else
        return tsr_fail(TSR_ERR_UNSUPPORTED,
                        ".npy: element type %.8s is not supported (use float32, float64 or uint8)",
                        d);
    f += 15;
    while (*f == ' ' || *f == ':') f++;
    if (strncmp(f, "False", 5) != 0)
        return tsr_fail(TSR_ERR_UNSUPPORTED, ".npy: Fortran-ordered arrays are not supported");
    s = strchr(s + 7, '(');
    if (!s) return tsr_fail(TSR_ERR_FORMAT, ".npy: malformed shape");
    s++;
    *nd = 0;
    for (;;) {
        while (*s == ' ') s++;
        if (*s == ')') break;
        if (!isdigit((unsigned char)*s)) return tsr_fail(TSR_ERR_FORMAT, ".npy: malformed shape");
        char *end;
        errno = 0;
        long long v = strtoll(s, &end, 10);
        if (errno || v < 0 || v > (1LL << 31) || *nd >= 5)
            return tsr_fail(TSR_ERR_FORMAT, ".npy: shape out of range");
        shape[(*nd)++] = v;
        s = end;
        while (*s == ' ') s++;
        if (*s == ',') s++;
    }
    if (*nd < 1) return tsr_fail(TSR_ERR_FORMAT, ".npy: a scalar is not a batch of inputs");
    return TSR_OK;
}

tsr_status nn_parse_npy(const uint8_t *b, size_t len, int64_t want, double pscale, double mean,
                        double std, double **x, int *n) {
    *x = NULL;
    *n = 0;
    if (len < 10 || memcmp(b, "\x93NUMPY", 6) != 0)
        return tsr_fail(TSR_ERR_FORMAT, ".npy: bad magic");
    uint8_t major = b[6];
    size_t hl, off;
    if (major == 1) {
        hl = (size_t)b[8] | ((size_t)b[9] << 8);
        off = 10;
    } else if (major == 2 || major == 3) {
        if (len < 12) return tsr_fail(TSR_ERR_FORMAT, ".npy: truncated header");
        hl = (size_t)b[8] | ((size_t)b[9] << 8) | ((size_t)b[10] << 16) | ((size_t)b[11] << 24);
        off = 12;
    } else {
        return tsr_fail(TSR_ERR_VERSION, ".npy: format version %u is not supported", major);
    }
    if (hl > len - off) return tsr_fail(TSR_ERR_FORMAT, ".npy: truncated header");
    int dtype, nd;
    int64_t shape[5];
    TSR_TRY(npy_header((const char *)b + off, hl, &dtype, shape, &nd));
    off += hl;
    int64_t per = 1, cnt;
    for (int i = 1; i < nd; i++) per *= shape[i];
    cnt = shape[0];
    if (nd >= 2 && per != want) {
        /* maybe a single sample (C, H, W) */
        int64_t all = per * shape[0];
        if (all != want)
            return tsr_fail(TSR_ERR_SHAPE, ".npy: samples of %lld values; the model takes %lld",
                            (long long)per, (long long)want);
        cnt = 1;
        per = want;
    } else if (nd == 1) {
        if (shape[0] != want)
            return tsr_fail(TSR_ERR_SHAPE, ".npy: one sample of %lld values; the model takes %lld",
                            (long long)shape[0], (long long)want);
        cnt = 1;
        per = want;
    }
    if (cnt < 1 || cnt > (1 << 24))
        return tsr_fail(TSR_ERR_SHAPE, ".npy: %lld samples", (long long)cnt);
    size_t es = dtype == 1 ? 4 : dtype == 2 ? 8 : 1;
    uint64_t need = (uint64_t)cnt * (uint64_t)per * es;
    if (need != len - off)
        return tsr_fail(TSR_ERR_FORMAT, ".npy: %zu data bytes for %llu expected", len - off,
                        (unsigned long long)need);
    double *v = tsr_alloc((size_t)(cnt * per) * sizeof *v);
    if (!v) return tsr_fail(TSR_ERR_NOMEM, "out of memory");
    const uint8_t *p = b + off;
    for (int64_t i = 0; i < cnt * per; i++) {
        double d;
        if (dtype == 1) {
            uint32_t u = (uint32_t)p[4 * i] | ((uint32_t)p[4 * i + 1] << 8) |
                         ((uint32_t)p[4 * i + 2] << 16) | ((uint32_t)p[4 * i + 3] << 24);
            float f;
            memcpy(&f, &u, 4);
            d = f;
        } else if (dtype == 2) {
            uint64_t u = 0;
            for (int k = 7; k >= 0; k--) u = (u << 8) | p[8 * i + k];
            memcpy(&d, &u, 8);
        } else {
            d = (p[i] * pscale - mean) / std;
        }
        if (!isfinite(d)) {
            tsr_free(v);
            return tsr_fail(TSR_ERR_FORMAT, ".npy: value %lld is not finite", (long long)i);
        }
        v[i] = d;
    }
    *x = v;
    *n = (int)cnt;
    return TSR_OK;
}

/* ---- CSV ----------------------------------------------------------------------- */

tsr_status nn_parse_csv(const uint8_t *b, size_t len, int64_t want, double **x, int *n) {
    *x = NULL;
    *n = 0;
    size_t cap = 0, cnt = 0;
    double *v = NULL;
    size_t i = 0;
    int line = 0;
    char num[64];
    while (i < len) {
        line++;
        size_t e = i;
        while (e < len && b[e] != '\n') e++;
        size_t s = i;
        while (s < e && (b[s] == ' ' || b[s] == '\t' || b[s] == '\r')) s++;
        if (s == e || b[s] == '#') {
            i = e + 1;
            continue;
        }
        if ((cnt + 1) * (size_t)want > cap) {
            size_t nc = cap ? 2 * cap : (size_t)want * 64;
            if (nc > ((size_t)1 << 30)) {
                tsr_free(v);
                return tsr_fail(TSR_ERR_FORMAT, "CSV: too many values");
            }
            double *nv = tsr_alloc(nc * sizeof *nv);
            if (!nv) {
                tsr_free(v);
                return tsr_fail(TSR_ERR_NOMEM, "out of memory");
            }
            if (cnt) memcpy(nv, v, cnt * (size_t)want * sizeof *nv);
            tsr_free(v);
            v = nv;
            cap = nc;
        }
        int64_t k = 0;
        size_t p = s;
        while (p < e) {
            size_t q = p;
            while (q < e && b[q] != ',') q++;
            size_t a = p, z = q;
            while (a < z && (b[a] == ' ' || b[a] == '\t')) a++;
            while (z > a && (b[z - 1] == ' ' || b[z - 1] == '\t' || b[z - 1] == '\r')) z--;
            if (z - a == 0 || z - a >= sizeof num || k >= want) {
                tsr_free(v);
                return tsr_fail(
                    TSR_ERR_FORMAT, "CSV line %d: field %lld is %s (each line holds %lld numbers)",
                    line, (long long)k + 1, z == a ? "empty" : "malformed", (long long)want);
            }
            if (memchr(b + a, 0, z - a)) {
                tsr_free(v);
                return tsr_fail(TSR_ERR_FORMAT, "CSV line %d: field %lld holds a NUL byte", line,
                                (long long)k + 1);
            }
            memcpy(num, b + a, z - a);
            num[z - a] = 0;
            char *end;
            errno = 0;
            double d = strtod(num, &end);
            /* ERANGE with a finite result is underflow (1e-310 is a subnormal, 1e-400 is 0):
             * still the number written. Overflow gives an infinity. */
            if (*end || (errno && errno != ERANGE) || !isfinite(d)) {
                char shown[sizeof num + 16];
                tsr_escape_controls(shown, sizeof shown, num, 0);
                tsr_free(v);
                return tsr_fail(TSR_ERR_FORMAT, "CSV line %d: '%s' is not %s", line, shown,
                                *end || errno != ERANGE ? "a number" : "a finite number");
            }
            v[cnt * (size_t)want + (size_t)k++] = d;
            p = q + 1;
            if (q == e) break;
        }
        if (k != want) {
            tsr_free(v);
            return tsr_fail(TSR_ERR_SHAPE, "CSV line %d has %lld numbers; the model takes %lld",
                            line, (long long)k, (long long)want);
        }
        cnt++;
        if (cnt > (1 << 24)) {
            tsr_free(v);
            return tsr_fail(TSR_ERR_FORMAT, "CSV: too many lines");
        }
        i = e + 1;
    }
    if (cnt == 0) {
        tsr_free(v);
        return tsr_fail(TSR_ERR_FORMAT, "CSV: no samples");
    }
    *x = v;
    *n = (int)cnt;
    return TSR_OK;
}

/* ---- public entry points -------------------------------------------------------- */

static tsr_status select_range(double **x, int *n, int64_t per, int offset, int count) {
    if (offset < 0 || offset >= *n) {
        tsr_free(*x);
        *x = NULL;
        return tsr_fail(TSR_ERR_INVALID_ARG, "offset %d is outside the %d samples", offset, *n);
    }
    int avail = *n - offset, take = count > 0 && count < avail ? count : avail;
    if (offset > 0) memmove(*x, *x + (int64_t)offset * per, (size_t)take * (size_t)per * 8);
    *n = take;
    return TSR_OK;
}

tsr_status tsr_nn_load_inputs(const tsr_nn_model *m, const char *path, int offset, int count,
                              double **x, int *n) {
    *x = NULL;
    *n = 0;
    int64_t per = tsr_nn_model_input_size(m);
    if (ends_with(path, ".npy") || ends_with(path, ".csv") || ends_with(path, ".txt")) {
        uint8_t *b;
        size_t len;
        TSR_TRY(read_all(path, &b, &len));
        tsr_status st = ends_with(path, ".npy")
                            ? nn_parse_npy(b, len, per, m->in_scale, m->in_mean, m->in_std, x, n)
                            : nn_parse_csv(b, len, per, x, n);
        tsr_free(b);
        if (st != TSR_OK) return tsr_fail_context(st, "'%s': ", path);
        return select_range(x, n, per, offset, count);
    }
    /* Only the samples asked for are kept (and converted): the rest of the file is streamed
     * through and validated, so a small gzip file declaring many images costs nothing. */
    if (offset < 0) return tsr_fail(TSR_ERR_INVALID_ARG, "offset %d is negative", offset);
    tsr_idx idx;
    TSR_TRY(tsr_idx_read_file_rows(&idx, path, (uint32_t)offset, count > 0 ? (uint32_t)count : 0));
    tsr_status st = TSR_OK;
    uint64_t each = idx.ndims >= 2 && idx.rows ? idx.count / idx.rows : 0;
    if (idx.ndims < 2 || (int64_t)each != per)
        st = tsr_fail(TSR_ERR_SHAPE,
                      "'%s' holds %u-dimensional IDX data with %llu values per sample; the model "
                      "takes %lld (C*H*W)",
                      path, idx.ndims, (unsigned long long)each, (long long)per);
    double *v = NULL;
    if (st == TSR_OK && idx.rows > (uint32_t)INT32_MAX)
        st = tsr_fail(TSR_ERR_FORMAT, "'%s' holds too many samples", path);
    if (st == TSR_OK) {
        v = tsr_calloc_array(idx.count, sizeof *v);
        if (!v) st = tsr_fail(TSR_ERR_NOMEM, "out of memory for %u samples", idx.rows);
    }
    for (size_t i = 0; st == TSR_OK && i < idx.count; i++)
        v[i] = (idx.data[i] * m->in_scale - m->in_mean) / m->in_std;
    int cnt = (int)idx.rows;
    tsr_idx_free(&idx);
    if (st != TSR_OK) return st;
    *x = v;
    *n = cnt;
    return TSR_OK;
}

tsr_status tsr_nn_load_outputs(const tsr_nn_model *m, const char *path, int offset, int count,
                               double **y, int *n) {
    *y = NULL;
    *n = 0;
    int64_t per = tsr_nn_model_output_size(m);
    if (!ends_with(path, ".npy") && !ends_with(path, ".csv") && !ends_with(path, ".txt"))
        return tsr_fail(TSR_ERR_INVALID_ARG,
                        "'%s': reference outputs are read from .npy (float32 / float64) or .csv",
                        path);
    uint8_t *b;
    size_t len;
    TSR_TRY(read_all(path, &b, &len));
    tsr_status st = ends_with(path, ".npy") ? nn_parse_npy(b, len, per, 1.0, 0.0, 1.0, y, n)
                                            : nn_parse_csv(b, len, per, y, n);
    tsr_free(b);
    if (st != TSR_OK) return tsr_fail_context(st, "'%s': ", path);
    return select_range(y, n, per, offset, count);
}

tsr_status tsr_nn_load_labels(const char *path, int offset, int count, int32_t **y, int *n) {
    *y = NULL;
    *n = 0;
    int32_t *v = NULL;
    int cnt = 0;
    if (ends_with(path, ".csv") || ends_with(path, ".txt")) {
        uint8_t *b;
        size_t len;
        TSR_TRY(read_all(path, &b, &len));
        double *d;
        tsr_status st = nn_parse_csv(b, len, 1, &d, &cnt);
        tsr_free(b);
        if (st != TSR_OK) return tsr_fail_context(st, "'%s': ", path);
        v = tsr_alloc((size_t)cnt * sizeof *v);
        if (!v) {
            tsr_free(d);
            return tsr_fail(TSR_ERR_NOMEM, "out of memory");
        }
        for (int i = 0; i < cnt; i++) {
            if (d[i] != floor(d[i]) || d[i] < 0 || d[i] > 65535) {
                tsr_free(d);
                tsr_free(v);
                return tsr_fail(TSR_ERR_FORMAT, "'%s': label %d is not a class index", path, i);
            }
            v[i] = (int32_t)d[i];
        }
        tsr_free(d);
    } else {
        if (offset < 0) return tsr_fail(TSR_ERR_INVALID_ARG, "offset %d is negative", offset);
        tsr_idx idx;
        TSR_TRY(
            tsr_idx_read_file_rows(&idx, path, (uint32_t)offset, count > 0 ? (uint32_t)count : 0));
        if (idx.ndims != 1 || idx.rows > (uint32_t)INT32_MAX) {
            tsr_idx_free(&idx);
            return tsr_fail(TSR_ERR_SHAPE, "'%s' is not a 1-dimensional IDX label file", path);
        }
        cnt = (int)idx.rows;
        v = tsr_alloc((size_t)cnt * sizeof *v);
        if (!v) {
            tsr_idx_free(&idx);
            return tsr_fail(TSR_ERR_NOMEM, "out of memory");
        }
        for (int i = 0; i < cnt; i++) v[i] = idx.data[i];
        tsr_idx_free(&idx);
        *y = v;
        *n = cnt;
        return TSR_OK;
    }
    if (offset < 0 || offset >= cnt) {
        tsr_free(v);
        return tsr_fail(TSR_ERR_INVALID_ARG, "offset %d is outside the %d labels", offset, cnt);
    }
    int take = count > 0 && count < cnt - offset ? count : cnt - offset;
    if (offset) memmove(v, v + offset, (size_t)take * sizeof *v);
    *y = v;
    *n = take;
    return TSR_OK;
}

void tsr_nn_array_free(void *a) {
    tsr_free(a);
}
