/*
 * cli/cmd_version.c - `tessera version`.
 */
#include "cli.h"

int tsr_cmd_version(int argc, char **argv) {
    if (cli_wants_help(argc, argv)) {
        printf("usage: tessera version\n\nPrint the library version, the SIMD kernel family in "
               "use (override with TSR_SIMD=portable|avx2|avx512|avx512ifma) and the thread "
               "count.\n");
        return 0;
    }
    int prc = cli_parse_args("version", argc, argv, NULL, 0, NULL, 0);
    if (prc) return prc;
    printf("tessera %s\n", tsr_version_string());
    printf("simd: %s (cpu supports %s)\n", tsr_simd_name(tsr_simd_active()),
           tsr_simd_name(tsr_simd_detected()));
    printf("threads: %d\n", tsr_get_num_threads());
    return 0;
}
