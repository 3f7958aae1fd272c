/*
 * cli/cmd_infer.c - `tessera infer model.plan server.evk --in in.ct --out
 * out.ct [--report report.json] [--chart chart.svg]`: the server side. It
 * holds only evaluation keys: a secret key is refused.
 */
#include "cli_mpi.h"
#include "infer_cli.h"
#include "nn_cli.h"

#include "core/progress.h"

#include <stdio.h>
#include <string.h>
#include <unistd.h>

#define VERB "infer"

static void usage(FILE *out) {
    fprintf(out,
            "usage: tessera infer model.plan server.evk --in in.ct --out out.ct\n"
            "                     [--report report.json] [--chart chart.svg] [--threads N]\n"
            "                     [--force] [--max-memory SIZE]\n"
            "\n"
            "Run the plan's network on encrypted inputs with the evaluation keys only (a secret\n"
            "key is refused: the server never needs one). Inputs encrypted under another key\n"
            "set (keys of another keygen run) are refused. Prints the per-layer latency and HE\n"
            "operation counts; --report writes them as JSON (per step and per HE operation:\n"
            "time and counts, memory peak), --chart as an SVG chart. The output files appear\n"
            "together once all are written; none may be an input, and a secret key file is\n"
            "never replaced.\n"
            "\n"
            "  --threads N    OpenMP threads (default: all)\n"
            "  --force        replace outputs even if one holds a secret key\n"
            "  --max-memory SIZE  refuse (exit 2) a plan whose predicted peak memory exceeds\n"
            "                 SIZE (4G, 512M, ...; a bare number is MiB) before doing any work\n"
            "                 (default: 80%% of the physical memory)\n"
            "  " NN_CLI_INSECURE "   accept a plan made with it (tests only)\n"
            "\n"
            "mpirun -n K tessera infer --mpi model.plan server.evk --in a.ct [--in b.ct ...]\n"
            "                     --out a.out.ct [--out b.out.ct ...]: many encrypted batches\n"
            "sharded over MPI ranks (tessera infer --mpi --help; docs/SCALING.md)\n");
}

/* 80 % of the physical memory in MiB (0 if unknown: no limit). */
static double default_max_mib(void) {
    long pages = sysconf(_SC_PHYS_PAGES), size = sysconf(_SC_PAGESIZE);
    if (pages <= 0 || size <= 0) return 0;
    return 0.8 * (double)pages * (double)size / 1048576.0;
}

int infer_parse(const char *verb, int argc, char **argv, infer_opts *o) {
    memset(o, 0, sizeof *o);
    o->ins = (cli_list){ o->in_v, 0, INFER_MAX_FILES };
    o->outs = (cli_list){ o->out_v, 0, INFER_MAX_FILES };
    const cli_opt opts[] = {
        { "--in", CLI_LIST, &o->ins, 0, 0 },
        { "--out", CLI_LIST, &o->outs, 0, 0 },
        { "--report", CLI_STR, &o->report, 0, 0 },
        { "--chart", CLI_STR, &o->chart, 0, 0 },
        { "--threads", CLI_LONG, &o->threads, 1, 256 },
        { "--force", CLI_FLAG, &o->force, 0, 0 },
        { "--max-memory", CLI_STR, &o->max_memory, 0, 0 },
        { "--mpi", CLI_FLAG, &o->mpi, 0, 0 },
        { NN_CLI_INSECURE, CLI_FLAG, &o->insecure, 0, 0 },
    };
    const char *pos[2] = { NULL, NULL };
    int rc = cli_parse_args(verb, argc, argv, opts, sizeof opts / sizeof opts[0], pos, 2);
    if (rc) return rc;
    o->plan = pos[0];
    o->keys = pos[1];
    if (!o->plan || !o->keys || o->ins.n == 0 || o->outs.n == 0)
        return cli_usage_error(verb,
                               "give the plan, the evaluation keys, --in FILE and --out FILE");
    if (!o->mpi && (o->ins.n > 1 || o->outs.n > 1))
        return cli_usage_error(verb, "one --in and one --out (several need --mpi)");
    if (o->ins.n != o->outs.n)
        return cli_usage_error(verb, "%d --in but %d --out: give one --out per --in", o->ins.n,
                               o->outs.n);
    if (o->mpi && (o->report || o->chart || o->max_memory))
        return cli_usage_error(verb, "--report, --chart and --max-memory are for a single run, "
                                     "not --mpi");
    return 0;
}

