"""No leaks: memory stays flat over a long training run, the graph and its saved arrays are freed
by reference counting alone (no cycles for the garbage collector to find), and a graph of any
depth is freed without recursion."""

from __future__ import annotations

import gc
import subprocess
import sys
import textwrap
import tracemalloc
import weakref
from contextlib import contextmanager

import numpy as np
import pytest

import tinygrad_nn as tg
from tinygrad_nn import Function, Tensor, nn, optim
from tinygrad_nn.autograd import _RELEASED
from tinygrad_nn.nn import functional as F

KIB = 1024


@contextmanager
def collector_off():
    """Run the block with the cyclic garbage collector off, so that only reference counting can
    free anything; restore it afterwards."""
    was_on = gc.isenabled()
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        if was_on:
            gc.enable()


def live(*types):
    """How many objects of ``types`` the garbage collector tracks right now."""
    return sum(issubclass(type(o), types) for o in gc.get_objects())


def mlp():
    tg.manual_seed(0)
    return nn.Sequential(nn.Dense(8, 16), nn.ReLU(), nn.Dense(16, 16), nn.Tanh(), nn.Dense(16, 3))


def graph_nodes(root):
    """Every node of the graph behind ``root`` (iteratively)."""
    seen, stack, nodes = set(), [root], []
    while stack:
        t = stack.pop()
        node = t.grad_fn
        if node is None or id(node) in seen:
            continue
        seen.add(id(node))
        nodes.append(node)
        stack.extend(x for x in node.inputs if isinstance(x, Tensor))
    return nodes


# ----------------------------------------------------------------------------- long training


def test_two_thousand_training_steps_keep_memory_flat():
    """2,000 steps of an MLP with Adam. After a 200-step warm-up (optimizer state, scratch
    buffers and numpy's caches all exist by then), the memory held and the peak of a step must
    not grow. The bound, 64 KiB over 1,800 steps, is under 40 bytes a step: leaking even one
    small Python object per step (a float is 24 bytes, a tensor with its array over 100) would
    exceed it, while one parameter-sized array per step would exceed it 25 times over."""
    model = mlp()
    opt = optim.Adam(model.parameters(), lr=1e-3)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((16, 8)).astype(np.float32)
    y = rng.integers(0, 3, 16)

    def step():
        opt.zero_grad()
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        return loss.item()

    ours = (Tensor, Function)
    tracemalloc.start()
    try:
        for i in range(1, 2001):
            step()
            if i in (200, 1800):
                gc.collect()
                if i == 200:
                    objects_200, ours_200 = len(gc.get_objects()), live(*ours)
                    current_200, _ = tracemalloc.get_traced_memory()
                tracemalloc.reset_peak()
            elif i in (400, 2000):
                gc.collect()
                current, peak = tracemalloc.get_traced_memory()
                if i == 400:
                    peak_200 = peak
        objects_2000, ours_2000 = len(gc.get_objects()), live(*ours)
    finally:
        tracemalloc.stop()
    growth, peak_growth = current - current_200, peak - peak_200
    print(
        f"\ntraced memory after step 200: {current_200} B, after step 2000: {current} B "
        f"(growth {growth} B); peak of steps 200-400: {peak_200} B, of steps 1800-2000: "
        f"{peak} B; gc objects {objects_200} -> {objects_2000}"
    )
    assert growth < 64 * KIB, f"memory grew by {growth} bytes over 1,800 steps"
    assert peak_growth < 64 * KIB, f"the peak of a step grew by {peak_growth} bytes"
    assert ours_2000 == ours_200, "tensors or nodes accumulate"
    assert objects_2000 - objects_200 <= 10, (objects_200, objects_2000)


# ----------------------------------------------------------------------------- one graph


def build(x, w, y):
    """A small graph; returns the loss and weak references to what only the graph keeps alive:
    the intermediate tensors and the arrays that nodes saved for backward."""
    h = (x @ w).tanh()
    z = h.sigmoid() * 2.0
    loss = F.mse_loss(z, y) + F.cross_entropy(h, np.array([0, 1, 2, 0]))
    mse_node, ce_node = (t.grad_fn for t in loss.grad_fn.inputs)
    saved = [a for node in (mse_node, ce_node) for a in node.saved_tensors]
    saved = [a for a in saved if isinstance(a, np.ndarray) and a.dtype.kind == "f"]
    assert saved, "MSE and the fused cross-entropy save arrays of their own"
    return loss, [weakref.ref(t) for t in (h, z)], [weakref.ref(a) for a in saved]


def leaves():
    rng = np.random.default_rng(1)
    x = Tensor(rng.standard_normal((4, 5)), requires_grad=True)
    w = Tensor(rng.standard_normal((5, 3)), requires_grad=True)
    return x, w, rng.standard_normal((4, 3)).astype(np.float32)


def test_backward_releases_saved_arrays_and_dropping_the_loss_frees_the_graph():
    x, w, y = leaves()
    with collector_off():
        loss, tensors, saved = build(x, w, y)
        assert all(r() is not None for r in tensors + saved)
        loss.backward()
        assert all(node.saved_tensors is _RELEASED for node in graph_nodes(loss))
        assert all(r() is None for r in saved), "saved arrays outlived backward"
        del loss
        assert all(r() is None for r in tensors), "intermediate tensors outlived the loss"
    assert x.grad is not None and w.grad is not None


