/*
 * graph/graph_io.c - the wire form of a finalized model graph: every value
 * in creation order (graph inputs with their declared shapes, constants with
 * their f64 data, node outputs as the node that makes them: kind, name,
 * input names, attributes), then the outputs. Reading replays the
 * tsr_graph_add_* calls in that order, so the rebuilt graph has the same
 * value and node numbering, and finalize gives it the same execution order.
 *
 * Layout (little-endian; str = u32 length <= 4096, bytes, no NUL):
 *   u32 magic "TGRF", u32 version (TSR_GRAPH_WIRE_VERSION)
 *   u32 values, u32 outputs
 *   per value: u8 kind (0 input, 1 constant, 2 node output), then
 *     input:    str name; u8 rank; i64 dims[rank] (-1 = free)
 *     constant: str name; u8 rank; u64 dims[rank]; f64 data[numel]
 *     node:     u32 kind; str node name; str output name; u32 inputs;
 *               str input[inputs] ("" = omitted); attributes (below)
 *   per output: str name
 * Attributes, every field whatever the kind (fixed size):
 *   i64 axis; u8 n_axes; i64 axes[8], starts[8], ends[8], steps[8];
 *   u8 keepdims, noop_with_empty_axes, reduce_tail; u8 n_perm; i64 perm[8];
 *   u8 n_shape; i64 shape[8]; u8 allowzero; u8 n_kernel; i64 kernel[3],
 *   strides[3], dilations[3], pads[6]; u8 auto_pad; i64 group;
 *   u8 ceil_mode, count_include_pad, trans_a, trans_b;
 *   f64 alpha, beta, epsilon, lo, hi, value, leak; u8 n_pads; i64 pad_list[16]
 */
#include "graph/graph_io.h"
#include "graph/graph_internal.h"

#include "core/alloc.h"
#include "core/error.h"

#include <math.h>
#include <string.h>

/* MAX_NAME, a name's bytes: the ONNX reader's bound (a model file of at most 2^30 bytes, onnx.h
 * TSR_ONNX_MAX_BYTES); the reader checks every length against the bytes left first. */
#define GRAPH_MAGIC 0x46524754u /* "TGRF" */
#define MAX_NAME    ((uint32_t)1 << 30)
/* MAX_GRAPH_ITEMS, values and outputs: building the graph looks every name up linearly
 * (quadratic in the count), so a few MB may not ask for 10^6 values; the fixtures have hundreds. */
#define MAX_GRAPH_ITEMS (1 << 16)

enum { REC_INPUT = 0, REC_CONST = 1, REC_NODE = 2 };

/* ---- writing ------------------------------------------------------------------------ */

static void write_str(tsr_writer *w, const char *s) {
    size_t n = strlen(s);
    if (n > MAX_NAME) {
        if (w->err == TSR_OK)
            w->err =
                tsr_fail(TSR_ERR_INVALID_ARG, "graph name of %zu bytes (at most %u)", n, MAX_NAME);
        return;
    }
    tsr_write_u32(w, (uint32_t)n);
    tsr_write_bytes(w, s, n);
}

static void write_i64s(tsr_writer *w, const int64_t *v, int n) {
    for (int i = 0; i < n; i++) tsr_write_u64(w, (uint64_t)v[i]);
}

/* 0 when the reader would refuse a's counts or values (whatever the node's kind reads: a caller
 * may leave stray values in fields its kind ignores); the flags are written as 0 / 1. */
static int attrs_writable(const tsr_graph_attrs *a) {
    const int counts[6][2] = { { a->n_axes, TSR_ARRAY_MAX_RANK },
                               { a->n_perm, TSR_ARRAY_MAX_RANK },
                               { a->n_shape, TSR_ARRAY_MAX_RANK },
                               { a->n_kernel, TSR_GRAPH_MAX_SPATIAL },
                               { (int)a->auto_pad, TSR_AUTOPAD_SAME_LOWER },
                               { a->n_pads, 2 * TSR_ARRAY_MAX_RANK } };
    for (int i = 0; i < 6; i++)
        if (counts[i][0] < 0 || counts[i][0] > counts[i][1]) return 0;
    const double f[7] = { a->alpha, a->beta, a->epsilon, a->lo, a->hi, a->value, a->leak };
    for (int i = 0; i < 7; i++)
        if (!isfinite(f[i])) return 0;
    return 1;
}

