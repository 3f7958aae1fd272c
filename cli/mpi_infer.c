/*
 * cli/mpi_infer.c - `mpirun -n K tessera infer --mpi model.plan server.evk
 * --in a.ct [--in b.ct ...] --out a.out.ct [--out b.out.ct ...]`: encrypted
 * inference of many ciphertext sets (batches) sharded over MPI ranks.
 *
 * Phases (docs/SCALING.md models each):
 *   1. rank 0 reads the plan and the evaluation keys once and sends their bytes
 *      once to each node's first rank, where they sit in a shared-memory window
 *      the node's ranks read in place (cli_mpi_share_bytes: a node receives and
 *      holds one copy of the file bytes, whatever its rank count); every rank
 *      still expands its own keys and prepares the plan (weights encoded) once;
 *   2. rank 0 reads input i and sends it to rank i % K (its own it keeps);
 *   3. every rank runs its inputs, one after the other, with its OpenMP threads;
 *   4. rank 0 gathers the outputs in input order and writes them, all or none.
 * A ciphertext set is indivisible (its samples are packed together), so the
 * unit of work is an input file; one run uses one plan and one key set.
 */
#include "infer_cli.h"
#include "mpi_internal.h"
#include "nn_cli.h"

#include "core/progress.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <unistd.h>

#define VERB "infer --mpi"

/* Largest plan, key and ciphertext files rank 0 reads (the server's default body limit x 16). */
#define MAX_PLAN_BYTES ((uint64_t)1 << 30)
#define MAX_DATA_BYTES ((uint64_t)64 << 30)

enum { TAG_IN = 11, TAG_OUT = 12 };

/* Per-rank figures gathered at rank 0. */
enum { ST_FILES, ST_SAMPLES, ST_PREPARE, ST_COMPUTE, ST_CPU, ST_BYTES_IN, ST_BYTES_OUT, ST_N };

/* CPU seconds this process has used (every thread). */
static double cpu_seconds(void) {
    struct rusage u;
    if (getrusage(RUSAGE_SELF, &u) != 0) return 0;
    return (double)u.ru_utime.tv_sec + (double)u.ru_stime.tv_sec +
           1e-6 * (double)(u.ru_utime.tv_usec + u.ru_stime.tv_usec);
}

static void mpi_usage(FILE *out) {
    fprintf(
        out,
        "usage: mpirun -n K tessera infer --mpi model.plan server.evk --in a.ct [--in b.ct ...]\n"
        "                     --out a.out.ct [--out b.out.ct ...] [--threads N] [--force]\n"
        "\n"
        "Encrypted inference of several ciphertext sets (batches made by tessera encrypt\n"
        "for one plan and one key set) over the K ranks of an MPI job: rank 0 reads the\n"
        "plan and the evaluation keys once and sends them once per node (the ranks of a\n"
        "node share one copy in memory), sends input i to rank\n"
        "i %% K, and gathers and writes the outputs (all or none); the i-th --out is the\n"
        "output of the i-th --in. Prints per rank: inputs, samples, seconds preparing\n"
        "and computing (wall, CPU), bytes received and sent. One rank per node with --threads\n"
        "set to its cores is the intended layout (docs/SCALING.md).\n");
}

/* Load a ciphertext set from memory: an anonymous in-memory file named by /proc/self/fd. */
static tsr_status ct_from_bytes(const tsr_nn_plan *p, tsr_backend *be, const uint8_t *key_id,
                                const uint8_t *buf, size_t len, tsr_tile **t, int *n) {
    int fd = memfd_create("tessera-ct", MFD_CLOEXEC);
    if (fd < 0) return tsr_fail(TSR_ERR_IO, "memfd_create failed");
    size_t off = 0;
    while (off < len) {
        ssize_t k = write(fd, buf + off, len - off);
        if (k <= 0) {
            close(fd);
            return tsr_fail(TSR_ERR_IO, "cannot write the received inputs to memory");
        }
        off += (size_t)k;
    }
    char path[64];
    snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
    tsr_status st = tsr_nn_ct_load(p, be, TSR_NN_CT_INPUT, path, key_id, t, n);
    close(fd);
    return st;
}

