"""Initialisers: fill a tensor in place from the global generator and return it.

The write is in place: a backward through a graph recorded before it raises, naming the
initialiser (as PyTorch's version counters make it), instead of using the values it saved.

Fans of a weight of shape (out, in, ...): fan_in = in · receptive field, fan_out = out · it.
"""

from __future__ import annotations

import math

import numpy as np

from ..autograd import MUTATIONS
from ..random import get_generator
from ..tensor import Tensor

__all__ = [
    "normal_",
    "uniform_",
    "zeros_",
    "ones_",
    "constant_",
    "xavier_uniform_",
    "xavier_normal_",
    "kaiming_uniform_",
    "kaiming_normal_",
    "calculate_gain",
]


def _fill(t: Tensor, values: np.ndarray, name: str) -> Tensor:
    t.data[...] = values
    MUTATIONS.record(t, f"nn.init.{name}()")  # a graph that saved t: its backward refuses
    return t


def _fans(t: Tensor) -> tuple[int, int]:
    if t.ndim < 2:
        raise ValueError(f"fan in and fan out need a tensor of >= 2 dims, got shape {t.shape}")
    field = int(np.prod(t.shape[2:])) if t.ndim > 2 else 1
    return t.shape[1] * field, t.shape[0] * field


def _normal(t: Tensor, mean: float, std: float, name: str) -> Tensor:
    return _fill(t, get_generator().normal(mean, std, t.shape), name)


def _uniform(t: Tensor, a: float, b: float, name: str) -> Tensor:
    return _fill(t, get_generator().uniform(a, b, t.shape), name)


def normal_(t: Tensor, mean: float = 0.0, std: float = 1.0) -> Tensor:
    """Samples of N(mean, std²) — Nielsen's network uses N(0, 1) for weights and biases."""
    return _normal(t, mean, std, "normal_")


def uniform_(t: Tensor, a: float = 0.0, b: float = 1.0) -> Tensor:
    """Samples of U(a, b)."""
    return _uniform(t, a, b, "uniform_")


def zeros_(t: Tensor) -> Tensor:
    """Fill with 0."""
    return _fill(t, np.zeros(()), "zeros_")


def ones_(t: Tensor) -> Tensor:
    """Fill with 1."""
    return _fill(t, np.ones(()), "ones_")


def constant_(t: Tensor, value: float) -> Tensor:
    """Fill with ``value``."""
    return _fill(t, np.asarray(value), "constant_")


def calculate_gain(nonlinearity: str, param: float | None = None) -> float:
    """The recommended gain: 1 for linear/sigmoid, 5/3 for tanh, √2 for relu,
    √(2 / (1 + a²)) for leaky_relu with negative slope a."""
    if nonlinearity in ("linear", "identity", "sigmoid"):
        return 1.0
    if nonlinearity == "tanh":
        return 5.0 / 3
    if nonlinearity == "relu":
        return math.sqrt(2.0)
    if nonlinearity == "leaky_relu":
        a = 0.01 if param is None else param
        return math.sqrt(2.0 / (1 + a * a))
    raise ValueError(f"calculate_gain: unknown nonlinearity {nonlinearity!r}")


def xavier_uniform_(t: Tensor, gain: float = 1.0) -> Tensor:
    """U(-a, a) with a = gain · √(6 / (fan_in + fan_out)) (Glorot & Bengio, 2010)."""
    fan_in, fan_out = _fans(t)
    a = gain * math.sqrt(6.0 / (fan_in + fan_out))
    return _uniform(t, -a, a, "xavier_uniform_")


def xavier_normal_(t: Tensor, gain: float = 1.0) -> Tensor:
    """N(0, σ²) with σ = gain · √(2 / (fan_in + fan_out))."""
    fan_in, fan_out = _fans(t)
    return _normal(t, 0.0, gain * math.sqrt(2.0 / (fan_in + fan_out)), "xavier_normal_")


def _kaiming_std(t: Tensor, a: float, mode: str, nonlinearity: str) -> float:
    if mode not in ("fan_in", "fan_out"):
        raise ValueError(f"kaiming init: mode must be 'fan_in' or 'fan_out', got {mode!r}")
    fan_in, fan_out = _fans(t)
    fan = fan_in if mode == "fan_in" else fan_out
    return calculate_gain(nonlinearity, a) / math.sqrt(fan)


def kaiming_uniform_(
    t: Tensor, a: float = 0.0, mode: str = "fan_in", nonlinearity: str = "leaky_relu"
) -> Tensor:
    """U(-b, b) with b = gain · √(3 / fan) (He et al., 2015)."""
    bound = math.sqrt(3.0) * _kaiming_std(t, a, mode, nonlinearity)
    return _uniform(t, -bound, bound, "kaiming_uniform_")


def kaiming_normal_(
    t: Tensor, a: float = 0.0, mode: str = "fan_in", nonlinearity: str = "leaky_relu"
) -> Tensor:
    """N(0, σ²) with σ = gain / √fan (He et al., 2015)."""
    return _normal(t, 0.0, _kaiming_std(t, a, mode, nonlinearity), "kaiming_normal_")
