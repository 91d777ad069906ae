"""Gradient descent on two surfaces, with a learning rate too small, a good one, and one too large.

Each step is p ← p − η ∇f(p), the gradient computed by the framework: p is a Tensor with
``requires_grad=True``, f(p) is built from tensor operations and ``f.backward()`` fills
``p.grad``.

- The round bowl f(x, y) = x² + y²: the gradient points straight at the minimum. Along each axis
  a step multiplies the distance by (1 − 2η): tiny η crawls, η = 0.5 would land in one step,
  and η > 1 overshoots further every step and diverges.
- The narrow valley f(x, y) = x² + 20y²: curvatures 2 and 40. η must stay below 2/40 = 0.05 or
  the steep direction diverges, and at such an η the flat direction moves slowly: the path
  zig-zags across the valley while it creeps along it.

Writes ``gradient_descent.png`` (the paths on the contour lines) and ``summary.json``.
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse
import json
import time
from collections.abc import Callable
from typing import Any

import numpy as np
from _cli import integer, out_dir

import tinygrad_nn as tg

Surface = Callable[[tg.Tensor], tg.Tensor]


def bowl(p: tg.Tensor) -> tg.Tensor:
    """f(x, y) = x² + y²."""
    return (p * p).sum()


def valley(p: tg.Tensor) -> tg.Tensor:
    """f(x, y) = x² + 20y²."""
    return (p * p * tg.Tensor([1.0, 20.0], dtype=np.float64)).sum()


Run = tuple[float, str, tuple[float, float]]  # learning rate, verdict, start

# On the bowl every path runs along the line through its start and the minimum, so each
# learning rate starts from a different point to keep the three paths apart.
SURFACES: dict[str, tuple[Surface, str, list[Run]]] = {
    "bowl": (
        bowl,
        "x² + y²",
        [
            (0.02, "too small", (-4.0, 3.0)),
            (0.2, "good", (4.0, 3.0)),
            (1.02, "too large", (0.4, -1.4)),
        ],
    ),
    "valley": (
        valley,
        "x² + 20y²",
        [
            (0.004, "too small", (-4.5, 1.5)),
            (0.045, "good", (-4.5, 1.5)),
            (0.051, "too large", (-4.5, 1.5)),
        ],
    ),
}


def descend(f: Surface, start: tuple[float, float], lr: float, steps: int) -> np.ndarray:
    """The points visited by ``steps`` steps of gradient descent from ``start`` (fewer if it
    blows up), as an array (k, 2)."""
    p = tg.Tensor(np.array(start, dtype=np.float64), requires_grad=True)
    path = [p.data.copy()]
    for _ in range(steps):
        value = f(p)
        p.grad = None
        value.backward()  # p.grad = ∇f(p)
        p.data -= lr * p.grad
        path.append(p.data.copy())
        if not np.all(np.abs(p.data) < 1e3):
            break
    return np.array(path)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--steps",
        type=integer(1),
        help="steps per run, >= 1 (default 50, or 20 with --quick; an explicit --steps wins "
        "over --quick)",
    )
    parser.add_argument("--out", default="out/gradient_descent", help="where to write")
    parser.add_argument(
        "--quick", action="store_true", help="20 steps per run unless --steps is given"
    )
    args = parser.parse_args(argv)
    if args.steps is not None:
        steps = args.steps
    else:
        steps = 20 if args.quick else 50
    out = out_dir(parser, args.out)
    started = time.perf_counter()

    from matplotlib.figure import Figure

    fig = Figure(figsize=(12, 5), layout="constrained")
    axes = fig.subplots(1, 2)
    results: dict[str, Any] = {}
    colors = {"too small": "#2ca02c", "good": "#1f77b4", "too large": "#d62728"}
    for ax, (name, (f, formula, runs)) in zip(axes, SURFACES.items()):
        print(f"f(x, y) = {formula}, {steps} steps:")
        xs = np.linspace(-5, 5, 300)
        ys = np.linspace(-3.5, 3.5, 300)
        xx, yy = np.meshgrid(xs, ys)
        zz = xx**2 + yy**2 if name == "bowl" else xx**2 + 20 * yy**2
        ax.contour(
            xx, yy, zz, levels=np.geomspace(0.05, zz.max(), 14), colors="0.6", linewidths=0.8
        )
        results[name] = []
        for lr, verdict, start in runs:
            path = descend(f, start, lr, steps)
            final = float(f(tg.Tensor(path[-1])).item())
            diverged = len(path) <= steps or final > float(f(tg.Tensor(np.array(start))))
            state = "diverged" if diverged else f"f = {final:.3g} after {len(path) - 1} steps"
            print(f"  η = {lr:<6} ({verdict:>9}) from {start}: {state}")
            results[name].append(
                {
                    "lr": lr,
                    "verdict": verdict,
                    "start": start,
                    "final_f": final,
                    "diverged": bool(diverged),
                    "steps": len(path) - 1,
                    "path": path.tolist(),
                }
            )
            shown = path[np.all(np.abs(path) < 6, axis=1)]
            outcome = "diverges" if diverged else f"f → {final:.2g}"
            ax.plot(
                shown[:, 0],
                shown[:, 1],
                "-o",
                ms=2.5,
                lw=1.2,
                color=colors[verdict],
                label=f"η = {lr} ({verdict}): {outcome}",
            )
            ax.plot(*start, "*", color=colors[verdict], ms=13, mec="k", zorder=4)
        ax.plot(0, 0, "kx", ms=9)
        ax.set_xlim(-5, 5)
        ax.set_ylim(-3.5, 3.5)
        ax.set_aspect("equal")
        ax.set_title(f"f(x, y) = {formula}: {steps} steps of p ← p − η∇f(p) from the ★")
        ax.legend(loc="lower right", fontsize=8.5, framealpha=0.9)
    fig.savefig(out / "gradient_descent.png", dpi=100)
    wall = time.perf_counter() - started
    results["wall_seconds"] = wall
    (out / "summary.json").write_text(json.dumps(results, indent=2) + "\n")
    print("\n== gradient descent")
    for name in SURFACES:
        runs = [
            f"η={r['lr']} " + ("diverges" if r["diverged"] else f"f={r['final_f']:.2g}")
            for r in results[name]
        ]
        print(f"{SURFACES[name][1]:>10}: " + "; ".join(runs))
    print(f"time: {wall:.1f} s; wrote gradient_descent.png and summary.json to {out}")
    return results


if __name__ == "__main__":
    main()
