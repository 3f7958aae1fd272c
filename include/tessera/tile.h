/*
 * tessera/tile.h - tile tensors over a backend interface (Aharoni et al.,
 * "Tile tensors: a versatile data structure with descriptive shapes for
 * homomorphic encryption", arXiv 2011.01805). See docs/TILES.md.
 *
 * A *backend* computes on vectors of `slots` values: `mockup` (plaintext
 * doubles that track levels, scales and operation counts, optionally with
 * CKKS-like noise), `ckks` (real encryption) and `debug` (both side by side).
 * A *tile tensor* is a tensor packed into a grid of such vectors ("tiles")
 * according to a tile-tensor shape such as `[5/2, 6~?/4, *\/8]`. Nothing above
 * this layer indexes a slot by hand.
 *
 * Thread-safety: shapes are plain values. A backend may be used from several
 * threads on distinct tile tensors (its counters are atomic); a tile tensor
 * must not be used by two threads at once. Configuration calls
 * (tsr_backend_declare_rotations, tsr_backend_reset_counts, ...) must not run
 * concurrently with computation on the same backend.
 *
 * (In these comments `*\/t` stands for the notation star-slash-t.)
 */
#ifndef TESSERA_TILE_H
#define TESSERA_TILE_H

#include "tessera/ckks.h"
#include "tessera/circuits.h"
#include "tessera/common.h"

#include <stdio.h>

TSR_BEGIN_DECLS

/* ======================================================================== */
/* Tile-tensor shapes                                                         */
/* ======================================================================== */

/** Most dimensions a tile tensor may have. */
#define TSR_TILE_MAX_DIMS 8

/**
 * One dimension `n/t` of a tile-tensor shape.
 * - size: logical size n (1 for a duplicated dimension).
 * - tile: tile size t, a power of two (1 allowed: the dimension lives only in
 *   the external grid of tiles).
 * - dup: `*\/t`: a size-1 dimension whose value is replicated over all t slots.
 * - unknown: `n?/t`: the padding slots of this dimension may hold arbitrary
 *   values. Precisely: a slot that is padding in a set of dimensions holds
 *   zero unless one of those dimensions is `?`.
 * - interleaved: `n~/t`: element j lives in tile j mod e, slot j div e
 *   (e = ceil(n/t) tiles); otherwise contiguous: tile j div t, slot j mod t.
 */
typedef struct tsr_tile_dim {
    int64_t size;
    int64_t tile;
    uint8_t dup;
    uint8_t unknown;
    uint8_t interleaved;
} tsr_tile_dim;

/**
 * A tile-tensor shape. Tiles are row-major (the last dimension varies fastest
 * inside a tile), and so is the external grid of tiles. A plain size-1
 * dimension does not broadcast; only `*` does. The product of the tile sizes
 * is the slot count of the backend.
 */
typedef struct tsr_tile_shape {
    int ndims;
    tsr_tile_dim dim[TSR_TILE_MAX_DIMS];
} tsr_tile_shape;

/**
 * Parse the notation `[d1/t1, d2/t2, ...]`. Each dimension is `n/t`, `n?/t`,
 * `n~/t`, `n~?/t`, `*\/t`, or `n` alone (meaning
 * n/1: the dimension lives only in the external grid). Spaces are ignored.
 * With slots > 0 the tile sizes must multiply to slots; slots == 0 skips that
 * check. On error returns TSR_ERR_SHAPE with a message giving the column and
 * a caret under the offending character.
 */
TSR_API tsr_status tsr_tile_shape_parse(const char *text, int64_t slots, tsr_tile_shape *out);

/**
 * Print a shape in the notation above (dimensions with tile 1 are printed as
 * `n/1`). Writes at most cap bytes including the terminating NUL and returns
 * the length the full text needs (like snprintf). Parsing the output gives
 * the same shape back.
 */
TSR_API size_t tsr_tile_shape_format(const tsr_tile_shape *s, char *buf, size_t cap);

/**
 * Check a shape: 1..TSR_TILE_MAX_DIMS dimensions, sizes >= 1, tile sizes
 * powers of two, `*` only with size 1, no `*` combined with `?` or `~`,
 * and (slots > 0) tile sizes multiplying to slots. TSR_ERR_SHAPE with a
 * message saying which dimension is wrong and why.
 */
TSR_API tsr_status tsr_tile_shape_validate(const tsr_tile_shape *s, int64_t slots);

