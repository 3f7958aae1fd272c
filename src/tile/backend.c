/*
 * tile/backend.c - the generic part of every backend: level and scale
 * bookkeeping, the checks CKKS makes (levels, scales, rotation keys) and
 * operation counting. Implementations only do the arithmetic.
 */
#include "tile/backend.h"

#include "core/alloc.h"
#include "core/error.h"

#include <math.h>
#include <sodium.h>
#include <string.h>

#define CNT(be, field, n) __atomic_fetch_add(&(be)->counts.field, (uint64_t)(n), __ATOMIC_RELAXED)

/* A vector whose scale exceeds Q_l / 2^SCALE_HEADROOM_BITS would overflow; products
 * keep 4 bits of headroom, as the CKKS core demands. */
#define SCALE_HEADROOM_BITS   1.0
#define PRODUCT_HEADROOM_BITS 4.0

static void note_level(tsr_backend *be, int level) {
    int cur = __atomic_load_n(&be->counts.min_level, __ATOMIC_RELAXED);
    while (level < cur && !__atomic_compare_exchange_n(&be->counts.min_level, &cur, level, 0,
                                                       __ATOMIC_RELAXED, __ATOMIC_RELAXED)) {
    }
}

static void raise_peak(uint64_t *peak_p, uint64_t v) {
    uint64_t peak = __atomic_load_n(peak_p, __ATOMIC_RELAXED);
    while (v > peak &&
           !__atomic_compare_exchange_n(peak_p, &peak, v, 0, __ATOMIC_RELAXED, __ATOMIC_RELAXED)) {
    }
}

/* The counts of a fused sum of products or squares: per output one tensor product, one key
 * switch and one rescale, plus the constant products, plaintext products and additions. */
static void count_fused(tsr_backend *be, size_t n_out, uint64_t terms, uint64_t mul_plain,
                        uint64_t adds, int level) {
    CNT(be, mul_ct, n_out);
    CNT(be, key_switch, n_out);
    CNT(be, mul_const, terms);
    CNT(be, mul_plain, mul_plain);
    CNT(be, add, adds);
    CNT(be, rescale, n_out);
    note_level(be, level);
}

/*
 * After a fused operation ran on the generic path: put the operation counts
 * back to `saved` (the caller counts the fused form itself) but keep the
 * live/peak vector and live limb figures, and raise the limb peak to what the
 * fused form holds (`fused_peak`).
 */
static void restore_op_counts(tsr_backend *be, const tsr_backend_counts *saved,
                              uint64_t fused_peak) {
    uint64_t live = be->counts.live_vectors, peak = be->counts.peak_vectors;
    uint64_t ll = be->counts.live_limbs;
    be->counts = *saved;
    be->counts.live_vectors = live;
    be->counts.peak_vectors = peak;
    be->counts.live_limbs = ll;
    raise_peak(&be->counts.peak_limbs, fused_peak);
}

/* Free the outputs of a failed combination and leave NULLs behind. */
static void free_outs(tsr_backend *be, tsr_bvec **outs, size_t n_out) {
    for (size_t j = 0; j < n_out; j++) {
        tsr_bvec_free(be, outs[j]);
        outs[j] = NULL;
    }
}

static void note_alloc(tsr_backend *be, int64_t limbs) {
    uint64_t live = __atomic_add_fetch(&be->counts.live_vectors, 1, __ATOMIC_RELAXED);
    raise_peak(&be->counts.peak_vectors, live);
    uint64_t ll = __atomic_add_fetch(&be->counts.live_limbs, (uint64_t)limbs, __ATOMIC_RELAXED);
    raise_peak(&be->counts.peak_limbs, ll);
}

/* Memory an operation holds only while it runs (limbs beyond the live vectors). */
static void note_transient(tsr_backend *be, uint64_t limbs) {
    uint64_t ll = __atomic_load_n(&be->counts.live_limbs, __ATOMIC_RELAXED);
    raise_peak(&be->counts.peak_limbs, ll + limbs);
}

tsr_status tsr_backend_init(tsr_backend **out, const tsr_backend_vtable *vt, void *impl,
                            int64_t slots, int top_level, double top_scale, const double *primes,
                            double scale_tol) {
    *out = NULL;
    if (slots < 2 || (slots & (slots - 1)) != 0 || slots > ((int64_t)1 << 24))
        return tsr_fail(TSR_ERR_INVALID_ARG,
                        "backend slot count %lld must be a power of two in [2, 2^24]",
                        (long long)slots);
    if (top_level < 0 || top_level > 256)
        return tsr_fail(TSR_ERR_INVALID_ARG, "backend top level %d must be in [0, 256]", top_level);
    if (!(top_scale >= 2.0) || !isfinite(top_scale))
        return tsr_fail(TSR_ERR_INVALID_ARG, "backend scale %g must be >= 2", top_scale);
    for (int l = 0; l <= top_level; l++)
        if (!(primes[l] >= 2.0) || !isfinite(primes[l]))
            return tsr_fail(TSR_ERR_INVALID_ARG, "prime q_%d = %g must be >= 2", l, primes[l]);
    tsr_backend *be = tsr_calloc(sizeof *be);
    if (!be) return tsr_fail(TSR_ERR_NOMEM, "out of memory creating a backend");
    be->vt = vt;
    be->impl = impl;
    be->slots = slots;
    be->top_level = top_level;
    be->default_scale = top_scale;
    be->scale_tol = scale_tol > 0 ? scale_tol : 0x1p-40;
    be->primes = tsr_calloc_array((size_t)top_level + 1, sizeof(double));
    be->scales = tsr_calloc_array((size_t)top_level + 1, sizeof(double));
    be->log2_q = tsr_calloc_array((size_t)top_level + 1, sizeof(double));
    be->declared = tsr_calloc((size_t)slots);
    be->used = tsr_calloc((size_t)slots);
    if (!be->primes || !be->scales || !be->log2_q || !be->declared || !be->used) {
        tsr_free(be->primes);
        tsr_free(be->scales);
        tsr_free(be->log2_q);
        tsr_free(be->declared);
        tsr_free(be->used);
        tsr_free(be);
        return tsr_fail(TSR_ERR_NOMEM, "out of memory creating a backend");
    }
    double acc = 0;
    for (int l = 0; l <= top_level; l++) {
        be->primes[l] = primes[l];
        acc += log2(primes[l]);
        be->log2_q[l] = acc;
    }
    be->scales[top_level] = top_scale;
    for (int l = top_level; l > 0; l--) {
        /* The CKKS core's order of operations (ckks/params.c), so both agree to the bit:
         * relative rounding errors double at every level of a long chain. */
        be->scales[l - 1] = be->scales[l] * (be->scales[l] / primes[l]);
        if (!(be->scales[l - 1] >= 2.0) || !isfinite(be->scales[l - 1])) {
            tsr_backend *tmp = be;
            be = NULL;
            tsr_backend_free(tmp);
            return tsr_fail(TSR_ERR_INVALID_ARG,
                            "the scale 2^%.1f and the primes give no usable canonical scale at "
                            "level %d; choose primes close to the scale",
                            log2(top_scale), l - 1);
        }
    }
    be->can_decrypt = 1;
    be->counts.min_level = top_level;
    *out = be;
    return TSR_OK;
}

