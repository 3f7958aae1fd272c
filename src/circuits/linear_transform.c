/*
 * circuits/linear_transform.c - a plaintext matrix times an encrypted slot
 * vector by the diagonal method with baby-step giant-step and hoisted baby
 * rotations.
 *
 * References:
 *  - S. Halevi, V. Shoup, "Algorithms in HElib", CRYPTO 2014, section 4.3:
 *    M v = sum_i diag_i * rot(v, i), diag_i[j] = M[j][(j + i) mod n].
 *  - S. Halevi, V. Shoup, "Faster Homomorphic Linear Transformations in
 *    HElib", CRYPTO 2018, sections 4-5: baby-step giant-step over the
 *    diagonals, i = g n1 + b, with the giant rotation moved out of the
 *    inner sum by pre-rotating the diagonals (plaintext work):
 *      M v = sum_g rot( sum_b rot(diag_{g n1 + b}, -g n1) * rot(v, b), g n1 ),
 *    and hoisting: the baby rotations of v share one decomposition.
 *  - J.-P. Bossuat et al., EUROCRYPT 2021, section 3: the same structure
 *    for CKKS, with the rescale done once after the giant-step sum.
 *
 * Phases of tsr_circuits_lt_apply: (1) hoisted baby rotations rot(v, b)
 * for every baby step b in use (one ModUp, one key switch per step);
 * (2) per giant step g: the inner sum of plaintext products (no rescale,
 * scale Delta_l * s_pt) and one rotation by g n1; (3) the sum of the giant
 * terms and one rescale onto Delta_{l-1}.
 */
#include "tessera/circuits.h"

#include "circuits/circuits_internal.h"
#include "ckks/evaluator_internal.h"
#include "core/error.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct tsr_circuits_lt {
    tsr_ckks_params *p;
    int level;               /* input level */
    size_t slots;            /* slot count */
    size_t n1;               /* baby steps */
    size_t n_diags;          /* number of diagonals */
    size_t *index;           /* (n_diags) diagonal index in [0, slots), sorted */
    tsr_ckks_plaintext **pt; /* (n_diags) rot(diag_i, -g n1) at level, scale s_pt */
    int *steps;              /* rotation steps needed (babies then giants, sorted) */
    size_t n_steps;
};

static int is_pow2(size_t x) {
    return x && (x & (x - 1)) == 0;
}

static int cmp_size(const void *a, const void *b) {
    size_t x = *(const size_t *)a, y = *(const size_t *)b;
    return (x > y) - (x < y);
}

static int cmp_int(const void *a, const void *b) {
    int x = *(const int *)a, y = *(const int *)b;
    return (x > y) - (x < y);
}

/* Number of distinct values of f(index[t]) for sorted indices (f = mod or div by n1). */
static size_t count_distinct(const size_t *index, size_t n, size_t n1, int by_div) {
    /* indices are sorted: i / n1 is non-decreasing; i % n1 is not, so mark them */
    size_t count = 0;
    if (by_div) {
        for (size_t t = 0; t < n; t++)
            if (t == 0 || index[t] / n1 != index[t - 1] / n1) count++;
        return count;
    }
    unsigned char *seen = calloc(n1, 1);
    if (!seen) return SIZE_MAX;
    for (size_t t = 0; t < n; t++)
        if (!seen[index[t] % n1]) {
            seen[index[t] % n1] = 1;
            count++;
        }
    free(seen);
    return count;
}

/* Rotation keys needed with baby-step count n1 (babies b > 0, giants g > 0). */
static size_t keys_needed(const size_t *index, size_t n, size_t n1) {
    size_t babies = count_distinct(index, n, n1, 0), giants = count_distinct(index, n, n1, 1);
    if (babies == SIZE_MAX) return SIZE_MAX;
    int has_b0 = 0, has_g0 = 0;
    for (size_t t = 0; t < n; t++) {
        has_b0 |= index[t] % n1 == 0;
        has_g0 |= index[t] / n1 == 0;
    }
    return babies - (size_t)has_b0 + giants - (size_t)has_g0;
}

void tsr_circuits_lt_free(tsr_circuits_lt *lt) {
    if (!lt) return;
    if (lt->pt)
        for (size_t t = 0; t < lt->n_diags; t++) tsr_ckks_plaintext_free(lt->pt[t]);
    free(lt->pt);
    free(lt->index);
    free(lt->steps);
    tsr_ckks_params_free(lt->p);
    free(lt);
}

