/*
 * cli/cmd_onnx_test.c - `tessera onnx-test DIR...`: the ONNX backend node
 * tests (model.onnx + test_data_set_N/{input,output}_K.pb, as Debian's
 * libonnx-testdata ships them) through the importer and the plaintext
 * executor, compared as ONNX's backend runner does (rtol 1e-3, atol 1e-7).
 * Test inputs that sit where Tessera needs a constant (weights of batch
 * norm, divisors, exponents, shape operands) and integer inputs are bound
 * as constants; the others stay graph inputs.
 *
 * --encrypted: a test that passes in plaintext is also run encrypted when
 * its graph compiles for encrypted inference: the first input encrypted
 * (its dimension 0 as the batch), every other input bound as the server's
 * plaintext constants, a plan compiled on a small test ring, keys, CKKS
 * encryption, the encrypted run and decryption; the outputs must agree
 * with the reference ones within 1e-3 of the largest |reference value|.
 */
#include "cli.h"

#include "core/alloc.h"
#include "core/error.h"
#include "onnx/onnx_graph.h"
#include "tessera/nn.h"

#include <dirent.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define MAX_DIRS 4096
#define MAX_IO   32
#define RTOL     1e-3
#define ATOL     1e-7
#define ENC_TOL  1e-3 /* encrypted: relative to the largest |reference value| */

typedef enum outcome { PASS = 0, FAIL, UNSUPPORTED } outcome;

typedef struct op_count {
    char op[64];
    int n[3];
    char first_reason[3][200]; /* first non-pass reason per outcome */
} op_count;

typedef struct tally {
    op_count *ops;
    int n_ops, cap;
    int total[3];
} tally;

static int is_dir(const char *p) {
    struct stat st;
    return stat(p, &st) == 0 && S_ISDIR(st.st_mode);
}

static int is_file(const char *p) {
    struct stat st;
    return stat(p, &st) == 0 && S_ISREG(st.st_mode);
}

static int cmp_str(const void *a, const void *b) {
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Subdirectories of dir whose names start with prefix, sorted (caller frees). */
static int list_dirs(const char *dir, const char *prefix, char ***out) {
    *out = NULL;
    DIR *d = opendir(dir);
    if (!d) return 0;
    int n = 0, cap = 0;
    char **v = NULL;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (strncmp(e->d_name, prefix, strlen(prefix)) != 0) continue;
        size_t len = strlen(dir) + strlen(e->d_name) + 2;
        char *p = malloc(len);
        if (!p) break;
        snprintf(p, len, "%s/%s", dir, e->d_name);
        if (!is_dir(p) || n >= MAX_DIRS) {
            free(p);
            continue;
        }
        if (n == cap) {
            cap = cap ? 2 * cap : 64;
            char **nv = realloc(v, (size_t)cap * sizeof *v);
            if (!nv) {
                free(p);
                break;
            }
            v = nv;
        }
        v[n++] = p;
    }
    closedir(d);
    if (n) qsort(v, (size_t)n, sizeof *v, cmp_str);
    *out = v;
    return n;
}

static void free_list(char **v, int n) {
    for (int i = 0; i < n; i++) free(v[i]);
    free(v);
}

/* The operator a test is about: the op of every node, or "(several ops)". */
static void test_op(const tsr_onnx_model *m, char *op, size_t n) {
    /* The reader folds Constant nodes into initializers: a model left without nodes was one. */
    snprintf(op, n, "%s", m->n_nodes ? m->nodes[0].op_type : "Constant");
    for (int i = 1; i < m->n_nodes; i++)
        if (strcmp(m->nodes[i].op_type, m->nodes[0].op_type) != 0) {
            snprintf(op, n, "(expanded: several ops)");
            return;
        }
}

/* Is graph input `name` read where Tessera needs a constant? */
static int needs_const(const tsr_onnx_model *m, const char *name) {
    for (int i = 0; i < m->n_nodes; i++)
        for (int k = 0; k < m->nodes[i].n_in; k++)
            if (strcmp(m->nodes[i].in[k], name) == 0 &&
                tsr_onnx_const_input(m->nodes[i].op_type, k))
                return 1;
    return 0;
}

