"""``Tensor``: an n-d array (``data``), its gradient (``grad``) and its link into the graph.

A tensor made by an op that recorded a node keeps that node in ``_ctx``; leaves (made by the user)
have none. The operators and methods here call the ops in :mod:`tinygrad_nn.ops`; composite
operations (``var``, ``flatten``, ``squeeze``, ...) are written here in terms of them.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any, Union

import numpy as np

from . import autograd
from .autograd import Function, run_backward
from .ops import elementwise as E
from .ops import matmul as M
from .ops import reduce as R
from .ops import shape as S
from .ops import softmax as SM
from .random import get_generator

__all__ = [
    "Tensor",
    "tensor",
    "set_default_dtype",
    "get_default_dtype",
    "concatenate",
    "stack",
    "where",
    "maximum",
    "minimum",
    "zeros",
    "ones",
    "zeros_like",
    "ones_like",
    "randn",
    "rand",
    "arange",
]

ArrayLike = Union["Tensor", np.ndarray, float, int, bool, Sequence[Any]]
Axis = int | tuple[int, ...] | None

_default_dtype = np.dtype(np.float32)


def set_default_dtype(dtype: Any) -> None:
    """Set the dtype that float data becomes by default (float32 unless changed)."""
    global _default_dtype
    d = np.dtype(dtype)
    if d.kind != "f":
        raise TypeError(f"set_default_dtype: the default must be a float dtype, got {d}")
    _default_dtype = d


def get_default_dtype() -> np.dtype:
    """The dtype float data becomes when no ``dtype=`` is given (float32 unless changed)."""
    return _default_dtype


def _to_array(data: Any, dtype: Any) -> np.ndarray:
    if isinstance(data, Tensor):
        data = data.data
    if isinstance(data, np.ndarray):
        arr = data
    else:
        try:
            arr = np.asarray(data)
        except ValueError as e:
            msg = f"Tensor: cannot make an array of {type(data).__name__}: {e}"
            raise ValueError(msg) from None
        if arr.dtype.kind == "f" and not isinstance(data, np.generic) and dtype is None:
            arr = arr.astype(_default_dtype, copy=False)
    if arr.dtype.kind not in "fiub":
        raise TypeError(
            f"Tensor: unsupported data of dtype {arr.dtype} ({type(data).__name__}); "
            "give numbers: a numpy array, a Python scalar or a nested list of them"
        )
    if dtype is not None:
        dtype = np.dtype(dtype)
        if dtype.kind not in "fiub":
            raise TypeError(f"Tensor: unsupported dtype {dtype}; tensors hold numbers")
        if arr.dtype != dtype:
            arr = _noted_cast(arr, dtype)
    elif arr.dtype == np.float64 and _default_dtype != np.float64:
        arr = _noted_cast(arr, _default_dtype)
    return arr


def _noted_cast(arr: np.ndarray, dtype: Any) -> np.ndarray:
    """``arr.astype(dtype)``, told to a capture's tracer (a replay casts the input again)."""
    out = arr.astype(dtype)
    autograd.note_derived(out, _cast, (arr, dtype))
    return out


