#!/usr/bin/python3
"""HE-aware pruning experiments of docs/PRUNING.md (issue 13).

Trains (Debian's PyTorch, /usr/bin/python3; `scripts/deps.sh experiments`
installs python3-torch, which `make check` never needs) Fashion-MNIST models with
polynomial activations, prunes them with `tessera prune` for each method and
sparsity, fine-tunes each pruned model with its masks fixed (the zero pattern
of the pruned weights), and measures:
  - tiles / plaintexts / ct x pt products kept (the `tessera prune` report),
  - the loss (reconstruction MSE, or test accuracy) after fine-tuning,
  - for --bench: encrypted latency and server memory with
    `tessera bench model --batch 1` (CKKS, 128-bit security).
Results go to a JSON file and SVG curves (latency and memory saved vs loss).

Run niced, one at a time (the machine is shared):
  nice /usr/bin/python3 scripts/prune_experiments.py --model ae1 --bench \
      --out docs/pruning/ae1.json
Models:
  ae1  autoencoder 784-512-128-512-784, act(x) = 0.125 x^2 + 0.5 x + 0.25
  ae2  autoencoder 784-1024-256-1024-784, same activation
  mlp  classifier 784-256-128-10, same activation
  cnn  classifier conv 5x5/2 x16 -> act -> conv 3x3/2 x32 -> act -> flatten -> 10
"""
import argparse
import gzip
import hashlib
import json
import math
import os
import re
import subprocess
import sys
import time

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
import numpy as np  # noqa: E402
import onnx  # noqa: E402
from onnx import numpy_helper  # noqa: E402

try:
    import torch  # noqa: E402
except ImportError:
    sys.exit("prune_experiments.py needs Debian's PyTorch (python3-torch) under /usr/bin/python3: "
             "install it with `scripts/deps.sh experiments` (as root)")

ACT = (0.125, 0.5, 0.25)  # a x^2 + b x + c, near ReLU on [-4, 4]
DATA = "/usr/share/datasets/fashion-mnist"


def idx(path):
    with gzip.open(path, "rb") as f:
        raw = f.read()
    nd = raw[3]
    dims = [int.from_bytes(raw[4 + 4 * i:8 + 4 * i], "big") for i in range(nd)]
    return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * nd).reshape(dims)


def load(split):
    p = "train" if split == "train" else "t10k"
    x = idx(f"{DATA}/{p}-images-idx3-ubyte.gz").astype(np.float32) / 255.0
    y = idx(f"{DATA}/{p}-labels-idx1-ubyte.gz").astype(np.int64)
    return torch.from_numpy(x.reshape(-1, 784)), torch.from_numpy(y)


N_TRAIN = 60000  # Fashion-MNIST's training images


def train_part(args):
    """The training images the models may see: all 60 000, or the first 60 000 - --val."""
    x, y = load("train")
    n = N_TRAIN - args.val
    return x[:n], y[:n]


def val_part(args):
    """--val: the held-out tail of the training images (never trained on), or None."""
    if not args.val:
        return None
    x, y = load("train")
    return x[N_TRAIN - args.val:], y[N_TRAIN - args.val:]


def scores(model, kind, test_set, val_set):
    """{"loss": test loss} and, with a validation split, {"val_loss": its loss}."""
    r = {"loss": evaluate(model, kind, test_set)}
    if val_set is not None:
        r["val_loss"] = evaluate(model, kind, val_set)
    return r


class Act(torch.nn.Module):
    def __init__(self, coef=ACT):
        super().__init__()
        self.coef = coef

    def forward(self, x):
        # p: trainable coefficients (--ft-torch-shift), else the fixed coef
        a, b, c = self.p if getattr(self, "p", None) is not None else self.coef
        return a * x * x + b * x + c


def build(kind, sizes=None):
    """sizes: widths read back from a pruned (maybe expanded) ONNX model."""
    if kind in ("ae1", "ae2", "mlp"):
        w = sizes or {"ae1": [784, 512, 128, 512, 784], "ae2": [784, 1024, 256, 1024, 784],
                      "mlp": [784, 256, 128, 10]}[kind]
        layers = []
        for i in range(len(w) - 1):
            layers.append(torch.nn.Linear(w[i], w[i + 1]))
            if i < len(w) - 2:
                layers.append(Act())
        return torch.nn.Sequential(*layers)
    c1, c2 = sizes or (16, 32)
    return torch.nn.Sequential(
        torch.nn.Conv2d(1, c1, 5, stride=2, padding=2), Act(),
        torch.nn.Conv2d(c1, c2, 3, stride=2, padding=1), Act(),
        torch.nn.Flatten(), torch.nn.Linear(c2 * 49, 10))


def is_ae(kind):
    return kind.startswith("ae")


def inp(kind, x):
    return x.view(-1, 1, 28, 28) if kind == "cnn" else x


def loss_fn(kind, out, x, y):
    if is_ae(kind):
        return torch.nn.functional.mse_loss(out, x)
    return torch.nn.functional.cross_entropy(out, y)


def train(model, kind, data, epochs, lr, masks=None, seed=1):
    x, y = data
    torch.manual_seed(seed)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    model.train()
    for _ in range(epochs):
        perm = torch.randperm(x.shape[0])
        for i in range(0, x.shape[0], 128):
            b = perm[i:i + 128]
            opt.zero_grad()
            loss = loss_fn(kind, model(inp(kind, x[b])), x[b], y[b])
            loss.backward()
            opt.step()
            if masks:
                with torch.no_grad():
                    for p, m in masks:
                        p.mul_(m)
    return model


def evaluate(model, kind, data):
    x, y = data
    model.eval()
    with torch.no_grad():
        out = torch.cat([model(inp(kind, x[i:i + 1000])) for i in range(0, x.shape[0], 1000)])
    if is_ae(kind):
        return float(torch.nn.functional.mse_loss(out, x))
    return float((out.argmax(1) == y).float().mean())


def export(model, path, kind):
    model.eval()
    torch.onnx.export(model, inp(kind, torch.zeros(1, 784)), path, opset_version=13, input_names=["x"],
                      output_names=["y"], dynamic_axes={"x": {0: "N"}, "y": {0: "N"}})


def weights_of(path):
    """Weight and bias arrays of the Gemm / Conv nodes of an ONNX model, in order."""
    m = onnx.load(path)
    init = {t.name: numpy_helper.to_array(t) for t in m.graph.initializer}
    out = []
    for n in m.graph.node:
        if n.op_type in ("Gemm", "Conv", "MatMul") and n.input[1] in init:
            w = init[n.input[1]]
            trans = any(a.name == "transB" and a.i for a in n.attribute)
            if n.op_type == "MatMul" or (n.op_type == "Gemm" and not trans):
                w = w.T
            b = init[n.input[2]] if len(n.input) > 2 and n.input[2] in init else None
            out.append((w, b))
    return out


def activations_of(path):
    """(a, b, c) of each polynomial activation a x^2 + b x + c of an ONNX model, in node order:
    tessera's models carry them as named constants .../c2, .../c1, .../c0 (its fine-tuning
    trains them); PyTorch's export of Act (the refit's and --ft-torch's models, with trained
    or dense coefficients) as the Constant nodes /K/Constant (a), /K/Constant_1 (b) and
    /K/Constant_2 (c) of module K, read back here (a model with trained activations would
    otherwise be scored with ACT). Exits when a module's constants are not exactly those."""
    m = onnx.load(path)
    init = {t.name: numpy_helper.to_array(t) for t in m.graph.initializer}
    order, coef = [], {}
    for n in m.graph.node:
        for i in n.input:
            mm = re.match(r"^(.*)/c([012])$", i)
            if mm and i in init:
                if mm.group(1) not in coef:
                    order.append(mm.group(1))
                    coef[mm.group(1)] = [0.0, 0.0, 0.0]
                coef[mm.group(1)][2 - int(mm.group(2))] = float(init[i].reshape(-1)[0])
    if order:
        return [tuple(coef[k]) for k in order]
    # PyTorch's export: a * x * x + b * x + c traced as Mul, Mul_1, Mul_2, Add, Add_1
    ops, consts = {}, {}
    for n in m.graph.node:
        mm = re.match(r"^/(\d+)/(\w+)$", n.name)
        if not mm:
            continue
        ops.setdefault(mm.group(1), []).append(n.op_type)
        if n.op_type == "Constant":
            v = [numpy_helper.to_array(a.t) for a in n.attribute if a.name == "value"]
            if len(v) != 1 or v[0].size != 1:
                sys.exit(f"{path}: {n.name} is not a scalar constant of an activation")
            consts.setdefault(mm.group(1), {})[mm.group(2)] = float(v[0].reshape(-1)[0])
    out = []
    for k in sorted(consts, key=int):
        c = consts[k]
        if sorted(c) != ["Constant", "Constant_1", "Constant_2"] or \
                sorted(ops[k]) != ["Add", "Add", "Constant", "Constant", "Constant", "Mul",
                                   "Mul", "Mul"]:
            sys.exit(f"{path}: module {k} is not PyTorch's export of a x^2 + b x + c "
                     f"({sorted(ops[k])}); cannot read its activation")
        out.append((c["Constant"], c["Constant_1"], c["Constant_2"]))
    return out


def self_test():
    """--self-test: export each kind with random activation coefficients (none of them ACT's)
    and read them back with activations_of and load_pruned; exits non-zero on a mismatch."""
    import tempfile
    rng = np.random.default_rng(7)
    with tempfile.TemporaryDirectory() as d:
        for kind in ("ae1", "ae2", "mlp", "cnn"):
            model = build(kind)
            want = []
            for m in model:
                if isinstance(m, Act):
                    m.coef = tuple(float(v) for v in rng.uniform(-1, 1, 3))
                    want.append(m.coef)
            path = os.path.join(d, kind + ".onnx")
            export(model, path, kind)
            got = activations_of(path)
            back = [m.coef for m in load_pruned(kind, path)[0] if isinstance(m, Act)]
            for name, have in (("activations_of", got), ("load_pruned", back)):
                if len(have) != len(want) or \
                        any(abs(u - v) > 1e-6 for h, w in zip(have, want) for u, v in zip(h, w)):
                    sys.exit(f"--self-test: {kind}: {name} read {have}, exported {want}")
            print(f"--self-test: {kind}: {len(want)} activations read back", flush=True)
    # greedy_select and ls_tile_select against brute force on a random problem
    d, m, ridge = 12, 5, 1e-3
    a = rng.standard_normal((200, d)) @ rng.standard_normal((d, d))
    g = np.cov(a.T, bias=True)
    c = g @ rng.standard_normal((d, m)) + 0.1 * rng.standard_normal((d, m))

    def err(keep, cols):  # the ridge least-squares error of cy's columns cols, up to a constant
        keep = np.asarray(keep, int)
        if keep.size == 0:
            return 0.0
        gk = g[np.ix_(keep, keep)] + ridge * np.eye(keep.size)
        ck = c[np.ix_(keep, cols)]
        return -float(np.trace(ck.T @ np.linalg.solve(gk, ck)))
    want, allc = [], np.arange(m)
    for _ in range(6):
        rest = [j for j in range(d) if j not in want]
        want.append(rest[int(np.argmin([err(want + [j], allc) for j in rest]))])
    got = greedy_select(g, c, 6, ridge, "self-test")
    if got != want:
        sys.exit(f"--self-test: greedy_select chose {got}, brute force {want}")
    # rank 3: asking for 5 must stop with a message
    low = rng.standard_normal((200, 3)) @ rng.standard_normal((3, d))
    try:
        greedy_select(np.cov(low.T, bias=True), c, 5, 0.0, "self-test")
        sys.exit("--self-test: greedy_select did not stop on a rank-3 covariance with k = 5")
    except SystemExit as e:
        if "numerical rank 3" not in str(e):
            raise
    nr, nc, r, cw, k = 2, 4, 2, 3, 4  # d = 12 inputs in 4 tile columns of 3, m = 4 outputs
    zero = np.zeros((nr, nc), bool)
    for _ in range(k):
        best = None
        for ti in range(nr):
            cols = np.arange(ti * r, (ti + 1) * r)
            kept = [tj for tj in range(nc) if not zero[ti, tj]]
            if len(kept) == 1:
                continue
            base = err(np.concatenate([tile_blocks(tj, cw, d) for tj in kept]), cols)
            for tj in kept:
                rest = np.concatenate([tile_blocks(u, cw, d) for u in kept if u != tj])
                inc = err(rest, cols) - base
                if best is None or inc < best[0]:
                    best = (inc, ti, tj)
        zero[best[1], best[2]] = True
    got = ls_tile_select(g, c[:, :nr * r], nr, nc, r, cw, k, ridge)
    if not np.array_equal(got, zero):
        sys.exit(f"--self-test: ls_tile_select zeroed {got.tolist()}, brute force {zero.tolist()}")
    print("--self-test: greedy_select and ls_tile_select agree with brute force; a rank-deficient "
          "greedy selection stops")
    self_test_distill(rng)
    self_test_curve()
    self_test_block_pca(rng)
    print("--self-test: ok")


def self_test_block_pca(rng):
    """block_pca on random correlated images: orthonormal columns, zero outside their run, runs
    of whole tiles covering the 784 pixels, groups of components; one run is the plain PCA
    (the same reconstruction error), and more runs never reconstruct better than one."""
    x = rng.standard_normal((900, 60)) @ rng.standard_normal((60, 784))
    xc = x - x.mean(0)
    ev, v = np.linalg.eigh(xc.T @ xc / xc.shape[0])
    err = {}
    for regions in (1, 3, 7):
        p, var, alloc, bounds = block_pca(xc, 48, regions, 16, 8)
        if not np.allclose(p.T @ p, np.eye(48), atol=1e-9):
            sys.exit(f"--self-test: block_pca {regions}: columns not orthonormal")
        if bounds[0][0] != 0 or bounds[-1][1] != 784 or \
                any(b[1] != c[0] or b[0] % 16 for b, c in zip(bounds, bounds[1:] + [(784,)])):
            sys.exit(f"--self-test: block_pca {regions}: runs {bounds} not whole tiles of 784")
        if sum(alloc) != 48 or any(a % 8 for a in alloc):
            sys.exit(f"--self-test: block_pca {regions}: components {alloc}")
        j = 0
        for (s, e), a in zip(bounds, alloc):
            outside = np.ones(784, bool)
            outside[s:e] = False
            if np.abs(p[outside, j:j + a]).max(initial=0) > 0:
                sys.exit(f"--self-test: block_pca {regions}: a column leaves its run")
            j += a
        if not np.allclose(var, ((xc @ p) ** 2).mean(0), rtol=1e-6):
            sys.exit(f"--self-test: block_pca {regions}: variances")
        err[regions] = float(((xc @ p @ p.T - xc) ** 2).mean())
    top = v[:, ::-1][:, :48]
    if abs(err[1] - float(((xc @ top @ top.T - xc) ** 2).mean())) > 1e-9 * err[1] or \
            not err[1] <= err[3] * (1 + 1e-9) or not err[1] <= err[7] * (1 + 1e-9):
        sys.exit(f"--self-test: block_pca: reconstruction errors {err}")
    print(f"--self-test: block_pca: 1, 3, 7 runs, errors {err}", flush=True)


