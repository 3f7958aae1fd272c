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

/*
 * Constants known at import: initializers, bound data, and values folded from
 * constant subgraphs (Shape, Gather, Cast, ConstantOfShape, Unsqueeze, Concat,
 * Slice, arithmetic, ...). Shapes that depend on a free (batch) dimension are
 * tracked by evaluating them twice, with every free dimension set to one of
 * two different probe sizes: an entry equal under both probes is a constant,
 * one equal to a free dimension's probes is that dimension ("symbolic").
 */
typedef struct cvalue {
    const char *name;
    const tsr_array *a; /* values as doubles (probe A) */
    const int64_t *i;   /* exact integers, or NULL */
    tsr_array *owned;   /* a when converted from an initializer or folded */
    tsr_array *b;       /* folded values under probe B when they differ from a, else NULL */
    int64_t *owned_i;   /* i when folded */
    char *owned_name;   /* name when folded */
} cvalue;

#define N_PROBES 16
/* Free dimension s takes probe_a[s] in one evaluation and probe_b[s] in the other. */
static const int64_t probe_a[N_PROBES] = { 97,  101, 103, 107, 109, 113, 127, 131,
                                           137, 139, 149, 151, 157, 163, 167, 173 };
/* Largest constant the import computes (elements): shapes and small tables, not data. */
#define FOLD_MAX_NUMEL ((int64_t)1 << 22)

static const int64_t probe_b[N_PROBES] = { 179, 181, 191, 193, 197, 199, 211, 223,
                                           227, 229, 233, 239, 241, 251, 257, 263 };

typedef struct ctx {
    const tsr_onnx_model *m;
    const tsr_onnx_import_opts *o;
    tsr_graph *g;
    cvalue *cv;
    int n_cv, cap_cv;
    /* Shapes of graph values under both probes (rank -1: unknown), by value index. */
    int n_vs, cap_vs;
    int *vrank;
    int64_t (*vdims)[2][TSR_ARRAY_MAX_RANK];
    int n_shaped; /* graph nodes whose output shapes are in vrank/vdims */
    int n_free;   /* free dimensions of the graph inputs (probes used) */
    int folding;  /* importing one node into a scratch graph (fold_generic) */
    char *report; /* one line per unsupported node */
    size_t rep_len, rep_cap;
    int n_report, n_approx;
    int node; /* index of the node being imported */
    char lab[256];
} ctx;

/* A value known at import, constant or depending on the free dimensions. */
static cvalue *find_folded(ctx *c, const char *name) {
    for (int i = 0; i < c->n_cv; i++)
        if (strcmp(c->cv[i].name, name) == 0) return &c->cv[i];
    return NULL;
}

/* A constant: known at import and independent of the free dimensions. */
static cvalue *find_const(ctx *c, const char *name) {
    cvalue *v = find_folded(c, name);
    return v && !v->b ? v : NULL;
}

