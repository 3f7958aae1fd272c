/*
 * onnx/onnx_tensor.c - validated reader of standalone TensorProto files
 * (the ONNX backend tests' input_N.pb / output_N.pb): element types FLOAT,
 * DOUBLE, the integer types (UINT64 below 2^63) and BOOL, dims checked before anything is
 * allocated, data in exactly one field of the right size, no external or
 * segmented data. Values become doubles; integer types keep their exact
 * int64 values too (shape operands such as Slice's INT64_MAX ends).
 */
#include "onnx/onnx_graph.h"

#include "core/alloc.h"
#include "core/error.h"
#include "core/io.h"
#include "onnx.pb-c.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

void tsr_onnx_data_free(tsr_onnx_data *d) {
    if (!d) return;
    free(d->name);
    tsr_array_free(d->a);
    tsr_free(d->i);
    free(d);
}

/* Bytes per element in raw_data, 0 for unsupported types. */
static size_t elem_size(int32_t t) {
    switch (t) {
    case TSR_ONNX_FLOAT:
        return 4;
    case TSR_ONNX_DOUBLE:
        return 8;
    case TSR_ONNX_INT64:
    case TSR_ONNX_UINT64:
        return 8;
    case TSR_ONNX_INT32:
    case TSR_ONNX_UINT32:
        return 4;
    case TSR_ONNX_INT16:
    case TSR_ONNX_UINT16:
        return 2;
    case TSR_ONNX_INT8:
    case TSR_ONNX_UINT8:
    case TSR_ONNX_BOOL:
        return 1;
    default:
        return 0;
    }
}

static int is_int_type(int32_t t) {
    return t != TSR_ONNX_FLOAT && t != TSR_ONNX_DOUBLE;
}

static uint64_t rd_le(const uint8_t *p, size_t n) {
    uint64_t v = 0;
    for (size_t k = 0; k < n; k++) v |= (uint64_t)p[k] << (8 * k);
    return v;
}

/* Element k of the raw bytes as an int64 (sign-extended for signed types). */
static int64_t raw_int(int32_t t, const uint8_t *p) {
    switch (t) {
    case TSR_ONNX_INT64:
    case TSR_ONNX_UINT64:
        return (int64_t)rd_le(p, 8); /* UINT64 range checked by the caller */
    case TSR_ONNX_UINT32:
        return (int64_t)rd_le(p, 4);
    case TSR_ONNX_INT32:
        return (int32_t)(uint32_t)rd_le(p, 4);
    case TSR_ONNX_INT16:
        return (int16_t)(uint16_t)rd_le(p, 2);
    case TSR_ONNX_UINT16:
        return (int64_t)rd_le(p, 2);
    case TSR_ONNX_INT8:
        return (int8_t)p[0];
    default:
        return p[0]; /* UINT8, BOOL */
    }
}

