/*
 * ring/kernels.c - the kernel table of each SIMD family. A family's own
 * file provides the kernels it implements (NULL elsewhere); the table used
 * at run time fills the gaps from the next family down, ending at the
 * portable kernels, so every entry is always callable.
 */
#include "ring/kernels.h"
#include "ring/vec.h"

#include <pthread.h>

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define TSR_HAVE_X86_KERNELS 1
extern const tsr_ring_kernels tsr_ring_kernels_avx2;
extern const tsr_ring_kernels tsr_ring_kernels_avx512;
extern const tsr_ring_kernels tsr_ring_kernels_ifma;
#endif

static tsr_ring_kernels merged[TSR_SIMD_AVX512IFMA + 1];
static pthread_once_t merged_once = PTHREAD_ONCE_INIT;

/* Copy every non-NULL entry of src over dst (keeping dst's family tag). */
static void overlay(tsr_ring_kernels *dst, const tsr_ring_kernels *src) {
#define OV(f) \
    if (src->f) dst->f = src->f
    OV(ntt_fwd);
    OV(ntt_inv);
    OV(ntt_fwd_outer);
    OV(ntt_fwd_inner);
    OV(ntt_inv_inner);
    OV(ntt_inv_outer);
    OV(add);
    OV(sub);
    OV(neg);
    OV(mul);
    OV(mul_add);
    OV(mul_scalar);
    OV(mul_scalar_add);
    OV(add_scalar);
    OV(add_above);
    OV(mul_shoup);
    OV(conv_row);
    OV(dot2);
    OV(copy_stream);
    OV(permute);
    OV(sub_mul_scalar_add);
    OV(quotient_est);
    OV(quotient_round);
    OV(chacha);
    OV(squeeze_lemire);
#undef OV
}
/* 25 kernels after the family tag: extend overlay() when adding one. */
_Static_assert(sizeof(tsr_ring_kernels) == 26 * sizeof(void (*)(void)), "update overlay()");

static void build_tables(void) {
    merged[TSR_SIMD_PORTABLE] = tsr_ring_kernels_portable;
    for (int f = 1; f <= TSR_SIMD_AVX512IFMA; f++) {
        merged[f] = merged[f - 1];
        merged[f].family = (tsr_simd)f;
    }
#ifdef TSR_HAVE_X86_KERNELS
    overlay(&merged[TSR_SIMD_AVX2], &tsr_ring_kernels_avx2);
    overlay(&merged[TSR_SIMD_AVX512], &merged[TSR_SIMD_AVX2]);
    overlay(&merged[TSR_SIMD_AVX512], &tsr_ring_kernels_avx512);
    overlay(&merged[TSR_SIMD_AVX512IFMA], &merged[TSR_SIMD_AVX512]);
    overlay(&merged[TSR_SIMD_AVX512IFMA], &tsr_ring_kernels_ifma);
#endif
}

const tsr_ring_kernels *tsr_ring_kernels_for(tsr_simd family) {
    pthread_once(&merged_once, build_tables);
    if ((unsigned)family > TSR_SIMD_AVX512IFMA) family = TSR_SIMD_PORTABLE;
#ifndef TSR_HAVE_X86_KERNELS
    family = TSR_SIMD_PORTABLE;
#endif
    return &merged[family];
}

void tsr_ring_stream_fence(void) {
#ifdef TSR_HAVE_X86_KERNELS
    __builtin_ia32_sfence();
#else
    __atomic_thread_fence(__ATOMIC_SEQ_CST);
#endif
}

const tsr_ring_kernels *tsr_ring_kernels_active(void) {
    return tsr_ring_kernels_for(tsr_simd_active());
}
