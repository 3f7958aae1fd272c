/*
 * tests/test_circuits.c - the circuits layer: Chebyshev series in doubles
 * (exact identities, known expansions, least-squares fits, error grids).
 */
#include "testutil.h"

#include "tessera.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- plaintext Chebyshev series ---------------------------------------------------- */

/* The series e_n (c_n = 1) evaluated at cos(t) is cos(n t), on [-1, 1] and mapped. */
static void test_cheb_identity(void **state) {
    (void)state;
    double c[41];
    const double ivals[3][2] = { { -1, 1 }, { 1, 2 }, { -8, 8 } };
    for (size_t iv = 0; iv < 3; iv++)
        for (size_t n = 0; n <= 40; n++) {
            memset(c, 0, sizeof c);
            c[n] = 1;
            tsr_cheb s = { ivals[iv][0], ivals[iv][1], n, c };
            for (int j = 0; j <= 16; j++) {
                double t = M_PI * j / 16.0 + 0.01 * j;
                double x = s.a + (s.b - s.a) * (cos(t) + 1) / 2;
                double got = tsr_circuits_cheb_eval(&s, x);
                assert_true(fabs(got - cos((double)n * t)) < 1e-12);
            }
        }
}

static double series_fn(double x, void *ctx) {
    return tsr_circuits_cheb_eval((const tsr_cheb *)ctx, x);
}

/* Fitting a polynomial of degree d at degree >= d gives its coefficients back (zeros above d). */
static void test_cheb_fit_exact(void **state) {
    (void)state;
    tsr_prng g;
    tt_prng(&g, 1);
    double c[64], got[80];
    for (size_t d = 0; d <= 60; d += 3) {
        for (size_t i = 0; i <= d; i++) c[i] = 2 * tsr_prng_double(&g) - 1;
        tsr_cheb s = { -3, 5, d, c };
        /* interpolation at d + 1 nodes, then least squares at 3d + 7 nodes, at degree d + 10 */
        tt_ok(tsr_circuits_cheb_fit(got, d, 0, s.a, s.b, series_fn, &s));
        for (size_t i = 0; i <= d; i++) assert_true(fabs(got[i] - c[i]) < 1e-13);
        tt_ok(tsr_circuits_cheb_fit(got, d + 10, 3 * d + 7 + 10, s.a, s.b, series_fn, &s));
        for (size_t i = 0; i <= d + 10; i++)
            assert_true(fabs(got[i] - (i <= d ? c[i] : 0)) < 1e-13);
    }
}

/* I_j(1) and J_j(1) by their power series. */
static double bessel_1(int j, int modified) {
    double sum = 0, term = 1;
    for (int i = 1; i <= j; i++) term /= 2.0 * i; /* (1/2)^j / j! */
    for (int k = 0; k < 30; k++) {
        sum += (modified || k % 2 == 0 ? 1 : -1) * term;
        term *= 0.25 / ((k + 1.0) * (k + 1.0 + j));
    }
    return sum;
}

static double f_exp(double x, void *ctx) {
    (void)ctx;
    return exp(x);
}
static double f_sin(double x, void *ctx) {
    (void)ctx;
    return sin(x);
}
static double f_inv(double x, void *ctx) {
    (void)ctx;
    return 1 / x;
}
static double f_tanh(double x, void *ctx) {
    (void)ctx;
    return tanh(x);
}

/*
 * Known expansions (Trefethen ch. 3, Abramowitz-Stegun 9.6.34, 9.1.45):
 * exp(x) = I_0(1) + 2 sum I_j(1) T_j(x); sin(x) = 2 sum (-1)^k J_{2k+1}(1)
 * T_{2k+1}(x); 1/(a + y) = (1/sqrt(a^2-1)) (1 + 2 sum (-rho)^k T_k(y)) with
 * rho = a - sqrt(a^2 - 1); 1/x on [1, 2] is 2/(3 + y).
 */
