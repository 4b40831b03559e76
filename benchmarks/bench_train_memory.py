"""Peak memory of ``ppviz train diffusion`` on a short and a long span: streaming vs in memory.

Writes two synthetic Europe zarrs (``--small-days``, default 8, and ``--large-days``, default 120)
in a temporary directory, in pieces of ``--piece-days`` appended along time so that writing the
long one does not hold it in memory either (chunks of 6 hours x 80 x 120 cells). Then trains a
tiny model for ``--steps`` steps on each, every run in its own subprocess, and reads the peak
resident set size of that run from ``resource.getrusage(RUSAGE_CHILDREN).ru_maxrss`` in a fresh
helper process (the largest single process of the run: the trainer or one of its DataLoader
workers), and the peak of the summed RSS of the whole process tree, sampled every 0.1 s from
/proc (it counts pages shared by the forked workers more than once).

Speed: steps per second from the run's ``train_log.jsonl`` between the first and the last log
line (the first ``log_every`` steps, with the start-up, left out), for the streaming trainer and
for the in-memory one of before (``--loader memory``) on the same data.

The last line is ``peak RSS ratio 120d/8d: X`` for the streaming trainer (target <= 1.3).

Run from the repository root::

    python benchmarks/bench_train_memory.py            # about 15 min on a shared 2-core CPU
    python benchmarks/bench_train_memory.py --steps 100 --large-days 30   # quicker
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

# Runs CMD, waits, prints the peak RSS (KiB) of its largest process and of its summed tree.
HELPER = r"""
import json, os, resource, subprocess, sys, time

def tree_rss(pid):
    pids, total = [pid], 0
    while pids:
        p = pids.pop()
        try:
            with open(f"/proc/{p}/status") as f:
                total += next((int(l.split()[1]) for l in f if l.startswith("VmRSS:")), 0)
            with open(f"/proc/{p}/task/{p}/children") as f:
                pids += [int(c) for c in f.read().split()]
        except (FileNotFoundError, ProcessLookupError):
            pass
    return total

