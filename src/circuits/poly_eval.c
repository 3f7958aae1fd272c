/*
 * circuits/poly_eval.c - a Chebyshev series evaluated on a CKKS ciphertext
 * by the baby-step giant-step Paterson-Stockmeyer algorithm, level-optimal
 * and scale-exact.
 *
 * References:
 *  - M. S. Paterson, L. J. Stockmeyer, SIAM J. Comput. 1973: baby steps
 *    x^0..x^{k-1}, giant steps x^k, x^2k, x^4k, ..., division of the
 *    polynomial by the giant steps.
 *  - K. Han, D. Ki, CT-RSA 2020, section 4 (algorithm 2): the same in the
 *    Chebyshev basis, where the division by T_g uses
 *    T_g T_j = (T_{g+j} + T_{|g-j|}) / 2, and the baby/giant steps come from
 *    T_{2i} = 2 T_i^2 - 1, T_{2i+1} = 2 T_i T_{i+1} - T_1.
 *  - J.-P. Bossuat, C. Mouchet, J. Troncoso-Pastoriza, J.-P. Hubaux,
 *    EUROCRYPT 2021, section 4.2: plain BSGS spends ceil(log2(d+1)) + 1
 *    levels because the constants of the leaves cost one level on top of
 *    the deepest baby step; it reaches ceil(log2(d+1)) by treating the
 *    *leading* branch (the chain of quotients) differently. We follow the
 *    idea in our own formulation, stated in levels (budget B, m_p =
 *    ceil(log2(deg p + 1))):
 *      - non-leading node (B >= m_p + 1): a leaf if deg p < k, else divide
 *        by g = 2^(m_p - 1): p = q T_g + r, q with budget B - 1, r with B;
 *      - leading node (B = m_p): a leaf only if deg p < k and
 *        deg p <= 2^(B-1) (all its baby steps have depth <= B - 1, so the
 *        constants fit), else divide by g = 2^(B-1) (a giant step, or a
 *        power-of-two baby step below k), q leading with budget B - 1, r
 *        non-leading with budget B.
 *    The top call is leading with B = m_p, so the result uses exactly
 *    ceil(log2(d+1)) levels; tsr_circuits_poly_plan runs the same recursion
 *    with levels only, and the tests check the bound for every degree up
 *    to 255.
 *
 * Lazy relinearization: a node's chain of remainders (q T_g, then r's own
 * q' T_g', ..., then the leaf terms) all lands at level t+1 with the scale
 * Delta_t q_{t+1}, so it is summed there with the products unrelinearized
 * (size 3) and relinearized and rescaled once (node): fewer key switches
 * than products (degree 63: 15 for 18).
 *
 * Scales: every ciphertext here is at the canonical scale Delta_l of its
 * level l (include/tessera/ckks.h). Products of two of them rescale onto
 * Delta_{l-1} exactly (the evaluator's rule 1 brings an operand at a
 * higher level down first, exactly). A leaf at target level t computes
 * sum_i round(c_i * s_i) T_i at level t+1 with s_i = Delta_t q_{t+1} /
 * Delta(T_i), so every term has the scale Delta_t q_{t+1}, and one rescale
 * lands on Delta_t. The scale of each node's result is then set to the
 * canonical value it equals up to floating-point rounding (checked to
 * 2^-40 relative, the evaluator's own tolerance).
 */
#include "tessera/circuits.h"

#include "circuits/circuits_internal.h"
#include "ckks/evaluator_internal.h"
#include "core/error.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ---- helpers ----------------------------------------------------------------------- */

/* ceil(log2(n)) for n >= 1. */
static int clog2(size_t n) {
    int r = 0;
    while (((size_t)1 << r) < n) r++;
    return r;
}

/* Index of the last nonzero coefficient of c[0..d] (0 if none). */
static size_t trim(const double *c, size_t d) {
    while (d > 0 && c[d] == 0) d--;
    return d;
}

