/*
 * core/io.c - checked little-endian readers/writers and object frames.
 */
#include "core/io.h"
#include "core/alloc.h"
#include "core/error.h"
#include "core/rng.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static const char *const kind_names[TSR_OBJ_KIND_COUNT_] = {
    [TSR_OBJ_NONE] = "object",
    [TSR_OBJ_PARAMS] = "parameters",
    [TSR_OBJ_PLAINTEXT] = "plaintext",
    [TSR_OBJ_CIPHERTEXT] = "ciphertext",
    [TSR_OBJ_SECRET_KEY] = "secret key",
    [TSR_OBJ_PUBLIC_KEY] = "public key",
    [TSR_OBJ_RELIN_KEY] = "relinearization key",
    [TSR_OBJ_GALOIS_KEYS] = "Galois keys",
    [TSR_OBJ_EVAL_KEYS] = "evaluation keys",
    [TSR_OBJ_TILE_TENSOR] = "tile tensor",
    [TSR_OBJ_PLAN] = "inference plan",
    [TSR_OBJ_CIPHERTEXT_SET] = "ciphertext set",
};

/* The names with their article, for "expected a ciphertext", "holds evaluation keys". */
static const char *const kind_phrases[TSR_OBJ_KIND_COUNT_] = {
    [TSR_OBJ_NONE] = "a Tessera object",           [TSR_OBJ_PARAMS] = "parameters",
    [TSR_OBJ_PLAINTEXT] = "a plaintext",           [TSR_OBJ_CIPHERTEXT] = "a ciphertext",
    [TSR_OBJ_SECRET_KEY] = "a secret key",         [TSR_OBJ_PUBLIC_KEY] = "a public key",
    [TSR_OBJ_RELIN_KEY] = "a relinearization key", [TSR_OBJ_GALOIS_KEYS] = "Galois keys",
    [TSR_OBJ_EVAL_KEYS] = "evaluation keys",       [TSR_OBJ_TILE_TENSOR] = "a tile tensor",
    [TSR_OBJ_PLAN] = "an inference plan",          [TSR_OBJ_CIPHERTEXT_SET] = "a ciphertext set",
};

const char *tsr_obj_kind_name(tsr_obj_kind kind) {
    if ((unsigned)kind >= TSR_OBJ_KIND_COUNT_ || !kind_names[kind]) return "unknown object";
    return kind_names[kind];
}

uint16_t tsr_obj_kind_version(tsr_obj_kind kind) {
    switch (kind) {
    case TSR_OBJ_SECRET_KEY:
    case TSR_OBJ_PUBLIC_KEY:
        return TSR_FRAME_VERSION_KEYS;
    case TSR_OBJ_RELIN_KEY:
    case TSR_OBJ_GALOIS_KEYS:
    case TSR_OBJ_EVAL_KEYS:
        return TSR_FRAME_VERSION_KSK;
    default:
        return TSR_FRAME_VERSION;
    }
}

uint16_t tsr_obj_kind_min_version(tsr_obj_kind kind) {
    switch (kind) {
    case TSR_OBJ_RELIN_KEY:
    case TSR_OBJ_GALOIS_KEYS:
    case TSR_OBJ_EVAL_KEYS:
        return TSR_FRAME_VERSION_KEYS;
    default:
        return tsr_obj_kind_version(kind);
    }
}

/* ---- output files -------------------------------------------------------- */

static const char *file_type(mode_t m) {
    if (S_ISLNK(m)) return "a symbolic link";
    if (S_ISDIR(m)) return "a directory";
    if (S_ISCHR(m) || S_ISBLK(m)) return "a device";
    if (S_ISFIFO(m)) return "a FIFO";
    if (S_ISSOCK(m)) return "a socket";
    return "not a regular file";
}

