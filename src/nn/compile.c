/*
 * nn/compile.c - the optimizer (Aharoni et al., arXiv 2011.01805, section
 * 6): candidates are packings (one sample per slot; tile tensors with every
 * split of the slots over [D0, X, Y, D3, B] and both channel orientations)
 * times ring degrees. Each candidate is lowered by a shape-only dry run on
 * a mockup (no data: only shapes, levels and operation counts), which gives
 * its depth; the depth gives the CKKS chain (nn_choose_params) and, with
 * max_precision_trade, its faster alternatives with more special primes and
 * a slightly smaller scale (nn_chain_alternatives: each is one more
 * candidate, on the same dry run); the chain's
 * per-operation costs from the cost profile (nn/cost.c: a file made by
 * `tessera profile`, or the built-in one) times the dry run's counts give
 * the predicted latency, and the largest live set gives the memory. The
 * fastest candidate within the memory budget and the precision bounds (a
 * noisy mockup run of the candidates that win on price) wins; ties are broken by
 * memory and then by the candidate itself, so the same model, options and
 * profile always give the same plan. Nothing here times anything.
 */
#include "nn/nn_internal.h"

#include "core/alloc.h"
#include "core/error.h"
#include "core/progress.h"

#include <assert.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

void tsr_nn_compile_opts_default(tsr_nn_compile_opts *o) {
    memset(o, 0, sizeof *o);
    o->batch = 1;
    o->security = 128;
    o->packing = TSR_NN_PACK_AUTO;
    o->min_log_n = 13;
    o->max_log_n = 15;
    o->output_bits = NN_DEFAULT_OUTPUT_BITS;
    o->max_memory_mib = NN_DEFAULT_MAX_MEMORY_MIB;
    o->min_bits = NN_DEFAULT_MIN_BITS;
    o->max_precision_trade = NN_DEFAULT_PRECISION_TRADE_BITS;
}

typedef struct cand {
    nn_config cfg;
    nn_program *prog; /* from the generic dry run (levels counted from DRY_TOP) */
    int log_n, depth, ok;
    int chain; /* 0: the max-scale chain (owns prog); else an alternative sharing its prog */
    tsr_ckks_param_spec spec;
    int exact;                /* bytes from the exact lowering (else the prediction) */
    int est;                  /* precision: 0 not estimated, 1 estimated, -1 the estimate failed */
    double est_bits, est_err; /* estimated bits (less the margin) and largest error */
    double seconds, bytes, client;
    uint64_t rot, keys;
    char why[160];
} cand;

static int64_t np2(int64_t x) {
    int64_t p = 1;
    while (p < x) p *= 2;
    return p;
}

static int ilog2(int64_t x) {
    int k = 0;
    while (((int64_t)1 << k) < x) k++;
    return k;
}

/* Enumerate the candidate configurations for one ring degree. */
static int add_candidates(const tsr_nn_model *m, const tsr_nn_compile_opts *o, int log_n, cand **v,
                          int *n, int *cap) {
    int64_t slots = (int64_t)1 << (log_n - 1);
    int sb = log_n - 1;
    nn_shape in = m->shapes[0];
#define PUSH(cfgv)                                               \
    do {                                                         \
        if (*n == *cap) {                                        \
            int nc = *cap ? 2 * *cap : 256;                      \
            cand *nv = tsr_calloc_array((size_t)nc, sizeof *nv); \
            if (!nv) return -1;                                  \
            if (*n) memcpy(nv, *v, (size_t)*n * sizeof *nv);     \
            tsr_free(*v);                                        \
            *v = nv;                                             \
            *cap = nc;                                           \
        }                                                        \
        memset(&(*v)[*n], 0, sizeof(cand));                      \
        (*v)[*n].cfg = (cfgv);                                   \
        (*v)[*n].log_n = log_n;                                  \
        (*n)++;                                                  \
    } while (0)
    if (o->packing != TSR_NN_PACK_TILED && o->batch <= slots) {
        nn_config c = { .packing = TSR_NN_PACK_BATCH, .slots = slots, .batch = o->batch };
        PUSH(c);
    }
    if (o->packing == TSR_NN_PACK_BATCH) return 0;
    int bx = ilog2(np2(in.h)), by = ilog2(np2(in.w)), bb = ilog2(np2(o->batch));
    /* The batch dimension takes all of the batch or a quarter / half of it (the rest
     * in external tiles): smaller tiles only multiply the rotations. */
    for (int b4 = bb >= 2 ? bb - 2 : 0; b4 <= bb && b4 <= sb; b4++)
        for (int b1 = 0; b1 <= bx && b4 + b1 <= sb; b1++) {
            /* square images get square tiles (the other splits are mirror images) */
            int b2lo = in.h == in.w ? b1 : 0, b2hi = in.h == in.w ? b1 : by;
            for (int b2 = b2lo; b2 <= b2hi && b4 + b1 + b2 <= sb; b2++)
                for (int b0 = 0; b4 + b1 + b2 + b0 <= sb; b0++) {
                    int b3 = sb - b4 - b1 - b2 - b0;
                    /* the input must fit a sane number of ciphertexts */
                    int64_t ex = (in.h + ((int64_t)1 << b1) - 1) >> b1;
                    int64_t ey = (in.w + ((int64_t)1 << b2) - 1) >> b2;
                    int64_t eb = (o->batch + ((int64_t)1 << b4) - 1) >> b4;
                    if (ex * ey * eb > 64) continue;
                    for (int orient = 0; orient <= 3; orient += 3) {
                        nn_config c = { .packing = TSR_NN_PACK_TILED,
                                        .slots = slots,
                                        .t = { (int64_t)1 << b0, (int64_t)1 << b1, (int64_t)1 << b2,
                                               (int64_t)1 << b3, (int64_t)1 << b4 },
                                        .orient = orient,
                                        .batch = o->batch };
                        PUSH(c);
                    }
                }
        }
#undef PUSH
    return 0;
}

