/*
 * fuzz/fuzz_nn_profile.c - libFuzzer target for the cost-profile reader
 * (src/nn/cost.c). Any bytes must give a status, or a profile whose points
 * are sorted, distinct, in range and finite, and whose interpolated costs
 * are finite and non-negative. Seeds: fuzz/corpus/fuzz_nn_profile/.
 */
#include "nn/nn_internal.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    nn_profile *p = NULL;
    tsr_status st = nn_profile_parse(data, size, &p);
    if (st != TSR_OK) {
        if (p) abort();
        return 0;
    }
    if (!p || p->n < 1) abort();
    for (int i = 0; i < p->n; i++) {
        const nn_profile_point *q = &p->pts[i];
        if (q->levels < 1 || q->log_n < TSR_CKKS_MIN_LOG_N || q->log_n > TSR_CKKS_MAX_LOG_N)
            abort();
        if (i && (q->log_n < q[-1].log_n || (q->log_n == q[-1].log_n && q->levels <= q[-1].levels)))
            abort();
        for (double lv = 0; lv <= 70; lv += 3.5) {
            nn_costs c;
            nn_profile_costs_at(p, q->log_n, lv, &c);
            double v[sizeof c / sizeof(double)];
            memcpy(v, &c, sizeof v);
            for (size_t k = 0; k < sizeof v / sizeof v[0]; k++)
                if (!isfinite(v[k]) || v[k] < 0) abort();
        }
    }
    nn_profile_free(p);
    return 0;
}
