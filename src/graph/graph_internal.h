/*
 * graph/graph_internal.h - the graph structure behind tessera/graph.h, for
 * the library modules built on it (onnx, train, nn): values, nodes, the
 * execution order, and the per-kind shape rules and kernels.
 */
#ifndef TSR_GRAPH_INTERNAL_H
#define TSR_GRAPH_INTERNAL_H

#include "tessera/graph.h"

typedef enum tsr_value_kind {
    TSR_VALUE_INPUT = 0, /* fed to tsr_graph_run */
    TSR_VALUE_CONST,     /* data in the graph */
    TSR_VALUE_NODE       /* output of a node */
} tsr_value_kind;

typedef struct tsr_graph_value {
    char *name;
    tsr_value_kind kind;
    int rank;                         /* declared, or inferred by finalize */
    int64_t dims[TSR_ARRAY_MAX_RANK]; /* inputs: -1 = free */
    tsr_array *data;                  /* CONST */
    int producer;                     /* node index (NODE), else -1 */
    int n_uses;                       /* node inputs reading it (finalize) */
} tsr_graph_value;

typedef struct tsr_graph_node {
    tsr_graph_kind kind;
    char *name;
    int n_in;
    char **in_names; /* "" = omitted */
    int *in;         /* value index, -1 = omitted (finalize) */
    int out;         /* value index */
    tsr_graph_attrs a;
} tsr_graph_node;

struct tsr_graph {
    int n_values, cap_values;
    tsr_graph_value *values;
    int n_nodes, cap_nodes;
    tsr_graph_node *nodes;
    int n_inputs, cap_inputs;
    int *inputs; /* value indices */
    int n_outputs, cap_outputs;
    char **output_names;
    int *outputs; /* value indices (finalize) */
    int *order;   /* node indices in execution order (finalize) */
    int finalized;
};

/** v clamped to [-2^62, 2^62] (Slice bounds such as INT64_MAX, without overflow). */
static inline int64_t tsr_clamp62(int64_t v) {
    const int64_t lim = (int64_t)1 << 62;
    return v < -lim ? -lim : v > lim ? lim : v;
}

/** Index of the value called name, or -1. */
int tsr_graph_find_value(const tsr_graph *g, const char *name);

/**
 * Output shape of node n given its input shapes (rank[k], dims[k]; rank -1
 * for an omitted input) and the constants of its inputs (NULL when not
 * constant). TSR_ERR_SHAPE / TSR_ERR_FORMAT naming the node.
 */
tsr_status tsr_graph_node_shape(const tsr_graph *g, const tsr_graph_node *n, const int *rank,
                                const int64_t (*dims)[TSR_ARRAY_MAX_RANK],
                                const tsr_array *const *consts, int *out_rank, int64_t *out_dims);

/**
 * Compute node n: out has the shape tsr_graph_node_shape gave for these inputs. Every kernel
 * writes every element of out and never reads it first (no `out += ...` on the assumption
 * that out starts zeroed): the trainer (src/train/gtrain.c) passes the previous batch's
 * arrays uninitialised. test_train_graph's test_reused_activations checks it.
 */
void tsr_graph_node_exec(const tsr_graph_node *n, const tsr_array *const *in, tsr_array *out);

/** Label for messages: "node 'name' (kind)". */
const char *tsr_graph_node_label(const tsr_graph_node *n, char *buf, size_t len);

/* Convolution / pooling geometry resolved from attributes and shapes. */
typedef struct tsr_pool_geom {
    int ns;                             /* spatial dims */
    int64_t in[TSR_GRAPH_MAX_SPATIAL];  /* input spatial sizes */
    int64_t out[TSR_GRAPH_MAX_SPATIAL]; /* output spatial sizes */
    int64_t k[TSR_GRAPH_MAX_SPATIAL];   /* kernel */
    int64_t s[TSR_GRAPH_MAX_SPATIAL];   /* strides */
    int64_t d[TSR_GRAPH_MAX_SPATIAL];   /* dilations */
    int64_t pb[TSR_GRAPH_MAX_SPATIAL];  /* pads at the beginning */
    int64_t pe[TSR_GRAPH_MAX_SPATIAL];  /* pads at the end */
} tsr_pool_geom;

