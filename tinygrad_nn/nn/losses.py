"""Loss modules: each holds its ``reduction`` and calls the function in ``functional.py``."""

from __future__ import annotations

from typing import Any

from ..tensor import Tensor
from . import functional as F
from .module import Module

__all__ = ["MSELoss", "BCELoss", "BCEWithLogitsLoss", "CrossEntropyLoss", "NLLLoss"]


class _Loss(Module):
    _fn: Any = None

    def __init__(self, reduction: str = "mean") -> None:
        super().__init__()
        F._check_reduction(reduction, type(self).__name__)
        self.reduction = reduction

    def forward(self, input: Tensor, target: Any) -> Tensor:
        return type(self)._fn(input, target, reduction=self.reduction)

    def extra_repr(self) -> str:
        return f"reduction={self.reduction!r}"


class MSELoss(_Loss):
    """Mean (or sum) of squared errors; see :func:`functional.mse_loss`."""

    _fn = staticmethod(F.mse_loss)


class BCELoss(_Loss):
    """Binary cross-entropy on probabilities; see :func:`functional.binary_cross_entropy`."""

    _fn = staticmethod(F.binary_cross_entropy)


class BCEWithLogitsLoss(_Loss):
    """Binary cross-entropy on logits; see :func:`functional.binary_cross_entropy_with_logits`."""

    _fn = staticmethod(F.binary_cross_entropy_with_logits)


class CrossEntropyLoss(_Loss):
    """Softmax cross-entropy on logits; see :func:`functional.cross_entropy`."""

    _fn = staticmethod(F.cross_entropy)


class NLLLoss(_Loss):
    """Negative log-likelihood on log-probabilities; see :func:`functional.nll_loss`."""

    _fn = staticmethod(F.nll_loss)
