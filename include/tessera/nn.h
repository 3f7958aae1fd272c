/*
 * tessera/nn.h - encrypted inference: ONNX models in, encrypted predictions
 * out (docs/INFERENCE.md).
 *
 * Workflow:
 *   model owner   tsr_nn_import_onnx -> tsr_nn_compile -> tsr_nn_plan_save
 *   client        tsr_nn_keygen; tsr_nn_encrypt (pack + encrypt a batch)
 *   server        tsr_nn_runner_create (with evaluation keys only) -> tsr_nn_run
 *   client        tsr_nn_decrypt (decrypt + unpack the predictions)
 *
 * A *model* (tsr_nn_model) is the imported network with every weight in
 * double precision, simplified for CKKS (batch norm folded, affine maps
 * merged into neighbours, degree-2 activations turned into squares or, when
 * nearly linear, products x (x + d)); it has a plaintext reference executor.
 * A *plan* (tsr_nn_plan) is a model plus everything needed to run it
 * encrypted: the CKKS parameters, the packing (per-step tile shapes), the
 * level of every step, the rotation keys needed, the batch size and the
 * optimizer's predictions.
 *
 * Thread-safety: models and plans are immutable after creation and may be
 * shared. A runner must not be used by two threads at once (it uses OpenMP
 * threads itself).
 */
#ifndef TESSERA_NN_H
#define TESSERA_NN_H

#include "tessera/common.h"
#include "tessera/ckks.h"
#include "tessera/graph.h"
#include "tessera/tile.h"

#include <stdio.h>

TSR_BEGIN_DECLS

/* ======================================================================== */
/* Models                                                                     */
/* ======================================================================== */

typedef struct tsr_nn_model tsr_nn_model;

/** Most --approx replacements one import takes. */
#define TSR_NN_MAX_APPROX 16

/** Options of tsr_nn_import_onnx (fill with tsr_nn_import_opts_default). */
typedef struct tsr_nn_import_opts {
    /**
     * Replacements of non-polynomial operators: n_approx specs "OP=DEG@RANGE"
     * (interval [-RANGE, RANGE]) or "OP=DEG@LO:HI" (strings borrowed), each a
     * Chebyshev interpolant of OP of degree DEG (1..31) on the interval:
     * Relu, Sigmoid, Tanh, Erf, Exp, Gelu, Softplus, Sqrt, Reciprocal, Div
     * (by an activation), LayerNormalization (its 1/sqrt). Lossy: flagged in
     * the model and its notes. Bad specs: TSR_ERR_INVALID_ARG.
     */
    int n_approx;
    const char *approx[TSR_NN_MAX_APPROX - 1];
    /**
     * The older form for ReLU (an alias of approx "Relu=D@R"): 0 = none;
     * D in 1..8 replaces every ReLU by its degree-D interpolant on
     * [-approx_relu_range, approx_relu_range] (default 4, within [1e-6,
     * 1e6], else TSR_ERR_INVALID_ARG before the file is read). A Relu entry
     * in approx takes precedence.
     */
    int approx_relu_degree;
    double approx_relu_range;
    /** 0: simplify for CKKS (default); 1: keep the graph as imported. */
    int no_simplify;
} tsr_nn_import_opts;

TSR_API void tsr_nn_import_opts_default(tsr_nn_import_opts *o);