class Tensor:
    """An n-dimensional array that records the ops applied to it, for reverse-mode autodiff.

    ``Tensor(data, dtype=None, requires_grad=False)``: ``data`` is a numpy array (used as it is,
    without a copy, unless the dtype changes), a Python scalar or a nested list. Float data
    becomes the default dtype (float32, see :func:`set_default_dtype`) unless ``dtype`` says
    otherwise; integer and bool tensors exist but cannot require grad.
    """

    # _mutated: set only by an in-place change the engine records (see autograd._Mutations)
    __slots__ = ("data", "grad", "_rg", "_ctx", "_retain", "name", "_mutated", "__weakref__")
    __array_priority__ = 1000

    def __getstate__(self) -> tuple[None, dict[str, Any]]:
        """What pickle and ``copy`` keep: every slot that is set but the in-place-change stamp
        (``_mutated``), whose recording number means nothing in another process, nor to a copy
        no graph has used yet."""
        return None, {k: getattr(self, k) for k in _STATE_SLOTS if hasattr(self, k)}

    data: np.ndarray
    grad: np.ndarray | None

    def __init__(
        self,
        data: ArrayLike,
        dtype: Any = None,
        requires_grad: bool = False,
        name: str | None = None,
    ) -> None:
        self.data = _to_array(data, dtype)
        self.grad = None
        self._ctx = None
        self._retain = False
        self.name = name
        self._rg = False
        if requires_grad:
            self.requires_grad = True

    # ------------------------------------------------------------------ attributes
    @property
    def requires_grad(self) -> bool:
        """Whether gradients flow to this tensor (leaves: set by the user; others: inherited)."""
        return self._rg

    @requires_grad.setter
    def requires_grad(self, value: bool) -> None:
        if value and self.data.dtype.kind != "f":
            raise TypeError(
                f"only floating-point tensors can require grad, but this one has dtype "
                f"{self.data.dtype}; make it with dtype=np.float32 (or float64)"
            )
        if self._ctx is not None and not value:
            raise RuntimeError(
                "requires_grad can be turned off only on leaves; use .detach() on a tensor "
                "computed by an op"
            )
        self._rg = bool(value)

    def requires_grad_(self, value: bool = True) -> Tensor:
        """Set ``requires_grad`` in place and return self (PyTorch's spelling)."""
        self.requires_grad = value
        return self

    @property
    def shape(self) -> tuple[int, ...]:
        """The size of each axis."""
        return self.data.shape

    @property
    def ndim(self) -> int:
        """The number of axes."""
        return self.data.ndim

    @property
    def dtype(self) -> np.dtype:
        """The numpy dtype of the data."""
        return self.data.dtype

    @property
    def size(self) -> int:
        """The number of elements."""
        return self.data.size

    @property
    def is_leaf(self) -> bool:
        """True for tensors not made by a recorded op (the ones whose ``.grad`` is kept)."""
        return self._ctx is None

    @property
    def grad_fn(self) -> Function | None:
        """The node (a :class:`Function`) that made this tensor, or None for a leaf."""
        return self._ctx

    @property
    def T(self) -> Tensor:
        """The transpose (all axes reversed)."""
        return self.transpose()

    def numpy(self) -> np.ndarray:
        """The data as a numpy array (the same array, not a copy)."""
        return self.data

    def item(self) -> float | int | bool:
        """The value of a one-element tensor as a Python number."""
        if self.data.size != 1:
            raise ValueError(
                f"item: only one-element tensors can be converted to a Python scalar, "
                f"this one has shape {self.shape}"
            )
        return self.data.item()

    def tolist(self) -> Any:
        """The data as nested Python lists."""
        return self.data.tolist()

    def detach(self) -> Tensor:
        """A new leaf sharing this tensor's data, outside any graph."""
        return _make(self.data, False, None)

    def retain_grad(self) -> Tensor:
        """Keep ``.grad`` on this non-leaf tensor after backward (leaves always keep it)."""
        if not self._rg:
            raise RuntimeError("retain_grad: this tensor does not require grad")
        self._retain = True
        return self

    def backward(self, grad: ArrayLike | None = None, retain_graph: bool = False) -> None:
        """Accumulate d(self)/d(leaf) into every leaf's ``.grad``, in reverse topological order.

        ``grad`` (dL/d(self), same shape) may be omitted only for one-element tensors.
        """
        run_backward(self, grad, retain_graph)

    def astype(self, dtype: Any) -> Tensor:
        """This tensor cast to ``dtype`` (differentiable between float dtypes)."""
        d = np.dtype(dtype)
        if d.kind not in "fiub":
            raise TypeError(f"astype: tensors hold numbers; cannot cast to dtype {d}")
        return Cast.apply(self, dtype=d)

    def float(self) -> Tensor:
        """This tensor as float32."""
        return self.astype(np.float32)

    def double(self) -> Tensor:
        """This tensor as float64."""
        return self.astype(np.float64)

    # ------------------------------------------------------------------ printing
    def __repr__(self) -> str:
        body = np.array2string(self.data, separator=", ", prefix="Tensor(", threshold=200)
        extra = [f"dtype={self.data.dtype}"]
        if self._ctx is not None:
            extra.append(f"grad_fn=<{self._ctx.name}>")
        elif self._rg:
            extra.append("requires_grad=True")
        if self.name:
            extra.append(f"name={self.name!r}")
        return f"Tensor({body}, {', '.join(extra)})"

    # ------------------------------------------------------------------ arithmetic
    def __add__(self, other: ArrayLike) -> Tensor:
        return _binary(E.Add, self, other)

    def __radd__(self, other: ArrayLike) -> Tensor:
        return _binary(E.Add, other, self)

    def __sub__(self, other: ArrayLike) -> Tensor:
        return _binary(E.Sub, self, other)

    def __rsub__(self, other: ArrayLike) -> Tensor:
        return _binary(E.Sub, other, self)

    def __mul__(self, other: ArrayLike) -> Tensor:
        return _binary(E.Mul, self, other)

    def __rmul__(self, other: ArrayLike) -> Tensor:
        return _binary(E.Mul, other, self)

    def __truediv__(self, other: ArrayLike) -> Tensor:
        return _binary(E.Div, self, other)

    def __rtruediv__(self, other: ArrayLike) -> Tensor:
        return _binary(E.Div, other, self)

    def __pow__(self, other: ArrayLike) -> Tensor:
        return _binary(E.Pow, self, other)

    def __rpow__(self, other: ArrayLike) -> Tensor:
        return _binary(E.Pow, other, self)

    def __matmul__(self, other: ArrayLike) -> Tensor:
        return _binary(M.MatMul, self, other)

    def __rmatmul__(self, other: ArrayLike) -> Tensor:
        return _binary(M.MatMul, other, self)

    def __neg__(self) -> Tensor:
        return E.Neg.apply(self)

    def __pos__(self) -> Tensor:
        return self

    def __abs__(self) -> Tensor:
        return E.Abs.apply(self)

    # ------------------------------------------------------------------ comparisons (no grad)
    def __lt__(self, other: ArrayLike) -> Tensor:
        return _compare(np.less, self, other)

    def __le__(self, other: ArrayLike) -> Tensor:
        return _compare(np.less_equal, self, other)

    def __gt__(self, other: ArrayLike) -> Tensor:
        return _compare(np.greater, self, other)

    def __ge__(self, other: ArrayLike) -> Tensor:
        return _compare(np.greater_equal, self, other)

    def __eq__(self, other: object) -> Tensor:  # type: ignore[override]
        return _compare(np.equal, self, other)

    def __ne__(self, other: object) -> Tensor:  # type: ignore[override]
        return _compare(np.not_equal, self, other)

    __hash__ = object.__hash__

    def __bool__(self) -> bool:
        if self.data.size != 1:
            raise ValueError(
                f"the truth value of a tensor with {self.data.size} elements is ambiguous; "
                "use .any() or .all()"
            )
        return bool(self.data)

    def __float__(self) -> float:
        return float(self.item())

    def __int__(self) -> int:
        return int(self.item())

    def __len__(self) -> int:
        if self.data.ndim == 0:
            raise TypeError("len() of a 0-d tensor")
        return self.data.shape[0]

    def __iter__(self) -> Iterator[Tensor]:
        for i in range(len(self)):
            yield self[i]

    def any(self) -> bool:
        """Whether any element is nonzero."""
        return bool(np.any(self.data))

    def all(self) -> bool:
        """Whether every element is nonzero."""
        return bool(np.all(self.data))

    # ------------------------------------------------------------------ unary math
    def exp(self) -> Tensor:
        """eˣ, elementwise; d/dx = eˣ."""
        return E.Exp.apply(self)

    def log(self) -> Tensor:
        """Natural logarithm, elementwise; d/dx = 1/x."""
        return E.Log.apply(self)

    def sqrt(self) -> Tensor:
        """√x, elementwise; d/dx = 1 / (2√x)."""
        return E.Sqrt.apply(self)

    def tanh(self) -> Tensor:
        """tanh x, elementwise; d/dx = 1 - tanh² x."""
        return E.Tanh.apply(self)

    def sigmoid(self) -> Tensor:
        """σ(x) = 1 / (1 + e⁻ˣ), without overflow for any x; d/dx = σ(x)(1 - σ(x))."""
        return E.Sigmoid.apply(self)

    def relu(self) -> Tensor:
        """max(x, 0); its gradient is 1 where x > 0, else 0."""
        return E.ReLU.apply(self)

    def abs(self) -> Tensor:
        """|x|; its gradient is sign(x) (0 at 0)."""
        return E.Abs.apply(self)

    def step(self) -> Tensor:
        """The Heaviside step: 1 where x > 0, else 0; its gradient is zero everywhere."""
        return E.Step.apply(self)

    def clip(self, min: float | None = None, max: float | None = None) -> Tensor:
        """Values limited to [min, max]; the gradient passes where min ≤ x ≤ max."""
        return E.Clip.apply(self, lo=min, hi=max)

    def maximum(self, other: ArrayLike) -> Tensor:
        """Elementwise maximum with ``other``; ties split the gradient ½–½."""
        return _binary(E.Maximum, self, other)

    def minimum(self, other: ArrayLike) -> Tensor:
        """Elementwise minimum with ``other``; ties split the gradient ½–½."""
        return _binary(E.Minimum, self, other)

    # ------------------------------------------------------------------ reductions
    def sum(self, axis: Axis = None, keepdims: bool = False) -> Tensor:
        """Sum over ``axis`` (None: all; an int or a tuple); ``keepdims`` keeps reduced axes."""
        return R.Sum.apply(self, axis=axis, keepdims=keepdims)

    def mean(self, axis: Axis = None, keepdims: bool = False) -> Tensor:
        """Mean over ``axis`` (None: all; an int or a tuple)."""
        return R.Mean.apply(self, axis=axis, keepdims=keepdims)

    def max(self, axis: Axis = None, keepdims: bool = False) -> Tensor:
        """Maximum over ``axis``; ties share the gradient equally."""
        return R.Max.apply(self, axis=axis, keepdims=keepdims)

    def min(self, axis: Axis = None, keepdims: bool = False) -> Tensor:
        """Minimum over ``axis``; ties share the gradient equally."""
        return R.Min.apply(self, axis=axis, keepdims=keepdims)

    def var(self, axis: Axis = None, ddof: int = 0, keepdims: bool = False) -> Tensor:
        """Variance Σ(x - mean)² / (n - ddof) over ``axis`` (ddof=0 as numpy)."""
        return self._var(axis, ddof, keepdims, "var")

    def std(self, axis: Axis = None, ddof: int = 0, keepdims: bool = False) -> Tensor:
        """Standard deviation, the square root of :meth:`var`."""
        return self._var(axis, ddof, keepdims, "std").sqrt()

    def _var(self, axis: Axis, ddof: int, keepdims: bool, fname: str) -> Tensor:
        axes = _axes(axis, self.ndim, fname)
        n = int(np.prod([self.shape[i] for i in axes]))
        if n - ddof <= 0:
            raise ValueError(f"{fname}: {n} elements with ddof={ddof} leave no degrees of freedom")
        d = self - self.mean(axis=axes, keepdims=True)
        return (d * d).sum(axis=axes, keepdims=keepdims) / (n - ddof)

    def argmax(self, axis: int | None = None) -> Tensor:
        """Indices of the maxima (an int64 tensor; no gradient)."""
        out = np.asarray(np.argmax(self.data, axis=axis))
        autograd.note_derived(out, _argmax, (self.data, axis))
        return _make(out, False, None)

    def argmin(self, axis: int | None = None) -> Tensor:
        """Indices of the minima (an int64 tensor; no gradient)."""
        out = np.asarray(np.argmin(self.data, axis=axis))
        autograd.note_derived(out, _argmin, (self.data, axis))
        return _make(out, False, None)

    # ------------------------------------------------------------------ softmax family
    def softmax(self, axis: int = -1) -> Tensor:
        """e^xᵢ / Σⱼ e^xⱼ along ``axis``, finite for any inputs (max-shifted)."""
        return SM.Softmax.apply(self, axis=axis)

    def log_softmax(self, axis: int = -1) -> Tensor:
        """x - log Σ eˣ along ``axis``, computed stably."""
        return SM.LogSoftmax.apply(self, axis=axis)

    def logsumexp(self, axis: Any = -1, keepdims: bool = False) -> Tensor:
        """log Σ eˣ over ``axis`` (an int, a tuple of ints, or None for all elements), computed as
        m + log Σ e^(x - m) with m the max."""
        return SM.LogSumExp.apply(self, axis=axis, keepdims=keepdims)

    # ------------------------------------------------------------------ shape
    def reshape(self, *shape: Any) -> Tensor:
        """Same elements, new shape (``reshape(2, 3)`` or ``reshape((2, 3))``; one -1 allowed)."""
        if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
            shape = tuple(shape[0])
        return S.Reshape.apply(self, shape=shape)

    def transpose(self, *axes: Any) -> Tensor:
        """Axes permuted (``transpose(1, 0)`` or ``transpose((1, 0))``; none: all reversed)."""
        if len(axes) == 1 and isinstance(axes[0], (tuple, list)):
            axes = tuple(axes[0])
        if any(isinstance(a, bool) or not isinstance(a, (int, np.integer)) for a in axes):
            raise TypeError(f"transpose: axes must be ints, got {axes}")
        if axes and sorted(int(a) % max(self.ndim, 1) for a in axes) != list(range(self.ndim)):
            raise ValueError(f"transpose: axes {axes} are not a permutation of {self.ndim} axes")
        return S.Transpose.apply(self, axes=axes or None)

    def flatten(self, start_dim: int = 0, end_dim: int = -1) -> Tensor:
        """Axes ``start_dim..end_dim`` merged into one (all of them by default)."""
        if self.ndim == 0:
            return self.reshape(1)
        s = _axis(start_dim, self.ndim, "flatten", "start_dim")
        e = _axis(end_dim, self.ndim, "flatten", "end_dim")
        if s > e:
            raise ValueError(f"flatten: start_dim {start_dim} comes after end_dim {end_dim}")
        merged = int(np.prod(self.shape[s : e + 1]))  # not -1: ambiguous for zero-size tensors
        return self.reshape(self.shape[:s] + (merged,) + self.shape[e + 1 :])

    def squeeze(self, axis: Axis = None) -> Tensor:
        """Size-1 axes removed (all of them, or the ones named)."""
        if axis is None:
            axes = tuple(i for i, n in enumerate(self.shape) if n == 1)
        else:
            axes = _axes(axis, self.ndim, "squeeze")
            bad = [a for a in axes if self.shape[a] != 1]
            if bad:
                raise ValueError(f"squeeze: axis {bad[0]} has size {self.shape[bad[0]]}, not 1")
        return self.reshape(tuple(n for i, n in enumerate(self.shape) if i not in axes))

    def unsqueeze(self, axis: int) -> Tensor:
        """A size-1 axis inserted at ``axis`` (as ``np.expand_dims``)."""
        if isinstance(axis, bool) or not isinstance(axis, (int, np.integer)):
            raise TypeError(f"unsqueeze: axis must be an int, got {axis!r}")
        if not -self.ndim - 1 <= axis <= self.ndim:
            raise ValueError(f"unsqueeze: axis {axis} is out of range for {self.ndim} dims")
        return self.reshape(np.expand_dims(self.data, axis).shape)

    def broadcast_to(self, shape: Sequence[int]) -> Tensor:
        """This tensor broadcast to ``shape`` (its gradient is summed back)."""
        return S.BroadcastTo.apply(self, shape=tuple(shape))

    def __getitem__(self, index: Any) -> Tensor:
        return S.GetItem.apply(self, index=_plain_index(index))

    def __setitem__(self, index: Any, value: ArrayLike) -> None:
        if self._rg or self._ctx is not None:
            raise RuntimeError(
                "item assignment into a tensor that is part of a computation graph (it "
                "requires grad) would corrupt its gradients; build a new tensor with "
                "tinygrad_nn.where / concatenate, or assign under a fresh leaf "
                "(t = Tensor(t.numpy().copy()))"
            )
        if isinstance(value, Tensor):
            if value._rg:
                raise RuntimeError(
                    "item assignment of a tensor that requires grad would drop its gradient "
                    "silently; build the result with tinygrad_nn.where / concatenate instead, "
                    "or assign value.detach() if no gradient should flow"
                )
            value = value.data
        self.data[_plain_index(index)] = value
        autograd.MUTATIONS.record(self)
        hook = autograd.STATE.hook
        if hook is not None and hasattr(hook, "on_assign"):  # a replay would skip this
            hook.on_assign(self)

    # ------------------------------------------------------------------ numpy interop
    def __array__(self, dtype: Any = None, copy: bool | None = None) -> np.ndarray:
        if self._rg:
            raise TypeError(
                "a tensor that requires grad cannot be turned into a numpy array implicitly: "
                "gradients would be lost silently; use tensor.detach().numpy() (or .numpy())"
            )
        if dtype is not None and np.dtype(dtype) != self.data.dtype:
            if copy is False:
                raise ValueError(
                    f"cannot give a {self.data.dtype} tensor's data as {np.dtype(dtype)} "
                    "without a copy (copy=False)"
                )
            return self.data.astype(dtype)
        return self.data.copy() if copy else self.data

    def __array_ufunc__(self, ufunc: np.ufunc, method: str, *inputs: Any, **kwargs: Any) -> Any:
        op = _UFUNCS.get(ufunc)
        if op is None or method != "__call__" or kwargs:
            raise TypeError(
                f"numpy.{ufunc.__name__}{'' if method == '__call__' else '.' + method} cannot "
                "be applied to a Tensor: it would drop the gradient; use the Tensor's own method "
                "or operator (e.g. t.exp(), t + u), or apply it to t.numpy() outside the graph"
            )
        return op(*inputs)

    def __array_function__(self, func: Any, types: Any, args: Any, kwargs: Any) -> Any:
        op = _FUNCTIONS.get(func)
        if op is None:
            raise TypeError(
                f"numpy.{func.__name__} cannot be applied to a Tensor: it would drop the "
                "gradient; use the Tensor's method or a tinygrad_nn function, or apply it to "
                "t.numpy() outside the graph"
            )
        return op(*args, **kwargs)


