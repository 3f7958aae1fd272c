/*
 * attacks/malconv.h - MalConv, the end-to-end byte-level detector of Raff et
 * al. ("Malware detection by eating a whole EXE", arXiv 1710.09435) in the
 * form Kreuk et al. attack (arXiv 1802.04528, Sec. 2):
 *
 *   bytes x (n <= max_len), padded with token 256 to a multiple of K
 *   -> embedding E (257, D)                       Z (n', D)
 *   -> gated 1-D convolution, F filters, width = stride = K:
 *        A = conv(Z, Wa) + ba, B = conv(Z, Wb) + bb, G = A * sigmoid(B)   (T, F)
 *   -> global max pool over the T windows           z (F)
 *   -> dense F -> H, ReLU                            h (H)
 *   -> dense H -> 1                                  logit; score = sigmoid(logit)
 *
 * Paper sizes: D = 8, F = 128, K = 500, H = 128, max_len = 1 MiB (2^20).
 * Truncation and padding: bytes past max_len are ignored; the input is
 * padded with token 256 to the end of its last window, and when the padded
 * input is shorter than max_len one all-padding window stands for all the
 * remaining ones (they are identical, so the max pool sees the same values
 * as with the input padded to max_len, at the cost of one window).
 * The ReLU after the dense layer is our choice (the papers leave it open).
 *
 * The convolution is one SGEMM through the training engine's dense kernel
 * (train/layers.h): with Wc = [Wa; Wb] stored (2F, K, D) a window of Z is
 * K·D contiguous floats, so conv = Zwin (T, K·D) · Wcᵀ needs no im2col.
 * Backward follows the max pool: only windows that are the maximum for some
 * filter get gradient (the known sparsity of MalConv gradients).
 *
 * Layout: every parameter in one allocation (params), gradients in a caller
 * vector of the same layout (offsets in tsr_malconv.off). A model is
 * read-only during forward/backward, so several threads may run it at once,
 * each with its own workspace and gradient vector.
 */
#ifndef TSR_ATTACKS_MALCONV_H
#define TSR_ATTACKS_MALCONV_H

#include "tessera/common.h"

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define TSR_MALCONV_PAD   256 /* token of padding positions */
#define TSR_MALCONV_VOCAB 257

typedef struct tsr_malconv_cfg {
    int emb;          /* D: embedding size */
    int filters;      /* F: filters in each half of the gated convolution */
    int window;       /* K: convolution width and stride */
    int hidden;       /* H: units of the dense layer */
    uint32_t max_len; /* bytes kept; a multiple of K */
} tsr_malconv_cfg;

/** The paper's sizes: D 8, F 128, K 500, H 128, max_len 2^20 rounded up to a multiple of K. */
tsr_malconv_cfg tsr_malconv_paper_cfg(void);

/** Offsets (in floats) of each tensor inside params / a gradient vector. */
typedef struct tsr_malconv_offsets {
    size_t E;      /* (257, D) */
    size_t Wc, bc; /* (2F, K, D), (2F): rows [0, F) value half, [F, 2F) gate half */
    size_t W1, b1; /* (H, F), (H) */
    size_t W2, b2; /* (1, H), (1) */
} tsr_malconv_offsets;

typedef struct tsr_malconv {
    tsr_malconv_cfg cfg;
    tsr_malconv_offsets off;
    size_t nparams;
    float *params;        /* (nparams) */
    int32_t val_permille; /* the validation split of the training run that produced it (its
                             training sources with FNV-1a(source) % 1000 below this were held
                             out: tessera attack train --val-frac), saved in the model file;
                             -1 = not recorded (tsr_malconv_create, version-1 files) */
} tsr_malconv;

/**
 * Create a model with PyTorch's default initialisation (embedding N(0, 1),
 * weights and biases U(-1/sqrt(fan_in), 1/sqrt(fan_in))) from a seeded
 * stream. Sizes must be positive, K·D and 2F at most 2^20, max_len a
 * multiple of K up to 2^26 (TSR_ERR_INVALID_ARG otherwise).
 */
tsr_status tsr_malconv_create(tsr_malconv **m, const tsr_malconv_cfg *cfg, uint64_t seed);
void tsr_malconv_free(tsr_malconv *m);

/** Per-call scratch: activations of one forward pass, read by the matching backward. */
typedef struct tsr_malconv_ws tsr_malconv_ws;
tsr_status tsr_malconv_ws_create(tsr_malconv_ws **ws, const tsr_malconv *m);
void tsr_malconv_ws_free(tsr_malconv_ws *ws);

/**
 * Forward pass on the first min(len, max_len) bytes of buf; returns the
 * logit (score = sigmoid(logit)). The workspace keeps the activations for
 * tsr_malconv_backward. Fails only with TSR_ERR_NOMEM (*logit untouched).
 */
tsr_status tsr_malconv_forward_bytes(const tsr_malconv *m, tsr_malconv_ws *ws, const uint8_t *buf,
                                     size_t len, float *logit);
/**
 * Forward pass on already embedded positions Z (n, D), n <= max_len (the
 * attack's relaxed input: each row may be any vector, not only a row of E).
 */
tsr_status tsr_malconv_forward_emb(const tsr_malconv *m, tsr_malconv_ws *ws, const float *Z,
                                   size_t n, float *logit);
/**
 * Backward pass of the last forward on ws with d loss / d logit = dlogit.
 * Accumulates (+=) parameter gradients into grads (nparams, layout of
 * m->off) unless NULL, and d loss / d Z into dZ (n, D) of the input
 * positions unless NULL. After a bytes forward the embedding rows of the
 * input tokens receive gradient; after an emb forward only the padding row
 * does (the input rows are the caller's).
 */
void tsr_malconv_backward(const tsr_malconv *m, tsr_malconv_ws *ws, float dlogit, float *grads,
                          float *dZ);

/**
 * The attack's gradient with respect to the input positions (Kreuk et al.'s
 * remedy for the sparse max-pool gradient): like tsr_malconv_backward with
 * grads NULL, except that every filter f whose rise would lower the loss
 * (d loss / d z_f < 0) and whose maximum lies outside the free windows
 * (free_win[t] != 0 for t < nwin: the windows the attacker may change) is
 * routed to its highest free window, as if that window were the maximum. So
 * payload windows that win no maximum yet still get a gradient that pushes
 * them to win one. Accumulates into dZ (n, D).
 */
void tsr_malconv_backward_routed(const tsr_malconv *m, tsr_malconv_ws *ws, float dlogit, float *dZ,
                                 const uint8_t *free_win, size_t nwin);

/** Numerically safe logistic function. */
float tsr_sigmoidf(float x);

#endif /* TSR_ATTACKS_MALCONV_H */
