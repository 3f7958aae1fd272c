/*
 * ckks/keyswitch.c - hybrid key switching (Han-Ki, CT-RSA 2020) and
 * hoisting (Halevi-Shoup, CRYPTO 2018, section 5), with the NTTs split and
 * fused into the passes around them.
 *
 * Every NTT here is split as in ring/ntt.h: R = 2^r segments of B = N/R
 * words (B = 4096, 32 KiB); the outer stages combine segments column by
 * column, the inner stages stay inside one block. That lets each limb make
 * one trip through memory per phase instead of one per NTT pass (the
 * "kernel fusion" of the GPU literature, e.g. Jung et al., "Over 100x
 * faster bootstrapping in fully homomorphic encryption through memory-
 * centric optimization with GPUs", TCHES 2021, applied to L1/L2):
 *  1. decompose: inner inverse stages of every limb of d, block by block
 *     (into ks_coef); per digit j, the ring's tsr_baseconv_modup_split does
 *     the outer inverse stages, the centred conversion to every other prime
 *     of Q_l u P (the digit lifted to (-Q_j/2, Q_j/2], as in the centred fast
 *     base extension of Halevi-Polyakov-Shoup, CT-RSA 2019: a quarter of
 *     the uncentred digits' second moment, no fixed error near the first
 *     root) and the outer forward stages a few columns at a time
 *     and stores the digit (ks_digits). The digit's own limbs are d's limbs,
 *     read in place. The inner forward stages of the digits are left to the
 *     consumer, unless several keys reuse the digits (hoisting): then
 *     ckks_ks_finish_digits does them once.
 *  2. P limbs (the special primes, and q_l in rescale mode), block by
 *     block: inner forward stages of the digit blocks (L1), the inner
 *     products with the key (ring's fused tsr_vec_dot2), the inner inverse
 *     stages of the result; then the ring's tsr_moddown_prepare_split turns
 *     them into the ModDown conversions to the Q primes (outer stages fused).
 *  3. Q limbs, block by block: digit blocks, inner products, and the ModDown
 *     of the block (tsr_moddown_block: inner stages of the conversion,
 *     subtraction, P^-1, plus c) written straight to the output. The
 *     accumulators of the Q limbs never reach memory.
 * Variants: with c given, "rescale" mode adds P*c to the Q limbs (P*c is 0
 * modulo the special primes) and divides by q_l*P: relinearization and
 * rescale in one ModDown; "plain" mode adds c after the division.
 *
 * Rotations by g key-switch c1 itself with a key from s to phi_g^-1(s) and
 * apply phi_g (an NTT-domain permutation) to the two results afterwards.
 * Many ciphertexts rotated by one step (ckks_ks_apply_galois_many): chunks of
 * up to CKKS_KS_MANY_CHUNK decompositions side by side, and in phases 2 and 3
 * each block of the key (a seeded key's a_j regenerated with ChaCha12, the
 * b_j read from memory) made once and applied to every ciphertext of the
 * chunk while it sits in L2; per ciphertext the arithmetic is unchanged.
 *
 * Transforms at level l with k special primes and ndig digits: (l+1)
 * inverse, ndig * (l+1+k - alpha) forward for ModUp, 2k inverse + 2(l+1)
 * forward for ModDown, each in two halves.
 */
#include "ckks/evaluator_internal.h"
#include "core/alloc.h"
#include "core/error.h"
#include "core/threads.h"
#include "ring/vec.h"
#include "tessera/core.h"

#include <string.h>

/* Per-thread blocks: one per digit, two accumulators, one temporary, two
 * addend blocks (product mode), then one per digit for the a_j blocks of a
 * seeded key (regenerated there, ckks_ksk_a_range). */
static size_t tls_blocks(const tsr_ckks_params *p) {
    return 2 * (size_t)p->dnum + 5;
}

/* The a_j blocks of the thread whose scratch starts at dig. */
static uint64_t *tls_a_blocks(const tsr_ckks_params *p, uint64_t *dig, size_t B) {
    return dig + ((size_t)p->dnum + 5) * B;
}

static unsigned split_r(const tsr_ckks_params *p) {
    return tsr_ntt_split_log(p->n);
}

tsr_status ckks_ks_scratch(tsr_ckks_evaluator *ev) {
    const tsr_ckks_params *p = ev->params;
    size_t n = p->n, ne = (size_t)p->nall, B = n >> split_r(p);
    if (!ev->ks_coef) {
        /* libsodium picks its SIMD ChaCha20 here (seeded keys' a halves) */
        TSR_TRY(tsr_init());
        /* decompose: the inverse-transformed limbs of d; apply: the ModDown
         * conversions of both accumulators (2 (L+1) limbs) */
        ev->ks_coef = tsr_alloc((size_t)2 * (p->L + 1) * n * sizeof(uint64_t));
        ev->ks_acc = tsr_alloc(2 * ne * n * sizeof(uint64_t));
        if (!ev->ks_coef || !ev->ks_acc)
            return tsr_fail(TSR_ERR_NOMEM, "cannot allocate key-switching scratch");
    }
    int threads = tsr_thread_max();
    if (ev->ks_tls_threads < threads) {
        tsr_free(ev->ks_tls);
        tsr_free(ev->ks_limb);
        ev->ks_tls = tsr_alloc((size_t)threads * tls_blocks(p) * B * sizeof(uint64_t));
        ev->ks_limb = tsr_alloc((size_t)threads * 2 * n * sizeof(uint64_t));
        ev->ks_tls_threads = ev->ks_tls && ev->ks_limb ? threads : 0;
        if (!ev->ks_tls_threads)
            return tsr_fail(TSR_ERR_NOMEM, "cannot allocate key-switching scratch");
    }
    if (!ev->ks_digits) {
        ev->ks_digits = tsr_alloc((size_t)p->dnum * ne * n * sizeof(uint64_t));
        if (!ev->ks_digits)
            return tsr_fail(TSR_ERR_NOMEM, "cannot allocate key-switching digits (%zu MiB)",
                            (size_t)p->dnum * ne * n * 8 >> 20);
    }
    return TSR_OK;
}

void ckks_ks_scratch_free(tsr_ckks_evaluator *ev) {
    tsr_free(ev->ks_coef);
    tsr_free(ev->ks_digits);
    tsr_free(ev->ks_acc);
    tsr_free(ev->ks_tls);
    tsr_free(ev->ks_limb);
    /* reallocated by the next key switch */
    ev->ks_coef = ev->ks_digits = ev->ks_acc = ev->ks_tls = ev->ks_limb = NULL;
    ev->ks_tls_threads = 0;
    tsr_free(ev->ks_many);
    tsr_free(ev->ks_many_limb);
    ev->ks_many = ev->ks_many_limb = NULL;
    ev->ks_many_words = ev->ks_many_limb_words = 0;
    tsr_free(ev->lt_scratch);
    ev->lt_scratch = NULL;
    ev->lt_scratch_words = 0;
    ev->ks_src = NULL;
    ev->ks_digits_done = 0;
}

