"""Streaming accumulators: metrics of long runs, one time chunk at a time, mergeable.

Protocol (after pysteps' verification accumulators)::

    acc = SomeAccumulator(**config)      # init: configuration only, no data
    acc.accumulate(batch...)             # add a time chunk (any number of times)
    acc.merge(other)                     # add another accumulator's chunks (same config)
    result = acc.compute()               # the metric; acc stays usable
    acc.empty()                          # a fresh accumulator with the same config

Accumulators are plain Python objects holding numpy arrays, hence picklable: they can run on
``dask.distributed`` workers and be merged by the client (:func:`ppviz.metrics.suite.evaluate_chunks`).

Exactness.  Chunks split the *time* axis.  Every quantity is first computed per time step (which
does not depend on the chunking), then summed over time: integer counts exactly, floating sums
with error-free transformations (:class:`ExactSum`, a double-double sum), so accumulating chunks
in any grouping and merging gives bit-for-bit the result of one pass over all the data (up to
a final rounding that differs only in pathological ties, probability ~1e-14 per value).

Inputs follow the metric modules' contracts: fields are ``xarray.DataArray`` in mm/h with dims
``(time, lat, lon)`` or, for an ensemble, ``(member, time, lat, lon)`` (any order; the two dims
that are neither ``time`` nor the member dim are the spatial ones, in their order in the array).
Numpy arrays are read as ``(member, time, lat, lon)`` if 4-D, else ``(time, lat, lon)[-ndim:]``.
A missing ``time`` dim means one step.  ``valid`` (optional, dims ``(time, lat, lon)``) restricts
the points used; NaN points are always skipped (policies per class).  Dry cells (0 mm/h) are
ordinary values, as in the metric modules: they enter sums and histograms (bin 0), are never wet
and tie in ranks (broken at random).
"""

from __future__ import annotations

import numpy as np
import xarray as xr

from ppviz.data.grid import grid_spacing_km
from ppviz.metrics._common import MEMBER
from ppviz.metrics._stream import Accumulator, ExactSum, _batch, _copy_state, _Grid, _valid
from ppviz.metrics.distribution import DEFAULT_QUANTILE_LEVELS, DEFAULT_WET_THRESHOLDS
from ppviz.metrics.ensemble import _crps_sorted, _ranks_numpy
from ppviz.metrics.errors import DEFAULT_FSS_SCALES, DEFAULT_FSS_THRESHOLDS, fractions
from ppviz.spectral import rapsd

__all__ = [
    "Accumulator", "BiasAccumulator", "CRPSAccumulator", "ExactSum", "FSSAccumulator", "QuantileHistogramAccumulator",
    "RankHistogramAccumulator", "SpectrumAccumulator", "SpreadSkillAccumulator", "WetCountAccumulator",
]


class _GriddedMean(Accumulator):
    """Per-cell sums and counts over time (and members)."""

    def _init_state(self, grid: _Grid) -> None:
        shape = (grid.y.size, grid.x.size)
        self.sum = ExactSum(shape)
        self.count = np.zeros(shape, dtype=np.int64)

    def _add(self, grid: _Grid, values: np.ndarray, ok: np.ndarray, weight: int = 1) -> None:
        """``values`` (T, Y, X), used where ``ok``; ``weight`` values per point (members)."""
        if self.n_steps == 0:
            self._init_state(grid)
        self._use_grid(grid)
        self.sum.add_steps(np.where(ok, values, 0.0))
        self.count += ok.sum(axis=0) * weight
        self.n_steps += values.shape[0]

    def _merge_state(self, other) -> None:
        self.sum.merge(other.sum)
        self.count += other.count

    def mean_map(self) -> np.ndarray:
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(self.count > 0, self.sum.value / np.maximum(self.count, 1), np.nan)

    def mean(self) -> float:
        """Pooled mean over every accumulated point (NaN if none)."""
        if self.n_steps == 0 or self.count.sum() == 0:
            return float("nan")
        return float(self.sum.value.sum() / self.count.sum())


