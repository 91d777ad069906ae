"""Learning-rate schedules: each sets ``group["lr"]`` of an optimizer from the epoch count.

Call ``scheduler.step()`` once per epoch, after the epoch's ``optimizer.step()`` calls. Every
schedule is a closed form of the epoch and the group's initial lr (``group["initial_lr"]``), so
it has no drift and resumes exactly from its ``state_dict``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from .optimizer import Optimizer, check_number

__all__ = ["LRScheduler", "StepLR", "ExponentialLR", "CosineAnnealingLR"]


class LRScheduler:
    """Base of the schedules: ``step()``, ``get_last_lr()``, ``state_dict()``.

    At construction a group without an ``initial_lr`` gets one (its current lr) and epoch 0's
    lr: the initial lr for the schedules here, a warm-up's first lr for one of your own (as
    PyTorch's ``LambdaLR``). A group that has one already (from a loaded optimizer state, or an
    earlier schedule) keeps its lr, as PyTorch's schedules here do. To resume:
    ``optimizer.load_state_dict(...)``, build the schedule, ``scheduler.load_state_dict(...)``;
    the next :meth:`step` continues as the uninterrupted run would.
    """

    def __init__(self, optimizer: Optimizer) -> None:
        if not isinstance(optimizer, Optimizer):
            raise TypeError(
                f"{type(self).__name__}: expected an optimizer (e.g. optim.SGD), got "
                f"{type(optimizer).__name__}"
            )
        if type(self).lr_at is LRScheduler.lr_at:
            self.lr_at(0.0, 0)  # raises: a schedule without lr_at fails here, not at step()
        self.optimizer = optimizer
        starts = []  # per group: whether this schedule starts it (no initial_lr yet)
        for group in optimizer.param_groups:
            starts.append("initial_lr" not in group)
            group.setdefault("initial_lr", group["lr"])
        self.base_lrs = [float(group["initial_lr"]) for group in optimizer.param_groups]
        self.last_epoch = 0
        # epoch 0's lr where the schedule starts (a warm-up's first lr); a group that already
        # has its initial_lr (from a loaded state dict, or an earlier schedule) keeps its lr
        for group, base, start in zip(optimizer.param_groups, self.base_lrs, starts):
            if start:
                group["lr"] = self.lr_at(base, 0)
        self._last_lr: list[float] = [group["lr"] for group in optimizer.param_groups]

    def lr_at(self, base_lr: float, epoch: int) -> float:
        """The learning rate of ``epoch`` for a group that started at ``base_lr``."""
        raise NotImplementedError(f"{type(self).__name__} has no lr_at()")

    def step(self) -> None:
        """Advance one epoch and set every group's lr."""
        self.last_epoch += 1
        self._apply()

    def _apply(self) -> None:
        lrs = [self.lr_at(base, self.last_epoch) for base in self.base_lrs]
        for group, lr in zip(self.optimizer.param_groups, lrs):
            group["lr"] = lr
        self._last_lr = lrs

    def get_last_lr(self) -> list[float]:
        """The lr of each group, as last set by this schedule."""
        return list(self._last_lr)

    def state_dict(self) -> dict[str, Any]:
        """Everything but the optimizer (which has its own ``state_dict``)."""
        return {
            k: (list(v) if isinstance(v, list) else v)
            for k, v in self.__dict__.items()
            if k != "optimizer"
        }

    def load_state_dict(self, state_dict: Mapping[str, Any]) -> None:
        """Restore a :meth:`state_dict`. The optimizer's lrs are not changed: they come from its
        own state dict (as in PyTorch), loaded before or after this one."""
        name = type(self).__name__
        mine = self.state_dict()
        if not isinstance(state_dict, Mapping) or set(state_dict) != set(mine):
            got = sorted(state_dict) if isinstance(state_dict, Mapping) else type(state_dict)
            raise ValueError(f"{name}.load_state_dict: expected the keys {sorted(mine)}, got {got}")
        if len(state_dict["base_lrs"]) != len(self.base_lrs):
            raise ValueError(
                f"{name}.load_state_dict: the state dict has "
                f"{len(state_dict['base_lrs'])} groups, the optimizer "
                f"{len(self.base_lrs)}"
            )
        for k, v in state_dict.items():
            setattr(self, k, list(v) if isinstance(v, (list, tuple)) else v)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(last_epoch={self.last_epoch}, lr={self._last_lr})"


class StepLR(LRScheduler):
    """lr = initial_lr · gamma^⌊epoch / step_size⌋: divide by 1/gamma every ``step_size``
    epochs."""

    def __init__(self, optimizer: Optimizer, step_size: int, gamma: float = 0.1) -> None:
        if isinstance(step_size, bool) or not isinstance(step_size, int) or step_size < 1:
            raise ValueError(f"StepLR: step_size must be an int >= 1, got {step_size!r}")
        self.step_size = step_size
        self.gamma = check_number("StepLR", "gamma", gamma)
        super().__init__(optimizer)

    def lr_at(self, base_lr: float, epoch: int) -> float:
        return base_lr * self.gamma ** (epoch // self.step_size)


class ExponentialLR(LRScheduler):
    """lr = initial_lr · gamma^epoch."""

    def __init__(self, optimizer: Optimizer, gamma: float) -> None:
        self.gamma = check_number("ExponentialLR", "gamma", gamma)
        super().__init__(optimizer)

    def lr_at(self, base_lr: float, epoch: int) -> float:
        return base_lr * self.gamma**epoch


class CosineAnnealingLR(LRScheduler):
    """lr = eta_min + (initial_lr - eta_min) · (1 + cos(π · epoch / T_max)) / 2.

    Half a cosine from the initial lr down to ``eta_min`` over ``T_max`` epochs (SGDR without
    restarts); past ``T_max`` it rises again, as the formula (and PyTorch) say.
    """

    def __init__(self, optimizer: Optimizer, T_max: int, eta_min: float = 0.0) -> None:
        if isinstance(T_max, bool) or not isinstance(T_max, int) or T_max < 1:
            raise ValueError(f"CosineAnnealingLR: T_max must be an int >= 1, got {T_max!r}")
        self.T_max = T_max
        self.eta_min = check_number("CosineAnnealingLR", "eta_min", eta_min)
        super().__init__(optimizer)

    def lr_at(self, base_lr: float, epoch: int) -> float:
        cos = math.cos(math.pi * epoch / self.T_max)
        return self.eta_min + (base_lr - self.eta_min) * (1.0 + cos) / 2.0
