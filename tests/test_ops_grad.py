"""Every differentiable op, gradchecked on drawn shapes: 0-d, size-1 axes, broadcasting pairs.

Kinks are kept out of the drawn values by the strategies (``avoid=``, ``distinct=True``), never by
loosening gradcheck's tolerances.
"""

import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

import tinygrad_nn as tg
from tinygrad_nn import Tensor
from tinygrad_nn.ops import matmul as M
from tinygrad_nn.testing import (
    arrays,
    assert_close,
    assert_gradcheck,
    broadcastable_shapes,
    float_dtypes,
    shapes,
    tensor_tuples,
    tensors,
)


def pair(a: dict | None = None, b: dict | None = None, **common):
    """Two tensors of broadcastable shapes, drawn with ``a`` and ``b``'s keyword arguments."""
    return broadcastable_shapes(2).flatmap(
        lambda s: st.tuples(
            tensors(shape=s[0], **{**common, **(a or {})}),
            tensors(shape=s[1], **{**common, **(b or {})}),
        )
    )


@st.composite
def axes(draw, ndim: int):
    """An ``axis`` argument for a tensor of ``ndim`` axes: None, an int or a tuple of ints."""
    if ndim == 0:
        return draw(st.sampled_from([None, ()]))
    kind = draw(st.sampled_from(["none", "int", "tuple"]))
    if kind == "none":
        return None
    if kind == "int":
        return draw(st.integers(-ndim, ndim - 1))
    chosen = draw(st.lists(st.integers(0, ndim - 1), min_size=1, max_size=ndim, unique=True))
    return tuple(a - ndim if draw(st.booleans()) else a for a in chosen)


# ---------------------------------------------------------------------------- arithmetic

BINARY = [
    ("add", lambda a, b: a + b, {}, {}),
    ("sub", lambda a, b: a - b, {}, {}),
    ("mul", lambda a, b: a * b, {}, {}),
    ("div", lambda a, b: a / b, {}, {"domain": "nonzero"}),
    ("pow", lambda a, b: a**b, {"domain": "positive"}, {}),
]


@pytest.mark.parametrize("fn, ka, kb", [b[1:] for b in BINARY], ids=[b[0] for b in BINARY])
@given(data=st.data(), dtype=float_dtypes())
def test_binary_broadcasting(data, dtype, fn, ka, kb):
    a, b = data.draw(pair(ka, kb, dtype=dtype))
    assert_gradcheck(fn, a, b)


@pytest.mark.parametrize("which", [0, 1])
@given(data=st.data())
def test_binary_with_one_constant_input(data, which):
    a, b = data.draw(pair(b={"domain": "nonzero"}))
    (a if which else b).requires_grad = False
    assert_gradcheck(lambda x, y: x * y - x / y + y, a, b)


SCALAR = [
    ("radd", lambda t: 2.5 + t, {}),
    ("rsub", lambda t: 2.5 - t, {}),
    ("rmul", lambda t: -1.5 * t, {}),
    ("rdiv", lambda t: 3 / t, {"domain": "nonzero"}),
    ("add", lambda t: t + 1, {}),
    ("sub", lambda t: t - 0.5, {}),
    ("div", lambda t: t / 4, {}),
    ("neg", lambda t: -t, {}),
    ("pos", lambda t: +t, {}),
    ("square", lambda t: t**2, {}),
    ("cube", lambda t: t**3, {}),
    ("pow_half", lambda t: t**0.5, {"domain": "positive"}),
    ("pow_minus_one", lambda t: t**-1, {"domain": "nonzero"}),
    ("pow_real", lambda t: t**1.7, {"domain": "positive"}),
    ("rpow", lambda t: 2.0**t, {}),
    ("rpow_array", lambda t: np.array(3.0) ** t, {}),
]


@pytest.mark.parametrize("fn, kw", [s[1:] for s in SCALAR], ids=[s[0] for s in SCALAR])
@given(data=st.data())
def test_with_python_scalars(data, fn, kw):
    assert_gradcheck(fn, data.draw(tensors(**kw)))


