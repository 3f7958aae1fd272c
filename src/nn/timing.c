/*
 * nn/timing.c - a backend that forwards every operation to another backend
 * and adds the time it took to a per-kind total (rotations, ct x ct, ct x
 * pt, constants, additions, rescales, encodes, others): the per-operation
 * half of the latency breakdown. Vectors are the inner backend's own, so
 * tile tensors made here can be saved and decrypted like the inner ones.
 * Times are wall-clock per call, summed over threads.
 */
#include "nn/nn_internal.h"

#include "core/alloc.h"
#include "core/error.h"
#include "core/progress.h"

#include <string.h>
#include <sys/resource.h>

typedef struct timing {
    tsr_backend *inner;
    tsr_backend_vtable vt; /* this wrapper's table (file_kind copied from inner) */
    double sec[TSR_NN_OP_COUNT_];
} timing;

static timing *T(const tsr_backend *be) {
    return (timing *)be->impl;
}

static void add_time(tsr_backend *be, int kind, double t0) {
    double dt = tsr_now() - t0;
    /* Doubles have no atomic add: compare-and-swap their bit patterns. */
    uint64_t *p = (uint64_t *)&T(be)->sec[kind];
    uint64_t ob = __atomic_load_n(p, __ATOMIC_RELAXED), nb;
    for (;;) {
        double ov, nv;
        memcpy(&ov, &ob, 8);
        nv = ov + dt;
        memcpy(&nb, &nv, 8);
        if (__atomic_compare_exchange_n(p, &ob, nb, 0, __ATOMIC_RELAXED, __ATOMIC_RELAXED)) return;
    }
}

#define IN(be) (T(be)->inner)
#define TIMED(be, kind, call)    \
    do {                         \
        double t0_ = tsr_now();  \
        tsr_status st_ = (call); \
        add_time(be, kind, t0_); \
        return st_;              \
    } while (0)

