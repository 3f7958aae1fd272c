/*
 * nn/program.h - lowering a model onto tile tensors: the sequence of steps
 * (convolutions, dense products, squares, polynomials, layout changes) with
 * the tile shape of every intermediate value, the level of every step, the
 * operation counts and the rotation steps, for one packing configuration.
 *
 * The lowering *is* a run: nn_program_build executes the network on a
 * backend (normally a shape-only mockup, where it costs nothing) and records
 * what every step did. A runner replays the recorded steps on any backend
 * (nn_prepare_step / nn_apply_step), so the shapes and levels a plan
 * promises are exactly the ones a real run produces.
 *
 * Packings (nn_config):
 *   BATCH  every value of a sample in its own ciphertext, the batch across
 *          the slots: values are [C/1, H/1, W/1, B/S]; linear layers are
 *          tsr_tile_lincomb (no rotations, no plaintexts).
 *   TILED  values are 5-D tile tensors [D0, X, Y, D3, B] with tile sizes
 *          t0..t4; channels (features) live in D0 or D3 and the other is
 *          replicated (`*`), alternating from layer to layer as in Aharoni
 *          et al. (docs/TILES.md): convolutions by tsr_tile_conv, dense
 *          layers by tsr_tile_mul_sum_dims, pools by depthwise convolutions.
 */
#ifndef TSR_NN_PROGRAM_H
#define TSR_NN_PROGRAM_H

#include "nn/model.h"
#include "tile/backend.h"

typedef enum nn_op {
    NN_OP_CONV = 0,  /* tiled convolution (tsr_tile_conv) */
    NN_OP_POOL,      /* tiled average pooling (depthwise tsr_tile_conv) */
    NN_OP_DENSE,     /* tiled dense layer (tsr_tile_mul_sum_dims) */
    NN_OP_LINEAR,    /* batch packing: conv / dense / pool as tsr_tile_lincomb */
    NN_OP_SQUARE,    /* x * x */
    NN_OP_POLY,      /* polynomial activation */
    NN_OP_ADD,       /* residual addition */
    NN_OP_CLEAR_DUP, /* layout change: clear (one level) + duplicate a dimension */
    NN_OP_RESHAPE,   /* layout change without operations (size-1 dimension becomes `*`) */
    NN_OP_REORIENT,  /* layout change: channels D0 <-> D3 (identity 1x1 conv, one level) */
    NN_OP_SQ_LINEAR, /* batch packing: square + the linear layer reading it, one relinearization
                        per output (tsr_tile_sq_lincomb, two levels) */
    NN_OP_MUL,       /* elementwise product of two values (ciphertext x ciphertext, one level) */
    NN_OP_CONTRACT,  /* batch packing: a product of two activations as the model lowers it
                        (0/1 expansions of both operands, mul, dense sum: lower_matmul_act)
                        done as one sum of ciphertext x ciphertext products per output, one
                        relinearization each (tsr_tile_prod_lincomb, two levels); `layer` is
                        the sum, in[0] / in[1] the expansions' inputs (plan format >= 5) */
    NN_OP_SQMUL,     /* x * (x + d): an NN_SQMUL layer (plaintext add, product, one level;
                        never fused into the next layer, see lower_layer) */
    NN_OP_COUNT_
} nn_op;

const char *nn_op_name(nn_op op);

/** Packing configuration: what the optimizer chooses besides the CKKS parameters. */
typedef struct nn_config {
    tsr_nn_packing packing; /* BATCH or TILED */
    int64_t slots;
    int64_t t[5]; /* TILED: tile sizes of [D0, X, Y, D3, B] (product = slots) */
    int orient;   /* TILED: channel dimension (0 or 3) of a one-channel input's first layer */
    int batch;    /* samples per inference */
    /* BATCH: 1 keeps products of two activations as expansions + mul + sum (plans of format
     * < 5 were lowered so); 0 (default) fuses them into NN_OP_CONTRACT steps. Not stored:
     * implied by the plan format. */
    int no_contract;
} nn_config;

/** Layout of one intermediate value. */
typedef struct nn_value {
    tsr_tile_shape shape;
    int cdim; /* dimension holding channels / features: 0 or 3; -1: none (one-channel input) */
    int vec;  /* 1 once flattened by a dense layer */
} nn_value;

