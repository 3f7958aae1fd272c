/*
 * cli/cmd_encrypt.c - `tessera encrypt model.plan client.sk|server.pk --in
 * data --out in.ct`: pack a batch of inputs as the plan's input tile tensor
 * and encrypt it (seeded secret-key encryption, half the size, or public-key
 * encryption). Inputs: IDX images (raw or gzip), .npy or .csv tensors.
 */
#include "nn_cli.h"

#include "core/error.h"
#include "core/io.h"
#include "core/progress.h"

#include <stdio.h>
#include <string.h>

#define VERB "encrypt"

static void usage(FILE *out) {
    fprintf(out,
            "usage: tessera encrypt model.plan KEY --in DATA --out in.ct [--offset K] [--count N]\n"
            "                       [--force]\n"
            "\n"
            "Encrypt up to the plan's batch of samples for it. KEY is the client's secret key\n"
            "(seeded encryption: half-size ciphertexts) or a public key. DATA is an IDX image\n"
            "file (raw or .gz, e.g. /usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz;\n"
            "pixels are normalised with the model's input metadata), a .npy array (float: model\n"
            "inputs as they are; uint8: pixels) of shape (n, C, H, W) or (n, C*H*W), or a .csv\n"
            "file with one sample per line.\n"
            "\n"
            "in.ct appears only once completely written (an old one stays as it was if the run\n"
            "fails); it may not be an input, and a secret key file is never replaced.\n"
            "\n"
            "  --offset K     skip the first K samples (0)\n"
            "  --count N      encrypt N samples (default: as many as the plan's batch takes)\n"
            "  --clip         clip values outside the plan's input range to it (with a\n"
            "                 warning) instead of refusing them\n"
            "  --force        replace --out even if it holds a secret key\n"
            "\n"
            "Values outside the plan's input range (tessera compile prints it: pixels 0..255\n"
            "under the model's preprocessing, or the range of --calibrate data) are refused\n"
            "(exit 2): CKKS would compute garbage for them.\n"
            "  " NN_CLI_INSECURE "   accept a plan made with it (tests only)\n");
}

/* Kind of the object stored in a key file. */
static tsr_status key_kind(const char *path, tsr_obj_kind *kind) {
    tsr_reader r;
    TSR_TRY(tsr_reader_open_file(&r, path));
    tsr_frame_info info;
    tsr_reader_set_what(&r, "key");
    tsr_status st = tsr_frame_begin_read(&r, TSR_OBJ_NONE, (uint64_t)1 << 40, &info);
    *kind = info.kind;
    r.in_frame = 0;
    (void)tsr_reader_close(&r);
    return st;
}

