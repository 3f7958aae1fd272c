/*
 * bench/bench_tile.c - `tessera bench tile`: tile-tensor products and a
 * convolution layer on real CKKS for several tile shapes each: latency
 * (median of K runs, one thread unless --threads), rotations, other HE
 * operations, depth, and the precision against doubles. Every case is
 * first planned on a shape-only mockup (which also collects the rotation
 * keys to generate); the run then checks that CKKS did exactly the
 * planned operations. Record results in docs/BENCHMARKS.md.
 */
#include "bench.h"
#include "cli.h"
#include "core/error.h"
#include "core/progress.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

enum { KIND_MATVEC, KIND_MATMAT, KIND_CONV };

typedef struct bcase {
    int kind;
    const char *title;
    int64_t m, n, k; /* matrix sizes (m x n times n [x k]) */
    int64_t t[5];    /* tile sizes (products: 2 or 3 used; conv: 5) */
    int ct_ct;       /* matrix x matrix with both operands encrypted */
    int heavy;       /* fewer runs */
    /* convolution */
    int64_t X, C, F, B, fx, stride, pad;
} bcase;

/* The last tile size of each case is whatever fills the slot count. */
enum { CTPT, CTCT };
#define MATVEC(sz, t0)                                                                             \
    {                                                                                              \
        .kind = KIND_MATVEC, .title = "matvec " #sz "x" #sz, .m = sz, .n = sz, .k = 1, .t = { t0 } \
    }
#define MATMAT(sz, t0, t1, ct, hv)                                                             \
    {                                                                                          \
        .kind = KIND_MATMAT,                                                                   \
        .title = ct == CTCT ? "matmat " #sz "x" #sz " ct*ct" : "matmat " #sz "x" #sz " ct*pt", \
        .m = sz, .n = sz, .k = sz, .t = { t0, t1 }, .ct_ct = ct == CTCT, .heavy = hv           \
    }
#define CONV(tf, tx)                                                                              \
    {                                                                                             \
        .kind = KIND_CONV, .title = "conv 28x28x1->5 5x5 s2 p1", .t = { tf, tx, tx, 1 }, .X = 28, \
        .C = 1, .F = 5, .fx = 5, .stride = 2, .pad = 1                                            \
    }
static const bcase cases[] = {
    MATVEC(64, 64),
    MATVEC(64, 128),
    MATVEC(64, 256),
    MATVEC(256, 32),
    MATVEC(256, 64),
    MATVEC(256, 256),
    MATMAT(64, 16, 16, CTPT, 0),
    MATMAT(64, 64, 4, CTPT, 0),
    MATMAT(64, 64, 4, CTCT, 0),
    MATMAT(256, 64, 4, CTPT, 1),
    MATMAT(256, 256, 1, CTPT, 1),
    CONV(8, 16),
    CONV(8, 8),
};
#define N_CASES (sizeof cases / sizeof cases[0])

typedef struct keyset {
    tsr_ckks_params *p;
    tsr_ckks_secret_key *sk;
    tsr_ckks_public_key *pk;
    tsr_ckks_relin_key *rk;
    tsr_backend *be;
} keyset;

typedef struct result {
    char shapes[256];
    int64_t in_tiles, out_tiles;
    double latency, per_item, bits;
    double mockup; /* the same operation on a mockup with values, no noise */
    tsr_backend_counts cnt;
    int depth;
    int matches_plan;
    int items;
} result;

static void fill_random(double *x, size_t n, uint64_t seed) {
    uint64_t s = seed * 0x9E3779B97F4A7C15ull + 1;
    for (size_t i = 0; i < n; i++) {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        x[i] = (double)(s >> 11) / 9007199254740992.0 * 2 - 1;
    }
}

/* Operands of one case on one backend (with_data 0: shape-only planning). */
typedef struct operands {
    tsr_tile *x, *w;
    tsr_tile_conv *conv;
    tsr_tile_shape sx, sw;
    int sum_dim;
} operands;