static void digit_range(const tsr_ckks_params *p, int level, int j, int *lo, int *hi) {
    *lo = j * p->alpha;
    *hi = *lo + p->alpha > level + 1 ? level + 1 : *lo + p->alpha;
}

/* Inner inverse stages of limbs [lo, hi) of d into ks_coef, block by block.
 * Product mode (x != NULL): d = x * y is written first, block by block, and
 * transformed from L1 (dw is d, writable). */
static void intt_input(tsr_ckks_evaluator *ev, int lo, int hi, const uint64_t *d, uint64_t *dw,
                       const uint64_t *x, const uint64_t *y) {
    const tsr_ckks_params *p = ev->params;
    const size_t n = p->n;
    const unsigned r = split_r(p);
    const size_t B = n >> r, R = (size_t)1 << r;
    const int jobs = (hi - lo) * (int)R;
    uint64_t *coef = ev->ks_coef;
#pragma omp parallel for schedule(static) if (jobs > 1 && n >= 2048)
    for (int job = 0; job < jobs; job++) {
        const int i = lo + job / (int)R;
        const size_t b = (size_t)job % R, off = (size_t)i * n + b * B;
        tsr_prefetch pf;
        tsr_prefetch_reset(&pf);
        if (x) {
            if (job + 1 < jobs) {
                tsr_prefetch_add(&pf, x + off + B, B * sizeof(uint64_t));
                tsr_prefetch_add(&pf, y + off + B, B * sizeof(uint64_t));
            }
            tsr_vec_mul(ckks_mod(p, i), dw + off, x + off, y + off, B);
        } else if (job + 1 < jobs) {
            tsr_prefetch_add(&pf, d + off + B, B * sizeof(uint64_t));
        }
        tsr_ntt_inverse_inner(ckks_ntt(p, i), coef + off, d + off, b, r, &pf);
    }
}

/* The digits of d (level `level`) into `digits` (ndig polynomials over Q_l u P; the digits' own
 * limbs are left unwritten), the outer forward stages done; ks_coef is scratch. */
static tsr_status decompose_to(tsr_ckks_evaluator *ev, int level, const uint64_t *d, uint64_t *dw,
                               const uint64_t *x, const uint64_t *y, uint64_t *digits) {
    const tsr_ckks_params *p = ev->params;
    size_t n = p->n;
    int ne = level + 1 + p->k;
    const unsigned r = split_r(p);
    TSR_TRY(ckks_ks_scratch(ev));
    /* Digit by digit, so that its inverse-transformed limbs are still in
     * cache for the conversion. */
    for (int j = 0; j < ckks_digits_at(p, level); j++) {
        int lo, hi;
        digit_range(p, level, j, &lo, &hi);
        intt_input(ev, lo, hi, d, dw, x, y);
        uint64_t *dj = digits + (size_t)j * ne * n;
        const uint64_t *in[TSR_CKKS_MAX_PRIMES];
        uint64_t *out[CKKS_MAX_ALL];
        int no = 0;
        for (int i = lo; i < hi; i++) in[i - lo] = ev->ks_coef + (size_t)i * n;
        for (int t = 0; t < ne; t++)
            if (t < lo || t >= hi) out[no++] = dj + (size_t)t * n;
        TSR_TRY(tsr_baseconv_modup_split(p->modup[level * p->dnum + j], out, in, r));
        /* The digit's own limbs are d's limbs: read from d, not copied. */
    }
    ev->n_decompose++;
    return TSR_OK;
}

static tsr_status decompose(tsr_ckks_evaluator *ev, int level, const uint64_t *d, uint64_t *dw,
                            const uint64_t *x, const uint64_t *y) {
    TSR_TRY(ckks_ks_scratch(ev));
    TSR_TRY(decompose_to(ev, level, d, dw, x, y, ev->ks_digits));
    ev->ks_src = d;
    ev->ks_level = level;
    ev->ks_digits_done = 0;
    return TSR_OK;
}

tsr_status ckks_ks_decompose(tsr_ckks_evaluator *ev, int level, const uint64_t *d) {
    return decompose(ev, level, d, NULL, NULL, NULL);
}

tsr_status ckks_ks_decompose_prod(tsr_ckks_evaluator *ev, int level, const uint64_t *x,
                                  const uint64_t *y, uint64_t *d) {
    return decompose(ev, level, d, d, x, y);
}

void ckks_ks_finish_digits(tsr_ckks_evaluator *ev) {
    const tsr_ckks_params *p = ev->params;
    const int level = ev->ks_level, ne = level + 1 + p->k, ndig = ckks_digits_at(p, level);
    const size_t n = p->n;
    const unsigned r = split_r(p);
    const size_t B = n >> r, R = (size_t)1 << r;
    if (ev->ks_digits_done) return;
    const int jobs = ndig * ne * (int)R;
#pragma omp parallel for schedule(static) if (n >= 2048)
    for (int job = 0; job < jobs; job++) {
        const int j = job / (ne * (int)R), t = job / (int)R % ne;
        const size_t b = (size_t)job % R;
        int lo, hi;
        digit_range(p, level, j, &lo, &hi);
        if (t >= lo && t < hi) continue; /* own limbs: d itself */
        uint64_t *blk = ev->ks_digits + ((size_t)j * ne + (size_t)t) * n + b * B;
        tsr_prefetch pf;
        tsr_prefetch_reset(&pf);
        if (job + 1 < jobs) tsr_prefetch_add(&pf, blk + B, B * sizeof(uint64_t));
        tsr_ntt_forward_inner(ckks_ntt(p, ckks_ext_prime(p, level, t)), blk, blk, b, r, &pf);
    }
    ev->ks_digits_done = 1;
}

/* One decomposed polynomial: d (its limbs are the digits' own) and the stored digits. */
typedef struct ks_dec {
    const uint64_t *src;
    const uint64_t *digits;
    int done; /* the digits' inner forward stages are done */
} ks_dec;

/* Where block b of digit j's limb t of x (at level) is (d's own limbs, or the stored digit). */
static const uint64_t *dec_block(const tsr_ckks_params *p, int level, const ks_dec *x, int j, int t,
                                 size_t b, int *own) {
    const int ne = level + 1 + p->k;
    const size_t n = p->n, off = b * (n >> split_r(p));
    int lo, hi;
    digit_range(p, level, j, &lo, &hi);
    *own = t >= lo && t < hi;
    return *own ? x->src + (size_t)t * n + off : x->digits + ((size_t)j * ne + (size_t)t) * n + off;
}

