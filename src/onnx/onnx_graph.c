/*
 * onnx/onnx_graph.c - ONNX ModelProto -> tsr_graph. Each supported operator
 * maps onto one node kind with its attributes (opset differences handled:
 * attributes that became inputs in opset 10/11/13); constant operands are
 * read from initializers (or from data bound by the caller); polynomial
 * subgraphs are then folded by tsr_graph_fuse_polynomials. Operators with no
 * polynomial form are collected into one report, each with the replacement
 * Tessera can apply (--approx: a Chebyshev interpolant, Trefethen, ATAP ch. 4).
 */
#include "onnx/onnx_graph.h"

#include "core/alloc.h"
#include "core/error.h"
#include "graph/graph_internal.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- options, suggestions ------------------------------------------------------ */

void tsr_onnx_import_opts_default(tsr_onnx_import_opts *o) {
    memset(o, 0, sizeof *o);
}

typedef struct unary_fn {
    const char *op;
    double (*f)(double);
    int positive; /* only on a positive interval */
} unary_fn;

static double f_relu(double x) {
    return x > 0 ? x : 0;
}
static double f_sigmoid(double x) {
    return 1.0 / (1.0 + exp(-x));
}
static double f_recip(double x) {
    return 1.0 / x;
}
static double f_gelu(double x) {
    return 0.5 * x * (1.0 + erf(x / sqrt(2.0)));
}
static double f_softplus(double x) {
    return x > 30 ? x : log1p(exp(x));
}
static double f_rsqrt(double x) {
    return 1.0 / sqrt(x);
}

static const unary_fn unary_fns[] = {
    { "Relu", f_relu, 0 },
    { "Sigmoid", f_sigmoid, 0 },
    { "Tanh", tanh, 0 },
    { "Erf", erf, 0 },
    { "Exp", exp, 0 },
    { "Gelu", f_gelu, 0 },
    { "Softplus", f_softplus, 0 },
    { "Sqrt", sqrt, 1 },
    { "Reciprocal", f_recip, 1 },
    { "Div", f_recip, 1 },                /* Div by an activation: a * (1 / b) */
    { "LayerNormalization", f_rsqrt, 1 }, /* 1 / sqrt(var + eps) */
};

static const unary_fn *find_fn(const char *op) {
    for (size_t i = 0; i < sizeof unary_fns / sizeof unary_fns[0]; i++)
        if (strcmp(unary_fns[i].op, op) == 0) return &unary_fns[i];
    return NULL;
}

typedef struct suggestion {
    const char *op, *text;
} suggestion;

static const suggestion suggestions[] = {
    { "Relu", "--approx Relu=DEG@RANGE (Chebyshev interpolant on [-RANGE, RANGE], lossy), or "
              "train a polynomial student" },
    { "Sigmoid", "--approx Sigmoid=DEG@RANGE (lossy)" },
    { "Tanh", "--approx Tanh=DEG@RANGE (lossy)" },
    { "Erf", "--approx Erf=DEG@RANGE (lossy; GELU exported as Div/Erf/Add/Mul then runs as "
             "polynomials)" },
    { "Gelu", "--approx Gelu=DEG@RANGE (lossy)" },
    { "Exp", "--approx Exp=DEG@RANGE (lossy)" },
    { "Softplus", "--approx Softplus=DEG@RANGE (lossy)" },
    { "Sqrt", "--approx Sqrt=DEG@LO:HI on a positive interval (lossy)" },
    { "Reciprocal", "--approx Reciprocal=DEG@LO:HI on a positive interval (lossy)" },
    { "Div", "divisor is an activation: --approx Div=DEG@LO:HI replaces 1/b by a polynomial on a "
             "positive interval (lossy)" },
    { "Pow", "exponent is an activation: only constant exponents are polynomial" },
    { "Softmax", "no automatic replacement yet: use a power-softmax x^p / sum(x^p) or pointwise "
                 "attention and retrain (ROADMAP 6)" },
    { "LogSoftmax", "drop it for inference (argmax is unchanged) or use a power-softmax" },
    { "LayerNormalization", "--approx LayerNormalization=DEG@LO:HI replaces 1/sqrt(var + eps) "
                            "by a polynomial on the variance range [LO, HI] (lossy), or fold "
                            "a fixed normalisation" },
    { "MaxPool", "replace by AveragePool and retrain (or distil into a polynomial student)" },
    { "GlobalMaxPool", "replace by GlobalAveragePool and retrain" },
    { "LeakyRelu", "replace by a polynomial activation and retrain" },
    { "Abs", "no polynomial form: approximate |x| (e.g. x^2 or a Chebyshev fit) and retrain" },
    { "Max", "no polynomial form" },
    { "Min", "no polynomial form" },
    { "Clip", "no polynomial form: remove the clipping or retrain with a polynomial" },
};

const char *tsr_onnx_suggestion(const char *op) {
    for (size_t i = 0; i < sizeof suggestions / sizeof suggestions[0]; i++)
        if (strcmp(suggestions[i].op, op) == 0) return suggestions[i].text;
    return NULL;
}

