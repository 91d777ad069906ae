"""Run the whole benchmark suite and write the report.

    python benchmarks/run.py                      # everything, 1 and 2 threads (a few minutes)
    python benchmarks/run.py --quick              # the same tables, fewer and shorter blocks
    python benchmarks/run.py --threads 1 --out /tmp/r.md

See benchmarks/README.md for what is measured and how.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
BLAS_ENV = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")
_NOTE_VAR = "TINYGRAD_NN_BENCH_BLAS_NOTE"


def _drop_blas_env() -> str:
    """Restart this process without OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE (both together) when
    either is set: they pin OpenBLAS to an older, slower kernel. Must run before numpy loads;
    only this benchmark process and its children are affected."""
    if _NOTE_VAR in os.environ:
        return os.environ[_NOTE_VAR]
    present = {k: os.environ[k] for k in BLAS_ENV if k in os.environ}
    if not present or "--keep-blas-env" in sys.argv:
        return f"kept as found: {present}" if present else "not set"
    env = {k: v for k, v in os.environ.items() if k not in BLAS_ENV}
    env[_NOTE_VAR] = f"unset for this run (were {present})"
    os.execve(sys.executable, [sys.executable, *sys.argv], env)
    raise AssertionError("unreachable")


BLAS_NOTE = _drop_blas_env()

import contenders  # noqa: E402
import epoch  # noqa: E402
import harness  # noqa: E402
import numpy as np  # noqa: E402
import peers  # noqa: E402
import perop  # noqa: E402
import report  # noqa: E402
import workloads as W  # noqa: E402

# Overflow of e^x in a sigmoid's far tail is expected and harmless (σ → 0); silence the flag
# for every contender alike, so that nobody pays for printing warnings.
np.seterr(over="ignore")

SETTINGS = {
    "full": {
        "batches": [10, 32, 128, 512],
        "pool": 8,
        "blocks": 21,
        "block_s": 0.025,
        "warmup_s": 0.2,
        "perop_blocks": 21,
        "epoch_images": 50_000,
        "epoch_repeats": 3,
        "memory_steps": 50,
        "rss": True,
    },
    "quick": {
        "batches": [10, 32, 128, 512],
        "pool": 4,
        "blocks": 5,
        "block_s": 0.005,
        "warmup_s": 0.015,
        "perop_blocks": 5,
        "epoch_images": 5_000,
        "epoch_repeats": 1,
        "memory_steps": 50,
        "rss": False,
    },
}
MEMORY_BATCH = 512
CHECK_STEPS, CHECK_BATCH = 3, 32


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def agreement(builders, x, y) -> dict:
    """Max |θ - θ_floor| after a few steps from the same start on the same batches: every
    contender must be computing the same thing as the floor."""
    out = {}
    for net in W.NETS.values():
        init = W.initial_params(net)
        pool = W.make_batches(x, y, CHECK_BATCH, CHECK_STEPS)
        params, status = {}, {}
        for name, build in builders.items():
            trainer = build(net, init, pool)
            for _ in range(CHECK_STEPS):
                trainer.step()
            params[name] = trainer.params()
            if trainer.status is not None:
                status[name] = trainer.status()
        ref = params[W.FLOOR]

        def dist(a, b):
            return max(float(np.max(np.abs(p - r))) for p, r in zip(a, b))

        out[net.key] = {
            "floor_moved": dist(ref, init),
            "max_abs_diff": {name: dist(ps, ref) for name, ps in params.items() if name != W.FLOOR},
            "all_float32": {n: all(p.dtype == np.float32 for p in ps) for n, ps in params.items()},
            "captured_vs_eager": (
                dist(params[W.CAPTURED], params[W.EAGER])
                if W.CAPTURED in params and W.EAGER in params
                else None
            ),
            "lean_vs_eager": (
                dist(params[W.LEAN], params[W.EAGER])
                if W.LEAN in params and W.EAGER in params
                else None
            ),
            "status": status,
        }
    return out


def time_steps(builders, x, y, threads: int, cfg: dict) -> list[dict]:
    # Logged: with one thread the timing thread's CPU time (the judged figure), else wall-clock.
    clock = "CPU" if threads == 1 else "wall"

    def ms(t: harness.Timing) -> float:
        return (t.cpu_median if threads == 1 else t.median) * 1e3

    rows = []
    for net in W.NETS.values():
        init = W.initial_params(net)
        for batch in cfg["batches"]:
            pool = W.make_batches(x, y, batch, cfg["pool"])
            trainers = {name: build(net, init, pool) for name, build in builders.items()}
            timings = harness.interleave(
                {name: t.step for name, t in trainers.items()},
                cfg["blocks"],
                cfg["block_s"],
                cfg["warmup_s"],
            )
            status = {n: t.status() for n, t in trainers.items() if t.status is not None}
            for n, st in status.items():
                if "NOT" in st:
                    log(f"WARNING {n} {net.key} b{batch}: {st}")
            rows.append(
                {
                    "net": net.key,
                    "batch": batch,
                    "threads": threads,
                    "timings": {n: t.as_dict() for n, t in timings.items()},
                    "notes": {n: t.notes for n, t in trainers.items() if t.notes},
                    "status": status,
                }
            )
            floor_ms = ms(timings[W.FLOOR])
            summary = "  ".join(
                f"{n} {ms(t):.3f}" + ("" if n == W.FLOOR else f" ({ms(t) / floor_ms:.2f}x)")
                for n, t in timings.items()
            )
            log(f"[{threads} thr] {net.key} b{batch} {clock} ms: {summary}")
    return rows


def time_perop(threads: int, cfg: dict) -> dict:
    timings = harness.interleave(perop.chains(), cfg["perop_blocks"], cfg["block_s"] * 2, 0.05)
    out = {
        "wall": {n: t.median * 1e6 / perop.CHAIN for n, t in timings.items()},
        "cpu": {n: t.cpu_median * 1e6 / perop.CHAIN for n, t in timings.items()},
    }
    clock = "cpu" if threads == 1 else "wall"
    log(
        f"[{threads} thr] per-op {clock} us: "
        + "  ".join(f"{n} {v:.2f}" for n, v in out[clock].items())
    )
    return out


def time_epoch(x, y, threads: int, cfg: dict) -> dict:
    images = cfg["epoch_images"]
    xs, ys, pairs = epoch.epoch_data(x, y, images)
    init = W.initial_params(W.NIELSEN)
    status: dict[str, list[str]] = {}
    runs = epoch.runners(init, xs, ys, pairs, status)
    wall, cpu = epoch.time_epochs(runs, cfg["epoch_repeats"])
    scale = epoch.EPOCH_IMAGES / images
    out = {
        "images_timed": images,
        "repeats": cfg["epoch_repeats"],
        "wall": {n: float(np.median(t)) * scale for n, t in wall.items()},
        "cpu": {n: float(np.median(t)) * scale for n, t in cpu.items()},
        "status": {name: sorted(set(sts)) for name, sts in status.items()},
    }
    if any("NOT" in st for sts in status.values() for st in sts):
        log(f"WARNING epoch: {status}")
    log(
        f"[{threads} thr] epoch {'cpu' if threads == 1 else 'wall'} s per 50k: "
        + "  ".join(f"{n} {v:.3f}" for n, v in out["cpu" if threads == 1 else "wall"].items())
    )
    return out


def _memory_run(name: str, net_key: str, steps: int, x, y):
    net = W.NETS[net_key]
    init = W.initial_params(net)
    pool = W.make_batches(x, y, MEMORY_BATCH, 4)
    build = contenders.available()[name]

    def run():
        trainer = build(net, init, pool)
        for _ in range(steps):
            trainer.step()

    return run


def memory(builders, x, y, cfg: dict) -> dict:
    """Peak memory of building a contender and training it ``memory_steps`` steps at batch 512:
    tracemalloc (numpy's allocations; blind to torch's allocator) in this process, and the
    resident set's high-water growth in a fresh process per contender (sees everything)."""
    out: dict = {"tracemalloc": {}, "rss": {}, "rss_method": None}
    harness.set_threads(1)
    for net_key in W.NETS:
        for name in builders:
            if name == "PyTorch":
                continue
            run = _memory_run(name, net_key, cfg["memory_steps"], x, y)
            out["tracemalloc"].setdefault(net_key, {})[name] = harness.traced_peak(run)
        if not cfg["rss"]:
            continue
        for name in builders:
            cmd = [
                sys.executable,
                str(HERE / "run.py"),
                "--memory-child",
                name,
                net_key,
                str(cfg["memory_steps"]),
            ]
            res = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
            if res.returncode != 0:
                log(f"memory child {name} {net_key} failed: {res.stderr.strip()[-500:]}")
                continue
            got = json.loads(res.stdout.strip().splitlines()[-1])
            out["rss"].setdefault(net_key, {})[name] = got["bytes"]
            out["rss_method"] = got["method"]
    log(f"memory: {json.dumps(out)}")
    return out


