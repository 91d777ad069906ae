"""The docs run: every ```python block of docs/**/*.md and README.md is executed, and the site
builds with ``mkdocs build --strict``.

Blocks of one page run in order in one namespace (a later block uses the names of an earlier
one); each page gets a fresh namespace and a fresh temporary working directory. A block right
after the comment ``<!-- no-test -->`` is shown, not run (PyTorch or Keras code, for instance).
Pages that load MNIST run with ``TINYGRAD_NN_DATA`` pointing at the shared copy and are skipped
when it is absent; pages that render a graph are skipped without Graphviz's ``dot``.
"""

from __future__ import annotations

import importlib
import inspect
import os
import re
import shutil
import subprocess
import sys
import textwrap
import types
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
MNIST = Path(__file__).resolve().parents[2] / "shared/data/mnist"
NO_TEST = "<!-- no-test -->"

FENCE = re.compile(r"^(?P<indent>[ \t]*)```(?P<lang>[\w+-]*)[^\n]*$")


def code_blocks(text: str) -> list[tuple[int, str, bool]]:
    """(line number, code, skipped) of every ```python block, fences indented or not (blocks
    inside tabs and admonitions are indented)."""
    lines = text.splitlines()
    blocks = []
    i = 0
    previous = ""  # the last non-blank line before the current one
    while i < len(lines):
        m = FENCE.match(lines[i])
        if not m:
            if lines[i].strip():
                previous = lines[i].strip()
            i += 1
            continue
        indent, lang, start = m["indent"], m["lang"], i
        i += 1
        body = []
        while i < len(lines) and lines[i].strip() != "```":
            body.append(lines[i])
            i += 1
        i += 1  # the closing fence
        if lang == "python":
            code = textwrap.dedent(
                "\n".join(line[len(indent) :] if line.startswith(indent) else line for line in body)
            )
            blocks.append((start + 1, code, previous == NO_TEST))
        previous = ""
    return blocks


def pages() -> list[Path]:
    """README.md and the docs pages that have code to run."""
    found = sorted(p for p in DOCS.rglob("*.md") if "scripts" not in p.parts)
    return [
        p
        for p in [ROOT / "README.md", *found]
        if any(not skipped for _, _, skipped in code_blocks(p.read_text(encoding="utf-8")))
    ]


def _page_id(p: Path) -> str:
    return str(p.relative_to(ROOT))


