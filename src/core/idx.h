/*
 * core/idx.h - the IDX file format (MNIST / Fashion-MNIST, raw or
 * gzip-compressed as Debian ships them), read with every byte validated.
 *
 * IDX layout (big-endian): 2 zero bytes, a type byte (0x08 = unsigned byte,
 * the only type supported here), the number of dimensions d, then d 32-bit
 * sizes, then the data in row-major order. Everything is validated: magic,
 * type, 1 <= d <= 4, non-zero sizes, the byte count (no short or trailing
 * data), and for gzip the stream itself (CRC, truncation). Fuzzed by
 * fuzz/fuzz_idx.c.
 */
#ifndef TSR_CORE_IDX_H
#define TSR_CORE_IDX_H

#include "tessera/common.h"

#include <stddef.h>
#include <stdint.h>

#define TSR_IDX_MAX_DIMS  4
#define TSR_IDX_MAX_BYTES ((size_t)1 << 31) /* largest data payload accepted */

typedef struct tsr_idx {
    int ndims;
    uint32_t dims[TSR_IDX_MAX_DIMS]; /* the file's dimensions */
    uint32_t first, rows;            /* data holds rows [first, first + rows) of dimension 0 */
    size_t count;                    /* bytes in data: rows * the product of dims[1..] */
    uint8_t *data;
} tsr_idx;

/**
 * Parse an IDX file image from memory: gzip-compressed (detected from the
 * 1f 8b magic) or raw. On failure returns TSR_ERR_FORMAT (malformed,
 * truncated, trailing data, bad CRC), TSR_ERR_UNSUPPORTED (a valid IDX
 * element type other than unsigned byte) or TSR_ERR_NOMEM, with a message.
 * Free with tsr_idx_free.
 */
tsr_status tsr_idx_parse(tsr_idx *out, const uint8_t *buf, size_t len);
/**
 * As tsr_idx_parse, but keep only rows [first, first + max_rows) of dimension 0 (max_rows 0: up
 * to the end; fewer if the file ends first). The other rows are still validated (gzip: inflated
 * through a small buffer, CRC and length checked) but never stored, so memory is bounded by the
 * compressed input and the rows asked for. first beyond the file's rows is TSR_ERR_INVALID_ARG.
 */
tsr_status tsr_idx_parse_rows(tsr_idx *out, const uint8_t *buf, size_t len, uint32_t first,
                              uint32_t max_rows);
/** Read and parse a file (see tsr_idx_parse); errors name the path. */
tsr_status tsr_idx_read_file(tsr_idx *out, const char *path);
/** Read a file keeping only some rows (see tsr_idx_parse_rows); errors name the path. */
tsr_status tsr_idx_read_file_rows(tsr_idx *out, const char *path, uint32_t first,
                                  uint32_t max_rows);
void tsr_idx_free(tsr_idx *idx);

#endif /* TSR_CORE_IDX_H */
