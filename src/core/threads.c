/*
 * core/threads.c - tsr_thread_pair: two jobs at once on two thread groups
 * (the contract is in threads.h).
 */
#include "core/threads.h"

#include <assert.h>
#include <stdatomic.h>
#ifdef _OPENMP
#include <pthread.h>
#endif

static atomic_int fail_spawn;

void tsr_thread_pair_fail_spawn_for_test(int on) {
    atomic_store(&fail_spawn, on != 0);
}

#ifdef _OPENMP
typedef struct pair_job {
    void (*fn)(void *arg);
    void *arg;
    int threads;
} pair_job;

static void pair_job_run(const pair_job *j) {
    omp_set_num_threads(j->threads); /* this thread's own setting (nthreads-var) */
    j->fn(j->arg);
}

static void *pair_job_thread(void *arg) {
    pair_job_run(arg);
    return NULL;
}
#endif

void tsr_thread_pair(void (*fn)(void *arg), void *arg0, void *arg1, int threads0, int threads1) {
    assert(fn && threads0 >= 1 && threads1 >= 1);
#ifdef _OPENMP
    if (!omp_in_parallel()) {
        int saved = omp_get_max_threads(), all = threads0 + threads1;
        pair_job job[2] = { { fn, arg0, threads0 }, { fn, arg1, threads1 } };
        if (all == 2) {
            /* A loop, not sections by thread id: both run if the runtime gives one thread. */
#pragma omp parallel for num_threads(2) schedule(static, 1)
            for (int i = 0; i < 2; i++) pair_job_run(&job[i]);
        } else {
            pthread_t th;
            int spawned = !atomic_load(&fail_spawn) &&
                          pthread_create(&th, NULL, pair_job_thread, &job[1]) == 0;
            if (!spawned) job[0].threads = job[1].threads = all; /* in turn: each gets them all */
            pair_job_run(&job[0]);
            if (spawned)
                pthread_join(th, NULL);
            else
                pair_job_run(&job[1]);
        }
        omp_set_num_threads(saved);
        return;
    }
#else
    (void)threads0;
    (void)threads1;
#endif
    fn(arg0);
    fn(arg1);
}
