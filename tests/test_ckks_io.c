/*
 * tests/test_ckks_io.c - serialization of every CKKS object: round trips
 * (memory, files, streams; seeded forms; file modes), and bad input:
 * truncation at every byte, corruption of every byte, other parameters,
 * other kinds, secret keys where public material is expected, coefficients
 * not below their prime, out-of-range fields, trailing data, insecure
 * parameter files.
 *
 * With TSR_WRITE_FUZZ_CORPUS=<dir> set, this test also writes the seed
 * corpora of the fuzz targets to <dir>/fuzz_ckks_<reader>/ (that is how
 * fuzz/corpus/ was generated: TSR_WRITE_FUZZ_CORPUS=fuzz/corpus
 * ./build/tests/test_ckks_io).
 */
#include "testutil.h"

#include "tessera.h"
#include "tessera/ckks.h"
#include "ckks/ckks_internal.h"
#include "ckks/serialize.h"
#include "core/alloc.h"
#include "core/io.h"

#include <errno.h>
#include <math.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

typedef struct world {
    tsr_ckks_params *p;
    tsr_ckks_secret_key *sk;
    tsr_ckks_public_key *pk;
    tsr_ckks_relin_key *rk;
    tsr_ckks_galois_keys *gk;
    tsr_ckks_encoder *enc;
    tsr_ckks_evaluator *ev;
    tsr_ckks_plaintext *pt;
    tsr_ckks_ciphertext *ct;  /* public-key encryption */
    tsr_ckks_ciphertext *sct; /* seeded symmetric encryption */
    tsr_ckks_ciphertext *ct3; /* size 3 */
    double *x;
} world;

static void world_init(world *w, const tsr_ckks_param_spec *spec) {
    memset(w, 0, sizeof *w);
    tt_ok(tsr_ckks_params_create(&w->p, spec));
    tt_ok(tsr_ckks_secret_key_create(&w->sk, w->p));
    tt_ok(tsr_ckks_public_key_create(&w->pk, w->sk));
    tt_ok(tsr_ckks_relin_key_create(&w->rk, w->sk));
    const int steps[] = { 1, -1, 3 };
    tt_ok(tsr_ckks_galois_keys_create(&w->gk, w->sk, steps, 3, TSR_CKKS_GALOIS_CONJUGATE));
    tt_ok(tsr_ckks_encoder_create(&w->enc, w->p));
    tt_ok(tsr_ckks_evaluator_create(&w->ev, w->p, w->rk, w->gk));
    tt_ok(tsr_ckks_plaintext_create(&w->pt, w->p));
    size_t n = tsr_ckks_params_slots(w->p);
    tsr_prng g;
    tt_prng(&g, 11);
    w->x = malloc(n * sizeof *w->x);
    for (size_t i = 0; i < n; i++) w->x[i] = 2 * tsr_prng_double(&g) - 1;
    tt_ok(tsr_ckks_encode_real(w->enc, w->pt, w->x, n, TSR_CKKS_TOP_LEVEL, 0));
    tt_ok(tsr_ckks_ciphertext_create(&w->ct, w->p));
    tt_ok(tsr_ckks_ciphertext_create(&w->sct, w->p));
    tt_ok(tsr_ckks_ciphertext_create(&w->ct3, w->p));
    tt_ok(tsr_ckks_encrypt(w->pk, w->ct, w->pt));
    tt_ok(tsr_ckks_encrypt_symmetric(w->sk, w->sct, w->pt));
    tt_ok(tsr_ckks_mul(w->ev, w->ct3, w->ct, w->sct));
}

static void world_free(world *w) {
    tsr_ckks_ciphertext_free(w->ct);
    tsr_ckks_ciphertext_free(w->sct);
    tsr_ckks_ciphertext_free(w->ct3);
    tsr_ckks_plaintext_free(w->pt);
    tsr_ckks_evaluator_free(w->ev);
    tsr_ckks_encoder_free(w->enc);
    tsr_ckks_galois_keys_free(w->gk);
    tsr_ckks_relin_key_free(w->rk);
    tsr_ckks_public_key_free(w->pk);
    tsr_ckks_secret_key_free(w->sk);
    tsr_ckks_params_free(w->p);
    free(w->x);
}

static int ct_equal(const tsr_ckks_ciphertext *a, const tsr_ckks_ciphertext *b) {
    if (a->level != b->level || a->size != b->size || a->scale != b->scale) return 0;
    size_t words = (size_t)(a->level + 1) * a->params->n;
    for (int k = 0; k < a->size; k++)
        if (memcmp(ckks_ct_poly(a, k), ckks_ct_poly(b, k), words * 8) != 0) return 0;
    return 1;
}

/* Recompute the BLAKE2b checksum of a single-frame buffer after an edit. */
static void reseal(uint8_t *buf, size_t len) {
    crypto_generichash(buf + len - TSR_FRAME_HASH_SIZE, TSR_FRAME_HASH_SIZE, buf,
                       len - TSR_FRAME_HASH_SIZE, NULL, 0);
}

static tsr_ckks_param_spec small_spec(void) {
    tsr_ckks_param_spec s = { .log_n = 10,
                              .first_prime_bits = 50,
                              .scale_bits = 40,
                              .levels = 2,
                              .special_primes = 1,
                              .special_prime_bits = 55,
                              .secret = TSR_CKKS_SECRET_TERNARY,
                              .flags = TSR_CKKS_ALLOW_INSECURE_PARAMETERS };
    return s;
}

/* ---- round trips ---------------------------------------------------------------------- */