/* The directory part of path ("." for a bare name). */
static void dir_of(const char *path, char *dir, size_t n) {
    const char *slash = strrchr(path, '/');
    if (!slash)
        snprintf(dir, n, ".");
    else if (slash == path)
        snprintf(dir, n, "/");
    else
        snprintf(dir, n, "%.*s", (int)(slash - path), path);
}

/* Does the regular file at path start with the frame header of secret key material? */
static int holds_secret(const char *path) {
    uint8_t h[12];
    int fd = open(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) return 0;
    struct stat sb;
    ssize_t got = fstat(fd, &sb) == 0 && S_ISREG(sb.st_mode) ? read(fd, h, sizeof h) : -1;
    close(fd);
    if (got != (ssize_t)sizeof h || memcmp(h, TSR_FRAME_MAGIC, 4) != 0) return 0;
    uint16_t kind = (uint16_t)(h[6] | (h[7] << 8));
    uint32_t flags =
        (uint32_t)h[8] | (uint32_t)h[9] << 8 | (uint32_t)h[10] << 16 | (uint32_t)h[11] << 24;
    return kind == TSR_OBJ_SECRET_KEY || (flags & TSR_FRAME_SECRET);
}

tsr_status tsr_outset_check(const char *path, unsigned flags) {
    TSR_REQUIRE(path, "tsr_outset_check: NULL path");
    struct stat sb;
    if (path[0] == 0) return tsr_fail(TSR_ERR_INVALID_ARG, "empty output path");
    if (lstat(path, &sb) != 0) {
        if (errno != ENOENT)
            return tsr_fail(TSR_ERR_IO, "cannot write '%s': %s", path, strerror(errno));
        /* the directory must take the temporary file */
        char dir[4096];
        dir_of(path, dir, sizeof dir);
        if (access(dir, W_OK | X_OK) != 0)
            return tsr_fail(TSR_ERR_IO, "cannot write '%s': directory '%s': %s", path, dir,
                            strerror(errno));
        return TSR_OK;
    }
    if (!S_ISREG(sb.st_mode))
        return tsr_fail(TSR_ERR_INVALID_ARG,
                        "'%s' is %s: outputs are written only as regular files; give another "
                        "path",
                        path, file_type(sb.st_mode));
    if (flags & TSR_OUT_FORCE) return TSR_OK;
    if (flags & TSR_OUT_SECRET)
        return tsr_fail(TSR_ERR_INVALID_ARG,
                        "'%s' already exists: a secret key is never written over a file without "
                        "--force (which replaces it)",
                        path);
    if (holds_secret(path))
        return tsr_fail(TSR_ERR_INVALID_ARG,
                        "'%s' holds a secret key: it is never replaced without --force; give "
                        "another output path",
                        path);
    return TSR_OK;
}

/* Create the temporary file ".NAME.<16 hex>.tmp" next to path. */
static tsr_status outfile_create(tsr_outfile *f, const char *path, unsigned flags) {
    const char *slash = strrchr(path, '/');
    size_t dlen = slash ? (size_t)(slash - path) + 1 : 0; /* with the '/' */
    const char *base = slash ? slash + 1 : path;
    if (base[0] == 0) return tsr_fail(TSR_ERR_INVALID_ARG, "'%s' names a directory", path);
    size_t n = strlen(path) + 32;
    f->path = malloc(strlen(path) + 1);
    f->tmp = malloc(n);
    if (!f->path || !f->tmp) {
        free(f->path);
        free(f->tmp);
        f->path = f->tmp = NULL;
        return tsr_fail(TSR_ERR_NOMEM, "out of memory");
    }
    memcpy(f->path, path, strlen(path) + 1);
    f->flags = flags;
    mode_t mode = (flags & (TSR_OUT_SECRET | TSR_OUT_PRIVATE)) ? 0600 : 0644;
    int fd = -1, e = EEXIST;
    for (int attempt = 0; attempt < 16 && fd < 0 && e == EEXIST; attempt++) {
        uint8_t r[8];
        tsr_status st = tsr_random_bytes(r, sizeof r);
        if (st != TSR_OK) {
            e = EIO;
            break;
        }
        snprintf(f->tmp, n, "%.*s.%s.%02x%02x%02x%02x%02x%02x%02x%02x.tmp", (int)dlen, path, base,
                 r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7]);
        fd = open(f->tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode);
        e = fd < 0 ? errno : 0;
    }
    if (fd >= 0 && !(f->fp = fdopen(fd, "wb"))) {
        e = errno;
        close(fd);
        unlink(f->tmp);
        fd = -1;
    }
    if (fd < 0) {
        free(f->path);
        free(f->tmp);
        f->path = f->tmp = NULL;
        return tsr_fail(TSR_ERR_IO, "cannot write '%s': %s", path, strerror(e));
    }
    return TSR_OK;
}

