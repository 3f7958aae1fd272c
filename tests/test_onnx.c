/*
 * tests/test_onnx.c - the ONNX reader/writer (every validation rule has a
 * failing case with its message), tsr_model <-> ONNX round trips of every
 * architecture (write -> read -> same outputs, with and without batch-norm
 * folding), the tessera.* metadata, importer errors, and a model exported by
 * PyTorch (tests/data/gen_torch_onnx.py) that must reproduce PyTorch's outputs.
 */
#include "testutil.h"
#include "train_ref.h"

#include "tessera.h"
#include "core/alloc.h"
#include "onnx.pb-c.h"
#include "onnx/onnx.h"
#include "train/model.h"
#include "train/model_onnx.h"
#include "train/train.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void expect_msg(const char *needle) {
    if (!strstr(tsr_last_error(), needle))
        fail_msg("error '%s' does not mention '%s'", tsr_last_error(), needle);
}

/* A small valid model built with the writer API: input (N, 3) -> Gemm -> Relu. */
static tsr_onnx_model *tiny(void) {
    tsr_onnx_model *m;
    tt_ok(tsr_onnx_create(&m, 13, 7));
    tt_ok(tsr_onnx_set_info(m, "test", "1", "tiny", "doc"));
    int64_t d[2] = { -1, 3 }, od[2] = { -1, 2 }, wd[2] = { 2, 3 }, bd[1] = { 2 };
    const char *dp[2] = { "N", NULL };
    tt_ok(tsr_onnx_add_io(m, 0, "x", 2, d, dp));
    tt_ok(tsr_onnx_add_io(m, 1, "y", 2, od, dp));
    float w[6] = { 1, 2, 3, -1, -2, -3 }, b[2] = { 0.5f, -0.5f };
    tt_ok(tsr_onnx_add_init(m, "w", 2, wd, w));
    tt_ok(tsr_onnx_add_init(m, "b", 1, bd, b));
    const char *gin[3] = { "x", "w", "b" }, *gout[1] = { "h" };
    tt_ok(tsr_onnx_add_node(m, "Gemm", "fc", 3, gin, 1, gout));
    tt_ok(tsr_onnx_add_attr_int(m, "transB", 1));
    tt_ok(tsr_onnx_add_attr_float(m, "alpha", 1.0f));
    int64_t ks[2] = { 4, 5 };
    tt_ok(tsr_onnx_add_attr_ints(m, "unused_ints", ks, 2));
    const char *rin[1] = { "h" }, *rout[1] = { "y" };
    tt_ok(tsr_onnx_add_node(m, "Relu", "act", 1, rin, 1, rout));
    tt_ok(tsr_onnx_set_meta(m, "k1", "v1"));
    tt_ok(tsr_onnx_set_meta(m, "k2", "v2"));
    tt_ok(tsr_onnx_set_meta(m, "k1", "v1b")); /* replace */
    return m;
}

