/*
 * core/alloc.h - aligned, overflow-checked allocation and secret wiping.
 * Buffers that hold RNS limbs should come from here: 64-byte aligned, so a
 * vector never splits a cache line. The SIMD kernels do not rely on it
 * (they load and store unaligned; test_ring_simd runs them on unaligned
 * buffers), except for streaming stores, which check the address.
 */
#ifndef TSR_CORE_ALLOC_H
#define TSR_CORE_ALLOC_H

#include <stddef.h>
#include <stdint.h>

#define TSR_ALIGN 64

/** 64-byte aligned allocation; NULL on failure or size 0. Free with tsr_free. */
void *tsr_alloc(size_t size);
/** As tsr_alloc, zero-filled. */
void *tsr_calloc(size_t size);
/** n*size bytes, zero-filled; NULL if the product overflows. */
void *tsr_calloc_array(size_t n, size_t size);
/** Free memory from tsr_alloc/tsr_calloc*; NULL is a no-op. */
void tsr_free(void *p);
/** Wipe n bytes (not optimised away), then free. For secret material. */
void tsr_free_secret(void *p, size_t n);
/** Wipe n bytes in place (libsodium's sodium_memzero). */
void tsr_wipe(void *p, size_t n);

/** *out = a*b; returns 0 on success, -1 on overflow. */
static inline int tsr_mul_size(size_t a, size_t b, size_t *out) {
    return __builtin_mul_overflow(a, b, out) ? -1 : 0;
}

/** *out = a+b; returns 0 on success, -1 on overflow. */
static inline int tsr_add_size(size_t a, size_t b, size_t *out) {
    return __builtin_add_overflow(a, b, out) ? -1 : 0;
}

/** strdup with tsr_alloc; NULL on failure. Free with tsr_free. */
char *tsr_strdup(const char *s);

#endif /* TSR_CORE_ALLOC_H */
