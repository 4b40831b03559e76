"""Evaluation over a date range as a queue job, and evaluation directories on disk.

:func:`evaluate_range` downscales every hour of a range over a region (reporting progress per
sampler step to its :class:`ppviz.jobs.Job`), assembles the hours into a ``ppviz downscale``
output and scores it with :func:`ppviz.evaluation.evaluate_ensemble`, the same code as
``ppviz evaluate`` (streaming metrics, per-cell percentile ratios, the Gibbs comparison of the
truth, the ensemble-mean field as an extra deterministic forecast).

An *evaluation directory* is what ``ppviz evaluate`` writes:

- ``metrics.json``: ``{"info": {...}, "scalars": EnsembleMetrics.scalars, "gibbs": {...}, ...}``
  (NaN written as null; a file whose top level is the scalars themselves is read too);
- ``metrics.nc``: the gridded maps (crps, bias, ...), the curves (spectrum, quantile_value,
  rank_histogram, ...) and ``percentile_ratio`` (forecast, percentile, lat, lon) in one file.

:func:`save_evaluation` writes that layout (without the PNG figures) and :func:`load_evaluation`
reads it back (any ``*.nc`` in the directory is split by variable name into curves, maps and
gridded fields). The dashboard reads directories only below the roots in ``$PPVIZ_EVAL_ROOTS``
(``os.pathsep``-separated; default: the working directory and the data cache), since the path
comes from a browser.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

EVAL_ROOTS_ENV = "PPVIZ_EVAL_ROOTS"
MAX_TIMES = 72
CURVES = ("spectrum", "member_spectrum", "spectral_ratio", "lsd_db", "mean_spectral_ratio", "quantile_value",
          "rank_histogram", "wet_frequency_pooled", "fss")
MAPS = ("percentile_ratio",)


@dataclass(frozen=True)
class EvalRequest:
    """An evaluation run: checkpoint, time range (inclusive), region, sampler settings."""

    checkpoint: str
    start: str
    end: str
    region: str
    members: int = 4
    steps: int = 18
    seed: int = 0
    pp_checkpoint: str | None = None

    def times(self, ds) -> list[pd.Timestamp]:
        """The hours of the range; ValueError for a bad or too long range."""
        from ppviz.pipeline import select_times

        times = select_times(ds, self.start, self.end)
        if len(times) > MAX_TIMES:
            raise ValueError(f"the range holds {len(times)} hourly steps; the dashboard evaluates at most "
                             f"{MAX_TIMES} (use `ppviz downscale` and an offline evaluation for longer ranges)")
        return times

    def validate(self, ds):
        from ppviz.data.regions import Region
        from ppviz.views.cache import check_checkpoint
        from ppviz.pipeline import check_request

        check_request(self.members, self.steps)
        if self.members < 2:
            raise ValueError("evaluation needs at least 2 members (the fair CRPS and the rank histogram)")
        check_checkpoint(self.checkpoint, "diffusion")
        region = Region.parse(self.region)
        return region, self.times(ds)


@dataclass
class EvaluationResult:
    """Metrics of a run or a loaded directory (``curves``/``gridded``/``maps`` may be None).

    ``maps`` holds ``percentile_ratio`` with dims (forecast, percentile, lat, lon).
    """

    scalars: dict
    curves: xr.Dataset | None = None
    gridded: xr.Dataset | None = None
    maps: xr.Dataset | None = None
    settings: dict = field(default_factory=dict)
    source: str = "computed"
    gibbs: dict = field(default_factory=dict)


def evaluate_range(request: EvalRequest, job=None, *, ds=None) -> EvaluationResult:
    """Downscale each hour of ``request`` and score them like ``ppviz evaluate``."""
    from ppviz.evaluation import evaluate_ensemble
    from ppviz.views.cache import dataset, load_models
    from ppviz.pipeline import downscale_time

    ds = dataset() if ds is None else ds
    region, times = request.validate(ds)
    models = load_models(request.checkpoint, request.pp_checkpoint)
    n, steps = len(times), int(request.steps)
    parts = []
    for i, t in enumerate(times):
        def cb(info, i=i, t=t):
            if job is not None:
                job.report((i + (int(info["i"]) + 1) / steps) / n,
                           f"hour {i + 1}/{n} ({t:%Y-%m-%d %H:%M}), step {int(info['i']) + 1}/{steps}")

        ens = downscale_time(models, ds, t, region, members=int(request.members), steps=steps,
                             seed=int(request.seed), callback=cb)
        if ens.inputs.truth_tp is None:
            raise ValueError("the data are on the 1 deg grid: there is no fine truth to evaluate against")
        parts.append(ens.to_dataset())
    if job is not None:
        job.report(1.0, "computing metrics")
    out = parts[0] if len(parts) == 1 else xr.concat(parts, dim="time", data_vars="minimal", coords="minimal",
                                                     compat="override", join="override")
    out.attrs = {**models.provenance, "region": region.slug_or_box, "members": int(request.members),
                 "steps": steps, "seed": int(request.seed)}
    ev = evaluate_ensemble(out)
    m = ev.metrics
    maps = xr.Dataset({"percentile_ratio": ev.ratio})
    return EvaluationResult(m.scalars, m.curves, m.gridded, maps, dict(ev.info), "computed", dict(ev.gibbs))


# -- directories -----------------------------------------------------------------------------


def _json_ready(obj):
    """Strict JSON: NaN and inf become null; numpy scalars and arrays become Python values."""
    if isinstance(obj, dict):
        return {str(k): _json_ready(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_json_ready(v) for v in obj]
    if isinstance(obj, np.generic):
        obj = obj.item()
    elif isinstance(obj, np.ndarray):
        return _json_ready(obj.tolist())
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


def _netcdf_ready(ds: xr.Dataset) -> xr.Dataset:
    """netCDF-safe attributes (no None, bools or nested containers) and no object dtypes."""
    def fix(attrs):
        out = {}
        for k, v in attrs.items():
            if v is None:
                continue
            if isinstance(v, bool):
                v = int(v)
            elif isinstance(v, (dict, list, tuple)):
                v = json.dumps(_json_ready(v))
            out[k] = v
        return out

    ds = ds.copy()
    ds.attrs = fix(ds.attrs)
    for name in list(ds.variables):
        ds[name].attrs = fix(ds[name].attrs)
        if ds[name].dtype == object:
            ds[name] = ds[name].astype(str)
    return ds


def save_evaluation(result: EvaluationResult, out_dir) -> Path:
    """Write ``result`` as an evaluation directory (``metrics.json`` + ``metrics.nc``); returns it."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    doc = {"info": result.settings, "scalars": result.scalars, "gibbs": result.gibbs}
    (out / "metrics.json").write_text(json.dumps(_json_ready(doc), indent=1), encoding="utf-8")
    parts = []
    if result.gridded is not None:
        parts.append(result.gridded)
    if result.curves is not None:
        c = result.curves
        parts.append(c.rename({"wet_frequency": "wet_frequency_pooled"}) if "wet_frequency" in c else c)
    if result.maps is not None:
        parts.append(result.maps)
    if parts:
        merged = xr.merge(parts, compat="override", join="outer", combine_attrs="drop")
        _netcdf_ready(merged).to_netcdf(out / "metrics.nc")
    return out


