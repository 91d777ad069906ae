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

import threading
import warnings
import weakref
from collections.abc import Callable
from typing import Any

import numpy as np
from numpy import ndarray

from .autograd import LEAF_LOCK, STATE, _fit_shape, run_backward
from .lowering import RULES, Lowering, Program, Value
from .optim.flat import FlatGroup
from .optim.optimizer import UPDATE_HOOKS, Optimizer
from .random import get_generator
from .tensor import Tensor, _make, _to_array
from .tracing import MODE_FREE, Derived, InputRef, Tracer, refers, same_trace

__all__ = ["capture", "CapturedStep"]


def _source(prog: Program, name: str, a: Any) -> str:
    """Source text for constant ``a`` that holds input references: ``i{k}`` for those, named
    constants for the rest."""
    if type(a) is InputRef:
        return f"i{a.k}"
    if type(a) is Derived:
        args = ", ".join(_source(prog, f"{name}_{j}", x) for j, x in enumerate(a.args))
        return f"{prog.const(name + '_fn', a.fn)}({args})"
    if type(a) in (tuple, list) and refers(a):
        parts = [_source(prog, f"{name}_{j}", x) for j, x in enumerate(a)]
        text = ", ".join(parts) + ("," if len(parts) == 1 and type(a) is tuple else "")
        return f"({text})" if type(a) is tuple else f"[{text}]"
    return prog.const(name, a)


_NUMPY = {
    name: getattr(np, name)
    for name in (
        "add",
        "amax",
        "asarray",
        "copyto",
        "exp",
        "greater",
        "log",
        "matmul",
        "maximum",
        "multiply",
        "ndarray",
        "negative",
        "subtract",
        "tanh",
        "vdot",
    )
}


