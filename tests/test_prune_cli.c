/*
 * tests/test_prune_cli.c - `tessera prune`: --help, usage errors and bad
 * input files (exit 2, no crash), --stats, a pruned model that reads back
 * with the tiles the report promised, and a permuted model that computes
 * what the original does.
 */
#include "clitest.h"

#include "onnx/onnx_graph.h"
#include "tessera.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* x(N,16) -> Gemm(24x16, b) -> square -> Gemm(24 -> 10): saved as ONNX; with transposed, the
 * output is transposed to (10, N) (not batch-first, the same size). */
static void write_model_t(const char *path, int transposed) {
    tsr_prng g;
    tt_prng(&g, 1410);
    tsr_graph *gr;
    tt_ok(tsr_graph_create(&gr));
    tt_ok(tsr_graph_add_input(gr, "x", 2, (int64_t[]){ -1, 16 }));
    const int64_t dims[3][2] = { { 24, 16 }, { 24, 1 }, { 10, 24 } };
    const char *names[3] = { "W1", "b1", "W2" };
    for (int i = 0; i < 3; i++) {
        tsr_array *a;
        tt_ok(tsr_array_create(&a, i == 1 ? 1 : 2, dims[i]));
        for (size_t k = 0; k < a->numel; k++) a->data[k] = tsr_prng_double(&g) - 0.5;
        tt_ok(tsr_graph_add_const(gr, names[i], a));
        tsr_array_free(a);
    }
    tsr_graph_attrs at;
    tsr_graph_attrs_default(&at);
    at.trans_b = 1;
    tt_ok(tsr_graph_add_node(gr, TSR_NODE_GEMM, "fc1", 3, (const char *[]){ "x", "W1", "b1" }, "h",
                             &at));
    tt_ok(tsr_graph_add_node(gr, TSR_NODE_SQUARE, "sq", 1, (const char *[]){ "h" }, "h2", NULL));
    tt_ok(
        tsr_graph_add_node(gr, TSR_NODE_GEMM, "fc2", 2, (const char *[]){ "h2", "W2" }, "y", &at));
    if (transposed) {
        tsr_graph_attrs_default(&at); /* empty perm: reverse the axes */
        tt_ok(tsr_graph_add_node(gr, TSR_NODE_TRANSPOSE, "tr", 1, (const char *[]){ "y" }, "yt",
                                 &at));
    }
    tt_ok(tsr_graph_add_output(gr, transposed ? "yt" : "y"));
    tt_ok(tsr_graph_finalize(gr));
    tsr_onnx_model *om;
    tt_ok(tsr_onnx_from_graph(gr, &om));
    tt_ok(tsr_onnx_set_meta(om, "tessera.test", "kept"));
    tt_ok(tsr_onnx_save(om, path));
    tsr_onnx_free(om);
    tsr_graph_free(gr);
}

static void write_model(const char *path) {
    write_model_t(path, 0);
}

static tsr_graph *read_model(const char *path, tsr_onnx_model **keep) {
    tsr_onnx_model *om;
    tt_ok(tsr_onnx_load(&om, path));
    tsr_graph *g;
    tt_ok(tsr_onnx_to_graph(om, NULL, &g, NULL));
    if (keep)
        *keep = om;
    else
        tsr_onnx_free(om);
    return g;
}

/* A .npy v1 file of little-endian doubles. */
static void write_npy(const char *path, int rank, const int64_t *dims, const double *v) {
    char h[256];
    int at = snprintf(h, sizeof h, "{'descr': '<f8', 'fortran_order': False, 'shape': (");
    size_t n = 1;
    for (int k = 0; k < rank; k++) {
        at += snprintf(h + at, sizeof h - (size_t)at, "%lld,%s", (long long)dims[k],
                       k + 1 < rank ? " " : "");
        n *= (size_t)dims[k];
    }
    at += snprintf(h + at, sizeof h - (size_t)at, "), }");
    while ((10 + at + 1) % 64) h[at++] = ' ';
    h[at++] = '\n';
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    uint8_t pre[10] = {
        0x93, 'N', 'U', 'M', 'P', 'Y', 1, 0, (uint8_t)(at & 0xff), (uint8_t)(at >> 8)
    };
    assert_int_equal(fwrite(pre, 1, 10, f), 10);
    assert_int_equal(fwrite(h, 1, (size_t)at, f), (size_t)at);
    assert_int_equal(fwrite(v, sizeof *v, n, f), n);
    fclose(f);
}

