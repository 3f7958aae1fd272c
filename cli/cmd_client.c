/*
 * cli/cmd_client.c - `tessera client --server URL model.plan client.sk
 * server.evk --in DATA --out predictions.csv`: the client of `tessera
 * serve` in one command: encrypt a batch with the secret key, upload the
 * evaluation keys if the server does not have them yet, run the inference
 * there (503 answers retried after their Retry-After), decrypt the answer.
 * The secret key never leaves this process; the ciphertexts live in a
 * private temporary directory removed at the end.
 */
#include "nn_cli.h"

#include "core/error.h"
#include "core/progress.h"
#include "tessera/serve.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define VERB "client"

static void usage(FILE *out) {
    fprintf(out,
            "usage: tessera client --server URL model.plan client.sk server.evk --in DATA\n"
            "                      --out predictions.csv [--offset K] [--count N] [--clip]\n"
            "                      [--labels L] [--compare DATA] [--retries N] [--cacert F]\n"
            "                      [--keep-ct DIR] [--force]\n"
            "\n"
            "Encrypted inference on a `tessera serve` server: encrypt up to the plan's batch of\n"
            "DATA with the secret key (it stays here), upload the evaluation keys once (only\n"
            "when the server does not hold them), send the ciphertexts, decrypt the answer and\n"
            "write the predictions as `tessera decrypt` does (mode 0600). A busy server (503)\n"
            "is asked again after its Retry-After, --retries times. Progress on stderr.\n"
            "\n"
            "  --server URL    http://HOST:PORT (https:// with a TLS server)\n"
            "  --offset K, --count N, --clip   the samples to encrypt, as for tessera encrypt\n"
            "  --labels L      print the accuracy against these labels (class vectors only)\n"
            "  --compare DATA  print the agreement with plaintext inference on DATA (the same\n"
            "                  argmax, and the largest error; other outputs: the largest error)\n"
            "  --retries N     retries of a 503 answer (default 8)\n"
            "  --timeout SEC   longest time of one request (default: none)\n"
            "  --cacert FILE   CA certificates for https (default: the system's)\n"
            "  --keep-ct DIR   keep in.ct and out.ct in DIR (default: removed)\n"
            "  --force         replace --out even if it holds a secret key\n"
            "  " NN_CLI_INSECURE "   accept a plan made with it (tests only)\n"
            "\n" NN_CLI_CLASS_VECTOR_HELP);
}

