/*
 * cli/cmd_fl.c - `tessera fl`: the Byzantine-robust distributed-learning lab
 * (src/fl). `fl run` trains one configuration (n workers, m corrupt, an
 * attack, a defence) and writes its accuracy history; `fl sweep` runs a grid
 * of defences x attacks and writes a markdown + CSV table and SVG plots;
 * `fl zmax` prints ALIE's z_max for n and m.
 */
#include "cli.h"
#include "core/alloc.h"
#include "core/progress.h"
#include "fl/report.h"
#include "fl/sim.h"
#include "cli_mpi.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define VERB "fl"

typedef struct fl_opts {
    long workers, corrupt, f, rounds, batch, eval_every, threads, seeds;
    long beta, keep, mkrum, cc_iters;
    double lr, momentum, z, scale, tau, bd_fraction;
    int has_z, non_iid, resume, mpi;
    const char *defense, *attack, *dataset, *model, *data_dir, *out, *out_dir;
    const char *defenses, *attacks;
    long seed;
} fl_opts;

static void opts_default(fl_opts *o) {
    memset(o, 0, sizeof *o);
    o->workers = 51;
    o->corrupt = 12;
    o->f = -1;
    o->rounds = 300;
    o->batch = 32;
    o->lr = 0.1;
    o->momentum = 0.9;
    o->seed = 1;
    o->seeds = 1;
    o->defense = "mean";
    o->attack = "none";
    o->dataset = "fashion-mnist";
    o->defenses = "mean,median,trimmed,trimmed-median,krum,multikrum,bulyan,cclip";
    o->attacks = "none,alie,signflip,gaussian,omniscient,backdoor";
}

static const char common_help[] =
    "  --workers N        workers n (51)\n"
    "  --corrupt M        corrupt workers m, the first m (12)\n"
    "  --f F              Byzantine workers the defence assumes (default: m)\n"
    "  --dataset NAME     fashion-mnist | synthetic (fashion-mnist)\n"
    "  --model NAME       fashion-mnist: mlp | cnn (mlp); synthetic: linear\n"
    "  --data-dir DIR     Fashion-MNIST .gz files (/usr/share/datasets/fashion-mnist)\n"
    "  --rounds R         server steps (300)\n"
    "  --batch B          minibatch per worker (32)\n"
    "  --lr X             server learning rate (0.1)\n"
    "  --momentum X       server momentum (0.9)\n"
    "  --non-iid          shard the training set by label instead of IID\n"
    "  --seed S           seed of everything random (1)\n"
    "  --eval-every K     evaluate every K rounds (rounds/20)\n"
    "  --threads T        OpenMP threads (all)\n"
    "  --z Z              ALIE / backdoor deviations (default z_max from n and m)\n"
    "  --attack-scale X   signflip factor (4), gaussian std (200), omniscient factor (1),\n"
    "                     backdoor boost before clipping (1)\n"
    "  --bd-fraction X    backdoor: poisoned share of a corrupt minibatch (0.5)\n"
    "  --beta B           trimmed: values dropped per end (f)\n"
    "  --keep K           trimmed-median: values kept around the median (n-f-1)\n"
    "  --mkrum K          multikrum: vectors averaged (n-f)\n"
    "  --tau X            cclip: clipping radius (1)\n"
    "  --cc-iters L       cclip: iterations (1)\n"
    "\n"
    "defences: mean median trimmed trimmed-median krum multikrum bulyan cclip\n"
    "attacks:  none alie backdoor signflip gaussian omniscient\n";

static void help_run(void) {
    printf(
        "usage: tessera fl run [options] [--out run.csv]\n\n"
        "Synchronous distributed SGD with a parameter server and n workers, the first m\n"
        "corrupt, under one attack and one aggregation rule (Baruch et al., \"A Little Is\n"
        "Enough\", NeurIPS 2019). Writes the test-accuracy history as CSV (columns round,\n"
        "accuracy, backdoor, honest_loss, corrupt_selected, seconds).\n\n"
        "  --defense RULE     aggregation rule (mean)\n"
        "  --attack KIND      attack of the corrupt workers (none)\n"
        "  --out FILE         history CSV\n"
        "  --mpi              under mpirun -n K: the workers spread over the K ranks (worker\n"
        "                     i on rank i %% K), attack, aggregation and evaluation at rank 0;\n"
        "                     the same numbers as one process (docs/SCALING.md)\n%s"
        "\nexample:\n  tessera fl run --workers 51 --corrupt 12 --defense krum --attack alie \\\n"
        "      --dataset fashion-mnist --model mlp --rounds 300 --seed 1 --out run.csv\n",
        common_help);
}

static void help_sweep(void) {
    printf(
        "usage: tessera fl sweep --out-dir DIR [options]\n\n"
        "Run every defence x attack of a grid (each for --seeds seeds) and write\n"
        "  DIR/results.md       tables of final test accuracy (mean over seeds), backdoor\n"
        "                       success, and the share of corrupt vectors Krum-like rules kept\n"
        "  DIR/results.csv      one line per run\n"
        "  DIR/runs/*.csv       each run's history\n"
        "  DIR/sweep.conf       the settings every run of the grid shares (checked by --resume)\n"
        "  DIR/acc_<attack>.svg accuracy vs round, one line per defence\n"
        "  DIR/backdoor.svg     backdoor success vs round (if backdoor is in the grid)\n\n"
        "  --defenses LIST     comma-separated (all eight)\n"
        "  --attacks LIST      comma-separated (none,alie,signflip,gaussian,omniscient,backdoor)\n"
        "  --seeds K           seeds S, S+1, ..., S+K-1 per cell (1)\n"
        "  --resume            keep the runs DIR/results.csv and DIR/runs/ already hold for this\n"
        "                      grid (same n, m, f, rounds and DIR/sweep.conf), run only the\n"
        "                      rest; other runs in results.csv stay (the tables show this "
        "grid)\n%s",
        common_help);
}

