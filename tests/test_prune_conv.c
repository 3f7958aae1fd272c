/*
 * tests/test_prune_conv.c - tile pruning of convolutions per kernel offset
 * (tsr_prune_opts.offset_tiles): the compiler encodes one plaintext per
 * filter tile *and* kernel offset and skips the all-zero ones
 * (src/tile/conv.c), so that is the pruning unit. Checked here against the
 * compiler's own dry run (nn_program_build on a shape-only mockup, what
 * `tessera compile` counts): the ciphertext-plaintext products a pruned CNN
 * saves are exactly the pruned (tile, offset) units times the products per
 * unit, and the report's plaintexts are the compiler's (also for magnitude
 * pruning with whole-kernel tiles); the pruned units are the smallest ones,
 * recomputed here from the weights; the permutation with per-offset
 * features keeps the function and gathers filters that share kernel
 * offsets into the same tiles; a stride-2 convolution pruned per offset
 * computes the dense model with the masks applied, and the compiler skips
 * its pruned units.
 */
#include "graphgen.h"

#include "core/error.h"
#include "nn/program.h"
#include "tessera.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* x(N,2,4s,4s) -> Conv K1 (8,2,3,3) + b, pad 1, stride s -> square -> Conv K2 (4,8,3,3),
 * pad 1 -> Flatten -> Gemm F (3 x 64). k1 / k2 (may be NULL: random) give the filters. */
static tsr_graph *cnn_stride(tsr_prng *g, const tsr_array *k1, const tsr_array *k2, int s) {
    tsr_graph *gr;
    tt_ok(tsr_graph_create(&gr));
    tt_ok(tsr_graph_add_input(gr, "x", 4, (int64_t[]){ -1, 2, 4 * s, 4 * s }));
    tsr_array *a;
    if (k1) {
        tt_ok(tsr_array_clone(&a, k1));
        tt_graph_const(gr, "K1", a);
    } else {
        tt_graph_const(gr, "K1", tt_rand_array(4, (int64_t[]){ 8, 2, 3, 3 }, g, 0.5));
    }
    tt_graph_const(gr, "kb1", tt_rand_array(1, (int64_t[]){ 8 }, g, 0.5));
    if (k2) {
        tt_ok(tsr_array_clone(&a, k2));
        tt_graph_const(gr, "K2", a);
    } else {
        tt_graph_const(gr, "K2", tt_rand_array(4, (int64_t[]){ 4, 8, 3, 3 }, g, 0.5));
    }
    tt_graph_const(gr, "F", tt_rand_array(2, (int64_t[]){ 3, 64 }, g, 0.5));
    tsr_graph_attrs a1;
    tsr_graph_attrs_default(&a1);
    for (int i = 0; i < 4; i++) a1.pads[i] = 1;
    a1.strides[0] = a1.strides[1] = s;
    tt_graph_node(gr, TSR_NODE_CONV, 3, (const char *[]){ "x", "K1", "kb1" }, "c1", &a1);
    tt_graph_node(gr, TSR_NODE_SQUARE, 1, (const char *[]){ "c1" }, "c2", NULL);
    a1.strides[0] = a1.strides[1] = 1;
    tt_graph_node(gr, TSR_NODE_CONV, 2, (const char *[]){ "c2", "K2" }, "c3", &a1);
    tsr_graph_attrs_default(&a1);
    a1.axis = 1;
    tt_graph_node(gr, TSR_NODE_FLATTEN, 1, (const char *[]){ "c3" }, "c4", &a1);
    tsr_graph_attrs_default(&a1);
    a1.trans_b = 1;
    tt_graph_node(gr, TSR_NODE_GEMM, 2, (const char *[]){ "c4", "F" }, "y", &a1);
    tt_ok(tsr_graph_add_output(gr, "y"));
    tt_ok(tsr_graph_finalize(gr));
    return gr;
}

static tsr_graph *cnn(tsr_prng *g, const tsr_array *k1, const tsr_array *k2) {
    return cnn_stride(g, k1, k2, 1);
}

/*
 * The compiler's products of the two convolutions for the plan [2, 4, 4, 4, 1] orientation 0
 * (128 slots): the input's 2 channels in D0, so the first convolution's filter tile is 4
 * filters (D3) x 2 channels and the second's 2 filters (D0) x 4 channels; one spatial tile
 * (2 x 2 input tiles for the stride-2 model's 8 x 8 images, one after its first convolution).
 */