static void test_reader_writer_roundtrip(void **state) {
    (void)state;
    tsr_onnx_model *m = tiny(), *r;
    uint8_t *buf;
    size_t len;
    tt_ok(tsr_onnx_serialize(m, &buf, &len));
    tt_ok(tsr_onnx_parse(&r, buf, len));
    assert_int_equal(r->ir_version, 7);
    assert_int_equal(r->opset, 13);
    assert_string_equal(r->producer_name, "test");
    assert_string_equal(r->graph_name, "tiny");
    assert_int_equal(r->n_inputs, 1);
    assert_string_equal(r->inputs[0].name, "x");
    assert_int_equal(r->inputs[0].ndims, 2);
    assert_int_equal(r->inputs[0].dims[0], -1);
    assert_string_equal(r->inputs[0].dim_param[0], "N");
    assert_int_equal(r->inputs[0].dims[1], 3);
    assert_int_equal(r->n_nodes, 2);
    assert_string_equal(r->nodes[0].op_type, "Gemm");
    assert_string_equal(r->nodes[0].in[2], "b");
    int64_t tb;
    float alpha;
    tt_ok(tsr_onnx_attr_int(&r->nodes[0], "transB", 0, &tb));
    tt_ok(tsr_onnx_attr_float(&r->nodes[0], "alpha", 0, &alpha));
    assert_int_equal(tb, 1);
    assert_float_equal(alpha, 1, 0);
    const int64_t *iv;
    size_t n;
    tt_ok(tsr_onnx_attr_ints(&r->nodes[0], "unused_ints", &iv, &n));
    assert_int_equal(n, 2);
    assert_int_equal(iv[1], 5);
    tt_fails(tsr_onnx_attr_float(&r->nodes[0], "transB", 0, &alpha), TSR_ERR_FORMAT);
    const tsr_onnx_tensor *w = tsr_onnx_find_init(r, "w");
    assert_non_null(w);
    assert_int_equal(w->numel, 6);
    assert_float_equal(w->f[5], -3, 0);
    assert_null(tsr_onnx_find_init(r, "nope"));
    assert_string_equal(tsr_onnx_meta(r, "k1"), "v1b");
    assert_string_equal(tsr_onnx_meta(r, "k2"), "v2");
    assert_int_equal(tsr_onnx_producer(r, "h"), 0);
    assert_int_equal(tsr_onnx_producer(r, "x"), -1);
    assert_int_equal(tsr_onnx_consumers(r, "h"), 1);
    assert_int_equal(tsr_onnx_consumers(r, "y"), 1); /* the graph output */
    const char *ok_ops[] = { "Gemm", "Relu", NULL }, *few_ops[] = { "Conv", NULL };
    tt_ok(tsr_onnx_check_ops(r, ok_ops));
    tt_fails(tsr_onnx_check_ops(r, few_ops), TSR_ERR_UNSUPPORTED);
    expect_msg("'fc' (Gemm), 'act' (Relu)");
    /* the file path variant */
    const char *path = tt_temp_path(".onnx");
    tt_ok(tsr_onnx_save(m, path));
    tsr_onnx_model *r2;
    tt_ok(tsr_onnx_load(&r2, path));
    assert_int_equal(r2->n_inits, 2);
    tsr_onnx_free(r2);
    unlink(path);
    tt_fails(tsr_onnx_load(&r2, "/nonexistent/m.onnx"), TSR_ERR_NOT_FOUND);
    /* every prefix of the bytes gives a status (no crash); short ones fail */
    for (size_t cut = 0; cut < len; cut++) {
        tsr_onnx_model *p = NULL;
        tsr_status st = tsr_onnx_parse(&p, buf, cut);
        if (st == TSR_OK) tsr_onnx_free(p);
        if (cut < 16) assert_int_not_equal(st, TSR_OK);
    }
    tsr_clear_error();
    tsr_free(buf);
    tsr_onnx_free(r);
    tsr_onnx_free(m);
    tsr_onnx_free(NULL);
}

