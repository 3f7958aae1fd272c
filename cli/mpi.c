/*
 * cli/mpi.c - the MPI session of a command, byte messages, bytes shared once
 * per node (an MPI-3 shared-memory window on each node), and the MPI
 * transport of a distributed FL run (tsr_fl_comm of fl/sim.h): worker rows
 * gathered at rank 0, parameters broadcast from it. See cli/cli_mpi.h and
 * docs/SCALING.md.
 */
#include "mpi_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int cli_mpi_wanted(int argc, char **argv) {
    for (int i = 1; i < argc; i++)
        if (strcmp(argv[i], "--mpi") == 0) return 1;
    return 0;
}

int cli_mpi_start(const char *verb, int *rank, int *size) {
    int inited = 0;
    MPI_Initialized(&inited);
    if (!inited && MPI_Init(NULL, NULL) != MPI_SUCCESS)
        return cli_usage_error(verb, "--mpi: MPI could not start (run under mpirun)");
    MPI_Comm_rank(MPI_COMM_WORLD, rank);
    MPI_Comm_size(MPI_COMM_WORLD, size);
    return 0;
}

/* The ranks of this node (MPI_COMM_TYPE_SHARED) and, on each node's first rank, the node
 * leaders (world rank 0 is the first of its node and leader 0); made on first use. */
static MPI_Comm node_comm = MPI_COMM_NULL, leader_comm = MPI_COMM_NULL;

static void node_comms(void) {
    if (node_comm != MPI_COMM_NULL) return;
    int rank, node_rank;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, rank, MPI_INFO_NULL, &node_comm);
    MPI_Comm_rank(node_comm, &node_rank);
    MPI_Comm_split(MPI_COMM_WORLD, node_rank == 0 ? 0 : MPI_UNDEFINED, rank, &leader_comm);
}

int cli_mpi_end(int rc) {
    if (rc != 0) {
        fflush(NULL);
        MPI_Abort(MPI_COMM_WORLD, rc); /* ends every rank; does not return */
        return rc;
    }
    if (leader_comm != MPI_COMM_NULL) MPI_Comm_free(&leader_comm);
    if (node_comm != MPI_COMM_NULL) MPI_Comm_free(&node_comm);
    MPI_Finalize();
    return 0;
}

/* Messages above 1 GiB go in pieces (MPI counts are ints). */
#define CHUNK ((size_t)1 << 30)

void cli_mpi_send_bytes(const uint8_t *buf, uint64_t len, int to, int tag) {
    MPI_Send(&len, 1, MPI_UINT64_T, to, tag, MPI_COMM_WORLD);
    for (uint64_t off = 0; off < len && buf; off += CHUNK) {
        uint64_t k = len - off < CHUNK ? len - off : CHUNK;
        MPI_Send(buf + off, (int)k, MPI_BYTE, to, tag, MPI_COMM_WORLD);
    }
}