class _Plan:
    """One traced step compiled to a flat Python function of numpy-level calls.

    The generated source (``plan.source``) reads like the hand-written step: the forward of each
    op, lowered to numpy calls into preallocated buffers where :mod:`tinygrad_nn.lowering` has a
    rule for it and a call of the op's own ``forward`` otherwise; then the backward blocks in the
    order the engine visits them; then, for a step with an optimizer, the gradients handed to
    the parameters and ``optimizer.step()`` (or its lean form), or, for plain SGD folded into
    backward (``keep_grads=False``), one addition of the update to the parameters.

    ``run(arrays)`` returns the loss array (a tuple with the extra outputs), ``_SKIP`` when this
    call's inputs do not suit the plan (run it normally), or None when the state the plan was
    made for has changed — the parameters' arrays (an optimizer laid them out anew, or
    ``p.data`` was replaced) or their ``requires_grad``, the modes or attributes of the modules
    the step calls, the optimizer's param groups, a ``step()``, ``zero_grad()`` or update hook
    set on the optimizer (or our ``step()`` or ``zero_grad()`` replaced on its class): the plan
    is stale then and nothing has run.
    """

    def __init__(
        self, signature: Any, trace: Tracer, optimizer: Any = None, keep_grads: bool = True
    ) -> None:
        records, results = trace.records, trace.made
        prog = Program()
        env = prog.env
        env.update(_NUMPY)
        env.update({"fit": _fit_shape, "LEAF_LOCK": LEAF_LOCK})
        values: dict[int, Value] = {}  # by id: the tensors made outside fn
        inputs = [Value(f"i{k}", shape, dtype) for k, (shape, dtype) in enumerate(signature)]
        leaves: list[Tensor] = []
        constants: set[int] = set()  # ids of the Values of non-tensor arguments
        ops = []  # (k, node, rule or None, argument values, output value)
        made: list[Value] = []  # each record's output
        wanted = set(results[1:])  # the extra outputs fn returns beside the loss
        for k, (node, refs, kwargs, (shape, dtype)) in enumerate(records):
            argvals: list[Value | None] = []
            for j, (kind, a) in enumerate(refs):
                if kind == "op":
                    argvals.append(made[a])
                elif kind == "input":
                    argvals.append(inputs[a])
                elif kind == "tensor":
                    v = values.get(id(a))
                    if v is None:  # a parameter or another tensor made outside fn
                        v = values[id(a)] = Value(f"w{len(leaves)}", a.shape, a.dtype)
                        leaves.append(a)
                    argvals.append(v)
                elif a is None:
                    argvals.append(None)
                elif type(a) is InputRef:  # an input's array, given as a plain array
                    argvals.append(inputs[a.k])
                    constants.add(id(inputs[a.k]))
                elif type(a) is Derived:  # e.g. one_hot(labels) with the labels an input
                    const = Value(_source(prog, f"c{k}_{j}", a), a.shape, a.dtype)
                    constants.add(id(const))
                    argvals.append(const)
                elif refers(a):  # e.g. an index (rows, labels) with the labels an input
                    const = Value(_source(prog, f"c{k}_{j}", a), (), np.dtype(object))
                    constants.add(id(const))
                    argvals.append(const)
                else:
                    arr = np.asarray(a)
                    const = Value(prog.const(f"c{k}_{j}", a), arr.shape, arr.dtype)
                    constants.add(id(const))
                    argvals.append(const)
            out_info = Value("", shape, dtype)
            rule_cls = RULES.get(type(node))
            refs_in_kwargs = any(refers(a) for a in kwargs.values())
            if (
                rule_cls is not None
                and not refs_in_kwargs
                and rule_cls.applies(argvals, kwargs, out_info)
            ):
                rule = rule_cls(node, argvals, kwargs)
                out = rule.forward(prog, out_info)
            else:
                rule = None
                env[f"n{k}"] = node
                reads_input = refs_in_kwargs or any(
                    kind == "const" and refers(a) for kind, a in refs
                )
                texts = [v.code if v is not None else "None" for v in argvals]
                if refs_in_kwargs:
                    texts += [f"{n}={_source(prog, f'kw{k}_{n}', a)}" for n, a in kwargs.items()]
                elif kwargs:
                    texts.append(f"**{prog.const(f'kw{k}', dict(kwargs))}")
                out = Value(f"v{k}", shape, dtype)
                prog.emit(f"v{k} = n{k}.forward({', '.join(texts)})")
                prog.emit(f"if type(v{k}) is not ndarray: v{k} = asarray(v{k})")
                if reads_input:  # say, a mask: its values decide the shape; if not as traced,
                    # this call runs normally (and the plan stays)
                    env["SKIP"] = _SKIP
                    prog.emit(f"if v{k}.shape != {prog.const(f'SHAPE{k}', shape)}: return SKIP")
                # its output may view its inputs' buffers, and its backward reads what it saved
                prog.backing[out.code] = _buffers_of(prog, argvals)
            made.append(out)
            ops.append((k, node, rule, argvals, out))
            if k in wanted:  # copied at once: its buffer may be reused by the next lines
                prog.emit(f"o{k} = {out.code}.copy()")
        loss_val = made[results[0]]

        # Where the leaves' gradients go: straight into the optimizer's flat gradient buffer
        # where it has one for the parameter (with our own step() and zero_grad()); otherwise
        # into a buffer, then handed to a parameter as a copy, or added to the .grad of other
        # leaves and of parameters whose optimizer has a zero_grad() of its own (which the
        # replay calls). The flat buffer is made, if new, after compiling: the compiler's
        # memory comes and goes first.
        zeroes = _zeroes_to_none(optimizer)
        standard = zeroes and _steps_as_ours(optimizer) and _updates_as_ours(optimizer)
        homes = _flat_grad_homes(optimizer) if standard else {}
        leaf_val = {id(t): values[id(t)] for t in leaves}
        dest: dict[int, Value] = {}
        views: dict[str, tuple[FlatGroup, int]] = {}  # G{j} -> its flat group and position
        for j, t in enumerate(leaves):
            home = homes.get(id(t))
            if home is not None:
                v = leaf_val[id(t)]
                dest[id(v)] = Value(f"G{j}", v.shape, v.dtype)
                views[f"G{j}"] = home
        low = Lowering(prog, dest)

        # Folding plain SGD into backward (keep_grads=False): every leaf's gradient goes to the
        # optimizer's flat buffer, and backward starts from the seed -γ instead of 1, so that
        # buffer receives the update -γ∇ itself and one addition applies it: θ ← θ + (-γ∇).
        # That needs every op's backward to be linear in the gradient it is given: ours are
        # (vector-Jacobian products); a Function of the user's own may not be (one that clips
        # its gradient, say), so a step with one is not folded; nor is one that computes in a
        # narrower float than the parameters' (-γ∇ would underflow where ∇ does not).
        params = _optimizer_params(optimizer) if zeroes else {}
        plain = None
        if not keep_grads and standard and hasattr(optimizer, "_plain_update"):
            plain = optimizer._plain_update()
        fold = (
            plain is not None
            and all(id(leaf_val[id(t)]) in dest for t in leaves if trace.rg[id(t)])
            and all(_ours(node) for _, node, rule, _, _ in ops if rule is None)
            and all(
                out.dtype.kind != "f" or out.dtype.itemsize >= plain[1].data.dtype.itemsize
                for *_, out in ops
            )
        )
        seed = None
        if fold:  # (dropped below if a parameter is not reached: the seed is then 1)
            root = next((rule for _, _, rule, _, out in ops if out is loss_val), None)
            if getattr(root, "scalar_grad", False):  # a Python float will do
                seed = Value("seed", loss_val.shape, loss_val.dtype)
            else:
                seed = Value("SEED", loss_val.shape, loss_val.dtype)
                env["SEED"] = np.ones(loss_val.shape, loss_val.dtype)

        # Backward: recorded ops from the last down are a reverse topological order. An
        # optimizer's zero_grad() of its own is called here, after the forward (whose shape
        # checks may hand the call back to normal execution, which calls it).
        if optimizer is not None and not zeroes:
            prog.emit("if step: OPT.zero_grad()")  # (a check starts after the call's)
        # A flat gradient buffer not made yet is made here, at the first replay's backward: the
        # call that checks the plan holds the gradients of normal execution, and they need not
        # coexist with an idle buffer through the forward as well.
        deferred = any(flat.grad is None for flat, _ in views.values())
        if deferred:
            prog.emit("if MAKE_GRADS is not None: MAKE_GRADS(globals())")
        env["ROOT"] = np.ones(loss_val.shape, loss_val.dtype)
        for k, node, rule, argvals, out in reversed(ops):
            g = seed if out is loss_val else low.grad(out)
            if (g is None and out is not loss_val) or not any(node.needs_input_grad):
                continue
            if rule is not None:
                rule.backward(low, g)
                continue
            keep = " ".join(sorted(f"${s}" for s in prog.backing[out.code]))
            prog.emit(f"r = n{k}.backward({g.code if g is not None else 'ROOT'})  # {keep}")
            # as run_backward takes them: a list for a tuple, a number for an array
            prog.emit("if type(r) is not tuple: r = tuple(r) if type(r) is list else (r,)")
            for j, (v, need) in enumerate(zip(argvals, node.needs_input_grad)):
                if not need or v is None or id(v) in constants:
                    continue
                t = low.grad_target(v)
                s = prog.const(f"S{k}_{j}", v.shape)
                prog.emit(f"e = r[{j}]")
                prog.emit(f"if e is None: {t.code}.fill(0)")
                prog.emit(f"elif type(e) is ndarray and e.shape == {s}: copyto({t.code}, e)")
                prog.emit(f"else: copyto({t.code}, fit(n{k}, e, {s}))")
                low.grad_done(v)

        # The leaves' gradients, and the optimizer's step.
        tail = []
        for j, t in enumerate(leaves):
            v = leaf_val[id(t)]
            g = low.grad(v)
            env[f"L{j}"] = t
            if g is None or not trace.rg[id(t)]:
                continue
            if id(v) in dest:
                tail.append(f"L{j}.grad = {g.code}")
            elif id(t) in params:  # after zero_grad there is nothing to add to
                prog.emit(f"L{j}.grad = {g.code}.copy()")
            else:
                prog.emit("with LEAF_LOCK:")
                prog.emit(f"    if L{j}.grad is None: L{j}.grad = {g.code}.copy()")
                prog.emit(f"    else: L{j}.grad = L{j}.grad + {g.code}")
        reached = {id(t) for t in leaves if low.grad(leaf_val[id(t)]) is not None}
        unreached = [p for p in params.values() if id(p) not in reached]
        fold = fold and not unreached  # else part of the flat buffer would not be written
        env["UNREACHED"] = tuple(unreached)
        if loss_val.slot is not None or prog.backing.get(loss_val.code):
            # the loss must outlive the buffers (a local may be a view of one)
            prog.emit(f"loss = {loss_val.code}.copy()")
            loss_code = "loss"
        else:
            loss_code = loss_val.code
        lines, buffers = prog.allocate()

        # the buffers are default arguments: locals, the fastest names to look up
        params_text = [f"i{k}" for k in range(len(inputs))] + ["step=True"]
        params_text += [f"{name}={name}" for name, _, _ in buffers]
        head = [f"def replay({', '.join(params_text)}):"]
        guards = []
        for j, t in enumerate(leaves):
            env[f"A{j}"] = t.data
            head.append(f"    w{j} = L{j}.data")
            guards.append(f"w{j} is not A{j}")
            # requires_grad switched since the trace: the plan computes other gradients
            guards.append(f"not L{j}._rg" if trace.rg[id(t)] else f"L{j}._rg")
        for k, j in trace.alias:  # traced with one array for both: so must the replay be
            guards.append(f"i{k} is not i{j}")
        for j, (module, training, version) in enumerate(trace.modes):
            # a tensor or sub-module set since (the plan holds the old objects); train()/eval()
            env[f"M{j}"] = module
            guards.append(f"M{j}._version != {int(version)}")
            if type(module) not in MODE_FREE:
                flag = repr(training) if type(training) is bool else prog.const(f"T{j}", training)
                guards.append(f"M{j}.training is not {flag}")
        if optimizer is not None:
            env["OPT"], env["NGROUPS"] = optimizer, len(optimizer.param_groups)
            guards.append("len(OPT.param_groups) != NGROUPS")
            # a method or update hook set on the object since, or our step() and zero_grad()
            # replaced on the class
            unset = _OVERRIDABLE.difference(getattr(optimizer, "__dict__", _OVERRIDABLE))
            if unset:
                env["UNSET"] = unset
                guards.append("not UNSET.isdisjoint(OPT.__dict__)")
            for name in ("step", "zero_grad"):
                own = getattr(Optimizer, name)
                if _ours_as_is(optimizer, name, own):
                    env[f"OWN_{name}"] = own
                    guards.append(f"type(OPT).{name} is not OWN_{name}")
            # each group's parameters, the ones the plan clears, hands gradients to and steps
            named = {id(t): f"L{j}" for j, t in enumerate(leaves)}
            for i, group in enumerate(optimizer.param_groups):
                guards.append(
                    f"len(g{i} := OPT.param_groups[{i}]['params']) != {len(group['params'])}"
                )
                for k, p in enumerate(group["params"]):
                    name = named.get(id(p)) or prog.const(f"P{i}_{k}", p)
                    guards.append(f"g{i}[{k}] is not {name}")
        if guards:
            head.append(f"    if {' or '.join(guards)}: return None")
        cleared = [f"L{j}.grad" for j, t in enumerate(leaves) if id(t) in params]
        if cleared:  # zero_grad's part (the gradients are handed over after backward)
            head.append(f"    {' = '.join(cleared)} = None")
        if unreached:  # and for parameters the loss does not reach
            head.append("    for p in UNREACHED: p.grad = None")
        if fold:  # -γ while plain SGD's update is what step() would do, else 1
            head.append("    lr = LR() if step else None")
            if seed.code == "seed":
                head.append("    seed = 1.0 if lr is None else -lr")
            else:
                head.append("    SEED.fill(1.0 if lr is None else -lr)")
        elif seed is not None and seed.code == "seed":
            head.append("    seed = 1.0")
        body = [f"    {line}" for line in lines]
        release = [f"    n{k}.saved_tensors = ()" for k, _, rule, _, _ in ops if rule is None]
        end = []
        if optimizer is not None:
            end.append("if step: STEP()")
        if fold:  # the seed was -γ: the flat gradient buffer holds the update
            end = ["if lr is None:", *[f"    {line}" for line in tail + end]]
            end += ["else:", "    add(DATA, GFLAT, out=DATA)"]
        else:
            end = tail + end
        if not keep_grads:  # what zero_grad() after the step would leave
            if not zeroes:
                end.append("if step: OPT.zero_grad()")
            elif cleared:
                end.append(f"if step: {' = '.join(cleared)} = None")
        end = [f"    {line}" for line in end]
        returned = ", ".join([loss_code] + [f"o{k}" for k in results[1:]])
        self.source = "\n".join(head + body + release + end + [f"    return {returned}", ""])
        for _, node, _, _, _ in ops:  # the traced graph's tensors are not needed any more
            node.inputs = ()
            node.scope = None
        code = compile(self.source, "<tinygrad_nn.capture>", "exec")
        lean = None
        if optimizer is not None:  # every gradient in its view: the optimizer may be leaner
            complete = standard and params and not unreached and all(k in homes for k in params)
            lean = getattr(optimizer, "_captured_step", None) if complete else None
            env["STEP"] = _call_step(optimizer) if lean is None else None
        if fold:
            env["LR"], env["DATA"] = plain[0], plain[1].data

        def make_grads(names: dict[str, Any]) -> None:
            """The views of the flat gradient buffers (made if new), and what reads them: the
            optimizer's lean step, the folded update's buffer; into the replay's globals."""
            for name, (flat, i) in views.items():
                names[name] = flat.grad_views()[i]
            if lean is not None:
                names["STEP"] = lean()
            if fold:
                names["GFLAT"] = plain[1].grad
            names["MAKE_GRADS"] = None

        if deferred:
            env["MAKE_GRADS"] = make_grads
        else:
            make_grads(env)
        self.buffers = [(name, np.empty(shape, dtype)) for name, shape, dtype in buffers]
        self.value_count, self.buffer_count = len(prog.slots), len(buffers)
        env.update(dict(self.buffers))
        # the function's globals: only the names it reads (and, while it is defined, the
        # buffers that become its defaults)
        (inner,) = [c for c in code.co_consts if hasattr(c, "co_names")]
        env = {name: env[name] for name in inner.co_names if name in env}
        env.update(dict(self.buffers))
        exec(code, env)  # our own generated source, built from the recorded ops only
        self.run_arrays = env.pop("replay")  # its globals are env: no cycle through itself
        for name, _ in self.buffers:
            if name not in inner.co_names:
                del env[name]
        self.leaves = leaves
        self.entries: dict[tuple[Any, ...], Callable[..., Any]] = {}  # see CapturedStep._entry

    def run(self, arrays: list[np.ndarray], step: bool = True) -> np.ndarray | None:
        return self.run_arrays(*arrays, step=step)

    @property
    def nbytes(self) -> int:
        """Bytes of the buffers the plan allocated."""
        return sum(a.nbytes for _, a in self.buffers)


