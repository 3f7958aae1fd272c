/*
 * prune/prune.c - HE-aware pruning of a model graph (tessera/prune.h;
 * HE-PEx, Aharoni et al., arXiv 2207.03384): the prunable layers as
 * matrices over tiles, the zeroing methods (tiles, unstructured magnitude,
 * Hunter-style rows) with a cubic gradual schedule (Zhu and Gupta, arXiv
 * 1710.01878) and fixed masks around the fine-tuning hook, the statistics
 * report, and rebuilding a graph with new constants. The permutation and
 * expansion of hidden features live in permute.c.
 */
#include "prune/prune_internal.h"

#include "core/alloc.h"
#include "core/error.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

void tsr_prune_opts_default(tsr_prune_opts *o) {
    memset(o, 0, sizeof *o);
    o->method = TSR_PRUNE_TILE;
    o->sparsity = 0.5;
    o->tile_rows = 32;
    o->tile_cols = 32;
    o->alternate = 1;
    o->tile_y = 1;
    o->tile_x = 1;
    o->expand = 1.0;
    o->steps = 1;
    o->kmeans_iters = 20;
    o->seed = 1;
}

static const char *const method_names[] = {
    [TSR_PRUNE_NONE] = "none",     [TSR_PRUNE_TILE] = "tile",   [TSR_PRUNE_MAGNITUDE] = "magnitude",
    [TSR_PRUNE_HUNTER] = "hunter", [TSR_PRUNE_HEPEX] = "hepex",
};

const char *tsr_prune_method_name(tsr_prune_method m) {
    return (unsigned)m <= TSR_PRUNE_HEPEX ? method_names[m] : "?";
}

tsr_status tsr_prune_method_parse(const char *s, tsr_prune_method *out) {
    for (int m = 0; m <= TSR_PRUNE_HEPEX; m++)
        if (strcmp(s, method_names[m]) == 0) {
            *out = (tsr_prune_method)m;
            return TSR_OK;
        }
    return tsr_fail(TSR_ERR_INVALID_ARG,
                    "unknown pruning method '%s' (tile, magnitude, hunter, hepex or none)", s);
}

/* ---- the working model ------------------------------------------------------- */

const tsr_array *pr_const(const pr_model *m, int v) {
    return m->data[v] ? m->data[v] : m->g->values[v].data;
}

tsr_status pr_const_mut(pr_model *m, int v, tsr_array **out) {
    if (!m->data[v]) TSR_TRY(tsr_array_clone(&m->data[v], m->g->values[v].data));
    *out = m->data[v];
    return TSR_OK;
}

void pr_const_set(pr_model *m, int v, tsr_array *a) {
    tsr_array_free(m->data[v]);
    m->data[v] = a;
}

static void model_free(pr_model *m) {
    if (m->data)
        for (int v = 0; v < m->g->n_values; v++) tsr_array_free(m->data[v]);
    for (int i = 0; i < m->n_layers; i++) tsr_free(m->layers[i].mask);
    tsr_free(m->data);
    tsr_free(m->layers);
    tsr_free(m->hidden);
    memset(m, 0, sizeof *m);
}

static int is_const(const tsr_graph *g, int v) {
    return v >= 0 && g->values[v].kind == TSR_VALUE_CONST;
}

/* The layer of node n, if it has a constant weight matrix (returns 1). */
static int layer_of(const tsr_graph *g, int n, pr_layer *L) {
    const tsr_graph_node *nd = &g->nodes[n];
    memset(L, 0, sizeof *L);
    L->node = n;
    L->bval = -1;
    L->k = 1;
    if (nd->n_in < 2 || !is_const(g, nd->in[1]) || is_const(g, nd->in[0])) return 0;
    const tsr_graph_value *w = &g->values[nd->in[1]];
    if (w->n_uses != 1) return 0;
    L->wval = nd->in[1];
    int bias = nd->n_in >= 3 && is_const(g, nd->in[2]) ? nd->in[2] : -1;
    switch (nd->kind) {
    case TSR_NODE_GEMM:
        if (w->rank != 2 || nd->a.trans_a) return 0;
        L->rows_major = nd->a.trans_b != 0;
        L->rows = L->rows_major ? w->dims[0] : w->dims[1];
        L->cols = L->rows_major ? w->dims[1] : w->dims[0];
        break;
    case TSR_NODE_MATMUL:
        if (w->rank != 2) return 0;
        L->rows_major = 0;
        L->rows = w->dims[1];
        L->cols = w->dims[0];
        break;
    case TSR_NODE_CONV:
        if (w->rank < 3 || (nd->a.group != 0 && nd->a.group != 1)) return 0;
        L->rows_major = 1;
        L->rows = w->dims[0];
        L->cols = w->dims[1];
        for (int i = 2; i < w->rank; i++) L->k *= w->dims[i];
        break;
    default:
        return 0;
    }
    if (bias >= 0) {
        const tsr_graph_value *b = &g->values[bias];
        if (b->n_uses == 1 && b->rank >= 1 && b->dims[b->rank - 1] == L->rows &&
            tsr_dims_numel(b->rank, b->dims) == L->rows)
            L->bval = bias;
    }
    return L->rows > 0 && L->cols > 0;
}

