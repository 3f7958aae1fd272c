/*
 * cli/args.c - the option parser the verbs share (cli.h: cli_parse_args).
 */
#include "cli.h"

#include <string.h>

int cli_parse_args(const char *verb, int argc, char **argv, const cli_opt *opts, size_t nopts,
                   const char **pos, int npos) {
    int npos_seen = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (a[0] != '-' || a[1] != '-') {
            if (a[0] == '-' && a[1] != '\0') return cli_usage_error(verb, "unknown option '%s'", a);
            if (npos_seen == npos) return cli_usage_error(verb, "unexpected argument '%s'", a);
            pos[npos_seen++] = a;
            continue;
        }
        const char *eq = strchr(a, '=');
        size_t len = eq ? (size_t)(eq - a) : strlen(a);
        const cli_opt *o = NULL;
        for (size_t k = 0; k < nopts && !o; k++)
            if (strlen(opts[k].name) == len && strncmp(opts[k].name, a, len) == 0) o = &opts[k];
        if (!o) return cli_usage_error(verb, "unknown option '%s'", a);
        if (o->type == CLI_FLAG) {
            if (eq) return cli_usage_error(verb, "%s takes no value", o->name);
            *(int *)o->dest = 1;
            continue;
        }
        const char *v = eq ? eq + 1 : (i + 1 < argc ? argv[++i] : NULL);
        if (!v) return cli_usage_error(verb, "%s needs a value", o->name);
        switch (o->type) {
        case CLI_STR:
            *(const char **)o->dest = v;
            break;
        case CLI_LONG:
            if (cli_parse_long(v, o->lo, o->hi, (long *)o->dest) != 0)
                return cli_usage_error(verb, "%s needs an integer in [%ld, %ld], not '%s'", o->name,
                                       o->lo, o->hi, v);
            break;
        case CLI_DOUBLE:
            if (cli_parse_double(v, (double *)o->dest) != 0)
                return cli_usage_error(verb, "%s needs a finite number, not '%s'", o->name, v);
            break;
        case CLI_LIST: {
            cli_list *l = (cli_list *)o->dest;
            if (l->n == l->max)
                return cli_usage_error(verb, "%s may be given at most %d times", o->name, l->max);
            l->items[l->n++] = v;
            break;
        }
        case CLI_FLAG:
            break;
        }
    }
    return 0;
}
