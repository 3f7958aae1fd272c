/*
 * tests/test_nn_simplify_square.c - rule 3 of nn/simplify.c (a degree-2
 * activation between linear layers becomes a square) on near-linear
 * activations: a shift |b / 2a| of several times the input bound is still
 * rewritten when its cost in bits (2 log2(1 + |s| / B)) is within the
 * budget, the rewritten model equals the original in real arithmetic, and
 * encrypted (CKKS, small insecure test ring, and the debug backend beside
 * an exact mockup) it is as precise as the unrewritten one; a shift past the
 * budget stays a polynomial with a note saying why; the rules plans were
 * written with before (NN_SIMPLIFY_V1, |s| <= 4 B) still apply to them. The activation of the
 * fifth round's r5n128L autoencoder (docs/PRUNING.md) was such a case.
 */
#include "nn_act.h"
#include "nn_check.h"

#include "core/io.h"
#include "ckks/serialize.h"
#include "nn/nn_internal.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NIN  TT_ACT_NIN
#define NHID TT_ACT_NHID
#define NOUT TT_ACT_NOUT

/* m compiled (batch packing, N = 2^11, insecure test ring) and run on n inputs x on the
 * debug backend (CKKS beside an exact mockup): its precision in bits against the
 * plaintext reference of `ref_model`. */
static double encrypted_bits(const tsr_nn_model *m, const tsr_nn_model *ref_model, const double *x,
                             int n) {
    tsr_nn_compile_opts o;
    tt_nn_compile_opts(&o, n, TSR_NN_PACK_BATCH, 11);
    tsr_nn_plan *p;
    tt_ok(tsr_nn_compile(m, &o, &p));
    assert_int_equal(p->prog->depth, nn_model_depth(m));
    double out[64 * NOUT], ref[64 * NOUT];
    tt_ok(nn_model_forward(ref_model, x, n, ref));
    tt_nn_debug d;
    tt_nn_debug_create(p, &d);
    double bits = tt_nn_run_bits(p, d.debug, x, n, out, ref);
    tt_nn_debug_free(&d);
    tsr_nn_plan_free(p);
    return bits;
}

/*
 * A near-linear activation (a = 0.01, b = 0.5: shift 25 = 6.25 x the default bound 4,
 * 5.7 bits; the old rule refused beyond 4 x the bound): rewritten as a square, one level
 * less, the same function, and encrypted about as precise as the polynomial.
 */
static void test_large_shift_square(void **state) {
    (void)state;
    tsr_prng g;
    tt_prng(&g, 71);
    const double coef[3] = { 0.1, 0.5, 0.01 };
    tsr_nn_model *poly = tt_nn_act_model(&g, coef, 1), *sq;
    tt_ok(nn_model_clone(poly, &sq));
    tt_ok(nn_model_simplify(sq));
    assert_int_equal(tt_nn_count_kind(sq, NN_SQUARE), 1);
    assert_int_equal(tt_nn_count_kind(sq, NN_POLY), 0);
    assert_int_equal(nn_model_depth(sq), nn_model_depth(poly) - 1);
    /* the rules of plans written before the budget (format 6, flags 1) keep it a polynomial */
    tsr_nn_model *v1;
    tt_ok(nn_model_clone(poly, &v1));
    tt_ok(nn_model_simplify_rules(v1, NN_SIMPLIFY_V1));
    assert_int_equal(tt_nn_count_kind(v1, NN_SQUARE), 0);
    assert_true(nn_model_same(v1, poly));
    tsr_nn_model_free(v1);
    if (!strstr(sq->notes, "rewritten as a square") || !strstr(sq->notes, "costs 5.7 bits"))
        fail_msg("notes: %s", sq->notes);
    enum { n = 16 };
    double x[n * NIN], ya[n * NOUT], yb[n * NOUT];
    /* inputs reaching the activation's bound: fc1's outputs up to about +-4 */
    tt_uniform(&g, x, n * NIN, 2.0);
    tt_ok(nn_model_forward(poly, x, n, ya));
    tt_ok(nn_model_forward(sq, x, n, yb));
    double e = tt_rel_err(yb, ya, n * NOUT, 1);
    if (e > 1e-12) fail_msg("the square differs from the polynomial by %.3g", e);
    double b_poly = encrypted_bits(poly, poly, x, n), b_sq = encrypted_bits(sq, poly, x, n);
    print_message("near-linear activation encrypted: polynomial %.1f bits, square %.1f bits\n",
                  b_poly, b_sq);
    if (b_sq < 16) fail_msg("the square is only %.1f bits precise", b_sq);
    /* Measured over 25 runs (the encryption noise differs each run): the square's bits minus
     * the polynomial's range from -1.2 to +0.7, mean -0.2; 1.0 bit of slack failed one run in
     * ten. 3 bits keeps it a precision check (a wrong fold fails the 1e-12 plaintext check
     * above, a badly scaled one loses far more than 3 bits) without flaking. */
    if (b_sq < b_poly - 3.0)
        fail_msg("the square (%.1f bits) loses precision against the polynomial (%.1f bits)", b_sq,
                 b_poly);
    tsr_nn_model_free(sq);
    tsr_nn_model_free(poly);
}

