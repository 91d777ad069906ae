"""Errors say what went wrong and where: the op, the shapes, and what to do instead."""

import numpy as np
import pytest

import tinygrad_nn as tg
from tinygrad_nn import Tensor, nn
from tinygrad_nn.nn import functional as F
from tinygrad_nn.testing import assert_close, assert_gradcheck


def leaf(shape):
    return Tensor(np.ones(shape), dtype=np.float64, requires_grad=True)


# ---------------------------------------------------------------------------- shape mismatches


@pytest.mark.parametrize(
    "name, fn",
    [
        ("Add", lambda a, b: a + b),
        ("Sub", lambda a, b: a - b),
        ("Mul", lambda a, b: a * b),
        ("Div", lambda a, b: a / b),
        ("Pow", lambda a, b: a**b),
        ("Maximum", tg.maximum),
        ("Minimum", tg.minimum),
    ],
)
def test_broadcasting_mismatch_names_the_op_and_both_shapes(name, fn):
    with pytest.raises(ValueError, match=rf"^{name}: .*\(input shapes: \(2, 3\), \(4,\)\)"):
        fn(leaf((2, 3)), leaf(4))
    with pytest.raises(ValueError, match=rf"^{name}: .*\(input shapes: \(2, 3\), \(3, 2\)\)"):
        fn(leaf((2, 3)), np.ones((3, 2)))


def test_where_mismatch():
    with pytest.raises(ValueError, match=r"^Where: .*\(4,\), \(2, 3\)"):
        tg.where(np.ones(4) > 0, leaf((2, 3)), 1.0)
    with pytest.raises(TypeError, match="condition must be a bool array or tensor"):
        tg.where(np.ones(3), leaf(3), 1.0)


def test_matmul_mismatch_names_both_shapes():
    with pytest.raises(ValueError, match=r"^MatMul: shapes \(2, 3\) and \(2, 3\) are not aligned"):
        leaf((2, 3)) @ leaf((2, 3))
    with pytest.raises(ValueError, match=r"^MatMul: shapes \(3,\) and \(4,\) are not aligned"):
        leaf(3) @ leaf(4)
    with pytest.raises(ValueError, match=r"^MatMul: .*\(input shapes: \(2, 2, 3\), \(3, 3, 1\)\)"):
        leaf((2, 2, 3)) @ leaf((3, 3, 1))
    with pytest.raises(ValueError, match=r"^MatMul: both operands need at least 1 dimension"):
        leaf(()) @ leaf(3)
    with pytest.raises(ValueError, match=r"^MatMul: both operands need at least 1 dimension"):
        leaf(3) @ 2.0


def test_other_shape_errors_name_the_op():
    x = leaf((2, 3))
    with pytest.raises(ValueError, match=r"^Concatenate: .*\(input shapes: \(2, 3\), \(3, 3\)\)"):
        tg.concatenate([x, leaf((3, 3))], axis=1)
    with pytest.raises(ValueError, match=r"^Stack: .*\(input shapes: \(2, 3\), \(3, 3\)\)"):
        tg.stack([x, leaf((3, 3))])
    with pytest.raises(ValueError, match=r"^Reshape: cannot reshape array of size 6"):
        x.reshape(4, 2)
    with pytest.raises(ValueError, match=r"^BroadcastTo: .*\(input shapes: \(2, 3\)\)"):
        x.broadcast_to((3, 3))
    with pytest.raises(IndexError, match=r"^GetItem: index 5 is out of bounds"):
        x[5]
    with pytest.raises(
        ValueError, match=r"^Sum: axis 2 is out of bounds for a tensor of dimension"
    ):
        x.sum(axis=2)
    with pytest.raises(ValueError, match=r"^Max: repeated axis"):
        x.max(axis=(0, 0))
    with pytest.raises(TypeError, match=r"^Mean: axis must be an int or a tuple of ints"):
        x.mean(axis=1.5)
    with pytest.raises(ValueError, match="not a permutation"):
        x.transpose(0, 0)
    with pytest.raises(ValueError, match="axis 0 has size 2, not 1"):
        x.squeeze(0)
    with pytest.raises(ValueError, match="no degrees of freedom"):
        x.var(axis=0, ddof=2)
    with pytest.raises(ValueError, match=r"^less: .*\(shapes \(2, 3\) and \(4,\)\)"):
        _ = x < np.ones(4)
    with pytest.raises(ValueError, match="give at least one of min and max"):
        x.clip()


