"""Matrix products: ``np.matmul`` semantics (1-D, 2-D, batched N-D), and the fused dense layer."""

from __future__ import annotations

import numpy as np

from ..autograd import Function


def _swap(x: np.ndarray) -> np.ndarray:
    return np.swapaxes(x, -1, -2)


class MatMul(Function):
    """out = a @ b;  dL/da = g @ bᵀ,  dL/db = aᵀ @ g (1-D operands promoted as ``np.matmul``
    does; batch axes broadcast, their gradients summed back by the engine)."""

    __slots__ = ()

    def forward(self, a, b):
        if np.ndim(a) == 0 or np.ndim(b) == 0:
            raise ValueError("both operands need at least 1 dimension (use * for scalars)")
        ka = a.shape[-1]
        kb = b.shape[-2] if b.ndim > 1 else b.shape[0]
        if ka != kb:
            raise ValueError(
                f"MatMul: shapes {a.shape} and {b.shape} are not aligned: "
                f"{ka} (last axis of the first) != {kb} (the second's "
                f"{'second-to-last' if b.ndim > 1 else 'only'} axis)"
            )
        self.save_for_backward(a, b)
        return np.matmul(a, b)

    def backward(self, g):
        a, b = self.saved_tensors
        na, nb = self.needs_input_grad
        ga = gb = None
        if a.ndim == 1 and b.ndim == 1:
            ga = g * b if na else None
            gb = g * a if nb else None
        elif a.ndim == 1:  # (k) @ (..., k, m) -> (..., m)
            if na:
                ga = np.matmul(g[..., None, :], _swap(b))[..., 0, :]
            if nb:
                gb = a[:, None] * g[..., None, :]
        elif b.ndim == 1:  # (..., n, k) @ (k) -> (..., n)
            if na:
                ga = g[..., :, None] * b
            if nb:
                gb = np.matmul(_swap(a), g[..., :, None])[..., 0]
        else:
            if na:
                ga = np.matmul(g, _swap(b))
            if nb:
                gb = np.matmul(_swap(a), g)
        return ga, gb


class Linear(Function):
    """The dense layer fused into one node: out = x @ Wᵀ + b, W of shape (out, in).

    dL/dx = g @ W,  dL/dW = gᵀ @ x (summed over all leading axes),  dL/db = Σ g over them
    (as onesᵀ @ g).
    """

    __slots__ = ()

    def forward(self, x, weight, bias=None):
        if x.ndim == 0 or x.shape[-1] != weight.shape[-1]:
            raise ValueError(
                f"Linear: input of shape {x.shape} does not match weight of shape "
                f"{weight.shape}: expected the input's last axis to be {weight.shape[-1]}"
            )
        self.save_for_backward(x, weight)
        out = np.matmul(x, weight.T)
        if bias is not None:
            out += bias
        return out

    def backward(self, g):
        x, w = self.saved_tensors
        nx, nw, *nb = self.needs_input_grad
        gx = np.matmul(g, w) if nx else None
        if g.ndim != 2:
            g, x = g.reshape(-1, g.shape[-1]), x.reshape(-1, x.shape[-1])
        gw = np.matmul(g.T, x) if nw else None
        gb = np.matmul(_ones(g.shape[0], g.dtype), g) if nb and nb[0] else None
        return gx, gw, gb


_ONES: dict[tuple[int, str], np.ndarray] = {}


def _ones(n: int, dtype: np.dtype) -> np.ndarray:
    """A read-only vector of ``n`` ones: the bias gradient Σᵢ gᵢ is ``ones @ g``, a BLAS
    matrix-vector product, several times faster than ``g.sum(axis=0)`` for a batch of rows."""
    key = (n, dtype.char)
    ones = _ONES.get(key)
    if ones is None:
        if len(_ONES) >= 64:  # batch sizes come and go: keep the cache small
            _ONES.clear()
        ones = np.ones(n, dtype)
        ones.flags.writeable = False
        _ONES[key] = ones
    return ones
