/*
 * nn/simplify.c - rewrites that make a model cheaper under CKKS without
 * changing what it computes (in real arithmetic):
 *
 *  1. Average pooling (or global average pooling) read only by a dense
 *     layer is merged into that layer (a dense layer over the unpooled
 *     input): one level and its rotations saved.
 *  2. A per-channel affine map y = k1 x + k0 (a degree-1 polynomial,
 *     typically an unfolded batch norm) is merged into the convolution or
 *     dense layer that produces x, or else into the one that reads y.
 *  3. A degree-2 activation y = a x^2 + b x + c between two linear layers
 *     becomes y = a (x + s)^2 + c' with s = b / 2a and c' = c - b^2 / 4a:
 *     the shift goes into the producer's bias, a and c' into the consumer's
 *     weights and bias, and what remains is a plain square: one level
 *     instead of two, no constant multiplications (the classic CryptoNets /
 *     LoLa treatment of x^2 activations), while the shift costs at most
 *     SQUARE_SHIFT_BITS bits of precision (NN_SIMPLIFY_V2; plans written
 *     before it are rebuilt with NN_SIMPLIFY_V1's |s| <= 4 x the bound).
 *     Past that budget (a near-linear activation, a -> 0) NN_SIMPLIFY_V3
 *     uses the product form y = (a / k^2) u (u + d) + c with u = k x (into
 *     the producer), k = min(1, 10 sqrt|a|), and d = b k / a, a plaintext
 *     added for free: one ciphertext product, one level (see SQMUL_K). An
 *     activation with no x^2 term at all is affine, and rule 2 merges it.
 *
 *  4. Two dense layers in a row (the first read only by the second) become
 *     one when that does not make the matrix denser: a selection matrix
 *     (at most one entry per row: a Transpose, Slice, Reshape-like copy or
 *     a replication) merged into the dense layer reading it, or a dense
 *     layer into the selection reading it when the product has no more
 *     entries than the dense layer. One level saved each (attention's
 *     K^T and head transposes around MatMul of two activations).
 *
 * Scaling and shifting the input of a consumer that zero-pads (a padded
 * convolution) changes the bias near the borders: the bias becomes a map
 * over output positions, which costs nothing extra under CKKS (it is one
 * plaintext added per output tile either way).
 */
#include "nn/model.h"

#include "core/alloc.h"
#include "core/error.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

/* Appends a printf-formatted note to m's notes ("; " between two), cut at their size. */
__attribute__((format(printf, 2, 3))) static void note(tsr_nn_model *m, const char *fmt, ...) {
    size_t len = strlen(m->notes);
    if (len + 4 >= sizeof m->notes) return;
    if (len) {
        memcpy(m->notes + len, "; ", 3);
        len += 2;
    }
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(m->notes + len, sizeof m->notes - len, fmt, ap);
    va_end(ap);
}

static void add_origin(nn_layer *L, const char *what) {
    size_t len = strlen(L->origin);
    if (len + 4 >= sizeof L->origin) return;
    snprintf(L->origin + len, sizeof L->origin - len, "%s%s", len ? " + " : "", what);
}

/*
 * "WHAT NAME" added to L's origin, as add_origin(L, what) followed by name appended as it is
 * (origins enter plan digests through format 5's layers, so the bytes stay those the rules
 * always wrote: when the origin is too full for add_origin, name still goes in, truncated,
 * without `what`).
 */
static void add_origin_of(nn_layer *L, const char *what, const char *name) {
    add_origin(L, what);
    size_t len = strlen(L->origin);
    snprintf(L->origin + len, sizeof L->origin - len, "%s", name);
}

/* Activation layer i (input tensor x, sole consumer q) was folded into its neighbours:
 * the producer of x records `what_producer` NAME, q "scale of NAME". */
static void note_fold(tsr_nn_model *m, int i, int x, int q, const char *what_producer) {
    char name[NN_NAME_MAX];
    snprintf(name, sizeof name, "%s", m->layers[i].name);
    add_origin_of(&m->layers[nn_producer(m, x)], what_producer, name);
    add_origin_of(&m->layers[q], "scale of ", name);
}

