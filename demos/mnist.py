"""Train the textbook MNIST networks and check their published test accuracies.

Presets:

- ``nielsen``: Michael Nielsen's network.py from "Neural Networks and Deep Learning", chapter 1:
  784-30-10 sigmoid neurons, weights and biases drawn from N(0, 1), the quadratic cost
  C = 1/(2n) Σₓ ‖y(x) − a‖², plain SGD with η = 3.0 on mini-batches of 10, 30 epochs over the
  50,000-image training split, the 10,000 test images evaluated after every epoch and printed as
  ``Epoch j: k / 10000``. The book reports 95.42% at its best epoch.
- ``nielsen100``: the same with 100 hidden neurons; the book reports 96.59%.
- ``3b1b``: 3Blue1Brown's network of "But what is a neural network?": 784-16-16-10 sigmoid.
  The videos give no training recipe; this one was chosen for working well here (best of the
  few tried, all 95.0-95.3%): the 10 outputs as logits of a softmax with the cross-entropy cost,
  Adam from learning rate 3e-3 decayed to 0 along a cosine over 30 epochs, mini-batches of 32,
  all 60,000 training images. (Nielsen's recipe on this net reached 93.9%.)
- ``default``: a modern small net: 784-128-64-10 ReLU, softmax cross-entropy, Adam (lr 1e-3),
  mini-batches of 32, 5 epochs on all 60,000 training images.

Writes into ``--out``: ``model.safetensors`` (load with ``tinygrad_nn.io.load``),
``learning_curves.png``, ``digits.png`` (test digits, misclassified first), ``weights.png``
(the first layer's weights as images) and ``summary.json``.

Run ``python demos/mnist.py --preset nielsen``; ``--quick`` trains one epoch on a few thousand
images in seconds. The data is looked up as ``tinygrad_nn.data.load_mnist`` does (``--data``,
then ``$TINYGRAD_NN_DATA``, then the user cache, then a download).
"""

from __future__ import annotations

import os

# One BLAS thread: with these small matrices a second thread gains little, and on a busy machine
# it spins and waits (measured here: 0.8 ms vs 7 ms per step of the default net).
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse
import json
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
from _cli import integer, out_dir

import tinygrad_nn as tg
from tinygrad_nn import io, nn, plots
from tinygrad_nn.data import MNISTNotFoundError, load_mnist
from tinygrad_nn.data.mnist import FILES as MNIST_FILES
from tinygrad_nn.optim import SGD, Adam, CosineAnnealingLR
from tinygrad_nn.train import Callback, LRSchedulerStep, fit, predict


@dataclass(frozen=True)
class Preset:
    description: str
    sizes: tuple[int, ...]
    activation: str  # "sigmoid" or "relu"
    loss: str  # a name fit() understands
    optimizer: str  # "sgd" or "adam"
    lr: float
    cosine: bool  # decay the learning rate to 0 along a cosine over the epochs
    batch_size: int
    epochs: int
    seed: int
    nielsen_split: bool  # train on the first 50,000 images only, as network.py does
    normal_init: bool  # N(0, 1) weights and biases, as network.py does
    output_sigmoid: bool  # sigmoid on the outputs (else they are logits for the softmax)
    published: float | None
    reference: str


NIELSEN = Preset(
    description="784-30-10 sigmoid, N(0,1) init, quadratic cost, SGD eta=3.0, batch 10",
    sizes=(784, 30, 10),
    activation="sigmoid",
    loss="quadratic",
    optimizer="sgd",
    lr=3.0,
    cosine=False,
    batch_size=10,
    epochs=30,
    seed=2,
    nielsen_split=True,
    normal_init=True,
    output_sigmoid=True,
    published=0.9542,
    reference="Nielsen, Neural Networks and Deep Learning, ch. 1: 95.42%",
)

