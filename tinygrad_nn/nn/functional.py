"""Activations and losses as functions (the modules in ``layers.py`` and ``losses.py`` call these).

Nielsen's quadratic cost C = 1/(2n) Σₓ ‖y(x) - a‖² is ``mse_loss(a, y, reduction="sum") / (2 * n)``:
``mse_loss`` follows PyTorch (mean of squared errors over all elements, or their sum).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..autograd import note_derived
from ..ops import loss as L
from ..ops.matmul import Linear
from ..tensor import Tensor, _cast

__all__ = [
    "sigmoid",
    "relu",
    "tanh",
    "softmax",
    "log_softmax",
    "step",
    "identity",
    "linear",
    "mse_loss",
    "quadratic_cost",
    "binary_cross_entropy",
    "binary_cross_entropy_with_logits",
    "cross_entropy",
    "nll_loss",
    "one_hot",
]

_REDUCTIONS = ("mean", "sum", "none")


def sigmoid(x: Tensor) -> Tensor:
    """σ(x) = 1 / (1 + e⁻ˣ)."""
    return x.sigmoid()


def relu(x: Tensor) -> Tensor:
    """max(x, 0)."""
    return x.relu()


def tanh(x: Tensor) -> Tensor:
    """tanh(x) = (eˣ - e⁻ˣ) / (eˣ + e⁻ˣ), elementwise."""
    return x.tanh()


def softmax(x: Tensor, axis: int = -1) -> Tensor:
    """e^xᵢ / Σⱼ e^xⱼ along ``axis``."""
    return x.softmax(axis)


def log_softmax(x: Tensor, axis: int = -1) -> Tensor:
    """log softmax(x) = x - log Σ eˣ along ``axis``, computed stably."""
    return x.log_softmax(axis)


def step(x: Tensor) -> Tensor:
    """The perceptron's Heaviside step (1 where x > 0, else 0); its gradient is zero."""
    return x.step()


def identity(x: Tensor) -> Tensor:
    """x itself (the linear activation)."""
    return x


def linear(x: Any, weight: Tensor, bias: Tensor | None = None) -> Tensor:
    """y = x @ weightᵀ + bias as one fused node (weight of shape (out, in))."""
    if bias is None:
        return Linear.apply(_as_tensor(x), weight)
    return Linear.apply(_as_tensor(x), weight, bias)


def one_hot(labels: Any, num_classes: int, dtype: Any = np.float32) -> np.ndarray:
    """Rows of the identity: ``one_hot([2, 0], 3) == [[0, 0, 1], [1, 0, 0]]``."""
    idx = np.asarray(labels.data if isinstance(labels, Tensor) else labels)
    if idx.size == 0 and idx.dtype.kind == "f":  # an empty list: no labels, no rows
        idx = idx.astype(np.int64)
    if isinstance(num_classes, bool) or not isinstance(num_classes, (int, np.integer)):
        raise TypeError(f"one_hot: num_classes must be an int, got {num_classes!r}")
    if num_classes < 1:
        raise ValueError(f"one_hot: num_classes must be >= 1, got {num_classes}")
    _check_indices(idx, num_classes, "one_hot")
    out = np.eye(num_classes, dtype=dtype)[idx]
    note_derived(out, one_hot, (idx, num_classes, dtype))  # a replay encodes the labels again
    return out


# ---------------------------------------------------------------------- losses


def mse_loss(input: Tensor, target: Any, reduction: str = "mean") -> Tensor:
    """Squared error, as PyTorch's ``mse_loss``: mean of (input - target)² over all elements,
    their sum with ``reduction="sum"``, or elementwise with ``"none"``.

    Nielsen's quadratic cost C = 1/(2n) Σ ‖y - a‖² is ``mse_loss(a, y, reduction="sum") / (2n)``.
    """
    target = _target_like(input, target, "mse_loss")
    _check_reduction(reduction, "mse_loss", input)
    if reduction == "none":
        d = input - target
        return d * d
    scale = 1.0 / max(input.size, 1) if reduction == "mean" else 1.0
    return L.MSE.apply(input, target, scale=scale)


def quadratic_cost(input: Tensor, target: Any) -> Tensor:
    """Nielsen's quadratic cost C = 1/(2n) Σₓ ‖y(x) - a(x)‖² over a batch of n rows, as one
    fused node; equal to ``mse_loss(input, target, reduction="sum") / (2 * n)``.

    Its gradient is dC/da = (a - y) / n.
    """
    target = _target_like(input, target, "quadratic_cost")
    shape = input.data.shape
    n = shape[0] if len(shape) > 1 else 1
    return L.MSE.apply(input, target, scale=0.5 / max(n, 1))


def binary_cross_entropy(input: Tensor, target: Any, reduction: str = "mean") -> Tensor:
    """-(y log p + (1 - y) log(1 - p)) on probabilities p; the logs are clamped at -100 (as
    PyTorch does), so p = 0 or 1 never gives an infinite loss."""
    target = _target_like(input, target, "binary_cross_entropy")
    _check_reduction(reduction, "binary_cross_entropy", input)
    p = input.data
    if p.size and (np.min(p) < 0 or np.max(p) > 1):
        raise ValueError(
            "binary_cross_entropy: input must hold probabilities in [0, 1] (found values from "
            f"{np.min(p):g} to {np.max(p):g}); for logits use binary_cross_entropy_with_logits"
        )
    return _reduce(L.BinaryCrossEntropy.apply(input, target), reduction)


