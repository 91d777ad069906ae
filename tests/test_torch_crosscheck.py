"""Differential tests against PyTorch: the same expression, forward values and gradients.

Skipped when torch is not installed; it is never a dependency of tinygrad_nn.
"""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import tinygrad_nn as tg
from tinygrad_nn import Tensor
from tinygrad_nn.testing import (
    arrays,
    assert_close,
    broadcastable_shapes,
    shapes,
    tensor_tuples,
)

torch = pytest.importorskip("torch")

RTOL, ATOL = 1e-9, 1e-12


def crosscheck(ours, theirs, *arrays_in, seed=0):
    """Run ``ours`` on tensors and ``theirs`` on torch tensors of the same float64 data; compare
    the outputs and, after backpropagating the same random gradient, every input's gradient."""
    xs = [Tensor(a, dtype=np.float64, requires_grad=True) for a in arrays_in]
    ts = [torch.tensor(a, dtype=torch.float64, requires_grad=True) for a in arrays_in]
    out, ref = ours(*xs), theirs(*ts)
    assert out.shape == tuple(ref.shape)
    assert_close(out, ref.detach().numpy(), rtol=RTOL, atol=ATOL)
    g = np.random.default_rng(seed).standard_normal(out.shape)
    out.backward(g)
    ref.backward(torch.tensor(g))
    for x, t in zip(xs, ts):
        expected = np.zeros(x.shape) if t.grad is None else t.grad.numpy()
        actual = np.zeros(x.shape) if x.grad is None else x.grad
        assert_close(actual, expected, rtol=RTOL, atol=ATOL)


def pairs(**kw):
    return broadcastable_shapes(2).flatmap(lambda s: tensor_tuples(s, requires_grad=False, **kw))


def data(ts):
    return [t.data for t in ts]


BINARY = {
    "add": (lambda a, b: a + b, {}),
    "sub": (lambda a, b: a - b, {}),
    "mul": (lambda a, b: a * b, {}),
    "div": (lambda a, b: a / b, {"domain": "nonzero"}),
    "pow": (lambda a, b: a**b, {"domain": "positive"}),
    "maximum": (None, {"distinct": True}),
    "minimum": (None, {"distinct": True}),
}


@pytest.mark.parametrize("name", sorted(BINARY))
@settings(max_examples=25)
@given(st.data())
def test_binary(name, data_):
    fn, kw = BINARY[name]
    ab = data(data_.draw(pairs(**kw)))
    if fn is None:
        crosscheck(getattr(tg, name), getattr(torch, name), *ab)
    else:
        crosscheck(fn, fn, *ab)


def test_pow_at_a_zero_base():
    """a = 0 with b = 0 (and b > 0): PyTorch's gradients are 0 for both inputs, not nan."""
    a = np.array([0.0, 0.0, 0.0, 1.0, 2.0])
    b = np.array([0.0, 1.0, 2.5, 0.0, 0.0])
    crosscheck(lambda x, y: x**y, lambda x, y: x**y, a, b)
    crosscheck(lambda x: x**0, lambda x: x**0, a)
    crosscheck(lambda y: 0.0**y, lambda y: 0.0**y, b)


UNARY = {
    "neg": (lambda t: -t, lambda t: -t, {}),
    "exp": (Tensor.exp, torch.exp, {}),
    "log": (Tensor.log, torch.log, {"domain": "positive"}),
    "sqrt": (Tensor.sqrt, torch.sqrt, {"domain": "positive"}),
    "tanh": (Tensor.tanh, torch.tanh, {}),
    "sigmoid": (Tensor.sigmoid, torch.sigmoid, {"low": -40, "high": 40}),
    "relu": (Tensor.relu, torch.relu, {"avoid": (0.0,)}),
    "abs": (Tensor.abs, torch.abs, {"avoid": (0.0,)}),
    "clip": (lambda t: t.clip(-1, 2), lambda t: t.clamp(-1, 2), {"avoid": (-1.0, 2.0)}),
    "pow3": (lambda t: t**3, lambda t: t**3, {}),
    "rpow": (lambda t: 2.0**t, lambda t: 2.0**t, {}),
    "rdiv": (lambda t: 1.5 / t, lambda t: 1.5 / t, {"domain": "nonzero"}),
}


