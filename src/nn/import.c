/*
 * nn/import.c - ONNX models in: the supported-operator check with its
 * report, then the training engine's importer (src/train/onnx_import.c,
 * which recognises polynomial activations symbolically), then conversion of
 * its layers into the inference graph in double precision, then the CKKS
 * simplifications (nn/simplify.c).
 *
 * The report lists every node that cannot run under CKKS, by name and
 * operator, with a hint, instead of failing on the first one.
 */
#include "nn/model.h"

#include "core/alloc.h"
#include "core/error.h"
#include "core/io.h"
#include "onnx/onnx.h"
#include "train/model_onnx.h"

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

/* ---- the operator check -------------------------------------------------------- */

static const char *const nn_ops[] = {
    "Conv",
    "Gemm",
    "MatMul",
    "AveragePool",
    "GlobalAveragePool",
    "BatchNormalization",
    "Add",
    "Sub",
    "Mul",
    "Div",
    "Neg",
    "Pow",
    "Flatten",
    "Reshape",
    "Identity",
    "Dropout",
    "Pad",
    NULL,
};

static int in_list(const char *op, const char *const *list) {
    for (int i = 0; list[i]; i++)
        if (strcmp(op, list[i]) == 0) return 1;
    return 0;
}

static const char *hint_for(const char *op) {
    if (strcmp(op, "Relu") == 0)
        return "ReLU is not a polynomial: train a polynomial student (tessera train --act poly2, "
               "distilled from this model), or pass --approx-relu DEG --range B to replace it by a "
               "fitted polynomial on [-B, B] (lossy: accuracy drops where inputs leave the range)";
    if (strcmp(op, "MaxPool") == 0) return "max is not a polynomial: retrain with AveragePool";
    if (strcmp(op, "Softmax") == 0 || strcmp(op, "LogSoftmax") == 0)
        return "export the model without its final softmax: the predicted class is the argmax of "
               "the logits, which the client computes after decryption";
    if (strcmp(op, "Sigmoid") == 0 || strcmp(op, "Tanh") == 0 || strcmp(op, "Erf") == 0 ||
        strcmp(op, "Gelu") == 0 || strcmp(op, "Elu") == 0 || strcmp(op, "LeakyRelu") == 0 ||
        strcmp(op, "Selu") == 0 || strcmp(op, "Softplus") == 0 || strcmp(op, "HardSigmoid") == 0)
        return "not a polynomial: train a polynomial student with polynomial activations "
               "(tessera train --act poly2)";
    if (strcmp(op, "Concat") == 0 || strcmp(op, "Transpose") == 0 || strcmp(op, "Slice") == 0 ||
        strcmp(op, "ReduceSum") == 0 || strcmp(op, "ReduceMean") == 0)
        return "not supported by the encrypted-inference compiler yet";
    return "not an operator encrypted inference can run";
}

/*
 * List every node encrypted inference cannot run (operator or attributes).
 * Returns the number found; the text goes to t.
 */
static int check_nodes(const tsr_onnx_model *om, const tsr_nn_import_opts *o, text *t) {
    int bad = 0;
    for (int i = 0; i < om->n_nodes; i++) {
        const tsr_onnx_node *nd = &om->nodes[i];
        char lab[200];
        tsr_onnx_node_label(om, i, lab, sizeof lab);
        const char *op = nd->op_type;
        if (strcmp(op, "Relu") == 0 && o->approx_relu_degree > 0) continue;
        if (!in_list(op, nn_ops)) {
            tprintf(t, "  %s: %s\n", lab, hint_for(op));
            bad++;
            continue;
        }
        int64_t v = 0;
        const int64_t *ints;
        size_t n;
        if (strcmp(op, "Conv") == 0) {
            if (tsr_onnx_attr_int(nd, "group", 1, &v) == TSR_OK && v != 1) {
                tprintf(t, "  %s: grouped convolution (group=%lld) is not supported\n", lab,
                        (long long)v);
                bad++;
            }
            if (tsr_onnx_attr_ints(nd, "dilations", &ints, &n) == TSR_OK)
                for (size_t k = 0; k < n; k++)
                    if (ints[k] != 1) {
                        tprintf(t, "  %s: dilated convolution is not supported\n", lab);
                        bad++;
                        break;
                    }
        } else if (strcmp(op, "AveragePool") == 0) {
            if (tsr_onnx_attr_int(nd, "ceil_mode", 0, &v) == TSR_OK && v) {
                tprintf(t, "  %s: ceil_mode=1 is not supported\n", lab);
                bad++;
            }
        }
        tsr_clear_error();
    }
    return bad;
}