static void test_roundtrip(void **state) {
    (void)state;
    tsr_ckks_param_spec s = small_spec();
    world w;
    world_init(&w, &s);
    uint8_t *buf;
    size_t len;

    /* parameters: equal fingerprint; the insecure set needs the flag to load */
    tt_ok(tsr_ckks_params_to_bytes(w.p, &buf, &len));
    tsr_ckks_params *p2;
    tt_fails(tsr_ckks_params_from_bytes(&p2, buf, len, 0), TSR_ERR_INSECURE);
    assert_null(p2);
    tt_ok(tsr_ckks_params_from_bytes(&p2, buf, len, TSR_CKKS_ALLOW_INSECURE_PARAMETERS));
    uint8_t f1[16], f2[16];
    tsr_ckks_params_fingerprint(w.p, f1);
    tsr_ckks_params_fingerprint(p2, f2);
    assert_memory_equal(f1, f2, 16);
    tsr_ckks_params_free(p2);
    tsr_ckks_bytes_free(buf);
    /* a secure preset loads without the flag */
    tsr_ckks_params *pre;
    tt_ok(tsr_ckks_params_create_preset(&pre, "n13-l3"));
    tt_ok(tsr_ckks_params_to_bytes(pre, &buf, &len));
    tt_ok(tsr_ckks_params_from_bytes(&p2, buf, len, 0));
    tsr_ckks_params_free(p2);
    tsr_ckks_params_free(pre);
    tsr_ckks_bytes_free(buf);

    /* plaintext */
    tsr_ckks_plaintext *pt2;
    tt_ok(tsr_ckks_plaintext_to_bytes(w.pt, &buf, &len));
    tt_ok(tsr_ckks_plaintext_from_bytes(&pt2, w.p, buf, len));
    assert_int_equal(pt2->level, w.pt->level);
    assert_true(pt2->scale == w.pt->scale);
    assert_memory_equal(pt2->data, w.pt->data, (size_t)(w.pt->level + 1) * w.p->n * 8);
    tsr_ckks_plaintext_free(pt2);
    tsr_ckks_bytes_free(buf);

    /* ciphertexts: plain, seeded (half the size), size 3 */
    const tsr_ckks_ciphertext *cts[] = { w.ct, w.sct, w.ct3 };
    size_t lens[3];
    for (int i = 0; i < 3; i++) {
        tsr_ckks_ciphertext *c2;
        tt_ok(tsr_ckks_ciphertext_to_bytes(cts[i], &buf, &len));
        assert_int_equal(len, tsr_ckks_ciphertext_serialized_size(cts[i]));
        lens[i] = len;
        tt_ok(tsr_ckks_ciphertext_from_bytes(&c2, w.p, buf, len));
        assert_true(ct_equal(c2, cts[i]));
        assert_int_equal(c2->seeded, cts[i]->seeded);
        tsr_ckks_ciphertext_free(c2);
        tsr_ckks_bytes_free(buf);
    }
    assert_int_equal(w.sct->seeded, 1);
    assert_true(lens[1] < lens[0] / 2 + 200);
    /* An operation touching c1 drops the seeded form. */
    tsr_ckks_ciphertext *t;
    tt_ok(tsr_ckks_ciphertext_create(&t, w.p));
    tt_ok(tsr_ckks_add_const(w.ev, w.sct, w.sct, 0.5, 0));
    assert_int_equal(w.sct->seeded, 1); /* c0 only */
    tt_ok(tsr_ckks_rotate(w.ev, t, w.sct, 1));
    assert_int_equal(t->seeded, 0);

    /* public key: half stored as a seed; the loaded key encrypts correctly */
    tsr_ckks_public_key *pk2;
    tt_ok(tsr_ckks_public_key_to_bytes(w.pk, &buf, &len));
    assert_int_equal(len, tsr_ckks_public_key_serialized_size(w.pk));
    assert_true(len < (size_t)w.p->nall * w.p->n * 8 + 200);
    tt_ok(tsr_ckks_public_key_from_bytes(&pk2, w.p, buf, len));
    assert_memory_equal(pk2->a, w.pk->a, (size_t)w.p->nall * w.p->n * 8);
    tt_ok(tsr_ckks_encrypt(pk2, t, w.pt));
    tt_ok(tsr_ckks_decrypt(w.sk, w.pt, t));
    size_t n = tsr_ckks_params_slots(w.p);
    double *got = malloc(n * sizeof *got);
    tt_ok(tsr_ckks_decode_real(w.enc, w.pt, got, n, NULL));
    assert_true(tt_precision_bits(got, w.x, n) >= 24);
    tsr_ckks_public_key_free(pk2);
    tsr_ckks_bytes_free(buf);

    /* relinearization and Galois keys: identical results with loaded keys */
    tsr_ckks_relin_key *rk2;
    tsr_ckks_galois_keys *gk2;
    tt_ok(tsr_ckks_relin_key_to_bytes(w.rk, &buf, &len));
    assert_int_equal(len, tsr_ckks_relin_key_serialized_size(w.rk));
    tt_ok(tsr_ckks_relin_key_from_bytes(&rk2, w.p, buf, len));
    tsr_ckks_bytes_free(buf);
    tt_ok(tsr_ckks_galois_keys_to_bytes(w.gk, &buf, &len));
    assert_int_equal(len, tsr_ckks_galois_keys_serialized_size(w.gk));
    tt_ok(tsr_ckks_galois_keys_from_bytes(&gk2, w.p, buf, len));
    tsr_ckks_bytes_free(buf);
    assert_int_equal(tsr_ckks_galois_keys_count(gk2), 4);
    tsr_ckks_evaluator *ev2;
    tt_ok(tsr_ckks_evaluator_create(&ev2, w.p, rk2, gk2));
    tsr_ckks_ciphertext *a, *b;
    tt_ok(tsr_ckks_ciphertext_create(&a, w.p));
    tt_ok(tsr_ckks_ciphertext_create(&b, w.p));
    tt_ok(tsr_ckks_relinearize(w.ev, a, w.ct3));
    tt_ok(tsr_ckks_relinearize(ev2, b, w.ct3));
    assert_true(ct_equal(a, b));
    tt_ok(tsr_ckks_rotate(w.ev, a, w.ct, 4)); /* composed */
    tt_ok(tsr_ckks_rotate(ev2, b, w.ct, 4));
    assert_true(ct_equal(a, b));
    tt_ok(tsr_ckks_conjugate(ev2, b, w.ct));
    tsr_ckks_evaluator_free(ev2);
    tsr_ckks_relin_key_free(rk2);
    tsr_ckks_galois_keys_free(gk2);

    /* evaluation-key bundles: both, relin only, Galois only, none (a linear plan) */
    const tsr_ckks_relin_key *rks[] = { w.rk, w.rk, NULL, NULL };
    const tsr_ckks_galois_keys *gks[] = { w.gk, NULL, w.gk, NULL };
    uint8_t id[TSR_CKKS_KEY_ID_BYTES], id2[TSR_CKKS_KEY_ID_BYTES];
    tsr_ckks_secret_key_id(w.sk, id);
    for (int i = 0; i < 4; i++) {
        tt_ok(tsr_ckks_eval_keys_to_bytes(w.p, id, rks[i], gks[i], &buf, &len));
        memset(id2, 0, sizeof id2);
        tt_ok(tsr_ckks_eval_keys_from_bytes(&rk2, &gk2, id2, w.p, buf, len));
        assert_memory_equal(id2, id, sizeof id);
        assert_int_equal(rk2 != NULL, rks[i] != NULL);
        assert_int_equal(gk2 != NULL, gks[i] != NULL);
        if (rk2) { /* seeded: the seed and the b halves */
            assert_true(rk2->key.seeded);
            assert_memory_equal(rk2->key.seed, w.rk->key.seed, TSR_SEED_BYTES);
            assert_memory_equal(rk2->key.data, w.rk->key.data,
                                (size_t)w.p->dnum * w.p->nall * w.p->n * 8);
        }
        if (gk2) assert_int_equal(tsr_ckks_galois_keys_count(gk2), 4);
        tsr_ckks_relin_key_free(rk2);
        tsr_ckks_galois_keys_free(gk2);
        tsr_ckks_bytes_free(buf);
    }
    /* keys of one key set are not bundled under another's id */
    id2[0] = (uint8_t)(id[0] ^ 1);
    memcpy(id2 + 1, id + 1, sizeof id - 1);
    tt_fails(tsr_ckks_eval_keys_to_bytes(w.p, id2, w.rk, NULL, &buf, &len), TSR_ERR_MISMATCH);
    tt_fails(tsr_ckks_eval_keys_to_bytes(w.p, id2, NULL, w.gk, &buf, &len), TSR_ERR_MISMATCH);

    /* files: secret key with mode 0600, a ciphertext, a stream of two objects */
    const char *skp = tt_temp_path(".sk");
    tt_ok(tsr_ckks_secret_key_save(w.sk, skp));
    struct stat st;
    assert_int_equal(stat(skp, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    tsr_ckks_secret_key *sk2;
    tt_ok(tsr_ckks_secret_key_load(&sk2, w.p, skp));
    assert_memory_equal(sk2->coeffs, w.sk->coeffs, w.p->n);
    assert_memory_equal(sk2->s_ntt, w.sk->s_ntt, (size_t)w.p->nall * w.p->n * 8);
    tsr_ckks_secret_key_free(sk2);
    /* ... and the evaluation-key reader refuses it */
    tt_fails(tsr_ckks_eval_keys_load(&rk2, &gk2, NULL, w.p, skp), TSR_ERR_SECRET);
    assert_null(rk2);
    tt_fails(tsr_ckks_galois_keys_load(&gk2, w.p, skp), TSR_ERR_SECRET);
    tsr_ckks_ciphertext *never;
    tt_fails(tsr_ckks_ciphertext_load(&never, w.p, skp), TSR_ERR_SECRET);
    assert_null(never);
    unlink(skp);

    const char *ctp = tt_temp_path(".ct");
    tt_ok(tsr_ckks_ciphertext_save(w.ct, ctp));
    tsr_ckks_ciphertext *c2;
    tt_ok(tsr_ckks_ciphertext_load(&c2, w.p, ctp));
    assert_true(ct_equal(c2, w.ct));
    tsr_ckks_ciphertext_free(c2);
    tt_fails(tsr_ckks_ciphertext_load(&c2, w.p, "/nonexistent/dir/x.ct"), TSR_ERR_NOT_FOUND);
    FILE *fp = fopen(ctp, "wb");
    tt_ok(tsr_ckks_params_write(w.p, fp));
    tt_ok(tsr_ckks_ciphertext_write(w.sct, fp));
    tt_ok(tsr_ckks_ciphertext_write(w.ct3, fp));
    fclose(fp);
    fp = fopen(ctp, "rb");
    tt_ok(tsr_ckks_params_read(&p2, fp, TSR_CKKS_ALLOW_INSECURE_PARAMETERS));
    tt_ok(tsr_ckks_ciphertext_read(&c2, p2, fp));
    assert_true(ct_equal(c2, w.sct));
    tsr_ckks_ciphertext_free(c2);
    tt_ok(tsr_ckks_ciphertext_read(&c2, p2, fp));
    assert_true(ct_equal(c2, w.ct3));
    tsr_ckks_ciphertext_free(c2);
    fclose(fp);
    tsr_ckks_params_free(p2);
    /* a file with two objects is not one ciphertext */
    tt_fails(tsr_ckks_ciphertext_load(&c2, w.p, ctp), TSR_ERR_MISMATCH);
    unlink(ctp);

    free(got);
    tsr_ckks_ciphertext_free(a);
    tsr_ckks_ciphertext_free(b);
    tsr_ckks_ciphertext_free(t);
    world_free(&w);
}

/* ---- bad input ------------------------------------------------------------------------------ */

typedef tsr_status (*load_fn)(world *w, const uint8_t *buf, size_t len);

static tsr_status load_ct(world *w, const uint8_t *buf, size_t len) {
    tsr_ckks_ciphertext *c;
    tsr_status st = tsr_ckks_ciphertext_from_bytes(&c, w->p, buf, len);
    tsr_ckks_ciphertext_free(c);
    return st;
}

static tsr_status load_pt(world *w, const uint8_t *buf, size_t len) {
    tsr_ckks_plaintext *c;
    tsr_status st = tsr_ckks_plaintext_from_bytes(&c, w->p, buf, len);
    tsr_ckks_plaintext_free(c);
    return st;
}

static tsr_status load_sk(world *w, const uint8_t *buf, size_t len) {
    tsr_ckks_secret_key *c;
    tsr_status st = tsr_ckks_secret_key_from_bytes(&c, w->p, buf, len);
    tsr_ckks_secret_key_free(c);
    return st;
}

static tsr_status load_ek(world *w, const uint8_t *buf, size_t len) {
    tsr_ckks_relin_key *rk;
    tsr_ckks_galois_keys *gk;
    tsr_status st = tsr_ckks_eval_keys_from_bytes(&rk, &gk, NULL, w->p, buf, len);
    tsr_ckks_relin_key_free(rk);
    tsr_ckks_galois_keys_free(gk);
    return st;
}

static tsr_status load_pk(world *w, const uint8_t *buf, size_t len) {
    tsr_ckks_public_key *c;
    tsr_status st = tsr_ckks_public_key_from_bytes(&c, w->p, buf, len);
    tsr_ckks_public_key_free(c);
    return st;
}

static tsr_status load_params(world *w, const uint8_t *buf, size_t len) {
    (void)w;
    tsr_ckks_params *c;
    tsr_status st = tsr_ckks_params_from_bytes(&c, buf, len, TSR_CKKS_ALLOW_INSECURE_PARAMETERS);
    tsr_ckks_params_free(c);
    return st;
}

/* Every truncation is TSR_ERR_FORMAT; every single-byte corruption fails. */
static void mangle_all(world *w, const uint8_t *buf, size_t len, load_fn load, const char *what) {
    uint8_t *copy = malloc(len + 1);
    tt_ok(load(w, buf, len));
    for (size_t cut = 0; cut < len; cut++) {
        tsr_clear_error();
        tsr_status st = load(w, buf, cut);
        if (st != TSR_ERR_FORMAT)
            fail_msg("%s truncated to %zu of %zu bytes: %s (%s)", what, cut, len, tsr_strerror(st),
                     tsr_last_error());
    }
    for (size_t pos = 0; pos < len; pos++) {
        memcpy(copy, buf, len);
        copy[pos] ^= (uint8_t)(1u << (pos % 8));
        tsr_clear_error();
        tsr_status st = load(w, copy, len);
        if (st == TSR_OK) fail_msg("%s with byte %zu flipped loaded fine", what, pos);
        if (tsr_last_error()[0] == '\0') fail_msg("%s byte %zu: error without message", what, pos);
        /* Bytes of the trailing checksum and of coefficients fail the checksum. */
        if (pos >= len - TSR_FRAME_HASH_SIZE && st != TSR_ERR_CHECKSUM)
            fail_msg("%s checksum byte %zu: %s", what, pos, tsr_strerror(st));
        if (pos < 4 && st != TSR_ERR_FORMAT)
            fail_msg("%s magic byte %zu: %s", what, pos, tsr_strerror(st));
        if ((pos == 4 || pos == 5) && st != TSR_ERR_VERSION)
            fail_msg("%s version byte %zu: %s", what, pos, tsr_strerror(st));
        if (pos >= 12 && pos < 28 && st != TSR_ERR_MISMATCH && strcmp(what, "params") != 0)
            fail_msg("%s fingerprint byte %zu: %s", what, pos, tsr_strerror(st));
    }
    /* Trailing data. */
    memcpy(copy, buf, len);
    copy[len] = 0;
    tt_fails(load(w, copy, len + 1), TSR_ERR_FORMAT);
    free(copy);
}

static void test_truncation_and_corruption(void **state) {
    (void)state;
    tsr_ckks_param_spec s;
    ckks_fuzz_spec(&s);
    world w;
    world_init(&w, &s);
    uint8_t *buf;
    size_t len;
    tt_ok(tsr_ckks_ciphertext_to_bytes(w.sct, &buf, &len));
    mangle_all(&w, buf, len, load_ct, "seeded ciphertext");
    tsr_ckks_bytes_free(buf);
    tt_ok(tsr_ckks_ciphertext_to_bytes(w.ct3, &buf, &len));
    mangle_all(&w, buf, len, load_ct, "ciphertext");
    tsr_ckks_bytes_free(buf);
    tt_ok(tsr_ckks_plaintext_to_bytes(w.pt, &buf, &len));
    mangle_all(&w, buf, len, load_pt, "plaintext");
    tsr_ckks_bytes_free(buf);
    tt_ok(tsr_ckks_secret_key_to_bytes(w.sk, &buf, &len));
    mangle_all(&w, buf, len, load_sk, "secret key");
    tsr_ckks_bytes_free(buf);
    tt_ok(tsr_ckks_public_key_to_bytes(w.pk, &buf, &len));
    mangle_all(&w, buf, len, load_pk, "public key");
    tsr_ckks_bytes_free(buf);
    /* One Galois key keeps the every-byte loops short. */
    tsr_ckks_galois_keys *gk1;
    const int one = 1;
    tt_ok(tsr_ckks_galois_keys_create(&gk1, w.sk, &one, 1, 0));
    uint8_t id[TSR_CKKS_KEY_ID_BYTES];
    tsr_ckks_secret_key_id(w.sk, id);
    tt_ok(tsr_ckks_eval_keys_to_bytes(w.p, id, w.rk, gk1, &buf, &len));
    mangle_all(&w, buf, len, load_ek, "evaluation keys");
    tsr_ckks_bytes_free(buf);
    tsr_ckks_galois_keys_free(gk1);
    tt_ok(tsr_ckks_params_to_bytes(w.p, &buf, &len));
    mangle_all(&w, buf, len, load_params, "params");
    tsr_ckks_bytes_free(buf);
    world_free(&w);
}

static void test_invalid_fields(void **state) {
    (void)state;
    tsr_ckks_param_spec s;
    ckks_fuzz_spec(&s);
    world w;
    world_init(&w, &s);
    uint8_t *buf;
    size_t len;
    tsr_ckks_ciphertext *c = NULL;
    tt_ok(tsr_ckks_ciphertext_to_bytes(w.ct, &buf, &len));
    const size_t H = TSR_FRAME_HEADER_SIZE;
    /* A coefficient equal to its prime, with a valid checksum. */
    uint64_t q0 = w.p->primes[0];
    uint8_t *e = malloc(len);
    memcpy(e, buf, len);
    for (int i = 0; i < 8; i++) e[H + 32 + 5 * 8 + i] = (uint8_t)(q0 >> (8 * i));
    reseal(e, len);
    tt_fails(tsr_ckks_ciphertext_from_bytes(&c, w.p, e, len), TSR_ERR_FORMAT);
    assert_non_null(strstr(tsr_last_error(), "not below the modulus"));
    assert_null(c);
    /* Level above the top, size 4, negative scale, NaN noise estimate. */
    const struct {
        size_t off;
        uint64_t val;
        int bytes;
    } edits[] = {
        { H + 0, 7, 4 },                      /* level */
        { H + 4, 4, 4 },                      /* size */
        { H + 8, 0xbff0000000000000ull, 8 },  /* scale = -1 */
        { H + 16, 0x7ff8000000000000ull, 8 }, /* err = NaN */
        { 8, TSR_FRAME_SEEDED | 0x10, 4 },    /* unknown flag */
    };
    for (size_t k = 0; k < sizeof edits / sizeof edits[0]; k++) {
        memcpy(e, buf, len);
        for (int i = 0; i < edits[k].bytes; i++)
            e[edits[k].off + i] = (uint8_t)(edits[k].val >> (8 * i));
        reseal(e, len);
        tt_fails(tsr_ckks_ciphertext_from_bytes(&c, w.p, e, len), TSR_ERR_FORMAT);
    }
    /* Another kind: a ciphertext read as a public key / plaintext. */
    tsr_ckks_public_key *pk;
    tt_fails(tsr_ckks_public_key_from_bytes(&pk, w.p, buf, len), TSR_ERR_MISMATCH);
    assert_non_null(strstr(tsr_last_error(), "expected a public key"));
    tsr_ckks_plaintext *pt;
    tt_fails(tsr_ckks_plaintext_from_bytes(&pt, w.p, buf, len), TSR_ERR_MISMATCH);
    /* Other parameters. */
    tsr_ckks_param_spec s2 = s;
    s2.scale_bits = 39;
    tsr_ckks_params *p2;
    tt_ok(tsr_ckks_params_create(&p2, &s2));
    tt_fails(tsr_ckks_ciphertext_from_bytes(&c, p2, buf, len), TSR_ERR_MISMATCH);
    assert_non_null(strstr(tsr_last_error(), "other CKKS parameters"));
    tsr_ckks_params_free(p2);
    /* Galois keys with elements out of order, or even. */
    tsr_ckks_bytes_free(buf);
    tt_ok(tsr_ckks_galois_keys_to_bytes(w.gk, &buf, &len));
    tsr_ckks_galois_keys *gk;
    free(e);
    e = malloc(len);
    memcpy(e, buf, len);
    const size_t K = TSR_CKKS_KEY_ID_BYTES; /* key frames start with the key-set id */
    e[H + K + 4] = 2;                       /* first element even */
    reseal(e, len);
    tt_fails(tsr_ckks_galois_keys_from_bytes(&gk, w.p, e, len), TSR_ERR_FORMAT);
    memcpy(e, buf, len);
    e[H + K + 0] = 0xff; /* count far beyond the payload */
    reseal(e, len);
    tt_fails(tsr_ckks_galois_keys_from_bytes(&gk, w.p, e, len), TSR_ERR_FORMAT);
    /* Secret key with a fourth code. */
    tsr_ckks_bytes_free(buf);
    tt_ok(tsr_ckks_secret_key_to_bytes(w.sk, &buf, &len));
    free(e);
    e = malloc(len);
    memcpy(e, buf, len);
    e[H + K + 3] = 3;
    reseal(e, len);
    tsr_ckks_secret_key *sk;
    tt_fails(tsr_ckks_secret_key_from_bytes(&sk, w.p, e, len), TSR_ERR_FORMAT);
    /* A secret-key frame without the SECRET flag is malformed (not silently public). */
    memcpy(e, buf, len);
    e[8] = 0;
    reseal(e, len);
    tt_fails(tsr_ckks_secret_key_from_bytes(&sk, w.p, e, len), TSR_ERR_FORMAT);
    /* The public-key reader refuses secret keys. */
    tt_fails(tsr_ckks_public_key_from_bytes(&pk, w.p, buf, len), TSR_ERR_SECRET);
    tsr_ckks_bytes_free(buf);
    /* Parameter files whose primes do not match the spec. */
    tt_ok(tsr_ckks_params_to_bytes(w.p, &buf, &len));
    free(e);
    e = malloc(len);
    memcpy(e, buf, len);
    e[H + 36] ^= 2; /* primes[0] */
    reseal(e, len);
    tsr_ckks_params *pp;
    tt_fails(tsr_ckks_params_from_bytes(&pp, e, len, TSR_CKKS_ALLOW_INSECURE_PARAMETERS),
             TSR_ERR_FORMAT);
    memcpy(e, buf, len);
    e[H + 0] = 30; /* log_n out of range */
    reseal(e, len);
    tt_fails(tsr_ckks_params_from_bytes(&pp, e, len, TSR_CKKS_ALLOW_INSECURE_PARAMETERS),
             TSR_ERR_FORMAT);
    free(e);
    tsr_ckks_bytes_free(buf);
    world_free(&w);
}

/* ---- fuzz corpora -----------------------------------------------------------------------------
 */

static void write_file(const char *dir, const char *target, const char *name, const uint8_t *b,
                       size_t n) {
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, target);
    mkdir(path, 0755);
    snprintf(path, sizeof path, "%s/%s/%s", dir, target, name);
    FILE *fp = fopen(path, "wb");
    assert_non_null(fp);
    assert_int_equal(fwrite(b, 1, n, fp), n);
    fclose(fp);
}

/*
 * Key-set ids: every keygen draws a new one, every key made from a secret
 * key inherits it, files keep it, and keys of two sets are never mixed
 * (issue 10: keys of another keygen run used to pass every check).
 */
static void test_key_set_ids(void **state) {
    (void)state;
    tsr_ckks_param_spec s;
    ckks_fuzz_spec(&s);
    world w;
    world_init(&w, &s);
    uint8_t id[TSR_CKKS_KEY_ID_BYTES], got[TSR_CKKS_KEY_ID_BYTES], zero[TSR_CKKS_KEY_ID_BYTES];
    memset(zero, 0, sizeof zero);
    tsr_ckks_secret_key_id(w.sk, id);
    assert_memory_not_equal(id, zero, sizeof id);
    tsr_ckks_public_key_id(w.pk, got);
    assert_memory_equal(got, id, sizeof id);
    tsr_ckks_relin_key_id(w.rk, got);
    assert_memory_equal(got, id, sizeof id);
    tsr_ckks_galois_keys_id(w.gk, got);
    assert_memory_equal(got, id, sizeof id);

    /* another secret key for the same parameters: another id */
    tsr_ckks_secret_key *sk2;
    tt_ok(tsr_ckks_secret_key_create(&sk2, w.p));
    uint8_t id2[TSR_CKKS_KEY_ID_BYTES];
    tsr_ckks_secret_key_id(sk2, id2);
    assert_memory_not_equal(id, id2, sizeof id);
    /* keys of two sets are not mixed */
    const int two = 2;
    tt_fails(tsr_ckks_galois_keys_add(w.gk, sk2, &two, 1, 0), TSR_ERR_MISMATCH);
    tsr_ckks_galois_keys *gk2;
    tt_ok(tsr_ckks_galois_keys_create(&gk2, sk2, &two, 1, 0));
    tsr_ckks_evaluator *ev;
    tt_fails(tsr_ckks_evaluator_create(&ev, w.p, w.rk, gk2), TSR_ERR_MISMATCH);
    assert_null(ev);
    assert_non_null(strstr(tsr_last_error(), "different key sets"));
    tsr_ckks_galois_keys_free(gk2);

    /* every key file keeps the id */
    uint8_t *buf;
    size_t len;
    tsr_ckks_secret_key *skr;
    tt_ok(tsr_ckks_secret_key_to_bytes(sk2, &buf, &len));
    tt_ok(tsr_ckks_secret_key_from_bytes(&skr, w.p, buf, len));
    tsr_ckks_bytes_free(buf);
    tsr_ckks_secret_key_id(skr, got);
    assert_memory_equal(got, id2, sizeof id2);
    tsr_ckks_secret_key_free(skr);
    tsr_ckks_public_key *pkr;
    tt_ok(tsr_ckks_public_key_to_bytes(w.pk, &buf, &len));
    assert_int_equal(len, tsr_ckks_public_key_serialized_size(w.pk));
    tt_ok(tsr_ckks_public_key_from_bytes(&pkr, w.p, buf, len));
    tsr_ckks_public_key_id(pkr, got);
    assert_memory_equal(got, id, sizeof id);
    tsr_ckks_public_key_free(pkr);
    /* a key file of format version 1 (before ids) is refused as such */
    buf[4] = 1;
    tt_fails(tsr_ckks_public_key_from_bytes(&pkr, w.p, buf, len), TSR_ERR_VERSION);
    assert_non_null(strstr(tsr_last_error(), "keygen again"));
    tsr_ckks_bytes_free(buf);
    tsr_ckks_relin_key *rkr;
    tt_ok(tsr_ckks_relin_key_to_bytes(w.rk, &buf, &len));
    assert_int_equal(len, tsr_ckks_relin_key_serialized_size(w.rk));
    tt_ok(tsr_ckks_relin_key_from_bytes(&rkr, w.p, buf, len));
    tsr_ckks_bytes_free(buf);
    tsr_ckks_relin_key_id(rkr, got);
    assert_memory_equal(got, id, sizeof id);
    tsr_ckks_relin_key_free(rkr);
    tsr_ckks_galois_keys *gkr;
    tt_ok(tsr_ckks_galois_keys_to_bytes(w.gk, &buf, &len));
    tt_ok(tsr_ckks_galois_keys_from_bytes(&gkr, w.p, buf, len));
    tsr_ckks_bytes_free(buf);
    tsr_ckks_galois_keys_id(gkr, got);
    assert_memory_equal(got, id, sizeof id);
    tsr_ckks_galois_keys_free(gkr);
    tsr_ckks_secret_key_free(sk2);
    world_free(&w);
}

static void test_write_fuzz_corpus(void **state) {
    (void)state;
    const char *dir = getenv("TSR_WRITE_FUZZ_CORPUS");
    if (!dir || !*dir) {
        /* Only writes files on request; still check the fuzz spec builds. */
        tsr_ckks_param_spec s;
        tsr_ckks_params *p;
        ckks_fuzz_spec(&s);
        tt_ok(tsr_ckks_params_create(&p, &s));
        assert_int_equal(tsr_ckks_params_n(p), 32);
        tsr_ckks_params_free(p);
        return;
    }
    mkdir(dir, 0755);
    tsr_ckks_param_spec s;
    ckks_fuzz_spec(&s);
    world w;
    world_init(&w, &s);
    uint8_t *b;
    size_t n;
#define DUMP(call, target, name)             \
    do {                                     \
        tt_ok(call);                         \
        write_file(dir, target, name, b, n); \
        tsr_ckks_bytes_free(b);              \
    } while (0)
    DUMP(tsr_ckks_params_to_bytes(w.p, &b, &n), "fuzz_ckks_params", "fuzz_set");
    tsr_ckks_params *pre;
    tt_ok(tsr_ckks_params_create_preset(&pre, "n13-l3"));
    DUMP(tsr_ckks_params_to_bytes(pre, &b, &n), "fuzz_ckks_params", "n13_l3");
    tsr_ckks_params_free(pre);
    /* a mixed chain: the fuzz set with one 30-bit level under a 40-bit one */
    tsr_ckks_param_spec mixed = s;
    mixed.levels = 2;
    mixed.special_primes = 2;
    mixed.low_levels = 1;
    mixed.low_scale_bits = 30;
    tt_ok(tsr_ckks_params_create(&pre, &mixed));
    DUMP(tsr_ckks_params_to_bytes(pre, &b, &n), "fuzz_ckks_params", "mixed_chain");
    tsr_ckks_params_free(pre);
    DUMP(tsr_ckks_plaintext_to_bytes(w.pt, &b, &n), "fuzz_ckks_plaintext", "top_level");
    DUMP(tsr_ckks_ciphertext_to_bytes(w.ct, &b, &n), "fuzz_ckks_ciphertext", "public_key_enc");
    DUMP(tsr_ckks_ciphertext_to_bytes(w.sct, &b, &n), "fuzz_ckks_ciphertext", "seeded");
    DUMP(tsr_ckks_ciphertext_to_bytes(w.ct3, &b, &n), "fuzz_ckks_ciphertext", "size3");
    DUMP(tsr_ckks_public_key_to_bytes(w.pk, &b, &n), "fuzz_ckks_public_key", "pk");
    uint8_t id[TSR_CKKS_KEY_ID_BYTES];
    tsr_ckks_secret_key_id(w.sk, id);
    DUMP(tsr_ckks_eval_keys_to_bytes(w.p, id, w.rk, w.gk, &b, &n), "fuzz_ckks_eval_keys", "bundle");
    DUMP(tsr_ckks_eval_keys_to_bytes(w.p, id, w.rk, NULL, &b, &n), "fuzz_ckks_eval_keys",
         "relin_only");
    DUMP(tsr_ckks_eval_keys_to_bytes(w.p, id, NULL, NULL, &b, &n), "fuzz_ckks_eval_keys",
         "no_keys");
    /* stream-2 (ChaCha12) keys; relin_frame and galois_frame are the frozen stream-1 files of
     * the writer before it (test_chacha20_corpus), not written again */
    DUMP(tsr_ckks_relin_key_to_bytes(w.rk, &b, &n), "fuzz_ckks_eval_keys", "relin_frame_s2");
    DUMP(tsr_ckks_galois_keys_to_bytes(w.gk, &b, &n), "fuzz_ckks_eval_keys", "galois_frame_s2");
    tsr_ckks_relin_key *rk0; /* level-limited (format 3 names its level) */
    tt_ok(tsr_ckks_relin_key_create_level(&rk0, w.sk, 0));
    DUMP(tsr_ckks_relin_key_to_bytes(rk0, &b, &n), "fuzz_ckks_eval_keys", "relin_level0");
    tsr_ckks_relin_key_free(rk0);
    /* a key of format 2's stream (as read from an old file) written as format 3, stream 0 */
    tsr_ckks_relin_key *old = tsr_calloc(sizeof *old);
    assert_non_null(old);
    old->params = ckks_params_ref(w.p);
    memcpy(old->key_id, id, TSR_CKKS_KEY_ID_BYTES);
    uint64_t *s2;
    tt_ok(tsr_rns_poly_new(w.p->q[w.p->L], &s2));
    tsr_rns_mul(w.p->q[w.p->L], s2, w.sk->s_ntt, w.sk->s_ntt);
    tt_ok(ckks_ksk_generate_prg(w.p, w.sk->s_ntt, s2, w.p->L, CKKS_KSK_PRG_XCHACHA20_LIMB,
                                &old->key));
    tsr_free(s2);
    DUMP(tsr_ckks_relin_key_to_bytes(old, &b, &n), "fuzz_ckks_eval_keys", "relin_stream0");
    tsr_ckks_relin_key_free(old);
    /* a Galois set with one level-limited key */
    tsr_ckks_galois_keys *gl;
    const int step1 = 1, step5 = 5;
    tt_ok(tsr_ckks_galois_keys_create(&gl, w.sk, &step1, 1, 0));
    tt_ok(tsr_ckks_galois_keys_add_level(gl, w.sk, &step5, 1, 0, 0));
    DUMP(tsr_ckks_galois_keys_to_bytes(gl, &b, &n), "fuzz_ckks_eval_keys", "galois_level0");
    tsr_ckks_galois_keys_free(gl);
    DUMP(tsr_ckks_secret_key_to_bytes(w.sk, &b, &n), "fuzz_ckks_secret_key", "sk");
#undef DUMP
    world_free(&w);
}

/* A file whose 36-byte header declares a 2 GiB payload (right kind, right fingerprint): every
 * loader refuses it from the header, before sizing anything by the declared length. */
static void hostile_file(const char *path, tsr_obj_kind kind, uint32_t flags, const uint8_t *fp) {
    uint8_t h[TSR_FRAME_HEADER_SIZE] = { 'T', 'S', 'R', 0x1a };
    h[4] = (uint8_t)tsr_obj_kind_version(kind);
    h[6] = (uint8_t)kind;
    for (int i = 0; i < 4; i++) h[8 + i] = (uint8_t)(flags >> (8 * i));
    memcpy(h + 12, fp, TSR_FINGERPRINT_SIZE);
    h[28 + 3] = 0x80; /* payload length 2^31 */
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(h, 1, sizeof h, f), sizeof h);
    fclose(f);
}