def _buffers_of(prog: Program, vals: list[Value | None]) -> set[int]:
    out: set[int] = set()
    for v in vals:
        if v is None:
            continue
        if v.slot is not None:
            out.add(v.slot)
        out |= prog.backing.get(v.code, set())
    return out


def _optimizer_params(optimizer: Any) -> dict[int, Tensor]:
    if optimizer is None:
        return {}
    return {id(p): p for group in optimizer.param_groups for p in group["params"]}


def _flat_grad_homes(optimizer: Any) -> dict[int, tuple[FlatGroup, int]]:
    """id(parameter) -> (its flat group, its position there), for the groups our optimizers
    have laid out flat (other optimizers, or none: nothing); ``flat.grad_views()[i]`` is its
    view of the group's flat gradient buffer."""
    out: dict[int, tuple[FlatGroup, int]] = {}
    for flat in getattr(optimizer, "_flats", ()):
        if isinstance(flat, FlatGroup):
            for i, (p, data) in enumerate(zip(flat.params, flat.views)):
                if p.data is data:
                    out[id(p)] = (flat, i)
    return out


def _call_step(optimizer: Any) -> Callable[[], Any]:
    """``optimizer.step()``, the method looked up at each call (it may be set anew)."""

    def step() -> Any:
        return optimizer.step()

    return step


