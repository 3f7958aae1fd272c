/*
 * attacks/payload.c - the adversarial payload attack (attacks/payload.h):
 * payload positions from the PE reader, the embedding-space sign steps with
 * nearest-byte mapping, the universal payload, and the structural check of
 * every attacked file.
 */
#include "attacks/payload.h"

#include "core/alloc.h"
#include "core/error.h"
#include "core/rng.h"

#include <float.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

const char *tsr_place_name(tsr_place p) {
    return p == TSR_PLACE_OVERLAY ? "overlay" : p == TSR_PLACE_SLACK ? "slack" : "?";
}

tsr_status tsr_place_parse(const char *s, tsr_place *out) {
    for (int p = 0; p < TSR_PLACE_COUNT_; p++)
        if (strcmp(s, tsr_place_name((tsr_place)p)) == 0) {
            *out = (tsr_place)p;
            return TSR_OK;
        }
    return tsr_fail(TSR_ERR_INVALID_ARG, "unknown placement '%s': use overlay or slack", s);
}

double tsr_byte_entropy(const uint8_t *b, size_t n) {
    if (n == 0) return 0;
    size_t h[256] = { 0 };
    for (size_t i = 0; i < n; i++) h[b[i]]++;
    double e = 0;
    for (int v = 0; v < 256; v++)
        if (h[v]) {
            double p = (double)h[v] / (double)n;
            e -= p * log2(p);
        }
    return e;
}

int tsr_malconv_nearest_byte(const tsr_malconv *m, const float *z) {
    size_t D = (size_t)m->cfg.emb;
    const float *E = m->params + m->off.E;
    int best = 0;
    float bd = FLT_MAX;
    for (int v = 0; v < 256; v++) {
        float d = 0;
        for (size_t e = 0; e < D; e++) {
            float t = z[e] - E[(size_t)v * D + e];
            d += t * t;
        }
        if (d < bd) bd = d, best = v;
    }
    return best;
}

static tsr_status check_cfg(const tsr_payload_cfg *c) {
    if (c->size == 0 || c->iters < 1 || !(c->eps > 0) || !(c->threshold > 0 && c->threshold < 1) ||
        c->place >= TSR_PLACE_COUNT_)
        return tsr_fail(TSR_ERR_INVALID_ARG,
                        "payload attack needs size > 0, iterations >= 1, eps > 0 and a threshold "
                        "in (0, 1)");
    return TSR_OK;
}

/* The file offsets of the payload (n of them, at most size) in the attacked file. */
static size_t positions(const tsr_pe *pe, size_t len, tsr_place place, size_t size, uint64_t *pos) {
    size_t n = 0;
    if (place == TSR_PLACE_OVERLAY) {
        for (; n < size; n++) pos[n] = len + n;
        return n;
    }
    for (uint32_t r = 0; r < pe->nslack && n < size; r++)
        for (uint64_t k = 0; k < pe->slack[r].len && n < size; k++) pos[n++] = pe->slack[r].off + k;
    return n;
}

/* Parse, allocate the attacked copy and its payload positions. */
static tsr_status prepare(const uint8_t *file, size_t len, tsr_place place, size_t size, tsr_pe *pe,
                          uint8_t **out, size_t *out_len, uint64_t **pos, size_t *npos) {
    *out = NULL;
    *pos = NULL;
    TSR_TRY(tsr_pe_parse(pe, file, len));
    size_t extra = place == TSR_PLACE_OVERLAY ? size : 0;
    if (len > SIZE_MAX - extra) {
        tsr_pe_free(pe);
        return tsr_fail(TSR_ERR_NOMEM, "payload size overflows");
    }
    *out_len = len + extra;
    *out = tsr_alloc(*out_len ? *out_len : 1);
    *pos = tsr_alloc((size ? size : 1) * sizeof(uint64_t));
    if (!*out || !*pos) {
        tsr_free(*out), tsr_free(*pos), tsr_pe_free(pe);
        *out = NULL, *pos = NULL;
        return tsr_fail(TSR_ERR_NOMEM, "out of memory for a %zu-byte attacked file", *out_len);
    }
    memcpy(*out, file, len);
    *npos = positions(pe, len, place, size, *pos);
    return TSR_OK;
}

