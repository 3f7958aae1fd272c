/*
 * cli/mpi_internal.h - helpers shared by cli/mpi.c and cli/mpi_infer.c: the
 * MPI session and byte messages of any size (in pieces of at most 1 GiB).
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

#endif /* TSR_CLI_MPI_INTERNAL_H */
