/*
 * bench/bench_ckks.c - `tessera bench ckks`: single-threaded medians of the
 * CKKS primitives (NTT of one limb, encode, decode, encrypt, decrypt, add,
 * multiply, relinearize, rescale, rotate, 8 hoisted rotations,
 * mul+relin, mul+relin+rescale) and the serialized sizes of keys and
 * ciphertexts, for one or more parameter presets. Text or JSON output.
 * Record results in docs/BENCHMARKS.md with the command, commit and CPU.
 */
#include "bench.h"
#include "cli.h"
#include "ckks/ckks_internal.h"
#include "core/alloc.h"
#include "core/error.h"
#include "core/progress.h"
#include "ring/ntt.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef struct row {
    const char *name;
    double median_s;     /* wall clock */
    double median_cpu_s; /* CPU time of the calling thread */
} row;

/* CPU time of the calling thread: unaffected by other jobs preempting us on
 * a shared machine (cache and memory-bandwidth contention still count). */
static double thread_cpu(void) {
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

enum { MAX_ROWS = 24, MAX_RUNS = 1000 };

typedef struct ctx {
    tsr_ckks_params *p;
    tsr_ckks_secret_key *sk;
    tsr_ckks_public_key *pk;
    tsr_ckks_relin_key *rk;
    tsr_ckks_galois_keys *gk;
    tsr_ckks_encoder *enc;
    tsr_ckks_evaluator *ev;
    tsr_ckks_plaintext *pt;
    tsr_ckks_ciphertext *a, *b, *out, *prod;
    tsr_ckks_ciphertext *hoist[8];
    double *vals;
    uint64_t *limb;
} ctx;

typedef tsr_status (*op_fn)(ctx *c);

static tsr_status op_ntt_fwd(ctx *c) {
    tsr_ntt_forward(c->p->qp->ntt[0], c->limb);
    return TSR_OK;
}
static tsr_status op_ntt_inv(ctx *c) {
    tsr_ntt_inverse(c->p->qp->ntt[0], c->limb);
    return TSR_OK;
}
static tsr_status op_encode(ctx *c) {
    return tsr_ckks_encode_real(c->enc, c->pt, c->vals, c->p->slots, TSR_CKKS_TOP_LEVEL, 0);
}
static tsr_status op_decode(ctx *c) {
    return tsr_ckks_decode_real(c->enc, c->pt, c->vals, c->p->slots, NULL);
}
static tsr_status op_encrypt(ctx *c) {
    return tsr_ckks_encrypt(c->pk, c->out, c->pt);
}
static tsr_status op_encrypt_sk(ctx *c) {
    return tsr_ckks_encrypt_symmetric(c->sk, c->out, c->pt);
}
static tsr_status op_decrypt(ctx *c) {
    return tsr_ckks_decrypt(c->sk, c->pt, c->a);
}
static tsr_status op_add(ctx *c) {
    return tsr_ckks_add(c->ev, c->out, c->a, c->b);
}
static tsr_status op_mul(ctx *c) {
    return tsr_ckks_mul(c->ev, c->prod, c->a, c->b);
}
static tsr_status op_relin(ctx *c) {
    return tsr_ckks_relinearize(c->ev, c->out, c->prod);
}
static tsr_status op_rescale(ctx *c) {
    return tsr_ckks_rescale(c->ev, c->out, c->a);
}
static tsr_status op_rotate(ctx *c) {
    return tsr_ckks_rotate(c->ev, c->out, c->a, 1);
}
static tsr_status op_conjugate(ctx *c) {
    return tsr_ckks_conjugate(c->ev, c->out, c->a);
}
static const int hoist_steps[8] = { 1, 2, 3, 4, 5, 6, 7, 8 };
static tsr_status op_hoisted(ctx *c) {
    return tsr_ckks_rotate_hoisted(c->ev, c->hoist, c->a, hoist_steps, 8);
}
static tsr_status op_mul_relin(ctx *c) {
    return tsr_ckks_mul_relin(c->ev, c->out, c->a, c->b);
}
static tsr_status op_mul_relin_rescale(ctx *c) {
    return tsr_ckks_mul_relin_rescale(c->ev, c->out, c->a, c->b);
}

static const struct {
    const char *name;
    op_fn fn;
} ops[] = {
    { "ntt_forward_one_limb", op_ntt_fwd },
    { "ntt_inverse_one_limb", op_ntt_inv },
    { "encode", op_encode },
    { "decode", op_decode },
    { "encrypt_public_key", op_encrypt },
    { "encrypt_secret_key_seeded", op_encrypt_sk },
    { "decrypt", op_decrypt },
    { "add", op_add },
    { "multiply_no_relin", op_mul },
    { "relinearize", op_relin },
    { "rescale", op_rescale },
    { "rotate", op_rotate },
    { "conjugate", op_conjugate },
    { "rotate_hoisted_8", op_hoisted },
    { "mul_relin", op_mul_relin },
    { "mul_relin_rescale", op_mul_relin_rescale },
};
#define N_OPS (sizeof ops / sizeof ops[0])

static void ctx_free(ctx *c) {
    for (int i = 0; i < 8; i++) tsr_ckks_ciphertext_free(c->hoist[i]);
    tsr_ckks_ciphertext_free(c->a);
    tsr_ckks_ciphertext_free(c->b);
    tsr_ckks_ciphertext_free(c->out);
    tsr_ckks_ciphertext_free(c->prod);
    tsr_ckks_plaintext_free(c->pt);
    tsr_ckks_evaluator_free(c->ev);
    tsr_ckks_encoder_free(c->enc);
    tsr_ckks_galois_keys_free(c->gk);
    tsr_ckks_relin_key_free(c->rk);
    tsr_ckks_public_key_free(c->pk);
    tsr_ckks_secret_key_free(c->sk);
    tsr_ckks_params_free(c->p);
    free(c->vals);
    tsr_free(c->limb);
}

static tsr_status ctx_init(ctx *c, const char *preset) {
    memset(c, 0, sizeof *c);
    TSR_TRY(tsr_ckks_params_create_preset(&c->p, preset));
    TSR_TRY(tsr_ckks_secret_key_create(&c->sk, c->p));
    TSR_TRY(tsr_ckks_public_key_create(&c->pk, c->sk));
    TSR_TRY(tsr_ckks_relin_key_create(&c->rk, c->sk));
    TSR_TRY(tsr_ckks_galois_keys_create(&c->gk, c->sk, hoist_steps, 8, TSR_CKKS_GALOIS_CONJUGATE));
    TSR_TRY(tsr_ckks_encoder_create(&c->enc, c->p));
    TSR_TRY(tsr_ckks_evaluator_create(&c->ev, c->p, c->rk, c->gk));
    TSR_TRY(tsr_ckks_plaintext_create(&c->pt, c->p));
    TSR_TRY(tsr_ckks_ciphertext_create(&c->a, c->p));
    TSR_TRY(tsr_ckks_ciphertext_create(&c->b, c->p));
    TSR_TRY(tsr_ckks_ciphertext_create(&c->out, c->p));
    TSR_TRY(tsr_ckks_ciphertext_create(&c->prod, c->p));
    for (int i = 0; i < 8; i++) TSR_TRY(tsr_ckks_ciphertext_create(&c->hoist[i], c->p));
    c->vals = malloc(c->p->slots * sizeof *c->vals);
    c->limb = tsr_alloc(c->p->n * sizeof *c->limb);
    if (!c->vals || !c->limb) return TSR_ERR_NOMEM;
    for (size_t i = 0; i < c->p->slots; i++) c->vals[i] = (double)(i % 97) / 97.0 - 0.5;
    for (size_t i = 0; i < c->p->n; i++) c->limb[i] = (i * 2654435761u) % c->p->primes[0];
    TSR_TRY(op_encode(c));
    TSR_TRY(tsr_ckks_encrypt(c->pk, c->a, c->pt));
    TSR_TRY(tsr_ckks_encrypt(c->pk, c->b, c->pt));
    TSR_TRY(op_mul(c));
    return TSR_OK;
}

typedef struct size_row {
    const char *name;
    uint64_t bytes;
} size_row;

static int run_preset(const char *preset, int runs, int json, int first) {
    ctx c;
    double t0 = tsr_now();
    tsr_status st = ctx_init(&c, preset);
    if (st != TSR_OK) {
        ctx_free(&c);
        return cli_fail("bench ckks", st, "setting up");
    }
    double setup = tsr_now() - t0;
    row rows[N_OPS];
    double *samples = malloc((size_t)runs * sizeof *samples);
    double *cpu = malloc((size_t)runs * sizeof *cpu);
    if (!samples || !cpu) {
        free(samples);
        free(cpu);
        ctx_free(&c);
        return cli_fail("bench ckks", TSR_ERR_NOMEM, "allocating");
    }
    tsr_progress prog;
    tsr_progress_begin(&prog, preset, N_OPS, "op");
    for (size_t o = 0; o < N_OPS; o++) {
        /* one warm-up run (allocates scratch, faults pages in) */
        st = ops[o].fn(&c);
        for (int r = 0; r < runs && st == TSR_OK; r++) {
            double s = tsr_now(), sc = thread_cpu();
            st = ops[o].fn(&c);
            samples[r] = tsr_now() - s;
            cpu[r] = thread_cpu() - sc;
        }
        if (st != TSR_OK) {
            free(samples);
            free(cpu);
            ctx_free(&c);
            return cli_fail("bench ckks", st, ops[o].name);
        }
        rows[o].name = ops[o].name;
        rows[o].median_s = bench_median(samples, (size_t)runs);
        rows[o].median_cpu_s = bench_median(cpu, (size_t)runs);
        tsr_progress_update(&prog, o + 1, "%s", ops[o].name);
    }
    tsr_progress_end(&prog, NULL);
    free(samples);
    free(cpu);

    tsr_ckks_ciphertext *seeded = NULL;
    tsr_ckks_ciphertext_create(&seeded, c.p);
    tsr_ckks_encrypt_symmetric(c.sk, seeded, c.pt);
    tsr_ckks_galois_keys *one = NULL;
    const int step = 1;
    tsr_ckks_galois_keys_create(&one, c.sk, &step, 1, 0);
    size_row sizes[] = {
        { "ciphertext_fresh", tsr_ckks_ciphertext_serialized_size(c.a) },
        { "ciphertext_seeded", seeded ? tsr_ckks_ciphertext_serialized_size(seeded) : 0 },
        { "ciphertext_level0", 0 },
        { "public_key", tsr_ckks_public_key_serialized_size(c.pk) },
        { "relin_key", tsr_ckks_relin_key_serialized_size(c.rk) },
        { "galois_key_one", one ? tsr_ckks_galois_keys_serialized_size(one) : 0 },
        { "relin_key_in_memory", (uint64_t)2 * c.p->dnum * c.p->nall * c.p->n * 8 },
    };
    if (seeded) {
        tsr_ckks_drop_level(c.ev, seeded, c.a, 0);
        sizes[2].bytes = tsr_ckks_ciphertext_serialized_size(seeded);
    }
    tsr_ckks_ciphertext_free(seeded);
    tsr_ckks_galois_keys_free(one);

    int limbs = c.p->L + 1;
    if (json) {
        printf("%s  {\"preset\": \"%s\", \"n\": %zu, \"limbs\": %d, \"special_primes\": %d, "
               "\"dnum\": %d, \"log_qp\": %.1f, \"runs\": %d, \"threads\": 1, \"simd\": \"%s\",\n"
               "   \"median_seconds\": {",
               first ? "" : ",\n", preset, c.p->n, limbs, c.p->k, c.p->dnum, c.p->log_qp, runs,
               tsr_simd_name(tsr_simd_active()));
        for (size_t o = 0; o < N_OPS; o++)
            printf("%s\"%s\": %.9f", o ? ", " : "", rows[o].name, rows[o].median_s);
        printf("},\n   \"median_cpu_seconds\": {");
        for (size_t o = 0; o < N_OPS; o++)
            printf("%s\"%s\": %.9f", o ? ", " : "", rows[o].name, rows[o].median_cpu_s);
        printf("},\n   \"bytes\": {");
        for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++)
            printf("%s\"%s\": %llu", i ? ", " : "", sizes[i].name,
                   (unsigned long long)sizes[i].bytes);
        printf("}}");
    } else {
        printf("\nCKKS preset %s: N = %zu, %d limbs, %d special primes, dnum %d, log2 QP %.1f\n",
               preset, c.p->n, limbs, c.p->k, c.p->dnum, c.p->log_qp);
        printf("one thread, SIMD %s, median of %d runs (setup incl. keygen %.2f s)\n",
               tsr_simd_name(tsr_simd_active()), runs, setup);
        printf("  %-28s %13s %13s\n", "operation", "wall", "thread CPU");
        for (size_t o = 0; o < N_OPS; o++) {
            double s = rows[o].median_s, sc = rows[o].median_cpu_s;
            if (s < 1e-3)
                printf("  %-28s %10.1f us %10.1f us\n", rows[o].name, s * 1e6, sc * 1e6);
            else
                printf("  %-28s %10.2f ms %10.2f ms\n", rows[o].name, s * 1e3, sc * 1e3);
        }
        printf("sizes (serialized unless noted):\n");
        for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++)
            printf("  %-28s %10.2f MiB\n", sizes[i].name, (double)sizes[i].bytes / 1048576.0);
    }
    ctx_free(&c);
    return 0;
}

