/*
 * graph/graph.c - arrays, building a graph, finalize (validation,
 * topological order, shape inference) and the reference executor's driver.
 * Per-kind shape rules live in shape.c, kernels in exec.c.
 */
#include "graph/graph_internal.h"

#include "core/alloc.h"
#include "core/error.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- arrays ---------------------------------------------------------------- */

int64_t tsr_dims_numel(int rank, const int64_t *dims) {
    int64_t n = 1;
    for (int k = 0; k < rank; k++) {
        /* Each dimension is bounded too, not only the product: an empty shape such as
         * (0, 2^63 - 1) would otherwise pass and overflow the shape arithmetic downstream. */
        if (dims[k] < 0 || dims[k] > TSR_ARRAY_MAX_NUMEL) return -1;
        if (dims[k] > 0 && n > TSR_ARRAY_MAX_NUMEL / dims[k]) return -1;
        n *= dims[k];
    }
    return n > TSR_ARRAY_MAX_NUMEL ? -1 : n;
}

const char *tsr_dims_str(int rank, const int64_t *dims, char *buf, size_t n) {
    size_t at = 0;
    if (n == 0) return buf;
    buf[0] = '\0';
    at += (size_t)snprintf(buf, n, "(");
    for (int k = 0; k < rank && at < n; k++) {
        if (dims[k] < 0)
            at += (size_t)snprintf(buf + at, n - at, "%sN", k ? ", " : "");
        else
            at += (size_t)snprintf(buf + at, n - at, "%s%lld", k ? ", " : "", (long long)dims[k]);
    }
    if (at < n) snprintf(buf + at, n - at, ")");
    return buf;
}

tsr_status tsr_array_create(tsr_array **out, int rank, const int64_t *dims) {
    TSR_REQUIRE(out != NULL, "tsr_array_create: out is NULL");
    *out = NULL;
    if (rank < 0 || rank > TSR_ARRAY_MAX_RANK)
        return tsr_fail(TSR_ERR_SHAPE, "array rank %d is out of range 0..%d", rank,
                        TSR_ARRAY_MAX_RANK);
    TSR_REQUIRE(rank == 0 || dims != NULL, "tsr_array_create: dims is NULL");
    int64_t n = tsr_dims_numel(rank, dims);
    if (n < 0)
        return tsr_fail(TSR_ERR_SHAPE,
                        "array shape has a negative dimension, or a dimension or a total "
                        "of more than %lld elements",
                        (long long)TSR_ARRAY_MAX_NUMEL);
    tsr_array *t = calloc(1, sizeof *t);
    if (!t) return tsr_fail(TSR_ERR_NOMEM, "out of memory");
    t->rank = rank;
    for (int k = 0; k < rank; k++) t->dims[k] = dims[k];
    t->numel = (size_t)n;
    { /* never NULL (at least one element), so empty arrays need no special pointer cases */
        t->data = tsr_calloc_array((size_t)(n > 0 ? n : 1), sizeof(double));
        if (!t->data) {
            free(t);
            return tsr_fail(TSR_ERR_NOMEM, "out of memory for an array of %lld doubles",
                            (long long)n);
        }
    }
    *out = t;
    return TSR_OK;
}

tsr_status tsr_array_clone(tsr_array **out, const tsr_array *t) {
    TSR_TRY(tsr_array_create(out, t->rank, t->dims));
    if (t->numel) memcpy((*out)->data, t->data, t->numel * sizeof(double));
    return TSR_OK;
}

void tsr_array_free(tsr_array *t) {
    if (!t) return;
    tsr_free(t->data);
    free(t);
}

/* ---- kinds ------------------------------------------------------------------ */

