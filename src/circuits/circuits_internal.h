/*
 * circuits/circuits_internal.h - helpers shared by the circuits files.
 */
#ifndef TSR_CIRCUITS_INTERNAL_H
#define TSR_CIRCUITS_INTERNAL_H

#include "tessera/circuits.h"

/** TSR_ERR_INVALID_ARG unless s is a valid series (see tsr_cheb); NULL aborts. */
tsr_status circuits_check_series(const tsr_cheb *s);

#endif /* TSR_CIRCUITS_INTERNAL_H */
