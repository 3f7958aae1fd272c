/*
 * nn/plan.c - inference plans: assembly, the file format and its validated
 * reader, accessors and the human summary.
 *
 * A plan file is one frame of kind TSR_OBJ_PLAN (core/io.h: magic, version,
 * kind, the CKKS parameter fingerprint, payload length, BLAKE2b-256). The
 * payload of format 6 (little-endian) is the model graph plus the
 * compiler's choices; everything else is recomputed when it is read:
 *
 *   u32 plan format version (6)
 *   CKKS spec with flags (ckks/serialize.h: ckks_spec_write); u32 security
 *   model:  f64 in_scale, in_mean, in_std; 32 bytes source hash; 256 bytes
 *           source name; 512 bytes notes; u32 flags (bit 0: simplified; bit 1:
 *           with NN_SIMPLIFY_V2's rule 3, a square while the shift costs <= 10 bits;
 *           without it, plans written before: NN_SIMPLIFY_V1, a shift <= 4 x the bound;
 *           bit 2 with bits 0 and 1: NN_SIMPLIFY_V3, past the budget the product form
 *           x (x + d); so 0, 1, 3 or 7; bits 3-4: tessera.output, 0 absent (the
 *           guess from shapes), 1 classes, 2 values; a bit past these five is refused
 *           as a later rule set or option, TSR_ERR_VERSION "use a newer tessera", other
 *           values as malformed);
 *           32 bytes program digest (below); u64 graph bytes, the graph
 *           (graph/graph_io.c)
 *   packing: u32 packing; u64 slots; u64 t[5]; u32 orient; u32 batch
 *   ranges (nn/ranges.c): u32 calibration samples; f64 input low, high,
 *           calibrated |output| max; f64 per layer calibrated |input| max
 *   predictions: u32 steps; f64 predicted seconds per step; f64 seconds,
 *           MiB, client seconds; 256 bytes choice text
 *
 * Reading runs what compile ran after its search, with the choices fixed:
 * the graph is lowered onto layers and simplified as import did
 * (nn_model_rebuild), the layers are lowered with the recorded packing by
 * a shape-only dry run on the recorded CKKS chain (nn_plan_lower), and the
 * step count must match the recorded predictions. The program digest is the
 * BLAKE2b-256 of what format 5 would write for the result (layers with their
 * weights, steps with shapes, levels and counts, output, depth, relin, peak,
 * rotations; predictions zeroed): the reader recomputes it and refuses a plan
 * whose graph this build lowers to another program ("compile the model
 * again"), and the id covers it. So a plan can only describe what this build
 * really runs, and a client and a server agreeing on the id agree on the
 * program. A model without a graph (built by
 * hand, or changed after import: nn_plan_assemble checks that the graph
 * gives the model bit for bit) is written in format 5, and plans of formats
 * 3 to 5 still read (nn/plan_legacy.c), each keeping its id.
 *
 * The plan id is the BLAKE2b-256 of the payload as written, with every
 * prediction (the steps' predicted seconds, the three totals, the choice
 * text) zeroed. Strings are fixed-size, NUL-padded and must contain a NUL.
 */
#include "nn/nn_internal.h"

#include "core/alloc.h"
#include "core/error.h"
#include "core/io.h"
#include "ckks/serialize.h"
#include "graph/graph_io.h"

#include <math.h>
#include <sodium.h>
#include <string.h>

#define MAX_PLAN_PAYLOAD ((uint64_t)1 << 31)
#define MAX_STEPS        16384
/* The weights a format-6 plan's graph may lower to: at least 2^26 (512 MiB of doubles), else
 * 64 per payload byte. */
#define MIN_WEIGHT_BUDGET ((int64_t)1 << 26)

void tsr_nn_plan_free(tsr_nn_plan *p) {
    if (!p) return;
    tsr_nn_model_free(p->model);
    nn_program_free(p->prog);
    tsr_free(p->act_absmax);
    tsr_free(p);
}

void tsr_nn_bytes_free(uint8_t *buf) {
    tsr_free(buf);
}

