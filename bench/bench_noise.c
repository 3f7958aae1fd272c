/*
 * bench/bench_noise.c - `tessera bench noise`: the error each HE operation
 * adds on real CKKS next to what the noisy mockup (tile/mockup.c) adds for
 * it, on the chains the compiler picks (nn_choose_params: 128-bit, largest
 * scale, fewest key-switching digits, NN_DEFAULT_OUTPUT_BITS of headroom).
 *
 * Each operation runs on both backends from inputs uniform in [-1, 1]; its
 * own error is decrypt(op(inputs)) - op(decrypt(inputs)) computed in doubles
 * from the *decrypted* inputs, so the noise the inputs already carry cancels
 * and only what the operation adds is left (for ct x pt the reference uses
 * the exact weights, so the plaintext's encoding error is included; the
 * constant ops compare with the exact constant, so their rounding is too).
 * Printed in bits, CKKS and mockup and their difference (mockup - ckks > 0:
 * the mockup is optimistic): -log2 of the root mean square of that error
 * over all slots of `--samples` outputs (about +-0.02 bits between runs with
 * the defaults), and -log2 of the largest |error| among them, the statistic
 * compile's precision floor uses (nn_plan_estimate_bits), which varies more
 * (a Gaussian maximum; and the keys are drawn afresh each run). Not a timing
 * benchmark: the numbers do not depend on the machine.
 *
 * With --model, a whole plan instead: compile's estimate (nn_plan_estimate_bits,
 * the noisy mockup on the plan's chain) beside the same inputs run on real
 * CKKS with --keys fresh key sets, both as log2(max(1, |y|) / largest error)
 * against the plaintext reference.
 */
#include "bench.h"
#include "cli.h"
#include "core/error.h"
#include "core/rng.h"
#include "nn/nn_internal.h"
#include "nn_cli.h"
#include "tile/backend.h"

#include "tessera.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

enum {
    OP_ENC_PK,
    OP_ENC_SK,
    OP_ENCODE,
    OP_ENCODE_NC,
    OP_MUL_PT,
    OP_MUL_CT_RELIN,
    OP_MUL_CT,
    OP_ROTATE,
    OP_ROTATE_HOISTED,
    OP_RESCALE,
    OP_MUL_CONST_NC,
    OP_ADD_CONST,
    OP_LINCOMB,
    OP_SQ_LINCOMB,
    OP_PROD_LINCOMB,
    OP_COUNT_
};

static const struct {
    const char *name, *what;
    int min_level; /* lowest level the operation is measured at */
} ops[OP_COUNT_] = {
    [OP_ENC_PK] = { "encrypt (public key)", "encode + encrypt over Q_l P, ModDown", 0 },
    [OP_ENC_SK] = { "encrypt (secret key)", "encode + seeded symmetric encryption", 0 },
    [OP_ENCODE] = { "encode", "coefficient rounding at the canonical scale", 0 },
    [OP_ENCODE_NC] = { "encode at 2^20", "rounding at a non-canonical scale", 0 },
    [OP_MUL_PT] = { "ct x pt + rescale", "weights encoded to land on the next scale", 1 },
    [OP_MUL_CT_RELIN] = { "ct x ct + relin", "before the rescale (imaginary cross term)", 1 },
    [OP_MUL_CT] = { "ct x ct + relin + rescale", "", 1 },
    [OP_ROTATE] = { "rotate", "one key switch", 0 },
    [OP_ROTATE_HOISTED] = { "rotate (hoisted, 4)", "4 steps sharing one ModUp", 0 },
    [OP_RESCALE] = { "rescale", "after an exact integer product", 1 },
    [OP_MUL_CONST_NC] = { "x const at 2^20", "constant rounding, no rescale", 0 },
    [OP_ADD_CONST] = { "+ const", "rounded at the ciphertext's scale", 0 },
    [OP_LINCOMB] = { "sum of 32 ct x const", "+ rescale", 1 },
    [OP_SQ_LINCOMB] = { "sum of 32 squares", "fused: one relin + rescale", 2 },
    [OP_PROD_LINCOMB] = { "sum of 256 ct x ct", "fused 16 x 16: one relin + rescale", 2 },
};

#define N_LIN  32
#define N_PROD 16

