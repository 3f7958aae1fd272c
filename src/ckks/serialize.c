/*
 * ckks/serialize.c - versioned binary format of every CKKS object, on top of
 * the Tessera frame (core/io.h: magic, version, kind, flags, parameter
 * fingerprint, 64-bit payload length, BLAKE2b-256).
 *
 * Payloads (little-endian; "poly(l)" = (l+1) limbs of N u64, each < q_i,
 * "ext" = L+1+k limbs over the chain then the special primes):
 *   params      u32 log_n, first_prime_bits, scale_bits, levels,
 *               special_primes, special_prime_bits, dnum, secret,
 *               hamming_weight; for a mixed chain (bit 31 of levels set)
 *               u32 low_levels, low_scale_bits; u64 primes[L+1+k]
 *   plaintext   u32 level; f64 scale, err, mag; poly(level)
 *   ciphertext  u32 level, size; f64 scale, err, mag; if SEEDED: seed[32]
 *               and c0 (c1 is regenerated); else `size` polys(level)
 *   public key  id[32]; seed[32] (a); b: ext               (flag SEEDED)
 *   ksk         (one key-switching key, format 3) u32 max_level; u32 dnum
 *               (= digits at max_level); u8 prg; seed[32]; b_0..b_{dnum-1},
 *               each over q_0..q_max_level then P. prg 2: a_j is the chunked
 *               ChaCha12 stream with Lemire's rejection, prg 1 the chunked
 *               ChaCha20 stream with Barrett's (ring/sample.h
 *               tsr_sample_uniform_range, TSR_SAMPLE_STREAM_*); both keys
 *               stay seeded in memory; prg 0: the per-limb XChaCha20
 *               stream of format 2 (tsr_sample_uniform), expanded on reading,
 *               so such a key takes twice the bytes the frame declares in
 *               memory (the factor is bounded: the declared size is checked
 *               against the payload before allocating)
 *   relin key   id[32]; ksk                                (flag SEEDED)
 *   Galois keys id[32]; u32 count; per key (increasing g): u64 g; ksk
 *                                                          (flag SEEDED)
 *   eval keys   id[32]; u8 has_relin, u8 has_galois, then the two payloads
 *               above without their ids (both flags 0: a bundle of no key,
 *               for plans that need none)
 *   secret key  id[32]; N bytes: 0, 1 or 2 for coefficient 0, 1, -1
 *                                                          (flag SECRET)
 * id is the key-set id (TSR_CKKS_KEY_ID_BYTES): key frames have format
 * version TSR_FRAME_VERSION_KEYS (2), key-switching key frames (relin,
 * Galois, eval keys) TSR_FRAME_VERSION_KSK (3); version 2 of those is still
 * read (ksk = u32 dnum; seed[32]; b_j over every limb, prg 0, expanded:
 * twice the declared bytes in memory, as above);
 * version-1 key files are refused.
 * Readers check the kind, the flags, the fingerprint, that the payload
 * length is exactly what the header fields imply, every field's range and
 * every coefficient against its prime; key readers refuse secret keys.
 * Objects are streamed limb by limb: nothing is buffered whole.
 */
#include "ckks/serialize.h"
#include "ckks/ckks_internal.h"
#include "core/alloc.h"
#include "core/error.h"

#include <math.h>
#include <string.h>

static uint64_t poly_bytes(const tsr_ckks_params *p, int limbs) {
    return (uint64_t)limbs * p->n * 8;
}

/* ---- common frame handling ------------------------------------------------------ */

static void begin_write(tsr_writer *w, const tsr_ckks_params *p, tsr_obj_kind kind, uint32_t flags,
                        uint64_t payload) {
    tsr_frame_begin_write(w, kind, flags, p ? p->fingerprint : NULL, payload);
}

/*
 * Begin reading a frame of kind `want`: a secret key where public material
 * is expected is TSR_ERR_SECRET; another kind TSR_ERR_MISMATCH; flags
 * outside `allowed` TSR_ERR_FORMAT; another fingerprint TSR_ERR_MISMATCH.
 */
static tsr_status begin_read(tsr_reader *r, const tsr_ckks_params *p, tsr_obj_kind want,
                             uint32_t allowed, tsr_frame_info *info) {
    tsr_reader_set_what(r, tsr_obj_kind_name(want));
    TSR_TRY(tsr_frame_begin_read(r, TSR_OBJ_NONE, UINT64_MAX, info));
    if (want != TSR_OBJ_SECRET_KEY &&
        (info->kind == TSR_OBJ_SECRET_KEY || (info->flags & TSR_FRAME_SECRET)))
        return tsr_reader_fail(r, TSR_ERR_SECRET,
                               "expected %s but the input holds secret key material: never "
                               "send secret keys to an evaluator",
                               tsr_obj_kind_phrase(want));
    if (info->kind != want)
        return tsr_reader_fail(r, TSR_ERR_MISMATCH, "expected %s but the input holds %s",
                               tsr_obj_kind_phrase(want), tsr_obj_kind_phrase(info->kind));
    if (info->flags & ~allowed)
        return tsr_reader_fail(r, TSR_ERR_FORMAT, "malformed %s: unknown flags 0x%x",
                               tsr_obj_kind_name(want), info->flags & ~allowed);
    if (p && memcmp(info->fingerprint, p->fingerprint, sizeof p->fingerprint) != 0)
        return tsr_reader_fail(r, TSR_ERR_MISMATCH,
                               "the input holds %s made for other CKKS parameters (fingerprint "
                               "mismatch): load it with the parameters it was created with",
                               tsr_obj_kind_phrase(want));
    return TSR_OK;
}

static tsr_status expect_len(tsr_reader *r, const tsr_frame_info *info, uint64_t want,
                             const char *what) {
    if (info->payload_len != want)
        return tsr_reader_fail(
            r, TSR_ERR_FORMAT, "malformed %s: payload is %llu bytes but its header implies %llu",
            what, (unsigned long long)info->payload_len, (unsigned long long)want);
    return TSR_OK;
}

/* Finish: check payload consumed + checksum; return the reader's status. */
static tsr_status end_read(tsr_reader *r) {
    if (tsr_reader_status(r) != TSR_OK) {
        if (r->in_frame) (void)tsr_frame_end_read(r);
        return tsr_reader_status(r);
    }
    return tsr_frame_end_read(r);
}

/* count limbs of a (contiguous). */
static void write_limbs(tsr_writer *w, const tsr_ckks_params *p, const uint64_t *a, int count) {
    tsr_write_u64_array(w, a, (size_t)count * p->n);
}

/* count limbs of a polynomial over q_0..q_max_level then the special primes (limb t has
 * prime ckks_ext_prime(p, max_level, t)), each coefficient checked against its prime.
 * max_level = L: the primes in order (ciphertexts, plaintexts, public keys); key-switching
 * keys pass their own max_level. */