tsr_status cli_mpi_recv_bytes(uint8_t **buf, uint64_t *len, int from, int tag) {
    *buf = NULL;
    MPI_Recv(len, 1, MPI_UINT64_T, from, tag, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
    if (*len == CLI_MPI_FAILED) return TSR_ERR_IO;
    *buf = malloc(*len ? *len : 1);
    if (!*buf) { /* the sender is already sending: nothing to do but stop the job */
        fprintf(stderr, "tessera: out of memory receiving %llu bytes over MPI\n",
                (unsigned long long)*len);
        MPI_Abort(MPI_COMM_WORLD, 1);
    }
    for (uint64_t off = 0; off < *len; off += CHUNK) {
        uint64_t k = *len - off < CHUNK ? *len - off : CHUNK;
        MPI_Recv(*buf + off, (int)k, MPI_BYTE, from, tag, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
    }
    return TSR_OK;
}

tsr_status cli_mpi_bcast_bytes(uint8_t **buf, uint64_t *len, int rank) {
    MPI_Bcast(len, 1, MPI_UINT64_T, 0, MPI_COMM_WORLD);
    if (*len == CLI_MPI_FAILED) return TSR_ERR_IO;
    if (rank != 0) {
        *buf = malloc(*len ? *len : 1);
        int ok = *buf != NULL, all = 0;
        MPI_Allreduce(&ok, &all, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD);
        if (!all)
            return tsr_fail(TSR_ERR_NOMEM, "out of memory for %llu broadcast bytes",
                            (unsigned long long)*len);
    } else {
        int ok = 1, all = 0;
        MPI_Allreduce(&ok, &all, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD);
        if (!all) return tsr_fail(TSR_ERR_NOMEM, "a rank is out of memory for the broadcast");
    }
    for (uint64_t off = 0; off < *len; off += CHUNK) {
        uint64_t k = *len - off < CHUNK ? *len - off : CHUNK;
        MPI_Bcast(*buf + off, (int)k, MPI_BYTE, 0, MPI_COMM_WORLD);
    }
    return TSR_OK;
}

tsr_status cli_mpi_share_bytes(const uint8_t *buf, uint64_t len, int rank, cli_mpi_shared *sh) {
    memset(sh, 0, sizeof *sh);
    sh->win = MPI_WIN_NULL;
    node_comms();
    MPI_Bcast(&len, 1, MPI_UINT64_T, 0, MPI_COMM_WORLD);
    if (len == CLI_MPI_FAILED) return TSR_ERR_IO;
    int node_rank;
    MPI_Comm_rank(node_comm, &node_rank);
    MPI_Comm_size(node_comm, &sh->node_ranks);
    if (rank == 0) MPI_Comm_size(leader_comm, &sh->nodes);
    MPI_Bcast(&sh->nodes, 1, MPI_INT, 0, MPI_COMM_WORLD);
    /* one window per node, all of it on the node's first rank; a failed allocation aborts
     * (MPI's default error handler for windows) */
    uint8_t *mine = NULL, *node_copy = NULL;
    MPI_Win_allocate_shared(node_rank == 0 ? (MPI_Aint)(len ? len : 1) : 0, 1, MPI_INFO_NULL,
                            node_comm, &mine, &sh->win);
    MPI_Aint size = 0;
    int disp = 1;
    MPI_Win_shared_query(sh->win, 0, &size, &disp, &node_copy);
    MPI_Win_lock_all(MPI_MODE_NOCHECK, sh->win);
    if (node_rank == 0) { /* rank 0 -> the other nodes' first ranks, into their windows */
        if (rank == 0 && len) memcpy(node_copy, buf, len);
        for (uint64_t off = 0; off < len; off += CHUNK) {
            uint64_t k = len - off < CHUNK ? len - off : CHUNK;
            MPI_Bcast(node_copy + off, (int)k, MPI_BYTE, 0, leader_comm);
        }
        if (rank != 0) sh->received = len;
    }
    MPI_Win_sync(sh->win); /* the writes, then every rank of the node reads them in place */
    MPI_Barrier(node_comm);
    MPI_Win_sync(sh->win);
    sh->data = node_copy;
    sh->len = len;
    return TSR_OK;
}

void cli_mpi_shared_free(cli_mpi_shared *sh) {
    if (sh->win == MPI_WIN_NULL) return;
    MPI_Win_unlock_all(sh->win);
    MPI_Win_free(&sh->win);
    sh->data = NULL;
}

/* ---- FL: worker rows to rank 0, parameters from it ---------------------------------------- */

/* Message kinds between a worker rank and rank 0 (per pair, MPI keeps their order). */
enum { TAG_G = 1, TAG_BD, TAG_LOSS };

static tsr_status fl_gather(void *ctx, float *G, size_t n, float *bd, size_t m, size_t d,
                            double *loss) {
    const tsr_fl_comm *c = ctx;
    size_t P = (size_t)c->size, me = (size_t)c->rank;
    if (d > (size_t)INT32_MAX)
        return tsr_fail(TSR_ERR_UNSUPPORTED, "--mpi: %zu parameters exceed one MPI message", d);
    if (me != 0) {
        for (size_t i = me; i < n; i += P) {
            MPI_Send(G + i * d, (int)d, MPI_FLOAT, 0, TAG_G, MPI_COMM_WORLD);
            MPI_Send(&loss[i], 1, MPI_DOUBLE, 0, TAG_LOSS, MPI_COMM_WORLD);
        }
        for (size_t j = me; bd && j < m; j += P) {
            MPI_Send(bd + j * d, (int)d, MPI_FLOAT, 0, TAG_BD, MPI_COMM_WORLD);
            MPI_Send(&loss[n + j], 1, MPI_DOUBLE, 0, TAG_LOSS, MPI_COMM_WORLD);
        }
        return TSR_OK;
    }
    size_t nreq = 0;
    for (size_t i = 0; i < n; i++) nreq += i % P ? 2 : 0;
    for (size_t j = 0; bd && j < m; j++) nreq += j % P ? 2 : 0;
    MPI_Request *req = malloc((nreq ? nreq : 1) * sizeof *req);
    if (!req) return tsr_fail(TSR_ERR_NOMEM, "out of memory gathering worker gradients");
    size_t k = 0;
    /* Per source rank, receives are posted in the order that rank sends. */
    for (size_t r = 1; r < P; r++) {
        for (size_t i = r; i < n; i += P) {
            MPI_Irecv(G + i * d, (int)d, MPI_FLOAT, (int)r, TAG_G, MPI_COMM_WORLD, &req[k++]);
            MPI_Irecv(&loss[i], 1, MPI_DOUBLE, (int)r, TAG_LOSS, MPI_COMM_WORLD, &req[k++]);
        }
        for (size_t j = r; bd && j < m; j += P) {
            MPI_Irecv(bd + j * d, (int)d, MPI_FLOAT, (int)r, TAG_BD, MPI_COMM_WORLD, &req[k++]);
            MPI_Irecv(&loss[n + j], 1, MPI_DOUBLE, (int)r, TAG_LOSS, MPI_COMM_WORLD, &req[k++]);
        }
    }
    MPI_Waitall((int)k, req, MPI_STATUSES_IGNORE);
    free(req);
    return TSR_OK;
}

static tsr_status fl_bcast(void *ctx, float *w, size_t d, int *stop) {
    (void)ctx;
    if (d > (size_t)INT32_MAX)
        return tsr_fail(TSR_ERR_UNSUPPORTED, "--mpi: %zu parameters exceed one MPI message", d);
    MPI_Bcast(w, (int)d, MPI_FLOAT, 0, MPI_COMM_WORLD);
    MPI_Bcast(stop, 1, MPI_INT, 0, MPI_COMM_WORLD);
    return TSR_OK;
}

int cli_mpi_fl_begin(const char *verb, tsr_fl_comm *comm) {
    memset(comm, 0, sizeof *comm);
    int rc = cli_mpi_start(verb, &comm->rank, &comm->size);
    if (rc) return rc;
    comm->ctx = comm;
    comm->gather = fl_gather;
    comm->bcast = fl_bcast;
    return 0;
}
