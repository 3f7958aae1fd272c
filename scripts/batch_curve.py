#!/usr/bin/python3
"""Encrypted cost of models across batch sizes (docs/PRUNING.md, issue 13).

Runs `tessera bench model M --batch B --samples B --runs K --threads 1` for each model and
batch size in alternated series (per batch: the models in order, then in reverse, --rounds
times, so load drift cancels in the ratios), each inside /usr/bin/time -v and under the
big-memory lock, and keeps every output in --work as NAME-bB-sS.txt. Then (or with
--report alone, from the outputs already there) it reads the bench's CPU per batch, server
memory and output error against plaintext, and /usr/bin/time's user + sys and peak RSS, and
writes --out (JSON), its stem + .svg (CPU time and server memory saved against the first
model per batch, with the 60 % line) and a markdown table per model: CPU per batch and per
sample, the ratios to the first model per series (paired by series number; a run whose
/usr/bin/time exit status is not 0 counts as failed), and each model's cheapest batch per
sample. The JSON's "tessera" names the binaries the outputs say ran, not --tessera.

Nothing here is timed by a test: --self-test only parses made-up bench outputs and checks the
arithmetic and the plot's coordinates.

  /usr/bin/python3 scripts/batch_curve.py --tessera build/bin/tessera \\
      --model dense=ae1-dense.onnx --model r8p152z8=ae1-r8p152z8.onnx \\
      --batches 32,64,128 --work build/batch-curve --out docs/pruning/ae1-r12-batch.json
"""
import argparse
import glob
import json
import math
import os
import re
import subprocess
import sys
import time

LOCK = "/work/notes/bigmem.lock"


def loadavg():
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])


def parse_bench(text):
    """The figures of one `tessera bench model` output (one batch size), with /usr/bin/time -v's
    lines and the sweep's own '== ... load A B C' lines when present; None when the bench did
    not report a batch."""
    m = re.search(r"^batch (\d+): median ([0-9.]+) s over \d+ runs \(CPU ([0-9.]+) s\).*?"
                  r"predicted ([0-9.]+) s; largest (?:output|logit) error ([0-9.e+-]+); "
                  r"mean squared error ([0-9.e+-]+) over.*?server memory ([0-9.]+) MiB",
                  text, re.M)
    if not m:
        return None
    r = {"batch": int(m.group(1)), "latency_s": float(m.group(2)), "cpu_s": float(m.group(3)),
         "predicted_s": float(m.group(4)), "max_err": float(m.group(5)),
         "mse_plain": float(m.group(6)), "server_mib": float(m.group(7))}
    p = re.search(r"^plan for \S+: batch \d+, (.*)$", text, re.M)
    c = re.search(r"^CKKS: N = 2\^(\d+) .*?scale 2\^(\d+).*?dnum (\d+)", text, re.M)
    if p:
        r["plan"] = p.group(1).strip()
    if c:
        r["log_n"], r["scale_bits"], r["dnum"] = (int(c.group(i)) for i in (1, 2, 3))
    u = re.search(r"User time \(seconds\): ([0-9.]+)", text)
    s = re.search(r"System time \(seconds\): ([0-9.]+)", text)
    rss = re.search(r"Maximum resident set size \(kbytes\): (\d+)", text)
    cmd = re.search(r'Command being timed: "(\S+) bench model', text)
    ex = re.search(r"Exit status: (\d+)", text)
    if cmd:
        r["binary"] = cmd.group(1)
    if ex:
        r["exit_status"] = int(ex.group(1))
    if u and s:
        r["user_sys_s"] = round(float(u.group(1)) + float(s.group(1)), 2)
    if rss:
        r["peak_rss_kib"] = int(rss.group(1))
    loads = re.findall(r"^== .*load ([0-9.]+) ([0-9.]+) ([0-9.]+)", text, re.M)
    if loads:
        r["load"] = [float(v[0]) for v in loads]
    return r