static ks_dec ev_dec(const tsr_ckks_evaluator *ev) {
    const ks_dec x = { ev->ks_src, ev->ks_digits, ev->ks_digits_done };
    return x;
}

/* Where block b of digit j's limb t is (d's own limbs, or the stored digit). */
static const uint64_t *digit_block(const tsr_ckks_evaluator *ev, int j, int t, size_t b, int *own) {
    const ks_dec x = ev_dec(ev);
    return dec_block(ev->params, ev->ks_level, &x, j, t, b, own);
}

/* Add the blocks job (t, b) reads from memory (digits and key) to pf. */
static void prefetch_job(const tsr_ckks_evaluator *ev, const ckks_ksk *key, int t, size_t b,
                         tsr_prefetch *pf) {
    const tsr_ckks_params *p = ev->params;
    const int level = ev->ks_level, ndig = ckks_digits_at(p, level);
    const size_t n = p->n, B = n >> split_r(p), off = b * B, bytes = B * sizeof(uint64_t);
    const int pi = ckks_ext_prime(p, level, t);
    for (int j = 0; j < ndig; j++) {
        int own;
        tsr_prefetch_add(pf, digit_block(ev, j, t, b, &own), bytes);
        tsr_prefetch_add(pf, ckks_ksk_b(p, key, j) + ckks_ksk_limb(p, key, pi) + off, bytes);
        if (!key->seeded) /* a seeded key's a_j is generated, not read */
            tsr_prefetch_add(pf, ckks_ksk_a(p, key, j) + ckks_ksk_limb(p, key, pi) + off, bytes);
    }
}

/*
 * The key's blocks for block b of target limb t (ext index at level): kb[j] = b_j, ka[j] = a_j.
 * The a_j blocks of a seeded key are regenerated into the a blocks of the thread whose scratch
 * starts at dig (one B-word block per digit, B = min(N, 4096): 32 KiB per digit, dnum of them,
 * e.g. 224 KiB at dnum 7, so they stay in L2 rather than L1; the key's a halves never exist
 * whole).
 */
static void key_blocks(const tsr_ckks_params *p, int level, const ckks_ksk *key, int t, size_t b,
                       uint64_t *dig, const uint64_t **kb, const uint64_t **ka) {
    const int ndig = ckks_digits_at(p, level), pi = ckks_ext_prime(p, level, t);
    const size_t B = p->n >> split_r(p), off = b * B;
    for (int j = 0; j < ndig; j++) {
        kb[j] = ckks_ksk_b(p, key, j) + ckks_ksk_limb(p, key, pi) + off;
        ka[j] = ckks_ksk_a_range(p, key, j, pi, off, B, tls_a_blocks(p, dig, B) + (size_t)j * B);
    }
}

/*
 * Block b of the inner products of target limb t of x with the key's blocks kb, ka (key_blocks):
 * r0 = sum_j D_j[t] b_j[t], r1 = sum_j D_j[t] a_j[t] over the block, finishing the digit
 * blocks' forward transforms into dig (ndig blocks of thread scratch) unless they are done
 * already. pf is advanced while the transforms run.
 */
static void dot_blocks(const tsr_ckks_params *p, int level, const ks_dec *x, int t, size_t b,
                       const uint64_t *const *kb, const uint64_t *const *ka, uint64_t *r0,
                       uint64_t *r1, uint64_t *dig, tsr_prefetch *pf) {
    const int ndig = ckks_digits_at(p, level), pi = ckks_ext_prime(p, level, t);
    const unsigned r = split_r(p);
    const size_t B = p->n >> r;
    const tsr_ntt_table *tab = ckks_ntt(p, pi);
    const uint64_t *dv[TSR_CKKS_MAX_PRIMES];
    for (int j = 0; j < ndig; j++) {
        int own;
        const uint64_t *src = dec_block(p, level, x, j, t, b, &own);
        if (own || x->done) {
            dv[j] = src;
        } else {
            uint64_t *blk = dig + (size_t)j * B;
            tsr_ntt_forward_inner(tab, blk, src, b, r, pf);
            dv[j] = blk;
        }
    }
    tsr_vec_dot2(ckks_mod(p, pi), r0, r1, dv, kb, ka, (size_t)ndig, B);
}

/* Block b of the inner products of target limb t of the evaluator's decomposition with key
 * (key_blocks, then dot_blocks). */
static void target_block(const tsr_ckks_evaluator *ev, const ckks_ksk *key, int t, size_t b,
                         uint64_t *r0, uint64_t *r1, uint64_t *dig, tsr_prefetch *pf) {
    const tsr_ckks_params *p = ev->params;
    const uint64_t *kb[TSR_CKKS_MAX_PRIMES], *ka[TSR_CKKS_MAX_PRIMES];
    const ks_dec x = ev_dec(ev);
    key_blocks(p, ev->ks_level, key, t, b, dig, kb, ka);
    dot_blocks(p, ev->ks_level, &x, t, b, kb, ka, r0, r1, dig, pf);
}

/* What is added to the switched polynomial: c0, c1 as given, or (product
 * mode, a0 != NULL) c0 = a0 b0, c1 = a0 b1 + a1 b0. */
typedef struct ks_addend {
    const uint64_t *c0, *c1;
    const uint64_t *a0, *a1, *b0, *b1;
} ks_addend;

/* Blocks of c0, c1 at offset off of limb t (B words): pointers into c0, c1,
 * or the products computed into s0, s1. */
static void addend_block(const tsr_ckks_params *p, const ks_addend *c, int t, size_t off, size_t B,
                         uint64_t *s0, uint64_t *s1, const uint64_t **c0b, const uint64_t **c1b) {
    if (!c->a0) {
        *c0b = c->c0 ? c->c0 + off : NULL;
        *c1b = c->c1 ? c->c1 + off : NULL;
        return;
    }
    const tsr_modulus *m = ckks_mod(p, t);
    tsr_vec_mul(m, s0, c->a0 + off, c->b0 + off, B);
    tsr_vec_mul(m, s1, c->a0 + off, c->b1 + off, B);
    if (c->a1 == c->b1 && c->a0 == c->b0)
        tsr_vec_add(m, s1, s1, s1, B);
    else
        tsr_vec_mul_add(m, s1, c->a1 + off, c->b0 + off, B);
    *c0b = s0;
    *c1b = s1;
}

