"""Small datasets made in code, for first experiments and for tests.

Every function returns numpy ``(x, y)`` with ``x`` float32 and ``y`` int64 class labels, ordered
by class (shuffle with :func:`~tinygrad_nn.data.batching.batches`). With ``seed=None`` the noise
is drawn from the global generator (:func:`tinygrad_nn.random.get_generator`, reseeded by
``manual_seed``); an int seed or a ``numpy.random.Generator`` gives an independent stream.
"""

from __future__ import annotations

import math

import numpy as np

from tinygrad_nn.data.batching import seeded_generator

__all__ = [
    "DIGITS_4X3",
    "logic_gate",
    "make_circles",
    "make_digits_4x3",
    "make_moons",
    "make_xor",
]

Seed = int | np.random.Generator | None

_GATES = {
    "and": (0, 0, 0, 1),
    "or": (0, 1, 1, 1),
    "nand": (1, 1, 1, 0),
    "nor": (1, 0, 0, 0),
    "xor": (0, 1, 1, 0),
    "xnor": (1, 0, 0, 1),
}

#: The clean 4x3 images (4 rows, 3 columns, 1 = ink) of the digits 0 and 1.
DIGITS_4X3 = np.array(
    [
        [[1, 1, 1], [1, 0, 1], [1, 0, 1], [1, 1, 1]],
        [[0, 1, 0], [0, 1, 0], [0, 1, 0], [0, 1, 0]],
    ],
    dtype=np.float32,
)
DIGITS_4X3.flags.writeable = False


def _check_count(func: str, name: str, value: int, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{func}: {name} must be an int >= {minimum}, got {value!r}")
    return int(value)


def _check_noise(func: str, noise: float) -> float:
    """A standard deviation: a finite real number >= 0 (inf would make every point inf)."""
    value = None
    if not isinstance(noise, (bool, str, bytes)) and np.ndim(noise) == 0:
        try:
            value = float(noise)
        except (TypeError, ValueError):
            pass
    if value is None:
        raise TypeError(f"{func}: noise must be a number, got {type(noise).__name__} {noise!r}")
    if not (math.isfinite(value) and value >= 0):
        raise ValueError(
            f"{func}: noise must be a finite number >= 0 (a standard deviation), got {noise!r}"
        )
    return value


def make_circles(
    n_samples: int = 1000, *, noise: float = 0.05, factor: float = 0.5, seed: Seed = None
) -> tuple[np.ndarray, np.ndarray]:
    """Two concentric rings: not separable by a line, separable by the radius.

    The outer ring (label 0) has radius 1 and ``n_samples // 2`` points, the inner ring (label 1)
    radius ``factor`` and the rest. Points sit at evenly spaced angles
    ``theta_k = 2 pi k / n`` (with a random phase per ring), ``(r cos theta, r sin theta)``,
    plus Gaussian noise of standard deviation ``noise`` on each coordinate.
    Returns x (n_samples, 2) float32 and y (n_samples,) int64.
    """
    n_samples = _check_count("make_circles", "n_samples", n_samples, 2)
    noise = _check_noise("make_circles", noise)
    if not 0 < factor < 1:
        raise ValueError(
            f"make_circles: factor (inner radius / outer radius) must be in (0, 1), got {factor!r}"
        )
    rng = seeded_generator("make_circles", seed)
    n_outer = n_samples // 2
    rings = []
    for count, radius in ((n_outer, 1.0), (n_samples - n_outer, factor)):
        theta = 2 * np.pi * (np.arange(count) / count + rng.random())
        rings.append(radius * np.stack([np.cos(theta), np.sin(theta)], axis=1))
    x = np.concatenate(rings) + noise * rng.standard_normal((n_samples, 2))
    y = np.repeat(np.array([0, 1], dtype=np.int64), [n_outer, n_samples - n_outer])
    return x.astype(np.float32), y


def make_moons(
    n_samples: int = 1000, *, noise: float = 0.1, seed: Seed = None
) -> tuple[np.ndarray, np.ndarray]:
    """Two interleaved half circles of radius 1.

    Label 0: ``(cos t, sin t)`` for t evenly spaced in [0, pi] (``n_samples // 2`` points);
    label 1: ``(1 - cos t, 1/2 - sin t)``, the first moon turned over and shifted under it.
    Gaussian noise of standard deviation ``noise`` is added to each coordinate.
    Returns x (n_samples, 2) float32 and y (n_samples,) int64.
    """
    n_samples = _check_count("make_moons", "n_samples", n_samples, 2)
    noise = _check_noise("make_moons", noise)
    rng = seeded_generator("make_moons", seed)
    n_upper = n_samples // 2
    t_upper = np.linspace(0, np.pi, n_upper)
    t_lower = np.linspace(0, np.pi, n_samples - n_upper)
    upper = np.stack([np.cos(t_upper), np.sin(t_upper)], axis=1)
    lower = np.stack([1 - np.cos(t_lower), 0.5 - np.sin(t_lower)], axis=1)
    x = np.concatenate([upper, lower]) + noise * rng.standard_normal((n_samples, 2))
    y = np.repeat(np.array([0, 1], dtype=np.int64), [n_upper, n_samples - n_upper])
    return x.astype(np.float32), y


def logic_gate(name: str) -> tuple[np.ndarray, np.ndarray]:
    """The truth table of a two-input gate: "and", "or", "nand", "nor", "xor" or "xnor".

    x is (4, 2) float32 with rows (0,0), (0,1), (1,0), (1,1); y is (4,) int64, the gate's output.
    """
    table = _GATES.get(name.lower()) if isinstance(name, str) else None
    if table is None:
        raise ValueError(f"unknown logic gate {name!r}; choose one of {', '.join(_GATES)}")
    x = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], dtype=np.float32)
    return x, np.array(table, dtype=np.int64)