void tsr_backend_free(tsr_backend *be) {
    if (!be) return;
    if (be->vt && be->vt->destroy) be->vt->destroy(be);
    tsr_free(be->primes);
    tsr_free(be->scales);
    tsr_free(be->log2_q);
    tsr_free(be->declared);
    tsr_free(be->used);
    tsr_free(be);
}

const char *tsr_backend_name(const tsr_backend *be) {
    return be->vt->name;
}

int64_t tsr_backend_slots(const tsr_backend *be) {
    return be->slots;
}

int tsr_backend_top_level(const tsr_backend *be) {
    return be->top_level;
}

double tsr_backend_default_scale(const tsr_backend *be) {
    return be->default_scale;
}

double tsr_backend_scale(const tsr_backend *be, int level) {
    TSR_REQUIRE(level >= 0 && level <= be->top_level, "tsr_backend_scale: level out of range");
    return be->scales[level];
}

double tsr_backend_prime(const tsr_backend *be, int level) {
    TSR_REQUIRE(level >= 0 && level <= be->top_level, "tsr_backend_prime: level out of range");
    return be->primes[level];
}

double tsr_backend_headroom_bits(const tsr_backend *be, int level, double scale) {
    TSR_REQUIRE(level >= 0 && level <= be->top_level,
                "tsr_backend_headroom_bits: level out of range");
    TSR_REQUIRE(scale > 0, "tsr_backend_headroom_bits: scale must be positive");
    return be->log2_q[level] - log2(scale) - 1.0;
}

void tsr_backend_fingerprint(const tsr_backend *be, uint8_t out[16]) {
    if (be->vt->fingerprint) {
        be->vt->fingerprint(be, out);
        return;
    }
    crypto_generichash_state h;
    crypto_generichash_init(&h, NULL, 0, 16);
    crypto_generichash_update(&h, (const unsigned char *)be->vt->name, strlen(be->vt->name));
    uint64_t words[3] = { (uint64_t)be->slots, (uint64_t)be->top_level, 0 };
    memcpy(&words[2], &be->default_scale, 8);
    crypto_generichash_update(&h, (const unsigned char *)words, sizeof words);
    crypto_generichash_update(&h, (const unsigned char *)be->primes,
                              ((size_t)be->top_level + 1) * sizeof(double));
    crypto_generichash_final(&h, out, 16);
}

int64_t tsr_backend_norm_step(const tsr_backend *be, int64_t step) {
    int64_t r = step % be->slots;
    return r < 0 ? r + be->slots : r;
}

tsr_status tsr_backend_declare_rotations(tsr_backend *be, const int64_t *steps, size_t n) {
    int64_t *fresh = NULL;
    size_t nf = 0;
    if (n > 0) {
        fresh = tsr_calloc_array(n, sizeof *fresh);
        if (!fresh) return tsr_fail(TSR_ERR_NOMEM, "out of memory declaring rotations");
    }
    for (size_t i = 0; i < n; i++) {
        int64_t s = tsr_backend_norm_step(be, steps[i]);
        if (s == 0 || be->declared[s]) continue;
        int dup = 0;
        for (size_t j = 0; j < nf; j++) dup |= fresh[j] == s;
        if (!dup) fresh[nf++] = s;
    }
    tsr_status st = TSR_OK;
    if (nf > 0 && be->vt->declare_rotations) st = be->vt->declare_rotations(be, fresh, nf);
    if (st == TSR_OK)
        for (size_t j = 0; j < nf; j++) be->declared[fresh[j]] = 1;
    tsr_free(fresh);
    return st;
}

static size_t list_steps(const tsr_backend *be, const uint8_t *set, int64_t *steps, size_t cap) {
    size_t n = 0;
    for (int64_t s = 1; s < be->slots; s++) {
        if (!__atomic_load_n(&set[s], __ATOMIC_RELAXED)) continue;
        if (steps && n < cap) steps[n] = s;
        n++;
    }
    return n;
}

size_t tsr_backend_declared_rotations(const tsr_backend *be, int64_t *steps, size_t cap) {
    return list_steps(be, be->declared, steps, cap);
}

size_t tsr_backend_used_rotations(const tsr_backend *be, int64_t *steps, size_t cap) {
    return list_steps(be, be->used, steps, cap);
}

void tsr_backend_set_rotation_policy(tsr_backend *be, tsr_rotation_policy policy) {
    be->policy = policy;
}

void tsr_backend_get_counts(const tsr_backend *be, tsr_backend_counts *out) {
    memcpy(out, &be->counts, sizeof *out);
}

void tsr_backend_reset_counts(tsr_backend *be) {
    uint64_t live = be->counts.live_vectors, limbs = be->counts.live_limbs;
    memset(&be->counts, 0, sizeof be->counts);
    be->counts.min_level = be->top_level;
    be->counts.live_vectors = live;
    be->counts.peak_vectors = live;
    be->counts.live_limbs = limbs;
    be->counts.peak_limbs = limbs;
    memset(be->used, 0, (size_t)be->slots);
}

int tsr_backend_depth_used(const tsr_backend *be) {
    return be->top_level - be->counts.min_level;
}

