/*
 * tessera/ckks.h - RNS-CKKS approximate homomorphic encryption: parameters,
 * encoder, keys, encryption, the evaluator and serialization.
 *
 * References:
 *  - J. H. Cheon, A. Kim, M. Kim, Y. Song, "Homomorphic Encryption for
 *    Arithmetic of Approximate Numbers", ASIACRYPT 2017 (CKKS; encoding by the
 *    canonical embedding and its "special FFT").
 *  - J. H. Cheon, K. Han, A. Kim, M. Kim, Y. Song, "A Full RNS Variant of
 *    Approximate Homomorphic Encryption", SAC 2018 (RNS-CKKS, rescaling by
 *    one prime, fast basis conversion).
 *  - K. Han, D. Ki, "Better Bootstrapping for Approximate Homomorphic
 *    Encryption", CT-RSA 2020 (hybrid key switching with dnum digits and a
 *    special modulus P).
 *  - S. Halevi, V. Shoup, "Faster Homomorphic Linear Transformations in
 *    HElib", CRYPTO 2018 (hoisted rotations).
 *  - M. Albrecht et al., "Homomorphic Encryption Standard", 2018/2019 (the
 *    128-bit security bounds on log2(QP)).
 *
 * Objects and ownership
 * ---------------------
 * Every object is an opaque handle made by a `_create` function and released
 * by the matching `_free`, which accepts NULL. Objects made for one parameter
 * set keep a reference to it (parameters are reference counted), so freeing
 * the parameters early is safe. Mixing objects of different parameter sets
 * fails with TSR_ERR_MISMATCH.
 *
 * Thread-safety
 * -------------
 *  - tsr_ckks_params, keys (secret, public, relinearization, Galois):
 *    immutable after creation; any number of threads may use one at once.
 *    The exceptions are the explicit key mutators tsr_ckks_relin_key_trim,
 *    tsr_ckks_galois_keys_add, _add_level and _trim: they replace the key's
 *    storage in place, so they need exclusive access (no evaluator may be
 *    running an operation with that key while they run; create the
 *    evaluators afterwards, or call them between operations).
 *  - tsr_ckks_encoder, tsr_ckks_evaluator: own scratch memory; use one per
 *    thread (creating one is cheap). They only read the keys they were given.
 *  - tsr_ckks_plaintext, tsr_ckks_ciphertext: plain data; a thread may read
 *    one while others read it too, but writes need exclusive access.
 *  - Operations use OpenMP threads over RNS limbs internally (see
 *    tsr_set_num_threads); results are bit-identical for any thread count.
 *
 * Levels and scales
 * -----------------
 * A ciphertext at level l lives modulo Q_l = q_0 * ... * q_l and has l
 * multiplicative levels left. Each level has a canonical scale:
 * Delta_L = 2^scale_bits and Delta_{l-1} = Delta_l^2 / q_l, so the result of
 * "multiply two level-l ciphertexts at Delta_l, then rescale" has exactly
 * Delta_{l-1} (tsr_ckks_params_scale). The primes are chosen so Delta_l stays
 * within a small fraction of 2^scale_bits at every level. Encoding with
 * scale 0 uses the canonical scale of the requested level. A mixed chain
 * (spec.low_levels = m > 0) restarts at level m: Delta_m = 2^low_scale_bits
 * and the recursion continues below it, so a product rescaled from level
 * m+1 to m lands near 2^scale_bits, not on Delta_m; multiplying by a
 * constant, tsr_ckks_adjust, or a linear transform lands on Delta_m.
 *
 * Rules applied by the evaluator (documented again at each function):
 *  1. Binary operations (add, sub, mul, on ciphertexts or ciphertext and
 *     plaintext) whose operands are at different levels first bring the
 *     higher operand down to the lower level. If its scale then differs from
 *     the other operand's, it is also brought to that scale exactly, by one
 *     multiplication with an integer constant and one rescale (Kim et al.'s
 *     "reduced-error" level adjustment); this uses the level difference and
 *     costs no depth of the result. Only the ciphertext operand is ever
 *     adjusted: a plaintext at a lower level than the ciphertext drops the
 *     ciphertext to the plaintext's level (its extra limbs are discarded,
 *     its scale is kept, so an addition still needs the plaintext encoded at
 *     the ciphertext's scale, rule 2).
 *  2. Additions and subtractions at the same level need scales equal to a
 *     relative 2^-40; otherwise they fail with TSR_ERR_SCALE (encode
 *     plaintexts at tsr_ckks_ciphertext_scale() of the ciphertext; rescale
 *     products before adding them to fresh ciphertexts).
 *  3. Multiplications at the same level accept any scales; the product's
 *     scale is the product of the scales. It must stay below Q_l / 2^4
 *     (else TSR_ERR_SCALE: "rescale first").
 *  4. Multiplication by a constant encodes the constant at the scale that
 *     makes the following rescale land on the canonical scale of the next
 *     level (at the canonical scale that is Delta_l itself).
 *  5. Rescaling divides by q_l and moves to level l-1. At level 0 there is
 *     no depth left: TSR_ERR_LEVEL.
 *  6. Dropping levels (tsr_ckks_drop_level) keeps the scale unchanged.
 *
 * Precision estimates: ciphertexts and plaintexts carry a heuristic
 * estimate of the error standard deviation (from the noise models in the
 * CKKS papers, assuming independent errors), updated by every operation;
 * decoding turns it into an estimate of the bits of precision.
 */
#ifndef TESSERA_CKKS_H
#define TESSERA_CKKS_H

#include "tessera/common.h"

#include <stdio.h>

TSR_BEGIN_DECLS

/* ======================================================================== */
/* Parameters                                                                */
/* ======================================================================== */

/** CKKS parameters plus all precomputed tables (NTT, basis conversion, FFT). */
typedef struct tsr_ckks_params tsr_ckks_params;

/**
 * Accept parameter sets below 128-bit security (HomomorphicEncryption.org
 * table). For tests and experiments only; the CLI spells it
 * --insecure-parameters-for-testing and prints a loud warning.
 */
#define TSR_CKKS_ALLOW_INSECURE_PARAMETERS 0x1u

/** Distribution of secret keys. */
typedef enum tsr_ckks_secret_dist {
    TSR_CKKS_SECRET_TERNARY = 0,  /**< uniform over {-1, 0, 1}^N (the default) */
    TSR_CKKS_SECRET_FIXED_HW = 1, /**< exactly h nonzero coefficients in {-1, 1} */
} tsr_ckks_secret_dist;

/** Supported log2(N): 4..17. Below 2^10 only with the insecure flag (tests, fuzzing). */
#define TSR_CKKS_MIN_LOG_N 4
#define TSR_CKKS_MAX_LOG_N 17
/** Largest number of primes in the chain q_0..q_L. */
#define TSR_CKKS_MAX_PRIMES 64
/** Largest number of special primes. */
#define TSR_CKKS_MAX_SPECIAL_PRIMES 16

/**
 * A custom parameter set. The chain is q_0 (first_prime_bits), then
 * q_1..q_L (about scale_bits each, chosen to keep the canonical scales near
 * 2^scale_bits), then special primes p_0..p_{k-1} (special_prime_bits each).
 * All primes are NTT-friendly (q = 1 mod 2N) and distinct.
 */
