/*
 * onnx/onnx_export.c - tsr_graph -> ONNX (opset 13): one operator per node
 * kind, integer operands (shapes, axes, slices, pads) as INT64
 * initializers, polynomials in the Mul/Pow/Add pattern of docs/ONNX.md (so
 * the importer's recogniser folds them back into one node), Chebyshev
 * series converted to the power basis of the normalised variable.
 */
#include "onnx/onnx_graph.h"

#include "core/alloc.h"
#include "core/error.h"
#include "graph/graph_internal.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct ectx {
    const tsr_graph *g;
    tsr_onnx_model *m;
    char buf[8][512]; /* rotating helper-name buffers */
    int nb;
} ectx;

static const char *hname(ectx *e, const char *out, const char *suffix) {
    char *b = e->buf[e->nb++ % 8];
    snprintf(b, sizeof e->buf[0], "%s/%s", out, suffix);
    return b;
}

static tsr_status ints_init(ectx *e, const char *name, const int64_t *v, int n) {
    int64_t d[1] = { n };
    return tsr_onnx_add_init_i64(e->m, name, 1, d, v);
}

static tsr_status float_init(ectx *e, const char *name, int rank, const int64_t *dims,
                             const double *v, size_t n) {
    float *f = calloc(n ? n : 1, sizeof *f);
    if (!f) return tsr_fail(TSR_ERR_NOMEM, "out of memory");
    for (size_t i = 0; i < n; i++) f[i] = (float)v[i];
    tsr_status st = tsr_onnx_add_init(e->m, name, rank, dims, f);
    free(f);
    return st;
}

static tsr_status node(ectx *e, const char *op, const char *name, int n_in, const char *const *in,
                       const char *out) {
    const char *o[1] = { out };
    return tsr_onnx_add_node(e->m, op, name, n_in, in, 1, o);
}

/* Coefficient k of every channel as a constant broadcasting along the axis of x. */
static tsr_status coef_init(ectx *e, const char *name, const tsr_array *c, int k, int xrank,
                            int64_t axis) {
    if (c->rank == 1) return float_init(e, name, 0, NULL, &c->data[k], 1);
    int64_t nch = c->dims[0], dims[TSR_ARRAY_MAX_RANK];
    int r = xrank - (int)axis;
    dims[0] = nch;
    for (int j = 1; j < r; j++) dims[j] = 1;
    double *v = calloc((size_t)nch, sizeof *v);
    if (!v) return tsr_fail(TSR_ERR_NOMEM, "out of memory");
    for (int64_t ch = 0; ch < nch; ch++) v[ch] = c->data[ch * c->dims[1] + k];
    tsr_status st = float_init(e, name, r, dims, v, (size_t)nch);
    free(v);
    return st;
}

/* y = sum_k c_k x^k as Mul / Pow / Add (docs/ONNX.md). */
static tsr_status poly_nodes(ectx *e, const char *nname, const char *x, const tsr_array *c,
                             int xrank, int64_t axis, const char *y) {
    int deg = (int)c->dims[c->rank - 1] - 1;
    char s[512], t[512], xk[512], ck[512], ek[512];
    snprintf(ck, sizeof ck, "%s/c1", y);
    if (deg >= 1) {
        TSR_TRY(coef_init(e, ck, c, 1, xrank, axis));
    } else {
        double zero = 0;
        TSR_TRY(float_init(e, ck, 0, NULL, &zero, 1));
    }
    snprintf(s, sizeof s, "%s/t1", y);
    TSR_TRY(node(e, "Mul", hname(e, nname, "mul1"), 2, (const char *[]){ x, ck }, s));
    for (int k = 2; k <= deg; k++) {
        double ev = k;
        snprintf(ek, sizeof ek, "%s/e%d", y, k);
        snprintf(xk, sizeof xk, "%s/x%d", y, k);
        snprintf(ck, sizeof ck, "%s/c%d", y, k);
        snprintf(t, sizeof t, "%s/t%d", y, k);
        TSR_TRY(float_init(e, ek, 0, NULL, &ev, 1));
        char nm[64];
        snprintf(nm, sizeof nm, "pow%d", k);
        TSR_TRY(node(e, "Pow", hname(e, nname, nm), 2, (const char *[]){ x, ek }, xk));
        TSR_TRY(coef_init(e, ck, c, k, xrank, axis));
        snprintf(nm, sizeof nm, "mul%d", k);
        TSR_TRY(node(e, "Mul", hname(e, nname, nm), 2, (const char *[]){ xk, ck }, t));
        char s2[512];
        snprintf(s2, sizeof s2, "%s/s%d", y, k);
        snprintf(nm, sizeof nm, "add%d", k);
        TSR_TRY(node(e, "Add", hname(e, nname, nm), 2, (const char *[]){ s, t }, s2));
        snprintf(s, sizeof s, "%s", s2);
    }
    snprintf(ck, sizeof ck, "%s/c0", y);
    TSR_TRY(coef_init(e, ck, c, 0, xrank, axis));
    return node(e, "Add", hname(e, nname, "add0"), 2, (const char *[]){ s, ck }, y);
}

