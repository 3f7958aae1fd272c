/*
 * nn/ranges.c - the value ranges a plan was made for (issue 10: no silent
 * garbage). CKKS computes modulo Q and approximates activations on bounded
 * intervals: inputs far outside what the model was built for run, decrypt
 * and print garbage without any error. A plan therefore records
 *   - the input range encrypt accepts: the image of the pixel range 0..255
 *     under the model's preprocessing (x = (p * scale - mean) / std; models
 *     without tessera.input.* metadata get the importer's default 1/255, 0,
 *     1, i.e. [0, 1]), or the smallest and largest input value of the
 *     calibration data given to compile (tessera compile --calibrate DATA);
 *   - per layer, the largest |input| seen on the calibration data (0 when
 *     not calibrated), beside the activation bounds the model carries;
 *   - the largest |output| seen on the calibration data, compared with the
 *     headroom of the output ciphertexts (tsr_backend_headroom_bits), the
 *     rule that also flags garbage after decryption (tsr_nn_check_outputs).
 * File layout (inside the plan payload, after the rotation steps):
 *   u32 calibration samples; f64 in_lo, in_hi, out_absmax;
 *   f64 act_absmax[layers]
 */
#include "nn/nn_internal.h"

#include "core/alloc.h"
#include "core/error.h"

#include <math.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

tsr_status nn_plan_init_ranges(tsr_nn_plan *p) {
    const tsr_nn_model *m = p->model;
    tsr_free(p->act_absmax);
    p->act_absmax = tsr_calloc_array((size_t)(m->n_layers ? m->n_layers : 1), sizeof(double));
    if (!p->act_absmax) return tsr_fail(TSR_ERR_NOMEM, "out of memory");
    double a = (0.0 * m->in_scale - m->in_mean) / m->in_std;
    double b = (255.0 * m->in_scale - m->in_mean) / m->in_std;
    p->in_lo = fmin(a, b);
    p->in_hi = fmax(a, b);
    p->calib_samples = 0;
    p->out_absmax = 0;
    return TSR_OK;
}

tsr_status nn_plan_calibrate(tsr_nn_plan *p, const double *x, int n) {
    const tsr_nn_model *m = p->model;
    if (n < 1) return tsr_fail(TSR_ERR_INVALID_ARG, "calibration needs at least one sample");
    int64_t ni = nn_numel(m->shapes[0]), no = nn_numel(m->shapes[m->output]);
    double lo = INFINITY, hi = -INFINITY;
    for (int64_t i = 0; i < (int64_t)n * ni; i++) {
        if (!isfinite(x[i]))
            return tsr_fail(TSR_ERR_INVALID_ARG,
                            "calibration sample %lld, value %lld is not finite",
                            (long long)(i / ni), (long long)(i % ni));
        lo = fmin(lo, x[i]);
        hi = fmax(hi, x[i]);
    }
    double *absmax = tsr_calloc_array((size_t)m->n_tensors, sizeof *absmax);
    double *out = tsr_alloc((size_t)n * (size_t)no * sizeof *out);
    tsr_status st = absmax && out ? nn_model_forward_stats(m, x, n, out, absmax)
                                  : tsr_fail(TSR_ERR_NOMEM, "out of memory calibrating");
    if (st == TSR_OK) st = nn_plan_init_ranges(p);
    if (st == TSR_OK) {
        p->in_lo = lo;
        p->in_hi = hi;
        p->calib_samples = n;
        p->out_absmax = absmax[m->output];
        for (int i = 0; i < m->n_layers; i++) p->act_absmax[i] = absmax[m->layers[i].in[0]];
    }
    tsr_free(absmax);
    tsr_free(out);
    return st;
}

void tsr_nn_plan_input_range(const tsr_nn_plan *p, double *lo, double *hi) {
    *lo = p->in_lo;
    *hi = p->in_hi;
}

int tsr_nn_plan_calibration(const tsr_nn_plan *p, double *out_absmax) {
    if (out_absmax) *out_absmax = p->out_absmax;
    return p->calib_samples;
}

tsr_status tsr_nn_plan_output_headroom_bits(const tsr_nn_plan *p, double *bits) {
    tsr_ckks_params *par = NULL;
    TSR_TRY(tsr_nn_plan_params(p, &par));
    tsr_backend *be = NULL;
    tsr_status st = tsr_backend_ckks_create(par, NULL, NULL, NULL, NULL, &be);
    if (st == TSR_OK) {
        int lv = p->prog->steps[p->prog->n_steps - 1].level_out;
        *bits = tsr_backend_headroom_bits(be, lv, tsr_backend_scale(be, lv));
    }
    tsr_backend_free(be);
    tsr_ckks_params_free(par);
    return st;
}

