/*
 * core/error.c - status strings, per-thread error details, panics.
 */
#include "core/error.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TSR_ERRMSG_MAX 1024

static _Thread_local char tls_msg[TSR_ERRMSG_MAX];

static const char *const status_names[TSR_STATUS_COUNT_] = {
    [TSR_OK] = "ok",
    [TSR_ERR_INVALID_ARG] = "invalid argument",
    [TSR_ERR_NOMEM] = "out of memory",
    [TSR_ERR_IO] = "I/O error",
    [TSR_ERR_FORMAT] = "malformed input",
    [TSR_ERR_VERSION] = "unsupported format version",
    [TSR_ERR_CHECKSUM] = "checksum mismatch (corrupted input)",
    [TSR_ERR_MISMATCH] = "objects do not belong together",
    [TSR_ERR_INSECURE] = "insecure parameters",
    [TSR_ERR_LEVEL] = "multiplicative depth exhausted",
    [TSR_ERR_SCALE] = "scale mismatch or overflow",
    [TSR_ERR_KEY_MISSING] = "evaluation key missing",
    [TSR_ERR_SECRET] = "secret key not allowed here",
    [TSR_ERR_SHAPE] = "invalid or incompatible shape",
    [TSR_ERR_UNSUPPORTED] = "unsupported",
    [TSR_ERR_RNG] = "random number generator unavailable",
    [TSR_ERR_NOT_FOUND] = "not found",
    [TSR_ERR_INTERNAL] = "internal error (a bug in Tessera)",
};

const char *tsr_strerror(tsr_status st) {
    if ((int)st < 0 || st >= TSR_STATUS_COUNT_) return "unknown status";
    return status_names[st];
}

const char *tsr_last_error(void) {
    return tls_msg;
}

void tsr_clear_error(void) {
    tls_msg[0] = '\0';
}

tsr_status tsr_fail(tsr_status st, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(tls_msg, sizeof tls_msg, fmt, ap);
    va_end(ap);
    return st;
}

tsr_status tsr_fail_context(tsr_status st, const char *fmt, ...) {
    char prefix[TSR_ERRMSG_MAX];
    char old[TSR_ERRMSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof prefix, fmt, ap);
    va_end(ap);
    memcpy(old, tls_msg, sizeof old);
    if (old[0] == '\0') snprintf(old, sizeof old, "%s", tsr_strerror(st));
    /* Concatenate by hand: truncating an over-long message is intended. */
    size_t np = strlen(prefix), no = strlen(old);
    if (np > sizeof tls_msg - 1) np = sizeof tls_msg - 1;
    if (no > sizeof tls_msg - 1 - np) no = sizeof tls_msg - 1 - np;
    memcpy(tls_msg, prefix, np);
    memcpy(tls_msg + np, old, no);
    tls_msg[np + no] = '\0';
    return st;
}

void tsr_panic(const char *file, int line, const char *fmt, ...) {
    va_list ap;
    fprintf(stderr, "tessera: fatal: %s:%d: ", file, line);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    abort();
}

void tsr_escape_controls(char *dst, size_t n, const char *src, int keep_newlines) {
    if (n == 0) return;
    size_t o = 0;
    for (const unsigned char *p = (const unsigned char *)src; *p; p++) {
        unsigned c = *p;
        int c1 = c == 0xc2 && p[1] >= 0x80 && p[1] <= 0x9f; /* UTF-8 for U+0080..U+009F */
        int ctl = c < 0x20 || c == 0x7f || c1;
        if (keep_newlines && (c == '\n' || c == '\t')) ctl = 0;
        if (!ctl) {
            if (o + 1 >= n) break;
            dst[o++] = (char)c;
            continue;
        }
        if (c1) c = *++p;
        if (o + 4 >= n) break;
        snprintf(dst + o, n - o, "\\x%02x", c);
        o += 4;
    }
    dst[o] = '\0';
}
