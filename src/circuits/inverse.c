/*
 * circuits/inverse.c - 1/x on a ciphertext by Goldschmidt's iteration on a
 * stated range [a, b], 0 < a < b.
 *
 * References:
 *  - R. E. Goldschmidt, "Applications of division by convergence", M.Sc.
 *    thesis, MIT, 1964: 1/(1 - y) = prod_{i >= 0} (1 + y^(2^i)) for |y| < 1.
 *  - J. H. Cheon, D. Kim, D. Kim, H. H. Lee, K. Lee, "Numerical Method for
 *    Comparison on Homomorphically Encrypted Numbers", ASIACRYPT 2019,
 *    the Inverse algorithm: the iteration on CKKS ciphertexts.
 *  - I. Zimerman et al., "Power-Softmax", arXiv 2410.09457: the reciprocal
 *    of the normalizer, on a bounded domain, by these iterations.
 *
 * With c = 2 / (a + b) the input is mapped so that b_0 = 1 - c x lies in
 * [-rho, rho], rho = (b - a) / (b + a) (the best linear start: it centres
 * c x on 1). Then a_0 = c (1 + b_0), b_{i+1} = b_i^2, a_{i+1} = a_i (1 +
 * b_{i+1}), so a_r = c prod_{i <= r} (1 + b_0^(2^i)) = (1 - b_0^(2^(r+1))) / x:
 * relative error rho^(2^(r+1)), doubling the bits per iteration.
 *
 * Levels (input at L): a_0 and b_0 are one constant product each (L - 1);
 * b_i is at L - 1 - i and a_i at L - 2 - i for i >= 1 (a_{i-1} meets b_i one
 * level lower, the evaluator adjusts it exactly): depth r + 2 for r >= 1, 1
 * for r = 0; 2 r ciphertext products. Every intermediate sits at its
 * level's canonical scale, so the result has exactly the canonical scale.
 */
#include "tessera/circuits.h"

#include "circuits/circuits_internal.h"
#include "circuits/fn_internal.h"

#include <math.h>
#include <string.h>

#define MAX_ITERATIONS 40

static tsr_status check_range(double a, double b, int iterations) {
    if (!isfinite(a) || !isfinite(b) || !(a > 0) || !(a < b))
        return tsr_fail(TSR_ERR_INVALID_ARG,
                        "the inverse needs a range [a, b] with 0 < a < b (finite); got [%g, %g]: "
                        "shift or negate the input so it is positive",
                        a, b);
    if (iterations < 0 || iterations > MAX_ITERATIONS)
        return tsr_fail(TSR_ERR_INVALID_ARG, "%d Goldschmidt iterations: use 0..%d", iterations,
                        MAX_ITERATIONS);
    return TSR_OK;
}

/* a_r(x) in doubles, the same recurrence as the ciphertext code. */
static double goldschmidt(double x, double a, double b, int r) {
    double c = 2 / (a + b), bi = 1 - c * x, ai = c * (1 + bi);
    for (int i = 1; i <= r; i++) {
        bi = bi * bi;
        ai = ai * (1 + bi);
    }
    return ai;
}

/* Largest |a_r(x) - 1/x| over the grid of FN_GRID points of [a, b]. */
static double max_error(double a, double b, int r) {
    double worst = 0;
    for (int k = 0; k < FN_GRID; k++) {
        double x = a + (b - a) * k / (FN_GRID - 1);
        double e = fabs(goldschmidt(x, a, b, r) - 1 / x);
        if (e > worst) worst = e;
    }
    return worst;
}

tsr_status tsr_circuits_inverse_plan(double a, double b, int iterations, int in_level,
                                     tsr_circuits_fn_info *info) {
    TSR_REQUIRE(info, "tsr_circuits_inverse_plan: NULL info");
    memset(info, 0, sizeof *info);
    TSR_TRY(check_range(a, b, iterations));
    info->depth = iterations == 0 ? 1 : iterations + 2;
    info->out_level = in_level - info->depth;
    info->ct_mults = 2 * (size_t)iterations;
    info->const_mults = 2;
    info->needs_relin_key = iterations > 0;
    info->approx_bits = fn_bits(max_error(a, b, iterations));
    if (in_level < info->depth)
        return tsr_fail(TSR_ERR_LEVEL,
                        "the inverse on [%g, %g] with %d Goldschmidt iterations needs %d levels "
                        "but the ciphertext is at level %d: use fewer iterations, a deeper "
                        "parameter set, or bootstrap",
                        a, b, iterations, info->depth, in_level);
    return TSR_OK;
}

