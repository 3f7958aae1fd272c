/*
 * nn/model.c - the inference graph: construction, validation, copies and the
 * plaintext reference executor (double precision, plain loops: this is the
 * ground truth encrypted inference is compared with).
 */
#include "nn/model.h"

#include "core/alloc.h"
#include "core/error.h"
#include "tessera/graph.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static const char *const kind_names[NN_KIND_COUNT_] = {
    [NN_CONV] = "conv",     [NN_DENSE] = "dense", [NN_AVGPOOL] = "avgpool", [NN_POLY] = "poly",
    [NN_SQUARE] = "square", [NN_ADD] = "add",     [NN_MUL] = "mul",         [NN_SQMUL] = "sqmul",
};

const char *nn_kind_name(nn_kind k) {
    return (unsigned)k < NN_KIND_COUNT_ ? kind_names[k] : "?";
}

int nn_out_size(int n, int k, int s, int pad) {
    if (n < 1 || k < 1 || s < 1 || pad < 0 || pad >= k || n + 2 * pad < k) return -1;
    return (n + 2 * pad - k) / s + 1;
}

tsr_status nn_model_create(tsr_nn_model **out, int c, int h, int w) {
    *out = NULL;
    if (c < 1 || h < 1 || w < 1 || (int64_t)c * h * w > ((int64_t)1 << 26))
        return tsr_fail(TSR_ERR_SHAPE, "input shape (%d, %d, %d) is empty or too large", c, h, w);
    tsr_nn_model *m = tsr_calloc(sizeof *m);
    if (!m) return tsr_fail(TSR_ERR_NOMEM, "out of memory");
    m->cap_tensors = 16;
    m->shapes = tsr_calloc_array((size_t)m->cap_tensors, sizeof *m->shapes);
    if (!m->shapes) {
        tsr_free(m);
        return tsr_fail(TSR_ERR_NOMEM, "out of memory");
    }
    m->n_tensors = 1;
    m->shapes[0] = (nn_shape){ c, h, w };
    m->output = 0;
    m->in_scale = 1.0;
    m->in_mean = 0.0;
    m->in_std = 1.0;
    *out = m;
    return TSR_OK;
}

static void layer_free(nn_layer *L) {
    tsr_free(L->w);
    tsr_free(L->b);
    L->w = L->b = NULL;
}

void tsr_nn_model_free(tsr_nn_model *m) {
    if (!m) return;
    for (int i = 0; i < m->n_layers; i++) layer_free(&m->layers[i]);
    tsr_free(m->layers);
    tsr_free(m->shapes);
    tsr_graph_free(m->graph);
    tsr_free(m);
}

static double *dup_doubles(const double *v, int64_t n) {
    if (!v || n <= 0) return NULL;
    double *r = tsr_alloc((size_t)n * sizeof *r);
    if (r) memcpy(r, v, (size_t)n * sizeof *r);
    return r;
}

