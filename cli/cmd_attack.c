/*
 * cli/cmd_attack.c - `tessera attack`: the detector robustness lab
 * (src/attacks, docs/MALWARE.md). `attack pe FILE` prints what the PE
 * reader sees (sections, imports, overlay, slack); `attack train` trains
 * MalConv on the stand-in corpus and reports accuracy, ROC AUC, detection
 * and false-positive rates on both splits; `attack eval` does the report
 * for a saved model; `attack payload` runs the attack of Kreuk et al. over
 * a grid (placement x payload size x steps) and a universal payload, and
 * writes CSV tables and SVG charts.
 */
#include "attacks/corpus.h"
#include "attacks/detector.h"
#include "attacks/features.h"
#include "attacks/payload.h"
#include "attacks/pe.h"
#include "attacks/report.h"
#include "cli.h"
#include "core/alloc.h"
#include "core/error.h"
#include "core/progress.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define VERB "attack"

static void help_attack(FILE *f) {
    fprintf(f, "usage: tessera attack <subcommand> [options]   (see docs/MALWARE.md)\n\n"
               "  pe FILE   what the PE reader sees: headers, sections, imports, overlay, slack\n"
               "  train     train MalConv on the stand-in corpus; report acc/AUC/TPR/FPR\n"
               "  eval      report a saved model on the corpus\n"
               "  mlp       the second detector (byte histogram + PE features -> MLP): train,\n"
               "            report, and score attacked files made against MalConv (transfer)\n"
               "  payload   the adversarial payload attack: evasion vs size, placement, steps;\n"
               "            universal payload; entropy; CSV + SVG report\n\n"
               "Run `tessera attack <subcommand> --help` for its options.\n");
}

static const char train_help[] =
    "usage: tessera attack train --corpus DIR --out MODEL [options]\n\n"
    "Train MalConv (Raff et al.; sizes of Kreuk et al.) on DIR's training split\n"
    "(scripts/make_pe_corpus.sh) and report it on both splits.\n\n"
    "  --corpus DIR     corpus made by scripts/make_pe_corpus.sh (required)\n"
    "  --out MODEL      model file to write (required)\n"
    "  --epochs N       passes over the training files (4)\n"
    "  --batch B        files per step (16)\n"
    "  --lr X           Adam learning rate (0.001)\n"
    "  --seed S         initialisation and shuffle seed (1)\n"
    "  --threads N      OpenMP threads (default: all)\n"
    "  --threshold X    operating threshold on the score (0.5)\n"
    "  --label-smoothing S  targets 1 - S/2 and S/2 instead of 1 and 0 (0): a bounded\n"
    "                   logit, so the scores stay calibrated instead of saturating\n"
    "  --weight-decay W AdamW with decoupled weight decay W (0: Adam)\n"
    "  --val-frac X     hold out this fraction of the training split's sources (by a hash\n"
    "                   of the source name) for validation; keep the epoch of least\n"
    "                   validation loss (0: none)\n"
    "  --patience N     stop after N epochs without a better validation loss (0: never)\n"
    "  --init MODEL     start from this model instead of a fresh one (fine-tuning)\n"
    "  --adv-frac X     adversarial training: each flagged training file of a batch is,\n"
    "                   with probability X, replaced by a copy with an overlay payload\n"
    "                   made against the current model by the routed greedy attack\n"
    "                   (see attack payload --routed --greedy; 0: off)\n"
    "  --adv-plain      make those copies with routed sign steps of size --adv-eps\n"
    "                   (attack payload --routed) instead of greedy byte steps\n"
    "  --adv-size N --adv-steps N --adv-eps X --adv-from E\n"
    "                   its payload bytes (2000), attack steps (4), sign step (1.0; used\n"
    "                   only with --adv-plain) and first epoch (1)\n"
    "  --emb D --filters F --window K --hidden H --max-len L\n"
    "                   model sizes (8, 128, 500, 128, 1048500: the paper's)\n"
    "  --report CSV     also write the metrics as CSV\n"
    "  --force          replace existing outputs\n";

static const char eval_help[] =
    "usage: tessera attack eval --corpus DIR --model MODEL [--threshold X] [--threads N]\n"
    "                           [--val-frac X --target-fpr X] [--report CSV] [--force]\n\n"
    "Report a saved MalConv model on both splits of the corpus.\n\n"
    "  --target-fpr X   choose the operating threshold on the validation files (the\n"
    "                   training split's sources held out by --val-frac, as in attack\n"
    "                   train) as the lowest one with a false-positive rate of at most X\n"
    "                   there; it replaces --threshold and is reported on every split\n"
    "  --val-frac X     must be the value the model was trained with (the model file\n"
    "                   records it); adds a validation row to the report\n";

typedef struct attack_opts {
    const char *corpus, *out, *model, *report, *init;
    const char *target_fpr_arg; /* --target-fpr as given (NULL: not given) */
    long epochs, batch, seed, threads, emb, filters, window, hidden, max_len;
    long patience, adv_size, adv_steps, adv_from;
    double lr, threshold, label_smoothing, weight_decay, val_frac, adv_frac, adv_eps, target_fpr;
    int force, adv_plain;
} attack_opts;

static void opts_default(attack_opts *o) {
    memset(o, 0, sizeof *o);
    tsr_malconv_cfg c = tsr_malconv_paper_cfg();
    o->epochs = 4;
    o->batch = 16;
    o->lr = 1e-3;
    o->seed = 1;
    o->threshold = 0.5;
    o->emb = c.emb;
    o->filters = c.filters;
    o->window = c.window;
    o->hidden = c.hidden;
    o->max_len = c.max_len;
    o->adv_size = 2000;
    o->adv_steps = 4;
    o->adv_eps = 1.0;
    o->adv_from = 1;
    o->target_fpr = -1; /* meaningful only when target_fpr_arg is set */
}

