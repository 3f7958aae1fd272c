/*
 * cli/cmd_decrypt.c - `tessera decrypt model.plan client.sk --in out.ct --out
 * predictions.csv|outputs.npy`: the client decrypts the encrypted outputs
 * (.npy in the model's output shape, CSV, or both with --npy). With --labels
 * it prints the accuracy (class vectors only); with --compare DATA (the same
 * inputs that were encrypted) the agreement with plaintext inference of the
 * plan's model; with --expect OUT the largest error against reference
 * outputs (e.g. PyTorch's).
 */
#include "nn_cli.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define VERB "decrypt"

static void usage(FILE *out) {
    fprintf(out,
            "usage: tessera decrypt model.plan client.sk --in out.ct --out FILE.csv|FILE.npy\n"
            "                       [--npy FILE] [--labels LABELS] [--compare DATA]\n"
            "                       [--expect OUT] [--offset K] [--force]\n"
            "\n"
            "Decrypt encrypted outputs. FILE.npy: float64 of shape (samples, the model's\n"
            "output dimensions), e.g. (n, 784) for an autoencoder, (n, C, H, W) for a feature\n"
            "map. FILE.csv: one line per sample; for a class vector index, predicted class,\n"
            "logits; for other outputs index, 1, the values flattened row-major. Outputs\n"
            "computed under another key set (keys of another\n"
            "keygen run) are refused. Samples whose outputs reach the headroom of the\n"
            "output ciphertexts decrypted to garbage (the computation wrapped around modulo\n"
            "q, e.g. for inputs outside the plan's range): they are written as\n"
            "'index,invalid,nan,...', listed on stderr, and the exit code is 1. The file is\n"
            "private data: mode 0600, written completely or not at all; it may not be an\n"
            "input, and a secret key file is never replaced.\n"
            "\n"
            "  --npy FILE     also write the outputs as .npy (with --out FILE.csv)\n"
            "  --labels FILE  IDX label file (or one integer per line): print the accuracy\n"
            "                 (only for a class vector output)\n"
            "  --compare DATA the inputs that were encrypted: print the agreement with\n"
            "                 plaintext inference (same argmax, for class vectors) and the\n"
            "                 largest output error\n"
            "  --expect OUT   reference outputs (.npy or .csv, e.g. PyTorch's) for the same\n"
            "                 samples: print the largest absolute error against them\n"
            "  --offset K     the samples start at K in LABELS / DATA (as given to encrypt)\n"
            "  --force        replace --out even if it holds a secret key\n"
            "  " NN_CLI_INSECURE "   accept a plan made with it (tests only)\n"
            "\n" NN_CLI_CLASS_VECTOR_HELP);
}

