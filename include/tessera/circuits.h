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
 *    baby-step giant-step: ceil(log2(d+1)) levels for degree d) and
 *    section 3 (linear transforms with hoisted baby steps).
 *  - S. Halevi, V. Shoup, "Algorithms in HElib", CRYPTO 2014, and "Faster
 *    Homomorphic Linear Transformations in HElib", CRYPTO 2018 (the
 *    diagonal method, baby-step giant-step, hoisting).
 *
 * Thread-safety: the Chebyshev functions are pure (they call the user's
 * function from the calling thread only). tsr_circuits_poly_eval and
 * tsr_circuits_lt_apply use the evaluator they are given, so the
 * evaluator's rule applies: one per thread.
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

/* ======================================================================== */
/* Polynomial evaluation on ciphertexts                                      */
/* ======================================================================== */

/** What an evaluation costs (filled by tsr_circuits_poly_plan / _eval). */
typedef struct tsr_circuits_poly_info {
    int depth;          /**< levels consumed: map_depth + poly_depth */
    int map_depth;      /**< 1 for the map [a, b] -> [-1, 1], 0 when [a, b] = [-1, 1] */
    int poly_depth;     /**< ceil(log2(d + 1)) for the trimmed degree d (0 for d = 0) */
    int out_level;      /**< level of the result: input level - depth */
    size_t degree;      /**< the degree after dropping zero leading coefficients */
    size_t baby_steps;  /**< k: T_0..T_{k-1} are baby steps (k a power of two, chosen for
                             the fewest relinearizations, then products) */
    size_t ct_mults;    /**< ciphertext products */
    size_t const_mults; /**< multiplications by a real constant */
    size_t relins;      /**< relinearizations (key switches): products share them lazily */
} tsr_circuits_poly_info;

/**
 * Plan the evaluation of s on a ciphertext at level `in_level` without
 * computing anything: fills *info (levels, operation counts) by running the
 * same recursion as tsr_circuits_poly_eval with levels only. Fails with
 * TSR_ERR_INVALID_ARG for an invalid series and TSR_ERR_LEVEL (naming the
 * levels needed and available) if in_level < info->depth.
 */
TSR_API tsr_status tsr_circuits_poly_plan(const tsr_cheb *s, int in_level,
                                          tsr_circuits_poly_info *info);

/**
 * out = p(in) slot-wise, for the Chebyshev series s. Slots are meant to
 * hold real x in [a, b] (the overflow checks below assume it); a complex
 * slot z gets p(z), and values outside [a, b] get p's polynomial
 * continuation, which grows fast.
 *
 * Algorithm (see docs/CIRCUITS.md): y = alpha x + beta with one constant
 * multiplication (skipped when [a, b] = [-1, 1]); T_i(y) by the doubling
 * recurrences T_{2i} = 2 T_i^2 - 1 and T_{2i+1} = 2 T_i T_{i+1} - T_1, each
 * T_i at depth ceil(log2 i), computed only when used; the series is divided
 * recursively by giant steps T_{2^j} (Paterson-Stockmeyer in the Chebyshev
 * basis, Han-Ki 2020) with the level-optimal choice of Bossuat et al. 2021
 * on the leading branch, down to linear combinations of the baby steps
 * T_0..T_{k-1}, k = 2^ceil(m/2), m = ceil(log2(d+1)).
 *
 * Levels and scales: in must have size 2 and the canonical scale of its
 * level l (tsr_ckks_params_scale; else TSR_ERR_SCALE: bring it there with
 * tsr_ckks_adjust or a rescale). The result is at level
 * l - map_depth - ceil(log2(d + 1)) with exactly the canonical scale of that
 * level, where d is the degree after dropping zero leading coefficients:
 * every intermediate sits at its level's canonical scale, products of two
 * canonical ciphertexts land on the next canonical scale, and every
 * constant is encoded at the scale that makes its rescale land there too.
 * A degree-0 series costs no level (the constant is added to in * 0).
 * The magnitude bounds the evaluator tracks for its error estimates
 * (tsr_ckks_ciphertext_precision_estimate) are tightened with the exact
 * bound of each T_n, so the estimate of the result stays meaningful.
 *
 * Errors: TSR_ERR_INVALID_ARG (invalid series, empty input),
 * TSR_ERR_LEVEL (l below the depth: the message names both; or, on a mixed
 * chain, products that would rescale across its boundary level m: bring
 * the input to level m with tsr_ckks_adjust first),
 * TSR_ERR_SCALE (input scale not canonical; or values that would not fit
 * the modulus at some level, judged by sums of |coefficients|, which bound
 * |p| on [a, b]: no silent wrap-around), TSR_ERR_KEY_MISSING (the
 * evaluator has no relinearization key and the degree needs a product),
 * TSR_ERR_MISMATCH (objects of other parameters). info may be NULL.
 * out may alias in.
 */
TSR_API tsr_status tsr_circuits_poly_eval(tsr_ckks_evaluator *ev, tsr_ckks_ciphertext *out,
                                          const tsr_ckks_ciphertext *in, const tsr_cheb *s,
                                          tsr_circuits_poly_info *info);

/* ======================================================================== */
/* Functions on ciphertexts: inverse, inverse square root, sign, ReLU         */
/* ======================================================================== */

