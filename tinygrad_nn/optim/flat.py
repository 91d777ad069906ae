"""``FlatGroup``: a param group's parameters as views of one contiguous 1-D array.

numpy costs about a microsecond per call whatever the array's size, so an update written per
parameter (two calls each for SGD, a dozen for Adam) is mostly call overhead on small networks.
Laid out one after another in one buffer, the parameters of a group are updated by a handful of
whole-buffer calls; the optimizer's state (momentum, moment estimates) and scratch arrays are
more buffers of the same layout, with a reshaped view ("part") per parameter. The gradients
stay where backward put them: the first operation that reads them runs once per parameter,
writing into the parts of a flat buffer, and everything after it runs on whole buffers — as
cheap as gathering them with one ``np.concatenate``, without the extra pass over memory.

Every ``p.data`` of the group becomes a view of ``data`` (the values are copied once; nothing the
model does changes, and in-place writes such as ``load_state_dict`` and ``nn.init`` land in the
buffer). Parameters that already lie one after another in one buffer — a group laid out before,
or a single contiguous parameter — are used where they are, without a copy.

The update rules are written once, for a *layout*: ``layout.parts(x)`` are the per-parameter
pieces of a flat array ``x``. A :class:`FlatGroup` is the layout of a whole group, :data:`WHOLE`
that of a single array (its only part is itself), which is how the per-parameter path runs the
same code — so both paths give the same results to the last bit.
"""

from __future__ import annotations

import numpy as np

from ..tensor import Tensor

__all__ = ["FlatGroup", "WHOLE"]


class _Whole:
    """The layout of one array on its own: its only part is itself."""

    @staticmethod
    def parts(x: np.ndarray) -> tuple[np.ndarray, ...]:
        return (x,)


WHOLE = _Whole()


class FlatGroup:
    """The parameters ``params`` with ``p.data is views[i]``, each view a slice of ``data``."""

    __slots__ = (
        "params",
        "views",
        "data",
        "grad",
        "grad_parts",
        "_spans",
        "_parts",
        "_state",
        "_scratch",
    )

    def __init__(self, params: list[Tensor], data: np.ndarray, views: list[np.ndarray]) -> None:
        self.params = list(params)
        self.data = data
        self.views = views
        self._spans: list[tuple[int, int]] = []
        at = 0
        for v in views:
            self._spans.append((at, at + v.size))
            at += v.size
        self._parts: dict[int, list[np.ndarray]] = {id(data): views}
        self._state: dict[str, np.ndarray] = {}
        self._scratch: list[np.ndarray] = []
        self.grad: np.ndarray | None = None  # see grad_views
        self.grad_parts: list[np.ndarray] | None = None

    @classmethod
    def build(cls, params: list[Tensor]) -> FlatGroup | None:
        """Lay ``params`` out in one buffer, or None if they cannot share one: dtypes differ,
        or two of them share memory (a copy would silently untie them)."""
        arrays = [p.data for p in params]
        dtype = arrays[0].dtype
        if dtype.kind != "f" or any(a.dtype != dtype for a in arrays) or _overlap(arrays):
            return None
        total = sum(a.size for a in arrays)
        data = _consecutive(arrays, total)
        if data is not None:
            return cls(params, data, arrays)
        data = np.empty(total, dtype)
        views, at = [], 0
        for p, a in zip(params, arrays):
            v = data[at : at + a.size].reshape(a.shape)
            np.copyto(v, a)
            p.data = v
            views.append(v)
            at += a.size
        return cls(params, data, views)

    def parts(self, flat: np.ndarray) -> list[np.ndarray]:
        """The per-parameter views of one of this group's flat arrays."""
        return self._parts[id(flat)]

    def _new(self, zeros: bool) -> np.ndarray:
        flat = np.zeros_like(self.data) if zeros else np.empty_like(self.data)
        self._parts[id(flat)] = [
            flat[a:b].reshape(v.shape) for (a, b), v in zip(self._spans, self.views)
        ]
        return flat

    def state(self, key: str) -> np.ndarray:
        """The flat array that holds state ``key`` (zeros when first asked for)."""
        flat = self._state.get(key)
        if flat is None:
            flat = self._state[key] = self._new(zeros=True)
        return flat

    def grad_views(self) -> list[np.ndarray]:
        """Per-parameter views of one flat gradient buffer (``self.grad``, made at the first
        call): a captured step writes the gradients straight into them and makes them the
        parameters' ``.grad``; an optimizer step then reads them as that one array."""
        if self.grad is None:
            self.grad = self._new(zeros=True)
            self.grad_parts = self._parts[id(self.grad)]
        return self.grad_parts

    def layout(self, grads: list[np.ndarray]) -> tuple[list[np.ndarray], object]:
        """``(grads, layout)`` for an update: ``grads`` is ``[self.grad]`` (the optimizer found
        every gradient to be its view of it) with the one-array layout, or one gradient per
        parameter with this group's layout."""
        if grads[0] is self.grad and len(grads) == 1:
            return grads, WHOLE
        return grads, self

    def scratch(self, n: int) -> list[np.ndarray]:
        """``n`` (or more) flat scratch arrays, made once and reused at every step."""
        while len(self._scratch) < n:
            self._scratch.append(self._new(zeros=False))
        return self._scratch


def _consecutive(arrays: list[np.ndarray], total: int) -> np.ndarray | None:
    """A 1-D view of the ``total`` elements of ``arrays`` if they already lie one after another,
    C-contiguous, in one writeable buffer; None otherwise."""
    if not all(a.flags.c_contiguous and a.flags.writeable for a in arrays):
        return None
    if len(arrays) == 1:
        return arrays[0].reshape(-1)
    start = at = _address(arrays[0])
    for a in arrays:
        if _address(a) != at:
            return None
        at += a.nbytes
    root = arrays[0]
    while isinstance(root.base, np.ndarray):
        root = root.base
    if root.dtype != arrays[0].dtype or not root.flags.c_contiguous:
        return None
    offset, rest = divmod(start - _address(root), root.itemsize)
    if rest or offset < 0 or offset + total > root.size:
        return None
    return root.reshape(-1)[offset : offset + total]


def _address(a: np.ndarray) -> int:
    return a.__array_interface__["data"][0]


def _overlap(arrays: list[np.ndarray]) -> bool:
    """Whether the memory spans of two of ``arrays`` overlap (conservative for strided ones)."""
    spans = []
    for a in arrays:
        if a.size:
            lo = hi = _address(a)
            for n, stride in zip(a.shape, a.strides):
                if stride < 0:
                    lo += (n - 1) * stride
                else:
                    hi += (n - 1) * stride
            spans.append((lo, hi + a.itemsize))
    spans.sort()
    return any(lo < end for (_, end), (lo, _) in zip(spans, spans[1:]))
