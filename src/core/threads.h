/*
 * core/threads.h - the OpenMP thread count and index, 1 and 0 when built
 * without OpenMP: per-thread scratch is sized by tsr_thread_max() and indexed
 * by tsr_thread_index() inside a parallel region. And tsr_thread_pair: two
 * jobs at once on two thread groups, the library's one thread created
 * outside OpenMP.
 */
#ifndef TSR_CORE_THREADS_H
#define TSR_CORE_THREADS_H

#ifdef _OPENMP
#include <omp.h>
#endif

/** Most threads a parallel region started here may use (omp_get_max_threads). */
static inline int tsr_thread_max(void) {
#ifdef _OPENMP
    return omp_get_max_threads();
#else
    return 1;
#endif
}

/** The calling thread's index in its parallel region (omp_get_thread_num). */
static inline int tsr_thread_index(void) {
#ifdef _OPENMP
    return omp_get_thread_num();
#else
    return 0;
#endif
}

/** 1 inside an active parallel region (omp_in_parallel), where a new region gets no team. */
static inline int tsr_thread_in_parallel(void) {
#ifdef _OPENMP
    return omp_in_parallel();
#else
    return 0;
#endif
}

/**
 * tsr_thread_pair - fn(arg0) and fn(arg1) at once, on two groups of
 * threads0 and threads1 OpenMP threads; returns when both have returned.
 *
 * Each call runs with its thread's OpenMP thread count (nthreads-var) set to
 * its share, so tsr_thread_max() inside it is threads0 or threads1 and it
 * sizes its per-thread scratch by that; the caller's count is restored
 * before returning. OpenMP's max-active-levels is never touched (one per
 * device in OpenMP 4.5 runtimes; one per thread in GCC 12's libgomp).
 * Let T = threads0 + threads1:
 *   - T = 2: a parallel loop of two iterations on the calling thread's team,
 *     one thread each (their inner regions are inactive: nothing nests).
 *   - T >= 3: each call needs a team of its own, which a nested region gets
 *     only with max-active-levels >= 2. So fn(arg0) runs on the calling
 *     thread and fn(arg1) on one POSIX thread created for it and joined
 *     before returning; OpenMP gives that thread top-level regions of its
 *     own and a pool of threads1 - 1 workers, created and torn down with it.
 *     Under OMP_PROC_BIND libgomp binds that thread's team from the first
 *     place, like the caller's: the two groups share places (cores).
 *   - If the thread cannot be created, fn(arg0) and then fn(arg1) run on
 *     the calling thread, each with all T threads.
 *   - Inside a parallel region, or built without OpenMP: fn(arg0) and then
 *     fn(arg1) on the calling thread, its thread count untouched.
 * Preconditions: threads0, threads1 >= 1. fn must not touch the other
 * call's data, and it reports failure through its argument (tsr_last_error
 * is per thread: copy the message out).
 */
void tsr_thread_pair(void (*fn)(void *arg), void *arg0, void *arg1, int threads0, int threads1);

/** Test hook: while on != 0, tsr_thread_pair acts as if the thread could not be created. */
void tsr_thread_pair_fail_spawn_for_test(int on);

#endif
