/*
 * train/run.c - executing a model: activation buffers, forward and backward.
 *
 * A pass is a *program* of ops, one per layer (FWD / BWD), except batch norm
 * in training mode, which needs statistics over the whole batch and becomes
 * SUMS (partial sums per chunk), SYNC (serial reduction) and APPLY. The SYNC
 * ops cut the program into segments. Within a segment every OpenMP thread
 * owns a fixed slice of the batch and runs ALL of the segment's ops on one
 * cache-sized chunk of its samples before moving to the next chunk, so the
 * intermediate tensors of a chunk are still in L2 when the next op reads
 * them (the layer-by-layer order over a whole batch was memory-bound).
 *
 * Determinism: slices and chunks are fixed functions of (B, threads); every
 * reduction (parameter gradients, batch-norm sums, range statistics) adds
 * per-thread partial results in thread order, and each thread adds its
 * chunks in order. So a seed and a thread count fix the result bit for bit.
 *
 * Per-thread scratch (m->thread_floats floats per thread):
 *   [ parameter gradients (n_params) | batch-norm sums (2 Cmax doubles)
 *   | activation statistics (4 doubles per layer) | convolution scratch ]
 */
#include "train/model.h"
#include "core/alloc.h"
#include "core/error.h"
#include "core/progress.h"
#include "tessera/core.h"

#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define MAX_THREADS   64
#define CHUNK_BUDGET  (768u * 1024u) /* bytes of tensors a chunk of a segment may touch */
#define MIN_CHUNK     8
#define PAR_MIN_BYTES (256u * 1024u) /* smaller segments are not worth a parallel region */

typedef enum op_kind {
    OP_FWD,
    OP_SUMS,
    OP_SYNC,
    OP_APPLY,
    OP_BWD,
    OP_BSUMS,
    OP_BSYNC,
    OP_BAPPLY
} op_kind;

typedef struct op {
    op_kind kind;
    int layer;
} op;

/* ---- buffers ----------------------------------------------------------------- */

static size_t round16(size_t n) {
    return (n + 15) & ~(size_t)15;
}

static int num_threads(void) {
    int t = tsr_get_num_threads();
    return t < 1 ? 1 : t > MAX_THREADS ? MAX_THREADS : t;
}

typedef struct scratch_layout {
    size_t pgrad, bn, stats, conv, total;
} scratch_layout;

static scratch_layout layout(const tsr_model *m) {
    scratch_layout s = { 0, 0, 0, 0, 0 };
    size_t cmax = 0, conv = 0;
    for (int i = 0; i < m->n_layers; i++) {
        const tsr_layer *L = &m->layers[i];
        if (L->kind == TSR_LAYER_BATCHNORM && L->p_len[0] > cmax) cmax = L->p_len[0];
        if (L->kind == TSR_LAYER_CONV) {
            size_t c = tsr_conv2d_scratch_floats(&L->g, m->cap_batch);
            if (c > conv) conv = c;
        }
    }
    s.pgrad = 0;
    s.bn = round16(m->n_params);
    s.stats = s.bn + round16(4 * cmax);                  /* 2 cmax doubles */
    s.conv = s.stats + round16(8 * (size_t)m->n_layers); /* 4 doubles per layer */
    s.total = s.conv + round16(conv);
    return s;
}

void tsr_model_release_buffers(tsr_model *m) {
    for (int i = 0; i < m->n_layers; i++) {
        tsr_free(m->layers[i].idx);
        tsr_free(m->layers[i].mask);
        m->layers[i].idx = NULL;
        m->layers[i].mask = NULL;
        m->layers[i].aux = NULL;
    }
    for (int t = 0; t < m->n_tensors; t++) m->tensors[t].act = m->tensors[t].grad = NULL;
    tsr_free(m->arena);
    tsr_free(m->scratch);
    m->arena = m->scratch = NULL;
    m->cap_batch = 0;
    m->threads = 0;
}