/*
 * Past the budget (a = 6.25e-4, b = 0.5: shift 400 = 100 x the bound, 13.3 bits; a = 0:
 * linear) the activation stays a polynomial under NN_SIMPLIFY_V2 and the note says why; per
 * channel, one near-linear channel keeps the whole layer a polynomial and is named. (The
 * current rules, NN_SIMPLIFY_V3, make them products x (x + d): test_nn_simplify_sqmul.c.)
 */
static void test_shift_past_budget(void **state) {
    (void)state;
    tsr_prng g;
    tt_prng(&g, 72);
    const double far[3] = { 0.1, 0.5, 6.25e-4 }, lin[3] = { 0.1, 0.5, 0.0 };
    const double *cases[2] = { far, lin };
    for (int k = 0; k < 2; k++) {
        tsr_nn_model *m = tt_nn_act_model(&g, cases[k], 1), *s;
        tt_ok(nn_model_clone(m, &s));
        tt_ok(nn_model_simplify_rules(s, NN_SIMPLIFY_V2));
        assert_int_equal(tt_nn_count_kind(s, NN_SQUARE), 0);
        assert_int_equal(tt_nn_count_kind(s, NN_POLY), 1);
        if (!strstr(s->notes, "act kept as a degree-2 polynomial")) fail_msg("notes: %s", s->notes);
        if (k == 0 && !strstr(s->notes, "13.3 bits > 10")) fail_msg("notes: %s", s->notes);
        assert_true(nn_model_same(m, s));
        tsr_nn_model_free(s);
        tsr_nn_model_free(m);
    }
    double coef[3 * NHID];
    for (int c = 0; c < NHID; c++) {
        coef[3 * c] = 0.1;
        coef[3 * c + 1] = 0.5;
        coef[3 * c + 2] = c == 5 ? 6.25e-4 : 0.05 + 0.01 * c;
    }
    tsr_nn_model *m = tt_nn_act_model(&g, coef, NHID);
    tt_ok(nn_model_simplify_rules(m, NN_SIMPLIFY_V2));
    assert_int_equal(tt_nn_count_kind(m, NN_SQUARE), 0);
    if (!strstr(m->notes, "act channel 5 kept")) fail_msg("notes: %s", m->notes);
    tsr_nn_model_free(m);
}

/*
 * The edge of the budget (B = 4, b = 256 x 2a x s): |s| = 31 B (124) costs 2 log2 32 = 10.0
 * bits and is rewritten; encrypted, the square stays within 7 bits of the polynomial (the
 * budget's 10 bits less a margin: measured losses at 31 B are 3.7-4.4 bits and vary with the
 * encryption noise, so a 5-bit line would be too close; a wrong fold loses nearly everything). |s|
 * = 32 B (128, 10.1 bits) stays a polynomial. With TSR_SQUARE_SWEEP set, the encrypted precision is
 * also printed for shifts of 1 to 31 B (docs/PRUNING.md, sixth round).
 */
