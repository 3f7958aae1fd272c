/*
 * tile/tile_io.c - tile tensors in files: one TSR_OBJ_TILE_TENSOR frame
 * (core/io.h) whose payload is the shape, level and scale followed by one
 * blob per tile written by the backend (a whole ckks ciphertext frame, or
 * the mockup's doubles). The frame's fingerprint is the backend's parameter
 * fingerprint. Every field is validated on reading.
 *
 * Payload (little-endian):
 *   u32 tile format version (1)
 *   u8  backend kind (1 mockup, 2 ckks)
 *   u8  encrypted (1) or encoded plaintexts (0)
 *   shape (tile/tile_io.h: u8 ndims, then per dimension u64 size, u64 tile,
 *       u8 flags)
 *   u64 slots
 *   u32 level
 *   f64 scale
 *   u64 ntiles (= the shape's tile count)
 *   ntiles x { u64 length, length bytes }
 */
#include "tile/tile_io.h"
#include "tile/tile_internal.h"

#include "core/alloc.h"
#include "core/error.h"
#include "core/io.h"

#include <math.h>
#include <string.h>

#define TILE_FORMAT_VERSION 1
#define MAX_TILES           ((uint64_t)1 << 20)
#define MAX_PAYLOAD         ((uint64_t)1 << 46)
#define MAX_DIM_SIZE        ((uint64_t)1 << 40)
#define MAX_DIM_TILE        ((uint64_t)1 << 30)

void tile_shape_write(tsr_writer *w, const tsr_tile_shape *s) {
    tsr_write_u8(w, (uint8_t)s->ndims);
    for (int i = 0; i < s->ndims; i++) {
        const tsr_tile_dim *d = &s->dim[i];
        tsr_write_u64(w, (uint64_t)d->size);
        tsr_write_u64(w, (uint64_t)d->tile);
        tsr_write_u8(w,
                     (uint8_t)((d->dup ? 1 : 0) | (d->unknown ? 2 : 0) | (d->interleaved ? 4 : 0)));
    }
}

tsr_status tile_shape_read(tsr_reader *r, tsr_tile_shape *s, uint64_t max_size) {
    memset(s, 0, sizeof *s);
    uint8_t nd = tsr_read_u8(r);
    TSR_TRY(tsr_reader_status(r));
    if (nd < 1 || nd > TSR_TILE_MAX_DIMS)
        return tsr_reader_fail(r, TSR_ERR_FORMAT,
                               "malformed %s: a shape of %u dimensions (1 to %d allowed)", r->what,
                               nd, TSR_TILE_MAX_DIMS);
    s->ndims = nd;
    for (int i = 0; i < nd; i++) {
        uint64_t size = tsr_read_u64(r), tile = tsr_read_u64(r);
        uint8_t fl = tsr_read_u8(r);
        TSR_TRY(tsr_reader_status(r));
        if (size == 0 || size > max_size || tile == 0 || tile > MAX_DIM_TILE || (fl & ~7u))
            return tsr_reader_fail(r, TSR_ERR_FORMAT,
                                   "malformed %s: shape dimension %d has size %llu, tile %llu, "
                                   "flags 0x%x",
                                   r->what, i, (unsigned long long)size, (unsigned long long)tile,
                                   fl);
        s->dim[i].size = (int64_t)size;
        s->dim[i].tile = (int64_t)tile;
        s->dim[i].dup = fl & 1;
        s->dim[i].unknown = (fl >> 1) & 1;
        s->dim[i].interleaved = (fl >> 2) & 1;
    }
    return TSR_OK;
}

static tsr_status can_save(const tsr_backend *be) {
    if (!be->vt->file_kind || !be->vt->write_vec || !be->vt->read_vec)
        return tsr_fail(TSR_ERR_UNSUPPORTED, "tile tensors of the %s backend cannot be saved",
                        be->vt->name);
    return TSR_OK;
}