static int scale_close(double a, double b) {
    return fabs(a - b) <= CKKS_SCALE_TOL * fmax(fabs(a), fabs(b));
}

/* ---- evaluation state ---------------------------------------------------------------- */

/*
 * One evaluation. In the dry run (ev == NULL) only levels and counts are
 * tracked; the wet run performs the same steps on ciphertexts.
 */
typedef struct pe {
    tsr_ckks_evaluator *ev; /* NULL: dry run */
    tsr_ckks_params *p;
    int top;                 /* level of T_1 */
    size_t k;                /* baby steps T_0..T_{k-1} */
    size_t maxn;             /* T_0..T_maxn may be requested */
    int *lvl;                /* lvl[n]: level of T_n, -1 until computed */
    tsr_ckks_ciphertext **T; /* wet run: T[n] */
    size_t ct_mults, const_mults;
    size_t relins; /* key switches: one per Chebyshev power, one per node with a lazy product */
    int lazy;      /* the current node's accumulator holds an unrelinearized product */
    int probe;     /* dry run of a candidate k: a level that does not fit is TSR_ERR_LEVEL,
                      without a message */
} pe;

static tsr_status bug(const pe *s, const char *what, int have, int need) {
    if (s->probe) return TSR_ERR_LEVEL;
    return tsr_fail(TSR_ERR_INTERNAL,
                    "polynomial evaluation: %s is at level %d, needed %d (a bug in Tessera: "
                    "please report it)",
                    what, have, need);
}

/* sum |c_i|: a bound on |p(y)| for y in [-1, 1] since |T_i| <= 1 there. */
static double coeff_bound(const double *c, size_t d) {
    double b = 0;
    for (size_t i = 0; i <= d; i++) b += fabs(c[i]);
    return b;
}

/*
 * TSR_ERR_SCALE unless values up to `bound` at `scale` fit the modulus of
 * `level` with a bit to spare (else they would wrap around silently).
 */
static tsr_status check_fits(const pe *s, double bound, double scale, int level) {
    double need = log2(bound * scale + 1), have = tsr_ckks_params_log_q(s->p, level) - 1;
    if (need < have) return TSR_OK;
    return tsr_fail(TSR_ERR_SCALE,
                    "polynomial values up to %.3g (the sum of |coefficients| of a part of the "
                    "series) at scale 2^%.1f need %.1f bits but the modulus at level %d has "
                    "%.1f: use smaller coefficients (scale the function down) or a larger first "
                    "prime",
                    bound, log2(scale), need, level, have + 1);
}

static tsr_status new_ct(pe *s, tsr_ckks_ciphertext **ct) {
    *ct = NULL;
    if (!s->ev) return TSR_OK;
    return tsr_ckks_ciphertext_create(ct, s->p);
}

/* Make T_n available (memoized): T_{2i} = 2 T_i^2 - 1, T_{2i+1} = 2 T_{i+1} T_i - T_1. */
static tsr_status get_T(pe *s, size_t n) {
    TSR_ASSERT(n >= 1 && n <= s->maxn);
    if (s->lvl[n] >= 0) return TSR_OK;
    size_t a = (n + 1) / 2, b = n / 2;
    TSR_TRY(get_T(s, a));
    TSR_TRY(get_T(s, b));
    int level = (s->lvl[a] < s->lvl[b] ? s->lvl[a] : s->lvl[b]) - 1;
    if (level < 0) return bug(s, "a Chebyshev power's operand", level + 1, 1);
    s->ct_mults++;
    s->relins++;
    if (s->ev) {
        tsr_ckks_ciphertext *t;
        TSR_TRY(new_ct(s, &t));
        s->T[n] = t;
        TSR_TRY(tsr_ckks_mul_relin_rescale(s->ev, t, s->T[a], s->T[b]));
        TSR_TRY(tsr_ckks_mul_int(s->ev, t, t, 2));
        if (a == b)
            TSR_TRY(tsr_ckks_sub_const(s->ev, t, t, 1.0, 0.0));
        else
            TSR_TRY(tsr_ckks_sub(s->ev, t, t, s->T[1]));
        if (tsr_ckks_ciphertext_level(t) != level)
            return bug(s, "a Chebyshev power", tsr_ckks_ciphertext_level(t), level);
        /* The evaluator's magnitude bound multiplies along the recurrence
         * (3, 19, 723, ... for |y| <= 1), which would soon fail mul_int's
         * overflow check and ruin the error estimates; the exact bound is
         * |T_n(y)| <= 1 for |y| <= 1 and cosh(n acosh m) for |y| <= m > 1. */
        double m = s->T[1]->mag;
        double bound = m <= 1 ? 1.0 : cosh((double)n * acosh(m));
        if (bound < t->mag) t->mag = bound;
    }
    s->lvl[n] = level;
    return TSR_OK;
}

