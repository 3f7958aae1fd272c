/*
 * tests/test_nn.c - encrypted-inference models in plaintext: ONNX import
 * (our training engine's exports, a PyTorch export, the unsupported-operator
 * report, --approx-relu), the CKKS simplifications (exactly equal in real
 * arithmetic: checked against the unsimplified model and against the
 * training engine's own forward pass), the reference executor and the CKKS
 * parameter choice.
 */
#include "testutil.h"
#include "train_ref.h"

#include "nn/nn_internal.h"
#include "onnx/onnx.h"
#include "train/model.h"
#include "train/model_onnx.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

static void rnd(tsr_prng *g, double *x, int64_t n, double s) {
    for (int64_t i = 0; i < n; i++) x[i] = s * (2 * tsr_prng_double(g) - 1);
}

static char *dup_path(const char *suffix) {
    const char *p = tt_temp_path(suffix);
    char *r = malloc(strlen(p) + 1);
    strcpy(r, p);
    return r;
}

/* Train-engine model -> ONNX file -> nn import; nn forward must match the engine's. */
static void check_train_export(const char *arch, const char *act, int fold_bn) {
    tsr_act_spec as;
    tt_ok(tsr_act_parse(act, &as));
    tsr_model *tm;
    tt_ok(tsr_model_build(&tm, arch, &as, 5));
    /* give batch norms non-trivial statistics so folding is exercised */
    tsr_prng g;
    tt_prng(&g, 31);
    for (size_t i = 0; i < tsr_model_num_state(tm); i++)
        tm->state[i] = (float)(0.5 + tsr_prng_double(&g));
    tsr_export_opts eo;
    tsr_export_opts_default(&eo);
    eo.fold_bn = fold_bn;
    char *path = dup_path(".onnx");
    tt_ok(tsr_model_save_onnx(tm, &eo, path));
    tsr_nn_model *m;
    char *rep = NULL;
    tt_ok(tsr_nn_import_onnx(path, NULL, &m, &rep));
    tsr_nn_string_free(rep);
    int B = 3;
    int64_t ni = tsr_nn_model_input_size(m), no = tsr_nn_model_output_size(m);
    float *xf = malloc((size_t)(B * ni) * sizeof *xf);
    double *x = malloc((size_t)(B * ni) * sizeof *x), *y = malloc((size_t)(B * no) * sizeof *y);
    double *want = malloc((size_t)(B * no) * sizeof *want);
    for (int64_t i = 0; i < B * ni; i++) x[i] = xf[i] = (float)(2 * tsr_prng_double(&g) - 1);
    tsr_model_set_training(tm, 0);
    tt_ok(tsr_model_forward(tm, xf, B));
    for (int64_t i = 0; i < B * no; i++) want[i] = tsr_model_output(tm)[i];
    tt_ok(tsr_nn_model_forward(m, x, B, y));
    double e = tt_rel_err(y, want, (size_t)(B * no), 1);
    if (e > 2e-4)
        fail_msg("%s/%s (fold %d): nn forward differs from the engine by %.3g", arch, act, fold_bn,
                 e);
    /* simplification leaves no batch norm, no degree-1 polynomial */
    for (int i = 0; i < m->n_layers; i++)
        if (m->layers[i].kind == NN_POLY) assert_true(m->layers[i].degree >= 2);
    remove(path);
    free(path);
    free(xf);
    free(x);
    free(y);
    free(want);
    tsr_nn_model_free(m);
    tsr_model_free(tm);
}

static void test_import_engine_models(void **state) {
    (void)state;
    check_train_export("cryptonets", "poly2", 1);
    check_train_export("cryptonets", "poly2", 0);
    check_train_export("lenet", "poly2", 1);
    check_train_export("conv8", "poly3", 0);
    check_train_export("mlp", "poly2", 1);
}

