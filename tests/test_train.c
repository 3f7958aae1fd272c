/*
 * tests/test_train.c - training-engine kernels: every layer's backward
 * against central finite differences, every fast kernel against its naive
 * reference, losses, polynomial fits and optimizers.
 */
#include "testutil.h"

#include "tessera.h"
#include "core/alloc.h"
#include "train/layers.h"
#include "train/loss.h"
#include "train/optim.h"
#include "train/poly.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static float *randv(tsr_prng *g, size_t n, float scale) {
    float *v = malloc((n ? n : 1) * sizeof *v);
    assert_non_null(v);
    for (size_t i = 0; i < n; i++) v[i] = (float)((2 * tsr_prng_double(g) - 1) * scale);
    return v;
}

static float *zerov(size_t n) {
    float *v = calloc(n ? n : 1, sizeof *v);
    assert_non_null(v);
    return v;
}

static void assert_close(const char *what, const float *got, const float *want, size_t n,
                         double tol) {
    double e = tt_rel_err_f(got, want, n, 1e-3);
    if (!(e <= tol)) fail_msg("%s: relative error %.3g > %.3g", what, e, tol);
}

/*
 * Finite-difference check harness: a layer is a function f(x) -> y; the
 * scalar is L = Σ r_i y_i with fixed random r. `fwd` recomputes y into the
 * context; the analytic gradient of each input block is compared with
 * central differences (float32, step h).
 */
typedef struct fd_ctx fd_ctx;
typedef void (*fd_forward)(fd_ctx *c);
struct fd_ctx {
    float *in[4]; /* inputs (x, weights, ...) */
    size_t n_in[4];
    float *out;
    size_t n_out;
    const float *r; /* projection (n_out) */
    fd_forward fwd;
    const void *user;
    int ints[16];
    float f;
};

static double fd_loss(fd_ctx *c) {
    c->fwd(c);
    double s = 0;
    for (size_t i = 0; i < c->n_out; i++) s += (double)c->r[i] * c->out[i];
    return s;
}

/* Compare analytic gradient `an` of input block k with finite differences. */
static void fd_check(const char *what, fd_ctx *c, int k, const float *an, float h, double tol) {
    float *num = zerov(c->n_in[k]);
    for (size_t i = 0; i < c->n_in[k]; i++) {
        float keep = c->in[k][i];
        c->in[k][i] = keep + h;
        double lp = fd_loss(c);
        c->in[k][i] = keep - h;
        double lm = fd_loss(c);
        c->in[k][i] = keep;
        num[i] = (float)((lp - lm) / (2.0 * h));
    }
    double e = tt_rel_err_f(an, num, c->n_in[k], 1e-2);
    if (!(e <= tol)) {
        size_t worst = 0;
        double wd = -1;
        for (size_t i = 0; i < c->n_in[k]; i++)
            if (fabs(an[i] - num[i]) > wd) wd = fabs(an[i] - num[i]), worst = i;
        fail_msg("%s: input %d gradient error %.3g > %.3g (at %zu: analytic %g, numeric %g)", what,
                 k, e, tol, worst, (double)an[worst], (double)num[worst]);
    }
    free(num);
}

/* Push values away from 0 (kinks of ReLU / |x|) so differences stay on one side. */
static void away_from_zero(float *v, size_t n, float gap) {
    for (size_t i = 0; i < n; i++)
        if (fabsf(v[i]) < gap) v[i] = v[i] < 0 ? v[i] - gap : v[i] + gap;
}

/* ---- dense ---------------------------------------------------------------- */

static void dense_fwd(fd_ctx *c) {
    tsr_dense_forward_ref(c->out, c->in[0], c->in[1], c->in[2], c->ints[0], c->ints[1], c->ints[2]);
}

