/*
 * tile/ckks_backend.c - the ckks backend: tile-tensor vectors are CKKS
 * ciphertexts (include/tessera/ckks.h) with all N/2 slots used.
 *
 * Mapping of the backend interface onto the CKKS evaluator:
 *   add/sub          tsr_ckks_add / sub / add_plain / sub_plain
 *   add_const        tsr_ckks_add_const (encoded at the ciphertext's scale)
 *   mul              tsr_ckks_mul_relin, or tsr_ckks_mul_plain
 *   mul_const(c, s)  tsr_ckks_mul_int(round(c * s)) and the scale times s:
 *                    exactly a constant encoded at scale s, without an encode
 *   rotate           tsr_ckks_rotate, or tsr_ckks_rotate_hoisted for groups
 *   rotate_sums      step by step: tsr_ckks_rotate_many of up to TSR_ROTATE_SUM_CHUNK
 *                    vectors by the step (one key's blocks serve them all), then
 *                    tsr_ckks_add of each
 *   rescale, drop    tsr_ckks_rescale, tsr_ckks_drop_level
 *   bootstrap        tsr_circuits_bootstrap_real: two vectors per run of the
 *                    circuit given by tsr_backend_ckks_set_bootstrap
 *   lincomb          tsr_ckks_lincomb (fused integer multiply-accumulate)
 *   sq_lincomb       tsr_ckks_mul (no relinearization) per input, tsr_ckks_lincomb
 *                    of the 3-polynomial squares, then one relinearization and
 *                    rescale per output (lazy relinearization: a dense layer
 *                    after a square activation relinearizes its outputs, not
 *                    its inputs)
 *   prod_lincomb     the same for sums of products of two vectors (a contraction:
 *                    attention's Q K^T, scores x V), per output, on threads over outputs
 * Plaintexts are immutable once encoded, so copies share them (reference
 * count) and dropping a plaintext's level is free (the evaluator accepts
 * plaintexts above the ciphertext's level). Evaluators and encoders own
 * scratch memory and are kept in a pool, so several threads may compute on
 * one backend at once. Rotation keys: the Galois keys given at creation
 * define the declared steps; declaring more generates them when the backend
 * holds the secret key.
 */
#include "tile/backend.h"

#include "core/alloc.h"
#include "core/error.h"
#include "core/io.h"

#include "tessera/ckks.h"

#include <math.h>
#ifdef _OPENMP
#include <omp.h>
#endif
#include <pthread.h>
#include <stdio.h>
#include <string.h>

typedef struct shared_pt {
    tsr_ckks_plaintext *pt;
    int refs;
} shared_pt;

typedef struct ctx {
    tsr_ckks_evaluator *ev;
    tsr_ckks_encoder *enc;
    struct ctx *next;
} ctx;

typedef struct ckks_be {
    tsr_ckks_params *params;
    const tsr_ckks_public_key *pk;
    const tsr_ckks_secret_key *sk;
    const tsr_ckks_relin_key *rk;
    tsr_ckks_galois_keys *gk;
    int own_gk;
    pthread_mutex_t mu;
    const tsr_circuits_boot *boot; /* borrowed; NULL: no bootstrapping */
    ctx *pool;                     /* free evaluator/encoder pairs */
    double *zeros;
} ckks_be;

static ckks_be *K(const tsr_backend *be) {
    return (ckks_be *)be->impl;
}

static tsr_ckks_ciphertext *CT(const tsr_bvec *v) {
    return (tsr_ckks_ciphertext *)v->impl;
}

static shared_pt *PT(const tsr_bvec *v) {
    return (shared_pt *)v->impl;
}

static tsr_status ctx_get(tsr_backend *be, ctx **out) {
    ckks_be *k = K(be);
    pthread_mutex_lock(&k->mu);
    ctx *c = k->pool;
    if (c) k->pool = c->next;
    pthread_mutex_unlock(&k->mu);
    if (!c) {
        c = tsr_calloc(sizeof *c);
        if (!c) return tsr_fail(TSR_ERR_NOMEM, "out of memory for a CKKS evaluator");
        tsr_status st = tsr_ckks_evaluator_create(&c->ev, k->params, k->rk, k->gk);
        if (st == TSR_OK) st = tsr_ckks_encoder_create(&c->enc, k->params);
        if (st != TSR_OK) {
            tsr_ckks_evaluator_free(c->ev);
            tsr_ckks_encoder_free(c->enc);
            tsr_free(c);
            return st;
        }
    }
    *out = c;
    return TSR_OK;
}

static void ctx_put(tsr_backend *be, ctx *c) {
    ckks_be *k = K(be);
    pthread_mutex_lock(&k->mu);
    c->next = k->pool;
    k->pool = c;
    pthread_mutex_unlock(&k->mu);
}