static void help_fl(FILE *out) {
    fprintf(out, "usage: tessera fl <run|sweep|zmax> [options]   (tessera fl <cmd> --help)\n\n"
                 "Byzantine-robust distributed learning lab: the \"A Little Is Enough\" attack\n"
                 "and classic attacks against robust aggregation rules.\n\n"
                 "  run     train one configuration, write its accuracy history\n"
                 "  sweep   a grid of defences x attacks: markdown/CSV tables and SVG plots\n"
                 "  zmax    ALIE's z_max for --workers n and --corrupt m\n");
}

/* ---- option parsing ------------------------------------------------------ */

/* argv[0] is the subcommand (like a verb's argv[0]); the options follow. */
static int parse_opts(int argc, char **argv, const char *sub, fl_opts *o) {
    o->z = NAN; /* --z given or not */
    const cli_opt defs[] = {
        { "--workers", CLI_LONG, &o->workers, 1, 100000 },
        { "--corrupt", CLI_LONG, &o->corrupt, 0, 100000 },
        { "--f", CLI_LONG, &o->f, 0, 100000 },
        { "--rounds", CLI_LONG, &o->rounds, 1, 100000000 },
        { "--batch", CLI_LONG, &o->batch, 1, 1 << 20 },
        { "--eval-every", CLI_LONG, &o->eval_every, 1, 100000000 },
        { "--threads", CLI_LONG, &o->threads, 1, 4096 },
        { "--seeds", CLI_LONG, &o->seeds, 1, 1000 },
        { "--seed", CLI_LONG, &o->seed, 0, 2147483647 },
        { "--beta", CLI_LONG, &o->beta, 1, 100000 },
        { "--keep", CLI_LONG, &o->keep, 1, 100000 },
        { "--mkrum", CLI_LONG, &o->mkrum, 1, 100000 },
        { "--cc-iters", CLI_LONG, &o->cc_iters, 1, 1000 },
        { "--lr", CLI_DOUBLE, &o->lr, 0, 0 },
        { "--momentum", CLI_DOUBLE, &o->momentum, 0, 0 },
        { "--z", CLI_DOUBLE, &o->z, 0, 0 },
        { "--attack-scale", CLI_DOUBLE, &o->scale, 0, 0 },
        { "--tau", CLI_DOUBLE, &o->tau, 0, 0 },
        { "--bd-fraction", CLI_DOUBLE, &o->bd_fraction, 0, 0 },
        { "--defense", CLI_STR, &o->defense, 0, 0 },
        { "--attack", CLI_STR, &o->attack, 0, 0 },
        { "--dataset", CLI_STR, &o->dataset, 0, 0 },
        { "--model", CLI_STR, &o->model, 0, 0 },
        { "--data-dir", CLI_STR, &o->data_dir, 0, 0 },
        { "--out", CLI_STR, &o->out, 0, 0 },
        { "--out-dir", CLI_STR, &o->out_dir, 0, 0 },
        { "--defenses", CLI_STR, &o->defenses, 0, 0 },
        { "--attacks", CLI_STR, &o->attacks, 0, 0 },
        { "--non-iid", CLI_FLAG, &o->non_iid, 0, 0 },
        { "--resume", CLI_FLAG, &o->resume, 0, 0 },
        { "--mpi", CLI_FLAG, &o->mpi, 0, 0 }, /* fl run only: cli/mpi.c */
    };
    char verb[32];
    snprintf(verb, sizeof verb, VERB " %s", sub);
    int rc = cli_parse_args(verb, argc, argv, defs, sizeof defs / sizeof defs[0], NULL, 0);
    if (rc) return rc;
    o->has_z = !isnan(o->z);
    if (!o->has_z) o->z = 0;
    if (o->corrupt >= o->workers)
        return cli_usage_error(verb,
                               "--corrupt %ld must be smaller than --workers %ld (at least one "
                               "honest worker)",
                               o->corrupt, o->workers);
    if (o->eval_every > o->rounds)
        return cli_usage_error(verb, "--eval-every %ld exceeds --rounds %ld", o->eval_every,
                               o->rounds);
    if (o->scale < 0)
        return cli_usage_error(verb, "--attack-scale must be > 0 (0 means the default)");
    if (o->threads) tsr_set_num_threads((int)o->threads);
    return 0;
}

/* Fill a config from the options for one (defence, attack, seed); errors -> exit code. */
static int make_config(const char *verb, const fl_opts *o, const char *defense, const char *attack,
                       long seed, tsr_fl_config *c) {
    memset(c, 0, sizeof *c);
    c->workers = (size_t)o->workers;
    c->corrupt = (size_t)o->corrupt;
    c->rounds = (size_t)o->rounds;
    c->batch = (size_t)o->batch;
    c->lr = o->lr;
    c->momentum = o->momentum;
    c->non_iid = o->non_iid;
    c->eval_every = (size_t)o->eval_every;
    c->seed = (uint64_t)seed;
    c->bd_fraction = o->bd_fraction;
    tsr_status st = tsr_fl_rule_parse(defense, &c->agg.rule);
    if (st) return cli_fail(verb, st, "--defense");
    c->agg.f = o->f >= 0 ? (size_t)o->f : (size_t)o->corrupt;
    c->agg.beta = (size_t)o->beta;
    c->agg.keep = (size_t)o->keep;
    c->agg.mkrum = (size_t)o->mkrum;
    c->agg.tau = o->tau;
    c->agg.cc_iters = (int)o->cc_iters;
    st = tsr_fl_attack_parse(attack, &c->attack.kind);
    if (st) return cli_fail(verb, st, "--attack");
    c->attack.has_z = o->has_z;
    c->attack.z = o->z;
    c->attack.scale = o->scale;
    return 0;
}

