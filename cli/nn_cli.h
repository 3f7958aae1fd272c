/*
 * cli/nn_cli.h - helpers shared by the encrypted-inference verbs (compile,
 * keygen, encrypt, infer, decrypt, predict, bench model, the demo).
 */
#ifndef TSR_NN_CLI_H
#define TSR_NN_CLI_H

#include "cli.h"

#include "tessera/nn.h"

#include <stdio.h>

/** The flag that allows parameters below 128-bit security, with its loud warning. */
#define NN_CLI_INSECURE "--insecure-parameters-for-testing"
/* --help: what counts as a class vector (tsr_nn_model_is_classifier, a guess from shapes). */
#define NN_CLI_CLASS_VECTOR_HELP                                                            \
    "A class vector is guessed from the shapes: an output of rank 1 with at least two\n"    \
    "values, unless it has as many values as the input (taken for a reconstruction, e.g.\n" \
    "784 outputs of a 28x28 image); `tessera compile` prints the output shape. The ONNX\n"  \
    "metadata tessera.output = classes | values overrides the guess.\n"

void nn_cli_insecure_warning(const char *verb);

/** --packing auto|batch|tiled into *out; a usage error (returns 2) for anything else. */
int nn_cli_parse_packing(const char *verb, const char *name, tsr_nn_packing *out);

/** --max-precision-trade BITS into *out: a whole number from 0 to
 * TSR_NN_MAX_PRECISION_TRADE_BITS; a usage error (returns 2) for anything else (a negative,
 * fractional, non-numeric or larger value). */
int nn_cli_parse_trade(const char *verb, const char *arg, double *out);

/** "LO..HI" or "N" (a ring degree 2^N) into lo, hi; -1 if malformed (no message). */
int nn_cli_parse_log_n(const char *s, int *lo, int *hi);

/** Load a plan; on failure print the error and return the exit code (else 0). */
int nn_cli_load_plan(const char *verb, const char *path, uint32_t flags, tsr_nn_plan **out);

/**
 * Check n samples (the first at --offset `offset` of the data) against the
 * plan's input range (tsr_nn_check_inputs). Outside it: without clip, print
 * which sample, index and value, the range and what to do, and return 2;
 * with clip, clip them, print a warning and return 0.
 */
int nn_cli_check_inputs(const char *verb, const tsr_nn_plan *p, double *x, int n, long offset,
                        int clip);

/** Index of the largest of k values. */
int nn_cli_argmax(const double *v, int k);

/**
 * Write outputs as CSV to an open stream: for a class vector (classes != 0)
 * index,predicted,logit_0..logit_{k-1}; otherwise index,valid,y_0..y_{k-1}
 * (the output flattened row-major). Samples with valid[i] == 0 (valid may
 * be NULL: all valid) are written as "index,invalid,nan,...": garbage is
 * never written as a prediction.
 */
tsr_status nn_cli_write_csv(FILE *fp, const double *logits, const uint8_t *valid, int n, int k,
                            int classes);

/**
 * Write n outputs as a NumPy .npy (version 1.0, little-endian float64, C
 * order) of shape (n, dims[0], ..., dims[rank-1]); invalid samples as NaN.
 */
tsr_status nn_cli_write_npy(FILE *fp, const double *y, const uint8_t *valid, int n, int rank,
                            const int64_t *dims);

/** 1 if path ends with suffix. */
int nn_cli_ends_with(const char *path, const char *suffix);

/**
 * Write decrypted outputs to an open stream as .npy when the path ends in
 * .npy (the model's output shape), else as CSV (nn_cli_write_csv).
 */
tsr_status nn_cli_write_outputs(FILE *fp, const char *path, const tsr_nn_model *m, const double *y,
                                const uint8_t *valid, int n);

/** Print the per-step latency breakdown table of one inference. */
void nn_cli_print_stats(const tsr_nn_plan *p, const tsr_nn_stats *s, FILE *fp);

/**
 * Agreement between encrypted and plaintext logits (n x k): fraction of
 * equal argmax and largest absolute difference. Samples with a non-finite
 * encrypted logit (invalid: NaN) count as disagreeing and are left out of
 * the difference. Returns the number of samples compared (the valid ones).
 */
int nn_cli_agreement(const double *enc, const double *plain, int n, int k, double *agree,
                     double *max_err);
/**
 * The --compare line of a non-class output: the largest error over the `compared` valid
 * samples of n (k values each), "n/a" when none was valid.
 */
void nn_cli_print_largest_error(FILE *fp, double err, int compared, int n, int k);

#endif /* TSR_NN_CLI_H */
