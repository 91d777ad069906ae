"""Datasets as numpy arrays: IDX files, MNIST, small synthetic sets, and mini-batching."""

from tinygrad_nn.data.batching import DataLoader, batches
from tinygrad_nn.data.idx import IDXFormatError, decode_idx, encode_idx, read_idx, write_idx
from tinygrad_nn.data.mnist import MIRRORS, ChecksumError, MNISTNotFoundError, load_mnist
from tinygrad_nn.data.synthetic import (
    logic_gate,
    make_circles,
    make_digits_4x3,
    make_moons,
    make_xor,
)

__all__ = [
    "MIRRORS",
    "ChecksumError",
    "DataLoader",
    "IDXFormatError",
    "MNISTNotFoundError",
    "batches",
    "decode_idx",
    "encode_idx",
    "load_mnist",
    "logic_gate",
    "make_circles",
    "make_digits_4x3",
    "make_moons",
    "make_xor",
    "read_idx",
    "write_idx",
]