typedef struct tsr_ckks_param_spec {
    unsigned log_n;              /**< ring degree N = 2^log_n: 4..17 */
    unsigned first_prime_bits;   /**< bits of q_0: scale_bits+1..61 */
    unsigned scale_bits;         /**< log2 of the top-level scale: 20..60 */
    unsigned levels;             /**< L: rescalings available (L+1 primes): 0..63 */
    unsigned special_primes;     /**< k >= 1: number of special primes (P) */
    unsigned special_prime_bits; /**< bits of each special prime: 20..61 */
    /**
     * Number of key-switching digits. 0 = ceil((L+1)/k), the smallest value
     * for which every digit's modulus is at most about P. Each digit holds
     * alpha = ceil((L+1)/dnum) primes.
     */
    unsigned dnum;
    tsr_ckks_secret_dist secret; /**< secret distribution */
    unsigned hamming_weight;     /**< h for TSR_CKKS_SECRET_FIXED_HW, else 0 */
    uint32_t flags;              /**< TSR_CKKS_ALLOW_INSECURE_PARAMETERS or 0 */
    /**
     * Mixed chain: the bottom low_levels chain primes q_1..q_low_levels sit
     * near 2^low_scale_bits and level low_levels has canonical scale
     * 2^low_scale_bits exactly (the network levels, e.g. ten of 40 bits
     * below bootstrapping's 60-bit levels); q_low_levels+1..q_L follow
     * scale_bits as usual. 0..levels-1; 0 (with low_scale_bits 0) is the
     * uniform chain every spec without these fields means.
     */
    unsigned low_levels;
    unsigned low_scale_bits; /**< 20..60 when low_levels > 0, else 0 */
} tsr_ckks_param_spec;

/**
 * Build parameters from a custom spec: generates the primes, checks the
 * 128-bit security bound on log2(QP) for the secret distribution, and
 * precomputes every table. Fails with TSR_ERR_INVALID_ARG for out-of-range
 * fields (the message names the field) and TSR_ERR_INSECURE for sets below
 * 128-bit security unless spec->flags has TSR_CKKS_ALLOW_INSECURE_PARAMETERS.
 * Free with tsr_ckks_params_free.
 */
TSR_API tsr_status tsr_ckks_params_create(tsr_ckks_params **out, const tsr_ckks_param_spec *spec);

/**
 * Fill spec with a named preset (see tsr_ckks_preset_name). Unknown names
 * fail with TSR_ERR_NOT_FOUND listing the valid ones.
 */
TSR_API tsr_status tsr_ckks_preset_spec(const char *name, tsr_ckks_param_spec *spec);

/** Shorthand: tsr_ckks_preset_spec followed by tsr_ckks_params_create. */
TSR_API tsr_status tsr_ckks_params_create_preset(tsr_ckks_params **out, const char *name);

/** Name of preset i (0-based), or NULL past the last one. */
TSR_API const char *tsr_ckks_preset_name(size_t i);
/** One-line description of preset i, or NULL past the last one. */
TSR_API const char *tsr_ckks_preset_description(size_t i);

/** Release a reference to params (objects made from it hold their own). NULL is a no-op. */
TSR_API void tsr_ckks_params_free(tsr_ckks_params *p);

/** The spec the parameters were built from (dnum resolved). */
TSR_API void tsr_ckks_params_spec(const tsr_ckks_params *p, tsr_ckks_param_spec *spec);
/** Ring degree N. */
TSR_API size_t tsr_ckks_params_n(const tsr_ckks_params *p);
/** Number of complex slots, N/2. */
TSR_API size_t tsr_ckks_params_slots(const tsr_ckks_params *p);
/** Top level L (fresh ciphertexts are at level L). */
TSR_API int tsr_ckks_params_max_level(const tsr_ckks_params *p);
/** Canonical scale of level l (0 <= l <= L); see "Levels and scales". */
TSR_API double tsr_ckks_params_scale(const tsr_ckks_params *p, int level);
/** Prime q_i of the chain, 0 <= i <= L. */
TSR_API uint64_t tsr_ckks_params_prime(const tsr_ckks_params *p, int i);
/** Number of special primes k. */
TSR_API int tsr_ckks_params_special_count(const tsr_ckks_params *p);
/** Special prime p_i, 0 <= i < k. */
TSR_API uint64_t tsr_ckks_params_special_prime(const tsr_ckks_params *p, int i);
/** Number of key-switching digits (dnum). */
TSR_API int tsr_ckks_params_dnum(const tsr_ckks_params *p);
/** log2(Q_L * P), the quantity bounded by the security table. */
TSR_API double tsr_ckks_params_log_qp(const tsr_ckks_params *p);
/** log2(Q_l), the modulus at level l. */
TSR_API double tsr_ckks_params_log_q(const tsr_ckks_params *p, int level);
/**
 * Largest log2(QP) at 128-bit classical security for ring degree 2^log_n and
 * the given secret distribution (0 if no bound is known: such sets count as
 * insecure).
 */
TSR_API double tsr_ckks_security_bound(unsigned log_n, tsr_ckks_secret_dist secret,
                                       unsigned hamming_weight);
/** 1 if the set meets the 128-bit bound, 0 if it was built with the insecure flag. */
TSR_API int tsr_ckks_params_is_secure(const tsr_ckks_params *p);
/**
 * Parameter fingerprint: BLAKE2b-128 of a canonical encoding of N, the
 * primes, dnum, the scale and the secret and error distributions. Every
 * serialized object carries it.
 */
TSR_API void tsr_ckks_params_fingerprint(const tsr_ckks_params *p, uint8_t out[16]);
/** Print a human summary (N, primes, levels, log QP vs the bound, dnum) to fp. */
TSR_API void tsr_ckks_params_print(const tsr_ckks_params *p, FILE *fp);

/* ======================================================================== */
/* Plaintexts, ciphertexts and the encoder                                    */
/* ======================================================================== */

typedef struct tsr_ckks_plaintext tsr_ckks_plaintext;
typedef struct tsr_ckks_ciphertext tsr_ckks_ciphertext;
typedef struct tsr_ckks_encoder tsr_ckks_encoder;

/** Use the top level (for `level` arguments). */
#define TSR_CKKS_TOP_LEVEL (-1)

/**
 * An empty plaintext for p (encode fills it). Free with
 * tsr_ckks_plaintext_free.
 */
TSR_API tsr_status tsr_ckks_plaintext_create(tsr_ckks_plaintext **out, tsr_ckks_params *p);
/** Free a plaintext (and its reference to the parameters). NULL is a no-op. */
TSR_API void tsr_ckks_plaintext_free(tsr_ckks_plaintext *pt);
/** Level of pt (-1 while empty). */
TSR_API int tsr_ckks_plaintext_level(const tsr_ckks_plaintext *pt);
/** Scale of pt. */
TSR_API double tsr_ckks_plaintext_scale(const tsr_ckks_plaintext *pt);

/**
 * An empty ciphertext for p (operations fill it and size it as needed).
 * Free with tsr_ckks_ciphertext_free.
 */
