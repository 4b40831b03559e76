"""Benchmark: an exported ONNX checkpoint (onnxruntime, CPU provider) against the torch model.

Exports a diffusion checkpoint (default: the shipped ``edm-pp-v1``) with ``ppviz export onnx``
into a temporary directory, then samples the same members (same seeds, same region and steps) with
both, timing them in turns (interleaved repeats, median), and prints seconds per member of each,
their ratio (onnxruntime / torch) and the largest difference of the members (PP units).

Run from the repository root::

    .venv/bin/python benchmarks/bench_onnx.py [--checkpoint edm-pp-v1] [--region alps] [--members 2]
        [--steps 18] [--repeats 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ppviz.checkpoints import load_checkpoint  # noqa: E402
from ppviz.data.regions import Region  # noqa: E402
from ppviz.diffusion.onnx_export import export_checkpoint  # noqa: E402
from ppviz.pipeline import _static  # noqa: E402


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--checkpoint", default="edm-pp-v1")
    ap.add_argument("--region", default="alps")
    ap.add_argument("--members", type=int, default=2)
    ap.add_argument("--steps", type=int, default=18)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args(argv)

    region = Region.parse(args.region)
    static = _static(region.fine_grid)
    h, w = region.coarse_grid.shape
    coarse = np.random.default_rng(0).standard_normal((h, w)).astype("f4")
    seeds = list(range(args.members))
    with tempfile.TemporaryDirectory() as tmp:
        t = time.perf_counter()
        path = export_checkpoint(args.checkpoint, Path(tmp) / "bench-onnx")
        export_s = time.perf_counter() - t
        models = {"torch": load_checkpoint(args.checkpoint, kind="diffusion").model,
                  "onnxruntime": load_checkpoint(path).model}
        out, times = {}, {k: [] for k in models}
        for name, m in models.items():  # warm-up (oneDNN / onnxruntime set-up)
            m.sample(coarse, static, seeds[:1], num_steps=2)
        for _ in range(args.repeats):
            for name, m in models.items():
                t = time.perf_counter()
                out[name] = m.sample(coarse, static, seeds, num_steps=args.steps).numpy()
                times[name].append((time.perf_counter() - t) / args.members)
    per = {k: statistics.median(v) for k, v in times.items()}
    print(f"checkpoint {args.checkpoint}, region {region.slug_or_box} {region.fine_grid.shape}, {args.members} members, "
          f"{args.steps} Heun steps, median of {args.repeats} interleaved repeats")
    print(f"machine: {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}; torch threads {torch.get_num_threads()}")
    print(f"export: {export_s:.1f} s")
    for k, v in per.items():
        print(f"{k:12s}: {v:.3f} s per member (repeats: {', '.join(f'{x:.2f}' for x in times[k])})")
    print(f"onnxruntime / torch time per member: {per['onnxruntime'] / per['torch']:.2f}")
    print(f"max |member difference|: {np.abs(out['onnxruntime'] - out['torch']).max():.2e} (PP units)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
