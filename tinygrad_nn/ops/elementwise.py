"""Elementwise ops. Broadcasting is numpy's; the engine sums gradients back to each input's shape.

Each backward states its derivative; ``g`` is dL/d(out).
"""

from __future__ import annotations

import math

import numpy as np

from ..autograd import Function


class Add(Function):
    """out = a + b;  dL/da = g,  dL/db = g."""

    __slots__ = ()

    def forward(self, a, b):
        return a + b

    def backward(self, g):
        return g, g


class Sub(Function):
    """out = a - b;  dL/da = g,  dL/db = -g."""

    __slots__ = ()

    def forward(self, a, b):
        return a - b

    def backward(self, g):
        return g, (-g if self.needs_input_grad[1] else None)


class Mul(Function):
    """out = a · b;  dL/da = g · b,  dL/db = g · a."""

    __slots__ = ()

    def forward(self, a, b):
        self.save_for_backward(a, b)
        return a * b

    def backward(self, g):
        a, b = self.saved_tensors
        na, nb = self.needs_input_grad
        return (g * b if na else None), (g * a if nb else None)


class Div(Function):
    """out = a / b;  dL/da = g / b,  dL/db = -g · a / b²."""

    __slots__ = ()

    def forward(self, a, b):
        self.save_for_backward(a, b)
        return a / b

    def backward(self, g):
        a, b = self.saved_tensors
        na, nb = self.needs_input_grad
        ga = g / b if na else None
        gb = -g * a / (b * b) if nb else None
        return ga, gb


class Pow(Function):
    """out = a ** b;  dL/da = g · b · a^(b-1), taken as 0 where b = 0 (b · a^(b-1) is 0 · ∞ at
    a = 0);  dL/db = g · out · ln a, taken as 0 where a = 0 and b ≥ 0 (as PyTorch: the one-sided
    derivative of 0^b; where b < 0 it is -∞ · g)."""

    __slots__ = ()

    def forward(self, a, b):
        out = a**b
        self.save_for_backward(a, b, out)
        return out

    def backward(self, g):
        a, b, out = self.saved_tensors
        na, nb = self.needs_input_grad
        ga = gb = None
        if na:
            if isinstance(b, (int, float)):
                if b == 2:
                    ga = g * (2 * a)
                elif b == 0:  # out = 1 everywhere
                    ga = np.zeros(np.shape(g), np.result_type(g, a))
                else:
                    with np.errstate(divide="ignore", invalid="ignore"):
                        ga = g * (b * a ** (b - 1))
            else:
                with np.errstate(divide="ignore", invalid="ignore"):
                    ga = g * (b * a ** (b - 1))
                if not b.all():  # some b = 0: there 0 · a^(-1) is nan at a = 0; it is 0
                    ga = np.where(b == 0, np.zeros((), ga.dtype), ga)
        if nb:
            with np.errstate(divide="ignore", invalid="ignore"):
                if isinstance(a, np.ndarray):
                    gb = g * out * np.log(a)
                    if not a.all():  # some a = 0: out · ln a is 0 · -∞ where b > 0; it is 0
                        gb = np.where((a == 0) & (b >= 0), np.zeros((), gb.dtype), gb)
                elif a == 0:  # a Python number: 0 where b ≥ 0, -∞ · g where 0^b = ∞
                    gb = g * out * -math.inf
                    gb = np.where(b >= 0, np.zeros((), gb.dtype), gb)
                else:  # a Python number: stays 'weak', so float32 stays float32
                    gb = g * out * (math.log(a) if a > 0 else math.nan)
        return ga, gb


class Neg(Function):
    """out = -a;  dL/da = -g."""

    __slots__ = ()

    def forward(self, a):
        return -a

    def backward(self, g):
        return -g


class Exp(Function):
    """out = eᵃ;  dL/da = g · out."""

    __slots__ = ()

    def forward(self, a):
        out = np.exp(a)
        self.save_for_backward(out)
        return out

    def backward(self, g):
        (out,) = self.saved_tensors
        return g * out


class Log(Function):
    """out = ln a;  dL/da = g / a."""

    __slots__ = ()

    def forward(self, a):
        self.save_for_backward(a)
        return np.log(a)

    def backward(self, g):
        (a,) = self.saved_tensors
        return g / a


class Sqrt(Function):
    """out = √a;  dL/da = g / (2 · out)."""

    __slots__ = ()

    def forward(self, a):
        out = np.sqrt(a)
        self.save_for_backward(out)
        return out

    def backward(self, g):
        (out,) = self.saved_tensors
        return g / (2 * out)


class Tanh(Function):
    """out = tanh a;  dL/da = g · (1 - out²)."""

    __slots__ = ()

    def forward(self, a):
        out = np.tanh(a)
        self.save_for_backward(out)
        return out

    def backward(self, g):
        (out,) = self.saved_tensors
        return g * (1 - out * out)


def sigmoid_array(a: np.ndarray) -> np.ndarray:
    """σ(a) = ½ + ½·tanh(a/2) on an array: no overflow (and no warning) for any a."""
    out = np.asarray(np.multiply(a, 0.5))
    if out.ndim:
        np.tanh(out, out=out)
        out *= 0.5
        out += 0.5
        return out
    return np.asarray(0.5 + 0.5 * np.tanh(out))


