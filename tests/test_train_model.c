/*
 * tests/test_train_model.c - the model runner: whole-model gradients against
 * finite differences (every layer kind, residual fan-out, odd batch sizes so
 * slices and chunks are uneven), one vs several threads, determinism of
 * training, clone / flat vectors, batch-norm folding, the built-in
 * architectures and builder errors.
 */
#include "testutil.h"

#include "tessera.h"
#include "train/data.h"
#include "train/loss.h"
#include "train/model.h"
#include "train/train.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/*
 * A small model touching every smooth layer kind:
 * input (2, 6, 6) -> conv 3x3 (3) -> BN -> poly2 per channel -> avgpool 2
 *   -> [conv 3x3 (4) -> BN -> gelu] + [conv 1x1 (4)] -> poly3 -> gap
 *   -> dense 6 -> dropout -> poly2 -> dense 3
 * plus a second head reading the avgpool output through flatten (fan-out).
 */
static tsr_model *smooth_model(uint64_t seed) {
    tsr_model *m;
    int t, a, b, c;
    tt_ok(tsr_model_create(&m, 2, 6, 6));
    tsr_act_spec p2, p3, ge;
    tsr_act_default(&p2, TSR_ACT_POLY, 2);
    p2.per_channel = 1;
    p2.bound = 3;
    tsr_act_default(&p3, TSR_ACT_POLY, 3);
    p3.bound = 2;
    p3.fit = TSR_POLY_FIT_CHEB;
    tsr_act_default(&ge, TSR_ACT_GELU, 0);
    tt_ok(tsr_model_add_conv(m, &t, "c1", 0, 3, 3, 3, 1, 1, 1, 1, 1));
    tt_ok(tsr_model_add_batchnorm(m, &t, "bn1", t, 1e-5f, 0.1f));
    tt_ok(tsr_model_add_act(m, &t, "p1", t, &p2));
    tt_ok(tsr_model_add_pool(m, &t, "pool", TSR_LAYER_AVGPOOL, t, 2, 2, 2, 2, 0, 0));
    int pooled = t;
    tt_ok(tsr_model_add_conv(m, &a, "c2", pooled, 4, 3, 3, 1, 1, 1, 1, 0));
    tt_ok(tsr_model_add_batchnorm(m, &a, "bn2", a, 1e-5f, 0.1f));
    tt_ok(tsr_model_add_act(m, &a, "g2", a, &ge));
    tt_ok(tsr_model_add_conv(m, &b, "skip", pooled, 4, 1, 1, 1, 1, 0, 0, 1));
    tt_ok(tsr_model_add_residual(m, &t, "add", a, b));
    tt_ok(tsr_model_add_act(m, &t, "p3", t, &p3));
    tt_ok(tsr_model_add_gap(m, &t, "gap", t));
    tt_ok(tsr_model_add_flatten(m, &c, "flat", pooled)); /* (27) second reader of pooled */
    tt_ok(tsr_model_add_dense(m, &c, "side", c, 4, 1));
    tt_ok(tsr_model_add_residual(m, &t, "join", t, c));
    tt_ok(tsr_model_add_dense(m, &t, "fc1", t, 6, 1));
    tt_ok(tsr_model_add_dropout(m, &t, "drop", t, 0.25f));
    tt_ok(tsr_model_add_act(m, &t, "p4", t, &p2));
    tt_ok(tsr_model_add_dense(m, &t, "fc2", t, 3, 1));
    tt_ok(tsr_model_finish(m, t));
    tt_ok(tsr_model_init(m, seed));
    return m;
}