@pytest.mark.parametrize("name", sorted(UNARY))
@settings(max_examples=25)
@given(st.data())
def test_unary(name, data_):
    ours, theirs, kw = UNARY[name]
    crosscheck(ours, theirs, data_.draw(arrays(**kw)))


@st.composite
def reduce_case(draw):
    a = draw(arrays(shape=shapes(min_dims=1), distinct=True))
    axis = draw(
        st.none()
        | st.integers(-a.ndim, a.ndim - 1)
        | st.lists(st.integers(0, a.ndim - 1), min_size=1, unique=True).map(tuple)
    )
    return a, axis, draw(st.booleans())


def _torch_reduce(name, t, axis, keepdims):
    dim = tuple(range(t.ndim)) if axis is None else axis
    if name == "max":
        return torch.amax(t, dim=dim, keepdim=keepdims)
    if name == "min":
        return torch.amin(t, dim=dim, keepdim=keepdims)
    return getattr(torch, name)(t, dim=dim, keepdim=keepdims)


@pytest.mark.parametrize("name", ["sum", "mean", "max", "min"])
@settings(max_examples=25)
@given(reduce_case())
def test_reductions(name, case):
    a, axis, keepdims = case
    crosscheck(
        lambda t: getattr(t, name)(axis=axis, keepdims=keepdims),
        lambda t: _torch_reduce(name, t, axis, keepdims),
        a,
    )


@settings(max_examples=25)
@given(reduce_case())
def test_logsumexp_over_any_axes(case):
    a, axis, keepdims = case  # axis None: torch's logsumexp over every dim
    crosscheck(
        lambda t: t.logsumexp(axis, keepdims=keepdims),
        lambda t: _torch_reduce("logsumexp", t, axis, keepdims),
        a,
    )


@settings(max_examples=25)
@given(reduce_case(), st.integers(0, 1))
def test_var(case, ddof):
    a, axis, keepdims = case
    n = a.size // np.sum(a, axis=axis, keepdims=True).size
    if n <= ddof:
        return
    dim = tuple(range(a.ndim)) if axis is None else axis
    crosscheck(
        lambda t: t.var(axis=axis, ddof=ddof, keepdims=keepdims),
        lambda t: torch.var(t, dim=dim, correction=ddof, keepdim=keepdims),
        a,
    )


@pytest.mark.parametrize(
    "shape_a, shape_b",
    [((3,), (3,)), ((2, 3), (3,)), ((3,), (3, 2)), ((2, 3), (3, 4)), ((2, 1, 2, 3), (5, 3, 4))],
)
def test_matmul(shape_a, shape_b):
    rng = np.random.default_rng(0)
    crosscheck(
        lambda a, b: a @ b,
        torch.matmul,
        rng.standard_normal(shape_a),
        rng.standard_normal(shape_b),
    )


@pytest.mark.parametrize("name", ["softmax", "log_softmax", "logsumexp"])
@settings(max_examples=25)
@given(st.data())
def test_softmax_family(name, data_):
    a = data_.draw(arrays(shape=shapes(min_dims=1), low=-20, high=20))
    axis = data_.draw(st.integers(-a.ndim, a.ndim - 1))
    crosscheck(
        lambda t: getattr(t, name)(axis=axis),
        lambda t: getattr(torch, name)(t, axis),
        a,
    )


INDEXES = [
    1,
    -1,
    slice(1, 3),
    slice(None, None, 2),
    (1, slice(0, 2)),
    (None, 0),
    (Ellipsis, 1),
    np.array([0, 0, 3, 1]),
    (np.array([0, 2]), np.array([1, 1])),
    (slice(None), np.array([2, 2, 0])),
    np.array([True, False, True, True]),
    np.arange(24).reshape(4, 3, 2) % 3 == 0,
]


@pytest.mark.parametrize("index", INDEXES, ids=[str(i) for i in range(len(INDEXES))])
def test_getitem(index):
    a = np.random.default_rng(1).standard_normal((4, 3, 2))

    def torch_index(i):
        if isinstance(i, tuple):
            return tuple(torch_index(p) for p in i)
        return torch.from_numpy(i) if isinstance(i, np.ndarray) else i

    crosscheck(lambda t: t[index], lambda t: t[torch_index(index)], a)


