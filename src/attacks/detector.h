/*
 * attacks/detector.h - training and evaluating the MalConv detector
 * (attacks/malconv.h) on the lab's corpus, its model file, and the
 * detection metrics the lab reports.
 *
 * Training: binary cross-entropy on the logit, Adam (train/optim.h), batches
 * drawn by a seeded shuffle each epoch. A batch is split into one slice per
 * OpenMP thread; each slice's gradient is accumulated in sample order and
 * the slices are summed in slice order, so a seed and a thread count give
 * bitwise identical models. OpenBLAS is set to one thread.
 *
 * Model file (little-endian): "TSRMCONV" | u32 version (1) | u32 D, F, K,
 * H, max_len | u64 nparams | nparams f32 | BLAKE2b-256 of everything before.
 * The reader checks the sizes (tsr_malconv_create's rules), that nparams
 * matches them and the file length before allocating, the checksum, and
 * that every parameter is finite.
 */
#ifndef TSR_ATTACKS_DETECTOR_H
#define TSR_ATTACKS_DETECTOR_H

#include "attacks/malconv.h"
#include "tessera/common.h"

#include <stddef.h>
#include <stdint.h>

typedef struct tsr_detector_train_cfg {
    int epochs;    /* passes over the training files (default 4) */
    int batch;     /* files per step (default 16) */
    float lr;      /* Adam learning rate (default 1e-3) */
    uint64_t seed; /* shuffle stream */
    int verbose;   /* progress lines on stderr */
} tsr_detector_train_cfg;

/** The defaults above. */
tsr_detector_train_cfg tsr_detector_train_defaults(void);

/** One training or test example: bytes, length and label (1 flagged, 0 clean). */
typedef struct tsr_detector_example {
    const uint8_t *buf;
    size_t len;
    int label;
} tsr_detector_example;

/**
 * Train m in place on ex[0 .. n). *final_loss (if not NULL) gets the mean
 * loss of the last epoch. Errors: TSR_ERR_INVALID_ARG (n == 0, bad cfg),
 * TSR_ERR_NOMEM.
 */
tsr_status tsr_detector_train(tsr_malconv *m, const tsr_detector_example *ex, size_t n,
                              const tsr_detector_train_cfg *cfg, double *final_loss);

/** Scores sigmoid(logit) of n examples (OpenMP over examples). */
tsr_status tsr_detector_scores(const tsr_malconv *m, const tsr_detector_example *ex, size_t n,
                               float *scores);

typedef struct tsr_detector_metrics {
    size_t n, pos, neg;
    double accuracy; /* at the threshold */
    double tpr, fpr; /* detection rate of flagged, false-positive rate of clean files */
    double auc;      /* ROC AUC (Mann-Whitney; ties count one half) */
} tsr_detector_metrics;

/** Metrics of scores against labels (score >= threshold means flagged). */
void tsr_detector_metrics_compute(const float *scores, const int *labels, size_t n,
                                  double threshold, tsr_detector_metrics *out);

/** Write m to path atomically (core/io.h output rules; flags TSR_OUT_*). */
tsr_status tsr_malconv_save(const tsr_malconv *m, const char *path, unsigned flags);
/** Parse a model file's bytes (validated as described above). */
tsr_status tsr_malconv_parse(tsr_malconv **m, const uint8_t *buf, size_t len);
/** Read and parse path (at most 1 GiB). */
tsr_status tsr_malconv_load(tsr_malconv **m, const char *path);

#endif /* TSR_ATTACKS_DETECTOR_H */
