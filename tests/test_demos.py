"""The demos run (``--quick``) and write their files; one epoch of the default MNIST net
reaches 95% test accuracy."""

import contextlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DEMOS = ROOT / "demos"
MNIST = Path(__file__).resolve().parents[2] / "shared/data/mnist"
needs_mnist = pytest.mark.skipif(
    not (MNIST / "train-images-idx3-ubyte.gz").exists(), reason=f"no MNIST files in {MNIST}"
)
pytest.importorskip("matplotlib")


def run(script, *args, timeout=120):
    env = {**os.environ, "TINYGRAD_NN_DATA": str(MNIST), "OPENBLAS_NUM_THREADS": "1"}
    proc = subprocess.run(
        [sys.executable, str(DEMOS / script), *map(str, args)],
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
        cwd=ROOT,
    )
    assert proc.returncode == 0, f"{script} failed:\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout


def nonempty(out, *names):
    for name in names:
        assert (out / name).stat().st_size > 0, name


@pytest.mark.parametrize(
    "script", ["mnist.py", "circles.py", "perceptron.py", "gradient_descent.py", "graph.py"]
)
def test_help(script):
    out = run(script, "--help")
    assert out.startswith("usage:") and "--quick" in out and "--out" in out


@needs_mnist
@pytest.mark.parametrize("preset", ["default", "nielsen"])
def test_mnist_quick(tmp_path, preset):
    out = run("mnist.py", "--quick", "--preset", preset, "--out", tmp_path)
    nonempty(tmp_path, "model.safetensors", "learning_curves.png", "digits.png", "weights.png")
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["preset"] == preset and summary["quick"] and summary["epochs"] == 1
    assert len(summary["test_accuracy"]) == 1 and summary["test_images"] == 1000
    assert summary["best_accuracy"] > 0.5 and summary["wall_seconds"] > 0
    assert "best test accuracy" in out
    if preset == "nielsen":  # network.py's line, epochs counted from 0
        assert f"Epoch 0: {summary['test_correct'][0]} / 1000" in out.splitlines()


def test_circles_quick(tmp_path):
    out = run("circles.py", "--quick", "--out", tmp_path)
    nonempty(
        tmp_path,
        "decision_boundary.png",
        "decision_boundary.gif",
        "learning_curves.png",
        "model.safetensors",
    )
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["epochs"] == 5 and summary["architecture"] == "2-4-6-6-4-1"
    assert "test" in out


def test_perceptron_quick(tmp_path):
    out = run("perceptron.py", "--quick", "--out", tmp_path)
    nonempty(tmp_path, "perceptron.png")
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert all(
        summary[g]["converged"] and summary[g]["accuracy"] == 1 for g in ("and", "or", "nand")
    )
    assert not summary["xor"]["converged"] and summary["xor"]["accuracy"] < 1
    assert summary["xor_2_2_1"]["accuracy"] == 1
    assert "did NOT converge" in out


def test_gradient_descent_quick(tmp_path):
    run("gradient_descent.py", "--quick", "--out", tmp_path)
    nonempty(tmp_path, "gradient_descent.png")
    summary = json.loads((tmp_path / "summary.json").read_text())
    for surface in ("bowl", "valley"):
        small, good, large = summary[surface]
        assert large["diverged"] and not good["diverged"] and not small["diverged"]
        assert good["final_f"] < small["final_f"]


def test_graph_quick(tmp_path):
    out = run("graph.py", "--quick", "--out", tmp_path)
    if shutil.which("dot"):
        nonempty(tmp_path, "neuron.svg", "mlp.svg")
        assert (tmp_path / "neuron.svg").read_text().lstrip().startswith(("<?xml", "<svg"))
    else:
        nonempty(tmp_path, "neuron.dot", "mlp.dot", "neuron.html", "mlp.html")
        assert "not found" in out


@needs_mnist
def test_default_net_one_epoch_reaches_95_percent():
    """784-128-64-10 ReLU, softmax cross-entropy, Adam: one epoch on all of MNIST."""
    sys.path.insert(0, str(DEMOS))
    try:
        import mnist as demo
    finally:
        sys.path.remove(str(DEMOS))
    import tinygrad_nn as tg
    from tinygrad_nn.data import load_mnist
    from tinygrad_nn.optim import Adam
    from tinygrad_nn.train import evaluate, fit

    try:  # one BLAS thread: these small matrices gain nothing from more, and lose a lot
        from threadpoolctl import threadpool_limits  # when the machine is busy
    except ImportError:
        limit = contextlib.nullcontext()
    else:
        limit = threadpool_limits(limits=1)
    preset = demo.PRESETS["default"]
    (x_train, y_train), (x_test, y_test) = load_mnist(MNIST)
    with limit:
        tg.manual_seed(0)
        model = demo.build_model(preset)
        fit(
            model,
            preset.loss,
            Adam(model.parameters(), lr=preset.lr),
            x_train,
            y_train,
            epochs=1,
            batch_size=preset.batch_size,
            verbose=0,
            seed=0,
        )
        result = evaluate(model, preset.loss, x_test, y_test)
    assert result["accuracy"] >= 0.95, result
