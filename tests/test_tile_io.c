/*
 * tests/test_tile_io.c - tile tensors in files: round trips (encrypted,
 * encoded, shape-only; memory, stream and file), and rejection of other
 * parameters, other backends, corruption, truncation and malformed fields.
 */
#include "tile_check.h"

#include "core/alloc.h"
#include "core/io.h"
#include "tile/backend.h"
#include "tile/tile_io.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static tsr_backend *mockup(int64_t slots, int levels, int track) {
    tsr_mockup_params mp;
    tsr_mockup_params_default(&mp, slots, levels);
    mp.track_values = track;
    tsr_backend *be;
    tt_ok(tsr_backend_mockup_create(&mp, &be));
    return be;
}

static void test_round_trip(void **state) {
    (void)state;
    tsr_backend *be = mockup(16, 3, 1);
    tsr_tile_shape s;
    tc_shape("[5~?/4, */2, 3/2]", 16, &s);
    double x[15];
    for (int i = 0; i < 15; i++) x[i] = sin(i + 1.0);
    tsr_tile *a, *m, *b;
    tt_ok(tsr_tile_encrypt(be, &s, x, -1, 0, &a));
    tt_ok(tsr_tile_mul_scalar(a, 0.3, &m)); /* level 2, canonical scale */
    uint8_t *buf;
    size_t len;
    tt_ok(tsr_tile_to_bytes(m, &buf, &len));
    tt_ok(tsr_tile_from_bytes(be, buf, len, &b));
    assert_true(tsr_tile_shape_equal(tsr_tile_get_shape(b), tsr_tile_get_shape(m)));
    assert_int_equal(tsr_tile_level(b), 2);
    assert_true(tsr_tile_scale(b) == tsr_tile_scale(m));
    assert_true(tsr_tile_is_encrypted(b));
    double r1[64], r2[64];
    tt_ok(tsr_tile_decrypt_raw(m, r1));
    tt_ok(tsr_tile_decrypt_raw(b, r2));
    assert_memory_equal(r1, r2, sizeof r1);
    tsr_tile_free(b);

    /* Through a file, and a stream holding two tensors. */
    const char *path = tt_temp_path(".tile");
    tt_ok(tsr_tile_save(m, path));
    tt_ok(tsr_tile_load(be, path, &b));
    tt_ok(tsr_tile_decrypt_raw(b, r2));
    assert_memory_equal(r1, r2, sizeof r1);
    tsr_tile_free(b);
    remove(path);
    FILE *fp = tmpfile();
    tt_ok(tsr_tile_write(a, fp));
    tt_ok(tsr_tile_write(m, fp));
    rewind(fp);
    tt_ok(tsr_tile_read(be, fp, &b));
    assert_int_equal(tsr_tile_level(b), 3);
    tsr_tile_free(b);
    tt_ok(tsr_tile_read(be, fp, &b));
    assert_int_equal(tsr_tile_level(b), 2);
    tsr_tile_free(b);
    tt_fails(tsr_tile_read(be, fp, &b), TSR_ERR_FORMAT);
    fclose(fp);

    /* Encoded plaintexts stay plaintexts. */
    tsr_tile *p;
    tt_ok(tsr_tile_encode(be, &s, x, 1, 0, &p));
    tsr_tile_bytes_free(buf);
    tt_ok(tsr_tile_to_bytes(p, &buf, &len));
    tt_ok(tsr_tile_from_bytes(be, buf, len, &b));
    assert_false(tsr_tile_is_encrypted(b));
    assert_int_equal(tsr_tile_level(b), 1);
    tsr_tile_free(b);
    tsr_tile_free(p);

    /* Another backend with the same parameters reads it; other parameters do not. */
    tsr_backend *same = mockup(16, 3, 1), *other = mockup(16, 4, 1), *dry = mockup(16, 3, 0);
    tsr_tile_bytes_free(buf);
    tt_ok(tsr_tile_to_bytes(m, &buf, &len));
    tt_ok(tsr_tile_from_bytes(same, buf, len, &b));
    tsr_tile_free(b);
    tt_fails(tsr_tile_from_bytes(other, buf, len, &b), TSR_ERR_MISMATCH);
    assert_null(b);
    tt_fails(tsr_tile_from_bytes(dry, buf, len, &b), TSR_ERR_MISMATCH);
    /* A shape-only tensor round-trips on a shape-only backend only. */
    tsr_tile *d;
    tt_ok(tsr_tile_encrypt(dry, &s, NULL, -1, 0, &d));
    uint8_t *dbuf;
    size_t dlen;
    tt_ok(tsr_tile_to_bytes(d, &dbuf, &dlen));
    assert_true(dlen < len);
    tt_ok(tsr_tile_from_bytes(dry, dbuf, dlen, &b));
    tsr_tile_free(b);
    tt_fails(tsr_tile_from_bytes(same, dbuf, dlen, &b), TSR_ERR_FORMAT);
    assert_non_null(strstr(tsr_last_error(), "shape-only"));
    tsr_tile_bytes_free(dbuf);
    tsr_tile_free(d);

    /* Corruption anywhere is caught; truncation too. */
    for (size_t i = 0; i < len; i += 7) {
        buf[i] ^= 0x20;
        tsr_clear_error();
        tsr_status st = tsr_tile_from_bytes(be, buf, len, &b);
        assert_int_not_equal(st, TSR_OK);
        assert_null(b);
        assert_true(tsr_last_error()[0] != '\0');
        buf[i] ^= 0x20;
    }
    for (size_t cut = 0; cut < len; cut += 13) {
        tsr_status st = tsr_tile_from_bytes(be, buf, cut, &b);
        assert_int_not_equal(st, TSR_OK);
        assert_null(b);
    }
    tt_ok(tsr_tile_from_bytes(be, buf, len, &b));
    tsr_tile_free(b);
    tsr_tile_bytes_free(buf);
    tsr_tile_free(a);
    tsr_tile_free(m);
    tsr_backend_free(same);
    tsr_backend_free(other);
    tsr_backend_free(dry);
    tsr_backend_free(be);
}

