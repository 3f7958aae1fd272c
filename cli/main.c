/*
 * cli/main.c - the `tessera` command: dispatch to one verb per file.
 */
#include "cli.h"

#include "core/error.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

typedef struct verb {
    const char *name;
    tsr_cli_fn fn;
    const char *summary;
} verb;

static const verb verbs[] = {
    { "attack", tsr_cmd_attack, "detector robustness lab (adversarial payloads against MalConv)" },
    { "bench", tsr_cmd_bench, "benchmark programs (ckks, ...)" },
    { "ckks", tsr_cmd_ckks, "CKKS parameter sets: presets, custom chains, security check" },
    { "client", tsr_cmd_client, "client of tessera serve: encrypt, upload, infer, decrypt" },
    { "compile", tsr_cmd_compile, "compile an ONNX model into an encrypted-inference plan" },
    { "decrypt", tsr_cmd_decrypt, "client: decrypt encrypted predictions (accuracy, agreement)" },
    { "demo", tsr_cmd_demo, "tessera demo ckks: CKKS polynomial and rotation-sums vs plaintext" },
    { "encrypt", tsr_cmd_encrypt, "client: encrypt a batch of inputs for a plan" },
    { "eval", tsr_cmd_eval, "test accuracy and activation ranges of an ONNX model" },
    { "fl", tsr_cmd_fl, "Byzantine-robust distributed learning lab (ALIE attack, defences)" },
    { "heify", tsr_cmd_heify, "make a HE-friendly (polynomial) student of your own ONNX model" },
    { "infer", tsr_cmd_infer, "server: run a plan on encrypted inputs (evaluation keys only)" },
    { "keygen", tsr_cmd_keygen, "client: secret key and the evaluation keys a plan needs" },
    { "prune", tsr_cmd_prune, "HE-aware pruning: zero whole weight tiles (tile, hepex, ...)" },
    { "profile", tsr_cmd_profile,
      "time HE operations on this machine: a cost profile for compile" },
    { "onnx-test", tsr_cmd_onnx_test,
      "run ONNX backend node tests through the plaintext executor" },
    { "predict", tsr_cmd_predict, "compile, encrypt, infer, decrypt in one process (demos)" },
    { "serve", tsr_cmd_serve, "server: encrypted inference over HTTP (keys, jobs, metrics)" },
    { "train", tsr_cmd_train, "train a (polynomial) network on Fashion-MNIST, save ONNX" },
    { "version", tsr_cmd_version, "print the version and the SIMD kernels in use" },
};

static void usage(FILE *out) {
    fprintf(out, "usage: tessera <command> [options]   (tessera <command> --help for details)\n\n"
                 "Privacy-preserving machine learning over CKKS homomorphic encryption.\n\n"
                 "commands:\n");
    for (size_t i = 0; i < sizeof verbs / sizeof verbs[0]; i++)
        fprintf(out, "  %-10s %s\n", verbs[i].name, verbs[i].summary);
}

/*
 * The allocator, for every verb (tsr_malloc_tune, include/tessera/core.h: the library itself
 * changes nothing). glibc serves every block above its mmap threshold (at most 32 MiB) with a
 * fresh mmap and unmaps it on free, and trims the heap top above 128 KiB: encrypted inference
 * allocates and frees thousands of ciphertexts of a few hundred KiB to a few MiB, and every new
 * one page-faulted in freshly zeroed pages (a third of an inference run's time when first
 * measured; on the Zen 5 at N = 2^13, with glibc's adaptive mmap threshold, these settings
 * fault 7 % less than glibc's defaults in one batch, 19 % less in six: docs/BENCHMARKS.md,
 * "The allocator through the library"), and at
 * N = 2^16 a key switch's decompositions (dnum x (l+1+k) limbs of 512 KiB, 68 MiB) and
 * ciphertexts came back as new zeroed pages every time: 13-18 % of a bootstrap's CPU time in
 * the kernel on the Zen 5 (docs/BENCHMARKS.md). The command keeps freed memory in its heap
 * instead and never gives the heap back (a server runs batch after batch of the same size:
 * trimming after one batch made the next fault its pages in again; the conv8 CNN at batch 4096
 * spent more time in the kernel than computing); the peak RSS is about the same (the blocks are
 * reused, not added). And one arena: a thread other than the main one allocates from an arena
 * of its own, made of heaps of at most 64 MiB that glibc unmaps as soon as one is empty,
 * whatever the trim threshold; with two threads bootstrapping's EvalMod runs one half on the
 * second thread (tsr_thread_pair), whose ciphertexts (21 MiB each) came back as new zeroed
 * pages in every bootstrap (perf of `tessera bench boot --runs 5` at N = 2^16, runs 2-5, shared
 * machine at load 3-7: 18944 page faults per bootstrap; 647-3208 with one arena, 7 with one
 * thread; docs/BENCHMARKS.md, "Two threads, ninth round").
 * Tessera allocates few, large blocks and small ones come from glibc's per-thread caches, so
 * the one arena's lock costs little, for every verb. Measured on `tessera serve` (a thread
 * per connection): `tessera bench serve` at 8 to 32 clients, jobs 1 and 2, against this
 * binary with several arenas (Zen 5, shared machine at load 6.5-9.7): CPU time +0.7 % at
 * jobs 1 and +4 % at jobs 2, not resolved at that load; requests/s within its spread; the
 * server's peak RSS 455-459 MiB instead of 575-743 MiB (docs/BENCHMARKS.md, "Serving with one
 * malloc arena"). On `train` and `fl run` at 2 threads: the same CPU time within the spread,
 * a few dozen voluntary context switches either way (review of mt9, load about 10).
 * GLIBC_TUNABLES cannot undo these settings (mallopt runs after it). Under a sanitizer or
 * without glibc the call fails and changes nothing: the command runs with the allocator's
 * defaults.
 */