#define DRY_TOP 48

/* Dry-run one candidate on a generic mockup: depth, counts and feasibility. */
static void dry_depth(const tsr_nn_model *m, cand *c) {
    tsr_mockup_params mp;
    tsr_mockup_params_default(&mp, c->cfg.slots, DRY_TOP);
    mp.track_values = 0;
    mp.rotations = TSR_ROTATIONS_COLLECT;
    tsr_backend *be = NULL;
    nn_program *p = NULL;
    tsr_status st = tsr_backend_mockup_create(&mp, &be);
    if (st == TSR_OK) st = nn_program_build(m, &c->cfg, be, &p);
    if (st == TSR_OK) {
        c->depth = p->depth;
        c->ok = 1;
        c->prog = p;
    } else {
        snprintf(c->why, sizeof c->why, "%s", tsr_last_error());
        nn_program_free(p);
    }
    tsr_backend_free(be);
}

/* Exact lowering for the chosen parameters, with predictions. */
static tsr_status finalize(const tsr_nn_model *m, const cand *c, const nn_profile *prof,
                           nn_program **out) {
    *out = NULL;
    tsr_ckks_params *par;
    TSR_TRY(tsr_ckks_params_create(&par, &c->spec));
    tsr_mockup_params mp;
    tsr_mockup_params_default(&mp, c->cfg.slots, (int)c->spec.levels);
    mp.track_values = 0;
    mp.rotations = TSR_ROTATIONS_COLLECT;
    tsr_backend *be = NULL;
    tsr_status st = tsr_backend_mockup_create_for(par, &mp, &be);
    tsr_ckks_params_free(par);
    nn_program *p = NULL;
    if (st == TSR_OK) st = nn_program_build(m, &c->cfg, be, &p);
    tsr_backend_free(be);
    if (st != TSR_OK) return st;
    for (int i = 0; i < p->n_steps; i++)
        p->steps[i].predicted = nn_step_seconds(prof, &c->spec, &p->steps[i]);
    *out = p;
    return TSR_OK;
}

/*
 * The samples the precision floor is checked on: the first `batch` calibration inputs
 * (cycled), else a fixed pseudo-random draw (splitmix64) uniform over the input range the
 * plan will accept (nn_plan_init_ranges: pixels 0..255 under the preprocessing).
 */
static double *precision_inputs(const tsr_nn_model *m, const tsr_nn_compile_opts *o) {
    int64_t ni = tsr_nn_model_input_size(m);
    double *x = tsr_alloc((size_t)o->batch * (size_t)ni * sizeof *x);
    if (!x) return NULL;
    if (o->calib && o->calib_n > 0) {
        for (int b = 0; b < o->batch; b++)
            memcpy(x + (int64_t)b * ni, o->calib + (int64_t)(b % o->calib_n) * ni,
                   (size_t)ni * sizeof *x);
        return x;
    }
    double a = (0.0 * m->in_scale - m->in_mean) / m->in_std;
    double b = (255.0 * m->in_scale - m->in_mean) / m->in_std;
    double lo = fmin(a, b), hi = fmax(a, b);
    uint64_t z = 0x9e3779b97f4a7c15u;
    for (int64_t i = 0; i < (int64_t)o->batch * ni; i++) {
        uint64_t r = (z += 0x9e3779b97f4a7c15u);
        r = (r ^ (r >> 30)) * 0xbf58476d1ce4e5b9u;
        r = (r ^ (r >> 27)) * 0x94d049bb133111ebu;
        r ^= r >> 31;
        x[i] = lo + (hi - lo) * ((double)(r >> 11) / 9007199254740992.0);
    }
    return x;
}

/* Predict a candidate from its generic dry run (levels shifted onto the real chain). */
static void predict(cand *c, const nn_profile *prof) {
    const nn_program *p = c->prog;
    int shift = DRY_TOP - (int)c->spec.levels;
    double t = 0;
    for (int i = 0; i < p->n_steps; i++) {
        nn_step s = p->steps[i];
        s.level_in -= shift;
        s.level_out -= shift;
        t += nn_step_seconds(prof, &c->spec, &s);
    }
    c->seconds = t;
    /* The generic run's vectors carry the limbs of a DRY_TOP-level chain: scale them down.
     * That overestimates (a vector at real level l keeps l + shift + 1 of DRY_TOP + 1 limbs,
     * scaled to (l + shift + 1) (L + 1) / (DRY_TOP + 1) > l + 1 below the top: 1.5-2x on the
     * AE models at 2^14), so it only orders candidates of equal time; the budget and every
     * figure compile reports come from the exact lowering (try_candidate, exact_bytes). */
    nn_program q = *p;
    double f = (c->spec.levels + 1.0) / (DRY_TOP + 1.0);
    q.peak_limbs = (uint64_t)((double)p->peak_limbs * f);
    q.plain_limbs = (uint64_t)((double)p->plain_limbs * f);
    c->bytes = nn_program_bytes(&c->spec, &q);
    c->client = nn_client_seconds(prof, &c->spec, p);
    c->rot = (uint64_t)p->n_rot;
}