#define EXPECT_BOUNDED(call)                                             \
    do {                                                                 \
        tt_fails(call, TSR_ERR_FORMAT);                                  \
        if (!strstr(tsr_last_error(), "only 0 bytes follow its header")) \
            fail_msg("%s: %s", #call, tsr_last_error());                 \
    } while (0)

static void test_declared_size(void **state) {
    (void)state;
    tsr_ckks_param_spec s;
    ckks_fuzz_spec(&s);
    tsr_ckks_params *p;
    tt_ok(tsr_ckks_params_create(&p, &s));
    const char *path = tt_temp_path(".bin");
    static const uint8_t zero[TSR_FINGERPRINT_SIZE];
    tsr_ckks_params *p2 = NULL;
    tsr_ckks_plaintext *pt = NULL;
    tsr_ckks_ciphertext *ct = NULL;
    tsr_ckks_public_key *pk = NULL;
    tsr_ckks_secret_key *sk = NULL;
    tsr_ckks_relin_key *rk = NULL;
    tsr_ckks_galois_keys *gk = NULL;
    uint8_t kid[TSR_CKKS_KEY_ID_BYTES];
    hostile_file(path, TSR_OBJ_PARAMS, 0, zero);
    EXPECT_BOUNDED(tsr_ckks_params_load(&p2, path, TSR_CKKS_ALLOW_INSECURE_PARAMETERS));
    hostile_file(path, TSR_OBJ_PLAINTEXT, 0, p->fingerprint);
    EXPECT_BOUNDED(tsr_ckks_plaintext_load(&pt, p, path));
    hostile_file(path, TSR_OBJ_CIPHERTEXT, 0, p->fingerprint);
    EXPECT_BOUNDED(tsr_ckks_ciphertext_load(&ct, p, path));
    hostile_file(path, TSR_OBJ_PUBLIC_KEY, TSR_FRAME_SEEDED, p->fingerprint);
    EXPECT_BOUNDED(tsr_ckks_public_key_load(&pk, p, path));
    hostile_file(path, TSR_OBJ_SECRET_KEY, TSR_FRAME_SECRET, p->fingerprint);
    EXPECT_BOUNDED(tsr_ckks_secret_key_load(&sk, p, path));
    hostile_file(path, TSR_OBJ_RELIN_KEY, TSR_FRAME_SEEDED, p->fingerprint);
    EXPECT_BOUNDED(tsr_ckks_relin_key_load(&rk, p, path));
    hostile_file(path, TSR_OBJ_GALOIS_KEYS, TSR_FRAME_SEEDED, p->fingerprint);
    EXPECT_BOUNDED(tsr_ckks_galois_keys_load(&gk, p, path));
    hostile_file(path, TSR_OBJ_EVAL_KEYS, TSR_FRAME_SEEDED, p->fingerprint);
    EXPECT_BOUNDED(tsr_ckks_eval_keys_load(&rk, &gk, kid, p, path));
    assert_true(!p2 && !pt && !ct && !pk && !sk && !rk && !gk);
    unlink(path);
    tsr_ckks_params_free(p);
}

/* The spec codec (ckks_spec_write / ckks_spec_read): its bytes are the ones a parameter file
 * and a plan record; round trips with and without flags; fields no spec can have are refused. */
static tsr_status spec_from(const uint32_t *f, int nf, int with_flags, tsr_ckks_param_spec *out) {
    uint8_t b[48];
    for (int i = 0; i < nf; i++)
        for (int k = 0; k < 4; k++) b[4 * i + k] = (uint8_t)(f[i] >> (8 * k));
    tsr_reader r;
    tsr_reader_init_mem(&r, b, (size_t)nf * 4);
    tsr_reader_set_what(&r, "spec");
    tsr_status st = ckks_spec_read(&r, out, with_flags);
    tsr_reader_close(&r);
    return st;
}

/* Mixed chains (spec.low_levels > 0): 8 more bytes announced by CKKS_SPEC_MIXED in the levels
 * word, round trips with and without flags and through a parameter file; malformed mixed
 * fields are refused. Uniform specs keep the bytes test_spec_codec checks. */
static void test_spec_codec_mixed(void **state) {
    (void)state;
    tsr_ckks_param_spec s, back;
    tt_ok(tsr_ckks_preset_spec("n16-boot-d4", &s));
    assert_int_equal(s.low_levels, 10);
    for (int with_flags = 0; with_flags <= 1; with_flags++) {
        tsr_writer w;
        tsr_writer_init_mem(&w);
        ckks_spec_write(&w, &s, with_flags);
        size_t len;
        uint8_t *buf = tsr_writer_take_buffer(&w, &len);
        tt_ok(tsr_writer_close(&w));
        assert_int_equal(len, CKKS_SPEC_BYTES(with_flags) + 8);
        assert_int_equal(len, ckks_spec_bytes(&s, with_flags));
        uint32_t f[12];
        for (size_t i = 0; i < len / 4; i++)
            f[i] = (uint32_t)buf[4 * i] | (uint32_t)buf[4 * i + 1] << 8 |
                   (uint32_t)buf[4 * i + 2] << 16 | (uint32_t)buf[4 * i + 3] << 24;
        assert_int_equal(f[3], s.levels | CKKS_SPEC_MIXED);
        assert_int_equal(f[len / 4 - 2], 10);
        assert_int_equal(f[len / 4 - 1], 40);
        tt_ok(spec_from(f, (int)(len / 4), with_flags, &back));
        assert_int_equal(back.levels, 24);
        assert_int_equal(back.low_levels, 10);
        assert_int_equal(back.low_scale_bits, 40);
        assert_int_equal(back.special_primes, 7);
        /* truncated: the low fields missing */
        tt_fails(spec_from(f, (int)(len / 4) - 1, with_flags, &back), TSR_ERR_FORMAT);
        /* no low level, or all of them low */
        uint32_t bad[12];
        memcpy(bad, f, len);
        bad[len / 4 - 2] = 0;
        tt_fails(spec_from(bad, (int)(len / 4), with_flags, &back), TSR_ERR_FORMAT);
        assert_non_null(strstr(tsr_last_error(), "malformed spec: a mixed chain"));
        bad[len / 4 - 2] = 24;
        tt_fails(spec_from(bad, (int)(len / 4), with_flags, &back), TSR_ERR_FORMAT);
        tsr_free(buf);
    }
    /* a small insecure mixed set through a parameter file: same primes and fingerprint */
    tsr_ckks_param_spec m = small_spec();
    m.levels = 4;
    m.special_primes = 2;
    m.low_levels = 2;
    m.low_scale_bits = 30;
    tsr_ckks_params *p, *p2;
    tt_ok(tsr_ckks_params_create(&p, &m));
    uint8_t *buf;
    size_t len;
    tt_ok(tsr_ckks_params_to_bytes(p, &buf, &len));
    tt_ok(tsr_ckks_params_from_bytes(&p2, buf, len, TSR_CKKS_ALLOW_INSECURE_PARAMETERS));
    uint8_t f1[16], f2[16];
    tsr_ckks_params_fingerprint(p, f1);
    tsr_ckks_params_fingerprint(p2, f2);
    assert_memory_equal(f1, f2, 16);
    tsr_ckks_params_spec(p2, &back);
    assert_int_equal(back.low_levels, 2);
    assert_int_equal(back.low_scale_bits, 30);
    for (int l = 0; l <= 4; l++)
        assert_true(tsr_ckks_params_scale(p, l) == tsr_ckks_params_scale(p2, l));
    tsr_ckks_params_free(p2);
    tsr_ckks_bytes_free(buf);
    tsr_ckks_params_free(p);
}

/* Parameter files written by main before mixed chains existed (tests/data/params_v1, see its
 * README): they load, keep their fingerprint (the id every object made with them carries) and
 * are written back byte for byte. */
static void test_old_params_files(void **state) {
    (void)state;
    const char *names[][2] = { { "n13-l3", "n13-l3" },
                               { "n14-l7", "n14-l7" },
                               { "n13-hw6000", "n13-l3" } };
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        char rel[256];
        snprintf(rel, sizeof rel, "tests/data/params_v1/%s.params", names[i][0]);
        FILE *fp = fopen(tt_source_path(rel), "rb");
        if (!fp) fail_msg("cannot open %s", rel);
        uint8_t file[512];
        size_t flen = fread(file, 1, sizeof file, fp);
        fclose(fp);
        assert_true(flen > TSR_FRAME_HEADER_SIZE && flen < sizeof file);
        tsr_ckks_params *old, *now;
        tt_ok(tsr_ckks_params_from_bytes(&old, file, flen, 0));
        tsr_ckks_param_spec s;
        tt_ok(tsr_ckks_preset_spec(names[i][1], &s));
        if (i == 2) {
            s.secret = TSR_CKKS_SECRET_FIXED_HW;
            s.hamming_weight = 6000;
        }
        tt_ok(tsr_ckks_params_create(&now, &s));
        uint8_t f1[16], f2[16];
        tsr_ckks_params_fingerprint(old, f1);
        tsr_ckks_params_fingerprint(now, f2);
        assert_memory_equal(f1, f2, 16);
        uint8_t *buf;
        size_t len;
        tt_ok(tsr_ckks_params_to_bytes(now, &buf, &len));
        assert_int_equal(len, flen);
        assert_memory_equal(buf, file, flen);
        tsr_ckks_bytes_free(buf);
        tsr_ckks_params_free(now);
        tsr_ckks_params_free(old);
    }
}