def test_backward_errors_do_not_corrupt_later_use():
    x = leaf((2, 3))
    with pytest.raises(ValueError):
        x + leaf(4)
    (x * 2).sum().backward()
    assert_close(x.grad, np.full((2, 3), 2.0))


# ---------------------------------------------------------------------------- operand types


@pytest.mark.parametrize("other", ["a", None, {}, object(), 1 + 2j])
@pytest.mark.parametrize(
    "fn",
    [
        lambda a, b: a + b,
        lambda a, b: b + a,
        lambda a, b: a - b,
        lambda a, b: a / b,
        lambda a, b: b / a,
        lambda a, b: a**b,
        lambda a, b: a @ b,
        lambda a, b: a < b,
    ],
)
def test_unsupported_operand_types_raise_type_error(fn, other):
    with pytest.raises(TypeError):
        fn(leaf(3), other)


def test_unsupported_operand_type_message():
    with pytest.raises(
        TypeError, match=r"unsupported operand type\(s\) for \+: 'Tensor' and 'NoneType'"
    ):
        leaf(3) + None
    with pytest.raises(TypeError, match="unsupported data of dtype <U1"):
        leaf(1) + np.array(["a"])
    with pytest.raises(TypeError, match="expected a list or tuple of tensors, got Tensor"):
        tg.concatenate(leaf(3))


# ---------------------------------------------------------------------------- numpy interop


def test_numpy_ufuncs_route_through_our_ops():
    x = Tensor(np.array([0.5, 1.0, 2.0]), dtype=np.float64, requires_grad=True)
    for out, grad in [
        (np.exp(x), np.exp(x.data)),
        (np.log(x), 1 / x.data),
        (np.sqrt(x), 0.5 / np.sqrt(x.data)),
        (np.tanh(x), 1 - np.tanh(x.data) ** 2),
        (np.negative(x), -np.ones(3)),
        (np.add(np.ones(3), x), np.ones(3)),
        (np.ones(3) * x, np.ones(3)),
        (np.full(3, 2.0) - x, -np.ones(3)),
        (np.full(3, 2.0) / x, -2 / x.data**2),
        (np.maximum(x, 0.75), np.array([0.0, 1.0, 1.0])),
        (np.power(x, 2), 2 * x.data),
    ]:
        assert isinstance(out, Tensor) and out.grad_fn is not None
        x.grad = None
        out.sum().backward()
        assert_close(x.grad, grad)


def test_numpy_functions_route_through_our_ops():
    x = Tensor(np.arange(6.0).reshape(2, 3), dtype=np.float64, requires_grad=True)
    out = np.sum(x, axis=0)
    assert isinstance(out, Tensor) and out.shape == (3,) and out.grad_fn.name == "Sum"
    for fn in [
        lambda t: np.sum(t, axis=0),
        lambda t: np.mean(t, axis=1, keepdims=True),
        lambda t: np.max(t),
        lambda t: np.var(t, axis=0, ddof=1),
        lambda t: np.reshape(t, (3, 2)),
        lambda t: np.transpose(t),
        lambda t: np.clip(t, 0.5, 4.5),
        lambda t: np.expand_dims(t, 0),
        lambda t: np.concatenate([t, t], axis=1),
        lambda t: np.stack([t, t * 2]),
        lambda t: np.matmul(t, np.ones((3, 2))),
        lambda t: np.ones((4, 2)) @ t,
    ]:
        assert isinstance(fn(x), Tensor)
        assert_gradcheck(fn, x)
    assert np.shape(x) == (2, 3) and np.ndim(x) == 2 and np.size(x) == 6


