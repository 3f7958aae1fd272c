/*
 * cli/train_cli.c - see train_cli.h.
 */
#include "train_cli.h"

#include "cli.h"
#include "core/alloc.h"
#include "onnx/onnx_graph.h"
#include "train/data.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int tcli_load_graph_om(const char *verb, const char *path, int keep_non_polynomial, tsr_graph **g,
                       tsr_onnx_model **om) {
    *g = NULL;
    *om = NULL;
    tsr_onnx_model *m = NULL;
    tsr_status st = tsr_onnx_load(&m, path);
    if (st != TSR_OK) return cli_fail(verb, st, "loading the model");
    tsr_onnx_import_opts io;
    tsr_onnx_import_opts_default(&io);
    io.keep_non_polynomial = keep_non_polynomial;
    st = tsr_onnx_to_graph(m, &io, g, NULL);
    if (st != TSR_OK) {
        tsr_onnx_free(m);
        return cli_fail(verb, st, "importing the model");
    }
    *om = m;
    return 0;
}

int tcli_meta_bounds(const char *verb, const tsr_onnx_model *om, const tsr_graph *g,
                     tsr_trainer *t) {
    for (int i = 0; i < tsr_graph_num_nodes(g); i++) {
        double b;
        tsr_status st;
        if (tsr_graph_node_kind(g, i) == TSR_NODE_POLY &&
            tcli_meta_bound(om, g, i, &b) != TCLI_BOUND_NONE &&
            (st = tsr_trainer_set_node_bound(t, i, b)) != TSR_OK)
            return cli_fail(verb, st, "setting the model's polynomial bounds");
    }
    return 0;
}

int tcli_load_graph(const char *verb, const char *path, int keep_non_polynomial, tsr_graph **g) {
    tsr_onnx_model *m = NULL;
    int rc = tcli_load_graph_om(verb, path, keep_non_polynomial, g, &m);
    tsr_onnx_free(m);
    return rc;
}

/* The metadata value prefix + name as numbers (up to 2); how many parsed. */
static int meta_numbers(const tsr_onnx_model *om, const char *prefix, const char *name,
                        double v[2]) {
    char key[512];
    if ((size_t)snprintf(key, sizeof key, "%s%s", prefix, name) >= sizeof key) return 0;
    const char *s = tsr_onnx_meta(om, key);
    int n = 0;
    while (s && n < 2) {
        char *end;
        double d = strtod(s, &end);
        if (end == s || !isfinite(d)) break;
        v[n++] = d;
        s = end;
    }
    return n;
}

int tcli_meta_bound(const tsr_onnx_model *om, const tsr_graph *g, int i, double *bound) {
    *bound = 0;
    if (tsr_graph_node_num_inputs(g, i) < 1) return TCLI_BOUND_NONE;
    const char *x = tsr_graph_node_input(g, i, 0);
    double v[2];
    if (meta_numbers(om, "tessera.bound.", x, v) >= 1 && v[0] > 0) {
        *bound = v[0];
        return TCLI_BOUND_DECLARED;
    }
    if (meta_numbers(om, "tessera.range.", x, v) == 2 && fmax(fabs(v[0]), fabs(v[1])) > 0) {
        *bound = fmax(fabs(v[0]), fabs(v[1]));
        return TCLI_BOUND_CALIBRATED;
    }
    return TCLI_BOUND_NONE;
}

int tcli_parse_loss(const char *verb, const char *s, tsr_train_loss *loss) {
    *loss = TSR_TRAIN_LOSS_AUTO;
    if (!s || strcmp(s, "auto") == 0) return 0;
    if (strcmp(s, "ce") == 0)
        *loss = TSR_TRAIN_LOSS_CE;
    else if (strcmp(s, "mse") == 0)
        *loss = TSR_TRAIN_LOSS_MSE;
    else
        return cli_usage_error(verb, "--loss is auto, ce or mse (got '%s')", s);
    return 0;
}

