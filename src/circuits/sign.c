/*
 * circuits/sign.c - sign(x) and ReLU(x) on ciphertexts by a composite of
 * odd minimax polynomials, each computed here by the Remez exchange.
 *
 * References:
 *  - E. Lee, J.-W. Lee, J.-S. No, Y.-S. Kim, "Minimax Approximation of Sign
 *    Function by Composite Polynomial for Homomorphic Comparison", IEEE
 *    TDSC 2021: sign on [-1, -eps] u [eps, 1] by p_k o ... o p_1 where p_1
 *    is the odd minimax approximation of sign on that set and each p_{i+1}
 *    the odd minimax approximation of sign on the image of the previous
 *    composite, [-(1 + d_i), -(1 - d_i)] u [1 - d_i, 1 + d_i]; they show the
 *    result is the optimal composite for the given degrees (their examples
 *    include degrees such as 15, 15, 27).
 *  - E. Ya. Remez (1934); the exchange as described by L. N. Trefethen,
 *    ATAP ch. 10: solve for an equioscillating error on n + 1 reference
 *    points, move the references to the extrema of the new error, repeat.
 *  - ReLU(x) = x (1 + sign(x)) / 2 (Lee et al., "High-Precision Bootstrapping
 *    ... / Precise Approximation of Convolutional Neural Networks for
 *    Homomorphically Encrypted Data", 2021, use this for deep networks).
 *
 * Our formulation. By oddness, p(x) = sum_j c_j T_{2j+1}(x) approximates 1
 * on [l, 1]; with x = cos(t), T_{2j+1}(x) = cos((2j + 1) t), so the work is
 * on t in [0, acos(l)], where the basis is well conditioned and the error
 * oscillates about uniformly (the references start uniform in t). The
 * error's extrema are found on a grid of 64 points per oscillation and
 * refined by golden-section search; the exchange keeps the alternating set
 * with the largest errors (dropping the smaller end). Converged when the
 * reference errors agree to 1e-6 relative (rounding in the evaluation of
 * the error limits this), or, keeping the best solution seen, once the
 * error is below 1e-12, where doubles cannot place the extrema any more
 * (such a component is exact for CKKS purposes).
 *
 * Each component but the last is divided by its maximum over [0, 1], so the
 * next one's input stays in [-1, 1] (no interval map, no level); its
 * interval becomes [l', 1] with l' = (1 - d) / max. The first component is
 * a series on [-B, B] (one level for the map if B != 1), the others on
 * [-1, 1]; all are evaluated by tsr_circuits_poly_eval.
 */
#include "tessera/circuits.h"

#include "circuits/circuits_internal.h"
#include "circuits/fn_internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define REMEZ_MAX_ITER 200
#define REMEZ_TOL      1e-6
/* Errors below this are rounding noise of the double-precision evaluation. */
#define REMEZ_FLOOR  1e-12
#define GRID_PER_OSC 64

struct tsr_circuits_sign_poly {
    double bound, eps;
    size_t n; /* components */
    size_t degree[TSR_CIRCUITS_SIGN_MAX_COMPONENTS];
    double *coeffs[TSR_CIRCUITS_SIGN_MAX_COMPONENTS];  /* degree + 1 each (even ones 0) */
    tsr_cheb series[TSR_CIRCUITS_SIGN_MAX_COMPONENTS]; /* views of coeffs */
    double delta;                                      /* minimax error of the last component */
};

/* ---- Remez exchange for 1 on [l, 1] by odd Chebyshev series ---------------------------- */

typedef struct remez {
    size_t n;      /* basis functions T_1, T_3, ..., T_{2n-1} */
    double tmax;   /* acos(l) */
    double *c;     /* (n) coefficients */
    double *best;  /* (n) the coefficients of the smallest error seen */
    double *ref;   /* (n + 1) reference points in t, increasing */
    double *mat;   /* (n + 1)^2 system */
    double *rhs;   /* (n + 1) */
    double *ext_t; /* candidate extrema */
    double *ext_e;
    size_t cap;
} remez;

/* p(cos t) - 1 = sum_j c_j T_{2j+1}(cos t) - 1, the T_k by their recurrence. */
static double err_at(const remez *r, double t) {
    double x = cos(t), tkm1 = 1, tk = x, s = r->c[0] * x;
    for (size_t j = 1; j < r->n; j++) {
        double tk1 = 2 * x * tk - tkm1; /* T_{2j} */
        tkm1 = 2 * x * tk1 - tk;        /* T_{2j+1} */
        tk = tkm1;
        tkm1 = tk1;
        s += r->c[j] * tk;
    }
    return s - 1;
}

