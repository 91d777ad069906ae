"""Tracing a step for capture: what one call ran, and whether another call ran the same.

A :class:`Tracer` is the engine's hook while a captured step runs normally. It records each op
with its arguments, which modules ran and in what state, and which arrays our own functions
computed from others (``F.one_hot``); :meth:`Tracer.finish` then names the call's inputs by
position wherever they appear, so that a plan made from the trace reads them from each later
call. :func:`same_trace` tells whether two calls' traces are alike enough for one plan to serve
both. :mod:`tinygrad_nn.capture` makes the plans.
"""

from __future__ import annotations

import weakref
from typing import Any

import numpy as np
from numpy import ndarray

from .autograd import Function
from .nn import layers, losses
from .nn.module import ModuleList, Sequential
from .tensor import Tensor

__all__ = [
    "Tracer",
    "InputRef",
    "Derived",
    "refer",
    "refers",
    "same_trace",
    "STATELESS",
    "MODE_FREE",
]


class Tracer:
    """Observes every op run while the traced function executes (the engine's hook).

    A record keeps the op, its arguments — the number of the record that made a tensor, or the
    tensor itself for inputs and parameters, or the constant — and its output's shape and
    dtype, but not the output: the traced step's activations are freed as soon as its backward
    is done, before the plan allocates its own buffers. Once :meth:`finish` has run, the tracer
    is the trace a plan is made from, with what a replay of it takes for granted: the modules'
    modes and versions (no Tensor or Module attribute set since), the leaves'
    ``requires_grad``."""

    def __init__(self, inputs: list[Tensor]) -> None:
        # ids of the call's input arrays, and of the arrays the step computes or trains (op
        # outputs, parameters): what a noted derived array may depend on
        self._inputs = {id(t.data) for t in inputs}
        self._step: dict[int, Any] = {}  # id -> weak reference (an id may be reused once freed)
        self.records: list[tuple[Function, list[tuple[str, Any]], dict[str, Any], Any]] = []
        self._made: dict[int, tuple[weakref.ref[Tensor], int]] = {}
        # (module, training, _version) of every module called (and those below it), when it
        # was first entered, and when fn returned: the state a call must start from to be
        # replayed (fn may change it itself: switch a mode and back, store a tensor on self)
        self.entry: dict[int, tuple[Any, bool, int]] = {}
        self.modes: list[tuple[Any, bool, int]] = []
        self.made: list[int | None] = []  # the records of fn's results (the loss first)
        self.rg: dict[int, bool] = {}  # requires_grad of each tensor made outside fn
        self.alias: list[tuple[int, int]] = []  # (k, j): input k was input j's array (j < k)
        # id -> (weak reference to the array, function, arguments): arrays our functions
        # computed from the inputs (one_hot), which a replay computes again; the function is
        # None for one computed from values the step computes ("volatile": a comparison or an
        # argmax of an activation, one_hot of an op's output)
        self.derived: dict[int, tuple[Any, Any, Any]] = {}
        self.second = False  # it replaced a first trace that did not match it
        # why no replay can stand for this call, if so: "volatile" (an array computed from the
        # step's own values, used by an op), "mutated" (an array a replay would compute
        # again, changed in place), "assigns" (an item assignment into a tensor)
        self.frozen: str | None = None

    def index(self, t: Any) -> int | None:
        """The number of the record whose output ``t`` is, if any."""
        hit = self._made.get(id(t))
        return hit[1] if hit is not None and hit[0]() is t else None

    def on_forward(self, node: Function, args: Any, kwargs: Any, result: Tensor) -> None:
        refs: list[tuple[str, Any]] = []
        for a in args:
            if isinstance(a, Tensor):
                k = self.index(a)
                refs.append(("tensor", a) if k is None else ("op", k))
            else:
                refs.append(("const", a))
        self._made[id(result)] = (weakref.ref(result), len(self.records))
        self.records.append((node, refs, kwargs, (result.shape, result.dtype)))
        for t in (result, *args):
            if isinstance(t, Tensor) and (t is result or t._rg):
                d = t.data  # (an op may hand back an input's own array: a cast to its dtype)
                if id(d) not in self._inputs and id(d) not in self.derived:
                    self._step[id(d)] = weakref.ref(d)

    def on_module(self, module: Any) -> None:
        if type(module) not in STATELESS and id(module) not in self.entry:
            self.entry[id(module)] = (module, module.training, module._version)

    def on_backward(self, node: Function, grads: Any) -> None:
        pass

    def on_derived(self, out: ndarray, fn: Any, args: tuple[Any, ...]) -> None:
        """``out = fn(*args)``: marked if it depends on the step's values (a replay could not
        compute it: a comparison or argmax of an activation, one_hot of an op's output), kept
        if it depends on the inputs (a replay computes it again), forgotten otherwise (a
        constant, which the next call's trace must repeat)."""
        arrays = [a for a in args if type(a) is ndarray]
        if any(self._is_step(a) for a in arrays):
            self.derived[id(out)] = (weakref.ref(out), None, None)
        elif any(id(a) in self._inputs or id(a) in self.derived for a in arrays):
            self.derived[id(out)] = (weakref.ref(out), fn, args)

    def _is_step(self, a: ndarray) -> bool:
        """Whether ``a`` is an array the step computes or trains (not an id since reused)."""
        ref = self._step.get(id(a))
        return ref is not None and ref() is a

    def on_assign(self, tensor: Any) -> None:
        self.frozen = self.frozen or "assigns"

    def finish(self, inputs: list[Tensor], results: list[Tensor]) -> None:
        """End the trace of a call on ``inputs`` that returned ``results``: note which records
        made them and the leaves' ``requires_grad``, then name the inputs by position."""
        self.made = [self.index(t) for t in results]
        self._made.clear()
        self._step.clear()
        for m, _, _ in list(self.entry.values()):  # a ModuleList a module iterates, say
            for sub in m.modules():
                if type(sub) not in STATELESS and id(sub) not in self.entry:
                    self.entry[id(sub)] = (sub, sub.training, sub._version)
        self.modes = [(m, m.training, m._version) for m, _, _ in self.entry.values()]
        self._name_inputs(inputs)
        self.rg = {id(a): a._rg for _, refs, _, _ in self.records for k, a in refs if k == "tensor"}

    def _name_inputs(self, inputs: list[Tensor]) -> None:
        """Refer to the call's inputs by position, so that the records keep no batch alive —
        also where an op got an input's array as a constant (labels that ``nll_loss`` turns into
        an index, ``x[labels]``), which a replay must then read from that call's input."""
        arrays: dict[int, int] = {}  # id of an input's array -> the first input that has it
        for k, t in enumerate(inputs):
            j = arrays.setdefault(id(t.data), k)
            if j != k:
                self.alias.append((k, j))
        where = {id(t): arrays[id(t.data)] for t in inputs}
        flags: set[str] = set()
        for _, refs, kwargs, _ in self.records:
            for j, (kind, a) in enumerate(refs):
                if kind == "tensor" and id(a) in where:
                    refs[j] = ("input", where[id(a)])
                elif kind == "tensor" and a._ctx is None and not a._rg:
                    # a constant tensor fn made around an input's array, or around one computed
                    # from it (Tensor(one_hot(labels)), out - one_hot(labels))
                    if id(a.data) in arrays:
                        refs[j] = ("input", arrays[id(a.data)])
                    else:
                        made = refer(a.data, arrays, self.derived, flags)
                        if made is not a.data:
                            refs[j] = ("const", made)
                elif kind == "const":
                    refs[j] = ("const", refer(a, arrays, self.derived, flags))
            for name, a in kwargs.items():
                kwargs[name] = refer(a, arrays, self.derived, flags)
        self.derived = {}
        if flags and self.frozen is None:
            self.frozen = min(flags)


