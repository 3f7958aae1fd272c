/*
 * core/init.c - library initialisation, version, threads, the allocator
 * opt-in (tsr_malloc_tune) and SIMD selection.
 */
#include "tessera/core.h"
#include "core/error.h"

#ifdef __GLIBC__
#include <malloc.h>
#endif
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

const char *tsr_version_string(void) {
    return TSR_VERSION_STRING;
}

unsigned tsr_version_number(void) {
    return TSR_VERSION_NUMBER;
}

tsr_status tsr_init(void) {
    /* sodium_init is itself idempotent and thread-safe: 0 first time, 1 after. */
    if (sodium_init() < 0)
        return tsr_fail(TSR_ERR_RNG, "libsodium could not initialise the OS CSPRNG "
                                     "(is /dev/urandom or getrandom() available?)");
    return TSR_OK;
}

int tsr_get_num_threads(void) {
#ifdef _OPENMP
    return omp_get_max_threads();
#else
    return 1;
#endif
}

void tsr_set_num_threads(int n) {
    TSR_REQUIRE(n >= 1, "tsr_set_num_threads: n must be >= 1");
#ifdef _OPENMP
    omp_set_num_threads(n);
#else
    (void)n;
#endif
}

/* ---- the process's allocator (opt-in, include/tessera/core.h) ------------ */

tsr_status tsr_malloc_tune(unsigned flags) {
    TSR_REQUIRE((flags & ~(unsigned)(TSR_MALLOC_KEEP_FREED | TSR_MALLOC_ONE_ARENA)) == 0,
                "tsr_malloc_tune: unknown flags (use TSR_MALLOC_KEEP_FREED, TSR_MALLOC_ONE_ARENA)");
#ifdef __GLIBC__
    /* mallopt returns 1 on success (0 from allocators that ignore it, e.g. ASan's). A trim
       threshold of -1 disables trimming (mallopt(3)); with mmap off the mmap threshold does
       not matter. */
    int ok = 1;
    if (flags & TSR_MALLOC_KEEP_FREED) {
        ok &= mallopt(M_MMAP_MAX, 0) == 1;
        ok &= mallopt(M_TRIM_THRESHOLD, -1) == 1;
        ok &= mallopt(M_TOP_PAD, 16 << 20) == 1;
    }
    if (flags & TSR_MALLOC_ONE_ARENA) ok &= mallopt(M_ARENA_MAX, 1) == 1;
    if (ok) return TSR_OK;
    return tsr_fail(TSR_ERR_UNSUPPORTED,
                    "the allocator refused mallopt (not glibc's malloc: a sanitizer or an "
                    "interposed allocator); its own defaults apply");
#else
    return tsr_fail(TSR_ERR_UNSUPPORTED,
                    "tsr_malloc_tune needs glibc's malloc; this build's C library has its own "
                    "defaults");
#endif
}

/* ---- SIMD selection ---------------------------------------------------- */

static const char *const simd_names[] = { "portable", "avx2", "avx512", "avx512ifma" };

const char *tsr_simd_name(tsr_simd level) {
    if ((unsigned)level > TSR_SIMD_AVX512IFMA) return "unknown";
    return simd_names[level];
}

tsr_status tsr_simd_parse(const char *name, tsr_simd *out) {
    for (int i = 0; i <= TSR_SIMD_AVX512IFMA; i++) {
        if (name && strcmp(name, simd_names[i]) == 0) {
            *out = (tsr_simd)i;
            return TSR_OK;
        }
    }
    return tsr_fail(TSR_ERR_INVALID_ARG,
                    "unknown SIMD family '%s': use portable, avx2, avx512 or avx512ifma",
                    name ? name : "(null)");
}

tsr_simd tsr_simd_detected(void) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq") &&
        __builtin_cpu_supports("avx512vl")) {
        if (__builtin_cpu_supports("avx512ifma")) return TSR_SIMD_AVX512IFMA;
        return TSR_SIMD_AVX512;
    }
    if (__builtin_cpu_supports("avx2")) return TSR_SIMD_AVX2;
#endif
    return TSR_SIMD_PORTABLE;
}

/* -1 = not decided yet. Written once at first use or by tsr_simd_force. */
static int simd_active = -1;

tsr_status tsr_simd_force(tsr_simd level) {
    if ((unsigned)level > TSR_SIMD_AVX512IFMA)
        return tsr_fail(TSR_ERR_INVALID_ARG, "unknown SIMD family %d", (int)level);
    if (level > tsr_simd_detected())
        return tsr_fail(TSR_ERR_UNSUPPORTED, "this CPU cannot run the %s kernels (best: %s)",
                        tsr_simd_name(level), tsr_simd_name(tsr_simd_detected()));
    __atomic_store_n(&simd_active, (int)level, __ATOMIC_RELEASE);
    return TSR_OK;
}

tsr_simd tsr_simd_active(void) {
    int cur = __atomic_load_n(&simd_active, __ATOMIC_ACQUIRE);
    if (cur >= 0) return (tsr_simd)cur;
    tsr_simd level = tsr_simd_detected();
    const char *env = getenv("TSR_SIMD");
    if (env && *env) {
        tsr_simd want;
        if (tsr_simd_parse(env, &want) != TSR_OK) {
            fprintf(stderr,
                    "tessera: warning: ignoring TSR_SIMD=%s (use portable, avx2, avx512 "
                    "or avx512ifma)\n",
                    env);
        } else if (want > level) {
            fprintf(stderr,
                    "tessera: warning: TSR_SIMD=%s is not supported by this CPU; "
                    "using %s\n",
                    env, tsr_simd_name(level));
        } else {
            level = want;
        }
    }
    __atomic_store_n(&simd_active, (int)level, __ATOMIC_RELEASE);
    return level;
}