/**
 * Import an ONNX model for encrypted inference: ONNX -> the model graph
 * (tessera/graph.h; polynomial subgraphs recognised, --approx replacements)
 * -> inference layers -> CKKS simplifications. One input of rank 2, 3 or 4
 * (or up to 8) with the batch first, one output of any shape. Supported
 * (docs/ONNX.md, docs/INFERENCE.md): Conv (groups, dilations, auto_pad),
 * Gemm (transB, alpha, beta, scalar or vector bias), MatMul by constants
 * (any rank), AveragePool (count_include_pad, ceil_mode, auto_pad),
 * GlobalAveragePool, BatchNormalization, Add / Sub / Mul / Div / Neg by
 * constants, Add / Sub of two activations, polynomials (Mul / Add / Pow
 * subgraphs, x * x), Flatten / Reshape / Squeeze / Unsqueeze / Identity /
 * Dropout keeping the batch first, and Transpose / Slice / Pad / Concat /
 * ReduceSum / ReduceMean as dense layers (up to 2^22 matrix entries).
 * Anything else fails with TSR_ERR_UNSUPPORTED; *report (if report is not
 * NULL) then receives a text listing every unsupported node by name and
 * operator with the replacement Tessera can apply. On success *report may
 * hold notes (lossy approximations, rewrites) or be NULL. Free the report
 * with tsr_nn_string_free.
 */
TSR_API tsr_status tsr_nn_import_onnx(const char *path, const tsr_nn_import_opts *o,
                                      tsr_nn_model **out, char **report);
/**
 * The same from a finalized model graph (tessera/graph.h) instead of a
 * file: lowered onto inference layers and simplified (o: only no_simplify
 * is read; NULL = defaults). One input whose dimension 0 is the batch, one
 * output. TSR_ERR_UNSUPPORTED with *report (may be NULL) listing every node
 * that cannot be lowered. No preprocessing (scale 1, mean 0, std 1), no
 * source hash. g is not modified and may be freed afterwards (the model
 * keeps a copy: plans of format 6 store it).
 */
TSR_API tsr_status tsr_nn_model_from_graph(const tsr_graph *g, const tsr_nn_import_opts *o,
                                           tsr_nn_model **out, char **report);
/** Free a model (NULL is a no-op). */
TSR_API void tsr_nn_model_free(tsr_nn_model *m);
/** Free a string returned by this module (NULL is a no-op). */
TSR_API void tsr_nn_string_free(char *s);
/** Number of input values per sample (C*H*W). */
TSR_API int64_t tsr_nn_model_input_size(const tsr_nn_model *m);
/** Number of output values per sample (classes). */
TSR_API int64_t tsr_nn_model_output_size(const tsr_nn_model *m);
/** Input shape (channels, height, width) as the compiler lays it out. */
TSR_API void tsr_nn_model_input_shape(const tsr_nn_model *m, int *c, int *h, int *w);
/**
 * Per-sample dimensions of the input / output as the ONNX model declares
 * them (batch dimension left out; data row-major, as tsr_nn_model_forward
 * reads and writes them) into dims (room for 8); returns the rank. Models
 * built without a graph report (c, h, w) and (output size).
 */
TSR_API int tsr_nn_model_input_dims(const tsr_nn_model *m, int64_t *dims);
TSR_API int tsr_nn_model_output_dims(const tsr_nn_model *m, int64_t *dims);
/**
 * 1 when the output is a class vector (per-sample rank 1, at least two
 * values, and not as many values as the input has: that is taken for a
 * reconstruction, e.g. 784 outputs of a (1, 28, 28) image), so an argmax and
 * an accuracy make sense; 0 for other outputs (feature maps, reconstructions,
 * sequences, a single value). A guess from shapes: a regression head with
 * two or more outputs counts as a class vector, and a classifier with as
 * many classes as input features as a reconstruction; the ONNX metadata
 * tessera.output = classes | values, when the model had it, decides instead.
 */
TSR_API int tsr_nn_model_is_classifier(const tsr_nn_model *m);
/** Preprocessing of raw pixels p (0..255): x = (p * scale - mean) / std. */
TSR_API void tsr_nn_model_preprocessing(const tsr_nn_model *m, double *scale, double *mean,
                                        double *std);
/**
 * Plaintext reference inference in double precision: x (batch, input
 * size) -> out (batch, output size).
 */
TSR_API tsr_status tsr_nn_model_forward(const tsr_nn_model *m, const double *x, int batch,
                                        double *out);
