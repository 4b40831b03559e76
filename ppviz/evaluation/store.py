"""Evaluation directories: the one result type and the one (atomic) writer and reader.

An *evaluation directory* is what ``ppviz evaluate`` (and the Evaluation page's "save") writes:

- ``metrics.json``: ``{"info": {...}, "scalars": EnsembleMetrics.scalars, "gibbs": {...}, ...}``
  (NaN written as null; a file whose top level is the scalars themselves is read too);
- ``metrics.nc``: the gridded maps (crps, bias, ...), the curves (spectrum, quantile_value,
  rank_histogram, ...) and ``percentile_ratio`` (forecast, percentile, lat, lon) in one file;
- with ``ppviz evaluate``, the PNG figures of :mod:`ppviz.evaluation.figures`.

:class:`EvaluationResult` is what an evaluation computes and what a directory holds;
:func:`save_evaluation` writes it (both files atomically: a temporary sibling, then a rename),
:func:`read_evaluation` reads it back (any ``*.nc`` in the directory is split by variable name
into curves, maps and gridded fields). ``metrics.nc`` is CF-1.8 clean like every file ppviz writes
(:mod:`ppviz.data.cf_out`): its string dimensions (``forecast``, ``source``...) are stored as
``<dim>_label`` variables, which :func:`read_evaluation` turns back into coordinates.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import xarray as xr

from ppviz.data.cf_out import restore_labels
from ppviz.io import json_ready, write_json_atomic

__all__ = ["CURVES", "MAPS", "EvaluationResult", "metrics_dataset", "read_evaluation", "save_evaluation",
           "write_outputs"]

CURVES = ("spectrum", "member_spectrum", "spectral_ratio", "lsd_db", "mean_spectral_ratio", "quantile_value",
          "rank_histogram", "wet_frequency_pooled", "fss")
MAPS = ("percentile_ratio",)
METRICS_JSON = "metrics.json"
METRICS_NC = "metrics.nc"


@dataclass
class EvaluationResult:
    """Metrics of a run or a loaded directory (``curves``/``gridded``/``maps`` may be None).

    ``scalars``, ``curves`` and ``gridded`` are those of :class:`ppviz.metrics.EnsembleMetrics`;
    ``maps`` holds ``percentile_ratio`` with dims (forecast, percentile, lat, lon); ``settings``
    the run's facts (``metrics.json``'s ``info``); ``source`` ``"computed"`` or the directory.
    """

    scalars: dict
    curves: xr.Dataset | None = None
    gridded: xr.Dataset | None = None
    maps: xr.Dataset | None = None
    settings: dict = field(default_factory=dict)
    source: str = "computed"
    gibbs: dict = field(default_factory=dict)

    @property
    def ratio(self) -> xr.DataArray | None:
        """The percentile ratio maps (forecast, percentile, lat, lon), or None."""
        return None if self.maps is None or "percentile_ratio" not in self.maps else self.maps["percentile_ratio"]


def _netcdf_attrs(attrs: dict) -> dict:
    """netCDF-safe attributes: no None or bools; numpy scalars as numbers; containers as JSON text
    (a flat list of numbers stays a list)."""
    out = {}
    for k, v in attrs.items():
        if v is None:
            continue
        if isinstance(v, np.generic):
            v = v.item()
        if isinstance(v, bool):
            v = int(v)
        elif isinstance(v, (list, tuple)) and all(isinstance(x, (int, float)) and not isinstance(x, bool)
                                                  for x in v):
            v = list(v)
        elif isinstance(v, (dict, list, tuple)):
            v = json.dumps(json_ready(v))
        # netCDF attribute names: letters, digits, '_' (a settings key from elsewhere may hold more)
        out[re.sub(r"[^A-Za-z0-9_]", "_", str(k)) or "_"] = v
    return out


def metrics_dataset(result: EvaluationResult) -> xr.Dataset:
    """Gridded maps, curves and percentile ratio maps in one Dataset (``metrics.nc``), netCDF-safe.

    The pooled wet frequency curve is renamed ``wet_frequency_pooled`` (``wet_frequency`` is also a
    scalar table); global attributes are the CF convention, a title and the run's settings.
    """
    parts = []
    if result.gridded is not None:
        parts.append(result.gridded)
    if result.curves is not None:
        c = result.curves
        parts.append(c.rename({"wet_frequency": "wet_frequency_pooled"}) if "wet_frequency" in c else c)
    if result.maps is not None:
        parts.append(result.maps)
    out = xr.merge(parts, compat="override", join="outer", combine_attrs="drop") if parts else xr.Dataset()
    for v in list(out.variables):
        out[v].attrs = _netcdf_attrs(out[v].attrs)
        if out[v].dtype == object:
            out[v] = out[v].astype(str)
    out.attrs = _netcdf_attrs({"Conventions": "CF-1.8", "title": "ppviz evaluate: gridded metrics and curves",
                               **{k: (v if isinstance(v, (int, float, str)) else str(v))
                                  for k, v in result.settings.items() if v is not None}})
    return out


def save_evaluation(result: EvaluationResult, out_dir, *, extra: dict | None = None) -> Path:
    """Write ``result`` as an evaluation directory (``metrics.json`` + ``metrics.nc``); returns it.

    ``extra`` adds keys to ``metrics.json`` (``ppviz evaluate``: the table and the figures).
    """
    from ppviz.data.canonical import write_dataset

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if any(x is not None for x in (result.gridded, result.curves, result.maps)):
        write_dataset(metrics_dataset(result), out / METRICS_NC)
    doc = {"info": result.settings, "scalars": result.scalars, "gibbs": result.gibbs, **(extra or {})}
    write_json_atomic(json_ready(doc), out / METRICS_JSON)
    return out


def write_outputs(result: EvaluationResult, ds: xr.Dataset, out_dir, *, max_map_dates: int = 4) -> dict[str, Path]:
    """``ppviz evaluate``'s directory: the PNG figures, ``metrics.nc`` and ``metrics.json``; returns name -> path."""
    from ppviz.evaluation.figures import write_report
    from ppviz.evaluation.report import summary_rows

    out = Path(out_dir)
    info = result.settings
    title = f"{info.get('diffusion_checkpoint') or info.get('predictions_var', '?')} over {info.get('region', '?')}, " \
            f"{info['n_times']} times x {info['n_members']} members"
    figs = write_report(result, out, ds=ds, ratio=result.ratio, max_map_dates=max_map_dates, title=title)
    save_evaluation(result, out, extra={"table": summary_rows(result.scalars),
                                        "figures": {k: p.name for k, p in figs.items()}, "gridded": METRICS_NC})
    return {METRICS_JSON: out / METRICS_JSON, METRICS_NC: out / METRICS_NC, **figs}


def read_evaluation(path) -> EvaluationResult:
    """Read an evaluation directory; ValueError saying what is missing or unreadable."""
    p = Path(path)
    if not p.is_dir():
        raise ValueError(f"{p} is not a directory")
    mj = p / METRICS_JSON
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
                data = restore_labels(d.load())
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
