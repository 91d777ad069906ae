"""Adam and AdamW: moment estimates with bias correction; AdamW decays the weights apart."""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import numpy as np

from .optimizer import Optimizer, check_number

__all__ = ["Adam", "AdamW"]


class Adam(Optimizer):
    r"""Adam (Kingma & Ba), with the update rule PyTorch documents for ``optim.Adam``.

    At step t (counting from 1), for each parameter θ with gradient ∇::

        g = -∇ if maximize else ∇
        g = g + λθ                          (weight_decay λ ≠ 0: an L2 penalty, added to g)
        m = β1·m + (1 - β1)·g               (first moment, m starts at 0)
        v = β2·v + (1 - β2)·g²              (second moment, v starts at 0)
        v_max = max(v_max, v)               (amsgrad only; then v_max replaces v below)
        m̂ = m / (1 - β1^t),  v̂ = v / (1 - β2^t)
        θ = θ - γ·m̂ / (√v̂ + ε)

    As in PyTorch, amsgrad keeps the running maximum of v and bias-corrects that maximum.
    """

    _decoupled = False

    def __init__(
        self,
        params: Iterable[Any],
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        amsgrad: bool = False,
        *,
        maximize: bool = False,
    ) -> None:
        defaults = dict(
            lr=lr,
            betas=betas,
            eps=eps,
            weight_decay=weight_decay,
            amsgrad=amsgrad,
            maximize=maximize,
        )
        super().__init__(params, defaults)

    def _check_group(self, group: dict[str, Any], index: int) -> None:
        name = type(self).__name__
        owner = name if index == 0 else f"{name} (param group {index})"
        group["lr"] = check_number(owner, "lr", group["lr"])
        betas = group["betas"]
        if not isinstance(betas, (tuple, list)) or len(betas) != 2:
            raise TypeError(f"{owner}: betas must be a pair (beta1, beta2), got {betas!r}")
        group["betas"] = (
            check_number(owner, "betas[0]", betas[0], high=1.0, high_open=True),
            check_number(owner, "betas[1]", betas[1], high=1.0, high_open=True),
        )
        group["eps"] = check_number(owner, "eps", group["eps"])
        group["weight_decay"] = check_number(owner, "weight_decay", group["weight_decay"])
        for flag in ("amsgrad", "maximize"):
            if not isinstance(group[flag], (bool, np.bool_)):
                raise TypeError(f"{owner}: {flag} must be True or False, got {group[flag]!r}")
            group[flag] = bool(group[flag])

    def _state_keys(self, group: dict[str, Any]) -> tuple[str, ...]:
        keys = ("step", "exp_avg", "exp_avg_sq")
        return keys + ("max_exp_avg_sq",) if group["amsgrad"] else keys

    def _step_group(self, group: dict[str, Any]) -> None:
        lr = float(group["lr"])
        beta1, beta2 = group["betas"]
        beta1, beta2 = float(beta1), float(beta2)
        eps = float(group["eps"])
        wd = float(group["weight_decay"])
        amsgrad, maximize = group["amsgrad"], group["maximize"]
        decoupled = self._decoupled
        for p in group["params"]:
            g = self._grad(p)
            if g is None:
                continue
            w = p.data
            state = self.state.get(p)
            if state is None:
                state = {"step": 0, "exp_avg": np.zeros_like(w), "exp_avg_sq": np.zeros_like(w)}
                if amsgrad:
                    state["max_exp_avg_sq"] = np.zeros_like(w)
                self.state[p] = state
            m, v = state["exp_avg"], state["exp_avg_sq"]
            t = state["step"] = state["step"] + 1

            if decoupled and wd:
                w *= 1.0 - lr * wd
            if (wd and not decoupled) or maximize:
                s, tmp = self._buffers(p, 2)
                if wd and not decoupled:
                    np.multiply(w, wd, out=s)
                    if maximize:
                        s -= g
                    else:
                        s += g
                else:
                    np.negative(g, out=s)
                g = s
            else:
                tmp = s = self._buffers(p, 1)[0]
            # m += (1 - β1)(g - m), v = β2·v + ((1 - β2)·g)·g: the orders PyTorch's kernels use
            np.subtract(g, m, out=tmp)
            tmp *= 1.0 - beta1
            m += tmp
            v *= beta2
            np.multiply(g, 1.0 - beta2, out=tmp)
            tmp *= g
            v += tmp
            if amsgrad:
                vmax = state.get("max_exp_avg_sq")
                if vmax is None:  # amsgrad switched on mid-run: the maximum starts from here
                    vmax = state["max_exp_avg_sq"] = np.zeros_like(w)
                np.maximum(vmax, v, out=vmax)
                v = vmax
            # θ -= (γ / (1 - β1^t)) · m / (√v / √(1 - β2^t) + ε)
            np.sqrt(v, out=s)
            s /= math.sqrt(1.0 - beta2**t)
            s += eps
            np.divide(m, s, out=s)
            s *= -lr / (1.0 - beta1**t)
            w += s


class AdamW(Adam):
    r"""Adam with decoupled weight decay (Loshchilov & Hutter), as PyTorch's ``optim.AdamW``.

    Before the Adam step (which then has no L2 term), the weights shrink: θ ← θ·(1 - γλ). The
    decay is not scaled by the adaptive denominator, unlike Adam's ``weight_decay``.
    """

    _decoupled = True

    def __init__(
        self,
        params: Iterable[Any],
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 1e-2,
        amsgrad: bool = False,
        *,
        maximize: bool = False,
    ) -> None:
        super().__init__(
            params,
            lr=lr,
            betas=betas,
            eps=eps,
            weight_decay=weight_decay,
            amsgrad=amsgrad,
            maximize=maximize,
        )