int tcli_parse_norm(const char *verb, const char *s, double *mean, double *std) {
    char *end;
    *mean = strtod(s, &end);
    if (end == s || *end != ',' || !isfinite(*mean) || cli_parse_double(end + 1, std) != 0 ||
        !(*std > 0) || !isfinite(*std))
        return cli_usage_error(verb, "--pixel-norm needs MEAN,STD with STD > 0, e.g. 0.286,0.353");
    return 0;
}

/* Reshape x (N, ...) to the graph input's per-sample shape when the sizes agree. */
static int fit_input(const char *verb, const tsr_graph *g, tsr_array *x) {
    int rank;
    int64_t dims[TSR_ARRAY_MAX_RANK];
    if (tsr_graph_value_shape(g, tsr_graph_input_name(g, 0), &rank, dims) != TSR_OK) return 1;
    int64_t per = 1;
    for (int k = 1; k < rank; k++) per = dims[k] < 0 ? -1 : per * dims[k];
    if (x->rank < 1 || x->dims[0] < 1) {
        fprintf(stderr, "tessera %s: the input data holds no samples\n", verb);
        return 1;
    }
    int64_t have = (int64_t)(x->numel / (size_t)x->dims[0]);
    if (x->rank == rank) return 0;
    if (per != have) {
        char a[160], b[160];
        fprintf(stderr, "tessera %s: input data of shape %s does not fit the model input %s\n",
                verb, tsr_dims_str(x->rank, x->dims, a, sizeof a),
                tsr_dims_str(rank, dims, b, sizeof b));
        return 1;
    }
    x->rank = rank;
    for (int k = 1; k < rank; k++) x->dims[k] = dims[k];
    return 0;
}

static void keep_first(tsr_array *a, long limit) {
    if (limit <= 0 || a->rank < 1 || a->dims[0] <= limit) return;
    a->numel = a->numel / (size_t)a->dims[0] * (size_t)limit;
    a->dims[0] = limit;
}

int tcli_load_pair(const char *verb, const char *spec, const tsr_graph *g, double mean, double std,
                   long limit, int int_pixels, tsr_array **x, tsr_array **y, int *pixels) {
    *x = *y = NULL;
    if (pixels) *pixels = 0;
    const char *comma = strchr(spec, ',');
    if (!comma || comma == spec || !comma[1] || strchr(comma + 1, ','))
        return cli_usage_error(verb, "data is given as X,Y (two .npy or IDX files), got '%s'",
                               spec);
    char xp[4096];
    if ((size_t)(comma - spec) >= sizeof xp) return cli_usage_error(verb, "path too long");
    memcpy(xp, spec, (size_t)(comma - spec));
    xp[comma - spec] = 0;
    int xi = 0, yi = 0;
    tsr_status st = tsr_array_load(xp, x, &xi);
    if (st == TSR_OK) st = tsr_array_load(comma + 1, y, &yi);
    if (st != TSR_OK) {
        tsr_array_free(*x);
        *x = NULL;
        return cli_fail(verb, st, "loading the data");
    }
    if ((*x)->rank < 1 || (*y)->rank < 1 || (*x)->dims[0] != (*y)->dims[0]) {
        fprintf(stderr, "tessera %s: '%s' and '%s' hold different numbers of samples\n", verb, xp,
                comma + 1);
        goto bad;
    }
    keep_first(*x, limit);
    keep_first(*y, limit);
    int pix = (xi == 2 || (xi && int_pixels)) && (*x)->rank >= 2;
    if (pix && pixels) *pixels = 1;
    if (pix)
        for (size_t i = 0; i < (*x)->numel; i++) (*x)->data[i] = ((*x)->data[i] / 255 - mean) / std;
    if (fit_input(verb, g, *x)) goto bad;
    return 0;
bad: /* data that do not fit the model: bad input, as cli_fail's TSR_ERR_SHAPE */
    tsr_array_free(*x);
    tsr_array_free(*y);
    *x = *y = NULL;
    return 2;
}