static tsr_status write_tile(const tsr_tile *t, tsr_writer *w) {
    tsr_backend *be = t->be;
    TSR_TRY(can_save(be));
    if (tsr_tile_num_encoded(t) != t->ntiles)
        return tsr_fail(TSR_ERR_UNSUPPORTED,
                        "this plaintext tile tensor has all-zero tiles, which are not encoded; "
                        "files hold every tile (encode the weights again where they are used)");
    const tsr_tile_shape *s = &t->shape;
    uint64_t len = 4 + 1 + 1 + TILE_SHAPE_BYTES(s->ndims) + 8 + 4 + 8 + 8;
    for (int64_t i = 0; i < t->ntiles; i++) len += 8 + be->vt->vec_size(be, t->v[i]);
    uint8_t fp[TSR_FINGERPRINT_SIZE];
    tsr_backend_fingerprint(be, fp);
    tsr_frame_begin_write(w, TSR_OBJ_TILE_TENSOR, 0, fp, len);
    tsr_write_u32(w, TILE_FORMAT_VERSION);
    tsr_write_u8(w, be->vt->file_kind);
    tsr_write_u8(w, (uint8_t)(t->encrypted ? 1 : 0));
    tile_shape_write(w, s);
    tsr_write_u64(w, (uint64_t)be->slots);
    tsr_write_u32(w, (uint32_t)tsr_tile_level(t));
    tsr_write_f64(w, tsr_tile_scale(t));
    tsr_write_u64(w, (uint64_t)t->ntiles);
    for (int64_t i = 0; i < t->ntiles; i++) {
        tsr_write_u64(w, be->vt->vec_size(be, t->v[i]));
        TSR_TRY(be->vt->write_vec(be, t->v[i], w));
    }
    return tsr_frame_end_write(w);
}

static tsr_status read_tile(tsr_backend *be, tsr_reader *r, tsr_tile **out) {
    *out = NULL;
    TSR_TRY(can_save(be));
    tsr_reader_set_what(r, "tile tensor");
    tsr_frame_info info;
    TSR_TRY(tsr_frame_begin_read(r, TSR_OBJ_TILE_TENSOR, MAX_PAYLOAD, &info));
    uint8_t fp[TSR_FINGERPRINT_SIZE];
    tsr_backend_fingerprint(be, fp);
    if (memcmp(fp, info.fingerprint, sizeof fp) != 0)
        return tsr_reader_fail(r, TSR_ERR_MISMATCH,
                               "the tile tensor was written for other parameters than this %s "
                               "backend's",
                               be->vt->name);
    uint32_t version = tsr_read_u32(r);
    uint8_t kind = tsr_read_u8(r), enc = tsr_read_u8(r);
    if (tsr_reader_status(r) != TSR_OK) return tsr_reader_status(r);
    if (version != TILE_FORMAT_VERSION)
        return tsr_reader_fail(r, TSR_ERR_VERSION,
                               "tile tensor format version %u is not supported (this build reads "
                               "version %d)",
                               version, TILE_FORMAT_VERSION);
    if (kind != be->vt->file_kind)
        return tsr_reader_fail(r, TSR_ERR_MISMATCH,
                               "the tile tensor was written by another kind of backend (%u) than "
                               "%s",
                               kind, be->vt->name);
    if (enc > 1)
        return tsr_reader_fail(r, TSR_ERR_FORMAT, "malformed tile tensor: encrypted flag %u", enc);
    tsr_tile_shape s;
    TSR_TRY(tile_shape_read(r, &s, MAX_DIM_SIZE));
    const int nd = s.ndims;
    uint64_t slots = tsr_read_u64(r);
    uint32_t level = tsr_read_u32(r);
    double scale = tsr_read_f64(r);
    uint64_t ntiles = tsr_read_u64(r);
    if (tsr_reader_status(r) != TSR_OK) return tsr_reader_status(r);
    if (slots != (uint64_t)be->slots)
        return tsr_reader_fail(r, TSR_ERR_MISMATCH,
                               "the tile tensor has %llu slots per tile, the backend %lld",
                               (unsigned long long)slots, (long long)be->slots);
    if (tsr_tile_shape_validate(&s, be->slots) != TSR_OK) {
        char msg[600];
        snprintf(msg, sizeof msg, "%s", tsr_last_error());
        return tsr_reader_fail(r, TSR_ERR_FORMAT, "malformed tile tensor shape: %s", msg);
    }
    if (level > (uint32_t)be->top_level || !isfinite(scale) || scale < 1.0)
        return tsr_reader_fail(r, TSR_ERR_FORMAT,
                               "malformed tile tensor: level %u or scale %g out of range", level,
                               scale);
    /* The shape's tile count, computed without overflow: sizes up to 2^40 in several
     * dimensions would overflow tsr_tile_shape_num_tiles. */
    uint64_t want_tiles = 1;
    for (int i = 0; i < nd && want_tiles <= MAX_TILES; i++)
        if (__builtin_mul_overflow(want_tiles, (uint64_t)tsr_tile_shape_external(&s, i),
                                   &want_tiles))
            want_tiles = MAX_TILES + 1;
    if (want_tiles > MAX_TILES)
        return tsr_reader_fail(r, TSR_ERR_FORMAT,
                               "malformed tile tensor: its shape needs more than %llu tiles",
                               (unsigned long long)MAX_TILES);
    if (ntiles > MAX_TILES || ntiles != want_tiles || ntiles * 8 > tsr_frame_remaining(r))
        return tsr_reader_fail(r, TSR_ERR_FORMAT,
                               "malformed tile tensor: %llu tiles for a shape of %lld (at most "
                               "%llu, and each needs its data)",
                               (unsigned long long)ntiles, (long long)want_tiles,
                               (unsigned long long)MAX_TILES);
    tsr_tile *t;
    TSR_TRY(tl_new(be, &s, enc, &t));
    t->level = (int)level;
    t->scale = scale;
    uint64_t cap = be->vt->vec_max_size(be);
    uint8_t *blob = NULL;
    tsr_status st = TSR_OK;
    for (uint64_t i = 0; i < ntiles && st == TSR_OK; i++) {
        uint64_t len = tsr_read_u64(r);
        if ((st = tsr_reader_status(r)) != TSR_OK) break;
        if (len > cap || len > tsr_frame_remaining(r)) {
            st = tsr_reader_fail(r, TSR_ERR_FORMAT,
                                 "malformed tile tensor: tile %llu claims %llu bytes (at most "
                                 "%llu)",
                                 (unsigned long long)i, (unsigned long long)len,
                                 (unsigned long long)cap);
            break;
        }
        tsr_free(blob);
        blob = len ? tsr_alloc((size_t)len) : NULL;
        if (len && !blob) {
            st = tsr_fail(TSR_ERR_NOMEM, "out of memory reading a tile");
            break;
        }
        tsr_read_bytes(r, blob, (size_t)len);
        if ((st = tsr_reader_status(r)) != TSR_OK) break;
        st = tsr_bvec_read(be, blob, len, (int)level, scale, !enc, &t->v[i]);
        if (st != TSR_OK)
            tsr_fail_context(st, "tile %llu of a tile tensor: ", (unsigned long long)i);
    }
    tsr_free(blob);
    if (st == TSR_OK) st = tsr_frame_end_read(r);
    if (st != TSR_OK) {
        tsr_tile_free(t);
        return st;
    }
    *out = t;
    return TSR_OK;
}

