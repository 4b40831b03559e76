"""Evaluation throughput: 30 dates x 8 members on the full Europe grid, serial vs a 2-worker LocalCluster.

Measures :func:`ppviz.metrics.evaluate_chunks` + ``compute()`` with every streaming metric of
``ppviz evaluate`` (fair CRPS, bias, spread-skill, rank histogram, wet counts, quantile
histograms, spectra, FSS) over an ensemble file in the ``ppviz downscale`` layout, read lazily
from netCDF in time chunks: once in this process, once as ``client.map`` tasks on a
``LocalCluster`` of 2 single-threaded worker processes (cluster start-up and a warm-up run
timed separately), interleaved ``--repeats`` times so background load hits both alike. Prints
the medians, their ratio, and checks that the two give the same numbers. The workers get
``ppviz evaluate``'s malloc setting (:func:`ppviz.evaluation.local_cluster_client`);
``--dask-malloc`` measures dask's own instead.

The ensemble is made without the diffusion model (sampling 240 full-Europe members would take far
longer than evaluating them, and evaluation cost does not depend on where members come from):
member ``k`` is the truth of 30 synthetic time steps, rolled by a few cells and scaled by a smooth
log-normal factor, so its values and dry areas look like precipitation. Baselines: bicubic and
nearest from the coarse tp.

Usage (repository root)::

    .venv/bin/python benchmarks/bench_evaluate.py [--dates 30] [--members 8] [--workers 2] [--dask-malloc]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def make_ensemble(path: Path, dates: int, members: int, seed: int = 0) -> Path:
    import xarray as xr
    from scipy import ndimage

    from ppviz import baselines
    from ppviz.data.canonical import write_dataset
    from ppviz.data.grid import COARSE_FACTOR, coarsen_blocks
    from ppviz.data.source import load_dataset
    from ppviz.pipeline import TP_ATTRS

    ds = load_dataset(None)
    idx = np.linspace(0, ds.sizes["time"] - 1, dates).round().astype(int)
    sub = ds.isel(time=idx)
    truth = np.asarray(sub["tp"].values, dtype=np.float32)  # (T, H, W)
    lat = sub["lat"].values
    coarse = coarsen_blocks(truth, lat)
    rng = np.random.default_rng(seed)
    mem = np.empty((members,) + truth.shape, np.float32)
    for k in range(members):
        dy, dx = rng.integers(-3, 4, size=2)
        noise = ndimage.gaussian_filter(rng.standard_normal(truth.shape), sigma=(0, 4, 4))
        noise /= noise.std()
        mem[k] = np.roll(truth, (dy, dx), axis=(1, 2)) * np.exp(0.4 * noise).astype(np.float32)
    lat_c = lat.reshape(-1, COARSE_FACTOR).mean(axis=1)
    dims3 = ("time", "lat", "lon")
    out = xr.Dataset(
        {
            "tp": (("member", *dims3), mem, TP_ATTRS),
            "tp_truth": (dims3, truth, TP_ATTRS),
            "tp_bicubic": (dims3, baselines.bicubic_tp(coarse), TP_ATTRS),
            "tp_nearest": (dims3, baselines.nearest_tp(coarse), TP_ATTRS),
            "tp_coarse": (("time", "lat_coarse", "lon_coarse"), coarse, TP_ATTRS),
        },
        coords={"member": np.arange(members), "time": sub.time.values, "lat": lat, "lon": sub.lon.values,
                "lat_coarse": lat_c, "lon_coarse": sub.lon.values.reshape(-1, COARSE_FACTOR).mean(axis=1)},
        attrs={"region": "europe", "diffusion_checkpoint": "none (bench_evaluate synthetic members)"},
    )
    return write_dataset(out, path)


def run(path: Path, client, time_chunk: int):
    from ppviz.evaluation.run import _ensemble_data, open_ensemble
    from ppviz.metrics import EnsembleAccumulator, evaluate_chunks

    ds = open_ensemble(path, time_chunk=time_chunk)
    data = _ensemble_data(ds, ("bicubic", "nearest"))
    template = EnsembleAccumulator(baselines=("bicubic", "nearest", "ensemble_mean"))
    t0 = time.perf_counter()
    m = evaluate_chunks(data, template, time_chunk=time_chunk, client=client).compute()
    return time.perf_counter() - t0, m.scalars


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--dates", type=int, default=30)
    p.add_argument("--members", type=int, default=8)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--time-chunk", type=int, default=5, help="time steps per task (30 / 5 = 6 tasks)")
    p.add_argument("--repeats", type=int, default=7, help="interleaved runs of each; medians reported")
    p.add_argument("--dask-malloc", action="store_true",
                   help="workers with dask's own malloc environment (ppviz.pipeline.local_client) instead of "
                        "ppviz evaluate's (ppviz.evaluation.local_cluster_client: MALLOC_MMAP_THRESHOLD_=64 MiB)")
    args = p.parse_args(argv)

    from ppviz.evaluation import local_cluster_client
    from ppviz.pipeline import local_client

    with tempfile.TemporaryDirectory(prefix="bench-evaluate-") as tmp:
        t0 = time.perf_counter()
        path = make_ensemble(Path(tmp) / "ensemble.nc", args.dates, args.members)
        print(f"ensemble: {args.dates} dates x {args.members} members x 160 x 240 (+ truth, bicubic, nearest) "
              f"written in {time.perf_counter() - t0:.1f} s ({path.stat().st_size / 1e6:.0f} MB netCDF), "
              f"{-(-args.dates // args.time_chunk)} chunks of {args.time_chunk} steps")
        print(f"machine: {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f} at start")
        t0 = time.perf_counter()
        client = (local_client if args.dask_malloc else local_cluster_client)(args.workers)
        t_start = time.perf_counter() - t0
        times = {"serial": [], "cluster": []}
        results = {}
        try:
            t_first = run(path, client, args.time_chunk)[0]  # warm-up: imports and first touches in the workers
            for _ in range(args.repeats):  # interleaved, so background load hits both alike
                for key, c in (("serial", None), ("cluster", client)):
                    t, scal = run(path, c, args.time_chunk)
                    times[key].append(t)
                    results[key] = scal
        finally:
            cluster = client.cluster
            client.close()
            cluster.close()
        med = {k: float(np.median(v)) for k, v in times.items()}
        runs = {k: ", ".join(f"{t:.2f}" for t in v) for k, v in times.items()}
        print(f"median of {args.repeats} interleaved runs (evaluate_chunks + compute):")
        print(f"  serial (in-process)                 : {med['serial']:6.2f} s  ({runs['serial']})")
        env = "dask's malloc env" if args.dask_malloc else "ppviz evaluate's"
        print(f"  LocalCluster, {args.workers} workers x 1 thread ({env}): {med['cluster']:6.2f} s  ({runs['cluster']})")
        print(f"  cluster start-up {t_start:.1f} s and first (warm-up) run {t_first:.2f} s, not included")
        print(f"speed-up serial / cluster: {med['serial'] / med['cluster']:.2f}x")
        a, b = results["serial"], results["cluster"]
        same = a["crps"] == b["crps"] and a["rank_histogram"] == b["rank_histogram"] and a["lsd_db"] == b["lsd_db"]
        print(f"same metrics (CRPS, rank histogram, LSD) serial vs cluster: {same}")
        print(f"CRPS ensemble {a['crps']['ensemble']:.4f} mm/h, MAE bicubic {a['crps']['bicubic']:.4f} mm/h")
        return 0 if same else 1


if __name__ == "__main__":
    raise SystemExit(main())