const tsr_nn_model *tsr_nn_plan_model(const tsr_nn_plan *p) {
    return p->model;
}

int tsr_nn_plan_batch(const tsr_nn_plan *p) {
    return p->prog->cfg.batch;
}

double tsr_nn_plan_predicted_seconds(const tsr_nn_plan *p) {
    return p->predicted_seconds;
}

double tsr_nn_plan_predicted_mib(const tsr_nn_plan *p) {
    return p->predicted_mib;
}

void tsr_nn_plan_id(const tsr_nn_plan *p, uint8_t id[32]) {
    memcpy(id, p->id, 32);
}

tsr_status tsr_nn_plan_params(const tsr_nn_plan *p, tsr_ckks_params **out) {
    return tsr_ckks_params_create(out, &p->spec);
}

/* ---- fields shared with nn/plan_legacy.c ----------------------------------------------- */

void nn_plan_write_str(tsr_writer *w, const char *s, size_t n) {
    uint8_t buf[512];
    TSR_ASSERT(n <= sizeof buf);
    memset(buf, 0, sizeof buf);
    size_t l = strnlen(s, n - 1);
    memcpy(buf, s, l);
    tsr_write_bytes(w, buf, n);
}

int nn_plan_read_str(tsr_reader *r, char *dst, size_t n) {
    tsr_read_bytes(r, dst, n);
    if (tsr_reader_status(r) != TSR_OK) return -1;
    if (!memchr(dst, 0, n)) {
        tsr_reader_fail(r, TSR_ERR_FORMAT, "malformed plan: unterminated text field");
        return -1;
    }
    return 0;
}

tsr_status nn_plan_read_spec(tsr_reader *r, uint32_t ckks_flags, tsr_ckks_param_spec *spec,
                             uint32_t *security) {
    TSR_TRY(ckks_spec_read(r, spec, 1));
    *security = tsr_read_u32(r);
    if (tsr_reader_status(r) != TSR_OK) return tsr_reader_status(r);
    if (spec->log_n < TSR_CKKS_MIN_LOG_N || spec->log_n > 16 || spec->levels < 1 ||
        spec->levels > 40 || *security != 128)
        return tsr_reader_fail(r, TSR_ERR_FORMAT,
                               "malformed plan: CKKS parameters (N = 2^%u, %u levels, security %u)",
                               spec->log_n, spec->levels, *security);
    if (spec->low_levels != 0)
        return tsr_reader_fail(r, TSR_ERR_FORMAT,
                               "malformed plan: a mixed CKKS chain (%u low levels); plans use "
                               "uniform chains",
                               spec->low_levels);
    if ((spec->flags & TSR_CKKS_ALLOW_INSECURE_PARAMETERS) &&
        !(ckks_flags & TSR_CKKS_ALLOW_INSECURE_PARAMETERS))
        return tsr_reader_fail(r, TSR_ERR_INSECURE,
                               "the plan uses CKKS parameters below 128-bit security (made for "
                               "tests); refusing it");
    return TSR_OK;
}

static void write_config(tsr_writer *w, const nn_config *c) {
    tsr_write_u32(w, (uint32_t)c->packing);
    tsr_write_u64(w, (uint64_t)c->slots);
    for (int i = 0; i < 5; i++) tsr_write_u64(w, (uint64_t)c->t[i]);
    tsr_write_u32(w, (uint32_t)c->orient);
    tsr_write_u32(w, (uint32_t)c->batch);
}