/* Expected output shape of a layer, or a failure naming the problem. */
static tsr_status layer_shape(const tsr_nn_model *m, const nn_layer *L, nn_shape *os) {
    if (L->in[0] < 0 || L->in[0] >= m->n_tensors)
        return tsr_fail(TSR_ERR_FORMAT, "layer '%s' reads tensor %d, which does not exist", L->name,
                        L->in[0]);
    nn_shape s = m->shapes[L->in[0]];
    switch (L->kind) {
    case NN_CONV: {
        int oh = nn_out_size(s.h, L->kh, L->sh, L->ph), ow = nn_out_size(s.w, L->kw, L->sw, L->pw);
        if (oh < 1 || ow < 1 || L->kh > 64 || L->kw > 64)
            return tsr_fail(TSR_ERR_SHAPE,
                            "conv '%s': kernel %dx%d, stride %dx%d, pad %dx%d do not fit input "
                            "%dx%d",
                            L->name, L->kh, L->kw, L->sh, L->sw, L->ph, L->pw, s.h, s.w);
        int64_t per = (int64_t)s.c * L->kh * L->kw;
        if (L->w_len < per || L->w_len % per != 0)
            return tsr_fail(TSR_ERR_SHAPE, "conv '%s': %lld weights for %d input channels", L->name,
                            (long long)L->w_len, s.c);
        int F = (int)(L->w_len / per);
        if (L->b_len != 0 && L->b_len != F && L->b_len != (int64_t)F * oh * ow)
            return tsr_fail(TSR_ERR_SHAPE, "conv '%s': bias of %lld values for %d filters", L->name,
                            (long long)L->b_len, F);
        *os = (nn_shape){ F, oh, ow };
        return TSR_OK;
    }
    case NN_DENSE: {
        int64_t n = nn_numel(s);
        if (L->w_len < n || L->w_len % n != 0)
            return tsr_fail(TSR_ERR_SHAPE, "dense '%s': %lld weights for %lld inputs", L->name,
                            (long long)L->w_len, (long long)n);
        int64_t M = L->w_len / n;
        if (M > (1 << 24) || (L->b_len != 0 && L->b_len != M))
            return tsr_fail(TSR_ERR_SHAPE, "dense '%s': %lld outputs, bias of %lld", L->name,
                            (long long)M, (long long)L->b_len);
        *os = (nn_shape){ (int)M, 1, 1 };
        return TSR_OK;
    }
    case NN_AVGPOOL: {
        int oh = nn_out_size(s.h, L->kh, L->sh, L->ph), ow = nn_out_size(s.w, L->kw, L->sw, L->pw);
        if (oh < 1 || ow < 1 || L->kh > 64 || L->kw > 64)
            return tsr_fail(TSR_ERR_SHAPE, "avgpool '%s': window %dx%d does not fit input %dx%d",
                            L->name, L->kh, L->kw, s.h, s.w);
        *os = (nn_shape){ s.c, oh, ow };
        return TSR_OK;
    }
    case NN_POLY:
        if (L->degree < 1 || L->degree > NN_MAX_DEGREE || (L->nc != 1 && L->nc != s.c) ||
            L->w_len != (int64_t)L->nc * (L->degree + 1))
            return tsr_fail(TSR_ERR_SHAPE,
                            "poly '%s': degree %d with %d polynomials (%lld coefficients) on %d "
                            "channels",
                            L->name, L->degree, L->nc, (long long)L->w_len, s.c);
        *os = s;
        return TSR_OK;
    case NN_SQUARE:
        *os = s;
        return TSR_OK;
    case NN_SQMUL:
        if ((L->nc != 1 && L->nc != s.c) || L->w_len != L->nc)
            return tsr_fail(TSR_ERR_SHAPE, "sqmul '%s': %lld offsets (nc %d) on %d channels",
                            L->name, (long long)L->w_len, L->nc, s.c);
        *os = s;
        return TSR_OK;
    case NN_ADD:
    case NN_MUL: {
        const char *kn = nn_kind_name(L->kind);
        if (L->in[1] < 0 || L->in[1] >= m->n_tensors)
            return tsr_fail(TSR_ERR_FORMAT, "%s '%s' reads tensor %d, which does not exist", kn,
                            L->name, L->in[1]);
        nn_shape t = m->shapes[L->in[1]];
        if (s.c != t.c || s.h != t.h || s.w != t.w)
            return tsr_fail(TSR_ERR_SHAPE, "%s '%s': shapes (%d,%d,%d) and (%d,%d,%d) differ", kn,
                            L->name, s.c, s.h, s.w, t.c, t.h, t.w);
        *os = s;
        return TSR_OK;
    }
    default:
        return tsr_fail(TSR_ERR_FORMAT, "layer '%s' has unknown kind %d", L->name, (int)L->kind);
    }
}