/* ---- conversion from the training engine's model ------------------------------- */

/* Layer names are for display (plan, tables, reports): control codes from the file escaped. */
static void set_name(nn_layer *L, const char *name) {
    tsr_escape_controls(L->name, sizeof L->name, name, 0);
    tsr_escape_controls(L->origin, sizeof L->origin, name, 0);
}

static tsr_status to_doubles(const float *src, size_t n, double **out) {
    *out = NULL;
    if (n == 0) return TSR_OK;
    double *d = tsr_alloc(n * sizeof *d);
    if (!d) return tsr_fail(TSR_ERR_NOMEM, "out of memory");
    for (size_t i = 0; i < n; i++) d[i] = src[i];
    *out = d;
    return TSR_OK;
}

static tsr_status add_layer(tsr_nn_model *nm, nn_layer *L, int *map, int out_t) {
    nn_shape os;
    /* compute the output shape by asking the validator through nn_model_add */
    nn_shape is = nm->shapes[L->in[0]];
    switch (L->kind) {
    case NN_CONV:
        os = (nn_shape){ (int)(L->w_len / ((int64_t)is.c * L->kh * L->kw)),
                         nn_out_size(is.h, L->kh, L->sh, L->ph),
                         nn_out_size(is.w, L->kw, L->sw, L->pw) };
        break;
    case NN_DENSE:
        os = (nn_shape){ (int)(L->w_len / nn_numel(is)), 1, 1 };
        break;
    case NN_AVGPOOL:
        os = (nn_shape){ is.c, nn_out_size(is.h, L->kh, L->sh, L->ph),
                         nn_out_size(is.w, L->kw, L->sw, L->pw) };
        break;
    default:
        os = is;
    }
    int t;
    tsr_status st = nn_model_add(nm, L, os, &t);
    tsr_free(L->w);
    tsr_free(L->b);
    L->w = L->b = NULL;
    TSR_TRY(st);
    map[out_t] = t;
    return TSR_OK;
}