static void test_spec_codec(void **state) {
    (void)state;
    tsr_ckks_param_spec s, back;
    tt_ok(tsr_ckks_preset_spec("n14-l7", &s));
    s.secret = TSR_CKKS_SECRET_FIXED_HW;
    s.hamming_weight = 12345;
    s.flags = TSR_CKKS_ALLOW_INSECURE_PARAMETERS;
    const uint32_t want[10] = { s.log_n,
                                s.first_prime_bits,
                                s.scale_bits,
                                s.levels,
                                s.special_primes,
                                s.special_prime_bits,
                                s.dnum,
                                1,
                                12345,
                                TSR_CKKS_ALLOW_INSECURE_PARAMETERS };
    for (int with_flags = 0; with_flags <= 1; with_flags++) {
        tsr_writer w;
        tsr_writer_init_mem(&w);
        ckks_spec_write(&w, &s, with_flags);
        size_t len;
        uint8_t *buf = tsr_writer_take_buffer(&w, &len);
        tt_ok(tsr_writer_close(&w));
        assert_non_null(buf);
        assert_int_equal(len, CKKS_SPEC_BYTES(with_flags));
        for (size_t i = 0; i < len; i++)
            assert_int_equal(buf[i], (uint8_t)(want[i / 4] >> (8 * (i % 4))));
        tt_ok(spec_from(want, with_flags ? 10 : 9, with_flags, &back));
        assert_int_equal(back.log_n, s.log_n);
        assert_int_equal(back.levels, s.levels);
        assert_int_equal(back.special_prime_bits, s.special_prime_bits);
        assert_int_equal(back.secret, TSR_CKKS_SECRET_FIXED_HW);
        assert_int_equal(back.hamming_weight, 12345);
        assert_int_equal(back.flags, with_flags ? TSR_CKKS_ALLOW_INSECURE_PARAMETERS : 0);
        tsr_free(buf);
    }
    /* a parameter file holds the spec right after its frame header, with the resolved dnum */
    tsr_ckks_params *p;
    tt_ok(tsr_ckks_params_create_preset(&p, "n13-l3"));
    uint8_t *file;
    size_t flen;
    tt_ok(tsr_ckks_params_to_bytes(p, &file, &flen));
    tsr_ckks_param_spec ps;
    tt_ok(tsr_ckks_preset_spec("n13-l3", &ps));
    ps.dnum = (unsigned)tsr_ckks_params_dnum(p);
    tsr_writer w;
    tsr_writer_init_mem(&w);
    ckks_spec_write(&w, &ps, 0);
    size_t len;
    uint8_t *buf = tsr_writer_take_buffer(&w, &len);
    tt_ok(tsr_writer_close(&w));
    assert_true(flen > TSR_FRAME_HEADER_SIZE + len);
    assert_memory_equal(file + TSR_FRAME_HEADER_SIZE, buf, len);
    tsr_free(buf);
    tsr_ckks_bytes_free(file);
    tsr_ckks_params_free(p);
    /* refusals */
    uint32_t bad[10];
    memcpy(bad, want, sizeof bad);
    bad[7] = 2;
    tt_fails(spec_from(bad, 10, 1, &back), TSR_ERR_FORMAT);
    assert_non_null(strstr(tsr_last_error(), "malformed spec: unknown secret distribution 2"));
    memcpy(bad, want, sizeof bad);
    bad[9] = 2;
    tt_fails(spec_from(bad, 10, 1, &back), TSR_ERR_FORMAT);
    assert_non_null(strstr(tsr_last_error(), "unknown parameter flags 0x2"));
    tt_ok(spec_from(bad, 9, 0, &back)); /* no flags field: never read */
    memcpy(bad, want, sizeof bad);
    bad[3] = TSR_CKKS_MAX_PRIMES;
    tt_fails(spec_from(bad, 10, 1, &back), TSR_ERR_FORMAT);
    memcpy(bad, want, sizeof bad);
    bad[4] = TSR_CKKS_MAX_SPECIAL_PRIMES + 1;
    tt_fails(spec_from(bad, 10, 1, &back), TSR_ERR_FORMAT);
    tt_fails(spec_from(want, 9, 1, &back), TSR_ERR_FORMAT); /* truncated */
}

