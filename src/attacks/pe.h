/*
 * attacks/pe.h - a validated reader of Windows PE / PE32+ files for the
 * detector robustness lab (docs/MALWARE.md): headers, sections, imports,
 * the overlay (bytes after the last section) and the slack space (file bytes
 * no section maps and no data directory uses), plus the PE checksum.
 *
 * The attack writes payload bytes only where the loader and the program do
 * not look (Kreuk et al., arXiv 1802.04528, Sec. 3: the overlay and the
 * slack between a section's used size and its raw, file-aligned size); this
 * reader finds those places and checks afterwards that nothing the program
 * depends on changed (tsr_pe_compare).
 *
 * Format: Microsoft PE/COFF specification (learn.microsoft.com, "PE Format").
 * Every field is bounds-checked against the buffer before it is read; every
 * count (sections, import descriptors, thunks) is checked against the bytes
 * that could hold it before anything is allocated by it. Bad input gives
 * TSR_ERR_FORMAT with a message naming the field, never a crash. Layout
 * rules enforced beyond bounds: NumberOfSections <= 96, FileAlignment a
 * power of two <= 64 KiB, SectionAlignment >= FileAlignment, every section's
 * raw data and SizeOfHeaders inside the file, at most 16 data directories.
 *
 * A parsed tsr_pe does not point into the buffer it was read from (it owns
 * copies of every string). Not thread-safe per object; distinct objects are
 * independent.
 */
#ifndef TSR_ATTACKS_PE_H
#define TSR_ATTACKS_PE_H

#include "tessera/common.h"

#include <stddef.h>
#include <stdint.h>

#define TSR_PE_MAX_SECTIONS     96
#define TSR_PE_MAX_DIRS         16
#define TSR_PE_DIR_IMPORT       1
#define TSR_PE_DIR_SECURITY     4 /* its "RVA" is a file offset (the certificate table) */
#define TSR_PE_MAX_IMPORT_DLLS  4096
#define TSR_PE_MAX_IMPORT_FUNCS (1u << 20)
#define TSR_PE_MAX_NAME         512 /* longest DLL or function name accepted */
#define TSR_PE_MAX_REGIONS      256

typedef struct tsr_pe_section {
    char name[9];             /* 8 bytes, NUL-terminated copy */
    uint32_t vsize;           /* VirtualSize */
    uint32_t vaddr;           /* VirtualAddress (RVA) */
    uint32_t raw_size;        /* SizeOfRawData */
    uint32_t raw_ptr;         /* PointerToRawData */
    uint32_t characteristics; /* IMAGE_SCN_* flags */
} tsr_pe_section;

typedef struct tsr_pe_dir {
    uint32_t rva, size;
} tsr_pe_dir;

/** One imported function: by name (name != NULL) or by ordinal. */
typedef struct tsr_pe_func {
    const char *name; /* into tsr_pe.strings; NULL when imported by ordinal */
    uint16_t hint;    /* name table hint (0 for ordinals) */
    uint16_t ordinal; /* ordinal (0 for names) */
} tsr_pe_func;

/** One import descriptor: a DLL and its functions funcs[first .. first + count). */
typedef struct tsr_pe_import {
    const char *dll; /* into tsr_pe.strings */
    uint32_t first, count;
} tsr_pe_import;

/** A byte range [off, off + len) of the file. */
typedef struct tsr_pe_region {
    uint64_t off, len;
} tsr_pe_region;

typedef struct tsr_pe {
    uint64_t file_size;
    uint32_t e_lfanew;   /* offset of "PE\0\0" */
    int pe32plus;        /* 1 for PE32+ (optional header magic 0x20b), 0 for PE32 (0x10b) */
    uint16_t machine;    /* IMAGE_FILE_MACHINE_* */
    uint16_t nsections;  /* NumberOfSections */
    uint32_t timestamp;  /* TimeDateStamp */
    uint16_t opt_size;   /* SizeOfOptionalHeader */
    uint16_t file_chars; /* COFF Characteristics */
    uint32_t entry;      /* AddressOfEntryPoint (RVA) */
    uint64_t image_base;
    uint32_t section_align, file_align;
    uint32_t size_of_image, size_of_headers;
    uint32_t checksum;     /* CheckSum as stored */
    uint32_t checksum_off; /* file offset of the CheckSum field */
    uint16_t subsystem, dll_chars;
    uint32_t ndirs; /* data directories present, <= 16 */
    tsr_pe_dir dirs[TSR_PE_MAX_DIRS];
    tsr_pe_section *sec;        /* (nsections) */
    uint64_t section_table_end; /* file offset just after the section table */
    /* imports (empty if there is no import directory) */
    uint32_t nimports, nfuncs;
    tsr_pe_import *imports; /* (nimports) */
    tsr_pe_func *funcs;     /* (nfuncs) */
    char *strings;          /* DLL and function names, NUL-separated */
    /* where payload bytes may go */
    uint64_t overlay_off; /* end of the last byte headers or sections use; == file_size: none */
    uint32_t nslack;
    tsr_pe_region slack[TSR_PE_MAX_REGIONS]; /* sorted by offset, disjoint, non-empty */
} tsr_pe;

