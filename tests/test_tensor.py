"""Making tensors: data, dtypes, copies, and the attributes every tensor has."""

import numpy as np
import pytest

import tinygrad_nn as tg
from tinygrad_nn import Tensor
from tinygrad_nn.testing import assert_close


@pytest.fixture
def default_float64():
    tg.set_default_dtype(np.float64)
    yield
    tg.set_default_dtype(np.float32)


def test_from_array_scalar_and_nested_list():
    a = np.arange(6, dtype=np.float32).reshape(2, 3)
    assert_close(Tensor(a), a)
    t = Tensor(2.5)
    assert t.shape == () and t.dtype == np.float32 and t.item() == 2.5
    t = Tensor([[1.0, 2.0], [3.0, 4.5]])
    assert t.shape == (2, 2) and t.dtype == np.float32
    assert_close(t, np.array([[1.0, 2.0], [3.0, 4.5]], dtype=np.float32))
    assert Tensor([1, 2, 3]).dtype.kind == "i"
    assert Tensor(7).dtype.kind == "i" and Tensor(7).item() == 7
    assert Tensor(True).dtype == np.bool_
    assert Tensor([True, False]).dtype == np.bool_


def test_float_data_defaults_to_float32():
    assert Tensor(np.zeros(3)).dtype == np.float32  # a float64 array
    assert Tensor(1.0).dtype == np.float32
    assert Tensor([0.5, 1]).dtype == np.float32
    assert Tensor(np.float64(0.5)).dtype == np.float32
    assert Tensor(np.zeros(3, dtype=np.float16)).dtype == np.float16
    assert tg.get_default_dtype() == np.float32


def test_float64_kept_when_asked():
    a = np.linspace(0, 1, 5)
    t = Tensor(a, dtype=np.float64)
    assert t.dtype == np.float64
    assert t.data is a  # the dtype already fits: no copy
    assert Tensor(0.1, dtype=np.float64).item() == 0.1
    assert Tensor([1, 2], dtype=np.float64).dtype == np.float64
    assert Tensor(a, dtype="float32").dtype == np.float32


def test_set_default_dtype(default_float64):
    assert tg.get_default_dtype() == np.float64
    a = np.zeros(3)
    assert Tensor(a).dtype == np.float64
    assert Tensor(a).data is a
    assert Tensor(1.5).dtype == np.float64
    assert Tensor([1.5]).dtype == np.float64
    assert tg.zeros(2).dtype == np.float64
    assert Tensor(np.zeros(2, np.float32)).dtype == np.float32  # float32 data stays float32


def test_set_default_dtype_rejects_non_float():
    with pytest.raises(TypeError, match="float dtype"):
        tg.set_default_dtype(np.int32)
    assert tg.get_default_dtype() == np.float32


def test_no_copy_when_the_dtype_fits():
    a = np.ones((3, 4), dtype=np.float32)
    t = Tensor(a, requires_grad=True)
    assert np.shares_memory(t.data, a)
    assert t.data is a
    assert np.shares_memory(Tensor(a, dtype=np.float32).data, a)
    i = np.arange(4)
    assert np.shares_memory(Tensor(i).data, i)
    view = a[:, 1]
    assert np.shares_memory(Tensor(view).data, a)


def test_copy_when_the_dtype_changes():
    a = np.ones(3)
    t = Tensor(a)
    assert t.dtype == np.float32 and not np.shares_memory(t.data, a)
    assert not np.shares_memory(Tensor(np.arange(3), dtype=np.float32).data, np.arange(3))


def test_tensor_of_tensor_shares_data():
    a = Tensor(np.ones(3, np.float32))
    assert Tensor(a).data is a.data
    assert tg.tensor([1.0, 2.0], requires_grad=True).requires_grad


@pytest.mark.parametrize("data", [[1, 2, 3], np.arange(3), np.array([True, False]), 5, True])
def test_int_and_bool_tensors_cannot_require_grad(data):
    with pytest.raises(TypeError, match="only floating-point tensors can require grad"):
        Tensor(data, requires_grad=True)
    t = Tensor(data)
    with pytest.raises(TypeError, match=r"dtype=np\.float32"):
        t.requires_grad = True
    assert not t.requires_grad


def test_unsupported_data():
    with pytest.raises(TypeError, match="unsupported data of dtype"):
        Tensor(["a", "b"])
    with pytest.raises(TypeError, match="unsupported data"):
        Tensor(np.array([1 + 2j]))
    with pytest.raises((TypeError, ValueError)):
        Tensor([[1.0, 2.0], [3.0]])