def test_pow_gradients_at_a_zero_base():
    """d(a^b)/da = b·a^(b-1) is 0·∞ at a = 0, b = 0: the gradient is 0 there (the function is
    the constant 1), not nan. d(a^b)/db = a^b·ln a at a = 0 is 0 for b ≥ 0 and -∞·g for b < 0.
    The expected values are PyTorch's."""
    x = Tensor([0.0, 1.0, 2.0], requires_grad=True)
    (x**0).sum().backward()
    assert_close(x.grad, np.zeros(3, np.float32), check_dtype=True)
    a = Tensor([0.0, 0.0, 0.0, 2.0], requires_grad=True)
    b = Tensor([0.0, 2.0, -1.0, 0.0], requires_grad=True)
    with np.errstate(divide="ignore"):
        (a**b).backward(np.ones(4, np.float32))
    assert_close(a.grad, np.array([0.0, 0.0, -np.inf, 0.0], np.float32), check_dtype=True)
    assert_close(b.grad, np.array([0.0, 0.0, -np.inf, np.log(2)], np.float32), check_dtype=True)
    c = Tensor([0.0, 2.0, -1.0], requires_grad=True)
    with np.errstate(divide="ignore"):
        (0.0**c).backward(np.full(3, -2.0, np.float32))
    assert_close(c.grad, np.array([0.0, 0.0, np.inf], np.float32), check_dtype=True)

    # Gradchecks through a = 0 where the derivative exists: b = 0 (constant 1) and b = 2.
    a = Tensor([0.0, 0.0, 1.5, 2.0], dtype=np.float64, requires_grad=True)
    b = Tensor([0.0, 2.0, 0.0, -1.0], dtype=np.float64)
    assert_gradcheck(lambda t: t**b, a)
    assert_gradcheck(lambda t: t**0, a)
    assert_gradcheck(lambda t: t**0.0 * 3, a)
    # ... and in the exponent at a = 0 for b > 0 (0^b = 0 on both sides).
    e = Tensor([1.0, 2.0, -0.5], dtype=np.float64, requires_grad=True)
    base = Tensor([0.0, 0.0, 1.5], dtype=np.float64)
    assert_gradcheck(lambda t: base**t, e)


# ---------------------------------------------------------------------------- matmul


@st.composite
def matmul_operands(draw):
    n, k, m = (draw(st.integers(1, 4)) for _ in range(3))
    a_1d, b_1d = draw(st.booleans()), draw(st.booleans())
    batch_a, batch_b = draw(broadcastable_shapes(2, max_dims=2, max_side=3))
    shape_a = (k,) if a_1d else batch_a + (n, k)
    shape_b = (k,) if b_1d else batch_b + (k, m)
    return draw(tensors(shape=shape_a)), draw(tensors(shape=shape_b))


@given(matmul_operands())
def test_matmul(ab):
    a, b = ab
    assert_gradcheck(lambda x, y: x @ y, a, b)


@pytest.mark.parametrize(
    "shape_a, shape_b",
    [((3,), (3,)), ((2, 3), (3,)), ((3,), (3, 2)), ((2, 3), (3, 4)), ((2, 1, 3, 4), (5, 4, 2))],
)
def test_matmul_fixed_shapes(shape_a, shape_b):
    rng = np.random.default_rng(0)
    a = Tensor(rng.standard_normal(shape_a), dtype=np.float64, requires_grad=True)
    b = Tensor(rng.standard_normal(shape_b), dtype=np.float64, requires_grad=True)
    assert_gradcheck(lambda x, y: x @ y, a, b)
    assert_gradcheck(lambda x, y: x @ y, a.detach(), b)
    assert_gradcheck(lambda x, y: x @ y, a, b.detach())


@given(data=st.data(), bias=st.booleans())
def test_linear(data, bias):
    n_in, n_out = data.draw(st.integers(1, 4)), data.draw(st.integers(1, 4))
    lead = data.draw(shapes(min_dims=0, max_dims=2))
    x = data.draw(tensors(shape=lead + (n_in,)))
    w = data.draw(tensors(shape=(n_out, n_in)))
    b = data.draw(tensors(shape=(n_out,)))
    if bias:
        assert_gradcheck(lambda x, w, b: M.Linear.apply(x, w, b), x, w, b)
    else:
        assert_gradcheck(lambda x, w: M.Linear.apply(x, w), x, w)


# ---------------------------------------------------------------------------- unary