/* ---- format 2 key files ------------------------------------------------------------------ */

/* A relinearization-key frame as format 2 wrote it: id, u32 dnum, seed, the b halves over every
 * limb; header version 2 and the BLAKE2b-256 of header and payload. */
static uint8_t *relin_frame_v2(const tsr_ckks_relin_key *rk, size_t *len) {
    const tsr_ckks_params *p = rk->params;
    const size_t b_bytes = (size_t)p->dnum * p->nall * p->n * 8;
    const size_t payload = TSR_CKKS_KEY_ID_BYTES + 4 + TSR_SEED_BYTES + b_bytes;
    *len = TSR_FRAME_HEADER_SIZE + payload + TSR_FRAME_HASH_SIZE;
    uint8_t *f = calloc(1, *len), *q = f;
    assert_non_null(f);
    memcpy(q, "TSR\x1a", 4);
    q[4] = 2;
    q[6] = TSR_OBJ_RELIN_KEY;
    q[8] = TSR_FRAME_SEEDED;
    memcpy(q + 12, p->fingerprint, TSR_FINGERPRINT_SIZE);
    for (int i = 0; i < 8; i++) q[28 + i] = (uint8_t)((uint64_t)payload >> (8 * i));
    q += TSR_FRAME_HEADER_SIZE;
    memcpy(q, rk->key_id, TSR_CKKS_KEY_ID_BYTES);
    q += TSR_CKKS_KEY_ID_BYTES;
    for (int i = 0; i < 4; i++) q[i] = (uint8_t)((uint32_t)p->dnum >> (8 * i));
    memcpy(q + 4, rk->key.seed, TSR_SEED_BYTES);
    q += 4 + TSR_SEED_BYTES;
    for (int j = 0; j < p->dnum; j++) /* little-endian host */
        memcpy(q + (size_t)j * p->nall * p->n * 8, ckks_ksk_b(p, &rk->key, j),
               (size_t)p->nall * p->n * 8);
    q += b_bytes;
    crypto_generichash(q, TSR_FRAME_HASH_SIZE, f, TSR_FRAME_HEADER_SIZE + payload, NULL, 0);
    return f;
}