static void free_data(tsr_onnx_data **d, int n) {
    for (int i = 0; i < n; i++) tsr_onnx_data_free(d[i]);
}

/* Read prefix_K.pb for K = 0, 1, ... */
static tsr_status read_set(const char *dir, const char *prefix, tsr_onnx_data **d, int *n) {
    *n = 0;
    for (int k = 0; k < MAX_IO; k++) {
        char path[4096];
        snprintf(path, sizeof path, "%s/%s_%d.pb", dir, prefix, k);
        if (!is_file(path)) break;
        tsr_status st = tsr_onnx_data_load(&d[k], path);
        if (st != TSR_OK) return st;
        *n = k + 1;
    }
    return TSR_OK;
}

static int close_enough(double got, double want) {
    if (isnan(want)) return isnan(got);
    if (isinf(want)) return got == want;
    return fabs(got - want) <= ATOL + RTOL * fabs(want);
}

/* One data set: bind, import, run, compare. Returns the outcome and a reason. */
static int roundtrip;      /* --roundtrip */
static int non_polynomial; /* --non-polynomial */
static int encrypted;      /* --encrypted */

/*
 * The encrypted workflow on one data set: input 0 encrypted, the other inputs
 * bound as constants; UNSUPPORTED when the graph does not lower or compile.
 */
