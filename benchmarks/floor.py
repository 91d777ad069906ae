"""The floor: both networks with forward AND backward derived by hand, in plain numpy.

This is what any numpy-based framework is measured against, so it is written to be as fast as a
careful person would make it while computing the same thing as the frameworks:

* float32 throughout; every intermediate lives in a buffer allocated once (``out=`` everywhere);
* all parameters are views into one flat array, and all gradients into another, so the update
  is one (SGD) or a dozen (Adam) ufunc calls however many layers there are;
* bias gradients are ``ones @ delta`` (a BLAS gemv), cheaper than ``delta.sum(axis=0)``;
* nothing the step does not need: no gradient for the input images, σ'(z) taken from the
  saved activation as a(1 - a), ReLU' as the mask of the saved output.

The update rules are the frameworks' (plain SGD; PyTorch's Adam), rearranged only where the
algebra is exactly the same: SGD folds lr/n into the output error, and Adam divides by
√v + ε·√(1-β₂ᵗ) and multiplies by lr·√(1-β₂ᵗ)/(1-β₁ᵗ), which is PyTorch's
lr/(1-β₁ᵗ) · m / (√v/√(1-β₂ᵗ) + ε) with one pass over the parameters fewer.
"""

from __future__ import annotations

import math

import numpy as np
from workloads import ADAM_BETAS, ADAM_EPS, Net

F32 = np.float32


def _flat_views(shapes: list[tuple[int, ...]]) -> tuple[np.ndarray, list[np.ndarray]]:
    """One zeroed float32 buffer and a view of it for each shape, in order."""
    flat = np.zeros(sum(math.prod(s) for s in shapes), F32)
    views, at = [], 0
    for s in shapes:
        n = math.prod(s)
        views.append(flat[at : at + n].reshape(s))
        at += n
    return flat, views


def sigmoid_(a: np.ndarray) -> None:
    """a ← σ(a) = 1 / (1 + e⁻ᵃ) in place. For a < -88 e⁻ᵃ overflows to inf and σ to 0, which is
    the right limit (the harness silences the overflow flag for every contender alike)."""
    np.negative(a, out=a)
    np.exp(a, out=a)
    a += 1
    np.reciprocal(a, out=a)


class NielsenFloor:
    """784-30-10 sigmoid, quadratic cost C = Σ‖a - y‖² / (2n), plain SGD, by hand.

    With δ₂ = (a₂ - y) ⊙ a₂(1 - a₂) / n:  ∂C/∂W₂ = δ₂ᵀ a₁,  ∂C/∂b₂ = Σ δ₂,
    δ₁ = (δ₂ W₂) ⊙ a₁(1 - a₁):  ∂C/∂W₁ = δ₁ᵀ x,  ∂C/∂b₁ = Σ δ₁.
    The flat gradient buffer holds lr·∂C/∂θ, so the update is θ -= that, one call.
    """

    def __init__(self, net: Net, init: list[np.ndarray], batch: int) -> None:
        (_, n_hid, n_out), self.lr = net.sizes, net.lr
        shapes = [p.shape for p in init]
        self.flat, self.params = _flat_views(shapes)
        self.flat[:] = np.concatenate([p.ravel() for p in init])
        self.gflat, self.grads = _flat_views(shapes)
        self.a1 = np.empty((batch, n_hid), F32)
        self.t1 = np.empty((batch, n_hid), F32)
        self.a2 = np.empty((batch, n_out), F32)
        self.d2 = np.empty((batch, n_out), F32)
        self.t2 = np.empty((batch, n_out), F32)
        self.ones = np.ones(batch, F32)

    def step(self, x: np.ndarray, y: np.ndarray) -> float:
        """One step on images ``x`` (n, 784) and one-hot targets ``y`` (n, 10); returns C."""
        n = len(x)
        w1, b1, w2, b2 = self.params
        gw1, gb1, gw2, gb2 = self.grads
        a1, t1, a2, d2, t2, ones = self.a1, self.t1, self.a2, self.d2, self.t2, self.ones
        if n != len(ones):  # a last, shorter batch: views of the buffers
            a1, t1, a2, d2, t2, ones = a1[:n], t1[:n], a2[:n], d2[:n], t2[:n], ones[:n]
        np.matmul(x, w1.T, out=a1)
        a1 += b1
        sigmoid_(a1)
        np.matmul(a1, w2.T, out=a2)
        a2 += b2
        sigmoid_(a2)
        np.subtract(a2, y, out=d2)
        cost = float(np.vdot(d2, d2)) * 0.5 / n
        np.subtract(1, a2, out=t2)
        t2 *= a2
        d2 *= t2
        d2 *= self.lr / n  # δ₂, scaled by lr
        np.matmul(d2.T, a1, out=gw2)
        np.matmul(ones, d2, out=gb2)
        np.matmul(d2, w2, out=t1)  # ∂C/∂a₁ (times lr)
        t1 *= a1
        np.subtract(1, a1, out=a1)  # a₁ is not needed any more: its buffer takes 1 - a₁
        t1 *= a1  # δ₁
        np.matmul(t1.T, x, out=gw1)
        np.matmul(ones, t1, out=gb1)
        self.flat -= self.gflat
        return cost