/* Same topology with the non-smooth layers: relu and max pooling. */
static tsr_model *relu_model(uint64_t seed) {
    tsr_model *m;
    int t;
    tt_ok(tsr_model_create(&m, 1, 8, 8));
    tsr_act_spec re;
    tsr_act_default(&re, TSR_ACT_RELU, 0);
    tt_ok(tsr_model_add_conv(m, &t, "c1", 0, 4, 3, 3, 2, 2, 1, 1, 1));
    tt_ok(tsr_model_add_batchnorm(m, &t, "bn1", t, 1e-5f, 0.1f));
    tt_ok(tsr_model_add_act(m, &t, "r1", t, &re));
    tt_ok(tsr_model_add_pool(m, &t, "mp", TSR_LAYER_MAXPOOL, t, 2, 2, 1, 1, 0, 0));
    tt_ok(tsr_model_add_flatten(m, &t, "flat", t));
    tt_ok(tsr_model_add_dense(m, &t, "fc", t, 5, 1));
    tt_ok(tsr_model_finish(m, t));
    tt_ok(tsr_model_init(m, seed));
    return m;
}

static float *rand_input(tsr_prng *g, size_t n) {
    float *x = malloc(n * sizeof *x);
    for (size_t i = 0; i < n; i++) x[i] = (float)tsr_prng_normal(g);
    return x;
}

/* loss of a training-mode forward with a fixed dropout stream */
static double model_loss(tsr_model *m, const float *x, const int32_t *y, int B, float *dlogits) {
    tsr_model_seed(m, 77);
    tt_ok(tsr_model_forward(m, x, B));
    double l =
        tsr_loss_softmax_ce(dlogits, tsr_model_output(m), y, B, (int)tsr_model_output_size(m));
    return l + m->range_weight * m->range_loss;
}

static void check_model_grads(tsr_model *m, int B, double tol) {
    tsr_prng g;
    tt_prng(&g, 201);
    size_t in = tsr_shape_numel(m->tensors[0].shape);
    float *x = rand_input(&g, (size_t)B * in);
    int32_t y[16];
    int K = (int)tsr_model_output_size(m);
    for (int i = 0; i < B; i++) y[i] = (int32_t)tsr_prng_uniform(&g, (uint64_t)K);
    float *dl = malloc((size_t)B * K * sizeof *dl);
    tsr_model_set_training(m, 1);
    m->input_grad = 1;
    model_loss(m, x, y, B, dl);
    tsr_model_zero_grad(m);
    tt_ok(tsr_model_backward(m, dl, B));
    size_t np = tsr_model_num_params(m);
    float *an = malloc(np * sizeof *an);
    memcpy(an, tsr_model_grads(m), np * sizeof *an);
    float *dx = malloc((size_t)B * in * sizeof *dx);
    memcpy(dx, tsr_model_tensor_grad(m, 0), (size_t)B * in * sizeof *dx);
    float *p = tsr_model_params(m);
    double worst = 0, scale = 1e-2;
    for (size_t i = 0; i < np; i++) scale = fmax(scale, fabs(an[i]));
    for (size_t i = 0; i < np; i++) {
        float keep = p[i], h = 2e-3f * fmaxf(1.0f, fabsf(keep));
        p[i] = keep + h;
        double lp = model_loss(m, x, y, B, NULL);
        p[i] = keep - h;
        double lm = model_loss(m, x, y, B, NULL);
        p[i] = keep;
        double num = (lp - lm) / (2.0 * h), e = fabs(num - an[i]) / scale;
        if (e > worst) worst = e;
        if (e > tol) {
            int blk = 0;
            while (blk + 1 < m->n_blocks && m->blocks[blk + 1].off <= i) blk++;
            fail_msg("parameter %zu (%s): analytic %g numeric %g (err %.3g)", i,
                     m->blocks[blk].name, (double)an[i], num, e);
        }
    }
    /* input gradient too (input_grad) */
    double xs = 1e-2;
    for (size_t i = 0; i < (size_t)B * in; i++) xs = fmax(xs, fabs(dx[i]));
    for (size_t i = 0; i < (size_t)B * in; i += 7) {
        float keep = x[i], h = 2e-3f;
        x[i] = keep + h;
        double lp = model_loss(m, x, y, B, NULL);
        x[i] = keep - h;
        double lm = model_loss(m, x, y, B, NULL);
        x[i] = keep;
        double num = (lp - lm) / (2.0 * h);
        if (fabs(num - dx[i]) / xs > tol)
            fail_msg("input %zu: analytic %g numeric %g", i, (double)dx[i], num);
    }
    free(x), free(dl), free(an), free(dx);
}

