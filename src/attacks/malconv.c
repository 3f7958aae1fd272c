/*
 * attacks/malconv.c - MalConv forward and backward (attacks/malconv.h): the
 * embedding gather, the gated convolution as one SGEMM through the training
 * engine's dense kernel, global max pooling with first-index ties, and the
 * two dense layers through the same kernels.
 */
#include "attacks/malconv.h"
#include "attacks/malconv_ws.h"

#include "core/alloc.h"
#include "core/error.h"
#include "core/rng.h"
#include "train/layers.h"

#include <math.h>
#include <string.h>

float tsr_sigmoidf(float x) {
    if (x >= 0) return 1.0f / (1.0f + expf(-x));
    float e = expf(x);
    return e / (1.0f + e);
}

tsr_malconv_cfg tsr_malconv_paper_cfg(void) {
    tsr_malconv_cfg c = { 8, 128, 500, 128, 0 };
    c.max_len = ((1u << 20) + 499) / 500 * 500;
    return c;
}

static int cfg_ok(const tsr_malconv_cfg *c) {
    if (c->emb <= 0 || c->filters <= 0 || c->window <= 0 || c->hidden <= 0) return 0;
    if ((uint64_t)c->window * (uint64_t)c->emb > (1u << 20) || c->filters > (1 << 19)) return 0;
    if (c->hidden > (1 << 20)) return 0;
    return c->max_len > 0 && c->max_len <= (1u << 26) && c->max_len % (uint32_t)c->window == 0;
}

tsr_status tsr_malconv_create(tsr_malconv **out, const tsr_malconv_cfg *cfg, uint64_t seed) {
    TSR_REQUIRE(out && cfg, "tsr_malconv_create: NULL argument");
    *out = NULL;
    if (!cfg_ok(cfg))
        return tsr_fail(TSR_ERR_INVALID_ARG,
                        "MalConv sizes D=%d F=%d K=%d H=%d max_len=%u are invalid: all positive, "
                        "max_len a multiple of K up to 2^26",
                        cfg->emb, cfg->filters, cfg->window, cfg->hidden, cfg->max_len);
    size_t D = (size_t)cfg->emb, F = (size_t)cfg->filters, K = (size_t)cfg->window,
           H = (size_t)cfg->hidden;
    tsr_malconv *m = tsr_calloc(sizeof *m);
    if (!m) return tsr_fail(TSR_ERR_NOMEM, "out of memory for a MalConv model");
    m->cfg = *cfg;
    m->val_permille = -1;
    size_t o = 0;
    m->off.E = o, o += TSR_MALCONV_VOCAB * D;
    m->off.Wc = o, o += 2 * F * K * D;
    m->off.bc = o, o += 2 * F;
    m->off.W1 = o, o += H * F;
    m->off.b1 = o, o += H;
    m->off.W2 = o, o += H;
    m->off.b2 = o, o += 1;
    m->nparams = o;
    m->params = tsr_calloc_array(o, sizeof(float));
    if (!m->params) {
        tsr_free(m);
        return tsr_fail(TSR_ERR_NOMEM, "out of memory for %zu MalConv parameters", o);
    }
    uint8_t s[TSR_SEED_BYTES] = { 0 };
    for (int i = 0; i < 8; i++) s[i] = (uint8_t)(seed >> (8 * i));
    tsr_prng g;
    tsr_prng_init(&g, s, 0x6d616c636f6e76ull); /* "malconv" */
    float *p = m->params;
    for (size_t i = 0; i < TSR_MALCONV_VOCAB * D; i++) p[m->off.E + i] = (float)tsr_prng_normal(&g);
    double bc = 1.0 / sqrt((double)(K * D)), b1 = 1.0 / sqrt((double)F), b2 = 1.0 / sqrt((double)H);
    for (size_t i = 0; i < 2 * F * K * D + 2 * F; i++)
        p[m->off.Wc + i] = (float)((2 * tsr_prng_double(&g) - 1) * bc); /* Wc then bc */
    for (size_t i = 0; i < H * F + H; i++)
        p[m->off.W1 + i] = (float)((2 * tsr_prng_double(&g) - 1) * b1); /* W1 then b1 */
    for (size_t i = 0; i < H + 1; i++)
        p[m->off.W2 + i] = (float)((2 * tsr_prng_double(&g) - 1) * b2); /* W2 then b2 */
    tsr_prng_wipe(&g);
    *out = m;
    return TSR_OK;
}