/* Add the addend's blocks at offset off to pf. */
static void prefetch_addend(const ks_addend *c, size_t off, size_t bytes, tsr_prefetch *pf) {
    const uint64_t *src[4] = { c->c0, c->c1, NULL, NULL };
    if (c->a0) {
        src[0] = c->a0;
        src[1] = c->a1;
        src[2] = c->b0 != c->a0 ? c->b0 : NULL;
        src[3] = c->b1 != c->a1 ? c->b1 : NULL;
    }
    for (int i = 0; i < 4; i++)
        if (src[i]) tsr_prefetch_add(pf, src[i] + off, bytes);
}

/*
 * Q-limb job (t, b) = (job / R, job % R) of a key switch: inner products,
 * addend and ModDown of block b of limb t, written to dst0, dst1 (B words
 * each; streaming stores when stream). Prefetches job + 1's blocks.
 */
static void q_job(const tsr_ckks_evaluator *ev, const ckks_ksk *key, int rescale,
                  const ks_addend *c, const tsr_moddown *md, int nq, int job, uint64_t *dst0,
                  uint64_t *dst1, int stream) {
    const tsr_ckks_params *p = ev->params;
    const unsigned r = split_r(p);
    const size_t n = p->n, B = n >> r, R = (size_t)1 << r, bytes = B * sizeof(uint64_t);
    const int ndig = ckks_digits_at(p, ev->ks_level), qjobs = nq * (int)R;
    const uint64_t *conv0 = ev->ks_coef, *conv1 = ev->ks_coef + (size_t)nq * n;
    const int t = job / (int)R;
    const size_t b = (size_t)job % R, off = (size_t)t * n + b * B;
    uint64_t *dig = ev->ks_tls + (size_t)tsr_thread_index() * tls_blocks(p) * B;
    uint64_t *r0 = dig + (size_t)ndig * B, *r1 = r0 + B, *tmp = r1 + B;
    uint64_t *s0 = tmp + B, *s1 = s0 + B;
    tsr_prefetch pf;
    tsr_prefetch_reset(&pf);
    if (job + 1 < qjobs) {
        const int t1 = (job + 1) / (int)R;
        const size_t b1 = (size_t)(job + 1) % R, off1 = (size_t)t1 * n + b1 * B;
        prefetch_job(ev, key, t1, b1, &pf);
        tsr_prefetch_add(&pf, conv0 + off1, bytes);
        tsr_prefetch_add(&pf, conv1 + off1, bytes);
        prefetch_addend(c, off1, bytes, &pf);
    }
    target_block(ev, key, t, b, r0, r1, dig, &pf);
    const tsr_modulus *m = ckks_mod(p, t);
    /* all of block b of c is read (or computed) before out is written */
    const uint64_t *c0b, *c1b;
    addend_block(p, c, t, off, B, s0, s1, &c0b, &c1b);
    if (rescale) {
        tsr_vec_mul_scalar_add(m, r0, c0b, p->p_mod[t], B);
        tsr_vec_mul_scalar_add(m, r1, c1b, p->p_mod[t], B);
    }
    tsr_moddown_block(md, (size_t)t, b, r, dst0, r0, conv0 + off, tmp, rescale ? NULL : c0b, stream,
                      &pf);
    tsr_moddown_block(md, (size_t)t, b, r, dst1, r1, conv1 + off, tmp, rescale ? NULL : c1b, stream,
                      &pf);
}

tsr_status ckks_ks_check_level(const ckks_ksk *key, int level) {
    if (level <= key->max_level) return TSR_OK;
    return tsr_fail(
        TSR_ERR_LEVEL,
        "the key-switching key was made for levels <= %d only but the ciphertext is at "
        "level %d: make the key for level %d or more (TSR_CKKS_TOP_LEVEL: every level), "
        "or drop the ciphertext to level %d first",
        key->max_level, level, level, key->max_level);
}

static tsr_status apply(tsr_ckks_evaluator *ev, const ckks_ksk *key, int rescale,
                        const ks_addend *c, const uint32_t *perm, uint64_t *out0, uint64_t *out1) {
    const tsr_ckks_params *p = ev->params;
    const int level = ev->ks_level, ne = level + 1 + p->k;
    const unsigned r = split_r(p);
    const size_t n = p->n, B = n >> r, R = (size_t)1 << r;
    TSR_ASSERT(!rescale || (level >= 1 && ((c->c0 && c->c1) || c->a0)));
    TSR_TRY(ckks_ks_check_level(key, level));
    const tsr_moddown *md = rescale ? p->moddown_rs[level] : p->moddown[level];
    const int nq = rescale ? level : level + 1; /* Q limbs of the ModDown; the rest is "P" */
    const int np = ne - nq;
    uint64_t *pacc0 = ev->ks_acc, *pacc1 = ev->ks_acc + (size_t)np * n;
    uint64_t *conv0 = ev->ks_coef, *conv1 = ev->ks_coef + (size_t)nq * n;
    const size_t tls_stride = tls_blocks(p) * B;
    const int ndig = ckks_digits_at(p, level);
    /* thread scratch: ndig digit blocks, r0, r1, tmp, s0, s1 */

    /* P limbs (with q_l in rescale mode, plus P*c there), then their inner
     * inverse stages. Each job prefetches the next one's blocks. */
    const int pjobs = np * (int)R;
#pragma omp parallel for schedule(static) if (pjobs > 1 && n >= 2048)
    for (int job = 0; job < pjobs; job++) {
        const int t = nq + job / (int)R;
        const size_t b = (size_t)job % R, off = (size_t)(t - nq) * n + b * B;
        uint64_t *dig = ev->ks_tls + (size_t)tsr_thread_index() * tls_stride;
        uint64_t *r0 = pacc0 + off, *r1 = pacc1 + off;
        tsr_prefetch pf;
        tsr_prefetch_reset(&pf);
        if (job + 1 < pjobs)
            prefetch_job(ev, key, nq + (job + 1) / (int)R, (size_t)(job + 1) % R, &pf);
        target_block(ev, key, t, b, r0, r1, dig, &pf);
        const int pi = ckks_ext_prime(p, level, t);
        const tsr_modulus *m = ckks_mod(p, pi);
        if (rescale && t == level) {
            const size_t coff = (size_t)t * n + b * B;
            uint64_t *s0 = dig + (size_t)(ndig + 3) * B, *s1 = s0 + B;
            const uint64_t *c0b, *c1b;
            addend_block(p, c, t, coff, B, s0, s1, &c0b, &c1b);
            tsr_vec_mul_scalar_add(m, r0, c0b, p->p_mod[t], B);
            tsr_vec_mul_scalar_add(m, r1, c1b, p->p_mod[t], B);
        }
        tsr_ntt_inverse_inner(ckks_ntt(p, pi), r0, r0, b, r, &pf);
        tsr_ntt_inverse_inner(ckks_ntt(p, pi), r1, r1, b, r, &pf);
    }
    uint64_t *cv0[TSR_CKKS_MAX_PRIMES], *cv1[TSR_CKKS_MAX_PRIMES];
    for (int t = 0; t < nq; t++) {
        cv0[t] = conv0 + (size_t)t * n;
        cv1[t] = conv1 + (size_t)t * n;
    }
    TSR_TRY(tsr_moddown_prepare_split(md, pacc0, cv0, r));
    TSR_TRY(tsr_moddown_prepare_split(md, pacc1, cv1, r));
    ev->n_moddown++;

    /* Q limbs: inner products and ModDown block by block, straight to out
     * with streaming stores (block b of c is read before block b of out is
     * written, so out may alias c). With perm, limb by limb into the
     * thread's limb buffer (in cache), then permuted into out. */
    if (!perm) {
        const int qjobs = nq * (int)R;
#pragma omp parallel for schedule(static) if (qjobs > 1 && n >= 2048)
        for (int job = 0; job < qjobs; job++) {
            const size_t off = (size_t)(job / (int)R) * n + (size_t)(job % (int)R) * B;
            q_job(ev, key, rescale, c, md, nq, job, out0 + off, out1 + off, 1);
            tsr_ring_stream_fence();
        }
        return TSR_OK;
    }
#pragma omp parallel for schedule(static) if (nq > 1 && n >= 2048)
    for (int t = 0; t < nq; t++) {
        uint64_t *l0 = ev->ks_limb + (size_t)tsr_thread_index() * 2 * n, *l1 = l0 + n;
        for (size_t b = 0; b < R; b++)
            q_job(ev, key, rescale, c, md, nq, t * (int)R + (int)b, l0 + b * B, l1 + b * B, 0);
        tsr_vec_permute(out0 + (size_t)t * n, l0, perm, n, 1);
        tsr_vec_permute(out1 + (size_t)t * n, l1, perm, n, 1);
    }
    return TSR_OK;
}

