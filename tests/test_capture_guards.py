"""What a captured step must notice between calls — state that changes what the step computes
without changing the inputs' shapes — so that it never replays a plan made for other state.
Each case trains a captured copy and an eager copy of one model side by side; each failed
before its fix (a replay that silently trained otherwise, or an error)."""

import functools
import threading
import types
import warnings

import numpy as np
import pytest

import tinygrad_nn as tg
from tinygrad_nn import nn
from tinygrad_nn.capture import capture
from tinygrad_nn.nn import functional as F
from tinygrad_nn.ops import loss as L


def build(seed, sizes=(6, 4, 3), dropout=None):
    tg.manual_seed(seed)
    layers = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(nn.Dense(a, b))
        if i < len(sizes) - 2:
            layers.append(nn.Sigmoid())
            if dropout is not None:
                layers.append(nn.Dropout(dropout))
    return nn.Sequential(*layers)


def batch(seed, n=4, nin=6, nout=3):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, nin)).astype(np.float32), rng.random((n, nout)).astype(
        np.float32
    )


def twins(seed, lossfn, opt=tg.optim.SGD, **kw):
    """A captured step on one model, an eager step on an identical one (its optimizer is
    ``eager.optimizer``)."""
    a, b = build(seed, **kw), build(seed, **kw)
    oa, ob = opt(a.parameters(), lr=0.5), opt(b.parameters(), lr=0.5)
    step = capture(lambda *args: lossfn(a, *args), optimizer=oa)

    def eager(*args):
        ob.zero_grad()
        loss = lossfn(b, *[tg.Tensor(x) if isinstance(x, np.ndarray) else x for x in args])
        loss.backward()
        ob.step()
        return loss.item()

    eager.optimizer = ob
    return a, b, step, eager


def assert_same(a, b):
    for p, q in zip(a.parameters(), b.parameters()):
        np.testing.assert_allclose(p.data, q.data, rtol=1e-5, atol=1e-6)
        assert (p.grad is None) == (q.grad is None)


def replays_alike(a, b, step, eager, calls=5):
    """The captured and the eager step, on one batch, give the same losses and parameters,
    and the captured one replays."""
    x, y = batch(0)
    for _ in range(calls):
        assert step(x, y).item() == pytest.approx(eager(x, y), rel=1e-6)
    assert step._verified
    assert_same(a, b)


def quadratic(m, x, y):
    return F.quadratic_cost(m(x), y)


@pytest.mark.parametrize("opt", [tg.optim.SGD, tg.optim.Adam])
@pytest.mark.parametrize("freeze", [True, False])
def test_requires_grad_switched_after_capture(opt, freeze):
    a, b, step, eager = twins(1, quadratic, opt)
    x, y = batch(0)
    if not freeze:
        a[0].weight.requires_grad = b[0].weight.requires_grad = False
    for i in range(6):
        if i == 3:  # the plan is replaying by now
            a[0].weight.requires_grad = b[0].weight.requires_grad = not freeze
        step(x, y)
        eager(x, y)
        assert_same(a, b)


def test_sgd_param_group_edited_after_capture():
    a, b, step, eager = twins(2, quadratic)
    x, y = batch(0)
    for i in range(6):
        if i == 3:  # train the last layer only from here
            step.optimizer.param_groups[0]["params"] = [a[2].weight, a[2].bias]
            eager.optimizer.param_groups[0]["params"] = [b[2].weight, b[2].bias]
        step(x, y)
        eager(x, y)
    assert_same(a, b)


def test_train_and_eval_switch_after_capture():
    a, b, step, eager = twins(3, quadratic, sizes=(6, 8, 3), dropout=0.5)
    a.eval()
    b.eval()
    x, y = batch(0)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for i in range(6):
            if i == 3:  # dropout on: the eval-mode plan must not run
                a.train()
                b.train()
            tg.manual_seed(100 + i)
            captured = step(x, y).item()
            tg.manual_seed(100 + i)
            assert captured == pytest.approx(eager(x, y), rel=1e-6)
    assert any("random numbers" in str(w.message) for w in caught)
    assert_same(a, b)


def test_labels_given_as_an_index_are_read_at_every_call():
    # nll_loss turns the labels into an index array: the plan must read them from the call
    def nll(m, x, t):
        return F.nll_loss(m(x).log_softmax(-1), t)

    a, b, step, eager = twins(4, nll, sizes=(6, 5, 3))
    rng = np.random.default_rng(0)
    for t in ([0, 1], [0, 1], [2, 2], [1, 0], [2, 0]):  # the first two agree
        x = rng.standard_normal((2, 6)).astype(np.float32)
        t = np.array(t)
        assert step(x, t).item() == pytest.approx(eager(x, tg.Tensor(t)), rel=1e-6)
    assert step._verified  # and it did replay
    assert_same(a, b)