static const char *default_data_dir(const fl_opts *o) {
    return o->data_dir ? o->data_dir : "/usr/share/datasets/fashion-mnist";
}

/* ---- fl run ------------------------------------------------------------- */

typedef struct run_cb {
    tsr_progress *prog;
    uint64_t base; /* rounds done by earlier runs (sweep) */
    double last_acc;
    char what[96];
} run_cb;

static int on_round(void *user, size_t round, const tsr_fl_eval *e) {
    run_cb *u = user;
    if (e) u->last_acc = e->accuracy;
    tsr_progress_update(u->prog, u->base + round, "%s acc %.4f", u->what, u->last_acc);
    return 0;
}

static int cmd_run(int argc, char **argv) {
    const char *verb = VERB " run";
    fl_opts o;
    opts_default(&o);
    int rc = parse_opts(argc, argv, "run", &o);
    if (rc) return rc;
    tsr_fl_config c;
    rc = make_config(verb, &o, o.defense, o.attack, o.seed, &c);
    if (rc) return rc;
    tsr_fl_problem *prob = NULL;
    tsr_status st =
        tsr_fl_problem_open(o.dataset, o.model, default_data_dir(&o), (uint64_t)o.seed, &prob);
    if (st) return cli_fail(verb, st, "opening the dataset");
    st = tsr_fl_config_check(&c, prob);
    if (st) {
        tsr_fl_problem_close(prob);
        return cli_fail(verb, st, "configuration");
    }
    tsr_fl_comm comm; /* --mpi: workers over the ranks of an MPI job (cli/mpi.c) */
    if (o.mpi && (rc = cli_mpi_fl_begin(verb, &comm)) != 0) {
        tsr_fl_problem_close(prob);
        return rc;
    }
    c.comm = o.mpi ? &comm : NULL;
    tsr_progress prog;
    run_cb u = { .prog = &prog, .last_acc = NAN };
    snprintf(u.what, sizeof u.what, "%s/%s", o.defense, o.attack);
    if (!o.mpi || comm.rank == 0) tsr_progress_begin(&prog, "fl run", c.rounds, "round");
    tsr_fl_result res;
    st = tsr_fl_run(&c, prob, on_round, &u, NULL, &res);
    if (st || (o.mpi && comm.rank != 0)) { /* a worker rank has no history */
        tsr_fl_problem_close(prob);
        rc = st ? cli_fail(verb, st, "training") : 0;
        return o.mpi ? cli_mpi_end(rc) : rc;
    }
    const tsr_fl_eval *last = &res.evals[res.n_evals - 1];
    tsr_progress_end(&prog, "acc %.4f", last->accuracy);
    printf("fl run: %s, n=%zu m=%zu, defence %s (f=%zu), attack %s", prob->name, c.workers,
           c.corrupt, o.defense, c.agg.f, o.attack);
    if (!isnan(res.z)) printf(" (z=%.4f)", res.z);
    printf("\nfinal test accuracy %.4f after %zu rounds", last->accuracy, last->round);
    if (c.attack.kind == TSR_FL_ATTACK_BACKDOOR)
        printf(", backdoor success %.4f", last->backdoor);
    else if (!isnan(last->backdoor))
        printf(", trigger->target baseline %.4f", last->backdoor);
    if (!isnan(last->corrupt_selected))
        printf(", corrupt share of selected %.3f", last->corrupt_selected);
    printf("\n%.1f s (%.1f ms/round, %d threads)\n", res.seconds,
           1e3 * res.seconds / (double)last->round, tsr_get_num_threads());
    if (o.out) {
        st = tsr_fl_write_history_csv(o.out, &res);
        if (st) rc = cli_fail(verb, st, "writing --out");
    }
    tsr_fl_result_free(&res);
    tsr_fl_problem_close(prob);
    return o.mpi ? cli_mpi_end(rc) : rc;
}

/* ---- fl sweep ----------------------------------------------------------- */

#define MAX_GRID 16

static int split_list(const char *verb, const char *what, const char *s, char *buf, size_t bufn,
                      const char **items, int *n) {
    snprintf(buf, bufn, "%s", s);
    *n = 0;
    for (char *tok = strtok(buf, ","); tok; tok = strtok(NULL, ",")) {
        if (*n == MAX_GRID) return cli_usage_error(verb, "--%s: at most %d items", what, MAX_GRID);
        items[(*n)++] = tok;
    }
    if (*n == 0) return cli_usage_error(verb, "--%s is empty", what);
    return 0;
}

typedef struct cell {
    int ok; /* ran (else skipped: reason holds the message) */
    char reason[200];
    double acc[1000], bd[1000], sel[1000];
    double *hx, *hacc, *hbd; /* mean history over seeds */
    size_t hn;
} cell;

