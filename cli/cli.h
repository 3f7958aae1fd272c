/*
 * cli/cli.h - shared helpers of the `tessera` command and the list of verbs.
 * Each verb lives in cli/cmd_<verb>.c (benchmarks in bench/) and is
 * registered in the table in cli/main.c.
 * Exit codes: 0 success, 1 the work failed, 2 bad usage or bad input.
 */
#ifndef TSR_CLI_H
#define TSR_CLI_H

#include "tessera.h"

#include "core/io.h"

#include <stdio.h>

/** A verb's entry point: argv[0] is the verb name. Returns the exit code. */
typedef int (*tsr_cli_fn)(int argc, char **argv);

/** Print "tessera <verb>: error: <msg>" to stderr; returns 2. */
int cli_usage_error(const char *verb, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/**
 * Print a failed library call: "tessera <verb>: <what>: <status>: <detail>"
 * (control characters in the detail escaped). Returns 2 for bad input
 * (invalid argument, format, version, checksum, mismatch, insecure, secret,
 * shape, not found, key missing, unsupported, scale) and 1 otherwise
 * (I/O, out of memory, level, RNG, internal).
 */
int cli_fail(const char *verb, tsr_status st, const char *what);
/** True if argv holds -h or --help. */
int cli_wants_help(int argc, char **argv);
/** Parse a whole decimal integer within [lo, hi]; returns 0 on success. */
int cli_parse_long(const char *s, long lo, long hi, long *out);
/** Parse a finite double; returns 0 on success. */
int cli_parse_double(const char *s, double *out);
/**
 * Parse a memory size: a positive number with a binary unit K, M, G or T (optionally followed
 * by "iB" or "B"; 1G = 1024 MiB), or a bare number of MiB. *mib gets the size in MiB. Returns 0
 * on success.
 */
int cli_parse_size(const char *s, double *mib);

/** What an option of a verb takes (see cli_parse_args). */
typedef enum cli_opt_type {
    CLI_STR,    /**< --name VALUE: dest is a const char ** */
    CLI_LONG,   /**< --name N: dest is a long *, N a whole decimal in [lo, hi] */
    CLI_DOUBLE, /**< --name X: dest is a double *, X finite */
    CLI_FLAG,   /**< --name: dest is an int *, set to 1 */
    CLI_LIST    /**< --name VALUE, repeatable: dest is a cli_list *, VALUE appended */
} cli_opt_type;

/** Values of a repeatable option (CLI_LIST): items[0..n), at most max of them. */
typedef struct cli_list {
    const char **items;
    int n, max;
} cli_list;

typedef struct cli_opt {
    const char *name; /**< with its leading "--" */
    cli_opt_type type;
    void *dest;
    long lo, hi; /**< CLI_LONG only */
} cli_opt;

/**
 * Parse argv[1..argc) against a verb's options ("--name VALUE" or
 * "--name=VALUE"; flags take no value) and up to npos bare arguments, stored
 * in pos[0..npos) in order (those not given stay as they were). Unknown
 * options, missing or malformed values and extra arguments print a usage
 * error; returns 0 on success and 2 (the usage exit code) otherwise.
 */
int cli_parse_args(const char *verb, int argc, char **argv, const cli_opt *opts, size_t nopts,
                   const char **pos, int npos);

/*
 * Output files (cli/outputs.c over core/io.h output sets): every file a verb
 * writes goes to a temporary file renamed into place only when all the
 * verb's outputs were written; none may be an input or another output, an
 * existing one must be a regular file, and a secret key is replaced only
 * with --force (force != 0).
 */
typedef struct cli_output {
    const char *path; /**< NULL: this output was not asked for */
    unsigned flags;   /**< TSR_OUT_SECRET, TSR_OUT_PRIVATE */
    FILE *fp;         /**< set by cli_outputs_open (owned by the set) */
} cli_output;

/**
 * Before the work: refuse (exit 2) an output equal to an input (same file,
 * or the same place when neither exists) or to another output, and one the
 * rules forbid (core/io.h). Returns 0 or the exit code, having printed why.
 */
int cli_outputs_check(const char *verb, const cli_output *outs, int nout, const char *const *ins,
                      int nin, int force);
/** Create the temporary files of all outputs in *set; 0 or the exit code (nothing left behind). */
int cli_outputs_open(const char *verb, tsr_outset *set, cli_output *outs, int nout, int force);
/**
 * st is the status of writing every output: if it failed, or finishing a
 * file fails, remove the temporary files (no target changes), print what
 * failed and return the exit code; else rename all into place and return 0.
 */
int cli_outputs_commit(const char *verb, tsr_outset *set, tsr_status st, const char *what);

/**
 * The n labels from offset of an IDX label file or a text file of integers into *y (free with
 * tsr_nn_array_free; NULL on failure). 0, or the exit code having printed why: the file cannot
 * be read (cli_fail), or holds fewer than n labels from offset (usage error). cli/cli_labels.c.
 */
int cli_load_labels(const char *verb, const char *path, long offset, int n, int32_t **y);

/* Verbs (cli/cmd_*.c, bench/bench_main.c). */
int tsr_cmd_version(int argc, char **argv);
int tsr_cmd_bench(int argc, char **argv);
int tsr_cmd_ckks(int argc, char **argv);
int tsr_cmd_demo(int argc, char **argv);
int tsr_cmd_train(int argc, char **argv);
int tsr_cmd_heify(int argc, char **argv);
int tsr_cmd_eval(int argc, char **argv);
int tsr_cmd_compile(int argc, char **argv);
int tsr_cmd_keygen(int argc, char **argv);
int tsr_cmd_encrypt(int argc, char **argv);
int tsr_cmd_infer(int argc, char **argv);
int tsr_cmd_decrypt(int argc, char **argv);
int tsr_cmd_predict(int argc, char **argv);
int tsr_cmd_profile(int argc, char **argv);
int tsr_cmd_prune(int argc, char **argv);
int tsr_cmd_fl(int argc, char **argv);
int tsr_cmd_attack(int argc, char **argv);
int tsr_cmd_onnx_test(int argc, char **argv);
int tsr_cmd_serve(int argc, char **argv);
int tsr_cmd_client(int argc, char **argv);

#endif /* TSR_CLI_H */