/* The only layer reading tensor t, or -1 (none, several, or the model output). */
static int sole_consumer(const tsr_nn_model *m, int t) {
    if (nn_consumers(m, t) != 1 || m->output == t) return -1;
    for (int i = 0; i < m->n_layers; i++)
        if (m->layers[i].in[0] == t || m->layers[i].in[1] == t) return i;
    return -1;
}

/* Make sure L has a bias of F values (zeros) when it has none. */
static tsr_status ensure_bias(nn_layer *L, int64_t F) {
    if (L->b_len) return TSR_OK;
    L->b = tsr_calloc_array((size_t)F, sizeof *L->b);
    if (!L->b) return tsr_fail(TSR_ERR_NOMEM, "out of memory");
    L->b_len = F;
    return TSR_OK;
}

/* Turn a per-filter conv bias into a map over (F, OH, OW). */
static tsr_status bias_to_map(nn_layer *L, int F, int OH, int OW) {
    int64_t n = (int64_t)F * OH * OW;
    if (L->b_len == n) return TSR_OK;
    double *map = tsr_calloc_array((size_t)n, sizeof *map);
    if (!map) return tsr_fail(TSR_ERR_NOMEM, "out of memory");
    for (int f = 0; f < F; f++)
        for (int64_t j = 0; j < (int64_t)OH * OW; j++)
            map[(int64_t)f * OH * OW + j] = L->b_len ? L->b[f] : 0.0;
    tsr_free(L->b);
    L->b = map;
    L->b_len = n;
    return TSR_OK;
}

/*
 * Can the producer P of tensor t absorb y = scale[ch] * t + shift[ch]?
 * Yes if P is a convolution or dense layer read only by the rewrite.
 */
static int producer_foldable(const tsr_nn_model *m, int t) {
    int p = nn_producer(m, t);
    if (p < 0) return 0;
    nn_kind k = m->layers[p].kind;
    return k == NN_CONV || k == NN_DENSE;
}

/* P's output becomes scale[ch] * out + shift[ch] (nc = 1 or channels). */
static tsr_status fold_into_producer(tsr_nn_model *m, int t, const double *scale,
                                     const double *shift, int nc) {
    nn_layer *P = &m->layers[nn_producer(m, t)];
    nn_shape os = m->shapes[t];
    int64_t C = os.c, hw = (int64_t)os.h * os.w;
    int64_t per = P->w_len / C; /* weights per output channel (both kinds) */
    TSR_TRY(ensure_bias(P, C));
    for (int64_t ch = 0; ch < C; ch++) {
        double a = scale ? scale[nc == 1 ? 0 : ch] : 1.0, s = shift ? shift[nc == 1 ? 0 : ch] : 0;
        for (int64_t j = 0; j < per; j++) P->w[ch * per + j] *= a;
        if (P->b_len == C) {
            P->b[ch] = a * P->b[ch] + s;
        } else {
            for (int64_t j = 0; j < hw; j++) P->b[ch * hw + j] = a * P->b[ch * hw + j] + s;
        }
    }
    return TSR_OK;
}

/*
 * Follow single-consumer average pools (without padding: they commute with
 * per-channel scales and constants) from tensor t to a convolution or
 * dense layer; returns its index or -1.
 */
static int linear_consumer(const tsr_nn_model *m, int t) {
    for (;;) {
        int q = sole_consumer(m, t);
        if (q < 0) return -1;
        const nn_layer *Q = &m->layers[q];
        if (Q->kind == NN_CONV || Q->kind == NN_DENSE) return Q->in[1] == t ? -1 : q;
        if (Q->kind != NN_AVGPOOL || Q->ph || Q->pw) return -1;
        t = Q->out;
    }
}

