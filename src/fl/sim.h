/*
 * fl/sim.h - synchronous distributed SGD with a parameter server, n workers
 * of which the first m are corrupt, an attack and an aggregation rule: the
 * experiment of Baruch, Baruch, Goldberg, "A Little Is Enough" (NeurIPS 2019).
 *
 * Each round:
 *   1. every worker i computes the mean gradient of the loss on a minibatch
 *      drawn from its own shard of the training set (workers run in parallel
 *      OpenMP threads; worker i's minibatches come from its own seeded stream,
 *      so results do not depend on the thread count);
 *   2. for the backdoor attack the corrupt workers also compute a gradient on
 *      minibatches in which a fraction of the examples carry the trigger and
 *      the target label (their average is the backdoor gradient);
 *   3. the corrupt workers' rows are replaced by the attack (fl/attack.h);
 *   4. the server aggregates the n rows (fl/agg.h) and takes a momentum SGD
 *      step: v = momentum v + a, w = w - lr v (the paper's server update).
 * The test accuracy (and, with a backdoor, the attack success rate) is
 * measured before the first round (round 0), every eval_every rounds and
 * after the last one.
 *
 * The learning problem is an interface (tsr_fl_problem) so the same loop runs
 * the Fashion-MNIST models of the training engine and a tiny synthetic
 * problem for tests (fl/synth.c).
 */
#ifndef TSR_FL_SIM_H
#define TSR_FL_SIM_H

#include "tessera/common.h"
#include "core/rng.h"
#include "fl/agg.h"
#include "fl/attack.h"

#include <stddef.h>
#include <stdint.h>

/**
 * A learning problem: a model with dim parameters, a training set and a test
 * set. All callbacks may run concurrently from several threads, each with its
 * own workspace; the problem's shared state is read-only while a run is in
 * progress. Every callback's result must depend only on its arguments.
 */
typedef struct tsr_fl_problem {
    size_t dim;                  /**< number of model parameters */
    size_t n_train;              /**< training examples */
    const uint8_t *train_labels; /**< n_train labels in [0, n_classes) (for non-IID shards) */
    int n_classes;
    int backdoor_target; /**< label the trigger maps to (backdoor attack) */
    void *ctx;           /**< problem state passed to every callback */

    /** A workspace for one thread (activations, scratch); NULL on allocation failure. */
    void *(*ws_new)(void *ctx);
    void (*ws_free)(void *ws);
    /** Initial parameters (dim floats) from a seeded stream. */
    tsr_status (*init)(void *ctx, tsr_prng *rng, float *params);
    /**
     * grad (dim) = mean gradient of the loss over training examples idx[0..b);
     * loss receives the mean loss. poisoned: NULL, or b flags; a flagged
     * example gets the trigger stamped on its input and the label
     * backdoor_target. Overwrites grad.
     */
    tsr_status (*gradient)(void *ctx, void *ws, const float *params, const uint32_t *idx, size_t b,
                           const uint8_t *poisoned, float *grad, double *loss);
    /**
     * Evaluate on the test set. backdoor = 0: *acc = accuracy. backdoor = 1:
     * *acc = fraction of the test examples whose label is not backdoor_target
     * that are classified as backdoor_target once the trigger is stamped.
     */
    tsr_status (*evaluate)(void *ctx, void *ws, const float *params, int backdoor, double *acc);
    /** Free the problem (used by tsr_fl_problem_close). */
    void (*destroy)(struct tsr_fl_problem *self);
    const char *name; /**< "dataset/model", for reports */
} tsr_fl_problem;

/**
 * A distributed run (`tessera fl run --mpi`, docs/SCALING.md): the workers are
 * spread over `size` processes, worker i (and, under the backdoor attack,
 * corrupt worker i's backdoor gradient) computed by process i % size; process
 * 0 is the server: it applies the attack on the corrupt workers' behalf (an
 * omniscient, colluding adversary sees every honest gradient), aggregates,
 * steps, evaluates, calls the callback and fills the result. Every process
 * calls tsr_fl_run with the same configuration and problem; each draws every
 * worker's minibatch indices (cheap), so the numbers are those of one process
 * for any size. The transport is the caller's (the CLI's MPI); a transport
 * failure is the caller's to handle (MPI aborts the job).
 */
typedef struct tsr_fl_comm {
    int rank, size; /**< this process, number of processes (rank < size) */
    void *ctx;      /**< passed to the callbacks */
    /**
     * Collective, after each round's gradients: at process 0, rows i of G (n x d),
     * rows j of bd (m x d; NULL without the backdoor attack) and entries loss[i],
     * loss[n + j] computed by process i % size (j % size) are filled in; other
     * processes' buffers are left as they are.
     */
    tsr_status (*gather)(void *ctx, float *G, size_t n, float *bd, size_t m, size_t d,
                         double *loss);
    /** Collective: process 0's w (d floats) and *stop to every process. */
    tsr_status (*bcast)(void *ctx, float *w, size_t d, int *stop);
} tsr_fl_comm;

