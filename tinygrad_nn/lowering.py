"""Lower a traced step to straight-line numpy code that writes into buffers allocated once.

:mod:`tinygrad_nn.capture` records the ops of one call; this module turns that record into the
source of one Python function, the step a careful person would write by hand:

* the common ops of small networks — the dense layer, sigmoid, tanh, ReLU, the quadratic cost
  and softmax cross-entropy — are *lowered*: their forward and backward become a few numpy calls
  with ``out=`` into preallocated buffers (:class:`Rule` subclasses below, one per op);
* any other op runs its own ``forward`` / ``backward`` (a fresh array each), so every op replays;
* each value's gradient is written, not accumulated, by its first contribution and added to by
  the others, with no zero-filling;
* buffers are reused once the values they held are dead (a linear scan over the program, by
  shape and dtype), so the replay's memory is close to the hand-written step's;
* a parameter's gradient can be written straight into the optimizer's flat gradient buffer
  (:meth:`FlatGroup.grad_views <tinygrad_nn.optim.flat.FlatGroup.grad_views>`).

The lowered maths is the ops' own, written out in the same order, so results agree with normal
execution to rounding, and mostly to the bit. :mod:`tinygrad_nn.capture` checks every plan
against normal execution before it trusts it. ``RULES`` maps an op (a ``Function`` subclass) to
its :class:`Rule`; an op with none replays through its own methods.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .ops import elementwise as E
from .ops import loss as L
from .ops import matmul as M

__all__ = ["Program", "Value", "Lowering", "Rule", "RULES"]

_SLOT = re.compile(r"\$(\d+)")
_LOCAL = re.compile(r"\bv\d+\b")


@dataclass(eq=False)
class Value:
    """A value of the traced step as the generated code names it.

    ``code`` is how it is written in the source: a buffer (``$3``, later a real name), an
    argument (``i0``), a parameter's array (``w0``), a fresh local (``v7``) or a constant.
    ``slot`` is its buffer's number when it lives in a preallocated buffer."""

    code: str
    shape: tuple[int, ...]
    dtype: np.dtype
    slot: int | None = None


