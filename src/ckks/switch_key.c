/*
 * ckks/switch_key.c - key switching between two secret keys of one
 * parameter set, and sparse temporary secrets: the pieces of the
 * sparse-secret encapsulation of bootstrapping (J.-P. Bossuat, J.
 * Troncoso-Pastoriza, J.-P. Hubaux, "Bootstrapping for Approximate
 * Homomorphic Encryption with Negligible Failure-Probability by Using Sparse-
 * Secret Encapsulation", ACNS 2022): the ciphertext at level 0 is switched
 * from the dense main secret to a sparse one (Hamming weight ~32), raised,
 * and switched back, so the multiple of q_0 that ModRaise adds is small.
 *
 * A key towards a sparse secret is only secure over a small modulus: a key
 * made with max_level = 0 holds its RLWE samples over q_0 * P (a level-aware
 * key, ckks_internal.h: the other limbs and digits are not even stored), and
 * tsr_ckks_switch_key_create_q0p0 over q_0 * p_0 only, as Lattigo and OpenFHE
 * make it (docs/SECURITY.md, "The sparse encapsulation key"). That key lives
 * under auxiliary parameters with the chain {q_0} and the one special prime
 * p_0 (ckks_params_create_q0p0): a level-0 ciphertext's limb is valid under
 * both, so the switch runs on an evaluator of those parameters (ModUp
 * q_0 -> {q_0, p_0}, inner product, ModDown by p_0).
 */
#include "ckks/evaluator_internal.h"
#include "core/alloc.h"
#include "core/error.h"
#include "ring/vec.h"

#include <string.h>

struct tsr_ckks_switch_key {
    tsr_ckks_params *params;
    uint8_t key_id[TSR_CKKS_KEY_ID_BYTES]; /* key-set id of the target secret */
    int max_level;
    /* NULL, or ckks_params_create_q0p0(params): key is over q_0 p_0 only (level 0) */
    tsr_ckks_params *q0p0;
    ckks_ksk key;
};

tsr_status tsr_ckks_secret_key_create_sparse(tsr_ckks_secret_key **out, tsr_ckks_params *p,
                                             unsigned h, const tsr_ckks_secret_key *same_set) {
    TSR_REQUIRE(out && p, "tsr_ckks_secret_key_create_sparse: NULL argument");
    *out = NULL;
    if (h == 0 || h > p->n)
        return tsr_fail(TSR_ERR_INVALID_ARG,
                        "a sparse secret needs a Hamming weight in 1..%zu "
                        "(got %u)",
                        p->n, h);
    if (same_set) TSR_TRY(ckks_params_check(p, same_set->params, "the main secret key"));
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
    if (same_set)
        memcpy(sk->key_id, same_set->key_id, sizeof sk->key_id);
    else
        st = tsr_random_bytes(sk->key_id, sizeof sk->key_id);
    if (st == TSR_OK) st = tsr_prng_init_random(&g, 0);
    if (st != TSR_OK) {
        tsr_ckks_secret_key_free(sk);
        return st;
    }
    ckks_sample_ternary(&g, sk->coeffs, p->n, h);
    tsr_prng_wipe(&g);
    ckks_sk_complete(sk);
    *out = sk;
    return TSR_OK;
}

tsr_status tsr_ckks_switch_key_create(tsr_ckks_switch_key **out, const tsr_ckks_secret_key *from,
                                      const tsr_ckks_secret_key *to, int max_level) {
    TSR_REQUIRE(out && from && to, "tsr_ckks_switch_key_create: NULL argument");
    *out = NULL;
    tsr_ckks_params *p = to->params;
    TSR_TRY(ckks_params_check(p, from->params, "the source secret key"));
    if (max_level == TSR_CKKS_TOP_LEVEL) max_level = p->L;
    if (max_level < 0 || max_level > p->L)
        return tsr_fail(TSR_ERR_INVALID_ARG, "max_level %d is out of range 0..%d", max_level, p->L);
    tsr_ckks_switch_key *k = tsr_calloc(sizeof *k);
    if (!k) return tsr_fail(TSR_ERR_NOMEM, "cannot allocate a switching key");
    k->params = ckks_params_ref(p);
    memcpy(k->key_id, to->key_id, sizeof k->key_id);
    k->max_level = max_level;
    tsr_status st = ckks_ksk_generate(p, to->s_ntt, from->s_ntt, max_level, &k->key);
    if (st != TSR_OK) {
        tsr_ckks_switch_key_free(k);
        return st;
    }
    *out = k;
    return TSR_OK;
}

tsr_status tsr_ckks_switch_key_create_q0p0(tsr_ckks_switch_key **out,
                                           const tsr_ckks_secret_key *from,
                                           const tsr_ckks_secret_key *to,
                                           unsigned max_log_modulus) {
    TSR_REQUIRE(out && from && to, "tsr_ckks_switch_key_create_q0p0: NULL argument");
    *out = NULL;
    tsr_ckks_params *p = to->params;
    TSR_TRY(ckks_params_check(p, from->params, "the source secret key"));
    tsr_ckks_switch_key *k = tsr_calloc(sizeof *k);
    if (!k) return tsr_fail(TSR_ERR_NOMEM, "cannot allocate a switching key");
    k->params = ckks_params_ref(p);
    memcpy(k->key_id, to->key_id, sizeof k->key_id);
    k->max_level = 0;
    tsr_status st = ckks_params_create_q0p0(&k->q0p0, p, max_log_modulus);
    /* both secrets in NTT form over {q_0, p_0} (limb 0 equals their limb 0 under p) */
    size_t n = p->n;
    uint64_t *s = st == TSR_OK ? tsr_alloc(4 * n * sizeof(uint64_t)) : NULL;
    if (st == TSR_OK && !s) st = tsr_fail(TSR_ERR_NOMEM, "cannot allocate a switching key");
    if (st == TSR_OK) {
        const tsr_ckks_params *a = k->q0p0;
        tsr_rns_from_i8(a->qp, s, to->coeffs);
        tsr_rns_ntt(a->qp, s);
        tsr_rns_from_i8(a->qp, s + 2 * n, from->coeffs);
        tsr_rns_ntt(a->qp, s + 2 * n);
        st = ckks_ksk_generate(a, s, s + 2 * n, 0, &k->key);
    }
    if (s) {
        tsr_wipe(s, 4 * n * sizeof *s);
        tsr_free(s);
    }
    if (st != TSR_OK) {
        tsr_ckks_switch_key_free(k);
        return st;
    }
    *out = k;
    return TSR_OK;
}