static const char *const kind_names[TSR_NODE_KIND_COUNT_] = {
    [TSR_NODE_IDENTITY] = "identity",
    [TSR_NODE_ADD] = "add",
    [TSR_NODE_SUB] = "sub",
    [TSR_NODE_MUL] = "mul",
    [TSR_NODE_DIV] = "div",
    [TSR_NODE_NEG] = "neg",
    [TSR_NODE_POW] = "pow",
    [TSR_NODE_SQUARE] = "square",
    [TSR_NODE_POLY] = "poly",
    [TSR_NODE_CHEBYSHEV] = "chebyshev",
    [TSR_NODE_CONV] = "conv",
    [TSR_NODE_GEMM] = "gemm",
    [TSR_NODE_MATMUL] = "matmul",
    [TSR_NODE_AVGPOOL] = "avgpool",
    [TSR_NODE_GLOBAL_AVGPOOL] = "global_avgpool",
    [TSR_NODE_BATCHNORM] = "batchnorm",
    [TSR_NODE_FLATTEN] = "flatten",
    [TSR_NODE_RESHAPE] = "reshape",
    [TSR_NODE_TRANSPOSE] = "transpose",
    [TSR_NODE_CONCAT] = "concat",
    [TSR_NODE_SLICE] = "slice",
    [TSR_NODE_SQUEEZE] = "squeeze",
    [TSR_NODE_UNSQUEEZE] = "unsqueeze",
    [TSR_NODE_REDUCE_SUM] = "reduce_sum",
    [TSR_NODE_REDUCE_MEAN] = "reduce_mean",
    [TSR_NODE_PAD] = "pad",
    [TSR_NODE_RELU] = "relu",
    [TSR_NODE_LEAKY_RELU] = "leaky_relu",
    [TSR_NODE_SIGMOID] = "sigmoid",
    [TSR_NODE_TANH] = "tanh",
    [TSR_NODE_ERF] = "erf",
    [TSR_NODE_EXP] = "exp",
    [TSR_NODE_SQRT] = "sqrt",
    [TSR_NODE_RECIPROCAL] = "reciprocal",
    [TSR_NODE_SOFTMAX] = "softmax",
    [TSR_NODE_MAXPOOL] = "maxpool",
};

const char *tsr_graph_kind_name(tsr_graph_kind k) {
    if ((unsigned)k >= TSR_NODE_KIND_COUNT_) return "?";
    return kind_names[k];
}

int tsr_graph_kind_is_polynomial(tsr_graph_kind k) {
    return (unsigned)k <= TSR_NODE_PAD;
}

void tsr_graph_attrs_default(tsr_graph_attrs *a) {
    memset(a, 0, sizeof *a);
    a->axis = 1;
    a->keepdims = 1;
    a->group = 1;
    a->alpha = 1.0;
    a->beta = 1.0;
    a->epsilon = 1e-5;
    a->leak = 0.01;
}

const char *tsr_graph_node_label(const tsr_graph_node *n, char *buf, size_t len) {
    char esc[160];
    tsr_escape_controls(esc, sizeof esc, n->name, 0);
    snprintf(buf, len, "node '%s' (%s)", esc, tsr_graph_kind_name(n->kind));
    return buf;
}

/* ---- building ---------------------------------------------------------------- */

tsr_status tsr_graph_create(tsr_graph **out) {
    TSR_REQUIRE(out != NULL, "tsr_graph_create: out is NULL");
    *out = calloc(1, sizeof **out);
    if (!*out) return tsr_fail(TSR_ERR_NOMEM, "out of memory");
    return TSR_OK;
}

void tsr_graph_free(tsr_graph *g) {
    if (!g) return;
    for (int i = 0; i < g->n_values; i++) {
        free(g->values[i].name);
        tsr_array_free(g->values[i].data);
    }
    for (int i = 0; i < g->n_nodes; i++) {
        tsr_graph_node *n = &g->nodes[i];
        free(n->name);
        for (int k = 0; k < n->n_in; k++) free(n->in_names[k]);
        free(n->in_names);
        free(n->in);
    }
    for (int i = 0; i < g->n_outputs; i++) free(g->output_names[i]);
    free(g->values);
    free(g->nodes);
    free(g->inputs);
    free(g->output_names);
    free(g->outputs);
    free(g->order);
    free(g);
}

static int grow(void **arr, int *cap, int n, size_t sz) {
    if (n < *cap) return 0;
    if (*cap > (1 << 24)) return -1;
    int nc = *cap ? 2 * *cap : 8;
    void *p = realloc(*arr, (size_t)nc * sz);
    if (!p) return -1;
    *arr = p;
    *cap = nc;
    return 0;
}