/*
 * A dense layer whose input is a Flatten (axis 1) or a Reshape to (N, -1) of
 * (N, C, H, W) images: its columns are (channel, y, x) and its tiles take C
 * channels at a tile_y x tile_x block of positions, like the compiler's.
 */
static void flattened_from(const tsr_graph *g, pr_layer *L, const tsr_prune_opts *o) {
    const tsr_graph_node *nd = &g->nodes[L->node];
    if (nd->kind == TSR_NODE_CONV) return;
    int v = nd->in[0];
    for (int n = 0; n < g->n_nodes; n++) {
        const tsr_graph_node *f = &g->nodes[n];
        if (f->out != v) continue;
        int ok = (f->kind == TSR_NODE_FLATTEN && f->a.axis == 1) ||
                 (f->kind == TSR_NODE_RESHAPE && f->a.n_shape == 2 && f->a.shape[1] == -1);
        const tsr_graph_value *x = &g->values[f->in[0]];
        if (!ok || x->rank != 4 || x->dims[1] * x->dims[2] * x->dims[3] != L->cols) return;
        L->sp_h = x->dims[2];
        L->sp_w = x->dims[3];
        L->ty = o->tile_y;
        L->tx = o->tile_x;
        return;
    }
}

static tsr_status model_init(pr_model *m, const tsr_graph *g, const tsr_prune_opts *o) {
    memset(m, 0, sizeof *m);
    m->g = g;
    if (!g->finalized) return tsr_fail(TSR_ERR_INVALID_ARG, "prune: the graph must be finalized");
    m->data = tsr_calloc_array((size_t)g->n_values, sizeof *m->data);
    m->layers = tsr_calloc_array((size_t)g->n_nodes + 1, sizeof *m->layers);
    if (!m->data || !m->layers) {
        model_free(m);
        return tsr_fail(TSR_ERR_NOMEM, "out of memory");
    }
    for (int i = 0; i < g->n_nodes; i++) {
        pr_layer L;
        if (!layer_of(g, g->order[i], &L)) continue;
        int alt = o->alternate && (m->n_layers % 2 == 1);
        L.R = alt ? o->tile_cols : o->tile_rows;
        L.C = alt ? o->tile_rows : o->tile_cols;
        flattened_from(g, &L, o);
        L.offsets = o->offset_tiles && L.k > 1;
        L.prune = 1;
        int li = m->n_layers;
        L.sparsity = o->layer_sparsity && li < o->n_layer_sparsity && o->layer_sparsity[li] >= 0
                         ? o->layer_sparsity[li]
                         : o->sparsity;
        L.row_sparsity =
            o->layer_row_sparsity && li < o->n_layer_row_sparsity && o->layer_row_sparsity[li] >= 0
                ? o->layer_row_sparsity[li]
                : o->row_sparsity;
        m->layers[m->n_layers++] = L;
    }
    if (m->n_layers == 0) {
        model_free(m);
        return tsr_fail(TSR_ERR_UNSUPPORTED,
                        "prune: the model has no layer with a constant weight matrix (Gemm, "
                        "MatMul by a constant, Conv with group 1)");
    }
    if (o->layer_sparsity && o->n_layer_sparsity > m->n_layers) {
        int n = m->n_layers;
        model_free(m);
        return tsr_fail(TSR_ERR_INVALID_ARG,
                        "prune: %d per-layer sparsities given but the model has %d prunable "
                        "layers",
                        o->n_layer_sparsity, n);
    }
    if (o->layer_row_sparsity && o->n_layer_row_sparsity > m->n_layers) {
        int n = m->n_layers;
        model_free(m);
        return tsr_fail(TSR_ERR_INVALID_ARG,
                        "prune: %d per-layer tile-row sparsities given but the model has %d "
                        "prunable layers",
                        o->n_layer_row_sparsity, n);
    }
    if (o->skip_first) m->layers[0].prune = 0;
    if (o->skip_last) m->layers[m->n_layers - 1].prune = 0;
    return TSR_OK;
}

/* ---- tiles -------------------------------------------------------------------- */

tsr_status pr_tile_norms(const pr_model *m, const pr_layer *L, double **out, int64_t *ntiles) {
    int64_t bc = pr_tcols(L), nt = pr_ntiles(L);
    double *n = tsr_calloc_array((size_t)nt, sizeof *n);
    if (!n) return tsr_fail(TSR_ERR_NOMEM, "out of memory");
    const double *w = pr_const(m, L->wval)->data;
    for (int64_t r = 0; r < L->rows; r++)
        for (int64_t c = 0; c < L->cols; c++)
            for (int64_t j = 0; j < L->k; j++) {
                double x = w[pr_widx(L, r, c, j)];
                n[pr_unit(L, bc, r, c, j)] += x * x;
            }
    *out = n;
    *ntiles = nt;
    return TSR_OK;
}

typedef struct keyed {
    double key;
    int64_t idx;
} keyed;

static int cmp_keyed(const void *x, const void *y) {
    const keyed *a = x, *b = y;
    if (a->key != b->key) return a->key < b->key ? -1 : 1;
    return a->idx < b->idx ? -1 : a->idx > b->idx;
}

static int cmp_double(const void *x, const void *y) {
    double a = *(const double *)x, b = *(const double *)y;
    return (a > b) - (a < b);
}

