"""``Module``: parameters and sub-modules registered by attribute, as in PyTorch's ``nn.Module``."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable, Iterator, Mapping
from typing import Any, NamedTuple

import numpy as np

from ..autograd import MUTATIONS, STATE
from ..tensor import Tensor

__all__ = [
    "Parameter",
    "Module",
    "Sequential",
    "ModuleList",
    "ModuleCall",
    "StateDictError",
    "IncompatibleKeys",
]


class Parameter(Tensor):
    """A leaf tensor that requires grad and that a :class:`Module` registers when assigned."""

    __slots__ = ()

    def __init__(self, data: Any, dtype: Any = None, requires_grad: bool = True) -> None:
        super().__init__(data, dtype=dtype, requires_grad=requires_grad)

    def __repr__(self) -> str:
        return "Parameter containing:\n" + super().__repr__()


class ModuleCall:
    """One call of a module's forward: the scope that ops run inside it record (for drawing)."""

    __slots__ = ("module", "parent")

    def __init__(self, module: Module, parent: ModuleCall | None) -> None:
        self.module = module
        self.parent = parent


_new = object.__new__


class StateDictError(KeyError):
    """``load_state_dict`` found missing, unexpected or mismatched entries (all named)."""

    def __str__(self) -> str:
        return str(self.args[0])


class IncompatibleKeys(NamedTuple):
    """What :meth:`Module.load_state_dict` returns, as PyTorch's ``_IncompatibleKeys``: the
    parameters the state dict had no entry for, and the entries that name no parameter (both
    empty unless ``strict=False``)."""

    missing_keys: list[str]
    unexpected_keys: list[str]

    def __repr__(self) -> str:
        if not self.missing_keys and not self.unexpected_keys:
            return "<All keys matched successfully>"
        return (
            f"IncompatibleKeys(missing_keys={self.missing_keys!r}, "
            f"unexpected_keys={self.unexpected_keys!r})"
        )