int tsr_cmd_decrypt(int argc, char **argv) {
    if (cli_wants_help(argc, argv)) {
        usage(stdout);
        return 0;
    }
    const char *plan = NULL, *key = NULL, *in = NULL, *out = NULL, *labels = NULL, *compare = NULL,
               *npy = NULL, *expect = NULL;
    long offset = 0;
    int insecure = 0, force = 0;
    const cli_opt opts[] = {
        { "--in", CLI_STR, &in, 0, 0 },
        { "--out", CLI_STR, &out, 0, 0 },
        { "--labels", CLI_STR, &labels, 0, 0 },
        { "--compare", CLI_STR, &compare, 0, 0 },
        { "--npy", CLI_STR, &npy, 0, 0 },
        { "--expect", CLI_STR, &expect, 0, 0 },
        { "--offset", CLI_LONG, &offset, 0, 1L << 30 },
        { "--force", CLI_FLAG, &force, 0, 0 },
        { NN_CLI_INSECURE, CLI_FLAG, &insecure, 0, 0 },
    };
    const char *pos[2] = { NULL, NULL };
    int prc = cli_parse_args(VERB, argc, argv, opts, sizeof opts / sizeof opts[0], pos, 2);
    if (prc) return prc;
    plan = pos[0];
    key = pos[1];
    if (!plan || !key || !in || !out)
        return cli_usage_error(VERB, "give the plan, the secret key, --in FILE and --out FILE");
    if (npy && !nn_cli_ends_with(npy, ".npy"))
        return cli_usage_error(VERB, "--npy takes a file name ending in .npy, not '%s'", npy);
    cli_output outs[] = { { out, TSR_OUT_PRIVATE, NULL }, { npy, TSR_OUT_PRIVATE, NULL } };
    int n_outs = npy ? 2 : 1;
    const char *ins[] = { plan, key, in, labels, compare, expect };
    int rc = cli_outputs_check(VERB, outs, n_outs, ins, 6, force);
    if (rc) return rc;
    if (insecure) nn_cli_insecure_warning(VERB);
    tsr_nn_plan *p = NULL;
    rc = nn_cli_load_plan(VERB, plan, insecure ? TSR_CKKS_ALLOW_INSECURE_PARAMETERS : 0, &p);
    if (rc) return rc;
    const tsr_nn_model *m = tsr_nn_plan_model(p);
    int K = (int)tsr_nn_model_output_size(m), n = 0, classes = tsr_nn_model_is_classifier(m);
    if (labels && !classes) {
        tsr_nn_plan_free(p);
        return cli_usage_error(VERB, "--labels: the model's output is not a class vector (see the "
                                     "plan summary), so there is no accuracy; use --expect OUT to "
                                     "compare with reference outputs");
    }
    tsr_ckks_params *params = NULL;
    tsr_ckks_secret_key *sk = NULL;
    tsr_backend *be = NULL;
    tsr_tile *t = NULL;
    double *logits = NULL, *x = NULL, *ref = NULL, *want = NULL;
    int32_t *y = NULL;
    uint8_t *valid = NULL;
    int bad = 0;
    tsr_status st = tsr_nn_plan_params(p, &params);
    if (st == TSR_OK) st = tsr_ckks_secret_key_load(&sk, params, key);
    if (st != TSR_OK) {
        rc = cli_fail(VERB, st, "loading the secret key (made for this plan?)");
        goto out;
    }
    if ((st = tsr_backend_ckks_create(params, NULL, sk, NULL, NULL, &be)) != TSR_OK) {
        rc = cli_fail(VERB, st, "setting up CKKS");
        goto out;
    }
    uint8_t key_id[TSR_CKKS_KEY_ID_BYTES];
    tsr_ckks_secret_key_id(sk, key_id);
    if ((st = tsr_nn_ct_load(p, be, TSR_NN_CT_OUTPUT, in, key_id, &t, &n)) != TSR_OK) {
        rc = cli_fail(VERB, st, "reading the encrypted predictions");
        goto out;
    }
    logits = malloc((size_t)n * (size_t)K * sizeof *logits);
    if (!logits) {
        rc = cli_fail(VERB, TSR_ERR_NOMEM, "allocating");
        goto out;
    }
    if ((st = tsr_nn_decrypt(p, t, n, logits)) != TSR_OK) {
        rc = cli_fail(VERB, st, "decrypting");
        goto out;
    }
    /* --labels and --compare are read and checked before anything is written: bad input leaves
     * no predictions file behind. */
    if (labels && (rc = cli_load_labels(VERB, labels, offset, n, &y)) != 0) goto out;
    if (compare) {
        int nx;
        if ((st = tsr_nn_load_inputs(m, compare, (int)offset, n, &x, &nx)) != TSR_OK) {
            rc = cli_fail(VERB, st, "reading the inputs to compare with");
            goto out;
        }
        if (nx < n) {
            rc = cli_usage_error(VERB, "%s has %d samples from offset %ld, %d needed", compare, nx,
                                 offset, n);
            goto out;
        }
    }
    if (expect) {
        int ne;
        if ((st = tsr_nn_load_outputs(m, expect, (int)offset, n, &want, &ne)) != TSR_OK) {
            rc = cli_fail(VERB, st, "reading the reference outputs");
            goto out;
        }
        if (ne < n) {
            rc = cli_usage_error(VERB, "%s has %d samples from offset %ld, %d needed", expect, ne,
                                 offset, n);
            goto out;
        }
    }
    valid = malloc((size_t)n);
    if (!valid) {
        rc = cli_fail(VERB, TSR_ERR_NOMEM, "allocating");
        goto out;
    }
    double room;
    bad = tsr_nn_check_outputs(p, t, logits, n, valid, &room);
    tsr_outset set;
    if ((rc = cli_outputs_open(VERB, &set, outs, n_outs, force)) != 0) goto out;
    st = nn_cli_write_outputs(outs[0].fp, out, m, logits, valid, n);
    if (st == TSR_OK && npy) st = nn_cli_write_outputs(outs[1].fp, npy, m, logits, valid, n);
    if ((rc = cli_outputs_commit(VERB, &set, st, "writing the outputs")) != 0) goto out;
    if (bad)
        printf("decrypted %d samples: %d predictions, %d invalid: %s\n", n, n - bad, bad, out);
    else
        printf("decrypted %d predictions: %s\n", n, out);
    if (bad) {
        fprintf(stderr,
                "tessera %s: %d of %d samples decrypted to garbage: an output reached the "
                "headroom of the output ciphertexts (|value| >= %.3g), so the computation wrapped "
                "around modulo q. They are written as 'invalid', not as predictions. Their "
                "inputs were probably outside the range the plan was compiled for (tessera "
                "encrypt checks it).\n",
                VERB, bad, n, room);
        for (int i = 0, shown = 0; i < n && shown < 10; i++)
            if (!valid[i]) fprintf(stderr, "%s%d", shown++ ? ", " : "  invalid samples: ", i);
        fprintf(stderr, bad > 10 ? ", ...\n" : "\n");
    }
    if (y) {
        int ok = 0;
        for (int i = 0; i < n; i++)
            ok += valid[i] && nn_cli_argmax(logits + (size_t)i * K, K) == y[i];
        printf("accuracy (encrypted inference): %.2f%% (%d of %d%s)\n", 100.0 * ok / n, ok, n,
               bad ? ", invalid samples count as wrong" : "");
    }
    if (x) {
        ref = malloc((size_t)n * (size_t)K * sizeof *ref);
        if (!ref || (st = tsr_nn_model_forward(m, x, n, ref)) != TSR_OK) {
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
        else
            nn_cli_print_largest_error(stdout, err, cmp, n, K);
    }
    if (want) {
        double agree, err;
        nn_cli_agreement(logits, want, n, K, &agree, &err);
        printf("largest absolute error against %s: %.3g (%d sample%s x %d values", expect, err, n,
               n == 1 ? "" : "s", K);
        if (classes) printf("; same class for %.2f%%", 100 * agree);
        printf(")\n");
    }
    if (bad && rc == 0) rc = 1;
out:
    free(valid);
    free(ref);
    tsr_nn_array_free(want);
    free(logits);
    tsr_nn_array_free(x);
    tsr_nn_array_free(y);
    tsr_tile_free(t);
    tsr_backend_free(be);
    tsr_ckks_secret_key_free(sk);
    tsr_ckks_params_free(params);
    tsr_nn_plan_free(p);
    return rc;
}