static void read_limbs(tsr_reader *r, const tsr_ckks_params *p, uint64_t *a, int count,
                       int max_level) {
    for (int t = 0; t < count && tsr_reader_status(r) == TSR_OK; t++) {
        char what[64];
        snprintf(what, sizeof what, "limb %d", t);
        tsr_reader_set_what(r, what);
        tsr_read_u64_array(r, a + (size_t)t * p->n, p->n,
                           p->primes[ckks_ext_prime(p, max_level, t)]);
    }
}

static int finite_nonneg(double x) {
    return isfinite(x) && x >= 0;
}

/* ---- parameter specs and parameters ----------------------------------------------------- */

uint32_t ckks_spec_bytes(const tsr_ckks_param_spec *s, int with_flags) {
    return CKKS_SPEC_BYTES(with_flags) + (s->low_levels || s->low_scale_bits ? 8u : 0u);
}

void ckks_spec_write(tsr_writer *w, const tsr_ckks_param_spec *s, int with_flags) {
    int mixed = s->low_levels || s->low_scale_bits;
    const uint32_t f[10] = { s->log_n,          s->first_prime_bits,
                             s->scale_bits,     s->levels | (mixed ? CKKS_SPEC_MIXED : 0u),
                             s->special_primes, s->special_prime_bits,
                             s->dnum,           (uint32_t)s->secret,
                             s->hamming_weight, s->flags };
    for (int i = 0; i < (with_flags ? 10 : 9); i++) tsr_write_u32(w, f[i]);
    if (mixed) {
        tsr_write_u32(w, s->low_levels);
        tsr_write_u32(w, s->low_scale_bits);
    }
}

tsr_status ckks_spec_read(tsr_reader *r, tsr_ckks_param_spec *s, int with_flags) {
    uint32_t f[10] = { 0 }, low[2] = { 0, 0 };
    for (int i = 0; i < (with_flags ? 10 : 9); i++) f[i] = tsr_read_u32(r);
    int mixed = (f[3] & CKKS_SPEC_MIXED) != 0;
    f[3] &= ~CKKS_SPEC_MIXED;
    if (mixed) {
        low[0] = tsr_read_u32(r);
        low[1] = tsr_read_u32(r);
    }
    TSR_TRY(tsr_reader_status(r));
    if (mixed && (low[0] == 0 || low[0] >= f[3] || low[1] > 64))
        return tsr_reader_fail(r, TSR_ERR_FORMAT,
                               "malformed %s: a mixed chain of %u levels with %u low levels of "
                               "%u bits",
                               r->what, f[3], low[0], low[1]);
    if (f[3] >= TSR_CKKS_MAX_PRIMES || f[4] > TSR_CKKS_MAX_SPECIAL_PRIMES)
        return tsr_reader_fail(r, TSR_ERR_FORMAT,
                               "malformed %s: %u levels and %u special primes are out of range",
                               r->what, f[3], f[4]);
    if (f[7] > TSR_CKKS_SECRET_FIXED_HW)
        return tsr_reader_fail(r, TSR_ERR_FORMAT, "malformed %s: unknown secret distribution %u",
                               r->what, f[7]);
    if (f[9] & ~(uint32_t)TSR_CKKS_ALLOW_INSECURE_PARAMETERS)
        return tsr_reader_fail(r, TSR_ERR_FORMAT, "malformed %s: unknown parameter flags 0x%x",
                               r->what, f[9]);
    *s = (tsr_ckks_param_spec){
        .log_n = f[0],
        .first_prime_bits = f[1],
        .scale_bits = f[2],
        .levels = f[3],
        .special_primes = f[4],
        .special_prime_bits = f[5],
        .dnum = f[6],
        .secret = (tsr_ckks_secret_dist)f[7],
        .hamming_weight = f[8],
        .flags = f[9],
        .low_levels = low[0],
        .low_scale_bits = low[1],
    };
    return TSR_OK;
}

tsr_status ckks_params_write(tsr_writer *w, const tsr_ckks_params *p) {
    begin_write(w, p, TSR_OBJ_PARAMS, 0, ckks_spec_bytes(&p->spec, 0) + 8 * (uint64_t)p->nall);
    tsr_ckks_param_spec s = p->spec;
    s.dnum = (unsigned)p->dnum; /* the resolved dnum (the spec's may be 0: the default) */
    ckks_spec_write(w, &s, 0);
    tsr_write_u64_array(w, p->primes, (size_t)p->nall);
    return tsr_frame_end_write(w);
}

tsr_status ckks_params_read(tsr_reader *r, uint32_t flags, tsr_ckks_params **out) {
    *out = NULL;
    tsr_frame_info info;
    TSR_TRY(begin_read(r, NULL, TSR_OBJ_PARAMS, 0, &info));
    tsr_ckks_param_spec spec;
    TSR_TRY(ckks_spec_read(r, &spec, 0));
    uint64_t nall = (uint64_t)spec.levels + 1 + spec.special_primes;
    TSR_TRY(expect_len(r, &info, ckks_spec_bytes(&spec, 0) + 8 * nall, "parameters"));
    uint64_t primes[CKKS_MAX_ALL];
    tsr_read_u64_array(r, primes, (size_t)nall, 0);
    TSR_TRY(end_read(r));
    spec.flags = flags & TSR_CKKS_ALLOW_INSECURE_PARAMETERS;
    tsr_ckks_params *p = NULL;
    tsr_status st = tsr_ckks_params_create(&p, &spec);
    if (st != TSR_OK) {
        if (st == TSR_ERR_INSECURE) return st;
        return tsr_fail_context(st == TSR_ERR_INVALID_ARG ? TSR_ERR_FORMAT : st,
                                "invalid parameters in file: ");
    }
    if ((uint64_t)p->nall != nall || p->dnum != (int)spec.dnum ||
        memcmp(p->primes, primes, (size_t)nall * 8) != 0 ||
        memcmp(p->fingerprint, info.fingerprint, sizeof p->fingerprint) != 0) {
        tsr_ckks_params_free(p);
        return tsr_fail(TSR_ERR_FORMAT,
                        "the parameter file's primes or fingerprint differ from the ones this "
                        "version derives from its spec: it was modified or written by an "
                        "incompatible version");
    }
    *out = p;
    return TSR_OK;
}

/* ---- plaintexts ---------------------------------------------------------------------------- */