class Cast(Function):
    """out = a as ``dtype``;  dL/da = g cast back to a's dtype."""

    __slots__ = ("src",)

    def forward(self, a, dtype):
        self.src = a.dtype
        return a.astype(dtype, copy=False)

    def backward(self, g):
        return g.astype(self.src, copy=False)


# ---------------------------------------------------------------------- helpers

_new = object.__new__


def _make(data: np.ndarray, requires_grad: bool, node: Function | None) -> Tensor:
    t = _new(Tensor)
    t.data = data
    t.grad = None
    t._rg = requires_grad
    t._ctx = node
    t._retain = False
    t.name = None
    return t


autograd.set_tensor_type(Tensor, _make)

_PYTHON_NUMBERS = (int, float, bool)
_STATE_SLOTS = ("data", "grad", "_rg", "_ctx", "_retain", "name")


def _cast(a: np.ndarray, dtype: Any) -> np.ndarray:
    return a.astype(dtype, copy=False)


def _argmax(a: np.ndarray, axis: Any) -> np.ndarray:
    return np.asarray(np.argmax(a, axis=axis))


def _argmin(a: np.ndarray, axis: Any) -> np.ndarray:
    return np.asarray(np.argmin(a, axis=axis))


def _operand(x: Any, like: Tensor) -> Any:
    """An op's other operand, made so that it never widens a float tensor's dtype: Tensors and
    Python numbers as they are (Python numbers are 'weak' in numpy, so float32 stays float32);
    numpy scalars become Python numbers; arrays and lists become constant tensors, in the other
    operand's float dtype when that one is float."""
    if isinstance(x, Tensor) or type(x) in _PYTHON_NUMBERS:
        return x
    if isinstance(x, np.generic) and x.dtype.kind in "fiub":
        return x.item()
    if isinstance(x, (np.ndarray, list, tuple)):
        arr = np.asarray(x)
        if like.data.dtype.kind == "f" and arr.dtype.kind in "fiub":
            cast = arr.astype(like.data.dtype, copy=False)
            if cast is not arr:
                autograd.note_derived(cast, _cast, (arr, like.data.dtype))
            return _make(cast, False, None)
        return Tensor(arr)
    if isinstance(x, _PYTHON_NUMBERS):  # subclasses of int and float
        return x
    return NotImplemented


