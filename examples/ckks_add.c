/*
 * examples/ckks_add.c - the smallest program against an installed
 * libtessera: encrypt two vectors with the n13-l3 preset (128-bit secure),
 * add them encrypted, decrypt and print the largest error. Built by the
 * install test with pkg-config and with find_package(Tessera):
 *
 *   cc ckks_add.c $(pkg-config --cflags --libs tessera) -o ckks_add
 */
#include <tessera.h>

#include <math.h>
#include <stdio.h>

#define N 8

static int check(tsr_status st, const char *what) {
    if (st == TSR_OK) return 0;
    fprintf(stderr, "%s: %s: %s\n", what, tsr_strerror(st), tsr_last_error());
    return 1;
}

int main(void) {
    tsr_ckks_params *p = NULL;
    tsr_ckks_encoder *enc = NULL;
    tsr_ckks_secret_key *sk = NULL;
    tsr_ckks_evaluator *ev = NULL;
    tsr_ckks_plaintext *pa = NULL, *pb = NULL;
    tsr_ckks_ciphertext *ca = NULL, *cb = NULL;
    double a[N], b[N], sum[N];
    for (int i = 0; i < N; i++) {
        a[i] = 0.5 * i;
        b[i] = 1.0 / (i + 1);
    }
    int rc = check(tsr_ckks_params_create_preset(&p, "n13-l3"), "parameters") ||
             check(tsr_ckks_encoder_create(&enc, p), "encoder") ||
             check(tsr_ckks_secret_key_create(&sk, p), "secret key") ||
             check(tsr_ckks_evaluator_create(&ev, p, NULL, NULL), "evaluator") ||
             check(tsr_ckks_plaintext_create(&pa, p), "plaintext") ||
             check(tsr_ckks_plaintext_create(&pb, p), "plaintext") ||
             check(tsr_ckks_ciphertext_create(&ca, p), "ciphertext") ||
             check(tsr_ckks_ciphertext_create(&cb, p), "ciphertext") ||
             check(tsr_ckks_encode_real(enc, pa, a, N, TSR_CKKS_TOP_LEVEL, 0), "encode") ||
             check(tsr_ckks_encode_real(enc, pb, b, N, TSR_CKKS_TOP_LEVEL, 0), "encode") ||
             check(tsr_ckks_encrypt_symmetric(sk, ca, pa), "encrypt") ||
             check(tsr_ckks_encrypt_symmetric(sk, cb, pb), "encrypt") ||
             check(tsr_ckks_add(ev, ca, ca, cb), "add") ||
             check(tsr_ckks_decrypt(sk, pa, ca), "decrypt") ||
             check(tsr_ckks_decode_real(enc, pa, sum, N, NULL), "decode");
    if (!rc) {
        double err = 0;
        for (int i = 0; i < N; i++) err = fmax(err, fabs(sum[i] - (a[i] + b[i])));
        printf("tessera %s: encrypted a + b, largest error %.3g\n", tsr_version_string(), err);
        rc = err < 1e-6 ? 0 : 1;
    }
    tsr_ckks_ciphertext_free(cb);
    tsr_ckks_ciphertext_free(ca);
    tsr_ckks_plaintext_free(pb);
    tsr_ckks_plaintext_free(pa);
    tsr_ckks_evaluator_free(ev);
    tsr_ckks_secret_key_free(sk);
    tsr_ckks_encoder_free(enc);
    tsr_ckks_params_free(p);
    return rc;
}