static tsr_status fail_symbolic(ctx *c, const char *name) {
    return tsr_fail(TSR_ERR_UNSUPPORTED,
                    "%s: '%s' is computed from the shape of a tensor and depends on its free "
                    "(batch) dimension here; Tessera supports that only as a Reshape target "
                    "(x.view(x.size(0), -1), x.reshape(B, T, H, D)): export with a fixed batch "
                    "size or give the shape as constants",
                    c->lab, name);
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
    cvalue *v = find_folded(c, name);
    if (!v || tsr_graph_find_value(c->g, name) >= 0) return TSR_OK;
    if (v->b) return fail_symbolic(c, name);
    return tsr_graph_add_const(c->g, name, v->a);
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
    if (!cv && find_folded(c, name)) return fail_symbolic(c, name);
    if (!cv)
        return tsr_fail(TSR_ERR_UNSUPPORTED,
                        "%s: input %d ('%s') must be a constant (an initializer or computed from "
                        "constants and shapes)",
                        c->lab, k, name);
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
    if ((c->o && c->o->keep_non_polynomial) || c->folding) { /* folding: constants */
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

/* ---- shapes and constant folding ----------------------------------------------------------- */

static tsr_status vs_grow(ctx *c) {
    int need = c->g->n_values;
    if (need > c->cap_vs) {
        int cap = need * 2 + 16;
        int *r = realloc(c->vrank, (size_t)cap * sizeof *r);
        if (r) c->vrank = r;
        void *d = realloc(c->vdims, (size_t)cap * sizeof *c->vdims);
        if (d) c->vdims = d;
        if (!r || !d) return tsr_fail(TSR_ERR_NOMEM, "out of memory");
        c->cap_vs = cap;
    }
    for (int i = c->n_vs; i < need; i++) c->vrank[i] = -1;
    if (need > c->n_vs) c->n_vs = need;
    return TSR_OK;
}

/* Shape of a value under probe p (0 or 1); -1 when it is not known. */
static int vshape(ctx *c, const char *name, int p, int *rank, int64_t *dims,
                  const tsr_array **data) {
    if (data) *data = NULL;
    int vi = tsr_graph_find_value(c->g, name);
    const tsr_array *t = NULL;
    if (vi >= 0 && c->g->values[vi].kind == TSR_VALUE_CONST) {
        t = c->g->values[vi].data;
    } else if (vi >= 0) {
        if (vi >= c->n_vs || c->vrank[vi] < 0) return -1;
        *rank = c->vrank[vi];
        memcpy(dims, c->vdims[vi][p], sizeof c->vdims[vi][p]);
        return 0;
    } else {
        cvalue *v = find_folded(c, name);
        if (!v) return -1;
        t = p && v->b ? v->b : v->a;
    }
    *rank = t->rank;
    memcpy(dims, t->dims, sizeof t->dims);
    if (data) *data = t;
    return 0;
}

/* Input value vi: its free dimensions take the next probe sizes. */
static tsr_status shape_input(ctx *c, const char *name, int rank, const int64_t *dims) {
    TSR_TRY(vs_grow(c));
    int vi = tsr_graph_find_value(c->g, name);
    if (vi < 0) return TSR_OK;
    c->vrank[vi] = rank;
    for (int k = 0; k < rank; k++) {
        if (dims[k] >= 0) {
            c->vdims[vi][0][k] = c->vdims[vi][1][k] = dims[k];
            continue;
        }
        if (c->n_free >= N_PROBES) {
            c->vrank[vi] = -1; /* too many free dimensions to tell apart: shape unknown */
            return TSR_OK;
        }
        c->vdims[vi][0][k] = probe_a[c->n_free];
        c->vdims[vi][1][k] = probe_b[c->n_free];
        c->n_free++;
    }
    return TSR_OK;
}

/* Shapes (both probes) of the outputs of graph nodes added since the last call. */
static tsr_status track_shapes(ctx *c) {
    TSR_TRY(vs_grow(c));
    for (; c->n_shaped < c->g->n_nodes; c->n_shaped++) {
        const tsr_graph_node *n = &c->g->nodes[c->n_shaped];
        int nin = n->n_in ? n->n_in : 1, ro[2] = { -1, -1 }, ok = 1;
        int64_t od[2][TSR_ARRAY_MAX_RANK];
        int *r = calloc((size_t)nin, sizeof *r);
        int64_t(*d)[TSR_ARRAY_MAX_RANK] = calloc((size_t)nin, sizeof *d);
        const tsr_array **k = calloc((size_t)nin, sizeof *k);
        if (!r || !d || !k) ok = -1;
        for (int p = 0; p < 2 && ok == 1; p++) {
            for (int j = 0; j < n->n_in && ok == 1; j++) {
                r[j] = -1;
                if (n->in_names[j][0] && vshape(c, n->in_names[j], p, &r[j], d[j], &k[j])) ok = 0;
            }
            if (ok == 1 && tsr_graph_node_shape(c->g, n, r, (const int64_t(*)[TSR_ARRAY_MAX_RANK])d,
                                                k, &ro[p], od[p]) != TSR_OK)
                ok = 0; /* finalize reports it */
        }
        free(r);
        free(d);
        free(k);
        if (ok < 0) return tsr_fail(TSR_ERR_NOMEM, "out of memory");
        c->vrank[n->out] = ok && ro[0] == ro[1] ? ro[0] : -1;
        if (ok) memcpy(c->vdims[n->out], od, sizeof od);
    }
    tsr_clear_error();
    return TSR_OK;
}

static tsr_status cv_push(ctx *c, cvalue **out) {
    if (c->n_cv == c->cap_cv) {
        int cap = c->cap_cv * 2 + 16;
        cvalue *p = realloc(c->cv, (size_t)cap * sizeof *p);
        if (!p) return tsr_fail(TSR_ERR_NOMEM, "out of memory");
        c->cv = p;
        c->cap_cv = cap;
    }
    *out = &c->cv[c->n_cv++];
    memset(*out, 0, sizeof **out);
    return TSR_OK;
}

static int is_output(ctx *c, const char *name) {
    for (int i = 0; i < c->m->n_outputs; i++)
        if (strcmp(c->m->outputs[i].name, name) == 0) return 1;
    return 0;
}

/* Record a folded value (takes a and b; b NULL or equal to a: a constant). */
static tsr_status put_folded(ctx *c, const char *name, tsr_array *a, tsr_array *b, int is_int,
                             int truncate) {
    if (b && memcmp(a->dims, b->dims, sizeof a->dims) == 0 && a->rank == b->rank) {
        int same = 1;
        for (size_t k = 0; k < a->numel && same; k++) same = a->data[k] == b->data[k];
        if (same) {
            tsr_array_free(b);
            b = NULL;
        }
    }
    cvalue *v;
    tsr_status st = cv_push(c, &v);
    if (st != TSR_OK) {
        tsr_array_free(a);
        tsr_array_free(b);
        return st;
    }
    v->owned = a;
    v->a = a;
    v->b = b;
    v->owned_name = strdup(name);
    v->name = v->owned_name ? v->owned_name : "";
    if (!v->owned_name) return tsr_fail(TSR_ERR_NOMEM, "out of memory");
    for (int p = 0; is_int && p < 2; p++) {
        tsr_array *t = p ? b : a;
        for (size_t k = 0; t && k < t->numel; k++) {
            double x = truncate ? trunc(t->data[k]) : t->data[k];
            if (!isfinite(x) || fabs(x) > 9.0e15)
                return tsr_fail(TSR_ERR_FORMAT, "%s: integer result out of range", c->lab);
            t->data[k] = x;
        }
    }
    if (is_int) {
        v->owned_i = malloc((a->numel ? a->numel : 1) * sizeof *v->owned_i);
        if (!v->owned_i) return tsr_fail(TSR_ERR_NOMEM, "out of memory");
        for (size_t k = 0; k < a->numel; k++) v->owned_i[k] = (int64_t)a->data[k];
        v->i = v->owned_i;
    }
    if (is_output(c, name)) TSR_TRY(use_value(c, name));
    return TSR_OK;
}

/* Shape / Size of a value whose shape is known at import (free dimensions as probes). */
static tsr_status fold_shape(ctx *c) {
    const tsr_onnx_node *n = cur(c);
    int size = strcmp(n->op_type, "Size") == 0;
    int64_t start = 0, end = INT64_MAX;
    if (!size) {
        TSR_TRY(attr_i(c, "start", 0, &start));
        TSR_TRY(attr_i(c, "end", INT64_MAX, &end));
    }
    tsr_array *t[2] = { NULL, NULL };
    for (int p = 0; p < 2; p++) {
        int r;
        int64_t d[TSR_ARRAY_MAX_RANK];
        if (vshape(c, in_name(c, 0), p, &r, d, NULL)) {
            tsr_array_free(t[0]);
            return report(c,
                          "the shape of '%s' is not known at import (give the graph inputs "
                          "shapes; only the batch dimension may be free)",
                          in_name(c, 0));
        }
        int64_t s = start < 0 ? start + r : start, e = end < 0 ? end + r : end;
        s = s < 0 ? 0 : s > r ? r : s;
        e = e < 0 ? 0 : e > r ? r : e;
        int64_t len = e > s ? e - s : 0;
        tsr_status st = tsr_array_create(&t[p], size ? 0 : 1, &len);
        if (st != TSR_OK) {
            tsr_array_free(t[0]);
            return st;
        }
        if (size) {
            t[p]->data[0] = (double)tsr_dims_numel(r, d);
        } else {
            for (int64_t k = 0; k < len; k++) t[p]->data[k] = (double)d[s + k];
        }
    }
    return put_folded(c, n->out[0], t[0], t[1], 1, 0);
}

static tsr_status fold_gather(ctx *c) {
    const tsr_onnx_node *n = cur(c);
    cvalue *x = find_folded(c, in_name(c, 0)), *ix = find_folded(c, in_name(c, 1));
    if (!x || !ix) return tsr_fail(TSR_ERR_FORMAT, "%s needs data and indices", c->lab);
    if (ix->b) return fail_symbolic(c, ix->name);
    if (!ix->i && ix->a->numel)
        return tsr_fail(TSR_ERR_FORMAT, "%s: indices must be integers", c->lab);
    int64_t axis;
    TSR_TRY(attr_i(c, "axis", 0, &axis));
    int r = x->a->rank, ri = ix->a->rank;
    if (axis < -r || axis >= r) return tsr_fail(TSR_ERR_FORMAT, "%s: axis out of range", c->lab);
    if (axis < 0) axis += r;
    if (r - 1 + ri > TSR_ARRAY_MAX_RANK)
        return tsr_fail(TSR_ERR_UNSUPPORTED, "%s: result rank above %d", c->lab,
                        TSR_ARRAY_MAX_RANK);
    int64_t od[TSR_ARRAY_MAX_RANK], outer = 1, inner = 1, da = x->a->dims[axis];
    int ro = 0;
    for (int k = 0; k < axis; k++) outer *= od[ro++] = x->a->dims[k];
    for (int k = 0; k < ri; k++) od[ro++] = ix->a->dims[k];
    for (int k = (int)axis + 1; k < r; k++) inner *= od[ro++] = x->a->dims[k];
    int64_t total = tsr_dims_numel(ro, od);
    if (total < 0 || total > FOLD_MAX_NUMEL)
        return tsr_fail(TSR_ERR_UNSUPPORTED, "%s: the result is too large to compute at import",
                        c->lab);
    size_t ni = ix->a->numel;
    for (size_t j = 0; j < ni; j++)
        if (ix->i[j] < -da || ix->i[j] >= da)
            return tsr_fail(TSR_ERR_FORMAT, "%s: index %lld is out of range [%lld, %lld)", c->lab,
                            (long long)ix->i[j], (long long)-da, (long long)da);
    tsr_array *t[2] = { NULL, NULL };
    for (int p = 0; p < (x->b ? 2 : 1); p++) {
        const tsr_array *src = p ? x->b : x->a;
        tsr_status st = tsr_array_create(&t[p], ro, od);
        if (st != TSR_OK) {
            tsr_array_free(t[0]);
            return st;
        }
        for (int64_t o = 0; o < outer; o++)
            for (size_t j = 0; j < ni; j++) {
                int64_t q = ix->i[j] < 0 ? ix->i[j] + da : ix->i[j];
                memcpy(t[p]->data + ((size_t)o * ni + j) * (size_t)inner,
                       src->data + ((size_t)(o * da + q)) * (size_t)inner,
                       (size_t)inner * sizeof(double));
            }
    }
    return put_folded(c, n->out[0], t[0], t[1], x->i != NULL, 0);
}

/* ONNX TensorProto element types: 1 when real, 0 when integer or bool, -1 otherwise. */
static int cast_real(int64_t to) {
    if (to == 1 || to == 11) return 1; /* FLOAT16 / BFLOAT16 would need their rounding: no */
    if ((to >= 2 && to <= 7) || to == 9 || to == 12 || to == 13) return 0;
    return -1;
}

static tsr_status fold_cast(ctx *c) {
    const tsr_onnx_node *n = cur(c);
    cvalue *x = find_folded(c, in_name(c, 0));
    int64_t to;
    TSR_TRY(attr_i(c, "to", 0, &to));
    int real = cast_real(to);
    if (real < 0) return report(c, "Cast to element type %lld is not supported", (long long)to);
    for (int i = 0; i < c->m->n_inputs; i++) /* data bound to a graph input: its type */
        if (strcmp(c->m->inputs[i].name, in_name(c, 0)) == 0 &&
            cast_real(c->m->inputs[i].elem_type) < 0)
            return report(c, "Cast from element type %d is not supported",
                          (int)c->m->inputs[i].elem_type);
    tsr_array *t[2] = { NULL, NULL };
    TSR_TRY(tsr_array_clone(&t[0], x->a));
    if (x->b && tsr_array_clone(&t[1], x->b) != TSR_OK) {
        tsr_array_free(t[0]);
        return tsr_fail(TSR_ERR_NOMEM, "out of memory");
    }
    if (to == 9)
        for (int p = 0; p < 2; p++)
            for (size_t k = 0; t[p] && k < t[p]->numel; k++) t[p]->data[k] = t[p]->data[k] != 0;
    return put_folded(c, n->out[0], t[0], t[1], !real, 1);
}

static tsr_status fold_constant_of_shape(ctx *c) {
    const tsr_onnx_node *n = cur(c);
    const int64_t *v;
    size_t cnt;
    TSR_TRY(const_ints(c, 0, &v, &cnt, 1));
    if (cnt > TSR_ARRAY_MAX_RANK)
        return tsr_fail(TSR_ERR_UNSUPPORTED, "%s: rank %zu (at most %d)", c->lab, cnt,
                        TSR_ARRAY_MAX_RANK);
    double val = 0;
    int is_int = 0;
    const tsr_onnx_attr *at = tsr_onnx_find_attr(n, "value");
    if (at) {
        if (at->type != TSR_ONNX_ATTR_TENSOR || !at->t || at->t->numel != 1)
            return tsr_fail(TSR_ERR_FORMAT, "%s: value must be a one-element tensor", c->lab);
        is_int = at->t->dtype == TSR_ONNX_INT64;
        val = is_int ? (double)at->t->i[0] : (double)at->t->f[0];
    }
    int64_t total = tsr_dims_numel((int)cnt, v);
    if (total < 0 || total > FOLD_MAX_NUMEL)
        return tsr_fail(TSR_ERR_UNSUPPORTED, "%s: shape too large (at most %lld elements)", c->lab,
                        (long long)FOLD_MAX_NUMEL);
    tsr_array *t;
    TSR_TRY(tsr_array_create(&t, (int)cnt, v));
    for (size_t k = 0; k < t->numel; k++) t->data[k] = val;
    return put_folded(c, n->out[0], t, NULL, is_int, 0);
}

static tsr_status imp_op(ctx *c);

/*
 * Any other foldable operator: import it into a scratch graph whose inputs
 * are the folded values (once per probe when they depend on a free
 * dimension) and run it there, so folding follows the executor exactly.
 */
static tsr_status fold_generic(ctx *c) {
    const tsr_onnx_node *n = cur(c);
    int sym = 0, is_int = 1;
    for (int k = 0; k < n->n_in; k++) {
        if (!n->in[k][0]) continue;
        cvalue *v = find_folded(c, n->in[k]);
        sym |= v->b != NULL;
        is_int &= v->i != NULL;
    }
    tsr_array *res[2] = { NULL, NULL };
    tsr_graph *main_g = c->g;
    tsr_status st = TSR_OK;
    int reported = 0;
    for (int p = 0; p < (sym ? 2 : 1) && st == TSR_OK && !reported; p++) {
        tsr_graph *g2 = NULL;
        st = tsr_graph_create(&g2);
        for (int k = 0; st == TSR_OK && k < n->n_in; k++) {
            if (!n->in[k][0] || tsr_graph_find_value(g2, n->in[k]) >= 0) continue;
            cvalue *v = find_folded(c, n->in[k]);
            st = tsr_graph_add_const(g2, n->in[k], p && v->b ? v->b : v->a);
        }
        int nrep = c->n_report;
        if (st == TSR_OK) {
            c->g = g2;
            c->folding = 1;
            st = imp_op(c);
            c->folding = 0;
            c->g = main_g;
            reported = c->n_report != nrep;
        }
        if (st == TSR_OK && !reported) st = tsr_graph_add_output(g2, n->out[0]);
        if (st == TSR_OK && !reported) st = tsr_graph_finalize(g2);
        int ro;
        int64_t od[TSR_ARRAY_MAX_RANK];
        if (st == TSR_OK && !reported && tsr_graph_value_shape(g2, n->out[0], &ro, od) == TSR_OK &&
            tsr_dims_numel(ro, od) > FOLD_MAX_NUMEL)
            st = tsr_fail(TSR_ERR_UNSUPPORTED, "%s: the result is too large to compute at import",
                          c->lab);
        if (st == TSR_OK && !reported) st = tsr_graph_run(g2, NULL, &res[p]);
        tsr_graph_free(g2);
    }
    if (st != TSR_OK || reported) {
        tsr_array_free(res[0]);
        tsr_array_free(res[1]);
        return st;
    }
    return put_folded(c, n->out[0], res[0], res[1], is_int, strcmp(n->op_type, "Div") == 0);
}

/* *done = 1 when the node was folded into a value known at import (or reported). */
static tsr_status fold_node(ctx *c, int *done) {
    static const char *const generic[] = { "Add",   "Sub",      "Mul",       "Div",     "Neg",
                                           "Pow",   "Identity", "Unsqueeze", "Squeeze", "Concat",
                                           "Slice", "Reshape",  "Transpose", "Flatten", "Sqrt" };
    const tsr_onnx_node *n = cur(c);
    const char *op = n->op_type;
    *done = 0;
    if (c->folding || n->n_out < 1 || !n->out[0][0]) return TSR_OK;
    if (strcmp(op, "Shape") == 0 || strcmp(op, "Size") == 0) {
        *done = 1;
        return fold_shape(c);
    }
    int any = 0;
    for (int k = 0; k < n->n_in; k++) {
        if (!n->in[k][0]) continue;
        if (!find_folded(c, n->in[k])) return TSR_OK;
        any = 1;
    }
    if (!any) return TSR_OK;
    *done = 1;
    if (strcmp(op, "Gather") == 0) return fold_gather(c);
    if (strcmp(op, "Cast") == 0) return fold_cast(c);
    if (strcmp(op, "ConstantOfShape") == 0) return fold_constant_of_shape(c);
    for (size_t i = 0; i < sizeof generic / sizeof generic[0]; i++)
        if (strcmp(op, generic[i]) == 0) return fold_generic(c);
    *done = 0;
    return TSR_OK;
}

/*
 * Reshape to a shape computed from tensor shapes with a free dimension:
 * entries equal under both probes are constants; an entry that is the input's
 * dimension at the same position becomes 0 (copy); one remaining entry
 * becomes -1 (infer). The result is checked against the computed shape under
 * both probes.
 */
static tsr_status reshape_symbolic(ctx *c, tsr_graph_attrs *a, const cvalue *sv) {
    int64_t az;
    TSR_TRY(attr_i(c, "allowzero", 0, &az));
    size_t cnt = sv->a->numel;
    if (!sv->i || sv->a->rank != 1)
        return tsr_fail(TSR_ERR_FORMAT, "%s: the shape must be a list of integers", c->lab);
    if (cnt > TSR_ARRAY_MAX_RANK)
        return tsr_fail(TSR_ERR_UNSUPPORTED, "%s: target rank %zu (at most %d)", c->lab, cnt,
                        TSR_ARRAY_MAX_RANK);
    int rx[2];
    int64_t xd[2][TSR_ARRAY_MAX_RANK];
    for (int p = 0; p < 2; p++)
        if (vshape(c, in_name(c, 0), p, &rx[p], xd[p], NULL))
            return tsr_fail(TSR_ERR_UNSUPPORTED,
                            "%s: the target shape depends on the batch size and the shape of '%s' "
                            "is not known at import",
                            c->lab, in_name(c, 0));
    int unresolved = 0, minus = 0, u = -1;
    a->n_shape = (int)cnt;
    a->allowzero = az != 0;
    for (int k = 0; k < (int)cnt; k++) {
        double va = sv->a->data[k], vb = sv->b->data[k];
        if (va == vb) {
            a->shape[k] = (int64_t)va;
            minus += va == -1;
        } else if (!az && k < rx[0] && xd[0][k] == (int64_t)va && xd[1][k] == (int64_t)vb) {
            a->shape[k] = 0;
        } else {
            unresolved++;
            u = k;
        }
    }
    if (unresolved > 1 || (unresolved && minus))
        return tsr_fail(TSR_ERR_UNSUPPORTED,
                        "%s: %d entries of the target shape depend on the batch size in a way a "
                        "Reshape with 0 (copy) and one -1 (infer) cannot express; export with a "
                        "fixed batch size",
                        c->lab, unresolved);
    if (unresolved) a->shape[u] = -1;
    for (int p = 0; p < 2; p++) {
        tsr_graph_node tn;
        memset(&tn, 0, sizeof tn);
        tn.kind = TSR_NODE_RESHAPE;
        tn.name = c->lab;
        tn.n_in = 1;
        tn.a = *a;
        int ro1 = -1, ro2 = -2;
        int64_t o1[TSR_ARRAY_MAX_RANK], o2[TSR_ARRAY_MAX_RANK];
        const int64_t(*d)[TSR_ARRAY_MAX_RANK] = (const int64_t(*)[TSR_ARRAY_MAX_RANK]) & xd[p];
        tsr_status s1 = tsr_graph_node_shape(c->g, &tn, &rx[p], d, NULL, &ro1, o1);
        for (int k = 0; k < (int)cnt; k++) tn.a.shape[k] = (int64_t)(p ? sv->b : sv->a)->data[k];
        tsr_status s2 = tsr_graph_node_shape(c->g, &tn, &rx[p], d, NULL, &ro2, o2);
        if (s1 != TSR_OK || s2 != TSR_OK || ro1 != ro2 ||
            memcmp(o1, o2, (size_t)ro1 * sizeof o1[0]) != 0)
            return tsr_fail(TSR_ERR_UNSUPPORTED,
                            "%s: the target shape depends on the batch size and cannot be "
                            "written with 0 (copy) and -1 (infer); export with a fixed batch size",
                            c->lab);
    }
    tsr_clear_error();
    return TSR_OK;
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

static tsr_status imp_op(ctx *c) {
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
    if (strcmp(op, "Cast") == 0) {
        int64_t to;
        TSR_TRY(attr_i(c, "to", 0, &to));
        if (cast_real(to) == 1) return add(c, TSR_NODE_IDENTITY, 1, in, NULL);
        return report(c,
                      "Cast of an activation to element type %lld: Tessera computes on real "
                      "numbers",
                      (long long)to);
    }
    if (strcmp(op, "Reshape") == 0) {
        const int64_t *v;
        size_t cnt;
        int64_t az;
        const cvalue *sv = find_folded(c, in[1]);
        if (sv && sv->b) {
            TSR_TRY(reshape_symbolic(c, &a, sv));
            return add(c, TSR_NODE_RESHAPE, 1, in, &a);
        }
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

static tsr_status imp_node(ctx *c) {
    int done;
    TSR_TRY(fold_node(c, &done));
    if (done) return TSR_OK;
    TSR_TRY(imp_op(c));
    return track_shapes(c);
}

/* ---- driver --------------------------------------------------------------------------------- */

static int real_type(int32_t t) {
    return t == TSR_ONNX_FLOAT || t == TSR_ONNX_DOUBLE;
}

static tsr_status load_consts(ctx *c) {
    const tsr_onnx_model *m = c->m;
    int nb = c->o ? c->o->n_bind : 0;
    for (int i = 0; i < m->n_inits; i++) {
        const tsr_onnx_tensor *t = &m->inits[i];
        cvalue *v;
        TSR_TRY(cv_push(c, &v));
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
        cvalue *v;
        TSR_TRY(cv_push(c, &v));
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
        TSR_TRY(shape_input(c, v->name, v->ndims, v->dims));
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
    for (int i = 0; i < c.n_cv; i++) {
        tsr_array_free(c.cv[i].owned);
        tsr_array_free(c.cv[i].b);
        free(c.cv[i].owned_i);
        free(c.cv[i].owned_name);
    }
    free(c.cv);
    free(c.vrank);
    free(c.vdims);
    free(c.report);
    if (st != TSR_OK) {
        tsr_graph_free(c.g);
        return st;
    }
    if (n_approximated) *n_approximated = c.n_approx;
    *out = c.g;
    return TSR_OK;
}