void tsr_backend_print_counts(const tsr_backend *be, FILE *out) {
    const tsr_backend_counts *c = &be->counts;
    fprintf(out,
            "%s backend: rotations %llu (hoisted groups %llu), ct*ct %llu, ct*pt %llu, "
            "ct*const %llu, adds %llu, rescales %llu, level drops %llu, key switches %llu, "
            "encodes %llu, encrypts %llu, decrypts %llu, bootstraps %llu, depth used %d, peak "
            "vectors %llu\n",
            be->vt->name, (unsigned long long)c->rotations, (unsigned long long)c->hoisted,
            (unsigned long long)c->mul_ct, (unsigned long long)c->mul_plain,
            (unsigned long long)c->mul_const, (unsigned long long)c->add,
            (unsigned long long)c->rescale, (unsigned long long)c->drop_level,
            (unsigned long long)c->key_switch, (unsigned long long)c->encode,
            (unsigned long long)c->encrypt, (unsigned long long)c->decrypt,
            (unsigned long long)c->bootstraps, tsr_backend_depth_used(be),
            (unsigned long long)c->peak_vectors);
}

/* ---- vector operations ---------------------------------------------------- */

static tsr_bvec *shell(tsr_backend *be, int level, double scale, int is_plain) {
    tsr_bvec *v = tsr_calloc(sizeof *v);
    if (!v) return NULL;
    v->level = level;
    v->scale = scale;
    v->is_plain = is_plain;
    v->limbs = (is_plain ? 1 : 2) * (int64_t)(level + 1);
    note_alloc(be, v->limbs);
    return v;
}

static void free_shell(tsr_backend *be, tsr_bvec *v) {
    __atomic_fetch_sub(&be->counts.live_vectors, 1, __ATOMIC_RELAXED);
    __atomic_fetch_sub(&be->counts.live_limbs, (uint64_t)v->limbs, __ATOMIC_RELAXED);
    tsr_free(v);
}

void tsr_bvec_free(tsr_backend *be, tsr_bvec *v) {
    if (!v) return;
    if (v->impl) be->vt->release(be, v);
    free_shell(be, v);
}

static tsr_status check_level_scale(const tsr_backend *be, int level, double scale,
                                    const char *what) {
    if (level < 0 || level > be->top_level)
        return tsr_fail(TSR_ERR_LEVEL, "%s at level %d: levels run from 0 to %d", what, level,
                        be->top_level);
    if (!(scale >= 1.0) || !isfinite(scale))
        return tsr_fail(TSR_ERR_SCALE, "%s at scale %g: the scale must be a finite value >= 1",
                        what, scale);
    if (log2(scale) + SCALE_HEADROOM_BITS >= be->log2_q[level])
        return tsr_fail(TSR_ERR_SCALE,
                        "%s at scale 2^%.1f does not fit the modulus 2^%.1f left at level %d", what,
                        log2(scale), be->log2_q[level], level);
    return TSR_OK;
}

static tsr_status make_vec(tsr_backend *be, const double *values, int level, double scale,
                           int is_plain, tsr_bvec **out) {
    *out = NULL;
    TSR_TRY(check_level_scale(be, level, scale, is_plain ? "encoding" : "encryption"));
    tsr_bvec *v = shell(be, level, scale, is_plain);
    if (!v) return tsr_fail(TSR_ERR_NOMEM, "out of memory allocating a vector");
    tsr_status st = is_plain ? be->vt->encode(be, values, v) : be->vt->encrypt(be, values, v);
    if (st != TSR_OK) {
        tsr_bvec_free(be, v);
        return st;
    }
    if (is_plain) {
        CNT(be, encode, 1);
    } else {
        CNT(be, encrypt, 1);
        note_level(be, level);
    }
    *out = v;
    return TSR_OK;
}

tsr_status tsr_bvec_encrypt(tsr_backend *be, const double *values, int level, double scale,
                            tsr_bvec **out) {
    return make_vec(be, values, level, scale, 0, out);
}

tsr_status tsr_bvec_encode(tsr_backend *be, const double *values, int level, double scale,
                           tsr_bvec **out) {
    return make_vec(be, values, level, scale, 1, out);
}

tsr_status tsr_bvec_decrypt(tsr_backend *be, const tsr_bvec *v, double *values) {
    if (!be->can_decrypt)
        return tsr_fail(TSR_ERR_UNSUPPORTED,
                        "the %s backend cannot decrypt (shape-only dry run, or no secret key)",
                        be->vt->name);
    TSR_TRY(be->vt->decrypt(be, v, values));
    if (!v->is_plain) CNT(be, decrypt, 1);
    return TSR_OK;
}

tsr_status tsr_bvec_read(tsr_backend *be, const uint8_t *blob, uint64_t len, int level,
                         double scale, int is_plain, tsr_bvec **out) {
    *out = NULL;
    TSR_TRY(check_level_scale(be, level, scale, is_plain ? "plaintext" : "ciphertext"));
    tsr_bvec *v = shell(be, level, scale, is_plain);
    if (!v) return tsr_fail(TSR_ERR_NOMEM, "out of memory reading a vector");
    tsr_status st = be->vt->read_vec(be, blob, len, v);
    if (st != TSR_OK) {
        tsr_bvec_free(be, v);
        return st;
    }
    *out = v;
    return TSR_OK;
}

tsr_status tsr_bvec_copy(tsr_backend *be, const tsr_bvec *v, tsr_bvec **out) {
    *out = NULL;
    tsr_bvec *c = shell(be, v->level, v->scale, v->is_plain);
    if (!c) return tsr_fail(TSR_ERR_NOMEM, "out of memory copying a vector");
    tsr_status st = be->vt->copy(be, v, c);
    if (st != TSR_OK) {
        tsr_bvec_free(be, c);
        return st;
    }
    *out = c;
    return TSR_OK;
}

static tsr_status need_ct(const tsr_bvec *v, const char *op) {
    if (v->is_plain)
        return tsr_fail(TSR_ERR_INVALID_ARG, "%s: the destination must be a ciphertext", op);
    return TSR_OK;
}

static tsr_status same_level(const tsr_bvec *a, const tsr_bvec *b, const char *op) {
    if (a->level != b->level)
        return tsr_fail(TSR_ERR_LEVEL,
                        "%s: operands are at levels %d and %d; bring the higher one down first "
                        "(drop_level, or encode the plaintext at level %d)",
                        op, a->level, b->level, a->level);
    return TSR_OK;
}