void tsr_malconv_free(tsr_malconv *m) {
    if (!m) return;
    tsr_free(m->params);
    tsr_free(m);
}

tsr_status tsr_malconv_ws_create(tsr_malconv_ws **out, const tsr_malconv *m) {
    TSR_REQUIRE(out && m, "tsr_malconv_ws_create: NULL argument");
    size_t F = (size_t)m->cfg.filters, H = (size_t)m->cfg.hidden,
           KD = (size_t)m->cfg.window * (size_t)m->cfg.emb;
    tsr_malconv_ws *w = tsr_calloc(sizeof *w);
    if (!w) return tsr_fail(TSR_ERR_NOMEM, "out of memory for a MalConv workspace");
    w->z = tsr_alloc(F * sizeof(float));
    w->dz = tsr_alloc(F * sizeof(float));
    w->arg = tsr_alloc(F * sizeof(int32_t));
    w->order = tsr_alloc(F * sizeof(int32_t));
    w->hpre = tsr_alloc(H * sizeof(float));
    w->h = tsr_alloc(H * sizeof(float));
    w->dh = tsr_alloc(H * sizeof(float));
    w->dX = tsr_alloc(KD * sizeof(float));
    if (!w->z || !w->dz || !w->arg || !w->order || !w->hpre || !w->h || !w->dh || !w->dX) {
        tsr_malconv_ws_free(w);
        return tsr_fail(TSR_ERR_NOMEM, "out of memory for a MalConv workspace");
    }
    *out = w;
    return TSR_OK;
}

void tsr_malconv_ws_free(tsr_malconv_ws *w) {
    if (!w) return;
    tsr_free(w->tok);
    tsr_free(w->X);
    tsr_free(w->C);
    tsr_free(w->z);
    tsr_free(w->arg);
    tsr_free(w->order);
    tsr_free(w->hpre);
    tsr_free(w->h);
    tsr_free(w->dz);
    tsr_free(w->dh);
    tsr_free(w->dX);
    tsr_free(w);
}

/* Size the buffers for n input positions; sets n, T, pad_row. */
static tsr_status ws_reserve(const tsr_malconv *m, tsr_malconv_ws *w, size_t n) {
    size_t K = (size_t)m->cfg.window, D = (size_t)m->cfg.emb, F = (size_t)m->cfg.filters;
    size_t nw = (n + K - 1) / K;
    w->n = n;
    w->pad_row = nw * K < m->cfg.max_len;
    w->T = nw + (size_t)w->pad_row;
    if (w->T > w->cap_rows) {
        tsr_free(w->tok);
        tsr_free(w->X);
        tsr_free(w->C);
        w->tok = tsr_alloc(w->T * K * sizeof(uint16_t));
        w->X = tsr_alloc(w->T * K * D * sizeof(float));
        w->C = tsr_alloc(w->T * 2 * F * sizeof(float));
        w->cap_rows = w->T;
        if (!w->tok || !w->X || !w->C) {
            w->cap_rows = 0;
            return tsr_fail(TSR_ERR_NOMEM, "out of memory for a MalConv input of %zu bytes", n);
        }
    }
    return TSR_OK;
}