class CRPSAccumulator(_GriddedMean):
    """Per-cell sums of the CRPS: the ensemble CRPS, or the absolute error of a deterministic forecast.

    ``accumulate(forecast, truth, valid=None)``: ``forecast`` with the member dim is scored by
    :func:`ppviz.metrics.ensemble.crps_ensemble` (``method``), without it by ``|forecast - truth|``
    (its CRPS).  Points where the truth or any member is NaN are skipped.  ``compute()`` gives
    the ``(lat, lon)`` mean map (mm/h; NaN where no point), ``mean()`` the pooled mean.
    """

    def __init__(self, *, member_dim: str = MEMBER, method: str = "fair"):
        super().__init__(member_dim=member_dim, method=method)

    def accumulate(self, forecast, truth, valid=None):
        f = _batch(forecast, self.config["member_dim"])
        y = _batch(truth, self.config["member_dim"])
        yv = y.values[:, 0]
        if f.ensemble:
            if self.config["method"] == "fair" and f.values.shape[1] < 2:
                raise ValueError("the fair CRPS needs at least 2 members")
            s = _crps_sorted(f.member_last, yv, fair=self.config["method"] == "fair")
        else:
            s = np.abs(f.values[:, 0] - yv)
        ok = np.isfinite(s) & _valid(valid, s.shape)
        self._add(f.grid, s, ok)
        return self

    def compute(self) -> xr.DataArray:
        return self._gridded(self.mean_map(), "crps", {"units": "mm/h", "long_name": "mean CRPS"})


class BiasAccumulator(_GriddedMean):
    """Per-cell sums of ``forecast - truth`` (members pooled); ``compute()`` the mean bias map, mm/h."""

    def __init__(self, *, member_dim: str = MEMBER):
        super().__init__(member_dim=member_dim)

    def accumulate(self, forecast, truth, valid=None):
        f = _batch(forecast, self.config["member_dim"])
        y = _batch(truth, self.config["member_dim"])
        d = f.member_last - y.values[:, 0, :, :, None]  # (T, Y, X, K)
        ok = np.isfinite(d).all(axis=-1) & _valid(valid, d.shape[:3])
        self._add(f.grid, np.where(ok[..., None], d, 0.0).sum(axis=-1), ok, weight=d.shape[-1])
        return self

    def compute(self) -> xr.DataArray:
        return self._gridded(self.mean_map(), "bias", {"units": "mm/h", "long_name": "mean bias (forecast - truth)"})


class SpreadSkillAccumulator(Accumulator):
    """Sums of the ensemble variance (ddof=1) and of the squared error of the ensemble mean.

    ``compute()`` gives a Dataset of ``(lat, lon)`` maps ``spread = sqrt((M+1)/M mean var)``,
    ``rmse`` (of the ensemble mean) and ``spread_skill_ratio = spread / rmse``;
    :meth:`scalars` the same pooled over the domain (see
    :func:`ppviz.metrics.ensemble.spread_skill_ratio`).
    """

    def __init__(self, *, member_dim: str = MEMBER):
        super().__init__(member_dim=member_dim)
        self.var = self.se = None
        self.count = None
        self.n_members = 0

    def accumulate(self, members, truth, valid=None):
        x = _batch(members, self.config["member_dim"])
        y = _batch(truth, self.config["member_dim"])
        if not x.ensemble or x.values.shape[1] < 2:
            raise ValueError("the spread-skill ratio needs an ensemble of at least 2 members")
        xl = x.member_last
        m = xl.shape[-1]
        mean = xl.sum(axis=-1) / m
        var = ((xl - mean[..., None]) ** 2).sum(axis=-1) / (m - 1)
        se = (mean - y.values[:, 0]) ** 2
        ok = np.isfinite(se) & np.isfinite(var) & _valid(valid, se.shape)
        if self.n_steps == 0:
            shape = se.shape[1:]
            self.var, self.se = ExactSum(shape), ExactSum(shape)
            self.count, self.n_members = np.zeros(shape, np.int64), m
        elif m != self.n_members:
            raise ValueError(f"batch has {m} members, accumulated {self.n_members}")
        self._use_grid(x.grid)
        self.var.add_steps(np.where(ok, var, 0.0))
        self.se.add_steps(np.where(ok, se, 0.0))
        self.count += ok.sum(axis=0)
        self.n_steps += se.shape[0]
        return self

    def _merge_state(self, other) -> None:
        if other.n_members != self.n_members:
            raise ValueError(f"cannot merge {other.n_members} members into {self.n_members}")
        self.var.merge(other.var)
        self.se.merge(other.se)
        self.count += other.count

    def _ratio(self, var_sum, se_sum, n):
        m = self.n_members
        with np.errstate(invalid="ignore", divide="ignore"):
            spread = np.sqrt(np.where(n > 0, var_sum / np.maximum(n, 1), np.nan) * (m + 1) / m)
            rmse = np.sqrt(np.where(n > 0, se_sum / np.maximum(n, 1), np.nan))
            return spread, rmse, spread / rmse

    def compute(self) -> xr.Dataset:
        spread, rmse, ratio = self._ratio(self.var.value, self.se.value, self.count)
        return xr.Dataset({
            "spread": self._gridded(spread, "spread",
                                    {"units": "mm/h", "long_name": "sqrt((M+1)/M mean ensemble variance)"}),
            "rmse": self._gridded(rmse, "rmse", {"units": "mm/h", "long_name": "RMSE of the ensemble mean"}),
            "spread_skill_ratio": self._gridded(ratio, "spread_skill_ratio", {"units": "1"}),
        })

    def scalars(self) -> dict[str, float]:
        if self.n_steps == 0:
            return {"spread": float("nan"), "rmse": float("nan"), "spread_skill_ratio": float("nan")}
        spread, rmse, ratio = self._ratio(self.var.value.sum(), self.se.value.sum(), np.int64(self.count.sum()))
        return {"spread": float(spread), "rmse": float(rmse), "spread_skill_ratio": float(ratio)}