static void test_usage(void **state) {
    (void)state;
    const char *m = tt_cli_path("m.onnx");
    write_model(m);
    tt_cli_expect(tt_cli_run("prune --help"), 0, "--help");
    assert_non_null(strstr(tt_cli_output(), "usage: tessera prune"));
    tt_cli_expect_fail(tt_cli_run("prune"), "no model", "no model");
    tt_cli_expect_fail(tt_cli_run("prune %s", m), "no --out", "--out is required");
    tt_cli_expect_fail(tt_cli_run("prune %s --out %s --sparsity 1.5", m, tt_cli_path("o.onnx")),
                       "sparsity", "--sparsity");
    tt_cli_expect_fail(tt_cli_run("prune %s --out %s --tile 3y4", m, tt_cli_path("o.onnx")), "tile",
                       "--tile");
    tt_cli_expect_fail(tt_cli_run("prune %s --out %s --method random", m, tt_cli_path("o.onnx")),
                       "method", "unknown pruning method");
    tt_cli_expect_fail(tt_cli_run("prune %s --out %s --expand 0.5", m, tt_cli_path("o.onnx")),
                       "expand", "--expand");
    tt_cli_expect_fail(tt_cli_run("prune %s --out %s", m, m), "output = input", NULL);
    char mp[1024], op[1024];
    snprintf(mp, sizeof mp, "%s", m);
    snprintf(op, sizeof op, "%s", tt_cli_path("o.onnx"));
    const char *bad_ls[] = { "0.5,1.0", "0.5,,0.2", "x", "0.5,", "-0.5" };
    for (int i = 0; i < 5; i++) {
        tt_cli_expect_fail(tt_cli_run("prune %s --out %s --layer-sparsity %s", mp, op, bad_ls[i]),
                           bad_ls[i], "--layer-sparsity");
        tt_cli_expect_fail(
            tt_cli_run("prune %s --out %s --layer-row-sparsity %s", mp, op, bad_ls[i]), bad_ls[i],
            "--layer-row-sparsity");
    }
    tt_cli_expect_fail(tt_cli_run("prune %s --out %s --layer-sparsity 0.5,0.5,0.5", mp, op),
                       "more values than layers", "prunable layers");
    tt_cli_expect_fail(tt_cli_run("prune %s --out %s --ft-schedule steps", mp, op), "schedule",
                       "--ft-schedule");
    /* tile rows exist only for tile units: other methods refuse them instead of ignoring them */
    const char *no_rows[] = { "magnitude", "hunter", "none" };
    for (int i = 0; i < 3; i++) {
        tt_cli_expect_fail(
            tt_cli_run("prune %s --out %s --method %s --row-sparsity 0.25", mp, op, no_rows[i]),
            no_rows[i], "--row-sparsity");
        tt_cli_expect_fail(tt_cli_run("prune %s --out %s --method %s --layer-row-sparsity 0.25,-",
                                      mp, op, no_rows[i]),
                           no_rows[i], "only with --method tile");
    }
    tt_cli_expect_fail(
        tt_cli_run("prune %s --out %s", tt_cli_path("none.onnx"), tt_cli_path("o.onnx")),
        "missing model", NULL);
    FILE *f = fopen(tt_cli_path("junk.onnx"), "wb");
    assert_non_null(f);
    fputs("this is not a protobuf", f);
    fclose(f);
    int rc = tt_cli_run("prune %s --out %s", tt_cli_path("junk.onnx"), tt_cli_path("o.onnx"));
    assert_int_equal(rc, 2);
    assert_null(fopen(tt_cli_path("o.onnx"), "rb")); /* nothing written on failure */
}