class Module:
    """Base of every layer and model. Assign Parameters and Modules as attributes to register
    them; write ``forward``; call the module to run it."""

    training: bool
    # counts the times a Tensor or Module attribute was set or deleted (``model[0].weight =
    # Parameter(...)``, ``model.append(layer)``): a captured step checks it before a replay
    _version: int

    def __init__(self) -> None:
        object.__setattr__(self, "_parameters", OrderedDict())
        object.__setattr__(self, "_modules", OrderedDict())
        object.__setattr__(self, "training", True)
        object.__setattr__(self, "_version", 0)

    def __setattr__(self, name: str, value: Any) -> None:
        params = self.__dict__.get("_parameters")
        if params is None:
            raise RuntimeError(
                f"{type(self).__name__}: call super().__init__() before assigning attributes"
            )
        is_param = isinstance(value, Parameter)
        registered = name in params
        if registered and not is_param and value is not None:
            raise TypeError(
                f"{type(self).__name__}: cannot assign a {type(value).__name__} as parameter "
                f"{name!r} (a Parameter or None expected, as in PyTorch): it would drop "
                f"{name!r} from parameters() and state_dict(); assign Parameter(...) to replace "
                f"it, or write into {name}.data to change its values"
            )
        if STATE.hook is not None:  # a tracer notes the state before the step changes it
            STATE.hook.on_module(self)
        old = self.__dict__.get(name)
        modules = self._modules
        # as in PyTorch, a name replaced by a value of its kind keeps its place (the layer order
        # of a Sequential, the order of named_parameters() and state_dict()); a name that
        # changes kind goes to the end of its new dict
        if is_param or registered:  # None over a parameter keeps the name, as in PyTorch
            modules.pop(name, None)
            params[name] = value
        elif isinstance(value, Module):
            modules[name] = value
        else:
            modules.pop(name, None)
        object.__setattr__(self, name, value)
        if isinstance(value, (Tensor, Module)) or isinstance(old, (Tensor, Module)):
            object.__setattr__(self, "_version", self.__dict__.get("_version", 0) + 1)

    def __delattr__(self, name: str) -> None:
        if STATE.hook is not None:
            STATE.hook.on_module(self)
        old = self.__dict__.get(name)
        self._parameters.pop(name, None)
        self._modules.pop(name, None)
        object.__delattr__(self, name)
        if isinstance(old, (Tensor, Module)):
            object.__setattr__(self, "_version", self.__dict__.get("_version", 0) + 1)

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError(f"{type(self).__name__} has no forward()")

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        state = STATE
        prev = state.scope
        call = _new(ModuleCall)  # ModuleCall(self, prev), without the __init__ frame
        call.module = self
        call.parent = prev
        state.scope = call
        if state.hook is not None:  # e.g. capture's tracer: it notes the module, its mode, _version
            state.hook.on_module(self)
        try:
            return self.forward(*args, **kwargs)
        finally:
            state.scope = prev

    # ------------------------------------------------------------------ traversal
    def named_modules(self, prefix: str = "") -> Iterator[tuple[str, Module]]:
        """(dotted name, module) for self and every sub-module, depth first, each once."""
        seen: set[int] = set()
        stack = [(prefix, self)]
        while stack:
            name, mod = stack.pop()
            if id(mod) in seen:
                continue
            seen.add(id(mod))
            yield name, mod
            children = [(f"{name}.{k}" if name else k, m) for k, m in mod._modules.items()]
            stack.extend(reversed(children))

    def modules(self) -> Iterator[Module]:
        """This module and every sub-module, depth first."""
        for _, m in self.named_modules():
            yield m

    def children(self) -> Iterator[Module]:
        """The direct sub-modules."""
        yield from self._modules.values()

    def named_parameters(self, prefix: str = "") -> Iterator[tuple[str, Parameter]]:
        """(dotted name, parameter) in registration order, e.g. ``0.weight``, ``0.bias``; a
        parameter shared by two modules is listed once."""
        seen: set[int] = set()
        for mname, mod in self.named_modules(prefix):
            for pname, p in mod._parameters.items():
                if p is None or id(p) in seen:
                    continue
                seen.add(id(p))
                yield (f"{mname}.{pname}" if mname else pname), p

    def parameters(self) -> Iterator[Parameter]:
        """Every parameter, each once, in registration order."""
        for _, p in self.named_parameters():
            yield p

    def num_parameters(self) -> int:
        """The number of trainable numbers (elements of all parameters)."""
        return sum(p.size for p in self.parameters())

    def zero_grad(self) -> None:
        """Forget every parameter's gradient (set ``.grad`` to None)."""
        for p in self.parameters():
            p.grad = None

    def train(self, mode: bool = True) -> Module:
        """Set training mode (``.training = mode``) on this module and all below it; ``mode``
        must be a bool (a ValueError otherwise, as in PyTorch)."""
        if not isinstance(mode, (bool, np.bool_)):
            raise ValueError(
                f"{type(self).__name__}.train: training mode is expected to be boolean (True to "
                f"train, False to evaluate), got {mode!r}"
            )
        mode = bool(mode)
        hook = STATE.hook
        for m in self.modules():
            if hook is not None:  # a tracer notes the mode before the step changes it
                hook.on_module(m)
            object.__setattr__(m, "training", mode)
        return self

    def eval(self) -> Module:
        """Set evaluation mode (``train(False)``): dropout off."""
        return self.train(False)

    # ------------------------------------------------------------------ state
    def state_dict(self) -> OrderedDict[str, np.ndarray]:
        """Parameter name → array: the parameters' arrays themselves, not copies, as they are
        now (an optimizer's first step moves parameters into one flat buffer, so take the state
        dict after creating the optimizer if it should keep following them; copy it to keep a
        snapshot)."""
        return OrderedDict((name, p.data) for name, p in self.named_parameters())

    def load_state_dict(
        self, state_dict: Mapping[str, Any], strict: bool = True
    ) -> IncompatibleKeys:
        """Copy arrays into the parameters, checking names, shapes and dtypes first.

        Every missing, unexpected or mismatched key is named in one :class:`StateDictError`;
        nothing is changed unless everything fits. With ``strict=False`` missing and unexpected
        keys are allowed (shape and dtype mismatches never are). The parameters are written in
        place: a backward through a graph recorded before the load raises (as PyTorch's version
        counters make it), instead of using the values it saved.

        Returns an :class:`IncompatibleKeys` named tuple ``(missing_keys, unexpected_keys)``, as
        PyTorch does: the names of the parameters left as they were and of the entries ignored,
        in order (both empty with ``strict=True``, which raises instead).
        """
        if not isinstance(state_dict, Mapping):
            raise TypeError(
                f"load_state_dict into {type(self).__name__}: expected a dict of arrays (from "
                f"model.state_dict() or tinygrad_nn.load), got {type(state_dict).__name__}"
            )
        params = dict(self.named_parameters())
        problems = []
        arrays = {}
        unexpected = []
        for name, value in state_dict.items():
            if name not in params:
                unexpected.append(name)
                if strict:
                    problems.append(f"unexpected key {name!r}")
                continue
            arr = value.data if isinstance(value, Tensor) else np.asarray(value)
            p = params[name]
            if arr.dtype.kind not in "fiub":
                problems.append(f"{name!r}: a {type(value).__name__}, not an array of numbers")
            elif arr.shape != p.shape:
                problems.append(f"{name!r}: shape {arr.shape} in the state dict, {p.shape} here")
            elif arr.dtype != p.dtype:
                problems.append(f"{name!r}: dtype {arr.dtype} in the state dict, {p.dtype} here")
            else:
                arrays[name] = arr
        missing = [n for n in params if n not in state_dict]
        if strict:
            problems += [f"missing key {n!r}" for n in missing]
        if problems:
            raise StateDictError(
                f"load_state_dict into {type(self).__name__} failed:\n  " + "\n  ".join(problems)
            )
        for name, arr in arrays.items():
            np.copyto(params[name].data, arr)
        if arrays:  # a graph recorded before saw the old values: its backward refuses
            MUTATIONS.record_many([params[n] for n in arrays], "load_state_dict()")
        return IncompatibleKeys(missing, unexpected)

    # ------------------------------------------------------------------ printing
    def extra_repr(self) -> str:
        return ""

    def __repr__(self) -> str:
        lines = [f"{type(self).__name__}({self.extra_repr()}"]
        if self._modules:
            lines[0] = lines[0] + ("" if lines[0].endswith("(") else ",")
            for name, m in self._modules.items():
                sub = repr(m).replace("\n", "\n  ")
                lines.append(f"  ({name}): {sub}")
            lines.append(f")  # {self.num_parameters():,} parameters")
            text = "\n".join(lines)
        else:
            text = lines[0] + ")"
        return text

    def summary(self) -> str:
        """The model as a table: each module with its parameters' shapes and counts."""
        rows = []
        for name, mod in self.named_modules():
            own = [(k, p) for k, p in mod._parameters.items() if p is not None]
            if not own and mod._modules:
                continue
            shapes = ", ".join(f"{k} {tuple(p.shape)}" for k, p in own) or "-"
            rows.append(
                (
                    name or type(self).__name__,
                    type(mod).__name__,
                    shapes,
                    sum(p.size for _, p in own),
                )
            )
        w = [
            max(len(str(r[i])) for r in rows + [("name", "type", "parameters", "count")])
            for i in range(4)
        ]
        head = ("name", "type", "parameters", "count")
        out = ["  ".join(str(h).ljust(w[i]) for i, h in enumerate(head))]
        out += ["  ".join(str(c).ljust(w[i]) for i, c in enumerate(r)) for r in rows]
        out.append(f"total parameters: {self.num_parameters():,}")
        return "\n".join(out)


