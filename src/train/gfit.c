/*
 * train/gfit.c - the training loop over a tsr_trainer (tessera/train.h):
 * seeded shuffled batches, loss (MSE, softmax cross-entropy, or the
 * distillation loss of Hinton et al. 2015 against a teacher graph) plus the
 * range loss, optimisers and schedules of train/optim.h, evaluation.
 */
#include "train/gtrain_internal.h"

#include "core/alloc.h"
#include "core/error.h"
#include "core/progress.h"
#include "core/rng.h"
#include "tessera/core.h"
#include "train/loss.h"
#include "train/optim.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void tsr_train_opts_default(tsr_train_opts *o) {
    memset(o, 0, sizeof *o);
    o->epochs = 1;
    o->batch = 64;
    o->optim = "adam";
    o->lr = 1e-3;
    o->schedule = "cosine";
    o->seed = 1;
    o->loss = TSR_TRAIN_LOSS_AUTO;
    o->kd_temp = 4;
    o->kd_alpha = 0.7;
}

/* Rows idx[0..n) of a (N, ...) into out (n, ...), allocated. */
static tsr_status gather(tsr_array **out, const tsr_array *a, const int64_t *idx, int n) {
    int64_t dims[TSR_ARRAY_MAX_RANK];
    memcpy(dims, a->dims, sizeof dims);
    dims[0] = n;
    TSR_TRY(tsr_array_create(out, a->rank, dims));
    size_t row = a->numel / (size_t)a->dims[0];
    for (int i = 0; i < n; i++)
        memcpy((*out)->data + (size_t)i * row, a->data + (size_t)idx[i] * row,
               row * sizeof(double));
    return TSR_OK;
}

/* Rows [at, at + n) of a as an array that borrows a's data (not to be freed). */
static tsr_array rows_view(const tsr_array *a, int64_t at, int n) {
    tsr_array v = *a;
    size_t row = a->numel / (size_t)a->dims[0];
    v.dims[0] = n;
    v.numel = (size_t)n * row;
    v.data = a->data + (size_t)at * row;
    return v;
}

static int is_labels(const tsr_array *y) {
    if (y->rank != 1) return 0;
    for (size_t i = 0; i < y->numel; i++)
        if (y->data[i] != floor(y->data[i]) || y->data[i] < 0 || y->data[i] > 1e6) return 0;
    return 1;
}

/* Resolve AUTO and check y against the output shape (of the batch-1 forward). */
static tsr_status check_targets(tsr_trainer *t, tsr_train_loss *loss, const tsr_array *x,
                                const tsr_array *y, int64_t *K) {
    if (y->rank < 1 || y->dims[0] != x->dims[0])
        return tsr_fail(TSR_ERR_SHAPE, "%lld inputs but %lld targets", (long long)x->dims[0],
                        y->rank < 1 ? 0LL : (long long)y->dims[0]);
    int in_rank = x->rank, orank;
    int64_t in_dims[1][TSR_ARRAY_MAX_RANK], odims[1][TSR_ARRAY_MAX_RANK];
    memcpy(in_dims[0], x->dims, sizeof in_dims[0]);
    in_dims[0][0] = 1;
    TSR_TRY(tsr_graph_infer_shapes(t->g, &in_rank, (const int64_t(*)[TSR_ARRAY_MAX_RANK])in_dims,
                                   &orank, odims));
    int64_t per = tsr_dims_numel(orank, odims[0]);
    if (*loss == TSR_TRAIN_LOSS_AUTO)
        *loss =
            is_labels(y) && orank == 2 && odims[0][1] >= 2 ? TSR_TRAIN_LOSS_CE : TSR_TRAIN_LOSS_MSE;
    char a[160];
    if (*loss == TSR_TRAIN_LOSS_CE) {
        if (orank != 2)
            return tsr_fail(TSR_ERR_SHAPE,
                            "cross-entropy needs an output of shape (N, classes); this graph "
                            "gives %s",
                            tsr_dims_str(orank, odims[0], a, sizeof a));
        *K = odims[0][1];
        if (*K < 2)
            return tsr_fail(TSR_ERR_SHAPE,
                            "cross-entropy needs at least 2 classes; this graph gives %s (use "
                            "MSE for one output)",
                            tsr_dims_str(orank, odims[0], a, sizeof a));
        if (y->rank != 1 || !is_labels(y))
            return tsr_fail(TSR_ERR_SHAPE,
                            "cross-entropy needs one integer label per sample (shape (N))");
        for (size_t i = 0; i < y->numel; i++)
            if (y->data[i] >= (double)*K)
                return tsr_fail(TSR_ERR_SHAPE, "label %g of sample %zu is not below %lld classes",
                                y->data[i], i, (long long)*K);
    } else {
        *K = per;
        if ((int64_t)(y->numel / (size_t)y->dims[0]) != per)
            return tsr_fail(TSR_ERR_SHAPE,
                            "MSE targets have %lld values per sample; the output has %lld %s",
                            (long long)(y->numel / (size_t)y->dims[0]), (long long)per,
                            tsr_dims_str(orank, odims[0], a, sizeof a));
    }
    if (per > INT32_MAX) return tsr_fail(TSR_ERR_SHAPE, "output too large");
    return TSR_OK;
}