/* Writing validates like reading: break the tiny model in each way and check the message. */
static void test_validation(void **state) {
    (void)state;
    uint8_t *buf;
    size_t len;
    tsr_onnx_model *m;

    m = tiny(); /* node reads an undefined tensor */
    free(m->nodes[1].in[0]);
    m->nodes[1].in[0] = strdup("ghost");
    tt_fails(tsr_onnx_serialize(m, &buf, &len), TSR_ERR_FORMAT);
    expect_msg("'act' (Relu) reads 'ghost'");
    tsr_onnx_free(m);

    m = tiny(); /* out of topological order */
    tsr_onnx_node tmp = m->nodes[0];
    m->nodes[0] = m->nodes[1];
    m->nodes[1] = tmp;
    tt_fails(tsr_onnx_serialize(m, &buf, &len), TSR_ERR_FORMAT);
    expect_msg("out of order");
    tsr_onnx_free(m);

    m = tiny(); /* a tensor defined twice */
    free(m->nodes[1].out[0]);
    m->nodes[1].out[0] = strdup("h");
    tt_fails(tsr_onnx_serialize(m, &buf, &len), TSR_ERR_FORMAT);
    expect_msg("redefines tensor 'h'");
    tsr_onnx_free(m);

    m = tiny(); /* graph output never produced */
    free(m->outputs[0].name);
    m->outputs[0].name = strdup("z");
    tt_fails(tsr_onnx_serialize(m, &buf, &len), TSR_ERR_FORMAT);
    expect_msg("graph output 'z'");
    tsr_onnx_free(m);

    m = tiny(); /* dims disagree with the data */
    m->inits[0].dims[1] = 4;
    tt_fails(tsr_onnx_serialize(m, &buf, &len), TSR_ERR_FORMAT);
    expect_msg("'w'");
    tsr_onnx_free(m);

    m = tiny(); /* NaN weight */
    m->inits[1].f[1] = NAN;
    tt_fails(tsr_onnx_serialize(m, &buf, &len), TSR_ERR_FORMAT);
    expect_msg("NaN");
    tsr_onnx_free(m);

    m = tiny(); /* duplicate initializer */
    free(m->inits[1].name);
    m->inits[1].name = strdup("w");
    tt_fails(tsr_onnx_serialize(m, &buf, &len), TSR_ERR_FORMAT);
    expect_msg("used twice");
    tsr_onnx_free(m);

    m = tiny(); /* unsupported data type */
    m->inits[1].dtype = 10;
    tt_fails(tsr_onnx_serialize(m, &buf, &len), TSR_ERR_UNSUPPORTED);
    expect_msg("data type 10");
    tsr_onnx_free(m);

    m = tiny(); /* no opset */
    m->opset = 0;
    tt_fails(tsr_onnx_serialize(m, &buf, &len), TSR_ERR_FORMAT);
    expect_msg("opset");
    tsr_onnx_free(m);

    tt_fails(tsr_onnx_parse(&m, (const uint8_t *)"", 0), TSR_ERR_FORMAT);
    tt_fails(tsr_onnx_parse(&m, (const uint8_t *)"\xff\xff\xff", 3), TSR_ERR_FORMAT);
    expect_msg("does not parse");
}

/* Problems only a hand-made protobuf can have (the writer never emits them). */
static uint8_t *pack_tiny_with(void (*edit)(Onnx__ModelProto *mp), size_t *len) {
    tsr_onnx_model *m = tiny();
    uint8_t *buf;
    size_t n;
    tt_ok(tsr_onnx_serialize(m, &buf, &n));
    tsr_onnx_free(m);
    Onnx__ModelProto *mp = onnx__model_proto__unpack(NULL, n, buf);
    assert_non_null(mp);
    tsr_free(buf);
    edit(mp);
    *len = onnx__model_proto__get_packed_size(mp);
    uint8_t *out = malloc(*len);
    onnx__model_proto__pack(mp, out);
    onnx__model_proto__free_unpacked(mp, NULL);
    return out;
}

static void edit_raw_short(Onnx__ModelProto *mp) {
    mp->graph->initializer[0]->raw_data.len -= 4; /* 5 floats for 6 dims */
}
static void edit_external(Onnx__ModelProto *mp) {
    mp->graph->initializer[0]->has_data_location = 1;
    mp->graph->initializer[0]->data_location = ONNX__TENSOR_PROTO__DATA_LOCATION__EXTERNAL;
}
static void edit_domain(Onnx__ModelProto *mp) {
    mp->graph->node[1]->domain = strdup("com.example"); /* freed by free_unpacked */
}
static void edit_attr_type(Onnx__ModelProto *mp) {
    mp->graph->node[0]->attribute[0]->type = ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOAT;
}

/* Empty bytes fields unpack with a NULL data pointer (found by fuzz_onnx: memchr(NULL, 0, 0)). */
static void edit_empty_strings(Onnx__ModelProto *mp) {
    Onnx__AttributeProto *a = mp->graph->node[0]->attribute[0];
    a->type = ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__STRING;
    a->has_s = 1;
    a->s.len = 0;
    a = mp->graph->node[0]->attribute[1];
    a->type = ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__STRINGS;
    a->n_strings = 1;
    a->strings = calloc(1, sizeof *a->strings); /* freed by free_unpacked */
}

