"""Checkpoints: exact round trips, plain safetensors keys, atomic saves, hostile files refused."""

import glob
import json
import os
import pickle
import random
import signal
import subprocess
import sys
import time
from collections import OrderedDict

import numpy as np
import pytest
import safetensors.numpy
from hypothesis import given
from hypothesis import strategies as st

from tinygrad_nn import io, optim
from tinygrad_nn.io import CheckpointError
from tinygrad_nn.nn.module import Module, Parameter, Sequential
from tinygrad_nn.tensor import Tensor


class Lin(Module):
    def __init__(self, n_in, n_out, seed=0):
        super().__init__()
        rng = np.random.default_rng(seed)
        self.weight = Parameter(rng.standard_normal((n_out, n_in)).astype(np.float32))
        self.bias = Parameter(np.zeros(n_out, np.float32))

    def forward(self, x):
        return x @ self.weight.T + self.bias


def assert_same(a, b):
    """Equal values, types, dtypes and structure (arrays compared exactly, NaNs included)."""
    assert type(a) is type(b), (type(a), type(b))
    if isinstance(a, np.ndarray):
        assert a.dtype == b.dtype and a.shape == b.shape
        assert np.array_equal(a, b, equal_nan=a.dtype.kind == "f")
    elif isinstance(a, np.generic):
        assert a.dtype == b.dtype and (a == b or (a != a and b != b))
    elif isinstance(a, dict):
        assert list(a) == list(b)
        for k in a:
            assert_same(a[k], b[k])
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b)
        for x, y in zip(a, b):
            assert_same(x, y)
    elif isinstance(a, float) and a != a:
        assert b != b
    else:
        assert a == b


def temp_files(directory):
    return glob.glob(os.path.join(directory, ".*.tmp"))


@pytest.fixture
def good(tmp_path):
    """A valid checkpoint file and its content."""
    obj = OrderedDict(
        [
            ("0.weight", np.arange(6, dtype=np.float32).reshape(2, 3)),
            ("0.bias", np.array([1.5, -2.0])),
        ]
    )
    path = tmp_path / "good.safetensors"
    io.save(obj, path)
    return path, obj


# ------------------------------------------------------------------ round trips
def test_save_load_is_exact_for_every_dtype_and_shape(tmp_path):
    rng = np.random.default_rng(0)
    obj = OrderedDict(
        f32=rng.standard_normal((3, 4)).astype(np.float32),
        f64=np.array([np.nan, np.inf, -np.inf, -0.0, 5e-324, 1.7976931348623157e308]),
        f16=np.array([1.5, -2.25], np.float16),
        i64=np.array([-(2**63), 2**63 - 1, 0]),
        i8=np.array([[-128, 127]], np.int8),
        u8=np.arange(256, dtype=np.uint8),
        b=np.array([True, False, True]),
        scalar0d=np.array(3.25),
        int0d=np.array(7, np.int32),
        empty=np.zeros((0, 5), np.float32),
        strided=np.arange(20.0).reshape(4, 5)[::2, ::-2],
    )
    io.save(obj, tmp_path / "a.safetensors")
    back = io.load(tmp_path / "a.safetensors")
    assert_same(back, OrderedDict((k, v.copy()) for k, v in obj.items()))
    for arr in back.values():
        assert arr.flags.writeable
        arr[...] = 0  # really writable, not a view of read-only bytes


def test_nested_structures_and_python_values_round_trip(tmp_path):
    obj = {
        "state": {0: {"step": 3, "buf": np.ones(2, np.float32)}, 7: {}},
        "param_groups": [{"lr": 0.1, "betas": (0.9, 0.999), "amsgrad": False, "params": [0, 7]}],
        "values": [
            None,
            True,
            0,
            -1,
            2**80,
            1.0,
            1e-300,
            float("nan"),
            float("inf"),
            float("-inf"),
            "",
            "ünïcødé ✓",
            "a.b",
            [],
            (),
            {},
            OrderedDict(),
        ],
        "np_scalars": [np.float32(1.5), np.int64(-3), np.bool_(True), np.float64(0.1)],
        "a.b": {"c": np.zeros(1)},
        "a": {"b.c": np.ones(1)},  # same dotted name as above: still two tensors
    }
    io.save(obj, tmp_path / "n.safetensors")
    back = io.load(tmp_path / "n.safetensors")
    assert_same(back, obj)  # numpy scalars keep their type and dtype too


def test_tensors_are_saved_as_their_arrays(tmp_path):
    t = Tensor(np.array([1.0, 2.0], np.float32))
    io.save({"t": t, "p": Parameter(np.eye(2))}, tmp_path / "t.safetensors")
    back = io.load(tmp_path / "t.safetensors")
    assert_same(back, {"t": t.data, "p": np.eye(2, dtype=np.float32)})