static outcome run_encrypted(const tsr_onnx_model *m, tsr_onnx_data **in, int n_in,
                             tsr_onnx_data **want, int n_out, char *why, size_t wn) {
    if (n_out != 1 || n_in < 1 ||
        (in[0]->dtype != TSR_ONNX_FLOAT && in[0]->dtype != TSR_ONNX_DOUBLE)) {
        snprintf(why, wn, "encrypted: needs one real input to encrypt and one output");
        return UNSUPPORTED;
    }
    const tsr_array *x = in[0]->a, *w = want[0]->a;
    if (x->rank < 2 || x->dims[0] < 1 || x->dims[0] > 64 || w->rank < 1 ||
        w->dims[0] != x->dims[0]) {
        snprintf(why, wn, "encrypted: dimension 0 of the input and the output is not a batch");
        return UNSUPPORTED;
    }
    const tsr_onnx_data *bind[MAX_IO];
    for (int k = 1; k < n_in; k++) bind[k - 1] = in[k];
    tsr_onnx_import_opts o;
    tsr_onnx_import_opts_default(&o);
    o.n_bind = n_in - 1;
    o.bind = bind;
    tsr_graph *g = NULL;
    tsr_nn_model *nm = NULL;
    tsr_nn_plan *p = NULL;
    tsr_ckks_params *params = NULL;
    tsr_ckks_secret_key *sk = NULL;
    tsr_ckks_relin_key *rk = NULL;
    tsr_ckks_galois_keys *gk = NULL;
    tsr_backend *be = NULL;
    tsr_nn_runner *r = NULL;
    tsr_tile *ct = NULL, *res = NULL;
    double *out = NULL;
    char *rep = NULL;
    outcome oc = UNSUPPORTED;
    int n = (int)x->dims[0];
    tsr_status st = tsr_onnx_to_graph(m, &o, &g, NULL);
    if (st == TSR_OK) st = tsr_nn_model_from_graph(g, NULL, &nm, &rep);
    if (st != TSR_OK) {
        const char *nl = rep ? strchr(rep, '\n') : NULL;
        snprintf(why, wn, "encrypted: %.*s", rep ? (int)(nl ? nl - rep : (long)strlen(rep)) : 900,
                 rep ? rep : tsr_last_error());
        goto done;
    }
    tsr_nn_compile_opts co;
    tsr_nn_compile_opts_default(&co);
    co.batch = n;
    co.ckks_flags = TSR_CKKS_ALLOW_INSECURE_PARAMETERS;
    co.min_log_n = 11;
    co.max_log_n = 13;
    co.calib = x->data;
    co.calib_n = n;
    if ((st = tsr_nn_compile(nm, &co, &p)) != TSR_OK) {
        snprintf(why, wn, "encrypted: compile: %s", tsr_last_error());
        goto done;
    }
    oc = FAIL;
    int64_t k = tsr_nn_model_output_size(nm);
    if ((int64_t)w->numel != k * n) {
        snprintf(why, wn, "encrypted: %lld outputs per sample, the reference has %zu in all",
                 (long long)k, w->numel);
        goto done;
    }
    out = malloc((size_t)(k * n) * sizeof *out);
    if (!out) st = tsr_fail(TSR_ERR_NOMEM, "out of memory");
    if (st == TSR_OK) st = tsr_nn_plan_params(p, &params);
    if (st == TSR_OK) st = tsr_nn_keygen(p, params, &sk, &rk, &gk);
    if (st == TSR_OK) st = tsr_backend_ckks_create(params, NULL, sk, rk, gk, &be);
    if (st == TSR_OK) st = tsr_nn_runner_create(p, be, &r);
    if (st == TSR_OK) st = tsr_nn_encrypt(p, tsr_nn_runner_backend(r), x->data, n, &ct);
    if (st == TSR_OK) st = tsr_nn_run(r, ct, &res, NULL);
    if (st == TSR_OK) st = tsr_nn_decrypt(p, res, n, out);
    if (st != TSR_OK) {
        snprintf(why, wn, "encrypted run: %s", tsr_last_error());
        goto done;
    }
    double mx = 0, err = 0;
    size_t at = 0;
    for (size_t i = 0; i < w->numel; i++) mx = fmax(mx, fabs(w->data[i]));
    for (size_t i = 0; i < w->numel; i++) {
        double e = fabs(out[i] - w->data[i]);
        if (!(e <= err)) {
            err = e;
            at = i;
        }
    }
    if (!(err <= ENC_TOL * fmax(mx, 1e-30))) {
        snprintf(why, wn, "encrypted: element %zu: got %.9g, expected %.9g (max |ref| %.3g)", at,
                 out[at], w->data[at], mx);
        goto done;
    }
    oc = PASS;
done:
    tsr_tile_free(res);
    tsr_tile_free(ct);
    tsr_nn_runner_free(r);
    tsr_backend_free(be);
    tsr_ckks_galois_keys_free(gk);
    tsr_ckks_relin_key_free(rk);
    tsr_ckks_secret_key_free(sk);
    tsr_ckks_params_free(params);
    tsr_nn_plan_free(p);
    tsr_nn_model_free(nm);
    tsr_nn_string_free(rep);
    tsr_graph_free(g);
    free(out);
    tsr_clear_error();
    return oc;
}

