/*
 * cli/nn_cli.c - helpers shared by the encrypted-inference verbs.
 */
#include "nn_cli.h"

#include "core/error.h"

#include <errno.h>
#include <stdint.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

void nn_cli_insecure_warning(const char *verb) {
    fprintf(stderr,
            "tessera %s: WARNING: " NN_CLI_INSECURE " allows CKKS parameters below 128-bit "
            "security. Never use them for real data.\n",
            verb);
}

int nn_cli_load_plan(const char *verb, const char *path, uint32_t flags, tsr_nn_plan **out) {
    tsr_status st = tsr_nn_plan_load(out, path, flags);
    if (st != TSR_OK) return cli_fail(verb, st, "loading the plan");
    return 0;
}

int nn_cli_check_inputs(const char *verb, const tsr_nn_plan *p, double *x, int n, long offset,
                        int clip) {
    double lo, hi;
    tsr_nn_plan_input_range(p, &lo, &hi);
    int64_t first, per = tsr_nn_model_input_size(tsr_nn_plan_model(p));
    double v0 = 0;
    int64_t bad = tsr_nn_check_inputs(p, x, n, 0, &first);
    if (!bad) return 0;
    v0 = x[first];
    const char *origin = tsr_nn_plan_calibration(p, NULL)
                             ? "the range of its calibration data"
                             : "pixels 0..255 under the model's preprocessing";
    if (!clip)
        return cli_usage_error(
            verb,
            "sample %lld (input value %lld) is %g, outside the plan's input range [%g, %g] (%s); "
            "%lld value%s in the %d samples. CKKS would compute and decrypt garbage for them. "
            "Check the data's scaling, pass --clip to clip such values to the range "
            "(predictions may change), or compile the plan with --calibrate DATA on data like "
            "these",
            (long long)(offset + first / per), (long long)(first % per), v0, lo, hi, origin,
            (long long)bad, bad == 1 ? " is outside it" : "s are outside it", n);
    (void)tsr_nn_check_inputs(p, x, n, 1, NULL);
    fprintf(stderr,
            "tessera %s: warning: %lld value%s outside the plan's input range [%g, %g] clipped "
            "to it (the first: sample %lld, input value %lld, was %g); predictions for these "
            "samples may differ from the model's\n",
            verb, (long long)bad, bad == 1 ? "" : "s", lo, hi, (long long)(offset + first / per),
            (long long)(first % per), v0);
    return 0;
}

int nn_cli_argmax(const double *v, int k) {
    int a = 0;
    for (int i = 1; i < k; i++)
        if (v[i] > v[a]) a = i;
    return a;
}

tsr_status nn_cli_write_csv(FILE *fp, const double *logits, const uint8_t *valid, int n, int k,
                            int classes) {
    fprintf(fp, classes ? "index,predicted" : "index,valid");
    for (int j = 0; j < k; j++) fprintf(fp, classes ? ",logit_%d" : ",y_%d", j);
    fputc('\n', fp);
    for (int i = 0; i < n; i++) {
        if (valid && !valid[i]) {
            fprintf(fp, "%d,invalid", i);
            for (int j = 0; j < k; j++) fprintf(fp, ",nan");
            fputc('\n', fp);
            continue;
        }
        if (classes)
            fprintf(fp, "%d,%d", i, nn_cli_argmax(logits + (size_t)i * k, k));
        else
            fprintf(fp, "%d,1", i);
        for (int j = 0; j < k; j++) fprintf(fp, ",%.9g", logits[(size_t)i * k + j]);
        fputc('\n', fp);
    }
    if (fflush(fp) != 0 || ferror(fp))
        return tsr_fail(TSR_ERR_IO, "write failed: %s", strerror(errno));
    return TSR_OK;
}

