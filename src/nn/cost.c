/*
 * nn/cost.c - the optimizer's cost model: seconds per HE operation, from a
 * *profile* (HELayers profiles a machine the same way), and the memory of
 * a program.
 *
 * A profile holds, for a grid of CKKS chains (ring degree 2^log_n and a
 * number of levels), the time of each HE operation at the top of the chain
 * (the lower quartile of 5-8 runs), measured through the ckks backend
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
 *   tessera-profile 2
 *   cpu <free text>          simd <name>          threads <n>
 *   point log_n=<n> levels=<L> add=<s> mul_plain=<s> ... prod_lincomb_term=<s>
 * '#' starts a comment line. Every key of a point is required exactly
 * once, except prod_lincomb_term (profiles made before it was measured:
 * then 2 mul_plain + lincomb_term); unknown keys or records, bad numbers, duplicate points and
 * overlong lines are errors with their line number (fuzz/fuzz_nn_profile.c).
 *
 * The cost of an operation at level l of a chain with 2^log_n slots is the
 * profile's value interpolated linearly in the number of levels between
 * the two nearest points of that ring degree (extrapolated from the
 * nearest two beyond them, proportionally to the limbs below the first).
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

#define PROFILE_VERSION    2
#define PROFILE_MAX_BYTES  (1u << 20)
#define PROFILE_MAX_LINE   2048
#define PROFILE_MAX_POINTS 1024
#define COST_MAX_SECONDS   1e4

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
    tsr_free(p);
}

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

static tsr_status parse_body(const uint8_t *b, size_t len, nn_profile *p) {
    const char *s = (const char *)b, *end = s + len;
    int line = 0, seen_header = 0, cap = 0;
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
            if (v != PROFILE_VERSION)
                return tsr_fail(TSR_ERR_VERSION,
                                "cost profile version %d is not supported (this build reads "
                                "version %d); make a new one with `tessera profile`",
                                v, PROFILE_VERSION);
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
            if (p->n == cap) {
                int nc = cap ? 2 * cap : 32;
                nn_profile_point *np = tsr_calloc_array((size_t)nc, sizeof *np);
                if (!np) return tsr_fail(TSR_ERR_NOMEM, "out of memory");
                if (p->n) memcpy(np, p->pts, (size_t)p->n * sizeof *np);
                tsr_free(p->pts);
                p->pts = np;
                cap = nc;
            }
            TSR_TRY(parse_point(&x, &p->pts[p->n]));
            p->n++;
        } else {
            return perr(line, "unknown record '%s' (expected cpu, simd, threads or point)", w);
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
    return TSR_OK;
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

static tsr_status measure(tsr_ckks_params *params, nn_costs *c) {
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
            "# measured by `tessera profile`; use with `tessera compile --profile FILE`\n"
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
            if (st == TSR_OK) st = measure(par, &c);
            tsr_ckks_params_free(par);
            if (st != TSR_OK) break;
            write_point(mem, ln, lv[ln][i], &c);
            if (o->log) {
                fprintf(o->log,
                        "N = 2^%d, %2d levels: rotate %.3g ms, mul_ct %.3g ms, "
                        "mul_plain %.3g ms, lincomb term %.3g ms\n",
                        ln, lv[ln][i], 1e3 * c.rotate, 1e3 * c.mul_ct, 1e3 * c.mul_plain,
                        1e3 * c.lincomb_term);
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

double nn_step_seconds(const nn_profile *prof, int log_n, const nn_step *s) {
    nn_costs c;
    nn_profile_costs_at(prof, log_n, 0.5 * (s->level_in + s->level_out), &c);
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