/* Indices of the n smallest keys (ties by index): sorts keys in place. */
static void smallest(keyed *k, int64_t n) {
    qsort(k, (size_t)n, sizeof *k, cmp_keyed);
}

/* Zero every weight of the listed units (unit = tile, row, weight or tile row: the R rows of
 * one row of tiles; a tile is one kernel offset's with L->offsets) and mark the mask. */
typedef enum unit_kind { UNIT_TILE, UNIT_ROW, UNIT_WEIGHT, UNIT_TILEROW } unit_kind;

static tsr_status ensure_mask(pr_layer *L) {
    if (L->mask) return TSR_OK;
    L->mask = tsr_calloc((size_t)(L->rows * L->cols * L->k));
    if (!L->mask) return tsr_fail(TSR_ERR_NOMEM, "out of memory");
    return TSR_OK;
}

/* Zero the round(s * units) smallest units of layer L by L2 norm (magnitude for weights). */
static tsr_status prune_layer(pr_model *m, pr_layer *L, unit_kind u, double s) {
    tsr_array *wa;
    TSR_TRY(pr_const_mut(m, L->wval, &wa));
    TSR_TRY(ensure_mask(L));
    double *w = wa->data;
    int64_t bc = pr_tcols(L);
    int64_t n = u == UNIT_TILE      ? pr_ntiles(L)
                : u == UNIT_ROW     ? L->rows
                : u == UNIT_TILEROW ? (L->rows + L->R - 1) / L->R
                                    : L->rows * L->cols * L->k;
    keyed *k = tsr_calloc_array((size_t)n, sizeof *k);
    if (!k) return tsr_fail(TSR_ERR_NOMEM, "out of memory");
    for (int64_t i = 0; i < n; i++) k[i].idx = i;
    for (int64_t r = 0; r < L->rows; r++)
        for (int64_t c = 0; c < L->cols; c++)
            for (int64_t j = 0; j < L->k; j++) {
                size_t at = pr_widx(L, r, c, j);
                double x = w[at] * w[at];
                if (u == UNIT_TILE)
                    k[pr_unit(L, bc, r, c, j)].key += x;
                else if (u == UNIT_ROW)
                    k[r].key += x;
                else if (u == UNIT_TILEROW)
                    k[r / L->R].key += x;
                else
                    k[(r * L->cols + c) * L->k + j].key = x;
            }
    smallest(k, n);
    int64_t z = (int64_t)llround(s * (double)n);
    if (z > n) z = n;
    uint8_t *zero = tsr_calloc((size_t)n);
    if (!zero) {
        tsr_free(k);
        return tsr_fail(TSR_ERR_NOMEM, "out of memory");
    }
    for (int64_t i = 0; i < z; i++) zero[k[i].idx] = 1;
    for (int64_t r = 0; r < L->rows; r++)
        for (int64_t c = 0; c < L->cols; c++)
            for (int64_t j = 0; j < L->k; j++) {
                int64_t unit = u == UNIT_TILE      ? pr_unit(L, bc, r, c, j)
                               : u == UNIT_ROW     ? r
                               : u == UNIT_TILEROW ? r / L->R
                                                   : (r * L->cols + c) * L->k + j;
                if (!zero[unit]) continue;
                size_t at = pr_widx(L, r, c, j);
                w[at] = 0.0;
                L->mask[(r * L->cols + c) * L->k + j] = 1;
            }
    tsr_free(zero);
    tsr_free(k);
    return TSR_OK;
}

/* The magnitude below which round(s * weights) weights of L lie (their smallest kept one). */
static tsr_status magnitude_quantile(const pr_model *m, const pr_layer *L, double s, double *out) {
    const tsr_array *w = pr_const(m, L->wval);
    double *a = tsr_alloc(w->numel * sizeof *a);
    if (!a) return tsr_fail(TSR_ERR_NOMEM, "out of memory");
    for (size_t i = 0; i < w->numel; i++) a[i] = fabs(w->data[i]);
    qsort(a, w->numel, sizeof *a, cmp_double);
    size_t z = (size_t)llround(s * (double)w->numel);
    *out = z < w->numel ? a[z] : INFINITY;
    tsr_free(a);
    return TSR_OK;
}

/* Zero the masked weights again (after fine-tuning). */
static tsr_status apply_masks(pr_model *m) {
    for (int i = 0; i < m->n_layers; i++) {
        pr_layer *L = &m->layers[i];
        if (!L->mask) continue;
        tsr_array *wa;
        TSR_TRY(pr_const_mut(m, L->wval, &wa));
        for (int64_t r = 0; r < L->rows; r++)
            for (int64_t c = 0; c < L->cols; c++)
                for (int64_t j = 0; j < L->k; j++)
                    if (L->mask[(r * L->cols + c) * L->k + j]) wa->data[pr_widx(L, r, c, j)] = 0.0;
    }
    return TSR_OK;
}

/* ---- rebuilding a graph ------------------------------------------------------- */

