/*
 * cli/cmd_prune.c - `tessera prune`: HE-aware pruning of an ONNX model over
 * the tile shapes of its packed weights (tessera/prune.h, docs/PRUNING.md),
 * with a per-layer report of the tiles, plaintexts and ciphertext-plaintext
 * products removed. The output is an ordinary ONNX model; its zero weights
 * are its masks.
 */
#include "cli.h"

#include "core/alloc.h"
#include "core/error.h"
#include "core/progress.h"
#include "core/rng.h"
#include "graph/graph_internal.h"
#include "onnx/onnx_graph.h"
#include "tessera/nn.h"
#include "train_cli.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static void usage(FILE *f) {
    fprintf(f,
            "usage: tessera prune MODEL.onnx --out OUT.onnx [options]\n"
            "       tessera prune MODEL.onnx --stats [--tile RxC]\n"
            "\n"
            "Zero whole packed tiles of the weights so that the encrypted model needs fewer\n"
            "plaintexts, ciphertext-plaintext products and rotations (HE-PEx; docs/PRUNING.md).\n"
            "Layers: Gemm, MatMul by a constant, Conv (group 1), each seen as a matrix of\n"
            "output features x input features over tiles of R x C.\n"
            "\n"
            "  --out FILE        the pruned model (ONNX; its metadata is copied)\n"
            "  --method M        tile (default): zero the tiles of smallest norm\n"
            "                    magnitude: unstructured, the weights of smallest magnitude\n"
            "                    hunter: structured, whole rows (neurons, filters)\n"
            "                    hepex: magnitude, permutation, then tiles (HE-PEx)\n"
            "                    none: no zeroing (with --permute / --expand)\n"
            "  --sparsity S      fraction of tiles (weights, rows) to zero per layer, in [0, 1)\n"
            "                    (default 0.5)\n"
            "  --layer-sparsity L  per prunable layer in graph order, comma-separated, each in\n"
            "                    [0, 1) or - for --sparsity (e.g. 0.9,0,0,0.9: prune the two\n"
            "                    big layers of an autoencoder hardest); --stats lists the layers\n"
            "  --row-sparsity R  tile-row-aware (tile, hepex): empty this share of each layer's\n"
            "                    tile rows (R output features x all inputs) whole first, weakest\n"
            "                    first; they count towards --sparsity and need no rotate-and-sum\n"
            "  --layer-row-sparsity L  per layer, as --layer-sparsity (default: --row-sparsity)\n"
            "  --tile RxC        tile of the first layer: R output x C input features (default\n"
            "                    32x32); use the compiler's: e.g. t0 x t3 of `tessera compile`\n"
            "  --shape-search L  compile the model pruned (without fine-tuning) under each tile\n"
            "                    shape of L (RxC,RxC,... or auto: every power-of-two R x C with\n"
            "                    R C = N/2 / t4, t4 the batch, half or a quarter of it, as the\n"
            "                    compiler's candidates), print their plans' rotations, products,\n"
            "                    predicted latency and memory and those of the best candidate\n"
            "                    with that very tile (if among the optimizer's 8 best), then\n"
            "                    prune for the cheapest shape (with --stats: only the table);\n"
            "                    a shape is priced by a plan with its own tile (rows whose\n"
            "                    plan has another tile are marked *); each shape removes the\n"
            "                    same share of its tiles\n"
            "                    (not with --tile)\n"
            "  --plan-batch B    batch of the plans the search compiles (default 64; only\n"
            "                    with --shape-search)\n"
            "  --plan-log-n N    their ring degree 2^N (default 14; only with --shape-search)\n"
            "  --tile-spatial YxX  a dense layer reading flattened (channels, h, w) images\n"
            "                    has tiles of C channels x a Y x X block of positions, as the\n"
            "                    compiler packs them: use its t1 x t2 (default 1x1)\n"
            "  --offset-tiles    a convolution's tile is R x C at one kernel offset, the unit\n"
            "                    the compiler encodes and skips (default: a tile spans every\n"
            "                    offset); tile pruning, permutation and the counts use it\n"
            "  --no-alternate    every layer uses R x C (default: layers alternate R x C and\n"
            "                    C x R, as the compiler's packing alternates orientation)\n"
            "  --permute         permute hidden features first (balanced k-means over their\n"
            "                    tile masses; the function is unchanged; hepex always does)\n"
            "  --expand F        widen hidden dimensions by F (>= 1) before pruning; new\n"
            "                    features change nothing until fine-tuned\n"
            "  --steps K         gradual schedule in K steps (default 1)\n"
            "  --kmeans-iters N  k-means iterations per hidden dimension (default 20)\n"
            "  --seed S          seed of k-means and expansion (default 1)\n"
            "  --skip-first      keep the first layer dense\n"
            "  --skip-last       keep the last layer dense\n"
            "  --shrink          after pruning, remove the hidden features whose incoming or\n"
            "                    outgoing weights are all zero (a constant act(bias) feature is\n"
            "                    folded into the next Gemm's bias): a narrower model, same\n"
            "                    function; e.g. with --layer-row-sparsity on the hidden layers\n"
            "fine-tuning with the masks fixed (the graph trainer, tessera/train.h):\n"
            "  --finetune X,Y    fine-tune after every pruning step on X,Y (.npy or IDX:\n"
            "                    inputs and labels for cross-entropy, or targets for MSE)\n"
            "  --ft-epochs E     epochs per fine-tuning (default 1)\n"
            "  --ft-lr LR        Adam learning rate (default 5e-4)\n"
            "  --ft-schedule S   const, or cosine (default): lr to 0 over each fine-tuning\n"
            "  --ft-batch B      batch size (default 64)\n"
            "  --ft-limit N      use the first N samples of X,Y\n"
            "  --distill DENSE.onnx  distillation: the loss is (1 - A) x the data loss + A x\n"
            "                    the MSE to DENSE's outputs on the same inputs (logits or\n"
            "                    reconstructions; DENSE is run once in the clear)\n"
            "  --distill-weight A  in [0, 1] (default 0.5)\n"
            "  --pixel-norm M,S  integer pixels p become (p / 255 - M) / S (default 0,1)\n"
            "  --stats           only print the tile statistics of MODEL\n"
            "  --quiet           no progress\n"
            "  --force           replace --out even if it holds a secret key\n"
            "\n"
            "Without --finetune, --steps only changes which units later steps see and\n"
            "--expand adds features that help only once trained.\n");
}