int tsr_graph_find_value(const tsr_graph *g, const char *name) {
    for (int i = 0; i < g->n_values; i++)
        if (strcmp(g->values[i].name, name) == 0) return i;
    return -1;
}

static tsr_status new_value(tsr_graph *g, const char *name, tsr_value_kind kind, int *idx) {
    TSR_REQUIRE(g != NULL && name != NULL, "tsr_graph: graph or name is NULL");
    if (g->finalized)
        return tsr_fail(TSR_ERR_INVALID_ARG, "the graph is finalized: it cannot change");
    if (!name[0]) return tsr_fail(TSR_ERR_INVALID_ARG, "graph values need a non-empty name");
    if (tsr_graph_find_value(g, name) >= 0) {
        char esc[160];
        tsr_escape_controls(esc, sizeof esc, name, 0);
        return tsr_fail(TSR_ERR_INVALID_ARG, "value '%s' is defined twice", esc);
    }
    if (grow((void **)&g->values, &g->cap_values, g->n_values, sizeof *g->values))
        return tsr_fail(TSR_ERR_NOMEM, "out of memory");
    tsr_graph_value *v = &g->values[g->n_values];
    memset(v, 0, sizeof *v);
    v->name = strdup(name);
    if (!v->name) return tsr_fail(TSR_ERR_NOMEM, "out of memory");
    v->kind = kind;
    v->producer = -1;
    *idx = g->n_values++;
    return TSR_OK;
}

tsr_status tsr_graph_add_input(tsr_graph *g, const char *name, int rank, const int64_t *dims) {
    if (rank < 0 || rank > TSR_ARRAY_MAX_RANK)
        return tsr_fail(TSR_ERR_SHAPE, "input rank %d is out of range 0..%d", rank,
                        TSR_ARRAY_MAX_RANK);
    for (int k = 0; k < rank; k++)
        if (dims[k] < -1 || dims[k] > TSR_ARRAY_MAX_NUMEL)
            return tsr_fail(TSR_ERR_SHAPE,
                            "input dimension %lld is invalid (-1 = free, at most %lld)",
                            (long long)dims[k], (long long)TSR_ARRAY_MAX_NUMEL);
    if (grow((void **)&g->inputs, &g->cap_inputs, g->n_inputs, sizeof *g->inputs))
        return tsr_fail(TSR_ERR_NOMEM, "out of memory");
    int idx;
    TSR_TRY(new_value(g, name, TSR_VALUE_INPUT, &idx));
    g->values[idx].rank = rank;
    for (int k = 0; k < rank; k++) g->values[idx].dims[k] = dims[k];
    g->inputs[g->n_inputs++] = idx;
    return TSR_OK;
}

tsr_status tsr_graph_add_const(tsr_graph *g, const char *name, const tsr_array *t) {
    TSR_REQUIRE(t != NULL, "tsr_graph_add_const: array is NULL");
    tsr_array *copy;
    TSR_TRY(tsr_array_clone(&copy, t));
    int idx;
    tsr_status st = new_value(g, name, TSR_VALUE_CONST, &idx);
    if (st != TSR_OK) {
        tsr_array_free(copy);
        return st;
    }
    tsr_graph_value *v = &g->values[idx];
    v->data = copy;
    v->rank = t->rank;
    memcpy(v->dims, t->dims, sizeof v->dims);
    return TSR_OK;
}

