/*
 * fuzz/fuzz_npy.c - libFuzzer target for the .npy reader (train/npy.c):
 * any bytes must give a status, never a crash, an out-of-bounds access or
 * an allocation the input cannot justify.
 */
#include "train/data.h"

#include <math.h>
#include <stddef.h>
#include <stdint.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    tsr_array *a;
    int integral;
    if (tsr_npy_parse(data, size, &a, &integral) == TSR_OK) {
        if (tsr_dims_numel(a->rank, a->dims) != (int64_t)a->numel) __builtin_trap();
        if (a->numel > size) __builtin_trap(); /* at least one byte per element */
        for (size_t i = 0; i < a->numel; i++)
            if (!isfinite(a->data[i])) __builtin_trap();
        tsr_array_free(a);
    }
    return 0;
}