tsr_status ckks_ks_apply(tsr_ckks_evaluator *ev, const ckks_ksk *key, int rescale,
                         const uint64_t *c0, const uint64_t *c1, uint64_t *out0, uint64_t *out1) {
    const ks_addend c = { c0, c1, NULL, NULL, NULL, NULL };
    return apply(ev, key, rescale, &c, NULL, out0, out1);
}

tsr_status ckks_ks_apply_galois(tsr_ckks_evaluator *ev, const ckks_ksk *key, const uint64_t *c0,
                                const uint32_t *perm, uint64_t *out0, uint64_t *out1) {
    TSR_REQUIRE(perm, "ckks_ks_apply_galois: NULL permutation");
    const ks_addend c = { c0, NULL, NULL, NULL, NULL, NULL };
    return apply(ev, key, 0, &c, perm, out0, out1);
}

tsr_status ckks_ks_apply_prod(tsr_ckks_evaluator *ev, const ckks_ksk *key, int rescale,
                              const uint64_t *a0, const uint64_t *a1, const uint64_t *b0,
                              const uint64_t *b1, uint64_t *out0, uint64_t *out1) {
    const ks_addend c = { NULL, NULL, a0, a1, b0, b1 };
    return apply(ev, key, rescale, &c, NULL, out0, out1);
}

/* ---- One key for many ciphertexts (ckks_ks_apply_galois_many) ------------------------ */

/* Scratch words of one ciphertext of a chunk at level: its digits, the P limbs of its two
 * accumulators and its two ModDown conversions (plain mode: P = the special primes). */
static size_t many_item_words(const tsr_ckks_params *p, int level) {
    const size_t n = p->n, ne = (size_t)level + 1 + (size_t)p->k;
    return ((size_t)ckks_digits_at(p, level) * ne + 2 * (size_t)p->k + 2 * ((size_t)level + 1)) * n;
}

size_t ckks_ks_many_chunk(const tsr_ckks_params *p, int level) {
    /* and one limb of both outputs per ciphertext and thread */
    const size_t item = (many_item_words(p, level) + 2 * p->n) * sizeof(uint64_t);
    size_t c = CKKS_KS_MANY_BYTES / item;
    return c < 1 ? 1 : c > CKKS_KS_MANY_CHUNK ? CKKS_KS_MANY_CHUNK : c;
}

/* The chunk's scratch: items 1..c-1 (item 0 is the evaluator's own) and c limb pairs per
 * thread, kept between calls and grown when a call needs more. */
static tsr_status many_scratch(tsr_ckks_evaluator *ev, int level, size_t c) {
    const tsr_ckks_params *p = ev->params;
    const size_t items = (c - 1) * many_item_words(p, level);
    const size_t limbs = (size_t)ev->ks_tls_threads * c * 2 * p->n;
    if (items > ev->ks_many_words) {
        tsr_free(ev->ks_many);
        ev->ks_many = tsr_alloc((items ? items : 1) * sizeof(uint64_t));
        ev->ks_many_words = ev->ks_many ? items : 0;
    }
    if (limbs > ev->ks_many_limb_words) {
        tsr_free(ev->ks_many_limb);
        ev->ks_many_limb = tsr_alloc(limbs * sizeof(uint64_t));
        ev->ks_many_limb_words = ev->ks_many_limb ? limbs : 0;
    }
    if (!ev->ks_many || !ev->ks_many_limb)
        return tsr_fail(TSR_ERR_NOMEM,
                        "cannot allocate the scratch of %zu rotations with one key (%zu MiB)", c,
                        (items + limbs) * 8 >> 20);
    return TSR_OK;
}

/* One ciphertext of a chunk: its decomposition, the P limbs of its accumulators (pacc0,
 * pacc0 + k n) and its ModDown conversions (conv0, conv0 + (l+1) n). */
typedef struct ks_item {
    ks_dec x;
    uint64_t *pacc, *conv;
} ks_item;

/* Add the digit blocks of job (t, b) of x to pf. */
static void prefetch_dec(const tsr_ckks_params *p, int level, const ks_dec *x, int t, size_t b,
                         tsr_prefetch *pf) {
    const size_t bytes = (p->n >> split_r(p)) * sizeof(uint64_t);
    for (int j = 0; j < ckks_digits_at(p, level); j++) {
        int own;
        tsr_prefetch_add(pf, dec_block(p, level, x, j, t, b, &own), bytes);
    }
}

