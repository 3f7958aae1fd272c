/*
 * cli/cli_labels.c - labels for the verbs that score decrypted predictions
 * (cli.h: cli_load_labels; decrypt, client, predict).
 */
#include "cli.h"

int cli_load_labels(const char *verb, const char *path, long offset, int n, int32_t **y) {
    int ny;
    *y = NULL;
    tsr_status st = tsr_nn_load_labels(path, (int)offset, n, y, &ny);
    if (st != TSR_OK) return cli_fail(verb, st, "reading the labels");
    if (ny >= n) return 0;
    tsr_nn_array_free(*y);
    *y = NULL;
    return cli_usage_error(verb, "%s has %d labels from offset %ld, %d needed", path, ny, offset,
                           n);
}