class RankHistogramAccumulator(Accumulator):
    """Counts of the truth's rank among the members, ties broken at random (seeded per time step).

    Same ranks as :func:`ppviz.metrics.ensemble.rank_histogram` with the same ``seed`` (draws are
    keyed by the time stamps, so chunking over time does not change them).  ``compute()``: counts,
    dims ('rank',), int64.
    """

    def __init__(self, *, member_dim: str = MEMBER, seed: int = 0):
        super().__init__(member_dim=member_dim, seed=int(seed))
        self.counts = None

    def accumulate(self, members, truth, valid=None):
        x = _batch(members, self.config["member_dim"])
        y = _batch(truth, self.config["member_dim"])
        if not x.ensemble:
            raise ValueError(f"members need the member dim {self.config['member_dim']!r}")
        r, ok = _ranks_numpy(x.member_last, y.values[:, 0], self.config["seed"], y.keys)
        ok &= _valid(valid, ok.shape)
        m = x.values.shape[1]
        if self.n_steps == 0:
            self.counts = np.zeros(m + 1, dtype=np.int64)
        elif self.counts.size != m + 1:
            raise ValueError(f"batch has {m} members, accumulated {self.counts.size - 1}")
        self._use_grid(x.grid)
        self.counts += np.bincount(r[ok].ravel(), minlength=m + 1)
        self.n_steps += r.shape[0]
        return self

    def _merge_state(self, other) -> None:
        if other.counts.size != self.counts.size:
            raise ValueError("cannot merge rank histograms of different ensemble sizes")
        self.counts += other.counts

    def compute(self) -> xr.DataArray:
        c = self.counts if self.counts is not None else np.zeros(0, np.int64)
        return xr.DataArray(c.copy(), dims="rank", coords={"rank": np.arange(c.size)}, name="rank_histogram",
                            attrs={"units": "count", "seed": self.config["seed"]})


