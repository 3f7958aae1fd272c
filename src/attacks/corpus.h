/*
 * attacks/corpus.h - the lab's PE corpus as scripts/make_pe_corpus.sh writes
 * it: DIR/manifest.csv (file,label,split,source,bytes,sha256; label 1 =
 * flagged) and DIR/files/<file>. Loading validates every line (a plain file
 * name, label 0/1, split train/test, the size on disk equal to the manifest's)
 * and reads each file whole (at most TSR_CORPUS_MAX_FILE bytes).
 */
#ifndef TSR_ATTACKS_CORPUS_H
#define TSR_ATTACKS_CORPUS_H

#include "tessera/common.h"

#include <stddef.h>
#include <stdint.h>

#define TSR_CORPUS_MAX_FILES 100000
#define TSR_CORPUS_MAX_FILE  (64u << 20)
#define TSR_CORPUS_NAME      96

typedef enum tsr_split { TSR_SPLIT_TRAIN = 0, TSR_SPLIT_TEST = 1 } tsr_split;

typedef struct tsr_corpus_file {
    char name[TSR_CORPUS_NAME];   /* file name inside DIR/files */
    char source[TSR_CORPUS_NAME]; /* split group */
    int label;                    /* 1 flagged, 0 clean */
    tsr_split split;
    uint8_t *buf; /* the file's bytes (owned) */
    size_t len;
} tsr_corpus_file;

typedef struct tsr_corpus {
    tsr_corpus_file *f;
    size_t n;
} tsr_corpus;

/**
 * Parse a manifest (the text of manifest.csv, len bytes) into c without
 * reading any file (buf NULL, len = the manifest's byte count). Errors:
 * TSR_ERR_FORMAT naming the line, TSR_ERR_NOMEM.
 */
tsr_status tsr_corpus_parse_manifest(tsr_corpus *c, const char *text, size_t len);
/** Load DIR/manifest.csv and every file it lists (sizes must match). */
tsr_status tsr_corpus_load(tsr_corpus *c, const char *dir);
/** Free a corpus (empty or zeroed accepted). */
void tsr_corpus_free(tsr_corpus *c);

#endif /* TSR_ATTACKS_CORPUS_H */
