"""Two concentric rings, the Keras ``make_circles`` example: no straight line separates them, a
small ReLU network bends its decision boundary around the inner ring.

The network is 2-4-6-6-4-1, ReLU in the hidden layers and a sigmoid on the output, initialised as
Keras does, trained with binary cross-entropy and Adam (learning rate 0.01, mini-batches of 32)
for 50 epochs on 800 points; 200 more are held out for testing.

Writes into ``--out``: ``decision_boundary.png``, ``decision_boundary.gif`` (the boundary every
2 epochs), ``learning_curves.png``, ``model.safetensors`` and ``summary.json``.
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # small matrices: one BLAS thread is fastest

import argparse
import json
import time
from typing import Any

import numpy as np
from _cli import integer, non_negative_number, out_dir

import tinygrad_nn as tg
from tinygrad_nn import io, nn, plots
from tinygrad_nn.data import make_circles
from tinygrad_nn.optim import Adam
from tinygrad_nn.train import PredictionRecorder, evaluate, fit

SIZES = (2, 4, 6, 6, 4, 1)


def build_model() -> nn.Sequential:
    """2-4-6-6-4-1: ReLU hidden layers, a sigmoid output; each Dense layer initialised as Keras
    does (Glorot-uniform weights, zero biases), which keeps so narrow a ReLU net from starting
    with dead units."""
    layers: list[nn.Module] = []
    for n_in, n_out in zip(SIZES[:-2], SIZES[1:-1]):
        layers += [nn.Dense(n_in, n_out), nn.ReLU()]
    layers += [nn.Dense(SIZES[-2], SIZES[-1]), nn.Sigmoid()]
    for layer in layers:
        if isinstance(layer, nn.Dense):
            nn.init.xavier_uniform_(layer.weight)
            nn.init.zeros_(layer.bias)
    return nn.Sequential(*layers)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--epochs",
        type=integer(1),
        help="epochs, >= 1 (default 50, or 5 with --quick; an explicit --epochs wins over --quick)",
    )
    parser.add_argument("--seed", type=integer(0), default=0, help="seed, >= 0 (default 0)")
    parser.add_argument(
        "--samples", type=integer(2), default=1000, help="points in all, >= 2 (80%% train)"
    )
    parser.add_argument(
        "--noise",
        type=non_negative_number,
        default=0.1,
        help="std of the noise on each point, >= 0 (default 0.1)",
    )
    parser.add_argument("--out", default="out/circles", help="where to write (default out/circles)")
    parser.add_argument(
        "--quick", action="store_true", help="5 epochs (seconds) unless --epochs is given"
    )
    args = parser.parse_args(argv)
    if args.epochs is not None:
        epochs = args.epochs
    else:
        epochs = 5 if args.quick else 50
    out = out_dir(parser, args.out)
    started = time.perf_counter()

    tg.manual_seed(args.seed)
    x, y = make_circles(args.samples, noise=args.noise, factor=0.5, seed=args.seed)
    order = np.random.default_rng(args.seed).permutation(len(x))
    cut = int(0.8 * len(x))
    x_train, y_train = x[order[:cut]], y[order[:cut]]
    x_test, y_test = x[order[cut:]], y[order[cut:]]

    model = build_model()
    grid = plots.decision_grid(x, resolution=120)
    recorder = PredictionRecorder(grid.points, every=2)
    train_start = time.perf_counter()
    history = fit(
        model,
        "bce",
        Adam(model.parameters(), lr=0.01),
        x_train,
        y_train,
        epochs=epochs,
        batch_size=32,
        validation_data=(x_test, y_test),
        callbacks=[recorder],
        seed=args.seed,
    )
    train_seconds = time.perf_counter() - train_start
    test = evaluate(model, "bce", x_test, y_test)
    train = evaluate(model, "bce", x_train, y_train)

    io.save(model.state_dict(), out / "model.safetensors")
    title = f"2-4-6-6-4-1 after {epochs} epochs: test accuracy {test['accuracy']:.1%}"
    plots.plot_decision_boundary(model, x, y, out / "decision_boundary.png", title=title)
    plots.animate_decision_boundary(
        recorder.snapshots, x, y, grid, out / "decision_boundary.gif", fps=5
    )
    plots.plot_history(history, out / "learning_curves.png", val_label="test")
    wall = time.perf_counter() - started
    summary = {
        "architecture": "-".join(map(str, SIZES)),
        "loss": "binary cross-entropy",
        "optimizer": "Adam lr=0.01, batch 32",
        "epochs": epochs,
        "seed": args.seed,
        "quick": args.quick,
        "train_points": len(x_train),
        "test_points": len(x_test),
        "train_accuracy": train["accuracy"],
        "test_accuracy": test["accuracy"],
        "test_loss": test["loss"],
        "history": history.to_dict(),
        "train_seconds": train_seconds,
        "wall_seconds": wall,
        "files": [
            "decision_boundary.png",
            "decision_boundary.gif",
            "learning_curves.png",
            "model.safetensors",
        ],
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(f"\n== circles: {summary['architecture']} ReLU + sigmoid, BCE, Adam, {epochs} epochs")
    print(
        f"accuracy: train {train['accuracy']:.2%} ({len(x_train)} points), "
        f"test {test['accuracy']:.2%} ({len(x_test)} points)"
    )
    print(f"time: {wall:.1f} s in all, {train_seconds:.1f} s training")
    print(f"wrote {', '.join(summary['files'])} and summary.json to {out}")
    return summary


if __name__ == "__main__":
    main()
