"""The whole-group ("flat") optimizer step against the per-parameter one.

SGD and Adam lay a group's parameters out in one buffer at the first step and update them with a
few whole-buffer numpy calls. Everything here checks that this changes nothing a user can see:
the results are bit-for-bit those of the per-parameter path (``opt._flat_steps = False`` forces
it), the model sees every update, and whatever does not fit the layout (replaced ``p.data``,
missing gradients, mixed dtypes, shared memory, reloaded state) is detected and handled.
"""

import tracemalloc

import numpy as np
import pytest

from tinygrad_nn import io, nn, optim
from tinygrad_nn.nn.module import Parameter
from tinygrad_nn.optim.flat import FlatGroup

SHAPES = [(4, 3), (4,), (), (2, 4), (1,)]  # a 0-d parameter too

CASES = [
    (optim.SGD, dict(lr=0.1)),
    (optim.SGD, dict(lr=0.1, maximize=True)),
    (optim.SGD, dict(lr=0.1, weight_decay=0.05)),
    (optim.SGD, dict(lr=0.1, weight_decay=0.05, maximize=True)),
    (optim.SGD, dict(lr=0.1, momentum=0.9)),
    (optim.SGD, dict(lr=0.1, momentum=0.9, dampening=0.3, maximize=True)),
    (optim.SGD, dict(lr=0.1, momentum=0.9, dampening=0.3, weight_decay=0.05)),
    (optim.SGD, dict(lr=0.1, momentum=0.8, nesterov=True)),
    (optim.SGD, dict(lr=0.1, momentum=0.8, nesterov=True, maximize=True)),
    (optim.SGD, dict(lr=0.1, momentum=0.8, nesterov=True, weight_decay=0.05)),
    (optim.SGD, dict(lr=0.1, momentum=0.8, nesterov=True, weight_decay=0.05, maximize=True)),
    (optim.Adam, dict(lr=0.01)),
    (optim.Adam, dict(lr=0.01, maximize=True)),
    (optim.Adam, dict(lr=0.01, betas=(0.5, 0.8), eps=1e-3, weight_decay=0.1)),
    (optim.Adam, dict(lr=0.01, weight_decay=0.1, maximize=True, amsgrad=True)),
    (optim.Adam, dict(lr=0.01, amsgrad=True)),
    (optim.AdamW, dict(lr=0.01)),
    (optim.AdamW, dict(lr=0.01, weight_decay=0.3, amsgrad=True, maximize=True)),
]
IDS = [f"{cls.__name__}-{'-'.join(f'{k}={v}' for k, v in kw.items())}" for cls, kw in CASES]


def make_params(dtype, seed=0, shapes=SHAPES):
    rng = np.random.default_rng(seed)
    return [Parameter(rng.standard_normal(s).astype(dtype), dtype=dtype) for s in shapes]


def grad_stream(params, steps, seed=1):
    rng = np.random.default_rng(seed)
    return [[rng.standard_normal(p.shape).astype(p.dtype) for p in params] for _ in range(steps)]


def train(cls, kw, params, grads, flat=True, every=None):
    """Step ``params`` through ``grads``; ``every(step, opt)`` runs before each step."""
    opt = cls(params, **kw)
    if not flat:
        opt._flat_steps = False
    for k, gs in enumerate(grads):
        for p, g in zip(params, gs):
            p.grad = None if g is None else g.copy()
        if every is not None:
            every(k, opt)
        opt.step()
    return opt


def assert_same(params_a, opt_a, params_b, opt_b):
    for a, b in zip(params_a, params_b):
        assert a.dtype == b.dtype
        assert np.array_equal(a.data, b.data)
        sa, sb = opt_a.state.get(a), opt_b.state.get(b)
        assert (sa is None) == (sb is None)
        if sa is not None:
            assert sa.keys() == sb.keys()
            for k in sa:
                assert np.array_equal(sa[k], sb[k]), k