/* argv[0] is the subcommand (like a verb's argv[0]); the options follow. */
static int parse_opts(int argc, char **argv, const char *sub, attack_opts *o) {
    const cli_opt defs[] = {
        { "--corpus", CLI_STR, &o->corpus, 0, 0 },
        { "--out", CLI_STR, &o->out, 0, 0 },
        { "--model", CLI_STR, &o->model, 0, 0 },
        { "--report", CLI_STR, &o->report, 0, 0 },
        { "--epochs", CLI_LONG, &o->epochs, 1, 100000 },
        { "--batch", CLI_LONG, &o->batch, 1, 1 << 16 },
        { "--seed", CLI_LONG, &o->seed, 0, 2147483647 },
        { "--threads", CLI_LONG, &o->threads, 1, 4096 },
        { "--emb", CLI_LONG, &o->emb, 1, 1024 },
        { "--filters", CLI_LONG, &o->filters, 1, 4096 },
        { "--window", CLI_LONG, &o->window, 1, 1 << 16 },
        { "--hidden", CLI_LONG, &o->hidden, 1, 4096 },
        { "--max-len", CLI_LONG, &o->max_len, 1, 1 << 26 },
        { "--lr", CLI_DOUBLE, &o->lr, 0, 0 },
        { "--threshold", CLI_DOUBLE, &o->threshold, 0, 0 },
        { "--force", CLI_FLAG, &o->force, 0, 0 },
        { "--init", CLI_STR, &o->init, 0, 0 },
        { "--patience", CLI_LONG, &o->patience, 0, 100000 },
        { "--adv-size", CLI_LONG, &o->adv_size, 1, 1 << 20 },
        { "--adv-steps", CLI_LONG, &o->adv_steps, 1, 100000 },
        { "--adv-from", CLI_LONG, &o->adv_from, 1, 100000 },
        { "--label-smoothing", CLI_DOUBLE, &o->label_smoothing, 0, 0 },
        { "--weight-decay", CLI_DOUBLE, &o->weight_decay, 0, 0 },
        { "--val-frac", CLI_DOUBLE, &o->val_frac, 0, 0 },
        { "--adv-frac", CLI_DOUBLE, &o->adv_frac, 0, 0 },
        { "--adv-eps", CLI_DOUBLE, &o->adv_eps, 0, 0 },
        { "--adv-plain", CLI_FLAG, &o->adv_plain, 0, 0 },
        { "--target-fpr", CLI_STR, &o->target_fpr_arg, 0, 0 },
    };
    char verb[32];
    snprintf(verb, sizeof verb, VERB " %s", sub);
    int rc = cli_parse_args(verb, argc, argv, defs, sizeof defs / sizeof defs[0], NULL, 0);
    if (rc) return rc;
    if (!o->corpus) return cli_usage_error(verb, "--corpus DIR is required");
    if (!(o->lr > 0) || o->lr > 1) return cli_usage_error(verb, "--lr must be in (0, 1]");
    if (!(o->threshold > 0 && o->threshold < 1))
        return cli_usage_error(verb, "--threshold must be in (0, 1)");
    if (!(o->label_smoothing >= 0 && o->label_smoothing < 1))
        return cli_usage_error(verb, "--label-smoothing must be in [0, 1)");
    if (!(o->weight_decay >= 0 && o->weight_decay < 1))
        return cli_usage_error(verb, "--weight-decay must be in [0, 1)");
    if (!(o->val_frac >= 0 && o->val_frac < 1))
        return cli_usage_error(verb, "--val-frac must be in [0, 1)");
    if (!(o->adv_frac >= 0 && o->adv_frac <= 1))
        return cli_usage_error(verb, "--adv-frac must be in [0, 1]");
    if (!(o->adv_eps > 0)) return cli_usage_error(verb, "--adv-eps must be > 0");
    if (o->max_len % o->window != 0)
        return cli_usage_error(verb, "--max-len %ld must be a multiple of --window %ld", o->max_len,
                               o->window);
    if (o->target_fpr_arg && strcmp(sub, "eval") != 0)
        return cli_usage_error(verb, "--target-fpr is an option of " VERB " eval");
    if (o->target_fpr_arg && (cli_parse_double(o->target_fpr_arg, &o->target_fpr) != 0 ||
                              !(o->target_fpr >= 0 && o->target_fpr < 1)))
        return cli_usage_error(verb, "--target-fpr must be a number in [0, 1), not '%s'",
                               o->target_fpr_arg);
    if (o->target_fpr_arg && !(o->val_frac > 0))
        return cli_usage_error(verb, "--target-fpr needs validation files: --val-frac X > 0");
    if (o->threads) tsr_set_num_threads((int)o->threads);
    return 0;
}

/* A hash of a source name (FNV-1a): which training sources are held out for validation. */
static uint32_t source_hash(const char *s) {
    uint32_t h = 2166136261u;
    for (; *s; s++) h = (h ^ (uint8_t)*s) * 16777619u;
    return h;
}

/* Metrics of each split (train, test, and validation: the training files with isval[i] set,
 * when isval is given), printed and optionally written as CSV. */
static int report(const char *verb, const tsr_malconv *m, const tsr_corpus *c, const uint8_t *isval,
                  double thr, const char *csv_path, int force) {
    size_t n1 = c->n ? c->n : 1;
    tsr_detector_example *ex = tsr_calloc_array(n1, sizeof *ex);
    float *all = tsr_alloc(n1 * sizeof(float)), *sc = tsr_alloc(n1 * sizeof(float));
    int *lab = tsr_alloc(n1 * sizeof(int));
    tsr_status st = ex && all && sc && lab ? TSR_OK : TSR_ERR_NOMEM;
    for (size_t i = 0; st == TSR_OK && i < c->n; i++)
        ex[i] = (tsr_detector_example){ c->f[i].buf, c->f[i].len, c->f[i].label };
    double t0 = tsr_now();
    if (st == TSR_OK) st = tsr_detector_scores(m, ex, c->n, all);
    double secs = tsr_now() - t0;
    tsr_detector_metrics met[3];
    int nrows = 2;
    for (size_t i = 0; isval && i < c->n; i++)
        if (isval[i]) nrows = 3;
    for (int s = 0; st == TSR_OK && s < nrows; s++) {
        size_t k = 0;
        for (size_t i = 0; i < c->n; i++) {
            int row = c->f[i].split == TSR_SPLIT_TEST ? 1 : isval && isval[i] ? 2 : 0;
            if (row == s) {
                sc[k] = all[i];
                lab[k++] = c->f[i].label;
            }
        }
        tsr_detector_metrics_compute(sc, lab, k, thr, &met[s]);
    }
    tsr_free(ex), tsr_free(all), tsr_free(sc), tsr_free(lab);
    if (st) return cli_fail(verb, st, "scoring");
    printf("split  files flagged clean  accuracy  ROC-AUC  TPR     FPR     (threshold %.3f)\n",
           thr);
    static const char *const names[3] = { "train", "test", "val" };
    for (int s = 0; s < nrows; s++)
        printf("%-6s %5zu %7zu %5zu  %.4f    %.4f   %.4f  %.4f\n", names[s], met[s].n, met[s].pos,
               met[s].neg, met[s].accuracy, met[s].auc, met[s].tpr, met[s].fpr);
    printf("scored %zu files in %.1f s\n", c->n, secs);
    if (csv_path) {
        cli_output out = { csv_path, 0, NULL };
        int rc = cli_outputs_check(verb, &out, 1, NULL, 0, force);
        tsr_outset set;
        if (!rc) rc = cli_outputs_open(verb, &set, &out, 1, force);
        if (rc) return rc;
        fprintf(out.fp, "split,files,flagged,clean,threshold,accuracy,auc,tpr,fpr\n");
        for (int s = 0; s < nrows; s++)
            fprintf(out.fp, "%s,%zu,%zu,%zu,%.4f,%.6f,%.6f,%.6f,%.6f\n", names[s], met[s].n,
                    met[s].pos, met[s].neg, thr, met[s].accuracy, met[s].auc, met[s].tpr,
                    met[s].fpr);
        return cli_outputs_commit(verb, &set, TSR_OK, csv_path);
    }
    return 0;
}

