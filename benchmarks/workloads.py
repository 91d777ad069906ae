"""What every contender trains: the two networks, their initial weights, and the data.

Parameters are handed around in one canonical order and layout, ``[W1, b1, W2, b2, ...]`` with
each ``W`` of shape (out, in) — the layout of ``nn.Dense`` and ``torch.nn.Linear``. A contender
whose natural layout is (in, out) transposes on the way in and back out, so that the weights
after a few steps can be compared across contenders.
"""

from __future__ import annotations

import gzip
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
MNIST_DIR = REPO.parent / "shared" / "data" / "mnist"


@dataclass(frozen=True)
class Net:
    """A network and its training rule."""

    key: str  # "nielsen" or "relu_adam"
    sizes: tuple[int, ...]
    activation: str  # "sigmoid" (every layer, as Nielsen) or "relu" (hidden layers, linear out)
    loss: str  # "quadratic": Σ‖a - y‖² / (2n); "cross_entropy": softmax CE, mean over the batch
    optimizer: str  # "sgd" or "adam"
    lr: float

    @property
    def title(self) -> str:
        arch = "-".join(map(str, self.sizes))
        if self.key == "nielsen":
            return f"{arch} sigmoid, quadratic cost, SGD lr={self.lr:g} (Nielsen)"
        return f"{arch} ReLU, softmax CE, Adam lr={self.lr:g}"


NIELSEN = Net("nielsen", (784, 30, 10), "sigmoid", "quadratic", "sgd", 3.0)
RELU_ADAM = Net("relu_adam", (784, 128, 64, 10), "relu", "cross_entropy", "adam", 1e-3)
NETS = {n.key: n for n in (NIELSEN, RELU_ADAM)}

ADAM_BETAS = (0.9, 0.999)
ADAM_EPS = 1e-8

# Contender names used across the suite.
FLOOR = "numpy floor"
EAGER = "tinygrad_nn"
CAPTURED = "tinygrad_nn (captured)"
LEAN = "tinygrad_nn (captured, keep_grads=False)"


def initial_params(net: Net, seed: int = 0) -> list[np.ndarray]:
    """``[W1, b1, ...]`` in float32. Nielsen's network draws everything from N(0, 1), as his
    network.py does; the ReLU network uses PyTorch's default U(-1/√in, 1/√in)."""
    rng = np.random.default_rng(seed)
    params = []
    for n_in, n_out in zip(net.sizes[:-1], net.sizes[1:]):
        if net.key == "nielsen":
            w, b = rng.standard_normal((n_out, n_in)), rng.standard_normal(n_out)
        else:
            bound = 1.0 / np.sqrt(n_in)
            w = rng.uniform(-bound, bound, (n_out, n_in))
            b = rng.uniform(-bound, bound, n_out)
        params += [w.astype(np.float32), b.astype(np.float32)]
    return params


# ---------------------------------------------------------------------- data


def _read_idx_gz(path: Path) -> np.ndarray:
    """An IDX file of unsigned bytes (magic 0x0000 08 ndim), gzipped."""
    raw = gzip.decompress(path.read_bytes())
    if raw[:2] != b"\0\0" or raw[2] != 8:
        raise ValueError(f"{path}: not an IDX file of unsigned bytes")
    ndim = raw[3]
    shape = tuple(int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    return np.frombuffer(raw, np.uint8, offset=4 + 4 * ndim).reshape(shape)


def load_mnist_train(directory: Path = MNIST_DIR) -> tuple[np.ndarray, np.ndarray, str]:
    """The 60,000 training images as (N, 784) float32 in [0, 1] and labels as int64, and a word
    on where they came from. Random data of the same shape stands in if the files are absent
    (timings do not depend on the values, only the correctness check is weaker)."""
    images = directory / "train-images-idx3-ubyte.gz"
    labels = directory / "train-labels-idx1-ubyte.gz"
    if images.is_file() and labels.is_file():
        x = _read_idx_gz(images).reshape(-1, 784).astype(np.float32) / np.float32(255)
        y = _read_idx_gz(labels).astype(np.int64)
        return x, y, f"MNIST from {directory}"
    rng = np.random.default_rng(1)
    x = rng.random((60_000, 784), dtype=np.float32)
    y = rng.integers(0, 10, 60_000)
    return x, y, f"random data (MNIST not found in {directory})"


@dataclass(frozen=True)
class Batch:
    x: np.ndarray  # (n, 784) float32, C-contiguous
    onehot: np.ndarray  # (n, 10) float32
    labels: np.ndarray  # (n,) int64


def one_hot(labels: np.ndarray, classes: int = 10) -> np.ndarray:
    out = np.zeros((len(labels), classes), np.float32)
    out[np.arange(len(labels)), labels] = 1
    return out


def make_batches(x: np.ndarray, y: np.ndarray, batch: int, count: int) -> list[Batch]:
    """``count`` consecutive batches of ``batch`` rows, each its own contiguous array; every
    contender cycles through the same list."""
    out = []
    for k in range(count):
        rows = slice(k * batch, (k + 1) * batch)
        xs = np.ascontiguousarray(x[rows])
        out.append(Batch(xs, one_hot(y[rows]), np.ascontiguousarray(y[rows])))
    return out


@dataclass
class Trainer:
    """A contender set up to train: ``step()`` is one training step (forward, loss, backward,
    update) on the next batch of the shared list; ``params()`` returns copies of the parameters
    in the canonical order and layout; ``notes`` say anything particular about the setup;
    ``status()``, where given, says whether a captured step is replaying its plan."""

    step: Callable[[], object]
    params: Callable[[], list[np.ndarray]]
    notes: list[str] = field(default_factory=list)
    # For a captured step: says whether it is replaying (None: nothing to check).
    status: Callable[[], str] | None = None
