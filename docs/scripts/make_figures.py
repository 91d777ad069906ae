"""Render the tutorial's pictures into docs/images/ (or --out DIR), computed with tinygrad_nn.

    python docs/scripts/make_figures.py            # writes docs/images/*.png
    python docs/scripts/make_figures.py --out /tmp  # anywhere else
    python docs/scripts/make_figures.py --no-mnist  # only the figures that need no MNIST

The MNIST figures train a small network for one epoch (about a minute at most); they are left
out when MNIST is not found locally (see tinygrad_nn.data.load_mnist; nothing is downloaded).

Each figure is a function that returns a matplotlib Figure, made without pyplot (no display
needed). Every derivative and every gradient-descent step below comes from the framework's
backward pass, not from a formula typed in by hand.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

import tinygrad_nn as tg
from tinygrad_nn import Tensor

IMAGES = Path(__file__).resolve().parents[1] / "images"
BLUE, ORANGE, GREEN, RED = "#3c6ee8", "#e8853c", "#2ca02c", "#d62728"


def _value_and_grad(fn, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """fn(x) and dfn/dx at every point of x, through backward (fn acts elementwise)."""
    t = Tensor(x, dtype=np.float64, requires_grad=True)
    y = fn(t)
    y.backward(np.ones_like(x))
    return y.numpy(), t.grad


def activations() -> Figure:
    """Step, sigmoid, tanh and ReLU, with their derivatives dashed."""
    z = np.linspace(-5, 5, 401)
    fns = [
        ("step", lambda t: t.step()),
        ("sigmoid σ(z)", lambda t: t.sigmoid()),
        ("tanh(z)", lambda t: t.tanh()),
        ("ReLU max(z, 0)", lambda t: t.relu()),
    ]
    fig = Figure(figsize=(10, 2.6), layout="constrained")
    axes = fig.subplots(1, 4, sharex=True)
    for ax, (title, fn) in zip(axes, fns):
        a, da = _value_and_grad(fn, z)
        ax.plot(z, a, color=BLUE, lw=2, label="a = f(z)")
        ax.plot(z, da, color=ORANGE, lw=1.5, ls="--", label="f′(z)")
        ax.axhline(0, color="0.6", lw=0.6)
        ax.axvline(0, color="0.6", lw=0.6)
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("z = w·x + b")
        ax.set_ylim(-1.2, 1.6 if title != "ReLU max(z, 0)" else 3)
    axes[0].legend(loc="upper left", fontsize=8, frameon=False)
    return fig


def _descend(f, start: tuple[float, float], lr: float, steps: int) -> np.ndarray:
    """The path of plain gradient descent p ← p − lr·∇f(p), the gradient from backward."""
    p = Tensor(np.array(start, dtype=np.float64), requires_grad=True)
    path = [p.numpy().copy()]
    for _ in range(steps):
        p.grad = None
        f(p).backward()
        p.data -= lr * p.grad
        path.append(p.numpy().copy())
        if np.abs(p.data).max() > 1e3:
            break
    return np.array(path)


def gradient_descent() -> Figure:
    """Paths on C(v) = v₁² + 5·v₂² for a learning rate too small, good and too large."""

    def cost(v: Tensor) -> Tensor:
        return (v * Tensor([1.0, 5.0], dtype=np.float64) * v).sum()

    start = (-4.0, 1.6)
    cases = [
        (0.01, "η = 0.01: too small"),
        (0.08, "η = 0.08: good"),
        (0.205, "η = 0.205: too large"),
    ]
    g1, g2 = np.meshgrid(np.linspace(-5, 5, 200), np.linspace(-2.5, 2.5, 120))
    c = g1**2 + 5 * g2**2
    fig = Figure(figsize=(10, 2.8), layout="constrained")
    axes = fig.subplots(1, 3, sharey=True)
    for ax, (lr, title) in zip(axes, cases):
        path = _descend(cost, start, lr, steps=25)
        ax.contour(g1, g2, c, levels=np.geomspace(0.3, 60, 9), colors="0.75", linewidths=0.8)
        ax.plot(path[:, 0], path[:, 1], "o-", color=RED, ms=3, lw=1.2)
        ax.plot(*start, "ko", ms=5)
        ax.plot(0, 0, "*", color=GREEN, ms=11)
        ax.set_xlim(-5, 5)
        ax.set_ylim(-2.5, 2.5)
        ax.set_title(f"{title}\nC after 25 steps: {cost(Tensor(path[-1])).item():.3g}", fontsize=9)
        ax.set_xlabel("v₁")
    axes[0].set_ylabel("v₂")
    return fig


def saturated_neuron(cost: str, epochs: int = 300, lr: float = 0.15) -> tuple[list, list]:
    """Nielsen's experiment: one sigmoid neuron, input 1, target 0, starting at w = b = 2
    (output 0.98, badly wrong and saturated); plain gradient descent on one cost."""
    w = Tensor(2.0, dtype=np.float64, requires_grad=True)
    b = Tensor(2.0, dtype=np.float64, requires_grad=True)
    x, y = 1.0, 0.0
    costs, outputs = [], []
    for _ in range(epochs):
        a = (w * x + b).sigmoid()
        if cost == "quadratic":
            c = (a - y) ** 2 / 2
        else:
            c = -(y * a.log() + (1 - y) * (1 - a).log())
        costs.append(c.item())
        outputs.append(a.item())
        w.grad = b.grad = None
        c.backward()
        w.data -= lr * w.grad
        b.data -= lr * b.grad
    return costs, outputs


def cost_curves() -> Figure:
    """The saturated neuron's output and cost over training, quadratic vs cross-entropy."""
    fig = Figure(figsize=(10, 3), layout="constrained")
    ax_a, ax_c = fig.subplots(1, 2)
    for name, color in (("quadratic", ORANGE), ("cross-entropy", BLUE)):
        costs, outputs = saturated_neuron(name)
        ax_a.plot(outputs, color=color, lw=2, label=name)
        ax_c.plot(costs, color=color, lw=2, label=name)
    ax_a.set_title("output a of one sigmoid neuron (target y = 0)", fontsize=10)
    ax_a.set_xlabel("epoch")
    ax_a.set_ylim(0, 1)
    ax_a.legend(frameon=False)
    ax_c.set_title("cost", fontsize=10)
    ax_c.set_xlabel("epoch")
    ax_c.set_yscale("log")
    ax_c.legend(frameon=False)
    return fig