tsr_status nn_model_add(tsr_nn_model *m, const nn_layer *proto, nn_shape oshape, int *out_tensor) {
    nn_shape want;
    nn_layer L = *proto;
    L.in[1] = nn_kind_binary(L.kind) ? L.in[1] : -1;
    L.w = L.b = NULL;
    TSR_TRY(layer_shape(m, &L, &want));
    if (want.c != oshape.c || want.h != oshape.h || want.w != oshape.w)
        return tsr_fail(TSR_ERR_SHAPE, "layer '%s' produces (%d,%d,%d), not (%d,%d,%d)", L.name,
                        want.c, want.h, want.w, oshape.c, oshape.h, oshape.w);
    if (m->n_layers == m->cap_layers) {
        int cap = m->cap_layers ? 2 * m->cap_layers : 16;
        nn_layer *nl = tsr_calloc_array((size_t)cap, sizeof *nl);
        if (!nl) return tsr_fail(TSR_ERR_NOMEM, "out of memory");
        if (m->n_layers) memcpy(nl, m->layers, (size_t)m->n_layers * sizeof *nl);
        tsr_free(m->layers);
        m->layers = nl;
        m->cap_layers = cap;
    }
    if (m->n_tensors == m->cap_tensors) {
        int cap = 2 * m->cap_tensors;
        nn_shape *ns = tsr_calloc_array((size_t)cap, sizeof *ns);
        if (!ns) return tsr_fail(TSR_ERR_NOMEM, "out of memory");
        memcpy(ns, m->shapes, (size_t)m->n_tensors * sizeof *ns);
        tsr_free(m->shapes);
        m->shapes = ns;
        m->cap_tensors = cap;
    }
    L.w = dup_doubles(proto->w, proto->w_len);
    L.b = dup_doubles(proto->b, proto->b_len);
    if ((proto->w_len > 0 && !L.w) || (proto->b_len > 0 && !L.b)) {
        layer_free(&L);
        return tsr_fail(TSR_ERR_NOMEM, "out of memory");
    }
    L.out = m->n_tensors;
    m->shapes[m->n_tensors++] = oshape;
    m->layers[m->n_layers++] = L;
    m->output = L.out;
    if (out_tensor) *out_tensor = L.out;
    return TSR_OK;
}

tsr_status nn_model_push(tsr_nn_model *m, const nn_layer *proto, int *out_tensor) {
    nn_shape os;
    nn_layer L = *proto;
    L.in[1] = nn_kind_binary(L.kind) ? L.in[1] : -1;
    TSR_TRY(layer_shape(m, &L, &os));
    return nn_model_add(m, proto, os, out_tensor);
}

/* The recorded per-sample input / output dimensions, when present, must fit the tensors. */
static tsr_status check_dims(const char *what, int rank, const int64_t *dims, int64_t numel) {
    if (rank == 0) return TSR_OK;
    if (rank < 0 || rank > NN_MAX_RANK)
        return tsr_fail(TSR_ERR_FORMAT, "model %s rank %d is invalid", what, rank);
    int64_t n = 1;
    for (int i = 0; i < rank; i++) {
        if (dims[i] < 1 || dims[i] > numel)
            return tsr_fail(TSR_ERR_FORMAT, "model %s dimension %d is invalid", what, i);
        n *= dims[i];
    }
    if (n != numel)
        return tsr_fail(TSR_ERR_FORMAT, "model %s dimensions hold %lld values, not %lld", what,
                        (long long)n, (long long)numel);
    return TSR_OK;
}

