"""The backward pass: accumulation, shared subexpressions, graph lifetime, grad mode, custom ops."""

import threading
import time

import numpy as np
import pytest
from hypothesis import given

import tinygrad_nn as tg
from tinygrad_nn import Function, Tensor
from tinygrad_nn.testing import assert_close, assert_gradcheck, tensors


def leaf(values, dtype=np.float64):
    return Tensor(np.asarray(values, dtype=dtype), dtype=dtype, requires_grad=True)


# ---------------------------------------------------------------------------- accumulation


def test_gradients_accumulate_across_calls_until_reset():
    x = leaf([1.0, 2.0])
    (x * 3).sum().backward()
    assert_close(x.grad, [3.0, 3.0])
    (x * x).sum().backward()
    assert_close(x.grad, [5.0, 7.0])
    x.grad = None
    (x * 3).sum().backward()
    assert_close(x.grad, [3.0, 3.0])


def test_x_times_x():
    x = leaf([1.5, -2.0])
    (x * x).sum().backward()
    assert_close(x.grad, [3.0, -4.0])


def test_diamond():
    x = leaf(2.0)
    a = x * 3  # 6
    b = x.exp()
    c = a * b + a  # both paths from x meet at c, and a is used twice
    c.backward()
    # dc/dx = 3·eˣ + 3x·eˣ + 3
    assert_close(x.grad, 3 * np.exp(2.0) + 6 * np.exp(2.0) + 3)


def test_each_node_runs_backward_once():
    calls = []

    class Twice(Function):
        def forward(self, a):
            return 2 * a

        def backward(self, g):
            calls.append(g.copy())
            return 2 * g

    x = leaf([1.0, 2.0])
    y = Twice.apply(x)
    z = (y * y + y.exp() + y).sum()  # y feeds three branches
    z.backward()
    assert len(calls) == 1
    assert_close(calls[0], 2 * y.data + np.exp(y.data) + 1)


@given(tensors())
def test_shared_input_gets_the_sum_of_its_gradients(x):
    assert_gradcheck(lambda t: (t * t + t.tanh() * t).sum() + t.exp().mean(), x)


def test_only_leaves_and_retained_tensors_keep_grad():
    x = leaf([1.0, 2.0])
    y = x * 2
    z = y + 1
    z.retain_grad()
    w = z * z
    w.sum().backward()
    assert x.grad is not None
    assert y.grad is None
    assert w.grad is None
    assert_close(z.grad, 2 * z.data)
    w.grad = None  # allowed, and nothing happens


def test_constant_leaves_get_no_grad():
    x = leaf([1.0])
    c = Tensor([2.0])
    (x * c).sum().backward()
    assert c.grad is None and not c.requires_grad


def test_leaf_grads_never_alias():
    a, b = leaf([1.0, 2.0]), leaf([3.0, 4.0])
    (a + b).backward(np.array([1.0, 1.0]))
    assert a.grad is not b.grad
    a.grad *= 10
    assert_close(b.grad, [1.0, 1.0])
    x = leaf([[1.0, 2.0]])
    x.reshape(2).backward(np.array([5.0, 6.0]))
    assert x.grad.base is None or not np.shares_memory(x.grad, np.array([5.0, 6.0]))


def test_grad_dtype_follows_the_leaf():
    x = leaf([1.0, 2.0], dtype=np.float32)
    (x.astype(np.float64) * 2).sum().backward()
    assert x.grad.dtype == np.float32
    y = leaf([1.0, 2.0])
    (y.astype(np.float32) * 2).sum().backward()
    assert y.grad.dtype == np.float64


@pytest.mark.parametrize("dtype", [np.int64, np.int32, np.bool_])
def test_integer_results_carry_no_gradient(dtype):
    x = leaf([1.5, -2.5])
    y = x.astype(dtype)
    assert y.dtype == dtype and not y.requires_grad and y.grad_fn is None
    ((x * y) + x).sum().backward()  # y is a constant here, as any integer tensor
    assert_close(x.grad, y.data.astype(np.float64) + 1)


def test_broadcast_gradients_are_summed_back():
    a = leaf(np.ones((2, 1, 3)))
    b = leaf(np.ones(4)[:, None])  # (4, 1)
    c = leaf(5.0)
    (a * b * c).backward(np.ones((2, 4, 3)))
    assert a.grad.shape == (2, 1, 3) and b.grad.shape == (4, 1) and c.grad.shape == ()
    assert_close(a.grad, np.full((2, 1, 3), 20.0))
    assert_close(b.grad, np.full((4, 1), 30.0))
    assert_close(c.grad, np.array(24.0))


