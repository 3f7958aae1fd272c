/*
 * ring/ntt_sub.c - the forward NTT of a polynomial of a subring (ntt_sub.h):
 * the degree-N table's first m words are the degree-m table of psi^(N/m),
 * so the m-point transform runs on a view of the same table.
 */
#include "ring/ntt_sub.h"

#include "core/error.h"

void tsr_ntt_forward_sub(const tsr_ntt_table *t, uint64_t *a, size_t m) {
    TSR_ASSERT(m >= 1 && m <= t->n && (m & (m - 1)) == 0);
    if (m == t->n) {
        tsr_ntt_forward(t, a);
        return;
    }
    if (m == 1) { /* B constant: every evaluation is b_0 */
        a[0] %= t->mod.q;
        return;
    }
    /* A view of t for degree m: every forward kernel reads the words fwd[k] (and their Shoup
     * and SIMD companions fwd52_sh, fwd4 = fwd[4k], fwd8 = fwd[8k]) at k < m only, which are
     * those of the degree-m table of psi^(N/m) (ntt_sub.h); the inverse tables are unused.
     * This is the written contract of ntt_fwd in ring/kernels.h. */
    tsr_ntt_table v = *t;
    v.n = m;
    v.log_n = 0;
    while (((size_t)1 << v.log_n) < m) v.log_n++;
    v.psi = t->fwd[m / 2]; /* psi^bitrev_N(m/2) = psi^(N/m) */
    tsr_ntt_forward(&v, a);
}

void tsr_ntt_forward_sparse(const tsr_ntt_table *t, uint64_t *a, size_t m) {
    tsr_ntt_forward_sub(t, a, m);
    const size_t s = t->n / m;
    if (s == 1) return;
    /* backwards: block k = [k s, (k+1) s) only overwrites words at or past k */
    for (size_t k = m; k-- > 0;) {
        const uint64_t x = a[k];
        uint64_t *o = a + k * s;
        for (size_t j = 0; j < s; j++) o[j] = x;
    }
}