static void test_model_gradients(void **state) {
    (void)state;
    int threads = tsr_get_num_threads();
    for (int T = 1; T <= 2; T++) {
        tsr_set_num_threads(T);
        for (int B = 1; B <= 5; B += 2) {
            tsr_model *m = smooth_model(5);
            check_model_grads(m, B == 1 ? 2 : B, 2e-3); /* BN needs >1 sample */
            m->range_weight = 0.5f; /* with the range loss: bounds small enough to bite */
            for (int i = 0; i < m->n_layers; i++)
                if (m->layers[i].kind == TSR_LAYER_POLY) m->layers[i].bound = 0.3f;
            check_model_grads(m, B == 1 ? 2 : B, 2e-3);
            assert_true(m->range_loss > 0);
            tsr_model_free(m);
        }
    }
    tsr_set_num_threads(threads);
}

/* Per-thread slicing/chunking must not change results beyond rounding. */
static void test_threads_agree(void **state) {
    (void)state;
    int threads = tsr_get_num_threads();
    tsr_prng g;
    tt_prng(&g, 202);
    const int B = 37;
    for (int which = 0; which < 2; which++) {
        float *out[2], *grads[2];
        size_t in = 0, np = 0, no = 0;
        float *x = NULL;
        int32_t y[37];
        for (int T = 1; T <= 2; T++) {
            tsr_set_num_threads(T);
            tsr_model *m = which ? relu_model(9) : smooth_model(9);
            in = tsr_shape_numel(m->tensors[0].shape);
            no = tsr_model_output_size(m);
            if (!x) {
                x = rand_input(&g, (size_t)B * in);
                for (int i = 0; i < B; i++) y[i] = (int32_t)tsr_prng_uniform(&g, no);
            }
            tsr_model_set_training(m, 1);
            float *dl = malloc((size_t)B * no * sizeof *dl);
            model_loss(m, x, y, B, dl);
            tsr_model_zero_grad(m);
            tt_ok(tsr_model_backward(m, dl, B));
            np = tsr_model_num_params(m);
            out[T - 1] = malloc((size_t)B * no * sizeof(float));
            grads[T - 1] = malloc(np * sizeof(float));
            memcpy(out[T - 1], tsr_model_output(m), (size_t)B * no * sizeof(float));
            memcpy(grads[T - 1], tsr_model_grads(m), np * sizeof(float));
            free(dl);
            tsr_model_free(m);
        }
        for (size_t i = 0; i < (size_t)B * no; i++)
            assert_float_equal(out[0][i], out[1][i], 1e-4 * (1 + fabs(out[0][i])));
        double gs = 0;
        for (size_t i = 0; i < np; i++) gs = fmax(gs, fabs(grads[0][i]));
        for (size_t i = 0; i < np; i++) assert_float_equal(grads[0][i], grads[1][i], 1e-4 * gs);
        free(out[0]), free(out[1]), free(grads[0]), free(grads[1]), free(x);
    }
    tsr_set_num_threads(threads);
}

/* Synthetic 8x8 two-class data: bright top half vs bright bottom half, plus noise. */
static void make_blobs(tsr_dataset *ds, int n, uint64_t dom) {
    tsr_prng g;
    tt_prng(&g, dom);
    float *x = malloc((size_t)n * 64 * sizeof *x);
    int32_t *y = malloc((size_t)n * sizeof *y);
    for (int i = 0; i < n; i++) {
        y[i] = (int32_t)tsr_prng_uniform(&g, 5);
        for (int p = 0; p < 64; p++) {
            int region = (p / 8) * 5 / 8; /* rows split in 5 bands, one per class */
            x[(size_t)i * 64 + p] = (float)((region == y[i] ? 1.5 : 0) + 0.7 * tsr_prng_normal(&g));
        }
    }
    tt_ok(tsr_dataset_from_arrays(ds, x, y, n, 1, 8, 8, 5));
    free(x), free(y);
}