static void outfile_discard(tsr_outfile *f) {
    if (f->fp) fclose(f->fp);
    if (f->tmp) unlink(f->tmp);
    free(f->path);
    free(f->tmp);
    memset(f, 0, sizeof *f);
}

/* Flush, fsync and close the temporary file (kept on disk). */
static tsr_status outfile_close(tsr_outfile *f) {
    int e = 0;
    if (fflush(f->fp) != 0) e = errno;
    if (!e && fsync(fileno(f->fp)) != 0 && errno != EINVAL) e = errno;
    if (fclose(f->fp) != 0 && !e) e = errno;
    f->fp = NULL;
    if (e) return tsr_fail(TSR_ERR_IO, "writing '%s' failed: %s", f->path, strerror(e));
    return TSR_OK;
}

/* Move the finished temporary file onto its target; a secret never replaces a file. */
static tsr_status outfile_place(const tsr_outfile *f) {
    if (!(f->flags & TSR_OUT_SECRET) || (f->flags & TSR_OUT_FORCE)) {
        if (rename(f->tmp, f->path) == 0) return TSR_OK;
    } else {
        int r = renameat2(AT_FDCWD, f->tmp, AT_FDCWD, f->path, RENAME_NOREPLACE);
        if (r != 0 && (errno == EINVAL || errno == ENOSYS)) {
            /* no RENAME_NOREPLACE on this file system: a hard link refuses a target too */
            r = link(f->tmp, f->path);
            if (r == 0) unlink(f->tmp);
        }
        if (r == 0) return TSR_OK;
        if (errno == EEXIST)
            return tsr_fail(TSR_ERR_INVALID_ARG,
                            "'%s' appeared while the secret key was written: it is kept, and the "
                            "secret key is not written over it",
                            f->path);
    }
    return tsr_fail(TSR_ERR_IO, "cannot rename the finished '%s' into place: %s", f->path,
                    strerror(errno));
}

/* fsync the directory holding path, so the rename survives a crash (best effort). */
static void sync_dir(const char *path) {
    char dir[4096];
    dir_of(path, dir, sizeof dir);
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd >= 0) {
        (void)fsync(fd);
        close(fd);
    }
}

void tsr_outset_init(tsr_outset *s) {
    memset(s, 0, sizeof *s);
}

tsr_status tsr_outset_open(tsr_outset *s, const char *path, unsigned flags, FILE **fp) {
    TSR_REQUIRE(s && path && fp, "tsr_outset_open: NULL argument");
    TSR_REQUIRE(s->n < TSR_OUTSET_MAX, "tsr_outset_open: more than TSR_OUTSET_MAX outputs");
    *fp = NULL;
    TSR_TRY(tsr_outset_check(path, flags));
    TSR_TRY(outfile_create(&s->f[s->n], path, flags));
    *fp = s->f[s->n++].fp;
    return TSR_OK;
}

