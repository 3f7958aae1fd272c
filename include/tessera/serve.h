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
    uint64_t key_cache;       /**< bytes of evaluation keys kept loaded, LRU (default 2 GiB) */
    uint64_t key_store;       /**< bytes of evaluation keys kept on disk, LRU (default 16 GiB) */
    int retry_after;          /**< seconds sent in Retry-After with a 503 (default 5) */
    FILE *log;                /**< one line per request and event (NULL: silent) */
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
 * Graceful stop: refuse new connections and new jobs (503), let running and
 * queued jobs finish and their responses go out (at most drain_seconds; then
 * connections are closed), free everything. NULL is a no-op.
 */
TSR_API void tsr_serve_stop(tsr_server *s, double drain_seconds);

TSR_END_DECLS

#endif /* TESSERA_SERVE_H */
