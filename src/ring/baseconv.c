/*
 * ring/baseconv.c - fast basis conversion (approximate and exact), ModUp,
 * ModDown / rescale by a product of primes with exact rounding.
 */
#include "ring/baseconv.h"
#include "ring/kernels.h"
#include "ring/mw.h"
#include "ring/vec.h"
#include "core/alloc.h"
#include "core/error.h"

#include <string.h>

#ifdef _OPENMP
#define TSR_PRAGMA_(x) _Pragma(#x)
#define PAR_FOR(cond) TSR_PRAGMA_(omp parallel for schedule(static) if (cond))
#else
#define PAR_FOR(cond)
#endif

static tsr_status basis_copy(const tsr_rns_basis *b, tsr_rns_basis **out) {
    return tsr_rns_basis_prefix(b, b->count, out);
}

void tsr_rns_limb_ptrs(const tsr_rns_basis *b, uint64_t *a, uint64_t **ptrs) {
    for (size_t i = 0; i < b->count; i++) ptrs[i] = a + i * b->n;
}

tsr_status tsr_baseconv_create(const tsr_rns_basis *from, const tsr_rns_basis *to,
                               tsr_baseconv **out) {
    TSR_REQUIRE(from && to && out, "tsr_baseconv_create: NULL argument");
    *out = NULL;
    if (from->n != to->n)
        return tsr_fail(TSR_ERR_MISMATCH, "basis conversion between degrees %zu and %zu", from->n,
                        to->n);
    tsr_baseconv *bc = tsr_calloc(sizeof *bc);
    if (!bc) return tsr_fail(TSR_ERR_NOMEM, "out of memory for a basis conversion");
    tsr_status st = basis_copy(from, &bc->from);
    if (st == TSR_OK) st = basis_copy(to, &bc->to);
    const size_t F = from->count, T = to->count, W = from->words;
    if (st == TSR_OK) {
        bc->mat = tsr_calloc_array(T * (F + 1), 8);
        bc->mat52 = tsr_calloc_array(T * (F + 1), 8);
        bc->mat_sh = tsr_calloc_array(T * (F + 1), 8);
        if (!bc->mat || !bc->mat52 || !bc->mat_sh)
            st = tsr_fail(TSR_ERR_NOMEM, "out of memory for a basis conversion");
    }
    if (st != TSR_OK) {
        tsr_baseconv_free(bc);
        return st;
    }
    for (size_t j = 0; j < T; j++) {
        const tsr_modulus *pm = &to->mod[j];
        uint64_t *row = bc->mat + j * (F + 1);
        for (size_t i = 0; i < F; i++) row[i] = tsr_mw_mod(from->qhat + i * W, W, pm);
        row[F] = tsr_modq_neg(tsr_mw_mod(from->big_q, W, pm), pm->q);
        const uint64_t r52 = tsr_modq_reduce64(pm, (uint64_t)1 << 52);
        for (size_t i = 0; i <= F; i++) {
            bc->mat52[j * (F + 1) + i] = tsr_modq_mul(pm, row[i], r52);
            bc->mat_sh[j * (F + 1) + i] = tsr_modq_shoup(row[i], pm->q);
        }
    }
    bc->ymax = F + 1;
    for (size_t i = 0; i < F; i++)
        if (from->q[i] > bc->ymax) bc->ymax = from->q[i];
    *out = bc;
    return TSR_OK;
}

void tsr_baseconv_free(tsr_baseconv *bc) {
    if (!bc) return;
    tsr_rns_basis_free(bc->from);
    tsr_rns_basis_free(bc->to);
    tsr_free(bc->mat);
    tsr_free(bc->mat52);
    tsr_free(bc->mat_sh);
    tsr_free(bc);
}

/* Coefficients per conversion chunk: the chunk's F inputs and y values stay
 * in cache while every output row is computed from them. */
#define CONV_CHUNK 512

/*
 * u[k] = floor(sum_i y_i[k] / q_i) exactly, k < len. Fixed point: t_i =
 * floor(y_i * floor(2^128/q_i) / 2^64) is within (-2, 0] of y_i 2^64 / q_i,
 * so the sum T is within (-2F, 0] of S 2^64; if T's fraction is below
 * 2^64 - 2F the integer part is exact, otherwise decide u' or u'+1 by
 * comparing sum y_i Q/q_i with (u'+1) Q in multi-word arithmetic.
 */