/* Solve the (n+1) x (n+1) system in place (partial pivoting). 0 if singular. */
static int solve(double *a, double *b, size_t m) {
    for (size_t k = 0; k < m; k++) {
        size_t piv = k;
        for (size_t i = k + 1; i < m; i++)
            if (fabs(a[i * m + k]) > fabs(a[piv * m + k])) piv = i;
        if (!(fabs(a[piv * m + k]) > 1e-300)) return 0;
        if (piv != k) {
            for (size_t j = 0; j < m; j++) {
                double t = a[k * m + j];
                a[k * m + j] = a[piv * m + j];
                a[piv * m + j] = t;
            }
            double t = b[k];
            b[k] = b[piv];
            b[piv] = t;
        }
        for (size_t i = k + 1; i < m; i++) {
            double f = a[i * m + k] / a[k * m + k];
            if (f == 0) continue;
            for (size_t j = k; j < m; j++) a[i * m + j] -= f * a[k * m + j];
            b[i] -= f * b[k];
        }
    }
    for (size_t k = m; k-- > 0;) {
        double s = b[k];
        for (size_t j = k + 1; j < m; j++) s -= a[k * m + j] * b[j];
        b[k] = s / a[k * m + k];
    }
    return 1;
}

/* The equioscillation system on the references: sum_j c_j phi_j(t_i) + (-1)^i E = 1. */
static int remez_solve(remez *r, double *E) {
    size_t m = r->n + 1;
    for (size_t i = 0; i < m; i++) {
        for (size_t j = 0; j < r->n; j++) r->mat[i * m + j] = cos((double)(2 * j + 1) * r->ref[i]);
        r->mat[i * m + r->n] = i % 2 ? -1.0 : 1.0;
        r->rhs[i] = 1;
    }
    if (!solve(r->mat, r->rhs, m)) return 0;
    memcpy(r->c, r->rhs, r->n * sizeof *r->c);
    *E = r->rhs[r->n];
    return 1;
}

/* Maximize s * err on [lo, hi] by golden-section search; returns the t. */
static double golden(const remez *r, double lo, double hi, double s) {
    const double g = 0.5 * (sqrt(5.0) - 1);
    double x1 = hi - g * (hi - lo), x2 = lo + g * (hi - lo);
    double f1 = s * err_at(r, x1), f2 = s * err_at(r, x2);
    for (int it = 0; it < 60 && hi - lo > 1e-15; it++) {
        if (f1 < f2) {
            lo = x1;
            x1 = x2;
            f1 = f2;
            x2 = lo + g * (hi - lo);
            f2 = s * err_at(r, x2);
        } else {
            hi = x2;
            x2 = x1;
            f2 = f1;
            x1 = hi - g * (hi - lo);
            f1 = s * err_at(r, x1);
        }
    }
    return 0.5 * (lo + hi);
}

/*
 * The local extrema of the error on [0, tmax] (ends included), merged into
 * an alternating sequence; *count receives its length, *emax the largest
 * |error|.
 */
static void extrema(remez *r, size_t *count, double *emax) {
    size_t M = GRID_PER_OSC * (r->n + 1);
    double h = r->tmax / (double)M;
    size_t k = 0;
    double prev = err_at(r, 0), cur = err_at(r, h);
    /* t = 0 is an end: always a candidate */
    r->ext_t[k] = 0;
    r->ext_e[k++] = prev;
    for (size_t i = 1; i < M; i++) {
        double next = err_at(r, h * (double)(i + 1));
        if ((cur - prev) * (next - cur) <= 0 && k + 1 < r->cap) {
            double s = cur >= 0 ? 1 : -1;
            double t = golden(r, h * (double)(i - 1), h * (double)(i + 1), s);
            r->ext_t[k] = t;
            r->ext_e[k++] = err_at(r, t);
        }
        prev = cur;
        cur = next;
    }
    r->ext_t[k] = r->tmax;
    r->ext_e[k++] = err_at(r, r->tmax);
    /* merge runs of one sign, keeping the largest */
    size_t m = 0;
    for (size_t i = 0; i < k; i++) {
        if (m > 0 && (r->ext_e[i] >= 0) == (r->ext_e[m - 1] >= 0)) {
            if (fabs(r->ext_e[i]) > fabs(r->ext_e[m - 1])) {
                r->ext_t[m - 1] = r->ext_t[i];
                r->ext_e[m - 1] = r->ext_e[i];
            }
            continue;
        }
        r->ext_t[m] = r->ext_t[i];
        r->ext_e[m++] = r->ext_e[i];
    }
    *emax = 0;
    for (size_t i = 0; i < m; i++)
        if (fabs(r->ext_e[i]) > *emax) *emax = fabs(r->ext_e[i]);
    *count = m;
}