/** Product of the tile sizes (the slots a tile needs). */
TSR_API int64_t tsr_tile_shape_slots(const tsr_tile_shape *s);
/** Tiles along dimension d in the external grid: ceil(size/tile), 1 for `*`. */
TSR_API int64_t tsr_tile_shape_external(const tsr_tile_shape *s, int d);
/** Number of tiles (ciphertexts): the product of the external sizes. */
TSR_API int64_t tsr_tile_shape_num_tiles(const tsr_tile_shape *s);
/** Number of logical elements: the product of the sizes (`*` counts 1). */
TSR_API int64_t tsr_tile_shape_num_elements(const tsr_tile_shape *s);
/** 1 if the shapes are identical (including flags), else 0. */
TSR_API int tsr_tile_shape_equal(const tsr_tile_shape *a, const tsr_tile_shape *b);
/**
 * Build a shape from arrays (convenience for planners): sizes[i] <= 0 means
 * `*`; flags may be NULL, else per-dimension bit set of TSR_TILE_UNKNOWN and
 * TSR_TILE_INTERLEAVED. The result is validated against slots (0: unchecked).
 */
TSR_API tsr_status tsr_tile_shape_make(tsr_tile_shape *out, int ndims, const int64_t *sizes,
                                       const int64_t *tiles, const unsigned *flags, int64_t slots);
#define TSR_TILE_UNKNOWN     1u
#define TSR_TILE_INTERLEAVED 2u

/**
 * Pack a dense row-major tensor (shape = the logical sizes of s, `*`
 * dimensions counting 1) into tiles: out receives num_tiles * slots doubles,
 * tile after tile in external row-major order. Padding slots get 0, `*`
 * dimensions are replicated. Pure layout: no backend involved.
 */
TSR_API tsr_status tsr_tile_pack(const tsr_tile_shape *s, const double *dense, double *out);
/**
 * Inverse of tsr_tile_pack: read each logical element from its slot (for `*`
 * dimensions, slot 0 of the dimension). dense receives num_elements doubles.
 */
TSR_API tsr_status tsr_tile_unpack(const tsr_tile_shape *s, const double *tiles, double *dense);

/* ======================================================================== */
/* Backends                                                                   */
/* ======================================================================== */

/** A backend: an implementation of vector arithmetic (opaque). */
typedef struct tsr_backend tsr_backend;

/**
 * Operation counts by kind, kept per backend since the last reset. These are
 * what a planner multiplies by measured per-operation costs.
 */
typedef struct tsr_backend_counts {
    uint64_t rotations;    /**< single-step rotations (each member of a hoisted group counts) */
    uint64_t hoisted;      /**< hoisted rotation groups (one shared decomposition each) */
    uint64_t mul_ct;       /**< ciphertext x ciphertext products (with relinearization) */
    uint64_t mul_plain;    /**< ciphertext x plaintext products */
    uint64_t mul_const;    /**< ciphertext x scalar products */
    uint64_t add;          /**< additions/subtractions (ct+ct, ct+pt, ct+const) */
    uint64_t rescale;      /**< rescalings (each drops one level) */
    uint64_t drop_level;   /**< level drops without rescaling (modulus switching) */
    uint64_t key_switch;   /**< key switches: relinearizations + rotations */
    uint64_t encode;       /**< plaintext encodings */
    uint64_t encrypt;      /**< encryptions */
    uint64_t decrypt;      /**< decryptions */
    int min_level;         /**< lowest level any ciphertext reached (top level if none) */
    uint64_t peak_vectors; /**< most ciphertexts + plaintexts alive at once */
    uint64_t live_vectors; /**< ciphertexts + plaintexts alive now */
    /**
     * Memory in limbs (one residue polynomial of N words): a vector counts its
     * polynomials x (level + 1) at creation (ciphertext 2, plaintext 1); the
     * peak includes a fused square-and-sum's 3-polynomial temporaries.
     */
    uint64_t peak_limbs;
    uint64_t live_limbs; /**< limbs of the vectors alive now */
    /**
     * Bootstrapping runs (tsr_bvec_bootstrap*): one run refreshes up to two
     * ciphertexts (real slots), on every backend as on ckks.
     */
    uint64_t bootstraps;
} tsr_backend_counts;

/** How a backend treats rotation steps that were not declared. */
typedef enum tsr_rotation_policy {
    TSR_ROTATIONS_STRICT = 0, /**< undeclared step -> TSR_ERR_KEY_MISSING (as CKKS would) */
    TSR_ROTATIONS_COLLECT = 1 /**< accept any step and record it (planning dry runs) */
} tsr_rotation_policy;

/** Parameters of the mockup backend (fill with tsr_mockup_params_default). */
typedef struct tsr_mockup_params {
    int64_t slots;     /**< slots per vector, a power of two >= 2 */
    int top_level;     /**< level of fresh encryptions; the chain has top_level+1 primes */
    double scale_bits; /**< canonical scale of the top level: 2^scale_bits */
    double base_bits;  /**< bits of q_0 (the last prime kept) */
    /** Optional exact chain q_0..q_top (top_level+1 values); NULL: synthesize. */
    const double *primes;
    int track_values;     /**< 1: store values; 0: shape-only dry run (no data, decrypt refused) */
    int noise;            /**< 1: add CKKS-like noise (model in docs/TILES.md) */
    double noise_fresh;   /**< std. dev. of fresh-encryption noise, integer units (0: default) */
    double noise_rescale; /**< std. dev. of rescale rounding noise, integer units (0: default) */
    double noise_keyswitch; /**< std. dev. of key-switch noise, integer units (0: default) */
    /** log2 of the key-switching modulus P (the special primes' product); 0: unknown, key
     * switching then adds the rescale's noise (tsr_backend_mockup_create_for sets it) */
    double keyswitch_bits;
    int keyswitch_alpha;           /**< primes per key-switching digit (0: 1) */
    uint64_t seed;                 /**< noise stream seed (deterministic; not for security) */
    double scale_tolerance;        /**< adds refuse relative scale differences above this (2^-40) */
    tsr_rotation_policy rotations; /**< strict (default) or collect */
} tsr_mockup_params;