/**
 * Parse the PE file in buf (len bytes). On success *pe owns its memory
 * (tsr_pe_free); on failure *pe is left empty and safe to free. The buffer
 * is not kept. Errors: TSR_ERR_FORMAT (message names the field),
 * TSR_ERR_NOMEM.
 */
tsr_status tsr_pe_parse(tsr_pe *pe, const uint8_t *buf, size_t len);
/** Free what tsr_pe_parse allocated; accepts an empty or zeroed object. */
void tsr_pe_free(tsr_pe *pe);

/**
 * File offset of an RVA: the headers for rva < size_of_headers, else the
 * section whose used part (min(VirtualSize, SizeOfRawData) bytes; all raw
 * bytes when VirtualSize is 0) holds it. Returns 0 and sets *off on
 * success, -1 when no section maps the RVA to file bytes. The import walk
 * reads each table and string only within the part it starts in, so what it
 * reads never lies in slack.
 */
int tsr_pe_rva_to_off(const tsr_pe *pe, uint64_t rva, uint64_t *off);

/**
 * The PE checksum of buf as the Windows image loader (and
 * CheckSumMappedFile) computes it: the 16-bit one's-complement-style sum of
 * the file's little-endian words (an odd last byte counts as a word), with
 * the 4 bytes at checksum_off taken as zero, folded to 16 bits, plus the file
 * length.
 */
uint32_t tsr_pe_checksum(const uint8_t *buf, size_t len, uint32_t checksum_off);

/**
 * Store a fresh checksum into buf if the stored one is non-zero (a zero
 * checksum means "not checked" and stays zero). pe must describe buf's
 * headers (a parse of buf, or of the file buf was made from by changing only
 * overlay or slack bytes; len may differ from pe->file_size).
 */
void tsr_pe_fix_checksum(const tsr_pe *pe, uint8_t *buf, size_t len);

/**
 * NSIS installers check their own integrity: makensis (CRCCheck on, the
 * default) stores a CRC-32 (zlib's) after the installer data, and the stub
 * refuses to run when it does not match. Layout (NSIS Source/exehead/
 * fileform.c, loadHeaders): the stub reads itself in 512-byte blocks and
 * takes the first block that starts with the 28-byte firstheader (u32
 * flags with no bit above 0xf, u32 0xDEADBEEF, "NullsoftInst", u32
 * length_of_header, u32 length_of_all_following_data = L) as the data start
 * H; unless flags has FH_FLAGS_NO_CRC (4) without FH_FLAGS_FORCE_CRC (8),
 * the CRC covers bytes [512, H + L - 4) (the first 512-byte block, with the
 * PE headers, is left out) and is stored little-endian at H + L - 4.
 * This recomputes and stores that CRC in buf when buf's first such block is
 * at H >= max(512, from) with H + L <= len (from: the PE overlay offset, so
 * that only overlay bytes change); returns 1 then, 0 (buf unchanged)
 * otherwise.
 * Changing slack bytes (inside the covered range) breaks the CRC; an
 * overlay appended after H + L does not. Call it before tsr_pe_fix_checksum
 * (the PE checksum covers the CRC's bytes).
 */
int tsr_nsis_fix_crc(uint8_t *buf, size_t len, uint64_t from);

/**
 * Check that b (bytes bb, blen) is a functional copy of a (bytes ab, alen):
 * same header fields, sections, entry point, data directories and imports,
 * the same bytes in the headers (but the CheckSum field) and in every
 * section's used part (min(VirtualSize, SizeOfRawData) bytes; the rest of
 * the raw data is slack), and the same bytes at every data directory given
 * by file offset. Bytes in slack regions of a and after a's overlay offset
 * may differ, and b may be longer. Returns TSR_OK, or TSR_ERR_MISMATCH with
 * a message naming the first difference.
 */
tsr_status tsr_pe_compare(const tsr_pe *a, const uint8_t *ab, size_t alen, const tsr_pe *b,
                          const uint8_t *bb, size_t blen);

#endif /* TSR_ATTACKS_PE_H */
