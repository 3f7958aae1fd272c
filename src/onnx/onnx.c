/*
 * onnx/onnx.c - ONNX ModelProto <-> tsr_onnx_model: conversion, validation,
 * serialisation. See onnx.h for what the reader guarantees.
 */
#include "onnx/onnx.h"
#include "core/alloc.h"
#include "core/error.h"
#include "core/io.h"

#include "onnx.pb-c.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define MAX_ITEMS 1000000 /* nodes, initializers, attributes, ... of one list */

/* ---- small helpers ------------------------------------------------------------ */

static char *dupstr(const char *s) {
    if (!s) s = "";
    size_t n = strlen(s);
    char *d = malloc(n + 1);
    if (d) memcpy(d, s, n + 1);
    return d;
}

static void free_tensor(tsr_onnx_tensor *t) {
    if (!t) return;
    free(t->name);
    tsr_free(t->f);
    tsr_free(t->i);
    memset(t, 0, sizeof *t);
}

static void free_attr(tsr_onnx_attr *a) {
    free(a->name);
    free(a->s);
    free(a->floats);
    free(a->ints);
    if (a->strings)
        for (size_t k = 0; k < a->n; k++) free(a->strings[k]);
    free(a->strings);
    if (a->t) {
        free_tensor(a->t);
        free(a->t);
    }
    memset(a, 0, sizeof *a);
}

static void free_node(tsr_onnx_node *n) {
    free(n->name);
    free(n->op_type);
    for (int k = 0; k < n->n_in; k++) free(n->in[k]);
    for (int k = 0; k < n->n_out; k++) free(n->out[k]);
    free(n->in);
    free(n->out);
    for (int k = 0; k < n->n_attr; k++) free_attr(&n->attr[k]);
    free(n->attr);
    memset(n, 0, sizeof *n);
}

static void free_value(tsr_onnx_value *v) {
    free(v->name);
    for (int k = 0; k < TSR_ONNX_MAX_DIMS; k++) free(v->dim_param[k]);
    memset(v, 0, sizeof *v);
}

void tsr_onnx_free(tsr_onnx_model *m) {
    if (!m) return;
    for (int i = 0; i < m->n_inputs; i++) free_value(&m->inputs[i]);
    for (int i = 0; i < m->n_outputs; i++) free_value(&m->outputs[i]);
    for (int i = 0; i < m->n_nodes; i++) free_node(&m->nodes[i]);
    for (int i = 0; i < m->n_inits; i++) free_tensor(&m->inits[i]);
    for (int i = 0; i < m->n_meta; i++) {
        free(m->meta_key[i]);
        free(m->meta_value[i]);
    }
    free(m->inputs);
    free(m->outputs);
    free(m->nodes);
    free(m->inits);
    free(m->meta_key);
    free(m->meta_value);
    free(m->producer_name);
    free(m->producer_version);
    free(m->graph_name);
    free(m->doc_string);
    free(m);
}

/* Grow an array of elements of size sz to hold n+1 (capacity doubling). */
static int grow(void **arr, int *cap, int n, size_t sz) {
    if (n < *cap) return 0;
    if (n >= MAX_ITEMS) return -1;
    int c = *cap ? 2 * *cap : 8;
    void *p = realloc(*arr, (size_t)c * sz);
    if (!p) return -1;
    memset((char *)p + (size_t)*cap * sz, 0, (size_t)(c - *cap) * sz);
    *arr = p;
    *cap = c;
    return 0;
}

/* ---- a string set for name checks (open addressing) -------------------------- */

typedef struct strset {
    const char **slot;
    size_t cap, n;
} strset;

static uint64_t hash_str(const char *s) {
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (; *s; s++) h = (h ^ (uint8_t)*s) * 1099511628211ull;
    return h;
}

static int set_init(strset *s, size_t expect) {
    s->cap = 64;
    while (s->cap < 2 * expect + 16) s->cap *= 2;
    s->n = 0;
    s->slot = calloc(s->cap, sizeof *s->slot);
    return s->slot ? 0 : -1;
}

static int set_has(const strset *s, const char *k) {
    for (size_t i = hash_str(k) & (s->cap - 1);; i = (i + 1) & (s->cap - 1)) {
        if (!s->slot[i]) return 0;
        if (strcmp(s->slot[i], k) == 0) return 1;
    }
}

/* Returns 1 if added, 0 if already present, -1 on allocation failure. */
static int set_add(strset *s, const char *k) {
    if (2 * (s->n + 1) > s->cap) {
        strset bigger = { calloc(2 * s->cap, sizeof(const char *)), 2 * s->cap, 0 };
        if (!bigger.slot) return -1;
        for (size_t i = 0; i < s->cap; i++)
            if (s->slot[i]) set_add(&bigger, s->slot[i]);
        free(s->slot);
        *s = bigger;
    }
    size_t i = hash_str(k) & (s->cap - 1);
    for (; s->slot[i]; i = (i + 1) & (s->cap - 1))
        if (strcmp(s->slot[i], k) == 0) return 0;
    s->slot[i] = k;
    s->n++;
    return 1;
}

static void set_free(strset *s) {
    free(s->slot);
    s->slot = NULL;
}

/* ---- queries ------------------------------------------------------------------- */

const char *tsr_onnx_node_label(const tsr_onnx_model *m, int index, char *buf, size_t n) {
    const tsr_onnx_node *nd = &m->nodes[index];
    char name[128], op[64]; /* names come from the file: no terminal control codes */
    tsr_escape_controls(name, sizeof name, nd->name ? nd->name : "", 0);
    tsr_escape_controls(op, sizeof op, nd->op_type ? nd->op_type : "", 0);
    if (name[0])
        snprintf(buf, n, "'%s' (%s)", name, op);
    else
        snprintf(buf, n, "#%d (%s)", index, op);
    return buf;
}

const tsr_onnx_tensor *tsr_onnx_find_init(const tsr_onnx_model *m, const char *name) {
    for (int i = 0; i < m->n_inits; i++)
        if (strcmp(m->inits[i].name, name) == 0) return &m->inits[i];
    return NULL;
}

const tsr_onnx_attr *tsr_onnx_find_attr(const tsr_onnx_node *n, const char *name) {
    for (int i = 0; i < n->n_attr; i++)
        if (strcmp(n->attr[i].name, name) == 0) return &n->attr[i];
    return NULL;
}

static tsr_status attr_type_error(const tsr_onnx_node *n, const char *name, const char *want) {
    return tsr_fail(TSR_ERR_FORMAT, "node '%s' (%s): attribute '%s' must be %s", n->name,
                    n->op_type, name, want);
}

tsr_status tsr_onnx_attr_int(const tsr_onnx_node *n, const char *name, int64_t def, int64_t *out) {
    const tsr_onnx_attr *a = tsr_onnx_find_attr(n, name);
    if (!a) {
        *out = def;
        return TSR_OK;
    }
    if (a->type != TSR_ONNX_ATTR_INT) return attr_type_error(n, name, "an integer");
    *out = a->i;
    return TSR_OK;
}

tsr_status tsr_onnx_attr_float(const tsr_onnx_node *n, const char *name, float def, float *out) {
    const tsr_onnx_attr *a = tsr_onnx_find_attr(n, name);
    if (!a) {
        *out = def;
        return TSR_OK;
    }
    if (a->type != TSR_ONNX_ATTR_FLOAT) return attr_type_error(n, name, "a float");
    *out = a->f;
    return TSR_OK;
}

tsr_status tsr_onnx_attr_ints(const tsr_onnx_node *n, const char *name, const int64_t **vals,
                              size_t *count) {
    const tsr_onnx_attr *a = tsr_onnx_find_attr(n, name);
    *vals = NULL;
    *count = 0;
    if (!a) return TSR_OK;
    if (a->type != TSR_ONNX_ATTR_INTS) return attr_type_error(n, name, "a list of integers");
    *vals = a->ints;
    *count = a->n;
    return TSR_OK;
}