/**
 * Defaults: scale 2^40, q_0 of 60 bits, rescaling primes synthesized near
 * the canonical scales (within a few 2^-21, like real NTT primes, never
 * powers of two, so scale bookkeeping errors show up), values tracked, no
 * noise, strict rotations, scale tolerance 2^-40 (as the CKKS core).
 */
TSR_API void tsr_mockup_params_default(tsr_mockup_params *p, int64_t slots, int top_level);

/**
 * Create the mockup backend. It computes on doubles, tracks levels and
 * scales exactly like CKKS and refuses what CKKS would: rescaling at level 0
 * or a product too large for the remaining modulus (TSR_ERR_LEVEL), an
 * undeclared rotation (TSR_ERR_KEY_MISSING, in strict mode), adding vectors
 * whose scales differ (TSR_ERR_SCALE). The caller owns *out (tsr_backend_free).
 */
TSR_API tsr_status tsr_backend_mockup_create(const tsr_mockup_params *p, tsr_backend **out);

/**
 * A mockup with exactly the slot count, levels, primes, canonical scales and
 * key switching (special primes, digits) of a CKKS parameter set (opts
 * supplies the rest: track_values, noise, rotations, seed; its
 * slots/top_level/scale_bits/primes/keyswitch_* are ignored). This
 * is the backend a planner dry-runs before any key exists, and the
 * reference of a debug backend. Uniform chains only: a mixed chain
 * (spec.low_levels > 0) fails with TSR_ERR_INVALID_ARG.
 */
TSR_API tsr_status tsr_backend_mockup_create_for(const tsr_ckks_params *params,
                                                 const tsr_mockup_params *opts, tsr_backend **out);

/**
 * The ckks backend over the CKKS core: all N/2 slots, the parameter set's
 * levels and canonical scales. Keys are borrowed (they must outlive the
 * backend) and each may be NULL: encryption uses pk, or sk (seeded
 * symmetric encryption) if pk is NULL; decryption needs sk; products of
 * ciphertexts need rk; rotations need gk, whose steps are the declared
 * ones. With sk, tsr_backend_declare_rotations generates missing Galois
 * keys (into gk, or into a set the backend owns when gk is NULL); without
 * it, it fails with TSR_ERR_KEY_MISSING. A server-side backend is made with
 * rk and gk only. Operations on distinct tile tensors may run on several
 * threads (evaluators are pooled). Uniform chains only: a mixed chain
 * (spec.low_levels > 0) fails with TSR_ERR_INVALID_ARG.
 */
TSR_API tsr_status tsr_backend_ckks_create(tsr_ckks_params *params, const tsr_ckks_public_key *pk,
                                           const tsr_ckks_secret_key *sk,
                                           const tsr_ckks_relin_key *rk, tsr_ckks_galois_keys *gk,
                                           tsr_backend **out);

/**
 * Give a ckks backend bootstrapping: b (borrowed; it must outlive the
 * backend, with its switching keys attached when it uses sparse-secret
 * encapsulation) is checked against the backend's parameters and keys
 * (tsr_circuits_boot_check_keys: the relinearization key, the conjugation
 * key and every rotation step of tsr_circuits_boot_rotations must be in the
 * keys given to tsr_backend_ckks_create), then bootstrapping a vector runs
 * it (two vectors per run: tsr_circuits_bootstrap_real, since tile values
 * are real) and leaves it at tsr_circuits_boot_info.out_level.
 * TSR_ERR_KEY_MISSING / TSR_ERR_MISMATCH as the check; TSR_ERR_INVALID_ARG
 * for a backend other than ckks. Not while the backend computes.
 */
TSR_API tsr_status tsr_backend_ckks_set_bootstrap(tsr_backend *be, const tsr_circuits_boot *b);

/**
 * Give a mockup backend bootstrapping: a ciphertext comes back at out_level
 * (1..top level) with its canonical scale; with noise on, every slot gets
 * Gaussian noise of standard deviation 2^-bits (bits <= 0: 24, the order of
 * the mean error measured for the ckks circuit, docs/CIRCUITS.md). Slot
 * values beyond [-1, 1] are refused (TSR_ERR_SCALE), as the circuit's sine
 * would garble them. Use the ckks circuit's out_level so that dry runs price
 * and place what CKKS will do. TSR_ERR_INVALID_ARG for a bad level or a
 * backend other than mockup.
 */
