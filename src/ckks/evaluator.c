/*
 * ckks/evaluator.c - homomorphic operations on RNS-CKKS ciphertexts:
 * add/sub/negate, products with ciphertexts, plaintexts and constants,
 * relinearization, rescaling (Cheon-Han-Kim-Kim-Song, SAC 2018), level and
 * scale alignment, rotations (with composition of the available keys),
 * conjugation and hoisted rotations (Halevi-Shoup, CRYPTO 2018).
 *
 * The level/scale rules are documented in tessera/ckks.h. Every operation
 * lets `out` alias its inputs: results that would overwrite an input while
 * it is still read are computed into an evaluator temporary and swapped in.
 * Limb loops run in the ring layer, parallel over limbs (OpenMP).
 */
#include "ckks/evaluator_internal.h"
#include "core/alloc.h"
#include "core/error.h"
#include "ring/vec.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ---- evaluator ------------------------------------------------------------------ */

tsr_status tsr_ckks_evaluator_create(tsr_ckks_evaluator **out, tsr_ckks_params *p,
                                     const tsr_ckks_relin_key *rk, const tsr_ckks_galois_keys *gk) {
    TSR_REQUIRE(out && p, "tsr_ckks_evaluator_create: NULL argument");
    *out = NULL;
    if (rk) TSR_TRY(ckks_params_check(p, rk->params, "the relinearization key"));
    if (gk) TSR_TRY(ckks_params_check(p, gk->params, "the Galois key set"));
    if (rk && gk && memcmp(rk->key_id, gk->key_id, sizeof rk->key_id) != 0)
        return tsr_fail(TSR_ERR_MISMATCH,
                        "the relinearization key and the Galois keys belong to different key "
                        "sets (made from different secret keys): use keys of one keygen run");
    tsr_ckks_evaluator *ev = tsr_calloc(sizeof *ev);
    if (!ev) return tsr_fail(TSR_ERR_NOMEM, "cannot allocate an evaluator");
    ev->params = ckks_params_ref(p);
    ev->rk = rk;
    ev->gk = gk;
    tsr_status st = TSR_OK;
    for (int i = 0; i < 3 && st == TSR_OK; i++) st = tsr_ckks_ciphertext_create(&ev->tmp[i], p);
    if (st == TSR_OK) {
        ev->poly = tsr_alloc((size_t)2 * (p->L + 1) * p->n * sizeof(uint64_t));
        if (!ev->poly) st = tsr_fail(TSR_ERR_NOMEM, "cannot allocate evaluator scratch");
    }
    if (st != TSR_OK) {
        tsr_ckks_evaluator_free(ev);
        return st;
    }
    *out = ev;
    return TSR_OK;
}

void tsr_ckks_evaluator_free(tsr_ckks_evaluator *ev) {
    if (!ev) return;
    tsr_ckks_evaluator_free(ev->twin);
    ckks_ks_scratch_free(ev);
    for (int i = 0; i < 3; i++) tsr_ckks_ciphertext_free(ev->tmp[i]);
    tsr_free(ev->poly);
    tsr_free(ev->via);
    tsr_free(ev->via_mask);
    tsr_ckks_params_free(ev->params);
    tsr_free(ev);
}

tsr_status ckks_evaluator_twin(tsr_ckks_evaluator *ev, tsr_ckks_evaluator **twin) {
    if (!ev->twin) TSR_TRY(tsr_ckks_evaluator_create(&ev->twin, ev->params, ev->rk, ev->gk));
    *twin = ev->twin;
    return TSR_OK;
}

/* ---- helpers ----------------------------------------------------------------------- */

static tsr_status check_ct(const tsr_ckks_evaluator *ev, const tsr_ckks_ciphertext *ct,
                           const char *what) {
    TSR_REQUIRE(ct, "tsr_ckks evaluator: NULL ciphertext");
    TSR_TRY(ckks_params_check(ev->params, ct->params, what));
    if (ct->level < 0) return tsr_fail(TSR_ERR_INVALID_ARG, "%s is empty", what);
    return TSR_OK;
}

static tsr_status check_out(const tsr_ckks_evaluator *ev, const tsr_ckks_ciphertext *out) {
    TSR_REQUIRE(out, "tsr_ckks evaluator: NULL output");
    return ckks_params_check(ev->params, out->params, "the output ciphertext");
}

static int scales_close(double a, double b) {
    return fabs(a - b) <= CKKS_SCALE_TOL * fmax(fabs(a), fabs(b));
}

/* Where to compute a result that may alias the inputs. */
static tsr_ckks_ciphertext *target(tsr_ckks_evaluator *ev, tsr_ckks_ciphertext *out,
                                   const tsr_ckks_ciphertext *a, const tsr_ckks_ciphertext *b) {
    return (out == a || out == b) ? ev->tmp[0] : out;
}

static void swap_ct(tsr_ckks_ciphertext *x, tsr_ckks_ciphertext *y) {
    tsr_ckks_ciphertext t = *x;
    *x = *y;
    *y = t;
}

/* Move the result t into out (t is out or ev->tmp[0]). */
static void commit(tsr_ckks_evaluator *ev, tsr_ckks_ciphertext *out, tsr_ckks_ciphertext *t) {
    if (t != out) swap_ct(out, t);
    (void)ev;
}

static void set_meta(tsr_ckks_ciphertext *t, double scale, double err, double mag) {
    t->scale = scale;
    t->err = err;
    t->mag = mag;
    t->seeded = 0;
}

static tsr_status level_exhausted(int level) {
    (void)level;
    return tsr_fail(TSR_ERR_LEVEL, "ciphertext is at level 0: no multiplicative depth left; "
                                   "use a deeper parameter preset or bootstrap");
}

/* Copy limbs 0..level of every polynomial of a into t (t != a). */
static tsr_status copy_prefix(tsr_ckks_ciphertext *t, const tsr_ckks_ciphertext *a, int level) {
    TSR_TRY(ckks_ct_reserve(t, level, a->size));
    size_t words = (size_t)(level + 1) * a->params->n;
    for (int k = 0; k < a->size; k++)
        memcpy(ckks_ct_poly(t, k), ckks_ct_poly(a, k), words * sizeof(uint64_t));
    return TSR_OK;
}

/* In place: divide every polynomial of t by q_l with rounding. */
static tsr_status rescale_inplace(tsr_ckks_ciphertext *t) {
    tsr_ckks_params *p = t->params;
    int l = t->level;
    if (l < 1) return level_exhausted(l);
    for (int k = 0; k < t->size; k++) {
        uint64_t *c = ckks_ct_poly(t, k);
        TSR_TRY(tsr_moddown_apply(p->rescale[l], c, c));
    }
    t->level = l - 1;
    t->scale /= (double)p->primes[l];
    t->err = hypot(t->err, ckks_noise_rescale(p, t->scale));
    t->seeded = 0;
    return TSR_OK;
}

/* ---- level and scale alignment ------------------------------------------------------- */

