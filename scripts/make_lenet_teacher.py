#!/usr/bin/python3
"""Train a ReLU LeNet teacher on Fashion-MNIST with Debian's PyTorch and
export it as ONNX: the input of `tessera heify` (docs/TRAINING.md).

    /usr/bin/python3 scripts/make_lenet_teacher.py OUT.onnx [--epochs E] [--seed S]

LeNet-5 layout (LeCun et al. 1998) with ReLU, batch norm after each
convolution and average pooling: conv 5x5 pad 2 x6 -> BN -> ReLU -> avgpool 2
-> conv 5x5 x16 -> BN -> ReLU -> avgpool 2 -> fc 120 -> ReLU -> fc 84 -> ReLU
-> fc 10. Inputs are normalised as Tessera loads IDX images:
(pixel / 255 - 0.2860) / 0.3530. Data: Debian's dataset-fashion-mnist.
PyTorch: Debian's python3-torch (`scripts/deps.sh experiments` installs it;
`make check` never needs it).
"""
import argparse
import gzip
import os
import sys

import numpy as np

try:
    import torch
    import torch.nn as nn
except ImportError:
    sys.exit("make_lenet_teacher.py needs Debian's PyTorch (python3-torch) under /usr/bin/python3: "
             "install it with `scripts/deps.sh experiments` (as root)")

DIR = "/usr/share/datasets/fashion-mnist"
MEAN, STD = 0.2860, 0.3530


def idx(path):
    with gzip.open(path, "rb") as f:
        b = f.read()
    nd = b[3]
    dims = [int.from_bytes(b[4 + 4 * i:8 + 4 * i], "big") for i in range(nd)]
    return np.frombuffer(b, dtype=np.uint8, offset=4 + 4 * nd).reshape(dims)


def load(train):
    p = "train" if train else "t10k"
    x = idx(os.path.join(DIR, p + "-images-idx3-ubyte.gz")).astype(np.float32)
    y = idx(os.path.join(DIR, p + "-labels-idx1-ubyte.gz")).astype(np.int64)
    x = (x / 255.0 - MEAN) / STD
    return torch.from_numpy(x[:, None]), torch.from_numpy(y)


class LeNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 6, 5, padding=2), nn.BatchNorm2d(6), nn.ReLU(), nn.AvgPool2d(2),
            nn.Conv2d(6, 16, 5), nn.BatchNorm2d(16), nn.ReLU(), nn.AvgPool2d(2))
        self.classifier = nn.Sequential(
            nn.Flatten(), nn.Linear(16 * 5 * 5, 120), nn.ReLU(), nn.Linear(120, 84), nn.ReLU(),
            nn.Linear(84, 10))

    def forward(self, x):
        return self.classifier(self.features(x))


def accuracy(model, x, y):
    model.eval()
    with torch.no_grad():
        pred = torch.cat([model(x[i:i + 1000]).argmax(1) for i in range(0, len(x), 1000)])
    return (pred == y).float().mean().item()


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out")
    ap.add_argument("--epochs", type=int, default=8)
    ap.add_argument("--seed", type=int, default=1)
    a = ap.parse_args()
    torch.manual_seed(a.seed)
    torch.set_num_threads(1)
    xtr, ytr = load(True)
    xte, yte = load(False)
    model = LeNet()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, a.epochs * (len(xtr) // 128 + 1))
    for ep in range(a.epochs):
        model.train()
        perm = torch.randperm(len(xtr))
        for i in range(0, len(xtr), 128):
            j = perm[i:i + 128]
            loss = nn.functional.cross_entropy(model(xtr[j]), ytr[j])
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
        print(f"epoch {ep + 1}: test accuracy {100 * accuracy(model, xte, yte):.2f} %", flush=True)
    model.eval()
    torch.onnx.export(model, xte[:1], a.out, opset_version=13, input_names=["input"],
                      output_names=["logits"], dynamic_axes={"input": {0: "N"}, "logits": {0: "N"}})
    print(f"teacher test accuracy {100 * accuracy(model, xte, yte):.2f} % -> {a.out}")


if __name__ == "__main__":
    main()