tsr_status tsr_outset_commit(tsr_outset *s) {
    tsr_status st = TSR_OK;
    for (int i = 0; i < s->n && st == TSR_OK; i++) st = outfile_close(&s->f[i]);
    for (int i = 0; i < s->n && st == TSR_OK; i++) {
        if ((st = outfile_place(&s->f[i])) != TSR_OK) break;
        free(s->f[i].tmp);
        s->f[i].tmp = NULL; /* nothing left to remove */
        sync_dir(s->f[i].path);
    }
    tsr_outset_abort(s);
    return st;
}

void tsr_outset_abort(tsr_outset *s) {
    for (int i = 0; i < s->n; i++) outfile_discard(&s->f[i]);
    s->n = 0;
}

const char *tsr_obj_kind_phrase(tsr_obj_kind kind) {
    if ((unsigned)kind >= TSR_OBJ_KIND_COUNT_ || !kind_phrases[kind]) return "an unknown object";
    return kind_phrases[kind];
}

/* ---- writer -------------------------------------------------------------- */

void tsr_writer_init_mem(tsr_writer *w) {
    memset(w, 0, sizeof *w);
}

void tsr_writer_init_fp(tsr_writer *w, FILE *fp) {
    memset(w, 0, sizeof *w);
    w->fp = fp;
}

tsr_status tsr_writer_open_file(tsr_writer *w, const char *path, unsigned flags) {
    memset(w, 0, sizeof *w);
    return w->err = tsr_outset_open(&w->out, path, flags, &w->fp);
}

tsr_status tsr_writer_close(tsr_writer *w) {
    if (w->out.n) {
        if (w->err == TSR_OK)
            w->err = tsr_outset_commit(&w->out);
        else
            tsr_outset_abort(&w->out);
        w->fp = NULL;
    } else if (w->fp) {
        if (fflush(w->fp) != 0 && w->err == TSR_OK)
            w->err = tsr_fail(TSR_ERR_IO, "write failed: %s", strerror(errno));
        w->fp = NULL;
    }
    tsr_free(w->mem);
    w->mem = NULL;
    w->mem_len = w->mem_cap = 0;
    return w->err;
}

tsr_status tsr_writer_finish(tsr_writer *w, tsr_status st) {
    if (st != TSR_OK && w->err == TSR_OK) w->err = st;
    tsr_status c = tsr_writer_close(w);
    return st != TSR_OK ? st : c;
}

uint8_t *tsr_writer_take_buffer(tsr_writer *w, size_t *len) {
    uint8_t *b = w->mem;
    *len = w->mem_len;
    w->mem = NULL;
    w->mem_len = w->mem_cap = 0;
    return b;
}

static void sink(tsr_writer *w, const void *p, size_t n) {
    if (w->err != TSR_OK || n == 0) return;
    if (w->fp) {
        if (fwrite(p, 1, n, w->fp) != n) {
            w->err = tsr_fail(TSR_ERR_IO, "write failed: %s", strerror(errno));
            return;
        }
    } else {
        if (w->mem_cap - w->mem_len < n) {
            size_t cap = w->mem_cap ? w->mem_cap : 256;
            while (cap - w->mem_len < n) {
                if (tsr_mul_size(cap, 2, &cap) != 0) {
                    w->err = tsr_fail(TSR_ERR_NOMEM, "output buffer too large");
                    return;
                }
            }
            uint8_t *nb = tsr_alloc(cap);
            if (!nb) {
                w->err = tsr_fail(TSR_ERR_NOMEM, "cannot grow output buffer to %zu bytes", cap);
                return;
            }
            if (w->mem_len) memcpy(nb, w->mem, w->mem_len);
            tsr_free(w->mem);
            w->mem = nb;
            w->mem_cap = cap;
        }
        memcpy(w->mem + w->mem_len, p, n);
        w->mem_len += n;
    }
    if (w->in_frame) crypto_generichash_update(&w->hash, p, n);
    w->written += n;
}

void tsr_write_bytes(tsr_writer *w, const void *p, size_t n) {
    sink(w, p, n);
}

