/*
 * tests/test_nn_malloc.c - the allocator is the program's: encrypted inference leaves
 * glibc's malloc settings as the program set them, and tsr_malloc_tune (include/tessera/
 * core.h) does what it promises, observed through glibc itself (mallinfo2, malloc_info):
 * one arena for a new thread, freed memory kept in the heap (no trim, no mmap, the heap
 * grown with a 16 MiB pad). Under a sanitizer or without glibc, tsr_malloc_tune must
 * refuse with TSR_ERR_UNSUPPORTED (the sanitizer's allocator ignores mallopt) and the glibc
 * observations are not available.
 *
 * The tests run in this order in one process: the arena test must come before any other
 * thread exists, and the settings each test makes stay for the next.
 */
#include "nn_act.h"
#include "nn_check.h"

#include "nn/nn_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* AddressSanitizer's allocator ignores mallopt: TSR_SANITIZED for `make asan`, the compilers'
   own macros for -fsanitize=address given some other way (CFLAGS). */
#if defined(__SANITIZE_ADDRESS__)
#define ASAN_BUILD 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define ASAN_BUILD 1
#endif
#endif

#if defined(__GLIBC__) && !defined(TSR_SANITIZED) && !defined(ASAN_BUILD)
#define GLIBC_MALLOC 1
#include <malloc.h>
#include <pthread.h>
#endif

#define BIG ((size_t)256 << 20) /* more than the test's inference ever frees at once */
#define MIB ((size_t)1 << 20)

#ifdef GLIBC_MALLOC
/* Number of malloc arenas: the <heap nr="..."> entries of malloc_info. */
static int arenas(void) {
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    assert_non_null(f);
    assert_int_equal(malloc_info(0, f), 0);
    fclose(f);
    int n = 0;
    for (const char *s = buf; (s = strstr(s, "<heap nr=")) != NULL; s++) n++;
    free(buf);
    return n;
}

/* A BIG block from the main arena, written so the compiler keeps it, then freed: the
 * main thread's system memory (mallinfo2 arena) and mmapped blocks around it. */
typedef struct big_block {
    size_t arena_held, arena_freed; /* system bytes of the arenas with the block, after free */
    size_t mmapped_delta;           /* mmapped blocks added by the allocation */
    size_t top_held;                /* free bytes at the heap top with the block */
} big_block;

static big_block alloc_free_big(void) {
    big_block r;
    size_t h0 = mallinfo2().hblks;
    volatile char *p = malloc(BIG);
    assert_non_null((void *)p);
    p[0] = 1;
    p[BIG - 1] = 1;
    struct mallinfo2 held = mallinfo2();
    r.arena_held = held.arena;
    r.mmapped_delta = held.hblks - h0;
    r.top_held = held.keepcost;
    free((void *)p);
    r.arena_freed = mallinfo2().arena;
    return r;
}

typedef struct gate {
    pthread_barrier_t allocated, release;
} gate;

/* Allocate (this picks the thread's arena), then hold it until released. */
static void *holder(void *arg) {
    gate *g = arg;
    void *volatile p = malloc(4096);
    pthread_barrier_wait(&g->allocated);
    pthread_barrier_wait(&g->release);
    free(p);
    return NULL;
}

static void *one_malloc(void *arg) {
    (void)arg;
    void *volatile p = malloc(4096);
    free(p);
    return NULL;
}
#endif

/*
 * TSR_MALLOC_ONE_ARENA: a thread started after it shares an existing arena. Without it, a new
 * thread gets an arena of its own (checked first, while thread A holds one, so that glibc's
 * list of free arenas is empty).
 */
static void test_one_arena(void **state) {
    (void)state;
#ifdef GLIBC_MALLOC
    gate g;
    pthread_barrier_init(&g.allocated, NULL, 2);
    pthread_barrier_init(&g.release, NULL, 2);
    int n0 = arenas();
    pthread_t a, b;
    assert_int_equal(pthread_create(&a, NULL, holder, &g), 0);
    pthread_barrier_wait(&g.allocated);
    int n1 = arenas();
    if (n1 == n0)
        print_message("(new threads share the arenas already: GLIBC_TUNABLES arena_max?)\n");
    else
        assert_int_equal(n1, n0 + 1);
    tt_ok(tsr_malloc_tune(TSR_MALLOC_ONE_ARENA));
    assert_int_equal(pthread_create(&b, NULL, one_malloc, NULL), 0);
    assert_int_equal(pthread_join(b, NULL), 0);
    assert_int_equal(arenas(), n1);
    pthread_barrier_wait(&g.release);
    assert_int_equal(pthread_join(a, NULL), 0);
    pthread_barrier_destroy(&g.allocated);
    pthread_barrier_destroy(&g.release);
#else
    tt_fails(tsr_malloc_tune(TSR_MALLOC_ONE_ARENA), TSR_ERR_UNSUPPORTED);
#endif
}

