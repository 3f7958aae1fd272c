/*
 * tests/test_tile_conv.c - 2D convolution over image-packed tile tensors on
 * the mockup: layouts I and II, strides, padding, depthwise (pooling),
 * bias, garbage in the image's padding, chained layers without repacking,
 * random geometries against a dense reference, counts and errors.
 */
#include "tile_check.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define TOL 1e-9

static int next_index(const tsr_tile_shape *s, int64_t *c) {
    for (int i = s->ndims - 1; i >= 0; i--) {
        if (++c[i] < s->dim[i].size) return 1;
        c[i] = 0;
    }
    return 0;
}

/* Dense reference of tsr_tile_conv_apply. */
static double *conv_ref(const tsr_tile_shape *is, const double *img, const tsr_tile_shape *os,
                        const tsr_tile_conv_params *p, const double *w, int FX, int FY,
                        const double *bias) {
    int64_t n = tsr_tile_shape_num_elements(os);
    double *out = calloc((size_t)n, sizeof *out);
    int C = p->c_dim >= 0 ? (int)is->dim[p->c_dim].size : 1;
    int64_t co[TSR_TILE_MAX_DIMS] = { 0 }, e = 0;
    do {
        int64_t f = p->f_dim >= 0 ? co[p->f_dim] : 0;
        int c0 = 0, c1 = C;
        if (p->depthwise) {
            c0 = (int)co[p->c_dim];
            c1 = c0 + 1;
        }
        double s = bias ? bias[p->depthwise ? c0 : f] : 0;
        for (int c = c0; c < c1; c++)
            for (int dx = 0; dx < FX; dx++)
                for (int dy = 0; dy < FY; dy++) {
                    int64_t xi = p->stride_x * co[p->x_dim] + dx - p->pad_x;
                    int64_t yi = p->stride_y * co[p->y_dim] + dy - p->pad_y;
                    if (xi < 0 || yi < 0 || xi >= is->dim[p->x_dim].size ||
                        yi >= is->dim[p->y_dim].size)
                        continue;
                    int64_t ci[TSR_TILE_MAX_DIMS];
                    memcpy(ci, co, sizeof ci);
                    if (p->f_dim >= 0) ci[p->f_dim] = 0;
                    if (p->c_dim >= 0) ci[p->c_dim] = c;
                    ci[p->x_dim] = xi;
                    ci[p->y_dim] = yi;
                    double wv = p->depthwise ? w[(c * FX + dx) * FY + dy]
                                             : w[((f * C + c) * FX + dx) * FY + dy];
                    s += wv * img[tc_offset(is, ci)];
                }
        out[e++] = s;
    } while (next_index(os, co));
    return out;
}

static tsr_tile_conv_params geom(int x, int y, int c, int f, int stride, int pad) {
    tsr_tile_conv_params p = { .x_dim = x,
                               .y_dim = y,
                               .c_dim = c,
                               .f_dim = f,
                               .stride_x = stride,
                               .stride_y = stride,
                               .pad_x = pad,
                               .pad_y = pad };
    return p;
}

/* Run one convolution on random data and compare; returns the output. */
static tsr_tile *check_conv(tsr_backend *be, tsr_prng *g, const tsr_tile *img, const double *dense,
                            const tsr_tile_conv_params *p, int F, int FX, int FY, int with_bias,
                            double **ref_out) {
    const tsr_tile_shape *is = tsr_tile_get_shape(img);
    int C = p->c_dim >= 0 ? (int)is->dim[p->c_dim].size : 1;
    size_t nw = (size_t)(p->depthwise ? C : F * C) * (size_t)(FX * FY);
    double *w = calloc(nw, sizeof *w), bias[64];
    tc_random_dense(g, w, nw, -1, 1);
    tc_random_dense(g, bias, 64, -1, 1);
    tsr_tile_conv *cv;
    tt_ok(tsr_tile_conv_create(be, is, p, w, F, FX, FY, with_bias ? bias : NULL,
                               tsr_tile_level(img), tsr_tile_scale(img), &cv));
    tsr_tile *out;
    tt_ok(tsr_tile_conv_apply(cv, img, &out));
    assert_int_equal(tsr_tile_level(out), tsr_tile_level(img) - 1);
    double *ref =
        conv_ref(is, dense, tsr_tile_get_shape(out), p, w, FX, FY, with_bias ? bias : NULL);
    tc_check(out, ref, TOL);
    tsr_tile_shape fs;
    tsr_tile_conv_filter_shape(cv, &fs);
    assert_int_equal(fs.dim[0].size, FX);
    assert_int_equal(fs.dim[1].size, FY);
    tsr_tile_conv_free(cv);
    free(w);
    if (ref_out)
        *ref_out = ref;
    else
        free(ref);
    return out;
}

