/*
 * serve/keystore.c - the server's evaluation keys: files on disk named by
 * their BLAKE2b-256 hash (state_dir/keys/HASH.evk, written only after the
 * whole upload was validated against a plan), and the (keys, plan) pairs in
 * use loaded in memory with a ckks backend and a prepared runner. Both are
 * bounded in bytes and evict the least recently used entry nobody holds.
 * One mutex guards the index; loading a key file happens outside it (one
 * load at a time), so requests for loaded keys never wait behind a load.
 * Validating an upload loads and expands its keys too, under the same load
 * lock: however many uploads arrive at once, at most one key set is being
 * loaded or validated (tsr_serve_memory_bound counts one).
 */
#include "serve/serve_internal.h"

#include "core/alloc.h"
#include "core/error.h"
#include "core/io.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

typedef struct ks_file {
    uint8_t hash[32];
    uint64_t bytes;
    uint64_t last_use;
    int pins; /* loads in progress */
    struct ks_file *next;
} ks_file;

struct keystore {
    char dir[4096];
    uint64_t cache_max, store_max;
    int n_plans;
    const tsr_nn_plan *const *plans;
    tsr_ckks_params **params; /* per plan */
    uint8_t (*fpr)[TSR_FINGERPRINT_SIZE];
    pthread_mutex_t mu;   /* the two lists, counters */
    pthread_mutex_t load; /* one load or upload validation at a time */
    ks_file *files;
    ks_loaded *loaded;
    uint64_t tick, cache_bytes, store_bytes;
};

static void file_path(const keystore *ks, const uint8_t hash[32], char *out, size_t n) {
    char hex[65];
    serve_format_id(hash, hex);
    snprintf(out, n, "%s/%s.evk", ks->dir, hex);
}

static void loaded_free(ks_loaded *e) {
    if (!e) return;
    tsr_nn_runner_free(e->runner);
    tsr_backend_free(e->be);
    tsr_ckks_galois_keys_free(e->gk);
    tsr_ckks_relin_key_free(e->rk);
    pthread_mutex_destroy(&e->run);
    tsr_free(e);
}

/* Evict unheld loaded entries, oldest first, while over the cache bound (caller holds mu). */
static void evict_loaded(keystore *ks) {
    while (ks->cache_bytes > ks->cache_max) {
        ks_loaded **victim = NULL;
        for (ks_loaded **pp = &ks->loaded; *pp; pp = &(*pp)->next)
            if ((*pp)->refs == 0 && (!victim || (*pp)->last_use < (*victim)->last_use)) victim = pp;
        if (!victim) return;
        ks_loaded *e = *victim;
        *victim = e->next;
        ks->cache_bytes -= e->bytes;
        loaded_free(e);
    }
}

/* Remove unpinned files, oldest first, while over the store bound, never `keep` (holds mu). */
static void evict_files(keystore *ks, const ks_file *keep) {
    while (ks->store_bytes > ks->store_max) {
        ks_file **victim = NULL;
        for (ks_file **pp = &ks->files; *pp; pp = &(*pp)->next)
            if (*pp != keep && (*pp)->pins == 0 &&
                (!victim || (*pp)->last_use < (*victim)->last_use))
                victim = pp;
        if (!victim) return;
        ks_file *f = *victim;
        char path[4200];
        file_path(ks, f->hash, path, sizeof path);
        unlink(path);
        *victim = f->next;
        ks->store_bytes -= f->bytes;
        tsr_free(f);
    }
}

static ks_file *find_file(keystore *ks, const uint8_t hash[32]) {
    for (ks_file *f = ks->files; f; f = f->next)
        if (memcmp(f->hash, hash, 32) == 0) return f;
    return NULL;
}

static tsr_status add_file(keystore *ks, const uint8_t hash[32], uint64_t bytes, ks_file **out) {
    ks_file *f = tsr_calloc(sizeof *f);
    if (!f) return tsr_fail(TSR_ERR_NOMEM, "out of memory");
    memcpy(f->hash, hash, 32);
    f->bytes = bytes;
    f->last_use = ++ks->tick;
    f->next = ks->files;
    ks->files = f;
    ks->store_bytes += bytes;
    if (out) *out = f;
    return TSR_OK;
}

void ks_free(keystore *ks) {
    if (!ks) return;
    while (ks->loaded) {
        ks_loaded *e = ks->loaded;
        ks->loaded = e->next;
        loaded_free(e);
    }
    while (ks->files) {
        ks_file *f = ks->files;
        ks->files = f->next;
        tsr_free(f);
    }
    for (int i = 0; ks->params && i < ks->n_plans; i++) tsr_ckks_params_free(ks->params[i]);
    tsr_free(ks->params);
    tsr_free(ks->fpr);
    pthread_mutex_destroy(&ks->mu);
    pthread_mutex_destroy(&ks->load);
    tsr_free(ks);
}

