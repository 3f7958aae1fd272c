/*
 * tessera.h - umbrella header of the Tessera library: privacy-preserving
 * machine learning over CKKS homomorphic encryption. Include this one file.
 */
#ifndef TESSERA_H
#define TESSERA_H

#include "tessera/common.h"
#include "tessera/core.h"
#include "tessera/graph.h"
#include "tessera/train.h"
#include "tessera/prune.h"
#include "tessera/ckks.h"
#include "tessera/circuits.h"
#include "tessera/tile.h"
#include "tessera/nn.h"
#include "tessera/onnx.h"
#include "tessera/serve.h"

#endif /* TESSERA_H */