# Modules whose forward reads neither ``training`` nor any Tensor or Module attribute (these
# exact classes: a subclass may): nothing about them is checked before a replay.
STATELESS = frozenset(
    [layers.Sigmoid, layers.ReLU, layers.Tanh, layers.Step, layers.Identity, layers.Flatten]
    + [layers.Softmax, layers.LogSoftmax, losses.MSELoss, losses.BCELoss]
    + [losses.BCEWithLogitsLoss, losses.CrossEntropyLoss, losses.NLLLoss]
)
# Modules whose forward never reads ``training``: their mode is not checked either.
MODE_FREE = STATELESS | {layers.Dense, Sequential, ModuleList}


class InputRef:
    """Input ``k``'s array where a traced op got it inside a constant argument."""

    __slots__ = ("k",)

    def __init__(self, k: int) -> None:
        self.k = k

    def __eq__(self, other: object) -> bool:
        return type(other) is InputRef and other.k == self.k

    __hash__ = None  # type: ignore[assignment]


class Derived:
    """An array ``fn(*args)`` computed from an input (``one_hot(labels, 10)``): the replay
    calls ``fn`` again. ``shape`` and ``dtype`` are those of the traced array."""

    __slots__ = ("fn", "args", "shape", "dtype")

    def __init__(self, fn: Any, args: tuple[Any, ...], out: ndarray) -> None:
        self.fn, self.args, self.shape, self.dtype = fn, args, out.shape, out.dtype

    def __eq__(self, other: object) -> bool:
        return type(other) is Derived and other.fn is self.fn and _same(other.args, self.args)

    __hash__ = None  # type: ignore[assignment]