# ---------------------------------------------------------------------------- backward(grad)


def test_backward_with_an_array_or_a_tensor():
    x = leaf([1.0, 2.0, 3.0])
    (x * 2).backward(np.array([1.0, 0.0, -1.0]))
    assert_close(x.grad, [2.0, 0.0, -2.0])
    x.grad = None
    (x * 2).backward(Tensor([1.0, 10.0, 100.0]))
    assert_close(x.grad, [2.0, 20.0, 200.0])
    x.grad = None
    (x * 2).backward([1.0, 1.0, 1.0])
    assert_close(x.grad, [2.0, 2.0, 2.0])


def test_the_given_grad_is_not_kept_or_modified():
    x = leaf([1.0, 2.0])
    g = np.array([1.0, 1.0])
    x.backward(g)
    x.backward(g)
    assert_close(g, [1.0, 1.0])
    assert_close(x.grad, [2.0, 2.0])


def test_backward_on_a_one_element_tensor_needs_no_grad():
    x = leaf([[3.0]])
    (x * x).backward()
    assert_close(x.grad, [[6.0]])


def test_omitting_grad_on_a_larger_tensor_is_an_error():
    x = leaf([1.0, 2.0])
    with pytest.raises(
        RuntimeError, match=r"grad can be omitted only for a one-element tensor.*\(2,\)"
    ):
        (x * 2).backward()


def test_grad_of_the_wrong_shape_is_an_error():
    x = leaf([1.0, 2.0])
    with pytest.raises(ValueError, match=r"grad has shape \(3,\) but the tensor has shape \(2,\)"):
        (x * 2).backward(np.ones(3))


def test_backward_on_a_tensor_without_grad_is_an_error():
    with pytest.raises(RuntimeError, match="does not require grad"):
        Tensor([1.0]).sum().backward()
    with tg.no_grad():
        y = leaf([1.0]) * 2
    with pytest.raises(RuntimeError, match="does not require grad"):
        y.backward()


# ---------------------------------------------------------------------------- graph lifetime


def test_retain_graph_allows_a_second_backward():
    x = leaf([1.0, 2.0])
    y = (x.exp() * x).sum()
    y.backward(retain_graph=True)
    first = x.grad.copy()
    y.backward()
    assert_close(x.grad, 2 * first)


def test_second_backward_through_a_released_graph_is_an_error():
    x = leaf([1.0, 2.0])
    y = (x.exp() * x).sum()
    y.backward()
    grad = x.grad.copy()
    with pytest.raises(
        RuntimeError, match="backward through the graph a second time.*retain_graph"
    ):
        y.backward()
    assert_close(x.grad, grad)  # nothing was accumulated


def test_second_backward_through_a_released_shared_subgraph_is_an_error():
    x = leaf([1.0, 2.0])
    h = x.tanh()
    (h * 2).sum().backward()
    with pytest.raises(RuntimeError, match=r"second time \(at the Tanh node\)"):
        (h * 3).sum().backward()


def test_saved_arrays_are_released_after_backward():
    x = leaf(np.ones(3))
    y = x.exp()
    assert y.grad_fn.saved_tensors  # exp saves its output
    y.sum().backward()
    assert not any(isinstance(a, np.ndarray) for a in y.grad_fn.saved_tensors)


def test_long_chain_backprops_without_recursion():
    x = leaf([1.0, 2.0])
    start = time.perf_counter()
    y = x
    for _ in range(100_000):
        y = y * 1.0
    y.sum().backward()
    elapsed = time.perf_counter() - start
    assert_close(x.grad, [1.0, 1.0])
    assert elapsed < 10, f"100,000 ops forward+backward took {elapsed:.1f}s"
    del y  # freeing the chain must not recurse either


# ---------------------------------------------------------------------------- grad mode


def test_no_grad_records_nothing():
    x = leaf([1.0, 2.0])
    with tg.no_grad():
        assert not tg.is_grad_enabled()
        y = (x * 2).exp().sum()
    assert tg.is_grad_enabled()
    assert y.grad_fn is None and not y.requires_grad and y.is_leaf


