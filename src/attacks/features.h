/*
 * attacks/features.h - the lab's second detector: a fixed-length feature
 * vector of a file (byte histogram + PE header and section features) for a
 * small MLP trained on the training engine (train/model.h, train/train.h).
 * It sees the file whole (no truncation), so its view of an appended or
 * slack payload differs from MalConv's: it is what payloads made against
 * MalConv are tried on ("transfer", docs/MALWARE.md).
 *
 * Features (TSR_FEAT_DIM floats):
 *   [0, 256)   sqrt of the frequency of each byte value over the whole file
 *   256        log2(file bytes + 1) / 24
 *   257        Shannon entropy of the file / 8
 *   258        1 if the PE reader (attacks/pe.h) accepts the file; the rest are 0 if not
 *   259        sections / 16
 *   260        overlay bytes / file bytes
 *   261        log2(overlay bytes + 1) / 24
 *   262        import DLLs / 32
 *   263        imported functions / 512
 *   264, 265   largest and mean section entropy (used part) / 8
 *   266        share of the file in executable sections' raw data
 *   267        1 if a section is both writable and executable
 *   268        slack bytes / file bytes
 *   269        1 if the CheckSum field is set
 *   270        1 if the entry point lies in the first section
 *   271        non-empty data directories / 16
 */
#ifndef TSR_ATTACKS_FEATURES_H
#define TSR_ATTACKS_FEATURES_H

#include "tessera/common.h"

#include <stddef.h>
#include <stdint.h>

#define TSR_FEAT_DIM 272

/** The features of buf (len bytes) into out (TSR_FEAT_DIM). Never fails on any bytes;
 *  only TSR_ERR_NOMEM from the PE reader is returned. */
tsr_status tsr_pe_features(const uint8_t *buf, size_t len, float *out);

/**
 * The second detector: features standardised by the training files' mean and
 * standard deviation, dense (TSR_FEAT_DIM -> hidden) -> ReLU -> dense 2,
 * softmax cross-entropy, Adam with weight decay 1e-4 (train/train.h); the
 * score is the softmax probability of class 1. Deterministic for a seed.
 */
typedef struct tsr_feat_mlp tsr_feat_mlp;

typedef struct tsr_feat_mlp_cfg {
    int hidden; /* units (64) */
    int epochs; /* (40) */
    int batch;  /* (32) */
    float lr;   /* Adam (1e-3) */
    uint64_t seed;
} tsr_feat_mlp_cfg;

tsr_feat_mlp_cfg tsr_feat_mlp_defaults(void);

struct tsr_detector_example;
/** Train on ex[0 .. n) (labels 0/1). Errors: TSR_ERR_INVALID_ARG (n < 2, one class, bad
 *  cfg), TSR_ERR_NOMEM. */
tsr_status tsr_feat_mlp_train(tsr_feat_mlp **out, const struct tsr_detector_example *ex, size_t n,
                              const tsr_feat_mlp_cfg *cfg);
/** Scores in [0, 1] of n examples. */
tsr_status tsr_feat_mlp_scores(tsr_feat_mlp *f, const struct tsr_detector_example *ex, size_t n,
                               float *scores);
void tsr_feat_mlp_free(tsr_feat_mlp *f);

#endif /* TSR_ATTACKS_FEATURES_H */