@dataclass
class Program:
    """Straight-line source being built: lines, the buffers they use, the names they need."""

    env: dict[str, Any] = field(default_factory=dict)
    lines: list[tuple[str, bool]] = field(default_factory=list)  # (code, in-place allowed)
    slots: list[tuple[tuple[int, ...], np.dtype]] = field(default_factory=list)
    backing: dict[str, set[int]] = field(default_factory=dict)  # local -> buffers it may view
    aliases: list[tuple[int, int, int]] = field(default_factory=list)  # (line, dst, src)
    counter: int = 0

    def buffer(self, shape: tuple[int, ...], dtype: Any) -> Value:
        """A new value held in a buffer of this shape and dtype."""
        self.slots.append((tuple(shape), np.dtype(dtype)))
        k = len(self.slots) - 1
        return Value(f"${k}", tuple(shape), np.dtype(dtype), k)

    def const(self, name: str, value: Any) -> str:
        """Put ``value`` in the function's globals as ``name`` (made unique); returns the name."""
        base, k = name, 0
        while name in self.env and self.env[name] is not value:
            k += 1
            name = f"{base}_{k}"
        self.env[name] = value
        return name

    def ones(self, n: int, dtype: np.dtype) -> str:
        """A constant vector of ``n`` ones (bias gradients are ``ones @ g``)."""
        name = f"ONES{n}_{np.dtype(dtype).name}"
        if name not in self.env:
            self.env[name] = M._ones(n, np.dtype(dtype))  # the one the dense op uses
        return name

    def rows(self, n: int) -> str:
        """A constant ``arange(n)``, the row numbers for picking one entry per row."""
        name = f"ROWS{n}"
        if name not in self.env:
            self.env[name] = np.arange(n)
        return name

    def fresh(self, prefix: str) -> str:
        """A new local name for the generated function, ``prefix`` and a number."""
        self.counter += 1
        return f"{prefix}{self.counter}"

    def emit(self, code: str, inplace: bool = False) -> None:
        """Add a line. With ``inplace``, an output may share the buffer of an input that dies
        on this line (the line must be safe for that: elementwise ufuncs with ``out=`` are)."""
        self.lines.append((code, inplace))

    def copy(self, dst: Value, src: Value) -> None:
        """``dst`` takes ``src``'s values: free when ``src`` dies here and gives ``dst`` its
        buffer, otherwise a copy."""
        if src.slot is not None and dst.slot is not None:
            self.aliases.append((len(self.lines), dst.slot, src.slot))
            self.lines.append((f"copyto({dst.code}, {src.code})", True))
        else:
            self.lines.append((f"copyto({dst.code}, {src.code})", False))

    # ------------------------------------------------------------------ buffer allocation
    def allocate(self) -> tuple[list[str], list[tuple[str, tuple[int, ...], np.dtype]]]:
        """Give every buffer value an array, reusing arrays whose values are dead; returns the
        final lines and the ``(name, shape, dtype)`` of each array, to be made by the caller
        (after compiling the lines: the compiler's own memory comes and goes first)."""
        uses: list[set[int]] = []
        for code, _ in self.lines:
            used = {int(s) for s in _SLOT.findall(code)}
            for local in _LOCAL.findall(code):
                used |= self.backing.get(local, set())
            uses.append(used)
        first: dict[int, int] = {}
        last: dict[int, int] = {}
        for i, used in enumerate(uses):
            for s in used:
                first.setdefault(s, i)
                last[s] = i
        alias_at = {(i, d): s for i, d, s in self.aliases}
        pool: dict[tuple[tuple[int, ...], np.dtype], list[int]] = {}
        arrays: list[tuple[tuple[int, ...], np.dtype]] = []
        where: dict[int, int] = {}
        skip: set[int] = set()
        for i, (_, inplace) in enumerate(self.lines):
            dying = [s for s in uses[i] if last[s] == i and s in where]
            if inplace:  # inputs that die here may hand their arrays to this line's outputs
                for s in dying:
                    pool.setdefault(self.slots[s], []).append(where[s])
            for s in sorted(uses[i]):
                if first[s] != i:
                    continue
                src = alias_at.get((i, s))
                if src is not None and last[src] == i and where.get(src) is not None:
                    key = self.slots[s]
                    if key == self.slots[src] and where[src] in pool.get(key, []):
                        pool[key].remove(where[src])
                        where[s] = where[src]
                        skip.add(i)  # the copy would be onto itself
                        continue
                free = pool.get(self.slots[s])
                if free:
                    where[s] = free.pop()
                else:
                    arrays.append(self.slots[s])
                    where[s] = len(arrays) - 1
            if not inplace:
                for s in dying:
                    pool.setdefault(self.slots[s], []).append(where[s])
        names = [f"b{k}" for k in range(len(arrays))]
        lines = [
            _SLOT.sub(lambda m: names[where[int(m.group(1))]], code)
            for i, (code, _) in enumerate(self.lines)
            if i not in skip
        ]
        return lines, [(name, shape, dtype) for name, (shape, dtype) in zip(names, arrays)]


# ----------------------------------------------------------------------------- op rules


