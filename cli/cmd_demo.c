/*
 * cli/cmd_demo.c - `tessera demo`: the CKKS demo run by `make demo` until
 * the encrypted-inference demo replaces it. Encrypts a vector, evaluates a
 * degree-7 polynomial at depth 3 (constants folded into the lower-degree
 * factors), a rotation-sum over all slots and a hoisted 8-slot window sum,
 * decrypts, and prints each result beside the same computation on plaintext
 * doubles with the precision in bits (measured and estimated) and timings.
 */
#include "cli.h"
#include "core/progress.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define TRY(expr, what)                       \
    do {                                      \
        tsr_status st_ = (expr);              \
        if (st_ != TSR_OK) {                  \
            rc = cli_fail("demo", st_, what); \
            goto out;                         \
        }                                     \
    } while (0)

/* Degree-7 Taylor polynomial of sin(pi x / 2): even coefficients are 0 but
 * are evaluated like the others, so the demo exercises every term. */
static const double coef[8] = {
    0.0, 1.5707963267948966,  /* (pi/2) */
    0.0, -0.6459640975062462, /* -(pi/2)^3 / 3! */
    0.0, 0.0796926262461670,  /* (pi/2)^5 / 5! */
    0.0, -0.0046817541353187, /* -(pi/2)^7 / 7! */
};

static double poly_plain(double x) {
    double r = 0;
    for (int k = 7; k >= 0; k--) r = r * x + coef[k];
    return r;
}

static void usage(FILE *out) {
    fprintf(out, "usage: tessera demo [ckks] [--preset NAME] [--threads N]\n\n"
                 "Encrypt a vector of N/2 values in [-1, 1] with CKKS, evaluate on the\n"
                 "ciphertext:\n"
                 "  1. p(x), the degree-7 Taylor polynomial of sin(pi x / 2) (depth 3),\n"
                 "  2. the sum of all slots (rotate-and-add by 1, 2, 4, ...),\n"
                 "  3. the sum of each slot and its 7 successors (7 hoisted rotations),\n"
                 "decrypt, and compare with the same computations on plaintext doubles.\n"
                 "(The encrypted-inference demo is `make demo`, scripts/demo.sh.)\n\n"
                 "  --preset NAME  CKKS parameter preset (default n13-l3; see below)\n"
                 "  --threads N    OpenMP threads (default: all)\n\npresets:\n");
    for (size_t i = 0; tsr_ckks_preset_name(i); i++)
        fprintf(out, "  %-9s %s\n", tsr_ckks_preset_name(i), tsr_ckks_preset_description(i));
}

static double max_err(const double *a, const double *b, size_t n) {
    double w = 0;
    for (size_t i = 0; i < n; i++)
        if (fabs(a[i] - b[i]) > w) w = fabs(a[i] - b[i]);
    return w;
}

static void report(const char *title, const double *got, const double *want, size_t n, double est,
                   double ms) {
    double e = max_err(got, want, n);
    printf("\n%s  (%.1f ms)\n", title, ms);
    printf("  %6s  %14s  %14s  %10s\n", "slot", "encrypted", "plaintext", "error");
    size_t show[] = { 0, 1, 2, 3, n / 2, n - 1 };
    for (size_t k = 0; k < sizeof show / sizeof show[0]; k++) {
        size_t i = show[k];
        printf("  %6zu  %14.9f  %14.9f  %10.2e\n", i, got[i], want[i], fabs(got[i] - want[i]));
    }
    printf("  max error over %zu slots: %.2e = %.1f bits of precision (estimated %.1f)\n", n, e,
           e > 0 ? -log2(e) : 60.0, est);
}

