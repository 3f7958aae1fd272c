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

/** Version of the plan payload layout (docs/INFERENCE.md). 4 added the mul layer kind and
 * step; 5 the contract step (batch packing fuses a product of two activations); 6 stores the
 * model graph and the compiler's choices instead of the lowered layers and steps. Versions 3
 * to 5 read unchanged (nn/plan_legacy.c; 3 and 4 lowered without contract steps), and a
 * model without a graph is still written in format 5. */
#define NN_PLAN_VERSION     6
#define NN_PLAN_VERSION_MIN 3
/* The layers a plan may hold (formats 3 to 5) or its graph lower to (format 6). */
#define NN_PLAN_MAX_LAYERS 4096

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
    uint32_t format; /* plan format the payload is written in; 0: the newest the plan can be
                        written in (6 when its model has a graph, else 5). A plan read from an
                        older format keeps it, and so keeps its id. */
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

/** Special primes of the alternative chains (nn_chain_alternatives): 1 to this many. */
#define NN_CHAIN_MAX_SPECIAL 3
/** The max-scale chain and one alternative per number of special primes. */
#define NN_MAX_CHAINS (1 + NN_CHAIN_MAX_SPECIAL)

/**
 * The chains a plan of `levels` levels on ring 2^log_n may use, all meeting
 * the same bound as nn_choose_params (arguments as there): out[0] is
 * nn_choose_params's chain (the largest scale, then the fewest digits); then,
 * for k = 1..NN_CHAIN_MAX_SPECIAL special primes, the chain with exactly k of
 * them with the largest scale and the fewest digits at that scale, unless it
 * is out[0]. More special primes allow larger digits (fewer of them: cheaper
 * key switches, smaller keys) but leave fewer bits of the bound to the
 * scale. With TSR_CKKS_ALLOW_INSECURE_PARAMETERS (no bound: test-only
 * parameters, unchanged) only out[0]. Returns how many (0 when
 * nn_choose_params fails; its error is cleared).
 */
int nn_chain_alternatives(unsigned log_n, int levels, int output_bits, int scale_bits,
                          uint32_t flags, tsr_ckks_param_spec out[NN_MAX_CHAINS]);

/** A plan from its parts (takes ownership of model and prog); computes the id. */
tsr_status nn_plan_assemble(tsr_nn_model *model, nn_program *prog, const tsr_ckks_param_spec *spec,
                            int security, tsr_nn_plan **out);

/**
 * Estimate a plan's precision: run n samples x (n <= the plan's batch) on a
 * noisy mockup with the plan's chain and compare with the plaintext
 * reference. *bits = log2(max(1, largest |y|) / largest |error|), *err the
 * largest error. Errors as the runner's (a value beyond the headroom of its
 * ciphertext fails, as it would decrypt to garbage). nn/ranges.c.
 */
tsr_status nn_plan_estimate_bits(const tsr_nn_plan *p, const double *x, int n, double *bits,
                                 double *err);

/**
 * The precision measure of nn_plan_estimate_bits for n outputs got against ref:
 * log2(max(1, largest |ref|) / largest |got - ref|), 60 when they are equal, and
 * *err (if not NULL) the largest error (infinite if any output is not finite).
 * nn/ranges.c.
 */
double nn_precision_bits(const double *got, const double *ref, int64_t n, double *err);

/** Compute the plan id (BLAKE2b-256 of its payload) after every field is final. */
tsr_status nn_plan_seal(tsr_nn_plan *p);

/* ---- plan files (nn/plan.c: frame, format 6; nn/plan_legacy.c: formats 3 to 5) ----- */

/** A fixed-size NUL-padded text field of n bytes (n <= 512). */
void nn_plan_write_str(tsr_writer *w, const char *s, size_t n);
/** Read one; -1 (r failed) when it holds no NUL. */
int nn_plan_read_str(tsr_reader *r, char *dst, size_t n);
/** The CKKS spec (with flags) and security bits, checked; insecure specs need the flag. */
tsr_status nn_plan_read_spec(tsr_reader *r, uint32_t ckks_flags, tsr_ckks_param_spec *spec,
                             uint32_t *security);
/** The packing choices (u32 packing, u64 slots, u64 t[5], u32 orient, u32 batch), checked. */
tsr_status nn_plan_read_config(tsr_reader *r, const tsr_ckks_param_spec *spec, nn_config *cfg);
/** Lower m with cfg on a shape-only mockup of the spec's chain (the dry run of a plan). */
tsr_status nn_plan_lower(const tsr_nn_model *m, const nn_config *cfg,
                         const tsr_ckks_param_spec *spec, uint32_t ckks_flags, nn_program **out);
/** The payload of formats 3 to 5 (p->format), predictions zeroed without with_predictions. */
void nn_plan_write_legacy(const tsr_nn_plan *p, tsr_writer *w, int with_predictions);
/** Read a format 3 to 5 payload after its version (r: memory reader of the plen-byte payload). */
tsr_status nn_plan_read_legacy(tsr_reader *in, uint32_t version, uint64_t plen, uint32_t ckks_flags,
                               tsr_nn_plan **out);

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

