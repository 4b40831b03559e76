"""Benchmark: Heun quality against sigma_max and steps, to choose a checkpoint's schedule (issue 11).

For each ``sigma_max`` and Heun step count, samples ``--members`` members on ``--hours`` held-out
hours (``ppviz.training.pp.split_times``, evenly spread) of the default dataset over one region,
with Karras sigmas (``sigma_min = 0.002``, ``rho = 7``), and prints one JSON line per setting:
fair CRPS of tp (mm/h, mean over hours), the largest member tp and its ratio to the truth's
maximum (worst hour), the std of the generated field, seconds.

The shipped v1 schedules (``config.schedule`` of ``pretrained/edm-*-v1``, see their cards) were
chosen from its output::

    .venv/bin/python benchmarks/bench_schedule.py edm-pp-v1 alps 8 8 80,10,5,3,2,1.5 2,3,4,6
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ppviz.data.regions import Region  # noqa: E402
from ppviz.data.source import load_dataset  # noqa: E402
from ppviz.diffusion.samplers import karras_sigmas  # noqa: E402
from ppviz.metrics.ensemble import crps_ensemble  # noqa: E402
from ppviz.pipeline import Models, _static, coarse_input, member_seed  # noqa: E402
from ppviz.training.pp import split_times  # noqa: E402


def main(argv: list[str]) -> int:
    if len(argv) != 6:
        print(__doc__)
        return 2
    ckpt, region, nh, m = argv[0], Region.parse(argv[1]), int(argv[2]), int(argv[3])
    smaxes = [float(v) for v in argv[4].split(",")]
    stepss = [int(v) for v in argv[5].split(",")]
    torch.set_num_threads(1)
    ds = load_dataset(None)
    _, held = split_times(ds.time.values, 0.2)
    times = ds.time.values[held[np.linspace(0, held.size - 1, nh).round().astype(int)]]
    models = Models.load(ckpt, device="cpu")
    static = _static(region.fine_grid)
    inps = [coarse_input(models, ds, t, region, "fine") for t in times]
    for smax in smaxes:
        for n in stepss:
            crps, ratio, mx, std = [], [], [], []
            t0 = time.time()
            for inp in inps:
                seeds = [member_seed(1, inp.time, k) for k in range(m)]
                pp = models.diffusion.sample(inp.conditioning, static, seeds,
                                             sigmas=karras_sigmas(n, 0.002, smax, 7.0)).numpy()
                with np.errstate(all="ignore"):
                    tp = models.decode(pp) if models.transform is None else models.transform.inverse(pp)
                truth = inp.truth_tp
                crps.append(float(np.nanmean(crps_ensemble(tp, truth))) if np.isfinite(tp).all() else np.inf)
                mx.append(float(np.max(tp)))
                ratio.append(float(np.max(tp)) / max(float(np.max(truth)), 1e-6))
                std.append(float(np.std(pp)))
            print(json.dumps({"ckpt": ckpt, "smax": smax, "steps": n, "crps": float(np.mean(crps)),
                              "max_tp": max(mx), "max_ratio": max(ratio), "pp_std": float(np.mean(std)),
                              "sec": round(time.time() - t0, 1)}), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
