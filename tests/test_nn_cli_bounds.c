/*
 * tests/test_nn_cli_bounds.c - the inference verbs on hostile and large
 * inputs: a plan whose header declares a 2 GiB payload, a small gzip IDX
 * file declaring hundreds of thousands of images (encrypt --count 1 must
 * stay within 1 GB of address space), and infer --max-memory. Runs the
 * binary built next to the tests (TSR_BINARY_DIR).
 */
#include "clitest.h"
#include "idxgen.h"

#include "core/io.h"
#include "train/model.h"
#include "train/model_onnx.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#define INSECURE " --insecure-parameters-for-testing"

/* A small plan (batch 2, N = 2^11) and its keys, made once for the group. */
static int setup(void **state) {
    if (tt_cli_setup(state) != 0) return -1;
    tsr_act_spec as;
    tsr_model *m;
    if (tsr_act_parse("poly2", &as) != TSR_OK ||
        tsr_model_build(&m, "cryptonets", &as, 4) != TSR_OK)
        return -1;
    tsr_status st = tsr_model_save_onnx(m, NULL, tt_cli_path("m.onnx"));
    tsr_model_free(m);
    if (st != TSR_OK) return -1;
    if (tt_cli_run("compile %s --batch 2 --log-n 11 --no-measure --out %s" INSECURE,
                   tt_cli_path("m.onnx"), tt_cli_path("a.plan")) != 0)
        return -1;
    return tt_cli_run("keygen %s --out-secret %s --out-eval %s" INSECURE, tt_cli_path("a.plan"),
                      tt_cli_path("c.sk"), tt_cli_path("s.evk")) == 0
               ? 0
               : -1;
}

/* Run the command with its address space limited to kib KiB (the limit is inherited by the
 * shell and tessera). ASan reserves terabytes of address space, so sanitized builds run without
 * the limit: the command must still succeed and its checks still hold. */
static int run_limited(long kib, const char *args) {
    struct rlimit old, lim;
    int limited = !tt_sanitized() && getrlimit(RLIMIT_AS, &old) == 0;
    if (limited) {
        lim = old;
        lim.rlim_cur = (rlim_t)kib * 1024;
        if (old.rlim_max != RLIM_INFINITY && lim.rlim_cur > old.rlim_max)
            lim.rlim_cur = old.rlim_max;
        assert_int_equal(setrlimit(RLIMIT_AS, &lim), 0);
    }
    int rc = tt_cli_run("%s", args);
    if (limited) assert_int_equal(setrlimit(RLIMIT_AS, &old), 0);
    return rc;
}

/* A 265 KB gzip IDX file declaring 342,392 images: encrypt --count 1 reads only the image it
 * needs (it used to hold 268 MB of pixels and 2.1 GB of doubles). */