def self_test_distill(rng):
    """--self-test: distill_teacher's neuron map on a small random autoencoder and a student
    cut from it by a made-up refit (kept_neurons of hidden layers 1 and 3, layer 2 as wide):
    the map must be the kept neurons, the student's first hidden layer (the dense model's own
    rows) must match the dense activations at them, a map shifted by one neuron must not, and
    --refit-info must be refused for another student or another teacher."""
    import tempfile
    from types import SimpleNamespace
    torch.manual_seed(3)
    wd = [784, 20, 8, 20, 784]
    dense = build("ae1", wd)
    for m in dense:
        if isinstance(m, Act):
            m.coef = tuple(float(v) for v in rng.uniform(0.1, 1, 3))
    k0 = sorted(rng.choice(20, 12, replace=False).tolist())
    k2 = sorted(rng.choice(20, 10, replace=False).tolist())
    lin = [m.weight.detach() for m in dense if isinstance(m, torch.nn.Linear)]
    bia = [m.bias.detach() for m in dense if isinstance(m, torch.nn.Linear)]
    cut = [(lin[0][k0], bia[0][k0]), (lin[1][:, k0], bia[1]), (lin[2][k2], bia[2][k2]),
           (lin[3][:, k2], bia[3])]
    student = build("ae1", [784, 12, 8, 10, 784])
    with torch.no_grad():
        for mod, (w, b) in zip([m for m in student if isinstance(m, torch.nn.Linear)], cut):
            mod.weight.copy_(w)
            mod.bias.copy_(b)
    for a_s, a_d in zip([m for m in student if isinstance(m, Act)],
                        [m for m in dense if isinstance(m, Act)]):
        a_s.coef = a_d.coef
    x = torch.from_numpy(rng.uniform(0, 1, (300, 784)).astype(np.float32))
    with tempfile.TemporaryDirectory() as d:
        paths = {n: os.path.join(d, n + ".onnx") for n in ("dense", "student", "other",
                                                            "other_teacher")}
        export(dense, paths["dense"], "ae1")
        export(student, paths["student"], "ae1")
        export(build("ae1", [784, 12, 8, 10, 784]), paths["other"], "ae1")
        export(build("ae1", wd), paths["other_teacher"], "ae1")

        def info_file(name, kept0, student_path, teacher_path):
            path = os.path.join(d, name + ".json")
            with open(path, "w") as f:
                json.dump({"dense_onnx_sha256": sha256(teacher_path),
                           "onnx_sha256": sha256(student_path), "refit": student_path,
                           "layers": [{"hidden": 0, "kept_neurons": kept0},
                                      {"hidden": 2, "kept_neurons": k2}]}, f)
            return path

        def run(info, more, teacher=paths["dense"]):
            args = SimpleNamespace(refit_info=info, more=more)
            return distill_teacher(args, "ae1", load_pruned("ae1", more)[0], teacher, x)

        def rel0(model, idx):  # hidden layer 1's relative error to the dense activations
            with torch.no_grad():
                hs = hidden_outputs(model, x)[1]
                hd = hidden_outputs(load_pruned("ae1", paths["dense"])[0], x)[1]
            return float(((hs[0] - hd[0][:, idx]) ** 2).mean() / hd[0][:, idx].var(0).mean())
        good = info_file("good", k0, paths["student"], paths["dense"])
        _, maps = run(good, paths["student"])
        got = [(lay, idx.tolist()) for lay, idx, _ in maps]
        if got != [(0, k0), (1, list(range(8))), (2, k2)]:
            sys.exit(f"--self-test: distill_teacher mapped {got}, the refit kept "
                     f"{[(0, k0), (1, list(range(8))), (2, k2)]}")
        model = load_pruned("ae1", paths["student"])[0]
        right = rel0(model, maps[0][1])
        shifted = [(v + 1) % 20 for v in k0]
        wrong = rel0(model, torch.tensor(shifted))
        if not (right < 1e-9 and wrong > 1e-2):
            sys.exit(f"--self-test: hidden layer 1's relative error to the dense model is "
                     f"{right:.3g} at the mapped neurons (want ~0) and {wrong:.3g} shifted by "
                     "one (want > 0.01)")
        for what, info, more, teacher in (
                ("another student", good, paths["other"], paths["dense"]),
                ("another teacher", good, paths["student"], paths["other_teacher"]),
                ("no student sha256", info_file("old", k0, paths["student"], paths["dense"]),
                 paths["student"], paths["dense"])):
            if what == "no student sha256":
                with open(info) as f:
                    j = json.load(f)
                del j["onnx_sha256"]
                with open(info, "w") as f:
                    json.dump(j, f)
            try:
                run(info, more, teacher)
            except SystemExit as e:
                if "--refit-info" not in str(e):
                    raise
            else:
                sys.exit(f"--self-test: distill_teacher accepted --refit-info with {what}")
    print(f"--self-test: distill_teacher maps the refit's kept neurons (layer-1 error "
          f"{right:.1e}, {wrong:.2f} shifted) and refuses another student or teacher")


def self_test_curve():
    """--self-test: curve_svg's polylines (epoch 1 at the left axis, the last epoch at the
    right, the largest MSE at the top, the smallest at the bottom; val solid, test dashed),
    a one-epoch curve, a curve without validation scores, and an empty one refused."""
    import tempfile
    import xml.etree.ElementTree as ET
    ns = "{http://www.w3.org/2000/svg}"

    def lines(curve, d, name):
        path = os.path.join(d, name + ".svg")
        curve_svg(curve, path, name)
        out = {}
        for pl in ET.parse(path).getroot().iter(ns + "polyline"):
            pts = [tuple(float(v) for v in p.split(",")) for p in pl.get("points").split()]
            if not all(np.isfinite(v) for p in pts for v in p):
                sys.exit(f"--self-test: curve_svg {name}: a point is not finite: {pts}")
            out["test" if pl.get("stroke-dasharray") else "val"] = pts
        return out
    with tempfile.TemporaryDirectory() as d:
        got = lines([[1, 0.004, 0.005], [2, 0.003, 0.0035], [3, 0.002, 0.0025]], d, "three")
        # y from 350 (MSE 0.002, the smallest) up to 30 (0.005, the largest): 320 / 0.003
        want = {"val": [(80, 350 - 320 * 2 / 3), (350, 350 - 320 / 3), (620, 350)],
                "test": [(80, 30), (350, 350 - 320 * 1.5 / 3), (620, 350 - 320 * 0.5 / 3)]}
        if sorted(got) != ["test", "val"] or any(
                len(got[k]) != 3 or any(abs(a - c) > 0.05 or abs(b - e) > 0.05
                                        for (a, b), (c, e) in zip(got[k], want[k]))
                for k in want):
            sys.exit(f"--self-test: curve_svg drew {got}, want {want}")
        got = lines([[1, 0.003, 0.004]], d, "one")
        if sorted(got) != ["test", "val"] or len(got["val"]) != 1:
            sys.exit(f"--self-test: curve_svg on one epoch drew {got}")
        got = lines([[1, None, 0.004], [2, None, 0.003]], d, "noval")
        if sorted(got) != ["test"] or len(got["test"]) != 2:
            sys.exit(f"--self-test: curve_svg without validation scores drew {got}")
        try:
            curve_svg([], os.path.join(d, "empty.svg"), "empty")
        except SystemExit as e:
            if "no scores" not in str(e):
                raise
        else:
            sys.exit("--self-test: curve_svg accepted an empty curve")
    print("--self-test: curve_svg draws val and test at the right epochs and MSEs, one epoch "
          "and no validation scores, and refuses an empty curve")
    # --cycle-plot: two cycles of 2 epochs from trainer epoch 3 (epochs 4-7), a boundary at 5;
    # --target-ref: a point at val 1.05x, CPU -70 %, memory -61 % (test 1.5x: not the one used)
    with tempfile.TemporaryDirectory() as d:
        a, b, o = (os.path.join(d, n) for n in ("a.json", "b.json", "c.svg"))
        for path, c in ((a, [[1, 0.004, 0.1], [2, 0.002, 0.1]]), (b, [[1, 0.003, 0.1],
                                                                    [2, 0.001, 0.1]])):
            with open(path, "w") as f:
                json.dump({"dense": {}, "runs": [{"curve": c}]}, f)
        cycle_plot([f"m:3:{a},{b}"], o)
        root = ET.parse(o).getroot()
        pl = [[tuple(float(v) for v in p.split(",")) for p in e.get("points").split()]
              for e in root.iter(ns + "polyline")]
        marks = [float(e.get("x1")) for e in root.iter(ns + "line") if e.get("stroke-dasharray")]
        X = [80 + e / 7 * 620 for e in (4, 5, 6, 7)]  # epochs 0..7 over x 80..700
        # log10 MSE from -3 (0.001, y 370) to log10 0.004 (y 30)
        Y = [370 - (math.log10(v) + 3) / math.log10(4) * 340 for v in (0.004, 0.002, 0.003, 0.001)]
        off = [max(abs(p[0] - x), abs(p[1] - y)) for p, x, y in zip(pl[0] if pl else [], X, Y)]
        if len(pl) != 1 or len(off) != 4 or max(off) > 0.06 or len(marks) != 1 or \
                abs(marks[0] - X[1]) > 0.06:
            sys.exit(f"--self-test: --cycle-plot drew {pl}, boundaries {marks}; want "
                     f"{list(zip(X, Y))}, boundary {X[1]:.1f}")
        res = {"dense": {"cpu_s": 10.0, "server_mib": 1000.0},
               "runs": [{"tag": "-p", "method": "refit", "val_loss": 0.0021, "loss": 0.003,
                         "cpu_s": 3.0, "server_mib": 390.0}]}
        target_svg(res, {"val_loss": 0.002, "loss": 0.002}, o)
        root = ET.parse(o).getroot()
        # x: 0.98x..1.14x over 70..700; y: 48 %..72 % over 370..30
        want = (70 + (1.05 - 0.98) / 0.16 * 630, 370 - (70 - 48) / 24 * 340,
                370 - (61 - 48) / 24 * 340)
        c = [e for e in root.iter(ns + "circle")][0]
        r = [e for e in root.iter(ns + "rect")][0]
        got = (float(c.get("cx")), float(c.get("cy")), float(r.get("y")) + 4)
        if any(abs(u - v) > 0.06 for u, v in zip(got, want)) or \
                abs(float(r.get("x")) + 4 - want[0]) > 0.06:
            sys.exit(f"--self-test: --target-ref drew the point at {got}, want {want}")
    print("--self-test: --cycle-plot and --target-ref draw their points where they belong")
    # torch_finetune's curve: one [epoch, val, test] per epoch of every cycle, the last one
    # the scores of the model it writes (a 784-8-4-8-784 model, 256 images, 2 cycles of 2)
    from types import SimpleNamespace
    args = SimpleNamespace(ft_torch_shift=90.0, ft_limit=256, ft_torch_distill=0.0, seed=1,
                           ft_lr=1e-3, ft_batch=64, ft_epochs=2, steps=2, curve=True, val=5000)
    torch.manual_seed(5)
    with tempfile.TemporaryDirectory() as d:
        src, out = os.path.join(d, "src.onnx"), os.path.join(d, "out.onnx")
        export(build("ae1", [784, 8, 4, 8, 784]), src, "ae1")
        _, curve = torch_finetune(args, "ae1", src, out)
        sc = scores(load_pruned("ae1", out)[0], "ae1", load("test"), val_part(args))
    if [e[0] for e in curve] != [1, 2, 3, 4] or len({e[1] for e in curve}) != 4 or \
            abs(curve[-1][1] - sc["val_loss"]) > 1e-6 * sc["val_loss"] or \
            abs(curve[-1][2] - sc["loss"]) > 1e-6 * sc["loss"]:
        sys.exit(f"--self-test: torch_finetune's curve {curve}, the written model's val "
                 f"{sc['val_loss']} test {sc['loss']}")
    print("--self-test: torch_finetune records [epoch, val, test] after every epoch of every "
          "cycle, the last the written model's scores")


def load_pruned(kind, path):
    ws = weights_of(path)
    if kind == "cnn":
        model = build(kind, (ws[0][0].shape[0], ws[1][0].shape[0]))
    else:
        model = build(kind, [ws[0][0].shape[1]] + [w.shape[0] for w, _ in ws])
    acts = [m for m in model if isinstance(m, Act)]
    coefs = activations_of(path)
    if len(coefs) != len(acts):
        sys.exit(f"{path}: {len(coefs)} activations read, the model has {len(acts)}")
    for act, coef in zip(acts, coefs):
        act.coef = coef
    params = [m for m in model if isinstance(m, (torch.nn.Linear, torch.nn.Conv2d))]
    masks = []
    with torch.no_grad():
        for mod, (w, b) in zip(params, ws):
            mod.weight.copy_(torch.from_numpy(np.ascontiguousarray(w)).reshape(mod.weight.shape))
            if b is not None:
                mod.bias.copy_(torch.from_numpy(b.reshape(-1)))
            masks.append((mod.weight, (mod.weight != 0).float()))
    return model, masks