static void write_attrs(tsr_writer *w, const tsr_graph_attrs *a) {
    tsr_write_u64(w, (uint64_t)a->axis);
    tsr_write_u8(w, (uint8_t)a->n_axes);
    write_i64s(w, a->axes, TSR_ARRAY_MAX_RANK);
    write_i64s(w, a->starts, TSR_ARRAY_MAX_RANK);
    write_i64s(w, a->ends, TSR_ARRAY_MAX_RANK);
    write_i64s(w, a->steps, TSR_ARRAY_MAX_RANK);
    tsr_write_u8(w, a->keepdims != 0);
    tsr_write_u8(w, a->noop_with_empty_axes != 0);
    tsr_write_u8(w, a->reduce_tail != 0);
    tsr_write_u8(w, (uint8_t)a->n_perm);
    write_i64s(w, a->perm, TSR_ARRAY_MAX_RANK);
    tsr_write_u8(w, (uint8_t)a->n_shape);
    write_i64s(w, a->shape, TSR_ARRAY_MAX_RANK);
    tsr_write_u8(w, a->allowzero != 0);
    tsr_write_u8(w, (uint8_t)a->n_kernel);
    write_i64s(w, a->kernel, TSR_GRAPH_MAX_SPATIAL);
    write_i64s(w, a->strides, TSR_GRAPH_MAX_SPATIAL);
    write_i64s(w, a->dilations, TSR_GRAPH_MAX_SPATIAL);
    write_i64s(w, a->pads, 2 * TSR_GRAPH_MAX_SPATIAL);
    tsr_write_u8(w, (uint8_t)a->auto_pad);
    tsr_write_u64(w, (uint64_t)a->group);
    tsr_write_u8(w, a->ceil_mode != 0);
    tsr_write_u8(w, a->count_include_pad != 0);
    tsr_write_u8(w, a->trans_a != 0);
    tsr_write_u8(w, a->trans_b != 0);
    const double f[7] = { a->alpha, a->beta, a->epsilon, a->lo, a->hi, a->value, a->leak };
    for (int i = 0; i < 7; i++) tsr_write_f64(w, f[i]);
    tsr_write_u8(w, (uint8_t)a->n_pads);
    write_i64s(w, a->pad_list, 2 * TSR_ARRAY_MAX_RANK);
}

void tsr_graph_write(tsr_writer *w, const tsr_graph *g) {
    if (!g->finalized) {
        if (w->err == TSR_OK)
            w->err = tsr_fail(TSR_ERR_INVALID_ARG, "only a finalized graph can be written");
        return;
    }
    if (g->n_values > MAX_GRAPH_ITEMS || g->n_outputs > MAX_GRAPH_ITEMS) {
        if (w->err == TSR_OK)
            w->err =
                tsr_fail(TSR_ERR_INVALID_ARG, "a graph of %d values and %d outputs (at most %d)",
                         g->n_values, g->n_outputs, MAX_GRAPH_ITEMS);
        return;
    }
    tsr_write_u32(w, GRAPH_MAGIC);
    tsr_write_u32(w, TSR_GRAPH_WIRE_VERSION);
    tsr_write_u32(w, (uint32_t)g->n_values);
    tsr_write_u32(w, (uint32_t)g->n_outputs);
    for (int i = 0; i < g->n_values; i++) {
        const tsr_graph_value *v = &g->values[i];
        if (v->kind == TSR_VALUE_NODE) {
            const tsr_graph_node *n = &g->nodes[v->producer];
            if (!attrs_writable(&n->a)) {
                if (w->err == TSR_OK)
                    w->err = tsr_fail(TSR_ERR_INVALID_ARG,
                                      "graph node '%s' (%s): an attribute count out of range or a "
                                      "non-finite attribute value, even in a field its kind does "
                                      "not read (the graph's reader refuses them)",
                                      n->name, tsr_graph_kind_name(n->kind));
                return;
            }
            tsr_write_u8(w, REC_NODE);
            tsr_write_u32(w, (uint32_t)n->kind);
            write_str(w, n->name);
            write_str(w, v->name);
            tsr_write_u32(w, (uint32_t)n->n_in);
            for (int k = 0; k < n->n_in; k++) write_str(w, n->in_names[k]);
            write_attrs(w, &n->a);
            continue;
        }
        const int is_const = v->kind == TSR_VALUE_CONST;
        tsr_write_u8(w, is_const ? REC_CONST : REC_INPUT);
        write_str(w, v->name);
        const int rank = is_const ? v->data->rank : v->rank;
        const int64_t *dims = is_const ? v->data->dims : v->dims;
        tsr_write_u8(w, (uint8_t)rank);
        write_i64s(w, dims, rank);
        if (is_const)
            for (size_t k = 0; k < v->data->numel; k++) tsr_write_f64(w, v->data->data[k]);
    }
    for (int i = 0; i < g->n_outputs; i++) write_str(w, g->output_names[i]);
}

