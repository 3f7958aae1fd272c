/*
 * attacks/features.c - byte histogram + PE features (attacks/features.h).
 */
#include "attacks/features.h"

#include "attacks/detector.h"
#include "attacks/payload.h"
#include "attacks/pe.h"
#include "core/alloc.h"
#include "core/error.h"
#include "train/data.h"
#include "train/model.h"
#include "train/train.h"

#include <math.h>
#include <string.h>

tsr_status tsr_pe_features(const uint8_t *buf, size_t len, float *out) {
    memset(out, 0, TSR_FEAT_DIM * sizeof(float));
    size_t cnt[256] = { 0 };
    for (size_t i = 0; i < len; i++) cnt[buf[i]]++;
    for (int v = 0; v < 256; v++) out[v] = len ? (float)sqrt((double)cnt[v] / (double)len) : 0;
    out[256] = (float)(log2((double)len + 1) / 24);
    out[257] = (float)(tsr_byte_entropy(buf, len) / 8);
    tsr_pe pe;
    tsr_status st = tsr_pe_parse(&pe, buf, len);
    if (st == TSR_ERR_NOMEM) return st;
    if (st != TSR_OK) return TSR_OK; /* not a PE file: histogram and size only */
    out[258] = 1;
    out[259] = (float)pe.nsections / 16;
    uint64_t ov = len > pe.overlay_off ? len - pe.overlay_off : 0;
    out[260] = len ? (float)((double)ov / (double)len) : 0;
    out[261] = (float)(log2((double)ov + 1) / 24);
    out[262] = (float)pe.nimports / 32;
    out[263] = (float)pe.nfuncs / 512;
    double emax = 0, esum = 0;
    uint64_t exec = 0;
    int wx = 0;
    for (uint32_t k = 0; k < pe.nsections; k++) {
        const tsr_pe_section *s = &pe.sec[k];
        uint64_t used = s->vsize && s->vsize < s->raw_size ? s->vsize : s->raw_size;
        if (s->raw_ptr >= len)
            used = 0;
        else if (used > len - s->raw_ptr)
            used = len - s->raw_ptr;
        double e = tsr_byte_entropy(buf + (used ? s->raw_ptr : 0), used);
        emax = e > emax ? e : emax;
        esum += e;
        if (s->characteristics & 0x20000000u) exec += used;
        if ((s->characteristics & 0xa0000000u) == 0xa0000000u) wx = 1;
    }
    out[264] = (float)(emax / 8);
    out[265] = pe.nsections ? (float)(esum / pe.nsections / 8) : 0;
    out[266] = len ? (float)((double)exec / (double)len) : 0;
    out[267] = (float)wx;
    uint64_t slack = 0;
    for (uint32_t r = 0; r < pe.nslack; r++) slack += pe.slack[r].len;
    out[268] = len ? (float)((double)slack / (double)len) : 0;
    out[269] = pe.checksum != 0;
    if (pe.nsections) {
        const tsr_pe_section *s = &pe.sec[0];
        out[270] =
            pe.entry >= s->vaddr && pe.entry - s->vaddr < (s->vsize ? s->vsize : s->raw_size);
    }
    uint32_t nd = 0;
    for (uint32_t d = 0; d < pe.ndirs; d++) nd += pe.dirs[d].size != 0;
    out[271] = (float)nd / 16;
    tsr_pe_free(&pe);
    return TSR_OK;
}

/* ---- the MLP ------------------------------------------------------------------ */

struct tsr_feat_mlp {
    tsr_model *m;
    float mean[TSR_FEAT_DIM], inv_std[TSR_FEAT_DIM];
};

tsr_feat_mlp_cfg tsr_feat_mlp_defaults(void) {
    tsr_feat_mlp_cfg c = { 64, 40, 32, 1e-3f, 1 };
    return c;
}

/* Standardised features of n examples into x (n, TSR_FEAT_DIM). */
static tsr_status features_of(const tsr_feat_mlp *f, const tsr_detector_example *ex, size_t n,
                              float *x) {
    int fail = 0;
#pragma omp parallel for schedule(dynamic, 4) reduction(| : fail)
    for (size_t i = 0; i < n; i++) {
        float *r = x + i * TSR_FEAT_DIM;
        if (tsr_pe_features(ex[i].buf, ex[i].len, r) != TSR_OK) {
            fail = 1;
            continue;
        }
        if (f)
            for (int k = 0; k < TSR_FEAT_DIM; k++) r[k] = (r[k] - f->mean[k]) * f->inv_std[k];
    }
    return fail ? tsr_fail(TSR_ERR_NOMEM, "out of memory for file features") : TSR_OK;
}

void tsr_feat_mlp_free(tsr_feat_mlp *f) {
    if (!f) return;
    tsr_model_free(f->m);
    tsr_free(f);
}