int64_t tsr_nn_check_inputs(const tsr_nn_plan *p, double *x, int n, int clip, int64_t *first) {
    TSR_REQUIRE(p && (x || n == 0), "tsr_nn_check_inputs: NULL argument");
    int64_t ni = tsr_nn_model_input_size(p->model), bad = 0;
    /* a relative slack of 1e-9 of the range keeps values written with 6-9 digits inside */
    double slack = 1e-9 * fmax(1.0, p->in_hi - p->in_lo);
    double lo = p->in_lo - slack, hi = p->in_hi + slack;
    if (first) *first = -1;
    for (int64_t i = 0; i < (int64_t)n * ni; i++) {
        if (x[i] >= lo && x[i] <= hi) continue;
        if (first && bad == 0) *first = i;
        bad++;
        if (clip && !isnan(x[i])) x[i] = x[i] < lo ? p->in_lo : p->in_hi;
    }
    return bad;
}

void nn_plan_write_ranges(tsr_writer *w, const tsr_nn_plan *p) {
    tsr_write_u32(w, (uint32_t)p->calib_samples);
    tsr_write_f64(w, p->in_lo);
    tsr_write_f64(w, p->in_hi);
    tsr_write_f64(w, p->out_absmax);
    for (int i = 0; i < p->model->n_layers; i++) tsr_write_f64(w, p->act_absmax[i]);
}

tsr_status nn_plan_read_ranges(tsr_reader *r, tsr_nn_plan *p, int n_layers) {
    p->act_absmax = tsr_calloc_array((size_t)(n_layers ? n_layers : 1), sizeof(double));
    if (!p->act_absmax) return tsr_fail(TSR_ERR_NOMEM, "out of memory");
    uint32_t ns = tsr_read_u32(r);
    p->in_lo = tsr_read_f64(r);
    p->in_hi = tsr_read_f64(r);
    p->out_absmax = tsr_read_f64(r);
    for (int i = 0; i < n_layers; i++) p->act_absmax[i] = tsr_read_f64(r);
    TSR_TRY(tsr_reader_status(r));
    if (ns > (1u << 30) || !isfinite(p->in_lo) || !isfinite(p->in_hi) || !(p->in_lo <= p->in_hi))
        return tsr_reader_fail(r, TSR_ERR_FORMAT,
                               "malformed plan: input range [%g, %g] from %u samples", p->in_lo,
                               p->in_hi, ns);
    if (!(p->out_absmax >= 0) || !isfinite(p->out_absmax))
        return tsr_reader_fail(r, TSR_ERR_FORMAT, "malformed plan: calibrated output range");
    for (int i = 0; i < n_layers; i++)
        if (!(p->act_absmax[i] >= 0) || !isfinite(p->act_absmax[i]))
            return tsr_reader_fail(r, TSR_ERR_FORMAT, "malformed plan: layer %d range", i);
    p->calib_samples = (int)ns;
    return TSR_OK;
}

void nn_plan_print_ranges(const tsr_nn_plan *p, FILE *fp) {
    const tsr_nn_model *m = p->model;
    if (p->calib_samples)
        fprintf(fp, "input range [%.4g, %.4g] (calibrated on %d samples)", p->in_lo, p->in_hi,
                p->calib_samples);
    else
        fprintf(fp, "input range [%.4g, %.4g] (pixels 0..255 under the model's preprocessing)",
                p->in_lo, p->in_hi);
    double bits;
    if (tsr_nn_plan_output_headroom_bits(p, &bits) == TSR_OK)
        fprintf(fp, "; output headroom |y| < %.4g", exp2(bits));
    if (p->calib_samples) fprintf(fp, ", calibrated |y| <= %.4g", p->out_absmax);
    fputc('\n', fp);
    if (!p->calib_samples) return;
    fprintf(fp, "calibrated activation inputs:");
    int any = 0;
    for (int i = 0; i < m->n_layers; i++) {
        const nn_layer *L = &m->layers[i];
        if (L->kind != NN_POLY && L->kind != NN_SQUARE && L->kind != NN_SQMUL) continue;
        fprintf(fp, "%s %s |x| <= %.3g", any++ ? "," : "", L->name, p->act_absmax[i]);
        if (L->bound > 0) fprintf(fp, " (bound %.3g)", L->bound);
    }
    fprintf(fp, any ? "\n" : " none\n");
}