int tsr_cmd_encrypt(int argc, char **argv) {
    if (cli_wants_help(argc, argv)) {
        usage(stdout);
        return 0;
    }
    const char *plan = NULL, *key = NULL, *in = NULL, *out = NULL;
    long offset = 0, count = 0;
    int insecure = 0, clip = 0, force = 0;
    const cli_opt opts[] = {
        { "--in", CLI_STR, &in, 0, 0 },
        { "--out", CLI_STR, &out, 0, 0 },
        { "--clip", CLI_FLAG, &clip, 0, 0 },
        { "--offset", CLI_LONG, &offset, 0, 1L << 30 },
        { "--count", CLI_LONG, &count, 1, 1L << 30 },
        { "--force", CLI_FLAG, &force, 0, 0 },
        { NN_CLI_INSECURE, CLI_FLAG, &insecure, 0, 0 },
    };
    const char *pos[2] = { NULL, NULL };
    int prc = cli_parse_args(VERB, argc, argv, opts, sizeof opts / sizeof opts[0], pos, 2);
    if (prc) return prc;
    plan = pos[0];
    key = pos[1];
    if (!plan || !key || !in || !out)
        return cli_usage_error(VERB, "give the plan, a key, --in DATA and --out FILE");
    cli_output outs[] = { { out, 0, NULL } };
    const char *ins[] = { plan, key, in };
    int rc = cli_outputs_check(VERB, outs, 1, ins, 3, force);
    if (rc) return rc;
    if (insecure) nn_cli_insecure_warning(VERB);
    tsr_nn_plan *p = NULL;
    rc = nn_cli_load_plan(VERB, plan, insecure ? TSR_CKKS_ALLOW_INSECURE_PARAMETERS : 0, &p);
    if (rc) return rc;
    tsr_ckks_params *params = NULL;
    tsr_ckks_secret_key *sk = NULL;
    tsr_ckks_public_key *pk = NULL;
    tsr_backend *be = NULL;
    tsr_tile *t = NULL;
    double *x = NULL;
    int n = 0, batch = tsr_nn_plan_batch(p);
    tsr_status st = tsr_nn_plan_params(p, &params);
    if (st != TSR_OK) {
        rc = cli_fail(VERB, st, "making the plan's CKKS parameters");
        goto out;
    }
    tsr_obj_kind kind;
    if ((st = key_kind(key, &kind)) != TSR_OK) {
        rc = cli_fail(VERB, st, "reading the key");
        goto out;
    }
    if (kind == TSR_OBJ_SECRET_KEY)
        st = tsr_ckks_secret_key_load(&sk, params, key);
    else if (kind == TSR_OBJ_PUBLIC_KEY)
        st = tsr_ckks_public_key_load(&pk, params, key);
    else
        st = tsr_fail(TSR_ERR_MISMATCH, "'%s' holds %s, not a secret or public key", key,
                      tsr_obj_kind_phrase(kind));
    if (st != TSR_OK) {
        rc = cli_fail(VERB, st, "loading the key (made for this plan?)");
        goto out;
    }
    /* Without --count, read one batch: a file with more samples is cut, never loaded whole. */
    if ((st = tsr_nn_load_inputs(tsr_nn_plan_model(p), in, (int)offset, count ? (int)count : batch,
                                 &x, &n)) != TSR_OK) {
        rc = cli_fail(VERB, st, "reading the inputs");
        goto out;
    }
    if (n > batch) {
        if (count) {
            rc = cli_usage_error(VERB,
                                 "--count %ld is larger than the plan's batch of %d; compile with "
                                 "--batch %ld or encrypt fewer samples",
                                 count, batch, count);
            goto out;
        }
        n = batch;
    }
    if ((rc = nn_cli_check_inputs(VERB, p, x, n, offset, clip)) != 0) goto out;
    if ((st = tsr_backend_ckks_create(params, pk, sk, NULL, NULL, &be)) != TSR_OK) {
        rc = cli_fail(VERB, st, "setting up CKKS");
        goto out;
    }
    double t0 = tsr_now();
    if ((st = tsr_nn_encrypt(p, be, x, n, &t)) != TSR_OK) {
        rc = cli_fail(VERB, st, "encrypting");
        goto out;
    }
    double te = tsr_now() - t0;
    uint8_t key_id[TSR_CKKS_KEY_ID_BYTES];
    if (sk)
        tsr_ckks_secret_key_id(sk, key_id);
    else
        tsr_ckks_public_key_id(pk, key_id);
    tsr_outset set;
    if ((rc = cli_outputs_open(VERB, &set, outs, 1, force)) != 0) goto out;
    st = tsr_nn_ct_write(p, t, TSR_NN_CT_INPUT, n, key_id, outs[0].fp);
    if ((rc = cli_outputs_commit(VERB, &set, st, "writing the ciphertexts")) != 0) goto out;
    printf("encrypted %d sample%s from %s (%lld ciphertexts, %s key) in %.2f s: %s\n", n,
           n == 1 ? "" : "s", in, (long long)tsr_tile_shape_num_tiles(tsr_tile_get_shape(t)),
           sk ? "secret" : "public", te, out);
out:
    tsr_tile_free(t);
    tsr_backend_free(be);
    tsr_nn_array_free(x);
    tsr_ckks_public_key_free(pk);
    tsr_ckks_secret_key_free(sk);
    tsr_ckks_params_free(params);
    tsr_nn_plan_free(p);
    return rc;
}
