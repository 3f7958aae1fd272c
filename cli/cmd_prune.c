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
#include "onnx/onnx_graph.h"
#include "train_cli.h"

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
            "  --tile RxC        tile of the first layer: R output x C input features (default\n"
            "                    32x32); use the compiler's: e.g. t0 x t3 of `tessera compile`\n"
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
            "fine-tuning with the masks fixed (the graph trainer, tessera/train.h):\n"
            "  --finetune X,Y    fine-tune after every pruning step on X,Y (.npy or IDX:\n"
            "                    inputs and labels for cross-entropy, or targets for MSE)\n"
            "  --ft-epochs E     epochs per fine-tuning (default 1)\n"
            "  --ft-lr LR        Adam learning rate (default 5e-4)\n"
            "  --ft-batch B      batch size (default 64)\n"
            "  --ft-chunk N      re-impose the masks every N batches (default 20)\n"
            "  --ft-limit N      use the first N samples of X,Y\n"
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

/* Fine-tuning with fixed masks on the graph trainer: chunks of N batches,
 * the masks re-imposed after each (the optimiser restarts per chunk). */
typedef struct ft_ctx {
    const tsr_array *x, *y;
    tsr_train_opts to;
    int epochs, chunk;
    int quiet;
} ft_ctx;

static tsr_status finetune_hook(void *ctx, int step, const tsr_prune_masks *masks,
                                tsr_graph **model) {
    ft_ctx *c = ctx;
    int64_t N = c->x->dims[0];
    int64_t per_epoch = (N + c->to.batch - 1) / c->to.batch;
    int64_t chunks = c->epochs * ((per_epoch + c->chunk - 1) / c->chunk);
    tsr_graph *cur = *model;
    tsr_status st = TSR_OK;
    double t0 = tsr_now();
    for (int64_t k = 0; k < chunks && st == TSR_OK; k++) {
        tsr_trainer *t = NULL;
        tsr_graph *trained = NULL, *next = NULL;
        tsr_train_opts o = c->to;
        o.epochs = 1;
        o.max_batches = c->chunk;
        o.seed = c->to.seed + (uint64_t)step * 1000003u + (uint64_t)k;
        st = tsr_trainer_create(&t, cur);
        if (st == TSR_OK) st = tsr_trainer_fit(t, &o, c->x, c->y, NULL, NULL, NULL);
        if (st == TSR_OK) st = tsr_trainer_graph(t, &trained);
        if (st == TSR_OK) st = tsr_prune_masks_apply(masks, trained, &next);
        tsr_trainer_free(t);
        tsr_graph_free(trained);
        if (st == TSR_OK) {
            if (cur != *model) tsr_graph_free(cur);
            cur = next;
        }
        if (!c->quiet && (k + 1 == chunks || (k + 1) % 50 == 0))
            fprintf(stderr, "fine-tuning %d: %lld/%lld chunks of %d batches (%.0f s)\n", step,
                    (long long)(k + 1), (long long)chunks, c->chunk, tsr_now() - t0);
    }
    if (st != TSR_OK) {
        if (cur != *model) tsr_graph_free(cur);
        return st;
    }
    if (cur != *model) {
        tsr_graph_free(*model);
        *model = cur;
    }
    return TSR_OK;
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

int tsr_cmd_prune(int argc, char **argv) {
    if (cli_wants_help(argc, argv)) {
        usage(stdout);
        return 0;
    }
    const char *model = NULL, *out = NULL, *method = "tile", *tile = "32x32";
    double sparsity = 0.5, expand = 1.0, ft_lr = 5e-4;
    long steps = 1, iters = 20, seed = 1, ft_epochs = 1, ft_batch = 64, ft_chunk = 20, ft_limit = 0;
    const char *ft_data = NULL, *pixel_norm = NULL;
    int no_alt = 0, permute = 0, skip_first = 0, skip_last = 0, stats = 0, quiet = 0, force = 0;
    const cli_opt opts[] = {
        { "--out", CLI_STR, &out, 0, 0 },
        { "--method", CLI_STR, &method, 0, 0 },
        { "--sparsity", CLI_DOUBLE, &sparsity, 0, 0 },
        { "--tile", CLI_STR, &tile, 0, 0 },
        { "--no-alternate", CLI_FLAG, &no_alt, 0, 0 },
        { "--permute", CLI_FLAG, &permute, 0, 0 },
        { "--expand", CLI_DOUBLE, &expand, 0, 0 },
        { "--steps", CLI_LONG, &steps, 1, 1000 },
        { "--kmeans-iters", CLI_LONG, &iters, 1, 10000 },
        { "--seed", CLI_LONG, &seed, 0, 0x7fffffff },
        { "--skip-first", CLI_FLAG, &skip_first, 0, 0 },
        { "--skip-last", CLI_FLAG, &skip_last, 0, 0 },
        { "--finetune", CLI_STR, &ft_data, 0, 0 },
        { "--ft-epochs", CLI_LONG, &ft_epochs, 1, 1000 },
        { "--ft-lr", CLI_DOUBLE, &ft_lr, 0, 0 },
        { "--ft-batch", CLI_LONG, &ft_batch, 1, 65536 },
        { "--ft-chunk", CLI_LONG, &ft_chunk, 1, 1000000 },
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
    if (parse_tile(tile, &o.tile_rows, &o.tile_cols) != 0)
        return cli_usage_error("prune", "--tile '%s': expected RxC with 1 <= R, C <= 2^20", tile);
    if (!(sparsity >= 0.0 && sparsity < 1.0))
        return cli_usage_error("prune", "--sparsity %g must be in [0, 1)", sparsity);
    if (!(expand >= 1.0 && expand <= 16.0))
        return cli_usage_error("prune", "--expand %g must be in [1, 16]", expand);
    o.sparsity = sparsity;
    o.alternate = !no_alt;
    o.permute = permute;
    o.expand = expand;
    o.steps = (int)steps;
    o.kmeans_iters = (int)iters;
    o.seed = (uint64_t)seed;
    o.skip_first = skip_first;
    o.skip_last = skip_last;
    cli_output outs[] = { { out, 0, NULL } };
    const char *ins[] = { model };
    if (!stats && (rc = cli_outputs_check("prune", outs, 1, ins, 1, force)) != 0) return rc;

    tsr_onnx_model *om = NULL;
    tsr_graph *g = NULL;
    tsr_status st = load_graph(model, &om, &g);
    if (st != TSR_OK) return cli_fail("prune", st, model);
    tsr_prune_report *r = NULL;
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
    tsr_array *fx = NULL, *fy = NULL;
    if (ft_data) {
        double mean = 0.0, sd = 1.0;
        if (!(ft_lr > 0)) {
            rc = cli_usage_error("prune", "--ft-lr %g must be > 0", ft_lr);
            goto done;
        }
        if (pixel_norm && (rc = tcli_parse_norm("prune", pixel_norm, &mean, &sd)) != 0) goto done;
        if ((rc = tcli_load_pair("prune", ft_data, g, mean, sd, ft_limit, &fx, &fy, NULL)) != 0)
            goto done;
        tsr_train_opts_default(&fc.to);
        fc.to.lr = ft_lr;
        fc.to.batch = (int)ft_batch;
        fc.to.schedule = "const";
        fc.to.seed = (uint64_t)seed;
        fc.x = fx;
        fc.y = fy;
        fc.epochs = (int)ft_epochs;
        fc.chunk = (int)ft_chunk;
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
    char note[256];
    snprintf(note, sizeof note,
             "method=%s sparsity=%g tile=%lldx%lld alternate=%d permute=%d expand=%g steps=%d",
             tsr_prune_method_name(o.method), o.sparsity, (long long)o.tile_rows,
             (long long)o.tile_cols, o.alternate, o.permute, o.expand, o.steps);
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
    tsr_prune_report_free(r);
    tsr_graph_free(pg);
    tsr_graph_free(g);
    tsr_onnx_free(om);
    return rc;
}