/* A new finalized graph like g with constant v replaced by data[v] where that is set. */
static tsr_status rebuild_graph(const tsr_graph *g, tsr_array *const *data, const char *extra_out,
                                tsr_graph **out) {
    *out = NULL;
    tsr_graph *ng;
    TSR_TRY(tsr_graph_create(&ng));
    tsr_status st = TSR_OK;
    for (int i = 0; i < g->n_inputs && st == TSR_OK; i++) {
        const tsr_graph_value *v = &g->values[g->inputs[i]];
        st = tsr_graph_add_input(ng, v->name, v->rank, v->dims);
    }
    for (int v = 0; v < g->n_values && st == TSR_OK; v++)
        if (g->values[v].kind == TSR_VALUE_CONST)
            st = tsr_graph_add_const(ng, g->values[v].name,
                                     data && data[v] ? data[v] : g->values[v].data);
    for (int n = 0; n < g->n_nodes && st == TSR_OK; n++) {
        const tsr_graph_node *nd = &g->nodes[n];
        st = tsr_graph_add_node(ng, nd->kind, nd->name, nd->n_in, (const char *const *)nd->in_names,
                                g->values[nd->out].name, &nd->a);
    }
    for (int i = 0; i < g->n_outputs && st == TSR_OK; i++)
        st = tsr_graph_add_output(ng, g->output_names[i]);
    if (st == TSR_OK && extra_out) st = tsr_graph_add_output(ng, extra_out);
    if (st == TSR_OK) st = tsr_graph_finalize(ng);
    if (st != TSR_OK) {
        tsr_graph_free(ng);
        return tsr_fail_context(st, "prune: rebuilding the graph: ");
    }
    *out = ng;
    return TSR_OK;
}

tsr_status pr_rebuild(const pr_model *m, const char *extra_out, tsr_graph **out) {
    return rebuild_graph(m->g, m->data, extra_out, out);
}

static tsr_status rebuild(const pr_model *m, tsr_graph **out) {
    return pr_rebuild(m, NULL, out);
}

struct tsr_prune_masks {
    const pr_model *m;
};

tsr_status tsr_prune_masks_apply(const tsr_prune_masks *masks, const tsr_graph *g,
                                 tsr_graph **out) {
    TSR_REQUIRE(masks && g && out, "tsr_prune_masks_apply: NULL argument");
    *out = NULL;
    const pr_model *m = masks->m;
    tsr_array **data = tsr_calloc_array((size_t)g->n_values + 1, sizeof *data);
    if (!data) return tsr_fail(TSR_ERR_NOMEM, "out of memory");
    tsr_status st = TSR_OK;
    for (int i = 0; i < m->n_layers && st == TSR_OK; i++) {
        const pr_layer *L = &m->layers[i];
        if (!L->mask) continue;
        const char *name = m->g->values[L->wval].name;
        const tsr_array *cur = pr_const(m, L->wval);
        int v = tsr_graph_find_value(g, name);
        const tsr_array *a = v >= 0 ? g->values[v].data : NULL;
        if (!a || a->rank != cur->rank || memcmp(a->dims, cur->dims, sizeof a->dims) != 0) {
            st = tsr_fail(TSR_ERR_SHAPE,
                          "prune: the pruned weight '%s' is missing or changed shape in the "
                          "fine-tuned model",
                          name);
            break;
        }
        st = tsr_array_clone(&data[v], a);
        for (int64_t r = 0; st == TSR_OK && r < L->rows; r++)
            for (int64_t c = 0; c < L->cols; c++)
                for (int64_t j = 0; j < L->k; j++)
                    if (L->mask[(r * L->cols + c) * L->k + j])
                        data[v]->data[pr_widx(L, r, c, j)] = 0.0;
    }
    if (st == TSR_OK) st = rebuild_graph(g, data, NULL, out);
    for (int v = 0; v < g->n_values; v++) tsr_array_free(data[v]);
    tsr_free(data);
    return st;
}

int tsr_prune_masks_get(const tsr_prune_masks *masks, const char *name, uint8_t *pruned,
                        size_t numel) {
    TSR_REQUIRE(masks && name && (pruned || numel == 0), "tsr_prune_masks_get: NULL argument");
    if (numel) memset(pruned, 0, numel);
    const pr_model *m = masks->m;
    for (int i = 0; i < m->n_layers; i++) {
        const pr_layer *L = &m->layers[i];
        if (!L->mask || strcmp(m->g->values[L->wval].name, name) != 0) continue;
        if ((size_t)(L->rows * L->cols * L->k) != numel) {
            tsr_fail(TSR_ERR_SHAPE, "the mask of '%s' covers %lld weights, not %zu", name,
                     (long long)(L->rows * L->cols * L->k), numel);
            return -1;
        }
        for (int64_t r = 0; r < L->rows; r++)
            for (int64_t c = 0; c < L->cols; c++)
                for (int64_t j = 0; j < L->k; j++)
                    if (L->mask[(r * L->cols + c) * L->k + j]) pruned[pr_widx(L, r, c, j)] = 1;
        return 1;
    }
    return 0;
}

/* Take the constants of a fine-tuned graph back (same names and shapes). */
static tsr_status take_back(pr_model *m, const tsr_graph *tuned) {
    const tsr_graph *g = m->g;
    for (int v = 0; v < g->n_values; v++) {
        if (g->values[v].kind != TSR_VALUE_CONST) continue;
        const tsr_array *t = tsr_graph_const(tuned, g->values[v].name);
        const tsr_array *cur = pr_const(m, v);
        if (!t) continue;
        if (t->rank != cur->rank || memcmp(t->dims, cur->dims, sizeof t->dims) != 0)
            return tsr_fail(TSR_ERR_SHAPE,
                            "prune: the fine-tuned model changed the shape of '%s'; the "
                            "fine-tuning hook must keep every constant's shape",
                            g->values[v].name);
        tsr_array *c;
        TSR_TRY(tsr_array_clone(&c, t));
        pr_const_set(m, v, c);
    }
    return TSR_OK;
}