static void conv_quotient(const tsr_rns_basis *from, uint64_t *u, const uint64_t *const *y,
                          size_t len) {
    const size_t F = from->count, W = from->words;
    const uint64_t margin = 2 * (uint64_t)F;
    /* A double-precision estimate settles almost every k (kernels.h,
     * quotient_est); the marked ones are decided exactly below. */
    double inv[TSR_RNS_MAX_PRIMES];
    for (size_t i = 0; i < F; i++) inv[i] = 1.0 / (double)from->q[i];
    tsr_ring_kernels_active()->quotient_est(u, y, inv, F, len);
    for (size_t k = 0; k < len; k++) {
        if (u[k] != UINT64_MAX) continue;
        tsr_u128 t = 0;
        for (size_t i = 0; i < F; i++) {
            uint64_t yi = y[i][k];
            t += (tsr_u128)(yi * from->inv_q_hi[i]) + (((tsr_u128)yi * from->inv_q_lo[i]) >> 64);
        }
        uint64_t uk = (uint64_t)(t >> 64), frac = (uint64_t)t;
        if (frac >= (uint64_t)0 - margin) {
            uint64_t x[TSR_RNS_MAX_PRIMES + 2] = { 0 }, c[TSR_RNS_MAX_PRIMES + 2] = { 0 };
            for (size_t i = 0; i < F; i++) tsr_mw_addmul(x, from->qhat + i * W, W, y[i][k]);
            tsr_mw_addmul(c, from->big_q, W, uk + 1);
            if (tsr_mw_cmp(x, c, W) >= 0) uk++;
        }
        u[k] = uk;
    }
}

/*
 * The centring multiple of a ModUp (HPS's centred fast conversion): v[k] = round(sum_i y_i[k] /
 * q_i), so that sum_i y_i Q/q_i - v Q is x - Q round(x / Q), the representative of x in
 * (-Q/2, Q/2]. One prime: v = [y > (q_0 - 1)/2], exact. Several: the quotient_round kernel, in
 * double precision (error below 2^-40 for up to 64 primes), so only an x within 2^-40 Q of Q/2
 * may get the other representative, -Q/2 or so: as small. Every kernel family returns the
 * portable kernel's words (kernels.h), so they agree there too.
 */
static void centre_quotient(const tsr_ring_kernels *k, const tsr_rns_basis *from, uint64_t *v,
                            const uint64_t *const *y, size_t len) {
    const size_t F = from->count;
    if (F == 1) {
        const uint64_t h = from->q[0] >> 1;
        for (size_t c = 0; c < len; c++) v[c] = y[0][c] > h;
        return;
    }
    double inv[TSR_RNS_MAX_PRIMES];
    for (size_t i = 0; i < F; i++) inv[i] = 1.0 / (double)from->q[i];
    k->quotient_round(v, y, inv, F, len);
}

/* Row j of a conversion over one chunk: out[k] = sum_i terms[i][k] mat[j][i] mod p_j. */
static void conv_row_chunk(const tsr_ring_kernels *k, const tsr_baseconv *bc, size_t j,
                           uint64_t *out, const uint64_t *const *terms, size_t nterms, size_t len) {
    const size_t F1 = bc->from->count + 1;
    const tsr_conv_coeffs r = { bc->mat + j * F1, bc->mat_sh + j * F1, bc->mat52 + j * F1, nterms,
                                bc->ymax };
    k->conv_row(&bc->to->mod[j], out, terms, &r, len);
}

/* What a conversion subtracts: nothing (approximate), u Q (exact), v Q (centred ModUp). */
enum { CONV_APPROX, CONV_EXACT, CONV_CENTRED };

/*
 * One chunk [k0, k0 + len): y_i = in_i * (Q/q_i)^-1 into buf (F x len), then
 * u (exact) or v (centred) into buf + F*len, then every output row.
 */