/* Add the key blocks of job (t, b) that are read from memory to pf. */
static void prefetch_key(const tsr_ckks_params *p, int level, const ckks_ksk *key, int t, size_t b,
                         tsr_prefetch *pf) {
    const size_t B = p->n >> split_r(p), off = b * B, bytes = B * sizeof(uint64_t);
    const int pi = ckks_ext_prime(p, level, t);
    for (int j = 0; j < ckks_digits_at(p, level); j++) {
        tsr_prefetch_add(pf, ckks_ksk_b(p, key, j) + ckks_ksk_limb(p, key, pi) + off, bytes);
        if (!key->seeded)
            tsr_prefetch_add(pf, ckks_ksk_a(p, key, j) + ckks_ksk_limb(p, key, pi) + off, bytes);
    }
}

/* What job (t, b) of item i prefetches while it runs: item i + 1's digit blocks of the same
 * job, or (the last item) the next job's key blocks and item 0's digit blocks (t1 < 0: none). */
static void prefetch_next(const tsr_ckks_params *p, int level, const ckks_ksk *key,
                          const ks_item *it, size_t c, size_t i, int t, size_t b, int t1, size_t b1,
                          tsr_prefetch *pf) {
    tsr_prefetch_reset(pf);
    if (i + 1 < c) {
        prefetch_dec(p, level, &it[i + 1].x, t, b, pf);
    } else if (t1 >= 0) {
        prefetch_key(p, level, key, t1, b1, pf);
        prefetch_dec(p, level, &it[0].x, t1, b1, pf);
    }
}

/*
 * The key switches of a decomposed chunk it[0..c) with one key, plain mode with c0[i] added after
 * the division (c1 = 0), permuted by perm into out0[i], out1[i]: apply() with perm, word for
 * word, except that each block of the key is made (a seeded key's a_j regenerated) or read
 * once for the whole chunk while it sits in cache.
 */
static tsr_status apply_many(tsr_ckks_evaluator *ev, int level, const ckks_ksk *key, ks_item *it,
                             size_t c, const uint64_t *const *c0, const uint32_t *perm,
                             uint64_t *const *out0, uint64_t *const *out1) {
    const tsr_ckks_params *p = ev->params;
    const unsigned r = split_r(p);
    const size_t n = p->n, B = n >> r, R = (size_t)1 << r;
    const tsr_moddown *md = p->moddown[level];
    const int nq = level + 1, np = p->k;
    const size_t tls_stride = tls_blocks(p) * B;
    const int ndig = ckks_digits_at(p, level);

    /* P limbs of every item, job by job, then their inner inverse stages */
    const int pjobs = np * (int)R;
#pragma omp parallel for schedule(static) if (pjobs > 1 && n >= 2048)
    for (int job = 0; job < pjobs; job++) {
        const int t = nq + job / (int)R;
        const size_t b = (size_t)job % R, off = (size_t)(t - nq) * n + b * B;
        uint64_t *dig = ev->ks_tls + (size_t)tsr_thread_index() * tls_stride;
        const tsr_ntt_table *tab = ckks_ntt(p, ckks_ext_prime(p, level, t));
        const uint64_t *kb[TSR_CKKS_MAX_PRIMES], *ka[TSR_CKKS_MAX_PRIMES];
        const int t1 = job + 1 < pjobs ? nq + (job + 1) / (int)R : -1;
        key_blocks(p, level, key, t, b, dig, kb, ka);
        for (size_t i = 0; i < c; i++) {
            uint64_t *r0 = it[i].pacc + off, *r1 = r0 + (size_t)np * n;
            tsr_prefetch pf;
            prefetch_next(p, level, key, it, c, i, t, b, t1, (size_t)(job + 1) % R, &pf);
            dot_blocks(p, level, &it[i].x, t, b, kb, ka, r0, r1, dig, &pf);
            tsr_ntt_inverse_inner(tab, r0, r0, b, r, &pf);
            tsr_ntt_inverse_inner(tab, r1, r1, b, r, &pf);
        }
    }
    for (size_t i = 0; i < c; i++) {
        uint64_t *cv0[TSR_CKKS_MAX_PRIMES], *cv1[TSR_CKKS_MAX_PRIMES];
        for (int t = 0; t < nq; t++) {
            cv0[t] = it[i].conv + (size_t)t * n;
            cv1[t] = it[i].conv + (size_t)(nq + t) * n;
        }
        TSR_TRY(tsr_moddown_prepare_split(md, it[i].pacc, cv0, r));
        TSR_TRY(tsr_moddown_prepare_split(md, it[i].pacc + (size_t)np * n, cv1, r));
        ev->n_moddown++;
    }

    /* Q limbs, limb by limb: block by block the key's blocks, then every item's inner products
     * and ModDown into its limb buffers (in cache); then each item's limb permuted into out */
#pragma omp parallel for schedule(static) if (nq > 1 && n >= 2048)
    for (int t = 0; t < nq; t++) {
        uint64_t *dig = ev->ks_tls + (size_t)tsr_thread_index() * tls_stride;
        uint64_t *lb = ev->ks_many_limb + (size_t)tsr_thread_index() * c * 2 * n;
        uint64_t *r0 = dig + (size_t)ndig * B, *r1 = r0 + B, *tmp = r1 + B;
        const uint64_t *kb[TSR_CKKS_MAX_PRIMES], *ka[TSR_CKKS_MAX_PRIMES];
        for (size_t b = 0; b < R; b++) {
            const size_t off = (size_t)t * n + b * B;
            const int t1 = b + 1 < R ? t : -1;
            key_blocks(p, level, key, t, b, dig, kb, ka);
            for (size_t i = 0; i < c; i++) {
                uint64_t *l0 = lb + i * 2 * n, *l1 = l0 + n;
                const uint64_t *conv0 = it[i].conv, *conv1 = conv0 + (size_t)nq * n;
                tsr_prefetch pf;
                prefetch_next(p, level, key, it, c, i, t, b, t1, b + 1, &pf);
                tsr_prefetch_add(&pf, c0[i] + off, B * sizeof(uint64_t));
                dot_blocks(p, level, &it[i].x, t, b, kb, ka, r0, r1, dig, &pf);
                tsr_moddown_block(md, (size_t)t, b, r, l0 + b * B, r0, conv0 + off, tmp,
                                  c0[i] + off, 0, &pf);
                tsr_moddown_block(md, (size_t)t, b, r, l1 + b * B, r1, conv1 + off, tmp, NULL, 0,
                                  &pf);
            }
        }
        for (size_t i = 0; i < c; i++) {
            tsr_vec_permute(out0[i] + (size_t)t * n, lb + i * 2 * n, perm, n, 1);
            tsr_vec_permute(out1[i] + (size_t)t * n, lb + i * 2 * n + n, perm, n, 1);
        }
    }
    return TSR_OK;
}