/*
 * acc (+)= coef * T_n at level t+1 and scale Delta_t q_{t+1} (*have says
 * whether acc holds a term yet; tmp is scratch).
 */
static tsr_status add_term(pe *s, tsr_ckks_ciphertext *acc, tsr_ckks_ciphertext *tmp, int *have,
                           size_t n, double coef, int t) {
    TSR_TRY(get_T(s, n));
    if (s->lvl[n] < t + 1) return bug(s, "a baby or giant step", s->lvl[n], t + 1);
    s->const_mults++;
    if (s->ev) {
        double target = tsr_ckks_params_scale(s->p, t) * (double)tsr_ckks_params_prime(s->p, t + 1);
        tsr_ckks_ciphertext *dst = *have ? tmp : acc;
        TSR_TRY(tsr_ckks_drop_level(s->ev, dst, s->T[n], t + 1));
        double cs = target / tsr_ckks_ciphertext_scale(dst);
        TSR_TRY(tsr_ckks_mul_const_scaled(s->ev, dst, dst, coef, 0.0, cs));
        if (*have) TSR_TRY(tsr_ckks_add(s->ev, acc, acc, tmp));
    }
    *have = 1;
    return TSR_OK;
}

/*
 * out = rescale(acc + c0) at level t, scale Delta_t (acc from add_term; a
 * zero if !have); bound: sum of |coefficients| of the terms and c0.
 */
static tsr_status finish(pe *s, tsr_ckks_ciphertext *out, tsr_ckks_ciphertext *acc,
                         tsr_ckks_ciphertext *tmp, int have, double c0, double bound, int t) {
    if (!have) TSR_TRY(add_term(s, acc, tmp, &have, 1, 0.0, t));
    if (!s->ev) return TSR_OK;
    TSR_TRY(check_fits(s, bound, tsr_ckks_ciphertext_scale(acc), t + 1));
    if (c0 != 0) TSR_TRY(tsr_ckks_add_const(s->ev, acc, acc, c0, 0.0));
    TSR_TRY(tsr_ckks_rescale(s->ev, out, acc));
    double want = tsr_ckks_params_scale(s->p, t);
    if (tsr_ckks_ciphertext_level(out) != t || !scale_close(tsr_ckks_ciphertext_scale(out), want))
        return bug(s, "a leaf", tsr_ckks_ciphertext_level(out), t);
    return tsr_ckks_ciphertext_set_scale(out, want);
}

static tsr_status node(pe *s, tsr_ckks_ciphertext *out, const double *c, size_t d, int B, int t);
static tsr_status node_acc(pe *s, tsr_ckks_ciphertext *acc, tsr_ckks_ciphertext *tmp, int *have,
                           double *c0, const double *c, size_t d, int B, int t);

