"""What define-by-run itself costs: the leanest engine for the two benchmark networks, timed
beside the numpy floor and tinygrad_nn's eager step.

``python benchmarks/minimal_tape.py`` (about 30 s, one BLAS thread, prints a markdown table).

The minimal tape is a define-by-run engine cut to the bone: every op runs numpy and appends its
backward, a closure, to a list; backward walks the list in reverse; the gradients stay in
``.grad`` and the optimizer updates each parameter with them, as the library does. It has only
the four ops these networks use (the dense layer fused, sigmoid, ReLU, and the two losses) and
none of what tinygrad_nn does per op or per step besides the arithmetic: modules (and the scopes
that group a graph drawing by layer), hooks (capture, anomaly checks), grad mode, checks of
shapes, dtypes and in-place changes, error messages naming the op, thread-safe accumulation into
``.grad``, graphs that branch and join (the list order is right only for ops recorded on one
thread), param groups and learning rates checked at each step. The gap between it and the floor
is the price of building a graph at every step at all; the gap between tinygrad_nn and it is the
price of those features.

It is checked before timing: three steps from the benchmark's initial weights must give the
floor's parameters to float32 rounding.
"""

from __future__ import annotations

import math
import os
import sys

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np  # noqa: E402
import workloads as W  # noqa: E402

F32 = np.float32


class Var:
    """A value in the tape: its array, its gradient, whether it needs one."""

    __slots__ = ("data", "grad", "needs")

    def __init__(self, data: np.ndarray, needs: bool = False) -> None:
        self.data, self.grad, self.needs = data, None, needs


class Tape:
    """The ops record their backward closures here, in order; ``backward`` runs them reversed."""

    def __init__(self) -> None:
        self.ops: list = []
        self.ones: dict[int, np.ndarray] = {}

    def dense(self, x: Var, w: Var, b: Var) -> Var:
        """x @ Wᵀ + b;  dL/dx = g W,  dL/dW = gᵀ x,  dL/db = onesᵀ g."""
        out = np.matmul(x.data, w.data.T)
        out += b.data
        res = Var(out, True)

        def backward() -> None:
            g = res.grad
            if x.needs:
                _add(x, np.matmul(g, w.data))
            _add(w, np.matmul(g.T, x.data))
            _add(b, np.matmul(self._ones(len(g)), g))

        self.ops.append(backward)
        return res

    def sigmoid(self, x: Var) -> Var:
        """σ(x) = ½ + ½ tanh(x/2);  dL/dx = g σ (1 - σ)."""
        s = np.multiply(x.data, 0.5)
        np.tanh(s, out=s)
        s *= 0.5
        s += 0.5
        res = Var(s, True)

        def backward() -> None:
            d = res.grad * s
            d *= 1 - s
            _add(x, d)

        self.ops.append(backward)
        return res

    def relu(self, x: Var) -> Var:
        """max(x, 0);  dL/dx = g where the output is positive."""
        out = np.maximum(x.data, 0)
        res = Var(out, True)

        def backward() -> None:
            _add(x, res.grad * (out > 0))

        self.ops.append(backward)
        return res

    def quadratic_cost(self, a: Var, y: np.ndarray) -> Var:
        """C = Σ‖a - y‖² / (2n);  dC/da = (a - y) / n."""
        d = a.data - y
        n = len(y)
        res = Var(np.asarray(np.vdot(d, d) * (0.5 / n), F32), True)

        def backward() -> None:
            _add(a, d * (res.grad * (1.0 / n)))

        self.ops.append(backward)
        return res

    def cross_entropy(self, z: Var, labels: np.ndarray) -> Var:
        """mean(log Σ e^z - z[label]);  dL/dz = (softmax(z) - onehot) / n."""
        n = len(labels)
        rows = np.arange(n)
        shifted = z.data - z.data.max(axis=1, keepdims=True)
        e = np.exp(shifted)
        total = e.sum(axis=1, keepdims=True)
        loss = (np.log(total).sum() - shifted[rows, labels].sum()) / n
        res = Var(np.asarray(loss, F32), True)

        def backward() -> None:
            p = e / total
            p[rows, labels] -= 1
            p *= res.grad * (1.0 / n)
            _add(z, p)

        self.ops.append(backward)
        return res

    def backward(self, loss: Var) -> None:
        loss.grad = np.ones((), loss.data.dtype)
        for op in reversed(self.ops):
            op()
        self.ops.clear()

    def _ones(self, n: int) -> np.ndarray:
        ones = self.ones.get(n)
        if ones is None:
            ones = self.ones[n] = np.ones(n, F32)
        return ones


def _add(v: Var, g: np.ndarray) -> None:
    v.grad = g if v.grad is None else v.grad + g


