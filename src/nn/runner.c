/*
 * nn/runner.c - running a plan: keys for it, packing and encrypting inputs,
 * preparing the weights on a backend, running the steps with per-step time
 * and operation counts, decrypting and unpacking outputs, and ciphertext
 * files bound to a plan.
 */
#include "nn/nn_internal.h"

#include "core/alloc.h"
#include "core/error.h"
#include "core/io.h"
#include "core/progress.h"
#include "tile/tile_internal.h"

#ifdef _OPENMP
#include <omp.h>
#endif
#include <math.h>
#include <string.h>

/*
 * Ciphertext-set header frame payload: u32 version (CT_SET_VERSION), plan
 * id[32], key-set id[32], u32 role, u32 samples; then the tile tensor.
 * Version 2 added the key-set id.
 */
#define CT_SET_VERSION 2
#define CT_SET_HEADER  (4 + 32 + TSR_CKKS_KEY_ID_BYTES + 4 + 4)

/* ---- keys --------------------------------------------------------------------------- */

static tsr_status check_params(const tsr_nn_plan *p, const tsr_ckks_params *params) {
    tsr_ckks_param_spec s;
    tsr_ckks_params_spec(params, &s);
    const tsr_ckks_param_spec *w = &p->spec;
    if (s.log_n != w->log_n || s.first_prime_bits != w->first_prime_bits ||
        s.scale_bits != w->scale_bits || s.levels != w->levels ||
        s.special_primes != w->special_primes || s.special_prime_bits != w->special_prime_bits ||
        s.dnum != w->dnum || s.secret != w->secret || s.hamming_weight != w->hamming_weight)
        return tsr_fail(TSR_ERR_MISMATCH,
                        "the CKKS parameters (N = 2^%u, %u levels, scale 2^%u) are not the "
                        "plan's (N = 2^%u, %u levels, scale 2^%u)",
                        s.log_n, s.levels, s.scale_bits, w->log_n, w->levels, w->scale_bits);
    return TSR_OK;
}

tsr_status tsr_nn_keygen(const tsr_nn_plan *p, tsr_ckks_params *params, tsr_ckks_secret_key **sk,
                         tsr_ckks_relin_key **rk, tsr_ckks_galois_keys **gk) {
    *sk = NULL;
    *rk = NULL;
    *gk = NULL;
    TSR_TRY(check_params(p, params));
    TSR_TRY(tsr_ckks_secret_key_create(sk, params));
    tsr_status st = TSR_OK;
    if (p->prog->needs_relin) st = tsr_ckks_relin_key_create(rk, *sk);
    if (st == TSR_OK && p->prog->n_rot > 0) {
        int *steps = tsr_alloc((size_t)p->prog->n_rot * sizeof *steps);
        if (!steps) {
            st = tsr_fail(TSR_ERR_NOMEM, "out of memory");
        } else {
            for (int64_t i = 0; i < p->prog->n_rot; i++) steps[i] = (int)p->prog->rot[i];
            st = tsr_ckks_galois_keys_create(gk, *sk, steps, (size_t)p->prog->n_rot, 0);
            tsr_free(steps);
        }
    }
    if (st != TSR_OK) {
        tsr_ckks_secret_key_free(*sk);
        tsr_ckks_relin_key_free(*rk);
        tsr_ckks_galois_keys_free(*gk);
        *sk = NULL;
        *rk = NULL;
        *gk = NULL;
    }
    return st;
}

tsr_status tsr_nn_check_keys(const tsr_nn_plan *p, const tsr_ckks_relin_key *rk,
                             const tsr_ckks_galois_keys *gk) {
    if (p->prog->needs_relin && !rk)
        return tsr_fail(TSR_ERR_KEY_MISSING,
                        "the plan multiplies ciphertexts but the evaluation keys have no "
                        "relinearization key: they were generated for another plan (run tessera "
                        "keygen with this plan)");
    int64_t missing = 0, first = 0;
    for (int64_t i = 0; i < p->prog->n_rot; i++)
        if (!gk || !tsr_ckks_galois_keys_has_rotation(gk, (int)p->prog->rot[i])) {
            if (!missing) first = p->prog->rot[i];
            missing++;
        }
    if (missing)
        return tsr_fail(TSR_ERR_KEY_MISSING,
                        "the evaluation keys lack %lld of the plan's %lld rotation keys (first: "
                        "step %lld): they were generated for another plan (run tessera keygen "
                        "with this plan)",
                        (long long)missing, (long long)p->prog->n_rot, (long long)first);
    return TSR_OK;
}

