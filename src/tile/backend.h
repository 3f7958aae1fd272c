/*
 * tile/backend.h - the backend interface: vectors of `slots` values that can
 * be added, multiplied (by another vector, a plaintext or a constant),
 * rotated, rescaled, encoded, encrypted and decrypted.
 *
 * The generic layer (backend.c) owns everything that must behave the same on
 * every backend: level and scale bookkeeping, the checks CKKS would make
 * (levels, scales, declared rotation keys), and operation counting. A backend
 * implementation (mockup.c, ckks_backend.c, debug_backend.c) fills a vtable
 * with the arithmetic only; when one of its functions is called, the checks
 * have passed and the caller's level/scale fields will be updated after it
 * returns.
 *
 * Users above the tile layer (src/nn) may call these tsr_bvec_* functions for
 * operations that tile tensors do not cover; they are counted and checked
 * like every other operation.
 */
#ifndef TSR_TILE_BACKEND_H
#define TSR_TILE_BACKEND_H

#include "tessera/tile.h"

struct tsr_writer;

#include <stdint.h>

/** One vector: a ciphertext or an encoded plaintext, at a level and scale. */
typedef struct tsr_bvec {
    int level;
    double scale;
    int is_plain;  /* 1: encoded plaintext, 0: ciphertext */
    int64_t limbs; /* memory counted for it: polynomials x (level + 1) when made */
    void *impl;    /* backend-specific payload */
} tsr_bvec;

/**
 * The arithmetic a backend provides. All pointers are valid and checks are
 * done. dst-style functions work in place. For rotate, outs[i] are shells
 * (level/scale/is_plain already set) whose impl the backend fills.
 */
/* Outputs a fused prod_lincomb kernel computes at once (threads over outputs): a
 * fixed number, so that its peak memory and the plans' predicted memory do not
 * depend on the machine's thread count. */
#define TSR_PROD_LINCOMB_THREADS 2
/* Rotated vectors a rotate_sums kernel holds at once (the memory model counts that many): the
 * ckks backend hands them to tsr_ckks_rotate_many in one call, so it is that function's chunk. */
#define TSR_ROTATE_SUM_CHUNK TSR_CKKS_ROTATE_MANY_CHUNK