def _floats_alike(tensors: list[Any]) -> list[Any]:
    """PyTorch's promotion between tensors of different kinds: when some are float and the others
    integer or bool, the others take the floats' dtype (float32 with int64 is float32, where
    numpy gives float64); among floats alone, or integers alone, numpy's rule stands."""
    floats = [t.data.dtype for t in tensors if isinstance(t, Tensor) and t.data.dtype.kind == "f"]
    if not floats:
        return tensors
    dtype = np.result_type(*floats)
    return [
        t.astype(dtype) if isinstance(t, Tensor) and t.data.dtype.kind in "iub" else t
        for t in tensors
    ]


def _binary(op: type[Function], a: Any, b: Any) -> Any:
    if isinstance(a, Tensor):
        if isinstance(b, Tensor):
            da, db = a.data.dtype, b.data.dtype
            if da is not db and (da.kind == "f") != (db.kind == "f"):
                a, b = _floats_alike([a, b])
        else:
            if type(b) not in _PYTHON_NUMBERS:
                b = _operand(b, a)  # numpy scalars become Python numbers
                if b is NotImplemented:
                    return NotImplemented
            if type(b) is float and not a._rg and a.data.dtype.kind != "f":
                a = a.astype(_default_dtype)  # int tensor * 0.5: the default float, not float64
    else:
        a = _operand(a, b)
        if a is NotImplemented:
            return NotImplemented
        if type(a) is float and b.data.dtype.kind != "f":
            b = b.astype(_default_dtype)
    return op.apply(a, b)


