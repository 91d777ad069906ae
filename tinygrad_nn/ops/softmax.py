"""Softmax family along one axis, stable by the max shift: log Σ eˣ = m + log Σ e^(x - m).

Reductions call the ufuncs' ``reduce`` (what ``np.sum`` and ``np.max`` call, without their Python
layers)."""

from __future__ import annotations

import numpy as np

from ..autograd import Function
from .reduce import expand_reduced, normalize_axis


class Softmax(Function):
    """p = e^(x - m) / Σ e^(x - m);  dL/dx = p · (g - Σ g·p)."""

    __slots__ = ("axis",)

    def forward(self, x, axis=-1):
        self.axis = axis
        e = np.exp(x - np.maximum.reduce(x, axis=axis, keepdims=True))
        e /= np.add.reduce(e, axis=axis, keepdims=True)
        self.save_for_backward(e)
        return e

    def backward(self, g):
        (p,) = self.saved_tensors
        return p * (g - np.add.reduce(g * p, axis=self.axis, keepdims=True))


class LogSoftmax(Function):
    """out = x - m - log Σ e^(x - m);  dL/dx = g - softmax(x) · Σ g."""

    __slots__ = ("axis",)

    def forward(self, x, axis=-1):
        self.axis = axis
        shifted = x - np.maximum.reduce(x, axis=axis, keepdims=True)
        out = shifted - np.log(np.add.reduce(np.exp(shifted), axis=axis, keepdims=True))
        self.save_for_backward(out)
        return out

    def backward(self, g):
        (out,) = self.saved_tensors
        return g - np.exp(out) * np.add.reduce(g, axis=self.axis, keepdims=True)


class LogSumExp(Function):
    """out = m + log Σ e^(x - m) over ``axis`` (an int, a tuple of ints, or None: every axis,
    as PyTorch's logsumexp over all dims);  dL/dx = g · softmax(x) = g · e^(x - out)."""

    __slots__ = ("axes", "keepdims")

    def forward(self, x, axis=-1, keepdims=False):
        self.axes = axes = normalize_axis(axis, x.ndim)
        self.keepdims = keepdims
        m = np.maximum.reduce(x, axis=axes, keepdims=True)
        if not np.all(np.isfinite(m)):
            m = np.where(np.isfinite(m), m, 0)
        out = m + np.log(np.add.reduce(np.exp(x - m), axis=axes, keepdims=True))
        self.save_for_backward(x, out)
        return out if keepdims else np.squeeze(out, axis=axes)

    def backward(self, g):
        x, out = self.saved_tensors
        return expand_reduced(g, self.axes, self.keepdims) * np.exp(x - out)