def _zeroes_to_none(optimizer: Any) -> bool:
    """Whether ``optimizer.zero_grad()`` is ours, which sets every parameter's ``.grad`` to
    None (not overridden in a subclass or on the object): a plan then hands the gradients over
    instead of adding them."""
    return _ours_as_is(optimizer, "zero_grad", Optimizer.zero_grad)


def _steps_as_ours(optimizer: Any) -> bool:
    """Whether ``optimizer.step()`` is ours (not overridden in a subclass or on the object),
    so that its lean forms may stand in for it."""
    return _ours_as_is(optimizer, "step", Optimizer.step)


def _updates_as_ours(optimizer: Any) -> bool:
    """Whether the hooks our ``step()`` makes its update through are all the library's own:
    defined by a class of tinygrad_nn and not set on the object (a subclass may make its own
    update there, keeping the gradient arrays it is given)."""
    mro = type(optimizer).__mro__
    for name in UPDATE_HOOKS:
        if name in getattr(optimizer, "__dict__", ()):
            return False
        owner = next((c for c in mro if name in vars(c)), None)
        if owner is not None and not owner.__module__.startswith("tinygrad_nn."):
            return False
    return True


# the optimizer's methods a plan relies on being ours (or calls as they are)
_OVERRIDABLE = frozenset(("step", "zero_grad", *UPDATE_HOOKS))