/*
 * Loss of a batch and its gradient w.r.t. the output (dy, same shape).
 * teacher (B, K) or NULL; labels may be NULL with teacher and alpha 1.
 */
static double batch_loss(tsr_train_loss loss, const tsr_array *out, const tsr_array *yb,
                         const tsr_array *teacher, double temp, double alpha, tsr_array *dy,
                         int *correct) {
    int B = (int)out->dims[0], K = (int)(out->numel / (size_t)B);
    size_t n = out->numel;
    float *o = malloc(n * sizeof *o), *d = malloc(n * sizeof *d), *tt = NULL, *tg = NULL;
    int32_t *lab = malloc((size_t)B * sizeof *lab);
    double L = NAN;
    if (!o || !d || !lab) goto done;
    for (size_t i = 0; i < n; i++) o[i] = (float)out->data[i];
    if (loss == TSR_TRAIN_LOSS_CE) {
        for (int i = 0; i < B; i++) lab[i] = (int32_t)yb->data[i];
        if (teacher) {
            tt = malloc(n * sizeof *tt);
            if (!tt) goto done;
            for (size_t i = 0; i < n; i++) tt[i] = (float)teacher->data[i];
            L = tsr_loss_distill(d, o, tt, lab, B, K, (float)temp, (float)alpha);
        } else {
            L = tsr_loss_softmax_ce(d, o, lab, B, K);
        }
        if (correct) *correct = tsr_count_correct(o, lab, B, K);
    } else {
        tg = malloc(n * sizeof *tg);
        if (!tg) goto done;
        for (size_t i = 0; i < n; i++) tg[i] = (float)yb->data[i];
        L = tsr_loss_mse(d, o, tg, B, K);
    }
    if (dy)
        for (size_t i = 0; i < n; i++) dy->data[i] = d[i];
done:
    free(o);
    free(d);
    free(tt);
    free(tg);
    free(lab);
    return L;
}

static void shuffle(int64_t *perm, int64_t n, tsr_prng *rng) {
    for (int64_t i = 0; i < n; i++) perm[i] = i;
    for (int64_t i = n - 1; i > 0; i--) {
        int64_t j = (int64_t)tsr_prng_uniform(rng, (uint64_t)i + 1), tmp = perm[i];
        perm[i] = perm[j];
        perm[j] = tmp;
    }
}