static int cmd_train(int argc, char **argv) {
    const char *verb = VERB " train";
    attack_opts o;
    opts_default(&o);
    int rc = parse_opts(argc, argv, "train", &o);
    if (rc) return rc;
    if (!o.out) return cli_usage_error(verb, "--out MODEL is required");
    cli_output outs[2] = { { o.out, 0, NULL }, { o.report, 0, NULL } };
    rc = cli_outputs_check(verb, outs, o.report ? 2 : 1, NULL, 0, o.force);
    if (rc) return rc;
    tsr_corpus c;
    tsr_status st = tsr_corpus_load(&c, o.corpus);
    if (st) return cli_fail(verb, st, "loading the corpus");
    /* training files, minus the validation sources (by a hash of the source name) */
    size_t ntrain = 0, nval = 0;
    uint8_t *isval = tsr_calloc_array(c.n + 1, 1);
    tsr_detector_example *ex = tsr_calloc_array(c.n + 1, sizeof *ex),
                         *val = tsr_calloc_array(c.n + 1, sizeof *val);
    if (!ex || !val || !isval) {
        tsr_free(ex), tsr_free(val), tsr_free(isval);
        tsr_corpus_free(&c);
        return cli_fail(verb, TSR_ERR_NOMEM, "training");
    }
    for (size_t i = 0; i < c.n; i++) {
        if (c.f[i].split != TSR_SPLIT_TRAIN) continue;
        tsr_detector_example e = { c.f[i].buf, c.f[i].len, c.f[i].label };
        isval[i] = source_hash(c.f[i].source) % 1000 < (uint32_t)(o.val_frac * 1000);
        if (isval[i])
            val[nval++] = e;
        else
            ex[ntrain++] = e;
    }
    tsr_malconv_cfg mc = { (int)o.emb, (int)o.filters, (int)o.window, (int)o.hidden,
                           (uint32_t)o.max_len };
    tsr_malconv *m = NULL;
    st = ntrain ? TSR_OK : tsr_fail(TSR_ERR_INVALID_ARG, "no training file left");
    if (st == TSR_OK)
        st = o.init ? tsr_malconv_load(&m, o.init) : tsr_malconv_create(&m, &mc, (uint64_t)o.seed);
    if (st) {
        tsr_free(ex), tsr_free(val), tsr_free(isval);
        tsr_corpus_free(&c);
        return cli_fail(verb, st, o.init ? "loading --init" : "creating the model");
    }
    tsr_detector_train_cfg tc = tsr_detector_train_defaults();
    tc.epochs = (int)o.epochs;
    tc.batch = (int)o.batch;
    tc.lr = (float)o.lr;
    tc.seed = (uint64_t)o.seed;
    tc.verbose = 1;
    tc.label_smoothing = (float)o.label_smoothing;
    tc.weight_decay = (float)o.weight_decay;
    tc.val = val;
    tc.nval = nval;
    tc.patience = (int)o.patience;
    tc.adv_frac = (float)o.adv_frac;
    tc.adv_size = (size_t)o.adv_size;
    tc.adv_steps = (int)o.adv_steps;
    tc.adv_eps = (float)o.adv_eps;
    tc.adv_from = (int)o.adv_from;
    tc.adv_routed = 1;
    tc.adv_greedy = !o.adv_plain; /* greedy: the strongest attack of the lab; it ignores eps */
    tsr_detector_train_info info;
    double t0 = tsr_now();
    st = tsr_detector_fit(m, ex, ntrain, &tc, &info);
    tsr_free(ex);
    tsr_free(val);
    if (st) {
        tsr_free(isval);
        tsr_malconv_free(m);
        tsr_corpus_free(&c);
        return cli_fail(verb, st, "training");
    }
    printf("trained MalConv (%zu parameters) on %zu files: %d epochs in %.1f s, last epoch loss "
           "%.4f\n",
           m->nparams, ntrain, info.epochs_run, tsr_now() - t0, info.final_loss);
    if (nval)
        printf("validation: %zu files of the training split; kept epoch %d (validation loss "
               "%.4f)\n",
               nval, info.best_epoch, info.best_val_loss);
    else
        printf("no validation: kept the last epoch (%d)\n", info.best_epoch);
    if (o.adv_frac > 0) printf("adversarial training: %zu attacked copies\n", info.adv_examples);
    /* the model records this run's validation split, so that attack eval can refuse another */
    m->val_permille = (int32_t)(uint32_t)(o.val_frac * 1000);
    st = tsr_malconv_save(m, o.out, o.force ? TSR_OUT_FORCE : 0);
    if (st) {
        tsr_free(isval);
        tsr_malconv_free(m);
        tsr_corpus_free(&c);
        return cli_fail(verb, st, "writing the model");
    }
    rc = report(verb, m, &c, isval, o.threshold, o.report, o.force);
    tsr_free(isval);
    tsr_malconv_free(m);
    tsr_corpus_free(&c);
    return rc;
}

static int cmd_eval(int argc, char **argv) {
    const char *verb = VERB " eval";
    attack_opts o;
    opts_default(&o);
    int rc = parse_opts(argc, argv, "eval", &o);
    if (rc) return rc;
    if (!o.model) return cli_usage_error(verb, "--model MODEL is required");
    tsr_malconv *m;
    tsr_status st = tsr_malconv_load(&m, o.model);
    if (st) return cli_fail(verb, st, "loading the model");
    tsr_corpus c;
    st = tsr_corpus_load(&c, o.corpus);
    if (st) {
        tsr_malconv_free(m);
        return cli_fail(verb, st, "loading the corpus");
    }
    /* validation files: the training split's sources held out as attack train does, with
       the --val-frac the model was trained with (recorded in the model file): another value
       would count training files as validation files */
    uint8_t *isval = NULL;
    uint32_t vp = (uint32_t)(o.val_frac * 1000);
    if (o.val_frac > 0 && m->val_permille < 0)
        rc = cli_usage_error(verb,
                             "%s does not record the --val-frac it was trained with (a model "
                             "file from before that was saved): its validation files cannot be "
                             "told apart; train it again to use --val-frac here",
                             o.model);
    else if (o.val_frac > 0 && m->val_permille == 0)
        rc = cli_usage_error(verb,
                             "%s was trained with no validation split (--val-frac 0): all its "
                             "training files were trained on, none is a validation file",
                             o.model);
    else if (o.val_frac > 0 && (uint32_t)m->val_permille != vp)
        rc = cli_usage_error(verb,
                             "--val-frac %g holds out other sources than the --val-frac %g %s "
                             "was trained with; give --val-frac %g",
                             o.val_frac, m->val_permille / 1000.0, o.model,
                             m->val_permille / 1000.0);
    if (!rc && o.val_frac > 0) {
        isval = tsr_calloc_array(c.n + 1, 1);
        if (!isval) rc = cli_fail(verb, TSR_ERR_NOMEM, "validation");
        for (size_t i = 0; isval && i < c.n; i++)
            isval[i] = c.f[i].split == TSR_SPLIT_TRAIN &&
                       source_hash(c.f[i].source) % 1000 < (uint32_t)(o.val_frac * 1000);
    }
    if (!rc && o.target_fpr_arg) {
        size_t nv = 0, fp = 0, neg = 0;
        tsr_detector_example *ex = tsr_calloc_array(c.n + 1, sizeof *ex);
        float *sc = tsr_alloc((c.n + 1) * sizeof(float));
        int *lab = tsr_alloc((c.n + 1) * sizeof(int));
        float thr = 0;
        st = ex && sc && lab ? TSR_OK : tsr_fail(TSR_ERR_NOMEM, "validation scores");
        for (size_t i = 0; st == TSR_OK && i < c.n; i++)
            if (isval[i]) {
                ex[nv] = (tsr_detector_example){ c.f[i].buf, c.f[i].len, c.f[i].label };
                lab[nv] = c.f[i].label;
                neg += c.f[i].label != 1;
                nv++;
            }
        if (st == TSR_OK) st = tsr_detector_scores(m, ex, nv, sc);
        if (st == TSR_OK) st = tsr_detector_threshold_for_fpr(sc, lab, nv, o.target_fpr, &thr, &fp);
        if (st == TSR_OK) {
            printf("threshold %.9g for a target FPR of %g on %zu validation files (%zu clean: "
                   "FPR steps of %.4f): %zu clean validation files flagged\n",
                   (double)thr, o.target_fpr, nv, neg, 1.0 / (double)neg, fp);
            o.threshold = thr;
        } else
            rc = cli_fail(verb, st, "choosing the threshold");
        tsr_free(ex), tsr_free(sc), tsr_free(lab);
    }
    if (!rc) rc = report(verb, m, &c, isval, o.threshold, o.report, o.force);
    tsr_free(isval);
    tsr_malconv_free(m);
    tsr_corpus_free(&c);
    return rc;
}