def tessera(args, cmd):
    r = subprocess.run([args.tessera] + cmd, capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit(f"tessera {' '.join(cmd)} failed:\n{r.stdout}\n{r.stderr}")
    return r.stdout + r.stderr


def prune_report(text):
    # "tiles A of T0 -> B of T" (older reports: "tiles A -> B of T"); T counts the output's
    m = re.search(r"total: tiles (\d+)(?: of \d+)? -> (\d+) of (\d+).*?products per batch tile "
                  r"(\d+) -> (\d+)", text, re.S)
    w = re.search(r"nonzero weights (\d+) -> (\d+)", text)
    return {"tiles": [int(m.group(1)), int(m.group(2))], "total_tiles": int(m.group(3)),
            "products": [int(m.group(4)), int(m.group(5))],
            "weights": [int(w.group(1)), int(w.group(2))]}


def plan_counts(args, path, out=None):
    """The compiler's dry-run counts for batch 1: the ct*pt+c column (ct x pt and ct x const
    products), rotations, tiling."""
    if out is None:
        out = tessera(args, ["compile", path, "--batch", str(args.batch), "--log-n",
                             str(args.log_n), "--out",
                             f"{args.work}/tmp.plan", "--force"])
    prod = rot = 0
    for line in out.splitlines():
        m = re.match(r"^\d+\s+\S+.*\s(\d+)\s+(\d+)\s+(\d+)\s+[0-9.]+s$", line)
        if m:
            rot += int(m.group(1))
            prod += int(m.group(3))
    t = re.search(r"tiled packing t = \[(\d+), (\d+), (\d+), (\d+), \d+\] orientation (\d)", out)
    pred = re.search(r"predicted: ([0-9.]+) s per batch.*?, ([0-9.]+) MiB server memory", out)
    r = {"ct_pt": prod, "rotations": rot}
    if t:
        r["t0"], r["t1"], r["t2"] = int(t.group(1)), int(t.group(2)), int(t.group(3))
        r["t3"], r["orient"] = int(t.group(4)), int(t.group(5))
    if pred:
        r["predicted_s"], r["predicted_mib"] = float(pred.group(1)), float(pred.group(2))
    return r


def bench(args, path, log=None):
    cmd = ["bench", "model", path, "--batch", str(args.batch), "--samples", str(args.batch),
           "--runs", str(args.runs), "--threads", "1", "--log-n", str(args.log_n)]
    before = uptime()
    out = tessera(args, cmd)
    if log:
        with open(log, "a") as f:
            f.write(f"# {args.tessera} {' '.join(cmd)}\n# load before: {before}\n{out}"
                    f"# load after: {uptime()}\n")
    return bench_parse(args, path, out)


def bench_parse(args, path, out):
    """The figures of a `tessera bench model` output (and the plan it printed)."""
    t = re.search(r"median ([0-9.]+) s over \d+ runs \(CPU ([0-9.]+) s\)", out)
    err = re.search(r"largest (?:logit|output) error ([0-9.e+-]+);", out)
    mem = re.search(r"server memory ([0-9.]+) MiB", out)
    plan = re.search(r"\| %d \| ([^|]+) \|" % args.batch, out)
    r = plan_counts(args, path, out)  # bench prints the plan it compiled
    return r | {"log_n": args.log_n, "latency_s": float(t.group(1)), "cpu_s": float(t.group(2)),
                "max_err": float(err.group(1)) if err else None, "server_mib": float(mem.group(1)),
            "plan": plan.group(1).strip() if plan else ""}


def uptime():
    with open("/proc/loadavg") as f:
        return time.strftime("%H:%M:%S UTC", time.gmtime()) + ", load average " + \
            " ".join(f.read().split()[:3])


def sha256(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def bench_model(r, path):
    """The ONNX file of result r: the one recorded at prune time, checked against its sha256
    (a later run may have overwritten it); older results (no "onnx") fall back to the name."""
    path = r.get("onnx", path)
    if not os.path.exists(path):
        sys.exit(f"--bench-runs: {path} does not exist")
    if r.get("onnx_sha256") and sha256(path) != r["onnx_sha256"]:
        sys.exit(f"--bench-runs: {path} changed since its point was recorded (sha256)")
    if "onnx" not in r:
        print(f"--bench-runs: no recorded model, using {path} by its name", file=sys.stderr)
    return path


def bench_runs(args):
    """--bench-runs: measure the listed points (dense or METHOD:SPARSITY[:TAG], exactly one run
    each) of --out encrypted (`tessera bench model`, the plan's batch and ring) and record
    latency, CPU time and server memory in --out; the bench outputs are appended to
    --bench-log. Run it under the big-memory lock."""
    with open(args.out) as f:
        res = json.load(f)
    kind, args.batch = res["model"], res.get("batch", args.batch)
    # one ring for the whole file: the sweep's, and every point measured before
    rings = {res.get("log_n"), res["dense"].get("log_n")} | {r.get("log_n") for r in res["runs"]}
    if rings - {None, args.log_n}:
        sys.exit(f"--bench-runs: {args.out} was made or measured at --log-n "
                 f"{sorted(rings - {None})}, not {args.log_n}")
    res["log_n"] = args.log_n
    res["show_cpu"] = True
    for want in args.bench_runs.split(","):
        if want == "dense":
            r = res["dense"]
            path = f"{args.work}/{kind}-dense.onnx"
        else:
            key = want.split(":")
            if len(key) not in (2, 3):
                sys.exit(f"--bench-runs: {want}: not METHOD:SPARSITY[:TAG]")
            hits = [r for r in res["runs"] if r["method"] == key[0] and
                    f"{r['sparsity']:g}" == f"{float(key[1]):g}" and
                    (len(key) == 2 or r.get("tag", "") == key[2])]
            if len(hits) != 1:
                tags = ", ".join(repr(r.get("tag", "")) for r in hits)
                sys.exit(f"--bench-runs: {len(hits)} runs {want} in {args.out}" +
                         (f" (tags {tags}: add :TAG)" if hits else ""))
            r = hits[0]
            path = f"{args.work}/{kind}-{key[0].replace('+', '_')}{r.get('tag', '')}-" \
                f"{r['sparsity']}.onnx"
        r.update(bench(args, bench_model(r, path), args.bench_log))
        with open(args.out, "w") as f:
            json.dump(res, f, indent=1)
        print(f"{want}: measured", flush=True)
    plots(res, args.out, "latency_s" in res["dense"])
    print(table(res))


def svg(points, path, title, ylabel):
    """Scatter per method: x = loss, y = saved fraction (%)."""
    colors = {"tile": "#1f77b4", "magnitude": "#d62728", "hunter": "#2ca02c",
              "hepex": "#9467bd", "hepex+expand": "#ff7f0e", "tile+expand": "#8c564b",
              "tile+shrink": "#e377c2", "tile+expand+shrink": "#17becf", "narrow": "#7f7f7f",
              "pca-init": "#bcbd22", "refit": "#000000"}
    xs = [p["loss"] for p in points] or [0, 1]
    x0, x1 = min(xs), max(xs)
    if x1 == x0:
        x1 = x0 + 1e-9
    W, H, L, B = 640, 400, 70, 50

    def X(v):
        return L + (v - x0) / (x1 - x0) * (W - L - 20)

    def Y(v):
        return H - B - v / 100.0 * (H - B - 30)
    s = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" font-size="12">',
         f'<text x="{W / 2}" y="18" text-anchor="middle">{title}</text>',
         f'<line x1="{L}" y1="{H - B}" x2="{W - 20}" y2="{H - B}" stroke="black"/>',
         f'<line x1="{L}" y1="30" x2="{L}" y2="{H - B}" stroke="black"/>',
         f'<text x="{W / 2}" y="{H - 10}" text-anchor="middle">loss (MSE or 1 - accuracy)</text>',
         f'<text x="15" y="{H / 2}" transform="rotate(-90 15 {H / 2})" '
         f'text-anchor="middle">{ylabel}</text>']
    for k in range(0, 101, 20):
        s.append(f'<text x="{L - 5}" y="{Y(k) + 4}" text-anchor="end">{k}%</text>')
    for k in range(5):
        v = x0 + (x1 - x0) * k / 4
        s.append(f'<text x="{X(v)}" y="{H - B + 15}" text-anchor="middle">{v:.4g}</text>')
    ly = 40
    for meth, col in colors.items():
        pts = sorted([p for p in points if p["method"] == meth], key=lambda p: p["loss"])
        if not pts:
            continue
        s.append(f'<polyline fill="none" stroke="{col}" points="' +
                 " ".join(f"{X(p['loss'])},{Y(p['saved'])}" for p in pts) + '"/>')
        for p in pts:
            s.append(f'<circle cx="{X(p["loss"])}" cy="{Y(p["saved"])}" r="3" fill="{col}"/>')
        s.append(f'<text x="{W - 150}" y="{ly}" fill="{col}">{meth}</text>')
        ly += 15
    s.append("</svg>")
    with open(path, "w") as f:
        f.write("\n".join(s))


def table(res):
    """Markdown table of a result file."""
    kind, d = res["model"], res["dense"]
    has_b = "latency_s" in d

    def pct(a, b):
        return f"{100 * (a / b - 1):+.0f}%" if b else "-"
    head = ["method", "sparsity", "tiles kept", "ct x pt (compiler)", "rotations",
            "MSE" if is_ae(kind) else "accuracy"]
    batch = res.get("batch", 1)
    if has_b:
        head += [f"latency (batch {batch}, measured)", "predicted", "server memory (measured)"]
    else:
        head += [f"latency (batch {batch}, predicted)"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]

    def row(name, sp, r):
        cells = [name, sp, f"{r['tiles'][1]}/{d['tiles'][0]}",
                 f"{r['ct_pt']} ({pct(r['ct_pt'], d['ct_pt'])})",
                 f"{r['rotations']} ({pct(r['rotations'], d['rotations'])})",
                 f"{r['loss']:.5f} ({r['loss'] / d['loss']:.2f}x)" +
                 (f"; val {r['val_loss']:.5f} ({r['val_loss'] / d['val_loss']:.2f}x)"
                  if r.get("val_loss") and d.get("val_loss") else "") if is_ae(kind)
                 else f"{100 * r['loss']:.2f}% ({100 * (r['loss'] - d['loss']):+.2f})"]
        if has_b and "latency_s" not in r:
            cells += ["not measured",
                      f"{r['predicted_s']:.3f} s ({pct(r['predicted_s'], d['predicted_s'])})",
                      f"predicted {r['predicted_mib']:.0f} MiB"]
        elif has_b and r.get("same_as_dense"):
            cells += ["= dense (not rerun)",
                      f"{r['predicted_s']:.3f} s ({pct(r['predicted_s'], d['predicted_s'])})",
                      "= dense"]
        elif has_b:
            cpu = f"; CPU {r['cpu_s']:.2f} s ({pct(r['cpu_s'], d['cpu_s'])})" \
                if r.get("cpu_s") and d.get("cpu_s") and res.get("show_cpu") else ""
            cells += [f"{r['latency_s']:.3f} s ({pct(r['latency_s'], d['latency_s'])}){cpu}",
                      f"{r['predicted_s']:.3f} s ({pct(r['predicted_s'], d['predicted_s'])})",
                      f"{r['server_mib']:.1f} MiB ({pct(r['server_mib'], d['server_mib'])})"]
        else:
            cells += [f"{r['predicted_s']:.3f} s ({pct(r['predicted_s'], d['predicted_s'])})"]
        return "| " + " | ".join(cells) + " |"
    lines.append(row("dense", "-", d))
    for r in res["runs"]:
        ls = r.get("layer_sparsity") or []
        sp = f"{r['sparsity']:g}"
        if ls and not r["method"].endswith("+expand") and len(set(round(v, 4) for v in ls)) > 1:
            sp = "/".join(f"{v:.2g}" for v in ls)
        lines.append(row(r["method"] + (f" ({r['tag'].strip('-')})" if r.get("tag") else ""), sp,
                         r))
    return "\n".join(lines)


def at_equal_loss(res, ref_method):
    """Per method, the ct x pt products and predicted latency saved (%) at the loss of each point
    of ref_method, linearly interpolated along the upper envelope of the method's curve (its
    points of every seed and sparsity sorted by loss, the dense reference as (dense loss, 0 %),
    keeping only points that save more than every less lossy one, for each of the two savings;
    a one-point curve is a straight-line estimate from the dense point, not a bound). A loss
    beyond a method's most lossy point gets that point's saving, marked '>=' when the curve never reached the loss (a lower bound for a
    curve that saves more as it loses more; the margin printed is then an upper bound). A loss
    below a method's least lossy point (the reference point beats even the dense model) is
    printed as 'not reached' with that point's loss, and the dense model as 'not reached' too."""
    kind, d = res["model"], res["dense"]

    def lossof(r):
        return r["loss"] if is_ae(kind) else 1 - r["loss"]

    def saved(r, key):
        return 100 * (1 - r[key] / d[key]) if key in r and d.get(key) else 0.0

    def envelope(c, k, L):
        # the upper envelope of the pooled points (seeds, sparsities): only the points saving
        # more than every less lossy one, linearly interpolated; beyond the last, its saving
        env = []
        for pt in c:
            if not env or pt[k] > env[-1][1]:
                env.append((pt[0], pt[k]))
        if L >= env[-1][0]:
            return env[-1][1]
        for (l0, v0), (l1, v1) in zip(env, env[1:]):
            if l0 <= L <= l1:
                return v0 + (L - l0) / (l1 - l0) * (v1 - v0) if l1 > l0 else v1
        return env[0][1]
    curves = {}
    for r in res["runs"]:
        curves.setdefault(r["method"], []).append(r)
    out = []
    for ref in [r for r in res["runs"] if r["method"] == ref_method]:
        L = lossof(ref)
        row = {"at": ref, "loss": L, "methods": {}}
        for meth, pts in curves.items():
            c = sorted([(lossof(d), 0.0, 0.0)] +
                       [(lossof(r), saved(r, "ct_pt"), saved(r, "predicted_s")) for r in pts])
            if L < c[0][0]:
                # Never reached: even the least lossy point (maybe the dense anchor) loses more.
                row["methods"][meth] = (None, None, c[0][0])
                continue
            p, q = envelope(c, 1, L), envelope(c, 2, L)
            row["methods"][meth] = (p, q, L > c[-1][0])
        out.append(row)
    lines = []
    dl = d["loss"] if is_ae(kind) else 1 - d["loss"]

    def fmt(loss):
        return f"MSE {loss:.5f}" if is_ae(kind) else f"accuracy {100 * (1 - loss):.2f}%"
    for row in out:
        r, L = row["at"], row["loss"]
        what = f"MSE {L:.5f} ({L / dl:.2f}x)" if is_ae(kind) else \
            f"accuracy {100 * (1 - L):.2f}% ({100 * (dl - L):+.2f} points)"
        lines.append(f"at the loss of {ref_method} {r['sparsity']:g} ({what}):")
        if L < dl:
            lines.append(f"  {'dense':14s} not reached: the dense model's loss is {fmt(dl)}")
        mine = row["methods"][ref_method]
        for meth, (p, q, beyond) in sorted(row["methods"].items(),
                                           key=lambda kv: -(kv[1][0] if kv[1][0] is not None
                                                            else -1e9)):
            if p is None:
                lines.append(f"  {meth:14s} not reached: its least lossy point is at {fmt(beyond)}"
                             + (" (the dense model)" if beyond == dl else ""))
                continue
            b = ">=" if beyond else ""
            lines.append(f"  {meth:14s} products saved {b}{p:5.1f}%  predicted latency saved "
                         f"{b}{q:5.1f}%" + ("" if meth == ref_method else
                                             f"   ({ref_method} beats it by {mine[0] - p:+.1f} "
                                             f"/ {mine[1] - q:+.1f} points)"))
    return "\n".join(lines)


def data_files(args, kind):
    """.npy files for tessera's trainer: inputs (images for the CNN) and labels or targets."""
    paths = {}
    for split in ("train", "test"):
        x, y = load(split)
        xs = x.numpy().reshape(-1, 1, 28, 28) if kind == "cnn" else x.numpy()
        px = f"{args.work}/x_{split}{'4' if kind == 'cnn' else ''}.npy"
        py = f"{args.work}/y_{split}.npy"
        if not os.path.exists(px):
            np.save(px, np.ascontiguousarray(xs, dtype=np.float32))
        if not os.path.exists(py):
            np.save(py, y.numpy().astype(np.float32))
        paths[split] = (px, px if is_ae(kind) else py)
    return paths


def flattened_inputs(path):
    """{node name: (channels, height, width)} of the dense layers (Gemm / MatMul) of an ONNX
    model that read a flattened feature map (Flatten or Reshape of a 4-d tensor)."""
    m = onnx.shape_inference.infer_shapes(onnx.load(path))
    shapes = {v.name: [d.dim_value for d in v.type.tensor_type.shape.dim]
              for v in list(m.graph.value_info) + list(m.graph.input)}
    producer = {o: n for n in m.graph.node for o in n.output}
    out = {}
    for n in m.graph.node:
        src = producer.get(n.input[0]) if n.op_type in ("Gemm", "MatMul") else None
        if src is not None and src.op_type in ("Flatten", "Reshape"):
            shape = shapes.get(src.input[0], [])
            if len(shape) == 4 and all(shape[1:]):
                out[n.name] = tuple(shape[1:])
    return out


def layer_tiles(text, model, spatial="1x1", offsets=False):
    """Per-layer total tiles (ceil(rows / R) x tile columns) of a `tessera prune` report of the
    ONNX file `model`, in graph order. Not its "kept" column: a widened model's new features
    have all-zero tiles. A dense layer that reads a flattened (c, h, w) map (the CNN's) has
    ceil(c / C) x ceil(h / ty) x ceil(w / tx) tile columns for --tile-spatial tyxtx, as
    `tessera prune` counts them. offsets (--offset-tiles): a convolution's units are its tiles
    x its k kernel offsets."""
    flat = flattened_inputs(model)
    ty, tx = (int(v) for v in spatial.split("x"))
    out = []
    for line in text.splitlines():
        m = re.match(r"^(\S+)\s+(\d+)x(\d+)\s+(\d+)\s+(\d+)x(\d+)\s+\d+/\d+\s", line)
        if m:
            rows, cols, k, R, C = (int(m.group(i)) for i in range(2, 7))
            tcols = -(-cols // C)
            c, h, w = flat.get(m.group(1), (0, 0, 0))
            if k == 1 and c * h * w == cols:
                tcols = -(-c // C) * -(-h // ty) * -(-w // tx)
            out.append(-(-rows // R) * tcols * (k if offsets else 1))
    return out


def finetune_args(args, files, steps, teacher=None):
    dist = ["--distill", teacher, "--distill-weight", str(args.distill)] \
        if teacher and args.distill > 0 else []
    return dist + ["--finetune", ",".join(files["train"]), "--steps", str(steps), "--ft-epochs",
            str(args.ft_epochs), "--ft-lr", str(args.ft_lr), "--ft-batch", str(args.ft_batch)] + \
        (["--ft-limit", str(args.ft_limit)] if args.ft_limit else [])


def pca_mse(ks, args):
    """({K: bound}, {K: train-fit}, {K: train-fit on --val}) for the 10 000 test images (x/255,
    mean over 10 000 x 784); the third is {} without --val.
    bound: the test images' own K leading principal components (their mean added back), the
    least squared error of any reconstruction of the test set lying in a K-dimensional affine
    subspace, so a lower bound on the test MSE of any model whose output is affine in K
    features. train-fit: the training images' components and mean scoring the test images,
    what such a model fitted on the training set would reach if it were PCA (not a bound); with
    --val, fitted on the training images the models may see (the first 60 000 - N), and the
    same fit scored on the held-out validation images as the third result."""
    x, xt = (d.numpy().astype(np.float64) for d in (train_part(args)[0], load("test")[0]))
    xv = val_part(args)[0].numpy().astype(np.float64) if args.val else None
    bound, train_fit, train_fit_val = {}, {}, {}
    for fit, out in ((xt, bound), (x, train_fit)):
        mu = fit.mean(0)
        _, v = np.linalg.eigh((fit - mu).T @ (fit - mu))  # ascending eigenvalues
        for k in ks:
            p = v[:, ::-1][:, :k]
            out[k] = float((((xt - mu) @ p @ p.T + mu - xt) ** 2).mean())
            if fit is x and xv is not None:
                train_fit_val[k] = float((((xv - mu) @ p @ p.T + mu - xv) ** 2).mean())
    return bound, train_fit, train_fit_val


def pca_init(args):
    """--pca-init FILE: an autoencoder of --widths 784,K,...,K,784 that starts as the training
    images' K-component PCA (of the images the models may see: the first 60 000 - --val), not
    a pruned dense model. With c = P^T (x - mu) / sd the whitened coefficients (P the K leading
    components, sd their standard deviations), the first layer computes z = t c, each hidden
    layer after it z' = (act(z) - act_c - act_a t^2) / act_b (act(z) = act_c + act_b z +
    act_a z^2: the identity up to the quadratic term less its mean, which a small t keeps
    small), and the last W_L = P diag(sd) / (t act_b), b_L = mu - W_L (act_c + act_a t^2) 1:
    the decoder's columns are the principal components (scaled), its bias the mean (up to
    that constant). Prints the MSE of the PCA and of the initialised
    network, writes the model (PyTorch's export, activation ACT), stops."""
    w = [int(v) for v in args.widths.split(",")] if args.widths else []
    if len(w) < 3 or w[0] != 784 or w[-1] != 784 or len(set(w[1:-1])) != 1 or w[1] > 784:
        sys.exit("--pca-init needs --widths 784,K,...,K,784 (equal hidden widths K <= 784)")
    k, (a, b, c), t = w[1], ACT, args.pca_scale
    x = train_part(args)[0].numpy().astype(np.float64)
    mu = x.mean(0)
    if args.pca_blocks > 1:
        p, var, alloc, bounds = block_pca(x - mu, k, args.pca_blocks, args.input_tile,
                                          args.pca_group)
        sd = np.sqrt(np.maximum(var, 1e-12))
    else:
        ev, v = np.linalg.eigh((x - mu).T @ (x - mu) / x.shape[0])
        p, sd = v[:, ::-1][:, :k], np.sqrt(np.maximum(ev[::-1][:k], 1e-12))
    enc, dropped = zero_input_tiles(args, x - mu, p)
    model = build("ae1", w)
    lin = [m for m in model if isinstance(m, torch.nn.Linear)]
    with torch.no_grad():
        def put(m, wt, bias):
            m.weight.copy_(torch.from_numpy(wt.astype(np.float32)))
            m.bias.copy_(torch.from_numpy(bias.astype(np.float32)))
        put(lin[0], t * (enc / sd).T, -t * (mu @ enc) / sd)
        # act's quadratic term adds a t^2 on average (c has unit variance): taken out too
        c2 = c + a * t * t
        for m in lin[1:-1]:
            put(m, np.eye(k) / b, np.full(k, -c2 / b))
        wl = p * sd / (t * b)
        put(lin[-1], wl, mu - wl @ np.full(k, c2))
    test_set, val_set = load("test"), val_part(args)
    xt = test_set[0].numpy().astype(np.float64)
    res = {"pca_init": args.pca_init, "widths": args.widths, "pca_scale": t, "val": args.val,
           "pca_test": float((((xt - mu) @ p @ p.T + mu - xt) ** 2).mean())}
    if args.pca_blocks > 1:
        # the first and last layers are block-diagonal: their share of zero weights (whole
        # --input-tile x --pca-group tiles), for --more --layers
        nz = sum((e - s) * a for (s, e), a in zip(bounds, alloc))
        res.update({"pca_blocks": [[int(s), int(e), int(a)] for (s, e), a in zip(bounds, alloc)],
                    "pca_group": args.pca_group, "block_zero_share": 1 - nz / (784 * k)})
    if dropped:
        res.update({"zero_input_tiles": dropped, "input_tile": args.input_tile,
                    "linear_test": float((((xt - mu) @ enc @ p.T + mu - xt) ** 2).mean()),
                    # the first layer's share of zero tiles, for --more --layers
                    "first_layer_sparsity": len(dropped) / -(-784 // args.input_tile)})
    res.update({"init_" + key: v for key, v in scores(model, "ae1", test_set, val_set).items()})
    export(model, args.pca_init, "ae1")
    res["onnx_sha256"] = sha256(args.pca_init)
    with open(args.out, "w") as f:
        json.dump(res, f, indent=1)
    print(json.dumps(res))


def greedy_select(g, c, k, ridge, what):
    """--select greedy: k of the d inputs (covariance g, d x d; covariance with the target c,
    d x m), by forward selection, each step the one whose addition most lowers the ridge least-
    squares error of the target (rank-one Schur-complement updates of g + ridge I). Returns
    the chosen indices in order; exits when k exceeds the numerical rank."""
    d = g.shape[0]
    gr, cr = g + ridge * np.eye(d), c.copy()
    floor = 1e-9 * float(np.diag(gr).max())
    chosen = []
    for _ in range(k):
        dg = np.diag(gr).copy()
        gain = (cr * cr).sum(1) / np.maximum(dg, floor)
        gain[chosen] = -np.inf
        gain[dg <= floor] = -np.inf
        if not np.isfinite(gain.max()):
            sys.exit(f"--refit: {what}: the activations of the {len(chosen)} neurons chosen so "
                     f"far span all the others (numerical rank {len(chosen)} < --keep {k}); "
                     f"ask for fewer neurons or a larger --ridge")
        j = int(np.argmax(gain))
        chosen.append(j)
        u, cj = gr[:, j].copy(), cr[j].copy()
        gr -= np.outer(u, u) / u[j]
        cr -= np.outer(u, cj) / u[j]
    return chosen


def refit(args, kind):
    """--refit FILE: neuron pruning of the dense reference (--dense-from) with a least-squares
    refit of the next layer (He, Zhang, Sun, "Channel pruning for accelerating very deep
    neural networks", ICCV 2017; Luo, Wu, Lin, "ThiNet", ICCV 2017). Hidden layer by hidden
    layer, first to last, where --keep asks for fewer neurons than it has: from the hidden
    activations a of the model pruned so far (on the fine-tuning images: the first --ft-limit
    training images), choose --keep of its neurons (--select greedy: forward selection, each
    step the neuron whose addition most lowers the least-squares error of the target;
    energy: the largest var(a_j) |W_next[:, j]|^2), keep their rows of the layer that makes
    them, and refit the next layer's weights and bias by (ridge --ridge, relative) least
    squares from the kept activations to the target: for a hidden layer that is not the last,
    the dense model's pre-activation of that next layer (inputs from the pruned model, targets
    from the dense one, as both papers do, so later layers also correct earlier errors); for
    the last hidden layer, the next layer is the output and its target is the image itself
    (the training images, not the dense model's reconstruction as in the papers: a plain
    least-squares regression of the autoencoder's output on the data).
    The result is the dense model's own neurons and weights (a pruned dense model, not a new
    narrow one) with refitted next layers; the activations keep the dense model's trained
    coefficients. Writes FILE (PyTorch's export), the choice and the MSEs to --out, stops;
    fine-tune it with --more FILE."""
    if not is_ae(kind):
        sys.exit("--refit: autoencoders only (--model ae1 or ae2)")
    if not args.dense_from:
        sys.exit("--refit needs --dense-from (the JSON of the dense reference to prune)")
    with open(args.dense_from) as f:
        dense = json.load(f)["dense"]
    same_val(args, dense)
    src = dense["onnx"]
    if dense.get("onnx_sha256") and sha256(src) != dense["onnx_sha256"]:
        sys.exit(f"--refit: {src} changed since the dense reference was recorded (sha256)")
    model, _ = load_pruned(kind, src)
    lin = [m for m in model if isinstance(m, torch.nn.Linear)]
    coefs = [m.coef for m in model if isinstance(m, Act)]
    cur = [(m.weight.detach().double().numpy().copy(), m.bias.detach().double().numpy().copy())
           for m in lin]
    orig = [(w.copy(), b.copy()) for w, b in cur]
    try:
        keep = [int(v) for v in args.keep.split(",")]
    except ValueError:
        sys.exit(f"--keep: not a list of integers: {args.keep}")
    if len(keep) != len(lin) - 1 or any(not 0 < k <= w.shape[0] for k, (w, _) in
                                        zip(keep, cur)):
        sys.exit(f"--keep: one count per hidden layer ({len(lin) - 1}), each in 1..its width")
    x = train_part(args)[0][:args.ft_limit or None].double().numpy()

    def act(z, coef):
        a, b, c = coef
        return a * z * z + b * z + c

    def hidden(ws, l, xb):
        h = xb
        for i in range(l + 1):
            h = act(h @ ws[i][0].T + ws[i][1], coefs[i])
        return h
    info = {"keep": keep, "select": args.select, "ridge": args.ridge, "images": x.shape[0],
            "dense_onnx": src, "dense_onnx_sha256": dense.get("onnx_sha256"), "layers": []}
    t0 = time.time()
    for l, k in enumerate(keep):
        if k == cur[l][0].shape[0]:
            continue
        last = l + 1 == len(lin) - 1
        d, m = cur[l][0].shape[0], cur[l + 1][0].shape[0]
        n, sa, saa, sy, say, syy = 0, np.zeros(d), np.zeros((d, d)), np.zeros(m), \
            np.zeros((d, m)), 0.0
        for i in range(0, x.shape[0], 5000):
            xb = x[i:i + 5000]
            a = hidden(cur, l, xb)
            # the target: the dense model's pre-activation of the next layer, or the image
            y = xb if last else hidden(orig, l, xb) @ orig[l + 1][0].T + orig[l + 1][1]
            n += xb.shape[0]
            sa += a.sum(0)
            saa += a.T @ a
            sy += y.sum(0)
            say += a.T @ y
            syy += float((y * y).sum())
        mu_a, mu_y = sa / n, sy / n
        g = saa / n - np.outer(mu_a, mu_a)
        c = say / n - np.outer(mu_a, mu_y)
        var_y = syy / n - float(mu_y @ mu_y)  # summed over the m outputs
        ridge = args.ridge * float(np.trace(g)) / d
        if args.select == "energy":
            score = np.diag(g) * (cur[l + 1][0] ** 2).sum(0)
            sel = np.sort(np.argsort(-score, kind="stable")[:k])
        else:
            sel = np.sort(np.array(greedy_select(g, c, k, ridge, f"hidden layer {l + 1}")))
        gs = g[np.ix_(sel, sel)] + ridge * np.eye(k)
        wn = np.linalg.solve(gs, c[sel]).T  # (m, k)
        bn = mu_y - wn @ mu_a[sel]
        # the training MSE of the target (per output) left by the refit, and by keeping the
        # dense weights of the chosen neurons (their dropped neighbours' means in the bias)
        resid = (var_y - float(np.einsum("ij,ij->", c[sel], wn.T))) / m
        wo = cur[l + 1][0][:, sel]
        drop_only = (var_y - 2 * float(np.einsum("ij,ij->", c[sel], wo.T)) +
                     float(np.einsum("ij,jk,ik->", wo, g[np.ix_(sel, sel)], wo))) / m
        info["layers"].append({"hidden": l, "width": d, "kept": k, "target": "image" if last
                               else f"dense pre-activation of layer {l + 2}",
                               "target_var": var_y / m, "refit_train_mse": resid,
                               "no_refit_train_mse": drop_only, "kept_neurons": sel.tolist()})
        print(f"--refit: hidden layer {l + 1}: {d} -> {k} neurons ({args.select}); target "
              f"variance {var_y / m:.6g}, error {resid:.6g} refitted, {drop_only:.6g} with "
              f"the dense weights", file=sys.stderr, flush=True)
        cur[l] = (cur[l][0][sel], cur[l][1][sel])
        cur[l + 1] = (wn, bn)
    info["refit_s"] = round(time.time() - t0, 1)
    out = build(kind, [cur[0][0].shape[1]] + [w.shape[0] for w, _ in cur])
    for a_mod, coef in zip([m for m in out if isinstance(m, Act)], coefs):
        a_mod.coef = coef
    with torch.no_grad():
        for mod, (w, b) in zip([m for m in out if isinstance(m, torch.nn.Linear)], cur):
            mod.weight.copy_(torch.from_numpy(w.astype(np.float32)))
            mod.bias.copy_(torch.from_numpy(b.astype(np.float32)))
    test_set, val_set = load("test"), val_part(args)
    info.update({"init_" + key: v for key, v in scores(out, kind, test_set, val_set).items()})
    info.update({"dense_loss": dense["loss"], "dense_val_loss": dense.get("val_loss")})
    # PyTorch's export bakes the activations in as Constant nodes (activations_of reads them
    # since ae9fix; before, it fell back to ACT): tessera prune rewrites the model with named
    # ones (.../c2, c1, c0), changing nothing else (the recorded sha256s are of those files)
    tmp = os.path.splitext(args.refit)[0] + "-torch.onnx"
    export(out, tmp, kind)
    tessera(args, ["prune", tmp, "--out", args.refit, "--method", "tile", "--sparsity", "0",
                   "--quiet", "--force"])
    if [tuple(round(v, 6) for v in c) for c in activations_of(args.refit)] != \
            [tuple(round(v, 6) for v in c) for c in coefs]:
        sys.exit(f"--refit: {args.refit} does not carry the dense model's activations")
    info.update({"refit": args.refit, "onnx_sha256": sha256(args.refit), "val": args.val,
                 "widths": [cur[0][0].shape[1]] + [w.shape[0] for w, _ in cur]})
    with open(args.out, "w") as f:
        json.dump(info, f, indent=1)
    print(json.dumps({k: v for k, v in info.items() if k != "layers"}))


def block_pca(xc, k, regions, tile, group):
    """--pca-blocks R: a block-diagonal K-component basis. The 784 pixels are cut into R runs of
    whole tiles of `tile` pixels (as equal as the tiles allow), each run gets its own PCA, and the
    K components go to the runs `group` at a time, each group to the run whose next `group`
    components carry the most variance (greedy; the least squared error for K components taken
    in groups). xc: the centred training images. Returns (p (784, K) orthonormal columns, zero
    outside each column's run; the per-column variance; the components per run; the runs as
    [start, end) pixel ranges)."""
    n_t = -(-784 // tile)
    cut = [min(784, int(round(n_t * r / regions)) * tile) for r in range(regions + 1)]
    bounds = [(cut[r], cut[r + 1]) for r in range(regions)]
    spec = []
    for s, e in bounds:
        ev, v = np.linalg.eigh(xc[:, s:e].T @ xc[:, s:e] / xc.shape[0])
        spec.append((ev[::-1], v[:, ::-1]))
    alloc = [0] * regions
    for _ in range(k // group):
        def gain(r):
            a, n = alloc[r], bounds[r][1] - bounds[r][0]
            return spec[r][0][a:a + group].sum() if a + group <= n else -1.0
        best = max(range(regions), key=gain)
        if gain(best) < 0:
            sys.exit(f"--pca-blocks {regions}: {k} components do not fit the runs")
        alloc[best] += group
    p, var, j = np.zeros((784, k)), np.zeros(k), 0
    for (s, e), a, (ev, v) in zip(bounds, alloc, spec):
        p[s:e, j:j + a], var[j:j + a] = v[:, :a], ev[:a]
        j += a
    return p, var, alloc, bounds


def zero_input_tiles(args, xc, p):
    """--zero-inputs K: the encoder (784, k) of --pca-init, P itself, or with K > 0 the least-
    squares map from the pixels left after zeroing K aligned tiles of --input-tile consecutive
    pixels (the first layer's input tile columns) to the PCA coefficients xc P, its zero rows the
    dropped pixels. The K tiles are chosen greedily, each the one whose loss leaves the least
    squared error of the coefficients on the training images (the PCA's own error is the
    same for every choice: P is orthonormal). Returns (encoder, sorted tile indices)."""
    if not args.zero_inputs:
        return p, []
    T = args.input_tile
    n_t = -(-784 // T)
    g, h = xc.T @ xc, xc.T @ (xc @ p)

    def enc_of(drop):
        keep = np.ones(784, bool)
        for i in drop:
            keep[i * T:(i + 1) * T] = False
        e = np.zeros_like(p)
        e[keep] = np.linalg.solve(g[np.ix_(keep, keep)], h[keep])
        return e, float(np.einsum("ij,ij->", h[keep], e[keep]))  # coefficient energy kept
    drop = []
    for _ in range(args.zero_inputs):
        best = max((i for i in range(n_t) if i not in drop), key=lambda i: enc_of(drop + [i])[1])
        drop.append(best)
        print(f"--zero-inputs: tile {best} (pixels {best * T}..{min(784, best * T + T) - 1})",
              file=sys.stderr, flush=True)
    return enc_of(drop)[0], sorted(drop)


def pixel_blocks(x, size, ks, counts):
    """--pixel-blocks: what whole tile columns of the first layer (its input pixels) and whole
    tile rows of the last (its output pixels) cost an autoencoder, per block of `size`
    consecutive pixels (the narrow plan's t0: one tile column / row). Blocks are ranked by the
    training images' summed pixel variance; for the m lowest: "output_as_mean", the test MSE of
    the outputs they hold if each is the training mean (what a tile row left to the bias
    costs, against a perfect reconstruction); "inputs_removed", for each K, the least test MSE
    of any reconstruction affine in K features that are affine in the other pixels (the test
    images' own reduced-rank regression: a bound for near-linear networks, as --pca, which is
    m = 0). x: the training images (the ones the models may see)."""
    x, xt = (v.numpy().astype(np.float64) for v in (x, load("test")[0]))
    bvar = x.var(0).reshape(-1, size).sum(1)
    order = np.argsort(bvar, kind="stable")
    err = ((xt - x.mean(0)) ** 2).mean(0).reshape(-1, size).sum(1) / 784
    mu = xt.mean(0)
    cov = (xt - mu).T @ (xt - mu) / xt.shape[0]
    res = {"block": size, "blocks": len(order), "order": order.tolist(),
           "block_variance": bvar[order].tolist(), "rows": []}
    for m in counts:
        keep = [p for p in range(784) if p // size not in set(order[:m].tolist())]
        cs, ca = cov[np.ix_(keep, keep)], cov[keep, :]
        fit = ca.T @ np.linalg.solve(cs + 1e-9 * np.eye(len(keep)), ca)  # fitted covariance
        ev = np.linalg.eigvalsh(fit)[::-1]
        res["rows"].append({"removed": m, "output_as_mean": float(err[order[:m]].sum()),
                            "inputs_removed": {k: float((np.trace(cov) - ev[:k].sum()) / 784)
                                               for k in ks}})
    return res


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="ae1", choices=["ae1", "ae2", "mlp", "cnn"])
    ap.add_argument("--tessera", default="build/bin/tessera")
    ap.add_argument("--epochs", type=int, default=5, help="dense training (PyTorch)")
    ap.add_argument("--steps", type=int, default=3, help="gradual pruning steps")
    ap.add_argument("--ft-epochs", type=int, default=1, help="tessera fine-tuning per step")
    ap.add_argument("--ft-lr", type=float, default=5e-4)
    ap.add_argument("--ft-batch", type=int, default=64)
    ap.add_argument("--ft-limit", type=int, default=0, help="fine-tune on the first N samples")
    ap.add_argument("--val", type=int, default=0,
                    help="hold out the last N of the 60 000 training images as a validation "
                    "split: never trained on (base model, fine-tunings, --pca-init), scored as "
                    "val_loss of every point, to choose schedules on (--ft-limit defaults to "
                    "60 000 - N and may not exceed it)")
    ap.add_argument("--sparsity", default="0.5,0.75")
    ap.add_argument("--layers", default="",
                    help="per-layer sparsity pattern, s = the swept sparsity, e.g. s,0,0,s")
    ap.add_argument("--rows", default="",
                    help="per-layer tile-row sparsity (tile-row-aware pruning), e.g. 0,0,0,0.3")
    ap.add_argument("--distill", type=float, default=0.0,
                    help="distillation weight A: fine-tune on (1 - A) data loss + A MSE to the "
                    "dense reference's outputs")
    ap.add_argument("--seed", type=int, default=1,
                    help="tessera prune --seed of the pruned runs (k-means, expansion, shuffling)")
    ap.add_argument("--dense-seed", type=int, default=0,
                    help="tessera prune --seed of the dense reference's fine-tuning (its data "
                    "order); 0: not passed (tessera's default, 1)")
    ap.add_argument("--expand", type=float, default=1.25)
    ap.add_argument("--methods", default="tile,magnitude,hunter,hepex,hepex+expand")
    ap.add_argument("--tile", default="auto",
                    help="RxC, or auto: the dense model's plan (t0, t3, orientation)")
    ap.add_argument("--log-n", type=int, default=14)
    ap.add_argument("--batch", type=int, default=1, help="batch of the plan and the benchmark")
    ap.add_argument("--bench", action="store_true")
    ap.add_argument("--runs", type=int, default=2)
    ap.add_argument("--tag", default="", help="suffix of the pruned models' file names")
    ap.add_argument("--dense-from", default="", help="take the dense reference from this JSON")
    ap.add_argument("--bench-methods", default="",
                    help="measure only these methods (default: every method that removes tiles)")
    ap.add_argument("--bench-runs", default="",
                    help="dense,METHOD:SPARSITY[:TAG],...: measure these points of --out "
                    "encrypted, record them in --out, redraw, stop (run under the big-memory lock)")
    ap.add_argument("--bench-log", default=None,
                    help="with --bench-runs: append the bench outputs to this file")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--work", default="build/prune-exp")
    ap.add_argument("--out", default="", help="the JSON of results (required but with --self-test)")
    ap.add_argument("--table", action="store_true", help="print the table of --out and stop")
    ap.add_argument("--reeval", action="store_true",
                    help="recompute the losses of --out from its saved models, redraw, stop")
    ap.add_argument("--compare", default="",
                    help="with --merge: print, per method, the products and predicted latency "
                    "saved at the loss of each point of this method (interpolated)")
    ap.add_argument("--offset-tiles", action="store_true",
                    help="tessera prune --offset-tiles: a convolution's tile unit is one kernel "
                    "offset's (what the compiler skips); tile budgets count these units")
    ap.add_argument("--shrink", action="store_true",
                    help="tessera prune --shrink: remove the hidden features pruning emptied "
                    "(with --rows on the hidden layers: neuron pruning); methods get '+shrink'")
    ap.add_argument("--widths", default="",
                    help="autoencoder widths of the dense model trained from scratch, e.g. "
                    "784,256,128,256,784 (its files are named after the widths)")
    ap.add_argument("--narrow", default="",
                    help="with --merge: A.json,... whose dense models (--widths) join as points "
                    "of method 'narrow' (dense narrower networks trained from scratch)")
    ap.add_argument("--measured", default="",
                    help="with --merge: KEY=FILE,... outputs of `tessera bench model` (run by "
                    "hand, e.g. under flock) for the dense reference (KEY dense) or the one run "
                    "whose tag, METHOD:SPARSITY or TAG:METHOD:SPARSITY is KEY (--narrow runs: "
                    "their file's name without MODEL-, e.g. w128)")
    ap.add_argument("--more", default="",
                    help="MODEL.onnx: fine-tune a pruned (e.g. shrunk) model further, --steps "
                    "more fine-tunings with its zeros kept (tessera prune --method tile "
                    "--sparsity 0), and record it as a run of --methods (one) at --sparsity "
                    "(one) with --tag, continued_from MODEL (needs --dense-from); passes --seed "
                    "(the data order) and --layers as --layer-sparsity")
    ap.add_argument("--pca-init", default="",
                    help="FILE.onnx: write an autoencoder of --widths 784,K,...,K,784 initialised "
                    "as the training images' K-component PCA (no dense model pruned), print its "
                    "MSE, stop; fine-tune it with --more FILE.onnx")
    ap.add_argument("--pca-scale", type=float, default=0.05,
                    help="--pca-init: the standard deviation t of the first layer's outputs "
                    "(smaller: nearer the PCA, the activation's quadratic term smaller)")
    ap.add_argument("--refit", default="",
                    help="FILE.onnx: prune the hidden layers of the dense reference (--dense-from) "
                    "to --keep neurons each, choosing them by --select and refitting the next "
                    "layer by least squares on the training activations (to the dense model's "
                    "pre-activation, or the image for the last layer); write it, print its MSE, "
                    "stop; fine-tune it with --more FILE.onnx")
    ap.add_argument("--keep", default="",
                    help="--refit: neurons kept per hidden layer, e.g. 256,256,256")
    ap.add_argument("--select", default="greedy", choices=["greedy", "energy"],
                    help="--refit: which neurons: greedy forward selection by the next layer's "
                    "least-squares error, or the largest var(a_j) |W_next[:, j]|^2")
    ap.add_argument("--ridge", type=float, default=1e-6,
                    help="--refit: ridge of the least squares, times the mean activation variance")
    ap.add_argument("--ft-torch", action="store_true",
                    help="with --more, or for the dense reference (the --steps + 1 cycles "
                    "of the main run): fine-tune in PyTorch with the activations frozen "
                    "(tessera's trainer trains them towards linear, past the compiler's shift "
                    "budget), the zero weights kept zero; tessera prune then only writes and "
                    "counts the model")
    ap.add_argument("--ft-torch-distill", type=float, default=0.0,
                    help="--ft-torch with --more: W > 0 adds W x the squared error of the hidden "
                    "activations to the dense model's (--dense-from's) at the same neurons, "
                    "relative to their variance, averaged over the hidden layers (the refit's "
                    "pruned layers mapped by --refit-info)")
    ap.add_argument("--refit-info", default="",
                    help="--ft-torch-distill: the JSON --refit wrote (its kept_neurons)")
    ap.add_argument("--curve", action="store_true",
                    help="--ft-torch: score the validation split and the test set after every "
                    "epoch; the JSON gets [[epoch, val, test], ...] as curve, --out's stem "
                    "-curve.svg the plot (scores only: nothing is chosen by them)")
    ap.add_argument("--ft-torch-shift", type=float, default=0.0,
                    help="--ft-torch: S > 0 trains the activations a x^2 + b x + c too, projected "
                    "after each step onto |b / 2a| <= S (the shift the compiler folds into the "
                    "previous layer; rule 3 keeps it a square while it costs <= 10 bits, about "
                    "S = 100 for the input bound 4); 0: frozen")
    ap.add_argument("--zero-inputs", type=int, default=0,
                    help="--pca-init: zero K whole tiles of the first layer's input columns (K "
                    "aligned runs of --input-tile pixels, chosen greedily by the PCA "
                    "coefficients' least-squares error without them); fine-tune it with --more "
                    "and --layers set to the printed first_layer_sparsity,0,...")
    ap.add_argument("--pca-blocks", type=int, default=1,
                    help="--pca-init: R > 1 cuts the pixels into R runs of whole --input-tile "
                    "tiles, each with its own PCA, and gives the K components to the runs "
                    "--pca-group at a time by variance: the first and last layers are then "
                    "block-diagonal, most of their tiles zero (fine-tune with --more and --layers "
                    "set to the printed block_zero_share for the first and last layer)")
    ap.add_argument("--pca-group", type=int, default=16,
                    help="--pca-blocks: components given to a run at a time (the plan's output "
                    "tile: 16 keeps the blocks whole tiles of [8,1,1,16,64] and [8,1,1,8,128])")
    ap.add_argument("--input-tile", type=int, default=16,
                    help="--zero-inputs: pixels per input tile column (the plan's t0)")
    ap.add_argument("--data-tiles", default="",
                    help="F,... (one share per layer) with --more and --steps 1: first zero the "
                    "share F of each layer's tiles (--tile) of least data-weighted mass (sum of "
                    "w^2 x the variance of the weight's input over the fine-tuning images), "
                    "folding their mean contribution into the bias, then fine-tune with those "
                    "tiles masked")
    ap.add_argument("--tile-refit", action="store_true",
                    help="with --data-tiles: refit each tile row's remaining weights and bias by "
                    "least squares (to the layer's pre-activation, or the image for the last "
                    "layer) instead of folding the zeroed weights' means into the bias")
    ap.add_argument("--tile-select", default="mass", choices=["mass", "ls"],
                    help="with --tile-refit: which tiles --data-tiles zeroes: least data-weighted "
                    "mass, or greedily by the least-squares error of the refit (ls; keeps one "
                    "inverse input covariance per tile row: 128 x 784^2 x 8 B = 630 MB for "
                    "AE2's first layer's 128 tile rows; never zeroes a tile row's last tile)")
    ap.add_argument("--self-test", action="store_true",
                    help="check that activations_of reads back the activation coefficients of "
                    "PyTorch's export (random ones, every --model kind), and --select greedy and "
                    "--tile-select ls against brute force on a small random problem, "
                    "--ft-torch-distill's neuron map and --refit-info's checks (student and "
                    "teacher) on a small random autoencoder, curve_svg's plot and --curve's "
                    "per-epoch scores (a 784-8-4-8-784 model, 256 images), --cycle-plot's and "
                    "--target-ref's points, then stop")
    ap.add_argument("--cycle-plot", action="append", default=[],
                    help="NAME:START:A.json,B.json,...: the --curve of consecutive cosine cycles "
                    "of one model (each JSON's run, or its dense reference when it has no run "
                    "with a curve), drawn from trainer epoch START + 1 on; repeat for more "
                    "models; writes --out (an SVG: validation MSE per epoch, log scale, cycle "
                    "boundaries marked), then stops")
    ap.add_argument("--target-ref", default="",
                    help="with --merge and --measured: a JSON whose dense reference (or its "
                    "one run) is the model the points are held to: also writes --out's stem "
                    "-target.svg, CPU and server memory saved (measured) against the "
                    "validation MSE as a multiple of the reference's, with the 1.1x and 60 %% "
                    "lines")
    ap.add_argument("--merge", default="",
                    help="A.json,B.json,...: runs of several invocations sharing one dense "
                    "reference into --out (table and curves), then stop")
    ap.add_argument("--pca", default="",
                    help="K,...: into --out, then stop: \"pca\", the test MSE of the best "
                    "K-dimensional affine reconstruction of the test images (their own PCA), a "
                    "lower bound for an autoencoder whose output is affine in its last hidden "
                    "layer's K features; \"pca_train_fit\", the test MSE in the training "
                    "images' K-component PCA subspace (not a bound)")
    ap.add_argument("--pixel-blocks", default="",
                    help="B:M,...: into --out, then stop: for the M lowest-variance blocks of B "
                    "consecutive pixels (a tile column of the first layer, a tile row of the "
                    "last), the test MSE of leaving those outputs to the bias and the bound "
                    "with those inputs removed at the --pca widths (default 256)")
    args = ap.parse_args()
    if args.self_test:
        self_test()
        return
    if not args.out:
        ap.error("the following arguments are required: --out")
    if args.curve and not args.ft_torch:
        sys.exit("--curve: only the PyTorch fine-tuning (--ft-torch) scores every epoch")
    if args.ft_torch_distill > 0 and not (args.ft_torch and args.more):
        sys.exit("--ft-torch-distill: only with --ft-torch and --more (a pruned model's "
                 "fine-tuning against its dense reference)")
    if args.ft_torch_distill < 0:
        sys.exit(f"--ft-torch-distill {args.ft_torch_distill}: must be >= 0")
    if args.refit_info and not args.ft_torch_distill > 0:
        sys.exit("--refit-info: only with --ft-torch-distill W > 0 (its neuron map is the "
                 "distillation's)")
    if args.ft_torch and args.distill > 0:
        sys.exit("--ft-torch with --distill > 0: --distill is tessera's output distillation; "
                 "the PyTorch form distils hidden activations (--ft-torch-distill W "
                 "--refit-info FILE): drop one of them")
    if not 0 <= args.val < N_TRAIN:
        sys.exit(f"--val {args.val}: must be in 0..{N_TRAIN - 1}")
    if args.val and not args.ft_limit:
        args.ft_limit = N_TRAIN - args.val
    if args.val and args.ft_limit > N_TRAIN - args.val:
        sys.exit(f"--ft-limit {args.ft_limit} with --val {args.val}: the fine-tunings would "
                 f"train on the held-out tail; use --ft-limit <= {N_TRAIN - args.val}")
    if args.pixel_blocks:
        try:
            size, counts = args.pixel_blocks.split(":")
            size, counts = int(size), [int(m) for m in counts.split(",")]
            ks = [int(k) for k in (args.pca or "256").split(",")]
        except ValueError:
            sys.exit(f"--pixel-blocks: not B:M,... (integers): {args.pixel_blocks}")
        if size < 1 or 784 % size or any(not 0 <= m < 784 // size for m in counts) or \
                any(not 0 < k <= 784 for k in ks):
            sys.exit("--pixel-blocks: B must divide 784, each M < 784 / B, each K in 1..784")
        res = pixel_blocks(train_part(args)[0], size, ks, counts)
        with open(args.out, "w") as f:
            json.dump(res, f, indent=1)
        for r in res["rows"]:
            print(json.dumps(r))
        return
    if not args.pca_init and (args.zero_inputs or args.pca_scale != 0.05 or
                              args.input_tile != 16 or args.pca_blocks != 1 or
                              args.pca_group != 16):
        sys.exit("--zero-inputs, --pca-scale, --pca-blocks, --pca-group and --input-tile only "
                 "apply to --pca-init")
    if args.pca_init:
        if not 0 < args.pca_scale <= 4:
            sys.exit(f"--pca-scale {args.pca_scale}: must be in (0, 4]")
        if not 1 <= args.input_tile <= 784:
            sys.exit(f"--input-tile {args.input_tile}: must be in 1..784")
        if not 0 <= args.zero_inputs < -(-784 // args.input_tile):
            n_t = -(-784 // args.input_tile)
            sys.exit(f"--zero-inputs {args.zero_inputs}: must be in 0..{n_t - 1} (--input-tile "
                     f"{args.input_tile} makes {n_t} tiles)")
        if not 1 <= args.pca_blocks <= -(-784 // args.input_tile):
            sys.exit(f"--pca-blocks {args.pca_blocks}: must be in 1..{-(-784 // args.input_tile)}")
        k = int(args.widths.split(",")[1]) if args.widths.count(",") >= 2 else 0
        if args.pca_blocks > 1 and (args.pca_group < 1 or k % args.pca_group):
            sys.exit(f"--pca-group {args.pca_group}: must divide the hidden width {k}")
        pca_init(args)
        return
    if args.pca:
        try:
            ks = [int(k) for k in args.pca.split(",")]
        except ValueError:
            sys.exit(f"--pca: not a list of integers: {args.pca}")
        if any(not 0 < k <= 784 for k in ks):
            sys.exit(f"--pca: each K must be in 1..784: {args.pca}")
        bound, train_fit, train_fit_val = pca_mse(ks, args)
        res = {"pca": bound, "pca_train_fit": train_fit,
               "val": args.val,
               "pca_note": "pca: the test images' own K-component PCA, scored on them (a lower "
               "bound on the test MSE of any output affine in K features); pca_train_fit: the "
               "training images' components and mean, test images scored (not a bound)"}
        if train_fit_val:
            res["pca_train_fit_val"] = train_fit_val
            res["pca_note"] += "; pca_train_fit_val: the same, the --val images scored"
        with open(args.out, "w") as f:
            json.dump(res, f, indent=1)
        print(json.dumps(res))
        return
    if args.cycle_plot:
        cycle_plot(args.cycle_plot, args.out)
        return
    if args.merge:
        parts = []
        for path in args.merge.split(","):
            with open(path) as f:
                parts.append(json.load(f))
        for path, part in zip(args.merge.split(","), parts):
            d0, d = parts[0].get("dense", {}), part.get("dense", {})
            if (d.get("onnx_sha256"), d.get("val", 0)) != (d0.get("onnx_sha256"), d0.get("val", 0)):
                sys.exit(f"--merge: {path} was measured against another dense reference (sha256 "
                         f"{d.get('onnx_sha256')}, val {d.get('val', 0)}) than the first part's "
                         f"({d0.get('onnx_sha256')}, val {d0.get('val', 0)}): its ratios would be "
                         "wrong")
        res = dict(parts[0])
        res["runs"] = []
        for part in parts:
            for r in part["runs"]:
                r.setdefault("layers", part.get("layers", ""))
                res["runs"].append(r)
        for path in filter(None, args.narrow.split(",")):
            with open(path) as f:
                part = json.load(f)
            r = dict(part["dense"])
            stem = os.path.splitext(os.path.basename(path))[0]
            r.update({"method": "narrow", "sparsity": 0.0,
                      "tag": stem.removeprefix(part["model"] + "-"),
                      "layer_sparsity": []})
            res["runs"].append(r)
        for item in filter(None, args.measured.split(",")):
            key, path = item.split("=", 1)
            with open(path) as f:
                text = f.read()
            # the plan's counts and predictions too: the bench compiled the plan it measured
            # (a newer compiler may plan a run's model differently from its recorded counts)
            fig = {k: v for k, v in bench_parse(args, path, text).items()
                   if k in ("latency_s", "cpu_s", "server_mib", "max_err", "ct_pt", "rotations",
                            "predicted_s", "predicted_mib")}
            fig["bench_file"] = os.path.basename(path)
            hits = [res["dense"]] if key == "dense" else \
                [r for r in res["runs"] if key in (
                    r.get("tag", "").strip("-"), f"{r['method']}:{r['sparsity']}",
                    f"{r.get('tag', '').strip('-')}:{r['method']}:{r['sparsity']}")]
            if len(hits) != 1:
                # one bench output measures one model
                sys.exit(f"--measured: {len(hits)} runs match {key}, not one")
            for r in hits:
                r.update(fig)
            res["show_cpu"] = True  # bench outputs carry the CPU time: show it
        with open(args.out, "w") as f:
            json.dump(res, f, indent=1)
        plots(res, args.out, "latency_s" in res["dense"])
        if args.target_ref:
            with open(args.target_ref) as f:
                ref = curve_run(json.load(f))
            target_svg(res, ref, os.path.splitext(args.out)[0] + "-target.svg")
        print(table(res))
        if args.compare:
            print(at_equal_loss(res, args.compare))
        return
    if args.reeval:
        with open(args.out) as f:
            res = json.load(f)
        kind, test_set = res["model"], load("test")
        wtag = "-w" + res["widths"].replace(",", "-") if res.get("widths") else ""
        wtag += f"-val{res['val']}" if res.get("val") else ""
        args.val = res.get("val", 0)
        val_set = val_part(args)
        res["dense"].update(scores(
            load_pruned(kind, f"{args.work}/{kind}{wtag}-dense.onnx")[0], kind, test_set, val_set))
        for r in res["runs"]:
            # runs before "onnx" was recorded: '+shrink' was not in the file name
            path = r.get("onnx") or f"{args.work}/{kind}{wtag}-" \
                f"{r['method'].removesuffix('+shrink').replace('+', '_')}{res.get('tag', '')}-" \
                f"{r['sparsity']}.onnx"
            r.update(scores(load_pruned(kind, path)[0], kind, test_set, val_set))
        with open(args.out, "w") as f:
            json.dump(res, f, indent=1)
        plots(res, args.out, "latency_s" in res["dense"])
        print(table(res))
        return
    if args.bench_runs:
        bench_runs(args)
        return
    if args.table:
        with open(args.out) as f:
            print(table(json.load(f)))
        return
    torch.set_num_threads(args.threads)
    os.makedirs(args.work, exist_ok=True)
    test_set = load("test")
    kind = args.model
    if args.refit:
        refit(args, kind)
        return
    if args.more:
        more(args, kind, test_set)
        return
    # a main run trains the dense reference and the methods' points: one trainer for all
    if args.ft_torch and args.methods:
        sys.exit("--ft-torch in a main run trains the dense reference only (the methods' points "
                 "use tessera's trainer, so their ratios would compare two trainers): add "
                 "--methods \"\" and fine-tune pruned models with --more --ft-torch")
    if args.ft_torch and args.dense_from:
        sys.exit("--ft-torch with --dense-from: the reference comes from the earlier run; "
                 "drop one of them")
    # a dense model of other widths (--widths) gets its own files
    wtag = "-w" + args.widths.replace(",", "-") if args.widths else ""
    # a base model and dense reference that never saw the validation tail get their own files
    wtag += f"-val{args.val}" if args.val else ""
    base = f"{args.work}/{kind}{wtag}.onnx"
    val_set = val_part(args)
    t_start = time.time()
    if not os.path.exists(base):
        torch.manual_seed(0)
        sizes = [int(v) for v in args.widths.split(",")] if args.widths else None
        model = train(build(kind, sizes), kind, train_part(args), args.epochs, 1e-3)
        export(model, base, kind)
    files = data_files(args, kind)
    dense_plan = plan_counts(args, base)
    spatial = "1x1"
    if args.tile == "auto":
        # the first layer's outputs go to D3 for a flat input packed with orientation 0,
        # to D0 for a one-channel image (its filters follow the orientation)
        t0, t3, o = dense_plan["t0"], dense_plan["t3"], dense_plan["orient"]
        first_d3 = (o == 0) if kind != "cnn" else (o == 3)
        args.tile = f"{t3}x{t0}" if first_d3 else f"{t0}x{t3}"
        spatial = f"{dense_plan['t1']}x{dense_plan['t2']}"
    tiling = ["--tile", args.tile, "--tile-spatial", spatial] + \
        (["--offset-tiles"] if args.offset_tiles else [])
    # the dense reference: fine-tuned by the same trainer for as many epochs as HE-PEx gets
    # (steps + 1 fine-tunings; the other methods get steps)
    dense = f"{args.work}/{kind}{wtag}-dense.onnx"
    res = {"model": kind, "log_n": args.log_n, "tile": args.tile, "spatial": spatial,
           "epochs": args.epochs,
           "steps": args.steps, "ft_epochs": args.ft_epochs, "ft_limit": args.ft_limit,
           "batch": args.batch, "layers": args.layers, "expand": args.expand, "tag": args.tag,
           "rows": args.rows, "distill": args.distill, "widths": args.widths,
           "offset_tiles": args.offset_tiles, "seed": args.seed, "runs": []}
    if args.val:
        res["val"] = args.val
    if args.dense_seed:
        res["dense_seed"] = args.dense_seed
    if args.dense_from:
        # the same dense reference as an earlier run with the same settings
        with open(args.dense_from) as f:
            res["dense"] = json.load(f)["dense"]
        same_val(args, res["dense"])
        rep = tessera(args, ["prune", dense, "--stats"] + tiling)
    else:
        t_dense = time.time()
        src, ft, curve = base, finetune_args(args, files, args.steps + 1), []
        if args.ft_torch:
            # the reference fine-tuned in PyTorch (--steps + 1 cosine cycles); tessera prune
            # only writes it in tessera's form
            src, curve = torch_finetune(args, kind, base, os.path.splitext(dense)[0] +
                                        "-torch.onnx", args.steps + 1)
            ft = []
        rep = tessera(args, ["prune", src, "--out", dense, "--method", "tile", "--sparsity",
                             "0", "--quiet", "--force"] + tiling +
                      (["--seed", str(args.dense_seed)] if args.dense_seed else []) + ft)
        t_dense = round(time.time() - t_dense, 1)
        res["dense"] = scores(load_pruned(kind, dense)[0], kind, test_set, val_set)
        res["dense"].update(bench(args, dense) if args.bench else plan_counts(args, dense))
        res["dense"].update(prune_report(rep))
        res["dense"].update({"onnx": dense, "onnx_sha256": sha256(dense)})
        # how the reference was trained, kept with it through --dense-from and --merge
        res["dense"].update({"base_epochs": args.epochs, "finetunings": args.steps + 1,
                             "ft_epochs": args.ft_epochs, "ft_limit": args.ft_limit,
                             "ft_lr": args.ft_lr, "ft_batch": args.ft_batch,
                             "dense_seed": args.dense_seed, "val": args.val,
                             "finetune_wall_s": t_dense})
        if args.ft_torch:
            res["dense"]["ft_torch"] = "PyTorch Adam, one cosine cycle per fine-tuning, " \
                "seed " + str(args.seed) + ", activations " + \
                (f"trained with |b / 2a| <= {args.ft_torch_shift:g}" if args.ft_torch_shift > 0
                 else "frozen")
        if curve:
            res["dense"]["curve"] = curve
            curve_svg(curve, os.path.splitext(args.out)[0] + "-curve.svg",
                      f"{kind} dense{args.tag}: MSE per epoch")
    print(json.dumps(res["dense"]), flush=True)
    base_tiles = layer_tiles(rep, dense, spatial, args.offset_tiles)
    d_lat, d_mib = res["dense"].get("latency_s"), res["dense"].get("server_mib")
    wide_tiles = None
    for meth in filter(None, args.methods.split(",")):
        for s in [float(v) for v in args.sparsity.split(",")]:
            method = meth + ("+shrink" if args.shrink else "")
            name = method.replace("+", "_") + args.tag
            out = f"{args.work}/{kind}{wtag}-{name}-{s}.onnx"
            per = [s] * len(base_tiles)
            if args.layers:
                per = [s if v == "s" else float(v) for v in args.layers.split(",")]
            cmd = ["prune", base, "--out", out, "--quiet", "--force", "--seed",
                   str(args.seed)] + tiling
            steps = args.steps
            if meth in ("hepex+expand", "tile+expand"):
                # widen (function unchanged), then HE-PEx keeping per layer as many tiles as
                # the other methods keep at this sparsity
                if wide_tiles is None:
                    wide = f"{args.work}/{kind}{wtag}-wide.onnx"
                    tessera(args, ["prune", base, "--out", wide, "--method", "none", "--expand",
                                   str(args.expand), "--quiet", "--force"] + tiling)
                    wide_rep = tessera(args, ["prune", wide, "--stats"] + tiling)
                    wide_tiles = layer_tiles(wide_rep, wide, spatial, args.offset_tiles)
                kept = [t - round(p * t) for t, p in zip(base_tiles, per)]
                per = [1 - k / w for k, w in zip(kept, wide_tiles)]
                # tile+expand: the gradual tile schedule on the widened, permuted model
                cmd += ["--method", meth.split("+")[0], "--expand", str(args.expand)] + \
                    (["--permute"] if meth == "tile+expand" else [])
            else:
                cmd += ["--method", meth]
            cmd += ["--sparsity", f"{s:.6f}",
                    "--layer-sparsity", ",".join(f"{p:.6f}" for p in per)]
            if args.rows:
                cmd += ["--layer-row-sparsity", args.rows]
            if args.shrink:
                cmd += ["--shrink"]
            t1 = time.time()
            rep = prune_report(tessera(args, cmd + finetune_args(args, files, steps, dense)))
            r = {"method": method, "sparsity": s, "layer_sparsity": per, "rows": args.rows,
                 "distill": args.distill, "steps": steps, "ft_epochs": args.ft_epochs,
                 "ft_limit": args.ft_limit, "tag": args.tag, "onnx": out,
                 "seed": args.seed, "offset_tiles": args.offset_tiles,
                 "onnx_sha256": sha256(out), "val": args.val,
                 "prune_s": time.time() - t1}
            r.update(scores(load_pruned(kind, out)[0], kind, test_set, val_set))
            r.update(rep)
            if args.bench and rep["products"][1] < rep["products"][0] and \
                    (not args.bench_methods or meth in args.bench_methods.split(",")):
                r.update(bench(args, out))
            else:
                # no tile became all zero: the compiler's plan and counts are the dense
                # model's, so latency and memory are not measured again
                r.update(plan_counts(args, out))
                if args.bench and rep["products"][1] == rep["products"][0]:
                    r.update({"latency_s": d_lat, "server_mib": d_mib, "same_as_dense": True})
            res["runs"].append(r)
            print(json.dumps(r), flush=True)
            with open(args.out, "w") as f:
                json.dump(res, f, indent=1)
    res["seconds"] = time.time() - t_start
    with open(args.out, "w") as f:
        json.dump(res, f, indent=1)
    plots(res, args.out, args.bench)


def more(args, kind, test_set):
    """--more: a longer schedule for a pruned model without pruning it again: --steps more
    fine-tunings (each one cosine cycle of --ft-epochs over the first --ft-limit images), its
    zero weights kept (tile pruning at sparsity 0 keeps every tile, and the fine-tuning keeps
    zeros zero only inside pruned tiles: a shrunk model has next to none)."""
    if not args.dense_from:
        sys.exit("--more needs --dense-from (the dense reference of the run it continues)")
    with open(args.dense_from) as f:
        ref = json.load(f)
    dense = ref["dense"]
    same_val(args, dense)
    # the tiles of the reference's run, so that the report counts the same tiles
    tile = args.tile if args.tile != "auto" else ref.get("tile", "32x32")
    method, s = args.methods, float(args.sparsity)
    files = data_files(args, kind)
    out = f"{args.work}/{kind}-{method.replace('+', '_')}{args.tag}-{s}.onnx"
    # --layers: per-layer tile sparsities, e.g. the share of --pca-init --zero-inputs' all-zero
    # tiles in the first layer: being the smallest, exactly those tiles are masked (kept zero)
    if "s" in args.layers.split(","):
        sys.exit("--more --layers: numbers only (there is no swept sparsity)")
    layers = ["--layer-sparsity", args.layers] if args.layers else []
    t1 = time.time()
    src, zeroed = args.more, None
    if args.data_tiles:
        if args.layers:
            sys.exit("--more --data-tiles: the per-layer sparsities are its own (no --layers)")
        src, per, zeroed = data_tiles(args, kind, tile, test_set, out)
        layers = ["--layer-sparsity", ",".join(f"{v:.9f}" for v in per)]
    ft = finetune_args(args, files, args.steps, dense.get("onnx"))
    if args.ft_torch:
        # PyTorch fine-tuning with the activations frozen; tessera prune then only writes the
        # model with its masks (the zero tiles) and reports the tiles, fine-tuning nothing
        src, curve = torch_finetune(args, kind, src, os.path.splitext(out)[0] + "-torch.onnx",
                                    teacher=dense.get("onnx"))
        ft = []
    rep = prune_report(tessera(args, ["prune", src, "--out", out, "--quiet", "--force",
                                      "--method", "tile", "--sparsity", "0", "--tile", tile,
                                      "--tile-spatial", ref.get("spatial", "1x1"),
                                      "--seed", str(args.seed)] + layers + ft))
    r = {"method": method, "sparsity": s, "rows": args.rows,
         "layer_sparsity": [float(v) for v in args.layers.split(",")] if args.layers else [],
         "distill": args.distill, "steps": args.steps, "ft_epochs": args.ft_epochs,
         "ft_limit": args.ft_limit, "tag": args.tag, "continued_from": args.more,
         "continued_from_sha256": sha256(args.more), "onnx": out, "onnx_sha256": sha256(out),
         "seed": args.seed, "ft_lr": args.ft_lr, "val": args.val, "prune_s": time.time() - t1}
    if args.ft_torch:
        r["ft_torch"] = "PyTorch Adam, one cosine cycle per step, activations " + \
            (f"trained with |b / 2a| <= {args.ft_torch_shift:g}" if args.ft_torch_shift > 0
             else "frozen")
        if curve:
            r["curve"] = curve
            curve_svg(curve, os.path.splitext(args.out)[0] + "-curve.svg",
                      f"{kind} {args.tag.strip('-')}: MSE per epoch")
    if args.ft_torch_distill > 0:
        r["ft_torch_distill"] = args.ft_torch_distill
        r["refit_info"] = args.refit_info
    if zeroed:
        r["data_tiles"] = zeroed
        r["layer_sparsity"] = per
    r.update(scores(load_pruned(kind, out)[0], kind, test_set, val_part(args)))
    r.update(rep)
    r.update(plan_counts(args, out))
    print(json.dumps(r), flush=True)
    res = {"model": kind, "log_n": args.log_n, "batch": args.batch, "tag": args.tag,
           "dense": dense, "runs": [r]}
    if args.val:
        res["val"] = args.val
    with open(args.out, "w") as f:
        json.dump(res, f, indent=1)


def hidden_outputs(model, x):
    """The output of model (a Sequential) on x and the outputs of its activations, in order."""
    hs = []
    for m in model:
        x = m(x)
        if isinstance(m, Act):
            hs.append(x)
    return x, hs


def distill_teacher(args, kind, model, teacher, x):
    """--ft-torch-distill: (the dense model, [(student hidden layer, dense neuron indices,
    mean variance of those dense activations)]). A hidden layer the refit pruned
    (--refit-info's kept_neurons) maps each kept neuron to its dense neuron; one as wide as
    the dense model's maps one to one; any other width has no map and stops."""
    dense = load_pruned(kind, teacher)[0]
    dense.eval()
    kept = {}
    if args.refit_info:
        with open(args.refit_info) as f:
            info = json.load(f)
        if info.get("dense_onnx_sha256") and info["dense_onnx_sha256"] != sha256(teacher):
            sys.exit(f"--refit-info {args.refit_info}: pruned from another dense model than "
                     f"{teacher}")
        # the map is the refit's: the student must be that refit (two refits of the same
        # widths, e.g. another --select or --ridge, keep other neurons)
        if not info.get("onnx_sha256") or not args.more or \
                info["onnx_sha256"] != sha256(args.more):
            sys.exit(f"--refit-info {args.refit_info}: its refit ({info.get('refit')}) is not "
                     f"the model --more continues ({args.more}): its neuron map does not apply")
        kept = {lay["hidden"]: lay["kept_neurons"] for lay in info["layers"]}
    with torch.no_grad():
        _, hs = hidden_outputs(model, inp(kind, x[:5000]))
        _, hd = hidden_outputs(dense, inp(kind, x[:5000]))
    maps = []
    for l, (a, b) in enumerate(zip(hs, hd)):
        idx = kept.get(l, list(range(b.shape[1])) if a.shape[1] == b.shape[1] else None)
        if idx is None or len(idx) != a.shape[1]:
            sys.exit(f"--ft-torch-distill: hidden layer {l + 1} is {a.shape[1]} wide, the dense "
                     f"model's {b.shape[1]}, and --refit-info maps no neurons of it")
        idx = torch.tensor(idx)
        maps.append((l, idx, float(b[:, idx].var(0).mean())))
    return dense, maps


def torch_finetune(args, kind, src, out, cycles=None, teacher=None):
    """--ft-torch: fine-tune the model src in PyTorch instead of tessera's trainer, with its
    polynomial activations frozen at their coefficients (tessera's trainer trains them, and
    they drift towards linear, past the compiler's shift budget: deeper plans), its zero
    weights kept zero (the masks: e.g. --data-tiles' tiles), cycles (default --steps) cosine
    cycles of --ft-epochs over the first --ft-limit training images, Adam at --ft-lr, batch
    --ft-batch, data order from --seed. Writes out (PyTorch's export); returns (out, curve):
    with --curve, [[epoch, val MSE or None, test MSE], ...] after every epoch (scored, never
    trained on: the choices stay on the validation split), else []."""
    model, masks = load_pruned(kind, src)
    curve, val_set, test_set = [], val_part(args), load("test") if args.curve else None
    acts = [m for m in model if isinstance(m, Act)]
    if args.ft_torch_shift > 0:
        for m in acts:
            m.p = torch.nn.Parameter(torch.tensor(m.coef, dtype=torch.float32))
    x, y = train_part(args)
    x, y = x[:args.ft_limit or None], y[:args.ft_limit or None]
    dense, maps = distill_teacher(args, kind, model, teacher, x) \
        if args.ft_torch_distill > 0 else (None, [])
    torch.manual_seed(args.seed)
    opt = torch.optim.Adam([p for p in model.parameters()], lr=args.ft_lr)
    per = -(-x.shape[0] // args.ft_batch) * args.ft_epochs
    for _ in range(args.steps if cycles is None else cycles):
        for g in opt.param_groups:
            g["lr"] = args.ft_lr
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, per)
        model.train()
        for _ in range(args.ft_epochs):
            perm = torch.randperm(x.shape[0])
            for i in range(0, x.shape[0], args.ft_batch):
                b = perm[i:i + args.ft_batch]
                opt.zero_grad()
                if dense is None:
                    loss_fn(kind, model(inp(kind, x[b])), x[b], y[b]).backward()
                else:
                    # the data loss plus W x the mean over hidden layers of the squared error
                    # to the dense model's activations, relative to their variance
                    pred, hs = hidden_outputs(model, inp(kind, x[b]))
                    with torch.no_grad():
                        hd = hidden_outputs(dense, inp(kind, x[b]))[1]
                    dl = sum(torch.nn.functional.mse_loss(hs[l], hd[l][:, idx]) / v
                             for l, idx, v in maps) / len(maps)
                    (loss_fn(kind, pred, x[b], y[b]) + args.ft_torch_distill * dl).backward()
                opt.step()
                sched.step()
                with torch.no_grad():
                    for p, m in masks:
                        p.mul_(m)
                    for m in acts if args.ft_torch_shift > 0 else []:
                        # the projection onto |b / 2a| <= S: |a| raised where needed
                        a, b = float(m.p[0]), float(m.p[1])
                        if abs(b) > 2 * args.ft_torch_shift * abs(a):
                            m.p[0] = (1.0 if a >= 0 else -1.0) * abs(b) / (2 * args.ft_torch_shift)
            if args.curve:
                v = evaluate(model, kind, val_set) if val_set is not None else None
                curve.append([len(curve) + 1, v, evaluate(model, kind, test_set)])
                print(f"epoch {curve[-1][0]}: val {v} test {curve[-1][2]}", flush=True)
                model.train()
    for m in acts:
        if getattr(m, "p", None) is not None:
            m.coef = tuple(float(v) for v in m.p.detach())
            del m.p
    export(model, out, kind)
    return out, curve


def curve_svg(curve, path, title):
    """--curve: validation and test MSE against the epoch, one line each (val solid)."""
    W, H, L, B = 640, 400, 80, 50
    ys = [v for e in curve for v in e[1:] if v is not None]
    if not ys:
        sys.exit(f"{path}: the curve has no scores to plot")
    y0, y1 = min(ys), max(ys)
    y1 = y1 if y1 > y0 else y0 + 1e-9
    n = max(e[0] for e in curve)

    def X(v):
        return L + (v - 1) / max(1, n - 1) * (W - L - 20)

    def Y(v):
        return H - B - (v - y0) / (y1 - y0) * (H - B - 30)
    s = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" font-size="12">',
         f'<text x="{W / 2}" y="18" text-anchor="middle">{title}</text>',
         f'<line x1="{L}" y1="{H - B}" x2="{W - 20}" y2="{H - B}" stroke="black"/>',
         f'<line x1="{L}" y1="30" x2="{L}" y2="{H - B}" stroke="black"/>',
         f'<text x="{W / 2}" y="{H - 10}" text-anchor="middle">epoch</text>',
         f'<text x="15" y="{H / 2}" transform="rotate(-90 15 {H / 2})" '
         f'text-anchor="middle">MSE</text>']
    for k in range(5):
        v = y0 + (y1 - y0) * k / 4
        s.append(f'<text x="{L - 5}" y="{Y(v) + 4}" text-anchor="end">{v:.5f}</text>')
        e = 1 + (n - 1) * k / 4
        s.append(f'<text x="{X(e)}" y="{H - B + 15}" text-anchor="middle">{e:.0f}</text>')
    for i, (name, col, dash) in enumerate((("val", "#1f77b4", ""), ("test", "#d62728", "4 3"))):
        pts = [(e[0], e[1 + i]) for e in curve if e[1 + i] is not None]
        if not pts:
            continue
        s.append(f'<polyline fill="none" stroke="{col}" stroke-dasharray="{dash}" points="' +
                 " ".join(f"{X(a):.1f},{Y(b):.1f}" for a, b in pts) + '"/>')
        s.append(f'<text x="{W - 80}" y="{40 + 15 * i}" fill="{col}">{name}</text>')
    s.append("</svg>")
    with open(path, "w") as f:
        f.write("\n".join(s))


def curve_run(res):
    """The run of a one-run result file (a --more cycle), else its dense reference."""
    return res["runs"][0] if len(res.get("runs", [])) == 1 else res["dense"]


def cycle_plot(specs, out):
    """--cycle-plot: validation MSE per trainer epoch of each model's consecutive cycles."""
    cols = ["#000000", "#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e"]
    series = []
    for spec in specs:
        try:
            name, start, files = spec.split(":", 2)
            start = int(start)
        except ValueError:
            sys.exit(f"--cycle-plot: not NAME:START:A.json,...: {spec}")
        pts, bounds, e0 = [], [], start
        for path in files.split(","):
            with open(path) as f:
                curve = curve_run(json.load(f)).get("curve")
            if not curve:
                sys.exit(f"--cycle-plot: {path} has no curve (--curve)")
            pts += [(e0 + e[0], e[1]) for e in curve if e[1] is not None]
            e0 += max(e[0] for e in curve)
            bounds.append(e0)
        if not pts:
            sys.exit(f"--cycle-plot: {name}: no validation scores (--val)")
        series.append((name, start, pts, bounds))
    W, H, L, B = 720, 420, 80, 50
    n = max(b[-1] for _, _, _, b in series)
    ys = [math.log10(v) for _, _, pts, _ in series for _, v in pts]
    y0, y1 = min(ys), max(ys)
    y1 = y1 if y1 > y0 else y0 + 1e-9

    def X(v):
        return L + v / n * (W - L - 20)

    def Y(v):
        return H - B - (math.log10(v) - y0) / (y1 - y0) * (H - B - 30)
    s = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" font-size="12">',
         f'<text x="{W / 2}" y="18" text-anchor="middle">validation MSE per epoch '
         f'(log scale), cycles marked</text>',
         f'<line x1="{L}" y1="{H - B}" x2="{W - 20}" y2="{H - B}" stroke="black"/>',
         f'<line x1="{L}" y1="30" x2="{L}" y2="{H - B}" stroke="black"/>',
         f'<text x="{W / 2}" y="{H - 10}" text-anchor="middle">trainer epoch</text>']
    for k in range(5):
        v = 10 ** (y0 + (y1 - y0) * k / 4)
        s.append(f'<text x="{L - 5}" y="{Y(v) + 4}" text-anchor="end">{v:.5f}</text>')
        e = n * k / 4
        s.append(f'<text x="{X(e)}" y="{H - B + 15}" text-anchor="middle">{e:.0f}</text>')
    for i, (name, start, pts, bounds) in enumerate(series):
        col = cols[i % len(cols)]
        for b in bounds[:-1]:
            s.append(f'<line x1="{X(b):.1f}" y1="30" x2="{X(b):.1f}" y2="{H - B}" '
                     f'stroke="{col}" stroke-dasharray="2 3"/>')
        s.append(f'<polyline fill="none" stroke="{col}" points="' +
                 " ".join(f"{X(a):.1f},{Y(v):.1f}" for a, v in pts) + '"/>')
        s.append(f'<text x="{W - 300}" y="{45 + 15 * i}" fill="{col}">{name}: '
                 f'{len(bounds)} cycles, last val {pts[-1][1]:.7f}</text>')
    s.append("</svg>")
    with open(out, "w") as f:
        f.write("\n".join(s))


def target_svg(res, ref, path):
    """--target-ref: per measured point, CPU and server memory saved against the dense
    model's measurement, at its validation MSE / the reference's; the target's lines."""
    d = res["dense"]
    pts = [(r.get("tag", "").strip("-") or r["method"], r["val_loss"] / ref["val_loss"],
            100 * (1 - r["cpu_s"] / d["cpu_s"]), 100 * (1 - r["server_mib"] / d["server_mib"]))
           for r in res["runs"] if "cpu_s" in r and r.get("val_loss")]
    if not pts or not d.get("cpu_s"):
        sys.exit("--target-ref: no measured point (--measured) with a validation MSE")
    W, H, L, B = 720, 420, 70, 50
    x0 = min([1.0] + [p[1] for p in pts]) - 0.02
    x1 = max([1.12] + [p[1] for p in pts]) + 0.02
    y0 = min([50.0] + [v for p in pts for v in p[2:]]) - 2
    y1 = max([70.0] + [v for p in pts for v in p[2:]]) + 2

    def X(v):
        return L + (v - x0) / (x1 - x0) * (W - L - 20)

    def Y(v):
        return H - B - (v - y0) / (y1 - y0) * (H - B - 30)
    s = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" font-size="12">',
         f'<text x="{W / 2}" y="18" text-anchor="middle">saved (measured) vs validation MSE '
         f'/ reference {ref["val_loss"]:.7f}</text>',
         f'<line x1="{L}" y1="{H - B}" x2="{W - 20}" y2="{H - B}" stroke="black"/>',
         f'<line x1="{L}" y1="30" x2="{L}" y2="{H - B}" stroke="black"/>',
         f'<text x="{W / 2}" y="{H - 10}" text-anchor="middle">validation MSE, x the '
         f'reference</text>',
         f'<line x1="{X(1.1):.1f}" y1="30" x2="{X(1.1):.1f}" y2="{H - B}" stroke="#2ca02c" '
         f'stroke-dasharray="4 3"/>',
         f'<text x="{X(1.1) + 3:.1f}" y="42" fill="#2ca02c">1.1x</text>',
         f'<line x1="{L}" y1="{Y(60):.1f}" x2="{W - 20}" y2="{Y(60):.1f}" stroke="#2ca02c" '
         f'stroke-dasharray="4 3"/>',
         f'<text x="{L + 3}" y="{Y(60) - 3:.1f}" fill="#2ca02c">60 %</text>']
    for k in range(5):
        v = y0 + (y1 - y0) * k / 4
        s.append(f'<text x="{L - 5}" y="{Y(v) + 4}" text-anchor="end">{v:.0f}%</text>')
        u = x0 + (x1 - x0) * k / 4
        s.append(f'<text x="{X(u)}" y="{H - B + 15}" text-anchor="middle">{u:.2f}x</text>')
    for i, (name, ratio, cpu, mem) in enumerate(pts):
        s.append(f'<circle cx="{X(ratio):.1f}" cy="{Y(cpu):.1f}" r="4" fill="#1f77b4"/>')
        s.append(f'<rect x="{X(ratio) - 4:.1f}" y="{Y(mem) - 4:.1f}" width="8" height="8" '
                 f'fill="#d62728"/>')
        s.append(f'<text x="{X(ratio) + 6:.1f}" y="{Y(cpu) - 6 - 11 * (i % 2):.1f}">'
                 f'{name}</text>')
    s.append(f'<circle cx="{W - 170}" cy="{H - B - 30}" r="4" fill="#1f77b4"/>'
             f'<text x="{W - 160}" y="{H - B - 26}">CPU time saved</text>')
    s.append(f'<rect x="{W - 174}" y="{H - B - 19}" width="8" height="8" fill="#d62728"/>'
             f'<text x="{W - 160}" y="{H - B - 11}">server memory saved</text>')
    s.append("</svg>")
    with open(path, "w") as f:
        f.write("\n".join(s))


def same_val(args, dense):
    """A dense reference from --dense-from must have held out the same validation tail."""
    if dense.get("val", 0) != args.val:
        sys.exit(f"--dense-from: its dense reference held out --val {dense.get('val', 0)}, "
                 f"this run --val {args.val}: the two would not be comparable")


def layer_inputs(model, x):
    """Mean and variance (float64) of each Linear layer's input features over the images x."""
    lin = [m for m in model if isinstance(m, torch.nn.Linear)]
    acc = [[0, 0.0, 0.0] for _ in lin]

    def hook(i):
        def f(mod, inputs, output):
            a = inputs[0].double()
            acc[i][0] += a.shape[0]
            acc[i][1] = acc[i][1] + a.sum(0)
            acc[i][2] = acc[i][2] + (a * a).sum(0)
        return f
    hooks = [m.register_forward_hook(hook(i)) for i, m in enumerate(lin)]
    model.eval()
    with torch.no_grad():
        for i in range(0, x.shape[0], 1000):
            model(x[i:i + 1000])
    for h in hooks:
        h.remove()
    out = []
    for n, s1, s2 in acc:
        mu = (s1 / n).numpy()
        out.append((mu, np.maximum((s2 / n).numpy() - mu * mu, 0.0)))
    return out


def data_tiles(args, kind, tile, test_set, out):
    """--data-tiles F,...: in the model to continue (--more), zero per Linear layer the share F
    of its tiles (--tile RxC for the first layer, CxR the next, alternating, as tessera prune
    counts them) of least data-weighted mass sum w_ij^2 var(input j) over the tile (the
    variance of the layer's input features over the fine-tuning images), folding each zeroed
    weight's mean contribution w_ij mean(input j) into the bias b_i: what zeroing costs a
    pre-activation on average is then its variance, not the weight's size (a weight on a
    near-constant border pixel costs nothing however large). Writes OUT-zeroed.onnx and
    returns it, the per-layer sparsities that make tessera prune's tile pruning mask exactly
    the all-zero tiles (they are its smallest), and what was zeroed (with the test MSE before
    and after, no fine-tuning)."""
    if kind == "cnn":
        sys.exit("--data-tiles: dense layers only (not --model cnn)")
    if args.steps != 1:
        sys.exit("--data-tiles needs --steps 1 (the zeroed tiles are masked from the first "
                 "fine-tuning; one cosine cycle of --ft-epochs)")
    if args.tile_select != "mass" and not args.tile_refit:
        sys.exit("--tile-select ls needs --tile-refit (the choice assumes the refit)")
    frac = [float(v) for v in args.data_tiles.split(",")]
    model, _ = load_pruned(kind, args.more)
    ws = weights_of(args.more)
    if len(frac) != len(ws) or any(not 0 <= f < 1 for f in frac):
        sys.exit(f"--data-tiles: {len(ws)} shares in [0, 1) needed, one per layer")
    R, C = (int(v) for v in tile.split("x"))
    x = train_part(args)[0][:args.ft_limit or None]
    stats = layer_inputs(model, x)
    info = {"shares": frac, "tile": tile, "images": x.shape[0], "tile_refit": args.tile_refit,
            "tile_select": args.tile_select,
            "loss_before": evaluate(model, kind, test_set), "layers": []}
    new, per = [], []
    for i, ((w, b), (mu, var), f) in enumerate(zip(ws, stats, frac)):
        w, b = w.astype(np.float64), b.astype(np.float64)
        r, c = (R, C) if i % 2 == 0 else (C, R)
        nr, nc = -(-w.shape[0] // r), -(-w.shape[1] // c)
        score = np.zeros((nr, nc))
        for ti in range(nr):
            for tj in range(nc):
                blk = w[ti * r:(ti + 1) * r, tj * c:(tj + 1) * c]
                score[ti, tj] = (blk * blk * var[tj * c:(tj + 1) * c]).sum()
        # tiles all zero already (next to none): first, so that the zero tiles after this
        # are exactly the k chosen ones (a tile on constant inputs scores 0 too)
        done = np.array([[not w[ti * r:(ti + 1) * r, tj * c:(tj + 1) * c].any()
                          for tj in range(nc)] for ti in range(nr)])
        was = int(done.sum())
        score[done] = -1.0
        k = max(round(f * nr * nc), was) if f > 0 else 0
        zero = np.zeros((nr, nc), bool)
        zero.flat[np.argsort(score, axis=None, kind="stable")[:k]] = True
        if args.tile_refit and k:
            mom = layer_moments(model, x, i, i == len(ws) - 1, w, b)
            if args.tile_select == "ls":
                if was:
                    sys.exit("--tile-select ls: the layer has all-zero tiles already")
                zero = ls_tile_select(mom[1], mom[3], nr, nc, r, c, k,
                                      args.ridge * float(np.trace(mom[1])) / w.shape[1])
            w, b = tile_refit(args, mom, w, b, zero, r, c)
        for ti, tj in zip(*np.nonzero(zero)):
            rows, cols = slice(ti * r, (ti + 1) * r), slice(tj * c, (tj + 1) * c)
            if not args.tile_refit:
                b[rows] += w[rows, cols] @ mu[cols]
            w[rows, cols] = 0.0
        if args.tile_refit and k:
            # later layers' refits see this layer pruned (inputs from the pruned model)
            mod = [m for m in model if isinstance(m, torch.nn.Linear)][i]
            with torch.no_grad():
                mod.weight.copy_(torch.from_numpy(w.astype(np.float32)))
                mod.bias.copy_(torch.from_numpy(b.astype(np.float32)))
        per.append(k / (nr * nc))
        info["layers"].append({"tiles": nr * nc, "zeroed": k, "already_zero": was,
                               "whole_tile_columns": int(zero.all(0).sum()) if k else 0,
                               "whole_tile_rows": int(zero.all(1).sum()) if k else 0,
                               "mass_share_zeroed": float(np.maximum(score[zero], 0).sum() /
                                                          np.maximum(score, 0).sum())})
        new.append((w, b))
    path = os.path.splitext(out)[0] + "-zeroed.onnx"
    set_weights(args.more, path, new)
    info["loss_zeroed"] = evaluate(load_pruned(kind, path)[0], kind, test_set)
    info["zeroed_onnx_sha256"] = sha256(path)
    print(json.dumps({"data_tiles": info}), flush=True)
    return path, per, info


def layer_moments(model, x, i, last, w, b):
    """Mean mu and covariance g of Linear layer i's inputs in model over the images x, and the
    mean mu_y and cross-covariance cy (inputs x targets) of its target: the layer's own
    pre-activation (w, b), or the image for the last layer."""
    lin = [m for m in model if isinstance(m, torch.nn.Linear)]
    d = w.shape[1]
    n, sa, saa = 0, np.zeros(d), np.zeros((d, d))
    sy, say = (np.zeros(784), np.zeros((d, 784))) if last else (None, None)
    grab = {}
    h = lin[i].register_forward_hook(lambda mod, inputs, output: grab.update(a=inputs[0]))
    model.eval()
    with torch.no_grad():
        for j in range(0, x.shape[0], 5000):
            xb = x[j:j + 5000]
            model(xb)
            a = grab["a"].double().numpy()
            n += a.shape[0]
            sa += a.sum(0)
            saa += a.T @ a
            if last:
                sy += xb.double().numpy().sum(0)
                say += a.T @ xb.double().numpy()
    h.remove()
    mu = sa / n
    g = saa / n - np.outer(mu, mu)
    if last:
        return mu, g, sy / n, say / n - np.outer(mu, sy / n)
    return mu, g, w @ mu + b, g @ w.T


def tile_blocks(tj, c, d):
    return np.arange(tj * c, min((tj + 1) * c, d))


def ls_tile_select(g, cy, nr, nc, r, c, k, ridge):
    """--tile-select ls: the k tiles (of nr tile rows x nc tile columns, r x c) to zero, chosen
    greedily over the whole layer by least squares: each step zeroes the tile whose removal
    least raises the error of its tile row's target (cy's columns of those rows) refitted from
    the inputs its remaining tiles see, tr(beta_B^T (P_BB)^-1 beta_B) with P the inverse
    covariance of the row's kept inputs and beta = P cy (backward elimination; P downdated by
    blocks). Returns the boolean mask."""
    d = g.shape[0]
    zero = np.zeros((nr, nc), bool)
    pinv = np.linalg.inv(g + ridge * np.eye(d))
    rows = []

    def costs(ti):
        pm, keep = rows[ti]
        beta = pm @ cy[keep, ti * r:(ti + 1) * r]
        out = np.full(nc, np.inf)
        for tj in range(nc):
            if zero[ti, tj] or (~zero[ti]).sum() == 1:
                continue
            idx = np.searchsorted(keep, tile_blocks(tj, c, d))
            bb = beta[idx]
            out[tj] = float(np.trace(bb.T @ np.linalg.solve(pm[np.ix_(idx, idx)], bb)))
        return out
    for ti in range(nr):
        rows.append((pinv.copy(), np.arange(d)))
    cost = np.array([costs(ti) for ti in range(nr)])
    for _ in range(k):
        ti, tj = np.unravel_index(int(np.argmin(cost)), cost.shape)
        pm, keep = rows[ti]
        idx = np.searchsorted(keep, tile_blocks(tj, c, d))
        rest = np.setdiff1d(np.arange(keep.size), idx)
        pab = pm[np.ix_(rest, idx)]
        pm = pm[np.ix_(rest, rest)] - pab @ np.linalg.solve(pm[np.ix_(idx, idx)], pab.T)
        rows[ti] = (pm, keep[rest])
        zero[ti, tj] = True
        cost[ti] = costs(ti)
    return zero


def tile_refit(args, moments, w, b, zero, r, c):
    """--tile-refit: the weights left in each tile row of a Linear layer after --data-tiles
    zeroes the tiles `zero` (tile rows x tile columns of r x c), and its bias, refitted by
    (ridge --ridge) least squares on the fine-tuning images to what the layer computed before
    (its pre-activation: its own unpruned weights applied to the inputs of the model pruned so
    far, not the dense model's response), or for the last layer to the image itself (not the
    dense model's output), from the inputs its kept tiles still see (the He et al. / ThiNet
    reconstruction, per tile row); moments: its layer_moments (inputs from the model being
    pruned). Returns the new (w, b)."""
    mu, g, mu_y, cy = moments
    d = w.shape[1]
    ridge = args.ridge * float(np.trace(g)) / d
    w2, b2 = np.zeros_like(w), np.zeros_like(b)
    for ti in range(zero.shape[0]):
        rows = slice(ti * r, (ti + 1) * r)
        keep = np.concatenate([tile_blocks(tj, c, d) for tj in range(zero.shape[1])
                               if not zero[ti, tj]] or [np.zeros(0, int)])
        if keep.size:
            wk = np.linalg.solve(g[np.ix_(keep, keep)] + ridge * np.eye(keep.size),
                                 cy[keep, rows]).T
            w2[rows, keep] = wk
            b2[rows] = mu_y[rows] - wk @ mu[keep]
        else:
            b2[rows] = mu_y[rows]
    return w2, b2


def set_weights(path, out, new):
    """Write the ONNX model path with the weights and biases of its Gemm / MatMul nodes replaced
    by new ((out, in) arrays and biases, in weights_of's order) to out."""
    m = onnx.load(path)
    init = {t.name: t for t in m.graph.initializer}
    it = iter(new)
    for n in m.graph.node:
        if n.op_type in ("Gemm", "Conv", "MatMul") and n.input[1] in init:
            w, b = next(it)
            trans = any(a.name == "transB" and a.i for a in n.attribute)
            if n.op_type == "MatMul" or (n.op_type == "Gemm" and not trans):
                w = w.T
            for name, v in ((n.input[1], w), (n.input[2] if len(n.input) > 2 else "", b)):
                if name in init:
                    old = numpy_helper.to_array(init[name])
                    init[name].CopyFrom(numpy_helper.from_array(
                        np.ascontiguousarray(v, dtype=old.dtype).reshape(old.shape), name))
    onnx.save(m, out)


def plots(res, out, has_bench):
    kind, d = res["model"], res["dense"]
    dl = d["loss"] if is_ae(kind) else 1 - d["loss"]
    pts_l, pts_m, pts_p = [], [], []
    for r in res["runs"]:
        loss = r["loss"] if is_ae(kind) else 1 - r["loss"]
        pts_p.append({"method": r["method"], "loss": loss,
                      "saved": 100 * (1 - r["ct_pt"] / max(1, d["ct_pt"]))})
        if has_bench and "latency_s" in r:
            pts_l.append({"method": r["method"], "loss": loss,
                          "saved": 100 * (1 - r["latency_s"] / d["latency_s"])})
            pts_m.append({"method": r["method"], "loss": loss,
                          "saved": 100 * (1 - r["server_mib"] / d["server_mib"])})
    pts_q = [{"method": r["method"], "loss": r["loss"] if is_ae(kind) else 1 - r["loss"],
              "saved": 100 * (1 - r["predicted_s"] / d["predicted_s"])}
             for r in res["runs"] if "predicted_s" in r and d.get("predicted_s")]
    stem = os.path.splitext(out)[0]
    svg(pts_p, stem + "-products.svg", f"{kind}: ct x pt products saved vs loss "
        f"(dense {dl:.4g})", "products saved")
    svg(pts_q, stem + "-predicted.svg", f"{kind}: predicted latency saved vs loss "
        f"(dense {dl:.4g})", "predicted latency saved")
    pts_c = [{"method": r["method"], "loss": r["loss"] if is_ae(kind) else 1 - r["loss"],
              "saved": 100 * (1 - r["cpu_s"] / d["cpu_s"])}
             for r in res["runs"] if "cpu_s" in r and d.get("cpu_s")]
    if pts_c:
        svg(pts_c, stem + "-cpu.svg", f"{kind}: encrypted CPU time saved vs loss "
            f"(dense {dl:.4g})", "CPU time saved")
    if has_bench:
        svg(pts_l, stem + "-latency.svg", f"{kind}: encrypted latency saved vs loss "
            f"(dense {dl:.4g})", "latency saved")
        svg(pts_m, stem + "-memory.svg", f"{kind}: server memory saved vs loss "
            f"(dense {dl:.4g})", "memory saved")


if __name__ == "__main__":
    main()
