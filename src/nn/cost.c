/*
 * nn/cost.c - the optimizer's cost model: seconds per HE operation for one
 * CKKS parameter set, measured on this machine through the ckks backend
 * (so backend overheads are included) with the current thread count, and
 * cached; a step's predicted time is its operation counts (from the
 * shape-only dry run) times these costs, scaled by the number of limbs at
 * the step's level.
 *
 * Cache: one line per (cost-model version, parameters, SIMD family,
 * threads) in $XDG_CACHE_HOME/tessera/costs.txt (~/.cache/tessera/costs.txt),
 * or the file given with --costs. Lines are
 *   v<version> v<version> <fingerprint hex> <simd> <threads> add=<s> mul_plain=<s> ... ct_bytes=<b>
 * Unknown keys are ignored; malformed lines are skipped.
 */
#include "nn/nn_internal.h"

#include "core/alloc.h"
#include "core/error.h"
#include "core/progress.h"
#include "tile/tile_internal.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

typedef struct field {
    const char *name;
    size_t off;
} field;

#define F(x) \
    { #x, offsetof(nn_costs, x) }
static const field fields[] = {
    F(add),    F(mul_plain), F(mul_const), F(mul_ct),       F(rescale), F(rotate),   F(hoist_extra),
    F(encode), F(encrypt),   F(decrypt),   F(lincomb_term), F(copy),    F(ct_bytes), F(key_bytes),
};
#undef F
#define NFIELDS (sizeof fields / sizeof fields[0])

static double *fp_of(nn_costs *c, size_t i) {
    return (double *)((char *)c + fields[i].off);
}

static void hex(const uint8_t *b, size_t n, char *out) {
    for (size_t i = 0; i < n; i++) snprintf(out + 2 * i, 3, "%02x", b[i]);
}

static void default_cache(char *buf, size_t n) {
    const char *x = getenv("XDG_CACHE_HOME"), *h = getenv("HOME");
    if (x && x[0])
        snprintf(buf, n, "%s/tessera/costs.txt", x);
    else if (h && h[0])
        snprintf(buf, n, "%s/.cache/tessera/costs.txt", h);
    else
        snprintf(buf, n, "/tmp/tessera-costs.txt");
}

/* Bump when the implementation of a measured operation changes: old lines are ignored. */
#define COST_VERSION 2

static int key_of(const tsr_ckks_params *params, char *key, size_t n) {
    uint8_t fp[16];
    tsr_ckks_params_fingerprint(params, fp);
    char h[33];
    hex(fp, 16, h);
    return snprintf(key, n, "v%d %s %s %d", COST_VERSION, h, tsr_simd_name(tsr_simd_active()),
                    tsr_get_num_threads());
}

/* Look for key in path; 1 if found and parsed. */
static int cache_lookup(const char *path, const char *key, nn_costs *c) {
    FILE *fp = fopen(path, "r");
    if (!fp) return 0;
    char line[2048];
    size_t kl = strlen(key);
    int found = 0;
    while (fgets(line, sizeof line, fp)) {
        if (strncmp(line, key, kl) != 0 || line[kl] != ' ') continue;
        nn_costs t;
        memset(&t, 0, sizeof t);
        int ok = 1;
        for (size_t i = 0; i < NFIELDS && ok; i++) {
            char pat[40];
            snprintf(pat, sizeof pat, " %s=", fields[i].name);
            const char *q = strstr(line + kl, pat);
            if (!q) {
                ok = 0;
                break;
            }
            char *end;
            double v = strtod(q + strlen(pat), &end);
            if (end == q + strlen(pat) || !(v >= 0) || !isfinite(v) || v > 1e13) ok = 0;
            *fp_of(&t, i) = v;
        }
        if (ok) {
            *c = t;
            found = 1;
        }
    }
    fclose(fp);
    return found;
}

static void cache_store(const char *path, const char *key, const nn_costs *c) {
    char dir[1024];
    snprintf(dir, sizeof dir, "%s", path);
    for (char *s = dir + 1; *s; s++)
        if (*s == '/') {
            *s = 0;
            (void)mkdir(dir, 0700);
            *s = '/';
        }
    FILE *fp = fopen(path, "a");
    if (!fp) return; /* a cache is optional */
    fprintf(fp, "%s", key);
    for (size_t i = 0; i < NFIELDS; i++)
        fprintf(fp, " %s=%.6g", fields[i].name, *fp_of((nn_costs *)c, i));
    fprintf(fp, "\n");
    fclose(fp);
}

/* Median seconds of `runs` calls of one operation. */
typedef struct mctx {
    tsr_backend *be;
    tsr_bvec *a, *b, *pt, *tmp;
    tsr_tile *tin;
    int op;
} mctx;

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
        t0 = tsr_now();
        if (st == TSR_OK) st = tsr_bvec_add(be, t, m->b);
        break;
    case 1: /* mul_plain */
        t0 = tsr_now();
        st = tsr_bvec_mul_new(be, m->a, m->pt, &t);
        break;
    case 2: /* mul_const */
        st = tsr_bvec_copy(be, m->a, &t);
        t0 = tsr_now();
        if (st == TSR_OK) st = tsr_bvec_mul_const(be, t, 0.37, be->scales[m->a->level]);
        break;
    case 3: /* mul_ct (with relinearization) */
        t0 = tsr_now();
        st = tsr_bvec_mul_new(be, m->a, m->b, &t);
        break;
    case 4: /* rescale */
        st = tsr_bvec_mul_new(be, m->a, m->pt, &t);
        t0 = tsr_now();
        if (st == TSR_OK) st = tsr_bvec_rescale(be, t);
        break;
    case 5: /* rotate */
        t0 = tsr_now();
        st = tsr_bvec_rotate(be, m->a, 1, &t);
        break;
    case 6: { /* 4 hoisted rotations */
        const int64_t steps[4] = { 1, 2, 3, 4 };
        t0 = tsr_now();
        st = tsr_bvec_rotate_many(be, m->a, steps, 4, outs);
        break;
    }
    case 7: { /* encode */
        double *z = tsr_calloc_array((size_t)be->slots, sizeof *z);
        if (!z) return tsr_fail(TSR_ERR_NOMEM, "out of memory");
        for (int64_t i = 0; i < be->slots; i++) z[i] = 0.001 * (double)(i % 97);
        t0 = tsr_now();
        st = tsr_bvec_encode(be, z, be->top_level, be->scales[be->top_level], &t);
        tsr_free(z);
        break;
    }
    case 8: { /* encrypt */
        double *z = tsr_calloc_array((size_t)be->slots, sizeof *z);
        if (!z) return tsr_fail(TSR_ERR_NOMEM, "out of memory");
        t0 = tsr_now();
        st = tsr_bvec_encrypt(be, z, be->top_level, be->scales[be->top_level], &t);
        tsr_free(z);
        break;
    }
    case 9: { /* decrypt */
        double *z = tsr_alloc((size_t)be->slots * sizeof *z);
        if (!z) return tsr_fail(TSR_ERR_NOMEM, "out of memory");
        t0 = tsr_now();
        st = tsr_bvec_decrypt(be, m->a, z);
        tsr_free(z);
        break;
    }
    case 10: { /* lincomb: 8 outputs of 16 terms each; seconds per term */
        int64_t rp[9], cols[128];
        double vals[128];
        for (int j = 0; j <= 8; j++) rp[j] = 16 * j;
        for (int k = 0; k < 128; k++) {
            cols[k] = (k * 7) % 16;
            vals[k] = 0.01 * (k % 13) - 0.05;
        }
        tsr_tile_shape os = m->tin->shape;
        os.dim[0].size = 8;
        tsr_tile *r = NULL;
        t0 = tsr_now();
        st = tsr_tile_lincomb(m->tin, &os, rp, cols, vals, NULL, &r);
        *sec = (tsr_now() - t0) / 128;
        tsr_tile_free(r);
        return st;
    }
    case 11: /* copy */
        t0 = tsr_now();
        st = tsr_bvec_copy(be, m->a, &t);
        break;
    default:
        return tsr_fail(TSR_ERR_INTERNAL, "cost op %d", m->op);
    }
    *sec = tsr_now() - t0;
    tsr_bvec_free(be, t);
    for (int i = 0; i < 4; i++) tsr_bvec_free(be, outs[i]);
    if (m->op == 6) *sec = *sec; /* total of the group */
    return st;
}