/*
 * Key files of format 2 (before seeded keys: their a halves came from the per-limb XChaCha20
 * stream) are still read: expanded in memory with that stream, equal to the key that wrote them
 * and relinearizing like it; written again they become format 3 with stream 0 and read back
 * identical. A stream number this build does not know is refused.
 */
static void test_format2_keys(void **state) {
    (void)state;
    tsr_ckks_param_spec s = small_spec();
    world w;
    world_init(&w, &s);
    tsr_ckks_params *p = w.p;
    /* a key of the old kind, made with the old stream */
    tsr_ckks_relin_key *old = tsr_calloc(sizeof *old);
    assert_non_null(old);
    old->params = ckks_params_ref(p);
    memcpy(old->key_id, w.sk->key_id, TSR_CKKS_KEY_ID_BYTES);
    uint64_t *s2;
    tt_ok(tsr_rns_poly_new(p->q[p->L], &s2));
    tsr_rns_mul(p->q[p->L], s2, w.sk->s_ntt, w.sk->s_ntt);
    tt_ok(ckks_ksk_generate_prg(p, w.sk->s_ntt, s2, p->L, CKKS_KSK_PRG_XCHACHA20_LIMB, &old->key));
    tsr_free(s2);
    size_t len;
    uint8_t *v2 = relin_frame_v2(old, &len);
    tsr_ckks_relin_key *rk2;
    tt_ok(tsr_ckks_relin_key_from_bytes(&rk2, p, v2, len));
    assert_false(rk2->key.seeded);
    assert_int_equal(rk2->key.prg, CKKS_KSK_PRG_XCHACHA20_LIMB);
    const size_t all = 2 * (size_t)p->dnum * p->nall * p->n * 8;
    assert_int_equal(tsr_ckks_relin_key_memory(rk2), all);
    assert_memory_equal(rk2->key.data, old->key.data, all);
    /* it relinearizes: same ciphertext as the key it came from, and right */
    tsr_ckks_evaluator *ev_old, *ev2;
    tt_ok(tsr_ckks_evaluator_create(&ev_old, p, old, NULL));
    tt_ok(tsr_ckks_evaluator_create(&ev2, p, rk2, NULL));
    tsr_ckks_ciphertext *c1, *c2;
    tt_ok(tsr_ckks_ciphertext_create(&c1, p));
    tt_ok(tsr_ckks_ciphertext_create(&c2, p));
    tt_ok(tsr_ckks_mul_relin(ev_old, c1, w.ct, w.ct));
    tt_ok(tsr_ckks_mul_relin(ev2, c2, w.ct, w.ct));
    assert_memory_equal(ckks_ct_poly(c1, 0), ckks_ct_poly(c2, 0), (size_t)p->n * 8);
    assert_memory_equal(ckks_ct_poly(c1, 1), ckks_ct_poly(c2, 1), (size_t)p->n * 8);
    const size_t n = tsr_ckks_params_slots(p);
    double *got = malloc(n * sizeof *got);
    assert_non_null(got);
    tt_ok(tsr_ckks_decrypt(w.sk, w.pt, c2));
    tt_ok(tsr_ckks_decode_real(w.enc, w.pt, got, n, NULL));
    for (size_t i = 0; i < n; i++) assert_true(fabs(got[i] - w.x[i] * w.x[i]) < 1e-3);
    free(got);
    /* written again: format 3, stream 0, read back identical */
    uint8_t *v3;
    size_t len3;
    tt_ok(tsr_ckks_relin_key_to_bytes(rk2, &v3, &len3));
    assert_int_equal(v3[4], TSR_FRAME_VERSION_KSK);
    assert_int_equal(len3, len + 5); /* + u32 max_level, u8 stream */
    tsr_ckks_relin_key *rk3;
    tt_ok(tsr_ckks_relin_key_from_bytes(&rk3, p, v3, len3));
    assert_false(rk3->key.seeded);
    assert_memory_equal(rk3->key.data, old->key.data, all);
    tsr_ckks_relin_key_free(rk3);
    /* an unknown stream number (the byte after max_level and dnum) is refused */
    v3[TSR_FRAME_HEADER_SIZE + TSR_CKKS_KEY_ID_BYTES + 8] = CKKS_KSK_PRG_LAST + 1;
    crypto_generichash(v3 + len3 - TSR_FRAME_HASH_SIZE, TSR_FRAME_HASH_SIZE, v3,
                       len3 - TSR_FRAME_HASH_SIZE, NULL, 0);
    tt_fails(tsr_ckks_relin_key_from_bytes(&rk3, p, v3, len3), TSR_ERR_FORMAT);
    assert_non_null(strstr(tsr_last_error(), "unknown stream"));
    tsr_ckks_bytes_free(v3);
    free(v2);
    tsr_ckks_ciphertext_free(c1);
    tsr_ckks_ciphertext_free(c2);
    tsr_ckks_evaluator_free(ev_old);
    tsr_ckks_evaluator_free(ev2);
    tsr_ckks_relin_key_free(rk2);
    tsr_ckks_relin_key_free(old);
    world_free(&w);
}