void tsr_write_u8(tsr_writer *w, uint8_t v) {
    sink(w, &v, 1);
}

void tsr_write_u16(tsr_writer *w, uint16_t v) {
    uint8_t b[2] = { (uint8_t)v, (uint8_t)(v >> 8) };
    sink(w, b, 2);
}

void tsr_write_u32(tsr_writer *w, uint32_t v) {
    uint8_t b[4];
    for (int i = 0; i < 4; i++) b[i] = (uint8_t)(v >> (8 * i));
    sink(w, b, 4);
}

void tsr_write_u64(tsr_writer *w, uint64_t v) {
    uint8_t b[8];
    for (int i = 0; i < 8; i++) b[i] = (uint8_t)(v >> (8 * i));
    sink(w, b, 8);
}

void tsr_write_f64(tsr_writer *w, double v) {
    uint64_t u;
    memcpy(&u, &v, 8);
    tsr_write_u64(w, u);
}

void tsr_write_u64_array(tsr_writer *w, const uint64_t *v, size_t n) {
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    /* Chunked so that very large arrays hash and write in bounded pieces. */
    while (n > 0) {
        size_t k = n > (1u << 16) ? (1u << 16) : n;
        sink(w, v, k * 8);
        v += k;
        n -= k;
    }
#else
    for (size_t i = 0; i < n; i++) tsr_write_u64(w, v[i]);
#endif
}

void tsr_frame_begin_write(tsr_writer *w, tsr_obj_kind kind, uint32_t flags,
                           const uint8_t fingerprint[TSR_FINGERPRINT_SIZE], uint64_t payload_len) {
    static const uint8_t zeros[TSR_FINGERPRINT_SIZE];
    TSR_REQUIRE(!w->in_frame, "tsr_frame_begin_write: a frame is already open");
    crypto_generichash_init(&w->hash, NULL, 0, TSR_FRAME_HASH_SIZE);
    w->in_frame = 1;
    w->frame_start = w->written;
    sink(w, TSR_FRAME_MAGIC, 4);
    tsr_write_u16(w, tsr_obj_kind_version(kind));
    tsr_write_u16(w, (uint16_t)kind);
    tsr_write_u32(w, flags);
    sink(w, fingerprint ? fingerprint : zeros, TSR_FINGERPRINT_SIZE);
    tsr_write_u64(w, payload_len);
    w->frame_payload = payload_len;
}

tsr_status tsr_frame_end_write(tsr_writer *w) {
    uint8_t h[TSR_FRAME_HASH_SIZE];
    TSR_REQUIRE(w->in_frame, "tsr_frame_end_write: no open frame");
    w->in_frame = 0;
    if (w->err != TSR_OK) return w->err;
    uint64_t got = w->written - w->frame_start - TSR_FRAME_HEADER_SIZE;
    if (got != w->frame_payload)
        return w->err =
                   tsr_fail(TSR_ERR_INTERNAL, "frame payload is %llu bytes but %llu were declared",
                            (unsigned long long)got, (unsigned long long)w->frame_payload);
    crypto_generichash_final(&w->hash, h, sizeof h);
    sink(w, h, sizeof h);
    return w->err;
}

/* ---- reader -------------------------------------------------------------- */

void tsr_reader_init_mem(tsr_reader *r, const void *buf, size_t len) {
    memset(r, 0, sizeof *r);
    r->mem = buf;
    r->mem_len = buf ? len : 0;
    snprintf(r->what, sizeof r->what, "input");
}

void tsr_reader_init_fp(tsr_reader *r, FILE *fp) {
    memset(r, 0, sizeof *r);
    r->fp = fp;
    snprintf(r->what, sizeof r->what, "input");
}