tsr_status tsr_graph_to_bytes(const tsr_graph *g, uint8_t **buf, size_t *len) {
    TSR_REQUIRE(g != NULL && buf != NULL && len != NULL, "tsr_graph_to_bytes: NULL argument");
    *buf = NULL;
    *len = 0;
    tsr_writer w;
    tsr_writer_init_mem(&w);
    tsr_graph_write(&w, g);
    if (w.err != TSR_OK) {
        tsr_status st = w.err;
        (void)tsr_writer_close(&w);
        return st;
    }
    *buf = tsr_writer_take_buffer(&w, len);
    (void)tsr_writer_close(&w);
    return TSR_OK;
}

void tsr_graph_bytes_free(uint8_t *buf) {
    tsr_free(buf);
}

/* ---- reading ------------------------------------------------------------------------- */

static uint64_t bytes_left(const tsr_reader *r) {
    return r->mem_len - r->mem_pos;
}

#define BAD(...) tsr_reader_fail(r, TSR_ERR_FORMAT, "malformed graph: " __VA_ARGS__)

/* A name into a fresh NUL-terminated buffer (tsr_free), or NULL with r failed. */
static char *read_str(tsr_reader *r) {
    uint32_t n = tsr_read_u32(r);
    if (tsr_reader_status(r) != TSR_OK) return NULL;
    if (n > MAX_NAME || n > bytes_left(r)) {
        BAD("a name of %u bytes", n);
        return NULL;
    }
    char *s = tsr_alloc((size_t)n + 1);
    if (!s) {
        tsr_reader_fail(r, TSR_ERR_NOMEM, "out of memory reading a graph");
        return NULL;
    }
    tsr_read_bytes(r, s, n);
    s[n] = 0;
    if (tsr_reader_status(r) != TSR_OK || strlen(s) != n) {
        if (tsr_reader_status(r) == TSR_OK) BAD("a name holds a NUL byte");
        tsr_free(s);
        return NULL;
    }
    return s;
}

static void read_i64s(tsr_reader *r, int64_t *v, int n) {
    for (int i = 0; i < n; i++) v[i] = (int64_t)tsr_read_u64(r);
}

/* A count byte in 0..max. */
static int read_count(tsr_reader *r, int max, int *out) {
    uint8_t v = tsr_read_u8(r);
    *out = v;
    return v <= max ? 0 : -1;
}

static tsr_status read_attrs(tsr_reader *r, tsr_graph_attrs *a) {
    memset(a, 0, sizeof *a);
    int bad = 0, flag;
    a->axis = (int64_t)tsr_read_u64(r);
    bad |= read_count(r, TSR_ARRAY_MAX_RANK, &a->n_axes);
    read_i64s(r, a->axes, TSR_ARRAY_MAX_RANK);
    read_i64s(r, a->starts, TSR_ARRAY_MAX_RANK);
    read_i64s(r, a->ends, TSR_ARRAY_MAX_RANK);
    read_i64s(r, a->steps, TSR_ARRAY_MAX_RANK);
    bad |= read_count(r, 1, &a->keepdims);
    bad |= read_count(r, 1, &a->noop_with_empty_axes);
    bad |= read_count(r, 1, &a->reduce_tail);
    bad |= read_count(r, TSR_ARRAY_MAX_RANK, &a->n_perm);
    read_i64s(r, a->perm, TSR_ARRAY_MAX_RANK);
    bad |= read_count(r, TSR_ARRAY_MAX_RANK, &a->n_shape);
    read_i64s(r, a->shape, TSR_ARRAY_MAX_RANK);
    bad |= read_count(r, 1, &a->allowzero);
    bad |= read_count(r, TSR_GRAPH_MAX_SPATIAL, &a->n_kernel);
    read_i64s(r, a->kernel, TSR_GRAPH_MAX_SPATIAL);
    read_i64s(r, a->strides, TSR_GRAPH_MAX_SPATIAL);
    read_i64s(r, a->dilations, TSR_GRAPH_MAX_SPATIAL);
    read_i64s(r, a->pads, 2 * TSR_GRAPH_MAX_SPATIAL);
    bad |= read_count(r, TSR_AUTOPAD_SAME_LOWER, &flag);
    a->auto_pad = (tsr_graph_autopad)flag;
    a->group = (int64_t)tsr_read_u64(r);
    bad |= read_count(r, 1, &a->ceil_mode);
    bad |= read_count(r, 1, &a->count_include_pad);
    bad |= read_count(r, 1, &a->trans_a);
    bad |= read_count(r, 1, &a->trans_b);
    double *f[7] = { &a->alpha, &a->beta, &a->epsilon, &a->lo, &a->hi, &a->value, &a->leak };
    for (int i = 0; i < 7; i++) {
        *f[i] = tsr_read_f64(r);
        bad |= !isfinite(*f[i]);
    }
    bad |= read_count(r, 2 * TSR_ARRAY_MAX_RANK, &a->n_pads);
    read_i64s(r, a->pad_list, 2 * TSR_ARRAY_MAX_RANK);
    if (tsr_reader_status(r) != TSR_OK) return tsr_reader_status(r);
    return bad ? BAD("node attributes out of range") : TSR_OK;
}

