/*
 * tests/test_attacks_payload.c - the payload attack (attacks/payload.h) with
 * a tiny random MalConv on real Debian-shipped PE files and a PE32+ made
 * here (zeros but the payload, so the payload decides the max pool): nearest-byte
 * mapping, entropy by hand, overlay and slack attacks that change only the
 * payload bytes (and the checksum field), lower the score step by step, and
 * pass the structural check; the universal payload; refusals.
 */
#include "testutil.h"

#include "attacks/payload.h"
#include "core/alloc.h"
#include "core/io.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static const char *const FILES[] = {
    "/usr/x86_64-w64-mingw32/lib/zlib1.dll",
    "/usr/share/nsis/Plugins/amd64-unicode/System.dll",
    "/usr/share/nsis/Plugins/amd64-unicode/nsDialogs.dll",
};
static const tsr_malconv_cfg CFG = { 4, 8, 64, 8, 1 << 18 }; /* D F K H max_len */

/* A minimal PE32+ made here: one .text section (0x800 raw bytes at 0x200, 0x700 used, the
 * rest slack), mostly zeros with `seed`-dependent bytes at its start, a non-zero checksum. */
static uint8_t *make_pe(size_t *len, unsigned seed) {
    *len = 0xa00;
    uint8_t *b = tsr_calloc(*len);
    assert_non_null(b);
#define P16(o, v) (b[o] = (uint8_t)(v), b[(o) + 1] = (uint8_t)((v) >> 8))
#define P32(o, v) (P16(o, (v)&0xffff), P16((o) + 2, (uint32_t)(v) >> 16))
    b[0] = 'M', b[1] = 'Z';
    P32(0x3c, 0x40);
    memcpy(b + 0x40, "PE\0\0", 4);
    P16(0x44, 0x8664);
    P16(0x46, 1);
    P16(0x54, 240);
    P16(0x56, 0x22);
    size_t o = 0x58;
    P16(o, 0x20b);
    P32(o + 16, 0x1000);
    P32(o + 24, 0x40000000u);
    P32(o + 32, 0x1000);
    P32(o + 36, 0x200);
    P32(o + 56, 0x2000);
    P32(o + 60, 0x200);
    P32(o + 64, 1);
    P16(o + 68, 3);
    P32(o + 108, 16);
    size_t st = o + 240;
    memcpy(b + st, ".text", 5);
    P32(st + 8, 0x700);
    P32(st + 12, 0x1000);
    P32(st + 16, 0x800);
    P32(st + 20, 0x200);
    P32(st + 36, 0x60000020u);
#undef P16
#undef P32
    for (unsigned i = 0; i < 64; i++) b[0x200 + i] = (uint8_t)(seed * 31 + i * 7);
    return b;
}

static uint8_t *load(const char *path, size_t *len) {
    uint8_t *b;
    tt_ok(tsr_read_whole_file(path, 1u << 24, "PE", &b, len));
    return b;
}

static void test_nearest_and_entropy(void **state) {
    (void)state;
    tsr_malconv *m;
    tt_ok(tsr_malconv_create(&m, &CFG, 3));
    const float *E = m->params + m->off.E;
    for (int v = 0; v < 256; v++) assert_int_equal(tsr_malconv_nearest_byte(m, E + v * 4), v);
    /* the padding row itself maps to a real byte */
    int b = tsr_malconv_nearest_byte(m, E + 256 * 4);
    assert_true(b >= 0 && b < 256);
    uint8_t x[512];
    memset(x, 7, sizeof x);
    assert_true(tsr_byte_entropy(x, sizeof x) == 0);
    for (int i = 0; i < 256; i++) x[i] = (uint8_t)i;
    assert_true(fabs(tsr_byte_entropy(x, 256) - 8) < 1e-12);
    memset(x, 1, 100);
    memset(x + 100, 2, 100);
    assert_true(fabs(tsr_byte_entropy(x, 200) - 1) < 1e-12);
    assert_true(tsr_byte_entropy(x, 0) == 0);
    tsr_place p;
    tt_ok(tsr_place_parse("slack", &p));
    assert_int_equal(p, TSR_PLACE_SLACK);
    tt_fails(tsr_place_parse("header", &p), TSR_ERR_INVALID_ARG);
    tsr_malconv_free(m);
}

