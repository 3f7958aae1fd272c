#!/usr/bin/python3
"""PyTorch side of `tessera bench train`: the same models, data, optimizer and
batch size, timed the same way (training epochs only, median over epochs).

Run with Debian's PyTorch (apt-get install python3-torch python3-numpy):
    /usr/bin/python3 bench/train_torch.py [--epochs 3] [--threads 2]
        [--models cryptonets,conv8,mlp] [--act relu,poly2] [--data DIR]

Models (identical to src/train/arch.c; BN before every activation):
  cryptonets  conv 5x5/2 pad 1 x5 (no bias) -> BN -> act -> flatten -> dense 100
              (no bias) -> BN -> act -> dense 10
  conv8       conv 3x3 pad 1 x8 -> BN -> act -> avgpool 2 -> conv 3x3 pad 1 x16 -> BN
              -> act -> avgpool 2 -> flatten -> dense 10
  mlp         flatten -> dense 100 -> act -> dense 10
  act = ReLU, or poly2: a*x*x + b*x + c with trainable per-layer a, b, c starting at
  the least-squares fit of ReLU on [-4, 4].
Data: the Fashion-MNIST IDX files, pixels (p/255 - 0.2860)/0.3530, whole set in
memory; each epoch is a fresh random permutation cut into batches of 128.
"""
import argparse
import gzip
import os
import statistics
import sys
import time


def _threads_arg():
    for i, a in enumerate(sys.argv):
        if a == "--threads" and i + 1 < len(sys.argv):
            return sys.argv[i + 1]
        if a.startswith("--threads="):
            return a.split("=", 1)[1]
    return "2"


# Debian's PyTorch calls OpenBLAS (pthreads build) for Linear layers; it does not
# follow torch.set_num_threads, so pin it to the same count before torch loads
# (otherwise its extra threads fight PyTorch's OpenMP threads and slow PyTorch down).
os.environ.setdefault("OPENBLAS_NUM_THREADS", _threads_arg())

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn as nn  # noqa: E402
import torch.nn.functional as F  # noqa: E402

MEAN, STD = 0.2860, 0.3530


def load_idx(path):
    op = gzip.open if path.endswith(".gz") else open
    with op(path, "rb") as f:
        data = f.read()
    nd = data[3]
    dims = [int.from_bytes(data[4 + 4 * i:8 + 4 * i], "big") for i in range(nd)]
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * nd).reshape(dims)


def find(d, stem):
    for p in (os.path.join(d, stem + ".gz"), os.path.join(d, stem)):
        if os.path.exists(p):
            return p
    raise SystemExit("missing %s in %s (install dataset-fashion-mnist)" % (stem, d))


def load(d, split):
    x = load_idx(find(d, split + "-images-idx3-ubyte")).astype(np.float32) / 255.0
    y = load_idx(find(d, split + "-labels-idx1-ubyte")).astype(np.int64)
    x = (x - MEAN) / STD
    return torch.from_numpy(x).unsqueeze(1).contiguous(), torch.from_numpy(y)


class Poly2(nn.Module):
    """a*x*x + b*x + c, initialised to the least-squares fit of ReLU on [-B, B]."""

    def __init__(self, bound=4.0):
        super().__init__()
        self.a = nn.Parameter(torch.tensor(15.0 / (32.0 * bound)))
        self.b = nn.Parameter(torch.tensor(0.5))
        self.c = nn.Parameter(torch.tensor(3.0 * bound / 32.0))

    def forward(self, x):
        return self.a * x * x + self.b * x + self.c


def act(kind):
    return nn.ReLU() if kind == "relu" else Poly2()


def build(name, kind):
    if name == "cryptonets":
        return nn.Sequential(nn.Conv2d(1, 5, 5, stride=2, padding=1, bias=False),
                             nn.BatchNorm2d(5), act(kind), nn.Flatten(),
                             nn.Linear(845, 100, bias=False), nn.BatchNorm1d(100), act(kind),
                             nn.Linear(100, 10))
    if name == "conv8":
        return nn.Sequential(nn.Conv2d(1, 8, 3, padding=1, bias=False), nn.BatchNorm2d(8),
                             act(kind), nn.AvgPool2d(2),
                             nn.Conv2d(8, 16, 3, padding=1, bias=False), nn.BatchNorm2d(16),
                             act(kind), nn.AvgPool2d(2), nn.Flatten(), nn.Linear(784, 10))
    if name == "mlp":
        return nn.Sequential(nn.Flatten(), nn.Linear(784, 100), act(kind), nn.Linear(100, 10))
    raise SystemExit("unknown model " + name)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--models", default="cryptonets,conv8,mlp")
    ap.add_argument("--act", default="relu,poly2")
    ap.add_argument("--data", default="/usr/share/datasets/fashion-mnist")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    xtr, ytr = load(a.data, "train")
    xte, yte = load(a.data, "t10k")
    n = xtr.shape[0]
    print("train_torch.py: torch %s, %d epochs, batch 128, Adam lr 1e-3, %d threads "
          "(OpenBLAS %s), %d images" % (torch.__version__, a.epochs, torch.get_num_threads(),
                                       os.environ["OPENBLAS_NUM_THREADS"], n))
    print("%-11s %-6s %10s %10s %10s %9s" % ("model", "act", "epoch s", "min s", "img/s",
                                               "test acc"))
    for name in ("cryptonets", "conv8", "mlp"):
        if name not in a.models.split(","):
            continue
        for kind in ("relu", "poly2"):
            if kind not in a.act.split(","):
                continue
            torch.manual_seed(1)
            model = build(name, kind)
            opt = torch.optim.Adam(model.parameters(), lr=1e-3)
            g = torch.Generator().manual_seed(1)
            times = []
            for _ in range(a.epochs):
                model.train()
                t0 = time.perf_counter()
                perm = torch.randperm(n, generator=g)
                for i in range(0, n, 128):
                    idx = perm[i:i + 128]
                    opt.zero_grad(set_to_none=True)
                    loss = F.cross_entropy(model(xtr[idx]), ytr[idx])
                    loss.backward()
                    opt.step()
                times.append(time.perf_counter() - t0)
            model.eval()
            with torch.no_grad():
                correct = sum((model(xte[i:i + 1000]).argmax(1) == yte[i:i + 1000]).sum().item()
                              for i in range(0, xte.shape[0], 1000))
            med = statistics.median(times)
            print("%-11s %-6s %10.3f %10.3f %10.0f %8.2f%%" % (name, kind, med, min(times),
                                                               n / med, 100.0 * correct /
                                                               xte.shape[0]), flush=True)


if __name__ == "__main__":
    main()