int bench_ckks_main(int argc, char **argv) {
    if (cli_wants_help(argc, argv)) {
        printf("usage: tessera bench ckks [--preset NAME]... [--json] [--runs K]\n\n"
               "Single-threaded median of K runs (default 20) of the CKKS primitives, and\n"
               "key/ciphertext sizes. Default presets: n15-l14 and n16-l21 (the rows of\n"
               "docs/BENCHMARKS.md). Presets:\n");
        for (size_t k = 0; tsr_ckks_preset_name(k); k++)
            printf("  %-9s %s\n", tsr_ckks_preset_name(k), tsr_ckks_preset_description(k));
        return 0;
    }
    const char *presets[8];
    cli_list list = { presets, 0, 8 };
    long runs_arg = 20;
    int json = 0;
    const cli_opt opts[] = {
        { "--preset", CLI_LIST, &list, 0, 0 },
        { "--json", CLI_FLAG, &json, 0, 0 },
        { "--runs", CLI_LONG, &runs_arg, 1, MAX_RUNS },
    };
    int prc = cli_parse_args("bench ckks", argc, argv, opts, sizeof opts / sizeof opts[0], NULL, 0);
    if (prc) return prc;
    int np = list.n, runs = (int)runs_arg;
    if (np == 0) {
        presets[np++] = "n15-l14";
        presets[np++] = "n16-l21";
    }
    for (int i = 0; i < np; i++) {
        tsr_ckks_param_spec s;
        if (tsr_ckks_preset_spec(presets[i], &s) != TSR_OK)
            return cli_fail("bench ckks", TSR_ERR_NOT_FOUND, "choosing the preset");
    }
    int saved = tsr_get_num_threads();
    tsr_set_num_threads(1);
    int rc = 0;
    if (json) printf("[\n");
    for (int i = 0; i < np && rc == 0; i++) rc = run_preset(presets[i], runs, json, i == 0);
    if (json) printf("\n]\n");
    tsr_set_num_threads(saved);
    return rc;
}
