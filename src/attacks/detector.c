/*
 * attacks/detector.c - MalConv training loop, scoring, metrics and the
 * model file (attacks/detector.h).
 */
#include "attacks/detector.h"

#include "attacks/payload.h"

#include "core/alloc.h"
#include "core/error.h"
#include "core/io.h"
#include "core/progress.h"
#include "core/rng.h"
#include "tessera/core.h"
#include "train/optim.h"

#include <cblas.h>
#include <math.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#define MODEL_MAGIC   "TSRMCONV"
#define MODEL_VERSION 2u
#define MODEL_HEADER1 (8 + 4 + 5 * 4 + 8) /* version 1 */
#define MODEL_HEADER  (MODEL_HEADER1 + 4) /* version 2: + u32 val_permille */

tsr_detector_train_cfg tsr_detector_train_defaults(void) {
    tsr_detector_train_cfg c;
    memset(&c, 0, sizeof c);
    c.epochs = 4;
    c.batch = 16;
    c.lr = 1e-3f;
    c.seed = 1;
    c.adv_size = 2000;
    c.adv_steps = 4;
    c.adv_eps = 1.0f;
    return c;
}

static int nthreads(void) {
    int t = tsr_get_num_threads();
    return t < 1 ? 1 : t;
}

/* log(1 + e^x) without overflow. */
static double softplus(double x) {
    return x > 0 ? x + log1p(exp(-x)) : log1p(exp(x));
}

tsr_status tsr_detector_loss(const tsr_malconv *m, const tsr_detector_example *ex, size_t n,
                             double *loss) {
    TSR_REQUIRE(m && (ex || n == 0) && loss, "tsr_detector_loss: NULL argument");
    float *sc = tsr_alloc((n ? n : 1) * sizeof(float));
    if (!sc) return tsr_fail(TSR_ERR_NOMEM, "out of memory for %zu scores", n);
    tsr_status st = tsr_detector_scores(m, ex, n, sc);
    double sum = 0;
    for (size_t i = 0; st == TSR_OK && i < n; i++) {
        /* from the score: -log(s) or -log(1 - s), clamped like the logit path's float range */
        double s = sc[i] < 1e-30f ? 1e-30 : sc[i], r = 1 - (double)sc[i];
        sum += ex[i].label == 1 ? -log(s) : -log(r < 1e-30 ? 1e-30 : r);
    }
    tsr_free(sc);
    *loss = n ? sum / (double)n : 0;
    return st;
}

/* The seed of the attacked copy of example k at epoch e. */
static uint64_t adv_seed(uint64_t seed, int e, size_t k) {
    uint64_t x = seed * 0x9e3779b97f4a7c15ull ^ ((uint64_t)e << 32) ^ (uint64_t)k;
    x ^= x >> 31;
    return x * 0xbf58476d1ce4e5b9ull;
}

tsr_status tsr_detector_train(tsr_malconv *m, const tsr_detector_example *ex, size_t n,
                              const tsr_detector_train_cfg *cfg, double *final_loss) {
    tsr_detector_train_info info;
    tsr_status st = tsr_detector_fit(m, ex, n, cfg, &info);
    if (st == TSR_OK && final_loss) *final_loss = info.final_loss;
    return st;
}