static void test_empty_string_attributes(void **state) {
    (void)state;
    size_t len;
    uint8_t *b = pack_tiny_with(edit_empty_strings, &len);
    tsr_onnx_model *m;
    tt_ok(tsr_onnx_parse(&m, b, len));
    free(b);
    const tsr_onnx_attr *a0 = &m->nodes[0].attr[0], *a1 = &m->nodes[0].attr[1];
    assert_int_equal(a0->type, TSR_ONNX_ATTR_STRING);
    assert_string_equal(a0->s, "");
    assert_int_equal(a1->type, TSR_ONNX_ATTR_STRINGS);
    assert_int_equal(a1->n, 1);
    assert_string_equal(a1->strings[0], "");
    tsr_onnx_free(m);
}

static void test_protobuf_level_errors(void **state) {
    (void)state;
    struct {
        void (*edit)(Onnx__ModelProto *);
        tsr_status st;
        const char *msg;
    } cases[] = {
        { edit_raw_short, TSR_ERR_FORMAT, "(24 bytes) but the data has 20 bytes" },
        { edit_external, TSR_ERR_UNSUPPORTED, "external data" },
        { edit_domain, TSR_ERR_UNSUPPORTED, "'act' (com.example:Relu)" },
        { edit_attr_type, TSR_ERR_FORMAT, "no value of its declared type" },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        size_t len;
        uint8_t *b = pack_tiny_with(cases[i].edit, &len);
        tsr_onnx_model *m;
        tt_fails(tsr_onnx_parse(&m, b, len), cases[i].st);
        expect_msg(cases[i].msg);
        free(b);
    }
    /* no graph at all */
    Onnx__ModelProto mp = ONNX__MODEL_PROTO__INIT;
    Onnx__OperatorSetIdProto op = ONNX__OPERATOR_SET_ID_PROTO__INIT, *ops = &op;
    op.has_version = 1;
    op.version = 13;
    mp.has_ir_version = 1;
    mp.ir_version = 7;
    mp.n_opset_import = 1;
    mp.opset_import = &ops;
    uint8_t b[64];
    size_t len = onnx__model_proto__pack(&mp, b);
    tsr_onnx_model *m;
    tt_fails(tsr_onnx_parse(&m, b, len), TSR_ERR_FORMAT);
    expect_msg("no graph");
    /* nesting bomb: graph -> node -> attribute(g) -> node -> ... 40 levels */
    Onnx__GraphProto g[40];
    Onnx__NodeProto nd[40], *ndp[40];
    Onnx__AttributeProto at[40], *atp[40];
    char aname[] = "body", opname[] = "Loop";
    for (int i = 0; i < 40; i++) {
        onnx__graph_proto__init(&g[i]);
        onnx__node_proto__init(&nd[i]);
        onnx__attribute_proto__init(&at[i]);
        ndp[i] = &nd[i];
        atp[i] = &at[i];
        g[i].n_node = 1;
        g[i].node = &ndp[i];
        nd[i].op_type = opname;
        if (i + 1 < 40) {
            nd[i].n_attribute = 1;
            nd[i].attribute = &atp[i];
            at[i].name = aname;
            at[i].has_type = 1;
            at[i].type = ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__GRAPH;
            at[i].g = &g[i + 1];
        }
    }
    mp.graph = &g[0];
    size_t n = onnx__model_proto__get_packed_size(&mp);
    uint8_t *big = malloc(n);
    onnx__model_proto__pack(&mp, big);
    tt_fails(tsr_onnx_parse(&m, big, n), TSR_ERR_FORMAT);
    expect_msg("deeper");
    free(big);
}

