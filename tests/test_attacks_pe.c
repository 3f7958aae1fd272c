/*
 * tests/test_attacks_pe.c - the PE reader (attacks/pe.h) against Debian's
 * python3-pefile on real PE files shipped by Debian packages that
 * scripts/deps.sh installs (nsis: PE32 and PE32+ plugin DLLs and UI
 * executables; libz-mingw-w64: zlib1.dll for both targets) and on an
 * installer made by makensis at test time. Both sides print the same text
 * (header fields, data directories, sections, imports, overlay offset,
 * checksum) and the texts must be equal. Then: refusals of damaged headers,
 * every truncation of a real file fails cleanly, and tsr_pe_compare accepts
 * writes to slack and overlay (checksum fixed) but catches a changed byte
 * anywhere the program looks.
 */
#include "testutil.h"

#include "attacks/pe.h"
#include "core/alloc.h"
#include "core/io.h"

#include <glob.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The reference: the same text from pefile (run with Debian's /usr/bin/python3). */
static const char *const PEFILE_DUMP =
    "import sys, pefile\n"
    "out = sys.stdout.buffer\n"
    "def w(s): out.write(s.encode('latin1') + b'\\n')\n"
    "for path in sys.argv[1:]:\n"
    "    pe = pefile.PE(path, fast_load=True)\n"
    "    pe.parse_data_directories(directories=[pefile.DIRECTORY_ENTRY["
    "'IMAGE_DIRECTORY_ENTRY_IMPORT']])\n"
    "    f, o = pe.FILE_HEADER, pe.OPTIONAL_HEADER\n"
    "    w('file %s' % path)\n"
    "    w('hdr %x %x %x %x %x %x' % (pe.DOS_HEADER.e_lfanew, f.Machine, f.NumberOfSections,"
    " f.TimeDateStamp, f.SizeOfOptionalHeader, f.Characteristics))\n"
    "    w('opt %x %x %x %x %x %x %x %x %x %x %x' % (o.Magic, o.AddressOfEntryPoint, o.ImageBase,"
    " o.SectionAlignment, o.FileAlignment, o.SizeOfImage, o.SizeOfHeaders, o.CheckSum,"
    " o.Subsystem, o.DllCharacteristics, min(o.NumberOfRvaAndSizes, 16)))\n"
    "    for i, d in enumerate(o.DATA_DIRECTORY[:16]):\n"
    "        w('dir %d %x %x' % (i, d.VirtualAddress, d.Size))\n"
    "    for s in pe.sections:\n"
    "        w('sec %s %x %x %x %x %x' % (s.Name.split(b'\\0')[0].decode('latin1'),"
    " s.Misc_VirtualSize, s.VirtualAddress, s.SizeOfRawData, s.PointerToRawData,"
    " s.Characteristics))\n"
    "    for e in getattr(pe, 'DIRECTORY_ENTRY_IMPORT', []):\n"
    "        w('imp %s %d' % (e.dll.decode('latin1'), len(e.imports)))\n"
    "        for i in e.imports:\n"
    "            if i.import_by_ordinal: w('ord %d' % i.ordinal)\n"
    "            else: w('fn %s %d' % (i.name.decode('latin1'), i.hint))\n"
    "    ov = pe.get_overlay_data_start_offset()\n"
    "    w('overlay %d' % (len(pe.__data__) if ov is None else ov))\n"
    "    w('checksum %x' % pe.generate_checksum())\n";

/* Append printf output to a growing string. */
typedef struct sbuf {
    char *p;
    size_t n, cap;
} sbuf;