PRESETS = {
    "nielsen": NIELSEN,
    "nielsen100": replace(
        NIELSEN,
        description="784-100-10 sigmoid, N(0,1) init, quadratic cost, SGD eta=3.0, batch 10",
        sizes=(784, 100, 10),
        seed=8,
        published=0.9659,
        reference="Nielsen, Neural Networks and Deep Learning, ch. 1: 96.59%",
    ),
    "3b1b": Preset(
        description="784-16-16-10 sigmoid, softmax cross-entropy, Adam lr=3e-3 cosine-decayed, "
        "batch 32",
        sizes=(784, 16, 16, 10),
        activation="sigmoid",
        loss="cross_entropy",
        optimizer="adam",
        lr=3e-3,
        cosine=True,
        batch_size=32,
        epochs=30,
        seed=0,
        nielsen_split=False,
        normal_init=False,
        output_sigmoid=False,
        published=None,
        reference="3Blue1Brown, But what is a neural network? (no training recipe given)",
    ),
    "default": Preset(
        description="784-128-64-10 ReLU, softmax cross-entropy, Adam lr=1e-3, batch 32",
        sizes=(784, 128, 64, 10),
        activation="relu",
        loss="cross_entropy",
        optimizer="adam",
        lr=1e-3,
        cosine=False,
        batch_size=32,
        epochs=5,
        seed=0,
        nielsen_split=False,
        normal_init=False,
        output_sigmoid=False,
        published=None,
        reference="target: >= 97.5% in at most 5 epochs",
    ),
}

QUICK_TRAIN, QUICK_TEST = 3000, 1000


def build_model(preset: Preset) -> nn.Sequential:
    """Dense layers of ``preset.sizes`` with the preset's activation between them."""
    act = {"sigmoid": nn.Sigmoid, "relu": nn.ReLU}[preset.activation]
    layers: list[nn.Module] = []
    pairs = list(zip(preset.sizes[:-1], preset.sizes[1:]))
    for i, (n_in, n_out) in enumerate(pairs):
        layers.append(nn.Dense(n_in, n_out))
        if i < len(pairs) - 1:
            layers.append(act())
        elif preset.output_sigmoid:
            layers.append(nn.Sigmoid())
    model = nn.Sequential(*layers)
    if preset.normal_init:
        for p in model.parameters():
            nn.init.normal_(p, 0.0, 1.0)
    return model


class NielsenLine(Callback):
    """Print ``Epoch j: k / n`` after every epoch (j from 0), as network.py does."""

    def __init__(self, n_test: int) -> None:
        self.n_test = n_test

    def on_epoch_end(self, epoch: int, logs: dict[str, float]) -> None:
        correct = round(logs["val_accuracy"] * self.n_test)
        print(f"Epoch {epoch}: {correct} / {self.n_test}", flush=True)


def load(preset: Preset, data: str | None, quick: bool) -> tuple[Any, Any, Any, Any]:
    try:
        splits = load_mnist(data, nielsen_split=preset.nielsen_split)
    except MNISTNotFoundError as e:
        sys.exit(f"mnist.py: {e}")
    (x_train, y_train), (x_test, y_test) = splits[0], splits[-1]
    if quick:
        x_train, y_train = x_train[:QUICK_TRAIN], y_train[:QUICK_TRAIN]
        x_test, y_test = x_test[:QUICK_TEST], y_test[:QUICK_TEST]
    return x_train, y_train, x_test, y_test