static tsr_status make_operands(const bcase *c, tsr_backend *be, int with_data, const double *A,
                                const double *Bm, operands *o) {
    memset(o, 0, sizeof *o);
    int64_t slots = tsr_backend_slots(be);
    tsr_status st;
    if (c->kind == KIND_MATVEC) {
        int64_t t0 = c->t[0], t1 = slots / t0;
        /* [m/t0, n/t1] (weights) x [*\/t0, n/t1] (vector), sum over dim 1. */
        TSR_TRY(tsr_tile_shape_make(&o->sw, 2, (int64_t[]){ c->m, c->n }, (int64_t[]){ t0, t1 },
                                    NULL, slots));
        TSR_TRY(tsr_tile_shape_make(&o->sx, 2, (int64_t[]){ 0, c->n }, (int64_t[]){ t0, t1 }, NULL,
                                    slots));
        o->sum_dim = 1;
    } else if (c->kind == KIND_MATMAT) {
        int64_t t0 = c->t[0], t1 = c->t[1], t2 = slots / (t0 * t1);
        /* [m/t0, n/t1, *\/t2] (encrypted) x [*\/t0, n/t1, k/t2], sum over dim 1. */
        TSR_TRY(tsr_tile_shape_make(&o->sx, 3, (int64_t[]){ c->m, c->n, 0 },
                                    (int64_t[]){ t0, t1, t2 }, NULL, slots));
        TSR_TRY(tsr_tile_shape_make(&o->sw, 3, (int64_t[]){ 0, c->n, c->k },
                                    (int64_t[]){ t0, t1, t2 }, NULL, slots));
        o->sum_dim = 1;
    } else {
        int64_t t4 = slots / (c->t[0] * c->t[1] * c->t[2] * c->t[3]);
        int64_t B = c->B ? c->B : t4;
        unsigned fl[5] = { 0, TSR_TILE_INTERLEAVED, TSR_TILE_INTERLEAVED, 0, 0 };
        /* Layout I: [*\/t0, X~/t1, Y~/t2, C/t3, B/t4]. */
        TSR_TRY(tsr_tile_shape_make(&o->sx, 5, (int64_t[]){ 0, c->X, c->X, c->C, B },
                                    (int64_t[]){ c->t[0], c->t[1], c->t[2], c->t[3], t4 }, fl,
                                    slots));
        tsr_tile_conv_params p = { .x_dim = 1,
                                   .y_dim = 2,
                                   .c_dim = 3,
                                   .f_dim = 0,
                                   .stride_x = (int)c->stride,
                                   .stride_y = (int)c->stride,
                                   .pad_x = (int)c->pad,
                                   .pad_y = (int)c->pad };
        TSR_TRY(tsr_tile_conv_create(be, &o->sx, &p, Bm, (int)c->F, (int)c->fx, (int)c->fx, NULL,
                                     -1, 0, &o->conv));
        st = tsr_tile_encrypt(be, &o->sx, with_data ? A : NULL, -1, 0, &o->x);
        return st;
    }
    TSR_TRY(tsr_tile_encrypt(be, &o->sx, with_data ? (c->kind == KIND_MATVEC ? Bm : A) : NULL, -1,
                             0, &o->x));
    const double *wd = c->kind == KIND_MATVEC ? A : Bm;
    if (c->ct_ct)
        st = tsr_tile_encrypt(be, &o->sw, with_data ? wd : NULL, -1, 0, &o->w);
    else
        st = tsr_tile_encode(be, &o->sw, with_data ? wd : NULL, -1, 0, &o->w);
    return st;
}

static void free_operands(operands *o) {
    tsr_tile_free(o->x);
    tsr_tile_free(o->w);
    tsr_tile_conv_free(o->conv);
}

static tsr_status apply(const operands *o, tsr_tile **out) {
    if (o->conv) return tsr_tile_conv_apply(o->conv, o->x, out);
    return tsr_tile_mul_sum(o->x, o->w, o->sum_dim, out);
}

