"""The API's edges, each a clear error whose message is asserted: wrong dtypes and shapes, bad
learning rates, labels out of range, empty batches, misused backward, state dicts and files that
do not fit.

Only what test_tensor.py, test_errors.py, test_backward.py, test_nn.py, test_optim.py, test_io.py
and test_data_batching.py do not already assert.

Decisions recorded here: a Dense layer takes an empty batch (0, in) as numpy's matmul does and
returns (0, out) with zero gradients; a loss with ``reduction="mean"`` refuses an empty batch
(the mean of no losses is undefined; PyTorch returns NaN), while ``"sum"`` gives 0 and ``"none"``
an empty tensor.
"""

from __future__ import annotations

import numpy as np
import pytest

import tinygrad_nn as tg
from tinygrad_nn import Tensor, nn, optim
from tinygrad_nn.data.idx import IDXFormatError, read_idx, write_idx
from tinygrad_nn.nn import functional as F
from tinygrad_nn.optim import OptimizerStateError
from tinygrad_nn.testing import assert_gradcheck


def leaf(shape, value=0.5):
    return Tensor(np.full(shape, value), dtype=np.float64, requires_grad=True)


# ----------------------------------------------------------------------------- dtypes


@pytest.mark.parametrize(
    "data, dtype",
    [
        (np.array([1, None], dtype=object), "object"),
        (np.array([1.0, 2.0], dtype=object), "object"),
        ("abc", "<U3"),
        (b"abc", "|S3"),
        (None, "object"),
        ({"a": 1}, "object"),
    ],
)
def test_data_that_is_not_numbers_is_refused(data, dtype):
    with pytest.raises(TypeError, match=rf"^Tensor: unsupported data of dtype {dtype}"):
        Tensor(data)


def test_a_dtype_that_is_not_numbers_is_refused():
    with pytest.raises(TypeError, match=r"^Tensor: unsupported dtype <U0; tensors hold numbers"):
        Tensor([1.0], dtype=str)
    with pytest.raises(TypeError, match=r"^Tensor: unsupported dtype object"):
        Tensor([1.0], dtype=object)
    with pytest.raises(TypeError, match=r"^astype: tensors hold numbers; cannot cast to dtype"):
        Tensor([1.0]).astype(str)


@pytest.mark.parametrize(
    "make",
    [
        lambda: tg.zeros(3, dtype=np.int32, requires_grad=True),
        lambda: tg.ones(2, dtype=bool, requires_grad=True),
        lambda: tg.arange(3).requires_grad_(),
        lambda: nn.Parameter(np.arange(3)),
        lambda: nn.Dense(2, 3, dtype=np.int64),
        lambda: tg.zeros_like(Tensor([1, 2]), requires_grad=True),
    ],
)
def test_integer_and_bool_tensors_cannot_require_grad_however_made(make):
    with pytest.raises(TypeError, match=r"^only floating-point tensors can require grad, but"):
        make()


# ----------------------------------------------------------------------------- shapes


@pytest.mark.parametrize(
    "x, shape",
    [(np.ones(5), r"\(5,\)"), (np.float32(1.0), r"\(\)"), (np.ones((2, 4, 2)), r"\(2, 4, 2\)")],
)
def test_dense_names_itself_and_the_shapes_for_any_wrong_input(x, shape):
    layer = nn.Dense(4, 3)
    with pytest.raises(
        ValueError,
        match=rf"^Dense 4→3: expected input whose last axis has 4 features, got shape "
        rf"{shape} \(weight shape \(3, 4\)\)",
    ):
        layer(x)


def test_functional_linear_width_mismatch():
    with pytest.raises(ValueError, match=r"^Linear: input of shape \(2, 5\) does not match weight"):
        F.linear(np.ones((2, 5)), leaf((3, 4)))


@pytest.mark.parametrize(
    "loss, target, message",
    [
        (F.binary_cross_entropy, np.zeros(4), r"^binary_cross_entropy: input and target shapes"),
        (
            F.binary_cross_entropy_with_logits,
            np.zeros((1, 4)),
            r"^binary_cross_entropy_with_logits: input and target shapes differ: \(4, 1\) vs "
            r"\(1, 4\)",
        ),
        (F.mse_loss, Tensor(np.zeros(4)), r"^mse_loss: input and target shapes differ"),
        (
            F.cross_entropy,
            np.full((4, 2), 0.5),
            r"^cross_entropy: probability target must have the logits' shape \(4, 1\), got "
            r"\(4, 2\)",
        ),
        (
            F.nll_loss,
            np.zeros(3, np.int64),
            r"^nll_loss: expected input \(N, C\) and target \(N,\), got \(4, 1\) and \(3,\)",
        ),
    ],
)
def test_loss_shape_mismatches(loss, target, message):
    with pytest.raises(ValueError, match=message):
        loss(leaf((4, 1)), target)


