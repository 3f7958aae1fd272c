/*
 * fuzz/fuzz_serve_route.c - libFuzzer target for the HTTP service's request
 * routing (src/serve/route.c): the input is split at NUL bytes into the
 * method, the path and the ?plan= and ?keys= arguments (missing parts are
 * NULL). Any bytes must give a routed request or an HTTP error status with
 * a message; a routed request's ids must print back to what was parsed.
 */
#include "serve/serve_internal.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char *buf = malloc(size + 1);
    if (!buf) return 0;
    memcpy(buf, data, size);
    buf[size] = '\0';
    const char *part[4] = { NULL, NULL, NULL, NULL };
    size_t k = 0;
    for (int i = 0; i < 4 && k <= size; i++) {
        part[i] = buf + k;
        k += strlen(buf + k) + 1;
    }
    serve_route r;
    serve_route_parse(part[0], part[1], part[2], part[3], &r);
    if (r.status == 0) {
        if (r.ep <= EP_NONE || r.ep >= EP_COUNT_) abort();
        char hex[65];
        uint8_t back[32];
        if (r.has_plan) {
            serve_format_id(r.plan, hex);
            if (serve_parse_id(hex, back) != 0 || memcmp(back, r.plan, 32) != 0) abort();
        }
        if (r.ep == EP_INFER && !r.has_keys) abort();
    } else if ((r.status != 400 && r.status != 404 && r.status != 405) || !r.msg[0]) {
        abort();
    }
    free(buf);
    return 0;
}
