/*
 * tests/test_train_cli.c - `tessera train --init` and `tessera heify` on a
 * tiny ReLU teacher made here (Conv -> BatchNorm -> Relu -> MaxPool ->
 * Flatten -> Gemm, exported through the graph), with .npy data written by
 * the test; the .npy reader's checks; the verbs' usage errors; `tessera eval` on a
 * model whose outputs the test computes by hand (accuracy, cross-entropy, MSE, the
 * activation range and its out-of-range count against the declared bound).
 */
#include "clitest.h"

#include "onnx/onnx_graph.h"
#include "tessera.h"
#include "train/data.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* A .npy v1 file image of doubles converted to descr ('<f4', '<f8', '<i8', '|u1'). */
static uint8_t *npy_image(const char *descr, int rank, const int64_t *dims, const double *v,
                          size_t *len) {
    char h[256];
    int at = snprintf(h, sizeof h, "{'descr': '%s', 'fortran_order': False, 'shape': (", descr);
    size_t n = 1;
    for (int k = 0; k < rank; k++) {
        at += snprintf(h + at, sizeof h - (size_t)at, "%lld,%s", (long long)dims[k],
                       k + 1 < rank ? " " : "");
        n *= (size_t)dims[k];
    }
    at += snprintf(h + at, sizeof h - (size_t)at, "), }");
    while ((10 + at + 1) % 64) h[at++] = ' ';
    h[at++] = '\n';
    size_t es = descr[2] == '1' ? 1 : descr[2] == '4' ? 4 : 8;
    *len = 10 + (size_t)at + n * es;
    uint8_t *b = malloc(*len);
    memcpy(b, "\x93NUMPY\x01\x00", 8);
    b[8] = (uint8_t)(at & 0xff);
    b[9] = (uint8_t)(at >> 8);
    memcpy(b + 10, h, (size_t)at);
    uint8_t *p = b + 10 + at;
    for (size_t i = 0; i < n; i++, p += es) {
        if (descr[1] == 'f' && es == 4) {
            float f = (float)v[i];
            memcpy(p, &f, 4);
        } else if (descr[1] == 'f') {
            memcpy(p, &v[i], 8);
        } else if (es == 8) {
            int64_t q = (int64_t)v[i];
            memcpy(p, &q, 8);
        } else {
            *p = (uint8_t)v[i];
        }
    }
    return b;
}

static void write_file(const char *path, const uint8_t *b, size_t len) {
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(b, 1, len, f), len);
    fclose(f);
}

static void test_npy_reader(void **state) {
    (void)state;
    double v[6] = { 1, 2, 3, 4, 5, 250 };
    const char *types[] = { "<f4", "<f8", "<i8", "|u1" };
    for (int k = 0; k < 4; k++) {
        size_t len;
        uint8_t *b = npy_image(types[k], 2, (int64_t[]){ 2, 3 }, v, &len);
        tsr_array *a;
        int integral;
        tt_ok(tsr_npy_parse(b, len, &a, &integral));
        assert_int_equal(a->rank, 2);
        assert_int_equal(a->dims[1], 3);
        assert_int_equal(integral, k == 3 ? 2 : k >= 2); /* uint8: 2 */
        for (int i = 0; i < 6; i++) assert_true(a->data[i] == v[i]);
        tsr_array_free(a);
        /* truncated, trailing byte, bad magic */
        tt_fails(tsr_npy_parse(b, len - 1, &a, NULL), TSR_ERR_FORMAT);
        b[0] = 'x';
        tt_fails(tsr_npy_parse(b, len, &a, NULL), TSR_ERR_FORMAT);
        free(b);
    }
    size_t len;
    uint8_t *b = npy_image(">f4", 1, (int64_t[]){ 6 }, v, &len);
    tsr_array *a;
    tt_fails(tsr_npy_parse(b, len, &a, NULL), TSR_ERR_UNSUPPORTED);
    free(b);
    b = npy_image("<f8", 1, (int64_t[]){ 6 }, v, &len);
    char *fo = strstr((char *)b + 10, "False");
    memcpy(fo, "True ", 5);
    tt_fails(tsr_npy_parse(b, len, &a, NULL), TSR_ERR_UNSUPPORTED);
    free(b);
    double nan = NAN;
    b = npy_image("<f8", 1, (int64_t[]){ 1 }, &nan, &len);
    tt_fails(tsr_npy_parse(b, len, &a, NULL), TSR_ERR_FORMAT);
    free(b);
    int64_t big[9] = { 1, 1, 1, 1, 1, 1, 1, 1, 1 };
    b = npy_image("<f8", 9, big, v, &len);
    tt_fails(tsr_npy_parse(b, len, &a, NULL), TSR_ERR_UNSUPPORTED);
    free(b);
}

