/*
 * tessera/core.h - process-wide settings: library initialisation, threads,
 * the allocator (opt-in), and the SIMD kernel family used by the ring layer.
 */
#ifndef TESSERA_CORE_H
#define TESSERA_CORE_H

#include "tessera/common.h"

TSR_BEGIN_DECLS

/**
 * Initialise the library (libsodium's CSPRNG, CPU detection). Every function
 * that needs randomness calls it itself, so calling it is optional; it is
 * idempotent and thread-safe. Fails with TSR_ERR_RNG if the OS CSPRNG is
 * unavailable.
 */
TSR_API tsr_status tsr_init(void);

/** Number of OpenMP threads Tessera uses (1 in a build without OpenMP). */
TSR_API int tsr_get_num_threads(void);
/** Set the number of OpenMP threads (n >= 1); no effect without OpenMP. */
TSR_API void tsr_set_num_threads(int n);

/** What tsr_malloc_tune changes in the process's allocator (flags, or-ed together). */
typedef enum tsr_malloc_flags {
    /**
     * Keep freed memory in the heap for reuse: no mmap per large block (glibc M_MMAP_MAX 0),
     * never trim the heap top (M_TRIM_THRESHOLD -1), grow it 16 MiB at a time (M_TOP_PAD).
     * The process keeps its peak memory (RSS) until it exits.
     */
    TSR_MALLOC_KEEP_FREED = 0x1,
    /** One malloc arena for every thread (glibc M_ARENA_MAX 1). */
    TSR_MALLOC_ONE_ARENA = 0x2
} tsr_malloc_flags;

/**
 * Opt-in allocator settings for the whole process (glibc's mallopt): the
 * library itself never changes them; the `tessera` command calls
 * tsr_malloc_tune(TSR_MALLOC_KEEP_FREED | TSR_MALLOC_ONE_ARENA) first thing.
 *
 * Why: encrypted inference and bootstrapping allocate and free thousands of
 * blocks of a few hundred KiB to tens of MiB (ciphertexts, key-switching
 * decompositions). glibc serves blocks above its mmap threshold with a fresh
 * mmap and unmaps them on free, and trims the heap top, so every new block
 * page-faults in freshly zeroed pages: 13-18 % of a bootstrap's CPU time at
 * N = 2^16 (docs/BENCHMARKS.md, "Zen 5 with AVX-512 IFMA: where the time
 * goes", the row of a11e6c3). For inference glibc's adaptive mmap
 * threshold already keeps most ciphertexts in the heap, but each batch
 * re-faults what the heap trim gave away: at N = 2^13 (CryptoNets, one
 * thread) the opt-in saves 7 % of the page faults for one batch, 19 % over
 * six; its CPU time is within the spread for one batch, about 2 % less over
 * six (docs/BENCHMARKS.md, "The allocator through the library"). With
 * two or more threads, a thread other than the caller gets an arena of its
 * own whose heaps glibc unmaps as soon as they are empty, whatever the trim
 * threshold (bootstrapping's EvalMod half on the second thread: about 19000
 * page faults per bootstrap at N = 2^16 against 650-3200 with one arena;
 * include/tessera/circuits.h, "Bootstrapping"). The price: the process keeps
 * its peak memory, and with one arena threads share its lock (measured on
 * `tessera serve`: CPU time within the spread; docs/BENCHMARKS.md).
 *
 * flags: TSR_MALLOC_* or-ed (an unknown bit aborts). Call it once, first
 * thing in main, before any other thread allocates: an arena a thread
 * already has is kept, and glibc ignores M_ARENA_MAX once it has made more
 * than 8 arenas. Not thread-safe with respect to concurrent tsr_malloc_tune
 * calls. Without code, for a whole process: GLIBC_TUNABLES (the line in
 * include/tessera/circuits.h, "Bootstrapping"), read at start-up.
 *
 * Returns TSR_ERR_UNSUPPORTED when glibc's mallopt is unavailable or refuses
 * a setting (a build on another C library; AddressSanitizer, whose allocator
 * ignores mallopt); settings already made stay made. An allocator interposed
 * without a mallopt of its own (jemalloc or tcmalloc via LD_PRELOAD) is not
 * detected: glibc's mallopt (or the allocator's stub) accepts the settings,
 * the call returns TSR_OK and the allocator in use changes nothing. Python:
 * tessera.tune_malloc().
 */
TSR_API tsr_status tsr_malloc_tune(unsigned flags);

/** SIMD kernel families, ordered from least to most capable. */
typedef enum tsr_simd {
    TSR_SIMD_PORTABLE = 0, /**< plain C: the reference every kernel is tested against */
    TSR_SIMD_AVX2,         /**< AVX2 */
    TSR_SIMD_AVX512,       /**< AVX-512F/DQ/VL without IFMA */
    TSR_SIMD_AVX512IFMA    /**< AVX-512 with IFMA52 (primes below 2^50) */
} tsr_simd;

/** Best family this CPU supports. */
TSR_API tsr_simd tsr_simd_detected(void);
/**
 * Family in use: the detected one, or the one forced by the environment
 * variable TSR_SIMD=portable|avx2|avx512|avx512ifma, or by tsr_simd_force().
 */
TSR_API tsr_simd tsr_simd_active(void);
/**
 * Force a family for the whole process (tests use this to compare kernels).
 * Fails with TSR_ERR_UNSUPPORTED if the CPU cannot run it.
 * Not thread-safe with concurrent evaluation: call it between operations.
 */
TSR_API tsr_status tsr_simd_force(tsr_simd level);
/** "portable", "avx2", "avx512" or "avx512ifma". */
TSR_API const char *tsr_simd_name(tsr_simd level);
/** Parse a family name (as above); TSR_ERR_INVALID_ARG for anything else. */
TSR_API tsr_status tsr_simd_parse(const char *name, tsr_simd *out);

TSR_END_DECLS

#endif /* TESSERA_CORE_H */
