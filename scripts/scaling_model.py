#!/usr/bin/env python3
"""The scaling model of docs/SCALING.md: predicted time and speedup of
`tessera infer --mpi` and `tessera fl run --mpi` on K = 1..64 nodes (one rank
per node), from constants measured on one machine, drawn as an SVG.

    /usr/bin/python3 scripts/scaling_model.py constants.json docs/scaling.svg

constants.json (every time in seconds, every size in bytes):
  infer: t_batch (one batch's inference on one node), t_prep (preparing the
         plan), plan, keys, ct_in, ct_out (file sizes), batches (F, the workload)
  fl:    t_grad (one worker gradient), t_agg (aggregation + step at rank 0 for n
         workers), d (parameters), workers (n)
  net:   list of {name, alpha (latency), beta (bytes/s)}
Prints the table the document quotes. Standard library only.
"""

import json
import math
import sys


def infer_time(c, k, net):
    """Wall time of infer --mpi on k nodes: broadcast of plan and keys (binomial tree),
    preparation on every node, rank 0 sending the other nodes' inputs and receiving
    their outputs over its own link, ceil(F/k) batches per node."""
    a, b = net["alpha"], net["beta"]
    F = c["batches"]
    mine = math.ceil(F / k)
    hops = math.ceil(math.log2(k)) if k > 1 else 0
    bcast = hops * (2 * a + (c["plan"] + c["keys"]) / b)
    moved = (F - mine) * (c["ct_in"] + c["ct_out"])
    comm = bcast + (F - mine) * 2 * a + moved / b
    return c["t_prep"] + mine * c["t_batch"] + comm, comm


def fl_round(c, k, net):
    """One round of fl run --mpi on k nodes: ceil(n/k) gradients per node, the other
    nodes' rows into rank 0's link, aggregation at rank 0, parameters broadcast."""
    a, b = net["alpha"], net["beta"]
    n, d = c["workers"], c["d"]
    mine = math.ceil(n / k)
    hops = math.ceil(math.log2(k)) if k > 1 else 0
    comm = (n - mine) * (a + 4 * d / b) + hops * (a + 4 * d / b)
    return mine * c["t_grad"] + c["t_agg"] + comm, comm


KS = [1, 2, 4, 8, 16, 32, 64]


def svg(consts, path):
    W, H, M = 880, 380, 60
    pw = (W - 3 * M) / 2
    ph = H - 2 * M
    colors = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd"]
    out = ['<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" '
           'font-family="sans-serif" font-size="12">' % (W, H),
           '<rect width="100%" height="100%" fill="white"/>']

    def x_of(k, x0):
        return x0 + pw * math.log2(k) / 6

    def y_of(s):  # speedups 1/8 .. 64 on a log scale
        return M + ph * (1 - (math.log2(min(max(s, 0.125), 64)) + 3) / 9)

    panels = [("tessera infer --mpi: speedup (F = %d batches)" % consts["infer"]["batches"],
               lambda k, net: infer_time(consts["infer"], 1, net)[0]
               / infer_time(consts["infer"], k, net)[0]),
              ("tessera fl run --mpi: speedup per round (n = %d workers)" % consts["fl"]["workers"],
               lambda k, net: fl_round(consts["fl"], 1, net)[0] / fl_round(consts["fl"], k, net)[0])]
    for p, (title, fn) in enumerate(panels):
        x0 = M + p * (pw + M)
        out.append('<text x="%.1f" y="%d" font-weight="bold">%s</text>' % (x0, M - 25, title))
        out.append('<rect x="%.1f" y="%d" width="%.1f" height="%d" fill="none" stroke="#444"/>'
                   % (x0, M, pw, ph))
        for k in KS:
            x = x_of(k, x0)
            out.append('<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="#ddd"/>' % (x, M, x, M + ph))
            out.append('<text x="%.1f" y="%d" text-anchor="middle">%d</text>' % (x, M + ph + 15, k))
        for e in range(-3, 7):
            y = y_of(2.0 ** e)
            out.append('<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#ddd"/>'
                       % (x0, y, x0 + pw, y))
            out.append('<text x="%.1f" y="%.1f" text-anchor="end">%g</text>'
                       % (x0 - 5, y + 4, 2.0 ** e))
        out.append('<text x="%.1f" y="%d" text-anchor="middle">nodes (one rank each)</text>'
                   % (x0 + pw / 2, M + ph + 32))
        pts = " ".join("%.1f,%.1f" % (x_of(k, x0), y_of(k)) for k in KS)
        out.append('<polyline points="%s" fill="none" stroke="#999" stroke-dasharray="4 3"/>' % pts)
        for i, net in enumerate(consts["net"]):
            pts = " ".join("%.1f,%.1f" % (x_of(k, x0), y_of(fn(k, net))) for k in KS)
            out.append('<polyline points="%s" fill="none" stroke="%s" stroke-width="2"/>'
                       % (pts, colors[i % len(colors)]))
            ly = M + 15 + 16 * i
            out.append('<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="%s" stroke-width="2"/>'
                       % (x0 + 10, ly, x0 + 30, ly, colors[i % len(colors)]))
            out.append('<text x="%.1f" y="%d">%s</text>' % (x0 + 35, ly + 4, net["name"]))
        ly = M + 15 + 16 * len(consts["net"])
        out.append('<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="#999" stroke-dasharray="4 3"/>'
                   % (x0 + 10, ly, x0 + 30, ly))
        out.append('<text x="%.1f" y="%d">ideal</text>' % (x0 + 35, ly + 4))
        if "measured" in consts and p < len(consts["measured"]):
            for k, s in consts["measured"][p]:
                out.append('<circle cx="%.1f" cy="%.1f" r="4" fill="black"/>'
                           % (x_of(k, x0), y_of(s)))
    out.append('<text x="%d" y="%d" fill="#444">dots: measured on one 2-vCPU machine (ranks '
               'sharing its cores); lines: the model of docs/SCALING.md</text>' % (M, H - 8))
    out.append("</svg>")
    with open(path, "w") as f:
        f.write("\n".join(out) + "\n")


def main():
    consts = json.load(open(sys.argv[1]))
    for net in consts["net"]:
        print("%s:" % net["name"])
        print("  K   infer s   comm s  speedup |  fl round s   comm s  speedup")
        t1 = infer_time(consts["infer"], 1, net)[0]
        f1 = fl_round(consts["fl"], 1, net)[0]
        for k in KS:
            t, c = infer_time(consts["infer"], k, net)
            f, fc = fl_round(consts["fl"], k, net)
            print("%3d  %8.2f %8.3f %8.2f | %10.4f %8.4f %8.2f" % (k, t, c, t1 / t, f, fc, f1 / f))
    if len(sys.argv) > 2:
        svg(consts, sys.argv[2])


if __name__ == "__main__":
    main()