tsr_status tsr_reader_open_file(tsr_reader *r, const char *path) {
    memset(r, 0, sizeof *r);
    snprintf(r->what, sizeof r->what, "input");
    r->fp = fopen(path, "rb");
    if (!r->fp)
        return r->err = tsr_fail(errno == ENOENT ? TSR_ERR_NOT_FOUND : TSR_ERR_IO,
                                 "cannot open '%s': %s", path, strerror(errno));
    r->close_fp = 1;
    return TSR_OK;
}

tsr_status tsr_reader_close(tsr_reader *r) {
    if (r->fp && r->close_fp) fclose(r->fp);
    r->fp = NULL;
    return r->err;
}

tsr_status tsr_reader_status(const tsr_reader *r) {
    return r->err;
}

void tsr_reader_set_what(tsr_reader *r, const char *what) {
    snprintf(r->what, sizeof r->what, "%s", what);
}

tsr_status tsr_reader_fail(tsr_reader *r, tsr_status st, const char *fmt, ...) {
    if (r->err != TSR_OK) return r->err; /* keep the first failure */
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    r->err = tsr_fail(st, "%s", msg);
    return st;
}

static void source(tsr_reader *r, void *p, size_t n) {
    if (r->err != TSR_OK) {
        memset(p, 0, n);
        return;
    }
    if (r->in_frame && n > r->frame_left) {
        memset(p, 0, n);
        tsr_reader_fail(r, TSR_ERR_FORMAT,
                        "malformed %s: needs %zu more bytes but the object's payload has only "
                        "%llu left",
                        r->what, n, (unsigned long long)r->frame_left);
        return;
    }
    size_t got;
    if (r->fp) {
        got = fread(p, 1, n, r->fp);
    } else {
        size_t avail = r->mem_len - r->mem_pos;
        got = n < avail ? n : avail;
        if (got) memcpy(p, r->mem + r->mem_pos, got);
        r->mem_pos += got;
    }
    if (got != n) {
        memset((uint8_t *)p + got, 0, n - got);
        if (r->fp && ferror(r->fp))
            tsr_reader_fail(r, TSR_ERR_IO, "read error in %s: %s", r->what, strerror(errno));
        else
            tsr_reader_fail(r, TSR_ERR_FORMAT,
                            "truncated %s: input ended after %llu bytes (%zu more were needed)",
                            r->what, (unsigned long long)(r->consumed + got), n - got);
        return;
    }
    if (r->in_frame) {
        crypto_generichash_update(&r->hash, p, n);
        r->frame_left -= n;
    }
    r->consumed += n;
}

void tsr_read_bytes(tsr_reader *r, void *p, size_t n) {
    source(r, p, n);
}

uint8_t tsr_read_u8(tsr_reader *r) {
    uint8_t v;
    source(r, &v, 1);
    return v;
}

uint16_t tsr_read_u16(tsr_reader *r) {
    uint8_t b[2];
    source(r, b, 2);
    return (uint16_t)(b[0] | (b[1] << 8));
}

uint32_t tsr_read_u32(tsr_reader *r) {
    uint8_t b[4];
    uint32_t v = 0;
    source(r, b, 4);
    for (int i = 0; i < 4; i++) v |= (uint32_t)b[i] << (8 * i);
    return v;
}

uint64_t tsr_read_u64(tsr_reader *r) {
    uint8_t b[8];
    uint64_t v = 0;
    source(r, b, 8);
    for (int i = 0; i < 8; i++) v |= (uint64_t)b[i] << (8 * i);
    return v;
}

double tsr_read_f64(tsr_reader *r) {
    uint64_t u = tsr_read_u64(r);
    double d;
    memcpy(&d, &u, 8);
    return d;
}

