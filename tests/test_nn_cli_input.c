/*
 * tests/test_nn_cli_input.c - the inference verbs on hostile, large and
 * odd inputs: a plan whose header declares a 2 GiB payload, a small gzip
 * IDX file declaring hundreds of thousands of images (encrypt --count 1 must
 * stay within 1 GB of address space), infer --max-memory; exit codes of bad
 * input (docs/INFERENCE.md: 2), messages (articles, the object a checksum
 * covers, escaped terminal codes, command-line names), CSV / .npy edge
 * cases, decrypt writing nothing on bad --labels. Runs the binary built next
 * to the tests (TSR_BINARY_DIR).
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
#include <sys/stat.h>

#define INSECURE " --insecure-parameters-for-testing"

static int make_model(const char *act, const char *path) {
    tsr_act_spec as;
    tsr_model *m;
    if (tsr_act_parse(act, &as) != TSR_OK || tsr_model_build(&m, "cryptonets", &as, 4) != TSR_OK)
        return -1;
    tsr_status st = tsr_model_save_onnx(m, NULL, path);
    tsr_model_free(m);
    return st == TSR_OK ? 0 : -1;
}

/* Write n bytes to a file of the temporary directory. */
static void put_file(const char *name, const void *data, size_t n) {
    FILE *f = fopen(tt_cli_path(name), "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(data, 1, n, f), n);
    fclose(f);
}

/* A CSV of `lines` samples of 784 copies of `value` (a string written as it is). */
static void put_csv(const char *name, int lines, const char *value) {
    FILE *f = fopen(tt_cli_path(name), "w");
    assert_non_null(f);
    for (int i = 0; i < lines; i++)
        for (int k = 0; k < 784; k++) fprintf(f, "%s%c", value, k == 783 ? '\n' : ',');
    fclose(f);
}

/* A small plan (batch 2, N = 2^11) and its keys, made once for the group. */
static int setup(void **state) {
    if (tt_cli_setup(state) != 0) return -1;
    if (make_model("poly2", tt_cli_path("m.onnx")) != 0) return -1;
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

/* Bad input exits with 2 (docs/INFERENCE.md): keys of another plan, an unsupported operator,
 * values no scale can hold. */
static void test_exit_codes(void **state) {
    (void)state;
    tt_cli_expect(tt_cli_run("compile %s --batch 2 --log-n 11 --packing batch --no-measure --out "
                             "%s" INSECURE,
                             tt_cli_path("m.onnx"), tt_cli_path("b.plan")),
                  0, "compile a second plan");
    tt_cli_expect(tt_cli_run("keygen %s --out-secret %s --out-eval %s" INSECURE,
                             tt_cli_path("b.plan"), tt_cli_path("b.sk"), tt_cli_path("b.evk")),
                  0, "keygen for it");
    put_csv("in.csv", 1, "0.5");
    tt_cli_expect(tt_cli_run("encrypt %s %s --in %s --out %s" INSECURE, tt_cli_path("a.plan"),
                             tt_cli_path("c.sk"), tt_cli_path("in.csv"), tt_cli_path("csv.ct")),
                  0, "encrypt a CSV");
    tt_cli_expect(tt_cli_run("infer %s %s --in %s --out %s" INSECURE, tt_cli_path("a.plan"),
                             tt_cli_path("b.evk"), tt_cli_path("csv.ct"), tt_cli_path("x.ct")),
                  2, "infer with another plan's keys");
    assert_non_null(strstr(tt_cli_output(), "another plan"));
    assert_int_equal(make_model("relu", tt_cli_path("relu.onnx")), 0);
    tt_cli_expect(tt_cli_run("compile %s --batch 1 --out %s", tt_cli_path("relu.onnx"),
                             tt_cli_path("r.plan")),
                  2, "compile an unsupported operator");
    /* a model whose input scale (metadata) is 1e300: no CKKS scale holds its values */
    FILE *f = fopen(tt_cli_path("m.onnx"), "rb");
    assert_non_null(f);
    unsigned char *m = malloc(1 << 20);
    size_t mlen = fread(m, 1, 1 << 20, f);
    fclose(f);
    int patched = 0;
    for (size_t i = 0; i + 15 <= mlen; i++)
        if (memcmp(m + i, "\x12\r0.00392156863", 15) == 0) {
            memcpy(m + i + 2, "1.0000000e300", 13);
            patched++;
        }
    assert_int_equal(patched, 1);
    put_file("huge.onnx", m, mlen);
    free(m);
    unsigned char idx[16 + 784] = { 0, 0, 8, 3, 0, 0, 0, 1, 0, 0, 0, 28, 0, 0, 0, 28 };
    memset(idx + 16, 255, 784);
    put_file("white-images-idx3-ubyte", idx, sizeof idx);
    tt_cli_expect(tt_cli_run("predict %s --in %s --log-n 11 --backend mockup" INSECURE,
                             tt_cli_path("huge.onnx"), tt_cli_path("white-images-idx3-ubyte")),
                  2, "a model scaling its inputs by 1e300");
    assert_non_null(strstr(tt_cli_output(), "scale mismatch or overflow"));
    /* inputs of 1e300 are refused by the plan's input range */
    put_csv("huge.csv", 1, "1e300");
    tt_cli_expect(tt_cli_run("encrypt %s %s --in %s --out %s" INSECURE, tt_cli_path("a.plan"),
                             tt_cli_path("c.sk"), tt_cli_path("huge.csv"), tt_cli_path("x.ct")),
                  2, "encrypt values of 1e300");
    tt_cli_expect(tt_cli_run("keygen %s --out-secret %s --out-eval %s" INSECURE,
                             tt_cli_path("missing.plan"), tt_cli_path("x.sk"),
                             tt_cli_path("x.evk")),
                  2, "a missing plan");
}

/* Messages: articles right, the object a checksum covers named, terminal codes from a model
 * escaped, the command-line flag instead of a C name, the right thing blamed. */
static void test_messages(void **state) {
    (void)state;
    tt_cli_expect(tt_cli_run("encrypt %s %s --in %s --out %s" INSECURE, tt_cli_path("a.plan"),
                             tt_cli_path("s.evk"), tt_cli_path("in.csv"), tt_cli_path("x.ct")),
                  2, "encrypt with evaluation keys");
    assert_non_null(strstr(tt_cli_output(), "holds evaluation keys, not a secret or public key"));
    tt_cli_expect(tt_cli_run("infer %s %s --in %s --out %s" INSECURE, tt_cli_path("a.plan"),
                             tt_cli_path("a.plan"), tt_cli_path("csv.ct"), tt_cli_path("x.ct")),
                  2, "a plan given as evaluation keys");
    assert_non_null(
        strstr(tt_cli_output(), "expected evaluation keys but the input holds an inference plan"));
    tt_cli_expect(tt_cli_run("decrypt %s %s --in %s --out %s" INSECURE, tt_cli_path("a.plan"),
                             tt_cli_path("c.sk"), tt_cli_path("csv.ct"), tt_cli_path("x.csv")),
                  2, "decrypt encrypted inputs");
    assert_non_null(
        strstr(tt_cli_output(), "holds encrypted inputs where encrypted outputs are expected"));
    /* a flipped bit deep in the evaluation keys: the checksum covers the whole object */
    FILE *f = fopen(tt_cli_path("s.evk"), "rb");
    assert_non_null(f);
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *b = malloc((size_t)len);
    assert_int_equal(fread(b, 1, (size_t)len, f), (size_t)len);
    fclose(f);
    b[len - 100] ^= 0x40;
    put_file("bad.evk", b, (size_t)len);
    free(b);
    tt_cli_expect(tt_cli_run("infer %s %s --in %s --out %s" INSECURE, tt_cli_path("a.plan"),
                             tt_cli_path("bad.evk"), tt_cli_path("csv.ct"), tt_cli_path("x.ct")),
                  2, "corrupted evaluation keys");
    assert_non_null(strstr(tt_cli_output(), "checksum of the evaluation keys"));
    assert_null(strstr(tt_cli_output(), "limb"));
    /* a node named with a terminal escape sequence */
    f = fopen(tt_cli_path("relu.onnx"), "rb");
    assert_non_null(f);
    unsigned char *m = malloc(1 << 20);
    size_t mlen = fread(m, 1, 1 << 20, f);
    fclose(f);
    int patched = 0;
    for (size_t i = 0; i + 11 <= mlen; i++)
        if (memcmp(m + i,
                   "\x1a\x09"
                   "conv1_act",
                   11) == 0) {
            memcpy(m + i + 2, "\x1b[31mEVIL", 9);
            patched++;
        }
    assert_int_equal(patched, 1);
    put_file("esc.onnx", m, mlen);
    free(m);
    tt_cli_expect(
        tt_cli_run("compile %s --batch 1 --out %s", tt_cli_path("esc.onnx"), tt_cli_path("r.plan")),
        2, "compile a model with an escape code in a node name");
    assert_null(strchr(tt_cli_output(), 0x1b));
    assert_non_null(strstr(tt_cli_output(), "'\\x1b[31mEVIL' (Relu)"));
    /* a range the fit cannot use is the option's fault, not the model file's */
    tt_cli_expect(tt_cli_run("compile %s --batch 1 --approx-relu 2 --range 1e-300 --out %s",
                             tt_cli_path("relu.onnx"), tt_cli_path("r.plan")),
                  2, "--range 1e-300");
    assert_non_null(strstr(tt_cli_output(), "range B in [1e-6, 1e6]"));
    assert_null(strstr(tt_cli_output(), "relu.onnx"));
    /* insecure parameters: the command line's flag, not the C API's */
    tt_cli_expect(tt_cli_run("ckks params --log-n 11 --levels 5"), 2, "insecure parameters");
    assert_non_null(strstr(tt_cli_output(), "--insecure-parameters-for-testing"));
    assert_null(strstr(tt_cli_output(), "TSR_CKKS_"));
}

/* Numbers and files at the edges: subnormals are numbers, NUL bytes and duplicate .npy keys are
 * not; decrypt writes no predictions when --labels is bad, predict refuses too few labels. */
static void test_input_edges(void **state) {
    (void)state;
    put_csv("tiny.csv", 1, "1e-310");
    tt_cli_expect(tt_cli_run("encrypt %s %s --in %s --out %s" INSECURE, tt_cli_path("a.plan"),
                             tt_cli_path("c.sk"), tt_cli_path("tiny.csv"), tt_cli_path("x.ct")),
                  0, "a subnormal in a CSV");
    tt_cli_expect(tt_cli_run("compile %s --batch 1 --approx-relu 2 --range 1e-310 --out %s",
                             tt_cli_path("relu.onnx"), tt_cli_path("r.plan")),
                  2, "--range 1e-310");
    assert_null(strstr(tt_cli_output(), "finite"));
    char line[784 * 2 + 1];
    for (int k = 0; k < 784; k++) line[2 * k] = '0', line[2 * k + 1] = k == 783 ? '\n' : ',';
    line[1] = '\0'; /* the first field is "0\0" */
    put_file("nul.csv", line, sizeof line - 1);
    tt_cli_expect(tt_cli_run("encrypt %s %s --in %s --out %s" INSECURE, tt_cli_path("a.plan"),
                             tt_cli_path("c.sk"), tt_cli_path("nul.csv"), tt_cli_path("x.ct")),
                  2, "a NUL byte in a CSV field");
    assert_non_null(strstr(tt_cli_output(), "NUL"));
    /* .npy with the key 'descr' twice */
    const char *hd =
        "{'descr': '<f8', 'descr': '|u1', 'fortran_order': False, 'shape': (1, 784), }";
    size_t hl = strlen(hd), pad = 64 - (10 + hl + 1) % 64;
    size_t total = 10 + hl + pad + 1 + 784 * 8;
    unsigned char *npy = calloc(1, total);
    memcpy(npy, "\x93NUMPY\x01\x00", 8);
    npy[8] = (unsigned char)((hl + pad + 1) & 255);
    npy[9] = (unsigned char)((hl + pad + 1) >> 8);
    memcpy(npy + 10, hd, hl);
    memset(npy + 10 + hl, ' ', pad);
    npy[10 + hl + pad] = '\n';
    put_file("dup.npy", npy, total);
    free(npy);
    tt_cli_expect(tt_cli_run("encrypt %s %s --in %s --out %s" INSECURE, tt_cli_path("a.plan"),
                             tt_cli_path("c.sk"), tt_cli_path("dup.npy"), tt_cli_path("x.ct")),
                  2, "a .npy header with a duplicate key");
    assert_non_null(strstr(tt_cli_output(), "'descr' twice"));
    /* decrypt with bad --labels writes nothing (out.ct: test_max_memory's inference) */
    put_file("labels.csv", "0.5\n", 4);
    tt_cli_expect(tt_cli_run("decrypt %s %s --in %s --out %s --labels %s" INSECURE,
                             tt_cli_path("a.plan"), tt_cli_path("c.sk"), tt_cli_path("out.ct"),
                             tt_cli_path("pred.csv"), tt_cli_path("labels.csv")),
                  2, "decrypt with bad labels");
    struct stat sb;
    assert_int_not_equal(stat(tt_cli_path("pred.csv"), &sb), 0);
    put_file("labels.csv", "3\n", 2);
    tt_cli_expect(tt_cli_run("decrypt %s %s --in %s --out %s --labels %s" INSECURE,
                             tt_cli_path("a.plan"), tt_cli_path("c.sk"), tt_cli_path("out.ct"),
                             tt_cli_path("pred.csv"), tt_cli_path("labels.csv")),
                  0, "decrypt with good labels");
    assert_int_equal(stat(tt_cli_path("pred.csv"), &sb), 0);
    /* predict reads --labels as decrypt does: 1 label for 2 samples is refused before running */
    put_csv("two.csv", 2, "0");
    tt_cli_expect(tt_cli_run("predict %s --in %s --labels %s --backend mockup" INSECURE,
                             tt_cli_path("a.plan"), tt_cli_path("two.csv"),
                             tt_cli_path("labels.csv")),
                  2, "predict with too few labels");
    assert_non_null(strstr(tt_cli_output(), "has 1 labels from offset 0, 2 needed"));
    assert_null(strstr(tt_cli_output(), "accuracy"));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_encrypt_large_idx), cmocka_unit_test(test_hostile_plan),
        cmocka_unit_test(test_max_memory),        cmocka_unit_test(test_exit_codes),
        cmocka_unit_test(test_messages),          cmocka_unit_test(test_input_edges),
    };
    return cmocka_run_group_tests(tests, setup, tt_cli_teardown);
}
