"""The results as markdown: the step table per thread count with ratios to the numpy floor, the
per-op, memory and epoch tables, the issue's targets marked met / not met, and the machine.

Every timed figure exists twice: wall-clock, and the CPU time of the timing thread. With one
thread the second leaves out the time the process spent descheduled while other work loaded
the machine; with two it misses the helper thread's work, so it is shown for one thread only.
"""

from __future__ import annotations

from dataclasses import dataclass

from workloads import NETS

FLOOR, OURS, TORCH, NETWORK_PY = "numpy floor", "tinygrad_nn", "PyTorch", "network.py loop"


@dataclass(frozen=True)
class View:
    """One way of reading the timings: a thread count and a clock."""

    threads: int
    clock: str  # "wall" or "cpu"

    @property
    def label(self) -> str:
        t = f"{self.threads} thread{'s' if self.threads > 1 else ''}"
        return f"{t}, wall" if self.clock == "wall" else f"{t}, CPU time"

    @property
    def step_key(self) -> str:
        return "median_s" if self.clock == "wall" else "cpu_median_s"


def views(results: dict) -> list[View]:
    threads = sorted({r["threads"] for r in results["steps"]})
    out = [View(t, "wall") for t in threads]
    if 1 in threads:
        out.insert(1, View(1, "cpu"))
    return out


def _ms(results: dict, view: View, net: str, batch: int, name: str) -> float | None:
    for row in results["steps"]:
        if (row["net"], row["batch"], row["threads"]) == (net, batch, view.threads):
            t = row["timings"].get(name)
            return None if t is None else t[view.step_key] * 1e3
    return None


def contended(results: dict, net: str, batch: int, name: str) -> bool:
    """Whether a two-thread figure was visibly disturbed by other work: it is over 1.5× the same
    contender's one-thread wall time, where a second thread can only help or stay idle."""
    one = _ms(results, View(1, "wall"), net, batch, name)
    two = _ms(results, View(2, "wall"), net, batch, name)
    return one is not None and two is not None and two > 1.5 * one


def _mib(n: int | None) -> str:
    return "—" if n is None else f"{n / 2**20:.2f}"


def _net_label(key: str) -> str:
    kind = "sigmoid/MSE/SGD" if key == "nielsen" else "ReLU/CE/Adam"
    return "-".join(map(str, NETS[key].sizes)) + " " + kind


def step_table(results: dict, view: View) -> list[str]:
    names = results["contenders"]
    clock = (
        "median ms per training step"
        if view.clock == "wall"
        else ("median CPU ms of the timing thread per training step")
    )
    lines = [
        f"### {view.label}: {clock} (× the numpy floor)",
        "",
        "| network | batch | " + " | ".join(names) + " |",
        "| --- | ---: | " + " | ".join("---:" for _ in names) + " |",
    ]
    flagged = False
    for row in results["steps"]:
        if row["threads"] != view.threads:
            continue
        net, batch = row["net"], row["batch"]
        floor = _ms(results, view, net, batch, FLOOR)
        cells = []
        for name in names:
            ms = _ms(results, view, net, batch, name)
            flag = " ⚠" if view.threads > 1 and contended(results, net, batch, name) else ""
            flagged = flagged or bool(flag)
            if ms is None:
                cells.append("—")
            elif name == FLOOR:
                cells.append(f"{ms:.3f}{flag}")
            else:
                cells.append(f"{ms:.3f} ({ms / floor:.2f}×){flag}")
        lines.append(f"| {_net_label(net)} | {batch} | " + " | ".join(cells) + " |")
    if flagged:
        lines += [
            "",
            "⚠ contended: over 1.5× the same contender's one-thread time. Other work on the "
            "machine held up the second thread (BLAS and OpenMP threads wait for each other), "
            "so these figures and the ratios taken with them measure the machine's load more "
            "than the contenders.",
        ]
    return lines + [""]


def _step_target(results, view, net, batch, limit, rivals) -> tuple[str, bool | None]:
    ours, floor = _ms(results, view, net, batch, OURS), _ms(results, view, net, batch, FLOOR)
    if ours is None or floor is None:
        return "not measured", None
    ok = ours / floor <= limit
    text = f"{ours / floor:.2f}× floor"
    for rival in rivals:
        r = _ms(results, view, net, batch, rival)
        if r is None:
            text += f"; {rival} not installed"
            continue
        text += f"; {rival} {r / floor:.2f}×"
        ok = ok and ours < r
    return text, ok


