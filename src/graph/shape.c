/*
 * graph/shape.c - shape inference: the output shape of each node kind from
 * its input shapes and constant operands, with the ONNX operator rules
 * (broadcasting, pads and auto_pad, Reshape's 0 and -1, Slice clamping, ...).
 * Every check that protects the kernels in exec.c is made here.
 */
#include "graph/graph_internal.h"

#include "core/error.h"

#include <math.h>
#include <string.h>

#define SFAIL(fmt, ...) tsr_fail(TSR_ERR_SHAPE, "%s: " fmt, lab, ##__VA_ARGS__)
#define AFAIL(fmt, ...) tsr_fail(TSR_ERR_FORMAT, "%s: " fmt, lab, ##__VA_ARGS__)

typedef int64_t dims_t[TSR_ARRAY_MAX_RANK];

static int norm_axis(int64_t axis, int rank, int64_t *out) {
    if (axis < -rank || axis >= rank) return -1;
    *out = axis < 0 ? axis + rank : axis;
    return 0;
}

static tsr_status broadcast(const char *lab, int ra, const int64_t *a, int rb, const int64_t *b,
                            int *ro, int64_t *o) {
    int r = ra > rb ? ra : rb;
    for (int k = 0; k < r; k++) {
        int64_t da = k - (r - ra) >= 0 ? a[k - (r - ra)] : 1;
        int64_t db = k - (r - rb) >= 0 ? b[k - (r - rb)] : 1;
        if (da != db && da != 1 && db != 1) {
            char sa[128], sb[128];
            return SFAIL("shapes %s and %s do not broadcast", tsr_dims_str(ra, a, sa, sizeof sa),
                         tsr_dims_str(rb, b, sb, sizeof sb));
        }
        o[k] = da == 1 ? db : da;
    }
    *ro = r;
    return TSR_OK;
}

tsr_status tsr_graph_pool_geom(const tsr_graph_node *n, int rank, const int64_t *x,
                               const int64_t *kernel, tsr_pool_geom *geo) {
    char lab[224];
    tsr_graph_node_label(n, lab, sizeof lab);
    const tsr_graph_attrs *a = &n->a;
    memset(geo, 0, sizeof *geo);
    int ns = rank - 2;
    if (ns < 1 || ns > TSR_GRAPH_MAX_SPATIAL)
        return SFAIL("input of rank %d: 1 to %d spatial dimensions are supported", rank,
                     TSR_GRAPH_MAX_SPATIAL);
    geo->ns = ns;
    int64_t taps = 1;
    for (int i = 0; i < ns; i++) {
        if (kernel[i] >= 1 && kernel[i] <= (1 << 20)) taps *= kernel[i];
        if (taps > (1 << 20)) return AFAIL("the kernel has more than 2^20 taps");
    }
    for (int i = 0; i < ns; i++) {
        int64_t in = x[2 + i], k = kernel[i];
        int64_t s = a->strides[i] ? a->strides[i] : 1, d = a->dilations[i] ? a->dilations[i] : 1;
        if (k < 1 || k > (1 << 20) || s < 1 || s > (1 << 20) || d < 1 || d > (1 << 20))
            return AFAIL("kernel %lld, stride %lld, dilation %lld: each must be 1..2^20",
                         (long long)k, (long long)s, (long long)d);
        int64_t ek = (k - 1) * d + 1, pb = 0, pe = 0, out;
        switch (a->auto_pad) {
        case TSR_AUTOPAD_NOTSET:
            pb = a->pads[i];
            pe = a->pads[ns + i];
            if (pb < 0 || pe < 0 || pb >= ek || pe >= ek)
                return AFAIL("pads %lld, %lld: each must be 0 .. kernel extent - 1 (%lld)",
                             (long long)pb, (long long)pe, (long long)(ek - 1));
            if (in + pb + pe < ek)
                return SFAIL("spatial size %lld (padded %lld) is smaller than the kernel %lld",
                             (long long)in, (long long)(in + pb + pe), (long long)ek);
            out = (in + pb + pe - ek) / s + 1;
            if (a->ceil_mode && (in + pb + pe - ek) % s) {
                out++;
                /* The last window must start inside the input or its begin padding. */
                if ((out - 1) * s >= in + pb) out--;
            }
            break;
        case TSR_AUTOPAD_VALID:
            if (in < ek)
                return SFAIL("spatial size %lld is smaller than the kernel %lld", (long long)in,
                             (long long)ek);
            out = (in - ek) / s + 1;
            break;
        case TSR_AUTOPAD_SAME_UPPER:
        case TSR_AUTOPAD_SAME_LOWER: {
            out = (in + s - 1) / s;
            int64_t total = (out - 1) * s + ek - in;
            if (total < 0) total = 0;
            pb = a->auto_pad == TSR_AUTOPAD_SAME_UPPER ? total / 2 : total - total / 2;
            pe = total - pb;
            break;
        }
        default:
            return AFAIL("auto_pad %d is unknown", (int)a->auto_pad);
        }
        if (out < 1) return SFAIL("output spatial size would be %lld", (long long)out);
        geo->in[i] = in;
        geo->out[i] = out;
        geo->k[i] = k;
        geo->s[i] = s;
        geo->d[i] = d;
        geo->pb[i] = pb;
        geo->pe[i] = pe;
    }
    return TSR_OK;
}