static void conv_products(const tsr_graph *gr, uint64_t prod[2]) {
    tsr_nn_model *m;
    tt_ok(tsr_nn_model_from_graph(gr, NULL, &m, NULL));
    tsr_mockup_params mp;
    tsr_mockup_params_default(&mp, 128, 8);
    mp.track_values = 0;
    mp.rotations = TSR_ROTATIONS_COLLECT;
    tsr_backend *be;
    tt_ok(tsr_backend_mockup_create(&mp, &be));
    nn_config c = {
        .packing = TSR_NN_PACK_TILED, .slots = 128, .t = { 2, 4, 4, 4, 1 }, .orient = 0, .batch = 1
    };
    nn_program *p;
    tt_ok(nn_program_build(m, &c, be, &p));
    int k = 0;
    for (int i = 0; i < p->n_steps; i++) {
        if (p->steps[i].op != NN_OP_CONV) continue;
        assert_true(k < 2);
        prod[k++] = p->steps[i].counts.mul_plain;
    }
    assert_int_equal(k, 2);
    nn_program_free(p);
    tsr_backend_free(be);
    tsr_nn_model_free(m);
}

/* Squared norms of the (R x C tile, kernel offset) units of a (F, C, 3, 3) filter array:
 * unit ((f / R) * ceil(C / Ct) + c / Ct) * 9 + j. Returns the unit count. */
static int64_t unit_norms(const tsr_array *w, int64_t R, int64_t C, double *n) {
    int64_t F = w->dims[0], Ch = w->dims[1], bc = (Ch + C - 1) / C;
    int64_t nu = ((F + R - 1) / R) * bc * 9;
    memset(n, 0, (size_t)nu * sizeof *n);
    for (int64_t f = 0; f < F; f++)
        for (int64_t c = 0; c < Ch; c++)
            for (int64_t j = 0; j < 9; j++) {
                double x = w->data[(f * Ch + c) * 9 + j];
                n[((f / R) * bc + c / C) * 9 + j] += x * x;
            }
    return nu;
}

static int64_t count_zero(const double *n, int64_t nu) {
    int64_t z = 0;
    for (int64_t i = 0; i < nu; i++) z += n[i] == 0.0;
    return z;
}

static void offset_opts(tsr_prune_opts *o) {
    tsr_prune_opts_default(o);
    o->tile_rows = 4; /* first convolution: 4 filters x 2 channels; the second 2 x 4 */
    o->tile_cols = 2;
    o->tile_y = o->tile_x = 4;
    o->offset_tiles = 1;
}

/* The two convolutions' weights and their tiles under offset_opts: K1 (8, 2, 3, 3) in 2 x 1
 * tiles of 4 filters x 2 channels, K2 (4, 8, 3, 3) in 2 x 2 tiles of 2 filters x 4 channels;
 * 9 kernel offsets each. */
static const char *const conv_names[2] = { "K1", "K2" };
static const int64_t conv_R[2] = { 4, 2 }, conv_C[2] = { 2, 4 };

/*
 * The per-layer promises of tile pruning per kernel offset (offset_opts, TSR_PRUNE_TILE, layer
 * sparsities s) of the dense CNN into pruned, recomputed from the weights: the dense model has
 * no zero unit; round(s * units) units are zeroed, the smallest ones, and some tile keeps part
 * of its offsets (finer than whole tiles); the report counts the same units and plaintexts;
 * and the compiler's dry run saves exactly the pruned units' products.
 */