static outcome run_set(const tsr_onnx_model *m, const char *dir, char *why, size_t wn) {
    tsr_onnx_data *in[MAX_IO] = { 0 }, *want[MAX_IO] = { 0 };
    int n_in = 0, n_out = 0;
    outcome res = FAIL;
    tsr_graph *g = NULL;
    tsr_array *got[MAX_IO] = { 0 };
    const tsr_onnx_data *bind[MAX_IO];
    const tsr_array *feed[MAX_IO];
    int n_bind = 0, n_feed = 0;
    tsr_status st = read_set(dir, "input", in, &n_in);
    if (st == TSR_OK) st = read_set(dir, "output", want, &n_out);
    if (st != TSR_OK) {
        res = tsr_last_error()[0] && st == TSR_ERR_UNSUPPORTED ? UNSUPPORTED : FAIL;
        snprintf(why, wn, "test data: %s", tsr_last_error());
        goto done;
    }
    if (n_in != m->n_inputs || n_out != m->n_outputs) {
        snprintf(why, wn, "%d inputs / %d outputs in the data, the model has %d / %d", n_in, n_out,
                 m->n_inputs, m->n_outputs);
        goto done;
    }
    for (int k = 0; k < n_in; k++) {
        /* The data files name their tensors; fall back on the model's order. */
        free(in[k]->name);
        in[k]->name = strdup(m->inputs[k].name);
        if (!in[k]->name) {
            snprintf(why, wn, "out of memory");
            goto done;
        }
        int integer = in[k]->dtype != TSR_ONNX_FLOAT && in[k]->dtype != TSR_ONNX_DOUBLE;
        if (integer || needs_const(m, m->inputs[k].name))
            bind[n_bind++] = in[k];
        else
            feed[n_feed++] = in[k]->a;
    }
    tsr_onnx_import_opts o;
    tsr_onnx_import_opts_default(&o);
    o.n_bind = n_bind;
    o.bind = bind;
    o.keep_non_polynomial = non_polynomial;
    st = tsr_onnx_to_graph(m, &o, &g, NULL);
    if (st != TSR_OK) {
        res = st == TSR_ERR_UNSUPPORTED ? UNSUPPORTED : FAIL;
        snprintf(why, wn, "import: %s", tsr_last_error());
        goto done;
    }
    if (roundtrip) { /* graph -> ONNX bytes -> graph: the exporter must keep the function */
        tsr_onnx_model *m2 = NULL, *m3 = NULL;
        uint8_t *bytes = NULL;
        size_t len = 0;
        tsr_graph *g2 = NULL;
        st = tsr_onnx_from_graph(g, &m2);
        if (st == TSR_OK) st = tsr_onnx_serialize(m2, &bytes, &len);
        if (st == TSR_OK) st = tsr_onnx_parse(&m3, bytes, len);
        tsr_onnx_import_opts o3;
        tsr_onnx_import_opts_default(&o3);
        o3.keep_non_polynomial = non_polynomial;
        if (st == TSR_OK) st = tsr_onnx_to_graph(m3, &o3, &g2, NULL);
        tsr_onnx_free(m2);
        tsr_onnx_free(m3);
        tsr_free(bytes);
        if (st != TSR_OK) {
            res = st == TSR_ERR_UNSUPPORTED ? UNSUPPORTED : FAIL;
            snprintf(why, wn, "export round trip: %s", tsr_last_error());
            goto done;
        }
        tsr_graph_free(g);
        g = g2;
    }
    if (tsr_graph_num_inputs(g) != n_feed) {
        snprintf(why, wn, "the graph has %d inputs, the test feeds %d", tsr_graph_num_inputs(g),
                 n_feed);
        goto done;
    }
    st = tsr_graph_run(g, feed, got);
    if (st != TSR_OK) {
        snprintf(why, wn, "run: %s", tsr_last_error());
        goto done;
    }
    for (int k = 0; k < n_out; k++) {
        const tsr_array *w = want[k]->a, *o2 = got[k];
        int same = w->rank == o2->rank;
        for (int j = 0; same && j < w->rank; j++) same = w->dims[j] == o2->dims[j];
        char sw[128], sg[128];
        if (!same) {
            snprintf(why, wn, "output %d has shape %s, expected %s", k,
                     tsr_dims_str(o2->rank, o2->dims, sg, sizeof sg),
                     tsr_dims_str(w->rank, w->dims, sw, sizeof sw));
            goto done;
        }
        for (size_t i = 0; i < w->numel; i++)
            if (!close_enough(o2->data[i], w->data[i])) {
                snprintf(why, wn, "output %d element %zu: got %.9g, expected %.9g", k, i,
                         o2->data[i], w->data[i]);
                goto done;
            }
    }
    res = encrypted ? run_encrypted(m, in, n_in, want, n_out, why, wn) : PASS;
done:
    for (int k = 0; k < MAX_IO; k++) tsr_array_free(got[k]);
    tsr_graph_free(g);
    free_data(in, n_in);
    free_data(want, n_out);
    return res;
}