def build(net: W.Net, init: list[np.ndarray], batches: list[W.Batch]) -> W.Trainer:
    """The minimal tape's training step for ``net``. The optimizer is laid out as the library's
    (and the floor's): parameters, moments and scratch are flat buffers with a view per
    parameter, and the gradients stay per parameter in ``.grad``, so the passes that read them
    run per parameter and the rest on whole buffers: plain SGD θ ← θ - γ∇, or PyTorch's Adam
    rearranged as in the floor."""
    import floor

    tape = Tape()
    shapes = [p.shape for p in init]
    flat, views = floor._flat_views(shapes)
    flat[:] = np.concatenate([p.ravel() for p in init])
    params = [Var(view, True) for view in views]
    m, m_parts = floor._flat_views(shapes)
    v, _ = floor._flat_views(shapes)
    tmp, tmp_parts = floor._flat_views(shapes)
    layers = list(zip(params[::2], params[1::2]))
    sigmoid = net.activation == "sigmoid"
    targets = [b.onehot if net.key == "nielsen" else b.labels for b in batches]
    inputs = [Var(b.x) for b in batches]
    at, t = [0], [0]
    (b1, b2), eps, lr = W.ADAM_BETAS, W.ADAM_EPS, net.lr

    def step() -> float:
        k = at[0] % len(inputs)
        at[0] += 1
        for p in params:
            p.grad = None
        h = inputs[k]
        for i, (w, b) in enumerate(layers):
            h = tape.dense(h, w, b)
            if sigmoid:
                h = tape.sigmoid(h)
            elif i < len(layers) - 1:
                h = tape.relu(h)
        if net.key == "nielsen":
            loss = tape.quadratic_cost(h, targets[k])
        else:
            loss = tape.cross_entropy(h, targets[k])
        tape.backward(loss)
        if net.optimizer == "sgd":
            for p in params:
                p.data += p.grad * -lr
            return float(loss.data)
        t[0] += 1
        c2 = math.sqrt(1 - b2 ** t[0])
        for p, mp, tp in zip(params, m_parts, tmp_parts):  # m ← m + (1 - β₁)(g - m)
            np.subtract(p.grad, mp, out=tp)
        np.multiply(tmp, 1 - b1, out=tmp)
        np.add(m, tmp, out=m)
        for p, tp in zip(params, tmp_parts):  # v ← β₂v + (1 - β₂)g²
            np.multiply(p.grad, p.grad, out=tp)
        np.multiply(tmp, 1 - b2, out=tmp)
        np.multiply(v, b2, out=v)
        np.add(v, tmp, out=v)
        # θ ← θ - γ√(1-β₂ᵗ)/(1-β₁ᵗ) · m / (√v + ε√(1-β₂ᵗ))
        np.sqrt(v, out=tmp)
        np.add(tmp, eps * c2, out=tmp)
        np.divide(m, tmp, out=tmp)
        np.multiply(tmp, -lr * c2 / (1 - b1 ** t[0]), out=tmp)
        np.add(flat, tmp, out=flat)
        return float(loss.data)

    return W.Trainer(step, lambda: [p.data.copy() for p in params])


def check(net: W.Net, init: list[np.ndarray], batches: list[W.Batch]) -> None:
    """Three steps of the minimal tape must leave the floor's parameters (float32 rounding)."""
    import floor

    tape, ref = build(net, init, batches), floor.build(net, init, len(batches[0].x))
    for b in batches[:3]:
        tape.step()
        ref.step(b.x, b.onehot if net.key == "nielsen" else b.labels)
    for got, want in zip(tape.params(), ref.params):
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-6)


def main() -> None:
    import contenders
    import harness

    harness.set_threads(1)
    np.seterr(all="ignore")
    x, y, _ = W.load_mnist_train()
    builders = contenders.available()
    rows = []
    for key, batch in (("nielsen", 10), ("nielsen", 512), ("relu_adam", 10), ("relu_adam", 128)):
        net = W.NETS[key]
        init = W.initial_params(net)
        batches = W.make_batches(x, y, batch, 20)
        check(net, init, batches)
        fns = {
            "numpy floor": builders[W.FLOOR](net, init, batches).step,
            "minimal tape": build(net, init, batches).step,
            "tinygrad_nn eager": builders[W.EAGER](net, init, batches).step,
        }
        timing = harness.interleave(fns, blocks=15, block_seconds=0.15, warmup_seconds=0.1)
        floor_s = timing["numpy floor"].cpu_median
        cells = [
            f"{t.cpu_median * 1e3:.3f} ({t.cpu_median / floor_s:.2f}×)" for t in timing.values()
        ]
        rows.append(f"| {key} | {batch} | " + " | ".join(cells) + " |")
        print(rows[-1], file=sys.stderr, flush=True)
    print("Median CPU ms per training step, 1 thread (× the numpy floor), interleaved.\n")
    print("| network | batch | " + " | ".join(fns) + " |")
    print("| --- | ---: | " + " | ".join("---:" for _ in fns) + " |")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
