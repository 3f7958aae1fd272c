/*
 * test_nn_plan6.c - plan format 6 (the model graph plus the compiler's
 * choices, nn/plan.c): PyTorch fixtures compiled, written, read back and run
 * encrypted on a small insecure ring give bit-identical outputs to the plan
 * before it was written; corrupted or truncated plans fail with a message.
 * With TSR_WRITE_FUZZ_CORPUS=DIR the plans and their graphs are written as
 * fuzz seeds (DIR/fuzz_nn_plan, DIR/fuzz_graph_read).
 */
#include "nn_check.h"

#include "core/alloc.h"
#include "core/io.h"
#include "ckks/serialize.h"
#include "nn/nn_internal.h"
#include "onnx/onnx.h"
#include "onnx/onnx_graph.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Offsets in a format-6 payload: version, spec with flags, security, preprocessing, source
 * hash, source name, notes, flags; then the program digest, the graph's u64 length and the
 * graph. */
#define OFF_DIGEST (4 + CKKS_SPEC_BYTES(1) + 4 + 24 + 32 + 256 + 512 + 4)
#define OFF_GLEN   (OFF_DIGEST + 32)
#define OFF_GRAPH  (OFF_GLEN + 8)

static void write_seed(const char *target, const char *name, const uint8_t *b, size_t n) {
    const char *dir = getenv("TSR_WRITE_FUZZ_CORPUS");
    if (!dir) return;
    char path[1024];
    snprintf(path, sizeof path, "%s/%s/%s", dir, target, name);
    FILE *fp = fopen(path, "wb");
    if (!fp) fail_msg("cannot write %s", path);
    fwrite(b, 1, n, fp);
    fclose(fp);
}

/* m compiled (batch packing, N = 2^11) and written: the plan; *buf, *len its bytes. */
static tsr_nn_plan *compile_written(tsr_nn_model *m, int batch, uint8_t **buf, size_t *len) {
    tsr_nn_compile_opts o;
    tt_nn_compile_opts(&o, batch, TSR_NN_PACK_BATCH, 11);
    tsr_nn_plan *p;
    tt_ok(tsr_nn_compile(m, &o, &p));
    tt_ok(tsr_nn_plan_to_bytes(p, buf, len));
    return p;
}

/* The format version of written plan bytes. */
static uint32_t written_version(const uint8_t *buf) {
    uint32_t version;
    memcpy(&version, buf + TSR_FRAME_HEADER_SIZE, 4);
    return version;
}

/* Run plan p on the input ciphertext file f (made with key id kid) on server; decrypt. */
static void run_plan(const tsr_nn_plan *p, tsr_backend *server, tsr_backend *client, const char *f,
                     const uint8_t *kid, int n, double *out) {
    tsr_nn_runner *r;
    tt_ok(tsr_nn_runner_create(p, server, &r));
    tsr_tile *ct, *res;
    int n2;
    tt_ok(tsr_nn_ct_load(p, tsr_nn_runner_backend(r), TSR_NN_CT_INPUT, f, kid, &ct, &n2));
    assert_int_equal(n2, n);
    tt_ok(tsr_nn_run(r, ct, &res, NULL));
    const char *g = tt_temp_path(".out.ct");
    tt_ok(tsr_nn_ct_save(p, res, TSR_NN_CT_OUTPUT, n, kid, g));
    tsr_tile_free(res);
    tsr_tile_free(ct);
    tsr_nn_runner_free(r);
    tt_ok(tsr_nn_ct_load(p, client, TSR_NN_CT_OUTPUT, g, kid, &res, &n2));
    tt_ok(tsr_nn_decrypt(p, res, n, out));
    tsr_tile_free(res);
    remove(g);
}

/* The built-in profile read without its prod_lincomb_term keys, as a profile made before
 * the term was measured: the reader then defaults it to 2 mul_plain + lincomb_term. */
static nn_profile *builtin_without_prod_term(void) {
    const char *in = nn_builtin_profile;
    char *txt = malloc(strlen(in) + 1), *o = txt;
    assert_non_null(txt);
    while (*in) {
        if (strncmp(in, " prod_lincomb_term=", 19) == 0) {
            in += 19;
            while (*in && *in != ' ' && *in != '\n') in++;
            continue;
        }
        *o++ = *in++;
    }
    *o = 0;
    nn_profile *p;
    tt_ok(nn_profile_parse((const uint8_t *)txt, strlen(txt), &p));
    free(txt);
    return p;
}

/*
 * One fixture: compile, check the plan is format 6, write it (bytes and file), read it
 * back, compare everything, then run both plans on the same encrypted input with the same
 * keys: the decrypted outputs must be equal bit for bit (and close to PyTorch's).
 */
