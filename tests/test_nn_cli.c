/*
 * tests/test_nn_cli.c - the client/server verbs of the `tessera` command on a
 * small model with test-only parameters: the whole workflow (compile, keygen,
 * encrypt, infer, decrypt) and its refusals: a secret key given to the
 * server, keys or ciphertexts of another plan, corrupted files, a batch
 * larger than the plan, unsupported models, bad usage. Runs the binary built
 * next to the tests (TSR_BINARY_DIR).
 */
#include "clitest.h"

#include "train/model.h"
#include "train/model_onnx.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define INSECURE " --insecure-parameters-for-testing"
#define IMAGES   "/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz"
#define LABELS   "/usr/share/datasets/fashion-mnist/t10k-labels-idx1-ubyte.gz"

static void make_model(const char *path, const char *act) {
    tsr_act_spec as;
    tt_ok(tsr_act_parse(act, &as));
    tsr_model *m;
    tt_ok(tsr_model_build(&m, "cryptonets", &as, 4));
    tt_ok(tsr_model_save_onnx(m, NULL, path));
    tsr_model_free(m);
}

static void test_workflow(void **state) {
    (void)state;
    struct stat sb;
    int have_data = stat(IMAGES, &sb) == 0 && stat(LABELS, &sb) == 0;
    make_model(tt_cli_path("m.onnx"), "poly2");
    tt_cli_expect(tt_cli_run("compile %s --batch 4 --log-n 11 --no-measure --out %s" INSECURE,
                             tt_cli_path("m.onnx"), tt_cli_path("a.plan")),
                  0, "compile");
    tt_cli_expect(
        tt_cli_run("compile %s --batch 2 --log-n 11 --packing batch --no-measure --out %s" INSECURE,
                   tt_cli_path("m.onnx"), tt_cli_path("b.plan")),
        0, "compile a second plan");
    /* without the flag, a test-only plan is refused everywhere */
    tt_cli_expect_fail(tt_cli_run("keygen %s --out-secret %s --out-eval %s", tt_cli_path("a.plan"),
                                  tt_cli_path("c.sk"), tt_cli_path("s.evk")),
                       "keygen without the test flag", "security");
    tt_cli_expect(tt_cli_run("keygen %s --out-secret %s --out-eval %s --out-public %s" INSECURE,
                             tt_cli_path("a.plan"), tt_cli_path("c.sk"), tt_cli_path("s.evk"),
                             tt_cli_path("s.pk")),
                  0, "keygen");
    assert_int_equal(stat(tt_cli_path("c.sk"), &sb), 0);
    assert_int_equal(sb.st_mode & 0777, 0600);
    tt_cli_expect(tt_cli_run("keygen %s --out-secret %s --out-eval %s" INSECURE,
                             tt_cli_path("b.plan"), tt_cli_path("c2.sk"), tt_cli_path("s2.evk")),
                  0, "keygen for the second plan");
    /* inputs: IDX if the dataset is installed, else a CSV of the same shape */
    const char *data = IMAGES;
    if (!have_data) {
        FILE *fp = fopen(tt_cli_path("in.csv"), "w");
        for (int i = 0; i < 5; i++)
            for (int k = 0; k < 784; k++)
                fprintf(fp, "%g%c", 0.001 * ((i * 7 + k) % 100), k == 783 ? '\n' : ',');
        fclose(fp);
        data = tt_cli_path("in.csv");
    }
    tt_cli_expect(tt_cli_run("encrypt %s %s --in %s --count 4 --out %s" INSECURE,
                             tt_cli_path("a.plan"), tt_cli_path("c.sk"), data,
                             tt_cli_path("in.ct")),
                  0, "encrypt (secret key)");
    tt_cli_expect(tt_cli_run("encrypt %s %s --in %s --count 3 --out %s" INSECURE,
                             tt_cli_path("a.plan"), tt_cli_path("s.pk"), data,
                             tt_cli_path("in_pk.ct")),
                  0, "encrypt (public key)");
    tt_cli_expect(tt_cli_run("encrypt %s %s --in %s --count 5 --out %s" INSECURE,
                             tt_cli_path("a.plan"), tt_cli_path("c.sk"), data, tt_cli_path("x.ct")),
                  2, "encrypt more samples than the batch");
    tt_cli_expect(tt_cli_run("encrypt %s %s --in %s --out %s" INSECURE, tt_cli_path("a.plan"),
                             tt_cli_path("s.evk"), data, tt_cli_path("x.ct")),
                  2, "encrypt with evaluation keys");
    tt_cli_expect(tt_cli_run("infer %s %s --in %s --out %s --report %s --chart %s" INSECURE,
                             tt_cli_path("a.plan"), tt_cli_path("s.evk"), tt_cli_path("in.ct"),
                             tt_cli_path("out.ct"), tt_cli_path("r.json"), tt_cli_path("r.svg")),
                  0, "infer");
    const char *rep = tt_slurp(tt_cli_path("r.json"));
    assert_non_null(rep);
    assert_non_null(strstr(rep, "\"steps\""));
    assert_non_null(strstr(rep, "\"op_seconds\""));
    assert_non_null(strstr(rep, "\"rotations\""));
    rep = tt_slurp(tt_cli_path("r.svg"));
    assert_non_null(rep);
    assert_non_null(strstr(rep, "<svg"));
    assert_non_null(strstr(rep, "</svg>"));
    tt_cli_expect(tt_cli_run("infer %s %s --in %s --out %s" INSECURE, tt_cli_path("a.plan"),
                             tt_cli_path("s.evk"), tt_cli_path("in_pk.ct"),
                             tt_cli_path("out_pk.ct")),
                  0, "infer (public-key inputs)");
    if (have_data)
        tt_cli_expect(tt_cli_run("decrypt %s %s --in %s --out %s --labels " LABELS
                                 " --compare " IMAGES INSECURE,
                                 tt_cli_path("a.plan"), tt_cli_path("c.sk"), tt_cli_path("out.ct"),
                                 tt_cli_path("pred.csv")),
                      0, "decrypt");
    else
        tt_cli_expect(tt_cli_run("decrypt %s %s --in %s --out %s --compare %s" INSECURE,
                                 tt_cli_path("a.plan"), tt_cli_path("c.sk"), tt_cli_path("out.ct"),
                                 tt_cli_path("pred.csv"), data),
                      0, "decrypt");
    assert_non_null(strstr(tt_cli_output(), "agreement with plaintext inference: 100.00%"));
    assert_int_equal(stat(tt_cli_path("pred.csv"), &sb), 0);
    assert_int_equal(sb.st_mode & 0777, 0600); /* decrypted predictions are private */
    char *csv = tt_slurp(tt_cli_path("pred.csv"));
    int lines = 0;
    for (char *c = csv; *c; c++) lines += *c == '\n';
    assert_int_equal(lines, 5);
    /* inputs outside the plan's range (issue 10): values x1000, one value at 100 */
    FILE *fp = fopen(tt_cli_path("big.csv"), "w");
    for (int i = 0; i < 3; i++)
        for (int k = 0; k < 784; k++)
            fprintf(fp, "%g%c", 1e3 * (((i * 7 + k) % 100) - 50), k == 783 ? '\n' : ',');
    fclose(fp);
    fp = fopen(tt_cli_path("one.csv"), "w");
    for (int i = 0; i < 2; i++)
        for (int k = 0; k < 784; k++)
            fprintf(fp, "%g%c", i == 1 && k == 5 ? 100.0 : 0.01 * (k % 50), k == 783 ? '\n' : ',');
    fclose(fp);
    /* encrypt refuses them, naming the sample, the index and the range */
    tt_cli_expect(tt_cli_run("encrypt %s %s --in %s --out %s" INSECURE, tt_cli_path("a.plan"),
                             tt_cli_path("c.sk"), tt_cli_path("big.csv"), tt_cli_path("big.ct")),
                  2, "encrypt out-of-range inputs");
    assert_non_null(strstr(tt_cli_output(), "outside the plan's input range"));
    tt_cli_expect(tt_cli_run("encrypt %s %s --in %s --out %s" INSECURE, tt_cli_path("a.plan"),
                             tt_cli_path("c.sk"), tt_cli_path("one.csv"), tt_cli_path("one.ct")),
                  2, "encrypt one pixel at 100");
    assert_non_null(strstr(tt_cli_output(), "sample 1 (input value 5) is 100, outside"));
    /* ... or clips them with --clip: then the predictions are valid */
    tt_cli_expect(tt_cli_run("encrypt %s %s --in %s --out %s --clip" INSECURE,
                             tt_cli_path("a.plan"), tt_cli_path("c.sk"), tt_cli_path("big.csv"),
                             tt_cli_path("big.ct")),
                  0, "encrypt --clip");
    assert_non_null(strstr(tt_cli_output(), "clipped"));
    tt_cli_expect(tt_cli_run("infer %s %s --in %s --out %s" INSECURE, tt_cli_path("a.plan"),
                             tt_cli_path("s.evk"), tt_cli_path("big.ct"),
                             tt_cli_path("big_out.ct")),
                  0, "infer clipped inputs");
    tt_cli_expect(tt_cli_run("decrypt %s %s --in %s --out %s" INSECURE, tt_cli_path("a.plan"),
                             tt_cli_path("c.sk"), tt_cli_path("big_out.ct"),
                             tt_cli_path("big.pred")),
                  0, "decrypt clipped inputs");
    /* a plan calibrated on such data accepts them (compile warns that the outputs reach the
     * headroom); decrypt flags every such sample instead of printing garbage as a prediction */
    tt_cli_expect(tt_cli_run("compile %s --batch 4 --log-n 11 --no-measure --calibrate %s --out "
                             "%s" INSECURE,
                             tt_cli_path("m.onnx"), tt_cli_path("big.csv"),
                             tt_cli_path("big.plan")),
                  0, "compile calibrated on out-of-range data");
    assert_non_null(strstr(tt_cli_output(), "calibrated on 3 samples"));
    assert_non_null(strstr(tt_cli_output(), "WARNING: on the calibration data the outputs reach"));
    tt_cli_expect(tt_cli_run("keygen %s --out-secret %s --out-eval %s" INSECURE,
                             tt_cli_path("big.plan"), tt_cli_path("big.sk"),
                             tt_cli_path("big.evk")),
                  0, "keygen for the calibrated plan");
    tt_cli_expect(tt_cli_run("encrypt %s %s --in %s --out %s" INSECURE, tt_cli_path("big.plan"),
                             tt_cli_path("big.sk"), tt_cli_path("big.csv"), tt_cli_path("big.ct")),
                  0, "encrypt within the calibrated range");
    tt_cli_expect(tt_cli_run("infer %s %s --in %s --out %s" INSECURE, tt_cli_path("big.plan"),
                             tt_cli_path("big.evk"), tt_cli_path("big.ct"),
                             tt_cli_path("big_out.ct")),
                  0, "infer out-of-headroom inputs");
    tt_cli_expect_fail(tt_cli_run("decrypt %s %s --in %s --out %s --compare %s" INSECURE,
                                  tt_cli_path("big.plan"), tt_cli_path("big.sk"),
                                  tt_cli_path("big_out.ct"), tt_cli_path("big.pred"),
                                  tt_cli_path("big.csv")),
                       "decrypt garbage", "3 of 3 samples decrypted to garbage");
    csv = tt_slurp(tt_cli_path("big.pred"));
    assert_non_null(strstr(csv, "\n0,invalid,nan,"));
    assert_non_null(strstr(csv, "\n2,invalid,nan,"));
    /* the server refuses a secret key */
    tt_cli_expect(tt_cli_run("infer %s %s --in %s --out %s" INSECURE, tt_cli_path("a.plan"),
                             tt_cli_path("c.sk"), tt_cli_path("in.ct"), tt_cli_path("x.ct")),
                  2, "infer with a secret key");
    /* keys of another plan */
    tt_cli_expect_fail(tt_cli_run("infer %s %s --in %s --out %s" INSECURE, tt_cli_path("a.plan"),
                                  tt_cli_path("s2.evk"), tt_cli_path("in.ct"), tt_cli_path("x.ct")),
                       "infer with another plan's keys", "another plan");
    /* ciphertexts of another plan */
    tt_cli_expect(tt_cli_run("infer %s %s --in %s --out %s" INSECURE, tt_cli_path("b.plan"),
                             tt_cli_path("s2.evk"), tt_cli_path("in.ct"), tt_cli_path("x.ct")),
                  2, "infer another plan's ciphertexts");
    tt_cli_expect(tt_cli_run("decrypt %s %s --in %s --out %s" INSECURE, tt_cli_path("a.plan"),
                             tt_cli_path("c.sk"), tt_cli_path("in.ct"), tt_cli_path("x.csv")),
                  2, "decrypt inputs as outputs");
    tt_cli_expect(tt_cli_run("decrypt %s %s --in %s --out %s" INSECURE, tt_cli_path("b.plan"),
                             tt_cli_path("c2.sk"), tt_cli_path("out.ct"), tt_cli_path("x.csv")),
                  2, "decrypt another plan's outputs");
    /* keys of another keygen run for the same plan (issue 10): refused, not garbage */
    tt_cli_expect(tt_cli_run("keygen %s --out-secret %s --out-eval %s" INSECURE,
                             tt_cli_path("a.plan"), tt_cli_path("c4.sk"), tt_cli_path("s4.evk")),
                  0, "a second keygen for the same plan");
    tt_cli_expect_fail(tt_cli_run("infer %s %s --in %s --out %s" INSECURE, tt_cli_path("a.plan"),
                                  tt_cli_path("s4.evk"), tt_cli_path("in.ct"), tt_cli_path("x.ct")),
                       "infer with another keygen's evaluation keys", "another key set");
    tt_cli_expect_fail(tt_cli_run("decrypt %s %s --in %s --out %s" INSECURE, tt_cli_path("a.plan"),
                                  tt_cli_path("c4.sk"), tt_cli_path("out.ct"),
                                  tt_cli_path("x.csv")),
                       "decrypt with another keygen's secret key", "another key set");
    /* corrupted files */
    fp = fopen(tt_cli_path("in.ct"), "r+b");
    fseek(fp, 5000, SEEK_SET);
    int c = fgetc(fp);
    fseek(fp, 5000, SEEK_SET);
    fputc(c ^ 0x21, fp);
    fclose(fp);
    tt_cli_expect(tt_cli_run("infer %s %s --in %s --out %s" INSECURE, tt_cli_path("a.plan"),
                             tt_cli_path("s.evk"), tt_cli_path("in.ct"), tt_cli_path("x.ct")),
                  2, "infer a corrupted file");
    fp = fopen(tt_cli_path("a.plan"), "r+b");
    fseek(fp, 100, SEEK_SET);
    c = fgetc(fp);
    fseek(fp, 100, SEEK_SET);
    fputc(c ^ 0x10, fp);
    fclose(fp);
    tt_cli_expect(tt_cli_run("keygen %s --out-secret %s --out-eval %s" INSECURE,
                             tt_cli_path("a.plan"), tt_cli_path("c3.sk"), tt_cli_path("s3.evk")),
                  2, "keygen with a corrupted plan");
    tt_cli_expect(tt_cli_run("encrypt %s %s --in /nonexistent.csv --out %s" INSECURE,
                             tt_cli_path("b.plan"), tt_cli_path("c2.sk"), tt_cli_path("x.ct")),
                  2, "encrypt a missing file");
}