static void pool_clear(ckks_be *k) {
    while (k->pool) {
        ctx *c = k->pool;
        k->pool = c->next;
        tsr_ckks_evaluator_free(c->ev);
        tsr_ckks_encoder_free(c->enc);
        tsr_free(c);
    }
}

/* Encode slot values (NULL: zeros) into a fresh plaintext at level and scale. */
static tsr_status encode(tsr_backend *be, ctx *c, const double *values, int level, double scale,
                         tsr_ckks_plaintext **out) {
    *out = NULL;
    TSR_TRY(tsr_ckks_plaintext_create(out, K(be)->params));
    tsr_status st = tsr_ckks_encode_real(c->enc, *out, values ? values : K(be)->zeros,
                                         (size_t)be->slots, level, scale);
    if (st != TSR_OK) {
        tsr_ckks_plaintext_free(*out);
        *out = NULL;
    }
    return st;
}

static tsr_status c_encode(tsr_backend *be, const double *values, tsr_bvec *out) {
    ctx *c;
    TSR_TRY(ctx_get(be, &c));
    shared_pt *s = tsr_calloc(sizeof *s);
    tsr_status st = s ? encode(be, c, values, out->level, out->scale, &s->pt)
                      : tsr_fail(TSR_ERR_NOMEM, "out of memory encoding");
    ctx_put(be, c);
    if (st != TSR_OK) {
        tsr_free(s);
        return st;
    }
    s->refs = 1;
    out->impl = s;
    return TSR_OK;
}

static tsr_status c_encrypt(tsr_backend *be, const double *values, tsr_bvec *out) {
    ckks_be *k = K(be);
    if (!k->pk && !k->sk)
        return tsr_fail(TSR_ERR_KEY_MISSING,
                        "the ckks backend has neither a public nor a secret key to encrypt with");
    ctx *c;
    TSR_TRY(ctx_get(be, &c));
    tsr_ckks_plaintext *pt;
    tsr_status st = encode(be, c, values, out->level, out->scale, &pt);
    ctx_put(be, c);
    TSR_TRY(st);
    tsr_ckks_ciphertext *ct = NULL;
    st = tsr_ckks_ciphertext_create(&ct, k->params);
    if (st == TSR_OK)
        st = k->pk ? tsr_ckks_encrypt(k->pk, ct, pt) : tsr_ckks_encrypt_symmetric(k->sk, ct, pt);
    tsr_ckks_plaintext_free(pt);
    if (st != TSR_OK) {
        tsr_ckks_ciphertext_free(ct);
        return st;
    }
    out->impl = ct;
    return TSR_OK;
}

static tsr_status c_decrypt(tsr_backend *be, const tsr_bvec *v, double *values) {
    ckks_be *k = K(be);
    ctx *c;
    TSR_TRY(ctx_get(be, &c));
    tsr_status st;
    if (v->is_plain) {
        st = tsr_ckks_decode_real(c->enc, PT(v)->pt, values, (size_t)be->slots, NULL);
    } else {
        tsr_ckks_plaintext *pt = NULL;
        st = tsr_ckks_plaintext_create(&pt, k->params);
        if (st == TSR_OK) st = tsr_ckks_decrypt(k->sk, pt, CT(v));
        if (st == TSR_OK) st = tsr_ckks_decode_real(c->enc, pt, values, (size_t)be->slots, NULL);
        tsr_ckks_plaintext_free(pt);
    }
    ctx_put(be, c);
    return st;
}

static tsr_status c_copy(tsr_backend *be, const tsr_bvec *src, tsr_bvec *dst) {
    (void)be;
    if (src->is_plain) {
        __atomic_fetch_add(&PT(src)->refs, 1, __ATOMIC_RELAXED);
        dst->impl = src->impl;
        return TSR_OK;
    }
    tsr_ckks_ciphertext *ct;
    TSR_TRY(tsr_ckks_ciphertext_clone(&ct, CT(src)));
    dst->impl = ct;
    return TSR_OK;
}

static void c_release(tsr_backend *be, tsr_bvec *v) {
    (void)be;
    if (v->is_plain) {
        shared_pt *s = PT(v);
        if (__atomic_sub_fetch(&s->refs, 1, __ATOMIC_ACQ_REL) == 0) {
            tsr_ckks_plaintext_free(s->pt);
            tsr_free(s);
        }
    } else {
        tsr_ckks_ciphertext_free(CT(v));
    }
    v->impl = NULL;
}

static tsr_status c_add(tsr_backend *be, tsr_bvec *dst, const tsr_bvec *src, int sign) {
    ctx *c;
    TSR_TRY(ctx_get(be, &c));
    tsr_status st;
    if (src->is_plain)
        st = sign > 0 ? tsr_ckks_add_plain(c->ev, CT(dst), CT(dst), PT(src)->pt)
                      : tsr_ckks_sub_plain(c->ev, CT(dst), CT(dst), PT(src)->pt);
    else
        st = sign > 0 ? tsr_ckks_add(c->ev, CT(dst), CT(dst), CT(src))
                      : tsr_ckks_sub(c->ev, CT(dst), CT(dst), CT(src));
    ctx_put(be, c);
    return st;
}

