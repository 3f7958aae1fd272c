"""examples/encrypted_inference.py runs (test-only parameters) and its
encrypted predictions agree with the plaintext ones (the example asserts it)."""

import os
import subprocess
import sys

from conftest import SRC


def test_example_runs():
    out = subprocess.run([sys.executable, os.path.join(SRC, "examples", "encrypted_inference.py"),
                          "--quick"], check=True, capture_output=True, text=True)
    assert "predicted classes" in out.stdout
