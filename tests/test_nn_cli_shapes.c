/*
 * tests/test_nn_cli_shapes.c - outputs of any shape through the command
 * line: the PyTorch MLP autoencoder of tests/data/torch (a (N, 784)
 * reconstruction, not a class vector) compiled, encrypted, run and
 * decrypted to .npy and CSV, compared with PyTorch's outputs (--expect);
 * no argmax or accuracy for it, in decrypt and in `bench model`; and
 * `onnx-test --encrypted` on a sample of Debian's ONNX node tests.
 */
#include "clitest.h"

#include "onnx/onnx_graph.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define INSECURE  " --insecure-parameters-for-testing"
#define NODE_DIR  "/usr/share/libonnx-testdata/data/node"
#define N_SAMPLES 2
#define FMNIST    "/usr/share/datasets/fashion-mnist"

/* The first n samples of a TensorProto fixture as CSV rows of k values. */
static void pb_to_csv(const char *rel, const char *csv, int n, int64_t *k) {
    tsr_onnx_data *d;
    tt_ok(tsr_onnx_data_load(&d, tt_source_path(rel)));
    *k = (int64_t)d->a->numel / d->a->dims[0];
    FILE *fp = fopen(csv, "w");
    assert_non_null(fp);
    for (int i = 0; i < n; i++)
        for (int64_t j = 0; j < *k; j++)
            fprintf(fp, "%.9g%c", d->a->data[i * *k + j], j == *k - 1 ? '\n' : ',');
    fclose(fp);
    tsr_onnx_data_free(d);
}

/* Read a float64 .npy written by decrypt: shape text and the values. */
static double *read_npy(const char *path, char *shape, size_t sn, size_t *count) {
    FILE *fp = fopen(path, "rb");
    assert_non_null(fp);
    unsigned char pre[10];
    assert_int_equal(fread(pre, 1, 10, fp), 10);
    assert_memory_equal(pre, "\x93NUMPY\x01\x00", 8);
    size_t hl = pre[8] | (size_t)pre[9] << 8;
    assert_int_equal((10 + hl) % 64, 0);
    char *h = calloc(hl + 1, 1);
    assert_int_equal(fread(h, 1, hl, fp), hl);
    assert_non_null(strstr(h, "'descr': '<f8'"));
    const char *s = strstr(h, "'shape': ");
    assert_non_null(s);
    const char *e = strchr(s, ')');
    snprintf(shape, sn, "%.*s", (int)(e - s - 8), s + 9);
    free(h);
    long pos = ftell(fp);
    fseek(fp, 0, SEEK_END);
    size_t n = (size_t)(ftell(fp) - pos) / 8;
    fseek(fp, pos, SEEK_SET);
    double *v = malloc(n * sizeof *v);
    assert_int_equal(fread(v, 8, n, fp), n);
    fclose(fp);
    *count = n;
    return v;
}