def test_array_computed_from_the_inputs_is_not_frozen():
    # an array fn computes from its inputs with plain numpy: a replay cannot recompute it, so
    # a step whose first calls see other values runs without capture
    def onehot(m, x, t):
        return F.quadratic_cost(m(x), np.eye(3, dtype=np.float32)[t.data])

    a, b, step, eager = twins(5, onehot)
    rng = np.random.default_rng(1)
    with pytest.warns(UserWarning, match="ran other ops or constants"):
        for t in ([0, 1, 2, 0], [1, 1, 0, 2], [2, 0, 1, 1], [0, 0, 0, 1]):
            x = rng.standard_normal((4, 6)).astype(np.float32)
            t = tg.Tensor(np.array(t))
            assert step(x, t).item() == pytest.approx(eager(x, t), rel=1e-6)
    assert_same(a, b)


def test_numpy_scalar_scale_in_a_lowered_loss():
    n = np.float32(4)

    def scaled(m, x, y):
        return L.MSE.apply(m(x), y, scale=1 / (2 * n))

    a, b, step, eager = twins(6, scaled)
    replays_alike(a, b, step, eager, calls=4)


@pytest.mark.parametrize("order", ["TTTAA", "AAATT"])
def test_float64_arrays_and_float64_tensors_are_told_apart(order):
    # Tensor(float64 array) converts to float32; a float64 Tensor stays float64
    a, b, step, eager = twins(7, quadratic)
    for i, kind in enumerate(order):
        x, y = (v.astype(np.float64) for v in batch(i))
        if kind == "T":
            args = (tg.Tensor(x, dtype=np.float64), tg.Tensor(y, dtype=np.float64))
        else:
            args = (x, y)
        loss = step(*args)
        expected = np.float64 if kind == "T" else np.float32
        assert loss.dtype == expected
        eager(*args)
        assert_same(a, b)


@pytest.mark.parametrize("calls", [3, 5])
def test_plans_are_forgotten_under_the_lock(calls):
    # a stale plan is dropped while the step's lock is held, never while another thread may be
    # making a plan from the traces; after 3 calls the next replays through the general path,
    # after 5 through the entry the last replay made for arguments like its own
    a = build(8)
    opt = tg.optim.SGD(a.parameters(), lr=0.5)
    step = capture(lambda x, y: quadratic(a, x, y), optimizer=opt)
    x, y = batch(0)
    for _ in range(calls):
        step(x, y)
    assert (step._last is not None) == (calls > 4)
    held = []
    forget = step._forget

    def watched():
        held.append(step._lock.locked())
        forget()

    step._forget = watched
    a[0].weight.data = a[0].weight.data.copy()  # the plan is stale now
    step(x, y)
    assert held and all(held)


@pytest.mark.parametrize("opt", [tg.optim.SGD, tg.optim.Adam])
def test_parameters_taken_out_of_the_optimizer_after_capture(opt):
    # training the last layer only from call 4: zero_grad() no longer clears the first layer's
    # gradients, so normal execution adds to them; a replay handed them gradients (overwriting)
    a, b, step, eager = twins(21, quadratic, opt)
    for i in range(8):
        x, y = batch(i)
        if i == 4:
            for o, m in ((step.optimizer, a), (eager.optimizer, b)):
                o.param_groups[0]["params"] = [m[2].weight, m[2].bias]
        assert step(x, y).item() == pytest.approx(eager(x, y), rel=1e-6)
        assert_same(a, b)
        for p, q in zip(a.parameters(), b.parameters()):
            if q.grad is not None:
                np.testing.assert_allclose(p.grad, q.grad, rtol=1e-5, atol=1e-6)
    assert step._verified


def test_parameter_object_replaced_after_capture():
    # re-initialising a layer with a new Parameter: the plan held the old one
    a, b = build(9), build(9)
    step = capture(lambda x, y: quadratic(a, x, y))  # the user's own loop and optimizer
    oa, ob = tg.optim.SGD(a.parameters(), lr=0.5), tg.optim.SGD(b.parameters(), lr=0.5)
    for i in range(8):
        x, y = batch(i)
        if i == 4:
            for m in (a, b):
                m[0].weight = nn.Parameter(np.full((4, 6), 0.05, np.float32))
            oa, ob = tg.optim.SGD(a.parameters(), lr=0.5), tg.optim.SGD(b.parameters(), lr=0.5)
        oa.zero_grad()
        captured = step(x, y).item()
        oa.step()
        ob.zero_grad()
        loss = quadratic(b, tg.Tensor(x), tg.Tensor(y))
        loss.backward()
        ob.step()
        assert captured == pytest.approx(loss.item(), rel=1e-6)
    assert_same(a, b)