typedef struct acc {
    double sum2, count;
    double max; /* largest |error| */
} acc;

static void acc_add(acc *a, const double *got, const double *ref, int64_t n) {
    for (int64_t i = 0; i < n; i++) {
        double d = got[i] - ref[i];
        a->sum2 += d * d;
        a->count += 1;
        a->max = fmax(a->max, fabs(d));
    }
}

static double acc_bits(const acc *a) {
    return a->count > 0 && a->sum2 > 0 ? -0.5 * log2(a->sum2 / a->count) : INFINITY;
}

/* Scratch of one measurement: inputs, their decryptions and the reference. */
typedef struct work {
    tsr_backend *be;
    int64_t slots;
    tsr_prng *g;
    double *x, *y, *ref, *got;
    double *dx[N_LIN]; /* decrypted inputs (lincombs) */
} work;

static void uniform(tsr_prng *g, double *x, int64_t n) {
    for (int64_t i = 0; i < n; i++) x[i] = 2.0 * tsr_prng_double(g) - 1.0;
}

static tsr_status enc(work *w, const double *v, int level, tsr_bvec **out, double *dec) {
    TSR_TRY(tsr_bvec_encrypt(w->be, v, level, tsr_backend_scale(w->be, level), out));
    return dec ? tsr_bvec_decrypt(w->be, *out, dec) : TSR_OK;
}

/* The constant scale that lands a product at level l of scale s on level l-1's canonical scale. */
static double landing(tsr_backend *be, int level, double s) {
    return tsr_backend_scale(be, level - 1) * tsr_backend_prime(be, level) / s;
}

