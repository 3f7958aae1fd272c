/*
 * attacks/pe.c - the validated PE / PE32+ reader of attacks/pe.h: headers,
 * section table, import table (two passes: count, then fill), overlay and
 * slack regions, checksum, and the before/after structural comparison.
 *
 * Offsets follow the Microsoft PE/COFF specification: DOS header (e_lfanew
 * at 0x3c), "PE\0\0", COFF file header (20 bytes), optional header (PE32
 * magic 0x10b / PE32+ 0x20b; CheckSum at +64 in both), data directories,
 * section table (40 bytes per section).
 */
#include "attacks/pe.h"

#include "core/alloc.h"
#include "core/error.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DIR_DEBUG         6
#define MAX_DEBUG_ENTRIES 64

/* A bounds-checked view of the input. */
typedef struct span {
    const uint8_t *p;
    uint64_t n;
} span;

static int has(const span *s, uint64_t off, uint64_t len) {
    return off <= s->n && len <= s->n - off;
}
static uint16_t rd16(const span *s, uint64_t off) {
    return (uint16_t)(s->p[off] | (unsigned)s->p[off + 1] << 8);
}
static uint32_t rd32(const span *s, uint64_t off) {
    return (uint32_t)s->p[off] | (uint32_t)s->p[off + 1] << 8 | (uint32_t)s->p[off + 2] << 16 |
           (uint32_t)s->p[off + 3] << 24;
}
static uint64_t rd64(const span *s, uint64_t off) {
    return (uint64_t)rd32(s, off) | (uint64_t)rd32(s, off + 4) << 32;
}

void tsr_pe_free(tsr_pe *pe) {
    if (!pe) return;
    tsr_free(pe->sec);
    tsr_free(pe->imports);
    tsr_free(pe->funcs);
    tsr_free(pe->strings);
    memset(pe, 0, sizeof *pe);
}

/* File offset of rva and the bytes *avail from there to the end of the mapped part. */
static int rva_map(const tsr_pe *pe, uint64_t rva, uint64_t *off, uint64_t *avail) {
    uint64_t hdr = pe->size_of_headers < pe->file_size ? pe->size_of_headers : pe->file_size;
    if (rva < hdr) {
        *off = rva;
        *avail = hdr - rva;
        return 0;
    }
    for (uint32_t i = 0; i < pe->nsections; i++) {
        const tsr_pe_section *s = &pe->sec[i];
        uint64_t vs = s->vsize ? s->vsize : s->raw_size;
        if (vs > s->raw_size) vs = s->raw_size;
        if (rva >= s->vaddr && rva - s->vaddr < vs) {
            *off = (uint64_t)s->raw_ptr + (rva - s->vaddr);
            *avail = vs - (rva - s->vaddr);
            return 0;
        }
    }
    return -1;
}

int tsr_pe_rva_to_off(const tsr_pe *pe, uint64_t rva, uint64_t *off) {
    uint64_t avail;
    return rva_map(pe, rva, off, &avail);
}

/* ---- headers ------------------------------------------------------------- */