/* Every a_j of a seeded key over all its limbs equals the chunked stream with `rounds`. */
static void assert_a_stream(const tsr_ckks_params *p, const ckks_ksk *k, unsigned stream) {
    assert_true(k->seeded);
    uint64_t *got = malloc(p->n * sizeof *got), *want = malloc(p->n * sizeof *want);
    assert_non_null(got);
    assert_non_null(want);
    for (int j = 0; j < k->dnum; j++)
        for (int t = 0; t < k->limbs; t++) {
            int pi = ckks_ext_prime(p, k->max_level, t);
            const uint64_t *a = ckks_ksk_a_range(p, k, j, pi, 0, p->n, got);
            tsr_sample_uniform_range(ckks_mod(p, pi), k->seed, (uint32_t)(CKKS_DOMAIN_KSK_A + j),
                                     stream, 0, p->n, want);
            assert_memory_equal(a, want, p->n * sizeof *want);
        }
    free(got);
    free(want);
}

/*
 * Key files of stream 1 (seeded keys written before ChaCha12: the chunked ChaCha20) still load,
 * stay seeded and expand with ChaCha20 exactly as before: a key made with stream 1 reads back
 * as stream 1, relinearizes bit-identically to the key that wrote it and correctly, and is
 * written again byte for byte; new keys are stream 2 (ChaCha12) and expand with 12 rounds.
 */
static void test_chacha20_keys(void **state) {
    (void)state;
    tsr_ckks_param_spec s = small_spec();
    world w;
    world_init(&w, &s);
    tsr_ckks_params *p = w.p;
    assert_int_equal(w.rk->key.prg, CKKS_KSK_PRG_CHACHA12_CHUNK);
    assert_a_stream(p, &w.rk->key, TSR_SAMPLE_STREAM_CHACHA12);
    for (size_t i = 0; i < w.gk->count; i++) {
        assert_int_equal(w.gk->e[i].key.prg, CKKS_KSK_PRG_CHACHA12_CHUNK);
        assert_a_stream(p, &w.gk->e[i].key, TSR_SAMPLE_STREAM_CHACHA12);
    }
    tsr_ckks_relin_key *old = tsr_calloc(sizeof *old);
    assert_non_null(old);
    old->params = ckks_params_ref(p);
    memcpy(old->key_id, w.sk->key_id, TSR_CKKS_KEY_ID_BYTES);
    uint64_t *s2;
    tt_ok(tsr_rns_poly_new(p->q[p->L], &s2));
    tsr_rns_mul(p->q[p->L], s2, w.sk->s_ntt, w.sk->s_ntt);
    tt_ok(ckks_ksk_generate_prg(p, w.sk->s_ntt, s2, p->L, CKKS_KSK_PRG_CHACHA20_CHUNK, &old->key));
    tsr_free(s2);
    assert_a_stream(p, &old->key, TSR_SAMPLE_STREAM_CHACHA20);
    uint8_t *v, *v2;
    size_t len, len2;
    tt_ok(tsr_ckks_relin_key_to_bytes(old, &v, &len));
    assert_int_equal(v[TSR_FRAME_HEADER_SIZE + TSR_CKKS_KEY_ID_BYTES + 8],
                     CKKS_KSK_PRG_CHACHA20_CHUNK);
    tsr_ckks_relin_key *rk;
    tt_ok(tsr_ckks_relin_key_from_bytes(&rk, p, v, len));
    assert_true(rk->key.seeded);
    assert_int_equal(rk->key.prg, CKKS_KSK_PRG_CHACHA20_CHUNK);
    assert_int_equal(tsr_ckks_relin_key_memory(rk), tsr_ckks_relin_key_memory(old));
    assert_a_stream(p, &rk->key, TSR_SAMPLE_STREAM_CHACHA20);
    tt_ok(tsr_ckks_relin_key_to_bytes(rk, &v2, &len2));
    assert_int_equal(len2, len);
    assert_memory_equal(v, v2, len);
    tsr_ckks_bytes_free(v2);
    /* expanded, it keeps its stream: written again, the same bytes */
    tsr_ckks_relin_key *rkx;
    tt_ok(tsr_ckks_relin_key_from_bytes(&rkx, p, v, len));
    tt_ok(tsr_ckks_relin_key_expand(rkx));
    assert_int_equal(rkx->key.prg, CKKS_KSK_PRG_CHACHA20_CHUNK);
    tt_ok(tsr_ckks_relin_key_to_bytes(rkx, &v2, &len2));
    assert_int_equal(len2, len);
    assert_memory_equal(v, v2, len);
    tsr_ckks_bytes_free(v2);
    /* it relinearizes like the key that wrote it (and its expansion), and right */
    tsr_ckks_evaluator *ev_old, *ev1, *evx;
    tt_ok(tsr_ckks_evaluator_create(&ev_old, p, old, NULL));
    tt_ok(tsr_ckks_evaluator_create(&ev1, p, rk, NULL));
    tt_ok(tsr_ckks_evaluator_create(&evx, p, rkx, NULL));
    tsr_ckks_ciphertext *c1, *c2;
    tt_ok(tsr_ckks_ciphertext_create(&c1, p));
    tt_ok(tsr_ckks_ciphertext_create(&c2, p));
    tt_ok(tsr_ckks_mul_relin(ev_old, c1, w.ct, w.ct));
    tt_ok(tsr_ckks_mul_relin(ev1, c2, w.ct, w.ct));
    assert_memory_equal(ckks_ct_poly(c1, 0), ckks_ct_poly(c2, 0), (size_t)p->n * 8);
    assert_memory_equal(ckks_ct_poly(c1, 1), ckks_ct_poly(c2, 1), (size_t)p->n * 8);
    tt_ok(tsr_ckks_mul_relin(evx, c2, w.ct, w.ct));
    assert_memory_equal(ckks_ct_poly(c1, 0), ckks_ct_poly(c2, 0), (size_t)p->n * 8);
    assert_memory_equal(ckks_ct_poly(c1, 1), ckks_ct_poly(c2, 1), (size_t)p->n * 8);
    const size_t n = tsr_ckks_params_slots(p);
    double *got = malloc(n * sizeof *got);
    assert_non_null(got);
    tt_ok(tsr_ckks_decrypt(w.sk, w.pt, c2));
    tt_ok(tsr_ckks_decode_real(w.enc, w.pt, got, n, NULL));
    for (size_t i = 0; i < n; i++) assert_true(fabs(got[i] - w.x[i] * w.x[i]) < 1e-3);
    free(got);
    tsr_ckks_bytes_free(v);
    tsr_ckks_ciphertext_free(c1);
    tsr_ckks_ciphertext_free(c2);
    tsr_ckks_evaluator_free(ev_old);
    tsr_ckks_evaluator_free(ev1);
    tsr_ckks_evaluator_free(evx);
    tsr_ckks_relin_key_free(rk);
    tsr_ckks_relin_key_free(rkx);
    tsr_ckks_relin_key_free(old);
    world_free(&w);
}

/* A whole corpus file of the fuzz targets (small); *len its size. */
static uint8_t *read_corpus(const char *name, size_t *len) {
    char rel[256];
    snprintf(rel, sizeof rel, "fuzz/corpus/fuzz_ckks_eval_keys/%s", name);
    FILE *f = fopen(tt_source_path(rel), "rb");
    if (!f) fail_msg("cannot open %s", tt_source_path(rel));
    uint8_t *buf = malloc(1 << 16);
    assert_non_null(buf);
    *len = fread(buf, 1, 1 << 16, f);
    assert_true(*len > 0 && *len < (1 << 16));
    fclose(f);
    return buf;
}

