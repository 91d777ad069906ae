"""The forward value of every op equals numpy's on the same data."""

import warnings

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import tinygrad_nn as tg
from tinygrad_nn import Tensor
from tinygrad_nn.testing import (
    arrays,
    assert_close,
    broadcastable_shapes,
    float_dtypes,
    shapes,
)


@st.composite
def array_pair(draw, **kw):
    sa, sb = draw(broadcastable_shapes(2))
    d = draw(float_dtypes())
    return draw(arrays(shape=sa, dtype=d, **kw)), draw(arrays(shape=sb, dtype=d, **kw))


def same(actual: Tensor, expected) -> None:
    """Values, shape and dtype as numpy's."""
    expected = np.asarray(expected)
    assert isinstance(actual, Tensor)
    assert actual.dtype == expected.dtype, (actual.dtype, expected.dtype)
    assert_close(actual, expected)


# ---------------------------------------------------------------------------- arithmetic

BINARY = {
    "add": lambda a, b: a + b,
    "sub": lambda a, b: a - b,
    "mul": lambda a, b: a * b,
    "div": lambda a, b: a / b,
    "maximum": np.maximum,
    "minimum": np.minimum,
}


@pytest.mark.parametrize("name", sorted(BINARY))
@given(ab=array_pair(domain="nonzero"))
def test_binary(ab, name):
    a, b = ab
    fn = BINARY[name]
    expected = fn(a, b)
    same(fn(Tensor(a, dtype=a.dtype), Tensor(b, dtype=b.dtype)), expected)
    same(fn(Tensor(a, dtype=a.dtype), b), expected)  # an array on the right
    same(fn(a, Tensor(b, dtype=b.dtype)), expected)  # and on the left


@given(ab=array_pair(domain="positive"))
def test_pow(ab):
    a, b = ab
    same(Tensor(a, dtype=a.dtype) ** Tensor(b, dtype=b.dtype), a**b)
    same(Tensor(a, dtype=a.dtype) ** 2, a**2)
    same(Tensor(a, dtype=a.dtype) ** 0.5, a**0.5)
    same(2 ** Tensor(b, dtype=b.dtype), 2**b)


@given(a=arrays(dtype=float_dtypes()), s=st.sampled_from([2, -1.5, 0.25, True]))
def test_python_scalars_on_either_side_keep_the_dtype(a, s):
    t = Tensor(a, dtype=a.dtype)
    for fn in [
        lambda x: x + s,
        lambda x: s + x,
        lambda x: x - s,
        lambda x: s - x,
        lambda x: x * s,
        lambda x: s * x,
        lambda x: x / s,
    ]:
        same(fn(t), fn(a))
        assert fn(t).dtype == a.dtype


@given(a=arrays(dtype=np.float32))
def test_float64_array_operand_follows_the_tensor_dtype(a):
    t = Tensor(a)
    out = t + a.astype(np.float64)
    assert out.dtype == np.float32
    assert_close(out, a + a)


@given(a=arrays(dtype=float_dtypes()))
def test_clip_bounds_from_numpy_keep_the_dtype(a):
    """numpy scalar and array bounds do not widen a float32 (or float16) tensor, as Python
    numbers do not (PyTorch's clamp keeps float32 with scalar bounds too)."""
    t = Tensor(a, dtype=a.dtype)
    expected = np.clip(a, -0.5, 0.5)
    same(t.clip(np.float64(-0.5), np.float64(0.5)), expected)
    same(np.clip(t, np.float64(-0.5), 0.5), expected)
    same(t.clip(min=np.int64(0)), np.clip(a, 0, None))
    same(t.clip(max=np.float32(0.5)), np.clip(a, None, 0.5))
    same(t.clip(np.full(a.shape, -0.5), np.array(0.5)), expected)


def test_integer_tensors():
    a = np.array([[1, 2], [3, 4]])
    t = Tensor(a)
    assert t.dtype == a.dtype
    same(t + t, a + a)
    same(t * 3, a * 3)
    same(t @ t, a @ a)
    same(t.sum(axis=0), a.sum(axis=0))
    same(t / 2, a / 2)


@given(a=arrays(dtype=float_dtypes()))
def test_unary_minus(a):
    same(-Tensor(a, dtype=a.dtype), -a)
    same(+Tensor(a, dtype=a.dtype), a)


# ---------------------------------------------------------------------------- matmul


