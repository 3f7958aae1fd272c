/*
 * nn/report.c - the latency breakdown of an encrypted inference: JSON (every
 * step's time, predicted time, levels, tile shapes, HE operation counts and
 * time per HE operation kind; totals; memory) and a self-contained SVG chart
 * (one bar per step, split by operation kind, with the prediction marked).
 * Format: docs/INFERENCE.md.
 */
#include "nn/nn_internal.h"

#include "core/error.h"
#include "core/io.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

static void json_str(FILE *fp, const char *s) {
    fputc('"', fp);
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\')
            fprintf(fp, "\\%c", c);
        else if (c < 0x20)
            fprintf(fp, "\\u%04x", c);
        else
            fputc(c, fp);
    }
    fputc('"', fp);
}

static void json_counts(FILE *fp, const tsr_backend_counts *c) {
    fprintf(
        fp,
        "{\"rotations\": %llu, \"hoisted_groups\": %llu, \"mul_ct\": %llu, \"mul_plain\": %llu, "
        "\"mul_const\": %llu, \"add\": %llu, \"rescale\": %llu, \"drop_level\": %llu, "
        "\"key_switch\": %llu, \"encode\": %llu}",
        (unsigned long long)c->rotations, (unsigned long long)c->hoisted,
        (unsigned long long)c->mul_ct, (unsigned long long)c->mul_plain,
        (unsigned long long)c->mul_const, (unsigned long long)c->add,
        (unsigned long long)c->rescale, (unsigned long long)c->drop_level,
        (unsigned long long)c->key_switch, (unsigned long long)c->encode);
}

static void json_ops(FILE *fp, const double *sec) {
    fputc('{', fp);
    for (int k = 0; k < TSR_NN_OP_COUNT_; k++)
        fprintf(fp, "%s\"%s\": %.6f", k ? ", " : "", tsr_nn_op_name(k), sec[k]);
    fputc('}', fp);
}

static void totals(const tsr_nn_stats *s, tsr_backend_counts *c, double *sec) {
    memset(c, 0, sizeof *c);
    for (int k = 0; k < TSR_NN_OP_COUNT_; k++) sec[k] = 0;
    for (int i = 0; i < s->n_steps; i++) {
        const tsr_backend_counts *x = &s->steps[i].ops;
        c->rotations += x->rotations;
        c->hoisted += x->hoisted;
        c->mul_ct += x->mul_ct;
        c->mul_plain += x->mul_plain;
        c->mul_const += x->mul_const;
        c->add += x->add;
        c->rescale += x->rescale;
        c->drop_level += x->drop_level;
        c->key_switch += x->key_switch;
        c->encode += x->encode;
        for (int k = 0; k < TSR_NN_OP_COUNT_; k++) sec[k] += s->steps[i].op_seconds[k];
    }
}