class Lowering:
    """What the planner offers a rule: the program and the gradients' destinations.

    ``grad_target(value)`` names where a rule writes its contribution to ``value``'s gradient;
    it calls ``grad_done(value)`` once written. The first contribution is written straight into
    the gradient's own place (a buffer, or a destination given in ``dest``, such as a view of
    the optimizer's flat gradient buffer); later ones go to a scratch buffer that is then added
    in, so no gradient is ever zero-filled first."""

    def __init__(self, program: Program, dest: dict[int, Value]) -> None:
        self.program = program
        self.dest = dest  # id(value) -> where its gradient must end up (leaves)
        self.grads: dict[int, Value] = {}  # id(value) -> its gradient so far
        self._adding: dict[int, Value] = {}

    def grad(self, value: Value) -> Value | None:
        """The gradient of ``value`` accumulated so far (None if nothing reached it)."""
        return self.grads.get(id(value))

    def grad_target(self, value: Value) -> Value:
        have = self.grads.get(id(value))
        if have is None:
            t = self.dest.get(id(value)) or self.program.buffer(value.shape, value.dtype)
            self.grads[id(value)] = t
            return t
        t = self._adding[id(value)] = self.program.buffer(value.shape, value.dtype)
        return t

    def grad_done(self, value: Value) -> None:
        t = self._adding.pop(id(value), None)
        if t is not None:
            g = self.grads[id(value)]
            self.program.emit(f"add({g.code}, {t.code}, out={g.code})")


class Rule:
    """How one op is written as numpy calls. ``applies`` checks the traced call; ``forward``
    emits the output's lines and returns it; ``backward`` emits, for each input that needs a
    gradient, its contribution (``g`` is the output's gradient, None when it is exactly 1)."""

    scalar_grad = False  # True: backward only multiplies by g, which may be a Python float

    def __init__(self, node: Any, args: list[Value | None], kwargs: dict[str, Any]) -> None:
        self.node, self.args, self.kwargs = node, args, kwargs

    @classmethod
    def applies(cls, args: list[Value | None], kwargs: dict[str, Any], out: Any) -> bool:
        return False

    def forward(self, p: Program, out: Any) -> Value:
        raise NotImplementedError

    def backward(self, low: Lowering, g: Value | None) -> None:
        raise NotImplementedError


def _floats(*vals: Value | None) -> bool:
    return all(v is not None and v.dtype.kind == "f" for v in vals) and (
        len({v.dtype for v in vals if v is not None}) == 1
    )


class LinearRule(Rule):
    """out = x @ Wᵀ + b, x (n, k), W (m, k):  dx = g @ W,  dW = gᵀ @ x,  db = onesᵀ @ g."""

    @classmethod
    def applies(cls, args, kwargs, out):
        if kwargs or len(args) not in (2, 3):
            return False
        x, w = args[0], args[1]
        b = args[2] if len(args) == 3 else None
        return (
            _floats(x, w, b)
            and x.dtype == out.dtype
            and len(x.shape) == 2
            and len(w.shape) == 2
            and x.shape[1] == w.shape[1]
            and (b is None or b.shape == (w.shape[0],))
        )

    def forward(self, p, out):
        x, w = self.args[0], self.args[1]
        self.bias = self.args[2] if len(self.args) == 3 else None
        self.out = y = p.buffer(out.shape, out.dtype)
        p.emit(f"matmul({x.code}, {w.code}.T, out={y.code})")
        if self.bias is not None:
            p.emit(f"{y.code} += {self.bias.code}")
        return y

    def backward(self, low, g):
        p = low.program
        x, w = self.args[0], self.args[1]
        need = self.node.needs_input_grad
        gc = g.code if g is not None else p.const("ROOT1", np.ones(self.out.shape, x.dtype))
        if need[1]:
            t = low.grad_target(w)
            p.emit(f"matmul({gc}.T, {x.code}, out={t.code})")
            low.grad_done(w)
        b = self.bias
        if b is not None and need[2]:
            t = low.grad_target(b)
            p.emit(f"matmul({p.ones(x.shape[0], x.dtype)}, {gc}, out={t.code})")
            low.grad_done(b)
        if need[0]:
            t = low.grad_target(x)
            p.emit(f"matmul({gc}, {w.code}, out={t.code})")
            low.grad_done(x)


