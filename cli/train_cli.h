/*
 * cli/train_cli.h - helpers shared by `tessera train --init` and
 * `tessera heify`: ONNX in and out through the graph, and data pairs X,Y
 * (.npy or IDX) fitted to a graph's input.
 */
#ifndef TSR_CLI_TRAIN_CLI_H
#define TSR_CLI_TRAIN_CLI_H

#include "onnx/onnx.h"
#include "tessera/graph.h"
#include "tessera/train.h"

/** Import an ONNX file as a graph (keep_non_polynomial: ReLU teachers). Prints the error. */
int tcli_load_graph(const char *verb, const char *path, int keep_non_polynomial, tsr_graph **g);
/** tcli_load_graph that also hands back the ONNX model (its metadata); caller frees both. */
int tcli_load_graph_om(const char *verb, const char *path, int keep_non_polynomial, tsr_graph **g,
                       tsr_onnx_model **om);

/** Where a polynomial's valid range comes from (tcli_meta_bound). */
enum { TCLI_BOUND_NONE = 0, TCLI_BOUND_DECLARED, TCLI_BOUND_CALIBRATED };

/**
 * The valid input range [-B, B] the model file gives node i (execution order)
 * of g, keyed by the name x of the node's first input (docs/ONNX.md):
 * tessera.bound.<x> = B (TCLI_BOUND_DECLARED), else tessera.range.<x> =
 * "min max" with B = max(|min|, |max|) (TCLI_BOUND_CALIBRATED), else
 * TCLI_BOUND_NONE. Values that are not finite and > 0 are ignored.
 */
int tcli_meta_bound(const tsr_onnx_model *om, const tsr_graph *g, int i, double *bound);

/**
 * tsr_trainer_set_bound for every POLY node of g (the trainer's graph) that
 * tcli_meta_bound gives a range. 0, or the exit code after printing why.
 */
int tcli_meta_bounds(const char *verb, const tsr_onnx_model *om, const tsr_graph *g,
                     tsr_trainer *t);

/**
 * Load "X,Y" (two .npy or IDX files) for graph g: inputs of rank >= 2 that
 * are unsigned bytes (IDX, uint8 .npy) or, with int_pixels set, of any
 * integer type, are pixels and become (p / 255 - mean) / std (*pixels, may be
 * NULL, says so); other inputs (floats, token ids) are used as they are. X is reshaped to the
 * graph input when its samples have the input's size. limit > 0 keeps the
 * first limit samples. Prints the error and returns the exit code (2 for data
 * that do not fit: no samples, different counts, another input size).
 */
int tcli_load_pair(const char *verb, const char *spec, const tsr_graph *g, double mean, double std,
                   long limit, int int_pixels, tsr_array **x, tsr_array **y, int *pixels);

/** --loss auto|ce|mse (NULL: auto) into *loss. 0 or the usage exit code. */
int tcli_parse_loss(const char *verb, const char *s, tsr_train_loss *loss);

/** Parse "MEAN,STD" (std > 0). 0 or the usage exit code. */
int tcli_parse_norm(const char *verb, const char *s, double *mean, double *std);

/**
 * Export g to ONNX (tsr_onnx_from_graph) at path through the output rules.
 * With pixels set, record the input preprocessing (p / 255 - mean) / std as
 * the tessera.input.* metadata the encrypted-inference verbs read. Each
 * polynomial with a symmetric range [-B, B] records B as tessera.bound.<its
 * input>: the bound t (the trainer g came from, node order as g's; may be
 * NULL) holds for it, else a Chebyshev node's interval (the export writes it
 * in the power basis; `tessera eval` checks inputs against B).
 */
int tcli_save_graph(const char *verb, const tsr_graph *g, const tsr_trainer *t, const char *path,
                    int force, int pixels, double mean, double std);

/** Mean accuracy of g's argmax against labels y (x batch first), or -1 on error (printed). */
double tcli_accuracy(const char *verb, const tsr_graph *g, const tsr_array *x, const tsr_array *y);

#endif /* TSR_CLI_TRAIN_CLI_H */