static tsr_status median(mctx *m, int runs, double *out) {
    double v[16];
    if (runs > 16) runs = 16;
    for (int i = 0; i < runs; i++) TSR_TRY(one(m, &v[i]));
    qsort(v, (size_t)runs, sizeof v[0], cmp_d);
    *out = v[runs / 2];
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
        s.dim[0] = (tsr_tile_dim){ .size = 16, .tile = 1 };
        s.dim[1] = (tsr_tile_dim){ .size = be->slots, .tile = be->slots };
        st = tsr_tile_encrypt(be, &s, NULL, L, 0, &m.tin);
    }
    tsr_free(vals);
    double *dst[12] = { &c->add,     &c->mul_plain, &c->mul_const,    &c->mul_ct,
                        &c->rescale, &c->rotate,    &c->hoist_extra,  &c->encode,
                        &c->encrypt, &c->decrypt,   &c->lincomb_term, &c->copy };
    for (int op = 0; op < 12 && st == TSR_OK; op++) {
        m.op = op;
        st = median(&m, op == 10 ? 3 : 5, dst[op]);
    }
    if (st == TSR_OK) {
        /* hoist_extra: what each rotation of a hoisted group costs beyond the first. */
        c->hoist_extra = fmax(0.0, (c->hoist_extra - c->rotate) / 3.0);
        c->limbs = L + 1;
        size_t n = tsr_ckks_params_n(params);
        c->ct_bytes = 2.0 * (L + 1) * (double)n * 8.0;
        c->key_bytes = 2.0 * tsr_ckks_params_dnum(params) *
                       (L + 1 + tsr_ckks_params_special_count(params)) * (double)n * 8.0;
        c->measured = 1;
        tsr_ckks_params_fingerprint(params, c->fingerprint);
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

/* Built-in estimates (seconds at N = 2^13 with 6 limbs on a 2 GHz core), scaled by N and limbs. */
static void estimate(tsr_ckks_params *params, nn_costs *c) {
    memset(c, 0, sizeof *c);
    double n = (double)tsr_ckks_params_n(params), L1 = tsr_ckks_params_max_level(params) + 1;
    double f = (n / 8192.0) * (L1 / 6.0) * (log2(n) / 13.0);
    double e = (n / 8192.0) * (L1 / 6.0);
    c->add = 25e-6 * e;
    c->mul_plain = 40e-6 * e;
    c->mul_const = 40e-6 * e;
    c->lincomb_term = 15e-6 * e;
    c->copy = 20e-6 * e;
    c->mul_ct = 1.5e-3 * f;
    c->rotate = 1.4e-3 * f;
    c->hoist_extra = 0.5e-3 * f;
    c->rescale = 0.25e-3 * f;
    c->encode = 0.5e-3 * f;
    c->encrypt = 1.5e-3 * f;
    c->decrypt = 0.1e-3 * f;
    c->limbs = (int)L1;
    c->ct_bytes = 2.0 * L1 * n * 8.0;
    c->key_bytes =
        2.0 * tsr_ckks_params_dnum(params) * (L1 + tsr_ckks_params_special_count(params)) * n * 8.0;
    tsr_ckks_params_fingerprint(params, c->fingerprint);
}

tsr_status nn_costs_get(tsr_ckks_params *params, const tsr_nn_compile_opts *o, nn_costs *out) {
    char path[1024], key[128];
    if (o && o->costs)
        snprintf(path, sizeof path, "%s", o->costs);
    else if (o && o->cost_cache)
        snprintf(path, sizeof path, "%s", o->cost_cache);
    else
        default_cache(path, sizeof path);
    key_of(params, key, sizeof key);
    if (cache_lookup(path, key, out)) {
        out->measured = 1;
        out->limbs = tsr_ckks_params_max_level(params) + 1;
        tsr_ckks_params_fingerprint(params, out->fingerprint);
        return TSR_OK;
    }
    if (o && o->costs)
        return tsr_fail(TSR_ERR_NOT_FOUND,
                        "the cost file '%s' has no entry for these parameters (%s); drop --costs "
                        "to measure them",
                        o->costs, key);
    if (o && o->no_measure) {
        estimate(params, out);
        return TSR_OK;
    }
    if (o && o->log) {
        tsr_ckks_param_spec s;
        tsr_ckks_params_spec(params, &s);
        fprintf(o->log, "measuring HE operation costs for N = 2^%u, %u levels (cached in %s)\n",
                s.log_n, s.levels, path);
    }
    TSR_TRY(measure(params, out));
    cache_store(path, key, out);
    return TSR_OK;
}

double nn_step_seconds(const nn_costs *c, const nn_step *s, int threads) {
    (void)threads;
    double lv = 0.5 * (s->level_in + s->level_out);
    double f = (lv + 1.0) / (double)c->limbs;
    if (f > 1) f = 1;
    if (f < 0.05) f = 0.05;
    const tsr_backend_counts *k = &s->counts;
    double t = 0;
    double rot = (double)k->rotations * c->rotate;
    if ((s->op == NN_OP_CONV || s->op == NN_OP_POOL || s->op == NN_OP_REORIENT) && k->hoisted &&
        k->rotations >= k->hoisted)
        rot = (double)k->hoisted * c->rotate + (double)(k->rotations - k->hoisted) * c->hoist_extra;
    t += rot;
    t += (double)k->mul_ct * c->mul_ct;
    t += (double)k->mul_plain * c->mul_plain;
    if (s->op == NN_OP_LINEAR) {
        t += (double)k->mul_const * c->lincomb_term;
    } else if (s->op == NN_OP_SQ_LINEAR) {
        /* Terms over 3-polynomial squares one level up: about twice the usual cost. */
        t += (double)k->mul_const * c->lincomb_term * 2.0;
    } else {
        t += (double)k->mul_const * c->mul_const;
        t += (double)k->add * c->add;
    }
    t += (double)k->rescale * c->rescale;
    t += (double)k->encode * c->encode;
    t += (double)k->drop_level * c->copy;
    return t * f;
}

double nn_program_bytes(const nn_costs *c, const nn_program *p) {
    double v = (double)p->peak_vectors * c->ct_bytes;
    v += (double)p->n_plain * c->ct_bytes * 0.5;
    v += (double)(p->n_rot + (p->needs_relin ? 1 : 0)) * c->key_bytes;
    return v;
}
