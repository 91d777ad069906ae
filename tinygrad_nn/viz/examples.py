"""The built-in examples that ``python -m tinygrad_nn.viz`` and the docs draw.

Each function builds a small computation, runs ``backward`` (unless asked not to) with every
gradient kept, and returns an :class:`Example`: the root tensor and how to draw it.
Both reseed the global generator (``manual_seed``), so the pictures are the same every time.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..nn import Dense, Module, Parameter, Sequential, Sigmoid
from ..nn.functional import mse_loss
from ..random import manual_seed
from ..tensor import Tensor
from .graph import retain_grads

__all__ = ["Example", "EXAMPLES", "neuron", "mlp"]


@dataclass
class Example:
    """A computation to draw: ``draw_graph(example.root, **example.draw_kwargs)``."""

    name: str
    description: str
    root: Tensor
    draw_kwargs: dict[str, Any] = field(default_factory=dict)


def neuron(backward: bool = True) -> Example:
    """One sigmoid neuron y = σ(w·x + b) on a two-feature input, and its squared error against
    the target 1: loss = (y - 1)². Small enough to show every value and gradient."""
    manual_seed(0)
    x = Tensor([1.0, -2.0], name="x")
    w = Parameter([0.5, -0.25])
    w.name = "w"
    b = Parameter(0.1)
    b.name = "b"
    wx = w @ x
    wx.name = "w·x"
    z = wx + b
    z.name = "z = w·x + b"
    y = z.sigmoid()
    y.name = "y = σ(z)"
    loss = mse_loss(y, Tensor(1.0, name="target"))
    loss.name = "loss"
    if backward:
        retain_grads(loss).backward()
    return Example(
        "neuron",
        "a single sigmoid neuron y = σ(w·x + b) and its squared error",
        loss,
        {"show_values": True},
    )


def mlp(backward: bool = True) -> Example:
    """Nielsen's MNIST network, 784 → 30 → 10 with sigmoids, on a batch of 4 random images,
    and its mean squared error against one-hot targets. Shows the layers as clusters and the
    gradients' norms."""
    manual_seed(0)
    model: Module = Sequential(Dense(784, 30), Sigmoid(), Dense(30, 10), Sigmoid())
    rng = np.random.default_rng(0)
    x = Tensor(rng.random((4, 784), dtype=np.float32), name="images")
    target = Tensor(np.eye(10, dtype=np.float32)[[3, 1, 4, 1]], name="one-hot labels")
    loss = mse_loss(model(x), target)
    loss.name = "loss"
    if backward:
        retain_grads(loss).backward()
    return Example(
        "mlp",
        "the loss of a 784-30-10 sigmoid network (Nielsen's MNIST net)",
        loss,
        {"model": model},
    )


EXAMPLES: dict[str, Callable[..., Example]] = {"neuron": neuron, "mlp": mlp}
