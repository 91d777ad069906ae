"""Reductions over ``axis`` (None, an int or a tuple) with ``keepdims``.

The backward of a reduction broadcasts g back over the reduced axes: it first restores them as
size-1 axes (:func:`expand_reduced`), then lets broadcasting do the rest.
"""

from __future__ import annotations

import numpy as np

from ..autograd import Function


def normalize_axis(axis, ndim: int) -> tuple[int, ...]:
    """``axis`` as a sorted tuple of non-negative ints; ValueError for axes out of range."""
    if axis is None:
        return tuple(range(ndim))
    axes = tuple(axis) if isinstance(axis, (tuple, list)) else (axis,)
    out = []
    for ax in axes:
        if isinstance(ax, bool) or not isinstance(ax, (int, np.integer)):
            raise TypeError(f"axis must be an int or a tuple of ints, got {axis!r}")
        if not (-ndim <= ax < ndim or (ndim == 0 and ax in (0, -1))):
            raise ValueError(f"axis {ax} is out of bounds for a tensor of dimension {ndim}")
        out.append(int(ax) % max(ndim, 1))
    if len(set(out)) != len(out):
        raise ValueError(f"repeated axis in {axis!r}")
    return tuple(sorted(out)) if ndim else ()


def expand_reduced(g: np.ndarray, axes: tuple[int, ...], keepdims: bool) -> np.ndarray:
    """Reinsert the reduced ``axes`` of ``g`` as size-1 axes (a view) unless keepdims kept them."""
    if keepdims or not axes:
        return g
    return np.expand_dims(g, axes)


class Sum(Function):
    """out = Σ a over axes;  dL/da = g broadcast over the summed axes."""

    __slots__ = ("axes", "keepdims", "shape")

    def forward(self, a, axis=None, keepdims=False):
        self.axes = normalize_axis(axis, a.ndim)
        self.keepdims, self.shape = keepdims, a.shape
        return np.add.reduce(a, axis=self.axes, keepdims=keepdims)  # np.sum, minus its layers

    def backward(self, g):
        return np.broadcast_to(expand_reduced(g, self.axes, self.keepdims), self.shape)


class Mean(Function):
    """out = (1/n) Σ a over axes (n elements reduced);  dL/da = g / n, broadcast."""

    __slots__ = ("axes", "keepdims", "shape", "n")

    def forward(self, a, axis=None, keepdims=False):
        self.axes = normalize_axis(axis, a.ndim)
        self.keepdims, self.shape = keepdims, a.shape
        self.n = int(np.prod([a.shape[i] for i in self.axes]))
        return np.mean(a, axis=self.axes, keepdims=keepdims)

    def backward(self, g):
        g = expand_reduced(g, self.axes, self.keepdims) / self.n
        return np.broadcast_to(g, self.shape)


class Max(Function):
    """out = max of a over axes;  dL/da = g shared equally among the elements that attain the
    maximum (ties split the gradient, as PyTorch's ``amax`` does)."""

    __slots__ = ("axes", "keepdims")
    _reduce = staticmethod(np.maximum.reduce)  # np.max, without its Python layers

    def forward(self, a, axis=None, keepdims=False):
        self.axes = normalize_axis(axis, a.ndim)
        self.keepdims = keepdims
        if a.size == 0:  # fine over non-empty axes ((0, 3) over axis 1 gives (0,)), as PyTorch
            empty = [i for i in self.axes if a.shape[i] == 0]
            if empty:
                raise ValueError(
                    f"cannot take the {type(self).__name__.lower()} over an empty axis "
                    f"(axis {empty[0]} has size 0)"
                )
        out = self._reduce(a, axis=self.axes, keepdims=True)
        self.save_for_backward(a, out)
        return out if keepdims else np.squeeze(out, axis=self.axes)

    def backward(self, g):
        a, out = self.saved_tensors
        hit = (a == out).astype(g.dtype)
        hit /= hit.sum(axis=self.axes, keepdims=True)
        return hit * expand_reduced(g, self.axes, self.keepdims)


class Min(Max):
    """out = min of a over axes;  ties split the gradient equally (see :class:`Max`)."""

    __slots__ = ()
    _reduce = staticmethod(np.minimum.reduce)