/* Well-formed frames with bad fields (valid checksums): each is refused with a reason. */
static void write_frame(tsr_backend *be, uint32_t version, uint8_t kind, uint8_t nd, uint64_t size0,
                        uint64_t tile0, uint8_t flags0, uint32_t level, double scale,
                        uint64_t ntiles, uint64_t blob, uint8_t **buf, size_t *len) {
    tsr_writer w;
    tsr_writer_init_mem(&w);
    uint8_t fp[16];
    tsr_backend_fingerprint(be, fp);
    uint64_t plen = 4 + 3 + (uint64_t)nd * 17 + 8 + 4 + 8 + 8 + (blob == 0 ? 0 : 8 + blob);
    tsr_frame_begin_write(&w, TSR_OBJ_TILE_TENSOR, 0, fp, plen);
    tsr_write_u32(&w, version);
    tsr_write_u8(&w, kind);
    tsr_write_u8(&w, 1);
    tsr_write_u8(&w, nd);
    for (int i = 0; i < nd; i++) {
        tsr_write_u64(&w, i == 0 ? size0 : 1);
        tsr_write_u64(&w, i == 0 ? tile0 : 1);
        tsr_write_u8(&w, i == 0 ? flags0 : 0);
    }
    tsr_write_u64(&w, 8);
    tsr_write_u32(&w, level);
    tsr_write_f64(&w, scale);
    tsr_write_u64(&w, ntiles);
    if (blob) {
        tsr_write_u64(&w, blob);
        for (uint64_t i = 0; i < blob; i++) tsr_write_u8(&w, 0);
    }
    tt_ok(tsr_frame_end_write(&w));
    *buf = tsr_writer_take_buffer(&w, len);
    tsr_writer_close(&w);
}