/* Batch-norm aux: mean, rstd (training batch), mean, rstd (evaluation), then 2C doubles. */
static size_t bn_aux_floats(size_t C) {
    return round16(4 * C + 4 * C);
}

static tsr_status ensure_buffers(tsr_model *m, int B) {
    int T = num_threads();
    if (B <= m->cap_batch && T == m->threads) return TSR_OK;
    int cap = B > m->cap_batch ? B : m->cap_batch;
    tsr_model_release_buffers(m);
    size_t total = 0;
    for (int t = 0; t < m->n_tensors; t++)
        total += 2 * round16((size_t)cap * tsr_shape_numel(m->tensors[t].shape));
    for (int i = 0; i < m->n_layers; i++)
        if (m->layers[i].kind == TSR_LAYER_BATCHNORM) total += bn_aux_floats(m->layers[i].p_len[0]);
    m->arena = tsr_calloc_array(total, sizeof(float));
    if (!m->arena) return tsr_fail(TSR_ERR_NOMEM, "out of memory for a batch of %d", cap);
    float *p = m->arena;
    for (int t = 0; t < m->n_tensors; t++) {
        size_t n = round16((size_t)cap * tsr_shape_numel(m->tensors[t].shape));
        m->tensors[t].act = p;
        m->tensors[t].grad = p + n;
        p += 2 * n;
    }
    for (int i = 0; i < m->n_layers; i++) {
        tsr_layer *L = &m->layers[i];
        size_t n = (size_t)cap * tsr_shape_numel(m->tensors[L->out].shape);
        L->alias = 0;
        if (L->kind == TSR_LAYER_FLATTEN) { /* a flatten that is its input's only reader: */
            int readers = 0;                /* share the buffers instead of copying */
            for (int j = 0; j < m->n_layers; j++)
                readers += (m->layers[j].in[0] == L->in[0]) + (m->layers[j].in[1] == L->in[0]);
            if (readers == 1 && L->in[0] != m->output) {
                L->alias = 1;
                m->tensors[L->out].act = m->tensors[L->in[0]].act;
                m->tensors[L->out].grad = m->tensors[L->in[0]].grad;
            }
        }
        if (L->kind == TSR_LAYER_BATCHNORM) {
            L->aux = p;
            p += bn_aux_floats(L->p_len[0]);
        } else if (L->kind == TSR_LAYER_MAXPOOL) {
            L->idx = tsr_calloc_array(n, sizeof(int32_t));
            if (!L->idx) goto nomem;
        } else if (L->kind == TSR_LAYER_DROPOUT) {
            L->mask = tsr_calloc_array(n, 1);
            if (!L->mask) goto nomem;
        }
    }
    m->cap_batch = cap;
    scratch_layout s = layout(m);
    m->thread_floats = s.total;
    m->scratch = tsr_calloc_array(s.total * (size_t)T + 16, sizeof(float));
    if (!m->scratch) goto nomem;
    m->threads = T;
    /* Kernels run single-threaded inside our own OpenMP slices. */
    openblas_set_num_threads(1);
    return TSR_OK;
nomem:
    tsr_model_release_buffers(m);
    return tsr_fail(TSR_ERR_NOMEM, "out of memory for a batch of %d", cap);
}

/* ---- small accessors ------------------------------------------------------------ */

void tsr_model_set_training(tsr_model *m, int training) {
    m->training = training != 0;
}

void tsr_model_seed(tsr_model *m, uint64_t seed) {
    uint8_t key[TSR_SEED_BYTES] = { 0 };
    for (int i = 0; i < 8; i++) key[i] = (uint8_t)(seed >> (8 * i));
    tsr_prng_init(&m->rng, key, 3);
}

void tsr_model_track_ranges(tsr_model *m, int on, int reset) {
    m->track_ranges = on != 0;
    if (!reset) return;
    for (int i = 0; i < m->n_layers; i++) {
        tsr_layer *L = &m->layers[i];
        L->seen_min = INFINITY;
        L->seen_max = -INFINITY;
        L->seen_count = L->seen_outside = 0;
    }
}