TSR_API tsr_status tsr_backend_mockup_set_bootstrap(tsr_backend *be, int out_level, double bits);

/** The level a bootstrapped vector has on be (0: be cannot bootstrap). */
TSR_API int tsr_backend_boot_level(const tsr_backend *be);

/** Free a backend (NULL is a no-op). All its tile tensors must be freed first. */
TSR_API void tsr_backend_free(tsr_backend *be);

/** "mockup", "ckks" or "debug". */
TSR_API const char *tsr_backend_name(const tsr_backend *be);
/** Slots per vector. */
TSR_API int64_t tsr_backend_slots(const tsr_backend *be);
/** Level of fresh encryptions. */
TSR_API int tsr_backend_top_level(const tsr_backend *be);
/** Canonical scale of the top level (the default encryption scale). */
TSR_API double tsr_backend_default_scale(const tsr_backend *be);
/**
 * Canonical scale of a level: D_top = default scale, D_{l-1} = D_l^2 / q_l.
 * A product of two operands at level l with scale D_l, rescaled, has scale
 * D_{l-1} exactly; tile operations keep every ciphertext canonical.
 */
TSR_API double tsr_backend_scale(const tsr_backend *be, int level);
/** The prime q_level divided out when rescaling from `level` (0 <= level <= top). */
TSR_API double tsr_backend_prime(const tsr_backend *be, int level);
/**
 * log2 of the headroom of a vector at (level, scale): the largest slot
 * magnitude it holds is Q_level / (2 * scale). CKKS computes modulo Q_level,
 * so a value that reaches it wraps around and decrypts to garbage (of
 * magnitude about sqrt(N) times the headroom). The mockup refuses such values
 * (TSR_ERR_SCALE, "CKKS would decrypt garbage") and tsr_nn_check_outputs
 * flags decrypted outputs beyond it, with this one rule.
 */
TSR_API double tsr_backend_headroom_bits(const tsr_backend *be, int level, double scale);

/**
 * Declare rotation steps (any integers; taken modulo slots; 0 is ignored).
 * Mockup: adds to the set of allowed steps. CKKS: generates the missing
 * Galois keys if the backend holds a secret key, else TSR_ERR_KEY_MISSING.
 */
TSR_API tsr_status tsr_backend_declare_rotations(tsr_backend *be, const int64_t *steps, size_t n);
/** Declared steps in increasing order (normalized to [1, slots)); returns how many exist. */
TSR_API size_t tsr_backend_declared_rotations(const tsr_backend *be, int64_t *steps, size_t cap);
/** Switch between strict and collecting rotation policy (mockup and debug). */
TSR_API void tsr_backend_set_rotation_policy(tsr_backend *be, tsr_rotation_policy policy);
/**
 * Distinct rotation steps used since the last reset, in increasing order
 * (normalized to [1, slots)); returns how many exist (write at most cap).
 * After a dry run on a collecting mockup, these are exactly the Galois keys
 * the computation needs.
 */
TSR_API size_t tsr_backend_used_rotations(const tsr_backend *be, int64_t *steps, size_t cap);

/** Copy the operation counts since the last reset. */
TSR_API void tsr_backend_get_counts(const tsr_backend *be, tsr_backend_counts *out);
/** Zero the counts and forget the used rotation steps (declared steps stay). */
TSR_API void tsr_backend_reset_counts(tsr_backend *be);
/** Print the counts as one human-readable line per kind. */
TSR_API void tsr_backend_print_counts(const tsr_backend *be, FILE *out);
/**
 * Multiplicative depth consumed so far: top level minus the lowest level any
 * ciphertext reached since the last reset.
 */
TSR_API int tsr_backend_depth_used(const tsr_backend *be);

/* ---- debug backend ---------------------------------------------------------- */

/** Operation kinds the debug backend compares. */
typedef enum tsr_debug_op {
    TSR_DEBUG_ENCRYPT = 0,
    TSR_DEBUG_ADD,
    TSR_DEBUG_ADD_CONST,
    TSR_DEBUG_MUL_CT,
    TSR_DEBUG_MUL_PLAIN,
    TSR_DEBUG_MUL_CONST,
    TSR_DEBUG_ROTATE,
    TSR_DEBUG_RESCALE,
    TSR_DEBUG_DROP_LEVEL,
    TSR_DEBUG_BOOTSTRAP,
    TSR_DEBUG_OP_COUNT_
} tsr_debug_op;

/** Name of a debug operation kind ("mul_ct", ...). */
TSR_API const char *tsr_debug_op_name(tsr_debug_op op);

/**
 * What the debug backend saw: after every operation that produces a
 * ciphertext it decrypts both sides and takes the largest absolute
 * difference over all slots ("divergence").
 */