typedef struct prog_ctx {
    tsr_progress p;
    int on, begun;
    char phase[32];
} prog_ctx;

static void on_progress(void *ctx, const char *phase, int64_t done, int64_t total) {
    prog_ctx *c = ctx;
    if (!c->on) return;
    if (!c->begun || strcmp(c->phase, phase) != 0) {
        if (c->begun) tsr_progress_end(&c->p, NULL);
        snprintf(c->phase, sizeof c->phase, "%s", phase);
        tsr_progress_begin(&c->p, phase, (uint64_t)(total > 0 ? total : 0), "step");
        c->begun = 1;
    }
    tsr_progress_update(&c->p, (uint64_t)done, NULL);
}

/*
 * Fine-tuning with fixed masks on the graph trainer: our own Adam loop over
 * tsr_trainer_forward / _backward, whose gradient and update are zero at the
 * pruned weights, so they stay exactly zero at every step and the optimiser
 * state persists through the whole fine-tuning of a pruning step. Loss:
 * softmax cross-entropy for labels (y of rank 1), else the MSE against y.
 * Learning rate: constant, or cosine from lr to 0 over each step's epochs.
 */
typedef struct ft_ctx {
    const tsr_array *x, *y;
    const tsr_array *teacher; /* (N, out) the dense model's outputs on x, or NULL */
    double alpha;             /* weight of the distillation term */
    double lr;
    int batch, epochs, cosine, quiet;
    uint64_t seed;
} ft_ctx;

/* keep[i] = 0 for the pruned parameters of t (the trainable constants of g in graph order). */
static tsr_status param_keep(const tsr_trainer *t, const tsr_graph *g, const tsr_prune_masks *masks,
                             uint8_t *keep, size_t n) {
    size_t off = 0;
    for (int v = 0; v < g->n_values; v++) {
        const tsr_graph_value *gv = &g->values[v];
        if (gv->kind != TSR_VALUE_CONST || !tsr_trainer_is_trainable(t, gv->name)) continue;
        size_t numel = gv->data->numel;
        if (off + numel > n) break;
        int has = tsr_prune_masks_get(masks, gv->name, keep + off, numel);
        if (has < 0) return TSR_ERR_SHAPE; /* the message is set */
        if (has)
            for (size_t i = 0; i < numel; i++) keep[off + i] = !keep[off + i];
        else
            memset(keep + off, 1, numel);
        off += numel;
    }
    if (off != n)
        return tsr_fail(TSR_ERR_INTERNAL,
                        "prune: the trainer's %zu parameters do not match the model's trainable "
                        "constants (%zu)",
                        n, off);
    return TSR_OK;
}

/*
 * dy = d loss / d out for the batch rows idx; returns the batch's loss. With a teacher (the
 * dense model's outputs T on the same rows) the loss is (1 - a) data loss + a MSE(out, T):
 * distillation from the dense model (logits for a classifier, reconstructions for an
 * autoencoder).
 */
static double loss_grad(const tsr_array *out, const tsr_array *y, const int64_t *idx, int64_t B,
                        int ce, const tsr_array *teacher, double a, tsr_array *dy) {
    int64_t D = (int64_t)out->numel / B;
    double loss = 0;
    double w = teacher ? 1.0 - a : 1.0;
    for (int64_t b = 0; b < B; b++) {
        const double *o = out->data + b * D;
        double *d = dy->data + b * D;
        if (ce) {
            double mx = o[0], z = 0;
            for (int64_t j = 1; j < D; j++) mx = o[j] > mx ? o[j] : mx;
            for (int64_t j = 0; j < D; j++) z += exp(o[j] - mx);
            int64_t lab = (int64_t)y->data[idx[b]];
            for (int64_t j = 0; j < D; j++) d[j] = w * exp(o[j] - mx) / z / (double)B;
            d[lab] -= w / (double)B;
            loss += w * (log(z) + mx - o[lab]) / (double)B;
        } else {
            const double *t = y->data + idx[b] * D;
            for (int64_t j = 0; j < D; j++) {
                double e = o[j] - t[j];
                d[j] = w * 2.0 * e / (double)(B * D);
                loss += w * e * e / (double)(B * D);
            }
        }
        if (teacher) {
            const double *t = teacher->data + idx[b] * D;
            for (int64_t j = 0; j < D; j++) {
                double e = o[j] - t[j];
                d[j] += a * 2.0 * e / (double)(B * D);
                loss += a * e * e / (double)(B * D);
            }
        }
    }
    return loss;
}

/* Every label a whole number in [0, K) (it indexes the class scores). */
static tsr_status check_labels(const tsr_array *y, int64_t K) {
    for (size_t i = 0; i < y->numel; i++) {
        double v = y->data[i];
        if (!(v >= 0 && v < (double)K) || v != floor(v))
            return tsr_fail(TSR_ERR_INVALID_ARG,
                            "prune: fine-tuning label %zu is %g: labels must be whole numbers in "
                            "[0, %lld) for the model's %lld classes",
                            i, v, (long long)K, (long long)K);
    }
    return TSR_OK;
}

