/*
 * tests/support/idxgen.h - a small gzip IDX file that declares a huge image count (all pixels
 * zero), for the bounded-memory tests of the IDX readers. Made without ever holding the
 * declared data: the deflate stream repeats one fully flushed block of zeros.
 */
#ifndef TSR_IDXGEN_H
#define TSR_IDXGEN_H

#include <stddef.h>
#include <stdint.h>

/**
 * gzip IDX bytes of n images of h x w zero pixels (malloc'ed; free with free). The result is a
 * valid gzip member (CRC and length right), about n*h*w/1000 bytes long.
 */
uint8_t *tt_zero_idx_gz(uint32_t n, uint32_t h, uint32_t w, size_t *len);

#endif /* TSR_IDXGEN_H */