tsr_status tsr_onnx_attr_string(const tsr_onnx_node *n, const char *name, const char *def,
                                const char **out) {
    const tsr_onnx_attr *a = tsr_onnx_find_attr(n, name);
    if (!a) {
        *out = def;
        return TSR_OK;
    }
    if (a->type != TSR_ONNX_ATTR_STRING) return attr_type_error(n, name, "a string");
    *out = a->s;
    return TSR_OK;
}

const char *tsr_onnx_meta(const tsr_onnx_model *m, const char *key) {
    for (int i = 0; i < m->n_meta; i++)
        if (strcmp(m->meta_key[i], key) == 0) return m->meta_value[i];
    return NULL;
}

int tsr_onnx_producer(const tsr_onnx_model *m, const char *name) {
    for (int i = 0; i < m->n_nodes; i++)
        for (int k = 0; k < m->nodes[i].n_out; k++)
            if (strcmp(m->nodes[i].out[k], name) == 0) return i;
    return -1;
}

int tsr_onnx_consumers(const tsr_onnx_model *m, const char *name) {
    int c = 0;
    for (int i = 0; i < m->n_nodes; i++)
        for (int k = 0; k < m->nodes[i].n_in; k++) c += strcmp(m->nodes[i].in[k], name) == 0;
    for (int i = 0; i < m->n_outputs; i++) c += strcmp(m->outputs[i].name, name) == 0;
    return c;
}

tsr_status tsr_onnx_check_ops(const tsr_onnx_model *m, const char *const *ops) {
    char msg[1024] = "", lab[160];
    size_t len = 0;
    int bad = 0;
    for (int i = 0; i < m->n_nodes; i++) {
        int ok = 0;
        for (const char *const *o = ops; *o && !ok; o++) ok = strcmp(*o, m->nodes[i].op_type) == 0;
        if (ok) continue;
        if (len < sizeof msg - 200)
            len += (size_t)snprintf(msg + len, sizeof msg - len, "%s%s", bad ? ", " : "",
                                    tsr_onnx_node_label(m, i, lab, sizeof lab));
        bad++;
    }
    if (!bad) return TSR_OK;
    return tsr_fail(TSR_ERR_UNSUPPORTED, "%d node%s with an unsupported operator: %s%s", bad,
                    bad > 1 ? "s" : "", msg, len >= sizeof msg - 200 ? ", ..." : "");
}

/* ---- validation (shared by reader and writer) ----------------------------------- */

static tsr_status check_tensor(const tsr_onnx_tensor *t, const char *what) {
    if (!t->name) return tsr_fail(TSR_ERR_FORMAT, "%s has no name", what);
    if (t->dtype != TSR_ONNX_FLOAT && t->dtype != TSR_ONNX_INT64)
        return tsr_fail(TSR_ERR_UNSUPPORTED,
                        "%s '%s' has data type %d: only FLOAT (1) and INT64 (7) are supported",
                        what, t->name, t->dtype);
    if (t->ndims < 0 || t->ndims > TSR_ONNX_MAX_DIMS)
        return tsr_fail(TSR_ERR_UNSUPPORTED, "%s '%s' has %d dimensions (at most %d)", what,
                        t->name, t->ndims, TSR_ONNX_MAX_DIMS);
    int64_t n = 1;
    for (int k = 0; k < t->ndims; k++) {
        if (t->dims[k] < 0)
            return tsr_fail(TSR_ERR_FORMAT, "%s '%s' has a negative dimension %lld", what, t->name,
                            (long long)t->dims[k]);
        if (t->dims[k] > 0 && n > TSR_ONNX_MAX_NUMEL / t->dims[k])
            return tsr_fail(TSR_ERR_FORMAT, "%s '%s' is too large (over %lld elements)", what,
                            t->name, (long long)TSR_ONNX_MAX_NUMEL);
        n *= t->dims[k];
    }
    if ((size_t)n != t->numel)
        return tsr_fail(TSR_ERR_FORMAT, "%s '%s': %zu values for dims of %lld elements", what,
                        t->name, t->numel, (long long)n);
    if (t->dtype == TSR_ONNX_FLOAT) {
        if (t->numel && !t->f)
            return tsr_fail(TSR_ERR_FORMAT, "%s '%s' has no data", what, t->name);
        for (size_t k = 0; k < t->numel; k++)
            if (!isfinite(t->f[k]))
                return tsr_fail(TSR_ERR_FORMAT, "%s '%s' contains NaN or infinity at %zu", what,
                                t->name, k);
    } else if (t->numel && !t->i) {
        return tsr_fail(TSR_ERR_FORMAT, "%s '%s' has no data", what, t->name);
    }
    return TSR_OK;
}

static tsr_status validate(const tsr_onnx_model *m) {
    char lab[160];
    tsr_status st = TSR_OK;
    strset defined = { 0 }, tmp = { 0 };
    if (m->ir_version < 3)
        return tsr_fail(TSR_ERR_FORMAT, "model IR version %lld is missing or too old (need >= 3)",
                        (long long)m->ir_version);
    if (m->opset < 1)
        return tsr_fail(TSR_ERR_FORMAT, "model declares no opset for the default ONNX domain");
    if (set_init(&defined, (size_t)(m->n_inits + m->n_inputs + 2 * m->n_nodes)) != 0 ||
        set_init(&tmp, 16) != 0) {
        st = tsr_fail(TSR_ERR_NOMEM, "out of memory validating the model");
        goto out;
    }
    for (int i = 0; i < m->n_inits; i++) {
        if ((st = check_tensor(&m->inits[i], "initializer")) != TSR_OK) goto out;
        if (!m->inits[i].name[0]) {
            st = tsr_fail(TSR_ERR_FORMAT, "initializer #%d has an empty name", i);
            goto out;
        }
        int r = set_add(&defined, m->inits[i].name);
        if (r <= 0) {
            st = r < 0 ? tsr_fail(TSR_ERR_NOMEM, "out of memory")
                       : tsr_fail(TSR_ERR_FORMAT, "initializer name '%s' is used twice",
                                  m->inits[i].name);
            goto out;
        }
    }
    for (int i = 0; i < m->n_inputs; i++) {
        const tsr_onnx_value *v = &m->inputs[i];
        if (!v->name || !v->name[0]) {
            st = tsr_fail(TSR_ERR_FORMAT, "graph input #%d has no name", i);
            goto out;
        }
        int r = set_add(&defined, v->name);
        if (r <= 0) {
            st = r < 0 ? tsr_fail(TSR_ERR_NOMEM, "out of memory")
                       : tsr_fail(TSR_ERR_FORMAT, "graph input '%s' is defined twice", v->name);
            goto out;
        }
    }
    for (int i = 0; i < m->n_nodes; i++) {
        const tsr_onnx_node *n = &m->nodes[i];
        if (!n->op_type || !n->op_type[0]) {
            st = tsr_fail(TSR_ERR_FORMAT, "node #%d has no operator type", i);
            goto out;
        }
        for (int k = 0; k < n->n_in; k++)
            if (n->in[k][0] && !set_has(&defined, n->in[k])) {
                st = tsr_fail(TSR_ERR_FORMAT,
                              "node %s reads '%s', which no graph input, initializer or earlier "
                              "node defines (missing initializer, or nodes out of order)",
                              tsr_onnx_node_label(m, i, lab, sizeof lab), n->in[k]);
                goto out;
            }
        for (int k = 0; k < n->n_out; k++) {
            if (!n->out[k][0]) continue; /* omitted optional output */
            int r = set_add(&defined, n->out[k]);
            if (r <= 0) {
                st = r < 0 ? tsr_fail(TSR_ERR_NOMEM, "out of memory")
                           : tsr_fail(TSR_ERR_FORMAT, "node %s redefines tensor '%s'",
                                      tsr_onnx_node_label(m, i, lab, sizeof lab), n->out[k]);
                goto out;
            }
        }
        set_free(&tmp);
        if (set_init(&tmp, (size_t)n->n_attr) != 0) {
            st = tsr_fail(TSR_ERR_NOMEM, "out of memory");
            goto out;
        }
        for (int k = 0; k < n->n_attr; k++) {
            const tsr_onnx_attr *a = &n->attr[k];
            if (!a->name || !a->name[0] || set_add(&tmp, a->name) != 1) {
                st = tsr_fail(TSR_ERR_FORMAT, "node %s has an unnamed or repeated attribute",
                              tsr_onnx_node_label(m, i, lab, sizeof lab));
                goto out;
            }
            if (a->type == TSR_ONNX_ATTR_TENSOR) {
                if (!a->t) {
                    st = tsr_fail(TSR_ERR_FORMAT, "node %s: tensor attribute '%s' has no tensor",
                                  tsr_onnx_node_label(m, i, lab, sizeof lab), a->name);
                    goto out;
                }
                if ((st = check_tensor(a->t, "attribute tensor")) != TSR_OK) goto out;
            }
        }
    }
    for (int i = 0; i < m->n_outputs; i++) {
        const tsr_onnx_value *v = &m->outputs[i];
        if (!v->name || !v->name[0] || !set_has(&defined, v->name)) {
            st = tsr_fail(TSR_ERR_FORMAT, "graph output '%s' is not produced by any node",
                          v->name ? v->name : "");
            goto out;
        }
    }
    set_free(&tmp);
    if (set_init(&tmp, (size_t)m->n_meta) != 0) {
        st = tsr_fail(TSR_ERR_NOMEM, "out of memory");
        goto out;
    }
    for (int i = 0; i < m->n_meta; i++)
        if (!m->meta_key[i][0] || set_add(&tmp, m->meta_key[i]) != 1) {
            st = tsr_fail(TSR_ERR_FORMAT, "metadata key '%s' is empty or repeated", m->meta_key[i]);
            goto out;
        }
out:
    set_free(&defined);
    set_free(&tmp);
    return st;
}

