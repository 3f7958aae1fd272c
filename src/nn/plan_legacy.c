/*
 * nn/plan_legacy.c - plan formats 3 to 5: their payload writer (a plan read
 * from an old file is sealed, and written again, in its own format so it
 * keeps its id; a model without a graph is still written in format 5) and
 * their validated reader. nn/plan.c reads the frame and the version and
 * hands the rest of the payload here.
 *
 * Payload (little-endian), after the u32 format version:
 *
 *   CKKS spec with flags (ckks/serialize.h: ckks_spec_write); u32 security
 *   model:  u32 c, h, w; f64 in_scale, in_mean, in_std; u32 classes;
 *           u32 input rank r, u64 dims[r]; u32 output rank r, u64 dims[r]
 *           (per sample, as the ONNX model declares them; rank 0: unknown);
 *           32 bytes source hash; 256 bytes source name; 512 bytes notes;
 *           u32 layers; per layer: u32 kind; 64 bytes name; 160 bytes
 *           origin; i32 in0, in1, kh, kw, sh, sw, ph, pw, count_pad,
 *           degree, nc, lossy; f64 bound; u64 w_len, b_len; f64 w[], b[]
 *   packing: u32 packing; u64 slots; u64 t[5]; i32 orient; u32 batch
 *   program: u32 steps; per step: u32 op; i32 layer, in0, in1, out, fdim,
 *            cdim, odim, nsum, sum[4], level_in, level_out; two shapes
 *            (tile/tile_io.h: u8 ndims; per dimension u64 size, u64 tile,
 *            u8 flags);
 *            14 u64 operation counts; f64 predicted seconds;
 *            i32 output, top_level, depth, needs_relin; u64 peak vectors;
 *            u64 rotations, then i64 steps[]
 *   ranges (nn/ranges.c); predictions: f64 seconds, MiB, client seconds;
 *            256 bytes choice text
 *
 * Format 3 has no mul layers or steps, 4 no contract steps (its products
 * of two activations are lowered unfused). The reader checks every field,
 * then rebuilds the model, re-lowers it with a shape-only dry run and
 * requires the recorded steps to match exactly.
 */
#include "nn/nn_internal.h"

#include "core/alloc.h"
#include "core/error.h"
#include "core/io.h"
#include "ckks/serialize.h"
#include "tile/tile_io.h"

#include <math.h>
#include <string.h>

#define MAX_STEPS   16384
#define MAX_WEIGHTS ((uint64_t)1 << 28)

/* ---- writing ------------------------------------------------------------------------ */

static void write_counts(tsr_writer *w, const tsr_backend_counts *c) {
    const uint64_t v[14] = { c->rotations,
                             c->hoisted,
                             c->mul_ct,
                             c->mul_plain,
                             c->mul_const,
                             c->add,
                             c->rescale,
                             c->drop_level,
                             c->key_switch,
                             c->encode,
                             c->encrypt,
                             c->decrypt,
                             (uint64_t)(int64_t)c->min_level,
                             c->peak_vectors };
    for (int i = 0; i < 14; i++) tsr_write_u64(w, v[i]);
}

