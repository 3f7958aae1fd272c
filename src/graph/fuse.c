/*
 * graph/fuse.c - the one polynomial recogniser: maximal subgraphs of
 * Add / Sub / Mul / Div-by-constant / Neg / Pow (integer) / Square whose
 * operands are one value x, polynomials of that x, or constants (scalars, or
 * per channel along axis 1) are folded symbolically into one polynomial of x
 * and become a POLY node (SQUARE for exactly x*x). Whatever exports the
 * graph wrote (PyTorch's a*x**2 + b*x + c, Horner forms, x*x, our own
 * Mul/Pow/Add pattern) is recognised the same way. Polynomials reach
 * degree FUSE_MAX_DEGREE at most; larger products stay as nodes.
 */
#include "graph/graph_internal.h"

#include "core/error.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FUSE_MAX_DEGREE 31

/* A polynomial of value `base` with nch coefficient rows of deg+1 entries. */
typedef struct sym {
    int base;    /* value index; -1 = not a polynomial of one value */
    int deg;     /* degree (as written: leading coefficients may be 0) */
    int64_t nch; /* 1 or the channel count along axis 1 */
    double *c;   /* (nch, deg + 1) */
    int folded;  /* number of ops folded into it (0 = the base itself) */
} sym;

static void sym_clear(sym *s) {
    free(s->c);
    memset(s, 0, sizeof *s);
    s->base = -1;
}

static int sym_alloc(sym *s, int base, int deg, int64_t nch) {
    s->base = base;
    s->deg = deg;
    s->nch = nch;
    s->folded = 0;
    s->c = calloc((size_t)(nch * (deg + 1)), sizeof *s->c);
    return s->c ? 0 : -1;
}

static double coef(const sym *s, int64_t ch, int k) {
    if (k > s->deg) return 0;
    return s->c[(s->nch == 1 ? 0 : ch) * (s->deg + 1) + k];
}

/*
 * A constant as a degree-0 polynomial over a base of shape (rank, dims):
 * numel 1 -> scalar; a shape that is 1 everywhere except axis 1 of the base
 * (right-aligned) -> per channel. Returns -1 when neither.
 */
static int const_sym(const tsr_array *t, int rank, const int64_t *dims, sym *out) {
    if (t->rank > rank) return -1;
    if (t->numel == 1) {
        if (sym_alloc(out, -1, 0, 1)) return -1;
        out->c[0] = t->data[0];
        return 0;
    }
    if (rank < 2) return -1;
    for (int k = 0; k < t->rank; k++) {
        int j = k + (rank - t->rank);
        if (j == 1 ? t->dims[k] != dims[1] : t->dims[k] != 1) return -1;
    }
    if (t->rank < rank - 1) return -1;
    if (sym_alloc(out, -1, 0, dims[1])) return -1;
    for (int64_t c = 0; c < dims[1]; c++) out->c[c] = t->data[c];
    return 0;
}

static int64_t max64(int64_t a, int64_t b) {
    return a > b ? a : b;
}

static int sym_add(const sym *a, const sym *b, double sb, sym *o, int base) {
    int deg = a->deg > b->deg ? a->deg : b->deg;
    int64_t nch = max64(a->nch, b->nch);
    if (a->nch != 1 && b->nch != 1 && a->nch != b->nch) return -1;
    if (sym_alloc(o, base, deg, nch)) return -1;
    for (int64_t ch = 0; ch < nch; ch++)
        for (int k = 0; k <= deg; k++)
            o->c[ch * (deg + 1) + k] = coef(a, ch, k) + sb * coef(b, ch, k);
    return 0;
}

static int sym_mul(const sym *a, const sym *b, sym *o, int base) {
    int deg = a->deg + b->deg;
    int64_t nch = max64(a->nch, b->nch);
    if (deg > FUSE_MAX_DEGREE || (a->nch != 1 && b->nch != 1 && a->nch != b->nch)) return -1;
    if (sym_alloc(o, base, deg, nch)) return -1;
    for (int64_t ch = 0; ch < nch; ch++)
        for (int i = 0; i <= a->deg; i++)
            for (int j = 0; j <= b->deg; j++)
                o->c[ch * (deg + 1) + i + j] += coef(a, ch, i) * coef(b, ch, j);
    return 0;
}

/* Operand k of node n as a polynomial (of a value or constant); -1 if not. */
static int operand(const tsr_graph *g, const sym *syms, int v, int rank, const int64_t *dims,
                   sym *out, int *is_const) {
    const tsr_graph_value *val = &g->values[v];
    *is_const = val->kind == TSR_VALUE_CONST;
    if (*is_const) return const_sym(val->data, rank, dims, out);
    if (syms[v].base >= 0) {
        if (sym_alloc(out, syms[v].base, syms[v].deg, syms[v].nch)) return -1;
        memcpy(out->c, syms[v].c, (size_t)(syms[v].nch * (syms[v].deg + 1)) * sizeof *out->c);
        out->folded = syms[v].folded;
        return 0;
    }
    if (sym_alloc(out, v, 1, 1)) return -1; /* the value itself: x */
    out->c[1] = 1;
    return 0;
}