static void test_dense(void **state) {
    (void)state;
    tsr_prng g;
    tt_prng(&g, 101);
    const int B = 5, IC = 7, OC = 4;
    float *x = randv(&g, B * IC, 1), *w = randv(&g, OC * IC, 1), *b = randv(&g, OC, 1);
    float *r = randv(&g, B * OC, 1);
    float *y = zerov(B * OC), *y2 = zerov(B * OC);
    tsr_dense_forward(y, x, w, b, B, IC, OC);
    tsr_dense_forward_ref(y2, x, w, b, B, IC, OC);
    assert_close("dense forward fast vs ref", y, y2, B * OC, 1e-5);
    /* fast vs ref backward, accumulating on top of existing values */
    float *dx = randv(&g, B * IC, 1), *dw = randv(&g, OC * IC, 1), *db = randv(&g, OC, 1);
    float *dx2 = malloc(sizeof(float) * B * IC), *dw2 = malloc(sizeof(float) * OC * IC),
          *db2 = malloc(sizeof(float) * OC);
    memcpy(dx2, dx, sizeof(float) * B * IC);
    memcpy(dw2, dw, sizeof(float) * OC * IC);
    memcpy(db2, db, sizeof(float) * OC);
    tsr_dense_backward(dx, dw, db, r, x, w, B, IC, OC);
    tsr_dense_backward_ref(dx2, dw2, db2, r, x, w, B, IC, OC);
    assert_close("dense dinp fast vs ref", dx, dx2, B * IC, 1e-5);
    assert_close("dense dw fast vs ref", dw, dw2, OC * IC, 1e-5);
    assert_close("dense db fast vs ref", db, db2, OC, 1e-5);
    /* finite differences on the reference */
    memset(dx, 0, sizeof(float) * B * IC);
    memset(dw, 0, sizeof(float) * OC * IC);
    memset(db, 0, sizeof(float) * OC);
    tsr_dense_backward(dx, dw, db, r, x, w, B, IC, OC);
    fd_ctx c = { .in = { x, w, b },
                 .n_in = { B * IC, OC * IC, OC },
                 .out = y,
                 .n_out = B * OC,
                 .r = r,
                 .fwd = dense_fwd,
                 .ints = { B, IC, OC } };
    fd_check("dense", &c, 0, dx, 1e-2f, 1e-3);
    fd_check("dense", &c, 1, dw, 1e-2f, 1e-3);
    fd_check("dense", &c, 2, db, 1e-2f, 1e-3);
    /* bias-less and NULL gradients */
    tsr_dense_forward(y, x, w, NULL, B, IC, OC);
    tsr_dense_forward_ref(y2, x, w, NULL, B, IC, OC);
    assert_close("dense forward no bias", y, y2, B * OC, 1e-5);
    tsr_dense_backward(NULL, dw, NULL, r, x, w, B, IC, OC);
    free(x), free(w), free(b), free(r), free(y), free(y2), free(dx), free(dw), free(db);
    free(dx2), free(dw2), free(db2);
}

/* ---- convolution ----------------------------------------------------------- */

static void conv_fwd(fd_ctx *c) {
    tsr_conv2d_forward_ref(c->out, c->in[0], c->in[1], c->in[2], c->ints[0], c->user);
}

static void test_conv(void **state) {
    (void)state;
    tsr_prng g;
    tt_prng(&g, 102);
    /* C, H, W, OC, KH, KW, SH, SW, PH, PW */
    const int geoms[][10] = {
        { 1, 8, 8, 3, 3, 3, 1, 1, 1, 1 },   { 2, 7, 9, 4, 5, 5, 2, 2, 1, 1 },
        { 3, 6, 6, 2, 1, 1, 2, 2, 0, 0 },   { 2, 9, 7, 3, 3, 2, 1, 2, 2, 1 },
        { 1, 28, 28, 5, 5, 5, 2, 2, 1, 1 }, { 3, 7, 6, 2, 5, 5, 1, 1, 2, 2 },
        { 2, 5, 9, 3, 3, 5, 1, 1, 1, 2 },   { 1, 3, 4, 2, 1, 3, 1, 1, 0, 1 },
    };
    for (size_t gi = 0; gi < sizeof geoms / sizeof geoms[0]; gi++) {
        const int *q = geoms[gi];
        tsr_conv_geom gm = { .C = q[0],
                             .H = q[1],
                             .W = q[2],
                             .OC = q[3],
                             .KH = q[4],
                             .KW = q[5],
                             .SH = q[6],
                             .SW = q[7],
                             .PH = q[8],
                             .PW = q[9] };
        assert_int_equal(tsr_conv_geom_finish(&gm), 0);
        const int B = 3;
        size_t nx = (size_t)B * gm.C * gm.H * gm.W, nw = (size_t)gm.OC * gm.C * gm.KH * gm.KW;
        size_t ny = (size_t)B * gm.OC * gm.OH * gm.OW;
        float *x = randv(&g, nx, 1), *w = randv(&g, nw, 1), *b = randv(&g, gm.OC, 1);
        float *r = randv(&g, ny, 1), *y = zerov(ny), *y2 = zerov(ny);
        float *scr = zerov(tsr_conv2d_scratch_floats(&gm, B));
        tsr_conv2d_forward(y, scr, x, w, b, B, &gm);
        tsr_conv2d_forward_ref(y2, x, w, b, B, &gm);
        assert_close("conv forward fast vs ref", y, y2, ny, 1e-5);
        float *dx = zerov(nx), *dw = zerov(nw), *db = zerov(gm.OC);
        float *dx2 = zerov(nx), *dw2 = zerov(nw), *db2 = zerov(gm.OC);
        tsr_conv2d_backward(dx, dw, db, scr, r, x, w, B, &gm);
        tsr_conv2d_backward_ref(dx2, dw2, db2, r, x, w, B, &gm);
        assert_close("conv dinp fast vs ref", dx, dx2, nx, 1e-5);
        assert_close("conv dw fast vs ref", dw, dw2, nw, 1e-5);
        assert_close("conv db fast vs ref", db, db2, gm.OC, 1e-5);
        if (gi != 4) { /* finite differences (the 28x28 case is covered by the comparison) */
            fd_ctx c = { .in = { x, w, b },
                         .n_in = { nx, nw, (size_t)gm.OC },
                         .out = y2,
                         .n_out = ny,
                         .r = r,
                         .fwd = conv_fwd,
                         .user = &gm,
                         .ints = { B } };
            fd_check("conv", &c, 0, dx, 1e-2f, 2e-3);
            fd_check("conv", &c, 1, dw, 1e-2f, 2e-3);
            fd_check("conv", &c, 2, db, 1e-2f, 2e-3);
        }
        free(x), free(w), free(b), free(r), free(y), free(y2), free(scr);
        free(dx), free(dw), free(db), free(dx2), free(dw2), free(db2);
    }
    tsr_conv_geom bad = { .C = 1, .H = 4, .W = 4, .OC = 1, .KH = 7, .KW = 7, .SH = 1, .SW = 1 };
    assert_int_equal(tsr_conv_geom_finish(&bad), -1);
    bad.KH = bad.KW = 3;
    bad.PH = 3;
    assert_int_equal(tsr_conv_geom_finish(&bad), -1);
}