static double edge_case(tsr_prng *g, double s_over_b, int encrypt, int *squares) {
    const double a = 1.0 / 256, coef[3] = { 0.1, 2 * a * 4 * s_over_b, a };
    tsr_nn_model *poly = tt_nn_act_model(g, coef, 1), *sq;
    tt_ok(nn_model_clone(poly, &sq));
    tt_ok(nn_model_simplify_rules(sq, NN_SIMPLIFY_V2));
    *squares = tt_nn_count_kind(sq, NN_SQUARE);
    if (!*squares && !strstr(sq->notes, "10.1 bits > 10")) fail_msg("notes: %s", sq->notes);
    double loss = 0;
    if (encrypt && *squares) {
        enum { n = 16 };
        double x[n * NIN];
        tt_uniform(g, x, n * NIN, 2.0);
        double b_poly = encrypted_bits(poly, poly, x, n), b_sq = encrypted_bits(sq, poly, x, n);
        print_message("shift %4.1f B (cost %4.1f bits): polynomial %.1f bits, square %.1f bits\n",
                      s_over_b, 2 * log2(1 + s_over_b), b_poly, b_sq);
        if (b_sq < b_poly - 7.0)
            fail_msg("at %.1f B the square (%.1f bits) loses more than 7 bits against the "
                     "polynomial (%.1f bits)",
                     s_over_b, b_sq, b_poly);
        loss = b_poly - b_sq;
    }
    tsr_nn_model_free(sq);
    tsr_nn_model_free(poly);
    return loss;
}

static void test_budget_edge(void **state) {
    (void)state;
    tsr_prng g;
    tt_prng(&g, 74);
    int squares;
    edge_case(&g, 31.0, 1, &squares);
    assert_int_equal(squares, 1);
    edge_case(&g, 32.0, 0, &squares);
    assert_int_equal(squares, 0);
    if (getenv("TSR_SQUARE_SWEEP")) {
        const double sweep[] = { 1, 2, 4, 8, 16, 24 };
        for (size_t i = 0; i < sizeof sweep / sizeof *sweep; i++) {
            edge_case(&g, sweep[i], 1, &squares);
            assert_int_equal(squares, 1);
        }
    }
}

/* The flags word of a written format-6 plan (tests/test_nn_plan6.c: version, spec with
 * flags, security, preprocessing, source hash, source name, notes, then the flags). */
static uint32_t written_flags(const uint8_t *buf) {
    uint32_t v;
    memcpy(&v, buf + TSR_FRAME_HEADER_SIZE, 4);
    assert_int_equal(v, 6);
    memcpy(&v, buf + TSR_FRAME_HEADER_SIZE + 4 + CKKS_SPEC_BYTES(1) + 4 + 24 + 32 + 256 + 512, 4);
    return v;
}

/*
 * Through a file: the 6.25 B activation of test_large_shift_square imported from a graph and
 * simplified with the rules of plans written before the budget (NN_SIMPLIFY_V1) is written
 * in format 6 with flags 1 and reads back (same id) still a polynomial; with NN_SIMPLIFY_V2
 * with flags 3, read back a square (the current rules, V3, flags 7: test_nn_simplify_sqmul.c).
 */