/* Consumer Q (found by linear_consumer from t) reads scale[ch] * z + shift[ch] instead of z. */
static tsr_status fold_into_consumer(tsr_nn_model *m, int q, const double *scale,
                                     const double *shift, int nc) {
    nn_layer *Q = &m->layers[q];
    nn_shape is = m->shapes[Q->in[0]], os = m->shapes[Q->out];
    int64_t C = is.c, hw = (int64_t)is.h * is.w;
    if (Q->kind == NN_DENSE) {
        int64_t M = os.c, n = nn_numel(is);
        TSR_TRY(ensure_bias(Q, M));
        for (int64_t o = 0; o < M; o++) {
            double *w = Q->w + o * n, acc = 0;
            for (int64_t i = 0; i < n; i++) {
                int64_t ch = nc == 1 ? 0 : i / hw;
                if (shift) acc += w[i] * shift[ch];
                if (scale) w[i] *= scale[ch];
            }
            Q->b[o] += acc;
        }
        return TSR_OK;
    }
    /* Convolution: the constant reaches each output through its valid taps only. */
    int F = os.c, OH = os.h, OW = os.w;
    int any_shift = 0;
    for (int ch = 0; shift && ch < (nc == 1 ? 1 : C); ch++) any_shift |= shift[ch] != 0.0;
    if (any_shift) {
        if (Q->ph || Q->pw) {
            TSR_TRY(bias_to_map(Q, F, OH, OW));
            for (int f = 0; f < F; f++)
                for (int oy = 0; oy < OH; oy++)
                    for (int ox = 0; ox < OW; ox++) {
                        double acc = 0;
                        for (int c = 0; c < C; c++)
                            for (int ky = 0; ky < Q->kh; ky++) {
                                int iy = oy * Q->sh + ky - Q->ph;
                                if (iy < 0 || iy >= is.h) continue;
                                for (int kx = 0; kx < Q->kw; kx++) {
                                    int ix = ox * Q->sw + kx - Q->pw;
                                    if (ix < 0 || ix >= is.w) continue;
                                    acc += Q->w[(((int64_t)f * C + c) * Q->kh + ky) * Q->kw + kx] *
                                           shift[nc == 1 ? 0 : c];
                                }
                            }
                        Q->b[((int64_t)f * OH + oy) * OW + ox] += acc;
                    }
        } else {
            TSR_TRY(ensure_bias(Q, F));
            for (int f = 0; f < F; f++) {
                double acc = 0;
                for (int c = 0; c < C; c++)
                    for (int k = 0; k < Q->kh * Q->kw; k++)
                        acc +=
                            Q->w[((int64_t)f * C + c) * Q->kh * Q->kw + k] * shift[nc == 1 ? 0 : c];
                if (Q->b_len == F)
                    Q->b[f] += acc;
                else
                    for (int64_t j = 0; j < (int64_t)OH * OW; j++)
                        Q->b[(int64_t)f * OH * OW + j] += acc;
            }
        }
    }
    if (scale)
        for (int f = 0; f < F; f++)
            for (int c = 0; c < C; c++)
                for (int k = 0; k < Q->kh * Q->kw; k++)
                    Q->w[((int64_t)f * C + c) * Q->kh * Q->kw + k] *= scale[nc == 1 ? 0 : c];
    return TSR_OK;
}

/* Remove layer i, whose output is read by nobody after renaming it to its input. */
static void bypass(tsr_nn_model *m, int i) {
    nn_layer *L = &m->layers[i];
    nn_model_rename_input(m, L->out, L->in[0]);
    nn_model_remove_layer(m, i);
}

/* Rule 2: per-channel affine maps. Returns 1 if the model changed. */
static tsr_status fold_affine(tsr_nn_model *m, int *changed) {
    for (int i = 0; i < m->n_layers; i++) {
        nn_layer *L = &m->layers[i];
        if (L->kind != NN_POLY || L->degree != 1) continue;
        int nc = L->nc;
        double *k0 = tsr_alloc((size_t)nc * sizeof *k0), *k1 = tsr_alloc((size_t)nc * sizeof *k1);
        if (!k0 || !k1) {
            tsr_free(k0);
            tsr_free(k1);
            return tsr_fail(TSR_ERR_NOMEM, "out of memory");
        }
        for (int c = 0; c < nc; c++) {
            k0[c] = L->w[2 * c];
            k1[c] = L->w[2 * c + 1];
        }
        tsr_status st = TSR_OK;
        char name[NN_NAME_MAX];
        snprintf(name, sizeof name, "%s", L->name);
        int x = L->in[0], done = 0;
        if (producer_foldable(m, x) && sole_consumer(m, x) == i) {
            st = fold_into_producer(m, x, k1, k0, nc);
            if (st == TSR_OK) {
                nn_layer *P = &m->layers[nn_producer(m, x)];
                add_origin(P, name);
                note(m, "%s merged into %s", name, P->name);
                done = 1;
            }
        } else {
            int q = linear_consumer(m, L->out);
            if (q >= 0) {
                st = fold_into_consumer(m, q, k1, k0, nc);
                if (st == TSR_OK) {
                    add_origin(&m->layers[q], name);
                    note(m, "%s merged into %s", name, m->layers[q].name);
                    done = 1;
                }
            }
        }
        tsr_free(k0);
        tsr_free(k1);
        TSR_TRY(st);
        if (done) {
            bypass(m, i);
            *changed = 1;
            return TSR_OK;
        }
    }
    return TSR_OK;
}