tsr_status nn_plan_read_config(tsr_reader *r, const tsr_ckks_param_spec *spec, nn_config *c) {
    memset(c, 0, sizeof *c);
    uint32_t packing = tsr_read_u32(r);
    c->slots = (int64_t)tsr_read_u64(r);
    for (int i = 0; i < 5; i++) c->t[i] = (int64_t)tsr_read_u64(r);
    c->orient = (int)tsr_read_u32(r);
    c->batch = (int)tsr_read_u32(r);
    if (tsr_reader_status(r) != TSR_OK) return tsr_reader_status(r);
    if ((packing != TSR_NN_PACK_BATCH && packing != TSR_NN_PACK_TILED) ||
        c->slots != ((int64_t)1 << (spec->log_n - 1)) || c->batch < 1 || c->batch > (1 << 20))
        return tsr_reader_fail(r, TSR_ERR_FORMAT,
                               "malformed plan: packing %u, %lld slots, batch %d", packing,
                               (long long)c->slots, c->batch);
    for (int i = 0; i < 5; i++)
        if (packing == TSR_NN_PACK_TILED ? (c->t[i] < 1 || c->t[i] > c->slots) : c->t[i] != 0)
            return tsr_reader_fail(r, TSR_ERR_FORMAT, "malformed plan: tile size %lld",
                                   (long long)c->t[i]);
    if (c->orient != 0 && c->orient != 3)
        return tsr_reader_fail(r, TSR_ERR_FORMAT, "malformed plan: orientation");
    c->packing = (tsr_nn_packing)packing;
    return TSR_OK;
}

tsr_status nn_plan_lower(const tsr_nn_model *m, const nn_config *cfg,
                         const tsr_ckks_param_spec *spec, uint32_t ckks_flags, nn_program **out) {
    *out = NULL;
    tsr_ckks_param_spec s = *spec;
    s.flags |= ckks_flags & TSR_CKKS_ALLOW_INSECURE_PARAMETERS;
    tsr_ckks_params *par = NULL;
    if (tsr_ckks_params_create(&par, &s) != TSR_OK)
        return tsr_fail_context(TSR_ERR_FORMAT, "plan: its CKKS parameters are invalid: ");
    tsr_mockup_params mp;
    tsr_mockup_params_default(&mp, cfg->slots, (int)s.levels);
    mp.track_values = 0;
    mp.rotations = TSR_ROTATIONS_COLLECT;
    tsr_backend *dry = NULL;
    tsr_status st = tsr_backend_mockup_create_for(par, &mp, &dry);
    tsr_ckks_params_free(par);
    if (st == TSR_OK) st = nn_program_build(m, cfg, dry, out);
    tsr_backend_free(dry);
    if (st != TSR_OK)
        return tsr_fail_context(TSR_ERR_FORMAT, "plan: its model cannot be lowered: ");
    return TSR_OK;
}

/* ---- writing ---------------------------------------------------------------------- */

static uint32_t plan_format(const tsr_nn_plan *p) {
    return p->format ? p->format : p->model->graph ? NN_PLAN_VERSION : 5;
}

/* The digest of the lowered program: BLAKE2b-256 of p written in format 5 without
 * predictions (the layers and steps themselves). */
static tsr_status program_digest(const tsr_nn_plan *p, uint8_t out[32]) {
    tsr_nn_plan q = *p;
    q.format = 5;
    tsr_writer w;
    tsr_writer_init_mem(&w);
    nn_plan_write_legacy(&q, &w, 0);
    if (w.err != TSR_OK) {
        tsr_status st = w.err;
        (void)tsr_writer_close(&w);
        return tsr_fail(st, "out of memory digesting a plan's program");
    }
    size_t len;
    uint8_t *buf = tsr_writer_take_buffer(&w, &len);
    (void)tsr_writer_close(&w);
    crypto_generichash(out, 32, buf, len, NULL, 0);
    tsr_free(buf);
    return TSR_OK;
}

/* The flags word of a format-6 plan for a rule set (0, NN_SIMPLIFY_V1, V2 or V3), and back. */
static uint32_t rules_flags(int rules) {
    return rules == NN_SIMPLIFY_V3 ? 7u : rules == NN_SIMPLIFY_V2 ? 3u : rules ? 1u : 0u;
}

static int flags_rules(uint32_t flags) {
    return flags == 7   ? NN_SIMPLIFY_V3
           : flags == 3 ? NN_SIMPLIFY_V2
           : flags == 1 ? NN_SIMPLIFY_V1
                        : 0;
}