proc = subprocess.Popen(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
peak_tree = 0
while proc.poll() is None:
    peak_tree = max(peak_tree, tree_rss(proc.pid))
    time.sleep(0.1)
err = proc.stderr.read()
print(json.dumps({"rc": proc.returncode, "maxrss_kib": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss,
                  "tree_kib": peak_tree, "stderr_tail": err[-2000:]}))
"""


def write_span(path: Path, days: int, piece: int) -> Path:
    """A synthetic Europe zarr of ``days`` days, generated and appended ``piece`` days at a time."""
    import warnings

    import pandas as pd

    from ppviz.data.synthetic import synthesize

    start = pd.Timestamp("2021-01-01")
    for k in range(0, days, piece):
        ds = synthesize(days=min(piece, days - k), seed=0, start=start + pd.Timedelta(days=k))
        ds = ds.chunk({"time": 6, "lat": 80, "lon": 120})
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Consolidated metadata", category=UserWarning)
            if k == 0:
                ds.to_zarr(path, mode="w")
            else:
                ds.to_zarr(path, append_dim="time")
        del ds
    return path


def batch_cpu_ms(data: Path, args, cache_mb: int) -> float:
    """CPU time (ms, this process) per batch of ``CropStream.batch`` (read the crops, encode them
    to PP, coarsen) for ``--steps`` steps from the start, cache filling included: the work one
    DataLoader worker does per step, with the window cache budget ``cache_mb`` (0: off). CPU time,
    not wall time, so the other jobs on the machine hardly move it."""
    import numpy as np
    import torch

    from ppviz.checkpoints import default_checkpoint, load_checkpoint
    from ppviz.data.grid import COARSE_FACTOR, Grid
    from ppviz.data.source import open_any
    from ppviz.data.windows import WindowReader
    from ppviz.diffusion.downscaler import static_channels
    from ppviz.training import stream as S

    torch.set_num_threads(1)
    view = open_any(data)
    grid = Grid.from_coords(view.lat.values, view.lon.values)
    pp = load_checkpoint(default_checkpoint("pp"), kind="pp").model
    src = S.CropSource(str(data), np.arange(view.sizes["time"]), grid, static_channels(grid), S.PPEncoder(pp))
    S._OPEN[(os.getpid(), str(data))] = WindowReader(data, view, cache_mb=cache_mb)  # this budget, in this process
    stream = S.CropStream(src, args.crop, args.batch, COARSE_FACTOR, seed=0)
    t0 = time.process_time()
    for step in range(args.steps):
        stream.batch(step)
    del S._OPEN[(os.getpid(), str(data))]
    return 1000 * (time.process_time() - t0) / args.steps


def run_train(data: Path, out: Path, args, loader: str) -> dict:
    cmd = [sys.executable, "-m", "ppviz", "train", "diffusion", "--data", str(data), "--out", str(out),
           "--steps", str(args.steps), "--batch", str(args.batch), "--crop", str(args.crop),
           "--base-channels", str(args.base_channels), "--channel-mult", args.channel_mult,
           "--eval-dates", "0", "--loader", loader, "--workers", str(args.workers)]
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": str(args.threads)}
    t0 = time.perf_counter()
    res = subprocess.run([sys.executable, "-c", HELPER, *cmd], env=env, capture_output=True, text=True, check=True)
    r = json.loads(res.stdout.strip().splitlines()[-1])
    if r["rc"] != 0:
        raise SystemExit(f"training failed ({' '.join(cmd)}):\n{r['stderr_tail']}")
    log = [json.loads(x) for x in (out.parent / f".{out.name}.train" / "train_log.jsonl").read_text().splitlines()]
    a, b = log[0], log[-1]
    r["steps_per_s"] = (b["step"] - a["step"]) / max(b["seconds"] - a["seconds"], 1e-9)
    r["wall_s"] = time.perf_counter() - t0
    return r


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--small-days", type=int, default=8)
    ap.add_argument("--large-days", type=int, default=120)
    ap.add_argument("--piece-days", type=int, default=10)
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--crop", type=int, default=32)
    ap.add_argument("--base-channels", type=int, default=8)
    ap.add_argument("--channel-mult", default="1,2")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--threads", type=int, default=1, help="OMP_NUM_THREADS of the training runs")
    ap.add_argument("--no-memory-loader", action="store_true", help="skip the in-memory trainer runs")
    args = ap.parse_args(argv)
    if args.steps < 100:
        raise SystemExit("--steps must be >= 100 (steps/s is measured between log lines 50 steps apart)")

    with tempfile.TemporaryDirectory(prefix="ppviz-bench-train-") as tmp:
        tmp = Path(tmp)
        spans = {}
        for days in (args.small_days, args.large_days):
            t0 = time.perf_counter()
            spans[days] = write_span(tmp / f"synthetic-{days}d.zarr", days, args.piece_days)
            print(f"wrote {days}-day synthetic zarr in {time.perf_counter() - t0:.0f} s", flush=True)
        cached, direct = batch_cpu_ms(spans[args.small_days], args, 128), batch_cpu_ms(spans[args.small_days], args, 0)
        print(f"{args.small_days} days: CPU per batch read and encoded (one worker's work per step): "
              f"{cached:.1f} ms with the window cache, {direct:.1f} ms window by window ({direct / cached:.1f}x)",
              flush=True)
        results: dict[tuple[int, str], dict] = {}
        loaders = ["stream"] + ([] if args.no_memory_loader else ["memory"])
        for days in (args.small_days, args.large_days):
            for loader in loaders:
                r = run_train(spans[days], tmp / f"ck-{days}-{loader}", args, loader)
                results[days, loader] = r
                print(f"{days:4d} days  {loader:6s}: peak RSS {r['maxrss_kib'] / 1024:7.1f} MiB (largest process), "
                      f"{r['tree_kib'] / 1024:7.1f} MiB (process tree, sampled); {r['steps_per_s']:.2f} steps/s; "
                      f"{r['wall_s']:.0f} s wall", flush=True)
        print(f"settings: steps {args.steps}, batch {args.batch}, crop {args.crop}, U-Net {args.base_channels} x "
              f"[{args.channel_mult}], workers {args.workers}, OMP threads {args.threads}")
        if not args.no_memory_loader:
            for days in (args.small_days, args.large_days):
                s, m = results[days, "stream"], results[days, "memory"]
                print(f"{days} days: steps/s stream / memory: {s['steps_per_s'] / m['steps_per_s']:.2f}; "
                      f"peak RSS stream / memory: {s['maxrss_kib'] / m['maxrss_kib']:.2f}")
            m_ratio = results[args.large_days, "memory"]["maxrss_kib"] / results[args.small_days, "memory"]["maxrss_kib"]
            print(f"in-memory trainer peak RSS ratio {args.large_days}d/{args.small_days}d: {m_ratio:.2f}")
        ratio = results[args.large_days, "stream"]["maxrss_kib"] / results[args.small_days, "stream"]["maxrss_kib"]
        print(f"peak RSS ratio {args.large_days}d/{args.small_days}d: {ratio:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