/* Rule 1: average pooling read only by a dense layer. */
static tsr_status fold_pool_dense(tsr_nn_model *m, int *changed) {
    for (int i = 0; i < m->n_layers; i++) {
        nn_layer *P = &m->layers[i];
        if (P->kind != NN_AVGPOOL) continue;
        int q = sole_consumer(m, P->out);
        if (q < 0 || m->layers[q].kind != NN_DENSE) continue;
        nn_layer *D = &m->layers[q];
        nn_shape is = m->shapes[P->in[0]], os = m->shapes[P->out];
        int64_t M = m->shapes[D->out].c, nin = nn_numel(is), nout = nn_numel(os);
        double *w = tsr_calloc_array((size_t)(M * nin), sizeof *w);
        if (!w) return tsr_fail(TSR_ERR_NOMEM, "out of memory");
        for (int64_t o = 0; o < M; o++)
            for (int c = 0; c < os.c; c++)
                for (int oy = 0; oy < os.h; oy++)
                    for (int ox = 0; ox < os.w; ox++) {
                        double v = D->w[o * nout + ((int64_t)c * os.h + oy) * os.w + ox] /
                                   nn_pool_taps(P, is, oy, ox);
                        for (int ky = 0; ky < P->kh; ky++) {
                            int iy = oy * P->sh + ky - P->ph;
                            if (iy < 0 || iy >= is.h) continue;
                            for (int kx = 0; kx < P->kw; kx++) {
                                int ix = ox * P->sw + kx - P->pw;
                                if (ix >= 0 && ix < is.w)
                                    w[o * nin + ((int64_t)c * is.h + iy) * is.w + ix] += v;
                            }
                        }
                    }
        tsr_free(D->w);
        D->w = w;
        D->w_len = M * nin;
        add_origin(D, P->name);
        note(m, "%s merged into %s", P->name, D->name);
        bypass(m, i);
        *changed = 1;
        return TSR_OK;
    }
    return TSR_OK;
}

/* Number of nonzero entries of an M x K matrix; *sel = 1 when no row has two. */
static int64_t matrix_nnz(const double *w, int64_t M, int64_t K, int *sel) {
    int64_t nnz = 0;
    *sel = 1;
    for (int64_t o = 0; o < M; o++) {
        int64_t r = 0;
        for (int64_t i = 0; i < K; i++) r += w[o * K + i] != 0.0;
        if (r > 1) *sel = 0;
        nnz += r;
    }
    return nnz;
}

/* Largest merged matrix rule 4 builds (entries). */
#define DENSE_MERGE_MAX ((int64_t)1 << 24)