/* with_predictions 0: the predicted times, memory and the optimizer's text are written as
 * zeros (the bytes the plan id hashes). */
static void write_payload(const tsr_nn_plan *p, tsr_writer *w, int with_predictions) {
    const uint32_t format = plan_format(p);
    if (format < 6) {
        tsr_nn_plan q = *p;
        q.format = format;
        nn_plan_write_legacy(&q, w, with_predictions);
        return;
    }
    const tsr_nn_model *m = p->model;
    const nn_program *g = p->prog;
    TSR_ASSERT(format == NN_PLAN_VERSION && m->graph != NULL);
    uint8_t *gb = NULL;
    size_t gl = 0;
    uint8_t digest[32];
    tsr_status st = program_digest(p, digest);
    if (st == TSR_OK) st = tsr_graph_to_bytes(m->graph, &gb, &gl);
    if (st != TSR_OK) {
        if (w->err == TSR_OK) w->err = st;
        return;
    }
    tsr_write_u32(w, format);
    ckks_spec_write(w, &p->spec, 1);
    tsr_write_u32(w, (uint32_t)p->security);
    tsr_write_f64(w, m->in_scale);
    tsr_write_f64(w, m->in_mean);
    tsr_write_f64(w, m->in_std);
    tsr_write_bytes(w, m->source_hash, 32);
    nn_plan_write_str(w, m->source, sizeof m->source);
    nn_plan_write_str(w, m->notes, sizeof m->notes);
    tsr_write_u32(w, rules_flags(m->simplified) | (uint32_t)m->out_kind << 3);
    tsr_write_bytes(w, digest, sizeof digest);
    tsr_write_u64(w, (uint64_t)gl);
    tsr_write_bytes(w, gb, gl);
    tsr_graph_bytes_free(gb);
    write_config(w, &g->cfg);
    nn_plan_write_ranges(w, p);
    tsr_write_u32(w, (uint32_t)g->n_steps);
    for (int i = 0; i < g->n_steps; i++)
        tsr_write_f64(w, with_predictions ? g->steps[i].predicted : 0.0);
    tsr_write_f64(w, with_predictions ? p->predicted_seconds : 0.0);
    tsr_write_f64(w, with_predictions ? p->predicted_mib : 0.0);
    tsr_write_f64(w, with_predictions ? p->predicted_client : 0.0);
    nn_plan_write_str(w, with_predictions ? p->choice : "", sizeof p->choice);
}

static tsr_status payload_bytes(const tsr_nn_plan *p, int with_predictions, uint8_t **buf,
                                size_t *len) {
    tsr_writer w;
    tsr_writer_init_mem(&w);
    write_payload(p, &w, with_predictions);
    if (w.err != TSR_OK) {
        tsr_status st = w.err;
        (void)tsr_writer_close(&w);
        return tsr_fail(st, "out of memory serializing a plan");
    }
    *buf = tsr_writer_take_buffer(&w, len);
    (void)tsr_writer_close(&w);
    return TSR_OK;
}

static tsr_status write_frame(const tsr_nn_plan *p, tsr_writer *w) {
    uint8_t *pay;
    size_t len;
    TSR_TRY(payload_bytes(p, 1, &pay, &len));
    /* The frame's fingerprint: the CKKS fingerprint needs the primes, so hash the spec as the
     * payload records it, after the format version (cheap; a loaded plan's parameters are
     * rebuilt and checked from it). */
    uint8_t fp[16];
    TSR_ASSERT(len >= 4 + CKKS_SPEC_BYTES(1));
    /* Plans use uniform chains (nn_plan_read_spec refuses a mixed one), whose spec is
     * exactly CKKS_SPEC_BYTES(1) bytes: the hash covers all of it. */
    TSR_ASSERT(!p->spec.low_levels);
    crypto_generichash(fp, 16, pay + 4, CKKS_SPEC_BYTES(1), NULL, 0);
    tsr_frame_begin_write(w, TSR_OBJ_PLAN, 0, fp, len);
    tsr_write_bytes(w, pay, len);
    tsr_free(pay);
    return tsr_frame_end_write(w);
}

