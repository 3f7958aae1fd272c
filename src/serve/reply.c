/*
 * serve/reply.c - the service's reply texts, built in a buffer that grows: no
 * length is ever taken from a formatted print that did not fit (see
 * serve_internal.h).
 */
#include "serve_internal.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TEXT_MAX (16u << 20) /* no reply is longer: past it the text fails */

void serve_text_appendf(serve_text *t, const char *fmt, ...) {
    if (t->failed) return;
    for (;;) {
        size_t room = t->cap - t->len;
        va_list ap;
        va_start(ap, fmt);
        int n = t->b ? vsnprintf(t->b + t->len, room, fmt, ap) : vsnprintf(NULL, 0, fmt, ap);
        va_end(ap);
        if (n < 0) break;
        if (t->b && (size_t)n < room) {
            t->len += (size_t)n;
            return;
        }
        size_t want = t->len + (size_t)n + 1;
        if (want > TEXT_MAX) break;
        size_t cap = t->cap ? t->cap : 256;
        while (cap < want) cap *= 2;
        char *b = realloc(t->b, cap);
        if (!b) break;
        t->b = b;
        t->cap = cap;
        t->b[t->len] = '\0';
    }
    t->failed = 1;
    if (t->b) t->b[t->len] = '\0'; /* the text as it was before this append */
}

void serve_text_json_string(serve_text *t, const char *s) {
    serve_text_appendf(t, "\"");
    for (; *s && !t->failed; s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch == '"' || ch == '\\')
            serve_text_appendf(t, "\\%c", ch);
        else if (ch < 0x20 || ch == 0x7f)
            serve_text_appendf(t, "\\u%04x", ch);
        else
            serve_text_appendf(t, "%c", ch);
    }
    serve_text_appendf(t, "\"");
}

char *serve_text_take(serve_text *t) {
    char *b = t->failed ? NULL : t->b;
    if (t->failed) free(t->b);
    memset(t, 0, sizeof *t);
    return b;
}

char *serve_keys_reply(const uint8_t hash[32], const uint8_t (*plan_ids)[32],
                       const uint8_t *matched, int n_plans) {
    serve_text t = { 0 };
    char hex[65];
    serve_format_id(hash, hex);
    serve_text_appendf(&t, "{\"keys\": \"%s\", \"plans\": [", hex);
    for (int i = 0, first = 1; i < n_plans; i++)
        if (matched[i]) {
            serve_format_id(plan_ids[i], hex);
            serve_text_appendf(&t, "%s\"%s\"", first ? "" : ", ", hex);
            first = 0;
        }
    serve_text_appendf(&t, "]}\n");
    return serve_text_take(&t);
}