def flat_of(opt, i=0):
    flat = opt._flats[i]
    assert isinstance(flat, FlatGroup)
    return flat


# ------------------------------------------------------------------ the same results, bit for bit
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("cls, kw", CASES, ids=IDS)
def test_flat_and_per_parameter_paths_agree_exactly(cls, kw, dtype):
    a, b = make_params(dtype), make_params(dtype)
    grads = grad_stream(a, 6)
    opt_a = train(cls, kw, a, grads)
    opt_b = train(cls, kw, b, grads, flat=False)
    assert_same(a, opt_a, b, opt_b)
    flat = flat_of(opt_a)
    assert flat.data.dtype == dtype and not opt_b._flats  # b: never laid out
    for p in a:  # the flat path did run: the weights and the state live in its buffers
        assert p.dtype == dtype and np.shares_memory(p.data, flat.data)
        for k, v in opt_a.state.get(p, {}).items():
            if isinstance(v, np.ndarray):
                assert v.dtype == dtype and np.shares_memory(v, flat.state(k))


@pytest.mark.parametrize("cls, kw", CASES, ids=IDS)
def test_flat_path_matches_torch_optim_on_a_group(cls, kw):
    torch = pytest.importorskip("torch")
    ours = make_params(np.float64)
    theirs = [torch.tensor(p.data.copy(), requires_grad=True) for p in ours]
    grads = grad_stream(ours, 6)
    opt = train(cls, kw, ours, grads)
    topt = getattr(torch.optim, cls.__name__)(theirs, foreach=False, **kw)
    for gs in grads:
        for t, g in zip(theirs, gs):
            t.grad = torch.tensor(g.copy())
        topt.step()
    assert isinstance(opt._flats[0], FlatGroup)
    for p, t in zip(ours, theirs):
        np.testing.assert_allclose(p.data, t.detach().numpy(), rtol=1e-13, atol=1e-15)


@pytest.mark.parametrize("cls, kw", CASES, ids=IDS)
def test_missing_gradients_take_the_per_parameter_path_and_agree(cls, kw):
    """Some gradients None at some steps (parameter 1 at the first, parameter 3 at the third):
    those parameters are skipped, as before, and everything stays bit-for-bit equal."""
    a, b = make_params(np.float32), make_params(np.float32)
    grads = grad_stream(a, 6)
    grads[0][1] = None
    grads[2][3] = None
    opt_a = train(cls, kw, a, grads)
    opt_b = train(cls, kw, b, grads, flat=False)
    assert_same(a, opt_a, b, opt_b)


def test_the_flat_path_resumes_once_every_parameter_has_state_again():
    a = make_params(np.float32)
    grads = grad_stream(a, 4)
    grads[0][0] = None
    opt = train(optim.SGD, dict(lr=0.1, momentum=0.9), a, grads)
    buf = flat_of(opt).state("momentum_buffer")
    for p in a:
        assert np.shares_memory(opt.state[p]["momentum_buffer"], buf)


# ------------------------------------------------------------------ what the model sees
def test_parameters_become_views_of_one_buffer_and_the_model_sees_each_update():
    rng = np.random.default_rng(0)
    model = nn.Sequential(nn.Dense(3, 4), nn.Sigmoid(), nn.Dense(4, 2))
    reference = nn.Sequential(nn.Dense(3, 4), nn.Sigmoid(), nn.Dense(4, 2))
    reference.load_state_dict(model.state_dict())
    opt = optim.Adam(model.parameters(), lr=0.01)
    ref_opt = optim.Adam(reference.parameters(), lr=0.01)
    ref_opt._flat_steps = False
    x = rng.standard_normal((5, 3)).astype(np.float32)
    for _ in range(3):
        for m, o in ((model, opt), (reference, ref_opt)):
            o.zero_grad()
            (m(x) ** 2).mean().backward()
            o.step()
        flat = flat_of(opt)
        for (name, p), (_, q) in zip(model.named_parameters(), reference.named_parameters()):
            assert p.data.base is flat.data or p.data.base is flat.data.base, name
            assert np.array_equal(p.data, q.data), name
        sd = model.state_dict()
        assert all(np.array_equal(sd[k], v) for k, v in reference.state_dict().items())
        assert np.array_equal(model(x).data, reference(x).data)
    # in-place writes into the parameters (load_state_dict, nn.init) land in the buffer
    model.load_state_dict(reference.state_dict())
    nn.init.zeros_(model[2].bias)
    assert np.array_equal(flat.data[-2:], [0, 0])