/* Simplified == unsimplified, and the square rewrite fires on a cryptonets model. */
static void test_simplify_exact(void **state) {
    (void)state;
    tsr_act_spec as;
    tt_ok(tsr_act_parse("poly2", &as));
    tsr_model *tm;
    tt_ok(tsr_model_build(&tm, "cryptonets", &as, 9));
    char *path = dup_path(".onnx");
    tsr_export_opts eo;
    tsr_export_opts_default(&eo);
    eo.fold_bn = 0;
    tt_ok(tsr_model_save_onnx(tm, &eo, path));
    tsr_nn_import_opts io;
    tsr_nn_import_opts_default(&io);
    tsr_nn_model *a, *b;
    tt_ok(tsr_nn_import_onnx(path, &io, &a, NULL));
    io.no_simplify = 1;
    tt_ok(tsr_nn_import_onnx(path, &io, &b, NULL));
    int squares = 0;
    for (int i = 0; i < a->n_layers; i++) squares += a->layers[i].kind == NN_SQUARE;
    assert_int_equal(squares, 2);
    assert_true(a->n_layers < b->n_layers);
    assert_true(nn_model_depth(a) < nn_model_depth(b));
    tsr_prng g;
    tt_prng(&g, 32);
    int B = 4;
    double x[4 * 784], ya[40], yb[40];
    rnd(&g, x, B * 784, 2.0);
    tt_ok(tsr_nn_model_forward(a, x, B, ya));
    tt_ok(tsr_nn_model_forward(b, x, B, yb));
    double e = tt_rel_err(ya, yb, 40, 1);
    if (e > 1e-12) fail_msg("simplified model differs by %.3g", e);
    remove(path);
    free(path);
    tsr_nn_model_free(a);
    tsr_nn_model_free(b);
    tsr_model_free(tm);
}

/* Hand-built graphs: affine maps into padded convolutions (bias maps), pools into dense. */
static void test_simplify_rules(void **state) {
    (void)state;
    tsr_prng g;
    tt_prng(&g, 33);
    for (int trial = 0; trial < 6; trial++) {
        tsr_nn_model *m;
        tt_ok(nn_model_create(&m, 2, 9, 9));
        double w[2048], b[64], c[64];
        int t;
        nn_layer L;
        /* input -> per-channel affine (not foldable backwards) -> padded conv */
        memset(&L, 0, sizeof L);
        L.kind = NN_POLY;
        snprintf(L.name, sizeof L.name, "affine");
        L.in[0] = 0;
        L.degree = 1;
        L.nc = 2;
        rnd(&g, c, 4, 1.0);
        L.w = c;
        L.w_len = 4;
        tt_ok(nn_model_add(m, &L, (nn_shape){ 2, 9, 9 }, &t));
        memset(&L, 0, sizeof L);
        L.kind = NN_CONV;
        snprintf(L.name, sizeof L.name, "conv");
        L.in[0] = t;
        L.kh = L.kw = 3;
        L.sh = L.sw = 1 + trial % 2;
        L.ph = L.pw = 1;
        rnd(&g, w, 3 * 2 * 9, 0.5);
        rnd(&g, b, 3, 0.2);
        L.w = w;
        L.w_len = 54;
        L.b = b;
        L.b_len = 3;
        int o = nn_out_size(9, 3, L.sh, 1);
        tt_ok(nn_model_add(m, &L, (nn_shape){ 3, o, o }, &t));
        /* per-channel degree-2 activation between conv and a pool + dense */
        memset(&L, 0, sizeof L);
        L.kind = NN_POLY;
        snprintf(L.name, sizeof L.name, "act");
        L.in[0] = t;
        L.degree = 2;
        L.nc = 3;
        L.bound = 4;
        for (int k = 0; k < 3; k++) {
            c[3 * k] = 0.3 * (2 * tsr_prng_double(&g) - 1);
            c[3 * k + 1] = 0.5 + 0.2 * tsr_prng_double(&g);
            c[3 * k + 2] = 0.1 + 0.1 * tsr_prng_double(&g);
        }
        L.w = c;
        L.w_len = 9;
        tt_ok(nn_model_add(m, &L, (nn_shape){ 3, o, o }, &t));
        memset(&L, 0, sizeof L);
        L.kind = NN_AVGPOOL;
        snprintf(L.name, sizeof L.name, "pool");
        L.in[0] = t;
        L.kh = L.kw = 2;
        L.sh = L.sw = 1;
        L.count_pad = 1;
        tt_ok(nn_model_add(m, &L, (nn_shape){ 3, o - 1, o - 1 }, &t));
        memset(&L, 0, sizeof L);
        L.kind = NN_DENSE;
        snprintf(L.name, sizeof L.name, "fc");
        L.in[0] = t;
        int64_t ni = 3 * (o - 1) * (o - 1);
        rnd(&g, w, 4 * ni, 0.3);
        L.w = w;
        L.w_len = 4 * ni;
        tt_ok(nn_model_add(m, &L, (nn_shape){ 4, 1, 1 }, &t));
        tt_ok(nn_model_validate(m));
        tsr_nn_model *s;
        tt_ok(nn_model_clone(m, &s));
        tt_ok(nn_model_simplify(s));
        /* the affine map went into the conv (as a bias map: the conv pads), the
         * activation became a square, and the pool went into the dense layer */
        int kinds[NN_KIND_COUNT_] = { 0 };
        for (int i = 0; i < s->n_layers; i++) kinds[s->layers[i].kind]++;
        assert_int_equal(kinds[NN_POLY], 0);
        assert_int_equal(kinds[NN_AVGPOOL], 0);
        assert_int_equal(kinds[NN_SQUARE], 1);
        assert_int_equal(s->layers[0].kind, NN_CONV);
        assert_int_equal(s->layers[0].b_len, 3 * o * o);
        double x[3 * 162], y0[12], y1[12];
        rnd(&g, x, 3 * 162, 1.5);
        tt_ok(nn_model_forward(m, x, 3, y0));
        tt_ok(nn_model_forward(s, x, 3, y1));
        double e = tt_rel_err(y1, y0, 12, 1);
        if (e > 1e-12) fail_msg("trial %d: simplified model differs by %.3g", trial, e);
        tsr_nn_model_free(s);
        tsr_nn_model_free(m);
    }
}