tsr_status tsr_feat_mlp_train(tsr_feat_mlp **out, const tsr_detector_example *ex, size_t n,
                              const tsr_feat_mlp_cfg *cfg) {
    TSR_REQUIRE(out && ex && cfg, "tsr_feat_mlp_train: NULL argument");
    *out = NULL;
    size_t pos = 0;
    for (size_t i = 0; i < n; i++) pos += ex[i].label == 1;
    if (n < 2 || pos == 0 || pos == n || n > (1u << 30) || cfg->hidden < 1 || cfg->epochs < 1 ||
        cfg->batch < 1 || !(cfg->lr > 0))
        return tsr_fail(TSR_ERR_INVALID_ARG, "the feature MLP needs files of both classes, "
                                             "hidden, epochs, batch >= 1 and lr > 0");
    tsr_feat_mlp *f = tsr_calloc(sizeof *f);
    float *x = tsr_alloc(n * TSR_FEAT_DIM * sizeof(float));
    int32_t *y = tsr_alloc(n * sizeof(int32_t));
    tsr_status st = f && x && y ? TSR_OK : tsr_fail(TSR_ERR_NOMEM, "out of memory");
    if (st == TSR_OK) st = features_of(NULL, ex, n, x);
    if (st == TSR_OK) {
        for (int k = 0; k < TSR_FEAT_DIM; k++) {
            double s = 0, q = 0;
            for (size_t i = 0; i < n; i++) s += x[i * TSR_FEAT_DIM + k];
            double mu = s / (double)n;
            for (size_t i = 0; i < n; i++) {
                double d = x[i * TSR_FEAT_DIM + k] - mu;
                q += d * d;
            }
            double sd = sqrt(q / (double)n);
            f->mean[k] = (float)mu;
            f->inv_std[k] = sd > 1e-6 ? (float)(1 / sd) : 1.0f;
        }
        for (size_t i = 0; i < n; i++) {
            float *r = x + i * TSR_FEAT_DIM;
            for (int k = 0; k < TSR_FEAT_DIM; k++) r[k] = (r[k] - f->mean[k]) * f->inv_std[k];
            y[i] = ex[i].label == 1;
        }
    }
    tsr_dataset ds;
    memset(&ds, 0, sizeof ds);
    if (st == TSR_OK) st = tsr_dataset_from_arrays(&ds, x, y, (int)n, 1, 1, TSR_FEAT_DIM, 2);
    int t = 0;
    tsr_act_spec relu;
    tsr_act_default(&relu, TSR_ACT_RELU, 0);
    if (st == TSR_OK) st = tsr_model_create(&f->m, 1, 1, TSR_FEAT_DIM);
    if (st == TSR_OK) st = tsr_model_add_flatten(f->m, &t, "flatten", t);
    if (st == TSR_OK) st = tsr_model_add_dense(f->m, &t, "fc1", t, cfg->hidden, 1);
    if (st == TSR_OK) st = tsr_model_add_act(f->m, &t, "relu", t, &relu);
    if (st == TSR_OK) st = tsr_model_add_dense(f->m, &t, "fc2", t, 2, 1);
    if (st == TSR_OK) st = tsr_model_finish(f->m, t);
    if (st == TSR_OK) st = tsr_model_init(f->m, cfg->seed);
    if (st == TSR_OK) {
        tsr_train_config tc;
        tsr_train_config_default(&tc);
        tc.epochs = cfg->epochs;
        tc.batch = cfg->batch;
        tc.lr = cfg->lr;
        tc.weight_decay = 1e-4f;
        tc.seed = cfg->seed;
        st = tsr_train_run(f->m, &tc, &ds, NULL, NULL);
    }
    tsr_dataset_free(&ds);
    tsr_free(x);
    tsr_free(y);
    if (st != TSR_OK) {
        tsr_feat_mlp_free(f);
        return st;
    }
    *out = f;
    return TSR_OK;
}

tsr_status tsr_feat_mlp_scores(tsr_feat_mlp *f, const tsr_detector_example *ex, size_t n,
                               float *scores) {
    TSR_REQUIRE(f && (ex || n == 0) && scores, "tsr_feat_mlp_scores: NULL argument");
    if (n == 0) return TSR_OK;
    float *x = tsr_alloc(n * TSR_FEAT_DIM * sizeof(float));
    if (!x) return tsr_fail(TSR_ERR_NOMEM, "out of memory");
    tsr_status st = features_of(f, ex, n, x);
    tsr_model_set_training(f->m, 0);
    for (size_t b0 = 0; st == TSR_OK && b0 < n; b0 += 256) {
        int B = (int)(n - b0 < 256 ? n - b0 : 256);
        st = tsr_model_forward(f->m, x + b0 * TSR_FEAT_DIM, B);
        const float *o = tsr_model_output(f->m);
        for (int i = 0; st == TSR_OK && i < B; i++) {
            double d = (double)o[2 * i + 1] - o[2 * i]; /* softmax of 2 = sigmoid of the gap */
            scores[b0 + (size_t)i] = (float)(1 / (1 + exp(-d)));
        }
    }
    tsr_free(x);
    return st;
}