int tcli_save_graph(const char *verb, const tsr_graph *g, const tsr_trainer *t, const char *path,
                    int force, int pixels, double mean, double std) {
    tsr_onnx_model *m = NULL;
    tsr_status st = tsr_onnx_from_graph(g, &m);
    if (st == TSR_OK && pixels) {
        char v[3][40];
        snprintf(v[0], sizeof v[0], "%.17g", 1.0 / 255.0);
        snprintf(v[1], sizeof v[1], "%.17g", mean);
        snprintf(v[2], sizeof v[2], "%.17g", std);
        st = tsr_onnx_set_meta(m, "tessera.input.scale", v[0]);
        if (st == TSR_OK) st = tsr_onnx_set_meta(m, "tessera.input.mean", v[1]);
        if (st == TSR_OK) st = tsr_onnx_set_meta(m, "tessera.input.std", v[2]);
    }
    /* each polynomial's symmetric bound as the declared bound of its input (eval reads it) */
    for (int i = 0; st == TSR_OK && i < tsr_graph_num_nodes(g); i++) {
        tsr_graph_kind k = tsr_graph_node_kind(g, i);
        if (k != TSR_NODE_POLY && k != TSR_NODE_CHEBYSHEV) continue;
        const tsr_graph_attrs *a = tsr_graph_node_attrs(g, i);
        double lo = k == TSR_NODE_CHEBYSHEV ? a->lo : 0, hi = k == TSR_NODE_CHEBYSHEV ? a->hi : 0;
        if (t && tsr_trainer_node_bound(t, i, &lo, &hi) != TSR_OK) tsr_clear_error();
        if (!(hi > 0) || lo != -hi) continue;
        char key[512], val[40];
        if ((size_t)snprintf(key, sizeof key, "tessera.bound.%s", tsr_graph_node_input(g, i, 0)) >=
            sizeof key)
            continue;
        snprintf(val, sizeof val, "%.17g", hi);
        st = tsr_onnx_set_meta(m, key, val);
    }
    if (st != TSR_OK) {
        tsr_onnx_free(m);
        return cli_fail(verb, st, "exporting the model");
    }
    uint8_t *buf = NULL;
    size_t len = 0;
    st = tsr_onnx_serialize(m, &buf, &len);
    tsr_onnx_free(m);
    if (st != TSR_OK) return cli_fail(verb, st, "serialising the model");
    cli_output outs[] = { { path, 0, NULL } };
    tsr_outset set;
    int rc = cli_outputs_open(verb, &set, outs, 1, force);
    if (rc == 0) {
        st = fwrite(buf, 1, len, outs[0].fp) == len ? TSR_OK : TSR_ERR_IO;
        rc = cli_outputs_commit(verb, &set, st, "writing the model");
    }
    tsr_free(buf);
    return rc;
}

double tcli_accuracy(const char *verb, const tsr_graph *g, const tsr_array *x, const tsr_array *y) {
    int64_t N = x->dims[0], right = 0;
    size_t row = x->numel / (size_t)N;
    for (int64_t at = 0; at < N; at += 500) {
        int64_t n = N - at < 500 ? N - at : 500;
        tsr_array view = *x;
        view.dims[0] = n;
        view.numel = row * (size_t)n;
        view.data = x->data + (size_t)at * row;
        const tsr_array *in[1] = { &view };
        tsr_array *out[1] = { NULL };
        tsr_status st = tsr_graph_run(g, in, out);
        if (st != TSR_OK) {
            cli_fail(verb, st, "evaluating");
            return -1;
        }
        size_t K = out[0]->numel / (size_t)n;
        for (int64_t i = 0; i < n; i++) {
            size_t best = 0;
            for (size_t k = 1; k < K; k++)
                if (out[0]->data[i * K + k] > out[0]->data[i * K + best]) best = k;
            right += (double)best == y->data[at + i];
        }
        tsr_array_free(out[0]);
    }
    return (double)right / (double)N;
}