/* Chebyshev coefficients (rows of m) -> power basis in the same variable. */
static tsr_status cheb_to_power(const tsr_array *c, tsr_array **out) {
    int64_t m = c->dims[c->rank - 1], rows = c->rank == 2 ? c->dims[0] : 1;
    TSR_TRY(tsr_array_create(out, c->rank, c->dims));
    double *tk = calloc((size_t)(3 * m), sizeof *tk); /* T_{k-1}, T_k, T_{k+1} in power basis */
    if (!tk) {
        tsr_array_free(*out);
        return tsr_fail(TSR_ERR_NOMEM, "out of memory");
    }
    for (int64_t r = 0; r < rows; r++) {
        double *p0 = tk, *p1 = tk + m, *p2 = tk + 2 * m, *dst = (*out)->data + r * m;
        const double *src = c->data + r * m;
        memset(tk, 0, (size_t)(3 * m) * sizeof *tk);
        p0[0] = 1;
        if (m > 1) p1[1] = 1;
        for (int64_t k = 0; k < m; k++) {
            const double *tkp = k == 0 ? p0 : p1;
            for (int64_t j = 0; j < m; j++) dst[j] += src[k] * tkp[j];
            if (k >= 1 && k + 1 < m) { /* T_{k+1} = 2u T_k - T_{k-1} */
                for (int64_t j = 0; j < m; j++) p2[j] = (j ? 2 * p1[j - 1] : 0) - p0[j];
                memcpy(p0, p1, (size_t)m * sizeof *p0);
                memcpy(p1, p2, (size_t)m * sizeof *p1);
            }
        }
    }
    free(tk);
    return TSR_OK;
}

static tsr_status export_reduce(ectx *e, const tsr_graph_node *n);
static tsr_status export_pad(ectx *e, const tsr_graph_node *n);