tsr_status nn_cli_write_npy(FILE *fp, const double *y, const uint8_t *valid, int n, int rank,
                            const int64_t *dims) {
    char shape[256];
    int len = snprintf(shape, sizeof shape, "(%d,", n);
    for (int i = 0; i < rank && len < (int)sizeof shape - 24; i++)
        len += snprintf(shape + len, sizeof shape - (size_t)len, "%s%lld", i ? ", " : " ",
                        (long long)dims[i]);
    snprintf(shape + len, sizeof shape - (size_t)len, ")");
    char head[512];
    int hl = snprintf(head, sizeof head, "{'descr': '<f8', 'fortran_order': False, 'shape': %s, }",
                      shape);
    /* magic (6) + version (2) + header length (2) + header, padded with spaces to 64 bytes,
     * ending in a newline */
    int total = 10 + hl + 1;
    int pad = (64 - total % 64) % 64;
    fwrite("\x93NUMPY\x01\x00", 1, 8, fp);
    uint16_t h = (uint16_t)(hl + pad + 1);
    unsigned char hb[2] = { (unsigned char)(h & 0xff), (unsigned char)(h >> 8) };
    fwrite(hb, 1, 2, fp);
    fwrite(head, 1, (size_t)hl, fp);
    for (int i = 0; i < pad; i++) fputc(' ', fp);
    fputc('\n', fp);
    int64_t k = 1;
    for (int i = 0; i < rank; i++) k *= dims[i];
    for (int i = 0; i < n; i++)
        for (int64_t j = 0; j < k; j++) {
            double v = valid && !valid[i] ? NAN : y[(size_t)i * (size_t)k + (size_t)j];
            unsigned char b[8];
            uint64_t u;
            memcpy(&u, &v, 8);
            for (int q = 0; q < 8; q++) b[q] = (unsigned char)(u >> (8 * q));
            fwrite(b, 1, 8, fp);
        }
    if (fflush(fp) != 0 || ferror(fp))
        return tsr_fail(TSR_ERR_IO, "write failed: %s", strerror(errno));
    return TSR_OK;
}

int nn_cli_ends_with(const char *path, const char *suffix) {
    size_t a = strlen(path), b = strlen(suffix);
    return a >= b && strcmp(path + a - b, suffix) == 0;
}

tsr_status nn_cli_write_outputs(FILE *fp, const char *path, const tsr_nn_model *m, const double *y,
                                const uint8_t *valid, int n) {
    int k = (int)tsr_nn_model_output_size(m);
    if (nn_cli_ends_with(path, ".npy")) {
        int64_t dims[8];
        int rank = tsr_nn_model_output_dims(m, dims);
        return nn_cli_write_npy(fp, y, valid, n, rank, dims);
    }
    return nn_cli_write_csv(fp, y, valid, n, k, tsr_nn_model_is_classifier(m));
}

static void fmt(char *b, size_t n, double s) {
    if (s >= 1)
        snprintf(b, n, "%.2f s", s);
    else
        snprintf(b, n, "%.1f ms", 1e3 * s);
}

void nn_cli_print_stats(const tsr_nn_plan *p, const tsr_nn_stats *s, FILE *fp) {
    (void)p;
    fprintf(fp, "%-4s %-18s %-10s %-6s %10s %10s %6s %6s %7s %7s %6s\n", "step", "layer", "op",
            "levels", "time", "predicted", "rot", "ct*ct", "ct*pt", "const", "resc");
    for (int i = 0; i < s->n_steps; i++) {
        const tsr_nn_step_stats *x = &s->steps[i];
        char a[24], b[24], lv[16];
        fmt(a, sizeof a, x->seconds);
        fmt(b, sizeof b, x->predicted);
        snprintf(lv, sizeof lv, "%d>%d", x->level_in, x->level_out);
        fprintf(fp, "%-4d %-18.18s %-10s %-6s %10s %10s %6llu %6llu %7llu %7llu %6llu\n", i,
                x->name, x->kind, lv, a, b, (unsigned long long)x->ops.rotations,
                (unsigned long long)x->ops.mul_ct, (unsigned long long)x->ops.mul_plain,
                (unsigned long long)x->ops.mul_const, (unsigned long long)x->ops.rescale);
    }
    double ops[TSR_NN_OP_COUNT_] = { 0 }, tot = 0;
    for (int i = 0; i < s->n_steps; i++)
        for (int k = 0; k < TSR_NN_OP_COUNT_; k++) ops[k] += s->steps[i].op_seconds[k];
    for (int k = 0; k < TSR_NN_OP_COUNT_; k++) tot += ops[k];
    fprintf(fp, "HE operation time (summed over threads):");
    for (int k = 0; k < TSR_NN_OP_COUNT_; k++)
        if (ops[k] > 0)
            fprintf(fp, " %s %.0f%%", tsr_nn_op_name(k), tot > 0 ? 100 * ops[k] / tot : 0.0);
    char a[24], b[24], c[24];
    fmt(a, sizeof a, s->seconds);
    fmt(b, sizeof b, s->predicted);
    fmt(c, sizeof c, s->prepare_seconds);
    fprintf(fp,
            "\ninference %s for %d sample%s (%.3f ms per sample), predicted %s; weights "
            "prepared in %s; peak memory %.0f MiB (predicted %.0f MiB); %d threads\n",
            a, s->samples, s->samples == 1 ? "" : "s",
            1e3 * s->seconds / (s->samples ? s->samples : 1), b, c, s->peak_rss_mib,
            s->predicted_mib, s->threads);
}

