/*
 * fuzz/fuzz_nn_profile.c - libFuzzer target for the cost-profile reader
 * (src/nn/cost.c). Any bytes must give a status, or a profile whose points
 * are sorted, distinct, in range and finite, and whose interpolated costs
 * and key-switch model (coefficients and prices) are finite and non-negative. Seeds:
 * fuzz/corpus/fuzz_nn_profile/.
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
            /* the key-switch model, on chains of one to 40 primes per digit */
            for (int alpha = 1; alpha <= 40; alpha += 13)
                for (int op = 0; op < NN_KS_OPS; op++) {
                    double t = nn_ks_seconds(p, q->log_n, alpha, 1 + alpha / 4, lv, op);
                    if (!isfinite(t) || t < 0) abort();
                }
        }
    }
    for (int i = 0; i < p->n_ks; i++) {
        const nn_profile_ks *k = &p->ks[i];
        if (k->level < 0 || k->level > k->levels || k->alpha < 1 || k->alpha > k->levels + 1 ||
            k->special < 1)
            abort();
        if (i && k->log_n == k[-1].log_n && k->levels == k[-1].levels && k->level <= k[-1].level)
            abort();
    }
    for (int ln = 0; ln <= TSR_CKKS_MAX_LOG_N; ln++)
        for (int op = 0; op < NN_KS_OPS; op++)
            for (int j = 0; j < NN_KS_TERMS; j++)
                if (!isfinite(p->fit[ln][op][j]) || p->fit[ln][op][j] < 0) abort();
    nn_profile_free(p);
    return 0;
}
