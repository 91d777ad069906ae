"""gradcheck itself: it passes correct ops, catches wrong ones, and explains what it found."""

import re
import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.errors import InvalidArgument

import tinygrad_nn as tg
from tinygrad_nn import Function, GradcheckError, Tensor, gradcheck, numerical_grad
from tinygrad_nn.gradcheck import GradcheckWarning
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


def leaf(values, dtype=np.float64):
    return Tensor(np.asarray(values, dtype=dtype), dtype=dtype, requires_grad=True)


class WrongSquare(Function):
    """y = a², with a backward that forgets the factor 2 on purpose."""

    def forward(self, a):
        self.save_for_backward(a)
        return a * a

    def backward(self, g):
        (a,) = self.saved_tensors
        return a * g


class WrongSecondInput(Function):
    """y = a·b with dL/db off by 1% (dL/da is right)."""

    def forward(self, a, b):
        self.save_for_backward(a, b)
        return a * b

    def backward(self, g):
        a, b = self.saved_tensors
        return g * b, g * a * 1.01


def test_returns_true_on_correct_ops():
    x, w = leaf(np.random.default_rng(0).standard_normal((3, 4))), leaf(np.ones((4, 2)))
    assert gradcheck(lambda a, b: (a @ b).tanh(), x, w) is True
    assert gradcheck(lambda a: a.exp().sum(), x) is True


def test_wrong_backward_raises_a_report_naming_everything():
    x = leaf([[1.0, 2.0], [3.0, -4.0]])
    with pytest.raises(GradcheckError) as info:
        gradcheck(lambda t: WrongSquare.apply(t).sum(), x)
    msg = str(info.value)
    assert "input 0" in msg and "shape (2, 2)" in msg
    assert re.search(r"at index \(\d, \d\)", msg)
    assert "analytic (backward)" in msg and "numeric (central differences" in msg
    assert "absolute error" in msg and "relative error" in msg
    assert "atol + rtol*|numeric|" in msg
    # the worst element is a = -4: analytic -4, numeric -8
    assert "at index (1, 1)" in msg
    assert re.search(r"analytic \(backward\):\s+-4\.0", msg)
    assert re.search(r"numeric .*:\s+-(8\.0|7\.99)", msg)


def test_the_report_names_the_wrong_input():
    a, b = leaf([1.0, 2.0]), leaf([3.0, 4.0])
    with pytest.raises(GradcheckError, match=r"for input 1 \(shape \(2,\)\)"):
        gradcheck(WrongSecondInput.apply, a, b)
    b.requires_grad = False
    assert gradcheck(WrongSecondInput.apply, a, b)  # input 1 is not checked


def test_gradcheck_error_is_an_assertion_error():
    assert issubclass(GradcheckError, AssertionError)
    with pytest.raises(AssertionError, match="gradcheck failed for input 0"):
        assert_gradcheck(WrongSquare.apply, leaf([1.0, 2.0]))


def test_float32_inputs_are_promoted():
    x = Tensor(np.linspace(-2, 2, 7, dtype=np.float32), requires_grad=True)
    assert x.dtype == np.float32
    assert gradcheck(lambda t: (t * t).tanh() / 3, x)  # default tolerances
    assert gradcheck(lambda t: t.sigmoid().log(), x)
    assert x.dtype == np.float32 and x.grad is None  # the caller's tensor is untouched
    with pytest.raises(GradcheckError):
        gradcheck(WrongSquare.apply, x)


def test_kink_gives_a_warning_not_a_failure():
    x = leaf([-1.0, 0.0, 2.0])
    with pytest.warns(GradcheckWarning, match=r"kink at 1 element\(s\) \(first at index \(1,\)\)"):
        assert gradcheck(lambda t: t.relu(), x)
    with pytest.warns(GradcheckWarning, match="kink"):
        assert gradcheck(lambda t: t.clip(0.0, 1.0).sum(), x)
    # where the central difference happens to equal the analytic value (abs at 0 gives 0 on
    # both sides, a tie in max gives ½ on both) there is nothing to report
    assert gradcheck(lambda t: t.abs().sum(), x)
    assert gradcheck(lambda t: t.max(), leaf([1.0, 3.0, 3.0]))


def test_assert_gradcheck_fails_on_kinks_unless_allowed():
    x = leaf([0.0, 1.0])
    with pytest.raises(AssertionError, match="kink.*avoid="):
        assert_gradcheck(lambda t: t.relu(), x)
    with pytest.warns(GradcheckWarning):
        assert_gradcheck(lambda t: t.relu(), x, allow_kinks=True)