static tsr_status parse_headers(tsr_pe *pe, const span *s) {
    if (!has(s, 0, 64) || s->p[0] != 'M' || s->p[1] != 'Z')
        return tsr_fail(TSR_ERR_FORMAT, "not a PE file: no 'MZ' DOS header");
    pe->e_lfanew = rd32(s, 0x3c);
    uint64_t coff = (uint64_t)pe->e_lfanew + 4;
    if (!has(s, pe->e_lfanew, 4 + 20))
        return tsr_fail(TSR_ERR_FORMAT,
                        "PE header offset e_lfanew = %u is past the end of the %llu-byte file",
                        pe->e_lfanew, (unsigned long long)s->n);
    if (memcmp(s->p + pe->e_lfanew, "PE\0\0", 4) != 0)
        return tsr_fail(TSR_ERR_FORMAT, "not a PE file: no 'PE\\0\\0' signature at e_lfanew = %u",
                        pe->e_lfanew);
    pe->machine = rd16(s, coff);
    pe->nsections = rd16(s, coff + 2);
    pe->timestamp = rd32(s, coff + 4);
    pe->opt_size = rd16(s, coff + 16);
    pe->file_chars = rd16(s, coff + 18);
    if (pe->nsections > TSR_PE_MAX_SECTIONS)
        return tsr_fail(TSR_ERR_FORMAT, "NumberOfSections = %u exceeds the loader's limit of %d",
                        pe->nsections, TSR_PE_MAX_SECTIONS);

    uint64_t opt = coff + 20;
    if (pe->opt_size < 2 || !has(s, opt, pe->opt_size))
        return tsr_fail(TSR_ERR_FORMAT,
                        "optional header (SizeOfOptionalHeader = %u) is missing or truncated",
                        pe->opt_size);
    uint16_t magic = rd16(s, opt);
    uint32_t need, dirs_at;
    if (magic == 0x10b) {
        pe->pe32plus = 0;
        need = 96;
        dirs_at = 96;
    } else if (magic == 0x20b) {
        pe->pe32plus = 1;
        need = 112;
        dirs_at = 112;
    } else {
        return tsr_fail(TSR_ERR_FORMAT, "optional header magic 0x%x is neither PE32 nor PE32+",
                        magic);
    }
    if (pe->opt_size < need)
        return tsr_fail(TSR_ERR_FORMAT, "SizeOfOptionalHeader = %u is below the %u bytes of %s",
                        pe->opt_size, need, pe->pe32plus ? "PE32+" : "PE32");
    pe->entry = rd32(s, opt + 16);
    pe->image_base = pe->pe32plus ? rd64(s, opt + 24) : rd32(s, opt + 28);
    pe->section_align = rd32(s, opt + 32);
    pe->file_align = rd32(s, opt + 36);
    pe->size_of_image = rd32(s, opt + 56);
    pe->size_of_headers = rd32(s, opt + 60);
    pe->checksum_off = (uint32_t)(opt + 64);
    pe->checksum = rd32(s, opt + 64);
    pe->subsystem = rd16(s, opt + 68);
    pe->dll_chars = rd16(s, opt + 70);
    uint32_t nrva = rd32(s, opt + dirs_at - 4);
    uint32_t fa = pe->file_align, sa = pe->section_align;
    if (fa == 0 || (fa & (fa - 1)) != 0 || fa > 65536)
        return tsr_fail(TSR_ERR_FORMAT, "FileAlignment = %u is not a power of two up to 65536", fa);
    if (sa < fa)
        return tsr_fail(TSR_ERR_FORMAT, "SectionAlignment = %u is below FileAlignment = %u", sa,
                        fa);
    if (pe->size_of_headers > s->n)
        return tsr_fail(TSR_ERR_FORMAT, "SizeOfHeaders = %u exceeds the %llu-byte file",
                        pe->size_of_headers, (unsigned long long)s->n);
    pe->ndirs = nrva < TSR_PE_MAX_DIRS ? nrva : TSR_PE_MAX_DIRS;
    if ((uint64_t)dirs_at + 8ull * pe->ndirs > pe->opt_size)
        return tsr_fail(TSR_ERR_FORMAT,
                        "%u data directories do not fit in SizeOfOptionalHeader = %u", pe->ndirs,
                        pe->opt_size);
    for (uint32_t i = 0; i < pe->ndirs; i++) {
        pe->dirs[i].rva = rd32(s, opt + dirs_at + 8ull * i);
        pe->dirs[i].size = rd32(s, opt + dirs_at + 8ull * i + 4);
    }

    uint64_t st = opt + pe->opt_size;
    if (!has(s, st, 40ull * pe->nsections))
        return tsr_fail(TSR_ERR_FORMAT, "section table (%u sections at offset %llu) is truncated",
                        pe->nsections, (unsigned long long)st);
    pe->section_table_end = st + 40ull * pe->nsections;
    if (pe->nsections) {
        pe->sec = tsr_calloc_array(pe->nsections, sizeof *pe->sec);
        if (!pe->sec) return tsr_fail(TSR_ERR_NOMEM, "out of memory for the section table");
    }
    for (uint32_t i = 0; i < pe->nsections; i++) {
        uint64_t o = st + 40ull * i;
        tsr_pe_section *x = &pe->sec[i];
        memcpy(x->name, s->p + o, 8);
        x->name[8] = '\0';
        x->vsize = rd32(s, o + 8);
        x->vaddr = rd32(s, o + 12);
        x->raw_size = rd32(s, o + 16);
        x->raw_ptr = rd32(s, o + 20);
        x->characteristics = rd32(s, o + 36);
        if (x->raw_size && !has(s, x->raw_ptr, x->raw_size))
            return tsr_fail(TSR_ERR_FORMAT,
                            "section %u: raw data [%u, +%u) lies outside the %llu-byte file", i,
                            x->raw_ptr, x->raw_size, (unsigned long long)s->n);
    }
    return TSR_OK;
}