tsr_status ckks_plaintext_write(tsr_writer *w, const tsr_ckks_plaintext *pt) {
    const tsr_ckks_params *p = pt->params;
    if (pt->level < 0) return tsr_fail(TSR_ERR_INVALID_ARG, "cannot write an empty plaintext");
    begin_write(w, p, TSR_OBJ_PLAINTEXT, 0, 4 + 24 + poly_bytes(p, pt->level + 1));
    tsr_write_u32(w, (uint32_t)pt->level);
    tsr_write_f64(w, pt->scale);
    tsr_write_f64(w, pt->err);
    tsr_write_f64(w, pt->mag);
    write_limbs(w, p, pt->data, pt->level + 1);
    return tsr_frame_end_write(w);
}

static tsr_status read_level_scale(tsr_reader *r, const tsr_ckks_params *p, uint32_t level,
                                   double scale, double err, double mag, const char *what) {
    TSR_TRY(tsr_reader_status(r));
    if (level > (uint32_t)p->L)
        return tsr_reader_fail(r, TSR_ERR_FORMAT, "malformed %s: level %u exceeds the top level %d",
                               what, level, p->L);
    if (!(scale > 0) || !isfinite(scale) || !finite_nonneg(err) || !finite_nonneg(mag))
        return tsr_reader_fail(r, TSR_ERR_FORMAT,
                               "malformed %s: scale or noise estimate is not a positive finite "
                               "number",
                               what);
    return TSR_OK;
}

tsr_status ckks_plaintext_read(tsr_reader *r, tsr_ckks_params *p, tsr_ckks_plaintext **out) {
    *out = NULL;
    tsr_frame_info info;
    TSR_TRY(begin_read(r, p, TSR_OBJ_PLAINTEXT, 0, &info));
    uint32_t level = tsr_read_u32(r);
    double scale = tsr_read_f64(r), err = tsr_read_f64(r), mag = tsr_read_f64(r);
    TSR_TRY(read_level_scale(r, p, level, scale, err, mag, "plaintext"));
    TSR_TRY(expect_len(r, &info, 28 + poly_bytes(p, (int)level + 1), "plaintext"));
    tsr_ckks_plaintext *pt;
    TSR_TRY(tsr_ckks_plaintext_create(&pt, p));
    tsr_status st = ckks_pt_reserve(pt, (int)level);
    if (st == TSR_OK) {
        read_limbs(r, p, pt->data, (int)level + 1, p->L);
        st = end_read(r);
    }
    if (st != TSR_OK) {
        tsr_ckks_plaintext_free(pt);
        return st;
    }
    pt->scale = scale;
    pt->err = err;
    pt->mag = mag;
    *out = pt;
    return TSR_OK;
}

/* ---- ciphertexts ----------------------------------------------------------------------------- */

uint64_t tsr_ckks_ciphertext_serialized_size(const tsr_ckks_ciphertext *ct) {
    int polys = ct->seeded ? 1 : ct->size;
    return TSR_FRAME_HEADER_SIZE + 8 + 24 + (ct->seeded ? TSR_SEED_BYTES : 0) +
           polys * poly_bytes(ct->params, ct->level + 1) + TSR_FRAME_HASH_SIZE;
}

tsr_status ckks_ciphertext_write(tsr_writer *w, const tsr_ckks_ciphertext *ct) {
    const tsr_ckks_params *p = ct->params;
    if (ct->level < 0) return tsr_fail(TSR_ERR_INVALID_ARG, "cannot write an empty ciphertext");
    uint64_t len =
        tsr_ckks_ciphertext_serialized_size(ct) - TSR_FRAME_HEADER_SIZE - TSR_FRAME_HASH_SIZE;
    begin_write(w, p, TSR_OBJ_CIPHERTEXT, ct->seeded ? TSR_FRAME_SEEDED : 0, len);
    tsr_write_u32(w, (uint32_t)ct->level);
    tsr_write_u32(w, (uint32_t)ct->size);
    tsr_write_f64(w, ct->scale);
    tsr_write_f64(w, ct->err);
    tsr_write_f64(w, ct->mag);
    if (ct->seeded) tsr_write_bytes(w, ct->seed, TSR_SEED_BYTES);
    int polys = ct->seeded ? 1 : ct->size;
    for (int k = 0; k < polys; k++) write_limbs(w, p, ckks_ct_poly(ct, k), ct->level + 1);
    return tsr_frame_end_write(w);
}

tsr_status ckks_ciphertext_read(tsr_reader *r, tsr_ckks_params *p, tsr_ckks_ciphertext **out) {
    *out = NULL;
    tsr_frame_info info;
    TSR_TRY(begin_read(r, p, TSR_OBJ_CIPHERTEXT, TSR_FRAME_SEEDED, &info));
    int seeded = (info.flags & TSR_FRAME_SEEDED) != 0;
    uint32_t level = tsr_read_u32(r), size = tsr_read_u32(r);
    double scale = tsr_read_f64(r), err = tsr_read_f64(r), mag = tsr_read_f64(r);
    TSR_TRY(read_level_scale(r, p, level, scale, err, mag, "ciphertext"));
    if (size != 2 && size != 3)
        return tsr_reader_fail(r, TSR_ERR_FORMAT, "malformed ciphertext: size %u (must be 2 or 3)",
                               size);
    if (seeded && size != 2)
        return tsr_reader_fail(r, TSR_ERR_FORMAT,
                               "malformed ciphertext: a seeded ciphertext has "
                               "size 2");
    int polys = seeded ? 1 : (int)size;
    TSR_TRY(expect_len(r, &info,
                       32 + (seeded ? TSR_SEED_BYTES : 0) + polys * poly_bytes(p, (int)level + 1),
                       "ciphertext"));
    tsr_ckks_ciphertext *ct;
    TSR_TRY(tsr_ckks_ciphertext_create(&ct, p));
    tsr_status st = ckks_ct_reserve(ct, (int)level, (int)size);
    if (st == TSR_OK) {
        if (seeded) tsr_read_bytes(r, ct->seed, TSR_SEED_BYTES);
        for (int k = 0; k < polys; k++) read_limbs(r, p, ckks_ct_poly(ct, k), (int)level + 1, p->L);
        st = end_read(r);
    }
    if (st != TSR_OK) {
        tsr_ckks_ciphertext_free(ct);
        return st;
    }
    ct->scale = scale;
    ct->err = err;
    ct->mag = mag;
    ct->seeded = seeded;
    if (seeded) ckks_ct_expand_seed(ct);
    *out = ct;
    return TSR_OK;
}

/* ---- public key -------------------------------------------------------------------------------
 */

uint64_t tsr_ckks_public_key_serialized_size(const tsr_ckks_public_key *pk) {
    return TSR_FRAME_HEADER_SIZE + TSR_CKKS_KEY_ID_BYTES + TSR_SEED_BYTES +
           poly_bytes(pk->params, pk->params->nall) + TSR_FRAME_HASH_SIZE;
}