tsr_status tsr_nn_plan_write(const tsr_nn_plan *p, FILE *fp) {
    tsr_writer w;
    tsr_writer_init_fp(&w, fp);
    return tsr_writer_finish(&w, write_frame(p, &w));
}

tsr_status tsr_nn_plan_save(const tsr_nn_plan *p, const char *path) {
    tsr_writer w;
    TSR_TRY(tsr_writer_open_file(&w, path, 0));
    tsr_status st = tsr_writer_finish(&w, write_frame(p, &w));
    if (st != TSR_OK) return tsr_fail_context(st, "writing plan '%s': ", path);
    return TSR_OK;
}

tsr_status tsr_nn_plan_to_bytes(const tsr_nn_plan *p, uint8_t **buf, size_t *len) {
    *buf = NULL;
    *len = 0;
    tsr_writer w;
    tsr_writer_init_mem(&w);
    tsr_status st = write_frame(p, &w);
    if (st == TSR_OK && w.err != TSR_OK) st = w.err;
    if (st != TSR_OK) {
        (void)tsr_writer_close(&w);
        return st;
    }
    *buf = tsr_writer_take_buffer(&w, len);
    (void)tsr_writer_close(&w);
    return TSR_OK;
}

tsr_status nn_plan_assemble(tsr_nn_model *model, nn_program *prog, const tsr_ckks_param_spec *spec,
                            int security, tsr_nn_plan **out) {
    *out = NULL;
    tsr_nn_plan *p = tsr_calloc(sizeof *p);
    if (!p) {
        tsr_nn_model_free(model);
        nn_program_free(prog);
        return tsr_fail(TSR_ERR_NOMEM, "out of memory");
    }
    p->model = model;
    p->prog = prog;
    p->spec = *spec;
    p->security = security;
    /* Format 6 stores the graph instead of the layers: only when the graph gives exactly
     * these layers (a model changed after import does not; its plan is written in format 5). */
    if (model->graph) {
        tsr_nn_model *re = NULL;
        if (nn_model_rebuild(model->graph, model->simplified, NULL, &re) != TSR_OK ||
            !nn_model_same(re, model)) {
            tsr_clear_error();
            tsr_graph_free(model->graph);
            model->graph = NULL;
        }
        tsr_nn_model_free(re);
    }
    tsr_status st = nn_plan_init_ranges(p);
    if (st != TSR_OK) {
        tsr_nn_plan_free(p);
        return st;
    }
    *out = p;
    return TSR_OK;
}

/* The plan id: a hash of the payload without the predictions, which depend on the cost
 * profile and not on what the plan computes. */
tsr_status nn_plan_seal(tsr_nn_plan *p) {
    uint8_t *pay;
    size_t len;
    TSR_TRY(payload_bytes(p, 0, &pay, &len));
    crypto_generichash(p->id, sizeof p->id, pay, len, NULL, 0);
    tsr_free(pay);
    return TSR_OK;
}

/* ---- reading -------------------------------------------------------------------------- */

#define RFAIL(...) tsr_reader_fail(r, TSR_ERR_FORMAT, "malformed plan: " __VA_ARGS__)