static void sb_printf(sbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void sb_printf(sbuf *b, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int k = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    assert_true(k >= 0);
    if (b->n + (size_t)k + 1 > b->cap) {
        b->cap = 2 * (b->n + (size_t)k + 1);
        b->p = realloc(b->p, b->cap);
        assert_non_null(b->p);
    }
    va_start(ap, fmt);
    vsnprintf(b->p + b->n, (size_t)k + 1, fmt, ap);
    va_end(ap);
    b->n += (size_t)k;
}

/* Our side of the dump, in the format of PEFILE_DUMP. */
static void dump(sbuf *b, const char *path, const tsr_pe *pe, const uint8_t *buf, size_t len) {
    sb_printf(b, "file %s\n", path);
    sb_printf(b, "hdr %x %x %x %x %x %x\n", pe->e_lfanew, pe->machine, pe->nsections, pe->timestamp,
              pe->opt_size, pe->file_chars);
    sb_printf(b, "opt %x %x %llx %x %x %x %x %x %x %x %x\n", pe->pe32plus ? 0x20bu : 0x10bu,
              pe->entry, (unsigned long long)pe->image_base, pe->section_align, pe->file_align,
              pe->size_of_image, pe->size_of_headers, pe->checksum, pe->subsystem, pe->dll_chars,
              pe->ndirs);
    for (uint32_t i = 0; i < pe->ndirs; i++)
        sb_printf(b, "dir %u %x %x\n", i, pe->dirs[i].rva, pe->dirs[i].size);
    for (uint32_t i = 0; i < pe->nsections; i++) {
        const tsr_pe_section *s = &pe->sec[i];
        sb_printf(b, "sec %s %x %x %x %x %x\n", s->name, s->vsize, s->vaddr, s->raw_size,
                  s->raw_ptr, s->characteristics);
    }
    for (uint32_t i = 0; i < pe->nimports; i++) {
        const tsr_pe_import *im = &pe->imports[i];
        sb_printf(b, "imp %s %u\n", im->dll, im->count);
        for (uint32_t k = im->first; k < im->first + im->count; k++) {
            if (pe->funcs[k].name)
                sb_printf(b, "fn %s %u\n", pe->funcs[k].name, pe->funcs[k].hint);
            else
                sb_printf(b, "ord %u\n", pe->funcs[k].ordinal);
        }
    }
    sb_printf(b, "overlay %llu\n", (unsigned long long)pe->overlay_off);
    sb_printf(b, "checksum %x\n", tsr_pe_checksum(buf, len, pe->checksum_off));
}

static uint8_t *load(const char *path, size_t *len) {
    uint8_t *buf;
    tt_ok(tsr_read_whole_file(path, 64u << 20, "a PE file", &buf, len));
    return buf;
}

/* The Debian-shipped PE files of the comparison (at least 20 must exist). */
static size_t debian_pe_files(char ***out, glob_t *g) {
    static const char *const pats[] = {
        "/usr/share/nsis/Plugins/amd64-unicode/*.dll", "/usr/share/nsis/Plugins/x86-ansi/*.dll",
        "/usr/share/nsis/Plugins/x86-unicode/*.dll",   "/usr/share/nsis/Contrib/UIs/*.exe",
        "/usr/x86_64-w64-mingw32/lib/zlib1.dll",       "/usr/i686-w64-mingw32/lib/zlib1.dll",
    };
    memset(g, 0, sizeof *g);
    for (size_t i = 0; i < sizeof pats / sizeof pats[0]; i++)
        glob(pats[i], i ? GLOB_APPEND : 0, NULL, g);
    if (g->gl_pathc < 20)
        fail_msg("only %zu Debian PE files found: install nsis and libz-mingw-w64 "
                 "(sh scripts/deps.sh)",
                 (size_t)g->gl_pathc);
    *out = g->gl_pathv;
    return g->gl_pathc;
}

/* A small NSIS installer made now with makensis: a real file with an overlay. */
static const char *make_installer(void) {
    static char exe[512];
    char nsi[512];
    snprintf(nsi, sizeof nsi, "%s", tt_temp_path(".nsi"));
    snprintf(exe, sizeof exe, "%s", tt_temp_path(".exe"));
    FILE *f = fopen(nsi, "w");
    assert_non_null(f);
    fprintf(f,
            "Unicode true\nSetCompressor /SOLID lzma\nOutFile \"%s\"\nRequestExecutionLevel user\n"
            "SilentInstall silent\nInstallDir \"$TEMP\\t\"\nSection\nSetOutPath $INSTDIR\n"
            "File \"%s\"\nSectionEnd\n",
            exe, "/usr/share/common-licenses/GPL-3");
    fclose(f);
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "makensis -V1 '%s' >&2", nsi);
    if (system(cmd) != 0) fail_msg("makensis failed: install nsis (sh scripts/deps.sh)");
    remove(nsi);
    return exe;
}