/* Constant nodes become initializers. */
static void test_constant_folding(void **state) {
    (void)state;
    tsr_onnx_model *m = tiny();
    /* replace initializer b by a Constant node placed first */
    uint8_t *buf;
    size_t len;
    tt_ok(tsr_onnx_serialize(m, &buf, &len));
    tsr_onnx_free(m);
    Onnx__ModelProto *mp = onnx__model_proto__unpack(NULL, len, buf);
    tsr_free(buf);
    Onnx__GraphProto *g = mp->graph;
    Onnx__TensorProto *bt = g->initializer[1];
    g->n_initializer = 1;
    Onnx__NodeProto cn = ONNX__NODE_PROTO__INIT;
    Onnx__AttributeProto ca = ONNX__ATTRIBUTE_PROTO__INIT, *cap = &ca;
    char cname[] = "value", ctype[] = "Constant", cout[] = "b", *couts = cout;
    ca.name = cname;
    ca.has_type = 1;
    ca.type = ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__TENSOR;
    ca.t = bt;
    cn.op_type = ctype;
    cn.n_output = 1;
    cn.output = &couts;
    cn.n_attribute = 1;
    cn.attribute = &cap;
    Onnx__NodeProto **nodes = malloc(3 * sizeof *nodes);
    nodes[0] = &cn;
    nodes[1] = g->node[0];
    nodes[2] = g->node[1];
    Onnx__NodeProto **old = g->node;
    g->node = nodes;
    g->n_node = 3;
    len = onnx__model_proto__get_packed_size(mp);
    buf = malloc(len);
    onnx__model_proto__pack(mp, buf);
    g->node = old;
    g->n_node = 2;
    g->n_initializer = 2;
    onnx__model_proto__free_unpacked(mp, NULL);
    free(nodes);
    tsr_onnx_model *r;
    tt_ok(tsr_onnx_parse(&r, buf, len));
    assert_int_equal(r->n_nodes, 2);
    const tsr_onnx_tensor *b = tsr_onnx_find_init(r, "b");
    assert_non_null(b);
    assert_float_equal(b->f[1], -0.5f, 0);
    tsr_onnx_free(r);
    free(buf);
}

/* ---- tsr_model <-> ONNX ---------------------------------------------------------- */

/* Random batch-norm statistics and affine parameters, so folding is not trivial. */
static void randomize_bn(tsr_model *m, tsr_prng *g) {
    for (int i = 0; i < m->n_layers; i++) {
        const tsr_layer *L = &m->layers[i];
        if (L->kind != TSR_LAYER_BATCHNORM) continue;
        size_t C = L->p_len[0];
        for (size_t c = 0; c < C; c++) {
            m->params[L->p_off[0] + c] = (float)(1 + 0.3 * tsr_prng_normal(g));
            m->params[L->p_off[1] + c] = (float)(0.2 * tsr_prng_normal(g));
            m->state[L->s_off + c] = (float)(0.3 * tsr_prng_normal(g));
            m->state[L->s_off + C + c] = (float)(0.5 + tsr_prng_double(g));
        }
    }
}

static void roundtrip(tsr_model *m, int fold, const float *x, int B, double tol) {
    tsr_export_opts o;
    tsr_export_opts_default(&o);
    o.fold_bn = fold;
    const char *path = tt_temp_path(".onnx");
    tt_ok(tsr_model_save_onnx(m, &o, path));
    tsr_model *r;
    tt_ok(tsr_model_load_onnx(&r, path));
    unlink(path);
    tsr_model_set_training(m, 0);
    tt_ok(tsr_model_forward(m, x, B));
    tt_ok(tsr_model_forward(r, x, B));
    size_t K = tsr_model_output_size(m);
    assert_int_equal(tsr_model_output_size(r), K);
    const float *a = tsr_model_output(m), *b = tsr_model_output(r);
    double e = 0, s = 1e-3;
    for (size_t i = 0; i < (size_t)B * K; i++) {
        e = fmax(e, fabs(a[i] - b[i]));
        s = fmax(s, fabs(a[i]));
    }
    if (e / s > tol) fail_msg("%s fold=%d: round trip error %.3g", m->arch, fold, e / s);
    int bn = 0, poly = 0, rpoly = 0, rbn = 0;
    for (int i = 0; i < m->n_layers; i++) {
        bn += m->layers[i].kind == TSR_LAYER_BATCHNORM;
        poly += m->layers[i].kind == TSR_LAYER_POLY;
    }
    for (int i = 0; i < r->n_layers; i++) {
        rbn += r->layers[i].kind == TSR_LAYER_BATCHNORM;
        rpoly += r->layers[i].kind == TSR_LAYER_POLY;
    }
    assert_int_equal(rpoly, poly); /* every polynomial recognised, none invented */
    assert_int_equal(rbn, fold ? 0 : bn);
    assert_string_equal(r->arch, m->arch);
    tsr_model_free(r);
}