/* Format 6, after its version: the graph and the choices, then the deterministic rebuild. */
static tsr_status read_v6(tsr_reader *r, uint32_t ckks_flags, tsr_nn_plan **out) {
    tsr_ckks_param_spec spec;
    uint32_t security;
    TSR_TRY(nn_plan_read_spec(r, ckks_flags, &spec, &security));
    double pre[3];
    uint8_t hash[32], digest[32], got[32];
    char source[256], notes[512];
    for (int i = 0; i < 3; i++) pre[i] = tsr_read_f64(r);
    tsr_read_bytes(r, hash, sizeof hash);
    if (nn_plan_read_str(r, source, sizeof source) || nn_plan_read_str(r, notes, sizeof notes))
        return tsr_reader_status(r);
    uint32_t flags = tsr_read_u32(r);
    tsr_read_bytes(r, digest, sizeof digest);
    uint64_t glen = tsr_read_u64(r);
    if (tsr_reader_status(r) != TSR_OK) return tsr_reader_status(r);
    /* bits past the known ones (rules 0-2, output kind 3-4): a later rule set or option (V3
     * added bit 2 to V2's 3), not corruption */
    if (flags & ~0x1fu)
        return tsr_reader_fail(r, TSR_ERR_VERSION,
                               "plan written with simplifier rules or options (flags %u) this "
                               "build does not know: use a newer tessera",
                               flags);
    if (!isfinite(pre[0]) || pre[0] == 0 || !isfinite(pre[1]) || !(pre[2] > 0) ||
        !isfinite(pre[2]) || ((flags & 7) && !flags_rules(flags & 7)) || flags >> 3 > 2 ||
        glen > r->mem_len - r->mem_pos)
        return RFAIL("preprocessing, flags %u or a graph of %llu bytes", flags,
                     (unsigned long long)glen);
    tsr_graph *graph = NULL;
    tsr_status gs = tsr_graph_from_bytes(&graph, r->mem + r->mem_pos, (size_t)glen);
    if (gs != TSR_OK) /* keeps the status: a graph wire version, memory */
        return tsr_reader_fail(r, gs, "plan: %s", tsr_last_error());
    r->mem_pos += (size_t)glen;
    nn_config cfg;
    tsr_nn_model *m = NULL;
    nn_program *prog = NULL;
    tsr_status st = nn_plan_read_config(r, &spec, &cfg);
    /* what the lowering may build is bounded by the file's size, as the layered formats'
     * weights were by their payload */
    uint64_t cap = (uint64_t)64 * r->mem_len;
    nn_budget budget = { .max_weights = cap > MIN_WEIGHT_BUDGET ? (int64_t)cap : MIN_WEIGHT_BUDGET,
                         .max_layers = NN_PLAN_MAX_LAYERS };
    int rules = flags_rules(flags & 7);
    if (st == TSR_OK && (st = nn_model_rebuild(graph, rules, &budget, &m)) != TSR_OK &&
        !budget.over)
        st = tsr_fail_context(TSR_ERR_FORMAT, "plan: its graph cannot be lowered: ");
    if (st == TSR_OK) {
        m->graph = graph;
        graph = NULL;
        m->in_scale = pre[0];
        m->in_mean = pre[1];
        m->in_std = pre[2];
        m->out_kind = (int)(flags >> 3);
        memcpy(m->source_hash, hash, sizeof hash);
        memcpy(m->source, source, sizeof source);
        memcpy(m->notes, notes, sizeof notes);
        st = nn_plan_lower(m, &cfg, &spec, ckks_flags, &prog);
    }
    tsr_graph_free(graph);
    tsr_nn_plan *p = NULL;
    if (st == TSR_OK && !(p = tsr_calloc(sizeof *p))) st = tsr_fail(TSR_ERR_NOMEM, "out of memory");
    if (st != TSR_OK) {
        tsr_nn_model_free(m);
        nn_program_free(prog);
        return st;
    }
    p->model = m;
    p->prog = prog;
    p->spec = spec; /* with the file's flags */
    p->security = (int)security;
    p->format = NN_PLAN_VERSION;
    st = nn_plan_read_ranges(r, p, m->n_layers);
    uint32_t ns = st == TSR_OK ? tsr_read_u32(r) : 0;
    if (st == TSR_OK && (st = tsr_reader_status(r)) == TSR_OK && ns != (uint32_t)prog->n_steps)
        st = RFAIL("%u step predictions for the %d steps of its program", ns, prog->n_steps);
    for (uint32_t i = 0; st == TSR_OK && i < ns; i++) prog->steps[i].predicted = tsr_read_f64(r);
    p->predicted_seconds = tsr_read_f64(r);
    p->predicted_mib = tsr_read_f64(r);
    p->predicted_client = tsr_read_f64(r);
    if (st == TSR_OK && nn_plan_read_str(r, p->choice, sizeof p->choice) == 0 &&
        (st = tsr_reader_status(r)) == TSR_OK) {
        int bad = r->mem_pos != r->mem_len;
        for (int i = 0; i < prog->n_steps; i++)
            bad |= !(prog->steps[i].predicted >= 0) || !isfinite(prog->steps[i].predicted);
        const double tot[3] = { p->predicted_seconds, p->predicted_mib, p->predicted_client };
        for (int i = 0; i < 3; i++) bad |= !(tot[i] >= 0) || !isfinite(tot[i]);
        if (bad) st = RFAIL("predictions, or bytes after the end");
    }
    if (st == TSR_OK) st = tsr_reader_status(r);
    if (st == TSR_OK && (st = program_digest(p, got)) == TSR_OK &&
        sodium_memcmp(got, digest, sizeof got) != 0)
        st = tsr_fail(TSR_ERR_FORMAT, "plan: this build lowers its graph to another program than "
                                      "the one it was written with; compile the model again");
    if (st == TSR_OK) st = nn_plan_seal(p);
    if (st != TSR_OK) {
        tsr_nn_plan_free(p);
        return st;
    }
    *out = p;
    return TSR_OK;
}