def memory_child(name: str, net_key: str, steps: int) -> None:
    """In a fresh process: first train a tiny copy of the network a few steps, so that the
    framework's imports and lazily loaded code are in place (they are not part of training
    this network), then measure the RSS high-water growth of building it and training."""
    import dataclasses

    net = W.NETS[net_key]
    tiny = dataclasses.replace(net, sizes=(8,) * (len(net.sizes) - 1) + (10,))
    rng = np.random.default_rng(0)
    pool = W.make_batches(rng.random((4, 8), dtype=np.float32), rng.integers(0, 10, 4), 2, 2)
    trainer = contenders.available()[name](tiny, W.initial_params(tiny), pool)
    for _ in range(3):
        trainer.step()
    del trainer
    harness.set_threads(1)
    x, y, _ = W.load_mnist_train()
    x, y = x[: 4 * MEMORY_BATCH].copy(), y[: 4 * MEMORY_BATCH].copy()
    run = _memory_run(name, net_key, steps, x, y)
    nbytes, method = harness.rss_peak(run)
    print(json.dumps({"bytes": nbytes, "method": method}))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="fewer, shorter blocks (under a minute)")
    ap.add_argument("--threads", default="1,2", help="thread counts to run, e.g. 1,2")
    ap.add_argument("--out", default=str(HERE / "results" / "RESULTS.md"), help="markdown report")
    ap.add_argument("--no-profile", action="store_true", help="skip the profiles of tinygrad_nn")
    ap.add_argument(
        "--keep-blas-env",
        action="store_true",
        help="do not unset OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE for this run",
    )
    ap.add_argument(
        "--memory-child", nargs=3, metavar=("NAME", "NET", "STEPS"), help=argparse.SUPPRESS
    )
    args = ap.parse_args()
    if args.memory_child:
        name, net_key, steps = args.memory_child
        memory_child(name, net_key, int(steps))
        return

    mode = "quick" if args.quick else "full"
    cfg = SETTINGS[mode]
    threads = [int(t) for t in args.threads.split(",") if t.strip()]
    started = time.time()
    x, y, source = W.load_mnist_train()
    builders = contenders.available()
    log(f"contenders: {', '.join(builders)}; data: {source}; mode: {mode}")

    results: dict = {
        "command": " ".join(["python", "benchmarks/run.py", *sys.argv[1:]]),
        "mode": mode,
        "settings": cfg,
        "data": source,
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "contenders": list(builders),
        "machine": harness.machine_info(peers.versions(), BLAS_NOTE),
        "check": {"steps": CHECK_STEPS, "batch": CHECK_BATCH},
        "agreement": agreement(builders, x, y),
        "steps": [],
        "perop_us": {},
        "epoch": {},
        "load_average": {"start": harness.load_average()},
    }
    log(f"agreement check done at {time.time() - started:.0f} s")
    for n in threads:
        harness.set_threads(n)
        results["load_average"][f"before {n} thread(s)"] = harness.load_average()
        results["steps"] += time_steps(builders, x, y, n, cfg)
        log(f"steps done at {time.time() - started:.0f} s")
        results["perop_us"][str(n)] = time_perop(n, cfg)
        results["epoch"][str(n)] = time_epoch(x, y, n, cfg)
        log(f"per-op and epoch done at {time.time() - started:.0f} s")
    results["memory"] = memory(builders, x, y, cfg)
    log(f"memory done at {time.time() - started:.0f} s")
    harness.set_threads(threads[0])
    results["load_average"]["end"] = harness.load_average()
    results["blas_during_run"] = harness.blas_info()
    results["elapsed_s"] = time.time() - started

    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    text = report.markdown(results)
    out.write_text(text)
    out.with_suffix(".json").write_text(json.dumps(results, indent=1, default=str))
    print(text)
    log(f"wrote {out} and {out.with_suffix('.json')} in {results['elapsed_s']:.0f} s")

    if not args.no_profile:
        import hotspots

        prof = out.parent / "PROFILE.md"
        prof.write_text(hotspots.report(quick=args.quick))
        log(f"wrote {prof}")


if __name__ == "__main__":
    main()