static double mean_of(const double *v, long n) {
    double s = 0;
    for (long i = 0; i < n; i++) s += v[i];
    return s / (double)n;
}

static double sd_of(const double *v, long n) {
    if (n < 2) return 0;
    double m = mean_of(v, n), s = 0;
    for (long i = 0; i < n; i++) s += (v[i] - m) * (v[i] - m);
    return sqrt(s / (double)(n - 1));
}

static void fmt_pct(char *buf, size_t n, const double *v, long k) {
    if (isnan(v[0])) {
        snprintf(buf, n, "–");
        return;
    }
    if (k > 1)
        snprintf(buf, n, "%.1f ± %.1f", 100 * mean_of(v, k), 100 * sd_of(v, k));
    else
        snprintf(buf, n, "%.1f", 100 * v[0]);
}

/* ---- sweep --resume ------------------------------------------------------ */

/* The settings a run depends on besides (defence, attack, seed, n, m, f, rounds), which
 * results.csv records per line. */
static void sweep_conf(const fl_opts *o, const char *dataset, char *buf, size_t n) {
    snprintf(buf, n,
             "dataset=%s batch=%ld lr=%.10g momentum=%.10g non_iid=%d eval_every=%ld threads=%d "
             "z=%s%.10g scale=%.10g bd_fraction=%.10g beta=%ld keep=%ld mkrum=%ld tau=%.10g "
             "cc_iters=%ld\n",
             dataset, o->batch, o->lr, o->momentum, o->non_iid, o->eval_every,
             tsr_get_num_threads(), o->has_z ? "" : "default:", o->has_z ? o->z : 0.0, o->scale,
             o->bd_fraction, o->beta, o->keep, o->mkrum, o->tau, o->cc_iters);
}

#define PRIOR_LINE 512
#define PRIOR_MAX  100000

typedef struct prior_run {
    char def[32], atk[32];
    long seed;
    int other, used; /* other: of another n, m, f or rounds; used: part of this grid */
    double acc, bd, sel, seconds;
    char line[PRIOR_LINE];
} prior_run;

/* Split a CSV line (no quoting: our own files) into at most nf fields, in place. */
static int csv_split(char *line, char **f, int nf) {
    int k = 0;
    line[strcspn(line, "\r\n")] = 0;
    for (char *p = line; k < nf;) {
        f[k++] = p;
        char *c = strchr(p, ',');
        if (!c) break;
        *c = 0;
        p = c + 1;
    }
    return k;
}

static int csv_num(const char *s, double *v) {
    if (!*s) {
        *v = NAN;
        return 0;
    }
    char *end;
    errno = 0;
    *v = strtod(s, &end);
    return (*end || errno || !isfinite(*v)) ? -1 : 0;
}

/* Read DIR/results.csv: the runs of this grid's (dataset, n, m, f, rounds). Lines of other
 * settings are dropped with a note; malformed files are an error. */
static int load_prior(const char *verb, const char *dir, const char *dataset, const fl_opts *o,
                      size_t f, prior_run **out, long *nout) {
    char path[4096], buf[PRIOR_LINE];
    *out = NULL;
    *nout = 0;
    snprintf(path, sizeof path, "%s/results.csv", dir);
    FILE *in = fopen(path, "r");
    if (!in) {
        if (errno == ENOENT) return 0;
        return cli_usage_error(verb, "cannot read '%s': %s", path, strerror(errno));
    }
    prior_run *v = NULL;
    long n = 0, cap = 0, lineno = 0, other = 0;
    int rc = 0;
    while (fgets(buf, sizeof buf, in)) {
        lineno++;
        if (!strchr(buf, '\n') && !feof(in)) {
            rc = cli_usage_error(verb, "%s:%ld: line too long", path, lineno);
            break;
        }
        if (lineno == 1) {
            if (strncmp(buf, "dataset,defense,attack,seed,", 28) != 0) {
                rc = cli_usage_error(verb, "%s: not a results.csv of tessera fl sweep", path);
                break;
            }
            continue;
        }
        if (n == PRIOR_MAX) {
            rc = cli_usage_error(verb, "%s: more than %d runs", path, PRIOR_MAX);
            break;
        }
        prior_run r;
        memset(&r, 0, sizeof r);
        snprintf(r.line, sizeof r.line, "%s", buf);
        char *fl[14];
        double num[13];
        int nf = csv_split(buf, fl, 14);
        int bad = nf != 13;
        for (int k = 3; !bad && k < 13; k++) bad = csv_num(fl[k], &num[k]) != 0;
        if (!bad)
            bad = strlen(fl[1]) >= sizeof r.def || strlen(fl[2]) >= sizeof r.atk || isnan(num[3]) ||
                  isnan(num[8]);
        if (bad) {
            rc = cli_usage_error(verb, "%s:%ld: malformed line", path, lineno);
            break;
        }
        if (strcmp(fl[0], dataset) != 0 || num[4] != (double)o->workers ||
            num[5] != (double)o->corrupt || num[6] != (double)f || num[7] != (double)o->rounds) {
            other++;
            r.other = 1;
        }
        snprintf(r.def, sizeof r.def, "%s", fl[1]);
        snprintf(r.atk, sizeof r.atk, "%s", fl[2]);
        r.seed = (long)num[3];
        r.acc = num[8];
        r.bd = num[9];
        r.sel = num[10];
        r.seconds = isnan(num[12]) ? 0 : num[12];
        if (n == cap) {
            long nc = cap ? 2 * cap : 64;
            prior_run *nv = realloc(v, (size_t)nc * sizeof *nv);
            if (!nv) {
                rc = cli_fail(verb, TSR_ERR_NOMEM, "reading results.csv");
                break;
            }
            v = nv;
            cap = nc;
        }
        v[n++] = r;
    }
    if (!rc && ferror(in)) rc = cli_usage_error(verb, "reading '%s' failed", path);
    fclose(in);
    if (rc) {
        free(v);
        return rc;
    }
    if (other)
        fprintf(stderr,
                "tessera %s: --resume: %ld runs of %s have another n, m, f or rounds: kept in "
                "the file, left out of the tables\n",
                verb, other, path);
    *out = v;
    *nout = n;
    return 0;
}