tsr_status ckks_public_key_write(tsr_writer *w, const tsr_ckks_public_key *pk) {
    const tsr_ckks_params *p = pk->params;
    begin_write(w, p, TSR_OBJ_PUBLIC_KEY, TSR_FRAME_SEEDED,
                TSR_CKKS_KEY_ID_BYTES + TSR_SEED_BYTES + poly_bytes(p, p->nall));
    tsr_write_bytes(w, pk->key_id, TSR_CKKS_KEY_ID_BYTES);
    tsr_write_bytes(w, pk->seed, TSR_SEED_BYTES);
    write_limbs(w, p, pk->b, p->nall);
    return tsr_frame_end_write(w);
}

tsr_status ckks_public_key_read(tsr_reader *r, tsr_ckks_params *p, tsr_ckks_public_key **out) {
    *out = NULL;
    tsr_frame_info info;
    TSR_TRY(begin_read(r, p, TSR_OBJ_PUBLIC_KEY, TSR_FRAME_SEEDED, &info));
    if (!(info.flags & TSR_FRAME_SEEDED))
        return tsr_reader_fail(r, TSR_ERR_FORMAT, "malformed public key: SEEDED flag missing");
    TSR_TRY(expect_len(r, &info, TSR_CKKS_KEY_ID_BYTES + TSR_SEED_BYTES + poly_bytes(p, p->nall),
                       "public key"));
    tsr_ckks_public_key *pk;
    TSR_TRY(ckks_pk_alloc(&pk, p));
    tsr_read_bytes(r, pk->key_id, TSR_CKKS_KEY_ID_BYTES);
    tsr_read_bytes(r, pk->seed, TSR_SEED_BYTES);
    read_limbs(r, p, pk->b, p->nall, p->L);
    tsr_status st = end_read(r);
    if (st != TSR_OK) {
        tsr_ckks_public_key_free(pk);
        return st;
    }
    ckks_pk_complete(pk, NULL, 1);
    *out = pk;
    return TSR_OK;
}

/* ---- key-switching keys
 * --------------------------------------------------------------------------- */

/* Bytes of one key in format 3: u32 max_level, u32 dnum, u8 prg, seed, the b halves. */
static uint64_t ksk_bytes(const tsr_ckks_params *p, const ckks_ksk *k) {
    return 4 + 4 + 1 + TSR_SEED_BYTES + ckks_ksk_b_bytes(p, k);
}

static void ksk_write(tsr_writer *w, const tsr_ckks_params *p, const ckks_ksk *k) {
    tsr_write_u32(w, (uint32_t)k->max_level);
    tsr_write_u32(w, (uint32_t)k->dnum);
    tsr_write_u8(w, (uint8_t)k->prg);
    tsr_write_bytes(w, k->seed, TSR_SEED_BYTES);
    for (int j = 0; j < k->dnum; j++) write_limbs(w, p, ckks_ksk_b(p, k, j), k->limbs);
}

/*
 * One key-switching key of a frame of format `version`. Format 3: u32
 * max_level, u32 dnum (= digits at max_level), u8 prg, seed, the b halves
 * over max_level + 1 + k limbs; chunked keys (prg 1 ChaCha20, prg 2
 * ChaCha12) stay seeded in memory, prg 0 keys are expanded.
 * Format 2: u32 dnum, seed, full b halves; its a halves came from the
 * per-limb XChaCha20 stream and are expanded into memory (such keys cannot
 * be seeded in the new stream without the secret key). The declared sizes
 * are checked against the payload left before anything is allocated.
 */
static tsr_status ksk_read(tsr_reader *r, const tsr_ckks_params *p, int version, ckks_ksk *k) {
    uint32_t max_level = (uint32_t)p->L, prg = CKKS_KSK_PRG_XCHACHA20_LIMB;
    if (version >= 3) max_level = tsr_read_u32(r);
    uint32_t dnum = tsr_read_u32(r);
    if (version >= 3) prg = tsr_read_u8(r);
    TSR_TRY(tsr_reader_status(r));
    if (max_level > (uint32_t)p->L)
        return tsr_reader_fail(r, TSR_ERR_FORMAT,
                               "malformed key-switching key: max level %u beyond the top level %d",
                               max_level, p->L);
    if (dnum != (uint32_t)ckks_digits_at(p, (int)max_level))
        return tsr_reader_fail(r, TSR_ERR_FORMAT,
                               "malformed key-switching key: %u digits where the parameters have "
                               "%d at level %u",
                               dnum, ckks_digits_at(p, (int)max_level), max_level);
    if (prg > CKKS_KSK_PRG_LAST)
        return tsr_reader_fail(r, TSR_ERR_FORMAT,
                               "key-switching key expanded with unknown stream %u: this build "
                               "knows 0 (XChaCha20 per limb), 1 (ChaCha20 chunks) and 2 "
                               "(ChaCha12 chunks)",
                               prg);
    uint64_t need = TSR_SEED_BYTES + (uint64_t)dnum * poly_bytes(p, (int)max_level + 1 + p->k);
    if (tsr_frame_remaining(r) < need)
        return tsr_reader_fail(r, TSR_ERR_FORMAT,
                               "malformed key-switching key: %llu bytes declared but only %llu "
                               "left in the payload",
                               (unsigned long long)need,
                               (unsigned long long)tsr_frame_remaining(r));
    int seeded = prg != CKKS_KSK_PRG_XCHACHA20_LIMB;
    TSR_TRY(ckks_ksk_alloc(p, (int)max_level, seeded, k));
    k->prg = (int)prg;
    tsr_read_bytes(r, k->seed, TSR_SEED_BYTES);
    for (int j = 0; j < k->dnum; j++) read_limbs(r, p, ckks_ksk_b(p, k, j), k->limbs, k->max_level);
    if (tsr_reader_status(r) != TSR_OK) {
        ckks_ksk_free(k);
        return tsr_reader_status(r);
    }
    if (!seeded) ckks_ksk_expand_legacy(p, k);
    return TSR_OK;
}

uint64_t tsr_ckks_relin_key_serialized_size(const tsr_ckks_relin_key *rk) {
    return TSR_FRAME_HEADER_SIZE + TSR_CKKS_KEY_ID_BYTES + ksk_bytes(rk->params, &rk->key) +
           TSR_FRAME_HASH_SIZE;
}

tsr_status ckks_relin_key_write(tsr_writer *w, const tsr_ckks_relin_key *rk) {
    begin_write(w, rk->params, TSR_OBJ_RELIN_KEY, TSR_FRAME_SEEDED,
                TSR_CKKS_KEY_ID_BYTES + ksk_bytes(rk->params, &rk->key));
    tsr_write_bytes(w, rk->key_id, TSR_CKKS_KEY_ID_BYTES);
    ksk_write(w, rk->params, &rk->key);
    return tsr_frame_end_write(w);
}

