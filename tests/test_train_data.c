/*
 * tests/test_train_data.c - the IDX reader (raw and gzip; every kind of
 * corruption gives a clear error), datasets, the batcher, and a short
 * training run on a slice of the real Fashion-MNIST that must reach a
 * stated loss.
 */
#include "idxgen.h"
#include "testutil.h"

#include "tessera.h"
#include "core/alloc.h"
#include "train/data.h"
#include "train/train.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

/* IDX image of ubytes with the given dims; data[i] = i * 7 mod 251. */
static uint8_t *make_idx(int nd, const uint32_t *dims, size_t *len) {
    size_t n = 1;
    for (int i = 0; i < nd; i++) n *= dims[i];
    uint8_t *b = malloc(4 + 4 * (size_t)nd + n);
    b[0] = b[1] = 0;
    b[2] = 0x08;
    b[3] = (uint8_t)nd;
    for (int i = 0; i < nd; i++) {
        b[4 + 4 * i] = (uint8_t)(dims[i] >> 24);
        b[5 + 4 * i] = (uint8_t)(dims[i] >> 16);
        b[6 + 4 * i] = (uint8_t)(dims[i] >> 8);
        b[7 + 4 * i] = (uint8_t)dims[i];
    }
    for (size_t i = 0; i < n; i++) b[4 + 4 * nd + i] = (uint8_t)(i * 7 % 251);
    *len = 4 + 4 * (size_t)nd + n;
    return b;
}

static uint8_t *gzip(const uint8_t *src, size_t n, size_t *len) {
    z_stream z;
    memset(&z, 0, sizeof z);
    assert_int_equal(deflateInit2(&z, 9, Z_DEFLATED, 31, 8, Z_DEFAULT_STRATEGY), Z_OK);
    size_t cap = deflateBound(&z, n) + 64;
    uint8_t *out = malloc(cap);
    z.next_in = (Bytef *)(uintptr_t)src;
    z.avail_in = (uInt)n;
    z.next_out = out;
    z.avail_out = (uInt)cap;
    assert_int_equal(deflate(&z, Z_FINISH), Z_STREAM_END);
    *len = cap - z.avail_out;
    deflateEnd(&z);
    return out;
}

static void expect_fail(const uint8_t *b, size_t n, tsr_status st, const char *needle) {
    tsr_idx idx;
    tt_fails(tsr_idx_parse(&idx, b, n), st);
    assert_null(idx.data);
    if (needle && !strstr(tsr_last_error(), needle))
        fail_msg("error '%s' does not mention '%s'", tsr_last_error(), needle);
}

static void test_idx_valid(void **state) {
    (void)state;
    uint32_t dims[3] = { 3, 4, 5 };
    size_t len, glen;
    uint8_t *raw = make_idx(3, dims, &len), *gz = gzip(raw, len, &glen);
    for (int k = 0; k < 2; k++) {
        tsr_idx idx;
        tt_ok(tsr_idx_parse(&idx, k ? gz : raw, k ? glen : len));
        assert_int_equal(idx.ndims, 3);
        assert_int_equal(idx.dims[0], 3);
        assert_int_equal(idx.dims[2], 5);
        assert_int_equal(idx.count, 60);
        assert_memory_equal(idx.data, raw + 16, 60);
        tsr_idx_free(&idx);
    }
    /* through a file */
    const char *path = tt_temp_path(".gz");
    FILE *f = fopen(path, "wb");
    fwrite(gz, 1, glen, f);
    fclose(f);
    tsr_idx idx;
    tt_ok(tsr_idx_read_file(&idx, path));
    assert_int_equal(idx.count, 60);
    tsr_idx_free(&idx);
    unlink(path);
    tt_fails(tsr_idx_read_file(&idx, "/nonexistent/x.idx"), TSR_ERR_NOT_FOUND);
    assert_non_null(strstr(tsr_last_error(), "/nonexistent/x.idx"));
    free(raw), free(gz);
}