TSR_API tsr_status tsr_ckks_ciphertext_create(tsr_ckks_ciphertext **out, tsr_ckks_params *p);
/** Free a ciphertext. NULL is a no-op. */
TSR_API void tsr_ckks_ciphertext_free(tsr_ckks_ciphertext *ct);
/** Deep copy src into dst (same parameters). */
TSR_API tsr_status tsr_ckks_ciphertext_copy(tsr_ckks_ciphertext *dst,
                                            const tsr_ckks_ciphertext *src);
/** A new deep copy of src. */
TSR_API tsr_status tsr_ckks_ciphertext_clone(tsr_ckks_ciphertext **out,
                                             const tsr_ckks_ciphertext *src);
/** Level of ct (-1 while empty). */
TSR_API int tsr_ckks_ciphertext_level(const tsr_ckks_ciphertext *ct);
/** Scale of ct. */
TSR_API double tsr_ckks_ciphertext_scale(const tsr_ckks_ciphertext *ct);
/**
 * Reinterpret the scale of ct (no arithmetic on the data): decoding will
 * divide by the new scale. For advanced uses (bootstrapping, folding a
 * constant factor into the scale). scale must be positive and finite.
 */
TSR_API tsr_status tsr_ckks_ciphertext_set_scale(tsr_ckks_ciphertext *ct, double scale);
/** Number of polynomials: 2, or 3 after a multiplication without relinearization. */
TSR_API int tsr_ckks_ciphertext_size(const tsr_ckks_ciphertext *ct);
/** Parameters ct belongs to (borrowed). */
TSR_API tsr_ckks_params *tsr_ckks_ciphertext_params(const tsr_ckks_ciphertext *ct);
/** Estimated bits of precision of ct's slots (see "Precision estimates"). */
TSR_API double tsr_ckks_ciphertext_precision_estimate(const tsr_ckks_ciphertext *ct);

/** An encoder with its scratch memory; one per thread. */
TSR_API tsr_status tsr_ckks_encoder_create(tsr_ckks_encoder **out, tsr_ckks_params *p);
/** Free an encoder and its scratch. NULL is a no-op. */
TSR_API void tsr_ckks_encoder_free(tsr_ckks_encoder *e);

/**
 * Encode n complex values (interleaved re, im: 2n doubles; layout-compatible
 * with `double _Complex[n]`) into slots 0..n-1 of pt (the others are 0), at
 * `level` (TSR_CKKS_TOP_LEVEL for L) and `scale` (0 for the canonical scale
 * of that level). n <= slots. Uses the canonical embedding with the special
 * FFT (Cheon-Kim-Kim-Song 2017, section 3). The result is in NTT form.
 * Fails with TSR_ERR_SCALE if a scaled coefficient would not fit in Q_level
 * (the message is too large for this scale and level) and with
 * TSR_ERR_INVALID_ARG for non-finite values.
 */
TSR_API tsr_status tsr_ckks_encode_complex(tsr_ckks_encoder *e, tsr_ckks_plaintext *pt,
                                           const double *values, size_t n, int level, double scale);
/** As tsr_ckks_encode_complex with real values (imaginary parts 0). */
TSR_API tsr_status tsr_ckks_encode_real(tsr_ckks_encoder *e, tsr_ckks_plaintext *pt,
                                        const double *values, size_t n, int level, double scale);
/**
 * Decode the first n slots of pt into values (2n doubles, interleaved re,
 * im). The coefficients are reconstructed exactly with the CRT over Q_level
 * and centred before the FFT. If precision_bits is not NULL it receives the
 * estimated bits of precision (log2 of the slot magnitude unit over the
 * estimated error; 0 when the error estimate exceeds 1).
 */
TSR_API tsr_status tsr_ckks_decode_complex(tsr_ckks_encoder *e, const tsr_ckks_plaintext *pt,
                                           double *values, size_t n, double *precision_bits);
/** As tsr_ckks_decode_complex keeping the real parts only (n doubles). */
TSR_API tsr_status tsr_ckks_decode_real(tsr_ckks_encoder *e, const tsr_ckks_plaintext *pt,
                                        double *values, size_t n, double *precision_bits);

/* ======================================================================== */
/* Keys                                                                      */
/* ======================================================================== */

typedef struct tsr_ckks_secret_key tsr_ckks_secret_key;
typedef struct tsr_ckks_public_key tsr_ckks_public_key;
typedef struct tsr_ckks_relin_key tsr_ckks_relin_key;
typedef struct tsr_ckks_galois_keys tsr_ckks_galois_keys;

/*
 * Key sets and their ids
 * ----------------------
 * A secret key and every key made from it (public, relinearization, Galois)
 * form a key set. Its id is TSR_CKKS_KEY_ID_BYTES bytes drawn from the OS
 * CSPRNG when the secret key is created and copied into every key made from
 * it; key files and evaluation-key bundles record it, and so do encrypted
 * data files built on top (tsr_nn_ct_save). It is public and reveals
 * nothing about the secret. It tells key sets apart (two keygen runs get the
 * same id with probability 2^-256) so that data encrypted under one key set
 * is refused, with a clear message, by keys of another instead of decrypting
 * to garbage; it is no authenticator (a file's writer chooses what it
 * records). A random id rather than a hash of key material, because a key
 * set with no evaluation key (a purely linear network) needs one too.
 */
#define TSR_CKKS_KEY_ID_BYTES 32

/**
 * Generate a secret key from the OS CSPRNG, with the distribution of p
 * (uniform ternary, or fixed Hamming weight). Free with
 * tsr_ckks_secret_key_free, which wipes it.
 */
TSR_API tsr_status tsr_ckks_secret_key_create(tsr_ckks_secret_key **out, tsr_ckks_params *p);
/** Wipe and free. NULL is a no-op. */
TSR_API void tsr_ckks_secret_key_free(tsr_ckks_secret_key *sk);
/** The key-set id of sk (fresh random bytes drawn by tsr_ckks_secret_key_create). */
TSR_API void tsr_ckks_secret_key_id(const tsr_ckks_secret_key *sk,
                                    uint8_t id[TSR_CKKS_KEY_ID_BYTES]);

/**
 * Public key (b, a) = (-a*s + e, a) over Q_L * P (the special primes let
 * encryption divide its noise by P). Free with tsr_ckks_public_key_free.
 */
TSR_API tsr_status tsr_ckks_public_key_create(tsr_ckks_public_key **out,
                                              const tsr_ckks_secret_key *sk);
/** Free a public key. NULL is a no-op. */
TSR_API void tsr_ckks_public_key_free(tsr_ckks_public_key *pk);
/** The key-set id of pk (that of the secret key it was made from). */
TSR_API void tsr_ckks_public_key_id(const tsr_ckks_public_key *pk,
                                    uint8_t id[TSR_CKKS_KEY_ID_BYTES]);

/**
 * Relinearization key: a hybrid key-switching key from s^2 to s with dnum
 * digits over Q_L * P (Han-Ki 2020). Its uniform halves come from a seed, so
 * serializing it stores half the data.
 */
TSR_API tsr_status tsr_ckks_relin_key_create(tsr_ckks_relin_key **out,
                                             const tsr_ckks_secret_key *sk);