tsr_status nn_model_validate(const tsr_nn_model *m) {
    if (m->n_tensors < 1 || m->n_layers < 0 || m->n_layers > m->n_tensors)
        return tsr_fail(TSR_ERR_FORMAT, "model has %d layers over %d tensors", m->n_layers,
                        m->n_tensors);
    nn_shape in = m->shapes[0];
    if (in.c < 1 || in.h < 1 || in.w < 1 || nn_numel(in) > ((int64_t)1 << 26))
        return tsr_fail(TSR_ERR_SHAPE, "input shape (%d,%d,%d) is invalid", in.c, in.h, in.w);
    for (int i = 0; i < m->n_layers; i++) {
        const nn_layer *L = &m->layers[i];
        if (L->out != i + 1)
            return tsr_fail(TSR_ERR_FORMAT, "layer %d writes tensor %d (expected %d)", i, L->out,
                            i + 1);
        for (int k = 0; k < 2; k++)
            if (L->in[k] > i || (k == 0 && L->in[k] < 0) ||
                (k == 1 && !nn_kind_binary(L->kind) && L->in[k] != -1))
                return tsr_fail(TSR_ERR_FORMAT, "layer '%s' reads tensor %d out of order", L->name,
                                L->in[k]);
        if (memchr(L->name, 0, sizeof L->name) == NULL ||
            memchr(L->origin, 0, sizeof L->origin) == NULL)
            return tsr_fail(TSR_ERR_FORMAT, "layer %d: unterminated name", i);
        nn_shape os;
        TSR_TRY(layer_shape(m, L, &os));
        nn_shape have = m->shapes[L->out];
        if (os.c != have.c || os.h != have.h || os.w != have.w)
            return tsr_fail(TSR_ERR_SHAPE, "layer '%s': output (%d,%d,%d) expected (%d,%d,%d)",
                            L->name, have.c, have.h, have.w, os.c, os.h, os.w);
        if ((L->kind == NN_CONV || L->kind == NN_DENSE || L->kind == NN_POLY ||
             L->kind == NN_SQMUL) &&
            !L->w)
            return tsr_fail(TSR_ERR_FORMAT, "layer '%s' has no weights", L->name);
        if ((L->w_len > 0 && !L->w) || (L->b_len > 0 && !L->b))
            return tsr_fail(TSR_ERR_FORMAT, "layer '%s': missing data", L->name);
        for (int64_t j = 0; j < L->w_len; j++)
            if (!isfinite(L->w[j]))
                return tsr_fail(TSR_ERR_FORMAT, "layer '%s': weight %lld is not finite", L->name,
                                (long long)j);
        for (int64_t j = 0; j < L->b_len; j++)
            if (!isfinite(L->b[j]))
                return tsr_fail(TSR_ERR_FORMAT, "layer '%s': bias %lld is not finite", L->name,
                                (long long)j);
        if (!(L->bound >= 0) || !isfinite(L->bound))
            return tsr_fail(TSR_ERR_FORMAT, "layer '%s': bound is invalid", L->name);
    }
    if (m->n_tensors != m->n_layers + 1)
        return tsr_fail(TSR_ERR_FORMAT, "model has %d tensors for %d layers", m->n_tensors,
                        m->n_layers);
    if (m->output != m->n_tensors - 1 || m->n_layers == 0)
        return tsr_fail(TSR_ERR_FORMAT, "the model output must be the last layer's tensor");
    TSR_TRY(check_dims("input", m->in_rank, m->in_dims, nn_numel(in)));
    TSR_TRY(check_dims("output", m->out_rank, m->out_dims, nn_numel(m->shapes[m->output])));
    if (!isfinite(m->in_scale) || !isfinite(m->in_mean) || !(m->in_std > 0) ||
        !isfinite(m->in_std) || m->in_scale == 0)
        return tsr_fail(TSR_ERR_FORMAT,
                        "input preprocessing (scale %g, mean %g, std %g) is invalid", m->in_scale,
                        m->in_mean, m->in_std);
    if (memchr(m->source, 0, sizeof m->source) == NULL ||
        memchr(m->notes, 0, sizeof m->notes) == NULL)
        return tsr_fail(TSR_ERR_FORMAT, "model: unterminated text");
    return TSR_OK;
}