/* A constant's shape and data, sizes checked against the bytes left before allocating. */
static tsr_status read_array(tsr_reader *r, tsr_array **out) {
    *out = NULL;
    int rank;
    if (read_count(r, TSR_ARRAY_MAX_RANK, &rank)) return BAD("a constant of rank %d", rank);
    int64_t dims[TSR_ARRAY_MAX_RANK];
    read_i64s(r, dims, rank);
    if (tsr_reader_status(r) != TSR_OK) return tsr_reader_status(r);
    int64_t numel = tsr_dims_numel(rank, dims);
    for (int k = 0; k < rank; k++)
        if (dims[k] < 0) numel = -1;
    if (numel < 0 || (uint64_t)numel > bytes_left(r) / 8)
        return BAD("a constant of %lld values with %llu bytes left", (long long)numel,
                   (unsigned long long)bytes_left(r));
    tsr_status st = tsr_array_create(out, rank, dims);
    if (st != TSR_OK)
        return tsr_reader_fail(r, st, "reading a graph constant: %s", tsr_last_error());
    for (int64_t k = 0; k < numel; k++) (*out)->data[k] = tsr_read_f64(r);
    return tsr_reader_status(r);
}

/* One value record, replayed onto g. */
static tsr_status read_value(tsr_reader *r, tsr_graph *g) {
    uint8_t rec = tsr_read_u8(r);
    if (tsr_reader_status(r) != TSR_OK) return tsr_reader_status(r);
    if (rec > REC_NODE) return BAD("value record %u", rec);
    tsr_status st = TSR_OK;
    if (rec == REC_NODE) {
        uint32_t kind = tsr_read_u32(r);
        char *name = read_str(r), *out = name ? read_str(r) : NULL;
        uint32_t n_in = out ? tsr_read_u32(r) : 0;
        if (!out) {
            tsr_free(name);
            return tsr_reader_status(r);
        }
        /* every input name takes at least its 4-byte length */
        char **in = NULL;
        if (kind >= TSR_NODE_KIND_COUNT_ || n_in > 4096 || (uint64_t)n_in * 4 > bytes_left(r))
            st = BAD("node kind %u with %u inputs", kind, n_in);
        else if (!(in = tsr_calloc_array(n_in ? n_in : 1, sizeof *in)))
            st = tsr_reader_fail(r, TSR_ERR_NOMEM, "out of memory reading a graph");
        for (uint32_t k = 0; st == TSR_OK && k < n_in; k++)
            if (!(in[k] = read_str(r))) st = tsr_reader_status(r);
        tsr_graph_attrs a;
        if (st == TSR_OK) st = read_attrs(r, &a);
        if (st == TSR_OK) {
            st = tsr_graph_add_node(g, (tsr_graph_kind)kind, name, (int)n_in,
                                    (const char *const *)in, out, &a);
            if (st != TSR_OK) st = BAD("%s", tsr_last_error());
        }
        for (uint32_t k = 0; in && k < n_in; k++) tsr_free(in[k]);
        tsr_free(in);
        tsr_free(name);
        tsr_free(out);
        return st;
    }
    char *name = read_str(r);
    if (!name) return tsr_reader_status(r);
    if (rec == REC_CONST) {
        tsr_array *t = NULL;
        st = read_array(r, &t);
        if (st == TSR_OK && tsr_graph_add_const(g, name, t) != TSR_OK)
            st = BAD("%s", tsr_last_error());
        tsr_array_free(t);
    } else {
        int rank;
        int64_t dims[TSR_ARRAY_MAX_RANK];
        if (read_count(r, TSR_ARRAY_MAX_RANK, &rank)) st = BAD("an input of rank %d", rank);
        if (st == TSR_OK) read_i64s(r, dims, rank);
        if (st == TSR_OK && (st = tsr_reader_status(r)) == TSR_OK)
            for (int k = 0; k < rank; k++)
                if (dims[k] < -1 || dims[k] > TSR_ARRAY_MAX_NUMEL) st = BAD("input dimensions");
        if (st == TSR_OK && tsr_graph_add_input(g, name, rank, dims) != TSR_OK)
            st = BAD("%s", tsr_last_error());
    }
    tsr_free(name);
    return st;
}