static tsr_status finetune(pr_model *m, const tsr_prune_opts *o, int step) {
    if (!o->finetune) return TSR_OK;
    tsr_graph *cur;
    TSR_TRY(rebuild(m, &cur));
    tsr_prune_masks masks = { m };
    tsr_status st = o->finetune(o->finetune_ctx, step, &masks, &cur);
    if (st == TSR_OK && !cur)
        st = tsr_fail(TSR_ERR_INTERNAL, "prune: fine-tuning returned no model");
    if (st == TSR_OK) st = take_back(m, cur);
    tsr_graph_free(cur);
    if (st == TSR_OK) st = apply_masks(m);
    return st;
}

/* ---- statistics ------------------------------------------------------------------ */

/* Nonzero tile units, nonzero weights, all-zero tile rows and nonzero (tile, kernel offset)
 * pairs (the compiler's plaintexts, whatever L's unit) of layer L. */
static tsr_status layer_counts(const pr_model *m, const pr_layer *L, int64_t *tiles_nz,
                               int64_t *weights_nz, int64_t *rowblocks_zero, int64_t *plain_nz) {
    double *n;
    int64_t nt;
    TSR_TRY(pr_tile_norms(m, L, &n, &nt));
    int64_t bc = pr_tcols(L) * pr_koff(L), br = nt / bc;
    *tiles_nz = 0;
    *rowblocks_zero = 0;
    for (int64_t i = 0; i < br; i++) {
        int64_t nz = 0;
        for (int64_t j = 0; j < bc; j++) nz += n[i * bc + j] != 0.0;
        *tiles_nz += nz;
        *rowblocks_zero += nz == 0;
    }
    tsr_free(n);
    const tsr_array *w = pr_const(m, L->wval);
    *weights_nz = 0;
    for (size_t i = 0; i < w->numel; i++) *weights_nz += w->data[i] != 0.0;
    *plain_nz = *tiles_nz;
    if (L->k > 1 && !L->offsets) {
        pr_layer P = *L;
        P.offsets = 1;
        TSR_TRY(pr_tile_norms(m, &P, &n, &nt));
        *plain_nz = 0;
        for (int64_t t = 0; t < nt; t++) *plain_nz += n[t] != 0.0;
        tsr_free(n);
    }
    return TSR_OK;
}

static tsr_status report_new(const pr_model *m, tsr_prune_report **out) {
    tsr_prune_report *r = tsr_calloc(sizeof *r);
    if (r) r->layers = tsr_calloc_array((size_t)m->n_layers, sizeof *r->layers);
    if (!r || !r->layers) {
        tsr_prune_report_free(r);
        return tsr_fail(TSR_ERR_NOMEM, "out of memory");
    }
    r->n_layers = m->n_layers;
    r->mass_before = r->mass_in_tiles = -1;
    *out = r;
    return TSR_OK;
}

static tsr_status report_fill(const pr_model *m, tsr_prune_report *r, int after) {
    for (int i = 0; i < m->n_layers; i++) {
        const pr_layer *L = &m->layers[i];
        tsr_prune_layer_stats *s = &r->layers[i];
        int64_t tnz, wnz, rbz, pnz;
        TSR_TRY(layer_counts(m, L, &tnz, &wnz, &rbz, &pnz));
        snprintf(s->name, sizeof s->name, "%s", m->g->nodes[L->node].name);
        s->rows = L->rows;
        s->cols = L->cols;
        s->k = L->k;
        s->tile_r = L->R;
        s->tile_c = L->C;
        s->tiles = pr_ntiles(L);
        s->weights = L->rows * L->cols * L->k;
        s->pruned = L->prune;
        s->offsets = L->offsets;
        if (!after) {
            s->tiles_before = s->tiles;
            s->tiles_nz_before = tnz;
            s->weights_nz_before = wnz;
            s->plain_before = pnz;
        }
        s->tiles_nz_after = tnz;
        s->weights_nz_after = wnz;
        s->plain_after = pnz;
        s->rowblocks_zero_after = rbz;
    }
    return TSR_OK;
}

void tsr_prune_report_free(tsr_prune_report *r) {
    if (!r) return;
    tsr_free(r->layers);
    tsr_free(r);
}