static tsr_status c_add_const(tsr_backend *be, tsr_bvec *dst, double cst) {
    ctx *c;
    TSR_TRY(ctx_get(be, &c));
    tsr_status st = tsr_ckks_add_const(c->ev, CT(dst), CT(dst), cst, 0.0);
    ctx_put(be, c);
    return st;
}

static tsr_status c_mul(tsr_backend *be, tsr_bvec *dst, const tsr_bvec *src) {
    ctx *c;
    TSR_TRY(ctx_get(be, &c));
    tsr_status st = src->is_plain ? tsr_ckks_mul_plain(c->ev, CT(dst), CT(dst), PT(src)->pt)
                                  : tsr_ckks_mul_relin(c->ev, CT(dst), CT(dst), CT(src));
    ctx_put(be, c);
    return st;
}

static tsr_status c_mul_to(tsr_backend *be, tsr_bvec *out, const tsr_bvec *a, const tsr_bvec *b) {
    tsr_ckks_ciphertext *ct = out->impl;
    if (!ct) TSR_TRY(tsr_ckks_ciphertext_create(&ct, K(be)->params));
    ctx *c;
    tsr_status st = ctx_get(be, &c);
    if (st == TSR_OK) {
        st = b->is_plain ? tsr_ckks_mul_plain(c->ev, ct, CT(a), PT(b)->pt)
                         : tsr_ckks_mul_relin(c->ev, ct, CT(a), CT(b));
        ctx_put(be, c);
    }
    if (st != TSR_OK) {
        if (!out->impl) tsr_ckks_ciphertext_free(ct);
        return st;
    }
    out->impl = ct;
    return TSR_OK;
}

/*
 * A constant encoded at scale cscale. Integers (cscale 1) are exact products
 * (tsr_ckks_mul_int). Otherwise tsr_ckks_mul_const encodes at its rule-4
 * scale sc (landing on the next canonical scale); passing c * cscale / sc
 * makes the integer it multiplies by round(c * cscale), and the scale is
 * then set to s * cscale: exactly a constant at scale cscale.
 */
static tsr_status c_mul_const(tsr_backend *be, tsr_bvec *dst, double cst, double cscale) {
    ckks_be *k = K(be);
    tsr_ckks_ciphertext *ct = CT(dst);
    double scale = tsr_ckks_ciphertext_scale(ct);
    int level = tsr_ckks_ciphertext_level(ct);
    ctx *c;
    TSR_TRY(ctx_get(be, &c));
    tsr_status st;
    if (cscale == 1.0 && cst == nearbyint(cst)) {
        st = tsr_ckks_mul_int(c->ev, ct, ct, (int64_t)cst);
    } else if (level < 1) {
        st = tsr_fail(TSR_ERR_LEVEL,
                      "a constant at scale 2^%.1f needs a rescale afterwards, but level 0 has no "
                      "depth left",
                      log2(cscale));
    } else {
        double sc = tsr_ckks_params_scale(k->params, level - 1) *
                    (double)tsr_ckks_params_prime(k->params, level) / scale;
        st = tsr_ckks_mul_const(c->ev, ct, ct, cst * cscale / sc, 0.0);
        if (st == TSR_OK) st = tsr_ckks_ciphertext_set_scale(ct, scale * cscale);
    }
    ctx_put(be, c);
    return st;
}

/*
 * The outputs of a sum-of-products kernel: *o, n_out fresh ciphertexts (an array of at least
 * one entry; on failure the ones made so far, the rest NULL). end_outs hands them to outs when
 * st is TSR_OK, else frees them, frees the array and returns st.
 */
static tsr_status new_outs(tsr_backend *be, size_t n_out, tsr_ckks_ciphertext ***o) {
    *o = tsr_calloc_array(n_out ? n_out : 1, sizeof **o);
    if (!*o) return tsr_fail(TSR_ERR_NOMEM, "out of memory");
    tsr_status st = TSR_OK;
    for (size_t j = 0; j < n_out && st == TSR_OK; j++)
        st = tsr_ckks_ciphertext_create(&(*o)[j], K(be)->params);
    return st;
}

static tsr_status end_outs(tsr_bvec *const *outs, size_t n_out, tsr_ckks_ciphertext **o,
                           tsr_status st) {
    for (size_t j = 0; o && j < n_out; j++) {
        if (st == TSR_OK)
            outs[j]->impl = o[j];
        else
            tsr_ckks_ciphertext_free(o[j]);
    }
    tsr_free(o);
    return st;
}

