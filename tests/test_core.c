/*
 * tests/test_core.c - status codes, allocation, randomness, checked I/O,
 * object frames (truncation, corruption, kind/version/size checks) and
 * tsr_thread_pair.
 */
#include "testutil.h"

#include "tessera.h"
#include "core/alloc.h"
#include "core/error.h"
#include "core/io.h"
#include "core/rng.h"
#include "core/threads.h"

#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static void test_status_strings(void **state) {
    (void)state;
    for (int s = 0; s < TSR_STATUS_COUNT_; s++) {
        assert_non_null(tsr_strerror((tsr_status)s));
        assert_true(strlen(tsr_strerror((tsr_status)s)) > 0);
    }
    assert_string_equal(tsr_strerror((tsr_status)999), "unknown status");
    assert_int_equal(tsr_fail(TSR_ERR_LEVEL, "level %d", 3), TSR_ERR_LEVEL);
    assert_string_equal(tsr_last_error(), "level 3");
    tsr_fail_context(TSR_ERR_LEVEL, "reading '%s': ", "x");
    assert_string_equal(tsr_last_error(), "reading 'x': level 3");
    tsr_clear_error();
    assert_string_equal(tsr_last_error(), "");
    assert_string_equal(tsr_version_string(), TSR_VERSION_STRING);
    assert_int_equal(tsr_version_number(), TSR_VERSION_NUMBER);
}

static void test_alloc(void **state) {
    (void)state;
    for (size_t n = 1; n < 5000; n = n * 3 + 1) {
        uint8_t *p = tsr_calloc(n);
        assert_non_null(p);
        assert_int_equal((uintptr_t)p % TSR_ALIGN, 0);
        for (size_t i = 0; i < n; i++) assert_int_equal(p[i], 0);
        tsr_free_secret(p, n);
    }
    assert_null(tsr_calloc_array(SIZE_MAX / 2, 3));
    assert_null(tsr_alloc(0));
    tsr_free(NULL);
    tsr_free_secret(NULL, 10);
    size_t out;
    assert_int_equal(tsr_mul_size(SIZE_MAX, 2, &out), -1);
    assert_int_equal(tsr_add_size(SIZE_MAX, 1, &out), -1);
    assert_int_equal(tsr_mul_size(6, 7, &out), 0);
    assert_int_equal(out, 42);
}

static void test_simd_names(void **state) {
    (void)state;
    tsr_simd s;
    for (int i = 0; i <= TSR_SIMD_AVX512IFMA; i++) {
        tt_ok(tsr_simd_parse(tsr_simd_name((tsr_simd)i), &s));
        assert_int_equal(s, i);
    }
    tt_fails(tsr_simd_parse("sse9", &s), TSR_ERR_INVALID_ARG);
    assert_true(tsr_simd_active() <= tsr_simd_detected());
    tt_ok(tsr_simd_force(TSR_SIMD_PORTABLE));
    assert_int_equal(tsr_simd_active(), TSR_SIMD_PORTABLE);
    tt_ok(tsr_simd_force(tsr_simd_detected()));
}

