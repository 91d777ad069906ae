"""Capture and replay a fixed-shape training step.

A define-by-run engine rebuilds the graph every step: tensors, nodes, a heap, module calls, checks.
For a step whose shapes do not change, all of that is the same every time. :func:`capture`
records the ops of one call (forward, and the order backward visits them) and replays them
afterwards as a flat list of the same ``forward``/``backward`` calls on numpy arrays, with no
tensors or graph built. It falls back to normal execution for shapes it has not seen (tracing them
the first time) and refuses to capture steps that draw random numbers or whose replay disagrees
with normal execution.

Usage::

    step = tg.capture(lambda x, y: F.mse_loss(model(x), y, reduction="sum") / 20)
    for x, y in batches(...):
        opt.zero_grad()
        loss = step(x, y)   # = fn(x, y).backward(), returning the loss (detached)
        opt.step()
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

import numpy as np

from .autograd import LEAF_LOCK, STATE, Function, _fit_shape, run_backward
from .random import get_generator
from .tensor import Tensor, _make, _to_array

__all__ = ["capture", "CapturedStep"]


class _Tracer:
    """Observes every op run while the traced function executes (the engine's hook)."""

    def __init__(self) -> None:
        self.records: list[tuple[Function, tuple[Any, ...], dict[str, Any], Tensor]] = []

    def on_forward(self, node: Function, args: Any, kwargs: Any, result: Tensor) -> None:
        self.records.append((node, args, kwargs, result))

    def on_backward(self, node: Function, grads: Any) -> None:
        pass


class _Plan:
    """One traced step compiled to a flat Python function of numpy-level calls.

    The generated source (``plan.source``) reads like the hand-written step: one line per op's
    ``forward``, then one block per op's ``backward`` in the order the engine visited them, with
    gradients accumulated into named variables and, for leaves, into ``.grad``.
    """

    def __init__(self, inputs: list[Tensor], records: list[Any], loss: Tensor) -> None:
        name_of = {id(t): f"i{k}" for k, t in enumerate(inputs)}
        shape_of: dict[str, tuple[int, ...]] = {}
        env: dict[str, Any] = {
            "ndarray": np.ndarray,
            "asarray": np.asarray,
            "fit": _fit_shape,
            "LEAF_LOCK": LEAF_LOCK,
        }
        leaves: dict[int, str] = {}
        fwd = [f"def replay({', '.join(name_of.values())}):"]
        ops = []  # (node, output name, argument names or None for constants)
        for k, (node, args, kwargs, result) in enumerate(records):
            env[f"n{k}"] = node
            refs, texts = [], []
            for j, a in enumerate(args):
                if isinstance(a, Tensor):
                    name = name_of.get(id(a))
                    if name is None:  # a parameter or another tensor made outside fn
                        name = leaves.setdefault(id(a), f"L{len(leaves)}")
                        env[name] = a
                        refs.append(name)
                        texts.append(f"{name}.data")
                    else:
                        refs.append(name)
                        texts.append(name)
                else:
                    env[f"c{k}_{j}"] = a
                    refs.append(None)
                    texts.append(f"c{k}_{j}")
            if kwargs:
                env[f"kw{k}"] = dict(kwargs)
                texts.append(f"**kw{k}")
            out = f"v{k}"
            name_of[id(result)] = out
            shape_of[out] = result.shape
            fwd.append(f"    {out} = n{k}.forward({', '.join(texts)})")
            fwd.append(f"    if type({out}) is not ndarray: {out} = asarray({out})")
            ops.append((node, out, refs))
        loss_name = name_of.get(id(loss))
        if loss_name is None or loss_name.startswith("i"):
            raise ValueError("capture: the function must return a tensor computed by its ops")
        for name, t in zip(list(name_of.values())[: len(inputs)], inputs):
            shape_of[name] = t.shape
        # Backward: recorded ops from the last down are a reverse topological order; keep those
        # the loss's gradient reaches along inputs that need grad.
        reached = {loss_name}
        bwd = []
        for node, out, refs in reversed(ops):
            if out not in reached or not any(node.needs_input_grad):
                continue
            k = out[1:]
            block = [
                f"    if g_{out} is not None:",
                f"        r = n{k}.backward(g_{out})",
                "        if type(r) is not tuple: r = (r,)",
            ]
            for j, (ref, need) in enumerate(zip(refs, node.needs_input_grad)):
                if not need or ref is None:
                    continue
                block.append(f"        e = r[{j}]")
                block.append("        if e is not None:")
                if ref.startswith("L"):
                    leaf = env[ref]
                    env[f"S_{ref}"], env[f"D_{ref}"] = leaf.shape, leaf.dtype
                    block += [
                        f"            if e.shape != S_{ref}: e = fit(n{k}, e, S_{ref})",
                        f"            if e.dtype != D_{ref}: e = e.astype(D_{ref})",
                        "            with LEAF_LOCK:",
                        f"                if {ref}.grad is not None: {ref}.grad = {ref}.grad + e",
                        "                else:",
                        "                    if e.base is not None or id(e) in given: e = e.copy()",
                        "                    given.add(id(e))",
                        f"                    {ref}.grad = e",
                    ]
                    continue
                reached.add(ref)
                env[f"S_{ref}"] = shape_of[ref]
                block.append(f"            if e.shape != S_{ref}: e = fit(n{k}, e, S_{ref})")
                block.append(f"            g_{ref} = e if g_{ref} is None else g_{ref} + e")
            bwd.extend(block)
        env["ROOT"] = np.ones_like(loss.data)
        init = [f"    g_{ref} = None" for ref in sorted(reached) if ref != loss_name]
        release = ["    for n in NODES: n.saved_tensors = ()"]
        env["NODES"] = tuple(node for node, _, _ in ops)
        body = fwd + init + [f"    g_{loss_name} = ROOT", "    given = {id(ROOT)}"] + bwd + release
        self.source = "\n".join(body + [f"    return {loss_name}", ""])
        for node, _, _ in ops:  # the traced graph's tensors are not needed any more
            node.inputs = ()
            node.scope = None
        code = compile(self.source, "<tinygrad_nn.capture>", "exec")
        exec(code, env)  # our own generated source, built from the recorded ops only
        self.run_arrays = env.pop("replay")  # its globals are env: no cycle through itself
        self.leaves = [env[name] for name in leaves.values()]

    def run(self, arrays: list[np.ndarray]) -> np.ndarray:
        return self.run_arrays(*arrays)


class CapturedStep:
    """``fn`` captured: calling it runs ``fn(*inputs).backward()`` and returns the loss, replaying
    a recorded plan when the inputs' shapes and dtypes were seen before. See :func:`capture`."""

    def __init__(self, fn: Callable[..., Tensor], check: bool = True) -> None:
        self.fn = fn
        self.check = check
        self._plans: dict[Any, _Plan | None] = {}
        self._verified: set[Any] = set()
        self._ready: dict[Any, _Plan] = {}  # raw argument shapes/dtypes -> a verified plan

    def _inputs(self, args: tuple[Any, ...]) -> list[Tensor]:
        out = []
        for a in args:
            t = a if isinstance(a, Tensor) else Tensor(a)
            if t.requires_grad:
                raise ValueError(
                    "capture: inputs must not require grad (parameters are found inside fn; "
                    "pass data such as the batch x and labels y)"
                )
            out.append(t)
        return out

    def _normal(self, inputs: list[Tensor]) -> Tensor:
        loss = self.fn(*inputs)
        loss.backward()
        return loss.detach()

    def __call__(self, *args: Any) -> Tensor:
        try:
            key = tuple([(a.shape, a.dtype) for a in args])
        except AttributeError:  # Python numbers or lists: the general path
            key = None
        plan = self._ready.get(key)
        if plan is not None and STATE.grad_enabled and STATE.hook is None:
            arrays = []
            for a in args:
                if isinstance(a, Tensor):
                    if a._rg:
                        self._inputs((a,))  # raises the error
                    arrays.append(a.data)
                else:
                    arrays.append(_to_array(a, None))
            return _make(plan.run(arrays), False, None)
        inputs = self._inputs(args)
        if not STATE.grad_enabled or STATE.hook is not None:
            return self._normal(inputs)
        key = tuple((t.shape, t.dtype) for t in inputs)
        if key not in self._plans:
            return self._trace(key, inputs)
        plan = self._plans[key]
        if plan is None:
            return self._normal(inputs)
        if self.check and key not in self._verified:
            return self._verify(key, plan, inputs)
        self._remember(args, plan)
        return _make(plan.run([t.data for t in inputs]), False, None)

    def _remember(self, args: tuple[Any, ...], plan: _Plan) -> None:
        """Let later calls with arguments of these exact shapes and dtypes skip the checks."""
        if all(isinstance(a, (Tensor, np.ndarray)) for a in args):
            self._ready[tuple([(a.shape, a.dtype) for a in args])] = plan

    def _trace(self, key: Any, inputs: list[Tensor]) -> Tensor:
        tracer = _Tracer()
        gen_state = get_generator().bit_generator.state
        STATE.hook = tracer
        try:
            loss = self.fn(*inputs)
        finally:
            STATE.hook = None
        if not isinstance(loss, Tensor) or loss.size != 1 or not loss.requires_grad:
            raise ValueError("capture: fn must return a one-element tensor that requires grad")
        run_backward(loss)
        if get_generator().bit_generator.state != gen_state:
            self._plans[key] = None
            warnings.warn(
                "capture: the step draws random numbers (dropout?), which a replay would "
                "freeze; running it without capture",
                stacklevel=3,
            )
        else:
            self._plans[key] = _Plan(inputs, tracer.records, loss)
        return loss.detach()

    def _verify(self, key: Any, plan: _Plan, inputs: list[Tensor]) -> Tensor:
        """Replay once beside normal execution; keep the plan only if both agree."""
        leaves = {id(t): t for t in plan.leaves if t.requires_grad}
        before = {k: t.grad for k, t in leaves.items()}
        replayed = plan.run([t.data for t in inputs])
        got = {k: t.grad for k, t in leaves.items()}
        for k, t in leaves.items():
            t.grad = before[k]
        loss = self._normal(inputs)
        ok = np.allclose(replayed, loss.data, rtol=1e-5, atol=1e-6) and all(
            (got[k] is None) == (t.grad is None)
            and (got[k] is None or np.allclose(got[k], t.grad, rtol=1e-5, atol=1e-6))
            for k, t in leaves.items()
        )
        if ok:
            self._verified.add(key)
            self._remember(tuple(inputs), plan)
        else:
            self._plans[key] = None
            warnings.warn(
                "capture: replaying the recorded step disagreed with running it (does it "
                "depend on values through comparisons, numpy calls or Python control flow?); "
                "running it without capture",
                stacklevel=3,
            )
        return loss


def capture(fn: Callable[..., Tensor], *, check: bool = True) -> CapturedStep:
    """Capture a training step ``fn(*inputs) -> loss`` for fast replay.

    ``capture(fn)(*inputs)`` does what ``loss = fn(*inputs); loss.backward()`` does — gradients
    accumulate into the parameters' ``.grad`` — and returns the loss (detached). The first call
    for given input shapes and dtypes runs normally and records the ops; later calls replay them
    without building a graph. With ``check`` (the default) the first replay is compared with
    normal execution, and a step that replays differently is not captured. Steps that draw
    random numbers (dropout) are never captured. ``fn`` must compute the loss from its inputs and
    the parameters only with tinygrad_nn ops, the same ops every call.
    """
    return CapturedStep(fn, check=check)