/** Resolve the geometry of a CONV / AVGPOOL node for input x (rank >= 3) and kernel k. */
tsr_status tsr_graph_pool_geom(const tsr_graph_node *n, int rank, const int64_t *x,
                               const int64_t *kernel, tsr_pool_geom *geo);

/**
 * A Conv node on one input shape (conv.c), shared by the executor and the
 * trainer's backward: the geometry and the counts of one sample and group
 * (nin input and nout output positions per channel, nk kernel positions,
 * ck = cg * nk rows of the im2col matrix), the tap table and the column
 * buffer. The weight of group g is w + g * mg * ck, (mg, ck) row-major.
 */
typedef struct tsr_conv_plan {
    tsr_pool_geom geo;
    int64_t N, C, M, G; /* batch, input channels, output channels, groups */
    int64_t cg, mg;     /* channels per group in and out */
    int64_t nin, nout, nk, ck;
    int64_t *tab; /* (nk, nout): input offset of kernel position q at output position p, -1 in
                     padding */
    double *col;  /* (ck, nout) one sample and group's im2col */
} tsr_conv_plan;

/**
 * Set up cp for Conv node n on input x with weight w (shapes checked by
 * shape.c). With buffers, allocate and fill tab and allocate col; both stay
 * NULL when memory runs out (the caller falls back or fails). Free with
 * tsr_conv_plan_free.
 */
void tsr_conv_plan_init(tsr_conv_plan *cp, const tsr_graph_node *n, const tsr_array *x,
                        const tsr_array *w, int buffers);
void tsr_conv_plan_free(tsr_conv_plan *cp);
/** im2col of one sample and group (xg: cg channels of nin values) into cp->col. */
void tsr_conv_im2col(const tsr_conv_plan *cp, const double *xg);
/**
 * (nk, nout) table of a window geometry: entry q * nout + p is the input
 * offset of kernel position q at output position p, -1 in padding (tsr_pool_tap).
 * NULL out of memory; free with tsr_free.
 */
int64_t *tsr_pool_tap_table(const tsr_pool_geom *geo);
/**
 * The tap table of a pooling call over `planes` planes, or NULL when it would
 * hold more entries than the call's activations (planes x (nin + nout), at
 * least 2^16) or is out of memory: the caller then unravels each tap
 * (tsr_pool_tap_at). The table is nk times one output plane, so a large window
 * must not allocate it.
 */
int64_t *tsr_pool_tap_table_for(const tsr_pool_geom *geo, int64_t planes);
/** AveragePool's divisor at output position op: taps inside the input, or inside input + pads. */
int64_t tsr_pool_divisor(const tsr_pool_geom *geo, const int64_t *op, int count_include_pad);

/* ---- index helpers shared by the executor (exec.c) and the trainer's backward ---- */

/** Row-major strides of dims. */
static inline void tsr_strides_of(int rank, const int64_t *dims, int64_t *st) {
    int64_t s = 1;
    for (int k = rank - 1; k >= 0; k--) {
        st[k] = s;
        s *= dims[k];
    }
}

/** Strides of t broadcast into rank r with dims odims (0 on broadcast dimensions). */
static inline void tsr_bstrides(const tsr_array *t, int r, const int64_t *odims, int64_t *bs) {
    int64_t st[TSR_ARRAY_MAX_RANK];
    tsr_strides_of(t->rank, t->dims, st);
    for (int k = 0; k < r; k++) {
        int j = k - (r - t->rank);
        bs[k] = (j < 0 || t->dims[j] == 1) && odims[k] != 1 ? 0 : (j < 0 ? 0 : st[j]);
    }
}

/**
 * An index walk over a row-major box (rank r, dims) moving two offsets at once, each by its
 * own per-dimension strides (0 on a broadcast or reduced dimension; NULL strides: the offset
 * stays where it starts). Both offsets start at 0 (set off[] after init); tsr_walk_next steps
 * to the next position of the box. The walk of the elementwise, data movement and reduction
 * kernels (exec.c) and of their backward (train/gbackward.c).
 */
typedef struct tsr_walk {
    int r;
    const int64_t *dims;
    int64_t idx[TSR_ARRAY_MAX_RANK];
    int64_t s[2][TSR_ARRAY_MAX_RANK];
    int64_t off[2];
} tsr_walk;