/* Checksum and structural check of the attacked bytes against the original. */
static tsr_status finish(const tsr_pe *pe, const uint8_t *file, size_t len, uint8_t *out,
                         size_t out_len) {
    /* an NSIS installer's own CRC (in the overlay), before the PE checksum */
    tsr_nsis_fix_crc(out, out_len, pe->overlay_off);
    tsr_pe_fix_checksum(pe, out, out_len);
    tsr_pe after;
    tsr_status st = tsr_pe_parse(&after, out, out_len);
    if (st == TSR_OK) st = tsr_pe_compare(pe, file, len, &after, out, out_len);
    tsr_pe_free(&after);
    if (st != TSR_OK) {
        char why[256];
        snprintf(why, sizeof why, "%s", tsr_last_error());
        return tsr_fail(TSR_ERR_INTERNAL, "attacked file fails the structural check: %s", why);
    }
    return TSR_OK;
}

tsr_status tsr_payload_place(const uint8_t *file, size_t len, tsr_place place,
                             const uint8_t *payload, size_t size, uint8_t **out, size_t *out_len,
                             size_t *placed) {
    tsr_pe pe;
    uint64_t *pos;
    size_t n;
    TSR_TRY(prepare(file, len, place, size, &pe, out, out_len, &pos, &n));
    for (size_t i = 0; i < n; i++) (*out)[pos[i]] = payload[i];
    *placed = n;
    tsr_status st = finish(&pe, file, len, *out, *out_len);
    tsr_free(pos);
    tsr_pe_free(&pe);
    if (st != TSR_OK) {
        tsr_free(*out);
        *out = NULL;
    }
    return st;
}

/* Embed bytes [0, n) of b into Z (n, D). */
static void embed(const tsr_malconv *m, const uint8_t *b, size_t n, float *Z) {
    size_t D = (size_t)m->cfg.emb;
    const float *E = m->params + m->off.E;
    for (size_t q = 0; q < n; q++) memcpy(Z + q * D, E + (size_t)b[q] * D, D * sizeof(float));
}

/* One sign step on the visible payload positions from their current bytes, then map back. */
static void sign_step(const tsr_malconv *m, uint8_t *b, const uint64_t *pos, size_t npos, size_t n,
                      const float *dZ, float eps) {
    size_t D = (size_t)m->cfg.emb;
    const float *E = m->params + m->off.E;
    float z[256];
    for (size_t i = 0; i < npos; i++) {
        if (pos[i] >= n) continue;
        const float *g = dZ + pos[i] * D, *e = E + (size_t)b[pos[i]] * D;
        for (size_t k = 0; k < D; k++) z[k] = e[k] - eps * (float)((g[k] > 0) - (g[k] < 0));
        b[pos[i]] = (uint8_t)tsr_malconv_nearest_byte(m, z);
    }
}

/* Greedy step: each visible payload position takes the byte b minimising g . E[b]
 * (the linearised change of the logit), the padding row excluded. */
static void greedy_step(const tsr_malconv *m, uint8_t *b, const uint64_t *pos, size_t npos,
                        size_t n, const float *dZ) {
    size_t D = (size_t)m->cfg.emb;
    const float *E = m->params + m->off.E;
    for (size_t i = 0; i < npos; i++) {
        if (pos[i] >= n) continue;
        const float *g = dZ + pos[i] * D;
        int bb = b[pos[i]];
        double best = 0;
        for (size_t k = 0; k < D; k++) best += (double)g[k] * E[(size_t)bb * D + k];
        for (int c = 0; c < 256; c++) {
            double v = 0;
            for (size_t k = 0; k < D; k++) v += (double)g[k] * E[(size_t)c * D + k];
            if (v < best) best = v, bb = c;
        }
        b[pos[i]] = (uint8_t)bb;
    }
}

/* The windows (of K bytes) holding visible payload positions: free_win (nwin). */
static void mark_windows(const tsr_malconv *m, const uint64_t *pos, size_t npos, size_t n,
                         uint8_t *free_win, size_t nwin) {
    size_t K = (size_t)m->cfg.window;
    memset(free_win, 0, nwin);
    for (size_t i = 0; i < npos; i++)
        if (pos[i] < n && pos[i] / K < nwin) free_win[pos[i] / K] = 1;
}