static void test_model_roundtrip(void **state) {
    (void)state;
    tsr_prng g;
    tt_prng(&g, 301);
    const int B = 3;
    float *x = malloc((size_t)B * 784 * sizeof *x);
    for (int i = 0; i < B * 784; i++) x[i] = (float)tsr_prng_normal(&g);
    const char *const *archs = tsr_model_arch_names();
    const char *acts[] = { "relu", "poly2", "poly3", "gelu" };
    for (int a = 0; archs[a]; a++)
        for (int k = 0; k < 4; k++) {
            tsr_act_spec act;
            tt_ok(tsr_act_parse(acts[k], &act));
            act.per_channel = (a + k) % 2; /* both coefficient layouts */
            act.bound = 3.0f;
            tsr_model *m;
            tt_ok(tsr_model_build(&m, archs[a], &act, 10 + a));
            randomize_bn(m, &g);
            roundtrip(m, 1, x, B, 2e-5);
            roundtrip(m, 0, x, B, 2e-5);
            tsr_model_free(m);
        }
    free(x);
}

/* A model with max pooling, dropout and a residual: teacher-style layers. */
static void test_teacher_layers_roundtrip(void **state) {
    (void)state;
    tsr_model *m;
    int t, a;
    tsr_act_spec re;
    tsr_act_default(&re, TSR_ACT_RELU, 0);
    tt_ok(tsr_model_create(&m, 1, 12, 12));
    tt_ok(tsr_model_add_conv(m, &t, "c1", 0, 4, 3, 3, 1, 1, 1, 1, 1));
    tt_ok(tsr_model_add_act(m, &t, "r1", t, &re));
    tt_ok(tsr_model_add_pool(m, &t, "mp", TSR_LAYER_MAXPOOL, t, 3, 3, 2, 2, 1, 1));
    tt_ok(tsr_model_add_conv(m, &a, "c2", t, 4, 3, 3, 1, 1, 1, 1, 0));
    tt_ok(tsr_model_add_residual(m, &t, "res", t, a));
    tt_ok(tsr_model_add_pool(m, &t, "ap", TSR_LAYER_AVGPOOL, t, 3, 3, 2, 2, 1, 1));
    tt_ok(tsr_model_add_gap(m, &t, "gap", t));
    tt_ok(tsr_model_add_dropout(m, &t, "drop", t, 0.5f));
    tt_ok(tsr_model_add_dense(m, &t, "fc", t, 3, 1));
    tt_ok(tsr_model_finish(m, t));
    tt_ok(tsr_model_init(m, 4));
    tsr_prng g;
    tt_prng(&g, 302);
    float x[2 * 144];
    for (int i = 0; i < 2 * 144; i++) x[i] = (float)tsr_prng_normal(&g);
    roundtrip(m, 1, x, 2, 2e-5);
    tsr_model_free(m);
}