static int same_shape(const tsr_graph_value *a, const tsr_graph_value *b) {
    if (a->rank != b->rank) return 0;
    for (int k = 0; k < a->rank; k++) /* free input dimensions (-1) were inferred as 1 */
        if ((a->dims[k] < 0 ? 1 : a->dims[k]) != (b->dims[k] < 0 ? 1 : b->dims[k])) return 0;
    return 1;
}

/* The polynomial computed by node n, or base -1. */
static void node_sym(const tsr_graph *g, sym *syms, const tsr_graph_node *n, sym *o) {
    sym_clear(o);
    const tsr_graph_value *out = &g->values[n->out];
    sym a, b;
    int ca = 1, cb = 1;
    memset(&a, 0, sizeof a);
    memset(&b, 0, sizeof b);
    a.base = b.base = -1;
    int arity = 0;
    switch (n->kind) {
    case TSR_NODE_ADD:
    case TSR_NODE_SUB:
    case TSR_NODE_MUL:
    case TSR_NODE_DIV:
    case TSR_NODE_POW:
        arity = 2;
        break;
    case TSR_NODE_NEG:
    case TSR_NODE_SQUARE:
        arity = 1;
        break;
    default:
        return;
    }
    if (operand(g, syms, n->in[0], out->rank, out->dims, &a, &ca)) goto done;
    if (arity == 2 && operand(g, syms, n->in[1], out->rank, out->dims, &b, &cb)) goto done;
    if (ca && (arity == 1 || cb)) goto done; /* constants only */
    int base = ca ? b.base : a.base;
    if (arity == 2 && !ca && !cb && a.base != b.base) goto done;
    if (!same_shape(out, &g->values[base])) goto done;
    int folded = (ca ? 0 : a.folded) + (arity == 2 && !cb ? b.folded : 0) + 1;
    int r = -1;
    switch (n->kind) {
    case TSR_NODE_ADD:
        r = sym_add(&a, &b, 1.0, o, base);
        break;
    case TSR_NODE_SUB:
        r = sym_add(&a, &b, -1.0, o, base);
        break;
    case TSR_NODE_MUL:
        r = sym_mul(&a, &b, o, base);
        break;
    case TSR_NODE_DIV: {
        if (!cb) break;
        int ok = 1;
        for (int64_t i = 0; i < b.nch; i++) {
            if (b.c[i] == 0) ok = 0;
            b.c[i] = 1.0 / b.c[i];
        }
        if (ok) r = sym_mul(&a, &b, o, base);
        break;
    }
    case TSR_NODE_NEG: {
        sym z;
        if (sym_alloc(&z, -1, 0, 1)) break;
        r = sym_add(&z, &a, -1.0, o, base);
        free(z.c);
        break;
    }
    case TSR_NODE_SQUARE:
        r = sym_mul(&a, &a, o, base);
        break;
    case TSR_NODE_POW: {
        if (!cb || b.nch != 1 || ca) break;
        double e = b.c[0];
        if (e != floor(e) || e < 1 || e * a.deg > FUSE_MAX_DEGREE) break;
        sym acc;
        if (operand(g, syms, n->in[0], out->rank, out->dims, &acc, &ca)) break;
        r = 0;
        for (int k = 1; k < (int)e && r == 0; k++) {
            sym t;
            r = sym_mul(&acc, &a, &t, base);
            free(acc.c);
            acc = t;
        }
        if (r == 0)
            *o = acc;
        else
            free(acc.c);
        break;
    }
    default:
        break;
    }
    if (r != 0)
        sym_clear(o);
    else
        o->folded = folded;
done:
    free(a.c);
    free(b.c);
}

static int is_plain_square(const sym *s) {
    return s->nch == 1 && s->deg == 2 && s->c[0] == 0 && s->c[1] == 0 && s->c[2] == 1;
}

