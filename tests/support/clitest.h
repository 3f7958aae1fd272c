/*
 * tests/support/clitest.h - running the built `tessera` command from a test:
 * a private temporary directory (the working directory), the binary next to the tests
 * (TSR_BINARY_DIR, progress lines off), each run's output captured in a log.
 */
#ifndef TSR_CLITEST_H
#define TSR_CLITEST_H

#include "testutil.h"

#include <semaphore.h>

/**
 * Group setup/teardown (cmocka signatures): create the temporary directory and make it the
 * working directory / go back and remove it. HOME is a directory in it; XDG_* are unset.
 */
int tt_cli_setup(void **state);
int tt_cli_teardown(void **state);

/**
 * Path of a file in the temporary directory, relative to it (the working directory: "" gives
 * "./"): safe on a shell command line whatever TMPDIR holds. One of 8 rotating static buffers.
 */
const char *tt_cli_path(const char *name);

/** Run `tessera ARGS` (printf format), return its exit code; output goes to the log. */
int tt_cli_run(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/**
 * Run `tessera ARGS` after the shell commands in prefix (e.g. "ulimit -f 8"),
 * in the same /bin/sh; return its exit code.
 */
int tt_cli_run_after(const char *prefix, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/**
 * Start `tessera serve --plan PLAN --state-dir STATE --listen 127.0.0.1:0 --port-file ...
 * --insecure-parameters-for-testing` in the background, stdout and stderr to log; wait (at
 * most 5 minutes) for its port file and return the port (the test fails if it never comes;
 * the server is then killed and *pid is 0). *pid gets the process as soon as it is started,
 * for the caller to signal and wait for (tt_wait_child).
 */
int tt_cli_spawn_serve(const char *plan, const char *state, const char *log, int *pid);

/**
 * Wait at most `seconds` for the child process pid to exit: 1 and its status (may be NULL) once
 * it did. Past the bound, kill that process (SIGKILL to pid only, never by name), reap it and
 * return 0. Also 0, at once and without a signal, when pid is not (or no longer) a child of ours.
 */
int tt_wait_child(int pid, double seconds, int *status);

/** Write a CSV of rows x cols inputs to path: value (r, k) is 0.001 * ((r * mul + k) % 100). */
void tt_write_inputs_csv(const char *path, int rows, int cols, int mul);

/**
 * `tessera compile ONNX ARGS --out PLAN` then `tessera keygen PLAN --out-secret SK --out-eval
 * EVK`, both with --insecure-parameters-for-testing (small test rings); the test fails if
 * either does.
 */
void tt_cli_compile_keygen(const char *onnx, const char *compile_args, const char *plan,
                           const char *sk, const char *evk);

/**
 * A gate for a server's job hook (tsr_serve_opts.job_hook = tt_gate_hook, .job_hook_arg = the
 * gate): while hold is set, each job posts `started` and waits (at most 300 s, then it passes
 * with a message) for `release`; otherwise it passes. Set up with tt_gate_init before the
 * server starts, wait for a job with tt_gate_wait_started (the test fails after 300 s), end with
 * tt_gate_destroy; a teardown calls tt_gate_open so that a failed test leaves no job blocked.
 */
typedef struct tt_gate {
    sem_t started, release;
    int hold; /* read and written atomically */
    int live; /* between tt_gate_init and tt_gate_destroy */
} tt_gate;
void tt_gate_init(tt_gate *g, int hold);
void tt_gate_wait_started(tt_gate *g);
/** Clear hold and post release once (nothing after tt_gate_destroy). */
void tt_gate_open(tt_gate *g);
void tt_gate_destroy(tt_gate *g);
void tt_gate_hook(void *arg);

/** The output of the last run (static buffer). */
const char *tt_cli_output(void);

/** A whole file (at most 64 KiB) in one of two alternating static buffers; NULL if unreadable. */
char *tt_slurp(const char *path);

/** Fail unless rc == want, printing the run's output. */
void tt_cli_expect(int rc, int want, const char *what);

/** Fail unless rc != 0 and (when needle is set) the output contains needle. */
void tt_cli_expect_fail(int rc, const char *what, const char *needle);

#endif /* TSR_CLITEST_H */