tsr_status tsr_trainer_evaluate(tsr_trainer *t, tsr_train_loss loss, const tsr_array *x,
                                const tsr_array *y, int batch, double *mean_loss, double *acc) {
    TSR_REQUIRE(t && x && y, "tsr_trainer_evaluate: NULL argument");
    if (batch < 1) return tsr_fail(TSR_ERR_INVALID_ARG, "batch %d must be >= 1", batch);
    int64_t K;
    TSR_TRY(check_targets(t, &loss, x, y, &K));
    int64_t N = x->dims[0];
    double sum = 0;
    int64_t right = 0;
    tsr_status st = TSR_OK;
    int saved = t->input_grad;
    for (int64_t at = 0; st == TSR_OK && at < N; at += batch) {
        int n = (int)(N - at < batch ? N - at : batch);
        const tsr_array xb = rows_view(x, at, n), yb = rows_view(y, at, n); /* no copies */
        const tsr_array *out;
        st = tsr_trainer_forward(t, &xb, &out);
        if (st == TSR_OK) {
            int c = 0;
            double L = batch_loss(loss, out, &yb, NULL, 1, 0, NULL, &c);
            sum += L * n;
            right += c;
        }
    }
    t->input_grad = saved;
    if (st != TSR_OK) return st;
    if (mean_loss) *mean_loss = sum / (double)N;
    if (acc) *acc = loss == TSR_TRAIN_LOSS_CE ? (double)right / (double)N : NAN;
    return TSR_OK;
}