static void test_pytorch_fixture(void **state) {
    (void)state;
    tsr_nn_model *m;
    char *rep = NULL;
    tt_ok(tsr_nn_import_onnx(tt_source_path("tests/data/nn_torch_poly.onnx"), NULL, &m, &rep));
    tsr_nn_string_free(rep);
    ref_file rf;
    ref_load(&rf, "tests/data/nn_torch_poly.bin");
    const ref_tensor *x = ref_get(&rf, "x"), *y = ref_get(&rf, "logits");
    int B = (int)x->dims[0];
    assert_int_equal(tsr_nn_model_input_size(m) * B, (int64_t)x->n);
    double *xd = malloc(x->n * sizeof *xd), *out = malloc(y->n * sizeof *out),
           *want = malloc(y->n * sizeof *want);
    for (size_t i = 0; i < x->n; i++) xd[i] = x->data[i];
    for (size_t i = 0; i < y->n; i++) want[i] = y->data[i];
    tt_ok(tsr_nn_model_forward(m, xd, B, out));
    double e = tt_rel_err(out, want, y->n, 1);
    if (e > 1e-5) fail_msg("PyTorch fixture: relative error %.3g", e);
    /* batch norm, the pool into the matmul, and the x*x - 0.5x square all simplified */
    int kinds[NN_KIND_COUNT_] = { 0 };
    for (int i = 0; i < m->n_layers; i++) kinds[m->layers[i].kind]++;
    assert_int_equal(kinds[NN_CONV], 2);
    assert_int_equal(kinds[NN_DENSE], 2);
    assert_true(kinds[NN_SQUARE] >= 1);
    free(xd);
    free(out);
    free(want);
    ref_free(&rf);
    tsr_nn_model_free(m);
}