tsr_status tsr_nn_report_json_write(const tsr_nn_plan *p, const tsr_nn_stats *s, FILE *fp) {
    const nn_program *g = p->prog;
    const tsr_ckks_param_spec *sp = &p->spec;
    char id[65];
    for (int i = 0; i < 32; i++) snprintf(id + 2 * i, 3, "%02x", p->id[i]);
    fprintf(fp, "{\n  \"tessera\": \"%s\",\n  \"model\": ", tsr_version_string());
    json_str(fp, p->model->source);
    fprintf(fp,
            ",\n  \"plan\": {\"id\": \"%s\", \"packing\": \"%s\", \"tiles\": [%lld, %lld, %lld, "
            "%lld, %lld], \"orientation\": %d, \"batch\": %d, \"depth\": %d, "
            "\"rotation_keys\": %lld, \"relinearization_key\": %s,\n"
            "    \"ckks\": {\"log_n\": %u, \"slots\": %lld, \"levels\": %u, \"scale_bits\": %u, "
            "\"first_prime_bits\": %u, \"special_primes\": %u, \"special_prime_bits\": %u, "
            "\"dnum\": %u, \"security_bits\": %d, \"insecure_test_parameters\": %s}},\n",
            id, g->cfg.packing == TSR_NN_PACK_BATCH ? "batch" : "tiled", (long long)g->cfg.t[0],
            (long long)g->cfg.t[1], (long long)g->cfg.t[2], (long long)g->cfg.t[3],
            (long long)g->cfg.t[4], g->cfg.orient, g->cfg.batch, g->depth, (long long)g->n_rot,
            g->needs_relin ? "true" : "false", sp->log_n, (long long)g->cfg.slots, sp->levels,
            sp->scale_bits, sp->first_prime_bits, sp->special_primes, sp->special_prime_bits,
            sp->dnum, p->security,
            (sp->flags & TSR_CKKS_ALLOW_INSECURE_PARAMETERS) ? "true" : "false");
    fprintf(fp, "  \"backend\": ");
    json_str(fp, s->backend);
    tsr_backend_counts c;
    double sec[TSR_NN_OP_COUNT_];
    totals(s, &c, sec);
    fprintf(
        fp,
        ",\n  \"threads\": %d,\n  \"samples\": %d,\n  \"seconds\": %.6f,\n  "
        "\"predicted_seconds\": %.6f,\n  \"ms_per_sample\": %.4f,\n  \"prepare_seconds\": %.6f,\n"
        "  \"memory\": {\"peak_rss_mib\": %.1f, \"predicted_mib\": %.1f, \"peak_vectors\": "
        "%llu},\n  \"totals\": {\"counts\": ",
        s->threads, s->samples, s->seconds, s->predicted,
        s->samples ? 1000 * s->seconds / s->samples : 0, s->prepare_seconds, s->peak_rss_mib,
        s->predicted_mib, (unsigned long long)s->peak_vectors);
    json_counts(fp, &c);
    fprintf(fp, ", \"op_seconds\": ");
    json_ops(fp, sec);
    fprintf(fp, "},\n  \"steps\": [\n");
    for (int i = 0; i < s->n_steps; i++) {
        const tsr_nn_step_stats *x = &s->steps[i];
        fprintf(fp, "    {\"index\": %d, \"name\": ", i);
        json_str(fp, x->name);
        fprintf(fp, ", \"op\": ");
        json_str(fp, x->kind);
        fprintf(fp, ", \"level_in\": %d, \"level_out\": %d, \"input\": ", x->level_in,
                x->level_out);
        json_str(fp, x->in_shape);
        fprintf(fp, ", \"output\": ");
        json_str(fp, x->out_shape);
        fprintf(fp, ",\n     \"seconds\": %.6f, \"predicted\": %.6f, \"counts\": ", x->seconds,
                x->predicted);
        json_counts(fp, &x->ops);
        fprintf(fp, ",\n     \"op_seconds\": ");
        json_ops(fp, x->op_seconds);
        fprintf(fp, "}%s\n", i + 1 < s->n_steps ? "," : "");
    }
    fprintf(fp, "  ]\n}\n");
    if (fflush(fp) != 0 || ferror(fp))
        return tsr_fail(TSR_ERR_IO, "write failed: %s", strerror(errno));
    return TSR_OK;
}

/* ---- SVG ------------------------------------------------------------------------- */

static const char *const colors[TSR_NN_OP_COUNT_] = {
    "#d62728", /* rotate */
    "#ff7f0e", /* mul_ct */
    "#1f77b4", /* mul_plain */
    "#2ca02c", /* mul_const */
    "#9467bd", /* add */
    "#8c564b", /* rescale */
    "#e377c2", /* encode */
    "#7f7f7f", /* other */
};

static void xml_str(FILE *fp, const char *s) {
    for (; *s; s++) {
        switch (*s) {
        case '<':
            fputs("&lt;", fp);
            break;
        case '>':
            fputs("&gt;", fp);
            break;
        case '&':
            fputs("&amp;", fp);
            break;
        case '"':
            fputs("&quot;", fp);
            break;
        default:
            fputc(*s, fp);
        }
    }
}

static void fmt_time(char *b, size_t n, double s) {
    if (s >= 1)
        snprintf(b, n, "%.2f s", s);
    else if (s >= 1e-3)
        snprintf(b, n, "%.1f ms", 1e3 * s);
    else
        snprintf(b, n, "%.0f us", 1e6 * s);
}

