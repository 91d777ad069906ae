"""Stochastic gradient descent, with momentum, dampening, Nesterov and L2 weight decay."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np

from .optimizer import Optimizer, check_number

__all__ = ["SGD"]


class SGD(Optimizer):
    r"""Stochastic gradient descent, with the update rule PyTorch documents for ``optim.SGD``.

    At every step, for each parameter :math:`\theta` with gradient :math:`\nabla`::

        g = -∇ if maximize else ∇
        g = g + λθ                           (weight_decay λ ≠ 0: an L2 penalty)
        b = g               at the first step  (momentum μ ≠ 0)
        b = μb + (1 - τ)g   afterwards         (τ: dampening)
        g = g + μb if nesterov else b
        θ = θ - γg                           (γ: lr)

    With ``momentum=0`` this is plain gradient descent θ ← θ - γ∇, Nielsen's rule. Note that the
    velocity b accumulates gradients, not ``lr * gradient`` (as in Sutskever et al.), so changing
    ``lr`` mid-run rescales the whole step at once.
    """

    def __init__(
        self,
        params: Iterable[Any],
        lr: float,
        momentum: float = 0.0,
        dampening: float = 0.0,
        nesterov: bool = False,
        weight_decay: float = 0.0,
        *,
        maximize: bool = False,
    ) -> None:
        defaults = dict(
            lr=lr,
            momentum=momentum,
            dampening=dampening,
            nesterov=nesterov,
            weight_decay=weight_decay,
            maximize=maximize,
        )
        super().__init__(params, defaults)

    def _check_group(self, group: dict[str, Any], index: int) -> None:
        owner = "SGD" if index == 0 else f"SGD (param group {index})"
        group["lr"] = check_number(owner, "lr", group["lr"])
        group["momentum"] = check_number(owner, "momentum", group["momentum"])
        group["dampening"] = check_number(owner, "dampening", group["dampening"], high=1.0)
        group["weight_decay"] = check_number(owner, "weight_decay", group["weight_decay"])
        for flag in ("nesterov", "maximize"):
            if not isinstance(group[flag], (bool, np.bool_)):
                raise TypeError(f"{owner}: {flag} must be True or False, got {group[flag]!r}")
            group[flag] = bool(group[flag])
        if group["nesterov"] and (group["momentum"] <= 0 or group["dampening"] != 0):
            raise ValueError(
                f"{owner}: nesterov=True needs momentum > 0 and dampening = 0, got "
                f"momentum={group['momentum']} and dampening={group['dampening']}"
            )

    def _state_keys(self, group: dict[str, Any]) -> tuple[str, ...]:
        return ("momentum_buffer",) if group["momentum"] else ()

    def _step_group(self, group: dict[str, Any]) -> None:
        lr = float(group["lr"])
        mu = float(group["momentum"])
        keep = 1.0 - float(group["dampening"])
        wd = float(group["weight_decay"])
        nesterov, maximize = group["nesterov"], group["maximize"]
        for p in group["params"]:
            g = self._grad(p)
            if g is None:
                continue
            w = p.data
            s = self._buffers(p, 1)[0]
            if wd:
                np.multiply(w, wd, out=s)
                if maximize:
                    s -= g
                else:
                    s += g
                g = s
            elif maximize:
                np.negative(g, out=s)
                g = s
            if mu:
                state = self.state.get(p)
                if state is None:
                    buf = np.array(g, dtype=w.dtype, copy=True)
                    self.state[p] = {"momentum_buffer": buf}
                else:
                    buf = state["momentum_buffer"]
                    buf *= mu
                    if keep != 1.0:
                        # dampening > 0 excludes nesterov, so g may be overwritten here
                        np.multiply(g, keep, out=s)
                        buf += s
                    else:
                        buf += g
                if nesterov:
                    if g is s:
                        s2 = self._buffers(p, 2)[1]
                        np.multiply(buf, mu, out=s2)
                        s += s2
                    else:
                        np.multiply(buf, mu, out=s)
                        s += g
                    g = s
                else:
                    g = buf
            np.multiply(g, -lr, out=s)
            w += s