void tsr_prune_report_print(const tsr_prune_report *r, FILE *fp) {
    int units = 0; /* with per-offset tiles the tile columns count (tile, offset) units */
    for (int i = 0; i < r->n_layers; i++) units |= r->layers[i].offsets;
    fprintf(fp, "%-24s %11s %5s %9s %15s %17s %8s\n", "layer", "matrix", "k", "tile",
            units ? "units kept" : "tiles kept", "weights kept", "removed");
    int64_t t0 = 0, t1 = 0, tt0 = 0, tt = 0, p0 = 0, p1 = 0, w0 = 0, w1 = 0;
    for (int i = 0; i < r->n_layers; i++) {
        const tsr_prune_layer_stats *s = &r->layers[i];
        char mat[32], tile[32], tk[48], wk[48];
        snprintf(mat, sizeof mat, "%lldx%lld", (long long)s->rows, (long long)s->cols);
        snprintf(tile, sizeof tile, "%lldx%lld", (long long)s->tile_r, (long long)s->tile_c);
        snprintf(tk, sizeof tk, "%lld/%lld", (long long)s->tiles_nz_after,
                 (long long)s->tiles_nz_before);
        snprintf(wk, sizeof wk, "%lld/%lld", (long long)s->weights_nz_after,
                 (long long)s->weights_nz_before);
        double rem = s->tiles_nz_before ? 100.0 * (double)(s->tiles_nz_before - s->tiles_nz_after) /
                                              (double)s->tiles_nz_before
                                        : 0.0;
        fprintf(fp, "%-24.24s %11s %5lld %9s %15s %17s %7.1f%%%s\n", s->name, mat, (long long)s->k,
                tile, tk, wk, rem, s->pruned ? "" : " (skipped)");
        t0 += s->tiles_nz_before;
        tt0 += s->tiles_before;
        tt += s->tiles;
        t1 += s->tiles_nz_after;
        p0 += s->plain_before;
        p1 += s->plain_after;
        w0 += s->weights_nz_before;
        w1 += s->weights_nz_after;
    }
    double pct = t0 ? 100.0 * (double)(t0 - t1) / (double)t0 : 0.0;
    fprintf(fp,
            "total: tiles %lld of %lld -> %lld of %lld (%.1f%% removed); plaintexts and ct x pt "
            "products per batch tile %lld -> %lld (%lld removed); nonzero weights %lld -> %lld\n",
            (long long)t0, (long long)tt0, (long long)t1, (long long)tt, pct, (long long)p0,
            (long long)p1, (long long)(p0 - p1), (long long)w0, (long long)w1);
    if (r->n_hidden)
        fprintf(fp,
                "permutation: %d of %d hidden dimensions, %lld k-means iterations, %d undone "
                "(lost weight mass)\n",
                r->n_permuted, r->n_hidden, (long long)r->kmeans_iters, r->n_undone);
    if (r->features_removed || r->features_not_folded || r->shrink_realigned)
        fprintf(fp,
                "shrink: %lld hidden features removed (their weights were all zero; constant "
                "ones folded into the next bias); %lld constant ones kept (no finite value on "
                "an all-zero input); %d hidden dimensions cut down to whole tile groups (the "
                "removal would have added tiles)\n",
                (long long)r->features_removed, (long long)r->features_not_folded,
                r->shrink_realigned);
    if (r->mass_in_tiles >= 0)
        fprintf(fp,
                "squared weight mass in the kept share of tiles: %.4f before the permutation, "
                "%.4f after\n",
                r->mass_before, r->mass_in_tiles);
}

/* Share of squared weight mass in the best (1 - s) tiles per layer (its s), over pruned layers. */
static tsr_status mass_kept(const pr_model *m, double *out) {
    double kept = 0, total = 0;
    for (int i = 0; i < m->n_layers; i++) {
        const pr_layer *L = &m->layers[i];
        if (!L->prune) continue;
        double *n;
        int64_t nt;
        TSR_TRY(pr_tile_norms(m, L, &n, &nt));
        keyed *k = tsr_calloc_array((size_t)nt, sizeof *k);
        if (!k) {
            tsr_free(n);
            return tsr_fail(TSR_ERR_NOMEM, "out of memory");
        }
        for (int64_t t = 0; t < nt; t++) k[t] = (keyed){ -n[t], t };
        smallest(k, nt);
        int64_t keep = nt - (int64_t)llround(L->sparsity * (double)nt);
        for (int64_t t = 0; t < nt; t++) {
            total += n[t];
            if (t < keep) kept -= k[t].key;
        }
        tsr_free(k);
        tsr_free(n);
    }
    *out = total > 0 ? kept / total : 1.0;
    return TSR_OK;
}

/* ---- the pipeline ----------------------------------------------------------------- */