static tsr_status c_lincomb(tsr_backend *be, tsr_bvec *const *outs, size_t n_out,
                            const tsr_bvec *const *ins, size_t n_in, const int64_t *row_ptr,
                            const int64_t *cols, const double *vals, double cscale) {
    tsr_ckks_ciphertext **o = NULL;
    const tsr_ckks_ciphertext **in = tsr_calloc_array(n_in ? n_in : 1, sizeof *in);
    tsr_status st = in ? TSR_OK : tsr_fail(TSR_ERR_NOMEM, "out of memory");
    for (size_t i = 0; i < n_in && st == TSR_OK; i++) in[i] = CT(ins[i]);
    if (st == TSR_OK) st = new_outs(be, n_out, &o);
    if (st == TSR_OK) st = tsr_ckks_lincomb(o, n_out, in, n_in, row_ptr, cols, vals, cscale);
    tsr_free((void *)in);
    return end_outs(outs, n_out, o, st);
}

/* Record the first failure of a parallel loop (its message is per thread). */
static void par_fail(int *stop, tsr_status *first, char *msg, size_t cap, tsr_status st) {
#ifdef _OPENMP
#pragma omp critical(ckks_backend_par_fail)
#endif
    if (!*stop) {
        *first = st;
        snprintf(msg, cap, "%s", tsr_last_error());
        __atomic_store_n(stop, 1, __ATOMIC_RELAXED);
    }
}

static tsr_status c_sq_lincomb(tsr_backend *be, tsr_bvec *const *outs, size_t n_out,
                               const tsr_bvec *const *ins, size_t n_in, const int64_t *row_ptr,
                               const int64_t *cols, const double *vals, double cscale) {
    tsr_ckks_params *params = K(be)->params;
    tsr_ckks_ciphertext **o = NULL;
    tsr_ckks_ciphertext **sq = tsr_calloc_array(n_in, sizeof *sq);
    tsr_status st = sq ? TSR_OK : tsr_fail(TSR_ERR_NOMEM, "out of memory");
    for (size_t i = 0; i < n_in && st == TSR_OK; i++)
        st = tsr_ckks_ciphertext_create(&sq[i], params);
    if (st == TSR_OK) st = new_outs(be, n_out, &o);
    int stop = 0;
    tsr_status first = TSR_OK;
    char msg[512] = "";
    /* The squares, 3 polynomials each: no key switch, no rescale yet. */
    if (st == TSR_OK) {
#ifdef _OPENMP
#pragma omp parallel for schedule(dynamic, 4)
#endif
        for (int64_t i = 0; i < (int64_t)n_in; i++) {
            if (__atomic_load_n(&stop, __ATOMIC_RELAXED)) continue;
            ctx *c;
            tsr_status s = ctx_get(be, &c);
            if (s == TSR_OK) {
                s = tsr_ckks_mul(c->ev, sq[i], CT(ins[i]), CT(ins[i]));
                ctx_put(be, c);
            }
            if (s != TSR_OK) par_fail(&stop, &first, msg, sizeof msg, s);
        }
        if (stop) st = tsr_fail(first, "%s", msg);
    }
    if (st == TSR_OK)
        st = tsr_ckks_lincomb(o, n_out, (const tsr_ckks_ciphertext *const *)sq, n_in, row_ptr, cols,
                              vals, cscale);
    for (size_t i = 0; sq && i < n_in; i++) tsr_ckks_ciphertext_free(sq[i]);
    tsr_free(sq);
    /* One relinearization and rescale per output. */
    if (st == TSR_OK) {
#ifdef _OPENMP
#pragma omp parallel for schedule(dynamic, 1)
#endif
        for (int64_t j = 0; j < (int64_t)n_out; j++) {
            if (__atomic_load_n(&stop, __ATOMIC_RELAXED)) continue;
            ctx *c;
            tsr_status s = ctx_get(be, &c);
            if (s == TSR_OK) {
                s = tsr_ckks_relinearize(c->ev, o[j], o[j]);
                if (s == TSR_OK) s = tsr_ckks_rescale(c->ev, o[j], o[j]);
                ctx_put(be, c);
            }
            if (s != TSR_OK) par_fail(&stop, &first, msg, sizeof msg, s);
        }
        if (stop) st = tsr_fail(first, "%s", msg);
    }
    return end_outs(outs, n_out, o, st);
}

/* Per output (OpenMP threads over outputs, at most TSR_PROD_LINCOMB_THREADS of them): its
 * products unrelinearized (3 polynomials), their combination, one relinearization and
 * rescale. Holds one output's products per thread, never all P of them. */