/*
 * Each function comes with a plan that a compiler calls in advance (no keys,
 * no ciphertexts): levels consumed, operation counts, the keys needed and
 * the precision of the algorithm itself in exact arithmetic over its stated
 * range. None of them rotates: they need the relinearization key only.
 * Inputs must have size 2 and the canonical scale of their level
 * (TSR_ERR_SCALE otherwise); every result is at level in_level - depth with
 * exactly the canonical scale of that level. out may alias in. Thread-safety
 * as for tsr_circuits_poly_eval (the evaluator's rule: one per thread).
 * See docs/CIRCUITS.md for the measured precision.
 */

/** What a function costs and how precise its algorithm is (filled by the _plan calls). */
typedef struct tsr_circuits_fn_info {
    int depth;           /**< levels consumed */
    int out_level;       /**< level of the result: input level - depth */
    size_t ct_mults;     /**< ciphertext products (each a relinearization and a rescale) */
    size_t const_mults;  /**< multiplications by a real constant (each a rescale) */
    int needs_relin_key; /**< 1 if the relinearization key is needed (no Galois keys ever) */
    double approx_bits;  /**< -log2 of the largest |approximation - f(x)| of the algorithm in
                              exact arithmetic over the stated range (the sign: outside the
                              gap), measured on a grid of 4097 points per interval: the
                              ceiling of the encrypted result's precision */
} tsr_circuits_fn_info;

/**
 * Plan 1/x for x in [a, b], 0 < a < b, by Goldschmidt's iteration
 * (R. E. Goldschmidt, MIT M.Sc. thesis 1964; as used for CKKS by Cheon,
 * Kim, Kim, Lee, Lee, "Numerical method for comparison on homomorphically
 * encrypted numbers", ASIACRYPT 2019, algorithm Inverse): with c = 2 / (a + b),
 * b_0 = 1 - c x (|b_0| <= (b - a) / (b + a) = rho), a_0 = c (1 + b_0),
 * b_{i+1} = b_i^2, a_{i+1} = a_i (1 + b_{i+1}); after `iterations` = r >= 0
 * steps a_r = (1 - b_0^(2^(r+1))) / x, relative error rho^(2^(r+1)).
 * Depth 1 for r = 0, else r + 2. Fails with TSR_ERR_INVALID_ARG (bad
 * range, r > 40) or TSR_ERR_LEVEL (in_level < depth; the message names both).
 */
TSR_API tsr_status tsr_circuits_inverse_plan(double a, double b, int iterations, int in_level,
                                             tsr_circuits_fn_info *info);

/**
 * The smallest iteration count whose approx_bits (absolute error of 1/x on
 * [a, b], 0 < a < b) reaches `bits` (<= 50), into *iterations. Fails with
 * TSR_ERR_INVALID_ARG for a bad range or when 40 iterations do not reach it.
 */
TSR_API tsr_status tsr_circuits_inverse_iterations(double a, double b, double bits,
                                                   int *iterations);

/**
 * out = 1/x slot-wise (see tsr_circuits_inverse_plan), for real slots in
 * [a, b] (values in (0, a + b) outside [a, b] converge more slowly, values
 * outside (0, a + b) diverge). Errors as the
 * plan, plus TSR_ERR_SCALE (input scale not canonical, or 1/a would not fit
 * the output level's modulus), TSR_ERR_KEY_MISSING (no relinearization key
 * and r >= 1), TSR_ERR_INVALID_ARG / TSR_ERR_MISMATCH (input, parameters).
 * info may be NULL.
 */
TSR_API tsr_status tsr_circuits_inverse(tsr_ckks_evaluator *ev, tsr_ckks_ciphertext *out,
                                        const tsr_ckks_ciphertext *in, double a, double b,
                                        int iterations, tsr_circuits_fn_info *info);

/**
 * Plan 1/sqrt(x) for x in [a, b], 0 < a < b: an initial guess y_0 = the
 * Chebyshev interpolant of 1/sqrt(x) on [a, b] of degree `degree` (1..255,
 * evaluated by tsr_circuits_poly_eval: 1 + ceil(log2(degree + 1)) levels),
 * then `iterations` Newton steps y <- 1.5 y - (0.5 x y) y^2 (2 levels each;
 * the relative error e becomes about 1.5 e^2). Depth 1 + ceil(log2(degree
 * + 1)) + 2 iterations. Fails with TSR_ERR_INVALID_ARG for a bad range,
 * degree, iterations > 8, or an initial guess too poor for Newton (relative
 * error >= 0.5 somewhere on [a, b]: the message says how far off; raise the
 * degree), TSR_ERR_LEVEL (in_level < depth).
 */
TSR_API tsr_status tsr_circuits_invsqrt_plan(double a, double b, size_t degree, int iterations,
                                             int in_level, tsr_circuits_fn_info *info);

/**
 * out = 1/sqrt(x) slot-wise (see tsr_circuits_invsqrt_plan) for real slots
 * in [a, b]. Errors as tsr_circuits_inverse. info may be NULL.
 */
TSR_API tsr_status tsr_circuits_invsqrt(tsr_ckks_evaluator *ev, tsr_ckks_ciphertext *out,
                                        const tsr_ckks_ciphertext *in, double a, double b,
                                        size_t degree, int iterations, tsr_circuits_fn_info *info);

/** Most components of a composite sign approximation, and their largest degree. */
#define TSR_CIRCUITS_SIGN_MAX_COMPONENTS 8
#define TSR_CIRCUITS_SIGN_MAX_DEGREE     127

