/*
 * core/io.h - checked binary I/O and the Tessera object frame.
 *
 * Readers and writers work over a FILE* or a memory buffer, little-endian,
 * with a sticky error: after the first failure every call is a no-op and the
 * status is reported once at the end (tsr_reader_status). A reader never
 * reads past its input or past the current frame's declared payload.
 *
 * Frame layout (all integers little-endian):
 *   off  size  field
 *     0     4  magic "TSR\x1a"
 *     4     2  format version of this kind of frame (tsr_obj_kind_version)
 *     6     2  object kind (tsr_obj_kind)
 *     8     4  flags (TSR_FRAME_SECRET, TSR_FRAME_SEEDED, ...)
 *    12    16  parameter fingerprint (all zero when not applicable)
 *    28     8  payload length in bytes
 *    36     n  payload
 *  36+n    32  BLAKE2b-256 of bytes [0, 36+n)
 * Payloads of any size work (64-bit lengths, streamed hashing).
 */
#ifndef TSR_CORE_IO_H
#define TSR_CORE_IO_H

#include "tessera/common.h"

#include <sodium.h>
#include <stdint.h>
#include <stdio.h>

#define TSR_FRAME_MAGIC "TSR\x1a"
/** Format version of frames whose kind has not changed since the first format. */
#define TSR_FRAME_VERSION 1
/**
 * Format version of key frames (secret, public, relinearization, Galois,
 * evaluation-key bundle): 2 added the key-set id (docs/CKKS.md).
 */
#define TSR_FRAME_VERSION_KEYS 2
/**
 * Format version of key-switching key frames (relinearization, Galois,
 * evaluation-key bundle): 3 names each key's max level and the stream its
 * a halves are expanded with (seeded keys, docs/CKKS.md). Version 2 of these
 * kinds is still read.
 */
#define TSR_FRAME_VERSION_KSK 3
#define TSR_FRAME_HEADER_SIZE 36
#define TSR_FRAME_HASH_SIZE   32
#define TSR_FINGERPRINT_SIZE  16

/** Frame flags. */
#define TSR_FRAME_SECRET 0x1u /* payload is secret key material */
#define TSR_FRAME_SEEDED 0x2u /* payload stores a seed instead of a uniform polynomial */

/** Object kinds: one registry so files of one kind are never read as another. */
typedef enum tsr_obj_kind {
    TSR_OBJ_NONE = 0,
    TSR_OBJ_PARAMS = 1,
    TSR_OBJ_PLAINTEXT = 2,
    TSR_OBJ_CIPHERTEXT = 3,
    TSR_OBJ_SECRET_KEY = 4,
    TSR_OBJ_PUBLIC_KEY = 5,
    TSR_OBJ_RELIN_KEY = 6,
    TSR_OBJ_GALOIS_KEYS = 7,
    TSR_OBJ_EVAL_KEYS = 8,
    TSR_OBJ_TILE_TENSOR = 9,
    TSR_OBJ_PLAN = 10,
    TSR_OBJ_CIPHERTEXT_SET = 11,
    TSR_OBJ_KIND_COUNT_
} tsr_obj_kind;

/** Human name of a kind ("ciphertext", "evaluation keys", ...). */
const char *tsr_obj_kind_name(tsr_obj_kind kind);
/**
 * Format version written in (and required of) frames of this kind:
 * TSR_FRAME_VERSION_KSK for key-switching key kinds, TSR_FRAME_VERSION_KEYS for the
 * other key kinds, TSR_FRAME_VERSION otherwise.
 */
uint16_t tsr_obj_kind_version(tsr_obj_kind kind);
/** Oldest format version still read for this kind (the current one for most kinds). */
uint16_t tsr_obj_kind_min_version(tsr_obj_kind kind);
/** The name with its article where it takes one ("a ciphertext", "an inference plan",
 *  "evaluation keys"), for messages such as "expected %s but the file holds %s". */
const char *tsr_obj_kind_phrase(tsr_obj_kind kind);

/* ---- output files -------------------------------------------------------- */

/*
 * Every file Tessera writes is written atomically: the bytes go to a fresh
 * temporary file in the target's directory (".NAME.XXXXXXXXXXXXXXXX.tmp",
 * created O_CREAT|O_EXCL|O_NOFOLLOW with its final mode) and replace the
 * target by rename(2) only when everything was written and fsync'ed. Until
 * then the target keeps its old contents: a failed or killed run leaves it
 * untouched (a killed one may leave a stale temporary file next to it).
 *
 * Rules checked when an output is opened (TSR_ERR_INVALID_ARG):
 *  - an existing target must be a regular file (no symbolic link, device,
 *    FIFO, socket or directory: nothing is opened, chmod'ed or followed);
 *  - a TSR_OUT_SECRET output never replaces an existing file, and no output
 *    replaces a file holding a secret key, unless TSR_OUT_FORCE is given.
 * A directory that is missing or not writable fails with TSR_ERR_IO.
 */
