"""Layers, losses, initialisers and Module behaviour; gradients checked by gradcheck."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import tinygrad_nn as tg
from tinygrad_nn import Tensor, gradcheck, nn
from tinygrad_nn.nn import functional as F


def t64(a, requires_grad=True):
    return Tensor(np.asarray(a, dtype=np.float64), dtype=np.float64, requires_grad=requires_grad)


# ---------------------------------------------------------------- Module


def test_named_parameters_in_registration_order():
    m = nn.Sequential(nn.Dense(3, 4), nn.Sigmoid(), nn.Dense(4, 2))
    assert [n for n, _ in m.named_parameters()] == ["0.weight", "0.bias", "2.weight", "2.bias"]
    assert m[0].weight.shape == (4, 3) and m[0].bias.shape == (4,)
    assert len(m) == 3 and isinstance(m[1], nn.Sigmoid) and list(m)[2] is m[2]
    assert len(list(m.modules())) == 4
    assert m.num_parameters() == 4 * 3 + 4 + 2 * 4 + 2


def test_nested_modules_and_module_list():
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.blocks = nn.ModuleList([nn.Dense(2, 3), nn.Dense(3, 1)])
            self.scale = nn.Parameter(np.ones(1))

        def forward(self, x):
            for b in self.blocks:
                x = b(x).tanh()
            return x * self.scale

    net = Net()
    names = [n for n, _ in net.named_parameters()]
    assert names == [
        "scale",
        "blocks.0.weight",
        "blocks.0.bias",
        "blocks.1.weight",
        "blocks.1.bias",
    ]
    out = net(np.ones((5, 2), np.float32))
    assert out.shape == (5, 1)
    out.sum().backward()
    assert all(p.grad is not None for p in net.parameters())
    net.zero_grad()
    assert all(p.grad is None for p in net.parameters())


def test_a_plain_tensor_over_a_parameter_is_refused():
    # it used to replace the Parameter and silently drop it from parameters() and state_dict()
    d = nn.Dense(3, 2)
    w = d.weight
    with pytest.raises(TypeError, match=r"Dense: cannot assign a Tensor as parameter 'weight'"):
        d.weight = Tensor(np.zeros((2, 3), np.float32), requires_grad=True)
    with pytest.raises(TypeError, match=r"a Parameter or None expected"):
        d.bias = np.zeros(2, np.float32)
    assert d.weight is w and [n for n, _ in d.named_parameters()] == ["weight", "bias"]
    assert list(d.state_dict()) == ["weight", "bias"]
    # as in PyTorch: a Parameter replaces it; None unregisters the values but keeps the name, so
    # a plain tensor is refused there too; after del the name is free for anything
    d.weight = nn.Parameter(np.ones((2, 3), np.float32))
    assert sorted(d.state_dict()) == ["bias", "weight"] and d.weight is not w
    d.bias = None
    assert d.bias is None and [n for n, _ in d.named_parameters()] == ["weight"]
    with pytest.raises(TypeError, match=r"parameter 'bias'"):
        d.bias = Tensor(np.zeros(2, np.float32))
    d.bias = nn.Parameter(np.zeros(2, np.float32))
    assert [n for n, _ in d.named_parameters()] == ["weight", "bias"]
    del d.bias
    d.bias = Tensor(np.zeros(2, np.float32))  # a plain attribute now
    assert list(d.state_dict()) == ["weight"]


def test_replacing_a_module_or_parameter_keeps_its_place():
    # it used to move the name to the end: a Sequential then ran its layers as 1, 2, 0
    tg.manual_seed(0)
    seq = nn.Sequential(nn.Dense(2, 3), nn.Tanh(), nn.Dense(3, 1))
    x = np.ones((4, 2), np.float32)
    first = nn.Dense(2, 3)
    setattr(seq, "0", first)
    assert list(seq._modules) == ["0", "1", "2"] and seq[0] is first
    np.testing.assert_allclose(seq(x).data, seq[2](first(x).tanh()).data)
    last = nn.Dense(3, 5)
    seq[-1] = last  # PyTorch's seq[i] = module, in place, negative indices too
    assert list(seq) == [first, seq[1], last] and seq(x).shape == (4, 5)
    assert [n for n, _ in seq.named_parameters()] == ["0.weight", "0.bias", "2.weight", "2.bias"]
    with pytest.raises(IndexError, match=r"Sequential: index 3 is out of range for 3 modules"):
        seq[3] = nn.Tanh()
    with pytest.raises(IndexError, match=r"index -4"):
        seq[-4] = nn.Tanh()
    for bad in ("0", slice(0, 1), 1.0, True):
        with pytest.raises(TypeError, match=r"Sequential: an index must be an int"):
            seq[bad] = nn.Tanh()
    with pytest.raises(TypeError, match=r"Sequential: can hold only Modules, got function"):
        seq[0] = lambda t: t
    with pytest.raises(TypeError, match=r"got the class Tanh; call the class"):
        seq[1] = nn.Tanh
    assert list(seq) == [first, seq[1], last]
    # a parameter replaced by a parameter, or by None and back, keeps its place too
    d = nn.Dense(2, 3)
    d.weight = nn.Parameter(np.zeros((3, 2), np.float32))
    assert [n for n, _ in d.named_parameters()] == ["weight", "bias"]
    d.weight = None
    d.weight = nn.Parameter(np.ones((3, 2), np.float32))
    assert list(d.state_dict()) == ["weight", "bias"] and list(d._parameters) == ["weight", "bias"]


def test_append_refuses_what_is_not_a_module():
    # Sequential.append used to register nothing and return: the function never ran
    seq = nn.Sequential(nn.Dense(2, 2))
    with pytest.raises(TypeError, match=r"Sequential.append: can hold only Modules, got function"):
        seq.append(lambda t: t * 100)
    with pytest.raises(TypeError, match=r"got the class ReLU; call the class"):
        seq.append(nn.ReLU)
    with pytest.raises(TypeError, match=r"ModuleList: can hold only Modules, got int$"):
        nn.ModuleList([nn.ReLU(), 3])
    assert len(seq) == 1 and seq.append(nn.ReLU()) is seq and len(seq) == 2


def test_train_eval_flags():
    m = nn.Sequential(nn.Dense(2, 2), nn.Dropout(0.5))
    assert m.training and m[1].training
    m.eval()
    assert not m.training and not m[1].training
    x = Tensor(np.ones((3, 2), np.float32))
    assert np.array_equal(m[1](x).data, x.data)
    m.train()
    assert m[1].training


def test_train_mode_must_be_a_bool():
    # train("no") used to store the string, which is truthy: dropout stayed on
    m = nn.Sequential(nn.Dense(2, 2), nn.Dropout(0.5))
    for bad in ("no", 0, 1.0, None):
        with pytest.raises(ValueError, match=r"Sequential.train: training mode is expected to be"):
            m.train(bad)
    assert m.training is True and m[1].training is True
    m[1].train(np.bool_(False))
    assert m[1].training is False and m.train(False).training is False


def test_repr_shows_layers_and_summary_counts():
    m = nn.Sequential(nn.Dense(784, 30), nn.Sigmoid())
    text = repr(m)
    assert "Dense(784 → 30" in text and "Sigmoid()" in text
    assert "23,550" in m.summary()


def test_state_dict_round_trip_and_errors():
    tg.manual_seed(1)
    a = nn.Sequential(nn.Dense(3, 2), nn.Dense(2, 1))
    b = nn.Sequential(nn.Dense(3, 2), nn.Dense(2, 1))
    b.load_state_dict(a.state_dict())
    for (na, pa), (nb, pb) in zip(a.named_parameters(), b.named_parameters()):
        assert na == nb and np.array_equal(pa.data, pb.data)
    sd = dict(a.state_dict())
    sd.pop("1.bias")
    sd["extra"] = np.zeros(1)
    sd["0.weight"] = np.zeros((5, 5), np.float32)
    sd["1.weight"] = np.zeros((1, 2), np.float64)
    before = b[0].weight.data.copy()
    with pytest.raises(nn.StateDictError) as info:
        b.load_state_dict(sd)
    msg = str(info.value)
    for part in [
        "missing key '1.bias'",
        "unexpected key 'extra'",
        "'0.weight': shape (5, 5)",
        "'1.weight': dtype float64",
    ]:
        assert part in msg
    assert np.array_equal(b[0].weight.data, before)  # nothing changed


def test_load_state_dict_non_strict_allows_missing():
    m = nn.Sequential(nn.Dense(2, 2))
    m.load_state_dict({"0.weight": np.ones((2, 2), np.float32)}, strict=False)
    assert np.all(m[0].weight.data == 1)


def test_load_state_dict_returns_missing_and_unexpected_keys():
    m = nn.Sequential(nn.Dense(2, 2), nn.Dense(2, 1))
    result = m.load_state_dict(m.state_dict())
    assert result == ([], []) and result.missing_keys == [] and result.unexpected_keys == []
    assert repr(result) == "<All keys matched successfully>"
    sd = {"0.weight": np.ones((2, 2), np.float32), "extra": np.zeros(1), "more": np.zeros(2)}
    missing, unexpected = m.load_state_dict(sd, strict=False)
    assert missing == ["0.bias", "1.weight", "1.bias"] and unexpected == ["extra", "more"]
    result = m.load_state_dict(sd, strict=False)
    assert result.missing_keys == missing and result.unexpected_keys == unexpected
    assert repr(result).startswith("IncompatibleKeys(missing_keys=['0.bias'")
    assert np.all(m[0].weight.data == 1)


def test_load_state_dict_between_forward_and_backward_is_refused():
    # backward used to run with the loaded weight in place of the one the forward saw
    m = nn.Dense(2, 1)
    x = Tensor([[1.0, 2.0]], requires_grad=True)
    sd = {"weight": np.array([[10.0, 10.0]], np.float32), "bias": np.zeros(1, np.float32)}
    out = m(x)
    m.load_state_dict(sd)
    with pytest.raises(RuntimeError, match=r"modified in place by load_state_dict\(\)"):
        out.sum().backward()
    m(x).sum().backward()  # a forward after the load is fine
    np.testing.assert_array_equal(x.grad, [[10.0, 10.0]])
    # a load that writes nothing (strict=False, no matching key) stamps nothing
    out = m(x)
    m.load_state_dict({"other": np.zeros(1)}, strict=False)
    out.sum().backward()


@pytest.mark.parametrize(
    "name, args",
    [
        ("normal_", ()),
        ("uniform_", ()),
        ("zeros_", ()),
        ("ones_", ()),
        ("constant_", (0.5,)),
        ("xavier_uniform_", ()),
        ("xavier_normal_", ()),
        ("kaiming_uniform_", ()),
        ("kaiming_normal_", ()),
    ],
)
def test_init_between_forward_and_backward_is_refused(name, args):
    m = nn.Dense(2, 2)
    x = Tensor(np.ones((1, 2), np.float32), requires_grad=True)
    out = m(x)
    getattr(nn.init, name)(m.weight, *args)
    with pytest.raises(RuntimeError, match=rf"modified in place by nn\.init\.{name}\(\)"):
        out.sum().backward()
    m(x).sum().backward()  # initialised before the forward: fine
    assert x.grad is not None


# ---------------------------------------------------------------- Dense


def test_dense_matches_formula_and_layout():
    d = nn.Dense(3, 2)
    x = np.random.default_rng(0).standard_normal((4, 3)).astype(np.float32)
    np.testing.assert_allclose(d(x).data, x @ d.weight.data.T + d.bias.data, rtol=1e-6)
    assert d(x).dtype == np.float32


def test_dense_default_init_bounds():
    tg.manual_seed(0)
    d = nn.Dense(100, 50)
    assert np.abs(d.weight.data).max() <= 0.1 and np.abs(d.bias.data).max() <= 0.1
    assert d.weight.data.std() > 0.05


def test_dense_wrong_width_names_layer_and_shapes():
    d = nn.Dense(784, 30)
    with pytest.raises(ValueError, match=r"Dense 784→30.*784.*\(10, 20\).*\(30, 784\)"):
        d(np.zeros((10, 20), np.float32))


@given(st.integers(1, 3), st.integers(1, 4), st.integers(1, 3), st.booleans())
def test_dense_gradcheck(n, fin, fout, bias):
    d = nn.Dense(fin, fout, bias=bias, dtype=np.float64)
    x = t64(np.random.default_rng(n).standard_normal((n, fin)))
    params = [d.weight] + ([d.bias] if bias else [])

    def f(x, w, *b):
        return F.linear(x, w, *b)

    assert gradcheck(f, x, *params)


def test_dense_on_3d_input_gradcheck():
    d = nn.Dense(3, 2, dtype=np.float64)
    x = t64(np.random.default_rng(0).standard_normal((2, 4, 3)))
    assert gradcheck(lambda x, w, b: F.linear(x, w, b), x, d.weight, d.bias)


# ---------------------------------------------------------------- activations


@pytest.mark.parametrize(
    "module, fn",
    [
        (nn.Sigmoid(), lambda a: 1 / (1 + np.exp(-a))),
        (nn.ReLU(), lambda a: np.maximum(a, 0)),
        (nn.Tanh(), np.tanh),
        (nn.Identity(), lambda a: a),
        (nn.Step(), lambda a: (a > 0).astype(a.dtype)),
        (nn.Softmax(), lambda a: np.exp(a) / np.exp(a).sum(-1, keepdims=True)),
        (nn.LogSoftmax(), lambda a: a - np.log(np.exp(a).sum(-1, keepdims=True))),
    ],
)
def test_activation_modules(module, fn):
    a = np.random.default_rng(0).standard_normal((3, 4))
    np.testing.assert_allclose(module(t64(a)).data, fn(a), rtol=1e-12, atol=1e-12)
    if not isinstance(module, nn.Step):
        a = a + np.sign(a) * 0.05  # keep away from relu's kink
        assert gradcheck(module, t64(a))


@pytest.mark.parametrize(
    "module",
    [
        nn.Sigmoid(),
        nn.ReLU(),
        nn.Tanh(),
        nn.Step(),
        nn.Softmax(),
        nn.LogSoftmax(),
        nn.Flatten(),
        nn.Dropout(0.5),
        nn.Dropout(0.5).eval(),
    ],
)
def test_activations_and_dropout_take_a_list_or_array_as_dense_does(module):
    # a list used to raise AttributeError ('list' object has no attribute 'relu')
    rows = [[0.5, -1.0, 2.0], [1.5, 0.25, -3.0]]
    tg.manual_seed(0)
    from_list = module(rows)
    tg.manual_seed(0)
    from_tensor = module(Tensor(np.array(rows, np.float32)))
    assert isinstance(from_list, Tensor) and from_list.dtype == np.float32
    np.testing.assert_array_equal(from_list.data, from_tensor.data)
    tg.manual_seed(0)
    np.testing.assert_array_equal(module(np.array(rows, np.float32)).data, from_tensor.data)
    with pytest.raises(TypeError):
        module("not numbers")


# ---------------------------------------------------------------- losses


def rng_arrays(seed, *shapes):
    r = np.random.default_rng(seed)
    return [r.standard_normal(s) for s in shapes]


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_mse_loss_definition_and_grad(reduction):
    a, y = rng_arrays(0, (4, 3), (4, 3))
    out = F.mse_loss(t64(a), y, reduction=reduction)
    sq = (a - y) ** 2
    expect = {"mean": sq.mean(), "sum": sq.sum(), "none": sq}[reduction]
    np.testing.assert_allclose(out.data, expect, rtol=1e-12)
    assert gradcheck(lambda a, y: F.mse_loss(a, y, reduction=reduction), t64(a), t64(y))


def test_nielsen_quadratic_cost():
    a, y = rng_arrays(1, (5, 10), (5, 10))
    c = F.mse_loss(t64(a), y, reduction="sum") / (2 * 5)
    np.testing.assert_allclose(c.item(), np.sum(np.linalg.norm(y - a, axis=1) ** 2) / 10)


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_bce(reduction):
    r = np.random.default_rng(2)
    p = r.uniform(0.05, 0.95, (6,))
    y = r.uniform(0, 1, (6,))
    out = F.binary_cross_entropy(t64(p), y, reduction=reduction)
    el = -(y * np.log(p) + (1 - y) * np.log(1 - p))
    np.testing.assert_allclose(
        out.data, {"mean": el.mean(), "sum": el.sum(), "none": el}[reduction]
    )
    assert gradcheck(lambda p, y: F.binary_cross_entropy(p, y, reduction=reduction), t64(p), t64(y))


def test_bce_never_takes_log_of_zero():
    with np.errstate(all="raise"):
        out = F.binary_cross_entropy(t64([0.0, 1.0]), np.array([1.0, 0.0]))
    assert np.isfinite(out.item()) and out.item() == pytest.approx(100.0)


def test_bce_rejects_non_probabilities():
    with pytest.raises(ValueError, match="probabilities in \\[0, 1\\].*with_logits"):
        F.binary_cross_entropy(t64([1.5]), np.array([1.0]))


def test_bce_with_logits_stable_for_huge_logits():
    z = t64([1e4, -1e4, 0.0])
    y = np.array([0.0, 1.0, 1.0])
    with np.errstate(all="raise"):
        out = F.binary_cross_entropy_with_logits(z, y, reduction="none")
        out.sum().backward()
    np.testing.assert_allclose(out.data, [1e4, 1e4, np.log(2)])
    np.testing.assert_allclose(z.grad, [1.0, -1.0, -0.5])


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_bce_with_logits_grad(reduction):
    z, y = rng_arrays(3, (3, 2), (3, 2))
    y = (y > 0).astype(float)
    f = lambda z, y: F.binary_cross_entropy_with_logits(z, y, reduction=reduction)  # noqa: E731
    ref = np.maximum(z, 0) - z * y + np.log1p(np.exp(-np.abs(z)))
    np.testing.assert_allclose(
        f(t64(z), y).data, {"mean": ref.mean(), "sum": ref.sum(), "none": ref}[reduction]
    )
    assert gradcheck(f, t64(z), t64(y))


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_cross_entropy_indices_and_probabilities(reduction):
    (z,) = rng_arrays(4, (5, 4))
    labels = np.array([0, 3, 1, 1, 2])
    logp = z - np.log(np.exp(z).sum(1, keepdims=True))
    el = -logp[np.arange(5), labels]
    expect = {"mean": el.mean(), "sum": el.sum(), "none": el}[reduction]
    np.testing.assert_allclose(F.cross_entropy(t64(z), labels, reduction).data, expect)
    onehot = np.eye(4)[labels]
    np.testing.assert_allclose(F.cross_entropy(t64(z), onehot, reduction).data, expect)
    assert gradcheck(lambda z: F.cross_entropy(z, labels, reduction), t64(z))
    probs = np.random.default_rng(5).dirichlet(np.ones(4), 5)
    assert gradcheck(lambda z: F.cross_entropy(z, probs, reduction), t64(z))


def test_cross_entropy_fused_gradient_is_p_minus_y_over_n():
    (z,) = rng_arrays(6, (3, 4))
    labels = np.array([2, 0, 3])
    zt = t64(z)
    F.cross_entropy(zt, labels).backward()
    p = np.exp(z) / np.exp(z).sum(1, keepdims=True)
    np.testing.assert_allclose(zt.grad, (p - np.eye(4)[labels]) / 3)


def test_cross_entropy_finite_for_extreme_logits():
    z = t64([[1000.0, -1000.0, 0.0]])
    out = F.cross_entropy(z, np.array([1]))
    assert np.isfinite(out.item()) and out.item() == pytest.approx(2000.0)


def test_cross_entropy_errors():
    z = t64(np.zeros((2, 3)))
    with pytest.raises(ValueError, match="class index 3 is out of range for 3 classes"):
        F.cross_entropy(z, np.array([0, 3]))
    with pytest.raises(ValueError, match="class index -1"):
        F.cross_entropy(z, np.array([-1, 0]))
    with pytest.raises(ValueError, match=r"shape \(2,\).*got \(3,\)"):
        F.cross_entropy(z, np.array([0, 1, 2]))
    with pytest.raises(ValueError, match="reduction must be one of"):
        F.cross_entropy(z, np.array([0, 1]), reduction="avg")


def test_nll_loss_matches_cross_entropy():
    (z,) = rng_arrays(7, (4, 3))
    labels = np.array([2, 0, 1, 1])
    zt = t64(z)
    a = F.nll_loss(F.log_softmax(zt), labels)
    b = F.cross_entropy(t64(z), labels)
    np.testing.assert_allclose(a.data, b.data)
    assert gradcheck(lambda z: F.nll_loss(F.log_softmax(z), labels), t64(z))


def test_loss_shape_mismatch_is_clear():
    with pytest.raises(
        ValueError, match=r"mse_loss: input and target shapes differ: \(4, 1\) vs \(4,\)"
    ):
        F.mse_loss(t64(np.zeros((4, 1))), np.zeros(4))


def test_loss_modules_call_functions():
    (z,) = rng_arrays(8, (4, 3))
    labels = np.array([0, 1, 2, 0])
    assert nn.CrossEntropyLoss()(t64(z), labels).item() == pytest.approx(
        F.cross_entropy(t64(z), labels).item()
    )
    assert nn.MSELoss(reduction="sum")(t64(z), z * 0).item() == pytest.approx((z**2).sum())
    with pytest.raises(ValueError, match="MSELoss: reduction"):
        nn.MSELoss(reduction="bad")


def test_one_hot():
    assert np.array_equal(F.one_hot([2, 0], 3), [[0, 0, 1], [1, 0, 0]])
    with pytest.raises(ValueError, match="out of range"):
        F.one_hot([3], 3)


# ---------------------------------------------------------------- init and seeds


def test_initialisers_statistics():
    tg.manual_seed(0)
    w = nn.Parameter(np.zeros((400, 300), np.float32))
    nn.init.normal_(w)
    assert abs(w.data.mean()) < 0.01 and abs(w.data.std() - 1) < 0.01
    nn.init.xavier_uniform_(w)
    a = np.sqrt(6 / 700)
    assert np.abs(w.data).max() <= a and abs(w.data.std() - a / np.sqrt(3)) < 0.005
    nn.init.xavier_normal_(w)
    assert abs(w.data.std() - np.sqrt(2 / 700)) < 0.005
    nn.init.kaiming_normal_(w, nonlinearity="relu")
    assert abs(w.data.std() - np.sqrt(2 / 300)) < 0.005
    nn.init.kaiming_uniform_(w, nonlinearity="relu")
    assert np.abs(w.data).max() <= np.sqrt(6 / 300)
    nn.init.zeros_(w)
    assert not w.data.any()
    assert w.dtype == np.float32


def test_init_refuses_arrays_integer_tensors_and_impossible_arguments():
    with pytest.raises(
        TypeError, match=r"nn.init.normal_: expected a Tensor or Parameter .* ndarray"
    ):
        nn.init.normal_(np.zeros(3))
    with pytest.raises(TypeError, match=r"nn.init.xavier_uniform_: expected a Tensor .* list"):
        nn.init.xavier_uniform_([[0.0, 0.0]])
    ints = Tensor(np.zeros((2, 3), np.int64))
    for name in ("normal_", "uniform_", "zeros_", "ones_", "xavier_normal_", "kaiming_uniform_"):
        with pytest.raises(
            TypeError, match=rf"nn.init.{name}: expected a float tensor, got dtype int64"
        ):
            getattr(nn.init, name)(ints)
    assert not ints.data.any()
    w = nn.Parameter(np.zeros((2, 3), np.float32))
    with pytest.raises(ValueError, match=r"nn.init.uniform_: a must be <= b .* got a=1.0, b=0.0"):
        nn.init.uniform_(w, 1, 0)
    with pytest.raises(ValueError, match=r"nn.init.normal_: std must be >= 0, got -1.0"):
        nn.init.normal_(w, 0.0, -1)
    with pytest.raises(ValueError, match=r"nn.init.normal_: mean must be finite, got nan"):
        nn.init.normal_(w, float("nan"))
    with pytest.raises(TypeError, match=r"nn.init.uniform_: b must be a number, got str"):
        nn.init.uniform_(w, 0, "1")
    with pytest.raises(ValueError, match=r"nn.init.xavier_normal_: gain must be >= 0"):
        nn.init.xavier_normal_(w, gain=-1.0)
    with pytest.raises(ValueError, match=r"nn.init.kaiming_normal_: fan in and fan out need"):
        nn.init.kaiming_normal_(nn.Parameter(np.zeros(3, np.float32)))
    with pytest.raises(TypeError, match=r"nn.init.constant_: value must be a number, got str"):
        nn.init.constant_(w, "2")
    assert not w.data.any()  # nothing was written
    # an empty weight has no fan to divide by: nothing to fill, as in PyTorch
    empty = nn.Parameter(np.zeros((0, 3), np.float32))
    assert nn.init.kaiming_uniform_(empty, mode="fan_out") is empty
    assert nn.init.xavier_normal_(nn.Parameter(np.zeros((0, 0), np.float32))).shape == (0, 0)
    # a numpy array is filled through a Tensor that shares its memory, as the message says
    a = np.zeros(3)
    nn.init.ones_(Tensor(a, dtype=a.dtype))
    assert np.all(a == 1)


def test_same_seed_same_run():
    def run():
        tg.manual_seed(123)
        m = nn.Sequential(nn.Dense(4, 8), nn.ReLU(), nn.Dense(8, 3))
        x = tg.randn(16, 4)
        y = np.arange(16) % 3
        for _ in range(5):
            loss = F.cross_entropy(m(x), y)
            m.zero_grad()
            loss.backward()
            for p in m.parameters():
                p.data -= 0.1 * p.grad
        return [p.data.copy() for p in m.parameters()]

    a, b = run(), run()
    assert all(np.array_equal(u, v) for u, v in zip(a, b))


def test_xor_2_2_1_sigmoid_learns():
    tg.manual_seed(0)
    x = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], np.float32)
    y = np.array([[0], [1], [1], [0]], np.float32)
    m = nn.Sequential(nn.Dense(2, 2), nn.Sigmoid(), nn.Dense(2, 1), nn.Sigmoid())
    for p in m.parameters():
        nn.init.normal_(p)
    for _ in range(4000):
        loss = F.mse_loss(m(x), y)
        m.zero_grad()
        loss.backward()
        for p in m.parameters():
            p.data -= 2.0 * p.grad
    pred = (m(x).data > 0.5).astype(np.float32)
    assert np.array_equal(pred, y), m(x).data


def test_quadratic_cost_is_nielsens_c_and_fused():
    a, y = rng_arrays(9, (5, 10), (5, 10))
    c = F.quadratic_cost(t64(a), y)
    ref = F.mse_loss(t64(a), y, reduction="sum") / (2 * 5)
    np.testing.assert_allclose(c.item(), ref.item(), rtol=1e-12)
    assert c.grad_fn.name == "MSE" and c.grad_fn.inputs[0].grad_fn is None  # one node
    assert gradcheck(F.quadratic_cost, t64(a), t64(y))
    at = t64(a)
    F.quadratic_cost(at, y).backward()
    np.testing.assert_allclose(at.grad, (a - y) / 5)


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_cross_entropy_is_differentiable_in_a_probability_target(reduction):
    (z,) = rng_arrays(10, (3, 4))
    probs = np.random.default_rng(11).dirichlet(np.ones(4), 3)
    assert gradcheck(lambda z, y: F.cross_entropy(z, y, reduction), t64(z), t64(probs))