static tsr_status finetune_run(ft_ctx *c, int step, const tsr_prune_masks *masks, tsr_trainer *t,
                               const tsr_graph *g) {
    size_t n = tsr_trainer_num_params(t);
    int64_t N = c->x->dims[0], B = c->batch < N ? c->batch : N, per_epoch = N / B;
    int ce = c->y->rank == 1;
    uint8_t *keep = tsr_alloc(n ? n : 1);
    float *m1 = tsr_calloc_array(n ? n : 1, sizeof *m1), *m2 = tsr_calloc_array(n ? n : 1, 4);
    int64_t *perm = tsr_alloc((size_t)N * sizeof *perm);
    int64_t xd[TSR_ARRAY_MAX_RANK];
    memcpy(xd, c->x->dims, sizeof xd);
    xd[0] = B;
    tsr_array *xb = NULL, *dy = NULL;
    tsr_status st = keep && m1 && m2 && perm ? TSR_OK : tsr_fail(TSR_ERR_NOMEM, "out of memory");
    if (st == TSR_OK) st = tsr_array_create(&xb, c->x->rank, xd);
    if (st == TSR_OK) st = param_keep(t, g, masks, keep, n);
    float *p = tsr_trainer_params(t);
    const float *gr = tsr_trainer_grads(t);
    /* The pruned weights are zero on entry (the library zeroed them); keep them so. */
    for (size_t i = 0; st == TSR_OK && i < n; i++)
        if (!keep[i]) p[i] = 0.0f;
    int64_t xrow = (int64_t)c->x->numel / N;
    tsr_prng rng;
    uint8_t sb[TSR_SEED_BYTES] = { 0 };
    uint64_t sd = c->seed + (uint64_t)step * 1000003u;
    memcpy(sb, &sd, sizeof sd);
    tsr_prng_init(&rng, sb, 0x66747275u);
    const double b1 = 0.9, b2 = 0.999, eps = 1e-8;
    int64_t T = (int64_t)c->epochs * per_epoch, it = 0;
    double t0 = tsr_now(), last = 0;
    for (int e = 0; e < c->epochs && st == TSR_OK; e++) {
        for (int64_t i = 0; i < N; i++) perm[i] = i;
        for (int64_t i = N - 1; i > 0; i--) {
            int64_t j = (int64_t)tsr_prng_uniform(&rng, (uint64_t)i + 1), tmp = perm[i];
            perm[i] = perm[j];
            perm[j] = tmp;
        }
        double sum = 0;
        for (int64_t bi = 0; bi < per_epoch && st == TSR_OK; bi++, it++) {
            const int64_t *idx = perm + bi * B;
            for (int64_t b = 0; b < B; b++)
                memcpy(xb->data + b * xrow, c->x->data + idx[b] * xrow,
                       (size_t)xrow * sizeof *xb->data);
            const tsr_array *out;
            st = tsr_trainer_forward(t, xb, &out);
            if (st == TSR_OK && !dy) st = tsr_array_create(&dy, out->rank, out->dims);
            if (st != TSR_OK) break;
            if ((ce && (out->rank != 2 || out->dims[1] < 2)) ||
                (!ce && out->numel != (size_t)(B * ((int64_t)c->y->numel / N)))) {
                st = tsr_fail(TSR_ERR_SHAPE,
                              "prune: fine-tuning targets do not fit the model's output "
                              "(labels need class scores, targets the output's shape)");
                break;
            }
            if (ce && it == 0 && (st = check_labels(c->y, out->dims[1])) != TSR_OK) break;
            if (c->teacher && c->teacher->numel != (size_t)N * (out->numel / (size_t)B)) {
                st = tsr_fail(TSR_ERR_SHAPE,
                              "prune: the --distill model's outputs do not have the pruned "
                              "model's shape");
                break;
            }
            double l = loss_grad(out, c->y, idx, B, ce, c->teacher, c->alpha, dy);
            if (!isfinite(l)) {
                st = tsr_fail(TSR_ERR_INVALID_ARG,
                              "prune: fine-tuning diverged (loss %g at step %d, batch %lld); "
                              "lower --ft-lr",
                              l, step, (long long)it);
                break;
            }
            sum += l;
            if (!c->quiet && (bi + 1) % 200 == 0)
                fprintf(stderr,
                        "fine-tuning %d: epoch %d/%d, batch %lld/%lld, loss %.6g (%.0f s)\n", step,
                        e + 1, c->epochs, (long long)(bi + 1), (long long)per_epoch,
                        sum / (double)(bi + 1), tsr_now() - t0);
            tsr_trainer_zero_grad(t);
            st = tsr_trainer_backward(t, dy);
            if (st != TSR_OK) break;
            double lr =
                c->cosine ? 0.5 * c->lr * (1.0 + cos(M_PI * (double)it / (double)T)) : c->lr;
            double bc1 = 1.0 - pow(b1, (double)(it + 1)), bc2 = 1.0 - pow(b2, (double)(it + 1));
            for (size_t i = 0; i < n; i++) {
                if (!keep[i]) continue;
                double gi = gr[i];
                m1[i] = (float)(b1 * m1[i] + (1 - b1) * gi);
                m2[i] = (float)(b2 * m2[i] + (1 - b2) * gi * gi);
                p[i] -= (float)(lr * (m1[i] / bc1) / (sqrt(m2[i] / bc2) + eps));
            }
        }
        last = sum / (double)(per_epoch ? per_epoch : 1);
        if (!c->quiet && st == TSR_OK)
            fprintf(stderr, "fine-tuning %d: epoch %d/%d, train loss %.6g (%.0f s)\n", step, e + 1,
                    c->epochs, last, tsr_now() - t0);
    }
    tsr_free(keep);
    tsr_free(m1);
    tsr_free(m2);
    tsr_free(perm);
    tsr_array_free(xb);
    tsr_array_free(dy);
    return st;
}

static tsr_status finetune_hook(void *ctx, int step, const tsr_prune_masks *masks,
                                tsr_graph **model) {
    ft_ctx *c = ctx;
    tsr_trainer *t = NULL;
    tsr_graph *trained = NULL;
    tsr_status st = tsr_trainer_create(&t, *model);
    if (st == TSR_OK) st = finetune_run(c, step, masks, t, *model);
    if (st == TSR_OK) st = tsr_trainer_graph(t, &trained);
    tsr_trainer_free(t);
    if (st != TSR_OK) return st;
    tsr_graph_free(*model);
    *model = trained;
    return TSR_OK;
}