typedef struct tsr_debug_report {
    uint64_t ops;                          /**< operations compared */
    double threshold;                      /**< the threshold given at creation */
    double max_divergence;                 /**< largest divergence seen */
    uint64_t max_index;                    /**< operation number (0-based) where it was seen */
    tsr_debug_op max_op;                   /**< and its kind */
    int64_t first_index;                   /**< first operation above the threshold, -1 if none */
    tsr_debug_op first_op;                 /**< its kind */
    double first_divergence;               /**< its divergence */
    int first_level;                       /**< the level of its result */
    uint64_t count[TSR_DEBUG_OP_COUNT_];   /**< operations per kind */
    double max_by_op[TSR_DEBUG_OP_COUNT_]; /**< largest divergence per kind */
} tsr_debug_report;

/**
 * Create a backend that runs every operation on `subject` (typically ckks)
 * and `reference` (typically a mockup with the same primes and values
 * tracked) side by side and compares the results: the tool for finding
 * where precision is lost. Both must be able to decrypt, have the same slot
 * count, top level and prime chain (TSR_ERR_MISMATCH otherwise). The
 * children are borrowed (they must outlive the debug backend) and keep
 * their own counts. Declaring rotations declares them on both.
 * Bootstrapping: when both children can bootstrap to the same level (set
 * it on them first), so can the debug backend: both run and are compared
 * (TSR_DEBUG_BOOTSTRAP); children that disagree on the level give
 * TSR_ERR_MISMATCH.
 */
TSR_API tsr_status tsr_backend_debug_create(tsr_backend *subject, tsr_backend *reference,
                                            double threshold, tsr_backend **out);
/** The comparison so far (be must be a debug backend). */
TSR_API void tsr_backend_debug_report(const tsr_backend *be, tsr_debug_report *out);
/** Print the report: per kind the count and largest divergence (in bits), and the first breach. */
TSR_API void tsr_backend_debug_print(const tsr_backend *be, FILE *out);
/** Print one line per operation to trace (NULL stops tracing). */
TSR_API void tsr_backend_debug_trace(tsr_backend *be, FILE *trace);

/* ======================================================================== */
/* Tile tensors                                                               */
/* ======================================================================== */

/** A tile tensor: a shape and a grid of ciphertexts or encoded plaintexts (opaque). */
typedef struct tsr_tile tsr_tile;

/**
 * Pack dense (row-major over the logical sizes of shape) and encrypt every
 * tile at level (-1: the backend's top level) and scale (0: the level's
 * canonical scale). shape is validated against the backend's slot count.
 * In a shape-only mockup, dense may be NULL. The caller owns *out.
 */
TSR_API tsr_status tsr_tile_encrypt(tsr_backend *be, const tsr_tile_shape *shape,
                                    const double *dense, int level, double scale, tsr_tile **out);
/**
 * As tsr_tile_encrypt, but the tiles are encoded plaintexts (weights). Scale
 * 0 is the level's canonical scale: the product of a canonical ciphertext at
 * that level with such a plaintext is canonical one level lower. A tile
 * whose slots are all zero is not encoded (no plaintext, no memory; see
 * tsr_tile_num_encoded) and every operation treats it as zero: a product
 * with it is no ciphertext-plaintext product but an encryption of zero (one
 * constant product by 0), tsr_tile_mul_sum skips it and skips the
 * rotations of an output tile that only such tiles reach, a sum with it is
 * a copy. With dense NULL (shape-only mockup) every tile is encoded; pass
 * the values to a shape-only mockup to count what a real run does.
 */
TSR_API tsr_status tsr_tile_encode(tsr_backend *be, const tsr_tile_shape *shape,
                                   const double *dense, int level, double scale, tsr_tile **out);
/**
 * Decrypt (or decode) every tile and unpack into dense (num_elements
 * doubles). Needs a backend that can decrypt (mockup with values, or ckks
 * with the secret key).
 */
TSR_API tsr_status tsr_tile_decrypt(const tsr_tile *t, double *dense);
/**
 * Decrypt every tile without unpacking: out receives num_tiles * slots
 * doubles, padding included (for tests and debugging).
 */
TSR_API tsr_status tsr_tile_decrypt_raw(const tsr_tile *t, double *out);
/** Free a tile tensor (NULL is a no-op). */
TSR_API void tsr_tile_free(tsr_tile *t);
/** Deep copy. */
TSR_API tsr_status tsr_tile_copy(const tsr_tile *t, tsr_tile **out);

/*
 * Files: one frame of kind "tile tensor" (core/io.h framing: magic, version,
 * the backend's parameter fingerprint, checksum) holding the shape, level,
 * scale and every tile. Readers validate every field and refuse files made
 * for other parameters (TSR_ERR_MISMATCH), corrupted (TSR_ERR_CHECKSUM) or
 * malformed (TSR_ERR_FORMAT). The mockup and ckks backends can save; on
 * failure *out is NULL. Buffers from tsr_tile_to_bytes are freed with
 * tsr_tile_bytes_free.
 */