def _ours_as_is(optimizer: Any, name: str, method: Any) -> bool:
    return (
        optimizer is not None
        and getattr(type(optimizer), name, None) is method
        and name not in getattr(optimizer, "__dict__", {})
    )


def _ours(node: Any) -> bool:
    """Whether ``node`` is an op of tinygrad_nn itself (not a Function of the user's own)."""
    return type(node).__module__.startswith("tinygrad_nn.")


class CapturedStep:
    """``fn`` captured: calling it runs ``fn(*inputs).backward()`` (between the optimizer's
    ``zero_grad()`` and ``step()`` when one is given, and ``zero_grad()`` again after the step
    with ``keep_grads=False``) and returns the loss, replaying a recorded plan when the inputs'
    shapes and dtypes were seen before. See :func:`capture`."""

    def __init__(
        self,
        fn: Callable[..., Any],
        check: bool = True,
        optimizer: Any = None,
        warn: bool = True,
        keep_grads: bool = True,
    ) -> None:
        if not keep_grads and optimizer is None:
            raise ValueError(
                "capture: keep_grads=False needs an optimizer (without one, the gradients "
                "are what a call computes)"
            )
        if optimizer is not None and not (
            callable(getattr(optimizer, "zero_grad", None))
            and callable(getattr(optimizer, "step", None))
            and hasattr(optimizer, "param_groups")
        ):
            raise TypeError(
                f"capture: optimizer must be an optimizer (with param_groups, zero_grad() and "
                f"step()), got {type(optimizer).__name__}"
            )
        self.fn = fn
        self.check = check
        self.warn = warn
        self.optimizer = optimizer
        self.keep_grads = keep_grads
        self._plans: dict[Any, _Plan | None] = {}  # None: runs without capture
        self._traces: dict[Any, Tracer] = {}  # traced, no plan made yet
        self._verified: set[Any] = set()
        self._ready: dict[Any, _Plan] = {}  # raw argument shapes/dtypes -> a verified plan
        self._last: tuple[int, Callable[..., Any]] | None = None  # (argument count, entry)
        self._stale = 0  # plans dropped since the last replay
        self._off = False  # stale too often: every call runs normally
        self._lock = threading.Lock()  # a plan's buffers serve one call at a time

    def _inputs(self, args: tuple[Any, ...]) -> list[Tensor]:
        out = []
        for a in args:
            if isinstance(a, ndarray) and type(a) is not ndarray:  # np.memmap, say
                a = a.view(ndarray)  # what fn's np.asarray calls give back: the same array
            t = a if isinstance(a, Tensor) else Tensor(a)
            if t.requires_grad:
                raise ValueError(
                    "capture: inputs must not require grad (parameters are found inside fn; "
                    "pass data such as the batch x and labels y)"
                )
            out.append(t)
        return out

    def _normal(self, inputs: list[Tensor]) -> Tensor:
        opt = self.optimizer
        if opt is not None:
            opt.zero_grad()
        loss, extra = _split(self.fn(*inputs))
        loss.backward()
        if opt is not None:
            self._step_optimizer()
        return _detached(loss, extra)

    def _step_optimizer(self) -> None:
        """``optimizer.step()``; with ``keep_grads=False``, then ``optimizer.zero_grad()``."""
        self.optimizer.step()
        if not self.keep_grads:
            self.optimizer.zero_grad()

    def __call__(self, *args: Any) -> Tensor:
        last = self._last  # the entry of the last replay, for arguments like its own
        if last is not None and len(args) == last[0] and STATE.grad_enabled and STATE.hook is None:
            out = last[1](*args)
            if out is not _MISS:
                if out is _SKIP:
                    return self._normal(self._inputs(args))
                if out is not None:
                    return _wrap(out)
        try:
            key = tuple([(a.shape, a.dtype, isinstance(a, Tensor)) for a in args])
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
            out = self._replay(plan, arrays)
            if out is _SKIP:
                return self._normal(self._inputs(args))
            if out is not None:
                self._last = (len(args), self._entry(_signature(args, arrays), plan))
                self._stale = 0
                return _wrap(out)
        inputs = self._inputs(args)
        if type(STATE.hook) is Tracer:  # called inside another captured step's fn: that step
            # would replay this one's forward but not its backward and update
            STATE.hook.frozen = STATE.hook.frozen or "nested"
        if not STATE.grad_enabled or STATE.hook is not None or self._off or self._lock.locked():
            return self._normal(inputs)
        with self._lock:
            key = tuple((t.shape, t.dtype) for t in inputs)
            if key not in self._plans and key not in self._traces:
                return self._trace(key, inputs)
            if key in self._traces:  # traced at the last call: make the plan now
                if self.check:
                    return self._verify(key, inputs)
                self._plans[key] = self._build(key)
            plan = self._plans[key]
            if plan is None:
                return self._normal(inputs)
            out = plan.run([t.data for t in inputs])
            if out is _SKIP:
                return self._normal(inputs)
            if out is None:
                self._forget(stacklevel=3)
                return self._normal(inputs)
            self._remember(args, plan)
            self._stale = 0
            return _wrap(out)

    def _entry(self, signature: tuple[Any, ...], plan: _Plan) -> Callable[..., Any]:
        """The fast path of a call whose arguments are like ``signature`` (each one's shape,
        dtype and whether it is a Tensor): a generated function of the arguments that checks
        them (``_MISS`` if they are not like that) and replays ``plan`` as :meth:`_replay`
        does. Made once per signature and plan."""
        made = plan.entries.get(signature)
        if made is not None:
            return made
        env: dict[str, Any] = {"Tensor": Tensor, "ndarray": ndarray, "MISS": _MISS}
        lines, names = [], []
        for k, (shape, dtype, tensor) in enumerate(signature):
            env[f"S{k}"], env[f"D{k}"] = shape, dtype
            if tensor:  # a Tensor as it was; an array only if Tensor(array) did not convert it
                lines.append(f"    if type(a{k}) is not Tensor or a{k}._rg: return MISS")
                lines.append(f"    d{k} = a{k}.data")
            else:
                lines.append(f"    d{k} = a{k}")
            lines.append(
                f"    if type(d{k}) is not ndarray or d{k}.shape != S{k} or d{k}.dtype is not D{k}:"
                " return MISS"
            )
            names.append(f"d{k}")
        env.update(ACQUIRE=self._lock.acquire, RELEASE=self._lock.release, RUN=plan.run_arrays)
        env["SELF"] = weakref.ref(self)  # no reference cycle through the step
        args = ", ".join(f"a{k}" for k in range(len(signature)))
        source = "\n".join(
            [f"def entry({args}):", *lines]
            + [
                "    if not ACQUIRE(False): return None",
                "    try:",
                f"        out = RUN({', '.join(names)})",
                "        if out is None: SELF()._forget()  # stale: traced again (under the lock)",
                "    finally:",
                "        RELEASE()",
                "    return out",
                "",
            ]
        )
        exec(compile(source, "<tinygrad_nn.capture entry>", "exec"), env)
        made = plan.entries[signature] = env.pop("entry")  # env is its globals: no cycle
        return made

    def _replay(self, plan: _Plan, arrays: list[np.ndarray]) -> Any:
        """Replay ``plan`` under the lock; None (and nothing run) when another thread is inside
        this step, or when the plan is stale, which is then forgotten (traced again); ``_SKIP``
        when this call's inputs do not suit the plan (run it normally)."""
        if not self._lock.acquire(False):
            return None
        try:
            out = plan.run_arrays(*arrays)
            if out is None:
                self._forget()  # the parameters moved (under the lock: a trace may be in use)
        finally:
            self._lock.release()
        return out

    def _forget(self, stacklevel: int = 4) -> None:
        """Drop every plan (the parameters' arrays changed under them). When that happens
        again and again with no replay in between, stop capturing: tracing and checking at
        every step would cost more than it saves."""
        self._stale += 1
        if self._stale >= _STALE_LIMIT:
            self._off = True
            if self.warn:
                warnings.warn(
                    f"capture: {_STALE}; running it without capture", stacklevel=stacklevel
                )
        self._plans.clear()
        self._traces.clear()
        self._verified.clear()
        self._ready.clear()
        self._last = None

    def _remember(self, args: tuple[Any, ...], plan: _Plan) -> None:
        """Let later calls with arguments of these exact types, shapes and dtypes skip the
        checks (an array and a Tensor of one dtype may differ: Tensor(array) converts float64)."""
        if all(isinstance(a, (Tensor, np.ndarray)) for a in args):
            self._ready[tuple([(a.shape, a.dtype, isinstance(a, Tensor)) for a in args])] = plan

    def _trace(self, key: Any, inputs: list[Tensor]) -> Tensor:
        opt = self.optimizer
        tracer = Tracer(inputs)
        gen_state = get_generator().bit_generator.state
        if opt is not None:
            opt.zero_grad()
        STATE.hook = tracer
        try:
            loss, extra = _split(self.fn(*inputs))
        finally:
            STATE.hook = None
        tracer.finish(inputs, [loss, *(extra or ())])
        run_backward(loss)
        if opt is not None:
            self._step_optimizer()  # lays the parameters out flat, for the plan to use
        if get_generator().bit_generator.state != gen_state:
            self._refuse(key, _RANDOM)
        elif None in tracer.made:
            self._refuse(key, _OUTPUTS)
        elif tracer.frozen is not None:
            self._refuse(key, _FROZEN[tracer.frozen])
        else:
            # the plan is made at the next call (after that call's normal execution when
            # checking), so its buffers never coexist with a normal step's activations
            self._traces[key] = tracer
        return _detached(loss, extra)

    def _refuse(self, key: Any, why: str, stacklevel: int = 4) -> None:
        """Run the step without capture from now on (for inputs of this signature); warn at
        the caller's line (``stacklevel`` frames up)."""
        self._traces.pop(key, None)
        self._plans[key] = None
        if self.warn:
            warnings.warn(f"capture: {why}; running it without capture", stacklevel=stacklevel)

    def _build(self, key: Any) -> _Plan:
        return _Plan(key, self._traces.pop(key), self.optimizer, self.keep_grads)

    def _verify(self, key: Any, inputs: list[Tensor]) -> Tensor:
        """Run the step normally, traced again. If it ran other ops than the first call (some
        state changed in between, or the ops depend on values), this trace takes the first's
        place, to be checked at the next call; the second time that happens the step runs
        without capture. Otherwise make the plan and replay it (without the optimizer's step)
        from the same state; keep the plan only if both agree (and then the replay's gradients,
        else those of normal execution). The optimizer steps once, after both."""
        opt = self.optimizer
        first = self._traces[key]
        gen_state = get_generator().bit_generator.state
        if opt is not None:
            opt.zero_grad()
        before = _leaf_grads(first)  # what the replay starts from: after zero_grad()
        again = Tracer(inputs)
        STATE.hook = again
        try:
            loss, extra = _split(self.fn(*inputs))
        finally:
            STATE.hook = None
        wanted = [loss, *(extra or ())]
        again.finish(inputs, wanted)
        loss.backward()
        if get_generator().bit_generator.state != gen_state:
            self._refuse(key, _RANDOM)
        elif again.frozen is not None:
            self._refuse(key, _FROZEN[again.frozen])
        elif not same_trace(first, again):
            if first.second or None in again.made:
                self._refuse(key, _CHANGED)
            else:
                again.second = True
                self._traces[key] = again
        else:
            first.modes = again.modes  # the state this call left, which replays start from
            del first, again  # the plan is made from the first; neither is needed beyond that
            return self._check(key, inputs, before, loss, extra)
        if opt is not None:
            self._step_optimizer()
        return _detached(loss, extra)

    def _check(
        self, key: Any, inputs: list[Tensor], before: dict[int, Any], loss: Tensor, extra: Any
    ) -> Tensor:
        """The second half of :meth:`_verify`: the step has run normally (``loss``, ``extra``
        and the gradients of the leaves in ``before``); make the plan and compare a replay."""
        opt = self.optimizer
        normal = {k: t.grad for k, (t, _) in before.items()}
        wanted = [loss, *(extra or ())]
        plan = self._plans[key] = self._build(key)
        for t, g in before.values():  # the gradients the replay starts from
            t.grad = g
        try:
            replayed = plan.run([t.data for t in inputs], step=False)
        except Exception:  # a plan that cannot run this step: it runs without capture
            replayed = ()
        if replayed is _SKIP:  # (cannot be: this call was traced alike)
            replayed = ()
        # a replay's gradients are arrays of its own (the optimizer's gradient buffer, or fresh
        # ones), so the normal ones above are intact
        if type(replayed) is not tuple and replayed is not None:
            replayed = (replayed,)
        ok = (
            replayed is not None
            and len(replayed) == len(wanted)
            and all(_close(r, w.data) for r, w in zip(replayed, wanted))
            and all(
                (normal[k] is None) == (t.grad is None)
                and (t.grad is None or _close(t.grad, normal[k]))
                for k, (t, _) in before.items()
            )
        )
        if not ok:  # keep the gradients of normal execution
            for k, (t, _) in before.items():
                t.grad = normal[k]
        del normal  # otherwise the replay's, which agree with them: free these before the step
        if replayed is None:  # stale already (the parameters moved)
            self._forget(stacklevel=5)
        elif ok:
            self._verified.add(key)
            self._remember(tuple(inputs), plan)
        else:
            self._refuse(key, _DISAGREED, stacklevel=5)
        if opt is not None:  # (after the verdict: the step may raise)
            self._step_optimizer()
        return _detached(loss, extra)