/* Dense reference of a case. */
static double *reference(const bcase *c, const double *A, const double *Bm, int64_t *n_out,
                         const tsr_tile_shape *in) {
    if (c->kind == KIND_MATVEC) {
        double *y = calloc((size_t)c->m, sizeof *y);
        for (int64_t i = 0; i < c->m; i++)
            for (int64_t j = 0; j < c->n; j++) y[i] += A[i * c->n + j] * Bm[j];
        *n_out = c->m;
        return y;
    }
    if (c->kind == KIND_MATMAT) {
        double *y = calloc((size_t)(c->m * c->k), sizeof *y);
        for (int64_t i = 0; i < c->m; i++)
            for (int64_t l = 0; l < c->n; l++)
                for (int64_t j = 0; j < c->k; j++)
                    y[i * c->k + j] += A[i * c->n + l] * Bm[l * c->k + j];
        *n_out = c->m * c->k;
        return y;
    }
    int64_t X = c->X, Xo = (X + 2 * c->pad - c->fx) / c->stride + 1, B = in->dim[4].size;
    double *y = calloc((size_t)(c->F * Xo * Xo * B), sizeof *y);
    for (int64_t f = 0; f < c->F; f++)
        for (int64_t ox = 0; ox < Xo; ox++)
            for (int64_t oy = 0; oy < Xo; oy++)
                for (int64_t b = 0; b < B; b++) {
                    double s = 0;
                    for (int64_t ch = 0; ch < c->C; ch++)
                        for (int64_t dx = 0; dx < c->fx; dx++)
                            for (int64_t dy = 0; dy < c->fx; dy++) {
                                int64_t ix = c->stride * ox + dx - c->pad,
                                        iy = c->stride * oy + dy - c->pad;
                                if (ix < 0 || iy < 0 || ix >= X || iy >= X) continue;
                                s += Bm[((f * c->C + ch) * c->fx + dx) * c->fx + dy] *
                                     A[((ix * X + iy) * c->C + ch) * B + b];
                            }
                    y[((f * Xo + ox) * Xo + oy) * B + b] = s;
                }
    *n_out = c->F * Xo * Xo * B;
    return y;
}

static int same_counts(const tsr_backend_counts *a, const tsr_backend_counts *b) {
    return a->rotations == b->rotations && a->hoisted == b->hoisted && a->mul_ct == b->mul_ct &&
           a->mul_plain == b->mul_plain && a->mul_const == b->mul_const && a->add == b->add &&
           a->rescale == b->rescale && a->key_switch == b->key_switch;
}

static tsr_status run_case(keyset *ks, const bcase *c, int runs, result *res) {
    memset(res, 0, sizeof *res);
    int64_t slots = tsr_backend_slots(ks->be);
    size_t na = 0, nb = 0;
    if (c->kind == KIND_MATVEC) {
        na = (size_t)(c->m * c->n);
        nb = (size_t)c->n;
    } else if (c->kind == KIND_MATMAT) {
        na = (size_t)(c->m * c->n);
        nb = (size_t)(c->n * c->k);
    } else {
        int64_t batch = slots / (c->t[0] * c->t[1] * c->t[2] * c->t[3]);
        na = (size_t)(c->X * c->X * c->C * batch);
        nb = (size_t)(c->F * c->C * c->fx * c->fx);
    }
    double *A = malloc(na * sizeof *A), *Bm = malloc(nb * sizeof *Bm);
    fill_random(A, na, 1);
    fill_random(Bm, nb, 2);
    if (c->kind == KIND_CONV)
        for (size_t i = 0; i < nb; i++) Bm[i] *= 0.2;
    /* Plan on a shape-only mockup of the same chain: counts, depth, rotation keys. */
    tsr_mockup_params mp;
    tsr_mockup_params_default(&mp, 0, 0);
    mp.track_values = 0;
    mp.rotations = TSR_ROTATIONS_COLLECT;
    tsr_backend *plan;
    tsr_status st = tsr_backend_mockup_create_for(ks->p, &mp, &plan);
    operands po, o;
    tsr_tile *out = NULL;
    if (st == TSR_OK) st = make_operands(c, plan, 0, A, Bm, &po);
    if (st == TSR_OK) {
        tsr_backend_reset_counts(plan);
        st = apply(&po, &out);
        tsr_tile_free(out);
        out = NULL;
    }
    tsr_backend_counts pc;
    tsr_backend_get_counts(plan, &pc);
    int64_t steps[1024];
    size_t nsteps = tsr_backend_used_rotations(plan, steps, 1024);
    if (st == TSR_OK) st = tsr_backend_declare_rotations(ks->be, steps, nsteps);
    if (st == TSR_OK) {
        tsr_tile_shape_format(&po.sx, res->shapes, sizeof res->shapes);
        if (c->kind != KIND_CONV) {
            size_t l = strlen(res->shapes);
            snprintf(res->shapes + l, sizeof res->shapes - l, " x ");
            l = strlen(res->shapes);
            tsr_tile_shape_format(&po.sw, res->shapes + l, sizeof res->shapes - l);
        }
        res->in_tiles = tsr_tile_shape_num_tiles(&po.sx);
    }
    free_operands(&po);
    tsr_backend_free(plan);
    /* The same on a mockup with values: what a planner's dry run with data costs. */
    if (st == TSR_OK) {
        mp.track_values = 1;
        tsr_backend *mock;
        st = tsr_backend_mockup_create_for(ks->p, &mp, &mock);
        if (st == TSR_OK) st = make_operands(c, mock, 1, A, Bm, &po);
        double ms[5];
        for (int r = 0; r < 5 && st == TSR_OK; r++) {
            double t0 = tsr_now();
            st = apply(&po, &out);
            ms[r] = tsr_now() - t0;
            tsr_tile_free(out);
            out = NULL;
        }
        if (st == TSR_OK) res->mockup = bench_median(ms, 5);
        free_operands(&po);
        tsr_backend_free(mock);
    }
    /* Real run. */
    if (st == TSR_OK) st = make_operands(c, ks->be, 1, A, Bm, &o);
    double *samples = calloc((size_t)runs, sizeof *samples);
    for (int r = 0; r < runs && st == TSR_OK; r++) {
        tsr_backend_reset_counts(ks->be);
        double t0 = tsr_now();
        st = apply(&o, &out);
        samples[r] = tsr_now() - t0;
        if (st == TSR_OK && r + 1 < runs) {
            tsr_tile_free(out);
            out = NULL;
        }
    }
    if (st == TSR_OK) {
        res->latency = bench_median(samples, (size_t)runs);
        tsr_backend_get_counts(ks->be, &res->cnt);
        res->depth = tsr_tile_level(o.x) - tsr_tile_level(out);
        res->matches_plan = same_counts(&res->cnt, &pc);
        res->out_tiles = tsr_tile_shape_num_tiles(tsr_tile_get_shape(out));
        int64_t nref;
        double *want = reference(c, A, Bm, &nref, &o.sx);
        double *got = calloc((size_t)nref, sizeof *got);
        st = tsr_tile_decrypt(out, got);
        double worst = 0;
        for (int64_t i = 0; i < nref && st == TSR_OK; i++)
            if (fabs(got[i] - want[i]) > worst) worst = fabs(got[i] - want[i]);
        res->bits = worst > 0 ? -log2(worst) : 60;
        res->items = c->kind == KIND_CONV ? (int)o.sx.dim[4].size : 1;
        res->per_item = res->latency / res->items;
        free(want);
        free(got);
    }
    tsr_tile_free(out);
    free_operands(&o);
    free(samples);
    free(A);
    free(Bm);
    return st;
}

