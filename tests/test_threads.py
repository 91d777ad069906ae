"""Threads: grad mode and anomaly mode belong to the thread that sets them, and two threads
training two models at once get bit-for-bit the results of training them one after the other.

(test_backward.py checks the grad-mode flag itself across threads; here the threads run ops
while the other thread is inside ``no_grad`` and check what was recorded.)
"""

from __future__ import annotations

import sys
import threading
import time
from contextlib import contextmanager

import numpy as np
import pytest

import tinygrad_nn as tg
from tinygrad_nn import Tensor, nn, optim
from tinygrad_nn.anomaly import AnomalyError, is_anomaly_enabled
from tinygrad_nn.nn import functional as F

TIMEOUT = 30


@contextmanager
def frequent_switches():
    """Make the interpreter switch threads every few microseconds, so that the threads really
    interleave inside the engine rather than run one after the other."""
    old = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        yield
    finally:
        sys.setswitchinterval(old)


def yield_():
    """Let the other threads run now (a sleep releases the interpreter lock)."""
    time.sleep(0)


def run_threads(*targets, barriers=()):
    """Run each target in its own thread; re-raise the first exception any of them raised.
    A failing thread breaks ``barriers``, so that the others fail fast instead of waiting."""
    errors = []

    def wrap(fn):
        def run():
            try:
                fn()
            except BaseException as e:  # handed to the main thread
                errors.append(e)
                for b in barriers:
                    b.abort()

        return run

    threads = [threading.Thread(target=wrap(fn)) for fn in targets]
    for t in threads:
        t.start()
    for t in threads:
        t.join(TIMEOUT)
    if errors:
        raise errors[0]
    assert not any(t.is_alive() for t in threads), "a thread hung"


# ----------------------------------------------------------------------------- grad mode


def test_no_grad_in_one_thread_does_not_stop_recording_in_another():
    """Lock-step rounds: in each, thread A is inside no_grad while thread B runs ops, then
    they swap; a barrier separates the phases so both are certainly inside at once."""
    barrier = threading.Barrier(2, timeout=TIMEOUT)
    seen = {"A": [], "B": []}

    def worker(name, my_turn):
        x = Tensor(np.ones(3), requires_grad=True)
        for round_ in range(20):
            if round_ % 2 == my_turn:
                with tg.no_grad():
                    barrier.wait()  # the other thread now runs ops
                    y = (x * 2).exp().sum()
                    seen[name].append(("no_grad", tg.is_grad_enabled(), y.requires_grad))
                    barrier.wait()
            else:
                barrier.wait()  # the other thread is inside no_grad now
                y = (x * 2).exp().sum()
                seen[name].append(("grad", tg.is_grad_enabled(), y.requires_grad))
                y.backward()
                barrier.wait()
        assert x.grad is not None

    run_threads(lambda: worker("A", 0), lambda: worker("B", 1), barriers=[barrier])
    for name in "AB":
        assert len(seen[name]) == 20
        for mode, enabled, recorded in seen[name]:
            assert (enabled, recorded) == ((mode == "grad"),) * 2, (name, seen[name])


def test_set_grad_enabled_decorator_is_per_thread():
    barrier = threading.Barrier(2, timeout=TIMEOUT)
    results = {}

    @tg.set_grad_enabled(False)
    def predict(x):
        barrier.wait()  # the other thread trains meanwhile
        out = x * 2
        barrier.wait()
        return out

    def train(x):
        barrier.wait()
        out = x * 2
        barrier.wait()
        return out

    x = Tensor(np.ones(2), requires_grad=True)
    run_threads(
        lambda: results.__setitem__("predict", predict(x)),
        lambda: results.__setitem__("train", train(x)),
        barriers=[barrier],
    )
    assert not results["predict"].requires_grad
    assert results["train"].requires_grad


# ----------------------------------------------------------------------------- training


def make_run(seed):
    """A model, its optimizer and its data, all drawn from ``seed``; building draws from the
    global generator, so runs are built one at a time in the main thread."""
    tg.manual_seed(seed)
    model = nn.Sequential(nn.Dense(6, 12), nn.Tanh(), nn.Dense(12, 12), nn.ReLU(), nn.Dense(12, 3))
    opt = (optim.Adam if seed % 2 else optim.SGD)(model.parameters(), lr=0.05)
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((40, 6)).astype(np.float32)
    y = rng.integers(0, 3, 40)
    return model, opt, x, y