static tsr_status w_encrypt(tsr_backend *be, const double *v, tsr_bvec *out) {
    TIMED(be, TSR_NN_OP_OTHER, IN(be)->vt->encrypt(IN(be), v, out));
}
static tsr_status w_encode(tsr_backend *be, const double *v, tsr_bvec *out) {
    TIMED(be, TSR_NN_OP_ENCODE, IN(be)->vt->encode(IN(be), v, out));
}
static tsr_status w_decrypt(tsr_backend *be, const tsr_bvec *v, double *out) {
    TIMED(be, TSR_NN_OP_OTHER, IN(be)->vt->decrypt(IN(be), v, out));
}
static tsr_status w_copy(tsr_backend *be, const tsr_bvec *src, tsr_bvec *dst) {
    TIMED(be, TSR_NN_OP_OTHER, IN(be)->vt->copy(IN(be), src, dst));
}
static void w_release(tsr_backend *be, tsr_bvec *v) {
    IN(be)->vt->release(IN(be), v);
}
static tsr_status w_add(tsr_backend *be, tsr_bvec *dst, const tsr_bvec *src, int sign) {
    TIMED(be, TSR_NN_OP_ADD, IN(be)->vt->add(IN(be), dst, src, sign));
}
static tsr_status w_add_const(tsr_backend *be, tsr_bvec *dst, double c) {
    TIMED(be, TSR_NN_OP_ADD, IN(be)->vt->add_const(IN(be), dst, c));
}
static tsr_status w_mul(tsr_backend *be, tsr_bvec *dst, const tsr_bvec *src) {
    TIMED(be, src->is_plain ? TSR_NN_OP_MUL_PLAIN : TSR_NN_OP_MUL_CT,
          IN(be)->vt->mul(IN(be), dst, src));
}
static tsr_status w_mul_to(tsr_backend *be, tsr_bvec *out, const tsr_bvec *a, const tsr_bvec *b) {
    int kind = b->is_plain ? TSR_NN_OP_MUL_PLAIN : TSR_NN_OP_MUL_CT;
    tsr_backend *in = IN(be);
    if (in->vt->mul_to) TIMED(be, kind, in->vt->mul_to(in, out, a, b));
    /* No fused form: copy a into out, then multiply in place. */
    double t0 = tsr_now();
    if (out->impl) in->vt->release(in, out);
    out->impl = NULL;
    tsr_status st = in->vt->copy(in, a, out);
    add_time(be, TSR_NN_OP_OTHER, t0);
    if (st != TSR_OK) return st;
    /* out's shell already carries the product's scale; mul expects the old one. */
    double s = out->scale;
    out->scale = a->scale;
    t0 = tsr_now();
    st = in->vt->mul(in, out, b);
    add_time(be, kind, t0);
    out->scale = s;
    return st;
}
static tsr_status w_mul_const(tsr_backend *be, tsr_bvec *dst, double c, double cs) {
    TIMED(be, TSR_NN_OP_MUL_CONST, IN(be)->vt->mul_const(IN(be), dst, c, cs));
}
static tsr_status w_lincomb(tsr_backend *be, tsr_bvec *const *outs, size_t n_out,
                            const tsr_bvec *const *ins, size_t n_in, const int64_t *row_ptr,
                            const int64_t *cols, const double *vals, double cscale) {
    TIMED(be, TSR_NN_OP_MUL_CONST,
          IN(be)->vt->lincomb(IN(be), outs, n_out, ins, n_in, row_ptr, cols, vals, cscale));
}
/* Squares, combination and relinearizations in one call: timed as ct x ct products. */
static tsr_status w_sq_lincomb(tsr_backend *be, tsr_bvec *const *outs, size_t n_out,
                               const tsr_bvec *const *ins, size_t n_in, const int64_t *row_ptr,
                               const int64_t *cols, const double *vals, double cscale) {
    TIMED(be, TSR_NN_OP_MUL_CT,
          IN(be)->vt->sq_lincomb(IN(be), outs, n_out, ins, n_in, row_ptr, cols, vals, cscale));
}
static tsr_status w_prod_lincomb(tsr_backend *be, tsr_bvec *const *outs, size_t n_out,
                                 const tsr_bvec *const *a, const tsr_bvec *const *b,
                                 const int64_t *row_ptr, const int64_t *ia, const int64_t *ib,
                                 const double *vals, double cscale) {
    TIMED(be, TSR_NN_OP_MUL_CT,
          IN(be)->vt->prod_lincomb(IN(be), outs, n_out, a, b, row_ptr, ia, ib, vals, cscale));
}
static tsr_status w_rotate(tsr_backend *be, const tsr_bvec *src, const int64_t *steps, size_t n,
                           tsr_bvec **outs) {
    TIMED(be, TSR_NN_OP_ROTATE, IN(be)->vt->rotate(IN(be), src, steps, n, outs));
}
/* Rotate-and-sum in one call: timed as rotations (its additions, about 2 % of it, included). */
static tsr_status w_rotate_sums(tsr_backend *be, tsr_bvec *const *vs, size_t n,
                                const int64_t *steps, size_t nsteps) {
    TIMED(be, TSR_NN_OP_ROTATE, IN(be)->vt->rotate_sums(IN(be), vs, n, steps, nsteps));
}
/* Bootstrapping: booked under "other" (plans do not bootstrap yet; a plan that does wants its
 * own kind in TSR_NN_OP_*). */
static tsr_status w_bootstrap(tsr_backend *be, tsr_bvec *const *vs, size_t n) {
    TIMED(be, TSR_NN_OP_OTHER, IN(be)->vt->bootstrap(IN(be), vs, n));
}
static tsr_status w_rescale(tsr_backend *be, tsr_bvec *v) {
    TIMED(be, TSR_NN_OP_RESCALE, IN(be)->vt->rescale(IN(be), v));
}
static tsr_status w_drop(tsr_backend *be, tsr_bvec *v, int level) {
    TIMED(be, TSR_NN_OP_RESCALE, IN(be)->vt->drop_level(IN(be), v, level));
}
static tsr_status w_declare(tsr_backend *be, const int64_t *steps, size_t n) {
    return tsr_backend_declare_rotations(IN(be), steps, n);
}
static uint64_t w_vec_size(const tsr_backend *be, const tsr_bvec *v) {
    return IN(be)->vt->vec_size(IN(be), v);
}
static uint64_t w_vec_max_size(const tsr_backend *be) {
    return IN(be)->vt->vec_max_size(IN(be));
}
static tsr_status w_write_vec(tsr_backend *be, const tsr_bvec *v, struct tsr_writer *w) {
    return IN(be)->vt->write_vec(IN(be), v, w);
}
static tsr_status w_read_vec(tsr_backend *be, const uint8_t *blob, uint64_t len, tsr_bvec *out) {
    return IN(be)->vt->read_vec(IN(be), blob, len, out);
}
static void w_fingerprint(const tsr_backend *be, uint8_t out[16]) {
    tsr_backend_fingerprint(IN(be), out);
}
static void w_destroy(tsr_backend *be) {
    tsr_free(be->impl);
}