/** Default headroom of q_0 over the scale for the outputs, in bits. */
#define NN_DEFAULT_OUTPUT_BITS 10
/** Default precision floor of compile, bits: a candidate whose estimated outputs
 * (nn_plan_estimate_bits minus NN_PRECISION_MARGIN_BITS) carry fewer is refused. 10 bits
 * leave the CKKS error at most about 2^-10 of the outputs (1e-3 for |y| <= 1): they refuse
 * the 4-5-bit chains that gave silent garbage (tiled transformer_small at N = 2^14, scale
 * 2^24: estimated 3.8 bits) and keep the demo's N = 2^13 / 2^28 plans (batch 4096: estimated
 * 15.0 bits, 13.8 with the uncalibrated mockup and 3-bit margin, when a 15-bit floor refused
 * it for a 2x slower N = 2^14 plan; measured 100 % agreement on 4096 images, largest logit
 * error 5e-4; batch 1: 12.4). Users who need more ask with --min-bits. */
#define NN_DEFAULT_MIN_BITS 10.0
/** Default of tsr_nn_compile_opts.max_precision_trade, bits: a chain with more special primes
 * and a scale up to 2 bits smaller may replace the max-scale chain when it is predicted faster
 * and its estimate is at most 2 + NN_TRADE_TOLERANCE_BITS below (and above the floor). */
#define NN_DEFAULT_PRECISION_TRADE_BITS 2.0
/** How far the estimate of a chain T bits of scale down (T = max_precision_trade, a whole
 * number) may fall below the estimate of the plan a trade of 0 would choose, beyond T, bits.
 * The scale bound itself is exact (scale bits are integers). The same packing on a chain s
 * bits down estimates at most about s bits less (transformer_small 3.00 for 3; AE1 at 2^14
 * 1.55-1.99 for 2; 1.11 for 2 on the rotation-bound autoencoder fixture, the extra special
 * primes removing key-switching noise), so a whole-bit trade against the same packing has at
 * least half a bit of slack. Against another packing (the plan of trade 0 may be one) the
 * loss also holds the packings' noise difference, any fraction: the slack is what the log's
 * figures leave (AE1 r8p152z8 at batch 64: 1.96 of 2.5).
 * (A bound of T + 0.01 put AE1's 1.89-2.00-bit loss on the edge of the default 2.) */
#define NN_TRADE_TOLERANCE_BITS 0.5
/** How much the noisy mockup may overestimate the precision of real CKKS, bits. With the
 * calibrated model of tile/mockup.c (secret spectrum, centred key-switching digits, real-slot
 * encoding; `tessera bench noise --model`, docs/BENCHMARKS.md "Noise") the estimate was at
 * most 0.47 bits above the mean of 4 CKKS key sets and 0.83 above the worst of them
 * (fmnist_conv8_poly2 at N = 2^13, scale 2^24, batch 1: estimate 11.50, CKKS 10.67-11.18),
 * over the demo CNN, fmnist_conv8_poly2, transformer_small, the autoencoder, the CNN fixture
 * and the full transformer. Rotations' error depends on the key set, so 1.5 bits: the worst
 * seen plus 0.67 for key sets and plans worse than those seen. (With uncentred digits the
 * worst was 0.39 / 0.68 bits, the full transformer.) The model before it (key switching as
 * rescale rounding, Gaussian slots, N/24 encoding) was up to 3.3 bits optimistic on the mean
 * (the full transformer: 20.74), more than the 3 bits this replaced. */
#define NN_PRECISION_MARGIN_BITS 1.5
/** Default server-memory budget of compile, MiB (a fixed number: plans must not depend on
 * the machine that compiles them). */
#define NN_DEFAULT_MAX_MEMORY_MIB 16384.0

/** Seconds per HE operation at the top of one chain. */
typedef struct nn_costs {
    double add, mul_plain, mul_const, mul_ct, rescale, rotate, hoist_extra, encode, encrypt,
        decrypt, lincomb_term, copy;
    double sq_lincomb_term; /* a term of a fused square-and-sum, squares included */
    /* a term of a fused sum of ciphertext products (contract steps), the product included,
     * without the outputs' relinearization and rescale (optional in a profile: without it,
     * 2 mul_plain + lincomb_term, the estimate before it was measured) */
    double prod_lincomb_term;
} nn_costs;

/** One measured chain of a profile. */
typedef struct nn_profile_point {
    int log_n, levels;
    nn_costs c;
} nn_profile_point;

/** The key-switching operations, priced by the chain and level they run at. */
enum { NN_KS_ROTATE = 0, NN_KS_HOIST_EXTRA, NN_KS_MUL_CT, NN_KS_OPS };