/**
 * A composite minimax approximation of sign(x) on [-B, -eps B] u [eps B, B]
 * (Lee, Lee, Kim, No, "Minimax Approximation of Sign Function by Composite
 * Polynomial for Homomorphic Comparison", IEEE TDSC 2021): odd polynomials
 * p_k o ... o p_1, each the minimax approximation (Remez exchange, computed
 * in doubles at creation) of sign on the image of the previous one, which
 * that paper shows is the optimal composite. Immutable after creation.
 */
typedef struct tsr_circuits_sign_poly tsr_circuits_sign_poly;

/**
 * Compute the composite for n components of odd degrees degrees[0..n-1]
 * (3..TSR_CIRCUITS_SIGN_MAX_DEGREE; degrees such as 15, 15, 27), range
 * bound B > 0 and relative gap 0 < eps < 1. Fails with TSR_ERR_INVALID_ARG
 * (bad arguments; or a Remez exchange that did not converge, naming the
 * component). Free with tsr_circuits_sign_poly_free.
 */
TSR_API tsr_status tsr_circuits_sign_poly_create(tsr_circuits_sign_poly **out, double bound,
                                                 double eps, const size_t *degrees, size_t n);
/** Free a sign approximation. NULL is a no-op. */
TSR_API void tsr_circuits_sign_poly_free(tsr_circuits_sign_poly *s);

/**
 * Component i (< the count, else NULL): a view of an odd Chebyshev series
 * (on [-B, B] for i = 0, on [-1, 1] after), scaled so that its values on
 * its interval stay in [-1, 1] except for the last one, whose values lie in
 * [1 - delta, 1 + delta] on the positive part of the range. *count (if not
 * NULL) receives the number of components.
 */
TSR_API const tsr_cheb *tsr_circuits_sign_poly_component(const tsr_circuits_sign_poly *s, size_t i,
                                                         size_t *count);

/** The composite in doubles (Clenshaw per component): the plaintext reference. */
TSR_API double tsr_circuits_sign_poly_eval(const tsr_circuits_sign_poly *s, double x);

/**
 * Plan sign (relu = 0) or ReLU (relu = 1: x (1 + sign(x)) / 2, one level
 * more) at in_level: depth = sum of ceil(log2(d_i + 1)) + 1 if B != 1 (the
 * map of the first component) + relu. approx_bits is measured outside the
 * gap (for ReLU: the error there is |x| |sign error| / 2, and inside the
 * gap up to eps B (2 + delta) / 2 is possible). TSR_ERR_LEVEL if in_level <
 * depth.
 */
TSR_API tsr_status tsr_circuits_sign_plan(const tsr_circuits_sign_poly *s, int relu, int in_level,
                                          tsr_circuits_fn_info *info);

/**
 * out = sign approximation of in, slot-wise, for real slots in [-B, B]
 * (by tsr_circuits_poly_eval per component). Errors as
 * tsr_circuits_poly_eval. info may be NULL.
 */
TSR_API tsr_status tsr_circuits_sign(tsr_ckks_evaluator *ev, tsr_ckks_ciphertext *out,
                                     const tsr_ckks_ciphertext *in, const tsr_circuits_sign_poly *s,
                                     tsr_circuits_fn_info *info);

/** out = ReLU(in) = in (1 + sign(in)) / 2 with the approximation s. As tsr_circuits_sign. */
TSR_API tsr_status tsr_circuits_relu(tsr_ckks_evaluator *ev, tsr_ckks_ciphertext *out,
                                     const tsr_ckks_ciphertext *in, const tsr_circuits_sign_poly *s,
                                     tsr_circuits_fn_info *info);

/* ======================================================================== */
/* Linear transforms (plaintext matrix times encrypted slot vector)           */
/* ======================================================================== */

/**
 * A prepared linear transform: a slots x slots matrix M given by its
 * nonzero generalized diagonals, diag_i[j] = M[j][(j + i) mod slots], so
 * that (M v)[j] = sum_i diag_i[j] v[(j + i) mod slots]; encoded as
 * plaintexts for one input level. Immutable after creation: several
 * threads may apply it at once (each with its own evaluator).
 */
typedef struct tsr_circuits_lt tsr_circuits_lt;

/**
 * Prepare M v by the diagonal method (Halevi-Shoup, CRYPTO 2014) with
 * baby-step giant-step (Halevi-Shoup, CRYPTO 2018, section 4.2; Bossuat et
 * al., EUROCRYPT 2021, section 3): writing each diagonal index as
 * i = g n1 + b (0 <= b < n1),
 *   M v = sum_g rot( sum_b rot(diag_i, -g n1) * rot(v, b), g n1 ),
 * with double hoisting (Bossuat et al., section 3.3): the baby rotations
 * rot(v, b) share one key-switching decomposition and stay over Q_l P (no
 * ModDown), the inner sums are taken there, and each giant step costs one
 * ModDown and one decomposition; one ModDown and one rescale end it.
 *
 * index[t] (any integer, taken modulo slots; distinct after reduction)
 * names diagonal t, whose `slots` real values are diags[t]. n1 is the
 * baby-step count, a power of two <= slots, or 0 to pick the one that
 * needs the fewest rotation keys (baby plus giant steps; ties: the fewest
 * giant steps, a giant costing about three babies). The plaintexts are
 * encoded over Q_l P (l + 1 + k limbs each) for inputs at `level` (>= 1)
 * with the canonical scale of that level, at the scale that makes the single
 * rescale of tsr_circuits_lt_apply land on the canonical scale of level - 1.
 * enc is used for the encoding only (not kept). Errors: TSR_ERR_INVALID_ARG
 * (no diagonal, duplicates, n1 not a power of two, non-finite values),
 * TSR_ERR_LEVEL (level < 1 or above the top). Free with tsr_circuits_lt_free.
 */