static void conv_chunk(const tsr_ring_kernels *k, const tsr_baseconv *bc, uint64_t *const *out,
                       const uint64_t *const *in, int mode, size_t k0, size_t len, uint64_t *buf) {
    const tsr_rns_basis *from = bc->from;
    const size_t F = from->count, T = bc->to->count;
    const uint64_t *terms[TSR_RNS_MAX_PRIMES + 1];
    for (size_t i = 0; i < F; i++) {
        uint64_t *yi = buf + i * len;
        k->mul_scalar(&from->mod[i], yi, in[i] + k0, from->qhat_inv[i], from->qhat_inv_sh[i], len);
        terms[i] = yi;
    }
    size_t nterms = F;
    if ((mode == CONV_EXACT && F > 1) || mode == CONV_CENTRED) {
        uint64_t *u = buf + F * len;
        if (mode == CONV_EXACT)
            conv_quotient(from, u, terms, len);
        else
            centre_quotient(k, from, u, terms, len);
        terms[F] = u;
        nterms = F + 1;
    }
    for (size_t j = 0; j < T; j++) conv_row_chunk(k, bc, j, out[j] + k0, terms, nterms, len);
}

static tsr_status conv_common(const tsr_baseconv *bc, uint64_t *const *out,
                              const uint64_t *const *in, int mode, int ntt) {
    TSR_REQUIRE(bc && out && in, "tsr_baseconv_*: NULL argument");
    const tsr_ring_kernels *k = tsr_ring_kernels_active();
    const size_t F = bc->from->count, T = bc->to->count, n = bc->from->n;
    const size_t chunk = n < CONV_CHUNK ? n : CONV_CHUNK;
    int nomem = 0;
#ifdef _OPENMP
#pragma omp parallel if (n >= 2048)
#endif
    {
        uint64_t *buf = tsr_alloc((F + 1) * chunk * sizeof(uint64_t));
        if (!buf) __atomic_store_n(&nomem, 1, __ATOMIC_RELAXED);
#ifdef _OPENMP
#pragma omp for schedule(static)
#endif
        for (size_t k0 = 0; k0 < n; k0 += chunk)
            if (buf) conv_chunk(k, bc, out, in, mode, k0, chunk, buf);
        tsr_free(buf);
    }
    if (nomem)
        return tsr_fail(TSR_ERR_NOMEM, "out of memory for basis-conversion scratch (%zu words)",
                        (F + 1) * chunk);
    if (ntt) {
        PAR_FOR(T > 1 && n >= 2048)
        for (size_t j = 0; j < T; j++) k->ntt_fwd(bc->to->ntt[j], out[j]);
    }
    return TSR_OK;
}

tsr_status tsr_baseconv_approx(const tsr_baseconv *bc, uint64_t *const *out,
                               const uint64_t *const *in) {
    return conv_common(bc, out, in, CONV_APPROX, 0);
}

tsr_status tsr_baseconv_exact(const tsr_baseconv *bc, uint64_t *const *out,
                              const uint64_t *const *in) {
    return conv_common(bc, out, in, CONV_EXACT, 0);
}

tsr_status tsr_baseconv_modup(const tsr_baseconv *bc, uint64_t *const *out,
                              const uint64_t *const *in) {
    return conv_common(bc, out, in, CONV_CENTRED, 1);
}

/* ---- split-NTT ModUp ---------------------------------------------------- */

/* Words per segment in one column chunk of a split transform: CONV_CHUNK
 * words in all, at least 8 per segment, at most a whole segment. */
static size_t split_len(size_t n, unsigned r) {
    const size_t B = n >> r;
    size_t len = (CONV_CHUNK >> r) < 8 ? 8 : (CONV_CHUNK >> r);
    return len < B ? len : B;
}

/* buf[m*len .. +len) = src[m*B + c .. +len) for the R segments; then the
 * pieces of the next column chunk (c + len, if < B) are prefetched into L2:
 * R short pieces a segment apart are too many streams for the hardware
 * prefetcher, and the chunk's conversion gives them time to arrive. */
static void gather(uint64_t *buf, const uint64_t *src, size_t R, size_t B, size_t c, size_t len) {
    for (size_t m = 0; m < R; m++) memcpy(buf + m * len, src + m * B + c, len * sizeof *buf);
    if (c + len < B)
        for (size_t m = 0; m < R; m++)
            for (size_t w = 0; w < len; w += 8) __builtin_prefetch(src + m * B + c + len + w, 0, 2);
}

/* dst[m*B + c ..] = buf[m*len ..] for the R segments, with streaming stores
 * (the limbs are read again only after the whole conversion). */
static void scatter(const tsr_ring_kernels *k, uint64_t *dst, const uint64_t *buf, size_t R,
                    size_t B, size_t c, size_t len) {
    for (size_t m = 0; m < R; m++) k->copy_stream(dst + m * B + c, buf + m * len, len);
}