/* One sample of op at level: adds the op's own error to a. */
static tsr_status sample(work *w, int op, int level, acc *a) {
    tsr_backend *be = w->be;
    int64_t n = w->slots;
    double s = tsr_backend_scale(be, level);
    tsr_bvec *u = NULL, *v = NULL, *o = NULL, *r[4] = { NULL, NULL, NULL, NULL };
    tsr_bvec *in[2 * N_LIN] = { NULL };
    tsr_status st = TSR_OK;
    uniform(w->g, w->x, n);
    uniform(w->g, w->y, n);
    switch (op) {
    case OP_ENC_PK:
    case OP_ENC_SK:
        st = enc(w, w->x, level, &u, w->got);
        memcpy(w->ref, w->x, (size_t)n * sizeof(double));
        break;
    case OP_ENCODE:
    case OP_ENCODE_NC:
        st = tsr_bvec_encode(be, w->x, level, op == OP_ENCODE ? s : 0x1p20, &u);
        if (st == TSR_OK) st = tsr_bvec_decrypt(be, u, w->got);
        memcpy(w->ref, w->x, (size_t)n * sizeof(double));
        break;
    case OP_MUL_PT:
        st = enc(w, w->x, level, &u, w->ref);
        if (st == TSR_OK) st = tsr_bvec_encode(be, w->y, level, landing(be, level, s), &v);
        if (st == TSR_OK) st = tsr_bvec_mul_new(be, u, v, &o);
        if (st == TSR_OK) st = tsr_bvec_rescale(be, o);
        if (st == TSR_OK) st = tsr_bvec_decrypt(be, o, w->got);
        for (int64_t i = 0; i < n; i++) w->ref[i] *= w->y[i];
        break;
    case OP_MUL_CT_RELIN:
    case OP_MUL_CT:
        st = enc(w, w->x, level, &u, w->ref);
        if (st == TSR_OK) st = enc(w, w->y, level, &v, w->y);
        if (st == TSR_OK) st = tsr_bvec_mul_new(be, u, v, &o);
        if (st == TSR_OK && op == OP_MUL_CT) st = tsr_bvec_rescale(be, o);
        if (st == TSR_OK) st = tsr_bvec_decrypt(be, o, w->got);
        for (int64_t i = 0; i < n; i++) w->ref[i] *= w->y[i];
        break;
    case OP_ROTATE:
        st = enc(w, w->x, level, &u, w->y);
        if (st == TSR_OK) st = tsr_bvec_rotate(be, u, 1, &o);
        if (st == TSR_OK) st = tsr_bvec_decrypt(be, o, w->got);
        for (int64_t i = 0; i < n; i++) w->ref[i] = w->y[(i + 1) % n];
        break;
    case OP_ROTATE_HOISTED: {
        const int64_t steps[4] = { 1, 2, 3, 5 };
        st = enc(w, w->x, level, &u, w->y);
        if (st == TSR_OK) st = tsr_bvec_rotate_many(be, u, steps, 4, r);
        for (int k = 0; k < 4 && st == TSR_OK; k++) {
            st = tsr_bvec_decrypt(be, r[k], w->got);
            for (int64_t i = 0; i < n; i++) w->ref[i] = w->y[(i + steps[k]) % n];
            if (st == TSR_OK && k < 3) acc_add(a, w->got, w->ref, n);
        }
        break;
    }
    case OP_RESCALE: {
        /* an exact integer product (the constant's rounding is in the reference), then the
         * rescale: its rounding is the only error added */
        double cs = landing(be, level, s), c = 2.0 * tsr_prng_double(w->g) - 1.0;
        st = enc(w, w->x, level, &u, w->ref);
        if (st == TSR_OK) st = tsr_bvec_mul_const(be, u, c, cs);
        if (st == TSR_OK) st = tsr_bvec_rescale(be, u);
        if (st == TSR_OK) st = tsr_bvec_decrypt(be, u, w->got);
        for (int64_t i = 0; i < n; i++) w->ref[i] *= nearbyint(c * cs) / cs;
        break;
    }
    case OP_MUL_CONST_NC:
    case OP_ADD_CONST: {
        double c = 2.0 * tsr_prng_double(w->g) - 1.0;
        st = enc(w, w->x, level, &u, w->ref);
        if (st == TSR_OK)
            st = op == OP_ADD_CONST ? tsr_bvec_add_const(be, u, c)
                                    : tsr_bvec_mul_const(be, u, c, 0x1p20);
        if (st == TSR_OK) st = tsr_bvec_decrypt(be, u, w->got);
        for (int64_t i = 0; i < n; i++)
            w->ref[i] = op == OP_ADD_CONST ? w->ref[i] + c : w->ref[i] * c;
        break;
    }
    case OP_LINCOMB:
    case OP_SQ_LINCOMB:
    case OP_PROD_LINCOMB: {
        int nin = op == OP_PROD_LINCOMB ? 2 * N_PROD : N_LIN;
        int nt = op == OP_PROD_LINCOMB ? N_PROD * N_PROD : N_LIN;
        int64_t rp[2] = { 0, nt }, cols[N_PROD * N_PROD], ia[N_PROD * N_PROD], ib[N_PROD * N_PROD];
        double vals[N_PROD * N_PROD];
        for (int k = 0; k < nt; k++) {
            cols[k] = k;
            ia[k] = k / N_PROD;
            ib[k] = k % N_PROD;
            vals[k] = (2.0 * tsr_prng_double(w->g) - 1.0) / sqrt((double)nt);
        }
        for (int k = 0; k < nin && st == TSR_OK; k++) {
            uniform(w->g, w->x, n);
            st = enc(w, w->x, level, &in[k], w->dx[k]);
        }
        if (st != TSR_OK) break;
        double s_in = op == OP_LINCOMB ? s : s * s / tsr_backend_prime(be, level);
        int lo = op == OP_LINCOMB ? level : level - 1;
        double cs = landing(be, lo, s_in);
        const tsr_bvec *const *ci = (const tsr_bvec *const *)in;
        if (op == OP_LINCOMB)
            st = tsr_bvec_lincomb(be, &o, 1, ci, (size_t)nin, rp, cols, vals, cs);
        else if (op == OP_SQ_LINCOMB)
            st = tsr_bvec_sq_lincomb(be, &o, 1, ci, (size_t)nin, rp, cols, vals, cs);
        else
            st = tsr_bvec_prod_lincomb(be, &o, 1, ci, N_PROD, ci + N_PROD, N_PROD, rp, ia, ib, vals,
                                       cs);
        if (st == TSR_OK) st = tsr_bvec_rescale(be, o);
        if (st == TSR_OK) st = tsr_bvec_decrypt(be, o, w->got);
        for (int64_t i = 0; i < n; i++) {
            double t = 0;
            for (int k = 0; k < nt; k++)
                t += vals[k] * (op == OP_LINCOMB      ? w->dx[k][i]
                                : op == OP_SQ_LINCOMB ? w->dx[k][i] * w->dx[k][i]
                                                      : w->dx[ia[k]][i] * w->dx[N_PROD + ib[k]][i]);
            w->ref[i] = t;
        }
        break;
    }
    default:
        break;
    }
    if (st == TSR_OK) acc_add(a, w->got, w->ref, n);
    tsr_bvec_free(be, u);
    tsr_bvec_free(be, v);
    tsr_bvec_free(be, o);
    for (int k = 0; k < 4; k++) tsr_bvec_free(be, r[k]);
    for (int k = 0; k < 2 * N_LIN; k++) tsr_bvec_free(be, in[k]);
    return st;
}