/* ---- encryption and decryption ------------------------------------------------------------ */

static tsr_status check_backend(const tsr_nn_plan *p, const tsr_backend *be) {
    if (tsr_backend_slots(be) != p->prog->cfg.slots ||
        tsr_backend_top_level(be) != p->prog->top_level)
        return tsr_fail(TSR_ERR_MISMATCH,
                        "the %s backend has %lld slots and %d levels; the plan needs %lld slots "
                        "and %d levels (wrong keys or parameters for this plan)",
                        tsr_backend_name(be), (long long)tsr_backend_slots(be),
                        tsr_backend_top_level(be), (long long)p->prog->cfg.slots,
                        p->prog->top_level);
    return TSR_OK;
}

tsr_status tsr_nn_encrypt(const tsr_nn_plan *p, tsr_backend *be, const double *x, int n,
                          tsr_tile **out) {
    *out = NULL;
    TSR_TRY(check_backend(p, be));
    if (n < 1 || n > p->prog->cfg.batch)
        return tsr_fail(TSR_ERR_INVALID_ARG,
                        "%d samples do not fit the plan: it takes 1 to %d at a time (compile "
                        "with a larger --batch)",
                        n, p->prog->cfg.batch);
    int64_t ni = tsr_nn_model_input_size(p->model);
    for (int64_t i = 0; i < (int64_t)n * ni; i++)
        if (!isfinite(x[i]))
            return tsr_fail(TSR_ERR_INVALID_ARG, "input value %lld is not finite", (long long)i);
    double *dense;
    TSR_TRY(nn_pack_input(p->model, p->prog, x, n, &dense));
    const tsr_tile_shape *shape = &p->prog->values[0].shape;
    int64_t nt = tsr_tile_shape_num_tiles(shape), slots = p->prog->cfg.slots;
    if (nt < 4) {
        tsr_status st = tsr_tile_encrypt(be, shape, dense, -1, 0, out);
        tsr_free(dense);
        return st;
    }
    /* Many ciphertexts (one sample per slot): encrypt them on OpenMP threads. */
    double *slotv = tsr_alloc((size_t)(nt * slots) * sizeof *slotv);
    tsr_tile *t = NULL;
    tsr_status st = slotv ? tsr_tile_pack(shape, dense, slotv)
                          : tsr_fail(TSR_ERR_NOMEM, "out of memory packing the input");
    tsr_free(dense);
    if (st == TSR_OK) st = tl_new(be, shape, 1, &t);
    int stop = 0;
    tsr_status first = TSR_OK;
    char msg[512] = "";
    int top = tsr_backend_top_level(be);
    double scale = tsr_backend_scale(be, top);
    tsr_progress pr;
    tsr_progress_begin(&pr, "encrypting", (uint64_t)nt, "ct");
    uint64_t done = 0;
#ifdef _OPENMP
#pragma omp parallel for schedule(dynamic, 1) if (st == TSR_OK)
#endif
    for (int64_t i = 0; i < nt; i++) {
        if (st != TSR_OK || __atomic_load_n(&stop, __ATOMIC_RELAXED)) continue;
        tsr_status s = tsr_bvec_encrypt(be, slotv + i * slots, top, scale, &t->v[i]);
        uint64_t d = __atomic_add_fetch(&done, 1, __ATOMIC_RELAXED);
#ifdef _OPENMP
        if (omp_get_thread_num() == 0)
#endif
            tsr_progress_update(&pr, d, NULL);
        if (s != TSR_OK) {
#ifdef _OPENMP
#pragma omp critical(nn_encrypt)
#endif
            if (!stop) {
                first = s;
                snprintf(msg, sizeof msg, "%s", tsr_last_error());
                __atomic_store_n(&stop, 1, __ATOMIC_RELAXED);
            }
        }
    }
    tsr_free(slotv);
    if (st == TSR_OK && !stop) tsr_progress_end(&pr, NULL);
    if (st == TSR_OK && stop) st = tsr_fail(first, "%s", msg);
    if (st != TSR_OK) {
        tsr_tile_free(t);
        return st;
    }
    *out = t;
    return TSR_OK;
}