/* "0.9,-,0,0.9" into v (- or negative: the global sparsity); count or -1. */
static int parse_layer_sparsity(const char *s, double *v, int max) {
    int n = 0;
    for (const char *p = s;;) {
        if (n == max) return -1;
        char *e;
        if (*p == '-' && (p[1] == ',' || p[1] == '\0')) {
            v[n] = -1.0;
            e = (char *)p + 1;
        } else {
            v[n] = strtod(p, &e);
            if (e == p || !(v[n] >= 0.0 && v[n] < 1.0)) return -1;
        }
        n++;
        if (*e == '\0') return n;
        if (*e != ',') return -1;
        p = e + 1;
    }
}

/* A per-layer option (--layer-sparsity, --layer-row-sparsity) into v[64] and *out, *n (left
 * as they are when s is NULL); 0, or the usage error's exit code. */
static int layer_values(const char *opt, const char *s, double *v, const double **out, int *n) {
    if (!s) return 0;
    int k = parse_layer_sparsity(s, v, 64);
    if (k < 0)
        return cli_usage_error(
            "prune", "%s '%s': expected up to 64 comma-separated values in [0, 1) or -", opt, s);
    *out = v;
    *n = k;
    return 0;
}

static int parse_tile(const char *s, int64_t *r, int64_t *c) {
    char *e;
    long a = strtol(s, &e, 10);
    if (e == s || (*e != 'x' && *e != 'X')) return -1;
    const char *t = e + 1;
    long b = strtol(t, &e, 10);
    if (e == t || *e || a < 1 || b < 1 || a > (1L << 20) || b > (1L << 20)) return -1;
    *r = a;
    *c = b;
    return 0;
}

static tsr_status load_graph(const char *path, tsr_onnx_model **om, tsr_graph **g) {
    TSR_TRY(tsr_onnx_load(om, path));
    tsr_onnx_import_opts io;
    tsr_onnx_import_opts_default(&io);
    io.keep_non_polynomial = 1;
    tsr_status st = tsr_onnx_to_graph(*om, &io, g, NULL);
    if (st != TSR_OK) {
        tsr_onnx_free(*om);
        *om = NULL;
    }
    return st;
}

/* The outputs of the model at path on every row of x, in chunks of 1000 rows: (N, out). */
static tsr_status teacher_outputs(const char *path, const tsr_array *x, tsr_array **out) {
    tsr_onnx_model *om = NULL;
    tsr_graph *g = NULL;
    *out = NULL;
    TSR_TRY(load_graph(path, &om, &g));
    int64_t N = x->dims[0], row = N ? (int64_t)x->numel / N : 0, D = -1;
    tsr_array *chunk = NULL, *res = NULL;
    tsr_status st = TSR_OK;
    for (int64_t i = 0; i < N && st == TSR_OK; i += 1000) {
        int64_t n = N - i < 1000 ? N - i : 1000, d[TSR_ARRAY_MAX_RANK];
        memcpy(d, x->dims, sizeof d);
        d[0] = n;
        tsr_array_free(chunk);
        chunk = NULL;
        if ((st = tsr_array_create(&chunk, x->rank, d)) != TSR_OK) break;
        memcpy(chunk->data, x->data + i * row, (size_t)(n * row) * sizeof *chunk->data);
        tsr_array *y = NULL;
        if ((st = tsr_graph_run(g, (const tsr_array *const *)&chunk, &y)) != TSR_OK) break;
        if (y->rank < 1 || y->dims[0] != n) {
            /* only a batch-first output has one row per input; the total size alone would
             * let a transposed output through */
            st = tsr_fail(TSR_ERR_SHAPE,
                          "prune: --distill model: its output is not batch-first (%lld rows "
                          "for %lld inputs)",
                          (long long)(y->rank < 1 ? 0 : y->dims[0]), (long long)n);
            tsr_array_free(y);
            break;
        }
        if (D < 0) {
            D = (int64_t)y->numel / n;
            int64_t od[2] = { N, D };
            st = tsr_array_create(&res, 2, od);
        } else if ((int64_t)y->numel != n * D) {
            st = tsr_fail(TSR_ERR_SHAPE, "prune: --distill model: output size changed");
        }
        if (st == TSR_OK) memcpy(res->data + i * D, y->data, (size_t)(n * D) * sizeof *y->data);
        tsr_array_free(y);
    }
    tsr_array_free(chunk);
    tsr_graph_free(g);
    tsr_onnx_free(om);
    if (st != TSR_OK) {
        tsr_array_free(res);
        return st;
    }
    *out = res;
    return TSR_OK;
}

/* ONNX bytes of g with the input model's metadata and a note of what was done. */
static tsr_status export_model(const tsr_graph *g, const tsr_onnx_model *in, const char *note,
                               uint8_t **buf, size_t *len) {
    tsr_onnx_model *om;
    TSR_TRY(tsr_onnx_from_graph(g, &om));
    tsr_status st = TSR_OK;
    for (int i = 0; i < in->n_meta && st == TSR_OK; i++)
        if (strcmp(in->meta_key[i], "tessera.prune") != 0)
            st = tsr_onnx_set_meta(om, in->meta_key[i], in->meta_value[i]);
    if (st == TSR_OK) st = tsr_onnx_set_meta(om, "tessera.prune", note);
    if (st == TSR_OK) st = tsr_onnx_serialize(om, buf, len);
    tsr_onnx_free(om);
    return st;
}

/*
 * --shape-search: the plan of the model pruned for each candidate tile shape. The optimizer
 * picks the tile shape that is best for the dense model; a pruned model can be cheaper under
 * another shape (e.g. fewer inputs per tile: less rotate-and-sum inside a tile, more but
 * prunable products). Each shape is pruned one-shot without fine-tuning (which tiles survive
 * is decided by the weights as they are; the counts depend only on how many tiles and tile
 * rows survive), the pruned graph is compiled as `tessera compile --batch B --log-n N` would,
 * and the plan's rotations, ct x pt products and predicted latency and memory are compared.
 */
typedef struct shape_cost {
    int64_t r, c;
    int ok;
    double seconds, mib;
    uint64_t rot, prod;
    int64_t tiles, tiles_kept;
    char plan[64];
    int plan_r, plan_c; /* the first layer's tile in the chosen plan (0 x 0: batch packing) */
    double own_seconds, own_mib; /* the best candidate whose first layer's tile is r x c, if
                                  * the optimizer's log lists it (its 8 best), else 0 */
    char own_plan[64];
} shape_cost;