static void test_autoencoder_workflow(void **state) {
    (void)state;
    char model[1024];
    snprintf(model, sizeof model, "%s", tt_source_path("tests/data/torch/autoencoder.onnx"));
    int64_t k_in, k_out;
    pb_to_csv("tests/data/torch/autoencoder_input.pb", tt_cli_path("in.csv"), N_SAMPLES, &k_in);
    pb_to_csv("tests/data/torch/autoencoder_output.pb", tt_cli_path("ref.csv"), N_SAMPLES, &k_out);
    assert_int_equal(k_in, 784);
    assert_int_equal(k_out, 784);
    tt_cli_expect(tt_cli_run("compile %s --batch %d --log-n 11 --packing tiled --out %s" INSECURE,
                             model, N_SAMPLES, tt_cli_path("ae.plan")),
                  0, "compile the autoencoder");
    assert_non_null(strstr(tt_cli_output(), "output (N, 784)"));
    assert_null(strstr(tt_cli_output(), "class scores"));
    tt_cli_expect(tt_cli_run("keygen %s --out-secret %s --out-eval %s" INSECURE,
                             tt_cli_path("ae.plan"), tt_cli_path("c.sk"), tt_cli_path("s.evk")),
                  0, "keygen");
    tt_cli_expect(tt_cli_run("encrypt %s %s --in %s --out %s" INSECURE, tt_cli_path("ae.plan"),
                             tt_cli_path("c.sk"), tt_cli_path("in.csv"), tt_cli_path("in.ct")),
                  0, "encrypt");
    tt_cli_expect(tt_cli_run("infer %s %s --in %s --out %s" INSECURE, tt_cli_path("ae.plan"),
                             tt_cli_path("s.evk"), tt_cli_path("in.ct"), tt_cli_path("out.ct")),
                  0, "infer");
    /* .npy in the model's output shape, CSV beside it, the error against PyTorch */
    tt_cli_expect(
        tt_cli_run("decrypt %s %s --in %s --out %s --npy %s --expect %s --compare %s" INSECURE,
                   tt_cli_path("ae.plan"), tt_cli_path("c.sk"), tt_cli_path("out.ct"),
                   tt_cli_path("out.csv"), tt_cli_path("out.npy"), tt_cli_path("ref.csv"),
                   tt_cli_path("in.csv")),
        0, "decrypt");
    assert_non_null(strstr(tt_cli_output(), "largest absolute error against"));
    assert_non_null(strstr(tt_cli_output(), "largest error against plaintext inference"));
    assert_null(strstr(tt_cli_output(), "agreement"));
    char shape[64];
    size_t n;
    double *y = read_npy(tt_cli_path("out.npy"), shape, sizeof shape, &n);
    assert_string_equal(shape, "(2, 784)");
    assert_int_equal(n, N_SAMPLES * 784);
    tsr_onnx_data *ref;
    tt_ok(tsr_onnx_data_load(&ref, tt_source_path("tests/data/torch/autoencoder_output.pb")));
    double e = 0;
    for (size_t i = 0; i < n; i++) e = fmax(e, fabs(y[i] - ref->a->data[i]));
    if (e > 1e-3) fail_msg("encrypted autoencoder: max error vs PyTorch %.3g", e);
    tsr_onnx_data_free(ref);
    free(y);
    /* the CSV has values, not a predicted class */
    const char *csv = tt_slurp(tt_cli_path("out.csv"));
    assert_non_null(csv);
    assert_true(strncmp(csv, "index,valid,y_0,y_1", 19) == 0);
    assert_true(strncmp(strchr(csv, '\n') + 1, "0,1,", 4) == 0);
    /* no accuracy for a reconstruction */
    tt_cli_expect_fail(tt_cli_run("decrypt %s %s --in %s --out %s --labels %s" INSECURE,
                                  tt_cli_path("ae.plan"), tt_cli_path("c.sk"),
                                  tt_cli_path("out.ct"), tt_cli_path("o2.csv"),
                                  tt_cli_path("in.csv")),
                       "decrypt --labels for an autoencoder", "not a class vector");
    /* --npy must name a .npy file; reference outputs of the wrong size are refused */
    tt_cli_expect_fail(tt_cli_run("decrypt %s %s --in %s --out %s --npy %s" INSECURE,
                                  tt_cli_path("ae.plan"), tt_cli_path("c.sk"),
                                  tt_cli_path("out.ct"), tt_cli_path("o3.csv"),
                                  tt_cli_path("o3.txt")),
                       "decrypt --npy o3.txt", ".npy");
    FILE *fp = fopen(tt_cli_path("bad.csv"), "w");
    fprintf(fp, "1,2,3\n");
    fclose(fp);
    tt_cli_expect_fail(tt_cli_run("decrypt %s %s --in %s --out %s --expect %s" INSECURE,
                                  tt_cli_path("ae.plan"), tt_cli_path("c.sk"),
                                  tt_cli_path("out.ct"), tt_cli_path("o4.csv"),
                                  tt_cli_path("bad.csv")),
                       "decrypt --expect with 3 values per line", "reference outputs");
}

