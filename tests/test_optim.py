"""Optimizers and schedules against their published update rules, and exact resumption."""

import copy
import math
import tracemalloc

import numpy as np
import pytest

from tinygrad_nn import io, optim
from tinygrad_nn.nn.module import Module, Parameter
from tinygrad_nn.optim import lr_scheduler
from tinygrad_nn.tensor import Tensor


def param(*values, dtype=np.float64):
    return Parameter(np.array(values, dtype=dtype), dtype=dtype)


def run(opt_cls, grads, w0=1.0, **kw):
    """Step a one-element parameter through ``grads`` (fixed, not depending on w); the path."""
    p = param(w0)
    opt = opt_cls([p], **kw)
    path = []
    for g in grads:
        p.grad = np.array([g])
        opt.step()
        path.append(float(p.data[0]))
    return path


# ------------------------------------------------------------------ reference rules, as published
def sgd_reference(
    grads, w, lr, momentum=0.0, dampening=0.0, nesterov=False, weight_decay=0.0, maximize=False
):
    """PyTorch's SGD pseudo-code, one float at a time."""
    b, path = None, []
    for g in grads:
        g = -g if maximize else g
        g = g + weight_decay * w
        if momentum:
            b = g if b is None else momentum * b + (1 - dampening) * g
            g = g + momentum * b if nesterov else b
        w = w - lr * g
        path.append(w)
    return path


def adam_reference(
    grads,
    w,
    lr=1e-3,
    betas=(0.9, 0.999),
    eps=1e-8,
    weight_decay=0.0,
    amsgrad=False,
    decoupled=False,
):
    """PyTorch's Adam / AdamW pseudo-code, one float at a time."""
    b1, b2 = betas
    m = v = vmax = 0.0
    path = []
    for t, g in enumerate(grads, start=1):
        if decoupled:
            w = w * (1 - lr * weight_decay)
        else:
            g = g + weight_decay * w
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        if amsgrad:
            vmax = max(vmax, v)
            v_hat = vmax / (1 - b2**t)
        else:
            v_hat = v / (1 - b2**t)
        m_hat = m / (1 - b1**t)
        w = w - lr * m_hat / (math.sqrt(v_hat) + eps)
        path.append(w)
    return path


# ------------------------------------------------------------------ SGD
def test_sgd_plain_is_gradient_descent():
    p = param(1.0, -2.0)
    p.grad = np.array([0.5, 0.25])
    optim.SGD([p], lr=0.1).step()
    np.testing.assert_allclose(p.data, [0.95, -2.025], rtol=0, atol=1e-15)


def test_sgd_momentum_by_hand():
    # b1 = 1, w = 0.9; b2 = 0.9·1 + 2 = 2.9, w = 0.61; b3 = 0.9·2.9 + 3 = 5.61, w = 0.049
    path = run(optim.SGD, [1.0, 2.0, 3.0], lr=0.1, momentum=0.9)
    np.testing.assert_allclose(path, [0.9, 0.61, 0.049], rtol=1e-14)


def test_sgd_dampening_by_hand():
    # the first step is not dampened: b1 = 1; then b2 = 0.9 + 0.5·2 = 1.9, b3 = 1.71 + 1.5 = 3.21
    path = run(optim.SGD, [1.0, 2.0, 3.0], lr=0.1, momentum=0.9, dampening=0.5)
    np.testing.assert_allclose(path, [0.9, 0.71, 0.389], rtol=1e-14)


def test_sgd_nesterov_by_hand():
    # g + μb: 1 + 0.9 = 1.9; 2 + 0.9·2.9 = 4.61; 3 + 0.9·5.61 = 8.049
    path = run(optim.SGD, [1.0, 2.0, 3.0], lr=0.1, momentum=0.9, nesterov=True)
    np.testing.assert_allclose(path, [0.81, 0.349, -0.4559], rtol=1e-13)


def test_sgd_weight_decay_is_l2_added_to_the_gradient():
    # g = 1 + 0.1·1 = 1.1 → w = 0.89; g = 2 + 0.1·0.89 = 2.089 → w = 0.6811
    path = run(optim.SGD, [1.0, 2.0], lr=0.1, weight_decay=0.1)
    np.testing.assert_allclose(path, [0.89, 0.6811], rtol=1e-14)


def test_sgd_maximize_climbs():
    assert run(optim.SGD, [1.0], lr=0.1, maximize=True) == pytest.approx([1.1], rel=1e-15)


@pytest.mark.parametrize(
    "kw",
    [
        dict(lr=0.05, momentum=0.5),
        dict(lr=0.05, momentum=0.9, dampening=0.2, weight_decay=0.01),
        dict(lr=0.05, momentum=0.9, nesterov=True, weight_decay=0.01),
        dict(lr=0.05, momentum=0.7, nesterov=True, maximize=True),
        dict(lr=0.05, weight_decay=0.3, maximize=True),
    ],
)
def test_sgd_matches_the_published_rule(kw):
    grads = [0.3, -1.2, 0.7, 2.5, -0.1]
    np.testing.assert_allclose(
        run(optim.SGD, grads, **kw), sgd_reference(grads, 1.0, **kw), rtol=1e-14
    )


