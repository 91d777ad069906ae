"""The perceptron learns AND, OR and NAND, never XOR; two layers of sigmoid neurons learn XOR.

Part 1: Rosenblatt's perceptron, ŷ = step(w·x + b) (``nn.Dense(2, 1)`` then ``nn.Step()``),
trained by the perceptron rule, one sample at a time: w ← w + η(y − ŷ)x, b ← b + η(y − ŷ). On a
linearly separable truth table it stops making mistakes after a few epochs (the perceptron
convergence theorem); on XOR no line separates the 1s from the 0s, so every epoch has mistakes,
for as many epochs as we let it run.

Part 2: a 2-2-1 network of sigmoid neurons trained by backpropagation (binary cross-entropy,
gradient descent on the four samples) classifies XOR without a mistake. Such a small network
can stall in a poor local minimum from an unlucky start; then the demo restarts it from a new
random initialisation, and says so.

Writes ``perceptron.png`` (each learned decision boundary) and ``summary.json`` into ``--out``.
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # tiny matrices: one BLAS thread is fastest

import argparse
import json
import time
from typing import Any

import numpy as np
from _cli import integer, out_dir, positive_number

import tinygrad_nn as tg
from tinygrad_nn import nn, plots
from tinygrad_nn.data import logic_gate
from tinygrad_nn.optim import SGD
from tinygrad_nn.train import accuracy, predict

SEPARABLE = ("and", "or", "nand")  # a line separates their 1s from their 0s; not XOR's


def mistakes_text(mistakes: list[int]) -> str:
    """The range of mistakes per epoch, as "2-4 mistakes" (or "1 mistake" when it never varied)."""
    low, high = min(mistakes), max(mistakes)
    count = f"{low}" if low == high else f"{low}-{high}"
    return f"{count} mistake{'' if high == 1 else 's'}"


def perceptron_rule(
    x: np.ndarray, y: np.ndarray, lr: float, max_epochs: int
) -> tuple[nn.Sequential, int | None, list[int]]:
    """Train a step-activation perceptron from zero weights by the perceptron rule.

    Returns the model, the number of epochs until an epoch passed without a mistake (None if
    none did within ``max_epochs``), and the number of mistakes in each epoch.
    """
    model = nn.Sequential(nn.Dense(2, 1), nn.Step())
    dense = model[0]
    nn.init.zeros_(dense.weight)
    nn.init.zeros_(dense.bias)
    mistakes_per_epoch = []
    with tg.no_grad():  # the perceptron rule needs no gradients
        for epoch in range(1, max_epochs + 1):
            mistakes = 0
            for xi, yi in zip(x, y):
                y_hat = model(tg.Tensor(xi[None])).item()
                error = yi - y_hat  # -1, 0 or +1
                if error:
                    mistakes += 1
                    dense.weight.data += lr * error * xi
                    dense.bias.data += lr * error
            mistakes_per_epoch.append(mistakes)
            if mistakes == 0:
                return model, epoch, mistakes_per_epoch
    return model, None, mistakes_per_epoch


def xor_by_backprop(
    x: np.ndarray, y: np.ndarray, lr: float, epochs: int, attempts: int
) -> tuple[nn.Sequential, int, list[float], int]:
    """Train 2-2-1 sigmoid networks on XOR until one gets all four right.

    Returns the model, the attempt that succeeded (1-based), its loss per epoch and the epochs
    it took to reach 100% (the loss keeps falling after that, to sharpen the outputs).
    """
    target = y.reshape(-1, 1).astype(np.float32)
    for attempt in range(1, attempts + 1):
        model = nn.Sequential(nn.Dense(2, 2), nn.Sigmoid(), nn.Dense(2, 1), nn.Sigmoid())
        for p in model.parameters():
            nn.init.normal_(p, 0.0, 1.0)
        optimizer = SGD(model.parameters(), lr=lr)
        losses: list[float] = []
        solved_at = None
        inputs = tg.Tensor(x)
        for epoch in range(1, epochs + 1):
            out = model(inputs)  # forward
            loss = nn.functional.binary_cross_entropy(out, target)
            optimizer.zero_grad()
            loss.backward()  # backpropagation
            optimizer.step()  # gradient descent
            losses.append(loss.item())
            if solved_at is None and accuracy(out, y) == 1.0:
                solved_at = epoch
        if accuracy(predict(model, x), y) == 1.0:
            return model, attempt, losses, solved_at or epochs
        print(
            f"  attempt {attempt}: stuck at loss {losses[-1]:.3f} (a poor local minimum); "
            "restarting from a new random initialisation"
        )
    raise RuntimeError(f"XOR not learned in {attempts} attempts")


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--lr",
        type=positive_number,
        default=0.1,
        help="η of the perceptron rule, > 0 (default 0.1)",
    )
    parser.add_argument(
        "--max-epochs",
        type=integer(1),
        help="perceptron epochs at most, >= 1 (default 100, or 20 with --quick; an explicit "
        "--max-epochs wins over --quick)",
    )
    parser.add_argument("--seed", type=integer(0), default=0, help="seed of the 2-2-1 net, >= 0")
    parser.add_argument("--out", default="out/perceptron", help="where to write")
    parser.add_argument(
        "--quick",
        action="store_true",
        help="fewer epochs (it is quick anyway): 20 perceptron epochs unless --max-epochs is "
        "given, 2000 of backprop",
    )
    args = parser.parse_args(argv)
    if args.max_epochs is not None:
        max_epochs = args.max_epochs
    else:
        max_epochs = 20 if args.quick else 100
    epochs_text = f"{max_epochs} epoch{'' if max_epochs == 1 else 's'}"
    backprop_epochs = 2000 if args.quick else 5000
    out = out_dir(parser, args.out)
    started = time.perf_counter()
    tg.manual_seed(args.seed)

    print(f"Part 1: the perceptron rule, w <- w + {args.lr}·(y - ŷ)·x, from w = 0, b = 0")
    results: dict[str, Any] = {}
    panels = []
    for gate in ("and", "or", "nand", "xor"):
        x, y = logic_gate(gate)
        model, epochs, mistakes = perceptron_rule(x, y, args.lr, max_epochs)
        w = model[0].weight.data[0]
        b = float(model[0].bias.data[0]) + 0.0  # no -0.0
        if epochs is not None:
            verdict = (
                f"converged after {epochs} epoch{'' if epochs == 1 else 's'}: "
                f"w = {np.round(w, 3)}, b = {b:.3f}"
            )
        elif gate in SEPARABLE:
            verdict = (
                f"did NOT converge in {epochs_text}: still {mistakes_text(mistakes)} per "
                f"epoch ({gate.upper()} is linearly separable: more epochs would get there)"
            )
        else:
            verdict = (
                f"did NOT converge in {epochs_text}: still {mistakes_text(mistakes)} per "
                "epoch (no line separates XOR)"
            )
        print(f"  {gate.upper():<4}: {verdict}")
        results[gate] = {
            "converged": epochs is not None,
            "epochs": epochs if epochs is not None else max_epochs,
            "mistakes_per_epoch": mistakes,
            "weights": w.tolist(),
            "bias": b,
            "accuracy": accuracy(predict(model, x), y),
        }
        if epochs is not None:
            status = f"{epochs} epochs"
        elif gate in SEPARABLE:
            status = f"not yet ({epochs_text})"
        else:
            status = f"fails ({epochs_text})"
        panels.append((model, x, y, f"perceptron: {gate.upper()}, {status}"))

    print("Part 2: a 2-2-1 sigmoid network learns XOR by backpropagation (BCE, SGD η = 2)")
    x, y = logic_gate("xor")
    model, attempt, losses, solved_at = xor_by_backprop(x, y, 2.0, backprop_epochs, 5)
    outputs = predict(model, x).ravel()
    xor_acc = accuracy(outputs, y)
    print(
        f"  attempt {attempt}: 100% after {solved_at} epochs; after {len(losses)} epochs "
        f"loss {losses[-1]:.4f}, outputs {np.round(outputs, 3)} for targets {y}"
    )
    results["xor_2_2_1"] = {
        "attempt": attempt,
        "epochs_to_100_percent": solved_at,
        "epochs": len(losses),
        "final_loss": losses[-1],
        "outputs": outputs.tolist(),
        "accuracy": xor_acc,
    }
    panels.append((model, x, y, f"2-2-1 sigmoid net: XOR, {xor_acc:.0%}"))

    from matplotlib.figure import Figure

    fig = Figure(figsize=(3.3 * len(panels), 3.5), layout="constrained")
    axes = fig.subplots(1, len(panels))
    for ax, (m, px, py, title) in zip(axes, panels):
        plots.plot_decision_boundary(m, px, py, ax=ax, resolution=150, title=title)
        ax.title.set_fontsize(9)
    fig.savefig(out / "perceptron.png", dpi=100)
    wall = time.perf_counter() - started
    results["wall_seconds"] = wall
    (out / "summary.json").write_text(json.dumps(results, indent=2) + "\n")

    learned = [g.upper() for g in SEPARABLE if results[g]["converged"]]
    unfinished = [g.upper() for g in SEPARABLE if not results[g]["converged"]]
    verdicts = [f"{', '.join(learned)} learned"] if learned else []
    if unfinished:
        verdicts.append(
            f"{', '.join(unfinished)} not yet in {epochs_text} (linearly separable: more "
            "epochs would get there)"
        )
    verdicts.append("XOR not: no line separates its 1s from its 0s (as Minsky & Papert showed)")
    print("\n== perceptron")
    print(f"perceptron rule: {'; '.join(verdicts)}")
    print(f"2-2-1 sigmoid network trained by backprop: XOR accuracy {xor_acc:.0%}")
    print(f"time: {wall:.1f} s; wrote perceptron.png and summary.json to {out}")
    return results


if __name__ == "__main__":
    main()