_SKIP = object()  # a replay's answer: this call's inputs do not suit the plan, run it normally
_MISS = object()  # an entry's answer: the arguments are not of the kinds it was made for
_RANDOM = "the step draws random numbers (dropout?), which a replay would freeze"
_FROZEN = {
    "volatile": "the step uses as a constant an array computed from values it computes (a "
    "comparison, an argmax, one_hot of an op's output), which a replay would freeze",
    "mutated": "the step changes in place an array computed from its inputs (one_hot(...)[...] "
    "= ...), which a replay would compute again without the change",
    "assigns": "the step assigns into tensors (t[...] = ...), which a replay would skip",
    "nested": "fn calls another captured step, whose backward and optimizer step a replay "
    "would skip",
}
_OUTPUTS = (
    "fn returns a tensor that no op of the step computed (an input, a parameter, an argmax or "
    "a comparison), which a replay could not return"
)
_STALE_LIMIT = 3
_STALE = (
    f"its plans went stale {_STALE_LIMIT} times without a replay in between (are the "
    "parameters' arrays replaced at every step, p.data = ...? update them in place)"
)
_CHANGED = (
    "the step ran other ops or constants at each of its first calls (an array that fn "
    "computes from its inputs with numpy, a detached tensor, a tensor a module "
    "stores on itself during the step, or Python control flow), which a replay would freeze"
)
_DISAGREED = (
    "replaying the recorded step disagreed with running it (does it depend on values through "
    "comparisons, numpy calls or Python control flow?)"
)