typedef struct tsr_backend_vtable {
    const char *name;
    /* out->level/scale/is_plain are set; values may be NULL in shape-only mode. */
    tsr_status (*encrypt)(tsr_backend *be, const double *values, tsr_bvec *out);
    tsr_status (*encode)(tsr_backend *be, const double *values, tsr_bvec *out);
    tsr_status (*decrypt)(tsr_backend *be, const tsr_bvec *v, double *values);
    tsr_status (*copy)(tsr_backend *be, const tsr_bvec *src, tsr_bvec *dst);
    void (*release)(tsr_backend *be, tsr_bvec *v);
    /* dst += sign * src; src may be a plaintext. Scales may differ within tolerance. */
    tsr_status (*add)(tsr_backend *be, tsr_bvec *dst, const tsr_bvec *src, int sign);
    /* dst += c (encoded at dst's scale). */
    tsr_status (*add_const)(tsr_backend *be, tsr_bvec *dst, double c);
    /* dst *= src (ciphertext with relinearization, or plaintext). */
    tsr_status (*mul)(tsr_backend *be, tsr_bvec *dst, const tsr_bvec *src);
    /*
     * Optional: out = a * b, where out is a fresh shell (impl NULL) or a
     * ciphertext whose storage may be reused (saves copying a and
     * allocating). NULL: the generic layer copies a and multiplies.
     */
    tsr_status (*mul_to)(tsr_backend *be, tsr_bvec *out, const tsr_bvec *a, const tsr_bvec *b);
    /* dst *= c, the constant encoded at scale cscale. */
    tsr_status (*mul_const)(tsr_backend *be, tsr_bvec *dst, double c, double cscale);
    /* outs[i] = src rotated left by steps[i] (normalized, nonzero); hoisted when n > 1. */
    tsr_status (*rotate)(tsr_backend *be, const tsr_bvec *src, const int64_t *steps, size_t n,
                         tsr_bvec **outs);
    /*
     * Optional: rotate-and-sum in place, vs[i] += rotate(vs[i], steps[k]) for every i < n
     * and then k = 0, 1, ... in order (steps normalized, nonzero; vs distinct ciphertexts).
     * A backend that does it step by step (each step for every vector, so that one key
     * serves many ciphertexts) holds at most TSR_ROTATE_SUM_CHUNK rotated vectors at once.
     * NULL: the generic layer loops, vector by vector.
     */
    tsr_status (*rotate_sums)(tsr_backend *be, tsr_bvec *const *vs, size_t n, const int64_t *steps,
                              size_t nsteps);
    /* Divide by q_level, drop one level (v->level is still the old level). */
    tsr_status (*rescale)(tsr_backend *be, tsr_bvec *v);
    /* Drop to a lower level without changing the scale (v->level is the old level). */
    tsr_status (*drop_level)(tsr_backend *be, tsr_bvec *v, int level);
    /*
     * Optional: outs[j] = sum_k c_k * ins[cols[k]] over k in [row_ptr[j],
     * row_ptr[j+1]), every constant encoded at scale cscale (no rescale).
     * Inputs share level and scale; outs[j] are shells (level/scale set).
     * NULL: the generic layer copies, multiplies by constants and adds.
     */
    tsr_status (*lincomb)(tsr_backend *be, tsr_bvec *const *outs, size_t n_out,
                          const tsr_bvec *const *ins, size_t n_in, const int64_t *row_ptr,
                          const int64_t *cols, const double *vals, double cscale);
    /*
     * Optional: outs[j] = sum_k c_k * ins[cols[k]]^2, the squares relinearized
     * after the sum (one relinearization per output instead of one per input)
     * and the result rescaled once: outs at level l-1 with scale
     * (s^2 / q_l) * cscale, where l and s are the inputs' level and scale.
     * outs[j] are shells. NULL: the generic layer squares, rescales and
     * combines.
     */
    tsr_status (*sq_lincomb)(tsr_backend *be, tsr_bvec *const *outs, size_t n_out,
                             const tsr_bvec *const *ins, size_t n_in, const int64_t *row_ptr,
                             const int64_t *cols, const double *vals, double cscale);
    /*
     * Optional: outs[j] = sum_k c_k * a[ia[k]] * b[ib[k]] over k in [row_ptr[j],
     * row_ptr[j+1]): the ciphertext x ciphertext products summed before one
     * relinearization and rescale per output (outs at level l-1 with scale
     * (s_a s_b / q_l) * cscale). a and b share a level, the a's one scale and the
     * b's one scale; outs[j] are
     * shells. NULL: the generic layer multiplies, rescales and combines.
     * At most TSR_PROD_LINCOMB_THREADS outputs are in flight at once (the
     * memory model in tsr_bvec_prod_lincomb counts that many).
     */
    tsr_status (*prod_lincomb)(tsr_backend *be, tsr_bvec *const *outs, size_t n_out,
                               const tsr_bvec *const *a, const tsr_bvec *const *b,
                               const int64_t *row_ptr, const int64_t *ia, const int64_t *ib,
                               const double *vals, double cscale);
    /*
     * Optional: bootstrap vs[0..n) in place (n >= 1, distinct ciphertexts at
     * levels >= 1 with their canonical scales, checked): afterwards each is at
     * be->boot_level with that level's canonical scale (the caller updates
     * the shells). CKKS bootstraps them two per run (real slots). NULL: the
     * backend cannot bootstrap.
     */
    tsr_status (*bootstrap)(tsr_backend *be, tsr_bvec *const *vs, size_t n);
    /* Optional: make rotation keys for these steps (NULL: nothing to do). */
    tsr_status (*declare_rotations)(tsr_backend *be, const int64_t *steps, size_t n);
    /*
     * Serialization (all NULL: tile tensors of this backend cannot be saved).
     * file_kind identifies the backend in files (1 mockup, 2 ckks). A vector
     * is stored as a blob of vec_size bytes; vec_max_size bounds what a
     * reader accepts; read_vec fills a shell whose level/scale/is_plain the
     * file gave, and must check that the blob agrees with them.
     */
    uint8_t file_kind;
    uint64_t (*vec_size)(const tsr_backend *be, const tsr_bvec *v);
    uint64_t (*vec_max_size)(const tsr_backend *be);
    tsr_status (*write_vec)(tsr_backend *be, const tsr_bvec *v, struct tsr_writer *w);
    tsr_status (*read_vec)(tsr_backend *be, const uint8_t *blob, uint64_t len, tsr_bvec *out);
    /* Optional: 16 bytes identifying the parameters (NULL: derived from slots and primes). */
    void (*fingerprint)(const tsr_backend *be, uint8_t out[16]);
    /* Free the backend's own state. */
    void (*destroy)(tsr_backend *be);
} tsr_backend_vtable;

/** The generic backend object. */
struct tsr_backend {
    const tsr_backend_vtable *vt;
    void *impl;
    int64_t slots;
    int top_level;
    double default_scale; /* canonical scale of the top level */
    double *primes;       /* q_0 .. q_top */
    double *scales;       /* canonical scale per level: D_top, D_{l-1} = D_l^2 / q_l */
    double *log2_q;       /* log2 of the product q_0..q_l, per level */
    double scale_tol;
    tsr_rotation_policy policy;
    uint8_t *declared; /* [slots]: 1 if the step may be used */
    uint8_t *used;     /* [slots]: 1 if the step was used since the reset */
    int can_decrypt;   /* 0 for shape-only mockups and key-less ckks backends */
    int boot_level;    /* level of a bootstrapped vector; 0: no bootstrapping */
    tsr_backend_counts counts;
};

