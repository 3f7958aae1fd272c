/*
 * nn/compile.c - the optimizer (Aharoni et al., arXiv 2011.01805, section
 * 6): candidates are packings (one sample per slot; tile tensors with every
 * split of the slots over [D0, X, Y, D3, B] and both channel orientations)
 * times ring degrees. Each candidate is lowered by a shape-only dry run on
 * a mockup (no data: only shapes, levels and operation counts), which gives
 * its depth; the depth gives the CKKS chain (nn_choose_params); the chain's
 * per-operation costs, measured on this machine (nn/cost.c), times the
 * dry run's counts give the predicted latency, and the largest live set
 * gives the memory. The fastest candidate that fits in memory wins.
 */
#include "nn/nn_internal.h"

#include "core/alloc.h"
#include "core/error.h"
#include "core/progress.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
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
    o->output_bits = 10;
}

typedef struct cand {
    nn_config cfg;
    nn_program *prog; /* from the generic dry run (levels counted from DRY_TOP) */
    int log_n, depth, ok, measured;
    tsr_ckks_param_spec spec;
    double seconds, bytes, client;
    uint64_t rot, keys;
    char why[160];
} cand;

typedef struct cost_entry {
    tsr_ckks_param_spec spec;
    nn_costs c;
} cost_entry;

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

static tsr_status costs_for(const tsr_ckks_param_spec *s, const tsr_nn_compile_opts *o,
                            cost_entry **tab, int *n, nn_costs *out) {
    for (int i = 0; i < *n; i++)
        if (memcmp(&(*tab)[i].spec, s, sizeof *s) == 0) {
            *out = (*tab)[i].c;
            return TSR_OK;
        }
    tsr_ckks_params *par;
    TSR_TRY(tsr_ckks_params_create(&par, s));
    tsr_status st = nn_costs_get(par, o, out);
    tsr_ckks_params_free(par);
    TSR_TRY(st);
    cost_entry *nt = tsr_calloc_array((size_t)*n + 1, sizeof *nt);
    if (!nt) return tsr_fail(TSR_ERR_NOMEM, "out of memory");
    if (*n) memcpy(nt, *tab, (size_t)*n * sizeof *nt);
    nt[*n].spec = *s;
    nt[*n].c = *out;
    tsr_free(*tab);
    *tab = nt;
    (*n)++;
    return TSR_OK;
}

/* Exact lowering for the chosen parameters, with predictions. */
static tsr_status finalize(const tsr_nn_model *m, const cand *c, const nn_costs *costs,
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
        p->steps[i].predicted = nn_step_seconds(costs, &p->steps[i], tsr_get_num_threads());
    *out = p;
    return TSR_OK;
}

/* Predict a candidate from its generic dry run (levels shifted onto the real chain). */
static void predict(cand *c, const nn_costs *k) {
    const nn_program *p = c->prog;
    int shift = DRY_TOP - (int)c->spec.levels;
    double t = 0;
    for (int i = 0; i < p->n_steps; i++) {
        nn_step s = p->steps[i];
        s.level_in -= shift;
        s.level_out -= shift;
        t += nn_step_seconds(k, &s, tsr_get_num_threads());
    }
    c->seconds = t;
    c->bytes = nn_program_bytes(k, p);
    int64_t in_tiles = tsr_tile_shape_num_tiles(&p->values[0].shape);
    int64_t out_tiles = tsr_tile_shape_num_tiles(&p->values[p->output].shape);
    c->client = (double)in_tiles * k->encrypt + (double)out_tiles * k->decrypt;
    c->rot = (uint64_t)p->n_rot;
    c->measured = k->measured;
}

static void describe(const cand *c, char *buf, size_t n) {
    if (c->cfg.packing == TSR_NN_PACK_BATCH)
        snprintf(buf, n, "N=2^%d batch packing", c->log_n);
    else
        snprintf(buf, n, "N=2^%d tiled [%lld,%lld,%lld,%lld,%lld] o%d", c->log_n,
                 (long long)c->cfg.t[0], (long long)c->cfg.t[1], (long long)c->cfg.t[2],
                 (long long)c->cfg.t[3], (long long)c->cfg.t[4], c->cfg.orient);
}