# ------------------------------------------------------------------ Adam / AdamW
def test_adam_first_step_moves_by_lr_whatever_the_gradient_scale():
    # m̂ = g and v̂ = g² after bias correction, so the step is lr·g/(|g| + ε)
    for g in (1.0, 1e-3, -250.0):
        (w,) = run(optim.Adam, [g], lr=0.1)
        assert w == pytest.approx(1.0 - 0.1 * g / (abs(g) + 1e-8), rel=1e-15)


def test_adam_bias_correction_over_three_steps():
    grads = [1.0, 2.0, 3.0]
    b1, b2, lr = 0.9, 0.999, 0.1
    m1, v1 = 0.1, 0.001
    m2, v2 = b1 * m1 + 0.2, b2 * v1 + (1 - b2) * 4
    m3, v3 = b1 * m2 + 0.3, b2 * v2 + (1 - b2) * 9
    w1 = 1 - lr * (m1 / 0.1) / (math.sqrt(v1 / 0.001) + 1e-8)
    w2 = w1 - lr * (m2 / (1 - b1**2)) / (math.sqrt(v2 / (1 - b2**2)) + 1e-8)
    w3 = w2 - lr * (m3 / (1 - b1**3)) / (math.sqrt(v3 / (1 - b2**3)) + 1e-8)
    np.testing.assert_allclose(run(optim.Adam, grads, lr=lr), [w1, w2, w3], rtol=1e-14)
    # corrected, the first step is lr; uncorrected it would be lr·(1 - β1)/√(1 - β2) ≈ 3.16·lr
    assert 1 - w1 == pytest.approx(lr)


def test_adamw_decays_before_the_step_and_apart_from_the_gradient():
    # w·(1 - lr·λ) = 0.99, then the Adam step of size lr: 0.99 - 0.1/(1 + 1e-8)
    (w,) = run(optim.AdamW, [1.0], lr=0.1, weight_decay=0.1)
    assert w == pytest.approx(0.99 - 0.1 / (1 + 1e-8), rel=1e-15)
    # with a zero gradient AdamW still shrinks the weight; Adam's L2 term would move it by lr
    (w,) = run(optim.AdamW, [0.0], lr=0.1, weight_decay=0.1)
    assert w == 0.99
    (w,) = run(optim.Adam, [0.0], lr=0.1, weight_decay=0.1)
    assert w == pytest.approx(0.9, rel=1e-7)


def test_amsgrad_uses_the_running_max_of_v():
    grads = [3.0, 0.1, 0.1, 0.1]
    kw = dict(lr=0.1, betas=(0.9, 0.5))  # a short memory, so v falls after the big gradient
    ams = run(optim.Adam, grads, amsgrad=True, **kw)
    np.testing.assert_allclose(ams, adam_reference(grads, 1.0, amsgrad=True, **kw), rtol=1e-14)
    plain = run(optim.Adam, grads, **kw)
    # v shrinks after the big gradient; amsgrad keeps the max, so its later steps are smaller
    assert abs(ams[3] - ams[2]) < abs(plain[3] - plain[2])


@pytest.mark.parametrize(
    "cls, kw",
    [
        (optim.Adam, dict(lr=0.01)),
        (optim.Adam, dict(lr=0.01, betas=(0.5, 0.8), eps=1e-3, weight_decay=0.1)),
        (optim.Adam, dict(lr=0.01, weight_decay=0.1, amsgrad=True)),
        (optim.AdamW, dict(lr=0.01)),
        (optim.AdamW, dict(lr=0.05, weight_decay=0.3, amsgrad=True)),
    ],
)
def test_adam_matches_the_published_rule(cls, kw):
    grads = [0.3, -1.2, 0.7, 2.5, -0.1, 0.0]
    decoupled = cls is optim.AdamW
    ref_kw = dict(kw)
    ref_kw.setdefault("weight_decay", 1e-2 if decoupled else 0.0)
    np.testing.assert_allclose(
        run(cls, grads, **kw), adam_reference(grads, 1.0, decoupled=decoupled, **ref_kw), rtol=1e-14
    )


def test_adam_maximize_is_adam_on_the_negated_gradient():
    assert run(optim.Adam, [0.5, -1.0], lr=0.1, maximize=True) == run(
        optim.Adam, [-0.5, 1.0], lr=0.1
    )