/* The sorted, distinct rotation steps (babies b > 0 and giants g n1 > 0). */
static tsr_status collect_steps(tsr_circuits_lt *lt) {
    lt->steps = malloc(2 * lt->n_diags * sizeof *lt->steps);
    if (!lt->steps) return tsr_fail(TSR_ERR_NOMEM, "out of memory for the rotation steps");
    size_t n = 0;
    for (size_t t = 0; t < lt->n_diags; t++) {
        size_t b = lt->index[t] % lt->n1, g = lt->index[t] - b;
        if (b) lt->steps[n++] = (int)b;
        if (g) lt->steps[n++] = (int)g;
    }
    qsort(lt->steps, n, sizeof *lt->steps, cmp_int);
    size_t m = 0;
    for (size_t t = 0; t < n; t++)
        if (m == 0 || lt->steps[m - 1] != lt->steps[t]) lt->steps[m++] = lt->steps[t];
    lt->n_steps = m;
    return TSR_OK;
}

/* Sorted diagonal indices in [0, slots) with perm[t] = the caller's diagonal at sorted t. */
static tsr_status sort_indices(tsr_circuits_lt *lt, const int *index, size_t *perm) {
    size_t n = lt->n_diags, slots = lt->slots;
    size_t *key = malloc(n * 2 * sizeof *key);
    if (!key) return tsr_fail(TSR_ERR_NOMEM, "out of memory for the diagonal indices");
    for (size_t t = 0; t < n; t++) {
        long r = (long)index[t] % (long)slots;
        if (r < 0) r += (long)slots;
        key[2 * t] = (size_t)r;
        key[2 * t + 1] = t;
    }
    /* sort pairs by index (pairs compare by their first member) */
    qsort(key, n, 2 * sizeof *key, cmp_size);
    for (size_t t = 0; t < n; t++) {
        lt->index[t] = key[2 * t];
        perm[t] = key[2 * t + 1];
        if (t > 0 && lt->index[t] == lt->index[t - 1]) {
            tsr_status st = tsr_fail(TSR_ERR_INVALID_ARG,
                                     "diagonals %zu and %zu have the same index modulo %zu (%zu)",
                                     perm[t - 1], perm[t], slots, lt->index[t]);
            free(key);
            return st;
        }
    }
    free(key);
    return TSR_OK;
}

