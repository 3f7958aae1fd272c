/*
 * tests/test_attacks_detector.c - the detector around MalConv
 * (attacks/detector.h, attacks/corpus.h): metrics worked by hand, training
 * a tiny model on a synthetic two-class problem (a marker pattern hidden in
 * random bytes) to high accuracy and bitwise reproducibly, the model file
 * round trip and its refusals, and manifest validation.
 */
#include "testutil.h"

#include "attacks/corpus.h"
#include "attacks/detector.h"
#include "core/alloc.h"
#include "core/io.h"
#include "tessera/core.h"

#include <math.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void test_metrics_by_hand(void **state) {
    (void)state;
    const float s[] = { 0.9f, 0.8f, 0.3f, 0.6f, 0.2f, 0.3f };
    const int y[] = { 1, 1, 1, 0, 0, 0 };
    tsr_detector_metrics m;
    tsr_detector_metrics_compute(s, y, 6, 0.5, &m);
    assert_int_equal(m.pos, 3);
    assert_int_equal(m.neg, 3);
    /* flagged: 0.9 0.8 0.6 -> correct are 0.9, 0.8, 0.2, 0.3(clean): 4 of 6 */
    assert_true(fabs(m.accuracy - 4.0 / 6) < 1e-12);
    assert_true(fabs(m.tpr - 2.0 / 3) < 1e-12);
    assert_true(fabs(m.fpr - 1.0 / 3) < 1e-12);
    /* pairs (pos, neg): 0.9 beats 3, 0.8 beats 3, 0.3 beats 0.2 and ties 0.3: 7.5 of 9 */
    assert_true(fabs(m.auc - 7.5 / 9) < 1e-12);
    /* thresholds for a target FPR on 5 clean scores (FPR steps of 0.2): 0.1 and 0 allow
       none flagged (just above the highest, 0.6), 0.2 one (just above the second, 0.35),
       0.5 two (just above the tied 0.3s, which both stay unflagged) */
    const float s2[] = { 0.9f, 0.6f, 0.35f, 0.3f, 0.3f, 0.1f, 0.95f };
    const int y2[] = { 1, 0, 0, 0, 0, 0, 1 };
    float t;
    size_t fp;
    tt_ok(tsr_detector_threshold_for_fpr(s2, y2, 7, 0.1, &t, &fp));
    assert_true(t > 0.6f && t == nextafterf(0.6f, 1.0f) && fp == 0);
    tt_ok(tsr_detector_threshold_for_fpr(s2, y2, 7, 0.2, &t, &fp));
    assert_true(t == nextafterf(0.35f, 1.0f) && fp == 1);
    tt_ok(tsr_detector_threshold_for_fpr(s2, y2, 7, 0.5, &t, &fp));
    assert_true(t == nextafterf(0.3f, 1.0f) && fp == 2);
    tt_ok(tsr_detector_threshold_for_fpr(s2, y2, 7, 0.0, &t, &fp));
    assert_true(t == nextafterf(0.6f, 1.0f) && fp == 0);
    tsr_detector_metrics_compute(s2, y2, 7, t, &m);
    assert_true(m.fpr == 0 && m.tpr == 1);
    tt_fails(tsr_detector_threshold_for_fpr(s2, y2, 7, 1.0, &t, &fp), TSR_ERR_INVALID_ARG);
    tt_fails(tsr_detector_threshold_for_fpr(s2, y2, 1, 0.1, &t, &fp), TSR_ERR_INVALID_ARG);
    const float one[] = { 1.0f };
    const int zero[] = { 0 };
    tt_fails(tsr_detector_threshold_for_fpr(one, zero, 1, 0.0, &t, &fp), TSR_ERR_INVALID_ARG);
}

/* Class 1: random bytes with a marker (16 bytes 0xaa: at least one whole window of 8) somewhere;
 * class 0: random bytes. */
enum { MARK = 16 };