def test_model_files_have_plain_keys_and_load_into_a_fresh_model(tmp_path):
    model = Sequential(Lin(3, 4, seed=1), Lin(4, 2, seed=2))
    path = tmp_path / "model.safetensors"
    io.save(model.state_dict(), path)
    plain = safetensors.numpy.load_file(str(path))
    assert set(plain) == {"0.weight", "0.bias", "1.weight", "1.bias"}
    assert np.array_equal(plain["1.weight"], model[1].weight.data)
    fresh = Sequential(Lin(3, 4, seed=5), Lin(4, 2, seed=6))
    fresh.load_state_dict(io.load(path))
    for (_, a), (_, b) in zip(model.named_parameters(), fresh.named_parameters()):
        assert np.array_equal(a.data, b.data)
    assert list(io.load(path)) == ["0.weight", "0.bias", "1.weight", "1.bias"]


def test_optimizer_state_round_trips(tmp_path):
    p = Parameter(np.ones((2, 2), np.float32))
    opt = optim.Adam([p], amsgrad=True)
    p.grad = np.full((2, 2), 0.5, np.float32)
    opt.step()
    sd = opt.state_dict()
    io.save(sd, tmp_path / "opt.safetensors")
    assert_same(io.load(tmp_path / "opt.safetensors"), sd)
    keys = set(safetensors.numpy.load_file(str(tmp_path / "opt.safetensors")))
    assert keys == {"state.0.exp_avg", "state.0.exp_avg_sq", "state.0.max_exp_avg_sq"}


def test_torch_reads_our_model_file(tmp_path):
    torch = pytest.importorskip("torch")
    import safetensors.torch

    layer = Lin(3, 2, seed=3)
    io.save(layer.state_dict(), tmp_path / "lin.safetensors")
    linear = torch.nn.Linear(3, 2)
    linear.load_state_dict(safetensors.torch.load_file(str(tmp_path / "lin.safetensors")))
    x = np.random.default_rng(0).standard_normal((5, 3)).astype(np.float32)
    np.testing.assert_allclose(
        linear(torch.from_numpy(x)).detach().numpy(), layer(Tensor(x)).data, rtol=1e-6
    )


def test_a_foreign_safetensors_file_loads_as_its_tensors_in_file_order(tmp_path):
    path = str(tmp_path / "foreign.safetensors")
    safetensors.numpy.save_file({"b": np.zeros(3), "a": np.ones((2, 2), np.float32)}, path)
    back = io.load(path)
    assert isinstance(back, OrderedDict) and set(back) == {"a", "b"}
    assert_same(back["a"], np.ones((2, 2), np.float32))


def test_save_refuses_what_it_cannot_store(tmp_path):
    path = tmp_path / "x.safetensors"
    with pytest.raises(TypeError, match=r"cannot store a set at a\.0"):
        io.save({"a": [{1, 2}]}, path)
    with pytest.raises(TypeError, match=r"the array at w of dtype object"):
        io.save({"w": np.array([None])}, path)
    with pytest.raises(TypeError, match=r"dtype complex128"):
        io.save({"w": np.zeros(2, complex)}, path)
    with pytest.raises(TypeError, match=r"dict keys must be str or int, got \(1, 2\)"):
        io.save({(1, 2): 1}, path)
    loop = {"x": []}
    loop["x"].append(loop)
    with pytest.raises(ValueError, match="contains itself"):
        io.save(loop, path)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        io.save({}, tmp_path / "no" / "such" / "dir.safetensors")
    with pytest.raises(IsADirectoryError, match="is a directory"):
        io.save({}, tmp_path)
    assert os.listdir(tmp_path) == []


# ------------------------------------------------------------------ atomic saves
@pytest.mark.parametrize("fail_at", ["fsync", "replace", "interrupt"])
def test_a_failed_save_leaves_the_old_file_and_no_temp_file(good, monkeypatch, fail_at):
    path, obj = good
    before = path.read_bytes()

    def boom(*args, **kwargs):
        if fail_at == "interrupt":
            raise KeyboardInterrupt
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync" if fail_at != "replace" else "replace", boom)
    with pytest.raises(KeyboardInterrupt if fail_at == "interrupt" else OSError):
        io.save({"0.weight": np.zeros(100)}, path)
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert temp_files(path.parent) == []
    assert_same(io.load(path), obj)


def test_saving_keeps_the_mode_of_the_replaced_file(good):
    path, _ = good
    os.chmod(path, 0o640)
    io.save({"x": np.zeros(1)}, path)
    assert os.stat(path).st_mode & 0o777 == 0o640