@pytest.mark.parametrize(
    "shape_a, shape_b",
    [
        ((3,), (3,)),
        ((2, 3), (3,)),
        ((3,), (3, 2)),
        ((2, 3), (3, 4)),
        ((5, 2, 3), (3, 4)),
        ((3,), (5, 3, 4)),
        ((5, 2, 3), (3,)),
        ((2, 1, 2, 3), (5, 3, 4)),
        ((6, 1, 3), (1, 6, 3, 2)),
    ],
)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_matmul(shape_a, shape_b, dtype):
    rng = np.random.default_rng(1)
    a = rng.standard_normal(shape_a).astype(dtype)
    b = rng.standard_normal(shape_b).astype(dtype)
    same(Tensor(a, dtype=dtype) @ Tensor(b, dtype=dtype), a @ b)
    same(np.matmul(Tensor(a, dtype=dtype), b), a @ b)
    same(a @ Tensor(b, dtype=dtype), a @ b)


# ---------------------------------------------------------------------------- unary

UNARY = {
    "exp": (lambda t: t.exp(), np.exp, "real"),
    "log": (lambda t: t.log(), np.log, "positive"),
    "sqrt": (lambda t: t.sqrt(), np.sqrt, "positive"),
    "tanh": (lambda t: t.tanh(), np.tanh, "real"),
    "sigmoid": (lambda t: t.sigmoid(), lambda a: 1 / (1 + np.exp(-a)), "real"),
    "relu": (lambda t: t.relu(), lambda a: np.maximum(a, 0), "real"),
    "abs": (lambda t: t.abs(), np.abs, "real"),
    "clip": (lambda t: t.clip(-1, 0.5), lambda a: np.clip(a, -1, 0.5), "real"),
    "clip_min": (lambda t: t.clip(min=0.5), lambda a: np.clip(a, 0.5, None), "real"),
    "clip_max": (lambda t: t.clip(max=0.5), lambda a: np.clip(a, None, 0.5), "real"),
    "step": (lambda t: t.step(), lambda a: (a > 0).astype(a.dtype), "real"),
}


@pytest.mark.parametrize("name", sorted(UNARY))
@given(data=st.data(), dtype=float_dtypes())
def test_unary(data, dtype, name):
    ours, theirs, domain = UNARY[name]
    a = data.draw(arrays(dtype=dtype, domain=domain))
    same(ours(Tensor(a, dtype=dtype)), theirs(a))


def test_step_values():
    same(Tensor([-2.0, 0.0, 1e-30, 3.0]).step(), np.array([0, 0, 1, 1], dtype=np.float32))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_sigmoid_does_not_overflow(dtype):
    x = np.array([-1e4, -1000.0, -50.0, 0.0, 50.0, 1000.0, 1e4], dtype=dtype)
    with warnings.catch_warnings(), np.errstate(all="raise"):
        warnings.simplefilter("error")
        out = Tensor(x, dtype=dtype, requires_grad=True).sigmoid()
        out.backward(np.ones_like(x))
        scalar = Tensor(dtype(-1e4), dtype=dtype).sigmoid()
    assert np.all(np.isfinite(out.data))
    assert_close(out, np.array([0, 0, 1.9287e-22, 0.5, 1, 1, 1], dtype=dtype), atol=1e-6)
    assert scalar.item() == 0.0


# ---------------------------------------------------------------------------- reductions


@st.composite
def reduce_case(draw, **kw):
    a = draw(arrays(shape=shapes(), dtype=draw(float_dtypes()), **kw))
    if a.ndim == 0:
        axis = draw(st.sampled_from([None, ()]))
    else:
        axis = draw(
            st.none()
            | st.integers(-a.ndim, a.ndim - 1)
            | st.lists(st.integers(0, a.ndim - 1), min_size=1, unique=True).map(tuple)
        )
    return a, axis, draw(st.booleans())


@pytest.mark.parametrize("name", ["sum", "mean", "max", "min"])
@given(case=reduce_case())
def test_reductions(case, name):
    a, axis, keepdims = case
    expected = getattr(np, name)(a, axis=axis, keepdims=keepdims)
    same(getattr(Tensor(a, dtype=a.dtype), name)(axis=axis, keepdims=keepdims), expected)
    same(getattr(np, name)(Tensor(a, dtype=a.dtype), axis=axis, keepdims=keepdims), expected)