TSR_API tsr_status tsr_circuits_lt_create(tsr_circuits_lt **out, tsr_ckks_encoder *enc,
                                          tsr_ckks_params *p, const int *index,
                                          const double *const *diags, size_t n_diags, size_t n1,
                                          int level);
/** Free a prepared transform. NULL is a no-op. */
TSR_API void tsr_circuits_lt_free(tsr_circuits_lt *lt);

/**
 * The rotation steps tsr_circuits_lt_apply needs keys for (baby steps b > 0
 * and giant steps g n1 > 0, each in [1, slots), increasing): pass them to
 * tsr_ckks_galois_keys_create before applying. Writes up to cap of them to
 * steps (may be NULL when cap is 0) and returns how many there are.
 */
TSR_API size_t tsr_circuits_lt_rotations(const tsr_circuits_lt *lt, int *steps, size_t cap);

/** The baby-step count n1 in use. */
TSR_API size_t tsr_circuits_lt_baby_steps(const tsr_circuits_lt *lt);

/**
 * out = M in (one level: out is at level - 1 with exactly its canonical
 * scale). in must have size 2, the level lt was prepared for
 * (TSR_ERR_LEVEL otherwise, naming both) and the canonical scale of that
 * level (TSR_ERR_SCALE). Every step of tsr_circuits_lt_rotations needs its
 * Galois key in the evaluator (TSR_ERR_KEY_MISSING lists the missing
 * ones). out may alias in.
 */
TSR_API tsr_status tsr_circuits_lt_apply(tsr_ckks_evaluator *ev, tsr_ckks_ciphertext *out,
                                         const tsr_ckks_ciphertext *in, const tsr_circuits_lt *lt);

/* ======================================================================== */
/* Bootstrapping                                                             */
/* ======================================================================== */

/*
 * CKKS bootstrapping (Cheon, Han, Kim, Kim, Song, EUROCRYPT 2018; Chen,
 * Chillotti, Song, EUROCRYPT 2019; Han, Ki, CT-RSA 2020; Bossuat et al.,
 * EUROCRYPT 2021): a ciphertext with few levels left becomes one at a high
 * level holding the same slots. Stages (each a function below, so callers
 * can time them):
 *  1. ModRaise: the input is brought to level 0 at the scale q_0 / 2^R (R =
 *     log_message_ratio; one exact adjustment, which needs input level >= 1)
 *     and lifted to the top level: its coefficients become c = Delta m +
 *     q_0 I with |I| < K. Sparse slots (n < N/2) then sum the rotations by
 *     multiples of n (the trace onto the subring the n-periodic message
 *     lives in), which removes I outside that subring.
 *  2. CoeffsToSlots: the inverse special FFT, factored into `cts_levels`
 *     sparse-diagonal matrices (one level each, baby-step giant-step with
 *     hoisted baby rotations): slot j gets (c_j + i c_{j+n}) / (2 K' q_0)
 *     (bit-reversed order), K' = K + 1/4 (so that x' below stays in
 *     [-1, 1]).
 *  3. EvalMod: real and imaginary parts are split with one conjugation and
 *     an exact multiplication by -i; each part x = c / (K' q_0) is shifted,
 *     x' = x - 1/(4K'), squared, y = 2 x'^2 - 1, and goes through a
 *     Chebyshev series in y equal to cos(2 pi K' x' / 2^r) (an even
 *     function of x': half the degree in y) and r double-angle steps
 *     cos 2t = 2 cos^2 t - 1, giving sin(2 pi c / q_0) ~ 2 pi (c mod q_0)
 *     / q_0; the parts are joined again.
 *  4. SlotsToCoeffs: the forward special FFT in `stc_levels` factors, with
 *     q_0 / (2 pi Delta) folded in: the slots hold m again.
 * Every stage output sits at its level's canonical scale; the result is at
 * level tsr_circuits_boot_info.out_level with exactly its canonical scale.
 *
 * Keys: a relinearization key and Galois keys for the rotations of
 * tsr_circuits_boot_rotations plus the conjugation key
 * (TSR_CKKS_GALOIS_CONJUGATE), all of the evaluator passed in.
 *
 * Memory with two or more threads (glibc): EvalMod's second half runs on a
 * thread other than the caller's (tsr_circuits_boot_eval_mod) and frees its
 * ciphertexts there. glibc gives such a thread a malloc arena of its own,
 * made of heaps of at most 64 MiB that it unmaps as soon as one is empty, so
 * at N = 2^16 every bootstrap faults those ciphertexts in again as fresh
 * zeroed pages: 18944 page faults per bootstrap after the first against 7
 * with one thread (perf, `tessera bench boot --threads 2` of main 8aa501e,
 * whose command already kept the main arena's freed memory, shared machine,
 * load 3-7; kernel memory management 1.4 % of the CPU samples;
 * docs/BENCHMARKS.md, "Two threads, ninth round"); not measured through the
 * library, where glibc's other defaults add faults. The library does not
 * change the process's allocator settings; the `tessera` command runs with
 * one arena (cli/main.c: 647-3208 faults per bootstrap). A program linking
 * libtessera opts in to the command's settings with
 * tsr_malloc_tune(TSR_MALLOC_KEEP_FREED | TSR_MALLOC_ONE_ARENA) first thing
 * in main, before any other thread allocates (include/tessera/core.h; the
 * Python package: tessera.tune_malloc()), or without code, for the whole
 * process, by starting with
 * GLIBC_TUNABLES=glibc.malloc.arena_max=1:glibc.malloc.mmap_max=0:glibc.malloc.trim_threshold=2147483647
 * (one arena; no mmap per large block; no trimming of the heap top).
 *
 * Sparse-secret encapsulation (Bossuat, Troncoso-Pastoriza, Hubaux, ACNS
 * 2022; config.encapsulation_hw = 32): at level 0 the ciphertext is switched
 * from the main secret to a temporary secret of Hamming weight h (a key over
 * q_0 P only), raised, and switched back at the top level, so |I| <= (h+1)/2
 * for certain while the main secret stays dense (and the parameter set
 * 128-bit secure).
 *
 * Secrets: K must bound |I| <= (||s||_1 + 1) / 2. A fixed-Hamming-weight
 * secret (h <= 64) gives the deterministic K = floor((h + 1) / 2) + 1; a
 * dense ternary secret needs an explicit K in the config (the failure
 * probability is then the caller's: |I| is about a Gaussian of standard
 * deviation sqrt(N / 18)).
 */