/* ---- imports ------------------------------------------------------------- */

/* Length of the NUL-terminated string at file offset off (at most TSR_PE_MAX_NAME). */
static tsr_status str_at(const span *s, uint64_t off, uint64_t avail, const char *what,
                         size_t *len) {
    for (size_t i = 0; i <= TSR_PE_MAX_NAME; i++) {
        if (i >= avail || !has(s, off + i, 1))
            return tsr_fail(TSR_ERR_FORMAT, "%s at offset %llu runs past the end of its section",
                            what, (unsigned long long)off);
        if (s->p[off + i] == '\0') {
            *len = i;
            return TSR_OK;
        }
    }
    return tsr_fail(TSR_ERR_FORMAT, "%s at offset %llu is longer than %d bytes", what,
                    (unsigned long long)off, TSR_PE_MAX_NAME);
}

static tsr_status map_rva(const tsr_pe *pe, uint64_t rva, const char *what, uint64_t *off,
                          uint64_t *avail) {
    if (rva_map(pe, rva, off, avail) != 0)
        return tsr_fail(TSR_ERR_FORMAT, "%s RVA 0x%llx is not in any section's file data", what,
                        (unsigned long long)rva);
    return TSR_OK;
}

/*
 * Walk the import directory. With fill == 0 count descriptors, functions and
 * string bytes; with fill == 1 store them (arrays sized by the first pass).
 */
static tsr_status walk_imports(tsr_pe *pe, const span *s, int fill, uint32_t *ndll, uint32_t *nfunc,
                               size_t *nstr) {
    uint64_t d, davail;
    TSR_TRY(map_rva(pe, pe->dirs[TSR_PE_DIR_IMPORT].rva, "import directory", &d, &davail));
    uint32_t w = pe->pe32plus ? 8 : 4;
    uint64_t ordflag = pe->pe32plus ? 1ull << 63 : 1ull << 31;
    *ndll = 0;
    *nfunc = 0;
    *nstr = 0;
    for (;; d += 20, davail -= 20) {
        if (davail < 20 || !has(s, d, 20))
            return tsr_fail(TSR_ERR_FORMAT, "import descriptor %u runs past the end of its section",
                            *ndll);
        uint32_t oft = rd32(s, d), name = rd32(s, d + 12), ft = rd32(s, d + 16);
        if (oft == 0 && name == 0 && ft == 0 && rd32(s, d + 4) == 0 && rd32(s, d + 8) == 0) break;
        if (*ndll >= TSR_PE_MAX_IMPORT_DLLS)
            return tsr_fail(TSR_ERR_FORMAT, "more than %d import descriptors",
                            TSR_PE_MAX_IMPORT_DLLS);
        uint64_t no, nav, to, tav;
        size_t nl;
        TSR_TRY(map_rva(pe, name, "imported DLL name", &no, &nav));
        TSR_TRY(str_at(s, no, nav, "imported DLL name", &nl));
        TSR_TRY(map_rva(pe, oft ? oft : ft, "import lookup table", &to, &tav));
        if (fill) {
            tsr_pe_import *im = &pe->imports[*ndll];
            memcpy(pe->strings + *nstr, s->p + no, nl + 1);
            im->dll = pe->strings + *nstr;
            im->first = *nfunc;
        }
        *nstr += nl + 1;
        uint32_t count = 0;
        for (;; to += w, tav -= w) {
            if (tav < w || !has(s, to, w))
                return tsr_fail(TSR_ERR_FORMAT,
                                "import lookup table of DLL %u runs past the end of its section",
                                *ndll);
            uint64_t v = w == 8 ? rd64(s, to) : rd32(s, to);
            if (v == 0) break;
            if (*nfunc >= TSR_PE_MAX_IMPORT_FUNCS)
                return tsr_fail(TSR_ERR_FORMAT, "more than %u imported functions",
                                TSR_PE_MAX_IMPORT_FUNCS);
            tsr_pe_func f = { 0 };
            if (v & ordflag) {
                f.ordinal = (uint16_t)(v & 0xffff);
            } else {
                if (v >> 31)
                    return tsr_fail(TSR_ERR_FORMAT,
                                    "import lookup entry 0x%llx has reserved bits set",
                                    (unsigned long long)v);
                uint64_t ho, hav;
                size_t fl;
                TSR_TRY(map_rva(pe, v, "import hint/name entry", &ho, &hav));
                if (hav < 2 || !has(s, ho, 2))
                    return tsr_fail(TSR_ERR_FORMAT, "import hint at offset %llu is truncated",
                                    (unsigned long long)ho);
                TSR_TRY(str_at(s, ho + 2, hav - 2, "imported function name", &fl));
                if (fill) {
                    memcpy(pe->strings + *nstr, s->p + ho + 2, fl + 1);
                    f.name = pe->strings + *nstr;
                    f.hint = rd16(s, ho);
                }
                *nstr += fl + 1;
            }
            if (fill) pe->funcs[*nfunc] = f;
            (*nfunc)++;
            count++;
        }
        if (fill) pe->imports[*ndll].count = count;
        (*ndll)++;
    }
    return TSR_OK;
}