class WetCountAccumulator(Accumulator):
    """Counts of values ``>= threshold`` per cell (members pooled) and of valid values.

    ``compute()``: wet frequency maps, dims ('threshold', lat, lon), in [0, 1] (NaN where no
    valid value); :meth:`pooled` the domain frequencies, dims ('threshold',).  As
    :func:`ppviz.metrics.distribution.wet_frequency`.
    """

    def __init__(self, *, thresholds=DEFAULT_WET_THRESHOLDS, member_dim: str = MEMBER):
        super().__init__(thresholds=tuple(float(t) for t in thresholds), member_dim=member_dim)
        self.wet = self.n = None

    def accumulate(self, field, valid=None):
        b = _batch(field, self.config["member_dim"])
        v = b.values  # (T, K, Y, X)
        ok = np.isfinite(v) & _valid(valid, (v.shape[0],) + v.shape[2:])[:, None]
        thr = np.asarray(self.config["thresholds"])
        if self.n_steps == 0:
            shape = v.shape[2:]
            self.wet = np.zeros((thr.size,) + shape, np.int64)
            self.n = np.zeros(shape, np.int64)
        self._use_grid(b.grid)
        for i, c in enumerate(thr):
            self.wet[i] += ((v >= c) & ok).sum(axis=(0, 1))
        self.n += ok.sum(axis=(0, 1))
        self.n_steps += v.shape[0]
        return self

    def _merge_state(self, other) -> None:
        self.wet += other.wet
        self.n += other.n

    def compute(self) -> xr.DataArray:
        thr = np.asarray(self.config["thresholds"])
        with np.errstate(invalid="ignore", divide="ignore"):
            f = np.where(self.n > 0, self.wet / np.maximum(self.n, 1), np.nan)
        return self._gridded(f, "wet_frequency", {"units": "1", "long_name": "wet frequency (value >= threshold)"},
                             lead={"threshold": thr})

    def pooled(self) -> xr.DataArray:
        thr = np.asarray(self.config["thresholds"])
        n = self.n.sum() if self.n is not None else 0
        f = self.wet.sum(axis=(1, 2)) / n if n else np.full(thr.size, np.nan)
        return xr.DataArray(f, dims="threshold", coords={"threshold": thr}, name="wet_frequency", attrs={"units": "1"})


class QuantileHistogramAccumulator(Accumulator):
    """Quantiles of a stream from a fixed histogram: exact zeros plus log-spaced bins.

    Exact quantiles cannot stream cheaply, so values are counted in ``n_log + 3`` fixed bins:
    bin 0 ``value <= 0`` (dry; negatives count as dry and are reported as 0), bin 1
    ``0 < value < lo``, ``n_log`` log-spaced bins ``[e_k, e_k+1)`` from ``lo`` to ``hi``
    (default 2000 bins over 1e-4 .. 1e3 mm/h, i.e. a factor ``10**(7/2000) = 1.0081`` per bin),
    and ``value >= hi``.  The exact maximum is kept as well.

    Quantiles follow ``np.quantile`` (method 'linear': ``h = (N-1) q``, interpolate between order
    statistics ``floor(h)`` and ``floor(h)+1``), each order statistic estimated inside its bin
    (geometric interpolation in a log bin, linear below ``lo``, linear between ``hi`` and the
    maximum above it).  Resolution: an estimate is within a factor ``10**(7/n_log)`` (0.81 %) of
    ``np.quantile`` when the order statistics involved are >= ``lo``; within ``lo`` (1e-4 mm/h)
    absolutely below it; exact for 0 and for q = 1.  NaN values are skipped.
    """

    def __init__(self, *, lo: float = 1e-4, hi: float = 1e3, n_log: int = 2000, member_dim: str = MEMBER):
        if not (0 < lo < hi) or int(n_log) < 1:
            raise ValueError(f"need 0 < lo < hi and n_log >= 1, got lo={lo}, hi={hi}, n_log={n_log}")
        super().__init__(lo=float(lo), hi=float(hi), n_log=int(n_log), member_dim=member_dim)
        self.counts = np.zeros(int(n_log) + 3, dtype=np.int64)
        self.vmax = -np.inf

    @property
    def edges(self) -> np.ndarray:
        """The ``n_log + 1`` edges of the log bins, mm/h."""
        c = self.config
        return np.logspace(np.log10(c["lo"]), np.log10(c["hi"]), c["n_log"] + 1)

    @property
    def resolution(self) -> float:
        """Relative width of a log bin, ``10**(log10(hi/lo)/n_log) - 1`` (0.0081 by default)."""
        c = self.config
        return float(10 ** (np.log10(c["hi"] / c["lo"]) / c["n_log"]) - 1)

    def accumulate(self, field, valid=None):
        b = _batch(field, self.config["member_dim"])
        v = b.values
        ok = np.isfinite(v) & _valid(valid, (v.shape[0],) + v.shape[2:])[:, None]
        v = v[ok]  # pooled: batches need not share a grid
        pos = v[v > 0]
        self.counts[0] += v.size - pos.size
        if pos.size:
            self.counts += np.bincount(np.searchsorted(self.edges, pos, side="right") + 1, minlength=self.counts.size)
        if v.size:
            self.vmax = max(self.vmax, float(v.max()))
        self.n_steps += b.values.shape[0]
        return self

    def _merge_state(self, other) -> None:
        self.counts += other.counts
        self.vmax = max(self.vmax, other.vmax)

    def _order_statistic(self, r: np.ndarray) -> np.ndarray:
        c = self.config
        cum = np.cumsum(self.counts)
        b = np.searchsorted(cum, r, side="right")
        p = (r - (cum[b] - self.counts[b]) + 0.5) / self.counts[b]
        llo, lhi = np.log10(c["lo"]), np.log10(c["hi"])
        dlog = (lhi - llo) / c["n_log"]
        val = np.select(
            [b == 0, b == 1, b <= c["n_log"] + 1],
            [0.0, c["lo"] * p, 10.0 ** (llo + (b - 2 + p) * dlog)],
            c["hi"] + p * (max(self.vmax, c["hi"]) - c["hi"]),
        )
        top = max(self.vmax, 0.0)
        return np.where(r == cum[-1] - 1, top, np.minimum(val, top))  # the maximum is kept exactly

    def quantiles(self, levels=DEFAULT_QUANTILE_LEVELS) -> np.ndarray:
        """Estimated quantiles at ``levels`` (probabilities), mm/h; NaN if nothing was counted."""
        q = np.atleast_1d(np.asarray(levels, dtype=np.float64))
        n = int(self.counts.sum())
        if n == 0:
            return np.full(q.shape, np.nan)
        h = (n - 1) * q
        j = np.floor(h).astype(np.int64)
        a = self._order_statistic(j)
        b = self._order_statistic(np.minimum(j + 1, n - 1))
        t = h - j
        return np.where(t >= 0.5, b - (b - a) * (1 - t), a + (b - a) * t)

    def compute(self, levels=DEFAULT_QUANTILE_LEVELS) -> xr.DataArray:
        q = np.atleast_1d(np.asarray(levels, dtype=np.float64))
        return xr.DataArray(self.quantiles(q), dims="quantile", coords={"quantile": q}, name="quantile",
                            attrs={"units": "mm/h", "long_name": "quantile (log-histogram estimate)",
                                   "relative_resolution": self.resolution})


