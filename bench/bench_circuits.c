/*
 * bench/bench_circuits.c - `tessera bench circuits`: the function circuits
 * (inverse, inverse square root, sign, ReLU, a degree-63 polynomial) and
 * linear transforms on CKKS presets, single-threaded: median wall and
 * thread-CPU time of K runs, levels consumed, key counts, and the precision
 * of the same runs in bits against plaintext. Record results in
 * docs/BENCHMARKS.md with the command, commit, CPU and machine load.
 */
#include "bench.h"
#include "cli.h"
#include "core/error.h"
#include "core/progress.h"

#include "tessera.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

enum { MAX_RUNS = 100, LT_DIAGS = 16 };

static double thread_cpu(void) {
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

typedef struct ctx {
    tsr_ckks_params *p;
    tsr_ckks_secret_key *sk;
    tsr_ckks_public_key *pk;
    tsr_ckks_relin_key *rk;
    tsr_ckks_galois_keys *gk;
    tsr_ckks_encoder *enc;
    tsr_ckks_evaluator *ev;
    tsr_ckks_plaintext *pt;
    tsr_ckks_ciphertext *in, *out;
    tsr_circuits_sign_poly *sign;
    tsr_circuits_lt *lt;
    tsr_cheb poly;
    double poly_c[64];
    size_t slots;
    int top;
    double *x, *want, *got;
    double *diag[LT_DIAGS];
} ctx;

typedef enum op_kind { OP_POLY, OP_INV, OP_INVSQRT, OP_SIGN, OP_RELU, OP_LT } op_kind;

static const struct {
    const char *name;
    op_kind kind;
    double a, b; /* input range */
} ops[] = {
    { "poly_sigmoid_deg63", OP_POLY, -8, 8 },          { "inverse_[0.5,2]_r4", OP_INV, 0.5, 2 },
    { "invsqrt_[0.25,4]_d7_r2", OP_INVSQRT, 0.25, 4 }, { "sign_15o15o27_eps2^-8", OP_SIGN, -1, 1 },
    { "relu_15o15o27_eps2^-8", OP_RELU, -1, 1 },       { "lt_16_diagonals", OP_LT, -1, 1 },
};
#define N_OPS (sizeof ops / sizeof ops[0])

static double f_sigmoid(double x, void *u) {
    (void)u;
    return 1 / (1 + exp(-x));
}

static void ctx_free(ctx *c) {
    tsr_circuits_lt_free(c->lt);
    tsr_circuits_sign_poly_free(c->sign);
    tsr_ckks_ciphertext_free(c->in);
    tsr_ckks_ciphertext_free(c->out);
    tsr_ckks_plaintext_free(c->pt);
    tsr_ckks_evaluator_free(c->ev);
    tsr_ckks_encoder_free(c->enc);
    tsr_ckks_galois_keys_free(c->gk);
    tsr_ckks_relin_key_free(c->rk);
    tsr_ckks_public_key_free(c->pk);
    tsr_ckks_secret_key_free(c->sk);
    tsr_ckks_params_free(c->p);
    for (int i = 0; i < LT_DIAGS; i++) free(c->diag[i]);
    free(c->x);
    free(c->want);
    free(c->got);
}

static tsr_status ctx_init(ctx *c, const char *preset) {
    memset(c, 0, sizeof *c);
    TSR_TRY(tsr_ckks_params_create_preset(&c->p, preset));
    c->slots = tsr_ckks_params_slots(c->p);
    c->top = tsr_ckks_params_max_level(c->p);
    TSR_TRY(tsr_ckks_secret_key_create(&c->sk, c->p));
    TSR_TRY(tsr_ckks_public_key_create(&c->pk, c->sk));
    TSR_TRY(tsr_ckks_relin_key_create(&c->rk, c->sk));
    TSR_TRY(tsr_ckks_encoder_create(&c->enc, c->p));
    TSR_TRY(tsr_ckks_plaintext_create(&c->pt, c->p));
    TSR_TRY(tsr_ckks_ciphertext_create(&c->in, c->p));
    TSR_TRY(tsr_ckks_ciphertext_create(&c->out, c->p));
    c->x = malloc(c->slots * sizeof *c->x);
    c->want = malloc(c->slots * sizeof *c->want);
    c->got = malloc(c->slots * sizeof *c->got);
    if (!c->x || !c->want || !c->got) return TSR_ERR_NOMEM;
    /* a transform of 16 random-looking diagonals (indices 0..15), one level */
    int idx[LT_DIAGS];
    for (int i = 0; i < LT_DIAGS; i++) {
        idx[i] = i;
        c->diag[i] = malloc(c->slots * sizeof *c->diag[i]);
        if (!c->diag[i]) return TSR_ERR_NOMEM;
        for (size_t j = 0; j < c->slots; j++)
            c->diag[i][j] = sin(0.37 * (double)(i * 7919 + (int)j)) / LT_DIAGS;
    }
    TSR_TRY(tsr_circuits_lt_create(&c->lt, c->enc, c->p, idx, (const double *const *)c->diag,
                                   LT_DIAGS, 0, c->top));
    int steps[2 * LT_DIAGS];
    size_t ns = tsr_circuits_lt_rotations(c->lt, steps, 2 * LT_DIAGS);
    TSR_TRY(tsr_ckks_galois_keys_create(&c->gk, c->sk, steps, ns, 0));
    TSR_TRY(tsr_ckks_evaluator_create(&c->ev, c->p, c->rk, c->gk));
    const size_t d3[] = { 15, 15, 27 };
    TSR_TRY(tsr_circuits_sign_poly_create(&c->sign, 1, 0x1p-8, d3, 3));
    TSR_TRY(tsr_circuits_cheb_fit(c->poly_c, 63, 0, -8, 8, f_sigmoid, NULL));
    c->poly = (tsr_cheb){ -8, 8, 63, c->poly_c };
    return TSR_OK;
}

/* Inputs for op o (uniform in its range; the sign's avoid the gap) and the plaintext result. */
static void make_inputs(ctx *c, size_t o) {
    double a = ops[o].a, b = ops[o].b;
    for (size_t j = 0; j < c->slots; j++) {
        double u = (double)((j * 2654435761u) % 1000003) / 1000002.0;
        double x = a + (b - a) * u;
        if ((ops[o].kind == OP_SIGN || ops[o].kind == OP_RELU) && fabs(x) < 0x1p-8)
            x = x < 0 ? -0x1p-8 : 0x1p-8;
        c->x[j] = x;
    }
    for (size_t j = 0; j < c->slots; j++) {
        double x = c->x[j];
        switch (ops[o].kind) {
        case OP_POLY:
            c->want[j] = f_sigmoid(x, NULL);
            break;
        case OP_INV:
            c->want[j] = 1 / x;
            break;
        case OP_INVSQRT:
            c->want[j] = 1 / sqrt(x);
            break;
        case OP_SIGN:
            c->want[j] = x > 0 ? 1 : -1;
            break;
        case OP_RELU:
            c->want[j] = x > 0 ? x : 0;
            break;
        case OP_LT: {
            double s = 0;
            for (int i = 0; i < LT_DIAGS; i++)
                s += c->diag[i][j] * c->x[(j + (size_t)i) % c->slots];
            c->want[j] = s;
        } break;
        }
    }
}

static tsr_status run_op(ctx *c, size_t o, int *depth) {
    tsr_circuits_fn_info info;
    tsr_circuits_poly_info pinfo;
    tsr_status st = TSR_OK;
    switch (ops[o].kind) {
    case OP_POLY:
        st = tsr_circuits_poly_eval(c->ev, c->out, c->in, &c->poly, &pinfo);
        *depth = pinfo.depth;
        return st;
    case OP_INV:
        st = tsr_circuits_inverse(c->ev, c->out, c->in, 0.5, 2, 4, &info);
        break;
    case OP_INVSQRT:
        st = tsr_circuits_invsqrt(c->ev, c->out, c->in, 0.25, 4, 7, 2, &info);
        break;
    case OP_SIGN:
        st = tsr_circuits_sign(c->ev, c->out, c->in, c->sign, &info);
        break;
    case OP_RELU:
        st = tsr_circuits_relu(c->ev, c->out, c->in, c->sign, &info);
        break;
    case OP_LT:
        *depth = 1;
        return tsr_circuits_lt_apply(c->ev, c->out, c->in, c->lt);
    }
    *depth = info.depth;
    return st;
}

static double precision_bits(const double *got, const double *want, size_t n) {
    double worst = 0;
    for (size_t i = 0; i < n; i++) worst = fmax(worst, fabs(got[i] - want[i]));
    return worst > 0 ? -log2(worst) : 60;
}

static int run_preset(const char *preset, int runs, int json, int first) {
    ctx c;
    double t0 = tsr_now();
    tsr_status st = ctx_init(&c, preset);
    if (st != TSR_OK) {
        ctx_free(&c);
        return cli_fail("bench circuits", st, "setting up");
    }
    double setup = tsr_now() - t0;
    double wall[N_OPS], cpu[N_OPS], bits[N_OPS];
    int depth[N_OPS];
    double *sw = malloc((size_t)runs * sizeof *sw), *sc = malloc((size_t)runs * sizeof *sc);
    if (!sw || !sc) {
        free(sw);
        free(sc);
        ctx_free(&c);
        return cli_fail("bench circuits", TSR_ERR_NOMEM, "allocating");
    }
    tsr_progress prog;
    tsr_progress_begin(&prog, preset, N_OPS, "op");
    for (size_t o = 0; o < N_OPS && st == TSR_OK; o++) {
        make_inputs(&c, o);
        st = tsr_ckks_encode_real(c.enc, c.pt, c.x, c.slots, c.top, 0);
        if (st == TSR_OK) st = tsr_ckks_encrypt(c.pk, c.in, c.pt);
        depth[o] = -1;
        for (int r = 0; r < runs && st == TSR_OK; r++) {
            double s = tsr_now(), s2 = thread_cpu();
            st = run_op(&c, o, &depth[o]);
            sw[r] = tsr_now() - s;
            sc[r] = thread_cpu() - s2;
        }
        if (st == TSR_ERR_LEVEL) { /* too deep for this preset: reported as skipped */
            depth[o] = -1;
            st = TSR_OK;
            tsr_progress_update(&prog, o + 1, "%s", ops[o].name);
            continue;
        }
        if (st == TSR_OK) st = tsr_ckks_decrypt(c.sk, c.pt, c.out);
        if (st == TSR_OK) st = tsr_ckks_decode_real(c.enc, c.pt, c.got, c.slots, NULL);
        if (st != TSR_OK) {
            free(sw);
            free(sc);
            ctx_free(&c);
            return cli_fail("bench circuits", st, ops[o].name);
        }
        bits[o] = precision_bits(c.got, c.want, c.slots);
        wall[o] = bench_median(sw, (size_t)runs);
        cpu[o] = bench_median(sc, (size_t)runs);
        tsr_progress_update(&prog, o + 1, "%s", ops[o].name);
    }
    tsr_progress_end(&prog, NULL);
    free(sw);
    free(sc);
    size_t keys = tsr_circuits_lt_rotations(c.lt, NULL, 0);
    if (json) {
        printf("%s  {\"preset\": \"%s\", \"n\": %zu, \"levels\": %d, \"runs\": %d, \"threads\": 1, "
               "\"lt_rotation_keys\": %zu, \"lt_baby_steps\": %zu,\n   \"ops\": [",
               first ? "" : ",\n", preset, tsr_ckks_params_n(c.p), c.top, runs, keys,
               tsr_circuits_lt_baby_steps(c.lt));
        for (size_t o = 0, k = 0; o < N_OPS; o++)
            if (depth[o] >= 0)
                printf("%s{\"name\": \"%s\", \"levels\": %d, \"median_seconds\": %.6f, "
                       "\"median_cpu_seconds\": %.6f, \"bits\": %.2f}",
                       k++ ? ", " : "", ops[o].name, depth[o], wall[o], cpu[o], bits[o]);
        printf("]}");
    } else {
        printf("\ncircuits on preset %s: N = %zu, %d levels; one thread, median of %d runs "
               "(setup incl. keygen %.1f s; the transform: %zu rotation keys, n1 = %zu)\n",
               preset, tsr_ckks_params_n(c.p), c.top, runs, setup, keys,
               tsr_circuits_lt_baby_steps(c.lt));
        printf("  %-26s %6s %11s %11s %9s\n", "operation", "levels", "wall", "thread CPU", "bits");
        for (size_t o = 0; o < N_OPS; o++)
            if (depth[o] < 0)
                printf("  %-26s skipped: too deep for this preset\n", ops[o].name);
            else
                printf("  %-26s %6d %8.1f ms %8.1f ms %9.1f\n", ops[o].name, depth[o],
                       wall[o] * 1e3, cpu[o] * 1e3, bits[o]);
    }
    ctx_free(&c);
    return 0;
}

int bench_circuits_main(int argc, char **argv) {
    if (cli_wants_help(argc, argv)) {
        printf("usage: tessera bench circuits [--preset NAME]... [--json] [--runs K]\n\n"
               "Single-threaded median of K runs (default 3) of the function circuits\n"
               "(inverse, inverse square root, sign, ReLU, a degree-63 polynomial) and a\n"
               "16-diagonal linear transform, each on a fresh top-level ciphertext, with\n"
               "levels used and precision in bits vs plaintext. Default presets: n15-l14\n"
               "and n16-l21 (docs/BENCHMARKS.md).\n");
        return 0;
    }
    const char *presets[8];
    cli_list list = { presets, 0, 8 };
    long runs_arg = 3;
    int json = 0;
    const cli_opt opts[] = {
        { "--preset", CLI_LIST, &list, 0, 0 },
        { "--json", CLI_FLAG, &json, 0, 0 },
        { "--runs", CLI_LONG, &runs_arg, 1, MAX_RUNS },
    };
    int prc =
        cli_parse_args("bench circuits", argc, argv, opts, sizeof opts / sizeof opts[0], NULL, 0);
    if (prc) return prc;
    int np = list.n;
    if (np == 0) {
        presets[np++] = "n15-l14";
        presets[np++] = "n16-l21";
    }
    for (int i = 0; i < np; i++) {
        tsr_ckks_param_spec s;
        if (tsr_ckks_preset_spec(presets[i], &s) != TSR_OK)
            return cli_fail("bench circuits", TSR_ERR_NOT_FOUND, "choosing the preset");
    }
    int saved = tsr_get_num_threads();
    tsr_set_num_threads(1);
    int rc = 0;
    if (json) printf("[\n");
    for (int i = 0; i < np && rc == 0; i++)
        rc = run_preset(presets[i], (int)runs_arg, json, i == 0);
    if (json) printf("\n]\n");
    tsr_set_num_threads(saved);
    return rc;
}