/** One line per layer to fp. */
TSR_API void tsr_nn_model_print(const tsr_nn_model *m, FILE *fp);

/* ======================================================================== */
/* Plans and the optimizer                                                    */
/* ======================================================================== */

typedef struct tsr_nn_plan tsr_nn_plan;

/** How a batch is packed into ciphertext slots. */
typedef enum tsr_nn_packing {
    TSR_NN_PACK_AUTO = 0,  /**< let the optimizer choose */
    TSR_NN_PACK_BATCH = 1, /**< one sample per slot: every value of a sample in its own
                                ciphertext (throughput; no rotations) */
    TSR_NN_PACK_TILED = 2  /**< samples spread over slots as tile tensors (latency) */
} tsr_nn_packing;

/** Options of tsr_nn_compile (fill with tsr_nn_compile_opts_default). */
typedef struct tsr_nn_compile_opts {
    int batch;              /**< samples per inference, >= 1 (default 1) */
    int security;           /**< bits of security: 128 */
    uint32_t ckks_flags;    /**< TSR_CKKS_ALLOW_INSECURE_PARAMETERS (tests only) or 0 */
    tsr_nn_packing packing; /**< AUTO by default */
    int log_n;              /**< 0: the optimizer chooses; else force N = 2^log_n */
    int min_log_n;          /**< smallest N the optimizer considers (default 13) */
    int max_log_n;          /**< largest N the optimizer considers (default 15) */
    int scale_bits;         /**< 0: choose; else force the scale 2^scale_bits */
    int output_bits;        /**< headroom of q_0 over the scale for the outputs (default 10) */
    /**
     * Per-operation costs: a profile file written by tsr_nn_profile_measure
     * (`tessera profile`), or NULL for the built-in profile. Compilation
     * never times anything and reads no other file: the same model, options
     * and profile give a byte-identical plan on any machine.
     */
    const char *profile;
    /** Candidates predicted to need more server memory are refused (default 16384 MiB). */
    double max_memory_mib;
    FILE *log; /**< candidate table and choice (NULL: silent) */
    /**
     * Calibration inputs (calib_n samples of the model's input size,
     * preprocessed like tsr_nn_encrypt's input; NULL: none): run through the
     * plaintext reference, they set the plan's input range (their smallest
     * and largest value) and its calibrated activation and output ranges.
     * Without them the input range is the pixel range 0..255 under the
     * model's preprocessing. See tsr_nn_plan_input_range.
     */
    const double *calib;
    int calib_n;
    /**
     * Precision floor in bits (default 10; 0: no check). The chosen candidate is run on
     * `batch` samples (the first calibration inputs, else a fixed pseudo-random draw over
     * the plan's input range) on a mockup with its CKKS chain and CKKS-like noise; a
     * candidate whose outputs come out with fewer than min_bits bits above the error
     * (log2(max(1, |y|) / error), less a 1.5-bit margin for the mockup's optimism) is
     * refused and the next fastest is tried: a small scale (many levels on a small ring)
     * no longer gives silent garbage.
     */
    double min_bits;
    /**
     * Whole bits of scale the compiler may give up for a faster chain (default 2; 0: always
     * the chain with the largest scale, as before). For each ring degree and depth the chain
     * with the largest scale the 128-bit bound allows has one special prime and one-prime
     * digits at most levels; chains with 2 or 3 special primes have fewer, larger digits
     * (cheaper rotations and relinearizations, smaller keys) and a scale a few bits smaller.
     * Such a chain is a candidate when its scale is at most max_precision_trade bits below the
     * largest (exact: a trade of 2 tries chains 1 and 2 bits down, never 3, even one whose
     * estimate would lose less), and is chosen only if it is predicted faster than the plan a
     * trade of 0 would choose and its precision estimate (as for min_bits; needs min_bits > 0)
     * is at least min_bits and at most max_precision_trade + 0.5 bits below that plan's
     * estimate: the half bit absorbs the estimate's deviation from "s bits of scale, s bits of
     * precision", so a choice does not turn on hundredths of a bit; the log prints both
     * estimates. Every chain meets the same security bound. A whole number from 0 to
     * TSR_NN_MAX_PRECISION_TRADE_BITS; tsr_nn_compile refuses anything else
     * (TSR_ERR_INVALID_ARG).
     */
    double max_precision_trade;
} tsr_nn_compile_opts;