def test_no_grad_and_enable_grad_nest():
    x = leaf([1.0])
    with tg.no_grad():
        with tg.enable_grad():
            assert tg.is_grad_enabled()
            y = x * 2
            with tg.no_grad():
                z = x * 2
            w = x * 3
        v = x * 4
    assert y.requires_grad and y.grad_fn is not None and w.requires_grad
    assert not z.requires_grad and not v.requires_grad


def test_grad_mode_is_restored_after_an_exception():
    with pytest.raises(KeyError), tg.no_grad():
        raise KeyError
    assert tg.is_grad_enabled()


def test_no_grad_and_enable_grad_as_decorators():
    @tg.no_grad()
    def predict(t):
        return t * 2

    @tg.enable_grad()
    def train(t):
        return t * 2

    x = leaf([1.0])
    assert not predict(x).requires_grad
    assert predict.__name__ == "predict"
    with tg.no_grad():
        assert train(x).requires_grad
    assert tg.is_grad_enabled()


def test_grad_mode_decorators_hold_inside_generators_only():
    x = leaf([1.0])
    log = []

    @tg.no_grad()
    def gen(n):
        try:
            for _ in range(n):
                try:
                    sent = yield x * 2
                    log.append(("sent", sent, tg.is_grad_enabled()))
                except KeyError:
                    log.append(("thrown", tg.is_grad_enabled()))
        finally:
            log.append(("closed", tg.is_grad_enabled()))
        return "done"

    g = gen(3)
    assert not next(g).requires_grad
    assert tg.is_grad_enabled()  # the caller's mode between the steps
    assert not g.send(5).requires_grad
    assert not g.throw(KeyError()).requires_grad
    with pytest.raises(StopIteration) as stop:
        g.send(6)
    assert stop.value.value == "done" and gen.__name__ == "gen"
    assert log == [("sent", 5, False), ("thrown", False), ("sent", 6, False), ("closed", False)]
    log.clear()
    g = gen(3)
    next(g)
    g.close()
    assert log == [("closed", False)] and tg.is_grad_enabled()

    @tg.enable_grad()
    def recording():
        yield x * 2

    @tg.set_grad_enabled(False)
    def not_recording():
        yield x * 2

    with tg.no_grad():
        assert next(recording()).requires_grad
    assert not next(not_recording()).requires_grad
    assert tg.is_grad_enabled()


def test_the_same_no_grad_object_can_be_reentered():
    ng = tg.no_grad()
    with ng:
        with tg.enable_grad(), ng:
            assert not tg.is_grad_enabled()
        assert not tg.is_grad_enabled()
    assert tg.is_grad_enabled()


def test_set_grad_enabled():
    with tg.set_grad_enabled(False):
        assert not tg.is_grad_enabled()
        with tg.set_grad_enabled(True):
            assert tg.is_grad_enabled()
    assert tg.is_grad_enabled()


def test_set_grad_enabled_as_a_call_takes_effect_at_once():
    x = leaf([1.0])
    try:
        tg.set_grad_enabled(False)  # as PyTorch's: no `with` needed
        assert not tg.is_grad_enabled() and not (x * 2).requires_grad
        tg.set_grad_enabled(True)
        assert tg.is_grad_enabled() and (x * 2).requires_grad
    finally:
        tg.autograd.STATE.grad_enabled = True
    # `with` restores the mode from before the call, in either direction
    with tg.no_grad():
        with tg.set_grad_enabled(True):
            assert tg.is_grad_enabled()
        assert not tg.is_grad_enabled()
    with tg.set_grad_enabled(False):
        assert not tg.is_grad_enabled()
    assert tg.is_grad_enabled()

    # a decorator does not change the mode where it is applied, only while the function runs
    @tg.set_grad_enabled(False)
    def double(t):
        return t * 2

    assert tg.is_grad_enabled()
    assert not double(x).requires_grad and tg.is_grad_enabled()
    # the call sets the mode of its own thread only
    seen = []

    def worker():
        tg.set_grad_enabled(False)
        seen.append(tg.is_grad_enabled())

    t = threading.Thread(target=worker)
    t.start()
    t.join()
    assert seen == [False] and tg.is_grad_enabled()


