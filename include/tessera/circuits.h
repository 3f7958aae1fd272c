/*
 * tessera/circuits.h - circuits built on the CKKS evaluator: Chebyshev
 * approximation of functions (plaintext side) and polynomial evaluation on
 * ciphertexts. See docs/CIRCUITS.md.
 *
 * References:
 *  - L. N. Trefethen, "Approximation Theory and Approximation Practice",
 *    SIAM 2013, chapters 3-4 (Chebyshev interpolants, discrete
 *    orthogonality, the Clenshaw recurrence).
 *  - M. S. Paterson, L. J. Stockmeyer, "On the number of nonscalar
 *    multiplications necessary to evaluate polynomials", SIAM J. Comput.
 *    1973 (baby-step giant-step evaluation).
 *  - K. Han, D. Ki, "Better Bootstrapping for Approximate Homomorphic
 *    Encryption", CT-RSA 2020, section 4 (the Chebyshev-basis
 *    baby-step giant-step algorithm for CKKS).
 *  - J.-P. Bossuat, C. Mouchet, J. Troncoso-Pastoriza, J.-P. Hubaux,
 *    "Efficient Bootstrapping for Approximate Homomorphic Encryption with
 *    Non-Sparse Keys", EUROCRYPT 2021, section 4.2 (level-optimal
 *    baby-step giant-step: ceil(log2(d+1)) levels for degree d).
 *
 * Thread-safety: the Chebyshev functions are pure (they call the user's
 * function from the calling thread only).
 */
#ifndef TESSERA_CIRCUITS_H
#define TESSERA_CIRCUITS_H

#include "tessera/ckks.h"
#include "tessera/common.h"

TSR_BEGIN_DECLS

/* ======================================================================== */
/* Chebyshev series (plaintext)                                              */
/* ======================================================================== */

/** Largest degree accepted by the Chebyshev and polynomial functions. */
#define TSR_CIRCUITS_MAX_DEGREE 1023

/**
 * A Chebyshev series on [a, b] (a view: the caller owns coeffs):
 *   p(x) = sum_{i=0}^{degree} coeffs[i] * T_i(y),  y = (2x - a - b) / (b - a),
 * where T_i is the Chebyshev polynomial of the first kind, T_i(cos t) =
 * cos(i t). Valid series have a < b (finite), degree <=
 * TSR_CIRCUITS_MAX_DEGREE and finite coefficients.
 */
typedef struct tsr_cheb {
    double a, b;          /**< the interval */
    size_t degree;        /**< d: coeffs holds d + 1 values */
    const double *coeffs; /**< c_0..c_d */
} tsr_cheb;

/** A real function for the approximation routines. */
typedef double (*tsr_circuits_fn)(double x, void *ctx);

/**
 * Chebyshev coefficients of f on [a, b] at degree `degree` from its values
 * at the `nodes` Chebyshev points of the first kind
 * x_k = cos(pi (k + 1/2) / nodes), k < nodes (mapped to [a, b]):
 *   c_j = (2 - [j = 0]) / nodes * sum_k f(x_k) T_j(x_k).
 * With nodes = degree + 1 this is the interpolant (exact for polynomials of
 * degree <= degree). With nodes > degree + 1 it is the degree-`degree`
 * truncation of the interpolant at `nodes` points, which by discrete
 * orthogonality is the least-squares fit over those nodes (Chebyshev
 * weighted: denser near the ends). nodes = 0 means degree + 1.
 * coeffs receives degree + 1 values. Fails with TSR_ERR_INVALID_ARG for a
 * bad interval, degree > TSR_CIRCUITS_MAX_DEGREE, nodes in [1, degree] or
 * above 2^20, or a non-finite value of f (the message names the x).
 */
TSR_API tsr_status tsr_circuits_cheb_fit(double *coeffs, size_t degree, size_t nodes, double a,
                                         double b, tsr_circuits_fn f, void *ctx);

/**
 * p(x) by the Clenshaw recurrence (Trefethen ch. 3): stable, O(d). Points
 * outside [a, b] are evaluated by the same formula (|T_i| grows fast
 * there). The series must be valid (checked by the callers below; here a
 * misuse aborts).
 */
TSR_API double tsr_circuits_cheb_eval(const tsr_cheb *s, double x);

/**
 * Largest |p(x) - f(x)| over `points` equally spaced x in [a, b] (both ends
 * included; points >= 2). *max_err receives it and, if at is not NULL, *at
 * the x where it is reached. Fails with TSR_ERR_INVALID_ARG for an invalid
 * series, points < 2, or a non-finite f(x).
 */
TSR_API tsr_status tsr_circuits_cheb_max_error(const tsr_cheb *s, tsr_circuits_fn f, void *ctx,
                                               size_t points, double *max_err, double *at);

TSR_END_DECLS

#endif /* TESSERA_CIRCUITS_H */
