/*
 * fl/sim.c - the synchronous distributed SGD loop: shards, per-worker
 * minibatch streams, parallel gradients, attack, aggregation, server step,
 * evaluation. See fl/sim.h.
 */
#include "fl/sim.h"
#include "core/alloc.h"
#include "core/error.h"
#include "core/progress.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#ifdef _OPENMP
#include <omp.h>
#endif

/* Stream domains: everything random derives from cfg->seed. */
#define DOM_INIT   1u
#define DOM_SHARDS 2u
#define DOM_WORKER (1ull << 32) /* + worker index */
#define DOM_GAUSS  (2ull << 32) /* + round */

static void seed_key(uint64_t seed, uint8_t key[TSR_SEED_BYTES]) {
    memset(key, 0, TSR_SEED_BYTES);
    for (int i = 0; i < 8; i++) key[i] = (uint8_t)(seed >> (8 * i));
    memcpy(key + 8, "tsr-fl-sim", 10); /* keep fl streams apart from other seeded uses */
}

void tsr_fl_result_free(tsr_fl_result *r) {
    if (!r) return;
    tsr_free(r->evals);
    r->evals = NULL;
    r->n_evals = 0;
}

static size_t cfg_batch(const tsr_fl_config *c) {
    return c->batch ? c->batch : 32;
}
static double cfg_lr(const tsr_fl_config *c) {
    return c->lr != 0 ? c->lr : 0.1;
}
static double cfg_bd_fraction(const tsr_fl_config *c) {
    return c->bd_fraction != 0 ? c->bd_fraction : 0.5;
}
static size_t cfg_eval_every(const tsr_fl_config *c) {
    size_t e = c->eval_every ? c->eval_every : c->rounds / 20;
    return e ? e : 1;
}

tsr_status tsr_fl_config_check(const tsr_fl_config *cfg, const tsr_fl_problem *prob) {
    TSR_REQUIRE(cfg && prob, "tsr_fl_config_check: NULL argument");
    size_t n = cfg->workers, m = cfg->corrupt;
    if (n == 0) return tsr_fail(TSR_ERR_INVALID_ARG, "need at least one worker");
    if (m >= n)
        return tsr_fail(TSR_ERR_INVALID_ARG,
                        "%zu corrupt workers out of %zu: at least one worker must be honest", m, n);
    if (cfg->rounds == 0) return tsr_fail(TSR_ERR_INVALID_ARG, "rounds must be >= 1");
    if (prob->n_train < n)
        return tsr_fail(TSR_ERR_INVALID_ARG,
                        "%zu training examples cannot be split into %zu worker shards",
                        prob->n_train, n);
    size_t shard = prob->n_train / n, b = cfg_batch(cfg);
    if (b > shard)
        return tsr_fail(TSR_ERR_INVALID_ARG,
                        "minibatch %zu is larger than a worker's shard (%zu examples = %zu / %zu "
                        "workers); use a smaller batch",
                        b, shard, prob->n_train, n);
    double lr = cfg_lr(cfg);
    if (!(lr > 0) || !isfinite(lr))
        return tsr_fail(TSR_ERR_INVALID_ARG, "learning rate must be finite and > 0, got %g", lr);
    if (!(cfg->momentum >= 0 && cfg->momentum < 1))
        return tsr_fail(TSR_ERR_INVALID_ARG, "momentum must be in [0, 1), got %g", cfg->momentum);
    TSR_TRY(tsr_fl_agg_check(&cfg->agg, n));
    const tsr_fl_attack_params *a = &cfg->attack;
    if ((unsigned)a->kind >= TSR_FL_ATTACK_COUNT_)
        return tsr_fail(TSR_ERR_INVALID_ARG, "unknown attack %d", (int)a->kind);
    if (a->kind != TSR_FL_ATTACK_NONE && m == 0)
        return tsr_fail(TSR_ERR_INVALID_ARG,
                        "attack '%s' needs at least one corrupt worker (--corrupt >= 1)",
                        tsr_fl_attack_name(a->kind));
    if ((a->kind == TSR_FL_ATTACK_ALIE || a->kind == TSR_FL_ATTACK_BACKDOOR) && !a->has_z) {
        double z;
        TSR_TRY(tsr_fl_alie_zmax(n, m, &z));
    }
    if (a->kind == TSR_FL_ATTACK_BACKDOOR) {
        double f = cfg_bd_fraction(cfg);
        if (!(f > 0 && f <= 1))
            return tsr_fail(TSR_ERR_INVALID_ARG, "backdoor fraction must be in (0, 1], got %g", f);
        if (prob->backdoor_target < 0 || prob->backdoor_target >= prob->n_classes)
            return tsr_fail(TSR_ERR_INVALID_ARG, "backdoor target %d is not a class of [0, %d)",
                            prob->backdoor_target, prob->n_classes);
    }
    if (prob->dim == 0) return tsr_fail(TSR_ERR_INVALID_ARG, "the model has no parameters");
    return TSR_OK;
}