static tsr_status relin_payload_read(tsr_reader *r, tsr_ckks_params *p, int version,
                                     const uint8_t *key_id, tsr_ckks_relin_key **out) {
    tsr_ckks_relin_key *rk = tsr_calloc(sizeof *rk);
    if (!rk) return tsr_fail(TSR_ERR_NOMEM, "cannot allocate a relinearization key");
    rk->params = ckks_params_ref(p);
    memcpy(rk->key_id, key_id, TSR_CKKS_KEY_ID_BYTES);
    tsr_status st = ksk_read(r, p, version, &rk->key);
    if (st != TSR_OK) {
        tsr_ckks_relin_key_free(rk);
        return st;
    }
    *out = rk;
    return TSR_OK;
}

tsr_status ckks_relin_key_read(tsr_reader *r, tsr_ckks_params *p, tsr_ckks_relin_key **out) {
    *out = NULL;
    tsr_frame_info info;
    TSR_TRY(begin_read(r, p, TSR_OBJ_RELIN_KEY, TSR_FRAME_SEEDED, &info));
    if (info.payload_len < TSR_CKKS_KEY_ID_BYTES)
        return tsr_reader_fail(r, TSR_ERR_FORMAT,
                               "malformed relinearization key: payload too short");
    uint8_t id[TSR_CKKS_KEY_ID_BYTES];
    tsr_read_bytes(r, id, sizeof id);
    TSR_TRY(tsr_reader_status(r));
    tsr_ckks_relin_key *rk = NULL;
    TSR_TRY(relin_payload_read(r, p, info.version, id, &rk));
    /* the frame's end checks that the key took the whole payload */
    tsr_status st = end_read(r);
    if (st != TSR_OK) {
        tsr_ckks_relin_key_free(rk);
        return st;
    }
    *out = rk;
    return TSR_OK;
}

static uint64_t galois_bytes(const tsr_ckks_galois_keys *gk) {
    uint64_t bytes = 4;
    for (size_t i = 0; i < gk->count; i++) bytes += 8 + ksk_bytes(gk->params, &gk->e[i].key);
    return bytes;
}

uint64_t tsr_ckks_galois_keys_serialized_size(const tsr_ckks_galois_keys *gk) {
    return TSR_FRAME_HEADER_SIZE + TSR_CKKS_KEY_ID_BYTES + galois_bytes(gk) + TSR_FRAME_HASH_SIZE;
}

static void galois_payload_write(tsr_writer *w, const tsr_ckks_galois_keys *gk) {
    tsr_write_u32(w, (uint32_t)gk->count);
    for (size_t i = 0; i < gk->count; i++) {
        tsr_write_u64(w, gk->e[i].elt);
        ksk_write(w, gk->params, &gk->e[i].key);
    }
}

tsr_status ckks_galois_keys_write(tsr_writer *w, const tsr_ckks_galois_keys *gk) {
    begin_write(w, gk->params, TSR_OBJ_GALOIS_KEYS, TSR_FRAME_SEEDED,
                TSR_CKKS_KEY_ID_BYTES + galois_bytes(gk));
    tsr_write_bytes(w, gk->key_id, TSR_CKKS_KEY_ID_BYTES);
    galois_payload_write(w, gk);
    return tsr_frame_end_write(w);
}

/* Reads `count` then the keys, allocating one key at a time (a forged count
 * cannot make us allocate more than the input actually holds: each key's
 * size is checked against the payload left first). */
static tsr_status galois_payload_read(tsr_reader *r, tsr_ckks_params *p, int version,
                                      const uint8_t *key_id, tsr_ckks_galois_keys **out) {
    *out = NULL;
    uint32_t count = tsr_read_u32(r);
    TSR_TRY(tsr_reader_status(r));
    /* the smallest key: level 0 (format 3) or every level (format 2) */
    uint64_t per =
        8 + 4 + TSR_SEED_BYTES +
        (version >= 3 ? 5 + poly_bytes(p, 1 + p->k) : (uint64_t)p->dnum * poly_bytes(p, p->nall));
    if (count > p->n / 2 * 2 || tsr_frame_remaining(r) / per < count)
        return tsr_reader_fail(r, TSR_ERR_FORMAT,
                               "malformed Galois keys: %u keys do not fit the payload or exceed "
                               "the %zu automorphisms",
                               count, p->n);
    tsr_ckks_galois_keys *gk;
    TSR_TRY(ckks_galois_alloc(&gk, p));
    memcpy(gk->key_id, key_id, TSR_CKKS_KEY_ID_BYTES);
    tsr_status st = TSR_OK;
    uint64_t prev = 0;
    for (uint32_t i = 0; i < count && st == TSR_OK; i++) {
        if (gk->count == gk->cap) st = ckks_galois_reserve(gk, gk->cap ? 2 * gk->cap : 8);
        if (st != TSR_OK) break;
        uint64_t g = tsr_read_u64(r);
        st = tsr_reader_status(r);
        if (st != TSR_OK) break;
        if ((g & 1) == 0 || g <= 1 || g >= 2 * (uint64_t)p->n || g <= prev) {
            st = tsr_reader_fail(r, TSR_ERR_FORMAT,
                                 "malformed Galois keys: element %llu is not an odd number in "
                                 "(1, 2N) above the previous one",
                                 (unsigned long long)g);
            break;
        }
        prev = g;
        ckks_galois_entry *e = &gk->e[gk->count];
        memset(e, 0, sizeof *e);
        e->elt = g;
        st = ksk_read(r, p, version, &e->key);
        if (st != TSR_OK) break;
        st = ckks_galois_perm(p, g, &e->perm);
        if (st != TSR_OK) {
            ckks_ksk_free(&e->key);
            break;
        }
        gk->count++;
    }
    if (st != TSR_OK) {
        tsr_ckks_galois_keys_free(gk);
        return st;
    }
    *out = gk;
    return TSR_OK;
}

tsr_status ckks_galois_keys_read(tsr_reader *r, tsr_ckks_params *p, tsr_ckks_galois_keys **out) {
    *out = NULL;
    tsr_frame_info info;
    TSR_TRY(begin_read(r, p, TSR_OBJ_GALOIS_KEYS, TSR_FRAME_SEEDED, &info));
    if (info.payload_len < TSR_CKKS_KEY_ID_BYTES)
        return tsr_reader_fail(r, TSR_ERR_FORMAT, "malformed Galois keys: payload too short");
    uint8_t id[TSR_CKKS_KEY_ID_BYTES];
    tsr_read_bytes(r, id, sizeof id);
    TSR_TRY(tsr_reader_status(r));
    tsr_ckks_galois_keys *gk = NULL;
    TSR_TRY(galois_payload_read(r, p, info.version, id, &gk));
    tsr_status st = end_read(r);
    if (st != TSR_OK) {
        tsr_ckks_galois_keys_free(gk);
        return st;
    }
    *out = gk;
    return TSR_OK;
}

