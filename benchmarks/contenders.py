"""Every contender as a builder: ``build(net, init, batches) -> Trainer``.

A :class:`Trainer`'s ``step()`` is one training step — forward, loss, backward, parameter
update — on the next batch of the shared list (cycled), and ``params()`` returns copies of the
parameters in the canonical order and layout of :mod:`workloads`, so that contenders can be
checked against the floor. Here: the numpy floor and tinygrad_nn, eager and captured (both
write Nielsen's cost as the library's fused ``functional.quadratic_cost``); the peers are in
:mod:`peers`, each present only if it imports.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable

import floor
import numpy as np
import peers
from workloads import ADAM_BETAS, ADAM_EPS, CAPTURED, EAGER, FLOOR, LEAN, Batch, Net, Trainer

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


def tinygrad_loss(net: Net, model) -> Callable:
    """``(x, y) -> loss`` for the network: Nielsen's quadratic cost as the library's fused
    ``quadratic_cost`` (one node; y one-hot), or softmax cross-entropy on integer labels."""
    from tinygrad_nn.nn import functional as F

    if net.key == "nielsen":
        return lambda x, y: F.quadratic_cost(model(x), y)
    return lambda x, labels: F.cross_entropy(model(x), labels)


def capture_status(step) -> str:
    """Whether a ``tinygrad_nn.capture`` step replays a verified plan or fell back to normal
    execution (it warns when it does; this makes the fallback visible in the report)."""
    plans = list(getattr(step, "_plans", {None: "unknown"}).values())
    if not plans:
        return "captured step never called"
    if "unknown" in plans:
        return "captured step: replay state unknown (tinygrad_nn.capture internals changed)"
    if any(p is None for p in plans) or not getattr(step, "_ready", True):
        return "captured step NOT replaying (fell back to normal execution)"
    return "captured step replaying a verified plan"


def build_tinygrad(
    net: Net,
    init: list[np.ndarray],
    batches: list[Batch],
    captured: bool = False,
    keep_grads: bool = True,
) -> Trainer:
    """tinygrad_nn's step: eager (the graph built and walked every step), or ``captured`` with
    ``tinygrad_nn.capture`` — traced on the first call per input shape, checked against normal
    execution on the second, replayed as a flat function afterwards — keeping the gradients in
    ``.grad`` or not (``keep_grads``: plain SGD then folds its update into backward)."""
    import tinygrad_nn as tg

    model = tinygrad_model(net, init)
    params = list(model.parameters())
    SGD, Adam, note = tinygrad_optimizers()
    opt = SGD(params, lr=net.lr) if net.optimizer == "sgd" else Adam(params, lr=net.lr)
    target = (lambda b: b.onehot) if net.key == "nielsen" else (lambda b: b.labels)
    data = itertools.cycle([(tg.Tensor(b.x), target(b)) for b in batches])
    loss_fn = tinygrad_loss(net, model)
    zero_grad, update = opt.zero_grad, opt.step
    status = None

    if captured:
        # the whole step: zero_grad, loss, backward, step
        run = tg.capture(loss_fn, optimizer=opt, keep_grads=keep_grads)

        def step():
            x, y = next(data)
            return run(x, y)

        def status():
            return capture_status(run)

    else:

        def step():
            x, y = next(data)
            zero_grad()
            loss = loss_fn(x, y)
            loss.backward()
            update()
            return loss

    return Trainer(step, lambda: [p.data.copy() for p in params], [note], status)


def build_tinygrad_captured(net: Net, init: list[np.ndarray], batches: list[Batch]) -> Trainer:
    return build_tinygrad(net, init, batches, captured=True)


def build_tinygrad_lean(net: Net, init: list[np.ndarray], batches: list[Batch]) -> Trainer:
    return build_tinygrad(net, init, batches, captured=True, keep_grads=False)


def available() -> dict[str, Builder]:
    """Name → builder for every contender that can run here, the floor first."""
    found: dict[str, Builder] = {
        FLOOR: build_floor,
        EAGER: build_tinygrad,
        CAPTURED: build_tinygrad_captured,
        LEAN: build_tinygrad_lean,
    }
    found.update(peers.available())
    return found