static tsr_status add_sub(tsr_backend *be, tsr_bvec *dst, const tsr_bvec *src, int sign) {
    const char *op = sign > 0 ? "add" : "sub";
    TSR_TRY(need_ct(dst, op));
    TSR_TRY(same_level(dst, src, op));
    double rel = fabs(dst->scale / src->scale - 1.0);
    if (rel > be->scale_tol)
        return tsr_fail(TSR_ERR_SCALE,
                        "%s: scales 2^%.4f and 2^%.4f differ by a factor %.6g (tolerance %g); "
                        "bring them to one scale first",
                        op, log2(dst->scale), log2(src->scale), dst->scale / src->scale,
                        be->scale_tol);
    TSR_TRY(be->vt->add(be, dst, src, sign));
    CNT(be, add, 1);
    return TSR_OK;
}

tsr_status tsr_bvec_add(tsr_backend *be, tsr_bvec *dst, const tsr_bvec *src) {
    return add_sub(be, dst, src, 1);
}

tsr_status tsr_bvec_sub(tsr_backend *be, tsr_bvec *dst, const tsr_bvec *src) {
    return add_sub(be, dst, src, -1);
}

tsr_status tsr_bvec_add_const(tsr_backend *be, tsr_bvec *dst, double c) {
    TSR_TRY(need_ct(dst, "add_const"));
    if (!isfinite(c)) return tsr_fail(TSR_ERR_INVALID_ARG, "add_const: constant is not finite");
    TSR_TRY(be->vt->add_const(be, dst, c));
    CNT(be, add, 1);
    return TSR_OK;
}

static tsr_status check_product(const tsr_backend *be, int level, double s1, double s2,
                                const char *op) {
    double bits = log2(s1) + log2(s2);
    if (bits + PRODUCT_HEADROOM_BITS < be->log2_q[level]) return TSR_OK;
    if (level == 0)
        return tsr_fail(TSR_ERR_LEVEL,
                        "%s at level 0: the product's scale 2^%.1f exceeds the modulus 2^%.1f; "
                        "no multiplicative depth left (use deeper parameters or fewer levels)",
                        op, bits, be->log2_q[0]);
    return tsr_fail(TSR_ERR_SCALE,
                    "%s at level %d: the product's scale 2^%.1f exceeds the modulus 2^%.1f; "
                    "rescale the operands first",
                    op, level, bits, be->log2_q[level]);
}

static void count_mul(tsr_backend *be, const tsr_bvec *b) {
    if (b->is_plain) {
        CNT(be, mul_plain, 1);
    } else {
        CNT(be, mul_ct, 1);
        CNT(be, key_switch, 1);
    }
}

tsr_status tsr_bvec_mul(tsr_backend *be, tsr_bvec *dst, const tsr_bvec *src) {
    TSR_TRY(need_ct(dst, "mul"));
    TSR_TRY(same_level(dst, src, "mul"));
    TSR_TRY(check_product(be, dst->level, dst->scale, src->scale, "mul"));
    TSR_TRY(be->vt->mul(be, dst, src));
    dst->scale *= src->scale;
    count_mul(be, src);
    return TSR_OK;
}

tsr_status tsr_bvec_mul_new(tsr_backend *be, const tsr_bvec *a, const tsr_bvec *b, tsr_bvec **out) {
    *out = NULL;
    if (!be->vt->mul_to) {
        TSR_TRY(tsr_bvec_copy(be, a, out));
        tsr_status st = tsr_bvec_mul(be, *out, b);
        if (st != TSR_OK) {
            tsr_bvec_free(be, *out);
            *out = NULL;
        }
        return st;
    }
    TSR_TRY(need_ct(a, "mul"));
    TSR_TRY(same_level(a, b, "mul"));
    TSR_TRY(check_product(be, a->level, a->scale, b->scale, "mul"));
    tsr_bvec *v = shell(be, a->level, a->scale * b->scale, 0);
    if (!v) return tsr_fail(TSR_ERR_NOMEM, "out of memory multiplying");
    tsr_status st = be->vt->mul_to(be, v, a, b);
    if (st != TSR_OK) {
        tsr_bvec_free(be, v);
        return st;
    }
    count_mul(be, b);
    *out = v;
    return TSR_OK;
}

tsr_status tsr_bvec_mul_to(tsr_backend *be, tsr_bvec *out, const tsr_bvec *a, const tsr_bvec *b) {
    TSR_REQUIRE(out != a && out != b, "tsr_bvec_mul_to: out must differ from the operands");
    TSR_TRY(need_ct(out, "mul"));
    if (!be->vt->mul_to) {
        tsr_bvec *t;
        TSR_TRY(tsr_bvec_mul_new(be, a, b, &t));
        if (out->impl) be->vt->release(be, out);
        out->impl = t->impl;
        out->level = t->level;
        out->scale = t->scale;
        t->impl = NULL;
        tsr_bvec_free(be, t);
        return TSR_OK;
    }
    TSR_TRY(need_ct(a, "mul"));
    TSR_TRY(same_level(a, b, "mul"));
    TSR_TRY(check_product(be, a->level, a->scale, b->scale, "mul"));
    int level = out->level;
    double scale = out->scale;
    out->level = a->level;
    out->scale = a->scale * b->scale;
    tsr_status st = be->vt->mul_to(be, out, a, b);
    if (st != TSR_OK) {
        out->level = level;
        out->scale = scale;
        return st;
    }
    count_mul(be, b);
    return TSR_OK;
}

tsr_status tsr_bvec_mul_const(tsr_backend *be, tsr_bvec *dst, double c, double cscale) {
    TSR_TRY(need_ct(dst, "mul_const"));
    if (!isfinite(c)) return tsr_fail(TSR_ERR_INVALID_ARG, "mul_const: constant is not finite");
    if (!(cscale >= 1.0) || !isfinite(cscale))
        return tsr_fail(TSR_ERR_SCALE, "mul_const: constant scale %g must be >= 1", cscale);
    if (fabs(c) * cscale >= 0x1p62)
        return tsr_fail(TSR_ERR_SCALE,
                        "mul_const: constant %g at scale 2^%.1f does not fit 62 bits; use a "
                        "smaller scale",
                        c, log2(cscale));
    TSR_TRY(check_product(be, dst->level, dst->scale, cscale, "mul_const"));
    TSR_TRY(be->vt->mul_const(be, dst, c, cscale));
    dst->scale *= cscale;
    CNT(be, mul_const, 1);
    return TSR_OK;
}