static tsr_status measure(tsr_backend *be, tsr_prng *g, int op, int level, int samples,
                          double *bits, double *worst) {
    work w = { .be = be, .slots = tsr_backend_slots(be), .g = g };
    size_t sz = (size_t)w.slots * sizeof(double);
    tsr_status st = TSR_OK;
    w.x = malloc(sz);
    w.y = malloc(sz);
    w.ref = malloc(sz);
    w.got = malloc(sz);
    for (int k = 0; k < N_LIN; k++)
        if (!(w.dx[k] = malloc(sz))) st = TSR_ERR_NOMEM;
    if (!w.x || !w.y || !w.ref || !w.got) st = TSR_ERR_NOMEM;
    if (st != TSR_OK) st = tsr_fail(st, "out of memory");
    acc a = { 0, 0, 0 };
    for (int k = 0; k < samples && st == TSR_OK; k++) st = sample(&w, op, level, &a);
    *bits = acc_bits(&a);
    *worst = a.max > 0 ? -log2(a.max) : INFINITY;
    free(w.x);
    free(w.y);
    free(w.ref);
    free(w.got);
    for (int k = 0; k < N_LIN; k++) free(w.dx[k]);
    return st;
}

typedef struct model_opts {
    const char *path;
    long batch, log_n, keys, seed;
    int public_key; /* encrypt with a public key (else the secret key, as predict) */
    tsr_nn_packing packing;
} model_opts;

/* One real CKKS run of plan p on x with fresh keys, encrypting with a public key or not. */
static tsr_status ckks_run(const tsr_nn_plan *p, const double *x, int n, int public_key,
                           double *out) {
    tsr_ckks_params *par = NULL;
    tsr_ckks_secret_key *sk = NULL;
    tsr_ckks_public_key *pk = NULL;
    tsr_ckks_relin_key *rk = NULL;
    tsr_ckks_galois_keys *gk = NULL;
    tsr_backend *be = NULL;
    tsr_nn_runner *r = NULL;
    tsr_tile *in = NULL, *y = NULL;
    tsr_status st = tsr_nn_plan_params(p, &par);
    if (st == TSR_OK) st = tsr_nn_keygen(p, par, &sk, &rk, &gk);
    if (st == TSR_OK && public_key) st = tsr_ckks_public_key_create(&pk, sk);
    if (st == TSR_OK) st = tsr_backend_ckks_create(par, pk, sk, rk, gk, &be);
    if (st == TSR_OK) st = tsr_nn_runner_create(p, be, &r);
    if (st == TSR_OK) st = tsr_nn_encrypt(p, tsr_nn_runner_backend(r), x, n, &in);
    if (st == TSR_OK) st = tsr_nn_run(r, in, &y, NULL);
    if (st == TSR_OK) st = tsr_nn_decrypt(p, y, n, out);
    tsr_tile_free(y);
    tsr_tile_free(in);
    tsr_nn_runner_free(r);
    tsr_backend_free(be);
    tsr_ckks_galois_keys_free(gk);
    tsr_ckks_relin_key_free(rk);
    tsr_ckks_public_key_free(pk);
    tsr_ckks_secret_key_free(sk);
    tsr_ckks_params_free(par);
    return st;
}