static outcome run_test(const char *dir, char *op, size_t opn, char *why, size_t wn) {
    char path[4096];
    snprintf(path, sizeof path, "%s/model.onnx", dir);
    snprintf(op, opn, "(unreadable)");
    tsr_onnx_model *m;
    tsr_status st = tsr_onnx_load(&m, path);
    if (st != TSR_OK) {
        snprintf(why, wn, "%s", tsr_last_error());
        return st == TSR_ERR_UNSUPPORTED ? UNSUPPORTED : FAIL;
    }
    test_op(m, op, opn);
    char **sets;
    int ns = list_dirs(dir, "test_data_set_", &sets);
    outcome res = ns ? PASS : FAIL;
    if (!ns) snprintf(why, wn, "no test_data_set_* directory");
    for (int i = 0; i < ns && res == PASS; i++) res = run_set(m, sets[i], why, wn);
    free_list(sets, ns);
    tsr_onnx_free(m);
    return res;
}

static op_count *op_entry(tally *t, const char *op) {
    for (int i = 0; i < t->n_ops; i++)
        if (strcmp(t->ops[i].op, op) == 0) return &t->ops[i];
    if (t->n_ops == t->cap) {
        int cap = t->cap ? 2 * t->cap : 64;
        op_count *p = realloc(t->ops, (size_t)cap * sizeof *p);
        if (!p) return NULL;
        t->ops = p;
        t->cap = cap;
    }
    op_count *e = &t->ops[t->n_ops++];
    memset(e, 0, sizeof *e);
    snprintf(e->op, sizeof e->op, "%s", op);
    return e;
}

static int cmp_op(const void *a, const void *b) {
    return strcmp(((const op_count *)a)->op, ((const op_count *)b)->op);
}

/* Newlines of multi-line reports become "; " so each test is one line. */
static void one_line(char *s) {
    char esc[1024];
    for (char *p = s; *p; p++)
        if (*p == '\n') *p = ' ';
    tsr_escape_controls(esc, sizeof esc, s, 0);
    snprintf(s, 1024, "%s", esc);
}

static void usage(FILE *f) {
    fprintf(f,
            "usage: tessera onnx-test [--quiet] [--table] [--all-pass] [--roundtrip]\n"
            "                          [--non-polynomial] [--encrypted] DIR...\n\n"
            "Run ONNX backend node tests through the importer and the plaintext executor.\n"
            "Each DIR is a test (model.onnx + test_data_set_N/) or a directory of tests\n"
            "(e.g. /usr/share/libonnx-testdata/data/node). Outputs are compared with\n"
            "rtol %g, atol %g, as ONNX's backend runner does. Prints PASS / FAIL /\n"
            "UNSUPPORTED per test with the reason, then the counts per operator.\n\n"
            "  --quiet     print only failures and the summary\n"
            "  --table     print the per-operator counts as a Markdown table\n"
            "  --all-pass  exit 1 unless every test passes (default: unless none fails)\n"
            "  --roundtrip also export each imported graph to ONNX, read it back and run that\n"
            "  --non-polynomial  also run non-polynomial operators (Relu, Softmax, MaxPool,\n"
            "              LayerNormalization, ...) in plaintext instead of reporting them\n"
            "  --encrypted also run each test that passes in plaintext through the encrypted\n"
            "              workflow when its graph compiles: the first input encrypted (its\n"
            "              dimension 0 as the batch), the others as plaintext constants, a\n"
            "              plan on a small insecure test ring (N = 2^11..2^13), keys, CKKS\n"
            "              encryption, the run, decryption; outputs must agree within %g of\n"
            "              the largest |reference value|. Tests that do not lower or compile\n"
            "              count as UNSUPPORTED (with the reason)\n\n"
            "Exit status: 0 ok, 1 a test failed, 2 bad usage.\n",
            RTOL, ATOL, ENC_TOL);
}