static tsr_tile *encrypt_img(tsr_backend *be, const char *shape, tsr_prng *g, double **dense) {
    tsr_tile_shape s;
    tc_shape(shape, tsr_backend_slots(be), &s);
    int64_t n = tsr_tile_shape_num_elements(&s);
    *dense = calloc((size_t)n, sizeof **dense);
    tc_random_dense(g, *dense, (size_t)n, -1, 1);
    tsr_tile *t;
    tt_ok(tsr_tile_encrypt(be, &s, *dense, -1, 0, &t));
    return t;
}

static void expect_shape(const tsr_tile *t, const char *want) {
    char buf[256];
    tsr_tile_shape_format(tsr_tile_get_shape(t), buf, sizeof buf);
    if (strcmp(buf, want) != 0) fail_msg("shape %s, want %s", buf, want);
}

static void test_layouts(void **state) {
    (void)state;
    tsr_prng g;
    tt_prng(&g, 30);
    tsr_backend *be = tc_mockup_collecting(256, 3, 1);
    double *x;
    /* Layout I: [*\/t0, X~/t1, Y~/t2, C/t3, B/t4], 3x3, stride 1, pad 1. */
    tsr_tile *img = encrypt_img(be, "[*/4, 7~/4, 6~/4, 3/2, 2/2]", &g, &x);
    tsr_tile_conv_params p = geom(1, 2, 3, 0, 1, 1);
    tsr_backend_reset_counts(be);
    tsr_tile *out = check_conv(be, &g, img, x, &p, 3, 3, 3, 1, NULL);
    expect_shape(out, "[3/4, 7~/4, 6~/4, 1?/2, 2/2]");
    tsr_backend_counts c;
    tsr_backend_get_counts(be, &c);
    /* One hoisted group per image tile; few rotations (neighbour tiles do most shifts). */
    assert_true(c.rotations > 0 && c.rotations <= 4 * 3 * 3 * 2);
    assert_int_equal(tsr_backend_depth_used(be), 1);
    tsr_tile_free(out);
    tsr_tile_free(img);
    free(x);
    /* Layout II: [C/t0, X~/t1, Y~/t2, *\/t3, B/t4], stride 2, pad 1. */
    img = encrypt_img(be, "[3/4, 8~/2, 8~/2, */4, 2/4]", &g, &x);
    p = geom(1, 2, 0, 3, 2, 1);
    out = check_conv(be, &g, img, x, &p, 3, 3, 3, 1, NULL);
    expect_shape(out, "[*/4, 4~/2, 4~/2, 3/4, 2/4]");
    tsr_tile_free(out);
    tsr_tile_free(img);
    free(x);
    /* Depthwise 2x2 stride 2 (average pooling), no bias. */
    img = encrypt_img(be, "[3/4, 8~/4, 8~/4, 2/4]", &g, &x);
    p = geom(1, 2, 0, -1, 2, 0);
    p.depthwise = 1;
    out = check_conv(be, &g, img, x, &p, 3, 2, 2, 0, NULL);
    expect_shape(out, "[3/4, 4~/4, 4~/4, 2/4]");
    tsr_tile_free(out);
    tsr_tile_free(img);
    free(x);
    /* One channel, no channel dimension; single-tile (non-interleaved) image. */
    img = encrypt_img(be, "[*/4, 5/8, 6/8]", &g, &x);
    p = geom(1, 2, -1, 0, 1, 0);
    out = check_conv(be, &g, img, x, &p, 4, 2, 3, 1, NULL);
    expect_shape(out, "[4/4, 4/8, 4/8]");
    tsr_tile_free(out);
    tsr_tile_free(img);
    free(x);
    tsr_backend_free(be);
}