const float *tsr_model_output(const tsr_model *m) {
    return m->output >= 0 ? m->tensors[m->output].act : NULL;
}

size_t tsr_model_output_size(const tsr_model *m) {
    return m->output >= 0 ? tsr_shape_numel(m->tensors[m->output].shape) : 0;
}

const float *tsr_model_activation(const tsr_model *m, int t) {
    TSR_REQUIRE(t >= 0 && t < m->n_tensors, "tsr_model_activation: no such tensor");
    return m->tensors[t].act;
}

const float *tsr_model_tensor_grad(const tsr_model *m, int t) {
    TSR_REQUIRE(t >= 0 && t < m->n_tensors, "tsr_model_tensor_grad: no such tensor");
    return m->tensors[t].grad;
}

void tsr_model_zero_grad(tsr_model *m) {
    memset(m->grads, 0, m->n_params * sizeof *m->grads);
}

/* ---- execution ------------------------------------------------------------------ */

typedef struct run {
    tsr_model *m;
    int B, T;
    scratch_layout sl;
    int npoly;
    int want_pen;           /* compute range penalties of polynomial inputs */
    int stats;              /* compute activation-input statistics */
    float range_scale_base; /* W / npoly (backward) */
    int *first_bwd;         /* per tensor: layer that writes its gradient first in backward */
} run;

static float *thread_scratch(const run *r, int t) {
    return r->m->scratch + (size_t)t * r->m->thread_floats;
}

static double *thread_bn(const run *r, int t) {
    return (double *)(thread_scratch(r, t) + r->sl.bn);
}

static double *thread_stats(const run *r, int t, int layer) {
    return (double *)(thread_scratch(r, t) + r->sl.stats) + 4 * (size_t)layer;
}

static int is_sync(op_kind k) {
    return k == OP_SYNC || k == OP_BSYNC;
}

static size_t numel(const tsr_model *m, int t) {
    return tsr_shape_numel(m->tensors[t].shape);
}

static int is_act(tsr_layer_kind k) {
    return k == TSR_LAYER_POLY || k == TSR_LAYER_RELU || k == TSR_LAYER_GELU;
}

/* Zero the gradient rows [lo, lo+n) of the inputs this layer writes first. */
static void zero_first_grads(const run *r, int layer, int lo, int n) {
    const tsr_model *m = r->m;
    const tsr_layer *L = &m->layers[layer];
    if (L->alias) return; /* the input's gradient IS the output's */
    for (int k = 0; k < 2; k++) {
        int u = L->in[k];
        if (u < 0 || (k == 1 && u == L->in[0])) continue;
        if (u == 0 && !m->input_grad) continue;
        if (r->first_bwd[u] != layer) continue;
        size_t e = numel(m, u);
        memset(m->tensors[u].grad + (size_t)lo * e, 0, (size_t)n * e * sizeof(float));
    }
}