TSR_API tsr_status tsr_tile_save(const tsr_tile *t, const char *path);
TSR_API tsr_status tsr_tile_load(tsr_backend *be, const char *path, tsr_tile **out);
TSR_API tsr_status tsr_tile_write(const tsr_tile *t, FILE *fp);
TSR_API tsr_status tsr_tile_read(tsr_backend *be, FILE *fp, tsr_tile **out);
TSR_API tsr_status tsr_tile_to_bytes(const tsr_tile *t, uint8_t **buf, size_t *len);
TSR_API tsr_status tsr_tile_from_bytes(tsr_backend *be, const uint8_t *buf, size_t len,
                                       tsr_tile **out);
TSR_API void tsr_tile_bytes_free(uint8_t *buf);

/** The shape (owned by t). */
TSR_API const tsr_tile_shape *tsr_tile_get_shape(const tsr_tile *t);
/** The backend t lives on. */
TSR_API tsr_backend *tsr_tile_backend(const tsr_tile *t);
/** Current level (all tiles share it). */
TSR_API int tsr_tile_level(const tsr_tile *t);
/** Current scale (all tiles share it). */
TSR_API double tsr_tile_scale(const tsr_tile *t);
/**
 * Tiles actually held: ntiles for ciphertexts, the tiles that are not all
 * zero for plaintexts made by tsr_tile_encode.
 */
TSR_API int64_t tsr_tile_num_encoded(const tsr_tile *t);
/** 1 for ciphertexts, 0 for encoded plaintexts. */
TSR_API int tsr_tile_is_encrypted(const tsr_tile *t);

/*
 * Operations. Unless stated, inputs are unchanged and *out is a new tile
 * tensor owned by the caller; on failure *out is NULL. Binary operations
 * need equal numbers of dimensions and equal tile sizes; per dimension the
 * sizes are equal (with the same interleaving) or one side is `*`. Operands
 * at different levels are aligned to the lower level automatically (a plain
 * level drop when scales agree, else one scalar product at no extra depth).
 * Products rescale their result (one level) unless a _lazy variant is used;
 * results are at the canonical scale of their level when the inputs are.
 * Every operation's rotation steps go through tsr_backend_* accounting, so a
 * dry run on a collecting mockup yields the rotation keys and depth needed.
 */

/** out = a + b (elementwise, `*` broadcasts). Padding becomes `?` unless zero on both sides. */
TSR_API tsr_status tsr_tile_add(const tsr_tile *a, const tsr_tile *b, tsr_tile **out);
/** out = a - b. */
TSR_API tsr_status tsr_tile_sub(const tsr_tile *a, const tsr_tile *b, tsr_tile **out);
/**
 * out = a * b elementwise (ciphertext x ciphertext, or x encoded plaintext),
 * then rescale: one level. Padding is zero where either side's is.
 */
TSR_API tsr_status tsr_tile_mul(const tsr_tile *a, const tsr_tile *b, tsr_tile **out);
/** As tsr_tile_mul without the rescale (call tsr_tile_rescale after accumulating). */
TSR_API tsr_status tsr_tile_mul_lazy(const tsr_tile *a, const tsr_tile *b, tsr_tile **out);
/** Rescale every tile (one level down). */
TSR_API tsr_status tsr_tile_rescale(const tsr_tile *a, tsr_tile **out);
/**
 * out = a * p where p is a dense cleartext tensor laid out by pshape (which
 * must be compatible with a's shape); p is encoded on the fly at a's level
 * and canonical scale (one level).
 * Multiplying by a zero-padded plaintext clears a's unknown padding.
 */
TSR_API tsr_status tsr_tile_mul_plain(const tsr_tile *a, const tsr_tile_shape *pshape,
                                      const double *p, tsr_tile **out);
/** out = a + p for a dense cleartext p laid out by pshape (no level used). */
TSR_API tsr_status tsr_tile_add_plain(const tsr_tile *a, const tsr_tile_shape *pshape,
                                      const double *p, tsr_tile **out);
/**
 * out = c * a: one level, the result at the canonical scale of the next
 * level; integers |c| <= 2^20 use no level and keep a's scale.
 */
TSR_API tsr_status tsr_tile_mul_scalar(const tsr_tile *a, double c, tsr_tile **out);
/**
 * out = a + c on the logical elements; padding keeps its zeros (costs one
 * plaintext encode per distinct padding pattern, no level).
 */
TSR_API tsr_status tsr_tile_add_scalar(const tsr_tile *a, double c, tsr_tile **out);

/**
 * Elementwise polynomial p(x) = sum_i coeffs[i] x^i, degree >= 1, evaluated
 * with a balanced power-of-two split p = q(x) x^(2^k) + r(x) that uses the
 * optimal depth ceil(log2(degree+1)) (tsr_tile_poly_depth); the result is
 * exactly at the canonical scale of its level. Padding becomes `?` where
 * coeffs[0] != 0.
 */