# ------------------------------------------------------------------ mechanics
def test_updates_are_in_place_outside_the_graph_and_keep_float32():
    for cls, kw in [
        (optim.SGD, dict(lr=0.1, momentum=0.9, nesterov=True, weight_decay=0.1)),
        (optim.Adam, dict(weight_decay=0.1, amsgrad=True)),
        (optim.AdamW, {}),
    ]:
        p = Parameter(np.ones((3, 2), np.float32))
        data = p.data
        opt = cls([p], **kw)
        for _ in range(2):
            p.grad = np.full((3, 2), 0.5, np.float32)
            opt.step()
        assert p.data is data and p.dtype == np.float32 and p.is_leaf
        assert all(v.dtype == np.float32 for v in opt.state[p].values() if hasattr(v, "dtype"))


def test_zero_grad_and_parameters_without_grad_are_skipped():
    a, b = param(1.0), param(2.0)
    opt = optim.Adam([a, b], lr=0.1)
    a.grad = np.array([1.0])
    opt.step()
    assert b.data[0] == 2.0 and b not in opt.state and a in opt.state
    opt.zero_grad()
    assert a.grad is None and b.grad is None


def test_step_with_closure_returns_the_loss():
    w = param(3.0)
    opt = optim.SGD([w], lr=0.25)

    def closure():
        opt.zero_grad()
        loss = (w * w).sum()
        loss.backward()
        return loss

    loss = opt.step(closure)
    assert float(loss.data) == 9.0 and w.data[0] == 3.0 - 0.25 * 6.0


def test_param_groups_have_their_own_options():
    a, b, c = param(1.0), param(1.0), param(1.0)
    opt = optim.SGD([{"params": [a]}, {"params": b, "lr": 0.5, "momentum": 0.9}], lr=0.1)
    assert opt.param_groups[0]["lr"] == 0.1 and opt.param_groups[1]["momentum"] == 0.9
    opt.add_param_group({"params": [c], "lr": 1.0})
    for p in (a, b, c):
        p.grad = np.array([1.0])
    opt.step()
    assert (a.data[0], b.data[0], c.data[0]) == (0.9, 0.5, 0.0)
    with pytest.raises(
        ValueError, match="param group 3, parameter 0 appears also in param group 1"
    ):
        opt.add_param_group({"params": [b]})


def test_plain_sgd_keeps_no_scratch_and_its_temporary_is_freed_at_once():
    n = 250_000  # 1 MB in float32
    p = Parameter(np.ones(n, np.float32))
    p.grad = np.full(n, 0.5, np.float32)
    opt = optim.SGD([p], lr=0.1)
    tracemalloc.start()
    for _ in range(3):
        opt.step()
    current, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert current < 100_000 and peak < 1_100_000, (current, peak)  # one γg at a time
    np.testing.assert_allclose(p.data, 1 - 3 * 0.05, rtol=1e-6)


def test_step_does_not_allocate_arrays_once_warm():
    n = 250_000  # 1 MB in float32
    for cls, kw in [
        (optim.SGD, dict(lr=0.1, momentum=0.9, nesterov=True, weight_decay=0.1)),
        (optim.Adam, dict(weight_decay=0.1, amsgrad=True)),
        (optim.AdamW, dict(maximize=True)),
    ]:
        p = Parameter(np.ones(n, np.float32))
        p.grad = np.full(n, 0.5, np.float32)
        opt = cls([p], **kw)
        opt.step()
        tracemalloc.start()
        for _ in range(3):
            opt.step()
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        assert peak < 100_000, (cls.__name__, kw, peak)