/** The largest tsr_nn_compile_opts.max_precision_trade, bits. */
#define TSR_NN_MAX_PRECISION_TRADE_BITS 20

TSR_API void tsr_nn_compile_opts_default(tsr_nn_compile_opts *o);

/**
 * Compile a model for encrypted inference of `o->batch` samples at a time:
 * enumerate candidate packings (one sample per slot, and tile-tensor
 * layouts with every split of the slots over the dimensions) and CKKS
 * parameters (ring degree, scale, key-switching digits) meeting the
 * security level; dry-run each candidate on a shape-only mockup to count
 * operations per level and collect rotation steps and depth; predict
 * latency and memory from the cost profile (o->profile, else built-in);
 * keep the fastest that fits in o->max_memory_mib (ties broken by memory,
 * then by the candidate's description: the result is deterministic).
 * Errors: TSR_ERR_UNSUPPORTED if no candidate fits (the message says why),
 * TSR_ERR_INVALID_ARG for bad options, TSR_ERR_FORMAT / TSR_ERR_IO for an
 * unreadable profile.
 */
TSR_API tsr_status tsr_nn_compile(const tsr_nn_model *m, const tsr_nn_compile_opts *o,
                                  tsr_nn_plan **out);
TSR_API void tsr_nn_plan_free(tsr_nn_plan *p);

/** Options of tsr_nn_profile_measure (fill with tsr_nn_profile_opts_default). */
typedef struct tsr_nn_profile_opts {
    int min_log_n, max_log_n; /**< ring degrees to measure (default 13..16) */
    uint32_t ckks_flags;      /**< TSR_CKKS_ALLOW_INSECURE_PARAMETERS: also below 2^13 (tests) */
    int quick;                /**< 1: two chains per ring degree instead of up to five */
    FILE *log;                /**< one line per measured chain (NULL: silent) */
} tsr_nn_profile_opts;

TSR_API void tsr_nn_profile_opts_default(tsr_nn_profile_opts *o);

/**
 * Time every HE operation the cost model uses (lower quartile of 5-8 runs,
 * through the ckks backend, with the current thread count) on a grid of
 * CKKS chains: for each ring degree, 1 level, the quarters and the deepest
 * 128-bit chain, at each chain's top and, for the key switches, also at its
 * middle and level 0; write the profile to path (text, format version 3;
 * docs/INFERENCE.md).
 * Takes seconds to minutes (progress on stderr). Pass the file to
 * tsr_nn_compile (o->profile) to predict for this machine.
 */
TSR_API tsr_status tsr_nn_profile_measure(const tsr_nn_profile_opts *o, const char *path);
/** The model inside the plan (borrowed). */
TSR_API const tsr_nn_model *tsr_nn_plan_model(const tsr_nn_plan *p);
/** Largest number of samples one inference takes. */
TSR_API int tsr_nn_plan_batch(const tsr_nn_plan *p);
/** CKKS parameters of the plan (a new reference; free with tsr_ckks_params_free). */
TSR_API tsr_status tsr_nn_plan_params(const tsr_nn_plan *p, tsr_ckks_params **out);
/** Predicted server time (seconds) of one inference of a full batch. */
TSR_API double tsr_nn_plan_predicted_seconds(const tsr_nn_plan *p);
/** Predicted server peak memory (MiB) of one inference of a full batch (`infer --max-memory`). */
TSR_API double tsr_nn_plan_predicted_mib(const tsr_nn_plan *p);
/** Human summary: parameters, packing, steps with shapes and levels, keys, predictions. */
TSR_API void tsr_nn_plan_print(const tsr_nn_plan *p, FILE *fp);
/**
 * BLAKE2b-256 identifying the plan (binds ciphertext files to it): a hash
 * of the payload with the predictions left out, so plans that differ only
 * in predicted times (other profiles) share ciphertexts.
 */