static tsr_status shape_coeffs(const char *lab, const tsr_graph_node *n, int rx, const int64_t *x,
                               int rc, const int64_t *c) {
    if (rc == 1) {
        if (c[0] < 1 || c[0] > 65)
            return AFAIL("%lld coefficients: 1..65 supported", (long long)c[0]);
        return TSR_OK;
    }
    if (rc != 2) return AFAIL("coefficients must be (D+1) or (C, D+1), not of rank %d", rc);
    int64_t ax;
    if (norm_axis(n->a.axis, rx, &ax))
        return SFAIL("channel axis %lld is out of range", (long long)n->a.axis);
    if (c[0] != x[ax])
        return SFAIL("%lld per-channel polynomials for %lld channels", (long long)c[0],
                     (long long)x[ax]);
    if (c[1] < 1 || c[1] > 65) return AFAIL("%lld coefficients: 1..65 supported", (long long)c[1]);
    return TSR_OK;
}

static tsr_status shape_conv(const char *lab, const tsr_graph_node *n, const int *r,
                             const int64_t (*d)[TSR_ARRAY_MAX_RANK], int *ro, int64_t *o) {
    int rank = r[0];
    if (rank < 3) return SFAIL("input must be (N, C, spatial...), not of rank %d", rank);
    if (r[1] != rank) return SFAIL("weights of rank %d for an input of rank %d", r[1], rank);
    int64_t grp = n->a.group; /* bounded first: d[1][1] * grp must not overflow */
    if (grp < 1 || grp > TSR_ARRAY_MAX_NUMEL || d[1][0] % grp || d[0][1] != d[1][1] * grp)
        return SFAIL("%lld input channels, weights (%lld, %lld, ...), group %lld do not fit",
                     (long long)d[0][1], (long long)d[1][0], (long long)d[1][1], (long long)grp);
    if (n->n_in > 2 && r[2] >= 0 && (r[2] != 1 || d[2][0] != d[1][0]))
        return SFAIL("bias must have %lld entries", (long long)d[1][0]);
    if (n->a.n_kernel && n->a.n_kernel != rank - 2)
        return AFAIL("kernel_shape has %d entries for %d spatial dimensions", n->a.n_kernel,
                     rank - 2);
    for (int i = 0; n->a.n_kernel && i < rank - 2; i++)
        if (n->a.kernel[i] != d[1][2 + i]) return SFAIL("kernel_shape differs from the weights");
    tsr_pool_geom geo;
    TSR_TRY(tsr_graph_pool_geom(n, rank, d[0], d[1] + 2, &geo));
    *ro = rank;
    o[0] = d[0][0];
    o[1] = d[1][0];
    for (int i = 0; i < geo.ns; i++) o[2 + i] = geo.out[i];
    return TSR_OK;
}

