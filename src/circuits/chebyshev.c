/*
 * circuits/chebyshev.c - Chebyshev series in doubles: fitting a function on
 * [a, b] from its values at Chebyshev points, Clenshaw evaluation and the
 * error of an approximation on a grid.
 *
 * Reference: L. N. Trefethen, "Approximation Theory and Approximation
 * Practice", SIAM 2013: chapter 3 (Chebyshev series, Clenshaw), chapter 4
 * (interpolants at Chebyshev points and their coefficients by a discrete
 * cosine transform). The discrete orthogonality used for the least-squares
 * form: for j, j' < M, sum_k T_j(x_k) T_j'(x_k) over the M points
 * x_k = cos(pi (k + 1/2) / M) is 0 if j != j', M/2 if j = j' > 0, M if 0.
 */
#include "tessera/circuits.h"

#include "circuits/circuits_internal.h"
#include "core/error.h"

#include <math.h>
#include <stdlib.h>

#define MAX_NODES ((size_t)1 << 20)

tsr_status circuits_check_series(const tsr_cheb *s) {
    TSR_REQUIRE(s, "tsr_circuits: NULL series");
    if (!isfinite(s->a) || !isfinite(s->b) || !(s->a < s->b))
        return tsr_fail(TSR_ERR_INVALID_ARG,
                        "the series interval [%g, %g] is not a finite interval with a < b", s->a,
                        s->b);
    if (s->degree > TSR_CIRCUITS_MAX_DEGREE)
        return tsr_fail(TSR_ERR_INVALID_ARG, "degree %zu is above the maximum %d", s->degree,
                        TSR_CIRCUITS_MAX_DEGREE);
    TSR_REQUIRE(s->coeffs, "tsr_circuits: NULL series coefficients");
    for (size_t i = 0; i <= s->degree; i++)
        if (!isfinite(s->coeffs[i]))
            return tsr_fail(TSR_ERR_INVALID_ARG, "series coefficient %zu is not finite", i);
    return TSR_OK;
}

tsr_status tsr_circuits_cheb_fit(double *coeffs, size_t degree, size_t nodes, double a, double b,
                                 tsr_circuits_fn f, void *ctx) {
    TSR_REQUIRE(coeffs && f, "tsr_circuits_cheb_fit: NULL coeffs or function");
    if (!isfinite(a) || !isfinite(b) || !(a < b))
        return tsr_fail(TSR_ERR_INVALID_ARG, "[%g, %g] is not a finite interval with a < b", a, b);
    if (degree > TSR_CIRCUITS_MAX_DEGREE)
        return tsr_fail(TSR_ERR_INVALID_ARG, "degree %zu is above the maximum %d", degree,
                        TSR_CIRCUITS_MAX_DEGREE);
    if (nodes == 0) nodes = degree + 1;
    if (nodes < degree + 1 || nodes > MAX_NODES)
        return tsr_fail(TSR_ERR_INVALID_ARG,
                        "%zu nodes for degree %zu: need degree + 1 <= nodes <= %zu", nodes, degree,
                        MAX_NODES);
    double *fx = malloc(nodes * sizeof *fx);
    if (!fx) return tsr_fail(TSR_ERR_NOMEM, "out of memory for %zu function values", nodes);
    const double m = (double)nodes;
    for (size_t k = 0; k < nodes; k++) {
        double t = cos(M_PI * ((double)k + 0.5) / m);
        double x = 0.5 * (a + b) + 0.5 * (b - a) * t;
        fx[k] = f(x, ctx);
        if (!isfinite(fx[k])) {
            free(fx);
            return tsr_fail(TSR_ERR_INVALID_ARG, "the function is not finite at x = %.17g", x);
        }
    }
    /* c_j = (2/M) sum_k f(x_k) cos(pi j (k + 1/2) / M); the angle is reduced
     * modulo 2 pi in integers (j (2k + 1) mod 4M) so cos stays accurate. */
    const uint64_t period = 4 * (uint64_t)nodes;
    for (size_t j = 0; j <= degree; j++) {
        double acc = 0;
        for (size_t k = 0; k < nodes; k++) {
            uint64_t r = ((uint64_t)j * (2 * (uint64_t)k + 1)) % period;
            acc += fx[k] * cos(M_PI * (double)r / (2 * m));
        }
        coeffs[j] = (j == 0 ? 1.0 : 2.0) * acc / m;
    }
    free(fx);
    return TSR_OK;
}

double tsr_circuits_cheb_eval(const tsr_cheb *s, double x) {
    TSR_REQUIRE(s && s->coeffs && s->a < s->b, "tsr_circuits_cheb_eval: invalid series");
    double y = (2 * x - s->a - s->b) / (s->b - s->a);
    /* Clenshaw: b_k = c_k + 2y b_{k+1} - b_{k+2}; p = c_0 + y b_1 - b_2. */
    double b1 = 0, b2 = 0;
    for (size_t k = s->degree; k >= 1; k--) {
        double b0 = s->coeffs[k] + 2 * y * b1 - b2;
        b2 = b1;
        b1 = b0;
    }
    return s->coeffs[0] + y * b1 - b2;
}

tsr_status tsr_circuits_cheb_max_error(const tsr_cheb *s, tsr_circuits_fn f, void *ctx,
                                       size_t points, double *max_err, double *at) {
    TSR_REQUIRE(f && max_err, "tsr_circuits_cheb_max_error: NULL function or output");
    TSR_TRY(circuits_check_series(s));
    if (points < 2)
        return tsr_fail(TSR_ERR_INVALID_ARG, "the error grid needs at least 2 points (got %zu)",
                        points);
    double worst = 0, where = s->a;
    for (size_t i = 0; i < points; i++) {
        double x = i + 1 == points ? s->b : s->a + (s->b - s->a) * (double)i / (double)(points - 1);
        double fx = f(x, ctx);
        if (!isfinite(fx))
            return tsr_fail(TSR_ERR_INVALID_ARG, "the function is not finite at x = %.17g", x);
        double e = fabs(tsr_circuits_cheb_eval(s, x) - fx);
        if (e > worst) {
            worst = e;
            where = x;
        }
    }
    *max_err = worst;
    if (at) *at = where;
    return TSR_OK;
}