static int cmd_pe(int argc, char **argv) {
    const char *verb = VERB " pe";
    if (argc != 2 || argv[1][0] == '-') return cli_usage_error(verb, "give exactly one FILE");
    uint8_t *buf;
    size_t len;
    tsr_status st = tsr_read_whole_file(argv[1], 1u << 30, "a PE file", &buf, &len);
    if (st) return cli_fail(verb, st, "reading the file");
    tsr_pe pe;
    st = tsr_pe_parse(&pe, buf, len);
    if (st) {
        tsr_free(buf);
        return cli_fail(verb, st, "parsing");
    }
    printf("%s, machine 0x%x, entry 0x%x, image base 0x%llx, file alignment %u, checksum 0x%x "
           "(computed 0x%x)\n",
           pe.pe32plus ? "PE32+" : "PE32", pe.machine, pe.entry, (unsigned long long)pe.image_base,
           pe.file_align, pe.checksum, tsr_pe_checksum(buf, len, pe.checksum_off));
    printf("section   raw offset  raw size  virt size  slack after used part\n");
    for (uint32_t i = 0; i < pe.nsections; i++) {
        const tsr_pe_section *s = &pe.sec[i];
        char name[40];
        tsr_escape_controls(name, sizeof name, s->name, 0);
        long slack = s->vsize && s->vsize < s->raw_size ? (long)(s->raw_size - s->vsize) : 0;
        printf("%-9s %10u %9u %10u  %ld\n", name, s->raw_ptr, s->raw_size, s->vsize, slack);
    }
    uint64_t total = 0;
    for (uint32_t i = 0; i < pe.nslack; i++) total += pe.slack[i].len;
    printf("imports: %u DLLs, %u functions\n", pe.nimports, pe.nfuncs);
    printf("slack: %u regions, %llu bytes; overlay: %llu bytes at offset %llu of %zu\n", pe.nslack,
           (unsigned long long)total, (unsigned long long)(len - pe.overlay_off),
           (unsigned long long)pe.overlay_off, len);
    tsr_pe_free(&pe);
    tsr_free(buf);
    return 0;
}

/* ---- attack payload ------------------------------------------------------- */

static const char payload_help[] =
    "usage: tessera attack payload --model MODEL --corpus DIR --out-dir DIR [options]\n\n"
    "The payload attack of Kreuk et al. (arXiv 1802.04528) on the flagged files of a\n"
    "split that the detector flags: for every placement, payload size and number of\n"
    "steps, the evasion rate (score under the threshold), bytes placed, entropy.\n"
    "Every attacked file passes the structural check (attacks/pe.h).\n\n"
    "  --places LIST       overlay,slack (both)\n"
    "  --sizes LIST        payload bytes (500,1000,2000,5000,10000)\n"
    "  --steps LIST        gradient steps: 1 = FGSM (1,20)\n"
    "  --eps X             step per embedding coordinate (1.0)\n"
    "  --threshold X       operating threshold (0.5)\n"
    "  --split NAME        files attacked: test | train (test)\n"
    "  --limit N           at most N files (all)\n"
    "  --universal-size N  universal overlay payload bytes, 0 = none (2000)\n"
    "  --universal-files N training-split flagged files it is optimised on (40)\n"
    "  --universal-steps N its steps (20; greedy byte steps with --greedy)\n"
    "  --universal-align   start the universal payload at the first 500-byte window\n"
    "                      boundary after the file (zero filler before it), so its whole\n"
    "                      windows do not depend on the file\n"
    "  --routed            route the gradient of filters that a payload window could win\n"
    "                      to their best payload window (attacks/malconv.h)\n"
    "  --greedy            greedy byte step (the byte lowering the linearised logit most)\n"
    "                      instead of the paper's sign step + nearest byte\n"
    "  --no-stop           take every step even after evading (default: stop at the first\n"
    "                      evading step); either way the payload with the lowest score\n"
    "                      seen is returned\n"
    "  --save              keep the attacked files of the largest size and most steps\n"
    "                      in OUT/attacked/<place>/ (for the run under wine)\n"
    "  --seed S --threads N\n\n"
    "Outputs in OUT: results.csv (one line per file and setting), summary.csv,\n"
    "evasion.svg, universal.csv, entropy.csv (replaced if present).\n";

#define MAXLIST 16

static int parse_list(const char *verb, const char *what, const char *s, long *v, int *n, long lo,
                      long hi) {
    char buf[256];
    if (strlen(s) >= sizeof buf) return cli_usage_error(verb, "--%s list too long", what);
    snprintf(buf, sizeof buf, "%s", s);
    *n = 0;
    for (char *save = NULL, *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        if (*n >= MAXLIST) return cli_usage_error(verb, "--%s: at most %d values", what, MAXLIST);
        if (cli_parse_long(t, lo, hi, &v[*n]))
            return cli_usage_error(verb, "--%s: '%s' is not a whole number in [%ld, %ld]", what, t,
                                   lo, hi);
        (*n)++;
    }
    if (*n == 0) return cli_usage_error(verb, "--%s is empty", what);
    return 0;
}

typedef struct run_row {
    const tsr_corpus_file *f;
    tsr_payload_result r;
    tsr_status st;
    char err[200]; /* the worker thread's error detail */
} run_row;

static int mkdir_p(const char *verb, const char *path) {
    char cmd[4200];
    if (mkdir(path, 0755) != 0 && errno != EEXIST) {
        snprintf(cmd, sizeof cmd, "cannot create directory '%s'", path);
        return cli_fail(verb, TSR_ERR_IO, cmd);
    }
    return 0;
}

static tsr_status score_one(const tsr_malconv *m, const uint8_t *b, size_t n, float *score) {
    tsr_malconv_ws *ws;
    TSR_TRY(tsr_malconv_ws_create(&ws, m));
    float logit;
    tsr_status st = tsr_malconv_forward_bytes(m, ws, b, n, &logit);
    tsr_malconv_ws_free(ws);
    *score = tsr_sigmoidf(logit);
    return st;
}

/* Entropy of the used bytes of benign files' data sections (.data, .rdata). */
static void data_section_entropy(const tsr_corpus *c, double *mean, double *lo, double *hi,
                                 size_t *count) {
    double sum = 0;
    *lo = 8, *hi = 0, *count = 0;
    for (size_t i = 0; i < c->n; i++) {
        if (c->f[i].label != 0) continue;
        tsr_pe pe;
        if (tsr_pe_parse(&pe, c->f[i].buf, c->f[i].len) != TSR_OK) continue;
        for (uint32_t k = 0; k < pe.nsections; k++) {
            const tsr_pe_section *s = &pe.sec[k];
            if (strcmp(s->name, ".data") != 0 && strcmp(s->name, ".rdata") != 0) continue;
            size_t used = s->vsize && s->vsize < s->raw_size ? s->vsize : s->raw_size;
            if (used < 256) continue;
            double e = tsr_byte_entropy(c->f[i].buf + s->raw_ptr, used);
            sum += e;
            *lo = e < *lo ? e : *lo;
            *hi = e > *hi ? e : *hi;
            (*count)++;
        }
        tsr_pe_free(&pe);
    }
    *mean = *count ? sum / (double)*count : 0;
}