tsr_status tsr_ckks_adjust(tsr_ckks_evaluator *ev, tsr_ckks_ciphertext *out,
                           const tsr_ckks_ciphertext *a, int level, double scale) {
    TSR_TRY(check_ct(ev, a, "the ciphertext"));
    TSR_TRY(check_out(ev, out));
    tsr_ckks_params *p = ev->params;
    int la = a->level;
    double sa = a->scale;
    if (!(scale > 0) || !isfinite(scale))
        return tsr_fail(TSR_ERR_INVALID_ARG, "target scale must be positive and finite");
    if (level < 0 || level > la)
        return tsr_fail(TSR_ERR_LEVEL,
                        "cannot adjust a ciphertext at level %d to level %d: levels only go down",
                        la, level);
    if (scales_close(sa, scale)) {
        if (out != a) TSR_TRY(copy_prefix(out, a, level));
        out->level = level;
        out->scale = a->scale;
        out->err = a->err;
        out->mag = a->mag;
        out->seeded = out == a ? a->seeded && level == la : 0;
        if (out->seeded) memcpy(out->seed, a->seed, sizeof out->seed);
        return TSR_OK;
    }
    /* Multiply by the integer c = scale * q_{level+1} ... q_{level+r} / sa and
     * rescale r times. The smallest r whose c is large enough keeps the
     * rounding of c below 2^-31 relative. */
    double c = scale / sa;
    int r = 0;
    while (c < 0x1p30 && level + r < la) {
        r++;
        c *= (double)p->primes[level + r];
    }
    if (r == 0 || c < 0x1p30 || c >= 0x1p62)
        return tsr_fail(TSR_ERR_SCALE,
                        "cannot bring a ciphertext at level %d with scale 2^%.2f to level %d with "
                        "scale 2^%.2f exactly: %s; rescale it first or encode at matching scales",
                        la, log2(sa), level, log2(scale),
                        r == 0 ? "the levels are equal but the scales differ"
                               : "the scale gap cannot be bridged with the levels available");
    double ci = nearbyint(c);
    double mag = a->mag, err = a->err;
    if (out != a) TSR_TRY(copy_prefix(out, a, level + r));
    out->level = level + r;
    uint64_t sc[CKKS_MAX_ALL];
    TSR_TRY(tsr_rns_scalar_from_double(p->q[level + r], ci, sc));
    for (int k = 0; k < out->size; k++)
        tsr_rns_mul_scalar(p->q[level + r], ckks_ct_poly(out, k), ckks_ct_poly(out, k), sc);
    out->scale = sa * ci;
    out->err = err * ci / c + mag * 0.5 / c; /* value units: factor ci/c ~ 1 */
    out->mag = mag;
    out->seeded = 0;
    for (int i = 0; i < r; i++) TSR_TRY(rescale_inplace(out));
    out->scale = scale; /* equal up to the rounding of c, accounted in err */
    return TSR_OK;
}

/*
 * Operands of a binary operation at a common level (rule 1): the higher one
 * is viewed at the lower level if the scales agree, else adjusted into an
 * evaluator temporary. *level receives the common level.
 */
static tsr_status align(tsr_ckks_evaluator *ev, const tsr_ckks_ciphertext **a,
                        const tsr_ckks_ciphertext **b, int *level) {
    const tsr_ckks_ciphertext *x = *a, *y = *b;
    if (x->level == y->level) {
        *level = x->level;
        return TSR_OK;
    }
    int swap = x->level < y->level;
    const tsr_ckks_ciphertext *hi = swap ? y : x, *lo = swap ? x : y;
    *level = lo->level;
    if (scales_close(hi->scale, lo->scale)) return TSR_OK; /* view hi at the lower level */
    TSR_TRY(tsr_ckks_adjust(ev, ev->tmp[1], hi, lo->level, lo->scale));
    if (swap)
        *b = ev->tmp[1];
    else
        *a = ev->tmp[1];
    return TSR_OK;
}

static tsr_status scale_mismatch(double sa, double sb) {
    return tsr_fail(TSR_ERR_SCALE,
                    "scales differ: 2^%.6f vs 2^%.6f (relative gap %.2g > 2^-40); encode "
                    "plaintexts at the ciphertext's scale (tsr_ckks_ciphertext_scale) and rescale "
                    "products before adding them to unmultiplied ciphertexts",
                    log2(sa), log2(sb), fabs(sa - sb) / fmax(sa, sb));
}

/* ---- addition ------------------------------------------------------------------------ */

static tsr_status add_sub(tsr_ckks_evaluator *ev, tsr_ckks_ciphertext *out,
                          const tsr_ckks_ciphertext *a, const tsr_ckks_ciphertext *b, int sub) {
    TSR_TRY(check_ct(ev, a, "the first operand"));
    TSR_TRY(check_ct(ev, b, "the second operand"));
    TSR_TRY(check_out(ev, out));
    int level;
    TSR_TRY(align(ev, &a, &b, &level));
    if (!scales_close(a->scale, b->scale)) return scale_mismatch(a->scale, b->scale);
    tsr_ckks_params *p = ev->params;
    const tsr_rns_basis *B = p->q[level];
    int size = a->size > b->size ? a->size : b->size;
    double scale = a->scale, err = hypot(a->err, b->err), mag = a->mag + b->mag;
    tsr_ckks_ciphertext *t = target(ev, out, a, b);
    if (t != a && t != b) {
        /* t may equal neither; reserve without keeping data */
        t->level = -1;
    }
    TSR_TRY(ckks_ct_reserve(t, level, size));
    size_t words = (size_t)(level + 1) * p->n;
    for (int k = 0; k < size; k++) {
        uint64_t *o = ckks_ct_poly(t, k);
        if (k < a->size && k < b->size) {
            if (sub)
                tsr_rns_sub(B, o, ckks_ct_poly(a, k), ckks_ct_poly(b, k));
            else
                tsr_rns_add(B, o, ckks_ct_poly(a, k), ckks_ct_poly(b, k));
        } else if (k < a->size) {
            memcpy(o, ckks_ct_poly(a, k), words * sizeof(uint64_t));
        } else if (sub) {
            tsr_rns_neg(B, o, ckks_ct_poly(b, k));
        } else {
            memcpy(o, ckks_ct_poly(b, k), words * sizeof(uint64_t));
        }
    }
    set_meta(t, scale, err, mag);
    commit(ev, out, t);
    return TSR_OK;
}

tsr_status tsr_ckks_add(tsr_ckks_evaluator *ev, tsr_ckks_ciphertext *out,
                        const tsr_ckks_ciphertext *a, const tsr_ckks_ciphertext *b) {
    return add_sub(ev, out, a, b, 0);
}

tsr_status tsr_ckks_sub(tsr_ckks_evaluator *ev, tsr_ckks_ciphertext *out,
                        const tsr_ckks_ciphertext *a, const tsr_ckks_ciphertext *b) {
    return add_sub(ev, out, a, b, 1);
}