tsr_status tsr_baseconv_modup_split(const tsr_baseconv *bc, uint64_t *const *out,
                                    const uint64_t *const *in, unsigned r) {
    TSR_REQUIRE(bc && out && in, "tsr_baseconv_modup_split: NULL argument");
    const tsr_ring_kernels *k = tsr_ring_kernels_active();
    const tsr_rns_basis *from = bc->from, *to = bc->to;
    const size_t F = from->count, T = to->count, n = from->n;
    TSR_REQUIRE(r <= (unsigned)from->ntt[0]->log_n, "tsr_baseconv_modup_split: r too large");
    const size_t R = (size_t)1 << r, B = n >> r, len = split_len(n, r), ch = R * len;
    /* One-prime digit (F = 1: Q/q_0 = 1, so y = x and every row is 1): the centred lift is x, or
     * x - q_0 where x > h = (q_0 - 1)/2. Where q_0 < 4 p_j, x + (4 p_j - q_0) < 4 p_j for
     * h < x < q_0 is that lift mod p_j, and x <= h < 2 p_j is left as it is: both are valid
     * inputs of the forward outer stages (< 4p) whose transform, fully reduced after the inner
     * stages, is that of the reduced lift: one conditional add per word instead of two modular
     * products (bit-identical). q_0 / 4 < p_j is q_0 < 4 p_j without overflow. */
    const int one = F == 1;
    const uint64_t h = from->q[0] >> 1;
    int nomem = 0;
#ifdef _OPENMP
#pragma omp parallel if (n >= 2048)
#endif
    {
        /* y_i (F x ch), v (ch), then o one cache line further: a pass between buffers a
         * multiple of 4 KiB apart stalls on 4K aliasing (measured: a copy cost more than the
         * conversion it replaced) */
        uint64_t *buf = tsr_alloc(((F + 2) * ch + 8) * sizeof(uint64_t));
        if (!buf) __atomic_store_n(&nomem, 1, __ATOMIC_RELAXED);
#ifdef _OPENMP
#pragma omp for schedule(static)
#endif
        for (size_t c = 0; c < B; c += len) {
            if (!buf) continue;
            const uint64_t *terms[TSR_RNS_MAX_PRIMES + 1];
            uint64_t *v = buf + F * ch, *o = buf + (F + 1) * ch + 8;
            for (size_t i = 0; i < F; i++) {
                uint64_t *y = buf + i * ch;
                gather(y, in[i], R, B, c, len);
                k->ntt_inv_outer(from->ntt[i], y, len, r);
                if (!one)
                    k->mul_scalar(&from->mod[i], y, y, from->qhat_inv[i], from->qhat_inv_sh[i], ch);
                terms[i] = y;
            }
            int have_v = 0;
            for (size_t j = 0; j < T; j++) {
                if (one && from->q[0] / 4 < to->q[j]) {
                    k->add_above(o, terms[0], h, 4 * to->q[j] - from->q[0], ch);
                } else {
                    if (!have_v) {
                        centre_quotient(k, from, v, terms, ch);
                        terms[F] = v;
                        have_v = 1;
                    }
                    conv_row_chunk(k, bc, j, o, terms, F + 1, ch);
                }
                k->ntt_fwd_outer(to->ntt[j], o, len, r);
                scatter(k, out[j], o, R, B, c, len);
            }
        }
        tsr_ring_stream_fence();
        tsr_free(buf);
    }
    if (nomem)
        return tsr_fail(TSR_ERR_NOMEM, "out of memory for basis-conversion scratch (%zu words)",
                        (F + 2) * ch + 8);
    return TSR_OK;
}

/* ---- ModDown ------------------------------------------------------------ */