/* A purely linear model (flatten + one dense layer): no evaluation key at all. */
static void make_linear_model(const char *path) {
    tsr_model *m;
    int t = 0;
    tt_ok(tsr_model_create(&m, 1, 28, 28));
    tt_ok(tsr_model_add_flatten(m, &t, "flatten", t));
    tt_ok(tsr_model_add_dense(m, &t, "fc", t, 10, 1));
    tt_ok(tsr_model_finish(m, t));
    tt_ok(tsr_model_init(m, 5));
    tt_ok(tsr_model_save_onnx(m, NULL, path));
    tsr_model_free(m);
}

/* Issue 10: keygen for a plan that needs no evaluation keys used to fail. */
static void test_linear_plan(void **state) {
    (void)state;
    make_linear_model(tt_cli_path("lin.onnx"));
    FILE *fp = fopen(tt_cli_path("lin.csv"), "w");
    for (int i = 0; i < 3; i++)
        for (int k = 0; k < 784; k++)
            fprintf(fp, "%g%c", 0.002 * ((i * 11 + k) % 100) - 0.1, k == 783 ? '\n' : ',');
    fclose(fp);
    /* one sample per slot: no rotation, no ciphertext product */
    tt_cli_expect(tt_cli_run("compile %s --batch 3 --log-n 11 --packing batch --no-measure --out "
                             "%s" INSECURE,
                             tt_cli_path("lin.onnx"), tt_cli_path("lin.plan")),
                  0, "compile a linear model");
    tt_cli_expect(tt_cli_run("keygen %s --out-secret %s --out-eval %s --out-public %s" INSECURE,
                             tt_cli_path("lin.plan"), tt_cli_path("lin.sk"), tt_cli_path("lin.evk"),
                             tt_cli_path("lin.pk")),
                  0, "keygen for a linear plan");
    assert_non_null(strstr(tt_cli_output(), "(0 rotation keys"));
    tt_cli_expect(tt_cli_run("encrypt %s %s --in %s --out %s" INSECURE, tt_cli_path("lin.plan"),
                             tt_cli_path("lin.pk"), tt_cli_path("lin.csv"),
                             tt_cli_path("lin_in.ct")),
                  0, "encrypt for a linear plan");
    tt_cli_expect(tt_cli_run("infer %s %s --in %s --out %s" INSECURE, tt_cli_path("lin.plan"),
                             tt_cli_path("lin.evk"), tt_cli_path("lin_in.ct"),
                             tt_cli_path("lin_out.ct")),
                  0, "infer a linear plan");
    tt_cli_expect(tt_cli_run("decrypt %s %s --in %s --out %s --compare %s" INSECURE,
                             tt_cli_path("lin.plan"), tt_cli_path("lin.sk"),
                             tt_cli_path("lin_out.ct"), tt_cli_path("lin.pred"),
                             tt_cli_path("lin.csv")),
                  0, "decrypt a linear plan");
    assert_non_null(strstr(tt_cli_output(), "agreement with plaintext inference: 100.00% of 3"));
    /* the empty bundle still names its key set */
    tt_cli_expect(tt_cli_run("keygen %s --out-secret %s --out-eval %s" INSECURE,
                             tt_cli_path("lin.plan"), tt_cli_path("lin2.sk"),
                             tt_cli_path("lin2.evk")),
                  0, "a second keygen for the linear plan");
    tt_cli_expect_fail(tt_cli_run("infer %s %s --in %s --out %s" INSECURE, tt_cli_path("lin.plan"),
                                  tt_cli_path("lin2.evk"), tt_cli_path("lin_in.ct"),
                                  tt_cli_path("x.ct")),
                       "infer with another key set's empty bundle", "another key set");
}

