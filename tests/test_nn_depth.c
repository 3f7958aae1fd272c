/*
 * tests/test_nn_depth.c - nn_model_depth predicts exactly the depth the lowering gives a
 * model (nn_program_build's dry run inside tsr_nn_compile), for polynomial activations of
 * degrees 1 to 8, per tensor and per channel, in both packings. The expected depths come
 * from the test's own formulas for the two lowerings: per tensor (tsr_tile_poly) a degree-d
 * polynomial takes ceil(log2(d + 1)) levels; per channel (powers by products, then the
 * coefficients as plaintexts) ceil(log2 d) + 1, for the highest power with a non-zero
 * coefficient in any channel. The model is dense -> activation -> dense (one level each).
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

/* Levels of the activation by the test's formulas: top = the highest power used. */
static int poly_levels(int top, int nc) {
    if (top == 0) return 0;
    return nc == 1 ? ceil_log2(top + 1) : ceil_log2(top) + 1;
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
    check_depth(m, 2 + poly_levels(top, nc), what);
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

/*
 * The per-channel lowering computes what the model does: degrees 1 to 8 (coefficients
 * 0.05-0.25 / 2^k, inputs in +-0.5), encrypted (CKKS, insecure test ring, beside an exact
 * mockup) against the plaintext reference, in both packings. From degree 3 on the two factors
 * of a power sit at different levels (x^3 = x x^2); before they were brought to one scale
 * first, no plan compiled.
 */
static void test_poly_channels_values(void **state) {
    (void)state;
    tsr_prng g;
    tt_prng(&g, 3);
    enum { n = 4 };
    double coef[NHID * (MAXD + 1)], x[n * TT_ACT_NIN], ref[n * TT_ACT_NOUT], out[n * TT_ACT_NOUT];
    tt_uniform(&g, x, n * TT_ACT_NIN, 0.5);
    const tsr_nn_packing pks[2] = { TSR_NN_PACK_BATCH, TSR_NN_PACK_TILED };
    for (int d = 1; d <= MAXD; d++) {
        fill(&g, coef, d, NHID, d, -1);
        for (int i = 0; i < NHID * (d + 1); i++) coef[i] = ldexp(coef[i], -(i % (d + 1)));
        tsr_nn_model *m = tt_nn_poly_model(&g, coef, d, NHID);
        tt_ok(nn_model_forward(m, x, n, ref));
        for (int k = 0; k < 2; k++) {
            tsr_nn_compile_opts o;
            tt_nn_compile_opts(&o, n, pks[k], 11);
            tsr_nn_plan *p;
            tt_ok(tsr_nn_compile(m, &o, &p));
            tt_nn_debug dbg;
            tt_nn_debug_create(p, &dbg);
            double bits = tt_nn_run_bits(p, dbg.debug, x, n, out, ref);
            print_message("per channel, degree %d, %s packing: %.1f bits\n", d,
                          k ? "tiled" : "batch", bits);
            if (!(bits > 20))
                fail_msg("per channel, degree %d, %s packing: %.1f bits against the plaintext", d,
                         k ? "tiled" : "batch", bits);
            tt_nn_debug_free(&dbg);
            tsr_nn_plan_free(p);
        }
        tsr_nn_model_free(m);
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_poly_degrees),
        cmocka_unit_test(test_poly_highest_power),
        cmocka_unit_test(test_poly_channels_values),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