static void train_once(float *params_out, size_t *np, int T) {
    tsr_set_num_threads(T);
    tsr_dataset ds;
    make_blobs(&ds, 300, 7);
    tsr_model *m = relu_model(3);
    tsr_train_config cfg;
    tsr_train_config_default(&cfg);
    cfg.epochs = 2;
    cfg.batch = 32;
    cfg.seed = 11;
    cfg.aug.crop_pad = 1;
    cfg.aug.flip = 1;
    tt_ok(tsr_train_run(m, &cfg, &ds, NULL, NULL));
    *np = tsr_model_num_params(m);
    tsr_model_get_params(m, params_out);
    tsr_model_free(m);
    tsr_dataset_free(&ds);
}

static void test_determinism(void **state) {
    (void)state;
    int threads = tsr_get_num_threads();
    float a[4096], b[4096];
    size_t na, nb;
    for (int T = 1; T <= 2; T++) {
        train_once(a, &na, T);
        train_once(b, &nb, T);
        assert_int_equal(na, nb);
        assert_memory_equal(a, b, na * sizeof(float)); /* bit for bit */
    }
    tsr_set_num_threads(threads);
}

/* Training on separable synthetic data must learn it (the loop works end to end). */
static void test_training_learns(void **state) {
    (void)state;
    tsr_dataset tr, te;
    make_blobs(&tr, 400, 8);
    make_blobs(&te, 200, 9);
    tsr_act_spec acts[3];
    tsr_act_default(&acts[0], TSR_ACT_RELU, 0);
    tsr_act_default(&acts[1], TSR_ACT_POLY, 2);
    tsr_act_default(&acts[2], TSR_ACT_GELU, 0);
    for (int k = 0; k < 3; k++) {
        tsr_model *m;
        int t;
        tt_ok(tsr_model_create(&m, 1, 8, 8));
        tt_ok(tsr_model_add_conv(m, &t, "c", 0, 4, 3, 3, 1, 1, 1, 1, 0));
        tt_ok(tsr_model_add_batchnorm(m, &t, "bn", t, 1e-5f, 0.1f));
        tt_ok(tsr_model_add_act(m, &t, "a", t, &acts[k]));
        tt_ok(tsr_model_add_pool(m, &t, "p", TSR_LAYER_AVGPOOL, t, 2, 2, 2, 2, 0, 0));
        tt_ok(tsr_model_add_flatten(m, &t, "f", t));
        tt_ok(tsr_model_add_dense(m, &t, "fc", t, 5, 1));
        tt_ok(tsr_model_finish(m, t));
        tt_ok(tsr_model_init(m, 1));
        double loss0, acc;
        tt_ok(tsr_evaluate(m, &te, 64, &loss0, &acc));
        tsr_train_config cfg;
        tsr_train_config_default(&cfg);
        cfg.epochs = 8;
        cfg.batch = 32;
        cfg.lr = 3e-3f;
        tsr_train_result res;
        tt_ok(tsr_train_run(m, &cfg, &tr, &te, &res));
        if (!(res.last.test_acc > 0.9) || !(res.last.test_loss < 0.5 * loss0))
            fail_msg("activation %d: test accuracy %.3f, loss %.3f (from %.3f)", k,
                     res.last.test_acc, res.last.test_loss, loss0);
        tsr_model_free(m);
    }
    tsr_dataset_free(&tr);
    tsr_dataset_free(&te);
}