static tsr_status check_opts(const tsr_prune_opts *o) {
    if (!(o->sparsity >= 0.0 && o->sparsity < 1.0))
        return tsr_fail(TSR_ERR_INVALID_ARG, "prune: sparsity %g must be in [0, 1)", o->sparsity);
    if (o->tile_rows < 1 || o->tile_cols < 1 || o->tile_rows > (1 << 20) ||
        o->tile_cols > (1 << 20))
        return tsr_fail(TSR_ERR_INVALID_ARG, "prune: tile %lldx%lld must be between 1 and 2^20",
                        (long long)o->tile_rows, (long long)o->tile_cols);
    if (o->tile_y < 1 || o->tile_x < 1 || o->tile_y > (1 << 20) || o->tile_x > (1 << 20))
        return tsr_fail(TSR_ERR_INVALID_ARG,
                        "prune: spatial tile %lldx%lld must be between 1 and 2^20",
                        (long long)o->tile_y, (long long)o->tile_x);
    if (o->steps < 1 || o->steps > 1000)
        return tsr_fail(TSR_ERR_INVALID_ARG, "prune: %d steps (1 to 1000)", o->steps);
    if (o->kmeans_iters < 1 || o->kmeans_iters > 10000)
        return tsr_fail(TSR_ERR_INVALID_ARG, "prune: %d k-means iterations (1 to 10000)",
                        o->kmeans_iters);
    if (!(o->expand >= 1.0 && o->expand <= 16.0))
        return tsr_fail(TSR_ERR_INVALID_ARG, "prune: expansion %g must be in [1, 16]", o->expand);
    for (int i = 0; o->layer_sparsity && i < o->n_layer_sparsity; i++)
        if (!(o->layer_sparsity[i] < 1.0) || isnan(o->layer_sparsity[i]))
            return tsr_fail(TSR_ERR_INVALID_ARG,
                            "prune: sparsity %g of layer %d must be in [0, 1) (negative: the "
                            "global one)",
                            o->layer_sparsity[i], i);
    if (o->n_layer_sparsity < 0 || (o->n_layer_sparsity > 0 && !o->layer_sparsity))
        return tsr_fail(TSR_ERR_INVALID_ARG, "prune: %d per-layer sparsities without values",
                        o->n_layer_sparsity);
    if (!(o->row_sparsity >= 0.0 && o->row_sparsity < 1.0))
        return tsr_fail(TSR_ERR_INVALID_ARG, "prune: tile-row sparsity %g must be in [0, 1)",
                        o->row_sparsity);
    for (int i = 0; o->layer_row_sparsity && i < o->n_layer_row_sparsity; i++)
        if (!(o->layer_row_sparsity[i] < 1.0) || isnan(o->layer_row_sparsity[i]))
            return tsr_fail(TSR_ERR_INVALID_ARG,
                            "prune: tile-row sparsity %g of layer %d must be in [0, 1) "
                            "(negative: the global one)",
                            o->layer_row_sparsity[i], i);
    if (o->n_layer_row_sparsity < 0 || (o->n_layer_row_sparsity > 0 && !o->layer_row_sparsity))
        return tsr_fail(TSR_ERR_INVALID_ARG,
                        "prune: %d per-layer tile-row sparsities without values",
                        o->n_layer_row_sparsity);
    if ((unsigned)o->method > TSR_PRUNE_HEPEX)
        return tsr_fail(TSR_ERR_INVALID_ARG, "prune: unknown method %d", (int)o->method);
    return TSR_OK;
}

static void progress(const tsr_prune_opts *o, const char *phase, int64_t done, int64_t total) {
    if (o->progress) o->progress(o->progress_ctx, phase, done, total);
}

/* Prune every layer to the fraction f of its target sparsity. Tiles: first the fraction f of
 * the layer's tile-row sparsity as whole tile rows (their tiles count towards the tile
 * sparsity: being all zero, they are the smallest tiles). */
static tsr_status prune_all(pr_model *m, unit_kind u, double f) {
    for (int i = 0; i < m->n_layers; i++) {
        pr_layer *L = &m->layers[i];
        if (!L->prune) continue;
        if (u == UNIT_TILE && L->row_sparsity > 0)
            TSR_TRY(prune_layer(m, L, UNIT_TILEROW, f * L->row_sparsity));
        TSR_TRY(prune_layer(m, L, u, f * L->sparsity));
    }
    return TSR_OK;
}

/* Cubic schedule: s_k = s (1 - (1 - k/K)^3); this returns s_k / s. */
static double schedule(int k, int K) {
    double f = 1.0 - (double)k / K;
    return 1.0 - f * f * f;
}

static tsr_status permute_all(pr_model *m, const tsr_prune_opts *o, tsr_prune_report *r) {
    double before;
    TSR_TRY(mass_kept(m, &before));
    double cur = before;
    for (int h = 0; h < m->n_hidden; h++) {
        progress(o, "permute", h, m->n_hidden);
        int64_t it = 0, H = m->layers[m->hidden[h].a].rows;
        int64_t *perm = tsr_alloc((size_t)H * 2 * sizeof *perm);
        if (!perm) return tsr_fail(TSR_ERR_NOMEM, "out of memory");
        double after = 0;
        tsr_status st = pr_permute_hidden(m, h, o->kmeans_iters, o->seed + (uint64_t)h, &it, perm);
        if (st == TSR_OK) st = mass_kept(m, &after);
        if (st == TSR_OK && after < cur) {
            /* k-means clusters by tile pattern, which need not keep more mass in the best
             * tiles: a permutation that loses mass is undone (the inverse map). */
            for (int64_t i = 0; i < H; i++) perm[H + perm[i]] = i;
            st = pr_apply_map(m, h, perm + H, H);
            after = cur;
            if (r) r->n_undone++;
        }
        if (r) r->n_permuted++;
        tsr_free(perm);
        TSR_TRY(st);
        cur = after;
        if (r) r->kmeans_iters += it;
    }
    progress(o, "permute", m->n_hidden, m->n_hidden);
    if (r) {
        r->mass_before = before;
        TSR_TRY(mass_kept(m, &r->mass_in_tiles));
    }
    return TSR_OK;
}