tsr_status ks_create(const char *dir, uint64_t cache_bytes, uint64_t store_bytes,
                     const tsr_nn_plan *const *plans, int n_plans, keystore **out) {
    *out = NULL;
    keystore *ks = tsr_calloc(sizeof *ks);
    if (!ks) return tsr_fail(TSR_ERR_NOMEM, "out of memory");
    pthread_mutex_init(&ks->mu, NULL);
    pthread_mutex_init(&ks->load, NULL);
    snprintf(ks->dir, sizeof ks->dir, "%s", dir);
    ks->cache_max = cache_bytes;
    ks->store_max = store_bytes;
    ks->plans = plans;
    ks->n_plans = n_plans;
    ks->params = tsr_calloc_array((size_t)n_plans, sizeof *ks->params);
    ks->fpr = tsr_calloc_array((size_t)n_plans, sizeof *ks->fpr);
    tsr_status st = ks->params && ks->fpr ? TSR_OK : tsr_fail(TSR_ERR_NOMEM, "out of memory");
    for (int i = 0; st == TSR_OK && i < n_plans; i++) {
        st = tsr_nn_plan_params(plans[i], &ks->params[i]);
        if (st == TSR_OK) tsr_ckks_params_fingerprint(ks->params[i], ks->fpr[i]);
    }
    /* Keys stored by an earlier run: every HASH.evk (they were validated when uploaded, and
     * are validated again when loaded); anything else in the directory is left alone. */
    DIR *d = st == TSR_OK ? opendir(dir) : NULL;
    if (st == TSR_OK && !d)
        st = tsr_fail(TSR_ERR_IO, "cannot open the key store '%s': %s", dir, strerror(errno));
    struct dirent *de;
    while (st == TSR_OK && (de = readdir(d)) != NULL) {
        char hex[65];
        uint8_t h[32];
        struct stat sb;
        if (strlen(de->d_name) != 68 || strcmp(de->d_name + 64, ".evk") != 0) continue;
        memcpy(hex, de->d_name, 64);
        hex[64] = '\0';
        char path[4200];
        snprintf(path, sizeof path, "%s/%s", dir, de->d_name);
        if (serve_parse_id(hex, h) != 0 || lstat(path, &sb) != 0 || !S_ISREG(sb.st_mode)) continue;
        st = add_file(ks, h, (uint64_t)sb.st_size, NULL);
    }
    if (d) closedir(d);
    if (st != TSR_OK) {
        ks_free(ks);
        return st;
    }
    *out = ks;
    return TSR_OK;
}

/* Refuse anything but an evaluation-key bundle by its frame header, before parsing it. */
static tsr_status check_header(const char *path, uint8_t fpr[TSR_FINGERPRINT_SIZE]) {
    uint8_t h[TSR_FRAME_HEADER_SIZE];
    FILE *fp = fopen(path, "rb");
    if (!fp) return tsr_fail(TSR_ERR_IO, "cannot reopen the upload: %s", strerror(errno));
    size_t got = fread(h, 1, sizeof h, fp);
    fclose(fp);
    if (got < sizeof h || memcmp(h, TSR_FRAME_MAGIC, 4) != 0)
        return tsr_fail(TSR_ERR_FORMAT, "the body is not a Tessera evaluation-key file (tessera "
                                        "keygen --out-eval)");
    unsigned kind = (unsigned)h[6] | (unsigned)h[7] << 8;
    uint32_t flags =
        (uint32_t)h[8] | (uint32_t)h[9] << 8 | (uint32_t)h[10] << 16 | (uint32_t)h[11] << 24;
    if (kind == TSR_OBJ_SECRET_KEY || (flags & TSR_FRAME_SECRET))
        return tsr_fail(TSR_ERR_SECRET,
                        "this is a secret key: the server never takes one (it was not stored); "
                        "upload the evaluation keys (tessera keygen --out-eval) and keep the "
                        "secret key on the client");
    if (kind != TSR_OBJ_EVAL_KEYS)
        return tsr_fail(TSR_ERR_FORMAT,
                        "the body holds a Tessera object of kind %u, not evaluation keys (tessera "
                        "keygen --out-eval)",
                        kind);
    memcpy(fpr, h + 12, TSR_FINGERPRINT_SIZE);
    return TSR_OK;
}