static tsr_status export_node(ectx *e, const tsr_graph_node *n) {
    const tsr_graph *g = e->g;
    const tsr_graph_attrs *a = &n->a;
    const char *out = g->values[n->out].name, *nm = n->name;
    const char *in[8] = { 0 };
    for (int k = 0; k < n->n_in && k < 8; k++) in[k] = n->in_names[k];
    const tsr_graph_value *x = &g->values[n->in[0]];
    switch (n->kind) {
    case TSR_NODE_IDENTITY:
        return node(e, "Identity", nm, 1, in, out);
    case TSR_NODE_ADD:
        return node(e, "Add", nm, 2, in, out);
    case TSR_NODE_SUB:
        return node(e, "Sub", nm, 2, in, out);
    case TSR_NODE_MUL:
        return node(e, "Mul", nm, 2, in, out);
    case TSR_NODE_DIV:
        return node(e, "Div", nm, 2, in, out);
    case TSR_NODE_NEG:
        return node(e, "Neg", nm, 1, in, out);
    case TSR_NODE_POW:
        return node(e, "Pow", nm, 2, in, out);
    case TSR_NODE_SQUARE:
        return node(e, "Mul", nm, 2, (const char *[]){ in[0], in[0] }, out);
    case TSR_NODE_POLY: {
        int64_t ax = a->axis < 0 ? a->axis + x->rank : a->axis;
        return poly_nodes(e, nm, in[0], g->values[n->in[1]].data, x->rank, ax, out);
    }
    case TSR_NODE_CHEBYSHEV: {
        /* u = x * (2 / (hi - lo)) + (-(lo + hi) / (hi - lo)), then the power basis in u. */
        double sc = 2.0 / (a->hi - a->lo), sh = -(a->lo + a->hi) / (a->hi - a->lo);
        const char *scn = hname(e, out, "scale"), *shn = hname(e, out, "shift");
        const char *xs = hname(e, out, "xs"), *u = hname(e, out, "u");
        char u_copy[512];
        snprintf(u_copy, sizeof u_copy, "%s", u);
        TSR_TRY(float_init(e, scn, 0, NULL, &sc, 1));
        TSR_TRY(float_init(e, shn, 0, NULL, &sh, 1));
        TSR_TRY(node(e, "Mul", hname(e, nm, "scale"), 2, (const char *[]){ in[0], scn }, xs));
        TSR_TRY(node(e, "Add", hname(e, nm, "shift"), 2, (const char *[]){ xs, shn }, u_copy));
        tsr_array *p;
        TSR_TRY(cheb_to_power(g->values[n->in[1]].data, &p));
        int64_t ax = a->axis < 0 ? a->axis + x->rank : a->axis;
        tsr_status st = poly_nodes(e, nm, u_copy, p, x->rank, ax, out);
        tsr_array_free(p);
        return st;
    }
    case TSR_NODE_RELU:
        return node(e, "Relu", nm, 1, in, out);
    case TSR_NODE_SIGMOID:
        return node(e, "Sigmoid", nm, 1, in, out);
    case TSR_NODE_TANH:
        return node(e, "Tanh", nm, 1, in, out);
    case TSR_NODE_ERF:
        return node(e, "Erf", nm, 1, in, out);
    case TSR_NODE_EXP:
        return node(e, "Exp", nm, 1, in, out);
    case TSR_NODE_SQRT:
        return node(e, "Sqrt", nm, 1, in, out);
    case TSR_NODE_RECIPROCAL:
        return node(e, "Reciprocal", nm, 1, in, out);
    case TSR_NODE_LEAKY_RELU:
        TSR_TRY(node(e, "LeakyRelu", nm, 1, in, out));
        return tsr_onnx_add_attr_float(e->m, "alpha", (float)a->leak);
    case TSR_NODE_SOFTMAX:
        TSR_TRY(node(e, "Softmax", nm, 1, in, out));
        return tsr_onnx_add_attr_int(e->m, "axis", a->axis);
    case TSR_NODE_MAXPOOL:
    case TSR_NODE_CONV:
    case TSR_NODE_AVGPOOL: {
        const int64_t *k = a->kernel;
        if (n->kind == TSR_NODE_CONV) k = g->values[n->in[1]].dims + 2;
        tsr_pool_geom geo;
        TSR_TRY(tsr_graph_pool_geom(n, x->rank, x->dims, k, &geo));
        if (a->auto_pad != TSR_AUTOPAD_NOTSET)
            for (int i = 0; i < geo.ns; i++)
                if (x->dims[2 + i] < 0)
                    return tsr_fail(TSR_ERR_UNSUPPORTED,
                                    "node '%s': auto_pad with a free spatial "
                                    "size cannot be exported",
                                    nm);
        int64_t pads[2 * TSR_GRAPH_MAX_SPATIAL];
        for (int i = 0; i < geo.ns; i++) {
            pads[i] = geo.pb[i];
            pads[geo.ns + i] = geo.pe[i];
        }
        if (n->kind == TSR_NODE_CONV)
            TSR_TRY(node(e, "Conv", nm, n->n_in, in, out));
        else
            TSR_TRY(
                node(e, n->kind == TSR_NODE_MAXPOOL ? "MaxPool" : "AveragePool", nm, 1, in, out));
        if (n->kind == TSR_NODE_MAXPOOL) {
            TSR_TRY(tsr_onnx_add_attr_ints(e->m, "kernel_shape", geo.k, (size_t)geo.ns));
            TSR_TRY(tsr_onnx_add_attr_ints(e->m, "strides", geo.s, (size_t)geo.ns));
            TSR_TRY(tsr_onnx_add_attr_ints(e->m, "pads", pads, (size_t)(2 * geo.ns)));
            TSR_TRY(tsr_onnx_add_attr_ints(e->m, "dilations", geo.d, (size_t)geo.ns));
            return tsr_onnx_add_attr_int(e->m, "ceil_mode", a->ceil_mode);
        }
        TSR_TRY(tsr_onnx_add_attr_ints(e->m, "kernel_shape", geo.k, (size_t)geo.ns));
        TSR_TRY(tsr_onnx_add_attr_ints(e->m, "strides", geo.s, (size_t)geo.ns));
        TSR_TRY(tsr_onnx_add_attr_ints(e->m, "pads", pads, (size_t)(2 * geo.ns)));
        if (n->kind == TSR_NODE_CONV) {
            TSR_TRY(tsr_onnx_add_attr_ints(e->m, "dilations", geo.d, (size_t)geo.ns));
            return tsr_onnx_add_attr_int(e->m, "group", a->group);
        }
        for (int i = 0; i < geo.ns; i++)
            if (geo.d[i] != 1)
                return tsr_fail(TSR_ERR_UNSUPPORTED,
                                "node '%s': AveragePool dilations need "
                                "opset 19",
                                nm);
        TSR_TRY(tsr_onnx_add_attr_int(e->m, "ceil_mode", a->ceil_mode));
        return tsr_onnx_add_attr_int(e->m, "count_include_pad", a->count_include_pad);
    }
    case TSR_NODE_GEMM:
        TSR_TRY(node(e, "Gemm", nm, n->n_in, in, out));
        TSR_TRY(tsr_onnx_add_attr_int(e->m, "transA", a->trans_a));
        TSR_TRY(tsr_onnx_add_attr_int(e->m, "transB", a->trans_b));
        TSR_TRY(tsr_onnx_add_attr_float(e->m, "alpha", (float)a->alpha));
        return tsr_onnx_add_attr_float(e->m, "beta", (float)a->beta);
    case TSR_NODE_MATMUL:
        return node(e, "MatMul", nm, 2, in, out);
    case TSR_NODE_GLOBAL_AVGPOOL:
        return node(e, "GlobalAveragePool", nm, 1, in, out);
    case TSR_NODE_BATCHNORM:
        TSR_TRY(node(e, "BatchNormalization", nm, 5, in, out));
        return tsr_onnx_add_attr_float(e->m, "epsilon", (float)a->epsilon);
    case TSR_NODE_FLATTEN:
        TSR_TRY(node(e, "Flatten", nm, 1, in, out));
        return tsr_onnx_add_attr_int(e->m, "axis", a->axis);
    case TSR_NODE_RESHAPE: {
        const char *sn = hname(e, out, "shape");
        TSR_TRY(ints_init(e, sn, a->shape, a->n_shape));
        TSR_TRY(node(e, "Reshape", nm, 2, (const char *[]){ in[0], sn }, out));
        return a->allowzero ? tsr_onnx_add_attr_int(e->m, "allowzero", 1) : TSR_OK;
    }
    case TSR_NODE_TRANSPOSE:
        TSR_TRY(node(e, "Transpose", nm, 1, in, out));
        return a->n_perm ? tsr_onnx_add_attr_ints(e->m, "perm", a->perm, (size_t)a->n_perm)
                         : TSR_OK;
    case TSR_NODE_CONCAT:
        TSR_TRY(tsr_onnx_add_node(e->m, "Concat", nm, n->n_in, (const char *const *)n->in_names, 1,
                                  (const char *[]){ out }));
        return tsr_onnx_add_attr_int(e->m, "axis", a->axis);
    case TSR_NODE_SLICE: {
        char s[4][512];
        const char *parts[4] = { "starts", "ends", "axes", "steps" };
        const int64_t *vals[4] = { a->starts, a->ends, a->axes, a->steps };
        for (int k = 0; k < 4; k++) {
            snprintf(s[k], sizeof s[k], "%s/%s", out, parts[k]);
            TSR_TRY(ints_init(e, s[k], vals[k], a->n_axes));
        }
        return node(e, "Slice", nm, 5, (const char *[]){ in[0], s[0], s[1], s[2], s[3] }, out);
    }
    case TSR_NODE_SQUEEZE:
    case TSR_NODE_UNSQUEEZE:
    case TSR_NODE_REDUCE_SUM:
    case TSR_NODE_REDUCE_MEAN:
        if ((n->kind == TSR_NODE_REDUCE_SUM || n->kind == TSR_NODE_REDUCE_MEAN) && !a->n_axes &&
            a->reduce_tail) { /* axes axis .. rank-1, as a plain list */
            tsr_graph_node copy = *n;
            int64_t ax = a->axis < 0 ? a->axis + x->rank : a->axis;
            copy.a.reduce_tail = 0;
            for (int64_t k = ax; k < x->rank; k++) copy.a.axes[copy.a.n_axes++] = k;
            return export_reduce(e, &copy);
        }
        return export_reduce(e, n);
    case TSR_NODE_PAD:
        return export_pad(e, n);
    case TSR_NODE_KIND_COUNT_:
        break;
    }
    return tsr_fail(TSR_ERR_INTERNAL, "unknown node kind");
}