tsr_status tsr_ckks_add_new(tsr_ckks_evaluator *ev, tsr_ckks_ciphertext **out,
                            const tsr_ckks_ciphertext *a, const tsr_ckks_ciphertext *b) {
    TSR_REQUIRE(ev && out, "tsr_ckks_add_new: NULL argument");
    TSR_TRY(tsr_ckks_ciphertext_create(out, ev->params));
    tsr_status st = tsr_ckks_add(ev, *out, a, b);
    if (st != TSR_OK) {
        tsr_ckks_ciphertext_free(*out);
        *out = NULL;
    }
    return st;
}

tsr_status tsr_ckks_negate(tsr_ckks_evaluator *ev, tsr_ckks_ciphertext *out,
                           const tsr_ckks_ciphertext *a) {
    TSR_TRY(check_ct(ev, a, "the operand"));
    TSR_TRY(check_out(ev, out));
    int level = a->level, size = a->size;
    double scale = a->scale, err = a->err, mag = a->mag;
    if (out != a) TSR_TRY(ckks_ct_reserve(out, level, size));
    for (int k = 0; k < size; k++)
        tsr_rns_neg(ev->params->q[level], ckks_ct_poly(out, k), ckks_ct_poly(a, k));
    out->level = level;
    out->size = size;
    set_meta(out, scale, err, mag);
    return TSR_OK;
}

/* ---- plaintext operands ------------------------------------------------------------------- */

static tsr_status check_pt(const tsr_ckks_evaluator *ev, const tsr_ckks_plaintext *pt) {
    TSR_REQUIRE(pt, "tsr_ckks evaluator: NULL plaintext");
    TSR_TRY(ckks_params_check(ev->params, pt->params, "the plaintext"));
    if (pt->level < 0) return tsr_fail(TSR_ERR_INVALID_ARG, "the plaintext is empty");
    return TSR_OK;
}

/* What plain_op does with the plaintext. */
typedef enum plain_kind { PLAIN_ADD, PLAIN_SUB, PLAIN_MUL } plain_kind;

/* out = a (op) pt. A plaintext at a lower level drops the ciphertext to it. */
static tsr_status plain_op(tsr_ckks_evaluator *ev, tsr_ckks_ciphertext *out,
                           const tsr_ckks_ciphertext *a, const tsr_ckks_plaintext *pt,
                           plain_kind op) {
    TSR_TRY(check_ct(ev, a, "the ciphertext"));
    TSR_TRY(check_pt(ev, pt));
    TSR_TRY(check_out(ev, out));
    tsr_ckks_params *p = ev->params;
    int level = a->level < pt->level ? a->level : pt->level, size = a->size;
    const tsr_rns_basis *B = p->q[level];
    double scale, err, mag;
    if (op == PLAIN_MUL) {
        scale = a->scale * pt->scale;
        if (!(log2(scale) < tsr_ckks_params_log_q(p, level) - 1)) {
            if (level == 0) return level_exhausted(0);
            return tsr_fail(TSR_ERR_SCALE,
                            "the product's scale 2^%.1f does not fit the modulus (2^%.1f) at "
                            "level %d: rescale the ciphertext first or encode the plaintext at "
                            "a smaller scale",
                            log2(scale), tsr_ckks_params_log_q(p, level), level);
        }
        err = hypot(a->mag * pt->err, pt->mag * a->err) + a->err * pt->err;
        mag = a->mag * pt->mag;
    } else {
        if (!scales_close(a->scale, pt->scale)) return scale_mismatch(a->scale, pt->scale);
        scale = a->scale;
        err = hypot(a->err, pt->err);
        mag = a->mag + pt->mag;
    }
    if (out != a) {
        out->level = -1;
        TSR_TRY(ckks_ct_reserve(out, level, size));
    }
    size_t words = (size_t)(level + 1) * p->n;
    if (op == PLAIN_MUL) {
        for (int k = 0; k < size; k++)
            tsr_rns_mul(B, ckks_ct_poly(out, k), ckks_ct_poly(a, k), pt->data);
    } else {
        if (op == PLAIN_SUB)
            tsr_rns_sub(B, ckks_ct_poly(out, 0), ckks_ct_poly(a, 0), pt->data);
        else
            tsr_rns_add(B, ckks_ct_poly(out, 0), ckks_ct_poly(a, 0), pt->data);
        if (out != a)
            for (int k = 1; k < size; k++)
                memcpy(ckks_ct_poly(out, k), ckks_ct_poly(a, k), words * sizeof(uint64_t));
    }
    int keep_seed = op != PLAIN_MUL && out == a && a->seeded && level == a->level;
    out->level = level;
    out->size = size;
    set_meta(out, scale, err, mag);
    out->seeded = keep_seed; /* c1 untouched by a plaintext add in place */
    return TSR_OK;
}

tsr_status tsr_ckks_add_plain(tsr_ckks_evaluator *ev, tsr_ckks_ciphertext *out,
                              const tsr_ckks_ciphertext *a, const tsr_ckks_plaintext *pt) {
    return plain_op(ev, out, a, pt, PLAIN_ADD);
}

tsr_status tsr_ckks_sub_plain(tsr_ckks_evaluator *ev, tsr_ckks_ciphertext *out,
                              const tsr_ckks_ciphertext *a, const tsr_ckks_plaintext *pt) {
    return plain_op(ev, out, a, pt, PLAIN_SUB);
}

tsr_status tsr_ckks_mul_plain(tsr_ckks_evaluator *ev, tsr_ckks_ciphertext *out,
                              const tsr_ckks_ciphertext *a, const tsr_ckks_plaintext *pt) {
    return plain_op(ev, out, a, pt, PLAIN_MUL);
}

/* ---- constants ---------------------------------------------------------------------------- */

/*
 * The NTT form over Q_level of the polynomial R + I * X^(N/2), where R and I
 * are the integers round(re * s) and round(im * s): the encoding of the
 * constant re + i*im in every slot at scale s (X^(N/2) is i in every slot).
 * Written to ev->poly.
 */
static tsr_status const_poly(tsr_ckks_evaluator *ev, int level, double re, double im, double s) {
    tsr_ckks_params *p = ev->params;
    const tsr_rns_basis *B = p->q[level];
    size_t n = p->n;
    uint64_t r[TSR_CKKS_MAX_PRIMES], ii[TSR_CKKS_MAX_PRIMES];
    TSR_TRY(tsr_rns_scalar_from_double(B, re * s, r));
    TSR_TRY(tsr_rns_scalar_from_double(B, im * s, ii));
    uint64_t *d = ev->poly;
    memset(d, 0, (size_t)(level + 1) * n * sizeof(uint64_t));
    for (int i = 0; i <= level; i++) {
        d[(size_t)i * n] = r[i];
        d[(size_t)i * n + n / 2] = ii[i];
    }
    tsr_rns_ntt(B, d);
    return TSR_OK;
}

