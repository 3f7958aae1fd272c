/*
 * cli/cmd_predict.c - `tessera predict`: the whole client/server workflow in
 * one process, for demos and measurements: compile (or load a plan), make
 * keys, encrypt a batch, run the network encrypted, decrypt, and print the
 * accuracy, the agreement with plaintext inference and the timing of every
 * phase. Any backend: ckks (real), mockup (instant, CKKS-like noise) or
 * debug (ckks beside a mockup, reporting where precision is lost).
 */
#include "nn_cli.h"

#include "core/error.h"
#include "core/progress.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define VERB "predict"

static void usage(FILE *out) {
    fprintf(out, "usage: tessera predict MODEL.onnx|PLAN --in DATA [options]\n"
                 "\n"
                 "Compile (or load a plan), generate keys, encrypt, run encrypted inference,\n"
                 "decrypt, and compare with plaintext inference, all in one process. DATA as for\n"
                 "tessera encrypt (IDX, .npy, .csv). More samples than the batch are run batch by\n"
                 "batch.\n"
                 "\n"
                 "  --labels FILE     labels: print the accuracy (class vector outputs)\n"
                 "  --expect OUT      reference outputs for the same samples (.npy or .csv,\n"
                 "                    e.g. PyTorch's): print the largest absolute error of the\n"
                 "                    encrypted and of the plaintext outputs against them\n"
                 "  --out FILE        the decrypted outputs: FILE.npy (the model's output\n"
                 "                    shape) or FILE.csv\n"
                 "  --approx OP=DEG@RANGE  replace a non-polynomial operator when compiling\n"
                 "                    (as for tessera compile; repeatable; lossy)\n"
                 "  --batch B         samples per inference when compiling (default: --count, at\n"
                 "                    most the largest that one sample per slot allows)\n"
                 "  --count N         samples to run (default: one batch)\n"
                 "  --offset K        first sample (0)\n"
                 "  --backend B       ckks (default), mockup or debug\n"
                 "  --packing P       auto, batch or tiled (when compiling)\n"
                 "  --log-n N         force the ring degree when compiling\n"
                 "  --plan-out FILE   save the compiled plan\n"
                 "  --report FILE     latency breakdown of the first batch as JSON\n"
                 "  --chart FILE      the same as an SVG chart\n"
                 "  --threads N       OpenMP threads\n"
                 "  --clip            clip inputs outside the plan's input range to it (with a\n"
                 "                    warning) instead of refusing them (exit 2)\n"
                 "  --quiet           less output\n"
                 "  --force           replace outputs even if one holds a secret key\n"
                 "  " NN_CLI_INSECURE "\n"
                 "                    allow parameters below 128-bit security (tests only)\n");
}

static int ends_with(const char *s, const char *suf) {
    size_t a = strlen(s), b = strlen(suf);
    return a >= b && strcmp(s + a - b, suf) == 0;
}