static void describe(const cand *c, char *buf, size_t n) {
    if (c->cfg.packing == TSR_NN_PACK_BATCH)
        snprintf(buf, n, "N=2^%d batch packing", c->log_n);
    else
        snprintf(buf, n, "N=2^%d tiled [%lld,%lld,%lld,%lld,%lld] o%d", c->log_n,
                 (long long)c->cfg.t[0], (long long)c->cfg.t[1], (long long)c->cfg.t[2],
                 (long long)c->cfg.t[3], (long long)c->cfg.t[4], c->cfg.orient);
}

/* Ring, packing, tile sizes and orientation: the candidate's dry run. */
static int cmp_packing(const cand *a, const cand *b) {
    if (a->log_n != b->log_n) return a->log_n - b->log_n;
    if (a->cfg.packing != b->cfg.packing) return (int)a->cfg.packing - (int)b->cfg.packing;
    for (int i = 0; i < 5; i++)
        if (a->cfg.t[i] != b->cfg.t[i]) return a->cfg.t[i] < b->cfg.t[i] ? -1 : 1;
    return a->cfg.orient - b->cfg.orient;
}

/* A total order: feasible first, then time, memory, and the candidate itself. */
static int cmp_cand(const void *x, const void *y) {
    const cand *a = x, *b = y;
    if (a->ok != b->ok) return b->ok - a->ok;
    if (a->seconds != b->seconds) return a->seconds < b->seconds ? -1 : 1;
    if (a->bytes != b->bytes) return a->bytes < b->bytes ? -1 : 1;
    int cp = cmp_packing(a, b);
    if (cp) return cp;
    /* one packing on several chains: the larger scale, then fewer special primes */
    if (a->spec.scale_bits != b->spec.scale_bits)
        return a->spec.scale_bits > b->spec.scale_bits ? -1 : 1;
    if (a->spec.special_primes != b->spec.special_primes)
        return a->spec.special_primes < b->spec.special_primes ? -1 : 1;
    return (int)a->spec.dnum - (int)b->spec.dnum;
}

/* The same packing (and so the same dry run) on the same ring? */
static int same_packing(const cand *a, const cand *b) {
    return cmp_packing(a, b) == 0;
}

static int same_chain(const tsr_ckks_param_spec *a, const tsr_ckks_param_spec *b) {
    return a->log_n == b->log_n && a->levels == b->levels && a->scale_bits == b->scale_bits &&
           a->special_primes == b->special_primes && a->dnum == b->dnum;
}

/* "scale 2^37, dnum 5, 2 special primes" */
static void describe_chain(const tsr_ckks_param_spec *s, char *buf, size_t n) {
    snprintf(buf, n, "scale 2^%u, dnum %u, %u special prime%s", s->scale_bits, s->dnum,
             s->special_primes, s->special_primes == 1 ? "" : "s");
}

/* Refuse c if its chain cannot carry the model's product forms; else price it. The memory
 * budget is checked on the exact lowering (try_candidate): the prediction overestimates. */
static void price(cand *c, const nn_profile *prof, int has_sqmul) {
    if (has_sqmul && c->spec.first_prime_bits < NN_SQMUL_MIN_Q0_BITS) {
        snprintf(c->why, sizeof c->why,
                 "a near-linear activation's product form needs q_0 of at least %d bits "
                 "(here %u: raise --output-bits or the scale)",
                 NN_SQMUL_MIN_Q0_BITS, c->spec.first_prime_bits);
        c->ok = 0;
        return;
    }
    predict(c, prof);
}

/*
 * The alternative chains of every candidate with a chain: one more candidate per chain of
 * nn_chain_alternatives whose scale is at most trade bits (a whole number) below the max-scale
 * chain's. This bound is part of the rule, not a filter of chains that could not pass: the
 * mockup usually loses about s bits for s bits of scale (0.00-0.11 bits less on
 * transformer_small and AE1), but a rotation-bound plan can lose less (the autoencoder fixture
 * at batch 8, 2^14: 1.11 bits for 2 bits of scale, the extra special primes removing most of
 * its key-switching noise), and a trade of 1 still does not try that chain. The copies share
 * the dry run of their max-scale candidate (chain 0 owns it).
 */
static int add_chains(const tsr_nn_compile_opts *o, cand **v, int *n) {
    int n0 = *n, k = n0;
    tsr_ckks_param_spec alt[NN_MAX_CHAINS];
    const double lim = o->max_precision_trade;
    cand *nv = tsr_calloc_array((size_t)n0 * NN_MAX_CHAINS, sizeof *nv);
    if (!nv) return -1;
    memcpy(nv, *v, (size_t)n0 * sizeof *nv);
    for (int i = 0; i < n0; i++) {
        const cand *c = &nv[i];
        if (!c->ok) continue;
        int na = nn_chain_alternatives((unsigned)c->log_n, c->depth, o->output_bits, o->scale_bits,
                                       o->ckks_flags, alt);
        for (int a = 1; a < na; a++) {
            if ((double)alt[a].scale_bits + lim < (double)c->spec.scale_bits) continue;
            nv[k] = *c;
            nv[k].chain = a;
            nv[k].spec = alt[a];
            nv[k].spec.flags = c->spec.flags;
            k++;
        }
    }
    tsr_free(*v);
    *v = nv;
    *n = k;
    return 0;
}

/* One line per chain of the chosen packing: the max-scale chain and each alternative, with
 * its predicted time, its estimate (when one ran) and its fate; and the plan a trade of 0
 * chooses (w, NULL if none) when it is another packing. cs[0] is the chosen one. */
