/*
 * core/progress.h - progress reporting for long work (training epochs,
 * key generation, encrypted inference) and a monotonic clock.
 *
 * On a terminal a single line is redrawn (label, bar, count, rate, ETA and a
 * caller-supplied detail such as the loss). Elsewhere (CI logs, pipes) a line
 * is printed at most every 10% or every 10 seconds. TSR_PROGRESS=0 silences it.
 * Output goes to stderr so stdout stays machine-readable.
 */
#ifndef TSR_CORE_PROGRESS_H
#define TSR_CORE_PROGRESS_H

#include <stdint.h>

/** Seconds from a monotonic clock. */
double tsr_now(void);

/** CPU seconds of the whole process (all its threads; CLOCK_PROCESS_CPUTIME_ID). */
double tsr_cpu_now(void);

typedef struct tsr_progress {
    char label[48];
    uint64_t total, done;
    double t_start, t_last;
    int enabled, tty, last_decile;
    char unit[16];
} tsr_progress;

/** Start reporting; unit names the items ("img", "batch"); total may be 0 if unknown. */
void tsr_progress_begin(tsr_progress *p, const char *label, uint64_t total, const char *unit);
/** Report done items with an optional printf-style detail (may be NULL). */
void tsr_progress_update(tsr_progress *p, uint64_t done, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/** Final line with total time. */
void tsr_progress_end(tsr_progress *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif /* TSR_CORE_PROGRESS_H */