static void test_attacks(void **state) {
    (void)state;
    tsr_malconv *m;
    tt_ok(tsr_malconv_create(&m, &CFG, 4));
    enum { NF = sizeof FILES / sizeof FILES[0] };
    for (size_t fi = 0; fi <= NF; fi++) {
        size_t len;
        uint8_t *a = fi < NF ? load(FILES[fi], &len) : make_pe(&len, 1);
        const char *name = fi < NF ? FILES[fi] : "made PE32+";
        tsr_pe pe;
        tt_ok(tsr_pe_parse(&pe, a, len));
        for (int place = 0; place < TSR_PLACE_COUNT_; place++) {
            /* threshold tiny: never stops early, so the steps must push the score down */
            tsr_payload_cfg c = { (tsr_place)place, 600, 8, 1.0f, 1e-6f, 5 + fi };
            uint8_t *out;
            size_t out_len;
            tsr_payload_result r;
            tt_ok(tsr_payload_attack(m, a, len, &c, &out, &out_len, &r));
            assert_int_equal(r.steps, 8);
            assert_false(r.evaded);
            print_message("%s %s: score %.4f -> %.4f, %zu bytes, entropy %.2f\n", name,
                          tsr_place_name((tsr_place)place), r.score_before, r.score_after,
                          r.payload_len, r.entropy);
            /* Real files: the payload windows need not be any filter's maximum under a random
             * tiny model (zero gradient); the made file is all zeros but the payload. */
            if (fi == NF)
                assert_true(r.score_after < r.score_before);
            else
                assert_true(r.score_after <= r.score_before + 1e-6f);
            /* only payload bytes (and the checksum field) changed */
            uint64_t slack = 0;
            for (uint32_t k = 0; k < pe.nslack; k++) slack += pe.slack[k].len;
            if (place == TSR_PLACE_OVERLAY) {
                assert_int_equal(out_len, len + 600);
                assert_int_equal(r.payload_len, 600);
                for (size_t i = 0; i < len; i++)
                    if (out[i] != a[i] && (i < pe.checksum_off || i >= pe.checksum_off + 4u))
                        fail_msg("overlay attack changed byte %zu", i);
            } else {
                assert_int_equal(out_len, len);
                assert_int_equal(r.payload_len, slack < 600 ? slack : 600);
                int in_slack_changed = 0;
                for (size_t i = 0; i < len; i++) {
                    int in = 0;
                    for (uint32_t k = 0; k < pe.nslack; k++)
                        in |= i >= pe.slack[k].off && i < pe.slack[k].off + pe.slack[k].len;
                    if (out[i] != a[i] && !in && (i < pe.checksum_off || i >= pe.checksum_off + 4u))
                        fail_msg("slack attack changed byte %zu outside slack", i);
                    in_slack_changed += in && out[i] != a[i];
                }
                assert_true(in_slack_changed > 0);
            }
            if (pe.checksum) {
                tsr_pe pb;
                tt_ok(tsr_pe_parse(&pb, out, out_len));
                assert_int_equal(pb.checksum, tsr_pe_checksum(out, out_len, pb.checksum_off));
                tsr_pe_free(&pb);
            }
            tsr_free(out);
        }
        tsr_pe_free(&pe);
        tsr_free(a);
    }
    /* An evading run stops early: with the threshold at 0.999 the first check already passes. */
    size_t len;
    uint8_t *a = load(FILES[0], &len), *out;
    size_t out_len;
    tsr_payload_result r;
    tsr_payload_cfg c = { TSR_PLACE_OVERLAY, 100, 5, 1.0f, 0.999999f, 1 };
    tt_ok(tsr_payload_attack(m, a, len, &c, &out, &out_len, &r));
    assert_true(r.evaded && r.steps == 0);
    tsr_free(out);
    /* refusals */
    c.size = 0;
    tt_fails(tsr_payload_attack(m, a, len, &c, &out, &out_len, &r), TSR_ERR_INVALID_ARG);
    c.size = 10;
    uint8_t junk[256] = { 0 };
    tt_fails(tsr_payload_attack(m, junk, sizeof junk, &c, &out, &out_len, &r), TSR_ERR_FORMAT);
    tsr_free(a);
    tsr_malconv_free(m);
}

static void test_universal(void **state) {
    (void)state;
    tsr_malconv *m;
    tt_ok(tsr_malconv_create(&m, &CFG, 6));
    const uint8_t *files[3];
    size_t lens[3];
    for (int i = 0; i < 3; i++) files[i] = make_pe(&lens[i], (unsigned)i + 2);
    tsr_payload_cfg c = { TSR_PLACE_OVERLAY, 300, 6, 1.0f, 1e-6f, 2 };
    uint8_t pay[300];
    tt_ok(tsr_payload_universal(m, files, lens, 3, &c, pay));
    /* The optimised payload scores lower than its random start on the files it saw (summed). */
    uint8_t start[300];
    tsr_payload_cfg c0 = c;
    c0.iters = 1;
    c0.eps = 1e-9f; /* a step too small to move any byte: the random start */
    tt_ok(tsr_payload_universal(m, files, lens, 3, &c0, start));
    tsr_malconv_ws *ws;
    tt_ok(tsr_malconv_ws_create(&ws, m));
    double s_opt = 0, s_start = 0;
    for (int i = 0; i < 3; i++) {
        uint8_t *o1, *o2;
        size_t l1, l2, p1, p2;
        float lg;
        tt_ok(tsr_payload_place(files[i], lens[i], TSR_PLACE_OVERLAY, pay, 300, &o1, &l1, &p1));
        tt_ok(tsr_payload_place(files[i], lens[i], TSR_PLACE_OVERLAY, start, 300, &o2, &l2, &p2));
        assert_int_equal(p1, 300);
        assert_memory_equal(o1 + lens[i], pay, 300);
        tt_ok(tsr_malconv_forward_bytes(m, ws, o1, l1, &lg));
        s_opt += lg;
        tt_ok(tsr_malconv_forward_bytes(m, ws, o2, l2, &lg));
        s_start += lg;
        tsr_free(o1);
        tsr_free(o2);
    }
    print_message("universal payload: summed logit %.4f -> %.4f\n", s_start, s_opt);
    assert_true(s_opt < s_start);
    tsr_malconv_ws_free(ws);
    for (int i = 0; i < 3; i++) tsr_free((void *)files[i]);
    tsr_malconv_free(m);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_nearest_and_entropy),
        cmocka_unit_test(test_attacks),
        cmocka_unit_test(test_universal),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