/* ---- shards and per-worker minibatch streams ---------------------------- */

typedef struct worker {
    uint32_t *shard; /* indices of this worker's examples (points into the shared array) */
    size_t size;
    uint32_t *perm; /* shuffled copy, consumed in order, reshuffled when exhausted */
    size_t cursor;
    tsr_prng rng;
} worker;

static void shuffle(uint32_t *v, size_t n, tsr_prng *g) {
    for (size_t i = n; i > 1; i--) {
        size_t j = (size_t)tsr_prng_uniform(g, i);
        uint32_t t = v[i - 1];
        v[i - 1] = v[j];
        v[j] = t;
    }
}

/* Next b indices of worker w's shard (an epoch-wise shuffled cycle). */
static void next_batch(worker *w, size_t b, uint32_t *idx) {
    for (size_t k = 0; k < b; k++) {
        if (w->cursor == w->size) {
            shuffle(w->perm, w->size, &w->rng);
            w->cursor = 0;
        }
        idx[k] = w->perm[w->cursor++];
    }
}

/* all (n_train): IID = a seeded permutation; non-IID = sorted by label (stable). */
static tsr_status make_shards(const tsr_fl_config *cfg, const tsr_fl_problem *prob,
                              const uint8_t key[TSR_SEED_BYTES], uint32_t *all, worker *w) {
    size_t N = prob->n_train, n = cfg->workers;
    if (cfg->non_iid) {
        size_t k = 0;
        for (int c = 0; c < prob->n_classes; c++)
            for (size_t i = 0; i < N; i++)
                if (prob->train_labels[i] == c) all[k++] = (uint32_t)i;
        if (k != N)
            return tsr_fail(TSR_ERR_INVALID_ARG,
                            "non-IID split: %zu training labels are outside [0, %d)", N - k,
                            prob->n_classes);
    } else {
        tsr_prng g;
        tsr_prng_init(&g, key, DOM_SHARDS);
        for (size_t i = 0; i < N; i++) all[i] = (uint32_t)i;
        shuffle(all, N, &g);
    }
    for (size_t i = 0; i < n; i++) {
        size_t lo = i * N / n, hi = (i + 1) * N / n;
        w[i].shard = all + lo;
        w[i].size = hi - lo;
        w[i].perm = tsr_calloc_array(w[i].size, sizeof(uint32_t));
        if (!w[i].perm) return tsr_fail(TSR_ERR_NOMEM, "cannot allocate worker shards");
        memcpy(w[i].perm, w[i].shard, w[i].size * sizeof(uint32_t));
        w[i].cursor = w[i].size; /* shuffle on first use */
        tsr_prng_init(&w[i].rng, key, DOM_WORKER + i);
    }
    return TSR_OK;
}

/* ---- the run ------------------------------------------------------------ */

typedef struct run_state {
    size_t n, m, d, b, nthreads;
    float *w, *v, *agg, *prev_agg; /* (d) each */
    float *G;                      /* (n, d) worker rows */
    float *BD;                     /* (m, d) backdoor gradients, or NULL */
    uint32_t *all, *idx;           /* (n_train), (n, b) minibatch indices */
    uint8_t *poison;               /* (b) flags: first bd_count set */
    uint8_t *selected;             /* (n) */
    double *loss;                  /* (n + m) */
    worker *wk;
    void **ws; /* (nthreads) problem workspaces */
} run_state;