/* One op on rows [lo, lo+n) of the batch, by thread t; first = first chunk of the thread. */
static void run_op(const run *r, const op *o, int lo, int n, int t, int first) {
    tsr_model *m = r->m;
    tsr_layer *L = &m->layers[o->layer];
    const tsr_shape is = m->tensors[L->in[0]].shape, os = m->tensors[L->out].shape;
    const size_t in_n = tsr_shape_numel(is), out_n = tsr_shape_numel(os);
    const float *xs = m->tensors[L->in[0]].act + (size_t)lo * in_n;
    float *ys = m->tensors[L->out].act + (size_t)lo * out_n;
    const float *w = m->params + L->p_off[0];
    const float *b = L->p_len[1] ? m->params + L->p_off[1] : NULL;
    const size_t cnt = (size_t)n * in_n;
    const int C = is.c, HW = is.h * is.w;
    float *conv_scr = thread_scratch(r, t) + r->sl.conv;

    switch (o->kind) {
    case OP_FWD:
        switch (L->kind) {
        case TSR_LAYER_DENSE:
            tsr_dense_forward(ys, xs, w, b, n, is.c, os.c);
            break;
        case TSR_LAYER_CONV:
            tsr_conv2d_forward(ys, conv_scr, xs, w, b, n, &L->g);
            break;
        case TSR_LAYER_AVGPOOL:
            tsr_avgpool_forward(ys, xs, n, &L->g);
            break;
        case TSR_LAYER_MAXPOOL:
            tsr_maxpool_forward(ys, L->idx + (size_t)lo * out_n, xs, n, &L->g);
            break;
        case TSR_LAYER_GAP:
            tsr_gap_forward(ys, xs, n, C, HW);
            break;
        case TSR_LAYER_FLATTEN:
            if (!L->alias) memcpy(ys, xs, cnt * sizeof *ys);
            break;
        case TSR_LAYER_ADD:
            tsr_add_forward(ys, xs, m->tensors[L->in[1]].act + (size_t)lo * in_n, cnt);
            break;
        case TSR_LAYER_DROPOUT:
            if (m->training && L->p > 0)
                tsr_dropout_forward(ys, xs, L->mask + (size_t)lo * in_n, L->p, cnt);
            else
                memcpy(ys, xs, cnt * sizeof *ys);
            break;
        case TSR_LAYER_RELU:
            tsr_relu_forward(ys, xs, cnt);
            break;
        case TSR_LAYER_GELU:
            tsr_gelu_forward(ys, xs, cnt);
            break;
        case TSR_LAYER_POLY:
            tsr_poly_forward(ys, xs, w, n, C, HW, L->degree, L->nc);
            break;
        default:
            break;
        }
        if (is_act(L->kind) && (r->stats || (r->want_pen && L->kind == TSR_LAYER_POLY))) {
            double *st = thread_stats(r, t, o->layer);
            float lo_v = INFINITY, hi_v = -INFINITY;
            uint64_t outside = 0;
            const float bound = L->bound;
            for (size_t i = 0; i < cnt; i++) {
                float v = xs[i];
                lo_v = v < lo_v ? v : lo_v;
                hi_v = v > hi_v ? v : hi_v;
                outside += (v > bound) | (v < -bound) | (v != v);
            }
            if (lo_v < st[0]) st[0] = lo_v;
            if (hi_v > st[1]) st[1] = hi_v;
            st[2] += (double)outside;
            if (L->kind == TSR_LAYER_POLY && r->want_pen)
                st[3] += tsr_range_penalty_forward(xs, cnt, bound);
        }
        break;

    case OP_SUMS: {
        double *acc = thread_bn(r, t);
        tsr_batchnorm_sums(acc, acc + C, xs, m->state + L->s_off, n, C, HW);
        break;
    }
    case OP_APPLY: {
        const float *mean = m->training ? L->aux : L->aux + 2 * C;
        const float *rstd = m->training ? L->aux + C : L->aux + 3 * C;
        tsr_batchnorm_apply(ys, xs, mean, rstd, w, b, n, C, HW);
        break;
    }
    case OP_BSUMS: {
        double *acc = thread_bn(r, t);
        const float *dys = m->tensors[L->out].grad + (size_t)lo * out_n;
        tsr_batchnorm_backward_sums(acc, acc + C, dys, xs, L->aux, L->aux + C, n, C, HW);
        break;
    }
    case OP_BAPPLY: {
        if (L->in[0] == 0 && !m->input_grad) break;
        zero_first_grads(r, o->layer, lo, n);
        const double *tot = (const double *)(L->aux + 4 * C);
        tsr_batchnorm_backward_apply(m->tensors[L->in[0]].grad + (size_t)lo * in_n,
                                     m->tensors[L->out].grad + (size_t)lo * out_n, xs, L->aux,
                                     L->aux + C, w, tot, tot + C, (double)r->B * HW, n, C, HW);
        break;
    }
    case OP_BWD: {
        const float *dys = m->tensors[L->out].grad + (size_t)lo * out_n;
        float *dxs = (L->in[0] == 0 && !m->input_grad)
                         ? NULL
                         : m->tensors[L->in[0]].grad + (size_t)lo * in_n;
        float *pg = thread_scratch(r, t) + r->sl.pgrad;
        float *dw = L->p_len[0] ? pg + L->p_off[0] : NULL;
        float *db = L->p_len[1] ? pg + L->p_off[1] : NULL;
        if (first) {
            if (dw) memset(dw, 0, L->p_len[0] * sizeof *dw);
            if (db) memset(db, 0, L->p_len[1] * sizeof *db);
        }
        zero_first_grads(r, o->layer, lo, n);
        switch (L->kind) {
        case TSR_LAYER_DENSE:
            tsr_dense_backward(dxs, dw, db, dys, xs, w, n, is.c, os.c);
            break;
        case TSR_LAYER_CONV:
            tsr_conv2d_backward(dxs, dw, db, conv_scr, dys, xs, w, n, &L->g);
            break;
        case TSR_LAYER_AVGPOOL:
            if (dxs) tsr_avgpool_backward(dxs, dys, n, &L->g);
            break;
        case TSR_LAYER_MAXPOOL:
            if (dxs) tsr_maxpool_backward(dxs, dys, L->idx + (size_t)lo * out_n, n, &L->g);
            break;
        case TSR_LAYER_GAP:
            if (dxs) tsr_gap_backward(dxs, dys, n, C, HW);
            break;
        case TSR_LAYER_FLATTEN:
            if (dxs && !L->alias) tsr_add_backward(dxs, NULL, dys, cnt);
            break;
        case TSR_LAYER_ADD: {
            int u = L->in[1];
            float *db2 = (u == 0 && !m->input_grad) ? NULL : m->tensors[u].grad + (size_t)lo * in_n;
            tsr_add_backward(dxs, db2, dys, cnt);
            break;
        }
        case TSR_LAYER_DROPOUT:
            if (!dxs) break;
            if (L->p > 0)
                tsr_dropout_backward(dxs, dys, L->mask + (size_t)lo * in_n, L->p, cnt);
            else
                tsr_add_backward(dxs, NULL, dys, cnt);
            break;
        case TSR_LAYER_RELU:
            if (dxs) tsr_relu_backward(dxs, dys, xs, cnt);
            break;
        case TSR_LAYER_GELU:
            if (dxs) tsr_gelu_backward(dxs, dys, xs, cnt);
            break;
        case TSR_LAYER_POLY:
            tsr_poly_backward(dxs, dw, dys, xs, w, n, C, HW, L->degree, L->nc);
            if (dxs && r->range_scale_base > 0)
                tsr_range_penalty_backward(dxs, xs, cnt, L->bound,
                                           r->range_scale_base / ((float)r->B * (float)in_n));
            break;
        default:
            break;
        }
        break;
    }
    default:
        break;
    }
}