class Sigmoid(Function):
    """out = σ(a) = 1 / (1 + e⁻ᵃ), computed as ½ + ½·tanh(a/2), which cannot overflow;
    dL/da = g · out · (1 - out).

    The price of that form: in float32 the result rounds to exactly 0 or 1 once |a| > ~17
    (absolute error < 4e-8), where 1 / (1 + e⁻ᵃ) would keep tiny values below 0.5."""

    __slots__ = ()

    def forward(self, a):
        out = sigmoid_array(a)
        self.save_for_backward(out)
        return out

    def backward(self, g):
        (out,) = self.saved_tensors
        grad = g * out
        grad *= 1 - out  # in place: one temporary fewer than g * out * (1 - out), same bits
        return grad


class ReLU(Function):
    """out = max(a, 0);  dL/da = g where a > 0, else 0 (0 at a = 0, as PyTorch)."""

    __slots__ = ()

    def forward(self, a):
        out = np.maximum(a, 0)
        self.save_for_backward(out)
        return out

    def backward(self, g):
        (out,) = self.saved_tensors
        return g * (out > 0)


class Abs(Function):
    """out = |a|;  dL/da = g · sign(a) (0 at a = 0)."""

    __slots__ = ()

    def forward(self, a):
        self.save_for_backward(a)
        return np.abs(a)

    def backward(self, g):
        (a,) = self.saved_tensors
        return g * np.sign(a)


class Clip(Function):
    """out = min(max(a, lo), hi);  dL/da = g where lo ≤ a ≤ hi, else 0.

    The bounds never widen a float tensor's dtype: numpy scalars are taken as Python numbers
    and arrays are cast to the tensor's dtype (a float32 tensor clipped to ``np.float64(0)``
    stays float32, as in PyTorch)."""

    __slots__ = ("lo", "hi")

    def forward(self, a, lo=None, hi=None):
        if lo is None and hi is None:
            raise ValueError("clip: give at least one of min and max")
        if a.dtype.kind == "f":
            lo, hi = self._bound(lo, a.dtype), self._bound(hi, a.dtype)
        self.save_for_backward(a)
        self.lo, self.hi = lo, hi
        return np.clip(a, lo, hi)

    def backward(self, g):
        (a,) = self.saved_tensors
        if self.lo is None:
            inside = a <= self.hi
        elif self.hi is None:
            inside = a >= self.lo
        else:
            inside = (a >= self.lo) & (a <= self.hi)
        return g * inside

    @staticmethod
    def _bound(x, dtype):
        """A bound that does not widen ``dtype``: a numpy scalar becomes a Python number ('weak'
        in numpy's promotion), a numeric array is cast to ``dtype``."""
        if isinstance(x, np.generic) and x.dtype.kind in "fiub":
            return x.item()
        if isinstance(x, np.ndarray) and x.dtype.kind in "fiub":
            return x.astype(dtype, copy=False)
        return x


class Maximum(Function):
    """out = max(a, b) elementwise;  the gradient goes to the larger input, split ½–½ on ties."""

    __slots__ = ()

    def forward(self, a, b):
        self.save_for_backward(a, b)
        return np.maximum(a, b)

    def backward(self, g):
        a, b = self.saved_tensors
        wa = _weights(a > b, a == b, g.dtype)
        na, nb = self.needs_input_grad
        return (g * wa if na else None), (g * (1 - wa) if nb else None)


class Minimum(Function):
    """out = min(a, b) elementwise;  the gradient goes to the smaller input, split ½–½ on ties."""

    __slots__ = ()

    def forward(self, a, b):
        self.save_for_backward(a, b)
        return np.minimum(a, b)

    def backward(self, g):
        a, b = self.saved_tensors
        wa = _weights(a < b, a == b, g.dtype)
        na, nb = self.needs_input_grad
        return (g * wa if na else None), (g * (1 - wa) if nb else None)


def _weights(wins: np.ndarray, ties: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """1 where the first input wins, ½ on a tie, 0 where it loses."""
    w = np.asarray(wins, dtype=dtype)
    return w + np.asarray(ties, dtype=dtype) * 0.5


class Where(Function):
    """out = a where cond else b;  dL/da = g where cond,  dL/db = g elsewhere."""

    __slots__ = ()

    def forward(self, cond, a, b):
        # backward reads the condition: a copy of the caller's array, which may change before
        # backward runs (PyTorch's condition tensor has a version counter)
        cond = np.array(cond, dtype=bool, copy=any(self.needs_input_grad))
        self.save_for_backward(cond)
        return np.where(cond, a, b)

    def backward(self, g):
        (cond,) = self.saved_tensors
        _, na, nb = self.needs_input_grad
        zero = np.zeros((), dtype=g.dtype)
        return (
            None,
            (np.where(cond, g, zero) if na else None),
            (np.where(cond, zero, g) if nb else None),
        )


class Step(Function):
    """The Heaviside step of the perceptron: out = 1 where a > 0, else 0;  dL/da = 0."""

    __slots__ = ()

    def forward(self, a):
        return (a > 0).astype(a.dtype)

    def backward(self, g):
        return np.zeros_like(g)
