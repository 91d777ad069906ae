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


def demo(script):
    """The demo ``script`` imported in-process (under a name of its own, once)."""
    import importlib.util

    name = f"_demo_{Path(script).stem}"
    if str(DEMOS) not in sys.path:  # the demos import their shared _cli.py, as a script does
        sys.path.append(str(DEMOS))
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, DEMOS / script)
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


def usage_error(capsys, script, *args):
    """Run the demo's main() expecting an argparse error; return what it wrote to stderr."""
    with pytest.raises(SystemExit) as exc:
        demo(script).main([*map(str, args)])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("usage:") and "Traceback" not in err
    return err


def test_perceptron_says_which_gates_converged_and_why_not(tmp_path, capsys):
    """NAND is error-free after 5 epochs, AND and OR after 6: in 5 epochs the text must not
    blame AND on XOR's missing line, nor drop AND and OR from the summary; an explicit
    --max-epochs wins over --quick."""
    summary = demo("perceptron.py").main(["--quick", "--max-epochs", "5", "--out", str(tmp_path)])
    out = capsys.readouterr().out
    assert summary["nand"]["converged"] and summary["nand"]["epochs"] == 5
    assert not summary["and"]["converged"] and not summary["or"]["converged"]
    assert summary["and"]["epochs"] == summary["xor"]["epochs"] == 5
    lines = {line.split(":")[0].strip(): line for line in out.splitlines() if ":" in line}
    assert "did NOT converge in 5 epochs" in lines["AND"]
    assert "AND is linearly separable" in lines["AND"] and "XOR" not in lines["AND"]
    assert "no line separates XOR" in lines["XOR"]
    final = next(line for line in out.splitlines() if line.startswith("perceptron rule:"))
    assert final.startswith("perceptron rule: NAND learned; AND, OR not yet in 5 epochs")
    assert "XOR not: no line separates its 1s from its 0s" in final


@pytest.mark.parametrize(
    "script, args, expected",
    [
        ("perceptron.py", ["--max-epochs", "0"], "--max-epochs: must be an integer >= 1"),
        ("perceptron.py", ["--max-epochs", "-1"], "--max-epochs: must be an integer >= 1"),
        ("perceptron.py", ["--lr", "0"], "--lr: must be a finite number > 0"),
        ("perceptron.py", ["--lr", "-1"], "--lr: must be a finite number > 0"),
        ("perceptron.py", ["--lr", "nan"], "--lr: must be a finite number > 0"),
        ("perceptron.py", ["--lr", "inf"], "--lr: must be a finite number > 0"),
        ("perceptron.py", ["--seed", "-1"], "--seed: must be an integer >= 0"),
        ("gradient_descent.py", ["--steps", "-2"], "--steps: must be an integer >= 1"),
        ("gradient_descent.py", ["--steps", "0"], "--steps: must be an integer >= 1"),
        ("circles.py", ["--epochs", "0"], "--epochs: must be an integer >= 1"),
        ("circles.py", ["--seed", "-1"], "--seed: must be an integer >= 0"),
        ("circles.py", ["--samples", "0"], "--samples: must be an integer >= 2"),
        ("circles.py", ["--samples", "1"], "--samples: must be an integer >= 2"),
        ("circles.py", ["--noise", "-0.1"], "--noise: must be a finite number >= 0"),
        ("circles.py", ["--noise", "nan"], "--noise: must be a finite number >= 0"),
        ("mnist.py", ["--epochs", "0"], "--epochs: must be an integer >= 1"),
        ("mnist.py", ["--seed", "-1"], "--seed: must be an integer >= 0"),
    ],
)
def test_demos_reject_numbers_out_of_range(tmp_path, capsys, script, args, expected):
    err = usage_error(capsys, script, "--quick", *args, "--out", tmp_path / "out")
    assert f"argument {expected}, got '{args[1]}'" in err
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    "script", ["mnist.py", "circles.py", "perceptron.py", "gradient_descent.py", "graph.py"]
)
def test_out_naming_a_file_is_a_usage_error(tmp_path, capsys, script):
    afile = tmp_path / "afile"
    afile.write_text("keep me\n")
    err = usage_error(capsys, script, "--quick", "--out", afile)
    assert f"--out {afile}: exists and is not a directory" in err
    err = usage_error(capsys, script, "--quick", "--out", afile / "sub")
    assert f"--out {afile / 'sub'}: cannot create the directory" in err
    assert afile.read_text() == "keep me\n"


def test_circles_and_gradient_descent_explicit_count_wins_over_quick(tmp_path, capsys):
    summary = demo("circles.py").main(["--quick", "--epochs", "2", "--out", str(tmp_path / "c")])
    assert summary["epochs"] == 2 and len(summary["history"]["loss"]) == 2
    results = demo("gradient_descent.py").main(
        ["--quick", "--steps", "3", "--out", str(tmp_path / "g")]
    )
    assert all(run["steps"] == 3 for run in results["bowl"][:2] + results["valley"][:2])
    capsys.readouterr()
    for script, option in (("circles.py", "--epochs"), ("gradient_descent.py", "--steps")):
        with pytest.raises(SystemExit):
            demo(script).main(["--help"])
        assert f"an explicit {option} wins over --quick" in " ".join(
            capsys.readouterr().out.split()
        )


def test_mnist_explicit_data_must_hold_the_files(tmp_path, capsys, monkeypatch):
    """A --data that is missing, a file, or a directory without MNIST is an error naming it, not
    a quiet fall-back to $TINYGRAD_NN_DATA or the cache."""
    monkeypatch.setenv("TINYGRAD_NN_DATA", str(MNIST))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    out = tmp_path / "out"
    missing = tmp_path / "nonexistent" / "typo"
    err = usage_error(capsys, "mnist.py", "--quick", "--data", missing, "--out", out)
    assert f"--data {missing}: no such directory" in err
    afile = tmp_path / "afile"
    afile.write_text("")
    err = usage_error(capsys, "mnist.py", "--quick", "--data", afile, "--out", out)
    assert f"--data {afile}: not a directory" in err
    empty = tmp_path / "empty"
    empty.mkdir()
    err = usage_error(capsys, "mnist.py", "--quick", "--data", empty, "--out", out)
    assert f"--data {empty}: no train-images-idx3-ubyte[.gz]" in err
    assert not out.exists()


@needs_mnist
def test_mnist_quick_with_explicit_data(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "TINYGRAD_NN_DATA"}
    proc = subprocess.run(
        [sys.executable, str(DEMOS / "mnist.py"), "--quick", "--data", str(MNIST)]
        + ["--epochs", "1", "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        env={**env, "XDG_CACHE_HOME": str(tmp_path / "cache"), "OPENBLAS_NUM_THREADS": "1"},
        timeout=120,
        cwd=ROOT,
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads((tmp_path / "summary.json").read_text())["test_images"] == 1000