/* ---- pooling ----------------------------------------------------------------- */

static void avgpool_fwd(fd_ctx *c) {
    tsr_avgpool_forward(c->out, c->in[0], c->ints[0], c->user);
}

static void maxpool_fwd(fd_ctx *c) {
    int32_t idx[4096];
    tsr_maxpool_forward(c->out, idx, c->in[0], c->ints[0], c->user);
}

static void gap_fwd(fd_ctx *c) {
    tsr_gap_forward(c->out, c->in[0], c->ints[0], c->ints[1], c->ints[2]);
}

static void test_pooling(void **state) {
    (void)state;
    tsr_prng g;
    tt_prng(&g, 103);
    const int geoms[][6] = { { 2, 2, 2, 2, 0, 0 }, { 3, 3, 2, 2, 1, 1 }, { 3, 2, 1, 2, 1, 0 } };
    for (size_t gi = 0; gi < 3; gi++) {
        const int *q = geoms[gi];
        tsr_conv_geom gm = { .C = 2,
                             .H = 7,
                             .W = 6,
                             .OC = 2,
                             .KH = q[0],
                             .KW = q[1],
                             .SH = q[2],
                             .SW = q[3],
                             .PH = q[4],
                             .PW = q[5] };
        assert_int_equal(tsr_conv_geom_finish(&gm), 0);
        const int B = 2;
        size_t nx = (size_t)B * 2 * 7 * 6, ny = (size_t)B * 2 * gm.OH * gm.OW;
        float *x = randv(&g, nx, 1), *r = randv(&g, ny, 1), *y = zerov(ny), *dx = zerov(nx);
        /* distinct values so max pooling has no ties within h */
        for (size_t i = 0; i < nx; i++) x[i] += 0.05f * (float)(i % 17);
        fd_ctx c = { .in = { x },
                     .n_in = { nx },
                     .out = y,
                     .n_out = ny,
                     .r = r,
                     .fwd = avgpool_fwd,
                     .user = &gm,
                     .ints = { B } };
        tsr_avgpool_forward(y, x, B, &gm);
        tsr_avgpool_backward(dx, r, B, &gm);
        fd_check("avgpool", &c, 0, dx, 1e-2f, 1e-3);
        /* avg pooling of a constant is the constant (count_include_pad = 0) */
        float *ones = zerov(nx);
        for (size_t i = 0; i < nx; i++) ones[i] = 3.0f;
        tsr_avgpool_forward(y, ones, B, &gm);
        for (size_t i = 0; i < ny; i++) assert_float_equal(y[i], 3.0f, 1e-6);
        free(ones);
        int32_t *idx = calloc(ny, sizeof *idx);
        memset(dx, 0, nx * sizeof *dx);
        tsr_maxpool_forward(y, idx, x, B, &gm);
        tsr_maxpool_backward(dx, r, idx, B, &gm);
        c.fwd = maxpool_fwd;
        fd_check("maxpool", &c, 0, dx, 1e-3f, 1e-3);
        free(idx), free(x), free(r), free(y), free(dx);
    }
    const int B = 3, C = 4, HW = 10;
    float *x = randv(&g, B * C * HW, 1), *r = randv(&g, B * C, 1), *y = zerov(B * C);
    float *dx = zerov(B * C * HW);
    tsr_gap_backward(dx, r, B, C, HW);
    fd_ctx c = { .in = { x },
                 .n_in = { B * C * HW },
                 .out = y,
                 .n_out = B * C,
                 .r = r,
                 .fwd = gap_fwd,
                 .ints = { B, C, HW } };
    fd_check("gap", &c, 0, dx, 1e-2f, 1e-3);
    free(x), free(r), free(y), free(dx);
}