/* Serial reduction of a batch-norm layer's partial sums (thread order). */
static void run_sync(const run *r, const op *o) {
    tsr_model *m = r->m;
    tsr_layer *L = &m->layers[o->layer];
    const tsr_shape s = m->tensors[L->in[0]].shape;
    const int C = s.c;
    const double n = (double)r->B * s.h * s.w;
    double *tot = (double *)(L->aux + 4 * C); /* 2C doubles */
    memset(tot, 0, 2 * (size_t)C * sizeof *tot);
    for (int t = 0; t < r->T; t++) {
        double *acc = thread_bn(r, t);
        for (int c = 0; c < 2 * C; c++) tot[c] += acc[c];
        memset(acc, 0, 2 * (size_t)C * sizeof *acc);
    }
    if (o->kind == OP_SYNC) {
        float *rmean = m->state + L->s_off, *rvar = m->state + L->s_off + C;
        for (int c = 0; c < C; c++) {
            double d = tot[c] / n, var = tot[C + c] / n - d * d;
            if (var < 0) var = 0;
            double mu = rmean[c] + d; /* sums were shifted by the running mean */
            L->aux[c] = (float)mu;
            L->aux[C + c] = (float)(1.0 / sqrt(var + L->eps));
            double unbiased = n > 1 ? var * n / (n - 1) : var;
            rmean[c] = (float)((1 - L->momentum) * rmean[c] + L->momentum * mu);
            rvar[c] = (float)((1 - L->momentum) * rvar[c] + L->momentum * unbiased);
        }
    } else { /* OP_BSYNC: tot = (Σ dy, Σ dy x̂); parameter gradients */
        float *dgamma = m->grads + L->p_off[0], *dbeta = m->grads + L->p_off[1];
        for (int c = 0; c < C; c++) {
            dbeta[c] += (float)tot[c];
            dgamma[c] += (float)tot[C + c];
        }
    }
}