TSR_API void tsr_nn_plan_id(const tsr_nn_plan *p, uint8_t id[32]);

/*
 * Ranges (issue 10: no silent garbage). CKKS computes modulo Q and
 * polynomial activations approximate on bounded intervals, so inputs far
 * outside what the model was made for run and decrypt to garbage without
 * any error. A plan records the range of model input values it accepts:
 * the smallest and largest value of the calibration inputs given to
 * tsr_nn_compile, else the image of the pixel range 0..255 under the
 * model's preprocessing x = (p * scale - mean) / std (tessera.input.*
 * metadata; the importer's default without it is 1/255, 0, 1: [0, 1]).
 * With calibration it also records, per layer, the largest |input| seen and
 * the largest |output|, which the summary (tsr_nn_plan_print) shows beside
 * the activation bounds and the output headroom.
 */
/** The input range [*lo, *hi] of the plan (see "Ranges"). */
TSR_API void tsr_nn_plan_input_range(const tsr_nn_plan *p, double *lo, double *hi);
/**
 * Number of calibration samples the ranges come from (0: not calibrated);
 * *out_absmax (may be NULL) receives the largest |output| seen on them.
 */
TSR_API int tsr_nn_plan_calibration(const tsr_nn_plan *p, double *out_absmax);
/**
 * log2 of the headroom of the plan's output ciphertexts, Q_level / (2 *
 * scale) at the output level (tsr_backend_headroom_bits): outputs must stay
 * below it in magnitude. Builds the plan's CKKS parameters (cost: those of
 * tsr_nn_plan_params).
 */
TSR_API tsr_status tsr_nn_plan_output_headroom_bits(const tsr_nn_plan *p, double *bits);
/**
 * Client: check n samples x (n, input size) against the plan's input range
 * (a relative slack of 1e-9 of its width allows for printed decimals).
 * Returns the number of values outside it (NaN counts); *first (may be
 * NULL) receives the flat index of the first one (-1 if none). With clip
 * != 0 such values are replaced in place by the nearest end of the range
 * (NaN stays: tsr_nn_encrypt refuses it). tsr_nn_encrypt does not check
 * ranges itself: the encrypt and predict verbs call this first.
 */
TSR_API int64_t tsr_nn_check_inputs(const tsr_nn_plan *p, double *x, int n, int clip,
                                    int64_t *first);
/**
 * Warnings about the calibrated ranges of a plan, one line each to fp (may
 * be NULL): outputs of the calibration data reaching the output headroom
 * (encrypted inference of such inputs decrypts garbage), inputs of a lossy
 * polynomial activation beyond the interval it was fitted on. Returns their
 * number (0 for a plan without calibration).
 */
TSR_API int tsr_nn_plan_range_warnings(const tsr_nn_plan *p, FILE *fp);

/*
 * Plan files: one frame of kind "inference plan" (core/io.h framing:
 * magic, version, the CKKS parameter fingerprint, BLAKE2b checksum). The
 * reader validates every field (TSR_ERR_FORMAT, TSR_ERR_CHECKSUM,
 * TSR_ERR_VERSION). Format 6 (a model imported from ONNX or a graph) holds
 * the model graph, the compiler's choices and a digest of the program they
 * lowered to; the reader lowers the graph and builds the program with those
 * choices, as compile did, and refuses the plan when this build's program
 * has another digest (its lowering changed: compile the model again). A
 * model built
 * by hand or changed after import is written in format 5 (its layers and
 * steps); plans of formats 3 to 5 read, re-derive the program from the
 * model and packing, and refuse recorded steps that disagree. A plan keeps
 * the id it was written with (docs/INFERENCE.md).
 */