/**
 * A relinearization key that serves levels <= max_level only
 * (TSR_CKKS_TOP_LEVEL: every level, as tsr_ckks_relin_key_create). It holds
 * the digits used at max_level and the limbs q_0..q_max_level and P: a key for
 * level m < L takes ceil((m+1)/alpha) (m+1+k) / (dnum (L+1+k)) of the full
 * key's memory. Products above max_level fail with TSR_ERR_LEVEL. Such keys
 * are serialized like full keys (the file stores max_level and only the
 * digits and limbs kept).
 */
TSR_API tsr_status tsr_ckks_relin_key_create_level(tsr_ckks_relin_key **out,
                                                   const tsr_ckks_secret_key *sk, int max_level);
/** The highest level rk serves (L for a key of tsr_ckks_relin_key_create). */
TSR_API int tsr_ckks_relin_key_max_level(const tsr_ckks_relin_key *rk);
/**
 * Bytes rk holds in memory; 0 for NULL. A generated or format-3 key holds the
 * b halves of its stored digits and a 32-byte seed: the a halves are
 * regenerated block by block (ChaCha12; ChaCha20 for keys written before it,
 * docs/CKKS.md) during every key switch, which costs CPU (docs/BENCHMARKS.md:
 * 12.1 % of a bootstrapping at N = 2^16 with ChaCha20 keys, 6.4 % at N = 2^15
 * with ChaCha12 keys). A
 * key read from a format-2 file, or expanded by tsr_ckks_relin_key_expand,
 * holds both halves.
 */
TSR_API uint64_t tsr_ckks_relin_key_memory(const tsr_ckks_relin_key *rk);
/**
 * Limit rk to levels <= max_level in place, freeing the digits and limbs
 * above it (e.g. after loading a serialized full key). A key already limited
 * lower is unchanged. The kept limbs are the key's own: results at levels <=
 * max_level are bit-identical to those of the full key. This mutates rk: no
 * evaluator may use rk while it runs (create the evaluators afterwards, or
 * call it between operations).
 */
TSR_API tsr_status tsr_ckks_relin_key_trim(tsr_ckks_relin_key *rk, int max_level);
/**
 * Store the a halves of rk in memory (regenerated once from its seed) instead
 * of regenerating them during every key switch: the key's memory doubles
 * (tsr_ckks_relin_key_memory) and key switching no longer spends CPU on the
 * ChaCha12 stream (6.4 % of a bootstrapping at N = 2^15, 12.1 % at N = 2^16
 * with ChaCha20 keys: docs/BENCHMARKS.md). Results are bit-identical and the key serializes to
 * the same bytes. A no-op for a key already expanded. This mutates rk: no
 * evaluator may use rk while it runs.
 */
TSR_API tsr_status tsr_ckks_relin_key_expand(tsr_ckks_relin_key *rk);
/** Free a relinearization key. NULL is a no-op. */
TSR_API void tsr_ckks_relin_key_free(tsr_ckks_relin_key *rk);
/** The key-set id of rk (that of the secret key it was made from). */
TSR_API void tsr_ckks_relin_key_id(const tsr_ckks_relin_key *rk, uint8_t id[TSR_CKKS_KEY_ID_BYTES]);

/** Also generate the conjugation key (for tsr_ckks_galois_keys_create's flags). */
#define TSR_CKKS_GALOIS_CONJUGATE 0x1u
/** Also generate keys for every rotation by +2^i (i < log2(slots)). */
#define TSR_CKKS_GALOIS_POW2 0x2u
/** Also generate keys for every rotation by -2^i. */
#define TSR_CKKS_GALOIS_POW2_NEG 0x4u

/**
 * Galois (rotation / conjugation) keys for the given rotation steps (taken
 * modulo the slot count; 0 is ignored; duplicates are fine) plus the sets
 * selected by flags. Shows a progress line on stderr for large sets
 * (TSR_PROGRESS=0 silences it). steps may be NULL when n_steps is 0.
 */
TSR_API tsr_status tsr_ckks_galois_keys_create(tsr_ckks_galois_keys **out,
                                               const tsr_ckks_secret_key *sk, const int *steps,
                                               size_t n_steps, uint32_t flags);
/**
 * Add keys for more steps / flags to an existing set (same secret key: a
 * secret key of another key set fails with TSR_ERR_MISMATCH).
 * This mutates gk: no evaluator may use gk while it runs (create the
 * evaluators afterwards, or call it between operations).
 */
TSR_API tsr_status tsr_ckks_galois_keys_add(tsr_ckks_galois_keys *gk, const tsr_ckks_secret_key *sk,
                                            const int *steps, size_t n_steps, uint32_t flags);
/**
 * tsr_ckks_galois_keys_add with keys that serve levels <= max_level only
 * (TSR_CKKS_TOP_LEVEL: every level), stored without the digits and limbs
 * above it (see tsr_ckks_relin_key_create_level): for rotations used only
 * low in the chain, e.g. bootstrapping's SlotsToCoeffs. A step already in
 * the set keeps its key (whatever its level). Rotating a ciphertext above a
 * key's level fails with TSR_ERR_LEVEL; such keys are serialized with their
 * level (only the digits and limbs kept).
 */
TSR_API tsr_status tsr_ckks_galois_keys_add_level(tsr_ckks_galois_keys *gk,
                                                  const tsr_ckks_secret_key *sk, const int *steps,
                                                  size_t n_steps, uint32_t flags, int max_level);
/**
 * The highest level the key for rotation by step serves (L for a full key;
 * step 0: L), or -1 if gk has no key for it.
 */
TSR_API int tsr_ckks_galois_keys_rotation_level(const tsr_ckks_galois_keys *gk, int step);
/**
 * Limit the key of rotation steps[i] to levels <= levels[i] (steps gk has no
 * key for are skipped) and, unless conj_level is TSR_CKKS_TOP_LEVEL, the
 * conjugation key to conj_level, in place, as tsr_ckks_relin_key_trim. This
 * mutates gk: no evaluator may use gk while it runs (create the evaluators
 * afterwards, or call it between operations).
 */
TSR_API tsr_status tsr_ckks_galois_keys_trim(tsr_ckks_galois_keys *gk, const int *steps,
                                             const int *levels, size_t n_steps, int conj_level);
/** Bytes the keys of gk hold in memory (as tsr_ckks_relin_key_memory: the b halves of seeded
 * keys, both halves of keys read from format-2 files); 0 for NULL. */
TSR_API uint64_t tsr_ckks_galois_keys_memory(const tsr_ckks_galois_keys *gk);
/**
 * tsr_ckks_relin_key_expand for every key of gk (memory for CPU: see there).
 * Keys added to gk afterwards are seeded again. On TSR_ERR_NOMEM the keys
 * expanded so far stay expanded and gk stays usable. This mutates gk: no
 * evaluator may use gk while it runs.
 */