@given(case=reduce_case(), ddof=st.integers(0, 1))
def test_var_std(case, ddof):
    a, axis, keepdims = case
    n = a.size // max(np.sum(a, axis=axis, keepdims=True).size, 1)
    if n <= ddof:
        return
    t = Tensor(a, dtype=a.dtype)
    same(
        t.var(axis=axis, ddof=ddof, keepdims=keepdims),
        np.var(a, axis, ddof=ddof, keepdims=keepdims),
    )
    same(
        t.std(axis=axis, ddof=ddof, keepdims=keepdims),
        np.std(a, axis, ddof=ddof, keepdims=keepdims),
    )
    assert_close(t.var(), np.var(a))


# ---------------------------------------------------------------------------- shape ops


@given(a=arrays(dtype=float_dtypes()), data=st.data())
def test_shape_ops(a, data):
    t = Tensor(a, dtype=a.dtype)
    same(t.reshape(-1), a.reshape(-1))
    same(t.reshape(a.shape[::-1]), a.reshape(a.shape[::-1]))
    same(t.reshape(*a.shape, 1), a.reshape(*a.shape, 1))
    same(t.transpose(), a.transpose())
    same(t.T, a.T)
    perm = data.draw(st.permutations(range(a.ndim)))
    same(t.transpose(perm), a.transpose(perm))
    same(t.transpose(*perm), a.transpose(*perm))
    same(np.transpose(t, perm), np.transpose(a, perm))
    same(t.flatten(), a.flatten())
    same(t.squeeze(), a.squeeze())
    axis = data.draw(st.integers(-a.ndim - 1, a.ndim))
    same(t.unsqueeze(axis), np.expand_dims(a, axis))
    target = (2,) + tuple(a.shape)
    same(t.broadcast_to(target), np.broadcast_to(a, target))


def test_flatten_with_dims_and_squeeze_with_axis():
    a = np.arange(24.0, dtype=np.float32).reshape(2, 1, 3, 4)
    t = Tensor(a)
    same(t.flatten(1), a.reshape(2, -1))
    same(t.flatten(1, 2), a.reshape(2, 3, 4))
    same(t.flatten(0, -2), a.reshape(6, 4))
    same(t.squeeze(1), a.squeeze(1))
    same(t.squeeze((1,)), a.squeeze((1,)))
    same(Tensor(np.float32(3.0)).flatten(), np.array([3.0], dtype=np.float32))


INDEXES = [
    3,
    -1,
    slice(1, 4),
    slice(None, None, -2),
    slice(-3, None),
    (1, 2),
    (slice(None), 0),
    (1, slice(0, 2), -1),
    None,
    (None, 2, None),
    Ellipsis,
    (Ellipsis, 1),
    (0, Ellipsis, None),
    np.array([0, 0, 4, 1]),
    [4, 0, 0],
    (np.array([0, 2]), np.array([1, 1])),
    (slice(None), np.array([2, 2, 0])),
    (np.array([[0, 1], [1, 0]]), slice(1, 3)),
    np.array([True, False, True, True, False]),
    (slice(None), np.array([True, False, True])),
    np.arange(60).reshape(5, 3, 4) % 3 == 0,
    (np.array([1, 3]), np.array([True, False, True]), 0),
]


@pytest.mark.parametrize("index", INDEXES, ids=[repr(i) for i in range(len(INDEXES))])
def test_getitem(index):
    a = np.arange(60.0, dtype=np.float32).reshape(5, 3, 4)
    same(Tensor(a)[index], a[index])


def test_getitem_with_tensor_index():
    a = np.arange(12.0, dtype=np.float32).reshape(4, 3)
    same(Tensor(a)[Tensor(np.array([3, 0, 3]))], a[[3, 0, 3]])
    same(Tensor(a)[Tensor(a) > 5], a[a > 5])


@given(data=st.data())
def test_concatenate_stack(data):
    base = data.draw(shapes(min_dims=1))
    axis = data.draw(st.integers(-len(base), len(base) - 1))
    ax = axis % len(base)
    sizes = data.draw(st.lists(st.integers(1, 3), min_size=1, max_size=3))
    parts = [data.draw(arrays(shape=base[:ax] + (k,) + base[ax + 1 :])) for k in sizes]
    same(tg.concatenate([Tensor(p, dtype=p.dtype) for p in parts], axis=axis),
         np.concatenate(parts, axis=axis))  # fmt: skip
    same(np.concatenate([Tensor(p, dtype=p.dtype) for p in parts], axis=axis),
         np.concatenate(parts, axis=axis))  # fmt: skip
    same_shape = [data.draw(arrays(shape=base)) for _ in sizes]
    axis = data.draw(st.integers(-len(base) - 1, len(base)))
    same(tg.stack([Tensor(p, dtype=p.dtype) for p in same_shape], axis=axis),
         np.stack(same_shape, axis=axis))  # fmt: skip