static tsr_status shape_matmul(const char *lab, int ra, const int64_t *a, int rb, const int64_t *b,
                               int *ro, int64_t *o) {
    if (ra < 1 || rb < 1) return SFAIL("MatMul of a scalar");
    int64_t m = ra >= 2 ? a[ra - 2] : 1, ka = a[ra - 1];
    int64_t kb = rb >= 2 ? b[rb - 2] : b[0], nn = rb >= 2 ? b[rb - 1] : 1;
    if (ka != kb)
        return SFAIL("inner dimensions %lld and %lld differ", (long long)ka, (long long)kb);
    int64_t bo[TSR_ARRAY_MAX_RANK];
    int rbo = 0;
    TSR_TRY(broadcast(lab, ra > 2 ? ra - 2 : 0, a, rb > 2 ? rb - 2 : 0, b, &rbo, bo));
    int r = rbo;
    for (int k = 0; k < rbo; k++) o[k] = bo[k];
    if (ra >= 2) o[r++] = m;
    if (rb >= 2) o[r++] = nn;
    *ro = r;
    return TSR_OK;
}

static tsr_status shape_reshape(const char *lab, const tsr_graph_node *n, int rx, const int64_t *x,
                                int *ro, int64_t *o) {
    const tsr_graph_attrs *a = &n->a;
    if (a->n_shape < 0 || a->n_shape > TSR_ARRAY_MAX_RANK)
        return AFAIL("target rank %d is out of range", a->n_shape);
    int64_t total = tsr_dims_numel(rx, x), known = 1;
    int infer = -1;
    for (int k = 0; k < a->n_shape; k++) {
        int64_t v = a->shape[k];
        if (v == 0 && !a->allowzero) {
            if (k >= rx) return AFAIL("shape entry %d is 0 (copy) beyond the input rank", k);
            v = x[k];
        }
        if (v == -1) {
            if (infer >= 0) return AFAIL("shape has more than one -1");
            infer = k;
            continue;
        }
        if (v < 0) return AFAIL("shape entry %lld is invalid", (long long)v);
        if (v > 0 && known > TSR_ARRAY_MAX_NUMEL / v) return SFAIL("shape is too large");
        known *= v;
        o[k] = v;
    }
    if (infer >= 0) {
        if (known == 0 || total % known) return SFAIL("cannot infer the -1 dimension");
        o[infer] = total / known;
        known *= o[infer];
    }
    if (known != total) {
        char sx[128];
        return SFAIL("%s has %lld elements: the target shape %lld",
                     tsr_dims_str(rx, x, sx, sizeof sx), (long long)total, (long long)known);
    }
    *ro = a->n_shape;
    return TSR_OK;
}

static tsr_status shape_slice(const char *lab, const tsr_graph_node *n, int rx, const int64_t *x,
                              int *ro, int64_t *o) {
    const tsr_graph_attrs *a = &n->a;
    if (a->n_axes < 0 || a->n_axes > rx) return AFAIL("%d slice axes for rank %d", a->n_axes, rx);
    for (int k = 0; k < rx; k++) o[k] = x[k];
    unsigned seen = 0;
    for (int i = 0; i < a->n_axes; i++) {
        int64_t ax;
        if (norm_axis(a->axes[i], rx, &ax))
            return AFAIL("slice axis %lld is out of range", (long long)a->axes[i]);
        if (seen >> ax & 1u) return AFAIL("slice axis %lld is repeated", (long long)a->axes[i]);
        seen |= 1u << ax;
        int64_t dim = x[ax], st = tsr_clamp62(a->starts[i]), en = tsr_clamp62(a->ends[i]);
        int64_t step = a->steps[i];
        if (step == 0) return AFAIL("slice step 0");
        if (step < -((int64_t)1 << 40) || step > ((int64_t)1 << 40))
            return AFAIL("slice step is too large");
        if (st < 0) st += dim;
        if (en < 0) en += dim;
        int64_t len;
        if (step > 0) {
            st = st < 0 ? 0 : st > dim ? dim : st;
            en = en < 0 ? 0 : en > dim ? dim : en;
            len = en > st ? (en - st + step - 1) / step : 0;
        } else {
            st = st < 0 ? 0 : st > dim - 1 ? dim - 1 : st;
            en = en < -1 ? -1 : en > dim - 1 ? dim - 1 : en;
            len = st > en ? (st - en + (-step) - 1) / (-step) : 0;
        }
        o[ax] = len;
    }
    *ro = rx;
    return TSR_OK;
}