static tsr_status parse_imports(tsr_pe *pe, const span *s) {
    if (pe->ndirs <= TSR_PE_DIR_IMPORT || pe->dirs[TSR_PE_DIR_IMPORT].rva == 0) return TSR_OK;
    uint32_t ndll, nfunc;
    size_t nstr;
    TSR_TRY(walk_imports(pe, s, 0, &ndll, &nfunc, &nstr));
    pe->imports = ndll ? tsr_calloc_array(ndll, sizeof *pe->imports) : NULL;
    pe->funcs = nfunc ? tsr_calloc_array(nfunc, sizeof *pe->funcs) : NULL;
    pe->strings = nstr ? tsr_alloc(nstr) : NULL;
    if ((ndll && !pe->imports) || (nfunc && !pe->funcs) || (nstr && !pe->strings))
        return tsr_fail(TSR_ERR_NOMEM, "out of memory for %u imports", nfunc);
    TSR_TRY(walk_imports(pe, s, 1, &pe->nimports, &pe->nfuncs, &nstr));
    return TSR_OK;
}

/* ---- overlay and slack --------------------------------------------------- */

static int cmp_region(const void *a, const void *b) {
    const tsr_pe_region *x = a, *y = b;
    return x->off < y->off ? -1 : x->off > y->off;
}

/* The file range of data directory i, or len 0 when it has none. */
static tsr_pe_region dir_range(const tsr_pe *pe, uint32_t i) {
    tsr_pe_region r = { 0, 0 };
    const tsr_pe_dir *d = &pe->dirs[i];
    if (d->rva == 0 || d->size == 0) return r;
    uint64_t off;
    if (i == TSR_PE_DIR_SECURITY)
        off = d->rva; /* a file offset */
    else if (tsr_pe_rva_to_off(pe, d->rva, &off) != 0)
        return r;
    if (off >= pe->file_size) return r;
    r.off = off;
    r.len = d->size < pe->file_size - off ? d->size : pe->file_size - off;
    return r;
}

/* Bytes at the start of section i that the program uses. */
static uint64_t used_size(const tsr_pe_section *s) {
    if (s->vsize == 0 || s->vsize > s->raw_size) return s->raw_size;
    return s->vsize;
}

static void find_regions(tsr_pe *pe, const span *s) {
    uint64_t hdr =
        pe->size_of_headers > pe->section_table_end ? pe->size_of_headers : pe->section_table_end;
    if (hdr > s->n) hdr = s->n;
    uint64_t end = hdr;
    for (uint32_t i = 0; i < pe->nsections; i++)
        if (pe->sec[i].raw_size && (uint64_t)pe->sec[i].raw_ptr + pe->sec[i].raw_size > end)
            end = (uint64_t)pe->sec[i].raw_ptr + pe->sec[i].raw_size;
    pe->overlay_off = end;

    /* Everything in [0, end) that something uses. */
    tsr_pe_region used[1 + TSR_PE_MAX_SECTIONS + TSR_PE_MAX_DIRS + MAX_DEBUG_ENTRIES];
    size_t nu = 0;
    used[nu++] = (tsr_pe_region){ 0, hdr };
    for (uint32_t i = 0; i < pe->nsections; i++)
        if (pe->sec[i].raw_size)
            used[nu++] = (tsr_pe_region){ pe->sec[i].raw_ptr, used_size(&pe->sec[i]) };
    for (uint32_t i = 0; i < pe->ndirs; i++) {
        tsr_pe_region r = dir_range(pe, i);
        if (r.len) used[nu++] = r;
    }
    /* Debug directory entries point at their data by file offset. */
    tsr_pe_region dbg = pe->ndirs > DIR_DEBUG ? dir_range(pe, DIR_DEBUG) : (tsr_pe_region){ 0, 0 };
    for (uint64_t k = 0; k < dbg.len / 28 && k < MAX_DEBUG_ENTRIES; k++) {
        uint64_t e = dbg.off + 28 * k;
        if (!has(s, e, 28)) break;
        uint32_t size = rd32(s, e + 16), ptr = rd32(s, e + 24);
        if (size && ptr < s->n) used[nu++] = (tsr_pe_region){ ptr, size };
    }
    qsort(used, nu, sizeof used[0], cmp_region);
    uint64_t at = 0;
    pe->nslack = 0;
    for (size_t i = 0; i <= nu; i++) {
        uint64_t next = i < nu ? used[i].off : end;
        if (next > end) next = end;
        if (next > at && pe->nslack < TSR_PE_MAX_REGIONS)
            pe->slack[pe->nslack++] = (tsr_pe_region){ at, next - at };
        if (i < nu && used[i].off + used[i].len > at) at = used[i].off + used[i].len;
    }
}

