/*
 * nn/import.c - ONNX models in: the ONNX importer onto the one model graph
 * (onnx/onnx_graph.h: every operator mapped, polynomial subgraphs
 * recognised, --approx replacements, the unsupported-node report), the
 * lowering of the graph onto inference layers (nn/lower.c, with its own
 * report of nodes the compiler cannot take), then the CKKS simplifications
 * (nn/simplify.c).
 *
 * The report lists every node that cannot run under CKKS, by name and
 * operator, with the replacement Tessera can apply, instead of failing on
 * the first one.
 */
#include "nn/model.h"

#include "core/alloc.h"
#include "core/error.h"
#include "core/io.h"
#include "onnx/onnx.h"
#include "onnx/onnx_graph.h"

#include <math.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void tsr_nn_import_opts_default(tsr_nn_import_opts *o) {
    memset(o, 0, sizeof *o);
    o->approx_relu_range = 4.0;
}

void tsr_nn_string_free(char *s) {
    tsr_free(s);
}

/* ---- a growing text buffer -------------------------------------------------- */

typedef struct text {
    char *s;
    size_t len, cap;
    int oom;
} text;

static void tprintf(text *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void tprintf(text *t, const char *fmt, ...) {
    if (t->oom) return;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0) return;
    if (t->len + (size_t)n + 1 > t->cap) {
        size_t cap = t->cap ? t->cap : 256;
        while (cap < t->len + (size_t)n + 1) cap *= 2;
        char *s = tsr_alloc(cap);
        if (!s) {
            t->oom = 1;
            return;
        }
        if (t->len) memcpy(s, t->s, t->len);
        tsr_free(t->s);
        t->s = s;
        t->cap = cap;
    }
    va_start(ap, fmt);
    vsnprintf(t->s + t->len, t->cap - t->len, fmt, ap);
    va_end(ap);
    t->len += (size_t)n;
}

/* The graph importer's options: the --approx list, with --approx-relu as Relu=DEG@RANGE. */
static tsr_status import_opts(const tsr_nn_import_opts *o, tsr_onnx_import_opts *g) {
    tsr_onnx_import_opts_default(g);
    int relu = 0;
    for (int i = 0; i < o->n_approx; i++) {
        if (!o->approx[i]) return tsr_fail(TSR_ERR_INVALID_ARG, "--approx %d is NULL", i);
        TSR_TRY(tsr_onnx_parse_approx(o->approx[i], &g->approx[g->n_approx]));
        if (g->approx[g->n_approx].degree > NN_MAX_DEGREE)
            return tsr_fail(TSR_ERR_INVALID_ARG,
                            "--approx '%s': degree %d is above %d, the largest a plan holds",
                            o->approx[i], g->approx[g->n_approx].degree, NN_MAX_DEGREE);
        relu |= strcmp(g->approx[g->n_approx].op, "Relu") == 0;
        g->n_approx++;
    }
    if (o->approx_relu_degree > 0 && !relu) {
        tsr_onnx_approx *a = &g->approx[g->n_approx++];
        memset(a, 0, sizeof *a);
        snprintf(a->op, sizeof a->op, "Relu");
        a->degree = o->approx_relu_degree;
        a->lo = -o->approx_relu_range;
        a->hi = o->approx_relu_range;
    }
    return TSR_OK;
}

tsr_status tsr_nn_model_from_graph(const tsr_graph *g, const tsr_nn_import_opts *o,
                                   tsr_nn_model **out, char **report) {
    *out = NULL;
    if (report) *report = NULL;
    tsr_nn_model *m = NULL;
    char *rep = NULL;
    int n_bad = 0;
    tsr_status st = nn_model_from_graph(g, &m, &rep, &n_bad);
    if (st == TSR_OK && !(o && o->no_simplify)) st = nn_model_simplify_rules(m, NN_SIMPLIFY_V3);
    if (st == TSR_OK) st = nn_model_validate(m);
    /* The graph is kept only for plans of format 6: a graph that cannot be written (the graph
     * wire form's limits) leaves the model without one, and its plans are written in format 5. */
    if (st == TSR_OK && tsr_graph_clone(g, &m->graph) != TSR_OK) {
        tsr_clear_error();
        m->graph = NULL;
    }
    if (st != TSR_OK) {
        tsr_nn_model_free(m);
        if (report)
            *report = rep;
        else
            tsr_free(rep);
        return st;
    }
    tsr_free(rep);
    m->simplified = (o && o->no_simplify) ? 0 : NN_SIMPLIFY_V3;
    *out = m;
    return TSR_OK;
}

