/*
 * tile/debug_backend.c - the debug backend: every operation runs on two
 * backends (a subject, typically ckks, and a reference, typically a mockup
 * with the same primes) and the results are decrypted and compared after
 * each step, so the first operation where precision is lost can be named.
 */
#include "tile/backend.h"

#include "core/alloc.h"
#include "core/error.h"

#include <math.h>
#include <pthread.h>
#include <string.h>

typedef struct pair {
    tsr_bvec *s; /* subject */
    tsr_bvec *r; /* reference */
} pair;

typedef struct debug {
    tsr_backend *subject, *reference;
    double *xs, *xr; /* decryption buffers */
    FILE *trace;
    pthread_mutex_t mu;
    tsr_debug_report rep;
} debug;

static const char *const op_names[TSR_DEBUG_OP_COUNT_] = {
    [TSR_DEBUG_ENCRYPT] = "encrypt",       [TSR_DEBUG_ADD] = "add",
    [TSR_DEBUG_ADD_CONST] = "add_const",   [TSR_DEBUG_MUL_CT] = "mul_ct",
    [TSR_DEBUG_MUL_PLAIN] = "mul_plain",   [TSR_DEBUG_MUL_CONST] = "mul_const",
    [TSR_DEBUG_ROTATE] = "rotate",         [TSR_DEBUG_RESCALE] = "rescale",
    [TSR_DEBUG_DROP_LEVEL] = "drop_level", [TSR_DEBUG_BOOTSTRAP] = "bootstrap",
};

const char *tsr_debug_op_name(tsr_debug_op op) {
    return (unsigned)op < TSR_DEBUG_OP_COUNT_ ? op_names[op] : "unknown";
}

static debug *D(const tsr_backend *be) {
    return (debug *)be->impl;
}

static pair *P(const tsr_bvec *v) {
    return (pair *)v->impl;
}

/* Decrypt both sides of v and record the divergence under kind op. */
static tsr_status compare(tsr_backend *be, const tsr_bvec *v, tsr_debug_op op) {
    debug *d = D(be);
    const pair *p = P(v);
    pthread_mutex_lock(&d->mu);
    tsr_status st = d->subject->vt->decrypt(d->subject, p->s, d->xs);
    if (st == TSR_OK) st = d->reference->vt->decrypt(d->reference, p->r, d->xr);
    if (st == TSR_OK) {
        double div = 0, mag = 0;
        for (int64_t i = 0; i < be->slots; i++) {
            double e = fabs(d->xs[i] - d->xr[i]);
            if (isnan(e) || e > div) div = e; /* a NaN sticks: nothing compares above it */
            if (fabs(d->xr[i]) > mag) mag = fabs(d->xr[i]);
        }
        if (div != div) div = INFINITY;
        tsr_debug_report *r = &d->rep;
        uint64_t index = r->ops++;
        r->count[op]++;
        if (div > r->max_by_op[op]) r->max_by_op[op] = div;
        if (div > r->max_divergence || index == 0) {
            r->max_divergence = div;
            r->max_index = index;
            r->max_op = op;
        }
        if (div > r->threshold && r->first_index < 0) {
            r->first_index = (int64_t)index;
            r->first_op = op;
            r->first_divergence = div;
            r->first_level = v->level;
        }
        if (d->trace)
            fprintf(d->trace,
                    "debug #%llu %-10s level %2d scale 2^%.3f: divergence %.3g (2^%.1f), max |x| "
                    "%.3g%s\n",
                    (unsigned long long)index, op_names[op], v->level, log2(v->scale), div,
                    div > 0 ? log2(div) : -INFINITY, mag, div > r->threshold ? "  <- above" : "");
    }
    pthread_mutex_unlock(&d->mu);
    return st;
}

static tsr_status new_pair(tsr_bvec *v) {
    v->impl = tsr_calloc(sizeof(pair));
    return v->impl ? TSR_OK : tsr_fail(TSR_ERR_NOMEM, "out of memory in the debug backend");
}

