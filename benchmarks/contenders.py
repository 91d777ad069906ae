"""Every contender as a builder: ``build(net, init, batches) -> Trainer``.

A :class:`Trainer`'s ``step()`` is one training step — forward, loss, backward, parameter
update — on the next batch of the shared list (cycled), and ``params()`` returns copies of the
parameters in the canonical order and layout of :mod:`workloads`, so that contenders can be
checked against the floor. Here: the numpy floor and tinygrad_nn; the peers are in
:mod:`peers`, each present only if it imports.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable

import floor
import numpy as np
import peers
from workloads import ADAM_BETAS, ADAM_EPS, Batch, Net, Trainer

Builder = Callable[[Net, list[np.ndarray], list[Batch]], Trainer]


def build_floor(net: Net, init: list[np.ndarray], batches: list[Batch]) -> Trainer:
    model = floor.build(net, init, len(batches[0].x))
    if net.key == "nielsen":
        data = itertools.cycle([(b.x, b.onehot) for b in batches])
    else:
        data = itertools.cycle([(b.x, b.labels) for b in batches])
    step = model.step

    def train_step() -> float:
        x, y = next(data)
        return step(x, y)

    return Trainer(train_step, lambda: [p.copy() for p in model.params])


# ---------------------------------------------------------------------- tinygrad_nn


class _FallbackSGD:
    """FALLBACK, used only while ``tinygrad_nn.optim`` cannot be imported: plain SGD by hand."""

    def __init__(self, params, lr):
        self.params, self.lr = list(params), lr

    def zero_grad(self):
        for p in self.params:
            p.grad = None

    def step(self):
        for p in self.params:
            p.data -= self.lr * p.grad


class _FallbackAdam(_FallbackSGD):
    """FALLBACK, used only while ``tinygrad_nn.optim`` cannot be imported: PyTorch's Adam."""

    def __init__(self, params, lr):
        super().__init__(params, lr)
        self.m = [np.zeros_like(p.data) for p in self.params]
        self.v = [np.zeros_like(p.data) for p in self.params]
        self.t = 0

    def step(self):
        (b1, b2), self.t = ADAM_BETAS, self.t + 1
        size = self.lr / (1 - b1**self.t)
        c2 = np.sqrt(1 - b2**self.t)
        for p, m, v in zip(self.params, self.m, self.v):
            m += (1 - b1) * (p.grad - m)
            v *= b2
            v += (1 - b2) * p.grad * p.grad
            p.data -= size * m / (np.sqrt(v) / c2 + ADAM_EPS)


def tinygrad_optimizers() -> tuple[type, type, str]:
    """(SGD, Adam, a note): tinygrad_nn's own, or the marked fallback while they are missing."""
    try:
        from tinygrad_nn.optim import SGD, Adam
    except ImportError:
        return _FallbackSGD, _FallbackAdam, "tinygrad_nn.optim missing: hand-written update"
    return SGD, Adam, "tinygrad_nn.optim"


def tinygrad_model(net: Net, init: list[np.ndarray]):
    from tinygrad_nn import nn

    layers = []
    last = len(net.sizes) - 2
    for i, (n_in, n_out) in enumerate(zip(net.sizes[:-1], net.sizes[1:])):
        dense = nn.Dense(n_in, n_out)
        np.copyto(dense.weight.data, init[2 * i])
        np.copyto(dense.bias.data, init[2 * i + 1])
        layers.append(dense)
        if net.activation == "sigmoid":
            layers.append(nn.Sigmoid())
        elif i < last:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


def build_tinygrad(net: Net, init: list[np.ndarray], batches: list[Batch]) -> Trainer:
    import tinygrad_nn as tg
    from tinygrad_nn.nn import functional as F

    model = tinygrad_model(net, init)
    params = list(model.parameters())
    SGD, Adam, note = tinygrad_optimizers()
    if net.key == "nielsen":
        opt = SGD(params, lr=net.lr)
        data = itertools.cycle([(tg.Tensor(b.x), b.onehot) for b in batches])

        def step():
            x, y = next(data)
            loss = F.mse_loss(model(x), y, reduction="sum") / (2 * len(y))
            opt.zero_grad()
            loss.backward()
            opt.step()
            return loss

    else:
        opt = Adam(params, lr=net.lr)
        data = itertools.cycle([(tg.Tensor(b.x), b.labels) for b in batches])

        def step():
            x, labels = next(data)
            loss = F.cross_entropy(model(x), labels)
            opt.zero_grad()
            loss.backward()
            opt.step()
            return loss

    return Trainer(step, lambda: [p.data.copy() for p in params], [note])


def available() -> dict[str, Builder]:
    """Name → builder for every contender that can run here, the floor first."""
    found: dict[str, Builder] = {"numpy floor": build_floor, "tinygrad_nn": build_tinygrad}
    found.update(peers.available())
    return found