def test_a_wrong_value_at_a_kink_still_fails():
    class WrongReLU(Function):
        def forward(self, a):
            return np.maximum(a, 0)

        def backward(self, g):
            return g * 5.0  # no one-sided derivative of relu is 5

    with pytest.raises(GradcheckError, match="kink here .* lies outside both"):
        gradcheck(WrongReLU.apply, leaf([0.0, 1.0]))


def test_no_warning_away_from_kinks():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert gradcheck(lambda t: t.relu() + t.abs(), leaf([-1.0, 0.5, 2.0]))


def test_projection_path_on_large_inputs():
    rng = np.random.default_rng(0)
    x = leaf(rng.standard_normal((100, 100)))
    w = leaf(rng.standard_normal((100, 3)))
    assert gradcheck(lambda a, b: (a @ b).tanh(), x, w)
    assert gradcheck(lambda a: (a * a).sum(), x)
    with pytest.raises(GradcheckError, match=r"input 0 \(shape \(100, 100\)\) of the projection"):
        gradcheck(WrongSquare.apply, x)
    with pytest.raises(GradcheckError, match="projection"):
        gradcheck(lambda a: WrongSquare.apply(a).sum(), x)


def test_random_vjp_path_on_medium_inputs():
    x = leaf(np.random.default_rng(1).standard_normal((20, 30)))  # J is 600 × 600
    assert gradcheck(lambda a: a.tanh() * 2, x)
    with pytest.raises(GradcheckError, match="of vᵀJ for a random v"):
        gradcheck(WrongSquare.apply, x)


def test_full_jacobian_path_reports_the_worst_output_element():
    x = leaf([1.0, 2.0])  # WrongSquare's error grows with |x|: the worst is at x[1], out[1]
    with pytest.raises(GradcheckError, match=r"at index \(1,\) of output element \(1,\)"):
        gradcheck(WrongSquare.apply, x)


def test_tolerances_are_respected():
    # WrongSecondInput is off by exactly 1%: rtol 2% accepts it, the default 0.1% does not
    a, b = leaf([1.0, 2.0]), leaf([3.0, 4.0])
    assert gradcheck(WrongSecondInput.apply, a, b, rtol=2e-2)
    with pytest.raises(GradcheckError, match=r"= 1e-05 \+ 0\.001\*"):
        gradcheck(WrongSecondInput.apply, a, b)


def test_inputs_without_grad_and_constants_are_allowed():
    x, c = leaf([1.0, 2.0]), Tensor([3.0, 4.0], dtype=np.float64)
    assert gradcheck(lambda a, k, s: a * k + s, x, c, 2.0)
    with pytest.raises(ValueError, match="no input requires grad"):
        gradcheck(lambda a: a * 2, c)


def test_fn_must_return_a_float_tensor():
    with pytest.raises(TypeError, match="must return a Tensor"):
        gradcheck(lambda a: a.data, leaf([1.0]))
    with pytest.raises(TypeError, match="float tensor"):
        gradcheck(lambda a: a > 0, leaf([1.0]))


def test_numerical_grad_agrees_with_a_hand_derivative():
    x = leaf([0.5, -1.0, 2.0])
    (g,) = numerical_grad(lambda t: (t * t * t).sum(), x)
    assert_close(g, 3 * x.data**2, rtol=1e-6, atol=1e-8)
    a, b = leaf([[1.0, 2.0]]), leaf([[3.0], [4.0]])
    ga, gb = numerical_grad(lambda p, q: p @ q, a, b)
    assert_close(ga, b.data.T, rtol=1e-6, atol=1e-8)
    assert_close(gb, a.data.T, rtol=1e-6, atol=1e-8)
    v = np.array([[2.0]])
    ga, _ = numerical_grad(lambda p, q: p @ q, a, b, grad_output=v)
    assert_close(ga, 2 * b.data.T, rtol=1e-6, atol=1e-8)
    assert numerical_grad(lambda p, q: p * q, x, Tensor([1.0, 1.0, 1.0]))[1] is None


def test_numerical_grad_is_float64_for_float32_inputs():
    x = Tensor(np.array([0.1, 0.2], dtype=np.float32), requires_grad=True)
    (g,) = numerical_grad(lambda t: t.exp().sum(), x)
    assert g.dtype == np.float64
    assert_close(g, np.exp(x.data.astype(np.float64)), rtol=1e-7, atol=1e-9)


@given(tensors(shape=shapes(), dtype=np.float32, domain="positive"))
def test_gradcheck_with_testing_strategies(x):
    assert_gradcheck(lambda t: t.log() * t.sqrt(), x)


def test_import_tinygrad_nn_does_not_import_hypothesis():
    import subprocess
    import sys

    code = "import sys, tinygrad_nn; print('hypothesis' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
    assert tg.__name__ == "tinygrad_nn"