@pytest.fixture
def fresh_dir(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MPLBACKEND", "Agg")
    monkeypatch.setenv("TINYGRAD_NN_DATA", str(MNIST))
    return tmp_path


@pytest.mark.parametrize("page", pages(), ids=_page_id)
def test_page_runs(page: Path, fresh_dir: Path) -> None:
    text = page.read_text(encoding="utf-8")
    blocks = [b for b in code_blocks(text) if not b[2]]
    if "load_mnist" in text and not (MNIST / "train-images-idx3-ubyte.gz").exists():
        pytest.skip(f"MNIST is not at {MNIST}")
    if "render(" in text and shutil.which("dot") is None:
        pytest.skip("Graphviz's dot is not installed")
    import matplotlib

    matplotlib.use("Agg")
    import tinygrad_nn as tg

    tg.set_default_dtype("float32")
    namespace: dict = {"__name__": f"docs_{page.stem}"}
    for line, code, _ in blocks:
        try:
            exec(compile(code, f"{page.relative_to(ROOT)}:{line}", "exec"), namespace)
        except Exception as e:
            raise AssertionError(
                f"{page.relative_to(ROOT)}, the block at line {line} failed: "
                f"{type(e).__name__}: {e}\n--- the block ---\n{code}"
            ) from e
    tg.set_default_dtype("float32")


def test_code_blocks_parser() -> None:
    text = "\n".join(
        [
            "intro",
            "```python",
            "a = 1",
            "```",
            "<!-- no-test -->",
            "",
            "```python",
            "import torch",
            "```",
            '=== "tab"',
            "",
            "    ```python",
            "    b = a + 1",
            "    ```",
            "```bash",
            "ls",
            "```",
        ]
    )
    assert code_blocks(text) == [
        (2, "a = 1", False),
        (7, "import torch", True),
        (12, "b = a + 1", False),
    ]


def test_figure_script_runs(tmp_path: Path) -> None:
    """docs/scripts/make_figures.py still works with the current API (the PNGs it wrote are kept
    in docs/images)."""
    pytest.importorskip("matplotlib")
    env = {**os.environ, "MPLBACKEND": "Agg"}
    subprocess.run(
        [
            sys.executable,
            str(DOCS / "scripts/make_figures.py"),
            "--out",
            str(tmp_path),
            "--no-mnist",
        ],
        check=True,
        env=env,
        capture_output=True,
        timeout=120,
    )
    for name in ("activations.png", "gradient_descent_lr.png", "cost_curves.png"):
        assert (tmp_path / name).stat().st_size > 1000
        assert (DOCS / "images" / name).stat().st_size < 150_000


# ----------------------------------------------------------------------------- the site

PUBLIC_MODULES = [
    "tinygrad_nn",
    "tinygrad_nn.nn",
    "tinygrad_nn.nn.functional",
    "tinygrad_nn.nn.init",
    "tinygrad_nn.optim",
    "tinygrad_nn.data",
    "tinygrad_nn.testing",
    "tinygrad_nn.train",
    "tinygrad_nn.plots",
    "tinygrad_nn.viz",
]


def _public_names() -> list[tuple[str, str, object]]:
    """(module, name, object) for every name in the public modules' ``__all__``, submodules
    left out."""
    out = []
    for modname in PUBLIC_MODULES:
        mod = importlib.import_module(modname)
        for name in mod.__all__:
            obj = getattr(mod, name)
            if not isinstance(obj, types.ModuleType):
                out.append((modname, name, obj))
    return out


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    mkdocs = shutil.which("mkdocs", path=str(Path(sys.executable).parent)) or shutil.which("mkdocs")
    if mkdocs is None:
        pytest.skip("mkdocs is not installed (pip install -e '.[docs]')")
    out = tmp_path_factory.mktemp("site")
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    r = subprocess.run(
        [mkdocs, "build", "--strict", "-q", "-d", str(out)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode == 0, f"mkdocs build --strict failed:\n{r.stdout}\n{r.stderr}"
    return out


def test_mkdocs_build_strict(site: Path) -> None:
    assert (site / "index.html").exists()
    assert (site / "api/tensor/index.html").exists()


def test_every_public_name_is_in_the_reference(site: Path) -> None:
    ids: set[str] = set()
    for page in (site / "api").rglob("index.html"):
        ids.update(re.findall(r'id="(tinygrad_nn[\w.]*)"', page.read_text(encoding="utf-8")))
    absent = []
    for modname, name, obj in _public_names():
        where = (
            getattr(obj, "__module__", None) if (inspect.isclass(obj) or callable(obj)) else None
        )
        candidates = {f"{modname}.{name}"}
        if where:
            candidates |= {f"{where}.{name}", f"{where}.{getattr(obj, '__name__', name)}"}
        if not candidates & ids and not any(i.endswith(f".{name}") for i in ids):
            absent.append(f"{modname}.{name}")
    assert not absent, f"public names missing from the API reference: {absent}"


# Public functions and classes that still lack a docstring. The list may only shrink: a name
# that gains a docstring must leave it, and a new public name must come with one.
KNOWN_UNDOCUMENTED: set[str] = set()


def test_every_public_name_has_a_docstring() -> None:
    undocumented = set()
    for _, _, obj in _public_names():
        if (inspect.isclass(obj) or inspect.isfunction(obj)) and not (obj.__doc__ or "").strip():
            undocumented.add(f"{obj.__module__}.{obj.__qualname__}")
    assert not undocumented - KNOWN_UNDOCUMENTED, (
        f"public names without a docstring: {sorted(undocumented - KNOWN_UNDOCUMENTED)}"
    )
    assert not KNOWN_UNDOCUMENTED - undocumented, (
        f"these have a docstring now; remove them from KNOWN_UNDOCUMENTED: "
        f"{sorted(KNOWN_UNDOCUMENTED - undocumented)}"
    )