static tsr_status c_prod_lincomb(tsr_backend *be, tsr_bvec *const *outs, size_t n_out,
                                 const tsr_bvec *const *a, const tsr_bvec *const *b,
                                 const int64_t *row_ptr, const int64_t *ia, const int64_t *ib,
                                 const double *vals, double cscale) {
    tsr_ckks_params *params = K(be)->params;
    tsr_ckks_ciphertext **o = NULL;
    tsr_status st = new_outs(be, n_out, &o);
    int stop = 0;
    tsr_status first = TSR_OK;
    char msg[512] = "";
    if (st == TSR_OK) {
#ifdef _OPENMP
#pragma omp parallel for schedule(dynamic, 1) num_threads(TSR_PROD_LINCOMB_THREADS)
#endif
        for (int64_t j = 0; j < (int64_t)n_out; j++) {
            if (__atomic_load_n(&stop, __ATOMIC_RELAXED)) continue;
            int64_t k0 = row_ptr[j], nk = row_ptr[j + 1] - k0, n = nk ? nk : 1;
            tsr_ckks_ciphertext **pr = tsr_calloc_array((size_t)n, sizeof *pr);
            int64_t *cols = tsr_calloc_array((size_t)n, sizeof *cols);
            double zero = 0.0;
            int64_t rp[2] = { 0, n };
            ctx *c = NULL;
            tsr_status s = (pr && cols) ? TSR_OK : tsr_fail(TSR_ERR_NOMEM, "out of memory");
            if (s == TSR_OK) s = ctx_get(be, &c);
            for (int64_t k = 0; k < n && s == TSR_OK; k++) {
                cols[k] = k;
                s = tsr_ckks_ciphertext_create(&pr[k], params);
                if (s == TSR_OK)
                    s = nk ? tsr_ckks_mul(c->ev, pr[k], CT(a[ia[k0 + k]]), CT(b[ib[k0 + k]]))
                           : tsr_ckks_mul(c->ev, pr[k], CT(a[0]), CT(b[0]));
            }
            if (s == TSR_OK)
                s = tsr_ckks_lincomb(&o[j], 1, (const tsr_ckks_ciphertext *const *)pr, (size_t)n,
                                     rp, cols, nk ? vals + k0 : &zero, cscale);
            for (int64_t k = 0; pr && k < n; k++) tsr_ckks_ciphertext_free(pr[k]);
            tsr_free(pr);
            tsr_free(cols);
            if (s == TSR_OK) s = tsr_ckks_relinearize(c->ev, o[j], o[j]);
            if (s == TSR_OK) s = tsr_ckks_rescale(c->ev, o[j], o[j]);
            if (c) ctx_put(be, c);
            if (s != TSR_OK) par_fail(&stop, &first, msg, sizeof msg, s);
        }
        if (stop) st = tsr_fail(first, "%s", msg);
    }
    return end_outs(outs, n_out, o, st);
}

static tsr_status c_rotate(tsr_backend *be, const tsr_bvec *src, const int64_t *steps, size_t n,
                           tsr_bvec **outs) {
    ckks_be *k = K(be);
    tsr_ckks_ciphertext **cts = tsr_calloc_array(n, sizeof *cts);
    int *st32 = tsr_calloc_array(n, sizeof *st32);
    tsr_status st = (!cts || !st32) ? tsr_fail(TSR_ERR_NOMEM, "out of memory rotating") : TSR_OK;
    for (size_t i = 0; i < n && st == TSR_OK; i++) {
        st = tsr_ckks_ciphertext_create(&cts[i], k->params);
        st32[i] = (int)steps[i];
    }
    ctx *c = NULL;
    if (st == TSR_OK) st = ctx_get(be, &c);
    if (st == TSR_OK) {
        st = n == 1 ? tsr_ckks_rotate(c->ev, cts[0], CT(src), st32[0])
                    : tsr_ckks_rotate_hoisted(c->ev, cts, CT(src), st32, n);
        ctx_put(be, c);
    }
    for (size_t i = 0; cts && i < n; i++) {
        if (st == TSR_OK)
            outs[i]->impl = cts[i];
        else
            tsr_ckks_ciphertext_free(cts[i]);
    }
    tsr_free(cts);
    tsr_free(st32);
    return st;
}

/* Step outer, vectors inner: chunks of vectors rotated by one step with one key's blocks
 * (tsr_ckks_rotate_many), each added back to its vector. Per vector the operations are those
 * of the generic loop, so the words are the same. */