/* Rule 4: dense layer i read only by a dense layer, merged when no denser. */
static tsr_status fold_dense_dense(tsr_nn_model *m, int *changed) {
    for (int i = 0; i < m->n_layers; i++) {
        nn_layer *P = &m->layers[i];
        if (P->kind != NN_DENSE) continue;
        int q = sole_consumer(m, P->out);
        if (q < 0 || m->layers[q].kind != NN_DENSE) continue;
        nn_layer *Q = &m->layers[q];
        int64_t K = nn_numel(m->shapes[P->in[0]]), Mp = m->shapes[P->out].c,
                Mq = m->shapes[Q->out].c;
        if (Mq * K > DENSE_MERGE_MAX) continue;
        int psel, qsel;
        int64_t pnnz = matrix_nnz(P->w, Mp, K, &psel), qnnz = matrix_nnz(Q->w, Mq, Mp, &qsel);
        if (!psel && !qsel) continue;
        double *w = tsr_calloc_array((size_t)(Mq * K), sizeof *w);
        double *b = tsr_calloc_array((size_t)Mq, sizeof *b);
        if (!w || !b) {
            tsr_free(w);
            tsr_free(b);
            return tsr_fail(TSR_ERR_NOMEM, "out of memory");
        }
        for (int64_t o = 0; o < Mq; o++) {
            double acc = Q->b_len ? Q->b[o] : 0.0;
            for (int64_t j = 0; j < Mp; j++) {
                double a = Q->w[o * Mp + j];
                if (a == 0.0) continue;
                if (P->b_len) acc += a * P->b[j];
                const double *r = P->w + j * K;
                for (int64_t k = 0; k < K; k++)
                    if (r[k] != 0.0) w[o * K + k] += a * r[k];
            }
            b[o] = acc;
        }
        int sel;
        int64_t nnz = matrix_nnz(w, Mq, K, &sel);
        if (nnz > (psel ? qnnz : pnnz)) {
            tsr_free(w);
            tsr_free(b);
            continue;
        }
        tsr_free(Q->w);
        tsr_free(Q->b);
        Q->w = w;
        Q->w_len = Mq * K;
        Q->b = b;
        Q->b_len = Mq;
        add_origin(Q, P->name);
        note(m, "%s merged into %s", P->name, Q->name);
        bypass(m, i);
        *changed = 1;
        return TSR_OK;
    }
    return TSR_OK;
}

/*
 * Rule 3's precision budget for the shift. y = a x^2 + b x + c becomes a (x + s)^2 + k with
 * s = b / 2a. The error x carries reaches y as (2 a x + b) e_x either way; what grows is the
 * square's input, up to B + |s| instead of B (B: the activation's input bound, 4 when
 * unknown), so the values the square and the consumer's products carry, and with them the
 * absolute errors that do not scale with a (the consumer's encoded weights a w and the
 * rescales, applied to values up to (B + |s|)^2), grow by (B + |s|)^2 / B^2: a cost of
 * 2 log2(1 + |s| / B) bits, against one level and the constant products saved. The rewrite
 * is done up to SQUARE_SHIFT_BITS bits (|s| <= 31 B; the rule stopped at 4 B, 4.6 bits,
 * before), a constant justified by the measured loss (not by the output headroom, which
 * guards against overflow): on the debug backend (tests/test_nn_simplify_square.c, N = 2^11,
 * the polynomial 29-30 bits precise; TSR_SQUARE_SWEEP=1 prints the sweep) the square lost
 * nothing up to |s| = 8 B, 1.4 bits at 16 B, 4.0 at 24 B and 3.9-4.4 at 31 B (the test
 * allows 5), small against a plan's scale (2^39 for the sixth round's autoencoders, whose
 * first shifts of 11.7-27.4 B need more than 7 B). The formula is pessimistic by about 6
 * bits (docs/PRUNING.md, sixth round). Past the budget (a near-linear activation: a -> 0,
 * |s| -> infinity) the activation stays a polynomial, and a note says so and why.
 */
#define SQUARE_SHIFT_BITS 10.0

/* Bits rule 3's shift s costs on inputs bounded by B (see SQUARE_SHIFT_BITS). The rule
 * compares this log2 with the budget, as the plans of rule sets V2 and V3 were written with;
 * the exact |s| / B <= 31 is not the same test (|s| / B = nextafter(31, 32): 1 + |s| / B
 * rounds to 32, cost 10), so changing it could change a plan's rules and refuse its digest. */
static double square_shift_bits(double s, double B) {
    return 2.0 * log2(1.0 + fabs(s) / B);
}

