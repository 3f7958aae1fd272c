/*
 * cli/cmd_compile.c - `tessera compile model.onnx --batch B --out model.plan`:
 * import an ONNX model (with the unsupported-operator report), run the
 * optimizer and write the inference plan (docs/INFERENCE.md).
 */
#include "nn_cli.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define VERB "compile"

static void usage(FILE *out) {
    fprintf(out,
            "usage: tessera compile model.onnx --batch B --out model.plan [options]\n"
            "\n"
            "Import an HE-friendly ONNX model and compile it for encrypted inference of B\n"
            "samples at a time. The optimizer tries packings (one sample per slot, and tile\n"
            "tensors with every split of the slots) and CKKS ring degrees, dry-runs each to\n"
            "count operations and levels, predicts latency and memory from per-operation\n"
            "costs (a profile from `tessera profile`, else the built-in one), and keeps the\n"
            "fastest. Nothing is timed: the same model, options and profile give a\n"
            "byte-identical plan on any machine.\n"
            "\n"
            "  --batch B            samples per inference (required; 1 = lowest latency)\n"
            "  --out FILE           the plan to write (required)\n"
            "  --security BITS      security level (128, the only one supported)\n"
            "  --packing P          auto (default), batch (one sample per slot) or tiled\n"
            "  --log-n N | LO..HI   the ring degree N = 2^N, or the range the optimizer\n"
            "                       searches (default 13..15)\n"
            "  --scale-bits S       force the CKKS scale 2^S (default: largest allowed, <= 40)\n"
            "  --min-bits B         refuse plans whose outputs come out with fewer than B bits\n"
            "                       above the CKKS error, estimated on a noisy mockup (10;\n"
            "                       0: no check)\n"
            "  --max-precision-trade BITS\n"
            "                       whole bits of scale the optimizer may give up for a\n"
            "                       faster chain: one with 2 or 3 special primes, fewer\n"
            "                       key-switching digits and a scale at most BITS bits below\n"
            "                       the largest (2; 0: always the largest scale; 0 to 20;\n"
            "                       needs --min-bits above 0). Such a chain is taken when it\n"
            "                       is predicted faster than the plan BITS = 0 gives and its\n"
            "                       estimate is at most BITS + 0.5 bits below that plan's\n"
            "                       (the half bit absorbs the estimate's wobble; a chain more\n"
            "                       than BITS bits of scale down is never tried); the log\n"
            "                       prints the chains and the plan of trade 0\n"
            "  --approx OP=DEG@RANGE | OP=DEG@LO:HI\n"
            "                       replace a non-polynomial operator (Relu, Sigmoid, Tanh,\n"
            "                       Erf, Exp, Gelu, Softplus, Sqrt, Reciprocal, Div by an\n"
            "                       activation, LayerNormalization) by its degree-DEG\n"
            "                       Chebyshev interpolant on [-RANGE, RANGE] or [LO, HI]\n"
            "                       (DEG <= 31; repeatable; LOSSY: outputs change, most where\n"
            "                       inputs leave the interval)\n"
            "  --approx-relu DEG    the same as --approx Relu=DEG@B (DEG <= 8)\n"
            "  --range B            the interval of --approx-relu (4)\n"
            "  --calibrate DATA     run the model in plaintext on sample inputs (as for\n"
            "                       tessera encrypt: IDX, .npy, .csv) and record the plan's\n"
            "                       input range (their smallest and largest value; default:\n"
            "                       pixels 0..255 under the model's preprocessing) and the\n"
            "                       ranges of the activations and outputs; warns when the\n"
            "                       outputs reach the output headroom\n"
            "  --calibrate-count N  use the first N samples of DATA (1000)\n"
            "  --profile FILE       per-operation costs of the server machine (tessera profile);\n"
            "                       default: the built-in profile\n"
            "  --max-memory MIB     refuse candidates predicted to need more server memory\n"
            "                       (default 16384)\n"
            "  --no-measure         accepted for old scripts (compile never measures)\n"
            "  --quiet              print only errors and the plan path\n"
            "  --force              replace --out even if it holds a secret key\n"
            "  " NN_CLI_INSECURE "\n"
            "                       allow parameters below 128-bit security (tests only)\n"
            "\n"
            "Inputs of rank 2, 3 or 4 with the batch first ((N, F), (N, T, D), (N, C, H, W));\n"
            "outputs of any shape. Supported operators (docs/INFERENCE.md): Gemm, MatMul by\n"
            "constants, Conv (groups, dilations, auto_pad), AveragePool (count_include_pad,\n"
            "ceil_mode, auto_pad), GlobalAveragePool, BatchNormalization, Add/Sub/Mul/Div/Neg\n"
            "by constants, Add/Sub of two activations, Pow by an integer, polynomial\n"
            "activations written with Mul/Add/Pow, Flatten, Reshape, Squeeze, Unsqueeze,\n"
            "Identity, Dropout, and Transpose, Slice, Pad, Concat, ReduceSum, ReduceMean as\n"
            "dense layers. Anything else is listed with the replacement Tessera can apply;\n"
            "nothing is compiled.\n");
}