/**
 * Create the generic part; the caller fills vt/impl and checks the result.
 * primes: top_level+1 values (copied). top_scale is the canonical scale of
 * the top level; lower levels follow D_{l-1} = D_l^2 / q_l (the CKKS core's
 * rule, so products of canonical operands stay canonical).
 */
tsr_status tsr_backend_init(tsr_backend **out, const tsr_backend_vtable *vt, void *impl,
                            int64_t slots, int top_level, double top_scale, const double *primes,
                            double scale_tol);

/** Parameter fingerprint of a backend (written into tile-tensor files). */
void tsr_backend_fingerprint(const tsr_backend *be, uint8_t out[16]);

/** Wrap a vector read by a backend's read_vec: allocate the shell and count it. */
tsr_status tsr_bvec_read(tsr_backend *be, const uint8_t *blob, uint64_t len, int level,
                         double scale, int is_plain, tsr_bvec **out);

/** Normalize a rotation step to [0, slots). */
int64_t tsr_backend_norm_step(const tsr_backend *be, int64_t step);

/* ---- vector operations (checked and counted) ----------------------------- */

/** Encrypt slots values (NULL in shape-only mode) at level and scale. */
tsr_status tsr_bvec_encrypt(tsr_backend *be, const double *values, int level, double scale,
                            tsr_bvec **out);
/** Encode slots values as a plaintext at level and scale. */
tsr_status tsr_bvec_encode(tsr_backend *be, const double *values, int level, double scale,
                           tsr_bvec **out);
/** Decrypt (or decode) into slots doubles. */
tsr_status tsr_bvec_decrypt(tsr_backend *be, const tsr_bvec *v, double *values);
/** Deep copy. */
tsr_status tsr_bvec_copy(tsr_backend *be, const tsr_bvec *v, tsr_bvec **out);
/** Free (NULL is a no-op). */
void tsr_bvec_free(tsr_backend *be, tsr_bvec *v);
/** dst += src (src: ciphertext or plaintext at dst's level; scales equal within tolerance). */
tsr_status tsr_bvec_add(tsr_backend *be, tsr_bvec *dst, const tsr_bvec *src);
/** dst -= src. */
tsr_status tsr_bvec_sub(tsr_backend *be, tsr_bvec *dst, const tsr_bvec *src);
/** dst += c. */
tsr_status tsr_bvec_add_const(tsr_backend *be, tsr_bvec *dst, double c);
/** dst *= src (same level); the scale multiplies; rescale afterwards. */
tsr_status tsr_bvec_mul(tsr_backend *be, tsr_bvec *dst, const tsr_bvec *src);
/** *out = a * b (a ciphertext; b ciphertext or plaintext at a's level), a new vector. */
tsr_status tsr_bvec_mul_new(tsr_backend *be, const tsr_bvec *a, const tsr_bvec *b, tsr_bvec **out);
/** out = a * b overwriting the ciphertext out (its storage is reused; out != a, b). */
tsr_status tsr_bvec_mul_to(tsr_backend *be, tsr_bvec *out, const tsr_bvec *a, const tsr_bvec *b);
/** dst *= c encoded at cscale; the scale multiplies by cscale. */
tsr_status tsr_bvec_mul_const(tsr_backend *be, tsr_bvec *dst, double c, double cscale);
/** *out = src rotated left by step (out[i] = src[i + step]). step 0 copies. */
tsr_status tsr_bvec_rotate(tsr_backend *be, const tsr_bvec *src, int64_t step, tsr_bvec **out);
/**
 * Hoisted rotations: outs[i] = src rotated by steps[i], sharing one key-switch
 * decomposition on CKKS. Steps of 0 give copies.
 */
tsr_status tsr_bvec_rotate_many(tsr_backend *be, const tsr_bvec *src, const int64_t *steps,
                                size_t n, tsr_bvec **outs);
/**
 * Rotate-and-sum in place: vs[i] += rotate(vs[i], steps[k]) for each i < n and then each
 * k < nsteps in order (each vector's own rotations, as n loops of tsr_bvec_rotate and
 * tsr_bvec_add: the same counts, rotations n * nsteps and as many additions). vs are distinct
 * ciphertexts (a repeated one is refused: TSR_ERR_INVALID_ARG). A backend with a rotate_sums kernel
 * (ckks) runs it step by step, every vector by one step before the next step, so that one key's
 * material serves many ciphertexts (the results are the same); the memory counted is
 * TSR_ROTATE_SUM_CHUNK (or n, if fewer) rotated vectors on top of the live ones, on every backend.
 */