static void test_prng(void **state) {
    (void)state;
    uint8_t seed[TSR_SEED_BYTES] = { 1, 2, 3 };
    tsr_prng a, b, c;
    tsr_prng_init(&a, seed, 7);
    tsr_prng_init(&b, seed, 7);
    tsr_prng_init(&c, seed, 8);
    uint8_t x[3000], y[3000], z[3000];
    /* Reading in different chunkings gives the same stream. */
    tsr_prng_bytes(&a, x, sizeof x);
    for (size_t i = 0; i < sizeof y; i += 7)
        tsr_prng_bytes(&b, y + i, sizeof y - i < 7 ? sizeof y - i : 7);
    tsr_prng_bytes(&c, z, sizeof z);
    assert_memory_equal(x, y, sizeof x);
    assert_memory_not_equal(x, z, sizeof x);

    /* Uniform below a non-power-of-two bound: every value hit, counts near n/bound. */
    enum { BOUND = 6, DRAWS = 60000 };
    int counts[BOUND] = { 0 };
    for (int i = 0; i < DRAWS; i++) {
        uint64_t v = tsr_prng_uniform(&a, BOUND);
        assert_true(v < BOUND);
        counts[v]++;
    }
    double chi2 = 0, expect = (double)DRAWS / BOUND;
    for (int i = 0; i < BOUND; i++) chi2 += (counts[i] - expect) * (counts[i] - expect) / expect;
    assert_true(chi2 < 30.0); /* 5 dof: p < 2e-5 of a false failure */
    /* Bound near 2^64: rejection must still terminate and stay in range. */
    for (int i = 0; i < 1000; i++)
        assert_true(tsr_prng_uniform(&a, UINT64_MAX - 5) < UINT64_MAX - 5);
    assert_int_equal(tsr_prng_uniform(&a, 1), 0);

    double s = 0, s2 = 0;
    for (int i = 0; i < 20000; i++) {
        double v = tsr_prng_normal(&a);
        s += v;
        s2 += v * v;
    }
    assert_true(fabs(s / 20000) < 0.05);
    assert_true(fabs(s2 / 20000 - 1.0) < 0.05);

    uint8_t r1[32], r2[32];
    tt_ok(tsr_random_bytes(r1, sizeof r1));
    tt_ok(tsr_random_bytes(r2, sizeof r2));
    assert_memory_not_equal(r1, r2, sizeof r1);
    tsr_prng_wipe(&a);
    uint8_t zero[TSR_SEED_BYTES] = { 0 };
    assert_memory_equal(a.key, zero, sizeof zero);
}

/* Write a small frame: kind CIPHERTEXT, a u32, three u64 words below 1000. */
static uint8_t *make_frame(size_t *len) {
    tsr_writer w;
    uint8_t fp[TSR_FINGERPRINT_SIZE] = { 9, 9, 9 };
    uint64_t words[3] = { 1, 500, 999 };
    tsr_writer_init_mem(&w);
    tsr_frame_begin_write(&w, TSR_OBJ_CIPHERTEXT, TSR_FRAME_SEEDED, fp, 4 + 3 * 8);
    tsr_write_u32(&w, 3);
    tsr_write_u64_array(&w, words, 3);
    assert_int_equal(tsr_frame_end_write(&w), TSR_OK);
    uint8_t *buf = tsr_writer_take_buffer(&w, len);
    tsr_writer_close(&w);
    return buf;
}

static tsr_status parse_frame(const uint8_t *buf, size_t len) {
    tsr_reader r;
    tsr_frame_info info;
    uint64_t words[3];
    tsr_reader_init_mem(&r, buf, len);
    tsr_status st = tsr_frame_begin_read(&r, TSR_OBJ_CIPHERTEXT, 1024, &info);
    if (st != TSR_OK) return st;
    uint32_t n = tsr_read_u32(&r);
    if (n != 3) return tsr_reader_fail(&r, TSR_ERR_FORMAT, "bad count %u", n);
    tsr_read_u64_array(&r, words, 3, 1000);
    return tsr_frame_end_read(&r);
}

static void test_frame_roundtrip(void **state) {
    (void)state;
    size_t len;
    uint8_t *buf = make_frame(&len);
    assert_int_equal(len, TSR_FRAME_HEADER_SIZE + 28 + TSR_FRAME_HASH_SIZE);
    tt_ok(parse_frame(buf, len));

    tsr_reader r;
    tsr_frame_info info;
    tsr_reader_init_mem(&r, buf, len);
    tt_ok(tsr_frame_begin_read(&r, TSR_OBJ_NONE, 1024, &info));
    assert_int_equal(info.kind, TSR_OBJ_CIPHERTEXT);
    assert_int_equal(info.flags, TSR_FRAME_SEEDED);
    assert_int_equal(info.fingerprint[0], 9);
    assert_int_equal(info.payload_len, 28);

    /* Every truncation is an error, never a crash or over-read. */
    for (size_t cut = 0; cut < len; cut++) {
        tsr_status st = parse_frame(buf, cut);
        assert_true(st == TSR_ERR_FORMAT);
    }
    /* Every single-byte corruption is detected. */
    for (size_t i = 0; i < len; i++) {
        buf[i] ^= 0x41;
        assert_int_not_equal(parse_frame(buf, len), TSR_OK);
        buf[i] ^= 0x41;
    }
    tsr_free(buf);
}

