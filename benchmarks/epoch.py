"""A full Nielsen epoch — 50,000 images, mini-batches of 10, SGD lr=3.0, 784-30-10 sigmoid — for
tinygrad_nn (eager and captured, with ``functional.quadratic_cost``), the numpy floor, and the
per-example algorithm of Nielsen's network.py.

:class:`PerExampleNetwork` is our own re-implementation of that algorithm, kept faithful to
what makes it slow or fast: images and targets as column vectors, one backprop per example,
nablas summed in Python lists and the weights replaced after each mini-batch, float64 weights
(the original draws them with ``np.random.randn``; the images stay float32, as its loader
gives them, and are promoted at the first product).

Every contender walks the same pre-shuffled data in the same order; the shuffle itself is not
timed.
"""

from __future__ import annotations

import time

import floor
import numpy as np
from contenders import capture_status, tinygrad_loss, tinygrad_model, tinygrad_optimizers
from workloads import CAPTURED, EAGER, FLOOR, LEAN, NIELSEN, one_hot

EPOCH_IMAGES = 50_000
BATCH = 10
NETWORK_PY = "network.py loop"


def _sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


class PerExampleNetwork:
    """Nielsen's network.py training loop: per-example backprop, weights (out, in), biases
    (out, 1), everything as column vectors."""

    def __init__(self, init: list[np.ndarray]) -> None:
        self.weights = [w.astype(np.float64) for w in init[0::2]]
        self.biases = [b.astype(np.float64).reshape(-1, 1) for b in init[1::2]]

    def backprop(self, x, y):
        """∇_b and ∇_w of ½‖a - y‖² for one example."""
        activation, activations, zs = x, [x], []
        for w, b in zip(self.weights, self.biases):
            z = np.dot(w, activation) + b
            zs.append(z)
            activation = _sigmoid(z)
            activations.append(activation)
        grad_b = [None] * len(self.biases)
        grad_w = [None] * len(self.weights)
        s = _sigmoid(zs[-1])
        delta = (activations[-1] - y) * (s * (1 - s))
        grad_b[-1], grad_w[-1] = delta, np.dot(delta, activations[-2].T)
        for layer in range(2, len(self.weights) + 1):
            s = _sigmoid(zs[-layer])
            delta = np.dot(self.weights[-layer + 1].T, delta) * (s * (1 - s))
            grad_b[-layer] = delta
            grad_w[-layer] = np.dot(delta, activations[-layer - 1].T)
        return grad_b, grad_w

    def train_mini_batch(self, mini_batch, lr):
        sum_b = [np.zeros(b.shape) for b in self.biases]
        sum_w = [np.zeros(w.shape) for w in self.weights]
        for x, y in mini_batch:
            gb, gw = self.backprop(x, y)
            sum_b = [s + g for s, g in zip(sum_b, gb)]
            sum_w = [s + g for s, g in zip(sum_w, gw)]
        k = lr / len(mini_batch)
        self.weights = [w - k * g for w, g in zip(self.weights, sum_w)]
        self.biases = [b - k * g for b, g in zip(self.biases, sum_b)]

    def epoch(self, pairs, batch, lr):
        for start in range(0, len(pairs), batch):
            self.train_mini_batch(pairs[start : start + batch], lr)


def epoch_data(x: np.ndarray, y: np.ndarray, images: int, seed: int = 0):
    """The first ``images`` of a fixed shuffle of the first 50,000 training images: as arrays
    (for the batched contenders) and as network.py's list of column-vector pairs."""
    order = np.random.default_rng(seed).permutation(min(len(x), EPOCH_IMAGES))[:images]
    xs, labels = np.ascontiguousarray(x[order]), y[order]
    ys = one_hot(labels)
    pairs = [(xi.reshape(-1, 1), yi.reshape(-1, 1).astype(np.float64)) for xi, yi in zip(xs, ys)]
    return xs, ys, pairs


def runners(
    init: list[np.ndarray], xs: np.ndarray, ys: np.ndarray, pairs, status: dict[str, list[str]]
) -> dict:
    """Name → a function that trains one epoch over the data from ``init`` and returns the
    trained weights (only the time is reported). The captured runners add to ``status`` (by
    contender) whether their step replayed. Their epoch includes the trace and verification
    calls (2 of the 5,000 steps): they are part of training with capture. *captured* wraps
    the loss and backward (``zero_grad`` and ``step`` around it); *keep_grads=False* wraps the
    whole step, the optimizer included."""
    n, lr = len(xs), NIELSEN.lr

    def run_floor():
        net = floor.NielsenFloor(NIELSEN, init, BATCH)
        step = net.step
        for k in range(0, n, BATCH):
            step(xs[k : k + BATCH], ys[k : k + BATCH])
        return net.params

    def run_tinygrad(captured: bool, keep_grads: bool = True):
        import tinygrad_nn as tg

        model = tinygrad_model(NIELSEN, init)
        opt = tinygrad_optimizers()[0](list(model.parameters()), lr=lr)
        loss_fn = tinygrad_loss(NIELSEN, model)
        if not keep_grads:
            run = tg.capture(loss_fn, optimizer=opt, keep_grads=False)
            for k in range(0, n, BATCH):
                run(xs[k : k + BATCH], ys[k : k + BATCH])
            status.setdefault(LEAN, []).append(capture_status(run))
        elif captured:
            run = tg.capture(loss_fn)
            for k in range(0, n, BATCH):
                opt.zero_grad()
                run(xs[k : k + BATCH], ys[k : k + BATCH])
                opt.step()
            status.setdefault(CAPTURED, []).append(capture_status(run))
        else:
            for k in range(0, n, BATCH):
                opt.zero_grad()
                loss_fn(xs[k : k + BATCH], ys[k : k + BATCH]).backward()
                opt.step()
        return [p.data for p in model.parameters()]

    def run_network_py():
        net = PerExampleNetwork(init)
        net.epoch(pairs, BATCH, lr)
        return net.weights

    return {
        FLOOR: run_floor,
        EAGER: lambda: run_tinygrad(False),
        CAPTURED: lambda: run_tinygrad(True),
        LEAN: lambda: run_tinygrad(True, keep_grads=False),
        NETWORK_PY: run_network_py,
    }


def time_epochs(fns: dict, repeats: int) -> tuple[dict[str, list[float]], dict[str, list[float]]]:
    """Wall-clock and calling-thread CPU seconds per epoch for each runner, interleaved over
    ``repeats`` rounds."""
    wall: dict[str, list[float]] = {name: [] for name in fns}
    cpu: dict[str, list[float]] = {name: [] for name in fns}
    names = list(fns)
    for r in range(repeats):
        for name in names[r % len(names) :] + names[: r % len(names)]:
            c0, t0 = time.thread_time(), time.perf_counter()
            fns[name]()
            wall[name].append(time.perf_counter() - t0)
            cpu[name].append(time.thread_time() - c0)
    return wall, cpu