/* The constants of a sparse linear combination: each must fit 62 bits at scale cscale (>= 1);
 * counts the nonzero terms and the additions they cost. */
static tsr_status count_constants(const char *op, const int64_t *row_ptr, const double *vals,
                                  size_t n_out, double cscale, uint64_t *terms, uint64_t *adds) {
    if (!(cscale >= 1.0) || !isfinite(cscale))
        return tsr_fail(TSR_ERR_SCALE, "%s: constant scale %g must be >= 1", op, cscale);
    *terms = *adds = 0;
    for (size_t j = 0; j < n_out; j++) {
        uint64_t nz = 0;
        for (int64_t k = row_ptr[j]; k < row_ptr[j + 1]; k++) {
            if (!isfinite(vals[k]) || fabs(vals[k]) * cscale >= 0x1p62)
                return tsr_fail(TSR_ERR_SCALE,
                                "%s: constant %g at scale 2^%.1f does not fit 62 bits", op, vals[k],
                                log2(cscale));
            nz += vals[k] != 0.0;
        }
        *terms += nz;
        *adds += nz > 1 ? nz - 1 : 0;
    }
    return TSR_OK;
}

tsr_status tsr_bvec_lincomb(tsr_backend *be, tsr_bvec **outs, size_t n_out,
                            const tsr_bvec *const *ins, size_t n_in, const int64_t *row_ptr,
                            const int64_t *cols, const double *vals, double cscale) {
    for (size_t j = 0; j < n_out; j++) outs[j] = NULL;
    if (n_in == 0) return tsr_fail(TSR_ERR_INVALID_ARG, "lincomb: no inputs");
    const tsr_bvec *a = ins[0];
    for (size_t i = 0; i < n_in; i++) {
        TSR_TRY(need_ct(ins[i], "lincomb"));
        TSR_TRY(same_level(a, ins[i], "lincomb"));
        if (fabs(ins[i]->scale / a->scale - 1.0) > be->scale_tol)
            return tsr_fail(TSR_ERR_SCALE, "lincomb: inputs at different scales");
    }
    uint64_t terms, adds;
    TSR_TRY(count_constants("lincomb", row_ptr, vals, n_out, cscale, &terms, &adds));
    TSR_TRY(check_product(be, a->level, a->scale, cscale, "lincomb"));
    tsr_status st = TSR_OK;
    if (be->vt->lincomb) {
        for (size_t j = 0; j < n_out && st == TSR_OK; j++) {
            outs[j] = shell(be, a->level, a->scale * cscale, 0);
            if (!outs[j]) st = tsr_fail(TSR_ERR_NOMEM, "out of memory in lincomb");
        }
        if (st == TSR_OK)
            st = be->vt->lincomb(be, outs, n_out, ins, n_in, row_ptr, cols, vals, cscale);
        if (st == TSR_OK) {
            CNT(be, mul_const, terms);
            CNT(be, add, adds);
        }
    } else {
        for (size_t j = 0; j < n_out && st == TSR_OK; j++) {
            tsr_bvec *acc = NULL;
            for (int64_t k = row_ptr[j]; k < row_ptr[j + 1] && st == TSR_OK; k++) {
                if (vals[k] == 0.0) continue;
                tsr_bvec *t;
                st = tsr_bvec_copy(be, ins[cols[k]], &t);
                if (st == TSR_OK) st = tsr_bvec_mul_const(be, t, vals[k], cscale);
                if (st == TSR_OK && acc) {
                    st = tsr_bvec_add(be, acc, t);
                    tsr_bvec_free(be, t);
                } else if (st == TSR_OK) {
                    acc = t;
                } else {
                    tsr_bvec_free(be, t);
                }
            }
            if (st == TSR_OK && !acc) {
                /* An all-zero row: an encryption of zero at the right level and scale. */
                st = tsr_bvec_copy(be, a, &acc);
                if (st == TSR_OK) st = be->vt->mul_const(be, acc, 0.0, cscale);
                if (st == TSR_OK) acc->scale *= cscale;
            }
            outs[j] = acc;
        }
    }
    if (st != TSR_OK) free_outs(be, outs, n_out);
    return st;
}