static void state_free(run_state *s, const tsr_fl_problem *prob) {
    if (s->wk)
        for (size_t i = 0; i < s->n; i++) tsr_free(s->wk[i].perm);
    if (s->ws)
        for (size_t t = 0; t < s->nthreads; t++)
            if (s->ws[t]) prob->ws_free(s->ws[t]);
    tsr_free(s->w);
    tsr_free(s->G);
    tsr_free(s->BD);
    tsr_free(s->all);
    tsr_free(s->idx);
    tsr_free(s->poison);
    tsr_free(s->selected);
    tsr_free(s->loss);
    tsr_free(s->wk);
    tsr_free(s->ws);
}

static tsr_status state_alloc(run_state *s, const tsr_fl_config *cfg, const tsr_fl_problem *prob) {
    s->n = cfg->workers;
    s->m = cfg->corrupt;
    s->d = prob->dim;
    s->b = cfg_batch(cfg);
    s->nthreads = 1;
#ifdef _OPENMP
    s->nthreads = (size_t)omp_get_max_threads();
#endif
    size_t nd;
    if (tsr_mul_size(s->n, s->d, &nd))
        return tsr_fail(TSR_ERR_NOMEM, "%zu workers x %zu parameters overflow", s->n, s->d);
    s->w = tsr_calloc_array(4 * s->d, sizeof(float));
    s->G = tsr_calloc_array(nd, sizeof(float));
    if (cfg->attack.kind == TSR_FL_ATTACK_BACKDOOR)
        s->BD = tsr_calloc_array(s->m * s->d, sizeof(float));
    s->all = tsr_calloc_array(prob->n_train, sizeof(uint32_t));
    s->idx = tsr_calloc_array(s->n * s->b, sizeof(uint32_t));
    s->poison = tsr_calloc(s->b);
    s->selected = tsr_calloc(s->n);
    s->loss = tsr_calloc_array(2 * s->n, sizeof(double));
    s->wk = tsr_calloc_array(s->n, sizeof(worker));
    s->ws = tsr_calloc_array(s->nthreads, sizeof(void *));
    if (!s->w || !s->G || (cfg->attack.kind == TSR_FL_ATTACK_BACKDOOR && !s->BD) || !s->all ||
        !s->idx || !s->poison || !s->selected || !s->loss || !s->wk || !s->ws)
        return tsr_fail(TSR_ERR_NOMEM,
                        "cannot allocate the run state (%zu workers x %zu parameters)", s->n, s->d);
    s->v = s->w + s->d;
    s->agg = s->v + s->d;
    s->prev_agg = s->agg + s->d;
    for (size_t t = 0; t < s->nthreads; t++) {
        s->ws[t] = prob->ws_new(prob->ctx);
        if (!s->ws[t]) return tsr_fail(TSR_ERR_NOMEM, "cannot allocate a worker workspace");
    }
    return TSR_OK;
}

/* Step 1-2: every worker's honest gradient (and the corrupt workers' backdoor
 * gradients), in parallel. Task k < n is worker k's gradient into G row k;
 * task n + j is corrupt worker j's backdoor gradient into BD row j, on the
 * same minibatch with the first bd_count examples poisoned. */