static tsr_status check_const(double re, double im) {
    if (!isfinite(re) || !isfinite(im))
        return tsr_fail(TSR_ERR_INVALID_ARG, "the constant is not finite");
    return TSR_OK;
}

tsr_status tsr_ckks_add_const(tsr_ckks_evaluator *ev, tsr_ckks_ciphertext *out,
                              const tsr_ckks_ciphertext *a, double re, double im) {
    TSR_TRY(check_ct(ev, a, "the ciphertext"));
    TSR_TRY(check_out(ev, out));
    TSR_TRY(check_const(re, im));
    tsr_ckks_params *p = ev->params;
    int level = a->level;
    double cmag = hypot(re, im);
    if (log2(cmag * a->scale + 1) >= tsr_ckks_params_log_q(p, level) - 1)
        return tsr_fail(TSR_ERR_SCALE, "the constant %g is too large for the modulus at level %d",
                        cmag, level);
    if (out != a) TSR_TRY(copy_prefix(out, a, level));
    const tsr_rns_basis *B = p->q[level];
    if (im == 0) {
        uint64_t r[TSR_CKKS_MAX_PRIMES];
        TSR_TRY(tsr_rns_scalar_from_double(B, re * a->scale, r));
        /* A constant polynomial is the same constant at every NTT point. */
        tsr_rns_add_scalar(B, ckks_ct_poly(out, 0), ckks_ct_poly(out, 0), r);
    } else {
        TSR_TRY(const_poly(ev, level, re, im, a->scale));
        tsr_rns_add(B, ckks_ct_poly(out, 0), ckks_ct_poly(out, 0), ev->poly);
    }
    int keep_seed = out == a && a->seeded;
    set_meta(out, a->scale, hypot(a->err, 0.5 / a->scale), a->mag + cmag);
    out->seeded = keep_seed;
    return TSR_OK;
}

tsr_status tsr_ckks_sub_const(tsr_ckks_evaluator *ev, tsr_ckks_ciphertext *out,
                              const tsr_ckks_ciphertext *a, double re, double im) {
    return tsr_ckks_add_const(ev, out, a, -re, -im);
}

/* out = a * (re + i im) encoded at scale sc; out's scale = a's * sc. */
static tsr_status mul_const_at(tsr_ckks_evaluator *ev, tsr_ckks_ciphertext *out,
                               const tsr_ckks_ciphertext *a, double re, double im, double sc) {
    tsr_ckks_params *p = ev->params;
    int level = a->level, size = a->size;
    double scale = a->scale * sc;
    if (!(log2(scale) < tsr_ckks_params_log_q(p, level) - 1)) {
        if (level == 0) return level_exhausted(0);
        return tsr_fail(TSR_ERR_SCALE,
                        "the product's scale 2^%.1f does not fit the modulus (2^%.1f) at level "
                        "%d: rescale first or use a smaller constant scale",
                        log2(scale), tsr_ckks_params_log_q(p, level), level);
    }
    double cmag = hypot(re, im);
    double err = a->err * cmag + a->mag * 0.5 / sc, mag = a->mag * cmag;
    if (out != a) {
        out->level = -1;
        TSR_TRY(ckks_ct_reserve(out, level, size));
    }
    const tsr_rns_basis *B = p->q[level];
    if (im == 0) {
        uint64_t r[TSR_CKKS_MAX_PRIMES];
        TSR_TRY(tsr_rns_scalar_from_double(B, re * sc, r));
        for (int k = 0; k < size; k++)
            tsr_rns_mul_scalar(B, ckks_ct_poly(out, k), ckks_ct_poly(a, k), r);
    } else {
        TSR_TRY(const_poly(ev, level, re, im, sc));
        for (int k = 0; k < size; k++)
            tsr_rns_mul(B, ckks_ct_poly(out, k), ckks_ct_poly(a, k), ev->poly);
    }
    out->level = level;
    out->size = size;
    set_meta(out, scale, err, mag);
    return TSR_OK;
}

tsr_status tsr_ckks_mul_const(tsr_ckks_evaluator *ev, tsr_ckks_ciphertext *out,
                              const tsr_ckks_ciphertext *a, double re, double im) {
    TSR_TRY(check_ct(ev, a, "the ciphertext"));
    TSR_TRY(check_out(ev, out));
    TSR_TRY(check_const(re, im));
    tsr_ckks_params *p = ev->params;
    int level = a->level;
    if (level < 1) return level_exhausted(level);
    /* Rule 4: after the next rescale the scale is the canonical Delta_{l-1}. */
    double sc = p->scale[level - 1] * (double)p->primes[level] / a->scale;
    if (sc < 0x1p20)
        return tsr_fail(TSR_ERR_SCALE,
                        "the ciphertext's scale 2^%.1f is far above the canonical scale 2^%.1f "
                        "of level %d, leaving no room to encode the constant: rescale it first",
                        log2(a->scale), log2(p->scale[level]), level);
    return mul_const_at(ev, out, a, re, im, sc);
}

tsr_status tsr_ckks_mul_const_scaled(tsr_ckks_evaluator *ev, tsr_ckks_ciphertext *out,
                                     const tsr_ckks_ciphertext *a, double re, double im,
                                     double const_scale) {
    TSR_TRY(check_ct(ev, a, "the ciphertext"));
    TSR_TRY(check_out(ev, out));
    TSR_TRY(check_const(re, im));
    if (!(const_scale >= 1) || !isfinite(const_scale))
        return tsr_fail(TSR_ERR_INVALID_ARG,
                        "the constant's scale must be finite and >= 1 (got %g)", const_scale);
    return mul_const_at(ev, out, a, re, im, const_scale);
}

tsr_status tsr_ckks_mul_int(tsr_ckks_evaluator *ev, tsr_ckks_ciphertext *out,
                            const tsr_ckks_ciphertext *a, int64_t k) {
    TSR_TRY(check_ct(ev, a, "the ciphertext"));
    TSR_TRY(check_out(ev, out));
    if (k >= ((int64_t)1 << 62) || k <= -((int64_t)1 << 62))
        return tsr_fail(TSR_ERR_INVALID_ARG, "integer factor out of range (|k| < 2^62)");
    tsr_ckks_params *p = ev->params;
    int level = a->level, size = a->size;
    double ak = fabs((double)k);
    if (log2(a->mag * ak * a->scale + 1) >= tsr_ckks_params_log_q(p, level) - 1)
        return tsr_fail(TSR_ERR_SCALE,
                        "multiplying by %lld may overflow the modulus at level %d (values up to "
                        "%.3g)",
                        (long long)k, level, a->mag * ak);
    double err = a->err * ak, mag = a->mag * ak, scale = a->scale;
    if (out != a) {
        out->level = -1;
        TSR_TRY(ckks_ct_reserve(out, level, size));
    }
    uint64_t r[TSR_CKKS_MAX_PRIMES];
    tsr_rns_scalar_from_i64(p->q[level], k, r);
    for (int c = 0; c < size; c++)
        tsr_rns_mul_scalar(p->q[level], ckks_ct_poly(out, c), ckks_ct_poly(a, c), r);
    out->level = level;
    out->size = size;
    set_meta(out, scale, err, mag);
    return TSR_OK;
}