static tsr_status pipeline(pr_model *m, const tsr_prune_opts *o, tsr_prune_report *r) {
    TSR_TRY(pr_find_hidden(m));
    if (r) r->n_hidden = m->n_hidden;
    if (o->expand > 1.0) {
        for (int h = 0; h < m->n_hidden; h++) {
            const pr_layer *A = &m->layers[m->hidden[h].a];
            int64_t H = A->rows, P = A->R;
            int64_t nh = (int64_t)ceil(o->expand * (double)H / (double)P) * P;
            if (nh > H) TSR_TRY(pr_expand_hidden(m, h, nh, o->seed + 1000 + (uint64_t)h));
        }
    }
    int K = o->steps;
    int step = 0;
    switch (o->method) {
    case TSR_PRUNE_NONE:
        if (o->permute) TSR_TRY(permute_all(m, o, r));
        break;
    case TSR_PRUNE_TILE:
        if (o->permute) TSR_TRY(permute_all(m, o, r));
        for (int k = 1; k <= K; k++) {
            progress(o, "prune tiles", k - 1, K);
            TSR_TRY(prune_all(m, UNIT_TILE, schedule(k, K)));
            TSR_TRY(finetune(m, o, ++step));
        }
        break;
    case TSR_PRUNE_MAGNITUDE:
    case TSR_PRUNE_HUNTER:
        for (int k = 1; k <= K; k++) {
            progress(o, o->method == TSR_PRUNE_HUNTER ? "prune rows" : "prune weights", k - 1, K);
            TSR_TRY(prune_all(m, o->method == TSR_PRUNE_HUNTER ? UNIT_ROW : UNIT_WEIGHT,
                              schedule(k, K)));
            TSR_TRY(finetune(m, o, ++step));
        }
        break;
    case TSR_PRUNE_HEPEX:
        if (!o->finetune) {
            /* Without fine-tuning, magnitude pruning only decides the permutation: the
             * features count the weights it would keep, and the tiles are then pruned on
             * the permuted weights, which keep their values inside kept tiles. */
            for (int i = 0; i < m->n_layers; i++)
                if (m->layers[i].prune)
                    TSR_TRY(magnitude_quantile(m, &m->layers[i], m->layers[i].sparsity,
                                               &m->layers[i].feat_thresh));
            TSR_TRY(permute_all(m, o, r));
            progress(o, "prune tiles", 0, 1);
            TSR_TRY(prune_all(m, UNIT_TILE, 1.0));
            break;
        }
        for (int k = 1; k <= K; k++) {
            progress(o, "prune weights", k - 1, K);
            TSR_TRY(prune_all(m, UNIT_WEIGHT, schedule(k, K)));
            TSR_TRY(finetune(m, o, ++step));
        }
        /* The permutation looks at the surviving weights; the weight masks are
         * then replaced by whole tiles (a pruned weight may come back only by
         * fine-tuning, which the tile masks below keep inside kept tiles). */
        for (int i = 0; i < m->n_layers; i++) {
            tsr_free(m->layers[i].mask);
            m->layers[i].mask = NULL;
        }
        TSR_TRY(permute_all(m, o, r));
        progress(o, "prune tiles", 0, 1);
        TSR_TRY(prune_all(m, UNIT_TILE, 1.0));
        TSR_TRY(finetune(m, o, ++step));
        break;
    }
    if (o->shrink) {
        /* After the last fine-tuning: the gradual schedule's shares are of the full width. */
        progress(o, "shrink", 0, 1);
        pr_shrink_stats ss;
        TSR_TRY(pr_shrink(m, &ss));
        if (r) {
            r->features_removed = ss.removed;
            r->features_not_folded = ss.not_folded;
            r->shrink_realigned = ss.realigned;
        }
    }
    progress(o, "done", 1, 1);
    return TSR_OK;
}

tsr_status tsr_prune_graph(const tsr_graph *g, const tsr_prune_opts *o, tsr_graph **out,
                           tsr_prune_report **rep) {
    TSR_REQUIRE(g && o && out, "tsr_prune_graph: NULL argument");
    *out = NULL;
    if (rep) *rep = NULL;
    TSR_TRY(check_opts(o));
    pr_model m;
    TSR_TRY(model_init(&m, g, o));
    tsr_prune_report *r = NULL;
    tsr_status st = TSR_OK;
    if (rep) {
        st = report_new(&m, &r);
        if (st == TSR_OK) st = report_fill(&m, r, 0);
    }
    if (st == TSR_OK) st = pipeline(&m, o, r);
    if (st == TSR_OK && r) {
        /* Expansion changed the layers' sizes: "before" stays the input's. */
        st = report_fill(&m, r, 1);
    }
    tsr_graph *ng = NULL;
    if (st == TSR_OK) st = rebuild(&m, &ng);
    model_free(&m);
    if (st != TSR_OK) {
        tsr_prune_report_free(r);
        return st;
    }
    *out = ng;
    if (rep) *rep = r;
    return TSR_OK;
}

tsr_status tsr_prune_stats(const tsr_graph *g, const tsr_prune_opts *o, tsr_prune_report **rep) {
    TSR_REQUIRE(g && o && rep, "tsr_prune_stats: NULL argument");
    *rep = NULL;
    TSR_TRY(check_opts(o));
    pr_model m;
    TSR_TRY(model_init(&m, g, o));
    tsr_prune_report *r = NULL;
    tsr_status st = report_new(&m, &r);
    if (st == TSR_OK) st = report_fill(&m, r, 0);
    model_free(&m);
    if (st != TSR_OK) {
        tsr_prune_report_free(r);
        return st;
    }
    *rep = r;
    return TSR_OK;
}