static void test_prune_and_read_back(void **state) {
    (void)state;
    const char *m = tt_cli_path("m.onnx"), *o = tt_cli_path("p.onnx");
    write_model(m);
    tt_cli_expect(tt_cli_run("prune %s --stats --tile 8x4", m), 0, "stats");
    assert_non_null(strstr(tt_cli_output(), "fc1"));
    tt_cli_expect(
        tt_cli_run("prune %s --out %s --method hepex --sparsity 0.5 --tile 8x4 --quiet", m, o), 0,
        "hepex");
    /* fc1: 24 x 16 in 8 x 4 tiles = 12 tiles, 6 zeroed; fc2 alternates to 4 x 8: 10 x 24 in
     * 3 x 3 = 9 tiles, round(4.5) = 5 zeroed (half away from zero), 4 kept. */
    tsr_onnx_model *om;
    tsr_graph *g = read_model(o, &om);
    /* the input's metadata is kept; the note of the options, to the letter: it is part of the
     * file's bytes, whose sha256 result files record, so a build that writes it otherwise for
     * the same options changes every regenerated model's sha256 (cmd_prune.c) */
    int found = 0;
    for (int i = 0; i < om->n_meta; i++) {
        if (strcmp(om->meta_key[i], "tessera.test") == 0) found |= 1;
        if (strcmp(om->meta_key[i], "tessera.prune") == 0) {
            found |= 2;
            assert_string_equal(om->meta_value[i],
                                "method=hepex sparsity=0.5 layer-sparsity=- row-sparsity=0 "
                                "layer-row-sparsity=- tile=8x4 spatial=1x1 alternate=1 permute=0 "
                                "expand=1 steps=1 shrink=0 offset-tiles=0");
        }
    }
    assert_int_equal(found, 3);
    tsr_onnx_free(om);
    tsr_prune_opts po;
    tsr_prune_opts_default(&po);
    po.tile_rows = 8;
    po.tile_cols = 4;
    tsr_prune_report *r;
    tt_ok(tsr_prune_stats(g, &po, &r));
    assert_int_equal(r->layers[0].tiles, 12);
    assert_int_equal(r->layers[0].tiles_nz_before, 6);
    /* hepex without fine-tuning: kept tiles keep every weight (6 tiles of 8 x 4) */
    assert_int_equal(r->layers[0].weights_nz_before, 6 * 32);
    assert_int_equal(r->layers[1].tiles, 9);
    assert_int_equal(r->layers[1].tiles_nz_before, 9 - 5);
    tsr_prune_report_free(r);
    tsr_graph_free(g);
    /* A permutation alone keeps the function (up to float rounding of the export). */
    tt_cli_expect(tt_cli_run("prune %s --out %s --method none --permute --tile 8x4 --quiet", m, o),
                  0, "permute");
    tsr_graph *a = read_model(m, NULL), *b = read_model(o, NULL);
    tsr_array *x, *ya, *yb;
    tt_ok(tsr_array_create(&x, 2, (int64_t[]){ 3, 16 }));
    for (size_t i = 0; i < x->numel; i++) x->data[i] = sin((double)i);
    tt_ok(tsr_graph_run(a, (const tsr_array *const *)&x, &ya));
    tt_ok(tsr_graph_run(b, (const tsr_array *const *)&x, &yb));
    for (size_t i = 0; i < ya->numel; i++)
        if (fabs(ya->data[i] - yb->data[i]) > 1e-9 * (1 + fabs(ya->data[i])))
            fail_msg("output %zu: %.17g vs %.17g", i, ya->data[i], yb->data[i]);
    tsr_array_free(x);
    tsr_array_free(ya);
    tsr_array_free(yb);
    tsr_graph_free(a);
    tsr_graph_free(b);
    /* --shrink: fc2 (10 x 24 in 4 x 8 tiles) keeps round(0.1 * 9) = 1 tile, so 16 of the 24
     * hidden features have no outgoing weight and go; the narrower model computes what the
     * same pruning without --shrink does. */
    char q[1024];
    snprintf(q, sizeof q, "%s", tt_cli_path("q.onnx"));
    o = tt_cli_path("p.onnx");
    tt_cli_expect(tt_cli_run("prune %s --out %s --layer-sparsity 0,0.9 --tile 8x4 --quiet", m, o),
                  0, "no shrink");
    tt_cli_expect(
        tt_cli_run("prune %s --out %s --layer-sparsity 0,0.9 --tile 8x4 --shrink --quiet", m, q), 0,
        "shrink");
    assert_non_null(strstr(tt_cli_output(), "shrink: 16 hidden features removed"));
    a = read_model(o, NULL);
    b = read_model(q, NULL);
    assert_int_equal(tsr_graph_const(a, "W1")->dims[0], 24);
    assert_int_equal(tsr_graph_const(b, "W1")->dims[0], 8);
    assert_int_equal(tsr_graph_const(b, "W2")->dims[1], 8);
    tt_ok(tsr_array_create(&x, 2, (int64_t[]){ 3, 16 }));
    for (size_t i = 0; i < x->numel; i++) x->data[i] = cos((double)i);
    tt_ok(tsr_graph_run(a, (const tsr_array *const *)&x, &ya));
    tt_ok(tsr_graph_run(b, (const tsr_array *const *)&x, &yb));
    for (size_t i = 0; i < ya->numel; i++)
        if (fabs(ya->data[i] - yb->data[i]) > 1e-9 * (1 + fabs(ya->data[i])))
            fail_msg("shrunk output %zu: %.17g vs %.17g", i, ya->data[i], yb->data[i]);
    tsr_array_free(x);
    tsr_array_free(ya);
    tsr_array_free(yb);
    tsr_graph_free(a);
    tsr_graph_free(b);
}