/* Garbage in every padding slot of the image does not leak into the output. */
static void test_garbage_padding(void **state) {
    (void)state;
    tsr_prng g;
    tt_prng(&g, 31);
    tsr_backend *be = tc_mockup_collecting(256, 3, 1);
    double *x;
    tsr_tile *img = encrypt_img(be, "[*/4, 7~/4, 6~/4, 3/4, 1/1]", &g, &x);
    tsr_tile_shape ds;
    tc_shape("[*/4, */4, */4, */4, */1]", 256, &ds);
    double five = 5;
    tsr_tile *d, *dirty;
    tt_ok(tsr_tile_encrypt(be, &ds, &five, -1, 0, &d));
    tt_ok(tsr_tile_add(img, d, &dirty));
    expect_shape(dirty, "[*/4, 7~?/4, 6~?/4, 3?/4, 1/1]");
    for (int64_t i = 0; i < 7 * 6 * 3; i++) x[i] += 5;
    tsr_tile_conv_params p = geom(1, 2, 3, 0, 1, 1);
    tsr_tile *out = check_conv(be, &g, dirty, x, &p, 2, 3, 3, 0, NULL);
    expect_shape(out, "[2/4, 7~/4, 6~/4, 1?/4, 1/1]");
    tsr_tile_free(out);
    tsr_tile_free(d);
    tsr_tile_free(dirty);
    tsr_tile_free(img);
    free(x);
    tsr_backend_free(be);
}

/* Layers I -> (clear, duplicate) -> II -> I, no repacking. */
static void test_chain(void **state) {
    (void)state;
    tsr_prng g;
    tt_prng(&g, 32);
    tsr_backend *be = tc_mockup_collecting(512, 6, 1);
    double *x, *r1, *r2, *r3;
    tsr_tile *img = encrypt_img(be, "[*/4, 8~/4, 8~/4, 2/4, 2/2]", &g, &x);
    tsr_tile_conv_params pI = geom(1, 2, 3, 0, 1, 1), pII = geom(1, 2, 0, 3, 2, 1);
    /* Layer 1 (I): 2 -> 3 channels, 3x3 same. */
    tsr_tile *o1 = check_conv(be, &g, img, x, &pI, 3, 3, 3, 1, &r1);
    expect_shape(o1, "[3/4, 8~/4, 8~/4, 1?/4, 2/2]");
    tsr_tile *c1, *d1;
    tt_ok(tsr_tile_clear(o1, &c1));
    tt_ok(tsr_tile_duplicate(c1, 3, &d1));
    expect_shape(d1, "[3/4, 8~/4, 8~/4, */4, 2/2]");
    /* Layer 2 (II): 3 -> 4 channels, stride 2. Reference input = r1 with c dim gone. */
    tsr_tile *o2 = check_conv(be, &g, d1, r1, &pII, 4, 3, 3, 0, &r2);
    expect_shape(o2, "[*/4, 4~/4, 4~/4, 4/4, 2/2]");
    /* Layer 3 (I) consumes layer 2's output as is. */
    tsr_tile *o3 = check_conv(be, &g, o2, r2, &pI, 2, 3, 3, 1, &r3);
    expect_shape(o3, "[2/4, 4~/4, 4~/4, 1?/4, 2/2]");
    assert_int_equal(tsr_tile_level(o3), 6 - 4);
    tsr_tile *all[] = { img, o1, c1, d1, o2, o3 };
    for (size_t i = 0; i < 6; i++) tsr_tile_free(all[i]);
    free(x);
    free(r1);
    free(r2);
    free(r3);
    tsr_backend_free(be);
}

