/*
 * fuzz/fuzz_nn_plan.c - libFuzzer target for the inference-plan reader
 * (src/nn/plan.c): any bytes must give a status and no plan, or a valid
 * plan (which is then printed and re-serialized); never a crash, a leak or
 * an out-of-bounds read. Test-only parameters are allowed so the small seed
 * plans load. Seeds: fuzz/corpus/fuzz_nn_plan/: format 5 (batch, tiled,
 * calibrated, contract) written by `TSR_WRITE_FUZZ_CORPUS=fuzz/corpus
 * ./build/tests/test_nn_he` at main 3086aef, format 6 (*_v6.plan) by
 * `TSR_WRITE_FUZZ_CORPUS=fuzz/corpus ./build/tests/test_nn_plan6` (sqmul_v6.plan, rules
 * NN_SIMPLIFY_V3 with a product-form layer, by ./build/tests/test_nn_simplify_sqmul).
 */
#include "tessera/nn.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    tsr_nn_plan *p = NULL;
    if (tsr_nn_plan_from_bytes(&p, data, size, TSR_CKKS_ALLOW_INSECURE_PARAMETERS) == TSR_OK) {
        FILE *null = fopen("/dev/null", "w");
        if (null) {
            tsr_nn_plan_print(p, null);
            fclose(null);
        }
        uint8_t *buf;
        size_t len;
        if (tsr_nn_plan_to_bytes(p, &buf, &len) != TSR_OK) abort();
        tsr_nn_bytes_free(buf);
        tsr_nn_plan_free(p);
    } else if (p) {
        abort();
    }
    return 0;
}