def mnist_figures(out: Path) -> list[Path]:
    """Test digits with a trained 784-16-16-10 network's guesses (mistakes first), and its first
    layer's weights as 3Blue1Brown draws them. Needs MNIST on disk."""
    from tinygrad_nn import nn, optim, plots
    from tinygrad_nn.data import load_mnist
    from tinygrad_nn.train import fit, predict

    (x_train, y_train), (x_test, y_test) = load_mnist(download=False, progress=False)
    tg.manual_seed(0)
    model = nn.Sequential(
        nn.Dense(784, 16), nn.Sigmoid(), nn.Dense(16, 16), nn.Sigmoid(), nn.Dense(16, 10)
    )
    opt = optim.Adam(model.parameters(), lr=3e-3)
    fit(model, "cross_entropy", opt, x_train, y_train, epochs=1, batch_size=32, verbose=0)
    guesses = predict(model, x_test).argmax(axis=1)
    accuracy = (guesses == y_test).mean()
    digits = out / "mnist_digits.png"
    title = f"784-16-16-10 after one epoch: {accuracy:.1%} right"
    plots.plot_digits(x_test, y_test, guesses, n=30, max_wrong=10, title=title).savefig(
        digits, dpi=80
    )
    weights = out / "mnist_first_layer.png"
    plots.plot_first_layer(
        model, title="the 16 first-layer neurons' weights (blue +, red −)"
    ).savefig(weights, dpi=80)
    return [digits, weights]


FIGURES = {
    "activations.png": activations,
    "gradient_descent_lr.png": gradient_descent,
    "cost_curves.png": cost_curves,
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=IMAGES, help="directory for the PNGs")
    parser.add_argument("--no-mnist", action="store_true", help="skip the MNIST figures")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    tg.manual_seed(0)
    paths = []
    for name, make in FIGURES.items():
        paths.append(args.out / name)
        make().savefig(paths[-1], dpi=90)
    if not args.no_mnist:
        from tinygrad_nn.data import MNISTNotFoundError

        try:
            paths += mnist_figures(args.out)
        except MNISTNotFoundError:
            print("MNIST not found: the MNIST figures were left out")
    for path in paths:
        print(f"{path}  {path.stat().st_size // 1024} KB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