/*
 * The odd minimax approximation of 1 on [l, 1] with n basis functions into
 * coeffs (Chebyshev series of degree 2n - 1, even coefficients 0); *delta
 * receives the minimax error.
 */
static tsr_status remez_run(size_t n, double l, double *coeffs, double *delta, size_t which) {
    remez r;
    memset(&r, 0, sizeof r);
    r.n = n;
    r.tmax = acos(l);
    r.cap = GRID_PER_OSC * (n + 1) + 2;
    r.c = malloc(n * sizeof *r.c);
    r.best = malloc(n * sizeof *r.best);
    r.ref = malloc((n + 1) * sizeof *r.ref);
    r.mat = malloc((n + 1) * (n + 1) * sizeof *r.mat);
    r.rhs = malloc((n + 1) * sizeof *r.rhs);
    r.ext_t = malloc(r.cap * sizeof *r.ext_t);
    r.ext_e = malloc(r.cap * sizeof *r.ext_e);
    tsr_status st = TSR_OK;
    if (!r.c || !r.best || !r.ref || !r.mat || !r.rhs || !r.ext_t || !r.ext_e) {
        st = tsr_fail(TSR_ERR_NOMEM, "out of memory for the Remez exchange");
        goto done;
    }
    for (size_t i = 0; i <= n; i++) r.ref[i] = r.tmax * (double)i / (double)n;
    int ok = 0;
    double E = 0, emax = 0, best = INFINITY;
    for (int it = 0; it < REMEZ_MAX_ITER; it++) {
        if (!remez_solve(&r, &E)) break;
        size_t count;
        extrema(&r, &count, &emax);
        if (emax < best) {
            best = emax;
            memcpy(r.best, r.c, n * sizeof *r.c);
        }
        if (count < n + 1) break;
        /* keep n + 1 alternating extrema: drop the smaller end while too many */
        size_t lo = 0, hi = count;
        while (hi - lo > n + 1) {
            if (fabs(r.ext_e[lo]) < fabs(r.ext_e[hi - 1]))
                lo++;
            else
                hi--;
        }
        double emin = INFINITY;
        for (size_t i = lo; i < hi; i++) {
            r.ref[i - lo] = r.ext_t[i];
            if (fabs(r.ext_e[i]) < emin) emin = fabs(r.ext_e[i]);
        }
        if (emax - emin <= REMEZ_TOL * emax) {
            ok = 1;
            break;
        }
    }
    /* below the floor the references are rounding noise: the best solution is exact enough */
    if (!ok && !(best <= REMEZ_FLOOR)) {
        st = tsr_fail(TSR_ERR_INVALID_ARG,
                      "the Remez exchange for sign component %zu (degree %zu on [%g, 1]) did not "
                      "converge: try other degrees or a wider gap",
                      which, 2 * n - 1, l);
        goto done;
    }
    for (size_t j = 0; j < 2 * n; j++) coeffs[j] = j % 2 ? r.best[j / 2] : 0.0;
    *delta = best;
done:
    free(r.c);
    free(r.best);
    free(r.ref);
    free(r.mat);
    free(r.rhs);
    free(r.ext_t);
    free(r.ext_e);
    return st;
}

/* ---- the composite --------------------------------------------------------------------- */

void tsr_circuits_sign_poly_free(tsr_circuits_sign_poly *s) {
    if (!s) return;
    for (size_t i = 0; i < s->n; i++) free(s->coeffs[i]);
    free(s);
}

/* max |p| over [0, 1] for an odd series on [-1, 1]: a grid in t plus the ends. */
static double max_abs(const tsr_cheb *s) {
    size_t M = GRID_PER_OSC * (s->degree + 1);
    double m = 0;
    for (size_t i = 0; i <= M; i++) {
        double x = cos(0.5 * M_PI * (double)i / (double)M);
        double v = fabs(tsr_circuits_cheb_eval(s, x));
        if (v > m) m = v;
    }
    return m;
}

