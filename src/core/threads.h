/*
 * core/threads.h - the OpenMP thread count and index, 1 and 0 when built
 * without OpenMP: per-thread scratch is sized by tsr_thread_max() and indexed
 * by tsr_thread_index() inside a parallel region.
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

#endif