tsr_status tsr_pe_parse(tsr_pe *pe, const uint8_t *buf, size_t len) {
    TSR_REQUIRE(pe && (buf || len == 0), "tsr_pe_parse: NULL argument");
    memset(pe, 0, sizeof *pe);
    span s = { buf, len };
    pe->file_size = len;
    tsr_status st = parse_headers(pe, &s);
    if (st == TSR_OK) st = parse_imports(pe, &s);
    if (st != TSR_OK) {
        tsr_pe_free(pe);
        return st;
    }
    find_regions(pe, &s);
    return TSR_OK;
}

/* ---- checksum ------------------------------------------------------------ */

uint32_t tsr_pe_checksum(const uint8_t *buf, size_t len, uint32_t checksum_off) {
    uint64_t sum = 0, co = checksum_off;
    for (size_t i = 0; i < len; i += 2) {
        uint32_t lo = i - co < 4 ? 0 : buf[i];
        uint32_t hi = i + 1 >= len || i + 1 - co < 4 ? 0 : buf[i + 1];
        sum += lo | hi << 8;
        sum = (sum & 0xffff) + (sum >> 16);
    }
    sum = (sum & 0xffff) + (sum >> 16);
    return (uint32_t)((sum & 0xffff) + len);
}

void tsr_pe_fix_checksum(const tsr_pe *pe, uint8_t *buf, size_t len) {
    TSR_REQUIRE((uint64_t)pe->checksum_off + 4 <= len, "tsr_pe_fix_checksum: buffer too short");
    if (pe->checksum == 0) return;
    uint32_t c = tsr_pe_checksum(buf, len, pe->checksum_off);
    for (int k = 0; k < 4; k++) buf[pe->checksum_off + k] = (uint8_t)(c >> (8 * k));
}

/* ---- NSIS installer CRC ---------------------------------------------------- */

/* CRC-32 as zlib's crc32 (reflected polynomial 0xEDB88320, initial and final xor). */
static uint32_t crc32_bytes(const uint8_t *p, size_t n) {
    uint32_t c = 0xffffffffu;
    for (size_t i = 0; i < n; i++) {
        c ^= p[i];
        for (int k = 0; k < 8; k++) c = (c >> 1) ^ (0xedb88320u & (0u - (c & 1u)));
    }
    return c ^ 0xffffffffu;
}

int tsr_nsis_fix_crc(uint8_t *buf, size_t len, uint64_t from) {
    span s = { buf, len };
    for (size_t h = 0; len >= 28 && h <= len - 28; h += 512) {
        uint32_t flags = rd32(&s, h);
        if ((flags & ~0xfu) != 0 || rd32(&s, h + 4) != 0xdeadbeefu ||
            memcmp(buf + h + 8, "NullsoftInst", 12) != 0)
            continue;
        /* the stub takes the first such block and stops looking */
        uint32_t L = rd32(&s, h + 24);
        if (h < 512 || h < from || L < 28 || L > len - h) return 0;
        if ((flags & 4u) && !(flags & 8u)) return 0; /* CRCCheck off */
        size_t end = h + L - 4;
        uint32_t c = crc32_bytes(buf + 512, end - 512);
        for (int k = 0; k < 4; k++) buf[end + k] = (uint8_t)(c >> (8 * k));
        return 1;
    }
    return 0;
}

/* ---- comparison ---------------------------------------------------------- */