def test_retain_graph_keeps_saved_arrays_until_the_last_backward():
    x, w, y = leaves()
    with collector_off():
        loss, _, saved = build(x, w, y)
        loss.backward(retain_graph=True)
        assert all(r() is not None for r in saved)
        loss.backward()
        assert all(r() is None for r in saved)


def test_a_graph_without_backward_is_freed_when_its_output_goes_out_of_scope():
    x, w, y = leaves()
    with collector_off():
        loss, tensors, saved = build(x, w, y)
        del loss
        assert all(r() is None for r in tensors + saved)
        # the same inside a function whose result is never used
        tensors, saved = build(x, w, y)[1:]
        assert all(r() is None for r in tensors + saved)
    assert x.grad is None


def test_a_failed_backward_frees_the_graph_too():
    x, w, y = leaves()
    with collector_off():
        loss, tensors, saved = build(x, w, y)
        with pytest.raises(ValueError, match="grad has shape"):
            loss.backward(np.ones(3))
        del loss
        assert all(r() is None for r in tensors + saved)


def test_parameters_are_not_kept_alive_by_a_dropped_graph():
    with collector_off():
        model = mlp()
        out = model(np.ones((2, 8), np.float32)).sum()
        out.backward()
        params = [weakref.ref(p) for p in model.parameters()]
        del model, out
        assert all(r() is None for r in params)


# ----------------------------------------------------------------------------- cycles


def workload():
    """The engine's paths, each once: module forward, fused and composed ops, backward with and
    without retain_graph, retain_grad, no_grad, anomaly mode, a caught op error, optimizers,
    state dicts, a captured step."""
    model = mlp()
    opts = [
        optim.SGD(model.parameters(), lr=0.1, momentum=0.9),
        optim.Adam(model.parameters(), lr=1e-3),
        optim.AdamW(model.parameters(), lr=1e-3),
    ]
    x = np.random.default_rng(0).standard_normal((4, 8)).astype(np.float32)
    labels = np.array([0, 1, 2, 1])
    for opt in opts:
        opt.zero_grad()
        logits = model(x)
        logits.retain_grad()
        loss = F.cross_entropy(logits, labels) + logits.softmax().var() + logits[1:, ::2].sum()
        loss.backward(retain_graph=True)
        loss.backward()
        opt.step()
    with tg.no_grad():
        model(x).argmax(axis=1)
    with tg.detect_anomaly():
        t = Tensor(x, requires_grad=True)
        (tg.concatenate([t, t * 2], axis=1).logsumexp().mean() / 3).backward()
    try:
        model(np.ones((2, 5), np.float32))
    except ValueError:
        pass
    try:
        Tensor(np.ones(3), requires_grad=True) + np.ones(4)
    except ValueError:
        pass
    a = Tensor(np.ones(3), requires_grad=True)
    tg.stack([a, a.exp(), tg.where(a.data > 0, a, 0.0)]).max(axis=0).sum().backward()
    model.load_state_dict(model.state_dict())
    opts[1].load_state_dict(opts[1].state_dict())
    step = tg.capture(lambda a, b: F.mse_loss(model(a), b))
    for _ in range(5):  # trace, check, replay, then replays through the generated entry
        step(x, np.zeros((4, 3), np.float32))
    whole = tg.capture(  # a whole step, with the optimizer and an extra output
        lambda a, t: (F.cross_entropy(model(a), t), model(a)), optimizer=opts[2]
    )
    for _ in range(5):
        whole(x, labels)


def test_the_engine_creates_no_reference_cycles():
    """After the workload, with the collector off throughout, whatever ``gc.collect()`` finds
    was only collectable as a cycle. None of it may be ours (a tensor, a node, a module, an
    optimizer, an array); anything else found is listed too, to tell where it came from."""
    workload()  # warm up: imports, caches
    gc.set_debug(gc.DEBUG_SAVEALL)
    try:
        with collector_off():
            workload()
            gc.collect()
            garbage = list(gc.garbage)
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
    ours = [
        o
        for o in garbage
        if type(o).__module__.startswith("tinygrad_nn") or isinstance(o, np.ndarray)
    ]
    kinds = sorted({type(o).__name__ for o in garbage})
    assert not ours, f"{len(ours)} of our objects were only collectable as cycles: {kinds}"


def test_no_tensors_or_nodes_survive_a_dropped_graph():
    x, w, y = leaves()
    with collector_off():
        before = live(Tensor, Function)
        for _ in range(10):
            loss, _, _ = build(x, w, y)
            loss.backward()
        del loss
        assert live(Tensor, Function) == before


# ----------------------------------------------------------------------------- deep graphs


def test_a_100k_op_chain_is_freed_without_recursion():
    """Freed without backward (the nodes still hold their saved arrays), then again after
    backward, with the collector both off and traversing the chain. A subprocess, so that a
    crash in deallocation would be reported rather than kill the test run."""
    code = textwrap.dedent(
        """
        import gc, sys, weakref
        import numpy as np
        import tinygrad_nn as tg

        sys.setrecursionlimit(1000)
        x = tg.Tensor(np.ones(2), requires_grad=True)

        def chain(n):
            y = x
            for i in range(n):
                y = (y * 1.0).tanh() if i % 2 else y + 0.0
            return y

        gc.disable()
        y = chain(100_000)
        first = weakref.ref(y.grad_fn.inputs[0])
        del y
        assert first() is None, "the chain outlived its output"
        y = chain(100_000)
        gc.enable()
        gc.collect()  # the collector walks the whole chain
        y.sum().backward()
        del y
        print("freed")
        """
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr[-2000:]
    assert run.stdout.strip() == "freed"
