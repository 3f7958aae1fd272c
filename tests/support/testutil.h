/*
 * tests/support/testutil.h - helpers shared by the unit tests (cmocka).
 */
#ifndef TSR_TESTUTIL_H
#define TSR_TESTUTIL_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "core/rng.h"

/**
 * Precision in bits of got against want: -log2(max_i |got_i - want_i|),
 * capped at 60 for exact results.
 */
double tt_precision_bits(const double *got, const double *want, size_t n);

/**
 * Largest |got_i - want_i| relative to max(min_scale, max_i |want_i|), INFINITY when a
 * difference is NaN; min_scale keeps near-zero references from inflating it (1: an absolute
 * error for references within +-1).
 */
double tt_rel_err(const double *got, const double *want, size_t n, double min_scale);
/** tt_rel_err of float vectors (the training engine's). */
double tt_rel_err_f(const float *got, const float *want, size_t n, double min_scale);

/**
 * Deterministic test stream: seeded from TSR_TEST_SEED (decimal) if set,
 * else from the fixed value; domain separates streams inside one test.
 * The seed in use is printed once so failures can be replayed.
 */
void tt_prng(tsr_prng *g, uint64_t domain);

/** x[i] = s (2 u - 1), u uniform in [0, 1) from g: n values uniform in [-s, s). */
void tt_uniform(tsr_prng *g, double *x, int64_t n, double s);

/** Non-zero when built with sanitizers (tests may shrink sizes, never skip checks). */
int tt_sanitized(void);

/** Path of a file in the source tree (static buffer; "tests/data/x" -> "<src>/tests/data/x"). */
const char *tt_source_path(const char *rel);

/** A fresh temporary file path (static buffer, unique per call) inside the process's own directory
 * (made with mkdtemp on the first call, removed at exit). The file is not created. */
const char *tt_temp_path(const char *suffix);

/** Assert a tsr_status is TSR_OK, printing tsr_last_error() otherwise. */
#define tt_ok(expr)                                                                  \
    do {                                                                             \
        tsr_status tt_st_ = (expr);                                                  \
        if (tt_st_ != TSR_OK)                                                        \
            fail_msg("%s -> %s: %s", #expr, tsr_strerror(tt_st_), tsr_last_error()); \
    } while (0)

/** Assert a call fails with exactly the given status and a non-empty message. */
#define tt_fails(expr, status)                                                                    \
    do {                                                                                          \
        tsr_clear_error();                                                                        \
        tsr_status tt_st_ = (expr);                                                               \
        if (tt_st_ != (status))                                                                   \
            fail_msg("%s -> %s (want %s): %s", #expr, tsr_strerror(tt_st_), tsr_strerror(status), \
                     tsr_last_error());                                                           \
        if (tsr_last_error()[0] == '\0') fail_msg("%s failed without a message", #expr);          \
    } while (0)

#endif /* TSR_TESTUTIL_H */
