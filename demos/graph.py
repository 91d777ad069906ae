"""Draw computation graphs: one sigmoid neuron, and the loss of a small network.

1. One neuron, a = σ(w·x + b), with its squared error (a − y)², built from tensor operations
   so that every multiplication, sum and the sigmoid is a node; the values and, after
   ``backward()``, every gradient are shown in the boxes.
2. A 2-3-1 sigmoid network's mean squared error on a batch of four samples: the ops of each
   layer sit in a frame named after the layer, the parameters are named as in ``state_dict``.

Writes ``neuron.svg`` and ``mlp.svg`` (``--format png`` or ``pdf`` for others) into ``--out``
with Graphviz's ``dot``. Without ``dot`` it writes the DOT source (``.dot``) and an HTML page
that lays the graph out in the browser (``.html``), and says so.
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse
import time
from pathlib import Path

import numpy as np
from _cli import out_dir

import tinygrad_nn as tg
from tinygrad_nn import nn, viz


def neuron_graph() -> tuple[tg.Tensor, float]:
    """a = σ(w·x + b) and its loss (a − y)², with every gradient kept."""
    x = tg.Tensor([0.5, -1.0, 2.0], name="x")
    w = tg.Tensor([0.8, 0.2, -0.5], requires_grad=True, name="w")
    b = tg.Tensor(0.1, requires_grad=True, name="b")
    z = (w * x).sum() + b
    z.name = "z"
    a = z.sigmoid()
    a.name = "a"
    loss = (a - 1.0) ** 2
    loss.name = "loss"
    viz.retain_grads(loss).backward()
    return loss, float(a.item())


def mlp_graph() -> tuple[tg.Tensor, nn.Sequential]:
    """The mean squared error of a 2-3-1 sigmoid network on XOR's four samples."""
    tg.manual_seed(0)
    model = nn.Sequential(nn.Dense(2, 3), nn.Sigmoid(), nn.Dense(3, 1), nn.Sigmoid())
    x = tg.Tensor(np.array([[0, 0], [0, 1], [1, 0], [1, 1]], dtype=np.float32), name="x")
    y = np.array([[0], [1], [1], [0]], dtype=np.float32)
    loss = nn.functional.mse_loss(model(x), y)
    loss.name = "loss"
    viz.retain_grads(loss).backward()
    return loss, model


def write(graph: viz.ComputationGraph, stem: Path, fmt: str) -> list[Path]:
    """Render ``graph`` to ``stem.fmt`` with dot, or write .dot and .html when dot is missing."""
    try:
        viz.check_dot()
    except viz.GraphvizNotFoundError:
        return [
            viz.save_dot(graph, stem.with_suffix(".dot")),
            Path(viz.render(graph, stem.with_suffix(".html"))),
        ]
    return [Path(viz.render(graph, stem.with_suffix(f".{fmt}")))]


def main(argv: list[str] | None = None) -> list[Path]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--format", choices=["svg", "png", "pdf"], default="svg")
    parser.add_argument("--out", default="out/graph", help="where to write (default out/graph)")
    parser.add_argument("--quick", action="store_true", help="the same (it takes a second)")
    args = parser.parse_args(argv)
    out = out_dir(parser, args.out)
    started = time.perf_counter()

    loss, a = neuron_graph()
    neuron = viz.draw_graph(loss, show_values=True, title="one sigmoid neuron: (σ(w·x + b) − 1)²")
    written = write(neuron, out / "neuron", args.format)
    mlp_loss, model = mlp_graph()
    mlp = viz.draw_graph(mlp_loss, model=model, title="2-3-1 sigmoid network, MSE on XOR")
    written += write(mlp, out / "mlp", args.format)

    print("== graph")
    print(f"one neuron: a = {a:.4f}, loss = {loss.item():.4f}")
    print(f"2-3-1 network: loss = {mlp_loss.item():.4f}")
    if any(p.suffix == ".dot" for p in written):
        print("Graphviz's `dot` was not found: wrote the DOT source and an HTML page instead.")
        print("Install Graphviz (e.g. `apt-get install graphviz`) to get images.")
    print(
        f"time: {time.perf_counter() - started:.1f} s; wrote {', '.join(p.name for p in written)}"
        f" to {out}"
    )
    return written


if __name__ == "__main__":
    main()