static tsr_status d_make(tsr_backend *be, const double *values, tsr_bvec *out, int plain) {
    TSR_TRY(new_pair(out));
    pair *p = P(out);
    debug *d = D(be);
    if (plain) {
        TSR_TRY(tsr_bvec_encode(d->subject, values, out->level, out->scale, &p->s));
        TSR_TRY(tsr_bvec_encode(d->reference, values, out->level, out->scale, &p->r));
        return TSR_OK;
    }
    TSR_TRY(tsr_bvec_encrypt(d->subject, values, out->level, out->scale, &p->s));
    TSR_TRY(tsr_bvec_encrypt(d->reference, values, out->level, out->scale, &p->r));
    return compare(be, out, TSR_DEBUG_ENCRYPT);
}

static tsr_status d_encrypt(tsr_backend *be, const double *values, tsr_bvec *out) {
    return d_make(be, values, out, 0);
}

static tsr_status d_encode(tsr_backend *be, const double *values, tsr_bvec *out) {
    return d_make(be, values, out, 1);
}

static tsr_status d_decrypt(tsr_backend *be, const tsr_bvec *v, double *values) {
    return tsr_bvec_decrypt(D(be)->subject, P(v)->s, values);
}

static tsr_status d_copy(tsr_backend *be, const tsr_bvec *src, tsr_bvec *dst) {
    TSR_TRY(new_pair(dst));
    TSR_TRY(tsr_bvec_copy(D(be)->subject, P(src)->s, &P(dst)->s));
    return tsr_bvec_copy(D(be)->reference, P(src)->r, &P(dst)->r);
}

static void d_release(tsr_backend *be, tsr_bvec *v) {
    pair *p = P(v);
    tsr_bvec_free(D(be)->subject, p->s);
    tsr_bvec_free(D(be)->reference, p->r);
    tsr_free(p);
    v->impl = NULL;
}

static tsr_status d_add(tsr_backend *be, tsr_bvec *dst, const tsr_bvec *src, int sign) {
    debug *d = D(be);
    if (sign > 0) {
        TSR_TRY(tsr_bvec_add(d->subject, P(dst)->s, P(src)->s));
        TSR_TRY(tsr_bvec_add(d->reference, P(dst)->r, P(src)->r));
    } else {
        TSR_TRY(tsr_bvec_sub(d->subject, P(dst)->s, P(src)->s));
        TSR_TRY(tsr_bvec_sub(d->reference, P(dst)->r, P(src)->r));
    }
    return compare(be, dst, TSR_DEBUG_ADD);
}

static tsr_status d_add_const(tsr_backend *be, tsr_bvec *dst, double c) {
    debug *d = D(be);
    TSR_TRY(tsr_bvec_add_const(d->subject, P(dst)->s, c));
    TSR_TRY(tsr_bvec_add_const(d->reference, P(dst)->r, c));
    return compare(be, dst, TSR_DEBUG_ADD_CONST);
}

static tsr_status d_mul(tsr_backend *be, tsr_bvec *dst, const tsr_bvec *src) {
    debug *d = D(be);
    TSR_TRY(tsr_bvec_mul(d->subject, P(dst)->s, P(src)->s));
    TSR_TRY(tsr_bvec_mul(d->reference, P(dst)->r, P(src)->r));
    /* dst's scale is updated by the caller after we return: compare with the new one. */
    tsr_bvec view = *dst;
    view.scale = dst->scale * src->scale;
    return compare(be, &view, src->is_plain ? TSR_DEBUG_MUL_PLAIN : TSR_DEBUG_MUL_CT);
}

static tsr_status d_mul_const(tsr_backend *be, tsr_bvec *dst, double c, double cscale) {
    debug *d = D(be);
    TSR_TRY(tsr_bvec_mul_const(d->subject, P(dst)->s, c, cscale));
    TSR_TRY(tsr_bvec_mul_const(d->reference, P(dst)->r, c, cscale));
    tsr_bvec view = *dst;
    view.scale = dst->scale * cscale;
    return compare(be, &view, TSR_DEBUG_MUL_CONST);
}

static tsr_status d_rotate(tsr_backend *be, const tsr_bvec *src, const int64_t *steps, size_t n,
                           tsr_bvec **outs) {
    debug *d = D(be);
    tsr_bvec **s = tsr_calloc_array(n, sizeof *s), **r = tsr_calloc_array(n, sizeof *r);
    tsr_status st =
        (!s || !r) ? tsr_fail(TSR_ERR_NOMEM, "out of memory in the debug backend") : TSR_OK;
    if (st == TSR_OK) st = tsr_bvec_rotate_many(d->subject, P(src)->s, steps, n, s);
    if (st == TSR_OK) st = tsr_bvec_rotate_many(d->reference, P(src)->r, steps, n, r);
    for (size_t i = 0; i < n && st == TSR_OK; i++) {
        st = new_pair(outs[i]);
        if (st != TSR_OK) break;
        P(outs[i])->s = s[i];
        P(outs[i])->r = r[i];
        s[i] = r[i] = NULL;
        st = compare(be, outs[i], TSR_DEBUG_ROTATE);
    }
    for (size_t i = 0; s && r && i < n; i++) {
        tsr_bvec_free(d->subject, s[i]);
        tsr_bvec_free(d->reference, r[i]);
    }
    tsr_free(s);
    tsr_free(r);
    return st;
}