/* Everything after X is filled: convolution, gate, max pool, dense layers. */
static float forward_tail(const tsr_malconv *m, tsr_malconv_ws *w) {
    size_t F = (size_t)m->cfg.filters, H = (size_t)m->cfg.hidden,
           KD = (size_t)m->cfg.window * (size_t)m->cfg.emb;
    const float *p = m->params;
    tsr_dense_forward(w->C, w->X, p + m->off.Wc, p + m->off.bc, (int)w->T, (int)KD, (int)(2 * F));
    for (size_t f = 0; f < F; f++) {
        float best = 0;
        int32_t arg = -1;
        for (size_t t = 0; t < w->T; t++) {
            const float *c = w->C + t * 2 * F;
            float g = c[f] * tsr_sigmoidf(c[F + f]);
            if (arg < 0 || g > best) best = g, arg = (int32_t)t;
        }
        w->z[f] = best;
        w->arg[f] = arg;
    }
    tsr_dense_forward(w->hpre, w->z, p + m->off.W1, p + m->off.b1, 1, (int)F, (int)H);
    for (size_t i = 0; i < H; i++) w->h[i] = w->hpre[i] > 0 ? w->hpre[i] : 0;
    float logit;
    tsr_dense_forward(&logit, w->h, p + m->off.W2, p + m->off.b2, 1, (int)H, 1);
    return logit;
}

tsr_status tsr_malconv_forward_bytes(const tsr_malconv *m, tsr_malconv_ws *w, const uint8_t *buf,
                                     size_t len, float *logit) {
    size_t n = len < m->cfg.max_len ? len : m->cfg.max_len;
    TSR_TRY(ws_reserve(m, w, n));
    size_t K = (size_t)m->cfg.window, D = (size_t)m->cfg.emb;
    const float *E = m->params + m->off.E;
    for (size_t q = 0; q < w->T * K; q++) {
        uint16_t t = q < n ? buf[q] : TSR_MALCONV_PAD;
        w->tok[q] = t;
        memcpy(w->X + q * D, E + (size_t)t * D, D * sizeof(float));
    }
    w->have_tok = 1;
    *logit = forward_tail(m, w);
    return TSR_OK;
}

tsr_status tsr_malconv_forward_emb(const tsr_malconv *m, tsr_malconv_ws *w, const float *Z,
                                   size_t n, float *logit) {
    TSR_REQUIRE(n <= m->cfg.max_len, "tsr_malconv_forward_emb: n > max_len");
    TSR_TRY(ws_reserve(m, w, n));
    size_t K = (size_t)m->cfg.window, D = (size_t)m->cfg.emb;
    const float *pad = m->params + m->off.E + (size_t)TSR_MALCONV_PAD * D;
    if (n) memcpy(w->X, Z, n * D * sizeof(float));
    for (size_t q = n; q < w->T * K; q++) memcpy(w->X + q * D, pad, D * sizeof(float));
    w->have_tok = 0;
    *logit = forward_tail(m, w);
    return TSR_OK;
}