static void test_malformed(void **state) {
    (void)state;
    tsr_backend *be = mockup(8, 2, 1);
    double s40 = tsr_backend_default_scale(be);
    struct {
        uint32_t version;
        uint8_t kind, nd;
        uint64_t size, tile;
        uint8_t flags;
        uint32_t level;
        double scale;
        uint64_t ntiles, blob;
        tsr_status want;
    } cases[] = {
        { 1, 1, 1, 5, 8, 0, 2, 0, 1, 64, TSR_OK },
        { 2, 1, 1, 5, 8, 0, 2, 0, 1, 64, TSR_ERR_VERSION },
        { 1, 2, 1, 5, 8, 0, 2, 0, 1, 64, TSR_ERR_MISMATCH },
        { 1, 1, 0, 5, 8, 0, 2, 0, 1, 64, TSR_ERR_FORMAT },
        { 1, 1, 9, 5, 8, 0, 2, 0, 1, 64, TSR_ERR_FORMAT },
        { 1, 1, 1, 0, 8, 0, 2, 0, 1, 64, TSR_ERR_FORMAT },
        { 1, 1, 1, 5, 6, 0, 2, 0, 1, 64, TSR_ERR_FORMAT },
        { 1, 1, 1, 5, 4, 0, 2, 0, 1, 64, TSR_ERR_FORMAT },
        { 1, 1, 1, 5, 8, 8, 2, 0, 1, 64, TSR_ERR_FORMAT },
        { 1, 1, 1, 5, 8, 1, 2, 0, 1, 64, TSR_ERR_FORMAT },
        { 1, 1, 1, 5, 8, 0, 3, 0, 1, 64, TSR_ERR_FORMAT },
        { 1, 1, 1, 5, 8, 0, 2, NAN, 1, 64, TSR_ERR_FORMAT },
        { 1, 1, 1, 5, 8, 0, 2, 0, 2, 64, TSR_ERR_FORMAT },
        { 1, 1, 1, 5, 8, 0, 2, 0, (uint64_t)1 << 40, 64, TSR_ERR_FORMAT },
        { 1, 1, 1, 5, 8, 0, 2, 0, 1, 32, TSR_ERR_FORMAT },
        { 1, 1, 1, 5, 8, 0, 2, 0, 1, 72, TSR_ERR_FORMAT },
    };
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        uint8_t *buf;
        size_t len;
        double scale = cases[k].scale == 0 ? s40 : cases[k].scale;
        write_frame(be, cases[k].version, cases[k].kind, cases[k].nd, cases[k].size, cases[k].tile,
                    cases[k].flags, cases[k].level, scale, cases[k].ntiles, cases[k].blob, &buf,
                    &len);
        tsr_tile *t = NULL;
        tsr_clear_error();
        tsr_status st = tsr_tile_from_bytes(be, buf, len, &t);
        if (st != cases[k].want)
            fail_msg("case %zu: %s (want %s): %s", k, tsr_strerror(st), tsr_strerror(cases[k].want),
                     tsr_last_error());
        if (st != TSR_OK) {
            assert_null(t);
            assert_true(tsr_last_error()[0] != '\0');
        }
        tsr_tile_free(t);
        tsr_free(buf);
    }
    /* Another object kind. */
    tsr_writer w;
    tsr_writer_init_mem(&w);
    tsr_frame_begin_write(&w, TSR_OBJ_CIPHERTEXT, 0, NULL, 0);
    tt_ok(tsr_frame_end_write(&w));
    size_t len;
    uint8_t *buf = tsr_writer_take_buffer(&w, &len);
    tsr_writer_close(&w);
    tsr_tile *t;
    tt_fails(tsr_tile_from_bytes(be, buf, len, &t), TSR_ERR_MISMATCH);
    tsr_free(buf);
    tt_fails(tsr_tile_load(be, "/nonexistent/x.tile", &t), TSR_ERR_NOT_FOUND);
    tsr_backend_free(be);
}

/* A shape whose tile count overflows 64 bits (three dimensions of 2^40, found by fuzz_tile_read
 * as a signed overflow under UBSan) is refused as malformed. */
static void test_tile_count_overflow(void **state) {
    (void)state;
    tsr_backend *be = mockup(8, 2, 1);
    tsr_writer w;
    tsr_writer_init_mem(&w);
    uint8_t fp[16];
    tsr_backend_fingerprint(be, fp);
    tsr_frame_begin_write(&w, TSR_OBJ_TILE_TENSOR, 0, fp, 4 + 3 + 4 * 17 + 8 + 4 + 8 + 8);
    tsr_write_u32(&w, 1);
    tsr_write_u8(&w, 1);
    tsr_write_u8(&w, 1);
    tsr_write_u8(&w, 4);
    for (int i = 0; i < 4; i++) {
        tsr_write_u64(&w, i < 3 ? (uint64_t)1 << 40 : 1);
        tsr_write_u64(&w, i < 3 ? 1 : 8);
        tsr_write_u8(&w, 0);
    }
    tsr_write_u64(&w, 8);
    tsr_write_u32(&w, 2);
    tsr_write_f64(&w, tsr_backend_default_scale(be));
    tsr_write_u64(&w, 1);
    tt_ok(tsr_frame_end_write(&w));
    size_t len;
    uint8_t *buf = tsr_writer_take_buffer(&w, &len);
    tsr_writer_close(&w);
    tsr_tile *t = NULL;
    tt_fails(tsr_tile_from_bytes(be, buf, len, &t), TSR_ERR_FORMAT);
    assert_non_null(strstr(tsr_last_error(), "more than"));
    assert_null(t);
    tsr_free(buf);
    tsr_backend_free(be);
}

