/*
 * fuzz/fuzz_graph_read.c - libFuzzer target for the model-graph reader
 * (src/graph/graph_io.c, the graph inside plan format 6): any bytes must
 * give a status and no graph, or a finalized graph whose own bytes read back
 * to the same bytes; never a crash, a leak or an out-of-bounds read.
 * Seeds: fuzz/corpus/fuzz_graph_read/ (the PyTorch fixtures' graphs).
 */
#include "tessera/graph.h"

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    tsr_graph *g = NULL, *h = NULL;
    if (tsr_graph_from_bytes(&g, data, size) != TSR_OK) {
        if (g) abort();
        return 0;
    }
    /* An accepted graph writes, and what it writes reads back to the same bytes. */
    uint8_t *a = NULL, *b = NULL;
    size_t na = 0, nb = 0;
    if (tsr_graph_to_bytes(g, &a, &na) != TSR_OK) abort();
    if (tsr_graph_from_bytes(&h, a, na) != TSR_OK) abort();
    if (tsr_graph_to_bytes(h, &b, &nb) != TSR_OK) abort();
    if (na != nb || memcmp(a, b, na) != 0) abort();
    tsr_graph_bytes_free(a);
    tsr_graph_bytes_free(b);
    tsr_graph_free(h);
    tsr_graph_free(g);
    return 0;
}