@given(data=st.data())
def test_where(data):
    sc, sa, sb = data.draw(broadcastable_shapes(3))
    cond = data.draw(arrays(shape=sc)) > 0
    a, b = data.draw(arrays(shape=sa)), data.draw(arrays(shape=sb))
    expected = np.where(cond, a, b)
    same(tg.where(cond, Tensor(a, dtype=a.dtype), Tensor(b, dtype=b.dtype)), expected)
    same(tg.where(Tensor(cond), Tensor(a, dtype=a.dtype), b), expected)
    same(np.where(Tensor(cond), Tensor(a, dtype=a.dtype), Tensor(b, dtype=b.dtype)), expected)
    same(tg.where(cond, Tensor(a, dtype=a.dtype), 0.0), np.where(cond, a, 0.0))


# ---------------------------------------------------------------------------- softmax family


def _softmax(a, axis):
    e = np.exp(a - a.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def _logsumexp(a, axis, keepdims=False):
    m = a.max(axis=axis, keepdims=True)
    out = m + np.log(np.exp(a - m).sum(axis=axis, keepdims=True))
    return out if keepdims else np.squeeze(out, axis=axis)


@given(data=st.data())
def test_softmax_family(data):
    a = data.draw(arrays(shape=shapes(min_dims=1), dtype=float_dtypes(), low=-30, high=30))
    axis = data.draw(st.integers(-a.ndim, a.ndim - 1))
    a64 = a.astype(np.float64)
    t = Tensor(a, dtype=a.dtype)
    assert_close(t.softmax(axis=axis), _softmax(a64, axis).astype(a.dtype))
    assert_close(t.log_softmax(axis=axis), np.log(_softmax(a64, axis)).astype(a.dtype), atol=1e-5)
    assert_close(t.logsumexp(axis=axis), _logsumexp(a64, axis).astype(a.dtype))
    assert_close(t.logsumexp(axis, keepdims=True), _logsumexp(a64, axis, True).astype(a.dtype))
    assert t.softmax(axis=axis).dtype == a.dtype


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_softmax_family_is_finite_at_1000(dtype):
    x = np.array([[1000.0, -1000.0, 0.0], [1000.0, 1000.0, 1000.0], [-1000.0, -1000.0, -999.0]])
    x = x.astype(dtype)
    with np.errstate(over="raise", divide="raise", invalid="raise"):  # underflow to 0 is fine
        t = Tensor(x, dtype=dtype, requires_grad=True)
        p, lp, lse = t.softmax(), t.log_softmax(), t.logsumexp()
        (p.sum() + lp.sum() + lse.sum()).backward()
    for out in (p, lp, lse):
        assert np.all(np.isfinite(out.data))
    assert np.all(np.isfinite(t.grad))
    assert_close(p[0], np.array([1.0, 0.0, 0.0], dtype=dtype))
    assert_close(p[1], np.full(3, 1 / 3, dtype=dtype))
    assert_close(lp[0], np.array([0.0, -2000.0, -1000.0], dtype=dtype))
    assert_close(lse, np.array([1000.0, 1000.0 + np.log(3), -999.0 + np.log1p(2 * np.exp(-1))],
                               dtype=dtype))  # fmt: skip


# ---------------------------------------------------------------------------- comparisons

COMPARISONS = {
    "lt": lambda a, b: a < b,
    "le": lambda a, b: a <= b,
    "gt": lambda a, b: a > b,
    "ge": lambda a, b: a >= b,
    "eq": lambda a, b: a == b,
    "ne": lambda a, b: a != b,
}


@pytest.mark.parametrize("name", sorted(COMPARISONS))
@given(ab=array_pair(low=-2, high=2))
def test_comparisons(ab, name):
    a, b = np.round(ab[0]), np.round(ab[1])  # rounding makes equal values common
    fn = COMPARISONS[name]
    ta = Tensor(a, dtype=a.dtype, requires_grad=True)
    tb = Tensor(b, dtype=b.dtype)
    for out in [fn(ta, tb), fn(ta, b), fn(a, tb), fn(ta, 1.0), fn(1.0, ta)]:
        assert out.dtype == np.bool_
        assert not out.requires_grad and out.grad_fn is None
    same(fn(ta, tb), fn(a, b))
    same(fn(ta, b), fn(a, b))
    same(fn(a, tb), fn(a, b))
    same(fn(ta, 1.0), fn(a, 1.0))
    same(fn(1.0, ta), fn(1.0, a))