static tsr_status d_rescale(tsr_backend *be, tsr_bvec *v) {
    debug *d = D(be);
    TSR_TRY(tsr_bvec_rescale(d->subject, P(v)->s));
    TSR_TRY(tsr_bvec_rescale(d->reference, P(v)->r));
    tsr_bvec view = *v;
    view.level = v->level - 1;
    view.scale = v->scale / be->primes[v->level];
    return compare(be, &view, TSR_DEBUG_RESCALE);
}

static tsr_status d_drop_level(tsr_backend *be, tsr_bvec *v, int level) {
    debug *d = D(be);
    TSR_TRY(tsr_bvec_drop_level(d->subject, P(v)->s, level));
    TSR_TRY(tsr_bvec_drop_level(d->reference, P(v)->r, level));
    if (v->is_plain) return TSR_OK;
    tsr_bvec view = *v;
    view.level = level;
    return compare(be, &view, TSR_DEBUG_DROP_LEVEL);
}

static tsr_status d_bootstrap(tsr_backend *be, tsr_bvec *const *vs, size_t n) {
    debug *d = D(be);
    tsr_bvec **side = tsr_calloc_array(n, sizeof *side);
    if (!side) return tsr_fail(TSR_ERR_NOMEM, "out of memory bootstrapping");
    tsr_status st = TSR_OK;
    for (int s = 0; s < 2 && st == TSR_OK; s++) {
        for (size_t i = 0; i < n; i++) side[i] = s ? P(vs[i])->r : P(vs[i])->s;
        st = tsr_bvec_bootstrap_many(s ? d->reference : d->subject, side, n);
    }
    tsr_free(side);
    for (size_t i = 0; i < n && st == TSR_OK; i++) {
        tsr_bvec view = *vs[i];
        view.level = be->boot_level;
        view.scale = be->scales[be->boot_level];
        st = compare(be, &view, TSR_DEBUG_BOOTSTRAP);
    }
    return st;
}

static tsr_status d_declare(tsr_backend *be, const int64_t *steps, size_t n) {
    TSR_TRY(tsr_backend_declare_rotations(D(be)->subject, steps, n));
    return tsr_backend_declare_rotations(D(be)->reference, steps, n);
}

static void d_destroy(tsr_backend *be) {
    debug *d = D(be);
    if (!d) return;
    tsr_free(d->xs);
    tsr_free(d->xr);
    pthread_mutex_destroy(&d->mu);
    tsr_free(d);
    be->impl = NULL;
}

static const tsr_backend_vtable debug_vt = {
    .name = "debug",
    .encrypt = d_encrypt,
    .encode = d_encode,
    .decrypt = d_decrypt,
    .copy = d_copy,
    .release = d_release,
    .add = d_add,
    .add_const = d_add_const,
    .mul = d_mul,
    .mul_const = d_mul_const,
    .rotate = d_rotate,
    .rescale = d_rescale,
    .drop_level = d_drop_level,
    .bootstrap = d_bootstrap,
    .declare_rotations = d_declare,
    .destroy = d_destroy,
};

