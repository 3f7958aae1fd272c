/*
 * ckks/keys.c - key generation: secret keys (uniform ternary or fixed
 * Hamming weight), public keys, and hybrid key-switching keys for
 * relinearization and Galois automorphisms (rotations, conjugation).
 *
 * Hybrid key switching (Han-Ki, CT-RSA 2020, section 3): the chain primes
 * are split into dnum digits of alpha consecutive primes, D_j = prod of the
 * primes of digit j. A key from s' to s holds, for each digit j,
 *     b_j = -a_j s + e_j + P * T_j * s'   over Q_L * P,
 * where T_j = (Q/D_j) * [(Q/D_j)^-1]_{D_j} is 1 modulo the primes of digit
 * j and 0 modulo the other chain primes (and P * T_j is 0 modulo P). So in
 * RNS form the gadget term is just P * s' on the limbs of digit j.
 */
#include "ckks/ckks_internal.h"
#include "core/alloc.h"
#include "core/error.h"
#include "core/progress.h"
#include "ring/vec.h"

#include <stdlib.h>
#include <string.h>

/* ---- secret key -------------------------------------------------------------- */

tsr_status tsr_ckks_secret_key_create(tsr_ckks_secret_key **out, tsr_ckks_params *p) {
    TSR_REQUIRE(out && p, "tsr_ckks_secret_key_create: NULL argument");
    *out = NULL;
    tsr_ckks_secret_key *sk = tsr_calloc(sizeof *sk);
    if (!sk) return tsr_fail(TSR_ERR_NOMEM, "cannot allocate a secret key");
    sk->params = ckks_params_ref(p);
    sk->coeffs = tsr_calloc(p->n);
    tsr_status st = sk->coeffs ? tsr_rns_poly_new(p->qp, &sk->s_ntt) : TSR_ERR_NOMEM;
    if (st != TSR_OK) {
        tsr_ckks_secret_key_free(sk);
        return tsr_fail(TSR_ERR_NOMEM, "cannot allocate a secret key");
    }
    tsr_prng g;
    st = tsr_random_bytes(sk->key_id, sizeof sk->key_id);
    if (st == TSR_OK) st = tsr_prng_init_random(&g, 0);
    if (st != TSR_OK) {
        tsr_ckks_secret_key_free(sk);
        return st;
    }
    ckks_sample_ternary(&g, sk->coeffs, p->n,
                        p->spec.secret == TSR_CKKS_SECRET_FIXED_HW ? p->spec.hamming_weight : 0);
    tsr_prng_wipe(&g);
    ckks_sk_complete(sk);
    *out = sk;
    return TSR_OK;
}

void ckks_sk_complete(tsr_ckks_secret_key *sk) {
    const tsr_ckks_params *p = sk->params;
    tsr_rns_from_i8(p->qp, sk->s_ntt, sk->coeffs);
    tsr_rns_ntt(p->qp, sk->s_ntt);
}

void tsr_ckks_secret_key_free(tsr_ckks_secret_key *sk) {
    if (!sk) return;
    size_t n = sk->params->n;
    tsr_free_secret(sk->coeffs, n);
    tsr_free_secret(sk->s_ntt, (size_t)sk->params->nall * n * sizeof(uint64_t));
    tsr_ckks_params_free(sk->params);
    tsr_free_secret(sk, sizeof *sk);
}

/* ---- errors -------------------------------------------------------------------- */

/* out = e over all L+1+k primes in NTT form, e a fresh Gaussian. */
tsr_status ckks_gaussian_ntt(const tsr_ckks_params *p, const tsr_rns_basis *b, uint64_t *out) {
    int64_t *e = tsr_alloc(p->n * sizeof *e);
    if (!e) return tsr_fail(TSR_ERR_NOMEM, "cannot allocate an error polynomial");
    tsr_prng g;
    tsr_status st = tsr_prng_init_random(&g, 0);
    if (st == TSR_OK) {
        ckks_sample_gaussian(&g, e, p->n);
        tsr_prng_wipe(&g);
        tsr_rns_from_i64(b, out, e);
        tsr_rns_ntt(b, out);
    }
    tsr_free_secret(e, p->n * sizeof *e);
    return st;
}