static tsr_status shape_reduce(const char *lab, const tsr_graph_node *n, int rx, const int64_t *x,
                               int *ro, int64_t *o) {
    const tsr_graph_attrs *a = &n->a;
    unsigned mask = 0;
    if (a->n_axes < 0 || a->n_axes > rx) return AFAIL("%d axes for rank %d", a->n_axes, rx);
    for (int i = 0; i < a->n_axes; i++) {
        int64_t ax;
        if (norm_axis(a->axes[i], rx, &ax))
            return AFAIL("axis %lld is out of range", (long long)a->axes[i]);
        mask |= 1u << ax;
    }
    if (a->n_axes == 0) mask = a->noop_with_empty_axes ? 0 : (1u << rx) - 1u;
    if (a->n_axes == 0 && a->reduce_tail) {
        int64_t ax;
        if (norm_axis(a->axis, rx, &ax))
            return AFAIL("axis %lld is out of range", (long long)a->axis);
        mask = ((1u << rx) - 1u) & ~((1u << ax) - 1u);
    }
    int r = 0;
    for (int k = 0; k < rx; k++) {
        if (mask >> k & 1u) {
            if (a->keepdims) o[r++] = 1;
        } else {
            o[r++] = x[k];
        }
    }
    *ro = r;
    return TSR_OK;
}

static tsr_status node_shape(const tsr_graph_node *n, const int *r,
                             const int64_t (*d)[TSR_ARRAY_MAX_RANK], int *ro, int64_t *o);

tsr_status tsr_graph_node_shape(const tsr_graph *g, const tsr_graph_node *n, const int *r,
                                const int64_t (*d)[TSR_ARRAY_MAX_RANK],
                                const tsr_array *const *consts, int *ro, int64_t *o) {
    (void)g;
    (void)consts;
    TSR_TRY(node_shape(n, r, d, ro, o));
    if (tsr_dims_numel(*ro, o) < 0) {
        char lab[224];
        tsr_graph_node_label(n, lab, sizeof lab);
        return SFAIL("the output would have more than %lld elements",
                     (long long)TSR_ARRAY_MAX_NUMEL);
    }
    return TSR_OK;
}