def test_a_replaced_p_data_is_copied_back_into_the_buffer():
    a, b = make_params(np.float32), make_params(np.float32)
    grads = grad_stream(a, 5)
    rng = np.random.default_rng(7)
    new = [rng.standard_normal(p.shape).astype(np.float32) for p in a]

    def replace(k, opt):
        if k == 2:  # after two steps, the user assigns new arrays to two parameters
            for j in (0, 3):
                opt.param_groups[0]["params"][j].data = new[j].copy()

    opt_a = train(optim.Adam, dict(lr=0.01), a, grads, every=replace)
    opt_b = train(optim.Adam, dict(lr=0.01), b, grads, flat=False, every=replace)
    assert_same(a, opt_a, b, opt_b)
    flat = flat_of(opt_a)
    assert all(p.data is v for p, v in zip(a, flat.views))


def test_a_p_data_of_another_shape_or_dtype_is_laid_out_anew_or_left_alone():
    p, q = Parameter(np.ones(3, np.float32)), Parameter(np.ones((2, 2), np.float32))
    opt = optim.SGD([p, q], lr=0.5)
    p.grad, q.grad = np.ones(3, np.float32), np.ones((2, 2), np.float32)
    opt.step()
    first = flat_of(opt)
    p.data = np.zeros(5, np.float32)  # a new shape: a new layout
    p.grad = np.ones(5, np.float32)
    opt.step()
    assert flat_of(opt) is not first and flat_of(opt).data.size == 9
    np.testing.assert_array_equal(p.data, np.full(5, -0.5))
    np.testing.assert_array_equal(q.data, np.zeros((2, 2)))
    keep = p.data = np.zeros(5, np.float64)  # mixed dtypes: the per-parameter path, in place
    opt.step()
    assert p.data is keep and not isinstance(opt._flats[0], FlatGroup)
    np.testing.assert_array_equal(p.data, np.full(5, -0.5))
    np.testing.assert_array_equal(q.data, np.full((2, 2), -0.5))


@pytest.mark.parametrize("cls, kw", [CASES[4], CASES[11], CASES[15]], ids=lambda c: str(c))
def test_a_mixed_dtype_group_is_stepped_per_parameter(cls, kw):
    dtypes = [np.float32, np.float64, np.float32, np.float64, np.float32]
    a = [make_params(d, seed=j, shapes=[s])[0] for j, (d, s) in enumerate(zip(dtypes, SHAPES))]
    b = [make_params(d, seed=j, shapes=[s])[0] for j, (d, s) in enumerate(zip(dtypes, SHAPES))]
    arrays = [p.data for p in a]
    grads = grad_stream(a, 4)
    opt_a = train(cls, kw, a, grads)
    opt_b = train(cls, kw, b, grads, flat=False)
    assert_same(a, opt_a, b, opt_b)
    assert all(p.data is arr for p, arr in zip(a, arrays))  # updated where they were
    assert [p.dtype for p in a] == dtypes


def test_parameters_that_share_memory_stay_tied():
    base = np.arange(6, dtype=np.float32)
    p, q = Parameter(base[:4]), Parameter(base[2:])
    opt = optim.SGD([p, q], lr=1.0)
    p.grad, q.grad = np.ones(4, np.float32), np.ones(4, np.float32)
    opt.step()
    assert not isinstance(opt._flats[0], FlatGroup)
    assert p.data.base is base and q.data.base is base
    np.testing.assert_array_equal(base, [-1, 0, 0, 1, 3, 4])  # the overlap moved twice


