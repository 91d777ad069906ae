"""Timing, threads, memory and machine information.

Timing is interleaved: after a warm-up (three untimed calls, then calls that size the blocks;
so a captured step's trace and verification calls are never timed), every contender runs one
block of ``reps`` calls in turn (A B C A B C ..., the order rotated each round so that nobody is
always first), and the figure is the median over the blocks of the time per call. Contenders
thus share whatever the machine is doing, and a slow spell hits all of them.
"""

from __future__ import annotations

import gc
import os
import platform
import resource
import statistics
import sys
import time
import tracemalloc
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

BLAS_ENV = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")
UNSIZED_WARMUP_CALLS = 3


@dataclass
class Timing:
    median: float  # wall-clock seconds per call
    q1: float
    q3: float
    cpu_median: float  # CPU seconds of the calling thread per call
    blocks: int
    reps: int  # calls per block (after any shortening)

    def as_dict(self) -> dict:
        return {
            "median_s": self.median,
            "q1_s": self.q1,
            "q3_s": self.q3,
            "cpu_median_s": self.cpu_median,
            "blocks": self.blocks,
            "reps_per_block": self.reps,
        }


def interleave(
    fns: dict[str, Callable[[], object]],
    blocks: int,
    block_seconds: float,
    warmup_seconds: float,
) -> dict[str, Timing]:
    """Median seconds per call of each function, timed in interleaved blocks.

    Besides wall-clock time, the CPU time of the calling thread is recorded: with one thread
    (BLAS and torch run their work in the caller then) it leaves out the time the process
    spent descheduled, so it stays meaningful on a machine that other work is loading."""
    reps = {}
    for name, fn in fns.items():
        # Untimed and left out of the sizing: the first calls may build caches or allocate
        # buffers, and a captured step traces on its first call and checks its replay against
        # normal execution on its second (the third is its first plain replay).
        for _ in range(UNSIZED_WARMUP_CALLS):
            fn()
        calls, t0 = 0, time.perf_counter()
        while True:
            fn()
            calls += 1
            elapsed = time.perf_counter() - t0
            if elapsed >= warmup_seconds and calls >= 3:
                break
        reps[name] = max(1, round(block_seconds / (elapsed / calls)))
    samples: dict[str, list[float]] = {name: [] for name in fns}
    cpu: dict[str, list[float]] = {name: [] for name in fns}
    names = list(fns)
    clock, cpu_clock = time.perf_counter, time.thread_time
    for b in range(blocks):
        order = names[b % len(names) :] + names[: b % len(names)]
        gc.collect()
        for name in order:
            fn, n = fns[name], reps[name]
            c0, t0 = cpu_clock(), clock()
            for _ in range(n):
                fn()
            t1, c1 = clock(), cpu_clock()
            samples[name].append((t1 - t0) / n)
            cpu[name].append((c1 - c0) / n)
            if t1 - t0 > 4 * block_seconds and n > 1:
                # Far slower than at warm-up (the machine got busy): shorten later blocks, so
                # that a contended spell cannot stretch the run without bound.
                reps[name] = max(1, round(block_seconds / ((t1 - t0) / n)))
    out = {}
    for name, s in samples.items():
        q = statistics.quantiles(s, n=4) if len(s) > 1 else [s[0]] * 3
        c = statistics.median(cpu[name])
        out[name] = Timing(statistics.median(s), q[0], q[2], c, blocks, reps[name])
    return out


def load_average() -> list[float] | None:
    """The 1, 5 and 15 minute load averages (other work on the machine shows here)."""
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None


# ---------------------------------------------------------------------- threads


def set_threads(n: int) -> None:
    """Limit numpy's BLAS (and any OpenMP runtime) with threadpoolctl, and torch's intra-op
    pool with ``torch.set_num_threads``, to ``n`` threads."""
    from threadpoolctl import threadpool_limits

    threadpool_limits(limits=n)
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(n)


def blas_info() -> list[dict]:
    """What threadpoolctl sees: each library's API, version, kernel (architecture), threads."""
    from threadpoolctl import threadpool_info

    keys = (
        "user_api",
        "internal_api",
        "prefix",
        "version",
        "architecture",
        "threading_layer",
        "num_threads",
    )
    return [{k: lib.get(k) for k in keys if k in lib} for lib in threadpool_info()]


# ---------------------------------------------------------------------- machine


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def source_state() -> str:
    """The commit of the checkout that tinygrad_nn is imported from, and whether its files have
    uncommitted changes (read-only git queries; "unknown" outside a git checkout)."""
    import subprocess

    import tinygrad_nn

    where = os.path.dirname(os.path.dirname(os.path.abspath(tinygrad_nn.__file__)))
    try:
        head = subprocess.run(
            ["git", "-C", where, "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", where, "status", "--porcelain", "--", "tinygrad_nn"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return f"commit {head}" + (" with uncommitted changes in tinygrad_nn/" if dirty else "")


def machine_info(versions: dict[str, str], blas_env_note: str) -> dict:
    import tinygrad_nn

    info = {
        "cpu": cpu_model(),
        "logical_cpus": os.cpu_count(),
        "usable_cpus": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "numpy": np.__version__,
        "tinygrad_nn": tinygrad_nn.__version__,
        "tinygrad_nn_source": source_state(),
        **versions,
        "blas": blas_info(),
        "openblas_env": blas_env_note,
    }
    return info


# ---------------------------------------------------------------------- memory


def traced_peak(run: Callable[[], object]) -> int:
    """Peak bytes allocated through Python and numpy (tracemalloc) while ``run()`` executes,
    above what was allocated before it. Allocations made by other allocators (torch's) are not
    seen."""
    gc.collect()
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        tracemalloc.reset_peak()
        run()
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    return peak - base


def _status_kb(field: str) -> int | None:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def rss_peak(run: Callable[[], object]) -> tuple[int, str]:
    """Growth of the resident set's high-water mark while ``run()`` executes, in bytes, and the
    method used. Sees every allocator; coarse (pages, and freed memory may stay resident)."""
    gc.collect()
    try:  # Linux: writing 5 to clear_refs resets VmHWM to the current RSS
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        base = _status_kb("VmRSS")
    except OSError:
        base = None
    if base is not None:
        run()
        hwm = _status_kb("VmHWM") or base
        return (hwm - base) * 1024, "VmHWM growth (reset through /proc/self/clear_refs)"
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    run()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return (peak - base) * 1024, "ru_maxrss growth (a lower bound)"