/**
 * The default budget of the encoded DFT diagonals (tsr_circuits_boot_config.diagonals_mib), in
 * MiB. At N = 2^16 with full slots the default layout would encode 818 MiB (CoeffsToSlots'
 * first factor 512, SlotsToCoeffs' last 304); within 256 MiB a bootstrap converts 1120 limbs
 * more (N-point NTTs), and the whole process (keys included) stays under 4 GiB with two threads
 * (docs/BENCHMARKS.md, "A budget for the encoded diagonals").
 */
#define TSR_CIRCUITS_BOOT_DIAGONALS_MIB 256

/**
 * The default budget for sparse slots of at most N/16 (a trace of three or more steps), in MiB:
 * their circuits hold fewer keys, so both full-period factors fit encoded. At N = 2^16 with
 * 2^12 slots they take 608 MiB (CoeffsToSlots' first 272, SlotsToCoeffs' last 336): 0.12 s
 * less per bootstrap than within 256 MiB, peak memory 3812 MiB with one thread, 3818 MiB with
 * two (`n16-boot-ifma`; 3580 MiB `n16-boot-d4`, one thread; docs/BENCHMARKS.md, "issue 12,
 * eighth round" and "The eighth round together"; fewer slots than 2^12 not measured). 2^13
 * slots keep TSR_CIRCUITS_BOOT_DIAGONALS_MIB (4174 MiB with 640).
 */
#define TSR_CIRCUITS_BOOT_SPARSE_DIAGONALS_MIB 640

/** Configuration of a bootstrapping circuit (zero fields take the defaults). */
typedef struct tsr_circuits_boot_config {
    size_t slots;          /**< n: N/2 (0, the default) or a smaller power of two */
    int cts_levels;        /**< CoeffsToSlots level budget, 1..log2(n) (0: 3, or less) */
    int stc_levels;        /**< SlotsToCoeffs level budget, 1..log2(n) (0: 3, or less) */
    unsigned k;            /**< EvalMod range: |I| < K (0: from the secret, see above) */
    unsigned double_angle; /**< r: double-angle steps (0: 2) */
    unsigned cos_degree;   /**< degree of the cosine interpolant in x', even (an odd value is
                                rounded down, 1 and values above TSR_CIRCUITS_MAX_DEGREE are
                                TSR_ERR_INVALID_ARG; 0: the smallest whose error is < 2^-40,
                                56 for K = 18, r = 2, or < 2^-28 2 pi / (4^r 2^R) when that
                                is smaller (larger r or R), not below 2^-48), evaluated as a series of
                              half the   degree in y. Before the even cosine it was the degree of a
                                series in x, 2^d - 1 (63 by default): CHANGES.md */
    /**
     * R: the input scale before ModRaise is q_0 / 2^R (0: 9 for N <= 2^12,
     * 9 - floor((log2 N - 10) / 2) + floor(log2(N / 2n) / 2) above: for full
     * slots 8 at 2^13, 7 at 2^14-2^15, 6 at 2^16; 7 for 2^12 slots at 2^16)
     */
    unsigned log_message_ratio;
    /**
     * Hamming weight of the temporary sparse secret of the sparse-secret
     * encapsulation (0: none, ModRaise under the main secret). With it, K
     * defaults to h/2 + 2 whatever the main secret, and the switching keys of
     * tsr_circuits_boot_switch_keys_create are needed.
     */
    unsigned encapsulation_hw;
    /**
     * 1: keep every DFT factor's diagonals as their rounded
     * coefficients (a diagonal of slot period p is a polynomial in X^(N/2p):
     * 2p words instead of (level + 1 + k) N) and convert them limb by limb
     * when applied (a 2p-point NTT per limb): bit-identical results, about
     * 4 GiB less at N = 2^16, a little more time (docs/BENCHMARKS.md).
     * 0: the same for the diagonals of period at most slots / 32, whose
     * conversion costs about what reading them encoded does (with full slots,
     * every factor but the two holding the largest butterfly stage), the
     * others encoded once at creation.
     * 1: every diagonal as coefficients (the nonzero case above).
     * 2: every diagonal encoded once at creation (the most memory; the layout
     * before the default mix, to compare with it or to avoid it).
     * Other values are refused (TSR_ERR_INVALID_ARG).
     */
    unsigned diagonals_on_the_fly;
    /**
     * With diagonals_on_the_fly = 0: the most memory, in MiB, the encoded
     * diagonals may take (0: TSR_CIRCUITS_BOOT_DIAGONALS_MIB, or
     * TSR_CIRCUITS_BOOT_SPARSE_DIAGONALS_MIB for slots <= N/16; SIZE_MAX: no
     * limit; the budget in effect is tsr_circuits_boot_info.diagonals_mib). Past it, the encoded
     * factors (in order: CoeffsToSlots, then SlotsToCoeffs) keep only the first limbs of each
     * diagonal that fit and convert the others when applied from the diagonal's coefficients (an
     * N-point NTT per limb): bit-identical results, less memory, a little
     * more time (docs/BENCHMARKS.md). Ignored by the other layouts.
     */
    size_t diagonals_mib;
} tsr_circuits_boot_config;

