"""Anomaly mode: find the first op whose forward or backward produces NaN or Inf.

Under ``detect_anomaly()`` every op records where the user's code created it (file:line) and
checks its output; the backward pass checks every gradient it computes. Off (the default), the
engine pays one attribute check per op.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np

from .autograd import STATE, Function

__all__ = ["detect_anomaly", "AnomalyError", "is_anomaly_enabled"]

_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__))


class AnomalyError(RuntimeError):
    """An op produced NaN or Inf while :func:`detect_anomaly` was on."""


def _user_site() -> str:
    """file:line of the innermost frame outside tinygrad_nn (the user's line that made the op)."""
    frame = sys._getframe(1)
    while frame is not None:
        path = os.path.abspath(frame.f_code.co_filename)
        if not path.startswith(_PACKAGE_DIR + os.sep):
            return f"{path}:{frame.f_lineno}"
        frame = frame.f_back
    return "<unknown>"


def _bad(a: Any) -> str | None:
    arr = np.asarray(a)
    if arr.dtype.kind not in "fc" or arr.size == 0:
        return None
    if np.isnan(arr).any():
        return "NaN"
    if np.isinf(arr).any():
        return "Inf"
    return None


def _shapes(inputs: Any) -> str:
    return ", ".join(str(tuple(np.shape(getattr(a, "data", a)))) for a in inputs)


def _site(node: Function) -> str:
    try:
        return node.site
    except AttributeError:
        return "unknown: the forward ran outside detect_anomaly(); run it inside to see"


class _AnomalyMode:
    """The checks the engine calls while anomaly mode is on."""

    def on_forward(self, node: Function, args: tuple[Any, ...], kwargs: Any, result: Any) -> None:
        out = result.data
        node.site = _user_site()
        kind = _bad(out)
        if kind is None:
            return
        already = [i for i, a in enumerate(args) if _bad(getattr(a, "data", a))]
        note = (
            f"; input {already[0]} already contained {_bad(getattr(args[already[0]], 'data', 0))}"
            if already
            else "; all its inputs were finite"
        )
        raise AnomalyError(
            f"detect_anomaly: {node.name} produced {kind} in forward (input shapes "
            f"{_shapes(args)}, output shape {out.shape}){note}.\n  created at {node.site}"
        )

    def on_module(self, module: Any) -> None:
        pass

    def on_backward(self, node: Function, grads: tuple[Any, ...]) -> None:
        for i, g in enumerate(grads):
            if g is None:
                continue
            kind = _bad(g)
            if kind is None:
                continue
            raise AnomalyError(
                f"detect_anomaly: the backward of {node.name} produced {kind} in the gradient "
                f"of its input {i} (input shapes {_shapes(node.inputs)}).\n"
                f"  the forward op whose backward produced it: {node.name}, created at "
                f"{_site(node)}"
            )


@contextmanager
def detect_anomaly() -> Iterator[None]:
    """Raise :class:`AnomalyError` at the first op that produces NaN or Inf, in forward or
    backward, naming the op, its input shapes and the file:line that created it (for a NaN born
    in backward, the forward op whose backward made it). Per thread; off by default."""
    prev = STATE.hook
    if prev is not None and not isinstance(prev, _AnomalyMode):
        raise RuntimeError("detect_anomaly cannot run inside a step capture")
    STATE.hook = _AnomalyMode()
    try:
        yield
    finally:
        STATE.hook = prev


def is_anomaly_enabled() -> bool:
    """Whether :func:`detect_anomaly` is on in the current thread."""
    return isinstance(STATE.hook, _AnomalyMode)