static tsr_status ct_to_bytes(const tsr_nn_plan *p, const tsr_tile *y, int n, const uint8_t *key_id,
                              uint8_t **buf, size_t *len) {
    char *mem = NULL;
    size_t size = 0;
    FILE *fp = open_memstream(&mem, &size);
    if (!fp) return tsr_fail(TSR_ERR_NOMEM, "open_memstream failed");
    tsr_status st = tsr_nn_ct_write(p, y, TSR_NN_CT_OUTPUT, n, key_id, fp);
    if (fclose(fp) != 0 && st == TSR_OK) st = tsr_fail(TSR_ERR_NOMEM, "out of memory");
    if (st != TSR_OK) {
        free(mem);
        return st;
    }
    *buf = (uint8_t *)mem;
    *len = size;
    return TSR_OK;
}

/* Phase 1: plan and keys from rank 0's files to every rank, one copy per node. */
static tsr_status share_file(int rank, const char *path, uint64_t max, const char *what,
                             cli_mpi_shared *sh) {
    tsr_status st = TSR_OK;
    uint8_t *buf = NULL;
    uint64_t len = 0;
    if (rank == 0) {
        size_t n = 0;
        st = tsr_read_whole_file(path, max, what, &buf, &n);
        len = st == TSR_OK ? n : CLI_MPI_FAILED;
    }
    tsr_status bst = cli_mpi_share_bytes(buf, len, rank, sh);
    free(buf);
    return st != TSR_OK ? st : bst;
}

/* True on every rank iff ok on every rank. */
static int all_ok(int ok) {
    int all = 0;
    MPI_Allreduce(&ok, &all, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD);
    return all;
}

/* Rank 0: the per-rank table. */
static void print_table(const double *all, int size, double wall) {
    double files = 0, samples = 0, moved = 0;
    printf("rank  inputs  samples  prepare s  compute s  compute CPU s  bytes in  bytes out\n");
    for (int r = 0; r < size; r++) {
        const double *s = all + r * ST_N;
        printf("%4d  %6.0f  %7.0f  %9.2f  %9.2f  %13.2f  %8.3g  %9.3g\n", r, s[ST_FILES],
               s[ST_SAMPLES], s[ST_PREPARE], s[ST_COMPUTE], s[ST_CPU], s[ST_BYTES_IN],
               s[ST_BYTES_OUT]);
        files += s[ST_FILES];
        samples += s[ST_SAMPLES];
        moved += s[ST_BYTES_IN] + s[ST_BYTES_OUT];
    }
    printf("%d rank%s, %.0f inputs, %.0f samples in %.2f s (%.2f samples/s), %.3g bytes moved "
           "over MPI\n",
           size, size == 1 ? "" : "s", files, samples, wall, wall > 0 ? samples / wall : 0.0,
           moved);
}

