/*
 * train/train.h - the training loop: epochs of seeded shuffled batches,
 * optimizer and schedule, optional knowledge distillation from a teacher
 * model and the range loss on polynomial-activation inputs, progress bar,
 * CSV learning curves; evaluation and range calibration.
 *
 * The recipe of Baruch et al. (arXiv 2111.03362, 2304.14836) is
 *   L = [α T² KL(teacher ‖ student) + (1 - α) CE]  +  W · L_range
 * with L_range = (1/L) Σ_l mean relu(|x_l| - B_l)² over the inputs of the L
 * polynomial activations (B_l = layer bound), see train/model.h.
 */
#ifndef TSR_TRAIN_TRAIN_H
#define TSR_TRAIN_TRAIN_H

#include "tessera/common.h"
#include "train/data.h"
#include "train/model.h"
#include "train/optim.h"

struct tsr_epoch_stats;

typedef struct tsr_train_config {
    int epochs;           /* >= 1 */
    int batch;            /* 128 */
    tsr_optim_kind optim; /* TSR_OPT_ADAM */
    float lr;             /* 1e-3 */
    float weight_decay;   /* 0; conv/dense weights only */
    float momentum;       /* SGD momentum, 0.9 */
    tsr_sched_kind sched; /* TSR_SCHED_COSINE */
    float warmup_epochs;  /* 0 */
    float step_gamma;     /* STEP: 0.1 */
    float step_epochs;    /* STEP: epochs / 3 */
    float clip;           /* max gradient norm, 0 = off */
    uint64_t seed;        /* shuffling, augmentation, dropout */
    tsr_augment aug;      /* off */
    tsr_model *teacher;   /* distillation teacher (evaluation mode) or NULL */
    float kd_temp;        /* 4 */
    float kd_alpha;       /* 0.7 */
    float range_weight;   /* W of the range loss, 0 = off */
    const char *csv_path; /* learning curves or NULL */
    int progress;         /* progress bar on stderr */
    int eval_each_epoch;  /* evaluate the test set after every epoch (else only at the end) */
    int max_batches;      /* stop each epoch after this many batches (0 = all); tests, benches */
    /* called after every epoch (may be NULL); returning non-zero stops training early */
    int (*on_epoch)(const struct tsr_epoch_stats *stats, void *user);
    void *user;
} tsr_train_config;

/** Defaults as annotated above (epochs = 1). */
void tsr_train_config_default(tsr_train_config *cfg);

typedef struct tsr_epoch_stats {
    int epoch;                  /* 1-based */
    double lr;                  /* at the end of the epoch */
    double train_loss;          /* mean training loss (task + W·range) over the epoch */
    double train_acc;           /* accuracy on the (augmented) training batches */
    double range_loss;          /* mean L_range over the epoch */
    double test_loss, test_acc; /* NaN when not evaluated */
    double seconds;             /* wall time of the training part of the epoch */
    double images_per_s;
} tsr_epoch_stats;

typedef struct tsr_train_result {
    tsr_epoch_stats last;
    double total_seconds;
} tsr_train_result;

/**
 * Train m in place on `train` (test may be NULL). Fails with TSR_ERR_SHAPE
 * if the data, model and teacher shapes disagree, TSR_ERR_IO if the CSV
 * cannot be written, and TSR_ERR_INVALID_ARG ("training diverged ...") if
 * the loss becomes NaN or infinite. Leaves the model in evaluation mode.
 * res may be NULL.
 */
tsr_status tsr_train_run(tsr_model *m, const tsr_train_config *cfg, const tsr_dataset *train,
                         const tsr_dataset *test, tsr_train_result *res);

/**
 * One gradient evaluation on a labelled batch, for callers that run their own
 * optimisation (e.g. distributed learning): training-mode forward of x (B,
 * C, H, W), mean softmax cross-entropy against y (B) (plus W·L_range when
 * m->range_weight > 0), then zero_grad + backward, so tsr_model_grads(m)
 * holds the gradient of the mean loss. loss and correct may be NULL.
 * Updates batch-norm running statistics (training mode) and leaves the model
 * in training mode.
 */
tsr_status tsr_model_compute_grad(tsr_model *m, const float *x, const int32_t *y, int B,
                                  double *loss, int *correct);

/** Mean CE loss and accuracy of m (evaluation mode) on ds; either output may be NULL. */
tsr_status tsr_evaluate(tsr_model *m, const tsr_dataset *ds, int batch, double *loss, double *acc);

/**
 * Calibration: evaluate m on ds (up to limit samples, 0 = all) with range
 * tracking reset, so each activation layer's seen_min / seen_max /
 * seen_outside describe the inputs it saw.
 */
tsr_status tsr_calibrate(tsr_model *m, const tsr_dataset *ds, int batch, int limit);

/** Check that a dataset fits a model: input shape (c, h, w) and classes <= outputs. */
tsr_status tsr_check_data(const tsr_model *m, const tsr_dataset *ds);

#endif /* TSR_TRAIN_TRAIN_H */