static tsr_status worker_gradients(run_state *s, const tsr_fl_problem *prob, int backdoor,
                                   const tsr_fl_comm *comm) {
    size_t ntask = s->n + (backdoor ? s->m : 0);
    for (size_t i = 0; i < s->n; i++) next_batch(&s->wk[i], s->b, s->idx + i * s->b);
    tsr_status st = TSR_OK;
    char msg[256] = "";
    long nt = (long)ntask;
#pragma omp parallel for schedule(dynamic, 1)
    for (long k = 0; k < nt; k++) {
        int t = 0;
#ifdef _OPENMP
        t = omp_get_thread_num();
#endif
        size_t i = (size_t)k < s->n ? (size_t)k : (size_t)k - s->n;
        int bd = (size_t)k >= s->n;
        if (comm && i % (size_t)comm->size != (size_t)comm->rank) continue; /* another process's */
        float *out = bd ? s->BD + i * s->d : s->G + i * s->d;
        tsr_status r = prob->gradient(prob->ctx, s->ws[t], s->w, s->idx + i * s->b, s->b,
                                      bd ? s->poison : NULL, out, &s->loss[k]);
        if (r != TSR_OK) {
#pragma omp critical(tsr_fl_err)
            if (st == TSR_OK) { /* error details are per thread: carry the message over */
                st = r;
                snprintf(msg, sizeof msg, "%s", tsr_last_error());
            }
        }
    }
    if (st != TSR_OK) return tsr_fail(st, "worker gradient: %s", msg);
    if (comm)
        return comm->gather(comm->ctx, s->G, s->n, backdoor ? s->BD : NULL, s->m, s->d, s->loss);
    return TSR_OK;
}

/* Evaluate the current model and append a record to res. */
static tsr_status record_eval(run_state *s, const tsr_fl_problem *prob, tsr_fl_result *res,
                              size_t round, double *sel_sum, size_t *sel_rounds, double t0) {
    tsr_fl_eval *e = &res->evals[res->n_evals];
    memset(e, 0, sizeof *e);
    e->round = round;
    TSR_TRY(prob->evaluate(prob->ctx, s->ws[0], s->w, 0, &e->accuracy));
    /* The trigger's success rate is measured for every attack: without the
     * backdoor attack it is the baseline rate at which triggered inputs land
     * on the target class anyway. */
    TSR_TRY(prob->evaluate(prob->ctx, s->ws[0], s->w, 1, &e->backdoor));
    double hl = 0;
    for (size_t i = s->m; i < s->n; i++) hl += s->loss[i];
    e->honest_loss = round ? hl / (double)(s->n - s->m) : NAN;
    e->corrupt_selected = *sel_rounds ? *sel_sum / (double)*sel_rounds : NAN;
    *sel_sum = 0;
    *sel_rounds = 0;
    e->seconds = tsr_now() - t0;
    res->n_evals++;
    return TSR_OK;
}

