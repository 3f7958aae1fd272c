/*
 * bench/bench_fl.c - `tessera bench fl`: the distributed-learning lab.
 *   1. each aggregation rule on n = 51 vectors of d parameters (d = 79510,
 *      the 784-100-10 MLP), median of repeated calls;
 *   2. whole rounds per second (51 workers, 12 corrupt, ALIE attack) for
 *      every problem this build offers, with 1 thread and with all threads.
 * Record results in docs/BENCHMARKS.md with the command, commit and CPU.
 */
#include "bench.h"
#include "cli.h"
#include "core/alloc.h"
#include "core/progress.h"
#include "fl/agg.h"
#include "fl/sim.h"

#include <stdlib.h>
#include <string.h>

static double time_agg(const tsr_fl_agg_params *p, const float *g, size_t n, size_t d, float *out,
                       int reps) {
    double t[64];
    if (reps > 64) reps = 64;
    for (int r = 0; r < reps; r++) {
        double t0 = tsr_now();
        if (tsr_fl_aggregate(p, g, n, d, NULL, out, NULL) != TSR_OK) return -1;
        t[r] = tsr_now() - t0;
    }
    return bench_median(t, (size_t)reps);
}

/* Seconds per round of a run of `rounds` rounds (evaluation only at the end). */
static double time_rounds(tsr_fl_problem *prob, tsr_fl_rule rule, size_t rounds) {
    tsr_fl_config c = { .workers = 51,
                        .corrupt = 12,
                        .rounds = rounds,
                        .batch = 32,
                        .lr = 0.1,
                        .momentum = 0.9,
                        .eval_every = rounds,
                        .seed = 1 };
    c.agg.rule = rule;
    c.agg.f = 12;
    c.attack.kind = TSR_FL_ATTACK_ALIE;
    tsr_fl_result res;
    if (tsr_fl_run(&c, prob, NULL, NULL, NULL, &res) != TSR_OK) return -1;
    /* Subtract the two evaluations (round 0 and the last) from the wall time. */
    double eval = res.evals[0].seconds;
    double per = (res.seconds - 2 * eval) / (double)rounds;
    tsr_fl_result_free(&res);
    return per;
}

int bench_fl_main(int argc, char **argv) {
    if (cli_wants_help(argc, argv)) {
        printf("usage: tessera bench fl [--quick]\n\nAggregation rules on 51 x 79510 floats and "
               "distributed-SGD rounds per second (51 workers, 12 corrupt, ALIE).\n");
        return 0;
    }
    int quick = 0;
    const cli_opt opts[] = { { "--quick", CLI_FLAG, &quick, 0, 0 } };
    int prc = cli_parse_args("bench fl", argc, argv, opts, 1, NULL, 0);
    if (prc) return prc;
    int threads_all = tsr_get_num_threads();
    size_t n = 51, d = 79510;
    float *g = tsr_alloc(n * d * sizeof(float)), *out = tsr_alloc(d * sizeof(float));
    if (!g || !out) {
        tsr_free(g);
        tsr_free(out);
        return cli_fail("bench fl", TSR_ERR_NOMEM, "allocating");
    }
    tsr_prng rng;
    uint8_t seed[TSR_SEED_BYTES] = { 7 };
    tsr_prng_init(&rng, seed, 0);
    for (size_t i = 0; i < n * d; i++) g[i] = (float)tsr_prng_normal(&rng);
    printf("fl aggregation, n=%zu vectors of d=%zu floats, f=12 (median of %d calls, ms)\n", n, d,
           quick ? 3 : 21);
    printf("  %-15s %10s %10s\n", "rule", "1 thread", "threads");
    for (int r = 0; r < TSR_FL_RULE_COUNT_; r++) {
        tsr_fl_agg_params p = { .rule = (tsr_fl_rule)r, .f = 12, .tau = 1 };
        tsr_set_num_threads(1);
        double t1 = time_agg(&p, g, n, d, out, quick ? 3 : 21);
        tsr_set_num_threads(threads_all);
        double tn = time_agg(&p, g, n, d, out, quick ? 3 : 21);
        printf("  %-15s %10.2f %10.2f\n", tsr_fl_rule_name((tsr_fl_rule)r), 1e3 * t1, 1e3 * tn);
    }
    tsr_free(g);
    tsr_free(out);

    const char *probs[][2] = { { "synthetic", "linear" },
                               { "fashion-mnist", "mlp" },
                               { "fashion-mnist", "cnn" } };
    printf("\nfl rounds: 51 workers (12 corrupt, ALIE), batch 32, evaluation excluded\n");
    printf("  %-24s %-10s %14s %14s\n", "problem", "rule", "1 thread r/s", "threads r/s");
    for (size_t k = 0; k < sizeof probs / sizeof probs[0]; k++) {
        tsr_fl_problem *prob;
        if (tsr_fl_problem_open(probs[k][0], probs[k][1], NULL, 1, &prob) != TSR_OK) {
            printf("  %s/%s: not available (%s)\n", probs[k][0], probs[k][1], tsr_last_error());
            continue;
        }
        size_t rounds = strcmp(probs[k][1], "cnn") == 0 ? 3 : (quick ? 5 : 20);
        const tsr_fl_rule rules[] = { TSR_FL_MEAN, TSR_FL_KRUM, TSR_FL_BULYAN };
        for (size_t q = 0; q < 3; q++) {
            tsr_set_num_threads(1);
            double s1 = time_rounds(prob, rules[q], rounds);
            tsr_set_num_threads(threads_all);
            double sn = time_rounds(prob, rules[q], rounds);
            printf("  %-24s %-10s %14.2f %14.2f\n", prob->name, tsr_fl_rule_name(rules[q]),
                   s1 > 0 ? 1 / s1 : 0, sn > 0 ? 1 / sn : 0);
        }
        tsr_fl_problem_close(prob);
    }
    printf("(threads = %d)\n", threads_all);
    return 0;
}