tsr_status nn_model_clone(const tsr_nn_model *m, tsr_nn_model **out) {
    *out = NULL;
    tsr_nn_model *c;
    nn_shape in = m->shapes[0];
    TSR_TRY(nn_model_create(&c, in.c, in.h, in.w));
    for (int i = 0; i < m->n_layers; i++) {
        tsr_status st = nn_model_add(c, &m->layers[i], m->shapes[m->layers[i].out], NULL);
        if (st != TSR_OK) {
            tsr_nn_model_free(c);
            return st;
        }
    }
    c->output = m->output;
    c->in_scale = m->in_scale;
    c->in_mean = m->in_mean;
    c->in_std = m->in_std;
    c->classes = m->classes;
    c->out_kind = m->out_kind;
    c->in_rank = m->in_rank;
    c->out_rank = m->out_rank;
    memcpy(c->in_dims, m->in_dims, sizeof c->in_dims);
    memcpy(c->out_dims, m->out_dims, sizeof c->out_dims);
    memcpy(c->source_hash, m->source_hash, sizeof c->source_hash);
    memcpy(c->source, m->source, sizeof c->source);
    memcpy(c->notes, m->notes, sizeof c->notes);
    c->simplified = m->simplified;
    /* the graph only serves format 6: a clone that fails leaves the copy without one (its plan
     * is written in format 5) */
    if (m->graph && tsr_graph_clone(m->graph, &c->graph) != TSR_OK) {
        tsr_clear_error();
        c->graph = NULL;
    }
    *out = c;
    return TSR_OK;
}

static int same_doubles(const double *a, const double *b, int64_t n) {
    return n <= 0 || (a && b && memcmp(a, b, (size_t)n * sizeof *a) == 0);
}

int nn_model_same(const tsr_nn_model *a, const tsr_nn_model *b) {
    if (a->n_layers != b->n_layers || a->n_tensors != b->n_tensors || a->output != b->output ||
        a->classes != b->classes || a->in_rank != b->in_rank || a->out_rank != b->out_rank ||
        memcmp(a->in_dims, b->in_dims, sizeof a->in_dims) != 0 ||
        memcmp(a->out_dims, b->out_dims, sizeof a->out_dims) != 0 ||
        memcmp(a->shapes, b->shapes, (size_t)a->n_tensors * sizeof *a->shapes) != 0)
        return 0;
    for (int i = 0; i < a->n_layers; i++) {
        const nn_layer *x = &a->layers[i], *y = &b->layers[i];
        if (x->kind != y->kind || strcmp(x->name, y->name) != 0 ||
            strcmp(x->origin, y->origin) != 0 || x->in[0] != y->in[0] || x->in[1] != y->in[1] ||
            x->out != y->out || x->kh != y->kh || x->kw != y->kw || x->sh != y->sh ||
            x->sw != y->sw || x->ph != y->ph || x->pw != y->pw || x->count_pad != y->count_pad ||
            x->degree != y->degree || x->nc != y->nc || x->lossy != y->lossy ||
            memcmp(&x->bound, &y->bound, sizeof x->bound) != 0 || x->w_len != y->w_len ||
            x->b_len != y->b_len || !same_doubles(x->w, y->w, x->w_len) ||
            !same_doubles(x->b, y->b, x->b_len))
            return 0;
    }
    return 1;
}

int nn_producer(const tsr_nn_model *m, int t) {
    for (int i = 0; i < m->n_layers; i++)
        if (m->layers[i].out == t) return i;
    return -1;
}

int nn_consumers(const tsr_nn_model *m, int t) {
    int n = m->output == t;
    for (int i = 0; i < m->n_layers; i++)
        for (int k = 0; k < 2; k++) n += m->layers[i].in[k] == t;
    return n;
}

void nn_model_rename_input(tsr_nn_model *m, int from, int to) {
    for (int i = 0; i < m->n_layers; i++)
        for (int k = 0; k < 2; k++)
            if (m->layers[i].in[k] == from) m->layers[i].in[k] = to;
    if (m->output == from) m->output = to;
}