static tsr_status convert(tsr_onnx_data *d, const Onnx__TensorProto *tp) {
    d->name = strdup(tp->name ? tp->name : "");
    if (!d->name) return tsr_fail(TSR_ERR_NOMEM, "out of memory");
    if (tp->segment) return tsr_fail(TSR_ERR_UNSUPPORTED, "the tensor is segmented: not supported");
    if (tp->n_external_data ||
        (tp->has_data_location && tp->data_location == ONNX__TENSOR_PROTO__DATA_LOCATION__EXTERNAL))
        return tsr_fail(TSR_ERR_UNSUPPORTED, "the tensor uses external data: not supported");
    if (!tp->has_data_type) return tsr_fail(TSR_ERR_FORMAT, "the tensor has no data type");
    d->dtype = tp->data_type;
    size_t esz = elem_size(d->dtype);
    if (!esz)
        return tsr_fail(TSR_ERR_UNSUPPORTED,
                        "tensor data type %d is not supported (FLOAT, DOUBLE, the integer types "
                        "up to 64 bits and BOOL are)",
                        (int)d->dtype);
    if (tp->n_dims > TSR_ARRAY_MAX_RANK)
        return tsr_fail(TSR_ERR_UNSUPPORTED, "the tensor has %zu dimensions (at most %d)",
                        tp->n_dims, TSR_ARRAY_MAX_RANK);
    int64_t dims[TSR_ARRAY_MAX_RANK];
    for (size_t k = 0; k < tp->n_dims; k++) {
        dims[k] = tp->dims[k];
        if (dims[k] < 0)
            return tsr_fail(TSR_ERR_FORMAT, "the tensor has a negative dimension %lld",
                            (long long)dims[k]);
    }
    int64_t n = tsr_dims_numel((int)tp->n_dims, dims);
    if (n < 0 || n > TSR_ONNX_MAX_NUMEL)
        return tsr_fail(TSR_ERR_FORMAT, "the tensor is too large (over %lld elements)",
                        (long long)TSR_ONNX_MAX_NUMEL);
    /* Which field holds the data, and its size, before allocating anything. */
    int has_raw = tp->has_raw_data && tp->raw_data.len > 0;
    size_t typed, nfields = 0;
    switch (d->dtype) {
    case TSR_ONNX_FLOAT:
        typed = tp->n_float_data;
        break;
    case TSR_ONNX_DOUBLE:
        typed = tp->n_double_data;
        break;
    case TSR_ONNX_INT64:
        typed = tp->n_int64_data;
        break;
    case TSR_ONNX_UINT32:
    case TSR_ONNX_UINT64:
        typed = tp->n_uint64_data;
        break;
    default:
        typed = tp->n_int32_data;
        break;
    }
    nfields = (tp->n_float_data > 0) + (tp->n_double_data > 0) + (tp->n_int64_data > 0) +
              (tp->n_int32_data > 0) + (tp->n_string_data > 0) + (tp->n_uint64_data > 0);
    if (nfields > 1 || (nfields == 1 && !typed))
        return tsr_fail(TSR_ERR_FORMAT, "the tensor stores data in a field of another type");
    if (has_raw && typed) return tsr_fail(TSR_ERR_FORMAT, "the tensor has raw_data and typed data");
    size_t have = has_raw ? tp->raw_data.len : typed;
    size_t want = has_raw ? (size_t)n * esz : (size_t)n;
    if (have != want)
        return tsr_fail(TSR_ERR_FORMAT, "dims say %lld elements but the data has %zu %s",
                        (long long)n, have, has_raw ? "bytes" : "values");
    TSR_TRY(tsr_array_create(&d->a, (int)tp->n_dims, dims));
    if (is_int_type(d->dtype) && n > 0) {
        d->i = tsr_calloc_array((size_t)n, sizeof *d->i);
        if (!d->i) return tsr_fail(TSR_ERR_NOMEM, "out of memory");
    }
    for (int64_t k = 0; k < n; k++) {
        const uint8_t *p = has_raw ? tp->raw_data.data + (size_t)k * esz : NULL;
        double v;
        if (d->dtype == TSR_ONNX_FLOAT) {
            float f;
            if (p) {
                uint32_t u = (uint32_t)rd_le(p, 4);
                memcpy(&f, &u, 4);
            } else {
                f = tp->float_data[k];
            }
            v = f;
        } else if (d->dtype == TSR_ONNX_DOUBLE) {
            if (p) {
                uint64_t u = rd_le(p, 8);
                memcpy(&v, &u, 8);
            } else {
                v = tp->double_data[k];
            }
        } else {
            int64_t iv;
            if (p)
                iv = raw_int(d->dtype, p);
            else if (d->dtype == TSR_ONNX_INT64)
                iv = tp->int64_data[k];
            else if (d->dtype == TSR_ONNX_UINT32 || d->dtype == TSR_ONNX_UINT64)
                iv = (int64_t)tp->uint64_data[k];
            else
                iv = tp->int32_data[k];
            if ((d->dtype == TSR_ONNX_UINT64 && iv < 0) ||
                (d->dtype == TSR_ONNX_UINT32 && (iv < 0 || iv > (int64_t)UINT32_MAX)))
                return tsr_fail(TSR_ERR_UNSUPPORTED, "unsigned value at %lld is out of range",
                                (long long)k);
            d->i[k] = iv;
            v = (double)iv;
        }
        d->a->data[k] = v;
    }
    return TSR_OK;
}

tsr_status tsr_onnx_data_parse(tsr_onnx_data **out, const uint8_t *buf, size_t len) {
    TSR_REQUIRE(out != NULL, "tsr_onnx_data_parse: out is NULL");
    *out = NULL;
    if (!buf && len) return tsr_fail(TSR_ERR_INVALID_ARG, "tensor buffer is NULL");
    if (len > TSR_ONNX_MAX_BYTES)
        return tsr_fail(TSR_ERR_FORMAT, "tensor file is too large (%zu bytes)", len);
    /* TensorProto nests only Segment and StringStringEntryProto: protobuf-c's recursion is
       bounded by the schema, so no nesting check is needed here. */
    Onnx__TensorProto *tp = onnx__tensor_proto__unpack(NULL, len, buf);
    if (!tp)
        return tsr_fail(TSR_ERR_FORMAT,
                        "not an ONNX tensor: the protobuf TensorProto does not parse (truncated "
                        "or corrupt)");
    tsr_onnx_data *d = calloc(1, sizeof *d);
    tsr_status st = d ? convert(d, tp) : tsr_fail(TSR_ERR_NOMEM, "out of memory");
    onnx__tensor_proto__free_unpacked(tp, NULL);
    if (st != TSR_OK) {
        tsr_onnx_data_free(d);
        return st;
    }
    *out = d;
    return TSR_OK;
}

tsr_status tsr_onnx_data_load(tsr_onnx_data **out, const char *path) {
    *out = NULL;
    uint8_t *buf;
    size_t n;
    TSR_TRY(tsr_read_whole_file(path, TSR_ONNX_MAX_BYTES, "an ONNX tensor", &buf, &n));
    tsr_status st = tsr_onnx_data_parse(out, buf, n);
    tsr_free(buf);
    if (st != TSR_OK) return tsr_fail_context(st, "reading '%s': ", path);
    return TSR_OK;
}
