"""The datasets made in code: shapes, dtypes, geometry, label balance and seeding."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tinygrad_nn.data.synthetic import (
    DIGITS_4X3,
    logic_gate,
    make_circles,
    make_digits_4x3,
    make_moons,
    make_xor,
)
from tinygrad_nn.random import manual_seed

MAKERS = [make_circles, make_moons, make_xor]


@pytest.mark.parametrize("make", MAKERS)
@pytest.mark.parametrize("n", [2, 7, 100])
def test_shapes_and_dtypes(make, n):
    x, y = make(n, seed=0)
    assert x.shape == (n, 2) and x.dtype == np.float32
    assert y.shape == (n,) and y.dtype == np.int64
    assert set(np.unique(y)) <= {0, 1}


@pytest.mark.parametrize("make", [*MAKERS, make_digits_4x3])
def test_seeded_reproducibility(make):
    n = (31,) if make is make_digits_4x3 else (50,)
    a, b, c = make(*n, seed=3), make(*n, seed=3), make(*n, seed=4)
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    assert not np.array_equal(a[0], c[0])


@pytest.mark.parametrize("make", [make_circles, make_moons])
def test_global_generator_when_seed_is_none(make):
    manual_seed(123)
    first = make(40)
    second = make(40)
    manual_seed(123)
    np.testing.assert_array_equal(make(40)[0], first[0])
    assert not np.array_equal(first[0], second[0])


def test_generator_can_be_passed_as_seed():
    rng = np.random.default_rng(9)
    x1, _ = make_circles(20, seed=rng)
    x2, _ = make_circles(20, seed=rng)
    assert not np.array_equal(x1, x2)
    np.testing.assert_array_equal(make_circles(20, seed=np.random.default_rng(9))[0], x1)


@pytest.mark.parametrize("factor", [0.2, 0.5, 0.8])
def test_circle_radii(factor):
    x, y = make_circles(2000, noise=0.0, factor=factor, seed=1)
    radius = np.hypot(x[:, 0], x[:, 1])
    np.testing.assert_allclose(radius[y == 0], 1.0, rtol=1e-6)
    np.testing.assert_allclose(radius[y == 1], factor, rtol=1e-6)


def test_noisy_circle_radii_and_balance():
    x, y = make_circles(4001, noise=0.05, factor=0.5, seed=2)
    radius = np.hypot(x[:, 0], x[:, 1])
    outer, inner = radius[y == 0].mean(), radius[y == 1].mean()
    assert outer == pytest.approx(1.0, abs=0.01)
    assert inner / outer == pytest.approx(0.5, abs=0.01)
    assert np.bincount(y).tolist() == [2000, 2001]
    angle = np.arctan2(x[y == 0, 1], x[y == 0, 0])
    assert abs(np.cos(angle).mean()) < 0.05 and abs(np.sin(angle).mean()) < 0.05


def test_moons_geometry():
    x, y = make_moons(1000, noise=0.0, seed=0)
    assert np.bincount(y).tolist() == [500, 500]
    np.testing.assert_allclose(np.hypot(*x[y == 0].T), 1.0, rtol=1e-6)
    np.testing.assert_allclose(np.hypot(x[y == 1, 0] - 1, x[y == 1, 1] - 0.5), 1.0, rtol=1e-6)
    assert (x[y == 0, 1] >= -1e-7).all() and (x[y == 1, 1] <= 0.5 + 1e-7).all()


def test_xor_truth_table_and_noisy_samples():
    x, y = make_xor()
    np.testing.assert_array_equal(x, [[0, 0], [0, 1], [1, 0], [1, 1]])
    np.testing.assert_array_equal(y, [0, 1, 1, 0])
    x, y = make_xor(400, noise=0.1, seed=0)
    corner = np.round(x).clip(0, 1).astype(int)
    assert (y == corner[:, 0] ^ corner[:, 1]).mean() > 0.99
    assert np.bincount(y).tolist() == [200, 200]


@pytest.mark.parametrize(
    ("gate", "outputs"),
    [("and", [0, 0, 0, 1]), ("or", [0, 1, 1, 1]), ("NAND", [1, 1, 1, 0]), ("xor", [0, 1, 1, 0])],
)
def test_logic_gates(gate, outputs):
    x, y = logic_gate(gate)
    assert x.shape == (4, 2) and x.dtype == np.float32 and y.dtype == np.int64
    np.testing.assert_array_equal(x, [[0, 0], [0, 1], [1, 0], [1, 1]])
    np.testing.assert_array_equal(y, outputs)


def test_unknown_gate():
    with pytest.raises(ValueError, match="unknown logic gate 'nandor'.*xor"):
        logic_gate("nandor")


def test_digits_4x3_prototypes_and_noise():
    x, y = make_digits_4x3(seed=0)
    assert x.shape == (64, 12) and x.dtype == np.float32 and y.dtype == np.int64
    assert np.bincount(y).tolist() == [32, 32]
    assert set(np.unique(x)) <= {0.0, 1.0}
    np.testing.assert_array_equal(x[0], DIGITS_4X3[0].ravel())
    np.testing.assert_array_equal(x[32], DIGITS_4X3[1].ravel())
    flipped = np.abs(x - DIGITS_4X3.reshape(2, 12)[y]).sum(axis=1)
    assert flipped.mean() == pytest.approx(12 * 0.1 * 62 / 64, abs=0.6)


def test_digits_4x3_images():
    x, y = make_digits_4x3(3, flip_prob=0.0, flatten=False, seed=0)
    assert x.shape == (8, 4, 3)
    np.testing.assert_array_equal(x, np.repeat(DIGITS_4X3, 4, axis=0))
    np.testing.assert_array_equal(y, [0, 0, 0, 0, 1, 1, 1, 1])
    assert DIGITS_4X3[0].tolist() == [[1, 1, 1], [1, 0, 1], [1, 0, 1], [1, 1, 1]]
    x, _ = make_digits_4x3(2, flip_prob=1.0, seed=0)
    np.testing.assert_array_equal(x[1], 1 - DIGITS_4X3[0].ravel())


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: make_circles(1), "n_samples"),
        (lambda: make_circles(10, factor=1.0), "factor"),
        (lambda: make_moons(10, noise=-1.0), "noise"),
        (lambda: make_xor(0), "n_samples"),
        (lambda: make_circles(True), "n_samples"),
        (lambda: make_digits_4x3(flip_prob=1.5), "flip_prob"),
        (lambda: make_digits_4x3(-1), "n_noisy_per_digit"),
    ],
)
def test_bad_arguments(call, match):
    with pytest.raises(ValueError, match=match):
        call()


BAD_SEEDS = [("a", TypeError), (1.5, TypeError), (True, TypeError), (-1, ValueError)]


@pytest.mark.parametrize("make", [make_circles, make_moons, make_xor, make_digits_4x3])
@pytest.mark.parametrize(("seed", "error"), BAD_SEEDS)
def test_bad_seed_is_refused_naming_the_function(make, seed, error):
    with pytest.raises(error, match=rf"^{make.__name__}: seed must be"):
        make(seed=seed)


@pytest.mark.parametrize("make", MAKERS)
@pytest.mark.parametrize("noise", [float("inf"), float("-inf"), float("nan"), -1.0])
def test_noise_must_be_finite_and_non_negative(make, noise):
    n = 4 if make is make_xor else 10
    with pytest.raises(ValueError, match=rf"^{make.__name__}: noise must be a finite number"):
        make(n, noise=noise)


def test_make_xor_table_still_checks_its_arguments():
    with pytest.raises(ValueError, match="make_xor: noise"):
        make_xor(None, noise=-1)
    with pytest.raises(TypeError, match="make_xor: seed"):
        make_xor(None, seed="x")
    with pytest.raises(TypeError, match="make_xor: noise must be a number"):
        make_xor(None, noise="0.1")
    np.testing.assert_array_equal(make_xor(None, seed=3)[1], [0, 1, 1, 0])


def test_seeds_accepted_before_still_work():
    first = make_moons(8, seed=5)[0]
    for seed in (np.int64(5), np.random.default_rng(5), np.random.SeedSequence(5), [5]):
        np.testing.assert_array_equal(make_moons(8, seed=seed)[0], first)
    np.testing.assert_array_equal(make_moons(8, noise=np.float32(0.1), seed=5)[0], first)


@settings(max_examples=30, deadline=None)
@given(st.integers(2, 300), st.floats(0, 0.3), st.integers(0, 2**32 - 1))
def test_circles_balance_any_size(n, noise, seed):
    x, y = make_circles(n, noise=noise, seed=seed)
    assert x.shape == (n, 2) and np.isfinite(x).all()
    assert np.bincount(y, minlength=2).tolist() == [n // 2, n - n // 2]