TSR_API tsr_status tsr_ckks_galois_keys_expand(tsr_ckks_galois_keys *gk);
/** Free a Galois key set (no evaluator may still use it). NULL is a no-op. */
TSR_API void tsr_ckks_galois_keys_free(tsr_ckks_galois_keys *gk);
/** The key-set id of gk (that of the secret key it was made from). */
TSR_API void tsr_ckks_galois_keys_id(const tsr_ckks_galois_keys *gk,
                                     uint8_t id[TSR_CKKS_KEY_ID_BYTES]);
/** 1 if gk holds the key for rotation by step (mod slots), else 0. */
TSR_API int tsr_ckks_galois_keys_has_rotation(const tsr_ckks_galois_keys *gk, int step);
/** 1 if gk holds the conjugation key. */
TSR_API int tsr_ckks_galois_keys_has_conjugate(const tsr_ckks_galois_keys *gk);
/** Number of keys held. */
TSR_API size_t tsr_ckks_galois_keys_count(const tsr_ckks_galois_keys *gk);
/**
 * Rotation steps held, in increasing order of step in [1, slots): writes up
 * to cap of them to steps and returns how many there are.
 */
TSR_API size_t tsr_ckks_galois_keys_steps(const tsr_ckks_galois_keys *gk, int *steps, size_t cap);

/* ======================================================================== */
/* Encryption and decryption                                                 */
/* ======================================================================== */

/**
 * Encrypt pt with the public key: computes u*pk + (e0, e1) over Q_l * P and
 * divides by P (ModDown), so the fresh noise is about the rounding error
 * only, then adds pt. out takes pt's level and scale. Randomness from the OS
 * CSPRNG.
 */
TSR_API tsr_status tsr_ckks_encrypt(const tsr_ckks_public_key *pk, tsr_ckks_ciphertext *out,
                                    const tsr_ckks_plaintext *pt);
/**
 * Encrypt pt with the secret key, in seeded form: c1 = a is expanded from a
 * fresh 32-byte seed and c0 = -a*s + e + pt. Serializing the result stores
 * the seed instead of a (half the size) as long as c1 is untouched.
 */
TSR_API tsr_status tsr_ckks_encrypt_symmetric(const tsr_ckks_secret_key *sk,
                                              tsr_ckks_ciphertext *out,
                                              const tsr_ckks_plaintext *pt);
/** Decrypt ct (size 2 or 3) into pt at ct's level and scale. */
TSR_API tsr_status tsr_ckks_decrypt(const tsr_ckks_secret_key *sk, tsr_ckks_plaintext *out,
                                    const tsr_ckks_ciphertext *ct);

/* ======================================================================== */
/* Evaluator                                                                 */
/* ======================================================================== */

typedef struct tsr_ckks_evaluator tsr_ckks_evaluator;

/**
 * An evaluator for p using the given keys (either may be NULL; they are
 * borrowed and must outlive the evaluator; they are only read). Owns scratch
 * memory: one evaluator per thread. Keys of two different key sets fail
 * with TSR_ERR_MISMATCH. With two or more threads, bootstrapping's EvalMod
 * runs its second half on an internal second evaluator: while EvalMod runs
 * that adds a second set of key-switching scratch (about 0.2 GiB at
 * N = 2^16), freed at its end; the rest of that evaluator's scratch (two
 * polynomials over Q_L and its temporaries) stays until this one is freed.
 * With T >= 3 threads each full-slot EvalMod also creates one POSIX thread
 * and joins it before returning, plus that thread's own OpenMP pool of
 * T/2 - 1 workers, created and torn down each call (mind RLIMIT_NPROC,
 * seccomp filters and OMP_THREAD_LIMIT). If the thread cannot be created,
 * the two halves run one after the other on the calling thread. Under
 * OMP_PROC_BIND the two halves' teams share places (cores): see
 * docs/CIRCUITS.md.
 */
TSR_API tsr_status tsr_ckks_evaluator_create(tsr_ckks_evaluator **out, tsr_ckks_params *p,
                                             const tsr_ckks_relin_key *rk,
                                             const tsr_ckks_galois_keys *gk);
/** Free an evaluator and its scratch (not the keys it borrowed). NULL is a no-op. */
TSR_API void tsr_ckks_evaluator_free(tsr_ckks_evaluator *ev);

/*
 * In every operation below `out` may alias any input. Operands must belong
 * to the evaluator's parameters (else TSR_ERR_MISMATCH). Level and scale
 * rules: see the top of this header.
 */

/** out = a + b (rules 1 and 2). */
TSR_API tsr_status tsr_ckks_add(tsr_ckks_evaluator *ev, tsr_ckks_ciphertext *out,
                                const tsr_ckks_ciphertext *a, const tsr_ckks_ciphertext *b);
/** out = a - b (rules 1 and 2). */
TSR_API tsr_status tsr_ckks_sub(tsr_ckks_evaluator *ev, tsr_ckks_ciphertext *out,
                                const tsr_ckks_ciphertext *a, const tsr_ckks_ciphertext *b);
/** out = -a. */
TSR_API tsr_status tsr_ckks_negate(tsr_ckks_evaluator *ev, tsr_ckks_ciphertext *out,
                                   const tsr_ckks_ciphertext *a);
/** out = a + pt (scales equal, rule 2); at min(a's level, pt's level) (rule 1). */
TSR_API tsr_status tsr_ckks_add_plain(tsr_ckks_evaluator *ev, tsr_ckks_ciphertext *out,
                                      const tsr_ckks_ciphertext *a, const tsr_ckks_plaintext *pt);
/** out = a - pt. */
TSR_API tsr_status tsr_ckks_sub_plain(tsr_ckks_evaluator *ev, tsr_ckks_ciphertext *out,
                                      const tsr_ckks_ciphertext *a, const tsr_ckks_plaintext *pt);
/**
 * out = a * pt (slot-wise); out's scale = a's scale * pt's scale (rule 3),
 * at min(a's level, pt's level) (rule 1).
 */
TSR_API tsr_status tsr_ckks_mul_plain(tsr_ckks_evaluator *ev, tsr_ckks_ciphertext *out,
                                      const tsr_ckks_ciphertext *a, const tsr_ckks_plaintext *pt);
/** out = a + (re + i*im) in every slot (encoded exactly at a's scale). */
TSR_API tsr_status tsr_ckks_add_const(tsr_ckks_evaluator *ev, tsr_ckks_ciphertext *out,
                                      const tsr_ckks_ciphertext *a, double re, double im);
/** out = a - (re + i*im) in every slot (tsr_ckks_add_const of the negation). */
TSR_API tsr_status tsr_ckks_sub_const(tsr_ckks_evaluator *ev, tsr_ckks_ciphertext *out,
                                      const tsr_ckks_ciphertext *a, double re, double im);
/**
 * out = a * (re + i*im) in every slot. The constant is encoded at the scale
 * that makes a following rescale land on the canonical scale of level l-1
 * (rule 4), so call tsr_ckks_rescale next. Needs level >= 1 (TSR_ERR_LEVEL).
 */
TSR_API tsr_status tsr_ckks_mul_const(tsr_ckks_evaluator *ev, tsr_ckks_ciphertext *out,
                                      const tsr_ckks_ciphertext *a, double re, double im);
