"""Mini-batches of numpy arrays, shuffled with a seedable generator.

An epoch is one pass over a random permutation of the sample indices; batch ``k`` holds the
samples ``perm[k * batch_size : (k + 1) * batch_size]``, taken by one fancy index per batch
(without shuffling, by a slice: a view, no copy).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np

from tinygrad_nn.random import generator_for

__all__ = ["DataLoader", "batches"]

Seed = int | np.random.Generator | None
Batch = tuple[np.ndarray, np.ndarray] | np.ndarray


def seeded_generator(func: str, seed: Any) -> np.random.Generator:
    """The generator ``func`` draws from for ``seed``: the global one for None, the given
    ``numpy.random.Generator`` itself, or a new one from a non-negative int (or from what else
    ``np.random.default_rng`` takes as a seed: a SeedSequence, a BitGenerator, a sequence of
    non-negative ints). Anything else is refused here, with ``func`` and ``seed`` named, rather
    than deep inside numpy."""
    if seed is None or isinstance(seed, np.random.Generator):
        return generator_for(seed)
    if isinstance(seed, (np.random.SeedSequence, np.random.BitGenerator)):
        return np.random.default_rng(seed)
    what = "None, a non-negative int or a numpy.random.Generator"
    if isinstance(seed, (list, tuple, np.ndarray)):
        entropy = np.asarray(seed)
        if entropy.size == 0 or entropy.dtype.kind not in "iu":
            raise TypeError(f"{func}: seed must be {what}, got {seed!r}")
        if (entropy < 0).any():
            raise ValueError(f"{func}: seed must be >= 0, got {seed!r}")
        return np.random.default_rng(entropy)
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise TypeError(f"{func}: seed must be {what}, got {type(seed).__name__} {seed!r}")
    if seed < 0:
        raise ValueError(f"{func}: seed must be >= 0, got {seed}")
    return generator_for(int(seed))


def _validate(x: Any, y: Any, batch_size: int) -> tuple[np.ndarray, np.ndarray | None]:
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)):
        raise TypeError(f"batch_size must be an int, got {type(batch_size).__name__}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    x = np.asarray(x)
    if x.ndim == 0:
        raise ValueError("x must have a leading sample axis, got a 0-d array")
    if len(x) == 0:
        raise ValueError("x is empty: there are no samples to batch")
    if y is None:
        return x, None
    y = np.asarray(y)
    if y.ndim == 0 or len(y) != len(x):
        len_y = "a 0-d array" if y.ndim == 0 else str(len(y))
        raise ValueError(f"x and y must have as many samples: len(x) = {len(x)}, len(y) = {len_y}")
    return x, y


def _num_batches(n: int, batch_size: int, drop_last: bool) -> int:
    return n // batch_size if drop_last else -(-n // batch_size)


def _iterate(
    x: np.ndarray, y: np.ndarray | None, batch_size: int, order: np.ndarray | None, count: int
) -> Iterator[Batch]:
    for k in range(count):
        if order is None:
            index: slice | np.ndarray = slice(k * batch_size, (k + 1) * batch_size)
        else:
            index = order[k * batch_size : (k + 1) * batch_size]
        yield x[index] if y is None else (x[index], y[index])


def batches(
    x: Any,
    y: Any = None,
    batch_size: int = 32,
    *,
    shuffle: bool = True,
    drop_last: bool = False,
    seed: Seed = None,
) -> Iterator[Batch]:
    """Iterate over one epoch of mini-batches ``(x_batch, y_batch)``, or ``x_batch`` if y is None.

    There are ``ceil(N / batch_size)`` batches, the last one shorter if ``batch_size`` does not
    divide N; ``drop_last=True`` leaves that one out (``floor(N / batch_size)`` batches).
    The permutation is drawn when ``batches`` is called, from ``np.random.default_rng(seed)``,
    or from the global generator (:func:`tinygrad_nn.random.get_generator`) when seed is None.
    Raises ``ValueError`` for ``batch_size < 1``, ``len(x) != len(y)`` or an empty ``x``.
    """
    x, y = _validate(x, y, batch_size)
    rng = seeded_generator("batches", seed)
    order = rng.permutation(len(x)) if shuffle else None
    return _iterate(x, y, int(batch_size), order, _num_batches(len(x), batch_size, drop_last))


class DataLoader:
    """A re-iterable :func:`batches`: every ``iter()`` is a new epoch with a new shuffle.

    With an int ``seed`` the sequence of epochs is reproducible (one generator is made at
    construction and drawn from every epoch); with None each epoch draws from the global
    generator. ``len(loader)`` is the number of batches per epoch.
    """

    def __init__(
        self,
        x: Any,
        y: Any = None,
        batch_size: int = 32,
        *,
        shuffle: bool = True,
        drop_last: bool = False,
        seed: Seed = None,
    ) -> None:
        self.x, self.y = _validate(x, y, batch_size)
        self.batch_size = int(batch_size)
        self.shuffle = shuffle
        self.drop_last = drop_last
        self._rng = None if seed is None else seeded_generator("DataLoader", seed)

    def __len__(self) -> int:
        return _num_batches(len(self.x), self.batch_size, self.drop_last)

    def __iter__(self) -> Iterator[Batch]:
        return batches(
            self.x,
            self.y,
            self.batch_size,
            shuffle=self.shuffle,
            drop_last=self.drop_last,
            seed=self._rng,
        )

    def __repr__(self) -> str:
        return (
            f"DataLoader(samples={len(self.x)}, batch_size={self.batch_size}, "
            f"shuffle={self.shuffle}, drop_last={self.drop_last}, batches={len(self)})"
        )