tsr_status tsr_nn_decrypt(const tsr_nn_plan *p, const tsr_tile *t, int n, double *out) {
    const nn_value *ov = &p->prog->values[p->prog->output];
    if (n < 1 || n > p->prog->cfg.batch)
        return tsr_fail(TSR_ERR_INVALID_ARG, "%d samples for a plan of batch %d", n,
                        p->prog->cfg.batch);
    if (!tsr_tile_shape_equal(tsr_tile_get_shape(t), &ov->shape))
        return tsr_fail(TSR_ERR_MISMATCH,
                        "the encrypted output has shape %s, the plan produces %s (another plan's "
                        "output?)",
                        tl_fmt(tsr_tile_get_shape(t)), tl_fmt2(&ov->shape));
    int64_t ne = tsr_tile_shape_num_elements(&ov->shape);
    double *dense = tsr_alloc((size_t)ne * sizeof *dense);
    if (!dense) return tsr_fail(TSR_ERR_NOMEM, "out of memory");
    tsr_status st = tsr_tile_decrypt(t, dense);
    if (st == TSR_OK) nn_unpack_output(p->model, p->prog, dense, n, out);
    tsr_free(dense);
    return st;
}

int tsr_nn_check_outputs(const tsr_nn_plan *p, const tsr_tile *t, const double *out, int n,
                         uint8_t *valid, double *headroom) {
    TSR_REQUIRE(p && t && (out || n == 0), "tsr_nn_check_outputs: NULL argument");
    double bits =
        tsr_backend_headroom_bits(tsr_tile_backend(t), tsr_tile_level(t), tsr_tile_scale(t));
    double room = exp2(bits);
    if (headroom) *headroom = room;
    int64_t k = tsr_nn_model_output_size(p->model);
    int bad = 0;
    for (int i = 0; i < n; i++) {
        int ok = 1;
        for (int64_t j = 0; j < k; j++)
            if (!(fabs(out[(int64_t)i * k + j]) < room)) ok = 0; /* also NaN */
        if (valid) valid[i] = (uint8_t)ok;
        bad += !ok;
    }
    return bad;
}

/* ---- the runner ---------------------------------------------------------------------------- */

struct tsr_nn_runner {
    const tsr_nn_plan *plan;
    tsr_backend *user; /* the backend given at creation */
    tsr_backend *be;   /* timing wrapper around it */
    nn_prep **prep;
    int *last_use; /* per value: last step reading it */
    double prepare_seconds;
};

void tsr_nn_runner_free(tsr_nn_runner *r) {
    if (!r) return;
    for (int i = 0; r->prep && i < r->plan->prog->n_steps; i++) nn_prep_free(r->prep[i]);
    tsr_free(r->prep);
    tsr_free(r->last_use);
    tsr_backend_free(r->be);
    tsr_free(r);
}

tsr_backend *tsr_nn_runner_backend(tsr_nn_runner *r) {
    return r->be;
}

