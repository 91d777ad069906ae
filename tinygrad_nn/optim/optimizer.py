"""``Optimizer``: parameter groups, per-parameter state, ``zero_grad``/``step`` and checkpoints.

Each subclass writes ``_step_group(group)``, which updates the arrays ``p.data`` of a group in
place from their ``p.grad``, one parameter at a time, outside the graph; SGD and Adam also write
``_step_flat``, the same update on a whole group at once. For that, at its first step a group's
parameters are laid out in one flat buffer (:class:`~tinygrad_nn.optim.flat.FlatGroup`: every
``p.data`` becomes a view of it), and so are the state and the scratch arrays: a step is then a
handful of numpy calls however many parameters there are. Before each step the layout is
checked (``p.data`` still the view it was given, every gradient present); a ``p.data`` replaced
by the user is copied back in, and what does not fit (a missing gradient, mixed dtypes,
parameters sharing memory, step counts that differ) takes the per-parameter path, whose results
are the same to the last bit.

State (momentum buffers, moment estimates, step counts) lives in ``optimizer.state[p]`` (views
into the flat buffers once laid out); scratch arrays that hold nothing between steps live
apart, so that a step allocates nothing once they exist.
"""

from __future__ import annotations

import copy
import itertools
import math
from collections.abc import Callable, Iterable, Mapping
from numbers import Real
from typing import Any

import numpy as np

from ..autograd import MUTATIONS, enable_grad
from ..tensor import Tensor
from .flat import FlatGroup

__all__ = ["Optimizer", "OptimizerStateError"]

# the methods step() makes an update through, which a subclass may override to make its own
UPDATE_HOOKS = ("_options", "_step_group", "_step_flat", "_flat_grads", "_grad")


class OptimizerStateError(ValueError):
    """``load_state_dict`` got a state dict that does not fit this optimizer (all misfits named)."""


def check_number(
    owner: str,
    name: str,
    value: Any,
    low: float = 0.0,
    high: float = math.inf,
    high_open: bool = False,
) -> float:
    """``value`` as a Python float, or a ValueError naming it unless ``low <= value <= high``
    (``< high`` with ``high_open``). Python floats keep float32 arrays float32 (NEP 50)."""
    if isinstance(value, bool) or not isinstance(value, Real):
        raise TypeError(f"{owner}: {name} must be a number, got {value!r} ({type(value).__name__})")
    v = float(value)
    ok = math.isfinite(v) and low <= v and (v < high if high_open else v <= high)
    if not ok:
        bound = (
            f"in [{low}, {high})"
            if high_open
            else (f">= {low}" if high == math.inf else f"in [{low}, {high}]")
        )
        raise ValueError(f"{owner}: invalid {name}={value!r}; it must be a finite number {bound}")
    return v


def check_flag(owner: str, name: str, value: Any) -> bool:
    """``value`` as a Python bool, or a TypeError naming it."""
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{owner}: {name} must be True or False, got {value!r}")
    return bool(value)