static tsr_status c_rotate_sums(tsr_backend *be, tsr_bvec *const *vs, size_t n,
                                const int64_t *steps, size_t nsteps) {
    ckks_be *k = K(be);
    tsr_ckks_ciphertext *rot[TSR_ROTATE_SUM_CHUNK] = { NULL };
    const tsr_ckks_ciphertext *in[TSR_ROTATE_SUM_CHUNK];
    const size_t chunk = n < TSR_ROTATE_SUM_CHUNK ? n : TSR_ROTATE_SUM_CHUNK;
    tsr_status st = TSR_OK;
    for (size_t j = 0; j < chunk && st == TSR_OK; j++)
        st = tsr_ckks_ciphertext_create(&rot[j], k->params);
    ctx *c = NULL;
    if (st == TSR_OK) st = ctx_get(be, &c);
    for (size_t s = 0; s < nsteps && st == TSR_OK; s++)
        for (size_t i0 = 0; i0 < n && st == TSR_OK; i0 += chunk) {
            const size_t m = n - i0 < chunk ? n - i0 : chunk;
            for (size_t j = 0; j < m; j++) in[j] = CT(vs[i0 + j]);
            st = tsr_ckks_rotate_many(c->ev, rot, in, m, (int)steps[s]);
            for (size_t j = 0; j < m && st == TSR_OK; j++)
                st = tsr_ckks_add(c->ev, CT(vs[i0 + j]), CT(vs[i0 + j]), rot[j]);
        }
    if (c) ctx_put(be, c);
    for (size_t j = 0; j < chunk; j++) tsr_ckks_ciphertext_free(rot[j]);
    return st;
}

static tsr_status c_rescale(tsr_backend *be, tsr_bvec *v) {
    ctx *c;
    TSR_TRY(ctx_get(be, &c));
    tsr_status st = tsr_ckks_rescale(c->ev, CT(v), CT(v));
    ctx_put(be, c);
    return st;
}

static tsr_status c_drop_level(tsr_backend *be, tsr_bvec *v, int level) {
    if (v->is_plain) return TSR_OK; /* the evaluator takes plaintexts above the level */
    ctx *c;
    TSR_TRY(ctx_get(be, &c));
    tsr_status st = tsr_ckks_drop_level(c->ev, CT(v), CT(v), level);
    ctx_put(be, c);
    return st;
}

static tsr_status c_declare(tsr_backend *be, const int64_t *steps, size_t n) {
    ckks_be *k = K(be);
    if (!k->sk) {
        int64_t missing = steps[0];
        return tsr_fail(TSR_ERR_KEY_MISSING,
                        "the ckks backend has no Galois key for rotation by %lld (and %zu more) "
                        "and no secret key to make them: generate the keys the plan needs on "
                        "the client",
                        (long long)missing, n - 1);
    }
    int *s32 = tsr_calloc_array(n, sizeof *s32);
    if (!s32) return tsr_fail(TSR_ERR_NOMEM, "out of memory declaring rotations");
    for (size_t i = 0; i < n; i++) s32[i] = (int)steps[i];
    tsr_status st;
    pthread_mutex_lock(&k->mu);
    if (k->gk) {
        st = tsr_ckks_galois_keys_add(k->gk, k->sk, s32, n, 0);
    } else {
        st = tsr_ckks_galois_keys_create(&k->gk, k->sk, s32, n, 0);
        if (st == TSR_OK) k->own_gk = 1;
        /* Evaluators hold the key set they were made with: make new ones. */
        pool_clear(k);
    }
    pthread_mutex_unlock(&k->mu);
    tsr_free(s32);
    return st;
}

/* Two vectors per run of the circuit (real slots); a pair at different levels runs apart. */
static tsr_status c_bootstrap(tsr_backend *be, tsr_bvec *const *vs, size_t n) {
    ctx *c;
    TSR_TRY(ctx_get(be, &c));
    const tsr_circuits_boot *b = K(be)->boot;
    tsr_status st = TSR_OK;
    for (size_t i = 0; i < n && st == TSR_OK; i += 2) {
        tsr_ckks_ciphertext *x = CT(vs[i]), *y = i + 1 < n ? CT(vs[i + 1]) : NULL;
        if (y && vs[i]->level != vs[i + 1]->level) {
            st = tsr_circuits_bootstrap_real(b, c->ev, x, NULL, x, NULL);
            if (st == TSR_OK) st = tsr_circuits_bootstrap_real(b, c->ev, y, NULL, y, NULL);
        } else {
            st = tsr_circuits_bootstrap_real(b, c->ev, x, y, x, y);
        }
    }
    ctx_put(be, c);
    return st;
}

static uint64_t c_vec_size(const tsr_backend *be, const tsr_bvec *v) {
    (void)be;
    if (!v->is_plain) return tsr_ckks_ciphertext_serialized_size(CT(v));
    uint8_t *buf;
    size_t len;
    if (tsr_ckks_plaintext_to_bytes(PT(v)->pt, &buf, &len) != TSR_OK) return 0;
    tsr_ckks_bytes_free(buf);
    return len;
}

static uint64_t c_vec_max_size(const tsr_backend *be) {
    /* Three polynomials of top_level+1 limbs of N words, plus framing. */
    uint64_t n = (uint64_t)be->slots * 2;
    return 3 * ((uint64_t)be->top_level + 1) * n * 8 + 4096;
}