/* ---- evaluation-key bundle
 * ------------------------------------------------------------------------ */

tsr_status ckks_eval_keys_write(tsr_writer *w, const tsr_ckks_params *p,
                                const tsr_ckks_relin_key *rk, const tsr_ckks_galois_keys *gk,
                                const uint8_t key_id[TSR_CKKS_KEY_ID_BYTES]) {
    if (rk) TSR_TRY(ckks_params_check(p, rk->params, "the relinearization key"));
    if (gk) TSR_TRY(ckks_params_check(p, gk->params, "the Galois keys"));
    if ((rk && memcmp(rk->key_id, key_id, TSR_CKKS_KEY_ID_BYTES) != 0) ||
        (gk && memcmp(gk->key_id, key_id, TSR_CKKS_KEY_ID_BYTES) != 0))
        return tsr_fail(TSR_ERR_MISMATCH,
                        "the evaluation keys belong to another key set than the id given for the "
                        "bundle: bundle keys of one keygen run");
    uint64_t len =
        TSR_CKKS_KEY_ID_BYTES + 2 + (rk ? ksk_bytes(p, &rk->key) : 0) + (gk ? galois_bytes(gk) : 0);
    begin_write(w, p, TSR_OBJ_EVAL_KEYS, TSR_FRAME_SEEDED, len);
    tsr_write_bytes(w, key_id, TSR_CKKS_KEY_ID_BYTES);
    tsr_write_u8(w, rk != NULL);
    tsr_write_u8(w, gk != NULL);
    if (rk) ksk_write(w, p, &rk->key);
    if (gk) galois_payload_write(w, gk);
    return tsr_frame_end_write(w);
}

tsr_status ckks_eval_keys_read(tsr_reader *r, tsr_ckks_params *p, tsr_ckks_relin_key **rk,
                               tsr_ckks_galois_keys **gk, uint8_t key_id[TSR_CKKS_KEY_ID_BYTES]) {
    *rk = NULL;
    *gk = NULL;
    tsr_frame_info info;
    TSR_TRY(begin_read(r, p, TSR_OBJ_EVAL_KEYS, TSR_FRAME_SEEDED, &info));
    uint8_t id[TSR_CKKS_KEY_ID_BYTES];
    tsr_read_bytes(r, id, sizeof id);
    uint8_t has_r = tsr_read_u8(r), has_g = tsr_read_u8(r);
    TSR_TRY(tsr_reader_status(r));
    if (has_r > 1 || has_g > 1)
        return tsr_reader_fail(r, TSR_ERR_FORMAT, "malformed evaluation keys: presence flags %u/%u",
                               has_r, has_g);
    tsr_status st = TSR_OK;
    if (has_r) st = relin_payload_read(r, p, info.version, id, rk);
    if (st == TSR_OK && has_g) st = galois_payload_read(r, p, info.version, id, gk);
    if (st == TSR_OK) st = end_read(r);
    if (st != TSR_OK) {
        tsr_ckks_relin_key_free(*rk);
        tsr_ckks_galois_keys_free(*gk);
        *rk = NULL;
        *gk = NULL;
        return st;
    }
    if (key_id) memcpy(key_id, id, TSR_CKKS_KEY_ID_BYTES);
    return TSR_OK;
}

/* ---- secret key
 * ---------------------------------------------------------------------------------- */

tsr_status ckks_secret_key_write(tsr_writer *w, const tsr_ckks_secret_key *sk) {
    const tsr_ckks_params *p = sk->params;
    uint8_t *buf = tsr_alloc(p->n);
    if (!buf) return tsr_fail(TSR_ERR_NOMEM, "cannot allocate a secret-key buffer");
    for (size_t i = 0; i < p->n; i++) buf[i] = sk->coeffs[i] < 0 ? 2 : (uint8_t)sk->coeffs[i];
    begin_write(w, p, TSR_OBJ_SECRET_KEY, TSR_FRAME_SECRET, TSR_CKKS_KEY_ID_BYTES + p->n);
    tsr_write_bytes(w, sk->key_id, TSR_CKKS_KEY_ID_BYTES);
    tsr_write_bytes(w, buf, p->n);
    tsr_free_secret(buf, p->n);
    return tsr_frame_end_write(w);
}

tsr_status ckks_secret_key_read(tsr_reader *r, tsr_ckks_params *p, tsr_ckks_secret_key **out) {
    *out = NULL;
    tsr_frame_info info;
    TSR_TRY(begin_read(r, p, TSR_OBJ_SECRET_KEY, TSR_FRAME_SECRET, &info));
    if (!(info.flags & TSR_FRAME_SECRET))
        return tsr_reader_fail(r, TSR_ERR_FORMAT, "malformed secret key: SECRET flag missing");
    TSR_TRY(expect_len(r, &info, TSR_CKKS_KEY_ID_BYTES + p->n, "secret key"));
    uint8_t *buf = tsr_alloc(p->n);
    tsr_ckks_secret_key *sk = tsr_calloc(sizeof *sk);
    tsr_status st = TSR_OK;
    if (!buf || !sk) st = tsr_fail(TSR_ERR_NOMEM, "cannot allocate a secret key");
    if (st == TSR_OK) {
        sk->params = ckks_params_ref(p);
        sk->coeffs = tsr_calloc(p->n);
        if (!sk->coeffs || tsr_rns_poly_new(p->qp, &sk->s_ntt) != TSR_OK)
            st = tsr_fail(TSR_ERR_NOMEM, "cannot allocate a secret key");
    }
    if (st == TSR_OK) {
        tsr_read_bytes(r, sk->key_id, TSR_CKKS_KEY_ID_BYTES);
        tsr_read_bytes(r, buf, p->n);
        st = end_read(r);
    }
    size_t weight = 0;
    for (size_t i = 0; i < p->n && st == TSR_OK; i++) {
        if (buf[i] > 2)
            st = tsr_fail(TSR_ERR_FORMAT, "malformed secret key: coefficient %zu has code %u", i,
                          buf[i]);
        sk->coeffs[i] = buf[i] == 2 ? -1 : (int8_t)buf[i];
        weight += buf[i] != 0;
    }
    if (st == TSR_OK && p->spec.secret == TSR_CKKS_SECRET_FIXED_HW &&
        weight != p->spec.hamming_weight)
        st = tsr_fail(TSR_ERR_FORMAT,
                      "malformed secret key: Hamming weight %zu where the parameters fix %u",
                      weight, p->spec.hamming_weight);
    if (buf) tsr_free_secret(buf, p->n);
    if (st != TSR_OK) {
        if (sk && sk->params)
            tsr_ckks_secret_key_free(sk);
        else
            tsr_free(sk);
        return st;
    }
    ckks_sk_complete(sk);
    *out = sk;
    return TSR_OK;
}

