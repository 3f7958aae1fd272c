/*
 * train/optim.c - SGD / Adam / AdamW, learning-rate schedules, clipping.
 * The update formulas follow PyTorch's torch.optim documentation so the
 * benchmark comparison trains the same way.
 */
#include "train/optim.h"
#include "core/alloc.h"
#include "core/error.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#ifdef __SSE2__
#include <emmintrin.h>
#endif
#ifdef _OPENMP
#include <omp.h>
#endif

static const char *const opt_names[] = { "sgd", "adam", "adamw" };
static const char *const sched_names[] = { "const", "step", "cosine" };

tsr_status tsr_optim_parse(const char *name, tsr_optim_kind *out) {
    for (int i = 0; i < 3; i++)
        if (name && strcmp(name, opt_names[i]) == 0) {
            *out = (tsr_optim_kind)i;
            return TSR_OK;
        }
    return tsr_fail(TSR_ERR_INVALID_ARG, "unknown optimizer '%s': use sgd, adam or adamw",
                    name ? name : "(null)");
}

const char *tsr_optim_name(tsr_optim_kind kind) {
    return (unsigned)kind < 3 ? opt_names[kind] : "unknown";
}

tsr_status tsr_sched_parse(const char *name, tsr_sched_kind *out) {
    for (int i = 0; i < 3; i++)
        if (name && strcmp(name, sched_names[i]) == 0) {
            *out = (tsr_sched_kind)i;
            return TSR_OK;
        }
    return tsr_fail(TSR_ERR_INVALID_ARG, "unknown schedule '%s': use const, step or cosine",
                    name ? name : "(null)");
}

const char *tsr_sched_name(tsr_sched_kind kind) {
    return (unsigned)kind < 3 ? sched_names[kind] : "unknown";
}

tsr_status tsr_optim_create(tsr_optim **out, tsr_optim_kind kind, size_t n) {
    *out = NULL;
    if ((unsigned)kind > TSR_OPT_ADAMW)
        return tsr_fail(TSR_ERR_INVALID_ARG, "unknown optimizer kind %d", (int)kind);
    tsr_optim *o = calloc(1, sizeof *o);
    if (!o) return tsr_fail(TSR_ERR_NOMEM, "out of memory creating an optimizer");
    o->kind = kind;
    o->n = n;
    o->momentum = 0.9f;
    o->beta1 = 0.9f;
    o->beta2 = 0.999f;
    o->eps = 1e-8f;
    size_t cnt = n ? n : 1;
    o->m = tsr_calloc_array(cnt, sizeof(float));
    o->v = kind == TSR_OPT_SGD ? NULL : tsr_calloc_array(cnt, sizeof(float));
    if (!o->m || (kind != TSR_OPT_SGD && !o->v)) {
        tsr_optim_free(o);
        return tsr_fail(TSR_ERR_NOMEM, "out of memory for optimizer state of %zu parameters", n);
    }
    *out = o;
    return TSR_OK;
}

void tsr_optim_free(tsr_optim *o) {
    if (!o) return;
    tsr_free(o->m);
    tsr_free(o->v);
    free(o);
}

void tsr_optim_reset(tsr_optim *o) {
    o->step = 0;
    memset(o->m, 0, o->n * sizeof *o->m);
    if (o->v) memset(o->v, 0, o->n * sizeof *o->v);
}

static void step_range(tsr_optim *o, float *params, const float *grads, float lr, size_t lo,
                       size_t hi);

void tsr_optim_step(tsr_optim *o, float *params, const float *grads, float lr) {
    o->step++;
    /* element-wise: any split of the vector gives the same result */
    int T = 1;
#ifdef _OPENMP
    T = o->n >= 65536 ? omp_get_max_threads() : 1;
#endif
#pragma omp parallel for schedule(static) if (T > 1)
    for (int t = 0; t < T; t++)
        step_range(o, params, grads, lr, o->n * (size_t)t / (size_t)T,
                   o->n * (size_t)(t + 1) / (size_t)T);
}