static int str_eq(const char *a, const char *b) {
    return (a == NULL && b == NULL) || (a && b && strcmp(a, b) == 0);
}

/* Bytes [off, off + len) equal in both files, but the 4-byte CheckSum field at skip. */
static tsr_status same_bytes(const uint8_t *ab, size_t alen, const uint8_t *bb, size_t blen,
                             uint64_t off, uint64_t len, uint64_t skip, const char *what) {
    if (len == 0) return TSR_OK;
    if (off + len > alen || off + len > blen)
        return tsr_fail(TSR_ERR_MISMATCH, "%s [%llu, +%llu) is not in both files", what,
                        (unsigned long long)off, (unsigned long long)len);
    for (uint64_t i = 0; i < len; i++)
        if (ab[off + i] != bb[off + i] && off + i - skip >= 4)
            return tsr_fail(TSR_ERR_MISMATCH, "%s differs at file offset %llu", what,
                            (unsigned long long)(off + i));
    return TSR_OK;
}

tsr_status tsr_pe_compare(const tsr_pe *a, const uint8_t *ab, size_t alen, const tsr_pe *b,
                          const uint8_t *bb, size_t blen) {
#define SAME(f)                                                                            \
    if (a->f != b->f)                                                                      \
        return tsr_fail(TSR_ERR_MISMATCH, "header field %s differs: 0x%llx vs 0x%llx", #f, \
                        (unsigned long long)a->f, (unsigned long long)b->f);
    SAME(e_lfanew)
    SAME(pe32plus)
    SAME(machine)
    SAME(nsections)
    SAME(timestamp)
    SAME(opt_size)
    SAME(file_chars)
    SAME(entry)
    SAME(image_base)
    SAME(section_align)
    SAME(file_align)
    SAME(size_of_image)
    SAME(size_of_headers)
    SAME(subsystem)
    SAME(dll_chars)
    SAME(ndirs)
    SAME(nimports)
    SAME(nfuncs)
#undef SAME
    for (uint32_t i = 0; i < a->ndirs; i++)
        if (a->dirs[i].rva != b->dirs[i].rva || a->dirs[i].size != b->dirs[i].size)
            return tsr_fail(TSR_ERR_MISMATCH, "data directory %u differs", i);
    for (uint32_t i = 0; i < a->nsections; i++)
        if (memcmp(&a->sec[i], &b->sec[i], sizeof a->sec[i]) != 0)
            return tsr_fail(TSR_ERR_MISMATCH, "section header %u (%s) differs", i, a->sec[i].name);
    for (uint32_t i = 0; i < a->nimports; i++) {
        const tsr_pe_import *x = &a->imports[i], *y = &b->imports[i];
        if (!str_eq(x->dll, y->dll) || x->first != y->first || x->count != y->count)
            return tsr_fail(TSR_ERR_MISMATCH, "import descriptor %u (%s) differs", i, x->dll);
    }
    for (uint32_t i = 0; i < a->nfuncs; i++) {
        const tsr_pe_func *x = &a->funcs[i], *y = &b->funcs[i];
        if (!str_eq(x->name, y->name) || x->hint != y->hint || x->ordinal != y->ordinal)
            return tsr_fail(TSR_ERR_MISMATCH, "imported function %u (%s) differs", i,
                            x->name ? x->name : "by ordinal");
    }
    /* Header bytes but the checksum field. */
    uint64_t hdr =
        a->size_of_headers > a->section_table_end ? a->size_of_headers : a->section_table_end;
    if (hdr > alen) hdr = alen;
    TSR_TRY(same_bytes(ab, alen, bb, blen, 0, hdr, a->checksum_off, "header"));
    for (uint32_t i = 0; i < a->nsections; i++) {
        char what[48];
        snprintf(what, sizeof what, "section %u (%s) contents", i, a->sec[i].name);
        TSR_TRY(same_bytes(ab, alen, bb, blen, a->sec[i].raw_ptr, used_size(&a->sec[i]),
                           a->checksum_off, what));
    }
    for (uint32_t i = 0; i < a->ndirs; i++) {
        tsr_pe_region r = dir_range(a, i);
        char what[48];
        snprintf(what, sizeof what, "data directory %u", i);
        if (r.len) TSR_TRY(same_bytes(ab, alen, bb, blen, r.off, r.len, a->checksum_off, what));
    }
    if (blen < alen && b->overlay_off > blen)
        return tsr_fail(TSR_ERR_MISMATCH, "the second file is truncated");
    return TSR_OK;
}