void tsr_malconv_backward(const tsr_malconv *m, tsr_malconv_ws *w, float dlogit, float *grads,
                          float *dZ) {
    size_t F = (size_t)m->cfg.filters, H = (size_t)m->cfg.hidden, K = (size_t)m->cfg.window,
           D = (size_t)m->cfg.emb, KD = K * D;
    const float *p = m->params;
    float *g = grads;
    /* dense H -> 1 and ReLU */
    memset(w->dh, 0, H * sizeof(float));
    tsr_dense_backward(w->dh, g ? g + m->off.W2 : NULL, g ? g + m->off.b2 : NULL, &dlogit, w->h,
                       p + m->off.W2, 1, (int)H, 1);
    for (size_t i = 0; i < H; i++)
        if (w->hpre[i] <= 0) w->dh[i] = 0;
    /* dense F -> H */
    memset(w->dz, 0, F * sizeof(float));
    tsr_dense_backward(w->dz, g ? g + m->off.W1 : NULL, g ? g + m->off.b1 : NULL, w->dh, w->z,
                       p + m->off.W1, 1, (int)F, (int)H);
    /* filters in order of their window, so each window's dX is built once */
    for (size_t f = 0; f < F; f++) w->order[f] = (int32_t)f;
    for (size_t i = 1; i < F; i++) { /* insertion sort by (window, filter): F is small */
        int32_t x = w->order[i];
        size_t j = i;
        while (j > 0 && w->arg[w->order[j - 1]] > w->arg[x]) {
            w->order[j] = w->order[j - 1];
            j--;
        }
        w->order[j] = x;
    }
    const float *Wc = p + m->off.Wc;
    size_t i = 0;
    while (i < F) {
        size_t t = (size_t)w->arg[w->order[i]];
        const float *xt = w->X + t * KD;
        const float *c = w->C + t * 2 * F;
        memset(w->dX, 0, KD * sizeof(float));
        for (; i < F && (size_t)w->arg[w->order[i]] == t; i++) {
            size_t f = (size_t)w->order[i];
            float s = tsr_sigmoidf(c[F + f]);
            float da = w->dz[f] * s, db = w->dz[f] * c[f] * s * (1 - s);
            if (da == 0 && db == 0) continue;
            if (g) {
                float *gwa = g + m->off.Wc + f * KD, *gwb = g + m->off.Wc + (F + f) * KD;
                for (size_t k = 0; k < KD; k++) {
                    gwa[k] += da * xt[k];
                    gwb[k] += db * xt[k];
                }
                g[m->off.bc + f] += da;
                g[m->off.bc + F + f] += db;
            }
            const float *wa = Wc + f * KD, *wb = Wc + (F + f) * KD;
            for (size_t k = 0; k < KD; k++) w->dX[k] += da * wa[k] + db * wb[k];
        }
        /* scatter the window's gradient to its positions */
        for (size_t k = 0; k < K; k++) {
            size_t q = t * K + k;
            const float *d = w->dX + k * D;
            int is_input = q < w->n && !(w->pad_row && t == w->T - 1);
            if (is_input && dZ)
                for (size_t e = 0; e < D; e++) dZ[q * D + e] += d[e];
            if (g && (!is_input || w->have_tok)) {
                size_t tok = is_input ? w->tok[q] : TSR_MALCONV_PAD;
                float *gE = g + m->off.E + tok * D;
                for (size_t e = 0; e < D; e++) gE[e] += d[e];
            }
        }
    }
}

void tsr_malconv_backward_routed(const tsr_malconv *m, tsr_malconv_ws *w, float dlogit, float *dZ,
                                 const uint8_t *free_win, size_t nwin) {
    size_t F = (size_t)m->cfg.filters, H = (size_t)m->cfg.hidden;
    const float *p = m->params;
    /* d logit / d z, as the backward computes it */
    memset(w->dh, 0, H * sizeof(float));
    tsr_dense_backward(w->dh, NULL, NULL, &dlogit, w->h, p + m->off.W2, 1, (int)H, 1);
    for (size_t i = 0; i < H; i++)
        if (w->hpre[i] <= 0) w->dh[i] = 0;
    memset(w->dz, 0, F * sizeof(float));
    tsr_dense_backward(w->dz, NULL, NULL, w->dh, w->z, p + m->off.W1, 1, (int)F, (int)H);
    size_t T = w->T - (size_t)w->pad_row;
    if (nwin < T) T = nwin;
    /* each filter whose rise lowers the loss (dz < 0) and whose maximum is not in a free
       window is routed to its best free window; the rest keep their maximum */
    int32_t *keep = tsr_alloc(F * sizeof(int32_t));
    if (!keep) { /* out of memory: the plain gradient */
        tsr_malconv_backward(m, w, dlogit, NULL, dZ);
        return;
    }
    for (size_t f = 0; f < F; f++) {
        keep[f] = w->arg[f];
        size_t a = (size_t)w->arg[f];
        if (!(w->dz[f] < 0) || (a < T && free_win[a])) continue;
        float best = 0;
        int32_t bt = -1;
        for (size_t t = 0; t < T; t++) {
            if (!free_win[t]) continue;
            const float *c = w->C + t * 2 * F;
            float g = c[f] * tsr_sigmoidf(c[F + f]);
            if (bt < 0 || g > best) best = g, bt = (int32_t)t;
        }
        if (bt >= 0) w->arg[f] = bt;
    }
    tsr_malconv_backward(m, w, dlogit, NULL, dZ);
    memcpy(w->arg, keep, F * sizeof(int32_t));
    tsr_free(keep);
}