static void test_idx_corrupt(void **state) {
    (void)state;
    uint32_t dims[2] = { 6, 7 };
    size_t len, glen;
    uint8_t *raw = make_idx(2, dims, &len), *gz = gzip(raw, len, &glen);
    uint8_t *b = malloc(len + glen + 16);
    /* raw: truncated, trailing data, bad magic, bad dims, unsupported type */
    expect_fail(raw, 0, TSR_ERR_FORMAT, "truncated");
    expect_fail(raw, 3, TSR_ERR_FORMAT, "truncated");
    expect_fail(raw, 9, TSR_ERR_FORMAT, "header");
    expect_fail(raw, len - 1, TSR_ERR_FORMAT, "truncated");
    memcpy(b, raw, len);
    b[len] = 0;
    expect_fail(b, len + 1, TSR_ERR_FORMAT, "trailing");
    memcpy(b, raw, len);
    b[0] = 0x50;
    expect_fail(b, len, TSR_ERR_FORMAT, "not an IDX file");
    memcpy(b, raw, len);
    b[3] = 0;
    expect_fail(b, len, TSR_ERR_FORMAT, "dimensions");
    b[3] = 9;
    expect_fail(b, len, TSR_ERR_FORMAT, "dimensions");
    memcpy(b, raw, len);
    b[2] = 0x0D; /* float: a valid IDX type we do not support */
    expect_fail(b, len, TSR_ERR_UNSUPPORTED, "0x0d");
    b[2] = 0x07;
    expect_fail(b, len, TSR_ERR_FORMAT, "magic");
    memcpy(b, raw, len);
    b[7] = 0; /* first dim 0 */
    expect_fail(b, len, TSR_ERR_FORMAT, "is 0");
    memcpy(b, raw, len);
    b[4] = 0xff; /* huge first dim */
    expect_fail(b, len, TSR_ERR_FORMAT, NULL);
    /* gzip: truncated anywhere, corrupted data, bad CRC, trailing garbage */
    for (size_t cut = 2; cut < glen; cut += 3) expect_fail(gz, cut, TSR_ERR_FORMAT, NULL);
    memcpy(b, gz, glen);
    b[glen - 6] ^= 0x55; /* CRC32 */
    expect_fail(b, glen, TSR_ERR_FORMAT, "corrupt");
    memcpy(b, gz, glen);
    b[glen] = 0x42;
    expect_fail(b, glen + 1, TSR_ERR_FORMAT, "trailing");
    /* a gzip whose content is raw-valid but has trailing data inside the stream */
    memcpy(b, raw, len);
    b[len] = 1;
    size_t glen2;
    uint8_t *gz2 = gzip(b, len + 1, &glen2);
    expect_fail(gz2, glen2, TSR_ERR_FORMAT, "trailing");
    /* a gzip header claiming far more data than the stream could hold */
    memcpy(b, raw, len);
    b[4] = 0x40;
    uint8_t *gz3 = gzip(b, len, &glen2);
    expect_fail(gz3, glen2, TSR_ERR_FORMAT, NULL);
    free(raw), free(gz), free(b), free(gz2), free(gz3);
}

static void write_file(const char *path, const uint8_t *b, size_t n) {
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(b, 1, n, f), n);
    fclose(f);
}

/* A row range holds exactly those rows; the rest of the file is still validated. */
static void test_idx_rows(void **state) {
    (void)state;
    uint32_t dims[3] = { 50, 30, 40 };
    size_t len, glen, row = 30 * 40;
    uint8_t *raw = make_idx(3, dims, &len), *gz = gzip(raw, len, &glen);
    const uint32_t cases[][3] = {
        { 0, 1, 1 }, { 17, 5, 5 }, { 48, 10, 2 }, { 49, 0, 1 }, { 0, 0, 50 }
    };
    for (int k = 0; k < 2; k++)
        for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
            tsr_idx idx;
            tt_ok(tsr_idx_parse_rows(&idx, k ? gz : raw, k ? glen : len, cases[c][0], cases[c][1]));
            assert_int_equal(idx.dims[0], 50);
            assert_int_equal(idx.first, cases[c][0]);
            assert_int_equal(idx.rows, cases[c][2]);
            assert_int_equal(idx.count, cases[c][2] * row);
            assert_memory_equal(idx.data, raw + 16 + cases[c][0] * row, idx.count);
            tsr_idx_free(&idx);
        }
    tsr_idx idx;
    tt_fails(tsr_idx_parse_rows(&idx, gz, glen, 50, 1), TSR_ERR_INVALID_ARG);
    tt_fails(tsr_idx_parse_rows(&idx, raw, len, 50, 1), TSR_ERR_INVALID_ARG);
    /* what follows the rows kept is checked all the same: truncation, CRC, trailing bytes */
    tt_fails(tsr_idx_parse_rows(&idx, gz, glen - 30, 0, 1), TSR_ERR_FORMAT);
    tt_fails(tsr_idx_parse_rows(&idx, raw, len - 1, 0, 1), TSR_ERR_FORMAT);
    gz[glen - 6] ^= 0x10; /* the CRC-32 */
    tt_fails(tsr_idx_parse_rows(&idx, gz, glen, 0, 1), TSR_ERR_FORMAT);
    assert_null(idx.data);
    free(raw), free(gz);
}