static void test_flat_vectors_and_clone(void **state) {
    (void)state;
    tsr_model *m = smooth_model(4), *c;
    size_t np = tsr_model_num_params(m), ns = tsr_model_num_state(m);
    assert_true(np > 100);
    assert_int_equal(ns, 2 * (3 + 4));
    /* blocks tile the parameter vector exactly, in order */
    size_t off = 0;
    for (int i = 0; i < m->n_blocks; i++) {
        assert_int_equal(m->blocks[i].off, off);
        off += m->blocks[i].len;
    }
    assert_int_equal(off, np);
    float *p = malloc(np * sizeof *p), *s = malloc(ns * sizeof *s);
    tsr_model_get_params(m, p);
    tsr_model_get_state(m, s);
    tt_ok(tsr_model_clone(&c, m));
    tsr_prng g;
    tt_prng(&g, 203);
    float *x = rand_input(&g, 4 * 72);
    tt_ok(tsr_model_forward(m, x, 4));
    tt_ok(tsr_model_forward(c, x, 4));
    assert_memory_equal(tsr_model_output(m), tsr_model_output(c), 4 * 3 * sizeof(float));
    /* changing the clone leaves the original alone; set_params copies back */
    for (size_t i = 0; i < np; i++) p[i] += 0.01f;
    tsr_model_set_params(c, p);
    tt_ok(tsr_model_forward(c, x, 4));
    assert_true(memcmp(tsr_model_output(m), tsr_model_output(c), 12 * sizeof(float)) != 0);
    tsr_model_get_params(m, p);
    tsr_model_set_params(c, p);
    tsr_model_set_state(c, s);
    tt_ok(tsr_model_forward(c, x, 4));
    assert_memory_equal(tsr_model_output(m), tsr_model_output(c), 4 * 3 * sizeof(float));
    assert_int_equal(tsr_model_find_layer(m, "bn2"), 5);
    assert_int_equal(tsr_model_find_layer(m, "nope"), -1);
    /* backward accumulates */
    tsr_model_set_training(m, 1);
    int32_t y[4] = { 0, 1, 2, 0 };
    float dl[12];
    model_loss(m, x, y, 4, dl);
    tsr_model_zero_grad(m);
    tt_ok(tsr_model_backward(m, dl, 4));
    float *g1 = malloc(np * sizeof *g1);
    memcpy(g1, tsr_model_grads(m), np * sizeof *g1);
    tt_ok(tsr_model_backward(m, dl, 4));
    for (size_t i = 0; i < np; i++) assert_float_equal(tsr_model_grads(m)[i], 2 * g1[i], 1e-6);
    /* the one-call gradient equals forward + CE + zero_grad + backward */
    double l1;
    int corr;
    tsr_model_seed(m, 77); /* the same dropout masks as model_loss */
    tt_ok(tsr_model_compute_grad(m, x, y, 4, &l1, &corr));
    assert_true(corr >= 0 && corr <= 4);
    for (size_t i = 0; i < np; i++) assert_float_equal(tsr_model_grads(m)[i], g1[i], 1e-6);
    int32_t bad[4] = { 0, 1, 3, 0 };
    tt_fails(tsr_model_compute_grad(m, x, bad, 4, NULL, NULL), TSR_ERR_INVALID_ARG);
    /* backward without a training forward is refused */
    tsr_model_set_training(m, 0);
    tt_fails(tsr_model_backward(m, dl, 4), TSR_ERR_INVALID_ARG);
    free(p), free(s), free(x), free(g1);
    tsr_model_free(m);
    tsr_model_free(c);
    tsr_model_free(NULL);
}