UNARY = [
    ("exp", lambda t: t.exp(), {}),
    ("log", lambda t: t.log(), {"domain": "positive"}),
    ("sqrt", lambda t: t.sqrt(), {"domain": "positive"}),
    ("tanh", lambda t: t.tanh(), {}),
    ("sigmoid", lambda t: t.sigmoid(), {}),
    ("relu", lambda t: t.relu(), {"avoid": (0.0,)}),
    ("abs", lambda t: t.abs(), {"avoid": (0.0,)}),
    ("abs_builtin", lambda t: abs(t), {"avoid": (0.0,)}),
    ("clip", lambda t: t.clip(-1.0, 1.5), {"avoid": (-1.0, 1.5)}),
    ("clip_min", lambda t: t.clip(min=0.5), {"avoid": (0.5,)}),
    (
        "clip_numpy_bounds",
        lambda t: t.clip(np.float64(-1.0), np.array(1.5)),
        {"avoid": (-1.0, 1.5)},
    ),
    ("clip_max", lambda t: t.clip(max=-0.5), {"avoid": (-0.5,)}),
    ("maximum_scalar", lambda t: t.maximum(0.25), {"avoid": (0.25,)}),
    ("minimum_scalar", lambda t: t.minimum(-0.25), {"avoid": (-0.25,)}),
    ("step", lambda t: t.step(), {"avoid": (0.0,)}),
    ("std", lambda t: t.std(), {"distinct": True}),
    ("double", lambda t: t.double(), {}),
    ("astype_same", lambda t: t.astype(np.float64), {}),
]


@pytest.mark.parametrize("name, fn, kw", UNARY, ids=[u[0] for u in UNARY])
@given(data=st.data(), dtype=float_dtypes())
def test_unary(data, dtype, name, fn, kw):
    x = data.draw(tensors(dtype=dtype, **kw))
    if name == "std":  # the square root of a variance, which must not be 0
        assume(x.size > 1)
    assert_gradcheck(fn, x)


@given(tensors(avoid=(0.0,)))
def test_step_gradient_is_zero(x):
    x.step().backward(np.full(x.shape, 3.0))
    assert_close(x.grad, np.zeros(x.shape))


@given(tensors())
def test_astype_between_float_dtypes(x):
    y = x.astype(np.float32)
    assert y.dtype == np.float32
    g = np.arange(x.size, dtype=np.float32).reshape(x.shape)
    y.backward(g)
    assert x.grad.dtype == np.float64
    assert_close(x.grad, g.astype(np.float64))
    # A float32 output cannot resolve gradcheck's default step of 1e-6, so this (linear) check
    # uses a wider step; the tolerances are the defaults.
    assert_gradcheck(lambda t: (t.astype(np.float32) * 3.0).astype(np.float64), x, eps=1e-3)


# ---------------------------------------------------------------------------- min / max


@pytest.mark.parametrize("fn", [tg.maximum, tg.minimum, Tensor.maximum, Tensor.minimum])
@given(data=st.data())
def test_maximum_minimum_broadcasting(data, fn):
    shape_pair = data.draw(broadcastable_shapes(2))
    a, b = data.draw(tensor_tuples(shape_pair, distinct=True))
    assert_gradcheck(fn, a, b)


# ---------------------------------------------------------------------------- reductions


@st.composite
def reduction_case(draw, **tensor_kw):
    x = draw(tensors(shape=shapes(), **tensor_kw))
    return x, draw(axes(x.ndim)), draw(st.booleans())


@pytest.mark.parametrize("name", ["sum", "mean"])
@given(case=reduction_case())
def test_sum_mean(case, name):
    x, axis, keepdims = case
    assert_gradcheck(lambda t: getattr(t, name)(axis=axis, keepdims=keepdims), x)


@pytest.mark.parametrize("name", ["max", "min"])
@given(case=reduction_case(distinct=True))
def test_max_min(case, name):
    x, axis, keepdims = case
    assert_gradcheck(lambda t: getattr(t, name)(axis=axis, keepdims=keepdims), x)


@given(case=reduction_case(), ddof=st.integers(0, 1))
def test_var(case, ddof):
    x, axis, keepdims = case
    reduced = [x.shape[i] for i in range(x.ndim)] if axis is None else None
    if reduced is None:
        axis_t = (axis,) if isinstance(axis, int) else axis
        reduced = [x.shape[i] for i in axis_t]
    assume(int(np.prod(reduced)) > ddof)
    assert_gradcheck(lambda t: t.var(axis=axis, ddof=ddof, keepdims=keepdims), x)