def targets(results: dict) -> list[tuple[str, dict[View, tuple[str, bool | None]]]]:
    """(target, {view: (what was measured, met?)}) for each of the issue's targets; met is None
    where it cannot be judged (a missing contender or measurement)."""
    vs = views(results)
    out = []
    for label, net, batch, limit, rivals in (
        (
            "784-128-64-10 Adam, batch 10: ≤ 1.10× floor and faster than PyTorch",
            "relu_adam",
            10,
            1.10,
            [TORCH],
        ),
        (
            "784-128-64-10 Adam, batch 128: ≤ 1.10× floor and faster than PyTorch",
            "relu_adam",
            128,
            1.10,
            [TORCH],
        ),
        (
            "784-30-10 SGD, batch 10: ≤ 1.5× floor, ahead of MyGrad and PyTorch",
            "nielsen",
            10,
            1.5,
            ["MyGrad", TORCH],
        ),
        ("784-30-10 SGD, batch 512: ≤ 1.10× floor", "nielsen", 512, 1.10, []),
    ):
        per = {}
        for v in vs:
            text, ok = _step_target(results, v, net, batch, limit, rivals)
            involved = [OURS, FLOOR, *rivals]
            if v.threads > 1 and any(contended(results, net, batch, n) for n in involved):
                text, ok = text + " (⚠ contended: not judged)", None
            per[v] = (text, ok)
        out.append((label, per))

    per = {}
    for v in vs:
        ops = results["perop_us"].get(str(v.threads), {}).get(v.clock)
        if not ops or OURS not in ops:
            continue
        ours, torch = ops[OURS], ops.get(TORCH)
        ok = ours <= 4.0 and (torch is None or ours < torch)
        per[v] = (f"{ours:.2f} µs/op" + (f"; PyTorch {torch:.2f}" if torch else ""), ok)
    out.append(("per-op overhead ≤ 4 µs/op and below PyTorch's", per))

    mem = results.get("memory", {}).get("tracemalloc", {})
    texts, ok = [], True
    for net_key, by_name in mem.items():
        if OURS in by_name and by_name.get(FLOOR):
            ratio = by_name[OURS] / by_name[FLOOR]
            texts.append(f"{net_key} {ratio:.2f}×")
            ok = ok and ratio <= 1.25
    memo = ("; ".join(texts) or "not measured", ok if texts else None)
    out.append(("peak memory of training (50 steps, batch 512) ≤ 1.25× floor", {vs[0]: memo}))

    per = {}
    for v in vs:
        ep = results["epoch"].get(str(v.threads), {}).get(v.clock)
        if not ep:
            continue
        speedup = ep[NETWORK_PY] / ep[OURS]
        per[v] = (f"{speedup:.1f}× (floor {ep[NETWORK_PY] / ep[FLOOR]:.1f}×)", speedup >= 7)
    out.append(("Nielsen epoch ≥ 7× faster than network.py's loop", per))
    return out


def _two_level_table(title_col: str, data: dict[View, dict[str, float]], fmt) -> list[str]:
    vs = list(data)
    lines = [
        f"| {title_col} | " + " | ".join(v.label for v in vs) + " |",
        "| --- | " + " | ".join("---:" for _ in vs) + " |",
    ]
    for name in data[vs[0]]:
        lines.append(f"| {name} | " + " | ".join(fmt(data[v], name) for v in vs) + " |")
    return lines + [""]