# ---------------------------------------------------------------------------- tinygrad_nn.testing


@given(arrays(shape=shapes(), dtype=float_dtypes(), avoid=(0.0, 1.0), distinct=True))
def test_arrays_keep_off_the_avoided_points_and_each_other(a):
    v = a.astype(np.float64).ravel()
    assert np.all((-3 <= v) & (v <= 3))
    assert np.all(np.abs(v) >= 0.01 - 1e-6) and np.all(np.abs(v - 1) >= 0.01 - 1e-6)
    gaps = np.diff(np.sort(v))
    assert np.all(gaps >= 0.01 - 1e-6)


@pytest.mark.parametrize(
    "domain, low, high",
    [("positive", 0.01, 3), ("negative", -3, -0.01), ("unit", 0.01, 0.99), ("nonzero", -3, 3)],
)
@given(data=st.data())
def test_domains(data, domain, low, high):
    v = data.draw(arrays(domain=domain)).ravel()
    assert np.all((low <= v) & (v <= high))
    if domain == "nonzero":
        assert np.all(np.abs(v) >= 0.01)


@given(tensors(dtype=float_dtypes(), low=5.0, high=6.0), tensors(shape=(2, 3)))
def test_tensors_keep_dtype_and_require_grad(x, y):
    assert x.dtype in (np.float32, np.float64) and x.requires_grad and x.is_leaf
    assert np.all((5 <= x.data) & (x.data <= 6))
    assert y.shape == (2, 3) and y.dtype == np.float64


@given(broadcastable_shapes(3))
def test_broadcastable_shapes_broadcast(s):
    assert len(s) == 3
    np.broadcast_shapes(*s)


@given(broadcastable_shapes(2).flatmap(lambda s: tensor_tuples(s, distinct=True)))
def test_tensor_tuples_are_jointly_distinct(ab):
    v = np.concatenate([t.data.ravel() for t in ab])
    assert len(ab) == 2 and all(t.requires_grad for t in ab)
    assert np.all(np.diff(np.sort(v)) >= 0.01 - 1e-9)


def draw_one(strategy):
    @settings(max_examples=1, database=None)
    @given(strategy)
    def run(_):
        pass

    run()


def test_strategy_arguments_are_checked():
    with pytest.raises(InvalidArgument, match="unknown domain"):
        draw_one(arrays(domain="complex"))
    with pytest.raises(InvalidArgument, match="leaves the 'positive' domain"):
        draw_one(arrays(domain="positive", low=-1.0))
    with pytest.raises(InvalidArgument, match="do not fit"):
        draw_one(arrays(shape=(50,), low=0.0, high=0.1, distinct=True))
    with pytest.raises(InvalidArgument, match="float dtype"):
        draw_one(arrays(dtype=np.int64))


def test_assert_close():
    assert_close(Tensor([1.0, 2.0]), np.array([1.0, 2.0 + 1e-7]))
    assert_close(Tensor([1, 2]), [1, 2])
    with pytest.raises(AssertionError, match="shapes differ"):
        assert_close(Tensor([1.0, 2.0]), np.ones((1, 2)))
    with pytest.raises(AssertionError):
        assert_close(Tensor([1.0, 2.0]), np.array([1.0, 2.01]))
    with pytest.raises(AssertionError):
        assert_close(np.array([1.0]), np.array([1.0 + 1e-6]))  # float64: tighter by default
    assert_close(np.array([1.0]), np.array([1.0 + 1e-6]), rtol=1e-5)
    with pytest.raises(AssertionError, match="dtypes differ"):
        assert_close(Tensor([1.0]), np.array([1.0]), check_dtype=True)


class ReluOfGrad(Function):
    """relu whose backward also clips g at 0, a slip that one-hot g (0 and +1) cannot see."""

    def forward(self, a):
        self.save_for_backward(a)
        return np.maximum(a, 0)

    def backward(self, g):
        (a,) = self.saved_tensors
        return np.maximum(g, 0) * (a > 0)


class ClippedGrad(Function):
    """y = 3a, with a backward that clips g to [-1, 1]: right for |g| <= 1 only."""

    def forward(self, a):
        return 3 * a

    def backward(self, g):
        return 3 * np.clip(g, -1, 1)


def test_backward_not_linear_in_the_incoming_gradient_fails():
    x = leaf([[0.5, -1.0, 2.0], [1.5, -0.3, 0.7]])
    for op in (ReluOfGrad, ClippedGrad):
        with pytest.raises(GradcheckError, match="not linear in its incoming gradient"):
            gradcheck(op.apply, x)
    with pytest.raises(GradcheckError, match="not linear"):
        gradcheck(ClippedGrad.apply, leaf(2.0))  # one output element: v is a single -1.5..-2
    with pytest.raises(AssertionError, match="not linear"):
        assert_gradcheck(lambda t: ReluOfGrad.apply(t) * 2, x)
    assert gradcheck(lambda t: t.relu() * 2, x)  # the correct relu