tsr_status tsr_trainer_fit(tsr_trainer *t, const tsr_train_opts *o, const tsr_array *x,
                           const tsr_array *y, const tsr_array *xt, const tsr_array *yt,
                           tsr_train_report *rep) {
    TSR_REQUIRE(t && o && x && y, "tsr_trainer_fit: NULL argument");
    if (o->epochs < 1 || o->batch < 1 || !(o->lr > 0) || !(o->kd_temp > 0) ||
        !(o->kd_alpha >= 0 && o->kd_alpha <= 1) || !(o->range_weight >= 0))
        return tsr_fail(TSR_ERR_INVALID_ARG,
                        "training options out of range (epochs and batch >= 1, lr > 0, "
                        "temperature > 0, alpha in [0, 1], range weight >= 0)");
    tsr_optim_kind ok;
    tsr_schedule sch = { 0 };
    TSR_TRY(tsr_optim_parse(o->optim ? o->optim : "adam", &ok));
    TSR_TRY(tsr_sched_parse(o->schedule ? o->schedule : "cosine", &sch.kind));
    TSR_TRY(gt_check_input(t, x));
    tsr_train_loss loss = o->loss;
    int64_t K;
    TSR_TRY(check_targets(t, &loss, x, y, &K));
    if (o->teacher && loss != TSR_TRAIN_LOSS_CE)
        return tsr_fail(TSR_ERR_INVALID_ARG, "distillation needs class labels (cross-entropy)");
    if (xt && yt) {
        tsr_train_loss l2 = loss;
        int64_t K2;
        TSR_TRY(check_targets(t, &l2, xt, yt, &K2));
    }
    sch.lr = (float)o->lr;
    sch.gamma = 0.1f;
    sch.step_epochs = (float)(o->epochs > 3 ? o->epochs / 3.0 : 1);
    sch.total_epochs = (float)o->epochs;
    tsr_optim *opt;
    TSR_TRY(tsr_optim_create(&opt, ok, t->n_params ? t->n_params : 1));
    opt->weight_decay = (float)o->weight_decay;
    const int64_t N = x->dims[0];
    const int bs = o->batch;
    int64_t *perm = malloc((size_t)N * sizeof *perm);
    if (!perm) {
        tsr_optim_free(opt);
        return tsr_fail(TSR_ERR_NOMEM, "out of memory");
    }
    tsr_prng rng;
    uint8_t key[TSR_SEED_BYTES] = { 0 };
    for (int i = 0; i < 8; i++) key[i] = (uint8_t)(o->seed >> (8 * i));
    tsr_prng_init(&rng, key, 11);
    t->range_weight = o->range_weight;
    /* the teacher runs through a trainer too: the same slices and convolution kernel */
    tsr_trainer *tt = NULL;
    if (o->teacher) {
        tsr_status ts = tsr_trainer_create(&tt, o->teacher);
        if (ts != TSR_OK) {
            free(perm);
            tsr_optim_free(opt);
            return tsr_fail_context(ts, "teacher: ");
        }
        tt->input_grad = 0;
    }
    int saved = t->input_grad;
    t->input_grad = 0;
    tsr_status st = TSR_OK;
    int64_t per_epoch = (N + bs - 1) / bs;
    if (o->max_batches > 0 && o->max_batches < per_epoch) per_epoch = o->max_batches;
    double ep_loss = 0, ep_range = 0;
    int steps = 0;
    for (int ep = 0; st == TSR_OK && ep < o->epochs; ep++) {
        shuffle(perm, N, &rng);
        double t0 = tsr_now();
        ep_loss = ep_range = 0;
        int64_t seen = 0;
        for (int64_t bi = 0; st == TSR_OK && bi < per_epoch; bi++) {
            int n = (int)(N - bi * bs < bs ? N - bi * bs : bs);
            tsr_array *xb = NULL, *yb = NULL, *dy = NULL;
            const tsr_array *out, *tout = NULL;
            st = gather(&xb, x, perm + bi * bs, n);
            if (st == TSR_OK) st = gather(&yb, y, perm + bi * bs, n);
            if (st == TSR_OK && tt) st = tsr_trainer_forward(tt, xb, &tout);
            if (st == TSR_OK && tout &&
                (tout->rank != 2 || tout->dims[0] != n || tout->dims[1] != K))
                st = tsr_fail(TSR_ERR_SHAPE,
                              "the teacher's output does not match the student's (%lld classes)",
                              (long long)K);
            if (st == TSR_OK) st = tsr_trainer_forward(t, xb, &out);
            if (st == TSR_OK) st = tsr_array_create(&dy, out->rank, out->dims);
            if (st == TSR_OK) {
                double L = batch_loss(loss, out, yb, tout, o->kd_temp, o->kd_alpha, dy, NULL);
                double R = t->range_weight > 0 ? t->range_loss : 0;
                if (!isfinite(L) || !isfinite(R))
                    st = tsr_fail(TSR_ERR_INVALID_ARG,
                                  "training diverged (loss %g at epoch %d, batch %lld): lower "
                                  "--lr",
                                  L, ep + 1, (long long)bi + 1);
                ep_loss += (L + o->range_weight * R) * n;
                ep_range += R * n;
                seen += n;
            }
            if (st == TSR_OK) {
                tsr_trainer_zero_grad(t);
                st = tsr_trainer_backward(t, dy);
            }
            if (st == TSR_OK) {
                float lr = tsr_sched_lr(&sch, ep + (double)bi / (double)per_epoch);
                if (t->n_params) tsr_optim_step(opt, t->params, t->grads, lr);
                steps++;
            }
            tsr_array_free(xb);
            tsr_array_free(yb);
            tsr_array_free(dy);
        }
        if (seen) {
            ep_loss /= (double)seen;
            ep_range /= (double)seen;
        }
        if (st == TSR_OK && o->progress)
            fprintf(stderr, "epoch %d/%d: loss %.5f, range loss %.3g (%.1f s)\n", ep + 1, o->epochs,
                    ep_loss, ep_range, tsr_now() - t0);
    }
    t->input_grad = saved;
    tsr_trainer_free(tt);
    free(perm);
    tsr_optim_free(opt);
    if (st != TSR_OK) return st;
    if (rep) {
        rep->train_loss = ep_loss;
        rep->range_loss = ep_range;
        rep->test_loss = rep->test_acc = NAN;
        rep->steps = steps;
    }
    if (xt && yt) {
        double tl, ta;
        TSR_TRY(tsr_trainer_evaluate(t, loss, xt, yt, bs, &tl, &ta));
        if (rep) {
            rep->test_loss = tl;
            rep->test_acc = ta;
        }
    }
    return TSR_OK;
}