static void test_fold_bn(void **state) {
    (void)state;
    tsr_model *m;
    int t;
    tt_ok(tsr_model_create(&m, 2, 5, 5));
    tt_ok(tsr_model_add_conv(m, &t, "c", 0, 3, 3, 3, 1, 1, 1, 1, 1));
    tt_ok(tsr_model_add_batchnorm(m, &t, "bn", t, 1e-3f, 0.1f));
    tt_ok(tsr_model_add_flatten(m, &t, "f", t));
    tt_ok(tsr_model_add_dense(m, &t, "d", t, 4, 0));
    tt_ok(tsr_model_add_batchnorm(m, &t, "bn2", t, 1e-3f, 0.1f));
    tt_ok(tsr_model_finish(m, t));
    tt_ok(tsr_model_init(m, 2));
    tsr_prng g;
    tt_prng(&g, 204);
    /* non-trivial statistics and affine parameters */
    for (size_t i = 0; i < m->n_state; i++) m->state[i] = (float)(0.5 + tsr_prng_double(&g));
    for (int l = 0; l < m->n_layers; l++)
        if (m->layers[l].kind == TSR_LAYER_BATCHNORM)
            for (size_t k = 0; k < m->layers[l].p_len[0]; k++) {
                m->params[m->layers[l].p_off[0] + k] = (float)tsr_prng_normal(&g);
                m->params[m->layers[l].p_off[1] + k] = (float)tsr_prng_normal(&g);
            }
    float *x = rand_input(&g, 3 * 50);
    tt_ok(tsr_model_forward(m, x, 3));
    float want[12];
    memcpy(want, tsr_model_output(m), sizeof want);
    /* fold each BN into its producer; make the BN an identity */
    int pairs[2][2] = { { 0, 1 }, { 3, 4 } };
    for (int k = 0; k < 2; k++) {
        tsr_layer *L = &m->layers[pairs[k][0]], *N = &m->layers[pairs[k][1]];
        int OC = (int)N->p_len[0];
        float *w = malloc(L->p_len[0] * sizeof *w), b[8];
        tsr_model_fold_bn(m, pairs[k][0], pairs[k][1], w, b);
        memcpy(m->params + L->p_off[0], w, L->p_len[0] * sizeof *w);
        if (L->p_len[1]) memcpy(m->params + L->p_off[1], b, OC * sizeof *b);
        for (int c = 0; c < OC; c++) {
            m->params[N->p_off[0] + c] = 1;
            m->params[N->p_off[1] + c] = L->p_len[1] ? 0 : b[c]; /* dense d has no bias */
            m->state[N->s_off + c] = 0;
            m->state[N->s_off + OC + c] = 1 - N->eps;
        }
        free(w);
    }
    tt_ok(tsr_model_forward(m, x, 3));
    for (int i = 0; i < 12; i++)
        assert_float_equal(tsr_model_output(m)[i], want[i], 1e-4 * (1 + fabs(want[i])));
    free(x);
    tsr_model_free(m);
}

static void test_architectures(void **state) {
    (void)state;
    tsr_prng g;
    tt_prng(&g, 205);
    float *x = rand_input(&g, 3 * 784);
    const char *const *names = tsr_model_arch_names();
    int n = 0;
    for (; names[n]; n++) {
        for (int a = 0; a < 3; a++) {
            tsr_act_spec act;
            tt_ok(tsr_act_parse(a == 0 ? "relu" : a == 1 ? "poly2" : "poly3", &act));
            tsr_model *m;
            tt_ok(tsr_model_build(&m, names[n], &act, 1));
            assert_int_equal(tsr_model_output_size(m), 10);
            tsr_model_set_training(m, 1);
            tt_ok(tsr_model_forward(m, x, 3));
            for (int i = 0; i < 30; i++) assert_true(isfinite(tsr_model_output(m)[i]));
            int has_poly = 0, has_relu = 0;
            for (int i = 0; i < m->n_layers; i++) {
                has_poly |= m->layers[i].kind == TSR_LAYER_POLY;
                has_relu |= m->layers[i].kind == TSR_LAYER_RELU;
                assert_true(m->layers[i].kind != TSR_LAYER_MAXPOOL);
            }
            assert_int_equal(has_poly, a != 0);
            assert_int_equal(has_relu, a == 0);
            tsr_model_free(m);
        }
    }
    assert_true(n >= 5);
    tsr_act_spec act;
    tt_ok(tsr_act_parse("relu", &act));
    tsr_model *m;
    tt_fails(tsr_model_build(&m, "vgg", &act, 1), TSR_ERR_NOT_FOUND);
    assert_null(m);
    tt_fails(tsr_act_parse("poly0", &act), TSR_ERR_INVALID_ARG);
    tt_fails(tsr_act_parse("poly9", &act), TSR_ERR_INVALID_ARG);
    tt_fails(tsr_act_parse("tanh", &act), TSR_ERR_INVALID_ARG);
    free(x);
}