typedef struct nn_step {
    nn_op op;
    int layer;      /* model layer; -1 for layout changes */
    int in[2], out; /* value ids (in[1] = -1 except ADD, MUL) */
    int fdim, cdim; /* CONV / POOL dimensions (-1: none) */
    int odim;       /* DENSE: output dimension; CLEAR_DUP / RESHAPE: the dimension */
    int nsum;       /* DENSE: summed dimensions */
    int sum[4];
    int level_in, level_out;
    tsr_tile_shape in_shape, out_shape;
    tsr_backend_counts counts; /* operations of one run of the step */
    double predicted;          /* seconds, from the cost model */
} nn_step;

typedef struct nn_program {
    nn_config cfg;
    int n_steps, cap_steps;
    nn_step *steps;
    int n_values, cap_values;
    nn_value *values; /* [0] is the encrypted input */
    int output;       /* value id of the output */
    int top_level;    /* level of the input */
    int depth;        /* levels consumed */
    int needs_relin;  /* some step multiplies ciphertexts */
    int64_t n_rot;
    int64_t *rot; /* rotation steps used (normalized, increasing) */
    uint64_t peak_vectors;
    uint64_t n_plain; /* plaintexts the prepared steps hold (weights, biases) */
    /* Memory in limbs (tsr_backend_counts): the most any step holds besides the prepared
     * plaintexts, and the prepared plaintexts of all steps (a runner keeps them all). Not
     * stored in plan files: the reader's re-lowering recomputes them. */
    uint64_t peak_limbs, plain_limbs;
} nn_program;

void nn_program_free(nn_program *p);

/**
 * Check a packing configuration for a model and derive the input layout.
 * TSR_ERR_UNSUPPORTED / TSR_ERR_SHAPE with a reason when it cannot work.
 */
tsr_status nn_config_check(const tsr_nn_model *m, const nn_config *c, nn_value *input);

/**
 * Lower model m under configuration c by running it on be (any backend;
 * a shape-only mockup with collecting rotations makes it a dry run):
 * records steps, shapes, levels, counts and rotation steps.
 */
tsr_status nn_program_build(const tsr_nn_model *m, const nn_config *c, tsr_backend *be,
                            nn_program **out);

/**
 * Levels the step of polynomial layer L (NN_POLY) consumes: ceil(log2(d + 1)), per tensor
 * (nc = 1, tsr_tile_poly) for its degree d without trailing zero coefficients, per channel
 * (poly_channels in program.c: the same power-of-two split with the coefficients as
 * plaintexts) for the highest power d with a non-zero coefficient in any channel; 0 for a
 * constant.
 */
int nn_poly_depth(const nn_layer *L);

/**
 * Multiplicative depth of model m as nn_program_build lowers it: the levels each layer's step
 * consumes, along the deepest path. Layout changes are not counted (tiled packing may add
 * clears and reorientations, one level each).
 *
 * For tests only (nn_poly_depth too): the compiler measures a plan's depth by a dry run of the
 * program (compile.c) and sizes the chain from that. Do not size chains with this count: it
 * can be short for tiled models.
 */
int nn_model_depth(const tsr_nn_model *m);

/** Per-step prepared data (encoded weights, convolution objects, matrices). */
typedef struct nn_prep nn_prep;

/** Prepare step s of the program on be (encodes at s->level_in / level_out). */
tsr_status nn_prepare_step(const tsr_nn_model *m, const nn_program *p, const nn_step *s,
                           tsr_backend *be, nn_prep **out);
void nn_prep_free(nn_prep *pp);
/** Run one step: vals[s->out] = op(vals[s->in...]). */
tsr_status nn_apply_step(const tsr_nn_model *m, const nn_program *p, const nn_step *s,
                         const nn_prep *pp, tsr_tile **vals);

/** Dense tensor of the input layout for n samples x (n, C, H, W); out has num_elements. */
tsr_status nn_pack_input(const tsr_nn_model *m, const nn_program *p, const double *x, int n,
                         double **out);
/** Unpack decrypted output values (num_elements of the output shape) into (n, classes). */
void nn_unpack_output(const tsr_nn_model *m, const nn_program *p, const double *dense, int n,
                      double *out);

/** Compare two programs step by step (shapes, levels, ops); 0 when equal. */
int nn_program_compare(const nn_program *a, const nn_program *b, char *why, size_t n);

#endif /* TSR_NN_PROGRAM_H */
