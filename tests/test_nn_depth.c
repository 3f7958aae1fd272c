/*
 * tests/test_nn_depth.c - nn_model_depth predicts exactly the depth the lowering gives a
 * model (nn_program_build's dry run inside tsr_nn_compile), for polynomial activations of
 * degrees 1 to 8, per tensor and per channel, in both packings. The expected depths come
 * from the test's own formula: a degree-d polynomial takes ceil(log2(d + 1)) levels, per
 * tensor (tsr_tile_poly) and per channel alike (the same power-of-two split with the
 * coefficients as plaintexts), d the highest power with a non-zero coefficient (in any
 * channel). The model is dense -> activation -> dense (one level each).
 */
#include "nn_act.h"
#include "nn_check.h"

#include "nn/nn_internal.h"

#include <math.h>
#include <stdio.h>

#define NHID TT_ACT_NHID
#define MAXD 8

static int ceil_log2(int n) {
    int k = 0;
    while ((1 << k) < n) k++;
    return k;
}

/* Levels of the activation by the test's formula: top = the highest power used. */
static int poly_levels(int top) {
    return ceil_log2(top + 1);
}

/* nn_model_depth(m) equals want, and the depth of m's program in both packings. */
static void check_depth(const tsr_nn_model *m, int want, const char *what) {
    int got = nn_model_depth(m);
    if (got != want) fail_msg("%s: nn_model_depth %d, expected %d", what, got, want);
    const tsr_nn_packing pks[2] = { TSR_NN_PACK_BATCH, TSR_NN_PACK_TILED };
    for (int k = 0; k < 2; k++) {
        tsr_nn_compile_opts o;
        tt_nn_compile_opts(&o, 4, pks[k], 11);
        tsr_nn_plan *p;
        tt_ok(tsr_nn_compile(m, &o, &p));
        if (p->prog->depth != want)
            fail_msg("%s, %s packing: the program's depth is %d, nn_model_depth %d", what,
                     k ? "tiled" : "batch", p->prog->depth, want);
        tsr_nn_plan_free(p);
    }
}

/*
 * Coefficients for nc channels of degree `degree`: non-zero up to power `top` (in channel
 * `only` alone for the top power when only >= 0), zero above it.
 */
static void fill(tsr_prng *g, double *coef, int degree, int nc, int top, int only) {
    for (int c = 0; c < nc; c++)
        for (int k = 0; k <= degree; k++) {
            double v = 0.05 + 0.2 * tsr_prng_double(g);
            int used = k < top || (k == top && (only < 0 || c == only));
            coef[c * (degree + 1) + k] = used ? v : 0.0;
        }
}

/* A degree-`degree` activation using powers up to `top` (see fill): its model's depth. */
static void check_poly(tsr_prng *g, int degree, int nc, int top, int only) {
    double coef[NHID * (MAXD + 1)];
    fill(g, coef, degree, nc, top, only);
    tsr_nn_model *m = tt_nn_poly_model(g, coef, degree, nc);
    char what[80];
    snprintf(what, sizeof what, "degree %d using powers up to %d, %s", degree, top,
             nc == 1 ? "per tensor" : "per channel");
    check_depth(m, 2 + poly_levels(top), what);
    tsr_nn_model_free(m);
}

/* Degrees 1..MAXD with every coefficient non-zero, one polynomial and one per channel. */
static void test_poly_degrees(void **state) {
    (void)state;
    tsr_prng g;
    tt_prng(&g, 1);
    for (int d = 1; d <= MAXD; d++) {
        check_poly(&g, d, 1, d, -1);
        check_poly(&g, d, NHID, d, -1);
    }
}

/*
 * What counts is the highest power in use: a degree-MAXD layer whose coefficients stop at
 * power `top` (per channel: the top power in the last channel only), and a constant one.
 */
static void test_poly_highest_power(void **state) {
    (void)state;
    tsr_prng g;
    tt_prng(&g, 2);
    for (int top = 0; top < MAXD; top++) {
        check_poly(&g, MAXD, 1, top, 0);
        check_poly(&g, MAXD, NHID, top, NHID - 1);
    }
}

enum { NS = 4 }; /* samples of the encrypted runs */

