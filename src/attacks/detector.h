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
 * Model file (little-endian): "TSRMCONV" | u32 version (2) | u32 D, F, K,
 * H, max_len | u64 nparams | u32 val_permille | nparams f32 | BLAKE2b-256 of
 * everything before. val_permille is the model's val_permille
 * (attacks/malconv.h; 0xffffffff = not recorded); version-1 files (written
 * before it existed) have no such field and read as not recorded. The
 * reader checks the sizes (tsr_malconv_create's rules), that nparams
 * matches them and the file length before allocating, the checksum, that
 * val_permille is at most 1000 or not recorded, and that every parameter
 * is finite.
 */
#ifndef TSR_ATTACKS_DETECTOR_H
#define TSR_ATTACKS_DETECTOR_H

#include "attacks/malconv.h"
#include "tessera/common.h"

#include <stddef.h>
#include <stdint.h>

/** One training or test example: bytes, length and label (1 flagged, 0 clean). */
typedef struct tsr_detector_example {
    const uint8_t *buf;
    size_t len;
    int label;
} tsr_detector_example;

typedef struct tsr_detector_train_cfg {
    int epochs;    /* passes over the training files (default 4) */
    int batch;     /* files per step (default 16) */
    float lr;      /* Adam learning rate (default 1e-3) */
    uint64_t seed; /* shuffle stream */
    int verbose;   /* progress lines on stderr */
    /* Against saturation (all 0 = off, the defaults): */
    float label_smoothing; /* targets y (1 - s) + s / 2: the loss no longer pulls logits to
                              infinity (its optimum is +-log((2 - s) / s)) */
    float weight_decay;    /* > 0: AdamW with this decoupled decay instead of Adam; it
                              decays every parameter: weights, biases, the gate and the
                              padding embedding row alike (no mask) */
    /* Early stopping: after each epoch the mean loss (plain labels) on val[0 .. nval)
       is measured; the parameters of the best epoch are kept, and training stops after
       `patience` epochs without improvement (0: run all epochs, keep the best). */
    const tsr_detector_example *val;
    size_t nval;
    int patience;
    /* Adversarial training (attacks/payload.h): from epoch adv_from on, each flagged
       example of a batch is, with probability adv_frac, replaced by a copy carrying an
       overlay payload of adv_size bytes made by adv_steps steps (eps adv_eps) of the
       attack against the current model; the copy keeps label 1. 0 = off. */
    float adv_frac;
    size_t adv_size;
    int adv_steps;
    float adv_eps;
    int adv_from;
    int adv_routed, adv_greedy; /* the attack's variants (attacks/payload.h) */
} tsr_detector_train_cfg;

/** The defaults above. */
tsr_detector_train_cfg tsr_detector_train_defaults(void);

/** What a training run did. */
typedef struct tsr_detector_train_info {
    double final_loss;    /* mean training loss of the last epoch run */
    int epochs_run;       /* epochs actually run (early stopping) */
    int best_epoch;       /* 1-based epoch whose parameters were kept (the last without val) */
    double best_val_loss; /* its validation loss (0 without val) */
    size_t adv_examples;  /* attacked copies trained on */
} tsr_detector_train_info;

/**
 * Train m in place on ex[0 .. n). *final_loss (if not NULL) gets the mean
 * loss of the last epoch. Errors: TSR_ERR_INVALID_ARG (n == 0, bad cfg),
 * TSR_ERR_NOMEM.
 */
tsr_status tsr_detector_train(tsr_malconv *m, const tsr_detector_example *ex, size_t n,
                              const tsr_detector_train_cfg *cfg, double *final_loss);
/** The same with the full report of the run (info may be NULL; zeroed first, so it
 *  is all zero when the call fails, even with TSR_ERR_INVALID_ARG). */
tsr_status tsr_detector_fit(tsr_malconv *m, const tsr_detector_example *ex, size_t n,
                            const tsr_detector_train_cfg *cfg, tsr_detector_train_info *info);
/** Mean binary cross-entropy (plain labels) of m on n examples; *loss. */
tsr_status tsr_detector_loss(const tsr_malconv *m, const tsr_detector_example *ex, size_t n,
                             double *loss);

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

/**
 * The operating threshold for a target false-positive rate, chosen on held-out
 * scores: the lowest threshold at which at most floor(fpr * clean) of the
 * clean (label != 1) scores are flagged (score >= threshold), i.e. the
 * smallest float above the (k+1)-th highest clean score, k = floor(fpr *
 * clean). The achievable FPRs on these files are multiples of 1 / clean.
 * *fp gets the clean files flagged at it. Errors: TSR_ERR_INVALID_ARG (no
 * clean score, fpr outside [0, 1), or the threshold would not be below 1).
 */
tsr_status tsr_detector_threshold_for_fpr(const float *scores, const int *labels, size_t n,
                                          double fpr, float *threshold, size_t *fp);

/** Write m to path atomically (core/io.h output rules; flags TSR_OUT_*). */
tsr_status tsr_malconv_save(const tsr_malconv *m, const char *path, unsigned flags);
/** Parse a model file's bytes (validated as described above). */
tsr_status tsr_malconv_parse(tsr_malconv **m, const uint8_t *buf, size_t len);
/** Read and parse path (at most 1 GiB). */
tsr_status tsr_malconv_load(tsr_malconv **m, const char *path);

#endif /* TSR_ATTACKS_DETECTOR_H */
