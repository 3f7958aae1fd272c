/*
 * cli/cmd_keygen.c - `tessera keygen model.plan --out-secret client.sk
 * --out-eval server.evk [--out-public server.pk]`: the client's keys for a
 * plan. The secret key file is created mode 0600 and never leaves the
 * client; the evaluation keys (relinearization + exactly the plan's
 * rotations) hold no secret.
 */
#include "nn_cli.h"

#include "core/progress.h"

#include <stdio.h>

#define VERB "keygen"

static void usage(FILE *out) {
    fprintf(out,
            "usage: tessera keygen model.plan --out-secret client.sk --out-eval server.evk\n"
            "                      [--out-public server.pk] [--force]\n"
            "\n"
            "Generate a CKKS secret key for the plan's parameters and the evaluation keys the\n"
            "plan needs: the relinearization key (if it multiplies ciphertexts) and exactly the\n"
            "Galois keys of its rotation steps (none for a purely linear plan: server.evk then\n"
            "holds no key but still names the key set). The secret key file is created with\n"
            "mode 0600; keep it on the client. Send server.evk (and the plan) to the server.\n"
            "With --out-public, also a public key, so others can encrypt for this client.\n"
            "Every file of one run records the same key-set id: encrypt, infer and decrypt\n"
            "refuse keys and ciphertexts of different runs.\n"
            "The files appear together only once all are written. An existing secret key file\n"
            "(or any existing --out-secret file) is never replaced without --force.\n"
            "\n"
            "  --force        replace existing files, even a secret key (the old key is lost,\n"
            "                 and with it every ciphertext made for it)\n"
            "  " NN_CLI_INSECURE "   accept a plan made with it (tests only)\n");
}

int tsr_cmd_keygen(int argc, char **argv) {
    if (cli_wants_help(argc, argv)) {
        usage(stdout);
        return 0;
    }
    const char *plan = NULL, *sk_path = NULL, *ev_path = NULL, *pk_path = NULL;
    int insecure = 0, force = 0;
    const cli_opt opts[] = {
        { "--out-secret", CLI_STR, &sk_path, 0, 0 },
        { "--out-eval", CLI_STR, &ev_path, 0, 0 },
        { "--out-public", CLI_STR, &pk_path, 0, 0 },
        { "--force", CLI_FLAG, &force, 0, 0 }, /* may replace a secret key */
        { NN_CLI_INSECURE, CLI_FLAG, &insecure, 0, 0 },
    };
    int prc = cli_parse_args(VERB, argc, argv, opts, sizeof opts / sizeof opts[0], &plan, 1);
    if (prc) return prc;
    if (!plan || !sk_path || !ev_path)
        return cli_usage_error(VERB, "give the plan, --out-secret FILE and --out-eval FILE");
    cli_output outs[] = { { sk_path, TSR_OUT_SECRET, NULL },
                          { ev_path, 0, NULL },
                          { pk_path, 0, NULL } };
    const char *ins[] = { plan };
    int rc = cli_outputs_check(VERB, outs, 3, ins, 1, force);
    if (rc) return rc;
    if (insecure) nn_cli_insecure_warning(VERB);
    tsr_nn_plan *p = NULL;
    rc = nn_cli_load_plan(VERB, plan, insecure ? TSR_CKKS_ALLOW_INSECURE_PARAMETERS : 0, &p);
    if (rc) return rc;
    tsr_ckks_params *params = NULL;
    tsr_ckks_secret_key *sk = NULL;
    tsr_ckks_relin_key *rk = NULL;
    tsr_ckks_galois_keys *gk = NULL;
    tsr_ckks_public_key *pk = NULL;
    double t0 = tsr_now();
    tsr_status st = tsr_nn_plan_params(p, &params);
    if (st == TSR_OK) st = tsr_nn_keygen(p, params, &sk, &rk, &gk);
    if (st != TSR_OK) {
        rc = cli_fail(VERB, st, "generating keys");
        goto out;
    }
    if (pk_path && (st = tsr_ckks_public_key_create(&pk, sk)) != TSR_OK) {
        rc = cli_fail(VERB, st, "generating the public key");
        goto out;
    }
    uint8_t key_id[TSR_CKKS_KEY_ID_BYTES];
    tsr_ckks_secret_key_id(sk, key_id);
    tsr_outset set;
    if ((rc = cli_outputs_open(VERB, &set, outs, 3, force)) != 0) goto out;
    st = tsr_ckks_secret_key_write(sk, outs[0].fp);
    if (st == TSR_OK) st = tsr_ckks_eval_keys_write(params, key_id, rk, gk, outs[1].fp);
    if (st == TSR_OK && pk) st = tsr_ckks_public_key_write(pk, outs[2].fp);
    if ((rc = cli_outputs_commit(VERB, &set, st, "writing the keys")) != 0) goto out;
    printf("keys for %s in %.2f s (key set %02x%02x%02x%02x...): secret key %s (mode 0600, keep "
           "it here); evaluation keys %s (%s%zu rotation keys, %.1f MiB, no secret)%s%s\n",
           plan, tsr_now() - t0, key_id[0], key_id[1], key_id[2], key_id[3], sk_path, ev_path,
           rk ? "relinearization + " : "", gk ? tsr_ckks_galois_keys_count(gk) : (size_t)0,
           ((rk ? (double)tsr_ckks_relin_key_serialized_size(rk) : 0) +
            (gk ? (double)tsr_ckks_galois_keys_serialized_size(gk) : 0)) /
               1048576.0,
           pk ? "; public key " : "", pk ? pk_path : "");
out:
    tsr_ckks_public_key_free(pk);
    tsr_ckks_galois_keys_free(gk);
    tsr_ckks_relin_key_free(rk);
    tsr_ckks_secret_key_free(sk);
    tsr_ckks_params_free(params);
    tsr_nn_plan_free(p);
    return rc;
}