tsr_status tsr_bvec_sq_lincomb(tsr_backend *be, tsr_bvec **outs, size_t n_out,
                               const tsr_bvec *const *ins, size_t n_in, const int64_t *row_ptr,
                               const int64_t *cols, const double *vals, double cscale) {
    for (size_t j = 0; j < n_out; j++) outs[j] = NULL;
    if (n_in == 0) return tsr_fail(TSR_ERR_INVALID_ARG, "sq_lincomb: no inputs");
    const tsr_bvec *a = ins[0];
    for (size_t i = 0; i < n_in; i++) {
        TSR_TRY(need_ct(ins[i], "sq_lincomb"));
        TSR_TRY(same_level(a, ins[i], "sq_lincomb"));
        if (fabs(ins[i]->scale / a->scale - 1.0) > be->scale_tol)
            return tsr_fail(TSR_ERR_SCALE, "sq_lincomb: inputs at different scales");
    }
    if (a->level < 1)
        return tsr_fail(TSR_ERR_LEVEL,
                        "sq_lincomb at level 0: no multiplicative depth left (use parameters "
                        "with more levels)");
    TSR_TRY(check_product(be, a->level, a->scale, a->scale, "square"));
    double q = be->primes[a->level], s2 = a->scale * a->scale / q;
    if (s2 < 2.0)
        return tsr_fail(TSR_ERR_SCALE, "sq_lincomb: the squares' scale 2^%.1f is too small",
                        log2(s2));
    uint64_t terms, adds;
    TSR_TRY(count_constants("sq_lincomb", row_ptr, vals, n_out, cscale, &terms, &adds));
    /* The sum is formed before the rescale: it must fit the modulus at the inputs' level. */
    TSR_TRY(check_product(be, a->level, a->scale * a->scale, cscale, "sq_lincomb"));
    TSR_TRY(check_product(be, a->level - 1, s2, cscale, "sq_lincomb"));
    tsr_status st = TSR_OK;
    /* Memory as the fused form holds it (ckks): every square (3 polynomials) and every
     * output before its relinearization (3 polynomials) at the inputs' level, at once. */
    int64_t l1 = a->level + 1;
    uint64_t fused = (uint64_t)(3 * l1 * ((int64_t)n_in + (int64_t)n_out));
    uint64_t live0 = __atomic_load_n(&be->counts.live_limbs, __ATOMIC_RELAXED);
    if (be->vt->sq_lincomb) {
        for (size_t j = 0; j < n_out && st == TSR_OK; j++) {
            outs[j] = shell(be, a->level - 1, s2 * cscale, 0);
            if (!outs[j]) st = tsr_fail(TSR_ERR_NOMEM, "out of memory in sq_lincomb");
        }
        uint64_t now = __atomic_load_n(&be->counts.live_limbs, __ATOMIC_RELAXED);
        note_transient(be, live0 + fused - now);
        if (st == TSR_OK)
            st = be->vt->sq_lincomb(be, outs, n_out, ins, n_in, row_ptr, cols, vals, cscale);
    } else {
        /* Square and rescale every input, then combine; counted as the fused form below. */
        tsr_backend_counts saved = be->counts;
        tsr_bvec **sq = tsr_calloc_array(n_in, sizeof *sq);
        if (!sq) return tsr_fail(TSR_ERR_NOMEM, "out of memory in sq_lincomb");
        for (size_t i = 0; i < n_in && st == TSR_OK; i++) {
            st = tsr_bvec_mul_new(be, ins[i], ins[i], &sq[i]);
            if (st == TSR_OK) st = tsr_bvec_rescale(be, sq[i]);
        }
        if (st == TSR_OK)
            st = tsr_bvec_lincomb(be, outs, n_out, (const tsr_bvec *const *)sq, n_in, row_ptr, cols,
                                  vals, cscale);
        for (size_t i = 0; i < n_in; i++) tsr_bvec_free(be, sq[i]);
        tsr_free(sq);
        /* memory as the fused form holds it, like the counts */
        restore_op_counts(be, &saved, live0 + fused);
    }
    if (st != TSR_OK) {
        free_outs(be, outs, n_out);
        return st;
    }
    count_fused(be, n_out, terms, 0, adds, a->level - 1);
    return TSR_OK;
}

tsr_status tsr_bvec_prod_lincomb(tsr_backend *be, tsr_bvec **outs, size_t n_out,
                                 const tsr_bvec *const *a, size_t n_a, const tsr_bvec *const *b,
                                 size_t n_b, const int64_t *row_ptr, const int64_t *ia,
                                 const int64_t *ib, const double *vals, double cscale) {
    for (size_t j = 0; j < n_out; j++) outs[j] = NULL;
    if (n_a == 0 || n_b == 0) return tsr_fail(TSR_ERR_INVALID_ARG, "prod_lincomb: no inputs");
    const tsr_bvec *a0 = a[0], *b0 = b[0];
    for (size_t i = 0; i < n_a + n_b; i++) {
        const tsr_bvec *x = i < n_a ? a[i] : b[i - n_a], *x0 = i < n_a ? a0 : b0;
        TSR_TRY(need_ct(x, "prod_lincomb"));
        TSR_TRY(same_level(a0, x, "prod_lincomb"));
        if (fabs(x->scale / x0->scale - 1.0) > be->scale_tol)
            return tsr_fail(TSR_ERR_SCALE, "prod_lincomb: the %s inputs have different scales",
                            i < n_a ? "a" : "b");
    }
    if (a0->level < 1)
        return tsr_fail(TSR_ERR_LEVEL,
                        "prod_lincomb at level 0: no multiplicative depth left (use parameters "
                        "with more levels)");
    if (row_ptr[0] != 0) return tsr_fail(TSR_ERR_INVALID_ARG, "prod_lincomb: row_ptr[0] must be 0");
    for (size_t j = 0; j < n_out; j++) {
        if (row_ptr[j + 1] < row_ptr[j])
            return tsr_fail(TSR_ERR_INVALID_ARG, "prod_lincomb: row_ptr decreases at row %zu", j);
        for (int64_t k = row_ptr[j]; k < row_ptr[j + 1]; k++)
            if (ia[k] < 0 || (size_t)ia[k] >= n_a || ib[k] < 0 || (size_t)ib[k] >= n_b)
                return tsr_fail(TSR_ERR_INVALID_ARG, "prod_lincomb: term %lld reads (%lld, %lld)",
                                (long long)k, (long long)ia[k], (long long)ib[k]);
    }
    TSR_TRY(check_product(be, a0->level, a0->scale, b0->scale, "prod_lincomb"));
    double q = be->primes[a0->level], s2 = a0->scale * b0->scale / q;
    if (s2 < 2.0)
        return tsr_fail(TSR_ERR_SCALE, "prod_lincomb: the products' scale 2^%.1f is too small",
                        log2(s2));
    uint64_t terms, adds;
    TSR_TRY(count_constants("prod_lincomb", row_ptr, vals, n_out, cscale, &terms, &adds));
    TSR_TRY(check_product(be, a0->level, a0->scale * b0->scale, cscale, "prod_lincomb"));
    TSR_TRY(check_product(be, a0->level - 1, s2, cscale, "prod_lincomb"));
    tsr_status st = TSR_OK;
    int64_t l1 = a0->level + 1;
    uint64_t live0 = __atomic_load_n(&be->counts.live_limbs, __ATOMIC_RELAXED);
    /* Memory as the fused form holds it (ckks): in each of its TSR_PROD_LINCOMB_THREADS
     * threads the products of one output (3 polynomials each), and every output before its
     * relinearization (3 polynomials). */
    int64_t widest = 0;
    for (size_t j = 0; j < n_out; j++)
        if (row_ptr[j + 1] - row_ptr[j] > widest) widest = row_ptr[j + 1] - row_ptr[j];
    uint64_t fused = (uint64_t)(3 * l1 * (TSR_PROD_LINCOMB_THREADS * widest + (int64_t)n_out));
    if (be->vt->prod_lincomb) {
        for (size_t j = 0; j < n_out && st == TSR_OK; j++) {
            outs[j] = shell(be, a0->level - 1, s2 * cscale, 0);
            if (!outs[j]) st = tsr_fail(TSR_ERR_NOMEM, "out of memory in prod_lincomb");
        }
        uint64_t now = __atomic_load_n(&be->counts.live_limbs, __ATOMIC_RELAXED);
        note_transient(be, live0 + fused - now);
        if (st == TSR_OK)
            st = be->vt->prod_lincomb(be, outs, n_out, a, b, row_ptr, ia, ib, vals, cscale);
    } else {
        /* Per output: multiply and rescale its terms, then combine; counted as the fused
         * form below. */
        tsr_backend_counts saved = be->counts;
        for (size_t j = 0; j < n_out && st == TSR_OK; j++) {
            int64_t k0 = row_ptr[j], nk = row_ptr[j + 1] - k0;
            tsr_bvec **pr = tsr_calloc_array(nk ? (size_t)nk : 1, sizeof *pr);
            int64_t *cols = tsr_calloc_array(nk ? (size_t)nk : 1, sizeof *cols);
            int64_t rp[2] = { 0, nk };
            if (!pr || !cols) st = tsr_fail(TSR_ERR_NOMEM, "out of memory in prod_lincomb");
            for (int64_t k = 0; k < nk && st == TSR_OK; k++) {
                cols[k] = k;
                st = tsr_bvec_mul_new(be, a[ia[k0 + k]], b[ib[k0 + k]], &pr[k]);
                if (st == TSR_OK) st = tsr_bvec_rescale(be, pr[k]);
            }
            if (st == TSR_OK && nk == 0) {
                /* an empty row: zero at the products' level and scale */
                st = tsr_bvec_mul_new(be, a0, b0, &pr[0]);
                if (st == TSR_OK) st = tsr_bvec_rescale(be, pr[0]);
                rp[1] = 1;
                cols[0] = 0;
            }
            double zero = 0.0;
            if (st == TSR_OK)
                st = tsr_bvec_lincomb(be, &outs[j], 1, (const tsr_bvec *const *)pr,
                                      (size_t)(nk ? nk : 1), rp, cols, nk ? vals + k0 : &zero,
                                      cscale);
            for (int64_t k = 0; pr && k < (nk ? nk : 1); k++) tsr_bvec_free(be, pr[k]);
            tsr_free(pr);
            tsr_free(cols);
        }
        /* memory as the fused form holds it, like the counts */
        restore_op_counts(be, &saved, live0 + fused);
    }
    if (st != TSR_OK) {
        free_outs(be, outs, n_out);
        return st;
    }
    count_fused(be, n_out, terms, 2 * terms, adds, a0->level - 1);
    return TSR_OK;
}

