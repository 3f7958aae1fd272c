/* The MalConv workspace's layout (attacks/malconv.h keeps it opaque). Internal:
 * only malconv.c and the tests that recompute its gradients include it. */
#ifndef TSR_ATTACKS_MALCONV_WS_H
#define TSR_ATTACKS_MALCONV_WS_H

#include "attacks/malconv.h"

#include <stddef.h>
#include <stdint.h>

struct tsr_malconv_ws {
    size_t cap_rows; /* windows the buffers hold */
    size_t n;        /* input positions of the last forward */
    size_t T;        /* windows of the last forward (rows of X) */
    int pad_row;     /* the last row is the all-padding window */
    int have_tok;    /* the last forward was on bytes (tok valid) */
    uint16_t *tok;   /* (cap_rows, K) tokens of the bytes forward */
    float *X;        /* (cap_rows, K, D) embedded, padded input */
    float *C;        /* (cap_rows, 2F) convolution outputs before gating */
    float *z;        /* (F) pooled */
    int32_t *arg;    /* (F) window of each filter's maximum */
    float *hpre, *h; /* (H) */
    float *dz, *dh;  /* (F), (H) */
    float *dX;       /* (K, D) */
    int32_t *order;  /* (F) filters sorted by window */
};

#endif /* TSR_ATTACKS_MALCONV_WS_H */