/* Both keys hold the same expanded (stream 0) data. */
static void assert_same_ksk(const tsr_ckks_params *p, const ckks_ksk *a, const ckks_ksk *b) {
    assert_false(a->seeded);
    assert_false(b->seeded);
    assert_int_equal(a->prg, CKKS_KSK_PRG_XCHACHA20_LIMB);
    assert_int_equal(b->prg, CKKS_KSK_PRG_XCHACHA20_LIMB);
    assert_int_equal(a->max_level, b->max_level);
    assert_int_equal(a->dnum, b->dnum);
    assert_memory_equal(a->seed, b->seed, TSR_SEED_BYTES);
    assert_int_equal(ckks_ksk_memory(p, a), ckks_ksk_memory(p, b));
    assert_memory_equal(a->data, b->data, (size_t)ckks_ksk_memory(p, a));
}

static void assert_same_galois(const tsr_ckks_galois_keys *a, const tsr_ckks_galois_keys *b) {
    assert_int_equal(a->count, b->count);
    for (size_t i = 0; i < a->count; i++) {
        assert_int_equal(a->e[i].elt, b->e[i].elt);
        assert_same_ksk(a->params, &a->e[i].key, &b->e[i].key);
    }
}

/*
 * Genuine format-2 files of the old writer (the *_v2 seed corpora of fuzz_ckks_eval_keys, fuzz
 * parameters, a relinearization key and 4 Galois keys: steps 1, -1, 3 and the conjugation) are
 * read as expanded stream-0 keys; written again they are format 3 and read back identical.
 */
static void test_format2_corpus(void **state) {
    (void)state;
    tsr_ckks_param_spec s;
    ckks_fuzz_spec(&s);
    tsr_ckks_params *p;
    tt_ok(tsr_ckks_params_create(&p, &s));
    uint8_t id[TSR_CKKS_KEY_ID_BYTES], *v3;
    size_t len, len3;
    /* a relinearization key frame */
    uint8_t *v2 = read_corpus("relin_frame_v2", &len);
    assert_int_equal(v2[4], 2);
    tsr_ckks_relin_key *rk, *rk3;
    tt_ok(tsr_ckks_relin_key_from_bytes(&rk, p, v2, len));
    assert_false(rk->key.seeded);
    assert_int_equal(rk->key.prg, CKKS_KSK_PRG_XCHACHA20_LIMB);
    assert_int_equal(rk->key.max_level, p->L);
    tt_ok(tsr_ckks_relin_key_to_bytes(rk, &v3, &len3));
    assert_int_equal(v3[4], TSR_FRAME_VERSION_KSK);
    tt_ok(tsr_ckks_relin_key_from_bytes(&rk3, p, v3, len3));
    assert_same_ksk(p, &rk->key, &rk3->key);
    tsr_ckks_relin_key_free(rk3);
    tsr_ckks_relin_key_free(rk);
    tsr_ckks_bytes_free(v3);
    /* version 1 is refused, naming the versions this build reads */
    v2[4] = 1;
    reseal(v2, len);
    tt_fails(tsr_ckks_relin_key_from_bytes(&rk, p, v2, len), TSR_ERR_VERSION);
    if (!strstr(tsr_last_error(), "this build reads versions 2..3"))
        fail_msg("%s", tsr_last_error());
    free(v2);
    /* a Galois key frame */
    tsr_ckks_galois_keys *gk, *gk3;
    v2 = read_corpus("galois_frame_v2", &len);
    assert_int_equal(v2[4], 2);
    tt_ok(tsr_ckks_galois_keys_from_bytes(&gk, p, v2, len));
    assert_int_equal(tsr_ckks_galois_keys_count(gk), 4);
    for (size_t i = 0; i < gk->count; i++) {
        assert_false(gk->e[i].key.seeded);
        assert_int_equal(gk->e[i].key.prg, CKKS_KSK_PRG_XCHACHA20_LIMB);
    }
    tt_ok(tsr_ckks_galois_keys_to_bytes(gk, &v3, &len3));
    assert_int_equal(v3[4], TSR_FRAME_VERSION_KSK);
    tt_ok(tsr_ckks_galois_keys_from_bytes(&gk3, p, v3, len3));
    assert_same_galois(gk, gk3);
    tsr_ckks_galois_keys_free(gk3);
    tsr_ckks_galois_keys_free(gk);
    tsr_ckks_bytes_free(v3);
    free(v2);
    /* bundles: both keys, the relinearization key only, no key */
    const char *bundles[] = { "bundle_v2", "relin_only_v2", "no_keys_v2" };
    const int has_rk[] = { 1, 1, 0 }, has_gk[] = { 1, 0, 0 };
    for (int b = 0; b < 3; b++) {
        v2 = read_corpus(bundles[b], &len);
        assert_int_equal(v2[4], 2);
        rk = rk3 = NULL;
        gk = gk3 = NULL;
        tt_ok(tsr_ckks_eval_keys_from_bytes(&rk, &gk, id, p, v2, len));
        assert_int_equal(rk != NULL, has_rk[b]);
        assert_int_equal(gk != NULL, has_gk[b]);
        if (gk) assert_int_equal(tsr_ckks_galois_keys_count(gk), 4);
        tt_ok(tsr_ckks_eval_keys_to_bytes(p, id, rk, gk, &v3, &len3));
        assert_int_equal(v3[4], TSR_FRAME_VERSION_KSK);
        uint8_t id3[TSR_CKKS_KEY_ID_BYTES];
        tt_ok(tsr_ckks_eval_keys_from_bytes(&rk3, &gk3, id3, p, v3, len3));
        assert_memory_equal(id, id3, sizeof id);
        assert_int_equal(rk3 != NULL, has_rk[b]);
        assert_int_equal(gk3 != NULL, has_gk[b]);
        if (rk) assert_same_ksk(p, &rk->key, &rk3->key);
        if (gk) assert_same_galois(gk, gk3);
        tsr_ckks_relin_key_free(rk);
        tsr_ckks_relin_key_free(rk3);
        tsr_ckks_galois_keys_free(gk);
        tsr_ckks_galois_keys_free(gk3);
        tsr_ckks_bytes_free(v3);
        free(v2);
    }
    tsr_ckks_params_free(p);
}

/*
 * The committed format-3 seed corpora of fuzz_ckks_eval_keys (written before ChaCha12: every
 * key of stream 1, chunked ChaCha20) load as seeded stream-1 keys whose a_j are the ChaCha20
 * chunks, and are written again byte for byte; relin_frame_s2 (stream 2) expands with ChaCha12.
 */
static void test_chacha20_corpus(void **state) {
    (void)state;
    tsr_ckks_param_spec s;
    ckks_fuzz_spec(&s);
    tsr_ckks_params *p;
    tt_ok(tsr_ckks_params_create(&p, &s));
    size_t len, len2;
    uint8_t *v = read_corpus("relin_frame", &len), *v2;
    assert_int_equal(v[4], TSR_FRAME_VERSION_KSK);
    tsr_ckks_relin_key *rk;
    tt_ok(tsr_ckks_relin_key_from_bytes(&rk, p, v, len));
    assert_int_equal(rk->key.prg, CKKS_KSK_PRG_CHACHA20_CHUNK);
    assert_a_stream(p, &rk->key, TSR_SAMPLE_STREAM_CHACHA20);
    tt_ok(tsr_ckks_relin_key_to_bytes(rk, &v2, &len2));
    assert_int_equal(len2, len);
    assert_memory_equal(v, v2, len);
    tsr_ckks_bytes_free(v2);
    tsr_ckks_relin_key_free(rk);
    free(v);
    tsr_ckks_galois_keys *gk;
    v = read_corpus("galois_frame", &len);
    tt_ok(tsr_ckks_galois_keys_from_bytes(&gk, p, v, len));
    assert_true(gk->count > 0);
    for (size_t i = 0; i < gk->count; i++) {
        assert_int_equal(gk->e[i].key.prg, CKKS_KSK_PRG_CHACHA20_CHUNK);
        assert_a_stream(p, &gk->e[i].key, TSR_SAMPLE_STREAM_CHACHA20);
    }
    tt_ok(tsr_ckks_galois_keys_to_bytes(gk, &v2, &len2));
    assert_int_equal(len2, len);
    assert_memory_equal(v, v2, len);
    tsr_ckks_bytes_free(v2);
    tsr_ckks_galois_keys_free(gk);
    free(v);
    /* the stream-2 seeds of the current writer expand with ChaCha12 */
    v = read_corpus("relin_frame_s2", &len);
    tt_ok(tsr_ckks_relin_key_from_bytes(&rk, p, v, len));
    assert_int_equal(rk->key.prg, CKKS_KSK_PRG_CHACHA12_CHUNK);
    assert_a_stream(p, &rk->key, TSR_SAMPLE_STREAM_CHACHA12);
    tsr_ckks_relin_key_free(rk);
    free(v);
    tsr_ckks_params_free(p);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_roundtrip),         cmocka_unit_test(test_truncation_and_corruption),
        cmocka_unit_test(test_invalid_fields),    cmocka_unit_test(test_key_set_ids),
        cmocka_unit_test(test_write_fuzz_corpus), cmocka_unit_test(test_declared_size),
        cmocka_unit_test(test_spec_codec),        cmocka_unit_test(test_format2_keys),
        cmocka_unit_test(test_format2_corpus),    cmocka_unit_test(test_spec_codec_mixed),
        cmocka_unit_test(test_old_params_files),  cmocka_unit_test(test_chacha20_keys),
        cmocka_unit_test(test_chacha20_corpus),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