static void check_offset_units(const tsr_graph *dense, const tsr_graph *pruned,
                               const tsr_prune_report *r, const double s[2]) {
    uint64_t prod_dense[2], prod_pruned[2];
    conv_products(dense, prod_dense);
    conv_products(pruned, prod_pruned);
    for (int l = 0; l < 2; l++) {
        double before[64], after[64];
        int64_t nu =
            unit_norms(tsr_graph_const(dense, conv_names[l]), conv_R[l], conv_C[l], before);
        assert_int_equal(
            unit_norms(tsr_graph_const(pruned, conv_names[l]), conv_R[l], conv_C[l], after), nu);
        assert_int_equal(nu, l == 0 ? 2 * 1 * 9 : 2 * 2 * 9);
        int64_t z = count_zero(after, nu), want = (int64_t)llround(s[l] * (double)nu);
        assert_int_equal(z, want);
        assert_int_equal(count_zero(before, nu), 0);
        /* The zeroed units are the smallest: every kept unit is at least every pruned one. */
        double max_pruned = 0, min_kept = INFINITY;
        for (int64_t u = 0; u < nu; u++) {
            if (after[u] == 0.0)
                max_pruned = fmax(max_pruned, before[u]);
            else
                min_kept = fmin(min_kept, before[u]);
        }
        assert_true(max_pruned <= min_kept);
        /* Finer than whole tiles: some tile keeps part of its offsets. */
        int partial = 0;
        for (int64_t t = 0; t < nu / 9; t++) {
            int64_t zt = count_zero(after + t * 9, 9);
            partial |= zt > 0 && zt < 9;
        }
        assert_true(partial);
        /* The report counts the same units and plaintexts. */
        assert_int_equal(r->layers[l].tiles, nu);
        assert_int_equal(r->layers[l].tiles_nz_after, nu - z);
        assert_int_equal(r->layers[l].plain_before, nu);
        assert_int_equal(r->layers[l].plain_after, nu - z);
        assert_true(r->layers[l].offsets);
        /* The compiler: the same products per unit for every unit, and exactly the pruned
         * units' products gone. */
        assert_true(prod_dense[l] > 0);
        assert_int_equal(prod_dense[l] % (uint64_t)nu, 0);
        uint64_t per = prod_dense[l] / (uint64_t)nu;
        assert_int_equal(prod_dense[l] - prod_pruned[l], (uint64_t)z * per);
    }
}

static void test_offset_units_compiled(void **state) {
    (void)state;
    tsr_prng g;
    tt_prng(&g, 1601);
    tsr_graph *gr = cnn(&g, NULL, NULL);

    tsr_prune_opts o;
    offset_opts(&o);
    o.method = TSR_PRUNE_TILE;
    o.layer_sparsity = (const double[]){ 0.5, 0.75, 0.0 };
    o.n_layer_sparsity = 3;
    tsr_graph *p;
    tsr_prune_report *r;
    tt_ok(tsr_prune_graph(gr, &o, &p, &r));
    check_offset_units(gr, p, r, (const double[]){ 0.5, 0.75 });
    /* The printed report says its tile columns count units. */
    {
        FILE *f = tmpfile();
        assert_non_null(f);
        tsr_prune_report_print(r, f);
        rewind(f);
        char line[256];
        assert_non_null(fgets(line, sizeof line, f));
        assert_non_null(strstr(line, "units kept"));
        fclose(f);
    }
    tsr_prune_report_free(r);
    tsr_graph_free(p);

    /* Magnitude pruning with whole-kernel tiles: the report's plaintexts are still the
     * compiler's (nonzero tile-offset pairs), not nonzero tiles x 9. */
    tsr_prune_opts_default(&o);
    o.tile_rows = 4;
    o.tile_cols = 2;
    o.tile_y = o.tile_x = 4;
    o.method = TSR_PRUNE_MAGNITUDE;
    o.layer_sparsity = (const double[]){ 0.8, 0.8, 0.0 };
    o.n_layer_sparsity = 3;
    tt_ok(tsr_prune_graph(gr, &o, &p, &r));
    uint64_t dense[2], pruned[2];
    conv_products(gr, dense);
    conv_products(p, pruned);
    for (int l = 0; l < 2; l++) {
        double after[64];
        int64_t nu = unit_norms(tsr_graph_const(p, conv_names[l]), conv_R[l], conv_C[l], after);
        int64_t nz = nu - count_zero(after, nu);
        uint64_t per = dense[l] / (uint64_t)nu;
        assert_int_equal(r->layers[l].plain_after, nz);
        assert_int_equal(pruned[l], (uint64_t)nz * per);
        assert_true(r->layers[l].plain_after < r->layers[l].tiles_nz_after * 9);
        assert_false(r->layers[l].offsets);
    }
    {
        FILE *f = tmpfile();
        assert_non_null(f);
        tsr_prune_report_print(r, f);
        rewind(f);
        char line[256];
        assert_non_null(fgets(line, sizeof line, f));
        assert_non_null(strstr(line, "tiles kept"));
        fclose(f);
    }
    tsr_prune_report_free(r);
    tsr_graph_free(p);
    tsr_graph_free(gr);
}

/* Largest |difference| of the outputs of two graphs on the same random batch of hw x hw
 * images. */
static double max_diff_hw(const tsr_graph *a, const tsr_graph *b, tsr_prng *g, int64_t hw) {
    return tt_graph_max_diff(a, b, g, 4, (int64_t[]){ 3, 2, hw, hw });
}