/**
 * out = a * (re + i*im) with the constant encoded at an explicit scale: the
 * integers round(re * const_scale) and round(im * const_scale) multiply the
 * ciphertext, and out's scale is a's scale * const_scale. For callers that
 * manage scales themselves (tsr_ckks_mul_const picks the scale by rule 4).
 * const_scale >= 1 and finite; the product scale must stay below Q_l / 2
 * (TSR_ERR_SCALE, or TSR_ERR_LEVEL at level 0).
 */
TSR_API tsr_status tsr_ckks_mul_const_scaled(tsr_ckks_evaluator *ev, tsr_ckks_ciphertext *out,
                                             const tsr_ckks_ciphertext *a, double re, double im,
                                             double const_scale);
/**
 * out = a * k for an integer k (|k| < 2^62): exact, no scale change and no
 * rescale needed.
 */
TSR_API tsr_status tsr_ckks_mul_int(tsr_ckks_evaluator *ev, tsr_ckks_ciphertext *out,
                                    const tsr_ckks_ciphertext *a, int64_t k);
/**
 * out = a * b without relinearization (out has 3 polynomials; rules 1 and
 * 3). a and b must have size 2.
 */
TSR_API tsr_status tsr_ckks_mul(tsr_ckks_evaluator *ev, tsr_ckks_ciphertext *out,
                                const tsr_ckks_ciphertext *a, const tsr_ckks_ciphertext *b);
/** Relinearize a size-3 ciphertext back to size 2 (needs the relinearization key). */
TSR_API tsr_status tsr_ckks_relinearize(tsr_ckks_evaluator *ev, tsr_ckks_ciphertext *out,
                                        const tsr_ckks_ciphertext *a);
/** out = relinearize(a * b): the usual multiplication. */
TSR_API tsr_status tsr_ckks_mul_relin(tsr_ckks_evaluator *ev, tsr_ckks_ciphertext *out,
                                      const tsr_ckks_ciphertext *a, const tsr_ckks_ciphertext *b);
/** out = rescale(relinearize(a * b)). */
TSR_API tsr_status tsr_ckks_mul_relin_rescale(tsr_ckks_evaluator *ev, tsr_ckks_ciphertext *out,
                                              const tsr_ckks_ciphertext *a,
                                              const tsr_ckks_ciphertext *b);
/**
 * Divide by the last prime q_l with rounding (Cheon-Han-Kim-Kim-Song 2018):
 * level l -> l-1, scale / q_l. TSR_ERR_LEVEL at level 0.
 */
TSR_API tsr_status tsr_ckks_rescale(tsr_ckks_evaluator *ev, tsr_ckks_ciphertext *out,
                                    const tsr_ckks_ciphertext *a);
/** Drop to a lower level (0 <= level <= a's level) keeping the scale. */
TSR_API tsr_status tsr_ckks_drop_level(tsr_ckks_evaluator *ev, tsr_ckks_ciphertext *out,
                                       const tsr_ckks_ciphertext *a, int level);
/**
 * Bring a to `level` and `scale` exactly (rule 1's adjustment: needs
 * level < a's level, or level == a's level and scale equal to a's).
 */
TSR_API tsr_status tsr_ckks_adjust(tsr_ckks_evaluator *ev, tsr_ckks_ciphertext *out,
                                   const tsr_ckks_ciphertext *a, int level, double scale);
/**
 * Rotate the slots left by step (slot i of out = slot i+step of a, indices
 * mod slots; negative steps rotate right). Uses the exact key if present
 * and it serves a's level, else composes the fewest available rotation keys
 * that serve a's level (level-aware keys too low for it are skipped); fails
 * with TSR_ERR_LEVEL if only the exact key exists and it is too low, else
 * with TSR_ERR_KEY_MISSING naming the step if no composition exists.
 */
TSR_API tsr_status tsr_ckks_rotate(tsr_ckks_evaluator *ev, tsr_ckks_ciphertext *out,
                                   const tsr_ckks_ciphertext *a, int step);
/** Complex-conjugate every slot (needs the conjugation key). */
TSR_API tsr_status tsr_ckks_conjugate(tsr_ckks_evaluator *ev, tsr_ckks_ciphertext *out,
                                      const tsr_ckks_ciphertext *a);
/**
 * Hoisted rotations (Halevi-Shoup 2018): outs[i] = rotate(a, steps[i]) for
 * i < n, sharing one decomposition and ModUp of a. Every step needs its own
 * key (0 is allowed: a copy). outs[i] must be distinct from a and from each
 * other.
 */
TSR_API tsr_status tsr_ckks_rotate_hoisted(tsr_ckks_evaluator *ev, tsr_ckks_ciphertext *const *outs,
                                           const tsr_ckks_ciphertext *a, const int *steps,
                                           size_t n);
/** Most ciphertexts tsr_ckks_rotate_many key-switches side by side (one pass over the key). */
#define TSR_CKKS_ROTATE_MANY_CHUNK 8
/**
 * Many ciphertexts rotated by one step: outs[i] = rotate(ins[i], step) for
 * i < n, word for word what n calls of tsr_ckks_rotate give. When the step
 * has its own key serving the inputs' level and the inputs share that level,
 * they are key-switched in chunks of up to TSR_CKKS_ROTATE_MANY_CHUNK whose decompositions are kept
 * side by side (the extra scratch is bounded at 32 MiB plus one limb of both
 * outputs per chunk ciphertext and thread, kept in the evaluator), so that
 * each block of the key (a seeded key's a halves regenerated, the b halves
 * read from memory) is made once per chunk instead of once per ciphertext;
 * otherwise (composed steps, mixed levels) this is the loop of
 * tsr_ckks_rotate. Inputs of size 2, even for step 0 (where tsr_ckks_rotate
 * copies any size). outs[i] must be distinct from each other and from every
 * input (no in-place use, which tsr_ckks_rotate allows): TSR_ERR_INVALID_ARG
 * otherwise; the other errors as tsr_ckks_rotate. On an error the outputs'
 * contents are unspecified.
 */
TSR_API tsr_status tsr_ckks_rotate_many(tsr_ckks_evaluator *ev, tsr_ckks_ciphertext *const *outs,
                                        const tsr_ckks_ciphertext *const *ins, size_t n, int step);

/**
 * ModRaise, the first step of bootstrapping: a ciphertext at level 0 (a
 * higher one is first dropped to level 0) is lifted to the top level by
 * reading its coefficients modulo q_0 as centred integers in every prime of
 * the chain. The result decrypts to m + q_0 * I for a small integer
 * polynomial I (|I| <= (||s||_1 + 1) / 2); removing q_0 * I is the job of
 * bootstrapping's EvalMod. Scale unchanged; the precision estimate keeps
 * describing m modulo q_0.
 */
TSR_API tsr_status tsr_ckks_mod_raise(tsr_ckks_evaluator *ev, tsr_ckks_ciphertext *out,
                                      const tsr_ckks_ciphertext *a);