tsr_status tsr_detector_fit(tsr_malconv *m, const tsr_detector_example *ex, size_t n,
                            const tsr_detector_train_cfg *cfg, tsr_detector_train_info *info) {
    TSR_REQUIRE(m && ex && cfg, "tsr_detector_fit: NULL argument");
    tsr_detector_train_info local;
    if (!info) info = &local;
    memset(info, 0, sizeof *info); /* zero on every return, INVALID_ARG included */
    float ls = cfg->label_smoothing;
    if (n == 0 || cfg->epochs < 1 || cfg->batch < 1 || !(cfg->lr > 0) || !(ls >= 0 && ls < 1) ||
        !(cfg->weight_decay >= 0) || cfg->patience < 0 || (cfg->nval && !cfg->val) ||
        !(cfg->adv_frac >= 0 && cfg->adv_frac <= 1) ||
        (cfg->adv_frac > 0 && (cfg->adv_size == 0 || cfg->adv_steps < 1 || !(cfg->adv_eps > 0))))
        return tsr_fail(TSR_ERR_INVALID_ARG,
                        "training needs examples, epochs >= 1, batch >= 1, lr > 0, label "
                        "smoothing in [0, 1), weight decay >= 0, patience >= 0, adversarial "
                        "fraction in [0, 1] (with a size, steps and eps > 0 when used)");
    openblas_set_num_threads(1);
    int T = nthreads();
    size_t P = m->nparams;
    tsr_status st = TSR_OK;
    float *grads = tsr_calloc_array((size_t)T * P, sizeof(float));
    size_t *perm = tsr_alloc(n * sizeof(size_t));
    double *loss_of = tsr_alloc(n * sizeof(double));
    uint8_t *adv = tsr_calloc_array(n, 1);
    float *best = cfg->nval ? tsr_alloc(P * sizeof(float)) : NULL;
    tsr_malconv_ws **ws = tsr_calloc_array((size_t)T, sizeof *ws);
    tsr_optim *opt = NULL;
    if (!grads || !perm || !loss_of || !adv || !ws || (cfg->nval && !best)) {
        st = tsr_fail(TSR_ERR_NOMEM, "out of memory for training buffers");
        goto done;
    }
    for (int t = 0; t < T && st == TSR_OK; t++) st = tsr_malconv_ws_create(&ws[t], m);
    if (st == TSR_OK)
        st = tsr_optim_create(&opt, cfg->weight_decay > 0 ? TSR_OPT_ADAMW : TSR_OPT_ADAM, P);
    if (st != TSR_OK) goto done;
    opt->weight_decay = cfg->weight_decay;
    uint8_t seed[TSR_SEED_BYTES] = { 0 };
    for (int i = 0; i < 8; i++) seed[i] = (uint8_t)(cfg->seed >> (8 * i));
    tsr_prng g;
    tsr_prng_init(&g, seed, 0x747261696eull); /* "train" */
    for (size_t i = 0; i < n; i++) perm[i] = i;
    size_t steps = (n + (size_t)cfg->batch - 1) / (size_t)cfg->batch;
    tsr_progress pr;
    if (cfg->verbose)
        tsr_progress_begin(&pr, "train MalConv", (uint64_t)cfg->epochs * steps, "step");
    double epoch_loss = 0, best_val = INFINITY;
    int since_best = 0;
    size_t nadv = 0;
    for (int e = 0; e < cfg->epochs && st == TSR_OK; e++) {
        for (size_t i = n - 1; i > 0; i--) { /* Fisher-Yates */
            size_t j = (size_t)tsr_prng_uniform(&g, i + 1), x = perm[i];
            perm[i] = perm[j];
            perm[j] = x;
        }
        epoch_loss = 0;
        int adv_on = cfg->adv_frac > 0 && e + 1 >= cfg->adv_from;
        for (size_t k = 0; k < n; k++) /* drawn serially: the same for any thread count */
            adv[k] = adv_on && ex[perm[k]].label == 1 && tsr_prng_double(&g) < cfg->adv_frac;
        for (size_t s = 0; s < steps && st == TSR_OK; s++) {
            size_t b0 = s * (size_t)cfg->batch,
                   b1 = b0 + (size_t)cfg->batch < n ? b0 + (size_t)cfg->batch : n, B = b1 - b0;
            int fail = 0;
            size_t made = 0;
#pragma omp parallel for num_threads(T) schedule(static, 1) reduction(| : fail) reduction(+ : made)
            for (int t = 0; t < T; t++) {
                float *gt = grads + (size_t)t * P;
                memset(gt, 0, P * sizeof(float));
                size_t lo = b0 + B * (size_t)t / (size_t)T,
                       hi = b0 + B * (size_t)(t + 1) / (size_t)T;
                for (size_t k = lo; k < hi; k++) {
                    const tsr_detector_example *x = &ex[perm[k]];
                    const uint8_t *buf = x->buf;
                    size_t len = x->len;
                    uint8_t *att = NULL;
                    if (adv[k]) { /* the attack against the model as it is now */
                        tsr_payload_cfg pc = { TSR_PLACE_OVERLAY,
                                               cfg->adv_size,
                                               cfg->adv_steps,
                                               cfg->adv_eps,
                                               0.5f,
                                               0,
                                               cfg->adv_routed,
                                               cfg->adv_greedy,
                                               0,
                                               0 };
                        pc.seed = adv_seed(cfg->seed, e, perm[k]);
                        tsr_payload_result r;
                        size_t alen;
                        tsr_status as = tsr_payload_attack(m, x->buf, x->len, &pc, &att, &alen, &r);
                        if (as == TSR_OK) {
                            buf = att, len = alen;
                            made++;
                        } else if (as == TSR_ERR_NOMEM) {
                            fail = 1;
                            break;
                        } /* a file the PE reader refuses is trained on as it is */
                    }
                    float logit;
                    tsr_status fs = tsr_malconv_forward_bytes(m, ws[t], buf, len, &logit);
                    tsr_free(att);
                    if (fs != TSR_OK) {
                        fail = 1;
                        break;
                    }
                    double y = x->label == 1 ? 1.0 - ls / 2.0 : ls / 2.0;
                    loss_of[k] = softplus(logit) - y * (double)logit;
                    float d = (tsr_sigmoidf(logit) - (float)y) / (float)B;
                    tsr_malconv_backward(m, ws[t], d, gt, NULL);
                }
            }
            if (fail) {
                st = tsr_fail(TSR_ERR_NOMEM, "out of memory in a training step");
                break;
            }
            nadv += made;
            for (int t = 1; t < T; t++)
                cblas_saxpy((int)P, 1.0f, grads + (size_t)t * P, 1, grads, 1);
            tsr_optim_step(opt, m->params, grads, cfg->lr);
            double bl = 0;
            for (size_t k = b0; k < b1; k++) bl += loss_of[k];
            epoch_loss += bl;
            if (cfg->verbose)
                tsr_progress_update(&pr, (uint64_t)e * steps + s + 1, "epoch %d loss %.4f", e + 1,
                                    bl / (double)B);
        }
        if (st != TSR_OK) break;
        epoch_loss /= (double)n;
        info->epochs_run = e + 1;
        info->final_loss = epoch_loss;
        if (!cfg->nval) {
            info->best_epoch = e + 1;
            continue;
        }
        double vl;
        st = tsr_detector_loss(m, cfg->val, cfg->nval, &vl);
        if (st != TSR_OK) break;
        if (cfg->verbose)
            fprintf(stderr, "\nepoch %d: training loss %.4f, validation loss %.4f%s\n", e + 1,
                    epoch_loss, vl, vl < best_val ? " (best)" : "");
        if (vl < best_val) {
            best_val = vl;
            info->best_epoch = e + 1;
            info->best_val_loss = vl;
            memcpy(best, m->params, P * sizeof(float));
            since_best = 0;
        } else if (cfg->patience && ++since_best >= cfg->patience)
            break;
    }
    if (st == TSR_OK && best) memcpy(m->params, best, P * sizeof(float));
    info->adv_examples = nadv;
    if (cfg->verbose) tsr_progress_end(&pr, "last epoch loss %.4f", epoch_loss);
    tsr_prng_wipe(&g);
done:
    if (ws)
        for (int t = 0; t < T; t++) tsr_malconv_ws_free(ws[t]);
    tsr_free(ws);
    tsr_optim_free(opt);
    tsr_free(grads);
    tsr_free(perm);
    tsr_free(loss_of);
    tsr_free(adv);
    tsr_free(best);
    return st;
}