/*
 * Divide p (c[0..d]) by T_g: p = q T_g + r with q_0 = c_g, q_j = 2 c_{g+j},
 * r_i = c_i for i < g except r_{g-j} = c_{g-j} - c_{g+j} (j = 1..d-g), from
 * T_g T_j = (T_{g+j} + T_{g-j}) / 2 (needs d < 2g). q is evaluated with
 * budget B - 1 at level t + 1, r with B at t. Lazy: q T_g is added to acc
 * unrelinearized and unrescaled (level t + 1, scale Delta_t q_{t+1}, size
 * 3), and so are r's own products and terms (node_acc), so that the whole
 * chain of remainders costs one relinearization and one rescale (node).
 */
static tsr_status split_acc(pe *s, tsr_ckks_ciphertext *acc, tsr_ckks_ciphertext *tmp, int *have,
                            double *c0, const double *c, size_t d, size_t g, int B, int t) {
    TSR_ASSERT(g <= d && d < 2 * g);
    size_t dq = d - g;
    double *q = malloc((dq + 1 + g) * sizeof *q);
    if (!q) return tsr_fail(TSR_ERR_NOMEM, "out of memory for polynomial coefficients");
    double *r = q + dq + 1;
    q[0] = c[g];
    for (size_t j = 1; j <= dq; j++) q[j] = 2 * c[g + j];
    memcpy(r, c, g * sizeof *r);
    for (size_t j = 1; j <= dq; j++) r[g - j] -= c[g + j];

    tsr_status st = TSR_OK;
    tsr_ckks_ciphertext *qct = NULL;
    dq = trim(q, dq);
    if (dq == 0) {
        /* q is the constant q_0: q T_g is one scaled term. */
        st = add_term(s, acc, tmp, have, g, q[0], t);
    } else {
        st = new_ct(s, &qct);
        if (st == TSR_OK) st = node(s, qct, q, dq, B - 1, t + 1);
        if (st == TSR_OK) st = get_T(s, g);
        if (st == TSR_OK && s->lvl[g] < t + 1) st = bug(s, "a giant step", s->lvl[g], t + 1);
        if (st == TSR_OK) {
            s->ct_mults++;
            if (s->ev) st = check_fits(s, coeff_bound(q, dq), tsr_ckks_params_scale(s->p, t), t);
            if (s->ev && st == TSR_OK) {
                tsr_ckks_ciphertext *dst = *have ? tmp : acc;
                st = tsr_ckks_mul(s->ev, dst, qct, s->T[g]);
                if (st == TSR_OK && *have) st = tsr_ckks_add(s->ev, acc, acc, tmp);
            }
            *have = 1;
            s->lazy = 1;
        }
    }
    size_t dr = trim(r, g - 1);
    if (st == TSR_OK && dr == 0) *c0 += r[0];
    if (st == TSR_OK && dr > 0) st = node_acc(s, acc, tmp, have, c0, r, dr, B, t);
    tsr_ckks_ciphertext_free(qct);
    free(q);
    return st;
}

/*
 * acc (+)= p(y) - p_0 at level t+1 and scale Delta_t q_{t+1} (size 2 or 3),
 * *c0 += p_0, for p = c[0..d] (d >= 1 after trimming) within budget B at t.
 */
static tsr_status node_acc(pe *s, tsr_ckks_ciphertext *acc, tsr_ckks_ciphertext *tmp, int *have,
                           double *c0, const double *c, size_t d, int B, int t) {
    d = trim(c, d);
    if (t < 0) return bug(s, "a polynomial node", t, 0);
    int m = clog2(d + 1);
    TSR_ASSERT(B >= m);
    int lead = B == m;
    if (d == 0 || (d < s->k && (!lead || d <= ((size_t)1 << (B - 1))))) {
        *c0 += c[0];
        for (size_t i = 1; i <= d; i++)
            if (c[i] != 0) TSR_TRY(add_term(s, acc, tmp, have, i, c[i], t));
        return TSR_OK;
    }
    /* Both kinds divide by g = 2^(m-1) (for a leading node B - 1 = m - 1). */
    return split_acc(s, acc, tmp, have, c0, c, d, (size_t)1 << (m - 1), B, t);
}