static tsr_status read_plan(tsr_reader *rr, uint32_t ckks_flags, tsr_nn_plan **out) {
    *out = NULL;
    tsr_reader_set_what(rr, "inference plan");
    tsr_frame_info info;
    TSR_TRY(tsr_frame_begin_read(rr, TSR_OBJ_PLAN, MAX_PLAN_PAYLOAD, &info));
    /* tsr_frame_begin_read has checked the declared length against what the input holds; the
     * payload is kept whole (the graph is read in place from it). */
    const uint64_t plen = info.payload_len;
    uint8_t *payload = tsr_alloc(plen ? (size_t)plen : 1);
    if (!payload)
        return tsr_fail(TSR_ERR_NOMEM, "out of memory reading a plan of %llu bytes",
                        (unsigned long long)plen);
    tsr_read_bytes(rr, payload, (size_t)plen);
    tsr_status st = tsr_frame_end_read(rr);
    tsr_reader rd, *r = &rd;
    tsr_reader_init_mem(r, payload, (size_t)plen);
    tsr_reader_set_what(r, "inference plan");
    uint32_t version = 0;
    if (st == TSR_OK) {
        version = tsr_read_u32(r);
        st = tsr_reader_status(r);
    }
    if (st == TSR_OK && (version < NN_PLAN_VERSION_MIN || version > NN_PLAN_VERSION))
        st = tsr_reader_fail(r, TSR_ERR_VERSION,
                             "plan format version %u is not supported (this build reads %d to "
                             "%d); compile the model again",
                             version, NN_PLAN_VERSION_MIN, NN_PLAN_VERSION);
    if (st == TSR_OK)
        st = version == NN_PLAN_VERSION ? read_v6(r, ckks_flags, out)
                                        : nn_plan_read_legacy(r, version, plen, ckks_flags, out);
    tsr_free(payload);
    return st;
}

tsr_status tsr_nn_plan_from_bytes(tsr_nn_plan **out, const uint8_t *buf, size_t len,
                                  uint32_t ckks_flags) {
    *out = NULL;
    tsr_reader r;
    tsr_reader_init_mem(&r, buf, len);
    tsr_status st = read_plan(&r, ckks_flags, out);
    if (st == TSR_OK && r.mem_pos != r.mem_len) {
        tsr_nn_plan_free(*out);
        *out = NULL;
        return tsr_fail(TSR_ERR_FORMAT, "malformed plan: %zu bytes after the frame",
                        r.mem_len - r.mem_pos);
    }
    return st;
}