/* SQUEEZE, UNSQUEEZE, REDUCE_SUM (axes as an input), REDUCE_MEAN (axes attribute, opset 13). */
static tsr_status export_reduce(ectx *e, const tsr_graph_node *n) {
    const tsr_graph_attrs *a = &n->a;
    const char *out = e->g->values[n->out].name, *nm = n->name;
    const char *in[1] = { n->in_names[0] };
    switch (n->kind) {
    case TSR_NODE_SQUEEZE:
    case TSR_NODE_UNSQUEEZE:
    case TSR_NODE_REDUCE_SUM: {
        const char *op = n->kind == TSR_NODE_SQUEEZE     ? "Squeeze"
                         : n->kind == TSR_NODE_UNSQUEEZE ? "Unsqueeze"
                                                         : "ReduceSum";
        if (a->n_axes) {
            const char *an = hname(e, out, "axes");
            TSR_TRY(ints_init(e, an, a->axes, a->n_axes));
            TSR_TRY(node(e, op, nm, 2, (const char *[]){ in[0], an }, out));
        } else {
            TSR_TRY(node(e, op, nm, 1, in, out));
        }
        if (n->kind != TSR_NODE_REDUCE_SUM) return TSR_OK;
        TSR_TRY(tsr_onnx_add_attr_int(e->m, "keepdims", a->keepdims));
        return tsr_onnx_add_attr_int(e->m, "noop_with_empty_axes", a->noop_with_empty_axes);
    }
    default:
        if (!a->n_axes && a->noop_with_empty_axes) return node(e, "Identity", nm, 1, in, out);
        TSR_TRY(node(e, "ReduceMean", nm, 1, in, out));
        if (a->n_axes) TSR_TRY(tsr_onnx_add_attr_ints(e->m, "axes", a->axes, (size_t)a->n_axes));
        return tsr_onnx_add_attr_int(e->m, "keepdims", a->keepdims);
    }
}