/* ---- public key ------------------------------------------------------------------ */

tsr_status ckks_pk_complete(tsr_ckks_public_key *pk, const tsr_ckks_secret_key *sk,
                            int expand_only) {
    const tsr_ckks_params *p = pk->params;
    tsr_sample_uniform(p->qp, pk->seed, CKKS_DOMAIN_PK_A, pk->a);
    if (expand_only) return TSR_OK;
    /* b = e - a*s */
    TSR_TRY(ckks_gaussian_ntt(p, p->qp, pk->b));
    uint64_t *as = NULL;
    TSR_TRY(tsr_rns_poly_new(p->qp, &as));
    tsr_rns_mul(p->qp, as, pk->a, sk->s_ntt);
    tsr_rns_sub(p->qp, pk->b, pk->b, as);
    tsr_free_secret(as, (size_t)p->nall * p->n * sizeof(uint64_t));
    return TSR_OK;
}

tsr_status ckks_pk_alloc(tsr_ckks_public_key **out, tsr_ckks_params *p) {
    tsr_ckks_public_key *pk = tsr_calloc(sizeof *pk);
    *out = NULL;
    if (!pk) return tsr_fail(TSR_ERR_NOMEM, "cannot allocate a public key");
    pk->params = ckks_params_ref(p);
    if (tsr_rns_poly_new(p->qp, &pk->a) != TSR_OK || tsr_rns_poly_new(p->qp, &pk->b) != TSR_OK) {
        tsr_ckks_public_key_free(pk);
        return tsr_fail(TSR_ERR_NOMEM, "cannot allocate a public key");
    }
    *out = pk;
    return TSR_OK;
}

tsr_status tsr_ckks_public_key_create(tsr_ckks_public_key **out, const tsr_ckks_secret_key *sk) {
    TSR_REQUIRE(out && sk, "tsr_ckks_public_key_create: NULL argument");
    TSR_TRY(ckks_pk_alloc(out, sk->params));
    memcpy((*out)->key_id, sk->key_id, sizeof sk->key_id);
    tsr_status st = tsr_random_bytes((*out)->seed, TSR_SEED_BYTES);
    if (st == TSR_OK) st = ckks_pk_complete(*out, sk, 0);
    if (st != TSR_OK) {
        tsr_ckks_public_key_free(*out);
        *out = NULL;
    }
    return st;
}

void tsr_ckks_public_key_free(tsr_ckks_public_key *pk) {
    if (!pk) return;
    tsr_free(pk->a);
    tsr_free(pk->b);
    tsr_ckks_params_free(pk->params);
    tsr_free(pk);
}

/* ---- key-switching keys --------------------------------------------------------------- */

tsr_status ckks_ksk_alloc(const tsr_ckks_params *p, int max_level, int seeded, ckks_ksk *key) {
    TSR_ASSERT(max_level >= 0 && max_level <= p->L);
    key->max_level = max_level;
    key->dnum = ckks_digits_at(p, max_level);
    key->limbs = max_level + 1 + p->k;
    key->seeded = seeded != 0;
    key->prg = CKKS_KSK_PRG_DEFAULT;
    key->data = tsr_calloc_array((size_t)(seeded ? 1 : 2) * key->dnum * key->limbs * p->n,
                                 sizeof(uint64_t));
    if (!key->data) return tsr_fail(TSR_ERR_NOMEM, "cannot allocate a key-switching key");
    return TSR_OK;
}

void ckks_ksk_free(ckks_ksk *key) {
    tsr_free(key->data);
    key->data = NULL;
}