class SpectrumAccumulator(Accumulator):
    """Sums of the RAPSD (:func:`ppviz.spectral.rapsd`) of every field, per member.

    A time step counts only if every member's field is finite there and ``valid`` (if given) is
    all True at that step; other steps are skipped and counted in ``n_skipped`` (unlike
    :func:`ppviz.metrics.spectra.mean_spectrum`, which raises on NaN).  ``dx_km=None`` derives
    the spacing from the latitude coordinate (as :func:`ppviz.spectral.rapsd_xr`).
    ``compute()``: mean spectrum, dims (member, wavenumber) for an ensemble, (wavenumber,)
    otherwise; coordinate ``wavelength_km``; (mm/h)**2 km**2.
    """

    def __init__(self, *, dx_km: float | None = None, window: str | None = None, detrend: str | None = None,
                 member_dim: str = MEMBER):
        super().__init__(dx_km=dx_km, window=window, detrend=detrend, member_dim=member_dim)
        self.sum = None
        self.wavenumber = None
        self.ensemble = None
        self.members = None
        self.n_used = 0
        self.n_skipped = 0

    def _dx(self, grid: _Grid) -> float:
        if self.config["dx_km"] is not None:
            return float(self.config["dx_km"])
        if (dx := grid_spacing_km(grid.y)) is None:
            raise ValueError("cannot derive dx_km from the latitude coordinate; pass dx_km")
        return dx

    def accumulate(self, field, valid=None):
        b = _batch(field, self.config["member_dim"])
        v = b.values
        use = np.isfinite(v).all(axis=(1, 2, 3)) & _valid(valid, (v.shape[0],) + v.shape[2:]).all(axis=(1, 2))
        if self.n_steps == 0:
            self.ensemble, self.members = b.ensemble, b.members
        elif b.ensemble != self.ensemble or (self.sum is not None and self.sum.hi.shape[0] != v.shape[1]):
            raise ValueError("batch members differ from those accumulated so far")
        self._use_grid(b.grid)
        if use.any():
            k, psd = rapsd(v[use], self._dx(b.grid), window=self.config["window"], detrend=self.config["detrend"])
            if self.sum is None:
                self.sum, self.wavenumber = ExactSum(psd.shape[1:]), k
            self.sum.add_steps(psd)
        self.n_used += int(use.sum())
        self.n_skipped += int((~use).sum())
        self.n_steps += v.shape[0]
        return self

    def _merge_state(self, other) -> None:
        if other.ensemble != self.ensemble:
            raise ValueError("cannot merge ensemble and single-field spectra")
        if other.sum is not None:
            if self.sum is None:
                self.sum, self.wavenumber = _copy_state({"s": other.sum})["s"], other.wavenumber.copy()
            else:
                self.sum.merge(other.sum)
        self.n_used += other.n_used
        self.n_skipped += other.n_skipped

    def mean(self) -> np.ndarray:
        """Mean spectrum, shape (K, nbins) (K = 1 without members)."""
        if self.sum is None:
            raise ValueError("no finite time step was accumulated")
        return self.sum.value / self.n_used

    def compute(self) -> xr.DataArray:
        psd = self.mean()
        k = self.wavenumber
        coords = {"wavenumber": ("wavenumber", k, {"units": "cycles/km"}),
                  "wavelength_km": ("wavenumber", 1.0 / k, {"units": "km"})}
        if self.ensemble:
            md = self.config["member_dim"]
            da = xr.DataArray(psd, dims=(md, "wavenumber"), coords={md: self.members, **coords})
        else:
            da = xr.DataArray(psd[0], dims="wavenumber", coords=coords)
        da.attrs = {"units": "(mm/h)^2 km^2", "long_name": "mean RAPSD", "n_steps_used": self.n_used,
                    "n_steps_skipped": self.n_skipped}
        da.name = "spectrum"
        return da