static double max_diff(const tsr_graph *a, const tsr_graph *b, tsr_prng *g) {
    return max_diff_hw(a, b, g, 4);
}

static void test_offset_permute_function(void **state) {
    (void)state;
    tsr_prng g;
    tt_prng(&g, 1602);
    tsr_graph *gr = cnn(&g, NULL, NULL);
    tsr_prune_opts o;
    offset_opts(&o);
    o.method = TSR_PRUNE_NONE;
    o.permute = 1;
    o.expand = 1.5;
    o.sparsity = 0.6;
    tsr_graph *p;
    tsr_prune_report *r;
    tt_ok(tsr_prune_graph(gr, &o, &p, &r));
    assert_int_equal(r->n_hidden, 2); /* conv1 -> conv2, conv2 -> dense through the flatten */
    assert_int_equal(r->n_permuted, 2);
    assert_true(r->mass_in_tiles >= r->mass_before);
    assert_int_equal(r->layers[0].rows, 12); /* 8 -> 12 filters (tile rows of 4) */
    assert_int_equal(r->layers[0].tiles, 3 * 1 * 9);
    double d = max_diff(gr, p, &g);
    if (d > 1e-12) fail_msg("permuted, widened CNN differs by %g", d);
    tsr_prune_report_free(r);
    tsr_graph_free(p);
    tsr_graph_free(gr);
}

/*
 * K1 (8 filters x 2 channels, tiles of 4 filters): filter f is nonzero only at kernel offset
 * f % 2 (offsets 0 and 1), so each of the two tiles holds weights at both offsets: 4 nonzero
 * (tile, offset) units. K2 is constant, so the second layer's features do not tell the
 * filters apart. Grouping the filters by offset parity empties half of the units: the
 * permutation with per-offset features finds it (2 units left); with whole-kernel tiles it
 * has nothing to gain (2 tiles stay).
 */
static void test_offset_permute_gathers(void **state) {
    (void)state;
    tsr_prng g;
    tt_prng(&g, 1603);
    tsr_array *k1, *k2;
    tt_ok(tsr_array_create(&k1, 4, (int64_t[]){ 8, 2, 3, 3 }));
    tt_ok(tsr_array_create(&k2, 4, (int64_t[]){ 4, 8, 3, 3 }));
    for (int64_t f = 0; f < 8; f++)
        for (int64_t c = 0; c < 2; c++) k1->data[(f * 2 + c) * 9 + f % 2] = 0.5 + 0.1 * (double)f;
    for (size_t i = 0; i < k2->numel; i++) k2->data[i] = 0.25;
    tsr_graph *gr = cnn(&g, k1, k2);
    for (int offsets = 0; offsets <= 1; offsets++) {
        tsr_prune_opts o;
        offset_opts(&o);
        o.offset_tiles = offsets;
        o.method = TSR_PRUNE_NONE;
        o.permute = 1;
        o.sparsity = 0.5;
        tsr_graph *p;
        tsr_prune_report *r;
        tt_ok(tsr_prune_graph(gr, &o, &p, &r));
        assert_int_equal(r->layers[0].tiles_nz_before, offsets ? 4 : 2);
        assert_int_equal(r->layers[0].tiles_nz_after, 2);
        assert_int_equal(r->layers[0].plain_before, 4);
        assert_int_equal(r->layers[0].plain_after, offsets ? 2 : 4);
        double after[64];
        int64_t nu = unit_norms(tsr_graph_const(p, "K1"), 4, 2, after);
        assert_int_equal(nu - count_zero(after, nu), offsets ? 2 : 4);
        double d = max_diff(gr, p, &g);
        if (d > 1e-12) fail_msg("permuted CNN differs by %g", d);
        tsr_prune_report_free(r);
        tsr_graph_free(p);
    }
    tsr_graph_free(gr);
    tsr_array_free(k1);
    tsr_array_free(k2);
}

/* Fine-tuning hook of the stride-2 test: no training; after each step, *ctx = the step, the
 * dense graph with the run's masks applied, and the masks of K1 and K2. No cmocka asserts
 * here (a failure would longjmp through tsr_prune_graph): a failure is returned, and the test
 * asserts on tsr_prune_graph's status. */
typedef struct masked_ctx {
    const tsr_graph *dense;
    tsr_graph *masked;
    int calls, last_step;
    uint8_t m1[8 * 2 * 9], m2[4 * 8 * 9];
} masked_ctx;