/*
 * Rule 3's product form (NN_SIMPLIFY_V3), for the activations whose shift is past the budget.
 * Algebra, per channel with a != 0 and any k > 0: let u = k x and d = b k / a. Then
 * (a / k^2) u (u + d) = a x^2 + (a / k^2) k x b k / a = a x^2 + b x, so
 * y = (a / k^2) u (u + d) + c: k goes into the producer's weights and bias (as the shift does),
 * a / k^2 and c into the consumer, d is a per-channel plaintext added to u (no level), and
 * u (u + d) is one ciphertext product: one level, like the square. Nothing cancels: the
 * product is about (k^2 / |a|) (|b| B + |a| B^2), a multiple of the true output (in the square
 * form, a (x + s)^2 is about a s^2 = b^2 / 4a, cancelled by c').
 *
 * Error: the absolute error e of u (the producer's rescale and its encoded weights' rounding,
 * which do not shrink with k) reaches y as e |d| a / k^2 ~ e |b| / k, against the
 * polynomial's e |b| on x: a cost of log2(1 / k) bits (sqmul_bits). The consumer's encoded
 * weights w a / k^2 round to an absolute error that does not shrink with them, applied to the
 * product: k^2 / |a| times the polynomial's. k = sqrt|a| (the product the size of the true
 * output) leaves the second as it was and costs log2(1 / sqrt|a|); k = 1 (no scaling) the
 * reverse. Measured (tests/test_nn_simplify_sqmul.c: debug backend, N = 2^11, b = 0.4, B = 4,
 * the polynomial 27.5-30.3 bits precise, a = 1e-2, 1e-3, 1e-4; k = K sqrt|a|, 3 runs each in
 * batch packing, 2 in tiled): batch packing (constants as exact integers at a large scale)
 * lost 0.4-1.6 / 2.0-2.8 / 3.8-4.5 bits at K = 1, at most 0 / 0.5 / 1.2 at K = 10 and 0 / 0 /
 * 0.4 at K = 30; tiled packing (weights as plaintexts at the scale) 0.5-1.7 / 3.0-3.6 /
 * 3.8-5.1 at K = 1, at most 0.4 / 0.6 / 1.0 at K = 10, 2.4-3.8 at K = 30 and 6.3-6.8 at
 * K = 100 (a = 1e-2). So k = SQMUL_K sqrt|a| (K = 10, at most 1): the product carries up to
 * 100 times the true output. It never reaches the output level: the product takes one level
 * and its linear consumer the next, so x + d is at level >= 2 and the rescaled product at
 * >= 1, where Q_1 = q0 q1 leaves far more than 2^20 times the scale: even 2^20 fits
 * (SQMUL_MAX_PRODUCT, checked per channel from the input bound: a bigger one keeps the
 * polynomial), and the output headroom check (tsr_nn_check_outputs) needs no change. The form is
 * used for |a| >= 2^-20 (SQMUL_MIN_A, log2(1 / sqrt|a|) <= 10 bits as the square's budget; smaller
 * a unmeasured); below that, or with a = 0 in only some channels, the activation stays a polynomial
 * with a note. A model in docs/PRUNING.md (ninth round).
 */
#define SQMUL_K           10.0
#define SQMUL_MIN_A       0x1p-20
#define SQMUL_MAX_PRODUCT 0x1p20

/* The scale k of the product form's input for x^2 coefficient a (see SQMUL_K). */
static double sqmul_k(double a) {
    return fmin(1.0, SQMUL_K * sqrt(fabs(a)));
}

/* Bits the product form's input error costs with input scale k: log2(1 / k). */
static double sqmul_bits(double k) {
    return log2(1.0 / k);
}

/*
 * The product form of degree-2 poly layer i (x its input, q its linear consumer, bound its
 * input bound): *done = 1 when rewritten, else 0 and *why says why it cannot be.
 */