static tsr_status emit_poly(tsr_graph *o, const tsr_graph *g, const tsr_graph_node *n,
                            const sym *s) {
    const char *base = g->values[s->base].name;
    const char *out = g->values[n->out].name;
    if (is_plain_square(s))
        return tsr_graph_add_node(o, TSR_NODE_SQUARE, n->name, 1, &base, out, NULL);
    /* Drop zero leading coefficients (all channels). */
    int deg = s->deg;
    while (deg > 0) {
        int zero = 1;
        for (int64_t ch = 0; ch < s->nch; ch++)
            if (s->c[ch * (s->deg + 1) + deg] != 0) zero = 0;
        if (!zero) break;
        deg--;
    }
    size_t len = strlen(out) + 8;
    char *cname = malloc(len);
    if (!cname) return tsr_fail(TSR_ERR_NOMEM, "out of memory");
    snprintf(cname, len, "%s.coef", out);
    for (int k = 0; tsr_graph_find_value(o, cname) >= 0 || tsr_graph_find_value(g, cname) >= 0;
         k++) {
        char *bigger = realloc(cname, len + 12);
        if (!bigger) {
            free(cname);
            return tsr_fail(TSR_ERR_NOMEM, "out of memory");
        }
        cname = bigger;
        snprintf(cname, len + 12, "%s.coef%d", out, k);
    }
    int64_t dims[2] = { s->nch, deg + 1 };
    tsr_array *c;
    tsr_status st = s->nch == 1 ? tsr_array_create(&c, 1, dims + 1) : tsr_array_create(&c, 2, dims);
    if (st == TSR_OK) {
        for (int64_t ch = 0; ch < s->nch; ch++)
            for (int k = 0; k <= deg; k++)
                c->data[ch * (deg + 1) + k] = s->c[ch * (s->deg + 1) + k];
        st = tsr_graph_add_const(o, cname, c);
        tsr_array_free(c);
    }
    if (st == TSR_OK) {
        const char *in[2] = { base, cname };
        tsr_graph_attrs a;
        tsr_graph_attrs_default(&a);
        st = tsr_graph_add_node(o, TSR_NODE_POLY, n->name, 2, in, out, &a);
    }
    free(cname);
    return st;
}

tsr_status tsr_graph_fuse_polynomials(const tsr_graph *g, tsr_graph **out) {
    TSR_REQUIRE(g != NULL && g->finalized && out != NULL,
                "tsr_graph_fuse_polynomials: finalize the graph first");
    *out = NULL;
    int nv = g->n_values;
    sym *syms = calloc((size_t)nv, sizeof *syms);
    char *needed = calloc((size_t)nv, 1);
    char *emit = calloc((size_t)(g->n_nodes ? g->n_nodes : 1), 1); /* 1 node, 2 poly */
    tsr_graph *o = NULL;
    tsr_status st = TSR_OK;
    if (!syms || !needed || !emit) {
        st = tsr_fail(TSR_ERR_NOMEM, "out of memory");
        goto done;
    }
    for (int v = 0; v < nv; v++) syms[v].base = -1;
    for (int i = 0; i < g->n_nodes; i++) {
        const tsr_graph_node *n = &g->nodes[g->order[i]];
        node_sym(g, syms, n, &syms[n->out]);
    }
    /* Backward: which values are needed and how each needed node value is made. */
    for (int i = 0; i < g->n_outputs; i++) needed[g->outputs[i]] = 1;
    for (int i = g->n_nodes - 1; i >= 0; i--) {
        const tsr_graph_node *n = &g->nodes[g->order[i]];
        if (!needed[n->out]) continue;
        const sym *s = &syms[n->out];
        if (s->base >= 0 && s->folded >= 1 &&
            !(n->kind == TSR_NODE_POLY || n->kind == TSR_NODE_CHEBYSHEV)) {
            emit[g->order[i]] = 2;
            needed[s->base] = 1;
        } else {
            emit[g->order[i]] = 1;
            for (int k = 0; k < n->n_in; k++)
                if (n->in[k] >= 0) needed[n->in[k]] = 1;
        }
    }
    st = tsr_graph_create(&o);
    for (int i = 0; st == TSR_OK && i < g->n_inputs; i++) {
        const tsr_graph_value *v = &g->values[g->inputs[i]];
        st = tsr_graph_add_input(o, v->name, v->rank, v->dims);
    }
    for (int v = 0; st == TSR_OK && v < nv; v++)
        if (g->values[v].kind == TSR_VALUE_CONST && needed[v])
            st = tsr_graph_add_const(o, g->values[v].name, g->values[v].data);
    for (int i = 0; st == TSR_OK && i < g->n_nodes; i++) {
        const tsr_graph_node *n = &g->nodes[g->order[i]];
        if (emit[g->order[i]] == 2)
            st = emit_poly(o, g, n, &syms[n->out]);
        else if (emit[g->order[i]] == 1)
            st = tsr_graph_add_node(o, n->kind, n->name, n->n_in, (const char *const *)n->in_names,
                                    g->values[n->out].name, &n->a);
    }
    for (int i = 0; st == TSR_OK && i < g->n_outputs; i++)
        st = tsr_graph_add_output(o, g->output_names[i]);
    if (st == TSR_OK) st = tsr_graph_finalize(o);
done:
    if (syms)
        for (int v = 0; v < nv; v++) free(syms[v].c);
    free(syms);
    free(needed);
    free(emit);
    if (st != TSR_OK) {
        tsr_graph_free(o);
        return st;
    }
    *out = o;
    return TSR_OK;
}
