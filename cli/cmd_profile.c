/*
 * cli/cmd_profile.c - `tessera profile --out costs.prof`: time the HE
 * operations the optimizer's cost model uses on this machine, for a grid of
 * CKKS chains, and write them as a cost profile for `tessera compile
 * --profile` (nn/cost.c has the format).
 */
#include "nn_cli.h"

#include "core/progress.h"

#include <stdio.h>
#include <string.h>

#define VERB "profile"

static void usage(FILE *out) {
    fprintf(out,
            "usage: tessera profile --out costs.prof [--log-n LO..HI] [--quick]\n"
            "\n"
            "Time every HE operation the optimizer's cost model uses (rotations, products,\n"
            "rescales, linear-combination terms, encoding, encryption, ...) on this machine,\n"
            "through the CKKS backend, for each ring degree N = 2^LO..2^HI and up to five\n"
            "chain lengths (1 level, the quarters and the deepest 128-bit chain), at the top\n"
            "of each chain and, for the key switches (rotations, relinearizations), also at\n"
            "its middle and level 0 (compile prices them by the digits and primes of the\n"
            "level they run at on the plan's own chain); the lower quartile of 5-8 runs\n"
            "each. Uses the current thread count (OMP_NUM_THREADS) and\n"
            "SIMD kernels (TSR_SIMD). With one thread it times the process's CPU time, which\n"
            "other jobs on a busy machine do not inflate (the built-in profile is made so);\n"
            "with more, wall time. Takes a few minutes for 2^13..2^16 (progress on stderr).\n"
            "\n"
            "Then `tessera compile M.onnx --batch B --profile costs.prof` predicts latency\n"
            "for this machine. compile itself never times anything: without --profile it\n"
            "uses the built-in profile, and the same model, options and profile give the\n"
            "same plan on any machine. Measure on a quiet machine: a busy one inflates\n"
            "wall times.\n"
            "\n"
            "  --out FILE           the profile to write (required)\n"
            "  --log-n LO..HI       ring degrees to measure (default 13..16; one number: one)\n"
            "  --quick              two chains per ring degree (1 level and the deepest)\n"
            "  " NN_CLI_INSECURE "\n"
            "                       also measure N below 2^13 (tests only)\n");
}

int tsr_cmd_profile(int argc, char **argv) {
    if (cli_wants_help(argc, argv)) {
        usage(stdout);
        return 0;
    }
    const char *out = NULL, *range = NULL;
    int quick = 0, insecure = 0;
    const cli_opt opts[] = {
        { "--out", CLI_STR, &out, 0, 0 },
        { "--log-n", CLI_STR, &range, 0, 0 },
        { "--quick", CLI_FLAG, &quick, 0, 0 },
        { NN_CLI_INSECURE, CLI_FLAG, &insecure, 0, 0 },
    };
    int prc = cli_parse_args(VERB, argc, argv, opts, sizeof opts / sizeof opts[0], NULL, 0);
    if (prc) return prc;
    if (!out) return cli_usage_error(VERB, "give the profile file: --out costs.prof");
    tsr_nn_profile_opts po;
    tsr_nn_profile_opts_default(&po);
    if (range && nn_cli_parse_log_n(range, &po.min_log_n, &po.max_log_n))
        return cli_usage_error(VERB, "--log-n takes LO..HI or one number, e.g. 13..16");
    if (insecure) {
        nn_cli_insecure_warning(VERB);
        po.ckks_flags = TSR_CKKS_ALLOW_INSECURE_PARAMETERS;
    }
    if (po.min_log_n > po.max_log_n)
        return cli_usage_error(VERB, "--log-n %d..%d is empty", po.min_log_n, po.max_log_n);
    po.quick = quick;
    po.log = stdout;
    double t0 = tsr_now();
    tsr_status st = tsr_nn_profile_measure(&po, out);
    if (st != TSR_OK)
        return cli_fail(VERB, st, st == TSR_ERR_INVALID_ARG ? "checking the options" : "profiling");
    printf("cost profile: %s (%.1f s, %d thread%s, %s kernels)\n", out, tsr_now() - t0,
           tsr_get_num_threads(), tsr_get_num_threads() == 1 ? "" : "s",
           tsr_simd_name(tsr_simd_active()));
    return 0;
}
