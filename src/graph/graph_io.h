/*
 * graph/graph_io.h - the wire form of a model graph (graph/graph_io.c), for
 * the modules that embed a graph in their own files (nn plans, format 6).
 * The public entry points are tsr_graph_to_bytes / tsr_graph_from_bytes /
 * tsr_graph_clone (tessera/graph.h); docs/INFERENCE.md has the layout.
 */
#ifndef TSR_GRAPH_IO_H
#define TSR_GRAPH_IO_H

#include "tessera/graph.h"
#include "core/io.h"

/** Version of the graph wire form written by tsr_graph_write. */
#define TSR_GRAPH_WIRE_VERSION 1

/**
 * Append finalized graph g to w (errors are sticky in w: TSR_ERR_INVALID_ARG
 * for a graph that is not finalized or has a name longer than 4096 bytes).
 */
void tsr_graph_write(tsr_writer *w, const tsr_graph *g);

/**
 * Read one graph from a memory reader (r->fp NULL): every count and size is
 * checked against the bytes left before anything is allocated, the graph is
 * rebuilt through the tsr_graph_add_* calls in its original order and
 * finalized. TSR_ERR_FORMAT with a message for anything malformed (also set
 * sticky on r).
 */
tsr_status tsr_graph_read(tsr_reader *r, tsr_graph **out);

#endif /* TSR_GRAPH_IO_H */
