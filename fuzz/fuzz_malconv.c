/*
 * fuzz/fuzz_malconv.c - libFuzzer target for the MalConv model file reader
 * (attacks/detector.h) and the corpus manifest parser (attacks/corpus.h):
 * any bytes must give a status, never a crash, an out-of-bounds access or
 * an allocation the input cannot justify.
 */
#include "attacks/corpus.h"
#include "attacks/detector.h"

#include <stddef.h>
#include <stdint.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    tsr_malconv *m = NULL;
    if (tsr_malconv_parse(&m, data, size) == TSR_OK) {
        if (!m || m->nparams * 4 > size) __builtin_trap();
        tsr_malconv_free(m);
    }
    tsr_corpus c;
    if (tsr_corpus_parse_manifest(&c, (const char *)data, size) == TSR_OK) {
        for (size_t i = 0; i < c.n; i++)
            if (c.f[i].label > 1 || c.f[i].name[0] == '.' || strchr(c.f[i].name, '/'))
                __builtin_trap();
    }
    tsr_corpus_free(&c);
    return 0;
}