tsr_status tsr_nn_runner_create(const tsr_nn_plan *p, tsr_backend *be, tsr_nn_runner **out) {
    *out = NULL;
    TSR_TRY(check_backend(p, be));
    const nn_program *g = p->prog;
    if (g->n_rot) {
        tsr_status st = tsr_backend_declare_rotations(be, g->rot, (size_t)g->n_rot);
        if (st != TSR_OK)
            return tsr_fail_context(st, "the plan needs %lld rotation keys: ", (long long)g->n_rot);
    }
    tsr_nn_runner *r = tsr_calloc(sizeof *r);
    if (!r) return tsr_fail(TSR_ERR_NOMEM, "out of memory");
    r->plan = p;
    r->user = be;
    r->prep = tsr_calloc_array((size_t)g->n_steps, sizeof *r->prep);
    r->last_use = tsr_calloc_array((size_t)g->n_values, sizeof *r->last_use);
    tsr_status st = (r->prep && r->last_use) ? TSR_OK : tsr_fail(TSR_ERR_NOMEM, "out of memory");
    if (st == TSR_OK) st = nn_timing_backend_create(be, &r->be);
    for (int v = 0; st == TSR_OK && v < g->n_values; v++) r->last_use[v] = -1;
    for (int i = 0; st == TSR_OK && i < g->n_steps; i++)
        for (int k = 0; k < 2; k++)
            if (g->steps[i].in[k] >= 0) r->last_use[g->steps[i].in[k]] = i;
    if (st == TSR_OK) r->last_use[g->output] = g->n_steps;
    double t0 = tsr_now();
    tsr_progress pr;
    tsr_progress_begin(&pr, "preparing weights", (uint64_t)g->n_steps, "step");
    for (int i = 0; st == TSR_OK && i < g->n_steps; i++) {
        st = nn_prepare_step(p->model, g, &g->steps[i], r->be, &r->prep[i]);
        tsr_progress_update(&pr, (uint64_t)i + 1, NULL);
    }
    if (st == TSR_OK) tsr_progress_end(&pr, NULL);
    r->prepare_seconds = tsr_now() - t0;
    if (st != TSR_OK) {
        tsr_nn_runner_free(r);
        return st;
    }
    *out = r;
    return TSR_OK;
}

void tsr_nn_stats_free(tsr_nn_stats *s) {
    if (!s) return;
    tsr_free(s->steps);
    memset(s, 0, sizeof *s);
}