/*
 * A flat input's first layer has its outputs in D3 with orientation 0 (tile t3 x t0) and in D0
 * with orientation 3 (tile t0 x t3).
 */
static void first_tile(const long long t[5], int o, long long *r, long long *c) {
    *r = o == 0 ? t[3] : t[0];
    *c = o == 0 ? t[0] : t[3];
}

/* The cost a shape is ranked by: its chosen plan if that uses the shape's tile, else the best
 * candidate that does (0 when none of the optimizer's 8 best does: not ranked). */
static double shape_seconds(const shape_cost *c, double *mib) {
    if (c->plan_r == c->r && c->plan_c == c->c) {
        *mib = c->mib;
        return c->seconds;
    }
    *mib = c->own_mib;
    return c->own_seconds;
}

/*
 * "RxC,RxC,..." into v, or auto: the tiles of the optimizer's tiled candidates for a flat
 * input, every power-of-two R x C with R C = (N/2) / t4, t4 the batch rounded up to a power of
 * two, or a half or a quarter of it (the rest of the batch in external tiles).
 */
static int parse_shapes(const char *s, int batch, int log_n, shape_cost *v, int max) {
    int n = 0;
    if (strcmp(s, "auto") == 0) {
        int64_t b = 1;
        while (b < batch) b *= 2;
        for (int64_t t4 = b >= 4 ? b / 4 : 1; t4 <= b; t4 *= 2) {
            int64_t area = ((int64_t)1 << (log_n - 1)) / t4;
            for (int64_t r = 1; r <= area && n < max; r *= 2, n++) {
                memset(&v[n], 0, sizeof v[n]);
                v[n].r = r;
                v[n].c = area / r;
            }
        }
        return n > 0 ? n : -1;
    }
    char buf[512];
    if (snprintf(buf, sizeof buf, "%s", s) >= (int)sizeof buf) return -1;
    for (char *save = NULL, *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        if (n == max) return -1;
        memset(&v[n], 0, sizeof v[n]);
        if (parse_tile(t, &v[n].r, &v[n].c) != 0) return -1;
        n++;
    }
    return n > 0 ? n : -1;
}

/* Sum the rot and ct*pt+c columns of a printed plan; its packing into plan. nn has no totals
 * API: test_prune_cli (test_shape_search) pins this parse against `tessera compile`. */
static void plan_counts(const char *text, shape_cost *c) {
    c->rot = c->prod = 0;
    c->plan[0] = '\0';
    c->plan_r = c->plan_c = 0;
    for (const char *l = text; l && *l;) {
        const char *e = strchr(l, '\n');
        size_t len = e ? (size_t)(e - l) : strlen(l);
        const char *t = strstr(l, " t = [");
        if (t && (size_t)(t - l) < len) {
            long long a[5];
            int o;
            if (sscanf(t, " t = [%lld, %lld, %lld, %lld, %lld] orientation %d", &a[0], &a[1], &a[2],
                       &a[3], &a[4], &o) == 6) {
                long long r, cc;
                first_tile(a, o, &r, &cc);
                c->plan_r = (int)r;
                c->plan_c = (int)cc;
                snprintf(c->plan, sizeof c->plan, "[%lld,%lld,%lld,%lld,%lld] o%d", a[0], a[1],
                         a[2], a[3], a[4], o);
            }
        } else if (len > 0 && len < 512 && l[0] >= '0' && l[0] <= '9') {
            /* a step row ends with: rot ct*ct ct*pt+c predicted */
            char row[512], *tok[64];
            int nt = 0;
            memcpy(row, l, len);
            row[len] = '\0';
            for (char *save = NULL, *w = strtok_r(row, " ", &save); w && nt < 64;
                 w = strtok_r(NULL, " ", &save))
                tok[nt++] = w;
            if (nt >= 5 && tok[nt - 1][strlen(tok[nt - 1]) - 1] == 's') {
                c->rot += strtoull(tok[nt - 4], NULL, 10);
                c->prod += strtoull(tok[nt - 2], NULL, 10);
            }
        }
        l = e ? e + 1 : NULL;
    }
}

/*
 * The optimizer's candidate rows "N=2^n tiled [t0,t1,t2,t3,t4] oK ... rots server per-sample
 * memory" whose first layer has c's tile (first_tile).
 */
static void own_candidate(const char *log, shape_cost *c) {
    c->own_seconds = c->own_mib = 0;
    c->own_plan[0] = '\0';
    for (const char *l = log; l && *l;) {
        const char *e = strchr(l, '\n');
        long long t[5];
        int n, o, depth;
        unsigned sc;
        unsigned long long rots;
        double sec, per, mib;
        if (sscanf(l, " N=2^%d tiled [%lld,%lld,%lld,%lld,%lld] o%d %d %u b %llu %lfs %lfms %lfMiB",
                   &n, &t[0], &t[1], &t[2], &t[3], &t[4], &o, &depth, &sc, &rots, &sec, &per,
                   &mib) == 13) {
            long long r, cc;
            first_tile(t, o, &r, &cc);
            if (r == c->r && cc == c->c && (c->own_seconds == 0 || sec < c->own_seconds)) {
                c->own_seconds = sec;
                c->own_mib = mib;
                snprintf(c->own_plan, sizeof c->own_plan, "[%lld,%lld,%lld,%lld,%lld] o%d", t[0],
                         t[1], t[2], t[3], t[4], o);
            }
        }
        l = e ? e + 1 : NULL;
    }
}