/* x (N, 1, 6, 6) -> Conv 2x3x3 pad 1 -> BN -> Relu -> MaxPool 2 -> Flatten -> Gemm (3, 18) */
static tsr_graph *teacher(void) {
    tsr_graph *g;
    tt_ok(tsr_graph_create(&g));
    tt_ok(tsr_graph_add_input(g, "x", 4, (int64_t[]){ -1, 1, 6, 6 }));
    tsr_prng r;
    tt_prng(&r, 5);
    struct {
        const char *name;
        int rank;
        int64_t dims[4];
        double lo, hi;
    } cs[] = {
        { "w", 4, { 2, 1, 3, 3 }, -1, 1 }, { "s", 1, { 2 }, 0.5, 1.5 },
        { "b", 1, { 2 }, -0.5, 0.5 },      { "m", 1, { 2 }, -0.2, 0.2 },
        { "v", 1, { 2 }, 0.5, 1.5 },       { "fw", 2, { 3, 18 }, -1, 1 },
        { "fb", 1, { 3 }, -0.1, 0.1 },
    };
    for (size_t k = 0; k < sizeof cs / sizeof cs[0]; k++) {
        tsr_array *a;
        tt_ok(tsr_array_create(&a, cs[k].rank, cs[k].dims));
        for (size_t i = 0; i < a->numel; i++)
            a->data[i] = cs[k].lo + (cs[k].hi - cs[k].lo) * tsr_prng_double(&r);
        tt_ok(tsr_graph_add_const(g, cs[k].name, a));
        tsr_array_free(a);
    }
    tsr_graph_attrs a;
    tsr_graph_attrs_default(&a);
    a.pads[0] = a.pads[1] = a.pads[2] = a.pads[3] = 1;
    tt_ok(tsr_graph_add_node(g, TSR_NODE_CONV, "conv", 2, (const char *[]){ "x", "w" }, "c", &a));
    tt_ok(tsr_graph_add_node(g, TSR_NODE_BATCHNORM, "bn", 5,
                             (const char *[]){ "c", "s", "b", "m", "v" }, "n", NULL));
    tt_ok(tsr_graph_add_node(g, TSR_NODE_RELU, "relu", 1, (const char *[]){ "n" }, "r", NULL));
    tsr_graph_attrs_default(&a);
    a.n_kernel = 2;
    a.kernel[0] = a.kernel[1] = 2;
    a.strides[0] = a.strides[1] = 2;
    tt_ok(tsr_graph_add_node(g, TSR_NODE_MAXPOOL, "pool", 1, (const char *[]){ "r" }, "p", &a));
    tsr_graph_attrs_default(&a);
    tt_ok(tsr_graph_add_node(g, TSR_NODE_FLATTEN, "flat", 1, (const char *[]){ "p" }, "f", &a));
    a.trans_b = 1;
    tt_ok(tsr_graph_add_node(g, TSR_NODE_GEMM, "fc", 3, (const char *[]){ "f", "fw", "fb" },
                             "logits", &a));
    tt_ok(tsr_graph_add_output(g, "logits"));
    tt_ok(tsr_graph_finalize(g));
    return g;
}

static void write_data(const tsr_graph *g, int n, uint64_t seed, const char *xp, const char *yp) {
    tsr_array *x;
    tt_ok(tsr_array_create(&x, 4, (int64_t[]){ n, 1, 6, 6 }));
    tsr_prng r;
    tt_prng(&r, seed);
    for (size_t i = 0; i < x->numel; i++) x->data[i] = 2 * tsr_prng_double(&r) - 1;
    tsr_array *out[1];
    tt_ok(tsr_graph_run(g, (const tsr_array *const *)&x, out));
    double *lab = malloc((size_t)n * sizeof *lab);
    for (int i = 0; i < n; i++) {
        int best = 0;
        for (int k = 1; k < 3; k++)
            if (out[0]->data[i * 3 + k] > out[0]->data[i * 3 + best]) best = k;
        lab[i] = best;
    }
    size_t len;
    uint8_t *b = npy_image("<f4", 4, x->dims, x->data, &len);
    write_file(xp, b, len);
    free(b);
    b = npy_image("<i8", 1, (int64_t[]){ n }, lab, &len);
    write_file(yp, b, len);
    free(b);
    free(lab);
    tsr_array_free(out[0]);
    tsr_array_free(x);
}