def test_loss_inputs_of_the_wrong_rank_or_kind():
    with pytest.raises(ValueError, match=r"^cross_entropy: logits must have shape \(N, C\) or"):
        F.cross_entropy(leaf((2, 3, 4)), np.zeros((2, 3), np.int64))
    with pytest.raises(ValueError, match=r"^nll_loss: expected input \(N, C\)"):
        F.nll_loss(leaf(3), 1)
    with pytest.raises(TypeError, match=r"^mse_loss: input must be a Tensor, got ndarray"):
        F.mse_loss(np.zeros(2), np.zeros(2))
    with pytest.raises(TypeError, match=r"^mse_loss: target must hold numbers, got dtype <U1"):
        F.mse_loss(leaf(2), np.array(["a", "b"]))
    with pytest.raises(TypeError, match=r"^cross_entropy: target must be integer or float, got"):
        F.cross_entropy(leaf((2, 3)), np.array([True, False]))


def test_nll_loss_of_a_plain_array_is_a_tensor():
    out = F.nll_loss(np.log(np.full((2, 3), 1 / 3)), [0, 2])
    assert isinstance(out, Tensor)
    assert out.item() == pytest.approx(np.log(3))


def test_matmul_with_a_nested_list_of_the_wrong_shape():
    with pytest.raises(ValueError, match=r"^MatMul: shapes \(2, 3\) and \(1, 2\) are not aligned"):
        leaf((2, 3)) @ [[1.0, 2.0]]


# ----------------------------------------------------------------------------- learning rates


@pytest.mark.parametrize(
    "cls, lr",
    [
        (optim.SGD, float("inf")),
        (optim.SGD, -1),
        (optim.Adam, float("nan")),
        (optim.Adam, -1),
        (optim.AdamW, float("nan")),
        (optim.AdamW, float("inf")),
        (optim.AdamW, -1),
        (optim.SGD, np.float32("nan")),
        (optim.Adam, np.float64("-inf")),
    ],
)
def test_non_finite_or_negative_learning_rates_are_refused(cls, lr):
    with pytest.raises(
        ValueError, match=rf"^{cls.__name__}: invalid lr=.*; it must be a finite number >= 0"
    ):
        cls([leaf(2)], lr=lr)


@pytest.mark.parametrize("cls", [optim.SGD, optim.Adam, optim.AdamW])
@pytest.mark.parametrize("lr", [float("nan"), float("inf"), -1.0, "0.1"])
def test_a_bad_learning_rate_set_after_construction_is_refused_at_step(cls, lr):
    w = leaf(2)
    opt = cls([w], lr=0.1)
    opt.param_groups[0]["lr"] = lr  # how schedules are written by hand
    w.grad = np.ones(2)
    before = w.data.copy()
    exc = TypeError if isinstance(lr, str) else ValueError
    with pytest.raises(exc, match=rf"^{cls.__name__}: .*lr"):
        opt.step()
    np.testing.assert_array_equal(w.data, before)  # nothing was updated


def test_a_bad_learning_rate_in_a_second_group_names_the_group():
    a, b = leaf(2), leaf(2)
    opt = optim.SGD([{"params": [a]}, {"params": [b]}], lr=0.1)
    opt.param_groups[1]["lr"] = float("nan")
    with pytest.raises(ValueError, match=r"^SGD \(param group 1\): invalid lr=nan"):
        opt.step()


# ----------------------------------------------------------------------------- labels