static void round_trip(const char *name, int n, tsr_nn_packing pk, int want_contract) {
    char path[128];
    tsr_nn_model *m;
    tsr_onnx_data *xin, *yref;
    tt_nn_torch_fixture(name, &m, &xin, &yref);
    assert_non_null(m->graph);
    tsr_nn_compile_opts o;
    tt_nn_compile_opts(&o, n, pk, 11);
    tsr_nn_plan *p, *q, *f;
    tt_ok(tsr_nn_compile(m, &o, &p));
    int contract = 0;
    nn_profile *prof;
    tt_ok(nn_profile_load(NULL, &prof));
    for (int i = 0; i < p->prog->n_steps; i++) {
        const nn_step *s = &p->prog->steps[i];
        if (s->op != NN_OP_CONTRACT) continue;
        contract++;
        /* a product is a mul_const and two mul_plain (the step may have more constant terms);
         * the step costs products x prod_lincomb_term where the old price (before the term
         * was measured) had products x (2 mul_plain + lincomb_term), the rest the same:
         * mul_plain x mul_plain + mul_const x lincomb_term, plus mul_ct, rotations, rescales */
        assert_true(s->counts.mul_plain % 2 == 0);
        assert_true(s->counts.mul_const >= s->counts.mul_plain / 2);
        const double level = 0.5 * (s->level_in + s->level_out), products = s->counts.mul_plain / 2;
        nn_costs c;
        nn_profile_costs_at(prof, 11, level, &c);
        /* without the outputs' relinearizations, which a contract step prices at its input
         * level and a linear step at its mean level (nn_step_seconds) */
        nn_step y = *s;
        y.counts.mul_ct = 0;
        nn_step z = y;
        z.op = NN_OP_LINEAR; /* priced as mul_plain / lincomb terms: the old contract price */
        double was = nn_step_seconds(prof, &p->spec, &z), now = nn_step_seconds(prof, &p->spec, &y);
        const double diff = products * (c.prod_lincomb_term - 2 * c.mul_plain - c.lincomb_term);
        if (!(fabs(now - was - diff) <= 1e-12 * (now + was)))
            fail_msg("contract step %d: %.17g s, was %.17g s + %.17g", i, now, was, diff);
        /* a profile without the term (made before it was measured) gets the old price */
        nn_profile *old = builtin_without_prod_term();
        was = nn_step_seconds(old, &p->spec, &z);
        now = nn_step_seconds(old, &p->spec, &y);
        if (!(fabs(now - was) <= 1e-12 * was))
            fail_msg("contract step %d, old profile: %.17g s, was %.17g s", i, now, was);
        nn_profile_free(old);
    }
    nn_profile_free(prof);
    assert_int_equal(contract > 0, want_contract);
    uint8_t *buf;
    size_t len;
    tt_ok(tsr_nn_plan_to_bytes(p, &buf, &len));
    assert_int_equal(written_version(buf), 6);
    snprintf(path, sizeof path, "%s_v6.plan", name);
    write_seed("fuzz_nn_plan", path, buf, len);
    uint8_t *gb;
    size_t gl;
    tt_ok(tsr_graph_to_bytes(p->model->graph, &gb, &gl));
    snprintf(path, sizeof path, "%s.graph", name);
    write_seed("fuzz_graph_read", path, gb, gl);
    assert_memory_equal(buf + TSR_FRAME_HEADER_SIZE + OFF_GRAPH, gb, gl);
    tsr_graph_bytes_free(gb);
    tt_ok(tsr_nn_plan_from_bytes(&q, buf, len, TSR_CKKS_ALLOW_INSECURE_PARAMETERS));
    const char *file = tt_temp_path(".plan");
    tt_ok(tsr_nn_plan_save(p, file));
    tt_ok(tsr_nn_plan_load(&f, file, TSR_CKKS_ALLOW_INSECURE_PARAMETERS));
    remove(file);
    const tsr_nn_plan *back[2] = { q, f };
    for (int k = 0; k < 2; k++) {
        const tsr_nn_plan *b = back[k];
        char why[160];
        assert_int_equal(b->format, 6);
        assert_memory_equal(p->id, b->id, 32);
        assert_int_equal(nn_program_compare(p->prog, b->prog, why, sizeof why), 0);
        assert_true(nn_model_same(p->model, b->model));
        assert_int_equal(memcmp(&p->spec, &b->spec, sizeof p->spec), 0);
        assert_true(p->predicted_seconds == b->predicted_seconds);
        assert_true(p->predicted_mib == b->predicted_mib);
        for (int i = 0; i < p->prog->n_steps; i++)
            assert_true(p->prog->steps[i].predicted == b->prog->steps[i].predicted);
        assert_string_equal(p->choice, b->choice);
        assert_string_equal(p->model->source, b->model->source);
        assert_memory_equal(p->model->source_hash, b->model->source_hash, 32);
        assert_true(p->model->in_std == b->model->in_std);
        uint8_t *buf2;
        size_t len2;
        tt_ok(tsr_nn_plan_to_bytes(b, &buf2, &len2));
        assert_int_equal(len2, len);
        assert_memory_equal(buf2, buf, len);
        tsr_nn_bytes_free(buf2);
    }
    /* the same keys and input ciphertext through both plans */
    tsr_ckks_params *params;
    tt_ok(tsr_nn_plan_params(p, &params));
    tsr_ckks_secret_key *sk;
    tsr_ckks_relin_key *rk;
    tsr_ckks_galois_keys *gk;
    tt_ok(tsr_nn_keygen(p, params, &sk, &rk, &gk));
    tt_ok(tsr_nn_check_keys(q, rk, gk));
    tsr_backend *client, *server;
    tt_ok(tsr_backend_ckks_create(params, NULL, sk, NULL, NULL, &client));
    tt_ok(tsr_backend_ckks_create(params, NULL, NULL, rk, gk, &server));
    tsr_tile *ct;
    tt_ok(tsr_nn_encrypt(p, client, xin->a->data, n, &ct));
    uint8_t kid[TSR_CKKS_KEY_ID_BYTES];
    tsr_ckks_secret_key_id(sk, kid);
    char *in = strdup(tt_temp_path(".in.ct"));
    tt_ok(tsr_nn_ct_save(p, ct, TSR_NN_CT_INPUT, n, kid, in));
    tsr_tile_free(ct);
    int64_t k = tsr_nn_model_output_size(p->model);
    double *a = malloc((size_t)(n * k) * sizeof *a), *b = malloc((size_t)(n * k) * sizeof *b);
    run_plan(p, server, client, in, kid, n, a);
    run_plan(q, server, client, in, kid, n, b);
    assert_memory_equal(a, b, (size_t)(n * k) * sizeof *a);
    double e = 0;
    for (int64_t i = 0; i < n * k; i++) e = fmax(e, fabs(a[i] - yref->a->data[i]));
    if (e > 1e-3) fail_msg("%s: max error vs PyTorch %.3g", name, e);
    remove(in);
    free(in);
    free(a);
    free(b);
    tsr_backend_free(server);
    tsr_backend_free(client);
    tsr_ckks_galois_keys_free(gk);
    tsr_ckks_relin_key_free(rk);
    tsr_ckks_secret_key_free(sk);
    tsr_ckks_params_free(params);
    tsr_nn_bytes_free(buf);
    tsr_nn_plan_free(f);
    tsr_nn_plan_free(q);
    tsr_nn_plan_free(p);
    tsr_onnx_data_free(xin);
    tsr_onnx_data_free(yref);
    tsr_nn_model_free(m);
}