/* ---- multiplication --------------------------------------------------------------------- */

/* Metadata of a product a * b (checks, level alignment, scale, noise). */
typedef struct mul_meta {
    int level;
    double scale, err, mag;
} mul_meta;

/* Check and align the operands of a ciphertext product (*a, *b may be
 * replaced by aligned evaluator temporaries) and fill *mm. */
static tsr_status mul_setup(tsr_ckks_evaluator *ev, tsr_ckks_ciphertext *out,
                            const tsr_ckks_ciphertext **pa, const tsr_ckks_ciphertext **pb,
                            mul_meta *mm) {
    const tsr_ckks_ciphertext *a = *pa, *b = *pb;
    TSR_TRY(check_ct(ev, a, "the first operand"));
    TSR_TRY(check_ct(ev, b, "the second operand"));
    TSR_TRY(check_out(ev, out));
    if (a->size != 2 || b->size != 2)
        return tsr_fail(TSR_ERR_INVALID_ARG,
                        "multiplication needs ciphertexts of size 2: relinearize first");
    int same = a == b;
    int level;
    TSR_TRY(align(ev, &a, &b, &level));
    tsr_ckks_params *p = ev->params;
    double scale = a->scale * b->scale;
    if (!(log2(scale) < tsr_ckks_params_log_q(p, level) - 1)) {
        if (level == 0) return level_exhausted(0);
        return tsr_fail(TSR_ERR_SCALE,
                        "the product's scale 2^%.1f does not fit the modulus (2^%.1f) at level "
                        "%d: rescale the operands first",
                        log2(scale), tsr_ckks_params_log_q(p, level), level);
    }
    /* Errors of one operand squared are fully correlated: 2 |m| e. */
    mm->err = same ? 2 * a->mag * a->err + a->err * a->err
                   : hypot(a->mag * b->err, b->mag * a->err) + a->err * b->err;
    mm->mag = a->mag * b->mag;
    mm->scale = scale;
    mm->level = level;
    *pa = a;
    *pb = b;
    return TSR_OK;
}

tsr_status tsr_ckks_mul(tsr_ckks_evaluator *ev, tsr_ckks_ciphertext *out,
                        const tsr_ckks_ciphertext *a, const tsr_ckks_ciphertext *b) {
    const int same = a == b;
    mul_meta mm;
    TSR_TRY(mul_setup(ev, out, &a, &b, &mm));
    const int level = mm.level;
    const double scale = mm.scale, err = mm.err, mag = mm.mag;
    tsr_ckks_params *p = ev->params;
    const tsr_rns_basis *B = p->q[level];
    tsr_ckks_ciphertext *t = target(ev, out, a, b);
    t->level = -1; /* t's old contents are not needed */
    TSR_TRY(ckks_ct_reserve(t, level, 3));
    const uint64_t *a0 = ckks_ct_poly(a, 0), *a1 = ckks_ct_poly(a, 1);
    const uint64_t *b0 = ckks_ct_poly(b, 0), *b1 = ckks_ct_poly(b, 1);
    uint64_t *c0 = ckks_ct_poly(t, 0), *c1 = ckks_ct_poly(t, 1), *c2 = ckks_ct_poly(t, 2);
    if (same || a == b) {
        tsr_rns_mul(B, c1, a0, a1);
        tsr_rns_add(B, c1, c1, c1);
        tsr_rns_mul(B, c0, a0, a0);
        tsr_rns_mul(B, c2, a1, a1);
    } else {
        tsr_rns_mul(B, c1, a0, b1);
        tsr_rns_mul_add(B, c1, a1, b0);
        tsr_rns_mul(B, c0, a0, b0);
        tsr_rns_mul(B, c2, a1, b1);
    }
    set_meta(t, scale, err, mag);
    commit(ev, out, t);
    return TSR_OK;
}

static tsr_status relin_key_missing(void) {
    return tsr_fail(TSR_ERR_KEY_MISSING,
                    "relinearization needs the relinearization key: create the evaluator "
                    "with one (tsr_ckks_relin_key_create)");
}

tsr_status tsr_ckks_relinearize(tsr_ckks_evaluator *ev, tsr_ckks_ciphertext *out,
                                const tsr_ckks_ciphertext *a) {
    TSR_TRY(check_ct(ev, a, "the ciphertext"));
    TSR_TRY(check_out(ev, out));
    if (a->size == 2) return tsr_ckks_ciphertext_copy(out, a);
    if (!ev->rk) return relin_key_missing();
    /* a level-aware key too low: fail before out is touched */
    TSR_TRY(ckks_ks_check_level(&ev->rk->key, a->level));
    tsr_ckks_params *p = ev->params;
    int level = a->level;
    double err = hypot(a->err, ckks_noise_keyswitch(p, level, a->scale));
    if (out != a) {
        out->level = -1;
        TSR_TRY(ckks_ct_reserve(out, level, 2));
    }
    /* out = (c0, c1) + KS(c2); out may be a (rows are finished before writing). */
    TSR_TRY(ckks_keyswitch(ev, level, ckks_ct_poly(a, 2), &ev->rk->key, ckks_ct_poly(a, 0),
                           ckks_ct_poly(a, 1), ckks_ct_poly(out, 0), ckks_ct_poly(out, 1)));
    out->level = level;
    out->size = 2;
    set_meta(out, a->scale, err, a->mag);
    return TSR_OK;
}

/*
 * Multiply and key-switch in one pass (mul_relin, and mul_relin_rescale
 * when rescale): the product's c2 = a1 b1 is computed block by block into
 * ev->tmp[2] while it is decomposed, and c0 = a0 b0, c1 = a0 b1 + a1 b0 are
 * computed block by block where the key switch adds them, so they never
 * reach memory (keyswitch.c, product mode). The result is bit-identical to
 * tsr_ckks_mul followed by the key switch.
 */