def test_groups_are_laid_out_apart_and_a_changed_group_anew():
    a, b, c = make_params(np.float32, shapes=[(3,), (2, 2), (1,)])
    opt = optim.SGD([{"params": [a, b]}, {"params": [c], "lr": 0.5}], lr=0.1, momentum=0.9)
    for p in (a, b, c):
        p.grad = np.ones(p.shape, np.float32)
    opt.step()
    assert flat_of(opt, 0).data.size == 7 and flat_of(opt, 1).data.size == 1
    d = make_params(np.float32, seed=3, shapes=[(2,)])[0]
    d0 = d.data.copy()
    opt.param_groups[0]["params"].append(d)  # a parameter slipped into a group by hand
    for _ in range(2):  # d has no momentum yet: per parameter, then as one group again
        for p in (a, b, c, d):
            p.grad = np.ones(p.shape, np.float32)
        opt.step()
    flat = flat_of(opt, 0)
    assert flat.data.size == 9 and all(np.shares_memory(p.data, flat.data) for p in (a, b, d))
    buf = flat.state("momentum_buffer")
    assert all(np.shares_memory(opt.state[p]["momentum_buffer"], buf) for p in (a, b, d))
    np.testing.assert_allclose(d.data, d0 - 0.1 * (1 + 1.9), rtol=1e-6)


def test_two_optimizers_over_the_same_parameters_share_the_layout():
    """A second optimizer finds the parameters already laid out one after another and uses
    them where they are: no copies back and forth between two buffers."""
    model = nn.Sequential(nn.Dense(3, 4), nn.ReLU(), nn.Dense(4, 2))
    params = list(model.parameters())
    sgd, adam = optim.SGD(params, lr=0.1), optim.Adam(params, lr=0.01)
    for p in params:
        p.grad = np.ones(p.shape, np.float32)
    sgd.step()
    arrays = [p.data for p in params]
    for _ in range(2):
        adam.step()
        sgd.step()
    assert all(p.data is arr for p, arr in zip(params, arrays))
    a, b = flat_of(sgd).data, flat_of(adam).data
    assert a.size == b.size and a.__array_interface__ == b.__array_interface__


def test_a_single_contiguous_parameter_keeps_its_array():
    p = Parameter(np.ones((3, 2), np.float32))
    data = p.data
    opt = optim.Adam([p], lr=0.1)
    p.grad = np.ones((3, 2), np.float32)
    opt.step()
    assert p.data is data and np.shares_memory(flat_of(opt).data, data)


def test_a_fortran_ordered_parameter_is_copied_in_with_its_values():
    w = np.asfortranarray(np.arange(6, dtype=np.float32).reshape(2, 3))
    p, q = Parameter(w), Parameter(np.zeros(2, np.float32))
    p.grad, q.grad = np.ones((2, 3), np.float32), np.ones(2, np.float32)
    optim.SGD([p, q], lr=1.0).step()
    np.testing.assert_array_equal(p.data, np.arange(6).reshape(2, 3) - 1)


# ------------------------------------------------------------------ state: checkpoints and resume
@pytest.mark.parametrize("cls, kw", [CASES[7], CASES[14], CASES[17]], ids=lambda c: str(c))
def test_a_loaded_state_replaces_the_state_in_the_buffers(cls, kw, tmp_path):
    """An optimizer that has stepped (its state lives in flat buffers) loads a checkpoint: the
    next steps use the loaded state, not the buffers' old contents."""
    a, b = make_params(np.float32), make_params(np.float32, seed=5)
    grads = grad_stream(a, 6)
    opt_a = train(cls, kw, a, grads[:4])
    io.save({"opt": opt_a.state_dict(), "params": [p.data for p in a]}, tmp_path / "c")
    opt_b = train(cls, kw, b, grad_stream(b, 2, seed=9))  # other state, in flat buffers
    loaded = io.load(tmp_path / "c")
    for p, arr in zip(b, loaded["params"]):
        np.copyto(p.data, arr)
    opt_b.load_state_dict(loaded["opt"])
    for gs in grads[4:]:
        for opt, ps in ((opt_a, a), (opt_b, b)):
            for p, g in zip(ps, gs):
                p.grad = g.copy()
            opt.step()
    assert_same(a, opt_a, b, opt_b)
    flat = flat_of(opt_b)
    for p in b:
        for v in opt_b.state[p].values():
            if isinstance(v, np.ndarray):
                assert v.base is not None and np.shares_memory(v, v.base)
                assert not np.shares_memory(v, flat.data)  # state buffers, not the weights