double tsr_circuits_sign_poly_eval(const tsr_circuits_sign_poly *s, double x) {
    TSR_REQUIRE(s, "tsr_circuits_sign_poly_eval: NULL approximation");
    for (size_t i = 0; i < s->n; i++) x = tsr_circuits_cheb_eval(&s->series[i], x);
    return x;
}

tsr_status tsr_circuits_sign_poly_create(tsr_circuits_sign_poly **out, double bound, double eps,
                                         const size_t *degrees, size_t n) {
    TSR_REQUIRE(out && (degrees || n == 0), "tsr_circuits_sign_poly_create: NULL argument");
    *out = NULL;
    if (!isfinite(bound) || !(bound > 0))
        return tsr_fail(TSR_ERR_INVALID_ARG, "the sign's range bound B = %g must be positive",
                        bound);
    if (!(eps > 0 && eps < 1))
        return tsr_fail(TSR_ERR_INVALID_ARG,
                        "the sign's relative gap eps = %g must be in (0, 1): the range is "
                        "[-B, -eps B] u [eps B, B]",
                        eps);
    if (n < 1 || n > TSR_CIRCUITS_SIGN_MAX_COMPONENTS)
        return tsr_fail(TSR_ERR_INVALID_ARG, "%zu sign components: use 1..%d", n,
                        TSR_CIRCUITS_SIGN_MAX_COMPONENTS);
    for (size_t i = 0; i < n; i++)
        if (degrees[i] < 3 || degrees[i] > TSR_CIRCUITS_SIGN_MAX_DEGREE || degrees[i] % 2 == 0)
            return tsr_fail(TSR_ERR_INVALID_ARG,
                            "sign component %zu has degree %zu: use odd degrees 3..%d", i,
                            degrees[i], TSR_CIRCUITS_SIGN_MAX_DEGREE);
    tsr_circuits_sign_poly *s = calloc(1, sizeof *s);
    if (!s) return tsr_fail(TSR_ERR_NOMEM, "out of memory for a sign approximation");
    s->bound = bound;
    s->eps = eps;
    tsr_status st = TSR_OK;
    double l = eps;
    for (size_t i = 0; i < n && st == TSR_OK; i++) {
        size_t d = degrees[i];
        s->coeffs[i] = calloc(d + 1, sizeof *s->coeffs[i]);
        if (!s->coeffs[i]) {
            st = tsr_fail(TSR_ERR_NOMEM, "out of memory for a sign approximation");
            break;
        }
        s->n = i + 1;
        s->degree[i] = d;
        double delta = 0;
        st = remez_run((d + 1) / 2, l, s->coeffs[i], &delta, i);
        if (st != TSR_OK) break;
        s->series[i] = (tsr_cheb){ -1, 1, d, s->coeffs[i] };
        s->delta = delta;
        if (i + 1 < n) {
            double m = fmax(max_abs(&s->series[i]), 1 + delta);
            for (size_t j = 0; j <= d; j++) s->coeffs[i][j] /= m;
            l = (1 - delta) / m;
        }
    }
    if (st == TSR_OK) {
        s->series[0].a = -bound;
        s->series[0].b = bound;
    }
    if (st != TSR_OK) {
        tsr_circuits_sign_poly_free(s);
        return st;
    }
    *out = s;
    return TSR_OK;
}

const tsr_cheb *tsr_circuits_sign_poly_component(const tsr_circuits_sign_poly *s, size_t i,
                                                 size_t *count) {
    TSR_REQUIRE(s, "tsr_circuits_sign_poly_component: NULL approximation");
    if (count) *count = s->n;
    return i < s->n ? &s->series[i] : NULL;
}