tsr_status ckks_ksk_trim(const tsr_ckks_params *p, ckks_ksk *key, int max_level) {
    TSR_ASSERT(max_level >= 0 && max_level <= p->L);
    if (max_level >= key->max_level) return TSR_OK;
    ckks_ksk t;
    memcpy(t.seed, key->seed, TSR_SEED_BYTES);
    TSR_TRY(ckks_ksk_alloc(p, max_level, key->seeded, &t));
    t.prg = key->prg;
    size_t n = p->n, q = (size_t)(max_level + 1) * n, sp = (size_t)p->k * n;
    for (int j = 0; j < t.dnum; j++)
        for (int h = 0; h < (key->seeded ? 1 : 2); h++) {
            const uint64_t *src = h ? ckks_ksk_a(p, key, j) : ckks_ksk_b(p, key, j);
            uint64_t *dst = h ? ckks_ksk_a(p, &t, j) : ckks_ksk_b(p, &t, j);
            memcpy(dst, src, q * sizeof *dst);
            memcpy(dst + q, src + ckks_ksk_limb(p, key, p->L + 1), sp * sizeof *dst);
        }
    ckks_ksk_free(key);
    *key = t;
    return TSR_OK;
}

void ckks_ksk_expand_legacy(const tsr_ckks_params *p, ckks_ksk *key) {
    TSR_ASSERT(!key->seeded);
    key->prg = CKKS_KSK_PRG_XCHACHA20_LIMB;
    /* one XChaCha20 stream per (seed, digit, prime): the limbs of a
     * level-limited key equal those of the full key from the same seed */
    for (int j = 0; j < key->dnum; j++)
        tsr_sample_uniform(p->qlp[key->max_level], key->seed, CKKS_DOMAIN_KSK_A + (uint64_t)j,
                           ckks_ksk_a(p, key, j));
}

const uint64_t *ckks_ksk_a_range(const tsr_ckks_params *p, const ckks_ksk *k, int j, int pi,
                                 size_t off, size_t len, uint64_t *out) {
    if (!k->seeded) return ckks_ksk_a(p, k, j) + ckks_ksk_limb(p, k, pi) + off;
    TSR_ASSERT(k->prg == CKKS_KSK_PRG_CHACHA20_CHUNK || k->prg == CKKS_KSK_PRG_CHACHA12_CHUNK);
    const unsigned stream = k->prg == CKKS_KSK_PRG_CHACHA20_CHUNK ? TSR_SAMPLE_STREAM_CHACHA20
                                                                  : TSR_SAMPLE_STREAM_CHACHA12;
    tsr_sample_uniform_range(ckks_mod(p, pi), k->seed, (uint32_t)(CKKS_DOMAIN_KSK_A + j), stream,
                             off, len, out);
    return out;
}

/* a_j of a seeded key over all its limbs (limbs * N words). */
static void ksk_a_full(const tsr_ckks_params *p, const ckks_ksk *k, int j, uint64_t *out) {
    for (int t = 0; t < k->limbs; t++) {
        int pi = ckks_ext_prime(p, k->max_level, t);
        ckks_ksk_a_range(p, k, j, pi, 0, p->n, out + (size_t)t * p->n);
    }
}

tsr_status ckks_ksk_unseed(const tsr_ckks_params *p, ckks_ksk *key) {
    if (!key->seeded) return TSR_OK;
    ckks_ksk t;
    memcpy(t.seed, key->seed, TSR_SEED_BYTES);
    TSR_TRY(ckks_ksk_alloc(p, key->max_level, 0, &t));
    t.prg = key->prg; /* the stream its a_j came from (written with the key) */
    size_t poly = (size_t)key->limbs * p->n * sizeof(uint64_t);
    for (int j = 0; j < t.dnum; j++) {
        memcpy(ckks_ksk_b(p, &t, j), ckks_ksk_b(p, key, j), poly);
        ksk_a_full(p, key, j, ckks_ksk_a(p, &t, j));
    }
    ckks_ksk_free(key);
    *key = t;
    return TSR_OK;
}

tsr_status ckks_ksk_generate(const tsr_ckks_params *p, const uint64_t *s_to, const uint64_t *s_from,
                             int max_level, ckks_ksk *key) {
    return ckks_ksk_generate_prg(p, s_to, s_from, max_level, CKKS_KSK_PRG_DEFAULT, key);
}

