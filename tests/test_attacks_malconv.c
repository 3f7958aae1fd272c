/*
 * tests/test_attacks_malconv.c - MalConv (attacks/malconv.h) on tiny sizes:
 * the forward pass against a naive reference written here (padding all the
 * way to max_len, truncation), the bytes and embedding paths agreeing, and
 * central-difference checks of every parameter gradient and of the gradient
 * with respect to the embedded input positions.
 */
#include "testutil.h"

#include "attacks/malconv.h"
#include "core/alloc.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static const tsr_malconv_cfg TINY = { 3, 4, 5, 6, 40 }; /* D F K H max_len */

/* The reference: pad to max_len with token 256, every window, plain loops, doubles. */
static double ref_logit(const tsr_malconv *m, const uint8_t *x, size_t len) {
    const tsr_malconv_cfg *c = &m->cfg;
    size_t D = (size_t)c->emb, F = (size_t)c->filters, K = (size_t)c->window, H = (size_t)c->hidden,
           L = c->max_len;
    const float *p = m->params;
    double z[64], h[64];
    assert_true(F <= 64 && H <= 64);
    for (size_t f = 0; f < F; f++) {
        double best = -INFINITY;
        for (size_t t = 0; t < L / K; t++) {
            double a = p[m->off.bc + f], b = p[m->off.bc + F + f];
            for (size_t k = 0; k < K; k++) {
                size_t q = t * K + k, tok = q < len ? x[q] : TSR_MALCONV_PAD;
                for (size_t e = 0; e < D; e++) {
                    double v = p[m->off.E + tok * D + e];
                    a += v * p[m->off.Wc + (f * K + k) * D + e];
                    b += v * p[m->off.Wc + ((F + f) * K + k) * D + e];
                }
            }
            double gval = a / (1 + exp(-b));
            if (gval > best) best = gval;
        }
        z[f] = best;
    }
    double out = p[m->off.b2];
    for (size_t i = 0; i < H; i++) {
        double s = p[m->off.b1 + i];
        for (size_t f = 0; f < F; f++) s += p[m->off.W1 + i * F + f] * z[f];
        h[i] = s > 0 ? s : 0;
        out += p[m->off.W2 + i] * h[i];
    }
    return out;
}

static void test_forward_matches_reference(void **state) {
    (void)state;
    tsr_malconv *m;
    tsr_malconv_ws *ws;
    tt_ok(tsr_malconv_create(&m, &TINY, 7));
    tt_ok(tsr_malconv_ws_create(&ws, m));
    tsr_prng g;
    tt_prng(&g, 1);
    uint8_t x[64];
    tsr_prng_bytes(&g, x, sizeof x);
    /* lengths: empty, inside a window, window edges, full, truncated */
    size_t lens[] = { 0, 1, 4, 5, 17, 35, 39, 40, 64 };
    for (size_t i = 0; i < sizeof lens / sizeof lens[0]; i++) {
        float logit;
        tt_ok(tsr_malconv_forward_bytes(m, ws, x, lens[i], &logit));
        double want = ref_logit(m, x, lens[i] < 40 ? lens[i] : 40);
        if (fabs(logit - want) > 1e-5 * (1 + fabs(want)))
            fail_msg("len %zu: logit %.7f, reference %.7f", lens[i], logit, want);
    }
    /* The embedding path on E's rows gives the same logit bit for bit. */
    float Z[40 * 3], lb, le;
    for (size_t q = 0; q < 23; q++)
        memcpy(Z + q * 3, m->params + m->off.E + (size_t)x[q] * 3, 3 * sizeof(float));
    tt_ok(tsr_malconv_forward_bytes(m, ws, x, 23, &lb));
    tt_ok(tsr_malconv_forward_emb(m, ws, Z, 23, &le));
    assert_true(lb == le);
    /* Bad sizes are refused. */
    tsr_malconv *bad;
    tsr_malconv_cfg c = TINY;
    c.max_len = 41;
    tt_fails(tsr_malconv_create(&bad, &c, 1), TSR_ERR_INVALID_ARG);
    c = TINY;
    c.filters = 0;
    tt_fails(tsr_malconv_create(&bad, &c, 1), TSR_ERR_INVALID_ARG);
    tsr_malconv_ws_free(ws);
    tsr_malconv_free(m);
}

