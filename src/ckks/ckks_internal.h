/*
 * ckks/ckks_internal.h - layouts of the CKKS objects and helpers shared by
 * the files of src/ckks (not part of the public API; the tile layer may use
 * the serialization entry points in ckks/serialize.h).
 *
 * Conventions
 *  - Primes: index 0..L is the chain q_0..q_L, index L+1..L+k the special
 *    primes p_0..p_{k-1} (params->mod[], params->ntt[]).
 *  - A polynomial "at level l" is (l+1) contiguous limbs of N words (limb i
 *    modulo q_i). "Extended" (QP) polynomials at level l have l+1+k limbs:
 *    q_0..q_l, then p_0..p_{k-1}.
 *  - Ciphertexts and plaintexts are always in NTT (evaluation) form.
 *  - Key-switching keys are stored over Q_m * P (m+1+k limbs per
 *    polynomial, m = the key's max_level, L for a full key); at level
 *    l <= m the limbs 0..l and the k special limbs are used.
 */
#ifndef TSR_CKKS_INTERNAL_H
#define TSR_CKKS_INTERNAL_H

#include "tessera/ckks.h"
#include "ckks/fft.h"
#include "core/rng.h"
#include "ring/modq.h"
#include "ring/ntt.h"
#include "ring/baseconv.h"
#include "ring/rns.h"
#include "ring/sample.h"

#include <stddef.h>
#include <stdint.h>

#define CKKS_MAX_ALL (TSR_CKKS_MAX_PRIMES + TSR_CKKS_MAX_SPECIAL_PRIMES)

/** Error standard deviation of the discrete Gaussian (HE standard). */
#define CKKS_SIGMA TSR_SAMPLE_SIGMA

/** Relative tolerance for "equal" scales (rule 2 of tessera/ckks.h). */
#define CKKS_SCALE_TOL 0x1p-40

/** Domains of the seeded streams (separate the uses of one seed). */
enum {
    CKKS_DOMAIN_CT_A = 1,     /* c1 of a symmetric encryption */
    CKKS_DOMAIN_PK_A = 2,     /* a of the public key */
    CKKS_DOMAIN_KSK_A = 0x100 /* + digit: a_j of a key-switching key */
};

struct tsr_ckks_params {
    int refs; /* atomic reference count */
    tsr_ckks_param_spec spec;
    size_t n, slots;
    int log_n;
    int L;     /* top level */
    int k;     /* special primes */
    int dnum;  /* key-switching digits at the top level */
    int alpha; /* primes per digit */
    int nall;  /* L + 1 + k */
    uint64_t primes[CKKS_MAX_ALL];
    double log2_prime[CKKS_MAX_ALL];
    double scale[TSR_CKKS_MAX_PRIMES]; /* canonical scale per level */
    double log_qp;
    int secure;
    uint8_t fingerprint[16];
    ckks_fft fft;

    /* RNS bases (ring layer): all primes; Q_l per level; P; Q_l u P per level. */
    tsr_rns_basis *qp;
    tsr_rns_basis *q[TSR_CKKS_MAX_PRIMES];
    tsr_rns_basis *pb;
    tsr_rns_basis *qlp[TSR_CKKS_MAX_PRIMES];

    /* Rescale: q_l^-1 mod q_i (i < l), rows l = 1..L: inv_q[l * (L+1) + i]. */
    uint64_t *inv_q;
    /* P mod q_i and P^-1 mod q_i for i <= L (key generation, ModDown). */
    uint64_t p_mod[TSR_CKKS_MAX_PRIMES];
    uint64_t p_inv[TSR_CKKS_MAX_PRIMES];

    /* Key switching (ring layer objects, immutable):
     * modup[l * dnum + j]: digit j of a level-l polynomial (its primes) to
     *   the other primes of Q_l u P (approximate conversion + NTT);
     * moddown[l]: round(x / P) from Q_l u P to Q_l;
     * rescale[l] (l >= 1): round(x / q_l) from Q_l to Q_{l-1}. */
    tsr_baseconv **modup;
    tsr_moddown *moddown[TSR_CKKS_MAX_PRIMES];
    tsr_moddown *rescale[TSR_CKKS_MAX_PRIMES];
    /* moddown_rs[l] (l >= 1): round(x / (q_l P)) from Q_l u P to Q_{l-1}:
     * key switching and rescaling in one ModDown (mul_relin_rescale). */
    tsr_moddown *moddown_rs[TSR_CKKS_MAX_PRIMES];
};

/** Modulus of prime index i (chain, then special primes). */
static inline const tsr_modulus *ckks_mod(const tsr_ckks_params *p, int i) {
    return &p->qp->mod[i];
}