static tsr_status c_write_vec(tsr_backend *be, const tsr_bvec *v, struct tsr_writer *w) {
    (void)be;
    uint8_t *buf;
    size_t len;
    TSR_TRY(v->is_plain ? tsr_ckks_plaintext_to_bytes(PT(v)->pt, &buf, &len)
                        : tsr_ckks_ciphertext_to_bytes(CT(v), &buf, &len));
    tsr_write_bytes(w, buf, len);
    tsr_ckks_bytes_free(buf);
    return TSR_OK;
}

static tsr_status c_read_vec(tsr_backend *be, const uint8_t *blob, uint64_t len, tsr_bvec *out) {
    ckks_be *k = K(be);
    int level;
    double scale;
    if (out->is_plain) {
        shared_pt *s = tsr_calloc(sizeof *s);
        if (!s) return tsr_fail(TSR_ERR_NOMEM, "out of memory reading a plaintext");
        tsr_status st = tsr_ckks_plaintext_from_bytes(&s->pt, k->params, blob, (size_t)len);
        if (st != TSR_OK) {
            tsr_free(s);
            return st;
        }
        s->refs = 1;
        out->impl = s;
        level = tsr_ckks_plaintext_level(s->pt);
        scale = tsr_ckks_plaintext_scale(s->pt);
    } else {
        tsr_ckks_ciphertext *ct;
        TSR_TRY(tsr_ckks_ciphertext_from_bytes(&ct, k->params, blob, (size_t)len));
        out->impl = ct;
        level = tsr_ckks_ciphertext_level(ct);
        scale = tsr_ckks_ciphertext_scale(ct);
        if (tsr_ckks_ciphertext_size(ct) != 2)
            return tsr_fail(TSR_ERR_FORMAT, "a tile tensor holds a ciphertext of size %d, not 2",
                            tsr_ckks_ciphertext_size(ct));
    }
    if (level != out->level || fabs(scale / out->scale - 1) > 0x1p-40)
        return tsr_fail(TSR_ERR_FORMAT,
                        "a tile's ciphertext is at level %d and scale 2^%.3f but the tile "
                        "tensor says level %d and scale 2^%.3f",
                        level, log2(scale), out->level, log2(out->scale));
    return TSR_OK;
}

static void c_fingerprint(const tsr_backend *be, uint8_t out[16]) {
    tsr_ckks_params_fingerprint(K(be)->params, out);
}

static void c_destroy(tsr_backend *be) {
    ckks_be *k = K(be);
    if (!k) return;
    pool_clear(k);
    if (k->own_gk) tsr_ckks_galois_keys_free(k->gk);
    tsr_free(k->zeros);
    pthread_mutex_destroy(&k->mu);
    tsr_free(k);
    be->impl = NULL;
}

static const tsr_backend_vtable ckks_vt = {
    .name = "ckks",
    .encrypt = c_encrypt,
    .encode = c_encode,
    .decrypt = c_decrypt,
    .copy = c_copy,
    .release = c_release,
    .add = c_add,
    .add_const = c_add_const,
    .mul = c_mul,
    .mul_to = c_mul_to,
    .mul_const = c_mul_const,
    .lincomb = c_lincomb,
    .sq_lincomb = c_sq_lincomb,
    .prod_lincomb = c_prod_lincomb,
    .rotate = c_rotate,
    .rotate_sums = c_rotate_sums,
    .rescale = c_rescale,
    .drop_level = c_drop_level,
    .bootstrap = c_bootstrap,
    .declare_rotations = c_declare,
    .file_kind = 2,
    .vec_size = c_vec_size,
    .vec_max_size = c_vec_max_size,
    .write_vec = c_write_vec,
    .read_vec = c_read_vec,
    .fingerprint = c_fingerprint,
    .destroy = c_destroy,
};

/* The tile backends rebuild the canonical scales by the uniform recursion
 * Delta_{l-1} = Delta_l^2 / q_l; a mixed chain (spec.low_levels > 0) breaks it
 * at level low_levels, so they refuse one. */
static tsr_status require_uniform(const tsr_ckks_params *p, const char *who) {
    tsr_ckks_param_spec spec;
    tsr_ckks_params_spec(p, &spec);
    if (spec.low_levels)
        return tsr_fail(TSR_ERR_INVALID_ARG,
                        "%s: the tile backends support uniform chains only (these parameters "
                        "are a mixed chain, %u low levels)",
                        who, spec.low_levels);
    return TSR_OK;
}

static tsr_status chain_of(const tsr_ckks_params *p, double **primes, int *top, double *scale) {
    *top = tsr_ckks_params_max_level(p);
    *primes = tsr_calloc_array((size_t)*top + 1, sizeof **primes);
    if (!*primes) return tsr_fail(TSR_ERR_NOMEM, "out of memory");
    for (int l = 0; l <= *top; l++) (*primes)[l] = (double)tsr_ckks_params_prime(p, l);
    *scale = tsr_ckks_params_scale(p, *top);
    return TSR_OK;
}