tsr_status tsr_detector_scores(const tsr_malconv *m, const tsr_detector_example *ex, size_t n,
                               float *scores) {
    openblas_set_num_threads(1);
    int T = nthreads(), fail = 0;
    (void)T; /* unused without OpenMP */
#pragma omp parallel num_threads(T) reduction(| : fail)
    {
        tsr_malconv_ws *ws = NULL;
        if (tsr_malconv_ws_create(&ws, m) != TSR_OK) fail = 1;
#pragma omp for schedule(dynamic, 1)
        for (size_t i = 0; i < n; i++) {
            float logit = 0;
            if (ws && tsr_malconv_forward_bytes(m, ws, ex[i].buf, ex[i].len, &logit) != TSR_OK)
                fail = 1;
            scores[i] = tsr_sigmoidf(logit);
        }
        tsr_malconv_ws_free(ws);
    }
    if (fail) return tsr_fail(TSR_ERR_NOMEM, "out of memory while scoring %zu files", n);
    return TSR_OK;
}

static int cmp_score(const void *a, const void *b) {
    float x = *(const float *)a, y = *(const float *)b;
    return x < y ? -1 : x > y;
}

static int cmp_float_desc(const void *a, const void *b) {
    float x = *(const float *)a, y = *(const float *)b;
    return (x < y) - (x > y);
}

