#!/usr/bin/python3
"""Make the PyTorch fixtures of issue 11 under tests/data/torch/: four
HE-friendly models with small random (untrained) weights, exported by
torch.onnx with a free batch dimension, plus inputs and PyTorch's outputs
for a few samples as ONNX TensorProto files (<name>_input.pb,
<name>_output.pb). tests/test_onnx_torch_models.c imports each through the
graph importer and runs the plaintext executor against these outputs.

Run with Debian's PyTorch (python3-torch, python3-onnx; never from make check;
`scripts/deps.sh experiments` installs python3-torch):
    /usr/bin/python3 scripts/make_torch_fixtures.py [OUTDIR] [--samples N]

--samples N also writes <name>_inputs.npy and <name>_outputs.npy: N more
samples (drawn after everything above, so the weights do not change) and
PyTorch's outputs for them, float64, for `make torch-eval` (encrypted
outputs against PyTorch's, docs/INFERENCE.md).

Seeded (torch.manual_seed(11)): reruns write the same weights and data
(the .onnx bytes may differ between PyTorch versions).

Models (polynomial activations written as Mul/Add/Pow so the importer's
polynomial recogniser folds each into one node):
  autoencoder  MLP 784-128-32-128-784; act(x) = 0.5x + 0.25x^2 after every
               layer but the last. Input (N, 784).
  cnn          (N, 1, 28, 28): Conv 3x3 (1->8) -> act -> depthwise Conv 3x3
               (groups 8) -> act -> AvgPool 3x3 stride 2 pad 1 (PyTorch's
               default count_include_pad=True) -> Conv 3x3 stride 2 (8->8)
               -> act -> AvgPool 2x2 pad 1 -> x.view(x.size(0), -1) ->
               Linear(128, 10).
  transformer  one encoder block on (N, 16, 32), 4 heads of 8:
               Q, K, V = Linear(x); per head scores = (Q K^T)^2 / L with
               L = 16 (power attention, no softmax); heads = scores V;
               Linear output projection; residual; feed-forward
               Linear(32, 64) -> act -> Linear(64, 32); residual.
               LayerNorm is left out (no polynomial form without an
               approximation of 1/sqrt). Heads are split with
               x.reshape(B, T, H, D) from x.shape (Shape/Gather/Concat in
               the export, folded by the importer).
  transformer_small  the same block on (N, 4, 8), 2 heads of 4, L = 4,
               feed-forward 8 -> 16 -> 8: small enough to run encrypted in
               a unit test (tests/test_nn_he.c).
"""
import os
import sys

import numpy as np
from onnx import numpy_helper

try:
    import torch
    import torch.nn as nn
except ImportError:
    sys.exit("make_torch_fixtures.py needs Debian's PyTorch (python3-torch) under "
             "/usr/bin/python3: install it with `scripts/deps.sh experiments` (as root)")


def act(x):
    return 0.5 * x + 0.25 * x**2


class AutoEncoder(nn.Module):
    def __init__(self):
        super().__init__()
        self.e1 = nn.Linear(784, 128)
        self.e2 = nn.Linear(128, 32)
        self.d1 = nn.Linear(32, 128)
        self.d2 = nn.Linear(128, 784)

    def forward(self, x):
        x = act(self.e1(x))
        x = act(self.e2(x))
        x = act(self.d1(x))
        return self.d2(x)


class CNN(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 8, 3, padding=1)
        self.dw = nn.Conv2d(8, 8, 3, padding=1, groups=8)
        self.pool1 = nn.AvgPool2d(3, stride=2, padding=1)
        self.conv2 = nn.Conv2d(8, 8, 3, stride=2)
        self.pool2 = nn.AvgPool2d(2, padding=1)
        self.fc = nn.Linear(128, 10)

    def forward(self, x):
        x = act(self.conv1(x))
        x = self.pool1(act(self.dw(x)))
        x = self.pool2(act(self.conv2(x)))
        x = x.view(x.size(0), -1)
        return self.fc(x)


class Encoder(nn.Module):
    def __init__(self, d=32, heads=4, ff=64):
        super().__init__()
        self.h = heads
        self.q = nn.Linear(d, d)
        self.k = nn.Linear(d, d)
        self.v = nn.Linear(d, d)
        self.o = nn.Linear(d, d)
        self.f1 = nn.Linear(d, ff)
        self.f2 = nn.Linear(ff, d)

    def forward(self, x):
        B, T, C = x.shape
        D = C // self.h
        q = self.q(x).reshape(B, T, self.h, D).transpose(1, 2)
        k = self.k(x).reshape(B, T, self.h, D).transpose(1, 2)
        v = self.v(x).reshape(B, T, self.h, D).transpose(1, 2)
        s = torch.matmul(q, k.transpose(-2, -1))
        a = torch.matmul(s**2 / T, v)
        a = a.transpose(1, 2).reshape(B, T, C)
        x = x + self.o(a)
        return x + self.f2(act(self.f1(x)))


def write_pb(path, arr, name):
    with open(path, "wb") as f:
        f.write(numpy_helper.from_array(arr.astype(np.float32), name).SerializeToString())


def export(outdir, name, model, x):
    model.eval()
    path = os.path.join(outdir, name + ".onnx")
    torch.onnx.export(model, x, path, input_names=["input"], output_names=["output"],
                      dynamic_axes={"input": {0: "N"}, "output": {0: "N"}}, opset_version=13)
    with torch.no_grad():
        y = model(x)
    write_pb(os.path.join(outdir, name + "_input.pb"), x.numpy(), "input")
    write_pb(os.path.join(outdir, name + "_output.pb"), y.numpy(), "output")
    print("%s: %s -> %s, |y| <= %.3g, %d bytes" % (name, tuple(x.shape), tuple(y.shape),
          float(y.abs().max()), os.path.getsize(path)))


def write_eval(outdir, name, model, x):
    with torch.no_grad():
        y = model(x)
    np.save(os.path.join(outdir, name + "_inputs.npy"), x.numpy().astype(np.float64))
    np.save(os.path.join(outdir, name + "_outputs.npy"), y.numpy().astype(np.float64))
    print("%s: %d evaluation samples" % (name, x.shape[0]))


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    args = sys.argv[1:]
    samples = 0
    if "--samples" in args:
        i = args.index("--samples")
        samples = int(args[i + 1])
        del args[i:i + 2]
    outdir = args[0] if args else os.path.join(here, "..", "tests", "data", "torch")
    os.makedirs(outdir, exist_ok=True)
    torch.manual_seed(11)
    n = 8
    specs = [("autoencoder", AutoEncoder, lambda k: torch.rand(k, 784)),
             ("cnn", CNN, lambda k: torch.rand(k, 1, 28, 28)),
             ("transformer", Encoder, lambda k: 0.5 * torch.randn(k, 16, 32)),
             ("transformer_small", lambda: Encoder(d=8, heads=2, ff=16),
              lambda k: 0.5 * torch.randn(k, 4, 8))]
    # the order of random draws is the one of the committed fixtures: a model, its inputs,
    # the next model...
    models = []
    for name, make, draw in specs:
        model = make()
        export(outdir, name, model, draw(n))
        models.append((name, model, draw))
    if samples:
        for name, model, draw in models:
            model.eval()
            write_eval(outdir, name, model, draw(samples))


if __name__ == "__main__":
    main()