def test_max_ties_split_the_gradient():
    x = Tensor([1.0, 3.0, 3.0, 2.0], requires_grad=True)
    x.max().backward()
    assert_close(x.grad, np.array([0.0, 0.5, 0.5, 0.0], dtype=np.float32))
    y = Tensor([[2.0, 2.0], [1.0, 5.0]], requires_grad=True)
    y.min(axis=1).sum().backward()
    assert_close(y.grad, np.array([[0.5, 0.5], [1.0, 0.0]], dtype=np.float32))
    a = Tensor([1.0, 2.0], requires_grad=True)
    b = Tensor([1.0, 0.0], requires_grad=True)
    tg.maximum(a, b).sum().backward()
    assert_close(a.grad, np.array([0.5, 1.0], dtype=np.float32))
    assert_close(b.grad, np.array([0.5, 0.0], dtype=np.float32))


# ---------------------------------------------------------------------------- shape ops


@given(data=st.data())
def test_reshape(data):
    x = data.draw(tensors())
    assert_gradcheck(lambda t: t.reshape(-1), x)
    assert_gradcheck(lambda t: t.reshape(x.shape[::-1]), x)
    assert_gradcheck(lambda t: t.reshape(*x.shape, 1), x)


@given(data=st.data())
def test_transpose(data):
    x = data.draw(tensors())
    perm = data.draw(st.permutations(range(x.ndim)))
    assert_gradcheck(lambda t: t.transpose(), x)
    assert_gradcheck(lambda t: t.T, x)
    assert_gradcheck(lambda t: t.transpose(perm), x)
    assert_gradcheck(lambda t: t.transpose(*perm), x)


@given(data=st.data())
def test_flatten(data):
    x = data.draw(tensors())
    assert_gradcheck(lambda t: t.flatten(), x)
    if x.ndim:
        start = data.draw(st.integers(0, x.ndim - 1))
        end = data.draw(st.integers(start, x.ndim - 1))
        assert_gradcheck(lambda t: t.flatten(start, end), x)


@given(data=st.data())
def test_squeeze_unsqueeze(data):
    x = data.draw(tensors(shape=shapes(max_side=2)))
    assert_gradcheck(lambda t: t.squeeze(), x)
    ones = [i for i, n in enumerate(x.shape) if n == 1]
    if ones:
        axis = data.draw(st.sampled_from(ones))
        assert_gradcheck(lambda t: t.squeeze(axis), x)
    axis = data.draw(st.integers(-x.ndim - 1, x.ndim))
    assert_gradcheck(lambda t: t.unsqueeze(axis), x)


@given(data=st.data())
def test_broadcast_to(data):
    s, other = data.draw(broadcastable_shapes(2))
    target = np.broadcast_shapes(s, other)
    x = data.draw(tensors(shape=s))
    assert_gradcheck(lambda t: t.broadcast_to(target), x)


# ---------------------------------------------------------------------------- indexing


@st.composite
def index_case(draw):
    """A tensor of 1..3 axes and an index of one kind: int, slice, None, Ellipsis, an int array
    (with repeats), a bool mask, or a mix of them."""
    x = draw(tensors(shape=shapes(min_dims=1)))
    n = x.shape[0]
    kind = draw(
        st.sampled_from(
            ["int", "slice", "none", "ellipsis", "int_array", "int_list", "mask", "mask_axis0",
             "mixed", "int_tensor"]
        )
    )  # fmt: skip
    if kind == "int":
        index = draw(st.integers(-n, n - 1))
    elif kind == "slice":
        start = draw(st.none() | st.integers(-n, n))
        stop = draw(st.none() | st.integers(-n, n))
        step = draw(st.none() | st.sampled_from([1, 2, -1, -2]))
        index = slice(start, stop, step)
    elif kind == "none":
        index = (None, slice(None), None)
    elif kind == "ellipsis":
        index = (Ellipsis, draw(st.integers(-x.shape[-1], x.shape[-1] - 1)))
    elif kind in ("int_array", "int_list", "int_tensor"):
        idx = draw(st.lists(st.integers(-n, n - 1), min_size=1, max_size=6))
        if kind == "int_array":
            index = np.array(idx)
        elif kind == "int_list":
            index = idx
        else:
            index = Tensor(np.array(idx))
    elif kind == "mask":
        index = draw(arrays(shape=x.shape)) > 0
    elif kind == "mask_axis0":
        index = np.array(draw(st.lists(st.booleans(), min_size=n, max_size=n)))
    else:  # mixed: an int array with repeats on axis 0 and a slice after it
        idx = np.array(draw(st.lists(st.integers(0, n - 1), min_size=1, max_size=5)))
        index = (idx, slice(None, None, -1)) if x.ndim > 1 else (idx, None)
    return x, index


