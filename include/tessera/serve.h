/*
 * tessera/serve.h - encrypted inference as an HTTP service (docs/SERVING.md).
 *
 * A server holds plans and the evaluation keys clients upload; it never sees
 * a secret key (refused by frame kind and flag). Endpoints (HTTP/1.1, TLS
 * when a certificate and key are given):
 *
 *   PUT  /v1/keys[?plan=ID]            evaluation keys, streamed to disk, stored under
 *                                      their BLAKE2b-256 hash; 201 (200 if known) with
 *                                      {"keys":"HASH","plans":[...]}
 *   POST /v1/plans/ID/infer?keys=HASH  a ciphertext set (tessera encrypt) in, the output
 *                                      ciphertext set (tessera decrypt) out, streamed
 *   GET  /v1/plans                     the plans: id, input shape, batch, outputs (JSON)
 *   GET  /healthz                      "ok"
 *   GET  /metrics                      Prometheus text format
 *
 * Bad input gets a 4xx whose text body is the message the command line gives
 * for the same file ("reading the encrypted inputs: mismatch: ..."); a full
 * job queue gets 503 with Retry-After. Every failed request leaves no file
 * behind. Thread-safety: the functions below are called by one thread (the
 * owner of the server); the server runs its own threads.
 */
#ifndef TESSERA_SERVE_H
#define TESSERA_SERVE_H

#include "tessera/common.h"

#include <stdint.h>
#include <stdio.h>

TSR_BEGIN_DECLS

typedef struct tsr_server tsr_server;

/** Options of tsr_serve_start (fill with tsr_serve_opts_default, then set plans and state_dir). */
typedef struct tsr_serve_opts {
    const char *const *plans; /**< plan files (at least one) */
    int n_plans;
    const char *host;      /**< IPv4 address to listen on (default "127.0.0.1") */
    int port;              /**< TCP port; 0: an ephemeral port (tsr_serve_port tells it) */
    const char *state_dir; /**< server-owned directory for keys and temporary bodies (required) */
    const char *tls_cert, *tls_key; /**< PEM files: both for HTTPS, neither for HTTP */
    uint32_t ckks_flags;      /**< TSR_CKKS_ALLOW_INSECURE_PARAMETERS: accept test-only plans */
    uint64_t max_body;        /**< largest request body in bytes (default 4 GiB) */
    int max_jobs;             /**< inferences running at once (default 1) */
    int max_queue;            /**< inferences waiting beyond those (default 4); more: 503 */
    double queue_timeout;     /**< seconds a job may wait for its turn, then 503 (default 600) */
    double request_timeout;   /**< seconds to receive a request body, else dropped (default 600) */
    unsigned client_timeout;  /**< seconds a connection may stay idle (default 30) */
    unsigned max_connections; /**< open connections at once (default 64) */
    uint64_t key_cache;       /**< bytes of keys with prepared plans kept loaded, LRU; an entry
                                   counts its plan's predicted memory (default 2 GiB) */
    uint64_t key_store;       /**< bytes of evaluation keys kept on disk, LRU (default 16 GiB) */
    int retry_after;          /**< seconds sent in Retry-After with a 503 (default 5) */
    FILE *log;                /**< one line per request and event (NULL: silent) */
    int trim_memory;          /**< 1 (default): after each job give freed memory back to the system
                                   (glibc malloc_trim); 0: skip it (resident memory then grows with the
                                   connections that ran jobs) */
    /**
     * Tests only (NULL otherwise): called on the connection's thread once an
     * inference holds its running slot, before it runs: a test blocks here to
     * fill the queue deterministically.
     */
    void (*job_hook)(void *arg);
    void *job_hook_arg;
} tsr_serve_opts;

TSR_API void tsr_serve_opts_default(tsr_serve_opts *o);

/**
 * Load the plans, create state_dir/keys and state_dir/tmp (mode 0700; stale
 * temporary files removed, stored keys re-indexed), bind and start serving
 * on the server's own threads. Errors: TSR_ERR_INVALID_ARG (options),
 * plan-loading errors, TSR_ERR_IO (directories, the socket: a port in use),
 * TSR_ERR_UNSUPPORTED (TLS asked of a libmicrohttpd without it).
 */