static void test_builder_errors(void **state) {
    (void)state;
    tsr_model *m;
    int t;
    tt_fails(tsr_model_create(&m, 0, 28, 28), TSR_ERR_SHAPE);
    tt_ok(tsr_model_create(&m, 1, 8, 8));
    tt_fails(tsr_model_add_dense(m, &t, "d", 0, 10, 1), TSR_ERR_SHAPE); /* needs flatten */
    tt_fails(tsr_model_add_conv(m, &t, "c", 0, 4, 9, 9, 1, 1, 0, 0, 1), TSR_ERR_SHAPE);
    tt_fails(tsr_model_add_conv(m, &t, "c", 5, 4, 3, 3, 1, 1, 0, 0, 1), TSR_ERR_INVALID_ARG);
    tt_ok(tsr_model_add_conv(m, &t, "c", 0, 4, 3, 3, 1, 1, 0, 0, 1));
    tt_fails(tsr_model_add_conv(m, &t, "c", 0, 4, 3, 3, 1, 1, 0, 0, 1), TSR_ERR_INVALID_ARG);
    int f;
    tt_ok(tsr_model_add_flatten(m, &f, "f", t));
    tt_fails(tsr_model_add_residual(m, &t, "add", t, f), TSR_ERR_SHAPE);
    tt_fails(tsr_model_add_dropout(m, &t, "drop", f, 1.0f), TSR_ERR_INVALID_ARG);
    tt_fails(tsr_model_add_batchnorm(m, &t, "bn", f, 0.0f, 0.1f), TSR_ERR_INVALID_ARG);
    tsr_act_spec bad;
    tsr_act_default(&bad, TSR_ACT_POLY, 12);
    tt_fails(tsr_model_add_act(m, &t, "p", f, &bad), TSR_ERR_INVALID_ARG);
    /* failed adds leave the model usable and the parameter count unchanged */
    size_t np = m->n_params;
    tt_ok(tsr_model_add_dense(m, &t, "d", f, 3, 1));
    assert_int_equal(m->n_params, np + 3 * 144 + 3);
    tt_fails(tsr_model_finish(m, 0), TSR_ERR_INVALID_ARG);
    tt_ok(tsr_model_finish(m, t));
    tt_fails(tsr_model_add_flatten(m, &t, "late", t), TSR_ERR_INVALID_ARG);
    float x[64] = { 0 };
    tt_fails(tsr_model_forward(m, x, 0), TSR_ERR_INVALID_ARG);
    tsr_model_free(m);
}

/* Range tracking records min/max and out-of-range counts of activation inputs. */
static void test_range_tracking(void **state) {
    (void)state;
    tsr_model *m;
    int t;
    tt_ok(tsr_model_create(&m, 4, 1, 1));
    tsr_act_spec p;
    tsr_act_default(&p, TSR_ACT_POLY, 2);
    p.bound = 1.0f;
    tt_ok(tsr_model_add_act(m, &t, "p", 0, &p));
    tt_ok(tsr_model_finish(m, t));
    tt_ok(tsr_model_init(m, 1));
    float x[8] = { -3, 0.5f, 0.25f, 2, 0, 0, 1, -1 };
    tsr_model_track_ranges(m, 1, 1);
    tt_ok(tsr_model_forward(m, x, 2));
    const tsr_layer *L = &m->layers[0];
    assert_float_equal(L->seen_min, -3, 0);
    assert_float_equal(L->seen_max, 2, 0);
    assert_int_equal(L->seen_count, 8);
    assert_int_equal(L->seen_outside, 2);
    /* least-squares ReLU fit on [-1, 1]: 3/32 + x/2 + 15x²/32 */
    assert_float_equal(tsr_model_output(m)[1], 3.0 / 32 + 0.25 + 15.0 / 128, 1e-6);
    /* range loss value: mean relu(|x| - 1)² = (4 + 1) / 8 */
    tsr_model_set_training(m, 1);
    m->range_weight = 1;
    tt_ok(tsr_model_forward(m, x, 2));
    assert_float_equal(m->range_loss, 5.0 / 8, 1e-6);
    tsr_model_free(m);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_model_gradients),
        cmocka_unit_test(test_threads_agree),
        cmocka_unit_test(test_determinism),
        cmocka_unit_test(test_training_learns),
        cmocka_unit_test(test_flat_vectors_and_clone),
        cmocka_unit_test(test_fold_bn),
        cmocka_unit_test(test_architectures),
        cmocka_unit_test(test_builder_errors),
        cmocka_unit_test(test_range_tracking),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