WRITER = """
import sys
import numpy as np
from tinygrad_nn import io

sd = {f"layer{i}.weight": np.zeros((512, 1024), np.float32) for i in range(8)}
print("ready", flush=True)
k = 0
while True:
    k += 1
    for a in sd.values():
        a.fill(k)
    io.save(sd, sys.argv[1])
"""


def test_killing_the_writer_mid_save_leaves_a_whole_checkpoint(tmp_path):
    path = tmp_path / "big.safetensors"
    io.save({f"layer{i}.weight": np.zeros((512, 1024), np.float32) for i in range(8)}, path)
    rng = random.Random(0)
    mid_write = 0
    for attempt in range(12):
        child = subprocess.Popen(
            [sys.executable, "-c", WRITER, str(path)], stdout=subprocess.PIPE, text=True
        )
        assert child.stdout.readline().strip() == "ready"
        time.sleep(rng.uniform(0.02, 0.4))
        child.send_signal(signal.SIGKILL)
        child.wait()
        child.stdout.close()
        assert child.returncode == -signal.SIGKILL
        leftovers = temp_files(tmp_path)
        mid_write += bool(leftovers)
        back = io.load(path)  # whatever the moment of the kill, a whole checkpoint, old or new
        assert list(back) == [f"layer{i}.weight" for i in range(8)]
        values = {float(a[0, 0]) for a in back.values()}
        assert len(values) == 1 and all((a == a[0, 0]).all() for a in back.values())
        for f in leftovers:
            os.unlink(f)
        if attempt >= 3 and mid_write >= 2:
            break
    assert mid_write >= 1, "no kill landed while a temp file was being written"


# ------------------------------------------------------------------ refusals
def refuse(path, *fragments):
    with pytest.raises(CheckpointError) as e:
        io.load(path)
    message = str(e.value)
    assert str(path) in message and e.value.path == str(path)
    for fragment in fragments:
        assert fragment in message, message
    assert isinstance(e.value, ValueError)
    return message


def test_missing_empty_and_directory_are_refused(tmp_path):
    refuse(tmp_path / "nope.safetensors", "no such file")
    refuse(tmp_path, "is a directory")
    (tmp_path / "empty.safetensors").write_bytes(b"")
    refuse(tmp_path / "empty.safetensors", "the file is empty (0 bytes)")