static void log_chains(const tsr_nn_compile_opts *o, const cand *cs, int nc, const cand *w) {
    int any = 0;
    for (int i = 1; i < nc; i++) any |= cs[i].chain != 0 && same_packing(&cs[i], &cs[0]);
    if (!any && cs[0].chain == 0) return;
    fprintf(o->log,
            "chains for this packing (--max-precision-trade %g: scale at most %g bits down, "
            "estimate at most %g bits below the plan of trade 0):\n",
            o->max_precision_trade, o->max_precision_trade,
            o->max_precision_trade + NN_TRADE_TOLERANCE_BITS);
    if (w && !same_packing(w, &cs[0])) {
        char d[96], c[64], e[32] = "not estimated";
        describe(w, d, sizeof d);
        describe_chain(&w->spec, c, sizeof c);
        if (w->est > 0) snprintf(e, sizeof e, "%.2f bits", w->est_bits);
        fprintf(o->log, "  trade 0: %s, %s: predicted %.3fs, %s\n", d, c, w->seconds, e);
    }
    for (int pass = 0; pass < 2; pass++)
        for (int i = 0; i < nc; i++) {
            const cand *c = &cs[i];
            if (!same_packing(c, &cs[0]) || (c->chain == 0) != (pass == 0)) continue;
            char d[64], e[32] = "not estimated";
            describe_chain(&c->spec, d, sizeof d);
            if (c->est > 0) snprintf(e, sizeof e, "%.2f bits", c->est_bits);
            if (c->est < 0) snprintf(e, sizeof e, "estimate failed");
            const int is_w =
                w && c->chain == 0 && same_packing(c, w) && same_chain(&c->spec, &w->spec);
            fprintf(o->log, "  %-4s %-40s predicted %9.3fs, %-13s  %s%.110s\n",
                    c->chain ? "alt" : "max", d, c->seconds, e,
                    i == 0      ? "<- chosen"
                    : is_w      ? "slower (the plan of trade 0)"
                    : c->ok     ? "slower"
                    : c->why[0] ? "refused: "
                                : "refused",
                    c->ok || i == 0 ? "" : c->why);
        }
}

/*
 * The precision estimate of candidate c on the inputs px (nn_plan_estimate_bits, less
 * NN_PRECISION_MARGIN_BITS): with its assembled plan, or (plan NULL) lowered and assembled
 * here. Sets c->est to 1, or to -1 with the reason in why when the estimate cannot run (a
 * value beyond its headroom). Fails only on a hard error (out of memory).
 */
static tsr_status estimate(const tsr_nn_model *m, cand *c, const nn_profile *prof,
                           const tsr_nn_compile_opts *o, const double *px, const tsr_nn_plan *plan,
                           char *why, size_t nwhy) {
    tsr_nn_plan *own = NULL;
    if (!plan) {
        nn_program *prog = NULL;
        tsr_nn_model *mc = NULL;
        TSR_TRY(finalize(m, c, prof, &prog));
        tsr_status st = nn_model_clone(m, &mc);
        if (st != TSR_OK) {
            nn_program_free(prog);
            return st;
        }
        TSR_TRY(nn_plan_assemble(mc, prog, &c->spec, o->security, &own));
        plan = own;
    }
    tsr_status es = nn_plan_estimate_bits(plan, px, o->batch, &c->est_bits, &c->est_err);
    tsr_nn_plan_free(own);
    if (es == TSR_ERR_NOMEM) return es;
    if (es != TSR_OK) {
        snprintf(why, nwhy, "%s", tsr_last_error());
        tsr_clear_error();
        c->est = -1;
        return TSR_OK;
    }
    c->est_bits -= NN_PRECISION_MARGIN_BITS;
    c->est = 1;
    return TSR_OK;
}

/* What the selection carries from candidate to candidate. */
typedef struct sel {
    const tsr_nn_model *m;
    const nn_profile *prof;
    const tsr_nn_compile_opts *o;
    double *px;     /* the precision inputs (min_bits > 0) */
    int n_est;      /* noisy mockup runs */
    char fail[200]; /* why the last estimate could not run */
} sel;

/*
 * Lower candidate c exactly: over the memory budget it is refused (*plan stays NULL); else
 * its exact memory replaces the prediction, *plan is its assembled plan and, with a floor,
 * c is estimated (once). Fails only on a hard error.
 */
static tsr_status try_candidate(sel *x, cand *c, tsr_nn_plan **plan) {
    *plan = NULL;
    nn_program *prog = NULL;
    TSR_TRY(finalize(x->m, c, x->prof, &prog));
    c->bytes = nn_program_bytes(&c->spec, prog);
    c->exact = 1;
    if (c->bytes > x->o->max_memory_mib * 1048576.0) {
        c->ok = 0;
        snprintf(c->why, sizeof c->why, "needs %.0f MiB of server memory (budget %.0f MiB)",
                 c->bytes / 1048576.0, x->o->max_memory_mib);
        nn_program_free(prog);
        return TSR_OK;
    }
    tsr_nn_model *mc = NULL;
    tsr_status st = nn_model_clone(x->m, &mc);
    if (st != TSR_OK) {
        nn_program_free(prog);
        return st;
    }
    TSR_TRY(nn_plan_assemble(mc, prog, &c->spec, x->o->security, plan));
    if (x->o->min_bits > 0 && !c->est) {
        x->n_est++;
        st = estimate(x->m, c, x->prof, x->o, x->px, *plan, x->fail, sizeof x->fail);
        if (st != TSR_OK) {
            tsr_nn_plan_free(*plan);
            *plan = NULL;
        }
    }
    return st;
}

