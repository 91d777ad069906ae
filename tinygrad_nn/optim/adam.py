"""Adam and AdamW: moment estimates with bias correction; AdamW decays the weights apart."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from .flat import WHOLE, FlatGroup
from .optimizer import Optimizer, check_flag, check_number

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
            group[flag] = check_flag(owner, flag, group[flag])

    def _state_keys(self, group: dict[str, Any]) -> tuple[str, ...]:
        keys = ("step", "exp_avg", "exp_avg_sq")
        return keys + ("max_exp_avg_sq",) if group["amsgrad"] else keys

    _flat_steps = True

    def _options(self, group: dict[str, Any]) -> tuple[Any, ...]:
        """(lr, β1, β2, ε, λ, decoupled, maximize) as :func:`_adam_update` takes them."""
        beta1, beta2 = group["betas"]
        return (
            float(group["lr"]),
            float(beta1),
            float(beta2),
            float(group["eps"]),
            float(group["weight_decay"]),
            self._decoupled,
            group["maximize"],
        )

    def _step_group(self, group: dict[str, Any]) -> None:
        options = self._options(group)
        amsgrad, n = group["amsgrad"], _scratch_count(options)
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
            t = state["step"] = state["step"] + 1
            vmax = None
            if amsgrad:
                vmax = state.get("max_exp_avg_sq")
                if vmax is None:  # amsgrad switched on mid-run: the maximum starts from here
                    vmax = state["max_exp_avg_sq"] = np.zeros_like(w)
            m, v = state["exp_avg"], state["exp_avg_sq"]
            bufs = self._buffers(p, n)
            _adam_update(w, (g,), WHOLE, m, v, vmax, bufs[0], bufs[n - 1], t, options)

    def _step_flat(self, group: dict[str, Any], flat: FlatGroup, grads: list[np.ndarray]) -> bool:
        states, _ = self._flat_state(group, flat)
        if states is None:
            return False
        t = states[0]["step"] + 1
        for s in states:
            s["step"] = t
        options = self._options(group)
        m, v = flat.state("exp_avg"), flat.state("exp_avg_sq")
        vmax = flat.state("max_exp_avg_sq") if group["amsgrad"] else None
        n = _scratch_count(options)
        bufs = flat.scratch(n)
        grads, layout = flat.layout(grads)
        _adam_update(flat.data, grads, layout, m, v, vmax, bufs[0], bufs[n - 1], t, options)
        return True


def _scratch_count(options: tuple[Any, ...]) -> int:
    """How many scratch arrays :func:`_adam_update` uses: two with Adam's (L2) weight decay."""
    _, _, _, _, wd, decoupled, _ = options
    return 2 if wd and not decoupled else 1


def _adam_update(
    w: np.ndarray,
    grads: Sequence[np.ndarray],
    layout: Any,
    m: np.ndarray,
    v: np.ndarray,
    vmax: np.ndarray | None,
    tmp: np.ndarray,
    s: np.ndarray,
    t: int,
    options: tuple[Any, ...],
) -> None:
    """Adam's rule at step ``t``, in place, on weights ``w``: one parameter's array (``layout``
    WHOLE) or a whole group's flat array (``layout`` its FlatGroup), ``grads`` the gradients of
    its parts, moments ``m``, ``v`` (and ``vmax`` with amsgrad, else None), scratch ``tmp`` and
    ``s`` (``s`` used only by Adam's L2 decay); ``options`` from :meth:`Adam._options`.

    The gradients are read only by the first operations on them, once per part; maximize is
    folded into the signs of those operations (negation is exact, so the results are those of
    negating first, bit for bit)."""
    lr, beta1, beta2, eps, wd, decoupled, maximize = options
    parts = layout.parts
    if decoupled and wd:
        w *= 1.0 - lr * wd
    elif wd:  # g ← g + λθ (or λθ - ∇ when maximizing), into s; then one part: s
        np.multiply(w, wd, out=s)
        for g, o in zip(grads, parts(s)):
            if maximize:
                np.subtract(o, g, out=o)
            else:
                np.add(o, g, out=o)
        grads, parts, maximize = (s,), WHOLE.parts, False
    # m ← m + (1 - β1)(g - m), PyTorch's lerp; with maximize g - m = -(∇ + m)
    for g, a, o in zip(grads, parts(m), parts(tmp)):
        if maximize:
            np.add(g, a, out=o)
        else:
            np.subtract(g, a, out=o)
    tmp *= -(1.0 - beta1) if maximize else 1.0 - beta1
    m += tmp
    # v ← β2·v + (1 - β2)·g²
    for g, o in zip(grads, parts(tmp)):
        np.multiply(g, g, out=o)
    tmp *= 1.0 - beta2
    v *= beta2
    v += tmp
    if vmax is not None:
        np.maximum(vmax, v, out=vmax)
        v = vmax
    # PyTorch's θ ← θ - γ/(1 - β1^t) · m / (√v / √(1 - β2^t) + ε), multiplied out by
    # √(1 - β2^t): θ ← θ - γ·√(1 - β2^t)/(1 - β1^t) · m / (√v + ε·√(1 - β2^t)) is the same
    # maths (last-bit rounding apart) with one pass over the parameters fewer
    c2 = math.sqrt(1.0 - beta2**t)
    np.sqrt(v, out=tmp)
    tmp += eps * c2
    np.divide(m, tmp, out=tmp)
    tmp *= -lr * c2 / (1.0 - beta1**t)
    w += tmp


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