/** NTT tables of prime index i. */
static inline const tsr_ntt_table *ckks_ntt(const tsr_ckks_params *p, int i) {
    return p->qp->ntt[i];
}

/** Index in the extended basis at level l of limb j (j <= l: q_j; else special j-l-1). */
static inline int ckks_ext_prime(const tsr_ckks_params *p, int level, int j) {
    return j <= level ? j : p->L + 1 + (j - level - 1);
}

/** Number of digits used at level l: ceil((l+1) / alpha). */
static inline int ckks_digits_at(const tsr_ckks_params *p, int level) {
    return (level + 1 + p->alpha - 1) / p->alpha;
}

tsr_ckks_params *ckks_params_ref(tsr_ckks_params *p);
/**
 * Parameters with p's chain prime q_0 and one special prime p_0 of their own, the
 * largest NTT prime of at most 61 bits with log2(q_0 p_0) < max_log_modulus (same N,
 * same secret distribution and flags): a level-0 ciphertext of p is one of these too
 * (the same limb of q_0, the same NTT). The sparse encapsulation key lives over q_0 p_0
 * only (docs/SECURITY.md, "The sparse encapsulation key"). Key switching's noise there
 * is about q_0 / p_0 times the usual (the P >= digit rule is not applied).
 */
tsr_status ckks_params_create_q0p0(tsr_ckks_params **out, const tsr_ckks_params *p,
                                   unsigned max_log_modulus);
/** TSR_ERR_MISMATCH unless a and b are the same parameters (or equal fingerprints). */
tsr_status ckks_params_check(const tsr_ckks_params *a, const tsr_ckks_params *b, const char *what);

/* ---- plaintexts and ciphertexts ------------------------------------------ */

struct tsr_ckks_plaintext {
    tsr_ckks_params *params;
    int level; /* -1 while empty */
    double scale;
    double err;     /* estimated std of the slot error, in value units */
    double mag;     /* bound on |slot value| */
    size_t cap;     /* allocated limbs */
    uint64_t *data; /* (level+1) limbs of N words, NTT form */
};

struct tsr_ckks_ciphertext {
    tsr_ckks_params *params;
    int level; /* -1 while empty */
    int size;  /* 2 or 3 polynomials */
    double scale;
    double err, mag;  /* see tsr_ckks_plaintext */
    size_t cap_limbs; /* limbs allocated per polynomial (stride) */
    int cap_size;     /* polynomials allocated */
    uint64_t *data;   /* poly k at data + k * cap_limbs * N */
    int seeded;       /* c1 is the expansion of seed (symmetric encryption) */
    uint8_t seed[TSR_SEED_BYTES];
};

static inline uint64_t *ckks_ct_poly(const tsr_ckks_ciphertext *ct, int k) {
    return ct->data + (size_t)k * ct->cap_limbs * ct->params->n;
}

/** Make ct hold `size` polynomials at `level` (keeps data when it fits). */
tsr_status ckks_ct_reserve(tsr_ckks_ciphertext *ct, int level, int size);
/** Regenerate c1 of a seeded ciphertext from ct->seed (limbs 0..level). */
void ckks_ct_expand_seed(tsr_ckks_ciphertext *ct);
/** Make pt hold `level`. */
tsr_status ckks_pt_reserve(tsr_ckks_plaintext *pt, int level);

/* ---- keys ----------------------------------------------------------------- */

struct tsr_ckks_secret_key {
    tsr_ckks_params *params;
    uint8_t key_id[TSR_CKKS_KEY_ID_BYTES]; /* key-set id (random, public) */
    int8_t *coeffs;                        /* N ternary coefficients */
    uint64_t *s_ntt;                       /* s in NTT form over all L+1+k primes */
};

struct tsr_ckks_public_key {
    tsr_ckks_params *params;
    uint8_t key_id[TSR_CKKS_KEY_ID_BYTES]; /* key-set id of the secret key */
    uint8_t seed[TSR_SEED_BYTES];          /* a = expand(seed) */
    uint64_t *b;                           /* L+1+k limbs, NTT form */
    uint64_t *a;                           /* L+1+k limbs, NTT form */
};

/**
 * Hybrid key-switching key from s' to s (Han-Ki 2020): for each digit j,
 * (b_j, a_j) with b_j = -a_j*s + e_j + P * [digit j selector] * s'.
 * Level-aware: a key that serves levels <= max_level holds only the digits
 * used there (ckks_digits_at(max_level)) and only the limbs q_0..q_max_level
 * and P (`limbs` = max_level + 1 + k per polynomial; a full key has
 * max_level = L). Key switching at a level above max_level is refused.
 *
 * Seeded keys (every key generated by this version): only the b halves are
 * stored; a_j is public and uniform, regenerated from the 32-byte seed by
 * ckks_ksk_a_range (ChaCha chunks, ring/sample.h) block by block inside
 * the key-switch inner products, and never materialised whole. Expanded keys
 * (seeded = 0: read from version-2 key files, whose a_j came from the
 * per-limb XChaCha20 stream, or expanded by ckks_ksk_unseed) store a_j after
 * b_j.
 */