static void test_classifier(void **state) {
    (void)state;
    round_trip("cnn", 1, TSR_NN_PACK_TILED, 0);
}

static void test_autoencoder(void **state) {
    (void)state;
    round_trip("autoencoder", 2, TSR_NN_PACK_TILED, 0);
}

static void test_transformer_batch(void **state) {
    (void)state;
    round_trip("transformer_small", 4, TSR_NN_PACK_BATCH, 1);
}

/* rel imported after setting its metadata tessera.output to kind (the file is rewritten). */
static tsr_status import_with_output(const char *rel, const char *kind, tsr_nn_model **m) {
    tsr_onnx_model *om;
    tt_ok(tsr_onnx_load(&om, tt_source_path(rel)));
    tt_ok(tsr_onnx_set_meta(om, "tessera.output", kind));
    const char *f = tt_temp_path(".output.onnx");
    tt_ok(tsr_onnx_save(om, f));
    tsr_onnx_free(om);
    tsr_status st = tsr_nn_import_onnx(f, NULL, m, NULL);
    remove(f);
    return st;
}

/* The ONNX metadata tessera.output overrides the classifier guess, and plans keep it. */
static void test_output_metadata(void **state) {
    (void)state;
    static const struct {
        const char *rel, *kind;
        int guess, want;
    } cases[] = { { "tests/data/torch/cnn.onnx", "values", 1, 0 },
                  { "tests/data/torch/autoencoder.onnx", "classes", 0, 1 } };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        tsr_nn_model *m;
        tt_ok(tsr_nn_import_onnx(tt_source_path(cases[i].rel), NULL, &m, NULL));
        assert_int_equal(tsr_nn_model_is_classifier(m), cases[i].guess);
        tsr_nn_model_free(m);
        tt_ok(import_with_output(cases[i].rel, cases[i].kind, &m));
        assert_int_equal(tsr_nn_model_is_classifier(m), cases[i].want);
        uint8_t *buf;
        size_t len;
        tsr_nn_plan *q, *p = compile_written(m, 1, &buf, &len);
        assert_int_equal(written_version(buf), 6);
        tt_ok(tsr_nn_plan_from_bytes(&q, buf, len, TSR_CKKS_ALLOW_INSECURE_PARAMETERS));
        assert_int_equal(tsr_nn_model_is_classifier(tsr_nn_plan_model(q)), cases[i].want);
        assert_memory_equal(p->id, q->id, 32);
        tsr_nn_plan_free(q);
        tsr_nn_plan_free(p);
        tsr_nn_bytes_free(buf);
        tsr_nn_model_free(m);
    }
    tsr_nn_model *m = NULL;
    tt_fails(import_with_output("tests/data/torch/cnn.onnx", "logits", &m), TSR_ERR_FORMAT);
    assert_null(m);
}