int tsr_cmd_client(int argc, char **argv) {
    if (cli_wants_help(argc, argv)) {
        usage(stdout);
        return 0;
    }
    const char *server = NULL, *in = NULL, *out = NULL, *labels = NULL, *compare = NULL;
    const char *cacert = NULL, *keep = NULL;
    long offset = 0, count = 0, retries = 8, timeout = 0;
    int insecure = 0, clip = 0, force = 0;
    const cli_opt opts[] = {
        { "--server", CLI_STR, &server, 0, 0 },
        { "--in", CLI_STR, &in, 0, 0 },
        { "--out", CLI_STR, &out, 0, 0 },
        { "--labels", CLI_STR, &labels, 0, 0 },
        { "--compare", CLI_STR, &compare, 0, 0 },
        { "--offset", CLI_LONG, &offset, 0, 1L << 30 },
        { "--count", CLI_LONG, &count, 1, 1L << 30 },
        { "--clip", CLI_FLAG, &clip, 0, 0 },
        { "--retries", CLI_LONG, &retries, 0, 1000 },
        { "--timeout", CLI_LONG, &timeout, 1, 1L << 30 },
        { "--cacert", CLI_STR, &cacert, 0, 0 },
        { "--keep-ct", CLI_STR, &keep, 0, 0 },
        { "--force", CLI_FLAG, &force, 0, 0 },
        { NN_CLI_INSECURE, CLI_FLAG, &insecure, 0, 0 },
    };
    const char *pos[3] = { NULL, NULL, NULL };
    int prc = cli_parse_args(VERB, argc, argv, opts, sizeof opts / sizeof opts[0], pos, 3);
    if (prc) return prc;
    const char *plan = pos[0], *sk_path = pos[1], *evk = pos[2];
    if (!server || !plan || !sk_path || !evk || !in || !out)
        return cli_usage_error(VERB, "give --server URL, the plan, the secret key, the evaluation "
                                     "keys, --in DATA and --out FILE");
    cli_output outs[] = { { out, TSR_OUT_PRIVATE, NULL } };
    const char *ins[] = { plan, sk_path, evk, in, labels, compare };
    int rc = cli_outputs_check(VERB, outs, 1, ins, 6, force);
    if (rc) return rc;
    if (insecure) nn_cli_insecure_warning(VERB);
    tsr_nn_plan *p = NULL;
    rc = nn_cli_load_plan(VERB, plan, insecure ? TSR_CKKS_ALLOW_INSECURE_PARAMETERS : 0, &p);
    if (rc) return rc;
    tsr_client_opts co;
    tsr_client_opts_default(&co);
    co.server = server;
    co.retries = (int)retries;
    co.timeout = timeout;
    co.ca_file = cacert;
    co.progress = 1;
    const tsr_nn_model *m = tsr_nn_plan_model(p);
    int K = (int)tsr_nn_model_output_size(m), batch = tsr_nn_plan_batch(p), n = 0, n_out = 0;
    const int classes = tsr_nn_model_is_classifier(m);
    if (labels && !classes) { /* as decrypt: before any key is read or anything is sent */
        tsr_nn_plan_free(p);
        return cli_usage_error(VERB, "--labels: the model's output is not a class vector (see the "
                                     "plan summary), so there is no accuracy");
    }
    tsr_ckks_params *params = NULL;
    tsr_ckks_secret_key *sk = NULL;
    tsr_backend *be = NULL;
    tsr_tile *t = NULL, *o = NULL;
    double *x = NULL, *logits = NULL, *xc = NULL, *ref = NULL;
    int32_t *y = NULL;
    uint8_t *valid = NULL;
    char dir[4096] = "", in_ct[4200] = "", out_ct[4200] = "";
    uint8_t plan_id[32], key_id[TSR_CKKS_KEY_ID_BYTES];
    tsr_nn_plan_id(p, plan_id);
    double t0 = tsr_now();
    tsr_status st = tsr_nn_plan_params(p, &params);
    if (st == TSR_OK) st = tsr_ckks_secret_key_load(&sk, params, sk_path);
    if (st != TSR_OK) {
        rc = cli_fail(VERB, st, "loading the secret key (made for this plan?)");
        goto out;
    }
    tsr_ckks_secret_key_id(sk, key_id);
    if ((st = tsr_nn_load_inputs(m, in, (int)offset, count ? (int)count : batch, &x, &n)) !=
        TSR_OK) {
        rc = cli_fail(VERB, st, "reading the inputs");
        goto out;
    }
    if (n > batch) {
        if (count) {
            rc = cli_usage_error(VERB, "--count %ld is larger than the plan's batch of %d", count,
                                 batch);
            goto out;
        }
        n = batch;
    }
    if ((rc = nn_cli_check_inputs(VERB, p, x, n, offset, clip)) != 0) goto out;
    if ((st = tsr_backend_ckks_create(params, NULL, sk, NULL, NULL, &be)) != TSR_OK ||
        (st = tsr_nn_encrypt(p, be, x, n, &t)) != TSR_OK) {
        rc = cli_fail(VERB, st, "encrypting");
        goto out;
    }
    /* The ciphertexts: in --keep-ct DIR, else a private temporary directory. */
    if (keep) {
        snprintf(dir, sizeof dir, "%s", keep);
    } else {
        const char *tmp = getenv("TMPDIR");
        snprintf(dir, sizeof dir, "%s/tessera-client-XXXXXX", tmp && *tmp ? tmp : "/tmp");
        if (!mkdtemp(dir)) {
            dir[0] = '\0';
            rc = cli_fail(VERB, tsr_fail(TSR_ERR_IO, "cannot create a temporary directory"),
                          "preparing");
            goto out;
        }
    }
    snprintf(in_ct, sizeof in_ct, "%s/in.ct", dir);
    snprintf(out_ct, sizeof out_ct, "%s/out.ct", dir);
    if ((st = tsr_nn_ct_save(p, t, TSR_NN_CT_INPUT, n, key_id, in_ct)) != TSR_OK) {
        rc = cli_fail(VERB, st, "writing the encrypted inputs");
        goto out;
    }
    tsr_tile_free(t);
    t = NULL;
    fprintf(stderr, "tessera client: encrypted %d sample%s in %.2f s\n", n, n == 1 ? "" : "s",
            tsr_now() - t0);
    /* Keys are uploaded only when the server does not know them. */
    char hash[65];
    if ((st = tsr_client_check_keys_file(evk)) != TSR_OK) {
        rc = cli_fail(VERB, st, "checking the evaluation keys");
        goto out;
    }
    int unknown = 0, uploaded = 0;
    if ((st = tsr_client_file_hash(evk, hash)) != TSR_OK) {
        rc = cli_fail(VERB, st, "reading the evaluation keys");
        goto out;
    }
    double t1 = tsr_now();
    st = tsr_client_infer(&co, plan_id, hash, in_ct, out_ct, &unknown);
    if (st != TSR_OK && unknown) {
        char got[65];
        fprintf(stderr, "tessera client: the server lacks the evaluation keys: uploading %s\n",
                evk);
        if ((st = tsr_client_put_keys(&co, evk, plan_id, got)) != TSR_OK) {
            rc = cli_fail(VERB, st, "uploading the evaluation keys");
            goto out;
        }
        uploaded = 1;
        if (strcmp(got, hash) != 0) {
            rc = cli_fail(VERB,
                          tsr_fail(TSR_ERR_MISMATCH, "the server stored the keys under another "
                                                     "hash than their BLAKE2b-256"),
                          "uploading the evaluation keys");
            goto out;
        }
        st = tsr_client_infer(&co, plan_id, hash, in_ct, out_ct, NULL);
    }
    if (st != TSR_OK) {
        rc = cli_fail(VERB, st, "encrypted inference");
        goto out;
    }
    double t_server = tsr_now() - t1;
    if ((st = tsr_nn_ct_load(p, be, TSR_NN_CT_OUTPUT, out_ct, key_id, &o, &n_out)) != TSR_OK) {
        rc = cli_fail(VERB, st, "reading the server's answer");
        goto out;
    }
    if (n_out != n) {
        rc = cli_fail(
            VERB, tsr_fail(TSR_ERR_MISMATCH, "the answer holds %d samples, %d were sent", n_out, n),
            "reading the server's answer");
        goto out;
    }
    logits = malloc((size_t)n * (size_t)K * sizeof *logits);
    valid = malloc((size_t)n);
    if (!logits || !valid) {
        rc = cli_fail(VERB, tsr_fail(TSR_ERR_NOMEM, "out of memory"), "decrypting");
        goto out;
    }
    if ((st = tsr_nn_decrypt(p, o, n, logits)) != TSR_OK) {
        rc = cli_fail(VERB, st, "decrypting");
        goto out;
    }
    if (labels && (rc = cli_load_labels(VERB, labels, offset, n, &y)) != 0) goto out;
    double room;
    int bad = tsr_nn_check_outputs(p, o, logits, n, valid, &room);
    tsr_outset set;
    if ((rc = cli_outputs_open(VERB, &set, outs, 1, force)) != 0) goto out;
    st = nn_cli_write_csv(outs[0].fp, logits, valid, n, K, classes);
    if ((rc = cli_outputs_commit(VERB, &set, st, "writing the predictions")) != 0) goto out;
    printf("%d prediction%s from %s in %.2f s (server and transfers %.2f s%s): %s\n", n - bad,
           n - bad == 1 ? "" : "s", server, tsr_now() - t0, t_server,
           uploaded ? ", keys uploaded" : ", keys already there", out);
    if (bad)
        fprintf(stderr,
                "tessera %s: %d of %d samples decrypted to garbage (|value| >= %.3g): written as "
                "'invalid'; their inputs were probably outside the plan's range\n",
                VERB, bad, n, room);
    if (y) {
        int ok = 0;
        for (int i = 0; i < n; i++)
            ok += valid[i] && nn_cli_argmax(logits + (size_t)i * K, K) == y[i];
        printf("accuracy (encrypted inference): %.2f%% (%d of %d)\n", 100.0 * ok / n, ok, n);
    }
    if (compare) {
        int nx;
        if ((st = tsr_nn_load_inputs(m, compare, (int)offset, n, &xc, &nx)) != TSR_OK || nx < n) {
            if (st == TSR_OK) st = tsr_fail(TSR_ERR_FORMAT, "%s has too few samples", compare);
            rc = cli_fail(VERB, st, "reading the inputs to compare with");
            goto out;
        }
        ref = malloc((size_t)n * (size_t)K * sizeof *ref);
        if (!ref || (st = tsr_nn_model_forward(m, xc, n, ref)) != TSR_OK) {
            rc = cli_fail(VERB, ref ? st : TSR_ERR_NOMEM, "plaintext inference");
            goto out;
        }
        for (int i = 0; i < n; i++)
            if (!valid[i])
                for (int j = 0; j < K; j++) logits[(size_t)i * K + j] = NAN;
        double agree, err;
        const int cmp = nn_cli_agreement(logits, ref, n, K, &agree, &err);
        if (classes)
            printf("agreement with plaintext inference: %.2f%% of %d sample%s, largest logit "
                   "error %.3g\n",
                   100 * agree, n, n == 1 ? "" : "s", err);
        else /* an argmax of a reconstruction means nothing: as decrypt --compare */
            nn_cli_print_largest_error(stdout, err, cmp, n, K);
    }
    if (bad && rc == 0) rc = 1;
out:
    if (!keep && dir[0]) {
        if (in_ct[0]) unlink(in_ct);
        if (out_ct[0]) unlink(out_ct);
        rmdir(dir);
    }
    free(ref);
    free(valid);
    free(logits);
    tsr_nn_array_free(xc);
    tsr_nn_array_free(x);
    tsr_nn_array_free(y);
    tsr_tile_free(o);
    tsr_tile_free(t);
    tsr_backend_free(be);
    tsr_ckks_secret_key_free(sk);
    tsr_ckks_params_free(params);
    tsr_nn_plan_free(p);
    return rc;
}