tsr_status ckks_ks_apply_galois_many(tsr_ckks_evaluator *ev, const ckks_ksk *key, int level,
                                     size_t n, const uint64_t *const *c0, const uint64_t *const *c1,
                                     const uint32_t *perm, uint64_t *const *out0,
                                     uint64_t *const *out1) {
    const tsr_ckks_params *p = ev->params;
    TSR_REQUIRE(perm && (n == 0 || (c0 && c1 && out0 && out1)),
                "ckks_ks_apply_galois_many: NULL argument");
    TSR_TRY(ckks_ks_check_level(key, level));
    TSR_TRY(ckks_ks_scratch(ev));
    const size_t chunk = ckks_ks_many_chunk(p, level), words = many_item_words(p, level);
    const size_t ne = (size_t)level + 1 + (size_t)p->k, pn = (size_t)p->k * p->n;
    ks_item it[CKKS_KS_MANY_CHUNK];
    for (size_t i0 = 0; i0 < n; i0 += chunk) {
        const size_t c = n - i0 < chunk ? n - i0 : chunk;
        TSR_TRY(many_scratch(ev, level, c));
        /* item 0 in the evaluator's own scratch: ks_digits, ks_acc, ks_coef (the ModDown
         * conversions overwrite the inverse-transformed limbs after the last decomposition) */
        for (size_t i = 0; i < c; i++) {
            uint64_t *base = i ? ev->ks_many + (i - 1) * words : NULL;
            uint64_t *digits = i ? base : ev->ks_digits;
            it[i].x.src = c1[i0 + i];
            it[i].x.digits = digits;
            it[i].x.done = 0;
            it[i].pacc = i ? base + (size_t)ckks_digits_at(p, level) * ne * p->n : ev->ks_acc;
            it[i].conv = i ? it[i].pacc + 2 * pn : ev->ks_coef;
            TSR_TRY(decompose_to(ev, level, c1[i0 + i], NULL, NULL, NULL, digits));
        }
        /* the evaluator's decomposition is item 0's */
        ev->ks_src = c1[i0];
        ev->ks_level = level;
        ev->ks_digits_done = 0;
        TSR_TRY(apply_many(ev, level, key, it, c, c0 + i0, perm, out0 + i0, out1 + i0));
    }
    return TSR_OK;
}

/* Blocks [b0, b1) of target limb t of ckks_ks_apply_qp into l0, l1 (whole limbs). */
static void qp_limb_blocks(const tsr_ckks_evaluator *ev, const ckks_ksk *key, int t, size_t b0,
                           size_t b1, uint64_t *l0, uint64_t *l1, uint64_t *dig) {
    const unsigned r = split_r(ev->params);
    const size_t B = ev->params->n >> r, R = (size_t)1 << r;
    for (size_t b = b0; b < b1; b++) {
        tsr_prefetch pf;
        tsr_prefetch_reset(&pf);
        if (b + 1 < R) prefetch_job(ev, key, t, b + 1, &pf);
        target_block(ev, key, t, b, l0 + b * B, l1 + b * B, dig, &pf);
    }
}

/* The rest of limb t of ckks_ks_apply_qp once its blocks are in l0, l1: add0's limb, P lift0's,
 * and the permutation into acc0, acc1 (l0, l1 are acc's limbs when perm is NULL). */
static void qp_limb_finish(const tsr_ckks_evaluator *ev, const uint32_t *perm, const uint64_t *add0,
                           const uint64_t *lift0, int t, uint64_t *l0, uint64_t *l1, uint64_t *acc0,
                           uint64_t *acc1) {
    const tsr_ckks_params *p = ev->params;
    const size_t n = p->n;
    const tsr_modulus *m = ckks_mod(p, ckks_ext_prime(p, ev->ks_level, t));
    if (add0) tsr_vec_add(m, l0, l0, add0 + (size_t)t * n, n);
    if (lift0 && t <= ev->ks_level) /* P lift0 is 0 modulo the special primes */
        tsr_vec_mul_scalar_add(m, l0, lift0 + (size_t)t * n, p->p_mod[t], n);
    if (perm) {
        tsr_vec_permute(acc0 + (size_t)t * n, l0, perm, n, 1);
        tsr_vec_permute(acc1 + (size_t)t * n, l1, perm, n, 1);
    }
}

tsr_status ckks_ks_apply_qp(tsr_ckks_evaluator *ev, const ckks_ksk *key, const uint32_t *perm,
                            const uint64_t *add0, const uint64_t *lift0, uint64_t *acc0,
                            uint64_t *acc1) {
    const tsr_ckks_params *p = ev->params;
    const int ne = ev->ks_level + 1 + p->k;
    const unsigned r = split_r(p);
    const size_t n = p->n, R = (size_t)1 << r;
    const size_t tls_stride = tls_blocks(p) * (n >> r);
    TSR_TRY(ckks_ks_check_level(key, ev->ks_level));
    TSR_ASSERT(!perm ? (!add0 || add0 != acc0) && (!lift0 || lift0 != acc0) : 1);
    /* Limb by limb: its blocks (into the thread's limb buffer when the limb
     * is permuted afterwards, straight to acc otherwise), plus add0's limb
     * and P lift0's (read before acc's limb t is written: add0 may be acc0
     * when permuted). Dynamic, one limb at a time: a special-prime limb transforms every digit
     * block, a Q limb all but its own digit's, and static halves gave the k special primes to
     * the last thread. When the threads do not divide the limbs (an odd count for two: every
     * other level), the last limb's blocks are shared out instead of one thread transforming a
     * whole limb alone at the end, and one thread finishes it. The words do not depend on the
     * thread. */
    const int par = ne > 1 && n >= 2048;
    const int threads = par ? tsr_thread_max() : 1;
    const int shared = threads > 1 && ne % threads != 0, whole = ne - shared;
#ifdef _OPENMP
#pragma omp parallel if (par)
#endif
    {
        uint64_t *dig = ev->ks_tls + (size_t)tsr_thread_index() * tls_stride;
#ifdef _OPENMP
#pragma omp for schedule(dynamic, 1)
#endif
        for (int t = 0; t < whole; t++) {
            uint64_t *l0 =
                perm ? ev->ks_limb + (size_t)tsr_thread_index() * 2 * n : acc0 + (size_t)t * n;
            uint64_t *l1 = perm ? l0 + n : acc1 + (size_t)t * n;
            qp_limb_blocks(ev, key, t, 0, R, l0, l1, dig);
            qp_limb_finish(ev, perm, add0, lift0, t, l0, l1, acc0, acc1);
        }
        if (shared) {
            /* every limb buffer is free after the loop's barrier: the first one holds it */
            const int t = ne - 1;
            uint64_t *l0 = perm ? ev->ks_limb : acc0 + (size_t)t * n;
            uint64_t *l1 = perm ? l0 + n : acc1 + (size_t)t * n;
#ifdef _OPENMP
#pragma omp for schedule(static)
#endif
            for (int b = 0; b < (int)R; b++)
                qp_limb_blocks(ev, key, t, (size_t)b, (size_t)b + 1, l0, l1, dig);
#ifdef _OPENMP
#pragma omp single
#endif
            qp_limb_finish(ev, perm, add0, lift0, t, l0, l1, acc0, acc1);
        }
    }
    return TSR_OK;
}