int tsr_ckks_switch_key_limbs(const tsr_ckks_switch_key *k) {
    TSR_REQUIRE(k, "tsr_ckks_switch_key_limbs: NULL key");
    const tsr_ckks_params *p = k->q0p0 ? k->q0p0 : k->params;
    return k->max_level + 1 + p->k;
}

double tsr_ckks_switch_key_log_modulus(const tsr_ckks_switch_key *k) {
    TSR_REQUIRE(k, "tsr_ckks_switch_key_log_modulus: NULL key");
    const tsr_ckks_params *p = k->q0p0 ? k->q0p0 : k->params;
    double bits = 0;
    for (int i = 0; i <= k->max_level; i++) bits += p->log2_prime[i];
    for (int i = 0; i < p->k; i++) bits += p->log2_prime[p->L + 1 + i];
    return bits;
}

void tsr_ckks_switch_key_free(tsr_ckks_switch_key *k) {
    if (!k) return;
    ckks_ksk_free(&k->key);
    tsr_ckks_params_free(k->q0p0);
    tsr_ckks_params_free(k->params);
    tsr_free(k);
}

int tsr_ckks_switch_key_max_level(const tsr_ckks_switch_key *k) {
    TSR_REQUIRE(k, "tsr_ckks_switch_key_max_level: NULL key");
    return k->max_level;
}

uint64_t tsr_ckks_switch_key_bytes(const tsr_ckks_switch_key *k) {
    TSR_REQUIRE(k, "tsr_ckks_switch_key_bytes: NULL key");
    const tsr_ckks_params *p = k->q0p0 ? k->q0p0 : k->params;
    /* the b halves of the digits in use, over limbs 0..max_level and P (a is a seed) */
    return ckks_ksk_b_bytes(p, &k->key);
}

tsr_status tsr_ckks_key_switch(tsr_ckks_evaluator *ev, tsr_ckks_ciphertext *out,
                               const tsr_ckks_ciphertext *a, const tsr_ckks_switch_key *k) {
    TSR_REQUIRE(ev && out && a && k, "tsr_ckks_key_switch: NULL argument");
    tsr_ckks_params *p = ev->params;
    TSR_TRY(ckks_params_check(p, a->params, "the ciphertext"));
    TSR_TRY(ckks_params_check(p, out->params, "the output ciphertext"));
    TSR_TRY(ckks_params_check(p, k->params, "the switching key"));
    if (a->level < 0) return tsr_fail(TSR_ERR_INVALID_ARG, "the ciphertext is empty");
    if (a->size != 2)
        return tsr_fail(TSR_ERR_INVALID_ARG, "key switching needs a ciphertext of size 2: "
                                             "relinearize first");
    if (a->level > k->max_level)
        return tsr_fail(TSR_ERR_LEVEL,
                        "the switching key only serves levels <= %d but the ciphertext is at "
                        "level %d: drop it to level %d first",
                        k->max_level, a->level, k->max_level);
    int level = a->level;
    double scale = a->scale, mag = a->mag;
    double err = a->err + ckks_noise_keyswitch(k->q0p0 ? k->q0p0 : p, level, scale);
    tsr_ckks_ciphertext *t = NULL;
    TSR_TRY(tsr_ckks_ciphertext_create(&t, p));
    tsr_status st = ckks_ct_reserve(t, level, 2);
    if (st == TSR_OK && k->q0p0) {
        /* level 0 is the q_0 limb under both parameter sets: ModUp to {q_0, p_0}, inner
         * product, ModDown by p_0, on an evaluator of the q_0 p_0 parameters (its scratch
         * is a few polynomials, freed at once) */
        tsr_ckks_evaluator *e0 = NULL;
        st = tsr_ckks_evaluator_create(&e0, k->q0p0, NULL, NULL);
        if (st == TSR_OK)
            st = ckks_keyswitch(e0, 0, ckks_ct_poly(a, 1), &k->key, ckks_ct_poly(a, 0), NULL,
                                ckks_ct_poly(t, 0), ckks_ct_poly(t, 1));
        tsr_ckks_evaluator_free(e0);
    } else if (st == TSR_OK) {
        st = ckks_keyswitch(ev, level, ckks_ct_poly(a, 1), &k->key, ckks_ct_poly(a, 0), NULL,
                            ckks_ct_poly(t, 0), ckks_ct_poly(t, 1));
    }
    if (st == TSR_OK) {
        t->level = level;
        t->size = 2;
        t->scale = scale;
        t->err = err;
        t->mag = mag;
        t->seeded = 0;
        st = tsr_ckks_ciphertext_copy(out, t);
    }
    tsr_ckks_ciphertext_free(t);
    return st;
}