def run_one(args, name, model, batch, series):
    path = os.path.join(args.work, f"{name}-b{batch}-s{series}.txt")
    cmd = [args.tessera, "bench", "model", model, "--batch", str(batch), "--samples",
           str(batch), "--runs", str(args.runs), "--threads", "1"] + args.extra.split()
    if args.lock:
        cmd = ["flock", args.lock] + ["/usr/bin/time", "-v"] + cmd
    else:
        cmd = ["/usr/bin/time", "-v"] + cmd
    env = dict(os.environ, OMP_WAIT_POLICY="passive", TSR_PROGRESS="0", OMP_NUM_THREADS="1")
    with open(path, "w") as f:
        f.write(f"== {name} batch {batch} series {series} start "
                f"{time.strftime('%H:%M:%S', time.gmtime())} load {loadavg()}\n")
        f.write("# " + " ".join(cmd) + "\n")
        f.flush()
        subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT, env=env)
        f.write(f"== end {time.strftime('%H:%M:%S', time.gmtime())} load {loadavg()}\n")
    with open(path) as f:
        r = parse_bench(f.read())
    print(f"{name} batch {batch} series {series}: " +
          (f"CPU {r['cpu_s']} s per batch, {r['server_mib']} MiB" if r else "no result"),
          flush=True)


def sweep(args, models):
    os.makedirs(args.work, exist_ok=True)
    names = list(models)
    for b in args.batches:
        order = []
        for _ in range(args.rounds):
            order += names + names[::-1]
        seen = {}
        for name in order:
            seen[name] = seen.get(name, 0) + 1
            run_one(args, name, models[name], b, seen[name])


def collect(work, names):
    """Every NAME-bB-sS.txt in work: {name: {batch: [run, ...] in series order}}."""
    out = {}
    for name in names:
        runs = {}
        for path in glob.glob(os.path.join(glob.escape(work), f"{glob.escape(name)}-b*-s*.txt")):
            m = re.fullmatch(re.escape(name) + r"-b(\d+)-s(\d+)\.txt", os.path.basename(path))
            if not m:
                continue
            with open(path) as f:
                r = parse_bench(f.read())
            if r is None or r.get("exit_status", 0) != 0:
                # no batch line, or the bench printed one and then failed (time -v's status)
                r = {"batch": int(m.group(1)), "failed": True}
            elif r["batch"] != int(m.group(1)):
                sys.exit(f"{path}: the bench ran batch {r['batch']}, not {m.group(1)}")
            r["series"], r["file"] = int(m.group(2)), os.path.basename(path)
            runs.setdefault(r["batch"], []).append(r)
        for b in runs:
            runs[b].sort(key=lambda r: r["series"])
        out[name] = runs
    return out


def mean(v):
    return sum(v) / len(v)


def pair_series(mine, ref):
    """The (run, reference run) pairs of one batch: by series number, so that a failed run
    drops its own pair only. Outputs numbered by their place in a shell loop's series (the
    twelfth round's: dense s1 and s4, pruned s2 and s3) share no number: those pair by
    position, and only when no run of either failed."""
    ok = [r for r in mine if not r.get("failed")]
    base = {d["series"]: d for d in ref if not d.get("failed")}
    if {r["series"] for r in mine} & {d["series"] for d in ref}:
        return [(r, base[r["series"]]) for r in ok if r["series"] in base]
    if len(ok) == len(mine) and len(base) == len(ref):
        return list(zip(ok, [base[k] for k in sorted(base)]))
    return []


def summarize(runs, names):
    """Per model and batch: mean CPU per batch and per sample, server memory, and against the
    first model: the CPU ratio of each series (run of series k against the reference's run of
    series k, so a failed run drops its own pair only) and of the means, and the memory ratio."""
    ref, rows = names[0], []
    batches = sorted({b for n in names for b in runs.get(n, {})})
    for b in batches:
        base = [r for r in runs.get(ref, {}).get(b, []) if not r.get("failed")]
        for n in names:
            if not runs.get(n, {}).get(b):
                continue
            ok = [r for r in runs[n][b] if not r.get("failed")]
            if not ok:
                rows.append({"batch": b, "model": n, "failed": True})
                continue
            row = {"batch": b, "model": n, "series": len(ok),
                   "cpu_s": [r["cpu_s"] for r in ok], "cpu_s_mean": mean([r["cpu_s"] for r in ok]),
                   "server_mib": mean([r["server_mib"] for r in ok]),
                   "predicted_s": ok[0]["predicted_s"], "plan": ok[0].get("plan", ""),
                   "mse_plain": max(r["mse_plain"] for r in ok),
                   "max_err": max(r["max_err"] for r in ok)}
            row["cpu_ms_per_sample"] = 1000 * row["cpu_s_mean"] / b
            for k in ("user_sys_s", "peak_rss_kib"):
                if all(k in r for r in ok):
                    row[k] = [r[k] for r in ok]
            loads = [v for r in ok for v in r.get("load", [])]
            if loads:
                row["load"] = [min(loads), max(loads)]
            if n != ref and base:
                pairs = pair_series(runs[n][b], runs[ref][b])
                row["cpu_ratio"] = [r["cpu_s"] / d["cpu_s"] for r, d in pairs]
                row["cpu_ratio_pairs"] = [[r["series"], d["series"]] for r, d in pairs]
                row["cpu_ratio_mean"] = row["cpu_s_mean"] / mean([d["cpu_s"] for d in base])
                row["mem_ratio"] = row["server_mib"] / mean([d["server_mib"] for d in base])
            rows.append(row)
    best = {}
    for n in names:
        ok = [r for r in rows if r["model"] == n and not r.get("failed")]
        if ok:
            best[n] = min(ok, key=lambda r: r["cpu_ms_per_sample"])["batch"]
    return rows, best


