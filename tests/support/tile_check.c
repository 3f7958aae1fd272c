/*
 * tests/support/tile_check.c - see tile_check.h. The layout formulas here are
 * written from the paper's definitions independently of src/tile.
 */
#include "tile_check.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int64_t ext_of(const tsr_tile_dim *d) {
    return d->dup ? 1 : (d->size + d->tile - 1) / d->tile;
}

void tc_random_shape(tsr_prng *g, int64_t slots, int ndims, unsigned flags, int64_t max_tiles,
                     tsr_tile_shape *out) {
    int bits = 0;
    while (((int64_t)1 << bits) < slots) bits++;
    for (;;) {
        memset(out, 0, sizeof *out);
        out->ndims = ndims;
        int b[TSR_TILE_MAX_DIMS] = { 0 };
        for (int i = 0; i < bits; i++) b[tsr_prng_uniform(g, (uint64_t)ndims)]++;
        int64_t tiles = 1;
        for (int i = 0; i < ndims; i++) {
            tsr_tile_dim *d = &out->dim[i];
            d->tile = (int64_t)1 << b[i];
            if ((flags & TC_DUP) && tsr_prng_uniform(g, 6) == 0) {
                d->dup = 1;
                d->size = 1;
            } else {
                d->size = 1 + (int64_t)tsr_prng_uniform(g, (uint64_t)(2 * d->tile + 2));
                if ((flags & TC_INTERLEAVE) && tsr_prng_uniform(g, 3) == 0) d->interleaved = 1;
                if ((flags & TC_UNKNOWN) && tsr_prng_uniform(g, 5) == 0) d->unknown = 1;
            }
            tiles *= ext_of(d);
        }
        if (tiles <= max_tiles) return;
    }
}

void tc_random_dense(tsr_prng *g, double *x, size_t n, double lo, double hi) {
    for (size_t i = 0; i < n; i++) x[i] = lo + (hi - lo) * tsr_prng_double(g);
}

void tc_shape(const char *text, int64_t slots, tsr_tile_shape *out) {
    tsr_status st = tsr_tile_shape_parse(text, slots, out);
    if (st != TSR_OK) fail_msg("parsing %s: %s", text, tsr_last_error());
}

int64_t tc_offset(const tsr_tile_shape *s, const int64_t *coords) {
    int64_t off = 0;
    for (int i = 0; i < s->ndims; i++) off = off * s->dim[i].size + coords[i];
    return off;
}

void tc_locate(const tsr_tile_shape *s, const int64_t *coords, int64_t *tile, int64_t *slot) {
    int64_t t = 0, sl = 0;
    for (int i = 0; i < s->ndims; i++) {
        const tsr_tile_dim *d = &s->dim[i];
        int64_t e = ext_of(d), j = coords[i], k, p;
        if (d->dup) {
            k = 0;
            p = 0;
        } else if (d->interleaved) {
            k = j % e;
            p = j / e;
        } else {
            k = j / d->tile;
            p = j % d->tile;
        }
        t = t * e + k;
        sl = sl * d->tile + p;
    }
    *tile = t;
    *slot = sl;
}

double tc_check(const tsr_tile *t, const double *ref, double tol) {
    const tsr_tile_shape *s = tsr_tile_get_shape(t);
    int64_t slots = tsr_tile_shape_slots(s), ntiles = tsr_tile_shape_num_tiles(s);
    double *raw = malloc((size_t)(slots * ntiles) * sizeof *raw);
    assert_non_null(raw);
    tsr_status st = tsr_tile_decrypt_raw(t, raw);
    if (st != TSR_OK) fail_msg("decrypt_raw: %s", tsr_last_error());
    char buf[512];
    tsr_tile_shape_format(s, buf, sizeof buf);
    double worst = 0;
    int nd = s->ndims;
    int64_t e[TSR_TILE_MAX_DIMS];
    for (int i = 0; i < nd; i++) e[i] = ext_of(&s->dim[i]);
    for (int64_t ti = 0; ti < ntiles; ti++) {
        int64_t k[TSR_TILE_MAX_DIMS], rem = ti;
        for (int i = nd - 1; i >= 0; i--) {
            k[i] = rem % e[i];
            rem /= e[i];
        }
        for (int64_t sl = 0; sl < slots; sl++) {
            int64_t p[TSR_TILE_MAX_DIMS], r2 = sl;
            for (int i = nd - 1; i >= 0; i--) {
                p[i] = r2 % s->dim[i].tile;
                r2 /= s->dim[i].tile;
            }
            int64_t coords[TSR_TILE_MAX_DIMS];
            int padding = 0, unknown = 0;
            for (int i = 0; i < nd; i++) {
                const tsr_tile_dim *d = &s->dim[i];
                int64_t j;
                if (d->dup)
                    j = 0;
                else if (d->interleaved)
                    j = p[i] * e[i] + k[i];
                else
                    j = k[i] * d->tile + p[i];
                coords[i] = j;
                if (!d->dup && j >= d->size) {
                    padding = 1;
                    unknown |= d->unknown;
                }
            }
            double got = raw[ti * slots + sl];
            double want;
            if (!padding)
                want = ref[tc_offset(s, coords)];
            else if (!unknown)
                want = 0;
            else
                continue;
            double err = fabs(got - want);
            if (!(err <= tol)) {
                free(raw);
                fail_msg("%s: tile %lld slot %lld (%s) holds %.10g, want %.10g", buf, (long long)ti,
                         (long long)sl, padding ? "zero padding" : "element", got, want);
            }
            if (err > worst) worst = err;
        }
    }
    free(raw);
    return worst;
}

tsr_backend *tc_mockup(int64_t slots, int top_level) {
    tsr_mockup_params p;
    tsr_mockup_params_default(&p, slots, top_level);
    tsr_backend *be = NULL;
    tsr_status st = tsr_backend_mockup_create(&p, &be);
    if (st != TSR_OK) fail_msg("mockup: %s", tsr_last_error());
    return be;
}

tsr_backend *tc_mockup_collecting(int64_t slots, int top_level, int track_values) {
    tsr_mockup_params mp;
    tsr_mockup_params_default(&mp, slots, top_level);
    mp.rotations = TSR_ROTATIONS_COLLECT;
    mp.track_values = track_values;
    tsr_backend *be = NULL;
    tsr_status st = tsr_backend_mockup_create(&mp, &be);
    if (st != TSR_OK) fail_msg("mockup: %s", tsr_last_error());
    return be;
}

void tc_shape_make(tsr_tile_shape *s, int nd, const int64_t *sizes, const int64_t *tiles,
                   int64_t slots) {
    tt_ok(tsr_tile_shape_make(s, nd, sizes, tiles, NULL, slots));
}

int tc_iters(int n) {
    return tt_sanitized() ? n / 3 + 1 : n;
}

int tc_lg(int64_t t) {
    int k = 0;
    while (((int64_t)1 << k) < t) k++;
    return k;
}