int tsr_cmd_compile(int argc, char **argv) {
    if (cli_wants_help(argc, argv)) {
        usage(stdout);
        return 0;
    }
    const char *model = NULL, *out = NULL, *profile = NULL, *calib = NULL;
    long batch = 0, security = 128, scale = 0, relu = 0, calib_count = 1000;
    const char *log_n_arg = NULL, *trade_arg = NULL;
    double range = 4.0, max_mem = 16384, min_bits = 10, trade = 2;
    int quiet = 0, insecure = 0, no_measure = 0, force = 0;
    tsr_nn_packing packing = TSR_NN_PACK_AUTO;
    const char *packing_name = NULL;
    const char *approx[TSR_NN_MAX_APPROX - 1];
    cli_list approx_list = { approx, 0, TSR_NN_MAX_APPROX - 1 };
    const cli_opt opts[] = {
        { "--approx", CLI_LIST, &approx_list, 0, 0 },
        { "--batch", CLI_LONG, &batch, 1, 1 << 20 },
        { "--out", CLI_STR, &out, 0, 0 },
        { "--security", CLI_LONG, &security, 1, 1024 },
        { "--packing", CLI_STR, &packing_name, 0, 0 },
        { "--log-n", CLI_STR, &log_n_arg, 0, 0 },
        { "--scale-bits", CLI_LONG, &scale, 20, 45 },
        { "--approx-relu", CLI_LONG, &relu, 1, 8 },
        { "--range", CLI_DOUBLE, &range, 0, 0 },
        { "--calibrate", CLI_STR, &calib, 0, 0 },
        { "--calibrate-count", CLI_LONG, &calib_count, 1, 1L << 24 },
        { "--profile", CLI_STR, &profile, 0, 0 },
        { "--max-memory", CLI_DOUBLE, &max_mem, 0, 0 },
        { "--min-bits", CLI_DOUBLE, &min_bits, 0, 0 },
        { "--max-precision-trade", CLI_STR, &trade_arg, 0, 0 },
        { "--no-measure", CLI_FLAG, &no_measure, 0, 0 },
        { "--quiet", CLI_FLAG, &quiet, 0, 0 },
        { "--force", CLI_FLAG, &force, 0, 0 },
        { NN_CLI_INSECURE, CLI_FLAG, &insecure, 0, 0 },
    };
    int prc = cli_parse_args(VERB, argc, argv, opts, sizeof opts / sizeof opts[0], &model, 1);
    if (prc) return prc;
    if (security != 128)
        return cli_usage_error(VERB,
                               "--security %ld: only 128-bit security is supported "
                               "(HomomorphicEncryption.org table)",
                               security);
    if (packing_name && nn_cli_parse_packing(VERB, packing_name, &packing)) return 2;
    if (!(range > 0)) return cli_usage_error(VERB, "--range needs a positive number");
    int lo = 0, hi = 0;
    if (log_n_arg && (nn_cli_parse_log_n(log_n_arg, &lo, &hi) || lo < 10 || hi > 16 || lo > hi))
        return cli_usage_error(VERB, "--log-n takes N or LO..HI within 10..16, not '%s'",
                               log_n_arg);
    if (!(max_mem >= 1)) return cli_usage_error(VERB, "--max-memory needs a number of MiB >= 1");
    if (trade_arg && nn_cli_parse_trade(VERB, trade_arg, &trade)) return 2;
    (void)no_measure;
    if (!model) return cli_usage_error(VERB, "give the model: tessera compile model.onnx ...");
    if (!batch) return cli_usage_error(VERB, "give the batch size: --batch B");
    if (!out) return cli_usage_error(VERB, "give the plan file: --out model.plan");
    cli_output outs[] = { { out, 0, NULL } };
    const char *ins[] = { model, profile, calib };
    int rc = cli_outputs_check(VERB, outs, 1, ins, 3, force);
    if (rc) return rc;
    if (insecure) nn_cli_insecure_warning(VERB);
    tsr_nn_import_opts io;
    tsr_nn_import_opts_default(&io);
    io.approx_relu_degree = (int)relu;
    io.approx_relu_range = range;
    io.n_approx = approx_list.n;
    for (int i = 0; i < approx_list.n; i++) io.approx[i] = approx[i];
    tsr_nn_model *m = NULL;
    char *report = NULL;
    tsr_status st = tsr_nn_import_onnx(model, &io, &m, &report);
    if (st != TSR_OK) {
        if (report) fprintf(stderr, "%s", report);
        tsr_nn_string_free(report);
        return cli_fail(VERB, st, "importing the model");
    }
    if (!quiet) {
        tsr_nn_model_print(m, stdout);
        if (report) printf("%s", report);
    }
    if ((relu || approx_list.n) && !quiet)
        printf("warning: --approx%s makes the encrypted model an approximation of '%s'\n",
               relu && !approx_list.n ? "-relu" : "", model);
    tsr_nn_string_free(report);
    tsr_nn_compile_opts co;
    tsr_nn_compile_opts_default(&co);
    co.batch = (int)batch;
    co.security = (int)security;
    co.packing = packing;
    if (log_n_arg && lo == hi)
        co.log_n = lo;
    else if (log_n_arg) {
        co.min_log_n = lo;
        co.max_log_n = hi;
    }
    co.scale_bits = (int)scale;
    co.profile = profile;
    co.max_memory_mib = max_mem;
    co.min_bits = min_bits;
    co.max_precision_trade = trade;
    co.ckks_flags = insecure ? TSR_CKKS_ALLOW_INSECURE_PARAMETERS : 0;
    co.log = quiet ? NULL : stdout;
    if (insecure && !log_n_arg) co.min_log_n = 10;
    double *cx = NULL;
    int cn = 0;
    if (calib && (st = tsr_nn_load_inputs(m, calib, 0, (int)calib_count, &cx, &cn)) != TSR_OK) {
        tsr_nn_model_free(m);
        return cli_fail(VERB, st, "reading the calibration data");
    }
    co.calib = cx;
    co.calib_n = cn;
    tsr_nn_plan *p = NULL;
    st = tsr_nn_compile(m, &co, &p);
    tsr_nn_model_free(m);
    tsr_nn_array_free(cx);
    if (st != TSR_OK)
        return cli_fail(VERB, st,
                        st == TSR_ERR_IO || st == TSR_ERR_FORMAT || st == TSR_ERR_VERSION
                            ? "reading the cost profile"
                            : "compiling");
    if (!quiet) tsr_nn_plan_print(p, stdout);
    tsr_nn_plan_range_warnings(p, stderr);
    tsr_outset set;
    if ((rc = cli_outputs_open(VERB, &set, outs, 1, force)) == 0)
        rc = cli_outputs_commit(VERB, &set, tsr_nn_plan_write(p, outs[0].fp), "writing the plan");
    tsr_nn_plan_free(p);
    if (rc) return rc;
    printf("plan: %s\n", out);
    return 0;
}