tsr_status tsr_graph_add_node(tsr_graph *g, tsr_graph_kind kind, const char *name, int n_in,
                              const char *const *in, const char *out,
                              const tsr_graph_attrs *attrs) {
    TSR_REQUIRE(g != NULL && out != NULL, "tsr_graph_add_node: graph or output is NULL");
    TSR_REQUIRE(n_in == 0 || in != NULL, "tsr_graph_add_node: inputs are NULL");
    if ((unsigned)kind >= TSR_NODE_KIND_COUNT_)
        return tsr_fail(TSR_ERR_INVALID_ARG, "node kind %d is unknown", (int)kind);
    if (n_in < 0 || n_in > 4096)
        return tsr_fail(TSR_ERR_INVALID_ARG, "node input count %d is out of range", n_in);
    if (grow((void **)&g->nodes, &g->cap_nodes, g->n_nodes, sizeof *g->nodes))
        return tsr_fail(TSR_ERR_NOMEM, "out of memory");
    int vi;
    TSR_TRY(new_value(g, out, TSR_VALUE_NODE, &vi));
    tsr_graph_node *n = &g->nodes[g->n_nodes];
    memset(n, 0, sizeof *n);
    n->kind = kind;
    n->out = vi;
    n->name = strdup(name && name[0] ? name : out);
    n->in_names = calloc((size_t)(n_in ? n_in : 1), sizeof *n->in_names);
    n->in = calloc((size_t)(n_in ? n_in : 1), sizeof *n->in);
    g->n_nodes++; /* owned by the graph from here on: freed with it on any failure */
    if (!n->name || !n->in_names || !n->in) return tsr_fail(TSR_ERR_NOMEM, "out of memory");
    for (int k = 0; k < n_in; k++) {
        n->in_names[k] = strdup(in[k] ? in[k] : "");
        if (!n->in_names[k]) return tsr_fail(TSR_ERR_NOMEM, "out of memory");
        n->n_in = k + 1;
    }
    if (attrs)
        n->a = *attrs;
    else
        tsr_graph_attrs_default(&n->a);
    g->values[vi].producer = g->n_nodes - 1;
    return TSR_OK;
}

tsr_status tsr_graph_add_output(tsr_graph *g, const char *name) {
    TSR_REQUIRE(g != NULL && name != NULL, "tsr_graph_add_output: graph or name is NULL");
    if (g->finalized)
        return tsr_fail(TSR_ERR_INVALID_ARG, "the graph is finalized: it cannot change");
    if (grow((void **)&g->output_names, &g->cap_outputs, g->n_outputs, sizeof *g->output_names))
        return tsr_fail(TSR_ERR_NOMEM, "out of memory");
    g->output_names[g->n_outputs] = strdup(name);
    if (!g->output_names[g->n_outputs]) return tsr_fail(TSR_ERR_NOMEM, "out of memory");
    g->n_outputs++;
    return TSR_OK;
}

/* ---- finalize ------------------------------------------------------------------- */

/* Inputs that must be constants, per kind (bit k = input k). */
static unsigned const_inputs(tsr_graph_kind k) {
    switch (k) {
    case TSR_NODE_DIV:
    case TSR_NODE_POW:
    case TSR_NODE_POLY:
    case TSR_NODE_CHEBYSHEV:
        return 1u << 1;
    case TSR_NODE_BATCHNORM:
        return 0x1eu;
    default:
        return 0;
    }
}

/* Allowed input counts per kind. */
static int count_ok(const tsr_graph_node *n) {
    switch (n->kind) {
    case TSR_NODE_ADD:
    case TSR_NODE_SUB:
    case TSR_NODE_MUL:
    case TSR_NODE_DIV:
    case TSR_NODE_POW:
    case TSR_NODE_POLY:
    case TSR_NODE_CHEBYSHEV:
    case TSR_NODE_MATMUL:
        return n->n_in == 2;
    case TSR_NODE_CONV:
    case TSR_NODE_GEMM:
        return n->n_in == 2 || n->n_in == 3;
    case TSR_NODE_BATCHNORM:
        return n->n_in == 5;
    case TSR_NODE_CONCAT:
        return n->n_in >= 1;
    default:
        return n->n_in == 1;
    }
}