tsr_status tsr_detector_threshold_for_fpr(const float *scores, const int *labels, size_t n,
                                          double fpr, float *threshold, size_t *fp) {
    TSR_REQUIRE(scores && labels && threshold && fp, "tsr_detector_threshold_for_fpr: NULL");
    if (!(fpr >= 0 && fpr < 1))
        return tsr_fail(TSR_ERR_INVALID_ARG, "target false-positive rate %g not in [0, 1)", fpr);
    size_t neg = 0;
    for (size_t i = 0; i < n; i++) neg += labels[i] != 1;
    if (neg == 0) return tsr_fail(TSR_ERR_INVALID_ARG, "no clean file to set a threshold on");
    float *c = malloc(neg * sizeof(float));
    if (!c) return tsr_fail(TSR_ERR_NOMEM, "out of memory");
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        if (labels[i] != 1) c[k++] = scores[i];
    qsort(c, neg, sizeof(float), cmp_float_desc);
    size_t allow = (size_t)floor(fpr * (double)neg); /* < neg since fpr < 1 */
    float t = nextafterf(c[allow], 2.0f);
    free(c);
    if (!(t < 1.0f))
        return tsr_fail(TSR_ERR_INVALID_ARG,
                        "a false-positive rate of %g needs a threshold of 1 or more on these "
                        "scores",
                        fpr);
    size_t f = 0;
    for (size_t i = 0; i < n; i++) f += labels[i] != 1 && scores[i] >= t;
    *threshold = t;
    *fp = f;
    return TSR_OK;
}

void tsr_detector_metrics_compute(const float *scores, const int *labels, size_t n,
                                  double threshold, tsr_detector_metrics *o) {
    memset(o, 0, sizeof *o);
    o->n = n;
    size_t tp = 0, fp = 0, correct = 0;
    for (size_t i = 0; i < n; i++) {
        int flag = scores[i] >= threshold;
        o->pos += labels[i] == 1;
        tp += flag && labels[i] == 1;
        fp += flag && labels[i] != 1;
        correct += flag == (labels[i] == 1);
    }
    o->neg = n - o->pos;
    o->accuracy = n ? (double)correct / (double)n : 0;
    o->tpr = o->pos ? (double)tp / (double)o->pos : 0;
    o->fpr = o->neg ? (double)fp / (double)o->neg : 0;
    /* AUC = P(score of a flagged file > score of a clean one) + P(tie) / 2, via sorted ranks. */
    float *neg = malloc((o->neg ? o->neg : 1) * sizeof(float));
    if (!neg || !o->pos || !o->neg) {
        free(neg);
        o->auc = 0;
        return;
    }
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        if (labels[i] != 1) neg[k++] = scores[i];
    qsort(neg, o->neg, sizeof(float), cmp_score);
    double sum = 0;
    for (size_t i = 0; i < n; i++) {
        if (labels[i] != 1) continue;
        size_t lo = 0, hi = o->neg; /* first index with neg >= score */
        while (lo < hi) {
            size_t mid = (lo + hi) / 2;
            if (neg[mid] < scores[i])
                lo = mid + 1;
            else
                hi = mid;
        }
        size_t below = lo, eq = lo;
        while (eq < o->neg && neg[eq] == scores[i]) eq++;
        sum += (double)below + 0.5 * (double)(eq - below);
    }
    o->auc = sum / ((double)o->pos * (double)o->neg);
    free(neg);
}

/* ---- model file ------------------------------------------------------------ */