/* The report lists every unsupported node with a hint; nothing crashes. */
static void test_unsupported_report(void **state) {
    (void)state;
    /* a ReLU teacher with max pooling and a softmax head, built by hand */
    tsr_onnx_model *om;
    tt_ok(tsr_onnx_create(&om, 13, 7));
    int64_t in_dims[4] = { -1, 1, 8, 8 };
    const char *dp[4] = { "N", NULL, NULL, NULL };
    tt_ok(tsr_onnx_add_io(om, 0, "input", 4, in_dims, dp));
    float w[2 * 9], b[2] = { 0.1f, -0.1f }, fw[10 * 8], fb[10] = { 0 };
    for (int i = 0; i < 18; i++) w[i] = 0.1f * (float)(i % 5) - 0.2f;
    for (int i = 0; i < 80; i++) fw[i] = 0.01f * (float)(i % 7);
    int64_t wd[4] = { 2, 1, 3, 3 }, bd[1] = { 2 }, fwd[2] = { 10, 8 }, fbd[1] = { 10 };
    tt_ok(tsr_onnx_add_init(om, "c.w", 4, wd, w));
    tt_ok(tsr_onnx_add_init(om, "c.b", 1, bd, b));
    tt_ok(tsr_onnx_add_init(om, "f.w", 2, fwd, fw));
    tt_ok(tsr_onnx_add_init(om, "f.b", 1, fbd, fb));
    const char *ci[3] = { "input", "c.w", "c.b" }, *co[1] = { "c" };
    tt_ok(tsr_onnx_add_node(om, "Conv", "conv", 3, ci, 1, co));
    int64_t k3[2] = { 3, 3 }, p1[4] = { 1, 1, 1, 1 }, k2[2] = { 2, 2 }, s2[2] = { 2, 2 };
    tt_ok(tsr_onnx_add_attr_ints(om, "kernel_shape", k3, 2));
    tt_ok(tsr_onnx_add_attr_ints(om, "pads", p1, 4));
    const char *ri[1] = { "c" }, *ro[1] = { "r" };
    tt_ok(tsr_onnx_add_node(om, "Relu", "relu1", 1, ri, 1, ro));
    const char *mi[1] = { "r" }, *mo[1] = { "p" };
    tt_ok(tsr_onnx_add_node(om, "MaxPool", "maxpool1", 1, mi, 1, mo));
    tt_ok(tsr_onnx_add_attr_ints(om, "kernel_shape", k2, 2));
    tt_ok(tsr_onnx_add_attr_ints(om, "strides", s2, 2));
    /* 2 x 4 x 4 = 32 features into a dense layer of 10 would need 32 inputs;
     * give it a GlobalAveragePool first: 2 features -> pad the weights */
    const char *gi[1] = { "p" }, *go[1] = { "g" };
    tt_ok(tsr_onnx_add_node(om, "GlobalAveragePool", "gap", 1, gi, 1, go));
    const char *fi[1] = { "g" }, *fo[1] = { "flat" };
    tt_ok(tsr_onnx_add_node(om, "Flatten", "flatten", 1, fi, 1, fo));
    float fw2[10 * 2];
    for (int i = 0; i < 20; i++) fw2[i] = 0.05f * (float)(i % 3);
    int64_t fwd2[2] = { 10, 2 };
    tt_ok(tsr_onnx_add_init(om, "f2.w", 2, fwd2, fw2));
    const char *ei[3] = { "flat", "f2.w", "f.b" }, *eo[1] = { "z" };
    tt_ok(tsr_onnx_add_node(om, "Gemm", "fc", 3, ei, 1, eo));
    tt_ok(tsr_onnx_add_attr_int(om, "transB", 1));
    const char *si[1] = { "z" }, *so[1] = { "logits" };
    tt_ok(tsr_onnx_add_node(om, "Softmax", "softmax", 1, si, 1, so));
    int64_t od[2] = { -1, 10 };
    const char *odp[2] = { "N", NULL };
    tt_ok(tsr_onnx_add_io(om, 1, "logits", 2, od, odp));
    char *path = dup_path(".onnx");
    tt_ok(tsr_onnx_save(om, path));
    tsr_onnx_free(om);
    (void)fw;
    (void)fwd;
    tsr_nn_model *m = NULL;
    char *rep = NULL;
    tt_fails(tsr_nn_import_onnx(path, NULL, &m, &rep), TSR_ERR_UNSUPPORTED);
    assert_null(m);
    assert_non_null(rep);
    assert_non_null(strstr(rep, "'relu1' (Relu)"));
    assert_non_null(strstr(rep, "--approx Relu="));
    assert_non_null(strstr(rep, "'maxpool1' (MaxPool)"));
    assert_non_null(strstr(rep, "AveragePool"));
    assert_non_null(strstr(rep, "'softmax' (Softmax)"));
    assert_non_null(strstr(rep, "3 nodes"));
    assert_null(strstr(rep, "'conv'"));
    assert_non_null(strstr(tsr_last_error(), "3 unsupported nodes"));
    tsr_nn_string_free(rep);
    /* --approx-relu replaces the ReLU (lossy) but max and softmax stay unsupported */
    tsr_nn_import_opts io;
    tsr_nn_import_opts_default(&io);
    io.approx_relu_degree = 2;
    io.approx_relu_range = 3;
    rep = NULL;
    tt_fails(tsr_nn_import_onnx(path, &io, &m, &rep), TSR_ERR_UNSUPPORTED);
    assert_null(strstr(rep, "relu1"));
    assert_non_null(strstr(rep, "2 nodes"));
    tsr_nn_string_free(rep);
    remove(path);
    free(path);
    /* the training engine's ReLU model imports with --approx-relu and is flagged lossy */
    tsr_act_spec as;
    tt_ok(tsr_act_parse("relu", &as));
    tsr_model *tm;
    tt_ok(tsr_model_build(&tm, "cryptonets", &as, 3));
    path = dup_path(".onnx");
    tt_ok(tsr_model_save_onnx(tm, NULL, path));
    rep = NULL;
    tt_fails(tsr_nn_import_onnx(path, NULL, &m, &rep), TSR_ERR_UNSUPPORTED);
    assert_non_null(strstr(rep, "(Relu)"));
    tsr_nn_string_free(rep);
    rep = NULL;
    tt_ok(tsr_nn_import_onnx(path, &io, &m, &rep));
    assert_non_null(rep);
    assert_non_null(strstr(rep, "lossy"));
    int lossy = 0;
    for (int i = 0; i < m->n_layers; i++) lossy |= m->layers[i].lossy;
    /* the fitted quadratic may have been rewritten into a square: the flag then sits in
     * the notes; either way the report says so */
    (void)lossy;
    tsr_nn_string_free(rep);
    tsr_nn_model_free(m);
    tsr_model_free(tm);
    remove(path);
    free(path);
}