/* A model changed after import no longer matches its graph: its plan is written in format 5
 * (the layers themselves), and still reads back with its id. */
static void test_changed_model(void **state) {
    (void)state;
    tsr_nn_model *m;
    tt_ok(tsr_nn_import_onnx(tt_source_path("tests/data/torch/cnn.onnx"), NULL, &m, NULL));
    m->layers[0].w[0] += 0.25;
    uint8_t *buf;
    size_t len;
    tsr_nn_plan *q, *p = compile_written(m, 1, &buf, &len);
    assert_null(p->model->graph);
    assert_int_equal(written_version(buf), 5);
    tt_ok(tsr_nn_plan_from_bytes(&q, buf, len, TSR_CKKS_ALLOW_INSECURE_PARAMETERS));
    assert_memory_equal(p->id, q->id, 32);
    assert_true(q->model->layers[0].w[0] == m->layers[0].w[0]);
    tsr_nn_plan_free(q);
    tsr_nn_bytes_free(buf);
    tsr_nn_plan_free(p);
    tsr_nn_model_free(m);
}

/* A small graph x (N, 4) -> Gemm (4 -> 3) -> Square -> out, its Gemm output named vname; the
 * Square's attributes are *sq_attrs when given. */
static tsr_graph *tiny_graph(const char *vname, const tsr_graph_attrs *sq_attrs) {
    tsr_graph *g;
    tt_ok(tsr_graph_create(&g));
    int64_t in[2] = { -1, 4 }, wd[2] = { 4, 3 };
    tt_ok(tsr_graph_add_input(g, "x", 2, in));
    tsr_array *w;
    tt_ok(tsr_array_create(&w, 2, wd));
    for (size_t i = 0; i < w->numel; i++) w->data[i] = 0.125 * (double)(i % 5) - 0.25;
    tt_ok(tsr_graph_add_const(g, "w", w));
    tsr_array_free(w);
    tsr_graph_attrs a;
    tsr_graph_attrs_default(&a);
    tt_ok(tsr_graph_add_node(g, TSR_NODE_GEMM, "fc", 2, (const char *[]){ "x", "w" }, vname, &a));
    tt_ok(tsr_graph_add_node(g, TSR_NODE_SQUARE, "sq", 1, (const char *[]){ vname }, "out",
                             sq_attrs ? sq_attrs : &a));
    tt_ok(tsr_graph_add_output(g, "out"));
    tt_ok(tsr_graph_finalize(g));
    return g;
}

/* g imported and compiled: the plan's format, written and read back. */
static int compiled_format(const tsr_graph *g) {
    tsr_nn_model *m;
    tt_ok(tsr_nn_model_from_graph(g, NULL, &m, NULL));
    uint8_t *buf;
    size_t len;
    tsr_nn_plan *q, *p = compile_written(m, 1, &buf, &len);
    uint32_t version = written_version(buf);
    tt_ok(tsr_nn_plan_from_bytes(&q, buf, len, TSR_CKKS_ALLOW_INSECURE_PARAMETERS));
    assert_memory_equal(p->id, q->id, 32);
    tsr_nn_plan_free(q);
    tsr_nn_bytes_free(buf);
    tsr_nn_plan_free(p);
    tsr_nn_model_free(m);
    return (int)version;
}

/* Value names have no length limit in ONNX: a 5000-byte one imports and compiles (the graph
 * wire form takes names up to the ONNX reader's bound). */
static void test_long_name(void **state) {
    (void)state;
    char *name = malloc(5001);
    memset(name, 'v', 5000);
    name[5000] = 0;
    tsr_graph *g = tiny_graph(name, NULL);
    assert_int_equal(compiled_format(g), 6);
    tsr_graph_free(g);
    free(name);
}

/* The steps of the plan test_corrupt edits: its step count sits before their predictions, the
 * three totals and the choice text. */