tsr_status tsr_circuits_lt_create(tsr_circuits_lt **out, tsr_ckks_encoder *enc, tsr_ckks_params *p,
                                  const int *index, const double *const *diags, size_t n_diags,
                                  size_t n1, int level) {
    TSR_REQUIRE(out && enc && p, "tsr_circuits_lt_create: NULL argument");
    *out = NULL;
    if (n_diags == 0) return tsr_fail(TSR_ERR_INVALID_ARG, "a linear transform needs a diagonal");
    TSR_REQUIRE(index && diags, "tsr_circuits_lt_create: NULL diagonals");
    size_t slots = tsr_ckks_params_slots(p);
    if (n_diags > slots)
        return tsr_fail(TSR_ERR_INVALID_ARG, "%zu diagonals but only %zu slots", n_diags, slots);
    if (n1 != 0 && (!is_pow2(n1) || n1 > slots))
        return tsr_fail(TSR_ERR_INVALID_ARG,
                        "the baby-step count %zu is not a power of two <= %zu slots", n1, slots);
    int top = tsr_ckks_params_max_level(p);
    if (level < 1 || level > top)
        return tsr_fail(TSR_ERR_LEVEL,
                        "a linear transform uses one level: the input level must be in 1..%d "
                        "(got %d)",
                        top, level);
    for (size_t t = 0; t < n_diags; t++) {
        TSR_REQUIRE(diags[t], "tsr_circuits_lt_create: NULL diagonal");
        for (size_t j = 0; j < slots; j++)
            if (!isfinite(diags[t][j]))
                return tsr_fail(TSR_ERR_INVALID_ARG, "diagonal %zu has a non-finite value at %zu",
                                t, j);
    }

    tsr_circuits_lt *lt = calloc(1, sizeof *lt);
    size_t *perm = malloc(n_diags * sizeof *perm);
    double *rot = malloc(slots * sizeof *rot);
    tsr_status st = TSR_OK;
    if (!lt || !perm || !rot) {
        st = tsr_fail(TSR_ERR_NOMEM, "out of memory for a linear transform");
        goto done;
    }
    lt->p = ckks_params_ref(p);
    lt->level = level;
    lt->slots = slots;
    lt->n_diags = n_diags;
    lt->index = malloc(n_diags * sizeof *lt->index);
    lt->pt = calloc(n_diags, sizeof *lt->pt);
    if (!lt->index || !lt->pt) {
        st = tsr_fail(TSR_ERR_NOMEM, "out of memory for a linear transform");
        goto done;
    }
    st = sort_indices(lt, index, perm);
    if (st != TSR_OK) goto done;
    if (n1 == 0) {
        size_t best = SIZE_MAX;
        for (size_t c = 1; c <= slots; c *= 2) {
            size_t k = keys_needed(lt->index, n_diags, c);
            if (k < best) {
                best = k;
                n1 = c;
            }
        }
    }
    lt->n1 = n1;
    st = collect_steps(lt);
    /* s_pt: Delta_l * s_pt / q_l = Delta_{l-1} for an input at Delta_l. */
    double s_pt = tsr_ckks_params_scale(p, level - 1) * (double)tsr_ckks_params_prime(p, level) /
                  tsr_ckks_params_scale(p, level);
    for (size_t t = 0; t < n_diags && st == TSR_OK; t++) {
        size_t g = lt->index[t] - lt->index[t] % n1;
        const double *d = diags[perm[t]];
        /* rot(d, -g)[j] = d[(j - g) mod slots] */
        for (size_t j = 0; j < slots; j++) rot[j] = d[(j + slots - g) % slots];
        st = tsr_ckks_plaintext_create(&lt->pt[t], p);
        if (st == TSR_OK) st = tsr_ckks_encode_real(enc, lt->pt[t], rot, slots, level, s_pt);
    }
done:
    free(perm);
    free(rot);
    if (st != TSR_OK) {
        tsr_circuits_lt_free(lt);
        return st;
    }
    *out = lt;
    return TSR_OK;
}

size_t tsr_circuits_lt_rotations(const tsr_circuits_lt *lt, int *steps, size_t cap) {
    TSR_REQUIRE(lt && (steps || cap == 0), "tsr_circuits_lt_rotations: NULL argument");
    for (size_t t = 0; t < lt->n_steps && t < cap; t++) steps[t] = lt->steps[t];
    return lt->n_steps;
}

size_t tsr_circuits_lt_baby_steps(const tsr_circuits_lt *lt) {
    TSR_REQUIRE(lt, "tsr_circuits_lt_baby_steps: NULL transform");
    return lt->n1;
}

/* TSR_ERR_KEY_MISSING listing the steps without a key (at most a few). */
static tsr_status check_keys(const tsr_ckks_evaluator *ev, const tsr_circuits_lt *lt) {
    char list[160];
    size_t len = 0, missing = 0;
    list[0] = '\0';
    for (size_t t = 0; t < lt->n_steps; t++) {
        if (ev->gk && tsr_ckks_galois_keys_has_rotation(ev->gk, lt->steps[t])) continue;
        if (missing < 12 && len < sizeof list) {
            int w =
                snprintf(list + len, sizeof list - len, "%s%d", missing ? ", " : "", lt->steps[t]);
            if (w > 0) len += (size_t)w;
        }
        missing++;
    }
    if (missing == 0) return TSR_OK;
    return tsr_fail(TSR_ERR_KEY_MISSING,
                    "the linear transform needs Galois keys for %zu rotation step(s) the "
                    "evaluator lacks: %s%s; create the keys with the steps of "
                    "tsr_circuits_lt_rotations",
                    missing, list, missing > 12 ? ", ..." : "");
}