static tsr_status resolve(tsr_graph *g) {
    char lab[224], esc[160];
    for (int i = 0; i < g->n_nodes; i++) {
        tsr_graph_node *n = &g->nodes[i];
        tsr_graph_node_label(n, lab, sizeof lab);
        if (!count_ok(n))
            return tsr_fail(TSR_ERR_FORMAT, "%s has %d inputs: not a valid count for its kind", lab,
                            n->n_in);
        unsigned ci = const_inputs(n->kind);
        for (int k = 0; k < n->n_in; k++) {
            n->in[k] = -1;
            if (!n->in_names[k][0]) {
                int optional = (n->kind == TSR_NODE_CONV || n->kind == TSR_NODE_GEMM) && k == 2;
                if (!optional) return tsr_fail(TSR_ERR_FORMAT, "%s: input %d is missing", lab, k);
                continue;
            }
            int v = tsr_graph_find_value(g, n->in_names[k]);
            if (v < 0) {
                tsr_escape_controls(esc, sizeof esc, n->in_names[k], 0);
                return tsr_fail(TSR_ERR_FORMAT,
                                "%s reads '%s', which no input, constant or node "
                                "defines",
                                lab, esc);
            }
            if ((ci >> k & 1u) && g->values[v].kind != TSR_VALUE_CONST) {
                tsr_escape_controls(esc, sizeof esc, n->in_names[k], 0);
                return tsr_fail(TSR_ERR_UNSUPPORTED,
                                "%s: input %d ('%s') must be a constant (Tessera evaluates this "
                                "kind only with a constant operand)",
                                lab, k, esc);
            }
            n->in[k] = v;
            g->values[v].n_uses++;
        }
    }
    g->outputs = calloc((size_t)(g->n_outputs ? g->n_outputs : 1), sizeof *g->outputs);
    if (!g->outputs) return tsr_fail(TSR_ERR_NOMEM, "out of memory");
    if (g->n_outputs == 0) return tsr_fail(TSR_ERR_FORMAT, "the graph has no output");
    for (int i = 0; i < g->n_outputs; i++) {
        int v = tsr_graph_find_value(g, g->output_names[i]);
        if (v < 0) {
            tsr_escape_controls(esc, sizeof esc, g->output_names[i], 0);
            return tsr_fail(TSR_ERR_FORMAT, "graph output '%s' is not defined", esc);
        }
        g->outputs[i] = v;
    }
    return TSR_OK;
}

/* Kahn's algorithm, stable (nodes keep their insertion order where possible). */
static tsr_status topo_order(tsr_graph *g) {
    int nn = g->n_nodes;
    g->order = calloc((size_t)(nn ? nn : 1), sizeof *g->order);
    char *done = calloc((size_t)(g->n_values ? g->n_values : 1), 1);
    if (!g->order || !done) {
        free(done);
        return tsr_fail(TSR_ERR_NOMEM, "out of memory");
    }
    for (int v = 0; v < g->n_values; v++) done[v] = g->values[v].kind != TSR_VALUE_NODE;
    int placed = 0;
    char *used = calloc((size_t)(nn ? nn : 1), 1);
    if (!used) {
        free(done);
        return tsr_fail(TSR_ERR_NOMEM, "out of memory");
    }
    /* O(n^2) in the worst case, linear for graphs already in order (ONNX files are). */
    int progress = 1;
    while (placed < nn && progress) {
        progress = 0;
        for (int i = 0; i < nn; i++) {
            if (used[i]) continue;
            const tsr_graph_node *n = &g->nodes[i];
            int ready = 1;
            for (int k = 0; k < n->n_in && ready; k++)
                if (n->in[k] >= 0 && !done[n->in[k]]) ready = 0;
            if (!ready) continue;
            used[i] = 1;
            done[n->out] = 1;
            g->order[placed++] = i;
            progress = 1;
        }
    }
    tsr_status st = TSR_OK;
    if (placed < nn) {
        char lab[224];
        for (int i = 0; i < nn; i++)
            if (!used[i]) {
                st = tsr_fail(TSR_ERR_FORMAT, "the graph has a cycle through %s",
                              tsr_graph_node_label(&g->nodes[i], lab, sizeof lab));
                break;
            }
    }
    free(used);
    free(done);
    return st;
}