class FSSAccumulator(Accumulator):
    """Sums of the FSS terms (:func:`ppviz.metrics.errors.fss_components`) over time steps.

    ``accumulate(forecast, truth, valid=None)``; members are pooled as separate forecasts; NaN
    cells are non-events and excluded from the sums.  ``compute()``: FSS, dims
    ('threshold', 'scale'); NaN where neither field has an event.
    """

    def __init__(self, *, thresholds=DEFAULT_FSS_THRESHOLDS, scales=DEFAULT_FSS_SCALES, member_dim: str = MEMBER):
        super().__init__(thresholds=tuple(float(t) for t in thresholds), scales=tuple(int(s) for s in scales),
                         member_dim=member_dim)
        shape = (len(self.config["thresholds"]), len(self.config["scales"]))
        self.mse = ExactSum(shape)
        self.ref = ExactSum(shape)

    def accumulate(self, forecast, truth, valid=None):
        f = _batch(forecast, self.config["member_dim"])
        y = _batch(truth, self.config["member_dim"])
        fv, yv = f.values, y.values  # (T, K, Y, X), (T, 1, Y, X)
        t = fv.shape[0]
        ok = np.isfinite(fv) & np.isfinite(yv) & _valid(valid, (t,) + fv.shape[2:])[:, None]
        thr, sc = self.config["thresholds"], self.config["scales"]
        mse = np.zeros((t, len(thr), len(sc)))
        ref = np.zeros((t, len(thr), len(sc)))
        for i, c in enumerate(thr):
            bf, bo = fv >= c, yv >= c
            for j, s in enumerate(sc):
                pf, po = fractions(bf, s), fractions(bo, s)
                mse[:, i, j] = np.where(ok, (pf - po) ** 2, 0.0).reshape(t, -1).sum(axis=1)
                ref[:, i, j] = np.where(ok, pf * pf + po * po, 0.0).reshape(t, -1).sum(axis=1)
        self._use_grid(f.grid)
        self.mse.add_steps(mse)
        self.ref.add_steps(ref)
        self.n_steps += t
        return self

    def _merge_state(self, other) -> None:
        self.mse.merge(other.mse)
        self.ref.merge(other.ref)

    def compute(self) -> xr.DataArray:
        ref = self.ref.value
        with np.errstate(invalid="ignore", divide="ignore"):
            f = np.where(ref > 0, 1.0 - self.mse.value / np.where(ref > 0, ref, 1.0), np.nan)
        return xr.DataArray(f, dims=("threshold", "scale"),
                            coords={"threshold": np.asarray(self.config["thresholds"]),
                                    "scale": np.asarray(self.config["scales"])},
                            name="fss", attrs={"units": "1", "long_name": "fractions skill score"})