static tsr_status mul_keyswitch(tsr_ckks_evaluator *ev, tsr_ckks_ciphertext *out,
                                const tsr_ckks_ciphertext *a, const tsr_ckks_ciphertext *b,
                                int rescale) {
    mul_meta mm;
    TSR_TRY(mul_setup(ev, out, &a, &b, &mm));
    const int level = mm.level;
    if (rescale && level < 1) return level_exhausted(0);
    if (!ev->rk) return relin_key_missing();
    TSR_TRY(ckks_ks_check_level(&ev->rk->key, level)); /* before out is touched */
    tsr_ckks_params *p = ev->params;
    tsr_ckks_ciphertext *d = ev->tmp[2];
    d->level = -1;
    TSR_TRY(ckks_ct_reserve(d, level, 3));
    uint64_t *c2 = ckks_ct_poly(d, 2);
    const uint64_t *a0 = ckks_ct_poly(a, 0), *a1 = ckks_ct_poly(a, 1);
    const uint64_t *b0 = ckks_ct_poly(b, 0), *b1 = ckks_ct_poly(b, 1);
    TSR_TRY(ckks_ks_decompose_prod(ev, level, a1, b1, c2));
    double err = hypot(mm.err, ckks_noise_keyswitch(p, level, mm.scale)), scale = mm.scale;
    if (rescale) {
        scale /= (double)p->primes[level];
        err = hypot(err, ckks_noise_rescale(p, scale));
    }
    tsr_ckks_ciphertext *t = target(ev, out, a, b);
    t->level = -1; /* t's old contents are not needed */
    TSR_TRY(ckks_ct_reserve(t, rescale ? level - 1 : level, 2));
    TSR_TRY(ckks_ks_apply_prod(ev, &ev->rk->key, rescale, a0, a1, b0, b1, ckks_ct_poly(t, 0),
                               ckks_ct_poly(t, 1)));
    set_meta(t, scale, err, mm.mag);
    commit(ev, out, t);
    return TSR_OK;
}

tsr_status tsr_ckks_mul_relin(tsr_ckks_evaluator *ev, tsr_ckks_ciphertext *out,
                              const tsr_ckks_ciphertext *a, const tsr_ckks_ciphertext *b) {
    return mul_keyswitch(ev, out, a, b, 0);
}

/*
 * Relinearize and rescale with one ModDown: with (acc0, acc1) the key
 * switching of c2 over Q_l u P, add P*(c0, c1) to the Q_l limbs (P*c is 0
 * modulo every special prime) and divide by q_l*P with exact rounding:
 * round((P c + acc) / (q_l P)) = rescale(c + KS(c2)) up to one rounding.
 * Saves the separate rescale's INTT and l NTTs per polynomial.
 */
tsr_status tsr_ckks_mul_relin_rescale(tsr_ckks_evaluator *ev, tsr_ckks_ciphertext *out,
                                      const tsr_ckks_ciphertext *a, const tsr_ckks_ciphertext *b) {
    return mul_keyswitch(ev, out, a, b, 1);
}

tsr_status tsr_ckks_mul_relin_rescale_new(tsr_ckks_evaluator *ev, tsr_ckks_ciphertext **out,
                                          const tsr_ckks_ciphertext *a,
                                          const tsr_ckks_ciphertext *b) {
    TSR_REQUIRE(ev && out, "tsr_ckks_mul_relin_rescale_new: NULL argument");
    TSR_TRY(tsr_ckks_ciphertext_create(out, ev->params));
    tsr_status st = tsr_ckks_mul_relin_rescale(ev, *out, a, b);
    if (st != TSR_OK) {
        tsr_ckks_ciphertext_free(*out);
        *out = NULL;
    }
    return st;
}

/* ---- rescale and levels ------------------------------------------------------------------- */

tsr_status tsr_ckks_rescale(tsr_ckks_evaluator *ev, tsr_ckks_ciphertext *out,
                            const tsr_ckks_ciphertext *a) {
    TSR_TRY(check_ct(ev, a, "the ciphertext"));
    TSR_TRY(check_out(ev, out));
    if (a->level < 1) return level_exhausted(a->level);
    if (out != a) {
        TSR_TRY(copy_prefix(out, a, a->level));
        out->scale = a->scale;
        out->err = a->err;
        out->mag = a->mag;
    }
    return rescale_inplace(out);
}

tsr_status tsr_ckks_drop_level(tsr_ckks_evaluator *ev, tsr_ckks_ciphertext *out,
                               const tsr_ckks_ciphertext *a, int level) {
    TSR_TRY(check_ct(ev, a, "the ciphertext"));
    TSR_TRY(check_out(ev, out));
    if (level < 0 || level > a->level)
        return tsr_fail(TSR_ERR_LEVEL, "cannot drop a ciphertext at level %d to level %d", a->level,
                        level);
    return tsr_ckks_adjust(ev, out, a, level, a->scale);
}

/* ---- rotations ------------------------------------------------------------------------------ */

/*
 * out = phi_g(v0, v1) where (v0 - c0, v1) switches c1 from s to phi_g^-1(s)
 * (see keyswitch.c): the key switch applies phi_g (e->perm) to each output
 * limb while it is in cache. c1 must be decomposed; out != a.
 */
static tsr_status galois_apply_decomposed(tsr_ckks_evaluator *ev, tsr_ckks_ciphertext *out,
                                          const tsr_ckks_ciphertext *a,
                                          const ckks_galois_entry *e) {
    tsr_ckks_params *p = ev->params;
    int level = a->level;
    TSR_TRY(ckks_ks_check_level(&e->key, level)); /* before out is touched */
    TSR_TRY(ckks_ct_reserve(out, level, 2));
    TSR_TRY(ckks_ks_apply_galois(ev, &e->key, ckks_ct_poly(a, 0), e->perm, ckks_ct_poly(out, 0),
                                 ckks_ct_poly(out, 1)));
    out->level = level;
    out->size = 2;
    set_meta(out, a->scale, hypot(a->err, ckks_noise_keyswitch(p, level, a->scale)), a->mag);
    return TSR_OK;
}

static tsr_status apply_galois(tsr_ckks_evaluator *ev, tsr_ckks_ciphertext *out,
                               const tsr_ckks_ciphertext *a, const ckks_galois_entry *e) {
    if (a->size != 2)
        return tsr_fail(TSR_ERR_INVALID_ARG, "rotations need ciphertexts of size 2: relinearize "
                                             "first");
    TSR_REQUIRE(out != a, "apply_galois: out must not alias the input");
    TSR_TRY(ckks_ks_check_level(&e->key, a->level)); /* before the decomposition */
    TSR_TRY(ckks_ks_decompose(ev, a->level, ckks_ct_poly(a, 1)));
    return galois_apply_decomposed(ev, out, a, e);
}

static int cmp_step(const void *x, const void *y) {
    int a = *(const int *)x, b = *(const int *)y;
    return (a > b) - (a < b);
}

/* Whether Galois key i may compose rotations at `level` (a rotation key serving it). */
static int via_usable(const tsr_ckks_evaluator *ev, size_t i, int level) {
    const ckks_galois_entry *e = &ev->gk->e[i];
    return e->elt != ckks_galois_elt_conjugate(ev->params->slots) && e->key.max_level >= level;
}

/* Whether ev->via was built from exactly the keys usable at `level`. */
static int via_current(const tsr_ckks_evaluator *ev, int level) {
    if (!ev->via || ev->via_keys != ev->gk->count) return 0;
    for (size_t i = 0; i < ev->gk->count; i++)
        if (ev->via_mask[i] != via_usable(ev, i, level)) return 0;
    return 1;
}

/* BFS over Z_slots with the rotation keys that serve `level` as generators
 * (level-aware keys too low for it are left out). */