/* c's server memory from its exact lowering, for the log (the plan does not depend on it). */
static tsr_status exact_bytes(const tsr_nn_model *m, cand *c, const nn_profile *prof) {
    if (c->exact) return TSR_OK;
    nn_program *prog = NULL;
    TSR_TRY(finalize(m, c, prof, &prog));
    c->bytes = nn_program_bytes(&c->spec, prog);
    c->exact = 1;
    nn_program_free(prog);
    return TSR_OK;
}

/* c's estimate is below the floor: refuse c and every candidate on its ring and scale that has
 * no estimate of its own; with only_alts (c is an alternative, tried after W was found) only
 * alternatives: a max-scale candidate of another depth may share the scale (AE1 at 2^14:
 * depth 8's two-special-prime chain and depth 9's max-scale chain are both 2^37), and W and
 * the candidates after it are not the alternative phase's to refuse. */
static void refuse_floor(cand *cs, int nc, const cand *c, double min_bits, int only_alts) {
    char why[160];
    snprintf(why, sizeof why,
             "outputs below the precision floor: N=2^%d, scale 2^%u: %.1f bits < %g "
             "(use a larger ring, fewer levels, or --min-bits)",
             c->log_n, c->spec.scale_bits, c->est_bits, min_bits);
    const int ln = c->log_n;
    const unsigned sb = c->spec.scale_bits;
    for (int i = 0; i < nc; i++)
        if (cs[i].ok && (&cs[i] == c || !cs[i].est) && (!only_alts || cs[i].chain != 0) &&
            cs[i].log_n == ln && cs[i].spec.scale_bits == sb) {
            cs[i].ok = 0;
            memcpy(cs[i].why, why, sizeof why);
        }
}