static int cmd_payload(int argc, char **argv) {
    const char *verb = VERB " payload";
    const char *model = NULL, *corpus = NULL, *outdir = NULL, *places = "overlay,slack",
               *sizes = "500,1000,2000,5000,10000", *steps = "1,20", *split = "test";
    long limit = 0, seed = 1, threads = 0, usize = 2000, ufiles = 40, usteps = 20;
    double eps = 1.0, thr = 0.5;
    int save = 0, routed = 0, greedy = 0, no_stop = 0, ualign = 0;
    const cli_opt defs[] = {
        { "--universal-align", CLI_FLAG, &ualign, 0, 0 },
        { "--no-stop", CLI_FLAG, &no_stop, 0, 0 },
        { "--routed", CLI_FLAG, &routed, 0, 0 },
        { "--greedy", CLI_FLAG, &greedy, 0, 0 },
        { "--model", CLI_STR, &model, 0, 0 },
        { "--corpus", CLI_STR, &corpus, 0, 0 },
        { "--out-dir", CLI_STR, &outdir, 0, 0 },
        { "--places", CLI_STR, &places, 0, 0 },
        { "--sizes", CLI_STR, &sizes, 0, 0 },
        { "--steps", CLI_STR, &steps, 0, 0 },
        { "--split", CLI_STR, &split, 0, 0 },
        { "--limit", CLI_LONG, &limit, 1, 1 << 30 },
        { "--seed", CLI_LONG, &seed, 0, 2147483647 },
        { "--threads", CLI_LONG, &threads, 1, 4096 },
        { "--universal-size", CLI_LONG, &usize, 0, 1 << 20 },
        { "--universal-files", CLI_LONG, &ufiles, 1, 1 << 20 },
        { "--universal-steps", CLI_LONG, &usteps, 1, 100000 },
        { "--eps", CLI_DOUBLE, &eps, 0, 0 },
        { "--threshold", CLI_DOUBLE, &thr, 0, 0 },
        { "--save", CLI_FLAG, &save, 0, 0 },
    };
    int rc = cli_parse_args(verb, argc, argv, defs, sizeof defs / sizeof defs[0], NULL, 0);
    if (rc) return rc;
    if (!model || !corpus || !outdir)
        return cli_usage_error(verb, "--model, --corpus and --out-dir are required");
    if (!(eps > 0)) return cli_usage_error(verb, "--eps must be > 0");
    if (!(thr > 0 && thr < 1)) return cli_usage_error(verb, "--threshold must be in (0, 1)");
    tsr_split want;
    if (strcmp(split, "test") == 0)
        want = TSR_SPLIT_TEST;
    else if (strcmp(split, "train") == 0)
        want = TSR_SPLIT_TRAIN;
    else
        return cli_usage_error(verb, "--split must be test or train");
    long sz[MAXLIST], stp[MAXLIST];
    int nsz, nstp, npl = 0;
    tsr_place pl[TSR_PLACE_COUNT_];
    if ((rc = parse_list(verb, "sizes", sizes, sz, &nsz, 1, 1 << 20))) return rc;
    if ((rc = parse_list(verb, "steps", steps, stp, &nstp, 1, 100000))) return rc;
    {
        char buf[64];
        snprintf(buf, sizeof buf, "%s", places);
        for (char *save_p = NULL, *t = strtok_r(buf, ",", &save_p); t;
             t = strtok_r(NULL, ",", &save_p)) {
            if (npl >= TSR_PLACE_COUNT_ || tsr_place_parse(t, &pl[npl]) != TSR_OK)
                return cli_usage_error(verb, "--places: use overlay, slack or both");
            npl++;
        }
        if (npl == 0) return cli_usage_error(verb, "--places is empty");
    }
    if (threads) tsr_set_num_threads((int)threads);
    if ((rc = mkdir_p(verb, outdir))) return rc;
    char path[4096];
    tsr_malconv *m;
    tsr_status st = tsr_malconv_load(&m, model);
    if (st) return cli_fail(verb, st, "loading the model");
    tsr_corpus c;
    st = tsr_corpus_load(&c, corpus);
    if (st) {
        tsr_malconv_free(m);
        return cli_fail(verb, st, "loading the corpus");
    }
    /* The attacked set: flagged files of the split that the detector flags. */
    size_t nf = 0, nflagged = 0;
    const tsr_corpus_file **files = tsr_calloc_array(c.n + 1, sizeof *files);
    float *score = tsr_alloc((c.n + 1) * sizeof(float));
    tsr_detector_example *ex = tsr_calloc_array(c.n + 1, sizeof *ex);
    rc = files && score && ex ? 0 : cli_fail(verb, TSR_ERR_NOMEM, "setting up");
    for (size_t i = 0; !rc && i < c.n; i++)
        ex[i] = (tsr_detector_example){ c.f[i].buf, c.f[i].len, c.f[i].label };
    if (!rc && (st = tsr_detector_scores(m, ex, c.n, score))) rc = cli_fail(verb, st, "scoring");
    for (size_t i = 0; !rc && i < c.n; i++) {
        if (c.f[i].split != want || c.f[i].label != 1) continue;
        nflagged++;
        if (score[i] >= thr && (!limit || (long)nf < limit)) files[nf++] = &c.f[i];
    }
    if (!rc && nf == 0) rc = cli_fail(verb, TSR_ERR_INVALID_ARG, "no flagged file is detected");
    if (!rc)
        printf("attacking %zu of the %zu flagged %s files (those the detector flags at %.2f)\n", nf,
               nflagged, split, thr);
    FILE *res = NULL, *sum = NULL;
    if (!rc) {
        snprintf(path, sizeof path, "%s/results.csv", outdir);
        res = fopen(path, "w");
        snprintf(path, sizeof path, "%s/summary.csv", outdir);
        sum = fopen(path, "w");
        if (!res || !sum) rc = cli_fail(verb, TSR_ERR_IO, "opening results.csv / summary.csv");
    }
    if (res)
        fprintf(res, "file,place,size,steps,placed,visible,score_before,score_after,evaded,"
                     "steps_taken,entropy,best_step,score_last\n");
    if (sum)
        fprintf(sum, "place,size,steps,files,evaded,evasion_rate,mean_placed,mean_entropy,"
                     "mean_score_after,best_not_last\n");
    tsr_chart chart;
    memset(&chart, 0, sizeof chart);
    snprintf(chart.title, sizeof chart.title, "Evasion rate of MalConv vs payload size (%zu files)",
             nf);
    snprintf(chart.xlabel, sizeof chart.xlabel, "payload bytes");
    snprintf(chart.ylabel, sizeof chart.ylabel, "evasion rate");
    chart.ymin = 0, chart.ymax = 1;
    run_row *rows = tsr_calloc_array(nf + 1, sizeof *rows);
    if (!rc && !rows) rc = cli_fail(verb, TSR_ERR_NOMEM, "results");
    double t0 = tsr_now();
    for (int ip = 0; !rc && ip < npl; ip++)
        for (int is = 0; !rc && is < nstp; is++) {
            tsr_chart_series *ser =
                chart.nseries < TSR_CHART_MAX_SERIES ? &chart.s[chart.nseries++] : NULL;
            if (ser)
                snprintf(ser->name, sizeof ser->name, "%s, %s", tsr_place_name(pl[ip]),
                         stp[is] == 1 ? "FGSM" : "iterative");
            if (ser && stp[is] != 1)
                snprintf(ser->name, sizeof ser->name, "%s, %ld steps", tsr_place_name(pl[ip]),
                         stp[is]);
            for (int iz = 0; !rc && iz < nsz; iz++) {
                int keep = save && iz == nsz - 1 && is == nstp - 1;
                if (keep) {
                    snprintf(path, sizeof path, "%s/attacked", outdir);
                    if ((rc = mkdir_p(verb, path))) break;
                    snprintf(path, sizeof path, "%s/attacked/%s", outdir, tsr_place_name(pl[ip]));
                    if ((rc = mkdir_p(verb, path))) break;
                }
                tsr_payload_cfg pc = { pl[ip],     (size_t)sz[iz], (int)stp[is],
                                       (float)eps, (float)thr,     (uint64_t)seed,
                                       routed,     greedy,         no_stop,
                                       0 };
#pragma omp parallel for schedule(dynamic, 1)
                for (size_t i = 0; i < nf; i++) {
                    uint8_t *out = NULL;
                    size_t out_len = 0;
                    rows[i].f = files[i];
                    rows[i].st = tsr_payload_attack(m, files[i]->buf, files[i]->len, &pc, &out,
                                                    &out_len, &rows[i].r);
                    if (rows[i].st == TSR_OK && keep) {
                        char fp[4200];
                        snprintf(fp, sizeof fp, "%s/attacked/%s/%s", outdir, tsr_place_name(pl[ip]),
                                 files[i]->name);
                        tsr_writer w;
                        tsr_status ws = tsr_writer_open_file(&w, fp, TSR_OUT_FORCE);
                        if (ws == TSR_OK) {
                            tsr_write_bytes(&w, out, out_len);
                            ws = tsr_writer_close(&w);
                        }
                        if (ws != TSR_OK) rows[i].st = ws;
                    }
                    if (rows[i].st != TSR_OK)
                        snprintf(rows[i].err, sizeof rows[i].err, "%s", tsr_last_error());
                    tsr_free(out);
                }
                size_t ev = 0, ok = 0, notlast = 0;
                double placed = 0, ent = 0, after = 0;
                for (size_t i = 0; i < nf; i++) {
                    const run_row *r = &rows[i];
                    if (r->st != TSR_OK) {
                        fprintf(stderr, "tessera %s: %s: %s\n", verb, r->f->name, r->err);
                        rc = 1;
                        continue;
                    }
                    ok++;
                    ev += (size_t)r->r.evaded;
                    placed += (double)r->r.payload_len;
                    ent += r->r.entropy;
                    after += r->r.score_after;
                    notlast += (size_t)(r->r.best_step != r->r.steps);
                    fprintf(res, "%s,%s,%ld,%ld,%zu,%zu,%.6f,%.6f,%d,%d,%.4f,%d,%.6f\n", r->f->name,
                            tsr_place_name(pl[ip]), sz[iz], stp[is], r->r.payload_len, r->r.visible,
                            r->r.score_before, r->r.score_after, r->r.evaded, r->r.steps,
                            r->r.entropy, r->r.best_step, r->r.score_last);
                }
                double rate = ok ? (double)ev / (double)ok : 0;
                fprintf(sum, "%s,%ld,%ld,%zu,%zu,%.4f,%.1f,%.4f,%.4f,%zu\n", tsr_place_name(pl[ip]),
                        sz[iz], stp[is], ok, ev, rate, ok ? placed / (double)ok : 0,
                        ok ? ent / (double)ok : 0, ok ? after / (double)ok : 0, notlast);
                printf("%-7s %6ld B %3ld steps: evaded %3zu of %3zu (%.1f %%), mean placed %.0f B, "
                       "entropy %.2f bits/byte  [%.0f s]\n",
                       tsr_place_name(pl[ip]), sz[iz], stp[is], ev, ok, 100 * rate,
                       ok ? placed / (double)ok : 0, ok ? ent / (double)ok : 0, tsr_now() - t0);
                fflush(stdout);
                if (ser && ser->n < TSR_CHART_MAX_POINTS) {
                    ser->x[ser->n] = (double)sz[iz];
                    ser->y[ser->n++] = rate;
                }
            }
        }
    if (res) fclose(res);
    if (sum) fclose(sum);
    if (!rc) {
        snprintf(path, sizeof path, "%s/evasion.svg", outdir);
        FILE *f = fopen(path, "w");
        if (!f)
            rc = cli_fail(verb, TSR_ERR_IO, "writing evasion.svg");
        else {
            tsr_chart_write_svg(&chart, f);
            fclose(f);
        }
    }
    /* Universal payload: optimised on training-split flagged files, tested on the attacked set. */
    if (!rc && usize > 0) {
        const uint8_t **ub = tsr_calloc_array((size_t)ufiles + 1, sizeof *ub);
        size_t *ul = tsr_calloc_array((size_t)ufiles + 1, sizeof *ul), nu = 0;
        uint8_t *pay = tsr_alloc((size_t)usize);
        if (!ub || !ul || !pay) rc = cli_fail(verb, TSR_ERR_NOMEM, "universal payload");
        for (size_t i = 0; !rc && i < c.n && nu < (size_t)ufiles; i++)
            if (c.f[i].split == TSR_SPLIT_TRAIN && c.f[i].label == 1 && score[i] >= thr) {
                ub[nu] = c.f[i].buf;
                ul[nu++] = c.f[i].len;
            }
        tsr_payload_cfg pc = {
            TSR_PLACE_OVERLAY, (size_t)usize, (int)usteps, (float)eps, (float)thr,
            (uint64_t)seed,    routed,        greedy,      0,          ualign
        };
        tsr_universal_info ui;
        memset(&ui, 0, sizeof ui);
        if (!rc && nu == 0)
            rc = cli_fail(verb, TSR_ERR_INVALID_ARG, "no training file for the universal payload");
        if (!rc && (st = tsr_payload_universal(m, ub, ul, nu, &pc, pay, &ui)))
            rc = cli_fail(verb, st, "universal payload");
        if (!rc)
            printf("universal %ld B payload%s: best of %ld steps is step %d, evading on %zu of %zu "
                   "training files (mean score %.4f)\n",
                   usize, ualign ? " (window-aligned)" : "", usteps, ui.best_step, ui.train_evaded,
                   ui.train_files, ui.train_mean_score);
        /* test on the held-out attacked set: overlay as optimised (after the alignment filler
           with --universal-align), 1..499 more filler bytes (other window offsets), two more
           whole windows of filler (1000 bytes: the same offset in the window), slack */
        enum { NHOW = 4 };
        static const char *const how[NHOW] = { "overlay", "overlay+shift", "overlay+1000",
                                               "slack" };
        size_t evd[NHOW] = { 0 }, tot[NHOW] = { 0 };
        if (!rc && save) {
            snprintf(path, sizeof path, "%s/attacked", outdir);
            if (!(rc = mkdir_p(verb, path))) {
                snprintf(path, sizeof path, "%s/attacked/universal", outdir);
                rc = mkdir_p(verb, path);
            }
        }
        for (int h = 0; !rc && h < NHOW; h++) {
            int fail = 0;
#pragma omp parallel for schedule(dynamic, 1) reduction(+ : fail)
            for (size_t i = 0; i < nf; i++) {
                const tsr_corpus_file *f = files[i];
                size_t shift = ualign ? tsr_payload_align_filler(m, f->len) : 0, placed;
                shift += h == 1 ? 1 + (i * 97) % 499 : h == 2 ? 1000 : 0;
                uint8_t *tmp = tsr_alloc(shift + (size_t)usize), *out = NULL;
                size_t out_len;
                if (!tmp) {
                    fail++;
                    continue;
                }
                memset(tmp, 0, shift);
                memcpy(tmp + shift, pay, (size_t)usize);
                tsr_status s2 = tsr_payload_place(
                    f->buf, f->len, h == 3 ? TSR_PLACE_SLACK : TSR_PLACE_OVERLAY,
                    h == 3 ? pay : tmp, h == 3 ? (size_t)usize : shift + (size_t)usize, &out,
                    &out_len, &placed);
                tsr_free(tmp);
                if (s2 != TSR_OK) {
                    fail++;
                    continue;
                }
                float s1;
                if (score_one(m, out, out_len, &s1) != TSR_OK)
                    fail++;
                else {
#pragma omp atomic
                    evd[h] += s1 < thr;
#pragma omp atomic
                    tot[h] += 1;
                }
                if (h == 0 && save) { /* for the transfer and wine64 checks */
                    char fp[4200];
                    snprintf(fp, sizeof fp, "%s/attacked/universal/%s", outdir, f->name);
                    tsr_writer w;
                    tsr_status ws = tsr_writer_open_file(&w, fp, TSR_OUT_FORCE);
                    if (ws == TSR_OK) {
                        tsr_write_bytes(&w, out, out_len);
                        ws = tsr_writer_close(&w);
                    }
                    fail += ws != TSR_OK;
                }
                tsr_free(out);
            }
            if (fail) rc = cli_fail(verb, TSR_ERR_IO, "testing the universal payload");
        }
        if (!rc) {
            snprintf(path, sizeof path, "%s/universal.csv", outdir);
            FILE *f = fopen(path, "w");
            if (!f)
                rc = cli_fail(verb, TSR_ERR_IO, "writing universal.csv");
            else {
                fprintf(f, "placement,size,steps,aligned,train_files,train_evaded,best_step,"
                           "test_files,evaded,evasion_rate,entropy\n");
                double ue = tsr_byte_entropy(pay, (size_t)usize);
                for (int h = 0; h < NHOW; h++) {
                    fprintf(f, "%s,%ld,%ld,%d,%zu,%zu,%d,%zu,%zu,%.4f,%.4f\n", how[h], usize,
                            usteps, ualign, ui.train_files, ui.train_evaded, ui.best_step, tot[h],
                            evd[h], tot[h] ? (double)evd[h] / (double)tot[h] : 0, ue);
                    printf(
                        "universal %ld B payload (%zu training files, %ld steps) on %zu held-out "
                        "files, %-13s: evaded %zu (%.1f %%), entropy %.2f\n",
                        usize, nu, usteps, tot[h], how[h], evd[h],
                        tot[h] ? 100.0 * (double)evd[h] / (double)tot[h] : 0, ue);
                }
                fclose(f);
            }
        }
        tsr_free(ub);
        tsr_free(ul);
        tsr_free(pay);
    }
    if (!rc) {
        double mean, lo, hi;
        size_t cnt;
        data_section_entropy(&c, &mean, &lo, &hi, &cnt);
        snprintf(path, sizeof path, "%s/entropy.csv", outdir);
        FILE *f = fopen(path, "w");
        if (!f)
            rc = cli_fail(verb, TSR_ERR_IO, "writing entropy.csv");
        else {
            fprintf(f, "what,count,mean,min,max\nbenign .data/.rdata sections,%zu,%.4f,%.4f,%.4f\n",
                    cnt, mean, lo, hi);
            fclose(f);
            printf("benign .data/.rdata sections: %zu, entropy mean %.2f (%.2f..%.2f) bits/byte\n",
                   cnt, mean, lo, hi);
        }
    }
    tsr_free(rows);
    tsr_free(files);
    tsr_free(score);
    tsr_free(ex);
    tsr_corpus_free(&c);
    tsr_malconv_free(m);
    return rc;
}

