/*
 * nn/nn_internal.h - what the sources of src/nn share: the plan object,
 * parameter selection, the cost model and the timing backend.
 */
#ifndef TSR_NN_INTERNAL_H
#define TSR_NN_INTERNAL_H

#include "tessera/core.h"
#include "core/io.h"
#include "nn/model.h"
#include "nn/program.h"

#include <stdio.h>

/** Version of the plan payload layout (docs/INFERENCE.md). */
#define NN_PLAN_VERSION 2

struct tsr_nn_plan {
    tsr_nn_model *model;
    nn_program *prog;
    tsr_ckks_param_spec spec; /* CKKS parameters (flags: insecure allowed or not) */
    int security;             /* bits */
    double predicted_seconds; /* server time of one full batch */
    double predicted_mib;     /* server memory */
    double predicted_client;  /* client encryption + decryption of one batch */
    char choice[256];         /* the optimizer's one-line summary */
    uint8_t id[32];           /* BLAKE2b-256 of the serialized payload */
    /* Ranges the plan was made for (nn/ranges.c). */
    double in_lo, in_hi; /* model input values encrypt accepts */
    int calib_samples;   /* samples the ranges were calibrated on (0: from preprocessing) */
    double out_absmax;   /* calibrated largest |output| (0: not calibrated) */
    double *act_absmax;  /* per layer: calibrated largest |input| (0: not calibrated); owned */
};

/**
 * CKKS chain for a plan: ring 2^log_n, `levels` levels, q_0 with
 * output_bits of headroom over the scale; scale_bits 0 = the largest the
 * 128-bit bound allows (at most 2^40), else exactly that. flags may carry
 * TSR_CKKS_ALLOW_INSECURE_PARAMETERS (tests).
 */
tsr_status nn_choose_params(unsigned log_n, int levels, int output_bits, int scale_bits,
                            uint32_t flags, tsr_ckks_param_spec *out);

/** A plan from its parts (takes ownership of model and prog); computes the id. */
tsr_status nn_plan_assemble(tsr_nn_model *model, nn_program *prog, const tsr_ckks_param_spec *spec,
                            int security, tsr_nn_plan **out);

/** Compute the plan id (BLAKE2b-256 of its payload) after every field is final. */
tsr_status nn_plan_seal(tsr_nn_plan *p);

/* ---- ranges (nn/ranges.c) ---------------------------------------------------------- */

/** Default ranges: inputs = pixels 0..255 under the model's preprocessing; nothing calibrated. */
tsr_status nn_plan_init_ranges(tsr_nn_plan *p);
/** Ranges from n calibration samples x (n, input size) run through the reference executor. */
tsr_status nn_plan_calibrate(tsr_nn_plan *p, const double *x, int n);
/** The ranges section of a plan file, and its validated reader (after the model is read). */
void nn_plan_write_ranges(tsr_writer *w, const tsr_nn_plan *p);
tsr_status nn_plan_read_ranges(tsr_reader *r, tsr_nn_plan *p, int n_layers);
/** Input range, output headroom and calibrated ranges for the plan summary. */
void nn_plan_print_ranges(const tsr_nn_plan *p, FILE *fp);

/* ---- cost model (nn/cost.c) ----------------------------------------------------- */

/** Seconds per operation at the top level of one parameter set, and the limb count. */
typedef struct nn_costs {
    uint8_t fingerprint[16]; /* parameters they were measured for */
    int limbs;               /* L + 1 */
    double add, mul_plain, mul_const, mul_ct, rescale, rotate, hoist_extra, encode, encrypt,
        decrypt, lincomb_term, copy;
    double ct_bytes;  /* one ciphertext at the top level */
    double key_bytes; /* one key-switching key */
    int measured;     /* 1: timed on this machine, 0: built-in estimate */
} nn_costs;

/** Costs for params: from the cache / a costs file, else measured now (and cached). */
tsr_status nn_costs_get(tsr_ckks_params *params, const tsr_nn_compile_opts *o, nn_costs *out);
/** Predicted seconds of one step (counts scaled by the limbs at its level). */
double nn_step_seconds(const nn_costs *c, const nn_step *s, int threads);
/** Predicted bytes of the largest live set of vectors. */
double nn_program_bytes(const nn_costs *c, const nn_program *p);

/* ---- input parsers (nn/data.c; fuzzed by fuzz/fuzz_nn_input.c) ----------------- */

/** Parse a .npy image of model inputs with `want` values per sample (uint8: pixels). */
tsr_status nn_parse_npy(const uint8_t *b, size_t len, int64_t want, double pscale, double mean,
                        double std, double **x, int *n);
/** Parse CSV model inputs with `want` values per line. */
tsr_status nn_parse_csv(const uint8_t *b, size_t len, int64_t want, double **x, int *n);

/* ---- timing backend (nn/timing.c) ------------------------------------------------ */

/**
 * Wrap a backend so that every operation's thread time is added to
 * seconds[TSR_NN_OP_*] (atomically). The wrapper forwards to inner (which
 * must outlive it) and does its own counting.
 */
tsr_status nn_timing_backend_create(tsr_backend *inner, tsr_backend **out);
/** Copy and optionally reset the accumulated times. */
void nn_timing_get(tsr_backend *timing, double seconds[TSR_NN_OP_COUNT_], int reset);

/** Keep freed ciphertext-sized blocks in the heap (glibc mallopt; once per process). */
void nn_tune_malloc(void);

/** Peak resident set size of the process in MiB (getrusage). */
double nn_peak_rss_mib(void);

#endif /* TSR_NN_INTERNAL_H */