static int run_model(const model_opts *mo) {
    const char *verb = "bench noise";
    tsr_nn_model *m = NULL;
    tsr_nn_plan *p = NULL;
    tsr_status st = tsr_nn_import_onnx(mo->path, NULL, &m, NULL);
    if (st != TSR_OK) return cli_fail(verb, st, "importing the model");
    tsr_nn_compile_opts o;
    tsr_nn_compile_opts_default(&o);
    o.batch = (int)mo->batch;
    o.packing = mo->packing;
    o.log_n = (int)mo->log_n;
    o.min_bits = 0; /* the plan compile would choose without the floor */
    st = tsr_nn_compile(m, &o, &p);
    if (st != TSR_OK) {
        tsr_nn_model_free(m);
        return cli_fail(verb, st, "compiling");
    }
    int n = (int)mo->batch;
    int64_t ni = tsr_nn_model_input_size(m), no = tsr_nn_model_output_size(m);
    double *x = malloc((size_t)(n * ni) * sizeof *x), *ref = malloc((size_t)(n * no) * sizeof *x),
           *got = malloc((size_t)(n * no) * sizeof *x);
    if (!x || !ref || !got) st = tsr_fail(TSR_ERR_NOMEM, "out of memory");
    double lo, hi;
    tsr_nn_plan_input_range(p, &lo, &hi);
    uint8_t sd[TSR_SEED_BYTES] = { 0 };
    for (int i = 0; i < 8; i++) sd[i] = (uint8_t)((uint64_t)mo->seed >> (8 * i));
    tsr_prng g;
    tsr_prng_init(&g, sd, 0x696e70757473ull);
    for (int64_t i = 0; x && i < n * ni; i++) x[i] = lo + (hi - lo) * tsr_prng_double(&g);
    if (st == TSR_OK) st = tsr_nn_model_forward(m, x, n, ref);
    tsr_ckks_param_spec spec = p->spec;
    printf("\n%s, batch %d: N = 2^%u, %u levels, scale 2^%u, %u x %u-bit special prime%s, "
           "dnum %u; inputs uniform in [%g, %g]\n",
           mo->path, n, spec.log_n, spec.levels, spec.scale_bits, spec.special_primes,
           spec.special_prime_bits, spec.special_primes == 1 ? "" : "s", spec.dnum, lo, hi);
    tsr_nn_plan_print(p, stdout);
    double eb = 0, ee = 0;
    if (st == TSR_OK) st = nn_plan_estimate_bits(p, x, n, &eb, &ee);
    if (st == TSR_OK) printf("  mockup estimate:  %6.2f bits (largest error %.3g)\n", eb, ee);
    fflush(stdout);
    double worst = INFINITY, sum = 0;
    for (long k = 0; k < mo->keys && st == TSR_OK; k++) {
        double e;
        st = ckks_run(p, x, n, mo->public_key, got);
        if (st != TSR_OK) break;
        double b = nn_precision_bits(got, ref, n * no, &e);
        printf("  ckks, key set %ld: %6.2f bits (largest error %.3g)\n", k + 1, b, e);
        fflush(stdout);
        worst = fmin(worst, b);
        sum += b;
    }
    if (st == TSR_OK)
        printf("  estimate - ckks:  %+6.2f (mean over key sets), %+6.2f (worst key set)\n",
               eb - sum / (double)mo->keys, eb - worst);
    free(x);
    free(ref);
    free(got);
    tsr_nn_plan_free(p);
    tsr_nn_model_free(m);
    return st == TSR_OK ? 0 : cli_fail(verb, st, "running the plan");
}

typedef struct chain {
    int log_n, levels;
} chain;