static void test_cheb_known(void **state) {
    (void)state;
    double c[25];
    tt_ok(tsr_circuits_cheb_fit(c, 24, 0, -1, 1, f_exp, NULL));
    for (int j = 0; j <= 20; j++) assert_true(fabs(c[j] - (j ? 2 : 1) * bessel_1(j, 1)) < 1e-14);
    tt_ok(tsr_circuits_cheb_fit(c, 24, 0, -1, 1, f_sin, NULL));
    for (int j = 0; j <= 20; j++) {
        double want = j % 2 ? 2 * ((j / 2) % 2 ? -1 : 1) * bessel_1(j, 0) : 0;
        assert_true(fabs(c[j] - want) < 1e-14);
    }
    tt_ok(tsr_circuits_cheb_fit(c, 24, 0, 1, 2, f_inv, NULL));
    double r8 = sqrt(8.0), rho = 3 - r8;
    for (int j = 0; j <= 20; j++) {
        double want = 2 / r8 * (j ? 2 * pow(-rho, j) : 1);
        assert_true(fabs(c[j] - want) < 1e-14);
    }
}

/* Max error on a grid: within Trefethen's bound 2 sum_{j>d} |c_j|, shrinking with d. */
static void test_cheb_max_error(void **state) {
    (void)state;
    double ref[201], c[64];
    tt_ok(tsr_circuits_cheb_fit(ref, 200, 0, -4, 4, f_tanh, NULL));
    double prev = INFINITY;
    const size_t degs[] = { 7, 15, 31, 63 };
    for (size_t i = 0; i < 4; i++) {
        size_t d = degs[i];
        tt_ok(tsr_circuits_cheb_fit(c, d, 0, -4, 4, f_tanh, NULL));
        tsr_cheb s = { -4, 4, d, c };
        double err, at;
        tt_ok(tsr_circuits_cheb_max_error(&s, f_tanh, NULL, 4001, &err, &at));
        double tail = 0;
        for (size_t j = d + 1; j <= 200; j++) tail += fabs(ref[j]);
        assert_true(err <= 2 * tail + 1e-15);
        assert_true(err > 0 && err < prev);
        assert_true(at >= -4 && at <= 4);
        assert_true(fabs(fabs(tsr_circuits_cheb_eval(&s, at) - tanh(at)) - err) == 0);
        prev = err;
    }
    assert_true(prev < 1e-6);
}

static double f_bad(double x, void *ctx) {
    (void)ctx;
    return x > 0.5 ? NAN : x;
}

static void test_cheb_errors(void **state) {
    (void)state;
    double c[8] = { 0 };
    tt_fails(tsr_circuits_cheb_fit(c, 7, 0, 1, 1, f_exp, NULL), TSR_ERR_INVALID_ARG);
    tt_fails(tsr_circuits_cheb_fit(c, 7, 0, 0, INFINITY, f_exp, NULL), TSR_ERR_INVALID_ARG);
    tt_fails(tsr_circuits_cheb_fit(c, 7, 5, -1, 1, f_exp, NULL), TSR_ERR_INVALID_ARG);
    tt_fails(tsr_circuits_cheb_fit(c, 7, 0, -1, 1, f_bad, NULL), TSR_ERR_INVALID_ARG);
    tt_fails(tsr_circuits_cheb_fit(c, TSR_CIRCUITS_MAX_DEGREE + 1, 0, -1, 1, f_exp, NULL),
             TSR_ERR_INVALID_ARG);
    tsr_cheb s = { -1, 1, 7, c };
    double err;
    tt_fails(tsr_circuits_cheb_max_error(&s, f_exp, NULL, 1, &err, NULL), TSR_ERR_INVALID_ARG);
    tt_fails(tsr_circuits_cheb_max_error(&s, f_bad, NULL, 11, &err, NULL), TSR_ERR_INVALID_ARG);
    s.b = -2;
    tt_fails(tsr_circuits_cheb_max_error(&s, f_exp, NULL, 11, &err, NULL), TSR_ERR_INVALID_ARG);
    s.b = 1;
    c[3] = NAN;
    tt_fails(tsr_circuits_cheb_max_error(&s, f_exp, NULL, 11, &err, NULL), TSR_ERR_INVALID_ARG);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cheb_identity), cmocka_unit_test(test_cheb_fit_exact),
        cmocka_unit_test(test_cheb_known),    cmocka_unit_test(test_cheb_max_error),
        cmocka_unit_test(test_cheb_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