static void test_frame_rejects(void **state) {
    (void)state;
    size_t len;
    uint8_t *buf = make_frame(&len);
    tsr_reader r;
    tsr_frame_info info;

    tsr_reader_init_mem(&r, buf, len);
    tt_fails(tsr_frame_begin_read(&r, TSR_OBJ_SECRET_KEY, 1024, &info), TSR_ERR_MISMATCH);
    tsr_reader_init_mem(&r, buf, len);
    tt_fails(tsr_frame_begin_read(&r, TSR_OBJ_CIPHERTEXT, 10, &info), TSR_ERR_FORMAT);

    buf[4] = 77; /* version */
    tsr_reader_init_mem(&r, buf, len);
    tt_fails(tsr_frame_begin_read(&r, TSR_OBJ_CIPHERTEXT, 1024, &info), TSR_ERR_VERSION);
    buf[4] = TSR_FRAME_VERSION;

    buf[0] = 'X';
    tsr_reader_init_mem(&r, buf, len);
    tt_fails(tsr_frame_begin_read(&r, TSR_OBJ_CIPHERTEXT, 1024, &info), TSR_ERR_FORMAT);
    buf[0] = 'T';

    /* Coefficient not below its modulus. */
    uint64_t big = 5000;
    memcpy(buf + TSR_FRAME_HEADER_SIZE + 4 + 8, &big, 8);
    tt_fails(parse_frame(buf, len), TSR_ERR_FORMAT);
    assert_non_null(strstr(tsr_last_error(), "not below the modulus"));

    /* Reading past the declared payload is refused. */
    uint8_t *good = make_frame(&len);
    tsr_reader_init_mem(&r, good, len);
    tt_ok(tsr_frame_begin_read(&r, TSR_OBJ_CIPHERTEXT, 1024, &info));
    uint8_t junk[64];
    tsr_clear_error();
    tsr_read_bytes(&r, junk, sizeof junk);
    assert_int_equal(tsr_reader_status(&r), TSR_ERR_FORMAT);
    assert_non_null(strstr(tsr_last_error(), "payload has only"));
    /* Leftover payload bytes are refused too. */
    tsr_reader_init_mem(&r, good, len);
    tt_ok(tsr_frame_begin_read(&r, TSR_OBJ_CIPHERTEXT, 1024, &info));
    (void)tsr_read_u32(&r);
    tt_fails(tsr_frame_end_read(&r), TSR_ERR_FORMAT);
    tsr_free(good);
    tsr_free(buf);
}

/* A 36-byte header declaring a 2 GiB payload: refused from its header, from memory and from a
 * file, before any reader could size a buffer by it. */