static void test_usage(void **state) {
    (void)state;
    const char *verbs[] = {
        "compile", "keygen", "encrypt", "infer", "decrypt", "predict", "profile"
    };
    for (size_t i = 0; i < sizeof verbs / sizeof verbs[0]; i++) {
        tt_cli_expect(tt_cli_run("%s --help", verbs[i]), 0, verbs[i]);
        assert_non_null(strstr(tt_cli_output(), "usage: tessera"));
        tt_cli_expect(tt_cli_run("%s", verbs[i]), 2, verbs[i]);
        tt_cli_expect(tt_cli_run("%s --bogus-option x", verbs[i]), 2, verbs[i]);
    }
    tt_cli_expect(tt_cli_run("compile x.onnx --batch 0 --out y.plan"), 2, "batch 0");
    tt_cli_expect(tt_cli_run("compile x.onnx --batch 1 --security 80 --out y.plan"), 2,
                  "security 80");
    /* an unsupported model: the report names the nodes and the hint */
    make_model(tt_cli_path("relu.onnx"), "relu");
    tt_cli_expect_fail(tt_cli_run("compile %s --batch 1 --out %s", tt_cli_path("relu.onnx"),
                                  tt_cli_path("r.plan")),
                       "compile a ReLU model", "--approx Relu=");
    assert_non_null(strstr(tt_cli_output(), "(Relu)"));
    tt_cli_expect(
        tt_cli_run("compile %s --batch 1 --log-n 11 --no-measure --approx-relu 2 --range 4 --out "
                   "%s" INSECURE,
                   tt_cli_path("relu.onnx"), tt_cli_path("r.plan")),
        0, "compile with --approx-relu");
    assert_non_null(strstr(tt_cli_output(), "lossy"));
    /* predict in one process on the mockup backend */
    make_model(tt_cli_path("m2.onnx"), "poly2");
    FILE *fp = fopen(tt_cli_path("x.csv"), "w");
    for (int i = 0; i < 3; i++)
        for (int k = 0; k < 784; k++)
            fprintf(fp, "%g%c", 0.002 * ((i * 13 + k) % 100) - 0.1, k == 783 ? '\n' : ',');
    fclose(fp);
    tt_cli_expect(tt_cli_run("predict %s --in %s --log-n 11 --backend mockup --quiet" INSECURE,
                             tt_cli_path("m2.onnx"), tt_cli_path("x.csv")),
                  0, "predict on the mockup");
    assert_non_null(strstr(tt_cli_output(), "agreement with plaintext inference"));
}