static void test_plan_file_rules(void **state) {
    (void)state;
    tsr_prng g;
    tt_prng(&g, 73);
    const double coef[3] = { 0.1, 0.5, 0.01 };
    tsr_graph *gr = tt_nn_act_graph(&g, coef);
    for (int v = 1; v <= 2; v++) {
        tsr_nn_import_opts io;
        tsr_nn_import_opts_default(&io);
        io.no_simplify = 1;
        tsr_nn_model *m;
        tt_ok(tsr_nn_model_from_graph(gr, &io, &m, NULL));
        tt_ok(nn_model_simplify_rules(m, v));
        m->simplified = v;
        assert_int_equal(m->simplified, v == 1 ? NN_SIMPLIFY_V1 : NN_SIMPLIFY_V2);
        assert_int_equal(tt_nn_count_kind(m, NN_SQUARE), v == 2);
        assert_int_equal(tt_nn_count_kind(m, NN_POLY), v == 1);
        tsr_nn_compile_opts o;
        tsr_nn_compile_opts_default(&o);
        o.batch = 4;
        o.packing = TSR_NN_PACK_BATCH;
        o.log_n = 11;
        o.ckks_flags = TSR_CKKS_ALLOW_INSECURE_PARAMETERS;
        tsr_nn_plan *p, *q;
        tt_ok(tsr_nn_compile(m, &o, &p));
        uint8_t *buf;
        size_t len;
        tt_ok(tsr_nn_plan_to_bytes(p, &buf, &len));
        assert_int_equal(written_flags(buf), v == 1 ? 1u : 3u);
        tsr_nn_bytes_free(buf);
        const char *f = tt_temp_path(".plan");
        tt_ok(tsr_nn_plan_save(p, f));
        tt_ok(tsr_nn_plan_load(&q, f, TSR_CKKS_ALLOW_INSECURE_PARAMETERS));
        remove(f);
        uint8_t id_p[32], id_q[32];
        tsr_nn_plan_id(p, id_p);
        tsr_nn_plan_id(q, id_q);
        assert_memory_equal(id_p, id_q, 32);
        assert_int_equal(q->model->simplified, m->simplified);
        assert_int_equal(tt_nn_count_kind(q->model, NN_SQUARE), v == 2);
        assert_int_equal(tt_nn_count_kind(q->model, NN_POLY), v == 1);
        assert_int_equal(q->prog->depth, p->prog->depth);
        tsr_nn_plan_free(q);
        tsr_nn_plan_free(p);
        tsr_nn_model_free(m);
    }
    tsr_graph_free(gr);
}

/* Layer `name` of m. */
static const nn_layer *layer_named(const tsr_nn_model *m, const char *name) {
    for (int i = 0; i < m->n_layers; i++)
        if (strcmp(m->layers[i].name, name) == 0) return &m->layers[i];
    fail_msg("no layer %s", name);
    return NULL;
}

/*
 * The origins rule 3 writes (they enter plan digests through format 5's layers, so they must
 * not change): the square's shift and scale, the product form's two scales, each "... of act"
 * after what the layer held; an origin too full for another " + " part still gets the name,
 * truncated, without the words.
 */
static void test_rewrite_origins(void **state) {
    (void)state;
    tsr_prng g;
    tt_prng(&g, 74);
    const double square[3] = { 0.1, 0.5, 0.01 }, product[3] = { 0.1, 0.4, 1e-4 };
    const char *want[2][3] = { { "shift of act", "a(x+s)^2+c", "scale of act" },
                               { "scale of act", "(a/k^2)u(u+d)+c", "scale of act" } };
    const char *names[3] = { "fc1", "act", "fc2" };
    for (int form = 0; form < 2; form++) {
        tsr_nn_model *m = tt_nn_act_model(&g, form ? product : square, 1);
        snprintf(m->layers[2].origin, sizeof m->layers[2].origin, "Gemm_7");
        tt_ok(nn_model_simplify(m));
        assert_int_equal(tt_nn_count_kind(m, form ? NN_SQMUL : NN_SQUARE), 1);
        for (int k = 0; k < 3; k++) {
            char w[NN_ORIGIN_MAX];
            snprintf(w, sizeof w, "%s%s", k == 2 ? "Gemm_7 + " : "", want[form][k]);
            assert_string_equal(layer_named(m, names[k])->origin, w);
        }
        tsr_nn_model_free(m);
    }
    tsr_nn_model *m = tt_nn_act_model(&g, square, 1);
    char full[NN_ORIGIN_MAX];
    memset(full, 'o', NN_ORIGIN_MAX - 3);
    full[NN_ORIGIN_MAX - 3] = '\0'; /* 157 characters: no room for " + " and more */
    memcpy(m->layers[0].origin, full, sizeof full);
    tt_ok(nn_model_simplify(m));
    char w[NN_ORIGIN_MAX]; /* the name truncated to the origin's size: "o...oac" */
    memcpy(w, full, NN_ORIGIN_MAX - 3);
    memcpy(w + NN_ORIGIN_MAX - 3, "ac", 3);
    assert_string_equal(layer_named(m, "fc1")->origin, w);
    tsr_nn_model_free(m);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_large_shift_square), //
        cmocka_unit_test(test_shift_past_budget),  //
        cmocka_unit_test(test_budget_edge),        //
        cmocka_unit_test(test_plan_file_rules),    //
        cmocka_unit_test(test_rewrite_origins),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
