"""Stochastic gradient descent, with momentum, dampening, Nesterov and L2 weight decay."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import numpy as np

from .flat import WHOLE, FlatGroup
from .optimizer import Optimizer, check_flag, check_number

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
            group[flag] = check_flag(owner, flag, group[flag])
        if group["nesterov"] and (group["momentum"] <= 0 or group["dampening"] != 0):
            raise ValueError(
                f"{owner}: nesterov=True needs momentum > 0 and dampening = 0, got "
                f"momentum={group['momentum']} and dampening={group['dampening']}"
            )

    def _state_keys(self, group: dict[str, Any]) -> tuple[str, ...]:
        return ("momentum_buffer",) if group["momentum"] else ()

    _flat_steps = True

    @staticmethod
    def _options(group: dict[str, Any]) -> tuple[Any, ...]:
        """(lr, μ, 1 - τ, λ, nesterov, maximize) as :func:`_sgd_update` takes them."""
        return (
            float(group["lr"]),
            float(group["momentum"]),
            1.0 - float(group["dampening"]),
            float(group["weight_decay"]),
            group["nesterov"],
            group["maximize"],
        )

    def _plain_update(self) -> tuple[Callable[[], float | None], FlatGroup] | None:
        """For one group laid out flat: ``(lr_now, flat)``, the group's flat layout and a
        function giving γ when :meth:`step` would do exactly plain SGD's θ ← θ - γ∇ on the
        whole buffer now (no momentum, weight decay or maximize), None when the optimizer is in
        another state; None in other layouts. The caller (a captured step's plan) checks that
        the group's parameter list is still the one laid out, and that ``step()``, ``zero_grad()``
        and the update hooks are still ours."""
        flats = self._flats
        if len(self.param_groups) != 1 or len(flats) != 1 or type(flats[0]) is not FlatGroup:
            return None
        group, flat, groups = self.param_groups[0], flats[0], self.param_groups

        def lr_now() -> float | None:
            lr = group["lr"]
            if (
                type(lr) is not float
                or not 0.0 <= lr < math.inf
                or group["momentum"]
                or group["weight_decay"]
                or group["maximize"]
                or self.param_groups is not groups
                or groups[0] is not group
                or len(groups) != 1
                or self._flats is not flats
                or flats[0] is not flat
            ):
                return None
            return lr

        return lr_now, flat

    def _captured_step(self) -> Callable[[], Any]:
        """With every gradient in the flat gradient buffer (as a captured step leaves them):
        plain SGD's update θ ← θ - γ∇ on the whole buffer, without the checks of :meth:`step`,
        which runs instead whenever the optimizer is in another state (see
        :meth:`_plain_update`)."""
        plain = self._plain_update()
        if plain is None or plain[1].grad is None:
            return self.step
        lr_now, flat = plain
        data, grad, full = flat.data, flat.grad, self.step

        def step() -> None:
            lr = lr_now()
            if lr is None:
                full()
            else:  # what _sgd_update does for plain SGD on the one-array layout
                np.add(data, grad * -lr, out=data)

        return step

    def _step_group(self, group: dict[str, Any]) -> None:
        options = self._options(group)
        mu, n = options[1], _scratch_count(options)
        for p in group["params"]:
            g = self._grad(p)
            if g is None:
                continue
            w = p.data
            bufs = self._buffers(p, n) if n else [None]
            buf, first = None, False
            if mu:
                state = self.state.get(p)
                first = state is None
                if first:
                    buf = np.empty_like(w)
                    self.state[p] = {"momentum_buffer": buf}
                else:
                    buf = state["momentum_buffer"]
            _sgd_update(w, (g,), WHOLE, buf, first, bufs[0], bufs[n - 1], options)

    def _step_flat(self, group: dict[str, Any], flat: FlatGroup, grads: list[np.ndarray]) -> bool:
        options = self._options(group)
        buf, first = None, False
        if options[1]:
            states, first = self._flat_state(group, flat)
            if states is None:
                return False
            buf = flat.state("momentum_buffer")
        n = _scratch_count(options)
        bufs = flat.scratch(n) if n else [None]
        grads, layout = flat.layout(grads)
        _sgd_update(flat.data, grads, layout, buf, first, bufs[0], bufs[n - 1], options)
        return True


def _scratch_count(options: tuple[Any, ...]) -> int:
    """How many scratch arrays :func:`_sgd_update` uses: none for plain SGD (its one temporary
    lives only during the update), two for Nesterov with weight decay, one otherwise."""
    _, mu, _, wd, nesterov, _ = options
    if not mu and not wd:
        return 0
    return 2 if nesterov and wd else 1


def _sgd_update(
    w: np.ndarray,
    grads: Sequence[np.ndarray],
    layout: Any,
    buf: np.ndarray | None,
    first: bool,
    s: np.ndarray,
    s2: np.ndarray,
    options: tuple[Any, ...],
) -> None:
    """SGD's rule, in place, on weights ``w``: one parameter's array (``layout`` WHOLE) or a
    whole group's flat array (``layout`` its FlatGroup), ``grads`` the gradients of its parts,
    ``buf`` the momentum buffer (None without momentum; set to the gradient at the ``first``
    step), ``s`` and ``s2`` scratch (``s2`` used only by Nesterov with weight decay; both None
    for plain SGD, which needs none);
    ``options`` from :meth:`SGD._options`.

    The gradients are read only by the first operation on them, once per part; maximize is
    folded into the signs of the operations that read them (negation is exact, so the results
    are those of negating first, bit for bit)."""
    lr, mu, keep, wd, nesterov, maximize = options
    parts = layout.parts
    if wd:  # g ← g + λθ (or λθ - ∇ when maximizing), into s; then one part: s
        np.multiply(w, wd, out=s)
        for g, o in zip(grads, parts(s)):
            if maximize:
                np.subtract(o, g, out=o)
            else:
                np.add(o, g, out=o)
        grads, parts, maximize = (s,), WHOLE.parts, False
    if buf is None:  # θ ← θ - γg
        c = lr if maximize else -lr
        if s is None:  # no scratch kept: γg is a temporary, freed at once
            for g, o in zip(grads, parts(w)):
                o += g * c
            return
        for g, o in zip(grads, parts(s)):
            np.multiply(g, c, out=o)
        w += s
        return
    if first:  # b ← g
        for g, o in zip(grads, parts(buf)):
            if maximize:
                np.negative(g, out=o)
            else:
                np.copyto(o, g)
    else:  # b ← μb + (1 - τ)g
        buf *= mu
        if keep != 1.0:
            for g, o in zip(grads, parts(s)):
                np.multiply(g, -keep if maximize else keep, out=o)
            buf += s
        else:
            for g, o in zip(grads, parts(buf)):
                if maximize:
                    np.subtract(o, g, out=o)
                else:
                    np.add(o, g, out=o)
    if nesterov:  # θ ← θ - γ(g + μb)
        d = s2 if grads[0] is s else s
        np.multiply(buf, mu, out=d)
        for g, o in zip(grads, parts(d)):
            if maximize:
                np.subtract(o, g, out=o)
            else:
                np.add(o, g, out=o)
        d *= -lr
        w += d
    else:  # θ ← θ - γb
        np.multiply(buf, -lr, out=s)
        w += s