@pytest.mark.parametrize(
    "call, exc, message",
    [
        (
            lambda: F.nll_loss(leaf((2, 3)), [0, 3]),
            ValueError,
            r"^nll_loss: class index 3 is out of range for 3 classes \(valid: 0\.\.2\)",
        ),
        (lambda: F.nll_loss(leaf((2, 3)), [-1, 0]), ValueError, r"^nll_loss: class index -1"),
        (
            lambda: F.nll_loss(leaf((2, 3)), [0.0, 1.0]),
            TypeError,
            r"^nll_loss: target must hold integer class indices, got dtype float64",
        ),
        (
            lambda: F.cross_entropy(leaf(3), np.int64(3)),
            ValueError,
            r"^cross_entropy: class index 3 is out of range for 3 classes",
        ),
        (
            lambda: F.cross_entropy(leaf((2, 3)), [0, 5]),
            ValueError,
            r"^cross_entropy: class index 5 is out of range",
        ),
        (lambda: F.one_hot([-1], 3), ValueError, r"^one_hot: class index -1 is out of range"),
        (lambda: F.one_hot([1.0], 3), TypeError, r"^one_hot: class indices must be integers"),
        (lambda: F.one_hot([0], 0), ValueError, r"^one_hot: num_classes must be >= 1, got 0"),
        (lambda: F.one_hot([1], 2.5), TypeError, r"^one_hot: num_classes must be an int, got 2.5"),
    ],
)
def test_labels_out_of_range_or_of_the_wrong_kind(call, exc, message):
    with pytest.raises(exc, match=message):
        call()


# ----------------------------------------------------------------------------- empty batches


def test_dense_takes_an_empty_batch_as_numpy_does():
    layer = nn.Dense(4, 3)
    out = layer(np.zeros((0, 4), np.float32))
    assert out.shape == (0, 3) and out.requires_grad
    out.sum().backward()
    np.testing.assert_array_equal(layer.weight.grad, np.zeros((3, 4)))
    np.testing.assert_array_equal(layer.bias.grad, np.zeros(3))


@pytest.mark.parametrize(
    "name, loss, target",
    [
        ("mse_loss", F.mse_loss, np.zeros((0, 3))),
        ("binary_cross_entropy", F.binary_cross_entropy, np.zeros((0, 3))),
        ("binary_cross_entropy_with_logits", F.binary_cross_entropy_with_logits, np.zeros((0, 3))),
        ("cross_entropy", F.cross_entropy, np.zeros(0, np.int64)),
        ("cross_entropy", F.cross_entropy, np.zeros((0, 3))),
        ("nll_loss", F.nll_loss, np.zeros(0, np.int64)),
    ],
)
def test_the_mean_loss_of_an_empty_batch_is_refused_the_sum_is_zero(name, loss, target):
    x = leaf((0, 3))
    with pytest.raises(
        ValueError, match=rf"^{name}: the input is empty \(shape \(0, 3\)\), and the mean of no"
    ):
        loss(x, target)
    total = loss(x, target, reduction="sum")
    assert total.item() == 0.0
    total.backward()
    assert x.grad.shape == (0, 3)
    assert loss(x, target, reduction="none").size == 0


def test_loss_modules_refuse_an_empty_batch_too():
    with pytest.raises(ValueError, match=r"^cross_entropy: the input is empty"):
        nn.CrossEntropyLoss()(leaf((0, 3)), np.zeros(0, np.int64))


@pytest.mark.parametrize("name", ["max", "min"])
def test_max_min_of_an_empty_tensor_over_non_empty_axes_as_pytorch(name):
    # (0, 3) over axis 1 is (0,), as torch's amax; it raised as if the axis were empty
    x = leaf((0, 3))
    for axis, keepdims, shape in [(1, False, (0,)), (-1, True, (0, 1)), ((1,), False, (0,))]:
        out = getattr(x, name)(axis=axis, keepdims=keepdims)
        assert out.shape == shape and out.requires_grad
        out.sum().backward()
        assert x.grad.shape == (0, 3)
        assert_gradcheck(lambda t, a=axis, k=keepdims: getattr(t, name)(axis=a, keepdims=k), x)
    y = leaf((2, 0, 3))
    assert getattr(y, name)(axis=(0, 2)).shape == (0,)
    # over an empty axis there is no value: still an error, as in PyTorch
    for t, axis, empty in [(x, 0, 0), (x, None, 0), (y, (0, 1), 1), (y, None, 1)]:
        with pytest.raises(
            ValueError,
            match=rf"^{name.title()}: cannot take the {name} over an empty axis "
            rf"\(axis {empty} has size 0\)",
        ):
            getattr(t, name)(axis=axis)


def test_one_hot_of_no_labels_has_no_rows():
    assert F.one_hot([], 3).shape == (0, 3)
    assert F.one_hot(np.zeros(0, np.int64), 3).shape == (0, 3)


# ----------------------------------------------------------------------------- backward


@pytest.mark.parametrize(
    "make",
    [
        lambda x: x.argmax(),
        lambda x: (x > 0).sum(),
        lambda x: x.detach().sum(),
        lambda x: (x * 2).astype(np.int64).sum(),
    ],
)
def test_backward_on_results_that_carry_no_gradient(make):
    with pytest.raises(RuntimeError, match=r"^backward: this tensor does not require grad"):
        make(leaf(3)).backward()


