"""Layers: ``Dense`` and the activations as modules."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ..ops import matmul
from ..random import get_generator
from ..tensor import Tensor, get_default_dtype
from . import init
from .module import Module, Parameter

__all__ = [
    "Dense",
    "Linear",
    "Sigmoid",
    "ReLU",
    "Tanh",
    "Softmax",
    "LogSoftmax",
    "Step",
    "Identity",
    "Flatten",
    "Dropout",
]


class Dense(Module):
    """Fully connected layer: y = x @ Wᵀ + b, with ``weight`` W of shape (out_features,
    in_features) — row j holds neuron j's weights, as in the texts and PyTorch's ``Linear`` —
    and ``bias`` b of shape (out_features,).

    Default initialisation (PyTorch's): W and b drawn from U(-1/√in, 1/√in). For Nielsen's
    N(0, 1) call ``nn.init.normal_`` on both.

    Inputs of another dtype (integers, a list, float64 data for a float32 layer) are cast to the
    layer's, as Keras does, so the output has the layer's dtype (the cast is differentiable).
    """

    def __init__(
        self, in_features: int, out_features: int, bias: bool = True, dtype: Any = None
    ) -> None:
        super().__init__()
        for name, n in (("in_features", in_features), ("out_features", out_features)):
            if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
                raise ValueError(f"Dense: {name} must be a positive int, got {n!r}")
        self.in_features, self.out_features = int(in_features), int(out_features)
        dtype = np.dtype(dtype or get_default_dtype())
        bound = 1.0 / math.sqrt(in_features)
        self.weight = Parameter(np.zeros((out_features, in_features), dtype=dtype), dtype=dtype)
        init.uniform_(self.weight, -bound, bound)
        if bias:
            self.bias: Parameter | None = Parameter(
                np.zeros(out_features, dtype=dtype), dtype=dtype
            )
            init.uniform_(self.bias, -bound, bound)
        else:
            self.bias = None

    def forward(self, x: Any) -> Tensor:
        if not isinstance(x, Tensor):
            x = Tensor(x)
        dtype = self.weight.data.dtype
        if x.data.dtype is not dtype and x.data.dtype != dtype:
            x = x.astype(dtype)  # as Keras: the layer computes in its own dtype
        shape = x.data.shape
        if not shape or shape[-1] != self.in_features:
            raise ValueError(
                f"{self.label()}: expected input whose last axis has {self.in_features} "
                f"features, got shape {x.shape} (weight shape {self.weight.shape})"
            )
        bias = self.bias
        if bias is None:
            return matmul.Linear.apply(x, self.weight)
        return matmul.Linear.apply(x, self.weight, bias)

    def label(self) -> str:
        """``Dense 784→30``: how the layer is named in errors and graphs."""
        return f"Dense {self.in_features}→{self.out_features}"

    def extra_repr(self) -> str:
        return f"{self.in_features} → {self.out_features}, bias={self.bias is not None}"


Linear = Dense  # PyTorch's name for the same layer


def _tensor(x: Any) -> Tensor:
    """The input as a Tensor: a list or array is converted, as ``Dense`` does."""
    return x if isinstance(x, Tensor) else Tensor(x)


class _Activation(Module):
    def label(self) -> str:
        return type(self).__name__


class Sigmoid(_Activation):
    """σ(x) = 1 / (1 + e⁻ˣ), elementwise."""

    def forward(self, x: Tensor) -> Tensor:
        return _tensor(x).sigmoid()


class ReLU(_Activation):
    """max(x, 0), elementwise."""

    def forward(self, x: Tensor) -> Tensor:
        return _tensor(x).relu()


class Tanh(_Activation):
    """tanh(x), elementwise."""

    def forward(self, x: Tensor) -> Tensor:
        return _tensor(x).tanh()


class Step(_Activation):
    """The perceptron's Heaviside step: 1 where x > 0, else 0 (gradient zero)."""

    def forward(self, x: Tensor) -> Tensor:
        return _tensor(x).step()


class Identity(_Activation):
    """Passes its input through unchanged (the linear activation)."""

    def forward(self, x: Tensor) -> Tensor:
        return x


class Softmax(_Activation):
    """e^xᵢ / Σⱼ e^xⱼ along ``axis``."""

    def __init__(self, axis: int = -1) -> None:
        super().__init__()
        self.axis = axis

    def forward(self, x: Tensor) -> Tensor:
        return _tensor(x).softmax(self.axis)

    def extra_repr(self) -> str:
        return f"axis={self.axis}"


class LogSoftmax(Softmax):
    """log softmax(x) = x - log Σ eˣ along ``axis``."""

    def forward(self, x: Tensor) -> Tensor:
        return _tensor(x).log_softmax(self.axis)


class Flatten(_Activation):
    """Merge axes ``start_dim..end_dim`` (by default all but the batch axis)."""

    def __init__(self, start_dim: int = 1, end_dim: int = -1) -> None:
        super().__init__()
        self.start_dim, self.end_dim = start_dim, end_dim

    def forward(self, x: Tensor) -> Tensor:
        return _tensor(x).flatten(self.start_dim, self.end_dim)


class Dropout(_Activation):
    """Zero each element with probability p in training (scaling the rest by 1/(1-p));
    the identity in eval mode. The mask comes from the global generator."""

    def __init__(self, p: float = 0.5) -> None:
        super().__init__()
        if not 0 <= p < 1:
            raise ValueError(f"Dropout: p must be in [0, 1), got {p}")
        self.p = p

    def forward(self, x: Tensor) -> Tensor:
        x = _tensor(x)  # a list too, and a Tensor out in either mode
        if not self.training or self.p == 0:
            return x
        keep = get_generator().random(x.shape) >= self.p
        return x * (keep.astype(x.dtype) / (1 - self.p))

    def extra_repr(self) -> str:
        return f"p={self.p}"