static void test_metadata(void **state) {
    (void)state;
    tsr_act_spec act;
    tt_ok(tsr_act_parse("poly2", &act));
    act.bound = 2.5f;
    tsr_model *m;
    tt_ok(tsr_model_build(&m, "cryptonets", &act, 3));
    /* calibrate on random data so ranges get recorded */
    tsr_prng g;
    tt_prng(&g, 303);
    float *x = malloc(20 * 784 * sizeof *x);
    int32_t y[20] = { 0 };
    for (int i = 0; i < 20 * 784; i++) x[i] = (float)tsr_prng_normal(&g);
    tsr_dataset ds;
    tt_ok(tsr_dataset_from_arrays(&ds, x, y, 20, 1, 28, 28, 10));
    tt_ok(tsr_calibrate(m, &ds, 8, 0));
    tsr_export_opts o;
    tsr_export_opts_default(&o);
    o.command = "tessera train --arch cryptonets --act poly2";
    o.test_accuracy = 0.875;
    tsr_onnx_model *om;
    tt_ok(tsr_model_to_onnx(m, &o, &om));
    assert_string_equal(tsr_onnx_meta(om, "tessera.arch"), "cryptonets");
    assert_string_equal(tsr_onnx_meta(om, "tessera.activation"), "poly2");
    assert_string_equal(tsr_onnx_meta(om, "tessera.bn_folded"), "1");
    assert_string_equal(tsr_onnx_meta(om, "tessera.classes"), "10");
    assert_string_equal(tsr_onnx_meta(om, "tessera.test_accuracy"), "0.8750");
    assert_string_equal(tsr_onnx_meta(om, "tessera.train.command"), o.command);
    assert_string_equal(tsr_onnx_meta(om, "tessera.input.layout"), "NCHW");
    /* the first activation reads the folded batch norm's output "conv1_bn" */
    assert_string_equal(tsr_onnx_meta(om, "tessera.poly.conv1_bn"),
                        "output=conv1_act degree=2 channels=1");
    assert_string_equal(tsr_onnx_meta(om, "tessera.bound.conv1_bn"), "2.5");
    const tsr_layer *L = &m->layers[tsr_model_find_layer(m, "conv1_act")];
    char want[96];
    snprintf(want, sizeof want, "%.9g %.9g", (double)L->seen_min, (double)L->seen_max);
    assert_string_equal(tsr_onnx_meta(om, "tessera.range.conv1_bn"), want);
    assert_non_null(tsr_onnx_meta(om, "tessera.range.fc1_bn"));
    /* names and layout of the graph */
    assert_string_equal(om->inputs[0].name, "input");
    assert_int_equal(om->inputs[0].ndims, 4);
    assert_string_equal(om->inputs[0].dim_param[0], "N");
    assert_string_equal(om->outputs[0].name, "logits");
    int pow = 0;
    for (int i = 0; i < om->n_nodes; i++) {
        assert_true(strcmp(om->nodes[i].op_type, "BatchNormalization") != 0);
        pow += strcmp(om->nodes[i].op_type, "Pow") == 0;
    }
    assert_int_equal(pow, 2);
    /* import restores bound and recorded range */
    tsr_model *r;
    tt_ok(tsr_model_from_onnx(&r, om));
    const tsr_layer *R = &r->layers[tsr_model_find_layer(r, "conv1_act")];
    assert_float_equal(R->bound, 2.5f, 0);
    assert_float_equal(R->seen_min, L->seen_min, 1e-6);
    assert_float_equal(R->seen_max, L->seen_max, 1e-6);
    assert_int_equal(R->degree, 2);
    tsr_model_free(r);
    tsr_onnx_free(om);
    tsr_dataset_free(&ds);
    tsr_model_free(m);
    free(x);
}

/* Importer errors name the node. */
static void test_import_errors(void **state) {
    (void)state;
    tsr_onnx_model *m = tiny();
    tsr_model *r;
    /* an unknown op, listing all such nodes */
    free(m->nodes[1].op_type);
    m->nodes[1].op_type = strdup("Softmax");
    tt_fails(tsr_model_from_onnx(&r, m), TSR_ERR_UNSUPPORTED);
    expect_msg("'act' (Softmax)");
    free(m->nodes[1].op_type);
    m->nodes[1].op_type = strdup("Relu");
    tt_ok(tsr_model_from_onnx(&r, m));
    tsr_model_free(r);
    /* Mul of two different tensors */
    tsr_onnx_free(m);
    m = tiny();
    free(m->nodes[1].op_type);
    m->nodes[1].op_type = strdup("Mul");
    m->nodes[1].n_in = 2;
    m->nodes[1].in = realloc(m->nodes[1].in, 2 * sizeof(char *));
    m->nodes[1].in[1] = strdup("x");
    tt_fails(tsr_model_from_onnx(&r, m), TSR_ERR_UNSUPPORTED);
    expect_msg("node 'act' (Mul)");
    tsr_onnx_free(m);
    /* grouped convolution and asymmetric pads */
    tsr_act_spec act;
    tt_ok(tsr_act_parse("relu", &act));
    tsr_model *cm;
    tt_ok(tsr_model_build(&cm, "conv8", &act, 1));
    tsr_onnx_model *om;
    tt_ok(tsr_model_to_onnx(cm, NULL, &om));
    tsr_onnx_node *conv = &om->nodes[0];
    assert_string_equal(conv->op_type, "Conv");
    for (int k = 0; k < conv->n_attr; k++)
        if (strcmp(conv->attr[k].name, "group") == 0) conv->attr[k].i = 2;
    tt_fails(tsr_model_from_onnx(&r, om), TSR_ERR_UNSUPPORTED);
    expect_msg("'conv1' (Conv)");
    expect_msg("group=2");
    for (int k = 0; k < conv->n_attr; k++) {
        if (strcmp(conv->attr[k].name, "group") == 0) conv->attr[k].i = 1;
        if (strcmp(conv->attr[k].name, "pads") == 0) conv->attr[k].ints[2] = 0;
    }
    tt_fails(tsr_model_from_onnx(&r, om), TSR_ERR_UNSUPPORTED);
    expect_msg("asymmetric");
    /* weights that are not initializers */
    for (int k = 0; k < conv->n_attr; k++)
        if (strcmp(conv->attr[k].name, "pads") == 0) conv->attr[k].ints[2] = 1;
    free(conv->in[1]);
    conv->in[1] = strdup("input");
    tt_fails(tsr_model_from_onnx(&r, om), TSR_ERR_UNSUPPORTED);
    expect_msg("must be an initializer");
    tsr_onnx_free(om);
    tsr_model_free(cm);
}