int tsr_cmd_demo(int argc, char **argv) {
    if (cli_wants_help(argc, argv)) {
        usage(stdout);
        return 0;
    }
    const char *preset = "n13-l3", *what = NULL;
    long threads = 0;
    const cli_opt opts[] = {
        { "--preset", CLI_STR, &preset, 0, 0 },
        { "--threads", CLI_LONG, &threads, 1, 1024 },
    };
    int prc = cli_parse_args("demo", argc, argv, opts, sizeof opts / sizeof opts[0], &what, 1);
    if (prc) return prc;
    /* `tessera demo ckks` is this demo; `make demo` runs the inference demo (scripts/demo.sh). */
    if (what && strcmp(what, "ckks") != 0)
        return cli_usage_error("demo", "unknown demo '%s' (the only one is ckks)", what);
    if (threads) tsr_set_num_threads((int)threads);
    int rc = 0;
    tsr_ckks_params *p = NULL;
    tsr_ckks_secret_key *sk = NULL;
    tsr_ckks_public_key *pk = NULL;
    tsr_ckks_relin_key *rk = NULL;
    tsr_ckks_galois_keys *gk = NULL;
    tsr_ckks_encoder *enc = NULL;
    tsr_ckks_evaluator *ev = NULL;
    tsr_ckks_plaintext *pt = NULL;
    enum { NCT = 16 };
    tsr_ckks_ciphertext *c[NCT] = { 0 };
    double *x = NULL, *got = NULL, *want = NULL;

    printf("Tessera CKKS demo\n=================\n");
    double t0 = tsr_now();
    TRY(tsr_ckks_params_create_preset(&p, preset), "creating the parameters");
    if (tsr_ckks_params_max_level(p) < 3) {
        rc = cli_usage_error("demo", "preset %s has %d levels; the demo needs 3", preset,
                             tsr_ckks_params_max_level(p));
        goto out;
    }
    tsr_ckks_params_print(p, stdout);
    size_t n = tsr_ckks_params_slots(p);
    TRY(tsr_ckks_secret_key_create(&sk, p), "generating the secret key");
    TRY(tsr_ckks_public_key_create(&pk, sk), "generating the public key");
    TRY(tsr_ckks_relin_key_create(&rk, sk), "generating the relinearization key");
    const int window[] = { 1, 2, 3, 4, 5, 6, 7 };
    TRY(tsr_ckks_galois_keys_create(&gk, sk, window, 7, TSR_CKKS_GALOIS_POW2),
        "generating the Galois keys");
    TRY(tsr_ckks_encoder_create(&enc, p), "creating the encoder");
    TRY(tsr_ckks_evaluator_create(&ev, p, rk, gk), "creating the evaluator");
    TRY(tsr_ckks_plaintext_create(&pt, p), "creating a plaintext");
    for (int i = 0; i < NCT; i++) TRY(tsr_ckks_ciphertext_create(&c[i], p), "allocating");
    double t_keys = tsr_now() - t0;
    printf("keys: public, relinearization, %zu Galois (%.2f s, %d thread%s)\n",
           tsr_ckks_galois_keys_count(gk), t_keys, tsr_get_num_threads(),
           tsr_get_num_threads() > 1 ? "s" : "");

    x = malloc(n * sizeof *x);
    got = malloc(n * sizeof *got);
    want = malloc(n * sizeof *want);
    if (!x || !got || !want) {
        rc = cli_fail("demo", TSR_ERR_NOMEM, "allocating vectors");
        goto out;
    }
    /* x_i in [-1, 1]: a smooth ramp with a little deterministic jitter. */
    for (size_t i = 0; i < n; i++)
        x[i] = -1.0 + 2.0 * (double)i / (double)(n - 1) + 0.01 * sin(12.9898 * (double)i);
    for (size_t i = 0; i < n; i++) x[i] = fmax(-1.0, fmin(1.0, x[i]));

    t0 = tsr_now();
    TRY(tsr_ckks_encode_real(enc, pt, x, n, TSR_CKKS_TOP_LEVEL, 0), "encoding");
    TRY(tsr_ckks_encrypt(pk, c[0], pt), "encrypting");
    double t_enc = 1e3 * (tsr_now() - t0);
    printf("encrypted %zu values at level %d, scale 2^%.0f (%.1f ms)\n", n,
           tsr_ckks_ciphertext_level(c[0]), log2(tsr_ckks_ciphertext_scale(c[0])), t_enc);

    /* 1. p(x) at depth 3. Names: c[1] = x^2, c[2] = x^3, c[3] = x^4 (powers),
     * c[4..] the terms; constants are multiplied into the factor of lower
     * degree so every term is ready at level L-3. */
    tsr_ckks_ciphertext *X = c[0], *x2 = c[1], *x3 = c[2], *x4 = c[3], *acc = c[4], *t = c[5],
                        *u = c[6];
    t0 = tsr_now();
    TRY(tsr_ckks_mul_relin_rescale(ev, x2, X, X), "x^2");
    TRY(tsr_ckks_mul_relin_rescale(ev, x3, x2, X), "x^3");
    TRY(tsr_ckks_mul_relin_rescale(ev, x4, x2, x2), "x^4");
    /* acc = c1 x + c0 */
    TRY(tsr_ckks_mul_const(ev, acc, X, coef[1], 0), "c1 x");
    TRY(tsr_ckks_rescale(ev, acc, acc), "rescale");
    TRY(tsr_ckks_add_const(ev, acc, acc, coef[0], 0), "+ c0");
    /* + c2 x^2, + (c3 x) x^2 */
    TRY(tsr_ckks_mul_const(ev, t, x2, coef[2], 0), "c2 x^2");
    TRY(tsr_ckks_rescale(ev, t, t), "rescale");
    TRY(tsr_ckks_add(ev, acc, acc, t), "+ c2 x^2");
    TRY(tsr_ckks_mul_const(ev, t, X, coef[3], 0), "c3 x");
    TRY(tsr_ckks_rescale(ev, t, t), "rescale");
    TRY(tsr_ckks_mul_relin_rescale(ev, t, t, x2), "c3 x^3");
    TRY(tsr_ckks_add(ev, acc, acc, t), "+ c3 x^3");
    /* + (c4 x^2) x^2 */
    TRY(tsr_ckks_mul_const(ev, t, x2, coef[4], 0), "c4 x^2");
    TRY(tsr_ckks_rescale(ev, t, t), "rescale");
    TRY(tsr_ckks_mul_relin_rescale(ev, t, t, x2), "c4 x^4");
    TRY(tsr_ckks_add(ev, acc, acc, t), "+ c4 x^4");
    /* + (c5 x) x^4, + (c6 x^2) x^4, + ((c7 x) x^2) x^4 */
    TRY(tsr_ckks_mul_const(ev, t, X, coef[5], 0), "c5 x");
    TRY(tsr_ckks_rescale(ev, t, t), "rescale");
    TRY(tsr_ckks_mul_relin_rescale(ev, t, t, x4), "c5 x^5");
    TRY(tsr_ckks_add(ev, acc, acc, t), "+ c5 x^5");
    TRY(tsr_ckks_mul_const(ev, t, x2, coef[6], 0), "c6 x^2");
    TRY(tsr_ckks_rescale(ev, t, t), "rescale");
    TRY(tsr_ckks_mul_relin_rescale(ev, t, t, x4), "c6 x^6");
    TRY(tsr_ckks_add(ev, acc, acc, t), "+ c6 x^6");
    TRY(tsr_ckks_mul_const(ev, u, X, coef[7], 0), "c7 x");
    TRY(tsr_ckks_rescale(ev, u, u), "rescale");
    TRY(tsr_ckks_mul_relin_rescale(ev, u, u, x2), "c7 x^3");
    TRY(tsr_ckks_mul_relin_rescale(ev, u, u, x4), "c7 x^7");
    TRY(tsr_ckks_add(ev, acc, acc, u), "+ c7 x^7");
    double t_poly = 1e3 * (tsr_now() - t0);
    double est;
    TRY(tsr_ckks_decrypt(sk, pt, acc), "decrypting");
    TRY(tsr_ckks_decode_real(enc, pt, got, n, &est), "decoding");
    for (size_t i = 0; i < n; i++) want[i] = poly_plain(x[i]);
    report("1. p(x) = x*pi/2 - (x*pi/2)^3/3! + (x*pi/2)^5/5! - (x*pi/2)^7/7!  [~ sin(pi x/2)]", got,
           want, n, est, t_poly);
    printf("  result at level %d (3 levels used)\n", tsr_ckks_ciphertext_level(acc));

    /* 2. Sum of all slots: log2(n) rotate-and-add steps. */
    t0 = tsr_now();
    TRY(tsr_ckks_ciphertext_copy(acc, X), "copy");
    for (size_t s = 1; s < n; s <<= 1) {
        TRY(tsr_ckks_rotate(ev, t, acc, (int)s), "rotating");
        TRY(tsr_ckks_add(ev, acc, acc, t), "adding");
    }
    double t_sum = 1e3 * (tsr_now() - t0);
    TRY(tsr_ckks_decrypt(sk, pt, acc), "decrypting");
    TRY(tsr_ckks_decode_real(enc, pt, got, n, &est), "decoding");
    long double total = 0;
    for (size_t i = 0; i < n; i++) total += x[i];
    for (size_t i = 0; i < n; i++) want[i] = (double)total;
    char title[128];
    snprintf(title, sizeof title, "2. rotation-sum of all %zu slots (%d rotations)", n,
             (int)log2((double)n));
    report(title, got, want, n, est, t_sum);

    /* 3. Window sums x_i + ... + x_{i+7}: 7 rotations of one ciphertext, hoisted. */
    t0 = tsr_now();
    tsr_ckks_ciphertext *outs[7] = { c[7], c[8], c[9], c[10], c[11], c[12], c[13] };
    TRY(tsr_ckks_rotate_hoisted(ev, outs, X, window, 7), "hoisted rotations");
    TRY(tsr_ckks_ciphertext_copy(acc, X), "copy");
    for (int k = 0; k < 7; k++) TRY(tsr_ckks_add(ev, acc, acc, outs[k]), "adding");
    double t_win = 1e3 * (tsr_now() - t0);
    TRY(tsr_ckks_decrypt(sk, pt, acc), "decrypting");
    TRY(tsr_ckks_decode_real(enc, pt, got, n, &est), "decoding");
    for (size_t i = 0; i < n; i++) {
        want[i] = 0;
        for (size_t k = 0; k < 8; k++) want[i] += x[(i + k) % n];
    }
    report("3. window sums x_i + ... + x_{i+7} (7 hoisted rotations)", got, want, n, est, t_win);
    printf("\ndemo finished in %.2f s\n", t_keys + (t_enc + t_poly + t_sum + t_win) / 1e3);

out:
    free(x);
    free(got);
    free(want);
    for (int i = 0; i < NCT; i++) tsr_ckks_ciphertext_free(c[i]);
    tsr_ckks_plaintext_free(pt);
    tsr_ckks_evaluator_free(ev);
    tsr_ckks_encoder_free(enc);
    tsr_ckks_galois_keys_free(gk);
    tsr_ckks_relin_key_free(rk);
    tsr_ckks_public_key_free(pk);
    tsr_ckks_secret_key_free(sk);
    tsr_ckks_params_free(p);
    return rc;
}
