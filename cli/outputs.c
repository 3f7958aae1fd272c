/*
 * cli/outputs.c - the verbs' output files (cli.h: cli_outputs_*): refuse an
 * output that is one of the inputs or another output, and write all outputs
 * of a verb as one core/io output set, so no target changes unless every
 * file was written completely.
 */
#include "cli.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* The directory part of path resolved (realpath) + "/" + its last component; path if unresolvable.
 */
static void canonical(const char *path, char *out, size_t n) {
    const char *slash = strrchr(path, '/');
    char dir[PATH_MAX], real[PATH_MAX];
    if (!slash)
        snprintf(dir, sizeof dir, ".");
    else if (slash == path)
        snprintf(dir, sizeof dir, "/");
    else
        snprintf(dir, sizeof dir, "%.*s", (int)(slash - path), path);
    if (realpath(dir, real))
        snprintf(out, n, "%s/%s", real, slash ? slash + 1 : path);
    else
        snprintf(out, n, "%s", path);
}

/* Do paths a and b name the same file (same inode, or the same place when neither exists)? */
static int same_file(const char *a, const char *b) {
    struct stat sa, sb;
    int ea = stat(a, &sa) == 0, eb = stat(b, &sb) == 0;
    if (ea && eb) return sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino;
    if (ea || eb) return 0;
    char ca[2 * PATH_MAX], cb[2 * PATH_MAX];
    canonical(a, ca, sizeof ca);
    canonical(b, cb, sizeof cb);
    return strcmp(ca, cb) == 0;
}

static unsigned out_flags(const cli_output *o, int force) {
    return o->flags | (force ? TSR_OUT_FORCE : 0u);
}

int cli_outputs_check(const char *verb, const cli_output *outs, int nout, const char *const *ins,
                      int nin, int force) {
    for (int i = 0; i < nout; i++) {
        const char *o = outs[i].path;
        if (!o) continue;
        for (int j = 0; j < nin; j++)
            if (ins[j] && same_file(o, ins[j]))
                return cli_usage_error(verb,
                                       "the output '%s' is the input '%s': refusing to write over "
                                       "an input; give another output path",
                                       o, ins[j]);
        for (int j = 0; j < i; j++)
            if (outs[j].path && same_file(o, outs[j].path))
                return cli_usage_error(verb,
                                       "'%s' and '%s' are the same file: give each output "
                                       "its own path",
                                       outs[j].path, o);
        tsr_status st = tsr_outset_check(o, out_flags(&outs[i], force));
        if (st != TSR_OK) return cli_fail(verb, st, "checking the output");
    }
    return 0;
}

int cli_outputs_open(const char *verb, tsr_outset *set, cli_output *outs, int nout, int force) {
    tsr_outset_init(set);
    for (int i = 0; i < nout; i++) {
        outs[i].fp = NULL;
        if (!outs[i].path) continue;
        tsr_status st = tsr_outset_open(set, outs[i].path, out_flags(&outs[i], force), &outs[i].fp);
        if (st != TSR_OK) {
            tsr_outset_abort(set);
            return cli_fail(verb, st, "creating the output");
        }
    }
    return 0;
}

int cli_outputs_commit(const char *verb, tsr_outset *set, tsr_status st, const char *what) {
    if (st != TSR_OK) {
        tsr_outset_abort(set);
        return cli_fail(verb, st, what);
    }
    if ((st = tsr_outset_commit(set)) != TSR_OK) return cli_fail(verb, st, what);
    return 0;
}