@settings(max_examples=25)
@given(st.data())
def test_shape_ops(data_):
    a = data_.draw(arrays(shape=shapes(min_dims=1)))
    perm = data_.draw(st.permutations(range(a.ndim)))
    crosscheck(lambda t: t.transpose(perm) * 2, lambda t: t.permute(*perm) * 2, a)
    crosscheck(lambda t: t.reshape(-1)[::2], lambda t: t.reshape(-1)[::2], a)
    crosscheck(lambda t: t.unsqueeze(0).squeeze(), lambda t: t.unsqueeze(0).squeeze(), a)
    target = (3,) + a.shape
    crosscheck(lambda t: t.broadcast_to(target), lambda t: t.broadcast_to(target), a)


@settings(max_examples=25)
@given(st.data())
def test_concatenate_stack_where(data_):
    shape = data_.draw(shapes(min_dims=1))
    a, b = data_.draw(arrays(shape=shape)), data_.draw(arrays(shape=shape))
    axis = data_.draw(st.integers(-len(shape), len(shape) - 1))
    crosscheck(
        lambda x, y: tg.concatenate([x, y], axis), lambda x, y: torch.cat([x, y], axis), a, b
    )
    crosscheck(lambda x, y: tg.stack([x, y], axis), lambda x, y: torch.stack([x, y], axis), a, b)
    cond = a > b
    crosscheck(
        lambda x, y: tg.where(cond, x, y), lambda x, y: torch.where(torch.tensor(cond), x, y), a, b
    )


def test_composite_expression():
    rng = np.random.default_rng(3)
    x, w, b = rng.standard_normal((5, 4)), rng.standard_normal((4, 3)), rng.standard_normal(3)

    def ours(x, w, b):
        h = (x @ w + b).tanh()
        return (h.log_softmax(axis=1) * h.sigmoid()).mean() + (h * h).var(axis=0).sum()

    def theirs(x, w, b):
        h = torch.tanh(x @ w + b)
        return (torch.log_softmax(h, 1) * torch.sigmoid(h)).mean() + (h * h).var(
            0, correction=0
        ).sum()

    crosscheck(ours, theirs, x, w, b)


def test_replacing_module_attributes_orders_names_as_pytorch():
    from tinygrad_nn import nn

    def steps(ns, param, module):
        m = ns.Module()
        m.a, m.p, m.b, m.q = module(), param(), module(), param()
        m.a = module()  # module over module: in place
        m.p = param()  # parameter over parameter: in place
        m.q = None  # None over a parameter keeps the name
        m.q = param()
        m.a = param()  # a module's name becomes a parameter's: at the end of the parameters
        del m.p
        m.p = module()  # a free name: at the end of the modules
        seq = ns.Sequential(module(), module(), module())
        seq[0] = module()
        seq[-1] = module()
        return list(m._modules), list(m._parameters), list(seq._modules)

    ours = steps(nn, lambda: nn.Parameter(np.zeros(1)), lambda: nn.Dense(1, 1))
    theirs = steps(
        torch.nn, lambda: torch.nn.Parameter(torch.zeros(1)), lambda: torch.nn.Linear(1, 1)
    )
    assert ours == theirs


def test_load_state_dict_returns_the_keys_pytorch_does():
    from tinygrad_nn import nn

    ours, theirs = (
        nn.Sequential(nn.Dense(2, 2), nn.Dense(2, 1)),
        torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.Linear(2, 1)),
    )
    for sd in ({"1.bias": np.zeros(1, np.float32), "x": np.zeros(1)}, {}):
        got = ours.load_state_dict(sd, strict=False)
        want = theirs.load_state_dict({k: torch.tensor(v) for k, v in sd.items()}, strict=False)
        assert (got.missing_keys, got.unexpected_keys) == (want.missing_keys, want.unexpected_keys)
        assert tuple(got) == tuple(want)
    got = ours.load_state_dict(ours.state_dict())
    want = theirs.load_state_dict(theirs.state_dict())
    assert tuple(got) == tuple(want) == ([], []) and repr(got) == repr(want)