static tsr_status build_via(tsr_ckks_evaluator *ev, int level) {
    const tsr_ckks_params *p = ev->params;
    size_t slots = p->slots, count = ev->gk->count;
    tsr_free(ev->via);
    tsr_free(ev->via_mask);
    ev->via = NULL;
    ev->via_mask = NULL;
    int32_t *via = tsr_alloc(slots * sizeof *via);
    int *steps = tsr_alloc((count ? count : 1) * sizeof *steps);
    uint8_t *mask = tsr_alloc(count ? count : 1);
    uint32_t *queue = tsr_alloc(slots * sizeof *queue);
    if (!via || !steps || !mask || !queue) {
        tsr_free(via);
        tsr_free(steps);
        tsr_free(mask);
        tsr_free(queue);
        return tsr_fail(TSR_ERR_NOMEM, "cannot allocate the rotation table");
    }
    size_t nsteps = 0;
    for (size_t i = 0; i < count; i++) {
        mask[i] = (uint8_t)via_usable(ev, i, level);
        if (!mask[i]) continue;
        long st = ckks_galois_step(p, ev->gk->e[i].elt);
        if (st > 0) steps[nsteps++] = (int)st;
    }
    qsort(steps, nsteps, sizeof *steps, cmp_step); /* the order of the paths chosen */
    for (size_t i = 0; i < slots; i++) via[i] = -1;
    via[0] = 0;
    size_t head = 0, tail = 0;
    queue[tail++] = 0;
    while (head < tail) {
        uint32_t x = queue[head++];
        for (size_t s = 0; s < nsteps; s++) {
            uint32_t y = (uint32_t)((x + (size_t)steps[s]) % slots);
            if (via[y] < 0) {
                via[y] = steps[s];
                queue[tail++] = y;
            }
        }
    }
    tsr_free(steps);
    tsr_free(queue);
    ev->via = via;
    ev->via_mask = mask;
    ev->via_keys = count;
    return TSR_OK;
}

tsr_status tsr_ckks_rotate(tsr_ckks_evaluator *ev, tsr_ckks_ciphertext *out,
                           const tsr_ckks_ciphertext *a, int step) {
    TSR_TRY(check_ct(ev, a, "the ciphertext"));
    TSR_TRY(check_out(ev, out));
    tsr_ckks_params *p = ev->params;
    long s = step % (long)p->slots;
    if (s < 0) s += (long)p->slots;
    if (s == 0) return tsr_ckks_ciphertext_copy(out, a);
    const ckks_galois_entry *e = ckks_galois_find(ev->gk, ckks_galois_elt_rotation(p->slots, s));
    if (e && e->key.max_level >= a->level) {
        tsr_ckks_ciphertext *t = target(ev, out, a, NULL);
        TSR_TRY(apply_galois(ev, t, a, e));
        commit(ev, out, t);
        return TSR_OK;
    }
    /* Compose the fewest available rotations (of keys that serve a's level: its own key, if
     * any, is level-aware and too low). */
    if (!ev->gk || ev->gk->count == 0)
        return tsr_fail(TSR_ERR_KEY_MISSING,
                        "no Galois key for a rotation by %d (and no rotation keys at all): "
                        "generate one with tsr_ckks_galois_keys_create",
                        step);
    /* recompute the paths when keys were added or trimmed since, or another level needs
     * another subset of them */
    if (!via_current(ev, a->level)) TSR_TRY(build_via(ev, a->level));
    if (ev->via[s] < 0 && e) return ckks_ks_check_level(&e->key, a->level);
    if (ev->via[s] < 0)
        return tsr_fail(TSR_ERR_KEY_MISSING,
                        "no Galois key for a rotation by %d, and the available rotation keys "
                        "cannot compose it: add that step (or TSR_CKKS_GALOIS_POW2) to the "
                        "Galois keys",
                        step);
    const tsr_ckks_ciphertext *cur = a;
    long rest = s;
    while (rest != 0) {
        int32_t k = ev->via[rest];
        const ckks_galois_entry *ek =
            ckks_galois_find(ev->gk, ckks_galois_elt_rotation(p->slots, k));
        TSR_ASSERT(ek != NULL);
        tsr_ckks_ciphertext *t = cur == ev->tmp[0] ? ev->tmp[1] : ev->tmp[0];
        TSR_TRY(apply_galois(ev, t, cur, ek));
        cur = t;
        rest = (rest - k + (long)p->slots) % (long)p->slots;
    }
    TSR_TRY(tsr_ckks_ciphertext_copy(out, cur));
    return TSR_OK;
}

tsr_status tsr_ckks_rotate_new(tsr_ckks_evaluator *ev, tsr_ckks_ciphertext **out,
                               const tsr_ckks_ciphertext *a, int step) {
    TSR_REQUIRE(ev && out, "tsr_ckks_rotate_new: NULL argument");
    TSR_TRY(tsr_ckks_ciphertext_create(out, ev->params));
    tsr_status st = tsr_ckks_rotate(ev, *out, a, step);
    if (st != TSR_OK) {
        tsr_ckks_ciphertext_free(*out);
        *out = NULL;
    }
    return st;
}

tsr_status tsr_ckks_conjugate(tsr_ckks_evaluator *ev, tsr_ckks_ciphertext *out,
                              const tsr_ckks_ciphertext *a) {
    TSR_TRY(check_ct(ev, a, "the ciphertext"));
    TSR_TRY(check_out(ev, out));
    const ckks_galois_entry *e =
        ckks_galois_find(ev->gk, ckks_galois_elt_conjugate(ev->params->slots));
    if (!e)
        return tsr_fail(TSR_ERR_KEY_MISSING, "no conjugation key: create the Galois keys with "
                                             "TSR_CKKS_GALOIS_CONJUGATE");
    tsr_ckks_ciphertext *t = target(ev, out, a, NULL);
    TSR_TRY(apply_galois(ev, t, a, e));
    commit(ev, out, t);
    return TSR_OK;
}