static tsr_graph *import(const char *path, int keep) {
    tsr_onnx_model *m;
    tt_ok(tsr_onnx_load(&m, path));
    tsr_onnx_import_opts io;
    tsr_onnx_import_opts_default(&io);
    io.keep_non_polynomial = keep;
    tsr_graph *g;
    tt_ok(tsr_onnx_to_graph(m, &io, &g, NULL));
    tsr_onnx_free(m);
    return g;
}

static double field(const char *out, const char *fmt) {
    const char *p = strstr(out, fmt);
    double v = NAN;
    assert_non_null(p);
    assert_int_equal(sscanf(p + strlen(fmt), "%lf", &v), 1);
    return v;
}

static void test_train_init_and_heify(void **state) {
    (void)state;
    tsr_graph *g = teacher();
    tsr_onnx_model *m;
    tt_ok(tsr_onnx_from_graph(g, &m));
    char tp[512]; /* tt_cli_path's buffers rotate */
    snprintf(tp, sizeof tp, "%s", tt_cli_path("teacher.onnx"));
    tt_ok(tsr_onnx_save(m, tp));
    tsr_onnx_free(m);
    char xp[512], yp[512], data[1100];
    snprintf(xp, sizeof xp, "%s", tt_cli_path("x.npy"));
    snprintf(yp, sizeof yp, "%s", tt_cli_path("y.npy"));
    snprintf(data, sizeof data, "%s,%s", xp, yp);
    write_data(g, 96, 7, xp, yp);

    /* fine-tune the teacher itself (it is ReLU: trains as it is) */
    tt_cli_expect(tt_cli_run("train --init %s --data %s --test %s --epochs 2 --batch 16 --lr 0.01 "
                             "--threads 1 --quiet --out %s",
                             tp, data, data, tt_cli_path("tuned.onnx")),
                  0, "train --init");
    assert_non_null(strstr(tt_cli_output(), "test accuracy"));
    tsr_graph *tuned = import(tt_cli_path("tuned.onnx"), 1);
    assert_int_equal(tsr_graph_num_nodes(tuned), tsr_graph_num_nodes(g));
    tsr_graph_free(tuned);

    /* image bytes: scaled by --pixel-norm, which the saved model records */
    double px[96 * 36];
    for (int i = 0; i < 96 * 36; i++) px[i] = (i * 37) % 256;
    size_t plen;
    uint8_t *pb = npy_image("|u1", 3, (int64_t[]){ 96, 6, 6 }, px, &plen);
    write_file(tt_cli_path("px.npy"), pb, plen);
    free(pb);
    tt_cli_expect(tt_cli_run("train --init %s --data %s,%s --epochs 1 --pixel-norm 0.5,0.25 "
                             "--quiet --out %s",
                             tp, tt_cli_path("px.npy"), yp, tt_cli_path("px.onnx")),
                  0, "train --init on image bytes");
    tt_ok(tsr_onnx_load(&m, tt_cli_path("px.onnx")));
    assert_string_equal(tsr_onnx_meta(m, "tessera.input.mean"), "0.5");
    assert_string_equal(tsr_onnx_meta(m, "tessera.input.std"), "0.25");
    tsr_onnx_free(m);

    /* heify: the student is polynomial, learns the teacher's labels */
    tt_cli_expect(tt_cli_run("heify %s --data %s --test %s --epochs 30 --batch 16 --lr 0.01 "
                             "--threads 1 --quiet --out %s",
                             tp, data, data, tt_cli_path("student.onnx")),
                  0, "heify");
    const char *o = tt_cli_output();
    assert_non_null(strstr(o, "1 activations replaced by degree-2 polynomials, 1 batch norms "
                              "folded, 1 max pools averaged"));
    assert_non_null(strstr(o, "imports with no non-polynomial node"));
    const char *acc = strstr(o, "student ");
    double sacc = 0;
    for (const char *p = o; (p = strstr(p, "student ")) != NULL; p++)
        if (sscanf(p, "student %lf%%", &sacc) == 1) acc = p;
    assert_non_null(acc);
    assert_true(sacc > 85); /* the labels are the teacher's: the student can match them */
    /* eval of the student: its polynomial's bound comes from the Chebyshev interval */
    tt_cli_expect(tt_cli_run("eval %s --data %s", tt_cli_path("student.onnx"), data), 0,
                  "eval student");
    o = tt_cli_output();
    assert_true(fabs(field(o, "accuracy ") - sacc) < 0.01);
    assert_non_null(strstr(o, " declared "));
    tsr_graph *s = import(tt_cli_path("student.onnx"), 0);
    for (int i = 0; i < tsr_graph_num_nodes(s); i++) {
        assert_true(tsr_graph_kind_is_polynomial(tsr_graph_node_kind(s, i)));
        assert_int_not_equal(tsr_graph_node_kind(s, i), TSR_NODE_BATCHNORM);
    }
    tsr_graph_free(s);

    /* errors: usage, data, models */
    tt_cli_expect(tt_cli_run("heify --help"), 0, "heify --help");
    tt_cli_expect_fail(tt_cli_run("train --init %s --epochs 1 --out %s", tp, tt_cli_path("o.onnx")),
                       "no data", "--init needs --data");
    tt_cli_expect_fail(tt_cli_run("train --init %s --arch mlp --data %s --epochs 1 --out %s", tp,
                                  data, tt_cli_path("o.onnx")),
                       "--arch with --init", "not --init");
    tt_cli_expect_fail(tt_cli_run("train --init %s --momentum 0.5 --data %s --epochs 1 --out %s",
                                  tp, data, tt_cli_path("o.onnx")),
                       "--momentum with --init", "not --init");
    tt_cli_expect_fail(
        tt_cli_run("train --init %s --data %s --epochs 1 --out %s", tp, xp, tt_cli_path("o.onnx")),
        "one file", "X,Y");
    tt_cli_expect_fail(tt_cli_run("train --init %s --data %s,%s --epochs 1 --loss ce --out %s", tp,
                                  xp, xp, tt_cli_path("o.onnx")),
                       "images as labels", "integer label");
    tt_cli_expect_fail(tt_cli_run("train --init %s --data %s --epochs 1 --out %s", tp, data, tp),
                       "output = input", "is the input");
    tt_cli_expect_fail(
        tt_cli_run("heify %s --data %s --degree 9 --out %s", tp, data, tt_cli_path("o.onnx")),
        "degree", "--degree");
    tt_cli_expect_fail(tt_cli_run("heify --data %s --out %s", data, tt_cli_path("o.onnx")),
                       "no teacher", "teacher");
    write_file(tt_cli_path("bad.npy"), (const uint8_t *)"\x93NUMPY\x01\x00\x05\x00{'a'}", 15);
    tt_cli_expect_fail(tt_cli_run("heify %s --data %s,%s --out %s", tp, tt_cli_path("bad.npy"), yp,
                                  tt_cli_path("o.onnx")),
                       "bad npy", ".npy");
    double v[36] = { 0 };
    size_t len;
    uint8_t *b = npy_image("<f8", 2, (int64_t[]){ 1, 35 }, v, &len);
    write_file(tt_cli_path("odd.npy"), b, len);
    free(b);
    b = npy_image("<i8", 1, (int64_t[]){ 1 }, v, &len);
    write_file(tt_cli_path("one.npy"), b, len);
    free(b);
    tt_cli_expect_fail(tt_cli_run("heify %s --data %s,%s --out %s", tp, tt_cli_path("odd.npy"),
                                  tt_cli_path("one.npy"), tt_cli_path("o.onnx")),
                       "shape", "does not fit");
    tt_cli_expect_fail(tt_cli_run("heify %s --data %s,%s --out %s", tp, xp, tt_cli_path("one.npy"),
                                  tt_cli_path("o.onnx")),
                       "counts", "different numbers of samples");
    tsr_graph_free(g);
}