int tsr_nn_plan_range_warnings(const tsr_nn_plan *p, FILE *fp) {
    if (!p->calib_samples) return 0;
    const tsr_nn_model *m = p->model;
    int n = 0;
    double bits;
    if (tsr_nn_plan_output_headroom_bits(p, &bits) == TSR_OK && !(p->out_absmax < exp2(bits))) {
        n++;
        if (fp)
            fprintf(fp,
                    "WARNING: on the calibration data the outputs reach %.4g, beyond the headroom "
                    "%.4g of the output ciphertexts: encrypted inference of such inputs decrypts "
                    "to garbage (compile with more output headroom or scale the model's last "
                    "layer down)\n",
                    p->out_absmax, exp2(bits));
    }
    for (int i = 0; i < m->n_layers; i++) {
        const nn_layer *L = &m->layers[i];
        if (L->kind != NN_POLY || !L->lossy || !(L->bound > 0) || p->act_absmax[i] <= L->bound)
            continue;
        n++;
        if (fp)
            fprintf(fp,
                    "WARNING: on the calibration data the inputs of %s reach %.3g, outside the "
                    "interval [-%g, %g] its polynomial approximates the activation on: its "
                    "outputs are wrong there\n",
                    L->name, p->act_absmax[i], L->bound, L->bound);
    }
    return n;
}

double nn_precision_bits(const double *got, const double *ref, int64_t n, double *err) {
    double e = 0, y = 1;
    for (int64_t i = 0; i < n; i++) {
        double d = fabs(got[i] - ref[i]);
        e = isfinite(d) && e < INFINITY ? fmax(e, d) : INFINITY;
        y = fmax(y, fabs(ref[i]));
    }
    if (err) *err = e;
    return e > 0 ? log2(y / e) : 60;
}

/*
 * Precision estimate (no silent garbage, part two): n samples x run through
 * the plan on a mockup with the plan's exact chain, key switching and
 * CKKS-like noise (tile/mockup.c: rescale and public-key encryption
 * rounding over a fixed secret spectrum, real-slot encoding, key-switching
 * noise with its fixed per-key part; a fixed seed), compared with the
 * plaintext reference. *bits = log2(max(1, largest |y|) / largest |error|):
 * bits of the outputs above the error, absolute for outputs below 1. The
 * model is average-case; against the ckks backend it was at most 0.68 bits
 * optimistic (the worst key set seen) and 1.1 bits pessimistic (secret-key
 * encryption, which is less noisy than the public-key encryption modelled),
 * so callers subtract NN_PRECISION_MARGIN_BITS. Runs on one thread, so the
 * result does not depend on scheduling.
 */
tsr_status nn_plan_estimate_bits(const tsr_nn_plan *p, const double *x, int n, double *bits,
                                 double *err) {
    *bits = 0;
    *err = INFINITY;
    tsr_ckks_params *par = NULL;
    TSR_TRY(tsr_nn_plan_params(p, &par));
    tsr_mockup_params mp;
    tsr_mockup_params_default(&mp, 2, 1);
    mp.noise = 1;
    mp.seed = 0x7e55e2a;
    tsr_backend *be = NULL;
    tsr_status st = tsr_backend_mockup_create_for(par, &mp, &be);
    tsr_ckks_params_free(par);
    int64_t no = tsr_nn_model_output_size(p->model);
    double *ref = tsr_alloc((size_t)n * (size_t)no * sizeof *ref);
    double *got = tsr_alloc((size_t)n * (size_t)no * sizeof *got);
    if (st == TSR_OK && !(ref && got)) st = tsr_fail(TSR_ERR_NOMEM, "out of memory");
    if (st == TSR_OK) st = nn_model_forward(p->model, x, n, ref);
    tsr_nn_runner *r = NULL;
    tsr_tile *in = NULL, *out = NULL;
    /* one thread: the noise stream is drawn in operation order, so the estimate (and the
     * plan compile chooses with it) does not depend on thread scheduling */
#ifdef _OPENMP
    int threads = omp_get_max_threads();
    omp_set_num_threads(1);
#endif
    if (st == TSR_OK) st = tsr_nn_runner_create(p, be, &r);
    if (st == TSR_OK) st = tsr_nn_encrypt(p, tsr_nn_runner_backend(r), x, n, &in);
    if (st == TSR_OK) st = tsr_nn_run(r, in, &out, NULL);
#ifdef _OPENMP
    omp_set_num_threads(threads);
#endif
    if (st == TSR_OK) st = tsr_nn_decrypt(p, out, n, got);
    if (st == TSR_OK) {
        *bits = nn_precision_bits(got, ref, (int64_t)n * no, err);
    }
    tsr_tile_free(out);
    tsr_tile_free(in);
    tsr_nn_runner_free(r);
    tsr_backend_free(be);
    tsr_free(ref);
    tsr_free(got);
    return st;
}
