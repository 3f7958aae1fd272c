/*
 * tests/support/nn_check.h - what the encrypted-inference tests share (test_nn_he,
 * test_nn_plan6, test_nn_simplify_square): compile options on the insecure test ring, the
 * PyTorch fixtures of tests/data/torch, and a plan run on the debug backend (CKKS beside
 * an exact mockup) with its precision against a plaintext reference.
 */
#ifndef TSR_NN_CHECK_H
#define TSR_NN_CHECK_H

#include "testutil.h"

#include "onnx/onnx_graph.h"
#include "tessera.h"

/** Defaults with batch, packing, ring 2^log_n and TSR_CKKS_ALLOW_INSECURE_PARAMETERS. */
void tt_nn_compile_opts(tsr_nn_compile_opts *o, int batch, tsr_nn_packing pk, int log_n);

/**
 * The PyTorch fixture `name` of tests/data/torch: the model (name.onnx) and PyTorch's inputs
 * and outputs (name_input.pb, name_output.pb). The caller frees all three.
 */
void tt_nn_torch_fixture(const char *name, tsr_nn_model **m, tsr_onnx_data **x, tsr_onnx_data **y);

/** Keys for a plan and the backends over them (tt_nn_debug_create / tt_nn_debug_free). */
typedef struct tt_nn_debug {
    tsr_ckks_params *params;
    tsr_ckks_secret_key *sk;
    tsr_ckks_relin_key *rk;
    tsr_ckks_galois_keys *gk;
    tsr_backend *ckks;  /* the plan's CKKS backend, all keys */
    tsr_backend *exact; /* a mockup of the same parameters without noise */
    tsr_backend *debug; /* ckks beside exact, tolerance 1e-3 */
} tt_nn_debug;

/** The plan's parameters and keys, and the three backends of tt_nn_debug. */
void tt_nn_debug_create(const tsr_nn_plan *p, tt_nn_debug *d);
void tt_nn_debug_free(tt_nn_debug *d);

/**
 * Plan p run on backend be (a runner on it: encrypt n samples x, run, decrypt into out, n x
 * the model's output size): the precision in bits of out against ref.
 */
double tt_nn_run_bits(const tsr_nn_plan *p, tsr_backend *be, const double *x, int n, double *out,
                      const double *ref);

#endif /* TSR_NN_CHECK_H */