def check_data(parser: argparse.ArgumentParser, path: str) -> None:
    """An explicit ``--data`` must be a directory holding the four MNIST files (in it or in its
    ``mnist/``, gzipped or not), else an argparse error names it: otherwise ``load_mnist`` would
    quietly go on to ``$TINYGRAD_NN_DATA`` and the cache."""
    data = Path(path)
    if not data.exists():
        parser.error(f"--data {data}: no such directory")
    if not data.is_dir():
        parser.error(f"--data {data}: not a directory (name the directory holding the MNIST files)")
    missing = [
        name
        for name in MNIST_FILES
        if not any(
            (where / file).is_file()
            for where in (data, data / "mnist")
            for file in (name, f"{name}.gz")
        )
    ]
    if missing:
        parser.error(
            f"--data {data}: no {', '.join(m + '[.gz]' for m in missing)} there (nor in "
            f"{data / 'mnist'})"
        )


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(
        description="Train a textbook MNIST network and compare its test accuracy with the "
        "published one.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="presets:\n"
        + "\n".join(f"  {k:<11} {p.description}; {p.reference}" for k, p in PRESETS.items()),
    )
    parser.add_argument("--preset", choices=list(PRESETS), default="default")
    parser.add_argument(
        "--epochs",
        type=integer(1),
        help="override the preset's number of epochs, >= 1 (an explicit --epochs wins over "
        "--quick)",
    )
    parser.add_argument(
        "--seed",
        type=integer(0),
        help="override the preset's seed (of the initial weights and shuffling), >= 0",
    )
    parser.add_argument(
        "--data",
        help="directory holding the MNIST IDX files (else $TINYGRAD_NN_DATA, the user cache, "
        "a download); it must exist and hold all four",
    )
    parser.add_argument("--out", default="out/mnist", help="where to write (default out/mnist)")
    parser.add_argument(
        "--quick",
        action="store_true",
        help=f"1 epoch (unless --epochs is given) on {QUICK_TRAIN} training and {QUICK_TEST} "
        "test images (seconds)",
    )
    args = parser.parse_args(argv)
    preset = PRESETS[args.preset]
    epochs = args.epochs if args.epochs is not None else (1 if args.quick else preset.epochs)
    seed = preset.seed if args.seed is None else args.seed
    if args.data is not None:
        check_data(parser, args.data)
    out = out_dir(parser, args.out)
    started = time.perf_counter()

    try:
        x_train, y_train, x_test, y_test = load(preset, args.data, args.quick)
    except ValueError as e:  # a file of the wrong checksum, format or size
        if args.data is not None:
            parser.error(f"--data {args.data}: {e}")
        sys.exit(f"mnist.py: {e}")
    tg.manual_seed(seed)
    model = build_model(preset)
    if preset.optimizer == "sgd":
        optimizer = SGD(model.parameters(), lr=preset.lr)
    else:
        optimizer = Adam(model.parameters(), lr=preset.lr)
    print(f"preset {args.preset}: {preset.description}, {epochs} epochs")
    print(f"training on {len(x_train):,} images, testing on {len(x_test):,} after every epoch")

    is_nielsen = args.preset.startswith("nielsen")
    callbacks: list[Callback] = [NielsenLine(len(x_test))] if is_nielsen else []
    if preset.cosine:
        callbacks.append(LRSchedulerStep(CosineAnnealingLR(optimizer, T_max=epochs)))
    train_start = time.perf_counter()
    history = fit(
        model,
        preset.loss,
        optimizer,
        x_train,
        y_train,
        epochs=epochs,
        batch_size=preset.batch_size,
        validation_data=(x_test, y_test),
        verbose=0 if is_nielsen else 1,
        callbacks=callbacks,
        capture=True,  # record the step once, then replay it (tinygrad_nn.capture)
    )
    train_seconds = time.perf_counter() - train_start

    accuracy = history["val_accuracy"]
    best = int(np.argmax(accuracy))
    io.save(model.state_dict(), out / "model.safetensors")
    outputs = predict(model, x_test)
    name = f"{args.preset} ({'-'.join(map(str, preset.sizes))})"
    plots.plot_history(history, out / "learning_curves.png", title=name, val_label="test")
    plots.plot_digits(x_test, y_test, outputs, out / "digits.png", n=40, max_wrong=20)
    plots.plot_first_layer(model, out / "weights.png", neurons=48)
    wall = time.perf_counter() - started
    summary = {
        "preset": args.preset,
        "description": preset.description,
        "architecture": "-".join(map(str, preset.sizes)),
        "epochs": epochs,
        "batch_size": preset.batch_size,
        "seed": seed,
        "quick": args.quick,
        "train_images": len(x_train),
        "test_images": len(x_test),
        "test_accuracy": accuracy,
        "test_correct": [round(a * len(x_test)) for a in accuracy],
        "train_loss_running_mean": history["loss"],
        "best_accuracy": accuracy[best],
        "best_epoch": best + 1,
        "final_accuracy": accuracy[-1],
        "published_accuracy": preset.published,
        "reference": preset.reference,
        "epoch_seconds": history["time"],
        "train_seconds": train_seconds,
        "wall_seconds": wall,
        "files": ["model.safetensors", "learning_curves.png", "digits.png", "weights.png"],
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")

    published = f"; published: {preset.published:.2%}" if preset.published else ""
    if is_nielsen:  # network.py counts epochs from 0
        published += f' (the best is the line "Epoch {best}" above)'
    print(f"\n== {name}: {preset.description}")
    print(
        f"best test accuracy {accuracy[best]:.2%} after epoch {best + 1} of {epochs}, "
        f"final {accuracy[-1]:.2%}{published}"
    )
    print(
        f"time: {wall:.1f} s in all, {train_seconds:.1f} s training "
        f"({train_seconds / epochs:.2f} s per epoch, test evaluation included)"
    )
    print(f"wrote {', '.join(summary['files'])} and summary.json to {out}")
    return summary


if __name__ == "__main__":
    main()
