"""Losses fused into single nodes, where one node is both faster and more stable than the
composition: each backward is the closed-form gradient.

Conventions: ``reduction`` is "mean", "sum" or "none"; g is dL/d(loss).
"""

from __future__ import annotations

import numpy as np

from ..autograd import Function
from .elementwise import sigmoid_array


def _scale(reduction: str, n: int) -> float:
    return 1.0 / n if reduction == "mean" else 1.0


class SoftmaxCrossEntropy(Function):
    """Cross-entropy of softmax(z) against targets y (one-hot / probabilities, or class indices).

    loss_i = -Σ_c y_ic log softmax(z_i)_c, through the stable log-softmax;
    dL/dz = (softmax(z) - y) · g / N for the mean over N rows (· g for the sum);
    for probability targets also dL/dy = -log softmax(z) · g / N.
    """

    __slots__ = ("reduction",)

    def forward(self, logits, target, reduction="mean"):
        self.reduction = reduction
        shifted = logits - np.maximum.reduce(logits, axis=-1, keepdims=True)
        e = np.exp(shifted)
        s = np.add.reduce(e, axis=-1, keepdims=True)  # np.sum's own call, without its layers
        if target.dtype.kind in "iu":  # class indices: only the picked log-probabilities
            log_s = np.log(s)[..., 0]
            if logits.ndim == 2:
                losses = log_s - shifted[np.arange(logits.shape[0]), target]
            else:
                losses = log_s - shifted[target]
            logp = None
        else:
            logp = shifted - np.log(s)
            losses = -np.add.reduce(target * logp, axis=-1)
        e /= s
        self.save_for_backward(e, target, logp if self.needs_input_grad[1] else None)
        if reduction == "none":
            return losses
        total = np.add.reduce(losses, axis=None)
        return total / losses.size if reduction == "mean" else total

    def backward(self, g):
        p, target, logp = self.saved_tensors
        if target.dtype.kind in "iu":
            grad = p.copy()
            if p.ndim == 2:
                grad[np.arange(p.shape[0]), target] -= 1
            else:
                grad[target] -= 1
        else:
            grad = p - target
        if self.reduction == "none":
            k = g[..., None] if p.ndim == 2 else g
        else:
            k = g * _scale(self.reduction, p.shape[0] if p.ndim == 2 else 1)
        grad *= k
        return grad, (-logp * k if logp is not None else None)


class MSE(Function):
    """A scaled sum of squared errors: L = c · Σ (a - y)² over all elements;
    dL/da = 2c (a - y) · g,  dL/dy = -dL/da.

    ``mse_loss`` uses c = 1/n (its mean) or c = 1 (its sum); Nielsen's quadratic cost
    C = 1/(2n) Σₓ ‖y(x) - a‖² uses c = 1/(2n) with n the batch size.
    """

    __slots__ = ("scale",)

    def forward(self, a, y, scale=1.0):
        d = a - y
        self.save_for_backward(d)
        self.scale = scale
        total = np.vdot(d, d) if d.dtype.kind == "f" else np.sum(d * d)
        return np.asarray(total * scale, dtype=d.dtype)

    def backward(self, g):
        (d,) = self.saved_tensors
        ga = d * (g * (2.0 * self.scale))
        return ga, (-ga if self.needs_input_grad[1] else None)


class BinaryCrossEntropy(Function):
    """Elementwise -(y log p + (1 - y) log(1 - p)), each log clamped at -100 as PyTorch does, so
    p = 0 or 1 gives a finite loss;  dL/dp = g · (p - y) / max(p(1 - p), 1e-12)."""

    __slots__ = ()

    def forward(self, p, y):
        self.save_for_backward(p, y)
        with np.errstate(divide="ignore"):
            log_p = np.maximum(np.log(p), -100)
            log_q = np.maximum(np.log1p(-p), -100)
        return -(y * log_p + (1 - y) * log_q)

    def backward(self, g):
        p, y = self.saved_tensors
        gp = g * (p - y) / np.maximum(p * (1 - p), 1e-12)
        gy = None
        if self.needs_input_grad[1]:
            with np.errstate(divide="ignore"):
                gy = g * (np.maximum(np.log1p(-p), -100) - np.maximum(np.log(p), -100))
        return gp, gy


class BinaryCrossEntropyWithLogits(Function):
    """Elementwise loss of sigmoid(z) against y, computed as max(z, 0) - z·y + log(1 + e^-|z|),
    finite for any z;  dL/dz = g · (σ(z) - y),  dL/dy = -g · z."""

    __slots__ = ()

    def forward(self, z, y):
        self.save_for_backward(z, y)
        with np.errstate(under="ignore"):  # e^-|z| underflowing to 0 is the right answer
            tail = np.log1p(np.exp(-np.abs(z)))
        return np.maximum(z, 0) - z * y + tail

    def backward(self, g):
        z, y = self.saved_tensors
        sig = sigmoid_array(z)
        return g * (sig - y), (-g * z if self.needs_input_grad[1] else None)