static long max_rss_kib(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_maxrss;
}

/* A ~260 KB gzip file declaring 342,392 images of 28x28 (268 MB of pixels): reading one image
 * keeps the peak memory near the compressed size, not the declared one. */
static void test_idx_rows_bounded(void **state) {
    (void)state;
    const uint32_t n = 342392;
    size_t glen;
    uint8_t *gz = tt_zero_idx_gz(n, 28, 28, &glen);
    assert_non_null(gz);
    assert_true(glen < 400000);
    long before = max_rss_kib();
    tsr_idx idx;
    tt_ok(tsr_idx_parse_rows(&idx, gz, glen, 0, 1));
    assert_int_equal(idx.dims[0], n);
    assert_int_equal(idx.rows, 1);
    assert_int_equal(idx.count, 784);
    tsr_idx_free(&idx);
    long grown = max_rss_kib() - before;
    if (grown > 64 * 1024) fail_msg("reading one image raised the peak RSS by %ld KiB", grown);
    free(gz);
}

static void test_dataset_and_batcher(void **state) {
    (void)state;
    uint32_t idims[3] = { 10, 4, 3 }, ldims[1] = { 10 };
    size_t il, ll;
    uint8_t *im = make_idx(3, idims, &il), *lb = make_idx(1, ldims, &ll);
    for (int i = 0; i < 10; i++) lb[8 + i] = (uint8_t)(i % 4);
    char ip[4096], lp[4096];
    snprintf(ip, sizeof ip, "%s", tt_temp_path(".idx"));
    snprintf(lp, sizeof lp, "%s", tt_temp_path(".idx"));
    write_file(ip, im, il);
    write_file(lp, lb, ll);
    tsr_dataset ds;
    tt_ok(tsr_dataset_load_idx(&ds, ip, lp, 0.5f, 0.25f, 0));
    assert_int_equal(ds.n, 10);
    assert_int_equal(ds.h, 4);
    assert_int_equal(ds.w, 3);
    assert_int_equal(ds.classes, 4);
    for (int i = 0; i < 120; i++)
        assert_float_equal(ds.x[i], (im[16 + i] / 255.0 - 0.5) / 0.25, 1e-5);
    tsr_dataset_free(&ds);
    tt_ok(tsr_dataset_load_idx(&ds, ip, lp, 0.5f, 0.25f, 4));
    assert_int_equal(ds.n, 4);
    /* batcher: every sample exactly once per epoch, shuffled, seeded */
    tsr_augment none = { 0, 0 };
    tsr_batcher b, b2;
    tt_ok(tsr_batcher_init(&b, &ds, 3, 1, &none, 5));
    tt_ok(tsr_batcher_init(&b2, &ds, 3, 1, &none, 5));
    assert_int_equal(tsr_batcher_count(&b), 2);
    for (int epoch = 0; epoch < 3; epoch++) {
        int seen[4] = { 0 }, n, total = 0;
        tsr_batcher_reset(&b);
        tsr_batcher_reset(&b2);
        while ((n = tsr_batcher_next(&b)) > 0) {
            assert_int_equal(tsr_batcher_next(&b2), n);
            assert_memory_equal(b.index, b2.index, (size_t)n * sizeof(int32_t));
            for (int r = 0; r < n; r++) {
                int k = b.index[r];
                seen[k]++;
                assert_int_equal(b.y[r], ds.y[k]);
                assert_memory_equal(b.x + r * 12, ds.x + k * 12, 12 * sizeof(float));
            }
            total += n;
        }
        assert_int_equal(total, 4);
        for (int k = 0; k < 4; k++) assert_int_equal(seen[k], 1);
    }
    tsr_batcher_free(&b);
    tsr_batcher_free(&b2);
    /* augmentation: crops shift content, flips mirror; pixels come from the image or fill */
    tsr_augment aug = { 1, 1 };
    tt_ok(tsr_batcher_init(&b, &ds, 4, 0, &aug, 6));
    assert_int_equal(tsr_batcher_next(&b), 4);
    float fill = (0 - 0.5f) / 0.25f;
    for (int r = 0; r < 4; r++)
        for (int p = 0; p < 12; p++) {
            float v = b.x[r * 12 + p];
            int found = v == fill;
            for (int q = 0; q < 12 && !found; q++) found = v == ds.x[b.index[r] * 12 + q];
            assert_true(found);
        }
    tsr_batcher_free(&b);
    tsr_augment too_big = { 3, 0 };
    tt_fails(tsr_batcher_init(&b, &ds, 4, 0, &too_big, 6), TSR_ERR_INVALID_ARG);
    tsr_dataset_free(&ds);
    /* mismatched counts */
    uint32_t l2[1] = { 9 };
    uint8_t *lb2 = make_idx(1, l2, &ll);
    write_file(lp, lb2, ll);
    tt_fails(tsr_dataset_load_idx(&ds, ip, lp, 0.5f, 0.25f, 0), TSR_ERR_FORMAT);
    assert_non_null(strstr(tsr_last_error(), "9 labels"));
    /* images that are not 3-D */
    tt_fails(tsr_dataset_load_idx(&ds, lp, lp, 0.5f, 0.25f, 0), TSR_ERR_FORMAT);
    tt_fails(tsr_dataset_load_fashion(&ds, "/nonexistent", 1, 0), TSR_ERR_NOT_FOUND);
    assert_non_null(strstr(tsr_last_error(), "dataset-fashion-mnist"));
    unlink(ip);
    unlink(lp);
    free(im), free(lb), free(lb2);
}