/**
 * Many linear combinations of many ciphertexts with real constants:
 * outs[j] = sum over k in [row_ptr[j], row_ptr[j+1]) of round(vals[k] *
 * cscale) * ins[cols[k]] (a compressed-sparse-row matrix). The constants
 * are exact integers, so every output has scale (input scale * cscale) and
 * the inputs' level; rescale afterwards. Inputs must share level, scale and
 * size (2, or 3 before relinearization: the outputs then have size 3 and one
 * relinearization each replaces one per input); |vals[k] * cscale| < 2^62. The work is split into
 * chunks of coefficients (so each input chunk is read from cache by every
 * output) run by OpenMP threads; each output limb is one pass of the ring's
 * multiply-accumulate kernel. outs[j] are existing ciphertexts (resized).
 */
TSR_API tsr_status tsr_ckks_lincomb(tsr_ckks_ciphertext *const *outs, size_t n_out,
                                    const tsr_ckks_ciphertext *const *ins, size_t n_in,
                                    const int64_t *row_ptr, const int64_t *cols, const double *vals,
                                    double cscale);

/*
 * Allocating variants: *out is created for the evaluator's parameters (free
 * it with tsr_ckks_ciphertext_free); on failure *out is NULL.
 */
/** *out = a + b (as tsr_ckks_add). */
TSR_API tsr_status tsr_ckks_add_new(tsr_ckks_evaluator *ev, tsr_ckks_ciphertext **out,
                                    const tsr_ckks_ciphertext *a, const tsr_ckks_ciphertext *b);
/** *out = rescale(relinearize(a * b)) (as tsr_ckks_mul_relin_rescale). */
TSR_API tsr_status tsr_ckks_mul_relin_rescale_new(tsr_ckks_evaluator *ev, tsr_ckks_ciphertext **out,
                                                  const tsr_ckks_ciphertext *a,
                                                  const tsr_ckks_ciphertext *b);
/** *out = a rotated left by step (as tsr_ckks_rotate). */
TSR_API tsr_status tsr_ckks_rotate_new(tsr_ckks_evaluator *ev, tsr_ckks_ciphertext **out,
                                       const tsr_ckks_ciphertext *a, int step);
/** *out = public-key encryption of pt (as tsr_ckks_encrypt). */
TSR_API tsr_status tsr_ckks_encrypt_new(const tsr_ckks_public_key *pk, tsr_ckks_ciphertext **out,
                                        const tsr_ckks_plaintext *pt);

/* ======================================================================== */
/* Serialization                                                             */
/* ======================================================================== */

/*
 * Every object is written as one Tessera frame (magic, version, kind, flags,
 * parameter fingerprint, 64-bit payload length, BLAKE2b-256 checksum) and
 * read back with every field validated against the parameters: sizes,
 * levels, every coefficient below its prime, the fingerprint, the kind.
 * Files stream: nothing is buffered whole, sizes are 64-bit. Errors:
 * TSR_ERR_FORMAT (malformed/truncated), TSR_ERR_CHECKSUM (corrupted),
 * TSR_ERR_VERSION, TSR_ERR_MISMATCH (other parameters or another kind),
 * TSR_ERR_SECRET (a secret key where public material was expected),
 * TSR_ERR_IO.
 *
 * Forms: `_save(obj, path)` / `_load(&obj, params, path)` for files
 * (written atomically: a temporary file in the same directory renamed into
 * place once complete, so a failed save leaves the old file as it was; an
 * existing path must be a regular file, and a file holding a secret key is
 * never replaced: TSR_ERR_INVALID_ARG);
 * `_write(obj, fp)` / `_read(&obj, params, fp)` for streams holding several
 * objects; `_to_bytes(obj, &buf, &len)` (free buf with tsr_ckks_bytes_free)
 * / `_from_bytes(&obj, params, buf, len)` for memory. A loaded object is
 * newly created (free it as usual); on failure *obj is NULL.
 */

/** Free a buffer returned by a `_to_bytes` function. */
TSR_API void tsr_ckks_bytes_free(uint8_t *buf);

/**
 * Parameters: written as the spec plus the generated primes (a reader
 * regenerates and compares them). Loading an insecure set needs
 * TSR_CKKS_ALLOW_INSECURE_PARAMETERS in flags.
 */
TSR_API tsr_status tsr_ckks_params_save(const tsr_ckks_params *p, const char *path);
TSR_API tsr_status tsr_ckks_params_load(tsr_ckks_params **out, const char *path, uint32_t flags);
TSR_API tsr_status tsr_ckks_params_write(const tsr_ckks_params *p, FILE *fp);
TSR_API tsr_status tsr_ckks_params_read(tsr_ckks_params **out, FILE *fp, uint32_t flags);
TSR_API tsr_status tsr_ckks_params_to_bytes(const tsr_ckks_params *p, uint8_t **buf, size_t *len);
TSR_API tsr_status tsr_ckks_params_from_bytes(tsr_ckks_params **out, const uint8_t *buf, size_t len,
                                              uint32_t flags);

#define TSR_CKKS_DECLARE_IO(T, name)                                                          \
    TSR_API tsr_status tsr_ckks_##name##_save(const T *obj, const char *path);                \
    TSR_API tsr_status tsr_ckks_##name##_load(T **out, tsr_ckks_params *p, const char *path); \
    TSR_API tsr_status tsr_ckks_##name##_write(const T *obj, FILE *fp);                       \
    TSR_API tsr_status tsr_ckks_##name##_read(T **out, tsr_ckks_params *p, FILE *fp);         \
    TSR_API tsr_status tsr_ckks_##name##_to_bytes(const T *obj, uint8_t **buf, size_t *len);  \
    TSR_API tsr_status tsr_ckks_##name##_from_bytes(T **out, tsr_ckks_params *p,              \
                                                    const uint8_t *buf, size_t len);

/** Plaintexts (NTT form, level, scale). */
TSR_CKKS_DECLARE_IO(tsr_ckks_plaintext, plaintext)
/** Ciphertexts; a seeded symmetric encryption stores its seed instead of c1. */
TSR_CKKS_DECLARE_IO(tsr_ckks_ciphertext, ciphertext)
/*
 * Key files (public, relinearization, Galois, secret) record the key-set id
 * and are format version 2; files of version 1 (before key-set ids) fail
 * with TSR_ERR_VERSION: generate the keys again.
 */
/** Public keys (the uniform half stored as a seed). */
TSR_CKKS_DECLARE_IO(tsr_ckks_public_key, public_key)
/** Relinearization keys (seeded). */
TSR_CKKS_DECLARE_IO(tsr_ckks_relin_key, relin_key)
/** Galois key sets (seeded). */
TSR_CKKS_DECLARE_IO(tsr_ckks_galois_keys, galois_keys)
/**
 * Secret keys: frame flag SECRET, files created with mode 0600 (O_EXCL,
 * never through a symbolic link) and never written over an existing file
 * (TSR_ERR_INVALID_ARG), the in-memory copies wiped when freed. Never send
 * these anywhere.
 */
TSR_CKKS_DECLARE_IO(tsr_ckks_secret_key, secret_key)

#undef TSR_CKKS_DECLARE_IO