def test_backward_twice_through_ops_that_save_nothing():
    x = leaf(3)
    y = (x + 1.0).sum()  # Add and Sum keep no arrays for backward
    y.backward()
    with pytest.raises(RuntimeError, match=r"second time \(at the Sum node\).*retain_graph=True"):
        y.backward()


@pytest.mark.parametrize(
    "grad, exc, message",
    [
        (1.0, ValueError, r"^backward: grad has shape \(\) but the tensor has shape \(2,\)"),
        (Tensor(np.ones((2, 1))), ValueError, r"^backward: grad has shape \(2, 1\)"),
        ([None, None], TypeError, r"^backward: grad must hold numbers, got dtype object"),
        (["a", "b"], TypeError, r"^backward: grad must hold numbers, got dtype <U1"),
    ],
)
def test_backward_with_a_bad_grad(grad, exc, message):
    x = leaf(2)
    with pytest.raises(exc, match=message):
        (x * 2).backward(grad)
    assert x.grad is None


# ----------------------------------------------------------------------------- state dicts


def mlp():
    return nn.Sequential(nn.Dense(3, 2), nn.ReLU(), nn.Dense(2, 1))


@pytest.mark.parametrize("value", [[1, 2], None, "0.weight", np.zeros(3)])
def test_load_state_dict_of_something_that_is_not_a_dict(value):
    with pytest.raises(
        TypeError, match=r"^load_state_dict into Sequential: expected a dict of arrays"
    ):
        mlp().load_state_dict(value)


def test_load_state_dict_values_that_are_not_arrays_of_numbers():
    model = mlp()
    sd = dict(model.state_dict())
    sd["0.weight"], sd["2.bias"] = "abc", object()
    with pytest.raises(nn.StateDictError) as info:
        model.load_state_dict(sd)
    msg = str(info.value)
    assert "'0.weight': a str, not an array of numbers" in msg
    assert "'2.bias': a object, not an array of numbers" in msg


def test_an_optimizer_checkpoint_loaded_into_a_model_and_the_reverse(tmp_path):
    model = mlp()
    opt = optim.Adam(model.parameters())
    tg.save(opt.state_dict(), tmp_path / "opt.safetensors")
    tg.save(model.state_dict(), tmp_path / "model.safetensors")
    with pytest.raises(nn.StateDictError) as info:
        model.load_state_dict(tg.load(tmp_path / "opt.safetensors"))
    for part in ("unexpected key 'state'", "unexpected key 'param_groups'", "missing key"):
        assert part in str(info.value)
    with pytest.raises(OptimizerStateError, match=r"expected a dict with 'state' and 'param_"):
        opt.load_state_dict(tg.load(tmp_path / "model.safetensors"))


def test_a_checkpoint_of_another_architecture(tmp_path):
    tg.save(nn.Sequential(nn.Dense(3, 5), nn.ReLU(), nn.Dense(5, 1)).state_dict(), tmp_path / "m")
    model = mlp()
    before = model[0].weight.data.copy()
    with pytest.raises(nn.StateDictError, match=r"'0.weight': shape \(5, 3\) in the state dict"):
        model.load_state_dict(tg.load(tmp_path / "m"))
    np.testing.assert_array_equal(model[0].weight.data, before)


# ----------------------------------------------------------------------------- files


def test_loaders_given_each_others_files_or_no_path(tmp_path):
    ckpt, images = tmp_path / "model.safetensors", tmp_path / "images.idx"
    tg.save({"w": np.zeros(3)}, ckpt)
    write_idx(images, np.zeros((2, 2), np.uint8))
    with pytest.raises(tg.CheckpointError, match=r"images\.idx'?: not a safetensors file"):
        tg.load(images)
    with pytest.raises(IDXFormatError, match=r"model\.safetensors: bad magic bytes"):
        read_idx(ckpt)
    text = tmp_path / "notes.txt"
    text.write_text('{"w": [1, 2, 3]}  this is text, not a checkpoint')
    with pytest.raises(tg.CheckpointError, match="not a safetensors file"):
        tg.load(text)
    with pytest.raises(TypeError, match=r"^load: path must be a str or os.PathLike, got NoneType"):
        tg.load(None)
    with pytest.raises(TypeError, match=r"^save: path must be a str or os.PathLike, got int"):
        tg.save({}, 3)