# ------------------------------------------------------------------ errors
@pytest.mark.parametrize(
    "make, exc, message",
    [
        (lambda p: optim.SGD([p], lr=float("nan")), ValueError, r"invalid lr=nan"),
        (lambda p: optim.SGD([p], lr=-0.1), ValueError, r"SGD: invalid lr=-0.1; .* >= 0"),
        (lambda p: optim.Adam([p], lr=float("inf")), ValueError, r"Adam: invalid lr=inf"),
        (lambda p: optim.SGD([p], lr="0.1"), TypeError, r"lr must be a number, got '0.1'"),
        (lambda p: optim.SGD([p], lr=0.1, momentum=-0.5), ValueError, r"invalid momentum=-0.5"),
        (
            lambda p: optim.SGD([p], lr=0.1, weight_decay=float("nan")),
            ValueError,
            r"invalid weight_decay=nan",
        ),
        (
            lambda p: optim.SGD([p], lr=0.1, nesterov=True),
            ValueError,
            r"nesterov=True needs momentum > 0 and dampening = 0",
        ),
        (
            lambda p: optim.SGD([p], lr=0.1, momentum=0.9, dampening=0.1, nesterov=True),
            ValueError,
            r"dampening=0.1",
        ),
        (lambda p: optim.Adam([p], betas=(0.9, 1.0)), ValueError, r"invalid betas\[1\]=1.0"),
        (lambda p: optim.Adam([p], betas=(-0.1, 0.9)), ValueError, r"invalid betas\[0\]=-0.1"),
        (lambda p: optim.Adam([p], betas=0.9), TypeError, r"betas must be a pair"),
        (lambda p: optim.AdamW([p], eps=-1e-8), ValueError, r"AdamW: invalid eps=-1e-08"),
        (lambda p: optim.Adam([p], amsgrad="yes"), TypeError, r"amsgrad must be True or False"),
        (lambda p: optim.SGD([{"params": [p], "lr": -1}], lr=0.1), ValueError, r"invalid lr=-1"),
        (
            lambda p: optim.SGD([{"params": [p]}, {"params": [param(1.0)], "lr": -2}], lr=0.1),
            ValueError,
            r"SGD \(param group 1\): invalid lr=-2",
        ),
        (lambda p: optim.SGD([], lr=0.1), ValueError, r"empty parameter list"),
        (lambda p: optim.SGD(iter(()), lr=0.1), ValueError, r"empty parameter list"),
        (
            lambda p: optim.SGD([{"params": []}], lr=0.1),
            ValueError,
            r"param group 0 has an empty parameter list",
        ),
        (lambda p: optim.SGD([{"lr": 0.1}], lr=0.1), ValueError, r"has no 'params' entry"),
        (
            lambda p: optim.SGD([p.data], lr=0.1),
            TypeError,
            r"param group 0, parameter 0 is a ndarray, not a Parameter",
        ),
        (lambda p: optim.SGD([Tensor(np.arange(3))], lr=0.1), TypeError, r"dtype int64"),
        (lambda p: optim.SGD([p * 2], lr=0.1), ValueError, r"not a leaf"),
        (lambda p: optim.SGD([p, p], lr=0.1), ValueError, r"parameter 1 appears twice"),
        (
            lambda p: optim.SGD([{"params": [p]}, {"params": [p]}], lr=0.1),
            ValueError,
            r"param group 1, parameter 0 appears also in param group 0",
        ),
        (lambda p: optim.SGD(p, lr=0.1), TypeError, r"got a single Tensor; wrap it in a list"),
        (lambda p: optim.SGD(Module(), lr=0.1), TypeError, r"pass its parameters"),
        (lambda p: optim.SGD([{"params": [p]}, p], lr=0.1), TypeError, r"mixes param-group"),
        (lambda p: optim.SGD(3, lr=0.1), TypeError, r"got int"),
    ],
)
def test_construction_errors_are_clear(make, exc, message):
    with pytest.raises(exc, match=message):
        make(param(1.0, 2.0))


def test_grad_of_the_wrong_shape_is_refused():
    p = param(1.0, 2.0)
    p.grad = np.ones(1)
    with pytest.raises(ValueError, match=r"shape \(2,\) has a gradient of shape \(1,\)"):
        optim.SGD([p], lr=0.1).step()


# ------------------------------------------------------------------ schedules
def sgd_for_schedule(lr=1.0, groups=1):
    return optim.SGD([{"params": [param(0.0)], "lr": lr * (i + 1)} for i in range(groups)], lr=lr)


def lrs(sched, n):
    out = [sched.get_last_lr()]
    for _ in range(n):
        sched.optimizer.step()
        sched.step()
        out.append(sched.get_last_lr())
    return out


def test_step_lr_sequence():
    sched = lr_scheduler.StepLR(sgd_for_schedule(0.1), step_size=2, gamma=0.5)
    expected = [0.1, 0.1, 0.05, 0.05, 0.025, 0.025, 0.0125]
    np.testing.assert_allclose([x[0] for x in lrs(sched, 6)], expected, rtol=1e-15)
    assert sched.optimizer.param_groups[0]["lr"] == sched.get_last_lr()[0]


def test_cosine_annealing_sequence_and_groups():
    opt = sgd_for_schedule(1.0, groups=2)
    sched = optim.CosineAnnealingLR(opt, T_max=4, eta_min=0.1)
    got = np.array(lrs(sched, 8))
    for e in range(9):
        for base, row in zip((1.0, 2.0), got[e]):
            assert row == pytest.approx(0.1 + (base - 0.1) * (1 + math.cos(math.pi * e / 4)) / 2)
    assert got[4, 0] == pytest.approx(0.1) and got[2, 1] == pytest.approx(1.05)
    assert got[8, 0] == pytest.approx(1.0)  # past T_max the cosine rises again


def test_exponential_lr_sequence():
    sched = optim.ExponentialLR(sgd_for_schedule(2.0), gamma=0.5)
    assert [x[0] for x in lrs(sched, 3)] == [2.0, 1.0, 0.5, 0.25]


def test_scheduler_state_dict_resumes():
    a = optim.StepLR(sgd_for_schedule(1.0), step_size=3, gamma=0.1)
    lrs(a, 4)
    opt_b = sgd_for_schedule(1.0)
    opt_b.load_state_dict(a.optimizer.state_dict())
    b = optim.StepLR(opt_b, step_size=3, gamma=0.1)
    b.load_state_dict(a.state_dict())
    assert lrs(a, 5) == lrs(b, 5)
    with pytest.raises(ValueError, match="expected the keys"):
        b.load_state_dict({"last_epoch": 3})