static tsr_status export_pad(ectx *e, const tsr_graph_node *n) {
    const tsr_graph_attrs *a = &n->a;
    const char *out = e->g->values[n->out].name;
    const char *pn = hname(e, out, "pads"), *vn = hname(e, out, "value");
    char pcopy[512];
    snprintf(pcopy, sizeof pcopy, "%s", pn);
    TSR_TRY(ints_init(e, pcopy, a->pad_list, a->n_pads));
    TSR_TRY(float_init(e, vn, 0, NULL, &a->value, 1));
    return node(e, "Pad", n->name, 3, (const char *[]){ n->in_names[0], pcopy, vn }, out);
}

static int k_is_coef(const tsr_graph_node *n, int v) {
    return (n->kind == TSR_NODE_POLY || n->kind == TSR_NODE_CHEBYSHEV) && n->in[1] == v;
}

/* Output shapes with free dimensions marked -1 (they change with the free input sizes). */
static tsr_status output_shapes(const tsr_graph *g, int *rank,
                                int64_t (*dims)[TSR_ARRAY_MAX_RANK]) {
    int ni = g->n_inputs, no = g->n_outputs;
    int *ir = calloc((size_t)(ni + 1), sizeof *ir), *r2 = calloc((size_t)(no + 1), sizeof *r2);
    int64_t(*id)[TSR_ARRAY_MAX_RANK] = calloc((size_t)(ni + 1), sizeof *id);
    int64_t(*d2)[TSR_ARRAY_MAX_RANK] = calloc((size_t)(no + 1), sizeof *d2);
    tsr_status st = TSR_OK;
    if (!ir || !r2 || !id || !d2) st = tsr_fail(TSR_ERR_NOMEM, "out of memory");
    for (int pass = 0; st == TSR_OK && pass < 2; pass++) {
        for (int i = 0; i < ni; i++) {
            const tsr_graph_value *v = &g->values[g->inputs[i]];
            ir[i] = v->rank;
            for (int k = 0; k < v->rank; k++) id[i][k] = v->dims[k] >= 0 ? v->dims[k] : 1 + pass;
        }
        st = tsr_graph_infer_shapes(g, ir, (const int64_t(*)[TSR_ARRAY_MAX_RANK])id,
                                    pass ? r2 : rank, pass ? d2 : dims);
    }
    for (int i = 0; st == TSR_OK && i < no; i++)
        for (int k = 0; k < rank[i]; k++)
            if (dims[i][k] != d2[i][k]) dims[i][k] = -1;
    free(ir);
    free(r2);
    free(id);
    free(d2);
    return st;
}