/*
 * The program's own settings (trim the heap top above 1 MiB, no mmap, no pad) survive
 * compiling, encrypting and running a plan: a freed BIG block at the heap top is given back.
 * (Before, the runner set M_TRIM_THRESHOLD -1 on its first use, and nothing was.)
 * Assumes brk can grow the heap by BIG contiguously (a standard Linux box: no small
 * `ulimit -d`, no strict overcommit); otherwise glibc extends it with mmap and cannot trim.
 */
static void test_inference_keeps_program_settings(void **state) {
    (void)state;
#ifdef GLIBC_MALLOC
    assert_int_equal(mallopt(M_MMAP_MAX, 0), 1);
    assert_int_equal(mallopt(M_TOP_PAD, 0), 1);
    assert_int_equal(mallopt(M_TRIM_THRESHOLD, 1 << 20), 1);
    big_block before = alloc_free_big();
    assert_true(before.arena_held - before.arena_freed >= BIG - MIB);
#endif
    tsr_prng g;
    tt_prng(&g, 1);
    const double coef[3] = { 0.1, 0.5, 0.25 };
    tsr_nn_model *m = tt_nn_act_model(&g, coef, 1);
    enum { n = 4 };
    double x[n * TT_ACT_NIN], ref[n * TT_ACT_NOUT], out[n * TT_ACT_NOUT];
    tt_uniform(&g, x, n * TT_ACT_NIN, 1.0);
    tt_ok(nn_model_forward(m, x, n, ref));
    tsr_nn_compile_opts o;
    tt_nn_compile_opts(&o, n, TSR_NN_PACK_BATCH, 11);
    tsr_nn_plan *p;
    tt_ok(tsr_nn_compile(m, &o, &p));
    tt_nn_debug d;
    tt_nn_debug_create(p, &d);
    double bits = tt_nn_run_bits(p, d.ckks, x, n, out, ref);
    if (!(bits > 15)) fail_msg("the inference itself is wrong: %.1f bits", bits);
    tt_nn_debug_free(&d);
    tsr_nn_plan_free(p);
    tsr_nn_model_free(m);
#ifdef GLIBC_MALLOC
    big_block after = alloc_free_big();
    assert_int_equal(after.mmapped_delta, 0);
    if (after.arena_held - after.arena_freed < BIG - MIB)
        fail_msg("after inference a freed block of %zu MiB at the heap top gave back %zu MiB: "
                 "the library changed the trim threshold",
                 BIG / MIB, (after.arena_held - after.arena_freed) / MIB);
#endif
}

/*
 * TSR_MALLOC_KEEP_FREED over glibc's defaults: a BIG block comes from the heap (not mmap), the
 * heap grows with a 16 MiB pad, and freeing it gives nothing back.
 */
static void test_keep_freed(void **state) {
    (void)state;
#ifdef GLIBC_MALLOC
    assert_int_equal(mallopt(M_MMAP_MAX, 65536), 1);
    assert_int_equal(mallopt(M_MMAP_THRESHOLD, 128 << 10), 1);
    malloc_trim(0); /* no free BIG block at the heap top, whatever ran before */
    big_block plain = alloc_free_big();
    assert_int_equal(plain.mmapped_delta, 1);
    tt_ok(tsr_malloc_tune(TSR_MALLOC_KEEP_FREED));
    big_block kept = alloc_free_big();
    assert_int_equal(kept.mmapped_delta, 0);
    assert_true(kept.top_held >= 16 * MIB);
    assert_int_equal(kept.arena_freed, kept.arena_held);
#else
    tt_fails(tsr_malloc_tune(TSR_MALLOC_KEEP_FREED), TSR_ERR_UNSUPPORTED);
#endif
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_one_arena),
        cmocka_unit_test(test_inference_keeps_program_settings),
        cmocka_unit_test(test_keep_freed),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