static void make_data(tsr_detector_example *ex, uint8_t *store, size_t n, size_t len,
                      uint64_t dom) {
    tsr_prng g;
    tt_prng(&g, dom);
    for (size_t i = 0; i < n; i++) {
        uint8_t *b = store + i * len;
        size_t l = len / 2 + (size_t)tsr_prng_uniform(&g, len / 2);
        tsr_prng_bytes(&g, b, l);
        int y = (int)(i & 1);
        if (y) memset(b + tsr_prng_uniform(&g, l - MARK), 0xaa, MARK);
        ex[i] = (tsr_detector_example){ b, l, y };
    }
}

static const tsr_malconv_cfg SMALL = { 4, 8, 8, 8, 256 };

enum { N = 64, L = 200 };

/* What the training tests start from: two synthetic sets of N files (seeds 3 and 4), two
 * models made with seed 5, and the training set-up (batch 8, lr 1e-2, seed 9, `epochs`). */
typedef struct fixture {
    uint8_t *store;
    tsr_detector_example a[N], b[N];
    tsr_malconv *m, *m2;
    tsr_detector_train_cfg c;
} fixture;

static void fixture_init(fixture *f, int epochs) {
    f->store = malloc(2 * N * L);
    assert_non_null(f->store);
    make_data(f->a, f->store, N, L, 3);
    make_data(f->b, f->store + N * L, N, L, 4);
    tt_ok(tsr_malconv_create(&f->m, &SMALL, 5));
    tt_ok(tsr_malconv_create(&f->m2, &SMALL, 5));
    f->c = tsr_detector_train_defaults();
    f->c.epochs = epochs;
    f->c.batch = 8;
    f->c.lr = 1e-2f;
    f->c.seed = 9;
}

static void fixture_free(fixture *f) {
    tsr_malconv_free(f->m);
    tsr_malconv_free(f->m2);
    free(f->store);
}

static void test_training(void **state) {
    (void)state;
    fixture f;
    fixture_init(&f, 30);
    const tsr_detector_example *tr = f.a, *te = f.b;
    tsr_malconv *m = f.m, *m2 = f.m2;
    tsr_detector_train_cfg c = f.c;
    float sc[N];
    int lab[N];
    tsr_detector_metrics before, after;
    for (int i = 0; i < N; i++) lab[i] = te[i].label;
    tt_ok(tsr_detector_scores(m, te, N, sc));
    tsr_detector_metrics_compute(sc, lab, N, 0.5, &before);
    double loss, loss2;
    tt_ok(tsr_detector_train(m, tr, N, &c, &loss));
    tt_ok(tsr_detector_scores(m, te, N, sc));
    tsr_detector_metrics_compute(sc, lab, N, 0.5, &after);
    print_message(
        "synthetic marker (threads %d): test accuracy %.3f -> %.3f, AUC %.3f -> %.3f, loss %.4f\n",
        tsr_get_num_threads(), before.accuracy, after.accuracy, before.auc, after.auc, loss);
    assert_true(after.accuracy >= 0.9 && after.auc >= 0.95);
    assert_true(loss < 0.3);
    /* Same seed and threads: the same model bit for bit (here with 2 threads, 2 epochs). */
    tsr_malconv *a, *b2;
    tt_ok(tsr_malconv_create(&a, &SMALL, 6));
    tt_ok(tsr_malconv_create(&b2, &SMALL, 6));
    tsr_set_num_threads(2);
    c.epochs = 2;
    tt_ok(tsr_detector_train(a, tr, N, &c, &loss));
    tt_ok(tsr_detector_train(b2, tr, N, &c, &loss2));
    tsr_set_num_threads(1);
    assert_memory_equal(a->params, b2->params, a->nparams * sizeof(float));
    assert_true(loss == loss2);
    tsr_malconv_free(a);
    tsr_malconv_free(b2);
    c.epochs = 0;
    tt_fails(tsr_detector_train(m2, tr, N, &c, NULL), TSR_ERR_INVALID_ARG);

    /* Model file: round trip, then refusals. */
    char path[512];
    snprintf(path, sizeof path, "%s", tt_temp_path(".tmc"));
    assert_int_equal(m->val_permille, -1); /* not recorded: a model made, not trained */
    m->val_permille = 250;
    tt_ok(tsr_malconv_save(m, path, 0));
    tsr_malconv *back;
    tt_ok(tsr_malconv_load(&back, path));
    assert_int_equal(back->val_permille, 250);
    assert_memory_equal(&back->cfg, &m->cfg, sizeof m->cfg);
    assert_memory_equal(back->params, m->params, m->nparams * sizeof(float));
    tsr_malconv_free(back);
    uint8_t *b;
    size_t len;
    tt_ok(tsr_read_whole_file(path, 1u << 30, "model", &b, &len));
    remove(path);
    tt_fails(tsr_malconv_parse(&back, b, len - 1), TSR_ERR_FORMAT);
    tt_fails(tsr_malconv_parse(&back, b, 20), TSR_ERR_FORMAT);
    b[len / 2] ^= 1;
    tt_fails(tsr_malconv_parse(&back, b, len), TSR_ERR_CHECKSUM);
    b[len / 2] ^= 1;
    b[8] = 3;
    tt_fails(tsr_malconv_parse(&back, b, len), TSR_ERR_VERSION);
    b[8] = 2;
    b[40] = 0xe9, b[41] = 0x03; /* validation split 1001 per mille */
    tt_fails(tsr_malconv_parse(&back, b, len), TSR_ERR_FORMAT);
    b[40] = 250 & 0xff, b[41] = 0;
    /* a version-1 file (no val_permille field) still reads, as not recorded */
    {
        size_t l1 = len - 4;
        uint8_t *v1 = tsr_alloc(l1);
        memcpy(v1, b, 40);
        memcpy(v1 + 40, b + 44, len - 44 - 32);
        v1[8] = 1;
        crypto_generichash(v1 + l1 - 32, 32, v1, l1 - 32, NULL, 0);
        tt_ok(tsr_malconv_parse(&back, v1, l1));
        assert_int_equal(back->val_permille, -1);
        assert_memory_equal(back->params, m->params, m->nparams * sizeof(float));
        tsr_malconv_free(back);
        tsr_free(v1);
    }
    b[16] = 9; /* filters 8 -> 9: the parameter count no longer matches */
    tt_fails(tsr_malconv_parse(&back, b, len), TSR_ERR_FORMAT);
    b[16] = 8;
    tt_ok(tsr_malconv_parse(&back, b, len));
    tsr_malconv_free(back);
    tsr_free(b);
    fixture_free(&f);
}