static tsr_status node_shape(const tsr_graph_node *n, const int *r,
                             const int64_t (*d)[TSR_ARRAY_MAX_RANK], int *ro, int64_t *o) {
    char lab[224];
    tsr_graph_node_label(n, lab, sizeof lab);
    const tsr_graph_attrs *a = &n->a;
    int rx = r[0];
    const int64_t *x = d[0];
    switch (n->kind) {
    case TSR_NODE_SOFTMAX: {
        int64_t ax;
        if (norm_axis(a->axis, rx, &ax))
            return AFAIL("axis %lld is out of range", (long long)a->axis);
    }
        /* fall through */
    case TSR_NODE_IDENTITY:
    case TSR_NODE_NEG:
    case TSR_NODE_SQUARE:
    case TSR_NODE_RELU:
    case TSR_NODE_LEAKY_RELU:
    case TSR_NODE_SIGMOID:
    case TSR_NODE_TANH:
    case TSR_NODE_ERF:
    case TSR_NODE_EXP:
    case TSR_NODE_SQRT:
    case TSR_NODE_RECIPROCAL:
        *ro = rx;
        memcpy(o, x, sizeof(dims_t));
        return TSR_OK;
    case TSR_NODE_ADD:
    case TSR_NODE_SUB:
    case TSR_NODE_MUL:
    case TSR_NODE_DIV:
    case TSR_NODE_POW:
        return broadcast(lab, rx, x, r[1], d[1], ro, o);
    case TSR_NODE_CHEBYSHEV:
        if (!(isfinite(a->lo) && isfinite(a->hi) && a->lo < a->hi))
            return AFAIL("interval [%g, %g] is empty", a->lo, a->hi);
        /* fall through */
    case TSR_NODE_POLY:
        TSR_TRY(shape_coeffs(lab, n, rx, x, r[1], d[1]));
        *ro = rx;
        memcpy(o, x, sizeof(dims_t));
        return TSR_OK;
    case TSR_NODE_CONV:
        return shape_conv(lab, n, r, d, ro, o);
    case TSR_NODE_GEMM: {
        if (rx != 2 || r[1] != 2) return SFAIL("Gemm needs two matrices (rank 2)");
        int64_t m = a->trans_a ? x[1] : x[0], ka = a->trans_a ? x[0] : x[1];
        int64_t kb = a->trans_b ? d[1][1] : d[1][0], nn = a->trans_b ? d[1][0] : d[1][1];
        if (ka != kb)
            return SFAIL("inner dimensions %lld and %lld differ", (long long)ka, (long long)kb);
        if (!isfinite(a->alpha) || !isfinite(a->beta)) return AFAIL("alpha/beta not finite");
        o[0] = m;
        o[1] = nn;
        *ro = 2;
        if (n->n_in == 3 && r[2] >= 0) {
            if (r[2] > 2) return SFAIL("bias of rank %d", r[2]);
            int64_t cm = r[2] == 2 ? d[2][0] : 1, cn = r[2] >= 1 ? d[2][r[2] - 1] : 1;
            if ((cm != 1 && cm != m) || (cn != 1 && cn != nn))
                return SFAIL("bias does not broadcast to (%lld, %lld)", (long long)m,
                             (long long)nn);
        }
        return TSR_OK;
    }
    case TSR_NODE_MATMUL:
        return shape_matmul(lab, rx, x, r[1], d[1], ro, o);
    case TSR_NODE_MAXPOOL:
    case TSR_NODE_AVGPOOL: {
        if (rx < 3) return SFAIL("input must be (N, C, spatial...), not of rank %d", rx);
        if (a->n_kernel != rx - 2)
            return AFAIL("kernel_shape has %d entries for %d spatial dimensions", a->n_kernel,
                         rx - 2);
        tsr_pool_geom geo;
        TSR_TRY(tsr_graph_pool_geom(n, rx, x, a->kernel, &geo));
        *ro = rx;
        o[0] = x[0];
        o[1] = x[1];
        for (int i = 0; i < geo.ns; i++) o[2 + i] = geo.out[i];
        return TSR_OK;
    }
    case TSR_NODE_GLOBAL_AVGPOOL:
        if (rx < 3) return SFAIL("input must be (N, C, spatial...), not of rank %d", rx);
        *ro = rx;
        memcpy(o, x, sizeof(dims_t));
        for (int k = 2; k < rx; k++) {
            if (x[k] < 1) return SFAIL("empty spatial dimension");
            o[k] = 1;
        }
        return TSR_OK;
    case TSR_NODE_BATCHNORM:
        if (rx < 2) return SFAIL("input must be (N, C, ...)");
        for (int k = 1; k < 5; k++)
            if (r[k] != 1 || d[k][0] != x[1])
                return SFAIL("parameter %d must have %lld entries", k, (long long)x[1]);
        if (!(a->epsilon >= 0) || !isfinite(a->epsilon)) return AFAIL("epsilon must be >= 0");
        *ro = rx;
        memcpy(o, x, sizeof(dims_t));
        return TSR_OK;
    case TSR_NODE_FLATTEN: {
        int64_t ax = a->axis < 0 ? a->axis + rx : a->axis;
        if (ax < 0 || ax > rx) return AFAIL("axis %lld is out of range", (long long)a->axis);
        o[0] = tsr_dims_numel((int)ax, x);
        o[1] = tsr_dims_numel(rx - (int)ax, x + ax);
        *ro = 2;
        return TSR_OK;
    }
    case TSR_NODE_RESHAPE:
        return shape_reshape(lab, n, rx, x, ro, o);
    case TSR_NODE_TRANSPOSE: {
        if (a->n_perm != 0 && a->n_perm != rx)
            return AFAIL("perm has %d entries for rank %d", a->n_perm, rx);
        unsigned seen = 0;
        for (int k = 0; k < rx; k++) {
            int64_t p = a->n_perm ? a->perm[k] : rx - 1 - k;
            if (p < 0 || p >= rx || (seen >> p & 1u)) return AFAIL("perm is not a permutation");
            seen |= 1u << p;
            o[k] = x[p];
        }
        *ro = rx;
        return TSR_OK;
    }
    case TSR_NODE_CONCAT: {
        int64_t ax;
        if (rx < 1 || norm_axis(a->axis, rx, &ax))
            return AFAIL("axis %lld is out of range", (long long)a->axis);
        memcpy(o, x, sizeof(dims_t));
        for (int k = 1; k < n->n_in; k++) {
            if (r[k] != rx) return SFAIL("inputs of ranks %d and %d", rx, r[k]);
            for (int j = 0; j < rx; j++)
                if (j != ax && d[k][j] != x[j]) return SFAIL("input %d differs off the axis", k);
            if (o[ax] > TSR_ARRAY_MAX_NUMEL - d[k][ax]) return SFAIL("too large");
            o[ax] += d[k][ax];
        }
        *ro = rx;
        return TSR_OK;
    }
    case TSR_NODE_SLICE:
        return shape_slice(lab, n, rx, x, ro, o);
    case TSR_NODE_SQUEEZE: {
        unsigned mask = 0;
        if (a->n_axes < 0 || a->n_axes > rx) return AFAIL("%d axes for rank %d", a->n_axes, rx);
        for (int i = 0; i < a->n_axes; i++) {
            int64_t ax;
            if (norm_axis(a->axes[i], rx, &ax))
                return AFAIL("axis %lld is out of range", (long long)a->axes[i]);
            if (x[ax] != 1)
                return SFAIL("dimension %lld has size %lld, not 1", (long long)ax,
                             (long long)x[ax]);
            mask |= 1u << ax;
        }
        int k2 = 0;
        for (int k = 0; k < rx; k++)
            if (!(a->n_axes ? (mask >> k & 1u) : x[k] == 1)) o[k2++] = x[k];
        *ro = k2;
        return TSR_OK;
    }
    case TSR_NODE_UNSQUEEZE: {
        int rout = rx + a->n_axes;
        if (a->n_axes < 1 || rout > TSR_ARRAY_MAX_RANK)
            return AFAIL("%d axes for rank %d", a->n_axes, rx);
        unsigned mask = 0;
        for (int i = 0; i < a->n_axes; i++) {
            int64_t ax;
            if (norm_axis(a->axes[i], rout, &ax) || (mask >> ax & 1u))
                return AFAIL("axis %lld is out of range or repeated", (long long)a->axes[i]);
            mask |= 1u << ax;
        }
        int j = 0;
        for (int k = 0; k < rout; k++) o[k] = (mask >> k & 1u) ? 1 : x[j++];
        *ro = rout;
        return TSR_OK;
    }
    case TSR_NODE_REDUCE_SUM:
    case TSR_NODE_REDUCE_MEAN:
        return shape_reduce(lab, n, rx, x, ro, o);
    case TSR_NODE_PAD:
        if (a->n_pads != 2 * rx) return AFAIL("%d pads for rank %d", a->n_pads, rx);
        if (!isfinite(a->value)) return AFAIL("pad value is not finite");
        for (int k = 0; k < rx; k++) {
            int64_t b = a->pad_list[k], e = a->pad_list[rx + k];
            if (b < 0 || e < 0 || b > (1 << 20) || e > (1 << 20))
                return AFAIL("pads must be 0..2^20");
            o[k] = x[k] + b + e;
        }
        *ro = rx;
        return TSR_OK;
    case TSR_NODE_KIND_COUNT_:
        break;
    }
    return AFAIL("unknown kind");
}