/* Shapes of every value with free input dimensions set to 1. */
static tsr_status infer_declared(tsr_graph *g) {
    for (int v = 0; v < g->n_values; v++) {
        tsr_graph_value *val = &g->values[v];
        if (val->kind == TSR_VALUE_INPUT)
            for (int k = 0; k < val->rank; k++)
                if (val->dims[k] < 0) val->dims[k] = -1;
    }
    for (int oi = 0; oi < g->n_nodes; oi++) {
        tsr_graph_node *n = &g->nodes[g->order[oi]];
        int nin = n->n_in;
        int *r = calloc((size_t)nin + 1, sizeof *r);
        int64_t(*d)[TSR_ARRAY_MAX_RANK] = calloc((size_t)nin + 1, sizeof *d);
        const tsr_array **c = calloc((size_t)nin + 1, sizeof *c);
        if (!r || !d || !c) {
            free(r);
            free(d);
            free(c);
            return tsr_fail(TSR_ERR_NOMEM, "out of memory");
        }
        for (int k = 0; k < nin; k++) {
            r[k] = -1;
            if (n->in[k] < 0) continue;
            const tsr_graph_value *iv = &g->values[n->in[k]];
            r[k] = iv->rank;
            for (int j = 0; j < iv->rank; j++) d[k][j] = iv->dims[j] < 0 ? 1 : iv->dims[j];
            c[k] = iv->data;
        }
        tsr_graph_value *ov = &g->values[n->out];
        tsr_status st = tsr_graph_node_shape(g, n, r, (const int64_t(*)[TSR_ARRAY_MAX_RANK])d, c,
                                             &ov->rank, ov->dims);
        free(r);
        free(d);
        free(c);
        TSR_TRY(st);
    }
    return TSR_OK;
}

tsr_status tsr_graph_finalize(tsr_graph *g) {
    TSR_REQUIRE(g != NULL, "tsr_graph_finalize: graph is NULL");
    if (g->finalized) return TSR_OK;
    free(g->outputs);
    free(g->order);
    g->outputs = NULL;
    g->order = NULL;
    for (int v = 0; v < g->n_values; v++) g->values[v].n_uses = 0;
    TSR_TRY(resolve(g));
    TSR_TRY(topo_order(g));
    TSR_TRY(infer_declared(g));
    g->finalized = 1;
    return TSR_OK;
}

/* ---- queries ------------------------------------------------------------------ */

int tsr_graph_num_inputs(const tsr_graph *g) {
    return g->n_inputs;
}
int tsr_graph_num_outputs(const tsr_graph *g) {
    return g->n_outputs;
}
int tsr_graph_num_nodes(const tsr_graph *g) {
    return g->n_nodes;
}

const char *tsr_graph_input_name(const tsr_graph *g, int i) {
    return i >= 0 && i < g->n_inputs ? g->values[g->inputs[i]].name : NULL;
}

const char *tsr_graph_output_name(const tsr_graph *g, int i) {
    return i >= 0 && i < g->n_outputs ? g->output_names[i] : NULL;
}

tsr_status tsr_graph_value_shape(const tsr_graph *g, const char *name, int *rank, int64_t *dims) {
    int v = tsr_graph_find_value(g, name);
    if (v < 0) return tsr_fail(TSR_ERR_NOT_FOUND, "the graph has no value of that name");
    *rank = g->values[v].rank;
    for (int k = 0; k < *rank; k++) dims[k] = g->values[v].dims[k];
    return TSR_OK;
}

const tsr_array *tsr_graph_const(const tsr_graph *g, const char *name) {
    int v = tsr_graph_find_value(g, name);
    return v < 0 ? NULL : g->values[v].data;
}

static const tsr_graph_node *ordered(const tsr_graph *g, int i) {
    TSR_REQUIRE(g->finalized, "tsr_graph_node_*: finalize the graph first");
    TSR_REQUIRE(i >= 0 && i < g->n_nodes, "tsr_graph_node_*: index out of range");
    return &g->nodes[g->order[i]];
}

tsr_graph_kind tsr_graph_node_kind(const tsr_graph *g, int i) {
    return ordered(g, i)->kind;
}
const char *tsr_graph_node_name(const tsr_graph *g, int i) {
    return ordered(g, i)->name;
}
int tsr_graph_node_num_inputs(const tsr_graph *g, int i) {
    return ordered(g, i)->n_in;
}

const char *tsr_graph_node_input(const tsr_graph *g, int i, int k) {
    const tsr_graph_node *n = ordered(g, i);
    TSR_REQUIRE(k >= 0 && k < n->n_in, "tsr_graph_node_input: input index out of range");
    return n->in_names[k];
}

const char *tsr_graph_node_output(const tsr_graph *g, int i) {
    return g->values[ordered(g, i)->out].name;
}

const tsr_graph_attrs *tsr_graph_node_attrs(const tsr_graph *g, int i) {
    return &ordered(g, i)->a;
}

/* ---- shape inference and execution ------------------------------------------------ */

