/*
 * tests/test_core_io.c - output files (core/io.h "output files"): atomic
 * replacement (a failed or over-limit write leaves the old file and no
 * temporary file), modes (0600 for secret and private data), the refusals
 * (symbolic links, FIFOs, directories, existing files for secrets, files
 * holding a secret key) leaving the refused target exactly as it was, and
 * output sets committed together.
 */
#include "testutil.h"

#include "core/error.h"
#include "core/io.h"

#include <dirent.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

static char dir[1024];

static int setup(void **state) {
    (void)state;
    snprintf(dir, sizeof dir, "%s", tt_temp_path(".d"));
    return mkdir(dir, 0700);
}

static int teardown(void **state) {
    (void)state;
    char cmd[1100];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    return system(cmd) == 0 ? 0 : -1;
}

static const char *path_of(const char *name) {
    static char buf[4][1100];
    static int k;
    k = (k + 1) % 4;
    snprintf(buf[k], sizeof buf[k], "%s/%s", dir, name);
    return buf[k];
}

static void put(const char *name, const char *text, mode_t mode) {
    FILE *f = fopen(path_of(name), "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
    assert_int_equal(chmod(path_of(name), mode), 0);
}

/* The whole (small) file, or "" if missing. */
static const char *get(const char *name) {
    static char buf[2][256];
    static int k;
    k ^= 1;
    buf[k][0] = 0;
    FILE *f = fopen(path_of(name), "r");
    if (!f) return buf[k];
    size_t n = fread(buf[k], 1, sizeof buf[k] - 1, f);
    buf[k][n] = 0;
    fclose(f);
    return buf[k];
}

static mode_t mode_of(const char *name) {
    struct stat sb;
    assert_int_equal(lstat(path_of(name), &sb), 0);
    return sb.st_mode & 07777;
}

/* Entries of the directory (without . and ..); fails on a leftover temporary file. */
static int entries(void) {
    DIR *d = opendir(dir);
    assert_non_null(d);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
        if (strstr(e->d_name, ".tmp")) fail_msg("temporary file left behind: %s", e->d_name);
        n++;
    }
    closedir(d);
    return n;
}

/* One small frame of the given kind through the writer. */
static tsr_status write_frame(const char *name, tsr_obj_kind kind, unsigned flags) {
    tsr_writer w;
    TSR_TRY(tsr_writer_open_file(&w, path_of(name), flags));
    tsr_frame_begin_write(&w, kind, kind == TSR_OBJ_SECRET_KEY ? TSR_FRAME_SECRET : 0, NULL, 8);
    tsr_write_u64(&w, 42);
    return tsr_writer_finish(&w, tsr_frame_end_write(&w));
}

static void test_modes_and_replace(void **state) {
    (void)state;
    mode_t old = umask(022);
    tt_ok(write_frame("a.sk", TSR_OBJ_SECRET_KEY, TSR_OUT_SECRET));
    assert_int_equal(mode_of("a.sk"), 0600);
    tt_ok(write_frame("a.ct", TSR_OBJ_CIPHERTEXT, 0));
    assert_int_equal(mode_of("a.ct"), 0644);
    tt_ok(write_frame("a.csv", TSR_OBJ_CIPHERTEXT, TSR_OUT_PRIVATE));
    assert_int_equal(mode_of("a.csv"), 0600);
    /* an ordinary output replaces an ordinary file, with the output's mode */
    put("b.ct", "old", 0666);
    tt_ok(write_frame("b.ct", TSR_OBJ_CIPHERTEXT, 0));
    assert_int_equal(mode_of("b.ct"), 0644);
    assert_memory_equal(get("b.ct"), TSR_FRAME_MAGIC, 4);
    umask(old);

    tsr_reader r;
    tsr_frame_info info;
    tt_ok(tsr_reader_open_file(&r, path_of("a.sk")));
    tt_ok(tsr_frame_begin_read(&r, TSR_OBJ_SECRET_KEY, 8, &info));
    assert_int_equal(tsr_read_u64(&r), 42);
    tt_ok(tsr_frame_end_read(&r));
    tt_ok(tsr_reader_close(&r));
    assert_int_equal(entries(), 4);
}