static void test_frame_declared_size(void **state) {
    (void)state;
    uint8_t hdr[TSR_FRAME_HEADER_SIZE] = {
        'T', 'S', 'R', 0x1a, TSR_FRAME_VERSION, 0, TSR_OBJ_PLAN
    };
    uint64_t big = (uint64_t)1 << 31;
    for (int i = 0; i < 8; i++) hdr[28 + i] = (uint8_t)(big >> (8 * i));
    tsr_reader r;
    tsr_frame_info info;
    tsr_reader_init_mem(&r, hdr, sizeof hdr);
    tt_fails(tsr_frame_begin_read(&r, TSR_OBJ_PLAN, UINT64_MAX, &info), TSR_ERR_FORMAT);
    assert_non_null(strstr(tsr_last_error(), "only 0 bytes follow"));
    assert_int_equal(tsr_frame_remaining(&r), 0);

    const char *path = tt_temp_path(".plan");
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(hdr, 1, sizeof hdr, f), sizeof hdr);
    fclose(f);
    tt_ok(tsr_reader_open_file(&r, path));
    tt_fails(tsr_frame_begin_read(&r, TSR_OBJ_PLAN, UINT64_MAX, &info), TSR_ERR_FORMAT);
    assert_non_null(strstr(tsr_last_error(), "declares a payload of 2147483648 bytes"));
    (void)tsr_reader_close(&r);
    unlink(path);

    /* A payload that fits but leaves no room for the checksum is refused too. */
    size_t len;
    uint8_t *buf = make_frame(&len);
    tsr_reader_init_mem(&r, buf, len - 1);
    tt_fails(tsr_frame_begin_read(&r, TSR_OBJ_CIPHERTEXT, 1024, &info), TSR_ERR_FORMAT);
    tsr_reader_init_mem(&r, buf, len);
    tt_ok(tsr_frame_begin_read(&r, TSR_OBJ_CIPHERTEXT, 1024, &info));
    tsr_free(buf);
}

/* Kind names in messages take the right article ("expected evaluation keys", "an inference
 * plan"), and a checksum failure names the object, not the last field read. */
static void test_frame_messages(void **state) {
    (void)state;
    assert_string_equal(tsr_obj_kind_phrase(TSR_OBJ_EVAL_KEYS), "evaluation keys");
    assert_string_equal(tsr_obj_kind_phrase(TSR_OBJ_PLAN), "an inference plan");
    assert_string_equal(tsr_obj_kind_phrase(TSR_OBJ_CIPHERTEXT), "a ciphertext");
    assert_string_equal(tsr_obj_kind_phrase(TSR_OBJ_NONE), "a Tessera object");
    size_t len;
    uint8_t *buf = make_frame(&len);
    tsr_reader r;
    tsr_frame_info info;
    tsr_reader_init_mem(&r, buf, len);
    tt_fails(tsr_frame_begin_read(&r, TSR_OBJ_EVAL_KEYS, 1024, &info), TSR_ERR_MISMATCH);
    assert_non_null(strstr(tsr_last_error(), "expected evaluation keys but the file holds a "
                                             "ciphertext"));
    buf[0] = 'X';
    tsr_reader_init_mem(&r, buf, len);
    tt_fails(tsr_frame_begin_read(&r, TSR_OBJ_NONE, 1024, &info), TSR_ERR_FORMAT);
    assert_non_null(strstr(tsr_last_error(), "expected a Tessera object"));
    buf[0] = 'T';
    buf[len - 1] ^= 1; /* the checksum */
    tsr_reader_init_mem(&r, buf, len);
    tt_ok(tsr_frame_begin_read(&r, TSR_OBJ_CIPHERTEXT, 1024, &info));
    tsr_reader_set_what(&r, "limb 8");
    uint8_t payload[28];
    tsr_read_bytes(&r, payload, sizeof payload);
    tt_fails(tsr_frame_end_read(&r), TSR_ERR_CHECKSUM);
    assert_null(strstr(tsr_last_error(), "limb"));
    assert_non_null(strstr(tsr_last_error(), "checksum of the ciphertext (over the whole object)"));
    tsr_free(buf);
    /* a missing file is bad input (exit 2 on the command line), not an I/O failure */
    tt_fails(tsr_reader_open_file(&r, "/nonexistent/dir/x"), TSR_ERR_NOT_FOUND);
}

/* What one tsr_thread_pair call saw: its thread, its thread count, OpenMP's max-active-levels
 * (never to be changed), and when it ran. */
typedef struct pair_seen {
    pthread_t self;
    int runs, max, levels, order;
} pair_seen;

static atomic_int pair_clock;