/* ---- tessera eval on the graph path ---------------------------------------------------- */

/* x (N, 3) -> fc1 (2x3, transB) -> h -> act: 0.1 + 0.5 h + 0.25 h^2 -> fc2 (3x2) -> logits */
static const double EV_W1[6] = { 0.9, -0.4, 0.3, -0.2, 0.7, 0.5 }, EV_B1[2] = { 0.05, -0.1 };
static const double EV_W2[6] = { 1.0, -0.5, -0.3, 0.8, 0.2, 0.1 }, EV_B2[3] = { 0, 0.1, -0.1 };
static const double EV_C[3] = { 0.1, 0.5, 0.25 };

static void add_const(tsr_graph *g, const char *name, int rank, const int64_t *dims,
                      const double *v) {
    tsr_array *a;
    tt_ok(tsr_array_create(&a, rank, dims));
    memcpy(a->data, v, a->numel * sizeof *v);
    tt_ok(tsr_graph_add_const(g, name, a));
    tsr_array_free(a);
}

static tsr_graph *eval_model(void) {
    tsr_graph *g;
    tt_ok(tsr_graph_create(&g));
    tt_ok(tsr_graph_add_input(g, "x", 2, (int64_t[]){ -1, 3 }));
    add_const(g, "w1", 2, (int64_t[]){ 2, 3 }, EV_W1);
    add_const(g, "b1", 1, (int64_t[]){ 2 }, EV_B1);
    add_const(g, "w2", 2, (int64_t[]){ 3, 2 }, EV_W2);
    add_const(g, "b2", 1, (int64_t[]){ 3 }, EV_B2);
    add_const(g, "c", 1, (int64_t[]){ 3 }, EV_C);
    tsr_graph_attrs a;
    tsr_graph_attrs_default(&a);
    a.trans_b = 1;
    tt_ok(tsr_graph_add_node(g, TSR_NODE_GEMM, "fc1", 3, (const char *[]){ "x", "w1", "b1" }, "h",
                             &a));
    tt_ok(tsr_graph_add_node(g, TSR_NODE_POLY, "act", 2, (const char *[]){ "h", "c" }, "a", NULL));
    tt_ok(tsr_graph_add_node(g, TSR_NODE_GEMM, "fc2", 3, (const char *[]){ "a", "w2", "b2" },
                             "logits", &a));
    tt_ok(tsr_graph_add_output(g, "logits"));
    tt_ok(tsr_graph_finalize(g));
    return g;
}