static void test_secrets_kept(void **state) {
    (void)state;
    /* a secret never replaces an existing file without force; the old one stays as it was */
    put("k.sk", "old", 0644);
    tt_fails(write_frame("k.sk", TSR_OBJ_SECRET_KEY, TSR_OUT_SECRET), TSR_ERR_INVALID_ARG);
    assert_string_equal(get("k.sk"), "old");
    assert_int_equal(mode_of("k.sk"), 0644);
    tt_ok(write_frame("k.sk", TSR_OBJ_SECRET_KEY, TSR_OUT_SECRET | TSR_OUT_FORCE));
    assert_int_equal(mode_of("k.sk"), 0600);
    /* no output replaces a file holding a secret key without force */
    tt_fails(write_frame("k.sk", TSR_OBJ_CIPHERTEXT, 0), TSR_ERR_INVALID_ARG);
    tt_fails(tsr_outset_check(path_of("k.sk"), TSR_OUT_PRIVATE), TSR_ERR_INVALID_ARG);
    tsr_reader r;
    tsr_frame_info info;
    tt_ok(tsr_reader_open_file(&r, path_of("k.sk")));
    tt_ok(tsr_frame_begin_read(&r, TSR_OBJ_SECRET_KEY, 8, &info));
    tsr_reader_close(&r);
    tt_ok(write_frame("k.sk", TSR_OBJ_CIPHERTEXT, TSR_OUT_FORCE));
    tt_ok(tsr_outset_check(path_of("k.sk"), 0));
    tt_ok(tsr_outset_check(path_of("new.sk"), TSR_OUT_SECRET));
}

static void test_secret_never_replaces_late_file(void **state) {
    (void)state;
    /* a file that appears at a secret output's path after the check is kept */
    tsr_outset s;
    FILE *a;
    tsr_outset_init(&s);
    tt_ok(tsr_outset_open(&s, path_of("race.sk"), TSR_OUT_SECRET, &a));
    fputs("new", a);
    put("race.sk", "other", 0644);
    tt_fails(tsr_outset_commit(&s), TSR_ERR_INVALID_ARG);
    assert_string_equal(get("race.sk"), "other");
    assert_int_equal(entries(), 1);
    /* with force it is replaced */
    tt_ok(tsr_outset_open(&s, path_of("race.sk"), TSR_OUT_SECRET | TSR_OUT_FORCE, &a));
    fputs("new", a);
    tt_ok(tsr_outset_commit(&s));
    assert_string_equal(get("race.sk"), "new");
    assert_int_equal(mode_of("race.sk"), 0600);
    assert_int_equal(entries(), 1);
}

static void test_not_regular_refused(void **state) {
    (void)state;
    /* a symbolic link to a file (as /dev/full would be): neither followed nor chmod'ed */
    put("target", "keep", 0644);
    assert_int_equal(symlink(path_of("target"), path_of("link")), 0);
    tt_fails(write_frame("link", TSR_OBJ_SECRET_KEY, TSR_OUT_SECRET | TSR_OUT_FORCE),
             TSR_ERR_INVALID_ARG);
    tt_fails(write_frame("link", TSR_OBJ_CIPHERTEXT, 0), TSR_ERR_INVALID_ARG);
    assert_non_null(strstr(tsr_last_error(), "symbolic link"));
    assert_string_equal(get("target"), "keep");
    assert_int_equal(mode_of("target"), 0644);
    assert_int_equal(mode_of("link") & 0777, 0777); /* still the link */
    /* a dangling link: nothing is created through it */
    assert_int_equal(symlink(path_of("nowhere"), path_of("dangling")), 0);
    tt_fails(write_frame("dangling", TSR_OBJ_SECRET_KEY, TSR_OUT_SECRET), TSR_ERR_INVALID_ARG);
    assert_int_equal(access(path_of("nowhere"), F_OK), -1);
    /* a FIFO (opening it would block) and a directory */
    assert_int_equal(mkfifo(path_of("fifo"), 0644), 0);
    tt_fails(write_frame("fifo", TSR_OBJ_SECRET_KEY, TSR_OUT_SECRET | TSR_OUT_FORCE),
             TSR_ERR_INVALID_ARG);
    assert_int_equal(mode_of("fifo"), 0644);
    assert_int_equal(mkdir(path_of("sub"), 0755), 0);
    tt_fails(write_frame("sub", TSR_OBJ_CIPHERTEXT, TSR_OUT_FORCE), TSR_ERR_INVALID_ARG);
    assert_int_equal(mode_of("sub"), 0755);
    /* a missing directory */
    tt_fails(write_frame("missing/x.ct", TSR_OBJ_CIPHERTEXT, 0), TSR_ERR_IO);
    tt_fails(tsr_writer_open_file(&(tsr_writer){ 0 }, "/nonexistent/dir/x", 0), TSR_ERR_IO);
    assert_int_equal(entries(), 5);
}

