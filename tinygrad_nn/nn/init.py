"""Initialisers: fill a tensor in place from the global generator and return it.

The write is in place: a backward through a graph recorded before it raises, naming the
initialiser (as PyTorch's version counters make it), instead of using the values it saved.

They work on float tensors and parameters: a numpy array, or a tensor of integers (whose samples
would be truncated), is refused with a TypeError naming the function; an impossible argument
(uniform_'s a > b, a negative std) with a ValueError.

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


def _check(t: Tensor, name: str) -> None:
    """``t`` must be a float Tensor (or Parameter): the initialisers write into its array."""
    if not isinstance(t, Tensor):
        raise TypeError(
            f"nn.init.{name}: expected a Tensor or Parameter to fill in place, got "
            f"{type(t).__name__}"
            + (
                " (to fill a numpy array, pass Tensor(array, dtype=array.dtype): it shares the "
                "array's memory)"
                if isinstance(t, np.ndarray)
                else ""
            )
        )
    if t.data.dtype.kind != "f":
        raise TypeError(
            f"nn.init.{name}: expected a float tensor, got dtype {t.data.dtype} (its values would "
            f"be truncated); make it with dtype=np.float32 or np.float64"
        )


def _number(value: object, arg: str, name: str) -> float:
    """``value`` as a finite float, or a TypeError/ValueError naming ``arg`` of ``name``."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(
        value, (int, float, np.integer, np.floating)
    ):
        raise TypeError(f"nn.init.{name}: {arg} must be a number, got {type(value).__name__}")
    if not math.isfinite(value):
        raise ValueError(f"nn.init.{name}: {arg} must be finite, got {value}")
    return float(value)


def _fill(t: Tensor, values: np.ndarray, name: str) -> Tensor:
    t.data[...] = values
    MUTATIONS.record(t, f"nn.init.{name}()")  # a graph that saved t: its backward refuses
    return t


def _fans(t: Tensor, name: str) -> tuple[int, int]:
    if t.ndim < 2:
        raise ValueError(
            f"nn.init.{name}: fan in and fan out need a tensor of >= 2 dims, got shape {t.shape}"
        )
    field = int(np.prod(t.shape[2:])) if t.ndim > 2 else 1
    return t.shape[1] * field, t.shape[0] * field


def _normal(t: Tensor, mean: float, std: float, name: str) -> Tensor:
    return _fill(t, get_generator().normal(mean, std, t.shape), name)


def _uniform(t: Tensor, a: float, b: float, name: str) -> Tensor:
    return _fill(t, get_generator().uniform(a, b, t.shape), name)


def normal_(t: Tensor, mean: float = 0.0, std: float = 1.0) -> Tensor:
    """Samples of N(mean, std²) — Nielsen's network uses N(0, 1) for weights and biases."""
    _check(t, "normal_")
    mean, std = _number(mean, "mean", "normal_"), _number(std, "std", "normal_")
    if std < 0:
        raise ValueError(f"nn.init.normal_: std must be >= 0, got {std}")
    return _normal(t, mean, std, "normal_")


def uniform_(t: Tensor, a: float = 0.0, b: float = 1.0) -> Tensor:
    """Samples of U(a, b)."""
    _check(t, "uniform_")
    a, b = _number(a, "a", "uniform_"), _number(b, "b", "uniform_")
    if a > b:
        raise ValueError(
            f"nn.init.uniform_: a must be <= b (the range is [a, b)), got a={a}, b={b}"
        )
    return _uniform(t, a, b, "uniform_")


def zeros_(t: Tensor) -> Tensor:
    """Fill with 0."""
    _check(t, "zeros_")
    return _fill(t, np.zeros(()), "zeros_")


def ones_(t: Tensor) -> Tensor:
    """Fill with 1."""
    _check(t, "ones_")
    return _fill(t, np.ones(()), "ones_")


def constant_(t: Tensor, value: float) -> Tensor:
    """Fill with ``value``."""
    _check(t, "constant_")
    if isinstance(value, (bool, np.bool_)) or not isinstance(
        value, (int, float, np.integer, np.floating)
    ):
        raise TypeError(f"nn.init.constant_: value must be a number, got {type(value).__name__}")
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


def _gain(gain: float, name: str) -> float:
    gain = _number(gain, "gain", name)
    if gain < 0:
        raise ValueError(f"nn.init.{name}: gain must be >= 0, got {gain}")
    return gain


def xavier_uniform_(t: Tensor, gain: float = 1.0) -> Tensor:
    """U(-a, a) with a = gain · √(6 / (fan_in + fan_out)) (Glorot & Bengio, 2010)."""
    _check(t, "xavier_uniform_")
    gain = _gain(gain, "xavier_uniform_")
    fan_in, fan_out = _fans(t, "xavier_uniform_")
    if t.size == 0:  # nothing to fill (and no fan to divide by), as PyTorch
        return t
    a = gain * math.sqrt(6.0 / (fan_in + fan_out))
    return _uniform(t, -a, a, "xavier_uniform_")


def xavier_normal_(t: Tensor, gain: float = 1.0) -> Tensor:
    """N(0, σ²) with σ = gain · √(2 / (fan_in + fan_out))."""
    _check(t, "xavier_normal_")
    gain = _gain(gain, "xavier_normal_")
    fan_in, fan_out = _fans(t, "xavier_normal_")
    if t.size == 0:
        return t
    return _normal(t, 0.0, gain * math.sqrt(2.0 / (fan_in + fan_out)), "xavier_normal_")


def _kaiming_std(t: Tensor, a: float, mode: str, nonlinearity: str, name: str) -> float | None:
    """σ = gain / √fan, or None for an empty tensor (nothing to fill)."""
    _check(t, name)
    a = _number(a, "a", name)
    if mode not in ("fan_in", "fan_out"):
        raise ValueError(f"nn.init.{name}: mode must be 'fan_in' or 'fan_out', got {mode!r}")
    fan_in, fan_out = _fans(t, name)
    fan = fan_in if mode == "fan_in" else fan_out
    if t.size == 0:
        return None
    return calculate_gain(nonlinearity, a) / math.sqrt(fan)


def kaiming_uniform_(
    t: Tensor, a: float = 0.0, mode: str = "fan_in", nonlinearity: str = "leaky_relu"
) -> Tensor:
    """U(-b, b) with b = gain · √(3 / fan) (He et al., 2015)."""
    std = _kaiming_std(t, a, mode, nonlinearity, "kaiming_uniform_")
    if std is None:
        return t
    bound = math.sqrt(3.0) * std
    return _uniform(t, -bound, bound, "kaiming_uniform_")


def kaiming_normal_(
    t: Tensor, a: float = 0.0, mode: str = "fan_in", nonlinearity: str = "leaky_relu"
) -> Tensor:
    """N(0, σ²) with σ = gain / √fan (He et al., 2015)."""
    std = _kaiming_std(t, a, mode, nonlinearity, "kaiming_normal_")
    return t if std is None else _normal(t, 0.0, std, "kaiming_normal_")