TSR_API tsr_status tsr_nn_plan_save(const tsr_nn_plan *p, const char *path);
/** The plan's frame onto an open stream (the caller closes it). */
TSR_API tsr_status tsr_nn_plan_write(const tsr_nn_plan *p, FILE *fp);
TSR_API tsr_status tsr_nn_plan_load(tsr_nn_plan **out, const char *path, uint32_t ckks_flags);
TSR_API tsr_status tsr_nn_plan_to_bytes(const tsr_nn_plan *p, uint8_t **buf, size_t *len);
TSR_API tsr_status tsr_nn_plan_from_bytes(tsr_nn_plan **out, const uint8_t *buf, size_t len,
                                          uint32_t ckks_flags);
/** Free a buffer from tsr_nn_plan_to_bytes. */
TSR_API void tsr_nn_bytes_free(uint8_t *buf);

/* ======================================================================== */
/* Keys, encryption, inference                                                */
/* ======================================================================== */

/**
 * Client: a fresh secret key for the plan's parameters, and the evaluation
 * keys the plan needs: the relinearization key (if the plan multiplies
 * ciphertexts) and exactly the Galois keys of its rotation steps. rk / gk
 * come back NULL when not needed. Shows progress on stderr.
 */
TSR_API tsr_status tsr_nn_keygen(const tsr_nn_plan *p, tsr_ckks_params *params,
                                 tsr_ckks_secret_key **sk, tsr_ckks_relin_key **rk,
                                 tsr_ckks_galois_keys **gk);
/**
 * Check that evaluation keys are the ones the plan needs (same parameters,
 * a relinearization key if needed, every rotation step). TSR_ERR_MISMATCH
 * or TSR_ERR_KEY_MISSING with a message saying they were made for another
 * plan.
 */
TSR_API tsr_status tsr_nn_check_keys(const tsr_nn_plan *p, const tsr_ckks_relin_key *rk,
                                     const tsr_ckks_galois_keys *gk);

/**
 * Client: pack n samples (n <= batch; x is (n, input size), already
 * preprocessed) as the plan's input tile tensor and encrypt it on be (a
 * ckks backend with a public or secret key, or a mockup).
 */
TSR_API tsr_status tsr_nn_encrypt(const tsr_nn_plan *p, tsr_backend *be, const double *x, int n,
                                  tsr_tile **out);
/**
 * Client: decrypt the output tile tensor and unpack n samples into out
 * (n, output size).
 */
TSR_API tsr_status tsr_nn_decrypt(const tsr_nn_plan *p, const tsr_tile *t, int n, double *out);

/**
 * Client: which decrypted samples are garbage. CKKS computes modulo Q, so
 * an output whose true value reaches the headroom of the output ciphertexts
 * (Q_level / (2 scale) of t: tsr_backend_headroom_bits, the rule the mockup
 * applies to refuse such values) wraps around and decrypts to garbage,
 * typically about sqrt(N) times the headroom: inputs outside the range the
 * plan was made for do that. out holds n samples decrypted from t by
 * tsr_nn_decrypt. valid (n entries, may be NULL) receives 1 for samples
 * whose every output is finite and below the headroom in magnitude, else 0;
 * *headroom (may be NULL) the headroom. Returns the number of invalid
 * samples. Thread-safe.
 */
TSR_API int tsr_nn_check_outputs(const tsr_nn_plan *p, const tsr_tile *t, const double *out, int n,
                                 uint8_t *valid, double *headroom);