static tsr_status keep_masked(void *ctx, int step, const tsr_prune_masks *masks,
                              tsr_graph **model) {
    (void)model;
    masked_ctx *c = ctx;
    c->calls++;
    c->last_step = step;
    tsr_graph_free(c->masked);
    c->masked = NULL;
    if (tsr_prune_masks_get(masks, "K1", c->m1, sizeof c->m1) != 1 ||
        tsr_prune_masks_get(masks, "K2", c->m2, sizeof c->m2) != 1)
        return tsr_fail(TSR_ERR_INTERNAL, "test: no mask of %zu weights for K1 or of %zu for K2",
                        sizeof c->m1, sizeof c->m2);
    return tsr_prune_masks_apply(masks, c->dense, &c->masked);
}

/*
 * Stride 2 (8 x 8 images, the first convolution's output 4 x 4): pruning per kernel offset
 * keeps every promise it keeps without a stride (check_offset_units: the smallest units, as
 * many as the sparsity says, finer than whole tiles, the report's counts and plaintexts, and
 * the compiler, whose strided convolution reads other input tiles per offset, saving exactly
 * the pruned units' products); the final masks are unions of units and are the pruned
 * weights; and the pruned model computes what the dense model computes with the masks applied.
 */
static void test_offset_stride2(void **state) {
    (void)state;
    tsr_prng g;
    tt_prng(&g, 1604);
    tsr_graph *gr = cnn_stride(&g, NULL, NULL, 2);

    masked_ctx mc = { .dense = gr };
    tsr_prune_opts o;
    offset_opts(&o);
    o.method = TSR_PRUNE_TILE;
    o.layer_sparsity = (const double[]){ 0.5, 0.75, 0.0 };
    o.n_layer_sparsity = 3;
    o.steps = 2;
    o.finetune = keep_masked;
    o.finetune_ctx = &mc;
    tsr_graph *p;
    tsr_prune_report *r;
    tt_ok(tsr_prune_graph(gr, &o, &p, &r));
    /* One hook call per step, the last after the last step: m1 / m2 are the final masks. */
    assert_int_equal(mc.calls, o.steps);
    assert_int_equal(mc.last_step, o.steps);
    assert_non_null(mc.masked);

    check_offset_units(gr, p, r, (const double[]){ 0.5, 0.75 });

    const uint8_t *masks[2] = { mc.m1, mc.m2 };
    for (int l = 0; l < 2; l++) {
        const tsr_array *w0 = tsr_graph_const(gr, conv_names[l]);
        const tsr_array *w1 = tsr_graph_const(p, conv_names[l]);
        const int64_t R = conv_R[l], C = conv_C[l];
        double after[64];
        int64_t nu = unit_norms(w1, R, C, after), z = count_zero(after, nu);
        /* The mask is the pruned weights: zero where it says, the dense weight elsewhere; and
         * it covers whole units (a unit is masked in every weight or in none). */
        int64_t Ch = w0->dims[1], bc = (Ch + C - 1) / C;
        int64_t masked_in[64] = { 0 };
        for (size_t i = 0; i < w0->numel; i++) {
            int64_t f = (int64_t)i / (Ch * 9), c = ((int64_t)i / 9) % Ch, j = (int64_t)i % 9;
            int64_t u = ((f / R) * bc + c / C) * 9 + j;
            masked_in[u] += masks[l][i];
            assert_true(w1->data[i] == (masks[l][i] ? 0.0 : w0->data[i]));
        }
        int64_t per_unit = R * C, units_masked = 0;
        for (int64_t u = 0; u < nu; u++) {
            assert_true(masked_in[u] == 0 || masked_in[u] == per_unit);
            units_masked += masked_in[u] == per_unit;
            assert_int_equal(masked_in[u] == per_unit, after[u] == 0.0);
        }
        assert_int_equal(units_masked, z);
    }
    double d = max_diff_hw(p, mc.masked, &g, 8);
    if (d > 1e-12) fail_msg("stride-2 CNN pruned per offset differs from its masks by %g", d);
    /* ... and is not the dense model (the check above can fail). */
    assert_true(max_diff_hw(p, gr, &g, 8) > 1e-6);
    tsr_prune_report_free(r);
    tsr_graph_free(p);
    tsr_graph_free(mc.masked);
    tsr_graph_free(gr);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_offset_units_compiled),
        cmocka_unit_test(test_offset_permute_function),
        cmocka_unit_test(test_offset_permute_gathers),
        cmocka_unit_test(test_offset_stride2),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