/* The model by hand: logits (3) and the activation input h (2) of one sample. */
static void eval_by_hand(const double *x, double *h, double *z) {
    double act[2];
    for (int j = 0; j < 2; j++) {
        h[j] = EV_B1[j];
        for (int k = 0; k < 3; k++) h[j] += EV_W1[j * 3 + k] * x[k];
        act[j] = EV_C[0] + EV_C[1] * h[j] + EV_C[2] * h[j] * h[j];
    }
    for (int j = 0; j < 3; j++) z[j] = EV_B2[j] + EV_W2[j * 2] * act[0] + EV_W2[j * 2 + 1] * act[1];
}

static void test_eval(void **state) {
    (void)state;
    enum { N = 64 };
    const double B = 1.5;
    tsr_graph *g = eval_model();
    tsr_onnx_model *m;
    tt_ok(tsr_onnx_from_graph(g, &m));
    tt_ok(tsr_onnx_set_meta(m, "tessera.bound.h", "1.5"));
    char mp[512], xp[512], yp[512], tp[512];
    snprintf(mp, sizeof mp, "%s", tt_cli_path("eval.onnx"));
    snprintf(xp, sizeof xp, "%s", tt_cli_path("ex.npy"));
    snprintf(yp, sizeof yp, "%s", tt_cli_path("ey.npy"));
    snprintf(tp, sizeof tp, "%s", tt_cli_path("et.npy"));
    tt_ok(tsr_onnx_save(m, mp));
    tsr_onnx_free(m);
    /* data, labels (every fourth one wrong on purpose), targets, expectations by hand */
    double x[N * 3], lab[N], tgt[N * 3], ce = 0, hlo = INFINITY, hhi = -INFINITY;
    int outside = 0;
    tsr_prng r;
    tt_prng(&r, 11);
    for (int i = 0; i < N; i++) {
        for (int k = 0; k < 3; k++) x[i * 3 + k] = 4 * tsr_prng_double(&r) - 2;
        double h[2], z[3];
        eval_by_hand(x + i * 3, h, z);
        int best = 0;
        for (int k = 1; k < 3; k++)
            if (z[k] > z[best]) best = k;
        lab[i] = i % 4 == 0 ? (best + 1) % 3 : best;
        double mx = fmax(z[0], fmax(z[1], z[2])), se = 0;
        for (int k = 0; k < 3; k++) se += exp(z[k] - mx);
        ce += -(z[(int)lab[i]] - mx - log(se)) / N;
        for (int j = 0; j < 2; j++) {
            hlo = fmin(hlo, h[j]);
            hhi = fmax(hhi, h[j]);
            outside += fabs(h[j]) > B;
        }
        for (int k = 0; k < 3; k++) tgt[i * 3 + k] = z[k] + (k == 1 ? 0.3 : -0.1);
    }
    assert_true(outside > 0 && outside < 2 * N); /* the data exercises the count */
    size_t len;
    uint8_t *b = npy_image("<f8", 2, (int64_t[]){ N, 3 }, x, &len);
    write_file(xp, b, len);
    free(b);
    b = npy_image("<i8", 1, (int64_t[]){ N }, lab, &len);
    write_file(yp, b, len);
    free(b);
    b = npy_image("<f8", 2, (int64_t[]){ N, 3 }, tgt, &len);
    write_file(tp, b, len);
    free(b);

    /* classification: accuracy, cross-entropy, the activation's range and outside count */
    tt_cli_expect(tt_cli_run("eval %s --data %s,%s --batch 10 --threads 2", mp, xp, yp), 0, "eval");
    const char *o = tt_cli_output();
    assert_true(fabs(field(o, "accuracy ") - 75.0) < 1e-9);
    assert_true(fabs(field(o, "cross-entropy ") - ce) < 1e-4);
    char want[128];
    snprintf(want, sizeof want, " %d of %d (", outside, 2 * N);
    assert_non_null(strstr(o, want));
    assert_non_null(strstr(o, "[-1.5, 1.5]"));
    assert_non_null(strstr(o, "declared"));
    const char *row = strstr(o, " poly "); /* the fused polynomial keeps no name of ours */
    assert_non_null(row);
    double lo, hi;
    assert_int_equal(sscanf(row + 6, "%lf %lf", &lo, &hi), 2);
    assert_true(fabs(lo - hlo) < 1e-4 && fabs(hi - hhi) < 1e-4);
    snprintf(want, sizeof want, "warning: %d polynomial inputs fell outside", outside);
    assert_non_null(strstr(o, want));

    /* regression: MSE against targets of the output's shape (errors 0.3, -0.1, -0.1) */
    tt_cli_expect(tt_cli_run("eval %s --data %s,%s --limit 40", mp, xp, tp), 0, "eval mse");
    o = tt_cli_output();
    assert_true(fabs(field(o, "MSE ") - (0.09 + 0.01 + 0.01) / 3) < 1e-6); /* %.6g */
    assert_non_null(strstr(o, "(40 samples)"));

    /* integer inputs that are not bytes (int64: token ids, counts) are used as read unless
       --pixel-norm (or the model's tessera.input.*) says they are pixels: targets computed
       from the integers themselves give MSE 0 (they were scaled as pixels) */
    double xint[N * 3], tint[N * 3];
    for (int i = 0; i < N; i++) {
        for (int k = 0; k < 3; k++) xint[i * 3 + k] = round(x[i * 3 + k]);
        double h[2];
        eval_by_hand(xint + i * 3, h, tint + i * 3);
    }
    char ip[512], itp[512];
    snprintf(ip, sizeof ip, "%s", tt_cli_path("exi.npy"));
    snprintf(itp, sizeof itp, "%s", tt_cli_path("eti.npy"));
    b = npy_image("<i8", 2, (int64_t[]){ N, 3 }, xint, &len);
    write_file(ip, b, len);
    free(b);
    b = npy_image("<f8", 2, (int64_t[]){ N, 3 }, tint, &len);
    write_file(itp, b, len);
    free(b);
    tt_cli_expect(tt_cli_run("eval %s --data %s,%s", mp, ip, itp), 0, "eval int64 inputs");
    assert_true(field(tt_cli_output(), "MSE ") < 1e-12);
    tt_cli_expect(tt_cli_run("eval %s --data %s,%s --pixel-norm 0,1", mp, ip, itp), 0,
                  "eval int64 pixels");
    assert_true(field(tt_cli_output(), "MSE ") > 1e-3);

    /* a directory whose path has a ',' is a Fashion-MNIST directory, not X,Y */
    char dd[600];
    snprintf(dd, sizeof dd, "%s", tt_cli_path("fm,dir"));
    assert_true(mkdir(dd, 0700) == 0 || errno == EEXIST);
    tt_cli_expect(tt_cli_run("eval %s --data %s", mp, dd), 2, "eval --data DIR with a comma");
    assert_non_null(strstr(tt_cli_output(), "Fashion-MNIST test files"));

    /* the declared bound travels through train --init; --range-loss B replaces it */
    tt_cli_expect(tt_cli_run("train --init %s --data %s,%s --epochs 1 --batch 16 --quiet --out %s",
                             mp, xp, tp, tt_cli_path("tuned_ev.onnx")),
                  0, "train --init keeps the bound");
    tt_cli_expect(tt_cli_run("eval %s --data %s,%s", tt_cli_path("tuned_ev.onnx"), xp, tp), 0,
                  "eval the fine-tuned model");
    assert_non_null(strstr(tt_cli_output(), "[-1.5, 1.5] declared"));
    tt_cli_expect(tt_cli_run("train --init %s --data %s,%s --epochs 1 --batch 16 --range-loss "
                             "2,0.01 --quiet --out %s",
                             mp, xp, tp, tt_cli_path("tuned_rl.onnx")),
                  0, "train --init --range-loss");
    tt_cli_expect(tt_cli_run("eval %s --data %s,%s", tt_cli_path("tuned_rl.onnx"), xp, tp), 0,
                  "eval the range-trained model");
    assert_non_null(strstr(tt_cli_output(), "[-2, 2] declared"));

    /* a ReLU model (no bound: ranges only) on its own labels: 100 % */
    tsr_graph *t = teacher();
    tt_ok(tsr_onnx_from_graph(t, &m));
    char rp[512], rx[512], ry[512];
    snprintf(rp, sizeof rp, "%s", tt_cli_path("relu.onnx"));
    snprintf(rx, sizeof rx, "%s", tt_cli_path("rx.npy"));
    snprintf(ry, sizeof ry, "%s", tt_cli_path("ry.npy"));
    tt_ok(tsr_onnx_save(m, rp));
    tsr_onnx_free(m);
    write_data(t, 32, 3, rx, ry);
    tt_cli_expect(tt_cli_run("eval %s --data %s,%s", rp, rx, ry), 0, "eval relu");
    o = tt_cli_output();
    assert_true(fabs(field(o, "accuracy ") - 100.0) < 1e-9);
    assert_non_null(strstr(o, " relu "));
    assert_null(strstr(o, "warning"));
    tsr_graph_free(t);

    /* errors */
    tt_cli_expect(tt_cli_run("eval --help"), 0, "eval --help");
    tt_cli_expect_fail(tt_cli_run("eval"), "no model", "give the model file");
    tt_cli_expect_fail(tt_cli_run("eval %s --data %s,%s --loss ce", mp, xp, tp), "ce on targets",
                       "integer label");
    tt_cli_expect_fail(tt_cli_run("eval %s --data %s,%s --loss l1", mp, xp, yp), "bad loss",
                       "--loss");
    tt_cli_expect(tt_cli_run("eval %s --data %s,%s", mp, rx, ry), 2, "bad input: exit 2");
    tt_cli_expect_fail(2, "shape", "does not fit");
    tt_cli_expect(tt_cli_run("eval %s --data %s", mp, tt_cli_path("nodir")), 2, "no data");
    tt_cli_expect_fail(2, "no data", "not found");
    tt_cli_expect_fail(tt_cli_run("eval %s --data %s,%s", xp, xp, yp), "not a model",
                       "loading the model");
    tsr_graph_free(g);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_npy_reader),
        cmocka_unit_test(test_train_init_and_heify),
        cmocka_unit_test(test_eval),
    };
    return cmocka_run_group_tests(tests, tt_cli_setup, tt_cli_teardown);
}