static int g_steps;
static size_t step_count_at(size_t n) {
    return n - 256 - 24 - 8 * (size_t)g_steps - 4;
}
static void edit_step_count(uint8_t *pay, size_t *n) {
    pay[step_count_at(*n)] ^= 1;
}
static void edit_ranges_longer(uint8_t *pay, size_t *n) {
    /* one more f64 at the end of the ranges block, as if the graph had another layer */
    size_t at = step_count_at(*n);
    memmove(pay + at + 8, pay + at, *n - at);
    memset(pay + at, 0, 8);
    *n += 8;
}
static void edit_ranges_shorter(uint8_t *pay, size_t *n) {
    size_t at = step_count_at(*n);
    memmove(pay + at - 8, pay + at, *n - at);
    *n -= 8;
}

static void expect(tsr_status got, tsr_status want, const char *what) {
    if (got != want)
        fail_msg("%s: status %d, expected %d (%s)", what, (int)got, (int)want, tsr_last_error());
}

/* pay[0..n) framed as a plan (the fingerprint of the frame buf) and read; written as the fuzz
 * seed `seed` when not NULL. */
static tsr_status frame_read(const uint8_t *buf, const uint8_t *pay, size_t n, const char *seed) {
    tsr_writer w;
    tsr_writer_init_mem(&w);
    tsr_frame_begin_write(&w, TSR_OBJ_PLAN, 0, buf + 12, n);
    tsr_write_bytes(&w, pay, n);
    tt_ok(tsr_frame_end_write(&w));
    size_t fl;
    uint8_t *framed = tsr_writer_take_buffer(&w, &fl);
    (void)tsr_writer_close(&w);
    if (seed) write_seed("fuzz_nn_plan", seed, framed, fl);
    tsr_nn_plan *q = NULL;
    tsr_status st = tsr_nn_plan_from_bytes(&q, framed, fl, TSR_CKKS_ALLOW_INSECURE_PARAMETERS);
    if (st == TSR_OK)
        tsr_nn_plan_free(q);
    else
        assert_null(q);
    tsr_free(framed);
    return st;
}

/* A graph its wire form cannot hold (a stray NaN in an attribute the node's kind does not read)
 * still imports and compiles; the plan is written in format 5. */
static void test_unwritable_graph(void **state) {
    (void)state;
    tsr_graph_attrs a;
    tsr_graph_attrs_default(&a);
    a.value = NAN;
    tsr_graph *g = tiny_graph("y", &a);
    assert_int_equal(compiled_format(g), 5);
    tsr_graph_free(g);
}

/* The payload of a plan's frame, changed by edit, framed again (a valid checksum), read. */
static tsr_status reframe(const uint8_t *buf, size_t len, size_t cut,
                          void (*edit)(uint8_t *pay, size_t *n)) {
    size_t n = len - TSR_FRAME_HEADER_SIZE - TSR_FRAME_HASH_SIZE;
    uint8_t *pay = malloc(n + 64);
    memcpy(pay, buf + TSR_FRAME_HEADER_SIZE, n);
    if (edit) edit(pay, &n);
    if (cut < n) n = cut;
    tsr_status st = frame_read(buf, pay, n, NULL);
    free(pay);
    return st;
}

/* The plan buf with its graph replaced by g's bytes (the graph length updated), read. */
static tsr_status regraph(const uint8_t *buf, size_t len, const tsr_graph *g, const char *seed) {
    const uint8_t *pay = buf + TSR_FRAME_HEADER_SIZE;
    size_t n = len - TSR_FRAME_HEADER_SIZE - TSR_FRAME_HASH_SIZE;
    uint64_t old;
    memcpy(&old, pay + OFF_GLEN, 8);
    uint8_t *gb;
    size_t gl;
    tt_ok(tsr_graph_to_bytes(g, &gb, &gl));
    size_t tail = n - OFF_GRAPH - (size_t)old, m = OFF_GRAPH + gl + tail;
    uint8_t *np = malloc(m);
    memcpy(np, pay, OFF_GLEN);
    const uint64_t gl64 = gl;
    memcpy(np + OFF_GLEN, &gl64, 8);
    memcpy(np + OFF_GRAPH, gb, gl);
    memcpy(np + OFF_GRAPH + gl, pay + OFF_GRAPH + old, tail);
    tsr_graph_bytes_free(gb);
    tsr_status st = frame_read(buf, np, m, seed);
    free(np);
    return st;
}

/* x (N, 32, 64) through `count` Transposes swapping its last two dimensions: each one a
 * measured 2048 x 2048 dense layer (2^22 weights) for about 750 bytes of graph. */