tsr_status tsr_moddown_create(const tsr_rns_basis *q, const tsr_rns_basis *p, tsr_moddown **out) {
    TSR_REQUIRE(q && p && out, "tsr_moddown_create: NULL argument");
    *out = NULL;
    if (q->n != p->n)
        return tsr_fail(TSR_ERR_MISMATCH, "ModDown between degrees %zu and %zu", q->n, p->n);
    for (size_t i = 0; i < p->count; i++)
        if (tsr_rns_basis_find(q, p->q[i]) >= 0)
            return tsr_fail(TSR_ERR_INVALID_ARG,
                            "ModDown: prime %llu is in both Q and P; they must be disjoint",
                            (unsigned long long)p->q[i]);
    tsr_moddown *md = tsr_calloc(sizeof *md);
    if (!md) return tsr_fail(TSR_ERR_NOMEM, "out of memory for ModDown");
    tsr_status st = basis_copy(q, &md->q);
    if (st == TSR_OK) st = basis_copy(p, &md->p);
    if (st == TSR_OK) st = tsr_baseconv_create(p, q, &md->conv);
    const size_t Lq = q->count, K = p->count, W = p->words;
    if (st == TSR_OK) {
        md->p_inv = tsr_calloc_array(Lq, 8);
        md->p_inv_sh = tsr_calloc_array(Lq, 8);
        md->h_p = tsr_calloc_array(K, 8);
        md->h_q = tsr_calloc_array(Lq, 8);
        if (!md->p_inv || !md->p_inv_sh || !md->h_p || !md->h_q)
            st = tsr_fail(TSR_ERR_NOMEM, "out of memory for ModDown");
    }
    if (st != TSR_OK) {
        tsr_moddown_free(md);
        return st;
    }
    /* h = (P - 1) / 2 as a multi-word integer (P is odd). */
    uint64_t h[TSR_RNS_MAX_PRIMES + 2];
    memcpy(h, p->big_q, W * 8);
    for (size_t i = 0; i < W; i++) h[i] = (h[i] >> 1) | (i + 1 < W ? h[i + 1] << 63 : 0);
    for (size_t i = 0; i < K; i++) md->h_p[i] = tsr_mw_mod(h, W, &p->mod[i]);
    for (size_t j = 0; j < Lq; j++) {
        const tsr_modulus *m = &q->mod[j];
        md->h_q[j] = tsr_mw_mod(h, W, m);
        md->p_inv[j] = tsr_modq_inv(tsr_mw_mod(p->big_q, W, m), m->q);
        TSR_ASSERT(md->p_inv[j] != 0);
        md->p_inv_sh[j] = tsr_modq_shoup(md->p_inv[j], m->q);
    }
    *out = md;
    return TSR_OK;
}

void tsr_moddown_free(tsr_moddown *md) {
    if (!md) return;
    tsr_rns_basis_free(md->q);
    tsr_rns_basis_free(md->p);
    tsr_baseconv_free(md->conv);
    tsr_free(md->p_inv);
    tsr_free(md->p_inv_sh);
    tsr_free(md->h_p);
    tsr_free(md->h_q);
    tsr_free(md);
}

/* Limb j of the result from t = (x mod q_j) (coefficient domain, clobbered). */
static void moddown_finish(const tsr_ring_kernels *k, const tsr_moddown *md, size_t j,
                           uint64_t *out_j, const uint64_t *in_j, uint64_t *t, int ntt) {
    const tsr_rns_basis *qb = md->q;
    const tsr_modulus *m = &qb->mod[j];
    const size_t n = qb->n;
    /* t - h, so that a + h - x = a - t; then (a - t) P^-1. */
    k->add_scalar(m, t, t, tsr_modq_neg(md->h_q[j], m->q), n);
    if (ntt) k->ntt_fwd(qb->ntt[j], t);
    k->sub(m, out_j, in_j, t, n);
    k->mul_scalar(m, out_j, out_j, md->p_inv[j], md->p_inv_sh[j], n);
}