tsr_status tsr_backend_debug_create(tsr_backend *subject, tsr_backend *reference, double threshold,
                                    tsr_backend **out) {
    *out = NULL;
    if (subject->slots != reference->slots || subject->top_level != reference->top_level)
        return tsr_fail(TSR_ERR_MISMATCH,
                        "debug backend: %s has %lld slots and top level %d, %s has %lld and %d; "
                        "create the reference from the subject's parameters",
                        subject->vt->name, (long long)subject->slots, subject->top_level,
                        reference->vt->name, (long long)reference->slots, reference->top_level);
    for (int l = 0; l <= subject->top_level; l++)
        if (fabs(subject->primes[l] / reference->primes[l] - 1) > 1e-15)
            return tsr_fail(TSR_ERR_MISMATCH,
                            "debug backend: prime q_%d differs (%.17g vs %.17g); give the "
                            "reference the subject's prime chain",
                            l, subject->primes[l], reference->primes[l]);
    if (!subject->can_decrypt || !reference->can_decrypt)
        return tsr_fail(TSR_ERR_UNSUPPORTED,
                        "debug backend: both backends must decrypt (a secret key, values "
                        "tracked)");
    if (!(threshold >= 0))
        return tsr_fail(TSR_ERR_INVALID_ARG, "debug backend: threshold %g must be >= 0", threshold);
    int boot_s = tsr_backend_boot_level(subject), boot_r = tsr_backend_boot_level(reference);
    if (boot_s && boot_r && boot_s != boot_r)
        return tsr_fail(TSR_ERR_MISMATCH,
                        "debug backend: %s bootstraps to level %d but %s to level %d; give the "
                        "reference the subject's bootstrapping level",
                        subject->vt->name, boot_s, reference->vt->name, boot_r);
    debug *d = tsr_calloc(sizeof *d);
    if (!d) return tsr_fail(TSR_ERR_NOMEM, "out of memory creating the debug backend");
    d->subject = subject;
    d->reference = reference;
    d->xs = tsr_calloc_array((size_t)subject->slots, sizeof(double));
    d->xr = tsr_calloc_array((size_t)subject->slots, sizeof(double));
    pthread_mutex_init(&d->mu, NULL);
    d->rep.threshold = threshold;
    d->rep.first_index = -1;
    tsr_backend *be = NULL;
    tsr_status st =
        (!d->xs || !d->xr)
            ? tsr_fail(TSR_ERR_NOMEM, "out of memory creating the debug backend")
            : tsr_backend_init(&be, &debug_vt, d, subject->slots, subject->top_level,
                               subject->default_scale, subject->primes, subject->scale_tol);
    if (st != TSR_OK) {
        tsr_free(d->xs);
        tsr_free(d->xr);
        pthread_mutex_destroy(&d->mu);
        tsr_free(d);
        return st;
    }
    /* Start from what both already allow. */
    for (int64_t s = 1; s < be->slots; s++)
        be->declared[s] = subject->declared[s] && reference->declared[s];
    be->policy = subject->policy;
    if (boot_s && boot_r) tsr_backend_set_boot_level(be, boot_s);
    *out = be;
    return TSR_OK;
}

void tsr_backend_debug_report(const tsr_backend *be, tsr_debug_report *out) {
    TSR_REQUIRE(be->vt == &debug_vt, "tsr_backend_debug_report: not a debug backend");
    *out = D(be)->rep;
}

void tsr_backend_debug_trace(tsr_backend *be, FILE *trace) {
    TSR_REQUIRE(be->vt == &debug_vt, "tsr_backend_debug_trace: not a debug backend");
    D(be)->trace = trace;
}

static double bits(double div) {
    return div > 0 ? -log2(div) : 60.0;
}

void tsr_backend_debug_print(const tsr_backend *be, FILE *out) {
    tsr_debug_report r;
    tsr_backend_debug_report(be, &r);
    fprintf(out, "debug backend: %llu operations compared (%s vs %s)\n", (unsigned long long)r.ops,
            D(be)->subject->vt->name, D(be)->reference->vt->name);
    for (int k = 0; k < TSR_DEBUG_OP_COUNT_; k++) {
        if (!r.count[k]) continue;
        fprintf(out, "  %-10s %8llu ops  max divergence %.3g (%.1f bits)\n", op_names[k],
                (unsigned long long)r.count[k], r.max_by_op[k], bits(r.max_by_op[k]));
    }
    fprintf(out, "  largest divergence %.3g (%.1f bits) at operation #%llu (%s)\n",
            r.max_divergence, bits(r.max_divergence), (unsigned long long)r.max_index,
            op_names[r.max_op]);
    if (r.first_index >= 0)
        fprintf(out,
                "  first above the threshold %.3g: operation #%lld (%s, level %d), divergence "
                "%.3g\n",
                r.threshold, (long long)r.first_index, op_names[r.first_op], r.first_level,
                r.first_divergence);
    else
        fprintf(out, "  nothing above the threshold %.3g\n", r.threshold);
}