#define TSR_OUT_SECRET  0x1u /* secret key material: mode 0600, never replaces a file */
#define TSR_OUT_PRIVATE 0x2u /* private data (decrypted results): mode 0600 */
#define TSR_OUT_FORCE   0x4u /* may replace an existing file / secret key (the CLI's --force) */
#define TSR_OUTSET_MAX  8

typedef struct tsr_outfile {
    FILE *fp;       /* the temporary file, open for writing */
    char *path;     /* the target */
    char *tmp;      /* the temporary file's path */
    unsigned flags; /* TSR_OUT_* */
} tsr_outfile;

/**
 * Outputs committed together: a verb writing several files (keygen: secret
 * key, evaluation keys, public key) opens them all, writes, and commits; no
 * target is replaced unless every file was written completely. Not
 * thread-safe; one set per writer thread.
 */
typedef struct tsr_outset {
    tsr_outfile f[TSR_OUTSET_MAX];
    int n;
} tsr_outset;

/** An empty set. */
void tsr_outset_init(tsr_outset *s);
/**
 * Check the rules above for path without creating anything (so a command
 * can refuse before long work). flags: TSR_OUT_*.
 */
tsr_status tsr_outset_check(const char *path, unsigned flags);
/**
 * Check the rules, create the temporary file for path and return its stream
 * in *fp (owned by the set: do not fclose it). On failure nothing is added.
 */
tsr_status tsr_outset_open(tsr_outset *s, const char *path, unsigned flags, FILE **fp);
/**
 * Flush, fsync and close every file; if any of that fails, remove all the
 * temporary files and return the error (no target changed). Then rename each
 * onto its target in order; a TSR_OUT_SECRET file (without TSR_OUT_FORCE) is
 * moved with RENAME_NOREPLACE, so a file that appeared at its path since the
 * check is kept and the commit fails (TSR_ERR_INVALID_ARG; open secret
 * outputs first, so nothing else was renamed yet). The set is empty
 * afterwards.
 */
tsr_status tsr_outset_commit(tsr_outset *s);
/** Close and remove every temporary file (no target changes). The set is empty afterwards. */
void tsr_outset_abort(tsr_outset *s);

/* ---- writer -------------------------------------------------------------- */

typedef struct tsr_writer {
    FILE *fp;       /* file sink, or NULL for memory */
    tsr_outset out; /* the output file of tsr_writer_open_file */
    uint8_t *mem;   /* growable memory sink (owned) */
    size_t mem_len, mem_cap;
    tsr_status err;   /* sticky */
    uint64_t written; /* bytes written in total */
    /* current frame */
    int in_frame;
    uint64_t frame_payload, frame_start;
    crypto_generichash_state hash;
} tsr_writer;

/** Write into a growing memory buffer (take it with tsr_writer_take_buffer). */
void tsr_writer_init_mem(tsr_writer *w);
/** Write to an open stream (not closed by the writer). */
void tsr_writer_init_fp(tsr_writer *w, FILE *fp);
/**
 * Write path atomically (see "output files" above; flags: TSR_OUT_*):
 * tsr_writer_close renames the finished file into place if nothing failed,
 * and removes it otherwise.
 */
tsr_status tsr_writer_open_file(tsr_writer *w, const char *path, unsigned flags);
/**
 * Flush and close (for files); returns the sticky status. Frees memory
 * sinks. A file from tsr_writer_open_file replaces its target only if the
 * status is TSR_OK.
 */
tsr_status tsr_writer_close(tsr_writer *w);
/**
 * Close with the caller's own status st too (a failure outside the writer,
 * e.g. in a nested stream write): commits only if st and the writer are both
 * fine; returns the first failure.
 */
tsr_status tsr_writer_finish(tsr_writer *w, tsr_status st);
/** Give the memory buffer to the caller (free with tsr_free); writer is reset. */
uint8_t *tsr_writer_take_buffer(tsr_writer *w, size_t *len);

