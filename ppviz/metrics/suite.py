"""The metric suite of an ensemble run: every streaming metric at once, over time chunks, optionally on dask.

The ensemble Dataset layout (built by :func:`ensemble_dataset`)
---------------------------------------------------------------
* ``members``: dims ``(member, time, lat, lon)``, mm/h -- the downscaled TP ensemble;
* ``truth``: dims ``(time, lat, lon)``, mm/h -- ERA5 (or synthetic) truth;
* every other variable with exactly the truth's dims is a deterministic **baseline** named by
  its variable name (e.g. ``bilinear``), mm/h.
* A ``time`` coordinate (datetimes or numbers): it keys the rank histogram's tie-breaking draws.

:func:`from_pipeline` converts a :mod:`ppviz.pipeline` output (``tp``, ``tp_truth``, ``tp_<baseline>``).

NaN policy: a ``(time, lat, lon)`` point is used only where the truth, every member and every
baseline are finite; spectra use only the time steps where every point is.  Dry cells are
ordinary values (see the metric modules).

:class:`EnsembleAccumulator` bundles the accumulators of :mod:`ppviz.metrics.accumulate`;
:func:`evaluate_chunks` maps it over time chunks (serially or with ``client.map`` on a
``dask.distributed`` cluster) and merges the parts; ``compute()`` gives an
:class:`EnsembleMetrics`: a JSON-ready dict of scalars, a gridded Dataset (maps) and a Dataset of
curves (spectra, quantiles, rank histogram, FSS).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import xarray as xr

from ppviz.metrics._common import MEMBER, TIME
from ppviz.metrics.accumulate import (
    Accumulator, BiasAccumulator, CRPSAccumulator, FSSAccumulator, QuantileHistogramAccumulator,
    RankHistogramAccumulator, SpectrumAccumulator, SpreadSkillAccumulator, WetCountAccumulator,
)
from ppviz.metrics.distribution import DEFAULT_QUANTILE_LEVELS, DEFAULT_WET_THRESHOLDS
from ppviz.metrics.errors import DEFAULT_FSS_SCALES, DEFAULT_FSS_THRESHOLDS
from ppviz.metrics.spectra import DEFAULT_BANDS_KM, spectral_band_scores, spectral_ratio

__all__ = [
    "MEMBERS_VAR", "TRUTH_VAR", "EnsembleAccumulator", "EnsembleMetrics", "ensemble_dataset", "evaluate_chunks",
    "from_pipeline",
]

MEMBERS_VAR = "members"
TRUTH_VAR = "truth"
ENSEMBLE = "ensemble"  # the ensemble's name among the forecasts


def ensemble_dataset(members: xr.DataArray, truth: xr.DataArray, baselines: dict | None = None) -> xr.Dataset:
    """Assemble the ensemble Dataset layout (see the module docstring).

    Parameters
    ----------
    members : xarray.DataArray, dims (member, time, lat, lon), mm/h
    truth : xarray.DataArray, dims (time, lat, lon), mm/h
    baselines : dict of str to xarray.DataArray, dims (time, lat, lon), mm/h

    Returns
    -------
    xarray.Dataset
        Variables ``members``, ``truth`` and one per baseline; coordinates must agree exactly
        (ValueError otherwise).  Without a ``time`` coordinate, one is added (0, 1, ...).
    """
    baselines = dict(baselines or {})
    for name in baselines:
        if name in (MEMBERS_VAR, TRUTH_VAR) or not isinstance(name, str):
            raise ValueError(f"baseline name {name!r} is reserved or not a string")
    if MEMBER not in members.dims:
        raise ValueError(f"members need a {MEMBER!r} dim; got {members.dims}")
    arrays = [members, truth, *baselines.values()]
    for a in arrays[1:]:
        if set(a.dims) != set(truth.dims):
            raise ValueError(f"baselines must have the truth's dims {truth.dims}; got {a.dims}")
    try:
        arrays = xr.align(*arrays, join="exact")
    except ValueError as err:
        raise ValueError(f"members, truth and baselines have different coordinates: {err}") from None
    names = [MEMBERS_VAR, TRUTH_VAR, *baselines]
    ds = xr.Dataset({n: a.variable for n, a in zip(names, arrays)},
                    coords={k: v for a in arrays for k, v in a.coords.items()})
    if TIME in ds.dims and TIME not in ds.coords:
        ds = ds.assign_coords({TIME: np.arange(ds.sizes[TIME])})
    return ds


def from_pipeline(ds: xr.Dataset, *, members_var: str = "tp", truth_var: str = "tp_truth",
                  baseline_prefix: str = "tp_") -> xr.Dataset:
    """The ensemble Dataset layout from a :mod:`ppviz.pipeline` output.

    The pipeline names the TP members ``tp`` (member, time, lat, lon), the truth ``tp_truth``
    and its baselines ``tp_<name>`` (time, lat, lon); PP and coarse variables are left out.

    Returns
    -------
    xarray.Dataset
        :func:`ensemble_dataset` of ``ds[members_var]``, ``ds[truth_var]`` and every
        ``baseline_prefix*`` variable with the truth's dims (named without the prefix).
    """
    for v in (members_var, truth_var):
        if v not in ds.data_vars:
            raise ValueError(f"{v!r} is not in the dataset (variables: {list(ds.data_vars)}); "
                             "the truth is there only when the pipeline ran on fine data")
    truth = ds[truth_var]
    baselines = {v[len(baseline_prefix):]: ds[v] for v in ds.data_vars
                 if v.startswith(baseline_prefix) and v != truth_var and set(ds[v].dims) == set(truth.dims)}
    return ensemble_dataset(ds[members_var], truth, baselines)


@dataclass
class EnsembleMetrics:
    """What :meth:`EnsembleAccumulator.compute` returns.

    Attributes
    ----------
    scalars : dict
        JSON-ready (str keys, floats, ints, lists): ``n_times``, ``n_members``, ``baselines``,
        ``n_points`` (valid (time, lat, lon) points), ``crps`` (per forecast: the ensemble's fair
        CRPS, each baseline's MAE; mm/h), ``crps_skill_score`` (per baseline),
        ``spread``/``rmse``/``spread_skill_ratio``, ``rank_histogram`` (counts),
        ``bias`` (per forecast, mm/h), ``wet_frequency`` (per source and threshold),
        ``quantiles`` (per source and level, mm/h), ``lsd_db`` and ``mean_spectral_ratio``
        (per forecast and band), ``fss`` (per forecast, threshold and scale).
    gridded : xarray.Dataset
        Maps over (lat, lon): ``crps`` (forecast, ...), ``crps_skill_score`` (baseline, ...),
        ``bias`` (forecast, ...), ``wet_frequency`` (source, threshold, ...), ``spread``,
        ``rmse``, ``spread_skill_ratio``, ``count``.
    curves : xarray.Dataset
        ``spectrum`` (source, wavenumber), ``member_spectrum`` (member, wavenumber),
        ``spectral_ratio`` (forecast, wavenumber), ``lsd_db`` and ``mean_spectral_ratio``
        (forecast, band), ``quantile_value`` (source, quantile), ``rank_histogram`` (rank),
        ``wet_frequency`` (source, threshold), ``fss`` (forecast, fss_threshold, scale).
    """

    scalars: dict
    gridded: xr.Dataset
    curves: xr.Dataset


def _key(v: float) -> str:
    return f"{float(v):g}"


class EnsembleAccumulator(Accumulator):
    """All streaming metrics of an ensemble run, for batches in the ensemble Dataset layout.

    Parameters
    ----------
    baselines : sequence of str or None
        Baseline variables to score; None takes every variable with the truth's dims.
    members_var, truth_var, member_dim : str
        Names in the batch Datasets.
    crps_method : {'fair', 'ecdf'}
    seed : int
        Seed of the rank histogram's tie-breaking (keyed by time stamp).
    wet_thresholds : sequence of float, mm/h
    quantile_levels : sequence of float
        Levels reported in ``compute()`` (any level can be queried later from the histograms).
    histogram : (lo, hi, n_log)
        Bins of :class:`~ppviz.metrics.accumulate.QuantileHistogramAccumulator`.
    spectra : bool
        Accumulate spectra (one FFT per field and time step).
    dx_km : float or None
        Grid spacing; None derives it from the latitude coordinate.
    bands_km : sequence of (lo_km, hi_km)
        Bands of the log-spectral distance.
    fss : bool
    fss_thresholds, fss_scales : FSS thresholds (mm/h) and neighbourhood widths (cells).
    """

    def __init__(self, *, baselines=None, members_var: str = MEMBERS_VAR, truth_var: str = TRUTH_VAR,
                 member_dim: str = MEMBER, crps_method: str = "fair", seed: int = 0,
                 wet_thresholds=DEFAULT_WET_THRESHOLDS, quantile_levels=DEFAULT_QUANTILE_LEVELS,
                 histogram=(1e-4, 1e3, 2000), spectra: bool = True, dx_km: float | None = None,
                 bands_km=DEFAULT_BANDS_KM, fss: bool = True, fss_thresholds=DEFAULT_FSS_THRESHOLDS,
                 fss_scales=DEFAULT_FSS_SCALES):
        super().__init__(
            baselines=None if baselines is None else tuple(baselines), members_var=members_var, truth_var=truth_var,
            member_dim=member_dim, crps_method=crps_method, seed=int(seed),
            wet_thresholds=tuple(float(t) for t in wet_thresholds),
            quantile_levels=tuple(float(q) for q in quantile_levels),
            histogram=tuple(histogram), spectra=bool(spectra), dx_km=dx_km,
            bands_km=tuple(tuple(float(v) for v in b) for b in bands_km), fss=bool(fss),
            fss_thresholds=tuple(float(t) for t in fss_thresholds), fss_scales=tuple(int(s) for s in fss_scales),
        )
        self.baseline_names: tuple[str, ...] | None = None
        self.parts: dict | None = None

    # -- accumulation ------------------------------------------------------------------------
    def _make_parts(self, names) -> dict:
        c = self.config
        md = c["member_dim"]
        forecasts = (ENSEMBLE, *names)
        sources = ("truth", *forecasts)
        lo, hi, n_log = c["histogram"]
        parts = {
            "crps": {n: CRPSAccumulator(member_dim=md, method=c["crps_method"]) for n in forecasts},
            "bias": {n: BiasAccumulator(member_dim=md) for n in forecasts},
            "spread_skill": SpreadSkillAccumulator(member_dim=md),
            "rank": RankHistogramAccumulator(member_dim=md, seed=c["seed"]),
            "wet": {n: WetCountAccumulator(thresholds=c["wet_thresholds"], member_dim=md) for n in sources},
            "hist": {n: QuantileHistogramAccumulator(lo=lo, hi=hi, n_log=n_log, member_dim=md) for n in sources},
        }
        if c["spectra"]:
            parts["spectra"] = {n: SpectrumAccumulator(dx_km=c["dx_km"], member_dim=md) for n in sources}
        if c["fss"]:
            parts["fss"] = {n: FSSAccumulator(thresholds=c["fss_thresholds"], scales=c["fss_scales"], member_dim=md)
                            for n in forecasts}
        return parts

    def _split(self, batch: xr.Dataset):
        c = self.config
        md = c["member_dim"]
        y = batch[c["truth_var"]]
        if TIME not in y.dims:
            raise ValueError(f"the truth needs a {TIME!r} dim; got {y.dims}")
        spatial = [d for d in y.dims if d != TIME]
        if c["baselines"] is None:
            names = tuple(v for v in batch.data_vars if v not in (c["members_var"], c["truth_var"])
                          and set(batch[v].dims) == set(y.dims))
        else:
            names = c["baselines"]
            missing = [n for n in names if n not in batch.data_vars]
            if missing:
                raise ValueError(f"baselines {missing} are not in the batch ({list(batch.data_vars)})")
        order = (TIME, *spatial)
        x = batch[c["members_var"]].transpose(md, *order).astype(np.float64)
        y = y.transpose(*order).astype(np.float64)
        base = {n: batch[n].transpose(*order).astype(np.float64) for n in names}
        valid = np.isfinite(y.values) & np.isfinite(x.values).all(axis=0)
        for b in base.values():
            valid &= np.isfinite(b.values)
        return names, x, y, base, valid

    def accumulate(self, batch: xr.Dataset):
        """Add one time chunk in the ensemble Dataset layout (loaded here if lazy)."""
        names, x, y, base, valid = self._split(batch)
        if self.parts is None:
            self.baseline_names, self.parts = names, self._make_parts(names)
        elif names != self.baseline_names:
            raise ValueError(f"batch baselines {names} differ from {self.baseline_names}")
        p = self.parts
        forecasts = {ENSEMBLE: x, **base}
        for n, f in forecasts.items():
            p["crps"][n].accumulate(f, y, valid)
            p["bias"][n].accumulate(f, y, valid)
            if "fss" in p:
                p["fss"][n].accumulate(f, y, valid)
        p["spread_skill"].accumulate(x, y, valid)
        p["rank"].accumulate(x, y, valid)
        for n, f in {"truth": y, **forecasts}.items():
            p["wet"][n].accumulate(f, valid)
            p["hist"][n].accumulate(f, valid)
            if "spectra" in p:
                p["spectra"][n].accumulate(f, valid)
        self.n_steps += y.sizes[TIME]
        return self

    def _merge_state(self, other) -> None:
        if other.baseline_names != self.baseline_names:
            raise ValueError(f"cannot merge baselines {other.baseline_names} into {self.baseline_names}")
        for key, part in self.parts.items():
            if isinstance(part, dict):
                for n, acc in part.items():
                    acc.merge(other.parts[key][n])
            else:
                part.merge(other.parts[key])

    # -- results -----------------------------------------------------------------------------
    def compute(self) -> EnsembleMetrics:
        """Metrics of everything accumulated so far (the accumulator stays usable)."""
        if self.parts is None:
            raise ValueError("nothing accumulated yet")
        c, p = self.config, self.parts
        forecasts = [ENSEMBLE, *self.baseline_names]
        sources = ["truth", *forecasts]
        levels = np.asarray(c["quantile_levels"])
        m = p["spread_skill"].n_members

        crps_maps = xr.concat([p["crps"][n].compute() for n in forecasts], "forecast").assign_coords(forecast=forecasts)
        bias_maps = xr.concat([p["bias"][n].compute() for n in forecasts], "forecast").assign_coords(forecast=forecasts)
        wet_maps = xr.concat([p["wet"][n].compute() for n in sources], "source").assign_coords(source=sources)
        ss = p["spread_skill"].compute()
        gridded = xr.Dataset({"crps": crps_maps, "bias": bias_maps, "wet_frequency": wet_maps, **ss})
        if self.baseline_names:
            mae = crps_maps.sel(forecast=list(self.baseline_names)).rename(forecast="baseline")
            css = 1.0 - crps_maps.sel(forecast=ENSEMBLE, drop=True) / mae.where(mae > 0)
            gridded["crps_skill_score"] = css.transpose("baseline", ...)
            gridded["crps_skill_score"].attrs = {"units": "1", "long_name": "CRPS skill score vs baseline"}
        gridded["count"] = p["crps"][ENSEMBLE]._gridded(p["crps"][ENSEMBLE].count.copy(), "count",
                                                         {"units": "1", "long_name": "valid (time) points"})

        crps = {n: p["crps"][n].mean() for n in forecasts}
        scalars = {
            "n_times": int(self.n_steps),
            "n_members": int(m),
            "baselines": list(self.baseline_names),
            "n_points": int(p["crps"][ENSEMBLE].count.sum()),
            "crps": crps,
            "crps_skill_score": {n: (1.0 - crps[ENSEMBLE] / crps[n]) if crps[n] > 0 else float("nan")
                                 for n in self.baseline_names},
            **p["spread_skill"].scalars(),
            "rank_histogram": [int(v) for v in p["rank"].counts],
            "bias": {n: p["bias"][n].mean() for n in forecasts},
            "wet_frequency": {}, "quantiles": {},
        }
        wet_pooled = xr.concat([p["wet"][n].pooled() for n in sources], "source").assign_coords(source=sources)
        quant = xr.concat([p["hist"][n].compute(levels) for n in sources], "source").assign_coords(source=sources)
        for n in sources:
            scalars["wet_frequency"][n] = {_key(t): float(v) for t, v in zip(c["wet_thresholds"],
                                                                             wet_pooled.sel(source=n).values)}
            scalars["quantiles"][n] = {_key(q): float(v) for q, v in zip(levels, quant.sel(source=n).values)}
        curves = xr.Dataset({"quantile_value": quant, "wet_frequency": wet_pooled,
                             "rank_histogram": p["rank"].compute()})

        if "spectra" in p:
            member_spec = p["spectra"][ENSEMBLE].compute()
            spec = xr.concat([member_spec.mean(c["member_dim"]) if n == ENSEMBLE else p["spectra"][n].compute()
                              for n in sources], "source").assign_coords(source=sources)
            spec.attrs = member_spec.attrs
            truth_spec = spec.sel(source="truth", drop=True)
            fc_spec = spec.sel(source=forecasts).rename(source="forecast")
            bands = spectral_band_scores(fc_spec, truth_spec, c["bands_km"])
            curves["spectrum"] = spec
            curves["member_spectrum"] = member_spec
            curves["spectral_ratio"] = spectral_ratio(fc_spec, truth_spec)
            curves["lsd_db"] = bands["lsd_db"].transpose("forecast", "band")
            curves["mean_spectral_ratio"] = bands["mean_ratio"].transpose("forecast", "band")
            for key, var in (("lsd_db", "lsd_db"), ("mean_spectral_ratio", "mean_ratio")):
                scalars[key] = {n: {str(b): float(v) for b, v in zip(bands.band.values, bands[var].sel(forecast=n).values)}
                                for n in forecasts}
        if "fss" in p:
            f = xr.concat([p["fss"][n].compute() for n in forecasts], "forecast").assign_coords(forecast=forecasts)
            curves["fss"] = f.rename(threshold="fss_threshold")
            scalars["fss"] = {n: {_key(t): {str(int(s)): float(f.sel(forecast=n, threshold=t, scale=s))
                                            for s in c["fss_scales"]} for t in c["fss_thresholds"]}
                              for n in forecasts}
        return EnsembleMetrics(scalars=scalars, gridded=gridded, curves=curves)


def _accumulate_chunk(chunk: xr.Dataset, template: EnsembleAccumulator) -> EnsembleAccumulator:
    """Worker task: a fresh accumulator over one chunk (loaded with dask's synchronous scheduler)."""
    import dask

    with dask.config.set(scheduler="synchronous"):
        chunk = chunk.load()
    return template.empty().accumulate(chunk)


def evaluate_chunks(data: xr.Dataset, accumulator: EnsembleAccumulator | None = None, *, time_chunk: int = 24,
                    client=None) -> EnsembleAccumulator:
    """Accumulate ``data`` chunk by chunk over time, serially or on a ``dask.distributed`` client.

    Parameters
    ----------
    data : xarray.Dataset
        The ensemble Dataset layout (:func:`ensemble_dataset`); numpy- or dask-backed (lazy data
        are loaded one chunk at a time, on the worker when ``client`` is given).
    accumulator : EnsembleAccumulator or None
        Template giving the configuration (its own state is ignored and left untouched); None
        for the defaults.
    time_chunk : int
        Time steps per chunk.
    client : distributed.Client or None
        With a client: ``client.map`` one task per chunk (each returns an accumulator, pickled
        back), then merge them here.  Without: one accumulator fed chunk by chunk.  Both give the
        same result (see :mod:`ppviz.metrics.accumulate`, "Exactness").

    Returns
    -------
    EnsembleAccumulator
        Holding all chunks; call ``.compute()`` for the metrics, or ``.merge()`` more runs.
    """
    template = (accumulator or EnsembleAccumulator()).empty()
    n = int(time_chunk)
    if n < 1:
        raise ValueError(f"time_chunk must be >= 1, got {time_chunk}")
    t = data.sizes[TIME]
    chunks = [data.isel({TIME: slice(i, min(i + n, t))}) for i in range(0, t, n)]
    if client is None:
        acc = template.empty()
        for chunk in chunks:
            acc.accumulate(chunk.load())
        return acc
    futures = client.map(_accumulate_chunk, chunks, template=template, pure=False)
    acc = template.empty()
    for part in client.gather(futures):
        acc.merge(part)
    return acc