int cli_mpi_infer(int argc, char **argv) {
    if (cli_wants_help(argc, argv)) {
        mpi_usage(stdout);
        return 0;
    }
    static infer_opts o; /* 64 KiB of file lists: not on the stack */
    int rc = infer_parse(VERB, argc, argv, &o);
    if (rc) return rc;
    const cli_list ins = o.ins, outs = o.outs;
    const char *pos[2] = { o.plan, o.keys };
    const long threads = o.threads;
    const int insecure = o.insecure, force = o.force;
    int rank = 0, size = 1;
    if ((rc = cli_mpi_start(VERB, &rank, &size)) != 0) return rc;
    char verb[64];
    snprintf(verb, sizeof verb, VERB " (rank %d)", rank);
    cli_output *co = calloc((size_t)outs.n, sizeof *co);
    const char **inputs = calloc((size_t)ins.n + 2, sizeof *inputs);
    if (!co || !inputs) {
        fprintf(stderr, "tessera %s: out of memory\n", verb);
        return cli_mpi_end(1);
    }
    for (int i = 0; i < outs.n; i++) co[i].path = outs.items[i];
    inputs[0] = pos[0];
    inputs[1] = pos[1];
    for (int i = 0; i < ins.n; i++) inputs[2 + i] = ins.items[i];
    if (rank == 0) rc = cli_outputs_check(VERB, co, outs.n, inputs, ins.n + 2, force);
    MPI_Bcast(&rc, 1, MPI_INT, 0, MPI_COMM_WORLD);
    if (rc) goto finish;
    if (insecure && rank == 0) nn_cli_insecure_warning(VERB);
    if (threads) tsr_set_num_threads((int)threads);
    double t_start = MPI_Wtime(), stats[ST_N] = { 0 };

    /* 1. one plan and one key set, read once, prepared on every rank */
    tsr_nn_plan *p = NULL;
    tsr_ckks_params *params = NULL;
    tsr_ckks_relin_key *rk = NULL;
    tsr_ckks_galois_keys *gk = NULL;
    tsr_backend *be = NULL;
    tsr_nn_runner *r = NULL;
    uint8_t key_id[TSR_CKKS_KEY_ID_BYTES];
    cli_mpi_shared sh;
    const char *what = "reading the plan";
    tsr_status st = share_file(rank, pos[0], MAX_PLAN_BYTES, "the plan", &sh);
    int quiet = st != TSR_OK && sh.win == MPI_WIN_NULL && rank != 0; /* rank 0 says why */
    if (st == TSR_OK)
        st = tsr_nn_plan_from_bytes(&p, sh.data, (size_t)sh.len,
                                    insecure ? TSR_CKKS_ALLOW_INSECURE_PARAMETERS : 0);
    stats[ST_BYTES_IN] += (double)sh.received;
    uint64_t shared_bytes = sh.len;
    int nodes = sh.nodes, node_ranks = sh.node_ranks;
    cli_mpi_shared_free(&sh);
    if (st == TSR_OK) st = tsr_nn_plan_params(p, &params);
    if (all_ok(st == TSR_OK)) {
        what = "loading the evaluation keys";
        st = share_file(rank, pos[1], MAX_DATA_BYTES, "the evaluation keys", &sh);
        quiet = st != TSR_OK && sh.win == MPI_WIN_NULL && rank != 0;
        stats[ST_BYTES_IN] += (double)sh.received;
        shared_bytes += sh.len;
        if (st == TSR_OK)
            st = tsr_ckks_eval_keys_from_bytes(&rk, &gk, key_id, params, sh.data, (size_t)sh.len);
        cli_mpi_shared_free(&sh);
        if (st == TSR_OK) what = "checking the evaluation keys";
        if (st == TSR_OK) st = tsr_nn_check_keys(p, rk, gk);
        if (st == TSR_OK) what = "preparing the plan";
        double t0 = MPI_Wtime();
        if (st == TSR_OK) st = tsr_backend_ckks_create(params, NULL, NULL, rk, gk, &be);
        if (st == TSR_OK) st = tsr_nn_runner_create(p, be, &r);
        stats[ST_PREPARE] = MPI_Wtime() - t0;
    }
    if (st != TSR_OK) rc = rank != 0 && quiet ? 1 : cli_fail(verb, st, what);
    if (!all_ok(rc == 0)) {
        rc = rc ? rc : 1;
        goto cleanup;
    }

    /* 2. inputs to their ranks */
    int n_files = ins.n;
    uint8_t **data = calloc((size_t)n_files, sizeof *data);
    uint64_t *dlen = calloc((size_t)n_files, sizeof *dlen);
    tsr_status *fst = calloc((size_t)n_files, sizeof *fst);
    if (!data || !dlen || !fst) {
        fprintf(stderr, "tessera %s: out of memory\n", verb);
        return cli_mpi_end(1);
    }
    for (int i = 0; i < n_files; i++) {
        int owner = i % size;
        if (rank == 0) {
            size_t n = 0;
            tsr_status rs = tsr_read_whole_file(ins.items[i], MAX_DATA_BYTES,
                                                "the encrypted inputs", &data[i], &n);
            if (rs != TSR_OK) {
                cli_fail(verb, rs, ins.items[i]);
                fst[i] = rs;
            }
            dlen[i] = rs == TSR_OK ? n : CLI_MPI_FAILED;
            if (owner != 0) {
                cli_mpi_send_bytes(data[i], dlen[i], owner, TAG_IN);
                if (dlen[i] != CLI_MPI_FAILED) stats[ST_BYTES_OUT] += (double)dlen[i];
                free(data[i]);
                data[i] = NULL;
            }
        } else if (owner == rank) {
            fst[i] = cli_mpi_recv_bytes(&data[i], &dlen[i], 0, TAG_IN);
            if (fst[i] == TSR_OK) stats[ST_BYTES_IN] += (double)dlen[i];
        }
    }

    /* 3. every rank runs its share */
    double t0 = MPI_Wtime(), c0 = cpu_seconds();
    for (int i = rank; i < n_files; i += size) {
        if (fst[i] != TSR_OK) continue; /* reported by rank 0 */
        tsr_tile *x = NULL, *y = NULL;
        int n = 0;
        uint8_t *out = NULL;
        size_t olen = 0;
        st = ct_from_bytes(p, tsr_nn_runner_backend(r), key_id, data[i], (size_t)dlen[i], &x, &n);
        free(data[i]);
        data[i] = NULL;
        if (st == TSR_OK) st = tsr_nn_run(r, x, &y, NULL);
        tsr_tile_free(x);
        if (st == TSR_OK) st = ct_to_bytes(p, y, n, key_id, &out, &olen);
        tsr_tile_free(y);
        if (st != TSR_OK) {
            char w[1100];
            snprintf(w, sizeof w, "running %s", ins.items[i]);
            cli_fail(verb, st, w);
            fst[i] = st;
            continue;
        }
        data[i] = out;
        dlen[i] = olen;
        stats[ST_FILES] += 1;
        stats[ST_SAMPLES] += n;
    }
    stats[ST_COMPUTE] = MPI_Wtime() - t0;
    stats[ST_CPU] = cpu_seconds() - c0;

    /* 4. outputs gathered and written by rank 0, all or none */
    for (int i = 0; i < n_files; i++) {
        int owner = i % size;
        if (owner == 0) continue;
        if (rank == owner) {
            cli_mpi_send_bytes(data[i], fst[i] == TSR_OK ? dlen[i] : CLI_MPI_FAILED, 0, TAG_OUT);
            if (fst[i] == TSR_OK) stats[ST_BYTES_OUT] += (double)dlen[i];
        } else if (rank == 0) {
            if (cli_mpi_recv_bytes(&data[i], &dlen[i], owner, TAG_OUT) != TSR_OK)
                fst[i] = TSR_ERR_IO;
            else
                stats[ST_BYTES_IN] += (double)dlen[i];
        }
    }
    double *all = rank == 0 ? calloc((size_t)size * ST_N, sizeof(double)) : NULL;
    MPI_Gather(stats, ST_N, MPI_DOUBLE, all, ST_N, MPI_DOUBLE, 0, MPI_COMM_WORLD);
    if (rank == 0) {
        int failed = 0;
        for (int i = 0; i < n_files; i++) failed += fst[i] != TSR_OK;
        if (failed) {
            fprintf(stderr,
                    "tessera " VERB ": %d of %d inputs failed (see above); no output "
                    "written\n",
                    failed, n_files);
            rc = 1;
        } else {
            tsr_outset set;
            rc = cli_outputs_open(VERB, &set, co, outs.n, force);
            st = TSR_OK;
            for (int i = 0; !rc && st == TSR_OK && i < n_files; i++)
                if (fwrite(data[i], 1, (size_t)dlen[i], co[i].fp) != dlen[i])
                    st = tsr_fail(TSR_ERR_IO, "cannot write '%s'", co[i].path);
            if (!rc) rc = cli_outputs_commit(VERB, &set, st, "writing the outputs");
        }
        if (all) print_table(all, size, MPI_Wtime() - t_start);
        printf("plan and evaluation keys: %.3g bytes read once by rank 0, sent once to each "
               "of the %d other node%s, shared in place by the ranks of a node (%d on rank "
               "0's, %d node%s)\n",
               (double)shared_bytes, nodes - 1, nodes - 1 == 1 ? "" : "s", node_ranks, nodes,
               nodes == 1 ? "" : "s");
        if (!rc)
            printf("encrypted predictions: %d file%s (%s ...)\n", n_files, n_files == 1 ? "" : "s",
                   co[0].path);
    }
    free(all);
    MPI_Bcast(&rc, 1, MPI_INT, 0, MPI_COMM_WORLD);
    for (int i = 0; i < n_files; i++) free(data[i]);
    free(data);
    free(dlen);
    free(fst);
cleanup:
    tsr_nn_runner_free(r);
    tsr_backend_free(be);
    tsr_ckks_galois_keys_free(gk);
    tsr_ckks_relin_key_free(rk);
    tsr_ckks_params_free(params);
    tsr_nn_plan_free(p);
finish:
    free(co);
    free(inputs);
    MPI_Finalize(); /* every rank knows rc here */
    return rc;
}