def table(rows, best, names):
    ref = names[0]
    s = [f"| batch | model | plan | CPU per batch (series) | per sample | predicted | server "
         f"memory | CPU / {ref} (series; means) | memory / {ref} | output MSE vs plaintext |",
         "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        if r.get("failed"):
            s.append(f"| {r['batch']} | {r['model']} | failed | | | | | | | |")
            continue
        cpu = "; ".join(f"{v:.3f}" for v in r["cpu_s"])
        ratio = mem = ""
        if "cpu_ratio" in r:
            ratio = "; ".join(f"{v:.3f}" for v in r["cpu_ratio"]) + \
                f" ({100 * (r['cpu_ratio_mean'] - 1):+.1f} %)"
            mem = f"{r['mem_ratio']:.3f} ({100 * (r['mem_ratio'] - 1):+.1f} %)"
        s.append(f"| {r['batch']} | {r['model']} | {r['plan']} | {cpu} s | "
                 f"{r['cpu_ms_per_sample']:.2f} ms | {r['predicted_s']:.3f} s | "
                 f"{r['server_mib']:.1f} MiB | {ratio} | {mem} | {r['mse_plain']:.1e} |")
    s.append("")
    s.append("cheapest CPU per sample: " + ", ".join(f"{n} at batch {b}" for n, b in best.items()))
    return "\n".join(s)


def plot(rows, names, path, title):
    """CPU time and server memory saved (%) against the first model, per batch (log2 axis),
    one colour per model, circles CPU, squares memory; the 60 % line."""
    cols = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b"]
    pts = [r for r in rows if "cpu_ratio_mean" in r]
    if not pts:
        sys.exit("batch_curve: nothing to plot (no batch with both the reference and a model)")
    xs = [math.log2(r["batch"]) for r in pts]
    x0, x1 = min(xs) - 0.5, max(xs) + 0.5
    vals = [100 * (1 - r[k]) for r in pts for k in ("cpu_ratio_mean", "mem_ratio")]
    y0 = min([0.0] + vals)
    y0 = 10 * math.floor(y0 / 10)
    y1 = 100.0
    W, H, L, B = 720, 420, 70, 50

    def X(v):
        return L + (math.log2(v) - x0) / (x1 - x0) * (W - L - 20)

    def Y(v):
        return H - B - (v - y0) / (y1 - y0) * (H - B - 30)
    s = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" font-size="12">',
         f'<text x="{W / 2}" y="18" text-anchor="middle">{title}</text>',
         f'<line x1="{L}" y1="{H - B}" x2="{W - 20}" y2="{H - B}" stroke="black"/>',
         f'<line x1="{L}" y1="30" x2="{L}" y2="{H - B}" stroke="black"/>',
         f'<text x="{W / 2}" y="{H - 10}" text-anchor="middle">batch (log scale)</text>',
         f'<text x="15" y="{H / 2}" transform="rotate(-90 15 {H / 2})" text-anchor="middle">'
         f'saved against {names[0]} (measured)</text>',
         f'<line x1="{L}" y1="{Y(60):.1f}" x2="{W - 20}" y2="{Y(60):.1f}" stroke="#2ca02c" '
         f'stroke-dasharray="4 3"/>',
         f'<text x="{L + 3}" y="{Y(60) - 3:.1f}" fill="#2ca02c">60 %</text>']
    if y0 < 0:
        s.append(f'<line x1="{L}" y1="{Y(0):.1f}" x2="{W - 20}" y2="{Y(0):.1f}" stroke="#999"/>')
    for k in range(int(y0), 101, 20 if y1 - y0 > 100 else 10):
        s.append(f'<text x="{L - 5}" y="{Y(k) + 4:.1f}" text-anchor="end">{k}%</text>')
    for b in sorted({r["batch"] for r in pts}):
        s.append(f'<text x="{X(b):.1f}" y="{H - B + 15}" text-anchor="middle">{b}</text>')
    ly = H - B - 10 - 15 * (len(names) - 2)  # lower left: above the axis, below the 60 % line
    for i, n in enumerate(names[1:]):
        col = cols[i % len(cols)]
        mine = sorted([r for r in pts if r["model"] == n], key=lambda r: r["batch"])
        if not mine:
            continue
        for key, dash, shape in (("cpu_ratio_mean", "", "circle"), ("mem_ratio", "6 3", "rect")):
            s.append(f'<polyline fill="none" stroke="{col}"' +
                     (f' stroke-dasharray="{dash}"' if dash else "") + ' points="' +
                     " ".join(f"{X(r['batch']):.1f},{Y(100 * (1 - r[key])):.1f}" for r in mine) +
                     '"/>')
            for r in mine:
                x, y = X(r["batch"]), Y(100 * (1 - r[key]))
                if shape == "circle":
                    s.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="4" fill="{col}"/>')
                else:
                    s.append(f'<rect x="{x - 4:.1f}" y="{y - 4:.1f}" width="8" height="8" '
                             f'fill="{col}"/>')
        s.append(f'<text x="{L + 10}" y="{ly}" fill="{col}">{n}: CPU (circles, solid), '
                 f'memory (squares, dashed)</text>')
        ly += 15
    s.append("</svg>")
    with open(path, "w") as f:
        f.write("\n".join(s))