tsr_status tsr_fl_run(const tsr_fl_config *cfg, const tsr_fl_problem *prob, tsr_fl_callback cb,
                      void *user, float *params, tsr_fl_result *res) {
    TSR_REQUIRE(cfg && prob && res, "tsr_fl_run: NULL argument");
    memset(res, 0, sizeof *res);
    res->z = NAN;
    TSR_TRY(tsr_fl_config_check(cfg, prob));
    double t0 = tsr_now();
    uint8_t key[TSR_SEED_BYTES];
    seed_key(cfg->seed, key);
    run_state s;
    memset(&s, 0, sizeof s);
    tsr_status st = state_alloc(&s, cfg, prob);
    size_t eval_every = cfg_eval_every(cfg);
    size_t max_evals = cfg->rounds / eval_every + 3;
    res->evals = tsr_calloc_array(max_evals, sizeof(tsr_fl_eval));
    if (st == TSR_OK && !res->evals)
        st = tsr_fail(TSR_ERR_NOMEM, "cannot allocate %zu evaluation records", max_evals);
    if (st == TSR_OK) st = make_shards(cfg, prob, key, s.all, s.wk);
    if (st == TSR_OK) {
        tsr_prng g;
        tsr_prng_init(&g, key, DOM_INIT);
        st = prob->init(prob->ctx, &g, s.w);
        tsr_prng_wipe(&g);
    }
    int backdoor = cfg->attack.kind == TSR_FL_ATTACK_BACKDOOR;
    size_t bd_count = (size_t)ceil(cfg_bd_fraction(cfg) * (double)s.b);
    if (s.poison)
        for (size_t k = 0; k < s.b; k++) s.poison[k] = k < bd_count;
    int krum_family = cfg->agg.rule == TSR_FL_KRUM || cfg->agg.rule == TSR_FL_MULTIKRUM ||
                      cfg->agg.rule == TSR_FL_BULYAN;
    double sel_sum = 0;
    size_t sel_rounds = 0;
    int cfg_stop = 0;
    double lr = cfg_lr(cfg);
    const tsr_fl_comm *comm = cfg->comm;
    TSR_REQUIRE(!comm || (comm->size >= 1 && comm->rank >= 0 && comm->rank < comm->size &&
                          comm->gather && comm->bcast),
                "tsr_fl_run: bad comm");
    if (comm && comm->rank != 0) { /* a worker process: gradients out, parameters in */
        if (st == TSR_OK) st = comm->bcast(comm->ctx, s.w, s.d, &cfg_stop);
        for (size_t r = 0; st == TSR_OK && !cfg_stop && r < cfg->rounds; r++) {
            int stop = 0;
            st = worker_gradients(&s, prob, backdoor, comm);
            if (st == TSR_OK) st = comm->bcast(comm->ctx, s.w, s.d, &stop);
            if (stop) break;
        }
        goto done;
    }
    if (st == TSR_OK) { /* round 0: the initial model */
        st = record_eval(&s, prob, res, 0, &sel_sum, &sel_rounds, t0);
        if (st == TSR_OK && cb && cb(user, 0, &res->evals[0])) cfg_stop = 1;
        if (st == TSR_OK && comm) st = comm->bcast(comm->ctx, s.w, s.d, &cfg_stop);
    }

    for (size_t r = 0; st == TSR_OK && !cfg_stop && r < cfg->rounds; r++) {
        st = worker_gradients(&s, prob, backdoor, comm);
        if (st != TSR_OK) break;
        if (backdoor) { /* the corrupt workers agree on the mean of their backdoor gradients */
            for (size_t i = 1; i < s.m; i++)
                for (size_t j = 0; j < s.d; j++) s.BD[j] += s.BD[i * s.d + j];
            for (size_t j = 0; j < s.d; j++) s.BD[j] /= (float)s.m;
        }
        tsr_prng gauss;
        tsr_prng_init(&gauss, key, DOM_GAUSS + r);
        double z = NAN;
        st = tsr_fl_attack_apply(&cfg->attack, s.G, s.n, s.m, s.d, backdoor ? s.BD : NULL, &gauss,
                                 &z);
        if (st != TSR_OK) break;
        if (cfg->attack.kind == TSR_FL_ATTACK_ALIE || backdoor) res->z = z;
        memcpy(s.prev_agg, s.agg, s.d * sizeof(float));
        st = tsr_fl_aggregate(&cfg->agg, s.G, s.n, s.d, s.prev_agg, s.agg, s.selected);
        if (st != TSR_OK) break;
        if (krum_family) {
            size_t nsel = 0, ncor = 0;
            for (size_t i = 0; i < s.n; i++) {
                nsel += s.selected[i];
                ncor += i < s.m && s.selected[i];
            }
            sel_sum += nsel ? (double)ncor / (double)nsel : 0;
            sel_rounds++;
        }
        /* Server step with momentum: v = mu v + a, w -= lr v. */
        for (size_t j = 0; j < s.d; j++) {
            s.v[j] = (float)(cfg->momentum * s.v[j] + s.agg[j]);
            s.w[j] = (float)(s.w[j] - lr * s.v[j]);
        }
        size_t done = r + 1;
        int stop = cb && cb(user, done, NULL);
        if (!stop && (done % eval_every == 0 || done == cfg->rounds)) {
            st = record_eval(&s, prob, res, done, &sel_sum, &sel_rounds, t0);
            TSR_ASSERT(res->n_evals <= max_evals);
            if (st == TSR_OK && cb && cb(user, done, &res->evals[res->n_evals - 1])) stop = 1;
        }
        if (comm && st == TSR_OK) st = comm->bcast(comm->ctx, s.w, s.d, &stop);
        if (stop) break;
    }
done:
    if (st == TSR_OK && params) memcpy(params, s.w, s.d * sizeof(float));
    res->seconds = tsr_now() - t0;
    state_free(&s, prob);
    tsr_wipe(key, sizeof key);
    if (st != TSR_OK) tsr_fl_result_free(res);
    return st;
}
