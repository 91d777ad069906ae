"""Random programs over the Tensor API: errors are documented ones that name the op, never an
internal one; where the program is smooth, backward agrees with central differences.

Two generators. ``ProgramMachine`` (a hypothesis rule-based state machine) keeps a pool of
tensors and applies random ops to them with random arguments, valid or not: shapes that do or
do not broadcast, axes in and out of range, indices in and out of bounds, wrong argument types,
backward with good and bad gradients. ``smooth_programs`` draws only valid programs of smooth ops
on safe domains and replays them under ``tinygrad_nn.gradcheck``.
"""

from __future__ import annotations

import re
import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    initialize,
    invariant,
    multiple,
    precondition,
    rule,
)

import tinygrad_nn as tg
from tinygrad_nn import Tensor

DOCUMENTED = (ValueError, TypeError, IndexError, RuntimeError)
INTERNAL = (
    AttributeError,
    KeyError,
    AssertionError,
    UnboundLocalError,
    NameError,
    ZeroDivisionError,
    RecursionError,
)


def attempt(names, fn, index_op=False, engine_op=False):
    """``fn()``'s result, or None when it raised a documented error whose message names the op
    (one of ``names``, case-insensitively). Anything else fails the test.

    IndexError counts as documented only for indexing (``index_op``), except numpy's AxisError,
    which is also a ValueError; RuntimeError only for engine misuse (``engine_op``).
    """
    try:
        with np.errstate(all="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # numpy's "mean of empty slice"
            return fn()
    except DOCUMENTED as e:
        kind = type(e).__name__
        assert not isinstance(e, INTERNAL), f"internal error {kind}: {e}"
        if isinstance(e, IndexError) and not isinstance(e, ValueError):
            assert index_op, f"IndexError from a non-indexing op: {e}"
        if isinstance(e, RuntimeError):
            assert engine_op, f"RuntimeError from an op: {e}"
        msg = str(e)
        assert any(re.search(rf"\b{n}\b", msg, re.I) for n in names), (
            f"{kind} does not name the op (one of {names}): {msg!r}"
        )
        return None


def data_for(seed, shape, dtype):
    rng = np.random.default_rng(seed)
    return rng.uniform(-2, 2, shape).astype(dtype)


# ----------------------------------------------------------------------------- strategies

sides = st.integers(0, 4)
shapes = st.lists(sides, max_size=4).map(tuple)
nonempty_shapes = st.lists(st.integers(1, 4), max_size=3).map(tuple)
small_ints = st.integers(-5, 5)
axes = st.one_of(
    st.none(),
    small_ints,
    st.lists(small_ints, max_size=3).map(tuple),
    st.sampled_from([1.5, "0", [0]]),
)
seeds = st.integers(0, 2**16)
float_dtypes = st.sampled_from([np.float32, np.float64])


def index_parts():
    ints = st.integers(-6, 6)
    return st.one_of(
        ints,
        st.builds(slice, st.none() | ints, st.none() | ints, st.sampled_from([None, 1, 2, -1])),
        st.just(None),
        st.just(Ellipsis),
        st.lists(ints, min_size=1, max_size=3).map(np.array),
        st.lists(st.booleans(), min_size=0, max_size=5).map(np.array),
        st.sampled_from([1.5, "a"]),
    )


indices = st.one_of(index_parts(), st.lists(index_parts(), max_size=4).map(tuple))

BINARY = {
    "Add": lambda a, b: a + b,
    "Sub": lambda a, b: a - b,
    "Mul": lambda a, b: a * b,
    "Div": lambda a, b: a / b,
    "Pow": lambda a, b: a**b,
    "Maximum": tg.maximum,
    "Minimum": tg.minimum,
    "MatMul": lambda a, b: a @ b,
}
UNARY = {
    "Exp": Tensor.exp,
    "Log": Tensor.log,
    "Sqrt": Tensor.sqrt,
    "Tanh": Tensor.tanh,
    "Sigmoid": Tensor.sigmoid,
    "ReLU": Tensor.relu,
    "Abs": Tensor.abs,
    "Neg": Tensor.__neg__,
    "Step": Tensor.step,
}
REDUCE = {
    "Sum": ["Sum"],
    "Mean": ["Mean"],
    "Max": ["Max"],
    "Min": ["Min"],
    "var": ["var"],
    "std": ["std"],
}


class ProgramMachine(RuleBasedStateMachine):
    """A pool of tensors; each rule applies one API call with random (possibly bad) arguments."""

    tensors = Bundle("tensors")

    def __init__(self):
        super().__init__()
        self.leaves = []
        self.made = []

    def keep(self, out):
        if out is None:
            return multiple()
        assert isinstance(out, Tensor), type(out)
        self.made.append(out)
        return out

    @initialize(target=tensors, shape=nonempty_shapes, seed=seeds, dtype=float_dtypes)
    def first_leaf(self, shape, seed, dtype):
        return self.new_leaf(shape, seed, dtype, True)

    @rule(target=tensors, shape=shapes, seed=seeds, dtype=float_dtypes, rg=st.booleans())
    def new_leaf(self, shape, seed, dtype, rg):
        t = Tensor(data_for(seed, shape, dtype), dtype=dtype, requires_grad=rg)
        self.leaves.append(t)
        return self.keep(t)

    @rule(target=tensors, a=tensors, b=tensors, name=st.sampled_from(sorted(BINARY)))
    def binary(self, a, b, name):
        return self.keep(attempt([name], lambda: BINARY[name](a, b)))

    @rule(
        target=tensors,
        a=tensors,
        shape=shapes,
        seed=seeds,
        name=st.sampled_from(sorted(BINARY)),
        scalar=st.booleans(),
        swap=st.booleans(),
    )
    def binary_with_constant(self, a, shape, seed, name, scalar, swap):
        c = 1.5 if scalar else data_for(seed, shape, np.float64)
        x, y = (c, a) if swap else (a, c)
        return self.keep(attempt([name], lambda: BINARY[name](x, y)))

    @rule(target=tensors, a=tensors, name=st.sampled_from(sorted(UNARY)))
    def unary(self, a, name):
        return self.keep(attempt([name], lambda: UNARY[name](a)))

    @rule(
        target=tensors, a=tensors, lo=st.none() | st.floats(-1, 0), hi=st.none() | st.floats(0, 1)
    )
    def clip(self, a, lo, hi):
        return self.keep(attempt(["clip"], lambda: a.clip(lo, hi)))

    @rule(
        target=tensors,
        a=tensors,
        name=st.sampled_from(sorted(REDUCE)),
        axis=axes,
        keepdims=st.booleans(),
    )
    def reduce(self, a, name, axis, keepdims):
        return self.keep(
            attempt(REDUCE[name], lambda: getattr(a, name.lower())(axis=axis, keepdims=keepdims))
        )

    @rule(target=tensors, a=tensors, shape=st.lists(st.integers(-2, 6), max_size=4))
    def reshape(self, a, shape):
        return self.keep(attempt(["Reshape", "reshape"], lambda: a.reshape(tuple(shape))))

    @rule(target=tensors, a=tensors, perm=st.one_of(st.none(), st.permutations(range(4))))
    def transpose(self, a, perm):
        axes = None if perm is None else perm[: a.ndim] if a.ndim < 4 else perm
        return self.keep(
            attempt(["transpose"], lambda: a.transpose() if axes is None else a.transpose(axes))
        )

    @rule(target=tensors, a=tensors, axes=st.lists(st.integers(-5, 5) | st.just("a"), max_size=4))
    def transpose_any_axes(self, a, axes):
        return self.keep(attempt(["transpose"], lambda: a.transpose(*axes)))

    @rule(target=tensors, a=tensors, index=indices)
    def getitem(self, a, index):
        return self.keep(attempt(["GetItem"], lambda: a[index], index_op=True))

    @rule(
        target=tensors,
        a=tensors,
        name=st.sampled_from(["softmax", "log_softmax", "logsumexp"]),
        axis=st.one_of(small_ints, st.just(1.5)),
    )
    def softmax(self, a, name, axis):
        op = {"softmax": "Softmax", "log_softmax": "LogSoftmax", "logsumexp": "LogSumExp"}[name]
        return self.keep(attempt([op], lambda: getattr(a, name)(axis=axis)))

    @rule(
        target=tensors,
        parts=st.lists(tensors, min_size=1, max_size=3),
        axis=small_ints,
        kind=st.sampled_from(["concatenate", "stack"]),
    )
    def join(self, parts, axis, kind):
        fn = getattr(tg, kind)
        return self.keep(attempt([kind], lambda: fn(parts, axis=axis)))

    @rule(target=tensors, a=tensors, start=small_ints, end=small_ints)
    def flatten(self, a, start, end):
        return self.keep(attempt(["flatten"], lambda: a.flatten(start, end)))

    @rule(target=tensors, a=tensors, axis=axes)
    def squeeze(self, a, axis):
        return self.keep(attempt(["squeeze"], lambda: a.squeeze(axis)))

    @rule(target=tensors, a=tensors, axis=st.one_of(small_ints, st.just("0")))
    def unsqueeze(self, a, axis):
        return self.keep(attempt(["unsqueeze"], lambda: a.unsqueeze(axis)))

    @rule(target=tensors, a=tensors, shape=st.lists(st.integers(-1, 4), max_size=4))
    def broadcast_to(self, a, shape):
        return self.keep(attempt(["BroadcastTo", "broadcast_to"], lambda: a.broadcast_to(shape)))

    @rule(target=tensors, a=tensors, b=tensors, c=tensors)
    def where(self, a, b, c):
        return self.keep(attempt(["Where", "where"], lambda: tg.where(a > 0, b, c)))

    @rule(
        a=tensors,
        grad=st.sampled_from(["omit", "ones", "wrong shape", "scalar"]),
        retain=st.booleans(),
    )
    def backward(self, a, grad, retain):
        g = {
            "omit": None,
            "ones": np.ones(a.shape),
            "wrong shape": np.ones(a.shape + (2,)),
            "scalar": 1.0,
        }[grad]
        attempt(["backward"], lambda: a.backward(g, retain_graph=retain), engine_op=True)

    @precondition(lambda self: self.made)
    @invariant()
    def tensors_are_consistent(self):
        for t in self.made[-3:]:
            assert isinstance(t.data, np.ndarray) and t.data.dtype.kind in "fiub"
            assert not t.requires_grad or t.dtype.kind == "f"
        for leaf in self.leaves:
            if leaf.grad is not None:
                assert leaf.grad.shape == leaf.shape and leaf.grad.dtype == leaf.dtype


TestRandomPrograms = ProgramMachine.TestCase
TestRandomPrograms.settings = settings(max_examples=200, stateful_step_count=50, deadline=None)


# ----------------------------------------------------------------------------- smooth programs
#
# An instruction is (op, operand indices, options); a program is run on fresh leaves by
# ``replay``. Operands are chosen so that every instruction is valid, and values stay where the
# ops are smooth: log and sqrt only see 1.5 + tanh(·) > 0, division only by such a value.


def replay(program, leaves):
    values = list(leaves)
    for op, args, opts in program:
        xs = [values[i] for i in args]
        values.append(SMOOTH[op](*xs, **opts))
    return values[-1]


def _swap_last(nd):
    return tuple(range(nd - 2)) + (nd - 1, nd - 2)


def _positive(x):
    return x.tanh() + 1.5


SMOOTH = {
    "add": lambda a, b: a + b,
    "sub": lambda a, b: a - b,
    "mul": lambda a, b: a * b,
    "div": lambda a, b: a / _positive(b),
    "pow": lambda a: _positive(a) ** 1.5,
    "log": lambda a: _positive(a).log(),
    "sqrt": lambda a: _positive(a).sqrt(),
    "exp": lambda a: a.tanh().exp(),
    "tanh": Tensor.tanh,
    "sigmoid": Tensor.sigmoid,
    "sum": lambda a, axis, keepdims: a.sum(axis=axis, keepdims=keepdims),
    "mean": lambda a, axis, keepdims: a.mean(axis=axis, keepdims=keepdims),
    "var": lambda a, axis: a.var(axis=axis),
    "reshape": lambda a, shape: a.reshape(shape),
    "transpose": lambda a, axes: a.transpose(axes),
    "getitem": lambda a, index: a[index],
    "matmul": lambda a, b: a @ b,
    "gram": lambda a: a @ (a if a.ndim == 1 else a.transpose(_swap_last(a.ndim))),
    "softmax": lambda a, axis: a.softmax(axis),
    "log_softmax": lambda a, axis: a.log_softmax(axis),
    "logsumexp": lambda a, axis: a.logsumexp(axis),
    "concatenate": lambda *xs, axis: tg.concatenate(list(xs), axis=axis),
    "stack": lambda *xs, axis: tg.stack(list(xs), axis=axis),
    "broadcast_to": lambda a, shape: a.broadcast_to(shape),
    "where": lambda a, b, mask: tg.where(mask, a, b),
}


def _broadcast_partner(draw, shape):
    """A shape that broadcasts with ``shape``: some axes set to 1, some leading axes dropped."""
    out = [1 if draw(st.booleans()) else n for n in shape]
    return tuple(out[draw(st.integers(0, len(out))) :])


@st.composite
def smooth_programs(draw):
    n_leaves = draw(st.integers(1, 2))
    shapes_ = [draw(st.lists(st.integers(1, 3), min_size=1, max_size=3).map(tuple))]
    if n_leaves == 2:
        if draw(st.booleans()):
            shapes_.append(_broadcast_partner(draw, shapes_[0]) or (1,))
        else:  # a matrix that the first leaf can multiply
            shapes_.append((shapes_[0][-1], draw(st.integers(1, 3))))
    leaves = [
        Tensor(data_for(draw(seeds), s, np.float64), dtype=np.float64, requires_grad=True)
        for s in shapes_
    ]
    program = []
    values = list(leaves)

    def add(op, args, **opts):
        out = SMOOTH[op](*[values[i] for i in args], **opts)
        if out.size <= 64:  # keep gradcheck cheap
            program.append((op, args, opts))
            values.append(out)

    for _ in range(draw(st.integers(1, 6))):
        i = draw(st.integers(0, len(values) - 1))
        x = values[i]
        nd = x.ndim
        choices = [
            "tanh",
            "sigmoid",
            "exp",
            "log",
            "sqrt",
            "pow",
            "reshape",
            "getitem",
            "concatenate",
            "broadcast_to",
        ]
        if nd:
            choices += [
                "sum",
                "mean",
                "transpose",
                "softmax",
                "log_softmax",
                "logsumexp",
                "stack",
                "where",
                "add",
                "sub",
                "mul",
                "div",
                "var",
                "matmul",
            ]
        op = draw(st.sampled_from(choices))
        if op in ("add", "sub", "mul", "div"):
            partners = [j for j, v in enumerate(values) if _broadcasts(x.shape, v.shape)]
            add(op, [i, draw(st.sampled_from(partners))])
        elif op in ("sum", "mean"):
            axis = draw(st.none() | st.integers(-nd, nd - 1))
            add(op, [i], axis=axis, keepdims=draw(st.booleans()))
        elif op == "var":
            sizes = [k for k in range(nd) if x.shape[k] > 1]
            if sizes:
                add(op, [i], axis=draw(st.sampled_from(sizes)))
        elif op == "reshape":
            flat = draw(st.sampled_from([(-1,), (x.size, 1), (1, -1)]))
            add(op, [i], shape=flat)
        elif op == "transpose":
            add(op, [i], axes=tuple(draw(st.permutations(range(nd)))))
        elif op == "getitem":
            if nd == 0:
                continue
            index = tuple(
                draw(st.integers(-n, n - 1) | st.integers(0, n - 1).map(lambda k: slice(k, None)))
                for n in x.shape[: draw(st.integers(1, nd))]
            )
            add(op, [i], index=index)
        elif op == "matmul":
            k = x.shape[-1]
            fits = [j for j, v in enumerate(values) if v.ndim in (1, 2) and v.shape[0] == k]
            if fits and draw(st.booleans()):
                add(op, [i, draw(st.sampled_from(fits))])
            else:  # x times its own transpose: both operands' gradients meet in one leaf
                add("gram", [i])
        elif op in ("softmax", "log_softmax", "logsumexp"):
            add(op, [i], axis=draw(st.integers(-nd, nd - 1)))
        elif op == "concatenate":
            if nd == 0:
                continue
            same = [j for j, v in enumerate(values) if v.shape[1:] == x.shape[1:] and v.ndim]
            add(op, [i, draw(st.sampled_from(same))], axis=0)
        elif op == "stack":
            same = [j for j, v in enumerate(values) if v.shape == x.shape]
            add(op, [i, draw(st.sampled_from(same))], axis=draw(st.integers(-nd - 1, nd)))
        elif op == "broadcast_to":
            add(op, [i], shape=(2,) + x.shape)
        elif op == "where":
            mask = np.random.default_rng(draw(seeds)).random(x.shape) > 0.5
            add(op, [i, i], mask=mask)
        else:
            add(op, [i])
    return leaves, program


def _broadcasts(s, t):
    try:
        np.broadcast_shapes(s, t)
    except ValueError:
        return False
    return True


@settings(max_examples=200, deadline=None)
@given(smooth_programs(), seeds)
def test_smooth_random_programs_pass_gradcheck(drawn, seed):
    leaves, program = drawn
    out = replay(program, leaves)
    v = np.random.default_rng(seed).standard_normal(out.shape)
    assert tg.gradcheck(lambda *xs: (replay(program, xs) * v).sum(), *leaves)


# ----------------------------------------------------------------------------- regressions


@pytest.mark.parametrize(
    "call, exc, message",
    [
        (lambda x: x.clip("a"), TypeError, r"^Clip: "),
        (lambda x: x.flatten(5), ValueError, r"^flatten: start_dim 5 is out of range"),
        (lambda x: x.flatten(0, -7), ValueError, r"^flatten: end_dim -7 is out of range"),
        (lambda x: x.squeeze(4), ValueError, r"^squeeze: axis 4 is out of bounds"),
        (lambda x: x.var(axis=3), ValueError, r"^var: axis 3 is out of bounds"),
        (lambda x: x.std(axis=(0, 0)), ValueError, r"^std: repeated axis"),
        (lambda x: x.transpose("a", 0), TypeError, r"^transpose: axes must be ints"),
        (lambda x: x.unsqueeze("a"), TypeError, r"^unsqueeze: axis must be an int"),
        (lambda x: tg.where(x > 0, x, "a"), TypeError, r"^where: .*str"),
    ],
)
def test_errors_found_by_fuzzing_name_the_op(call, exc, message):
    x = Tensor(np.ones((2, 3)), requires_grad=True)
    with pytest.raises(exc, match=message):
        call(x)