def test_fn_computing_in_float32_is_refused():
    class F32Square(Function):
        """y = a² computed in float32, with a backward 10% too large: rounding noise made
        gradcheck take the point for a kink and skip it."""

        def forward(self, a):
            a = a.astype(np.float32)
            self.save_for_backward(a)
            return a * a

        def backward(self, g):
            (a,) = self.saved_tensors
            return 2.2 * a * g

    x = leaf([-2.7541588563828316])
    with pytest.raises(TypeError, match="float32 tensor.*need float64 throughout") as info:
        gradcheck(F32Square.apply, x)
    assert "dtype=np.float64" in str(info.value) and "set_default_dtype" in str(info.value)
    with pytest.raises(TypeError, match="float32"):
        gradcheck(lambda t: t.astype(np.float32) * 2, x)
    with pytest.raises(TypeError, match="float32"):
        numerical_grad(F32Square.apply, x)

    tg.manual_seed(0)
    layer, x = tg.nn.Dense(3, 2), leaf(np.ones((4, 3)))  # a float32 layer casts x to float32
    with pytest.raises(TypeError, match="float32 tensor"):
        gradcheck(lambda t: layer(t).tanh(), x)
    layer64 = tg.nn.Dense(3, 2, dtype=np.float64)  # the fix the message names
    assert gradcheck(lambda t: layer64(t).tanh(), x)


def test_tensors_fn_closes_over_are_left_as_found():
    rng = np.random.default_rng(0)
    w, x = leaf(rng.standard_normal((3, 2))), leaf(np.ones((4, 3)))
    assert gradcheck(lambda t: (t @ w).tanh(), x)
    assert w.grad is None  # was filled by every Jacobian row's backward
    g = np.full((3, 2), 7.0)
    w.grad = g
    assert gradcheck(lambda t: (t @ w).tanh(), x)
    assert w.grad is g and np.all(g == 7.0)

    # an intermediate built outside fn: its graph is neither freed nor given gradients
    v = leaf([0.5, -1.0, 2.0])
    h = (v * v).tanh().retain_grad()
    assert gradcheck(lambda t: t * h, leaf([0.1, 0.2, 0.3]))  # failed on the second row
    assert v.grad is None and h.grad is None
    with pytest.raises(GradcheckError):  # a wrong backward is still found
        gradcheck(lambda t: WrongSquare.apply(t) * h, leaf([1.0, 2.0, 3.0]))
    h.sum().backward()  # h's graph is still whole
    assert_close(h.grad, np.ones(3))
    assert_close(v.grad, 2 * v.data * (1 - np.tanh(v.data**2) ** 2))


def test_a_forward_writing_into_its_input_leaves_the_callers_arrays_alone():
    class ExpInPlace(Function):
        def forward(self, a, c):
            np.exp(a, out=a)  # the bug: overwrites its input
            c += 1.0
            self.save_for_backward(a)
            return a * c

        def backward(self, g):
            (ea,) = self.saved_tensors
            return g * ea, None

    x, c = leaf([0.1, 0.2, 0.3]), Tensor(np.array([1.0, 2.0, 3.0]), dtype=np.float64)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # exp of exp of ... overflows
        with pytest.raises(GradcheckError):
            gradcheck(ExpInPlace.apply, x, c)
    assert np.array_equal(x.data, [0.1, 0.2, 0.3]) and np.array_equal(c.data, [1.0, 2.0, 3.0])


def test_distinct_rejects_drawn_shapes_too_large_instead_of_erroring():
    # 200 values 0.01 apart do not fit in the unit domain's (0.01, 0.99): such draws used to
    # raise InvalidArgument, failing a test only when hypothesis happened to draw a large shape
    drawn = []

    @settings(max_examples=30, database=None, derandomize=True)
    @given(tensors(shape=st.sampled_from([(3,), (200,)]), domain="unit", distinct=True))
    def one(x):
        drawn.append(x.shape)

    one()
    pairs = st.sampled_from([((2,), (1, 3)), ((100,), (100,))])

    @settings(max_examples=30, database=None, derandomize=True)
    @given(pairs.flatmap(lambda s: tensor_tuples(s, domain="unit", distinct=True)))
    def two(ab):
        drawn.append(tuple(t.shape for t in ab))
        assert np.all(np.diff(np.sort(np.concatenate([t.data.ravel() for t in ab]))) >= 0.01 - 1e-9)

    two()
    assert set(drawn) == {(3,), ((2,), (1, 3))}