static void pair_record(void *arg) {
    pair_seen *s = arg;
    s->self = pthread_self();
    s->max = tsr_thread_max();
#ifdef _OPENMP
    s->levels = omp_get_max_active_levels();
#endif
    s->order = atomic_fetch_add(&pair_clock, 1);
    s->runs++;
}

/* Runs tsr_thread_pair(t0, t1) and checks what every path promises: each call once, the
 * caller's thread count as before, max-active-levels unchanged during and after. */
static void pair_run(pair_seen s[2], int t0, int t1) {
    memset(s, 0, 2 * sizeof *s);
#ifdef _OPENMP
    int levels = omp_get_max_active_levels();
#endif
    int before = tsr_thread_max();
    tsr_thread_pair(pair_record, &s[0], &s[1], t0, t1);
    assert_int_equal(s[0].runs, 1);
    assert_int_equal(s[1].runs, 1);
    assert_int_equal(tsr_thread_max(), before);
#ifdef _OPENMP
    assert_int_equal(s[0].levels, levels);
    assert_int_equal(s[1].levels, levels);
    assert_int_equal(omp_get_max_active_levels(), levels);
#endif
}

static void test_thread_pair(void **state) {
    (void)state;
    int saved = tsr_get_num_threads();
    pthread_t me = pthread_self();
    pair_seen s[2];
    tsr_set_num_threads(3); /* the caller's own count, restored by every path */
#ifdef _OPENMP
    /* T = 2: one thread each */
    pair_run(s, 1, 1);
    assert_int_equal(s[0].max, 1);
    assert_int_equal(s[1].max, 1);
    /* T >= 3: the first on this thread, the second on a thread of its own, each its share */
    for (int t1 = 1; t1 <= 2; t1++) {
        pair_run(s, 2, t1);
        assert_true(pthread_equal(s[0].self, me));
        assert_false(pthread_equal(s[1].self, me));
        assert_int_equal(s[0].max, 2);
        assert_int_equal(s[1].max, t1);
    }
    /* the thread cannot be created: in turn on this thread, each with all T threads */
    tsr_thread_pair_fail_spawn_for_test(1);
    pair_run(s, 2, 3);
    tsr_thread_pair_fail_spawn_for_test(0);
    assert_true(pthread_equal(s[0].self, me) && pthread_equal(s[1].self, me));
    assert_true(s[0].order < s[1].order);
    assert_int_equal(s[0].max, 5);
    assert_int_equal(s[1].max, 5);
    /* inside a parallel region: in turn on the calling thread, its count untouched */
    int active = 0, before = 0, same = 0;
    memset(s, 0, sizeof s);
#pragma omp parallel num_threads(2)
    {
#pragma omp master
        {
            active = omp_in_parallel();
            before = tsr_thread_max();
            pthread_t self = pthread_self();
            tsr_thread_pair(pair_record, &s[0], &s[1], 2, 2);
            same = pthread_equal(s[0].self, self) && pthread_equal(s[1].self, self);
        }
    }
    if (active) {
        assert_int_equal(s[0].runs, 1);
        assert_int_equal(s[1].runs, 1);
        assert_true(same);
        assert_true(s[0].order < s[1].order);
        assert_int_equal(s[0].max, before);
        assert_int_equal(s[1].max, before);
    }
#else
    /* without OpenMP: in turn on this thread, one thread each */
    pair_run(s, 2, 2);
    assert_true(pthread_equal(s[0].self, me) && pthread_equal(s[1].self, me));
    assert_true(s[0].order < s[1].order);
    assert_int_equal(s[0].max, 1);
    assert_int_equal(s[1].max, 1);
#endif
    tsr_set_num_threads(saved);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_status_strings),      cmocka_unit_test(test_alloc),
        cmocka_unit_test(test_simd_names),          cmocka_unit_test(test_prng),
        cmocka_unit_test(test_frame_roundtrip),     cmocka_unit_test(test_frame_rejects),
        cmocka_unit_test(test_frame_declared_size), cmocka_unit_test(test_frame_messages),
        cmocka_unit_test(test_thread_pair),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