tsr_status tsr_bvec_rotate_many(tsr_backend *be, const tsr_bvec *src, const int64_t *steps,
                                size_t n, tsr_bvec **outs) {
    for (size_t i = 0; i < n; i++) outs[i] = NULL;
    if (src->is_plain)
        return tsr_fail(TSR_ERR_INVALID_ARG, "rotate: only ciphertexts are rotated here");
    /* Check keys first so a failure has no side effects. */
    for (size_t i = 0; i < n; i++) {
        int64_t s = tsr_backend_norm_step(be, steps[i]);
        if (s == 0 || be->declared[s] || be->policy == TSR_ROTATIONS_COLLECT) continue;
        return tsr_fail(TSR_ERR_KEY_MISSING,
                        "rotation by %lld (slots %lld) has no Galois key: declare the step with "
                        "tsr_backend_declare_rotations, or plan with a collecting mockup",
                        (long long)steps[i], (long long)be->slots);
    }
    int64_t *ns = tsr_calloc_array(n ? n : 1, sizeof *ns);
    tsr_bvec **rot = tsr_calloc_array(n ? n : 1, sizeof *rot);
    if (!ns || !rot) {
        tsr_free(ns);
        tsr_free(rot);
        return tsr_fail(TSR_ERR_NOMEM, "out of memory rotating");
    }
    tsr_status st = TSR_OK;
    size_t nr = 0;
    for (size_t i = 0; i < n && st == TSR_OK; i++) {
        int64_t s = tsr_backend_norm_step(be, steps[i]);
        if (s == 0) {
            st = tsr_bvec_copy(be, src, &outs[i]);
            continue;
        }
        outs[i] = shell(be, src->level, src->scale, 0);
        if (!outs[i]) {
            st = tsr_fail(TSR_ERR_NOMEM, "out of memory rotating");
            break;
        }
        ns[nr] = s;
        rot[nr] = outs[i];
        nr++;
    }
    if (st == TSR_OK && nr > 0) st = be->vt->rotate(be, src, ns, nr, rot);
    if (st != TSR_OK) {
        for (size_t i = 0; i < n; i++) {
            tsr_bvec_free(be, outs[i]);
            outs[i] = NULL;
        }
    } else {
        for (size_t i = 0; i < nr; i++) __atomic_store_n(&be->used[ns[i]], 1, __ATOMIC_RELAXED);
        CNT(be, rotations, nr);
        CNT(be, key_switch, nr);
        if (nr > 1) CNT(be, hoisted, 1);
    }
    tsr_free(ns);
    tsr_free(rot);
    return st;
}

tsr_status tsr_bvec_rotate(tsr_backend *be, const tsr_bvec *src, int64_t step, tsr_bvec **out) {
    return tsr_bvec_rotate_many(be, src, &step, 1, out);
}