def _compare(ufunc: np.ufunc, a: Any, b: Any) -> Any:
    if isinstance(a, Tensor):
        b = _operand(b, a)
    else:
        a = _operand(a, b)
    if a is NotImplemented or b is NotImplemented:
        return NotImplemented
    x = a.data if isinstance(a, Tensor) else a
    y = b.data if isinstance(b, Tensor) else b
    try:
        out = np.asarray(ufunc(x, y))
    except ValueError as e:
        raise ValueError(
            f"{ufunc.__name__}: {e} (shapes {np.shape(x)} and {np.shape(y)})"
        ) from None
    autograd.note_derived(out, ufunc, (x, y))
    return _make(out, False, None)


def _axes(axis: Any, ndim: int, fname: str) -> tuple[int, ...]:
    """``R.normalize_axis`` whose errors name the method that was called."""
    try:
        return R.normalize_axis(axis, ndim)
    except (TypeError, ValueError) as e:
        raise type(e)(f"{fname}: {e}") from None


def _axis(axis: Any, ndim: int, fname: str, what: str) -> int:
    """One axis in ``-ndim..ndim-1`` as a non-negative int, or an error naming ``fname``."""
    if isinstance(axis, bool) or not isinstance(axis, (int, np.integer)):
        raise TypeError(f"{fname}: {what} must be an int, got {axis!r}")
    if not -ndim <= axis < ndim:
        raise ValueError(f"{fname}: {what} {axis} is out of range for {ndim} dims")
    return int(axis) % ndim