static void step_range(tsr_optim *o, float *params, const float *grads, float lr, size_t lo,
                       size_t hi) {
    const size_t n = hi - lo;
    const float wd = o->weight_decay;
    const uint8_t *mask = o->decay_mask ? o->decay_mask + lo : NULL;
    params += lo;
    grads += lo;
    if (o->kind == TSR_OPT_SGD) {
        const float mu = o->momentum;
        for (size_t i = 0; i < n; i++) {
            float g = grads[i];
            if (wd != 0 && (!mask || mask[i])) g += wd * params[i];
            float buf = o->step == 1 ? g : mu * o->m[lo + i] + g; /* PyTorch: buf = g at step 1 */
            o->m[lo + i] = buf;
            params[i] -= lr * (o->nesterov ? g + mu * buf : buf);
        }
        return;
    }
    const float b1 = o->beta1, b2 = o->beta2;
    const float bc1 = (float)(1.0 - pow(b1, (double)o->step));
    const float bc2 = (float)(1.0 - pow(b2, (double)o->step));
    const float step = lr / bc1, rbc2 = 1.0f / sqrtf(bc2), eps = o->eps;
    const int decoupled = o->kind == TSR_OPT_ADAMW;
    float *restrict p = params, *restrict mm = o->m + lo, *restrict vv = o->v + lo;
    const float *restrict gr = grads;
    if (wd != 0 && decoupled) /* AdamW: p *= 1 - lr wd, before the Adam update */
        for (size_t i = 0; i < n; i++)
            if (!mask || mask[i]) p[i] *= 1.0f - lr * wd;
    const float l2 = (wd != 0 && !decoupled) ? wd : 0.0f; /* Adam: g += wd p */
    size_t i = 0;
#ifdef __SSE2__
    /* 4 lanes with SSE2: IEEE sqrt and division, no FMA, so bit-identical to the scalar
     * tail below (the compiler does not vectorise sqrtf: it may set errno). */
    const __m128 vb1 = _mm_set1_ps(b1), vb1c = _mm_set1_ps(1 - b1), vb2 = _mm_set1_ps(b2),
                 vb2c = _mm_set1_ps(1 - b2), vstep = _mm_set1_ps(step), vr = _mm_set1_ps(rbc2),
                 veps = _mm_set1_ps(eps), vl2 = _mm_set1_ps(l2), zero = _mm_setzero_ps();
    for (; i + 4 <= n; i += 4) {
        __m128 d = vl2;
        if (mask)
            d = _mm_set_ps(mask[i + 3] ? l2 : 0.0f, mask[i + 2] ? l2 : 0.0f,
                           mask[i + 1] ? l2 : 0.0f, mask[i] ? l2 : 0.0f);
        __m128 pv = _mm_loadu_ps(p + i);
        __m128 g = _mm_add_ps(_mm_loadu_ps(gr + i), _mm_mul_ps(d, pv));
        __m128 m = _mm_add_ps(_mm_mul_ps(vb1, _mm_loadu_ps(mm + i)), _mm_mul_ps(vb1c, g));
        __m128 v =
            _mm_add_ps(_mm_mul_ps(vb2, _mm_loadu_ps(vv + i)), _mm_mul_ps(_mm_mul_ps(vb2c, g), g));
        _mm_storeu_ps(mm + i, m);
        _mm_storeu_ps(vv + i, v);
        __m128 den = _mm_add_ps(_mm_mul_ps(_mm_sqrt_ps(_mm_max_ps(v, zero)), vr), veps);
        _mm_storeu_ps(p + i, _mm_sub_ps(pv, _mm_div_ps(_mm_mul_ps(vstep, m), den)));
    }
#endif
    for (; i < n; i++) {
        float d = (!mask || mask[i]) ? l2 : 0.0f;
        float g = gr[i] + d * p[i];
        float m = mm[i] = b1 * mm[i] + (1 - b1) * g;
        float v = vv[i] = b2 * vv[i] + (1 - b2) * g * g;
        p[i] -= step * m / (sqrtf(v) * rbc2 + eps);
    }
}

double tsr_clip_grad_norm(float *grads, size_t n, double max_norm) {
    double s = 0;
    for (size_t i = 0; i < n; i++) s += (double)grads[i] * grads[i];
    double norm = sqrt(s);
    if (max_norm > 0 && norm > max_norm) {
        float k = (float)(max_norm / (norm + 1e-6));
        for (size_t i = 0; i < n; i++) grads[i] *= k;
    }
    return norm;
}

float tsr_sched_lr(const tsr_schedule *s, double epoch) {
    double lr = s->lr;
    if (s->warmup_epochs > 0 && epoch < s->warmup_epochs) {
        double f = epoch / s->warmup_epochs;
        return (float)(lr * (0.01 + 0.99 * f));
    }
    switch (s->kind) {
    case TSR_SCHED_STEP:
        if (s->step_epochs > 0) lr *= pow(s->gamma, floor(epoch / s->step_epochs));
        break;
    case TSR_SCHED_COSINE: {
        double span = s->total_epochs - s->warmup_epochs;
        double f = span > 0 ? (epoch - s->warmup_epochs) / span : 1.0;
        if (f > 1) f = 1;
        if (f < 0) f = 0;
        lr *= 0.5 * (1 + cos(M_PI * f));
        break;
    }
    default:
        break;
    }
    return (float)lr;
}