def markdown(results: dict) -> str:
    m = results["machine"]
    names = results["contenders"]
    vs = views(results)
    load = results.get("load_average", {})
    lines = [
        "# tinygrad_nn benchmarks",
        "",
        f"Produced by `{results['command']}` ({results['mode']} mode) on {results['date']}, "
        f"in {results.get('elapsed_s', 0):.0f} s. Absolute times vary between machines; the "
        "ratios to the numpy floor, measured in the same process and interleaved, are the claim.",
        "",
        f"Data: {results['data']}. Contenders: {', '.join(names)} (peers that are not installed "
        "are skipped). float32 throughout; every contender starts from the same weights and "
        "trains on the same batches.",
        "",
        "Load average (1, 5, 15 min) during the run: "
        + "; ".join(f"{k} {v}" for k, v in load.items())
        + ". On this 2-core machine a load above ~1 besides the benchmark means other work "
        "competed for the cores: wall-clock figures then scatter (two-thread ones most), and "
        "the one-thread CPU-time figures are the steadier reading.",
        "",
        "## Training step",
        "",
        "Step = forward, loss, backward, parameter update. Median over "
        f"{results['settings']['blocks']} interleaved blocks.",
        "",
    ]
    for v in vs:
        lines += step_table(results, v)

    perop = {
        v: results["perop_us"][str(v.threads)][v.clock]
        for v in vs
        if str(v.threads) in results["perop_us"]
    }
    lines += [
        "## Per-op overhead",
        "",
        "A chain of 1,000 elementwise ops on a one-element float32 tensor (alternating "
        "`y = y * 1.0001` and `y = y + 0.001`), forward + backward; µs per op. MyGrad gets "
        "float32 numpy constants (Python floats would promote it to float64).",
        "",
        *_two_level_table("contender", perop, lambda d, n: f"{d[n]:.2f}" if n in d else "—"),
    ]

    mem = results.get("memory", {})
    tm, rss = mem.get("tracemalloc", {}), mem.get("rss", {})
    lines += [
        "## Peak memory",
        "",
        "Building the model and optimizer, then 50 training steps at batch 512, 1 thread. "
        "*tracemalloc*: peak bytes allocated through Python and numpy above the start, in MiB "
        "(× the floor); it does not see PyTorch's own allocator, so PyTorch has no figure there. "
        "*RSS*: growth of the resident set's high-water mark in a fresh process per contender "
        f"({mem.get('rss_method') or 'not run in quick mode'}), in MiB; it sees every "
        "allocator but counts pages, so it is coarse for the small network.",
        "",
        "| contender | "
        + " | ".join(f"{k} tracemalloc" for k in tm)
        + "".join(f" | {k} RSS" for k in rss)
        + " |",
        "| --- | " + " | ".join("---:" for _ in list(tm) + list(rss)) + " |",
    ]
    for name in names:
        cells = []
        for by in tm.values():
            if name in by:
                ratio = by[name] / by[FLOOR] if by.get(FLOOR) else float("nan")
                cells.append(f"{_mib(by[name])} ({ratio:.2f}×)")
            else:
                cells.append("n/a")
        for by in rss.values():
            cells.append(_mib(by.get(name)))
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    lines.append("")

    epochs = {
        v: results["epoch"][str(v.threads)][v.clock]
        for v in vs
        if str(v.threads) in results["epoch"]
    }
    some = next(iter(results["epoch"].values()))
    lines += [
        "## A Nielsen epoch",
        "",
        "50,000 MNIST images, batch 10, SGD lr=3.0, 784-30-10 sigmoid; seconds per epoch, "
        f"median of {some['repeats']} interleaved repeat(s)"
        + (
            ""
            if some["images_timed"] == 50_000
            else f" (timed on {some['images_timed']:,} images and scaled up)"
        )
        + ". *network.py loop*: Nielsen's per-example backprop algorithm, re-implemented "
        "(float64 weights, column vectors).",
        "",
        *_two_level_table(
            "contender",
            epochs,
            lambda d, n: f"{d[n]:.3f} s ({d[NETWORK_PY] / d[n]:.1f}× network.py)",
        ),
    ]

    tg = targets(results)
    lines += [
        "## Targets (issue 6)",
        "",
        "| target | " + " | ".join(v.label for v in vs) + " |",
        "| --- | " + " | ".join("---" for _ in vs) + " |",
    ]
    for label, per in tg:
        cells = []
        for v in vs:
            if v not in per:
                cells.append("—")
                continue
            text, ok = per[v]
            mark = "n/a" if ok is None else ("**met**" if ok else "not met")
            cells.append(f"{mark}: {text}")
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    lines.append("")

    agree = results["agreement"]
    lines += [
        "## Same maths",
        "",
        "Largest |θ - θ_floor| over all parameters after 3 steps at batch 32 from the same "
        "weights on the same batches (in brackets: how far the floor's parameters moved).",
        "",
        "| contender | " + " | ".join(_net_label(k) for k in agree) + " |",
        "| --- | " + " | ".join("---:" for _ in agree) + " |",
    ]
    for name in names[1:]:
        cells = []
        for a in agree.values():
            f32 = "" if a["all_float32"].get(name, True) else " (not float32!)"
            cells.append(f"{a['max_abs_diff'][name]:.1e} ({a['floor_moved']:.1e}){f32}")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    lines.append("")

    notes: dict[str, set] = {}
    for row in results["steps"]:
        for name, ns in row.get("notes", {}).items():
            notes.setdefault(name, set()).update(ns)
    if notes:
        joined = "; ".join(f"{n}: {', '.join(sorted(v))}" for n, v in notes.items())
        lines += [f"Setup: {joined}.", ""]

    lines += [
        "## Machine",
        "",
        f"- CPU: {m['cpu']}; {m['logical_cpus']} logical CPUs ({m['usable_cpus']} usable)",
        f"- Python {m['python']} on {m['platform']}",
        "- numpy "
        + m["numpy"]
        + "; tinygrad_nn "
        + m["tinygrad_nn"]
        + "".join(f"; {k} {m[k]}" for k in ("torch", "mygrad", "autograd") if k in m),
        f"- tinygrad_nn source: {m.get('tinygrad_nn_source', 'unknown')}",
        f"- OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE: {m['openblas_env']}",
        "- Thread pools (threadpoolctl):",
    ]
    for lib in results.get("blas_during_run") or m["blas"]:
        lines.append(
            f"  - {lib.get('internal_api')} {lib.get('version') or ''} ({lib.get('prefix')}), "
            f"kernel: {lib.get('architecture', 'n/a')}, threading: "
            f"{lib.get('threading_layer', 'n/a')}"
        )
    lines.append("")
    return "\n".join(lines)