void nn_model_remove_layer(tsr_nn_model *m, int i) {
    TSR_ASSERT(i >= 0 && i < m->n_layers);
    int t = m->layers[i].out;
    TSR_ASSERT(nn_consumers(m, t) == 0);
    layer_free(&m->layers[i]);
    memmove(&m->layers[i], &m->layers[i + 1], (size_t)(m->n_layers - i - 1) * sizeof *m->layers);
    m->n_layers--;
    memmove(&m->shapes[t], &m->shapes[t + 1], (size_t)(m->n_tensors - t - 1) * sizeof *m->shapes);
    m->n_tensors--;
    for (int j = 0; j < m->n_layers; j++) {
        nn_layer *L = &m->layers[j];
        for (int k = 0; k < 2; k++)
            if (L->in[k] > t) L->in[k]--;
        if (L->out > t) L->out--;
    }
    if (m->output > t) m->output--;
}

/* ---- tsr_nn_model public accessors ----------------------------------------- */

int64_t tsr_nn_model_input_size(const tsr_nn_model *m) {
    return nn_numel(m->shapes[0]);
}

int64_t tsr_nn_model_output_size(const tsr_nn_model *m) {
    return nn_numel(m->shapes[m->output]);
}

void tsr_nn_model_input_shape(const tsr_nn_model *m, int *c, int *h, int *w) {
    *c = m->shapes[0].c;
    *h = m->shapes[0].h;
    *w = m->shapes[0].w;
}

int tsr_nn_model_input_dims(const tsr_nn_model *m, int64_t *dims) {
    if (m->in_rank > 0) {
        memcpy(dims, m->in_dims, (size_t)m->in_rank * sizeof *dims);
        return m->in_rank;
    }
    dims[0] = m->shapes[0].c;
    dims[1] = m->shapes[0].h;
    dims[2] = m->shapes[0].w;
    return 3;
}

int tsr_nn_model_output_dims(const tsr_nn_model *m, int64_t *dims) {
    if (m->out_rank > 0) {
        memcpy(dims, m->out_dims, (size_t)m->out_rank * sizeof *dims);
        return m->out_rank;
    }
    dims[0] = tsr_nn_model_output_size(m);
    return 1;
}

int tsr_nn_model_is_classifier(const tsr_nn_model *m) {
    int64_t od[NN_MAX_RANK], id[NN_MAX_RANK];
    if (m->out_kind != NN_OUTPUT_GUESS) return m->out_kind == NN_OUTPUT_CLASSES;
    int orank = tsr_nn_model_output_dims(m, od), irank = tsr_nn_model_input_dims(m, id);
    if (orank != 1 || od[0] < 2) return 0;
    int64_t in_numel = 1;
    for (int i = 0; i < irank; i++) in_numel *= id[i];
    return in_numel != od[0]; /* as many values as the input (any shape): a reconstruction */
}

void tsr_nn_model_preprocessing(const tsr_nn_model *m, double *scale, double *mean, double *std) {
    *scale = m->in_scale;
    *mean = m->in_mean;
    *std = m->in_std;
}

void tsr_nn_model_print(const tsr_nn_model *m, FILE *fp) {
    int64_t id[NN_MAX_RANK];
    int ir = tsr_nn_model_input_dims(m, id);
    fprintf(fp, "input (N");
    for (int i = 0; i < ir; i++) fprintf(fp, ", %lld", (long long)id[i]);
    fprintf(fp, ")%s%s\n", m->source[0] ? " from " : "", m->source);
    for (int i = 0; i < m->n_layers; i++) {
        const nn_layer *L = &m->layers[i];
        nn_shape o = m->shapes[L->out];
        char geo[96] = "";
        if (L->kind == NN_CONV || L->kind == NN_AVGPOOL)
            snprintf(geo, sizeof geo, " %dx%d/%d pad %d", L->kh, L->kw, L->sh, L->ph);
        else if (L->kind == NN_POLY)
            snprintf(geo, sizeof geo, " degree %d x%d%s", L->degree, L->nc,
                     L->lossy ? " (lossy approximation)" : "");
        fprintf(fp, "  %-8s %-24s -> (%d, %d, %d)%s", nn_kind_name(L->kind), L->name, o.c, o.h, o.w,
                geo);
        if (L->bound > 0) fprintf(fp, "  inputs in +-%.3g", L->bound);
        if (L->origin[0]) fprintf(fp, "  [%s]", L->origin);
        fputc('\n', fp);
    }
    int64_t d[NN_MAX_RANK];
    int r = tsr_nn_model_output_dims(m, d);
    fprintf(fp, "output (N");
    for (int i = 0; i < r; i++) fprintf(fp, ", %lld", (long long)d[i]);
    fprintf(fp, ")%s\n", tsr_nn_model_is_classifier(m) ? ": class scores" : "");
    if (m->notes[0]) fprintf(fp, "notes: %s\n", m->notes);
}

