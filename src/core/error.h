/*
 * core/error.h - internal helpers to fail with a status and a message,
 * propagate statuses, and abort loudly on programmer misuse.
 */
#ifndef TSR_CORE_ERROR_H
#define TSR_CORE_ERROR_H

#include "tessera/common.h"

/**
 * Record a detail message for the calling thread (printf-style) and return
 * st, so callers write `return tsr_fail(TSR_ERR_LEVEL, "...", ...);`.
 * The message must say what was wrong and, where possible, what to do.
 */
tsr_status tsr_fail(tsr_status st, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/**
 * Prefix the calling thread's current detail with context ("reading
 * 'x.ct': ") and return st unchanged. Use when passing an error upward.
 */
tsr_status tsr_fail_context(tsr_status st, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/**
 * Copy src into dst (n bytes, always NUL-terminated, cut if needed) with every control
 * character written as \xHH: C0 controls (ESC among them), DEL and the UTF-8-encoded C1
 * controls (U+0080..U+009F). Names from files (ONNX nodes, ...) go through this before they
 * reach a terminal, so they cannot move the cursor, recolour or retitle it. With
 * keep_newlines, '\n' and '\t' are kept (multi-line messages).
 */
void tsr_escape_controls(char *dst, size_t n, const char *src, int keep_newlines);

/** Abort with file/line and message: broken invariants and API misuse. */
_Noreturn void tsr_panic(const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/** Evaluate a tsr_status expression; return it from the caller if not OK. */
#define TSR_TRY(expr)                                  \
    do {                                               \
        tsr_status tsr_try_st_ = (expr);               \
        if (tsr_try_st_ != TSR_OK) return tsr_try_st_; \
    } while (0)

/** Invariant check kept in release builds: aborts with a message. */
#define TSR_ASSERT(cond)                                                           \
    do {                                                                           \
        if (!(cond)) tsr_panic(__FILE__, __LINE__, "assertion failed: %s", #cond); \
    } while (0)

/** API misuse (NULL where forbidden, ...): aborts with the given message. */
#define TSR_REQUIRE(cond, msg)                                 \
    do {                                                       \
        if (!(cond)) tsr_panic(__FILE__, __LINE__, "%s", msg); \
    } while (0)

#endif /* TSR_CORE_ERROR_H */