/** What a prepared bootstrapping circuit costs and produces. */
typedef struct tsr_circuits_boot_info {
    size_t slots;       /**< n */
    int cts_levels;     /**< levels of CoeffsToSlots */
    int evalmod_levels; /**< levels of EvalMod: cosine depth + r */
    int stc_levels;     /**< levels of SlotsToCoeffs */
    /** levels consumed by the stages: the sum of the three above (on a mixed chain with spare
     * high levels, the final adjustment drops more: see out_level) */
    int depth;
    /** level of the result: L - depth; on a mixed chain spec.low_levels (then
     * depth <= L - low_levels, and a final adjustment uses the spare high levels) */
    int out_level;
    double out_scale;      /**< the result's scale: the canonical scale of out_level */
    unsigned k;            /**< EvalMod range K */
    unsigned double_angle; /**< r */
    unsigned cos_degree;   /**< degree of the cosine interpolant in x' (even) */
    double cos_error;      /**< its max error on [-1, 1] */
    double in_scale;       /**< q_0 / 2^R: the scale of the message at ModRaise */
    size_t rotations;      /**< rotation keys needed */
    /** the encoded diagonals' budget in effect, MiB (config.diagonals_mib or its default;
     * SIZE_MAX: none; 0 with diagonals_on_the_fly != 0, which has no budget) */
    size_t diagonals_mib;
} tsr_circuits_boot_info;

/**
 * A prepared bootstrapping circuit: the factored DFT matrices encoded as
 * plaintexts at their levels and the EvalMod polynomial. Immutable after
 * creation: several threads may bootstrap with one (each with its own
 * evaluator).
 */
typedef struct tsr_circuits_boot tsr_circuits_boot;

/**
 * Prepare bootstrapping for p with cfg (NULL: all defaults). Fails with
 * TSR_ERR_INVALID_ARG naming a bad config field (slots not a power of two
 * <= N/2, level budgets out of range, a dense secret without K), and with
 * TSR_ERR_LEVEL if the chain is too short for the circuit (the message
 * gives the levels needed and available). enc is only used for encoding.
 * Free with tsr_circuits_boot_free.
 */
TSR_API tsr_status tsr_circuits_boot_create(tsr_circuits_boot **out, tsr_ckks_encoder *enc,
                                            tsr_ckks_params *p,
                                            const tsr_circuits_boot_config *cfg);
/** Free a prepared circuit. NULL is a no-op. */
TSR_API void tsr_circuits_boot_free(tsr_circuits_boot *b);
/** Fill *info (costs, output level and scale). */
TSR_API void tsr_circuits_boot_get_info(const tsr_circuits_boot *b, tsr_circuits_boot_info *info);
/**
 * The rotation steps bootstrapping needs Galois keys for (increasing, in
 * [1, N/2)); the conjugation key is needed too. Writes up to cap of them
 * and returns how many there are. Call before keygen.
 */
TSR_API size_t tsr_circuits_boot_rotations(const tsr_circuits_boot *b, int *steps, size_t cap);
/**
 * The level each key is used at, for level-aware keys
 * (tsr_ckks_galois_keys_add_level, tsr_ckks_relin_key_create_level): for
 * every step of tsr_circuits_boot_rotations (same order) the highest level
 * it rotates at (levels may be NULL); *relin_level and *conj_level (either
 * may be NULL) the highest level of EvalMod's products and of the
 * conjugations (EvalMod, the real split). Full keys trimmed to these levels
 * (tsr_ckks_relin_key_trim, tsr_ckks_galois_keys_trim) give bit-identical
 * results to the full keys; keys generated at these levels (fresh
 * randomness) give equal precision, not identical bits. Returns the number
 * of steps.
 */
TSR_API size_t tsr_circuits_boot_rotation_levels(const tsr_circuits_boot *b, int *steps,
                                                 int *levels, size_t cap, int *relin_level,
                                                 int *conj_level);