static tsr_status moddown(const tsr_moddown *md, uint64_t *out, uint64_t *in, int ntt) {
    TSR_REQUIRE(md && out && in, "tsr_moddown_apply: NULL argument");
    const tsr_ring_kernels *k = tsr_ring_kernels_active();
    const tsr_rns_basis *qb = md->q, *pb = md->p;
    const size_t n = qb->n, Lq = qb->count, K = pb->count;
    uint64_t *pl = in + Lq * n; /* P limbs */

    /* x = [a + h]_P in the coefficient domain, then y_i = x_i (P/p_i)^-1 in place. */
    PAR_FOR(K > 1 && n >= 2048)
    for (size_t i = 0; i < K; i++) {
        uint64_t *li = pl + i * n;
        if (ntt) k->ntt_inv(pb->ntt[i], li);
        k->add_scalar(&pb->mod[i], li, li, md->h_p[i], n);
        k->mul_scalar(&pb->mod[i], li, li, pb->qhat_inv[i], pb->qhat_inv_sh[i], n);
    }
    const uint64_t *terms[TSR_RNS_MAX_PRIMES + 1];
    for (size_t i = 0; i < K; i++) terms[i] = pl + i * n;
    size_t nterms = K;
    uint64_t *u = NULL;
    if (K > 1) {
        u = tsr_alloc(n * sizeof *u);
        if (!u) return tsr_fail(TSR_ERR_NOMEM, "out of memory for ModDown scratch");
        const size_t chunk = n < CONV_CHUNK ? n : CONV_CHUNK;
        PAR_FOR(n >= 4096)
        for (size_t k0 = 0; k0 < n; k0 += chunk) {
            const uint64_t *yk[TSR_RNS_MAX_PRIMES];
            for (size_t i = 0; i < K; i++) yk[i] = terms[i] + k0;
            conv_quotient(pb, u + k0, yk, chunk);
        }
        terms[K] = u;
        nterms = K + 1;
    }
    int nomem = 0;
    /* Where x mod q_j goes: out_j itself when out != in; for in-place use with
     * several P primes a scratch polynomial (one chunk-major pass reads the
     * inputs once); otherwise (rescale, or no memory) limb by limb with one
     * N-word buffer per thread, re-reading the K inputs per limb. */
    uint64_t *dst = out != in ? out : NULL;
    uint64_t *scratch = NULL;
    if (!dst && K > 1) dst = scratch = tsr_alloc(Lq * n * sizeof *scratch);
    if (dst) {
        const size_t chunk = n < CONV_CHUNK ? n : CONV_CHUNK;
        PAR_FOR(n >= 2048)
        for (size_t k0 = 0; k0 < n; k0 += chunk) {
            const uint64_t *tk[TSR_RNS_MAX_PRIMES + 1];
            for (size_t i = 0; i < nterms; i++) tk[i] = terms[i] + k0;
            for (size_t j = 0; j < Lq; j++)
                conv_row_chunk(k, md->conv, j, dst + j * n + k0, tk, nterms, chunk);
        }
        PAR_FOR(Lq > 1 && n >= 2048)
        for (size_t j = 0; j < Lq; j++)
            moddown_finish(k, md, j, out + j * n, in + j * n, dst + j * n, ntt);
        tsr_free(scratch);
    } else {
#ifdef _OPENMP
#pragma omp parallel if (Lq > 1 && n >= 2048)
#endif
        {
            uint64_t *t = tsr_alloc(n * sizeof *t);
            if (!t) __atomic_store_n(&nomem, 1, __ATOMIC_RELAXED);
#ifdef _OPENMP
#pragma omp for schedule(static)
#endif
            for (size_t j = 0; j < Lq; j++) {
                if (!t) continue;
                conv_row_chunk(k, md->conv, j, t, terms, nterms, n);
                moddown_finish(k, md, j, out + j * n, in + j * n, t, ntt);
            }
            tsr_free(t);
        }
    }
    tsr_free(u);
    if (nomem) return tsr_fail(TSR_ERR_NOMEM, "out of memory for ModDown scratch");
    return TSR_OK;
}

tsr_status tsr_moddown_apply(const tsr_moddown *md, uint64_t *out, uint64_t *in) {
    return moddown(md, out, in, 1);
}

tsr_status tsr_moddown_apply_coeff(const tsr_moddown *md, uint64_t *out, uint64_t *in) {
    return moddown(md, out, in, 0);
}

/* ---- row-at-a-time pieces --------------------------------------------- */

tsr_status tsr_moddown_prepare(const tsr_moddown *md, uint64_t *in_p, uint64_t *u) {
    const tsr_ring_kernels *k = tsr_ring_kernels_active();
    const tsr_rns_basis *pb = md->p;
    const size_t n = pb->n, K = pb->count;
    for (size_t i = 0; i < K; i++) {
        uint64_t *li = in_p + i * n;
        k->ntt_inv(pb->ntt[i], li);
        k->add_scalar(&pb->mod[i], li, li, md->h_p[i], n);
        k->mul_scalar(&pb->mod[i], li, li, pb->qhat_inv[i], pb->qhat_inv_sh[i], n);
    }
    if (K > 1) {
        TSR_REQUIRE(u, "tsr_moddown_prepare: u is needed when P has several primes");
        const uint64_t *y[TSR_RNS_MAX_PRIMES];
        for (size_t i = 0; i < K; i++) y[i] = in_p + i * n;
        conv_quotient(pb, u, y, n);
    }
    return TSR_OK;
}

