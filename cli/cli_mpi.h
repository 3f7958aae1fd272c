/*
 * cli/cli_mpi.h - scale-out over MPI (OpenMPI from Debian; docs/SCALING.md): the
 * MPI session of one command, byte messages of any size, and the two
 * distributed verbs. MPI lives in the command only: libtessera never links
 * it (the library's side of a distributed FL run is the transport-free
 * interface tsr_fl_comm of fl/sim.h).
 *
 *   mpirun -n K tessera infer --mpi model.plan server.evk --in a.ct [--in b.ct ...]
 *                                   --out a.out.ct [--out b.out.ct ...]
 *   mpirun -n K tessera fl run --mpi [fl run options]
 */
#ifndef TSR_CLI_CLI_MPI_H
#define TSR_CLI_CLI_MPI_H

#include "fl/sim.h"

#include <stddef.h>
#include <stdint.h>

/** True if argv[1..argc) holds the flag --mpi. */
int cli_mpi_wanted(int argc, char **argv);

/**
 * `tessera infer --mpi`: rank 0 reads the plan and the evaluation keys once
 * and broadcasts their bytes (every rank prepares the plan once), reads the
 * input ciphertext sets and sends input i to rank i % K, every rank runs its
 * share, rank 0 gathers the outputs and writes them (all or none). Prints a
 * per-rank table (inputs, samples, seconds, bytes moved). Exit code as infer.
 */
int cli_mpi_infer(int argc, char **argv);

/**
 * `tessera fl run --mpi`: start MPI and fill *comm (rank, size, the gather and
 * broadcast of fl/sim.h over MPI_COMM_WORLD). Returns 0, or an exit code
 * after printing why.
 */
int cli_mpi_fl_begin(const char *verb, tsr_fl_comm *comm);
/**
 * End the MPI session of a command: rc 0 finalizes MPI and returns 0; any
 * other rc aborts the whole job with it (a rank that failed cannot leave the
 * others waiting in a collective). Call it once on every rank.
 */
int cli_mpi_end(int rc);

#endif /* TSR_CLI_CLI_MPI_H */