TSR_API tsr_status tsr_serve_start(const tsr_serve_opts *o, tsr_server **out);
/** The TCP port the server listens on (the bound one when 0 was asked). */
TSR_API int tsr_serve_port(const tsr_server *s);
/**
 * The most memory (bytes) the server's limits let it use, an estimate
 * (docs/SERVING.md, "Memory", says what it leaves out: thread stacks, OpenMP
 * teams): the process's resident memory once the plans were loaded, plus
 * key_cache, plus (2 x max_jobs + 1) x the largest plan's predicted server
 * memory of one inference (per job an entry held in the key cache beyond its
 * bound while the job uses it, and the job's ciphertexts; plus one uploaded
 * key set being validated: uploads are validated one at a time), plus
 * 64 KiB per connection. A key cache smaller than the largest plan's
 * predicted memory is logged as a warning at start (no entry stays loaded). The
 * process's resident memory at start, now and at its peak are in /metrics
 * beside it (tessera_memory_bound_bytes, tessera_resident_start_bytes,
 * tessera_resident_bytes, tessera_resident_peak_bytes); `tessera bench serve` checks the peak
 * against it with the server in a process of its own.
 */
TSR_API uint64_t tsr_serve_memory_bound(const tsr_server *s);
/**
 * Graceful stop: refuse new connections and new jobs (503), let running and
 * queued jobs finish and their responses go out (at most drain_seconds; then
 * connections are closed), free everything. NULL is a no-op.
 */
TSR_API void tsr_serve_stop(tsr_server *s, double drain_seconds);

/* ======================================================================== */
/* Client (libcurl)                                                           */
/* ======================================================================== */

/** Options of the client calls (fill with tsr_client_opts_default, then set server). */
typedef struct tsr_client_opts {
    const char *server;  /**< base URL: "http://127.0.0.1:8480" (https with TLS) */
    int retries;         /**< how often a 503 is retried after its Retry-After (default 8) */
    double max_wait;     /**< longest wait before one retry, in seconds (default 60) */
    long timeout;        /**< seconds one request may take (0: no limit, the default) */
    const char *ca_file; /**< CA certificates for https (NULL: the system's) */
    int progress;        /**< 1: upload and download progress on stderr (core/progress) */
} tsr_client_opts;

TSR_API void tsr_client_opts_default(tsr_client_opts *o);

/**
 * Upload evaluation keys (PUT /v1/keys, checked against plan_id unless it is
 * NULL), streamed from the file; hash receives their id (64 hexadecimal
 * digits). A refusal fails with the status its HTTP code stands for
 * (403 TSR_ERR_SECRET, 422 TSR_ERR_MISMATCH, 400 TSR_ERR_FORMAT, 413
 * TSR_ERR_INVALID_ARG, 404 TSR_ERR_NOT_FOUND) and the server's message;
 * TSR_ERR_IO when the server cannot be reached or stays busy.
 */
TSR_API tsr_status tsr_client_put_keys(const tsr_client_opts *o, const char *keys_path,
                                       const uint8_t *plan_id, char hash[65]);
/**
 * Run an inference (POST /v1/plans/ID/infer?keys=HASH): the encrypted
 * inputs streamed from in_path, the encrypted outputs to out_path (written
 * to a temporary file renamed into place once complete). Keys the server
 * does not have fail with TSR_ERR_NOT_FOUND and *unknown_keys = 1 (may be
 * NULL): upload them and call again. 503 answers are retried as above.
 */
TSR_API tsr_status tsr_client_infer(const tsr_client_opts *o, const uint8_t plan_id[32],
                                    const char *keys_hash, const char *in_path,
                                    const char *out_path, int *unknown_keys);
/**
 * Check that a file holds evaluation keys by its frame header: a secret key
 * fails with TSR_ERR_SECRET (it never leaves the client; tsr_client_put_keys
 * checks this before sending anything), anything else with TSR_ERR_FORMAT.
 */
TSR_API tsr_status tsr_client_check_keys_file(const char *path);
/** The BLAKE2b-256 of a file as 64 hexadecimal digits (the id PUT /v1/keys answers). */
TSR_API tsr_status tsr_client_file_hash(const char *path, char hash[65]);

TSR_END_DECLS

#endif /* TESSERA_SERVE_H */