static tsr_status sqmul_rewrite(tsr_nn_model *m, int i, int x, int q, double bound, int *done,
                                char *why, size_t why_len) {
    nn_layer *L = &m->layers[i];
    int nc = L->nc, ok = 1;
    double worst = 0, kmax = 0;
    *done = 0;
    /* per channel: k into the producer, a / k^2 and c into the consumer, the offset d */
    double *k = tsr_alloc((size_t)nc * sizeof *k), *qs = tsr_alloc((size_t)nc * sizeof *qs);
    double *c0 = tsr_alloc((size_t)nc * sizeof *c0), *d = tsr_alloc((size_t)nc * sizeof *d);
    tsr_status st = (k && qs && c0 && d) ? TSR_OK : tsr_fail(TSR_ERR_NOMEM, "out of memory");
    for (int c = 0; c < nc && st == TSR_OK; c++) {
        double a = L->w[3 * c + 2], b = L->w[3 * c + 1];
        if (a == 0.0) {
            snprintf(why, why_len, "channel %d has no x^2 term, others have", c);
            ok = 0;
            break;
        }
        k[c] = sqmul_k(a);
        d[c] = b * k[c] / a;
        double umax = k[c] * bound;
        if (!(fabs(a) >= SQMUL_MIN_A) || !(umax * (umax + fabs(d[c])) <= SQMUL_MAX_PRODUCT)) {
            snprintf(why, why_len,
                     "nor as x(x+d): channel %d's |a| = %.3g < 2^-20 or its product up to %.3g > "
                     "2^20",
                     c, fabs(a), umax * (umax + fabs(d[c])));
            ok = 0;
            break;
        }
        qs[c] = a / (k[c] * k[c]);
        c0[c] = L->w[3 * c];
        if (sqmul_bits(k[c]) > worst) worst = sqmul_bits(k[c]);
        if (k[c] > kmax) kmax = k[c];
    }
    if (st == TSR_OK && ok) st = fold_into_producer(m, x, k, NULL, nc);
    if (st == TSR_OK && ok) st = fold_into_consumer(m, q, qs, c0, nc);
    tsr_free(k);
    tsr_free(qs);
    tsr_free(c0);
    if (st != TSR_OK || !ok) {
        tsr_free(d);
        return st;
    }
    note_fold(m, i, x, q, "scale of ");
    L = &m->layers[i];
    tsr_free(L->w);
    L->w = d; /* nc offsets */
    L->w_len = nc;
    L->kind = NN_SQMUL;
    L->degree = 0;
    L->bound = kmax * bound;
    add_origin(L, "(a/k^2)u(u+d)+c");
    char into[2 * NN_NAME_MAX + 96];
    snprintf(into, sizeof into, "k into %s, a/k^2 and constant into %s; costs %.1f bits",
             m->layers[nn_producer(m, x)].name, m->layers[q].name, worst);
    note(m, "%s rewritten as x(x+d) (%s)", L->name, into);
    *done = 1;
    return TSR_OK;
}