/**
 * Key streams of a_j (the u8 prg of a format-3 key): 0 the per-limb XChaCha20 of format 2
 * (expanded on reading), 1 the chunked ChaCha20 + Barrett rejection of seeded keys up to this
 * version, 2 the chunked ChaCha12 + Lemire rejection of seeded keys generated now (the same
 * chunks: docs/CKKS.md, "Seeded key halves"; ring/sample.h TSR_SAMPLE_STREAM_*). Keys of
 * stream 1 and 2 stay seeded in memory, each expanded with its own stream. A number is never
 * redefined: another round count or rejection rule takes a new one.
 */
enum {
    CKKS_KSK_PRG_XCHACHA20_LIMB = 0,
    CKKS_KSK_PRG_CHACHA20_CHUNK = 1,
    CKKS_KSK_PRG_CHACHA12_CHUNK = 2,
    CKKS_KSK_PRG_LAST = CKKS_KSK_PRG_CHACHA12_CHUNK
};
/** The stream of newly generated keys. */
#define CKKS_KSK_PRG_DEFAULT CKKS_KSK_PRG_CHACHA12_CHUNK

typedef struct ckks_ksk {
    int dnum;                     /* digits stored: ckks_digits_at(max_level) */
    int max_level;                /* highest level served */
    int limbs;                    /* limbs per polynomial: max_level + 1 + k */
    int seeded;                   /* 1: data holds b_0..b_{dnum-1}; a_j = expand(seed) */
    int prg;                      /* stream of a_j: CKKS_KSK_PRG_* (chunked unless format 2) */
    uint8_t seed[TSR_SEED_BYTES]; /* a_j = expand(seed, domain KSK_A + j) */
    uint64_t *data; /* seeded: dnum polys b_0, b_1, ...; else b_0, a_0, b_1, a_1, ... */
} ckks_ksk;

static inline uint64_t *ckks_ksk_b(const tsr_ckks_params *p, const ckks_ksk *k, int j) {
    return k->data + (size_t)(k->seeded ? j : 2 * j) * (size_t)k->limbs * p->n;
}
/** Stored a_j of an expanded key (NULL for a seeded key: use ckks_ksk_a_range). */
static inline uint64_t *ckks_ksk_a(const tsr_ckks_params *p, const ckks_ksk *k, int j) {
    return k->seeded ? NULL : k->data + (size_t)(2 * j + 1) * (size_t)k->limbs * p->n;
}
/** Word offset in a key polynomial of prime index pi (0..L chain, L+1.. special; chain <=
 * max_level). */
static inline size_t ckks_ksk_limb(const tsr_ckks_params *p, const ckks_ksk *k, int pi) {
    return (size_t)(pi <= p->L ? pi : k->max_level + 1 + (pi - p->L - 1)) * p->n;
}
/** Bytes the key holds in memory (the b halves only when seeded). */
static inline uint64_t ckks_ksk_memory(const tsr_ckks_params *p, const ckks_ksk *k) {
    return (uint64_t)k->dnum * (k->seeded ? 1 : 2) * (uint64_t)k->limbs * p->n * sizeof(uint64_t);
}
/** Bytes of the b halves (what a seeded key holds; what a key file stores). */
static inline uint64_t ckks_ksk_b_bytes(const tsr_ckks_params *p, const ckks_ksk *k) {
    return (uint64_t)k->dnum * (uint64_t)k->limbs * p->n * sizeof(uint64_t);
}
/**
 * Words [off, off + len) of a_j's limb of prime index pi (a limb the key
 * holds): copied from an expanded key, regenerated for a seeded one (one
 * chunk stream of the key's prg per TSR_SAMPLE_CHUNK words; thread-safe). Returns
 * the pointer to read: into the key (expanded) or out (seeded).
 */
const uint64_t *ckks_ksk_a_range(const tsr_ckks_params *p, const ckks_ksk *k, int j, int pi,
                                 size_t off, size_t len, uint64_t *out);

struct tsr_ckks_relin_key {
    tsr_ckks_params *params;
    uint8_t key_id[TSR_CKKS_KEY_ID_BYTES]; /* key-set id of the secret key */
    ckks_ksk key;
};