tsr_status tsr_nn_run(tsr_nn_runner *r, const tsr_tile *in, tsr_tile **out, tsr_nn_stats *stats) {
    *out = NULL;
    const tsr_nn_plan *p = r->plan;
    const nn_program *g = p->prog;
    if (stats) memset(stats, 0, sizeof *stats);
    if (!tsr_tile_is_encrypted(in))
        return tsr_fail(TSR_ERR_INVALID_ARG, "the input must be encrypted");
    if (!tsr_tile_shape_equal(tsr_tile_get_shape(in), &g->values[0].shape))
        return tsr_fail(TSR_ERR_MISMATCH,
                        "the encrypted input has shape %s but the plan expects %s (encrypted for "
                        "another plan?)",
                        tl_fmt(tsr_tile_get_shape(in)), tl_fmt2(&g->values[0].shape));
    if (tsr_tile_level(in) != g->top_level)
        return tsr_fail(TSR_ERR_MISMATCH,
                        "the encrypted input is at level %d, the plan starts at %d",
                        tsr_tile_level(in), g->top_level);
    tsr_backend *be = r->be;
    if (in->be != be && in->be != r->user) {
        /* Another backend of the same kind and parameters (e.g. the client's): its
         * vectors have the same representation and are copied below. */
        uint8_t f1[16], f2[16];
        tsr_backend_fingerprint(in->be, f1);
        tsr_backend_fingerprint(r->user, f2);
        if (memcmp(f1, f2, 16) != 0 || strcmp(tsr_backend_name(in->be), tsr_backend_name(r->user)))
            return tsr_fail(TSR_ERR_MISMATCH,
                            "the input lives on a %s backend with other parameters than the "
                            "runner's",
                            tsr_backend_name(in->be));
    }
    tsr_tile **vals = tsr_calloc_array((size_t)g->n_values, sizeof *vals);
    if (!vals) return tsr_fail(TSR_ERR_NOMEM, "out of memory");
    tsr_status st = TSR_OK;
    if (stats) {
        stats->steps = tsr_calloc_array((size_t)g->n_steps, sizeof *stats->steps);
        if (!stats->steps) st = tsr_fail(TSR_ERR_NOMEM, "out of memory");
        stats->n_steps = g->n_steps;
    }
    /* Adopt the input onto the timing wrapper (same vectors, one copy each). */
    if (st == TSR_OK) st = tl_new(be, &in->shape, 1, &vals[0]);
    for (int64_t i = 0; st == TSR_OK && i < in->ntiles; i++)
        st = tsr_bvec_copy(be, in->v[i], &vals[0]->v[i]);
    double sec[TSR_NN_OP_COUNT_];
    nn_timing_get(be, sec, 1);
    tsr_backend_reset_counts(be);
    uint64_t peak = 0;
    double t_all = tsr_now();
    tsr_progress pr;
    tsr_progress_begin(&pr, "encrypted inference", (uint64_t)g->n_steps, "step");
    for (int i = 0; st == TSR_OK && i < g->n_steps; i++) {
        const nn_step *s = &g->steps[i];
        tsr_backend_reset_counts(be);
        double t0 = tsr_now();
        st = nn_apply_step(p->model, g, s, r->prep[i], vals);
        double dt = tsr_now() - t0;
        if (st != TSR_OK) break;
        tsr_backend_counts c;
        tsr_backend_get_counts(be, &c);
        if (c.peak_vectors > peak) peak = c.peak_vectors;
        nn_timing_get(be, sec, 1);
        if (stats) {
            tsr_nn_step_stats *ss = &stats->steps[i];
            const char *nm = s->layer >= 0 ? p->model->layers[s->layer].name : "(layout)";
            snprintf(ss->name, sizeof ss->name, "%s", nm);
            snprintf(ss->kind, sizeof ss->kind, "%s", nn_op_name(s->op));
            tsr_tile_shape_format(&s->in_shape, ss->in_shape, sizeof ss->in_shape);
            tsr_tile_shape_format(&s->out_shape, ss->out_shape, sizeof ss->out_shape);
            ss->level_in = s->level_in;
            ss->level_out = s->level_out;
            ss->seconds = dt;
            ss->predicted = s->predicted;
            ss->ops = c;
            for (int k = 0; k < TSR_NN_OP_COUNT_; k++) ss->op_seconds[k] = sec[k];
        }
        for (int v = 0; v < g->n_values; v++)
            if (vals[v] && r->last_use[v] <= i && v != s->out) {
                tsr_tile_free(vals[v]);
                vals[v] = NULL;
            }
        tsr_progress_update(&pr, (uint64_t)i + 1, "%s", nn_op_name(s->op));
    }
    double total = tsr_now() - t_all;
    if (st == TSR_OK) tsr_progress_end(&pr, NULL);
    if (st == TSR_OK) {
        *out = vals[g->output];
        vals[g->output] = NULL;
        if (tsr_tile_level(*out) != g->steps[g->n_steps - 1].level_out) {
            tsr_tile_free(*out);
            *out = NULL;
            st = tsr_fail(TSR_ERR_INTERNAL, "the output arrived at an unexpected level");
        }
    }
    for (int v = 0; v < g->n_values; v++) tsr_tile_free(vals[v]);
    tsr_free(vals);
    if (st != TSR_OK) {
        if (stats) tsr_nn_stats_free(stats);
        return st;
    }
    if (stats) {
        stats->seconds = total;
        stats->predicted = p->predicted_seconds;
        stats->prepare_seconds = r->prepare_seconds;
        stats->peak_vectors = peak;
        stats->peak_rss_mib = nn_peak_rss_mib();
        stats->predicted_mib = p->predicted_mib;
        stats->samples = g->cfg.batch;
        stats->threads = tsr_get_num_threads();
        snprintf(stats->backend, sizeof stats->backend, "%s", tsr_backend_name(r->user));
    }
    return TSR_OK;
}

/* ---- ciphertext files ---------------------------------------------------------------- */

static const tsr_tile_shape *role_shape(const tsr_nn_plan *p, tsr_nn_ct_role role) {
    return role == TSR_NN_CT_INPUT ? &p->prog->values[0].shape
                                   : &p->prog->values[p->prog->output].shape;
}