void tsr_write_bytes(tsr_writer *w, const void *p, size_t n);
void tsr_write_u8(tsr_writer *w, uint8_t v);
void tsr_write_u16(tsr_writer *w, uint16_t v);
void tsr_write_u32(tsr_writer *w, uint32_t v);
void tsr_write_u64(tsr_writer *w, uint64_t v);
void tsr_write_f64(tsr_writer *w, double v);
/** n 64-bit words, little-endian. */
void tsr_write_u64_array(tsr_writer *w, const uint64_t *v, size_t n);

/** Start a frame whose payload will be exactly payload_len bytes. */
void tsr_frame_begin_write(tsr_writer *w, tsr_obj_kind kind, uint32_t flags,
                           const uint8_t fingerprint[TSR_FINGERPRINT_SIZE], uint64_t payload_len);
/** Finish the frame (checks the declared length, appends the checksum). */
tsr_status tsr_frame_end_write(tsr_writer *w);

/* ---- reader -------------------------------------------------------------- */

typedef struct tsr_reader {
    FILE *fp; /* file source, or NULL for memory */
    int close_fp;
    const uint8_t *mem; /* memory source (not owned) */
    size_t mem_len, mem_pos;
    tsr_status err;    /* sticky */
    char what[96];     /* what is being read, for messages */
    uint64_t consumed; /* bytes read in total */
    /* current frame */
    int in_frame;
    uint64_t frame_left;     /* payload bytes not yet read */
    tsr_obj_kind frame_kind; /* kind of the current (or last) frame, for messages */
    crypto_generichash_state hash;
} tsr_reader;

typedef struct tsr_frame_info {
    tsr_obj_kind kind;
    uint32_t flags;
    uint8_t fingerprint[TSR_FINGERPRINT_SIZE];
    uint64_t payload_len;
    uint16_t version; /* format version of the frame (min_version..version of its kind) */
} tsr_frame_info;

/**
 * Read a whole regular file of at most max_bytes into a fresh buffer (free with tsr_free; never
 * NULL on success, even for an empty file). what names the kind of file in the too-large message
 * ("an ONNX model"). Fails with TSR_ERR_NOT_FOUND, TSR_ERR_IO, TSR_ERR_FORMAT (too large) or
 * TSR_ERR_NOMEM and a message naming the path.
 */
tsr_status tsr_read_whole_file(const char *path, uint64_t max_bytes, const char *what,
                               uint8_t **buf, size_t *len);

void tsr_reader_init_mem(tsr_reader *r, const void *buf, size_t len);
void tsr_reader_init_fp(tsr_reader *r, FILE *fp);
/** Open path for reading: TSR_ERR_NOT_FOUND if it does not exist, TSR_ERR_IO otherwise. */
tsr_status tsr_reader_open_file(tsr_reader *r, const char *path);
/** Close (for files); returns the sticky status. */
tsr_status tsr_reader_close(tsr_reader *r);
/** The sticky status (TSR_OK while everything read fine). */
tsr_status tsr_reader_status(const tsr_reader *r);
/** Set the description used in error messages ("ciphertext limb 3"). */
void tsr_reader_set_what(tsr_reader *r, const char *what);
/** Record a validation failure (sticky); returns st. For field checks. */
tsr_status tsr_reader_fail(tsr_reader *r, tsr_status st, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

void tsr_read_bytes(tsr_reader *r, void *p, size_t n);
uint8_t tsr_read_u8(tsr_reader *r);
uint16_t tsr_read_u16(tsr_reader *r);
uint32_t tsr_read_u32(tsr_reader *r);
uint64_t tsr_read_u64(tsr_reader *r);
double tsr_read_f64(tsr_reader *r);
/** n 64-bit words; with bound != 0 every word must be < bound (else TSR_ERR_FORMAT). */
void tsr_read_u64_array(tsr_reader *r, uint64_t *v, size_t n, uint64_t bound);

/**
 * Read and validate a frame header: magic, version, kind == expected (or any
 * kind if expected is TSR_OBJ_NONE), payload_len <= max_payload, and
 * payload_len + checksum <= the bytes left in the input (memory, or a regular
 * file: fstat; unknown only for pipes), so a forged length fails here with
 * TSR_ERR_FORMAT before any reader allocates by it.
 */
tsr_status tsr_frame_begin_read(tsr_reader *r, tsr_obj_kind expected, uint64_t max_payload,
                                tsr_frame_info *info);
/** Check the whole payload was consumed and the checksum matches. */
tsr_status tsr_frame_end_read(tsr_reader *r);
/** Payload bytes of the current frame not read yet. */
uint64_t tsr_frame_remaining(const tsr_reader *r);

#endif /* TSR_CORE_IO_H */