static tsr_status convert(const tsr_model *tm, const tsr_nn_import_opts *o, tsr_nn_model **out,
                          text *notes) {
    *out = NULL;
    tsr_shape in = tm->tensors[0].shape;
    tsr_nn_model *nm;
    TSR_TRY(nn_model_create(&nm, in.c, in.h, in.w));
    int *map = tsr_alloc((size_t)tm->n_tensors * sizeof *map);
    if (!map) {
        tsr_nn_model_free(nm);
        return tsr_fail(TSR_ERR_NOMEM, "out of memory");
    }
    for (int i = 0; i < tm->n_tensors; i++) map[i] = -1;
    map[0] = 0;
    tsr_status st = TSR_OK;
    for (int i = 0; i < tm->n_layers && st == TSR_OK; i++) {
        const tsr_layer *T = &tm->layers[i];
        nn_layer L;
        memset(&L, 0, sizeof L);
        set_name(&L, T->name);
        L.in[0] = map[T->in[0]];
        L.in[1] = T->in[1] >= 0 ? map[T->in[1]] : -1;
        if (L.in[0] < 0 || (T->in[1] >= 0 && L.in[1] < 0)) {
            st = tsr_fail(TSR_ERR_INTERNAL, "layer '%s' reads an unmapped tensor", T->name);
            break;
        }
        const float *w = tm->params + T->p_off[0];
        const float *b = T->p_len[1] ? tm->params + T->p_off[1] : NULL;
        switch (T->kind) {
        case TSR_LAYER_DENSE:
        case TSR_LAYER_CONV:
            L.kind = T->kind == TSR_LAYER_CONV ? NN_CONV : NN_DENSE;
            if (L.kind == NN_CONV) {
                L.kh = T->g.KH;
                L.kw = T->g.KW;
                L.sh = T->g.SH;
                L.sw = T->g.SW;
                L.ph = T->g.PH;
                L.pw = T->g.PW;
            }
            L.w_len = (int64_t)T->p_len[0];
            L.b_len = (int64_t)T->p_len[1];
            st = to_doubles(w, T->p_len[0], &L.w);
            if (st == TSR_OK) st = to_doubles(b, T->p_len[1], &L.b);
            if (st == TSR_OK) st = add_layer(nm, &L, map, T->out);
            break;
        case TSR_LAYER_AVGPOOL:
        case TSR_LAYER_GAP:
            L.kind = NN_AVGPOOL;
            if (T->kind == TSR_LAYER_GAP) {
                tsr_shape s = tm->tensors[T->in[0]].shape;
                L.kh = s.h;
                L.kw = s.w;
                L.sh = L.sw = 1;
                L.count_pad = 1;
            } else {
                L.kh = T->g.KH;
                L.kw = T->g.KW;
                L.sh = T->g.SH;
                L.sw = T->g.SW;
                L.ph = T->g.PH;
                L.pw = T->g.PW;
                L.count_pad = L.ph == 0 && L.pw == 0; /* ONNX count_include_pad = 0 */
            }
            st = add_layer(nm, &L, map, T->out);
            break;
        case TSR_LAYER_BATCHNORM: {
            /* y = gamma (x - mean) / sqrt(var + eps) + beta as a per-channel affine map. */
            int C = tm->tensors[T->in[0]].shape.c;
            const float *gamma = w, *beta = b;
            const float *mean = tm->state + T->s_off, *var = tm->state + T->s_off + C;
            L.kind = NN_POLY;
            L.degree = 1;
            L.nc = C;
            L.w_len = 2 * (int64_t)C;
            L.w = tsr_alloc((size_t)L.w_len * sizeof *L.w);
            if (!L.w) {
                st = tsr_fail(TSR_ERR_NOMEM, "out of memory");
                break;
            }
            for (int c = 0; c < C; c++) {
                double k = gamma[c] / sqrt((double)var[c] + T->eps);
                L.w[2 * c + 1] = k;
                L.w[2 * c] = beta[c] - mean[c] * k;
            }
            st = add_layer(nm, &L, map, T->out);
            break;
        }
        case TSR_LAYER_FLATTEN:
        case TSR_LAYER_DROPOUT:
            map[T->out] = L.in[0];
            break;
        case TSR_LAYER_ADD:
            L.kind = NN_ADD;
            st = add_layer(nm, &L, map, T->out);
            break;
        case TSR_LAYER_POLY: {
            L.kind = NN_POLY;
            L.degree = T->degree;
            L.nc = T->nc;
            L.w_len = (int64_t)T->p_len[0];
            double bound = T->bound;
            if (T->seen_max > T->seen_min)
                bound = fmax(bound, fmax(fabs(T->seen_min), fabs(T->seen_max)));
            L.bound = bound > 0 && isfinite(bound) ? bound : 0;
            st = to_doubles(w, T->p_len[0], &L.w);
            if (st == TSR_OK) st = add_layer(nm, &L, map, T->out);
            break;
        }
        case TSR_LAYER_RELU: {
            if (o->approx_relu_degree < 1) {
                st = tsr_fail(TSR_ERR_UNSUPPORTED, "ReLU '%s' needs --approx-relu", T->name);
                break;
            }
            L.kind = NN_POLY;
            L.degree = o->approx_relu_degree;
            L.nc = 1;
            L.lossy = 1;
            L.bound = o->approx_relu_range;
            L.w_len = L.degree + 1;
            L.w = tsr_alloc((size_t)L.w_len * sizeof *L.w);
            if (!L.w) {
                st = tsr_fail(TSR_ERR_NOMEM, "out of memory");
                break;
            }
            st = tsr_poly_fit_fn(L.w, L.degree, o->approx_relu_range, TSR_POLY_FIT_LSQ, NULL);
            if (st == TSR_OK) {
                snprintf(L.origin, sizeof L.origin, "%s: ReLU ~ degree-%d fit on [-%g, %g]",
                         T->name, L.degree, o->approx_relu_range, o->approx_relu_range);
                if (T->seen_max > T->seen_min &&
                    fmax(fabs(T->seen_min), fabs(T->seen_max)) > o->approx_relu_range)
                    tprintf(notes,
                            "warning: inputs of '%s' reached [%g, %g] on the calibration set, "
                            "outside the fit range [-%g, %g]\n",
                            T->name, T->seen_min, T->seen_max, o->approx_relu_range,
                            o->approx_relu_range);
                st = add_layer(nm, &L, map, T->out);
            } else {
                tsr_free(L.w);
            }
            break;
        }
        default:
            st = tsr_fail(TSR_ERR_UNSUPPORTED, "layer '%s' (%s) cannot run under CKKS", T->name,
                          tsr_layer_kind_name(T->kind));
        }
    }
    if (st == TSR_OK) {
        int t = map[tm->output];
        if (t != nm->n_tensors - 1 || t < 1)
            st = tsr_fail(TSR_ERR_UNSUPPORTED,
                          "the model output must be computed by its last layer (got tensor %d)", t);
        nm->output = t;
    }
    tsr_free(map);
    if (st != TSR_OK) {
        tsr_nn_model_free(nm);
        return st;
    }
    *out = nm;
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

    text rep = { 0 };
    int bad = check_nodes(om, opts, &rep);
    if (bad) {
        char first[160] = "";
        const char *nl = rep.s ? strchr(rep.s + 2, '\n') : NULL;
        if (rep.s && nl) snprintf(first, sizeof first, "%.*s", (int)(nl - rep.s - 2), rep.s + 2);
        text full = { 0 };
        tprintf(&full, "%s: %d node%s cannot run under CKKS encryption:\n%s", path, bad,
                bad == 1 ? "" : "s", rep.s ? rep.s : "");
        tsr_free(rep.s);
        tsr_onnx_free(om);
        if (report)
            *report = full.s;
        else
            tsr_free(full.s);
        return tsr_fail(TSR_ERR_UNSUPPORTED, "%s: %d unsupported node%s, first %s%s", path, bad,
                        bad == 1 ? "" : "s", first, bad > 1 ? " (the report lists all)" : "");
    }
    tsr_model *tm = NULL;
    st = tsr_model_from_onnx(&tm, om);
    text notes = { 0 };
    tsr_nn_model *nm = NULL;
    if (st == TSR_OK) st = convert(tm, opts, &nm, &notes);
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
        nm->classes = (int)tsr_nn_model_output_size(nm);
        for (int i = 0; i < nm->n_layers; i++)
            if (nm->layers[i].lossy) {
                tprintf(&notes,
                        "lossy: '%s' replaces ReLU by a degree-%d polynomial fitted on [-%g, %g]; "
                        "predictions may differ from the original model\n",
                        nm->layers[i].name, nm->layers[i].degree, opts->approx_relu_range,
                        opts->approx_relu_range);
            }
        if (!opts->no_simplify) st = nn_model_simplify(nm);
        if (st == TSR_OK) st = nn_model_validate(nm);
    }
    tsr_model_free(tm);
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
