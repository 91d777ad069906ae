"""Hypothesis strategies and assertions for property-testing ops, ours and yours.

Import it explicitly (``import tinygrad_nn.testing``); it needs the ``hypothesis`` package, a
development dependency that ``import tinygrad_nn`` never loads.

A gradient test draws shapes and values, then compares backward with central differences::

    from hypothesis import given
    from tinygrad_nn.testing import assert_gradcheck, shapes, tensors

    @given(tensors(shape=shapes(), domain="positive"))
    def test_log_grad(x):
        assert_gradcheck(lambda t: t.log(), x)

Kinks are kept out of the drawn values rather than tolerated by loose tolerances: ``avoid``
keeps every value at least ``min_gap`` away from the points where the derivative jumps (relu and
abs at 0, the bounds of clip), and ``distinct=True`` keeps every pair of values ``min_gap`` apart,
so max, min, maximum and minimum have no ties. ``min_gap`` (1e-2 by default) is far larger than
gradcheck's step (1e-6), so no central difference straddles a kink.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from hypothesis import assume
from hypothesis import strategies as st
from hypothesis.errors import InvalidArgument
from hypothesis.extra import numpy as hnp

from .gradcheck import GradcheckWarning, gradcheck
from .tensor import Tensor

__all__ = [
    "DOMAINS",
    "arrays",
    "assert_close",
    "assert_gradcheck",
    "broadcastable_shapes",
    "float_dtypes",
    "shapes",
    "tensor_tuples",
    "tensors",
]

Shape = tuple[int, ...]

DOMAINS: dict[str, tuple[float, float, tuple[float, ...]]] = {
    "real": (-3.0, 3.0, ()),
    "positive": (0.0, 3.0, (0.0,)),
    "negative": (-3.0, 0.0, (0.0,)),
    "nonzero": (-3.0, 3.0, (0.0,)),
    "unit": (0.0, 1.0, (0.0, 1.0)),
}
"""Value domains as ``(low, high, avoid)``: the default range and the points kept ``min_gap``
away. ``positive`` is (0, 3] kept off 0 (log, sqrt, bases of ``**``); ``negative`` its mirror;
``nonzero`` is [-3, 3] kept off 0 (divisors); ``unit`` is the open interval (0, 1) kept off both
ends (probabilities)."""

_LIMITS = {"positive": (0.0, np.inf), "negative": (-np.inf, 0.0), "unit": (0.0, 1.0)}


def shapes(
    min_dims: int = 0, max_dims: int = 3, min_side: int = 1, max_side: int = 4
) -> st.SearchStrategy[Shape]:
    """Array shapes with ``min_dims..max_dims`` axes of ``min_side..max_side`` elements each;
    0-d shapes ``()`` are included when ``min_dims`` is 0.

    Example: ``@given(tensors(shape=shapes(min_dims=1)))``.
    """
    return hnp.array_shapes(
        min_dims=min_dims, max_dims=max_dims, min_side=min_side, max_side=max_side
    )


def broadcastable_shapes(
    n: int = 2, min_dims: int = 0, max_dims: int = 3, min_side: int = 1, max_side: int = 4
) -> st.SearchStrategy[tuple[Shape, ...]]:
    """Tuples of ``n`` mutually broadcastable shapes: they may differ in their number of axes and
    have size-1 axes where the others do not (numpy's broadcasting rules).

    Example::

        @given(broadcastable_shapes().flatmap(lambda s: tensor_tuples(s)))
        def test_add_grad(ab):
            assert_gradcheck(lambda a, b: a + b, *ab)
    """
    return hnp.mutually_broadcastable_shapes(
        num_shapes=n, min_dims=min_dims, max_dims=max_dims, min_side=min_side, max_side=max_side
    ).map(lambda b: tuple(b.input_shapes))


def float_dtypes() -> st.SearchStrategy[np.dtype]:
    """The float dtypes tensors are made of: float32 and float64."""
    return st.sampled_from([np.dtype(np.float32), np.dtype(np.float64)])


def _intervals(
    low: float, high: float, avoid: Sequence[float], gap: float
) -> list[tuple[float, float]]:
    """[low, high] with the open ``gap``-neighbourhood of every ``avoid`` point cut out."""
    if not low < high:
        raise InvalidArgument(f"arrays: need low < high, got low={low}, high={high}")
    parts = [(float(low), float(high))]
    for k in avoid:
        cut = []
        for a, b in parts:
            if a < k - gap:
                cut.append((a, min(b, k - gap)))
            if k + gap < b:
                cut.append((max(a, k + gap), b))
        parts = cut
    if not parts:
        raise InvalidArgument(
            f"arrays: nothing of [{low}, {high}] is at least {gap} away from {tuple(avoid)}"
        )
    return parts


def _domain(
    domain: str, low: float | None, high: float | None, avoid: Sequence[float]
) -> tuple[float, float, tuple[float, ...]]:
    if domain not in DOMAINS:
        raise InvalidArgument(f"arrays: unknown domain {domain!r}; choose one of {list(DOMAINS)}")
    d_low, d_high, d_avoid = DOMAINS[domain]
    low = d_low if low is None else float(low)
    high = d_high if high is None else float(high)
    floor, ceiling = _LIMITS.get(domain, (-np.inf, np.inf))
    if low < floor or high > ceiling:
        raise InvalidArgument(f"arrays: [{low}, {high}] leaves the {domain!r} domain")
    return low, high, tuple(d_avoid) + tuple(float(a) for a in avoid)


@st.composite
def _flat_values(
    draw: Any,
    n: int,
    low: float,
    high: float,
    avoid: tuple[float, ...],
    min_gap: float,
    distinct: bool,
    reject: bool,
) -> np.ndarray:
    """``n`` float64 values of [low, high], each ``min_gap`` off the ``avoid`` points and, when
    ``distinct``, from each other. If ``n`` distinct values do not fit, the draw is rejected
    (``reject``: the size was drawn, a smaller one may fit) or InvalidArgument is raised.

    The allowed set is a union of intervals; values are drawn on their concatenation (a line of
    the intervals' total length) and mapped back. The map only ever widens distances, so values
    ``min_gap`` apart on the line stay that far apart.
    """
    parts = _intervals(low, high, avoid, min_gap)
    if len(parts) == 1 and not distinct:
        a, b = parts[0]
        elems = st.floats(a, b, allow_nan=False, allow_infinity=False, allow_subnormal=False)
        return draw(hnp.arrays(np.float64, (n,), elements=elems))
    lengths = np.array([b - a for a, b in parts])
    total = float(lengths.sum())
    span = total - (n - 1) * min_gap if distinct else total
    if span < 0:
        assume(not reject)
        raise InvalidArgument(
            f"arrays: {n} distinct values {min_gap} apart do not fit in {parts}; "
            "widen [low, high], lower min_gap or draw smaller shapes"
        )
    elems = st.floats(0.0, span, allow_nan=False, allow_infinity=False, allow_subnormal=False)
    t = draw(hnp.arrays(np.float64, (n,), elements=elems))
    if distinct and n > 1:
        order = np.array(draw(st.permutations(range(n))))
        t = (np.sort(t) + min_gap * np.arange(n))[np.argsort(order)]
    starts = np.concatenate([[0.0], np.cumsum(lengths)[:-1]])
    k = np.clip(np.searchsorted(starts, t, side="right") - 1, 0, len(parts) - 1)
    lo = np.array([a for a, _ in parts])
    hi = np.array([b for _, b in parts])
    return np.clip(lo[k] + (t - starts[k]), lo[k], hi[k])


def _resolve(draw: Any, value: Any) -> Any:
    return draw(value) if isinstance(value, st.SearchStrategy) else value


@st.composite
def arrays(
    draw: Any,
    shape: Shape | st.SearchStrategy[Shape] | None = None,
    dtype: Any = np.float64,
    domain: str = "real",
    low: float | None = None,
    high: float | None = None,
    avoid: Sequence[float] = (),
    min_gap: float = 1e-2,
    distinct: bool = False,
) -> np.ndarray:
    """Float numpy arrays for gradient tests.

    ``shape`` is a tuple or a strategy of them (default :func:`shapes`); ``dtype`` a dtype or a
    strategy (e.g. :func:`float_dtypes`). Values lie in ``[low, high]``, whose default comes from
    ``domain`` (see :data:`DOMAINS`; ``real`` is [-3, 3]). Every value keeps at least ``min_gap``
    from each point of ``avoid`` (and from the domain's own excluded points), and with
    ``distinct=True`` every two values are at least ``min_gap`` apart. A drawn shape too large
    for that is rejected (as by ``hypothesis.assume``) and another drawn; a fixed ``shape`` that
    can never fit raises InvalidArgument.

    Example — relu away from its kink, max without ties::

        @given(arrays(shape=shapes(), avoid=(0.0,)))
        def test_relu(a): ...

        @given(arrays(shape=shapes(min_dims=1), distinct=True))
        def test_max(a): ...
    """
    drawn = shape is None or isinstance(shape, st.SearchStrategy)
    shape = tuple(_resolve(draw, shapes() if shape is None else shape))
    return _values(draw, shape, dtype, domain, low, high, avoid, min_gap, distinct, drawn)


def _values(draw, shape, dtype, domain, low, high, avoid, min_gap, distinct, reject) -> np.ndarray:
    dtype = np.dtype(_resolve(draw, dtype))
    if dtype.kind != "f":
        raise InvalidArgument(f"arrays: dtype must be a float dtype, got {dtype}")
    lo, hi, avoid_all = _domain(domain, low, high, avoid)
    n = int(np.prod(shape, dtype=np.int64))
    flat = draw(_flat_values(n, lo, hi, avoid_all, float(min_gap), distinct, reject))
    return flat.reshape(shape).astype(dtype)


@st.composite
def tensors(
    draw: Any,
    shape: Shape | st.SearchStrategy[Shape] | None = None,
    dtype: Any = np.float64,
    domain: str = "real",
    low: float | None = None,
    high: float | None = None,
    avoid: Sequence[float] = (),
    min_gap: float = 1e-2,
    distinct: bool = False,
    requires_grad: bool = True,
) -> Tensor:
    """Tensors holding :func:`arrays` (same arguments), with ``requires_grad=True`` by default.
    The dtype is kept: float64 stays float64 whatever the default dtype.

    Example::

        @given(tensors(shape=shapes(), domain="positive"))
        def test_sqrt_grad(x):
            assert_gradcheck(lambda t: t.sqrt(), x)
    """
    a = draw(arrays(shape, dtype, domain, low, high, avoid, min_gap, distinct))
    return Tensor(a, dtype=a.dtype, requires_grad=requires_grad)


@st.composite
def tensor_tuples(
    draw: Any,
    shapes: Sequence[Shape] | st.SearchStrategy[Sequence[Shape]],
    dtype: Any = np.float64,
    domain: str = "real",
    low: float | None = None,
    high: float | None = None,
    avoid: Sequence[float] = (),
    min_gap: float = 1e-2,
    distinct: bool = False,
    requires_grad: bool = True,
) -> tuple[Tensor, ...]:
    """One tensor per shape in ``shapes``, all of one dtype. With ``distinct=True`` the values
    of all of them together are pairwise ``min_gap`` apart — what ``maximum(a, b)`` needs to have
    no ties; shapes too large for that are rejected (as by ``hypothesis.assume``).

    Example::

        @given(broadcastable_shapes().flatmap(lambda s: tensor_tuples(s, distinct=True)))
        def test_maximum_grad(ab):
            assert_gradcheck(tinygrad_nn.maximum, *ab)
    """
    shape_list = [tuple(s) for s in _resolve(draw, shapes)]
    dtype = np.dtype(_resolve(draw, dtype))
    sizes = [int(np.prod(s, dtype=np.int64)) for s in shape_list]
    # the shapes usually come from a flatmap: a draw too large for distinct values is rejected
    args = (dtype, domain, low, high, avoid, min_gap, distinct)
    flat = _values(draw, (sum(sizes),), *args, reject=True)
    out = []
    for s, piece in zip(shape_list, np.split(flat, np.cumsum(sizes)[:-1])):
        out.append(Tensor(piece.reshape(s), dtype=dtype, requires_grad=requires_grad))
    return tuple(out)


def assert_gradcheck(
    fn: Callable[..., Any], *inputs: Any, allow_kinks: bool = False, **tolerances: Any
) -> None:
    """Assert that ``fn``'s backward matches central differences for every input that requires
    grad (:func:`tinygrad_nn.gradcheck` with ``eps``, ``atol``, ``rtol`` passed through).

    Raises AssertionError with gradcheck's report on a mismatch. A test point on a kink fails
    too, unless ``allow_kinks``: draw the inputs with ``avoid=`` or ``distinct=True`` instead.
    """
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", GradcheckWarning)
        try:
            gradcheck(fn, *inputs, **tolerances)
        except AssertionError as e:
            raise AssertionError(str(e)) from None
    for w in caught:
        if issubclass(w.category, GradcheckWarning) and not allow_kinks:
            raise AssertionError(
                f"{w.message}\n(draw the inputs away from kinks with avoid= or distinct=True, "
                "or pass allow_kinks=True)"
            )
        warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)


def _as_array(x: Any) -> np.ndarray:
    return x.data if isinstance(x, Tensor) else np.asarray(x)


def assert_close(
    actual: Any,
    expected: Any,
    rtol: float | None = None,
    atol: float | None = None,
    check_dtype: bool = False,
) -> None:
    """Assert that two Tensors, arrays or numbers have the same shape and close values:
    |actual - expected| ≤ atol + rtol·|expected| elementwise (NaNs compare equal).

    Default tolerances follow the lower precision of the two: rtol=1e-5, atol=1e-6 for float32
    (and below), rtol=1e-7, atol=1e-12 for float64; non-float data must be equal exactly.

    Example: ``assert_close(Tensor(a).exp(), np.exp(a))``.
    """
    a, e = _as_array(actual), _as_array(expected)
    if a.shape != e.shape:
        raise AssertionError(f"assert_close: shapes differ: actual {a.shape}, expected {e.shape}")
    if check_dtype and a.dtype != e.dtype:
        raise AssertionError(f"assert_close: dtypes differ: actual {a.dtype}, expected {e.dtype}")
    if a.dtype.kind not in "fc" and e.dtype.kind not in "fc":
        np.testing.assert_array_equal(a, e)
        return
    low = min(
        (d.itemsize for d in (a.dtype, e.dtype) if d.kind in "fc"),
        default=8,
    )
    if rtol is None:
        rtol = 1e-5 if low <= 4 else 1e-7
    if atol is None:
        atol = 1e-6 if low <= 4 else 1e-12
    np.testing.assert_allclose(a, e, rtol=rtol, atol=atol, equal_nan=True)