def report(args, names, models):
    runs = collect(args.work, names)
    rows, best = summarize(runs, names)
    # the binaries that ran, as time -v recorded them (not --tessera: --report reads outputs
    # that another binary may have made)
    bins = sorted({r["binary"] for n in names for v in runs[n].values() for r in v
                   if "binary" in r})
    res = {"models": models, "reference": names[0],
           "tessera": bins if bins else "not recorded in the outputs",
           "command": f"tessera bench model M --batch B --samples B --runs {args.runs} "
           f"--threads 1 {args.extra}".strip(),
           "runs": {n: {str(b): v for b, v in runs[n].items()} for n in names},
           "rows": rows, "cheapest_per_sample": best}
    with open(args.out, "w") as f:
        json.dump(res, f, indent=1)
    plot(rows, names, os.path.splitext(args.out)[0] + ".svg",
         args.title or f"CPU time and server memory saved against {names[0]}, per batch")
    print(table(rows, best, names))


def self_test():
    """Parse made-up bench outputs of two models at two batches, two series each; check the
    figures, the ratios, the cheapest batch and the plot's coordinates."""
    import tempfile
    import xml.etree.ElementTree as ET
    ns = "{http://www.w3.org/2000/svg}"

    def fake(b, cpu, mib, plan="tiled packing t = [8, 1, 1, 16, 64] orientation 0"):
        return (f"== x batch {b} series 1 start 00:00:00 load 3.00 2.00 1.00\n"
                f"plan for m.onnx: batch {b}, {plan}\n"
                f"CKKS: N = 2^14 (8192 slots), 8 levels, scale 2^37, q0 47 bits, 2 x 43-bit "
                f"special primes, dnum 5, 128-bit security\n"
                f"batch {b}: median 9.9 s over 3 runs (CPU {cpu} s), 1.0 images/s, predicted "
                f"1.5 s; largest output error 1.1e-06; mean squared error 4.8e-14 over {b} "
                f"samples x 784 outputs; server memory {mib} MiB (ciphertexts + plaintexts at "
                f"peak)\n\tUser time (seconds): 20.5\n\tSystem time (seconds): 1.25\n"
                f"\tMaximum resident set size (kbytes): 123456\n== end 00:01:00 load 4.00 2 1\n")
    # dense: 2.0 / 2.2 s at batch 64 (per sample 32.8 ms), 3.0 / 3.0 s at 128 (23.4 ms);
    # pruned: 0.9 / 1.1 s at 64, 1.2 / 1.2 s at 128; memory 1000 -> 400 (64), 2000 -> 600 (128)
    figs = {("dense", 64): [(2.0, 1000), (2.2, 1000)], ("dense", 128): [(3.0, 2000), (3.0, 2000)],
            ("pruned", 64): [(0.9, 400), (1.1, 400)], ("pruned", 128): [(1.2, 600), (1.2, 600)]}
    with tempfile.TemporaryDirectory() as d:
        for (n, b), v in figs.items():
            for s, (cpu, mib) in enumerate(v, 1):
                with open(os.path.join(d, f"{n}-b{b}-s{s}.txt"), "w") as f:
                    f.write(fake(b, cpu, mib))
        with open(os.path.join(d, "dense-b256-s1.txt"), "w") as f:
            f.write("error: the plan needs more memory\n")
        r = parse_bench(fake(64, 2.0, 1000))
        want = {"batch": 64, "cpu_s": 2.0, "server_mib": 1000.0, "predicted_s": 1.5,
                "max_err": 1.1e-6, "mse_plain": 4.8e-14, "user_sys_s": 21.75,
                "peak_rss_kib": 123456, "log_n": 14, "scale_bits": 37, "dnum": 5,
                "load": [3.0, 4.0], "plan": "tiled packing t = [8, 1, 1, 16, 64] orientation 0"}
        bad = {k: (r.get(k), v) for k, v in want.items() if r.get(k) != v}
        if bad:
            sys.exit(f"--self-test: parse_bench read (got, want) {bad}")
        rows, best = summarize(collect(d, ["dense", "pruned"]), ["dense", "pruned"])
        by = {(r["model"], r["batch"]): r for r in rows}
        p64, p128 = by[("pruned", 64)], by[("pruned", 128)]
        checks = [
            (p64["cpu_ratio"], [0.45, 0.5]), (p64["cpu_ratio_mean"], 2.0 / 4.2),
            (p64["mem_ratio"], 0.4), (p128["cpu_ratio_mean"], 0.4), (p128["mem_ratio"], 0.3),
            (by[("dense", 128)]["cpu_ms_per_sample"], 3000 / 128),
            (by[("dense", 256)].get("failed"), True), (best, {"dense": 128, "pruned": 128})]
        for got, want in checks:
            g = got if isinstance(got, list) else [got]
            w = want if isinstance(want, list) else [want]
            if isinstance(want, dict) or want is True:
                ok = got == want
            else:
                ok = len(g) == len(w) and all(abs(a - b) < 1e-12 for a, b in zip(g, w))
            if not ok:
                sys.exit(f"--self-test: summarize gave {got}, want {want}")
        # pairing by series: dense's series-1 run at 32 printed its batch line and then failed
        # (exit status 1), so pruned's series 1 has no pair and series 2 pairs with series 2
        d32 = os.path.join(d, "b32")
        os.makedirs(d32)
        for n, s, cpu, status in (("dense", 1, 1.0, 1), ("dense", 2, 2.0, 0),
                                  ("pruned", 1, 0.5, 0), ("pruned", 2, 0.8, 0)):
            with open(os.path.join(d32, f"{n}-b32-s{s}.txt"), "w") as f:
                f.write(fake(32, cpu, 100).replace("== end", f"\tExit status: {status}\n== end")
                        .replace('== x', f'\tCommand being timed: "/bin/t{s} bench model m"\n== x'))
        runs32 = collect(d32, ["dense", "pruned"])
        r32 = {r["model"]: r for r in summarize(runs32, ["dense", "pruned"])[0]}
        if r32["dense"]["cpu_s"] != [2.0] or r32["pruned"]["cpu_ratio"] != [0.4] \
                or r32["pruned"]["cpu_ratio_pairs"] != [[2, 2]]:
            sys.exit(f"--self-test: with a failed reference run, summarize gave {r32}")
        if runs32["pruned"][32][0].get("binary") != "/bin/t1":
            sys.exit(f"--self-test: parse_bench read binary {runs32['pruned'][32][0]}")
        # a shell loop's numbering (reference s1, s4; the other s2, s3): pairs by position
        sh = [{"series": k, "cpu_s": float(k)} for k in (1, 2, 3, 4)]
        got = [[r["series"], d["series"]] for r, d in pair_series(sh[1:3], [sh[0], sh[3]])]
        if got != [[2, 1], [3, 4]]:
            sys.exit(f"--self-test: a shell loop's series paired as {got}")
        out = os.path.join(d, "c.svg")
        plot(rows, ["dense", "pruned"], out, "t")
        root = ET.parse(out).getroot()
        # x: log2 batch 5.5..7.5 over 70..700; y: saved 0..100 % over 370..30
        cx = [float(e.get("cx")) for e in root.iter(ns + "circle")]
        cy = [float(e.get("cy")) for e in root.iter(ns + "circle")]
        ry = [float(e.get("y")) + 4 for e in root.iter(ns + "rect")]
        wx = [70 + 0.5 / 2 * 630, 70 + 1.5 / 2 * 630]
        wcy = [370 - (100 * (1 - 2.0 / 4.2)) / 100 * 340, 370 - 60 / 100 * 340]
        wry = [370 - 60 / 100 * 340, 370 - 70 / 100 * 340]
        line60 = [float(e.get("y1")) for e in root.iter(ns + "line") if e.get("stroke-dasharray")]
        if len(cx) != 2 or any(abs(a - b) > 0.06 for a, b in zip(cx + cy + ry, wx + wcy + wry)) \
                or len(line60) != 1 or abs(line60[0] - (370 - 0.6 * 340)) > 0.06:
            sys.exit(f"--self-test: plot drew circles {list(zip(cx, cy))}, squares at {ry}, "
                     f"60 % line {line60}; want {list(zip(wx, wcy))}, {wry}")
        print(table(rows, best, ["dense", "pruned"]))
    print("--self-test: ok (parse_bench, the per-series ratios, pairing by series after a failed "
          "run, the cheapest batch, the plot)")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog=__doc__.split("\n\n", 1)[1])
    ap.add_argument("--model", action="append", default=[],
                    help="NAME=PATH.onnx (repeat; the first is the reference the ratios are "
                    "against)")
    ap.add_argument("--batches", default="32,64,128,256", help="batch sizes, in run order")
    ap.add_argument("--rounds", type=int, default=1,
                    help="alternated rounds per batch: the models in order, then reversed (2 "
                    "runs of each model per round)")
    ap.add_argument("--runs", type=int, default=2, help="the bench's --runs")
    ap.add_argument("--extra", default="", help="more bench options, e.g. \"--log-n 14\"")
    ap.add_argument("--tessera", default="build/bin/tessera")
    ap.add_argument("--lock", default=LOCK, help="flock file for every run ('' for none)")
    ap.add_argument("--work", default="build/batch-curve", help="where the outputs go")
    ap.add_argument("--report", action="store_true",
                    help="do not run: read the outputs already in --work")
    ap.add_argument("--out", default="", help="the JSON (and its stem + .svg) to write")
    ap.add_argument("--title", default="", help="the plot's title")
    ap.add_argument("--self-test", action="store_true",
                    help="check the parser, the ratios and the plot on made-up outputs, then stop")
    args = ap.parse_args()
    if args.self_test:
        self_test()
        return
    if not args.out or len(args.model) < 2:
        ap.error("--out and at least two --model NAME=PATH are required")
    models = {}
    for spec in args.model:
        name, sep, path = spec.partition("=")
        if not sep or not re.fullmatch(r"[A-Za-z0-9_.+-]+", name) or name in models:
            sys.exit(f"--model {spec}: not NAME=PATH with a new name of letters, digits, ._+-")
        models[name] = path
    try:
        args.batches = [int(b) for b in args.batches.split(",")]
    except ValueError:
        sys.exit(f"--batches: not a list of integers: {args.batches}")
    if any(b < 1 for b in args.batches) or args.rounds < 1 or args.runs < 1:
        sys.exit("--batches, --rounds and --runs must be positive")
    if not args.report:
        sweep(args, models)
    report(args, list(models), models)


if __name__ == "__main__":
    main()