tsr_status tsr_graph_read(tsr_reader *r, tsr_graph **out) {
    TSR_REQUIRE(r->fp == NULL, "tsr_graph_read: a memory reader is required");
    *out = NULL;
    uint32_t magic = tsr_read_u32(r), version = tsr_read_u32(r);
    uint32_t nv = tsr_read_u32(r), no = tsr_read_u32(r);
    if (tsr_reader_status(r) != TSR_OK) return tsr_reader_status(r);
    if (magic != GRAPH_MAGIC) return BAD("no graph magic");
    if (version != TSR_GRAPH_WIRE_VERSION)
        return tsr_reader_fail(r, TSR_ERR_VERSION, "graph wire version %u (this build reads %d)",
                               version, TSR_GRAPH_WIRE_VERSION);
    /* a value record takes at least 6 bytes, an output name 4 */
    if (nv < 1 || nv > MAX_GRAPH_ITEMS || no < 1 || no > MAX_GRAPH_ITEMS ||
        (uint64_t)nv * 6 + (uint64_t)no * 4 > bytes_left(r))
        return BAD("%u values and %u outputs", nv, no);
    tsr_graph *g;
    TSR_TRY(tsr_graph_create(&g));
    tsr_status st = TSR_OK;
    for (uint32_t i = 0; st == TSR_OK && i < nv; i++) st = read_value(r, g);
    for (uint32_t i = 0; st == TSR_OK && i < no; i++) {
        char *name = read_str(r);
        if (!name) {
            st = tsr_reader_status(r);
            break;
        }
        if (tsr_graph_add_output(g, name) != TSR_OK) st = BAD("%s", tsr_last_error());
        tsr_free(name);
    }
    if (st == TSR_OK && tsr_graph_finalize(g) != TSR_OK) st = BAD("%s", tsr_last_error());
    if (st != TSR_OK) {
        tsr_graph_free(g);
        return st;
    }
    *out = g;
    return TSR_OK;
}

tsr_status tsr_graph_from_bytes(tsr_graph **out, const uint8_t *buf, size_t len) {
    TSR_REQUIRE(out != NULL && (buf != NULL || len == 0), "tsr_graph_from_bytes: NULL argument");
    *out = NULL;
    tsr_reader r;
    tsr_reader_init_mem(&r, buf, len);
    tsr_reader_set_what(&r, "model graph");
    tsr_status st = tsr_graph_read(&r, out);
    if (st == TSR_OK && r.mem_pos != r.mem_len) {
        tsr_graph_free(*out);
        *out = NULL;
        return tsr_fail(TSR_ERR_FORMAT, "malformed graph: %zu bytes after its end",
                        r.mem_len - r.mem_pos);
    }
    return st;
}

tsr_status tsr_graph_clone(const tsr_graph *g, tsr_graph **out) {
    TSR_REQUIRE(out != NULL, "tsr_graph_clone: out is NULL");
    *out = NULL;
    uint8_t *buf;
    size_t len;
    TSR_TRY(tsr_graph_to_bytes(g, &buf, &len));
    tsr_status st = tsr_graph_from_bytes(out, buf, len);
    tsr_free(buf);
    return st;
}