tsr_status ckks_ksk_generate_prg(const tsr_ckks_params *p, const uint64_t *s_to,
                                 const uint64_t *s_from, int max_level, int prg, ckks_ksk *key) {
    size_t n = p->n;
    const tsr_rns_basis *basis = p->qlp[max_level];
    TSR_ASSERT(prg >= 0 && prg <= CKKS_KSK_PRG_LAST);
    const int seeded = prg != CKKS_KSK_PRG_XCHACHA20_LIMB;
    TSR_TRY(ckks_ksk_alloc(p, max_level, seeded, key));
    key->prg = prg;
    tsr_status st = tsr_random_bytes(key->seed, TSR_SEED_BYTES);
    if (st != TSR_OK) {
        ckks_ksk_free(key);
        return st;
    }
    if (!seeded) ckks_ksk_expand_legacy(p, key);
    /* s_to on the key's limbs (q_0..q_max_level, then P); one digit's a_j at a time */
    uint64_t *st_c = NULL, *as = NULL, *a = NULL;
    size_t bytes = (size_t)key->limbs * n * sizeof(uint64_t);
    st_c = tsr_alloc(bytes);
    as = tsr_alloc(bytes);
    a = tsr_alloc(bytes);
    if (!st_c || !as || !a) st = tsr_fail(TSR_ERR_NOMEM, "cannot allocate key-generation scratch");
    if (st == TSR_OK) {
        memcpy(st_c, s_to, (size_t)(max_level + 1) * n * sizeof(uint64_t));
        memcpy(st_c + (size_t)(max_level + 1) * n, s_to + (size_t)(p->L + 1) * n,
               (size_t)p->k * n * sizeof(uint64_t));
    }
    for (int j = 0; j < key->dnum && st == TSR_OK; j++) {
        uint64_t *b = ckks_ksk_b(p, key, j);
        if (seeded)
            ksk_a_full(p, key, j, a);
        else
            memcpy(a, ckks_ksk_a(p, key, j), bytes);
        st = ckks_gaussian_ntt(p, basis, b);
        if (st != TSR_OK) break;
        tsr_rns_mul(basis, as, a, st_c);
        tsr_rns_sub(basis, b, b, as);
        int lo = j * p->alpha, hi = lo + p->alpha > max_level + 1 ? max_level + 1 : lo + p->alpha;
        for (int i = lo; i < hi; i++)
            tsr_vec_mul_scalar_add(ckks_mod(p, i), b + (size_t)i * n, s_from + (size_t)i * n,
                                   p->p_mod[i], n);
    }
    if (st_c) tsr_free_secret(st_c, bytes);
    if (as) tsr_free_secret(as, bytes);
    tsr_free(a);
    if (st != TSR_OK) ckks_ksk_free(key);
    return st;
}

/* ---- relinearization key ----------------------------------------------------------------- */

tsr_status tsr_ckks_relin_key_create(tsr_ckks_relin_key **out, const tsr_ckks_secret_key *sk) {
    TSR_REQUIRE(out && sk, "tsr_ckks_relin_key_create: NULL argument");
    return tsr_ckks_relin_key_create_level(out, sk, TSR_CKKS_TOP_LEVEL);
}

tsr_status tsr_ckks_relin_key_create_level(tsr_ckks_relin_key **out, const tsr_ckks_secret_key *sk,
                                           int max_level) {
    TSR_REQUIRE(out && sk, "tsr_ckks_relin_key_create_level: NULL argument");
    *out = NULL;
    tsr_ckks_params *p = sk->params;
    if (max_level == TSR_CKKS_TOP_LEVEL) max_level = p->L;
    if (max_level < 0 || max_level > p->L)
        return tsr_fail(TSR_ERR_INVALID_ARG, "max_level %d is out of range 0..%d", max_level, p->L);
    tsr_ckks_relin_key *rk = tsr_calloc(sizeof *rk);
    if (!rk) return tsr_fail(TSR_ERR_NOMEM, "cannot allocate a relinearization key");
    rk->params = ckks_params_ref(p);
    memcpy(rk->key_id, sk->key_id, sizeof sk->key_id);
    uint64_t *s2 = NULL;
    tsr_status st = tsr_rns_poly_new(p->q[p->L], &s2);
    if (st == TSR_OK) {
        tsr_rns_mul(p->q[p->L], s2, sk->s_ntt, sk->s_ntt);
        st = ckks_ksk_generate(p, sk->s_ntt, s2, max_level, &rk->key);
        tsr_free_secret(s2, (size_t)(p->L + 1) * p->n * sizeof(uint64_t));
    }
    if (st != TSR_OK) {
        tsr_ckks_relin_key_free(rk);
        return st;
    }
    *out = rk;
    return TSR_OK;
}