/* A dense layer straight after a layout-II convolution: weights packed like the activations. */
static void test_conv_then_dense(void **state) {
    (void)state;
    tsr_prng g;
    tt_prng(&g, 34);
    tsr_backend *be = tc_mockup_collecting(512, 3, 1);
    double *x, *r2;
    tsr_tile *img = encrypt_img(be, "[2/4, 8~/4, 8~/4, */4, 2/2]", &g, &x);
    tsr_tile_conv_params pII = geom(1, 2, 0, 3, 2, 1);
    tsr_tile *o2 = check_conv(be, &g, img, x, &pII, 3, 3, 3, 0, &r2);
    expect_shape(o2, "[*/4, 4~/4, 4~/4, 3/4, 2/2]");
    /* W (m=3, x, y, f) packed as [3/4, 4~/4, 4~/4, 3/4, *\/2]. */
    tsr_tile_shape ws;
    tc_shape("[3/4, 4~/4, 4~/4, 3/4, */2]", 512, &ws);
    double W[3 * 4 * 4 * 3], want[3 * 2] = { 0 };
    tc_random_dense(&g, W, sizeof W / sizeof W[0], -1, 1);
    for (int m = 0; m < 3; m++)
        for (int b = 0; b < 2; b++)
            for (int i = 0; i < 4 * 4 * 3; i++) want[m * 2 + b] += W[m * 48 + i] * r2[i * 2 + b];
    tsr_tile *w, *y;
    tt_ok(tsr_tile_encode(be, &ws, W, tsr_tile_level(o2), 0, &w));
    int dims[3] = { 1, 2, 3 };
    tt_ok(tsr_tile_mul_sum_dims(o2, w, dims, 3, &y));
    expect_shape(y, "[3/4, 1?/4, 1?/4, 1?/4, 2/2]");
    tc_check(y, want, TOL);
    assert_int_equal(tsr_tile_level(y), 1);
    tsr_tile_free(y);
    tsr_tile_free(w);
    tsr_tile_free(o2);
    tsr_tile_free(img);
    free(x);
    free(r2);
    tsr_backend_free(be);
}

/* Random geometries and tile shapes against the dense reference. */
static void test_random(void **state) {
    (void)state;
    tsr_prng g;
    tt_prng(&g, 33);
    int done = 0;
    for (int it = 0; it < tc_iters(400) && done < tc_iters(80); it++) {
        int64_t slots = (int64_t)1 << (5 + tsr_prng_uniform(&g, 4));
        int layout = (int)tsr_prng_uniform(&g, 2);
        int64_t X = 2 + (int64_t)tsr_prng_uniform(&g, 9), Y = 2 + (int64_t)tsr_prng_uniform(&g, 9);
        int64_t C = 1 + (int64_t)tsr_prng_uniform(&g, 4), B = 1 + (int64_t)tsr_prng_uniform(&g, 3);
        int F = 1 + (int)tsr_prng_uniform(&g, 4), FX = 1 + (int)tsr_prng_uniform(&g, 3),
            FY = 1 + (int)tsr_prng_uniform(&g, 3);
        int s = 1 + (int)tsr_prng_uniform(&g, 2);
        int pad = (int)tsr_prng_uniform(&g, (uint64_t)(FX < FY ? FX : FY));
        int64_t t[5] = { 1, 1, 1, 1, 1 };
        for (int64_t b = 1; b < slots; b *= 2) t[tsr_prng_uniform(&g, 5)] *= 2;
        tsr_tile_shape is;
        int64_t sizes[5];
        unsigned flags[5] = { 0, TSR_TILE_INTERLEAVED, TSR_TILE_INTERLEAVED, 0, 0 };
        if (layout == 0) { /* I */
            int64_t sz[5] = { 0, X, Y, C, B };
            memcpy(sizes, sz, sizeof sz);
        } else { /* II */
            int64_t sz[5] = { C, X, Y, 0, B };
            memcpy(sizes, sz, sizeof sz);
        }
        if (tsr_tile_shape_make(&is, 5, sizes, t, flags, slots) != TSR_OK) continue;
        if (tsr_tile_shape_num_tiles(&is) > 48) continue;
        tsr_tile_conv_params p = layout == 0 ? geom(1, 2, 3, 0, s, pad) : geom(1, 2, 0, 3, s, pad);
        tsr_backend *be = tc_mockup_collecting(slots, 2, 1);
        double w[4 * 4 * 9] = { 0 };
        tsr_tile_conv *cv;
        tsr_status st = tsr_tile_conv_create(be, &is, &p, w, F, FX, FY, NULL, -1, 0, &cv);
        if (st != TSR_OK) {
            /* Geometries the packing cannot express are refused with a reason. */
            assert_int_equal(st, TSR_ERR_SHAPE);
            assert_true(strlen(tsr_last_error()) > 20);
            tsr_backend_free(be);
            continue;
        }
        tsr_tile_conv_free(cv);
        int64_t n = tsr_tile_shape_num_elements(&is);
        double *x = calloc((size_t)n, sizeof *x);
        tc_random_dense(&g, x, (size_t)n, -1, 1);
        tsr_tile *img;
        tt_ok(tsr_tile_encrypt(be, &is, x, -1, 0, &img));
        tsr_tile *out = check_conv(be, &g, img, x, &p, F, FX, FY, (int)(it & 1), NULL);
        tsr_tile_free(out);
        tsr_tile_free(img);
        free(x);
        tsr_backend_free(be);
        done++;
    }
    assert_true(done >= tc_iters(80) / 2);
}