tsr_status tsr_backend_ckks_create(tsr_ckks_params *params, const tsr_ckks_public_key *pk,
                                   const tsr_ckks_secret_key *sk, const tsr_ckks_relin_key *rk,
                                   tsr_ckks_galois_keys *gk, tsr_backend **out) {
    *out = NULL;
    TSR_REQUIRE(params, "tsr_backend_ckks_create: params must not be NULL");
    TSR_TRY(require_uniform(params, "tsr_backend_ckks_create"));
    ckks_be *k = tsr_calloc(sizeof *k);
    if (!k) return tsr_fail(TSR_ERR_NOMEM, "out of memory creating the ckks backend");
    k->params = params;
    k->pk = pk;
    k->sk = sk;
    k->rk = rk;
    k->gk = gk;
    pthread_mutex_init(&k->mu, NULL);
    int64_t slots = (int64_t)tsr_ckks_params_slots(params);
    k->zeros = tsr_calloc_array((size_t)slots, sizeof(double));
    double *primes = NULL, scale = 0;
    int top = 0;
    tsr_status st = k->zeros ? chain_of(params, &primes, &top, &scale)
                             : tsr_fail(TSR_ERR_NOMEM, "out of memory");
    tsr_backend *be = NULL;
    if (st == TSR_OK) st = tsr_backend_init(&be, &ckks_vt, k, slots, top, scale, primes, 0x1p-40);
    tsr_free(primes);
    if (st != TSR_OK) {
        tsr_free(k->zeros);
        pthread_mutex_destroy(&k->mu);
        tsr_free(k);
        return st;
    }
    /* The canonical scales must agree with the CKKS core's. */
    for (int l = 0; l <= top; l++)
        TSR_ASSERT(fabs(be->scales[l] / tsr_ckks_params_scale(params, l) - 1) < 1e-12);
    be->can_decrypt = sk != NULL;
    if (gk) {
        int s = (int)slots;
        int *steps = tsr_calloc_array((size_t)s, sizeof *steps);
        if (!steps) {
            tsr_backend_free(be);
            return tsr_fail(TSR_ERR_NOMEM, "out of memory");
        }
        size_t n = tsr_ckks_galois_keys_steps(gk, steps, (size_t)s);
        for (size_t i = 0; i < n && i < (size_t)s; i++)
            be->declared[tsr_backend_norm_step(be, steps[i])] = 1;
        tsr_free(steps);
    }
    *out = be;
    return TSR_OK;
}

tsr_status tsr_backend_ckks_set_bootstrap(tsr_backend *be, const tsr_circuits_boot *b) {
    TSR_REQUIRE(be && b, "tsr_backend_ckks_set_bootstrap: NULL argument");
    if (be->vt != &ckks_vt)
        return tsr_fail(TSR_ERR_INVALID_ARG,
                        "tsr_backend_ckks_set_bootstrap: the %s backend is not ckks", be->vt->name);
    ctx *c;
    TSR_TRY(ctx_get(be, &c));
    tsr_status st = tsr_circuits_boot_check_keys(b, c->ev);
    ctx_put(be, c);
    TSR_TRY(st);
    tsr_circuits_boot_info info;
    tsr_circuits_boot_get_info(b, &info);
    K(be)->boot = b;
    tsr_backend_set_boot_level(be, info.out_level);
    return TSR_OK;
}

tsr_status tsr_backend_mockup_create_for(const tsr_ckks_params *params,
                                         const tsr_mockup_params *opts, tsr_backend **out) {
    *out = NULL;
    TSR_TRY(require_uniform(params, "tsr_backend_mockup_create_for"));
    tsr_mockup_params mp = *opts;
    double *primes = NULL, scale = 0;
    int top = 0;
    TSR_TRY(chain_of(params, &primes, &top, &scale));
    mp.slots = (int64_t)tsr_ckks_params_slots(params);
    mp.top_level = top;
    mp.scale_bits = log2(scale);
    mp.primes = primes;
    /* hybrid key switching: dnum digits of alpha primes over the special primes' product */
    mp.keyswitch_bits = 0;
    for (int i = 0; i < tsr_ckks_params_special_count(params); i++)
        mp.keyswitch_bits += log2((double)tsr_ckks_params_special_prime(params, i));
    int dnum = tsr_ckks_params_dnum(params);
    mp.keyswitch_alpha = dnum > 0 ? (top + dnum) / dnum : 1;
    tsr_status st = tsr_backend_mockup_create(&mp, out);
    tsr_free(primes);
    if (st == TSR_OK) {
        /* exp2(log2(x)) may differ from x in the last bit: use the exact chain. */
        tsr_backend *be = *out;
        be->default_scale = scale;
        be->scales[top] = scale;
        for (int l = top; l > 0; l--)
            be->scales[l - 1] = be->scales[l] * be->scales[l] / be->primes[l];
    }
    return st;
}
