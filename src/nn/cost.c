/*
 * nn/cost.c - the optimizer's cost model: seconds per HE operation, from a
 * *profile* (HELayers profiles a machine the same way), and the memory of
 * a program.
 *
 * A profile holds, for a grid of CKKS chains (ring degree 2^log_n and a
 * number of levels), the time of each HE operation at the top of the chain,
 * and of the key switches also at its middle and level 0 (the lower
 * quartile of 5-8 runs), measured through the ckks backend
 * (backend overheads included) with the thread count of the run: with one
 * thread the process's CPU time, which other jobs on a shared machine do
 * not inflate; with more, wall time (CPU time would sum the threads; a
 * comment line in the profile says which). `tessera profile` writes one
 * (tsr_nn_profile_measure); `tessera compile --profile FILE` reads it;
 * without one the built-in profile (nn/cost_builtin.c, measured the same
 * way on a named machine) is used. Compilation itself never times
 * anything and reads no ambient file, so a plan depends only on the model,
 * the options and the profile.
 *
 * The format is text, one record per line (docs/INFERENCE.md):
 *   tessera-profile 3
 *   cpu <free text>          simd <name>          threads <n>
 *   point log_n=<n> levels=<L> add=<s> mul_plain=<s> ... prod_lincomb_term=<s>
 *   ks log_n=<n> levels=<L> level=<l> alpha=<a> special=<k> rotate=<s> hoist_extra=<s>
 *      mul_ct=<s>
 * '#' starts a comment line. Every key of a record is required exactly
 * once, except a point's prod_lincomb_term (profiles made before it was
 * measured: then 2 mul_plain + lincomb_term); unknown keys or records, bad
 * numbers, duplicate points or ks records and overlong lines are errors
 * with their line number (fuzz/fuzz_nn_profile.c). Version 2 files (no ks
 * records) still read.
 *
 * The cost of an operation other than a key switch at level l of a chain
 * with 2^log_n slots is the profile's value interpolated linearly in the
 * number of levels between the two nearest points of that ring degree
 * (extrapolated from the nearest two beyond them, proportionally to the
 * limbs below the first): those costs follow the limbs, l + 1, whatever the
 * chain. A key switch does not: at level l of a chain with alpha primes per
 * digit and k special primes it has D = ceil((l + 1) / alpha) digits, each
 * raised to P = l + 1 + k primes (ModUp NTTs and inner products with the
 * key, D x P limbs), and a ModDown over P primes, so rotations, hoisted
 * rotations and relinearizing products are priced by a model fitted per
 * ring degree at load, seconds = c0 + c1 D P + c2 P + c3 B, B the base
 * conversions' products (ks_terms; least squares on the relative error,
 * coefficients >= 0), to the ks records (version 3:
 * `tessera profile` times them at the top, the middle and level 0 of each
 * chain) or, for a version 2 file, to the points' tops on the chains the
 * profiler measures (nn_profile_chain). The top of the 8-level 2^14 chain
 * (dnum 9, one special prime: 9 digits x 10 primes) and the top of the
 * 7-level one (dnum 4, two special primes: 4 x 10) differ 2.25x in D P, which
 * interpolating between the tops of chains could not see.
 */
#include "nn/nn_internal.h"

#include "core/alloc.h"
#include "core/error.h"
#include "core/io.h"
#include "core/progress.h"
#include "tile/tile_internal.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PROFILE_VERSION     3 /* written; 2 is still read */
#define PROFILE_MIN_VERSION 2
#define PROFILE_MAX_BYTES   (1u << 20)
#define PROFILE_MAX_LINE    2048
#define PROFILE_MAX_POINTS  1024
#define COST_MAX_SECONDS    1e4

typedef struct field {
    const char *name;
    size_t off;
} field;