tsr_status tsr_payload_attack(const tsr_malconv *m, const uint8_t *file, size_t len,
                              const tsr_payload_cfg *cfg, uint8_t **out, size_t *out_len,
                              tsr_payload_result *res) {
    TSR_REQUIRE(m && file && cfg && out && out_len && res, "tsr_payload_attack: NULL argument");
    TSR_REQUIRE(m->cfg.emb <= 256, "tsr_payload_attack: embedding size above 256");
    TSR_TRY(check_cfg(cfg));
    memset(res, 0, sizeof *res);
    tsr_pe pe;
    uint64_t *pos;
    size_t npos;
    TSR_TRY(prepare(file, len, cfg->place, cfg->size, &pe, out, out_len, &pos, &npos));
    uint8_t *b = *out;
    size_t D = (size_t)m->cfg.emb, n = *out_len < m->cfg.max_len ? *out_len : m->cfg.max_len;
    tsr_malconv_ws *ws = NULL;
    float *Z = tsr_alloc((n ? n : 1) * D * sizeof(float));
    float *dZ = tsr_alloc((n ? n : 1) * D * sizeof(float));
    size_t nwin = n / (size_t)m->cfg.window + 1;
    uint8_t *fw = tsr_alloc(nwin);
    tsr_status st = Z && dZ && fw ? tsr_malconv_ws_create(&ws, m)
                                  : tsr_fail(TSR_ERR_NOMEM, "out of memory for the attack");
    if (fw) mark_windows(m, pos, npos, n, fw, nwin);
    float logit;
    if (st == TSR_OK) st = tsr_malconv_forward_bytes(m, ws, file, len, &logit);
    if (st == TSR_OK) {
        res->score_before = tsr_sigmoidf(logit);
        res->payload_len = npos;
        for (size_t i = 0; i < npos; i++) res->visible += pos[i] < n;
        uint8_t s[TSR_SEED_BYTES] = { 0 };
        for (int i = 0; i < 8; i++) s[i] = (uint8_t)(cfg->seed >> (8 * i));
        tsr_prng g;
        tsr_prng_init(&g, s, 0x7061796c6f6164ull); /* "payload" */
        for (size_t i = 0; i < npos; i++) tsr_prng_bytes(&g, &b[pos[i]], 1);
        tsr_prng_wipe(&g);
    }
    /* the payload with the lowest logit seen, and that logit */
    uint8_t *best = st == TSR_OK ? tsr_alloc(npos ? npos : 1) : NULL;
    if (st == TSR_OK && !best) st = tsr_fail(TSR_ERR_NOMEM, "out of memory for the attack");
    float best_logit = 0;
    for (int it = 0; st == TSR_OK; it++) {
        embed(m, b, n, Z);
        st = tsr_malconv_forward_emb(m, ws, Z, n, &logit);
        if (st != TSR_OK) break;
        if (it == 0 || logit < best_logit) {
            best_logit = logit;
            res->best_step = it;
            for (size_t i = 0; i < npos; i++) best[i] = b[pos[i]];
        }
        if ((!cfg->no_stop && tsr_sigmoidf(logit) < cfg->threshold) || it == cfg->iters) break;
        memset(dZ, 0, n * D * sizeof(float));
        if (cfg->routed)
            tsr_malconv_backward_routed(m, ws, 1.0f, dZ, fw, nwin);
        else
            tsr_malconv_backward(m, ws, 1.0f, NULL, dZ);
        if (cfg->greedy)
            greedy_step(m, b, pos, npos, n, dZ);
        else
            sign_step(m, b, pos, npos, n, dZ, cfg->eps);
        res->steps = it + 1;
    }
    if (st == TSR_OK) {
        res->score_last = tsr_sigmoidf(logit);
        res->score_after = tsr_sigmoidf(best_logit);
        res->evaded = res->score_after < cfg->threshold;
        for (size_t i = 0; i < npos; i++) b[pos[i]] = best[i];
        res->entropy = tsr_byte_entropy(best, npos);
    }
    tsr_free(best);
    if (st == TSR_OK) st = finish(&pe, file, len, b, *out_len);
    tsr_malconv_ws_free(ws);
    tsr_free(Z);
    tsr_free(dZ);
    tsr_free(fw);
    tsr_free(pos);
    tsr_pe_free(&pe);
    if (st != TSR_OK) {
        tsr_free(*out);
        *out = NULL;
    }
    return st;
}

size_t tsr_payload_align_filler(const tsr_malconv *m, size_t len) {
    size_t K = (size_t)m->cfg.window;
    return (K - len % K) % K;
}