SCHEDULES = [
    (lambda o: optim.StepLR(o, step_size=2, gamma=0.5), "StepLR", (2, 0.5)),
    (lambda o: optim.ExponentialLR(o, gamma=0.7), "ExponentialLR", (0.7,)),
    (lambda o: optim.CosineAnnealingLR(o, T_max=4, eta_min=0.01), "CosineAnnealingLR", (4, 0.01)),
]


def group_lrs(opt):
    return [group["lr"] for group in opt.param_groups]


def resume_lrs(make_opt, make_sched, save, load, stop=4, epochs=9):
    """The lrs of each epoch, uninterrupted and resumed at ``stop`` the usual way: the
    optimizer's state loaded, the schedule built, then its state loaded."""
    opt = make_opt()
    sched = make_sched(opt)
    whole = [group_lrs(opt)]
    for epoch in range(1, epochs + 1):
        opt.step()
        sched.step()
        whole.append(group_lrs(opt))
        if epoch == stop:
            save({"optimizer": opt.state_dict(), "scheduler": sched.state_dict()})
    ckpt = load()
    opt2 = make_opt()
    opt2.load_state_dict(ckpt["optimizer"])
    sched2 = make_sched(opt2)
    built = group_lrs(opt2)
    sched2.load_state_dict(ckpt["scheduler"])
    resumed = [group_lrs(opt2)]
    for _ in range(epochs - stop):
        opt2.step()
        sched2.step()
        resumed.append(group_lrs(opt2))
    assert sched2.get_last_lr() == sched.get_last_lr()
    return whole, built, resumed


@pytest.mark.parametrize("make, _name, _args", SCHEDULES)
def test_a_schedule_built_on_a_loaded_optimizer_resumes_its_lrs(tmp_path, make, _name, _args):
    def save(ckpt):
        io.save(ckpt, tmp_path / "ckpt.safetensors")

    def load():
        return io.load(tmp_path / "ckpt.safetensors")

    whole, built, resumed = resume_lrs(lambda: sgd_for_schedule(0.1, groups=2), make, save, load)
    assert built == whole[4]  # building the schedule left the loaded lrs alone
    assert resumed == whole[4:]
    # and a new schedule on a new optimizer starts at exactly the lr it was given
    opt = optim.SGD([param(0.0)], lr=0.3)
    make(opt)
    assert group_lrs(opt) == [0.3]


@pytest.mark.parametrize("make, name, args", SCHEDULES)
def test_a_resumed_schedule_matches_torch(make, name, args):
    torch = pytest.importorskip("torch")

    def torch_opt():
        return torch.optim.SGD(
            [{"params": [torch.zeros(1, requires_grad=True)], "lr": lr} for lr in (0.1, 0.2)]
        )

    box = {}
    theirs = resume_lrs(
        torch_opt,
        lambda o: getattr(torch.optim.lr_scheduler, name)(o, *args),
        lambda ckpt: box.update(ckpt=copy.deepcopy(ckpt)),
        lambda: box["ckpt"],
    )
    ours = resume_lrs(
        lambda: sgd_for_schedule(0.1, groups=2),
        make,
        lambda ckpt: box.update(ours=copy.deepcopy(ckpt)),
        lambda: box["ours"],
    )
    for a, b in zip(ours, theirs):
        np.testing.assert_allclose(np.array(a, float), np.array(b, float), rtol=1e-12)


def test_scheduler_errors():
    with pytest.raises(ValueError, match="step_size must be an int >= 1, got 0"):
        optim.StepLR(sgd_for_schedule(), step_size=0)
    with pytest.raises(ValueError, match="T_max must be an int >= 1, got 2.5"):
        optim.CosineAnnealingLR(sgd_for_schedule(), T_max=2.5)
    with pytest.raises(ValueError, match="invalid gamma=nan"):
        optim.ExponentialLR(sgd_for_schedule(), gamma=float("nan"))
    with pytest.raises(TypeError, match="expected an optimizer"):
        optim.StepLR([param(1.0)], step_size=1)


# ------------------------------------------------------------------ checkpoints and resuming
class TinyNet(Module):
    """2-4-1 sigmoid net from Tensor ops only."""

    def __init__(self, seed):
        super().__init__()
        rng = np.random.default_rng(seed)
        self.w1 = Parameter(rng.standard_normal((2, 4)).astype(np.float32))
        self.b1 = Parameter(rng.standard_normal(4).astype(np.float32))
        self.w2 = Parameter(rng.standard_normal((4, 1)).astype(np.float32))
        self.b2 = Parameter(rng.standard_normal(1).astype(np.float32))

    def forward(self, x):
        return ((x @ self.w1 + self.b1).sigmoid() @ self.w2 + self.b2).sigmoid()


X = Tensor(np.array([[0, 0], [0, 1], [1, 0], [1, 1]], np.float32))
Y = Tensor(np.array([[0], [1], [1], [0]], np.float32))