int nn_cli_agreement(const double *enc, const double *plain, int n, int k, double *agree,
                     double *max_err) {
    int same = 0, compared = 0;
    double err = 0;
    for (int i = 0; i < n; i++) {
        int finite = 1;
        for (int j = 0; j < k; j++) finite &= isfinite(enc[(size_t)i * k + j]) != 0;
        if (!finite) continue; /* an invalid sample (NaN): never agrees */
        compared++;
        same += nn_cli_argmax(enc + (size_t)i * k, k) == nn_cli_argmax(plain + (size_t)i * k, k);
        for (int j = 0; j < k; j++) {
            double e = fabs(enc[(size_t)i * k + j] - plain[(size_t)i * k + j]);
            if (isnan(e) || e > err) err = e; /* a NaN sticks */
        }
    }
    *agree = n ? (double)same / n : 0;
    *max_err = err;
    return compared;
}

void nn_cli_print_largest_error(FILE *fp, double err, int compared, int n, int k) {
    if (compared == 0)
        fprintf(fp, "largest error against plaintext inference: n/a (no valid sample of %d)\n", n);
    else if (compared < n)
        fprintf(fp,
                "largest error against plaintext inference: %.3g (%d valid sample%s of %d x %d "
                "values)\n",
                err, compared, compared == 1 ? "" : "s", n, k);
    else
        fprintf(fp, "largest error against plaintext inference: %.3g (%d sample%s x %d values)\n",
                err, n, n == 1 ? "" : "s", k);
}

int nn_cli_parse_packing(const char *verb, const char *name, tsr_nn_packing *out) {
    if (strcmp(name, "auto") == 0)
        *out = TSR_NN_PACK_AUTO;
    else if (strcmp(name, "batch") == 0)
        *out = TSR_NN_PACK_BATCH;
    else if (strcmp(name, "tiled") == 0)
        *out = TSR_NN_PACK_TILED;
    else
        return cli_usage_error(verb, "--packing is auto, batch or tiled, not '%s'", name);
    return 0;
}

int nn_cli_parse_trade(const char *verb, const char *arg, double *out) {
    double v;
    if (cli_parse_double(arg, &v) != 0 || !(v >= 0 && v <= TSR_NN_MAX_PRECISION_TRADE_BITS) ||
        v != floor(v))
        return cli_usage_error(
            verb, "--max-precision-trade needs a whole number of bits from 0 to %d, not '%s'",
            TSR_NN_MAX_PRECISION_TRADE_BITS, arg);
    *out = v;
    return 0;
}

int nn_cli_parse_log_n(const char *s, int *lo, int *hi) {
    const char *dots = strstr(s, "..");
    long a, b;
    if (!dots) {
        if (cli_parse_long(s, 1, 64, &a)) return -1;
        *lo = *hi = (int)a;
        return 0;
    }
    char left[32];
    size_t n = (size_t)(dots - s);
    if (n == 0 || n >= sizeof left) return -1;
    memcpy(left, s, n);
    left[n] = 0;
    if (cli_parse_long(left, 1, 64, &a) || cli_parse_long(dots + 2, 1, 64, &b)) return -1;
    *lo = (int)a;
    *hi = (int)b;
    return 0;
}
