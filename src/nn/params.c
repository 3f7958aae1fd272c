/*
 * nn/params.c - CKKS parameter sets for a plan: for a ring degree and a
 * number of levels, the chain with the largest scale (most precision) that
 * meets the 128-bit security bound of the HomomorphicEncryption.org table,
 * and among those the fewest key-switching digits (fastest key switching);
 * and the alternatives the compiler may trade a little of that scale for:
 * per number of special primes, the largest scale and the fewest digits.
 * Every prime stays below 2^50 so the AVX-512 IFMA kernels apply.
 */
#include "nn/nn_internal.h"

#include "core/error.h"

#include <math.h>
#include <string.h>

#define MAX_PRIME_BITS 50
#define MIN_SCALE_BITS 24

/* Does (s, q0, dnum) fit the bound? Fills spec when it does. */
static int try_spec(unsigned log_n, int L, int s, int q0, int dnum, double bound,
                    tsr_ckks_param_spec *spec) {
    int nq = L + 1;
    int alpha = (nq + dnum - 1) / dnum;
    if ((nq + alpha - 1) / alpha != dnum) return 0; /* that dnum is not realisable */
    /* The largest digit is the first: q0 and alpha - 1 scale primes. */
    double worst = q0 + (alpha - 1) * (double)s;
    int k = (int)ceil((worst + 1.0) / MAX_PRIME_BITS);
    if (k < 1) k = 1;
    int kb = (int)ceil((worst + 1.0) / k);
    if (kb < s + 1) kb = s + 1;
    if (kb > MAX_PRIME_BITS || k > TSR_CKKS_MAX_SPECIAL_PRIMES) return 0;
    double log_qp = q0 + (double)L * s + (double)k * kb;
    if (bound > 0 && log_qp > bound - 1.0) return 0; /* primes fall a little below 2^bits */
    memset(spec, 0, sizeof *spec);
    spec->log_n = log_n;
    spec->first_prime_bits = (unsigned)q0;
    spec->scale_bits = (unsigned)s;
    spec->levels = (unsigned)L;
    spec->special_primes = (unsigned)k;
    spec->special_prime_bits = (unsigned)kb;
    spec->dnum = (unsigned)dnum;
    spec->secret = TSR_CKKS_SECRET_TERNARY;
    return 1;
}

/* The chain with the largest scale, then the fewest digits, among those with `special` special
 * primes (0: any number). */
static tsr_status choose(unsigned log_n, int levels, int output_bits, int scale_bits,
                         uint32_t flags, int special, tsr_ckks_param_spec *out) {
    if (log_n < TSR_CKKS_MIN_LOG_N || log_n > TSR_CKKS_MAX_LOG_N)
        return tsr_fail(TSR_ERR_INVALID_ARG, "ring degree 2^%u is out of range", log_n);
    if (levels < 1 || levels > 40)
        return tsr_fail(TSR_ERR_INVALID_ARG, "%d levels is out of range (1..40)", levels);
    if (output_bits < 1 || output_bits > 20)
        return tsr_fail(TSR_ERR_INVALID_ARG, "output headroom of %d bits is out of range (1..20)",
                        output_bits);
    double bound = tsr_ckks_security_bound(log_n, TSR_CKKS_SECRET_TERNARY, 0);
    int insecure_ok = (flags & TSR_CKKS_ALLOW_INSECURE_PARAMETERS) != 0;
    if (insecure_ok)
        bound = 0;
    else if (bound <= 0)
        return tsr_fail(TSR_ERR_INSECURE, "no 128-bit security bound is known for N = 2^%u", log_n);
    int smax = MAX_PRIME_BITS - output_bits, smin = MIN_SCALE_BITS;
    if (smax > 40) smax = 40;
    if (scale_bits) {
        if (scale_bits < 20 || scale_bits > smax)
            return tsr_fail(TSR_ERR_INVALID_ARG,
                            "scale 2^%d is out of range: 20..%d with %d bits of output headroom",
                            scale_bits, smax, output_bits);
        smax = smin = scale_bits;
    }
    /* special = 0: any number of special primes (the max-scale chain) */
    for (int s = smax; s >= smin; s--) {
        int q0 = s + output_bits;
        for (int dnum = 1; dnum <= levels + 1; dnum++)
            if (try_spec(log_n, levels, s, q0, dnum, bound, out) &&
                (!special || (int)out->special_primes == special)) {
                out->flags = flags;
                return TSR_OK;
            }
    }
    if (special) return TSR_ERR_UNSUPPORTED; /* no such chain: not an error of the caller */
    return tsr_fail(TSR_ERR_UNSUPPORTED,
                    "no 128-bit secure CKKS chain with %d levels and a scale of at least 2^%d "
                    "exists for N = 2^%u (the bound is %.0f bits); use a larger ring",
                    levels, smin, log_n, bound);
}

tsr_status nn_choose_params(unsigned log_n, int levels, int output_bits, int scale_bits,
                            uint32_t flags, tsr_ckks_param_spec *out) {
    return choose(log_n, levels, output_bits, scale_bits, flags, 0, out);
}

int nn_chain_alternatives(unsigned log_n, int levels, int output_bits, int scale_bits,
                          uint32_t flags, tsr_ckks_param_spec out[NN_MAX_CHAINS]) {
    if (choose(log_n, levels, output_bits, scale_bits, flags, 0, &out[0]) != TSR_OK) {
        tsr_clear_error();
        return 0;
    }
    /* test-only parameters have no bound to trade scale against: the max-scale chain only */
    if (flags & TSR_CKKS_ALLOW_INSECURE_PARAMETERS) return 1;
    int n = 1;
    for (int k = 1; k <= NN_CHAIN_MAX_SPECIAL && n < NN_MAX_CHAINS; k++) {
        tsr_ckks_param_spec s;
        if (choose(log_n, levels, output_bits, scale_bits, flags, k, &s) != TSR_OK) continue;
        if (s.special_primes == out[0].special_primes && s.scale_bits == out[0].scale_bits &&
            s.dnum == out[0].dnum)
            continue; /* the max-scale chain itself */
        out[n++] = s;
    }
    return n;
}