class AdamFloor:
    """784-128-64-10 ReLU, softmax cross-entropy (mean over the batch), Adam, by hand.

    With p = softmax(z) and Y the one-hot labels, ∂L/∂z = (p - Y) / n; back through each dense
    layer ∂L/∂W = δᵀ h, ∂L/∂b = Σ δ, ∂L/∂h = δ W, and through ReLU δ = ∂L/∂h ⊙ [h > 0].
    """

    def __init__(self, net: Net, init: list[np.ndarray], batch: int) -> None:
        self.lr = net.lr
        shapes = [p.shape for p in init]
        self.flat, self.params = _flat_views(shapes)
        self.flat[:] = np.concatenate([p.ravel() for p in init])
        self.gflat, self.grads = _flat_views(shapes)
        self.m = np.zeros_like(self.flat)
        self.v = np.zeros_like(self.flat)
        self.tmp = np.empty_like(self.flat)
        self.t = 0
        widths = net.sizes[1:]
        self.h = [np.empty((batch, k), F32) for k in widths]  # h1, h2, z (the logits)
        self.dh = [np.empty((batch, k), F32) for k in widths[:-1]]
        self.mask = [np.empty((batch, k), bool) for k in widths[:-1]]
        self.col = np.empty((batch, 1), F32)
        self.col2 = np.empty((batch, 1), F32)
        self.rows = np.arange(batch)
        self.ones = np.ones(batch, F32)

    def step(self, x: np.ndarray, labels: np.ndarray) -> float:
        """One step on images ``x`` (n, 784) and class indices ``labels`` (n,); returns L."""
        n = len(x)
        w1, b1, w2, b2, w3, b3 = self.params
        gw1, gb1, gw2, gb2, gw3, gb3 = self.grads
        (h1, h2, z), (d1, d2), (m1, m2) = self.h, self.dh, self.mask
        col, col2, rows, ones = self.col, self.col2, self.rows, self.ones
        if n != len(ones):  # a last, shorter batch: views of the buffers
            h1, h2, z, d1, d2, m1, m2 = (a[:n] for a in (h1, h2, z, d1, d2, m1, m2))
            col, col2, rows, ones = col[:n], col2[:n], rows[:n], ones[:n]
        np.matmul(x, w1.T, out=h1)
        h1 += b1
        np.maximum(h1, 0, out=h1)
        np.matmul(h1, w2.T, out=h2)
        h2 += b2
        np.maximum(h2, 0, out=h2)
        np.matmul(h2, w3.T, out=z)
        z += b3
        # softmax cross-entropy: L = mean(log Σ e^(z - max) - (z - max)[label])
        np.max(z, axis=1, keepdims=True, out=col)
        z -= col
        picked = z[rows, labels]
        np.exp(z, out=z)
        np.sum(z, axis=1, keepdims=True, out=col)
        np.log(col, out=col2)
        loss = float(col2.sum() - picked.sum()) / n
        z /= col  # p = softmax
        z[rows, labels] -= 1
        z *= 1 / n  # δ₃ = ∂L/∂z
        np.matmul(z.T, h2, out=gw3)
        np.matmul(ones, z, out=gb3)
        np.matmul(z, w3, out=d2)
        np.greater(h2, 0, out=m2)
        np.multiply(d2, m2, out=d2)  # δ₂
        np.matmul(d2.T, h1, out=gw2)
        np.matmul(ones, d2, out=gb2)
        np.matmul(d2, w2, out=d1)
        np.greater(h1, 0, out=m1)
        np.multiply(d1, m1, out=d1)  # δ₁
        np.matmul(d1.T, x, out=gw1)
        np.matmul(ones, d1, out=gb1)
        self._adam()
        return loss

    def _adam(self) -> None:
        """PyTorch's Adam on the flat buffers: m ← m + (1-β₁)(g - m), v ← β₂v + (1-β₂)g²,
        θ ← θ - lr/(1-β₁ᵗ) · m / (√v / √(1-β₂ᵗ) + ε) (rearranged, see the module docstring)."""
        b1, b2 = ADAM_BETAS
        self.t += 1
        c2 = math.sqrt(1 - b2**self.t)
        g, m, v, tmp = self.gflat, self.m, self.v, self.tmp
        np.subtract(g, m, out=tmp)
        tmp *= 1 - b1
        m += tmp
        v *= b2
        np.multiply(g, g, out=tmp)
        tmp *= 1 - b2
        v += tmp
        np.sqrt(v, out=tmp)
        tmp += ADAM_EPS * c2
        np.divide(m, tmp, out=tmp)
        tmp *= self.lr * c2 / (1 - b1**self.t)
        self.flat -= tmp


def build(net: Net, init: list[np.ndarray], batch: int) -> NielsenFloor | AdamFloor:
    return NielsenFloor(net, init, batch) if net.key == "nielsen" else AdamFloor(net, init, batch)
