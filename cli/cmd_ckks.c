/*
 * cli/cmd_ckks.c - `tessera ckks`: CKKS parameter sets.
 *   tessera ckks presets
 *   tessera ckks params [--preset NAME | custom chain options] [--out FILE]
 *                       [--insecure-parameters-for-testing]
 * Prints the chain, log2(QP) against the 128-bit bound and dnum; writes a
 * parameter file with --out. Sets below 128-bit security are refused unless
 * --insecure-parameters-for-testing is given, which prints a loud warning.
 */
#include "cli.h"

#include <string.h>

static void usage(FILE *out) {
    fprintf(out, "usage: tessera ckks presets\n"
                 "       tessera ckks params [--preset NAME] [--log-n N] [--levels L]\n"
                 "                           [--scale-bits S] [--first-bits B] [--special K]\n"
                 "                           [--special-bits B] [--dnum D] [--hamming-weight H]\n"
                 "                           [--low-levels M] [--low-scale-bits S]\n"
                 "                           [--out FILE] [--insecure-parameters-for-testing]\n\n"
                 "Show (and with --out, write) a CKKS parameter set: the preset, or the preset\n"
                 "(default n13-l3) changed by the options given. Every set is checked against\n"
                 "the 128-bit HomomorphicEncryption.org bound on log2(QP); weaker sets are\n"
                 "refused unless --insecure-parameters-for-testing is given (tests only).\n"
                 "  --hamming-weight H  fixed-Hamming-weight secrets (default: uniform ternary)\n"
                 "  --low-levels M      a mixed chain: q_1..q_M near 2^S, level M at scale 2^S\n"
                 "                      exactly (network levels under bootstrapping's); 0: a\n"
                 "                      uniform chain\n"
                 "  --low-scale-bits S  S for --low-levels (20..60, default 40)\n");
}

static int list_presets(void) {
    int w = 0; /* the longest name: the descriptions in one column */
    for (size_t i = 0; tsr_ckks_preset_name(i); i++)
        if ((int)strlen(tsr_ckks_preset_name(i)) > w) w = (int)strlen(tsr_ckks_preset_name(i));
    for (size_t i = 0; tsr_ckks_preset_name(i); i++)
        printf("%-*s %s\n", w, tsr_ckks_preset_name(i), tsr_ckks_preset_description(i));
    return 0;
}