static int same_file(const char *a, const char *b) {
    FILE *fa = fopen(a, "rb"), *fb = fopen(b, "rb");
    int same = fa && fb;
    while (same) {
        int ca = fgetc(fa), cb = fgetc(fb);
        if (ca != cb) same = 0;
        if (ca == EOF || cb == EOF) break;
    }
    if (fa) fclose(fa);
    if (fb) fclose(fb);
    return same;
}

/* compile is deterministic and reads and writes nothing but its model, profile and plan
 * (it once timed operations and cached them under $HOME); tessera profile makes a profile
 * that compile takes. */
static void test_deterministic_compile(void **state) {
    (void)state;
    struct stat sb;
    make_model(tt_cli_path("d.onnx"), "poly2");
    for (int i = 1; i <= 2; i++)
        tt_cli_expect(tt_cli_run("compile %s --batch 4 --log-n 10..12 --out %s "
                                 "--quiet" INSECURE,
                                 tt_cli_path("d.onnx"),
                                 tt_cli_path(i == 1 ? "d1.plan" : "d2.plan")),
                      0, "compile");
    assert_true(same_file(tt_cli_path("d1.plan"), tt_cli_path("d2.plan")));
    assert_int_not_equal(stat(tt_cli_path("home/.cache"), &sb), 0);
    /* a profile of this machine (timings; the test checks only that compile takes it) */
    tt_cli_expect(tt_cli_run("profile --log-n 10 --quick --out %s" INSECURE, tt_cli_path("m.prof")),
                  0, "profile");
    tt_cli_expect(tt_cli_run("compile %s --batch 4 --log-n 10 --profile %s --out %s" INSECURE,
                             tt_cli_path("d.onnx"), tt_cli_path("m.prof"), tt_cli_path("d3.plan")),
                  0, "compile with a profile");
    assert_non_null(strstr(tt_cli_output(), "costs: profile"));
    /* the profile says which clock timed it: one thread, the process's CPU time; more, wall */
    const char *txt = tt_slurp(tt_cli_path("m.prof"));
    assert_non_null(txt);
    assert_true(strstr(txt, "\nthreads 1\n") ? strstr(txt, "\n# CPU time of the process") != NULL
                                             : strstr(txt, "\n# wall time") != NULL);
    tt_cli_expect(tt_cli_run_after("OMP_NUM_THREADS=1; export OMP_NUM_THREADS",
                                   "profile --log-n 10 --quick --out %s" INSECURE,
                                   tt_cli_path("m1.prof")),
                  0, "profile with one thread");
    txt = tt_slurp(tt_cli_path("m1.prof"));
    assert_non_null(txt);
    assert_non_null(strstr(txt, "\nthreads 1\n"));
    assert_non_null(strstr(txt, "\n# CPU time of the process (one thread)\n"));
    /* not a profile / no such file / no measurements for the ring asked for */
    FILE *fp = fopen(tt_cli_path("bad.prof"), "w");
    fprintf(fp, "hello\n");
    fclose(fp);
    tt_cli_expect(tt_cli_run("compile %s --batch 4 --log-n 10 --profile %s --out %s" INSECURE,
                             tt_cli_path("d.onnx"), tt_cli_path("bad.prof"), tt_cli_path("x.plan")),
                  2, "compile with a bad profile");
    assert_non_null(strstr(tt_cli_output(), "not a Tessera cost profile"));
    tt_cli_expect_fail(tt_cli_run("compile %s --batch 4 --log-n 10 --profile %s --out %s" INSECURE,
                                  tt_cli_path("d.onnx"), tt_cli_path("none.prof"),
                                  tt_cli_path("x.plan")),
                       "compile with a missing profile", "none.prof");
    tt_cli_expect_fail(tt_cli_run("compile %s --batch 4 --log-n 11 --profile %s --out %s" INSECURE,
                                  tt_cli_path("d.onnx"), tt_cli_path("m.prof"),
                                  tt_cli_path("x.plan")),
                       "compile for a ring the profile lacks", "no measurements for N = 2^11");
    assert_int_not_equal(stat(tt_cli_path("x.plan"), &sb), 0);
    tt_cli_expect(tt_cli_run("profile --out %s --log-n 9..8", tt_cli_path("y.prof")), 2,
                  "profile with an empty range");
    tt_cli_expect(tt_cli_run("profile --out %s --log-n 10", tt_cli_path("y.prof")), 2,
                  "profile below 2^13 without the test flag");
}