/* Read a run's history (DIR/runs/...csv) into e (at most cap points). -1 if unusable. */
static long load_history(const char *path, tsr_fl_eval *e, long cap) {
    FILE *in = fopen(path, "r");
    if (!in) return -1;
    char buf[512];
    long n = 0, lineno = 0;
    int bad = 0;
    while (!bad && fgets(buf, sizeof buf, in)) {
        if (lineno++ == 0) {
            bad = strncmp(buf, "round,accuracy,backdoor,", 24) != 0;
            continue;
        }
        char *fl[7];
        double num[6];
        bad = n == cap || csv_split(buf, fl, 7) != 6;
        for (int k = 0; !bad && k < 6; k++) bad = csv_num(fl[k], &num[k]) != 0;
        if (bad || isnan(num[0]) || num[0] < 0 || isnan(num[1])) {
            bad = 1;
            break;
        }
        e[n].round = (size_t)num[0];
        e[n].accuracy = num[1];
        e[n].backdoor = num[2];
        e[n].honest_loss = num[3];
        e[n].corrupt_selected = num[4];
        e[n].seconds = num[5];
        n++;
    }
    if (ferror(in)) bad = 1;
    fclose(in);
    return bad || n == 0 ? -1 : n;
}

static long find_prior(const prior_run *p, long n, const char *def, const char *atk, long seed) {
    for (long k = 0; k < n; k++)
        if (!p[k].other && p[k].seed == seed && strcmp(p[k].def, def) == 0 &&
            strcmp(p[k].atk, atk) == 0)
            return k;
    return -1;
}

