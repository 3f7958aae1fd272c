/*
 * attacks/report.c - the SVG line charts of attacks/report.h.
 */
#include "attacks/report.h"

#include <math.h>

static void xml_text(FILE *f, const char *s) {
    for (; *s; s++) {
        if (*s == '<')
            fputs("&lt;", f);
        else if (*s == '>')
            fputs("&gt;", f);
        else if (*s == '&')
            fputs("&amp;", f);
        else if (*s == '"')
            fputs("&quot;", f);
        else if ((unsigned char)*s >= 0x20)
            fputc(*s, f);
    }
}

void tsr_chart_write_svg(const tsr_chart *c, FILE *f) {
    static const char *const colors[TSR_CHART_MAX_SERIES] = { "#1f77b4", "#d62728", "#2ca02c",
                                                              "#ff7f0e", "#9467bd", "#8c564b",
                                                              "#e377c2", "#7f7f7f" };
    const double W = 640, H = 400, L = 70, R = 190, T = 40, B = 50;
    double x0 = INFINITY, x1 = -INFINITY;
    for (size_t i = 0; i < c->nseries; i++)
        for (size_t k = 0; k < c->s[i].n; k++) {
            x0 = fmin(x0, c->s[i].x[k]);
            x1 = fmax(x1, c->s[i].x[k]);
        }
    if (!(x1 > x0)) x0 = 0, x1 = x1 > 0 ? x1 : 1;
    double y0 = c->ymin, y1 = c->ymax > c->ymin ? c->ymax : c->ymin + 1;
#define PX(x) (L + ((x)-x0) / (x1 - x0) * (W - L - R))
#define PY(y) (H - B - ((y)-y0) / (y1 - y0) * (H - T - B))
    fprintf(f,
            "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%.0f\" height=\"%.0f\" "
            "font-family=\"sans-serif\" font-size=\"12\">\n",
            W, H);
    fprintf(f, "<rect width=\"100%%\" height=\"100%%\" fill=\"white\"/>\n");
    fprintf(f, "<text x=\"%.0f\" y=\"22\" font-size=\"14\">", L);
    xml_text(f, c->title);
    fprintf(f, "</text>\n");
    for (int k = 0; k <= 5; k++) {
        double y = y0 + (y1 - y0) * k / 5, x = x0 + (x1 - x0) * k / 5;
        fprintf(f, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#ddd\"/>\n", L,
                PY(y), W - R, PY(y));
        fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"end\">%.3g</text>\n", L - 6,
                PY(y) + 4, y);
        fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">%.4g</text>\n", PX(x),
                H - B + 16, x);
    }
    fprintf(f,
            "<rect x=\"%.0f\" y=\"%.0f\" width=\"%.0f\" height=\"%.0f\" fill=\"none\" "
            "stroke=\"black\"/>\n",
            L, T, W - L - R, H - T - B);
    fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">", (L + W - R) / 2, H - 12);
    xml_text(f, c->xlabel);
    fprintf(f,
            "</text>\n<text transform=\"translate(16 %.1f) rotate(-90)\" "
            "text-anchor=\"middle\">",
            (T + H - B) / 2);
    xml_text(f, c->ylabel);
    fprintf(f, "</text>\n");
    for (size_t i = 0; i < c->nseries && i < TSR_CHART_MAX_SERIES; i++) {
        const tsr_chart_series *s = &c->s[i];
        fprintf(f, "<polyline fill=\"none\" stroke=\"%s\" stroke-width=\"2\" points=\"", colors[i]);
        for (size_t k = 0; k < s->n; k++) fprintf(f, "%.1f,%.1f ", PX(s->x[k]), PY(s->y[k]));
        fprintf(f, "\"/>\n");
        for (size_t k = 0; k < s->n; k++)
            fprintf(f, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"3\" fill=\"%s\"/>\n", PX(s->x[k]),
                    PY(s->y[k]), colors[i]);
        fprintf(f,
                "<line x1=\"%.0f\" y1=\"%.0f\" x2=\"%.0f\" y2=\"%.0f\" stroke=\"%s\" "
                "stroke-width=\"2\"/>\n",
                W - R + 12, T + 12 + 18.0 * (double)i, W - R + 32, T + 12 + 18.0 * (double)i,
                colors[i]);
        fprintf(f, "<text x=\"%.0f\" y=\"%.0f\">", W - R + 38, T + 16 + 18.0 * (double)i);
        xml_text(f, s->name);
        fprintf(f, "</text>\n");
    }
    fprintf(f, "</svg>\n");
#undef PX
#undef PY
}