/** Experiment configuration. Zero-initialise, then set at least the marked fields. */
typedef struct tsr_fl_config {
    size_t workers;        /**< n (required, >= 1) */
    size_t corrupt;        /**< m, the first m workers (< n) */
    size_t rounds;         /**< server steps (required) */
    size_t batch;          /**< minibatch per worker (0 = 32) */
    double lr;             /**< server learning rate (0 = 0.1) */
    double momentum;       /**< server momentum in [0, 1) (0 = none) */
    int non_iid;           /**< 0: IID shards; 1: shards of the training set sorted by label */
    tsr_fl_agg_params agg; /**< aggregation rule; agg.f is used as given */
    tsr_fl_attack_params attack; /**< what the corrupt workers send */
    double bd_fraction;          /**< backdoor: poisoned share of a corrupt minibatch (0 = 0.5) */
    size_t eval_every;           /**< evaluate every k rounds (0 = rounds / 20, at least 1) */
    uint64_t seed;               /**< everything random derives from this */
    const tsr_fl_comm *comm;     /**< NULL: one process; else a distributed run (see above) */
} tsr_fl_config;

/** One evaluation point, passed to the callback and stored in the result. */
typedef struct tsr_fl_eval {
    size_t round;            /**< rounds completed */
    double accuracy;         /**< clean test accuracy in [0, 1] */
    double backdoor;         /**< trigger success rate (measured under every attack: without
                                  the backdoor attack it is the baseline rate) */
    double honest_loss;      /**< mean training loss of the honest workers, last round (NaN at 0) */
    double corrupt_selected; /**< share of selected vectors that were corrupt, averaged since the
                                  previous point (Krum family; NaN for other rules) */
    double seconds;          /**< wall time since the start */
} tsr_fl_eval;

/** Called after each round (eval NULL) and after each evaluation (eval set). Return non-zero to
 * stop. */
typedef int (*tsr_fl_callback)(void *user, size_t round, const tsr_fl_eval *eval);

/** Outcome of a run: the evaluation history (owned; free with tsr_fl_result_free). */
typedef struct tsr_fl_result {
    tsr_fl_eval *evals;
    size_t n_evals;
    double z;       /**< z used by ALIE / backdoor (NaN otherwise) */
    double seconds; /**< wall time of the whole run */
} tsr_fl_result;

void tsr_fl_result_free(tsr_fl_result *r);

/**
 * Check a configuration against a problem without running it: worker and
 * corrupt counts, the rule's conditions (tsr_fl_agg_check with n = workers),
 * the attack's z_max, batch within the shard size, learning rate and
 * momentum ranges. Fails with TSR_ERR_INVALID_ARG and a message naming the
 * problem.
 */
tsr_status tsr_fl_config_check(const tsr_fl_config *cfg, const tsr_fl_problem *prob);

/**
 * Run the experiment. params: optional, receives the final parameters (dim
 * floats). res: receives the evaluation history. cb may be NULL.
 * Deterministic for a given configuration: same seed, same numbers, for any
 * number of threads (given a deterministic problem).
 */
tsr_status tsr_fl_run(const tsr_fl_config *cfg, const tsr_fl_problem *prob, tsr_fl_callback cb,
                      void *user, float *params, tsr_fl_result *res);

/* ---- a synthetic problem (fl/synth.c) ----------------------------------- */

/**
 * Softmax regression on Gaussian clusters: n_classes class means drawn from
 * N(0, spread^2 I) in `features` dimensions, examples = mean + N(0, I).
 * The trigger sets the first 3 features to 6 and the target is class 0.
 * Fast enough for unit tests; used by `tessera fl run --dataset synthetic`.
 * Free with tsr_fl_synth_free.
 */
tsr_status tsr_fl_synth_create(size_t n_train, size_t n_test, int n_classes, int features,
                               double spread, uint64_t seed, tsr_fl_problem **out);
void tsr_fl_synth_free(tsr_fl_problem *p);

/* ---- problems by name (fl/problems.c) ---------------------------------- */

/**
 * Open a learning problem by name: dataset "synthetic" (model "linear": the
 * softmax regression above with 20000 training / 2000 test examples, 10
 * classes, 20 features) or "fashion-mnist" (models "mlp", "cnn"; files from
 * data_dir, NULL = /usr/share/datasets/fashion-mnist). model NULL picks the
 * dataset's first model. seed fixes generated data. Close with
 * tsr_fl_problem_close. TSR_ERR_INVALID_ARG for unknown names or a model the
 * dataset does not offer.
 */
tsr_status tsr_fl_problem_open(const char *dataset, const char *model, const char *data_dir,
                               uint64_t seed, tsr_fl_problem **out);
/** Free a problem from tsr_fl_problem_open; NULL is a no-op. */
void tsr_fl_problem_close(tsr_fl_problem *p);

#endif /* TSR_FL_SIM_H */