/*
 * The per-channel activation coef (degree d) run encrypted (CKKS, insecure test ring, beside
 * an exact mockup) on x (NS samples) in both packings: more than 24 bits against the
 * plaintext reference (26-30 measured).
 */
static void check_values(tsr_prng *g, const double *coef, int d, const double *x,
                         const char *what) {
    double ref[NS * TT_ACT_NOUT], out[NS * TT_ACT_NOUT];
    tsr_nn_model *m = tt_nn_poly_model(g, coef, d, NHID);
    tt_ok(nn_model_forward(m, x, NS, ref));
    const tsr_nn_packing pks[2] = { TSR_NN_PACK_BATCH, TSR_NN_PACK_TILED };
    for (int k = 0; k < 2; k++) {
        tsr_nn_compile_opts o;
        tt_nn_compile_opts(&o, NS, pks[k], 11);
        tsr_nn_plan *p;
        tt_ok(tsr_nn_compile(m, &o, &p));
        tt_nn_debug dbg;
        tt_nn_debug_create(p, &dbg);
        double bits = tt_nn_run_bits(p, dbg.debug, x, NS, out, ref);
        print_message("%s, %s packing: %.1f bits\n", what, k ? "tiled" : "batch", bits);
        if (!(bits > 24))
            fail_msg("%s, %s packing: %.1f bits against the plaintext", what, k ? "tiled" : "batch",
                     bits);
        tt_nn_debug_free(&dbg);
        tsr_nn_plan_free(p);
    }
    tsr_nn_model_free(m);
}

/*
 * The per-channel lowering computes what the model does: degrees 1 to 8 (coefficients
 * 0.05-0.25 / 2^k, inputs in +-0.5). From degree 3 on the pieces of the split sit at
 * different levels and scales (x^2 (c3 x + c2) + (c1 x + c0)) and must all land on the
 * output's canonical scale exactly.
 */
static void test_poly_channels_values(void **state) {
    (void)state;
    tsr_prng g;
    tt_prng(&g, 3);
    double coef[NHID * (MAXD + 1)], x[NS * TT_ACT_NIN];
    tt_uniform(&g, x, NS * TT_ACT_NIN, 0.5);
    for (int d = 1; d <= MAXD; d++) {
        fill(&g, coef, d, NHID, d, -1);
        for (int i = 0; i < NHID * (d + 1); i++) coef[i] = ldexp(coef[i], -(i % (d + 1)));
        char what[64];
        snprintf(what, sizeof what, "per channel, degree %d", d);
        check_values(&g, coef, d, x, what);
    }
}

/*
 * Coefficients that are zero in every channel drop out of the split (a piece of degree 0, a
 * constant times a power, no constant term), and a top power used by one channel alone:
 * degree 7 using powers 0, 1, 4 and 7 only; degree 6 without powers 0 and 1; degree 5 whose
 * top power only the last channel uses.
 */
static void test_poly_channels_gaps(void **state) {
    (void)state;
    tsr_prng g;
    tt_prng(&g, 4);
    double coef[NHID * (MAXD + 1)], x[NS * TT_ACT_NIN];
    tt_uniform(&g, x, NS * TT_ACT_NIN, 0.5);
    const struct {
        int d, top, only;
        unsigned zero; /* powers zero in every channel, bit k for power k */
        const char *what;
    } cases[] = {
        { 7, 7, -1, 1u << 2 | 1u << 3 | 1u << 5 | 1u << 6, "degree 7, powers 0 1 4 7" },
        { 6, 6, -1, 1u << 0 | 1u << 1, "degree 6 without powers 0 and 1" },
        { 5, 5, NHID - 1, 0, "degree 5, top power in one channel" },
    };
    for (size_t t = 0; t < sizeof cases / sizeof cases[0]; t++) {
        int d = cases[t].d;
        fill(&g, coef, d, NHID, cases[t].top, cases[t].only);
        for (int i = 0; i < NHID * (d + 1); i++)
            coef[i] = cases[t].zero >> (i % (d + 1)) & 1u ? 0.0 : ldexp(coef[i], -(i % (d + 1)));
        check_values(&g, coef, d, x, cases[t].what);
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_poly_degrees),
        cmocka_unit_test(test_poly_highest_power),
        cmocka_unit_test(test_poly_channels_values),
        cmocka_unit_test(test_poly_channels_gaps),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