def test_attributes():
    a = np.arange(24, dtype=np.float32).reshape(2, 3, 4)
    t = Tensor(a, requires_grad=True)
    assert t.shape == (2, 3, 4)
    assert t.ndim == 3
    assert t.dtype == np.float32
    assert t.size == 24
    assert t.numpy() is a
    assert t.grad is None
    assert t.requires_grad and t.is_leaf and t.grad_fn is None
    assert len(t) == 2
    assert Tensor(3.5).item() == 3.5
    assert isinstance(Tensor(3.5).item(), float)
    assert Tensor([[2.0]]).item() == 2.0
    with pytest.raises(ValueError, match="one-element"):
        t.item()
    assert float(Tensor([1.5])) == 1.5 and int(Tensor(3)) == 3
    assert t.tolist() == a.tolist()


def test_detach_shares_data_and_leaves_the_graph():
    x = Tensor(np.ones(3, np.float32), requires_grad=True)
    y = x * 2
    d = y.detach()
    assert d.data is y.data
    assert not d.requires_grad and d.grad_fn is None and d.is_leaf
    assert x.detach().data is x.data


def test_retain_grad():
    x = Tensor([1.0, 2.0], requires_grad=True)
    y = x * 3
    assert y.retain_grad() is y
    z = y * y
    z.sum().backward()
    assert_close(y.grad, 2 * y.data)
    with pytest.raises(RuntimeError, match="does not require grad"):
        Tensor([1.0]).retain_grad()


def test_requires_grad_cannot_be_turned_off_on_a_computed_tensor():
    y = Tensor([1.0], requires_grad=True) * 2
    with pytest.raises(RuntimeError, match="detach"):
        y.requires_grad = False
    leaf = Tensor([1.0]).requires_grad_()
    assert leaf.requires_grad
    leaf.requires_grad = False
    assert not leaf.requires_grad


def test_repr_shows_values_dtype_and_op():
    t = Tensor([1.5, -2.0], requires_grad=True)
    r = repr(t)
    assert "1.5" in r and "-2." in r and "dtype=float32" in r and "requires_grad=True" in r
    r = repr(t * 2)
    assert "3." in r and "-4." in r and "dtype=float32" in r and "grad_fn=<Mul>" in r
    assert "grad_fn=<Sum>" in repr((t * 2).sum())
    assert "dtype=int64" in repr(Tensor(np.arange(3)))
    assert "dtype=bool" in repr(t > 0)
    assert "grad_fn" not in repr(t.detach())
    big = repr(Tensor(np.zeros(10_000, np.float32)))
    assert len(big) < 500 and "..." in big


def test_constructors():
    assert tg.zeros(2, 3).shape == (2, 3) and tg.zeros((2, 3)).dtype == np.float32
    assert_close(tg.ones(2), np.ones(2, np.float32))
    assert tg.zeros(2, dtype=np.float64).dtype == np.float64
    assert tg.ones(2, requires_grad=True).requires_grad
    x = Tensor(np.arange(6.0).reshape(2, 3))
    assert tg.zeros_like(x).shape == (2, 3) and tg.ones_like(x).dtype == np.float32
    tg.manual_seed(0)
    a = tg.randn(3, 4)
    tg.manual_seed(0)
    assert_close(a, tg.randn(3, 4))
    assert a.dtype == np.float32 and tg.rand(2, dtype=np.float64).dtype == np.float64
    assert np.all((tg.rand(100).data >= 0) & (tg.rand(100).data < 1))
    assert_close(tg.arange(5), np.arange(5))


def test_truth_value_and_iteration():
    assert bool(Tensor([1.0]))
    with pytest.raises(ValueError, match="ambiguous"):
        bool(Tensor([1.0, 2.0]))
    rows = list(Tensor(np.arange(6.0).reshape(3, 2), dtype=np.float64))
    assert len(rows) == 3 and rows[1].tolist() == [2.0, 3.0]
    with pytest.raises(TypeError, match="0-d"):
        len(Tensor(1.0))
    assert (Tensor([1, 2]) > 0).all() and (Tensor([0, 2]) > 1).any()


def test_item_assignment_on_a_plain_tensor():
    t = Tensor(np.zeros(3, np.float32))
    t[1] = 5.0
    t[Tensor(np.array([0]))] = Tensor(2.0)
    assert t.tolist() == [2.0, 5.0, 0.0]


def test_numpy_array_of_a_tensor_without_grad():
    a = np.arange(3.0, dtype=np.float32)
    t = Tensor(a)
    assert np.asarray(t) is a
    assert np.array(t, dtype=np.float64).dtype == np.float64
    assert np.asarray(t.detach()) is a


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_constructors_keep_the_dtype_asked_for(dtype):
    for t in [
        tg.zeros(2, dtype=dtype),
        tg.ones(2, dtype=dtype),
        tg.randn(2, dtype=dtype),
        tg.rand(2, dtype=dtype),
        tg.arange(3, dtype=dtype),
        tg.zeros_like(Tensor(np.ones(2, dtype), dtype=dtype)),
        tg.ones_like(Tensor(np.ones(2, dtype), dtype=dtype)),
    ]:
        assert t.dtype == dtype
