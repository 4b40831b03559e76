"""Run an evaluation: score a ``ppviz downscale`` output (``ppviz evaluate``, the Evaluation page).

:func:`open_ensemble` opens and checks the file; :func:`evaluate_ensemble` streams it through
:class:`ppviz.metrics.EnsembleAccumulator` (time chunks, serially or on a dask.distributed
client), adds the non-streaming parts (per-cell percentile ratio maps, which need every time step
of a cell at once, and the Gibbs comparison of the truth) and returns an
:class:`ppviz.evaluation.store.EvaluationResult`, which :func:`ppviz.evaluation.store.write_outputs`
writes. The Evaluation page scores a date range with the same function
(:func:`ppviz.views.evaluation.evaluate_range`).

Besides the file's baselines, the **ensemble-mean field** (``ensemble_mean``, the member mean at
each cell) is scored as a deterministic forecast: it shows how much of the ensemble's skill is in
its mean, and its spectrum how much fine-scale power the members add.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import xarray as xr

from ppviz.evaluation.store import EvaluationResult
from ppviz.io import json_ready

__all__ = ["DEFAULT_BASELINES", "QQ_LEVELS", "evaluate_ensemble", "gibbs_of_truth", "local_cluster_client",
           "open_ensemble", "parse_baselines"]

DEFAULT_BASELINES = ("bicubic", "nearest", "pp_bicubic")
#: Quantile levels of the QQ plot (and of ``metrics.json``'s ``quantiles``): dense in the tail.
QQ_LEVELS = tuple(sorted(set(np.round(1.0 - np.logspace(-0.3, -4.5, 43), 8).tolist())
                         | {0.5, 0.9, 0.95, 0.99, 0.999, 0.9999}))
PERCENTILES = (99.0, 99.9)
ENSEMBLE_MEAN = "ensemble_mean"
#: At most this many time steps enter the Gibbs comparison (evenly spread), to bound its cost.
GIBBS_MAX_TIMES = 48


def open_ensemble(path, *, time_chunk: int = 8) -> xr.Dataset:
    """Open a ``ppviz downscale`` output (netCDF or zarr) lazily (dask chunks of ``time_chunk`` steps).

    Raises FileNotFoundError for a missing path and ValueError, in one line, for a file that is
    not netCDF/zarr or lacks the members ``tp`` (member, time, lat, lon) or the truth ``tp_truth``.
    """
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"{p}: no such file or directory")
    try:
        if p.suffix == ".zarr" or p.is_dir():
            ds = xr.open_zarr(p).chunk({"time": time_chunk})
        else:
            ds = xr.open_dataset(p, chunks={}).chunk({"time": time_chunk})
    except Exception as exc:  # every reader error means the same thing to the user
        raise ValueError(f"{p} is not a netCDF or zarr dataset ({type(exc).__name__})") from None
    if "tp" not in ds.data_vars or "member" not in ds["tp"].dims:
        raise ValueError(f"{p} has no ensemble 'tp' (member, time, lat, lon); is it a `ppviz downscale` output?")
    if "tp_truth" not in ds.data_vars:
        raise ValueError(f"{p} has no 'tp_truth': evaluation needs the truth (downscale 0.25 deg data, "
                         "not 1 deg data)")
    if ds.sizes["member"] < 2:
        raise ValueError(f"{p} has {ds.sizes['member']} member; the ensemble scores need at least 2")
    return ds


#: glibc mmap threshold of LocalCluster workers, bytes (see :func:`local_cluster_client`).
WORKER_MMAP_THRESHOLD = 64 * 2**20


def local_cluster_client(n_workers: int | None = None):
    """:func:`ppviz.pipeline.local_client` with a worker malloc setting for evaluation (call under ``__main__``).

    dask's nanny starts workers with ``MALLOC_TRIM_THRESHOLD_=65536``, which also freezes glibc's
    mmap threshold at 128 KiB, so every large numpy temporary of the accumulators is a fresh
    ``mmap`` whose pages fault in on first touch. ``MALLOC_MMAP_THRESHOLD_=64 MiB`` keeps them
    on the reused heap: ``benchmarks/bench_evaluate.py`` measured 2 workers at 1.3x the serial
    speed with it and 0.7-0.9x without it on a 2-core machine.
    """
    import dask

    from ppviz.pipeline import local_client

    with dask.config.set({"distributed.nanny.pre-spawn-environ.MALLOC_MMAP_THRESHOLD_": WORKER_MMAP_THRESHOLD}):
        return local_client(n_workers)


def parse_baselines(text: str | None, ds: xr.Dataset) -> tuple[str, ...]:
    """Baseline names from ``bicubic,nearest`` (``none`` or empty: none); each must be ``tp_<name>`` in ``ds``."""
    if text is None:
        return tuple(b for b in DEFAULT_BASELINES if f"tp_{b}" in ds.data_vars)
    names = tuple(n.strip() for n in text.split(",") if n.strip() and n.strip().lower() != "none")
    have = sorted(v[3:] for v in ds.data_vars if v.startswith("tp_") and ds[v].dims == ds["tp_truth"].dims
                  and v != "tp_truth")
    missing = [n for n in names if n not in have]
    if missing:
        raise ValueError(f"baselines {missing} are not in the file; available: {have}")
    return names


def _ensemble_data(ds: xr.Dataset, baselines) -> xr.Dataset:
    from ppviz.metrics import from_pipeline

    data = from_pipeline(ds)
    data = data[["members", "truth", *baselines]]
    data[ENSEMBLE_MEAN] = data["members"].mean("member")
    return data


def gibbs_of_truth(ds: xr.Dataset, *, max_times: int = GIBBS_MAX_TIMES) -> dict:
    """:func:`ppviz.metrics.gibbs_comparison` of ``tp_truth`` vs ``pp_truth``, decoded with the file's PP checkpoint.

    Returns the comparison (``tp_truth`` truncated vs ``pp_truth`` truncated then decoded) plus
    ``pp_checkpoint``, ``times`` and a ``note``; or ``{"skipped": reason}`` when the file has no
    ``pp_truth`` or the PP checkpoint named in its attributes cannot be loaded.
    """
    from functools import partial

    from ppviz.checkpoints import load_checkpoint
    from ppviz.metrics import gibbs_comparison
    from ppviz.models.pp import decode_numpy

    if "pp_truth" not in ds.data_vars:
        return {"skipped": "the file has no pp_truth"}
    name = ds.attrs.get("pp_checkpoint")
    if not name:
        return {"skipped": "the file names no pp_checkpoint in its attributes"}
    try:
        ck = load_checkpoint(name, kind="pp")
    except Exception as exc:
        return {"skipped": f"PP checkpoint {name!r} cannot be loaded: {str(exc).splitlines()[0]}"}
    t = ds.sizes["time"]
    idx = np.unique(np.linspace(0, t - 1, min(t, max_times)).round().astype(int))
    tp = np.asarray(ds["tp_truth"].isel(time=idx).values, dtype=np.float64)
    pp = np.asarray(ds["pp_truth"].isel(time=idx).values, dtype=np.float64)
    ok = np.isfinite(tp).all(axis=(1, 2)) & np.isfinite(pp).all(axis=(1, 2))
    if not ok.any():
        return {"skipped": "no time step with a finite truth"}
    from ppviz.data.grid import grid_spacing_km

    dx = grid_spacing_km(ds["lat"].values)
    res = gibbs_comparison(tp[ok], pp[ok], partial(decode_numpy, ck.model), dx_km=dx)
    want = ds.attrs.get("pp_checkpoint_sha256")
    res.update({"pp_checkpoint": ck.name, "times": int(ok.sum()),
                "note": "truth fields: tp truncated vs pp truncated then decoded (DCT, sharp cutoff)"})
    if want and want != ck.sha256:
        res["warning"] = f"PP checkpoint {name!r} here has sha256 {ck.sha256[:12]}..., the file's run used {want[:12]}..."
    return res


def evaluate_ensemble(ds: xr.Dataset, *, baselines=DEFAULT_BASELINES, client=None, time_chunk: int = 8,
                      gibbs: bool = True) -> EvaluationResult:
    """Every metric of a downscale output (see the module docstring)."""
    from ppviz.metrics import EnsembleAccumulator, evaluate_chunks, percentile_ratio_maps

    data = _ensemble_data(ds, baselines)
    names = (*baselines, ENSEMBLE_MEAN)
    template = EnsembleAccumulator(baselines=names, quantile_levels=QQ_LEVELS)
    acc = evaluate_chunks(data, template, time_chunk=time_chunk, client=client)
    metrics = acc.compute()
    # Per-cell percentiles need all times of a cell at once: not streamed (memory: the members).
    truth = data["truth"].load()
    ratios = []
    for n in ("members", *names):
        r = percentile_ratio_maps(data[n].load(), truth, PERCENTILES)
        ratios.append(r.expand_dims(forecast=["ensemble" if n == "members" else n]))
    ratio = xr.concat(ratios, "forecast")
    g = gibbs_of_truth(ds) if gibbs else {"skipped": "not asked"}
    info = {k: json_ready(ds.attrs[k]) for k in ("region", "diffusion_checkpoint", "diffusion_checkpoint_sha256",
                                            "diffusion_target", "pp_checkpoint", "members", "steps", "seed",
                                            "data", "history", "predictions", "predictions_var", "truth_source",
                                            "truth_var", "units_in", "time_step", "member_dims") if k in ds.attrs}
    info.update({"n_times": int(ds.sizes["time"]), "n_members": int(ds.sizes["member"]),
                 "time_range": [str(np.datetime_as_string(ds.time.values[0], unit="m")),
                                str(np.datetime_as_string(ds.time.values[-1], unit="m"))]
                 if np.issubdtype(ds.time.dtype, np.datetime64) else None,
                 "baselines": list(baselines), "scheduler": "dask.distributed" if client is not None else "in-process",
                 "time_chunk": int(time_chunk)})
    return EvaluationResult(metrics.scalars, metrics.curves, metrics.gridded,
                            xr.Dataset({"percentile_ratio": ratio}), info, "computed", g)