@pytest.mark.parametrize(
    "fn, name",
    [
        (np.sin, "numpy.sin"),
        (np.cos, "numpy.cos"),
        (np.cumsum, "numpy.cumsum"),
        (np.sort, "numpy.sort"),
        (lambda t: np.dot(t, t), "numpy.dot"),
        (lambda t: np.add.reduce(t), r"numpy.add.reduce"),
        (lambda t: np.exp(t, out=np.empty(3)), "numpy.exp"),
    ],
)
def test_other_numpy_functions_raise_type_error_pointing_to_the_method(fn, name):
    x = Tensor(np.ones(3), requires_grad=True)
    with pytest.raises(TypeError, match=rf"{name} cannot be applied to a Tensor.*use the Tensor"):
        fn(x)


def test_np_asarray_of_a_tensor_that_requires_grad_is_refused():
    x = Tensor(np.ones(3), requires_grad=True)
    with pytest.raises(
        TypeError, match=r"requires grad cannot be turned into a numpy array.*detach"
    ):
        np.asarray(x)
    with pytest.raises(TypeError, match="requires grad cannot be turned into a numpy array"):
        np.array(x * 2)
    assert np.asarray(x.detach()) is x.data
    assert x.numpy() is x.data


def test_item_assignment_into_a_tensor_that_requires_grad_is_refused():
    x = Tensor(np.ones(3), requires_grad=True)
    with pytest.raises(
        RuntimeError, match="item assignment into a tensor that is part of a computation graph"
    ):
        x[0] = 5.0
    y = x * 2
    with pytest.raises(RuntimeError, match="item assignment.*would corrupt its gradients"):
        y[1:] = 0.0
    assert_close(x, np.ones(3, np.float32))
    with tg.no_grad():
        z = x * 2  # not in any graph: assignment is fine
    z[0] = 7.0
    assert z.tolist() == [7.0, 2.0, 2.0]


def test_assigning_a_tensor_that_requires_grad_is_refused():
    t = Tensor(np.zeros(3))
    x = Tensor(np.ones(3), requires_grad=True)
    with pytest.raises(RuntimeError, match="would drop its gradient silently"):
        t[0] = x[1]
    t[0] = x[1].detach()
    assert t.tolist() == [1.0, 0.0, 0.0]


def test_item_on_a_larger_tensor():
    with pytest.raises(ValueError, match=r"only one-element tensors .* shape \(2, 3\)"):
        leaf((2, 3)).item()


def test_array_copy_false_with_another_dtype_is_refused():
    t = Tensor(np.ones(3, np.float32))
    assert np.asarray(t) is t.data  # no copy when nothing changes
    with pytest.raises(ValueError, match="without a copy"):
        t.__array__(np.float64, copy=False)


def test_assigning_into_a_constant_a_graph_saved_is_caught_at_backward():
    x = Tensor(np.array([1.0, 2.0, 3.0]))
    w = Tensor(np.ones(3), requires_grad=True)
    y = (w * x).sum()
    x[0] = 100.0  # Mul saved the old x for w's gradient
    with pytest.raises(RuntimeError, match="input 1 .* of the Mul node was modified"):
        y.backward()
    x[1] = 5.0  # assigning before the graph is built is fine
    (w * x).sum().backward()
    np.testing.assert_array_equal(w.grad, [100.0, 5.0, 3.0])


def test_changing_an_index_or_a_where_condition_after_the_forward_keeps_the_gradient():
    # GetItem and Where kept the caller's arrays by reference, so changing them before backward
    # moved the gradient: [0, 0, 2] for [2, 0, 0], and [0, 1, 1] for [1, 1, 1]
    x = Tensor(np.zeros(3, np.float32), requires_grad=True)
    idx = np.array([0, 0])
    y = x[idx]
    idx[:] = 2
    y.sum().backward()
    np.testing.assert_array_equal(x.grad, [2.0, 0.0, 0.0])
    x.grad = None
    rows = np.array([True, False, True])
    y = x[rows]
    rows[:] = False
    y.sum().backward()
    np.testing.assert_array_equal(x.grad, [1.0, 0.0, 1.0])
    a = Tensor(np.ones(3, np.float32), requires_grad=True)
    mask = np.array([True, True, True])
    z = tg.where(mask, a, 0.0)
    mask[0] = False
    z.sum().backward()
    np.testing.assert_array_equal(a.grad, [1.0, 1.0, 1.0])