/* Central differences in float: step 1e-2 on values of order 1, kinks of max/ReLU avoided by
 * the fixed seed (the test reports the index if one is hit). */
static void check_close(const char *what, size_t i, double num, double ana) {
    if (fabs(num - ana) > 3e-3 + 3e-2 * fabs(ana))
        fail_msg("%s %zu: numerical %.6f, analytic %.6f", what, i, num, ana);
}

static void test_gradients(void **state) {
    (void)state;
    tsr_malconv *m;
    tsr_malconv_ws *ws;
    tt_ok(tsr_malconv_create(&m, &TINY, 11));
    tt_ok(tsr_malconv_ws_create(&ws, m));
    tsr_prng g;
    tt_prng(&g, 2);
    uint8_t x[17];
    tsr_prng_bytes(&g, x, sizeof x);
    x[3] = x[9]; /* a repeated token: its embedding row gets two contributions */
    float *grad = calloc(m->nparams, sizeof(float));
    assert_non_null(grad);
    float logit;
    tt_ok(tsr_malconv_forward_bytes(m, ws, x, sizeof x, &logit));
    tsr_malconv_backward(m, ws, 1.0f, grad, NULL);
    const float h = 1e-2f;
    size_t nonzero = 0;
    for (size_t i = 0; i < m->nparams; i++) {
        float keep = m->params[i], lp, lm;
        m->params[i] = keep + h;
        tt_ok(tsr_malconv_forward_bytes(m, ws, x, sizeof x, &lp));
        m->params[i] = keep - h;
        tt_ok(tsr_malconv_forward_bytes(m, ws, x, sizeof x, &lm));
        m->params[i] = keep;
        check_close("parameter", i, ((double)lp - lm) / (2 * h), grad[i]);
        nonzero += i >= m->off.Wc && grad[i] != 0;
    }
    assert_true(nonzero > (m->nparams - m->off.Wc) / 2); /* the check saw real gradients */
    /* Padding row and a used token got gradient; an unused token none. */
    int used[256] = { 0 };
    for (size_t q = 0; q < sizeof x; q++) used[x[q]] = 1;
    int unused = 0;
    while (used[unused]) unused++;
    for (int e = 0; e < 3; e++) assert_true(grad[m->off.E + (size_t)unused * 3 + e] == 0);

    /* Gradient with respect to the embedded input (the attack's variable), with a scale. */
    size_t n = 23;
    float Z[23 * 3], dZ[23 * 3] = { 0 };
    for (size_t i = 0; i < n * 3; i++) Z[i] = (float)tsr_prng_normal(&g);
    tt_ok(tsr_malconv_forward_emb(m, ws, Z, n, &logit));
    tsr_malconv_backward(m, ws, -2.0f, NULL, dZ);
    size_t nz = 0;
    for (size_t i = 0; i < n * 3; i++) {
        float keep = Z[i], lp, lm;
        Z[i] = keep + h;
        tt_ok(tsr_malconv_forward_emb(m, ws, Z, n, &lp));
        Z[i] = keep - h;
        tt_ok(tsr_malconv_forward_emb(m, ws, Z, n, &lm));
        Z[i] = keep;
        check_close("input", i, -2.0 * ((double)lp - lm) / (2 * h), dZ[i]);
        nz += dZ[i] != 0;
    }
    assert_true(nz >= 3);
    free(grad);
    tsr_malconv_ws_free(ws);
    tsr_malconv_free(m);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_forward_matches_reference),
        cmocka_unit_test(test_gradients),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