def _plain_index(index: Any) -> Any:
    """An index with tensors and lists turned into numpy arrays (numpy's own rules apply)."""
    if isinstance(index, tuple):
        return tuple(_plain_index(i) for i in index)
    if isinstance(index, Tensor):
        return index.data
    if isinstance(index, list):
        return np.asarray(index)
    return index


# ---------------------------------------------------------------------- module functions


def _shape_args(shape: tuple[Any, ...]) -> tuple[Any, ...]:
    """``f(2, 3)`` and ``f((2, 3))`` both mean the shape (2, 3)."""
    return tuple(shape[0]) if len(shape) == 1 and isinstance(shape[0], (tuple, list)) else shape


def tensor(data: ArrayLike, dtype: Any = None, requires_grad: bool = False) -> Tensor:
    """Make a tensor (the same as ``Tensor(data, dtype, requires_grad)``)."""
    return Tensor(data, dtype=dtype, requires_grad=requires_grad)


def _as_tensors(xs: Sequence[ArrayLike], fname: str) -> list[Tensor]:
    if isinstance(xs, (Tensor, np.ndarray)) or not isinstance(xs, (list, tuple)):
        raise TypeError(f"{fname}: expected a list or tuple of tensors, got {type(xs).__name__}")
    if not xs:
        raise ValueError(f"{fname}: need at least one tensor")
    return _floats_alike([x if isinstance(x, Tensor) else Tensor(x) for x in xs])


