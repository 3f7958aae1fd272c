/*
 * attacks/report.h - SVG line charts for the lab's report (docs/MALWARE.md):
 * a few named series of (x, y) points on linear axes, plain SVG 1.1 with no
 * scripts or external references.
 */
#ifndef TSR_ATTACKS_REPORT_H
#define TSR_ATTACKS_REPORT_H

#include <stddef.h>
#include <stdio.h>

#define TSR_CHART_MAX_SERIES 8
#define TSR_CHART_MAX_POINTS 64

typedef struct tsr_chart_series {
    char name[64];
    size_t n;
    double x[TSR_CHART_MAX_POINTS], y[TSR_CHART_MAX_POINTS];
} tsr_chart_series;

typedef struct tsr_chart {
    char title[128], xlabel[64], ylabel[64];
    double ymin, ymax; /* fixed y range (e.g. 0..1 for rates) */
    size_t nseries;
    tsr_chart_series s[TSR_CHART_MAX_SERIES];
} tsr_chart;

/** Write the chart as SVG to f (x range from the data; names XML-escaped). */
void tsr_chart_write_svg(const tsr_chart *c, FILE *f);

#endif /* TSR_ATTACKS_REPORT_H */
