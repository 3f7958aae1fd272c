/*
 * tests/support/nn_check.c - shared pieces of the encrypted-inference tests (nn_check.h).
 */
#include "nn_check.h"

#include <stdio.h>

void tt_nn_compile_opts(tsr_nn_compile_opts *o, int batch, tsr_nn_packing pk, int log_n) {
    tsr_nn_compile_opts_default(o);
    o->batch = batch;
    o->packing = pk;
    o->log_n = log_n;
    o->ckks_flags = TSR_CKKS_ALLOW_INSECURE_PARAMETERS;
}

void tt_nn_torch_fixture(const char *name, tsr_nn_model **m, tsr_onnx_data **x, tsr_onnx_data **y) {
    char path[128];
    snprintf(path, sizeof path, "tests/data/torch/%s.onnx", name);
    tt_ok(tsr_nn_import_onnx(tt_source_path(path), NULL, m, NULL));
    snprintf(path, sizeof path, "tests/data/torch/%s_input.pb", name);
    tt_ok(tsr_onnx_data_load(x, tt_source_path(path)));
    snprintf(path, sizeof path, "tests/data/torch/%s_output.pb", name);
    tt_ok(tsr_onnx_data_load(y, tt_source_path(path)));
}

void tt_nn_debug_create(const tsr_nn_plan *p, tt_nn_debug *d) {
    tt_ok(tsr_nn_plan_params(p, &d->params));
    tt_ok(tsr_nn_keygen(p, d->params, &d->sk, &d->rk, &d->gk));
    tt_ok(tsr_backend_ckks_create(d->params, NULL, d->sk, d->rk, d->gk, &d->ckks));
    tsr_mockup_params mp;
    tsr_mockup_params_default(&mp, 2, 1);
    mp.noise = 0;
    tt_ok(tsr_backend_mockup_create_for(d->params, &mp, &d->exact));
    tt_ok(tsr_backend_debug_create(d->ckks, d->exact, 1e-3, &d->debug));
}

void tt_nn_debug_free(tt_nn_debug *d) {
    tsr_backend_free(d->debug);
    tsr_backend_free(d->exact);
    tsr_backend_free(d->ckks);
    tsr_ckks_galois_keys_free(d->gk);
    tsr_ckks_relin_key_free(d->rk);
    tsr_ckks_secret_key_free(d->sk);
    tsr_ckks_params_free(d->params);
}

double tt_nn_run_bits(const tsr_nn_plan *p, tsr_backend *be, const double *x, int n, double *out,
                      const double *ref) {
    tsr_nn_runner *r;
    tt_ok(tsr_nn_runner_create(p, be, &r));
    tsr_tile *t, *y;
    tt_ok(tsr_nn_encrypt(p, tsr_nn_runner_backend(r), x, n, &t));
    tt_ok(tsr_nn_run(r, t, &y, NULL));
    tt_ok(tsr_nn_decrypt(p, y, n, out));
    const size_t k = (size_t)n * (size_t)tsr_nn_model_output_size(tsr_nn_plan_model(p));
    double bits = tt_precision_bits(out, ref, k);
    tsr_tile_free(t);
    tsr_tile_free(y);
    tsr_nn_runner_free(r);
    return bits;
}