static int have_fashion(void) {
    struct stat sb;
    return stat(TSR_FMNIST_DIR "/train-images-idx3-ubyte.gz", &sb) == 0;
}

/*
 * Short run on real data: the cryptonets CNN with degree-2 polynomial
 * activations, 3 epochs over the first 2000 training images, must bring the
 * test loss on 1000 test images below 0.80 and accuracy above 72% (from
 * ~2.3 / 10% at initialisation; it reaches about 0.64 / 79%).
 */
static void test_fashion_short_run(void **state) {
    (void)state;
    if (!have_fashion()) {
        fprintf(stderr, "dataset-fashion-mnist is not installed (scripts/deps.sh installs it)\n");
        fail_msg("Fashion-MNIST missing in " TSR_FMNIST_DIR);
    }
    int threads = tsr_get_num_threads();
    tsr_set_num_threads(1); /* ctest runs tests side by side */
    tsr_dataset tr, te;
    tt_ok(tsr_dataset_load_fashion(&tr, NULL, 1, 2000));
    tt_ok(tsr_dataset_load_fashion(&te, NULL, 0, 1000));
    assert_int_equal(tr.classes, 10);
    assert_int_equal(tr.h, 28);
    tsr_act_spec act;
    tt_ok(tsr_act_parse("poly2", &act));
    tsr_model *m;
    tt_ok(tsr_model_build(&m, "cryptonets", &act, 1));
    double loss0, acc0;
    tt_ok(tsr_evaluate(m, &te, 250, &loss0, &acc0));
    tsr_train_config cfg;
    tsr_train_config_default(&cfg);
    cfg.epochs = 3;
    cfg.batch = 64;
    cfg.lr = 2e-3f;
    tsr_train_result res;
    tt_ok(tsr_train_run(m, &cfg, &tr, &te, &res));
    fprintf(stderr, "short run: test loss %.3f -> %.3f, accuracy %.1f%% -> %.1f%%\n", loss0,
            res.last.test_loss, 100 * acc0, 100 * res.last.test_acc);
    assert_true(res.last.test_loss < 0.80);
    assert_true(res.last.test_acc > 0.72);
    tsr_model_free(m);
    tsr_dataset_free(&tr);
    tsr_dataset_free(&te);
    tsr_set_num_threads(threads);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_idx_valid),
        cmocka_unit_test(test_idx_corrupt),
        cmocka_unit_test(test_idx_rows),
        cmocka_unit_test(test_idx_rows_bounded),
        cmocka_unit_test(test_dataset_and_batcher),
        cmocka_unit_test(test_fashion_short_run),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
