/*
 * cli/mpi_internal.h - helpers shared by cli/mpi.c and cli/mpi_infer.c: the
 * MPI session, byte messages of any size (in pieces of at most 1 GiB) and
 * bytes shared once per node.
 */
#ifndef TSR_CLI_MPI_INTERNAL_H
#define TSR_CLI_MPI_INTERNAL_H

#include "cli.h"
#include "cli_mpi.h"

#include "core/error.h"

#include <mpi.h>
#include <stdint.h>

/** A length that says "the sender failed; nothing follows". */
#define CLI_MPI_FAILED UINT64_MAX

/** MPI_Init (once) and this process's rank and the job's size; 0 or an exit code. */
int cli_mpi_start(const char *verb, int *rank, int *size);
/** Send len bytes (len CLI_MPI_FAILED: only the failure) to rank `to`. */
void cli_mpi_send_bytes(const uint8_t *buf, uint64_t len, int to, int tag);
/** Receive what cli_mpi_send_bytes sent into a new buffer (free()); TSR_ERR_IO if it failed. */
tsr_status cli_mpi_recv_bytes(uint8_t **buf, uint64_t *len, int from, int tag);
/**
 * Collective: rank 0's *len bytes of *buf to every rank (others get a new buffer, free()).
 * Rank 0 sets *len = CLI_MPI_FAILED to make every rank fail with TSR_ERR_IO.
 */
tsr_status cli_mpi_bcast_bytes(uint8_t **buf, uint64_t *len, int rank);

/** Bytes rank 0 shared with every rank, one copy per node (cli_mpi_share_bytes). */
typedef struct cli_mpi_shared {
    const uint8_t *data; /* len bytes, read-only, valid until cli_mpi_shared_free */
    uint64_t len;
    uint64_t received; /* bytes this rank received over MPI (len on other nodes' first ranks) */
    int nodes;         /* nodes of the job (MPI_COMM_TYPE_SHARED groups) */
    int node_ranks;    /* ranks on this rank's node */
    MPI_Win win;
} cli_mpi_shared;

/**
 * Collective: rank 0's len bytes of buf (len CLI_MPI_FAILED: every rank fails with
 * TSR_ERR_IO) to every rank, sent once per node: rank 0 broadcasts them to the first rank
 * of each node (MPI_Comm_split_type SHARED), which holds them in an MPI-3 shared-memory
 * window the node's other ranks read in place, so a node holds and receives one copy
 * whatever its rank count. Free with cli_mpi_shared_free (collective; a no-op after a
 * failure).
 */
tsr_status cli_mpi_share_bytes(const uint8_t *buf, uint64_t len, int rank, cli_mpi_shared *sh);
void cli_mpi_shared_free(cli_mpi_shared *sh);

#endif /* TSR_CLI_MPI_INTERNAL_H */