/* Load the key file at path for plan i and check it covers the plan. */
static tsr_status load_for(keystore *ks, const char *path, int i, tsr_ckks_relin_key **rk,
                           tsr_ckks_galois_keys **gk, uint8_t key_id[TSR_CKKS_KEY_ID_BYTES]) {
    *rk = NULL;
    *gk = NULL;
    tsr_status st = tsr_ckks_eval_keys_load(rk, gk, key_id, ks->params[i], path);
    if (st != TSR_OK) return tsr_fail_context(st, "loading the evaluation keys: ");
    st = tsr_nn_check_keys(ks->plans[i], *rk, *gk);
    if (st != TSR_OK) {
        tsr_ckks_relin_key_free(*rk);
        tsr_ckks_galois_keys_free(*gk);
        *rk = NULL;
        *gk = NULL;
        return tsr_fail_context(st, "checking the evaluation keys: ");
    }
    return TSR_OK;
}

tsr_status ks_add(keystore *ks, const char *tmp_path, const uint8_t hash[32], int want,
                  uint8_t *matched, int *existed) {
    *existed = 0;
    memset(matched, 0, (size_t)ks->n_plans);
    uint8_t fpr[TSR_FINGERPRINT_SIZE];
    tsr_status st = check_header(tmp_path, fpr);
    int n_match = 0;
    /* The most telling failure: of a plan with the keys' parameters (a malformed or incomplete
     * key file) before a parameter mismatch. */
    tsr_status best = TSR_OK, other = TSR_OK;
    char best_msg[1024] = "";
    /* Each validation expands a key set: one at a time, like the loads (the memory bound). */
    pthread_mutex_lock(&ks->load);
    for (int i = 0; st == TSR_OK && i < ks->n_plans; i++) {
        if (want >= 0 && i != want) continue;
        if (memcmp(fpr, ks->fpr[i], TSR_FINGERPRINT_SIZE) != 0) {
            other = TSR_ERR_MISMATCH;
            continue;
        }
        tsr_ckks_relin_key *rk;
        tsr_ckks_galois_keys *gk;
        uint8_t kid[TSR_CKKS_KEY_ID_BYTES];
        tsr_status e = load_for(ks, tmp_path, i, &rk, &gk, kid);
        if (e == TSR_OK) {
            matched[i] = 1;
            n_match++;
            tsr_ckks_relin_key_free(rk);
            tsr_ckks_galois_keys_free(gk);
        } else if (e == TSR_ERR_NOMEM || e == TSR_ERR_IO) {
            st = e;
        } else if (best == TSR_OK) {
            best = e;
            snprintf(best_msg, sizeof best_msg, "%s", tsr_last_error());
        }
    }
    pthread_mutex_unlock(&ks->load);
    if (st == TSR_OK && n_match == 0) {
        const char *pre = want >= 0 ? "" : "the keys serve none of the server's plans: ";
        if (best != TSR_OK)
            st = tsr_fail(best, "%s%s", pre, best_msg);
        else
            st = tsr_fail(other,
                          "%sthe evaluation keys were made for other CKKS parameters than "
                          "the plan's: they were generated for another plan (run tessera "
                          "keygen with this plan)",
                          pre);
    }
    if (st != TSR_OK) {
        unlink(tmp_path);
        return st;
    }
    char path[4200];
    file_path(ks, hash, path, sizeof path);
    struct stat sb;
    if (stat(tmp_path, &sb) != 0) {
        st = tsr_fail(TSR_ERR_IO, "the upload vanished: %s", strerror(errno));
        unlink(tmp_path);
        return st;
    }
    pthread_mutex_lock(&ks->mu);
    ks_file *f = find_file(ks, hash);
    if (f) {
        *existed = 1;
        f->last_use = ++ks->tick;
        unlink(tmp_path);
    } else if (rename(tmp_path, path) != 0) {
        st = tsr_fail(TSR_ERR_IO, "storing the keys: %s", strerror(errno));
        unlink(tmp_path);
    } else {
        st = add_file(ks, hash, (uint64_t)sb.st_size, &f);
        if (st == TSR_OK)
            evict_files(ks, f);
        else
            unlink(path);
    }
    pthread_mutex_unlock(&ks->mu);
    return st;
}

static ks_loaded *find_loaded(keystore *ks, const uint8_t hash[32], int plan) {
    for (ks_loaded *e = ks->loaded; e; e = e->next)
        if (e->plan == plan && memcmp(e->hash, hash, 32) == 0) return e;
    return NULL;
}