def test_truncated_files_are_refused(good, tmp_path):
    path, _ = good
    data = path.read_bytes()
    header_len = int.from_bytes(data[:8], "little")
    cut = tmp_path / "cut.safetensors"
    cut.write_bytes(data[:5])
    refuse(cut, "only 5 bytes")
    cut.write_bytes(data[: 8 + header_len // 2])
    refuse(cut, "truncated (or a corrupted length): its header should take")
    cut.write_bytes(data[:-4])
    refuse(cut, "truncated: its header describes 40 bytes of tensor data but only 36")


def test_corrupted_files_are_refused(good, tmp_path):
    path, _ = good
    data = bytearray(path.read_bytes())
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(bytes(data) + b"\0\0")
    refuse(bad, "2 unexpected bytes after the tensor data")
    broken = bytearray(data)
    broken[8] = ord("[")
    bad.write_bytes(bytes(broken))
    refuse(bad, "not a safetensors file (it should start with an 8-byte header length")
    broken = bytearray(data)
    broken[8 + 1] = 0xFF
    bad.write_bytes(bytes(broken))
    refuse(bad, "corrupted header: not valid JSON")
    bad.write_bytes(b"\xff" * 64)
    refuse(bad, "not a safetensors file")


def rewrite_metadata(path, out, change):
    """Write ``out``: ``path`` with its tinygrad_nn metadata document changed by ``change``."""
    data = path.read_bytes()
    n = int.from_bytes(data[:8], "little")
    header = json.loads(data[8 : 8 + n])
    doc = json.loads(header["__metadata__"]["tinygrad_nn"])
    header["__metadata__"]["tinygrad_nn"] = json.dumps(change(doc))
    raw = json.dumps(header).encode()
    out.write_bytes(len(raw).to_bytes(8, "little") + raw + data[8 + n :])


def test_inconsistent_metadata_is_refused(good, tmp_path):
    path, _ = good
    out = tmp_path / "meta.safetensors"
    rewrite_metadata(path, out, lambda d: {**d, "version": 99})
    refuse(out, "format version 99")
    rewrite_metadata(path, out, lambda d: {**d, "root": {"odict": [["w", {"array": "zzz"}]]}})
    refuse(out, "names a tensor 'zzz' that the file lacks")
    rewrite_metadata(path, out, lambda d: {**d, "root": {"list": []}})
    refuse(out, "does not mention the tensors")
    rewrite_metadata(path, out, lambda d: {**d, "root": {"eval": "__import__('os')"}})
    refuse(out, "unknown node")
    deep = {"list": []}
    for _ in range(300):
        deep = {"list": [deep]}
    rewrite_metadata(path, out, lambda d: {**d, "root": deep})
    refuse(out, "corrupted metadata")


class Marker:
    """Unpickling this creates a file: proof that code ran."""

    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (open, (self.path, "w"))


def test_pickles_and_other_formats_are_refused_without_running_them(tmp_path):
    marker = tmp_path / "PWNED"
    bad = tmp_path / "model.pt"
    for protocol in (2, 4, 5):
        bad.write_bytes(pickle.dumps(Marker(str(marker)), protocol=protocol))
        refuse(bad, "looks like a pickle file", "never loads pickles")
    bad.write_bytes(b"PK\x03\x04" + b"\0" * 60)
    refuse(bad, "looks like a zip archive (PyTorch's torch.save format")
    np.save(tmp_path / "a.npy", np.zeros(3))
    refuse(tmp_path / "a.npy", "numpy .npy file")
    bad.write_bytes(b"\x1f\x8b\x08\x00" + b"\0" * 30)
    refuse(bad, "gzip")
    assert not marker.exists()


def test_torch_save_files_are_refused(tmp_path):
    torch = pytest.importorskip("torch")
    torch.save({"w": torch.zeros(3)}, tmp_path / "m.pt")
    refuse(tmp_path / "m.pt", "zip archive")
    torch.save({"w": torch.zeros(3)}, tmp_path / "old.pt", _use_new_zipfile_serialization=False)
    refuse(tmp_path / "old.pt", "pickle")


# ------------------------------------------------------------------ fuzzing
@pytest.fixture(scope="module")
def fuzz_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("fuzz")
    valid = d / "valid.safetensors"
    p = Parameter(np.ones((2, 3), np.float32))
    opt = optim.Adam([p])
    p.grad = np.ones((2, 3), np.float32)
    opt.step()
    io.save({"model": OrderedDict(w=p.data), "opt": opt.state_dict()}, valid)
    return d, valid.read_bytes(), pickle.dumps(Marker(str(d / "PWNED")))


def load_bytes(directory, data):
    path = directory / "fuzzed.safetensors"
    path.write_bytes(data)
    try:
        io.load(path)
    except CheckpointError as e:
        assert str(path) in str(e)


@given(st.binary(max_size=300))
def test_fuzz_random_bytes_raise_only_checkpoint_error(fuzz_dir, data):
    directory, _, payload = fuzz_dir
    load_bytes(directory, data)
    load_bytes(directory, payload + data)
    assert not (directory / "PWNED").exists()


@given(st.data())
def test_fuzz_mutated_checkpoints_raise_only_checkpoint_error(fuzz_dir, data):
    directory, valid, payload = fuzz_dir
    blob = bytearray(valid)
    for _ in range(data.draw(st.integers(1, 4))):
        kind = data.draw(st.sampled_from(["flip", "cut", "insert", "delete", "pickle"]))
        i = data.draw(st.integers(0, max(len(blob) - 1, 0)))
        if kind == "flip" and blob:
            blob[i] = data.draw(st.integers(0, 255))
        elif kind == "cut":
            del blob[i:]
        elif kind == "insert":
            blob[i:i] = data.draw(st.binary(min_size=1, max_size=8))
        elif kind == "delete":
            del blob[i : i + data.draw(st.integers(1, 8))]
        else:
            blob[i:i] = payload
    load_bytes(directory, bytes(blob))
    assert not (directory / "PWNED").exists()


def test_malformed_structures_are_refused(tmp_path):
    import json

    from safetensors.numpy import save_file

    arrays = {"a": np.ones(3, np.float32), "b": np.ones((), np.float32)}
    roots = {
        "twice": {"list": [{"array": "a"}, {"array": "a"}, {"array": "b"}]},
        "scalar": {"list": [{"array": "a", "scalar": True}, {"array": "b"}]},
        "dup key": {"dict": [["k", {"array": "a"}], ["k", {"array": "b"}]]},
    }
    for what, root in roots.items():
        path = tmp_path / f"{what}.safetensors"
        doc = {"version": io.FORMAT_VERSION, "root": root}
        save_file(arrays, str(path), metadata={"tinygrad_nn": json.dumps(doc)})
        with pytest.raises(io.CheckpointError, match="corrupted metadata"):
            io.load(path)