/* ---- attack mlp: the second detector and transfer ------------------------------ */

static const char mlp_help[] =
    "usage: tessera attack mlp --corpus DIR [--attacked DIR[,DIR...]] [options]\n\n"
    "Train the second detector (attacks/features.h: byte histogram + PE header and section\n"
    "features -> dense -> ReLU -> dense 2, on the training engine) on DIR's training split,\n"
    "report it on both splits, then score the attacked files in each --attacked directory\n"
    "(tessera attack payload --save: OUT/attacked/<place>/, named like the originals):\n"
    "transfer = the share of the originals this detector flags whose attacked copy it\n"
    "no longer flags.\n\n"
    "  --hidden N      units (64)\n"
    "  --epochs N      (40)\n"
    "  --lr X          Adam learning rate (0.001)\n"
    "  --seed S        (1)\n"
    "  --threshold X   operating threshold (0.5)\n"
    "  --report CSV    metrics and transfer as CSV\n"
    "  --threads N --force\n";

static int cmd_mlp(int argc, char **argv) {
    const char *verb = VERB " mlp";
    const char *corpus = NULL, *attacked = NULL, *csv = NULL;
    long hidden = 64, epochs = 40, seed = 1, threads = 0;
    double lr = 1e-3, thr = 0.5;
    int force = 0;
    const cli_opt defs[] = {
        { "--corpus", CLI_STR, &corpus, 0, 0 },       { "--attacked", CLI_STR, &attacked, 0, 0 },
        { "--report", CLI_STR, &csv, 0, 0 },          { "--hidden", CLI_LONG, &hidden, 1, 4096 },
        { "--epochs", CLI_LONG, &epochs, 1, 100000 }, { "--seed", CLI_LONG, &seed, 0, 2147483647 },
        { "--threads", CLI_LONG, &threads, 1, 4096 }, { "--lr", CLI_DOUBLE, &lr, 0, 0 },
        { "--threshold", CLI_DOUBLE, &thr, 0, 0 },    { "--force", CLI_FLAG, &force, 0, 0 },
    };
    int rc = cli_parse_args(verb, argc, argv, defs, sizeof defs / sizeof defs[0], NULL, 0);
    if (rc) return rc;
    if (!corpus) return cli_usage_error(verb, "--corpus DIR is required");
    if (!(lr > 0) || lr > 1) return cli_usage_error(verb, "--lr must be in (0, 1]");
    if (!(thr > 0 && thr < 1)) return cli_usage_error(verb, "--threshold must be in (0, 1)");
    if (attacked && strlen(attacked) >= 4096) return cli_usage_error(verb, "--attacked too long");
    if (threads) tsr_set_num_threads((int)threads);
    FILE *out = NULL;
    cli_output rep = { csv, 0, NULL };
    tsr_outset set;
    int opened = 0;
    if (csv) {
        struct stat sb;
        if (!force && stat(csv, &sb) == 0)
            return cli_usage_error(verb, "'%s' exists (use --force to replace it)", csv);
        rc = cli_outputs_check(verb, &rep, 1, NULL, 0, force);
        if (rc) return rc;
    }
    tsr_corpus c;
    tsr_status st = tsr_corpus_load(&c, corpus);
    if (st) return cli_fail(verb, st, "loading the corpus");
    size_t n1 = c.n + 1, ntr = 0;
    tsr_detector_example *ex = tsr_calloc_array(n1, sizeof *ex),
                         *tr = tsr_calloc_array(n1, sizeof *tr);
    float *sc = tsr_alloc(n1 * sizeof(float)), *sub = tsr_alloc(n1 * sizeof(float));
    int *lab = tsr_alloc(n1 * sizeof(int));
    tsr_feat_mlp *f = NULL;
    if (!ex || !tr || !sc || !sub || !lab) rc = cli_fail(verb, TSR_ERR_NOMEM, "setting up");
    for (size_t i = 0; !rc && i < c.n; i++) {
        ex[i] = (tsr_detector_example){ c.f[i].buf, c.f[i].len, c.f[i].label };
        if (c.f[i].split == TSR_SPLIT_TRAIN) tr[ntr++] = ex[i];
    }
    tsr_feat_mlp_cfg mc = tsr_feat_mlp_defaults();
    mc.hidden = (int)hidden, mc.epochs = (int)epochs, mc.lr = (float)lr, mc.seed = (uint64_t)seed;
    double t0 = tsr_now();
    if (!rc && (st = tsr_feat_mlp_train(&f, tr, ntr, &mc))) rc = cli_fail(verb, st, "training");
    if (!rc && (st = tsr_feat_mlp_scores(f, ex, c.n, sc))) rc = cli_fail(verb, st, "scoring");
    if (!rc && csv && !(rc = cli_outputs_open(verb, &set, &rep, 1, force)))
        opened = 1, out = rep.fp;
    if (!rc) {
        printf("feature MLP (%d features, %ld hidden) trained on %zu files in %.1f s\n",
               TSR_FEAT_DIM, hidden, ntr, tsr_now() - t0);
        printf("split  files flagged clean  accuracy  ROC-AUC  TPR     FPR     (threshold %.3f)\n",
               thr);
        if (out) fprintf(out, "what,files,flagged,clean,accuracy,auc,tpr,fpr,evaded,transfer\n");
        static const char *const names[2] = { "train", "test" };
        for (int s = 0; s < 2; s++) {
            size_t k = 0;
            for (size_t i = 0; i < c.n; i++)
                if ((int)c.f[i].split == s) sub[k] = sc[i], lab[k++] = c.f[i].label;
            tsr_detector_metrics met;
            tsr_detector_metrics_compute(sub, lab, k, thr, &met);
            printf("%-6s %5zu %7zu %5zu  %.4f    %.4f   %.4f  %.4f\n", names[s], met.n, met.pos,
                   met.neg, met.accuracy, met.auc, met.tpr, met.fpr);
            if (out)
                fprintf(out, "%s,%zu,%zu,%zu,%.6f,%.6f,%.6f,%.6f,,\n", names[s], met.n, met.pos,
                        met.neg, met.accuracy, met.auc, met.tpr, met.fpr);
        }
    }
    /* transfer: attacked copies named like corpus files */
    char list[4096];
    snprintf(list, sizeof list, "%s", attacked ? attacked : "");
    for (char *save = NULL, *d = strtok_r(list, ",", &save); !rc && d;
         d = strtok_r(NULL, ",", &save)) {
        size_t flagged = 0, evaded = 0, seen = 0;
        double before = 0, after = 0;
        for (size_t i = 0; !rc && i < c.n; i++) {
            char path[4400];
            snprintf(path, sizeof path, "%s/%s", d, c.f[i].name);
            struct stat sb;
            if (stat(path, &sb) != 0) continue;
            uint8_t *b;
            size_t len;
            st = tsr_read_whole_file(path, TSR_CORPUS_MAX_FILE, "an attacked file", &b, &len);
            if (st) {
                rc = cli_fail(verb, st, "reading attacked files");
                break;
            }
            tsr_detector_example a = { b, len, 1 };
            float s1;
            st = tsr_feat_mlp_scores(f, &a, 1, &s1);
            tsr_free(b);
            if (st) {
                rc = cli_fail(verb, st, "scoring");
                break;
            }
            seen++;
            before += sc[i], after += s1;
            if (sc[i] >= thr) {
                flagged++;
                evaded += s1 < thr;
            }
        }
        if (rc) break;
        if (!seen) {
            st = tsr_fail(TSR_ERR_NOT_FOUND, "no file in '%s' is named like a corpus file", d);
            rc = cli_fail(verb, st, "transfer");
            break;
        }
        double tr_rate = flagged ? (double)evaded / (double)flagged : 0;
        printf("transfer %s: %zu attacked files; flagged originals %zu, no longer flagged %zu "
               "(%.1f %%); mean score %.4f -> %.4f\n",
               d, seen, flagged, evaded, 100 * tr_rate, before / (double)seen,
               after / (double)seen);
        if (out) fprintf(out, "%s,%zu,%zu,,,,,,%zu,%.6f\n", d, seen, flagged, evaded, tr_rate);
    }
    /* on an error (already printed) no report is left behind */
    if (opened && rc)
        tsr_outset_abort(&set);
    else if (opened)
        rc = cli_outputs_commit(verb, &set, TSR_OK, csv);
    tsr_feat_mlp_free(f);
    tsr_free(ex), tsr_free(tr), tsr_free(sc), tsr_free(sub), tsr_free(lab);
    tsr_corpus_free(&c);
    return rc;
}