static tsr_graph *transpose_chain(int count) {
    tsr_graph *g;
    tt_ok(tsr_graph_create(&g));
    int64_t in[3] = { -1, 32, 64 };
    tt_ok(tsr_graph_add_input(g, "x", 3, in));
    tsr_graph_attrs a;
    tsr_graph_attrs_default(&a);
    a.n_perm = 3;
    a.perm[0] = 0;
    a.perm[1] = 2;
    a.perm[2] = 1;
    char prev[16] = "x", out[16];
    for (int i = 0; i < count; i++) {
        snprintf(out, sizeof out, "t%d", i);
        tt_ok(tsr_graph_add_node(g, TSR_NODE_TRANSPOSE, out, 1, (const char *[]){ prev }, out, &a));
        memcpy(prev, out, sizeof prev);
    }
    tt_ok(tsr_graph_add_output(g, prev));
    tt_ok(tsr_graph_finalize(g));
    return g;
}

/* The matrix of a data-movement layer of the lowering (no simplification): a 1 at (m, src(m)) of
 * an M x K matrix, 0 elsewhere; the bias 0 when it has one. */
static void check_moves(const nn_layer *y, int64_t M, int64_t K, int64_t (*src)(int64_t, int),
                        int arg, int has_bias) {
    assert_int_equal(y->kind, NN_DENSE);
    assert_int_equal(y->w_len, M * K);
    assert_int_equal(y->b_len, has_bias ? M : 0);
    for (int64_t m = 0; m < M; m++) {
        int64_t want = src(m, arg);
        for (int64_t i = 0; i < K; i++)
            if (y->w[m * K + i] != (i == want ? 1.0 : 0.0))
                fail_msg("w[%lld][%lld] = %g", (long long)m, (long long)i, y->w[m * K + i]);
        if (has_bias && y->b[m] != 0) fail_msg("b[%lld] = %g", (long long)m, y->b[m]);
    }
}

/* (rows, cols) transposed: output m = c * rows + r is input r * cols + c. */
static int64_t transposed_src(int64_t m, int rows) {
    int64_t cols = 2048 / rows, c = m / rows, r = m % rows;
    return r * cols + c;
}

/* (2, 3) concatenated to itself along dimension 1: the first input fills outputs 0..5, the
 * second 6..11 (-1: none). */
static int64_t concat_src(int64_t m, int second) {
    int64_t i = second ? m - 6 : m;
    return i >= 0 && i < 6 ? i : -1;
}

/* Transposes and a Concat lower to the matrices worked out above (nn/lower.c measures a data
 * movement by one run on the indices instead of K + 1 unit vectors: same matrices). */
static void test_data_movement(void **state) {
    (void)state;
    tsr_graph *g = transpose_chain(2);
    tsr_nn_model *m;
    tt_ok(nn_model_rebuild(g, 0, NULL, &m));
    assert_int_equal(m->n_layers, 2);
    check_moves(&m->layers[0], 2048, 2048, transposed_src, 32, 1);
    check_moves(&m->layers[1], 2048, 2048, transposed_src, 64, 1);
    tsr_nn_model_free(m);
    tsr_graph_free(g);
    tt_ok(tsr_graph_create(&g));
    int64_t in[3] = { -1, 2, 3 };
    tt_ok(tsr_graph_add_input(g, "x", 3, in));
    tsr_graph_attrs a;
    tsr_graph_attrs_default(&a);
    a.axis = -2;
    tt_ok(tsr_graph_add_node(g, TSR_NODE_CONCAT, "cat", 2, (const char *[]){ "x", "x" }, "y", &a));
    tt_ok(tsr_graph_add_output(g, "y"));
    tt_ok(tsr_graph_finalize(g));
    tt_ok(nn_model_rebuild(g, 0, NULL, &m));
    assert_int_equal(m->n_layers, 3);
    check_moves(&m->layers[0], 12, 6, concat_src, 0, 1);
    check_moves(&m->layers[1], 12, 6, concat_src, 1, 0);
    assert_int_equal(m->layers[2].kind, NN_ADD);
    tsr_nn_model_free(m);
    tsr_graph_free(g);
}

/* A plan's graph may not lower to more than its budget (at least 2^26 weights, 64 per payload
 * byte, 4096 layers): 17 Transposes (13 KB) would be 17 x 2^22 weights, then multiplied
 * together by the simplifier. */