tsr_status tsr_nn_plan_load(tsr_nn_plan **out, const char *path, uint32_t ckks_flags) {
    *out = NULL;
    tsr_reader r;
    TSR_TRY(tsr_reader_open_file(&r, path));
    tsr_status st = read_plan(&r, ckks_flags, out);
    if (st == TSR_OK) {
        uint8_t extra;
        if (fread(&extra, 1, 1, r.fp) == 1) {
            tsr_nn_plan_free(*out);
            *out = NULL;
            st = tsr_fail(TSR_ERR_FORMAT, "malformed plan: data after the frame");
        }
    }
    tsr_status c = tsr_reader_close(&r);
    if (st == TSR_OK && c != TSR_OK) {
        tsr_nn_plan_free(*out);
        *out = NULL;
        st = c;
    }
    if (st != TSR_OK) return tsr_fail_context(st, "plan '%s': ", path);
    return TSR_OK;
}

/* ---- summary ---------------------------------------------------------------------------- */

void tsr_nn_plan_print(const tsr_nn_plan *p, FILE *fp) {
    const tsr_ckks_param_spec *s = &p->spec;
    const nn_program *g = p->prog;
    fprintf(fp, "plan for %s: batch %d, %s packing",
            p->model->source[0] ? p->model->source : "model", g->cfg.batch,
            g->cfg.packing == TSR_NN_PACK_BATCH ? "batch (one sample per slot)" : "tiled");
    if (g->cfg.packing == TSR_NN_PACK_TILED)
        fprintf(fp, " t = [%lld, %lld, %lld, %lld, %lld] orientation %d", (long long)g->cfg.t[0],
                (long long)g->cfg.t[1], (long long)g->cfg.t[2], (long long)g->cfg.t[3],
                (long long)g->cfg.t[4], g->cfg.orient);
    fprintf(fp,
            "\nCKKS: N = 2^%u (%lld slots), %u levels, scale 2^%u, q0 %u bits, %u x %u-bit "
            "special primes, dnum %u, %d-bit security%s\n",
            s->log_n, (long long)g->cfg.slots, s->levels, s->scale_bits, s->first_prime_bits,
            s->special_primes, s->special_prime_bits, s->dnum, p->security,
            (s->flags & TSR_CKKS_ALLOW_INSECURE_PARAMETERS) ? " (INSECURE test parameters)" : "");
    fprintf(fp, "depth %d; keys: %s%lld rotations\n", g->depth,
            g->needs_relin ? "relinearization + " : "", (long long)g->n_rot);
    /* ct*pt+c: products by plaintexts and by constants (mul_plain + mul_const) */
    fprintf(fp, "%-4s %-10s %-16s %-5s %-34s %-34s %7s %7s %7s %9s\n", "step", "op", "layer",
            "level", "input", "output", "rot", "ct*ct", "ct*pt+c", "predicted");
    for (int i = 0; i < g->n_steps; i++) {
        const nn_step *st = &g->steps[i];
        char a[200], b[200], lv[16];
        tsr_tile_shape_format(&st->in_shape, a, sizeof a);
        tsr_tile_shape_format(&st->out_shape, b, sizeof b);
        snprintf(lv, sizeof lv, "%d>%d", st->level_in, st->level_out);
        fprintf(fp, "%-4d %-10s %-16.16s %-5s %-34.34s %-34.34s %7llu %7llu %7llu %8.3fs\n", i,
                nn_op_name(st->op), st->layer >= 0 ? p->model->layers[st->layer].name : "-", lv, a,
                b, (unsigned long long)st->counts.rotations, (unsigned long long)st->counts.mul_ct,
                (unsigned long long)(st->counts.mul_plain + st->counts.mul_const), st->predicted);
    }
    fprintf(fp,
            "predicted: %.3f s per batch of %d (%.2f ms per sample), %.0f MiB server memory, "
            "client %.3f s\n",
            p->predicted_seconds, g->cfg.batch, 1000 * p->predicted_seconds / g->cfg.batch,
            p->predicted_mib, p->predicted_client);
    nn_plan_print_ranges(p, fp);
    if (p->choice[0]) fprintf(fp, "optimizer: %s\n", p->choice);
}
