/*
 * train/trainer.c - the training loop, evaluation and range calibration.
 */
#include "train/train.h"
#include "core/alloc.h"
#include "core/error.h"
#include "core/progress.h"
#include "train/loss.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void tsr_train_config_default(tsr_train_config *cfg) {
    memset(cfg, 0, sizeof *cfg);
    cfg->epochs = 1;
    cfg->batch = 128;
    cfg->optim = TSR_OPT_ADAM;
    cfg->lr = 1e-3f;
    cfg->momentum = 0.9f;
    cfg->sched = TSR_SCHED_COSINE;
    cfg->step_gamma = 0.1f;
    cfg->kd_temp = 4.0f;
    cfg->kd_alpha = 0.7f;
}

tsr_status tsr_check_data(const tsr_model *m, const tsr_dataset *ds) {
    tsr_shape s = m->tensors[0].shape;
    if (s.c != ds->c || s.h != ds->h || s.w != ds->w)
        return tsr_fail(TSR_ERR_SHAPE,
                        "data samples are (%d, %d, %d) but the model takes (%d, %d, %d)", ds->c,
                        ds->h, ds->w, s.c, s.h, s.w);
    if ((size_t)ds->classes > tsr_model_output_size(m))
        return tsr_fail(TSR_ERR_SHAPE, "data has %d classes but the model has %zu outputs",
                        ds->classes, tsr_model_output_size(m));
    return TSR_OK;
}

tsr_status tsr_model_compute_grad(tsr_model *m, const float *x, const int32_t *y, int B,
                                  double *loss, int *correct) {
    TSR_REQUIRE(m && x && y, "tsr_model_compute_grad: NULL argument");
    const int K = (int)tsr_model_output_size(m);
    if (B < 1) return tsr_fail(TSR_ERR_INVALID_ARG, "batch size %d must be >= 1", B);
    for (int i = 0; i < B; i++)
        if (y[i] < 0 || y[i] >= K)
            return tsr_fail(TSR_ERR_INVALID_ARG, "label %d of row %d is not in [0, %d)", y[i], i,
                            K);
    float *d = tsr_alloc((size_t)B * K * sizeof *d);
    if (!d) return tsr_fail(TSR_ERR_NOMEM, "out of memory");
    tsr_model_set_training(m, 1);
    tsr_status st = tsr_model_forward(m, x, B);
    if (st == TSR_OK) {
        double l = tsr_loss_softmax_ce(d, tsr_model_output(m), y, B, K);
        if (loss) *loss = l + m->range_weight * m->range_loss;
        if (correct) *correct = tsr_count_correct(tsr_model_output(m), y, B, K);
        tsr_model_zero_grad(m);
        st = tsr_model_backward(m, d, B);
    }
    tsr_free(d);
    return st;
}

tsr_status tsr_evaluate(tsr_model *m, const tsr_dataset *ds, int batch, double *loss, double *acc) {
    TSR_TRY(tsr_check_data(m, ds));
    if (batch < 1) batch = 256;
    int was = m->training;
    tsr_model_set_training(m, 0);
    const size_t per = (size_t)ds->c * ds->h * ds->w;
    const int K = (int)tsr_model_output_size(m);
    double tl = 0;
    long correct = 0;
    for (int i = 0; i < ds->n; i += batch) {
        int n = ds->n - i < batch ? ds->n - i : batch;
        tsr_status st = tsr_model_forward(m, ds->x + (size_t)i * per, n);
        if (st != TSR_OK) {
            tsr_model_set_training(m, was);
            return st;
        }
        const float *out = tsr_model_output(m);
        tl += tsr_loss_softmax_ce(NULL, out, ds->y + i, n, K) * n;
        correct += tsr_count_correct(out, ds->y + i, n, K);
    }
    tsr_model_set_training(m, was);
    if (loss) *loss = tl / ds->n;
    if (acc) *acc = (double)correct / ds->n;
    return TSR_OK;
}

tsr_status tsr_calibrate(tsr_model *m, const tsr_dataset *ds, int batch, int limit) {
    TSR_TRY(tsr_check_data(m, ds));
    if (batch < 1) batch = 256;
    int n_total = limit > 0 && limit < ds->n ? limit : ds->n;
    int was = m->training, track = m->track_ranges;
    tsr_model_set_training(m, 0);
    tsr_model_track_ranges(m, 1, 1);
    const size_t per = (size_t)ds->c * ds->h * ds->w;
    tsr_status st = TSR_OK;
    for (int i = 0; i < n_total && st == TSR_OK; i += batch) {
        int n = n_total - i < batch ? n_total - i : batch;
        st = tsr_model_forward(m, ds->x + (size_t)i * per, n);
    }
    m->track_ranges = track;
    tsr_model_set_training(m, was);
    return st;
}