def test_an_optimizer_step_between_forward_and_backward_is_caught_at_backward():
    # the step changes the parameters in place; Mul saved them for the gradient, which came out
    # from the new values ([-1, -2] for [1, 2] in the case) before steps were recorded
    x = Tensor(np.array([1.0, 2.0], np.float32), requires_grad=True)
    frozen = Tensor(np.array([3.0, 4.0], np.float32), requires_grad=True)  # no grad: not stepped
    opt = tg.optim.SGD([x, frozen], lr=1.0)
    x.grad = np.ones(2, np.float32)
    opt.step()  # lays the parameters out in one buffer; from now on a step writes into them
    y = (x * x).sum()
    z = (frozen * frozen).sum()
    shifted = (x + 1.0).sum()  # Add saves nothing of x: its gradient stays right
    opt.step()
    with pytest.raises(RuntimeError, match=r"Mul node was modified in place by optimizer\.step"):
        y.backward()
    z.backward()  # the step did not change `frozen`
    np.testing.assert_array_equal(frozen.grad, [6.0, 8.0])
    x.grad = None
    shifted.backward()  # as PyTorch, which checks only what a node saved
    np.testing.assert_array_equal(x.grad, [1.0, 1.0])
    opt.zero_grad()
    (x * x).sum().backward()  # a graph recorded after the step is fine
    np.testing.assert_array_equal(x.grad, [-2.0, 0.0])


def test_a_pickled_or_copied_parameter_does_not_carry_its_step_stamp():
    # the stamp's recording number is this process's: a model loaded in a new process (whose
    # numbers start again from 0) was refused at its first backward after any other step
    import copy
    import pickle

    dense = nn.Dense(2, 2)
    opt = tg.optim.SGD(dense.parameters(), lr=0.1)
    dense(np.ones((1, 2), np.float32)).sum().backward()
    opt.step()
    assert hasattr(dense.weight, "_mutated")
    for clone in (pickle.loads(pickle.dumps(dense)), copy.deepcopy(dense)):
        assert not hasattr(clone.weight, "_mutated")
        np.testing.assert_array_equal(clone.weight.data, dense.weight.data)
        assert type(clone.weight) is nn.Parameter and clone.weight.requires_grad


@pytest.mark.parametrize(
    "other",
    [np.float64(2), np.int64(2), np.prod((2, 3)), [1, 2, 3], np.array([1, 2, 3]), 2.0],
)
def test_numpy_scalars_and_int_arrays_do_not_widen_float32(other):
    t = Tensor(np.ones(3, np.float32), requires_grad=True)
    for out in (t * other, other * t, t + other, t / other):
        assert out.dtype == np.float32


def test_int_tensor_times_python_float_gives_the_default_float():
    assert (Tensor([1, 2]) * 0.5).dtype == np.float32
    assert (0.5 * Tensor([1, 2])).dtype == np.float32
    assert (Tensor([1, 2]) + np.float64(0.5)).dtype == np.float32  # a numpy scalar: the same


