"""Ops that move elements without changing them: reshape, transpose, broadcast, index, join.

Each backward puts g back where the elements came from.
"""

from __future__ import annotations

import numpy as np

from ..autograd import Function


class Reshape(Function):
    """out = a viewed with a new shape;  dL/da = g reshaped back."""

    __slots__ = ("shape",)

    def forward(self, a, shape):
        self.shape = a.shape
        return np.reshape(a, shape)

    def backward(self, g):
        return np.reshape(g, self.shape)


class Transpose(Function):
    """out = a with axes permuted;  dL/da = g permuted by the inverse permutation."""

    __slots__ = ("axes",)

    def forward(self, a, axes=None):
        if axes is None:
            axes = tuple(reversed(range(a.ndim)))
        self.axes = tuple(int(ax) % max(a.ndim, 1) for ax in axes)
        return np.transpose(a, axes)

    def backward(self, g):
        return np.transpose(g, np.argsort(self.axes))


class BroadcastTo(Function):
    """out = a broadcast to ``shape``;  dL/da = g summed back (the engine's unbroadcast)."""

    __slots__ = ()

    def forward(self, a, shape):
        return np.broadcast_to(a, shape)

    def backward(self, g):
        return g


class GetItem(Function):
    """out = a[index];  dL/da = zeros with g scattered back to the indexed places; repeated
    integer indices accumulate (``np.add.at``)."""

    __slots__ = ("index", "shape", "advanced")

    def forward(self, a, index):
        parts = index if isinstance(index, tuple) else (index,)
        if self.needs_input_grad[0] and any(isinstance(p, np.ndarray) for p in parts):
            # backward scatters through the index: a copy of the caller's index arrays, which
            # may change before backward runs (PyTorch's index tensors have version counters)
            parts = tuple(p.copy() if isinstance(p, np.ndarray) else p for p in parts)
            index = parts if isinstance(index, tuple) else parts[0]
        self.index, self.shape = index, a.shape
        self.advanced = any(isinstance(p, np.ndarray) and p.dtype != bool for p in parts)
        return np.asarray(a[index])

    def backward(self, g):
        out = np.zeros(self.shape, dtype=g.dtype)
        if self.advanced:
            np.add.at(out, self.index, g)
        else:
            out[self.index] = g
        return out


class Concatenate(Function):
    """out = the inputs joined along ``axis``;  each input's gradient is its slice of g."""

    __slots__ = ("axis", "bounds")

    def forward(self, *arrays, axis=0):
        out = np.concatenate(arrays, axis=axis)
        self.axis = axis % out.ndim
        self.bounds = np.cumsum([a.shape[self.axis] for a in arrays])[:-1]
        return out

    def backward(self, g):
        return tuple(np.split(g, self.bounds, axis=self.axis))


class Stack(Function):
    """out = the inputs stacked along a new ``axis``;  each input's gradient is its slice of g."""

    __slots__ = ("axis",)

    def forward(self, *arrays, axis=0):
        out = np.stack(arrays, axis=axis)
        self.axis = axis % out.ndim
        return out

    def backward(self, g):
        return tuple(np.moveaxis(g, self.axis, 0))
