#!/usr/bin/python3
"""HE-aware pruning experiments of docs/PRUNING.md (issue 13).

Trains (Debian's PyTorch, /usr/bin/python3) Fashion-MNIST models with
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
import json
import os
import re
import subprocess
import sys
import time

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
import numpy as np  # noqa: E402
import onnx  # noqa: E402
import torch  # noqa: E402
from onnx import numpy_helper  # noqa: E402

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


class Act(torch.nn.Module):
    def forward(self, x):
        return ACT[0] * x * x + ACT[1] * x + ACT[2]


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


def load_pruned(kind, path):
    ws = weights_of(path)
    if kind == "cnn":
        model = build(kind, (ws[0][0].shape[0], ws[1][0].shape[0]))
    else:
        model = build(kind, [ws[0][0].shape[1]] + [w.shape[0] for w, _ in ws])
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
    m = re.search(r"total: tiles (\d+) -> (\d+) of (\d+).*?products per batch tile (\d+) -> "
                  r"(\d+)", text, re.S)
    w = re.search(r"nonzero weights (\d+) -> (\d+)", text)
    return {"tiles": [int(m.group(1)), int(m.group(2))], "total_tiles": int(m.group(3)),
            "products": [int(m.group(4)), int(m.group(5))],
            "weights": [int(w.group(1)), int(w.group(2))]}


def plan_counts(args, path, out=None):
    """The compiler's dry-run counts for batch 1: ct x pt products, rotations, tiling."""
    if out is None:
        out = tessera(args, ["compile", path, "--batch", "1", "--log-n", str(args.log_n), "--out",
                             f"{args.work}/tmp.plan", "--force"])
    prod = rot = 0
    for line in out.splitlines():
        m = re.match(r"^\d+\s+\S+.*\s(\d+)\s+(\d+)\s+(\d+)\s+[0-9.]+s$", line)
        if m:
            rot += int(m.group(1))
            prod += int(m.group(3))
    t = re.search(r"tiled packing t = \[(\d+), \d+, \d+, (\d+), \d+\] orientation (\d)", out)
    pred = re.search(r"predicted: ([0-9.]+) s per batch.*?, ([0-9.]+) MiB server memory", out)
    r = {"ct_pt": prod, "rotations": rot}
    if t:
        r["t0"], r["t3"], r["orient"] = int(t.group(1)), int(t.group(2)), int(t.group(3))
    if pred:
        r["predicted_s"], r["predicted_mib"] = float(pred.group(1)), float(pred.group(2))
    return r


def bench(args, path):
    out = tessera(args, ["bench", "model", path, "--batch", "1", "--samples", "1", "--runs",
                         str(args.runs), "--threads", "1", "--log-n", str(args.log_n)])
    t = re.search(r"median ([0-9.]+) s", out)
    mem = re.search(r"server memory ([0-9.]+) MiB", out)
    plan = re.search(r"\| 1 \| ([^|]+) \|", out)
    r = plan_counts(args, path, out)  # bench prints the plan it compiled
    return r | {"latency_s": float(t.group(1)), "server_mib": float(mem.group(1)),
            "plan": plan.group(1).strip() if plan else ""}


