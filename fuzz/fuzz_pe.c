/*
 * fuzz/fuzz_pe.c - libFuzzer target for the PE reader (attacks/pe.h): any
 * bytes must give a status, never a crash, an out-of-bounds access or an
 * allocation the input cannot justify. A file that parses must compare equal
 * to itself, keep its slack regions inside [SizeOfHeaders, overlay), and
 * still parse and compare equal after its slack is overwritten, bytes are
 * appended and its NSIS CRC and checksum are fixed (the NSIS CRC fix runs on
 * any bytes too). The second detector's features
 * (attacks/features.h) of any bytes are finite and never fail but for memory.
 */
#include "attacks/features.h"
#include "attacks/pe.h"

#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    float feat[TSR_FEAT_DIM];
    tsr_status fs = tsr_pe_features(data, size, feat);
    if (fs != TSR_OK && fs != TSR_ERR_NOMEM) __builtin_trap();
    for (int k = 0; fs == TSR_OK && k < TSR_FEAT_DIM; k++)
        if (!isfinite(feat[k])) __builtin_trap();
    uint8_t *cb = malloc(size ? size : 1); /* the NSIS CRC fix on any bytes: stays in bounds */
    if (cb) {
        memcpy(cb, data, size);
        tsr_nsis_fix_crc(cb, size, 0);
        free(cb);
    }
    tsr_pe pe;
    if (tsr_pe_parse(&pe, data, size) != TSR_OK) {
        tsr_pe_free(&pe);
        return 0;
    }
    if (pe.overlay_off > size || pe.nslack > TSR_PE_MAX_REGIONS) __builtin_trap();
    if (tsr_pe_compare(&pe, data, size, &pe, data, size) != TSR_OK) __builtin_trap();
    uint64_t prev = 0;
    for (uint32_t i = 0; i < pe.nslack; i++) {
        if (pe.slack[i].len == 0 || pe.slack[i].off < prev) __builtin_trap();
        prev = pe.slack[i].off + pe.slack[i].len;
        if (prev > pe.overlay_off) __builtin_trap();
    }
    for (uint32_t i = 0; i < pe.nimports; i++)
        if (pe.imports[i].first + pe.imports[i].count > pe.nfuncs || !pe.imports[i].dll)
            __builtin_trap();
    uint8_t *b = malloc(size + 64);
    if (b) {
        memcpy(b, data, size);
        for (uint32_t i = 0; i < pe.nslack; i++) memset(b + pe.slack[i].off, 0xa5, pe.slack[i].len);
        memset(b + size, 0x5a, 64);
        tsr_nsis_fix_crc(b, size + 64, pe.overlay_off);
        tsr_pe_fix_checksum(&pe, b, size + 64);
        tsr_pe other;
        if (tsr_pe_parse(&other, b, size + 64) != TSR_OK) __builtin_trap();
        if (tsr_pe_compare(&pe, data, size, &other, b, size + 64) != TSR_OK) __builtin_trap();
        tsr_pe_free(&other);
        free(b);
    }
    tsr_pe_free(&pe);
    return 0;
}
