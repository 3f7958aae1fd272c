/*
 * circuits/circuits_internal.h - helpers shared by the circuits files.
 */
#ifndef TSR_CIRCUITS_INTERNAL_H
#define TSR_CIRCUITS_INTERNAL_H

#include "tessera/circuits.h"

/** TSR_ERR_INVALID_ARG unless s is a valid series (see tsr_cheb); NULL aborts. */
tsr_status circuits_check_series(const tsr_cheb *s);

/**
 * The checks every circuit makes of its encrypted input (circuits/input.c): in, out and the
 * evaluator share one parameter set (TSR_ERR_MISMATCH), in is a non-empty ciphertext of 2
 * polynomials (TSR_ERR_INVALID_ARG) at its level's canonical scale (TSR_ERR_SCALE).
 * *level receives in's level.
 */
tsr_status circuits_check_input(const tsr_ckks_evaluator *ev, const tsr_ckks_ciphertext *out,
                                const tsr_ckks_ciphertext *in, int *level);

#endif /* TSR_CIRCUITS_INTERNAL_H */