tsr_status tsr_payload_universal(const tsr_malconv *m, const uint8_t *const *files,
                                 const size_t *lens, size_t nf, const tsr_payload_cfg *cfg,
                                 uint8_t *payload, tsr_universal_info *info) {
    TSR_REQUIRE(m && files && lens && cfg && payload, "tsr_payload_universal: NULL argument");
    TSR_REQUIRE(m->cfg.emb <= 256, "tsr_payload_universal: embedding size above 256");
    TSR_TRY(check_cfg(cfg));
    if (nf == 0) return tsr_fail(TSR_ERR_INVALID_ARG, "a universal payload needs files");
    size_t D = (size_t)m->cfg.emb, P = cfg->size, L = m->cfg.max_len, K = (size_t)m->cfg.window;
    uint8_t s[TSR_SEED_BYTES] = { 0 };
    for (int i = 0; i < 8; i++) s[i] = (uint8_t)(cfg->seed >> (8 * i));
    tsr_prng g;
    tsr_prng_init(&g, s, 0x756e6976ull); /* "univ" */
    tsr_prng_bytes(&g, payload, P);
    tsr_prng_wipe(&g);
    tsr_malconv_ws *ws = NULL;
    uint8_t *b = tsr_alloc(L), *best = tsr_alloc(P);
    float *Z = tsr_alloc(L * D * sizeof(float)), *dZ = tsr_alloc(L * D * sizeof(float));
    float *acc = tsr_alloc(P * D * sizeof(float));
    size_t nwin = L / K + 1;
    uint8_t *fw = tsr_alloc(nwin);
    uint64_t *ip = tsr_alloc(P * sizeof(uint64_t));
    tsr_status st = b && best && Z && dZ && acc && fw && ip
                        ? tsr_malconv_ws_create(&ws, m)
                        : tsr_fail(TSR_ERR_NOMEM, "out of memory");
    for (size_t i = 0; ip && i < P; i++) ip[i] = i;
    size_t best_ev = 0, best_nt = 0;
    double best_sum = 0;
    int best_it = -1;
    for (int it = 0; st == TSR_OK; it++) {
        memset(acc, 0, P * D * sizeof(float));
        size_t ev = 0, nt = 0;
        double sum = 0;
        for (size_t f = 0; st == TSR_OK && f < nf; f++) {
            size_t len = lens[f] < L ? lens[f] : L;
            size_t at = len + (cfg->align ? tsr_payload_align_filler(m, len) : 0);
            if (at >= L) continue; /* no room inside max_len */
            size_t vis = at + P <= L ? P : L - at;
            memcpy(b, files[f], len);
            memset(b + len, 0, at - len);
            memcpy(b + at, payload, vis);
            embed(m, b, at + vis, Z);
            float logit;
            st = tsr_malconv_forward_emb(m, ws, Z, at + vis, &logit);
            if (st != TSR_OK) break;
            float sc = tsr_sigmoidf(logit);
            nt++, sum += sc, ev += sc < cfg->threshold;
            if (it == cfg->iters || sc < cfg->threshold) continue; /* no step to take / evades */
            memset(dZ, 0, (at + vis) * D * sizeof(float));
            if (cfg->routed) {
                memset(fw, 0, nwin);
                for (size_t t = at / K; t <= (at + vis - 1) / K && t < nwin; t++) fw[t] = 1;
                tsr_malconv_backward_routed(m, ws, 1.0f, dZ, fw, nwin);
            } else
                tsr_malconv_backward(m, ws, 1.0f, NULL, dZ);
            for (size_t i = 0; i < vis * D; i++) acc[i] += dZ[at * D + i];
        }
        if (st != TSR_OK) break;
        if (best_it < 0 || ev > best_ev || (ev == best_ev && sum < best_sum)) {
            best_it = it, best_ev = ev, best_sum = sum, best_nt = nt;
            memcpy(best, payload, P);
        }
        if (it == cfg->iters) break;
        if (cfg->greedy) {
            greedy_step(m, payload, ip, P, P, acc);
            continue;
        }
        const float *E = m->params + m->off.E;
        float z[256];
        for (size_t i = 0; i < P; i++) {
            const float *gi = acc + i * D, *e = E + (size_t)payload[i] * D;
            for (size_t k = 0; k < D; k++)
                z[k] = e[k] - cfg->eps * (float)((gi[k] > 0) - (gi[k] < 0));
            payload[i] = (uint8_t)tsr_malconv_nearest_byte(m, z);
        }
    }
    if (st == TSR_OK) {
        memcpy(payload, best, P);
        if (info) {
            info->best_step = best_it;
            info->train_files = best_nt;
            info->train_evaded = best_ev;
            info->train_mean_score = best_nt ? best_sum / (double)best_nt : 0;
        }
    }
    tsr_malconv_ws_free(ws);
    tsr_free(b);
    tsr_free(best);
    tsr_free(Z);
    tsr_free(dZ);
    tsr_free(acc);
    tsr_free(fw);
    tsr_free(ip);
    return st;
}