tsr_status tsr_onnx_from_graph(const tsr_graph *g, tsr_onnx_model **out) {
    TSR_REQUIRE(g != NULL && g->finalized && out != NULL,
                "tsr_onnx_from_graph: finalize the graph first");
    *out = NULL;
    ectx e;
    memset(&e, 0, sizeof e);
    e.g = g;
    TSR_TRY(tsr_onnx_create(&e.m, 13, 7));
    const char *np[TSR_ARRAY_MAX_RANK];
    for (int k = 0; k < TSR_ARRAY_MAX_RANK; k++) np[k] = "N";
    int *orank = calloc((size_t)(g->n_outputs + 1), sizeof *orank);
    int64_t(*odims)[TSR_ARRAY_MAX_RANK] = calloc((size_t)(g->n_outputs + 1), sizeof *odims);
    tsr_status st = orank && odims ? TSR_OK : tsr_fail(TSR_ERR_NOMEM, "out of memory");
    if (st == TSR_OK) st = tsr_onnx_set_info(e.m, "tessera", TSR_VERSION_STRING, "graph", NULL);
    if (st == TSR_OK) st = output_shapes(g, orank, odims);
    for (int i = 0; st == TSR_OK && i < g->n_inputs; i++) {
        const tsr_graph_value *v = &g->values[g->inputs[i]];
        st = tsr_onnx_add_io(e.m, 0, v->name, v->rank, v->dims, np);
    }
    for (int i = 0; st == TSR_OK && i < g->n_outputs; i++)
        st = tsr_onnx_add_io(e.m, 1, g->output_names[i], orank[i], odims[i], np);
    for (int v = 0; st == TSR_OK && v < g->n_values; v++) {
        const tsr_graph_value *val = &g->values[v];
        if (val->kind != TSR_VALUE_CONST) continue;
        const tsr_graph_node *only = NULL;
        /* Coefficients of POLY / CHEBYSHEV are written by their node. */
        for (int i = 0; i < g->n_nodes; i++)
            for (int k = 0; k < g->nodes[i].n_in; k++)
                if (g->nodes[i].in[k] == v) only = &g->nodes[i];
        if (only && val->n_uses == 1 && k_is_coef(only, v)) continue;
        int is_out = 0;
        for (int i = 0; i < g->n_outputs; i++) is_out |= g->outputs[i] == v;
        if (!is_out) {
            st = float_init(&e, val->name, val->rank, val->dims, val->data->data, val->data->numel);
            continue;
        }
        /* ONNX outputs are produced by nodes: the constant goes through an Identity. */
        const char *cn = hname(&e, val->name, "const");
        char ccopy[512];
        snprintf(ccopy, sizeof ccopy, "%s", cn);
        st = float_init(&e, ccopy, val->rank, val->dims, val->data->data, val->data->numel);
        if (st == TSR_OK)
            st = node(&e, "Identity", hname(&e, val->name, "identity"), 1,
                      (const char *[]){ ccopy }, val->name);
    }
    for (int i = 0; st == TSR_OK && i < g->n_outputs; i++)
        if (g->values[g->outputs[i]].kind == TSR_VALUE_INPUT)
            st = tsr_fail(TSR_ERR_UNSUPPORTED,
                          "graph output '%s' is a graph input: ONNX cannot "
                          "express that",
                          g->output_names[i]);
    for (int i = 0; st == TSR_OK && i < g->n_nodes; i++)
        st = export_node(&e, &g->nodes[g->order[i]]);
    free(orank);
    free(odims);
    if (st == TSR_OK) {
        uint8_t *buf;
        size_t len;
        st = tsr_onnx_serialize(e.m, &buf, &len); /* validates like a reader */
        if (st == TSR_OK) tsr_free(buf);
    }
    if (st != TSR_OK) {
        tsr_onnx_free(e.m);
        return st;
    }
    *out = e.m;
    return TSR_OK;
}