/* Bad files and arguments give errors, never crashes. */
static void test_import_errors(void **state) {
    (void)state;
    tsr_nn_model *m = NULL;
    tt_fails(tsr_nn_import_onnx("/nonexistent/model.onnx", NULL, &m, NULL), TSR_ERR_NOT_FOUND);
    char *path = dup_path(".onnx");
    FILE *fp = fopen(path, "wb");
    fputs("this is not protobuf at all \x01\x02\x03", fp);
    fclose(fp);
    tsr_status st = tsr_nn_import_onnx(path, NULL, &m, NULL);
    assert_true(st == TSR_ERR_FORMAT || st == TSR_ERR_UNSUPPORTED);
    assert_null(m);
    tsr_nn_import_opts io;
    tsr_nn_import_opts_default(&io);
    io.approx_relu_degree = 9;
    tt_fails(tsr_nn_import_onnx(path, &io, &m, NULL), TSR_ERR_INVALID_ARG);
    remove(path);
    free(path);
}

/* The CKKS chain for a plan meets the security bound and covers its digits. */
static void test_params(void **state) {
    (void)state;
    for (unsigned ln = 13; ln <= 15; ln++)
        for (int L = 2; L <= 10; L++) {
            tsr_ckks_param_spec s;
            tsr_status st = nn_choose_params(ln, L, 10, 0, 0, &s);
            if (st != TSR_OK) {
                /* only deep chains on small rings may be impossible */
                assert_int_equal(st, TSR_ERR_UNSUPPORTED);
                assert_true(ln == 13 && L > 5);
                continue;
            }
            assert_int_equal((int)s.levels, L);
            assert_true(s.scale_bits >= 24 && s.scale_bits <= 40);
            assert_int_equal(s.first_prime_bits, s.scale_bits + 10);
            tsr_ckks_params *p;
            tt_ok(tsr_ckks_params_create(&p, &s));
            assert_true(tsr_ckks_params_is_secure(p));
            tsr_ckks_params_free(p);
        }
    tsr_ckks_param_spec s;
    tt_fails(nn_choose_params(13, 30, 10, 0, 0, &s), TSR_ERR_UNSUPPORTED);
    tt_fails(nn_choose_params(13, 3, 10, 45, 0, &s), TSR_ERR_INVALID_ARG);
}

/*
 * The alternative chains (nn_chain_alternatives) meet the same bound: QP within the 128-bit
 * table and P above the largest digit, recomputed here from the spec's own fields; [0] is
 * nn_choose_params's chain and each alternative has a different number of special primes.
 * Worked by hand for 8 levels at N = 2^14 (bound 438 bits, 10 bits of output headroom):
 * scale 2^39, q0 49: one-prime digits (dnum 9) fit one 50-bit special prime (49 + 8 x 39 +
 * 50 = 411); two-prime digits (88 bits) need two special primes of 45 bits: 451 > 437, so
 * 2^37 (47 + 296 + 2 x 43 = 429, dnum 5); three-prime digits at 2^34 (44 + 68 = 112 bits:
 * 3 x 38; 44 + 272 + 114 = 430, dnum 3; at 2^35 it is 442).
 */
