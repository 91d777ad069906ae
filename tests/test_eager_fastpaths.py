"""The engine's fast paths give exactly what the general paths give.

``Function.apply`` unpacks one, two and three inputs without building lists; ``run_backward``
visits a chain without its heap; the root's gradient, module scopes and the losses' checks take
shorter routes; reductions call the ufuncs' ``reduce`` directly. Each test compares, bit for bit,
with a general path or with numpy.
"""

from __future__ import annotations

import numpy as np
import pytest

import tinygrad_nn as tg
from tinygrad_nn import Tensor, nn, no_grad
from tinygrad_nn.autograd import Function
from tinygrad_nn.nn import functional as F
from tinygrad_nn.ops import loss as L
from tinygrad_nn.ops import softmax as SM


def _reference_grads(root: Tensor, leaves: list[Tensor]) -> list[np.ndarray | None]:
    """Backward the slow, obvious way: every node of the graph, highest recording number first,
    adding each input's gradient in the order its consumers are visited (the heap's order)."""
    nodes, stack, seen = [], [root], set()
    while stack:
        t = stack.pop()
        if t._ctx is None or id(t) in seen:
            continue
        seen.add(id(t))
        nodes.append(t)
        stack.extend(i for i in t._ctx.inputs if isinstance(i, Tensor))
    nodes.sort(key=lambda t: -t._ctx.seq)
    grads = {id(root): np.ones_like(root.data)}
    for t in nodes:
        if id(t) not in grads:
            continue
        g = grads.pop(id(t))
        out = t._ctx.backward(g)
        out = out if isinstance(out, tuple) else (out,)
        for inp, need, ig in zip(t._ctx.inputs, t._ctx.needs_input_grad, out):
            if not need or ig is None:
                continue
            ig = np.asarray(ig)
            if ig.shape != inp.shape:
                ig = tg.autograd.unbroadcast(ig, inp.shape)
            k = id(inp)
            grads[k] = ig if k not in grads else grads[k] + ig
    return [grads.get(id(x)) for x in leaves]


def _random_graph(seed: int, x: Tensor, w: Tensor) -> Tensor:
    """A random DAG over x and w: chains, diamonds, a tensor used twice by one op, fan-out."""
    rng = np.random.default_rng(seed)
    pool = [x, w]
    for _ in range(int(rng.integers(3, 25))):
        kind = int(rng.integers(0, 7))
        a = pool[int(rng.integers(0, len(pool)))]
        b = pool[int(rng.integers(0, len(pool)))]
        if kind == 0:
            y = a * b
        elif kind == 1:
            y = a + b
        elif kind == 2:
            y = a.tanh()
        elif kind == 3:
            y = a * a
        elif kind == 4:
            y = a - 0.5 * b
        elif kind == 5:
            y = a.sigmoid()
        else:
            y = pool[-1] * 1.01  # extend the newest tensor: a chain
        pool.append(y)
    total = pool[-1]
    for t in pool[2 + int(rng.integers(0, 3)) :: 3]:  # several sinks joined: more fan-in
        total = total + t
    return total.sum()


@pytest.mark.parametrize("seed", range(40))
def test_backward_matches_reference_on_random_graphs(seed: int) -> None:
    a = np.random.default_rng(1000 + seed).standard_normal((3, 4)).astype(np.float32)
    b = np.random.default_rng(2000 + seed).standard_normal((3, 4)).astype(np.float32)
    x, w = Tensor(a.copy(), requires_grad=True), Tensor(b.copy(), requires_grad=True)
    ref = _reference_grads(_random_graph(seed, x, w), [x, w])
    x2, w2 = Tensor(a.copy(), requires_grad=True), Tensor(b.copy(), requires_grad=True)
    _random_graph(seed, x2, w2).backward()
    for got, want in zip((x2.grad, w2.grad), ref):
        if want is None:
            assert got is None
        else:
            assert got.dtype == want.dtype and np.array_equal(got, want)


def test_chain_matches_diamond() -> None:
    """A chain (no heap) and a diamond (the heap) computing the same function agree exactly."""
    a = np.linspace(0.1, 0.9, 6, dtype=np.float32)
    x = Tensor(a, requires_grad=True)
    y = x
    for _ in range(50):
        y = (y * 1.01).tanh()
    (y * 2.0).sum().backward()
    chain = x.grad
    x2 = Tensor(a, requires_grad=True)
    y2 = x2
    for _ in range(50):
        y2 = (y2 * 1.01).tanh()
    (y2 + y2).sum().backward()  # one tensor twice: the diamond y2 -> add <- y2
    assert np.array_equal(chain, x2.grad)
    x3 = Tensor(a, requires_grad=True)
    y3 = x3
    for _ in range(50):
        y3 = (y3 * 1.01).tanh()
    u, v = y3 * 1.0, y3 * 1.0  # two branches that meet again
    (u + v).sum().backward()
    assert np.array_equal(chain, x3.grad)