static tsr_status check_config(const tsr_train_config *c) {
    if (c->epochs < 1 || c->epochs > 100000)
        return tsr_fail(TSR_ERR_INVALID_ARG, "epochs must be in 1..100000, got %d", c->epochs);
    if (c->batch < 1 || c->batch > 65536)
        return tsr_fail(TSR_ERR_INVALID_ARG, "batch size must be in 1..65536, got %d", c->batch);
    if (!(c->lr > 0) || !isfinite(c->lr))
        return tsr_fail(TSR_ERR_INVALID_ARG, "learning rate must be finite and > 0");
    if (!(c->weight_decay >= 0) || !(c->clip >= 0) || !(c->range_weight >= 0))
        return tsr_fail(TSR_ERR_INVALID_ARG,
                        "weight decay, clipping and range-loss weight must be >= 0");
    if (c->teacher && (!(c->kd_temp > 0) || !(c->kd_alpha >= 0 && c->kd_alpha <= 1)))
        return tsr_fail(TSR_ERR_INVALID_ARG,
                        "distillation needs a temperature > 0 and alpha in [0, 1]");
    return TSR_OK;
}

typedef struct run_state {
    tsr_optim *opt;
    uint8_t *decay;
    float *dlogits, *tlogits;
    FILE *csv;
    tsr_batcher batcher;
} run_state;

static void run_free(run_state *r) {
    tsr_optim_free(r->opt);
    tsr_free(r->decay);
    tsr_free(r->dlogits);
    tsr_free(r->tlogits);
    if (r->csv) fclose(r->csv);
    tsr_batcher_free(&r->batcher);
}