tsr_status tsr_onnx_parse_approx(const char *spec, tsr_onnx_approx *a) {
    memset(a, 0, sizeof *a);
    const char *eq = strchr(spec, '='), *at = eq ? strchr(eq, '@') : NULL;
    if (!eq || !at || eq == spec || (size_t)(eq - spec) >= sizeof a->op)
        return tsr_fail(TSR_ERR_INVALID_ARG,
                        "--approx '%s': expected OP=DEG@RANGE or "
                        "OP=DEG@LO:HI (e.g. Relu=8@10)",
                        spec);
    memcpy(a->op, spec, (size_t)(eq - spec));
    const unary_fn *fn = find_fn(a->op);
    if (!fn)
        return tsr_fail(TSR_ERR_INVALID_ARG,
                        "--approx: '%s' cannot be replaced (Relu, Sigmoid, Tanh, Erf, Exp, Gelu, "
                        "Softplus, Sqrt, Reciprocal, Div can)",
                        a->op);
    char *end;
    long deg = strtol(eq + 1, &end, 10);
    if (end != at || deg < 1 || deg > 63)
        return tsr_fail(TSR_ERR_INVALID_ARG, "--approx '%s': degree must be 1..63", spec);
    a->degree = (int)deg;
    const char *colon = strchr(at + 1, ':');
    if (colon) {
        a->lo = strtod(at + 1, &end);
        if (end != colon) a->lo = NAN;
        a->hi = strtod(colon + 1, &end);
        if (*end) a->hi = NAN;
    } else {
        a->hi = strtod(at + 1, &end);
        if (*end || end == at + 1) a->hi = NAN;
        a->lo = -a->hi;
    }
    if (!isfinite(a->lo) || !isfinite(a->hi) || !(a->lo < a->hi))
        return tsr_fail(TSR_ERR_INVALID_ARG,
                        "--approx '%s': the interval is empty or not a "
                        "number",
                        spec);
    if (fn->positive && a->lo <= 0)
        return tsr_fail(TSR_ERR_INVALID_ARG,
                        "--approx '%s': %s needs a positive interval LO:HI "
                        "with LO > 0",
                        spec, a->op);
    return TSR_OK;
}

int tsr_onnx_const_input(const char *op, int pos) {
    if (pos == 0) return 0;
    if (strcmp(op, "BatchNormalization") == 0) return pos <= 4;
    if (strcmp(op, "Div") == 0 || strcmp(op, "Pow") == 0) return pos == 1;
    if (strcmp(op, "Reshape") == 0 || strcmp(op, "Slice") == 0 || strcmp(op, "Squeeze") == 0 ||
        strcmp(op, "Unsqueeze") == 0 || strcmp(op, "ReduceSum") == 0 ||
        strcmp(op, "ReduceMean") == 0 || strcmp(op, "Pad") == 0 || strcmp(op, "Dropout") == 0)
        return 1;
    return 0;
}

/* ---- import context ------------------------------------------------------------------ */

typedef struct cvalue {
    const char *name;
    const tsr_array *a; /* values as doubles */
    const int64_t *i;   /* exact integers, or NULL */
    tsr_array *owned;   /* a when converted from an initializer */
    int in_graph;       /* added to the graph as a constant */
} cvalue;

typedef struct ctx {
    const tsr_onnx_model *m;
    const tsr_onnx_import_opts *o;
    tsr_graph *g;
    cvalue *cv;
    int n_cv;
    char *report; /* one line per unsupported node */
    size_t rep_len, rep_cap;
    int n_report, n_approx;
    int node; /* index of the node being imported */
    char lab[256];
} ctx;

static cvalue *find_const(ctx *c, const char *name) {
    for (int i = 0; i < c->n_cv; i++)
        if (strcmp(c->cv[i].name, name) == 0) return &c->cv[i];
    return NULL;
}

