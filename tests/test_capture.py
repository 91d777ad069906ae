"""Capture and replay: replayed steps give the gradients normal execution gives."""

import warnings

import numpy as np
import pytest

import tinygrad_nn as tg
from tinygrad_nn import nn
from tinygrad_nn.capture import capture
from tinygrad_nn.nn import functional as F


def make_model(seed=0):
    tg.manual_seed(seed)
    return nn.Sequential(nn.Dense(6, 5), nn.Sigmoid(), nn.Dense(5, 3), nn.ReLU(), nn.Dense(3, 3))


def grads(model):
    return [p.grad.copy() for p in model.parameters()]


def loss_fn(model):
    return lambda x, y: F.cross_entropy(model(x / 2.0), y) + F.mse_loss(model(x), y * 0.0 + 1)


@pytest.mark.parametrize("batch", [4, 1])
def test_replay_matches_normal_execution(batch):
    rng = np.random.default_rng(0)
    a, b = make_model(), make_model()
    step = capture(lambda x, y: F.cross_entropy(a(x * 0.5), y) + (a(x) ** 2).mean())
    for _ in range(5):
        x = rng.standard_normal((batch, 6)).astype(np.float32)
        y = rng.integers(0, 3, batch)
        a.zero_grad()
        b.zero_grad()
        la = step(x, y)
        lb = F.cross_entropy(b(tg.Tensor(x) * 0.5), y) + (b(x) ** 2).mean()
        lb.backward()
        np.testing.assert_allclose(la.data, lb.data, rtol=1e-6)
        for ga, gb in zip(grads(a), grads(b)):
            np.testing.assert_allclose(ga, gb, rtol=1e-5, atol=1e-7)
        for pa, pb in zip(a.parameters(), b.parameters()):
            pa.data -= 0.1 * pa.grad
            pb.data -= 0.1 * pb.grad
    assert any(k[0][0] == (batch, 6) for k in step._verified)


def test_new_shapes_are_traced_and_grads_accumulate():
    m = make_model()
    step = capture(lambda x: (m(x) ** 2).sum())
    x4 = np.ones((4, 6), np.float32)
    x2 = np.ones((2, 6), np.float32)
    m.zero_grad()
    step(x4)
    first = grads(m)
    step(x4)  # accumulates, like two backward calls
    for g, f in zip(grads(m), first):
        np.testing.assert_allclose(g, 2 * f, rtol=1e-6)
    m.zero_grad()
    step(x2)
    assert len(step._plans) + len(step._traces) == 2  # x2 traced, its plan made next call
    assert all(p.grad is not None for p in m.parameters())


def test_dropout_is_not_captured():
    tg.manual_seed(0)
    m = nn.Sequential(nn.Dense(4, 4), nn.Dropout(0.5))
    step = capture(lambda x: m(x).sum())
    with pytest.warns(UserWarning, match="random numbers"):
        step(np.ones((3, 4), np.float32))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        step(np.ones((3, 4), np.float32))  # runs normally, no new warning
    assert list(step._plans.values()) == [None]


def test_value_dependent_step_falls_back():
    w = tg.Tensor(np.ones(3, np.float32), requires_grad=True)

    def fn(x):
        # a Python branch on the data: replay would freeze the branch taken when traced
        return (w * x).sum() if float(x.data.sum()) > 0 else (w * x * 3).sum()

    step = capture(fn)
    step(np.ones(3, np.float32))
    step(-np.ones(3, np.float32))  # other ops than the first call: traced anew, checked next
    w.grad = None
    with pytest.warns(UserWarning, match="ran other ops or constants"):
        loss = step(np.ones(3, np.float32))  # and again other ops: it runs without capture
    assert loss.item() == pytest.approx(3.0)
    np.testing.assert_allclose(w.grad, np.ones(3))
    w.grad = None
    loss = step(-np.ones(3, np.float32))
    assert loss.item() == pytest.approx(-9.0)
    np.testing.assert_allclose(w.grad, -3 * np.ones(3))


def test_inputs_must_not_require_grad():
    m = make_model()
    step = capture(lambda x: m(x).sum())
    with pytest.raises(ValueError, match="inputs must not require grad"):
        step(tg.Tensor(np.ones((1, 6), np.float32), requires_grad=True))


def test_captured_training_matches_uncaptured_training():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((64, 6)).astype(np.float32)
    y = rng.integers(0, 3, 64)
    a, b = make_model(3), make_model(3)
    opt_a = tg.optim.SGD(a.parameters(), lr=0.5, momentum=0.9)
    opt_b = tg.optim.SGD(b.parameters(), lr=0.5, momentum=0.9)
    step = capture(lambda x, y: F.cross_entropy(a(x), y))
    for i in range(0, 64, 8):
        opt_a.zero_grad()
        step(x[i : i + 8], y[i : i + 8])
        opt_a.step()
        opt_b.zero_grad()
        F.cross_entropy(b(x[i : i + 8]), y[i : i + 8]).backward()
        opt_b.step()
    for pa, pb in zip(a.parameters(), b.parameters()):
        np.testing.assert_allclose(pa.data, pb.data, rtol=1e-5, atol=1e-6)


def test_replayed_root_gradient_is_never_shared_with_a_leaf():
    w = tg.Tensor(np.ones(3, np.float32), requires_grad=True)
    b = tg.Tensor(np.zeros((), np.float32), requires_grad=True)
    step = capture(lambda x: (x * w).sum() + b)  # the root's gradient flows to b unchanged
    x = np.ones(3, np.float32)
    for _ in range(4):
        w.grad = b.grad = None
        step(x)
        assert b.grad == 1 and np.array_equal(w.grad, np.ones(3))
        b.grad *= 5  # in place, as gradient clipping or scaling would


def test_a_custom_op_returning_a_list_or_a_number_as_gradients_is_replayed():
    # normal execution takes a list of gradients, and a number for a one-element input; the
    # replay took the list for one gradient and read a number's .shape, so the plan disagreed
    # and the step ran without capture
    class ScaledMul(tg.Function):
        def forward(self, a, b):
            self.save_for_backward(a, b)
            return a * b * 2.0

        def backward(self, g):
            a, b = self.saved_tensors
            return [g * b * 2.0, g * a * 2.0]

    class Half(tg.Function):
        def forward(self, s):
            return s * 0.5

        def backward(self, g):
            return 0.5 * float(g)  # s is one element

    tg.manual_seed(0)
    w = tg.Tensor(np.linspace(-1, 1, 4), dtype=np.float64, requires_grad=True)
    opt = tg.optim.SGD([w], lr=0.1)

    def loss(x):
        return Half.apply(ScaledMul.apply(x, w).sum())

    step = capture(loss, optimizer=opt)
    eager_w = w.data.copy()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no fallback warning
        for k in range(4):
            x = np.full(4, k + 1.0)
            step(x)
            eager_w -= 0.1 * x  # d/dw of 0.5 · Σ 2·x·w
            np.testing.assert_allclose(w.data, eager_w, rtol=1e-12)
    assert step._verified