/* `tessera bench model` reports what fits the output: for the autoencoder the largest output
 * error and the mean squared error against plaintext inference (no argmax agreement, no
 * accuracy); for a classifier (the CNN) the agreement, logit error and accuracy columns. */
static void test_bench_model_outputs(void **state) {
    (void)state;
    struct stat sb;
    if (stat(FMNIST "/t10k-images-idx3-ubyte.gz", &sb) != 0)
        fail_msg("%s is missing: bench model encrypts its test images (scripts/deps.sh installs "
                 "dataset-fashion-mnist)",
                 FMNIST);
    const char *bench = "bench model %s --batch 2 --samples 2 --runs 0 --threads 1 --log-n 14";
    tt_cli_expect(tt_cli_run(bench, tt_source_path("tests/data/torch/autoencoder.onnx")), 0,
                  "bench model on the autoencoder");
    const char *out = tt_cli_output(), *line = strstr(out, "largest output error ");
    assert_non_null(line);
    double max_err = -1, mse = -1;
    int seen = 0, k = 0;
    if (sscanf(line,
               "largest output error %lf; mean squared error %lf over %d samples x %d outputs",
               &max_err, &mse, &seen, &k) != 4)
        fail_msg("bench model: no error figures in:\n%s", out);
    assert_int_equal(seen, 2);
    assert_int_equal(k, 784);
    /* CKKS at 2^-39: the reconstruction within 1e-3 of plaintext; the mean of squares of
     * errors is at most the square of the largest */
    if (!(max_err >= 0 && max_err < 1e-3)) fail_msg("largest output error %g", max_err);
    if (!(mse >= 0 && mse <= max_err * max_err)) fail_msg("MSE %g, largest error %g", mse, max_err);
    assert_non_null(strstr(out, "| samples | max output error | output MSE |"));
    assert_null(strstr(out, "agreement"));
    assert_null(strstr(out, "accuracy"));
    assert_null(strstr(out, "logit"));
    tt_cli_expect(tt_cli_run(bench, tt_source_path("tests/data/torch/cnn.onnx")), 0,
                  "bench model on the CNN classifier");
    out = tt_cli_output();
    assert_non_null(strstr(out, "; agreement "));
    assert_non_null(strstr(out, "largest logit error "));
    assert_non_null(strstr(out, "| agreement (samples) | max logit error | accuracy |"));
    assert_null(strstr(out, "output MSE"));
}

/* A sample of the ONNX node tests through the encrypted workflow. */
static void test_onnx_test_encrypted(void **state) {
    (void)state;
    struct stat sb;
    if (stat(NODE_DIR, &sb) != 0)
        fail_msg("%s is missing: install Debian's libonnx-testdata (scripts/deps.sh does)",
                 NODE_DIR);
    tt_cli_expect(tt_cli_run("onnx-test --encrypted --all-pass %s/test_conv_with_strides_padding "
                             "%s/test_averagepool_2d_pads_count_include_pad %s/test_matmul_2d "
                             "%s/test_batchnorm_example",
                             NODE_DIR, NODE_DIR, NODE_DIR, NODE_DIR),
                  0, "onnx-test --encrypted");
    assert_non_null(strstr(tt_cli_output(), "4 passed, 0 failed, 0 unsupported"));
    /* a test that does not lower is reported as such, not as a failure */
    tt_cli_expect(tt_cli_run("onnx-test --encrypted %s/test_transpose_default", NODE_DIR), 0,
                  "onnx-test --encrypted transpose");
    assert_non_null(strstr(tt_cli_output(), "0 passed, 0 failed, 1 unsupported"));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_autoencoder_workflow),
        cmocka_unit_test(test_bench_model_outputs),
        cmocka_unit_test(test_onnx_test_encrypted),
    };
    return cmocka_run_group_tests(tests, tt_cli_setup, tt_cli_teardown);
}