void nn_plan_write_legacy(const tsr_nn_plan *p, tsr_writer *w, int with_predictions) {
    TSR_ASSERT(p->format >= NN_PLAN_VERSION_MIN && p->format < 6);
    tsr_write_u32(w, p->format);
    ckks_spec_write(w, &p->spec, 1);
    tsr_write_u32(w, (uint32_t)p->security);
    const tsr_nn_model *m = p->model;
    tsr_write_u32(w, (uint32_t)m->shapes[0].c);
    tsr_write_u32(w, (uint32_t)m->shapes[0].h);
    tsr_write_u32(w, (uint32_t)m->shapes[0].w);
    tsr_write_f64(w, m->in_scale);
    tsr_write_f64(w, m->in_mean);
    tsr_write_f64(w, m->in_std);
    tsr_write_u32(w, (uint32_t)m->classes);
    tsr_write_u32(w, (uint32_t)m->in_rank);
    for (int i = 0; i < m->in_rank; i++) tsr_write_u64(w, (uint64_t)m->in_dims[i]);
    tsr_write_u32(w, (uint32_t)m->out_rank);
    for (int i = 0; i < m->out_rank; i++) tsr_write_u64(w, (uint64_t)m->out_dims[i]);
    tsr_write_bytes(w, m->source_hash, 32);
    nn_plan_write_str(w, m->source, sizeof m->source);
    nn_plan_write_str(w, m->notes, sizeof m->notes);
    tsr_write_u32(w, (uint32_t)m->n_layers);
    for (int i = 0; i < m->n_layers; i++) {
        const nn_layer *L = &m->layers[i];
        tsr_write_u32(w, (uint32_t)L->kind);
        nn_plan_write_str(w, L->name, sizeof L->name);
        nn_plan_write_str(w, L->origin, sizeof L->origin);
        const int32_t iv[12] = { L->in[0], L->in[1], L->kh,        L->kw,     L->sh, L->sw,
                                 L->ph,    L->pw,    L->count_pad, L->degree, L->nc, L->lossy };
        for (int k = 0; k < 12; k++) tsr_write_u32(w, (uint32_t)iv[k]);
        tsr_write_f64(w, L->bound);
        tsr_write_u64(w, (uint64_t)L->w_len);
        tsr_write_u64(w, (uint64_t)L->b_len);
        for (int64_t k = 0; k < L->w_len; k++) tsr_write_f64(w, L->w[k]);
        for (int64_t k = 0; k < L->b_len; k++) tsr_write_f64(w, L->b[k]);
    }
    const nn_program *g = p->prog;
    tsr_write_u32(w, (uint32_t)g->cfg.packing);
    tsr_write_u64(w, (uint64_t)g->cfg.slots);
    for (int i = 0; i < 5; i++) tsr_write_u64(w, (uint64_t)g->cfg.t[i]);
    tsr_write_u32(w, (uint32_t)g->cfg.orient);
    tsr_write_u32(w, (uint32_t)g->cfg.batch);
    tsr_write_u32(w, (uint32_t)g->n_steps);
    for (int i = 0; i < g->n_steps; i++) {
        const nn_step *st = &g->steps[i];
        tsr_write_u32(w, (uint32_t)st->op);
        const int32_t iv[15] = { st->layer,  st->in[0],  st->in[1],    st->out,       st->fdim,
                                 st->cdim,   st->odim,   st->nsum,     st->sum[0],    st->sum[1],
                                 st->sum[2], st->sum[3], st->level_in, st->level_out, 0 };
        for (int k = 0; k < 14; k++) tsr_write_u32(w, (uint32_t)iv[k]);
        tile_shape_write(w, &st->in_shape);
        tile_shape_write(w, &st->out_shape);
        write_counts(w, &st->counts);
        tsr_write_f64(w, with_predictions ? st->predicted : 0.0);
    }
    tsr_write_u32(w, (uint32_t)g->output);
    tsr_write_u32(w, (uint32_t)g->top_level);
    tsr_write_u32(w, (uint32_t)g->depth);
    tsr_write_u32(w, (uint32_t)g->needs_relin);
    tsr_write_u64(w, g->peak_vectors);
    tsr_write_u64(w, (uint64_t)g->n_rot);
    for (int64_t i = 0; i < g->n_rot; i++) tsr_write_u64(w, (uint64_t)g->rot[i]);
    nn_plan_write_ranges(w, p);
    tsr_write_f64(w, with_predictions ? p->predicted_seconds : 0.0);
    tsr_write_f64(w, with_predictions ? p->predicted_mib : 0.0);
    tsr_write_f64(w, with_predictions ? p->predicted_client : 0.0);
    nn_plan_write_str(w, with_predictions ? p->choice : "", sizeof p->choice);
}