/**
 * Evaluation-key bundle: the key-set id (TSR_CKKS_KEY_ID_BYTES, see "Key
 * sets and their ids"), the relinearization key and/or the Galois keys (one
 * or both may be NULL: a plan with no multiplication or rotation needs no
 * key, and its bundle still carries the parameter fingerprint and the id) in
 * one frame, for shipping to a server. The writers take the parameters and
 * the key-set id (tsr_ckks_secret_key_id of the keys' secret key); keys of
 * other parameters or of another key set fail with TSR_ERR_MISMATCH. The
 * reader refuses a secret key with TSR_ERR_SECRET; on load, absent parts
 * come back as NULL and the id is written to key_id (unless NULL).
 */
TSR_API tsr_status tsr_ckks_eval_keys_save(const tsr_ckks_params *p,
                                           const uint8_t key_id[TSR_CKKS_KEY_ID_BYTES],
                                           const tsr_ckks_relin_key *rk,
                                           const tsr_ckks_galois_keys *gk, const char *path);
TSR_API tsr_status tsr_ckks_eval_keys_load(tsr_ckks_relin_key **rk, tsr_ckks_galois_keys **gk,
                                           uint8_t key_id[TSR_CKKS_KEY_ID_BYTES],
                                           tsr_ckks_params *p, const char *path);
TSR_API tsr_status tsr_ckks_eval_keys_write(const tsr_ckks_params *p,
                                            const uint8_t key_id[TSR_CKKS_KEY_ID_BYTES],
                                            const tsr_ckks_relin_key *rk,
                                            const tsr_ckks_galois_keys *gk, FILE *fp);
TSR_API tsr_status tsr_ckks_eval_keys_read(tsr_ckks_relin_key **rk, tsr_ckks_galois_keys **gk,
                                           uint8_t key_id[TSR_CKKS_KEY_ID_BYTES],
                                           tsr_ckks_params *p, FILE *fp);
TSR_API tsr_status tsr_ckks_eval_keys_to_bytes(const tsr_ckks_params *p,
                                               const uint8_t key_id[TSR_CKKS_KEY_ID_BYTES],
                                               const tsr_ckks_relin_key *rk,
                                               const tsr_ckks_galois_keys *gk, uint8_t **buf,
                                               size_t *len);
TSR_API tsr_status tsr_ckks_eval_keys_from_bytes(tsr_ckks_relin_key **rk, tsr_ckks_galois_keys **gk,
                                                 uint8_t key_id[TSR_CKKS_KEY_ID_BYTES],
                                                 tsr_ckks_params *p, const uint8_t *buf,
                                                 size_t len);

/**
 * Serialized size in bytes of each object (what _save would write). Key-
 * switching keys (level-aware ones included) store the b halves of their
 * stored digits and a seed per key; the a halves are never written.
 */
TSR_API uint64_t tsr_ckks_ciphertext_serialized_size(const tsr_ckks_ciphertext *ct);
TSR_API uint64_t tsr_ckks_public_key_serialized_size(const tsr_ckks_public_key *pk);
TSR_API uint64_t tsr_ckks_relin_key_serialized_size(const tsr_ckks_relin_key *rk);
TSR_API uint64_t tsr_ckks_galois_keys_serialized_size(const tsr_ckks_galois_keys *gk);

/* ======================================================================== */
/* Helpers for bootstrapping                                                 */
/* ======================================================================== */

/**
 * out = a * X^k exactly (k taken modulo 2N; X^(k+N) = -X^k): no level, no
 * scale change. X^(N/2) is i in every slot and X^(3N/2) is -i, so this
 * multiplies all slots by +-i for free (bootstrapping splits and joins real
 * and imaginary parts with it). out may alias a.
 */
TSR_API tsr_status tsr_ckks_mul_monomial(tsr_ckks_evaluator *ev, tsr_ckks_ciphertext *out,
                                         const tsr_ckks_ciphertext *a, long k);

/** A key-switching key from one secret key to another of the same parameters. */
typedef struct tsr_ckks_switch_key tsr_ckks_switch_key;

/**
 * A secret key with exactly h nonzero coefficients in {-1, 1} (1 <= h <= N),
 * whatever p's own distribution: bootstrapping's temporary sparse secret
 * (sparse-secret encapsulation, Bossuat-Troncoso-Pastoriza-Hubaux, ACNS
 * 2022). It takes the key-set id of same_set (NULL: a fresh id). Free with
 * tsr_ckks_secret_key_free (wiped).
 */
TSR_API tsr_status tsr_ckks_secret_key_create_sparse(tsr_ckks_secret_key **out, tsr_ckks_params *p,
                                                     unsigned h,
                                                     const tsr_ckks_secret_key *same_set);
/**
 * A hybrid key-switching key from `from` to `to` for ciphertexts at levels
 * 0..max_level (TSR_CKKS_TOP_LEVEL: all). Only the limbs of q_0..q_max_level
 * and P are generated: a key towards a sparse secret is secure only over a
 * small modulus, so give it max_level 0. The key carries to's key-set id.
 */
TSR_API tsr_status tsr_ckks_switch_key_create(tsr_ckks_switch_key **out,
                                              const tsr_ckks_secret_key *from,
                                              const tsr_ckks_secret_key *to, int max_level);
/**
 * A switching key from `from` to `to` for level-0 ciphertexts, over q_0 and one special
 * prime p_0 of its own only (not P): the largest NTT-friendly prime of at most 61 bits
 * with log2(q_0 p_0) < max_log_modulus. The key towards a sparse secret of
 * bootstrapping's encapsulation, whose security rests on the size of that modulus
 * (docs/SECURITY.md, "The sparse encapsulation key"). Switching with it adds about
 * q_0 / p_0 times the key-switching noise of one digit. TSR_ERR_INVALID_ARG if p_0
 * would have fewer than 20 bits.
 */
TSR_API tsr_status tsr_ckks_switch_key_create_q0p0(tsr_ckks_switch_key **out,
                                                   const tsr_ckks_secret_key *from,
                                                   const tsr_ckks_secret_key *to,
                                                   unsigned max_log_modulus);
/** Number of RNS limbs the key's samples live over (max_level + 1 + special primes used). */
TSR_API int tsr_ckks_switch_key_limbs(const tsr_ckks_switch_key *k);
/** log2 of the modulus the key's RLWE samples live over (q_0..q_max_level times its P). */
TSR_API double tsr_ckks_switch_key_log_modulus(const tsr_ckks_switch_key *k);
/** Free a switching key. NULL is a no-op. */
TSR_API void tsr_ckks_switch_key_free(tsr_ckks_switch_key *k);
/** The highest level the key serves. */
TSR_API int tsr_ckks_switch_key_max_level(const tsr_ckks_switch_key *k);
/** Bytes of key material (the b halves over the limbs in use; the a halves are a seed). */
TSR_API uint64_t tsr_ckks_switch_key_bytes(const tsr_ckks_switch_key *k);
/**
 * out = a re-encrypted under the key's target secret (hybrid key switching:
 * no level, scale unchanged). a must have size 2 and a level <= the key's
 * max_level (TSR_ERR_LEVEL otherwise). out may alias a.
 */
TSR_API tsr_status tsr_ckks_key_switch(tsr_ckks_evaluator *ev, tsr_ckks_ciphertext *out,
                                       const tsr_ckks_ciphertext *a, const tsr_ckks_switch_key *k);

TSR_END_DECLS

#endif /* TESSERA_CKKS_H */