def concatenate(tensors: Sequence[ArrayLike], axis: int = 0) -> Tensor:
    """Join tensors along an existing axis (as ``np.concatenate``)."""
    return S.Concatenate.apply(*_as_tensors(tensors, "concatenate"), axis=axis)


def stack(tensors: Sequence[ArrayLike], axis: int = 0) -> Tensor:
    """Join tensors along a new axis (as ``np.stack``)."""
    return S.Stack.apply(*_as_tensors(tensors, "stack"), axis=axis)


def where(condition: ArrayLike, a: ArrayLike, b: ArrayLike) -> Tensor:
    """``a`` where ``condition`` holds, else ``b``; differentiable in ``a`` and ``b``."""
    cond = condition.data if isinstance(condition, Tensor) else np.asarray(condition)
    if cond.dtype != bool:
        raise TypeError(f"where: condition must be a bool array or tensor, got dtype {cond.dtype}")
    like = a if isinstance(a, Tensor) else b if isinstance(b, Tensor) else None
    if like is None:
        a = Tensor(a)
        like = a
    x, y = _operand(a, like), _operand(b, like)
    for v in (x, y):
        if v is NotImplemented:
            raise TypeError(
                f"where: a and b must be tensors, arrays or numbers, got {type(a).__name__} "
                f"and {type(b).__name__}"
            )
    x, y = _floats_alike([x, y])
    return E.Where.apply(cond, x, y)


def maximum(a: ArrayLike, b: ArrayLike) -> Tensor:
    """Elementwise maximum; the gradient goes to the larger input (ties split it ½–½)."""
    return _binary(E.Maximum, a if isinstance(a, Tensor) else Tensor(a), b)


def minimum(a: ArrayLike, b: ArrayLike) -> Tensor:
    """Elementwise minimum; the gradient goes to the smaller input (ties split it ½–½)."""
    return _binary(E.Minimum, a if isinstance(a, Tensor) else Tensor(a), b)


def zeros(*shape: Any, dtype: Any = None, requires_grad: bool = False) -> Tensor:
    """A tensor of zeros (float, the default dtype unless ``dtype`` is given)."""
    shape = _shape_args(shape)
    data = np.zeros(shape, dtype or _default_dtype)
    return Tensor(data, dtype=data.dtype, requires_grad=requires_grad)


def ones(*shape: Any, dtype: Any = None, requires_grad: bool = False) -> Tensor:
    """A tensor of ones (float, the default dtype unless ``dtype`` is given)."""
    shape = _shape_args(shape)
    data = np.ones(shape, dtype or _default_dtype)
    return Tensor(data, dtype=data.dtype, requires_grad=requires_grad)


