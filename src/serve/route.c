/*
 * serve/route.c - request routing of the HTTP service: method and path to
 * an endpoint, ids in paths and query arguments validated (64 hexadecimal
 * digits). Untrusted input; fuzzed by fuzz/fuzz_serve_route.c.
 */
#include "serve/serve_internal.h"

#include <stdio.h>
#include <string.h>

static int hexval(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

int serve_parse_id(const char *hex, uint8_t id[32]) {
    if (!hex) return -1;
    for (int i = 0; i < 32; i++) {
        int hi = hexval(hex[2 * i]);
        if (hi < 0) return -1;
        int lo = hexval(hex[2 * i + 1]);
        if (lo < 0) return -1;
        id[i] = (uint8_t)(hi << 4 | lo);
    }
    return hex[64] == '\0' ? 0 : -1;
}

void serve_format_id(const uint8_t id[32], char hex[65]) {
    static const char d[] = "0123456789abcdef";
    for (int i = 0; i < 32; i++) {
        hex[2 * i] = d[id[i] >> 4];
        hex[2 * i + 1] = d[id[i] & 15];
    }
    hex[64] = '\0';
}

const char *serve_endpoint_name(serve_endpoint ep) {
    static const char *const names[EP_COUNT_] = { "other", "keys",    "infer",
                                                  "plans", "healthz", "metrics" };
    return ep >= 0 && ep < EP_COUNT_ ? names[ep] : "other";
}

static void fail(serve_route *r, int status, const char *msg) {
    r->ep = EP_NONE;
    r->status = status;
    snprintf(r->msg, sizeof r->msg, "%s", msg);
}

/* The endpoint is right; is the method? */
static int method_is(serve_route *r, const char *method, const char *want) {
    if (strcmp(method, want) == 0) return 1;
    char m[160];
    snprintf(m, sizeof m, "this path takes %s only", want);
    fail(r, 405, m);
    return 0;
}

void serve_route_parse(const char *method, const char *path, const char *plan_arg,
                       const char *keys_arg, serve_route *out) {
    memset(out, 0, sizeof *out);
    if (!method || !path) {
        fail(out, 400, "malformed request");
        return;
    }
    static const char plans_pre[] = "/v1/plans/", infer_suf[] = "/infer";
    size_t n = strlen(path);
    if (strcmp(path, "/healthz") == 0) {
        if (method_is(out, method, "GET")) out->ep = EP_HEALTH;
    } else if (strcmp(path, "/metrics") == 0) {
        if (method_is(out, method, "GET")) out->ep = EP_METRICS;
    } else if (strcmp(path, "/v1/plans") == 0) {
        if (method_is(out, method, "GET")) out->ep = EP_PLANS;
    } else if (strcmp(path, "/v1/keys") == 0) {
        if (!method_is(out, method, "PUT")) return;
        out->ep = EP_KEYS;
        if (plan_arg) {
            if (serve_parse_id(plan_arg, out->plan) != 0) {
                fail(out, 400, "?plan= needs a plan id: 64 hexadecimal digits (GET /v1/plans)");
                return;
            }
            out->has_plan = 1;
        }
    } else if (n == sizeof plans_pre - 1 + 64 + sizeof infer_suf - 1 &&
               strncmp(path, plans_pre, sizeof plans_pre - 1) == 0 &&
               strcmp(path + n - (sizeof infer_suf - 1), infer_suf) == 0) {
        char hex[65];
        memcpy(hex, path + sizeof plans_pre - 1, 64);
        hex[64] = '\0';
        if (serve_parse_id(hex, out->plan) != 0) {
            fail(out, 404, "no such path: the plan id must be 64 hexadecimal digits");
            return;
        }
        if (!method_is(out, method, "POST")) return;
        out->ep = EP_INFER;
        out->has_plan = 1;
        if (!keys_arg || serve_parse_id(keys_arg, out->keys) != 0) {
            fail(out, 400,
                 "?keys= needs the hash of uploaded evaluation keys: 64 hexadecimal digits "
                 "(the answer of PUT /v1/keys)");
            return;
        }
        out->has_keys = 1;
    } else {
        fail(out, 404, "no such path (try GET /v1/plans)");
    }
}