void tsr_ckks_relin_key_free(tsr_ckks_relin_key *rk) {
    if (!rk) return;
    ckks_ksk_free(&rk->key);
    tsr_ckks_params_free(rk->params);
    tsr_free(rk);
}

/* ---- Galois keys ---------------------------------------------------------------------------- */

long ckks_galois_step(const tsr_ckks_params *p, uint64_t g) {
    uint64_t m = 2 * (uint64_t)p->n, x = 1;
    for (size_t s = 0; s < p->slots; s++) {
        if (x == g) return (long)s;
        x = x * 5 % m;
    }
    return -1;
}

const ckks_galois_entry *ckks_galois_find(const tsr_ckks_galois_keys *gk, uint64_t g) {
    if (!gk) return NULL;
    size_t lo = 0, hi = gk->count;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (gk->e[mid].elt == g) return &gk->e[mid];
        if (gk->e[mid].elt < g)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

static int cmp_entry(const void *a, const void *b) {
    uint64_t x = ((const ckks_galois_entry *)a)->elt, y = ((const ckks_galois_entry *)b)->elt;
    return (x > y) - (x < y);
}

tsr_status ckks_galois_alloc(tsr_ckks_galois_keys **out, tsr_ckks_params *p) {
    tsr_ckks_galois_keys *gk = tsr_calloc(sizeof *gk);
    *out = NULL;
    if (!gk) return tsr_fail(TSR_ERR_NOMEM, "cannot allocate Galois keys");
    gk->params = ckks_params_ref(p);
    *out = gk;
    return TSR_OK;
}

tsr_status ckks_galois_reserve(tsr_ckks_galois_keys *gk, size_t cap) {
    if (gk->cap >= cap) return TSR_OK;
    ckks_galois_entry *e = tsr_calloc_array(cap, sizeof *e);
    if (!e) return tsr_fail(TSR_ERR_NOMEM, "cannot allocate Galois keys");
    if (gk->count) memcpy(e, gk->e, gk->count * sizeof *e);
    tsr_free(gk->e);
    gk->e = e;
    gk->cap = cap;
    return TSR_OK;
}

tsr_status ckks_galois_perm(const tsr_ckks_params *p, uint64_t g, uint32_t **out) {
    *out = tsr_alloc(p->n * sizeof(uint32_t));
    if (!*out) return tsr_fail(TSR_ERR_NOMEM, "cannot allocate an automorphism table");
    tsr_rns_automorphism_ntt_index(p->n, g, *out);
    return TSR_OK;
}

void ckks_galois_sort(tsr_ckks_galois_keys *gk) {
    if (gk->count > 1) qsort(gk->e, gk->count, sizeof *gk->e, cmp_entry);
}

tsr_status tsr_ckks_galois_keys_add(tsr_ckks_galois_keys *gk, const tsr_ckks_secret_key *sk,
                                    const int *steps, size_t n_steps, uint32_t flags) {
    return tsr_ckks_galois_keys_add_level(gk, sk, steps, n_steps, flags, TSR_CKKS_TOP_LEVEL);
}

tsr_status tsr_ckks_galois_keys_add_level(tsr_ckks_galois_keys *gk, const tsr_ckks_secret_key *sk,
                                          const int *steps, size_t n_steps, uint32_t flags,
                                          int max_level) {
    TSR_REQUIRE(gk && sk && (steps || n_steps == 0), "tsr_ckks_galois_keys_add: NULL argument");
    tsr_ckks_params *p = sk->params;
    if (max_level == TSR_CKKS_TOP_LEVEL) max_level = p->L;
    if (max_level < 0 || max_level > p->L)
        return tsr_fail(TSR_ERR_INVALID_ARG, "max_level %d is out of range 0..%d", max_level, p->L);
    TSR_TRY(ckks_params_check(gk->params, p, "the Galois key set"));
    if (memcmp(gk->key_id, sk->key_id, sizeof sk->key_id) != 0)
        return tsr_fail(TSR_ERR_MISMATCH,
                        "the Galois key set belongs to another key set (it was made from another "
                        "secret key): add keys with the secret key it was created with");
    if (flags & ~(TSR_CKKS_GALOIS_CONJUGATE | TSR_CKKS_GALOIS_POW2 | TSR_CKKS_GALOIS_POW2_NEG))
        return tsr_fail(TSR_ERR_INVALID_ARG, "unknown Galois key flags 0x%x", flags);
    /* Collect the wanted Galois elements (deduplicated, not yet present). */
    size_t max_new = n_steps + 1 + 2 * (size_t)p->log_n;
    uint64_t *want = tsr_alloc(max_new * sizeof *want);
    if (!want) return tsr_fail(TSR_ERR_NOMEM, "cannot allocate Galois key list");
    size_t nw = 0;
#define WANT(g_)                                                                  \
    do {                                                                          \
        uint64_t g__ = (g_);                                                      \
        int dup__ = ckks_galois_find(gk, g__) != NULL;                            \
        for (size_t i__ = 0; i__ < nw && !dup__; i__++) dup__ = want[i__] == g__; \
        if (!dup__) want[nw++] = g__;                                             \
    } while (0)
    for (size_t i = 0; i < n_steps; i++) {
        long s = steps[i] % (long)p->slots;
        if (s != 0) WANT(ckks_galois_elt_rotation(p->slots, s));
    }
    if (flags & TSR_CKKS_GALOIS_CONJUGATE) WANT(ckks_galois_elt_conjugate(p->slots));
    for (size_t s = 1; s < p->slots; s <<= 1) {
        if (flags & TSR_CKKS_GALOIS_POW2) WANT(ckks_galois_elt_rotation(p->slots, (long)s));
        if (flags & TSR_CKKS_GALOIS_POW2_NEG) WANT(ckks_galois_elt_rotation(p->slots, -(long)s));
    }
#undef WANT
    tsr_status st = ckks_galois_reserve(gk, gk->count + nw);
    uint64_t *s_g = NULL;
    uint32_t *inv_perm = tsr_alloc(p->n * sizeof *inv_perm);
    if (!inv_perm) st = tsr_fail(TSR_ERR_NOMEM, "cannot allocate an automorphism table");
    if (st == TSR_OK) st = tsr_rns_poly_new(p->qp, &s_g);
    tsr_progress prog;
    int show = nw >= 8;
    if (show) tsr_progress_begin(&prog, "Galois keys", nw, "key");
    for (size_t i = 0; i < nw && st == TSR_OK; i++) {
        ckks_galois_entry *e = &gk->e[gk->count];
        memset(e, 0, sizeof *e);
        e->elt = want[i];
        st = ckks_galois_perm(p, e->elt, &e->perm);
        if (st != TSR_OK) break;
        /* The evaluator key-switches c1 first and applies phi_g afterwards
         * (keyswitch.c), so the key takes s to phi_g^-1(s) = s(X^(g^-1)):
         * then phi_g(v0) + phi_g(v1) s ~ phi_g(c1 s). */
        uint64_t g_inv = tsr_modq_inv(e->elt, 2 * (uint64_t)p->n);
        tsr_rns_automorphism_ntt_index(p->n, g_inv, inv_perm);
        tsr_rns_automorphism_ntt(p->qp, s_g, sk->s_ntt, inv_perm);
        st = ckks_ksk_generate(p, s_g, sk->s_ntt, max_level, &e->key);
        if (st != TSR_OK) {
            tsr_free(e->perm);
            break;
        }
        gk->count++;
        if (show) tsr_progress_update(&prog, i + 1, NULL);
    }
    if (show) tsr_progress_end(&prog, NULL);
    if (s_g) tsr_free_secret(s_g, (size_t)p->nall * p->n * sizeof(uint64_t));
    tsr_free(inv_perm);
    tsr_free(want);
    ckks_galois_sort(gk);
    return st;
}

tsr_status tsr_ckks_galois_keys_create(tsr_ckks_galois_keys **out, const tsr_ckks_secret_key *sk,
                                       const int *steps, size_t n_steps, uint32_t flags) {
    TSR_REQUIRE(out && sk, "tsr_ckks_galois_keys_create: NULL argument");
    TSR_TRY(ckks_galois_alloc(out, sk->params));
    memcpy((*out)->key_id, sk->key_id, sizeof sk->key_id);
    tsr_status st = tsr_ckks_galois_keys_add(*out, sk, steps, n_steps, flags);
    if (st != TSR_OK) {
        tsr_ckks_galois_keys_free(*out);
        *out = NULL;
    }
    return st;
}

void tsr_ckks_galois_keys_free(tsr_ckks_galois_keys *gk) {
    if (!gk) return;
    for (size_t i = 0; i < gk->count; i++) {
        tsr_free(gk->e[i].perm);
        ckks_ksk_free(&gk->e[i].key);
    }
    tsr_free(gk->e);
    tsr_ckks_params_free(gk->params);
    tsr_free(gk);
}

int tsr_ckks_galois_keys_has_rotation(const tsr_ckks_galois_keys *gk, int step) {
    if (!gk) return 0;
    long s = step % (long)gk->params->slots;
    if (s == 0) return 1;
    return ckks_galois_find(gk, ckks_galois_elt_rotation(gk->params->slots, s)) != NULL;
}

int tsr_ckks_galois_keys_has_conjugate(const tsr_ckks_galois_keys *gk) {
    return gk && ckks_galois_find(gk, ckks_galois_elt_conjugate(gk->params->slots)) != NULL;
}

size_t tsr_ckks_galois_keys_count(const tsr_ckks_galois_keys *gk) {
    return gk ? gk->count : 0;
}

uint64_t tsr_ckks_galois_keys_memory(const tsr_ckks_galois_keys *gk) {
    uint64_t bytes = 0;
    for (size_t i = 0; gk && i < gk->count; i++)
        bytes += ckks_ksk_memory(gk->params, &gk->e[i].key);
    return bytes;
}

int tsr_ckks_galois_keys_rotation_level(const tsr_ckks_galois_keys *gk, int step) {
    if (!gk) return -1;
    long s = step % (long)gk->params->slots;
    if (s == 0) return gk->params->L;
    const ckks_galois_entry *e =
        ckks_galois_find(gk, ckks_galois_elt_rotation(gk->params->slots, s));
    return e ? e->key.max_level : -1;
}

tsr_status tsr_ckks_relin_key_trim(tsr_ckks_relin_key *rk, int max_level) {
    TSR_REQUIRE(rk, "tsr_ckks_relin_key_trim: NULL key");
    if (max_level < 0 || max_level > rk->params->L)
        return tsr_fail(TSR_ERR_INVALID_ARG, "max_level %d is out of range 0..%d", max_level,
                        rk->params->L);
    return ckks_ksk_trim(rk->params, &rk->key, max_level);
}

tsr_status tsr_ckks_galois_keys_trim(tsr_ckks_galois_keys *gk, const int *steps, const int *levels,
                                     size_t n_steps, int conj_level) {
    TSR_REQUIRE(gk && ((steps && levels) || n_steps == 0),
                "tsr_ckks_galois_keys_trim: NULL argument");
    const tsr_ckks_params *p = gk->params;
    for (size_t i = 0; i < n_steps; i++)
        if (levels[i] < 0 || levels[i] > p->L)
            return tsr_fail(TSR_ERR_INVALID_ARG, "level %d of step %d is out of range 0..%d",
                            levels[i], steps[i], p->L);
    if (conj_level < TSR_CKKS_TOP_LEVEL || conj_level > p->L)
        return tsr_fail(TSR_ERR_INVALID_ARG, "conjugation level %d is out of range 0..%d",
                        conj_level, p->L);
    for (size_t i = 0; i < n_steps; i++) {
        long s = steps[i] % (long)p->slots;
        if (s == 0) continue;
        ckks_galois_entry *e =
            (ckks_galois_entry *)ckks_galois_find(gk, ckks_galois_elt_rotation(p->slots, s));
        if (e) TSR_TRY(ckks_ksk_trim(p, &e->key, levels[i]));
    }
    if (conj_level != TSR_CKKS_TOP_LEVEL) {
        ckks_galois_entry *e =
            (ckks_galois_entry *)ckks_galois_find(gk, ckks_galois_elt_conjugate(p->slots));
        if (e) TSR_TRY(ckks_ksk_trim(p, &e->key, conj_level));
    }
    return TSR_OK;
}

tsr_status tsr_ckks_relin_key_expand(tsr_ckks_relin_key *rk) {
    TSR_REQUIRE(rk, "tsr_ckks_relin_key_expand: NULL key");
    return ckks_ksk_unseed(rk->params, &rk->key);
}

tsr_status tsr_ckks_galois_keys_expand(tsr_ckks_galois_keys *gk) {
    TSR_REQUIRE(gk, "tsr_ckks_galois_keys_expand: NULL key set");
    for (size_t i = 0; i < gk->count; i++) TSR_TRY(ckks_ksk_unseed(gk->params, &gk->e[i].key));
    return TSR_OK;
}

uint64_t tsr_ckks_relin_key_memory(const tsr_ckks_relin_key *rk) {
    return rk ? ckks_ksk_memory(rk->params, &rk->key) : 0;
}

int tsr_ckks_relin_key_max_level(const tsr_ckks_relin_key *rk) {
    TSR_REQUIRE(rk, "tsr_ckks_relin_key_max_level: NULL key");
    return rk->key.max_level;
}

static int cmp_int(const void *a, const void *b) {
    int x = *(const int *)a, y = *(const int *)b;
    return (x > y) - (x < y);
}

size_t tsr_ckks_galois_keys_steps(const tsr_ckks_galois_keys *gk, int *steps, size_t cap) {
    if (!gk) return 0;
    size_t nrot = 0;
    int *all = tsr_alloc((gk->count ? gk->count : 1) * sizeof *all);
    if (!all) return 0;
    for (size_t i = 0; i < gk->count; i++) {
        long s = ckks_galois_step(gk->params, gk->e[i].elt);
        if (s > 0) all[nrot++] = (int)s;
    }
    qsort(all, nrot, sizeof *all, cmp_int);
    for (size_t i = 0; i < nrot && i < cap; i++) steps[i] = all[i];
    tsr_free(all);
    return nrot;
}

/* ---- key-set ids ------------------------------------------------------------------------------
 */

void tsr_ckks_secret_key_id(const tsr_ckks_secret_key *sk, uint8_t id[TSR_CKKS_KEY_ID_BYTES]) {
    TSR_REQUIRE(sk && id, "tsr_ckks_secret_key_id: NULL argument");
    memcpy(id, sk->key_id, TSR_CKKS_KEY_ID_BYTES);
}

void tsr_ckks_public_key_id(const tsr_ckks_public_key *pk, uint8_t id[TSR_CKKS_KEY_ID_BYTES]) {
    TSR_REQUIRE(pk && id, "tsr_ckks_public_key_id: NULL argument");
    memcpy(id, pk->key_id, TSR_CKKS_KEY_ID_BYTES);
}

void tsr_ckks_relin_key_id(const tsr_ckks_relin_key *rk, uint8_t id[TSR_CKKS_KEY_ID_BYTES]) {
    TSR_REQUIRE(rk && id, "tsr_ckks_relin_key_id: NULL argument");
    memcpy(id, rk->key_id, TSR_CKKS_KEY_ID_BYTES);
}

void tsr_ckks_galois_keys_id(const tsr_ckks_galois_keys *gk, uint8_t id[TSR_CKKS_KEY_ID_BYTES]) {
    TSR_REQUIRE(gk && id, "tsr_ckks_galois_keys_id: NULL argument");
    memcpy(id, gk->key_id, TSR_CKKS_KEY_ID_BYTES);
}
