"""The peers: PyTorch (eager), MyGrad and HIPS autograd, each training the same networks from the
same weights on the same batches, written the way each one's users write it.

* PyTorch: ``nn.Sequential`` of ``nn.Linear``, ``F.mse_loss`` / ``F.cross_entropy``,
  ``torch.optim.SGD`` / ``Adam`` with their defaults (on the CPU: the per-tensor loop, no
  foreach or fused kernels unless asked for).
* MyGrad has layers' maths but no optimizers: ``x @ W + b`` with W stored (in, out), its
  ``sigmoid``/``relu`` and ``softmax_crossentropy``; the update is numpy on ``.data``. Python
  scalars would promote its float32 tensors to float64, so constants are float32 numpy scalars.
  Its memory guarding (on by default) is left on.
* HIPS autograd is functional: ``value_and_grad`` of a loss written in ``autograd.numpy``
  (σ through tanh, log-softmax through a max-shifted log-sum-exp); numpy updates in place.

Adam for the latter two is the same per-tensor numpy code (PyTorch's rule), in :class:`NumpyAdam`.
"""

from __future__ import annotations

import importlib.util
import itertools
from collections.abc import Callable

import numpy as np
from workloads import ADAM_BETAS, ADAM_EPS, Batch, Net, Trainer


def _has(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def available() -> dict[str, Callable]:
    """Name → builder for the peers that are installed (missing ones are skipped silently)."""
    found: dict[str, Callable] = {}
    if _has("torch"):
        found["PyTorch"] = build_torch
    if _has("mygrad"):
        found["MyGrad"] = build_mygrad
    if _has("autograd"):
        found["autograd"] = build_autograd
    return found


def versions() -> dict[str, str]:
    out = {}
    for name in ("torch", "mygrad", "autograd"):
        if _has(name):
            try:
                from importlib.metadata import version

                out[name] = version(name)
            except Exception:  # noqa: BLE001 - a version is only information
                out[name] = "?"
    return out


class NumpyAdam:
    """PyTorch's Adam, per tensor, updating ``arrays`` in place from ``grads()``."""

    def __init__(self, arrays: list[np.ndarray], lr: float) -> None:
        self.arrays, self.lr, self.t = arrays, lr, 0
        self.m = [np.zeros_like(a) for a in arrays]
        self.v = [np.zeros_like(a) for a in arrays]

    def step(self, grads: list[np.ndarray]) -> None:
        (b1, b2), self.t = ADAM_BETAS, self.t + 1
        size = self.lr / (1 - b1**self.t)
        c2 = np.sqrt(1 - b2**self.t)
        for p, g, m, v in zip(self.arrays, grads, self.m, self.v):
            m += (1 - b1) * (g - m)
            v *= b2
            v += (1 - b2) * (g * g)
            p -= size * m / (np.sqrt(v) / c2 + ADAM_EPS)


def _in_out(init: list[np.ndarray]) -> list[np.ndarray]:
    """Weights (out, in) → (in, out) copies, biases copied as they are."""
    return [np.ascontiguousarray(p.T) if p.ndim == 2 else p.copy() for p in init]


def _out_in(arrays: list[np.ndarray]) -> list[np.ndarray]:
    return [np.array(a.T) if a.ndim == 2 else a.copy() for a in arrays]


# ---------------------------------------------------------------------- PyTorch


def build_torch(net: Net, init: list[np.ndarray], batches: list[Batch]):
    import torch
    import torch.nn.functional as F

    layers: list[torch.nn.Module] = []
    last = len(net.sizes) - 2
    for i, (n_in, n_out) in enumerate(zip(net.sizes[:-1], net.sizes[1:])):
        lin = torch.nn.Linear(n_in, n_out)
        with torch.no_grad():
            lin.weight.copy_(torch.from_numpy(init[2 * i]))
            lin.bias.copy_(torch.from_numpy(init[2 * i + 1]))
        layers.append(lin)
        if net.activation == "sigmoid":
            layers.append(torch.nn.Sigmoid())
        elif i < last:
            layers.append(torch.nn.ReLU())
    model = torch.nn.Sequential(*layers)
    params = list(model.parameters())
    if net.key == "nielsen":
        opt = torch.optim.SGD(params, lr=net.lr)
        data = itertools.cycle(
            [(torch.from_numpy(b.x), torch.from_numpy(b.onehot)) for b in batches]
        )

        def step():
            x, y = next(data)
            loss = F.mse_loss(model(x), y, reduction="sum") / (2 * len(y))
            opt.zero_grad()
            loss.backward()
            opt.step()
            return loss

    else:
        opt = torch.optim.Adam(params, lr=net.lr)
        data = itertools.cycle(
            [(torch.from_numpy(b.x), torch.from_numpy(b.labels)) for b in batches]
        )

        def step():
            x, labels = next(data)
            loss = F.cross_entropy(model(x), labels)
            opt.zero_grad()
            loss.backward()
            opt.step()
            return loss

    def params_out():
        return [p.detach().numpy().copy() for p in params]

    return Trainer(step, params_out, [f"torch {torch.__version__}, default optimizer path"])


# ---------------------------------------------------------------------- MyGrad


def build_mygrad(net: Net, init: list[np.ndarray], batches: list[Batch]):
    import mygrad as mg
    from mygrad.nnet.activations import relu, sigmoid
    from mygrad.nnet.losses import softmax_crossentropy

    params = [mg.Tensor(a) for a in _in_out(init)]
    f32 = np.float32
    if net.key == "nielsen":
        w1, b1, w2, b2 = params
        data = itertools.cycle([(b.x, b.onehot) for b in batches])
        lr = f32(net.lr)

        def step():
            x, y = next(data)
            a = sigmoid(mg.matmul(x, w1) + b1)
            a = sigmoid(mg.matmul(a, w2) + b2)
            d = a - y
            loss = mg.sum(d * d) / f32(2 * len(y))
            loss.backward()
            for p in params:
                p.data -= lr * p.grad
            return loss

    else:
        w1, b1, w2, b2, w3, b3 = params
        data = itertools.cycle([(b.x, b.labels) for b in batches])
        adam = NumpyAdam([p.data for p in params], net.lr)

        def step():
            x, labels = next(data)
            h = relu(mg.matmul(x, w1) + b1)
            h = relu(mg.matmul(h, w2) + b2)
            loss = softmax_crossentropy(mg.matmul(h, w3) + b3, labels)
            loss.backward()
            adam.step([p.grad for p in params])
            return loss

    return Trainer(step, lambda: _out_in([p.data for p in params]), ["memory guarding on"])


# ---------------------------------------------------------------------- HIPS autograd


def build_autograd(net: Net, init: list[np.ndarray], batches: list[Batch]):
    import autograd.numpy as anp
    from autograd import value_and_grad

    params = _in_out(init)

    def sigmoid(z):
        return 0.5 * anp.tanh(0.5 * z) + 0.5

    if net.key == "nielsen":

        def quadratic_cost(ps, x, y):
            w1, b1, w2, b2 = ps
            a = sigmoid(anp.dot(sigmoid(anp.dot(x, w1) + b1), w2) + b2)
            d = a - y
            return anp.sum(d * d) / (2 * len(y))

        grad_fn = value_and_grad(quadratic_cost)
        data = itertools.cycle([(b.x, b.onehot) for b in batches])
        lr = net.lr

        def step():
            x, y = next(data)
            loss, grads = grad_fn(params, x, y)
            for p, g in zip(params, grads):
                p -= lr * g
            return loss

    else:
        rows = {len(b.x): np.arange(len(b.x)) for b in batches}

        def cross_entropy(ps, x, labels):
            w1, b1, w2, b2, w3, b3 = ps
            h = anp.maximum(anp.dot(x, w1) + b1, 0)
            h = anp.maximum(anp.dot(h, w2) + b2, 0)
            z = anp.dot(h, w3) + b3
            z = z - anp.max(z, axis=1, keepdims=True)
            logp = z - anp.log(anp.sum(anp.exp(z), axis=1, keepdims=True))
            return -anp.mean(logp[rows[len(x)], labels])

        grad_fn = value_and_grad(cross_entropy)
        data = itertools.cycle([(b.x, b.labels) for b in batches])
        adam = NumpyAdam(params, net.lr)

        def step():
            x, labels = next(data)
            loss, grads = grad_fn(params, x, labels)
            adam.step(grads)
            return loss

    return Trainer(step, lambda: _out_in(params))