/*
 * One pass over the nodes in order. With run != 0 the values are computed
 * (arrays in vals[]), else only shapes (rank/dims per value).
 */
typedef struct run_state {
    int *rank;
    int64_t (*dims)[TSR_ARRAY_MAX_RANK];
    tsr_array **vals; /* run only: owned arrays of node values */
    int *uses_left;
} run_state;

static void state_free(const tsr_graph *g, run_state *s) {
    if (s->vals)
        for (int v = 0; v < g->n_values; v++)
            if (g->values[v].kind == TSR_VALUE_NODE) tsr_array_free(s->vals[v]);
    free(s->rank);
    free(s->dims);
    free(s->vals);
    free(s->uses_left);
}

static tsr_status check_input_shape(const tsr_graph *g, int i, int rank, const int64_t *dims) {
    const tsr_graph_value *v = &g->values[g->inputs[i]];
    char esc[160], want[160], got[160];
    int ok = rank == v->rank;
    for (int k = 0; ok && k < rank; k++)
        if (dims[k] < 0 || (v->dims[k] >= 0 && dims[k] != v->dims[k])) ok = 0;
    if (ok) return TSR_OK;
    tsr_escape_controls(esc, sizeof esc, v->name, 0);
    return tsr_fail(TSR_ERR_SHAPE, "input '%s' has shape %s: the graph wants %s", esc,
                    tsr_dims_str(rank, dims, got, sizeof got),
                    tsr_dims_str(v->rank, v->dims, want, sizeof want));
}

static tsr_status pass(const tsr_graph *g, run_state *s, int run) {
    int maxin = 1;
    for (int i = 0; i < g->n_nodes; i++)
        if (g->nodes[i].n_in > maxin) maxin = g->nodes[i].n_in;
    int *r = calloc((size_t)maxin, sizeof *r);
    int64_t(*d)[TSR_ARRAY_MAX_RANK] = calloc((size_t)maxin, sizeof *d);
    const tsr_array **c = calloc((size_t)maxin, sizeof *c);
    const tsr_array **in = calloc((size_t)maxin, sizeof *in);
    tsr_status st = TSR_OK;
    if (!r || !d || !c || !in) st = tsr_fail(TSR_ERR_NOMEM, "out of memory");
    for (int oi = 0; st == TSR_OK && oi < g->n_nodes; oi++) {
        const tsr_graph_node *n = &g->nodes[g->order[oi]];
        for (int k = 0; k < n->n_in; k++) {
            int v = n->in[k];
            r[k] = -1;
            c[k] = NULL;
            in[k] = NULL;
            if (v < 0) continue;
            r[k] = s->rank[v];
            memcpy(d[k], s->dims[v], sizeof d[k]);
            c[k] = g->values[v].data;
            if (run) in[k] = s->vals[v];
        }
        int o = n->out;
        st = tsr_graph_node_shape(g, n, r, (const int64_t(*)[TSR_ARRAY_MAX_RANK])d, c, &s->rank[o],
                                  s->dims[o]);
        if (st != TSR_OK || !run) continue;
        st = tsr_array_create(&s->vals[o], s->rank[o], s->dims[o]);
        if (st != TSR_OK) break;
        tsr_graph_node_exec(n, in, s->vals[o]);
        /* Free node values nobody reads any more (graph outputs are kept). */
        for (int k = 0; k < n->n_in; k++) {
            int v = n->in[k];
            if (v < 0 || g->values[v].kind != TSR_VALUE_NODE) continue;
            if (--s->uses_left[v] == 0) {
                tsr_array_free(s->vals[v]);
                s->vals[v] = NULL;
            }
        }
    }
    free(r);
    free(d);
    free(c);
    free(in);
    return st;
}

