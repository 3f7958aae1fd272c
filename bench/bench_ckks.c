/*
 * bench/bench_ckks.c - `tessera bench ckks`: single-threaded medians of the
 * CKKS primitives (NTT of one limb, encode, decode, encrypt, decrypt, add,
 * multiply, relinearize, rescale, rotate, 8 hoisted rotations, N rotations
 * by one step (rotate_many_N, on request),
 * mul+relin, mul+relin+rescale, ciphertext x plaintext) and the serialized
 * sizes of keys and ciphertexts, for parameter presets or for the 128-bit
 * chains the network compiler picks (--chain: nn_choose_params, one-prime
 * digits and one special prime at N = 2^13..2^15; --special-primes K: the
 * alternative with K of them, nn_chain_alternatives). Text or JSON output.
 * Record results in docs/BENCHMARKS.md with the command, commit and CPU.
 */
#include "bench.h"
#include "cli.h"
#include "ckks/ckks_internal.h"
#include "core/alloc.h"
#include "core/error.h"
#include "core/progress.h"
#include "nn/nn_internal.h"
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
    tsr_ckks_ciphertext *many_in[32], *many_out[32]; /* copies of a; rotate_many_N */
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
static tsr_status op_mul_plain(ctx *c) {
    return tsr_ckks_mul_plain(c->ev, c->out, c->a, c->pt);
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
/* n ciphertexts rotated by 1 with one key (tsr_ckks_rotate_many); per rotation: / n */
static tsr_status rotate_many(ctx *c, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (!c->many_in[i]) { /* made by the warm-up run */
            TSR_TRY(tsr_ckks_ciphertext_create(&c->many_in[i], c->p));
            TSR_TRY(tsr_ckks_ciphertext_create(&c->many_out[i], c->p));
            TSR_TRY(tsr_ckks_ciphertext_copy(c->many_in[i], c->a));
        }
    return tsr_ckks_rotate_many(c->ev, c->many_out, (const tsr_ckks_ciphertext *const *)c->many_in,
                                n, 1);
}
static tsr_status op_rotate_many_4(ctx *c) {
    return rotate_many(c, 4);
}
static tsr_status op_rotate_many_19(ctx *c) {
    return rotate_many(c, 19);
}
static tsr_status op_rotate_many_32(ctx *c) {
    return rotate_many(c, 32);
}
static tsr_status op_mul_relin(ctx *c) {
    return tsr_ckks_mul_relin(c->ev, c->out, c->a, c->b);
}
static tsr_status op_mul_relin_rescale(ctx *c) {
    return tsr_ckks_mul_relin_rescale(c->ev, c->out, c->a, c->b);
}

/* product: the op consumes a level (a product's scale, a rescale), so it cannot run on
 * operands at level 0; named: run only when --only names it (rotate_many_N: N ciphertexts) */
static const struct {
    const char *name;
    op_fn fn;
    int product, named;
} ops[] = {
    { "ntt_forward_one_limb", op_ntt_fwd, 0, 0 },
    { "ntt_inverse_one_limb", op_ntt_inv, 0, 0 },
    { "encode", op_encode, 0, 0 },
    { "decode", op_decode, 0, 0 },
    { "encrypt_public_key", op_encrypt, 0, 0 },
    { "encrypt_secret_key_seeded", op_encrypt_sk, 0, 0 },
    { "decrypt", op_decrypt, 0, 0 },
    { "add", op_add, 0, 0 },
    { "multiply_plain", op_mul_plain, 1, 0 },
    { "multiply_no_relin", op_mul, 1, 0 },
    { "relinearize", op_relin, 1, 0 },
    { "rescale", op_rescale, 1, 0 },
    { "rotate", op_rotate, 0, 0 },
    { "conjugate", op_conjugate, 0, 0 },
    { "rotate_hoisted_8", op_hoisted, 0, 0 },
    { "rotate_many_4", op_rotate_many_4, 0, 1 },
    { "rotate_many_19", op_rotate_many_19, 0, 1 },
    { "rotate_many_32", op_rotate_many_32, 0, 1 },
    { "mul_relin", op_mul_relin, 1, 0 },
    { "mul_relin_rescale", op_mul_relin_rescale, 1, 0 },
};
#define N_OPS (sizeof ops / sizeof ops[0])

static void ctx_free(ctx *c) {
    for (int i = 0; i < 8; i++) tsr_ckks_ciphertext_free(c->hoist[i]);
    for (int i = 0; i < 32; i++) {
        tsr_ckks_ciphertext_free(c->many_in[i]);
        tsr_ckks_ciphertext_free(c->many_out[i]);
    }
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

/* expand: the keys' a halves stored (tsr_ckks_*_expand) instead of regenerated per key switch;
 * level: the operands' level (-1: the top) */
static tsr_status ctx_init(ctx *c, const tsr_ckks_param_spec *spec, int expand, int level) {
    memset(c, 0, sizeof *c);
    TSR_TRY(tsr_ckks_params_create(&c->p, spec));
    TSR_TRY(tsr_ckks_secret_key_create(&c->sk, c->p));
    TSR_TRY(tsr_ckks_public_key_create(&c->pk, c->sk));
    TSR_TRY(tsr_ckks_relin_key_create(&c->rk, c->sk));
    TSR_TRY(tsr_ckks_galois_keys_create(&c->gk, c->sk, hoist_steps, 8, TSR_CKKS_GALOIS_CONJUGATE));
    if (expand) {
        TSR_TRY(tsr_ckks_relin_key_expand(c->rk));
        TSR_TRY(tsr_ckks_galois_keys_expand(c->gk));
    }
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
    if (level >= 0) {
        if (level > c->p->L)
            return tsr_fail(TSR_ERR_INVALID_ARG, "--level %d: the chain has levels 0..%d", level,
                            c->p->L);
        TSR_TRY(tsr_ckks_drop_level(c->ev, c->a, c->a, level));
        TSR_TRY(tsr_ckks_drop_level(c->ev, c->b, c->b, level));
    }
    /* at level 0 there is no product to relinearize: the product ops are skipped */
    if (level != 0) TSR_TRY(op_mul(c));
    return TSR_OK;
}

typedef struct size_row {
    const char *name;
    uint64_t bytes;
} size_row;

/* One parameter set to benchmark: a preset, or a compiler chain (name "n14-l7"). */
typedef struct bench_set {
    char name[32];
    tsr_ckks_param_spec spec;
} bench_set;

typedef struct bench_opts {
    int sel[N_OPS]; /* run op o (--only); 1 for every op by default */
    int expand;     /* --expand-keys */
    int level;      /* --level, -1: the top */
    int runs, json;
} bench_opts;

static int run_preset(const bench_set *set, const bench_opts *o_, int first) {
    ctx c;
    const char *preset = set->name;
    const int *sel = o_->sel, expand = o_->expand, runs = o_->runs, json = o_->json;
    double t0 = tsr_now();
    tsr_status st = ctx_init(&c, &set->spec, expand, o_->level);
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
    const int at0 = tsr_ckks_ciphertext_level(c.a) == 0;
    for (size_t o = 0; o < N_OPS; o++) {
        rows[o].name = NULL;
        if (!sel[o] || (at0 && ops[o].product)) continue;
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

    /* sizes of top-level ciphertexts, whatever --level is (decrypt left pt at the operands'
     * level) */
    tsr_ckks_ciphertext *fresh = NULL, *seeded = NULL;
    if (op_encode(&c) != TSR_OK || tsr_ckks_ciphertext_create(&fresh, c.p) != TSR_OK ||
        tsr_ckks_encrypt(c.pk, fresh, c.pt) != TSR_OK) {
        tsr_ckks_ciphertext_free(fresh);
        fresh = NULL;
    }
    tsr_ckks_ciphertext_create(&seeded, c.p);
    tsr_ckks_encrypt_symmetric(c.sk, seeded, c.pt);
    tsr_ckks_galois_keys *one = NULL;
    const int step = 1;
    tsr_ckks_galois_keys_create(&one, c.sk, &step, 1, 0);
    size_row sizes[] = {
        { "ciphertext_fresh", fresh ? tsr_ckks_ciphertext_serialized_size(fresh) : 0 },
        { "ciphertext_seeded", seeded ? tsr_ckks_ciphertext_serialized_size(seeded) : 0 },
        { "ciphertext_level0", 0 },
        { "public_key", tsr_ckks_public_key_serialized_size(c.pk) },
        { "relin_key", tsr_ckks_relin_key_serialized_size(c.rk) },
        { "galois_key_one", one ? tsr_ckks_galois_keys_serialized_size(one) : 0 },
        { "relin_key_in_memory", tsr_ckks_relin_key_memory(c.rk) },
    };
    if (seeded) {
        tsr_ckks_drop_level(c.ev, seeded, c.a, 0);
        sizes[2].bytes = tsr_ckks_ciphertext_serialized_size(seeded);
    }
    tsr_ckks_ciphertext_free(fresh);
    tsr_ckks_ciphertext_free(seeded);
    tsr_ckks_galois_keys_free(one);

    int limbs = c.p->L + 1, level = tsr_ckks_ciphertext_level(c.a);
    if (json) {
        printf(
            "%s  {\"preset\": \"%s\", \"n\": %zu, \"limbs\": %d, \"special_primes\": %d, "
            "\"dnum\": %d, \"scale_bits\": %u, \"log_qp\": %.1f, \"level\": %d, \"keys\": \"%s\", "
            "\"runs\": %d, \"threads\": 1, \"simd\": \"%s\",\n"
            "   \"median_seconds\": {",
            first ? "" : ",\n", preset, c.p->n, limbs, c.p->k, c.p->dnum, set->spec.scale_bits,
            c.p->log_qp, level, expand ? "expanded" : "seeded", runs,
            tsr_simd_name(tsr_simd_active()));
        for (size_t o = 0, k = 0; o < N_OPS; o++)
            if (rows[o].name)
                printf("%s\"%s\": %.9f", k++ ? ", " : "", rows[o].name, rows[o].median_s);
            else if (sel[o])
                printf("%s\"%s\": null", k++ ? ", " : "", ops[o].name);
        printf("},\n   \"median_cpu_seconds\": {");
        for (size_t o = 0, k = 0; o < N_OPS; o++)
            if (rows[o].name)
                printf("%s\"%s\": %.9f", k++ ? ", " : "", rows[o].name, rows[o].median_cpu_s);
            else if (sel[o])
                printf("%s\"%s\": null", k++ ? ", " : "", ops[o].name);
        printf("},\n   \"bytes\": {");
        for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++)
            printf("%s\"%s\": %llu", i ? ", " : "", sizes[i].name,
                   (unsigned long long)sizes[i].bytes);
        printf("}}");
    } else {
        printf("\nCKKS %s: N = %zu, %d limbs (scale 2^%u), %d special primes, dnum %d, log2 QP "
               "%.1f, %s keys\n",
               preset, c.p->n, limbs, set->spec.scale_bits, c.p->k, c.p->dnum, c.p->log_qp,
               expand ? "expanded" : "seeded");
        printf("operands at level %d; one thread, SIMD %s, median of %d runs (setup incl. keygen "
               "%.2f s)\n",
               level, tsr_simd_name(tsr_simd_active()), runs, setup);
        printf("  %-28s %13s %13s\n", "operation", "wall", "thread CPU");
        for (size_t o = 0; o < N_OPS; o++) {
            if (!rows[o].name && sel[o]) printf("  %-28s %13s\n", ops[o].name, "n/a (level 0)");
            if (!rows[o].name) continue;
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

/* The chains of c (one per level count) appended to sets: -1 past max sets, else 0 with *st
 * the chain choice's status. */
static int add_chains(const bench_chain *c, int specials, bench_set *sets, int *n, int max,
                      tsr_status *st) {
    *st = TSR_OK;
    for (int L = c->lo; L <= c->hi; L++) {
        if (*n >= max) return -1;
        bench_set *s = &sets[(*n)++];
        int len = c->scale_bits ? snprintf(s->name, sizeof s->name, "chain %d:%d@%d", c->log_n, L,
                                           c->scale_bits)
                                : snprintf(s->name, sizeof s->name, "chain %d:%d", c->log_n, L);
        if (!specials) {
            *st = nn_choose_params((unsigned)c->log_n, L, NN_DEFAULT_OUTPUT_BITS, c->scale_bits, 0,
                                   &s->spec);
            if (*st != TSR_OK) return 0;
            continue;
        }
        /* the alternative chain with exactly that many special primes (tessera compile's
         * "alt" chains) */
        tsr_ckks_param_spec alt[NN_MAX_CHAINS];
        int na = nn_chain_alternatives((unsigned)c->log_n, L, NN_DEFAULT_OUTPUT_BITS, c->scale_bits,
                                       0, alt);
        int found = -1;
        for (int i = 0; i < na; i++)
            if ((int)alt[i].special_primes == specials) found = i;
        if (found < 0) {
            *st = tsr_fail(TSR_ERR_NOT_FOUND,
                           "no %d:%d chain with %d special primes (see tessera compile's log for "
                           "the chains a plan may use)",
                           c->log_n, L, specials);
            return 0;
        }
        s->spec = alt[found];
        snprintf(s->name + len, sizeof s->name - (size_t)len, " k%d", specials);
    }
    return 0;
}

enum { MAX_SETS = 48 };

int bench_ckks_main(int argc, char **argv) {
    if (cli_wants_help(argc, argv)) {
        printf(
            "usage: tessera bench ckks [--preset NAME]... [--chain LOGN:LEVELS[-HI][@SCALE]]...\n"
            "                          [--level K] [--only OP]... [--expand-keys] [--json]\n"
            "                          [--runs K]\n\n"
            "Single-threaded median of K runs (default 20) of the CKKS primitives at the\n"
            "top level, and key/ciphertext sizes. Default presets: n15-l14 and n16-l21\n"
            "(the rows of docs/BENCHMARKS.md).\n"
            "  --chain 14:8     the 128-bit chain the network compiler picks for 8 levels at\n"
            "                   N = 2^14 (most scale bits, then fewest digits, 10 bits of\n"
            "                   output headroom); 14:1-8 the chains of 1..8 levels; 14:8@37\n"
            "                   that chain with a scale of 2^37\n"
            "  --special-primes K  the chains' alternative with exactly K special primes (the\n"
            "                   largest scale, then the fewest digits, as tessera compile's\n"
            "                   \"alt\" chains), e.g. --chain 14:8 --special-primes 2\n"
            "  --level K        the operands at level K instead of the top (key switching at\n"
            "                   level K of the chain); at level 0 the ops that consume a\n"
            "                   level (products, rescale) are not run (n/a)\n"
            "  --expand-keys    store the keys' a halves (tsr_ckks_*_expand) instead of\n"
            "                   regenerating them from the seed in every key switch\n"
            "rotate_many_N (N ciphertexts rotated by 1 with one key, tsr_ckks_rotate_many; the\n"
            "row is the whole call) runs only when --only names it.\n"
            "Operations:");
        for (size_t o = 0; o < N_OPS; o++) printf("%s %s", o % 4 ? "" : "\n ", ops[o].name);
        printf("\nPresets:\n");
        for (size_t k = 0; tsr_ckks_preset_name(k); k++)
            printf("  %-9s %s\n", tsr_ckks_preset_name(k), tsr_ckks_preset_description(k));
        return 0;
    }
    const char *presets[8], *chains[8], *only[N_OPS];
    cli_list list = { presets, 0, 8 }, chain_list = { chains, 0, 8 },
             only_list = { only, 0, N_OPS };
    long runs_arg = 20, level_arg = -1, specials_arg = 0;
    bench_opts bo = { .expand = 0, .json = 0 };
    const cli_opt opts[] = {
        { "--preset", CLI_LIST, &list, 0, 0 },
        { "--chain", CLI_LIST, &chain_list, 0, 0 },
        { "--only", CLI_LIST, &only_list, 0, 0 },
        { "--expand-keys", CLI_FLAG, &bo.expand, 0, 0 },
        { "--level", CLI_LONG, &level_arg, 0, 63 },
        { "--special-primes", CLI_LONG, &specials_arg, 1, NN_CHAIN_MAX_SPECIAL },
        { "--json", CLI_FLAG, &bo.json, 0, 0 },
        { "--runs", CLI_LONG, &runs_arg, 1, MAX_RUNS },
    };
    int prc = cli_parse_args("bench ckks", argc, argv, opts, sizeof opts / sizeof opts[0], NULL, 0);
    if (prc) return prc;
    if (specials_arg && chain_list.n == 0)
        return cli_usage_error("bench ckks", "--special-primes picks a --chain's alternative: "
                                             "give --chain too");
    int ns = 0;
    bo.runs = (int)runs_arg;
    bo.level = (int)level_arg;
    bench_set sets[MAX_SETS];
    if (list.n == 0 && chain_list.n == 0) {
        presets[list.n++] = "n15-l14";
        presets[list.n++] = "n16-l21";
    }
    for (int i = 0; i < list.n; i++) {
        snprintf(sets[ns].name, sizeof sets[ns].name, "%s", presets[i]);
        if (tsr_ckks_preset_spec(presets[i], &sets[ns++].spec) != TSR_OK)
            return cli_fail("bench ckks", TSR_ERR_NOT_FOUND, "choosing the preset");
    }
    for (int i = 0; i < chain_list.n; i++) {
        tsr_status st = TSR_OK;
        bench_chain bc;
        if (bench_parse_chain("bench ckks", chains[i], &bc)) return 2;
        if (add_chains(&bc, (int)specials_arg, sets, &ns, MAX_SETS, &st) < 0)
            return cli_usage_error("bench ckks", "--chain '%s': at most %d sets in all", chains[i],
                                   MAX_SETS);
        if (st != TSR_OK) return cli_fail("bench ckks", st, "choosing the chain");
    }
    for (size_t o = 0; o < N_OPS; o++) {
        bo.sel[o] = only_list.n == 0 && !ops[o].named;
        for (int i = 0; i < only_list.n; i++) bo.sel[o] |= strcmp(only[i], ops[o].name) == 0;
    }
    for (int i = 0; i < only_list.n; i++) {
        size_t o = 0;
        while (o < N_OPS && strcmp(only[i], ops[o].name) != 0) o++;
        if (o == N_OPS)
            return cli_usage_error("bench ckks", "--only '%s': no such operation (see --help)",
                                   only[i]);
    }
    if (bo.level == 0)
        for (int i = 0; i < only_list.n; i++)
            for (size_t o = 0; o < N_OPS; o++)
                if (ops[o].product && strcmp(only[i], ops[o].name) == 0)
                    return cli_usage_error("bench ckks",
                                           "--only %s: consumes a level, so it cannot run at "
                                           "--level 0",
                                           only[i]);
    int saved = tsr_get_num_threads();
    tsr_set_num_threads(1);
    int rc = 0;
    if (bo.json) printf("[\n");
    for (int i = 0; i < ns && rc == 0; i++) rc = run_preset(&sets[i], &bo, i == 0);
    if (bo.json) printf("\n]\n");
    tsr_set_num_threads(saved);
    return rc;
}
