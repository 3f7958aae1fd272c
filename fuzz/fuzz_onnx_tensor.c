/*
 * fuzz/fuzz_onnx_tensor.c - libFuzzer target for the standalone TensorProto
 * reader (the node tests' input_N.pb / output_N.pb): any bytes give a
 * status, never a crash; a tensor that parses is internally consistent.
 */
#include "onnx/onnx_graph.h"

#include <stddef.h>
#include <stdint.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    tsr_onnx_data *d;
    if (tsr_onnx_data_parse(&d, data, size) != TSR_OK) return 0;
    if (!d->a || tsr_dims_numel(d->a->rank, d->a->dims) != (int64_t)d->a->numel) __builtin_trap();
    double s = 0;
    for (size_t i = 0; i < d->a->numel; i++) s += d->a->data[i];
    if (d->i)
        for (size_t i = 0; i < d->a->numel; i++)
            if ((double)d->i[i] != d->a->data[i]) __builtin_trap();
    (void)s;
    tsr_onnx_data_free(d);
    return 0;
}