/** One linear-transform factor of CoeffsToSlots or SlotsToCoeffs (memory accounting). */
typedef struct tsr_circuits_boot_factor {
    int stage;           /**< 0: CoeffsToSlots, 1: SlotsToCoeffs */
    int index;           /**< position in the stage, in application order */
    int level;           /**< input level: its rotations run there */
    size_t diagonals;    /**< encoded diagonals */
    size_t baby_steps;   /**< n1 of the baby-step giant-step split */
    size_t rotations;    /**< distinct rotation steps (babies and giants) */
    uint64_t diag_bytes; /**< the diagonals in memory (encoded over Q_level * P, or their
                              coefficients on the fly) */
} tsr_circuits_boot_factor;

/**
 * The factors (CoeffsToSlots' first, then SlotsToCoeffs'): writes up to cap
 * of them and returns how many there are. steps_of, when not NULL, receives
 * factor `which`'s rotation steps (up to steps_cap; its count is
 * out[which].rotations).
 */
TSR_API size_t tsr_circuits_boot_factors(const tsr_circuits_boot *b, tsr_circuits_boot_factor *out,
                                         size_t cap, size_t which, int *steps_of, size_t steps_cap);
/**
 * TSR_OK if ev (and b) have every key bootstrapping needs, else
 * TSR_ERR_KEY_MISSING naming what is missing (relinearization key,
 * conjugation key, rotation steps, the encapsulation's switching keys), or
 * TSR_ERR_LEVEL naming a level-aware key that serves fewer levels than
 * bootstrapping uses it at (tsr_circuits_boot_rotation_levels).
 */
TSR_API tsr_status tsr_circuits_boot_check_keys(const tsr_circuits_boot *b,
                                                const tsr_ckks_evaluator *ev);

/**
 * Largest log2 of the modulus of the key to the sparse secret accepted without
 * TSR_CKKS_ALLOW_INSECURE_PARAMETERS: 121 bits, the only sourced 128-bit bound for
 * Hamming weight 32 at N = 2^16 (Lattigo, EphemeralSecretWeight; SparseLWEkit's
 * lattice-estimator table: 171.9 bits there). docs/SECURITY.md, "The sparse
 * encapsulation key".
 */
#define TSR_CIRCUITS_ENCAP_MAX_LOG_MODULUS 121

/**
 * The two switching keys of the sparse-secret encapsulation for the main
 * secret sk: a temporary secret of Hamming weight config.encapsulation_hw is
 * drawn, *to_sparse (sk -> sparse, over q_0 p_0 only, p_0 a prime of its own
 * with log2(q_0 p_0) < TSR_CIRCUITS_ENCAP_MAX_LOG_MODULUS:
 * tsr_ckks_switch_key_create_q0p0) and *to_dense (sparse -> sk, all levels,
 * over Q P) are made from it, and it is wiped. TSR_ERR_INVALID_ARG if b has no
 * encapsulation. Free both with tsr_ckks_switch_key_free.
 */
TSR_API tsr_status tsr_circuits_boot_switch_keys_create(const tsr_circuits_boot *b,
                                                        const tsr_ckks_secret_key *sk,
                                                        tsr_ckks_switch_key **to_sparse,
                                                        tsr_ckks_switch_key **to_dense);
/**
 * Give b the switching keys (borrowed: they must outlive every bootstrap
 * with b). Call before bootstrapping, not while another thread bootstraps
 * with b. TSR_ERR_INVALID_ARG if b has no encapsulation or the keys serve
 * the wrong levels (keys of other parameters fail at use with
 * TSR_ERR_MISMATCH); TSR_ERR_INSECURE for a to_sparse key over more than
 * TSR_CIRCUITS_ENCAP_MAX_LOG_MODULUS bits (e.g. one over q_0 P made with
 * tsr_ckks_switch_key_create) unless the parameters carry
 * TSR_CKKS_ALLOW_INSECURE_PARAMETERS.
 */
TSR_API tsr_status tsr_circuits_boot_set_switch_keys(tsr_circuits_boot *b,
                                                     const tsr_ckks_switch_key *to_sparse,
                                                     const tsr_ckks_switch_key *to_dense);

/**
 * out = bootstrap(in): all four stages. in: size 2, level >= 1, its level's
 * canonical scale (TSR_ERR_SCALE otherwise), slot values of magnitude <= 1
 * (larger ones lose precision: the sine is only linear near 0), and for
 * sparse slots n-periodic slots (encode the n values repeated). out is at
 * info.out_level with its canonical scale. Errors: TSR_ERR_KEY_MISSING
 * (before any work), TSR_ERR_LEVEL (input at level 0), TSR_ERR_SCALE,
 * TSR_ERR_MISMATCH. out may alias in.
 */
TSR_API tsr_status tsr_circuits_bootstrap(const tsr_circuits_boot *b, tsr_ckks_evaluator *ev,
                                          tsr_ckks_ciphertext *out, const tsr_ckks_ciphertext *in);

/** Stage 1: ModRaise (and the subring trace for sparse slots). Input as tsr_circuits_bootstrap. */
TSR_API tsr_status tsr_circuits_boot_mod_raise(const tsr_circuits_boot *b, tsr_ckks_evaluator *ev,
                                               tsr_ckks_ciphertext *out,
                                               const tsr_ckks_ciphertext *in);