tsr_status tsr_circuits_sign_plan(const tsr_circuits_sign_poly *s, int relu, int in_level,
                                  tsr_circuits_fn_info *info) {
    TSR_REQUIRE(s && info, "tsr_circuits_sign_plan: NULL argument");
    memset(info, 0, sizeof *info);
    int poly_levels = 0;
    for (size_t i = 0; i < s->n; i++) {
        tsr_circuits_poly_info pi;
        TSR_TRY(tsr_circuits_poly_plan(&s->series[i], 1 << 20, &pi));
        info->depth += pi.depth;
        poly_levels += pi.poly_depth;
        info->ct_mults += pi.ct_mults;
        info->const_mults += pi.const_mults;
    }
    if (relu) {
        info->depth++;
        info->ct_mults++;
    }
    info->out_level = in_level - info->depth;
    info->needs_relin_key = 1;
    double err = relu ? s->bound * s->delta / 2 : s->delta;
    info->approx_bits = fn_bits(err);
    if (in_level < info->depth)
        return tsr_fail(TSR_ERR_LEVEL,
                        "%s by %zu sign components needs %d levels (%d for the polynomials%s%s) "
                        "but the ciphertext is at level %d: use fewer or lower-degree components, "
                        "a deeper parameter set, or bootstrap",
                        relu ? "ReLU" : "the sign", s->n, info->depth, poly_levels,
                        s->bound != 1 ? ", 1 for the map of [-B, B] to [-1, 1]" : "",
                        relu ? ", 1 for the product with x" : "", in_level);
    return TSR_OK;
}

/* out = sign(in) (relu = 0) or in (1 + sign(in)) / 2 (relu = 1). */
static tsr_status eval_composite(tsr_ckks_evaluator *ev, tsr_ckks_ciphertext *out,
                                 const tsr_ckks_ciphertext *in, const tsr_circuits_sign_poly *s,
                                 int relu, tsr_circuits_fn_info *info) {
    int level;
    TSR_TRY(circuits_check_input(ev, out, in, &level));
    tsr_circuits_fn_info plan;
    TSR_TRY(tsr_circuits_sign_plan(s, relu, level, &plan));
    TSR_TRY(fn_need_relin(ev, relu ? "ReLU" : "the sign"));
    tsr_ckks_params *p = ev->params;
    if (relu) TSR_TRY(fn_check_fits(p, s->bound * (1 + s->delta), plan.out_level, "ReLU"));
    /* ReLU: the last component becomes (1 + p_k) / 2, so one product with x finishes it */
    size_t k = s->n - 1, d = s->degree[k];
    tsr_cheb last = s->series[k];
    double *half = NULL;
    if (relu) {
        half = malloc((d + 1) * sizeof *half);
        if (!half) return tsr_fail(TSR_ERR_NOMEM, "out of memory for the ReLU polynomial");
        for (size_t j = 0; j <= d; j++) half[j] = 0.5 * s->coeffs[k][j];
        half[0] += 0.5;
        last.coeffs = half;
    }
    tsr_ckks_ciphertext *t = NULL;
    tsr_status st = tsr_ckks_ciphertext_clone(&t, in);
    for (size_t i = 0; i < s->n && st == TSR_OK; i++) {
        st = tsr_circuits_poly_eval(ev, t, t, i == k ? &last : &s->series[i], NULL);
        /* an intermediate's values stay in [-1, 1] (the components are normalized so);
         * the evaluator's bound (sums of |coefficients|) would blow up the next one's
         * bounds of T_n and its overflow checks */
        if (st == TSR_OK && i < k) fn_bound(t, 1.0);
    }
    if (st == TSR_OK && relu) st = fn_mul(ev, t, in, t, "ReLU's product x (1 + sign(x)) / 2");
    if (st == TSR_OK && tsr_ckks_ciphertext_level(t) != plan.out_level)
        st = tsr_fail(TSR_ERR_INTERNAL,
                      "the sign ended at level %d instead of %d (a bug in "
                      "Tessera)",
                      tsr_ckks_ciphertext_level(t), plan.out_level);
    if (st == TSR_OK) st = tsr_ckks_ciphertext_copy(out, t);
    if (st == TSR_OK && info) *info = plan;
    tsr_ckks_ciphertext_free(t);
    free(half);
    return st;
}

tsr_status tsr_circuits_sign(tsr_ckks_evaluator *ev, tsr_ckks_ciphertext *out,
                             const tsr_ckks_ciphertext *in, const tsr_circuits_sign_poly *s,
                             tsr_circuits_fn_info *info) {
    TSR_REQUIRE(ev && out && in && s, "tsr_circuits_sign: NULL argument");
    return eval_composite(ev, out, in, s, 0, info);
}

tsr_status tsr_circuits_relu(tsr_ckks_evaluator *ev, tsr_ckks_ciphertext *out,
                             const tsr_ckks_ciphertext *in, const tsr_circuits_sign_poly *s,
                             tsr_circuits_fn_info *info) {
    TSR_REQUIRE(ev && out && in && s, "tsr_circuits_relu: NULL argument");
    return eval_composite(ev, out, in, s, 1, info);
}