@given(index_case())
def test_getitem(case):
    x, index = case
    assert_gradcheck(lambda t: t[index], x)


def test_getitem_repeated_indices_accumulate():
    x = Tensor([1.0, 2.0, 3.0], requires_grad=True)
    x[np.array([0, 2, 0, 0])].backward(np.array([1.0, 10.0, 100.0, 1000.0]))
    assert_close(x.grad, np.array([1101.0, 0.0, 10.0], dtype=np.float32))


# ---------------------------------------------------------------------------- joining


@given(data=st.data(), n=st.integers(1, 3))
def test_concatenate(data, n):
    base = data.draw(shapes(min_dims=1))
    axis = data.draw(st.integers(-len(base), len(base) - 1))
    sizes = data.draw(st.lists(st.integers(1, 3), min_size=n, max_size=n))
    shape_list = [base[: axis % len(base)] + (k,) + base[axis % len(base) + 1 :] for k in sizes]
    xs = data.draw(tensor_tuples(shape_list))
    assert_gradcheck(lambda *ts: tg.concatenate(list(ts), axis=axis), *xs)


@given(data=st.data(), n=st.integers(1, 3))
def test_stack(data, n):
    shape = data.draw(shapes())
    axis = data.draw(st.integers(-len(shape) - 1, len(shape)))
    xs = data.draw(tensor_tuples([shape] * n))
    assert_gradcheck(lambda *ts: tg.stack(ts, axis=axis), *xs)


@given(data=st.data(), cond_tensor=st.booleans())
def test_where(data, cond_tensor):
    s_cond, s_a, s_b = data.draw(broadcastable_shapes(3))
    cond = data.draw(arrays(shape=s_cond)) > 0
    if cond_tensor:
        cond = Tensor(cond)
    a, b = data.draw(tensor_tuples([s_a, s_b]))
    assert_gradcheck(lambda x, y: tg.where(cond, x, y), a, b)
    assert_gradcheck(lambda x: tg.where(cond, x, 0.5), a)
    assert_gradcheck(lambda y: tg.where(cond, 2.0, y), b)


# ---------------------------------------------------------------------------- softmax family


@pytest.mark.parametrize("name", ["softmax", "log_softmax", "logsumexp"])
@given(data=st.data())
def test_softmax_family(data, name):
    x = data.draw(tensors(shape=shapes(min_dims=1), low=-5.0, high=5.0))
    axis = data.draw(st.integers(-x.ndim, x.ndim - 1))
    assert_gradcheck(lambda t: getattr(t, name)(axis=axis), x)
    if name == "logsumexp":
        assert_gradcheck(lambda t: t.logsumexp(axis=axis, keepdims=True), x)


@given(case=reduction_case(low=-5.0, high=5.0))
def test_logsumexp_over_any_axes(case):
    x, axis, keepdims = case
    assert_gradcheck(lambda t: t.logsumexp(axis=axis, keepdims=keepdims), x)


def test_logsumexp_over_all_axes():
    # axis=None passed the forward and crashed in the backward (np.expand_dims(g, None))
    x = Tensor(np.random.default_rng(1).standard_normal((2, 3)), requires_grad=True)
    for keepdims in (False, True):
        out = x.logsumexp(axis=None, keepdims=keepdims)
        assert out.shape == ((1, 1) if keepdims else ())
        assert_close(out, np.log(np.exp(x.data).sum(keepdims=keepdims)))
        assert_gradcheck(lambda t, k=keepdims: t.logsumexp(axis=None, keepdims=k), x)


def test_softmax_family_default_axis_is_last():
    x = Tensor(np.random.default_rng(0).standard_normal((2, 3, 4)), dtype=np.float64)
    x.requires_grad = True
    for name in ["softmax", "log_softmax", "logsumexp"]:
        assert_gradcheck(lambda t, name=name: getattr(t, name)(), x)
        assert_close(getattr(x, name)(), getattr(x, name)(axis=2))


# ---------------------------------------------------------------------------- numpy dispatch


@given(
    broadcastable_shapes(2).flatmap(lambda s: tensor_tuples(s, domain="positive", distinct=True))
)
def test_numpy_functions_on_tensors_are_differentiable(ab):
    a, b = ab
    assert_gradcheck(lambda x, y: np.exp(x) * np.sqrt(y) + np.maximum(x, y) / np.log(y + 1), a, b)
    assert_gradcheck(lambda x: np.sum(np.tanh(x), axis=-1) - np.mean(x), a)