tsr_status nn_timing_backend_create(tsr_backend *inner, tsr_backend **out) {
    *out = NULL;
    timing *t = tsr_calloc(sizeof *t);
    if (!t) return tsr_fail(TSR_ERR_NOMEM, "out of memory");
    t->inner = inner;
    const tsr_backend_vtable *iv = inner->vt;
    /* Every optional entry of the inner table must be forwarded here (NULL only when the
     * inner one is NULL): a missing one silently turns a backend's kernel off behind the
     * runner (rotate_sums and bootstrap were each missed once). */
    t->vt = (tsr_backend_vtable){
        .name = iv->name,
        .encrypt = w_encrypt,
        .encode = w_encode,
        .decrypt = w_decrypt,
        .copy = w_copy,
        .release = w_release,
        .add = w_add,
        .add_const = w_add_const,
        .mul = w_mul,
        .mul_to = w_mul_to,
        .mul_const = w_mul_const,
        .lincomb = iv->lincomb ? w_lincomb : NULL,
        .sq_lincomb = iv->sq_lincomb ? w_sq_lincomb : NULL,
        .prod_lincomb = iv->prod_lincomb ? w_prod_lincomb : NULL,
        .rotate = w_rotate,
        .rotate_sums = iv->rotate_sums ? w_rotate_sums : NULL,
        .bootstrap = iv->bootstrap ? w_bootstrap : NULL,
        .rescale = w_rescale,
        .drop_level = w_drop,
        .declare_rotations = w_declare,
        .file_kind = iv->file_kind,
        .vec_size = iv->vec_size ? w_vec_size : NULL,
        .vec_max_size = iv->vec_max_size ? w_vec_max_size : NULL,
        .write_vec = iv->write_vec ? w_write_vec : NULL,
        .read_vec = iv->read_vec ? w_read_vec : NULL,
        .fingerprint = w_fingerprint,
        .destroy = w_destroy,
    };
    tsr_backend *be;
    tsr_status st = tsr_backend_init(&be, &t->vt, t, inner->slots, inner->top_level,
                                     inner->default_scale, inner->primes, inner->scale_tol);
    if (st != TSR_OK) {
        tsr_free(t);
        return st;
    }
    be->can_decrypt = inner->can_decrypt;
    be->policy = inner->policy;
    be->boot_level = inner->boot_level; /* as set on inner before the wrapper was made */
    memcpy(be->declared, inner->declared, (size_t)inner->slots);
    *out = be;
    return TSR_OK;
}

void nn_timing_get(tsr_backend *be, double seconds[TSR_NN_OP_COUNT_], int reset) {
    timing *t = T(be);
    for (int i = 0; i < TSR_NN_OP_COUNT_; i++) {
        seconds[i] = t->sec[i];
        if (reset) t->sec[i] = 0;
    }
}

double nn_peak_rss_mib(void) {
    struct rusage ru;
    if (getrusage(RUSAGE_SELF, &ru) != 0) return 0;
    return (double)ru.ru_maxrss / 1024.0;
}

static const char *const op_kind_names[TSR_NN_OP_COUNT_] = {
    "rotate", "mul_ct", "mul_plain", "mul_const", "add", "rescale", "encode", "other",
};

const char *tsr_nn_op_name(int op) {
    return op >= 0 && op < TSR_NN_OP_COUNT_ ? op_kind_names[op] : "?";
}