/*
 * out = p(y) for p = c[0..d] (d >= 1 after trimming) at level t with
 * canonical scale, within the level budget B (the levels from T_1's level
 * down to t: B = top - t): node_acc, then one relinearization (if a product
 * was added) and one rescale.
 */
static tsr_status node(pe *s, tsr_ckks_ciphertext *out, const double *c, size_t d, int B, int t) {
    d = trim(c, d);
    if (t < 0) return bug(s, "a polynomial node", t, 0);
    tsr_ckks_ciphertext *acc = NULL, *tmp = NULL;
    tsr_status st = new_ct(s, &acc);
    if (st == TSR_OK) st = new_ct(s, &tmp);
    int have = 0, outer_lazy = s->lazy;
    double c0 = 0;
    s->lazy = 0;
    if (st == TSR_OK) st = node_acc(s, acc, tmp, &have, &c0, c, d, d == 0 ? 0 : B, t);
    if (s->lazy) s->relins++;
    s->lazy = outer_lazy;
    if (st == TSR_OK && s->ev && have && tsr_ckks_ciphertext_size(acc) == 3)
        st = tsr_ckks_relinearize(s->ev, acc, acc);
    if (st == TSR_OK) st = finish(s, out, acc, tmp, have, c0, coeff_bound(c, d), t);
    tsr_ckks_ciphertext_free(acc);
    tsr_ckks_ciphertext_free(tmp);
    if (st != TSR_OK || !s->ev) return st;
    double want = tsr_ckks_params_scale(s->p, t);
    TSR_TRY(check_fits(s, coeff_bound(c, d), want, t));
    if (tsr_ckks_ciphertext_level(out) != t || !scale_close(tsr_ckks_ciphertext_scale(out), want))
        return bug(s, "a polynomial node", tsr_ckks_ciphertext_level(out), t);
    return tsr_ckks_ciphertext_set_scale(out, want);
}

/* ---- public entry points -------------------------------------------------------------- */

static void pe_free(pe *s) {
    if (s->T)
        for (size_t n = 0; n <= s->maxn; n++) tsr_ckks_ciphertext_free(s->T[n]);
    free(s->T);
    free(s->lvl);
}

/* Run the recursion for the trimmed degree d >= 1 with T_1 at level top. */
static tsr_status pe_run(pe *s, const tsr_cheb *series, size_t d, tsr_ckks_ciphertext *out) {
    int m = clog2(d + 1);
    return node(s, out, series->coeffs, d, m, s->top - m);
}

static void plan_info(const tsr_cheb *s, int in_level, tsr_circuits_poly_info *info) {
    memset(info, 0, sizeof *info);
    size_t d = trim(s->coeffs, s->degree);
    info->degree = d;
    info->map_depth = d == 0 || (s->a == -1.0 && s->b == 1.0) ? 0 : 1;
    info->poly_depth = d == 0 ? 0 : clog2(d + 1);
    info->depth = info->map_depth + info->poly_depth;
    info->out_level = in_level - info->depth;
    info->baby_steps = d == 0 ? 1 : (size_t)1 << ((info->poly_depth + 1) / 2);
}

static tsr_status pe_init(pe *s, tsr_ckks_evaluator *ev, tsr_ckks_params *p, size_t d,
                          const tsr_circuits_poly_info *info, int top) {
    memset(s, 0, sizeof *s);
    s->ev = ev;
    s->p = p;
    s->top = top;
    s->k = info->baby_steps;
    s->maxn = d;
    s->lvl = malloc((d + 1) * sizeof *s->lvl);
    if (ev) s->T = calloc(d + 1, sizeof *s->T);
    if (!s->lvl || (ev && !s->T)) {
        pe_free(s);
        return tsr_fail(TSR_ERR_NOMEM, "out of memory for the Chebyshev powers");
    }
    for (size_t n = 0; n <= d; n++) s->lvl[n] = -1;
    s->lvl[1] = top;
    return TSR_OK;
}