def refer(a: Any, arrays: dict[int, int], derived: dict[int, Any], flags: set[str]) -> Any:
    """``a`` with every input array in it (by identity, through tuples and lists) replaced by
    an :class:`InputRef`, and every array computed from one by a :class:`Derived`. Adds to
    ``flags`` why a replay could not stand for the call: "volatile" for an array computed from
    values the step computes, "mutated" for a derived array changed in place since."""
    if type(a) is ndarray:
        k = arrays.get(id(a))
        if k is not None:
            return InputRef(k)
        made = derived.get(id(a))
        if made is not None and made[0]() is a:
            _, fn, args = made
            if fn is None:  # a comparison or an argmax of the step's values: it would freeze
                flags.add("volatile")
                return a
            referred = refer(args, arrays, derived, flags)
            if not refers(referred):
                return a
            if not _same(np.asarray(fn(*args)), a):
                flags.add("mutated")
            return Derived(fn, referred, a)
        return a
    if type(a) in (tuple, list):
        parts = [refer(x, arrays, derived, flags) for x in a]
        if any(x is not y for x, y in zip(parts, a)):
            return type(a)(parts)
    return a


def refers(a: Any) -> bool:
    """Whether constant ``a`` holds an :class:`InputRef` (or a :class:`Derived`)."""
    if type(a) in (InputRef, Derived):
        return True
    return type(a) in (tuple, list) and any(refers(x) for x in a)


def same_trace(first: Tracer, again: Tracer) -> bool:
    """Whether trace ``again`` (a later call) recorded the ops of trace ``first``: the same
    ops on the same arguments, the same constants (by value), the same outputs returned, the
    same modules in the same modes, the same leaves requiring grad."""
    if (
        len(first.records) != len(again.records)
        or first.made != again.made
        or first.alias != again.alias
    ):
        return False
    # the second call must have started from the state the first left; a module made anew at
    # each call (a loss module, a slice of a Sequential) is taken for the same if it owns no
    # parameters and is of the same class
    entry, first_entry = list(again.entry.values()), list(first.entry.values())
    if len(first.modes) != len(entry) or len(first_entry) != len(entry):
        return False
    for (m, *left), (_, *began), (n, *begins) in zip(first.modes, first_entry, entry):
        if m is n:
            if left != begins:
                return False
        elif type(m) is not type(n) or _owns(m) or _owns(n) or began != begins:
            return False  # (made anew: compared with the state the first began from)
    for (node, refs, kwargs, out), (node2, refs2, kwargs2, out2) in zip(
        first.records, again.records
    ):
        if type(node) is not type(node2) or out != out2 or len(refs) != len(refs2):
            return False
        if node.needs_input_grad != node2.needs_input_grad or not _same(kwargs, kwargs2):
            return False
        for (kind, a), (kind2, b) in zip(refs, refs2):
            if kind != kind2:
                return False
            if kind == "tensor":
                rg = first.rg[id(a)]
                if rg != again.rg[id(b)]:
                    return False
                # a tensor fn makes at every call (a constant): the same values, no gradient
                if a is not b and (rg or a._ctx is not None or b._ctx is not None):
                    return False
                if a is not b and not _same(a.data, b.data):
                    return False
            elif not _same(a, b):
                return False
    return True


def _owns(m: Any) -> bool:
    """Whether module ``m`` has parameters or sub-modules (a module made anew at each call
    stands for the last one's only if it has neither)."""
    return bool(m._parameters or m._modules)


def _same(a: Any, b: Any) -> bool:
    """Equal constants: the same type and value (arrays: shape, dtype and every element)."""
    if a is b:
        return True
    if type(a) is not type(b):
        return False
    if isinstance(a, (tuple, list)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, (np.ndarray, np.generic)):
        nan = a.dtype.kind in "fc"  # an input holding NaN equals itself
        return a.shape == b.shape and a.dtype == b.dtype and bool(np.array_equal(a, b, nan))
    try:
        return bool(a == b)
    except Exception:  # objects without a plain equality: treat them as different
        return False
