#!/usr/bin/env python3
"""Encrypted inference with Tessera from Python, notebook style (one cell per
step, `# %%` markers: open it in Jupyter/VS Code or run it as a script).

The flow is pyhelayers' (compile -> keys -> encrypt -> predict -> decrypt):
the model owner compiles an ONNX network into a plan, the client makes keys,
encrypts a batch and keeps the secret key, the server runs the plan with the
evaluation keys only, the client decrypts.

    python3 examples/encrypted_inference.py [model.onnx] [--quick] [--server URL]

--quick uses test-only parameters (N = 2^11, below 128-bit security) so it
runs in seconds; --server sends the encrypted batch to a `tessera serve`
holding the same plan (docs/SERVING.md) instead of running it in-process.
Needs libtessera (make install, or TESSERA_LIBRARY=build/lib/libtessera.so)
and the package (pip install --no-build-isolation --no-index ./python, or
PYTHONPATH=python).
"""

# %% Setup
import argparse
import os
import time

import numpy as np

import tessera

here = os.path.dirname(os.path.abspath(__file__))
ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
ap.add_argument("model", nargs="?", default=os.path.join(here, "..", "tests", "data",
                                                           "nn_torch_poly.onnx"))
ap.add_argument("--quick", action="store_true", help="test-only parameters (insecure, fast)")
ap.add_argument("--server", help="URL of a tessera serve holding the plan")
ap.add_argument("--plan-out", help="save the plan here (for tessera serve --plan)")
args = ap.parse_args()

# %% 1. Model owner: import the ONNX network and compile it for 4 samples at a time
model = tessera.Model.from_onnx(args.model)
print("model: input", model.input_shape, "->", model.output_size, "outputs")
if model.report:
    print("importer notes:", model.report.strip())
extra = dict(log_n=11, insecure=True) if args.quick else {}
plan = tessera.compile(model, batch=4, **extra)
print("plan %s...: N = %d, batch %d, predicted %.2f s / batch, %.0f MiB on the server"
      % (plan.id[:12], plan.ring_degree, plan.batch, plan.predicted_seconds, plan.predicted_mib))
if args.plan_out:
    plan.save(args.plan_out)

# %% 2. Client: keys. The secret key stays here; the evaluation keys go to the server
keys = tessera.KeyPair(plan)
print("keys: key set %s..., evaluation keys %.1f MiB (no secret)"
      % (keys.id[:12], len(keys.eval_keys()) / 2**20))

# %% 3. Client: encrypt a batch (inputs preprocessed like the model's, here in [0, 1])
x = np.random.default_rng(0).uniform(0.0, 1.0, (4,) + model.input_shape)
ct = tessera.encrypt(plan, keys, x)
print("encrypted %d samples: %.1f MiB of ciphertexts" % (ct.samples, len(ct) / 2**20))

# %% 4. Server: predict on the encrypted batch
t0 = time.time()
if args.server:
    out = tessera.Server(args.server).infer(plan, keys.eval_keys(), ct)
else:
    out = tessera.infer(plan, keys.eval_keys(), ct)
print("encrypted inference: %.2f s" % (time.time() - t0))

# %% 5. Client: decrypt and compare with the plaintext prediction
y = tessera.decrypt(plan, keys, out)
ref = plan.forward(x)
print("predicted classes:", y.argmax(axis=1), "(plaintext:", ref.argmax(axis=1), ")")
print("largest difference from plaintext: %.2e" % np.max(np.abs(y - ref)))
assert (y.argmax(axis=1) == ref.argmax(axis=1)).all()
