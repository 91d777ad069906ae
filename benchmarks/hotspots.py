"""Where tinygrad_nn spends its time: profiles of the batch-10 Nielsen step (eager and captured)
and of the per-op chain, as tables of the functions with the most self time (cProfile) and, if
pyinstrument is installed, its call tree.

    python benchmarks/hotspots.py [--quick] [--out benchmarks/results/PROFILE.md]

cProfile's own cost per call inflates small Python functions; read its percentages as where
the calls are, and pyinstrument's (sampling, lower overhead) as where the time is.
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
from pathlib import Path

import contenders
import harness
import numpy as np
import perop
import workloads as W

HERE = Path(__file__).resolve().parent
TOP = 20


def _nielsen_step(captured: bool = False):
    x, y, _ = W.load_mnist_train()
    pool = W.make_batches(x, y, 10, 8)
    init = W.initial_params(W.NIELSEN)
    return contenders.build_tinygrad(W.NIELSEN, init, pool, captured=captured).step


def _where(func: tuple) -> str:
    filename, line, name = func
    if filename == "~":
        return name  # a builtin, e.g. <method 'reduce' of 'numpy.ufunc' objects>
    parts = Path(filename).parts
    short = (
        "/".join(parts[parts.index("tinygrad_nn") :])
        if "tinygrad_nn" in parts
        else ("/".join(parts[-2:]))
    )
    return f"{name} ({short}:{line})"


def cprofile_table(fn, calls: int, unit: str) -> list[str]:
    prof = cProfile.Profile()
    prof.enable()
    for _ in range(calls):
        fn()
    prof.disable()
    stats = pstats.Stats(prof)
    total = stats.total_tt
    rows = sorted(stats.stats.items(), key=lambda kv: kv[1][2], reverse=True)[:TOP]
    lines = [
        f"| function | self % | cumulative % | calls per {unit} |",
        "| --- | ---: | ---: | ---: |",
    ]
    for func, (_cc, nc, tt, ct, _callers) in rows:
        lines.append(
            f"| `{_where(func)}` | {100 * tt / total:.1f} | {100 * ct / total:.1f} | "
            f"{nc / calls:.4g} |"
        )
    return lines


def pyinstrument_tree(fn, calls: int) -> list[str]:
    try:
        from pyinstrument import Profiler
    except ImportError:
        return ["(pyinstrument is not installed)"]
    prof = Profiler(interval=0.0002)
    prof.start()
    for _ in range(calls):
        fn()
    prof.stop()
    text = prof.output_text(unicode=True, color=False, show_all=False)
    return ["```", *text.strip().splitlines()[:80], "```"]


def report(quick: bool = False) -> str:
    harness.set_threads(1)
    np.seterr(over="ignore")
    step, replay = _nielsen_step(), _nielsen_step(captured=True)
    chain = perop.chains()["tinygrad_nn"]
    for _ in range(50):
        step()
        replay()  # the first two calls trace and verify; the rest replay
    chain()
    n_steps, n_chains = (500, 5) if quick else (5000, 50)
    lines = [
        "# Where tinygrad_nn spends its time",
        "",
        "Produced by `python benchmarks/hotspots.py` (also run at the end of "
        "`benchmarks/run.py`), 1 thread. cProfile tables: top functions by self time, as a "
        "percentage of the profiled total (cProfile's per-call cost inflates small functions).",
        "",
        f"## 784-30-10 Nielsen step, batch 10 ({n_steps} steps)",
        "",
        *cprofile_table(step, n_steps, "step"),
        "",
        "pyinstrument (sampling):",
        "",
        *pyinstrument_tree(step, n_steps),
        "",
        f"## The same step captured (`tinygrad_nn.capture`), replayed ({n_steps} steps)",
        "",
        *cprofile_table(replay, n_steps, "step"),
        "",
        "pyinstrument (sampling):",
        "",
        *pyinstrument_tree(replay, n_steps),
        "",
        f"## Per-op chain: 1,000 × (`y * 1.0001`, `y + 0.001`) and backward ({n_chains} chains)",
        "",
        *cprofile_table(chain, n_chains, "chain"),
        "",
        "pyinstrument (sampling):",
        "",
        *pyinstrument_tree(chain, n_chains),
        "",
    ]
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--out", default=str(HERE / "results" / "PROFILE.md"))
    args = ap.parse_args()
    text = report(args.quick)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