def test_state_changed_between_the_first_two_calls_is_traced_anew():
    # the second call ran with the first layer frozen: it becomes the trace, and the step is
    # captured from the third call on, silently
    a, b, step, eager = twins(10, quadratic)
    x, y = batch(0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for i in range(5):
            if i == 1:
                a[0].weight.requires_grad = b[0].weight.requires_grad = False
            step(x, y)
            eager(x, y)
            assert_same(a, b)
    assert step._verified


def test_boolean_mask_input_is_read_at_every_call():
    # a mask given as an input is read from each call; when the count of True differs from the
    # trace's (the shape of what it selects), that call runs normally and the plan stays
    def masked(m, x, y, mask):
        return F.mse_loss(m(x)[mask], y[mask])

    a, b, step, eager = twins(11, masked)
    first = np.array([1, 1, 1, 0, 0, 0], bool)
    masks = [first, first, first, first[::-1].copy(), np.array([1, 0, 1, 0, 1, 1], bool)]
    masks += [np.array([0, 1, 0, 0, 1, 0], bool), first]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for i, mask in enumerate(masks):
            x, y = batch(i, n=6)
            assert step(x, tg.Tensor(y), mask).item() == pytest.approx(
                eager(x, tg.Tensor(y), mask), rel=1e-6
            )
    assert step._verified and step._stale == 0 and not step._off  # still captured
    assert_same(a, b)


def test_mode_switched_and_back_inside_fn_is_replayed():
    def peek(m, x, y):
        m.eval()  # say, to look at something in eval mode
        m.train()
        return quadratic(m, x, y)

    a, b, step, eager = twins(12, peek, sizes=(6, 8, 3), dropout=0.0)
    x, y = batch(0)
    for _ in range(5):
        step(x, y)
        eager(x, y)
    assert step._verified and step._stale == 0
    assert_same(a, b)


def test_modules_outside_the_step_do_not_matter_and_added_ones_do():
    a, b, step, eager = twins(13, quadratic)
    other = nn.Dense(2, 2)
    x, y = batch(0)
    for i in range(8):
        other.weight = nn.Parameter(np.ones((2, 2), np.float32))  # another model's business
        if i == 4:  # a layer appended to the model: the plan ran without it
            a.append(nn.Tanh())
            b.append(nn.Tanh())
        assert step(x, y).item() == pytest.approx(eager(x, y), rel=1e-6)
    assert step._verified
    assert_same(a, b)


def test_one_tensor_given_for_two_inputs_then_two():
    def self_target(m, x, y):
        return F.mse_loss(m(x)[:, :3], y[:, :3])

    a, b, step, eager = twins(14, self_target)
    x = tg.Tensor(batch(0)[0])
    for _ in range(3):  # one tensor is both the input and the target
        step(x, x)
        eager(x, x)
    for i in range(3):  # then two arrays
        x1, x2 = batch(i + 1)[0], batch(i + 5)[0]
        assert step(x1, x2).item() == pytest.approx(eager(x1, x2), rel=1e-6)
    assert_same(a, b)


def test_memmap_labels_are_read_at_every_call(tmp_path):
    def nll(m, x, t):
        return F.nll_loss(m(x).log_softmax(-1), t)

    a, b, step, eager = twins(15, nll)
    labels = np.lib.format.open_memmap(tmp_path / "t.npy", "w+", np.int64, (16,))
    labels[:] = [0, 0, 0, 0, 0, 0, 0, 0, 1, 2, 1, 2, 2, 1, 0, 2]  # sorted: two equal batches
    for i in range(4):
        x, _ = batch(i)
        t = labels[4 * i : 4 * i + 4]
        assert step(x, t).item() == pytest.approx(eager(x, tg.Tensor(np.array(t))), rel=1e-6)
    assert step._verified
    assert_same(a, b)


def test_parameters_replaced_at_every_step_stop_capture():
    a = build(16)
    step = capture(lambda x, y: quadratic(a, x, y))
    x, y = batch(0)
    with pytest.warns(UserWarning, match="went stale"):
        for _ in range(12):
            step(x, y)
            for p in a.parameters():  # an out-of-place update
                p.data = p.data - 0.1 * p.grad
                p.grad = None
    assert step._off


class Halve(nn.Module):
    """A layer with no parameters: made inside fn, a new object at each call."""

    def forward(self, x):
        return x * 0.5


def test_modules_made_at_every_call_are_captured():
    # a loss module and a parameterless layer written inside fn: new objects at each call
    def inline(m, x, y):
        return nn.MSELoss()(Halve()(m(x)), y)

    a, b, step, eager = twins(17, inline)
    replays_alike(a, b, step, eager, calls=5)


def test_a_slice_of_the_model_made_at_every_call_trains_right():
    # model[:-1] is a new Sequential of the model's layers at each call: not taken for the last
    # one (a layer appended to the model would change it), so it runs normally, and right
    def sliced(m, x, y):
        return F.mse_loss(m[:-1](x), y)

    a, b, step, eager = twins(22, sliced, sizes=(6, 3, 3))
    x, y = batch(0)
    with pytest.warns(UserWarning, match="ran other ops"):
        for i in range(6):
            if i == 3:
                a.append(nn.Tanh())
                b.append(nn.Tanh())
            assert step(x, y).item() == pytest.approx(eager(x, y), rel=1e-6)
    assert_same(a, b)


class Recording(nn.Module):
    """A layer that keeps its last output on itself: the side effect happens when traced."""

    def __init__(self):
        super().__init__()
        self.dense = nn.Dense(6, 3)

    def forward(self, x):
        self.last = self.dense(x).detach()
        return self.dense(x)


def test_one_array_for_two_inputs_is_captured_and_kept_apart_later():
    def autoencoder(m, x, target):
        return F.mse_loss(m(x), target)

    a, b, step, eager = twins(19, autoencoder, sizes=(6, 3, 6))
    x = batch(0)[0]
    for _ in range(4):
        assert step(x, x).item() == pytest.approx(eager(x, x), rel=1e-6)
    assert step._verified
    for i in range(4):  # then two arrays: the plan made for one does not serve
        x1, x2 = batch(i + 1)[0], batch(i + 5)[0]
        assert step(x1, x2).item() == pytest.approx(eager(x1, x2), rel=1e-6)
    assert_same(a, b)


class Stack(nn.Module):
    def __init__(self):
        super().__init__()
        self.layers = nn.ModuleList([nn.Dense(6, 8), nn.Sigmoid(), nn.Dense(8, 3)])

    def forward(self, x):
        for layer in self.layers:  # the ModuleList itself is never called
            x = layer(x)
        return x


def test_a_layer_appended_to_a_module_list_is_noticed():
    tg.manual_seed(20)
    a = Stack()
    tg.manual_seed(20)
    b = Stack()
    oa, ob = tg.optim.SGD(a.parameters(), lr=0.5), tg.optim.SGD(b.parameters(), lr=0.5)
    step = capture(lambda x, y: quadratic(a, x, y), optimizer=oa)
    for i in range(8):
        x, y = batch(i)
        if i == 4:
            a.layers.append(nn.Tanh())
            b.layers.append(nn.Tanh())
        ob.zero_grad()
        loss = quadratic(b, tg.Tensor(x), tg.Tensor(y))
        loss.backward()
        ob.step()
        assert step(x, y).item() == pytest.approx(loss.item(), rel=1e-6)
    assert_same(a, b)


class Probe(nn.Module):
    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(nn.Dense(6, 3), nn.Sigmoid())
        self.memo = nn.Identity()

    def forward(self, x):
        self.memo.last = x.detach()  # on a child that is never called
        return self.body(x)


def test_state_the_step_changes_itself_is_captured():
    # an eval-mode pass before the training pass, a tensor stored on an uncalled child or on
    # the module itself: the step changes them itself, the same way at every call (a replay
    # skips such side effects, as documented)
    def two_passes(m, x, y):
        m.eval()
        quadratic(m, x, y).item()
        m.train()
        return quadratic(m, x, y)

    for fn, model in ((two_passes, None), (quadratic, Probe), (quadratic, Recording)):
        tg.manual_seed(24)
        a = model() if model else build(24)
        opt = tg.optim.SGD(a.parameters(), lr=0.5)
        step = capture(lambda x, y, a=a, fn=fn: fn(a, x, y), optimizer=opt)
        x, y = batch(0)
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            for _ in range(5):
                step(x, y)
        assert step._verified


class WeightedMSE(nn.Module):
    """A loss module holding a tensor, made inside fn at each call."""

    def __init__(self, w):
        super().__init__()
        self.w = tg.Tensor(w)

    def forward(self, out, y):
        return ((out - y) ** 2 * self.w).mean()


def test_a_module_with_a_tensor_attribute_made_in_fn_is_captured():
    w = np.array([1.0, 2.0, 0.5], np.float32)
    a, b, step, eager = twins(25, lambda m, x, y: WeightedMSE(w)(m(x), y))
    replays_alike(a, b, step, eager, calls=5)


TARGET_FORMS = {  # targets computed from the labels inside fn, which a replay makes again
    "one_hot": lambda out, t: F.quadratic_cost(out, F.one_hot(t, 3)),
    "one_hot, cast by the loss": lambda out, t: F.mse_loss(out, F.one_hot(t, 3, dtype=np.float64)),
    "one_hot, an operand": lambda out, t: ((out - F.one_hot(t, 3)) ** 2).mean(),
    "one_hot in a Tensor": lambda out, t: F.mse_loss(out, tg.Tensor(F.one_hot(t, 3))),
    "one_hot, cast by cross_entropy": lambda out, t: F.cross_entropy(
        out, F.one_hot(t, 3, dtype=np.float64)
    ),
    "argmax": lambda out, t: F.cross_entropy(out, tg.Tensor(F.one_hot(t, 3)).argmax(-1)),
}


@pytest.mark.parametrize("form", list(TARGET_FORMS))
def test_targets_made_from_the_labels_are_made_again(form):
    # class-sorted data: the first calls have the same labels, later ones do not
    a, b, step, eager = twins(26, lambda m, x, t: TARGET_FORMS[form](m(x), t))
    for i, label in enumerate([0, 0, 0, 1, 2, 1, 2]):
        x, _ = batch(i)
        t = tg.Tensor(np.full(4, label))
        assert step(x, t).item() == pytest.approx(eager(x, t), rel=1e-6)
    assert step._verified
    assert_same(a, b)


@pytest.mark.parametrize(
    ("fn", "why"),
    [  # a mask from the step's own values; an assignment into a tensor
        (lambda m, x, y: F.mse_loss(m(x) * (m(x) > 0.5), y), "comparison"),
        (lambda m, x, y: F.mse_loss(m(x), _clipped(y)), "assigns into tensors"),
    ],
)
def test_steps_a_replay_could_not_stand_for_run_normally(fn, why):
    a, b, step, eager = twins(27, fn)
    with pytest.warns(UserWarning, match=why):
        for i in range(5):
            x, y = batch(i)
            assert step(x, y).item() == pytest.approx(eager(x, y), rel=1e-6)
    assert not step._verified
    assert_same(a, b)


def _clipped(y):
    y = tg.Tensor(y.data.copy())
    y[y.data > 0.5] = 0.5
    return y


def test_comparisons_of_constants_are_captured():
    keep = tg.Tensor(np.array([1.0, 0.0, 1.0], np.float32))  # made outside fn

    def masked(m, x, y):
        return F.mse_loss(m(x) * (keep > 0.5), y * (tg.arange(3) != 1))

    a, b, step, eager = twins(28, masked)
    x, y = batch(0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for _ in range(5):
            assert step(x, y).item() == pytest.approx(eager(x, y), rel=1e-6)
    assert step._verified
    assert_same(a, b)


def test_a_comparison_of_a_parameter_with_an_input_runs_normally():
    def pruned(m, x, y, threshold):
        return F.mse_loss(m(x) * (m[2].bias > threshold), y)

    a, b, step, eager = twins(29, pruned)
    x, y = batch(0)
    with pytest.warns(UserWarning, match="comparison"):
        for _ in range(5):
            t = np.float32(0.0)
            assert step(x, y, np.array(t)).item() == pytest.approx(
                eager(x, y, np.array(t)), rel=1e-6
            )
    assert not step._verified
    assert_same(a, b)


def test_an_input_holding_nan_is_captured():
    def nan_safe(m, x, y):
        x = tg.Tensor(x.data, dtype=np.float64)  # a cast the replay makes again
        return F.mse_loss(m(tg.where(x == x, x, 0.0).astype(np.float32)), y)

    a, b, step, eager = twins(30, nan_safe)
    x, y = batch(0)
    x[0, 0] = np.nan
    for _ in range(5):
        assert step(x, y).item() == pytest.approx(eager(x, y), rel=1e-6)
    assert step._verified
    assert_same(a, b)


def test_another_threads_assignment_does_not_stop_capture():
    a, b, step, eager = twins(31, quadratic)
    other = tg.Tensor(np.zeros(3, np.float32))
    x, y = batch(0)
    original = step.fn

    def fn_with_a_neighbour(*args):  # another thread assigns into its own tensor meanwhile
        t = threading.Thread(target=other.__setitem__, args=(0, 1.0))
        t.start()
        t.join()
        return original(*args)

    step.fn = fn_with_a_neighbour
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for _ in range(5):
            assert step(x, y).item() == pytest.approx(eager(x, y), rel=1e-6)
    assert step._verified


def test_one_hot_of_an_ops_output_runs_normally():
    # t.reshape(-1) is an op's output: a replay could not encode it again, so no replay
    def onehot(m, x, t):
        return F.mse_loss(m(x), F.one_hot(t.reshape(-1), 3))

    a, b, step, eager = twins(32, onehot)
    with pytest.warns(UserWarning, match="computed from values it computes"):
        for i, label in enumerate([0, 0, 0, 1, 2]):  # class-sorted
            x, _ = batch(i)
            t = tg.Tensor(np.full(4, label))
            assert step(x, t).item() == pytest.approx(eager(x, t), rel=1e-6)
    assert not step._verified
    assert_same(a, b)


def test_a_cast_to_the_labels_own_dtype_is_not_taken_for_the_steps():
    # t.astype(int64) of int64 labels hands back the input's own array as the op's output
    def onehot(m, x, t):
        return F.mse_loss(m(x), F.one_hot(t.astype(np.int64), 3))

    a, b, step, eager = twins(33, onehot)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for i, label in enumerate([0, 0, 0, 1, 2, 1, 2]):
            x, _ = batch(i)
            t = tg.Tensor(np.full(4, label, np.int64))
            assert step(x, t).item() == pytest.approx(eager(x, t), rel=1e-6)
    assert step._verified
    assert_same(a, b)


def eager_quadratic(b, ob, x, y, keep_grads=True):
    """One normal step of ``quadratic`` on ``b`` with ``ob`` (zero_grad, loss, backward, step,
    and zero_grad again where the captured step keeps no gradients); returns the loss."""
    ob.zero_grad()
    loss = quadratic(b, tg.Tensor(x), tg.Tensor(y))
    loss.backward()
    ob.step()
    if not keep_grads:
        ob.zero_grad()
    return loss.item()


def trains_alike(seed, make_opt, keep_grads=True, calls=8, before=None, grads=False, **kw):
    """A captured and an eager copy of ``build(seed)``, each with ``make_opt(parameters)``,
    trained side by side with the quadratic cost: after every call the losses and parameters
    (with ``grads``, the gradients too) agree. ``before(i, oa, ob)`` runs before call ``i``;
    ``kw`` goes to ``capture``. Returns ``(step, oa, ob)``."""
    a, b = build(seed), build(seed)
    oa, ob = make_opt(a.parameters()), make_opt(b.parameters())
    step = capture(lambda x, y: quadratic(a, x, y), optimizer=oa, keep_grads=keep_grads, **kw)
    for i in range(calls):
        if before is not None:
            before(i, oa, ob)
        x, y = batch(i)
        want = eager_quadratic(b, ob, x, y, keep_grads)
        assert step(x, y).item() == pytest.approx(want, rel=1e-6)
        assert_same(a, b)
        for p, q in zip(a.parameters(), b.parameters()):
            if grads and q.grad is not None:
                np.testing.assert_allclose(p.grad, q.grad, rtol=1e-5, atol=1e-6)
    return step, oa, ob


class ClippedSGD(tg.optim.SGD):
    """SGD whose step() clips the gradients first: the override must run at every call."""

    def step(self, closure=None):
        self.calls = getattr(self, "calls", 0) + 1
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is not None:
                    np.clip(p.grad, -0.01, 0.01, out=p.grad)
        return super().step(closure)


class AccumulatingSGD(tg.optim.SGD):
    """SGD whose zero_grad() clears the gradients only every other call (gradients accumulated
    over two batches): a replay must call it and add to what it left."""

    def zero_grad(self):
        self.zeroed = getattr(self, "zeroed", 0) + 1
        if self.zeroed % 2:
            super().zero_grad()


@pytest.mark.parametrize("keep_grads", [True, False])
@pytest.mark.parametrize("opt", [ClippedSGD, AccumulatingSGD])
def test_an_optimizer_with_its_own_step_or_zero_grad(opt, keep_grads):
    # the lean update (and keep_grads=False's fold) stood in for an overridden step(); the
    # plan set .grad where an overridden zero_grad() would have left something to add to
    step, oa, ob = trains_alike(22, lambda ps: opt(ps, lr=0.5), keep_grads, calls=7, grads=True)
    assert step._verified
    if opt is ClippedSGD:
        assert oa.calls == ob.calls == 7


def test_a_replay_that_raises_leaves_the_gradients_as_zero_grad_did():
    # an out-of-range label raises inside the replay, after zero_grad(): no parameter may keep
    # the last step's gradient (eager: zero_grad() set them to None before the error)
    a = build(23)
    opt = tg.optim.SGD(a.parameters(), lr=0.5)
    step = capture(lambda x, t: F.cross_entropy(a(x), t), optimizer=opt)
    x, _ = batch(0)
    for _ in range(5):
        step(x, np.array([0, 1, 2, 1]))
    assert all(p.grad is not None for p in a.parameters())
    with pytest.raises(ValueError, match="cross_entropy"):
        step(x, np.array([0, 1, 7, 1]))
    assert all(p.grad is None for p in a.parameters())


class AveragingSGD(tg.optim.SGD):
    """SGD whose step() averages each gradient with the last step's array, which it keeps."""

    def step(self, closure=None):
        kept = self.__dict__.setdefault("kept", {})
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is not None:
                    last, kept[id(p)] = kept.get(id(p)), p.grad
                    if last is not None:
                        p.grad = 0.5 * (p.grad + last)
        return super().step(closure)


def wrap_step(opt):
    """Gradient clipping set on the optimizer object itself, as libraries wrap step()."""
    inner = opt.step

    def step(closure=None):
        for group in opt.param_groups:
            for p in group["params"]:
                if p.grad is not None:
                    np.clip(p.grad, -0.01, 0.01, out=p.grad)
        return inner(closure)

    opt.step = step


def wrap_zero_grad(opt):
    """Gradients accumulated over two batches, by a zero_grad() set on the object itself."""
    inner, calls = opt.zero_grad, [0]

    def zero_grad():
        calls[0] += 1
        if calls[0] % 2:
            inner()

    opt.zero_grad = zero_grad


@pytest.mark.parametrize("keep_grads", [True, False])
@pytest.mark.parametrize(
    "make",
    [
        lambda ps: AveragingSGD(ps, lr=0.5),  # keeps p.grad arrays: they must be its own
        lambda ps: (o := tg.optim.SGD(ps, lr=0.5), wrap_step(o))[0],
        lambda ps: (o := tg.optim.SGD(ps, lr=0.5), wrap_zero_grad(o))[0],
        "wrapped after capture",
    ],
    ids=["step_keeps_grads", "step_on_object", "zero_grad_on_object", "wrapped_later"],
)
def test_optimizer_methods_overridden_on_the_object_or_keeping_gradients(make, keep_grads):
    # a step() set on the optimizer object was skipped by the lean update and the fold; a
    # step() keeping p.grad found it overwritten by the next replay (a view of a reused buffer)
    later = make == "wrapped after capture"
    make = (lambda ps: tg.optim.SGD(ps, lr=0.5)) if later else make

    def before(i, oa, ob):
        if later and i == 4:
            wrap_step(oa)
            wrap_step(ob)

    step, _, _ = trains_alike(24, make, keep_grads, before=before)
    assert step._verified


def test_a_step_that_raises_while_the_plan_is_checked_leaves_no_unchecked_plan():
    # the verdict on the plan came after optimizer.step(): when that raised, a plan whose
    # replay disagreed with normal execution stayed in use, unchecked
    class Memo(tg.Function):  # caches its output: a replay would return the traced one
        def forward(self, x):
            self.__dict__.setdefault("out", x * 2.0)
            return self.out

        def backward(self, g):
            return g * 2.0

    class FlakySGD(tg.optim.SGD):  # raises at its second step (a skipped batch)
        def step(self, closure=None):
            self.calls = getattr(self, "calls", 0) + 1
            if self.calls == 2:
                raise FloatingPointError("a skipped batch")
            return super().step(closure)

    a = build(25)
    opt = FlakySGD(a.parameters(), lr=0.5)
    step = capture(lambda x, y: quadratic(a, Memo.apply(x), y), optimizer=opt)
    step(*batch(0))
    with pytest.warns(UserWarning, match="disagreed"), pytest.raises(FloatingPointError):
        step(*batch(1))
    assert not step._verified and list(step._plans.values()) == [None]


def test_a_call_run_normally_after_a_replay_began_calls_zero_grad_once():
    # a mask selecting another number of rows hands the call back to normal execution after
    # the replay called an overridden zero_grad(): it ran twice (gradient accumulation skewed)
    a, b = build(26), build(26)
    oa, ob = AccumulatingSGD(a.parameters(), lr=0.5), AccumulatingSGD(b.parameters(), lr=0.5)

    def loss(m, x, y, keep):
        return F.quadratic_cost(m(x)[keep], y[keep])

    step = capture(lambda x, y, keep: loss(a, x, y, keep), optimizer=oa)
    for i in range(8):
        x, y = batch(i)
        keep = np.array([True, True, i % 3 != 2, True])
        ob.zero_grad()
        want = loss(b, tg.Tensor(x), tg.Tensor(y), keep)
        want.backward()
        ob.step()
        assert step(x, y, keep).item() == pytest.approx(want.item(), rel=1e-6)
        assert_same(a, b)
    assert oa.zeroed == ob.zeroed


class FlatClippingSGD(tg.optim.SGD):
    """SGD whose whole-group update (the hook subclasses write) clips the gradients first."""

    def _step_flat(self, group, flat, grads):
        for g in grads:
            np.clip(g, -0.01, 0.01, out=g)
        return super()._step_flat(group, flat, grads)


class PlainSubclass(tg.optim.SGD):
    """An SGD subclass whose step() the test replaces on the class after capture."""


def clipping(step_method):
    def step(self, closure=None):
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is not None:
                    np.clip(p.grad, -0.01, 0.01, out=p.grad)
        return step_method(self, closure)

    return step


def bound(method, opt):
    """``method`` as a step() set on the optimizer object itself."""
    return lambda closure=None: method(opt, closure)


@pytest.mark.parametrize("keep_grads", [True, False])
@pytest.mark.parametrize("change", ["hook_subclass", "step_rebound", "class_patched", "new_groups"])
def test_the_update_the_optimizer_would_make_at_each_call(change, keep_grads):
    # replays made plain SGD's update from what the plan had seen: a subclass's own update
    # hook, a step() set anew on the object or patched on the class after capture, and a new
    # param_groups list (same parameters, lr 0) were all bypassed
    cls = {"hook_subclass": FlatClippingSGD, "class_patched": PlainSubclass}.get(
        change, tg.optim.SGD
    )

    def make(ps):
        o = cls(ps, lr=0.5)
        if change == "step_rebound":
            o.step = bound(tg.optim.SGD.step, o)
        return o

    def before(i, oa, ob):
        if i == 4 and change == "step_rebound":
            for o in (oa, ob):
                o.step = bound(clipping(tg.optim.SGD.step), o)
        if i == 4 and change == "class_patched":
            PlainSubclass.step = clipping(tg.optim.SGD.step)
        if i == 4 and change == "new_groups":
            for o in (oa, ob):
                o.param_groups = [dict(g, lr=0.0) for g in o.param_groups]

    try:
        step, _, _ = trains_alike(27, make, keep_grads, before=before)
    finally:
        if "step" in vars(PlainSubclass):
            del PlainSubclass.step
    assert step._verified


class FlatAveragingSGD(tg.optim.SGD):
    """SGD whose whole-group update hook averages each gradient with the last step's array,
    which it keeps: the arrays it is given must be its own, not views a replay overwrites."""

    def _step_flat(self, group, flat, grads):
        kept = self.__dict__.setdefault("kept", [None] * len(grads))
        mixed = [g if k is None else 0.5 * (g + k) for g, k in zip(grads, kept)]
        self.kept[:] = grads
        return super()._step_flat(group, flat, mixed)


@pytest.mark.parametrize("keep_grads", [True, False])
def test_an_update_hook_of_a_subclass_keeps_the_gradients_it_is_given(keep_grads):
    step, _, _ = trains_alike(28, lambda ps: FlatAveragingSGD(ps, lr=0.5), keep_grads)
    assert step._verified


def test_a_captured_step_inside_another_ones_fn_runs_it_without_capture():
    # the outer plan replayed the inner step's forward, not its backward and update: the inner
    # model stopped training, silently with keep_grads=False
    inner_a, inner_b, outer_a = build(29), build(29), build(30)
    inner = capture(
        lambda x, y: quadratic(inner_a, x, y),
        optimizer=tg.optim.SGD(inner_a.parameters(), lr=0.5),
        keep_grads=False,
    )

    def outer_fn(x, y):
        inner(x, y)  # the inner model's own training step
        return quadratic(outer_a, x, y)

    outer = capture(
        outer_fn, optimizer=tg.optim.SGD(outer_a.parameters(), lr=0.5), keep_grads=False
    )
    ob = tg.optim.SGD(inner_b.parameters(), lr=0.5)
    with pytest.warns(UserWarning, match="another captured step"):
        for i in range(6):
            x, y = batch(i)
            outer(x, y)
            eager_quadratic(inner_b, ob, x, y, keep_grads=False)
            assert_same(inner_a, inner_b)
    assert list(outer._plans.values()) == [None] and inner._verified


def keeping(hook):
    """``hook`` (an update hook) wrapped to average each gradient with the last step's array,
    which it keeps; ``functools.wraps`` gives the wrapper the library's ``__module__``."""

    @functools.wraps(hook)
    def wrapper(self, group, flat, grads):
        kept = self.__dict__.setdefault("kept", [None] * len(grads))
        mixed = [g if k is None else 0.5 * (g + k) for g, k in zip(grads, kept)]
        kept[:] = grads
        return hook(self, group, flat, mixed)

    return wrapper


class WrappedHookSGD(tg.optim.SGD):
    _step_flat = keeping(tg.optim.SGD._step_flat)


@pytest.mark.parametrize("keep_grads", [True, False])
@pytest.mark.parametrize("where", ["wrapped_in_subclass", "on_object", "on_object_later"])
def test_an_update_hook_wrapped_or_set_on_the_object(where, keep_grads):
    # a hook wrapped with functools.wraps passed for the library's own (its __module__), and a
    # hook set on the optimizer object was never looked at: the lean update or the fold ran
    cls = WrappedHookSGD if where == "wrapped_in_subclass" else tg.optim.SGD

    def set_hook(o):
        o._step_flat = types.MethodType(keeping(tg.optim.SGD._step_flat), o)

    def make(ps):
        o = cls(ps, lr=0.5)
        if where == "on_object":
            set_hook(o)
        return o

    def before(i, oa, ob):
        if i == 4 and where == "on_object_later":
            set_hook(oa)
            set_hook(ob)

    step, _, _ = trains_alike(31, make, keep_grads, before=before)
    assert step._verified


class SlotsOptimizer:
    """A duck-typed optimizer with no __dict__ that borrows our step() and zero_grad() and the
    per-parameter SGD update."""

    __slots__ = ("param_groups", "state", "_scratch", "_flats", "defaults")
    _flat_steps = False
    step, zero_grad = tg.optim.Optimizer.step, tg.optim.Optimizer.zero_grad
    _step_group = tg.optim.SGD._step_group
    _options = staticmethod(tg.optim.SGD._options)
    _grad = staticmethod(tg.optim.Optimizer._grad)
    _buffers = tg.optim.Optimizer._buffers

    def __init__(self, params, lr):
        plain = {"momentum": 0.0, "dampening": 0.0, "weight_decay": 0.0}
        plain.update(nesterov=False, maximize=False)
        self.param_groups = [{"params": list(params), "lr": lr, **plain}]
        self.state, self._scratch, self._flats, self.defaults = {}, {}, [], {}


@pytest.mark.parametrize("check", [True, False])
def test_an_optimizer_without_a_dict(check):
    # the plan's guard read OPT.__dict__: a spurious "disagreed" with check, AttributeError
    # without
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        step, _, _ = trains_alike(32, lambda ps: SlotsOptimizer(ps, 0.5), calls=6, check=check)
    assert all(p is not None for p in step._plans.values())