void ckks_fuzz_spec(tsr_ckks_param_spec *spec) {
    memset(spec, 0, sizeof *spec);
    spec->log_n = 5;
    spec->first_prime_bits = 45;
    spec->scale_bits = 40;
    spec->levels = 1;
    spec->special_primes = 1;
    spec->special_prime_bits = 50;
    spec->dnum = 0;
    spec->secret = TSR_CKKS_SECRET_TERNARY;
    spec->flags = TSR_CKKS_ALLOW_INSECURE_PARAMETERS;
}

/* ---- public wrappers: files, streams, memory
 * -------------------------------------------------------- */

void tsr_ckks_bytes_free(uint8_t *buf) {
    tsr_free(buf);
}

static tsr_status finish_writer(tsr_writer *w, tsr_status st) {
    return tsr_writer_finish(w, st);
}

static tsr_status to_bytes_finish(tsr_writer *w, tsr_status st, uint8_t **buf, size_t *len) {
    *buf = NULL;
    *len = 0;
    if (st == TSR_OK) st = w->err;
    if (st != TSR_OK) {
        tsr_writer_close(w);
        return st;
    }
    *buf = tsr_writer_take_buffer(w, len);
    tsr_writer_close(w);
    return TSR_OK;
}

/* After a whole-input read: the input must hold nothing else. */
static tsr_status check_end(tsr_reader *r, tsr_status st) {
    if (st != TSR_OK) return st;
    uint8_t b;
    size_t got = r->fp ? fread(&b, 1, 1, r->fp) : (r->mem_pos < r->mem_len);
    if (got)
        return tsr_fail(TSR_ERR_FORMAT,
                        "unexpected data after the object (%llu bytes read): the input holds more "
                        "than one object or is corrupted",
                        (unsigned long long)r->consumed);
    return TSR_OK;
}

static tsr_status close_reader(tsr_reader *r, tsr_status st) {
    tsr_reader_close(r);
    return st;
}

