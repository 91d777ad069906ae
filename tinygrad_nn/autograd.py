"""The engine's ground floor: the ``Function`` base, grad mode and the backward pass.

Every op — ours and a user's — is a :class:`Function` subclass with ``forward`` and ``backward`` on
numpy arrays. ``Function.apply`` runs ``forward`` and, when some input requires grad and grad mode
is on, records the call as a node of the DAG: the node keeps its inputs, which inputs need a
gradient, and only the arrays ``forward`` chose to save.

The backward pass (:func:`run_backward`) visits the nodes once each in reverse topological order —
highest recording number first, from a heap, with no recursion, so any chain length works —
and accumulates each input's gradient with ``+``. Gradients of broadcast inputs are summed back
to the input's shape here, in one place (:func:`unbroadcast`), so no op does it by hand.

This module knows nothing of layers; it builds output tensors through the one constructor that
``tensor.py`` hands it with :func:`set_tensor_type`.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable, Iterable
from heapq import heappop, heappush
from itertools import count
from typing import Any

import numpy as np

__all__ = [
    "Function",
    "no_grad",
    "enable_grad",
    "set_grad_enabled",
    "is_grad_enabled",
    "run_backward",
    "unbroadcast",
]


class _ThreadState(threading.local):
    """Per-thread switches: grad mode, the module call being traced, an observer of ops."""

    def __init__(self) -> None:
        self.grad_enabled = True
        self.saved_modes: list[bool] = []  # grad modes to restore, one per open _GradMode
        self.scope: Any = None
        self.hook: Any = None  # anomaly checks or a step capture: on_forward / on_backward


STATE = _ThreadState()

_RELEASED = ("released",)  # stands in for saved arrays after backward frees them

_sequence = count()  # recording order: an op's output is numbered after its inputs
LEAF_LOCK = threading.Lock()  # guards read-modify-write of a leaf's .grad across threads
_tensor_type: Any = None
_make_tensor: Any = None


def set_tensor_type(cls: type, make: Callable[[np.ndarray, bool, Function | None], Any]) -> None:
    """Hand the engine the tensor class and the constructor ``make(data, requires_grad, node)``."""
    global _tensor_type, _make_tensor
    _tensor_type, _make_tensor = cls, make


class Function:
    """Base of every differentiable op: subclass it, write ``forward`` and ``backward``.

    ``forward(self, *arrays, **options)`` receives numpy arrays (and Python scalars passed as
    constants) and returns one numpy array; it saves what ``backward`` needs with
    :meth:`save_for_backward`. ``backward(self, grad_output)`` receives dL/d(output) and returns
    dL/d(input) for each positional input (a tuple, or a single array for one input), ``None``
    where ``self.needs_input_grad[i]`` is False. A returned gradient may have the broadcast shape;
    the engine sums it back to the input's shape. ``backward`` must not modify ``grad_output`` in
    place (the engine may pass one array to several inputs). Call the op with
    ``MyOp.apply(*tensors)``.

    Example — the square, y = x², dL/dx = 2·x·dL/dy::

        class Square(Function):
            def forward(self, x):
                self.save_for_backward(x)
                return x * x

            def backward(self, grad):
                (x,) = self.saved_tensors
                return 2 * x * grad
    """

    __slots__ = ("inputs", "needs_input_grad", "saved_tensors", "scope", "seq", "site", "__dict__")

    inputs: tuple[Any, ...]
    needs_input_grad: tuple[bool, ...]
    saved_tensors: tuple[Any, ...]

    def forward(self, *args: Any, **kwargs: Any) -> np.ndarray:
        """Compute the output array from the input arrays; save what backward needs."""
        raise NotImplementedError(f"{type(self).__name__}.forward is not implemented")

    def backward(self, grad_output: np.ndarray) -> Any:
        """dL/d(input) for each input, given dL/d(output). Must not modify ``grad_output`` or
        the saved arrays in place: the engine may hand the same array to several inputs."""
        raise NotImplementedError(f"{type(self).__name__}.backward is not implemented")

    def save_for_backward(self, *arrays: Any) -> None:
        """Keep ``arrays`` (by reference, no copy) until backward has run."""
        self.saved_tensors = arrays

    @property
    def released(self) -> bool:
        """Whether backward has freed what this node saved (and, unless its output kept its
        grad, its links to its inputs)."""
        return self.saved_tensors is _RELEASED

    @property
    def name(self) -> str:
        """The op's name as drawn and reported: the class name."""
        return type(self).__name__

    @classmethod
    def apply(cls, *args: Any, **kwargs: Any) -> Any:
        """Run the op on tensors (or constants) and record it in the graph when needed."""
        T = _tensor_type
        node = _new(cls)
        state = STATE
        # One, two and three inputs (nearly every op) are unpacked without building lists.
        n = len(args)
        if n == 2:
            a, b = args
            if isinstance(a, T):
                x, ra = a.data, a._rg
            else:
                x, ra = a, False
            if isinstance(b, T):
                y, rb = b.data, b._rg
            else:
                y, rb = b, False
            arrays: Any = (x, y)
            record = (ra or rb) and state.grad_enabled
            node.needs_input_grad = (ra, rb) if record else _NO_GRAD[2]
        elif n == 1:
            a = args[0]
            if isinstance(a, T):
                arrays, record = (a.data,), a._rg and state.grad_enabled
            else:
                arrays, record = args, False
            node.needs_input_grad = _GRAD_1 if record else _NO_GRAD[1]
        elif n == 3:
            a, b, c = args
            if isinstance(a, T):
                x, ra = a.data, a._rg
            else:
                x, ra = a, False
            if isinstance(b, T):
                y, rb = b.data, b._rg
            else:
                y, rb = b, False
            if isinstance(c, T):
                z, rc = c.data, c._rg
            else:
                z, rc = c, False
            arrays = (x, y, z)
            record = (ra or rb or rc) and state.grad_enabled
            node.needs_input_grad = (ra, rb, rc) if record else _NO_GRAD[3]
        else:
            arrays = []
            needs = []
            for a in args:
                if isinstance(a, T):
                    arrays.append(a.data)
                    needs.append(a._rg)
                else:
                    arrays.append(a)
                    needs.append(False)
            record = any(needs) and state.grad_enabled
            node.needs_input_grad = tuple(needs) if record else (False,) * n
        node.saved_tensors = ()
        try:
            out = node.forward(*arrays, **kwargs) if kwargs else node.forward(*arrays)
        except (ValueError, TypeError, IndexError) as e:
            raise _op_error(cls, e, args) from None
        if type(out) is not np.ndarray:
            if isinstance(out, (tuple, list)):  # np.asarray would stack them into one array
                raise TypeError(
                    f"{cls.__name__}.forward returned a {type(out).__name__}; it must return one "
                    f"array (for several outputs, write one Function per output)"
                )
            out = np.asarray(out)
        if record and out.dtype.kind == "f":  # integer and bool results carry no gradient
            node.inputs = args
            node.scope = state.scope
            node.seq = next(_sequence)
            result = _make_tensor(out, True, node)
        else:
            result = _make_tensor(out, False, None)
        if state.hook is not None:
            state.hook.on_forward(node, args, kwargs, result)
        return result