static void test_failed_write_keeps_old(void **state) {
    (void)state;
    put("good.ct", "good", 0644);
    /* a failure reported by the caller */
    tsr_writer w;
    tt_ok(tsr_writer_open_file(&w, path_of("good.ct"), 0));
    tsr_write_u64(&w, 1);
    tt_fails(tsr_writer_finish(&w, tsr_fail(TSR_ERR_SHAPE, "caller failed")), TSR_ERR_SHAPE);
    assert_string_equal(get("good.ct"), "good");
    /* a failure inside the writer (frame length) */
    tt_ok(tsr_writer_open_file(&w, path_of("good.ct"), 0));
    tsr_frame_begin_write(&w, TSR_OBJ_CIPHERTEXT, 0, NULL, 16);
    tsr_write_u64(&w, 1);
    tt_fails(tsr_writer_finish(&w, tsr_frame_end_write(&w)), TSR_ERR_INTERNAL);
    assert_string_equal(get("good.ct"), "good");
    /* the file-size limit (ulimit -f) hit mid-write: EFBIG with SIGXFSZ ignored */
    struct rlimit old, lim;
    assert_int_equal(getrlimit(RLIMIT_FSIZE, &old), 0);
    void (*prev)(int) = signal(SIGXFSZ, SIG_IGN);
    lim = old;
    lim.rlim_cur = 4096;
    assert_int_equal(setrlimit(RLIMIT_FSIZE, &lim), 0);
    tt_ok(tsr_writer_open_file(&w, path_of("good.ct"), 0));
    static uint64_t big[8192]; /* 64 KiB */
    tsr_write_u64_array(&w, big, sizeof big / sizeof big[0]);
    tsr_status st = tsr_writer_close(&w);
    assert_int_equal(setrlimit(RLIMIT_FSIZE, &old), 0);
    signal(SIGXFSZ, prev);
    assert_int_equal(st, TSR_ERR_IO);
    assert_string_equal(get("good.ct"), "good");
    assert_int_equal(entries(), 1);
}

static void test_outset_all_or_nothing(void **state) {
    (void)state;
    put("one", "old1", 0644);
    put("two", "old2", 0644);
    tsr_outset s;
    FILE *a, *b;
    /* the second output cannot be created: the first is dropped, nothing changes */
    tsr_outset_init(&s);
    tt_ok(tsr_outset_open(&s, path_of("one"), 0, &a));
    tt_fails(tsr_outset_open(&s, path_of("missing/two"), 0, &b), TSR_ERR_IO);
    tsr_outset_abort(&s);
    assert_string_equal(get("one"), "old1");
    assert_int_equal(entries(), 2);
    /* written but aborted: nothing changes */
    tt_ok(tsr_outset_open(&s, path_of("one"), 0, &a));
    tt_ok(tsr_outset_open(&s, path_of("two"), TSR_OUT_PRIVATE, &b));
    fputs("new1", a);
    fputs("new2", b);
    tsr_outset_abort(&s);
    assert_string_equal(get("one"), "old1");
    assert_string_equal(get("two"), "old2");
    assert_int_equal(entries(), 2);
    /* committed: both replaced (the private one with mode 0600) */
    tt_ok(tsr_outset_open(&s, path_of("one"), 0, &a));
    tt_ok(tsr_outset_open(&s, path_of("two"), TSR_OUT_PRIVATE, &b));
    fputs("new1", a);
    fputs("new2", b);
    tt_ok(tsr_outset_commit(&s));
    assert_int_equal(s.n, 0);
    assert_string_equal(get("one"), "new1");
    assert_string_equal(get("two"), "new2");
    assert_int_equal(mode_of("two"), 0600);
    assert_int_equal(entries(), 2);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_modes_and_replace, setup, teardown),
        cmocka_unit_test_setup_teardown(test_secrets_kept, setup, teardown),
        cmocka_unit_test_setup_teardown(test_secret_never_replaces_late_file, setup, teardown),
        cmocka_unit_test_setup_teardown(test_not_regular_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_failed_write_keeps_old, setup, teardown),
        cmocka_unit_test_setup_teardown(test_outset_all_or_nothing, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