/* A 36-byte file declaring a 2 GiB tile tensor is refused from its header. */
static void test_declared_size(void **state) {
    (void)state;
    tsr_backend *be = mockup(8, 2, 1);
    uint8_t h[TSR_FRAME_HEADER_SIZE] = { 'T', 'S', 'R', 0x1a, TSR_FRAME_VERSION };
    h[6] = TSR_OBJ_TILE_TENSOR;
    tsr_backend_fingerprint(be, h + 12);
    h[28 + 3] = 0x80; /* payload length 2^31 */
    const char *path = tt_temp_path(".tile");
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(h, 1, sizeof h, f), sizeof h);
    fclose(f);
    tsr_tile *t = NULL;
    tt_fails(tsr_tile_load(be, path, &t), TSR_ERR_FORMAT);
    assert_non_null(strstr(tsr_last_error(), "only 0 bytes follow its header"));
    assert_null(t);
    remove(path);
    tsr_backend_free(be);
}

/* The shape codec (tile/tile_io.h) shared by tile-tensor files and plans: exact bytes, round
 * trip with every flag, the caller's size bound, refusals naming the reader's object. */
static void test_shape_codec(void **state) {
    (void)state;
    tsr_tile_shape s, back;
    tt_ok(tsr_tile_shape_parse("[5/2, 6~?/4, */8]", 64, &s));
    tsr_writer w;
    tsr_writer_init_mem(&w);
    tile_shape_write(&w, &s);
    size_t len;
    uint8_t *buf = tsr_writer_take_buffer(&w, &len);
    tt_ok(tsr_writer_close(&w));
    assert_int_equal(len, TILE_SHAPE_BYTES(3));
    assert_int_equal(buf[0], 3);
    for (int i = 0; i < 3; i++) {
        const uint8_t *d = buf + 1 + 17 * i;
        uint64_t size = 0, tile = 0;
        for (int k = 0; k < 8; k++) {
            size |= (uint64_t)d[k] << (8 * k);
            tile |= (uint64_t)d[8 + k] << (8 * k);
        }
        assert_int_equal(size, s.dim[i].size);
        assert_int_equal(tile, s.dim[i].tile);
        assert_int_equal(d[16], (s.dim[i].dup ? 1 : 0) | (s.dim[i].unknown ? 2 : 0) |
                                    (s.dim[i].interleaved ? 4 : 0));
    }
    assert_int_equal(buf[1 + 17 + 16], 2 | 4); /* 6~? */
    tsr_reader r;
    tsr_reader_init_mem(&r, buf, len);
    tt_ok(tile_shape_read(&r, &back, 1 << 20));
    assert_true(tsr_tile_shape_equal(&s, &back));
    tsr_reader_close(&r);
    /* the caller's bound on sizes: 6 > 5 */
    tsr_reader_init_mem(&r, buf, len);
    tsr_reader_set_what(&r, "test object");
    tt_fails(tile_shape_read(&r, &back, 5), TSR_ERR_FORMAT);
    assert_non_null(strstr(tsr_last_error(), "malformed test object: shape dimension 1"));
    tsr_reader_close(&r);
    /* unknown flags, no dimensions, truncation */
    buf[1 + 16] = 8;
    tsr_reader_init_mem(&r, buf, len);
    tt_fails(tile_shape_read(&r, &back, 1 << 20), TSR_ERR_FORMAT);
    tsr_reader_close(&r);
    buf[0] = 0;
    tsr_reader_init_mem(&r, buf, len);
    tt_fails(tile_shape_read(&r, &back, 1 << 20), TSR_ERR_FORMAT);
    tsr_reader_close(&r);
    buf[0] = 3;
    buf[1 + 16] = 0;
    tsr_reader_init_mem(&r, buf, len - 1);
    tt_fails(tile_shape_read(&r, &back, 1 << 20), TSR_ERR_FORMAT);
    tsr_reader_close(&r);
    tsr_free(buf);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip),    cmocka_unit_test(test_malformed),
        cmocka_unit_test(test_declared_size), cmocka_unit_test(test_tile_count_overflow),
        cmocka_unit_test(test_shape_codec),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