def allowed_roots() -> list[Path]:
    """Directories an evaluation may be loaded from (``$PPVIZ_EVAL_ROOTS``, see the module docstring)."""
    raw = os.environ.get(EVAL_ROOTS_ENV, "")
    roots = [Path(p).expanduser() for p in raw.split(os.pathsep) if p.strip()]
    if not roots:
        roots = [Path.cwd()]
        from ppviz.data.synthetic import cache_dir

        try:
            roots.append(Path(cache_dir()))
        except Exception:  # noqa: BLE001
            pass
    return [r.resolve() for r in roots]


def load_evaluation(path, roots=None) -> EvaluationResult:
    """Read an evaluation directory below one of ``roots`` (default :func:`allowed_roots`).

    Raises ValueError saying what is missing or not allowed.
    """
    text = str(path).strip()
    if not text:
        raise ValueError("enter the path of an evaluation directory (holding metrics.json)")
    p = Path(text).expanduser().resolve()
    roots = allowed_roots() if roots is None else [Path(r).resolve() for r in roots]
    if not any(p == r or p.is_relative_to(r) for r in roots):
        raise ValueError(f"{p} is outside the directories evaluations may be read from "
                         f"({', '.join(map(str, roots))}; set {EVAL_ROOTS_ENV} to change them)")
    if not p.is_dir():
        raise ValueError(f"{p} is not a directory")
    mj = p / "metrics.json"
    if not mj.is_file():
        raise ValueError(f"{p} has no metrics.json (an evaluation directory holds metrics.json and netCDF files)")
    try:
        doc = json.loads(mj.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"{mj} is not valid JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise ValueError(f"{mj} is not a JSON object")
    scalars = doc.get("scalars", doc) if isinstance(doc.get("scalars", doc), dict) else {}
    settings = doc.get("info") or doc.get("settings") or {}
    gibbs = doc.get("gibbs") if isinstance(doc.get("gibbs"), dict) else {}
    found: dict[str, list[xr.Dataset]] = {"curves": [], "maps": [], "gridded": []}
    for f in sorted(p.glob("*.nc")):
        try:
            with xr.open_dataset(f) as d:
                data = d.load()
        except Exception as exc:  # noqa: BLE001
            raise ValueError(f"{f.name} in {p} could not be read as netCDF: {exc}") from None
        for kind, names in (("curves", CURVES), ("maps", MAPS)):
            have = [v for v in data.data_vars if v in names]
            if have:
                found[kind].append(data[have])
        rest = [v for v in data.data_vars if v not in CURVES + MAPS and {"lat", "lon"} <= set(data[v].dims)]
        if rest:
            found["gridded"].append(data[rest])

    def merged(kind):
        return xr.merge(found[kind], compat="override", join="outer") if found[kind] else None

    return EvaluationResult(scalars, merged("curves"), merged("gridded"), merged("maps"),
                            settings if isinstance(settings, dict) else {}, str(p), gibbs)