/** Time and operation counts of one step of an inference. */
typedef struct tsr_nn_step_stats {
    char name[64];       /**< model layer (or layout change) it runs */
    char kind[16];       /**< conv, dense, square, poly, ... */
    char in_shape[160];  /**< tile shape of its input */
    char out_shape[160]; /**< tile shape of its output */
    int level_in, level_out;
    double seconds;         /**< wall time */
    double predicted;       /**< the optimizer's prediction */
    tsr_backend_counts ops; /**< HE operations */
    double op_seconds[8];   /**< thread time per HE operation kind (TSR_NN_OP_*) */
} tsr_nn_step_stats;

/** HE operation kinds timed separately. */
enum {
    TSR_NN_OP_ROTATE = 0, /**< rotations (key switch + automorphism) */
    TSR_NN_OP_MUL_CT,     /**< ciphertext x ciphertext (with relinearization) */
    TSR_NN_OP_MUL_PLAIN,  /**< ciphertext x plaintext */
    TSR_NN_OP_MUL_CONST,  /**< ciphertext x constant (incl. linear combinations) */
    TSR_NN_OP_ADD,        /**< additions */
    TSR_NN_OP_RESCALE,    /**< rescaling and level drops */
    TSR_NN_OP_ENCODE,     /**< plaintext encoding */
    TSR_NN_OP_OTHER,      /**< copies, encryption, decryption, bootstrapping */
    TSR_NN_OP_COUNT_
};
/** "rotate", "mul_ct", ... */
TSR_API const char *tsr_nn_op_name(int op);

/** What one inference did. */
typedef struct tsr_nn_stats {
    int n_steps;
    tsr_nn_step_stats *steps; /**< owned; free with tsr_nn_stats_free */
    double seconds;           /**< wall time of the whole inference */
    double predicted;         /**< predicted by the optimizer */
    double prepare_seconds;   /**< encoding the weights (once per runner) */
    uint64_t peak_vectors;    /**< most ciphertexts + plaintexts alive at once */
    double peak_rss_mib;      /**< process peak resident memory */
    double predicted_mib;     /**< the optimizer's memory prediction */
    int samples;              /**< samples in the batch */
    int threads;
    char backend[16];
} tsr_nn_stats;

TSR_API void tsr_nn_stats_free(tsr_nn_stats *s);

/** A plan prepared on a backend (weights encoded at their levels). */
typedef struct tsr_nn_runner tsr_nn_runner;

/**
 * Server: prepare the plan on be (ckks with evaluation keys only, mockup,
 * or debug): encode every weight at its level. For a ckks backend the
 * rotation keys must cover the plan (see tsr_nn_check_keys).
 */
TSR_API tsr_status tsr_nn_runner_create(const tsr_nn_plan *p, tsr_backend *be, tsr_nn_runner **out);
TSR_API void tsr_nn_runner_free(tsr_nn_runner *r);
/**
 * The runner's own backend (a timing wrapper around the one given at
 * creation): load or encrypt inputs on it to avoid a copy. Outputs of
 * tsr_nn_run live on it; free them before the runner.
 */
TSR_API tsr_backend *tsr_nn_runner_backend(tsr_nn_runner *r);
/**
 * Server: run the network on an encrypted input made by tsr_nn_encrypt for
 * this plan. stats (may be NULL) receives per-step times and counts.
 */
TSR_API tsr_status tsr_nn_run(tsr_nn_runner *r, const tsr_tile *in, tsr_tile **out,
                              tsr_nn_stats *stats);

/**
 * Write the latency breakdown as JSON (per step: time, predicted time,
 * levels, shapes, counts and time per HE operation; totals; memory).
 */
TSR_API tsr_status tsr_nn_report_json(const tsr_nn_plan *p, const tsr_nn_stats *s,
                                      const char *path);
/**
 * Render the same as a self-contained SVG chart: one bar per step split by
 * HE operation kind, with counts and predicted vs measured time.
 */