static int cmp_cand(const void *x, const void *y) {
    const cand *a = x, *b = y;
    if (a->ok != b->ok) return b->ok - a->ok;
    if (a->seconds != b->seconds) return a->seconds < b->seconds ? -1 : 1;
    return (a->bytes > b->bytes) - (a->bytes < b->bytes);
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
    TSR_TRY(nn_model_validate(m));
    cand *cs = NULL;
    int nc = 0, cap = 0;
    for (int ln = lo; ln <= hi; ln++)
        if (add_candidates(m, o, ln, &cs, &nc, &cap) != 0) {
            tsr_free(cs);
            return tsr_fail(TSR_ERR_NOMEM, "out of memory");
        }
    if (nc == 0)
        return tsr_fail(TSR_ERR_UNSUPPORTED,
                        "no packing fits a batch of %d with N = 2^%d..2^%d (one sample per slot "
                        "needs batch <= N/2)",
                        o->batch, lo, hi);
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
    /* Parameters per feasible candidate, then costs (measured once per chain). */
    cost_entry *tab = NULL;
    int ntab = 0;
    tsr_status st = TSR_OK;
    char first_why[160] = "";
    for (int i = 0; i < nc && st == TSR_OK; i++) {
        cand *c = &cs[i];
        if (!c->ok) {
            if (!first_why[0]) snprintf(first_why, sizeof first_why, "%s", c->why);
            continue;
        }
        if (nn_choose_params((unsigned)c->log_n, c->depth, o->output_bits, o->scale_bits,
                             o->ckks_flags, &c->spec) != TSR_OK) {
            snprintf(c->why, sizeof c->why, "%s", tsr_last_error());
            c->ok = 0;
            continue;
        }
    }
    /* Rank everything with built-in estimates, then measure the costs of the most
     * promising chains on this machine (once per chain, cached) and rank again. */
    tsr_nn_compile_opts est = *o;
    est.no_measure = 1;
    est.costs = NULL;
    for (int i = 0; i < nc && st == TSR_OK; i++) {
        cand *c = &cs[i];
        if (!c->ok) continue;
        nn_costs k;
        st = costs_for(&c->spec, &est, &tab, &ntab, &k);
        if (st == TSR_OK) predict(c, &k);
    }
    double mem_budget = 0.6 * (double)sysconf(_SC_PHYS_PAGES) * (double)sysconf(_SC_PAGESIZE);
    for (int i = 0; i < nc; i++)
        if (cs[i].ok && mem_budget > 0 && cs[i].bytes > mem_budget) {
            cs[i].ok = 0;
            snprintf(cs[i].why, sizeof cs[i].why, "needs %.0f MiB", cs[i].bytes / 1048576.0);
        }
    if (st == TSR_OK) qsort(cs, (size_t)nc, sizeof *cs, cmp_cand);
    cost_entry *mtab = NULL;
    int nmtab = 0;
    if (!o->no_measure) {
        int top = 0;
        for (int i = 0; i < nc && st == TSR_OK && top < 12; i++) {
            if (!cs[i].ok) continue;
            nn_costs k;
            st = costs_for(&cs[i].spec, o, &mtab, &nmtab, &k);
            if (st == TSR_OK) predict(&cs[i], &k);
            top++;
        }
        /* Only measured candidates compete with each other from here on. */
        for (int i = 0; i < nc; i++)
            if (cs[i].ok && !cs[i].measured) cs[i].seconds += 1e9;
    }
    if (st == TSR_OK) qsort(cs, (size_t)nc, sizeof *cs, cmp_cand);
    if (st == TSR_OK && !cs[0].ok) {
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
    nn_program *prog = NULL;
    nn_costs best;
    if (st == TSR_OK)
        st = costs_for(&cs[0].spec, o, o->no_measure ? &tab : &mtab, o->no_measure ? &ntab : &nmtab,
                       &best);
    if (st == TSR_OK) st = finalize(m, &cs[0], &best, &prog);
    if (st == TSR_OK && o->log) {
        int shown = 0, feasible = 0;
        for (int i = 0; i < nc; i++) feasible += cs[i].ok;
        fprintf(o->log, "optimizer: %d candidate packings, %d feasible, %.1f s (dry runs %.1f s)\n",
                nc, feasible, tsr_now() - t0, t_dry);
        fprintf(o->log, "  %-36s %5s %6s %5s %10s %12s %9s\n", "candidate", "depth", "scale",
                "rots", "server", "per sample", "memory");
        for (int i = 0; i < nc && shown < 8; i++) {
            if (!cs[i].ok || (!o->no_measure && !cs[i].measured)) continue;
            char d[96];
            describe(&cs[i], d, sizeof d);
            fprintf(o->log, "  %-36s %5d %4u b %5llu %9.3fs %10.3fms %7.0fMiB%s\n", d, cs[i].depth,
                    cs[i].spec.scale_bits, (unsigned long long)cs[i].rot, cs[i].seconds,
                    1000 * cs[i].seconds / o->batch, cs[i].bytes / 1048576.0,
                    i == 0 ? "  <- chosen" : "");
            shown++;
        }
    }
    tsr_free(tab);
    tsr_free(mtab);
    if (st != TSR_OK) {
        for (int i = 0; i < nc; i++) nn_program_free(cs[i].prog);
        tsr_free(cs);
        nn_program_free(prog);
        return st;
    }
    tsr_nn_model *mc = NULL;
    st = nn_model_clone(m, &mc);
    tsr_nn_plan *plan = NULL;
    if (st == TSR_OK)
        st = nn_plan_assemble(mc, prog, &cs[0].spec, o->security, &plan);
    else
        nn_program_free(prog);
    if (st == TSR_OK) {
        plan->predicted_seconds = cs[0].seconds;
        plan->predicted_mib = cs[0].bytes / 1048576.0;
        plan->predicted_client = cs[0].client;
        char d[96], r[128] = "runner-up: none";
        describe(&cs[0], d, sizeof d);
        if (nc > 1 && cs[1].ok && cs[1].seconds < 1e8) {
            char r1[96];
            describe(&cs[1], r1, sizeof r1);
            snprintf(r, sizeof r, "runner-up %.60s %.4g s", r1, cs[1].seconds);
        }
        snprintf(plan->choice, sizeof plan->choice,
                 "%.60s, depth %d, scale 2^%u: predicted %.4g s per batch of %d (%s costs); %.80s",
                 d, cs[0].depth, cs[0].spec.scale_bits, cs[0].seconds, o->batch,
                 best.measured ? "measured" : "estimated", r);
        if (o->calib) st = nn_plan_calibrate(plan, o->calib, o->calib_n);
        if (st == TSR_OK) st = nn_plan_seal(plan);
    }
    for (int i = 0; i < nc; i++) nn_program_free(cs[i].prog);
    tsr_free(cs);
    if (st != TSR_OK) {
        tsr_nn_plan_free(plan);
        return st;
    }
    *out = plan;
    return TSR_OK;
}