def train(model, opt, sched, steps):
    for _ in range(steps):
        opt.zero_grad()
        loss = ((model(X) - Y) ** 2).mean()
        loss.backward()
        opt.step()
        if sched is not None:
            sched.step()


@pytest.mark.parametrize(
    "make_opt, make_sched",
    [
        (lambda ps: optim.SGD(ps, lr=0.5, momentum=0.9), None),
        (
            lambda ps: optim.SGD(ps, lr=0.5, momentum=0.9, nesterov=True, weight_decay=1e-3),
            lambda o: optim.StepLR(o, step_size=2, gamma=0.5),
        ),
        (lambda ps: optim.Adam(ps, lr=0.05), None),
        (
            lambda ps: optim.Adam(ps, lr=0.05, amsgrad=True, weight_decay=1e-3),
            lambda o: optim.CosineAnnealingLR(o, T_max=10),
        ),
        (lambda ps: optim.AdamW(ps, lr=0.05), lambda o: optim.ExponentialLR(o, gamma=0.9)),
    ],
)
def test_resuming_from_a_checkpoint_takes_exactly_the_uninterrupted_step(
    tmp_path, make_opt, make_sched
):
    model = TinyNet(0)
    opt = make_opt(model.parameters())
    sched = make_sched(opt) if make_sched else None
    train(model, opt, sched, 5)
    ckpt = {"model": model.state_dict(), "optimizer": opt.state_dict()}
    if sched is not None:
        ckpt["scheduler"] = sched.state_dict()
    io.save(ckpt, tmp_path / "ckpt.safetensors")
    train(model, opt, sched, 3)  # the uninterrupted run

    fresh = TinyNet(1)
    opt2 = make_opt(fresh.parameters())
    sched2 = make_sched(opt2) if make_sched else None
    loaded = io.load(tmp_path / "ckpt.safetensors")
    fresh.load_state_dict(loaded["model"])
    opt2.load_state_dict(loaded["optimizer"])
    if sched2 is not None:
        sched2.load_state_dict(loaded["scheduler"])
    train(fresh, opt2, sched2, 3)
    for (name, a), (_, b) in zip(model.named_parameters(), fresh.named_parameters()):
        assert np.array_equal(a.data, b.data), name
    assert opt.param_groups[0]["lr"] == opt2.param_groups[0]["lr"]


def test_state_dict_copies_and_numbers_parameters():
    a, b = param(1.0), param(1.0, 2.0)
    opt = optim.SGD([{"params": [a]}, {"params": [b], "lr": 0.5}], lr=0.1, momentum=0.9)
    a.grad, b.grad = np.array([1.0]), np.array([1.0, 1.0])
    opt.step()
    sd = opt.state_dict()
    assert [g["params"] for g in sd["param_groups"]] == [[0], [1]]
    assert sd["param_groups"][1]["lr"] == 0.5 and set(sd["state"]) == {0, 1}
    sd["state"][0]["momentum_buffer"][0] = 99.0
    assert opt.state[a]["momentum_buffer"][0] == 1.0


def test_load_state_dict_refuses_a_misfit_and_names_it():
    p, q = param(1.0, 2.0), param(3.0)
    opt = optim.Adam([p, q], lr=0.1)
    p.grad, q.grad = np.ones(2), np.ones(1)
    opt.step()
    sd = opt.state_dict()

    other = optim.Adam([param(1.0, 2.0)], lr=0.1)
    with pytest.raises(
        optim.OptimizerStateError, match=r"param group 0 has 2 parameters in the state dict, 1 here"
    ):
        other.load_state_dict(sd)

    swapped = optim.Adam([param(1.0), param(1.0, 2.0)], lr=0.1)
    with pytest.raises(optim.OptimizerStateError) as e:
        swapped.load_state_dict(sd)
    assert "parameter 0: 'exp_avg' has shape (2,), the parameter has shape (1,)" in str(e.value)
    assert "parameter 1: 'exp_avg_sq' has shape (1,)" in str(e.value)
    assert swapped.state == {}

    sgd = optim.SGD([param(1.0, 2.0), param(3.0)], lr=0.1, momentum=0.9)
    with pytest.raises(
        optim.OptimizerStateError,
        match=r"state of parameter 0: missing 'momentum_buffer'; unexpected "
        r"'exp_avg', 'exp_avg_sq', 'step'",
    ):
        sgd.load_state_dict(sd)

    two_groups = optim.Adam([{"params": [param(1.0, 2.0)]}, {"params": [param(3.0)]}])
    with pytest.raises(optim.OptimizerStateError, match="1 param groups, this optimizer 2"):
        two_groups.load_state_dict(sd)

    bad = opt.state_dict()
    bad["param_groups"][0]["lr"] = float("nan")
    fresh = optim.Adam([param(1.0, 2.0), param(3.0)], lr=0.1)
    with pytest.raises(optim.OptimizerStateError, match=r"param group 0: Adam: invalid lr=nan"):
        fresh.load_state_dict(bad)
    assert fresh.param_groups[0]["lr"] == 0.1

    with pytest.raises(optim.OptimizerStateError, match="expected a dict with 'state'"):
        fresh.load_state_dict({"model": {}})