static inline void tsr_walk_init(tsr_walk *w, int r, const int64_t *dims, const int64_t *s0,
                                 const int64_t *s1) {
    w->r = r;
    w->dims = dims;
    for (int k = 0; k < TSR_ARRAY_MAX_RANK; k++) {
        w->idx[k] = 0;
        w->s[0][k] = s0 && k < r ? s0[k] : 0;
        w->s[1][k] = s1 && k < r ? s1[k] : 0;
    }
    w->off[0] = w->off[1] = 0;
}

static inline void tsr_walk_next(tsr_walk *w) {
    for (int k = w->r - 1; k >= 0; k--) {
        w->off[0] += w->s[0][k];
        w->off[1] += w->s[1][k];
        if (++w->idx[k] < w->dims[k]) return;
        w->off[0] -= w->s[0][k] * w->idx[k];
        w->off[1] -= w->s[1][k] * w->idx[k];
        w->idx[k] = 0;
    }
}

/*
 * Where the movement and reduction kinds read (exec.c), for the executor and the backward:
 * each fills per-dimension strides for a tsr_walk and returns the walk's start offset.
 */
/** TRANSPOSE: s[k] the stride in x of output dimension k; returns 0. */
int64_t tsr_transpose_strides(const tsr_graph_node *n, const tsr_array *x, int64_t *s);
/** SLICE: s[k] the step in x along output dimension k; returns the offset of the first element. */
int64_t tsr_slice_strides(const tsr_graph_node *n, const tsr_array *x, int64_t *s);
/** REDUCE_*: s[k] the stride in the output along input dimension k (0 reduced); returns 0. */
int64_t tsr_reduce_strides(const tsr_graph_node *n, const tsr_array *x, int64_t *s);
/** PAD: s the strides of the padded array p; returns the offset of x's first element in p. */
int64_t tsr_pad_strides(const tsr_graph_node *n, const tsr_array *p, int64_t *s);

/**
 * MATMUL of a and b into o (ONNX broadcasting): matrices (m, k) x (k, nn), nb products over
 * the rbat leading dimensions of o, where sa / sb step a's and b's matrix index (0 on
 * broadcast dimensions).
 */
typedef struct tsr_matmul_geom {
    int64_t m, k, nn, nb;
    int rbat;
    int64_t sa[TSR_ARRAY_MAX_RANK], sb[TSR_ARRAY_MAX_RANK];
} tsr_matmul_geom;

void tsr_matmul_geom_init(tsr_matmul_geom *mg, const tsr_array *a, const tsr_array *b,
                          const tsr_array *o);

/** Product of sz[0..ns). */
static inline int64_t tsr_spatial_count(const int64_t *sz, int ns) {
    int64_t c = 1;
    for (int i = 0; i < ns; i++) c *= sz[i];
    return c;
}

/** Multi-index idx of flat position p in a row-major box of sizes sz[0..ns). */
static inline void tsr_unravel(int64_t p, const int64_t *sz, int ns, int64_t *idx) {
    for (int i = ns - 1; i >= 0; i--) {
        idx[i] = p % sz[i];
        p /= sz[i];
    }
}

/**
 * Input offset of kernel position kp for output position op, or -1 when it
 * falls into padding. geo from tsr_graph_pool_geom.
 */
static inline int64_t tsr_pool_tap(const tsr_pool_geom *geo, const int64_t *op, const int64_t *kp) {
    int64_t off = 0;
    for (int i = 0; i < geo->ns; i++) {
        int64_t pos = op[i] * geo->s[i] - geo->pb[i] + kp[i] * geo->d[i];
        if (pos < 0 || pos >= geo->in[i]) return -1;
        off = off * geo->in[i] + pos;
    }
    return off;
}

/* Tap q at output position p: from tab (tsr_pool_tap_table_for), else unravelled into op, kp. */
static inline int64_t tsr_pool_tap_at(const tsr_pool_geom *geo, const int64_t *tab, int64_t nout,
                                      int64_t q, int64_t p, int64_t *op, int64_t *kp) {
    if (tab) return tab[q * nout + p];
    tsr_unravel(p, geo->out, geo->ns, op);
    tsr_unravel(q, geo->k, geo->ns, kp);
    return tsr_pool_tap(geo, op, kp);
}

#endif /* TSR_GRAPH_INTERNAL_H */
