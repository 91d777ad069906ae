"""Mini-batching: coverage of every sample, sizes, seeding, DataLoader epochs, clear errors."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tinygrad_nn.data.batching import DataLoader, batches
from tinygrad_nn.random import manual_seed


def data(n: int = 10):
    x = np.arange(n * 3, dtype=np.float32).reshape(n, 3)
    return x, np.arange(n, dtype=np.int64)


@settings(max_examples=80, deadline=None)
@given(st.integers(1, 60), st.integers(1, 70), st.booleans(), st.booleans())
def test_every_sample_once_in_matching_pairs(n, batch_size, shuffle, drop_last):
    x, y = data(n)
    got = list(batches(x, y, batch_size, shuffle=shuffle, drop_last=drop_last, seed=0))
    expected_count = n // batch_size if drop_last else -(-n // batch_size)
    assert len(got) == expected_count == len(DataLoader(x, y, batch_size, drop_last=drop_last))
    assert all(len(xb) == batch_size for xb, _ in got[:-1])
    for xb, yb in got:
        np.testing.assert_array_equal(xb, x[yb])  # rows stay with their labels
    labels = np.concatenate([yb for _, yb in got]) if got else np.array([], dtype=np.int64)
    assert len(set(labels.tolist())) == len(labels)
    if not drop_last:
        assert sorted(labels.tolist()) == list(range(n))
    if not shuffle:
        assert labels.tolist() == list(range(len(labels)))


def test_sizes_with_and_without_drop_last():
    x, y = data(10)
    assert [len(b) for b, _ in batches(x, y, 4, shuffle=False)] == [4, 4, 2]
    assert [len(b) for b, _ in batches(x, y, 4, drop_last=True)] == [4, 4]
    assert list(batches(x, y, 11, drop_last=True)) == []


def test_x_only():
    x, _ = data(5)
    out = list(batches(x, batch_size=2, shuffle=False))
    assert all(isinstance(b, np.ndarray) for b in out)
    np.testing.assert_array_equal(np.concatenate(out), x)


def test_unshuffled_batches_are_views():
    x, y = data(8)
    xb, yb = next(batches(x, y, 4, shuffle=False))
    assert np.shares_memory(xb, x) and np.shares_memory(yb, y)


def test_seeded_shuffle_is_reproducible_and_shuffles():
    x, y = data(50)
    first = [yb.tolist() for _, yb in batches(x, y, 7, seed=1)]
    again = [yb.tolist() for _, yb in batches(x, y, 7, seed=1)]
    other = [yb.tolist() for _, yb in batches(x, y, 7, seed=2)]
    assert first == again and first != other
    assert sum(first, []) != list(range(50))


def test_global_generator_when_seed_is_none():
    x, y = data(30)
    manual_seed(5)
    a = [yb.tolist() for _, yb in batches(x, y, 4)]
    b = [yb.tolist() for _, yb in batches(x, y, 4)]
    manual_seed(5)
    assert [yb.tolist() for _, yb in batches(x, y, 4)] == a
    assert a != b


def test_accepts_lists_and_multidimensional_arrays():
    images = np.zeros((6, 2, 2), dtype=np.float32)
    xb, yb = next(batches(images, [0, 1, 2, 3, 4, 5], 4, shuffle=False))
    assert xb.shape == (4, 2, 2) and yb.tolist() == [0, 1, 2, 3]


@pytest.mark.parametrize(
    ("args", "kwargs", "error", "match"),
    [
        ((np.zeros(5), None, 0), {}, ValueError, "batch_size must be >= 1, got 0"),
        ((np.zeros(5), None, -3), {}, ValueError, "batch_size must be >= 1, got -3"),
        ((np.zeros(5), None, 2.0), {}, TypeError, "batch_size must be an int"),
        ((np.zeros(5), np.zeros(4)), {}, ValueError, r"len\(x\) = 5, len\(y\) = 4"),
        ((np.zeros((0, 3)),), {}, ValueError, "x is empty"),
        ((np.float32(1.0),), {}, ValueError, "0-d"),
        ((np.zeros(3), np.float32(1.0)), {}, ValueError, "0-d"),
    ],
)
def test_errors_are_raised_at_the_call(args, kwargs, error, match):
    with pytest.raises(error, match=match):
        batches(*args, **kwargs)  # not only when iterated
    with pytest.raises(error, match=match):
        DataLoader(*args, **kwargs)


@pytest.mark.parametrize(
    ("seed", "error"), [("a", TypeError), (1.5, TypeError), (-1, ValueError), ([1, -2], ValueError)]
)
def test_bad_seed_is_refused_naming_the_function(seed, error):
    x, y = data(6)
    with pytest.raises(error, match=r"^batches: seed must be"):
        batches(x, y, 2, seed=seed)
    with pytest.raises(error, match=r"^batches: seed must be"):
        batches(x, y, 2, shuffle=False, seed=seed)
    with pytest.raises(error, match=r"^DataLoader: seed must be"):
        DataLoader(x, y, 2, seed=seed)


def test_seeds_accepted_before_still_work():
    x, y = data(12)
    order = [yb.tolist() for _, yb in batches(x, y, 4, seed=7)]
    for seed in (np.int64(7), lambda: np.random.default_rng(7), np.random.SeedSequence(7), [7]):
        fresh = seed if callable(seed) else lambda seed=seed: seed  # a Generator is used up
        assert [yb.tolist() for _, yb in batches(x, y, 4, seed=fresh())] == order
        assert [yb.tolist() for _, yb in DataLoader(x, y, 4, seed=fresh())] == order


def test_dataloader_new_shuffle_each_epoch_reproducible_by_seed():
    x, y = data(40)
    loader = DataLoader(x, y, 8, seed=0)
    assert len(loader) == 5
    epoch1 = [yb.tolist() for _, yb in loader]
    epoch2 = [yb.tolist() for _, yb in loader]
    assert epoch1 != epoch2
    assert sorted(sum(epoch1, [])) == sorted(sum(epoch2, [])) == list(range(40))
    again = DataLoader(x, y, 8, seed=0)
    assert [[yb.tolist() for _, yb in again] for _ in range(2)] == [epoch1, epoch2]


def test_dataloader_without_shuffle_and_repr():
    x, y = data(10)
    loader = DataLoader(x, y, 3, shuffle=False, drop_last=True)
    assert len(loader) == 3
    assert [yb.tolist() for _, yb in loader] == [[0, 1, 2], [3, 4, 5], [6, 7, 8]]
    assert "batch_size=3" in repr(loader) and "batches=3" in repr(loader)


def test_dataloader_global_generator():
    x, y = data(20)
    manual_seed(11)
    a = [yb.tolist() for _, yb in DataLoader(x, y, 5)]
    manual_seed(11)
    assert [yb.tolist() for _, yb in DataLoader(x, y, 5)] == a
