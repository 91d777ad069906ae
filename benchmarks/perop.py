"""Per-op overhead: a chain of 1,000 elementwise ops on a one-element float32 tensor, forward and
backward, alternating ``y = y * 1.0001`` and ``y = y + 0.001``; the figure is the time of one
chain (build + backward) divided by 1,000.

At one element the arithmetic is free, so this measures what a framework spends per op: making
the node and the output tensor, dispatch, and the backward bookkeeping. MyGrad gets float32
numpy scalars as constants (its Python-float constants would promote the chain to float64);
everyone else gets Python floats. "numpy, forward only" is the same 1,000 numpy calls on the
bare array, no graph — a lower bound for any numpy-based engine.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import peers

CHAIN = 1_000


def _tinygrad() -> Callable[[], object]:
    import tinygrad_nn as tg

    x = tg.Tensor(np.ones(1, np.float32), requires_grad=True)

    def chain():
        y = x
        for _ in range(CHAIN // 2):
            y = y * 1.0001
            y = y + 0.001
        y.backward()
        x.grad = None

    return chain


def _torch() -> Callable[[], object]:
    import torch

    x = torch.ones(1, dtype=torch.float32, requires_grad=True)

    def chain():
        y = x
        for _ in range(CHAIN // 2):
            y = y * 1.0001
            y = y + 0.001
        y.backward()
        x.grad = None

    return chain


def _mygrad() -> Callable[[], object]:
    import mygrad as mg

    x = mg.Tensor(np.ones(1, np.float32))
    a, b = np.float32(1.0001), np.float32(0.001)

    def chain():
        y = x
        for _ in range(CHAIN // 2):
            y = y * a
            y = y + b
        y.backward()

    return chain


def _autograd() -> Callable[[], object]:
    from autograd import grad

    def f(y):
        for _ in range(CHAIN // 2):
            y = y * 1.0001
            y = y + 0.001
        return y

    df = grad(f)
    x = np.ones(1, np.float32)
    return lambda: df(x)


def _numpy_forward() -> Callable[[], object]:
    x = np.ones(1, np.float32)

    def chain():
        y = x
        for _ in range(CHAIN // 2):
            y = y * 1.0001
            y = y + 0.001
        return y

    return chain


def chains() -> dict[str, Callable[[], object]]:
    """Name → one chain (forward + backward), for every contender installed."""
    found = {"numpy, forward only": _numpy_forward(), "tinygrad_nn": _tinygrad()}
    makers = {"PyTorch": _torch, "MyGrad": _mygrad, "autograd": _autograd}
    for name in peers.available():
        found[name] = makers[name]()
    return found