void tsr_moddown_row(const tsr_moddown *md, size_t j, uint64_t *out_j, const uint64_t *in_j,
                     const uint64_t *in_p, const uint64_t *u, uint64_t *tmp) {
    const tsr_ring_kernels *k = tsr_ring_kernels_active();
    const size_t n = md->q->n, K = md->p->count;
    const uint64_t *terms[TSR_RNS_MAX_PRIMES + 1];
    for (size_t i = 0; i < K; i++) terms[i] = in_p + i * n;
    size_t nterms = K;
    if (K > 1) terms[nterms++] = u;
    conv_row_chunk(k, md->conv, j, tmp, terms, nterms, n);
    moddown_finish(k, md, j, out_j, in_j, tmp, 1);
}

/* ---- split-NTT pieces -------------------------------------------------- */

tsr_status tsr_moddown_prepare_split(const tsr_moddown *md, const uint64_t *in_p,
                                     uint64_t *const *conv, unsigned r) {
    TSR_REQUIRE(md && in_p && conv, "tsr_moddown_prepare_split: NULL argument");
    const tsr_ring_kernels *k = tsr_ring_kernels_active();
    const tsr_rns_basis *pb = md->p, *qb = md->q;
    const size_t n = pb->n, K = pb->count, Lq = qb->count;
    TSR_REQUIRE(r <= (unsigned)pb->ntt[0]->log_n, "tsr_moddown_prepare_split: r too large");
    const size_t R = (size_t)1 << r, B = n >> r, len = split_len(n, r), ch = R * len;
    int nomem = 0;
#ifdef _OPENMP
#pragma omp parallel if (n >= 2048)
#endif
    {
        uint64_t *buf = tsr_alloc((K + 2) * ch * sizeof(uint64_t));
        if (!buf) __atomic_store_n(&nomem, 1, __ATOMIC_RELAXED);
#ifdef _OPENMP
#pragma omp for schedule(static)
#endif
        for (size_t c = 0; c < B; c += len) {
            if (!buf) continue;
            const uint64_t *terms[TSR_RNS_MAX_PRIMES + 1];
            uint64_t *o = buf + (K + 1) * ch;
            /* y_i = [x + h]_{p_i} (P/p_i)^-1 in the coefficient domain */
            for (size_t i = 0; i < K; i++) {
                uint64_t *y = buf + i * ch;
                gather(y, in_p + i * n, R, B, c, len);
                k->ntt_inv_outer(pb->ntt[i], y, len, r);
                k->add_scalar(&pb->mod[i], y, y, md->h_p[i], ch);
                k->mul_scalar(&pb->mod[i], y, y, pb->qhat_inv[i], pb->qhat_inv_sh[i], ch);
                terms[i] = y;
            }
            size_t nterms = K;
            if (K > 1) {
                uint64_t *u = buf + K * ch;
                conv_quotient(pb, u, terms, ch);
                terms[nterms++] = u;
            }
            for (size_t j = 0; j < Lq; j++) {
                const tsr_modulus *m = &qb->mod[j];
                conv_row_chunk(k, md->conv, j, o, terms, nterms, ch);
                k->add_scalar(m, o, o, tsr_modq_neg(md->h_q[j], m->q), ch);
                k->ntt_fwd_outer(qb->ntt[j], o, len, r);
                scatter(k, conv[j], o, R, B, c, len);
            }
        }
        tsr_ring_stream_fence();
        tsr_free(buf);
    }
    if (nomem) return tsr_fail(TSR_ERR_NOMEM, "out of memory for ModDown scratch");
    return TSR_OK;
}

void tsr_moddown_block(const tsr_moddown *md, size_t j, size_t b, unsigned r, uint64_t *out,
                       const uint64_t *in, const uint64_t *conv, uint64_t *tmp, const uint64_t *add,
                       int stream, tsr_prefetch *pf) {
    const tsr_ring_kernels *k = tsr_ring_kernels_active();
    const tsr_rns_basis *qb = md->q;
    const tsr_modulus *m = &qb->mod[j];
    const size_t B = qb->n >> r;
    k->ntt_fwd_inner(qb->ntt[j], tmp, conv, b, r, pf);
    /* one pass: (in - tmp) P^-1 (+ add), element by element (out may alias in or add) */
    k->sub_mul_scalar_add(m, out, in, tmp, md->p_inv[j], md->p_inv_sh[j], add, stream, B);
}