static void test_lowering_budget(void **state) {
    (void)state;
    tsr_graph *g = transpose_chain(3);
    nn_budget b = { .max_weights = (int64_t)1 << 23, .max_layers = 4096 };
    tsr_nn_model *m = NULL;
    tt_fails(nn_model_rebuild(g, 0, &b, &m), TSR_ERR_FORMAT);
    assert_true(b.over);
    assert_non_null(strstr(tsr_last_error(), "lowers to"));
    assert_null(m);
    nn_budget big = { .max_weights = (int64_t)1 << 24, .max_layers = 4096 };
    tt_ok(nn_model_rebuild(g, 0, &big, &m));
    assert_false(big.over);
    tsr_nn_model_free(m);
    nn_budget few = { .max_weights = (int64_t)1 << 24, .max_layers = 2 };
    tt_fails(nn_model_rebuild(g, 0, &few, &m), TSR_ERR_FORMAT);
    tsr_graph_free(g);
    /* in a plan: the graph of a small one replaced by the chain */
    tsr_graph *t = tiny_graph("y", NULL);
    tsr_nn_model *tm;
    tt_ok(tsr_nn_model_from_graph(t, NULL, &tm, NULL));
    uint8_t *buf;
    size_t len;
    tsr_nn_plan *p = compile_written(tm, 1, &buf, &len);
    g = transpose_chain(17);
    expect(regraph(buf, len, g, "transpose_chain_v6.plan"), TSR_ERR_FORMAT, "17 x 2^22 weights");
    assert_non_null(strstr(tsr_last_error(), "plan: its graph lowers to"));
    tsr_graph_free(g);
    tsr_nn_bytes_free(buf);
    tsr_nn_plan_free(p);
    tsr_nn_model_free(tm);
    tsr_graph_free(t);
}

static void edit_version(uint8_t *pay, size_t *n) {
    (void)n;
    pay[0] = 7;
}
static void edit_glen(uint8_t *pay, size_t *n) {
    (void)n;
    pay[OFF_GLEN + 6] = 1;
}
static void edit_graph_magic(uint8_t *pay, size_t *n) {
    (void)n;
    pay[OFF_GRAPH] ^= 1;
}
static void edit_graph_version(uint8_t *pay, size_t *n) {
    (void)n;
    pay[OFF_GRAPH + 4] = 2;
}
static void edit_flags(uint8_t *pay, size_t *n) {
    (void)n;
    pay[OFF_DIGEST - 4] = 2;
}
/* flags 39 (bit 5) and 0x107: bits a later rule set or option would add to the five known
 * (rules 0-2, tessera.output 3-4) */
static void edit_flags_later(uint8_t *pay, size_t *n) {
    (void)n;
    pay[OFF_DIGEST - 4] = 39;
}
/* flags 31: V3 with tessera.output kind 3, which does not exist */
static void edit_flags_out_kind(uint8_t *pay, size_t *n) {
    (void)n;
    pay[OFF_DIGEST - 4] = 31;
}
static void edit_flags_high(uint8_t *pay, size_t *n) {
    (void)n;
    pay[OFF_DIGEST - 4] = 7;
    pay[OFF_DIGEST - 3] = 1;
}
static void edit_digest(uint8_t *pay, size_t *n) {
    (void)n;
    pay[OFF_DIGEST + 5] ^= 0x10;
}
/* A mixed chain: bit 31 of the spec's levels word and its two low fields (1 level at 2^40),
 * which the spec codec accepts; plans use uniform chains. */
static void edit_mixed_chain(uint8_t *pay, size_t *n) {
    const size_t end = 4 + CKKS_SPEC_BYTES(1);
    memmove(pay + end + 8, pay + end, *n - end);
    const uint8_t low[8] = { 1, 0, 0, 0, 40, 0, 0, 0 };
    memcpy(pay + end, low, sizeof low);
    pay[4 + 12 + 3] |= 0x80;
    *n += 8;
}
static void edit_trailing(uint8_t *pay, size_t *n) {
    pay[(*n)++] = 0;
}
static void edit_steps(uint8_t *pay, size_t *n) {
    /* the payload ends with the steps' predictions, three totals and the choice text: make
     * the last step's prediction a NaN */
    pay[*n - 256 - 24 - 1] = 0xff;
    pay[*n - 256 - 24 - 2] = 0xff;
}