tsr_status tsr_bvec_rotate_sums(tsr_backend *be, tsr_bvec *const *vs, size_t n,
                                const int64_t *steps, size_t nsteps);
/**
 * Linear combinations with constants at scale cscale: outs[j] = sum over k in
 * [row_ptr[j], row_ptr[j+1]) of vals[k] * ins[cols[k]] (new vectors, scale
 * multiplied by cscale, not rescaled). Inputs are ciphertexts at one level
 * and scale. Uses the backend's fused kernel when it has one; counted as
 * one constant product per nonzero coefficient and the additions between
 * them, on every backend. An empty row is a zero ciphertext.
 */
tsr_status tsr_bvec_lincomb(tsr_backend *be, tsr_bvec **outs, size_t n_out,
                            const tsr_bvec *const *ins, size_t n_in, const int64_t *row_ptr,
                            const int64_t *cols, const double *vals, double cscale);
/**
 * Linear combinations of squares: outs[j] = sum over k in [row_ptr[j],
 * row_ptr[j+1]) of vals[k] * ins[cols[k]]^2, equal (up to CKKS rounding) to
 * squaring and rescaling every input and then tsr_bvec_lincomb(cscale): the
 * outputs are at level l-1 with scale (s^2 / q_l) * cscale, not rescaled
 * further. A backend with a fused kernel (ckks) relinearizes once per
 * output. Counted the fused way on every backend (so dry runs price what
 * CKKS does): one ct x ct product and key switch per output, the constant
 * terms and additions of the combination, one rescale per output.
 */
tsr_status tsr_bvec_sq_lincomb(tsr_backend *be, tsr_bvec **outs, size_t n_out,
                               const tsr_bvec *const *ins, size_t n_in, const int64_t *row_ptr,
                               const int64_t *cols, const double *vals, double cscale);
/**
 * Sums of products of two vectors (a contraction, attention's Q K^T and
 * scores x V): outs[j] = sum over k in [row_ptr[j], row_ptr[j+1]) of
 * vals[k] * a[ia[k]] * b[ib[k]]; a[0..n_a) and b[0..n_b) ciphertexts at one
 * level, the a's at one scale s_a and the b's at one scale s_b. As tsr_bvec_sq_lincomb: the outputs
 * are at level l-1 with scale (s_a s_b / q_l) * cscale, not rescaled further; a backend with a
 * fused kernel (ckks) sums the unrelinearized products and relinearizes once per output, holding
 * only the products of the outputs in flight. Counted the fused way on every backend: per output
 * one ct x ct product (the relinearization) and one rescale; per term one constant product, one
 * plaintext-sized product pair (mul_plain: 2 per term) and the additions.
 */
tsr_status tsr_bvec_prod_lincomb(tsr_backend *be, tsr_bvec **outs, size_t n_out,
                                 const tsr_bvec *const *a, size_t n_a, const tsr_bvec *const *b,
                                 size_t n_b, const int64_t *row_ptr, const int64_t *ia,
                                 const int64_t *ib, const double *vals, double cscale);
/**
 * Bootstrap v in place: v (a ciphertext at level >= 1 with its level's
 * canonical scale, values in [-1, 1]) comes back at the backend's
 * bootstrapping level (tsr_backend_boot_level) with that level's canonical
 * scale. TSR_ERR_UNSUPPORTED if the backend has no bootstrapping,
 * TSR_ERR_LEVEL at level 0, TSR_ERR_SCALE off the canonical scale. Counted
 * as one bootstrapping run.
 */
tsr_status tsr_bvec_bootstrap(tsr_backend *be, tsr_bvec *v);
/**
 * Bootstrap n distinct vectors in place, as tsr_bvec_bootstrap: the ckks
 * backend runs the circuit once per two vectors (real slots,
 * tsr_circuits_bootstrap_real), so this is counted as ceil(n/2) runs on
 * every backend.
 */
tsr_status tsr_bvec_bootstrap_many(tsr_backend *be, tsr_bvec *const *vs, size_t n);
/** Set the bootstrapping level of a backend (implementations; 1..top_level, 0: none). */
void tsr_backend_set_boot_level(tsr_backend *be, int level);
/** Rescale: divide the scale by q_level and drop one level. Level 0 -> TSR_ERR_LEVEL. */
tsr_status tsr_bvec_rescale(tsr_backend *be, tsr_bvec *v);
/** Drop to a lower level keeping the scale. */
tsr_status tsr_bvec_drop_level(tsr_backend *be, tsr_bvec *v, int level);

#endif /* TSR_TILE_BACKEND_H */