static tsr_status state_init(const tsr_graph *g, run_state *s, int run) {
    memset(s, 0, sizeof *s);
    size_t nv = (size_t)g->n_values;
    s->rank = calloc(nv, sizeof *s->rank);
    s->dims = calloc(nv, sizeof *s->dims);
    s->uses_left = calloc(nv, sizeof *s->uses_left);
    if (run) s->vals = calloc(nv, sizeof *s->vals);
    if (!s->rank || !s->dims || !s->uses_left || (run && !s->vals)) {
        state_free(g, s);
        return tsr_fail(TSR_ERR_NOMEM, "out of memory");
    }
    for (int v = 0; v < g->n_values; v++) {
        s->rank[v] = g->values[v].rank;
        memcpy(s->dims[v], g->values[v].dims, sizeof s->dims[v]);
        s->uses_left[v] = g->values[v].n_uses;
    }
    /* Graph outputs stay alive to the end. */
    for (int i = 0; i < g->n_outputs; i++) s->uses_left[g->outputs[i]] += 1;
    return TSR_OK;
}

tsr_status tsr_graph_infer_shapes(const tsr_graph *g, const int *in_rank,
                                  const int64_t (*in_dims)[TSR_ARRAY_MAX_RANK], int *out_rank,
                                  int64_t (*out_dims)[TSR_ARRAY_MAX_RANK]) {
    TSR_REQUIRE(g != NULL && g->finalized, "tsr_graph_infer_shapes: finalize the graph first");
    for (int i = 0; i < g->n_inputs; i++) TSR_TRY(check_input_shape(g, i, in_rank[i], in_dims[i]));
    run_state s;
    TSR_TRY(state_init(g, &s, 0));
    for (int i = 0; i < g->n_inputs; i++) {
        s.rank[g->inputs[i]] = in_rank[i];
        memcpy(s.dims[g->inputs[i]], in_dims[i], sizeof s.dims[0]);
    }
    tsr_status st = pass(g, &s, 0);
    if (st == TSR_OK)
        for (int i = 0; i < g->n_outputs; i++) {
            out_rank[i] = s.rank[g->outputs[i]];
            memcpy(out_dims[i], s.dims[g->outputs[i]], sizeof out_dims[0]);
        }
    state_free(g, &s);
    return st;
}

tsr_status tsr_graph_run(const tsr_graph *g, const tsr_array *const *inputs, tsr_array **outputs) {
    TSR_REQUIRE(g != NULL && g->finalized, "tsr_graph_run: finalize the graph first");
    TSR_REQUIRE(g->n_inputs == 0 || inputs != NULL, "tsr_graph_run: inputs are NULL");
    TSR_REQUIRE(outputs != NULL, "tsr_graph_run: outputs is NULL");
    for (int i = 0; i < g->n_outputs; i++) outputs[i] = NULL;
    for (int i = 0; i < g->n_inputs; i++) {
        TSR_REQUIRE(inputs[i] != NULL, "tsr_graph_run: an input is NULL");
        TSR_TRY(check_input_shape(g, i, inputs[i]->rank, inputs[i]->dims));
    }
    run_state s;
    TSR_TRY(state_init(g, &s, 1));
    for (int i = 0; i < g->n_inputs; i++) {
        int v = g->inputs[i];
        s.rank[v] = inputs[i]->rank;
        memcpy(s.dims[v], inputs[i]->dims, sizeof s.dims[0]);
        s.vals[v] = (tsr_array *)inputs[i]; /* borrowed: not freed (kind INPUT) */
    }
    for (int v = 0; v < g->n_values; v++)
        if (g->values[v].kind == TSR_VALUE_CONST) s.vals[v] = g->values[v].data; /* borrowed */
    tsr_status st = pass(g, &s, 1);
    for (int i = 0; st == TSR_OK && i < g->n_outputs; i++) {
        int v = g->outputs[i];
        if (g->values[v].kind == TSR_VALUE_NODE && s.uses_left[v] == 1) {
            outputs[i] = s.vals[v]; /* hand over; a later duplicate output gets a copy */
            s.vals[v] = NULL;
            s.uses_left[v] = 0;
        } else {
            const tsr_array *src = s.vals[v] ? s.vals[v] : NULL;
            if (!src) {
                for (int j = 0; j < i; j++)
                    if (g->outputs[j] == v) src = outputs[j];
            }
            TSR_ASSERT(src != NULL);
            st = tsr_array_clone(&outputs[i], src);
        }
    }
    if (st != TSR_OK)
        for (int i = 0; i < g->n_outputs; i++) {
            tsr_array_free(outputs[i]);
            outputs[i] = NULL;
        }
    state_free(g, &s);
    return st;
}
