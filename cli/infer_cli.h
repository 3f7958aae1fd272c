/*
 * cli/infer_cli.h - the options of `tessera infer`, with or without --mpi
 * (cli/cmd_infer.c, cli/mpi_infer.c): one option table and one parser.
 */
#ifndef TSR_CLI_INFER_CLI_H
#define TSR_CLI_INFER_CLI_H

#include "cli.h"

#define INFER_MAX_FILES 4096

typedef struct infer_opts {
    const char *plan, *keys; /* the two positional arguments */
    const char *in_v[INFER_MAX_FILES], *out_v[INFER_MAX_FILES];
    cli_list ins, outs; /* --in, --out: exactly one each without --mpi, pairs with it */
    const char *report, *chart, *max_memory; /* single runs only */
    long threads;
    int force, insecure, mpi;
} infer_opts;

/**
 * Parse the options of `tessera infer [--mpi]` into o and check what both
 * forms need (the plan, the keys, --in and --out; one of each without --mpi,
 * as many --out as --in with it; --report, --chart and --max-memory only
 * without it). 0, or the usage exit code after printing why.
 */
int infer_parse(const char *verb, int argc, char **argv, infer_opts *o);

#endif /* TSR_CLI_INFER_CLI_H */