static void put_u32(uint8_t *p, uint32_t v) {
    for (int k = 0; k < 4; k++) p[k] = (uint8_t)(v >> (8 * k));
}
static uint32_t get_u32(const uint8_t *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

tsr_status tsr_malconv_save(const tsr_malconv *m, const char *path, unsigned flags) {
    size_t len = MODEL_HEADER + m->nparams * 4 + 32;
    uint8_t *b = tsr_alloc(len);
    if (!b) return tsr_fail(TSR_ERR_NOMEM, "out of memory for a %zu-byte model file", len);
    memcpy(b, MODEL_MAGIC, 8);
    put_u32(b + 8, MODEL_VERSION);
    const tsr_malconv_cfg *c = &m->cfg;
    put_u32(b + 12, (uint32_t)c->emb);
    put_u32(b + 16, (uint32_t)c->filters);
    put_u32(b + 20, (uint32_t)c->window);
    put_u32(b + 24, (uint32_t)c->hidden);
    put_u32(b + 28, c->max_len);
    put_u32(b + 32, (uint32_t)m->nparams);
    put_u32(b + 36, (uint32_t)((uint64_t)m->nparams >> 32));
    put_u32(b + 40, m->val_permille >= 0 ? (uint32_t)m->val_permille : 0xffffffffu);
    for (size_t i = 0; i < m->nparams; i++) {
        uint32_t u;
        memcpy(&u, &m->params[i], 4);
        put_u32(b + MODEL_HEADER + 4 * i, u);
    }
    crypto_generichash(b + len - 32, 32, b, len - 32, NULL, 0);
    tsr_writer w;
    tsr_status st = tsr_writer_open_file(&w, path, flags);
    if (st == TSR_OK) {
        tsr_write_bytes(&w, b, len);
        st = tsr_writer_close(&w);
    }
    tsr_free(b);
    return st;
}

tsr_status tsr_malconv_parse(tsr_malconv **out, const uint8_t *b, size_t len) {
    *out = NULL;
    if (len < MODEL_HEADER1 + 32 || memcmp(b, MODEL_MAGIC, 8) != 0)
        return tsr_fail(TSR_ERR_FORMAT, "not a Tessera MalConv model file (no TSRMCONV header)");
    uint32_t ver = get_u32(b + 8);
    if (ver != 1 && ver != MODEL_VERSION)
        return tsr_fail(TSR_ERR_VERSION, "MalConv model file version %u; this build reads 1 and %u",
                        ver, MODEL_VERSION);
    size_t hdr = ver == 1 ? MODEL_HEADER1 : MODEL_HEADER;
    if (len < hdr + 32)
        return tsr_fail(TSR_ERR_FORMAT, "MalConv model file: %zu bytes, shorter than its header",
                        len);
    uint32_t vp = ver == 1 ? 0xffffffffu : get_u32(b + 40);
    if (vp > 1000 && vp != 0xffffffffu)
        return tsr_fail(TSR_ERR_FORMAT, "MalConv model file: validation split %u per mille", vp);
    tsr_malconv_cfg c;
    uint32_t d = get_u32(b + 12), f = get_u32(b + 16), k = get_u32(b + 20), h = get_u32(b + 24);
    if (d > (1u << 20) || f > (1u << 20) || k > (1u << 20) || h > (1u << 20))
        return tsr_fail(TSR_ERR_FORMAT, "MalConv model sizes out of range");
    c.emb = (int)d, c.filters = (int)f, c.window = (int)k, c.hidden = (int)h;
    c.max_len = get_u32(b + 28);
    uint64_t np = (uint64_t)get_u32(b + 32) | (uint64_t)get_u32(b + 36) << 32;
    /* the parameter count the sizes imply, before anything is allocated */
    uint64_t want = 257ull * d + 2ull * f * k * d + 2ull * f + (uint64_t)h * f + 2ull * h + 1;
    if (np != want || (len - hdr - 32) / 4 != np || (len - hdr - 32) % 4)
        return tsr_fail(TSR_ERR_FORMAT,
                        "MalConv model file: %llu parameters declared, the sizes need %llu and "
                        "the file holds %zu bytes",
                        (unsigned long long)np, (unsigned long long)want, len);
#ifndef FUZZING_BUILD_MODE_UNSAFE_FOR_PRODUCTION /* as the frame reader: let fuzz_malconv past */
    uint8_t hash[32];
    crypto_generichash(hash, 32, b, len - 32, NULL, 0);
    if (sodium_memcmp(hash, b + len - 32, 32) != 0)
        return tsr_fail(TSR_ERR_CHECKSUM, "MalConv model file is corrupted (checksum mismatch)");
#endif
    tsr_malconv *m;
    tsr_status st = tsr_malconv_create(&m, &c, 0);
    if (st == TSR_ERR_INVALID_ARG) {
        char why[256];
        snprintf(why, sizeof why, "%s", tsr_last_error());
        return tsr_fail(TSR_ERR_FORMAT, "MalConv model file: %s", why);
    }
    TSR_TRY(st);
    if (m->nparams != np) {
        tsr_malconv_free(m);
        return tsr_fail(TSR_ERR_INTERNAL, "MalConv parameter count disagrees with the layout");
    }
    for (size_t i = 0; i < m->nparams; i++) {
        uint32_t u = get_u32(b + hdr + 4 * i);
        memcpy(&m->params[i], &u, 4);
        if (!isfinite(m->params[i])) {
            tsr_malconv_free(m);
            return tsr_fail(TSR_ERR_FORMAT, "MalConv model parameter %zu is not finite", i);
        }
    }
    m->val_permille = vp == 0xffffffffu ? -1 : (int32_t)vp;
    *out = m;
    return TSR_OK;
}

tsr_status tsr_malconv_load(tsr_malconv **m, const char *path) {
    uint8_t *b;
    size_t len;
    TSR_TRY(tsr_read_whole_file(path, 1u << 30, "a MalConv model", &b, &len));
    tsr_status st = tsr_malconv_parse(m, b, len);
    tsr_free(b);
    if (st != TSR_OK) return tsr_fail_context(st, "%s: ", path);
    return TSR_OK;
}
