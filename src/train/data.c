/*
 * train/data.c - datasets (from IDX files: core/idx.h) and batching.
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