/* Bytes of tensors one sample touches in ops [a, b). */
static size_t segment_bytes(const tsr_model *m, const op *ops, int a, int b, int backward) {
    size_t bytes = 0;
    for (int k = a; k < b; k++) {
        const tsr_layer *L = &m->layers[ops[k].layer];
        /* (aliased flattens are counted too: chunk sizes, hence results, do not depend
         * on the aliasing) */
        size_t e = numel(m, L->in[0]) + numel(m, L->out);
        if (L->in[1] >= 0) e += numel(m, L->in[1]);
        bytes += e * sizeof(float) * (backward ? 2 : 1);
    }
    return bytes ? bytes : 1;
}

static void run_program(run *r, const op *ops, int nops, int backward) {
    tsr_model *m = r->m;
    const int B = r->B, T = r->T;
    for (int a = 0; a < nops;) {
        if (is_sync(ops[a].kind)) {
            double t0 = m->profile ? tsr_now() : 0;
            run_sync(r, &ops[a]);
            if (m->profile) {
                tsr_layer *L = &m->layers[ops[a].layer];
                if (backward)
                    L->t_bwd += tsr_now() - t0;
                else
                    L->t_fwd += tsr_now() - t0;
            }
            a++;
            continue;
        }
        int b = a;
        while (b < nops && !is_sync(ops[b].kind)) b++;
        size_t per = segment_bytes(m, ops, a, b, backward);
        int S = (int)(CHUNK_BUDGET / per);
        if (S < MIN_CHUNK) S = MIN_CHUNK;
        /* Tiny segments run their T slices in one thread: the same arithmetic, no barrier. */
        int par = T > 1 && per * (size_t)B >= PAR_MIN_BYTES;
        (void)par; /* unused without OpenMP */
#pragma omp parallel for schedule(static) if (par)
        for (int t = 0; t < T; t++) {
            int lo = (int)((long)B * t / T), hi = (int)((long)B * (t + 1) / T);
            for (int c = lo; c < hi; c += S) {
                int n = hi - c < S ? hi - c : S;
                for (int k = a; k < b; k++) {
                    double t0 = (m->profile && t == 0) ? tsr_now() : 0;
                    run_op(r, &ops[k], c, n, t, c == lo);
                    if (m->profile && t == 0) {
                        tsr_layer *L = &m->layers[ops[k].layer];
                        if (backward)
                            L->t_bwd += tsr_now() - t0;
                        else
                            L->t_fwd += tsr_now() - t0;
                    }
                }
            }
        }
        a = b;
    }
}

