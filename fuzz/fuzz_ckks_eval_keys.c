/*
 * fuzz/fuzz_ckks_eval_keys.c - libFuzzer target for the evaluation-key
 * readers: the bundle, the relinearization key and the Galois keys (all
 * three parse every input; the frame kind selects which one gets far).
 */
#include "fuzz_ckks_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    tsr_ckks_params *p = fuzz_params();
    tsr_ckks_relin_key *rk = NULL;
    tsr_ckks_galois_keys *gk = NULL;
    uint8_t id[TSR_CKKS_KEY_ID_BYTES];
    (void)tsr_ckks_eval_keys_from_bytes(&rk, &gk, id, p, data, size);
    tsr_ckks_relin_key_free(rk);
    tsr_ckks_galois_keys_free(gk);
    (void)tsr_ckks_relin_key_from_bytes(&rk, p, data, size);
    tsr_ckks_relin_key_free(rk);
    (void)tsr_ckks_galois_keys_from_bytes(&gk, p, data, size);
    tsr_ckks_galois_keys_free(gk);
    return 0;
}