int tsr_cmd_predict(int argc, char **argv) {
    if (cli_wants_help(argc, argv)) {
        usage(stdout);
        return 0;
    }
    const char *model = NULL, *in = NULL, *labels = NULL, *backend = "ckks", *plan_out = NULL,
               *report = NULL, *chart = NULL, *expect = NULL, *out_path = NULL;
    const char *approx[TSR_NN_MAX_APPROX - 1];
    cli_list approx_list = { approx, 0, TSR_NN_MAX_APPROX - 1 };
    long batch = 0, count = 0, offset = 0, threads = 0, log_n = 0;
    int insecure = 0, quiet = 0, clip = 0, force = 0;
    tsr_nn_packing packing = TSR_NN_PACK_AUTO;
    const char *packing_name = NULL;
    const cli_opt opts[] = {
        { "--in", CLI_STR, &in, 0, 0 },
        { "--labels", CLI_STR, &labels, 0, 0 },
        { "--expect", CLI_STR, &expect, 0, 0 },
        { "--out", CLI_STR, &out_path, 0, 0 },
        { "--approx", CLI_LIST, &approx_list, 0, 0 },
        { "--backend", CLI_STR, &backend, 0, 0 },
        { "--packing", CLI_STR, &packing_name, 0, 0 },
        { "--plan-out", CLI_STR, &plan_out, 0, 0 },
        { "--report", CLI_STR, &report, 0, 0 },
        { "--chart", CLI_STR, &chart, 0, 0 },
        { "--batch", CLI_LONG, &batch, 1, 1 << 20 },
        { "--count", CLI_LONG, &count, 1, 1L << 30 },
        { "--offset", CLI_LONG, &offset, 0, 1L << 30 },
        { "--log-n", CLI_LONG, &log_n, 10, 16 },
        { "--threads", CLI_LONG, &threads, 1, 256 },
        { "--quiet", CLI_FLAG, &quiet, 0, 0 },
        { "--clip", CLI_FLAG, &clip, 0, 0 },
        { "--force", CLI_FLAG, &force, 0, 0 },
        { NN_CLI_INSECURE, CLI_FLAG, &insecure, 0, 0 },
    };
    int prc = cli_parse_args(VERB, argc, argv, opts, sizeof opts / sizeof opts[0], &model, 1);
    if (prc) return prc;
    if (strcmp(backend, "ckks") && strcmp(backend, "mockup") && strcmp(backend, "debug"))
        return cli_usage_error(VERB, "--backend is ckks, mockup or debug, not '%s'", backend);
    if (packing_name && nn_cli_parse_packing(VERB, packing_name, &packing)) return 2;
    if (!model || !in) return cli_usage_error(VERB, "give a model or plan and --in DATA");
    cli_output outs[] = { { plan_out, 0, NULL },
                          { report, 0, NULL },
                          { chart, 0, NULL },
                          { out_path, TSR_OUT_PRIVATE, NULL } };
    const char *ins[] = { model, in, labels, expect };
    int rc = cli_outputs_check(VERB, outs, 4, ins, 4, force);
    if (rc) return rc;
    if (insecure) nn_cli_insecure_warning(VERB);
    if (threads) tsr_set_num_threads((int)threads);
    uint32_t flags = insecure ? TSR_CKKS_ALLOW_INSECURE_PARAMETERS : 0;
    tsr_nn_plan *p = NULL;
    tsr_nn_model *m = NULL;
    double *x = NULL, *logits = NULL, *ref = NULL, *want = NULL;
    int32_t *y = NULL;
    tsr_ckks_params *params = NULL;
    tsr_ckks_secret_key *sk = NULL;
    tsr_ckks_relin_key *rk = NULL;
    tsr_ckks_galois_keys *gk = NULL;
    tsr_backend *be = NULL, *ref_be = NULL, *sub = NULL;
    tsr_nn_runner *r = NULL;
    tsr_nn_stats first;
    memset(&first, 0, sizeof first);
    tsr_status st;
    int n = 0, bad = 0; /* bad: samples decrypted beyond the output headroom */
    double room = 0;
    double t_compile = 0, t_keys = 0, t_enc = 0, t_run = 0, t_dec = 0, cpu_run = 0;
    if (ends_with(model, ".onnx")) {
        char *rep = NULL;
        tsr_nn_import_opts io;
        tsr_nn_import_opts_default(&io);
        io.n_approx = approx_list.n;
        for (int i = 0; i < approx_list.n; i++) io.approx[i] = approx[i];
        st = tsr_nn_import_onnx(model, &io, &m, &rep);
        if (st != TSR_OK) {
            if (rep) fprintf(stderr, "%s", rep);
            tsr_nn_string_free(rep);
            return cli_fail(VERB, st, "importing the model");
        }
        tsr_nn_string_free(rep);
    } else {
        if ((rc = nn_cli_load_plan(VERB, model, flags, &p)) != 0) return rc;
    }
    const tsr_nn_model *mm = p ? tsr_nn_plan_model(p) : m;
    int K = (int)tsr_nn_model_output_size(mm), classes = tsr_nn_model_is_classifier(mm);
    if (labels && !classes) {
        rc = cli_usage_error(VERB, "--labels: the model's output is not a class vector; use "
                                   "--expect OUT to compare with reference outputs");
        goto out;
    }
    if ((st = tsr_nn_load_inputs(mm, in, (int)offset, (int)count, &x, &n)) != TSR_OK) {
        rc = cli_fail(VERB, st, "reading the inputs");
        goto out;
    }
    if (count && n < count) {
        rc = cli_usage_error(VERB, "%s has only %d samples from offset %ld", in, n, offset);
        goto out;
    }
    if (!p) {
        tsr_nn_compile_opts co;
        tsr_nn_compile_opts_default(&co);
        co.batch = (int)(batch ? batch : n);
        co.packing = packing;
        co.log_n = (int)log_n;
        co.ckks_flags = flags;
        co.log = quiet ? NULL : stdout;
        if (insecure && !log_n) co.min_log_n = 10;
        if (!batch && co.batch > 16384) co.batch = 16384;
        double t0 = tsr_now();
        st = tsr_nn_compile(m, &co, &p);
        t_compile = tsr_now() - t0;
        if (st != TSR_OK) {
            rc = cli_fail(VERB, st, "compiling");
            goto out;
        }
        if (!quiet) tsr_nn_plan_print(p, stdout);
    } else {
        outs[0].path = NULL; /* --plan-out saves a compiled plan only */
    }
    int B = tsr_nn_plan_batch(p);
    if (!count && n > B) n = B;
    if ((rc = nn_cli_check_inputs(VERB, p, x, n, offset, clip)) != 0) goto out;
    if (labels && (rc = cli_load_labels(VERB, labels, offset, n, &y)) != 0) goto out;
    if (expect) {
        int ne;
        if ((st = tsr_nn_load_outputs(mm, expect, (int)offset, n, &want, &ne)) != TSR_OK) {
            rc = cli_fail(VERB, st, "reading the reference outputs");
            goto out;
        }
        if (ne < n) {
            rc = cli_usage_error(VERB, "%s has %d samples, %d needed", expect, ne, n);
            goto out;
        }
    }
    /* Keys and the backend. */
    double t0 = tsr_now();
    if ((st = tsr_nn_plan_params(p, &params)) != TSR_OK) {
        rc = cli_fail(VERB, st, "making the CKKS parameters");
        goto out;
    }
    if (strcmp(backend, "mockup") == 0) {
        tsr_mockup_params mp;
        tsr_mockup_params_default(&mp, 2, 1);
        mp.noise = 1;
        st = tsr_backend_mockup_create_for(params, &mp, &be);
    } else {
        st = tsr_nn_keygen(p, params, &sk, &rk, &gk);
        if (st == TSR_OK) st = tsr_backend_ckks_create(params, NULL, sk, rk, gk, &sub);
        if (st == TSR_OK && strcmp(backend, "debug") == 0) {
            tsr_mockup_params mp;
            tsr_mockup_params_default(&mp, 2, 1);
            st = tsr_backend_mockup_create_for(params, &mp, &ref_be);
            if (st == TSR_OK) st = tsr_backend_debug_create(sub, ref_be, 1e-3, &be);
        } else if (st == TSR_OK) {
            be = sub;
            sub = NULL;
        }
    }
    t_keys = tsr_now() - t0;
    if (st != TSR_OK || (st = tsr_nn_runner_create(p, be, &r)) != TSR_OK) {
        rc = cli_fail(VERB, st, "setting up the backend");
        goto out;
    }
    logits = malloc((size_t)n * (size_t)K * sizeof *logits);
    ref = malloc((size_t)n * (size_t)K * sizeof *ref);
    if (!logits || !ref) {
        rc = cli_fail(VERB, TSR_ERR_NOMEM, "allocating");
        goto out;
    }
    int64_t per = tsr_nn_model_input_size(mm);
    for (int b0 = 0; b0 < n; b0 += B) {
        int nb = n - b0 < B ? n - b0 : B;
        tsr_tile *ct = NULL, *out = NULL;
        double ta = tsr_now();
        st = tsr_nn_encrypt(p, tsr_nn_runner_backend(r), x + (int64_t)b0 * per, nb, &ct);
        double tb = tsr_now();
        tsr_nn_stats s;
        memset(&s, 0, sizeof s);
        double cb = tsr_cpu_now(); /* the built-in profile predicts CPU time */
        if (st == TSR_OK) st = tsr_nn_run(r, ct, &out, &s);
        double tc = tsr_now();
        cpu_run += tsr_cpu_now() - cb;
        tsr_tile_free(ct);
        if (st == TSR_OK) st = tsr_nn_decrypt(p, out, nb, logits + (int64_t)b0 * K);
        if (st == TSR_OK) {
            uint8_t *valid = malloc((size_t)nb);
            if (!valid) st = TSR_ERR_NOMEM;
            if (valid) {
                int nbad = tsr_nn_check_outputs(p, out, logits + (int64_t)b0 * K, nb, valid, &room);
                bad += nbad;
                for (int i = 0; i < nb && nbad; i++)
                    if (!valid[i])
                        for (int j = 0; j < K; j++) logits[(int64_t)(b0 + i) * K + j] = NAN;
                free(valid);
            }
        }
        tsr_tile_free(out);
        t_enc += tb - ta;
        t_run += tc - tb;
        t_dec += tsr_now() - tc;
        if (st != TSR_OK) {
            tsr_nn_stats_free(&s);
            rc = cli_fail(VERB, st, "running encrypted inference");
            goto out;
        }
        s.samples = nb;
        if (b0 == 0)
            first = s;
        else
            tsr_nn_stats_free(&s);
    }
    if ((st = tsr_nn_model_forward(mm, x, n, ref)) != TSR_OK) {
        rc = cli_fail(VERB, st, "plaintext inference");
        goto out;
    }
    if (!quiet) nn_cli_print_stats(p, &first, stdout);
    if (strcmp(backend, "debug") == 0) tsr_backend_debug_print(be, stdout);
    double agree, err;
    nn_cli_agreement(logits, ref, n, K, &agree, &err);
    int batches = (n + B - 1) / B;
    printf("\n%d sample%s in %d batch%s of up to %d on the %s backend (%d threads)\n", n,
           n == 1 ? "" : "s", batches, batches == 1 ? "" : "es", B, backend, tsr_get_num_threads());
    if (labels && classes) {
        int ok = 0, okp = 0;
        for (int i = 0; i < n; i++) {
            ok += !isnan(logits[(size_t)i * K]) && nn_cli_argmax(logits + (size_t)i * K, K) == y[i];
            okp += nn_cli_argmax(ref + (size_t)i * K, K) == y[i];
        }
        printf("accuracy: encrypted %.2f%%, plaintext %.2f%%\n", 100.0 * ok / n, 100.0 * okp / n);
    }
    if (classes)
        printf("agreement with plaintext inference: %.2f%% (largest logit error %.3g)\n",
               100 * agree, err);
    else
        printf("largest error against plaintext inference: %.3g (%d values per sample)\n", err, K);
    if (want) {
        double a1, e1, a2, e2;
        nn_cli_agreement(logits, want, n, K, &a1, &e1);
        nn_cli_agreement(ref, want, n, K, &a2, &e2);
        printf("largest absolute error against %s: encrypted %.3g, plaintext %.3g", expect, e1, e2);
        if (classes) printf("; same class: encrypted %.2f%%, plaintext %.2f%%", 100 * a1, 100 * a2);
        printf("\n");
    }
    if (t_compile > 0) printf("compile %.2f s; ", t_compile);
    printf("keys %.2f s; weights prepared %.2f s; encrypt %.2f s; decrypt %.3f s\n", t_keys,
           first.prepare_seconds, t_enc, t_dec);
    printf("encrypted inference: %.3f s per batch (CPU %.3f s; predicted %.3f s), %.3f ms per "
           "sample, %.1f samples/s\n",
           t_run / batches, cpu_run / batches, tsr_nn_plan_predicted_seconds(p), 1e3 * t_run / n,
           n / t_run);
    tsr_outset set;
    if ((rc = cli_outputs_open(VERB, &set, outs, 4, force)) != 0) goto out;
    st = outs[0].fp ? tsr_nn_plan_write(p, outs[0].fp) : TSR_OK;
    if (st == TSR_OK && report) st = tsr_nn_report_json_write(p, &first, outs[1].fp);
    if (st == TSR_OK && chart) st = tsr_nn_report_svg_write(p, &first, outs[2].fp);
    if (st == TSR_OK && out_path) {
        uint8_t *valid = malloc((size_t)n);
        if (!valid) st = tsr_fail(TSR_ERR_NOMEM, "out of memory");
        for (int i = 0; valid && i < n; i++) valid[i] = !isnan(logits[(size_t)i * K]);
        if (valid) st = nn_cli_write_outputs(outs[3].fp, out_path, mm, logits, valid, n);
        free(valid);
    }
    if ((rc = cli_outputs_commit(VERB, &set, st, "writing the outputs")) != 0) goto out;
    if (outs[0].path) printf("plan: %s\n", plan_out);
    if (report) printf("latency breakdown: %s\n", report);
    if (chart) printf("chart: %s\n", chart);
    if (out_path) printf("outputs: %s\n", out_path);
    if (bad) {
        fprintf(stderr,
                "tessera %s: %d of %d samples decrypted to garbage: an output reached the "
                "headroom of the output ciphertexts (|value| >= %.3g) and wrapped around modulo "
                "q; they count as wrong above. Their inputs are probably outside the range the "
                "plan was compiled for.\n",
                VERB, bad, n, room);
        if (rc == 0) rc = 1;
    }
out:
    tsr_nn_stats_free(&first);
    free(logits);
    free(ref);
    tsr_nn_array_free(want);
    tsr_nn_array_free(x);
    tsr_nn_array_free(y);
    tsr_nn_runner_free(r);
    tsr_backend_free(be);
    tsr_backend_free(sub);
    tsr_backend_free(ref_be);
    tsr_ckks_galois_keys_free(gk);
    tsr_ckks_relin_key_free(rk);
    tsr_ckks_secret_key_free(sk);
    tsr_ckks_params_free(params);
    tsr_nn_plan_free(p);
    tsr_nn_model_free(m);
    return rc;
}
