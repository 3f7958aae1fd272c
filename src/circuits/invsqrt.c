/*
 * circuits/invsqrt.c - 1/sqrt(x) on a ciphertext by Newton's iteration from
 * a Chebyshev initial guess, on a stated range [a, b], 0 < a < b.
 *
 * References:
 *  - Newton's method for f(y) = 1/y^2 - x: y <- y (3 - x y^2) / 2 (the
 *    division-free form; e.g. Panda, "Polynomial approximation of inverse
 *    sqrt function for FHE", CSCML 2022, and Zimerman et al., arXiv
 *    2410.09457, for LayerNorm under CKKS). With y = (1 + e) / sqrt(x) one
 *    step gives relative error -(3/2) e^2 - (1/2) e^3.
 *  - L. N. Trefethen, ATAP ch. 4: the initial guess is the Chebyshev
 *    interpolant of 1/sqrt(x) on [a, b] (tsr_circuits_cheb_fit), evaluated
 *    by tsr_circuits_poly_eval (Bossuat et al., EUROCRYPT 2021).
 *
 * Levels (input x at L): y_0 at L - 1 - ceil(log2(d + 1)) (the map to
 * [-1, 1] and the polynomial); h = x / 2 at L - 1 (one constant product,
 * computed once). One step from y at level l, written
 *   y' = 1.5 y - (h y) (y y):
 * h y and y y at l - 1, their product at l - 2, 1.5 y at l - 1 (one
 * constant product), the difference at l - 2: two levels and three
 * ciphertext products per step instead of the three levels of
 * y (3 - x y^2) / 2 evaluated left to right.
 */
#include "tessera/circuits.h"

#include "circuits/circuits_internal.h"
#include "circuits/fn_internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define MAX_ITERATIONS 8
#define MAX_DEGREE     255
/* Largest relative error of the initial guess Newton is started from. */
#define MAX_START_ERROR 0.5

static double f_invsqrt(double x, void *ctx) {
    (void)ctx;
    return 1 / sqrt(x);
}

static tsr_status check_args(double a, double b, size_t degree, int iterations) {
    if (!isfinite(a) || !isfinite(b) || !(a > 0) || !(a < b))
        return tsr_fail(TSR_ERR_INVALID_ARG,
                        "the inverse square root needs a range [a, b] with 0 < a < b (finite); "
                        "got [%g, %g]",
                        a, b);
    if (degree < 1 || degree > MAX_DEGREE)
        return tsr_fail(TSR_ERR_INVALID_ARG,
                        "initial-guess degree %zu for the inverse square root: use 1..%d", degree,
                        MAX_DEGREE);
    if (iterations < 0 || iterations > MAX_ITERATIONS)
        return tsr_fail(TSR_ERR_INVALID_ARG, "%d Newton iterations: use 0..%d", iterations,
                        MAX_ITERATIONS);
    return TSR_OK;
}

/*
 * Fit the initial guess (coeffs: degree + 1 values) and measure, on the
 * grid, the largest relative error of the start (*start) and the largest
 * absolute error after `iterations` Newton steps in doubles (*err).
 */
static tsr_status fit_and_measure(double a, double b, size_t degree, int iterations, double *coeffs,
                                  double *start, double *err) {
    TSR_TRY(tsr_circuits_cheb_fit(coeffs, degree, 0, a, b, f_invsqrt, NULL));
    tsr_cheb s = { a, b, degree, coeffs };
    *start = 0;
    *err = 0;
    for (int k = 0; k < FN_GRID; k++) {
        double x = a + (b - a) * k / (FN_GRID - 1), want = 1 / sqrt(x);
        double y = tsr_circuits_cheb_eval(&s, x);
        double rel = fabs(y / want - 1);
        if (isnan(rel) || rel > *start) *start = rel; /* a NaN sticks */
        for (int i = 0; i < iterations; i++) y = 1.5 * y - (0.5 * x * y) * (y * y);
        double e = fabs(y - want);
        if (isnan(e) || e > *err) *err = e;
    }
    return TSR_OK;
}

/* The plan proper, with the fitted coefficients (degree + 1 values) returned. */
static tsr_status plan(double a, double b, size_t degree, int iterations, int in_level,
                       tsr_circuits_fn_info *info, double *coeffs) {
    memset(info, 0, sizeof *info);
    TSR_TRY(check_args(a, b, degree, iterations));
    double start, err;
    TSR_TRY(fit_and_measure(a, b, degree, iterations, coeffs, &start, &err));
    if (!(start < MAX_START_ERROR))
        return tsr_fail(TSR_ERR_INVALID_ARG,
                        "the degree-%zu initial guess of 1/sqrt(x) on [%g, %g] is off by up to "
                        "%.0f%% (Newton needs below %.0f%%): raise the degree or narrow the range",
                        degree, a, b, 100 * start, 100 * MAX_START_ERROR);
    tsr_cheb s = { a, b, degree, coeffs };
    tsr_circuits_poly_info pi;
    TSR_TRY(tsr_circuits_poly_plan(&s, 1 << 20, &pi));
    info->depth = pi.depth + 2 * iterations;
    info->out_level = in_level - info->depth;
    info->ct_mults = pi.ct_mults + 3 * (size_t)iterations;
    info->const_mults = pi.const_mults + (iterations > 0) + (size_t)iterations;
    info->needs_relin_key = info->ct_mults > 0;
    info->approx_bits = fn_bits(err);
    if (in_level < info->depth)
        return tsr_fail(TSR_ERR_LEVEL,
                        "the inverse square root on [%g, %g] (initial guess of degree %zu: %d "
                        "levels, %d Newton iterations: %d) needs %d levels but the ciphertext is "
                        "at level %d: use a lower degree, fewer iterations, a deeper parameter "
                        "set, or bootstrap",
                        a, b, degree, pi.depth, iterations, 2 * iterations, info->depth, in_level);
    return TSR_OK;
}