/* The table for one chain: every operation at the top level and its lowest useful one. */
static int run_ops(const char *verb, const tsr_ckks_param_spec *spec, tsr_backend *ck,
                   tsr_backend *cs, tsr_backend *mk, int samples, uint64_t seed) {
    printf("\nN = 2^%u, %u levels: scale 2^%u, q0 %u bits, %u x %u-bit special prime%s, dnum %u\n",
           spec->log_n, spec->levels, spec->scale_bits, spec->first_prime_bits,
           spec->special_primes, spec->special_prime_bits, spec->special_primes == 1 ? "" : "s",
           spec->dnum);
    printf("  %-26s %5s %22s %22s\n", "", "", "rms error", "largest error");
    printf("  %-26s %5s %7s %7s %6s %7s %7s %6s\n", "operation", "level", "ckks", "mockup", "diff",
           "ckks", "mockup", "diff");
    uint8_t sd[TSR_SEED_BYTES] = { 0 };
    for (int i = 0; i < 8; i++) sd[i] = (uint8_t)(seed >> (8 * i));
    tsr_prng gc, gm;
    tsr_prng_init(&gc, sd, 0x6e6f697365ull);
    tsr_prng_init(&gm, sd, 0x6e6f697365ull);
    int top = (int)spec->levels, rc = 0;
    tsr_status st;
    for (int op = 0; op < OP_COUNT_ && rc == 0; op++) {
        int lv[2] = { top, ops[op].min_level > 1 ? ops[op].min_level : 1 };
        for (int k = 0; k < 2 && rc == 0; k++) {
            if (k == 1 && (lv[1] >= top || op <= OP_ENCODE_NC)) break;
            double bc = 0, bm = 0, wc = 0, wm = 0;
            st = measure(op == OP_ENC_SK ? cs : ck, &gc, op, lv[k], samples, &bc, &wc);
            if (st == TSR_OK) st = measure(mk, &gm, op, lv[k], samples, &bm, &wm);
            if (st != TSR_OK) {
                rc = cli_fail(verb, st, ops[op].name);
                break;
            }
            printf("  %-26s %5d %7.2f %7.2f %+6.2f %7.2f %7.2f %+6.2f  %s\n", ops[op].name, lv[k],
                   bc, bm, bm - bc, wc, wm, wm - wc, ops[op].what);
            fflush(stdout);
        }
    }
    return rc;
}

static int run_chain(const chain *c, int samples, uint64_t seed) {
    const char *verb = "bench noise";
    tsr_ckks_param_spec spec;
    tsr_status st =
        nn_choose_params((unsigned)c->log_n, c->levels, NN_DEFAULT_OUTPUT_BITS, 0, 0, &spec);
    if (st != TSR_OK) return cli_fail(verb, st, "choosing the chain");
    tsr_ckks_params *p = NULL;
    tsr_ckks_secret_key *sk = NULL;
    tsr_ckks_public_key *pk = NULL;
    tsr_ckks_relin_key *rk = NULL;
    tsr_backend *ck = NULL, *cs = NULL, *mk = NULL;
    st = tsr_ckks_params_create(&p, &spec);
    if (st == TSR_OK) st = tsr_ckks_secret_key_create(&sk, p);
    if (st == TSR_OK) st = tsr_ckks_public_key_create(&pk, sk);
    if (st == TSR_OK) st = tsr_ckks_relin_key_create(&rk, sk);
    if (st == TSR_OK) st = tsr_backend_ckks_create(p, pk, sk, rk, NULL, &ck);
    if (st == TSR_OK) st = tsr_backend_ckks_create(p, NULL, sk, NULL, NULL, &cs);
    tsr_mockup_params mp;
    tsr_mockup_params_default(&mp, 2, 1);
    mp.noise = 1;
    mp.seed = seed;
    if (st == TSR_OK) st = tsr_backend_mockup_create_for(p, &mp, &mk);
    const int64_t steps[4] = { 1, 2, 3, 5 };
    if (st == TSR_OK) st = tsr_backend_declare_rotations(ck, steps, 4);
    if (st == TSR_OK) st = tsr_backend_declare_rotations(mk, steps, 4);
    const int rc = st == TSR_OK ? run_ops(verb, &spec, ck, cs, mk, samples, seed)
                                : cli_fail(verb, st, "setting up CKKS");
    tsr_backend_free(mk);
    tsr_backend_free(cs);
    tsr_backend_free(ck);
    tsr_ckks_relin_key_free(rk);
    tsr_ckks_public_key_free(pk);
    tsr_ckks_secret_key_free(sk);
    tsr_ckks_params_free(p);
    return rc;
}