/* ---- reference executor ----------------------------------------------------- */

static void conv_ref(double *y, const double *x, const nn_layer *L, nn_shape is, nn_shape os) {
    int C = is.c, H = is.h, W = is.w, F = os.c, OH = os.h, OW = os.w;
    for (int f = 0; f < F; f++)
        for (int oy = 0; oy < OH; oy++)
            for (int ox = 0; ox < OW; ox++) {
                double acc = 0;
                if (L->b_len == F)
                    acc = L->b[f];
                else if (L->b_len > 0)
                    acc = L->b[((int64_t)f * OH + oy) * OW + ox];
                for (int c = 0; c < C; c++)
                    for (int ky = 0; ky < L->kh; ky++) {
                        int iy = oy * L->sh + ky - L->ph;
                        if (iy < 0 || iy >= H) continue;
                        for (int kx = 0; kx < L->kw; kx++) {
                            int ix = ox * L->sw + kx - L->pw;
                            if (ix < 0 || ix >= W) continue;
                            acc += L->w[(((int64_t)f * C + c) * L->kh + ky) * L->kw + kx] *
                                   x[((int64_t)c * H + iy) * W + ix];
                        }
                    }
                y[((int64_t)f * OH + oy) * OW + ox] = acc;
            }
}

int nn_pool_taps(const nn_layer *L, nn_shape is, int oy, int ox) {
    if (L->count_pad) return L->kh * L->kw;
    int n = 0;
    for (int ky = 0; ky < L->kh; ky++) {
        int iy = oy * L->sh + ky - L->ph;
        for (int kx = 0; kx < L->kw; kx++) {
            int ix = ox * L->sw + kx - L->pw;
            n += iy >= 0 && iy < is.h && ix >= 0 && ix < is.w;
        }
    }
    return n > 0 ? n : 1;
}

static void pool_ref(double *y, const double *x, const nn_layer *L, nn_shape is, nn_shape os) {
    for (int c = 0; c < os.c; c++)
        for (int oy = 0; oy < os.h; oy++)
            for (int ox = 0; ox < os.w; ox++) {
                double acc = 0;
                for (int ky = 0; ky < L->kh; ky++) {
                    int iy = oy * L->sh + ky - L->ph;
                    if (iy < 0 || iy >= is.h) continue;
                    for (int kx = 0; kx < L->kw; kx++) {
                        int ix = ox * L->sw + kx - L->pw;
                        if (ix >= 0 && ix < is.w) acc += x[((int64_t)c * is.h + iy) * is.w + ix];
                    }
                }
                y[((int64_t)c * os.h + oy) * os.w + ox] = acc / nn_pool_taps(L, is, oy, ox);
            }
}