static void test_errors(void **state) {
    (void)state;
    tsr_backend *be = tc_mockup_collecting(256, 3, 1);
    tsr_tile_shape s;
    double w[64] = { 0 };
    tsr_tile_conv *cv = NULL;
    tsr_tile_conv_params p = geom(1, 2, 3, 0, 1, 1);
    /* Contiguous image spanning several tiles. */
    tc_shape("[*/4, 7/4, 6~/4, 3/2, 2/2]", 256, &s);
    tt_fails(tsr_tile_conv_create(be, &s, &p, w, 2, 3, 3, NULL, -1, 0, &cv), TSR_ERR_SHAPE);
    assert_non_null(strstr(tsr_last_error(), "interleaved"));
    /* Stride 2 over an odd number of tiles. */
    tc_shape("[*/4, 12~/4, 6~/4, 3/2, 2/2]", 256, &s);
    p.stride_x = 2;
    tt_fails(tsr_tile_conv_create(be, &s, &p, w, 2, 3, 3, NULL, -1, 0, &cv), TSR_ERR_SHAPE);
    assert_non_null(strstr(tsr_last_error(), "multiple of 2"));
    p.stride_x = 1;
    /* Filters need a '*' dimension. */
    tc_shape("[2/4, 7~/4, 6~/4, 3/2, 2/2]", 256, &s);
    tt_fails(tsr_tile_conv_create(be, &s, &p, w, 2, 3, 3, NULL, -1, 0, &cv), TSR_ERR_SHAPE);
    assert_non_null(strstr(tsr_last_error(), "duplicate"));
    /* A valid convolution shrinking 28 to 24 over 8-slot tiles needs 3 tiles, not 4. */
    tsr_backend *big = tc_mockup_collecting(1024, 2, 1);
    tc_shape("[*/2, 28~/8, 28~/8, 1/1, 8/8]", 1024, &s);
    p = geom(1, 2, 3, 0, 1, 0);
    tt_fails(tsr_tile_conv_create(big, &s, &p, w, 2, 5, 5, NULL, -1, 0, &cv), TSR_ERR_SHAPE);
    assert_non_null(strstr(tsr_last_error(), "choose a tile size"));
    tsr_backend_free(big);
    /* Bad dimensions and kernels. */
    tc_shape("[*/4, 7~/4, 6~/4, 3/2, 2/2]", 256, &s);
    p = geom(1, 1, 3, 0, 1, 1);
    tt_fails(tsr_tile_conv_create(be, &s, &p, w, 2, 3, 3, NULL, -1, 0, &cv), TSR_ERR_INVALID_ARG);
    p = geom(1, 2, 3, 0, 1, 3);
    tt_fails(tsr_tile_conv_create(be, &s, &p, w, 2, 3, 3, NULL, -1, 0, &cv), TSR_ERR_INVALID_ARG);
    /* Prepared for one level, applied at another. */
    p = geom(1, 2, 3, 0, 1, 1);
    tt_ok(tsr_tile_conv_create(be, &s, &p, w, 2, 3, 3, NULL, 2, 0, &cv));
    double x[7 * 6 * 3 * 2] = { 0 };
    tsr_tile *img, *low, *out;
    tt_ok(tsr_tile_encrypt(be, &s, x, 1, 0, &low));
    tt_fails(tsr_tile_conv_apply(cv, low, &out), TSR_ERR_LEVEL);
    tt_ok(tsr_tile_encrypt(be, &s, x, 3, 0, &img));
    tt_ok(tsr_tile_conv_apply(cv, img, &out)); /* a higher level is dropped for free */
    assert_int_equal(tsr_tile_level(out), 1);
    tsr_tile_free(out);
    tsr_tile_free(img);
    tsr_tile_free(low);
    tsr_tile_conv_free(cv);
    tsr_tile_conv_free(NULL);
    tsr_backend_free(be);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_layouts), cmocka_unit_test(test_garbage_padding),
        cmocka_unit_test(test_chain),   cmocka_unit_test(test_conv_then_dense),
        cmocka_unit_test(test_random),  cmocka_unit_test(test_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