int tsr_cmd_infer(int argc, char **argv) {
    if (cli_mpi_wanted(argc, argv)) return cli_mpi_infer(argc, argv); /* cli/mpi_infer.c */
    if (cli_wants_help(argc, argv)) {
        usage(stdout);
        return 0;
    }
    static infer_opts o; /* 64 KiB of file lists: not on the stack */
    int prc = infer_parse(VERB, argc, argv, &o);
    if (prc) return prc;
    const char *plan = o.plan, *keys = o.keys, *in = o.ins.items[0], *out = o.outs.items[0];
    const char *report = o.report, *chart = o.chart, *max_memory = o.max_memory;
    const long threads = o.threads;
    const int insecure = o.insecure, force = o.force;
    double max_mib = default_max_mib();
    if (max_memory && cli_parse_size(max_memory, &max_mib) != 0)
        return cli_usage_error(VERB, "--max-memory needs a size such as 4G or 512M, not '%s'",
                               max_memory);
    cli_output outs[] = { { out, 0, NULL }, { report, 0, NULL }, { chart, 0, NULL } };
    const char *ins[] = { plan, keys, in };
    int rc = cli_outputs_check(VERB, outs, 3, ins, 3, force);
    if (rc) return rc;
    if (insecure) nn_cli_insecure_warning(VERB);
    if (threads) tsr_set_num_threads((int)threads);
    tsr_nn_plan *p = NULL;
    rc = nn_cli_load_plan(VERB, plan, insecure ? TSR_CKKS_ALLOW_INSECURE_PARAMETERS : 0, &p);
    if (rc) return rc;
    double need = tsr_nn_plan_predicted_mib(p);
    if (max_mib > 0 && need > max_mib) {
        fprintf(stderr,
                "tessera %s: the plan's predicted peak memory is %.0f MiB, more than the %.0f MiB "
                "allowed (%s); run it on a larger machine, raise --max-memory, or compile with a "
                "smaller --batch\n",
                VERB, need, max_mib, max_memory ? "--max-memory" : "default: 80% of the RAM");
        tsr_nn_plan_free(p);
        return 2;
    }
    tsr_ckks_params *params = NULL;
    tsr_ckks_relin_key *rk = NULL;
    tsr_ckks_galois_keys *gk = NULL;
    tsr_backend *be = NULL;
    tsr_nn_runner *r = NULL;
    tsr_tile *x = NULL, *y = NULL;
    tsr_nn_stats stats;
    memset(&stats, 0, sizeof stats);
    int n = 0;
    tsr_status st = tsr_nn_plan_params(p, &params);
    uint8_t key_id[TSR_CKKS_KEY_ID_BYTES];
    if (st == TSR_OK) st = tsr_ckks_eval_keys_load(&rk, &gk, key_id, params, keys);
    if (st != TSR_OK) {
        rc = cli_fail(VERB, st, "loading the evaluation keys");
        goto out;
    }
    if ((st = tsr_nn_check_keys(p, rk, gk)) != TSR_OK) {
        rc = cli_fail(VERB, st, "checking the evaluation keys");
        goto out;
    }
    if ((st = tsr_backend_ckks_create(params, NULL, NULL, rk, gk, &be)) != TSR_OK ||
        (st = tsr_nn_runner_create(p, be, &r)) != TSR_OK) {
        rc = cli_fail(VERB, st, "preparing the plan");
        goto out;
    }
    if ((st = tsr_nn_ct_load(p, tsr_nn_runner_backend(r), TSR_NN_CT_INPUT, in, key_id, &x, &n)) !=
        TSR_OK) {
        rc = cli_fail(VERB, st, "reading the encrypted inputs");
        goto out;
    }
    if ((st = tsr_nn_run(r, x, &y, &stats)) != TSR_OK) {
        rc = cli_fail(VERB, st, "running the network");
        goto out;
    }
    stats.samples = n;
    tsr_tile_free(x);
    x = NULL;
    tsr_outset set;
    if ((rc = cli_outputs_open(VERB, &set, outs, 3, force)) != 0) goto out;
    st = tsr_nn_ct_write(p, y, TSR_NN_CT_OUTPUT, n, key_id, outs[0].fp);
    if (st == TSR_OK && report) st = tsr_nn_report_json_write(p, &stats, outs[1].fp);
    if (st == TSR_OK && chart) st = tsr_nn_report_svg_write(p, &stats, outs[2].fp);
    if ((rc = cli_outputs_commit(VERB, &set, st, "writing the outputs")) != 0) goto out;
    nn_cli_print_stats(p, &stats, stdout);
    printf("encrypted predictions for %d sample%s: %s\n", n, n == 1 ? "" : "s", out);
    if (report) printf("latency breakdown: %s\n", report);
    if (chart) printf("chart: %s\n", chart);
out:
    tsr_nn_stats_free(&stats);
    tsr_tile_free(x);
    tsr_tile_free(y);
    tsr_nn_runner_free(r);
    tsr_backend_free(be);
    tsr_ckks_galois_keys_free(gk);
    tsr_ckks_relin_key_free(rk);
    tsr_ckks_params_free(params);
    tsr_nn_plan_free(p);
    return rc;
}