static int params_cmd(int argc, char **argv) {
    const char *preset = "n13-l3", *out = NULL;
    int insecure = 0;
    /* -1: not given (every accepted value is >= 0) */
    long log_n = -1, levels = -1, scale_bits = -1, first_bits = -1, special = -1, special_bits = -1,
         dnum = -1, hw = -1, low = -1, low_bits = -1;
    const cli_opt opts[] = {
        { "--preset", CLI_STR, &preset, 0, 0 },
        { "--out", CLI_STR, &out, 0, 0 },
        { "--insecure-parameters-for-testing", CLI_FLAG, &insecure, 0, 0 },
        { "--log-n", CLI_LONG, &log_n, TSR_CKKS_MIN_LOG_N, TSR_CKKS_MAX_LOG_N },
        { "--levels", CLI_LONG, &levels, 0, TSR_CKKS_MAX_PRIMES - 1 },
        { "--scale-bits", CLI_LONG, &scale_bits, 20, 60 },
        { "--first-bits", CLI_LONG, &first_bits, 21, 61 },
        { "--special", CLI_LONG, &special, 1, TSR_CKKS_MAX_SPECIAL_PRIMES },
        { "--special-bits", CLI_LONG, &special_bits, 20, 61 },
        { "--dnum", CLI_LONG, &dnum, 0, TSR_CKKS_MAX_PRIMES },
        { "--hamming-weight", CLI_LONG, &hw, 1, 1L << TSR_CKKS_MAX_LOG_N },
        { "--low-levels", CLI_LONG, &low, 0, TSR_CKKS_MAX_PRIMES - 2 },
        { "--low-scale-bits", CLI_LONG, &low_bits, 20, 60 },
    };
    int rc = cli_parse_args("ckks params", argc, argv, opts, sizeof opts / sizeof opts[0], NULL, 0);
    if (rc) return rc;
    tsr_ckks_param_spec s;
    tsr_status st = tsr_ckks_preset_spec(preset, &s);
    if (st != TSR_OK) return cli_fail("ckks params", st, "choosing the preset");
    if (log_n >= 0) s.log_n = (unsigned)log_n;
    if (levels >= 0) s.levels = (unsigned)levels;
    if (scale_bits >= 0) s.scale_bits = (unsigned)scale_bits;
    if (first_bits >= 0) s.first_prime_bits = (unsigned)first_bits;
    if (special >= 0) s.special_primes = (unsigned)special;
    if (special_bits >= 0) s.special_prime_bits = (unsigned)special_bits;
    if (dnum >= 0) s.dnum = (unsigned)dnum;
    /* a new chain length voids the preset's dnum: the default unless --dnum is given */
    if (levels >= 0 || special >= 0) s.dnum = dnum >= 0 ? (unsigned)dnum : 0;
    if (low >= 0) s.low_levels = (unsigned)low;
    if (low_bits >= 0) s.low_scale_bits = (unsigned)low_bits;
    if (low == 0) s.low_scale_bits = 0;
    if (s.low_levels && !s.low_scale_bits) s.low_scale_bits = 40;
    if (hw >= 0) {
        s.hamming_weight = (unsigned)hw;
        s.secret = TSR_CKKS_SECRET_FIXED_HW;
    }
    if (insecure) s.flags |= TSR_CKKS_ALLOW_INSECURE_PARAMETERS;
    tsr_ckks_params *p = NULL;
    st = tsr_ckks_params_create(&p, &s);
    /* an insecure set's error already names --insecure-parameters-for-testing */
    if (st != TSR_OK) return cli_fail("ckks params", st, "building the parameters");
    if (!tsr_ckks_params_is_secure(p)) {
        double bound = tsr_ckks_security_bound(s.log_n, s.secret, s.hamming_weight);
        fprintf(stderr,
                "\n"
                "!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!\n"
                "!! WARNING: --insecure-parameters-for-testing\n"
                "!! These parameters are BELOW 128-bit security: log2(QP) = %.1f,\n",
                tsr_ckks_params_log_qp(p));
        if (bound > 0)
            fprintf(stderr, "!! the HomomorphicEncryption.org bound for N = 2^%u is %.0f.\n",
                    s.log_n, bound);
        else
            fprintf(stderr, "!! and no 128-bit bound is established for this N / secret.\n");
        fprintf(stderr,
                "!! Use them for tests only. Never encrypt real data with them.\n"
                "!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!\n\n");
    }
    tsr_ckks_params_print(p, stdout);
    printf("  primes:");
    for (int i = 0; i <= tsr_ckks_params_max_level(p); i++)
        printf(" %llu", (unsigned long long)tsr_ckks_params_prime(p, i));
    printf("\n  special:");
    for (int i = 0; i < tsr_ckks_params_special_count(p); i++)
        printf(" %llu", (unsigned long long)tsr_ckks_params_special_prime(p, i));
    uint8_t fp[16];
    tsr_ckks_params_fingerprint(p, fp);
    printf("\n  fingerprint: ");
    for (int i = 0; i < 16; i++) printf("%02x", fp[i]);
    printf("\n");
    if (out) {
        st = tsr_ckks_params_save(p, out);
        if (st != TSR_OK)
            rc = cli_fail("ckks params", st, "writing the parameter file");
        else
            printf("wrote %s\n", out);
    }
    tsr_ckks_params_free(p);
    return rc;
}

int tsr_cmd_ckks(int argc, char **argv) {
    if (argc < 2 || cli_wants_help(argc, argv)) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    if (strcmp(argv[1], "presets") == 0) {
        int rc = cli_parse_args("ckks presets", argc - 1, argv + 1, NULL, 0, NULL, 0);
        return rc ? rc : list_presets();
    }
    if (strcmp(argv[1], "params") == 0) return params_cmd(argc - 1, argv + 1);
    return cli_usage_error("ckks", "unknown subcommand '%s' (use presets or params)", argv[1]);
}