void tsr_read_u64_array(tsr_reader *r, uint64_t *v, size_t n, uint64_t bound) {
    size_t bytes;
    if (tsr_mul_size(n, 8, &bytes) != 0) {
        tsr_reader_fail(r, TSR_ERR_FORMAT, "malformed %s: array length overflows", r->what);
        return;
    }
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    source(r, v, bytes);
#else
    for (size_t i = 0; i < n; i++) v[i] = tsr_read_u64(r);
#endif
    if (bound && r->err == TSR_OK) {
        for (size_t i = 0; i < n; i++) {
            if (v[i] >= bound) {
                tsr_reader_fail(r, TSR_ERR_FORMAT,
                                "malformed %s: value %llu at index %zu is not below the "
                                "modulus %llu",
                                r->what, (unsigned long long)v[i], i, (unsigned long long)bound);
                return;
            }
        }
    }
}

/* Bytes of input not read yet: exact for memory and regular files, UINT64_MAX when unknown
 * (pipes, devices), where a short input is found when it ends. */
static uint64_t input_left(const tsr_reader *r) {
    if (!r->fp) return r->mem_len - r->mem_pos;
    struct stat sb;
    if (fstat(fileno(r->fp), &sb) != 0 || !S_ISREG(sb.st_mode)) return UINT64_MAX;
    off_t pos = ftello(r->fp);
    if (pos < 0 || pos > sb.st_size) return UINT64_MAX;
    return (uint64_t)(sb.st_size - pos);
}

tsr_status tsr_frame_begin_read(tsr_reader *r, tsr_obj_kind expected, uint64_t max_payload,
                                tsr_frame_info *info) {
    uint8_t magic[4];
    TSR_REQUIRE(!r->in_frame, "tsr_frame_begin_read: a frame is already open");
    memset(info, 0, sizeof *info);
    if (r->err != TSR_OK) return r->err;
    crypto_generichash_init(&r->hash, NULL, 0, TSR_FRAME_HASH_SIZE);
    r->in_frame = 1;
    r->frame_left = TSR_FRAME_HEADER_SIZE;
    source(r, magic, 4);
    if (r->err != TSR_OK) return r->err;
    if (memcmp(magic, TSR_FRAME_MAGIC, 4) != 0)
        return tsr_reader_fail(r, TSR_ERR_FORMAT,
                               "not a Tessera file: expected %s but the magic bytes are wrong",
                               tsr_obj_kind_phrase(expected));
    uint16_t version = tsr_read_u16(r);
    uint16_t kind = tsr_read_u16(r);
    info->flags = tsr_read_u32(r);
    tsr_read_bytes(r, info->fingerprint, TSR_FINGERPRINT_SIZE);
    info->payload_len = tsr_read_u64(r);
    if (r->err != TSR_OK) return r->err;
    if (kind == TSR_OBJ_NONE || kind >= TSR_OBJ_KIND_COUNT_)
        return tsr_reader_fail(r, TSR_ERR_FORMAT, "unknown object kind %u in file", kind);
    info->kind = (tsr_obj_kind)kind;
    const unsigned vmin = tsr_obj_kind_min_version(info->kind),
                   vmax = tsr_obj_kind_version(info->kind);
    if (version < vmin || version > vmax) {
        char known[48]; /* "version 2" or "versions 2..3" */
        if (vmin == vmax)
            snprintf(known, sizeof known, "version %u", vmax);
        else
            snprintf(known, sizeof known, "versions %u..%u", vmin, vmax);
        return tsr_reader_fail(
            r, TSR_ERR_VERSION,
            "%s file format version %u is not supported (this build reads "
            "%s); re-create the file with this version of tessera%s",
            tsr_obj_kind_name(info->kind), version, known,
            vmax >= TSR_FRAME_VERSION_KEYS ? " (for keys: run tessera keygen again)" : "");
    }
    info->version = version;
    if (expected != TSR_OBJ_NONE && kind != expected)
        return tsr_reader_fail(r, TSR_ERR_MISMATCH, "expected %s but the file holds %s",
                               tsr_obj_kind_phrase(expected), tsr_obj_kind_phrase(info->kind));
    if (info->payload_len > max_payload)
        return tsr_reader_fail(
            r, TSR_ERR_FORMAT,
            "the %s declares a payload of %llu bytes, more than the %llu allowed",
            tsr_obj_kind_name(info->kind), (unsigned long long)info->payload_len,
            (unsigned long long)max_payload);
    /* A declared size is checked against what the input holds before any reader sizes a buffer
     * by it: a forged 36-byte header must not make anyone allocate gigabytes. */
    uint64_t left = input_left(r);
    if (info->payload_len > left || left - info->payload_len < TSR_FRAME_HASH_SIZE)
        return tsr_reader_fail(r, TSR_ERR_FORMAT,
                               "truncated or corrupt file: the %s declares a payload of %llu "
                               "bytes but only %llu bytes follow its header",
                               tsr_obj_kind_name(info->kind), (unsigned long long)info->payload_len,
                               (unsigned long long)left);
    r->frame_kind = info->kind;
    r->frame_left = info->payload_len;
    return TSR_OK;
}