int main(int argc, char **argv) {
    tsr_status st = tsr_malloc_tune(TSR_MALLOC_KEEP_FREED | TSR_MALLOC_ONE_ARENA);
    if (st != TSR_OK) tsr_clear_error();
    /* A file-size limit (ulimit -f) makes writes fail with EFBIG instead of killing us, so
       the half-written temporary file is removed and the old output kept (cli/outputs.c). */
    signal(SIGXFSZ, SIG_IGN);
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    if (strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0 ||
        strcmp(argv[1], "help") == 0) {
        usage(stdout);
        return 0;
    }
    if (strcmp(argv[1], "--version") == 0) return tsr_cmd_version(1, argv + 1);
    for (size_t i = 0; i < sizeof verbs / sizeof verbs[0]; i++)
        if (strcmp(argv[1], verbs[i].name) == 0) return verbs[i].fn(argc - 1, argv + 1);
    fprintf(stderr, "tessera: unknown command '%s'\n\n", argv[1]);
    usage(stderr);
    return 2;
}

int cli_usage_error(const char *verb_name, const char *fmt, ...) {
    va_list ap;
    fprintf(stderr, "tessera %s: error: ", verb_name);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\n(see 'tessera %s --help')\n", verb_name);
    return 2;
}

/* The library's message, made fit for a terminal and a command-line user: control characters
 * from file contents escaped, the C API's name of the insecure-parameters flag replaced by the
 * option. */
static void cli_detail(char *out, size_t n) {
    static const char api_flag[] = "TSR_CKKS_ALLOW_INSECURE_PARAMETERS";
    char raw[2048], tmp[2048];
    snprintf(raw, sizeof raw, "%s", tsr_last_error());
    const char *hit = strstr(raw, api_flag);
    if (hit) {
        snprintf(tmp, sizeof tmp, "%.*s--insecure-parameters-for-testing%s", (int)(hit - raw), raw,
                 hit + sizeof api_flag - 1);
        snprintf(raw, sizeof raw, "%s", tmp);
    }
    tsr_escape_controls(out, n, raw, 1);
}

int cli_fail(const char *verb_name, tsr_status st, const char *what) {
    char detail[2048];
    cli_detail(detail, sizeof detail);
    fprintf(stderr, "tessera %s: %s: %s%s%s\n", verb_name, what, tsr_strerror(st),
            detail[0] ? ": " : "", detail);
    switch (st) {
    case TSR_ERR_INVALID_ARG:
    case TSR_ERR_FORMAT:
    case TSR_ERR_VERSION:
    case TSR_ERR_CHECKSUM:
    case TSR_ERR_MISMATCH:
    case TSR_ERR_INSECURE:
    case TSR_ERR_SECRET:
    case TSR_ERR_SHAPE:
    case TSR_ERR_NOT_FOUND:
    case TSR_ERR_KEY_MISSING: /* keys made for another plan */
    case TSR_ERR_UNSUPPORTED: /* a model or file this build cannot run */
    case TSR_ERR_SCALE:       /* inputs or weights that do not fit the modulus */
        return 2;
    default:
        return 1;
    }
}

int cli_wants_help(int argc, char **argv) {
    for (int i = 1; i < argc; i++)
        if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) return 1;
    return 0;
}

int cli_parse_long(const char *s, long lo, long hi, long *out) {
    char *end;
    if (!s || !*s) return -1;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || *end || v < lo || v > hi) return -1;
    *out = v;
    return 0;
}

int cli_parse_double(const char *s, double *out) {
    char *end;
    if (!s || !*s) return -1;
    errno = 0;
    double v = strtod(s, &end);
    /* ERANGE with a finite result is underflow (1e-310 is a subnormal): a valid number */
    if ((errno && errno != ERANGE) || *end || !isfinite(v)) return -1;
    *out = v;
    return 0;
}

int cli_parse_size(const char *s, double *mib) {
    char *end;
    if (!s || !(*s >= '0' && *s <= '9')) return -1;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || !isfinite(v) || !(v > 0)) return -1;
    static const char units[] = "KMGT"; /* 2^10 .. 2^40 bytes */
    double scale = 1;                   /* MiB */
    const char *u = *end ? strchr(units, toupper((unsigned char)*end)) : NULL;
    if (*end && !u) return -1;
    if (u) {
        scale = ldexp(1.0, 10 * (int)(u - units) - 10);
        end++;
    }
    if (end[0] == 'i' && end[1] == 'B')
        end += 2;
    else if (end[0] == 'B')
        end++;
    if (*end || !isfinite(v * scale)) return -1;
    *mib = v * scale;
    return 0;
}
