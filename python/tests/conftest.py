"""Fixtures of the Python package's tests (run by `make check` through ctest).

Environment: TESSERA_LIBRARY (the in-tree libtessera.so), TESSERA_CLI (the
`tessera` command, for the server test), TSR_SOURCE_DIR (the source tree:
model fixtures). Parameters are test-only (N = 2^11, insecure) so the whole
file runs in seconds.
"""

import os

import numpy as np
import pytest

import tessera

SRC = os.environ.get("TSR_SOURCE_DIR", os.path.join(os.path.dirname(__file__), "..", ".."))
MODEL = os.path.join(SRC, "tests", "data", "nn_torch_poly.onnx")


@pytest.fixture(scope="session")
def model():
    return tessera.Model.from_onnx(MODEL)


@pytest.fixture(scope="session")
def plan(model):
    return tessera.compile(model, batch=2, log_n=11, insecure=True)


@pytest.fixture(scope="session")
def keys(plan):
    return tessera.KeyPair(plan)


@pytest.fixture(scope="session")
def x(model):
    return np.random.default_rng(7).uniform(0.0, 1.0, (2,) + model.input_shape)