/* ---- batch norm ---------------------------------------------------------------- */

static void bn_fwd(fd_ctx *c) {
    float mean[16], rstd[16];
    tsr_batchnorm_forward(c->out, mean, rstd, c->in[0], c->in[1], c->in[2], 1e-5f, c->ints[0],
                          c->ints[1], c->ints[2]);
}

static void test_batchnorm(void **state) {
    (void)state;
    tsr_prng g;
    tt_prng(&g, 104);
    const int B = 4, C = 3, HW = 5;
    const size_t n = (size_t)B * C * HW;
    float *x = randv(&g, n, 2), *gm = randv(&g, C, 1), *bt = randv(&g, C, 1);
    for (size_t i = 0; i < n; i++) x[i] += 3.0f; /* a mean offset exercises the shift */
    float *r = randv(&g, n, 1), *y = zerov(n), *dx = zerov(n), *dg = zerov(C), *db = zerov(C);
    for (size_t i = 0; i < n; i++) r[i] += 0.5f * (x[i] - 3.0f); /* correlated: Σ dy·x̂ ≠ 0 */
    float mean[3], rstd[3];
    tsr_batchnorm_forward(y, mean, rstd, x, gm, bt, 1e-5f, B, C, HW);
    /* normalised output has per-channel mean beta and std |gamma| */
    for (int c = 0; c < C; c++) {
        double s = 0, s2 = 0;
        for (int b = 0; b < B; b++)
            for (int p = 0; p < HW; p++) {
                double v = y[((size_t)b * C + c) * HW + p];
                s += v;
                s2 += v * v;
            }
        double mu = s / (B * HW), var = s2 / (B * HW) - mu * mu;
        assert_float_equal(mu, bt[c], 1e-4);
        assert_float_equal(sqrt(var), fabs(gm[c]), 1e-3);
    }
    tsr_batchnorm_backward(dx, dg, db, r, x, mean, rstd, gm, B, C, HW);
    fd_ctx c = { .in = { x, gm, bt },
                 .n_in = { n, (size_t)C, (size_t)C },
                 .out = y,
                 .n_out = n,
                 .r = r,
                 .fwd = bn_fwd,
                 .ints = { B, C, HW } };
    fd_check("batchnorm", &c, 0, dx, 1e-2f, 5e-4);
    fd_check("batchnorm", &c, 1, dg, 1e-2f, 5e-4);
    fd_check("batchnorm", &c, 2, db, 1e-2f, 5e-4);
    /* shifted sums give the same statistics as unshifted ones */
    double s1[3] = { 0 }, q1[3] = { 0 }, s2[3] = { 0 }, q2[3] = { 0 };
    tsr_batchnorm_sums(s1, q1, x, NULL, B, C, HW);
    tsr_batchnorm_sums(s2, q2, x, mean, B, C, HW);
    for (int k = 0; k < C; k++) {
        double N = B * HW;
        double v1 = q1[k] / N - (s1[k] / N) * (s1[k] / N);
        double v2 = q2[k] / N - (s2[k] / N) * (s2[k] / N);
        assert_float_equal(s1[k] / N, mean[k] + s2[k] / N, 1e-4);
        assert_float_equal(v1, v2, 1e-3);
    }
    free(x), free(gm), free(bt), free(r), free(y), free(dx), free(dg), free(db);
}

/* ---- activations ---------------------------------------------------------------- */

static void relu_fwd(fd_ctx *c) {
    tsr_relu_forward(c->out, c->in[0], c->n_out);
}
static void gelu_fwd(fd_ctx *c) {
    tsr_gelu_forward(c->out, c->in[0], c->n_out);
}
static void poly_fwd(fd_ctx *c) {
    tsr_poly_forward(c->out, c->in[0], c->in[1], c->ints[0], c->ints[1], c->ints[2], c->ints[3],
                     c->ints[4]);
}
static void range_fwd(fd_ctx *c) {
    /* out[0] = penalty; projection r = (1) */
    c->out[0] = (float)tsr_range_penalty_forward(c->in[0], c->n_in[0], c->f);
}
static void dropout_fwd(fd_ctx *c) {
    tsr_dropout_forward(c->out, c->in[0], c->user, 0.25f, c->n_out);
}
static void add_fwd(fd_ctx *c) {
    tsr_add_forward(c->out, c->in[0], c->in[1], c->n_out);
}