tsr_status tsr_circuits_invsqrt_plan(double a, double b, size_t degree, int iterations,
                                     int in_level, tsr_circuits_fn_info *info) {
    TSR_REQUIRE(info, "tsr_circuits_invsqrt_plan: NULL info");
    TSR_TRY(check_args(a, b, degree, iterations));
    double *coeffs = malloc((degree + 1) * sizeof *coeffs);
    if (!coeffs) return tsr_fail(TSR_ERR_NOMEM, "out of memory for the initial guess");
    tsr_status st = plan(a, b, degree, iterations, in_level, info, coeffs);
    free(coeffs);
    return st;
}

tsr_status tsr_circuits_invsqrt(tsr_ckks_evaluator *ev, tsr_ckks_ciphertext *out,
                                const tsr_ckks_ciphertext *in, double a, double b, size_t degree,
                                int iterations, tsr_circuits_fn_info *info) {
    TSR_REQUIRE(ev && out && in, "tsr_circuits_invsqrt: NULL evaluator or ciphertext");
    TSR_TRY(check_args(a, b, degree, iterations));
    int level;
    TSR_TRY(circuits_check_input(ev, out, in, &level));
    double *coeffs = malloc((degree + 1) * sizeof *coeffs);
    if (!coeffs) return tsr_fail(TSR_ERR_NOMEM, "out of memory for the initial guess");
    tsr_circuits_fn_info pl;
    tsr_status st = plan(a, b, degree, iterations, level, &pl, coeffs);
    if (st == TSR_OK && pl.needs_relin_key)
        st = fn_need_relin(ev, "the inverse square root (Newton)");
    tsr_ckks_params *p = ev->params;
    if (st == TSR_OK) st = fn_check_fits(p, 1.5 / sqrt(a), pl.out_level, "the inverse square root");

    tsr_ckks_ciphertext *y = NULL, *h = NULL, *u = NULL, *v = NULL;
    if (st == TSR_OK) st = tsr_ckks_ciphertext_create(&y, p);
    if (st == TSR_OK) st = tsr_ckks_ciphertext_create(&h, p);
    if (st == TSR_OK) st = tsr_ckks_ciphertext_create(&u, p);
    if (st == TSR_OK) st = tsr_ckks_ciphertext_create(&v, p);
    tsr_cheb s = { a, b, degree, coeffs };
    if (st == TSR_OK) st = tsr_circuits_poly_eval(ev, y, in, &s, NULL);
    /* |y| stays below 1.5 / sqrt(a) (the start is within 50 %, Newton then converges) */
    const double ybound = 1.5 / sqrt(a);
    if (st == TSR_OK) fn_bound(y, ybound);
    if (st == TSR_OK && iterations > 0) st = fn_mul_const(ev, h, in, 0.5, "x / 2");
    if (st == TSR_OK) fn_bound(h, b / 2);
    for (int i = 0; i < iterations && st == TSR_OK; i++) {
        st = fn_mul(ev, u, h, y, "x y / 2");
        if (st == TSR_OK) st = fn_mul(ev, v, y, y, "y^2");
        if (st == TSR_OK) st = fn_mul(ev, u, u, v, "x y^3 / 2");
        if (st == TSR_OK) st = fn_mul_const(ev, v, y, 1.5, "1.5 y");
        if (st == TSR_OK) st = tsr_ckks_sub(ev, y, v, u);
        if (st == TSR_OK) fn_bound(y, ybound);
    }
    if (st == TSR_OK && tsr_ckks_ciphertext_level(y) != pl.out_level)
        st = tsr_fail(TSR_ERR_INTERNAL,
                      "the inverse square root ended at level %d instead of %d (a bug in Tessera)",
                      tsr_ckks_ciphertext_level(y), pl.out_level);
    if (st == TSR_OK) st = fn_snap(y, pl.out_level, "the inverse square root");
    if (st == TSR_OK) st = tsr_ckks_ciphertext_copy(out, y);
    if (st == TSR_OK && info) *info = pl;
    tsr_ckks_ciphertext_free(y);
    tsr_ckks_ciphertext_free(h);
    tsr_ckks_ciphertext_free(u);
    tsr_ckks_ciphertext_free(v);
    free(coeffs);
    return st;
}