static tsr_status begin_run(run *r, tsr_model *m, int B) {
    memset(r, 0, sizeof *r);
    r->m = m;
    r->B = B;
    TSR_TRY(ensure_buffers(m, B));
    r->T = m->threads;
    r->sl = layout(m);
    for (int i = 0; i < m->n_layers; i++) r->npoly += m->layers[i].kind == TSR_LAYER_POLY;
    return TSR_OK;
}

tsr_status tsr_model_forward(tsr_model *m, const float *x, int B) {
    TSR_REQUIRE(m && x, "tsr_model_forward: NULL argument");
    if (!m->finished) return tsr_fail(TSR_ERR_INVALID_ARG, "model is not finished");
    if (B < 1) return tsr_fail(TSR_ERR_INVALID_ARG, "batch size %d must be >= 1", B);
    run r;
    TSR_TRY(begin_run(&r, m, B));
    r.want_pen = r.npoly > 0 && (m->range_weight > 0 || m->track_ranges) && m->training;
    r.stats = m->track_ranges;
    memcpy(m->tensors[0].act, x, (size_t)B * numel(m, 0) * sizeof *x);
    op *ops = malloc(3 * (size_t)m->n_layers * sizeof *ops);
    if (!ops) return tsr_fail(TSR_ERR_NOMEM, "out of memory");
    int nops = 0;
    for (int i = 0; i < m->n_layers; i++) {
        tsr_layer *L = &m->layers[i];
        if (L->kind == TSR_LAYER_BATCHNORM) {
            if (m->training) {
                ops[nops++] = (op){ OP_SUMS, i };
                ops[nops++] = (op){ OP_SYNC, i };
            } else { /* evaluation statistics from the running ones */
                int C = (int)L->p_len[0];
                for (int c = 0; c < C; c++) {
                    L->aux[2 * C + c] = m->state[L->s_off + c];
                    L->aux[3 * C + c] =
                        (float)(1.0 / sqrt((double)m->state[L->s_off + C + c] + L->eps));
                }
            }
            ops[nops++] = (op){ OP_APPLY, i };
        } else {
            ops[nops++] = (op){ OP_FWD, i };
        }
        if (L->kind == TSR_LAYER_DROPOUT && m->training && L->p > 0) {
            size_t n = (size_t)B * numel(m, L->in[0]);
            uint32_t thr = (uint32_t)(L->p * 4294967296.0);
            for (size_t k = 0; k < n; k++) {
                uint32_t v;
                tsr_prng_bytes(&m->rng, &v, sizeof v);
                L->mask[k] = v >= thr;
            }
        }
    }
    for (int t = 0; t < r.T; t++) {
        memset(thread_bn(&r, t), 0, (r.sl.stats - r.sl.bn) * sizeof(float));
        for (int i = 0; i < m->n_layers; i++) {
            double *st = thread_stats(&r, t, i);
            st[0] = INFINITY;
            st[1] = -INFINITY;
            st[2] = st[3] = 0;
        }
    }
    run_program(&r, ops, nops, 0);
    free(ops);
    /* reduce activation statistics in thread order */
    m->range_loss = 0;
    for (int i = 0; i < m->n_layers; i++) {
        tsr_layer *L = &m->layers[i];
        if (!is_act(L->kind)) continue;
        size_t cnt = (size_t)B * numel(m, L->in[0]);
        double pen = 0;
        for (int t = 0; t < r.T; t++) {
            const double *st = thread_stats(&r, t, i);
            if (r.stats) {
                if (st[0] < L->seen_min) L->seen_min = (float)st[0];
                if (st[1] > L->seen_max) L->seen_max = (float)st[1];
                L->seen_outside += (uint64_t)st[2];
            }
            pen += st[3];
        }
        if (r.stats) L->seen_count += cnt;
        if (L->kind == TSR_LAYER_POLY) {
            L->range_sum = pen;
            if (r.want_pen) m->range_loss += pen / (double)cnt / r.npoly;
        }
    }
    return TSR_OK;
}