tsr_status tsr_nn_ct_write(const tsr_nn_plan *p, const tsr_tile *t, tsr_nn_ct_role role, int n,
                           const uint8_t key_id[TSR_CKKS_KEY_ID_BYTES], FILE *fp) {
    TSR_REQUIRE(p && t && key_id && fp, "tsr_nn_ct_write: NULL argument");
    if (role != TSR_NN_CT_INPUT && role != TSR_NN_CT_OUTPUT)
        return tsr_fail(TSR_ERR_INVALID_ARG, "unknown ciphertext role %d", (int)role);
    if (n < 1 || n > p->prog->cfg.batch)
        return tsr_fail(TSR_ERR_INVALID_ARG, "%d samples for a plan of batch %d", n,
                        p->prog->cfg.batch);
    if (!tsr_tile_shape_equal(tsr_tile_get_shape(t), role_shape(p, role)))
        return tsr_fail(TSR_ERR_MISMATCH, "the tile tensor %s is not the plan's %s %s",
                        tl_fmt(tsr_tile_get_shape(t)), role == TSR_NN_CT_INPUT ? "input" : "output",
                        tl_fmt2(role_shape(p, role)));
    tsr_writer w;
    tsr_writer_init_fp(&w, fp);
    uint8_t fpr[TSR_FINGERPRINT_SIZE];
    tsr_backend_fingerprint(tsr_tile_backend(t), fpr);
    tsr_frame_begin_write(&w, TSR_OBJ_CIPHERTEXT_SET, 0, fpr, CT_SET_HEADER);
    tsr_write_u32(&w, CT_SET_VERSION);
    tsr_write_bytes(&w, p->id, 32);
    tsr_write_bytes(&w, key_id, TSR_CKKS_KEY_ID_BYTES);
    tsr_write_u32(&w, (uint32_t)role);
    tsr_write_u32(&w, (uint32_t)n);
    tsr_status st = tsr_writer_finish(&w, tsr_frame_end_write(&w));
    if (st == TSR_OK) st = tsr_tile_write(t, fp);
    return st;
}

tsr_status tsr_nn_ct_save(const tsr_nn_plan *p, const tsr_tile *t, tsr_nn_ct_role role, int n,
                          const uint8_t key_id[TSR_CKKS_KEY_ID_BYTES], const char *path) {
    TSR_REQUIRE(p && t && key_id && path, "tsr_nn_ct_save: NULL argument");
    tsr_outset out;
    FILE *fp;
    tsr_outset_init(&out);
    tsr_status st = tsr_outset_open(&out, path, 0, &fp);
    if (st == TSR_OK) st = tsr_nn_ct_write(p, t, role, n, key_id, fp);
    if (st == TSR_OK) st = tsr_outset_commit(&out);
    tsr_outset_abort(&out);
    if (st != TSR_OK) return tsr_fail_context(st, "writing '%s': ", path);
    return TSR_OK;
}