tsr_status nn_model_rebuild(const tsr_graph *g, int rules, nn_budget *budget, tsr_nn_model **out) {
    *out = NULL;
    tsr_nn_model *m = NULL;
    tsr_status st = nn_model_from_graph_capped(g, budget, &m, NULL, NULL);
    if (st == TSR_OK && rules) st = nn_model_simplify_rules(m, rules);
    if (st == TSR_OK && budget) { /* the simplified layers, counted again */
        budget->weights = 0;
        st = nn_budget_check(budget, m, 0, 0);
    }
    if (st == TSR_OK) st = nn_model_validate(m);
    if (st != TSR_OK) {
        tsr_nn_model_free(m);
        return st;
    }
    m->simplified = rules;
    *out = m;
    return TSR_OK;
}

static double meta_num(const tsr_onnx_model *om, const char *key, double def) {
    const char *v = tsr_onnx_meta(om, key);
    if (!v) return def;
    char *end;
    double d = strtod(v, &end);
    return (end != v && isfinite(d)) ? d : def;
}

tsr_status tsr_nn_import_onnx(const char *path, const tsr_nn_import_opts *opts, tsr_nn_model **out,
                              char **report) {
    *out = NULL;
    if (report) *report = NULL;
    tsr_nn_import_opts def;
    if (!opts) {
        tsr_nn_import_opts_default(&def);
        opts = &def;
    }
    /* The range is checked here, not left to fail in the fit: a degenerate interval is the
     * caller's argument, not something wrong with the model file. */
    if (opts->n_approx < 0 || opts->n_approx > TSR_NN_MAX_APPROX - 1)
        return tsr_fail(TSR_ERR_INVALID_ARG, "at most %d --approx replacements (got %d)",
                        TSR_NN_MAX_APPROX - 1, opts->n_approx);
    if (opts->approx_relu_degree < 0 || opts->approx_relu_degree > 8 ||
        (opts->approx_relu_degree > 0 &&
         !(opts->approx_relu_range >= 1e-6 && opts->approx_relu_range <= 1e6)))
        return tsr_fail(TSR_ERR_INVALID_ARG,
                        "the ReLU approximation needs a degree in 1..8 and a range B in [1e-6, "
                        "1e6] (got degree %d, range %g): the fit on [-B, B] is meaningless "
                        "outside that",
                        opts->approx_relu_degree, opts->approx_relu_range);
    /* The file's hash binds plans to the model they came from. */
    uint8_t *buf = NULL;
    size_t len = 0;
    tsr_status st = tsr_read_whole_file(path, TSR_ONNX_MAX_BYTES, "an ONNX model", &buf, &len);
    tsr_onnx_model *om = NULL;
    if (st != TSR_OK) return st; /* the message names the path */
    st = tsr_onnx_parse(&om, buf, len);
    if (st != TSR_OK) {
        tsr_free(buf);
        return tsr_fail_context(st, "%s: ", path);
    }
    uint8_t hash[32];
    crypto_generichash(hash, sizeof hash, buf, len, NULL, 0);
    tsr_free(buf);

    tsr_onnx_import_opts gio;
    st = import_opts(opts, &gio);
    tsr_graph *g = NULL;
    int n_approx = 0;
    if (st == TSR_OK) st = tsr_onnx_to_graph(om, &gio, &g, &n_approx);
    tsr_nn_model *nm = NULL;
    char *lrep = NULL;
    int n_bad = 0;
    text rep = { 0 };
    if (st == TSR_ERR_UNSUPPORTED) {
        /* "N nodes cannot run under CKKS:\n  'name' (Op): why; replacement..." */
        const char *msg = tsr_last_error(), *colon = strstr(msg, "CKKS:");
        n_bad = atoi(msg);
        if (n_bad > 0 && colon) {
            const char *lines = colon + 5;
            while (*lines == '\n') lines++;
            tprintf(&rep, "%s: %d node%s cannot run under CKKS encryption:\n%s\n", path, n_bad,
                    n_bad == 1 ? "" : "s", lines);
        } else {
            n_bad = 0; /* another unsupported feature: the message says which */
        }
    } else if (st == TSR_OK) {
        st = nn_model_from_graph(g, &nm, &lrep, &n_bad);
        if (st == TSR_ERR_UNSUPPORTED && lrep)
            tprintf(&rep, "%s: %d node%s cannot be compiled for encrypted inference:\n%s", path,
                    n_bad, n_bad == 1 ? "" : "s", lrep);
        tsr_free(lrep);
    }
    if (st == TSR_OK) { /* the model keeps its graph (plans of format 6 store it) */
        nm->graph = g;
        nm->simplified = opts->no_simplify ? 0 : NN_SIMPLIFY_V3;
        g = NULL;
    }
    tsr_graph_free(g);
    if (st == TSR_ERR_UNSUPPORTED && rep.s && n_bad > 0) {
        const char *nl = strchr(rep.s, '\n');
        const char *l1 = nl ? nl + 1 : rep.s;
        while (*l1 == ' ') l1++;
        const char *e1 = strchr(l1, '\n');
        char first[200];
        snprintf(first, sizeof first, "%.*s", e1 ? (int)(e1 - l1) : (int)strlen(l1), l1);
        tsr_onnx_free(om);
        if (report)
            *report = rep.s;
        else
            tsr_free(rep.s);
        return tsr_fail(TSR_ERR_UNSUPPORTED, "%s: %d unsupported node%s, first %s%s", path, n_bad,
                        n_bad == 1 ? "" : "s", first, n_bad > 1 ? " (the report lists all)" : "");
    }
    tsr_free(rep.s);
    text notes = { 0 };
    if (st == TSR_OK) {
        memcpy(nm->source_hash, hash, sizeof hash);
        const char *base = strrchr(path, '/');
        snprintf(nm->source, sizeof nm->source, "%s", base ? base + 1 : path);
        nm->in_scale = meta_num(om, "tessera.input.scale", 1.0 / 255.0);
        nm->in_mean = meta_num(om, "tessera.input.mean", 0.0);
        nm->in_std = meta_num(om, "tessera.input.std", 1.0);
        if (!(nm->in_std > 0) || nm->in_scale == 0) {
            nm->in_scale = 1.0 / 255.0;
            nm->in_mean = 0.0;
            nm->in_std = 1.0;
        }
        const char *ok = tsr_onnx_meta(om, "tessera.output");
        if (ok && strcmp(ok, "classes") == 0)
            nm->out_kind = NN_OUTPUT_CLASSES;
        else if (ok && strcmp(ok, "values") == 0)
            nm->out_kind = NN_OUTPUT_VALUES;
        else if (ok)
            st = tsr_fail(TSR_ERR_FORMAT,
                          "%s: metadata tessera.output is 'classes' or 'values', not '%.40s'", path,
                          ok);
        for (int i = 0; i < nm->n_layers; i++)
            if (nm->layers[i].lossy)
                tprintf(&notes,
                        "lossy: '%s' replaces a non-polynomial operator by a polynomial (%s); "
                        "outputs may differ from the original model\n",
                        nm->layers[i].name, nm->layers[i].origin);
        if (st == TSR_OK && !opts->no_simplify) st = nn_model_simplify_rules(nm, NN_SIMPLIFY_V3);
        if (st == TSR_OK) st = nn_model_validate(nm);
    }
    tsr_onnx_free(om);
    if (st != TSR_OK) {
        tsr_nn_model_free(nm);
        tsr_free(notes.s);
        return tsr_fail_context(st, "%s: ", path);
    }
    if (nm->notes[0]) tprintf(&notes, "rewrites: %s\n", nm->notes);
    if (report)
        *report = notes.s;
    else
        tsr_free(notes.s);
    *out = nm;
    return TSR_OK;
}