tsr_status tsr_circuits_lt_apply(tsr_ckks_evaluator *ev, tsr_ckks_ciphertext *out,
                                 const tsr_ckks_ciphertext *in, const tsr_circuits_lt *lt) {
    TSR_REQUIRE(ev && out && in && lt, "tsr_circuits_lt_apply: NULL argument");
    int level;
    TSR_TRY(circuits_check_input(ev, out, in, &level));
    tsr_ckks_params *p = ev->params;
    if (lt->p != p)
        return tsr_fail(TSR_ERR_MISMATCH, "the transform and the evaluator belong to different "
                                          "parameter sets");
    if (level != lt->level)
        return tsr_fail(TSR_ERR_LEVEL,
                        "the transform was prepared for inputs at level %d but the ciphertext is "
                        "at level %d: prepare it for level %d or bring the input to level %d",
                        lt->level, level, level, lt->level);
    TSR_TRY(check_keys(ev, lt));

    /* Phase 1: the baby rotations in use, hoisted. */
    size_t n1 = lt->n1;
    size_t nb = 0;
    int *bsteps = malloc(n1 * sizeof *bsteps);
    int *slot_of = malloc(n1 * sizeof *slot_of); /* baby b -> position in bsteps, -1 if unused */
    tsr_ckks_ciphertext **baby = calloc(n1, sizeof *baby);
    tsr_ckks_ciphertext *inner = NULL, *acc = NULL, *tmp = NULL;
    tsr_status st = TSR_OK;
    if (!bsteps || !slot_of || !baby) {
        st = tsr_fail(TSR_ERR_NOMEM, "out of memory for the baby steps");
        goto done;
    }
    for (size_t b = 0; b < n1; b++) slot_of[b] = -1;
    for (size_t t = 0; t < lt->n_diags; t++) {
        size_t b = lt->index[t] % n1;
        if (slot_of[b] < 0) {
            slot_of[b] = (int)nb;
            bsteps[nb++] = (int)b;
        }
    }
    for (size_t t = 0; t < nb && st == TSR_OK; t++) st = tsr_ckks_ciphertext_create(&baby[t], p);
    if (st == TSR_OK) st = tsr_ckks_rotate_hoisted(ev, baby, in, bsteps, nb);
    if (st == TSR_OK) st = tsr_ckks_ciphertext_create(&inner, p);
    if (st == TSR_OK) st = tsr_ckks_ciphertext_create(&acc, p);
    if (st == TSR_OK) st = tsr_ckks_ciphertext_create(&tmp, p);

    /* Phase 2: per giant step (runs of equal index / n1 in the sorted list). */
    int have_acc = 0;
    for (size_t t = 0; t < lt->n_diags && st == TSR_OK;) {
        size_t g = lt->index[t] / n1, u = t;
        int have_inner = 0;
        for (; u < lt->n_diags && lt->index[u] / n1 == g && st == TSR_OK; u++) {
            const tsr_ckks_ciphertext *v = baby[slot_of[lt->index[u] % n1]];
            if (!have_inner) {
                st = tsr_ckks_mul_plain(ev, inner, v, lt->pt[u]);
                have_inner = 1;
            } else {
                st = tsr_ckks_mul_plain(ev, tmp, v, lt->pt[u]);
                if (st == TSR_OK) st = tsr_ckks_add(ev, inner, inner, tmp);
            }
        }
        if (st == TSR_OK && g != 0) st = tsr_ckks_rotate(ev, inner, inner, (int)(g * n1));
        if (st == TSR_OK) {
            if (!have_acc)
                st = tsr_ckks_ciphertext_copy(acc, inner);
            else
                st = tsr_ckks_add(ev, acc, acc, inner);
            have_acc = 1;
        }
        t = u;
    }
    /* Phase 3: one rescale onto Delta_{l-1}. */
    if (st == TSR_OK) st = tsr_ckks_rescale(ev, out, acc);
    if (st == TSR_OK) {
        double want = tsr_ckks_params_scale(p, level - 1);
        if (fabs(tsr_ckks_ciphertext_scale(out) - want) > CKKS_SCALE_TOL * want)
            st = tsr_fail(TSR_ERR_INTERNAL, "linear transform: the output scale is off the "
                                            "canonical one (a bug in Tessera)");
        else
            st = tsr_ckks_ciphertext_set_scale(out, want);
    }
done:
    if (baby)
        for (size_t t = 0; t < n1; t++) tsr_ckks_ciphertext_free(baby[t]);
    free(baby);
    free(bsteps);
    free(slot_of);
    tsr_ckks_ciphertext_free(inner);
    tsr_ckks_ciphertext_free(acc);
    tsr_ckks_ciphertext_free(tmp);
    return st;
}