static void layer_ref(const tsr_nn_model *m, const nn_layer *L, double *const *t) {
    nn_shape is = m->shapes[L->in[0]], os = m->shapes[L->out];
    const double *x = t[L->in[0]];
    double *y = t[L->out];
    int64_t n = nn_numel(os), ni = nn_numel(is);
    switch (L->kind) {
    case NN_CONV:
        conv_ref(y, x, L, is, os);
        break;
    case NN_DENSE:
        for (int64_t o = 0; o < n; o++) {
            double acc = L->b_len ? L->b[o] : 0;
            const double *w = L->w + o * ni;
            for (int64_t i = 0; i < ni; i++) acc += w[i] * x[i];
            y[o] = acc;
        }
        break;
    case NN_AVGPOOL:
        pool_ref(y, x, L, is, os);
        break;
    case NN_POLY: {
        int64_t hw = (int64_t)is.h * is.w;
        for (int64_t i = 0; i < n; i++) {
            const double *c = L->w + (L->nc == 1 ? 0 : (i / hw) * (L->degree + 1));
            double r = 0;
            for (int k = L->degree; k >= 0; k--) r = r * x[i] + c[k];
            y[i] = r;
        }
        break;
    }
    case NN_SQUARE:
        for (int64_t i = 0; i < n; i++) y[i] = x[i] * x[i];
        break;
    case NN_SQMUL: {
        int64_t hw = (int64_t)is.h * is.w;
        for (int64_t i = 0; i < n; i++) y[i] = x[i] * (x[i] + L->w[L->nc == 1 ? 0 : i / hw]);
        break;
    }
    case NN_ADD: {
        const double *x2 = t[L->in[1]];
        for (int64_t i = 0; i < n; i++) y[i] = x[i] + x2[i];
        break;
    }
    case NN_MUL: {
        const double *x2 = t[L->in[1]];
        for (int64_t i = 0; i < n; i++) y[i] = x[i] * x2[i];
        break;
    }
    default:
        TSR_ASSERT(0);
    }
}

tsr_status nn_model_forward_stats(const tsr_nn_model *m, const double *x, int B, double *out,
                                  double *absmax) {
    if (B < 1) return tsr_fail(TSR_ERR_INVALID_ARG, "forward: batch %d < 1", B);
    int64_t total = 0;
    for (int t = 0; t < m->n_tensors; t++) total += nn_numel(m->shapes[t]);
    int64_t nin = nn_numel(m->shapes[0]), nout = nn_numel(m->shapes[m->output]);
    tsr_status st = TSR_OK;
#ifdef _OPENMP
#pragma omp parallel
#endif
    {
        double *buf = tsr_alloc((size_t)total * sizeof *buf);
        double **t = tsr_calloc_array((size_t)m->n_tensors, sizeof *t);
        double *amax = absmax ? tsr_calloc_array((size_t)m->n_tensors, sizeof *amax) : NULL;
        int ok = buf && t && (!absmax || amax);
        if (ok) {
            int64_t off = 0;
            for (int k = 0; k < m->n_tensors; k++) {
                t[k] = buf + off;
                off += nn_numel(m->shapes[k]);
            }
        }
#ifdef _OPENMP
#pragma omp for schedule(dynamic)
#endif
        for (int b = 0; b < B; b++) {
            if (!ok) continue;
            memcpy(t[0], x + (int64_t)b * nin, (size_t)nin * sizeof(double));
            for (int i = 0; i < m->n_layers; i++) layer_ref(m, &m->layers[i], t);
            memcpy(out + (int64_t)b * nout, t[m->output], (size_t)nout * sizeof(double));
            if (amax)
                for (int k = 0; k < m->n_tensors; k++)
                    for (int64_t j = 0; j < nn_numel(m->shapes[k]); j++)
                        if (fabs(t[k][j]) > amax[k]) amax[k] = fabs(t[k][j]);
        }
#ifdef _OPENMP
#pragma omp critical(nn_forward)
#endif
        {
            if (!ok) st = TSR_ERR_NOMEM;
            if (ok && absmax)
                for (int k = 0; k < m->n_tensors; k++)
                    if (amax[k] > absmax[k]) absmax[k] = amax[k];
        }
        tsr_free(buf);
        tsr_free(t);
        tsr_free(amax);
    }
    if (st != TSR_OK) return tsr_fail(st, "out of memory in the reference forward");
    return TSR_OK;
}

tsr_status nn_model_forward(const tsr_nn_model *m, const double *x, int B, double *out) {
    return nn_model_forward_stats(m, x, B, out, NULL);
}

tsr_status tsr_nn_model_forward(const tsr_nn_model *m, const double *x, int batch, double *out) {
    return nn_model_forward(m, x, batch, out);
}