# (optimizer, its options, the option switched off mid-run and back on, its value when on, the
# state entry only that option uses)
SWITCHED = [
    ("SGD", dict(lr=0.1, momentum=0.9), "momentum", 0.9, "momentum_buffer"),
    ("SGD", dict(lr=0.1, momentum=0.9, weight_decay=0.1), "momentum", 0.9, "momentum_buffer"),
    ("Adam", dict(lr=0.01, amsgrad=True), "amsgrad", True, "max_exp_avg_sq"),
    ("AdamW", dict(lr=0.01, amsgrad=True), "amsgrad", True, "max_exp_avg_sq"),
]
OFF = {"momentum": 0.0, "amsgrad": False}


@pytest.mark.parametrize("name, kw, option, on, key", SWITCHED)
def test_a_state_saved_after_an_option_was_switched_off_loads_keeps_it_and_resumes(
    tmp_path, name, kw, option, on, key
):
    rng = np.random.default_rng(0)
    w0 = rng.standard_normal((2, 3))
    grads = [rng.standard_normal((2, 3)) for _ in range(7)]
    switches = {2: OFF[option], 4: on}  # off before the third step, on again before the fifth

    def steps(opt, ps, start, stop):
        for t in range(start, stop):
            if t in switches:
                opt.param_groups[0][option] = switches[t]
            for j, p in enumerate(ps):  # none for one at step 6: a step per parameter
                p.grad = None if (t, j) == (5, 1) else grads[t].copy()
            opt.step()

    def make():
        ps = [Parameter(w0.copy(), dtype=np.float64) for _ in range(2)]
        return getattr(optim, name)(ps, **kw), ps

    whole, wp = make()
    steps(whole, wp, 0, 3)
    ckpt = {"optimizer": whole.state_dict(), "w": {str(i): p.data for i, p in enumerate(wp)}}
    io.save(ckpt, tmp_path / "ckpt.safetensors")
    steps(whole, wp, 3, 7)

    saved = io.load(tmp_path / "ckpt.safetensors")
    resumed, rp = make()
    for i, p in enumerate(rp):
        p.data[...] = saved["w"][str(i)]
    resumed.load_state_dict(saved["optimizer"])  # raised OptimizerStateError: unexpected entry
    assert resumed.param_groups[0][option] == OFF[option]
    again = resumed.state_dict()  # the entry the options no longer use is kept...
    for i in (0, 1):
        assert set(again["state"][i]) >= {key}
        assert np.array_equal(again["state"][i][key], ckpt["optimizer"]["state"][i][key])
    io.save(again, tmp_path / "again.safetensors")  # ...and round-trips again
    resumed.load_state_dict(io.load(tmp_path / "again.safetensors"))
    steps(resumed, rp, 3, 7)  # switched back on at step 5: the kept entry is used again
    for p, q in zip(rp, wp):
        assert np.array_equal(p.data, q.data)

    torch = pytest.importorskip("torch")
    tp = [torch.tensor(w0.copy(), requires_grad=True) for _ in range(2)]
    topt = getattr(torch.optim, name)(tp, foreach=False, **kw)
    for t in range(7):
        if t in switches:
            topt.param_groups[0][option] = switches[t]
        if t == 3:  # the same checkpoint, through a new optimizer
            sd = copy.deepcopy(topt.state_dict())
            topt = getattr(torch.optim, name)(tp, foreach=False, **kw)
            topt.load_state_dict(sd)
        for j, p in enumerate(tp):
            p.grad = None if (t, j) == (5, 1) else torch.tensor(grads[t].copy())
        topt.step()
    for p, q in zip(rp, tp):
        np.testing.assert_allclose(p.data, q.detach().numpy(), rtol=1e-12, atol=1e-14)


