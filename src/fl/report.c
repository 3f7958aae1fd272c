/*
 * fl/report.c - CSV histories and SVG line plots for the distributed-learning
 * lab. The SVG is written by hand: a fixed canvas, a frame with a 0.1 grid on
 * the y axis, "nice" round ticks on the x axis, one polyline per series.
 */
#include "fl/report.h"
#include "core/error.h"
#include "core/io.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

/* Reports are written atomically (core/io.h output files). */
static tsr_status open_out(const char *path, tsr_outset *s, FILE **f) {
    tsr_outset_init(s);
    return tsr_outset_open(s, path, 0, f);
}

static tsr_status close_out(const char *path, tsr_outset *s) {
    tsr_status st = tsr_outset_commit(s);
    if (st != TSR_OK) return tsr_fail_context(st, "writing '%s': ", path);
    return TSR_OK;
}

static void put_num(FILE *f, double v) {
    if (isnan(v)) return; /* empty field */
    fprintf(f, "%.6g", v);
}

tsr_status tsr_fl_write_history_csv(const char *path, const tsr_fl_result *res) {
    TSR_REQUIRE(path && res, "tsr_fl_write_history_csv: NULL argument");
    FILE *f;
    tsr_outset out;
    TSR_TRY(open_out(path, &out, &f));
    fprintf(f, "round,accuracy,backdoor,honest_loss,corrupt_selected,seconds\n");
    for (size_t i = 0; i < res->n_evals; i++) {
        const tsr_fl_eval *e = &res->evals[i];
        fprintf(f, "%zu,", e->round);
        put_num(f, e->accuracy);
        fputc(',', f);
        put_num(f, e->backdoor);
        fputc(',', f);
        put_num(f, e->honest_loss);
        fputc(',', f);
        put_num(f, e->corrupt_selected);
        fprintf(f, ",%.3f\n", e->seconds);
    }
    return close_out(path, &out);
}

static void put_escaped(FILE *f, const char *s) {
    for (; s && *s; s++) {
        switch (*s) {
        case '<':
            fputs("&lt;", f);
            break;
        case '>':
            fputs("&gt;", f);
            break;
        case '&':
            fputs("&amp;", f);
            break;
        case '"':
            fputs("&quot;", f);
            break;
        default:
            fputc(*s, f);
        }
    }
}

/* A round tick step (1, 2 or 5 times a power of ten) giving at most ~8 ticks. */
static double nice_step(double range) {
    if (!(range > 0)) return 1;
    double raw = range / 8, p = pow(10, floor(log10(raw)));
    double m = raw / p;
    return (m <= 1 ? 1 : m <= 2 ? 2 : m <= 5 ? 5 : 10) * p;
}

tsr_status tsr_fl_write_svg_plot(const char *path, const char *title, const char *ylabel,
                                 const tsr_fl_series *series, size_t n_series) {
    TSR_REQUIRE(path && series, "tsr_fl_write_svg_plot: NULL argument");
    if (n_series == 0) return tsr_fail(TSR_ERR_INVALID_ARG, "plot '%s': no series", path);
    static const char *const palette[] = {
        "#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd",
        "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf",
    };
    const double W = 820, H = 460, L = 60, R = 200, T = 40, B = 50;
    const double pw = W - L - R, ph = H - T - B;
    double xmax = 0;
    for (size_t s = 0; s < n_series; s++)
        for (size_t i = 0; i < series[s].n; i++)
            if (series[s].x[i] > xmax) xmax = series[s].x[i];
    if (xmax <= 0) xmax = 1;
    FILE *f;
    tsr_outset out;
    TSR_TRY(open_out(path, &out, &f));
    fprintf(f,
            "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%.0f\" height=\"%.0f\" "
            "viewBox=\"0 0 %.0f %.0f\" font-family=\"sans-serif\" font-size=\"12\">\n",
            W, H, W, H);
    fprintf(f, "<rect width=\"100%%\" height=\"100%%\" fill=\"white\"/>\n");
    fprintf(f, "<text x=\"%.0f\" y=\"22\" text-anchor=\"middle\" font-size=\"15\">", L + pw / 2);
    put_escaped(f, title);
    fprintf(f, "</text>\n");
    /* y grid and labels: 0, 0.1, ..., 1 */
    for (int k = 0; k <= 10; k++) {
        double y = T + ph * (1 - k / 10.0);
        fprintf(f,
                "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#e0e0e0\"/>\n"
                "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"end\">%.1f</text>\n",
                L, y, L + pw, y, L - 6, y + 4, k / 10.0);
    }
    /* x ticks */
    double step = nice_step(xmax);
    for (double x = 0; x <= xmax + 1e-9; x += step) {
        double px = L + pw * x / xmax;
        fprintf(f,
                "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#e0e0e0\"/>\n"
                "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">%g</text>\n",
                px, T, px, T + ph, px, T + ph + 16, x);
    }
    fprintf(f,
            "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"none\" "
            "stroke=\"black\"/>\n",
            L, T, pw, ph);
    fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">round</text>\n", L + pw / 2,
            H - 12);
    fprintf(f,
            "<text x=\"16\" y=\"%.1f\" text-anchor=\"middle\" "
            "transform=\"rotate(-90 16 %.1f)\">",
            T + ph / 2, T + ph / 2);
    put_escaped(f, ylabel ? ylabel : "");
    fprintf(f, "</text>\n");
    for (size_t s = 0; s < n_series; s++) {
        const char *col = palette[s % (sizeof palette / sizeof palette[0])];
        const char *dash = s >= 10 ? " stroke-dasharray=\"6 3\"" : "";
        fprintf(f, "<polyline fill=\"none\" stroke=\"%s\" stroke-width=\"1.8\"%s points=\"", col,
                dash);
        for (size_t i = 0; i < series[s].n; i++) {
            double y = series[s].y[i];
            if (isnan(y)) continue;
            if (y < 0) y = 0;
            if (y > 1) y = 1;
            fprintf(f, "%.1f,%.1f ", L + pw * series[s].x[i] / xmax, T + ph * (1 - y));
        }
        fprintf(f, "\"/>\n");
        double ly = T + 10 + 18.0 * (double)s;
        fprintf(f,
                "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"%s\" "
                "stroke-width=\"2.5\"%s/>\n<text x=\"%.1f\" y=\"%.1f\">",
                L + pw + 12, ly, L + pw + 36, ly, col, dash, L + pw + 42, ly + 4);
        put_escaped(f, series[s].name);
        fprintf(f, "</text>\n");
    }
    fprintf(f, "</svg>\n");
    return close_out(path, &out);
}