def make_xor(
    n_samples: int | None = None, *, noise: float = 0.1, seed: Seed = None
) -> tuple[np.ndarray, np.ndarray]:
    """XOR, the classic problem a single linear layer cannot solve.

    With ``n_samples=None``: the 4-point truth table (as ``logic_gate("xor")``). With an int:
    that many points, cycling through the corners (0,0), (0,1), (1,0), (1,1), each with Gaussian
    noise of standard deviation ``noise``; y = x1 XOR x2 of the corner.
    """
    if n_samples is not None:
        n_samples = _check_count("make_xor", "n_samples", n_samples, 1)
    noise = _check_noise("make_xor", noise)  # checked even when the table needs no noise
    rng = seeded_generator("make_xor", seed)
    if n_samples is None:
        return logic_gate("xor")
    corners, labels = logic_gate("xor")
    index = np.arange(n_samples) % 4
    x = corners[index] + noise * rng.standard_normal((n_samples, 2))
    return x.astype(np.float32), labels[index]


def make_digits_4x3(
    n_noisy_per_digit: int = 31,
    *,
    flip_prob: float = 0.1,
    flatten: bool = True,
    seed: Seed = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Tiny binary images of the digits 0 and 1, 4 rows by 3 columns (:data:`DIGITS_4X3`).

    The toy data of the book 「ディープラーニングがわかる数学入門」 (《深度学习的数学》): for each
    digit its clean image, then ``n_noisy_per_digit`` copies in which each pixel is flipped
    (0 <-> 1) with probability ``flip_prob``. The defaults give 64 images, 32 per digit.
    Returns x (N, 12) float32 of 0/1, or (N, 4, 3) with ``flatten=False``, and y in {0, 1}
    (the digit), digit 0 first; N = 2 * (1 + n_noisy_per_digit).
    """
    n_noisy = _check_count("make_digits_4x3", "n_noisy_per_digit", n_noisy_per_digit, 0)
    if not 0 <= flip_prob <= 1:
        raise ValueError(f"make_digits_4x3: flip_prob must be in [0, 1], got {flip_prob!r}")
    rng = seeded_generator("make_digits_4x3", seed)
    per_digit = 1 + n_noisy
    clean = np.repeat(DIGITS_4X3, per_digit, axis=0)
    flips = rng.random(clean.shape) < flip_prob
    flips[::per_digit] = False
    x = np.where(flips, 1 - clean, clean).astype(np.float32)
    y = np.repeat(np.array([0, 1], dtype=np.int64), per_digit)
    return (x.reshape(len(x), 12) if flatten else x), y