static void keyset_free(keyset *ks) {
    tsr_backend_free(ks->be);
    tsr_ckks_relin_key_free(ks->rk);
    tsr_ckks_public_key_free(ks->pk);
    tsr_ckks_secret_key_free(ks->sk);
    tsr_ckks_params_free(ks->p);
}

static tsr_status keyset_init(keyset *ks, const char *preset) {
    memset(ks, 0, sizeof *ks);
    TSR_TRY(tsr_ckks_params_create_preset(&ks->p, preset));
    TSR_TRY(tsr_ckks_secret_key_create(&ks->sk, ks->p));
    TSR_TRY(tsr_ckks_public_key_create(&ks->pk, ks->sk));
    TSR_TRY(tsr_ckks_relin_key_create(&ks->rk, ks->sk));
    return tsr_backend_ckks_create(ks->p, ks->pk, ks->sk, ks->rk, NULL, &ks->be);
}

static void usage(void) {
    printf("usage: tessera bench tile [--preset NAME] [--runs K] [--threads T] [--json] "
           "[--quick] [--case TEXT]\n\n"
           "Tile-tensor matrix x vector and matrix x matrix products (64x64, 256x256) and one\n"
           "convolution layer on CKKS, for several tile shapes each. Per case: the median\n"
           "latency of K runs (default 5; 3 for the 256x256 matrix products), rotations and\n"
           "other HE operations, depth, and precision against doubles. Each case is planned\n"
           "on a shape-only mockup first; 'plan' says whether CKKS did exactly the planned\n"
           "operations. Default preset n14-l7, one thread. --quick skips the 256x256 matrix\n"
           "products; --case runs only the cases whose name contains TEXT. Record results\n"
           "in docs/BENCHMARKS.md.\n");
}