/* Against saturation: label smoothing bounds the logits (the loss optimum is
 * +-log((2 - s) / s)), early stopping keeps the epoch of least validation loss and
 * reports it, and the arguments are checked. */
static void test_smoothing_and_validation(void **state) {
    (void)state;
    fixture f;
    fixture_init(&f, 40);
    const tsr_detector_example *tr = f.a, *va = f.b;
    tsr_malconv *m = f.m, *plain = f.m2;
    tsr_detector_train_cfg c = f.c;
    tt_ok(tsr_detector_train(plain, tr, N, &c, NULL));
    c.label_smoothing = 0.2f;
    c.weight_decay = 1e-3f;
    tsr_detector_train_info info;
    tt_ok(tsr_detector_fit(m, tr, N, &c, &info));
    assert_int_equal(info.epochs_run, 40);
    assert_int_equal(info.best_epoch, 40);
    float sp[N], ss[N];
    tt_ok(tsr_detector_scores(plain, tr, N, sp));
    tt_ok(tsr_detector_scores(m, tr, N, ss));
    float maxp = 0, maxs = 0;
    int lab[N];
    for (int i = 0; i < N; i++) {
        float dp = fabsf(sp[i] - 0.5f), ds = fabsf(ss[i] - 0.5f);
        maxp = dp > maxp ? dp : maxp;
        maxs = ds > maxs ? ds : maxs;
        lab[i] = tr[i].label;
    }
    tsr_detector_metrics met;
    tsr_detector_metrics_compute(ss, lab, N, 0.5, &met);
    print_message(
        "largest |score - 0.5|: plain %.5f, smoothed %.5f (optimum 0.4); train acc %.3f\n", maxp,
        maxs, met.accuracy);
    assert_true(met.accuracy >= 0.9);
    assert_true(maxs < 0.45f); /* bounded near the optimum 0.9 / 0.1, not saturated */
    assert_true(maxp > maxs);
    /* early stopping: the kept parameters have the reported validation loss, the best of the run */
    tsr_malconv *e;
    tt_ok(tsr_malconv_create(&e, &SMALL, 5));
    c.epochs = 12;
    c.val = va;
    c.nval = N;
    c.patience = 3;
    tt_ok(tsr_detector_fit(e, tr, N, &c, &info));
    assert_true(info.best_epoch >= 1 && info.best_epoch <= info.epochs_run);
    assert_true(info.epochs_run == 12 || info.epochs_run == info.best_epoch + 3);
    double vl;
    tt_ok(tsr_detector_loss(e, va, N, &vl));
    assert_true(fabs(vl - info.best_val_loss) < 1e-9);
    print_message("early stopping: %d epochs run, kept %d (validation loss %.4f)\n",
                  info.epochs_run, info.best_epoch, vl);
    c.label_smoothing = 1.0f;
    tt_fails(tsr_detector_fit(e, tr, N, &c, &info), TSR_ERR_INVALID_ARG);
    /* a refused call leaves info zero, not the last run's report */
    assert_int_equal(info.epochs_run, 0);
    assert_int_equal(info.best_epoch, 0);
    c.label_smoothing = 0;
    c.adv_frac = 0.5f;
    c.adv_steps = 0;
    tt_fails(tsr_detector_fit(e, tr, N, &c, &info), TSR_ERR_INVALID_ARG);
    /* adversarial training on files the PE reader refuses trains on them as they are */
    c.adv_steps = 2;
    c.adv_size = 64;
    c.epochs = 1;
    c.nval = 0;
    tt_ok(tsr_detector_fit(e, tr, N, &c, &info));
    assert_int_equal(info.adv_examples, 0);
    tsr_malconv_free(e);
    fixture_free(&f);
}