/** One timing of the key-switching operations at one level of one chain (a `ks` record). */
typedef struct nn_profile_ks {
    int log_n, levels, level; /* ring degree, the chain's levels, the level timed at */
    int alpha, special;       /* the chain's primes per digit and special primes */
    double t[NN_KS_OPS];      /* seconds: rotate, hoist_extra, mul_ct */
} nn_profile_ks;

/** Number of coefficients of the key-switch model (nn/cost.c): 1, digits x primes, primes,
 * base-conversion products. */
#define NN_KS_TERMS 4

/** A cost profile (nn/cost.c has the format). */
typedef struct nn_profile {
    char cpu[128], simd[24];
    int threads;
    int builtin; /* 1: the built-in profile */
    int version; /* the file's format version (2 or 3) */
    int n;       /* points, sorted by (log_n, levels), no duplicates */
    nn_profile_point *pts;
    int n_ks; /* key-switch timings below the chains' tops (version 3), sorted, no duplicates */
    nn_profile_ks *ks;
    /* Per ring degree, the key-switch model fitted at load: seconds of op k at level l of a
     * chain with alpha primes per digit and s special primes = c[0] + c[1] D P + c[2] P +
     * c[3] B, with D = ceil((l + 1) / alpha) digits, P = l + 1 + s primes and B the base
     * conversions' products per coefficient (nn/cost.c, ks_terms; fit[log_n][k], all >= 0). */
    uint8_t has_fit[TSR_CKKS_MAX_LOG_N + 1];
    double fit[TSR_CKKS_MAX_LOG_N + 1][NN_KS_OPS][NN_KS_TERMS];
} nn_profile;

/** The built-in profile's text (nn/cost_builtin.c). */
extern const char nn_builtin_profile[];

/** Parse a profile's text (validated; fuzz/fuzz_nn_profile.c). */
tsr_status nn_profile_parse(const uint8_t *b, size_t len, nn_profile **out);
/** Load a profile file (path NULL: the built-in profile). */
tsr_status nn_profile_load(const char *path, nn_profile **out);
void nn_profile_free(nn_profile *p);
/** 1 if the profile has measurements for ring degree 2^log_n. */
int nn_profile_has(const nn_profile *p, int log_n);
/** Costs at a chain of `levels` levels of ring degree 2^log_n (interpolated; zeros if none). */
void nn_profile_costs_at(const nn_profile *p, int log_n, double levels, nn_costs *out);
/**
 * Seconds of key-switching operation op (NN_KS_*) at `level` of a chain of ring degree
 * 2^log_n with alpha primes per digit and `special` special primes: the profile's fitted
 * model (a level between two integers: interpolated). Without a fit for the ring degree,
 * the top of the level-deep chain (nn_profile_costs_at), as before the model existed.
 */
double nn_ks_seconds(const nn_profile *p, int log_n, int alpha, int special, double level, int op);
/**
 * The CKKS chain tsr_nn_profile_measure times for 2^log_n with `levels` levels: the one the
 * compiler would use (nn_choose_params, 128-bit); TSR_CKKS_ALLOW_INSECURE_PARAMETERS in
 * o->ckks_flags only opens the test rings below 2^13.
 */
tsr_status nn_profile_chain(const tsr_nn_profile_opts *o, int log_n, int levels,
                            tsr_ckks_param_spec *s);
/**
 * Predicted seconds of one step of a program on the chain spec: its key switches (rotations,
 * relinearizations) at the level they run at on that chain (nn_ks_seconds), the other
 * operations at the step's mean level.
 */
double nn_step_seconds(const nn_profile *prof, const tsr_ckks_param_spec *spec, const nn_step *s);
/** Predicted client seconds (encrypting the input, decrypting the output). */
double nn_client_seconds(const nn_profile *prof, const tsr_ckks_param_spec *spec,
                         const nn_program *p);
/** Resident memory of a server process besides its vectors and keys (code, libraries,
 * OpenMP threads, the plan, thread scratch), MiB: `tessera infer` of the CryptoNets CNN at
 * N = 2^10 peaks at 52 MiB, of which 42 are predicted vectors and keys. */
#define NN_BASE_MEMORY_MIB 12.0
/**
 * Predicted peak server bytes of a program built on the chain spec (nn_program_build on
 * a mockup of those parameters): its peak limbs, the prepared plaintexts, the caller's
 * copy of the input, the evaluation keys and NN_BASE_MEMORY_MIB.
 */
double nn_program_bytes(const tsr_ckks_param_spec *spec, const nn_program *p);

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
 * must outlive it) and does its own counting. Every optional kernel of inner
 * is forwarded (rotate_sums, bootstrap, ...); its bootstrapping level, rotation
 * policy and declared rotations are copied as they are when the wrapper is made.
 */
tsr_status nn_timing_backend_create(tsr_backend *inner, tsr_backend **out);
/** Copy and optionally reset the accumulated times. */
void nn_timing_get(tsr_backend *timing, double seconds[TSR_NN_OP_COUNT_], int reset);

/** Peak resident set size of the process in MiB (getrusage). */
double nn_peak_rss_mib(void);

#endif /* TSR_NN_INTERNAL_H */