int tsr_cmd_onnx_test(int argc, char **argv) {
    if (cli_wants_help(argc, argv)) {
        usage(stdout);
        return 0;
    }
    int quiet = 0, table = 0, all_pass = 0;
    static const char *pos[MAX_DIRS];
    memset(pos, 0, sizeof pos);
    cli_opt opts[] = {
        { "--quiet", CLI_FLAG, &quiet, 0, 0 },
        { "--table", CLI_FLAG, &table, 0, 0 },
        { "--all-pass", CLI_FLAG, &all_pass, 0, 0 },
        { "--roundtrip", CLI_FLAG, &roundtrip, 0, 0 },
        { "--non-polynomial", CLI_FLAG, &non_polynomial, 0, 0 },
        { "--encrypted", CLI_FLAG, &encrypted, 0, 0 },
    };
    int rc =
        cli_parse_args("onnx-test", argc, argv, opts, sizeof opts / sizeof opts[0], pos, MAX_DIRS);
    if (rc) return rc;
    if (!pos[0]) return cli_usage_error("onnx-test", "give at least one test directory");
    tally t;
    memset(&t, 0, sizeof t);
    static const char *names[3] = { "PASS", "FAIL", "UNSUPPORTED" };
    for (int d = 0; d < MAX_DIRS && pos[d]; d++) {
        char **tests = NULL;
        int nt;
        char mpath[4096];
        snprintf(mpath, sizeof mpath, "%s/model.onnx", pos[d]);
        if (is_file(mpath)) {
            tests = malloc(sizeof *tests);
            if (!tests || !(tests[0] = strdup(pos[d]))) {
                free(tests);
                return cli_fail("onnx-test", TSR_ERR_NOMEM, "listing tests");
            }
            nt = 1;
        } else {
            if (!is_dir(pos[d]))
                return cli_usage_error("onnx-test", "'%s' is not a directory", pos[d]);
            nt = list_dirs(pos[d], "", &tests);
        }
        for (int i = 0; i < nt; i++) {
            snprintf(mpath, sizeof mpath, "%s/model.onnx", tests[i]);
            if (!is_file(mpath)) continue;
            char op[64], why[1024] = "";
            outcome r = run_test(tests[i], op, sizeof op, why, sizeof why);
            one_line(why);
            const char *base = strrchr(tests[i], '/');
            base = base ? base + 1 : tests[i];
            if (!quiet || r == FAIL)
                printf("%-11s %s (%s)%s%s\n", names[r], base, op, why[0] ? ": " : "", why);
            op_count *e = op_entry(&t, op);
            if (!e) {
                free_list(tests, nt);
                free(t.ops);
                return cli_fail("onnx-test", TSR_ERR_NOMEM, "counting");
            }
            if (r != PASS && !e->first_reason[r][0])
                snprintf(e->first_reason[r], sizeof e->first_reason[r], "%s: %.150s", base, why);
            e->n[r]++;
            t.total[r]++;
        }
        free_list(tests, nt);
    }
    if (t.n_ops) qsort(t.ops, (size_t)t.n_ops, sizeof *t.ops, cmp_op);
    printf("\n");
    if (table) printf("| op | pass | fail | unsupported |\n|---|---|---|---|\n");
    for (int i = 0; i < t.n_ops; i++) {
        const op_count *e = &t.ops[i];
        if (table)
            printf("| %s | %d | %d | %d |\n", e->op, e->n[PASS], e->n[FAIL], e->n[UNSUPPORTED]);
        else
            printf("%-28s pass %3d  fail %3d  unsupported %3d\n", e->op, e->n[PASS], e->n[FAIL],
                   e->n[UNSUPPORTED]);
    }
    printf("\nonnx-test: %d passed, %d failed, %d unsupported\n", t.total[PASS], t.total[FAIL],
           t.total[UNSUPPORTED]);
    free(t.ops);
    if (t.total[FAIL] || (all_pass && t.total[UNSUPPORTED])) return 1;
    if (t.total[PASS] + t.total[FAIL] + t.total[UNSUPPORTED] == 0) {
        fprintf(stderr, "tessera onnx-test: no tests found\n");
        return 1;
    }
    return 0;
}