tsr_status tsr_bvec_rotate_sums(tsr_backend *be, tsr_bvec *const *vs, size_t n,
                                const int64_t *steps, size_t nsteps) {
    int fused = be->vt->rotate_sums != NULL && n > 1, level = 0;
    for (size_t i = 0; i < n; i++) {
        TSR_TRY(need_ct(vs[i], "rotate_sums"));
        if (vs[i]->level > level) level = vs[i]->level;
        /* in place: a vector given twice would be summed into itself out of order */
        for (size_t j = 0; j < i; j++)
            if (vs[j] == vs[i])
                return tsr_fail(TSR_ERR_INVALID_ARG,
                                "rotate_sums: vector %zu is vector %zu again (the vectors are "
                                "summed in place and must be distinct)",
                                i, j);
    }
    int64_t *ns = tsr_calloc_array(nsteps ? nsteps : 1, sizeof *ns);
    if (!ns) return tsr_fail(TSR_ERR_NOMEM, "out of memory rotating");
    for (size_t k = 0; k < nsteps; k++) {
        ns[k] = tsr_backend_norm_step(be, steps[k]);
        fused &= ns[k] != 0;
        if (ns[k] == 0 || be->declared[ns[k]] || be->policy == TSR_ROTATIONS_COLLECT) continue;
        tsr_free(ns);
        return tsr_fail(TSR_ERR_KEY_MISSING,
                        "rotation by %lld (slots %lld) has no Galois key: declare the step with "
                        "tsr_backend_declare_rotations, or plan with a collecting mockup",
                        (long long)steps[k], (long long)be->slots);
    }
    /* the rotated vectors the step-by-step form holds at once, on every backend */
    const uint64_t held = n < TSR_ROTATE_SUM_CHUNK ? n : TSR_ROTATE_SUM_CHUNK;
    if (n && nsteps) note_transient(be, held * 2 * (uint64_t)(level + 1));
    tsr_status st = TSR_OK;
    if (fused && nsteps) {
        st = be->vt->rotate_sums(be, vs, n, ns, nsteps);
        if (st == TSR_OK) {
            for (size_t k = 0; k < nsteps; k++)
                __atomic_store_n(&be->used[ns[k]], 1, __ATOMIC_RELAXED);
            CNT(be, rotations, n * nsteps);
            CNT(be, key_switch, n * nsteps);
            CNT(be, add, n * nsteps);
        }
    } else {
        /* vector by vector (the order a noisy mockup draws its noise in) */
        for (size_t i = 0; i < n && st == TSR_OK; i++)
            for (size_t k = 0; k < nsteps && st == TSR_OK; k++) {
                tsr_bvec *r;
                st = tsr_bvec_rotate(be, vs[i], steps[k], &r);
                if (st != TSR_OK) break;
                st = tsr_bvec_add(be, vs[i], r);
                tsr_bvec_free(be, r);
            }
    }
    tsr_free(ns);
    return st;
}

tsr_status tsr_bvec_rescale(tsr_backend *be, tsr_bvec *v) {
    TSR_TRY(need_ct(v, "rescale"));
    if (v->level == 0)
        return tsr_fail(TSR_ERR_LEVEL,
                        "rescale at level 0: no multiplicative depth left (use parameters with "
                        "more levels, or a plan with less depth)");
    double q = be->primes[v->level];
    if (v->scale / q < 2.0)
        return tsr_fail(TSR_ERR_SCALE,
                        "rescale: scale 2^%.1f divided by q_%d = 2^%.1f would leave 2^%.1f; only "
                        "rescale after a product",
                        log2(v->scale), v->level, log2(q), log2(v->scale / q));
    TSR_TRY(be->vt->rescale(be, v));
    v->scale /= q;
    v->level--;
    CNT(be, rescale, 1);
    note_level(be, v->level);
    return TSR_OK;
}

tsr_status tsr_bvec_drop_level(tsr_backend *be, tsr_bvec *v, int level) {
    if (level == v->level) return TSR_OK;
    if (level < 0 || level > v->level)
        return tsr_fail(TSR_ERR_LEVEL, "drop_level: cannot go from level %d to level %d", v->level,
                        level);
    TSR_TRY(check_level_scale(be, level, v->scale, "drop_level"));
    TSR_TRY(be->vt->drop_level(be, v, level));
    v->level = level;
    CNT(be, drop_level, 1);
    if (!v->is_plain) note_level(be, level);
    return TSR_OK;
}

void tsr_backend_set_boot_level(tsr_backend *be, int level) {
    TSR_ASSERT(level >= 0 && level <= be->top_level);
    be->boot_level = level;
}

int tsr_backend_boot_level(const tsr_backend *be) {
    return be->vt->bootstrap ? be->boot_level : 0;
}

tsr_status tsr_bvec_bootstrap_many(tsr_backend *be, tsr_bvec *const *vs, size_t n) {
    if (n == 0) return TSR_OK;
    if (!be->vt->bootstrap || be->boot_level < 1)
        return tsr_fail(TSR_ERR_UNSUPPORTED,
                        "bootstrap: the %s backend has no bootstrapping; give it a circuit "
                        "(tsr_backend_ckks_set_bootstrap) or a refresh level "
                        "(tsr_backend_mockup_set_bootstrap; for the debug backend, on both "
                        "before creating it)",
                        be->vt->name);
    for (size_t i = 0; i < n; i++) {
        const tsr_bvec *v = vs[i];
        for (size_t j = 0; j < i; j++)
            TSR_REQUIRE(vs[j] != v, "tsr_bvec_bootstrap_many: a vector is listed twice");
        TSR_TRY(need_ct(v, "bootstrap"));
        if (v->level < 1)
            return tsr_fail(TSR_ERR_LEVEL,
                            "bootstrap: a ciphertext at level 0 cannot be bootstrapped (it takes "
                            "one level to bring the scale to the circuit's input scale): "
                            "bootstrap one operation earlier");
        double canon = be->scales[v->level];
        if (fabs(v->scale / canon - 1) > be->scale_tol)
            return tsr_fail(TSR_ERR_SCALE,
                            "bootstrap: scale 2^%.6f is not the canonical scale 2^%.6f of level "
                            "%d (rescale after products first)",
                            log2(v->scale), log2(canon), v->level);
    }
    TSR_TRY(be->vt->bootstrap(be, vs, n));
    int64_t limbs = 2 * ((int64_t)be->boot_level + 1);
    for (size_t i = 0; i < n; i++) {
        tsr_bvec *v = vs[i];
        v->level = be->boot_level;
        v->scale = be->scales[be->boot_level];
        /* the vector now holds boot_level + 1 limbs per polynomial */
        __atomic_fetch_add(&be->counts.live_limbs, (uint64_t)limbs, __ATOMIC_RELAXED);
        __atomic_fetch_sub(&be->counts.live_limbs, (uint64_t)v->limbs, __ATOMIC_RELAXED);
        raise_peak(&be->counts.peak_limbs,
                   __atomic_load_n(&be->counts.live_limbs, __ATOMIC_RELAXED));
        v->limbs = limbs;
    }
    CNT(be, bootstraps, (n + 1) / 2);
    return TSR_OK;
}

tsr_status tsr_bvec_bootstrap(tsr_backend *be, tsr_bvec *v) {
    return tsr_bvec_bootstrap_many(be, &v, 1);
}