class _Unary(Rule):
    @classmethod
    def applies(cls, args, kwargs, out):
        return (
            not kwargs
            and len(args) == 1
            and _floats(args[0])
            and args[0].shape == out.shape
            and args[0].dtype == out.dtype
        )

    scratch: Any = None  # the dtype of the backward's scratch buffer (None: the output's)

    def backward(self, low, g):
        a, y = self.args[0], self.out
        if not self.node.needs_input_grad[0]:
            return
        p = low.program
        gc = g.code if g is not None else p.const("ROOT1", np.ones(a.shape, a.dtype))
        s = p.buffer(y.shape, self.scratch or y.dtype)
        t = low.grad_target(a)
        for line in self.grad_lines(gc, y.code, s.code, t.code):
            p.emit(*line) if isinstance(line, tuple) else p.emit(line)
        low.grad_done(a)

    def grad_lines(self, g: str, y: str, s: str, t: str) -> list[Any]:
        """The lines writing dL/da into ``t`` from the gradient ``g``, the output ``y`` and a
        scratch buffer ``s``: each a line, or ``(line, True)`` when it may write over an input
        that dies there."""
        raise NotImplementedError


class SigmoidRule(_Unary):
    """σ(a) = ½ + ½·tanh(a/2) (the op's overflow-free form);  da = g · σ · (1 - σ)."""

    def forward(self, p, out):
        a = self.args[0]
        self.out = y = p.buffer(out.shape, out.dtype)
        p.emit(f"multiply({a.code}, 0.5, out={y.code})", inplace=True)
        p.emit(f"tanh({y.code}, out={y.code})")
        p.emit(f"{y.code} *= 0.5")
        p.emit(f"{y.code} += 0.5")
        return y

    def grad_lines(self, g, y, s, t):
        return [
            (f"multiply({g}, {y}, out={t})", True),
            (f"subtract(1, {y}, out={s})", True),
            f"{t} *= {s}",
        ]


class TanhRule(_Unary):
    """tanh(a);  da = g · (1 - tanh²)."""

    def forward(self, p, out):
        self.out = y = p.buffer(out.shape, out.dtype)
        p.emit(f"tanh({self.args[0].code}, out={y.code})", inplace=True)
        return y

    def grad_lines(self, g, y, s, t):
        return [
            (f"multiply({y}, {y}, out={s})", True),
            f"subtract(1, {s}, out={s})",
            (f"multiply({g}, {s}, out={t})", True),
        ]


class ReLURule(_Unary):
    """max(a, 0);  da = g where the output is > 0, else 0."""

    scratch = np.bool_

    def forward(self, p, out):
        self.out = y = p.buffer(out.shape, out.dtype)
        p.emit(f"maximum({self.args[0].code}, 0, out={y.code})", inplace=True)
        return y

    def grad_lines(self, g, y, s, t):
        return [f"greater({y}, 0, out={s})", (f"multiply({g}, {s}, out={t})", True)]


class MSERule(Rule):
    """L = c · Σ (a - y)² (mse_loss, quadratic_cost);  da = 2c (a - y) · g,  dy = -da."""

    scalar_grad = True  # g only scales: a Python float may stand for it

    @classmethod
    def applies(cls, args, kwargs, out):
        if len(args) != 2 or set(kwargs) - {"scale"}:
            return False
        a, y = args
        return _floats(a, y) and a.shape == y.shape and out.dtype == a.dtype and out.shape == ()

    def forward(self, p, out):
        a, y = self.args
        self.d = d = p.buffer(a.shape, a.dtype)
        scale = self.kwargs.get("scale", 1.0)
        p.emit(f"subtract({a.code}, {y.code}, out={d.code})", inplace=True)
        name = p.fresh("loss")
        dt = p.const(f"DT_{a.dtype.name}", a.dtype)
        c = p.const("SCALE", scale)  # a name, not repr(): scale may be a numpy scalar
        p.emit(f"{name} = asarray(vdot({d.code}, {d.code}) * {c}, dtype={dt})")
        return Value(name, (), a.dtype)

    def backward(self, low, g):
        p = low.program
        a, y = self.args
        d = self.d
        twice = 2.0 * self.kwargs.get("scale", 1.0)
        if g is None:  # the op's own d * (g * 2c) with g = 1, folded
            k = p.const("K", np.ones((), a.dtype) * twice)
        else:
            k = f"({g.code} * {p.const('TWICE', twice)})"
        need = self.node.needs_input_grad
        if need[0]:
            t = low.grad_target(a)
            p.emit(f"multiply({d.code}, {k}, out={t.code})", inplace=not need[1])
            low.grad_done(a)
        if need[1]:
            t = low.grad_target(y)
            p.emit(f"multiply({d.code}, {k}, out={t.code})")
            p.emit(f"negative({t.code}, out={t.code})")
            low.grad_done(y)