def test_grad_mode_is_per_thread():
    inside = threading.Event()
    checked = threading.Event()
    seen = {}

    def worker():
        with tg.no_grad():
            seen["worker"] = tg.is_grad_enabled()
            inside.set()
            checked.wait(5)

    t = threading.Thread(target=worker)
    t.start()
    assert inside.wait(5)
    x = leaf([1.0])
    seen["main"] = tg.is_grad_enabled()
    y = x * 2
    checked.set()
    t.join()
    assert seen == {"worker": False, "main": True}
    assert y.requires_grad


def test_one_no_grad_object_shared_by_two_threads():
    shared = tg.no_grad()
    a_inside, b_inside, a_left = threading.Event(), threading.Event(), threading.Event()
    seen = {}

    def a():
        with shared:
            a_inside.set()
            b_inside.wait(5)
        seen["a after its block"] = tg.is_grad_enabled()
        a_left.set()

    def b():
        a_inside.wait(5)
        with tg.no_grad():
            with shared:
                b_inside.set()
                a_left.wait(5)
            seen["b still in its outer no_grad"] = tg.is_grad_enabled()

    threads = [threading.Thread(target=a), threading.Thread(target=b)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert seen == {"a after its block": True, "b still in its outer no_grad": False}


def test_a_new_thread_starts_with_grad_enabled():
    seen = []
    with tg.no_grad():
        t = threading.Thread(target=lambda: seen.append(tg.is_grad_enabled()))
        t.start()
        t.join()
    assert seen == [True]


# ---------------------------------------------------------------------------- custom ops


class Cube(Function):
    """y = a³, dL/da = 3a²·g (a user's op, written as the docs say)."""

    def forward(self, a):
        self.save_for_backward(a)
        return a**3

    def backward(self, g):
        (a,) = self.saved_tensors
        return 3 * a * a * g


class ScaledAdd(Function):
    """y = a + k·b, dL/da = g, dL/db = k·g; records which gradients it was asked for."""

    seen: list = []

    def forward(self, a, b, k=1.0):
        self.k = k
        return a + k * b

    def backward(self, g):
        ScaledAdd.seen.append(self.needs_input_grad)
        na, nb = self.needs_input_grad
        return (g if na else None), (self.k * g if nb else None)


@given(tensors())
def test_custom_function_passes_gradcheck(x):
    assert_gradcheck(Cube.apply, x)


def test_custom_function_in_a_graph():
    x = leaf([1.0, 2.0])
    y = Cube.apply(x * 2).sum()
    assert y.grad_fn.name == "Sum" and y.requires_grad
    y.backward()
    assert_close(x.grad, 3 * (2 * x.data) ** 2 * 2)


def test_custom_function_needs_input_grad():
    ScaledAdd.seen = []
    a, b = leaf([1.0]), Tensor([2.0], dtype=np.float64)
    out = ScaledAdd.apply(a, b, k=3.0)
    assert_close(out, [7.0])
    out.backward(np.ones(1))
    assert ScaledAdd.seen == [(True, False)]
    assert b.grad is None
    b.requires_grad = True
    assert_gradcheck(lambda x, y: ScaledAdd.apply(x, y, k=3.0), a, b)
    assert (True, True) in ScaledAdd.seen


def test_custom_function_with_a_constant_argument():
    x = leaf([1.0, 2.0])
    y = ScaledAdd.apply(x, np.array([10.0, 20.0]), k=0.5)
    assert_close(y, [6.0, 12.0])
    y.backward(np.ones(2))
    assert_close(x.grad, [1.0, 1.0])


def test_custom_function_on_constants_records_nothing():
    y = Cube.apply(Tensor([2.0]))
    assert y.grad_fn is None and not y.requires_grad
    with tg.no_grad():
        assert Cube.apply(leaf([2.0])).grad_fn is None


def test_custom_backward_with_a_wrong_shape_is_reported():
    class Bad(Function):
        def forward(self, a):
            return a * 1

        def backward(self, g):
            return np.ones(7)

    x = leaf([1.0, 2.0])
    with pytest.raises(RuntimeError, match=r"Bad\.backward returned a gradient of shape \(7,\)"):
        Bad.apply(x).sum().backward()


def test_released_graph_error_leaves_retained_grads_untouched():
    x = Tensor(np.array([1.0, 2.0]), requires_grad=True)
    loss = (x * x).sum().retain_grad()  # the root itself keeps its grad
    loss.backward()
    with pytest.raises(RuntimeError, match="second time"):
        loss.backward()
    assert loss.grad == 1.0  # not 2: the failed pass changed nothing
