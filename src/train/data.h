/*
 * train/data.h - datasets: in-memory image datasets read from IDX files
 * (core/idx.h: MNIST / Fashion-MNIST, raw or gzip-compressed as Debian ships
 * them) with normalisation, and a seeded batcher (shuffling, optional random
 * crops and horizontal flips).
 */
#ifndef TSR_TRAIN_DATA_H
#define TSR_TRAIN_DATA_H

#include "tessera/common.h"
#include "core/idx.h"
#include "core/rng.h"
#include "tessera/graph.h"

#include <stddef.h>
#include <stdint.h>

/** Images and labels in memory. */
typedef struct tsr_dataset {
    int n, c, h, w; /* n samples of shape (c, h, w) */
    int classes;    /* labels are in [0, classes) */
    float *x;       /* (n, c, h, w), normalised: (pixel / 255 - mean) / std */
    int32_t *y;     /* (n) */
    float mean, std;
} tsr_dataset;

/** Fashion-MNIST pixel statistics of the training set (pixel / 255). */
#define TSR_FMNIST_MEAN 0.2860f
#define TSR_FMNIST_STD  0.3530f
#define TSR_FMNIST_DIR  "/usr/share/datasets/fashion-mnist"

/**
 * Dataset from an IDX image file (n, h, w) of unsigned bytes and an IDX label
 * file (n); counts must agree and labels be < 256. classes = max label + 1.
 * Pixels become (p / 255 - mean) / std. limit > 0 keeps the first limit
 * samples.
 */
tsr_status tsr_dataset_load_idx(tsr_dataset *ds, const char *images, const char *labels, float mean,
                                float std, int limit);
/**
 * Fashion-MNIST from dir (NULL: TSR_FMNIST_DIR): train != 0 loads
 * train-images-idx3-ubyte[.gz] / train-labels-idx1-ubyte[.gz], else t10k-*.
 * A missing directory gives TSR_ERR_NOT_FOUND saying which package installs it.
 */
tsr_status tsr_dataset_load_fashion(tsr_dataset *ds, const char *dir, int train, int limit);
/** Dataset from already-normalised arrays (copied): x (n, c, h, w), y (n). */
tsr_status tsr_dataset_from_arrays(tsr_dataset *ds, const float *x, const int32_t *y, int n, int c,
                                   int h, int w, int classes);
void tsr_dataset_free(tsr_dataset *ds);

/** Random augmentation applied by the batcher to each sample. */
typedef struct tsr_augment {
    int crop_pad; /* random shift by up to crop_pad pixels (zero-pixel fill); 0 = off */
    int flip;     /* random horizontal flip with probability 1/2 */
} tsr_augment;

/**
 * Batches over a dataset. Each epoch visits every sample once, in a fresh
 * seeded permutation if shuffle is set; the last batch may be smaller.
 */
typedef struct tsr_batcher {
    const tsr_dataset *ds;
    int batch, shuffle;
    tsr_augment aug;
    int32_t *order; /* (n) */
    int pos;
    tsr_prng rng;
    float *x;       /* (batch, c, h, w) current batch */
    int32_t *y;     /* (batch) */
    int32_t *index; /* (batch) dataset index of each row */
} tsr_batcher;

tsr_status tsr_batcher_init(tsr_batcher *b, const tsr_dataset *ds, int batch, int shuffle,
                            const tsr_augment *aug, uint64_t seed);
void tsr_batcher_free(tsr_batcher *b);
/** Start a new epoch (reshuffles). */
void tsr_batcher_reset(tsr_batcher *b);
/** Fill the next batch into b->x, b->y; returns its size, 0 at the end of the epoch. */
int tsr_batcher_next(tsr_batcher *b);
/** Number of batches per epoch. */
int tsr_batcher_count(const tsr_batcher *b);

/* ---- arrays of any shape (train/npy.c) ---------------------------------------- */

/**
 * Parse a NumPy .npy image (format 1-3, C order; float32/64, uint8, int8/32/64
 * little-endian) into a new array of doubles; *integral (may be NULL) is 0 for
 * the float types, 2 for unsigned bytes (uint8), 1 for the other integer types. Validated before
 * allocating (see npy.c); non-finite values are refused. TSR_ERR_FORMAT / TSR_ERR_UNSUPPORTED /
 * TSR_ERR_VERSION.
 */
tsr_status tsr_npy_parse(const uint8_t *buf, size_t len, tsr_array **out, int *integral);
/** Read and parse a .npy file; errors name the path. */
tsr_status tsr_npy_load(const char *path, tsr_array **out, int *integral);
/**
 * A .npy file (by its extension) or an IDX file (raw or gzip) as an array of
 * its raw values (IDX bytes as 0..255, *integral = 2; .npy as tsr_npy_parse).
 */
tsr_status tsr_array_load(const char *path, tsr_array **out, int *integral);

#endif /* TSR_TRAIN_DATA_H */