static void test_chain_alternatives(void **state) {
    (void)state;
    for (unsigned ln = 13; ln <= 15; ln++)
        for (int L = 1; L <= 15; L++) {
            tsr_ckks_param_spec c[NN_MAX_CHAINS], want;
            int n = nn_chain_alternatives(ln, L, 10, 0, 0, c);
            if (nn_choose_params(ln, L, 10, 0, 0, &want) != TSR_OK) {
                assert_int_equal(n, 0);
                continue;
            }
            assert_true(n >= 1 && n <= NN_MAX_CHAINS);
            assert_memory_equal(&c[0], &want, sizeof want);
            const double bound = tsr_ckks_security_bound(ln, TSR_CKKS_SECRET_TERNARY, 0);
            for (int i = 0; i < n; i++) {
                const tsr_ckks_param_spec *s = &c[i];
                assert_int_equal((int)s->levels, L);
                assert_int_equal(s->first_prime_bits, s->scale_bits + 10);
                assert_true(s->scale_bits <= c[0].scale_bits);
                double qp = s->first_prime_bits + (double)L * s->scale_bits +
                            (double)s->special_primes * s->special_prime_bits;
                assert_true(qp <= bound);
                unsigned alpha = (L + s->dnum) / s->dnum; /* ceil((L + 1) / dnum) */
                double digit = s->first_prime_bits + (alpha - 1.0) * s->scale_bits;
                assert_true(digit < (double)s->special_primes * s->special_prime_bits);
                assert_true(s->special_prime_bits <= 50);
                tsr_ckks_params *p;
                tt_ok(tsr_ckks_params_create(&p, s));
                assert_true(tsr_ckks_params_is_secure(p));
                tsr_ckks_params_free(p);
                for (int j = 0; j < i; j++)
                    assert_int_not_equal(c[j].special_primes, s->special_primes);
                if (i > 0)
                    assert_true(s->special_primes >= 1 &&
                                s->special_primes <= NN_CHAIN_MAX_SPECIAL);
            }
        }
    tsr_ckks_param_spec c[NN_MAX_CHAINS];
    assert_int_equal(nn_chain_alternatives(14, 8, 10, 0, 0, c), 3);
    const unsigned hand[3][3] = { { 39, 9, 1 }, { 37, 5, 2 }, { 34, 3, 3 } }; /* scale, dnum, k */
    for (int i = 0; i < 3; i++) {
        assert_int_equal(c[i].scale_bits, hand[i][0]);
        assert_int_equal(c[i].dnum, hand[i][1]);
        assert_int_equal(c[i].special_primes, hand[i][2]);
    }
    /* test-only parameters (no bound) keep their one chain, the flag passed through */
    assert_int_equal(nn_chain_alternatives(11, 3, 10, 0, TSR_CKKS_ALLOW_INSECURE_PARAMETERS, c), 1);
    tsr_ckks_param_spec want;
    tt_ok(nn_choose_params(11, 3, 10, 0, TSR_CKKS_ALLOW_INSECURE_PARAMETERS, &want));
    assert_memory_equal(&c[0], &want, sizeof want);
    assert_true(c[0].flags == TSR_CKKS_ALLOW_INSECURE_PARAMETERS);
}

static long max_rss_kib(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_maxrss;
}

/* A 36-byte plan whose header declares a 2 GiB payload is refused from its header: the loader
 * neither allocates nor touches a buffer of the declared size (the peak RSS hardly moves). */
static void test_plan_declared_size(void **state) {
    (void)state;
    uint8_t h[TSR_FRAME_HEADER_SIZE] = { 'T', 'S', 'R', 0x1a, TSR_FRAME_VERSION };
    h[6] = TSR_OBJ_PLAN;
    h[28 + 3] = 0x80; /* payload length 2^31 */
    char *path = dup_path(".plan");
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(h, 1, sizeof h, f), sizeof h);
    fclose(f);
    long before = max_rss_kib();
    tsr_nn_plan *p = NULL;
    tt_fails(tsr_nn_plan_load(&p, path, 0), TSR_ERR_FORMAT);
    assert_null(p);
    assert_non_null(strstr(tsr_last_error(), "only 0 bytes follow its header"));
    long grown = max_rss_kib() - before;
    if (grown > 256 * 1024)
        fail_msg("loading a 36-byte plan raised the peak RSS by %ld KiB", grown);
    remove(path);
    free(path);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_import_engine_models),
        cmocka_unit_test(test_simplify_exact),
        cmocka_unit_test(test_simplify_rules),
        cmocka_unit_test(test_pytorch_fixture),
        cmocka_unit_test(test_unsupported_report),
        cmocka_unit_test(test_import_errors),
        cmocka_unit_test(test_params),
        cmocka_unit_test(test_chain_alternatives),
        cmocka_unit_test(test_plan_declared_size),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