def test_load_state_dict_keeps_refusing_entries_that_are_really_wrong():
    p = param(1.0, 2.0, 3.0)
    sgd = optim.SGD([p], lr=0.1, momentum=0.9)
    p.grad = np.ones(3)
    sgd.step()
    sd = sgd.state_dict()
    sd["param_groups"][0]["momentum"] = 0.0
    sd["state"][0]["momentum_buffer"] = np.zeros(2)  # a kept entry must still fit its parameter
    with pytest.raises(
        optim.OptimizerStateError,
        match=r"state of parameter 0: 'momentum_buffer' has shape \(2,\), the parameter has "
        r"shape \(3,\)",
    ):
        optim.SGD([param(1.0, 2.0, 3.0)], lr=0.1).load_state_dict(sd)
    sd["state"][0] = {"momentum_buffer": np.zeros(3), "max_exp_avg_sq": np.zeros(3)}
    with pytest.raises(
        optim.OptimizerStateError, match=r"parameter 0: unexpected 'max_exp_avg_sq'"
    ):
        optim.SGD([param(1.0, 2.0, 3.0)], lr=0.1).load_state_dict(sd)

    adam = optim.Adam([p], lr=0.1, amsgrad=False)
    adam.step()
    sd = adam.state_dict()
    sd["state"][0]["max_exp_avg_sq"] = np.zeros(3)
    del sd["state"][0]["exp_avg"]  # amsgrad's entry without the moment it goes with
    with pytest.raises(optim.OptimizerStateError, match=r"parameter 0: missing 'exp_avg' \("):
        optim.Adam([param(1.0, 2.0, 3.0)]).load_state_dict(sd)
    sd["state"][0] = {"step": 1, "max_exp_avg_sq": np.zeros(3)}  # never made by any options
    with pytest.raises(optim.OptimizerStateError, match=r"missing 'exp_avg', 'exp_avg_sq' \("):
        optim.Adam([param(1.0, 2.0, 3.0)], amsgrad=True).load_state_dict(sd)


def test_adam_state_saved_after_amsgrad_was_switched_on_resumes():
    # amsgrad switched on after the last step: the state has no max_exp_avg_sq yet, which the
    # next step starts (from zeros) as it does without the checkpoint
    def make():
        p = param(1.0, -2.0)
        return optim.Adam([p], lr=0.1), p

    whole, p = make()
    for g in (1.0, -3.0):
        p.grad = np.array([g, 2 * g])
        whole.step()
    whole.param_groups[0]["amsgrad"] = True
    sd = whole.state_dict()
    resumed, q = make()
    q.data[...] = p.data
    resumed.load_state_dict(sd)
    for g in (0.5, 4.0, -1.0):
        p.grad, q.grad = np.array([g, 2 * g]), np.array([g, 2 * g])
        whole.step()
        resumed.step()
    assert np.array_equal(p.data, q.data)
    assert np.array_equal(resumed.state[q]["max_exp_avg_sq"], whole.state[p]["max_exp_avg_sq"])


# ------------------------------------------------------------------ PyTorch, where installed
def test_matches_torch_optim():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    cases = [
        (optim.SGD, torch.optim.SGD, dict(lr=0.1, momentum=0.9, dampening=0.3, weight_decay=0.1)),
        (
            optim.SGD,
            torch.optim.SGD,
            dict(lr=0.1, momentum=0.9, nesterov=True, maximize=True, weight_decay=0.1),
        ),
        (optim.Adam, torch.optim.Adam, dict(lr=0.01, weight_decay=0.1, amsgrad=True)),
        (optim.Adam, torch.optim.Adam, dict(lr=0.01, betas=(0.5, 0.6), maximize=True)),
        (optim.AdamW, torch.optim.AdamW, dict(lr=0.01, weight_decay=0.3, amsgrad=True)),
    ]
    for ours, theirs, kw in cases:
        w0 = rng.standard_normal((3, 4))
        p = Parameter(w0.copy(), dtype=np.float64)
        tp = torch.tensor(w0.copy(), requires_grad=True)
        o, to = ours([p], **kw), theirs([tp], foreach=False, **kw)
        for _ in range(6):
            g = rng.standard_normal((3, 4))
            p.grad, tp.grad = g.copy(), torch.tensor(g.copy())
            o.step()
            to.step()
        np.testing.assert_allclose(p.data, tp.detach().numpy(), rtol=1e-13, atol=1e-15)

    for make, make_t in [
        (lambda o: optim.StepLR(o, 3, 0.5), lambda o: torch.optim.lr_scheduler.StepLR(o, 3, 0.5)),
        (
            lambda o: optim.CosineAnnealingLR(o, 5, 0.01),
            lambda o: torch.optim.lr_scheduler.CosineAnnealingLR(o, 5, 0.01),
        ),
    ]:
        sched = make(sgd_for_schedule(0.1))
        tsched = make_t(torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1))
        for _ in range(12):
            tsched.optimizer.step()
            tsched.step()
            sched.step()
            assert sched.get_last_lr() == pytest.approx(tsched.get_last_lr(), rel=1e-12)


def test_a_warm_up_schedule_of_ones_own_starts_at_its_first_lr():
    # building a schedule stopped applying epoch 0's lr, so a warm-up's first epoch trained at
    # the full lr (4× here); PyTorch's LambdaLR applies it
    class WarmUp(optim.LRScheduler):
        def lr_at(self, base_lr, epoch):
            return base_lr * min(1.0, (epoch + 1) / 4)

    opt = optim.SGD([param(0.0)], lr=1.0)
    sched = WarmUp(opt)
    seen = []
    for _ in range(3):
        seen.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert seen == [0.25, 0.5, 0.75]
    assert sched.get_last_lr() == [1.0]