tsr_status tsr_ckks_rotate_hoisted(tsr_ckks_evaluator *ev, tsr_ckks_ciphertext *const *outs,
                                   const tsr_ckks_ciphertext *a, const int *steps, size_t n) {
    TSR_TRY(check_ct(ev, a, "the ciphertext"));
    TSR_REQUIRE(outs && (steps || n == 0), "tsr_ckks_rotate_hoisted: NULL argument");
    tsr_ckks_params *p = ev->params;
    if (a->size != 2)
        return tsr_fail(TSR_ERR_INVALID_ARG, "rotations need ciphertexts of size 2: relinearize "
                                             "first");
    const ckks_galois_entry **ent = tsr_calloc_array(n ? n : 1, sizeof *ent);
    if (!ent) return tsr_fail(TSR_ERR_NOMEM, "cannot allocate rotation list");
    tsr_status st = TSR_OK;
    for (size_t i = 0; i < n && st == TSR_OK; i++) {
        st = check_out(ev, outs[i]);
        if (st == TSR_OK && outs[i] == a)
            st = tsr_fail(TSR_ERR_INVALID_ARG,
                          "hoisted rotation %zu writes into its input: use distinct outputs", i);
        for (size_t j = 0; j < i && st == TSR_OK; j++)
            if (outs[j] == outs[i])
                st = tsr_fail(TSR_ERR_INVALID_ARG, "hoisted rotations %zu and %zu share an output",
                              j, i);
        long s = steps[i] % (long)p->slots;
        if (s < 0) s += (long)p->slots;
        if (st == TSR_OK && s != 0) {
            ent[i] = ckks_galois_find(ev->gk, ckks_galois_elt_rotation(p->slots, s));
            if (!ent[i])
                st = tsr_fail(TSR_ERR_KEY_MISSING,
                              "no Galois key for a rotation by %d: hoisted rotations need the "
                              "exact key of every step (use tsr_ckks_rotate to compose)",
                              steps[i]);
            /* every key serves a's level, checked before any output is written */
            if (st == TSR_OK) st = ckks_ks_check_level(&ent[i]->key, a->level);
        }
    }
    int level = a->level;
    int decomposed = 0;
    for (size_t i = 0; i < n && st == TSR_OK; i++) {
        if (!ent[i]) {
            st = tsr_ckks_ciphertext_copy(outs[i], a);
            continue;
        }
        if (!decomposed) {
            st = ckks_ks_decompose(ev, level, ckks_ct_poly(a, 1));
            if (st != TSR_OK) break;
            decomposed = 1;
            /* finish the digits' transforms once when several keys use them */
            size_t keys = 0;
            for (size_t j = i; j < n; j++) keys += ent[j] != NULL;
            if (keys > 1) ckks_ks_finish_digits(ev);
        }
        st = galois_apply_decomposed(ev, outs[i], a, ent[i]);
    }
    tsr_free(ent);
    return st;
}

tsr_status tsr_ckks_rotate_many(tsr_ckks_evaluator *ev, tsr_ckks_ciphertext *const *outs,
                                const tsr_ckks_ciphertext *const *ins, size_t n, int step) {
    TSR_REQUIRE(ev && (n == 0 || (outs && ins)), "tsr_ckks_rotate_many: NULL argument");
    tsr_ckks_params *p = ev->params;
    for (size_t i = 0; i < n; i++) {
        TSR_TRY(check_ct(ev, ins[i], "the ciphertext"));
        TSR_TRY(check_out(ev, outs[i]));
        if (ins[i]->size != 2)
            return tsr_fail(TSR_ERR_INVALID_ARG, "rotations need ciphertexts of size 2: "
                                                 "relinearize first");
        for (size_t j = 0; j < n; j++)
            if (outs[i] == ins[j] || (j < i && outs[j] == outs[i]))
                return tsr_fail(TSR_ERR_INVALID_ARG,
                                "rotation %zu of many writes into %s %zu: use distinct outputs", i,
                                outs[i] == ins[j] ? "input" : "the output of rotation", j);
    }
    long s = step % (long)p->slots;
    if (s < 0) s += (long)p->slots;
    const ckks_galois_entry *e =
        n && s ? ckks_galois_find(ev->gk, ckks_galois_elt_rotation(p->slots, s)) : NULL;
    int level = n ? ins[0]->level : 0, same = 1;
    for (size_t i = 1; i < n; i++) same &= ins[i]->level == level;
    if (!e || e->key.max_level < level || !same || n == 1) {
        /* the loop: copies, composed steps, keys too low (its error), mixed levels */
        for (size_t i = 0; i < n; i++) TSR_TRY(tsr_ckks_rotate(ev, outs[i], ins[i], step));
        return TSR_OK;
    }
    uint64_t **o = tsr_calloc_array(4 * n, sizeof *o);
    if (!o) return tsr_fail(TSR_ERR_NOMEM, "cannot allocate the list of %zu rotations", n);
    const uint64_t **c = (const uint64_t **)(o + 2 * n);
    tsr_status st = TSR_OK;
    for (size_t i = 0; i < n && st == TSR_OK; i++) {
        st = ckks_ct_reserve(outs[i], level, 2);
        o[i] = ckks_ct_poly(outs[i], 0);
        o[n + i] = ckks_ct_poly(outs[i], 1);
        c[i] = ckks_ct_poly(ins[i], 0);
        c[n + i] = ckks_ct_poly(ins[i], 1);
    }
    if (st == TSR_OK)
        st = ckks_ks_apply_galois_many(ev, &e->key, level, n, c, c + n, e->perm, o, o + n);
    tsr_free(o);
    TSR_TRY(st);
    for (size_t i = 0; i < n; i++) {
        const tsr_ckks_ciphertext *a = ins[i];
        outs[i]->level = level;
        outs[i]->size = 2;
        set_meta(outs[i], a->scale, hypot(a->err, ckks_noise_keyswitch(p, level, a->scale)),
                 a->mag);
    }
    return TSR_OK;
}

/* ---- ModRaise ------------------------------------------------------------------------------ */

tsr_status tsr_ckks_mod_raise(tsr_ckks_evaluator *ev, tsr_ckks_ciphertext *out,
                              const tsr_ckks_ciphertext *a) {
    TSR_TRY(check_ct(ev, a, "the ciphertext"));
    TSR_TRY(check_out(ev, out));
    tsr_ckks_params *p = ev->params;
    if (a->size != 2)
        return tsr_fail(TSR_ERR_INVALID_ARG, "ModRaise needs a ciphertext of size 2: relinearize "
                                             "first");
    size_t n = p->n;
    int64_t *c = tsr_alloc(n * sizeof *c);
    if (!c) return tsr_fail(TSR_ERR_NOMEM, "cannot allocate ModRaise scratch");
    const tsr_modulus *m0 = ckks_mod(p, 0);
    uint64_t half = m0->q / 2;
    double scale = a->scale, err = a->err, mag = a->mag;
    /* Centred coefficients of each polynomial (limb 0, coefficient form). */
    uint64_t *limb = ev->poly; /* N words of scratch */
    tsr_ckks_ciphertext *t = target(ev, out, a, NULL);
    t->level = -1;
    tsr_status st = ckks_ct_reserve(t, p->L, 2);
    for (int k = 0; k < 2 && st == TSR_OK; k++) {
        memcpy(limb, ckks_ct_poly(a, k), n * sizeof(uint64_t));
        tsr_ntt_inverse(ckks_ntt(p, 0), limb);
        for (size_t i = 0; i < n; i++)
            c[i] = limb[i] > half ? (int64_t)limb[i] - (int64_t)m0->q : (int64_t)limb[i];
        tsr_rns_from_i64(p->q[p->L], ckks_ct_poly(t, k), c);
        tsr_rns_ntt(p->q[p->L], ckks_ct_poly(t, k));
    }
    tsr_free(c);
    if (st != TSR_OK) return st;
    set_meta(t, scale, err, mag);
    commit(ev, out, t);
    return TSR_OK;
}
