"""The one seedable source of randomness: initialisers, shuffling and dropout all draw from it.

After ``manual_seed(s)`` a whole training run is bit-for-bit reproducible.
"""

from __future__ import annotations

import threading

import numpy as np

__all__ = ["manual_seed", "get_generator", "initial_seed", "generator_for"]

_lock = threading.Lock()
_seed: int | None = None
_generator = np.random.default_rng()


def manual_seed(seed: int) -> np.random.Generator:
    """Reseed the global generator (a ``numpy.random.Generator`` on PCG64) and return it."""
    global _generator, _seed
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise TypeError(f"manual_seed: seed must be an int, got {type(seed).__name__}")
    if seed < 0:
        raise ValueError(f"manual_seed: seed must be >= 0, got {seed}")
    with _lock:
        _seed = int(seed)
        _generator = np.random.default_rng(_seed)
    return _generator


def initial_seed() -> int | None:
    """The seed last given to :func:`manual_seed`, or None if it was never called."""
    return _seed


def get_generator() -> np.random.Generator:
    """The global generator every random choice in tinygrad_nn draws from."""
    return _generator


def generator_for(seed: int | np.random.Generator | None) -> np.random.Generator:
    """The generator a seeded function should draw from: the global one for ``seed=None``, the
    given ``Generator`` itself, or a fresh one seeded with the int ``seed``."""
    if seed is None:
        return get_generator()
    if isinstance(seed, np.random.Generator):
        return seed
    return np.random.default_rng(seed)