#define CKKS_IO_FUNCS(T, name, secret)                                                             \
    tsr_status tsr_ckks_##name##_write(const T *obj, FILE *fp) {                                   \
        TSR_REQUIRE(obj &&fp, "tsr_ckks_" #name "_write: NULL argument");                          \
        tsr_writer w;                                                                              \
        tsr_writer_init_fp(&w, fp);                                                                \
        return finish_writer(&w, ckks_##name##_write(&w, obj));                                    \
    }                                                                                              \
    tsr_status tsr_ckks_##name##_save(const T *obj, const char *path) {                            \
        TSR_REQUIRE(obj &&path, "tsr_ckks_" #name "_save: NULL argument");                         \
        tsr_writer w;                                                                              \
        TSR_TRY(tsr_writer_open_file(&w, path, secret));                                           \
        tsr_status st = finish_writer(&w, ckks_##name##_write(&w, obj));                           \
        if (st != TSR_OK) return tsr_fail_context(st, "writing '%s': ", path);                     \
        return TSR_OK;                                                                             \
    }                                                                                              \
    tsr_status tsr_ckks_##name##_to_bytes(const T *obj, uint8_t **buf, size_t *len) {              \
        TSR_REQUIRE(obj &&buf &&len, "tsr_ckks_" #name "_to_bytes: NULL argument");                \
        tsr_writer w;                                                                              \
        tsr_writer_init_mem(&w);                                                                   \
        return to_bytes_finish(&w, ckks_##name##_write(&w, obj), buf, len);                        \
    }                                                                                              \
    tsr_status tsr_ckks_##name##_read(T **out, tsr_ckks_params *p, FILE *fp) {                     \
        TSR_REQUIRE(out &&p &&fp, "tsr_ckks_" #name "_read: NULL argument");                       \
        tsr_reader r;                                                                              \
        tsr_reader_init_fp(&r, fp);                                                                \
        return close_reader(&r, ckks_##name##_read(&r, p, out));                                   \
    }                                                                                              \
    tsr_status tsr_ckks_##name##_load(T **out, tsr_ckks_params *p, const char *path) {             \
        TSR_REQUIRE(out &&p &&path, "tsr_ckks_" #name "_load: NULL argument");                     \
        tsr_reader r;                                                                              \
        *out = NULL;                                                                               \
        TSR_TRY(tsr_reader_open_file(&r, path));                                                   \
        tsr_status st = check_end(&r, ckks_##name##_read(&r, p, out));                             \
        tsr_reader_close(&r);                                                                      \
        if (st != TSR_OK) {                                                                        \
            tsr_ckks_##name##_free(*out);                                                          \
            *out = NULL;                                                                           \
            return tsr_fail_context(st, "reading '%s': ", path);                                   \
        }                                                                                          \
        return TSR_OK;                                                                             \
    }                                                                                              \
    tsr_status tsr_ckks_##name##_from_bytes(T **out, tsr_ckks_params *p, const uint8_t *buf,       \
                                            size_t len) {                                          \
        TSR_REQUIRE(out &&p && (buf || len == 0), "tsr_ckks_" #name "_from_bytes: NULL argument"); \
        tsr_reader r;                                                                              \
        tsr_reader_init_mem(&r, buf, len);                                                         \
        tsr_status st = check_end(&r, ckks_##name##_read(&r, p, out));                             \
        if (st != TSR_OK) {                                                                        \
            tsr_ckks_##name##_free(*out);                                                          \
            *out = NULL;                                                                           \
        }                                                                                          \
        return st;                                                                                 \
    }

CKKS_IO_FUNCS(tsr_ckks_plaintext, plaintext, 0)
CKKS_IO_FUNCS(tsr_ckks_ciphertext, ciphertext, 0)
CKKS_IO_FUNCS(tsr_ckks_public_key, public_key, 0)
CKKS_IO_FUNCS(tsr_ckks_relin_key, relin_key, 0)
CKKS_IO_FUNCS(tsr_ckks_galois_keys, galois_keys, 0)
CKKS_IO_FUNCS(tsr_ckks_secret_key, secret_key, TSR_OUT_SECRET)

/* Parameters and the evaluation-key bundle have their own signatures. */

tsr_status tsr_ckks_params_write(const tsr_ckks_params *p, FILE *fp) {
    TSR_REQUIRE(p && fp, "tsr_ckks_params_write: NULL argument");
    tsr_writer w;
    tsr_writer_init_fp(&w, fp);
    return finish_writer(&w, ckks_params_write(&w, p));
}

tsr_status tsr_ckks_params_save(const tsr_ckks_params *p, const char *path) {
    TSR_REQUIRE(p && path, "tsr_ckks_params_save: NULL argument");
    tsr_writer w;
    TSR_TRY(tsr_writer_open_file(&w, path, 0));
    tsr_status st = finish_writer(&w, ckks_params_write(&w, p));
    return st == TSR_OK ? st : tsr_fail_context(st, "writing '%s': ", path);
}

tsr_status tsr_ckks_params_to_bytes(const tsr_ckks_params *p, uint8_t **buf, size_t *len) {
    TSR_REQUIRE(p && buf && len, "tsr_ckks_params_to_bytes: NULL argument");
    tsr_writer w;
    tsr_writer_init_mem(&w);
    return to_bytes_finish(&w, ckks_params_write(&w, p), buf, len);
}

tsr_status tsr_ckks_params_read(tsr_ckks_params **out, FILE *fp, uint32_t flags) {
    TSR_REQUIRE(out && fp, "tsr_ckks_params_read: NULL argument");
    tsr_reader r;
    tsr_reader_init_fp(&r, fp);
    return close_reader(&r, ckks_params_read(&r, flags, out));
}

tsr_status tsr_ckks_params_load(tsr_ckks_params **out, const char *path, uint32_t flags) {
    TSR_REQUIRE(out && path, "tsr_ckks_params_load: NULL argument");
    tsr_reader r;
    *out = NULL;
    TSR_TRY(tsr_reader_open_file(&r, path));
    tsr_status st = check_end(&r, ckks_params_read(&r, flags, out));
    tsr_reader_close(&r);
    if (st != TSR_OK) {
        tsr_ckks_params_free(*out);
        *out = NULL;
        return tsr_fail_context(st, "reading '%s': ", path);
    }
    return TSR_OK;
}

tsr_status tsr_ckks_params_from_bytes(tsr_ckks_params **out, const uint8_t *buf, size_t len,
                                      uint32_t flags) {
    TSR_REQUIRE(out && (buf || len == 0), "tsr_ckks_params_from_bytes: NULL argument");
    tsr_reader r;
    tsr_reader_init_mem(&r, buf, len);
    tsr_status st = check_end(&r, ckks_params_read(&r, flags, out));
    if (st != TSR_OK) {
        tsr_ckks_params_free(*out);
        *out = NULL;
    }
    return st;
}

tsr_status tsr_ckks_eval_keys_write(const tsr_ckks_params *p,
                                    const uint8_t key_id[TSR_CKKS_KEY_ID_BYTES],
                                    const tsr_ckks_relin_key *rk, const tsr_ckks_galois_keys *gk,
                                    FILE *fp) {
    TSR_REQUIRE(p && key_id && fp, "tsr_ckks_eval_keys_write: NULL argument");
    tsr_writer w;
    tsr_writer_init_fp(&w, fp);
    return finish_writer(&w, ckks_eval_keys_write(&w, p, rk, gk, key_id));
}

tsr_status tsr_ckks_eval_keys_save(const tsr_ckks_params *p,
                                   const uint8_t key_id[TSR_CKKS_KEY_ID_BYTES],
                                   const tsr_ckks_relin_key *rk, const tsr_ckks_galois_keys *gk,
                                   const char *path) {
    TSR_REQUIRE(p && key_id && path, "tsr_ckks_eval_keys_save: NULL argument");
    tsr_writer w;
    TSR_TRY(tsr_writer_open_file(&w, path, 0));
    tsr_status st = finish_writer(&w, ckks_eval_keys_write(&w, p, rk, gk, key_id));
    return st == TSR_OK ? st : tsr_fail_context(st, "writing '%s': ", path);
}

tsr_status tsr_ckks_eval_keys_to_bytes(const tsr_ckks_params *p,
                                       const uint8_t key_id[TSR_CKKS_KEY_ID_BYTES],
                                       const tsr_ckks_relin_key *rk, const tsr_ckks_galois_keys *gk,
                                       uint8_t **buf, size_t *len) {
    TSR_REQUIRE(p && key_id && buf && len, "tsr_ckks_eval_keys_to_bytes: NULL argument");
    tsr_writer w;
    tsr_writer_init_mem(&w);
    return to_bytes_finish(&w, ckks_eval_keys_write(&w, p, rk, gk, key_id), buf, len);
}

tsr_status tsr_ckks_eval_keys_read(tsr_ckks_relin_key **rk, tsr_ckks_galois_keys **gk,
                                   uint8_t key_id[TSR_CKKS_KEY_ID_BYTES], tsr_ckks_params *p,
                                   FILE *fp) {
    TSR_REQUIRE(rk && gk && p && fp, "tsr_ckks_eval_keys_read: NULL argument");
    tsr_reader r;
    tsr_reader_init_fp(&r, fp);
    return close_reader(&r, ckks_eval_keys_read(&r, p, rk, gk, key_id));
}

tsr_status tsr_ckks_eval_keys_load(tsr_ckks_relin_key **rk, tsr_ckks_galois_keys **gk,
                                   uint8_t key_id[TSR_CKKS_KEY_ID_BYTES], tsr_ckks_params *p,
                                   const char *path) {
    TSR_REQUIRE(rk && gk && p && path, "tsr_ckks_eval_keys_load: NULL argument");
    tsr_reader r;
    *rk = NULL;
    *gk = NULL;
    TSR_TRY(tsr_reader_open_file(&r, path));
    tsr_status st = check_end(&r, ckks_eval_keys_read(&r, p, rk, gk, key_id));
    tsr_reader_close(&r);
    if (st != TSR_OK) {
        tsr_ckks_relin_key_free(*rk);
        tsr_ckks_galois_keys_free(*gk);
        *rk = NULL;
        *gk = NULL;
        return tsr_fail_context(st, "reading '%s': ", path);
    }
    return TSR_OK;
}

tsr_status tsr_ckks_eval_keys_from_bytes(tsr_ckks_relin_key **rk, tsr_ckks_galois_keys **gk,
                                         uint8_t key_id[TSR_CKKS_KEY_ID_BYTES], tsr_ckks_params *p,
                                         const uint8_t *buf, size_t len) {
    TSR_REQUIRE(rk && gk && p && (buf || len == 0), "tsr_ckks_eval_keys_from_bytes: NULL argument");
    tsr_reader r;
    tsr_reader_init_mem(&r, buf, len);
    tsr_status st = check_end(&r, ckks_eval_keys_read(&r, p, rk, gk, key_id));
    if (st != TSR_OK) {
        tsr_ckks_relin_key_free(*rk);
        tsr_ckks_galois_keys_free(*gk);
        *rk = NULL;
        *gk = NULL;
    }
    return st;
}