/* The PyTorch-exported fixture loads and reproduces PyTorch's logits. */
static void test_pytorch_fixture(void **state) {
    (void)state;
    tsr_model *m;
    tt_ok(tsr_model_load_onnx(&m, tt_source_path("tests/data/torch_fixture.onnx")));
    ref_file rf;
    ref_load(&rf, "tests/data/torch_fixture.bin");
    const ref_tensor *x = ref_get(&rf, "x"), *y = ref_get(&rf, "logits");
    tt_ok(tsr_model_forward(m, x->data, 3));
    double e = 0, s = 1e-3;
    for (size_t i = 0; i < y->n; i++) {
        e = fmax(e, fabs(tsr_model_output(m)[i] - y->data[i]));
        s = fmax(s, fabs(y->data[i]));
    }
    if (e / s > 1e-5) fail_msg("PyTorch fixture: relative error %.3g", e / s);
    /* the polynomials were recognised: per-channel degree 2, then per-layer degree 2 */
    int polys = 0, gelu = 0, bn = 0;
    for (int i = 0; i < m->n_layers; i++) {
        const tsr_layer *L = &m->layers[i];
        if (L->kind == TSR_LAYER_POLY) {
            assert_int_equal(L->degree, 2);
            assert_int_equal(L->nc, polys == 0 ? 4 : 1);
            polys++;
        }
        gelu += L->kind == TSR_LAYER_GELU;
        bn += L->kind == TSR_LAYER_BATCHNORM;
    }
    assert_int_equal(polys, 2);
    assert_int_equal(gelu, 1);
    assert_int_equal(bn, 1);
    assert_string_equal(m->arch, "onnx");
    /* and it round-trips through our own writer */
    float out[30];
    memcpy(out, tsr_model_output(m), sizeof out);
    const char *path = tt_temp_path(".onnx");
    tt_ok(tsr_model_save_onnx(m, NULL, path));
    tsr_model *r;
    tt_ok(tsr_model_load_onnx(&r, path));
    unlink(path);
    tt_ok(tsr_model_forward(r, x->data, 3));
    for (int i = 0; i < 30; i++) assert_float_equal(tsr_model_output(r)[i], out[i], 1e-5);
    tsr_model_free(r);
    tsr_model_free(m);
    ref_free(&rf);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_reader_writer_roundtrip),
        cmocka_unit_test(test_validation),
        cmocka_unit_test(test_protobuf_level_errors),
        cmocka_unit_test(test_empty_string_attributes),
        cmocka_unit_test(test_constant_folding),
        cmocka_unit_test(test_model_roundtrip),
        cmocka_unit_test(test_teacher_layers_roundtrip),
        cmocka_unit_test(test_metadata),
        cmocka_unit_test(test_import_errors),
        cmocka_unit_test(test_pytorch_fixture),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