static void test_activations(void **state) {
    (void)state;
    tsr_prng g;
    tt_prng(&g, 105);
    const size_t n = 60;
    float *x = randv(&g, n, 2), *r = randv(&g, n, 1), *y = zerov(n), *dx = zerov(n);
    away_from_zero(x, n, 0.05f);
    fd_ctx c = { .in = { x }, .n_in = { n }, .out = y, .n_out = n, .r = r, .fwd = relu_fwd };
    tsr_relu_backward(dx, r, x, n);
    fd_check("relu", &c, 0, dx, 1e-2f, 1e-3);
    memset(dx, 0, n * sizeof *dx);
    tsr_gelu_backward(dx, r, x, n);
    c.fwd = gelu_fwd;
    fd_check("gelu", &c, 0, dx, 1e-2f, 2e-3);
    tsr_gelu_forward(y, x, n);
    for (size_t i = 0; i < n; i++)
        assert_float_equal(y[i], 0.5 * x[i] * (1 + erf(x[i] / sqrt(2.0))), 1e-5);

    /* polynomial: degrees 1..4, per layer and per channel */
    const int B = 2, C = 3, HW = 10;
    for (int D = 1; D <= 4; D++)
        for (int pc = 0; pc <= 1; pc++) {
            int NC = pc ? C : 1;
            float *coef = randv(&g, (size_t)NC * (D + 1), 1), *dcoef = zerov((size_t)NC * (D + 1));
            memset(dx, 0, n * sizeof *dx);
            tsr_poly_forward(y, x, coef, B, C, HW, D, NC);
            for (int b = 0; b < B; b++) /* against direct evaluation */
                for (int ch = 0; ch < C; ch++)
                    for (int p = 0; p < HW; p++) {
                        size_t i = ((size_t)b * C + ch) * HW + p;
                        const float *a = coef + (size_t)(NC == 1 ? 0 : ch) * (D + 1);
                        double v = 0;
                        for (int k = 0; k <= D; k++) v += a[k] * pow(x[i], k);
                        assert_float_equal(y[i], v, 1e-4 * (1 + fabs(v)));
                    }
            tsr_poly_backward(dx, dcoef, r, x, coef, B, C, HW, D, NC);
            fd_ctx pcx = { .in = { x, coef },
                           .n_in = { n, (size_t)NC * (D + 1) },
                           .out = y,
                           .n_out = n,
                           .r = r,
                           .fwd = poly_fwd,
                           .ints = { B, C, HW, D, NC } };
            fd_check("poly", &pcx, 0, dx, 1e-2f, 3e-3);
            fd_check("poly", &pcx, 1, dcoef, 1e-2f, 3e-3);
            free(coef), free(dcoef);
        }

    /* range penalty relu(|x| - B)² */
    float one = 1, pen;
    memset(dx, 0, n * sizeof *dx);
    for (size_t i = 0; i < n; i++) /* keep |x| away from the bound's kink */
        if (fabsf(fabsf(x[i]) - 1.0f) < 0.05f) x[i] *= 1.2f;
    tsr_range_penalty_backward(dx, x, n, 1.0f, 1.0f);
    fd_ctx rc = {
        .in = { x }, .n_in = { n }, .out = &pen, .n_out = 1, .r = &one, .fwd = range_fwd, .f = 1.0f
    };
    fd_check("range penalty", &rc, 0, dx, 1e-2f, 2e-3);
    double want = 0;
    for (size_t i = 0; i < n; i++) {
        double e = fabs(x[i]) - 1.0;
        if (e > 0) want += e * e;
    }
    assert_float_equal(tsr_range_penalty_forward(x, n, 1.0f), want, 1e-6 * (1 + want));
    assert_float_equal(tsr_absmax(x, n), 0, 100); /* finite */
    float mx = 0;
    for (size_t i = 0; i < n; i++) mx = fabsf(x[i]) > mx ? fabsf(x[i]) : mx;
    assert_true(tsr_absmax(x, n) == mx);

    /* dropout with a fixed mask, add */
    uint8_t mask[60];
    for (size_t i = 0; i < n; i++) mask[i] = (uint8_t)(tsr_prng_uniform(&g, 4) != 0);
    memset(dx, 0, n * sizeof *dx);
    tsr_dropout_backward(dx, r, mask, 0.25f, n);
    fd_ctx dc = {
        .in = { x }, .n_in = { n }, .out = y, .n_out = n, .r = r, .fwd = dropout_fwd, .user = mask
    };
    fd_check("dropout", &dc, 0, dx, 1e-2f, 1e-3);
    float *x2 = randv(&g, n, 1), *dx2 = zerov(n);
    memset(dx, 0, n * sizeof *dx);
    tsr_add_backward(dx, dx2, r, n);
    fd_ctx ac = { .in = { x, x2 }, .n_in = { n, n }, .out = y, .n_out = n, .r = r, .fwd = add_fwd };
    fd_check("add", &ac, 0, dx, 1e-2f, 1e-3);
    fd_check("add", &ac, 1, dx2, 1e-2f, 1e-3);
    free(x), free(r), free(y), free(dx), free(x2), free(dx2);
}