tsr_status tsr_train_run(tsr_model *m, const tsr_train_config *cfg, const tsr_dataset *train,
                         const tsr_dataset *test, tsr_train_result *res) {
    TSR_REQUIRE(m && cfg && train, "tsr_train_run: NULL argument");
    TSR_TRY(check_config(cfg));
    TSR_TRY(tsr_check_data(m, train));
    if (test) TSR_TRY(tsr_check_data(m, test));
    const int K = (int)tsr_model_output_size(m);
    if (cfg->teacher) {
        tsr_shape a = cfg->teacher->tensors[0].shape, b = m->tensors[0].shape;
        if (a.c != b.c || a.h != b.h || a.w != b.w ||
            tsr_model_output_size(cfg->teacher) != (size_t)K)
            return tsr_fail(TSR_ERR_SHAPE,
                            "teacher takes (%d, %d, %d) -> %zu but the student takes (%d, %d, %d) "
                            "-> %d",
                            a.c, a.h, a.w, tsr_model_output_size(cfg->teacher), b.c, b.h, b.w, K);
    }
    run_state r;
    memset(&r, 0, sizeof r);
    tsr_status st = TSR_OK;
    const size_t np = tsr_model_num_params(m);
    const int B = cfg->batch < train->n ? cfg->batch : train->n;
#define CHECK(expr)                 \
    do {                            \
        st = (expr);                \
        if (st != TSR_OK) goto out; \
    } while (0)
    CHECK(tsr_optim_create(&r.opt, cfg->optim, np));
    r.opt->momentum = cfg->momentum;
    r.opt->weight_decay = cfg->weight_decay;
    r.decay = tsr_calloc_array(np ? np : 1, 1);
    r.dlogits = tsr_calloc_array((size_t)B * K, sizeof(float));
    r.tlogits = tsr_calloc_array((size_t)B * K, sizeof(float));
    if (!r.decay || !r.dlogits || !r.tlogits) {
        st = tsr_fail(TSR_ERR_NOMEM, "out of memory for training state");
        goto out;
    }
    for (int i = 0; i < m->n_blocks; i++)
        if (m->blocks[i].decay) memset(r.decay + m->blocks[i].off, 1, m->blocks[i].len);
    r.opt->decay_mask = r.decay;
    CHECK(tsr_batcher_init(&r.batcher, train, B, 1, &cfg->aug, cfg->seed));
    if (cfg->csv_path) {
        r.csv = fopen(cfg->csv_path, "w");
        if (!r.csv) {
            st = tsr_fail(TSR_ERR_IO, "cannot write the curves file '%s': %s", cfg->csv_path,
                          strerror(errno));
            goto out;
        }
        fprintf(r.csv, "epoch,lr,train_loss,train_acc,range_loss,test_loss,test_acc,seconds,"
                       "images_per_s\n");
    }
    tsr_schedule sched = { .kind = cfg->sched,
                           .lr = cfg->lr,
                           .gamma = cfg->step_gamma,
                           .step_epochs =
                               cfg->step_epochs > 0 ? cfg->step_epochs : (float)cfg->epochs / 3.0f,
                           .warmup_epochs = cfg->warmup_epochs,
                           .total_epochs = (float)cfg->epochs };
    tsr_model_seed(m, cfg->seed);
    m->range_weight = cfg->range_weight;
    if (cfg->teacher) tsr_model_set_training(cfg->teacher, 0);
    int nb = tsr_batcher_count(&r.batcher);
    if (cfg->max_batches > 0 && cfg->max_batches < nb) nb = cfg->max_batches;
    double t_all = tsr_now();
    tsr_epoch_stats es;
    memset(&es, 0, sizeof es);
    for (int epoch = 0; epoch < cfg->epochs; epoch++) {
        tsr_progress prog;
        char label[48];
        snprintf(label, sizeof label, "epoch %d/%d", epoch + 1, cfg->epochs);
        if (cfg->progress) tsr_progress_begin(&prog, label, (uint64_t)nb, "batch");
        tsr_batcher_reset(&r.batcher);
        tsr_model_set_training(m, 1);
        double t0 = tsr_now(), sum_loss = 0, sum_range = 0;
        long seen = 0, correct = 0;
        float lr = cfg->lr;
        for (int bi = 0; bi < nb; bi++) {
            int n = tsr_batcher_next(&r.batcher);
            if (n == 0) break;
            lr = tsr_sched_lr(&sched, epoch + (double)bi / nb);
            CHECK(tsr_model_forward(m, r.batcher.x, n));
            const float *logits = tsr_model_output(m);
            double loss;
            if (cfg->teacher) {
                /* the teacher's forward reuses its own buffers; copy its logits out */
                CHECK(tsr_model_forward(cfg->teacher, r.batcher.x, n));
                memcpy(r.tlogits, tsr_model_output(cfg->teacher), (size_t)n * K * sizeof(float));
                loss = tsr_loss_distill(r.dlogits, logits, r.tlogits, r.batcher.y, n, K,
                                        cfg->kd_temp, cfg->kd_alpha);
            } else {
                loss = tsr_loss_softmax_ce(r.dlogits, logits, r.batcher.y, n, K);
            }
            loss += cfg->range_weight * m->range_loss;
            if (!isfinite(loss)) {
                st = tsr_fail(TSR_ERR_INVALID_ARG,
                              "training diverged at epoch %d, batch %d (loss %g): lower the "
                              "learning rate, clip gradients, or keep activations in range "
                              "(range loss, smaller polynomial bound)",
                              epoch + 1, bi + 1, loss);
                goto out;
            }
            correct += tsr_count_correct(logits, r.batcher.y, n, K);
            tsr_model_zero_grad(m);
            CHECK(tsr_model_backward(m, r.dlogits, n));
            if (cfg->clip > 0) tsr_clip_grad_norm(tsr_model_grads(m), np, cfg->clip);
            tsr_optim_step(r.opt, tsr_model_params(m), tsr_model_grads(m), lr);
            sum_loss += loss * n;
            sum_range += m->range_loss * n;
            seen += n;
            if (cfg->progress) {
                double el = tsr_now() - t0, rate = el > 0 ? seen / el : 0;
                double left =
                    rate > 0
                        ? ((double)(nb - bi - 1) * B + (double)(cfg->epochs - epoch - 1) * nb * B) /
                              rate
                        : 0;
                tsr_progress_update(&prog, (uint64_t)bi + 1,
                                    "loss %.4f acc %.1f%% %.0f img/s, all epochs ETA %.0fs",
                                    sum_loss / seen, 100.0 * correct / seen, rate, left);
            }
        }
        double secs = tsr_now() - t0;
        es.epoch = epoch + 1;
        es.lr = lr;
        es.train_loss = seen ? sum_loss / seen : NAN;
        es.train_acc = seen ? (double)correct / seen : NAN;
        es.range_loss = seen ? sum_range / seen : NAN;
        es.seconds = secs;
        es.images_per_s = secs > 0 ? seen / secs : 0;
        es.test_loss = es.test_acc = NAN;
        if (test && (cfg->eval_each_epoch || epoch == cfg->epochs - 1))
            CHECK(tsr_evaluate(m, test, 256, &es.test_loss, &es.test_acc));
        if (cfg->progress) {
            if (test && !isnan(es.test_acc))
                tsr_progress_end(&prog, "loss %.4f train acc %.2f%% test acc %.2f%%", es.train_loss,
                                 100 * es.train_acc, 100 * es.test_acc);
            else
                tsr_progress_end(&prog, "loss %.4f train acc %.2f%%", es.train_loss,
                                 100 * es.train_acc);
        }
        if (r.csv) {
            fprintf(r.csv, "%d,%.6g,%.6f,%.6f,%.6g,%.6f,%.6f,%.3f,%.1f\n", es.epoch, es.lr,
                    es.train_loss, es.train_acc, es.range_loss, es.test_loss, es.test_acc,
                    es.seconds, es.images_per_s);
            fflush(r.csv);
        }
        if (cfg->on_epoch && cfg->on_epoch(&es, cfg->user)) break;
    }
    if (res) {
        res->last = es;
        res->total_seconds = tsr_now() - t_all;
    }
out:
#undef CHECK
    tsr_model_set_training(m, 0);
    if (r.csv && fclose(r.csv) != 0 && st == TSR_OK)
        st = tsr_fail(TSR_ERR_IO, "error writing '%s'", cfg->csv_path);
    r.csv = NULL;
    run_free(&r);
    return st;
}