def test_long_chain_then_branch_and_join() -> None:
    x = Tensor(np.array([0.3, -0.2], np.float32), requires_grad=True)
    h = x
    for _ in range(2000):
        h = h * 1.0001 + 0.0001
    a, b = h.exp(), h.tanh()
    loss = (a * b + h).sum()
    ref = _reference_grads(loss, [x])[0]
    loss.backward()
    assert np.array_equal(x.grad, ref)


def test_retain_graph_and_retain_grad_on_a_chain() -> None:
    x = Tensor(np.array([1.0, 2.0], np.float32), requires_grad=True)
    h = (x * 3.0).retain_grad()
    y = (h * h).sum()
    y.backward(retain_graph=True)
    first = x.grad.copy()
    np.testing.assert_array_equal(h.grad, 2 * h.data)
    y.backward()
    np.testing.assert_array_equal(x.grad, 2 * first)
    with pytest.raises(RuntimeError, match="second time"):
        y.backward()


def test_chain_releases_saved_arrays_and_unlinks() -> None:
    x = Tensor(np.ones(3, np.float32), requires_grad=True)
    a = x * 2.0
    b = a.exp()
    c = b.sum()
    nodes = [a._ctx, b._ctx, c._ctx]
    c.backward()
    assert all(n.released for n in nodes)
    assert all(n.inputs == () for n in nodes)


class _Count(Function):
    """Records the arrays and needs it was called with."""

    def forward(self, *arrays):
        self.seen = arrays
        return np.asarray(arrays[0], dtype=np.float32) * 1.0

    def backward(self, g):
        return tuple(g if need else None for need in self.needs_input_grad)


@pytest.mark.parametrize("n", [1, 2, 3, 4, 5])
def test_apply_unpacks_any_number_of_inputs(n: int) -> None:
    for pattern in range(2**n):
        args = []
        for i in range(n):
            kind = (pattern >> i) & 1
            data = np.full(2, float(i + 1), np.float32)
            args.append(Tensor(data, requires_grad=True) if kind else data)
        out = _Count.apply(*args)
        node = out._ctx
        want = tuple(isinstance(a, Tensor) for a in args)
        if any(want):
            assert node.needs_input_grad == want
            assert node.inputs == tuple(args)
            assert out.requires_grad
        else:
            assert node is None and not out.requires_grad
        with no_grad():
            out2 = _Count.apply(*args)
        assert out2._ctx is None and not out2.requires_grad
        np.testing.assert_array_equal(out.data, out2.data)


def test_apply_records_needs_and_kwargs() -> None:
    x = Tensor(np.array([1.0, -2.0], np.float32), requires_grad=True)
    c = Tensor(np.array([3.0, 4.0], np.float32))
    out = tg.ops.elementwise.Clip.apply(x, lo=-1.0, hi=0.5)
    assert out._ctx.needs_input_grad == (True,)
    assert out._ctx.lo == -1.0 and out._ctx.hi == 0.5
    assert (x * c)._ctx.needs_input_grad == (True, False)
    assert (c * x)._ctx.needs_input_grad == (False, True)
    assert (c * c)._ctx is None
    with no_grad():
        assert (x * c)._ctx is None
    ints = Tensor(np.array([1, 2]))
    half = ints * 0.5  # an int tensor times a float: the default float dtype
    assert half.dtype == np.float32


def test_apply_error_names_the_op() -> None:
    x = Tensor(np.ones((2, 3), np.float32), requires_grad=True)
    with pytest.raises(ValueError, match=r"Linear: .*\(2, 3\)"):
        tg.ops.matmul.Linear.apply(x, Tensor(np.ones((4, 5), np.float32)))


@pytest.mark.parametrize("shape", [(), (1,), (1, 1)])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_root_gradient_is_one(shape: tuple[int, ...], dtype: type) -> None:
    x = Tensor(np.full(shape, 2.0, dtype), dtype=dtype, requires_grad=True)
    (x * 3.0).backward()
    assert x.grad.dtype == dtype and x.grad.shape == shape
    np.testing.assert_array_equal(x.grad, np.full(shape, 3.0, dtype))
    leaf = Tensor(np.full(shape, 2.0, dtype), dtype=dtype, requires_grad=True)
    leaf.backward()
    assert leaf.grad.dtype == dtype and leaf.grad.shape == shape
    np.testing.assert_array_equal(leaf.grad, np.ones(shape, dtype))