static void test_matches_pefile(void **state) {
    (void)state;
    glob_t g;
    char **files;
    size_t n = debian_pe_files(&files, &g);
    const char *installer = make_installer();
    char ref[512];
    snprintf(ref, sizeof ref, "%s", tt_temp_path(".txt"));
    sbuf cmd = { 0 }, ours = { 0 };
    sb_printf(&cmd, "/usr/bin/python3 -c \"$TSR_PEFILE_DUMP\"");
    for (size_t i = 0; i < n; i++) sb_printf(&cmd, " '%s'", files[i]);
    sb_printf(&cmd, " '%s' > '%s'", installer, ref);
    setenv("TSR_PEFILE_DUMP", PEFILE_DUMP, 1);
    if (system(cmd.p) != 0)
        fail_msg("python3-pefile failed: install python3-pefile (sh scripts/deps.sh)");
    int pe32 = 0, pe32plus = 0, with_imports = 0;
    for (size_t i = 0; i <= n; i++) {
        const char *path = i < n ? files[i] : installer;
        size_t len;
        uint8_t *buf = load(path, &len);
        tsr_pe pe;
        tt_ok(tsr_pe_parse(&pe, buf, len));
        dump(&ours, path, &pe, buf, len);
        pe32 += !pe.pe32plus;
        pe32plus += pe.pe32plus;
        with_imports += pe.nimports > 0;
        if (i == n) assert_true(pe.overlay_off < len); /* the installer's data is overlay */
        tsr_pe_free(&pe);
        tsr_free(buf);
    }
    assert_true(pe32 >= 5 && pe32plus >= 5 && with_imports >= 10);
    /* Compare line by line for a readable failure. */
    FILE *f = fopen(ref, "rb");
    assert_non_null(f);
    char line[4096];
    const char *at = ours.p;
    int lineno = 0;
    while (fgets(line, sizeof line, f)) {
        lineno++;
        const char *nl = strchr(at, '\n');
        assert_non_null(nl);
        size_t k = (size_t)(nl - at) + 1;
        if (strlen(line) != k || memcmp(line, at, k) != 0)
            fail_msg("line %d: pefile says '%.*s', we say '%.*s'", lineno, (int)strcspn(line, "\n"),
                     line, (int)(k - 1), at);
        at = nl + 1;
    }
    fclose(f);
    assert_int_equal(*at, '\0');
    assert_true(lineno > 200);
    remove(ref);
    remove(installer);
    free(cmd.p);
    free(ours.p);
    globfree(&g);
}

/* ---- refusals ------------------------------------------------------------ */

static uint8_t *zlib_dll(size_t *len) {
    return load("/usr/x86_64-w64-mingw32/lib/zlib1.dll", len);
}

static void put32(uint8_t *p, uint32_t v) {
    for (int k = 0; k < 4; k++) p[k] = (uint8_t)(v >> (8 * k));
}

static void test_refusals(void **state) {
    (void)state;
    size_t len;
    uint8_t *orig = zlib_dll(&len);
    uint8_t *b = malloc(len);
    assert_non_null(b);
    tsr_pe pe;
    tt_ok(tsr_pe_parse(&pe, orig, len));
    uint32_t lf = pe.e_lfanew, opt = lf + 24, st = opt + pe.opt_size;
    tsr_pe_free(&pe);

    struct {
        uint32_t off;
        uint32_t val;
        int width;
        const char *needle;
    } cases[] = {
        { 0, 'Z', 1, "MZ" },
        { 0x3c, 0x7fffffff, 4, "e_lfanew" },
        { lf, 'X', 1, "PE\\0\\0" },
        { lf + 6, 97, 2, "NumberOfSections" },
        { lf + 20, 10, 2, "SizeOfOptionalHeader" },
        { opt, 0x107, 2, "magic" },
        { opt + 36, 3000, 4, "FileAlignment" },
        { opt + 32, 256, 4, "SectionAlignment" },
        { st + 20, (uint32_t)len, 4, "outside" },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        memcpy(b, orig, len);
        if (cases[i].width == 1)
            b[cases[i].off] = (uint8_t)cases[i].val;
        else if (cases[i].width == 2) {
            b[cases[i].off] = (uint8_t)cases[i].val;
            b[cases[i].off + 1] = (uint8_t)(cases[i].val >> 8);
        } else
            put32(b + cases[i].off, cases[i].val);
        tt_fails(tsr_pe_parse(&pe, b, len), TSR_ERR_FORMAT);
        if (!strstr(tsr_last_error(), cases[i].needle))
            fail_msg("case %zu: message '%s' does not name '%s'", i, tsr_last_error(),
                     cases[i].needle);
        tsr_pe_free(&pe); /* safe after a failure */
    }
    /* An import directory pointing nowhere. */
    memcpy(b, orig, len);
    put32(b + opt + 112 + 8, 0x7ffffff0);
    tt_fails(tsr_pe_parse(&pe, b, len), TSR_ERR_FORMAT);
    assert_non_null(strstr(tsr_last_error(), "import directory"));

    /* Every prefix up to past the section table fails cleanly; every prefix short of the last
     * section's raw end fails too (its raw data lies outside the file). */
    tt_ok(tsr_pe_parse(&pe, orig, len));
    uint64_t need = pe.overlay_off;
    tsr_pe_free(&pe);
    for (size_t k = 0; k < need; k += k < 2048 ? 1 : 509) {
        if (tsr_pe_parse(&pe, orig, k) == TSR_OK) fail_msg("a %zu-byte prefix parsed", k);
        assert_true(tsr_last_error()[0] != '\0');
    }
    free(b);
    tsr_free(orig);
}

/* ---- slack, overlay, compare, checksum ----------------------------------- */