/* ---- reading ------------------------------------------------------------------------ */

/* A step's shape: the wire form (tile/tile_io.h), sizes up to 2^32, valid for any slot count. */
static int read_shape(tsr_reader *r, tsr_tile_shape *s) {
    if (tile_shape_read(r, s, (uint64_t)1 << 32) != TSR_OK) return -1;
    if (tsr_tile_shape_validate(s, 0) != TSR_OK) {
        tsr_reader_fail(r, TSR_ERR_FORMAT, "malformed plan: %s", tsr_last_error());
        return -1;
    }
    return 0;
}

#define RFAIL(...)                                              \
    do {                                                        \
        st = tsr_reader_fail(&rd, TSR_ERR_FORMAT, __VA_ARGS__); \
        goto done;                                              \
    } while (0)

tsr_status nn_plan_read_legacy(tsr_reader *in, uint32_t version, uint64_t plen, uint32_t ckks_flags,
                               tsr_nn_plan **out) {
    *out = NULL;
    tsr_reader rd = *in;
    tsr_status st = TSR_OK;
    tsr_nn_model *m = NULL;
    nn_program *g = NULL;
    tsr_nn_plan *p = NULL;
    double *wbuf = NULL, *bbuf = NULL;
    tsr_ckks_param_spec spec;
    uint32_t security;
    if ((st = nn_plan_read_spec(&rd, ckks_flags, &spec, &security)) != TSR_OK) goto done;
    uint32_t c = tsr_read_u32(&rd), h = tsr_read_u32(&rd), w = tsr_read_u32(&rd);
    double in_scale = tsr_read_f64(&rd), in_mean = tsr_read_f64(&rd), in_std = tsr_read_f64(&rd);
    uint32_t classes = tsr_read_u32(&rd);
    if (tsr_reader_status(&rd) != TSR_OK) {
        st = tsr_reader_status(&rd);
        goto done;
    }
    if (c < 1 || h < 1 || w < 1 || c > 4096 || h > 4096 || w > 4096 ||
        (uint64_t)c * h * w > ((uint64_t)1 << 20))
        RFAIL("malformed plan: input shape (%u, %u, %u)", c, h, w);
    st = nn_model_create(&m, (int)c, (int)h, (int)w);
    if (st != TSR_OK) goto done;
    m->in_scale = in_scale;
    m->in_mean = in_mean;
    m->in_std = in_std;
    m->classes = (int)classes;
    for (int io = 0; io < 2; io++) {
        uint32_t r = tsr_read_u32(&rd);
        if (tsr_reader_status(&rd) != TSR_OK) {
            st = tsr_reader_status(&rd);
            goto done;
        }
        if (r > NN_MAX_RANK) RFAIL("malformed plan: %s rank %u", io ? "output" : "input", r);
        int64_t *d = io ? m->out_dims : m->in_dims;
        for (uint32_t k = 0; k < r; k++) {
            uint64_t v = tsr_read_u64(&rd);
            if (v < 1 || v > ((uint64_t)1 << 26)) v = 0; /* nn_model_validate refuses it */
            d[k] = (int64_t)v;
        }
        if (io)
            m->out_rank = (int)r;
        else
            m->in_rank = (int)r;
    }
    tsr_read_bytes(&rd, m->source_hash, 32);
    if (nn_plan_read_str(&rd, m->source, sizeof m->source) ||
        nn_plan_read_str(&rd, m->notes, sizeof m->notes)) {
        st = tsr_reader_status(&rd);
        goto done;
    }
    uint32_t nl = tsr_read_u32(&rd);
    if (tsr_reader_status(&rd) != TSR_OK) {
        st = tsr_reader_status(&rd);
        goto done;
    }
    if (nl < 1 || nl > NN_PLAN_MAX_LAYERS) RFAIL("malformed plan: %u layers", nl);
    for (uint32_t i = 0; i < nl; i++) {
        nn_layer L;
        memset(&L, 0, sizeof L);
        uint32_t kind = tsr_read_u32(&rd);
        if (nn_plan_read_str(&rd, L.name, sizeof L.name) ||
            nn_plan_read_str(&rd, L.origin, sizeof L.origin)) {
            st = tsr_reader_status(&rd);
            goto done;
        }
        int32_t iv[12];
        for (int k = 0; k < 12; k++) iv[k] = (int32_t)tsr_read_u32(&rd);
        L.bound = tsr_read_f64(&rd);
        uint64_t wl = tsr_read_u64(&rd), bl = tsr_read_u64(&rd);
        if (tsr_reader_status(&rd) != TSR_OK) {
            st = tsr_reader_status(&rd);
            goto done;
        }
        if (kind >= NN_KIND_COUNT_ || (version < 4 && kind == NN_MUL) || wl > MAX_WEIGHTS ||
            bl > MAX_WEIGHTS || (wl + bl) * 8 > plen)
            RFAIL("malformed plan: layer %u (kind %u, %llu weights)", i, kind,
                  (unsigned long long)wl);
        for (int k = 2; k < 12; k++)
            if (iv[k] < 0 || iv[k] > 4096) RFAIL("malformed plan: layer %u geometry", i);
        if (iv[0] < 0 || iv[0] > (int32_t)i || iv[1] < -1 || iv[1] > (int32_t)i)
            RFAIL("malformed plan: layer %u reads tensors %d, %d", i, iv[0], iv[1]);
        if (!(L.bound >= 0) || !isfinite(L.bound)) RFAIL("malformed plan: layer %u bound", i);
        L.kind = (nn_kind)kind;
        L.in[0] = iv[0];
        L.in[1] = iv[1];
        L.kh = iv[2];
        L.kw = iv[3];
        L.sh = iv[4];
        L.sw = iv[5];
        L.ph = iv[6];
        L.pw = iv[7];
        L.count_pad = iv[8];
        L.degree = iv[9];
        L.nc = iv[10];
        L.lossy = iv[11];
        if (L.count_pad > 1 || L.lossy > 1) RFAIL("malformed plan: layer %u flags", i);
        wbuf = wl ? tsr_alloc((size_t)wl * sizeof *wbuf) : NULL;
        bbuf = bl ? tsr_alloc((size_t)bl * sizeof *bbuf) : NULL;
        if ((wl && !wbuf) || (bl && !bbuf)) {
            st = tsr_fail(TSR_ERR_NOMEM, "out of memory reading a plan");
            goto done;
        }
        for (uint64_t k = 0; k < wl; k++) wbuf[k] = tsr_read_f64(&rd);
        for (uint64_t k = 0; k < bl; k++) bbuf[k] = tsr_read_f64(&rd);
        if (tsr_reader_status(&rd) != TSR_OK) {
            st = tsr_reader_status(&rd);
            goto done;
        }
        L.w = wbuf;
        L.b = bbuf;
        L.w_len = (int64_t)wl;
        L.b_len = (int64_t)bl;
        /* The output shape follows from the layer; nn_model_add checks it. */
        nn_shape is = m->shapes[L.in[0]], os = is;
        if (L.kind == NN_CONV || L.kind == NN_AVGPOOL) {
            int64_t per = (int64_t)is.c * (L.kh ? L.kh : 1) * (L.kw ? L.kw : 1);
            os.c = L.kind == NN_CONV ? (int)(per ? L.w_len / per : 0) : is.c;
            os.h = nn_out_size(is.h, L.kh, L.sh, L.ph);
            os.w = nn_out_size(is.w, L.kw, L.sw, L.pw);
        } else if (L.kind == NN_DENSE) {
            int64_t n = nn_numel(is);
            os = (nn_shape){ (int)(L.w_len / n), 1, 1 };
        }
        if (os.c < 1 || os.h < 1 || os.w < 1 || nn_numel(os) > ((int64_t)1 << 22))
            RFAIL("malformed plan: layer %u has no valid output shape", i);
        st = nn_model_add(m, &L, os, NULL);
        tsr_free(wbuf);
        tsr_free(bbuf);
        wbuf = bbuf = NULL;
        if (st != TSR_OK) {
            st = tsr_reader_fail(&rd, TSR_ERR_FORMAT, "malformed plan: %s", tsr_last_error());
            goto done;
        }
    }
    st = nn_model_validate(m);
    if (st != TSR_OK) {
        st = tsr_reader_fail(&rd, TSR_ERR_FORMAT, "malformed plan: %s", tsr_last_error());
        goto done;
    }
    if (classes != (uint32_t)nn_numel(m->shapes[m->output]))
        RFAIL("malformed plan: %u classes for %lld outputs", classes,
              (long long)nn_numel(m->shapes[m->output]));
    g = tsr_calloc(sizeof *g);
    if (!g) {
        st = tsr_fail(TSR_ERR_NOMEM, "out of memory");
        goto done;
    }
    if ((st = nn_plan_read_config(&rd, &spec, &g->cfg)) != TSR_OK) goto done;
    uint32_t ns = tsr_read_u32(&rd);
    if (tsr_reader_status(&rd) != TSR_OK) {
        st = tsr_reader_status(&rd);
        goto done;
    }
    if (ns < 1 || ns > MAX_STEPS) RFAIL("malformed plan: %u steps", ns);
    g->cfg.no_contract = version < 5; /* earlier builds lowered contractions unfused */
    g->steps = tsr_calloc_array(ns, sizeof *g->steps);
    if (!g->steps) {
        st = tsr_fail(TSR_ERR_NOMEM, "out of memory");
        goto done;
    }
    g->n_steps = g->cap_steps = (int)ns;
    for (uint32_t i = 0; i < ns; i++) {
        nn_step *s = &g->steps[i];
        uint32_t op = tsr_read_u32(&rd);
        int32_t iv[14];
        for (int k = 0; k < 14; k++) iv[k] = (int32_t)tsr_read_u32(&rd);
        if (tsr_reader_status(&rd) != TSR_OK) {
            st = tsr_reader_status(&rd);
            goto done;
        }
        if (op >= NN_OP_COUNT_ || (version < 4 && op == NN_OP_MUL) ||
            (version < 5 && op == NN_OP_CONTRACT))
            RFAIL("malformed plan: step %u has operation %u", i, op);
        s->op = (nn_op)op;
        s->layer = iv[0];
        s->in[0] = iv[1];
        s->in[1] = iv[2];
        s->out = iv[3];
        s->fdim = iv[4];
        s->cdim = iv[5];
        s->odim = iv[6];
        s->nsum = iv[7];
        for (int k = 0; k < 4; k++) s->sum[k] = iv[8 + k];
        s->level_in = iv[12];
        s->level_out = iv[13];
        if (read_shape(&rd, &s->in_shape) || read_shape(&rd, &s->out_shape)) {
            st = tsr_reader_status(&rd);
            goto done;
        }
        uint64_t cv[14];
        for (int k = 0; k < 14; k++) cv[k] = tsr_read_u64(&rd);
        s->counts = (tsr_backend_counts){ .rotations = cv[0],
                                          .hoisted = cv[1],
                                          .mul_ct = cv[2],
                                          .mul_plain = cv[3],
                                          .mul_const = cv[4],
                                          .add = cv[5],
                                          .rescale = cv[6],
                                          .drop_level = cv[7],
                                          .key_switch = cv[8],
                                          .encode = cv[9],
                                          .encrypt = cv[10],
                                          .decrypt = cv[11],
                                          .min_level = (int)(int64_t)cv[12],
                                          .peak_vectors = cv[13] };
        s->predicted = tsr_read_f64(&rd);
        if (tsr_reader_status(&rd) != TSR_OK) {
            st = tsr_reader_status(&rd);
            goto done;
        }
        if (!(s->predicted >= 0) || !isfinite(s->predicted))
            RFAIL("malformed plan: step %u prediction", i);
    }
    g->output = (int)tsr_read_u32(&rd);
    g->top_level = (int)tsr_read_u32(&rd);
    g->depth = (int)tsr_read_u32(&rd);
    g->needs_relin = (int)tsr_read_u32(&rd);
    g->peak_vectors = tsr_read_u64(&rd);
    uint64_t nr = tsr_read_u64(&rd);
    if (tsr_reader_status(&rd) != TSR_OK) {
        st = tsr_reader_status(&rd);
        goto done;
    }
    if (nr > (uint64_t)g->cfg.slots || nr * 8 > plen)
        RFAIL("malformed plan: %llu rotation steps", (unsigned long long)nr);
    g->n_rot = (int64_t)nr;
    g->rot = tsr_alloc((size_t)(nr ? nr : 1) * sizeof *g->rot);
    if (!g->rot) {
        st = tsr_fail(TSR_ERR_NOMEM, "out of memory");
        goto done;
    }
    for (uint64_t i = 0; i < nr; i++) g->rot[i] = (int64_t)tsr_read_u64(&rd);
    p = tsr_calloc(sizeof *p);
    if (!p) {
        st = tsr_fail(TSR_ERR_NOMEM, "out of memory");
        goto done;
    }
    p->format = version; /* the id hashes the payload as it was written */
    st = nn_plan_read_ranges(&rd, p, m->n_layers);
    if (st != TSR_OK) goto done;
    p->predicted_seconds = tsr_read_f64(&rd);
    p->predicted_mib = tsr_read_f64(&rd);
    p->predicted_client = tsr_read_f64(&rd);
    if (nn_plan_read_str(&rd, p->choice, sizeof p->choice)) {
        st = tsr_reader_status(&rd);
        goto done;
    }
    if (tsr_reader_status(&rd) != TSR_OK) {
        st = tsr_reader_status(&rd);
        goto done;
    }
    if (rd.mem_pos != rd.mem_len)
        RFAIL("malformed plan: %llu bytes after the end",
              (unsigned long long)(rd.mem_len - rd.mem_pos));
    if (!(p->predicted_seconds >= 0) || !isfinite(p->predicted_seconds) ||
        !(p->predicted_mib >= 0) || !isfinite(p->predicted_mib) || !(p->predicted_client >= 0) ||
        !isfinite(p->predicted_client))
        RFAIL("malformed plan: predictions");
    /* Everything parsed: re-lower the model on the recorded parameters. */
    {
        nn_program *chk = NULL;
        if ((st = nn_plan_lower(m, &g->cfg, &spec, ckks_flags, &chk)) != TSR_OK) goto done;
        char why[160];
        if (nn_program_compare(chk, g, why, sizeof why)) {
            nn_program_free(chk);
            st = tsr_fail(TSR_ERR_FORMAT,
                          "plan: the recorded program does not match this build's lowering of "
                          "its model (%s); compile the model again",
                          why);
            goto done;
        }
        /* Keep the recorded predictions but the rebuilt values/layouts. */
        for (int i = 0; i < chk->n_steps; i++) chk->steps[i].predicted = g->steps[i].predicted;
        nn_program_free(g);
        g = chk;
    }
    p->model = m;
    p->prog = g;
    p->spec = spec; /* with the file's flags */
    p->security = (int)security;
    if ((st = nn_plan_seal(p)) != TSR_OK) goto done;
    m = NULL;
    g = NULL;
    *out = p;
    p = NULL;
done:
    tsr_free(wbuf);
    tsr_free(bbuf);
    tsr_nn_model_free(m);
    nn_program_free(g);
    if (p) {
        p->model = NULL;
        p->prog = NULL;
        tsr_nn_plan_free(p);
    }
    return st;
}