def _require_module(owner: str, value: Any) -> None:
    """Raise a TypeError naming ``owner`` and what it was given unless ``value`` is a Module."""
    if isinstance(value, Module):
        return
    if isinstance(value, type) and issubclass(value, Module):
        hint = f"; call the class to make a module, e.g. {value.__name__}(...)"
        what = f"the class {value.__name__}"
    else:
        name = getattr(value, "__qualname__", None)
        what = type(value).__name__ + (f" {name!r}" if isinstance(name, str) else "")
        hint = "; wrap a function in a Module whose forward calls it" if callable(value) else ""
    raise TypeError(f"{owner}: can hold only Modules, got {what}{hint}")


class Sequential(Module):
    """Modules applied in order: ``Sequential(Dense(2, 4), ReLU(), Dense(4, 1))``; indexable,
    sliceable, iterable, with ``len``. Sub-modules are named ``0``, ``1``, ..."""

    def __init__(self, *modules: Module) -> None:
        super().__init__()
        for i, m in enumerate(modules):
            if not isinstance(m, Module):
                raise TypeError(f"Sequential: item {i} is a {type(m).__name__}, not a Module")
            setattr(self, str(i), m)

    def forward(self, x: Any) -> Any:
        for m in self._modules.values():
            x = m(x)
        return x

    def __getitem__(self, i: int | slice) -> Any:
        mods = list(self._modules.values())
        if isinstance(i, slice):
            return Sequential(*mods[i])
        return mods[i]

    def __setitem__(self, i: int, module: Module) -> None:
        """``seq[i] = layer`` replaces layer ``i`` in its place (``i`` may be negative)."""
        if isinstance(i, bool) or not isinstance(i, (int, np.integer)):
            raise TypeError(f"Sequential: an index must be an int, got {type(i).__name__}")
        _require_module("Sequential", module)
        names = list(self._modules)
        if not -len(names) <= i < len(names):
            raise IndexError(f"Sequential: index {i} is out of range for {len(names)} modules")
        setattr(self, names[i], module)

    def __len__(self) -> int:
        return len(self._modules)

    def __iter__(self) -> Iterator[Module]:
        return iter(list(self._modules.values()))

    def append(self, module: Module) -> Sequential:
        """Add ``module`` at the end (a TypeError if it is not a Module, as in PyTorch)."""
        _require_module("Sequential.append", module)
        setattr(self, str(len(self)), module)
        return self


class ModuleList(Module):
    """A list of modules whose parameters are registered (names ``0``, ``1``, ...)."""

    def __init__(self, modules: Iterable[Module] = ()) -> None:
        super().__init__()
        for m in modules:
            self.append(m)

    def append(self, module: Module) -> ModuleList:
        _require_module("ModuleList", module)
        setattr(self, str(len(self)), module)
        return self

    def __getitem__(self, i: int) -> Module:
        return list(self._modules.values())[i]

    def __len__(self) -> int:
        return len(self._modules)

    def __iter__(self) -> Iterator[Module]:
        return iter(list(self._modules.values()))