def test_state_dict_of_a_flat_group_is_a_copy():
    a = make_params(np.float32)
    opt = train(optim.Adam, dict(lr=0.01), a, grad_stream(a, 2))
    sd = opt.state_dict()
    sd["state"][0]["exp_avg"][...] = 99.0
    assert not (opt.state[a[0]]["exp_avg"] == 99.0).any()
    assert all(s["step"] == 2 for s in sd["state"].values())


def test_state_replaced_by_hand_is_used():
    a, b = make_params(np.float32), make_params(np.float32)
    grads = grad_stream(a, 4)

    def poke(k, opt):
        if k == 2:
            p = opt.param_groups[0]["params"][0]
            opt.state[p]["exp_avg"] = np.full(p.shape, 0.5, np.float32)

    opt_a = train(optim.Adam, dict(lr=0.01), a, grads, every=poke)
    opt_b = train(optim.Adam, dict(lr=0.01), b, grads, flat=False, every=poke)
    assert_same(a, opt_a, b, opt_b)


# ------------------------------------------------------------------ no allocation once warm
@pytest.mark.parametrize(
    "cls, kw",
    [
        (optim.SGD, dict(lr=0.1)),
        (optim.SGD, dict(lr=0.1, momentum=0.9, nesterov=True, weight_decay=0.1)),
        (optim.Adam, dict(weight_decay=0.1, amsgrad=True)),
        (optim.AdamW, dict(maximize=True)),
    ],
)
def test_a_flat_step_allocates_nothing_it_keeps_once_warm(cls, kw):
    n = 100_000  # 400 kB per parameter in float32
    params = [Parameter(np.ones(n, np.float32)) for _ in range(3)]
    for p in params:
        p.grad = np.full(n, 0.5, np.float32)
    opt = cls(params, **kw)
    opt.step()
    assert isinstance(opt._flats[0], FlatGroup) and flat_of(opt).data.size == 3 * n
    tracemalloc.start()
    for _ in range(3):
        opt.step()
    current, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    if kw == dict(lr=0.1):  # plain SGD keeps no scratch: one parameter's γg at a time
        assert current < 100_000 and peak < 4 * n + 100_000, (current, peak)
    else:
        assert peak < 100_000, peak


@pytest.mark.parametrize("how", ["deepcopy", "pickle"])
def test_a_copied_model_and_optimizer_train_on_alike(how):
    import copy
    import pickle

    model = nn.Sequential(nn.Dense(3, 4), nn.Tanh(), nn.Dense(4, 2))
    opt = optim.Adam(model.parameters(), lr=0.01, amsgrad=True)
    x = np.random.default_rng(0).standard_normal((5, 3)).astype(np.float32)

    def step(m, o):
        o.zero_grad()
        (m(x) ** 2).mean().backward()
        o.step()

    step(model, opt)
    pair = (model, opt)
    model2, opt2 = copy.deepcopy(pair) if how == "deepcopy" else pickle.loads(pickle.dumps(pair))
    for _ in range(3):
        step(model, opt)
        step(model2, opt2)
    for (name, p), (_, q) in zip(model.named_parameters(), model2.named_parameters()):
        assert np.array_equal(p.data, q.data), name
        assert not np.shares_memory(p.data, q.data)
    assert isinstance(opt2._flats[0], FlatGroup)