/* ---- protobuf nesting check --------------------------------------------------- */

static int read_varint(const uint8_t *p, size_t len, size_t *pos, uint64_t *v) {
    uint64_t r = 0;
    for (int shift = 0; shift < 64; shift += 7) {
        if (*pos >= len) return -1;
        uint8_t b = p[(*pos)++];
        r |= (uint64_t)(b & 0x7f) << shift;
        if (!(b & 0x80)) {
            *v = r;
            return 0;
        }
    }
    return -1;
}

/*
 * Walk the wire format with the message descriptors and refuse nesting deeper
 * than TSR_ONNX_MAX_DEPTH before protobuf-c (which recurses without a limit)
 * unpacks it. Malformed wire data is left for protobuf-c to reject.
 */
static int nesting_ok(const ProtobufCMessageDescriptor *d, const uint8_t *p, size_t len,
                      int depth) {
    if (depth > TSR_ONNX_MAX_DEPTH) return 0;
    size_t pos = 0;
    while (pos < len) {
        uint64_t key, v;
        if (read_varint(p, len, &pos, &key) != 0) return 1;
        uint32_t id = (uint32_t)(key >> 3), wt = (uint32_t)(key & 7);
        switch (wt) {
        case 0:
            if (read_varint(p, len, &pos, &v) != 0) return 1;
            break;
        case 1:
            pos += 8;
            break;
        case 5:
            pos += 4;
            break;
        case 2: {
            if (read_varint(p, len, &pos, &v) != 0 || v > len - pos) return 1;
            const ProtobufCFieldDescriptor *f = NULL;
            for (unsigned k = 0; k < d->n_fields; k++)
                if (d->fields[k].id == id) f = &d->fields[k];
            if (f && f->type == PROTOBUF_C_TYPE_MESSAGE &&
                !nesting_ok(f->descriptor, p + pos, (size_t)v, depth + 1))
                return 0;
            pos += (size_t)v;
            break;
        }
        default:
            return 1;
        }
    }
    return 1;
}

/* ---- conversion from protobuf --------------------------------------------------- */