def test_module_scopes_nest() -> None:
    inner = nn.Dense(3, 2)
    model = nn.Sequential(inner, nn.Sigmoid())
    out = model(Tensor(np.ones((1, 3), np.float32)))
    sig = out._ctx
    lin = sig.inputs[0]._ctx
    assert sig.scope.module is model[1] and sig.scope.parent.module is model
    assert lin.scope.module is inner and lin.scope.parent.module is model
    assert sig.scope.parent is lin.scope.parent  # one call of the Sequential
    assert sig.scope.parent.parent is None
    assert tg.autograd.STATE.scope is None


def test_module_scope_restored_after_error() -> None:
    with pytest.raises(ValueError, match="Dense 3→2"):
        nn.Sequential(nn.Dense(3, 2))(Tensor(np.ones((1, 4), np.float32)))
    assert tg.autograd.STATE.scope is None
    with pytest.raises(ValueError, match="Dense 3→2"):
        nn.Dense(3, 2)(Tensor(np.float32(1.0)))


def test_reductions_equal_numpy_bit_for_bit() -> None:
    a = np.random.default_rng(0).standard_normal((7, 33)).astype(np.float32)
    t = Tensor(a)
    for axis in (None, 0, 1, (0, 1), -1):
        for keepdims in (False, True):
            assert np.array_equal(
                t.sum(axis=axis, keepdims=keepdims).data, np.sum(a, axis=axis, keepdims=keepdims)
            )
            assert np.array_equal(
                t.max(axis=axis, keepdims=keepdims).data, np.max(a, axis=axis, keepdims=keepdims)
            )
            assert np.array_equal(
                t.min(axis=axis, keepdims=keepdims).data, np.min(a, axis=axis, keepdims=keepdims)
            )
    b = Tensor(np.array([True, False, True]))
    assert b.sum().item() == 2
    e = np.exp(a - np.max(a, axis=1, keepdims=True))
    assert np.array_equal(SM.Softmax.apply(t, axis=1).data, e / np.sum(e, axis=1, keepdims=True))


def test_cross_entropy_matches_numpy_and_checks_labels() -> None:
    rng = np.random.default_rng(3)
    z = rng.standard_normal((6, 5)).astype(np.float32)
    labels = rng.integers(0, 5, 6)
    t = Tensor(z, requires_grad=True)
    loss = F.cross_entropy(t, labels)
    shifted = z - np.max(z, axis=-1, keepdims=True)
    s = np.sum(np.exp(shifted), axis=-1, keepdims=True)
    losses = np.log(s)[..., 0] - shifted[np.arange(6), labels]
    assert loss.data == np.sum(losses) / losses.size
    loss.backward()
    p = np.exp(shifted) / s
    p[np.arange(6), labels] -= 1
    assert np.array_equal(t.grad, p * (np.float32(1.0) * (1.0 / 6)))
    for bad in (5, -1):
        wrong = labels.copy()
        wrong[2] = bad
        with pytest.raises(ValueError, match=f"class index {bad} is out of range"):
            F.cross_entropy(t, wrong)
    with pytest.raises(ValueError, match="logits must have shape"):
        F.cross_entropy(Tensor(np.ones((2, 2, 2), np.float32)), labels)
    probs = np.full((6, 5), 0.2, np.float64)
    np.testing.assert_allclose(F.cross_entropy(t, probs).item(), loss.item(), rtol=0.3)
    assert L.SoftmaxCrossEntropy.apply(t, labels, reduction="sum").item() == np.float32(
        np.sum(losses)
    )


def test_quadratic_cost_checks_shapes() -> None:
    a = Tensor(np.ones((4, 3), np.float32), requires_grad=True)
    y = np.zeros((4, 3), np.float32)
    c = F.quadratic_cost(a, y)
    assert c.item() == pytest.approx(3 * 4 / 8)
    with pytest.raises(ValueError, match="shapes differ"):
        F.quadratic_cost(a, np.zeros((4, 2), np.float32))
    with pytest.raises(ValueError, match="is empty"):
        F.mse_loss(Tensor(np.ones((0,), np.float32)), np.ones((0,), np.float32))