tsr_status tsr_model_backward(tsr_model *m, const float *dout, int B) {
    TSR_REQUIRE(m && dout, "tsr_model_backward: NULL argument");
    if (!m->finished) return tsr_fail(TSR_ERR_INVALID_ARG, "model is not finished");
    if (B < 1 || B > m->cap_batch)
        return tsr_fail(TSR_ERR_INVALID_ARG,
                        "backward batch %d does not match the last forward (capacity %d)", B,
                        m->cap_batch);
    if (!m->training)
        return tsr_fail(TSR_ERR_INVALID_ARG,
                        "backward needs a training-mode forward: call tsr_model_set_training");
    run r;
    TSR_TRY(begin_run(&r, m, B));
    if (r.npoly > 0 && m->range_weight > 0) r.range_scale_base = m->range_weight / (float)r.npoly;
    op *ops = malloc(3 * (size_t)m->n_layers * sizeof *ops);
    r.first_bwd = malloc((size_t)m->n_tensors * sizeof *r.first_bwd);
    if (!ops || !r.first_bwd) {
        free(ops);
        free(r.first_bwd);
        return tsr_fail(TSR_ERR_NOMEM, "out of memory");
    }
    for (int t = 0; t < m->n_tensors; t++) r.first_bwd[t] = -1;
    for (int i = 0; i < m->n_layers; i++)
        for (int k = 0; k < 2; k++)
            if (m->layers[i].in[k] >= 0) r.first_bwd[m->layers[i].in[k]] = i;
    /* the output's gradient is given; a tensor nobody reads gets a zero gradient */
    for (int t = 1; t < m->n_tensors; t++)
        if (t != m->output && r.first_bwd[t] < 0)
            memset(m->tensors[t].grad, 0, (size_t)B * numel(m, t) * sizeof(float));
    memcpy(m->tensors[m->output].grad, dout, (size_t)B * numel(m, m->output) * sizeof *dout);
    int nops = 0;
    for (int i = m->n_layers - 1; i >= 0; i--) {
        if (m->layers[i].kind == TSR_LAYER_BATCHNORM) {
            ops[nops++] = (op){ OP_BSUMS, i };
            ops[nops++] = (op){ OP_BSYNC, i };
            ops[nops++] = (op){ OP_BAPPLY, i };
        } else {
            ops[nops++] = (op){ OP_BWD, i };
        }
    }
    for (int t = 0; t < r.T; t++)
        memset(thread_bn(&r, t), 0, (r.sl.stats - r.sl.bn) * sizeof(float));
    run_program(&r, ops, nops, 1);
    /* reduce parameter gradients in thread order (batch norm was reduced in its sync);
     * every entry sums its per-thread parts in the same order, so splitting the
     * entries between threads keeps the result deterministic */
    for (int i = 0; i < m->n_layers; i++) {
        const tsr_layer *L = &m->layers[i];
        if (L->kind == TSR_LAYER_BATCHNORM) continue;
        for (int s = 0; s < 2; s++) {
            const size_t len = L->p_len[s];
            if (!len) continue;
            float *g = m->grads + L->p_off[s];
            const int T = r.T, par = T > 1 && len >= 16384;
            (void)par;
#pragma omp parallel for schedule(static) if (par)
            for (int part = 0; part < T; part++) {
                size_t k0 = len * (size_t)part / (size_t)T,
                       k1 = len * (size_t)(part + 1) / (size_t)T;
                for (int t = 0; t < T; t++) {
                    int lo = (int)((long)B * t / T), hi = (int)((long)B * (t + 1) / T);
                    if (hi <= lo) continue; /* this thread never touched (or zeroed) its buffer */
                    const float *pg = thread_scratch(&r, t) + r.sl.pgrad + L->p_off[s];
#pragma omp simd
                    for (size_t k = k0; k < k1; k++) g[k] += pg[k];
                }
            }
        }
    }
    free(ops);
    free(r.first_bwd);
    return TSR_OK;
}