static void test_manifest(void **state) {
    (void)state;
    static const char good[] = "file,label,split,source,bytes,sha256\n"
                               "a.exe,1,train,share:x,10,ab\n"
                               "b_2.dll,0,test,wine:b,0,cd\n";
    tsr_corpus c;
    tt_ok(tsr_corpus_parse_manifest(&c, good, strlen(good)));
    assert_int_equal(c.n, 2);
    assert_string_equal(c.f[0].name, "a.exe");
    assert_int_equal(c.f[0].label, 1);
    assert_int_equal(c.f[0].split, TSR_SPLIT_TRAIN);
    assert_int_equal(c.f[0].len, 10);
    assert_string_equal(c.f[1].source, "wine:b");
    assert_int_equal(c.f[1].split, TSR_SPLIT_TEST);
    tsr_corpus_free(&c);
    static const char *const bad[] = {
        "file,label,split\n",
        "file,label,split,source,bytes,sha256\na.exe,2,train,s,1,x\n",
        "file,label,split,source,bytes,sha256\na.exe,1,dev,s,1,x\n",
        "file,label,split,source,bytes,sha256\n../a.exe,1,train,s,1,x\n",
        "file,label,split,source,bytes,sha256\n.a,1,train,s,1,x\n",
        "file,label,split,source,bytes,sha256\na.exe,1,train,s,1\n",
        "file,label,split,source,bytes,sha256\na.exe,1,train,s,1,x,y\n",
        "file,label,split,source,bytes,sha256\na.exe,1,train,s,-1,x\n",
        "file,label,split,source,bytes,sha256\na.exe,1,train,s,99999999999,x\n",
        "file,label,split,source,bytes,sha256\na.exe,1,train,,1,x\n",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        tt_fails(tsr_corpus_parse_manifest(&c, bad[i], strlen(bad[i])), TSR_ERR_FORMAT);
        tsr_corpus_free(&c);
    }
    tt_fails(tsr_corpus_load(&c, "/nonexistent-corpus-dir"), TSR_ERR_NOT_FOUND);
}

int main(void) {
    tsr_set_num_threads(1);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_metrics_by_hand),
        cmocka_unit_test(test_training),
        cmocka_unit_test(test_smoothing_and_validation),
        cmocka_unit_test(test_manifest),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