tsr_status tsr_circuits_inverse_iterations(double a, double b, double bits, int *iterations) {
    TSR_REQUIRE(iterations, "tsr_circuits_inverse_iterations: NULL output");
    TSR_TRY(check_range(a, b, 0));
    if (!(bits <= 50))
        return tsr_fail(TSR_ERR_INVALID_ARG, "%g bits asked: at most 50 (doubles)", bits);
    for (int r = 0; r <= MAX_ITERATIONS; r++)
        if (fn_bits(max_error(a, b, r)) >= bits) {
            *iterations = r;
            return TSR_OK;
        }
    return tsr_fail(TSR_ERR_INVALID_ARG,
                    "the inverse on [%g, %g] does not reach %g bits in %d Goldschmidt iterations: "
                    "the range is too wide (b/a = %g); narrow it or scale the input",
                    a, b, bits, MAX_ITERATIONS, b / a);
}

tsr_status tsr_circuits_inverse(tsr_ckks_evaluator *ev, tsr_ckks_ciphertext *out,
                                const tsr_ckks_ciphertext *in, double a, double b, int iterations,
                                tsr_circuits_fn_info *info) {
    TSR_REQUIRE(ev && out && in, "tsr_circuits_inverse: NULL evaluator or ciphertext");
    int level;
    TSR_TRY(check_range(a, b, iterations));
    TSR_TRY(circuits_check_input(ev, out, in, &level));
    tsr_circuits_fn_info plan;
    TSR_TRY(tsr_circuits_inverse_plan(a, b, iterations, level, &plan));
    if (plan.needs_relin_key) TSR_TRY(fn_need_relin(ev, "the inverse (Goldschmidt)"));
    tsr_ckks_params *p = ev->params;
    TSR_TRY(fn_check_fits(p, 1 / a, plan.out_level, "the inverse"));

    const double c = 2 / (a + b), rho = (b - a) / (b + a);
    tsr_ckks_ciphertext *ai = NULL, *bi = NULL, *t = NULL;
    tsr_status st = tsr_ckks_ciphertext_create(&ai, p);
    if (st == TSR_OK) st = tsr_ckks_ciphertext_create(&bi, p);
    if (st == TSR_OK) st = tsr_ckks_ciphertext_create(&t, p);
    /* b_0 = 1 - c x, a_0 = c (1 + b_0) = 2 c - c^2 x: one constant product each */
    if (st == TSR_OK) st = fn_mul_const(ev, bi, in, -c, "Goldschmidt's b_0");
    if (st == TSR_OK) st = tsr_ckks_add_const(ev, bi, bi, 1.0, 0.0);
    if (st == TSR_OK) st = fn_mul_const(ev, ai, in, -c * c, "Goldschmidt's a_0");
    if (st == TSR_OK) st = tsr_ckks_add_const(ev, ai, ai, 2 * c, 0.0);
    if (st == TSR_OK) {
        fn_bound(bi, rho);
        fn_bound(ai, 1 / a);
    }
    double bbound = rho;
    for (int i = 1; i <= iterations && st == TSR_OK; i++) {
        bbound *= bbound;
        st = fn_mul(ev, bi, bi, bi, "Goldschmidt's b_i");
        if (st == TSR_OK) {
            fn_bound(bi, bbound);
            st = tsr_ckks_add_const(ev, t, bi, 1.0, 0.0);
        }
        if (st == TSR_OK) st = fn_mul(ev, ai, ai, t, "Goldschmidt's a_i");
        if (st == TSR_OK) fn_bound(ai, 1 / a);
    }
    if (st == TSR_OK && tsr_ckks_ciphertext_level(ai) != plan.out_level)
        st = tsr_fail(TSR_ERR_INTERNAL,
                      "the inverse ended at level %d instead of %d (a bug in "
                      "Tessera)",
                      tsr_ckks_ciphertext_level(ai), plan.out_level);
    if (st == TSR_OK) st = tsr_ckks_ciphertext_copy(out, ai);
    if (st == TSR_OK && info) *info = plan;
    tsr_ckks_ciphertext_free(ai);
    tsr_ckks_ciphertext_free(bi);
    tsr_ckks_ciphertext_free(t);
    return st;
}