/* Fine-tuning on the graph trainer: pruned tiles stay zero, kept weights move. */
static void test_finetune(void **state) {
    (void)state;
    char m[1024], a[1024], b[1024]; /* tt_cli_path's buffers are reused */
    snprintf(m, sizeof m, "%s", tt_cli_path("m.onnx"));
    snprintf(a, sizeof a, "%s", tt_cli_path("a.onnx"));
    snprintf(b, sizeof b, "%s", tt_cli_path("b.onnx"));
    write_model(m);
    double x[64 * 16], y[64 * 10];
    for (int i = 0; i < 64 * 16; i++) x[i] = sin(0.37 * i);
    for (int i = 0; i < 64 * 10; i++) y[i] = cos(0.11 * i);
    write_npy(tt_cli_path("x.npy"), 2, (int64_t[]){ 64, 16 }, x);
    write_npy(tt_cli_path("y.npy"), 2, (int64_t[]){ 64, 10 }, y);
    write_npy(tt_cli_path("bad.npy"), 2, (int64_t[]){ 64, 7 }, y);
    tt_cli_expect(tt_cli_run("prune %s --out %s --sparsity 0.5 --tile 8x4 --quiet", m, a), 0,
                  "no fine-tuning");
    /* Per-layer sparsity: the first layer dense, the second to the global 0.5. */
    tt_cli_expect(tt_cli_run("prune %s --out %s --sparsity 0.5 --layer-sparsity 0,- --tile 8x4 "
                             "--finetune %s,%s --ft-batch 16 --quiet",
                             m, b, tt_cli_path("x.npy"), tt_cli_path("y.npy")),
                  0, "per-layer sparsity");
    {
        /* read back: layer 1 (24 x 16 in 8 x 4 tiles) kept all its tiles, layer 2 (10 x 24 in
         * 4 x 8 tiles) lost round(0.5 x its tiles) */
        tsr_graph *gl = read_model(b, NULL);
        tsr_prune_opts lo;
        tsr_prune_opts_default(&lo);
        lo.tile_rows = 8;
        lo.tile_cols = 4;
        tsr_prune_report *lr;
        tt_ok(tsr_prune_stats(gl, &lo, &lr));
        int64_t t0 = ((24 + 7) / 8) * ((16 + 3) / 4), t1 = ((10 + 3) / 4) * ((24 + 7) / 8);
        assert_int_equal(lr->layers[0].tiles, t0);
        assert_int_equal(lr->layers[0].tiles_nz_before, t0);
        assert_int_equal(lr->layers[0].weights_nz_before, 24 * 16);
        assert_int_equal(lr->layers[1].tiles, t1);
        assert_int_equal(lr->layers[1].tiles_nz_before, t1 - llround(0.5 * (double)t1));
        tsr_prune_report_free(lr);
        tsr_graph_free(gl);
    }
    {
        /* Distillation with weight 1 trains towards the dense model's outputs only: exactly the
         * run whose targets are those outputs (computed here) without distillation. */
        tsr_graph *gm = read_model(m, NULL);
        tsr_array *xa, *yt;
        tt_ok(tsr_array_create(&xa, 2, (int64_t[]){ 64, 16 }));
        memcpy(xa->data, x, sizeof x);
        tt_ok(tsr_graph_run(gm, (const tsr_array *const *)&xa, &yt));
        assert_int_equal(yt->numel, 64 * 10);
        write_npy(tt_cli_path("yt.npy"), 2, (int64_t[]){ 64, 10 }, yt->data);
        char d1[1024], d2[1024];
        snprintf(d1, sizeof d1, "%s", tt_cli_path("d1.onnx"));
        snprintf(d2, sizeof d2, "%s", tt_cli_path("d2.onnx"));
        tt_cli_expect(tt_cli_run("prune %s --out %s --sparsity 0.5 --tile 8x4 --finetune %s,%s "
                                 "--ft-batch 16 --quiet",
                                 m, d1, tt_cli_path("x.npy"), tt_cli_path("yt.npy")),
                      0, "targets = the dense outputs");
        tt_cli_expect(tt_cli_run("prune %s --out %s --sparsity 0.5 --tile 8x4 --finetune %s,%s "
                                 "--distill %s --distill-weight 1 --ft-batch 16 --quiet",
                                 m, d2, tt_cli_path("x.npy"), tt_cli_path("y.npy"), m),
                      0, "distillation");
        tsr_graph *g1 = read_model(d1, NULL), *g2 = read_model(d2, NULL);
        const char *names[3] = { "W1", "b1", "W2" };
        int moved = 0;
        for (int k = 0; k < 3; k++) {
            const tsr_array *a1 = tsr_graph_const(g1, names[k]),
                            *a2 = tsr_graph_const(g2, names[k]),
                            *a0 = tsr_graph_const(gm, names[k]);
            assert_int_equal(a1->numel, a2->numel);
            for (size_t i = 0; i < a1->numel; i++) {
                if (a1->data[i] != a2->data[i])
                    fail_msg("%s[%zu]: %.17g vs %.17g", names[k], i, a1->data[i], a2->data[i]);
                moved += a1->data[i] != 0 && a1->data[i] != a0->data[i];
            }
        }
        assert_true(moved > 0); /* it trained */
        tsr_graph_free(g1);
        tsr_graph_free(g2);
        tsr_array_free(xa);
        tsr_array_free(yt);
        tsr_graph_free(gm);
        tt_cli_expect_fail(tt_cli_run("prune %s --out %s --distill %s --quiet", m, d2, m),
                           "--distill without --finetune", "needs --finetune");
        tt_cli_expect_fail(tt_cli_run("prune %s --out %s --finetune %s,%s --distill %s "
                                      "--distill-weight 1.5 --quiet",
                                      m, d2, tt_cli_path("x.npy"), tt_cli_path("y.npy"), m),
                           "distillation weight out of range", "[0, 1]");
        /* a teacher whose output is (10, N): the same size as the pruned model's (N, 10),
         * but not one row per input */
        char mt[1024];
        snprintf(mt, sizeof mt, "%s", tt_cli_path("mt.onnx"));
        write_model_t(mt, 1);
        tt_cli_expect_fail(tt_cli_run("prune %s --out %s --finetune %s,%s --distill %s --quiet", m,
                                      d2, tt_cli_path("x.npy"), tt_cli_path("y.npy"), mt),
                           "teacher output not batch-first", "not batch-first");
    }
    tt_cli_expect(tt_cli_run("prune %s --out %s --sparsity 0.5 --tile 8x4 --steps 2 --finetune "
                             "%s,%s --ft-batch 16 --ft-schedule const --quiet",
                             m, b, tt_cli_path("x.npy"), tt_cli_path("y.npy")),
                  0, "fine-tuning");
    tsr_graph *ga = read_model(a, NULL), *gb = read_model(b, NULL);
    tsr_prune_opts po;
    tsr_prune_opts_default(&po);
    po.tile_rows = 8;
    po.tile_cols = 4;
    tsr_prune_report *r;
    tt_ok(tsr_prune_stats(gb, &po, &r));
    assert_int_equal(r->layers[0].tiles_nz_before, 6); /* the pruned tiles stayed zero */
    assert_int_equal(r->layers[1].tiles_nz_before, 4);
    tsr_prune_report_free(r);
    const tsr_array *wa = tsr_graph_const(ga, "W1"), *wb = tsr_graph_const(gb, "W1");
    int moved = 0;
    for (size_t i = 0; i < wa->numel; i++) moved += wa->data[i] != wb->data[i];
    assert_true(moved > 0);
    tsr_graph_free(ga);
    tsr_graph_free(gb);
    tt_cli_expect_fail(tt_cli_run("prune %s --out %s --finetune %s,%s --quiet", m, b,
                                  tt_cli_path("x.npy"), tt_cli_path("bad.npy")),
                       "targets of the wrong shape", NULL);
    tt_cli_expect_fail(
        tt_cli_run("prune %s --out %s --finetune %s --quiet", m, b, tt_cli_path("x.npy")),
        "one file", NULL);
    /* Labels (cross-entropy over the 10 outputs) must index a class. */
    double lab[64];
    for (int i = 0; i < 64; i++) lab[i] = i % 10;
    write_npy(tt_cli_path("lab.npy"), 1, (int64_t[]){ 64 }, lab);
    tt_cli_expect(tt_cli_run("prune %s --out %s --finetune %s,%s --ft-batch 16 --quiet", m, b,
                             tt_cli_path("x.npy"), tt_cli_path("lab.npy")),
                  0, "labels");
    lab[37] = 10;
    write_npy(tt_cli_path("lab.npy"), 1, (int64_t[]){ 64 }, lab);
    tt_cli_expect_fail(tt_cli_run("prune %s --out %s --finetune %s,%s --ft-batch 16 --quiet", m, b,
                                  tt_cli_path("x.npy"), tt_cli_path("lab.npy")),
                       "label out of range", "whole numbers in [0, 10)");
}