/*
 * The dry run with k baby steps on top of plan_info (info->const_mults holds
 * the map's): fills k and the counts. A k that does not fit the levels
 * returns TSR_ERR_LEVEL without a message (the probe is quiet); other
 * errors (out of memory) keep theirs.
 */
static tsr_status plan_k(const tsr_cheb *s, int in_level, size_t k, tsr_circuits_poly_info *info) {
    info->baby_steps = k;
    pe st;
    TSR_TRY(pe_init(&st, NULL, NULL, info->degree, info, in_level - info->map_depth));
    st.probe = 1;
    tsr_status rc = pe_run(&st, s, info->degree, NULL);
    info->ct_mults = st.ct_mults;
    info->const_mults += st.const_mults;
    info->relins = st.relins;
    pe_free(&st);
    return rc;
}

tsr_status tsr_circuits_poly_plan(const tsr_cheb *s, int in_level, tsr_circuits_poly_info *info) {
    TSR_REQUIRE(info, "tsr_circuits_poly_plan: NULL info");
    TSR_TRY(circuits_check_series(s));
    plan_info(s, in_level, info);
    if (in_level < info->depth)
        return tsr_fail(TSR_ERR_LEVEL,
                        "a degree-%zu polynomial on [%g, %g] needs %d levels (%d for the degree, "
                        "ceil(log2(%zu + 1)), + %d for the map to [-1, 1]) but the ciphertext is "
                        "at level %d: use a deeper parameter set, a lower degree, or bootstrap",
                        info->degree, s->a, s->b, info->depth, info->poly_depth, info->degree,
                        info->map_depth, in_level);
    info->const_mults = (size_t)info->map_depth;
    if (info->degree == 0) {
        info->const_mults++;
        return TSR_OK;
    }
    /*
     * The baby-step count k: the default 2^ceil(m/2) first, then every other
     * power of two up to 2^m, kept if it needs fewer key switches (then fewer
     * ciphertext products). The key switches are what the evaluation costs;
     * they depend on the series' shape (lazy relinearization merges a node's
     * products, more baby steps cost one each): a dense degree-31 series
     * needs 12 with k = 8 and 10 with k = 4 (both 13 products). The default
     * must fit the levels (its error is returned); another k that does not
     * is skipped without a message (plan_k).
     */
    size_t def = info->baby_steps;
    tsr_circuits_poly_info best = *info;
    TSR_TRY(plan_k(s, in_level, def, &best));
    for (int e = 1; e <= info->poly_depth; e++) {
        size_t k = (size_t)1 << e;
        if (k == def) continue;
        tsr_circuits_poly_info cand = *info;
        tsr_status rc = plan_k(s, in_level, k, &cand);
        if (rc == TSR_ERR_LEVEL) continue;
        TSR_TRY(rc);
        if (cand.relins < best.relins ||
            (cand.relins == best.relins && cand.ct_mults < best.ct_mults))
            best = cand;
    }
    *info = best;
    return TSR_OK;
}

tsr_status circuits_poly_plan_k(const tsr_cheb *s, int in_level, size_t k,
                                tsr_circuits_poly_info *info) {
    TSR_TRY(circuits_check_series(s));
    plan_info(s, in_level, info);
    if (in_level < info->depth) return tsr_fail(TSR_ERR_LEVEL, "circuits_poly_plan_k: level");
    info->const_mults = (size_t)info->map_depth;
    if (info->degree == 0) {
        info->const_mults++;
        return TSR_OK;
    }
    if (k == 0) k = info->baby_steps;
    tsr_status rc = plan_k(s, in_level, k, info);
    if (rc == TSR_ERR_LEVEL) return tsr_fail(rc, "circuits_poly_plan_k: k = %zu does not fit", k);
    return rc;
}

