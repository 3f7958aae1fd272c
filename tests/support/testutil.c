/*
 * tests/support/testutil.c - shared test helpers.
 */
#include "testutil.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

double tt_precision_bits(const double *got, const double *want, size_t n) {
    double worst = 0;
    for (size_t i = 0; i < n; i++) {
        double e = fabs(got[i] - want[i]);
        if (!(e == e)) return -INFINITY; /* NaN */
        if (e > worst) worst = e;
    }
    if (worst == 0) return 60;
    double b = -log2(worst);
    return b > 60 ? 60 : b;
}

/* tt_rel_err's running maxima: the worst difference (NaN sticks) and the scale. */
typedef struct rel_acc {
    double err, scale;
    int nan;
} rel_acc;

static void rel_add(rel_acc *r, double got, double want) {
    double d = fabs(got - want);
    if (!(d == d)) r->nan = 1;
    if (d > r->err) r->err = d;
    if (fabs(want) > r->scale) r->scale = fabs(want);
}

static double rel_done(const rel_acc *r) {
    return r->nan ? INFINITY : r->err / r->scale;
}

double tt_rel_err(const double *got, const double *want, size_t n, double min_scale) {
    rel_acc r = { 0, min_scale, 0 };
    for (size_t i = 0; i < n; i++) rel_add(&r, got[i], want[i]);
    return rel_done(&r);
}

double tt_rel_err_f(const float *got, const float *want, size_t n, double min_scale) {
    rel_acc r = { 0, min_scale, 0 };
    for (size_t i = 0; i < n; i++) rel_add(&r, got[i], want[i]);
    return rel_done(&r);
}

void tt_prng(tsr_prng *g, uint64_t domain) {
    static int printed;
    uint64_t seed = 20261123;
    const char *env = getenv("TSR_TEST_SEED");
    if (env && *env) seed = strtoull(env, NULL, 10);
    if (!printed) {
        fprintf(stderr, "[test seed %llu; set TSR_TEST_SEED to change]\n",
                (unsigned long long)seed);
        printed = 1;
    }
    uint8_t key[TSR_SEED_BYTES] = { 0 };
    for (int i = 0; i < 8; i++) key[i] = (uint8_t)(seed >> (8 * i));
    tsr_prng_init(g, key, domain);
}

void tt_uniform(tsr_prng *g, double *x, int64_t n, double s) {
    for (int64_t i = 0; i < n; i++) x[i] = s * (2 * tsr_prng_double(g) - 1);
}

int tt_sanitized(void) {
#ifdef TSR_SANITIZED
    return 1;
#else
    return 0;
#endif
}

const char *tt_source_path(const char *rel) {
    static char buf[4096];
    const char *src = getenv("TSR_SOURCE_DIR");
    snprintf(buf, sizeof buf, "%s/%s", src ? src : ".", rel);
    return buf;
}

/* The process's private temporary directory (mkdtemp: never one a stale run left behind, even
 * when this pid was used before), removed at exit by the process that made it (forked children
 * leave through _exit). */
static char temp_dir[1024];
static pid_t temp_owner;

static void remove_temp_dir(void) {
    if (temp_dir[0] == '\0' || getpid() != temp_owner) return;
    char cmd[4200];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", temp_dir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", temp_dir);
}

const char *tt_temp_path(const char *suffix) {
    static char buf[4096];
    static unsigned counter;
    if (temp_dir[0] == '\0') {
        const char *tmp = getenv("TMPDIR");
        /* an empty TMPDIR means none, as for mktemp(1) and the scripts' ${TMPDIR:-/tmp} */
        snprintf(temp_dir, sizeof temp_dir, "%s/tsr_test_%ld_XXXXXX", tmp && *tmp ? tmp : "/tmp",
                 (long)getpid());
        if (!mkdtemp(temp_dir)) {
            fprintf(stderr, "mkdtemp %s failed\n", temp_dir);
            abort();
        }
        temp_owner = getpid();
        atexit(remove_temp_dir);
    }
    snprintf(buf, sizeof buf, "%s/%u%s", temp_dir, counter++, suffix ? suffix : "");
    return buf;
}