def binary_cross_entropy_with_logits(input: Tensor, target: Any, reduction: str = "mean") -> Tensor:
    """Binary cross-entropy of σ(z) against y, computed stably from the logits z:
    max(z, 0) - z·y + log(1 + e^-|z|); its gradient is σ(z) - y."""
    target = _target_like(input, target, "binary_cross_entropy_with_logits")
    _check_reduction(reduction, "binary_cross_entropy_with_logits", input)
    return _reduce(L.BinaryCrossEntropyWithLogits.apply(input, target), reduction)


def cross_entropy(input: Tensor, target: Any, reduction: str = "mean") -> Tensor:
    """Softmax cross-entropy of logits ``input`` (N, C) (or (C,)) against ``target``: integer
    class indices (N,) or one-hot / probability rows (N, C). Averaged over the batch by default,
    as PyTorch does. One fused node: the gradient is (softmax(z) - y) / N."""
    if not isinstance(input, Tensor):
        input = Tensor(input)
    _check_reduction(reduction, "cross_entropy", input)
    shape = input.data.shape
    if len(shape) not in (1, 2):
        raise ValueError(f"cross_entropy: logits must have shape (N, C) or (C,), got {input.shape}")
    t = target.data if isinstance(target, Tensor) else np.asarray(target)
    kind = t.dtype.kind
    if kind in "iu":
        expected = shape[:-1]
        if t.shape != expected:
            raise ValueError(
                f"cross_entropy: class-index target must have shape {expected} for logits of "
                f"shape {input.shape}, got {t.shape}"
            )
        _check_indices(t, shape[-1], "cross_entropy")
    elif kind == "f":
        if t.shape != shape:
            raise ValueError(
                f"cross_entropy: probability target must have the logits' shape {input.shape}, "
                f"got {t.shape}"
            )
        if t.dtype != input.dtype:
            if isinstance(target, Tensor):  # a tensor may need its gradient: a recorded cast
                target = target.astype(input.data.dtype)
                t = target.data
            else:
                cast = t.astype(input.dtype)
                note_derived(cast, _cast, (t, input.dtype))
                target = t = cast
    else:
        raise TypeError(f"cross_entropy: target must be integer or float, got dtype {t.dtype}")
    if isinstance(target, Tensor):  # passed as a tensor, so a captured step reads it afresh
        return L.SoftmaxCrossEntropy.apply(input, target, reduction=reduction)
    return L.SoftmaxCrossEntropy.apply(input, t, reduction=reduction)


def nll_loss(input: Tensor, target: Any, reduction: str = "mean") -> Tensor:
    """Negative log-likelihood of log-probabilities ``input`` (N, C) at class indices ``target``:
    -input[i, target_i], averaged over the batch by default."""
    input = _as_tensor(input)
    _check_reduction(reduction, "nll_loss", input)
    t = np.asarray(target.data if isinstance(target, Tensor) else target)
    if t.dtype.kind not in "iu":
        raise TypeError(f"nll_loss: target must hold integer class indices, got dtype {t.dtype}")
    if input.ndim != 2 or t.shape != input.shape[:1]:
        raise ValueError(
            f"nll_loss: expected input (N, C) and target (N,), got {input.shape} and {t.shape}"
        )
    _check_indices(t, input.shape[1], "nll_loss")
    picked = input[np.arange(input.shape[0]), t]
    return _reduce(-picked, reduction)


# ---------------------------------------------------------------------- helpers


def _as_tensor(x: Any) -> Tensor:
    return x if isinstance(x, Tensor) else Tensor(x)


def _target_like(input: Tensor, target: Any, fname: str) -> Any:
    if not isinstance(input, Tensor):
        raise TypeError(f"{fname}: input must be a Tensor, got {type(input).__name__}")
    if isinstance(target, Tensor):
        shape = target.shape
        if target.data.dtype.kind in "iub" and input.data.dtype.kind == "f":
            target = target.astype(input.data.dtype)  # as PyTorch: float32 stays float32
    else:
        target = np.asarray(target)
        if target.dtype.kind not in "fiub":
            raise TypeError(f"{fname}: target must hold numbers, got dtype {target.dtype}")
        if target.dtype != input.dtype:
            cast = target.astype(input.dtype)
            note_derived(cast, _cast, (target, input.dtype))
            target = cast
        shape = target.shape
    if shape != input.data.shape:
        raise ValueError(
            f"{fname}: input and target shapes differ: {input.shape} vs {shape} (no implicit "
            "broadcasting in losses; reshape the target, or one-hot encode class labels)"
        )
    return target


def _check_reduction(reduction: str, fname: str, input: Tensor | None = None) -> None:
    if reduction not in _REDUCTIONS:
        raise ValueError(f"{fname}: reduction must be one of {_REDUCTIONS}, got {reduction!r}")
    if reduction == "mean" and input is not None and input.data.size == 0:
        raise ValueError(
            f"{fname}: the input is empty (shape {input.shape}), and the mean of no losses is "
            "undefined; skip empty batches, or use reduction='sum' (0 for an empty batch)"
        )


def _check_indices(idx: np.ndarray, num_classes: int, fname: str) -> None:
    if idx.dtype.kind not in "iu":
        raise TypeError(f"{fname}: class indices must be integers, got dtype {idx.dtype}")
    # np.minimum.reduce is idx.min() without its Python layer (this runs at every step)
    if idx.size and (
        np.minimum.reduce(idx, axis=None) < 0 or np.maximum.reduce(idx, axis=None) >= num_classes
    ):
        bad = idx[(idx < 0) | (idx >= num_classes)].reshape(-1)[0]
        raise ValueError(
            f"{fname}: class index {bad} is out of range for {num_classes} classes "
            f"(valid: 0..{num_classes - 1})"
        )


def _reduce(loss: Tensor, reduction: str) -> Tensor:
    if reduction == "mean":
        return loss.mean()
    if reduction == "sum":
        return loss.sum()
    return loss
