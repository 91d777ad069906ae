"""Check backward against central differences: f'(x) ≈ (f(x + ε) - f(x - ε)) / 2ε, in float64.

The check works on copies of the input tensors (fn never sees the caller's arrays), those of
lower precision promoted to float64, so the comparison measures the op's calculus rather than
float32 rounding; ``fn`` must then compute in float64 too (a float32 layer or cast inside it
is refused with a TypeError). Small problems compare the full Jacobian (one backward per output
element, with one-hot g) and then check that backward is linear in g with one more backward
for a seeded g of mixed signs; larger ones compare vᵀJ for a random v, and the largest vᵀJu for
random u, v.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from .autograd import enable_grad, no_grad
from .tensor import Tensor

__all__ = ["gradcheck", "numerical_grad", "GradcheckError", "GradcheckWarning"]

FULL_JACOBIAN_MAX = 4096  # out.size * in.size up to which the whole Jacobian is compared
ELEMENTWISE_MAX = 4096  # input size up to which vᵀJ is compared element by element


class GradcheckError(AssertionError):
    """Analytic (backward) and numeric (finite-difference) gradients disagree."""


class GradcheckWarning(UserWarning):
    """A point where the function has a kink: the two one-sided derivatives differ."""


def _promote(inputs: Sequence[Any]) -> list[Any]:
    """Copies of the input tensors, float ones as float64: fn never sees the caller's arrays,
    so a forward that writes into its input cannot change them."""
    out = []
    for x in inputs:
        if isinstance(x, Tensor):
            if x.requires_grad:
                out.append(Tensor(np.array(x.data, np.float64), np.float64, requires_grad=True))
            elif x.dtype.kind == "f":
                out.append(Tensor(np.array(x.data, np.float64), np.float64))
            else:
                out.append(Tensor(x.data.copy(), x.dtype))
        else:
            out.append(x)
    return out


def _output(fn: Callable[..., Any], xs: list[Any]) -> Tensor:
    out = fn(*xs)
    if not isinstance(out, Tensor):
        raise TypeError(f"gradcheck: fn must return a Tensor, got {type(out).__name__}")
    if out.dtype.kind != "f":
        raise TypeError(f"gradcheck: fn must return a float tensor, got dtype {out.dtype}")
    if out.dtype != np.float64:
        raise TypeError(
            f"gradcheck: fn returned a {out.dtype} tensor, but central differences need float64 "
            f"throughout: {out.dtype} rounding swamps the change a small step makes, and the "
            "differences would look like kinks or wrong gradients. Compute in float64: build "
            "layers with dtype=np.float64, or call tinygrad_nn.set_default_dtype(np.float64) "
            "before building the model, and do not cast to a narrower float inside fn"
        )
    return out


def _projected(fn: Callable[..., Any], xs: list[Any], v: np.ndarray) -> float:
    with no_grad():
        return float(np.sum(_output(fn, xs).data * v))


def _analytic(fn: Callable[..., Any], xs: list[Any], v: np.ndarray) -> list[np.ndarray | None]:
    fresh = [Tensor(x.data, dtype=x.dtype, requires_grad=True) if _checked(x) else x for x in xs]
    with enable_grad():
        out = _output(fn, fresh)
        if out.requires_grad:
            # Tensors fn closes over (a layer's weights, an intermediate built outside fn) are
            # left as found: their .grad is restored, and their graph is not freed.
            own = {id(x) for x in fresh}
            kept = [(t, t.grad) for t in _reached(out) if id(t) not in own]
            try:
                out.backward(v.astype(out.dtype), retain_graph=True)
            finally:
                for t, g in kept:
                    t.grad = g
    grads = []
    for x in fresh:
        if _checked(x):
            grads.append(np.zeros_like(x.data) if x.grad is None else x.grad.astype(np.float64))
        else:
            grads.append(None)
    return grads


def _reached(out: Tensor) -> list[Tensor]:
    """Every tensor of out's graph: out and, through the nodes' inputs, all it was made from."""
    seen = {id(out)}
    found, stack = [out], [out]
    while stack:
        node = stack.pop()._ctx
        if node is None:
            continue
        for t in node.inputs:
            if isinstance(t, Tensor) and id(t) not in seen:
                seen.add(id(t))
                found.append(t)
                stack.append(t)
    return found


def _checked(x: Any) -> bool:
    return isinstance(x, Tensor) and x.requires_grad


def _nudged(xs: list[Any], i: int, flat: int | None, delta: Any) -> list[Any]:
    data = xs[i].data.copy()
    if flat is None:
        data += delta
    else:
        data.reshape(-1)[flat] += delta
    return xs[:i] + [Tensor(data, dtype=data.dtype, requires_grad=True)] + xs[i + 1 :]


def numerical_grad(
    fn: Callable[..., Any],
    *inputs: Any,
    eps: float = 1e-6,
    grad_output: np.ndarray | None = None,
) -> list[np.ndarray | None]:
    """Central-difference gradient of Σ(grad_output · fn(*inputs)) for each input that requires
    grad (None for the others), in float64. ``grad_output`` defaults to ones."""
    xs = _promote(inputs)
    with no_grad():
        shape = _output(fn, xs).shape
    v = np.ones(shape) if grad_output is None else np.asarray(grad_output, dtype=np.float64)
    out: list[np.ndarray | None] = []
    for i, x in enumerate(xs):
        if not _checked(x):
            out.append(None)
            continue
        g = np.empty(x.shape)
        for k in range(x.size):
            hi = _projected(fn, _nudged(xs, i, k, eps), v)
            lo = _projected(fn, _nudged(xs, i, k, -eps), v)
            g.reshape(-1)[k] = (hi - lo) / (2 * eps)
        out.append(g)
    return out


def gradcheck(
    fn: Callable[..., Any],
    *inputs: Any,
    eps: float = 1e-6,
    atol: float = 1e-5,
    rtol: float = 1e-3,
    seed: int = 0,
    n_projections: int = 4,
) -> bool:
    """Compare ``fn``'s backward with central differences for every input that requires grad.

    Returns True. On a mismatch raises :class:`GradcheckError` naming the input, the worst
    element's index, the analytic (backward) and numeric values, their absolute and relative
    error and the tolerance |analytic - numeric| ≤ atol + rtol·|numeric|. Where the one-sided
    differences disagree (a kink, e.g. relu at 0) and the analytic value lies between them, the
    element is skipped with a :class:`GradcheckWarning` rather than reported as a failure.

    ``fn`` must return a float64 tensor (TypeError otherwise): float32 rounding inside it would
    swamp the differences. Build layers with ``dtype=np.float64``, or call
    ``tinygrad_nn.set_default_dtype(np.float64)`` before building the model. Tensors ``fn``
    closes over (weights, an intermediate computed outside it) are left as found: their
    ``.grad`` is restored and their graph is not freed.
    """
    xs = _promote(inputs)
    if not any(_checked(x) for x in xs):
        raise ValueError("gradcheck: no input requires grad; nothing to check")
    with no_grad():
        out_shape = _output(fn, xs).shape
    out_size = int(np.prod(out_shape))
    rng = np.random.default_rng(seed)
    for i, x in enumerate(xs):
        if not _checked(x):
            continue
        if out_size == 0 or x.size == 0:
            continue  # an empty Jacobian: nothing to compare
        if out_size * x.size <= FULL_JACOBIAN_MAX:
            rows = []
            for j in range(out_size):
                v = np.zeros(out_shape)
                v.reshape(-1)[j] = 1.0
                rows.append(v)
            numeric = _numeric_jacobian(fn, xs, i, out_size, eps).reshape((out_size, *x.shape))
            analytic = np.stack([_gradient_of(fn, xs, i, v) for v in rows])
            _compare(fn, xs, i, rows, analytic, numeric, eps, atol, rtol)
            _check_linear(fn, xs, i, analytic, _mixed_signs(out_shape, seed, i), atol, rtol)
        elif x.size <= ELEMENTWISE_MAX:
            v = rng.standard_normal(out_shape)
            numeric = numerical_grad(fn, *xs, eps=eps, grad_output=v)[i]
            analytic = _gradient_of(fn, xs, i, v)
            _compare(fn, xs, i, [v], analytic[None], numeric[None], eps, atol, rtol)
        else:
            _check_projections(fn, xs, i, rng, out_shape, eps, atol, rtol, n_projections)
    return True


def _numeric_jacobian(fn, xs, i, out_size, eps) -> np.ndarray:
    """d out / d xs[i] as an (out.size, xs[i].size) array: one central difference per input
    element gives a whole column."""
    jacobian = np.empty((out_size, xs[i].size))
    with no_grad():
        for k in range(xs[i].size):
            hi = _output(fn, _nudged(xs, i, k, eps)).data.reshape(-1)
            lo = _output(fn, _nudged(xs, i, k, -eps)).data.reshape(-1)
            jacobian[:, k] = (hi - lo) / (2 * eps)
    return jacobian


def _gradient_of(fn, xs, i, v) -> np.ndarray:
    analytic = _analytic(fn, xs, v)[i]
    assert analytic is not None
    if analytic.shape != xs[i].shape:
        raise GradcheckError(
            f"gradcheck: the gradient of input {i} has shape {analytic.shape}, "
            f"but the input has shape {xs[i].shape}"
        )
    return analytic


def _compare(fn, xs, i, rows, analytic, numeric, eps, atol, rtol) -> None:
    """Find the worst element over all rows (one row per output element, or one vᵀJ row)."""
    excess = np.abs(analytic - numeric) - (atol + rtol * np.abs(numeric))
    excess = np.where(np.isnan(excess), np.inf, excess)
    out_shape = rows[0].shape
    kinks: list[tuple[int, ...]] = []
    while True:
        flat = int(np.argmax(excess))
        if excess.reshape(-1)[flat] <= 0:
            break
        r, *idx = np.unravel_index(flat, analytic.shape)
        idx = tuple(int(t) for t in idx)
        k = int(np.ravel_multi_index(idx, xs[i].shape)) if idx else 0
        v = rows[r]
        if len(rows) == 1 and out_shape and not (v.reshape(-1) == 1).sum() == 1:
            where = " of vᵀJ for a random v"
        else:
            where = f" of output element {tuple(int(t) for t in np.unravel_index(r, out_shape))}"
        a, n = float(analytic[(r, *idx)]), float(numeric[(r, *idx)])
        f0 = _projected(fn, xs, v)
        right = (_projected(fn, _nudged(xs, i, k, eps), v) - f0) / eps
        left = (f0 - _projected(fn, _nudged(xs, i, k, -eps), v)) / eps
        tol = atol + rtol * max(abs(left), abs(right))
        if abs(left - right) > tol:  # a kink: the derivative jumps here
            lo, hi = min(left, right) - tol, max(left, right) + tol
            if lo <= a <= hi:
                kinks.append(idx)
                excess.reshape(-1)[flat] = -np.inf
                continue
            raise GradcheckError(
                _report(i, xs[i].shape, idx, where, a, n, atol, rtol, eps)
                + f"\n  note: the function has a kink here (left derivative {left:.6g}, right "
                f"derivative {right:.6g}) and the analytic value lies outside both"
            )
        raise GradcheckError(_report(i, xs[i].shape, idx, where, a, n, atol, rtol, eps))
    if kinks:
        warnings.warn(
            f"gradcheck: input {i} sits on a kink at {len(set(kinks))} element(s) (first at "
            f"index {kinks[0]}): the one-sided derivatives differ there, so those elements were "
            f"not compared; move the test point away from the kink",
            GradcheckWarning,
            stacklevel=3,
        )


def _mixed_signs(shape: tuple[int, ...], seed: int, i: int) -> np.ndarray:
    """A seeded upstream gradient of both signs and unequal magnitudes: the first element is
    negative with magnitude above 1, the second (if any) positive below 1, the rest random."""
    rng = np.random.default_rng([seed, i])
    n = int(np.prod(shape))
    v = rng.uniform(0.5, 2.0, n) * rng.choice([-1.0, 1.0], n)
    v[0] = -rng.uniform(1.5, 2.0)
    if n > 1:
        v[1] = rng.uniform(0.5, 0.9)
    return v.reshape(shape)


def _check_linear(fn, xs, i, rows, v, atol, rtol) -> None:
    """Backward must be linear in its incoming gradient g. The Jacobian rows were computed with
    one-hot g (entries 0 and +1 only), which cannot tell ``g * mask`` from
    ``np.maximum(g, 0) * mask`` or a clipped g; so one more backward, with a v of mixed signs
    and magnitudes, must give Σ_j v_j · row_j (up to rounding in the sum)."""
    got = _gradient_of(fn, xs, i, v)
    flat_v = v.reshape(-1)
    want = np.tensordot(flat_v, rows, axes=1)
    scale = np.tensordot(np.abs(flat_v), np.abs(rows), axes=1)
    excess = np.abs(got - want) - (atol + rtol * scale)
    excess = np.where(np.isnan(excess), np.inf, excess)
    flat = int(np.argmax(excess))
    if excess.reshape(-1)[flat] <= 0:
        return
    idx = tuple(int(t) for t in np.unravel_index(flat, got.shape))
    a, w = float(got[idx]), float(want[idx])
    at = f" at index {idx}" if idx else ""
    raise GradcheckError(
        f"gradcheck failed for input {i} (shape {tuple(xs[i].shape)}){at}: backward is not "
        f"linear in its incoming gradient g\n"
        f"  backward(v) for a seeded v of mixed signs:   {a!r}\n"
        f"  Σ_j v_j·backward(e_j) from the one-hot rows: {w!r}\n"
        f"  absolute error {abs(a - w):.3g}; allowed {atol:g} + {rtol:g}*"
        f"{float(scale[idx]):.3g}\n"
        f"  a backward must be linear in g (e.g. g * (x > 0), not np.maximum(g, 0) * (x > 0), "
        f"np.abs(g) or np.clip(g, ...)); the one-hot rows alone feed g of only 0 and +1"
    )


def _check_projections(fn, xs, i, rng, out_shape, eps, atol, rtol, n) -> None:
    for p in range(n):
        v = rng.standard_normal(out_shape)
        u = rng.standard_normal(xs[i].shape)
        analytic = float(np.sum(_analytic(fn, xs, v)[i] * u))
        hi = _projected(fn, _nudged(xs, i, None, eps * u), v)
        lo = _projected(fn, _nudged(xs, i, None, -eps * u), v)
        numeric = (hi - lo) / (2 * eps)
        if not abs(analytic - numeric) <= atol + rtol * abs(numeric):
            where = f" of the projection vᵀJu #{p}"
            raise GradcheckError(
                _report(i, xs[i].shape, None, where, analytic, numeric, atol, rtol, eps)
            )


def _report(i, shape, idx, where, a, n, atol, rtol, eps) -> str:
    at = f" at index {tuple(int(t) for t in idx)}" if idx is not None else ""
    err = abs(a - n)
    rel = err / abs(n) if n != 0 else float("inf")
    return (
        f"gradcheck failed for input {i} (shape {tuple(shape)}){at}{where}:\n"
        f"  analytic (backward):                  {a!r}\n"
        f"  numeric (central differences, eps={eps:g}): {n!r}\n"
        f"  absolute error {err:.3g}, relative error {rel:.3g}; allowed: "
        f"|analytic - numeric| <= atol + rtol*|numeric| = {atol:g} + {rtol:g}*{abs(n):.3g} "
        f"= {atol + rtol * abs(n):.3g}"
    )