/* --shape-search: every shape is pruned and compiled, the cheapest predicted plan wins and the
 * written model is pruned for it. */
static void test_shape_search(void **state) {
    (void)state;
    const char *m = tt_cli_path("m.onnx"), *o = tt_cli_path("s.onnx");
    write_model(m);
    tt_cli_expect_fail(tt_cli_run("prune %s --stats --shape-search 8x4,4y8", m), "bad list",
                       "--shape-search");
    tt_cli_expect_fail(tt_cli_run("prune %s --stats --shape-search 8x4 --plan-log-n 9", m),
                       "ring degree", "--plan-log-n");
    tt_cli_expect_fail(
        tt_cli_run("prune %s --stats --shape-search auto --plan-batch 100000 --plan-log-n 13", m),
        "auto with a batch beyond the slots", "batch 100000 exceeds the N/2 = 4096 slots");
    /* options that would be overridden or ignored are refused */
    tt_cli_expect_fail(tt_cli_run("prune %s --stats --shape-search 8x4 --tile 4x8", m),
                       "--tile with --shape-search", "the search chooses the tile");
    tt_cli_expect_fail(tt_cli_run("prune %s --stats --plan-batch 4", m),
                       "--plan-batch without --shape-search", "only with --shape-search");
    tt_cli_expect_fail(tt_cli_run("prune %s --stats --tile 8x4 --plan-log-n 13", m),
                       "--plan-log-n without --shape-search", "only with --shape-search");
    tt_cli_expect(tt_cli_run("prune %s --out %s --sparsity 0.5 --quiet --shape-search "
                             "8x4,4x8,2x16,128x8 --plan-batch 4 --plan-log-n 13",
                             m, o),
                  0, "shape search");
    const char *out = tt_cli_output();
    /* fc1 24 x 16 and fc2 10 x 24 (alternating tiles), half of each layer's tiles zeroed
     * (round half away from zero): 8x4 -> 12 + 9 tiles, 6 + 4 kept; 4x8 -> 12 + 12 (fc2 in 8 x 4
     * tiles: 2 x 6), 6 + 6;
     * 2x16 -> 12 + 12 (fc2 in 16 x 2 tiles: 1 x 12), 6 + 6 */
    const char *want[4][2] = {
        { "8x4", "10/21" }, { "4x8", "12/24" }, { "2x16", "12/24" }, { "128x8", "2/4" }
    };
    /* A row is ranked by its plan when the plan's first tile is the row's (no '*'), else by its
     * own shape's best plan, else not at all. */
    double best = 1e300;
    int others = 0;
    for (int i = 0; i < 4; i++) {
        char key[32];
        snprintf(key, sizeof key, "\n  %s ", want[i][0]);
        const char *l = strstr(out, key);
        if (!l) fail_msg("no row for %s in:\n%s", want[i][0], out);
        char sh[16], kept[32];
        unsigned long long rot, prod;
        double sec, mib, price = 0;
        assert_int_equal(
            sscanf(l, " %15s %31s %llu %llu %lfs %lfMiB", sh, kept, &rot, &prod, &sec, &mib), 6);
        if (strcmp(kept, want[i][1]) != 0)
            fail_msg("%s: kept %s, expected %s in:\n%s", sh, kept, want[i][1], out);
        assert_true(prod > 0 && sec > 0);
        const char *pl = strchr(l, ']');
        int o_, n = 0;
        assert_non_null(pl);
        assert_int_equal(sscanf(pl, "] o%d%n", &o_, &n), 1);
        if (strncmp(pl + n, " *", 2) == 0) {
            others++;
            double own;
            if (sscanf(pl + n + 2, " %lfs [", &own) == 1) price = own;
        } else {
            price = sec;
            /* the plan's own tile: the own-shape column repeats the chosen candidate */
            double own;
            if (sscanf(pl + n, " %lfs [", &own) != 1 || fabs(own - sec) > 1e-9)
                fail_msg("%s: own shape's best plan is not the chosen one in:\n%s", sh, out);
        }
        if (price > 0 && price < best) best = price;
    }
    assert_true(best < 1e300);
    assert_true((others > 0) ==
                (strstr(out, "  * the optimizer's plan uses another tile") != NULL));
    /* the chosen shape is one of the cheapest rows (printed to the millisecond) */
    const char *ch = strstr(out, "shape search: cheapest ");
    assert_non_null(ch);
    char best_sh[16];
    double chosen;
    assert_int_equal(sscanf(ch, "shape search: cheapest %15s (predicted %lf s", best_sh, &chosen),
                     2);
    assert_true(fabs(chosen - best) < 1e-9);
    /* The search sums the rot and ct*pt+c columns of the plan summary itself (nn has no totals
     * API yet): pin that parse against `tessera compile` of the written model (pruned one-shot,
     * as in the search), summed here by the header's column names. */
    char key[32];
    snprintf(key, sizeof key, "\n  %s ", best_sh);
    const char *brow = strstr(out, key);
    assert_non_null(brow);
    unsigned long long want_rot, want_prod;
    assert_int_equal(sscanf(brow, " %*s %*s %llu %llu", &want_rot, &want_prod), 2);
    tt_cli_expect(tt_cli_run("compile %s --batch 4 --log-n 13 --out %s", o, tt_cli_path("s.plan")),
                  0, "compile the written model");
    const char *plan = tt_cli_output();
    const char *head = strstr(plan, "\nstep ");
    assert_non_null(head);
    /* the counts are right-aligned under their header: the number ending where it ends */
    size_t hl = strcspn(head + 1, "\n");
    const char *hr = strstr(head + 1, " rot "), *hp = strstr(head + 1, " ct*pt+c ");
    assert_true(hr && hp && hr < head + 1 + hl && hp < head + 1 + hl);
    size_t end_rot = (size_t)(hr - (head + 1)) + 4, end_prod = (size_t)(hp - (head + 1)) + 8;
    unsigned long long sum_rot = 0, sum_prod = 0;
    int steps = 0;
    for (const char *l = head + 1 + hl + 1; *l >= '0' && *l <= '9'; steps++) {
        size_t len = strcspn(l, "\n");
        assert_true(len > end_prod && len > end_rot);
        size_t ends[2] = { end_rot, end_prod };
        unsigned long long *sums[2] = { &sum_rot, &sum_prod };
        for (int k = 0; k < 2; k++) {
            size_t i = ends[k];
            while (i > 0 && l[i - 1] >= '0' && l[i - 1] <= '9') i--;
            assert_true(i < ends[k] && l[i - 1] == ' ');
            *sums[k] += strtoull(l + i, NULL, 10);
        }
        l += len + (l[len] == '\n');
    }
    assert_true(steps > 0 && sum_prod > 0);
    if (sum_rot != want_rot || sum_prod != want_prod)
        fail_msg("%s: search %llu rot / %llu ct*pt+c, compile %llu / %llu", best_sh, want_rot,
                 want_prod, sum_rot, sum_prod);
    tsr_onnx_model *om;
    tsr_graph *g = read_model(o, &om);
    char note[32];
    snprintf(note, sizeof note, "tile=%s ", best_sh);
    int found = 0;
    for (int i = 0; i < om->n_meta; i++)
        if (strcmp(om->meta_key[i], "tessera.prune") == 0 && strstr(om->meta_value[i], note))
            found = 1;
    assert_true(found);
    tsr_onnx_free(om);
    tsr_graph_free(g);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_usage),
        cmocka_unit_test(test_prune_and_read_back),
        cmocka_unit_test(test_finetune),
        cmocka_unit_test(test_shape_search),
    };
    return cmocka_run_group_tests(tests, tt_cli_setup, tt_cli_teardown);
}