class CrossEntropyRule(Rule):
    """Softmax cross-entropy of logits z (n, C) at class indices t (n,), mean or sum:
    L = Σᵢ (log Σ_c e^(zᵢ - mᵢ) - (zᵢₜ - mᵢ)) · k  (k = 1/n or 1);
    dz = (softmax(z) - onehot) · k."""

    scalar_grad = True

    @classmethod
    def applies(cls, args, kwargs, out):
        if len(args) != 2 or kwargs.get("reduction", "mean") not in ("mean", "sum"):
            return False
        z, t = args
        return (
            _floats(z)
            and t is not None
            and t.dtype.kind in "iu"
            and len(z.shape) == 2
            and t.shape == (z.shape[0],)
            and out.dtype == z.dtype
        )

    def forward(self, p, out):
        z, t = self.args
        n, c = z.shape
        col = p.buffer((n, 1), z.dtype)
        self.e = e = p.buffer(z.shape, z.dtype)
        self.col = s = p.buffer((n, 1), z.dtype)
        logs = p.buffer((n, 1), z.dtype)
        rows = p.rows(n)
        name = p.fresh("loss")
        picked = p.fresh("picked")
        # the range check cross_entropy makes before its op, which a replay would skip
        from .nn.functional import _check_indices

        check = p.const("CHECK_INDICES", _check_indices)
        p.emit(f"{check}({t.code}, {c}, 'cross_entropy')")
        p.emit(f"amax({z.code}, axis=1, keepdims=True, out={col.code})")
        p.emit(f"subtract({z.code}, {col.code}, out={e.code})", inplace=True)
        p.emit(f"{picked} = {e.code}[{rows}, {t.code}]")
        p.emit(f"exp({e.code}, out={e.code})")
        p.emit(f"add.reduce({e.code}, axis=1, keepdims=True, out={s.code})")
        p.emit(f"log({s.code}, out={logs.code})")
        total = f"add.reduce({logs.code}[:, 0] - {picked})"
        if self.kwargs.get("reduction", "mean") == "mean":
            p.emit(f"{name} = asarray({total} / {n})")
        else:
            p.emit(f"{name} = asarray({total})")
        p.emit(f"{e.code} /= {s.code}")  # e is softmax(z) now
        return Value(name, (), z.dtype)

    def backward(self, low, g):
        p = low.program
        z, t = self.args
        if not self.node.needs_input_grad[0]:
            return
        n = z.shape[0]
        scale = 1.0 / n if self.kwargs.get("reduction", "mean") == "mean" else 1.0
        if g is None:
            k = p.const("K", np.ones((), z.dtype) * scale)
        else:
            k = f"({g.code} * {scale!r})"
        rows = p.rows(n)
        dz = low.grad_target(z)
        p.copy(dz, self.e)
        p.emit(f"{dz.code}[{rows}, {t.code}] -= 1")
        p.emit(f"{dz.code} *= {k}")
        low.grad_done(z)


RULES: dict[type, type[Rule]] = {
    M.Linear: LinearRule,
    E.Sigmoid: SigmoidRule,
    E.Tanh: TanhRule,
    E.ReLU: ReLURule,
    L.MSE: MSERule,
    L.SoftmaxCrossEntropy: CrossEntropyRule,
}