tsr_status tsr_tile_write(const tsr_tile *t, FILE *fp) {
    tsr_writer w;
    tsr_writer_init_fp(&w, fp);
    tsr_status st = write_tile(t, &w);
    tsr_status cs = tsr_writer_close(&w);
    return st != TSR_OK ? st : cs;
}

tsr_status tsr_tile_save(const tsr_tile *t, const char *path) {
    tsr_writer w;
    TSR_TRY(tsr_writer_open_file(&w, path, 0));
    tsr_status st = tsr_writer_finish(&w, write_tile(t, &w));
    if (st != TSR_OK) tsr_fail_context(st, "writing '%s': ", path);
    return st;
}

tsr_status tsr_tile_to_bytes(const tsr_tile *t, uint8_t **buf, size_t *len) {
    *buf = NULL;
    *len = 0;
    tsr_writer w;
    tsr_writer_init_mem(&w);
    tsr_status st = write_tile(t, &w);
    if (st == TSR_OK) *buf = tsr_writer_take_buffer(&w, len);
    tsr_status cs = tsr_writer_close(&w);
    return st != TSR_OK ? st : cs;
}

void tsr_tile_bytes_free(uint8_t *buf) {
    tsr_free(buf);
}

tsr_status tsr_tile_read(tsr_backend *be, FILE *fp, tsr_tile **out) {
    tsr_reader r;
    tsr_reader_init_fp(&r, fp);
    tsr_status st = read_tile(be, &r, out);
    tsr_reader_close(&r);
    return st;
}

tsr_status tsr_tile_load(tsr_backend *be, const char *path, tsr_tile **out) {
    *out = NULL;
    tsr_reader r;
    TSR_TRY(tsr_reader_open_file(&r, path));
    tsr_status st = read_tile(be, &r, out);
    tsr_reader_close(&r);
    if (st != TSR_OK) tsr_fail_context(st, "reading '%s': ", path);
    return st;
}

tsr_status tsr_tile_from_bytes(tsr_backend *be, const uint8_t *buf, size_t len, tsr_tile **out) {
    tsr_reader r;
    tsr_reader_init_mem(&r, buf, len);
    tsr_status st = read_tile(be, &r, out);
    tsr_reader_close(&r);
    return st;
}
