/*
 * core/progress.c - progress lines on stderr and a monotonic clock.
 */
#include "core/progress.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

double tsr_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

double tsr_cpu_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void fmt_duration(char *buf, size_t n, double s) {
    if (s < 0) s = 0;
    if (s < 60)
        snprintf(buf, n, "%.1fs", s);
    else if (s < 3600)
        snprintf(buf, n, "%dm%02ds", (int)(s / 60), (int)s % 60);
    else
        snprintf(buf, n, "%dh%02dm", (int)(s / 3600), ((int)s % 3600) / 60);
}

void tsr_progress_begin(tsr_progress *p, const char *label, uint64_t total, const char *unit) {
    memset(p, 0, sizeof *p);
    snprintf(p->label, sizeof p->label, "%s", label);
    snprintf(p->unit, sizeof p->unit, "%s", unit ? unit : "it");
    p->total = total;
    const char *env = getenv("TSR_PROGRESS");
    p->enabled = !(env && strcmp(env, "0") == 0);
    p->tty = isatty(2);
    p->t_start = p->t_last = tsr_now();
    p->last_decile = -1;
}

static void draw(tsr_progress *p, const char *detail, int final) {
    double now = tsr_now();
    double el = now - p->t_start;
    double rate = el > 0 ? (double)p->done / el : 0;
    char eta[32] = "", elapsed[32];
    fmt_duration(elapsed, sizeof elapsed, el);
    if (p->total && rate > 0 && !final)
        fmt_duration(eta, sizeof eta, (double)(p->total - p->done) / rate);
    char bar[24] = "";
    if (p->total) {
        int w = 20, fill = (int)((double)w * (double)p->done / (double)p->total);
        if (fill > w) fill = w;
        bar[0] = '[';
        for (int i = 0; i < w; i++) bar[1 + i] = i < fill ? '#' : '.';
        bar[w + 1] = ']';
        bar[w + 2] = '\0';
    }
    char count[64];
    if (p->total)
        snprintf(count, sizeof count, "%llu/%llu", (unsigned long long)p->done,
                 (unsigned long long)p->total);
    else
        snprintf(count, sizeof count, "%llu", (unsigned long long)p->done);
    fprintf(stderr, "%s%s %s %s %s %.1f %s/s %s%s%s%s", p->tty ? "\r\033[K" : "", p->label, bar,
            count, p->unit, rate, p->unit, final ? "in " : "", final ? elapsed : "",
            (!final && eta[0]) ? "ETA " : "", (!final && eta[0]) ? eta : "");
    if (detail && detail[0]) fprintf(stderr, "  %s", detail);
    if (!p->tty || final) fputc('\n', stderr);
    fflush(stderr);
}

void tsr_progress_update(tsr_progress *p, uint64_t done, const char *fmt, ...) {
    char detail[160] = "";
    if (!p->enabled) return;
    p->done = done;
    double now = tsr_now();
    int decile = p->total ? (int)(10 * done / p->total) : -1;
    int due = p->tty ? (now - p->t_last >= 0.2)
                     : (now - p->t_last >= 10.0 || (decile != p->last_decile && decile > 0));
    if (!due) return;
    if (fmt) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(detail, sizeof detail, fmt, ap);
        va_end(ap);
    }
    p->t_last = now;
    p->last_decile = decile;
    draw(p, detail, 0);
}

void tsr_progress_end(tsr_progress *p, const char *fmt, ...) {
    char detail[160] = "";
    if (!p->enabled) return;
    if (p->total) p->done = p->total;
    if (fmt) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(detail, sizeof detail, fmt, ap);
        va_end(ap);
    }
    draw(p, detail, 1);
}