class Optimizer:
    """Base of the optimizers: holds ``param_groups`` and ``state``.

    ``params`` is an iterable of parameters (e.g. ``model.parameters()``) or a list of dicts, one
    per group, ``{"params": [...], "lr": 0.01, ...}``; options a group leaves out come from
    ``defaults``. A parameter may appear only once across all groups.

    SGD and Adam move each group's parameters into one buffer at their first step (see the
    module docstring): ``p.data`` then becomes a view of it, with the same values, and stays
    that view. An array taken from ``p.data`` before that step may no longer be the
    parameter's; one assigned to ``p.data`` later is copied into the buffer at the next step.
    """

    def __init__(self, params: Iterable[Any], defaults: Mapping[str, Any]) -> None:
        self.defaults = dict(defaults)
        self.param_groups: list[dict[str, Any]] = []
        self.state: dict[Tensor, dict[str, Any]] = {}
        self._scratch: dict[Tensor, list[np.ndarray]] = {}
        # per group (by position): its FlatGroup, or the (param, data) ids it could not be laid
        # out with, or None before its first step
        self._flats: list[FlatGroup | tuple[int, ...] | None] = []
        name = type(self).__name__
        if isinstance(params, Tensor):
            raise TypeError(
                f"{name}: params must be an iterable of Parameters or of param-group dicts, "
                f"got a single Tensor; wrap it in a list: {name}([w], ...)"
            )
        if isinstance(params, Mapping):
            raise TypeError(
                f"{name}: params must be an iterable of Parameters or a list of param-group "
                f"dicts, got a single dict; wrap it in a list: {name}([group], ...)"
            )
        if hasattr(params, "parameters") and callable(params.parameters):
            raise TypeError(
                f"{name}: got a {type(params).__name__}; pass its parameters: "
                f"{name}(model.parameters(), ...)"
            )
        try:
            items = list(params)
        except TypeError:
            raise TypeError(
                f"{name}: params must be an iterable of Parameters or of param-group dicts, "
                f"got {type(params).__name__}"
            ) from None
        if not items:
            raise ValueError(f"{name}: got an empty parameter list; nothing to optimize")
        if all(isinstance(g, Mapping) for g in items):
            groups = [dict(g) for g in items]
        elif any(isinstance(g, Mapping) for g in items):
            raise TypeError(f"{name}: params mixes param-group dicts and parameters; use one kind")
        else:
            groups = [{"params": items}]
        for group in groups:
            self.add_param_group(group)

    def __getstate__(self) -> dict[str, Any]:
        # the layouts are a cache of views into arrays that copy.deepcopy and pickle would copy
        # apart; they are laid out again at the next step
        return {**self.__dict__, "_flats": []}

    # ------------------------------------------------------------------ groups
    def add_param_group(self, param_group: Mapping[str, Any]) -> None:
        """Add a group ``{"params": [...], option: value, ...}``; missing options take the
        defaults. Useful to start training layers that were frozen."""
        name = type(self).__name__
        index = len(self.param_groups)
        if not isinstance(param_group, Mapping):
            raise TypeError(
                f"{name}: a param group must be a dict, got {type(param_group).__name__}"
            )
        group = dict(param_group)
        if "params" not in group:
            raise ValueError(f"{name}: param group {index} has no 'params' entry")
        params = group["params"]
        params = [params] if isinstance(params, Tensor) else list(params)
        if not params:
            raise ValueError(f"{name}: param group {index} has an empty parameter list")
        seen = {id(p): i for i, g in enumerate(self.param_groups) for p in g["params"]}
        for j, p in enumerate(params):
            where = f"param group {index}, parameter {j}"
            if not isinstance(p, Tensor):
                raise TypeError(
                    f"{name}: {where} is a {type(p).__name__}, not a Parameter; an optimizer "
                    "updates Parameters (Tensors), e.g. those of model.parameters()"
                )
            if p.dtype.kind != "f":
                raise TypeError(
                    f"{name}: {where} has dtype {p.dtype}; only floating-point tensors can be "
                    "optimized"
                )
            if not p.is_leaf:
                raise ValueError(
                    f"{name}: {where} was computed by an op (it is not a leaf); optimize the "
                    "leaves (Parameters) it was computed from"
                )
            if id(p) in seen:
                other = seen[id(p)]
                place = "twice in this group" if other == index else f"also in param group {other}"
                raise ValueError(
                    f"{name}: {where} appears {place}; each parameter may be in one "
                    "group only, once"
                )
            seen[id(p)] = index
        for key, value in self.defaults.items():
            group.setdefault(key, value)
        group["params"] = params
        self._check_group(group, index)
        self.param_groups.append(group)

    def _check_group(self, group: dict[str, Any], index: int) -> None:
        """Validate (and normalise, e.g. to Python floats) a group's options in place."""

    # ------------------------------------------------------------------ steps
    def zero_grad(self) -> None:
        """Forget every parameter's gradient (set ``.grad`` to None)."""
        for group in self.param_groups:
            for p in group["params"]:
                p.grad = None

    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        """Update every parameter that has a gradient (those whose ``.grad`` is None are
        skipped). ``closure``, if given, recomputes the loss (calling backward) and is returned."""
        loss = None
        if closure is not None:
            with enable_grad():
                loss = closure()
        changed: list[Tensor] = []
        for i, group in enumerate(self.param_groups):
            lr = group["lr"]
            if not (type(lr) is float and 0.0 <= lr < math.inf):  # changed since construction
                owner = type(self).__name__ + (f" (param group {i})" if i else "")
                group["lr"] = check_number(owner, "lr", lr)
            flat, grads = self._flat_grads(i, group) if self._flat_steps else (None, None)
            if grads is None or not self._step_flat(group, flat, grads):
                self._step_group(group)
            changed += [p for p in group["params"] if p.grad is not None]
        if changed:  # a graph recorded before this step saw the old values: backward refuses it
            MUTATIONS.record_many(changed, "optimizer.step()")
        return loss

    def _captured_step(self) -> Callable[[], Any]:
        """What a captured step calls instead of :meth:`step` once it has written every
        parameter's gradient into its view of the flat gradient buffer: ``step`` itself here;
        an optimizer may return a leaner callable that does exactly what ``step`` does in that
        state (and calls ``step`` whenever the state is another)."""
        return self.step

    def _step_group(self, group: dict[str, Any]) -> None:
        raise NotImplementedError(f"{type(self).__name__} has no _step_group()")

    # ------------------------------------------------------------------ whole-group steps
    # whether the subclass has a _step_flat (False on an instance forces the per-parameter path)
    _flat_steps = False

    def _step_flat(self, group: dict[str, Any], flat: FlatGroup, grads: list[np.ndarray]) -> bool:
        """Update the whole group at once (``grads``: every parameter's, in order); False, with
        nothing changed, when the state does not allow it (then ``_step_group`` runs)."""
        return False

    def _flat_grads(
        self, i: int, group: dict[str, Any]
    ) -> tuple[FlatGroup | None, list[np.ndarray] | None]:
        """Group ``i`` laid out flat, and the gradients of its parameters (None unless every
        parameter has one). The check below runs at every step; anything unusual goes to
        :meth:`_relayout`."""
        flats = self._flats
        flat = flats[i] if i < len(flats) else None
        params = group["params"]
        if type(flat) is FlatGroup and len(params) == len(flat.params):
            grads = []
            gviews = flat.grad_parts
            whole = gviews is not None  # every gradient is its view of flat.grad
            for p, q, v, gv in zip(params, flat.params, flat.views, gviews or flat.views):
                g = p.grad
                if p is not q or p.data is not v:
                    break
                if g is not gv:
                    if g is None or g.shape != v.shape:
                        break
                    whole = False
                grads.append(g)
            else:
                return flat, ([flat.grad] if whole else grads)
        return self._relayout(i, params)

    def _relayout(
        self, i: int, params: list[Tensor]
    ) -> tuple[FlatGroup | None, list[np.ndarray] | None]:
        """The slow half of :meth:`_flat_grads`: lay the group out (again) if its parameters
        changed, copy back into the buffer any ``p.data`` the user replaced by an array of the
        same shape and dtype, and check the gradients."""
        while len(self._flats) <= i:
            self._flats.append(None)
        flat = self._flats[i]
        if type(flat) is FlatGroup and (
            len(params) != len(flat.params) or any(p is not q for p, q in zip(params, flat.params))
        ):
            flat = None
        if type(flat) is FlatGroup:
            for p, v in zip(params, flat.views):
                d = p.data
                if d is not v:
                    if d.shape != v.shape or d.dtype != v.dtype:
                        flat = None
                        break
                    np.copyto(v, d)
                    p.data = v
        if type(flat) is not FlatGroup:
            key = tuple(id(x) for p in params for x in (p, p.data))
            # build, unless these are the parameters and arrays that could not be laid out before
            flat = FlatGroup.build(params) if flat != key else None
            self._flats[i] = flat if flat is not None else key
            if flat is None:
                return None, None
        grads = [self._grad(p) for p in params]
        return flat, (grads if all(g is not None for g in grads) else None)

    def _flat_state(
        self, group: dict[str, Any], flat: FlatGroup
    ) -> tuple[list[dict[str, Any]] | None, bool]:
        """``(states, fresh)``: every parameter's state dict, with its arrays in ``flat``'s state
        buffers (arrays put there by ``load_state_dict`` or by the user are copied in). If no
        parameter has state yet, new state is made for all, zeroed, with ``fresh`` True. None
        when the group cannot be stepped as one: only some parameters have state, their step
        counts differ, or an array does not fit."""
        keys = self._state_keys(group)
        if not keys:
            return [], False
        get = self.state.get
        states = [get(p) for p in flat.params]
        arrays = [(k, flat.parts(flat.state(k))) for k in keys if k != "step"]
        if None in states:
            if states.count(None) != len(states):
                return None, False
            for j, p in enumerate(flat.params):
                s = {"step": 0} if "step" in keys else {}
                for k, views in arrays:
                    views[j].fill(0)
                    s[k] = views[j]
                self.state[p] = states[j] = s
            return states, True
        if "step" in keys:
            t = states[0].get("step")
            for s in states:
                if s.get("step") != t:
                    return None, False
        for k, views in arrays:
            for s, v in zip(states, views):
                a = s.get(k)
                if a is not v:
                    if not isinstance(a, np.ndarray) or a.shape != v.shape:
                        return None, False
                    np.copyto(v, a)
                    s[k] = v
        return states, False

    def _buffers(self, p: Tensor, n: int) -> list[np.ndarray]:
        """``n`` scratch arrays shaped like ``p``, made once and reused at every step."""
        bufs = self._scratch.get(p)
        if bufs is None or len(bufs) < n:
            bufs = (bufs or []) + [np.empty_like(p.data) for _ in range(n - len(bufs or []))]
            self._scratch[p] = bufs
        return bufs

    @staticmethod
    def _grad(p: Tensor) -> np.ndarray | None:
        g = p.grad
        if g is not None and g.shape != p.data.shape:
            raise ValueError(
                f"optimizer step: a parameter of shape {p.data.shape} has a gradient of shape "
                f"{g.shape}"
            )
        return g

    # ------------------------------------------------------------------ checkpoints
    def _state_keys(self, group: Mapping[str, Any]) -> tuple[str, ...]:
        """The entries a parameter's state has once it has been stepped, with these options."""
        return ()

    def _state_key_sets(self, group: Mapping[str, Any]) -> list[frozenset[str]]:
        """The entries a parameter's state has with the group's options as they are, and with
        every combination of its flag and number options off (False, 0) or on (True, 1): what
        :meth:`_state_keys` gives for each."""
        names = [
            k
            for k, v in group.items()
            if k in self.defaults and isinstance(v, (bool, np.bool_, Real))
        ]
        key_sets = {frozenset(self._state_keys(group))}
        choices = [
            (False, True) if isinstance(group[k], (bool, np.bool_)) else (0.0, 1.0) for k in names
        ]
        for values in itertools.product(*choices):
            try:
                key_sets.add(frozenset(self._state_keys({**group, **dict(zip(names, values))})))
            except (TypeError, ValueError, KeyError, ArithmeticError):
                continue  # a setting the optimizer does not take
        return list(key_sets)

    def state_dict(self) -> dict[str, Any]:
        """``{"state": {index: {name: value}}, "param_groups": [{option: value, "params":
        [index, ...]}]}``; parameters are numbered across groups in order, arrays are copies."""
        index: dict[int, int] = {}
        groups = []
        for group in self.param_groups:
            g = {k: copy.deepcopy(v) for k, v in group.items() if k != "params"}
            g["params"] = [index.setdefault(id(p), len(index)) for p in group["params"]]
            groups.append(g)
        state = {}
        for group in self.param_groups:
            for p in group["params"]:
                s = self.state.get(p)
                if s:
                    state[index[id(p)]] = {
                        k: (v.copy() if isinstance(v, np.ndarray) else copy.deepcopy(v))
                        for k, v in s.items()
                    }
        return {"state": state, "param_groups": groups}

    def load_state_dict(self, state_dict: Mapping[str, Any]) -> None:
        """Restore options and state saved by :meth:`state_dict` (e.g. after ``tg.load``).

        The groups must have as many parameters as here, each state entry must be one this
        optimizer makes, and each state array the shape of its parameter; every misfit is named
        in one :class:`OptimizerStateError` and nothing changes unless everything fits. Arrays
        are copied (cast to the parameter's dtype). Entries the saved options no longer use
        (SGD's momentum buffer after momentum was switched off, Adam's ``max_exp_avg_sq`` after
        amsgrad was) are kept, as in PyTorch: they are saved again, and used again if the option
        is switched back on.
        """
        name = type(self).__name__
        if not isinstance(state_dict, Mapping) or not {"state", "param_groups"} <= set(state_dict):
            raise OptimizerStateError(
                f"{name}.load_state_dict: expected a dict with 'state' and 'param_groups' "
                f"(from optimizer.state_dict()), got {_describe(state_dict)}"
            )
        saved_groups, saved_state = state_dict["param_groups"], state_dict["state"]
        problems: list[str] = []
        if not isinstance(saved_groups, (list, tuple)) or not all(
            isinstance(g, Mapping) and isinstance(g.get("params"), (list, tuple))
            for g in saved_groups
        ):
            raise OptimizerStateError(
                f"{name}.load_state_dict: 'param_groups' must be a list "
                "of dicts each with a 'params' list"
            )
        if not isinstance(saved_state, Mapping):
            raise OptimizerStateError(f"{name}.load_state_dict: 'state' must be a dict")
        if len(saved_groups) != len(self.param_groups):
            raise OptimizerStateError(
                f"{name}.load_state_dict: the state dict has {len(saved_groups)} param groups, "
                f"this optimizer {len(self.param_groups)}"
            )
        by_id: dict[Any, tuple[Tensor, dict[str, Any]]] = {}
        new_groups = []
        for i, (mine, saved) in enumerate(zip(self.param_groups, saved_groups)):
            if len(saved["params"]) != len(mine["params"]):
                problems.append(
                    f"param group {i} has {len(saved['params'])} parameters in the "
                    f"state dict, {len(mine['params'])} here"
                )
            group = {**mine, **{k: copy.deepcopy(v) for k, v in saved.items() if k != "params"}}
            group["params"] = mine["params"]
            try:
                self._check_group(group, i)
            except (TypeError, ValueError) as e:
                problems.append(f"param group {i}: {e}")
            new_groups.append(group)
            for saved_id, p in zip(saved["params"], mine["params"]):
                by_id[_index(saved_id)] = (p, group)
        new_state: dict[Tensor, dict[str, Any]] = {}
        key_sets_of: dict[int, list[frozenset[str]]] = {}
        for key, entry in saved_state.items():
            k = _index(key)
            if k not in by_id:
                problems.append(f"state for parameter {key!r}, which no param group lists")
                continue
            if not isinstance(entry, Mapping):
                problems.append(f"state of parameter {k} is a {type(entry).__name__}, not a dict")
                continue
            p, group = by_id[k]
            if not entry:  # no state (state_dict leaves such entries out)
                continue
            # the entries of some settings of the options: a state saved after an option changed
            # mid-run has those of the settings it was stepped with (e.g. SGD's momentum buffer
            # after momentum was switched off), kept as PyTorch keeps them
            key_sets = key_sets_of.get(id(group))
            if key_sets is None:
                key_sets = key_sets_of[id(group)] = self._state_key_sets(group)
            keys = set(entry)
            if set().union(*(ks for ks in key_sets if ks <= keys)) != keys:
                known = set().union(*key_sets)
                expected = set(self._state_keys(group))
                missing, unexpected = sorted(expected - keys), sorted(keys - known)
                what = [f"missing {', '.join(map(repr, missing))}"] if missing else []
                what += [f"unexpected {', '.join(map(repr, unexpected))}"] if unexpected else []
                if not what:
                    what = [f"{', '.join(map(repr, sorted(keys)))} never go together"]
                problems.append(
                    f"state of parameter {k}: {'; '.join(what)} (is it the state of "
                    f"another optimizer, or of other options?)"
                )
                continue
            s = {}
            for sk, v in entry.items():
                if sk == "step":
                    if isinstance(v, np.ndarray) and v.ndim == 0:
                        v = v.item()
                    if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 0:
                        problems.append(
                            f"state of parameter {k}: 'step' must be an int >= 0, got {v!r}"
                        )
                    s[sk] = int(v) if isinstance(v, (int, np.integer)) else v
                    continue
                arr = v.data if isinstance(v, Tensor) else v
                if not isinstance(arr, np.ndarray) or arr.shape != p.shape:
                    got = f"shape {arr.shape}" if isinstance(arr, np.ndarray) else _describe(arr)
                    problems.append(
                        f"state of parameter {k}: {sk!r} has {got}, the parameter "
                        f"has shape {p.shape}"
                    )
                    continue
                s[sk] = arr.astype(p.dtype, copy=True)
            new_state[p] = s
        if problems:
            raise OptimizerStateError(
                f"{name}.load_state_dict: the state dict does not fit:\n  " + "\n  ".join(problems)
            )
        for mine, group in zip(self.param_groups, new_groups):
            mine.clear()
            mine.update(group)
        self.state = new_state

    def __repr__(self) -> str:
        lines = [f"{type(self).__name__} ("]
        for i, group in enumerate(self.param_groups):
            lines.append(f"  group {i}: {len(group['params'])} parameters")
            lines += [f"    {k}: {v}" for k, v in sorted(group.items()) if k != "params"]
        return "\n".join(lines + [")"])


def _index(key: Any) -> Any:
    """A parameter index as saved (an int, or its decimal string after a trip through JSON);
    anything else becomes its repr, which matches no parameter."""
    if isinstance(key, (int, np.integer)) and not isinstance(key, bool):
        return int(key)
    if isinstance(key, str) and key.isdigit():
        return int(key)
    return repr(key)


def _describe(value: Any) -> str:
    return f"a {type(value).__name__}"