int bench_tile_main(int argc, char **argv) {
    if (cli_wants_help(argc, argv)) {
        usage();
        return 0;
    }
    const char *preset = "n14-l7";
    int json = 0, quick = 0;
    const char *only = NULL;
    long threads = 1, runs_arg = 5;
    const cli_opt opts[] = {
        { "--preset", CLI_STR, &preset, 0, 0 },      { "--runs", CLI_LONG, &runs_arg, 1, 1000 },
        { "--threads", CLI_LONG, &threads, 1, 256 }, { "--json", CLI_FLAG, &json, 0, 0 },
        { "--quick", CLI_FLAG, &quick, 0, 0 },       { "--case", CLI_STR, &only, 0, 0 },
    };
    int prc = cli_parse_args("bench tile", argc, argv, opts, sizeof opts / sizeof opts[0], NULL, 0);
    if (prc) return prc;
    int runs = (int)runs_arg;
    tsr_set_num_threads((int)threads);
    keyset ks;
    double t0 = tsr_now();
    tsr_status st = keyset_init(&ks, preset);
    if (st != TSR_OK) {
        int rc = cli_fail("bench tile", st, "setting up CKKS");
        keyset_free(&ks);
        return rc;
    }
    if (!json) {
        printf("\ntile tensors on CKKS preset %s: %lld slots, %d levels; %ld thread(s), SIMD "
               "%s; median of %d runs (setup %.2f s)\n",
               preset, (long long)tsr_backend_slots(ks.be), tsr_backend_top_level(ks.be), threads,
               tsr_simd_name(tsr_simd_active()), runs, tsr_now() - t0);
        printf("%-30s %-52s %5s %5s %10s %10s %5s %5s %5s %5s %4s %5s %5s %10s\n", "case",
               "tile shapes", "in", "out", "latency", "per item", "rot", "hoist", "ct*pt", "ct*ct",
               "dep", "bits", "plan", "mockup");
    } else {
        printf("{\"preset\": \"%s\", \"slots\": %lld, \"threads\": %ld, \"runs\": %d, \"cases\": "
               "[\n",
               preset, (long long)tsr_backend_slots(ks.be), threads, runs);
    }
    tsr_progress prog;
    tsr_progress_begin(&prog, "bench tile", N_CASES, "case");
    int rc = 0, first = 1;
    for (size_t i = 0; i < N_CASES; i++) {
        const bcase *c = &cases[i];
        if ((quick && c->heavy) || (only && !strstr(c->title, only))) continue;
        result r;
        st = run_case(&ks, c, c->heavy && runs > 3 ? 3 : runs, &r);
        tsr_progress_update(&prog, i + 1, "%s", c->title);
        if (st != TSR_OK) {
            rc = cli_fail("bench tile", st, c->title);
            break;
        }
        if (json) {
            printf("%s  {\"case\": \"%s\", \"shapes\": \"%s\", \"in_tiles\": %lld, "
                   "\"out_tiles\": %lld, \"latency_s\": %.6f, \"per_item_s\": %.6f, "
                   "\"rotations\": %llu, \"hoisted\": %llu, \"mul_plain\": %llu, \"mul_ct\": "
                   "%llu, \"rescales\": %llu, \"depth\": %d, \"precision_bits\": %.1f, "
                   "\"matches_plan\": %s, \"mockup_s\": %.6f}",
                   first ? "" : ",\n", c->title, r.shapes, (long long)r.in_tiles,
                   (long long)r.out_tiles, r.latency, r.per_item,
                   (unsigned long long)r.cnt.rotations, (unsigned long long)r.cnt.hoisted,
                   (unsigned long long)r.cnt.mul_plain, (unsigned long long)r.cnt.mul_ct,
                   (unsigned long long)r.cnt.rescale, r.depth, r.bits,
                   r.matches_plan ? "true" : "false", r.mockup);
        } else {
            printf("%-30s %-52s %5lld %5lld %8.1f ms %8.2f ms %5llu %5llu %5llu %5llu %4d %5.1f "
                   "%5s %7.3f ms\n",
                   c->title, r.shapes, (long long)r.in_tiles, (long long)r.out_tiles,
                   r.latency * 1e3, r.per_item * 1e3, (unsigned long long)r.cnt.rotations,
                   (unsigned long long)r.cnt.hoisted, (unsigned long long)r.cnt.mul_plain,
                   (unsigned long long)r.cnt.mul_ct, r.depth, r.bits, r.matches_plan ? "yes" : "NO",
                   r.mockup * 1e3);
        }
        fflush(stdout);
        first = 0;
        if (!r.matches_plan) rc = 1;
    }
    tsr_progress_end(&prog, NULL);
    if (json) printf("\n]}\n");
    keyset_free(&ks);
    return rc;
}