typedef struct ckks_galois_entry {
    uint64_t elt;   /* Galois element g (odd, < 2N) */
    uint32_t *perm; /* NTT-domain permutation: out[i] = in[perm[i]] */
    ckks_ksk key;   /* switches phi_g(s) -> s */
} ckks_galois_entry;

struct tsr_ckks_galois_keys {
    tsr_ckks_params *params;
    uint8_t key_id[TSR_CKKS_KEY_ID_BYTES]; /* key-set id of the secret key */
    size_t count, cap;
    ckks_galois_entry *e; /* sorted by elt */
};

/* ---- key helpers (keys.c), also used by the readers ---- */
/** Compute s_ntt from coeffs. */
void ckks_sk_complete(tsr_ckks_secret_key *sk);
/** Allocate a public key (zero polynomials). */
tsr_status ckks_pk_alloc(tsr_ckks_public_key **out, tsr_ckks_params *p);
/** Expand a from pk->seed; unless expand_only, also set b = e - a*s. */
tsr_status ckks_pk_complete(tsr_ckks_public_key *pk, const tsr_ckks_secret_key *sk,
                            int expand_only);
/** Allocate a key serving levels <= max_level (zeroed; b halves only when seeded). */
tsr_status ckks_ksk_alloc(const tsr_ckks_params *p, int max_level, int seeded, ckks_ksk *key);
void ckks_ksk_free(ckks_ksk *key);
/** Drop the digits and limbs above max_level (no-op when the key serves no more). */
tsr_status ckks_ksk_trim(const tsr_ckks_params *p, ckks_ksk *key, int max_level);
/**
 * Generate a key from s_from (NTT form, limbs of q_0..q_L at least) to s_to
 * (NTT form over all L+1+k primes) serving levels <= max_level: a fresh seed,
 * b_j = e_j - a_j s_to + P s_from on the limbs of digit j.
 */
tsr_status ckks_ksk_generate(const tsr_ckks_params *p, const uint64_t *s_to, const uint64_t *s_from,
                             int max_level, ckks_ksk *key);
/** ckks_ksk_generate with the given stream: CKKS_KSK_PRG_XCHACHA20_LIMB makes an expanded key
 * of the kind format-2 files hold, CKKS_KSK_PRG_CHACHA20_CHUNK a seeded key of the kind
 * earlier format-3 files hold (tests of the old-file paths). */
tsr_status ckks_ksk_generate_prg(const tsr_ckks_params *p, const uint64_t *s_to,
                                 const uint64_t *s_from, int max_level, int prg, ckks_ksk *key);
/** Fill the stored a_j of an expanded key from key->seed with the format-2 stream
 * (per-limb XChaCha20, tsr_sample_uniform). */
void ckks_ksk_expand_legacy(const tsr_ckks_params *p, ckks_ksk *key);
/** Turn a seeded key into the same key with its a_j stored (tsr_ckks_*_expand, tests). */
tsr_status ckks_ksk_unseed(const tsr_ckks_params *p, ckks_ksk *key);
tsr_status ckks_galois_alloc(tsr_ckks_galois_keys **out, tsr_ckks_params *p);
tsr_status ckks_galois_reserve(tsr_ckks_galois_keys *gk, size_t cap);
tsr_status ckks_galois_perm(const tsr_ckks_params *p, uint64_t g, uint32_t **out);
void ckks_galois_sort(tsr_ckks_galois_keys *gk);
/** out = a fresh Gaussian error over basis b (NTT form). */
tsr_status ckks_gaussian_ntt(const tsr_ckks_params *p, const tsr_rns_basis *b, uint64_t *out);

/** Entry for Galois element g, or NULL. */
const ckks_galois_entry *ckks_galois_find(const tsr_ckks_galois_keys *gk, uint64_t g);
/** Slot rotation step of Galois element g (0..slots-1), or -1 for conjugation / not a rotation. */
long ckks_galois_step(const tsr_ckks_params *p, uint64_t g);

/* ---- shared helpers -------------------------------------------------------- */

/* ---- sampling (sample.c) ---- */
/** u in {-1,0,1}^n uniform (h = 0) or with exactly h nonzero entries. */
void ckks_sample_ternary(tsr_prng *g, int8_t *out, size_t n, unsigned h);
/** Centred discrete Gaussian, sigma 3.2 (ring sampler). */
void ckks_sample_gaussian(tsr_prng *g, int64_t *out, size_t n);

/* Heuristic noise model (encoder.c): std of the slot error in value units. */
/** Error of rounding all N coefficients at the given scale. */
double ckks_noise_rounding(const tsr_ckks_params *p, double scale);
/** Estimated bits of precision of the worst slot given error std and magnitude bound. */
double ckks_precision_bits(const tsr_ckks_params *p, double err, double mag);

#endif /* TSR_CKKS_INTERNAL_H */
