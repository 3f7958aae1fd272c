/*
 * ckks/serialize.h - frame-level readers and writers of the CKKS objects,
 * for containers built on top (tile tensors, ciphertext sets) that write
 * several objects through one tsr_writer / tsr_reader. Each call writes or
 * reads exactly one complete frame (see core/io.h and docs/CKKS.md for the
 * payload layouts). Readers validate every field against p and return a new
 * object in *out (NULL on failure).
 */
#ifndef TSR_CKKS_SERIALIZE_H
#define TSR_CKKS_SERIALIZE_H

#include "tessera/ckks.h"
#include "core/io.h"

/**
 * The one wire form of a parameter spec, used by every file that records one:
 *   u32 log_n, first_prime_bits, scale_bits, levels, special_primes,
 *       special_prime_bits, dnum, secret, hamming_weight; then, with_flags, u32 flags;
 *   then, only for a mixed chain (spec.low_levels > 0), u32 low_levels, low_scale_bits,
 *       announced by CKKS_SPEC_MIXED set in the levels word
 * (ckks_spec_bytes: CKKS_SPEC_BYTES(with_flags) for a uniform chain, 8 more for a mixed one;
 * little-endian). A uniform chain's bytes are the ones written before mixed chains existed, so
 * every older file keeps its bytes and ids; older readers refuse a mixed spec (its levels word
 * is out of their range). Parameter files carry no flags (their reader takes them from the
 * caller); inference plans do. The writer's errors are sticky in w.
 */
#define CKKS_SPEC_BYTES(with_flags) ((with_flags) ? 40u : 36u)
#define CKKS_SPEC_MIXED             0x80000000u
uint32_t ckks_spec_bytes(const tsr_ckks_param_spec *s, int with_flags);
void ckks_spec_write(tsr_writer *w, const tsr_ckks_param_spec *s, int with_flags);
/**
 * Read a spec written by ckks_spec_write into *s (flags 0 without with_flags). Refuses, as
 * TSR_ERR_FORMAT "malformed <r's what>: ...", fields no spec can have: levels >=
 * TSR_CKKS_MAX_PRIMES, more than TSR_CKKS_MAX_SPECIAL_PRIMES special primes, an unknown secret
 * distribution, unknown flags. Whether the set is valid and secure is for
 * tsr_ckks_params_create to say; containers may impose tighter limits.
 */
tsr_status ckks_spec_read(tsr_reader *r, tsr_ckks_param_spec *s, int with_flags);

tsr_status ckks_params_write(tsr_writer *w, const tsr_ckks_params *p);
tsr_status ckks_params_read(tsr_reader *r, uint32_t flags, tsr_ckks_params **out);

tsr_status ckks_plaintext_write(tsr_writer *w, const tsr_ckks_plaintext *pt);
tsr_status ckks_plaintext_read(tsr_reader *r, tsr_ckks_params *p, tsr_ckks_plaintext **out);

tsr_status ckks_ciphertext_write(tsr_writer *w, const tsr_ckks_ciphertext *ct);
tsr_status ckks_ciphertext_read(tsr_reader *r, tsr_ckks_params *p, tsr_ckks_ciphertext **out);

tsr_status ckks_public_key_write(tsr_writer *w, const tsr_ckks_public_key *pk);
tsr_status ckks_public_key_read(tsr_reader *r, tsr_ckks_params *p, tsr_ckks_public_key **out);

tsr_status ckks_relin_key_write(tsr_writer *w, const tsr_ckks_relin_key *rk);
tsr_status ckks_relin_key_read(tsr_reader *r, tsr_ckks_params *p, tsr_ckks_relin_key **out);

tsr_status ckks_galois_keys_write(tsr_writer *w, const tsr_ckks_galois_keys *gk);
tsr_status ckks_galois_keys_read(tsr_reader *r, tsr_ckks_params *p, tsr_ckks_galois_keys **out);

tsr_status ckks_secret_key_write(tsr_writer *w, const tsr_ckks_secret_key *sk);
tsr_status ckks_secret_key_read(tsr_reader *r, tsr_ckks_params *p, tsr_ckks_secret_key **out);

/**
 * Evaluation-key bundle of key set key_id for p: either part or both may be
 * NULL; given parts must belong to p and to key_id. The reader returns the
 * id in key_id (if not NULL).
 */
tsr_status ckks_eval_keys_write(tsr_writer *w, const tsr_ckks_params *p,
                                const tsr_ckks_relin_key *rk, const tsr_ckks_galois_keys *gk,
                                const uint8_t key_id[TSR_CKKS_KEY_ID_BYTES]);
tsr_status ckks_eval_keys_read(tsr_reader *r, tsr_ckks_params *p, tsr_ckks_relin_key **rk,
                               tsr_ckks_galois_keys **gk, uint8_t key_id[TSR_CKKS_KEY_ID_BYTES]);

/**
 * The parameter set of the fuzz targets and their seed corpora: N = 32,
 * q_0 45 bits, one 40-bit level, one 50-bit special prime, dnum 2. Tiny and
 * deliberately insecure (flag set) so objects are a few hundred bytes.
 */
void ckks_fuzz_spec(tsr_ckks_param_spec *spec);

#endif /* TSR_CKKS_SERIALIZE_H */