def train(model, opt, x, y, epochs=30, evaluate=False, on_step=lambda: None):
    """Mini-batch training with a seeded shuffle; with ``evaluate``, an evaluation under
    no_grad after every epoch, so that this thread keeps switching grad mode off."""
    losses = []
    for epoch in range(epochs):
        for xb, yb in tg.data.batches(x, y, batch_size=8, seed=epoch):
            opt.zero_grad()
            loss = F.cross_entropy(model(xb), yb)
            loss.backward()
            opt.step()
            losses.append(loss.item())
            on_step()
        if evaluate:
            with tg.no_grad():
                out = model(x)
                assert out.grad_fn is None
    return losses


def params(model):
    return [p.data.copy() for p in model.parameters()]


def test_two_threads_training_at_once_match_training_one_after_the_other():
    one_by_one = []
    for seed in (1, 2):
        model, opt, x, y = make_run(seed)
        losses = train(model, opt, x, y, evaluate=seed == 1)
        one_by_one.append((params(model), losses))

    runs = [make_run(seed) for seed in (1, 2)]
    results = [None, None]
    start = threading.Barrier(2, timeout=TIMEOUT)
    order = []  # which thread finished each step, to check that they did interleave

    def worker(k):
        start.wait()
        losses = train(*runs[k], evaluate=k == 0, on_step=lambda: (order.append(k), yield_()))
        results[k] = (params(runs[k][0]), losses)

    with frequent_switches():
        run_threads(lambda: worker(0), lambda: worker(1), barriers=[start])
    switches = sum(a != b for a, b in zip(order, order[1:]))
    assert switches > 10, f"the threads hardly interleaved ({switches} switches)"

    for (p_seq, l_seq), (p_par, l_par) in zip(one_by_one, results):
        assert l_par == l_seq  # bit for bit, every step
        for a, b in zip(p_seq, p_par):
            np.testing.assert_array_equal(a, b)


def test_many_threads_backward_through_their_own_graphs_on_shared_parameters():
    """Parameters read by several threads at once (no optimizer): each thread's gradient
    arrives in its own graph and equals the single-threaded one."""
    tg.manual_seed(3)
    model = nn.Sequential(nn.Dense(5, 7), nn.Tanh(), nn.Dense(7, 1))
    inputs = [np.random.default_rng(k).standard_normal((4, 5)) for k in range(4)]

    def input_grad(x):
        t = Tensor(x, requires_grad=True)
        model(t).sum().backward()
        return t.grad

    expected = [input_grad(x) for x in inputs]
    got = [None] * len(inputs)

    def worker(k):
        for _ in range(20):
            got[k] = input_grad(inputs[k])

    with frequent_switches():
        run_threads(*[lambda k=k: worker(k) for k in range(len(inputs))])
    for a, b in zip(expected, got):
        np.testing.assert_array_equal(a, b)


# ----------------------------------------------------------------------------- anomaly mode


def test_detect_anomaly_is_per_thread():
    """Thread A is inside detect_anomaly while thread B, outside it, makes NaNs freely; then
    A makes one and gets the error, B never does."""
    barrier = threading.Barrier(2, timeout=TIMEOUT)
    seen = {}

    def checked():
        with tg.detect_anomaly():
            barrier.wait()  # B runs while A's anomaly mode is on
            barrier.wait()
            seen["A enabled"] = is_anomaly_enabled()
            x = Tensor([-1.0], requires_grad=True)
            with np.errstate(invalid="ignore"), pytest.raises(AnomalyError, match="Log produced"):
                x.log()
        seen["A after"] = is_anomaly_enabled()

    def unchecked():
        barrier.wait()
        seen["B enabled"] = is_anomaly_enabled()
        x = Tensor([-1.0], requires_grad=True)
        with np.errstate(invalid="ignore"):
            y = x.log()
            y.sum().backward()
        seen["B made NaN"] = bool(np.isnan(y.item()))
        barrier.wait()

    run_threads(checked, unchecked, barriers=[barrier])
    assert seen == {"A enabled": True, "A after": False, "B enabled": False, "B made NaN": True}
    assert not is_anomaly_enabled()


def test_a_new_thread_starts_with_anomaly_mode_off():
    seen = []
    with tg.detect_anomaly():
        run_threads(lambda: seen.append(is_anomaly_enabled()))
        assert is_anomaly_enabled()
    assert seen == [False]


def test_threads_accumulating_into_one_leaf_lose_nothing():
    w = tg.Tensor(np.zeros(200_000, np.float32), requires_grad=True)

    def work():
        for _ in range(50):
            (w * 1.0).sum().backward()

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert np.all(w.grad == 200.0)