/* A whole file (malloc'ed, *n bytes); NULL if missing. */
static unsigned char *read_all(const char *path, size_t *n) {
    FILE *fp = fopen(path, "rb");
    if (!fp) return NULL;
    fseek(fp, 0, SEEK_END);
    long len = ftell(fp);
    fseek(fp, 0, SEEK_SET);
    unsigned char *b = malloc(len > 0 ? (size_t)len : 1);
    assert_non_null(b);
    *n = fread(b, 1, (size_t)len, fp);
    fclose(fp);
    return b;
}

/* Fail unless path holds exactly the n bytes in want. */
static void expect_same(const char *path, const unsigned char *want, size_t n, const char *what) {
    size_t got_n = 0;
    unsigned char *got = read_all(path, &got_n);
    if (!got || got_n != n || memcmp(got, want, n) != 0)
        fail_msg("%s: %s changed (%zu bytes, was %zu)", what, path, got ? got_n : 0, n);
    free(got);
}

/* Temporary output files left in the test directory. */
static int leftover_temps(void) {
    char d[1024];
    snprintf(d, sizeof d, "%s", tt_cli_path(""));
    DIR *dp = opendir(d);
    assert_non_null(dp);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(dp))) {
        size_t l = strlen(e->d_name);
        n += e->d_name[0] == '.' && l > 4 && strcmp(e->d_name + l - 4, ".tmp") == 0;
    }
    closedir(dp);
    return n;
}