static void test_encrypt_large_idx(void **state) {
    (void)state;
    size_t len;
    uint8_t *gz = tt_zero_idx_gz(342392, 28, 28, &len);
    assert_non_null(gz);
    FILE *f = fopen(tt_cli_path("big-images-idx3-ubyte.gz"), "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(gz, 1, len, f), len);
    fclose(f);
    free(gz);
    char args[4096];
    snprintf(args, sizeof args, "encrypt %s %s --in %s --count 1 --out %s" INSECURE,
             tt_cli_path("a.plan"), tt_cli_path("c.sk"), tt_cli_path("big-images-idx3-ubyte.gz"),
             tt_cli_path("one.ct"));
    tt_cli_expect(run_limited(1000000, args), 0, "encrypt one image of a huge IDX file");
    assert_non_null(strstr(tt_cli_output(), "encrypted 1 sample"));
    /* an offset past the end names the file's count */
    tt_cli_expect(tt_cli_run("encrypt %s %s --in %s --offset 342392 --count 1 --out %s" INSECURE,
                             tt_cli_path("a.plan"), tt_cli_path("c.sk"),
                             tt_cli_path("big-images-idx3-ubyte.gz"), tt_cli_path("x.ct")),
                  2, "encrypt past the end");
    assert_non_null(strstr(tt_cli_output(), "342392 samples"));
}

/* A 36-byte plan declaring a 2 GiB payload is refused from its header, in bounded memory. */
static void test_hostile_plan(void **state) {
    (void)state;
    uint8_t h[TSR_FRAME_HEADER_SIZE] = { 'T', 'S', 'R', 0x1a, TSR_FRAME_VERSION };
    h[6] = TSR_OBJ_PLAN;
    h[28 + 3] = 0x80; /* payload length 2^31 */
    FILE *f = fopen(tt_cli_path("evil.plan"), "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(h, 1, sizeof h, f), sizeof h);
    fclose(f);
    const char *verbs[] = { "keygen %s --out-secret %s --out-eval %s" INSECURE,
                            "infer %s %s --in %s --out x.ct" INSECURE };
    for (int i = 0; i < 2; i++) {
        char args[4096];
        snprintf(args, sizeof args, verbs[i], tt_cli_path("evil.plan"), tt_cli_path("x.sk"),
                 tt_cli_path("x.evk"));
        tt_cli_expect(run_limited(1000000, args), 2, "a plan declaring 2 GiB");
        assert_non_null(strstr(tt_cli_output(), "only 0 bytes follow its header"));
    }
}

/* infer --max-memory: a plan predicted to need more is refused before any work, naming both
 * numbers; sizes take units. */
static void test_max_memory(void **state) {
    (void)state;
    tt_cli_expect(tt_cli_run("encrypt %s %s --in %s --count 1 --out %s" INSECURE,
                             tt_cli_path("a.plan"), tt_cli_path("c.sk"),
                             tt_cli_path("big-images-idx3-ubyte.gz"), tt_cli_path("in.ct")),
                  0, "encrypt");
    tt_cli_expect(tt_cli_run("infer %s %s --in %s --out %s --max-memory 1M" INSECURE,
                             tt_cli_path("a.plan"), tt_cli_path("s.evk"), tt_cli_path("in.ct"),
                             tt_cli_path("out.ct")),
                  2, "infer above --max-memory");
    const char *o = tt_cli_output();
    assert_non_null(strstr(o, "predicted peak memory is"));
    assert_non_null(strstr(o, "more than the 1 MiB allowed"));
    assert_null(strstr(o, "encrypted predictions"));
    tt_cli_expect(tt_cli_run("infer %s %s --in %s --out %s --max-memory 0.5K" INSECURE,
                             tt_cli_path("a.plan"), tt_cli_path("s.evk"), tt_cli_path("in.ct"),
                             tt_cli_path("out.ct")),
                  2, "infer above --max-memory in KiB");
    const char *bad[] = { "12Q", "-1G", "0", "G", "1GiBs", "nan" };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        tt_cli_expect(tt_cli_run("infer %s %s --in %s --out %s --max-memory %s" INSECURE,
                                 tt_cli_path("a.plan"), tt_cli_path("s.evk"), tt_cli_path("in.ct"),
                                 tt_cli_path("out.ct"), bad[i]),
                      2, bad[i]);
        assert_non_null(strstr(tt_cli_output(), "--max-memory needs a size"));
    }
    tt_cli_expect(tt_cli_run("infer %s %s --in %s --out %s --max-memory 64GiB" INSECURE,
                             tt_cli_path("a.plan"), tt_cli_path("s.evk"), tt_cli_path("in.ct"),
                             tt_cli_path("out.ct")),
                  0, "infer within --max-memory");
    assert_non_null(strstr(tt_cli_output(), "encrypted predictions for 1 sample"));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_encrypt_large_idx),
        cmocka_unit_test(test_hostile_plan),
        cmocka_unit_test(test_max_memory),
    };
    return cmocka_run_group_tests(tests, setup, tt_cli_teardown);
}