def _leaf_grads(trace: Tracer) -> dict[int, Any]:
    """id -> (leaf, its ``.grad`` now) for the leaves of ``trace`` that require grad."""
    out = {}
    for _, refs, _, _ in trace.records:
        for kind, a in refs:
            if kind == "tensor" and a.requires_grad:
                out[id(a)] = (a, a.grad)
    return out


def _detached(loss: Tensor, extra: list[Tensor] | None) -> Any:
    return loss.detach() if extra is None else (loss.detach(), *[e.detach() for e in extra])


def _split(result: Any) -> tuple[Tensor, list[Tensor] | None]:
    """``(loss, extra outputs or None)`` from what fn returned: a loss, or ``(loss, *outputs)``."""
    loss, extra = result, None
    if isinstance(result, tuple):
        if not result:
            raise ValueError("capture: fn returned an empty tuple; return the loss first")
        loss, extra = result[0], list(result[1:])
        if not all(isinstance(e, Tensor) for e in extra):
            raise ValueError("capture: fn must return (loss, *outputs) with every output a tensor")
    if not isinstance(loss, Tensor) or loss.size != 1 or not loss.requires_grad:
        raise ValueError("capture: fn must return a one-element tensor that requires grad")
    return loss, extra


def _signature(args: tuple[Any, ...], arrays: list[np.ndarray]) -> tuple[Any, ...]:
    """What the fast path of a replay checks: each array's shape and dtype, and whether its
    argument was a Tensor."""
    return tuple((d.shape, d.dtype, isinstance(a, Tensor)) for a, d in zip(args, arrays))