static void test_corrupt(void **state) {
    (void)state;
    tsr_nn_model *m;
    tt_ok(tsr_nn_import_onnx(tt_source_path("tests/data/torch/transformer_small.onnx"), NULL, &m,
                             NULL));
    uint8_t *buf;
    size_t len;
    tsr_nn_plan *p = compile_written(m, 4, &buf, &len);
    const size_t n = len - TSR_FRAME_HEADER_SIZE - TSR_FRAME_HASH_SIZE;
    expect(reframe(buf, len, SIZE_MAX, NULL), TSR_OK, "the plan reframed");
    expect(reframe(buf, len, SIZE_MAX, edit_version), TSR_ERR_VERSION, "format 7");
    assert_non_null(strstr(tsr_last_error(), "compile the model again"));
    expect(reframe(buf, len, SIZE_MAX, edit_glen), TSR_ERR_FORMAT, "a graph longer than the plan");
    assert_non_null(strstr(tsr_last_error(), "graph of"));
    expect(reframe(buf, len, SIZE_MAX, edit_graph_magic), TSR_ERR_FORMAT, "a graph without magic");
    assert_non_null(strstr(tsr_last_error(), "malformed graph"));
    expect(reframe(buf, len, SIZE_MAX, edit_graph_version), TSR_ERR_VERSION, "graph version 2");
    assert_non_null(strstr(tsr_last_error(), "graph wire version"));
    expect(reframe(buf, len, SIZE_MAX, edit_flags), TSR_ERR_FORMAT, "flags 2 (no rule set)");
    assert_non_null(strstr(tsr_last_error(), "malformed plan"));
    expect(reframe(buf, len, SIZE_MAX, edit_flags_later), TSR_ERR_VERSION, "flags 39");
    assert_non_null(strstr(tsr_last_error(), "flags 39) this build does not know: use a newer"));
    expect(reframe(buf, len, SIZE_MAX, edit_flags_out_kind), TSR_ERR_FORMAT, "flags 31");
    assert_non_null(strstr(tsr_last_error(), "malformed plan"));
    expect(reframe(buf, len, SIZE_MAX, edit_flags_high), TSR_ERR_VERSION, "flags 0x107");
    assert_non_null(strstr(tsr_last_error(), "flags 263) this build does not know"));
    /* a build lowering the graph to another program than the writer's refuses the plan */
    expect(reframe(buf, len, SIZE_MAX, edit_digest), TSR_ERR_FORMAT, "another program");
    assert_non_null(strstr(tsr_last_error(), "compile the model again"));
    expect(reframe(buf, len, SIZE_MAX, edit_trailing), TSR_ERR_FORMAT, "bytes after the end");
    expect(reframe(buf, len, SIZE_MAX, edit_mixed_chain), TSR_ERR_FORMAT, "a mixed chain");
    assert_non_null(strstr(tsr_last_error(), "plans use uniform chains"));
    expect(reframe(buf, len, SIZE_MAX, edit_steps), TSR_ERR_FORMAT, "a NaN prediction");
    g_steps = p->prog->n_steps;
    expect(reframe(buf, len, SIZE_MAX, edit_step_count), TSR_ERR_FORMAT, "another step count");
    assert_non_null(strstr(tsr_last_error(), "step predictions for the"));
    expect(reframe(buf, len, SIZE_MAX, edit_ranges_longer), TSR_ERR_FORMAT, "ranges + 1 layer");
    expect(reframe(buf, len, SIZE_MAX, edit_ranges_shorter), TSR_ERR_FORMAT, "ranges - 1 layer");
    /* a graph that reads but does not lower (a ReLU) */
    tsr_graph *rg;
    tt_ok(tsr_graph_create(&rg));
    const int64_t xd[2] = { -1, 4 };
    tt_ok(tsr_graph_add_input(rg, "x", 2, xd));
    tt_ok(tsr_graph_add_node(rg, TSR_NODE_RELU, "relu", 1, (const char *[]){ "x" }, "y", NULL));
    tt_ok(tsr_graph_add_output(rg, "y"));
    tt_ok(tsr_graph_finalize(rg));
    expect(regraph(buf, len, rg, NULL), TSR_ERR_FORMAT, "a graph with a ReLU");
    assert_non_null(strstr(tsr_last_error(), "its graph cannot be lowered"));
    tsr_graph_free(rg);
    /* every truncation of the payload (a valid frame around fewer bytes) fails cleanly; the
     * sanitizer build tries fewer cut points */
    const size_t step = tt_sanitized() ? 997 : 61;
    for (size_t cut = 0; cut < n; cut += step)
        if (reframe(buf, len, cut, NULL) == TSR_OK) fail_msg("a plan cut at %zu read", cut);
    /* and of the frame itself */
    for (size_t cut = 0; cut < len; cut += step * 7) {
        tsr_nn_plan *q = NULL;
        if (tsr_nn_plan_from_bytes(&q, buf, cut, TSR_CKKS_ALLOW_INSECURE_PARAMETERS) == TSR_OK)
            fail_msg("a frame cut at %zu read", cut);
        assert_null(q);
    }
    tsr_nn_bytes_free(buf);
    tsr_nn_plan_free(p);
    tsr_nn_model_free(m);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_classifier),        cmocka_unit_test(test_autoencoder),
        cmocka_unit_test(test_transformer_batch), cmocka_unit_test(test_changed_model),
        cmocka_unit_test(test_output_metadata),   cmocka_unit_test(test_corrupt),
        cmocka_unit_test(test_long_name),         cmocka_unit_test(test_data_movement),
        cmocka_unit_test(test_lowering_budget),   cmocka_unit_test(test_unwritable_graph),
    };
    if (getenv("TT_FILTER")) cmocka_set_test_filter(getenv("TT_FILTER"));
    return cmocka_run_group_tests(tests, NULL, NULL);
}