static tsr_status report(ctx *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static tsr_status report(ctx *c, const char *fmt, ...) {
    char line[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    size_t need = c->rep_len + strlen(c->lab) + strlen(line) + 8;
    if (need > c->rep_cap) {
        size_t cap = need * 2;
        char *p = realloc(c->report, cap);
        if (!p) return tsr_fail(TSR_ERR_NOMEM, "out of memory");
        c->report = p;
        c->rep_cap = cap;
    }
    c->rep_len += (size_t)snprintf(c->report + c->rep_len, c->rep_cap - c->rep_len, "\n  %s: %s",
                                   c->lab, line);
    c->n_report++;
    return TSR_OK;
}

/* Make sure a constant used as data is in the graph. */
static tsr_status use_value(ctx *c, const char *name) {
    if (!name[0]) return TSR_OK;
    cvalue *v = find_const(c, name);
    if (!v || v->in_graph) return TSR_OK;
    TSR_TRY(tsr_graph_add_const(c->g, name, v->a));
    v->in_graph = 1;
    return TSR_OK;
}

static const tsr_onnx_node *cur(ctx *c) {
    return &c->m->nodes[c->node];
}

static const char *in_name(ctx *c, int k) {
    const tsr_onnx_node *n = cur(c);
    return k < n->n_in ? n->in[k] : "";
}

/* Constant integers of input k (absent input: *count = 0). */
static tsr_status const_ints(ctx *c, int k, const int64_t **v, size_t *count, int required) {
    const char *name = in_name(c, k);
    *v = NULL;
    *count = 0;
    if (!name[0]) {
        if (required) return tsr_fail(TSR_ERR_FORMAT, "%s: input %d is required", c->lab, k);
        return TSR_OK;
    }
    cvalue *cv = find_const(c, name);
    if (!cv)
        return tsr_fail(TSR_ERR_UNSUPPORTED,
                        "%s: input %d ('%s') must be a constant (an initializer)", c->lab, k, name);
    if (!cv->i && cv->a->numel)
        return tsr_fail(TSR_ERR_FORMAT, "%s: input %d must be integers", c->lab, k);
    if (cv->a->rank > 1) return tsr_fail(TSR_ERR_FORMAT, "%s: input %d must be a list", c->lab, k);
    *v = cv->i;
    *count = cv->a->numel;
    return TSR_OK;
}

static tsr_status attr_ints(ctx *c, const char *name, int64_t *dst, int max, int *count) {
    const int64_t *v;
    size_t n;
    TSR_TRY(tsr_onnx_attr_ints(cur(c), name, &v, &n));
    if (n > (size_t)max)
        return tsr_fail(TSR_ERR_UNSUPPORTED, "%s: attribute %s has %zu entries (at most %d)",
                        c->lab, name, n, max);
    for (size_t k = 0; k < n; k++) dst[k] = v[k];
    if (count) *count = (int)n;
    return TSR_OK;
}

static tsr_status attr_i(ctx *c, const char *name, int64_t def, int64_t *out) {
    return tsr_onnx_attr_int(cur(c), name, def, out);
}

static int64_t clamp62(int64_t v) {
    const int64_t lim = (int64_t)1 << 62;
    return v < -lim ? -lim : v > lim ? lim : v;
}

static tsr_status add(ctx *c, tsr_graph_kind kind, int n_in, const char *const *in,
                      const tsr_graph_attrs *a) {
    for (int k = 0; k < n_in; k++) TSR_TRY(use_value(c, in[k]));
    const tsr_onnx_node *n = cur(c);
    return tsr_graph_add_node(c->g, kind, n->name[0] ? n->name : NULL, n_in, in, n->out[0], a);
}

/* ---- operators ------------------------------------------------------------------------- */

static tsr_status pads_attr(ctx *c, tsr_graph_attrs *a, int ns) {
    const char *ap;
    TSR_TRY(tsr_onnx_attr_string(cur(c), "auto_pad", "NOTSET", &ap));
    if (strcmp(ap, "NOTSET") == 0)
        a->auto_pad = TSR_AUTOPAD_NOTSET;
    else if (strcmp(ap, "VALID") == 0)
        a->auto_pad = TSR_AUTOPAD_VALID;
    else if (strcmp(ap, "SAME_UPPER") == 0)
        a->auto_pad = TSR_AUTOPAD_SAME_UPPER;
    else if (strcmp(ap, "SAME_LOWER") == 0)
        a->auto_pad = TSR_AUTOPAD_SAME_LOWER;
    else
        return tsr_fail(TSR_ERR_FORMAT, "%s: auto_pad '%s' is unknown", c->lab, ap);
    int np = 0, nst = 0, nd = 0;
    TSR_TRY(attr_ints(c, "pads", a->pads, 2 * TSR_GRAPH_MAX_SPATIAL, &np));
    TSR_TRY(attr_ints(c, "strides", a->strides, TSR_GRAPH_MAX_SPATIAL, &nst));
    TSR_TRY(attr_ints(c, "dilations", a->dilations, TSR_GRAPH_MAX_SPATIAL, &nd));
    if (ns > 0 && ((np && np != 2 * ns) || (nst && nst != ns) || (nd && nd != ns)))
        return tsr_fail(TSR_ERR_FORMAT, "%s: pads/strides/dilations do not match the kernel rank",
                        c->lab);
    return TSR_OK;
}

static tsr_status imp_conv(ctx *c, tsr_graph_attrs *a) {
    int nk = 0;
    TSR_TRY(attr_ints(c, "kernel_shape", a->kernel, TSR_GRAPH_MAX_SPATIAL, &nk));
    a->n_kernel = nk;
    TSR_TRY(attr_i(c, "group", 1, &a->group));
    const tsr_onnx_node *n = cur(c);
    int ns = nk;
    if (!ns) { /* kernel rank from the weights when they are constant */
        cvalue *w = n->n_in > 1 ? find_const(c, n->in[1]) : NULL;
        if (w) ns = w->a->rank - 2;
    }
    TSR_TRY(pads_attr(c, a, ns));
    const char *in[3] = { in_name(c, 0), in_name(c, 1), in_name(c, 2) };
    return add(c, TSR_NODE_CONV, n->n_in >= 3 && in[2][0] ? 3 : 2, in, a);
}

static tsr_status imp_avgpool(ctx *c, tsr_graph_attrs *a) {
    int nk = 0;
    TSR_TRY(attr_ints(c, "kernel_shape", a->kernel, TSR_GRAPH_MAX_SPATIAL, &nk));
    if (!nk) return tsr_fail(TSR_ERR_FORMAT, "%s: kernel_shape is required", c->lab);
    a->n_kernel = nk;
    int64_t v;
    TSR_TRY(attr_i(c, "ceil_mode", 0, &v));
    a->ceil_mode = v != 0;
    TSR_TRY(attr_i(c, "count_include_pad", 0, &v));
    a->count_include_pad = v != 0;
    TSR_TRY(pads_attr(c, a, nk));
    const char *in[1] = { in_name(c, 0) };
    return add(c, TSR_NODE_AVGPOOL, 1, in, a);
}

static tsr_status imp_gemm(ctx *c, tsr_graph_attrs *a) {
    int64_t ta, tb;
    float al, be;
    TSR_TRY(attr_i(c, "transA", 0, &ta));
    TSR_TRY(attr_i(c, "transB", 0, &tb));
    TSR_TRY(tsr_onnx_attr_float(cur(c), "alpha", 1.0f, &al));
    TSR_TRY(tsr_onnx_attr_float(cur(c), "beta", 1.0f, &be));
    a->trans_a = ta != 0;
    a->trans_b = tb != 0;
    a->alpha = al;
    a->beta = be;
    const char *in[3] = { in_name(c, 0), in_name(c, 1), in_name(c, 2) };
    return add(c, TSR_NODE_GEMM, in[2][0] ? 3 : 2, in, a);
}

static tsr_status imp_slice(ctx *c, tsr_graph_attrs *a) {
    int64_t starts[TSR_ARRAY_MAX_RANK], ends[TSR_ARRAY_MAX_RANK], axes[TSR_ARRAY_MAX_RANK],
        steps[TSR_ARRAY_MAX_RANK];
    int ns = 0, ne = 0, na = 0, nst = 0;
    if (c->m->opset < 10) {
        TSR_TRY(attr_ints(c, "starts", starts, TSR_ARRAY_MAX_RANK, &ns));
        TSR_TRY(attr_ints(c, "ends", ends, TSR_ARRAY_MAX_RANK, &ne));
        TSR_TRY(attr_ints(c, "axes", axes, TSR_ARRAY_MAX_RANK, &na));
    } else {
        const int64_t *v[4];
        size_t cnt[4];
        for (int k = 0; k < 4; k++) TSR_TRY(const_ints(c, k + 1, &v[k], &cnt[k], k < 2));
        for (int k = 0; k < 4; k++)
            if (cnt[k] > TSR_ARRAY_MAX_RANK)
                return tsr_fail(TSR_ERR_FORMAT, "%s: too many slice entries", c->lab);
        ns = (int)cnt[0], ne = (int)cnt[1], na = (int)cnt[2], nst = (int)cnt[3];
        for (int k = 0; k < ns; k++) starts[k] = v[0][k];
        for (int k = 0; k < ne; k++) ends[k] = v[1][k];
        for (int k = 0; k < na; k++) axes[k] = v[2][k];
        for (int k = 0; k < nst; k++) steps[k] = v[3][k];
    }
    if (ne != ns || (na && na != ns) || (nst && nst != ns))
        return tsr_fail(TSR_ERR_FORMAT, "%s: starts, ends, axes, steps differ in length", c->lab);
    a->n_axes = ns;
    for (int k = 0; k < ns; k++) {
        a->axes[k] = na ? axes[k] : k;
        a->starts[k] = clamp62(starts[k]);
        a->ends[k] = clamp62(ends[k]);
        a->steps[k] = nst ? steps[k] : 1;
    }
    const char *in[1] = { in_name(c, 0) };
    return add(c, TSR_NODE_SLICE, 1, in, a);
}

/* Axes from the attribute (old opsets) or input 1 (since `input_since`). */
static tsr_status axes_of(ctx *c, tsr_graph_attrs *a, int64_t input_since) {
    if (c->m->opset >= input_since) {
        const int64_t *v;
        size_t n;
        TSR_TRY(const_ints(c, 1, &v, &n, 0));
        if (n > TSR_ARRAY_MAX_RANK) return tsr_fail(TSR_ERR_FORMAT, "%s: too many axes", c->lab);
        a->n_axes = (int)n;
        for (size_t k = 0; k < n; k++) a->axes[k] = v[k];
        return TSR_OK;
    }
    return attr_ints(c, "axes", a->axes, TSR_ARRAY_MAX_RANK, &a->n_axes);
}

static tsr_status imp_pad(ctx *c, tsr_graph_attrs *a) {
    const char *mode;
    TSR_TRY(tsr_onnx_attr_string(cur(c), "mode", "constant", &mode));
    if (strcmp(mode, "constant") != 0)
        return report(c, "Pad mode '%s' is not supported (constant only)", mode);
    if (c->m->opset >= 11) {
        const int64_t *v;
        size_t n;
        TSR_TRY(const_ints(c, 1, &v, &n, 1));
        if (n > 2 * TSR_ARRAY_MAX_RANK)
            return tsr_fail(TSR_ERR_FORMAT, "%s: too many pads", c->lab);
        a->n_pads = (int)n;
        for (size_t k = 0; k < n; k++) a->pad_list[k] = v[k];
        if (in_name(c, 3)[0]) return report(c, "Pad with axes is not supported");
        const char *cvn = in_name(c, 2);
        if (cvn[0]) {
            cvalue *cv = find_const(c, cvn);
            if (!cv || cv->a->numel != 1)
                return tsr_fail(TSR_ERR_UNSUPPORTED, "%s: constant_value must be a constant scalar",
                                c->lab);
            a->value = cv->a->data[0];
        }
    } else {
        TSR_TRY(attr_ints(c, "pads", a->pad_list, 2 * TSR_ARRAY_MAX_RANK, &a->n_pads));
        float val;
        TSR_TRY(tsr_onnx_attr_float(cur(c), "value", 0.0f, &val));
        a->value = val;
    }
    for (int k = 0; k < a->n_pads; k++)
        if (a->pad_list[k] < 0) return report(c, "negative pads (cropping) are not supported");
    const char *in[1] = { in_name(c, 0) };
    return add(c, TSR_NODE_PAD, 1, in, a);
}

/* Chebyshev interpolant of fn on [lo, hi] at the deg+1 Chebyshev points of the first kind. */
static tsr_status cheb_node(ctx *c, const unary_fn *fn, const tsr_onnx_approx *ap, const char *x,
                            const char *out, const char *node_name) {
    int n = ap->degree + 1;
    int64_t dims[1] = { n };
    tsr_array *coef;
    TSR_TRY(tsr_array_create(&coef, 1, dims));
    for (int k = 0; k < n; k++) {
        double s = 0;
        for (int j = 0; j < n; j++) {
            double th = M_PI * (j + 0.5) / n;
            double xv = 0.5 * (ap->hi + ap->lo) + 0.5 * (ap->hi - ap->lo) * cos(th);
            s += fn->f(xv) * cos(k * th);
        }
        coef->data[k] = (k == 0 ? 1.0 : 2.0) * s / n;
    }
    char cname[512];
    snprintf(cname, sizeof cname, "%s.cheb", out);
    for (int k = 0; tsr_graph_find_value(c->g, cname) >= 0; k++)
        snprintf(cname, sizeof cname, "%s.cheb%d", out, k);
    tsr_status st = tsr_graph_add_const(c->g, cname, coef);
    tsr_array_free(coef);
    TSR_TRY(st);
    tsr_graph_attrs a;
    tsr_graph_attrs_default(&a);
    a.lo = ap->lo;
    a.hi = ap->hi;
    const char *in[2] = { x, cname };
    TSR_TRY(use_value(c, x));
    return tsr_graph_add_node(c->g, TSR_NODE_CHEBYSHEV, node_name, 2, in, out, &a);
}

static const tsr_onnx_approx *approx_for(ctx *c, const char *op) {
    for (int i = 0; c->o && i < c->o->n_approx; i++)
        if (strcmp(c->o->approx[i].op, op) == 0) return &c->o->approx[i];
    return NULL;
}

/* A non-polynomial operator: replace it if asked, else report it. */
static tsr_status non_poly(ctx *c, const char *op, const char *why) {
    const tsr_onnx_node *n = cur(c);
    const tsr_onnx_approx *ap = approx_for(c, op);
    const unary_fn *fn = find_fn(op);
    if (ap && fn && n->n_out >= 1) {
        c->n_approx++;
        if (strcmp(op, "Div") == 0) {
            char rname[512];
            snprintf(rname, sizeof rname, "%s.recip", n->out[0]);
            TSR_TRY(cheb_node(c, fn, ap, in_name(c, 1), rname, rname));
            const char *in[2] = { in_name(c, 0), rname };
            return add(c, TSR_NODE_MUL, 2, in, NULL);
        }
        return cheb_node(c, fn, ap, in_name(c, 0), n->out[0], n->name[0] ? n->name : NULL);
    }
    if (c->o && c->o->keep_non_polynomial) {
        static const struct {
            const char *op;
            tsr_graph_kind kind;
        } keep[] = { { "Relu", TSR_NODE_RELU },
                     { "Sigmoid", TSR_NODE_SIGMOID },
                     { "Tanh", TSR_NODE_TANH },
                     { "Erf", TSR_NODE_ERF },
                     { "Exp", TSR_NODE_EXP },
                     { "Sqrt", TSR_NODE_SQRT },
                     { "Reciprocal", TSR_NODE_RECIPROCAL } };
        for (size_t i = 0; i < sizeof keep / sizeof keep[0]; i++)
            if (strcmp(keep[i].op, op) == 0)
                return add(c, keep[i].kind, 1, (const char *[]){ in_name(c, 0) }, NULL);
        if (strcmp(op, "Div") == 0) {
            char rname[512];
            snprintf(rname, sizeof rname, "%s.recip", n->out[0]);
            TSR_TRY(use_value(c, in_name(c, 1)));
            TSR_TRY(tsr_graph_add_node(c->g, TSR_NODE_RECIPROCAL, rname, 1,
                                       (const char *[]){ in_name(c, 1) }, rname, NULL));
            return add(c, TSR_NODE_MUL, 2, (const char *[]){ in_name(c, 0), rname }, NULL);
        }
        tsr_graph_attrs a;
        tsr_graph_attrs_default(&a);
        if (strcmp(op, "LeakyRelu") == 0) {
            float al;
            TSR_TRY(tsr_onnx_attr_float(n, "alpha", 0.01f, &al));
            a.leak = al;
            return add(c, TSR_NODE_LEAKY_RELU, 1, (const char *[]){ in_name(c, 0) }, &a);
        }
        if (strcmp(op, "Softmax") == 0 && c->m->opset >= 13) {
            TSR_TRY(attr_i(c, "axis", -1, &a.axis));
            return add(c, TSR_NODE_SOFTMAX, 1, (const char *[]){ in_name(c, 0) }, &a);
        }
        if (strcmp(op, "MaxPool") == 0) {
            int64_t so, cm;
            TSR_TRY(attr_i(c, "storage_order", 0, &so));
            TSR_TRY(attr_i(c, "ceil_mode", 0, &cm));
            TSR_TRY(attr_ints(c, "kernel_shape", a.kernel, TSR_GRAPH_MAX_SPATIAL, &a.n_kernel));
            if (!a.n_kernel)
                return tsr_fail(TSR_ERR_FORMAT, "%s: kernel_shape is required", c->lab);
            a.ceil_mode = cm != 0;
            TSR_TRY(pads_attr(c, &a, a.n_kernel));
            return add(c, TSR_NODE_MAXPOOL, 1, (const char *[]){ in_name(c, 0) }, &a);
        }
    }
    const char *sug = tsr_onnx_suggestion(op);
    return report(c, "%s; %s", why, sug ? sug : "no polynomial replacement");
}

/*
 * LayerNormalization (opset 17) as its parts: mean and variance over dims
 * axis.., (x - mean) * invstd * scale + bias, invstd = 1 / sqrt(var + eps)
 * (a Chebyshev polynomial of var + eps when --approx asks). The optional
 * Mean and InvStdDev outputs are the intermediate values of those names.
 */
static tsr_status imp_layernorm(ctx *c, const tsr_onnx_approx *ap) {
    const tsr_onnx_node *n = cur(c);
    const char *y = n->out[0];
    if (n->n_in < 2) return tsr_fail(TSR_ERR_FORMAT, "%s needs X and Scale", c->lab);
    tsr_graph_attrs r;
    tsr_graph_attrs_default(&r);
    float eps;
    TSR_TRY(attr_i(c, "axis", -1, &r.axis));
    TSR_TRY(tsr_onnx_attr_float(n, "epsilon", 1e-5f, &eps));
    r.reduce_tail = 1;
    char nm[10][512];
    const char *suffix[10] = { "mean",    "d",      "dd",   "var",    "eps",
                               "var_eps", "invstd", "norm", "scaled", "sqrt" };
    for (int k = 0; k < 10; k++) snprintf(nm[k], sizeof nm[k], "%s/%s", y, suffix[k]);
    if (n->n_out > 1 && n->out[1][0]) snprintf(nm[0], sizeof nm[0], "%s", n->out[1]);
    if (n->n_out > 2 && n->out[2][0]) snprintf(nm[6], sizeof nm[6], "%s", n->out[2]);
    const char *x = in_name(c, 0), *scale = in_name(c, 1), *bias = in_name(c, 2);
    TSR_TRY(use_value(c, x));
    TSR_TRY(use_value(c, scale));
    TSR_TRY(use_value(c, bias));
    tsr_graph *g = c->g;
    TSR_TRY(
        tsr_graph_add_node(g, TSR_NODE_REDUCE_MEAN, nm[0], 1, (const char *[]){ x }, nm[0], &r));
    TSR_TRY(
        tsr_graph_add_node(g, TSR_NODE_SUB, nm[1], 2, (const char *[]){ x, nm[0] }, nm[1], NULL));
    TSR_TRY(tsr_graph_add_node(g, TSR_NODE_MUL, nm[2], 2, (const char *[]){ nm[1], nm[1] }, nm[2],
                               NULL));
    TSR_TRY(tsr_graph_add_node(g, TSR_NODE_REDUCE_MEAN, nm[3], 1, (const char *[]){ nm[2] }, nm[3],
                               &r));
    tsr_array *e;
    TSR_TRY(tsr_array_create(&e, 0, NULL));
    e->data[0] = eps;
    tsr_status st = tsr_graph_add_const(g, nm[4], e);
    tsr_array_free(e);
    TSR_TRY(st);
    TSR_TRY(tsr_graph_add_node(g, TSR_NODE_ADD, nm[5], 2, (const char *[]){ nm[3], nm[4] }, nm[5],
                               NULL));
    if (ap) {
        c->n_approx++;
        TSR_TRY(cheb_node(c, find_fn("LayerNormalization"), ap, nm[5], nm[6], nm[6]));
    } else {
        TSR_TRY(
            tsr_graph_add_node(g, TSR_NODE_SQRT, nm[9], 1, (const char *[]){ nm[5] }, nm[9], NULL));
        TSR_TRY(tsr_graph_add_node(g, TSR_NODE_RECIPROCAL, nm[6], 1, (const char *[]){ nm[9] },
                                   nm[6], NULL));
    }
    TSR_TRY(tsr_graph_add_node(g, TSR_NODE_MUL, nm[7], 2, (const char *[]){ nm[1], nm[6] }, nm[7],
                               NULL));
    const char *so = bias[0] ? nm[8] : y;
    TSR_TRY(tsr_graph_add_node(g, TSR_NODE_MUL, n->name[0] ? n->name : so, 2,
                               (const char *[]){ nm[7], scale }, so, NULL));
    if (!bias[0]) return TSR_OK;
    return tsr_graph_add_node(g, TSR_NODE_ADD, nm[8], 2, (const char *[]){ nm[8], bias }, y, NULL);
}

static tsr_status imp_node(ctx *c) {
    const tsr_onnx_node *n = cur(c);
    const char *op = n->op_type;
    tsr_graph_attrs a;
    tsr_graph_attrs_default(&a);
    const char *in[2] = { in_name(c, 0), in_name(c, 1) };
    if (strcmp(op, "LayerNormalization") == 0) {
        const tsr_onnx_approx *ap = approx_for(c, op);
        if (!ap && !(c->o && c->o->keep_non_polynomial))
            return non_poly(c, op, "not a polynomial (1 / sqrt of the variance)");
        if (n->n_out < 1 || !n->out[0][0]) return report(c, "node has no output");
        return imp_layernorm(c, ap);
    }
    /* Extra outputs (masks, running statistics, ...) must be unused. */
    for (int k = 1; k < n->n_out; k++)
        if (n->out[k][0] && tsr_onnx_consumers(c->m, n->out[k]) > 0)
            return report(c, "output %d ('%s') is used: only the first output is supported", k,
                          n->out[k]);
    if (n->n_out < 1 || !n->out[0][0]) return report(c, "node has no output");
    if (strcmp(op, "Identity") == 0) return add(c, TSR_NODE_IDENTITY, 1, in, NULL);
    if (strcmp(op, "Dropout") == 0) {
        const char *tm = in_name(c, 2);
        if (tm[0]) {
            cvalue *cv = find_const(c, tm);
            if (!cv || cv->a->numel != 1 || cv->a->data[0] != 0)
                return report(c, "training_mode must be a constant false");
        }
        return add(c, TSR_NODE_IDENTITY, 1, in, NULL);
    }
    if (strcmp(op, "Add") == 0) return add(c, TSR_NODE_ADD, 2, in, NULL);
    if (strcmp(op, "Sub") == 0) return add(c, TSR_NODE_SUB, 2, in, NULL);
    if (strcmp(op, "Mul") == 0) return add(c, TSR_NODE_MUL, 2, in, NULL);
    if (strcmp(op, "Neg") == 0) return add(c, TSR_NODE_NEG, 1, in, NULL);
    if (strcmp(op, "Div") == 0) {
        if (find_const(c, in[1])) return add(c, TSR_NODE_DIV, 2, in, NULL);
        return non_poly(c, "Div", "division by an activation is not polynomial");
    }
    if (strcmp(op, "Pow") == 0) {
        if (find_const(c, in[1])) return add(c, TSR_NODE_POW, 2, in, NULL);
        return non_poly(c, "Pow", "an activation as exponent is not polynomial");
    }
    if (strcmp(op, "Conv") == 0) return imp_conv(c, &a);
    if (strcmp(op, "Gemm") == 0) return imp_gemm(c, &a);
    if (strcmp(op, "MatMul") == 0) return add(c, TSR_NODE_MATMUL, 2, in, NULL);
    if (strcmp(op, "AveragePool") == 0) return imp_avgpool(c, &a);
    if (strcmp(op, "GlobalAveragePool") == 0) return add(c, TSR_NODE_GLOBAL_AVGPOOL, 1, in, NULL);
    if (strcmp(op, "BatchNormalization") == 0) {
        int64_t tm;
        float eps;
        TSR_TRY(attr_i(c, "training_mode", 0, &tm));
        if (tm) return report(c, "training_mode=1 is not supported (inference only)");
        TSR_TRY(tsr_onnx_attr_float(n, "epsilon", 1e-5f, &eps));
        a.epsilon = eps;
        if (n->n_in != 5) return tsr_fail(TSR_ERR_FORMAT, "%s needs 5 inputs", c->lab);
        const char *bin[5] = { n->in[0], n->in[1], n->in[2], n->in[3], n->in[4] };
        return add(c, TSR_NODE_BATCHNORM, 5, bin, &a);
    }
    if (strcmp(op, "Flatten") == 0) {
        TSR_TRY(attr_i(c, "axis", 1, &a.axis));
        return add(c, TSR_NODE_FLATTEN, 1, in, &a);
    }
    if (strcmp(op, "Reshape") == 0) {
        const int64_t *v;
        size_t cnt;
        int64_t az;
        TSR_TRY(const_ints(c, 1, &v, &cnt, 1));
        if (cnt > TSR_ARRAY_MAX_RANK)
            return tsr_fail(TSR_ERR_UNSUPPORTED, "%s: target rank %zu (at most %d)", c->lab, cnt,
                            TSR_ARRAY_MAX_RANK);
        a.n_shape = (int)cnt;
        for (size_t k = 0; k < cnt; k++) a.shape[k] = v[k];
        TSR_TRY(attr_i(c, "allowzero", 0, &az));
        a.allowzero = az != 0;
        return add(c, TSR_NODE_RESHAPE, 1, in, &a);
    }
    if (strcmp(op, "Transpose") == 0) {
        TSR_TRY(attr_ints(c, "perm", a.perm, TSR_ARRAY_MAX_RANK, &a.n_perm));
        return add(c, TSR_NODE_TRANSPOSE, 1, in, &a);
    }
    if (strcmp(op, "Concat") == 0) {
        if (!tsr_onnx_find_attr(n, "axis"))
            return tsr_fail(TSR_ERR_FORMAT, "%s: axis is required", c->lab);
        TSR_TRY(attr_i(c, "axis", 0, &a.axis));
        return add(c, TSR_NODE_CONCAT, n->n_in, (const char *const *)n->in, &a);
    }
    if (strcmp(op, "Slice") == 0) return imp_slice(c, &a);
    if (strcmp(op, "Squeeze") == 0 || strcmp(op, "Unsqueeze") == 0) {
        TSR_TRY(axes_of(c, &a, 13));
        return add(c, op[0] == 'S' ? TSR_NODE_SQUEEZE : TSR_NODE_UNSQUEEZE, 1, in, &a);
    }
    if (strcmp(op, "ReduceSum") == 0 || strcmp(op, "ReduceMean") == 0) {
        int sum = op[6] == 'S';
        int64_t kd, noop;
        TSR_TRY(axes_of(c, &a, sum ? 13 : 18));
        TSR_TRY(attr_i(c, "keepdims", 1, &kd));
        TSR_TRY(attr_i(c, "noop_with_empty_axes", 0, &noop));
        a.keepdims = kd != 0;
        a.noop_with_empty_axes = noop != 0;
        return add(c, sum ? TSR_NODE_REDUCE_SUM : TSR_NODE_REDUCE_MEAN, 1, in, &a);
    }
    if (strcmp(op, "Pad") == 0) return imp_pad(c, &a);
    if (tsr_onnx_suggestion(op) || find_fn(op)) return non_poly(c, op, "not a polynomial");
    return report(c, "operator %s is not supported (no polynomial equivalent in Tessera)", op);
}

/* ---- driver --------------------------------------------------------------------------------- */

static int real_type(int32_t t) {
    return t == TSR_ONNX_FLOAT || t == TSR_ONNX_DOUBLE;
}

static tsr_status load_consts(ctx *c) {
    const tsr_onnx_model *m = c->m;
    int nb = c->o ? c->o->n_bind : 0;
    c->cv = calloc((size_t)(m->n_inits + nb + 1), sizeof *c->cv);
    if (!c->cv) return tsr_fail(TSR_ERR_NOMEM, "out of memory");
    for (int i = 0; i < m->n_inits; i++) {
        const tsr_onnx_tensor *t = &m->inits[i];
        cvalue *v = &c->cv[c->n_cv++];
        v->name = t->name;
        TSR_TRY(tsr_array_create(&v->owned, t->ndims, t->dims));
        for (size_t k = 0; k < t->numel; k++)
            v->owned->data[k] = t->dtype == TSR_ONNX_FLOAT ? (double)t->f[k] : (double)t->i[k];
        v->a = v->owned;
        v->i = t->dtype == TSR_ONNX_INT64 ? t->i : NULL;
    }
    for (int i = 0; i < nb; i++) {
        const tsr_onnx_data *d = c->o->bind[i];
        if (find_const(c, d->name)) continue;
        cvalue *v = &c->cv[c->n_cv++];
        v->name = d->name;
        v->a = d->a;
        v->i = d->i;
    }
    return TSR_OK;
}

static tsr_status add_io(ctx *c) {
    const tsr_onnx_model *m = c->m;
    char esc[160];
    for (int i = 0; i < m->n_inputs; i++) {
        const tsr_onnx_value *v = &m->inputs[i];
        if (find_const(c, v->name)) continue;
        tsr_escape_controls(esc, sizeof esc, v->name, 0);
        if (!real_type(v->elem_type))
            return tsr_fail(TSR_ERR_UNSUPPORTED,
                            "input '%s' has element type %d: Tessera graphs compute on real "
                            "numbers (FLOAT or DOUBLE inputs)",
                            esc, (int)v->elem_type);
        if (v->ndims < 0)
            return tsr_fail(TSR_ERR_UNSUPPORTED,
                            "input '%s' has no shape: export the model "
                            "with input shapes",
                            esc);
        TSR_TRY(tsr_graph_add_input(c->g, v->name, v->ndims, v->dims));
    }
    for (int i = 0; i < m->n_outputs; i++) {
        const tsr_onnx_value *v = &m->outputs[i];
        tsr_escape_controls(esc, sizeof esc, v->name, 0);
        if (!real_type(v->elem_type))
            return tsr_fail(TSR_ERR_UNSUPPORTED,
                            "output '%s' has element type %d: Tessera graphs compute on real "
                            "numbers",
                            esc, (int)v->elem_type);
        TSR_TRY(use_value(c, v->name));
        TSR_TRY(tsr_graph_add_output(c->g, v->name));
    }
    return TSR_OK;
}

tsr_status tsr_onnx_to_graph(const tsr_onnx_model *m, const tsr_onnx_import_opts *opts,
                             tsr_graph **out, int *n_approximated) {
    TSR_REQUIRE(m != NULL && out != NULL, "tsr_onnx_to_graph: model or out is NULL");
    *out = NULL;
    if (n_approximated) *n_approximated = 0;
    ctx c;
    memset(&c, 0, sizeof c);
    c.m = m;
    c.o = opts;
    tsr_status st = tsr_graph_create(&c.g);
    if (st == TSR_OK) st = load_consts(&c);
    if (st == TSR_OK) st = add_io(&c);
    for (int i = 0; st == TSR_OK && i < m->n_nodes; i++) {
        c.node = i;
        char lab[256];
        tsr_onnx_node_label(m, i, lab, sizeof lab);
        tsr_escape_controls(c.lab, sizeof c.lab, lab, 0);
        st = imp_node(&c);
    }
    if (st == TSR_OK && c.n_report)
        st = tsr_fail(TSR_ERR_UNSUPPORTED, "%d node%s cannot run under CKKS:%s", c.n_report,
                      c.n_report == 1 ? "" : "s", c.report);
    if (st == TSR_OK) st = tsr_graph_finalize(c.g);
    tsr_graph *fused = NULL;
    if (st == TSR_OK && !(opts && opts->no_fuse)) st = tsr_graph_fuse_polynomials(c.g, &fused);
    if (st == TSR_OK && fused) {
        tsr_graph_free(c.g);
        c.g = fused;
    }
    for (int i = 0; i < c.n_cv; i++) tsr_array_free(c.cv[i].owned);
    free(c.cv);
    free(c.report);
    if (st != TSR_OK) {
        tsr_graph_free(c.g);
        return st;
    }
    if (n_approximated) *n_approximated = c.n_approx;
    *out = c.g;
    return TSR_OK;
}