TSR_API tsr_status tsr_tile_poly(const tsr_tile *a, const double *coeffs, int degree,
                                 tsr_tile **out);
/** Levels tsr_tile_poly consumes for a polynomial of this degree (coeffs may be NULL). */
TSR_API int tsr_tile_poly_depth(const double *coeffs, int degree);

/**
 * Sum over dimension dim: add the external tiles along dim, then rotate and
 * add inside each tile by stride*t/2, ..., stride (log2 t rotations). If
 * dim is the first dimension with tile > 1 the rotations wrap around the
 * whole vector and the result's dim is `*\/t`; otherwise only slot 0 of the
 * dimension holds the sum and it becomes `1?/t`. A `*` dimension is already
 * a sum of one element: the result is a copy. Needs dim's padding to be zero
 * (not `?`); no level used.
 */
TSR_API tsr_status tsr_tile_sum(const tsr_tile *a, int dim, tsr_tile **out);
/**
 * out = sum over dim of (a * b): the product by packing. Products are summed
 * over the external tiles before a single rescale per output tile, then
 * rotated-and-summed. One level. Matrix x vector: a=[m/t0, n/t1] (matrix),
 * b=[*\/t0, n/t1] (vector), dim 1 -> [m/t0, 1?/t1]; or a=[n/t0, m/t1] (the
 * transposed matrix), b=[n/t0, *\/t1], dim 0 -> [*\/t0, m/t1]. Matrix x
 * matrix: [m/t0, n/t1, *\/t2] x [*\/t0, n/t1, k/t2], dim 1 -> [m/t0, 1?/t1,
 * k/t2]; or [n/t0, m/t1, *\/t2] x [n/t0, *\/t1, k/t2], dim 0 -> [*\/t0, m/t1,
 * k/t2]. A dim-0 result feeds the next dim-1 product directly; a dim-1 result
 * needs tsr_tile_clear + tsr_tile_duplicate first.
 */
TSR_API tsr_status tsr_tile_mul_sum(const tsr_tile *a, const tsr_tile *b, int dim, tsr_tile **out);
/**
 * As tsr_tile_mul_sum over several dimensions at once (distinct; `*`
 * dimensions of the product are skipped): all external tiles along all of
 * them are summed before the single rescale, then each is rotated and
 * summed. E.g. a dense layer after a convolution of layout II: weights
 * [m/t0, X~/t1, Y~/t2, F/t3, *\/t4] x activations [*\/t0, X~/t1, Y~/t2,
 * F/t3, B/t4], dims {1, 2, 3} -> [m/t0, 1?/t1, 1?/t2, 1?/t3, B/t4].
 */
TSR_API tsr_status tsr_tile_mul_sum_dims(const tsr_tile *a, const tsr_tile *b, const int *dims,
                                         int ndims, tsr_tile **out);
/**
 * Turn a size-1 dimension (n == 1, padding zero) into `*\/t` by rotate-and-add
 * (log2 t rotations by -stride, -2 stride, ...). No level used.
 */
TSR_API tsr_status tsr_tile_duplicate(const tsr_tile *a, int dim, tsr_tile **out);
/**
 * Zero all padding (multiply by a 0/1 mask, one level) so no dimension is
 * `?` any more. A tensor without unknowns is copied without using a level.
 */
TSR_API tsr_status tsr_tile_clear(const tsr_tile *a, tsr_tile **out);
/**
 * Reinterpret a's tiles under another shape with the same slot contents:
 * allowed when every logical element (row-major order) sits in the same tile
 * and slot in both shapes and every padding slot `to` declares zero is zero
 * in a (e.g. [4/2, 8/8] -> [32/16] flattens). No operation is performed.
 */
TSR_API tsr_status tsr_tile_reshape(const tsr_tile *a, const tsr_tile_shape *to, tsr_tile **out);
/**
 * Bring a to a lower (or equal) level keeping its scale: a level drop
 * (modulus switch), no multiplicative depth consumed.
 */
TSR_API tsr_status tsr_tile_relevel(const tsr_tile *a, int level, tsr_tile **out);
/**
 * Bring a to (level, scale) exactly: a level drop if the scale already
 * matches, else a level drop to level+1 and a scalar product by 1 encoded to
 * land on scale after the rescale. level must be below a's level in the
 * second case.
 */
TSR_API tsr_status tsr_tile_set_level_scale(const tsr_tile *a, int level, double scale,
                                            tsr_tile **out);