/* ---- losses ----------------------------------------------------------------- */

static void test_losses(void **state) {
    (void)state;
    tsr_prng g;
    tt_prng(&g, 106);
    const int B = 4, K = 5;
    float *s = randv(&g, B * K, 3), *t = randv(&g, B * K, 3), *d = zerov(B * K);
    int32_t y[4] = { 0, 3, 4, 1 };
    /* CE against a direct formula */
    double ce = tsr_loss_softmax_ce(d, s, y, B, K), want = 0;
    for (int b = 0; b < B; b++) {
        double z = 0;
        for (int k = 0; k < K; k++) z += exp(s[b * K + k]);
        want += -(s[b * K + y[b]] - log(z));
    }
    assert_float_equal(ce, want / B, 1e-9);
    /* gradients by finite differences (double loss, float logits) */
    for (int which = 0; which < 3; which++) {
        float *dd = zerov(B * K);
        float T = 4.0f, alpha = 0.7f;
        if (which == 0) tsr_loss_softmax_ce(dd, s, y, B, K);
        if (which == 1) tsr_loss_distill(dd, s, t, y, B, K, T, alpha);
        if (which == 2) tsr_loss_mse(dd, s, t, B, K);
        for (int i = 0; i < B * K; i++) {
            float keep = s[i], h = 1e-2f;
            double lp, lm;
            s[i] = keep + h;
            lp = which == 0   ? tsr_loss_softmax_ce(NULL, s, y, B, K)
                 : which == 1 ? tsr_loss_distill(NULL, s, t, y, B, K, T, alpha)
                              : tsr_loss_mse(NULL, s, t, B, K);
            s[i] = keep - h;
            lm = which == 0   ? tsr_loss_softmax_ce(NULL, s, y, B, K)
                 : which == 1 ? tsr_loss_distill(NULL, s, t, y, B, K, T, alpha)
                              : tsr_loss_mse(NULL, s, t, B, K);
            s[i] = keep;
            double num = (lp - lm) / (2 * h);
            if (fabs(num - dd[i]) > 1e-3 * (1 + fabs(num)))
                fail_msg("loss %d gradient %d: analytic %g numeric %g", which, i, (double)dd[i],
                         num);
        }
        free(dd);
    }
    /* distillation with alpha = 0 is CE; KD term vanishes when teacher == student */
    assert_float_equal(tsr_loss_distill(NULL, s, t, y, B, K, 4, 0), ce, 1e-9);
    assert_float_equal(tsr_loss_distill(NULL, s, s, y, B, K, 4, 1), 0, 1e-9);
    /* KD alone: α T² KL by a direct formula */
    double kl = 0;
    for (int b = 0; b < B; b++) {
        double zs = 0, zt = 0;
        for (int k = 0; k < K; k++) zs += exp(s[b * K + k] / 2.0), zt += exp(t[b * K + k] / 2.0);
        for (int k = 0; k < K; k++) {
            double pt = exp(t[b * K + k] / 2.0) / zt, ps = exp(s[b * K + k] / 2.0) / zs;
            kl += pt * log(pt / ps);
        }
    }
    assert_float_equal(tsr_loss_distill(NULL, s, t, y, B, K, 2, 1), 4 * kl / B, 1e-7);
    /* accuracy count */
    float lg[6] = { 0, 1, 0, 5, 2, 1 };
    int32_t yy[2] = { 1, 1 };
    assert_int_equal(tsr_count_correct(lg, yy, 2, 3), 1);
    free(s), free(t), free(d);
}

/* ---- polynomial fits ---------------------------------------------------------- */