int bench_noise_main(int argc, char **argv) {
    if (cli_wants_help(argc, argv)) {
        printf("usage: tessera bench noise [--chain LOGN:LEVELS]... [--samples K] [--seed S]\n"
               "       tessera bench noise --model M.onnx [--batch B] [--log-n N] [--packing P]\n"
               "                           [--keys K] [--public-key] [--seed S]\n\n"
               "The error each CKKS operation adds (fresh encryption, encoding, products,\n"
               "relinearization, rotations, rescale, constants, fused sums of 32-256 terms)\n"
               "on real CKKS and on the noisy mockup the compiler's precision floor runs,\n"
               "in bits (-log2 of the rms error over all slots of K outputs, default 4),\n"
               "on the chains compile picks for a ring degree and depth. Default chains:\n"
               "13:5 14:8 14:15 15:14 (15:14 peaks at 3.4 GiB). One thread. Results:\n"
               "docs/BENCHMARKS.md.\n\n"
               "With --model: the plan compile picks (without the precision floor) for\n"
               "batch B (default 8), its precision estimate on the noisy mockup and the\n"
               "precision of K (default 2) real CKKS runs with fresh keys (encrypting with\n"
               "the secret key as predict does, or with --public-key a public key), on the same B\n"
               "inputs drawn uniformly over the plan's input range, in bits:\n"
               "log2(max(1, |y|) / largest error), as compile's floor.\n");
        return 0;
    }
    const char *items[8];
    cli_list list = { items, 0, 8 };
    /* 0 / NULL: not given (each mode refuses the other's options), then the defaults */
    long samples = 0, seed = 1;
    model_opts mo = { .batch = 0, .keys = 0, .seed = 1 };
    const char *packing = NULL;
    const cli_opt opts[] = {
        { "--chain", CLI_LIST, &list, 0, 0 },
        { "--samples", CLI_LONG, &samples, 1, 1000 },
        { "--seed", CLI_LONG, &seed, 0, 1L << 40 },
        { "--model", CLI_STR, &mo.path, 0, 0 },
        { "--batch", CLI_LONG, &mo.batch, 1, 1 << 16 },
        { "--log-n", CLI_LONG, &mo.log_n, 13, 16 },
        { "--packing", CLI_STR, &packing, 0, 0 },
        { "--keys", CLI_LONG, &mo.keys, 1, 100 },
        { "--public-key", CLI_FLAG, &mo.public_key, 0, 0 },
    };
    int prc =
        cli_parse_args("bench noise", argc, argv, opts, sizeof opts / sizeof opts[0], NULL, 0);
    if (prc) return prc;
    if (mo.path && (list.n || samples))
        return cli_usage_error("bench noise", "--chain and --samples measure single operations, "
                                              "not a --model plan");
    if (!mo.path && (mo.batch || mo.log_n || packing || mo.keys))
        return cli_usage_error("bench noise",
                               "--batch, --log-n, --packing and --keys need --model");
    if (!samples) samples = 4;
    if (!mo.batch) mo.batch = 8;
    if (!mo.keys) mo.keys = 2;
    if (nn_cli_parse_packing("bench noise", packing ? packing : "auto", &mo.packing)) return 2;
    if (mo.path) {
        mo.seed = seed;
        int saved = tsr_get_num_threads();
        tsr_set_num_threads(1);
        int rc = run_model(&mo);
        tsr_set_num_threads(saved);
        return rc;
    }
    chain ch[8];
    int nc = 0;
    if (list.n == 0) {
        const chain def[] = { { 13, 5 }, { 14, 8 }, { 14, 15 }, { 15, 14 } };
        for (size_t i = 0; i < sizeof def / sizeof def[0]; i++) ch[nc++] = def[i];
    }
    for (int i = 0; i < list.n; i++) {
        bench_chain bc;
        if (bench_parse_chain("bench noise", list.items[i], &bc)) return 2;
        if (bc.hi != bc.lo || bc.scale_bits)
            return cli_usage_error("bench noise",
                                   "--chain '%s': one chain of the compiler's scale per --chain "
                                   "(LOGN:LEVELS, no -HI or @SCALE)",
                                   list.items[i]);
        if (bc.lo < 2)
            return cli_usage_error("bench noise", "--chain '%s': needs at least 2 levels",
                                   list.items[i]);
        ch[nc].log_n = bc.log_n;
        ch[nc++].levels = bc.lo;
    }
    int saved = tsr_get_num_threads();
    tsr_set_num_threads(1);
    int rc = 0;
    for (int i = 0; i < nc && rc == 0; i++) rc = run_chain(&ch[i], (int)samples, (uint64_t)seed);
    tsr_set_num_threads(saved);
    return rc;
}