/* Prune g one-shot for c's shape (o's other options), compile at batch / log_n, fill c. */
static tsr_status shape_eval(const tsr_graph *g, const tsr_prune_opts *o, int batch, int log_n,
                             shape_cost *c) {
    tsr_prune_opts so = *o;
    so.tile_rows = c->r;
    so.tile_cols = c->c;
    so.finetune = NULL;
    so.finetune_ctx = NULL;
    so.progress = NULL;
    so.steps = 1;
    tsr_graph *pg = NULL;
    tsr_prune_report *rep = NULL;
    TSR_TRY(tsr_prune_graph(g, &so, &pg, &rep));
    c->tiles = c->tiles_kept = 0;
    for (int i = 0; i < rep->n_layers; i++) {
        c->tiles += rep->layers[i].tiles;
        c->tiles_kept += rep->layers[i].tiles_nz_after;
    }
    tsr_prune_report_free(rep);
    tsr_nn_model *m = NULL;
    char *why = NULL;
    tsr_status st = tsr_nn_model_from_graph(pg, NULL, &m, &why);
    tsr_nn_string_free(why);
    tsr_graph_free(pg);
    if (st != TSR_OK) return st;
    tsr_nn_compile_opts co;
    tsr_nn_compile_opts_default(&co);
    co.batch = batch;
    co.log_n = log_n;
    char *log = NULL;
    size_t ll = 0;
    co.log = open_memstream(&log, &ll);
    if (!co.log) {
        tsr_nn_model_free(m);
        return tsr_fail(TSR_ERR_NOMEM, "open_memstream failed");
    }
    tsr_nn_plan *plan = NULL;
    st = tsr_nn_compile(m, &co, &plan);
    tsr_nn_model_free(m);
    fclose(co.log);
    if (st == TSR_OK) own_candidate(log, c);
    free(log);
    if (st != TSR_OK) return st;
    c->seconds = tsr_nn_plan_predicted_seconds(plan);
    c->mib = tsr_nn_plan_predicted_mib(plan);
    char *text = NULL;
    size_t tl = 0;
    FILE *fp = open_memstream(&text, &tl);
    if (!fp) {
        tsr_nn_plan_free(plan);
        return tsr_fail(TSR_ERR_NOMEM, "open_memstream failed");
    }
    tsr_nn_plan_print(plan, fp);
    fclose(fp);
    tsr_nn_plan_free(plan);
    plan_counts(text, c);
    free(text);
    c->ok = 1;
    return TSR_OK;
}

/* Evaluate every shape, print the table, return the index of the cheapest (or -1). */
static int shape_search(const tsr_graph *g, const tsr_prune_opts *o, int batch, int log_n,
                        shape_cost *v, int n, FILE *fp) {
    int best = -1, others = 0;
    fprintf(fp, "shape search: batch %d, N = 2^%d, one-shot pruning (no fine-tuning)\n", batch,
            log_n);
    fprintf(fp, "  %-9s %13s %8s %8s %11s %10s  %-22s %s\n", "tile", "tiles kept", "rots",
            "ct*pt+c", "predicted", "memory", "plan", "own shape's best plan");
    for (int i = 0; i < n; i++) {
        tsr_status st = shape_eval(g, o, batch, log_n, &v[i]);
        char sh[48];
        snprintf(sh, sizeof sh, "%lldx%lld", (long long)v[i].r, (long long)v[i].c);
        if (st != TSR_OK) {
            fprintf(fp, "  %-9s failed: %s\n", sh, tsr_last_error());
            continue;
        }
        char kept[48];
        snprintf(kept, sizeof kept, "%lld/%lld", (long long)v[i].tiles_kept, (long long)v[i].tiles);
        char own[96] = "not among the optimizer's 8 best";
        if (v[i].own_seconds > 0)
            snprintf(own, sizeof own, "%.3fs %s", v[i].own_seconds, v[i].own_plan);
        int other = v[i].plan_r != v[i].r || v[i].plan_c != v[i].c;
        others += other;
        char plan[80];
        snprintf(plan, sizeof plan, "%s%s", v[i].plan[0] ? v[i].plan : "batch packing",
                 other ? " *" : "");
        fprintf(fp, "  %-9s %13s %8llu %8llu %10.3fs %7.0fMiB  %-22s %s\n", sh, kept,
                (unsigned long long)v[i].rot, (unsigned long long)v[i].prod, v[i].seconds, v[i].mib,
                plan, own);
        double mib, sec = shape_seconds(&v[i], &mib), best_mib = 0;
        double best_sec = best >= 0 ? shape_seconds(&v[best], &best_mib) : 0;
        if (sec > 0 && (best < 0 || sec < best_sec || (sec == best_sec && mib < best_mib)))
            best = i;
    }
    if (others > 0)
        fprintf(fp, "  * the optimizer's plan uses another tile than the row's (the zero tiles do "
                    "not line up with it):\n    the row is ranked by its own shape's best plan, "
                    "and not at all when that is not among the 8 best\n");
    if (best >= 0) {
        double mib, sec = shape_seconds(&v[best], &mib);
        fprintf(fp,
                "shape search: cheapest %lldx%lld (predicted %.3f s, %.0f MiB, with its own "
                "tiles)\n",
                (long long)v[best].r, (long long)v[best].c, sec, mib);
    }
    return best;
}