/* Rule 3: degree-2 activations between linear layers become squares. */
static tsr_status square_rewrite(tsr_nn_model *m, int rules, int *changed) {
    for (int i = 0; i < m->n_layers; i++) {
        nn_layer *L = &m->layers[i];
        if (L->kind != NN_POLY || L->degree != 2) continue;
        int x = L->in[0], nc = L->nc;
        if (!producer_foldable(m, x) || sole_consumer(m, x) != i) continue;
        int q = linear_consumer(m, L->out);
        if (q < 0) continue;
        double bound = L->bound > 0 ? L->bound : 4.0, worst = 0;
        int ok = 1, worst_c = 0;
        for (int c = 0; c < nc && ok; c++) {
            double a = L->w[3 * c + 2], b = L->w[3 * c + 1];
            if (a == 0.0 || !isfinite(b / (2 * a))) {
                ok = 0;
                worst = INFINITY;
                worst_c = c;
            } else if (fabs(b / (2 * a)) > worst) {
                worst = fabs(b / (2 * a));
                worst_c = c;
            }
        }
        double cost = ok ? square_shift_bits(worst, bound) : INFINITY;
        if (rules == NN_SIMPLIFY_V1 && !(ok && worst <= 4 * bound))
            continue; /* the rule of plans written before the budget, silent as it was */
        if (!(cost <= SQUARE_SHIFT_BITS)) {
            /* near-linear: the shift would cost more precision than the level saves */
            char what[NN_NAME_MAX + 32], why[160], why2[160] = "";
            if (rules == NN_SIMPLIFY_V3) {
                int done;
                TSR_TRY(sqmul_rewrite(m, i, x, q, bound, &done, why2, sizeof why2));
                if (done) {
                    *changed = 1;
                    continue;
                }
                L = &m->layers[i];
            }
            snprintf(what, sizeof what, "%s", L->name);
            if (nc > 1)
                snprintf(what + strlen(what), sizeof what - strlen(what), " channel %d", worst_c);
            if (ok)
                snprintf(why, sizeof why,
                         "shift |b/2a| = %.4g is %.3g x its input bound %.3g: %.1f bits > %.0f",
                         worst, worst / bound, bound, cost, SQUARE_SHIFT_BITS);
            else
                snprintf(why, sizeof why, "no x^2 term: linear");
            char full[sizeof why + sizeof why2 + 8];
            snprintf(full, sizeof full, "%s%s%s", why, why2[0] ? "; " : "", why2);
            note(m, "%s kept as a degree-2 polynomial, not a square (%s)", what, full);
            continue;
        }
        double *s = tsr_alloc((size_t)nc * sizeof *s), *a = tsr_alloc((size_t)nc * sizeof *a);
        double *k = tsr_alloc((size_t)nc * sizeof *k);
        tsr_status st = (s && a && k) ? TSR_OK : tsr_fail(TSR_ERR_NOMEM, "out of memory");
        for (int c = 0; c < nc && st == TSR_OK; c++) {
            double c0 = L->w[3 * c], c1 = L->w[3 * c + 1], c2 = L->w[3 * c + 2];
            a[c] = c2;
            s[c] = c1 / (2 * c2);
            k[c] = c0 - c1 * c1 / (4 * c2);
        }
        if (st == TSR_OK) st = fold_into_producer(m, x, NULL, s, nc);
        if (st == TSR_OK) st = fold_into_consumer(m, q, a, k, nc);
        tsr_free(s);
        tsr_free(a);
        tsr_free(k);
        TSR_TRY(st);
        note_fold(m, i, x, q, "shift of ");
        L = &m->layers[i];
        tsr_free(L->w);
        L->w = NULL;
        L->w_len = 0;
        L->kind = NN_SQUARE;
        L->degree = 0;
        L->nc = 0;
        L->bound = bound + worst;
        add_origin(L, "a(x+s)^2+c");
        char into[NN_NAME_MAX + 96];
        snprintf(into, sizeof into,
                 "%s and its scale into the next layer; |s| <= %.3g costs %.1f bits",
                 m->layers[nn_producer(m, x)].name, worst, cost);
        note(m, "%s rewritten as a square (shift into %s)", L->name, into);
        *changed = 1;
    }
    return TSR_OK;
}

/* NN_SIMPLIFY_V3: a degree-2 polynomial without x^2 term in any channel is affine (degree 1),
 * so that rule 2 merges it (before, it stayed a depth-2 polynomial). */
static void degree2_affine(tsr_nn_model *m) {
    for (int i = 0; i < m->n_layers; i++) {
        nn_layer *L = &m->layers[i];
        if (L->kind != NN_POLY || L->degree != 2) continue;
        int lin = 1;
        for (int c = 0; c < L->nc; c++) lin &= L->w[3 * c + 2] == 0.0;
        if (!lin) continue;
        for (int c = 0; c < L->nc; c++) {
            L->w[2 * c] = L->w[3 * c];
            L->w[2 * c + 1] = L->w[3 * c + 1];
        }
        L->w_len = 2 * (int64_t)L->nc;
        L->degree = 1;
        note(m, "%s has no x^2 term: degree 1", L->name);
    }
}

tsr_status nn_model_simplify(tsr_nn_model *m) {
    return nn_model_simplify_rules(m, NN_SIMPLIFY_V3);
}

tsr_status nn_model_simplify_rules(tsr_nn_model *m, int rules) {
    TSR_REQUIRE(rules == NN_SIMPLIFY_V1 || rules == NN_SIMPLIFY_V2 || rules == NN_SIMPLIFY_V3,
                "nn_model_simplify_rules: unknown rule set");
    if (rules == NN_SIMPLIFY_V3) degree2_affine(m);
    for (int round = 0; round < 4 * (m->n_layers + 1); round++) {
        int changed = 0;
        TSR_TRY(fold_pool_dense(m, &changed));
        if (!changed) TSR_TRY(fold_affine(m, &changed));
        if (!changed) TSR_TRY(fold_dense_dense(m, &changed));
        if (!changed) break;
    }
    int changed = 0;
    TSR_TRY(square_rewrite(m, rules, &changed));
    return nn_model_validate(m);
}