tsr_status tsr_nn_compile(const tsr_nn_model *m, const tsr_nn_compile_opts *o, tsr_nn_plan **out) {
    *out = NULL;
    tsr_nn_compile_opts def;
    if (!o) {
        tsr_nn_compile_opts_default(&def);
        o = &def;
    }
    if (o->batch < 1 || o->batch > (1 << 20))
        return tsr_fail(TSR_ERR_INVALID_ARG, "batch %d must be in 1..2^20", o->batch);
    if (o->security != 128)
        return tsr_fail(TSR_ERR_INVALID_ARG,
                        "security level %d: only 128-bit security (HomomorphicEncryption.org "
                        "table) is supported",
                        o->security);
    int lo = o->log_n ? o->log_n : o->min_log_n, hi = o->log_n ? o->log_n : o->max_log_n;
    if (lo < 10 && !(o->ckks_flags & TSR_CKKS_ALLOW_INSECURE_PARAMETERS))
        return tsr_fail(TSR_ERR_INVALID_ARG, "ring degree 2^%d is below 2^10", lo);
    if (lo < TSR_CKKS_MIN_LOG_N + 1 || hi > 16 || lo > hi)
        return tsr_fail(TSR_ERR_INVALID_ARG, "ring degrees 2^%d..2^%d are out of range", lo, hi);
    if (!(o->max_memory_mib > 0) || !isfinite(o->max_memory_mib))
        return tsr_fail(TSR_ERR_INVALID_ARG, "the memory budget must be a positive number of MiB");
    if (!(o->min_bits >= 0 && o->min_bits <= 50))
        return tsr_fail(TSR_ERR_INVALID_ARG,
                        "the precision floor must be 0 (no check) to 50 bits, not %g", o->min_bits);
    if (!(o->max_precision_trade >= 0 &&
          o->max_precision_trade <= TSR_NN_MAX_PRECISION_TRADE_BITS) ||
        o->max_precision_trade != floor(o->max_precision_trade))
        return tsr_fail(TSR_ERR_INVALID_ARG,
                        "the precision trade must be a whole number of bits from 0 (the largest "
                        "scale) to %d, not %g",
                        TSR_NN_MAX_PRECISION_TRADE_BITS, o->max_precision_trade);
    TSR_TRY(nn_model_validate(m));
    nn_profile *prof = NULL;
    TSR_TRY(nn_profile_load(o->profile, &prof));
    cand *cs = NULL;
    int nc = 0, cap = 0;
    for (int ln = lo; ln <= hi; ln++)
        if (add_candidates(m, o, ln, &cs, &nc, &cap) != 0) {
            tsr_free(cs);
            nn_profile_free(prof);
            return tsr_fail(TSR_ERR_NOMEM, "out of memory");
        }
    if (nc == 0) {
        nn_profile_free(prof);
        return tsr_fail(TSR_ERR_UNSUPPORTED,
                        "no packing fits a batch of %d with N = 2^%d..2^%d (one sample per slot "
                        "needs batch <= N/2)",
                        o->batch, lo, hi);
    }
    double t0 = tsr_now();
    tsr_progress pr;
    tsr_progress_begin(&pr, "optimizer dry runs", (uint64_t)nc, "plan");
    int done = 0;
#ifdef _OPENMP
#pragma omp parallel for schedule(dynamic, 1)
#endif
    for (int i = 0; i < nc; i++) {
        dry_depth(m, &cs[i]);
#ifdef _OPENMP
#pragma omp atomic
#endif
        done++;
#ifdef _OPENMP
        if (omp_get_thread_num() == 0)
#endif
            tsr_progress_update(&pr, (uint64_t)done, NULL);
    }
    tsr_progress_end(&pr, NULL);
    double t_dry = tsr_now() - t0;
    /* The product form of a near-linear activation (NN_SQMUL, nn/simplify.c's
     * SQMUL_MAX_PRODUCT) carries values up to 2^20 times the scale at level >= 1, where
     * q_0 q_1 leaves room for values below 2^(bits of q_0 - 1): with 4 bits of margin q_0
     * must have at least 25 bits (the default headroom gives 30 or more; only a small
     * --output-bits with a small scale falls short). An overflow there would be silent (the
     * output check sees the outputs only), so such a chain is refused. */
    int has_sqmul = 0;
    for (int i = 0; i < m->n_layers; i++) has_sqmul |= m->layers[i].kind == NN_SQMUL;
    /* Parameters per feasible candidate, then its predictions from the profile. */
    tsr_status st = TSR_OK;
    char first_why[160] = "";
    for (int i = 0; i < nc; i++) {
        cand *c = &cs[i];
        if (!c->ok) {
            if (!first_why[0]) snprintf(first_why, sizeof first_why, "%s", c->why);
            continue;
        }
        if (!nn_profile_has(prof, c->log_n)) {
            snprintf(c->why, sizeof c->why,
                     "the cost profile has no measurements for N = 2^%d (tessera profile "
                     "--log-n)",
                     c->log_n);
            c->ok = 0;
            continue;
        }
        if (nn_choose_params((unsigned)c->log_n, c->depth, o->output_bits, o->scale_bits,
                             o->ckks_flags, &c->spec) != TSR_OK) {
            snprintf(c->why, sizeof c->why, "%s", tsr_last_error());
            c->ok = 0;
            continue;
        }
    }
    /* A trade needs the precision estimate to check it: without the floor, no alternatives. */
    const int trade = o->max_precision_trade > 0 && o->min_bits > 0;
    if (trade && add_chains(o, &cs, &nc) != 0) st = tsr_fail(TSR_ERR_NOMEM, "out of memory");
    for (int i = 0; i < nc; i++)
        if (cs[i].ok) price(&cs[i], prof, has_sqmul);
    /*
     * The fastest candidate whose exact lowering fits the memory budget and whose outputs
     * meet the precision floor. Nothing above models precision: the chain takes the largest
     * scale the 128-bit bound allows for the depth, so a deep model on a small ring gets a
     * small scale (15 levels at N = 2^14: 2^24), whose CKKS noise (up to 2^-13.6 per fresh
     * value, measured, grown by the model's weights and products) can leave a few bits (the
     * tiled transformer_small: error 0.05 on |y| <= 1.6). The floor is measured, not
     * modelled: the candidate runs on a noisy mockup (nn_plan_estimate_bits). A failed
     * estimate refuses every candidate on the same chain (ring and scale): the noise is the
     * chain's, the packing changes only how many rotations add to it.
     *
     * First the plan a trade of 0 would choose (W: the fastest max-scale candidate that
     * passes), then, with a trade, the alternatives faster than W in order (add_chains kept
     * those at most max_precision_trade bits of scale down): one is chosen when its estimate
     * meets the floor and is at most max_precision_trade + NN_TRADE_TOLERANCE_BITS below W's
     * (what the user gives up is relative to what a trade of 0 gives). Without W (every
     * max-scale candidate refused) the reference is the same packing on its max-scale
     * chain. A refusal against the same packing refuses that chain on the ring for every
     * packing (the loss is the scale's); against another packing only the candidate (the
     * loss also holds the packings' noise difference); below the floor, the alternatives on
     * its ring and scale (never W: refuse_floor). So only alternatives that win on price
     * are estimated.
     */
    sel x = { m, prof, o, NULL, 0, "" };
    tsr_nn_plan *plan = NULL;
    char est_why[200] = "";
    if (st == TSR_OK && o->min_bits > 0 && !(x.px = precision_inputs(m, o)))
        st = tsr_fail(TSR_ERR_NOMEM, "out of memory");
    if (st == TSR_OK) qsort(cs, (size_t)nc, sizeof *cs, cmp_cand);
    int w = -1, chosen = -1;
    for (int i = 0; st == TSR_OK && i < nc && w < 0; i++) {
        cand *c = &cs[i];
        if (!c->ok || c->chain != 0) continue;
        st = try_candidate(&x, c, &plan);
        if (st != TSR_OK || !plan) continue;
        if (o->min_bits > 0 && c->est < 0) {
            /* a value beyond its ciphertext's headroom on these inputs (a model or
             * calibration data out of range): the range rules' case (calibration warnings,
             * the runner's refusal), not noise; the floor stays unchecked, the log says so */
            snprintf(est_why, sizeof est_why, "%s", x.fail);
        } else if (o->min_bits > 0 && c->est_bits < o->min_bits) {
            refuse_floor(cs, nc, c, o->min_bits, 0);
            tsr_nn_plan_free(plan);
            plan = NULL;
            continue;
        }
        w = i;
    }
    tsr_nn_plan *alt = NULL;
    for (int i = 0; st == TSR_OK && trade && i < nc; i++) {
        cand *c = &cs[i];
        if (w >= 0 && i >= w) break;           /* only alternatives faster than W */
        if (!c->ok || c->chain == 0) continue; /* max-scale ones before W are refused */
        char why[160] = "";
        if (w >= 0 && cs[w].est < 0) {
            snprintf(why, sizeof why, "precision trade unchecked (no estimate without it)");
        } else {
            st = try_candidate(&x, c, &alt);
            if (st != TSR_OK || !alt) continue;
            if (c->est < 0) {
                snprintf(why, sizeof why, "precision trade unchecked: %.120s", x.fail);
            } else if (c->est_bits < o->min_bits) {
                refuse_floor(cs, nc, c, o->min_bits, 1);
            } else {
                int j = w;
                if (j < 0) { /* the same packing on the max-scale chain */
                    j = 0;
                    while (j < nc && !(cs[j].chain == 0 && same_packing(&cs[j], c))) j++;
                    TSR_ASSERT(j < nc); /* every alternative copies a max-scale candidate */
                    if (!cs[j].est) {
                        x.n_est++;
                        st = estimate(m, &cs[j], prof, o, x.px, NULL, x.fail, sizeof x.fail);
                        if (st != TSR_OK) break;
                    }
                }
                if (cs[j].est < 0)
                    snprintf(why, sizeof why, "precision trade unchecked: %.120s", x.fail);
                else if (c->est_bits <
                         cs[j].est_bits - o->max_precision_trade - NN_TRADE_TOLERANCE_BITS)
                    snprintf(why, sizeof why, "gives up %.2f bits (%.2f vs %.2f%s; at most %g)",
                             cs[j].est_bits - c->est_bits, c->est_bits, cs[j].est_bits,
                             w >= 0 ? " without the trade" : " on its max-scale chain",
                             o->max_precision_trade + NN_TRADE_TOLERANCE_BITS);
                else {
                    chosen = i;
                    break;
                }
                /* against another packing the loss is also the packings' noise difference:
                 * refuse this candidate only */
                if (!same_packing(c, &cs[j])) {
                    c->ok = 0;
                    memcpy(c->why, why, sizeof why);
                }
            }
            tsr_nn_plan_free(alt);
            alt = NULL;
            if (!c->ok) continue; /* below the floor (its scale), or only this packing */
        }
        /* the loss against its own packing is the chain's (its scale), whatever the packing */
        const tsr_ckks_param_spec refused = c->spec;
        const int ln = c->log_n;
        for (int k = 0; k < nc; k++)
            if (cs[k].ok && cs[k].chain != 0 && cs[k].log_n == ln &&
                same_chain(&cs[k].spec, &refused)) {
                cs[k].ok = 0;
                memcpy(cs[k].why, why, sizeof why);
            }
    }
    cand wc = { 0 }; /* W, for the log (shares its dry run; never freed through) */
    if (w >= 0) wc = cs[w];
    if (st == TSR_OK && chosen >= 0) {
        tsr_nn_plan_free(plan);
        plan = alt;
        alt = NULL;
    } else
        chosen = w;
    tsr_nn_plan_free(alt);
    if (chosen > 0) { /* the chosen one first, the others in order */
        cand ch = cs[chosen];
        memmove(cs + 1, cs, (size_t)chosen * sizeof *cs);
        cs[0] = ch;
    }
    assert(st != TSR_OK || chosen < 0 || cs[0].ok); /* refusals spare estimated plans */
    if (st == TSR_OK && chosen >= 0)
        qsort(cs + 1, (size_t)nc - 1, sizeof *cs, cmp_cand);
    else if (st == TSR_OK)
        qsort(cs, (size_t)nc, sizeof *cs, cmp_cand);
    double est_bits = chosen >= 0 ? cs[0].est_bits : 0, est_err = chosen >= 0 ? cs[0].est_err : 0;
    int n_est = x.n_est;
    tsr_free(x.px);
    if (st == TSR_OK && chosen < 0) {
        /* Up to three distinct reasons (compared on their first 32 characters, which
         * name the failing layer and check), most frequent first. */
        char why[3][160] = { "", "", "" };
        int cnt[3] = { 0, 0, 0 }, nw = 0, other = 0;
        for (int i = 0; i < nc; i++) {
            if (!cs[i].why[0]) continue;
            int k = 0;
            while (k < nw && strncmp(why[k], cs[i].why, 32) != 0) k++;
            if (k < nw)
                cnt[k]++;
            else if (nw < 3) {
                snprintf(why[nw], sizeof why[nw], "%s", cs[i].why);
                cnt[nw++] = 1;
            } else
                other++;
        }
        for (int i = 1; i < nw; i++)
            for (int k = i; k > 0 && cnt[k] > cnt[k - 1]; k--) {
                char tmp[160];
                int tc = cnt[k];
                memcpy(tmp, why[k], sizeof tmp);
                memcpy(why[k], why[k - 1], sizeof tmp);
                memcpy(why[k - 1], tmp, sizeof tmp);
                cnt[k] = cnt[k - 1];
                cnt[k - 1] = tc;
            }
        char list[600] = "";
        for (int k = 0; k < nw; k++) {
            size_t l = strlen(list);
            snprintf(list + l, sizeof list - l, "%s%s (%d candidate%s)", k ? "; " : "", why[k],
                     cnt[k], cnt[k] == 1 ? "" : "s");
        }
        if (other) {
            size_t l = strlen(list);
            snprintf(list + l, sizeof list - l, "; %d more with other reasons", other);
        }
        st = tsr_fail(TSR_ERR_UNSUPPORTED, "no candidate plan works for this model (%d tried): %s",
                      nc, nw ? list : first_why);
    }
    if (st == TSR_OK && o->log) {
        int shown = 0, feasible = 0, alts = 0;
        for (int i = 0; i < nc; i++) feasible += cs[i].ok;
        for (int i = 0; i < nc; i++) alts += cs[i].chain != 0;
        fprintf(o->log, "optimizer: %d candidate packings", nc - alts);
        if (alts) fprintf(o->log, " + %d on faster chains", alts);
        fprintf(o->log, ", %d feasible, %.1f s (dry runs %.1f s)\n", feasible, tsr_now() - t0,
                t_dry);
        if (prof->builtin)
            fprintf(o->log,
                    "costs: the built-in profile (%s, %s, %d thread%s: predictions are %s "
                    "seconds; `tessera profile` measures this machine)\n",
                    prof->cpu, prof->simd, prof->threads, prof->threads == 1 ? "" : "s",
                    prof->threads == 1 ? "one-thread CPU" : "wall");
        else
            fprintf(o->log, "costs: profile %s (%s, %s, %d thread%s)\n", o->profile, prof->cpu,
                    prof->simd, prof->threads, prof->threads == 1 ? "" : "s");
        /* the rows' memory from their exact lowering (the prediction overestimates) */
        for (int i = 0, k = 0; st == TSR_OK && i < nc && k < 8; i++)
            if (cs[i].ok) {
                st = exact_bytes(m, &cs[i], prof);
                k++;
            }
        fprintf(o->log, "  %-36s %5s %6s %5s %10s %12s %9s %6s\n", "candidate", "depth", "scale",
                "rots", "server", "per sample", "memory", "digits");
        for (int i = 0; i < nc && shown < 8; i++) {
            if (!cs[i].ok) continue;
            char d[96];
            describe(&cs[i], d, sizeof d);
            char dg[24];
            snprintf(dg, sizeof dg, "%ux%u", cs[i].spec.dnum, cs[i].spec.special_primes);
            /* digits last: `tessera prune --shape-search` reads the columns before it */
            fprintf(o->log, "  %-36s %5d %4u b %5llu %9.3fs %10.3fms %7.0fMiB %6s%s\n", d,
                    cs[i].depth, cs[i].spec.scale_bits, (unsigned long long)cs[i].rot,
                    cs[i].seconds, 1000 * cs[i].seconds / o->batch, cs[i].bytes / 1048576.0, dg,
                    i == 0 ? "  <- chosen" : "");
            shown++;
        }
    }
    if (st == TSR_OK && o->log && plan && trade) log_chains(o, cs, nc, w >= 0 ? &wc : NULL);
    if (st == TSR_OK && o->log && plan && est_why[0])
        fprintf(o->log, "precision: not estimated (%.160s)\n", est_why);
    else if (st == TSR_OK && o->log && plan && n_est > 0)
        fprintf(o->log,
                "precision: %.1f bits (largest error %.3g on a noisy mockup, less a %g-bit "
                "margin; floor %g bits; %d chain%s estimated)\n",
                est_bits, est_err, NN_PRECISION_MARGIN_BITS, o->min_bits, n_est,
                n_est == 1 ? "" : "s");
    if (st != TSR_OK) {
        nn_profile_free(prof);
        for (int i = 0; i < nc; i++)
            if (cs[i].chain == 0) nn_program_free(cs[i].prog);
        tsr_free(cs);
        tsr_nn_plan_free(plan);
        return st;
    }
    /* the loop assembled the chosen candidate's plan */
    plan->predicted_seconds = cs[0].seconds;
    plan->predicted_mib = cs[0].bytes / 1048576.0;
    plan->predicted_client = cs[0].client;
    char d[96], r[128] = "runner-up: none";
    describe(&cs[0], d, sizeof d);
    if (nc > 1 && cs[1].ok) {
        char r1[96];
        describe(&cs[1], r1, sizeof r1);
        if (cs[0].chain == 0 && cs[1].chain == 0) /* both on their max-scale chains */
            snprintf(r, sizeof r, "runner-up %.60s %.4g s", r1, cs[1].seconds);
        else /* a trade is involved: the runner-up's chain too */
            snprintf(r, sizeof r, "runner-up %.44s on 2^%u dnum %u x %u special %.4g s", r1,
                     cs[1].spec.scale_bits, cs[1].spec.dnum, cs[1].spec.special_primes,
                     cs[1].seconds);
    }
    if (cs[0].chain == 0)
        snprintf(plan->choice, sizeof plan->choice,
                 "%.60s, depth %d, scale 2^%u: predicted %.4g s per batch of %d (%s); %.100s", d,
                 cs[0].depth, cs[0].spec.scale_bits, cs[0].seconds, o->batch,
                 prof->builtin ? "built-in costs" : "profile costs", r);
    else /* the chain too */
        snprintf(plan->choice, sizeof plan->choice,
                 "%.44s, depth %d, scale 2^%u (dnum %u, %u special primes): predicted %.4g s "
                 "per batch of %d (%s); %.90s",
                 d, cs[0].depth, cs[0].spec.scale_bits, cs[0].spec.dnum, cs[0].spec.special_primes,
                 cs[0].seconds, o->batch, prof->builtin ? "built-in costs" : "profile costs", r);
    if (o->calib) st = nn_plan_calibrate(plan, o->calib, o->calib_n);
    if (st == TSR_OK) st = nn_plan_seal(plan);
    for (int i = 0; i < nc; i++)
        if (cs[i].chain == 0) nn_program_free(cs[i].prog);
    tsr_free(cs);
    nn_profile_free(prof);
    if (st != TSR_OK) {
        tsr_nn_plan_free(plan);
        return st;
    }
    *out = plan;
    return TSR_OK;
}