tsr_status tsr_nn_report_svg_write(const tsr_nn_plan *p, const tsr_nn_stats *s, FILE *fp) {
    const nn_program *g = p->prog;
    int n = s->n_steps;
    const int W = 1280, left = 290, right = 430, top = 110, row = 34, barh = 20;
    int H = top + n * row + 90;
    double tmax = 1e-9;
    for (int i = 0; i < n; i++) {
        if (s->steps[i].seconds > tmax) tmax = s->steps[i].seconds;
        if (s->steps[i].predicted > tmax) tmax = s->steps[i].predicted;
    }
    double scale = (double)(W - left - right) / tmax;
    fprintf(fp,
            "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" "
            "viewBox=\"0 0 %d %d\" font-family=\"Helvetica, Arial, sans-serif\" "
            "font-size=\"12\">\n",
            W, H, W, H);
    fprintf(fp, "<rect width=\"%d\" height=\"%d\" fill=\"white\"/>\n", W, H);
    char tt[32], pt[32], ps[32];
    fmt_time(tt, sizeof tt, s->seconds);
    fmt_time(pt, sizeof pt, s->predicted);
    fmt_time(ps, sizeof ps, s->samples ? s->seconds / s->samples : 0);
    fprintf(fp,
            "<text x=\"20\" y=\"28\" font-size=\"18\" font-weight=\"bold\">Encrypted inference: ");
    xml_str(fp, p->model->source[0] ? p->model->source : "model");
    fprintf(fp, " — %s for %d sample%s (%s each)</text>\n", tt, s->samples,
            s->samples == 1 ? "" : "s", ps);
    fprintf(fp,
            "<text x=\"20\" y=\"50\" fill=\"#444\">CKKS N = 2^%u, %u levels, scale 2^%u, "
            "%d-bit security; %s packing; %s backend, %d threads; predicted %s; peak memory "
            "%.0f MiB (predicted %.0f MiB)</text>\n",
            p->spec.log_n, p->spec.levels, p->spec.scale_bits, p->security,
            g->cfg.packing == TSR_NN_PACK_BATCH ? "one sample per slot" : "tiled", s->backend,
            s->threads, pt, s->peak_rss_mib, s->predicted_mib);
    /* legend */
    int lx = 20;
    for (int k = 0; k < TSR_NN_OP_COUNT_; k++) {
        fprintf(fp, "<rect x=\"%d\" y=\"64\" width=\"12\" height=\"12\" fill=\"%s\"/>", lx,
                colors[k]);
        fprintf(fp, "<text x=\"%d\" y=\"75\">%s</text>\n", lx + 16, tsr_nn_op_name(k));
        lx += 28 + 8 * (int)strlen(tsr_nn_op_name(k));
    }
    fprintf(fp,
            "<line x1=\"%d\" y1=\"70\" x2=\"%d\" y2=\"70\" stroke=\"black\" "
            "stroke-dasharray=\"3,2\"/><text x=\"%d\" y=\"75\">predicted</text>\n",
            lx + 4, lx + 24, lx + 28);
    fprintf(fp,
            "<text x=\"%d\" y=\"%d\" fill=\"#444\">step (levels)</text>"
            "<text x=\"%d\" y=\"%d\" fill=\"#444\">wall time, split by HE operation time</text>"
            "<text x=\"%d\" y=\"%d\" fill=\"#444\">time / predicted — operations</text>\n",
            20, top - 8, left, top - 8, W - right + 10, top - 8);
    for (int i = 0; i < n; i++) {
        const tsr_nn_step_stats *x = &s->steps[i];
        int y = top + i * row;
        fprintf(fp, "<text x=\"20\" y=\"%d\">", y + 15);
        xml_str(fp, x->name);
        fprintf(fp, " <tspan fill=\"#666\">%s %d&#8594;%d</tspan></text>\n", x->kind, x->level_in,
                x->level_out);
        double ops = 0;
        for (int k = 0; k < TSR_NN_OP_COUNT_; k++) ops += x->op_seconds[k];
        double bw = x->seconds * scale, xx = left;
        if (ops > 0) {
            for (int k = 0; k < TSR_NN_OP_COUNT_; k++) {
                double w = bw * x->op_seconds[k] / ops;
                if (w <= 0) continue;
                fprintf(fp,
                        "<rect x=\"%.1f\" y=\"%d\" width=\"%.1f\" height=\"%d\" fill=\"%s\">"
                        "<title>%s: %.3f ms (summed over threads)</title></rect>\n",
                        xx, y, w, barh, colors[k], tsr_nn_op_name(k), 1e3 * x->op_seconds[k]);
                xx += w;
            }
        } else {
            fprintf(fp, "<rect x=\"%d\" y=\"%d\" width=\"%.1f\" height=\"%d\" fill=\"#ccc\"/>\n",
                    left, y, bw, barh);
        }
        double px = left + x->predicted * scale;
        fprintf(fp,
                "<line x1=\"%.1f\" y1=\"%d\" x2=\"%.1f\" y2=\"%d\" stroke=\"black\" "
                "stroke-width=\"1.5\" stroke-dasharray=\"3,2\"/>\n",
                px, y - 3, px, y + barh + 3);
        char a[32], b[32];
        fmt_time(a, sizeof a, x->seconds);
        fmt_time(b, sizeof b, x->predicted);
        fprintf(fp,
                "<text x=\"%d\" y=\"%d\">%s / %s — rot %llu, ct&#215;ct %llu, ct&#215;pt %llu, "
                "const %llu, rescale %llu</text>\n",
                W - right + 10, y + 15, a, b, (unsigned long long)x->ops.rotations,
                (unsigned long long)x->ops.mul_ct, (unsigned long long)x->ops.mul_plain,
                (unsigned long long)x->ops.mul_const, (unsigned long long)x->ops.rescale);
    }
    tsr_backend_counts c;
    double sec[TSR_NN_OP_COUNT_];
    totals(s, &c, sec);
    int y = top + n * row + 20;
    fprintf(fp,
            "<text x=\"20\" y=\"%d\" font-weight=\"bold\">Totals: %llu rotations (%llu key "
            "switches), %llu ct&#215;ct, %llu ct&#215;pt, %llu constant products, %llu "
            "rescales; weights prepared once in ",
            y, (unsigned long long)c.rotations, (unsigned long long)c.key_switch,
            (unsigned long long)c.mul_ct, (unsigned long long)c.mul_plain,
            (unsigned long long)c.mul_const, (unsigned long long)c.rescale);
    fmt_time(tt, sizeof tt, s->prepare_seconds);
    fprintf(fp, "%s</text>\n", tt);
    fprintf(fp,
            "<text x=\"20\" y=\"%d\" fill=\"#444\">Operation time (summed over threads): ", y + 20);
    for (int k = 0; k < TSR_NN_OP_COUNT_; k++) {
        fmt_time(tt, sizeof tt, sec[k]);
        fprintf(fp, "%s%s %s", k ? ", " : "", tsr_nn_op_name(k), tt);
    }
    fprintf(fp, "</text>\n</svg>\n");
    if (fflush(fp) != 0 || ferror(fp))
        return tsr_fail(TSR_ERR_IO, "write failed: %s", strerror(errno));
    return TSR_OK;
}

/* The path variants: one atomic output file each (core/io.h). */
static tsr_status save_report(const tsr_nn_plan *p, const tsr_nn_stats *s, const char *path,
                              tsr_status (*write)(const tsr_nn_plan *, const tsr_nn_stats *,
                                                  FILE *)) {
    tsr_outset out;
    FILE *fp;
    tsr_outset_init(&out);
    tsr_status st = tsr_outset_open(&out, path, 0, &fp);
    if (st == TSR_OK) st = write(p, s, fp);
    if (st == TSR_OK) st = tsr_outset_commit(&out);
    tsr_outset_abort(&out);
    if (st != TSR_OK) return tsr_fail_context(st, "writing '%s': ", path);
    return TSR_OK;
}

tsr_status tsr_nn_report_json(const tsr_nn_plan *p, const tsr_nn_stats *s, const char *path) {
    return save_report(p, s, path, tsr_nn_report_json_write);
}

tsr_status tsr_nn_report_svg(const tsr_nn_plan *p, const tsr_nn_stats *s, const char *path) {
    return save_report(p, s, path, tsr_nn_report_svg_write);
}