static void test_slack_and_compare(void **state) {
    (void)state;
    glob_t g;
    char **files;
    size_t n = debian_pe_files(&files, &g);
    tsr_prng rng;
    tt_prng(&rng, 41);
    int with_slack = 0, with_checksum = 0;
    for (size_t i = 0; i < n; i++) {
        size_t len;
        uint8_t *a = load(files[i], &len);
        tsr_pe pa;
        tt_ok(tsr_pe_parse(&pa, a, len));
        /* Regions: sorted, disjoint, inside [SizeOfHeaders, overlay). */
        uint64_t prev = 0, total = 0;
        for (uint32_t k = 0; k < pa.nslack; k++) {
            assert_true(pa.slack[k].len > 0);
            assert_true(pa.slack[k].off >= prev && pa.slack[k].off >= pa.size_of_headers);
            prev = pa.slack[k].off + pa.slack[k].len;
            assert_true(prev <= pa.overlay_off);
            total += pa.slack[k].len;
            /* never inside a section's used part */
            for (uint32_t s = 0; s < pa.nsections; s++) {
                uint64_t u0 = pa.sec[s].raw_ptr,
                         u1 = u0 + (pa.sec[s].vsize && pa.sec[s].vsize < pa.sec[s].raw_size
                                        ? pa.sec[s].vsize
                                        : pa.sec[s].raw_size);
                assert_true(pa.slack[k].off >= u1 || prev <= u0);
            }
        }
        with_slack += total > 0;
        /* Fill slack with random bytes, append a random overlay, fix the checksum. */
        size_t extra = 1000 + (size_t)(tsr_prng_uniform(&rng, 3000));
        uint8_t *b = malloc(len + extra);
        assert_non_null(b);
        memcpy(b, a, len);
        for (uint32_t k = 0; k < pa.nslack; k++)
            tsr_prng_bytes(&rng, b + pa.slack[k].off, pa.slack[k].len);
        tsr_prng_bytes(&rng, b + len, extra);
        tsr_pe_fix_checksum(&pa, b, len + extra);
        tsr_pe pb;
        tt_ok(tsr_pe_parse(&pb, b, len + extra));
        tt_ok(tsr_pe_compare(&pa, a, len, &pb, b, len + extra));
        if (pa.checksum) {
            with_checksum++;
            assert_int_equal(pb.checksum, tsr_pe_checksum(b, len + extra, pb.checksum_off));
            assert_int_equal(pa.checksum, tsr_pe_checksum(a, len, pa.checksum_off));
        } else {
            assert_int_equal(pb.checksum, 0);
        }
        tsr_pe_free(&pb);
        /* One changed byte in a section's used part, the headers or the imports is caught. */
        const tsr_pe_section *s0 = &pa.sec[tsr_prng_uniform(&rng, pa.nsections)];
        uint64_t used = s0->vsize && s0->vsize < s0->raw_size ? s0->vsize : s0->raw_size;
        uint64_t spots[3] = { s0->raw_ptr + tsr_prng_uniform(&rng, (used ? used : 1)),
                              pa.e_lfanew + 4 + tsr_prng_uniform(&rng, 20),
                              pa.checksum_off + 4 + tsr_prng_uniform(&rng, 8) };
        for (int k = 0; k < 3; k++) {
            if (k == 0 && used == 0) continue;
            memcpy(b, a, len);
            b[spots[k]] ^= 0x5a;
            if (tsr_pe_parse(&pb, b, len) != TSR_OK) continue; /* refused outright: also caught */
            tt_fails(tsr_pe_compare(&pa, a, len, &pb, b, len), TSR_ERR_MISMATCH);
            tsr_pe_free(&pb);
        }
        free(b);
        tsr_pe_free(&pa);
        tsr_free(a);
    }
    assert_true(with_slack >= 10);
    assert_true(with_checksum >= 1);
    globfree(&g);
}

/* Checksum against a hand-worked value: words 0x0201, 0x0403, odd byte 0x05, field zeroed. */
static void test_checksum_by_hand(void **state) {
    (void)state;
    uint8_t b[9] = { 1, 2, 3, 4, 0xff, 0xff, 0xff, 0xff, 5 };
    /* field at offset 4: 0x0201 + 0x0403 + 0x0005 = 0x0609, + length 9 */
    assert_int_equal(tsr_pe_checksum(b, sizeof b, 4), 0x0609 + 9);
    /* carries fold: 0xffff + 0x0002 = 0x10001 -> 0x0002 */
    uint8_t c[4] = { 0xff, 0xff, 2, 0 };
    assert_int_equal(tsr_pe_checksum(c, sizeof c, 100), 0x0001 + 0x0001 + 4);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_checksum_by_hand),
        cmocka_unit_test(test_matches_pefile),
        cmocka_unit_test(test_refusals),
        cmocka_unit_test(test_slack_and_compare),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