static int cmd_sweep(int argc, char **argv) {
    const char *verb = VERB " sweep";
    fl_opts o;
    opts_default(&o);
    int rc = parse_opts(argc, argv, "sweep", &o);
    if (rc) return rc;
    if (!o.out_dir) return cli_usage_error(verb, "--out-dir DIR is required");
    if (o.mpi) return cli_usage_error(verb, "--mpi is an option of fl run only");
    char dbuf[512], abuf[512];
    const char *defs[MAX_GRID], *atks[MAX_GRID];
    int nd, na;
    if ((rc = split_list(verb, "defenses", o.defenses, dbuf, sizeof dbuf, defs, &nd))) return rc;
    if ((rc = split_list(verb, "attacks", o.attacks, abuf, sizeof abuf, atks, &na))) return rc;
    tsr_fl_config c;
    for (int i = 0; i < nd; i++)
        if ((rc = make_config(verb, &o, defs[i], "none", o.seed, &c))) return rc;
    for (int j = 0; j < na; j++)
        if ((rc = make_config(verb, &o, "mean", atks[j], o.seed, &c))) return rc;
    char path[4096];
    if (mkdir(o.out_dir, 0777) && errno != EEXIST)
        return cli_usage_error(verb, "cannot create '%s': %s", o.out_dir, strerror(errno));
    snprintf(path, sizeof path, "%s/runs", o.out_dir);
    if (mkdir(path, 0777) && errno != EEXIST)
        return cli_usage_error(verb, "cannot create '%s': %s", path, strerror(errno));

    tsr_fl_problem *prob = NULL;
    tsr_status st =
        tsr_fl_problem_open(o.dataset, o.model, default_data_dir(&o), (uint64_t)o.seed, &prob);
    if (st) return cli_fail(verb, st, "opening the dataset");
    cell *cells = tsr_calloc_array((size_t)(nd * na), sizeof(cell));
    if (!cells) {
        tsr_fl_problem_close(prob);
        return cli_fail(verb, TSR_ERR_NOMEM, "allocating the grid");
    }
    char conf[1024], oldconf[1024];
    sweep_conf(&o, prob->name, conf, sizeof conf);
    prior_run *prior = NULL;
    long nprior = 0;
    snprintf(path, sizeof path, "%s/sweep.conf", o.out_dir);
    if (o.resume) {
        FILE *cf = fopen(path, "r");
        if (cf) {
            size_t k = fread(oldconf, 1, sizeof oldconf - 1, cf);
            oldconf[k] = 0;
            fclose(cf);
            if (strcmp(oldconf, conf) != 0)
                rc = cli_usage_error(verb,
                                     "--resume: %s was made with other settings:\n  it has:  "
                                     "%s  this run: %s(use another --out-dir, or the same options)",
                                     path, oldconf, conf);
        } else {
            fprintf(stderr,
                    "tessera %s: --resume: no %s; assuming the runs in %s/results.csv used the "
                    "same batch, lr, momentum, sharding, attack and rule options as this command\n",
                    verb, path, o.out_dir);
        }
        if (!rc) {
            tsr_fl_config c0;
            make_config(verb, &o, defs[0], atks[0], o.seed, &c0);
            rc = load_prior(verb, o.out_dir, prob->name, &o, c0.agg.f, &prior, &nprior);
        }
        if (rc) {
            tsr_free(cells);
            tsr_fl_problem_close(prob);
            return rc;
        }
    }
    FILE *cfo = fopen(path, "w");
    if (!cfo || fputs(conf, cfo) < 0 || fclose(cfo)) {
        free(prior);
        tsr_free(cells);
        tsr_fl_problem_close(prob);
        return cli_usage_error(verb, "cannot write '%s'", path);
    }
    /* Count runnable cells for the progress total. */
    uint64_t total = 0;
    for (int i = 0; i < nd; i++)
        for (int j = 0; j < na; j++) {
            cell *ce = &cells[i * na + j];
            make_config(verb, &o, defs[i], atks[j], o.seed, &c);
            st = tsr_fl_config_check(&c, prob);
            ce->ok = st == TSR_OK;
            if (!ce->ok) {
                snprintf(ce->reason, sizeof ce->reason, "%s", tsr_last_error());
                fprintf(stderr, "tessera %s: skipping %s x %s: %s\n", verb, defs[i], atks[j],
                        ce->reason);
            } else {
                for (long sd = 0; sd < o.seeds; sd++)
                    if (find_prior(prior, nprior, defs[i], atks[j], o.seed + sd) < 0)
                        total += (uint64_t)o.rounds;
            }
        }
    snprintf(path, sizeof path, "%s/results.csv", o.out_dir);
    FILE *csv = fopen(path, "w");
    if (!csv) {
        free(prior);
        tsr_free(cells);
        tsr_fl_problem_close(prob);
        return cli_usage_error(verb, "cannot write '%s': %s", path, strerror(errno));
    }
    fprintf(csv, "dataset,defense,attack,seed,workers,corrupt,f,rounds,final_accuracy,backdoor,"
                 "corrupt_selected,z,seconds\n");
    tsr_progress prog;
    tsr_progress_begin(&prog, "fl sweep", total, "round");
    run_cb u = { .prog = &prog, .last_acc = NAN };
    double run_seconds = 0; /* wall time of the grid's runs, kept ones included */
    for (int i = 0; i < nd && rc == 0; i++)
        for (int j = 0; j < na && rc == 0; j++) {
            cell *ce = &cells[i * na + j];
            if (!ce->ok) continue;
            for (long s = 0; s < o.seeds && rc == 0; s++) {
                make_config(verb, &o, defs[i], atks[j], o.seed + s, &c);
                snprintf(u.what, sizeof u.what, "%s/%s seed %ld", defs[i], atks[j], o.seed + s);
                u.last_acc = NAN;
                tsr_fl_result res;
                memset(&res, 0, sizeof res);
                long pk = find_prior(prior, nprior, defs[i], atks[j], o.seed + s);
                if (pk >= 0) {
                    /* Kept from an earlier sweep: its history file must be readable. */
                    long ee = o.eval_every ? o.eval_every : (o.rounds >= 20 ? o.rounds / 20 : 1);
                    long cap = o.rounds / ee + 64;
                    res.evals = tsr_calloc_array((size_t)cap, sizeof *res.evals);
                    if (!res.evals) {
                        rc = cli_fail(verb, TSR_ERR_NOMEM, "history");
                        break;
                    }
                    snprintf(path, sizeof path, "%s/runs/%s__%s__s%ld.csv", o.out_dir, defs[i],
                             atks[j], o.seed + s);
                    long hn = load_history(path, res.evals, cap);
                    if (hn < 0) {
                        fprintf(stderr,
                                "tessera %s: --resume: %s is missing or malformed; "
                                "running %s again\n",
                                verb, path, u.what);
                        tsr_fl_result_free(&res);
                        memset(&res, 0, sizeof res);
                        prior[pk].used = 1; /* replaced by the new run */
                        pk = -1;
                    } else {
                        res.n_evals = (size_t)hn;
                        res.evals[hn - 1].accuracy = prior[pk].acc;
                        res.evals[hn - 1].backdoor = prior[pk].bd;
                        res.evals[hn - 1].corrupt_selected = prior[pk].sel;
                        fputs(prior[pk].line, csv);
                        fflush(csv);
                        prior[pk].used = 1;
                        run_seconds += prior[pk].seconds;
                    }
                }
                if (pk < 0) {
                    st = tsr_fl_run(&c, prob, on_round, &u, NULL, &res);
                    if (st) {
                        rc = cli_fail(verb, st, u.what);
                        break;
                    }
                    u.base += c.rounds;
                    run_seconds += res.seconds;
                }
                const tsr_fl_eval *last = &res.evals[res.n_evals - 1];
                ce->acc[s] = last->accuracy;
                ce->bd[s] = last->backdoor;
                ce->sel[s] = last->corrupt_selected;
                if (!ce->hx) {
                    ce->hn = res.n_evals;
                    ce->hx = tsr_calloc_array(3 * res.n_evals, sizeof(double));
                    if (!ce->hx) {
                        tsr_fl_result_free(&res);
                        rc = cli_fail(verb, TSR_ERR_NOMEM, "history");
                        break;
                    }
                    ce->hacc = ce->hx + res.n_evals;
                    ce->hbd = ce->hacc + res.n_evals;
                }
                for (size_t k = 0; k < ce->hn && k < res.n_evals; k++) {
                    ce->hx[k] = (double)res.evals[k].round;
                    ce->hacc[k] += res.evals[k].accuracy / (double)o.seeds;
                    ce->hbd[k] += res.evals[k].backdoor / (double)o.seeds;
                }
                if (pk >= 0) {
                    tsr_fl_result_free(&res);
                    continue;
                }
                fprintf(csv, "%s,%s,%s,%ld,%zu,%zu,%zu,%zu,%.4f,", prob->name, defs[i], atks[j],
                        o.seed + s, c.workers, c.corrupt, c.agg.f, c.rounds, last->accuracy);
                if (!isnan(last->backdoor)) fprintf(csv, "%.4f", last->backdoor);
                fputc(',', csv);
                if (!isnan(last->corrupt_selected)) fprintf(csv, "%.4f", last->corrupt_selected);
                fputc(',', csv);
                if (!isnan(res.z)) fprintf(csv, "%.6f", res.z);
                fprintf(csv, ",%.2f\n", res.seconds);
                fflush(csv);
                snprintf(path, sizeof path, "%s/runs/%s__%s__s%ld.csv", o.out_dir, defs[i], atks[j],
                         o.seed + s);
                st = tsr_fl_write_history_csv(path, &res);
                tsr_fl_result_free(&res);
                if (st) rc = cli_fail(verb, st, "writing a run history");
            }
        }
    /* --resume never loses data: earlier runs outside this grid stay in results.csv. */
    for (long k = 0; k < nprior; k++)
        if (!prior[k].used) fputs(prior[k].line, csv);
    if (fclose(csv) && rc == 0) rc = cli_usage_error(verb, "writing results.csv failed");
    tsr_progress_end(&prog, "%d x %d cells", nd, na);
    double minutes = run_seconds / 60;

    if (rc == 0) {
        /* Markdown tables. */
        snprintf(path, sizeof path, "%s/results.md", o.out_dir);
        FILE *md = fopen(path, "w");
        if (!md) {
            rc = cli_usage_error(verb, "cannot write '%s': %s", path, strerror(errno));
        } else {
            double z;
            int have_z = o.has_z || tsr_fl_alie_zmax((size_t)o.workers, (size_t)o.corrupt, &z) == 0;
            if (o.has_z) z = o.z;
            fprintf(md,
                    "Final test accuracy (%%) on %s, n = %ld workers, m = %ld corrupt, f = %ld, "
                    "%ld rounds, batch %ld, lr %g, momentum %g, %s shards, ",
                    prob->name, o.workers, o.corrupt, o.f >= 0 ? o.f : o.corrupt, o.rounds, o.batch,
                    o.lr, o.momentum, o.non_iid ? "non-IID" : "IID");
            if (o.seeds > 1)
                fprintf(md, "mean ± sd over seeds %ld..%ld", o.seed, o.seed + o.seeds - 1);
            else
                fprintf(md, "seed %ld", o.seed);
            if (have_z) fprintf(md, "; ALIE z = %.4f", z);
            fprintf(md, " (runs took %.1f min on %d threads).\n\n", minutes, tsr_get_num_threads());
            fprintf(md, "| defence |");
            for (int j = 0; j < na; j++)
                fprintf(md, strcmp(atks[j], "backdoor") == 0 ? " backdoor: clean acc |" : " %s |",
                        atks[j]);
            if (strstr(o.attacks, "backdoor")) fprintf(md, " backdoor: success |");
            fprintf(md, "\n|---|");
            for (int j = 0; j < na; j++) fprintf(md, "---:|");
            if (strstr(o.attacks, "backdoor")) fprintf(md, "---:|");
            fprintf(md, "\n");
            for (int i = 0; i < nd; i++) {
                fprintf(md, "| %s |", defs[i]);
                int bdj = -1;
                for (int j = 0; j < na; j++) {
                    cell *ce = &cells[i * na + j];
                    char b[64];
                    if (strcmp(atks[j], "backdoor") == 0) bdj = j;
                    if (!ce->ok)
                        snprintf(b, sizeof b, "n/a");
                    else
                        fmt_pct(b, sizeof b, ce->acc, o.seeds);
                    fprintf(md, " %s |", b);
                }
                if (bdj >= 0) {
                    cell *ce = &cells[i * na + bdj];
                    char b[64];
                    if (!ce->ok)
                        snprintf(b, sizeof b, "n/a");
                    else
                        fmt_pct(b, sizeof b, ce->bd, o.seeds);
                    fprintf(md, " %s |", b);
                }
                fprintf(md, "\n");
            }
            /* Baseline: how often the trigger alone sends an input to the target class. */
            int jn = -1, jb = -1;
            for (int j = 0; j < na; j++) {
                if (strcmp(atks[j], "none") == 0) jn = j;
                if (strcmp(atks[j], "backdoor") == 0) jb = j;
            }
            if (jn >= 0 && jb >= 0) {
                fprintf(md, "\nBaseline for the backdoor success column: share (%%) of triggered "
                            "test inputs (true label not the target) classified as the target "
                            "by the model trained without attack:");
                for (int i = 0; i < nd; i++) {
                    char b[64];
                    if (!cells[i * na + jn].ok) continue;
                    fmt_pct(b, sizeof b, cells[i * na + jn].bd, o.seeds);
                    fprintf(md, "%s %s %s", i ? "," : "", defs[i], b);
                }
                fprintf(md, ".\n");
            }
            /* Share of corrupt vectors the Krum family kept (last evaluation window). */
            int any = 0;
            for (int i = 0; i < nd; i++)
                for (int j = 0; j < na; j++)
                    if (cells[i * na + j].ok && !isnan(cells[i * na + j].sel[0])) any = 1;
            if (any) {
                fprintf(md,
                        "\nShare (%%) of the vectors selected by Krum, Multi-Krum and Bulyan "
                        "that came from corrupt workers (last evaluation window; %.0f%% of "
                        "workers are corrupt):\n\n| defence |",
                        100.0 * (double)o.corrupt / (double)o.workers);
                for (int j = 0; j < na; j++) fprintf(md, " %s |", atks[j]);
                fprintf(md, "\n|---|");
                for (int j = 0; j < na; j++) fprintf(md, "---:|");
                fprintf(md, "\n");
                for (int i = 0; i < nd; i++) {
                    int row = 0;
                    for (int j = 0; j < na; j++)
                        if (cells[i * na + j].ok && !isnan(cells[i * na + j].sel[0])) row = 1;
                    if (!row) continue;
                    fprintf(md, "| %s |", defs[i]);
                    for (int j = 0; j < na; j++) {
                        char b[64];
                        if (!cells[i * na + j].ok)
                            snprintf(b, sizeof b, "n/a");
                        else
                            fmt_pct(b, sizeof b, cells[i * na + j].sel, o.seeds);
                        fprintf(md, " %s |", b);
                    }
                    fprintf(md, "\n");
                }
            }
            for (int i = 0; i < nd; i++)
                for (int j = 0; j < na; j++)
                    if (!cells[i * na + j].ok)
                        fprintf(md, "\nn/a: %s x %s: %s\n", defs[i], atks[j],
                                cells[i * na + j].reason);
            if (fclose(md)) rc = cli_usage_error(verb, "writing '%s' failed", path);
        }
        /* Plots: accuracy vs round per attack (one line per defence), backdoor success. */
        tsr_fl_series ser[MAX_GRID];
        for (int j = 0; j < na && rc == 0; j++) {
            int k = 0;
            for (int i = 0; i < nd; i++) {
                cell *ce = &cells[i * na + j];
                if (!ce->ok) continue;
                ser[k++] = (tsr_fl_series){ defs[i], ce->hx, ce->hacc, ce->hn };
            }
            if (!k) continue;
            char title[160];
            snprintf(title, sizeof title, "%s, n=%ld, m=%ld: attack %s", prob->name, o.workers,
                     o.corrupt, atks[j]);
            snprintf(path, sizeof path, "%s/acc_%s.svg", o.out_dir, atks[j]);
            st = tsr_fl_write_svg_plot(path, title, "test accuracy", ser, (size_t)k);
            if (st) rc = cli_fail(verb, st, "writing a plot");
            if (strcmp(atks[j], "backdoor") == 0 && rc == 0) {
                for (int i = 0, q = 0; i < nd; i++) {
                    cell *ce = &cells[i * na + j];
                    if (ce->ok) ser[q++].y = ce->hbd;
                }
                snprintf(title, sizeof title, "%s, n=%ld, m=%ld: backdoor success", prob->name,
                         o.workers, o.corrupt);
                snprintf(path, sizeof path, "%s/backdoor.svg", o.out_dir);
                st = tsr_fl_write_svg_plot(path, title, "backdoor success rate", ser, (size_t)k);
                if (st) rc = cli_fail(verb, st, "writing a plot");
            }
        }
        if (rc == 0)
            printf("fl sweep: wrote %s/results.md, results.csv, runs/, *.svg\n", o.out_dir);
    }
    for (int k = 0; k < nd * na; k++) tsr_free(cells[k].hx);
    free(prior);
    tsr_free(cells);
    tsr_fl_problem_close(prob);
    return rc;
}