/* Limb t (t <= level) of acc += P phi(c), phi = perm or the identity: the one body of
 * ckks_qp_add_lifted and ckks_qp_set_lifted. perm needs ev's per-thread limb buffers. */
static void add_lifted_limb(tsr_ckks_evaluator *ev, int t, const uint32_t *perm, const uint64_t *c,
                            uint64_t *acc) {
    const tsr_ckks_params *p = ev->params;
    const size_t n = p->n;
    const uint64_t *src = c + (size_t)t * n;
    if (perm) {
        uint64_t *l = ev->ks_limb + (size_t)tsr_thread_index() * 2 * n;
        /* read back at once by the next call: no streaming stores */
        tsr_vec_permute(l, src, perm, n, 0);
        src = l;
    }
    tsr_vec_mul_scalar_add(ckks_mod(p, t), acc + (size_t)t * n, src, p->p_mod[t], n);
}

tsr_status ckks_qp_add_lifted(tsr_ckks_evaluator *ev, int level, const uint32_t *perm,
                              const uint64_t *c, uint64_t *acc) {
    TSR_TRY(ckks_ks_scratch(ev)); /* the per-thread limb buffers */
#pragma omp parallel for schedule(static) if (level > 0 && ev->params->n >= 2048)
    for (int t = 0; t <= level; t++) add_lifted_limb(ev, t, perm, c, acc);
    return TSR_OK;
}

tsr_status ckks_qp_set_lifted(tsr_ckks_evaluator *ev, int level, const uint64_t *c0,
                              const uint64_t *c1, uint64_t *acc0, uint64_t *acc1) {
    const tsr_ckks_params *p = ev->params;
    const size_t n = p->n, ne = (size_t)level + 1 + (size_t)p->k;
    /* each limb cleared and written by one thread while it is in cache (this replaces a
     * whole-polynomial memset on the calling thread); limbs dealt round robin: only the first
     * l + 1 of the l + 1 + k are multiplied, and contiguous halves gave the k special primes'
     * bare clears to the last thread */
#pragma omp parallel for schedule(static, 1) if (ne > 1 && n >= 2048)
    for (int t = 0; t < (int)ne; t++) {
        memset(acc0 + (size_t)t * n, 0, n * sizeof *acc0);
        memset(acc1 + (size_t)t * n, 0, n * sizeof *acc1);
        if (t > level) continue; /* P * c is 0 modulo the special primes */
        add_lifted_limb(ev, t, NULL, c0, acc0);
        add_lifted_limb(ev, t, NULL, c1, acc1);
    }
    return TSR_OK;
}

tsr_status ckks_qp_dot_plain(tsr_ckks_evaluator *ev, int level, uint64_t *out0, uint64_t *out1,
                             const uint64_t *const *pt, const uint64_t *const *c0,
                             const uint64_t *const *c1, size_t terms) {
    const tsr_ckks_params *p = ev->params;
    const size_t n = p->n, ne = (size_t)level + 1 + (size_t)p->k;
    const uint64_t **ptr = tsr_alloc((3 * ne * terms + 1) * sizeof *ptr);
    if (!ptr) return tsr_fail(TSR_ERR_NOMEM, "cannot allocate the plaintext inner sum");
    for (size_t i = 0; i < ne; i++)
        for (size_t j = 0; j < terms; j++) {
            ptr[(3 * i) * terms + j] = pt[j] + i * n;
            ptr[(3 * i + 1) * terms + j] = c0[j] + i * n;
            ptr[(3 * i + 2) * terms + j] = c1[j] + i * n;
        }
#pragma omp parallel for schedule(static) if (ne > 1 && n >= 2048)
    for (int i = 0; i < (int)ne; i++) {
        const size_t off = (size_t)i * n, at = (size_t)(3 * i) * terms;
        tsr_vec_dot2(ckks_mod(p, ckks_ext_prime(p, level, i)), out0 + off, out1 + off, ptr + at,
                     ptr + at + terms, ptr + at + 2 * terms, terms, n);
    }
    tsr_free(ptr);
    return TSR_OK;
}

void ckks_qp_add(tsr_ckks_evaluator *ev, int level, uint64_t *acc0, uint64_t *acc1,
                 const uint64_t *a0, const uint64_t *a1) {
    const tsr_ckks_params *p = ev->params;
    const size_t n = p->n, ne = (size_t)level + 1 + (size_t)p->k;
#pragma omp parallel for schedule(static) if (ne > 1 && n >= 2048)
    for (int i = 0; i < (int)ne; i++) {
        const tsr_modulus *m = ckks_mod(p, ckks_ext_prime(p, level, i));
        const size_t off = (size_t)i * n;
        tsr_vec_add(m, acc0 + off, acc0 + off, a0 + off, n);
        tsr_vec_add(m, acc1 + off, acc1 + off, a1 + off, n);
    }
}

tsr_status ckks_qp_moddown(tsr_ckks_evaluator *ev, int level, uint64_t *in0, uint64_t *in1,
                           uint64_t *out0, uint64_t *out1) {
    const tsr_moddown *md = ev->params->moddown[level];
    TSR_TRY(tsr_moddown_apply(md, out0, in0));
    TSR_TRY(tsr_moddown_apply(md, out1, in1));
    ev->n_moddown++;
    return TSR_OK;
}

tsr_status ckks_qp_moddown1(tsr_ckks_evaluator *ev, int level, uint64_t *in, uint64_t *out) {
    TSR_TRY(tsr_moddown_apply(ev->params->moddown[level], out, in));
    ev->n_moddown++;
    return TSR_OK;
}

tsr_status ckks_keyswitch(tsr_ckks_evaluator *ev, int level, const uint64_t *d, const ckks_ksk *key,
                          const uint64_t *c0, const uint64_t *c1, uint64_t *out0, uint64_t *out1) {
    TSR_TRY(ckks_ks_decompose(ev, level, d));
    return ckks_ks_apply(ev, key, 0, c0, c1, out0, out1);
}