uint64_t ks_entry_bytes(const tsr_nn_plan *p, uint64_t file_bytes) {
    /* The plan's prediction of one inference's server memory counts the evaluation keys, the
     * encoded weights a prepared runner keeps and the ciphertexts of a run; seeded keys expand
     * to about twice their file size. The larger of the two is the entry's cost. */
    double predicted = tsr_nn_plan_predicted_mib(p) * 1048576.0;
    uint64_t keys = 2 * file_bytes;
    return predicted > (double)keys ? (uint64_t)predicted : keys;
}

/* Load keys and prepare the runner: the slow part, outside the index lock. */
static tsr_status load_entry(keystore *ks, const uint8_t hash[32], int plan, uint64_t bytes,
                             ks_loaded **out) {
    *out = NULL;
    ks_loaded *e = tsr_calloc(sizeof *e);
    if (!e) return tsr_fail(TSR_ERR_NOMEM, "out of memory");
    pthread_mutex_init(&e->run, NULL);
    memcpy(e->hash, hash, 32);
    e->plan = plan;
    e->params = ks->params[plan];
    e->bytes = ks_entry_bytes(ks->plans[plan], bytes);
    char path[4200];
    file_path(ks, hash, path, sizeof path);
    tsr_status st = load_for(ks, path, plan, &e->rk, &e->gk, e->key_id);
    if (st == TSR_OK &&
        (st = tsr_backend_ckks_create(e->params, NULL, NULL, e->rk, e->gk, &e->be)) != TSR_OK)
        st = tsr_fail_context(st, "preparing the plan: ");
    if (st == TSR_OK && (st = tsr_nn_runner_create(ks->plans[plan], e->be, &e->runner)) != TSR_OK)
        st = tsr_fail_context(st, "preparing the plan: ");
    if (st != TSR_OK) {
        loaded_free(e);
        return st;
    }
    *out = e;
    return TSR_OK;
}

tsr_status ks_acquire(keystore *ks, const uint8_t hash[32], int plan, ks_loaded **out) {
    *out = NULL;
    pthread_mutex_lock(&ks->mu);
    ks_loaded *e = find_loaded(ks, hash, plan);
    if (e) {
        e->refs++;
        e->last_use = ++ks->tick;
        pthread_mutex_unlock(&ks->mu);
        *out = e;
        return TSR_OK;
    }
    ks_file *f = find_file(ks, hash);
    if (!f) {
        pthread_mutex_unlock(&ks->mu);
        return tsr_fail(TSR_ERR_NOT_FOUND,
                        "no evaluation keys with this hash are stored here (never uploaded, or "
                        "evicted from the key store): upload them with PUT /v1/keys");
    }
    f->pins++;
    f->last_use = ++ks->tick;
    uint64_t bytes = f->bytes;
    pthread_mutex_unlock(&ks->mu);

    pthread_mutex_lock(&ks->load);
    pthread_mutex_lock(&ks->mu);
    e = find_loaded(ks, hash, plan); /* loaded by another request meanwhile? */
    if (e) e->refs++;
    pthread_mutex_unlock(&ks->mu);
    tsr_status st = TSR_OK;
    if (!e) st = load_entry(ks, hash, plan, bytes, &e);
    pthread_mutex_unlock(&ks->load);

    pthread_mutex_lock(&ks->mu);
    f->pins--;
    if (st == TSR_OK && e->refs == 0) { /* freshly loaded */
        e->refs = 1;
        e->next = ks->loaded;
        ks->loaded = e;
        ks->cache_bytes += e->bytes;
    }
    if (st == TSR_OK) {
        e->last_use = ++ks->tick;
        evict_loaded(ks);
    }
    pthread_mutex_unlock(&ks->mu);
    if (st != TSR_OK) return st;
    *out = e;
    return TSR_OK;
}

void ks_release(keystore *ks, ks_loaded *e) {
    if (!e) return;
    pthread_mutex_lock(&ks->mu);
    TSR_ASSERT(e->refs > 0);
    e->refs--;
    evict_loaded(ks);
    pthread_mutex_unlock(&ks->mu);
}

int ks_has(keystore *ks, const uint8_t hash[32]) {
    pthread_mutex_lock(&ks->mu);
    int has = find_file(ks, hash) != NULL;
    for (ks_loaded *e = ks->loaded; e && !has; e = e->next) has = memcmp(e->hash, hash, 32) == 0;
    pthread_mutex_unlock(&ks->mu);
    return has;
}

void ks_usage(keystore *ks, uint64_t *cache_bytes, uint64_t *store_bytes) {
    pthread_mutex_lock(&ks->mu);
    *cache_bytes = ks->cache_bytes;
    *store_bytes = ks->store_bytes;
    pthread_mutex_unlock(&ks->mu);
}