_GRAD_1 = (True,)
_NO_GRAD = [(False,) * k for k in range(4)]  # needs_input_grad of an unrecorded op


_new = object.__new__


def _op_error(cls: type, err: Exception, args: tuple[Any, ...]) -> Exception:
    shapes = ", ".join(
        str(tuple(a.shape)) if hasattr(a, "shape") else type(a).__name__ for a in args
    )
    msg = str(err)
    if not msg.startswith(f"{cls.__name__}:"):
        msg = f"{cls.__name__}: {msg} (input shapes: {shapes})"
    try:
        return type(err)(msg)
    except Exception:  # numpy's own subclasses may need other constructor arguments
        base = next(c for c in (ValueError, TypeError, IndexError) if isinstance(err, c))
        return base(msg)


# ----------------------------------------------------------------------------- grad mode


class _GradMode:
    """Context manager and decorator that sets grad mode for the current thread. On a generator
    function the mode holds each time the generator runs, not in its caller between yields."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled

    def __enter__(self) -> None:
        STATE.saved_modes.append(STATE.grad_enabled)
        STATE.grad_enabled = self.enabled

    def __exit__(self, *exc: object) -> None:
        STATE.grad_enabled = STATE.saved_modes.pop()

    def __call__(self, fn: Callable[..., Any]) -> Callable[..., Any]:
        import inspect

        enabled = self.enabled
        if inspect.isgeneratorfunction(fn):  # the mode holds whenever the generator runs

            @functools.wraps(fn)
            def generator(*args: Any, **kwargs: Any) -> Any:
                return (yield from _in_mode(fn(*args, **kwargs), enabled))

            return generator

        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            with _GradMode(enabled):
                return fn(*args, **kwargs)

        return wrapper


def _in_mode(gen: Any, enabled: bool) -> Any:
    """Run generator ``gen`` with grad mode ``enabled`` at each resume, the caller's mode between
    them (as PyTorch's decorators do): what is sent or thrown in is passed on."""
    try:
        with _GradMode(enabled):
            response = gen.send(None)
        while True:
            try:
                request = yield response
            except GeneratorExit:
                with _GradMode(enabled):
                    gen.close()
                raise
            except BaseException as e:
                with _GradMode(enabled):
                    response = gen.throw(e)
            else:
                with _GradMode(enabled):
                    response = gen.send(request)
    except StopIteration as e:
        return e.value


def no_grad() -> _GradMode:
    """Record no graph inside (``with no_grad():`` or ``@no_grad()``); per thread."""
    return _GradMode(False)


def enable_grad() -> _GradMode:
    """Record the graph again inside a ``no_grad`` region (context manager or decorator)."""
    return _GradMode(True)


class _SetGradEnabled(_GradMode):
    """What :func:`set_grad_enabled` returns: the mode is set when it is made, as PyTorch's."""

    def __init__(self, enabled: bool) -> None:
        super().__init__(enabled)
        self.prev = STATE.grad_enabled
        self.fresh = True  # set at once, neither entered nor used as a decorator yet
        STATE.grad_enabled = enabled

    def __enter__(self) -> None:
        if self.fresh:  # `with set_grad_enabled(m):` restores the mode from before the call
            self.fresh = False
            STATE.saved_modes.append(self.prev)
            STATE.grad_enabled = self.enabled
        else:
            super().__enter__()

    def __call__(self, fn: Callable[..., Any]) -> Callable[..., Any]:
        if self.fresh:  # a decorator sets the mode only while the function runs
            self.fresh = False
            STATE.grad_enabled = self.prev
        return super().__call__(fn)


def set_grad_enabled(mode: bool) -> _GradMode:
    """Set grad mode to ``mode`` in the current thread: at once when called (as PyTorch's),
    until the end of the block as ``with set_grad_enabled(mode):`` (which restores the mode from
    before), or while the function runs as a decorator ``@set_grad_enabled(mode)``."""
    return _SetGradEnabled(bool(mode))


def note_derived(out: np.ndarray, fn: Callable[..., Any], args: tuple[Any, ...]) -> None:
    """Tell an installed hook (capture's tracer) that array ``out`` is ``fn(*args)``, so that
    a replay can compute it again from its arguments (labels one-hot encoded, a target cast, a
    comparison), or knows it cannot (they are values the step computes)."""
    hook = STATE.hook
    if hook is not None:
        derived = getattr(hook, "on_derived", None)
        if derived is not None:
            derived(out, fn, args)


def is_grad_enabled() -> bool:
    """Whether ops record the graph in the current thread."""
    return STATE.grad_enabled


# ----------------------------------------------------------------------------- backward pass


def unbroadcast(grad: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """Sum ``grad`` back to ``shape``: over the leading axes broadcasting added, and over the
    axes where ``shape`` has size 1 (the adjoint of ``np.broadcast_to``)."""
    extra = grad.ndim - len(shape)
    if extra > 0:
        grad = grad.sum(axis=tuple(range(extra)))
    axes = tuple(i for i, n in enumerate(shape) if n == 1 and grad.shape[i] != 1)
    if axes:
        grad = grad.sum(axis=axes, keepdims=True)
    return grad


def run_backward(root: Any, grad: Any = None, retain_graph: bool = False) -> None:
    """Backpropagate from ``root``: accumulate dL/d(leaf) into each leaf's ``.grad``.

    ``grad`` is dL/d(root); it may be omitted only for one-element roots (then it is 1).
    Without ``retain_graph`` the arrays the nodes saved are released afterwards, and — unless
    some tensor of the graph asked to keep its grad (``retain_grad``) — the nodes' links to their
    inputs too, so that the intermediate tensors nobody else holds are freed at once.

    Order: every node gets a sequence number when it is recorded, and an op's output is always
    recorded after its inputs, so visiting nodes from the highest number down is a reverse
    topological order. A max-heap on that number holds the tensors whose gradient has started
    to arrive; a tensor is popped only after every consumer that can reach it has added its
    share, so each node's backward runs once, with the full gradient (O((V + E) log V)).
    """
    if not root._rg:
        raise RuntimeError(
            "backward: this tensor does not require grad and has no graph to backpropagate "
            "through (create the leaves with requires_grad=True, and do not call backward on "
            "the result of a no_grad() computation or of a comparison)"
        )
    data = root.data
    if grad is None:
        if data.size != 1:
            raise RuntimeError(
                f"backward: grad can be omitted only for a one-element tensor, but this one has "
                f"shape {data.shape}; call backward(grad) with a gradient of that shape "
                f"(e.g. np.ones({data.shape}))"
            )
        grad = np.empty(data.shape, data.dtype)  # np.ones_like, without its Python layers
        grad.fill(1)
    else:
        if isinstance(grad, _tensor_type):
            grad = grad.data
        given = np.asarray(grad)
        if given.dtype.kind not in "fiub":  # None would become NaN, strings fail unnamed
            raise TypeError(f"backward: grad must hold numbers, got dtype {given.dtype}")
        grad = np.array(given, dtype=data.dtype, copy=True)
        if grad.shape != data.shape:
            raise ValueError(
                f"backward: grad has shape {grad.shape} but the tensor has shape {data.shape}"
            )
    if root._ctx is None:  # a leaf
        root.grad = grad if root.grad is None else root.grad + grad
        return
    hook = STATE.hook
    mutations = MUTATIONS
    pending: dict[int, Any] = {}  # id(tensor) -> its gradient so far, for tensors on the heap
    heap: list[tuple[int, Any]] = []
    # The next tensor to visit when it is the only one waiting — always so along a chain — is
    # kept here instead of on the heap: the heap would hand out that same tensor next.
    nxt, nxt_g = root, grad
    given_to_leaves: set[int] = set()
    visited: list[Function] = []
    keep_links = False  # a tensor that keeps its grad means someone will look at the graph
    while True:
        if nxt is not None:
            t, g, nxt = nxt, nxt_g, None
        elif heap:
            t = heappop(heap)[1]
            g = pending.pop(id(t))
        else:
            break
        node = t._ctx
        if node.seq < mutations.last:
            _check_unmodified(node)
        if node.saved_tensors is _RELEASED:
            raise RuntimeError(
                f"backward: trying to backward through the graph a second time (at the "
                f"{node.name} node), but its saved arrays were already freed; call "
                f"backward(retain_graph=True) the first time if you need to backward twice"
            )
        if t._retain:
            t.grad = g.copy() if t.grad is None else t.grad + g
            keep_links = True
        in_grads = node.backward(g)
        if type(in_grads) is not tuple:
            in_grads = tuple(in_grads) if type(in_grads) is list else (in_grads,)
        if len(in_grads) != len(node.inputs):
            _check_gradient_count(node, in_grads)
        if hook is not None:
            hook.on_backward(node, in_grads)
        if not retain_graph:
            node.saved_tensors = _RELEASED
            visited.append(node)
        for inp, need, ig in zip(node.inputs, node.needs_input_grad, in_grads):
            if not need or ig is None:
                continue
            d = inp.data
            if type(ig) is not np.ndarray:  # a Python number, a list: an array of the input's
                ig = _as_gradient(node, ig, d)
            if ig.shape != d.shape:
                ig = _fit_shape(node, ig, d.shape)
            if ig.dtype != d.dtype:
                ig = ig.astype(d.dtype)
            ctx = inp._ctx
            if ctx is None:  # a leaf: accumulate into .grad (threads may share the leaf)
                with LEAF_LOCK:
                    if inp.grad is None:
                        if ig.base is not None or id(ig) in given_to_leaves:
                            ig = ig.copy()  # a leaf's .grad never aliases another array
                        given_to_leaves.add(id(ig))
                        inp.grad = ig
                    else:
                        inp.grad = inp.grad + ig
            elif inp is nxt:  # the same tensor twice among this node's inputs
                nxt_g = nxt_g + ig
            elif nxt is None and not heap:  # nothing else waits: visit it next, no heap
                nxt, nxt_g = inp, ig
            else:
                if nxt is not None:  # a second tensor waits: both go on the heap
                    pending[id(nxt)] = nxt_g
                    heappush(heap, (-nxt._ctx.seq, nxt))
                    nxt = None
                k = id(inp)
                prev = pending.get(k)
                if prev is None:
                    pending[k] = ig
                    heappush(heap, (-ctx.seq, inp))
                else:
                    pending[k] = prev + ig
    if not keep_links:  # unlink, so the intermediate tensors nobody holds are freed now
        for node in visited:
            node.inputs = ()


class _Mutations:
    """In-place changes of tensors the library makes (item assignment, an optimizer's step). Each
    changed tensor is stamped with (recording number, what made the change), and ``last`` is the
    largest number stamped. A node recorded before a change of one of its inputs may have saved
    the old values, so backward refuses it (as PyTorch's version counters do). The stamp lives
    on the tensor (a slot that an unchanged tensor leaves unset), so stamping the parameters
    after a step costs an attribute store each."""

    def __init__(self) -> None:
        self.last = -1

    def record(self, tensor: Any, by: str = "item assignment") -> None:
        self.record_many((tensor,), by)

    def record_many(self, tensors: Iterable[Any], by: str) -> None:
        """Stamp ``tensors``, changed in place together (``by`` an optimizer's step, say), with
        one recording number."""
        with LEAF_LOCK:  # stamped before ``last`` says so: a backward on another thread
            seq = next(_sequence)
            stamp = (seq, by)
            for tensor in tensors:
                tensor._mutated = stamp
            self.last = seq

    @staticmethod
    def since(tensor: Any) -> tuple[int, str]:
        """The recording number of the last in-place change of ``tensor`` and what made it
        ((-1, "") if none)."""
        return getattr(tensor, "_mutated", _UNCHANGED)


_UNCHANGED = (-1, "")


MUTATIONS = _Mutations()


_FIXES = {
    "item assignment": "assign into a copy (Tensor(t.numpy().copy())) instead, or recompute the "
    "forward after the assignment",
    "optimizer.step()": "call backward() before optimizer.step(), or recompute the forward "
    "after the step",
    "load_state_dict()": "load before the forward (or after backward()), or recompute the "
    "forward after loading",
    "nn.init": "initialise before the forward (or after backward()), or recompute the forward "
    "afterwards",
}


def _check_unmodified(node: Function) -> None:
    """Refuse ``node`` if an input changed in place after it was recorded and it saved that
    input's memory (an op that saved nothing of it, Add or indexing, has a right gradient, as
    PyTorch lets such a backward run)."""
    saved = [a for a in node.saved_tensors if isinstance(a, np.ndarray)]
    for i, inp in enumerate(node.inputs):
        if not isinstance(inp, _tensor_type):
            continue
        seq, by = MUTATIONS.since(inp)
        if seq > node.seq and any(np.may_share_memory(a, inp.data) for a in saved):
            key = "nn.init" if by.startswith("nn.init.") else by
            fix = _FIXES.get(key, f"recompute the forward after {by}")
            raise RuntimeError(
                f"backward: input {i} (shape {inp.shape}) of the {node.name} node was modified "
                f"in place by {by} after {node.name} used it, so the values it saved for "
                f"backward are stale; {fix}"
            )


def _check_gradient_count(node: Function, in_grads: tuple[Any, ...]) -> None:
    """One gradient per input of forward (trailing Nones beyond them are allowed: an optional
    input left out, as the dense layer's bias)."""
    n = len(node.inputs)
    if len(in_grads) < n or any(g is not None for g in in_grads[n:]):
        raise RuntimeError(
            f"{node.name}.backward returned {len(in_grads)} gradient(s) for {n} input(s); "
            f"return one per input of forward, None for those that need none"
        )


def _as_gradient(node: Function, grad: Any, data: np.ndarray) -> np.ndarray:
    try:
        out = np.asarray(grad, dtype=data.dtype)
    except (TypeError, ValueError):
        out = None
    if out is None or out.dtype.kind not in "fc":
        raise TypeError(
            f"{node.name}.backward returned a {type(grad).__name__} as a gradient; return a "
            f"numpy array (or a number for a one-element input)"
        )
    return out


def _fit_shape(node: Function, grad: Any, shape: tuple[int, ...]) -> np.ndarray:
    if not isinstance(grad, np.ndarray):
        grad = np.asarray(grad)
    if grad.ndim >= len(shape):
        out = unbroadcast(grad, shape)
        if out.shape == shape:
            return out
    try:
        return np.broadcast_to(grad, shape)
    except ValueError:
        raise RuntimeError(
            f"{node.name}.backward returned a gradient of shape {grad.shape} for an input of "
            f"shape {shape}"
        ) from None