def svg(points, path, title, ylabel):
    """Scatter per method: x = loss, y = saved fraction (%)."""
    colors = {"tile": "#1f77b4", "magnitude": "#d62728", "hunter": "#2ca02c",
              "hepex": "#9467bd", "hepex+expand": "#ff7f0e"}
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
    if has_b:
        head += ["latency (batch 1, measured)", "predicted", "server memory (measured)"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]

    def row(name, sp, r):
        cells = [name, sp, f"{r['tiles'][1]}/{d['tiles'][0]}",
                 f"{r['ct_pt']} ({pct(r['ct_pt'], d['ct_pt'])})",
                 f"{r['rotations']} ({pct(r['rotations'], d['rotations'])})",
                 f"{r['loss']:.5f} ({r['loss'] / d['loss']:.2f}x)" if is_ae(kind)
                 else f"{100 * r['loss']:.2f}% ({100 * (r['loss'] - d['loss']):+.2f})"]
        if has_b:
            cells += [f"{r['latency_s']:.3f} s ({pct(r['latency_s'], d['latency_s'])})",
                      f"{r['predicted_s']:.3f} s ({pct(r['predicted_s'], d['predicted_s'])})",
                      f"{r['server_mib']:.1f} MiB ({pct(r['server_mib'], d['server_mib'])})"]
        return "| " + " | ".join(cells) + " |"
    lines.append(row("dense", "-", d))
    for r in res["runs"]:
        lines.append(row(r["method"], f"{r['sparsity']:g}", r))
    return "\n".join(lines)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="ae1", choices=["ae1", "ae2", "mlp", "cnn"])
    ap.add_argument("--tessera", default="build/bin/tessera")
    ap.add_argument("--epochs", type=int, default=5)
    ap.add_argument("--ft-epochs", type=int, default=2)
    ap.add_argument("--ft-lr", type=float, default=5e-4)
    ap.add_argument("--sparsity", default="0.5,0.75")
    ap.add_argument("--methods", default="tile,magnitude,hunter,hepex,hepex+expand")
    ap.add_argument("--tile", default="auto",
                    help="RxC, or auto: the dense model's plan (t0, t3, orientation)")
    ap.add_argument("--log-n", type=int, default=14)
    ap.add_argument("--bench", action="store_true")
    ap.add_argument("--runs", type=int, default=2)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--work", default="build/prune-exp")
    ap.add_argument("--out", required=True)
    ap.add_argument("--table", action="store_true", help="print the table of --out and stop")
    args = ap.parse_args()
    if args.table:
        with open(args.out) as f:
            print(table(json.load(f)))
        return
    torch.set_num_threads(args.threads)
    os.makedirs(args.work, exist_ok=True)
    train_set, test_set = load("train"), load("test")
    kind = args.model
    base = f"{args.work}/{kind}.onnx"
    t_start = time.time()
    if not os.path.exists(base):
        model = train(build(kind), kind, train_set, args.epochs, 1e-3)
        export(model, base, kind)
    # the dense reference gets the fine-tuning epochs too (same total training)
    model, _ = load_pruned(kind, base)
    train(model, kind, train_set, args.ft_epochs, args.ft_lr)
    dense_plan = bench(args, base) if args.bench else plan_counts(args, base)
    if args.tile == "auto":
        # the first layer's outputs go to D3 for a flat input packed with orientation 0,
        # to D0 for a one-channel image (its filters follow the orientation)
        t0, t3, o = dense_plan["t0"], dense_plan["t3"], dense_plan["orient"]
        first_d3 = (o == 0) if kind != "cnn" else (o == 3)
        args.tile = f"{t3}x{t0}" if first_d3 else f"{t0}x{t3}"
    res = {"model": kind, "tile": args.tile, "epochs": args.epochs, "ft_epochs": args.ft_epochs,
           "dense": {"loss": evaluate(model, kind, test_set)}, "runs": []}
    res["dense"].update(dense_plan)
    res["dense"].update(prune_report(tessera(args, ["prune", base, "--out", f"{args.work}/x.onnx",
                                                    "--method", "none", "--tile", args.tile,
                                                    "--quiet", "--force"])))
    print(json.dumps(res["dense"]), flush=True)
    d_tiles = res["dense"]["tiles"][0]
    for meth in args.methods.split(","):
        for s in [float(v) for v in args.sparsity.split(",")]:
            name = meth.replace("+", "_")
            out = f"{args.work}/{kind}-{name}-{s}.onnx"
            cmd = ["prune", base, "--out", out, "--sparsity", str(s), "--tile", args.tile,
                   "--quiet", "--force"]
            cmd += ["--method", "tile" if meth == "hepex+expand" else meth]
            if meth == "hepex+expand":
                # widen (function unchanged), train the new features, then prune to the
                # same number of kept tiles as the other methods at this sparsity
                wide = f"{args.work}/{kind}-wide.onnx"
                if not os.path.exists(wide):
                    tessera(args, ["prune", base, "--out", wide, "--method", "none", "--expand",
                                   "1.25", "--tile", args.tile, "--quiet", "--force"])
                    m, _ = load_pruned(kind, wide)
                    train(m, kind, train_set, args.ft_epochs, args.ft_lr)
                    export(m, wide, kind)
                total = prune_report(tessera(args, ["prune", wide, "--stats", "--tile",
                                                    args.tile]))["total_tiles"]
                s2 = 1 - (1 - s) * d_tiles / total
                cmd = ["prune", wide, "--out", out, "--sparsity", f"{s2:.6f}", "--tile",
                       args.tile, "--method", "hepex", "--quiet", "--force"]
            rep = prune_report(tessera(args, cmd))
            m, masks = load_pruned(kind, out)
            train(m, kind, train_set, args.ft_epochs, args.ft_lr, masks=masks)
            export(m, out, kind)
            r = {"method": meth, "sparsity": s, "loss": evaluate(m, kind, test_set)}
            r.update(rep)
            r.update(bench(args, out) if args.bench else plan_counts(args, out))
            res["runs"].append(r)
            print(json.dumps(r), flush=True)
    res["seconds"] = time.time() - t_start
    with open(args.out, "w") as f:
        json.dump(res, f, indent=1)
    d = res["dense"]
    dl = d["loss"] if is_ae(kind) else 1 - d["loss"]
    pts_l, pts_m, pts_p = [], [], []
    for r in res["runs"]:
        loss = r["loss"] if is_ae(kind) else 1 - r["loss"]
        pts_p.append({"method": r["method"], "loss": loss,
                      "saved": 100 * (1 - r["ct_pt"] / max(1, d["ct_pt"]))})
        if args.bench:
            pts_l.append({"method": r["method"], "loss": loss,
                          "saved": 100 * (1 - r["latency_s"] / d["latency_s"])})
            pts_m.append({"method": r["method"], "loss": loss,
                          "saved": 100 * (1 - r["server_mib"] / d["server_mib"])})
    stem = os.path.splitext(args.out)[0]
    svg(pts_p, stem + "-products.svg", f"{kind}: ct x pt products saved vs loss "
        f"(dense {dl:.4g})", "products saved")
    if args.bench:
        svg(pts_l, stem + "-latency.svg", f"{kind}: encrypted latency saved vs loss "
            f"(dense {dl:.4g})", "latency saved")
        svg(pts_m, stem + "-memory.svg", f"{kind}: server memory saved vs loss "
            f"(dense {dl:.4g})", "memory saved")


if __name__ == "__main__":
    main()
