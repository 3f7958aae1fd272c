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
#include <string.h>

#define VERB "keygen"

static void usage(FILE *out) {
    fprintf(out,
            "usage: tessera keygen model.plan --out-secret client.sk --out-eval server.evk\n"
            "                      [--out-public server.pk]\n"
            "\n"
            "Generate a CKKS secret key for the plan's parameters and the evaluation keys the\n"
            "plan needs: the relinearization key (if it multiplies ciphertexts) and exactly the\n"
            "Galois keys of its rotation steps (none for a purely linear plan: server.evk then\n"
            "holds no key but still names the key set). The secret key file is created with\n"
            "mode 0600; keep it on the client. Send server.evk (and the plan) to the server.\n"
            "With --out-public, also a public key, so others can encrypt for this client.\n"
            "Every file of one run records the same key-set id: encrypt, infer and decrypt\n"
            "refuse keys and ciphertexts of different runs.\n"
            "\n"
            "  " NN_CLI_INSECURE "   accept a plan made with it (tests only)\n");
}

int tsr_cmd_keygen(int argc, char **argv) {
    if (cli_wants_help(argc, argv)) {
        usage(stdout);
        return 0;
    }
    const char *plan = NULL, *sk_path = NULL, *ev_path = NULL, *pk_path = NULL;
    int insecure = 0;
    const cli_opt opts[] = {
        { "--out-secret", CLI_STR, &sk_path, 0, 0 },
        { "--out-eval", CLI_STR, &ev_path, 0, 0 },
        { "--out-public", CLI_STR, &pk_path, 0, 0 },
        { NN_CLI_INSECURE, CLI_FLAG, &insecure, 0, 0 },
    };
    int prc = cli_parse_args(VERB, argc, argv, opts, sizeof opts / sizeof opts[0], &plan, 1);
    if (prc) return prc;
    if (!plan || !sk_path || !ev_path)
        return cli_usage_error(VERB, "give the plan, --out-secret FILE and --out-eval FILE");
    if (strcmp(sk_path, ev_path) == 0 ||
        (pk_path && (strcmp(pk_path, sk_path) == 0 || strcmp(pk_path, ev_path) == 0)))
        return cli_usage_error(VERB, "the key files must be different files");
    if (insecure) nn_cli_insecure_warning(VERB);
    tsr_nn_plan *p = NULL;
    int rc = nn_cli_load_plan(VERB, plan, insecure ? TSR_CKKS_ALLOW_INSECURE_PARAMETERS : 0, &p);
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
    if ((st = tsr_ckks_secret_key_save(sk, sk_path)) != TSR_OK) {
        rc = cli_fail(VERB, st, "writing the secret key");
        goto out;
    }
    uint8_t key_id[TSR_CKKS_KEY_ID_BYTES];
    tsr_ckks_secret_key_id(sk, key_id);
    if ((st = tsr_ckks_eval_keys_save(params, key_id, rk, gk, ev_path)) != TSR_OK) {
        rc = cli_fail(VERB, st, "writing the evaluation keys");
        goto out;
    }
    if (pk && (st = tsr_ckks_public_key_save(pk, pk_path)) != TSR_OK) {
        rc = cli_fail(VERB, st, "writing the public key");
        goto out;
    }
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
