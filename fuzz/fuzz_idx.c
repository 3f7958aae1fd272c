/*
 * fuzz/fuzz_idx.c - libFuzzer target for the IDX reader (raw and gzip):
 * any bytes must give a status, never a crash, an out-of-bounds access or
 * an allocation the input cannot justify.
 */
#include "core/idx.h"

#include <stddef.h>
#include <stdint.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    tsr_idx idx;
    if (tsr_idx_parse(&idx, data, size) == TSR_OK) {
        size_t n = 1;
        for (int i = 0; i < idx.ndims; i++) n *= idx.dims[i];
        if (n != idx.count) __builtin_trap();
        volatile uint8_t sink = 0;
        for (size_t i = 0; i < idx.count; i++) sink ^= idx.data[i]; /* every byte readable */
        (void)sink;
        /* A row range of the same bytes parses too and holds exactly those rows. */
        tsr_idx part;
        uint32_t first = idx.dims[0] / 2, rows = 1 + (uint32_t)(size & 3);
        if (tsr_idx_parse_rows(&part, data, size, first, rows) != TSR_OK) __builtin_trap();
        size_t row = idx.count / idx.dims[0];
        if (part.first != first || part.rows > rows || part.rows < 1 ||
            part.count != part.rows * row ||
            memcmp(part.data, idx.data + (size_t)first * row, part.count) != 0)
            __builtin_trap();
        tsr_idx_free(&part);
        tsr_idx_free(&idx);
    }
    return 0;
}