tsr_status tsr_nn_ct_load(const tsr_nn_plan *p, tsr_backend *be, tsr_nn_ct_role role,
                          const char *path, const uint8_t *key_id, tsr_tile **out, int *n) {
    TSR_REQUIRE(p && be && path && out && n, "tsr_nn_ct_load: NULL argument");
    *out = NULL;
    *n = 0;
    tsr_reader r;
    TSR_TRY(tsr_reader_open_file(&r, path));
    tsr_reader_set_what(&r, "encrypted data");
    tsr_frame_info info;
    tsr_status st = tsr_frame_begin_read(&r, TSR_OBJ_CIPHERTEXT_SET, 128, &info);
    uint32_t version = 0, rl = 0, cnt = 0;
    uint8_t id[32], kid[TSR_CKKS_KEY_ID_BYTES];
    if (st == TSR_OK) {
        version = tsr_read_u32(&r);
        st = tsr_reader_status(&r);
        if (st == TSR_OK && version != CT_SET_VERSION)
            st = tsr_reader_fail(&r, TSR_ERR_VERSION,
                                 "encrypted data format version %u is not supported (this build "
                                 "reads version %d): encrypt the inputs again with this version "
                                 "of tessera",
                                 version, CT_SET_VERSION);
    }
    if (st == TSR_OK) {
        tsr_read_bytes(&r, id, 32);
        tsr_read_bytes(&r, kid, sizeof kid);
        rl = tsr_read_u32(&r);
        cnt = tsr_read_u32(&r);
        st = tsr_frame_end_read(&r);
    }
    if (st == TSR_OK && memcmp(id, p->id, 32) != 0)
        st = tsr_fail(TSR_ERR_MISMATCH,
                      "the data was encrypted for another plan (or with another compile of the "
                      "model); encrypt it again with this plan");
    if (st == TSR_OK && key_id && memcmp(kid, key_id, sizeof kid) != 0) {
        char a[9], b[9]; /* the ids' first 4 bytes, for the message */
        for (int i = 0; i < 4; i++) {
            snprintf(a + 2 * i, 3, "%02x", kid[i]);
            snprintf(b + 2 * i, 3, "%02x", key_id[i]);
        }
        st = tsr_fail(TSR_ERR_MISMATCH,
                      role == TSR_NN_CT_INPUT
                          ? "these ciphertexts were encrypted under another key set (%s..., "
                            "another keygen run) than these evaluation keys (%s...): running them "
                            "would decrypt to garbage; encrypt with the secret or public key made "
                            "by the same keygen run as the evaluation keys"
                          : "these encrypted outputs belong to another key set (%s..., another "
                            "keygen run) than this secret key (%s...): it would decrypt them to "
                            "garbage; use the secret key of the keygen run whose keys encrypted "
                            "the inputs",
                      a, b);
    }
    if (st == TSR_OK && rl != TSR_NN_CT_INPUT && rl != TSR_NN_CT_OUTPUT)
        st = tsr_fail(TSR_ERR_FORMAT,
                      "malformed encrypted data: role %u is neither inputs nor "
                      "outputs",
                      rl);
    if (st == TSR_OK && rl != (uint32_t)role)
        st = tsr_fail(TSR_ERR_MISMATCH,
                      "the file holds encrypted %s where encrypted %s are "
                      "expected (%s)",
                      rl == TSR_NN_CT_INPUT ? "inputs" : "outputs",
                      role == TSR_NN_CT_INPUT ? "inputs" : "outputs",
                      role == TSR_NN_CT_INPUT ? "infer reads what encrypt wrote"
                                              : "decrypt reads what infer wrote");
    if (st == TSR_OK && (cnt < 1 || cnt > (uint32_t)p->prog->cfg.batch))
        st = tsr_fail(TSR_ERR_FORMAT, "malformed encrypted data: %u samples for a plan of batch %d",
                      cnt, p->prog->cfg.batch);
    tsr_tile *t = NULL;
    if (st == TSR_OK) st = tsr_tile_read(be, r.fp, &t);
    if (st == TSR_OK && !tsr_tile_shape_equal(tsr_tile_get_shape(t), role_shape(p, role)))
        st = tsr_fail(TSR_ERR_MISMATCH, "the encrypted tensor %s is not the plan's %s",
                      tl_fmt(tsr_tile_get_shape(t)), tl_fmt2(role_shape(p, role)));
    if (st == TSR_OK && !tsr_tile_is_encrypted(t))
        st = tsr_fail(TSR_ERR_FORMAT, "the file holds plaintexts, not ciphertexts");
    if (st == TSR_OK) {
        int want = role == TSR_NN_CT_INPUT ? p->prog->top_level
                                           : p->prog->steps[p->prog->n_steps - 1].level_out;
        if (tsr_tile_level(t) != want)
            st = tsr_fail(TSR_ERR_MISMATCH, "the ciphertexts are at level %d, the plan expects %d",
                          tsr_tile_level(t), want);
    }
    if (st == TSR_OK) {
        uint8_t extra;
        if (fread(&extra, 1, 1, r.fp) == 1)
            st = tsr_fail(TSR_ERR_FORMAT, "malformed encrypted data: bytes after the end");
    }
    tsr_status c = tsr_reader_close(&r);
    if (st == TSR_OK && c != TSR_OK) st = c;
    if (st != TSR_OK) {
        tsr_tile_free(t);
        return tsr_fail_context(st, "'%s': ", path);
    }
    *out = t;
    *n = (int)cnt;
    return TSR_OK;
}