int tsr_cmd_attack(int argc, char **argv) {
    if (argc < 2) {
        help_attack(stderr);
        return 2;
    }
    const char *sub = argv[1];
    int help = cli_wants_help(argc - 1, argv + 1);
    if (strcmp(sub, "-h") == 0 || strcmp(sub, "--help") == 0 || strcmp(sub, "help") == 0) {
        help_attack(stdout);
        return 0;
    }
    if (strcmp(sub, "train") == 0) {
        if (help) return fputs(train_help, stdout), 0;
        return cmd_train(argc - 1, argv + 1);
    }
    if (strcmp(sub, "eval") == 0) {
        if (help) return fputs(eval_help, stdout), 0;
        return cmd_eval(argc - 1, argv + 1);
    }
    if (strcmp(sub, "payload") == 0) {
        if (help) return fputs(payload_help, stdout), 0;
        return cmd_payload(argc - 1, argv + 1);
    }
    if (strcmp(sub, "mlp") == 0) {
        if (help) return fputs(mlp_help, stdout), 0;
        return cmd_mlp(argc - 1, argv + 1);
    }
    if (strcmp(sub, "pe") == 0) {
        if (help) {
            printf("usage: tessera attack pe FILE\n\nPrint what the PE reader sees: headers, "
                   "sections, imports, overlay and slack (docs/MALWARE.md).\n");
            return 0;
        }
        return cmd_pe(argc - 1, argv + 1);
    }
    fprintf(stderr, "tessera attack: unknown subcommand '%s'\n\n", sub);
    help_attack(stderr);
    return 2;
}