/* Issue 10 section 2: no lost secrets, no half-written files. */
static void test_outputs(void **state) {
    (void)state;
    struct stat sb;
    make_model(tt_cli_path("o.onnx"), "poly2");
    tt_cli_expect(
        tt_cli_run("compile %s --batch 2 --log-n 11 --packing batch --no-measure --out %s" INSECURE,
                   tt_cli_path("o.onnx"), tt_cli_path("o.plan")),
        0, "compile");
    tt_cli_expect(tt_cli_run("keygen %s --out-secret %s --out-eval %s" INSECURE,
                             tt_cli_path("o.plan"), tt_cli_path("o.sk"), tt_cli_path("o.evk")),
                  0, "keygen");
    size_t skn, evn;
    unsigned char *sk = read_all(tt_cli_path("o.sk"), &skn);
    unsigned char *ev = read_all(tt_cli_path("o.evk"), &evn);
    assert_non_null(sk);
    assert_non_null(ev);
    /* keygen never replaces a secret key without --force, and refuses before any output */
    tt_cli_expect_fail(tt_cli_run("keygen %s --out-secret %s --out-eval %s" INSECURE,
                                  tt_cli_path("o.plan"), tt_cli_path("o.sk"),
                                  tt_cli_path("o2.evk")),
                       "keygen over a secret key", "--force");
    expect_same(tt_cli_path("o.sk"), sk, skn, "keygen over a secret key");
    assert_int_equal(stat(tt_cli_path("o2.evk"), &sb), -1);
    /* the file-size limit hit writing the evaluation keys, after the (much smaller) secret key
       was written: neither file changes, even with --force (limit in 512 B or 1 KiB blocks) */
    assert_true(skn < evn / 8);
    char limit[64];
    snprintf(limit, sizeof limit, "ulimit -f %zu", evn / 2 / 1024);
    int rc = tt_cli_run_after(limit, "keygen %s --out-secret %s --out-eval %s --force" INSECURE,
                              tt_cli_path("o.plan"), tt_cli_path("o.sk"), tt_cli_path("o.evk"));
    if (rc == 0) fail_msg("keygen under %s succeeded:\n%s", limit, tt_cli_output());
    expect_same(tt_cli_path("o.sk"), sk, skn, "keygen over the file-size limit");
    expect_same(tt_cli_path("o.evk"), ev, evn, "keygen over the file-size limit");
    assert_int_equal(leftover_temps(), 0);
    /* a later output that cannot be created: no output changes (the old key survives) */
    tt_cli_expect_fail(tt_cli_run("keygen %s --out-secret %s --out-eval %s --force" INSECURE,
                                  tt_cli_path("o.plan"), tt_cli_path("o.sk"),
                                  tt_cli_path("missing/o.evk")),
                       "keygen --out-eval into a missing directory", "missing/o.evk");
    expect_same(tt_cli_path("o.sk"), sk, skn, "keygen --out-eval into a missing directory");
    tt_cli_expect_fail(tt_cli_run("keygen %s --out-secret %s --out-eval %s --force" INSECURE,
                                  tt_cli_path("o.plan"), tt_cli_path("new.sk"),
                                  tt_cli_path("missing/o.evk")),
                       "keygen --out-eval into a missing directory", "missing/o.evk");
    assert_int_equal(stat(tt_cli_path("new.sk"), &sb), -1);
    /* a symbolic link (as to /dev/full) is neither followed nor chmod'ed, even with --force */
    FILE *fp = fopen(tt_cli_path("target"), "w");
    fputs("keep", fp);
    fclose(fp);
    chmod(tt_cli_path("target"), 0644);
    assert_int_equal(symlink(tt_cli_path("target"), tt_cli_path("link.sk")), 0);
    tt_cli_expect(tt_cli_run("keygen %s --out-secret %s --out-eval %s --force" INSECURE,
                             tt_cli_path("o.plan"), tt_cli_path("link.sk"), tt_cli_path("o3.evk")),
                  2, "keygen --out-secret a symbolic link");
    assert_non_null(strstr(tt_cli_output(), "symbolic link"));
    assert_int_equal(stat(tt_cli_path("target"), &sb), 0);
    assert_int_equal(sb.st_mode & 0777, 0644);
    assert_int_equal(sb.st_size, 4);
    assert_int_equal(stat(tt_cli_path("o3.evk"), &sb), -1);
    /* the same file twice, or an input as an output */
    tt_cli_expect(tt_cli_run("keygen %s --out-secret %s --out-eval %s./same.sk --force" INSECURE,
                             tt_cli_path("o.plan"), tt_cli_path("same.sk"), tt_cli_path("")),
                  2, "keygen with one file for two outputs");
    assert_int_equal(stat(tt_cli_path("same.sk"), &sb), -1);
    tt_cli_expect(tt_cli_run("keygen %s --out-secret %s --out-eval %s --force" INSECURE,
                             tt_cli_path("o.plan"), tt_cli_path("o3.sk"), tt_cli_path("o.evk")),
                  0, "keygen replacing the evaluation keys");
    tt_cli_expect(tt_cli_run("keygen %s --out-secret %s --out-eval %s" INSECURE,
                             tt_cli_path("o.plan"), tt_cli_path("o.evk"), tt_cli_path("o4.evk")),
                  2, "keygen --out-secret an existing file");
    assert_int_equal(stat(tt_cli_path("o4.evk"), &sb), -1);
    tt_cli_expect(tt_cli_run("keygen %s --out-secret %s --out-eval %s --force" INSECURE,
                             tt_cli_path("o.plan"), tt_cli_path("k.sk"), tt_cli_path("o.plan")),
                  2, "keygen over its plan");
    assert_int_equal(stat(tt_cli_path("k.sk"), &sb), -1);

    char data[1024];
    snprintf(data, sizeof data, "%s", tt_cli_path("o_in.csv"));
    fp = fopen(data, "w");
    for (int i = 0; i < 2; i++)
        for (int k = 0; k < 784; k++)
            fprintf(fp, "%g%c", 0.001 * ((i * 7 + k) % 100), k == 783 ? '\n' : ',');
    fclose(fp);
    /* encrypt / infer / decrypt / compile never write over a secret key or an input */
    tt_cli_expect(tt_cli_run("encrypt %s %s --in %s --out %s" INSECURE, tt_cli_path("o.plan"),
                             tt_cli_path("o.sk"), data, tt_cli_path("o.sk")),
                  2, "encrypt --out the key");
    tt_cli_expect(tt_cli_run("encrypt %s %s --in %s --out %s" INSECURE, tt_cli_path("o.plan"),
                             tt_cli_path("o.sk"), data, data),
                  2, "encrypt --out the data");
    tt_cli_expect(tt_cli_run("encrypt %s %s --in %s --out %s" INSECURE, tt_cli_path("o.plan"),
                             tt_cli_path("o.sk"), data, tt_cli_path("o_in.ct")),
                  0, "encrypt");
    tt_cli_expect(tt_cli_run("keygen %s --out-secret %s --out-eval %s" INSECURE,
                             tt_cli_path("o.plan"), tt_cli_path("k2.sk"), tt_cli_path("k2.evk")),
                  0, "keygen of a second key");
    size_t k2n;
    unsigned char *k2 = read_all(tt_cli_path("k2.sk"), &k2n);
    tt_cli_expect(tt_cli_run("encrypt %s %s --in %s --out %s" INSECURE, tt_cli_path("o.plan"),
                             tt_cli_path("o.sk"), data, tt_cli_path("k2.sk")),
                  2, "encrypt --out another secret key");
    assert_non_null(strstr(tt_cli_output(), "secret key"));
    tt_cli_expect(tt_cli_run("infer %s %s --in %s --out %s" INSECURE, tt_cli_path("o.plan"),
                             tt_cli_path("o.evk"), tt_cli_path("o_in.ct"), tt_cli_path("o_in.ct")),
                  2, "infer --out its input");
    tt_cli_expect(tt_cli_run("predict %s --in %s --backend mockup --chart %s" INSECURE,
                             tt_cli_path("o.onnx"), data, tt_cli_path("k2.sk")),
                  2, "predict --chart a secret key");
    tt_cli_expect(tt_cli_run("predict %s --in %s --backend mockup --plan-out %s" INSECURE,
                             tt_cli_path("o.onnx"), data, data),
                  2, "predict --plan-out its input");
    tt_cli_expect(tt_cli_run("infer %s %s --in %s --out %s --report %s" INSECURE,
                             tt_cli_path("o.plan"), tt_cli_path("o.evk"), tt_cli_path("o_in.ct"),
                             tt_cli_path("o_out.ct"), tt_cli_path("k2.sk")),
                  2, "infer --report a secret key");
    assert_int_equal(stat(tt_cli_path("o_out.ct"), &sb), -1);
    tt_cli_expect(tt_cli_run("compile %s --batch 2 --log-n 11 --no-measure --out %s" INSECURE,
                             tt_cli_path("o.onnx"), tt_cli_path("k2.sk")),
                  2, "compile --out a secret key");
    tt_cli_expect(tt_cli_run("train --arch lenet --act poly2 --teacher %s --out %s",
                             tt_cli_path("o.onnx"), tt_cli_path("o.onnx")),
                  2, "train --out its teacher");
    tt_cli_expect(tt_cli_run("train --arch lenet --act poly2 --out %s", tt_cli_path("k2.sk")), 2,
                  "train --out a secret key");
    tt_cli_expect(tt_cli_run("decrypt %s %s --in %s --out %s" INSECURE, tt_cli_path("o.plan"),
                             tt_cli_path("o.sk"), tt_cli_path("o_out.ct"), tt_cli_path("o.sk")),
                  2, "decrypt --out the key");
    tt_cli_expect(tt_cli_run("decrypt %s %s --in %s --out %s" INSECURE, tt_cli_path("o.plan"),
                             tt_cli_path("o.sk"), tt_cli_path("o_out.ct"), tt_cli_path("k2.sk")),
                  2, "decrypt --out another secret key");
    expect_same(tt_cli_path("o.sk"), sk, skn, "encrypt/decrypt --out a key");
    expect_same(tt_cli_path("k2.sk"), k2, k2n, "encrypt/infer/compile/decrypt --out a key");
    /* with --force a secret key may be replaced */
    tt_cli_expect(tt_cli_run("keygen %s --out-secret %s --out-eval %s --force" INSECURE,
                             tt_cli_path("o.plan"), tt_cli_path("k2.sk"), tt_cli_path("k2.evk")),
                  0, "keygen --force");
    assert_int_equal(stat(tt_cli_path("k2.sk"), &sb), 0);
    assert_int_equal(sb.st_mode & 0777, 0600);

    /* a run killed by the file-size limit mid-write keeps the previous good ciphertext: the
       limit (in 1 KiB or 512-byte blocks, depending on the shell) is half its size */
    size_t ctn;
    unsigned char *ct = read_all(tt_cli_path("o_in.ct"), &ctn);
    assert_non_null(ct);
    assert_true(ctn >= 4096);
    snprintf(limit, sizeof limit, "ulimit -f %zu", ctn / 2 / 1024);
    rc = tt_cli_run_after(limit, "encrypt %s %s --in %s --out %s" INSECURE, tt_cli_path("o.plan"),
                          tt_cli_path("o.sk"), data, tt_cli_path("o_in.ct"));
    if (rc == 0) fail_msg("encrypt under %s succeeded:\n%s", limit, tt_cli_output());
    expect_same(tt_cli_path("o_in.ct"), ct, ctn, "encrypt over the file-size limit");
    assert_int_equal(leftover_temps(), 0);
    /* and the same run without the limit replaces it */
    tt_cli_expect(tt_cli_run("encrypt %s %s --in %s --out %s" INSECURE, tt_cli_path("o.plan"),
                             tt_cli_path("o.sk"), data, tt_cli_path("o_in.ct")),
                  0, "encrypt again");
    assert_int_equal(leftover_temps(), 0);
    free(ct);
    free(k2);
    free(ev);
    free(sk);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_workflow), cmocka_unit_test(test_linear_plan),
        cmocka_unit_test(test_usage),    cmocka_unit_test(test_deterministic_compile),
        cmocka_unit_test(test_outputs),
    };
    return cmocka_run_group_tests(tests, tt_cli_setup, tt_cli_teardown);
}