static void test_poly_fit(void **state) {
    (void)state;
    double c[TSR_POLY_MAX_DEGREE + 1];
    for (double B = 1; B <= 8; B *= 2) {
        /* degree-2 least squares of ReLU on [-B, B]: 3B/32 + x/2 + 15 x²/(32 B) */
        tt_ok(tsr_poly_fit_fn(c, 2, B, TSR_POLY_FIT_LSQ, NULL));
        assert_float_equal(c[0], 3 * B / 32, 1e-9);
        assert_float_equal(c[1], 0.5, 1e-9);
        assert_float_equal(c[2], 15 / (32 * B), 1e-9);
        /* degree-2 Chebyshev truncation: B/(3π) + x/2 + 4x²/(3πB) */
        tt_ok(tsr_poly_fit_fn(c, 2, B, TSR_POLY_FIT_CHEB, NULL));
        assert_float_equal(c[0], B / (3 * M_PI), 1e-6);
        assert_float_equal(c[1], 0.5, 1e-6);
        assert_float_equal(c[2], 4 / (3 * M_PI * B), 1e-6);
    }
    /* higher degrees reduce the L2 error of the ReLU fit; a polynomial is fitted exactly */
    double prev = INFINITY;
    for (int d = 2; d <= 8; d += 2) {
        tt_ok(tsr_poly_fit_fn(c, d, 3.0, TSR_POLY_FIT_LSQ, NULL));
        double err = 0;
        for (int i = 0; i <= 600; i++) {
            double x = -3 + i * 0.01, e = tsr_poly_eval(c, d, x) - (x > 0 ? x : 0);
            err += e * e;
        }
        assert_true(err < prev);
        prev = err;
    }
    tt_ok(tsr_poly_fit_fn(c, 3, 2.0, TSR_POLY_FIT_CHEB, NULL));
    double cubic[4];
    memcpy(cubic, c, sizeof cubic);
    (void)cubic;
    tt_fails(tsr_poly_fit_fn(c, 0, 1, TSR_POLY_FIT_LSQ, NULL), TSR_ERR_INVALID_ARG);
    tt_fails(tsr_poly_fit_fn(c, 9, 1, TSR_POLY_FIT_LSQ, NULL), TSR_ERR_INVALID_ARG);
    tt_fails(tsr_poly_fit_fn(c, 2, 0, TSR_POLY_FIT_LSQ, NULL), TSR_ERR_INVALID_ARG);
    tt_fails(tsr_poly_fit_fn(c, 2, NAN, TSR_POLY_FIT_LSQ, NULL), TSR_ERR_INVALID_ARG);
    tsr_poly_fit m;
    tt_ok(tsr_poly_fit_parse("cheb", &m));
    assert_int_equal(m, TSR_POLY_FIT_CHEB);
    tt_fails(tsr_poly_fit_parse("spline", &m), TSR_ERR_INVALID_ARG);
}

static double cube(double x) {
    return x * x * x - 2 * x + 0.5;
}

static void test_poly_fit_exact(void **state) {
    (void)state;
    double c[TSR_POLY_MAX_DEGREE + 1];
    for (int method = 0; method <= 1; method++) {
        tt_ok(tsr_poly_fit_fn(c, 3, 2.5, (tsr_poly_fit)method, cube));
        assert_float_equal(c[0], 0.5, 1e-9);
        assert_float_equal(c[1], -2, 1e-9);
        assert_float_equal(c[2], 0, 1e-9);
        assert_float_equal(c[3], 1, 1e-9);
    }
}

/* ---- optimizers ------------------------------------------------------------------ */

