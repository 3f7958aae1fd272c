/*
 * serve/serve_internal.h - pieces of the HTTP service (include/tessera/serve.h)
 * that are tested and fuzzed on their own: request routing (route.c), the
 * reply texts (reply.c) and the evaluation-key store (keystore.c).
 */
#ifndef TSR_SERVE_INTERNAL_H
#define TSR_SERVE_INTERNAL_H

#include "tessera/ckks.h"
#include "tessera/nn.h"
#include "tessera/serve.h"

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

/* ---- routing (route.c) --------------------------------------------------------------- */

typedef enum serve_endpoint {
    EP_NONE = 0, /* no such path: 404 */
    EP_KEYS,     /* PUT /v1/keys */
    EP_INFER,    /* POST /v1/plans/{id}/infer */
    EP_PLANS,    /* GET /v1/plans */
    EP_HEALTH,   /* GET /healthz */
    EP_METRICS,  /* GET /metrics */
    EP_COUNT_
} serve_endpoint;

/** A parsed request line. */
typedef struct serve_route {
    serve_endpoint ep;
    int status;    /* 0: routed; else the HTTP error status (400, 404, 405) */
    char msg[160]; /* why, when status != 0 */
    int has_plan;  /* the {id} of an infer path, or ?plan= of PUT /v1/keys */
    uint8_t plan[32];
    int has_keys; /* ?keys= of an infer request */
    uint8_t keys[32];
} serve_route;

/**
 * Route a request: method ("GET", ...), path (without the query) and the
 * values of the query arguments "plan" and "keys" (NULL when absent). Ids
 * are 64 lowercase or uppercase hexadecimal digits (BLAKE2b-256). Every
 * input is untrusted (fuzz/fuzz_serve_route.c); never fails otherwise.
 */
void serve_route_parse(const char *method, const char *path, const char *plan_arg,
                       const char *keys_arg, serve_route *out);
/** Hexadecimal id (64 digits) into 32 bytes; 0 on success, -1 if malformed. */
int serve_parse_id(const char *hex, uint8_t id[32]);
/** 32 bytes as 64 lowercase hexadecimal digits and a NUL. */
void serve_format_id(const uint8_t id[32], char hex[65]);
/** Name of an endpoint for logs and metrics ("keys", "infer", ...). */
const char *serve_endpoint_name(serve_endpoint ep);

/* ---- reply texts (reply.c) ------------------------------------------------------------- */

/**
 * A text that grows as it is appended to (start from all zeros). An append that cannot grow
 * it (out of memory, or past 16 MiB) marks it failed and leaves it as it was; later appends
 * do nothing. The text is always NUL-terminated once something was appended.
 */
typedef struct serve_text {
    char *b;
    size_t len, cap;
    int failed;
} serve_text;

void serve_text_appendf(serve_text *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/** s as a JSON string, quotes included (", \ and control characters escaped). */
void serve_text_json_string(serve_text *t, const char *s);
/** The text (caller frees), or NULL when it failed (then freed); t is reset either way. */
char *serve_text_take(serve_text *t);

/**
 * The reply of PUT /v1/keys: {"keys": "<hash>", "plans": ["<id>", ...]} and a newline, listing
 * every plan i < n_plans with matched[i] set. Caller frees; NULL out of memory.
 */
char *serve_keys_reply(const uint8_t hash[32], const uint8_t (*plan_ids)[32],
                       const uint8_t *matched, int n_plans);

/* ---- the key store (keystore.c) ------------------------------------------------------ */

/*
 * Evaluation keys on disk (state_dir/keys/HASH.evk, HASH the BLAKE2b-256 of
 * the file) and, for (keys, plan) pairs in use, loaded: keys, a ckks backend
 * and a runner with the plan's weights prepared. Both layers are LRU-bounded
 * in bytes; entries in use are never evicted.
 */
typedef struct ks_loaded ks_loaded;
typedef struct keystore keystore;

/** A loaded entry handed to a job (ks_acquire / ks_release). */
struct ks_loaded {
    uint8_t hash[32];
    int plan;                 /* index into the server's plans */
    tsr_ckks_params *params;  /* the plan's */
    tsr_ckks_relin_key *rk;   /* may be NULL */
    tsr_ckks_galois_keys *gk; /* may be NULL */
    uint8_t key_id[TSR_CKKS_KEY_ID_BYTES];
    tsr_backend *be;
    tsr_nn_runner *runner;
    pthread_mutex_t run; /* a runner runs one inference at a time */
    uint64_t bytes;      /* what the entry counts against the key cache (ks_entry_bytes) */
    int refs;
    uint64_t last_use;
    ks_loaded *next;
};

tsr_status ks_create(const char *dir, uint64_t cache_bytes, uint64_t store_bytes,
                     const tsr_nn_plan *const *plans, int n_plans, keystore **out);
void ks_free(keystore *ks);
/**
 * Validate a finished upload (tmp_path, its hash) against the plans (only
 * plan `want` if want >= 0) and move it into the store. *matched (n_plans
 * entries) gets 1 for each plan the keys serve; *existed 1 if they were
 * stored already. On failure the temporary file is removed and the status
 * and message say why (TSR_ERR_SECRET, TSR_ERR_MISMATCH, ...). Validations
 * run one at a time, serialized with ks_acquire's loads.
 */
tsr_status ks_add(keystore *ks, const char *tmp_path, const uint8_t hash[32], int want,
                  uint8_t *matched, int *existed);
/**
 * The loaded keys `hash` for plan `plan`, loading them (and preparing the
 * runner) if needed; TSR_ERR_NOT_FOUND if no such keys are stored. Release
 * with ks_release.
 */
tsr_status ks_acquire(keystore *ks, const uint8_t hash[32], int plan, ks_loaded **out);
void ks_release(keystore *ks, ks_loaded *e);
/** 1 if keys `hash` are stored (or loaded for some plan), else 0. */
int ks_has(keystore *ks, const uint8_t hash[32]);
/**
 * Memory a loaded entry of plan p with a key file of file_bytes counts against the key cache:
 * the plan's predicted server memory of one inference (keys, prepared weights, ciphertexts),
 * at least twice the key file (seeded keys expand).
 */
uint64_t ks_entry_bytes(const tsr_nn_plan *p, uint64_t file_bytes);
/** Bytes loaded in memory and stored on disk. */
void ks_usage(keystore *ks, uint64_t *cache_bytes, uint64_t *store_bytes);

#endif /* TSR_SERVE_INTERNAL_H */