def zeros_like(t: Tensor, requires_grad: bool = False) -> Tensor:
    """Zeros with the shape and dtype of ``t``."""
    return Tensor(np.zeros_like(t.data), dtype=t.dtype, requires_grad=requires_grad)


def ones_like(t: Tensor, requires_grad: bool = False) -> Tensor:
    """Ones with the shape and dtype of ``t``."""
    return Tensor(np.ones_like(t.data), dtype=t.dtype, requires_grad=requires_grad)


def randn(*shape: Any, dtype: Any = None, requires_grad: bool = False) -> Tensor:
    """Samples of N(0, 1) from the global generator (see :func:`tinygrad_nn.manual_seed`)."""
    shape = _shape_args(shape)
    data = get_generator().standard_normal(shape).astype(dtype or _default_dtype)
    return Tensor(data, dtype=data.dtype, requires_grad=requires_grad)


def rand(*shape: Any, dtype: Any = None, requires_grad: bool = False) -> Tensor:
    """Samples of U[0, 1) from the global generator."""
    shape = _shape_args(shape)
    data = get_generator().random(shape).astype(dtype or _default_dtype)
    return Tensor(data, dtype=data.dtype, requires_grad=requires_grad)


def arange(*args: Any, dtype: Any = None) -> Tensor:
    """Evenly spaced values, as ``np.arange``."""
    return Tensor(np.arange(*args, dtype=dtype), dtype=dtype)


# ---------------------------------------------------------------------- numpy dispatch tables


def _sum(a, axis=None, keepdims=False):
    return a.sum(axis=axis, keepdims=keepdims)


def _mean(a, axis=None, keepdims=False):
    return a.mean(axis=axis, keepdims=keepdims)


def _max(a, axis=None, keepdims=False):
    return a.max(axis=axis, keepdims=keepdims)


def _min(a, axis=None, keepdims=False):
    return a.min(axis=axis, keepdims=keepdims)


def _var(a, axis=None, ddof=0, keepdims=False):
    return a.var(axis=axis, ddof=ddof, keepdims=keepdims)


def _std(a, axis=None, ddof=0, keepdims=False):
    return a.std(axis=axis, ddof=ddof, keepdims=keepdims)


def _reshape(a, shape):
    return a.reshape(shape)


def _transpose(a, axes=None):
    return a.transpose(axes) if axes is not None else a.transpose()


def _clip(a, a_min=None, a_max=None):
    return a.clip(a_min, a_max)


def _squeeze(a, axis=None):
    return a.squeeze(axis)


def _expand_dims(a, axis):
    return a.unsqueeze(axis)


def _broadcast_to(a, shape):
    return a.broadcast_to(shape)


def _unary(method: str) -> Any:
    return lambda a: getattr(a, method)()


_UFUNCS = {
    np.add: lambda a, b: _binary(E.Add, a, b),
    np.subtract: lambda a, b: _binary(E.Sub, a, b),
    np.multiply: lambda a, b: _binary(E.Mul, a, b),
    np.true_divide: lambda a, b: _binary(E.Div, a, b),
    np.power: lambda a, b: _binary(E.Pow, a, b),
    np.matmul: lambda a, b: _binary(M.MatMul, a, b),
    np.maximum: lambda a, b: _binary(E.Maximum, a, b),
    np.minimum: lambda a, b: _binary(E.Minimum, a, b),
    np.negative: E.Neg.apply,
    np.exp: E.Exp.apply,
    np.log: E.Log.apply,
    np.sqrt: E.Sqrt.apply,
    np.tanh: E.Tanh.apply,
    np.absolute: E.Abs.apply,
    np.less: lambda a, b: _compare(np.less, a, b),
    np.less_equal: lambda a, b: _compare(np.less_equal, a, b),
    np.greater: lambda a, b: _compare(np.greater, a, b),
    np.greater_equal: lambda a, b: _compare(np.greater_equal, a, b),
    np.equal: lambda a, b: _compare(np.equal, a, b),
    np.not_equal: lambda a, b: _compare(np.not_equal, a, b),
}

_FUNCTIONS = {
    np.sum: _sum,
    np.mean: _mean,
    np.max: _max,
    np.amax: _max,
    np.min: _min,
    np.amin: _min,
    np.var: _var,
    np.std: _std,
    np.reshape: _reshape,
    np.transpose: _transpose,
    np.clip: _clip,
    np.squeeze: _squeeze,
    np.expand_dims: _expand_dims,
    np.broadcast_to: _broadcast_to,
    np.concatenate: concatenate,
    np.stack: stack,
    np.where: where,
    np.shape: lambda a: a.shape,
    np.ndim: lambda a: a.ndim,
    np.size: lambda a: a.size,
}