def _wrap(out: Any) -> Any:
    if type(out) is tuple:
        return tuple([_make(o, False, None) for o in out])
    return _make(out, False, None)


def _close(a: np.ndarray, b: np.ndarray, chunk: int = 1024) -> bool:
    """``np.allclose(a, b, rtol=1e-5, atol=1e-6)``, a chunk at a time, so that checking a large
    gradient makes only small temporaries."""
    a, b = np.asarray(a), np.asarray(b)
    if a.shape != b.shape:
        return False
    a, b = a.reshape(-1), b.reshape(-1)
    return all(
        np.allclose(a[i : i + chunk], b[i : i + chunk], rtol=1e-5, atol=1e-6)
        for i in range(0, a.size, chunk)
    )


def capture(
    fn: Callable[..., Any],
    *,
    optimizer: Any = None,
    check: bool = True,
    warn: bool = True,
    keep_grads: bool = True,
) -> CapturedStep:
    """Capture a training step ``fn(*inputs) -> loss`` for fast replay.

    ``capture(fn)(*inputs)`` does what ``loss = fn(*inputs); loss.backward()`` does — gradients
    accumulate into the parameters' ``.grad`` — and returns the loss (detached). With
    ``optimizer``, a call is the whole training step: ``optimizer.zero_grad()``, the loss and its
    backward, ``optimizer.step()``. ``fn`` may also return ``(loss, *outputs)`` (say the
    predictions, for an accuracy): a call then returns the same tuple, each output a new
    detached tensor.

    The first call for given input shapes and dtypes runs normally and records the ops; the
    second runs normally too, then makes the plan and checks a replay of it against that run
    (with ``check``, the default; a step that replays differently is not captured); later calls
    replay the plan, one generated function (``step._plans``: its ``source``) with no graph:
    the common layers, activations and losses lowered to numpy calls into buffers allocated
    once and reused, and, with one of our optimizers, the gradients written straight into its
    flat gradient buffer (the parameters' ``.grad`` are then views of it, overwritten at every
    step, as PyTorch's ``zero_grad(set_to_none=False)`` would leave them).

    ``keep_grads=False`` (with an optimizer) ends each call with ``optimizer.zero_grad()``: the
    parameters' ``.grad`` are None between steps, as with PyTorch's recipe of the optimizer step
    fused into the backward pass. A step that keeps no gradients may compute them already
    scaled, so that the update is one addition: for plain SGD (no momentum, weight decay or
    maximize, one param group) a replay starts backward from -γ instead of 1, which makes the
    flat gradient buffer receive the update -γ∇ itself, then adds it to the parameters. This
    is the hand-written step's arithmetic (the floor in ``benchmarks/``); it agrees with
    ``θ - γ∇`` to rounding, not bit for bit. It needs every op's backward to be linear in the
    gradient it is given, as the library's ops are: a step using a ``Function`` of your own is
    not folded; nor is one whose loss leaves a parameter of the optimizer unreached or reaches
    a tensor outside it that requires grad, one whose parameters could not be laid out in one
    flat buffer (mixed dtypes), or one that computes in a narrower float than the parameters'
    (float16 inside a float32 model: -γ∇ would underflow where ∇ does not). Other optimizers,
    SGD in other states, and an optimizer whose ``step()`` is overridden step as usual (the lr,
    momentum and the rest are read at every call).

    Steps that draw random numbers (dropout) are never captured; ``warn`` says so (and when a
    replay disagrees, or its first calls ran other ops or constants each time). ``fn`` must
    compute the loss from its inputs and the parameters only with tinygrad_nn ops, the same ops
    every call, with no other side effects (a replay runs the ops, not the Python around them):
    an array it computes from its inputs with plain numpy is frozen by a trace unless it changes
    between the first calls (pass it in as an input instead; ``F.one_hot`` of an input is
    recomputed at each replay). A plan is traced again when the parameters' arrays
    or ``requires_grad`` change, a module it calls switches between ``train()`` and ``eval()``,
    one of those modules gets a parameter or sub-module set, replaced or deleted, the
    optimizer's param groups change their parameters, or a ``step()`` or ``zero_grad()`` is set
    on the optimizer or its class (an overridden ``step()`` or ``zero_grad()`` is always called
    as it is); when plans keep going stale with no replay in between, the step runs without
    capture. A step whose ``fn`` calls another captured step runs without capture (the inner
    one is captured on its own). A captured step is one set of buffers: a call made while
    another thread is inside the same step runs normally.
    """
    return CapturedStep(fn, check=check, optimizer=optimizer, warn=warn, keep_grads=keep_grads)