def test_integer_tensors_do_not_widen_float32():
    # PyTorch's promotion: float32 with an int64 tensor is float32 (numpy's would be float64)
    x = Tensor(np.array([1.0, 2.0, 3.0], np.float32), requires_grad=True)
    i = Tensor(np.array([1, 2, 3]))
    flags = Tensor(np.array([True, False, True]))
    outs = {
        "x * i": x * i,
        "i + x": i + x,
        "x ** i": x**i,
        "x - flags": x - flags,
        "maximum": tg.maximum(x, i),
        "where": tg.where(np.array([True, False, True]), x, i),
        "concatenate": tg.concatenate([x, i]),
        "stack": tg.stack([i, x]),
        "mse_loss": F.mse_loss(x, i),
    }
    for name, out in outs.items():
        assert out.dtype == np.float32, name
    # and the gradients are the same as with float targets
    (x * i).sum().backward()
    np.testing.assert_array_equal(x.grad, [1.0, 2.0, 3.0])
    assert x.grad.dtype == np.float32
    # between floats numpy's rule stands: float32 with float64 is float64
    assert (x * Tensor(np.ones(3), dtype=np.float64)).dtype == np.float64


def test_dense_computes_in_its_own_dtype():
    dense = nn.Dense(3, 2)
    assert dense([[1, 2, 3]]).dtype == np.float32  # an int list
    x = Tensor(np.ones((1, 3)), dtype=np.float64, requires_grad=True)
    out = dense(x)
    assert out.dtype == np.float32
    out.sum().backward()  # the cast is differentiable: x gets a float64 gradient
    assert x.grad.dtype == np.float64
    np.testing.assert_allclose(x.grad, dense.weight.data.sum(axis=0, keepdims=True), rtol=1e-6)
    assert dense.weight.grad.dtype == np.float32


def test_cross_entropy_keeps_the_gradient_of_a_probability_target_of_another_dtype():
    # the float64 target was cast with numpy, which cut it off the graph: p.grad stayed None
    rng = np.random.default_rng(0)
    z = rng.standard_normal((2, 3)).astype(np.float32)
    p = np.full((2, 3), 1 / 3)
    zt = Tensor(z, requires_grad=True)
    pt = Tensor(p, dtype=np.float64, requires_grad=True)
    F.cross_entropy(zt, pt).backward()
    logp = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
    np.testing.assert_allclose(pt.grad, -logp / 2, rtol=1e-5)  # dL/dp = -log softmax(z) / N
    assert pt.grad.dtype == np.float64


def test_custom_function_mistakes_get_errors_that_name_the_op():
    class TwoOutputs(tg.Function):
        def forward(self, x):
            return np.sin(x), np.cos(x)  # was stacked into one (2, n) array, silently

        def backward(self, g):
            return g

    x = Tensor(np.ones(3), dtype=np.float64, requires_grad=True)
    with pytest.raises(TypeError, match="TwoOutputs.forward returned a tuple; it must return one"):
        TwoOutputs.apply(x)

    class ListGrads(tg.Function):
        def forward(self, a, b):
            return a * b

        def backward(self, g):
            a, b = self.inputs[0].data, self.inputs[1].data
            return [g * b, g * a]  # a list was taken for one gradient: AttributeError

    a = Tensor(np.array([2.0]), dtype=np.float64, requires_grad=True)
    b = Tensor(np.array([3.0]), dtype=np.float64, requires_grad=True)
    ListGrads.apply(a, b).sum().backward()
    assert a.grad.tolist() == [3.0] and b.grad.tolist() == [2.0]

    class NumberGrad(tg.Function):
        def forward(self, a):
            return a * 2

        def backward(self, g):
            return 2.0 * float(g)  # a Python number for a 0-d input: AttributeError

    s = Tensor(np.array(1.5), dtype=np.float64, requires_grad=True)
    NumberGrad.apply(s).backward()
    assert s.grad == 2.0 and s.grad.dtype == np.float64

    class TooFew(tg.Function):
        def forward(self, a, b):
            return a + b

        def backward(self, g):
            return g  # b's gradient was dropped silently

    with pytest.raises(RuntimeError, match=r"TooFew.backward returned 1 gradient\(s\) for 2"):
        TooFew.apply(a, b).sum().backward()

    class TooMany(tg.Function):
        def forward(self, a):
            return a + 1

        def backward(self, g):
            return g, g  # the second was ignored silently

    with pytest.raises(RuntimeError, match=r"TooMany.backward returned 2 gradient\(s\) for 1"):
        TooMany.apply(a).sum().backward()