TSR_API tsr_status tsr_nn_report_svg(const tsr_nn_plan *p, const tsr_nn_stats *s, const char *path);
/** The JSON report / SVG chart onto an open stream (the caller closes it). */
TSR_API tsr_status tsr_nn_report_json_write(const tsr_nn_plan *p, const tsr_nn_stats *s, FILE *fp);
TSR_API tsr_status tsr_nn_report_svg_write(const tsr_nn_plan *p, const tsr_nn_stats *s, FILE *fp);

/* ---- data ------------------------------------------------------------------------ */

/**
 * Model inputs from a file: IDX images (raw or gzip; pixels preprocessed
 * with the model's tessera.input.* metadata), .npy (float32 / float64 model
 * inputs, or uint8 pixels) of shape (n, C, H, W) or (n, C*H*W), or .csv
 * (one sample per line). Samples offset .. offset+count-1 (count 0: all)
 * come back in *x (n, input size), allocated (free with tsr_nn_array_free).
 */
TSR_API tsr_status tsr_nn_load_inputs(const tsr_nn_model *m, const char *path, int offset,
                                      int count, double **x, int *n);
/**
 * Reference outputs (e.g. PyTorch's, to compare encrypted outputs with):
 * .npy of any shape with the model's output size per sample after the
 * first dimension, or .csv with one sample per line; samples offset ..
 * offset+count-1 (count 0: all) into *y (n, output size), allocated (free
 * with tsr_nn_array_free).
 */
TSR_API tsr_status tsr_nn_load_outputs(const tsr_nn_model *m, const char *path, int offset,
                                       int count, double **y, int *n);
/** Labels from an IDX label file or a text file with one integer per line. */
TSR_API tsr_status tsr_nn_load_labels(const char *path, int offset, int count, int32_t **y, int *n);
/** Free arrays returned by the loaders. */
TSR_API void tsr_nn_array_free(void *a);

/* ---- ciphertext files -------------------------------------------------------- */

/**
 * Encrypted inputs and outputs on disk: a frame of kind "ciphertext set"
 * (format version 2: plan id, key-set id, role, number of samples) followed
 * by the tile tensor. key_id is the id of the key set the data is encrypted
 * under (tsr_ckks_secret_key_id / tsr_ckks_public_key_id of the key that
 * encrypted the inputs; the evaluation keys' id for outputs). Loading checks
 * the plan id (TSR_ERR_MISMATCH: "encrypted for another plan"), the key-set
 * id against key_id unless key_id is NULL (TSR_ERR_MISMATCH: "encrypted
 * under another key set": the keys of another keygen run would compute and
 * decrypt garbage), the role, n <= batch and the tile tensor itself.
 * Version-1 files fail with TSR_ERR_VERSION. Every path-taking save here
 * (plans, ciphertext files, reports) writes a temporary file renamed into
 * place once complete, never follows a symbolic link and never replaces a
 * file holding a secret key (TSR_ERR_INVALID_ARG).
 */
typedef enum tsr_nn_ct_role { TSR_NN_CT_INPUT = 1, TSR_NN_CT_OUTPUT = 2 } tsr_nn_ct_role;
TSR_API tsr_status tsr_nn_ct_save(const tsr_nn_plan *p, const tsr_tile *t, tsr_nn_ct_role role,
                                  int n, const uint8_t key_id[TSR_CKKS_KEY_ID_BYTES],
                                  const char *path);
/** The same onto an open stream (the caller closes it). */
TSR_API tsr_status tsr_nn_ct_write(const tsr_nn_plan *p, const tsr_tile *t, tsr_nn_ct_role role,
                                   int n, const uint8_t key_id[TSR_CKKS_KEY_ID_BYTES], FILE *fp);
TSR_API tsr_status tsr_nn_ct_load(const tsr_nn_plan *p, tsr_backend *be, tsr_nn_ct_role role,
                                  const char *path, const uint8_t *key_id, tsr_tile **out, int *n);

TSR_END_DECLS

#endif /* TESSERA_NN_H */