static uint32_t rd32(const uint8_t *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static tsr_status conv_tensor(tsr_onnx_tensor *t, const Onnx__TensorProto *tp, const char *what,
                              const char *fallback_name) {
    memset(t, 0, sizeof *t);
    const char *name = tp->name && tp->name[0] ? tp->name : fallback_name;
    t->name = dupstr(name);
    if (!t->name) return tsr_fail(TSR_ERR_NOMEM, "out of memory");
    if (tp->segment)
        return tsr_fail(TSR_ERR_UNSUPPORTED, "%s '%s' is segmented: not supported", what, name);
    if (tp->n_external_data ||
        (tp->has_data_location && tp->data_location == ONNX__TENSOR_PROTO__DATA_LOCATION__EXTERNAL))
        return tsr_fail(TSR_ERR_UNSUPPORTED,
                        "%s '%s' uses external data: save the model with all data inside", what,
                        name);
    if (!tp->has_data_type) return tsr_fail(TSR_ERR_FORMAT, "%s '%s' has no data type", what, name);
    t->dtype = tp->data_type;
    if (t->dtype != TSR_ONNX_FLOAT && t->dtype != TSR_ONNX_INT64)
        return tsr_fail(TSR_ERR_UNSUPPORTED,
                        "%s '%s' has data type %d: only FLOAT (1) and INT64 (7) are supported",
                        what, name, t->dtype);
    if (tp->n_dims > TSR_ONNX_MAX_DIMS)
        return tsr_fail(TSR_ERR_UNSUPPORTED, "%s '%s' has %zu dimensions (at most %d)", what, name,
                        tp->n_dims, TSR_ONNX_MAX_DIMS);
    t->ndims = (int)tp->n_dims;
    int64_t n = 1;
    for (size_t k = 0; k < tp->n_dims; k++) {
        int64_t d = tp->dims[k];
        if (d < 0)
            return tsr_fail(TSR_ERR_FORMAT, "%s '%s' has a negative dimension %lld", what, name,
                            (long long)d);
        if (d > 0 && n > TSR_ONNX_MAX_NUMEL / d)
            return tsr_fail(TSR_ERR_FORMAT, "%s '%s' is too large (over %lld elements)", what, name,
                            (long long)TSR_ONNX_MAX_NUMEL);
        n *= d;
        t->dims[k] = d;
    }
    t->numel = (size_t)n;
    size_t esz = t->dtype == TSR_ONNX_FLOAT ? 4 : 8;
    size_t typed = t->dtype == TSR_ONNX_FLOAT ? tp->n_float_data : tp->n_int64_data;
    int has_raw = tp->has_raw_data && tp->raw_data.len > 0;
    if (tp->n_double_data || tp->n_int32_data || tp->n_string_data || tp->n_uint64_data ||
        (t->dtype == TSR_ONNX_FLOAT ? tp->n_int64_data : tp->n_float_data))
        return tsr_fail(TSR_ERR_FORMAT, "%s '%s' stores data in a field of another type", what,
                        name);
    if (has_raw && typed)
        return tsr_fail(TSR_ERR_FORMAT, "%s '%s' has both raw_data and typed data", what, name);
    size_t have = has_raw ? tp->raw_data.len : typed * esz;
    if (have != t->numel * esz)
        return tsr_fail(TSR_ERR_FORMAT,
                        "%s '%s': dims say %zu elements (%zu bytes) but the data has %zu bytes",
                        what, name, t->numel, t->numel * esz, have);
    if (!t->numel) return TSR_OK;
    if (t->dtype == TSR_ONNX_FLOAT) {
        t->f = tsr_calloc_array(t->numel, sizeof(float));
        if (!t->f) return tsr_fail(TSR_ERR_NOMEM, "out of memory for tensor '%s'", name);
        for (size_t k = 0; k < t->numel; k++) {
            if (has_raw) {
                uint32_t u = rd32(tp->raw_data.data + 4 * k);
                memcpy(&t->f[k], &u, 4);
            } else {
                t->f[k] = tp->float_data[k];
            }
            if (!isfinite(t->f[k]))
                return tsr_fail(TSR_ERR_FORMAT, "%s '%s' contains NaN or infinity at %zu", what,
                                name, k);
        }
    } else {
        t->i = tsr_calloc_array(t->numel, sizeof(int64_t));
        if (!t->i) return tsr_fail(TSR_ERR_NOMEM, "out of memory for tensor '%s'", name);
        for (size_t k = 0; k < t->numel; k++)
            t->i[k] = has_raw ? (int64_t)((uint64_t)rd32(tp->raw_data.data + 8 * k) |
                                          (uint64_t)rd32(tp->raw_data.data + 8 * k + 4) << 32)
                              : tp->int64_data[k];
    }
    return TSR_OK;
}

static tsr_status conv_attr(tsr_onnx_attr *a, const Onnx__AttributeProto *ap, const char *node) {
    memset(a, 0, sizeof *a);
    a->name = dupstr(ap->name);
    if (!a->name) return tsr_fail(TSR_ERR_NOMEM, "out of memory");
    if (!ap->name || !ap->name[0])
        return tsr_fail(TSR_ERR_FORMAT, "node '%s' has an attribute without a name", node);
    if (ap->ref_attr_name && ap->ref_attr_name[0])
        return tsr_fail(TSR_ERR_UNSUPPORTED, "node '%s': attribute references are not supported",
                        node);
    if (!ap->has_type)
        return tsr_fail(TSR_ERR_FORMAT, "node '%s': attribute '%s' has no type", node, ap->name);
    a->type = (tsr_onnx_attr_type)ap->type;
    switch (ap->type) {
    case ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOAT:
        if (!ap->has_f) break;
        a->f = ap->f;
        return TSR_OK;
    case ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INT:
        if (!ap->has_i) break;
        a->i = ap->i;
        return TSR_OK;
    case ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__STRING:
        if (!ap->has_s) break;
        if (ap->s.len && memchr(ap->s.data, 0, ap->s.len))
            return tsr_fail(TSR_ERR_FORMAT, "node '%s': attribute '%s' contains a NUL byte", node,
                            ap->name);
        a->s = malloc(ap->s.len + 1);
        if (!a->s) return tsr_fail(TSR_ERR_NOMEM, "out of memory");
        if (ap->s.len) memcpy(a->s, ap->s.data, ap->s.len);
        a->s[ap->s.len] = 0;
        return TSR_OK;
    case ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__TENSOR:
        if (!ap->t) break;
        a->t = calloc(1, sizeof *a->t);
        if (!a->t) return tsr_fail(TSR_ERR_NOMEM, "out of memory");
        return conv_tensor(a->t, ap->t, "attribute tensor", ap->name);
    case ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOATS:
        a->n = ap->n_floats;
        a->floats = malloc((a->n ? a->n : 1) * sizeof(float));
        if (!a->floats) return tsr_fail(TSR_ERR_NOMEM, "out of memory");
        if (a->n) memcpy(a->floats, ap->floats, a->n * sizeof(float));
        return TSR_OK;
    case ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INTS:
        a->n = ap->n_ints;
        a->ints = malloc((a->n ? a->n : 1) * sizeof(int64_t));
        if (!a->ints) return tsr_fail(TSR_ERR_NOMEM, "out of memory");
        if (a->n) memcpy(a->ints, ap->ints, a->n * sizeof(int64_t));
        return TSR_OK;
    case ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__STRINGS:
        a->strings = calloc(ap->n_strings ? ap->n_strings : 1, sizeof(char *));
        if (!a->strings) return tsr_fail(TSR_ERR_NOMEM, "out of memory");
        for (size_t k = 0; k < ap->n_strings; k++) {
            if (ap->strings[k].len && memchr(ap->strings[k].data, 0, ap->strings[k].len))
                return tsr_fail(TSR_ERR_FORMAT, "node '%s': attribute '%s' contains a NUL byte",
                                node, ap->name);
            a->strings[k] = malloc(ap->strings[k].len + 1);
            if (!a->strings[k]) return tsr_fail(TSR_ERR_NOMEM, "out of memory");
            a->n = k + 1;
            if (ap->strings[k].len) memcpy(a->strings[k], ap->strings[k].data, ap->strings[k].len);
            a->strings[k][ap->strings[k].len] = 0;
        }
        return TSR_OK;
    default:
        return tsr_fail(TSR_ERR_UNSUPPORTED,
                        "node '%s': attribute '%s' has type %d (graphs, sparse tensors and type "
                        "attributes are not supported)",
                        node, ap->name, (int)ap->type);
    }
    return tsr_fail(TSR_ERR_FORMAT, "node '%s': attribute '%s' has no value of its declared type",
                    node, ap->name);
}

static tsr_status conv_value(tsr_onnx_value *v, const Onnx__ValueInfoProto *vp, const char *what) {
    memset(v, 0, sizeof *v);
    v->ndims = -1;
    v->name = dupstr(vp->name);
    if (!v->name) return tsr_fail(TSR_ERR_NOMEM, "out of memory");
    if (!vp->type || vp->type->value_case != ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE ||
        !vp->type->tensor_type)
        return tsr_fail(TSR_ERR_UNSUPPORTED, "%s '%s' is not a tensor", what, v->name);
    const Onnx__TypeProto__Tensor *tt = vp->type->tensor_type;
    if (!tt->has_elem_type || tt->elem_type == 0)
        return tsr_fail(TSR_ERR_FORMAT, "%s '%s' has no element type", what, v->name);
    v->elem_type = tt->elem_type;
    if (!tt->shape) return TSR_OK;
    if (tt->shape->n_dim > TSR_ONNX_MAX_DIMS)
        return tsr_fail(TSR_ERR_UNSUPPORTED, "%s '%s' has %zu dimensions (at most %d)", what,
                        v->name, tt->shape->n_dim, TSR_ONNX_MAX_DIMS);
    v->ndims = (int)tt->shape->n_dim;
    for (int k = 0; k < v->ndims; k++) {
        const Onnx__TensorShapeProto__Dimension *d = tt->shape->dim[k];
        v->dims[k] = -1;
        if (d->value_case == ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE) {
            if (d->dim_value < 0)
                return tsr_fail(TSR_ERR_FORMAT, "%s '%s' has a negative dimension", what, v->name);
            v->dims[k] = d->dim_value;
        } else if (d->value_case == ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_PARAM) {
            v->dim_param[k] = dupstr(d->dim_param);
            if (!v->dim_param[k]) return tsr_fail(TSR_ERR_NOMEM, "out of memory");
        }
    }
    return TSR_OK;
}

/* Make a Constant node's value an initializer named after its output. */
static tsr_status fold_constant(tsr_onnx_model *m, const Onnx__NodeProto *np) {
    const char *label = np->name && np->name[0] ? np->name : "Constant";
    if (np->n_output != 1 || !np->output[0][0] || np->n_input != 0 || np->n_attribute != 1)
        return tsr_fail(TSR_ERR_FORMAT,
                        "Constant node '%s' must have no inputs, one output and one attribute",
                        label);
    if (grow((void **)&m->inits, &m->cap_inits, m->n_inits, sizeof *m->inits) != 0)
        return tsr_fail(TSR_ERR_NOMEM, "out of memory");
    tsr_onnx_tensor *t = &m->inits[m->n_inits];
    const Onnx__AttributeProto *ap = np->attribute[0];
    const char *an = ap->name ? ap->name : "";
    tsr_status st = TSR_OK;
    if (strcmp(an, "value") == 0 && ap->t) {
        st = conv_tensor(t, ap->t, "Constant", np->output[0]);
        free(t->name);
        t->name = dupstr(np->output[0]);
    } else if (strcmp(an, "value_float") == 0 || strcmp(an, "value_floats") == 0 ||
               strcmp(an, "value_int") == 0 || strcmp(an, "value_ints") == 0) {
        int is_f = an[6] == 'f', list = an[strlen(an) - 1] == 's';
        size_t n = list ? (is_f ? ap->n_floats : ap->n_ints) : 1;
        if (!list && !(is_f ? ap->has_f : ap->has_i))
            return tsr_fail(TSR_ERR_FORMAT, "Constant node '%s' has no value", label);
        if (n > (size_t)TSR_ONNX_MAX_NUMEL)
            return tsr_fail(TSR_ERR_FORMAT, "Constant node '%s' is too large", label);
        memset(t, 0, sizeof *t);
        t->name = dupstr(np->output[0]);
        t->dtype = is_f ? TSR_ONNX_FLOAT : TSR_ONNX_INT64;
        t->ndims = list ? 1 : 0;
        t->dims[0] = (int64_t)n;
        t->numel = n;
        if (is_f) {
            t->f = tsr_calloc_array(n ? n : 1, sizeof(float));
            if (t->f) {
                if (list && n) memcpy(t->f, ap->floats, n * sizeof(float));
                if (!list) t->f[0] = ap->f;
            }
        } else {
            t->i = tsr_calloc_array(n ? n : 1, sizeof(int64_t));
            if (t->i) {
                if (list && n) memcpy(t->i, ap->ints, n * sizeof(int64_t));
                if (!list) t->i[0] = ap->i;
            }
        }
        if (!t->name || (is_f ? !t->f : !t->i)) st = tsr_fail(TSR_ERR_NOMEM, "out of memory");
    } else {
        return tsr_fail(TSR_ERR_UNSUPPORTED,
                        "Constant node '%s': attribute '%s' is not supported (use value, "
                        "value_float(s) or value_int(s))",
                        label, an);
    }
    m->n_inits++; /* owned by the model even on failure, freed with it */
    if (!t->name) return tsr_fail(TSR_ERR_NOMEM, "out of memory");
    return st;
}

static tsr_status convert(tsr_onnx_model *m, const Onnx__ModelProto *mp) {
    m->ir_version = mp->has_ir_version ? mp->ir_version : 0;
    for (size_t i = 0; i < mp->n_opset_import; i++) {
        const Onnx__OperatorSetIdProto *o = mp->opset_import[i];
        if (!o->domain || !o->domain[0] || strcmp(o->domain, "ai.onnx") == 0)
            m->opset = o->has_version ? o->version : 0;
    }
    m->producer_name = dupstr(mp->producer_name);
    m->producer_version = dupstr(mp->producer_version);
    m->doc_string = dupstr(mp->doc_string);
    if (!m->producer_name || !m->producer_version || !m->doc_string)
        return tsr_fail(TSR_ERR_NOMEM, "out of memory");
    if (mp->n_functions)
        return tsr_fail(TSR_ERR_UNSUPPORTED, "model-local functions are not supported");
    for (size_t i = 0; i < mp->n_metadata_props; i++) {
        const Onnx__StringStringEntryProto *e = mp->metadata_props[i];
        if (grow((void **)&m->meta_key, &m->cap_meta, m->n_meta, sizeof(char *)) != 0)
            return tsr_fail(TSR_ERR_NOMEM, "out of memory");
        char **vals = realloc(m->meta_value, (size_t)m->cap_meta * sizeof(char *));
        if (!vals) return tsr_fail(TSR_ERR_NOMEM, "out of memory");
        m->meta_value = vals;
        m->meta_key[m->n_meta] = dupstr(e->key);
        m->meta_value[m->n_meta] = dupstr(e->value);
        m->n_meta++;
        if (!m->meta_key[m->n_meta - 1] || !m->meta_value[m->n_meta - 1])
            return tsr_fail(TSR_ERR_NOMEM, "out of memory");
    }
    const Onnx__GraphProto *g = mp->graph;
    if (!g) return tsr_fail(TSR_ERR_FORMAT, "model has no graph");
    m->graph_name = dupstr(g->name);
    if (!m->graph_name) return tsr_fail(TSR_ERR_NOMEM, "out of memory");
    if (g->n_sparse_initializer)
        return tsr_fail(TSR_ERR_UNSUPPORTED, "sparse initializers are not supported");
    if (g->n_node > MAX_ITEMS || g->n_initializer > MAX_ITEMS || g->n_input > MAX_ITEMS ||
        g->n_output > MAX_ITEMS)
        return tsr_fail(TSR_ERR_FORMAT, "graph is too large");
    for (size_t i = 0; i < g->n_initializer; i++) {
        if (grow((void **)&m->inits, &m->cap_inits, m->n_inits, sizeof *m->inits) != 0)
            return tsr_fail(TSR_ERR_NOMEM, "out of memory");
        char fb[32];
        snprintf(fb, sizeof fb, "#%zu", i);
        tsr_status st = conv_tensor(&m->inits[m->n_inits++], g->initializer[i], "initializer", fb);
        if (st != TSR_OK) return st;
        if (!g->initializer[i]->name || !g->initializer[i]->name[0])
            return tsr_fail(TSR_ERR_FORMAT, "initializer #%zu has no name", i);
    }
    for (size_t i = 0; i < g->n_input; i++) {
        const char *nm = g->input[i]->name ? g->input[i]->name : "";
        if (nm[0] && tsr_onnx_find_init(m, nm)) continue; /* an initializer listed as input */
        if (grow((void **)&m->inputs, &m->cap_inputs, m->n_inputs, sizeof *m->inputs) != 0)
            return tsr_fail(TSR_ERR_NOMEM, "out of memory");
        TSR_TRY(conv_value(&m->inputs[m->n_inputs++], g->input[i], "graph input"));
    }
    for (size_t i = 0; i < g->n_output; i++) {
        if (grow((void **)&m->outputs, &m->cap_outputs, m->n_outputs, sizeof *m->outputs) != 0)
            return tsr_fail(TSR_ERR_NOMEM, "out of memory");
        TSR_TRY(conv_value(&m->outputs[m->n_outputs++], g->output[i], "graph output"));
    }
    char msg[512] = "";
    size_t len = 0;
    int foreign = 0;
    for (size_t i = 0; i < g->n_node; i++) {
        const Onnx__NodeProto *np = g->node[i];
        const char *dom = np->domain ? np->domain : "";
        if (dom[0] && strcmp(dom, "ai.onnx") != 0) {
            if (len < sizeof msg - 120)
                len += (size_t)snprintf(msg + len, sizeof msg - len, "%s'%s' (%s:%s)",
                                        foreign ? ", " : "", np->name ? np->name : "", dom,
                                        np->op_type ? np->op_type : "");
            foreign++;
        }
    }
    if (foreign)
        return tsr_fail(TSR_ERR_UNSUPPORTED,
                        "%d node%s from operator domains other than the default one: %s", foreign,
                        foreign > 1 ? "s" : "", msg);
    for (size_t i = 0; i < g->n_node; i++) {
        const Onnx__NodeProto *np = g->node[i];
        if (np->op_type && strcmp(np->op_type, "Constant") == 0) {
            TSR_TRY(fold_constant(m, np));
            continue;
        }
        if (grow((void **)&m->nodes, &m->cap_nodes, m->n_nodes, sizeof *m->nodes) != 0)
            return tsr_fail(TSR_ERR_NOMEM, "out of memory");
        tsr_onnx_node *n = &m->nodes[m->n_nodes++];
        n->name = dupstr(np->name);
        n->op_type = dupstr(np->op_type);
        if (!n->name || !n->op_type) return tsr_fail(TSR_ERR_NOMEM, "out of memory");
        if (np->n_input > 4096 || np->n_output > 4096 || np->n_attribute > 4096)
            return tsr_fail(TSR_ERR_FORMAT, "node '%s' has too many inputs, outputs or attributes",
                            n->name);
        n->in = calloc(np->n_input ? np->n_input : 1, sizeof(char *));
        n->out = calloc(np->n_output ? np->n_output : 1, sizeof(char *));
        n->attr = calloc(np->n_attribute ? np->n_attribute : 1, sizeof *n->attr);
        if (!n->in || !n->out || !n->attr) return tsr_fail(TSR_ERR_NOMEM, "out of memory");
        for (size_t k = 0; k < np->n_input; k++) {
            n->in[k] = dupstr(np->input[k]);
            if (!n->in[k]) return tsr_fail(TSR_ERR_NOMEM, "out of memory");
            n->n_in++;
        }
        for (size_t k = 0; k < np->n_output; k++) {
            n->out[k] = dupstr(np->output[k]);
            if (!n->out[k]) return tsr_fail(TSR_ERR_NOMEM, "out of memory");
            n->n_out++;
        }
        for (size_t k = 0; k < np->n_attribute; k++) {
            n->n_attr++;
            TSR_TRY(conv_attr(&n->attr[k], np->attribute[k], n->name[0] ? n->name : n->op_type));
        }
    }
    return TSR_OK;
}

tsr_status tsr_onnx_parse(tsr_onnx_model **out, const uint8_t *buf, size_t len) {
    *out = NULL;
    if (!buf && len) return tsr_fail(TSR_ERR_INVALID_ARG, "ONNX buffer is NULL");
    if (len == 0) return tsr_fail(TSR_ERR_FORMAT, "ONNX model is empty");
    if (len > TSR_ONNX_MAX_BYTES)
        return tsr_fail(TSR_ERR_FORMAT, "ONNX model is too large (%zu bytes)", len);
    if (!nesting_ok(&onnx__model_proto__descriptor, buf, len, 0))
        return tsr_fail(TSR_ERR_FORMAT, "ONNX model nests messages deeper than %d levels",
                        TSR_ONNX_MAX_DEPTH);
    Onnx__ModelProto *mp = onnx__model_proto__unpack(NULL, len, buf);
    if (!mp)
        return tsr_fail(TSR_ERR_FORMAT,
                        "not an ONNX model: the protobuf ModelProto does not parse (truncated or "
                        "corrupt)");
    tsr_onnx_model *m = calloc(1, sizeof *m);
    tsr_status st = m ? convert(m, mp) : tsr_fail(TSR_ERR_NOMEM, "out of memory");
    onnx__model_proto__free_unpacked(mp, NULL);
    if (st == TSR_OK) st = validate(m);
    if (st != TSR_OK) {
        tsr_onnx_free(m);
        return st;
    }
    *out = m;
    return TSR_OK;
}

tsr_status tsr_onnx_load(tsr_onnx_model **out, const char *path) {
    *out = NULL;
    uint8_t *buf;
    size_t n;
    TSR_TRY(tsr_read_whole_file(path, TSR_ONNX_MAX_BYTES, "an ONNX model", &buf, &n));
    tsr_status st = tsr_onnx_parse(out, buf, n);
    tsr_free(buf);
    if (st != TSR_OK) return tsr_fail_context(st, "reading '%s': ", path);
    return TSR_OK;
}

/* ---- building ------------------------------------------------------------------- */

tsr_status tsr_onnx_create(tsr_onnx_model **out, int64_t opset, int64_t ir_version) {
    *out = NULL;
    tsr_onnx_model *m = calloc(1, sizeof *m);
    if (!m) return tsr_fail(TSR_ERR_NOMEM, "out of memory");
    m->opset = opset;
    m->ir_version = ir_version;
    m->producer_name = dupstr("");
    m->producer_version = dupstr("");
    m->graph_name = dupstr("graph");
    m->doc_string = dupstr("");
    if (!m->producer_name || !m->producer_version || !m->graph_name || !m->doc_string) {
        tsr_onnx_free(m);
        return tsr_fail(TSR_ERR_NOMEM, "out of memory");
    }
    *out = m;
    return TSR_OK;
}

static tsr_status replace_str(char **dst, const char *src) {
    if (!src) return TSR_OK;
    char *d = dupstr(src);
    if (!d) return tsr_fail(TSR_ERR_NOMEM, "out of memory");
    free(*dst);
    *dst = d;
    return TSR_OK;
}

tsr_status tsr_onnx_set_info(tsr_onnx_model *m, const char *producer, const char *version,
                             const char *graph_name, const char *doc) {
    TSR_TRY(replace_str(&m->producer_name, producer));
    TSR_TRY(replace_str(&m->producer_version, version));
    TSR_TRY(replace_str(&m->graph_name, graph_name));
    return replace_str(&m->doc_string, doc);
}

tsr_status tsr_onnx_add_node(tsr_onnx_model *m, const char *op_type, const char *name, int n_in,
                             const char *const *in, int n_out, const char *const *out) {
    if (n_in < 0 || n_out < 1 || n_in > 4096 || n_out > 4096)
        return tsr_fail(TSR_ERR_INVALID_ARG, "node '%s': bad input/output count", name);
    if (grow((void **)&m->nodes, &m->cap_nodes, m->n_nodes, sizeof *m->nodes) != 0)
        return tsr_fail(TSR_ERR_NOMEM, "out of memory");
    tsr_onnx_node *n = &m->nodes[m->n_nodes++];
    memset(n, 0, sizeof *n);
    n->name = dupstr(name);
    n->op_type = dupstr(op_type);
    n->in = calloc((size_t)(n_in ? n_in : 1), sizeof(char *));
    n->out = calloc((size_t)n_out, sizeof(char *));
    if (!n->name || !n->op_type || !n->in || !n->out)
        return tsr_fail(TSR_ERR_NOMEM, "out of memory");
    for (int k = 0; k < n_in; k++) {
        if (!(n->in[k] = dupstr(in[k]))) return tsr_fail(TSR_ERR_NOMEM, "out of memory");
        n->n_in++;
    }
    for (int k = 0; k < n_out; k++) {
        if (!(n->out[k] = dupstr(out[k]))) return tsr_fail(TSR_ERR_NOMEM, "out of memory");
        n->n_out++;
    }
    return TSR_OK;
}

static tsr_onnx_attr *new_attr(tsr_onnx_model *m, const char *name) {
    TSR_REQUIRE(m->n_nodes > 0, "tsr_onnx_add_attr_*: add a node first");
    tsr_onnx_node *n = &m->nodes[m->n_nodes - 1];
    tsr_onnx_attr *a = realloc(n->attr, (size_t)(n->n_attr + 1) * sizeof *a);
    if (!a) return NULL;
    n->attr = a;
    a = &n->attr[n->n_attr];
    memset(a, 0, sizeof *a);
    a->name = dupstr(name);
    if (!a->name) return NULL;
    n->n_attr++;
    return a;
}

tsr_status tsr_onnx_add_attr_int(tsr_onnx_model *m, const char *name, int64_t v) {
    tsr_onnx_attr *a = new_attr(m, name);
    if (!a) return tsr_fail(TSR_ERR_NOMEM, "out of memory");
    a->type = TSR_ONNX_ATTR_INT;
    a->i = v;
    return TSR_OK;
}

tsr_status tsr_onnx_add_attr_float(tsr_onnx_model *m, const char *name, float v) {
    tsr_onnx_attr *a = new_attr(m, name);
    if (!a) return tsr_fail(TSR_ERR_NOMEM, "out of memory");
    a->type = TSR_ONNX_ATTR_FLOAT;
    a->f = v;
    return TSR_OK;
}

tsr_status tsr_onnx_add_attr_ints(tsr_onnx_model *m, const char *name, const int64_t *v, size_t n) {
    tsr_onnx_attr *a = new_attr(m, name);
    if (!a) return tsr_fail(TSR_ERR_NOMEM, "out of memory");
    a->type = TSR_ONNX_ATTR_INTS;
    a->ints = malloc((n ? n : 1) * sizeof *a->ints);
    if (!a->ints) return tsr_fail(TSR_ERR_NOMEM, "out of memory");
    if (n) memcpy(a->ints, v, n * sizeof *v);
    a->n = n;
    return TSR_OK;
}

static tsr_status add_init_any(tsr_onnx_model *m, const char *name, int ndims, const int64_t *dims,
                               const float *f, const int64_t *i) {
    if (ndims < 0 || ndims > TSR_ONNX_MAX_DIMS)
        return tsr_fail(TSR_ERR_INVALID_ARG, "initializer '%s': bad rank %d", name, ndims);
    if (grow((void **)&m->inits, &m->cap_inits, m->n_inits, sizeof *m->inits) != 0)
        return tsr_fail(TSR_ERR_NOMEM, "out of memory");
    tsr_onnx_tensor *t = &m->inits[m->n_inits];
    memset(t, 0, sizeof *t);
    size_t n = 1;
    for (int k = 0; k < ndims; k++) {
        if (dims[k] < 0)
            return tsr_fail(TSR_ERR_INVALID_ARG, "initializer '%s': negative dim", name);
        t->dims[k] = dims[k];
        n *= (size_t)dims[k];
    }
    t->ndims = ndims;
    t->numel = n;
    t->dtype = f ? TSR_ONNX_FLOAT : TSR_ONNX_INT64;
    t->name = dupstr(name);
    if (f) {
        t->f = tsr_calloc_array(n ? n : 1, sizeof(float));
        if (t->f && n) memcpy(t->f, f, n * sizeof *f);
    } else {
        t->i = tsr_calloc_array(n ? n : 1, sizeof(int64_t));
        if (t->i && n) memcpy(t->i, i, n * sizeof *i);
    }
    m->n_inits++;
    if (!t->name || (f ? !t->f : !t->i)) return tsr_fail(TSR_ERR_NOMEM, "out of memory");
    return TSR_OK;
}

tsr_status tsr_onnx_add_init(tsr_onnx_model *m, const char *name, int ndims, const int64_t *dims,
                             const float *data) {
    TSR_REQUIRE(data, "tsr_onnx_add_init: data is NULL");
    return add_init_any(m, name, ndims, dims, data, NULL);
}

tsr_status tsr_onnx_add_init_i64(tsr_onnx_model *m, const char *name, int ndims,
                                 const int64_t *dims, const int64_t *data) {
    TSR_REQUIRE(data, "tsr_onnx_add_init_i64: data is NULL");
    return add_init_any(m, name, ndims, dims, NULL, data);
}

tsr_status tsr_onnx_add_io(tsr_onnx_model *m, int output, const char *name, int ndims,
                           const int64_t *dims, const char *const *dim_param) {
    if (ndims < 0 || ndims > TSR_ONNX_MAX_DIMS)
        return tsr_fail(TSR_ERR_INVALID_ARG, "value '%s': bad rank %d", name, ndims);
    tsr_onnx_value **arr = output ? &m->outputs : &m->inputs;
    int *cnt = output ? &m->n_outputs : &m->n_inputs,
        *cap = output ? &m->cap_outputs : &m->cap_inputs;
    if (grow((void **)arr, cap, *cnt, sizeof **arr) != 0)
        return tsr_fail(TSR_ERR_NOMEM, "out of memory");
    tsr_onnx_value *v = &(*arr)[(*cnt)++];
    memset(v, 0, sizeof *v);
    v->name = dupstr(name);
    v->elem_type = TSR_ONNX_FLOAT;
    v->ndims = ndims;
    for (int k = 0; k < ndims; k++) {
        v->dims[k] = dims[k] >= 0 ? dims[k] : -1;
        if (dims[k] < 0 && dim_param && dim_param[k]) {
            v->dim_param[k] = dupstr(dim_param[k]);
            if (!v->dim_param[k]) return tsr_fail(TSR_ERR_NOMEM, "out of memory");
        }
    }
    if (!v->name) return tsr_fail(TSR_ERR_NOMEM, "out of memory");
    return TSR_OK;
}

tsr_status tsr_onnx_set_meta(tsr_onnx_model *m, const char *key, const char *value) {
    for (int i = 0; i < m->n_meta; i++)
        if (strcmp(m->meta_key[i], key) == 0) return replace_str(&m->meta_value[i], value);
    if (grow((void **)&m->meta_key, &m->cap_meta, m->n_meta, sizeof(char *)) != 0)
        return tsr_fail(TSR_ERR_NOMEM, "out of memory");
    char **vals = realloc(m->meta_value, (size_t)m->cap_meta * sizeof(char *));
    if (!vals) return tsr_fail(TSR_ERR_NOMEM, "out of memory");
    m->meta_value = vals;
    char *k = dupstr(key), *v = dupstr(value);
    if (!k || !v) {
        free(k);
        free(v);
        return tsr_fail(TSR_ERR_NOMEM, "out of memory");
    }
    m->meta_key[m->n_meta] = k;
    m->meta_value[m->n_meta] = v;
    m->n_meta++;
    return TSR_OK;
}

/* ---- writing --------------------------------------------------------------------- */

/* All the protobuf structs of one serialisation live in one arena freed at the end. */
typedef struct arena {
    void **ptr;
    size_t n, cap;
    int failed;
} arena;

static void *arena_calloc(arena *a, size_t n, size_t sz) {
    if (a->failed) return NULL;
    if (a->n == a->cap) {
        size_t c = a->cap ? 2 * a->cap : 256;
        void **p = realloc(a->ptr, c * sizeof *p);
        if (!p) {
            a->failed = 1;
            return NULL;
        }
        a->ptr = p;
        a->cap = c;
    }
    void *q = calloc(n ? n : 1, sz);
    if (!q) {
        a->failed = 1;
        return NULL;
    }
    a->ptr[a->n++] = q;
    return q;
}

static void arena_free(arena *a) {
    for (size_t i = 0; i < a->n; i++) free(a->ptr[i]);
    free(a->ptr);
}

static Onnx__TensorProto *pb_tensor(arena *a, const tsr_onnx_tensor *t) {
    Onnx__TensorProto *tp = arena_calloc(a, 1, sizeof *tp);
    if (!tp) return NULL;
    onnx__tensor_proto__init(tp);
    tp->name = t->name;
    tp->has_data_type = 1;
    tp->data_type = t->dtype;
    tp->n_dims = (size_t)t->ndims;
    tp->dims = arena_calloc(a, (size_t)t->ndims, sizeof(int64_t));
    if (!tp->dims) return NULL;
    for (int k = 0; k < t->ndims; k++) tp->dims[k] = t->dims[k];
    size_t esz = t->dtype == TSR_ONNX_FLOAT ? 4 : 8, n = t->numel * esz;
    uint8_t *raw = arena_calloc(a, n, 1);
    if (!raw) return NULL;
    for (size_t k = 0; k < t->numel; k++) {
        uint64_t u;
        if (t->dtype == TSR_ONNX_FLOAT) {
            uint32_t w;
            memcpy(&w, &t->f[k], 4);
            u = w;
        } else {
            u = (uint64_t)t->i[k];
        }
        for (size_t b = 0; b < esz; b++) raw[k * esz + b] = (uint8_t)(u >> (8 * b));
    }
    tp->has_raw_data = 1;
    tp->raw_data.len = n;
    tp->raw_data.data = raw;
    return tp;
}

static Onnx__ValueInfoProto *pb_value(arena *a, const tsr_onnx_value *v) {
    Onnx__ValueInfoProto *vp = arena_calloc(a, 1, sizeof *vp);
    Onnx__TypeProto *tp = arena_calloc(a, 1, sizeof *tp);
    Onnx__TypeProto__Tensor *tt = arena_calloc(a, 1, sizeof *tt);
    if (!vp || !tp || !tt) return NULL;
    onnx__value_info_proto__init(vp);
    onnx__type_proto__init(tp);
    onnx__type_proto__tensor__init(tt);
    vp->name = v->name;
    vp->type = tp;
    tp->value_case = ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE;
    tp->tensor_type = tt;
    tt->has_elem_type = 1;
    tt->elem_type = v->elem_type;
    if (v->ndims >= 0) {
        Onnx__TensorShapeProto *sp = arena_calloc(a, 1, sizeof *sp);
        Onnx__TensorShapeProto__Dimension **dims = arena_calloc(a, (size_t)v->ndims, sizeof *dims);
        if (!sp || !dims) return NULL;
        onnx__tensor_shape_proto__init(sp);
        sp->n_dim = (size_t)v->ndims;
        sp->dim = dims;
        for (int k = 0; k < v->ndims; k++) {
            dims[k] = arena_calloc(a, 1, sizeof **dims);
            if (!dims[k]) return NULL;
            onnx__tensor_shape_proto__dimension__init(dims[k]);
            if (v->dims[k] >= 0) {
                dims[k]->value_case = ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE;
                dims[k]->dim_value = v->dims[k];
            } else if (v->dim_param[k]) {
                dims[k]->value_case = ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_PARAM;
                dims[k]->dim_param = v->dim_param[k];
            }
        }
        tt->shape = sp;
    }
    return vp;
}

static Onnx__AttributeProto *pb_attr(arena *a, const tsr_onnx_attr *at) {
    Onnx__AttributeProto *ap = arena_calloc(a, 1, sizeof *ap);
    if (!ap) return NULL;
    onnx__attribute_proto__init(ap);
    ap->name = at->name;
    ap->has_type = 1;
    ap->type = (Onnx__AttributeProto__AttributeType)at->type;
    switch (at->type) {
    case TSR_ONNX_ATTR_FLOAT:
        ap->has_f = 1;
        ap->f = at->f;
        break;
    case TSR_ONNX_ATTR_INT:
        ap->has_i = 1;
        ap->i = at->i;
        break;
    case TSR_ONNX_ATTR_STRING:
        ap->has_s = 1;
        ap->s.len = strlen(at->s);
        ap->s.data = (uint8_t *)at->s;
        break;
    case TSR_ONNX_ATTR_TENSOR:
        if (!(ap->t = pb_tensor(a, at->t))) return NULL;
        break;
    case TSR_ONNX_ATTR_FLOATS:
        ap->n_floats = at->n;
        ap->floats = at->floats;
        break;
    case TSR_ONNX_ATTR_INTS:
        ap->n_ints = at->n;
        ap->ints = at->ints;
        break;
    case TSR_ONNX_ATTR_STRINGS: {
        ap->n_strings = at->n;
        ap->strings = arena_calloc(a, at->n, sizeof *ap->strings);
        if (!ap->strings) return NULL;
        for (size_t k = 0; k < at->n; k++) {
            ap->strings[k].len = strlen(at->strings[k]);
            ap->strings[k].data = (uint8_t *)at->strings[k];
        }
        break;
    }
    }
    return ap;
}

tsr_status tsr_onnx_serialize(const tsr_onnx_model *m, uint8_t **buf, size_t *len) {
    *buf = NULL;
    *len = 0;
    TSR_TRY(validate(m));
    arena a = { 0 };
    Onnx__ModelProto mp;
    Onnx__GraphProto g;
    Onnx__OperatorSetIdProto ops;
    Onnx__OperatorSetIdProto *opsp = &ops;
    onnx__model_proto__init(&mp);
    onnx__graph_proto__init(&g);
    onnx__operator_set_id_proto__init(&ops);
    ops.domain = "";
    ops.has_version = 1;
    ops.version = m->opset;
    mp.has_ir_version = 1;
    mp.ir_version = m->ir_version;
    mp.n_opset_import = 1;
    mp.opset_import = &opsp;
    mp.producer_name = m->producer_name;
    mp.producer_version = m->producer_version;
    mp.doc_string = m->doc_string;
    mp.graph = &g;
    g.name = m->graph_name;
    g.n_node = (size_t)m->n_nodes;
    g.node = arena_calloc(&a, g.n_node, sizeof *g.node);
    g.n_initializer = (size_t)m->n_inits;
    g.initializer = arena_calloc(&a, g.n_initializer, sizeof *g.initializer);
    g.n_input = (size_t)m->n_inputs;
    g.input = arena_calloc(&a, g.n_input, sizeof *g.input);
    g.n_output = (size_t)m->n_outputs;
    g.output = arena_calloc(&a, g.n_output, sizeof *g.output);
    mp.n_metadata_props = (size_t)m->n_meta;
    mp.metadata_props = arena_calloc(&a, mp.n_metadata_props, sizeof *mp.metadata_props);
    if (a.failed) goto nomem;
    for (int i = 0; i < m->n_nodes; i++) {
        const tsr_onnx_node *n = &m->nodes[i];
        Onnx__NodeProto *np = arena_calloc(&a, 1, sizeof *np);
        if (!np) goto nomem;
        onnx__node_proto__init(np);
        np->name = n->name;
        np->op_type = n->op_type;
        np->n_input = (size_t)n->n_in;
        np->input = n->in;
        np->n_output = (size_t)n->n_out;
        np->output = n->out;
        np->n_attribute = (size_t)n->n_attr;
        np->attribute = arena_calloc(&a, (size_t)n->n_attr, sizeof *np->attribute);
        if (!np->attribute) goto nomem;
        for (int k = 0; k < n->n_attr; k++)
            if (!(np->attribute[k] = pb_attr(&a, &n->attr[k]))) goto nomem;
        g.node[i] = np;
    }
    for (int i = 0; i < m->n_inits; i++)
        if (!(g.initializer[i] = pb_tensor(&a, &m->inits[i]))) goto nomem;
    for (int i = 0; i < m->n_inputs; i++)
        if (!(g.input[i] = pb_value(&a, &m->inputs[i]))) goto nomem;
    for (int i = 0; i < m->n_outputs; i++)
        if (!(g.output[i] = pb_value(&a, &m->outputs[i]))) goto nomem;
    for (int i = 0; i < m->n_meta; i++) {
        Onnx__StringStringEntryProto *e = arena_calloc(&a, 1, sizeof *e);
        if (!e) goto nomem;
        onnx__string_string_entry_proto__init(e);
        e->key = m->meta_key[i];
        e->value = m->meta_value[i];
        mp.metadata_props[i] = e;
    }
    size_t n = onnx__model_proto__get_packed_size(&mp);
    if (n > TSR_ONNX_MAX_BYTES) {
        arena_free(&a);
        return tsr_fail(TSR_ERR_INVALID_ARG, "model would be %zu bytes: too large", n);
    }
    uint8_t *out = tsr_alloc(n ? n : 1);
    if (!out) goto nomem;
    size_t w = onnx__model_proto__pack(&mp, out);
    arena_free(&a);
    if (w != n) {
        tsr_free(out);
        return tsr_fail(TSR_ERR_INTERNAL, "protobuf packing wrote %zu of %zu bytes", w, n);
    }
    *buf = out;
    *len = n;
    return TSR_OK;
nomem:
    arena_free(&a);
    return tsr_fail(TSR_ERR_NOMEM, "out of memory serialising the model");
}

tsr_status tsr_onnx_save(const tsr_onnx_model *m, const char *path) {
    uint8_t *buf;
    size_t len;
    TSR_TRY(tsr_onnx_serialize(m, &buf, &len));
    tsr_writer w;
    tsr_status st = tsr_writer_open_file(&w, path, 0);
    if (st == TSR_OK) {
        tsr_write_bytes(&w, buf, len);
        st = tsr_writer_close(&w);
    }
    tsr_free(buf);
    if (st != TSR_OK) return tsr_fail_context(st, "writing '%s': ", path);
    return TSR_OK;
}
