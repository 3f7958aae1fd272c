/*
 * attacks/payload.h - the adversarial payload attack of Kreuk et al.,
 * "Deceiving end-to-end deep learning malware detectors using adversarial
 * examples" (arXiv 1802.04528, Sec. 3), against MalConv (attacks/malconv.h).
 *
 * The payload bytes are the only free variables. They go where the program
 * never looks (attacks/pe.h): appended as overlay, or into slack regions.
 * Each step embeds the current file, takes the gradient of the detector's
 * logit with respect to the embedded payload positions only, moves each
 * position's embedding by -eps * sign(gradient) (FGSM; iterative = repeated
 * from the mapped bytes), and maps it back to the nearest byte embedding in
 * L2 (rows 0..255; never the padding row 256; ties to the smaller byte).
 * The attack stops as soon as the file's score is under the threshold
 * (evasion) unless cfg->no_stop is set, and returns the payload with the
 * lowest score seen over all steps (greedy byte steps are not monotone: a
 * later step can be worse than an earlier one). The payload starts as
 * uniformly random bytes from a seeded stream.
 *
 * Every attacked file is checked: it parses, tsr_pe_compare finds headers,
 * sections, imports and directories unchanged, and a non-zero PE checksum
 * is recomputed.
 */
#ifndef TSR_ATTACKS_PAYLOAD_H
#define TSR_ATTACKS_PAYLOAD_H

#include "attacks/malconv.h"
#include "attacks/pe.h"
#include "tessera/common.h"

#include <stddef.h>
#include <stdint.h>

typedef enum tsr_place {
    TSR_PLACE_OVERLAY = 0, /* appended at the end of the file */
    TSR_PLACE_SLACK,       /* slack regions, in file order, up to the payload size */
    TSR_PLACE_COUNT_
} tsr_place;

/** "overlay" / "slack". */
const char *tsr_place_name(tsr_place p);
/** Parse a placement name; TSR_ERR_INVALID_ARG if unknown. */
tsr_status tsr_place_parse(const char *s, tsr_place *out);

typedef struct tsr_payload_cfg {
    tsr_place place;
    size_t size;     /* payload bytes wanted (slack: at most the file's slack) */
    int iters;       /* gradient steps: 1 = FGSM, more = iterative */
    float eps;       /* step per embedding coordinate */
    float threshold; /* evasion when sigmoid(logit) < threshold */
    uint64_t seed;   /* initial random payload */
    int routed;      /* 1: tsr_malconv_backward_routed over the payload's windows (filters
                        that would lower the score if a payload window won their maximum
                        get gradient there), 0: the plain max-pool gradient */
    int greedy;      /* 1: each step moves every payload byte to the byte whose embedding
                        lowers the linearised logit most (HotFlip-like) instead of the
                        sign step + nearest byte */
    int no_stop;     /* 1: take all iters steps even after evading (the best is still
                        returned); 0: stop at the first evading step */
    int align;       /* universal payloads: 1 = the payload starts at the first window
                        boundary after the file (tsr_payload_align_filler zero bytes in
                        between), so its whole windows' activations do not depend on the
                        file; 0 = right after the file */
} tsr_payload_cfg;

typedef struct tsr_payload_result {
    float score_before; /* the original file */
    float score_after;  /* the attacked file: the lowest score seen over all steps */
    int evaded;
    int steps;          /* gradient steps taken */
    int best_step;      /* the step whose payload is returned (0: the initial random one) */
    float score_last;   /* the score after the last step taken (equal to score_after
                           unless a later step was worse) */
    size_t payload_len; /* bytes placed */
    size_t visible;     /* of them, inside the detector's max_len */
    double entropy;     /* Shannon entropy of the payload bytes, bits per byte */
} tsr_payload_result;

/** Shannon entropy (bits per byte) of n bytes; 0 for n == 0. */
double tsr_byte_entropy(const uint8_t *b, size_t n);

/** The byte whose embedding row is nearest to z (D floats) in L2; never the padding row. */
int tsr_malconv_nearest_byte(const tsr_malconv *m, const float *z);

/**
 * Attack one PE file (len bytes). On success *out (free with tsr_free) holds
 * the attacked file (*out_len bytes) whether or not it evaded, and *res the
 * result. Errors: TSR_ERR_FORMAT (not a valid PE file), TSR_ERR_INVALID_ARG
 * (size 0, iters < 1, eps <= 0, threshold outside (0, 1)), TSR_ERR_NOMEM,
 * TSR_ERR_INTERNAL if the structural check fails (a bug).
 */
tsr_status tsr_payload_attack(const tsr_malconv *m, const uint8_t *file, size_t len,
                              const tsr_payload_cfg *cfg, uint8_t **out, size_t *out_len,
                              tsr_payload_result *res);

/**
 * Place given payload bytes into a file (overlay: appended; slack: into the
 * slack regions in order, as many as fit) with the checksum fixed and the
 * structural check done. *placed gets the bytes placed.
 */
tsr_status tsr_payload_place(const uint8_t *file, size_t len, tsr_place place,
                             const uint8_t *payload, size_t size, uint8_t **out, size_t *out_len,
                             size_t *placed);

/**
 * Zero filler bytes to append to a len-byte file so that an overlay payload
 * after them starts at a window boundary of m (0 if len already is one).
 */
size_t tsr_payload_align_filler(const tsr_malconv *m, size_t len);

/** What tsr_payload_universal measured on its training files. */
typedef struct tsr_universal_info {
    int best_step;           /* the step whose payload is returned (0: the random start) */
    size_t train_files;      /* files with room for the payload inside max_len */
    size_t train_evaded;     /* of them, evading with the returned payload */
    double train_mean_score; /* their mean score with it */
} tsr_universal_info;

/**
 * A universal overlay payload (Kreuk et al., Sec. 4.3): size bytes optimised
 * with iters steps (sign steps, or greedy byte steps if cfg->greedy) of the
 * gradient summed over n files, appended after each (after the alignment
 * filler if cfg->align). Of the iters + 1 payloads seen (the random start
 * and one per step) the one evading on most training files (ties: the lower
 * summed score) is returned in payload (size bytes); info (may be NULL) gets
 * its training figures.
 */
tsr_status tsr_payload_universal(const tsr_malconv *m, const uint8_t *const *files,
                                 const size_t *lens, size_t n, const tsr_payload_cfg *cfg,
                                 uint8_t *payload, tsr_universal_info *info);

#endif /* TSR_ATTACKS_PAYLOAD_H */