/**
 * Linear map over the external grid with scalar coefficients: output tile j
 * (external row-major order of out_shape) is sum_k vals[k] * (tile cols[k]
 * of a) for k in [row_ptr[j], row_ptr[j+1]), rescaled once, plus bias[j]
 * in every slot (bias may be NULL). One level. The slot layout is not
 * touched: dimensions with tile > 1 must be identical in a and out_shape;
 * those with tile 1 (external only) may be remapped freely. This is a whole
 * dense or convolution layer when every model dimension is external and the
 * slots hold a batch (one sample per slot). A bias makes the padding `?`.
 * The rows are processed by OpenMP threads.
 */
TSR_API tsr_status tsr_tile_lincomb(const tsr_tile *a, const tsr_tile_shape *out_shape,
                                    const int64_t *row_ptr, const int64_t *cols, const double *vals,
                                    const double *bias, tsr_tile **out);

/**
 * tsr_tile_lincomb of the squares of a's tiles (a square activation and the
 * layer after it): two levels. Equal up to CKKS rounding to squaring a and
 * then tsr_tile_lincomb, but on CKKS every square stays unrelinearized until
 * the sums are formed, so one relinearization per output tile replaces one
 * per input tile (lazy relinearization; the sums of 3-polynomial ciphertexts
 * cost about twice the usual constant terms).
 */
TSR_API tsr_status tsr_tile_sq_lincomb(const tsr_tile *a, const tsr_tile_shape *out_shape,
                                       const int64_t *row_ptr, const int64_t *cols,
                                       const double *vals, const double *bias, tsr_tile **out);

/* ---- 2D convolution ---------------------------------------------------- */

/**
 * Geometry of a convolution over an image-packed tile tensor. The image's
 * x_dim and y_dim must be interleaved (`X~/t`) or fit one tile (t >= X);
 * c_dim holds the C input channels (or -1 when C == 1); f_dim (or -1 when
 * F == 1) must be `*` in the image and receives the F filters; every other
 * dimension is a batch dimension and rides along. The two layouts of the
 * paper (see docs/TILES.md) alternate so layers chain without repacking:
 *   I:  image [*\/t0, X~/t1, Y~/t2, C/t3, B/t4], f_dim 0, c_dim 3
 *       -> [F/t0, X'~/t1, Y'~/t2, 1?/t3, B/t4]  (clear + duplicate dim 3 for II)
 *   II: image [C/t0, X~/t1, Y~/t2, *\/t3, B/t4], f_dim 3, c_dim 0
 *       -> [*\/t0, X'~/t1, Y'~/t2, F/t3, B/t4]  (ready for layout I)
 * The filter offsets FX, FY live only in the external grid: for each offset
 * the image is shifted by picking neighbour tiles plus a few rotations, then
 * multiplied by a plaintext filter tile, which also masks the zero padding.
 * Output size X' = (X + 2 pad_x - FX) / stride_x + 1; a stride s needs the
 * image's external size along x to be a multiple of s.
 */
typedef struct tsr_tile_conv_params {
    int x_dim, y_dim; /**< image row and column dimensions */
    int c_dim;        /**< input channels (summed), or -1 */
    int f_dim;        /**< output filters, or -1 */
    int stride_x, stride_y;
    int pad_x, pad_y; /**< zero padding on each side */
    int depthwise;    /**< 1: filter c applies to channel c only, no sum (f_dim must be -1) */
} tsr_tile_conv_params;

/** A prepared convolution layer: geometry plus encoded filters (opaque). */
typedef struct tsr_tile_conv tsr_tile_conv;

/**
 * Prepare a convolution for images of shape `image` at (level, scale)
 * (level -1: top; scale 0: default). filters is dense (F, C, FX, FY)
 * row-major ((C, 1, FX, FY) when depthwise); bias (F values, or C when
 * depthwise) may be NULL. All filter plaintexts are encoded here (counted
 * as encodes), so tsr_tile_conv_apply does only rotations, products and adds.
 */
TSR_API tsr_status tsr_tile_conv_create(tsr_backend *be, const tsr_tile_shape *image,
                                        const tsr_tile_conv_params *p, const double *filters, int F,
                                        int FX, int FY, const double *bias, int level, double scale,
                                        tsr_tile_conv **out);
/** Free (NULL is a no-op). */
TSR_API void tsr_tile_conv_free(tsr_tile_conv *c);
/** Shape of the convolution's output. */
TSR_API const tsr_tile_shape *tsr_tile_conv_output_shape(const tsr_tile_conv *c);
/**
 * Shape of the filter tile tensor in the paper's notation (FX and FY as
 * external-only dimensions in front, then the image's dimensions).
 */
TSR_API void tsr_tile_conv_filter_shape(const tsr_tile_conv *c, tsr_tile_shape *out);
/**
 * out = conv(image) (+ bias). image must have the shape the convolution was
 * prepared for, and its level and scale, or a higher level (it is then
 * brought down exactly, at no depth). One level.
 */
TSR_API tsr_status tsr_tile_conv_apply(const tsr_tile_conv *c, const tsr_tile *image,
                                       tsr_tile **out);

TSR_END_DECLS

#endif /* TESSERA_TILE_H */