int tsr_cmd_prune(int argc, char **argv) {
    if (cli_wants_help(argc, argv)) {
        usage(stdout);
        return 0;
    }
    const char *model = NULL, *out = NULL, *method = "tile", *tile = NULL, *tile_sp = "1x1";
    double sparsity = 0.5, expand = 1.0, ft_lr = 5e-4;
    long steps = 1, iters = 20, seed = 1, ft_epochs = 1, ft_batch = 64, ft_limit = 0;
    const char *ft_data = NULL, *pixel_norm = NULL, *ft_sched = "cosine", *layer_sp = NULL;
    const char *distill = NULL, *layer_row = NULL, *shapes = NULL;
    long plan_batch = 0, plan_log_n = 0; /* 0: not given (64, 14) */
    double distill_w = 0.5, row_sp = 0.0;
    int no_alt = 0, permute = 0, skip_first = 0, skip_last = 0, stats = 0, quiet = 0, force = 0;
    int shrink = 0, offset_tiles = 0;
    const cli_opt opts[] = {
        { "--out", CLI_STR, &out, 0, 0 },
        { "--method", CLI_STR, &method, 0, 0 },
        { "--sparsity", CLI_DOUBLE, &sparsity, 0, 0 },
        { "--tile", CLI_STR, &tile, 0, 0 },
        { "--tile-spatial", CLI_STR, &tile_sp, 0, 0 },
        { "--shape-search", CLI_STR, &shapes, 0, 0 },
        { "--plan-batch", CLI_LONG, &plan_batch, 1, 1 << 20 },
        { "--plan-log-n", CLI_LONG, &plan_log_n, 13, 16 },
        { "--no-alternate", CLI_FLAG, &no_alt, 0, 0 },
        { "--permute", CLI_FLAG, &permute, 0, 0 },
        { "--expand", CLI_DOUBLE, &expand, 0, 0 },
        { "--steps", CLI_LONG, &steps, 1, 1000 },
        { "--kmeans-iters", CLI_LONG, &iters, 1, 10000 },
        { "--seed", CLI_LONG, &seed, 0, 0x7fffffff },
        { "--skip-first", CLI_FLAG, &skip_first, 0, 0 },
        { "--skip-last", CLI_FLAG, &skip_last, 0, 0 },
        { "--shrink", CLI_FLAG, &shrink, 0, 0 },
        { "--offset-tiles", CLI_FLAG, &offset_tiles, 0, 0 },
        { "--finetune", CLI_STR, &ft_data, 0, 0 },
        { "--ft-epochs", CLI_LONG, &ft_epochs, 1, 1000 },
        { "--ft-lr", CLI_DOUBLE, &ft_lr, 0, 0 },
        { "--ft-batch", CLI_LONG, &ft_batch, 1, 65536 },
        { "--ft-schedule", CLI_STR, &ft_sched, 0, 0 },
        { "--layer-sparsity", CLI_STR, &layer_sp, 0, 0 },
        { "--row-sparsity", CLI_DOUBLE, &row_sp, 0, 0 },
        { "--layer-row-sparsity", CLI_STR, &layer_row, 0, 0 },
        { "--distill", CLI_STR, &distill, 0, 0 },
        { "--distill-weight", CLI_DOUBLE, &distill_w, 0, 0 },
        { "--ft-limit", CLI_LONG, &ft_limit, 0, 100000000 },
        { "--pixel-norm", CLI_STR, &pixel_norm, 0, 0 },
        { "--stats", CLI_FLAG, &stats, 0, 0 },
        { "--quiet", CLI_FLAG, &quiet, 0, 0 },
        { "--force", CLI_FLAG, &force, 0, 0 },
    };
    int rc = cli_parse_args("prune", argc, argv, opts, sizeof opts / sizeof *opts, &model, 1);
    if (rc) return rc;
    if (!model) return cli_usage_error("prune", "no model given (tessera prune MODEL.onnx ...)");
    if (!stats && !out) return cli_usage_error("prune", "--out is required (or --stats)");
    tsr_prune_opts o;
    tsr_prune_opts_default(&o);
    if (tsr_prune_method_parse(method, &o.method) != TSR_OK)
        return cli_usage_error("prune", "%s", tsr_last_error());
    if (shapes && tile)
        return cli_usage_error("prune", "--tile and --shape-search: the search chooses the tile");
    if (!shapes && (plan_batch || plan_log_n))
        return cli_usage_error("prune", "--plan-batch / --plan-log-n: only with --shape-search");
    if (!plan_batch) plan_batch = 64;
    if (!plan_log_n) plan_log_n = 14;
    if (!tile) tile = "32x32";
    if (parse_tile(tile, &o.tile_rows, &o.tile_cols) != 0)
        return cli_usage_error("prune", "--tile '%s': expected RxC with 1 <= R, C <= 2^20", tile);
    if (parse_tile(tile_sp, &o.tile_y, &o.tile_x) != 0)
        return cli_usage_error("prune", "--tile-spatial '%s': expected YxX with 1 <= Y, X <= 2^20",
                               tile_sp);
    if (!(sparsity >= 0.0 && sparsity < 1.0))
        return cli_usage_error("prune", "--sparsity %g must be in [0, 1)", sparsity);
    if (!(expand >= 1.0 && expand <= 16.0))
        return cli_usage_error("prune", "--expand %g must be in [1, 16]", expand);
    o.sparsity = sparsity;
    double lsp[64], lrow[64];
    if ((rc = layer_values("--layer-sparsity", layer_sp, lsp, &o.layer_sparsity,
                           &o.n_layer_sparsity)) != 0)
        return rc;
    if (!(row_sp >= 0.0 && row_sp < 1.0))
        return cli_usage_error("prune", "--row-sparsity %g must be in [0, 1)", row_sp);
    o.row_sparsity = row_sp;
    if ((rc = layer_values("--layer-row-sparsity", layer_row, lrow, &o.layer_row_sparsity,
                           &o.n_layer_row_sparsity)) != 0)
        return rc;
    if ((row_sp > 0 || layer_row) && o.method != TSR_PRUNE_TILE && o.method != TSR_PRUNE_HEPEX)
        return cli_usage_error("prune",
                               "--row-sparsity / --layer-row-sparsity: only with --method tile "
                               "or hepex (tile rows), not %s",
                               tsr_prune_method_name(o.method));
    if (!(distill_w >= 0.0 && distill_w <= 1.0))
        return cli_usage_error("prune", "--distill-weight %g must be in [0, 1]", distill_w);
    if (distill && !ft_data)
        return cli_usage_error("prune", "--distill needs --finetune (the inputs it is run on)");
    if (strcmp(ft_sched, "const") != 0 && strcmp(ft_sched, "cosine") != 0)
        return cli_usage_error("prune", "--ft-schedule '%s': const or cosine", ft_sched);
    shape_cost cands[64];
    int n_cands = 0;
    long long slots = 1LL << (plan_log_n - 1);
    if (shapes && strcmp(shapes, "auto") == 0 && plan_batch > 4 * slots)
        return cli_usage_error("prune",
                               "--shape-search auto: batch %ld exceeds the N/2 = %lld slots of "
                               "N = 2^%ld even split over 4 tiles (auto's most)",
                               plan_batch, slots, plan_log_n);
    if (shapes && (n_cands = parse_shapes(shapes, (int)plan_batch, (int)plan_log_n, cands, 64)) < 0)
        return cli_usage_error("prune",
                               "--shape-search '%s': expected auto or up to 64 comma-separated "
                               "RxC with 1 <= R, C <= 2^20",
                               shapes);
    o.alternate = !no_alt;
    o.permute = permute;
    o.expand = expand;
    o.steps = (int)steps;
    o.kmeans_iters = (int)iters;
    o.seed = (uint64_t)seed;
    o.skip_first = skip_first;
    o.skip_last = skip_last;
    o.shrink = shrink;
    o.offset_tiles = offset_tiles;
    cli_output outs[] = { { out, 0, NULL } };
    const char *ins[] = { model };
    if (!stats && (rc = cli_outputs_check("prune", outs, 1, ins, 1, force)) != 0) return rc;

    tsr_onnx_model *om = NULL;
    tsr_graph *g = NULL;
    tsr_status st = load_graph(model, &om, &g);
    if (st != TSR_OK) return cli_fail("prune", st, model);
    tsr_prune_report *r = NULL;
    if (n_cands > 0) {
        int best = shape_search(g, &o, (int)plan_batch, (int)plan_log_n, cands, n_cands, stdout);
        if (best < 0) {
            tsr_graph_free(g);
            tsr_onnx_free(om);
            return cli_fail("prune", TSR_ERR_UNSUPPORTED,
                            "shape search: no shape compiled to a plan using its own tile");
        }
        o.tile_rows = cands[best].r;
        o.tile_cols = cands[best].c;
        if (stats) {
            tsr_graph_free(g);
            tsr_onnx_free(om);
            return 0;
        }
    }
    if (stats) {
        st = tsr_prune_stats(g, &o, &r);
        if (st == TSR_OK) tsr_prune_report_print(r, stdout);
        rc = st == TSR_OK ? 0 : cli_fail("prune", st, "tile statistics");
        tsr_prune_report_free(r);
        tsr_graph_free(g);
        tsr_onnx_free(om);
        return rc;
    }
    ft_ctx fc;
    memset(&fc, 0, sizeof fc);
    tsr_graph *pg = NULL;
    tsr_array *fx = NULL, *fy = NULL, *ft = NULL;
    if (ft_data) {
        double mean = 0.0, sd = 1.0;
        if (!(ft_lr > 0)) {
            rc = cli_usage_error("prune", "--ft-lr %g must be > 0", ft_lr);
            goto done;
        }
        if (pixel_norm && (rc = tcli_parse_norm("prune", pixel_norm, &mean, &sd)) != 0) goto done;
        if ((rc = tcli_load_pair("prune", ft_data, g, mean, sd, ft_limit, 1, &fx, &fy, NULL)) != 0)
            goto done;
        if (distill) {
            st = teacher_outputs(distill, fx, &ft);
            if (st != TSR_OK) {
                rc = cli_fail("prune", st, distill);
                goto done;
            }
            fc.teacher = ft;
            fc.alpha = distill_w;
        }
        fc.lr = ft_lr;
        fc.batch = (int)ft_batch;
        fc.cosine = strcmp(ft_sched, "cosine") == 0;
        fc.seed = (uint64_t)seed;
        fc.x = fx;
        fc.y = fy;
        fc.epochs = (int)ft_epochs;
        fc.quiet = quiet;
        o.finetune = finetune_hook;
        o.finetune_ctx = &fc;
    }
    if (o.expand > 1.0 && !o.finetune)
        fprintf(stderr, "tessera prune: note: --expand without fine-tuning adds features whose "
                        "outgoing weights are zero; they only help once the model is fine-tuned\n");
    prog_ctx pc;
    memset(&pc, 0, sizeof pc);
    pc.on = !quiet;
    o.progress = on_progress;
    o.progress_ctx = &pc;
    st = tsr_prune_graph(g, &o, &pg, &r);
    if (pc.begun) tsr_progress_end(&pc.p, NULL);
    if (st != TSR_OK) {
        rc = cli_fail("prune", st, "pruning");
        goto done;
    }
    tsr_prune_report_print(r, stdout);
    /* The note is part of the file's bytes, and result files record a pruned model's sha256
     * (scripts/prune_experiments.py): an option added after offset-tiles goes in only when it
     * is not at its default, so that a later build given the same model and options writes
     * the same bytes. (c4c05f0 appended offset-tiles=0 to every note: files regenerated
     * after it had the recorded weights bit for bit and another sha256.) test_prune_cli pins
     * the text. */
    char note[512];
    snprintf(
        note, sizeof note,
        "method=%s sparsity=%g layer-sparsity=%.80s row-sparsity=%g layer-row-sparsity=%.80s "
        "tile=%lldx%lld spatial=%lldx%lld alternate=%d permute=%d expand=%g steps=%d shrink=%d "
        "offset-tiles=%d",
        tsr_prune_method_name(o.method), o.sparsity, layer_sp ? layer_sp : "-", o.row_sparsity,
        layer_row ? layer_row : "-", (long long)o.tile_rows, (long long)o.tile_cols,
        (long long)o.tile_y, (long long)o.tile_x, o.alternate, o.permute, o.expand, o.steps,
        o.shrink, o.offset_tiles);
    uint8_t *buf = NULL;
    size_t len = 0;
    st = export_model(pg, om, note, &buf, &len);
    if (st != TSR_OK) {
        rc = cli_fail("prune", st, "exporting the pruned model");
        goto done;
    }
    tsr_outset set;
    if ((rc = cli_outputs_open("prune", &set, outs, 1, force)) == 0) {
        st = fwrite(buf, 1, len, outs[0].fp) == len
                 ? TSR_OK
                 : tsr_fail(TSR_ERR_IO, "writing %zu bytes failed", len);
        rc = cli_outputs_commit("prune", &set, st, out);
    }
    tsr_free(buf);
done:
    tsr_array_free(fx);
    tsr_array_free(fy);
    tsr_array_free(ft);
    tsr_prune_report_free(r);
    tsr_graph_free(pg);
    tsr_graph_free(g);
    tsr_onnx_free(om);
    return rc;
}