uint64_t tsr_frame_remaining(const tsr_reader *r) {
    return r->in_frame ? r->frame_left : 0;
}

tsr_status tsr_frame_end_read(tsr_reader *r) {
    uint8_t want[TSR_FRAME_HASH_SIZE], got[TSR_FRAME_HASH_SIZE];
    TSR_REQUIRE(r->in_frame, "tsr_frame_end_read: no open frame");
    if (r->err != TSR_OK) {
        r->in_frame = 0;
        return r->err;
    }
    if (r->frame_left != 0) {
        r->in_frame = 0;
        return tsr_reader_fail(r, TSR_ERR_FORMAT,
                               "malformed %s: %llu unexpected bytes at the end of the payload",
                               r->what, (unsigned long long)r->frame_left);
    }
    crypto_generichash_final(&r->hash, want, sizeof want);
    r->in_frame = 0;
    source(r, got, sizeof got);
    if (r->err != TSR_OK) return r->err;
#ifndef FUZZING_BUILD_MODE_UNSAFE_FOR_PRODUCTION
    if (sodium_memcmp(want, got, sizeof want) != 0)
        return tsr_reader_fail(r, TSR_ERR_CHECKSUM,
                               "the BLAKE2b checksum of the %s (over the whole object) does not "
                               "match: the file is corrupted or was modified",
                               tsr_obj_kind_name(r->frame_kind));
#endif
    return TSR_OK;
}

tsr_status tsr_read_whole_file(const char *path, uint64_t max_bytes, const char *what,
                               uint8_t **buf, size_t *len) {
    TSR_REQUIRE(path && what && buf && len, "tsr_read_whole_file: NULL argument");
    *buf = NULL;
    *len = 0;
    FILE *f = fopen(path, "rb");
    if (!f)
        return tsr_fail(errno == ENOENT ? TSR_ERR_NOT_FOUND : TSR_ERR_IO, "cannot open '%s': %s",
                        path, strerror(errno));
    struct stat sb;
    if (fstat(fileno(f), &sb) != 0 || !S_ISREG(sb.st_mode)) {
        fclose(f);
        return tsr_fail(TSR_ERR_IO, "'%s' is not a regular file", path);
    }
    if ((uint64_t)sb.st_size > max_bytes) {
        fclose(f);
        return tsr_fail(TSR_ERR_FORMAT, "'%s' is too large for %s", path, what);
    }
    size_t n = (size_t)sb.st_size;
    uint8_t *p = tsr_alloc(n ? n : 1);
    if (!p) {
        fclose(f);
        return tsr_fail(TSR_ERR_NOMEM, "out of memory reading '%s'", path);
    }
    size_t got = fread(p, 1, n, f);
    int err = ferror(f);
    fclose(f);
    if (got != n || err) {
        tsr_free(p);
        return tsr_fail(TSR_ERR_IO, "error reading '%s'", path);
    }
    *buf = p;
    *len = n;
    return TSR_OK;
}
