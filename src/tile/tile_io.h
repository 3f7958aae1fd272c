/*
 * tile/tile_io.h - the one wire form of a tile-tensor shape, for every file that records one
 * (tile tensors, tile/tile_io.c; inference plans, nn/plan.c), over core/io.h's checked readers
 * and writers:
 *   u8 ndims (1..TSR_TILE_MAX_DIMS), then per dimension: u64 size, u64 tile,
 *   u8 flags (1 = '*' duplicated, 2 = '?' unknown, 4 = '~' interleaved; other bits zero)
 */
#ifndef TSR_TILE_IO_H
#define TSR_TILE_IO_H

#include "tessera/tile.h"
#include "core/io.h"

/** Bytes of a shape of nd dimensions in the wire form. */
#define TILE_SHAPE_BYTES(nd) (1 + 17 * (uint64_t)(nd))

/** Write s (errors are sticky in w). */
void tile_shape_write(tsr_writer *w, const tsr_tile_shape *s);

/**
 * Read a shape into *s. Refuses, as TSR_ERR_FORMAT "malformed <r's what>: ...", a dimension
 * count outside 1..TSR_TILE_MAX_DIMS, a size outside 1..max_size, a tile outside 1..2^30 and
 * unknown flag bits. The caller checks the shape against its slot count
 * (tsr_tile_shape_validate).
 */
tsr_status tile_shape_read(tsr_reader *r, tsr_tile_shape *s, uint64_t max_size);

#endif /* TSR_TILE_IO_H */