tsr_status tsr_circuits_poly_eval(tsr_ckks_evaluator *ev, tsr_ckks_ciphertext *out,
                                  const tsr_ckks_ciphertext *in, const tsr_cheb *s,
                                  tsr_circuits_poly_info *info) {
    TSR_REQUIRE(ev && out && in, "tsr_circuits_poly_eval: NULL evaluator or ciphertext");
    TSR_TRY(circuits_check_series(s));
    int level;
    TSR_TRY(circuits_check_input(ev, out, in, &level));
    tsr_ckks_params *p = ev->params;
    tsr_circuits_poly_info plan;
    TSR_TRY(tsr_circuits_poly_plan(s, level, &plan));
    if (plan.ct_mults > 0 && !ev->rk)
        return tsr_fail(TSR_ERR_KEY_MISSING,
                        "a degree-%zu polynomial needs ciphertext products but the evaluator has "
                        "no relinearization key: create it with tsr_ckks_relin_key_create and "
                        "pass it to tsr_ckks_evaluator_create",
                        plan.degree);
    /* A mixed chain's rescale from level m + 1 lands near 2^s, not on Delta_m (docs/CKKS.md):
     * the products' scale identity fails there, so refuse before any work. */
    int m = (int)p->spec.low_levels;
    if (m > 0 && plan.ct_mults > 0 && level - plan.map_depth > m && plan.out_level <= m)
        return tsr_fail(TSR_ERR_LEVEL,
                        "polynomial evaluation from level %d to %d cannot cross the mixed chain's "
                        "boundary at level %d: bring the input to level %d with tsr_ckks_adjust "
                        "first",
                        level, plan.out_level, m, m);
    if (info) *info = plan;
    if (plan.degree == 0) {
        TSR_TRY(tsr_ckks_mul_int(ev, out, in, 0));
        if (s->coeffs[0] != 0) TSR_TRY(tsr_ckks_add_const(ev, out, out, s->coeffs[0], 0.0));
        return tsr_ckks_ciphertext_set_scale(out, tsr_ckks_params_scale(p, level));
    }

    pe st;
    TSR_TRY(pe_init(&st, ev, p, plan.degree, &plan, level - plan.map_depth));
    tsr_status r = tsr_ckks_ciphertext_create(&st.T[1], p);
    if (r == TSR_OK) {
        if (plan.map_depth == 0) {
            r = tsr_ckks_ciphertext_copy(st.T[1], in);
        } else {
            /* y = alpha x + beta: alpha encoded for a rescale onto Delta_{l-1} (rule 4). */
            double alpha = 2 / (s->b - s->a), beta = -(s->a + s->b) / (s->b - s->a);
            r = tsr_ckks_mul_const(ev, st.T[1], in, alpha, 0.0);
            if (r == TSR_OK) r = tsr_ckks_rescale(ev, st.T[1], st.T[1]);
            if (r == TSR_OK && beta != 0) r = tsr_ckks_add_const(ev, st.T[1], st.T[1], beta, 0.0);
            if (r == TSR_OK) {
                double want = tsr_ckks_params_scale(p, level - 1);
                if (!scale_close(tsr_ckks_ciphertext_scale(st.T[1]), want))
                    r = bug(&st, "the interval map", tsr_ckks_ciphertext_level(st.T[1]), level - 1);
                else
                    r = tsr_ckks_ciphertext_set_scale(st.T[1], want);
            }
        }
    }
    if (r == TSR_OK) r = pe_run(&st, s, plan.degree, out);
    if (r == TSR_OK && (st.ct_mults != plan.ct_mults || st.relins != plan.relins ||
                        st.const_mults + (size_t)plan.map_depth != plan.const_mults))
        r = tsr_fail(TSR_ERR_INTERNAL, "polynomial evaluation: the plan and the evaluation "
                                       "disagree on the operation counts (a bug in Tessera)");
    pe_free(&st);
    return r;
}
