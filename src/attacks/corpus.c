/*
 * attacks/corpus.c - manifest parsing and loading of the lab's PE corpus
 * (attacks/corpus.h).
 */
#include "attacks/corpus.h"

#include "core/alloc.h"
#include "core/error.h"
#include "core/io.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void tsr_corpus_free(tsr_corpus *c) {
    if (!c) return;
    for (size_t i = 0; i < c->n; i++) tsr_free(c->f[i].buf);
    tsr_free(c->f);
    memset(c, 0, sizeof *c);
}

/* Copy field [a, b) into dst (cap bytes) if it is non-empty and short enough. */
static int field(char *dst, size_t cap, const char *a, const char *b) {
    size_t n = (size_t)(b - a);
    if (n == 0 || n >= cap) return -1;
    memcpy(dst, a, n);
    dst[n] = '\0';
    return 0;
}

static int plain_name(const char *s) {
    if (s[0] == '.' || s[0] == '\0') return 0;
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') ||
              *s == '.' || *s == '_' || *s == '-'))
            return 0;
    return 1;
}

tsr_status tsr_corpus_parse_manifest(tsr_corpus *c, const char *text, size_t len) {
    memset(c, 0, sizeof *c);
    size_t lines = 0;
    for (size_t i = 0; i < len; i++) lines += text[i] == '\n';
    if (lines > TSR_CORPUS_MAX_FILES + 1)
        return tsr_fail(TSR_ERR_FORMAT, "manifest lists more than %d files", TSR_CORPUS_MAX_FILES);
    c->f = tsr_calloc_array(lines + 1, sizeof *c->f);
    if (!c->f) return tsr_fail(TSR_ERR_NOMEM, "out of memory for the corpus manifest");
    const char *p = text, *end = text + len;
    size_t lineno = 0;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *e = nl ? nl : end;
        lineno++;
        if (lineno == 1) {
            static const char head[] = "file,label,split,source,bytes,sha256";
            if ((size_t)(e - p) != sizeof head - 1 || memcmp(p, head, sizeof head - 1) != 0) {
                tsr_corpus_free(c);
                return tsr_fail(TSR_ERR_FORMAT, "manifest line 1 is not the header '%s'", head);
            }
        } else if (e > p) {
            const char *f[7];
            int nf = 0;
            f[nf++] = p;
            for (const char *q = p; q < e && nf < 7; q++)
                if (*q == ',') f[nf++] = q + 1;
            tsr_corpus_file *x = &c->f[c->n];
            char label[4], split[8], bytes[24];
            int ok = nf == 6 && field(x->name, sizeof x->name, f[0], f[1] - 1) == 0 &&
                     field(label, sizeof label, f[1], f[2] - 1) == 0 &&
                     field(split, sizeof split, f[2], f[3] - 1) == 0 &&
                     field(x->source, sizeof x->source, f[3], f[4] - 1) == 0 &&
                     field(bytes, sizeof bytes, f[4], f[5] - 1) == 0 && plain_name(x->name);
            if (ok) {
                ok = (strcmp(label, "0") == 0 || strcmp(label, "1") == 0) &&
                     (strcmp(split, "train") == 0 || strcmp(split, "test") == 0);
                x->label = label[0] - '0';
                x->split = split[1] == 'r' ? TSR_SPLIT_TRAIN : TSR_SPLIT_TEST;
                char *stop;
                unsigned long long v = strtoull(bytes, &stop, 10);
                ok = ok && *stop == '\0' && bytes[0] >= '0' && bytes[0] <= '9' &&
                     v <= TSR_CORPUS_MAX_FILE;
                x->len = (size_t)v;
            }
            if (!ok) {
                tsr_corpus_free(c);
                return tsr_fail(TSR_ERR_FORMAT,
                                "manifest line %zu is malformed: want file,label(0|1),"
                                "split(train|test),source,bytes,sha256 with a plain file name",
                                lineno);
            }
            c->n++;
        }
        p = nl ? nl + 1 : end;
    }
    if (lineno == 0) return tsr_fail(TSR_ERR_FORMAT, "manifest is empty");
    return TSR_OK;
}

tsr_status tsr_corpus_load(tsr_corpus *c, const char *dir) {
    char path[4096];
    snprintf(path, sizeof path, "%s/manifest.csv", dir);
    uint8_t *text;
    size_t len;
    TSR_TRY(tsr_read_whole_file(path, 64u << 20, "a corpus manifest", &text, &len));
    tsr_status st = tsr_corpus_parse_manifest(c, (const char *)text, len);
    tsr_free(text);
    if (st != TSR_OK) return tsr_fail_context(st, "%s: ", path);
    for (size_t i = 0; i < c->n; i++) {
        tsr_corpus_file *x = &c->f[i];
        size_t want = x->len;
        snprintf(path, sizeof path, "%s/files/%s", dir, x->name);
        st = tsr_read_whole_file(path, TSR_CORPUS_MAX_FILE, "a corpus file", &x->buf, &x->len);
        if (st == TSR_OK && x->len != want)
            st = tsr_fail(TSR_ERR_FORMAT, "%s has %zu bytes but the manifest says %zu", path,
                          x->len, want);
        if (st != TSR_OK) {
            tsr_corpus_free(c);
            return st;
        }
    }
    return TSR_OK;
}