/* ---- fl zmax ------------------------------------------------------------ */

static int cmd_zmax(int argc, char **argv) {
    fl_opts o;
    opts_default(&o);
    int rc = parse_opts(argc, argv, "zmax", &o);
    if (rc) return rc;
    double z;
    tsr_status st = tsr_fl_alie_zmax((size_t)o.workers, (size_t)o.corrupt, &z);
    if (st) return cli_fail(VERB " zmax", st, "z_max");
    long s = o.workers / 2 + 1 - o.corrupt;
    printf("n=%ld m=%ld: s=%ld supporters, z_max = Phi^-1(%ld/%ld) = %.6f\n", o.workers, o.corrupt,
           s, o.workers - s, o.workers, z);
    return 0;
}

int tsr_cmd_fl(int argc, char **argv) {
    if (argc < 2) {
        help_fl(stderr);
        return 2;
    }
    const char *sub = argv[1];
    int help = cli_wants_help(argc - 1, argv + 1);
    if (strcmp(sub, "-h") == 0 || strcmp(sub, "--help") == 0 || strcmp(sub, "help") == 0) {
        help_fl(stdout);
        return 0;
    }
    if (strcmp(sub, "run") == 0) {
        if (help) return help_run(), 0;
        return cmd_run(argc - 1, argv + 1);
    }
    if (strcmp(sub, "sweep") == 0) {
        if (help) return help_sweep(), 0;
        return cmd_sweep(argc - 1, argv + 1);
    }
    if (strcmp(sub, "zmax") == 0) {
        if (help) {
            printf("usage: tessera fl zmax [--workers N] [--corrupt M]\n\nALIE's z_max (Baruch et "
                   "al. 2019): s = floor(n/2 + 1) - m, z_max = Phi^-1((n - s)/n).\n");
            return 0;
        }
        return cmd_zmax(argc - 1, argv + 1);
    }
    fprintf(stderr, "tessera fl: unknown subcommand '%s'\n\n", sub);
    help_fl(stderr);
    return 2;
}