#define F(x) \
    { #x, offsetof(nn_costs, x) }
static const field fields[] = {
    F(add),
    F(mul_plain),
    F(mul_const),
    F(mul_ct),
    F(rescale),
    F(rotate),
    F(hoist_extra),
    F(encode),
    F(encrypt),
    F(decrypt),
    F(lincomb_term),
    F(copy),
    F(sq_lincomb_term),
    F(prod_lincomb_term),
};
#undef F
#define NFIELDS (sizeof fields / sizeof fields[0])

static double *fp_of(nn_costs *c, size_t i) {
    return (double *)((char *)c + fields[i].off);
}
static double fget(const nn_costs *c, size_t i) {
    return *(const double *)((const char *)c + fields[i].off);
}

void nn_profile_free(nn_profile *p) {
    if (!p) return;
    tsr_free(p->pts);
    tsr_free(p->ks);
    tsr_free(p);
}

static const char *const ks_names[NN_KS_OPS] = { "rotate", "hoist_extra", "mul_ct" };

/* ---- parsing -------------------------------------------------------------------------- */

typedef struct lexer {
    const char *s, *end; /* the current line, without its newline */
    int line;
} lexer;

/* Next whitespace-separated word of the line into w (NUL-terminated); 0 at the end. */
static int next_word(lexer *x, char *w, size_t n) {
    while (x->s < x->end && (*x->s == ' ' || *x->s == '\t')) x->s++;
    if (x->s == x->end) return 0;
    size_t k = 0;
    while (x->s < x->end && *x->s != ' ' && *x->s != '\t') {
        if (k + 1 < n) w[k++] = *x->s;
        x->s++;
    }
    w[k] = 0;
    return 1;
}

static tsr_status perr(int line, const char *fmt, const char *arg) {
    char msg[256];
    snprintf(msg, sizeof msg, fmt, arg);
    return tsr_fail(TSR_ERR_FORMAT, "cost profile line %d: %s", line, msg);
}

static int parse_int(const char *v, int lo, int hi, int *out) {
    if (!*v) return 0;
    char *e;
    errno = 0;
    long x = strtol(v, &e, 10);
    if (*e || errno || x < lo || x > hi) return 0;
    *out = (int)x;
    return 1;
}

static int parse_seconds(const char *v, double *out) {
    if (!*v || isspace((unsigned char)*v)) return 0;
    char *e;
    errno = 0;
    double x = strtod(v, &e);
    if (*e || errno == ERANGE || !isfinite(x) || !(x >= 0) || x > COST_MAX_SECONDS) return 0;
    *out = x;
    return 1;
}

static tsr_status parse_point(lexer *x, nn_profile_point *pt) {
    memset(pt, 0, sizeof *pt);
    char w[160];
    int have_n = 0, have_l = 0;
    uint32_t have = 0;
    while (next_word(x, w, sizeof w)) {
        char *eq = strchr(w, '=');
        if (!eq) return perr(x->line, "'%s' is not key=value", w);
        *eq = 0;
        const char *v = eq + 1;
        if (strcmp(w, "log_n") == 0) {
            if (have_n++ || !parse_int(v, TSR_CKKS_MIN_LOG_N, TSR_CKKS_MAX_LOG_N, &pt->log_n))
                return perr(x->line, "bad or repeated log_n '%s'", v);
            continue;
        }
        if (strcmp(w, "levels") == 0) {
            if (have_l++ || !parse_int(v, 1, 64, &pt->levels))
                return perr(x->line, "bad or repeated levels '%s' (1..64)", v);
            continue;
        }
        size_t i = 0;
        while (i < NFIELDS && strcmp(fields[i].name, w) != 0) i++;
        if (i == NFIELDS) return perr(x->line, "unknown key '%s'", w);
        if (have & (1u << i)) return perr(x->line, "'%s' is given twice", w);
        if (!parse_seconds(v, fp_of(&pt->c, i)))
            return perr(x->line, "'%s' is not a time in seconds (0..1e4)", v);
        have |= 1u << i;
    }
    if (!have_n || !have_l) return perr(x->line, "a point needs log_n= and levels=%s", "");
    size_t opt = 0; /* the one optional key, found by name */
    while (opt < NFIELDS && strcmp(fields[opt].name, "prod_lincomb_term") != 0) opt++;
    TSR_ASSERT(opt < NFIELDS);
    for (size_t i = 0; i < NFIELDS; i++)
        if (!(have & (1u << i)) && i != opt)
            return perr(x->line, "the point has no '%s'", fields[i].name);
    if (!(have & (1u << opt))) pt->c.prod_lincomb_term = 2 * pt->c.mul_plain + pt->c.lincomb_term;
    return TSR_OK;
}

/* A ks record: the key-switching operations timed at one level of one chain. */
static tsr_status parse_ks(lexer *x, nn_profile_ks *k) {
    memset(k, 0, sizeof *k);
    char w[160];
    static const char *const ints[5] = { "log_n", "levels", "level", "alpha", "special" };
    int *iv[5] = { &k->log_n, &k->levels, &k->level, &k->alpha, &k->special };
    const int lo[5] = { TSR_CKKS_MIN_LOG_N, 1, 0, 1, 1 };
    const int hi[5] = { TSR_CKKS_MAX_LOG_N, 64, 64, 65, TSR_CKKS_MAX_SPECIAL_PRIMES };
    uint32_t have = 0; /* bits 0-4: the integers, 5-7: the times */
    while (next_word(x, w, sizeof w)) {
        char *eq = strchr(w, '=');
        if (!eq) return perr(x->line, "'%s' is not key=value", w);
        *eq = 0;
        const char *v = eq + 1;
        int i = 0;
        while (i < 5 && strcmp(w, ints[i]) != 0) i++;
        if (i < 5) {
            if ((have & (1u << i)) || !parse_int(v, lo[i], hi[i], iv[i]))
                return perr(x->line, "bad or repeated ks key '%s'", w);
            have |= 1u << i;
            continue;
        }
        int j = 0;
        while (j < NN_KS_OPS && strcmp(w, ks_names[j]) != 0) j++;
        if (j == NN_KS_OPS) return perr(x->line, "unknown ks key '%s'", w);
        if (have & (1u << (5 + j))) return perr(x->line, "'%s' is given twice", w);
        if (!parse_seconds(v, &k->t[j]))
            return perr(x->line, "'%s' is not a time in seconds (0..1e4)", v);
        have |= 1u << (5 + j);
    }
    for (int i = 0; i < 5; i++)
        if (!(have & (1u << i))) return perr(x->line, "the ks record has no '%s'", ints[i]);
    for (int j = 0; j < NN_KS_OPS; j++)
        if (!(have & (1u << (5 + j))))
            return perr(x->line, "the ks record has no '%s'", ks_names[j]);
    if (k->level > k->levels) return perr(x->line, "level= is above the chain's levels=%s", "");
    if (k->alpha > k->levels + 1)
        return perr(x->line, "alpha= is more than the chain's primes (levels + 1)%s", "");
    return TSR_OK;
}

static int cmp_ks(const void *a, const void *b) {
    const nn_profile_ks *x = a, *y = b;
    if (x->log_n != y->log_n) return x->log_n - y->log_n;
    if (x->levels != y->levels) return x->levels - y->levels;
    return x->level - y->level;
}

/* An array of n elements of size sz with room for one more (capacity *cap): v itself, or
 * a larger copy (v freed); NULL when out of memory (v kept). */
static void *grown(void *v, int n, int *cap, size_t sz) {
    if (n < *cap) return v;
    int nc = *cap ? 2 * *cap : 32;
    void *nv = tsr_calloc_array((size_t)nc, sz);
    if (!nv) return NULL;
    if (n) memcpy(nv, v, (size_t)n * sz);
    tsr_free(v);
    *cap = nc;
    return nv;
}

static int cmp_point(const void *a, const void *b) {
    const nn_profile_point *x = a, *y = b;
    if (x->log_n != y->log_n) return x->log_n - y->log_n;
    return x->levels - y->levels;
}

/* Copy the rest of the line (trimmed, printable ASCII only) into dst. */
static tsr_status rest_of_line(lexer *x, char *dst, size_t n, const char *what) {
    while (x->s < x->end && (*x->s == ' ' || *x->s == '\t')) x->s++;
    size_t k = 0;
    for (const char *q = x->s; q < x->end; q++) {
        if (*q < 0x20 || *q > 0x7e) return perr(x->line, "%s holds a non-printable byte", what);
        if (k + 1 >= n) return perr(x->line, "%s is too long", what);
        dst[k++] = *q;
    }
    while (k > 0 && dst[k - 1] == ' ') k--;
    dst[k] = 0;
    x->s = x->end;
    return TSR_OK;
}

/* ---- the key-switch model ----------------------------------------------------------- */

/* The model's terms at level l of a chain with alpha primes per digit and k special
 * primes: 1; digits x primes (the digits' NTTs and inner products with the key); primes
 * (ModDown's NTTs, the automorphism); the base conversions' products per coefficient (each
 * digit of s primes raised to the other P - s, ModDown's k special primes to the l + 1):
 * large when the digits are wide, as on the shallow chains at 2^15 and 2^16 (9-12 primes
 * per digit), which the first three terms priced up to 25 % low. */
static void ks_terms(int alpha, int special, int level, double x[NN_KS_TERMS]) {
    if (alpha < 1) alpha = 1;
    if (special < 0) special = 0;
    if (level < 0) level = 0;
    const int digits = (level + alpha) / alpha;
    const double primes = level + 1.0 + special;
    double conv = (double)special * (level + 1.0);
    for (int j = 0; j < digits; j++) {
        const int sz = level + 1 - j * alpha < alpha ? level + 1 - j * alpha : alpha;
        conv += sz * (primes - sz);
    }
    x[0] = 1.0;
    x[1] = digits * primes;
    x[2] = primes;
    x[3] = conv;
}

typedef struct ks_sample {
    double x[NN_KS_TERMS], t;
} ks_sample;

/* Least squares of the relative error over the terms in `mask`: 0 if singular. */
static int solve_subset(const ks_sample *sm, int n, unsigned mask, double c[NN_KS_TERMS],
                        double *err) {
    int idx[NN_KS_TERMS], m = 0;
    for (int j = 0; j < NN_KS_TERMS; j++)
        if (mask & (1u << j)) idx[m++] = j;
    double A[NN_KS_TERMS][NN_KS_TERMS + 1];
    memset(A, 0, sizeof A);
    for (int i = 0; i < n; i++) {
        const double w = 1.0 / (sm[i].t * sm[i].t);
        for (int r = 0; r < m; r++) {
            for (int q = 0; q < m; q++) A[r][q] += w * sm[i].x[idx[r]] * sm[i].x[idx[q]];
            A[r][m] += w * sm[i].x[idx[r]] * sm[i].t;
        }
    }
    double scale = 0;
    for (int r = 0; r < m; r++) scale = fmax(scale, fabs(A[r][r]));
    if (!(scale > 0) || !isfinite(scale)) return 0;
    for (int col = 0; col < m; col++) { /* Gauss-Jordan with partial pivoting */
        int piv = col;
        for (int r = col + 1; r < m; r++)
            if (fabs(A[r][col]) > fabs(A[piv][col])) piv = r;
        if (!(fabs(A[piv][col]) > 1e-12 * scale)) return 0;
        if (piv != col)
            for (int q = 0; q <= m; q++) {
                double tmp = A[col][q];
                A[col][q] = A[piv][q];
                A[piv][q] = tmp;
            }
        for (int r = 0; r < m; r++) {
            if (r == col) continue;
            const double f = A[r][col] / A[col][col];
            for (int q = col; q <= m; q++) A[r][q] -= f * A[col][q];
        }
    }
    memset(c, 0, NN_KS_TERMS * sizeof *c);
    for (int r = 0; r < m; r++) {
        const double v = A[r][m] / A[r][r];
        if (!isfinite(v) || v < 0) return 0; /* a negative cost per term: not a model */
        c[idx[r]] = v;
    }
    double e = 0;
    for (int i = 0; i < n; i++) {
        double y = 0;
        for (int j = 0; j < NN_KS_TERMS; j++) y += c[j] * sm[i].x[j];
        e += (y / sm[i].t - 1.0) * (y / sm[i].t - 1.0);
    }
    *err = e;
    return isfinite(e);
}

/* The best fit with coefficients >= 0: every subset of the terms (an exhaustive active set
 * search, 15 small solves). 0 if none (no sample). */
static int fit_op(const ks_sample *sm, int n, double c[NN_KS_TERMS]) {
    double best = INFINITY;
    for (unsigned mask = 1; mask < (1u << NN_KS_TERMS); mask++) {
        double cc[NN_KS_TERMS], e;
        if (solve_subset(sm, n, mask, cc, &e) && e < best) {
            best = e;
            memcpy(c, cc, sizeof cc);
        }
    }
    return isfinite(best);
}

/* Fit the key-switch model of every ring degree: to its ks records, or without any (a
 * version 2 profile) to its points' tops on the chains the profiler measures. Samples
 * timed at 0 s carry no relative error and are left out. TSR_ERR_NOMEM if the samples
 * cannot be allocated (not the old pricing: the same profile must price the same way
 * whatever the memory pressure). The caller's error detail is kept. */
static tsr_status fit_ks(nn_profile *p) {
    memset(p->has_fit, 0, sizeof p->has_fit);
    memset(p->fit, 0, sizeof p->fit);
    int cap = p->n + p->n_ks;
    ks_sample *sm = tsr_calloc_array((size_t)(cap > 0 ? cap : 1), sizeof *sm);
    if (!sm) return tsr_fail(TSR_ERR_NOMEM, "out of memory (fitting the key-switch costs)");
    char saved[1024]; /* the caller's error detail (tsr_last_error) */
    snprintf(saved, sizeof saved, "%s", tsr_last_error());
    tsr_nn_profile_opts o;
    tsr_nn_profile_opts_default(&o);
    o.ckks_flags = TSR_CKKS_ALLOW_INSECURE_PARAMETERS; /* the test rings below 2^13 */
    for (int ln = TSR_CKKS_MIN_LOG_N; ln <= TSR_CKKS_MAX_LOG_N; ln++) {
        int from_ks = 0;
        for (int i = 0; i < p->n_ks; i++) from_ks |= p->ks[i].log_n == ln;
        for (int op = 0; op < NN_KS_OPS; op++) {
            int n = 0;
            for (int i = 0; from_ks && i < p->n_ks; i++) {
                const nn_profile_ks *k = &p->ks[i];
                if (k->log_n != ln || !(k->t[op] > 0)) continue;
                ks_terms(k->alpha, k->special, k->level, sm[n].x);
                sm[n++].t = k->t[op];
            }
            for (int i = 0; !from_ks && i < p->n; i++) {
                const nn_profile_point *q = &p->pts[i];
                tsr_ckks_param_spec s;
                if (q->log_n != ln) continue;
                if (nn_profile_chain(&o, ln, q->levels, &s) != TSR_OK) continue;
                const double t = op == NN_KS_ROTATE        ? q->c.rotate
                                 : op == NN_KS_HOIST_EXTRA ? q->c.hoist_extra
                                                           : q->c.mul_ct;
                if (!(t > 0)) continue;
                const int alpha = (int)((s.levels + s.dnum) / s.dnum); /* ceil((L + 1) / dnum) */
                ks_terms(alpha, (int)s.special_primes, q->levels, sm[n].x);
                sm[n++].t = t;
            }
            if (n && fit_op(sm, n, p->fit[ln][op])) p->has_fit[ln] |= (uint8_t)(1u << op);
        }
    }
    /* chains that do not exist were skipped: put the caller's detail back (TSR_OK: only the
     * message is set) */
    tsr_fail(TSR_OK, "%s", saved);
    tsr_free(sm);
    return TSR_OK;
}

static tsr_status parse_body(const uint8_t *b, size_t len, nn_profile *p) {
    const char *s = (const char *)b, *end = s + len;
    int line = 0, seen_header = 0, cap = 0, ks_cap = 0;
    while (s < end) {
        const char *nl = memchr(s, '\n', (size_t)(end - s));
        const char *le = nl ? nl : end;
        line++;
        if (le - s > PROFILE_MAX_LINE)
            return perr(line, "the line is longer than %s bytes", "2048");
        if (memchr(s, 0, (size_t)(le - s))) return perr(line, "NUL byte in the line%s", "");
        lexer x = { s, le, line };
        if (le > s && le[-1] == '\r') x.end--;
        s = nl ? nl + 1 : end;
        char w[64];
        if (!next_word(&x, w, sizeof w) || w[0] == '#') continue;
        if (!seen_header) {
            int v;
            if (strcmp(w, "tessera-profile") != 0)
                return perr(line,
                            "not a Tessera cost profile (it must start with "
                            "'tessera-profile %s'; make one with `tessera profile`)",
                            "1");
            if (!next_word(&x, w, sizeof w) || !parse_int(w, 0, 1 << 30, &v))
                return perr(line, "the header has no version number%s", "");
            if (v < PROFILE_MIN_VERSION || v > PROFILE_VERSION)
                return tsr_fail(TSR_ERR_VERSION,
                                "cost profile version %d is not supported (this build reads "
                                "versions %d to %d); make a new one with `tessera profile`",
                                v, PROFILE_MIN_VERSION, PROFILE_VERSION);
            p->version = v;
            seen_header = 1;
        } else if (strcmp(w, "cpu") == 0) {
            TSR_TRY(rest_of_line(&x, p->cpu, sizeof p->cpu, "the cpu name"));
        } else if (strcmp(w, "simd") == 0) {
            TSR_TRY(rest_of_line(&x, p->simd, sizeof p->simd, "the simd name"));
        } else if (strcmp(w, "threads") == 0) {
            if (!next_word(&x, w, sizeof w) || !parse_int(w, 1, 4096, &p->threads))
                return perr(line, "bad thread count '%s' (1..4096)", w);
        } else if (strcmp(w, "point") == 0) {
            if (p->n == PROFILE_MAX_POINTS) return perr(line, "more than %s points", "1024");
            nn_profile_point *np = grown(p->pts, p->n, &cap, sizeof *p->pts);
            if (!np) return tsr_fail(TSR_ERR_NOMEM, "out of memory");
            p->pts = np;
            TSR_TRY(parse_point(&x, &p->pts[p->n]));
            p->n++;
        } else if (strcmp(w, "ks") == 0 && p->version >= 3) {
            if (p->n_ks == PROFILE_MAX_POINTS) return perr(line, "more than %s ks records", "1024");
            nn_profile_ks *nk = grown(p->ks, p->n_ks, &ks_cap, sizeof *p->ks);
            if (!nk) return tsr_fail(TSR_ERR_NOMEM, "out of memory");
            p->ks = nk;
            TSR_TRY(parse_ks(&x, &p->ks[p->n_ks]));
            p->n_ks++;
        } else {
            return perr(line,
                        "unknown record '%s' (expected cpu, simd, threads, point or, from "
                        "version 3, ks)",
                        w);
        }
        if (next_word(&x, w, sizeof w)) return perr(line, "unexpected '%s' at the end", w);
    }
    if (!seen_header) return perr(line, "empty file: no 'tessera-profile %s' header", "1");
    if (p->n == 0) return perr(line, "the profile has no measurements ('point' lines)%s", "");
    qsort(p->pts, (size_t)p->n, sizeof *p->pts, cmp_point);
    for (int i = 1; i < p->n; i++)
        if (cmp_point(&p->pts[i - 1], &p->pts[i]) == 0)
            return tsr_fail(TSR_ERR_FORMAT, "cost profile: two points for N = 2^%d with %d levels",
                            p->pts[i].log_n, p->pts[i].levels);
    if (p->n_ks) qsort(p->ks, (size_t)p->n_ks, sizeof *p->ks, cmp_ks);
    for (int i = 1; i < p->n_ks; i++)
        if (cmp_ks(&p->ks[i - 1], &p->ks[i]) == 0)
            return tsr_fail(TSR_ERR_FORMAT,
                            "cost profile: two ks records for level %d of N = 2^%d with %d levels",
                            p->ks[i].level, p->ks[i].log_n, p->ks[i].levels);
    return fit_ks(p);
}

tsr_status nn_profile_parse(const uint8_t *b, size_t len, nn_profile **out) {
    *out = NULL;
    if (len > PROFILE_MAX_BYTES)
        return tsr_fail(TSR_ERR_FORMAT, "cost profile of %zu bytes is larger than 1 MiB", len);
    nn_profile *p = tsr_calloc(sizeof *p);
    if (!p) return tsr_fail(TSR_ERR_NOMEM, "out of memory");
    p->threads = 1;
    tsr_status st = parse_body(b, len, p);
    if (st != TSR_OK) {
        nn_profile_free(p);
        return st;
    }
    *out = p;
    return TSR_OK;
}

tsr_status nn_profile_load(const char *path, nn_profile **out) {
    *out = NULL;
    if (!path) {
        tsr_status st =
            nn_profile_parse((const uint8_t *)nn_builtin_profile, strlen(nn_builtin_profile), out);
        if (st == TSR_OK) (*out)->builtin = 1;
        return st;
    }
    uint8_t *buf = NULL;
    size_t len = 0;
    TSR_TRY(tsr_read_whole_file(path, PROFILE_MAX_BYTES, "cost profile", &buf, &len));
    tsr_status st = nn_profile_parse(buf, len, out);
    tsr_free(buf);
    if (st != TSR_OK) return tsr_fail_context(st, "'%s': ", path);
    return TSR_OK;
}

/* ---- lookup ----------------------------------------------------------------------------- */

int nn_profile_has(const nn_profile *p, int log_n) {
    for (int i = 0; i < p->n; i++)
        if (p->pts[i].log_n == log_n) return 1;
    return 0;
}

void nn_profile_costs_at(const nn_profile *p, int log_n, double levels, nn_costs *out) {
    memset(out, 0, sizeof *out);
    int lo = -1, hi = -1;
    for (int i = 0; i < p->n; i++)
        if (p->pts[i].log_n == log_n) {
            if (lo < 0) lo = i;
            hi = i;
        }
    if (lo < 0) return;
    const nn_profile_point *a, *b;
    if (lo == hi || levels <= p->pts[lo].levels) {
        /* below (or only) the first point: proportional to the limbs */
        a = &p->pts[lo];
        double f = (levels + 1.0) / (a->levels + 1.0);
        if (lo != hi && f > 1) f = 1;
        for (size_t i = 0; i < NFIELDS; i++) *fp_of(out, i) = fget(&a->c, i) * f;
        return;
    }
    int k = lo;
    while (k + 1 < hi && p->pts[k + 1].levels < levels) k++;
    a = &p->pts[k];
    b = &p->pts[k + 1];
    double t = (levels - a->levels) / (double)(b->levels - a->levels);
    for (size_t i = 0; i < NFIELDS; i++) {
        double v = fget(&a->c, i) + t * (fget(&b->c, i) - fget(&a->c, i));
        *fp_of(out, i) = v > 0 ? v : 0;
    }
}

static double ks_model(const nn_profile *p, int log_n, int alpha, int special, int level, int op) {
    double x[NN_KS_TERMS], v = 0;
    ks_terms(alpha, special, level, x);
    for (int j = 0; j < NN_KS_TERMS; j++) v += p->fit[log_n][op][j] * x[j];
    return v;
}

double nn_ks_seconds(const nn_profile *p, int log_n, int alpha, int special, double level, int op) {
    if (!(level >= 0)) level = 0;
    if (level > 64) level = 64;
    if (op < 0 || op >= NN_KS_OPS) return 0;
    if (log_n < TSR_CKKS_MIN_LOG_N || log_n > TSR_CKKS_MAX_LOG_N ||
        !(p->has_fit[log_n] & (1u << op))) {
        nn_costs c; /* no model: the top of the level-deep chain, as before the model */
        nn_profile_costs_at(p, log_n, level, &c);
        return op == NN_KS_ROTATE ? c.rotate : op == NN_KS_HOIST_EXTRA ? c.hoist_extra : c.mul_ct;
    }
    const int l0 = (int)floor(level);
    const double f = level - l0;
    double v = ks_model(p, log_n, alpha, special, l0, op);
    if (f > 0) v += f * (ks_model(p, log_n, alpha, special, l0 + 1, op) - v);
    return isfinite(v) && v > 0 ? v : 0;
}

/* Seconds of `runs` calls of one operation. */
typedef struct mctx {
    tsr_backend *be;
    tsr_bvec *a, *b, *pt, *tmp;
    tsr_tile *tin;
    int op;
    int cpu_clock;        /* 1: time with the process's CPU clock (one thread) */
    double relin_rescale; /* measured mul_ct + rescale (for ops 12 and 13) */
} mctx;

/* The clock the operations are timed with: the process's CPU time when one thread does
 * all the work (preemption by other processes does not count), else wall time. */
static double op_clock(const mctx *m) {
    return m->cpu_clock ? tsr_cpu_now() : tsr_now();
}

static int cmp_d(const void *x, const void *y) {
    double a = *(const double *)x, b = *(const double *)y;
    return (a > b) - (a < b);
}

static tsr_status one(mctx *m, double *sec) {
    tsr_backend *be = m->be;
    tsr_status st = TSR_OK;
    tsr_bvec *t = NULL, *outs[4] = { 0 };
    double t0 = 0;
    switch (m->op) {
    case 0: /* add */
        st = tsr_bvec_copy(be, m->a, &t);
        t0 = op_clock(m);
        if (st == TSR_OK) st = tsr_bvec_add(be, t, m->b);
        break;
    case 1: /* mul_plain */
        t0 = op_clock(m);
        st = tsr_bvec_mul_new(be, m->a, m->pt, &t);
        break;
    case 2: /* mul_const */
        st = tsr_bvec_copy(be, m->a, &t);
        t0 = op_clock(m);
        if (st == TSR_OK) st = tsr_bvec_mul_const(be, t, 0.37, be->scales[m->a->level]);
        break;
    case 3: /* mul_ct (with relinearization) */
        t0 = op_clock(m);
        st = tsr_bvec_mul_new(be, m->a, m->b, &t);
        break;
    case 4: /* rescale */
        st = tsr_bvec_mul_new(be, m->a, m->pt, &t);
        t0 = op_clock(m);
        if (st == TSR_OK) st = tsr_bvec_rescale(be, t);
        break;
    case 5: /* rotate */
        t0 = op_clock(m);
        st = tsr_bvec_rotate(be, m->a, 1, &t);
        break;
    case 6: { /* 4 hoisted rotations */
        const int64_t steps[4] = { 1, 2, 3, 4 };
        t0 = op_clock(m);
        st = tsr_bvec_rotate_many(be, m->a, steps, 4, outs);
        break;
    }
    case 7: { /* encode */
        double *z = tsr_calloc_array((size_t)be->slots, sizeof *z);
        if (!z) return tsr_fail(TSR_ERR_NOMEM, "out of memory");
        for (int64_t i = 0; i < be->slots; i++) z[i] = 0.001 * (double)(i % 97);
        t0 = op_clock(m);
        st = tsr_bvec_encode(be, z, be->top_level, be->scales[be->top_level], &t);
        tsr_free(z);
        break;
    }
    case 8: { /* encrypt */
        double *z = tsr_calloc_array((size_t)be->slots, sizeof *z);
        if (!z) return tsr_fail(TSR_ERR_NOMEM, "out of memory");
        t0 = op_clock(m);
        st = tsr_bvec_encrypt(be, z, be->top_level, be->scales[be->top_level], &t);
        tsr_free(z);
        break;
    }
    case 9: { /* decrypt */
        double *z = tsr_alloc((size_t)be->slots * sizeof *z);
        if (!z) return tsr_fail(TSR_ERR_NOMEM, "out of memory");
        t0 = op_clock(m);
        st = tsr_bvec_decrypt(be, m->a, z);
        tsr_free(z);
        break;
    }
    case 10:   /* lincomb: n/2 outputs of n terms over n inputs; seconds per term */
    case 12: { /* sq_lincomb: the same sums over n squares; seconds per term, without the
                * outputs' relinearizations and rescales (counted as mul_ct and rescale) */
        int64_t n = m->tin->shape.dim[0].size, no = n / 2, nt = no * n;
        int64_t *rp = tsr_calloc_array((size_t)no + 1, sizeof *rp);
        int64_t *cols = tsr_calloc_array((size_t)nt, sizeof *cols);
        double *vals = tsr_calloc_array((size_t)nt, sizeof *vals);
        if (!rp || !cols || !vals) st = tsr_fail(TSR_ERR_NOMEM, "out of memory");
        for (int64_t j = 0; st == TSR_OK && j <= no; j++) rp[j] = n * j;
        for (int64_t k = 0; st == TSR_OK && k < nt; k++) {
            cols[k] = (k * 7) % n;
            vals[k] = 0.01 * (double)(k % 13) - 0.05;
        }
        tsr_tile_shape os = m->tin->shape;
        os.dim[0].size = no;
        tsr_tile *r = NULL;
        t0 = op_clock(m);
        if (st == TSR_OK && m->op == 10) {
            st = tsr_tile_lincomb(m->tin, &os, rp, cols, vals, NULL, &r);
            *sec = (op_clock(m) - t0) / (double)nt;
        } else if (st == TSR_OK) {
            st = tsr_tile_sq_lincomb(m->tin, &os, rp, cols, vals, NULL, &r);
            *sec = (op_clock(m) - t0 - (double)no * m->relin_rescale) / (double)nt;
        }
        tsr_tile_free(r);
        tsr_free(rp);
        tsr_free(cols);
        tsr_free(vals);
        return st;
    }
    case 13: { /* prod_lincomb: n/2 outputs of n products of two inputs; seconds per term,
                * without the outputs' relinearizations and rescales */
        int64_t n = m->tin->shape.dim[0].size, no = n / 2, nt = no * n;
        int64_t *rp = tsr_calloc_array((size_t)no + 1, sizeof *rp);
        int64_t *ia = tsr_calloc_array((size_t)nt, sizeof *ia);
        int64_t *ib = tsr_calloc_array((size_t)nt, sizeof *ib);
        double *vals = tsr_calloc_array((size_t)nt, sizeof *vals);
        if (!rp || !ia || !ib || !vals) st = tsr_fail(TSR_ERR_NOMEM, "out of memory");
        for (int64_t j = 0; st == TSR_OK && j <= no; j++) rp[j] = n * j;
        for (int64_t k = 0; st == TSR_OK && k < nt; k++) {
            ia[k] = k % n;
            ib[k] = (k * 7 + 3) % n;
            vals[k] = 0.01 * (double)(k % 13) - 0.05;
        }
        tsr_tile_shape os = m->tin->shape;
        os.dim[0].size = no;
        tsr_tile *r = NULL;
        t0 = op_clock(m);
        if (st == TSR_OK)
            st = tsr_tile_prod_lincomb(m->tin, m->tin, &os, rp, ia, ib, vals, NULL, &r);
        *sec = (op_clock(m) - t0 - (double)no * m->relin_rescale) / (double)nt;
        tsr_tile_free(r);
        tsr_free(rp);
        tsr_free(ia);
        tsr_free(ib);
        tsr_free(vals);
        return st;
    }
    case 11: /* copy */
        t0 = op_clock(m);
        st = tsr_bvec_copy(be, m->a, &t);
        break;
    default:
        return tsr_fail(TSR_ERR_INTERNAL, "cost op %d", m->op);
    }
    *sec = op_clock(m) - t0;
    tsr_bvec_free(be, t);
    for (int i = 0; i < 4; i++) tsr_bvec_free(be, outs[i]);
    return st;
}

/* The lower quartile of `runs` timings: robust to the preemptions of a busy machine, which
 * only ever add time, without trusting the single luckiest run. */
static tsr_status quartile(mctx *m, int runs, double *out) {
    double v[16];
    if (runs > 16) runs = 16;
    for (int i = 0; i < runs; i++) TSR_TRY(one(m, &v[i]));
    qsort(v, (size_t)runs, sizeof v[0], cmp_d);
    *out = v[runs / 4];
    return TSR_OK;
}

/* The levels the key switches are timed at below a chain's top (besides the top): the
 * middle and 0, where a plan's last rotate-and-sums run. */
static int ks_levels(int L, int lv[3]) {
    int n = 0;
    lv[n++] = L;
    if (L / 2 > 0 && L / 2 < L) lv[n++] = L / 2;
    lv[n++] = 0;
    return n;
}

static tsr_status measure(tsr_ckks_params *params, nn_costs *c, nn_profile_ks *ks, int *nks) {
    memset(c, 0, sizeof *c);
    tsr_ckks_secret_key *sk = NULL;
    tsr_ckks_relin_key *rk = NULL;
    tsr_ckks_galois_keys *gk = NULL;
    tsr_backend *be = NULL;
    mctx m;
    memset(&m, 0, sizeof m);
    const int steps[4] = { 1, 2, 3, 4 };
    tsr_status st = tsr_ckks_secret_key_create(&sk, params);
    if (st == TSR_OK) st = tsr_ckks_relin_key_create(&rk, sk);
    if (st == TSR_OK) st = tsr_ckks_galois_keys_create(&gk, sk, steps, 4, 0);
    if (st == TSR_OK) st = tsr_backend_ckks_create(params, NULL, sk, rk, gk, &be);
    m.be = be;
    m.cpu_clock = tsr_get_num_threads() == 1;
    int L = tsr_ckks_params_max_level(params);
    double *vals = NULL;
    if (st == TSR_OK) {
        vals = tsr_alloc((size_t)be->slots * sizeof *vals);
        if (!vals) st = tsr_fail(TSR_ERR_NOMEM, "out of memory");
        for (int64_t i = 0; st == TSR_OK && i < be->slots; i++) vals[i] = 0.5 * sin((double)i);
    }
    if (st == TSR_OK) st = tsr_bvec_encrypt(be, vals, L, be->scales[L], &m.a);
    if (st == TSR_OK) st = tsr_bvec_encrypt(be, vals, L, be->scales[L], &m.b);
    if (st == TSR_OK) st = tsr_bvec_encode(be, vals, L, be->scales[L], &m.pt);
    if (st == TSR_OK) {
        tsr_tile_shape s;
        memset(&s, 0, sizeof s);
        s.ndims = 2;
        /* The sums are timed over as many inputs as 512 MiB hold (16..64): large layers
         * amortize the per-output work that a small sum would overstate. */
        double ct_bytes = 2.0 * (L + 1) * 16.0 * (double)be->slots;
        int64_t nin = (int64_t)((512.0 * 1048576.0) / ct_bytes);
        nin = nin < 16 ? 16 : nin > 64 ? 64 : nin;
        s.dim[0] = (tsr_tile_dim){ .size = nin, .tile = 1 };
        s.dim[1] = (tsr_tile_dim){ .size = be->slots, .tile = be->slots };
        st = tsr_tile_encrypt(be, &s, NULL, L, 0, &m.tin);
    }
    tsr_free(vals);
    double *dst[14] = {
        &c->add,          &c->mul_plain,   &c->mul_const,       &c->mul_ct,           &c->rescale,
        &c->rotate,       &c->hoist_extra, &c->encode,          &c->encrypt,          &c->decrypt,
        &c->lincomb_term, &c->copy,        &c->sq_lincomb_term, &c->prod_lincomb_term
    };
    for (int op = 0; op < 14 && st == TSR_OK; op++) {
        if (op >= 12 && L < 2) break; /* square- and product-sums need two levels: floors below */
        m.op = op;
        m.relin_rescale = c->mul_ct + c->rescale;
        st = quartile(&m, op >= 10 ? 5 : 8, dst[op]);
    }
    /* never below a plain term (noise; and chains of one level, which cannot square-and-sum) */
    if (st == TSR_OK && c->sq_lincomb_term < c->lincomb_term) c->sq_lincomb_term = c->lincomb_term;
    /* a chain of one level cannot run a product-sum: the estimate profiles without the key get */
    if (st == TSR_OK && L < 2) c->prod_lincomb_term = 2 * c->mul_plain + c->lincomb_term;
    if (st == TSR_OK && c->prod_lincomb_term < c->lincomb_term)
        c->prod_lincomb_term = c->lincomb_term;
    if (st == TSR_OK) /* what each rotation of a hoisted group costs beyond the first */
        c->hoist_extra = fmax(0.0, (c->hoist_extra - c->rotate) / 3.0);
    /* The key switches again below the top: the same keys, fresh ciphertexts at level l. */
    int lv[3], nlv = ks_levels(L, lv);
    *nks = 0;
    for (int i = 0; i < nlv && st == TSR_OK; i++) {
        nn_profile_ks *k = &ks[(*nks)++];
        memset(k, 0, sizeof *k);
        k->level = lv[i];
        if (lv[i] == L) {
            k->t[NN_KS_ROTATE] = c->rotate;
            k->t[NN_KS_HOIST_EXTRA] = c->hoist_extra;
            k->t[NN_KS_MUL_CT] = c->mul_ct;
            continue;
        }
        tsr_bvec_free(be, m.a);
        tsr_bvec_free(be, m.b);
        m.a = m.b = NULL;
        double *z = tsr_calloc_array((size_t)be->slots, sizeof *z);
        if (!z) st = tsr_fail(TSR_ERR_NOMEM, "out of memory");
        for (int64_t j = 0; st == TSR_OK && j < be->slots; j++) z[j] = 0.5 * cos((double)j);
        /* at level 0 a scale whose square fits q_0, so the product (no plan relinearizes at
         * level 0, but the model takes every level) is not refused */
        const double sc = lv[i] ? be->scales[lv[i]] : exp2(floor(0.5 * be->log2_q[0]) - 2.0);
        if (st == TSR_OK) st = tsr_bvec_encrypt(be, z, lv[i], sc, &m.a);
        if (st == TSR_OK) st = tsr_bvec_encrypt(be, z, lv[i], sc, &m.b);
        tsr_free(z);
        const int ops[NN_KS_OPS] = { 5, 6, 3 }; /* rotate, 4 hoisted rotations, mul_ct */
        for (int j = 0; j < NN_KS_OPS && st == TSR_OK; j++) {
            m.op = ops[j];
            st = quartile(&m, 8, &k->t[j]);
        }
        k->t[NN_KS_HOIST_EXTRA] = fmax(0.0, (k->t[NN_KS_HOIST_EXTRA] - k->t[NN_KS_ROTATE]) / 3.0);
    }
    tsr_bvec_free(be, m.a);
    tsr_bvec_free(be, m.b);
    tsr_bvec_free(be, m.pt);
    tsr_tile_free(m.tin);
    tsr_backend_free(be);
    tsr_ckks_galois_keys_free(gk);
    tsr_ckks_relin_key_free(rk);
    tsr_ckks_secret_key_free(sk);
    return st;
}

/* ---- measuring a profile ------------------------------------------------------------- */

void tsr_nn_profile_opts_default(tsr_nn_profile_opts *o) {
    memset(o, 0, sizeof *o);
    o->min_log_n = 13;
    o->max_log_n = 16;
}

tsr_status nn_profile_chain(const tsr_nn_profile_opts *o, int log_n, int levels,
                            tsr_ckks_param_spec *s) {
    /* The insecure flag only opens the rings below 2^13: from 2^13 on the chain is the
     * 128-bit one, with its digits (dnum) and special primes, whatever the flag says. */
    uint32_t flags = log_n < 13 ? (o->ckks_flags & TSR_CKKS_ALLOW_INSECURE_PARAMETERS) : 0;
    return nn_choose_params((unsigned)log_n, levels, NN_DEFAULT_OUTPUT_BITS, 0, flags, s);
}

/* The level counts measured for one ring degree: 1, the quarters and the deepest chain. */
static int grid_levels(int log_n, const tsr_nn_profile_opts *o, int *lv) {
    int lmax = 0;
    tsr_ckks_param_spec s;
    /* 128-bit chains from 2^13 on; below, test-only chains of up to 16 levels */
    int cap = log_n < 13 ? 16 : 40;
    for (int L = cap; L >= 1 && !lmax; L--)
        if (nn_profile_chain(o, log_n, L, &s) == TSR_OK) lmax = L;
    tsr_clear_error();
    if (!lmax) return 0;
    int n = 0;
    const int cand[5] = { 1, lmax / 4, lmax / 2, (3 * lmax) / 4, lmax };
    for (int i = 0; i < 5; i++) {
        if (o->quick && i > 0 && i < 4) continue;
        if (cand[i] < 1 || (n && cand[i] <= lv[n - 1])) continue;
        lv[n++] = cand[i];
    }
    return n;
}

static void write_point(FILE *fp, int log_n, int levels, const nn_costs *c) {
    fprintf(fp, "point log_n=%d levels=%d", log_n, levels);
    for (size_t i = 0; i < NFIELDS; i++) fprintf(fp, " %s=%.6g", fields[i].name, fget(c, i));
    fprintf(fp, "\n");
}

static void write_ks(FILE *fp, const nn_profile_ks *k) {
    fprintf(fp, "ks log_n=%d levels=%d level=%d alpha=%d special=%d", k->log_n, k->levels, k->level,
            k->alpha, k->special);
    for (int j = 0; j < NN_KS_OPS; j++) fprintf(fp, " %s=%.6g", ks_names[j], k->t[j]);
    fprintf(fp, "\n");
}

/* The first processor's model name and, after it, its family ("AMD EPYC (family 26)"):
 * virtual machines often show only the vendor's brand, the same for every generation. */
static void cpu_name(char *buf, size_t n) {
    snprintf(buf, n, "unknown");
    FILE *fp = fopen("/proc/cpuinfo", "r");
    if (!fp) return;
    char line[512];
    int family = -1, named = 0;
    while ((!named || family < 0) && fgets(line, sizeof line, fp)) {
        const char *c = strchr(line, ':');
        if (!c) continue;
        c++;
        while (*c == ' ' || *c == '\t') c++;
        if (family < 0 && strncmp(line, "cpu family", 10) == 0) {
            family = atoi(c);
        } else if (!named && strncmp(line, "model name", 10) == 0) {
            size_t k = 0;
            for (; *c && *c != '\n' && k + 1 < n && k < 96; c++)
                if (*c >= 0x20 && *c <= 0x7e) buf[k++] = *c;
            buf[k] = 0;
            named = 1;
        }
    }
    fclose(fp);
    size_t k = strlen(buf);
    if (named && family >= 0 && k + 16 < n) snprintf(buf + k, n - k, " (family %d)", family);
}

tsr_status tsr_nn_profile_measure(const tsr_nn_profile_opts *o, const char *path) {
    tsr_nn_profile_opts def;
    if (!o) {
        tsr_nn_profile_opts_default(&def);
        o = &def;
    }
    if (!path) return tsr_fail(TSR_ERR_INVALID_ARG, "no output path for the cost profile");
    int lo = o->min_log_n, hi = o->max_log_n;
    int floor_n =
        (o->ckks_flags & TSR_CKKS_ALLOW_INSECURE_PARAMETERS) ? TSR_CKKS_MIN_LOG_N + 1 : 13;
    if (lo < floor_n || hi > TSR_CKKS_MAX_LOG_N || lo > hi)
        return tsr_fail(TSR_ERR_INVALID_ARG,
                        "ring degrees 2^%d..2^%d: profiles cover 2^%d..2^%d (below 2^13 only "
                        "with the insecure test flag)",
                        lo, hi, floor_n, TSR_CKKS_MAX_LOG_N);
    int lv[17][5], nlv[17], total = 0;
    for (int ln = lo; ln <= hi; ln++) total += nlv[ln] = grid_levels(ln, o, lv[ln]);
    if (total == 0)
        return tsr_fail(TSR_ERR_UNSUPPORTED, "no CKKS chain exists for N = 2^%d..2^%d", lo, hi);
    char *text = NULL;
    size_t text_len = 0;
    FILE *mem = open_memstream(&text, &text_len);
    if (!mem) return tsr_fail(TSR_ERR_NOMEM, "out of memory");
    char cpu[128];
    cpu_name(cpu, sizeof cpu);
    const int threads = tsr_get_num_threads();
    fprintf(mem,
            "tessera-profile %d\n"
            "# seconds per HE operation at the top of each chain (lower quartile of 5-8 runs),\n"
            "# and of the key switches at levels below it (ks: the chain's primes per digit\n"
            "# and special primes); by `tessera profile`, for `tessera compile --profile FILE`\n"
            "# %s\n"
            "cpu %s\nsimd %s\nthreads %d\n",
            PROFILE_VERSION,
            threads == 1 ? "CPU time of the process (one thread)" : "wall time (several threads)",
            cpu, tsr_simd_name(tsr_simd_active()), threads);
    tsr_progress pr;
    tsr_progress_begin(&pr, "profiling HE operations", (uint64_t)total, "chain");
    tsr_status st = TSR_OK;
    int done = 0;
    for (int ln = lo; ln <= hi && st == TSR_OK; ln++)
        for (int i = 0; i < nlv[ln] && st == TSR_OK; i++) {
            tsr_ckks_param_spec s;
            st = nn_profile_chain(o, ln, lv[ln][i], &s);
            tsr_ckks_params *par = NULL;
            if (st == TSR_OK) st = tsr_ckks_params_create(&par, &s);
            nn_costs c;
            nn_profile_ks ks[3];
            int nks = 0;
            if (st == TSR_OK) st = measure(par, &c, ks, &nks);
            tsr_ckks_params_free(par);
            if (st != TSR_OK) break;
            write_point(mem, ln, lv[ln][i], &c);
            for (int j = 0; j < nks; j++) {
                ks[j].log_n = ln;
                ks[j].levels = lv[ln][i];
                ks[j].alpha = (int)((s.levels + s.dnum) / s.dnum); /* ceil((L + 1) / dnum) */
                ks[j].special = (int)s.special_primes;
                write_ks(mem, &ks[j]);
            }
            if (o->log) {
                fprintf(o->log,
                        "N = 2^%d, %2d levels: rotate %.3g ms (%.3g at level 0), mul_ct %.3g ms, "
                        "mul_plain %.3g ms, lincomb term %.3g ms\n",
                        ln, lv[ln][i], 1e3 * c.rotate, 1e3 * ks[nks - 1].t[NN_KS_ROTATE],
                        1e3 * c.mul_ct, 1e3 * c.mul_plain, 1e3 * c.lincomb_term);
                fflush(o->log);
            }
            tsr_progress_update(&pr, (uint64_t)++done, NULL);
        }
    tsr_progress_end(&pr, NULL);
    if (fclose(mem) != 0 && st == TSR_OK) st = tsr_fail(TSR_ERR_NOMEM, "out of memory");
    if (st == TSR_OK) {
        /* What we write must read back. */
        nn_profile *chk = NULL;
        st = nn_profile_parse((const uint8_t *)text, text_len, &chk);
        nn_profile_free(chk);
    }
    if (st == TSR_OK) {
        tsr_writer w;
        st = tsr_writer_open_file(&w, path, 0);
        if (st == TSR_OK) {
            tsr_write_bytes(&w, text, text_len);
            st = tsr_writer_close(&w);
        }
        if (st != TSR_OK) st = tsr_fail_context(st, "writing the cost profile '%s': ", path);
    }
    free(text);
    return st;
}

/* ---- predictions ------------------------------------------------------------------------ */

/* The level a step's rotations run at: a dense layer's rotate-and-sum (tsr_tile_mul_sum_dims)
 * and a clear+dup's duplication come after the step's rescale, at its output level; a
 * convolution's hoisted groups rotate the input, at its input level (its rotate-and-sum over
 * channel tiles, after the rescale, is priced with them); others at the mean level. */
static double rotation_level(const nn_step *s) {
    switch (s->op) {
    case NN_OP_DENSE:
    case NN_OP_CLEAR_DUP:
        return s->level_out;
    case NN_OP_CONV:
    case NN_OP_POOL:
    case NN_OP_REORIENT:
        return s->level_in;
    default:
        return 0.5 * (s->level_in + s->level_out);
    }
}

/* The level a step's relinearizations run at: a product relinearizes before its rescale, at
 * the input level; a polynomial's products run at every level from its input down to one
 * above its output. */
static double relin_level(const nn_step *s) {
    switch (s->op) {
    case NN_OP_SQUARE:
    case NN_OP_SQMUL:
    case NN_OP_MUL:
    case NN_OP_SQ_LINEAR:
    case NN_OP_CONTRACT:
        return s->level_in;
    case NN_OP_POLY:
        return s->level_in > s->level_out ? 0.5 * (s->level_in + s->level_out + 1) : s->level_in;
    default:
        return 0.5 * (s->level_in + s->level_out);
    }
}

double nn_step_seconds(const nn_profile *prof, const tsr_ckks_param_spec *spec, const nn_step *s) {
    const int log_n = (int)spec->log_n;
    const int dnum = spec->dnum ? (int)spec->dnum : 1;
    const int alpha = ((int)spec->levels + dnum) / dnum, special = (int)spec->special_primes;
    nn_costs c;
    nn_profile_costs_at(prof, log_n, 0.5 * (s->level_in + s->level_out), &c);
    /* key switches: on the plan's own chain, at the level they run at */
    const double rl = rotation_level(s);
    c.rotate = nn_ks_seconds(prof, log_n, alpha, special, rl, NN_KS_ROTATE);
    c.hoist_extra = nn_ks_seconds(prof, log_n, alpha, special, rl, NN_KS_HOIST_EXTRA);
    c.mul_ct = nn_ks_seconds(prof, log_n, alpha, special, relin_level(s), NN_KS_MUL_CT);
    const tsr_backend_counts *k = &s->counts;
    double t = 0;
    double rot = (double)k->rotations * c.rotate;
    if ((s->op == NN_OP_CONV || s->op == NN_OP_POOL || s->op == NN_OP_REORIENT) && k->hoisted &&
        k->rotations >= k->hoisted)
        rot = (double)k->hoisted * c.rotate + (double)(k->rotations - k->hoisted) * c.hoist_extra;
    t += rot;
    t += (double)k->mul_ct * c.mul_ct;
    if (s->op == NN_OP_CONTRACT) {
        /* one measured term per product (counted as a mul_const and two mul_plain), the step's
         * other constant terms as lincomb terms, the outputs' relinearizations and rescales as
         * mul_ct and rescale. With the default prod_lincomb_term (2 mul_plain + lincomb_term)
         * this is exactly the price before it was measured. */
        const uint64_t products = k->mul_plain / 2;
        const uint64_t others = k->mul_const > products ? k->mul_const - products : 0;
        t += (double)products * c.prod_lincomb_term + (double)others * c.lincomb_term;
    } else if (s->op == NN_OP_LINEAR) {
        t += (double)k->mul_plain * c.mul_plain;
        t += (double)k->mul_const * c.lincomb_term;
    } else if (s->op == NN_OP_SQ_LINEAR) {
        /* squares and their sums (measured as such), one relinearization per output */
        t += (double)k->mul_plain * c.mul_plain;
        t += (double)k->mul_const * c.sq_lincomb_term;
    } else {
        t += (double)k->mul_plain * c.mul_plain;
        t += (double)k->mul_const * c.mul_const;
        t += (double)k->add * c.add;
    }
    t += (double)k->rescale * c.rescale;
    t += (double)k->encode * c.encode;
    t += (double)k->drop_level * c.copy;
    return t;
}

double nn_client_seconds(const nn_profile *prof, const tsr_ckks_param_spec *spec,
                         const nn_program *p) {
    nn_costs c;
    nn_profile_costs_at(prof, (int)spec->log_n, spec->levels, &c);
    int64_t in_tiles = tsr_tile_shape_num_tiles(&p->values[0].shape);
    int64_t out_tiles = tsr_tile_shape_num_tiles(&p->values[p->output].shape);
    return (double)in_tiles * c.encrypt + (double)out_tiles * c.decrypt;
}

double nn_program_bytes(const tsr_ckks_param_spec *spec, const nn_program *p) {
    double n = (double)((uint64_t)1 << spec->log_n), L1 = spec->levels + 1.0;
    double limb = n * 8.0;
    /* the caller's copy of the encrypted input (tsr_nn_run copies it onto the runner) */
    double in_limbs = (double)tsr_tile_shape_num_tiles(&p->values[0].shape) * 2.0 * L1;
    double key_bytes = 2.0 * spec->dnum * (L1 + spec->special_primes) * limb;
    double v = ((double)p->peak_limbs + (double)p->plain_limbs + in_limbs) * limb;
    v += (double)(p->n_rot + (p->needs_relin ? 1 : 0)) * key_bytes;
    return v + NN_BASE_MEMORY_MIB * 1048576.0;
}