static void test_optim(void **state) {
    (void)state;
    /* Adam, two steps on one parameter, against the formulas written out */
    tsr_optim *o;
    tt_ok(tsr_optim_create(&o, TSR_OPT_ADAM, 1));
    float p = 1.0f, g1 = 0.5f, g2 = -0.25f, lr = 0.1f;
    tsr_optim_step(o, &p, &g1, lr);
    double m = 0.1 * 0.5, v = 0.001 * 0.25, want = 1.0 - lr * (m / 0.1) / (sqrt(v / 0.001) + 1e-8);
    assert_float_equal(p, want, 1e-6);
    tsr_optim_step(o, &p, &g2, lr);
    m = 0.9 * m + 0.1 * -0.25;
    v = 0.999 * v + 0.001 * 0.0625;
    want -= lr * (m / (1 - 0.81)) / (sqrt(v / (1 - 0.999 * 0.999)) + 1e-8);
    assert_float_equal(p, want, 1e-6);
    tsr_optim_free(o);
    /* the vectorised Adam loop is bit-identical to the formula, with and without L2 and mask */
    for (int variant = 0; variant < 3; variant++) {
        enum { N = 11 };
        tsr_prng g;
        tt_prng(&g, 107);
        float pv[N], gv[N], ref[N], m1[N] = { 0 }, v1[N] = { 0 };
        uint8_t mk[N];
        for (int i = 0; i < N; i++) {
            pv[i] = ref[i] = (float)tsr_prng_normal(&g);
            gv[i] = (float)tsr_prng_normal(&g);
            mk[i] = (uint8_t)(i % 3 != 0);
        }
        tt_ok(tsr_optim_create(&o, TSR_OPT_ADAM, N));
        o->weight_decay = variant ? 0.1f : 0.0f;
        o->decay_mask = variant == 2 ? mk : NULL;
        for (int step = 1; step <= 3; step++) {
            tsr_optim_step(o, pv, gv, 0.01f);
            float bc1 = (float)(1.0 - pow(0.9f, step)), bc2 = (float)(1.0 - pow(0.999f, step));
            float st = 0.01f / bc1, r = 1.0f / sqrtf(bc2);
            for (int i = 0; i < N; i++) {
                float d = (variant == 0 || (variant == 2 && !mk[i])) ? 0.0f : 0.1f;
                float gg = gv[i] + d * ref[i];
                m1[i] = 0.9f * m1[i] + (1 - 0.9f) * gg;
                v1[i] = 0.999f * v1[i] + (1 - 0.999f) * gg * gg;
                ref[i] -= st * m1[i] / (sqrtf(v1[i]) * r + 1e-8f);
            }
        }
        assert_memory_equal(pv, ref, sizeof pv);
        tsr_optim_free(o);
    }
    /* AdamW decay is decoupled and respects the mask */
    tt_ok(tsr_optim_create(&o, TSR_OPT_ADAMW, 2));
    o->weight_decay = 0.5f;
    uint8_t mask[2] = { 1, 0 };
    o->decay_mask = mask;
    float ps[2] = { 2, 2 }, gz[2] = { 0, 0 };
    tsr_optim_step(o, ps, gz, 0.1f);
    assert_float_equal(ps[0], 2 * (1 - 0.05), 1e-6);
    assert_float_equal(ps[1], 2, 0);
    tsr_optim_free(o);
    /* SGD momentum: buf = g, then mu buf + g */
    tt_ok(tsr_optim_create(&o, TSR_OPT_SGD, 1));
    p = 0;
    float g = 1;
    tsr_optim_step(o, &p, &g, 0.1f);
    assert_float_equal(p, -0.1, 1e-7);
    tsr_optim_step(o, &p, &g, 0.1f);
    assert_float_equal(p, -0.1 - 0.1 * 1.9, 1e-6);
    tsr_optim_reset(o);
    assert_int_equal(o->step, 0);
    tsr_optim_free(o);
    tsr_optim_free(NULL);
    /* a quadratic is minimised by every optimizer */
    for (int k = 0; k <= 2; k++) {
        tt_ok(tsr_optim_create(&o, (tsr_optim_kind)k, 3));
        float x[3] = { 3, -2, 1 }, gr[3];
        for (int it = 0; it < 500; it++) {
            for (int i = 0; i < 3; i++) gr[i] = 2 * (x[i] - (float)i);
            tsr_optim_step(o, x, gr, k == 0 ? 0.02f : 0.05f);
        }
        for (int i = 0; i < 3; i++) assert_float_equal(x[i], i, 2e-2);
        tsr_optim_free(o);
    }
    /* clipping */
    float gv[2] = { 3, 4 };
    assert_float_equal(tsr_clip_grad_norm(gv, 2, 1.0), 5.0, 1e-9);
    assert_float_equal(sqrt(gv[0] * gv[0] + gv[1] * gv[1]), 1.0, 1e-5);
    assert_float_equal(tsr_clip_grad_norm(gv, 2, 0), 1.0, 1e-5);
    /* schedules */
    tsr_schedule s = { .kind = TSR_SCHED_COSINE, .lr = 1, .total_epochs = 10 };
    assert_float_equal(tsr_sched_lr(&s, 0), 1, 1e-6);
    assert_float_equal(tsr_sched_lr(&s, 5), 0.5, 1e-6);
    assert_float_equal(tsr_sched_lr(&s, 10), 0, 1e-6);
    s.warmup_epochs = 1;
    assert_float_equal(tsr_sched_lr(&s, 0), 0.01, 1e-6);
    assert_float_equal(tsr_sched_lr(&s, 1), 1, 1e-6);
    tsr_schedule st = { .kind = TSR_SCHED_STEP, .lr = 1, .gamma = 0.1f, .step_epochs = 3 };
    assert_float_equal(tsr_sched_lr(&st, 2.9), 1, 1e-6);
    assert_float_equal(tsr_sched_lr(&st, 3), 0.1, 1e-6);
    assert_float_equal(tsr_sched_lr(&st, 6.5), 0.01, 1e-6);
    tsr_optim_kind ok;
    tt_fails(tsr_optim_parse("lion", &ok), TSR_ERR_INVALID_ARG);
    tt_ok(tsr_optim_parse("adamw", &ok));
    assert_int_equal(ok, TSR_OPT_ADAMW);
    tsr_sched_kind sk;
    tt_fails(tsr_sched_parse("linear", &sk), TSR_ERR_INVALID_ARG);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_dense),       cmocka_unit_test(test_conv),
        cmocka_unit_test(test_pooling),     cmocka_unit_test(test_batchnorm),
        cmocka_unit_test(test_activations), cmocka_unit_test(test_losses),
        cmocka_unit_test(test_poly_fit),    cmocka_unit_test(test_poly_fit_exact),
        cmocka_unit_test(test_optim),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