/**
 * Stage 2: CoeffsToSlots. in must be stage 1's output (top level, scale
 * K q_0 N/(2n)): TSR_ERR_LEVEL / TSR_ERR_SCALE otherwise. Full slots: out
 * holds u, slot j = (c_j + i c_{j+n}) / (2 K q_0). Sparse slots (2n <= N/2):
 * out holds [u | -i u] with period 2n, not the n-periodic u (the first factor
 * is [M; -i M], the later ones act on both halves), the layout stage 3 expects.
 */
TSR_API tsr_status tsr_circuits_boot_coeffs_to_slots(const tsr_circuits_boot *b,
                                                     tsr_ckks_evaluator *ev,
                                                     tsr_ckks_ciphertext *out,
                                                     const tsr_ckks_ciphertext *in);
/**
 * Stage 3: EvalMod. in must be at level L - cts_levels with its canonical
 * scale. Full slots: the real and imaginary parts are reduced separately
 * (at once on two threads when T >= 2, the second on an evaluator twin that
 * ev creates on first use; bit-identical to one thread) and joined. With
 * T >= 3 this creates one POSIX thread for the second half and joins it
 * before returning, plus that thread's own OpenMP pool of T/2 - 1 workers,
 * created and torn down each call; if the thread cannot be created, the
 * halves run one after the other on the calling thread; under
 * OMP_PROC_BIND the two halves' teams share places (cores). Sparse
 * slots (2n <= N/2): in holds [u | -i u] with period 2n (stage 2's layout)
 * and out the reduced real parts [a | b], which stage 4 reads.
 */
TSR_API tsr_status tsr_circuits_boot_eval_mod(const tsr_circuits_boot *b, tsr_ckks_evaluator *ev,
                                              tsr_ckks_ciphertext *out,
                                              const tsr_ckks_ciphertext *in);
/**
 * Stage 4: SlotsToCoeffs. in must be at level L - cts_levels - evalmod_levels (stage 3's output),
 * canonical scale. Sparse slots: in holds stage 3's [a | b] (period 2n); out is n-periodic again.
 * The result is at out_level (on a mixed chain with spare high levels, via a final
 * tsr_ckks_adjust).
 */
TSR_API tsr_status tsr_circuits_boot_slots_to_coeffs(const tsr_circuits_boot *b,
                                                     tsr_ckks_evaluator *ev,
                                                     tsr_ckks_ciphertext *out,
                                                     const tsr_ckks_ciphertext *in);

/*
 * Real slots: two ciphertexts whose slots are real (every value ML works
 * on) are bootstrapped in one run of the circuit, about twice the
 * throughput of complex bootstrapping per real value. ModRaise joins them
 * as (a + i b) / 2 (the 1/2 rides on the exact scale adjustment, no level;
 * it keeps |a + i b| / 2 <= 1 inside the sine's linear range), the three
 * middle stages are the complex ones, and a last split gives
 * a = x + conj(x) and b = -i (x - conj(x)) with one conjugation, no level.
 * Both results are at info.out_level with its canonical scale. Imaginary
 * parts of the inputs (which real data does not have) would leak into the
 * other output. Keys: those of tsr_circuits_bootstrap (the conjugation key
 * is already among them). Any circuit (full or sparse slots) serves.
 */

/**
 * out_a = bootstrap(in_a), out_b = bootstrap(in_b) for real slots, in one
 * run of the circuit. in_a, in_b as the input of tsr_circuits_bootstrap,
 * both at one level; in_b may be NULL (one real ciphertext, at the same
 * cost), and out_b may then be NULL too (out_b NULL drops b's result).
 * out_a != out_b; either may alias an input. Errors as
 * tsr_circuits_bootstrap, and TSR_ERR_LEVEL when in_a and in_b are at
 * different levels.
 */
TSR_API tsr_status tsr_circuits_bootstrap_real(const tsr_circuits_boot *b, tsr_ckks_evaluator *ev,
                                               tsr_ckks_ciphertext *out_a,
                                               tsr_ckks_ciphertext *out_b,
                                               const tsr_ckks_ciphertext *in_a,
                                               const tsr_ckks_ciphertext *in_b);
/**
 * Stage 1 for real pairs: out = ModRaise((in_a + i in_b) / 2) (in_b NULL:
 * in_a / 2). Then run stages 2-4 and tsr_circuits_boot_split_real.
 */
TSR_API tsr_status tsr_circuits_boot_mod_raise_real(const tsr_circuits_boot *b,
                                                    tsr_ckks_evaluator *ev,
                                                    tsr_ckks_ciphertext *out,
                                                    const tsr_ckks_ciphertext *in_a,
                                                    const tsr_ckks_ciphertext *in_b);
/**
 * Stage 5 for real pairs: in (stage 4's output, holding (a + i b) / 2) ->
 * out_a = a, out_b = b (out_b may be NULL), same level and scale as in.
 */
TSR_API tsr_status tsr_circuits_boot_split_real(const tsr_circuits_boot *b, tsr_ckks_evaluator *ev,
                                                tsr_ckks_ciphertext *out_a,
                                                tsr_ckks_ciphertext *out_b,
                                                const tsr_ckks_ciphertext *in);

TSR_END_DECLS

#endif /* TESSERA_CIRCUITS_H */
