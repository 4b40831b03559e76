"""Probabilistic scores of an ensemble against truth: CRPS, skill score, rank histogram, spread-skill.

Contract shared by every function here
--------------------------------------
* ``members``: ``xarray.DataArray`` with a member dim (default ``'member'``) plus the dims of
  ``truth``, e.g. ``(member, time, lat, lon)``; a numpy array gets dims
  ``(member,) + (time, lat, lon)[-(ndim - 1):]``.
* ``truth`` (and a deterministic ``baseline``): the same dims without ``member``, e.g.
  ``(time, lat, lon)``; numpy: ``(time, lat, lon)[-ndim:]``.  Coordinates must match exactly.
* Units: precipitation in mm/h; CRPS, MAE, spread and RMSE in mm/h; skill scores, ranks and
  ratios are dimensionless.
* NaN policy: a point (one value of the non-member dims) where ``truth`` or *any* member (or the
  baseline, for skill scores) is NaN is invalid: pointwise scores are NaN there and reductions
  skip it.
* Dry-cell policy: dry cells (0 mm/h) are ordinary values.  They create ties (dry truth, dry
  members): the CRPS handles ties exactly; the rank histogram breaks them at random (see
  :func:`truth_ranks`), which keeps the histogram of a calibrated ensemble flat.
"""

from __future__ import annotations

import numpy as np
import xarray as xr

from ppviz.metrics._common import MEMBER, TIME, as_ensemble, as_field, resolve_dims

__all__ = [
    "CRPS_METHODS", "absolute_error", "crps_ensemble", "crps_ensemble_pairwise", "crps_ensemble_scores",
    "crps_skill_score", "rank_histogram", "spread_skill_ratio", "tie_draws", "time_keys", "truth_ranks",
]

CRPS_METHODS = ("fair", "ecdf")


def _check_method(method: str) -> None:
    if method not in CRPS_METHODS:
        raise ValueError(f"method={method!r} is not supported; allowed values: {list(CRPS_METHODS)}")


def _inputs(members, truth, member_dim: str):
    x = as_ensemble(members, member_dim)
    y = as_field(truth, "truth")
    if member_dim in y.dims:
        raise ValueError(f"truth must not have the member dim {member_dim!r}")
    extra = [d for d in y.dims if d not in x.dims]
    if extra:
        raise ValueError(f"truth has dims {extra} that members {x.dims} lack")
    return x, y


def _crps_sorted(x: np.ndarray, y: np.ndarray, fair: bool) -> np.ndarray:
    """CRPS over the last axis of ``x`` (members) against ``y``, O(M log M) per point.

    With the members sorted, ``x_(1) <= ... <= x_(M)``, the pairwise sum is
    ``sum_ij |x_i - x_j| = 2 sum_k (2k - M - 1) x_(k)`` (each pair counted with both signs).
    """
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    m = x.shape[-1]
    k = m * (m - 1) if fair else m * m
    skill = np.mean(np.abs(x - y[..., None]), axis=-1)
    # sum_k (2k - M - 1) x_(k), with the k-th and (M+1-k)-th terms paired:
    # sum_{k <= M/2} (M + 1 - 2k) (x_(M+1-k) - x_(k)) -- non-negative terms, no cancellation,
    # exactly 0 for tied members.  An elementwise product and a sum over the last axis (not a
    # BLAS matmul), so each point's rounding is independent of the batch it comes in.
    xs = np.sort(x, axis=-1)
    h = m // 2
    w = m + 1.0 - 2.0 * np.arange(1, h + 1)
    half_pair_sum = np.sum((xs[..., ::-1][..., :h] - xs[..., :h]) * w, axis=-1)  # = sum_ij |x_i - x_j| / 2
    return skill - half_pair_sum / k


def crps_ensemble(members, truth, *, member_dim: str = MEMBER, method: str = "fair") -> xr.DataArray:
    """Pointwise CRPS of an ensemble, vectorised (sorted-members formula).

    ``CRPS = 1/M sum_i |x_i - y| - 1/(2K) sum_ij |x_i - x_j|`` with ``K = M(M-1)`` for the
    *fair* CRPS (Ferro 2014; unbiased for the CRPS of the distribution the members are drawn
    from) or ``K = M**2`` for the CRPS of the ensemble's empirical CDF (``method='ecdf'``).  The
    pair sum is computed from the sorted members, ``sum_ij |x_i - x_j| = 2 sum_k (2k - M - 1)
    x_(k)``, in O(M log M) instead of O(M**2); :func:`crps_ensemble_pairwise` is the brute-force
    reference and :func:`crps_ensemble_scores` the same score from the ``scores`` library.

    Parameters
    ----------
    members : xarray.DataArray, dims (member, ...)
        Ensemble, mm/h.  ``method='fair'`` needs at least 2 members.
    truth : xarray.DataArray, dims (...)
        Observation, mm/h; broadcast along ``member_dim``.
    member_dim : str
    method : {'fair', 'ecdf'}

    Returns
    -------
    xarray.DataArray, dims of ``members`` without ``member_dim``
        CRPS in mm/h (float64), >= 0 for 'ecdf'; the fair CRPS can be slightly negative for
        a single point (it is an unbiased estimate).  NaN where ``truth`` or any member is NaN.
        A perfect ensemble (all members equal to truth) scores exactly 0.
    """
    _check_method(method)
    x, y = _inputs(members, truth, member_dim)
    m = x.sizes[member_dim]
    if method == "fair" and m < 2:
        raise ValueError(f"the fair CRPS needs at least 2 members, got {m}")
    out = xr.apply_ufunc(
        _crps_sorted, x, y, kwargs={"fair": method == "fair"},
        input_core_dims=[[member_dim], []], dask="parallelized", output_dtypes=[np.float64],
    )
    out.attrs = {"units": "mm/h", "long_name": f"CRPS ({method})"}
    out.name = "crps"
    return out


def crps_ensemble_pairwise(members, truth, *, member_dim: str = MEMBER, method: str = "fair") -> xr.DataArray:
    """Reference CRPS by the literal pairwise formula, O(M**2) memory and time per point.

    ``1/M sum_i |x_i - y| - 1/(2K) sum_ij |x_i - x_j|``, ``K = M(M-1)`` (fair) or ``M**2``
    (ecdf).  Same contract as :func:`crps_ensemble`; for tests and small inputs.
    """
    _check_method(method)
    x, y = _inputs(members, truth, member_dim)
    m = x.sizes[member_dim]
    if method == "fair" and m < 2:
        raise ValueError(f"the fair CRPS needs at least 2 members, got {m}")
    k = m * (m - 1) if method == "fair" else m * m

    def brute(xv, yv):
        xv = np.asarray(xv, dtype=np.float64)
        yv = np.asarray(yv, dtype=np.float64)
        skill = np.abs(xv - yv[..., None]).sum(-1) / m
        pairs = np.abs(xv[..., :, None] - xv[..., None, :]).sum((-2, -1))
        return skill - pairs / (2.0 * k)

    out = xr.apply_ufunc(brute, x, y, input_core_dims=[[member_dim], []])
    out.attrs = {"units": "mm/h", "long_name": f"CRPS ({method}, pairwise)"}
    out.name = "crps"
    return out


def crps_ensemble_scores(members, truth, *, member_dim: str = MEMBER, method: str = "fair",
                         preserve_dims="all", reduce_dims=None) -> xr.DataArray:
    """CRPS from the ``scores`` library, ``scores.probability.crps_for_ensemble``.

    A thin wrapper for cross-checking and for ``scores``' weighting and reductions: by default
    it preserves all dims, i.e. returns the pointwise CRPS like :func:`crps_ensemble`.  Pass
    ``preserve_dims=None, reduce_dims=...`` to reduce as ``scores`` does (its NaN handling
    then applies, not this module's).

    Returns
    -------
    xarray.DataArray
        CRPS, mm/h.
    """
    from scores.probability import crps_for_ensemble

    _check_method(method)
    x, y = _inputs(members, truth, member_dim)
    if reduce_dims is not None:
        preserve_dims = None
    out = crps_for_ensemble(x, y, member_dim, method=method, preserve_dims=preserve_dims,
                            reduce_dims=reduce_dims)
    out.attrs = {"units": "mm/h", "long_name": f"CRPS ({method}, scores library)"}
    return out


def absolute_error(forecast, truth) -> xr.DataArray:
    """``|forecast - truth|`` pointwise, mm/h: the CRPS of a deterministic forecast.

    NaN where either is NaN.  Dims: the broadcast of both (coordinates must match).
    """
    f = as_field(forecast, "forecast")
    y = as_field(truth, "truth")
    out = abs(f - y)
    out.attrs = {"units": "mm/h", "long_name": "absolute error (CRPS of a deterministic forecast)"}
    out.name = "absolute_error"
    return out


def crps_skill_score(members, truth, baseline, *, member_dim: str = MEMBER, method: str = "fair",
                     dims=None) -> xr.DataArray:
    """CRPS skill score of an ensemble against a deterministic baseline.

    ``CRPSS = 1 - mean(CRPS_ensemble) / mean(|baseline - truth|)``: the CRPS of a deterministic
    forecast is its absolute error, so the reference score is the baseline's MAE.  1 is perfect,
    0 no better than the baseline, negative worse.

    Parameters
    ----------
    members : xarray.DataArray, dims (member, ...)
    truth, baseline : xarray.DataArray, dims (...)
        mm/h.
    member_dim, method : see :func:`crps_ensemble`.
    dims : None, 'all', str or sequence of str
        Dims averaged; None averages all (a scalar).  ``dims=('time',)`` gives a skill map.

    Returns
    -------
    xarray.DataArray, the kept dims
        Dimensionless.  Both means are taken over the same points: those where truth, every
        member and the baseline are finite.  NaN where the baseline's MAE is 0 (a perfect
        baseline leaves no room for skill) or there is no valid point.
    """
    crps = crps_ensemble(members, truth, member_dim=member_dim, method=method)
    ae = absolute_error(baseline, truth)
    valid = crps.notnull() & ae.notnull()
    dims = resolve_dims(crps, dims, None)
    num = crps.where(valid).mean(dims)
    den = ae.where(valid).mean(dims)
    out = 1.0 - num / den.where(den > 0)
    out.attrs = {"units": "1", "long_name": "CRPS skill score vs deterministic baseline"}
    out.name = "crps_skill_score"
    return out


def time_keys(da: xr.DataArray) -> np.ndarray | None:
    """Integer key of each time step of ``da`` (None without a ``time`` dim).

    datetime64 / timedelta64 coordinates give their int64 nanoseconds, integer coordinates
    themselves, float coordinates their bit pattern; without a ``time`` coordinate the position
    index.  Keys seed the random tie-breaking of :func:`truth_ranks`, so that the same time stamp
    always gets the same draws however the data are chunked.
    """
    if TIME not in da.dims:
        return None
    if TIME not in da.coords:
        return np.arange(da.sizes[TIME], dtype=np.int64)
    v = np.asarray(da[TIME].values)
    if np.issubdtype(v.dtype, np.datetime64) or np.issubdtype(v.dtype, np.timedelta64):
        return v.astype("datetime64[ns]" if v.dtype.kind == "M" else "timedelta64[ns]").view(np.int64)
    if np.issubdtype(v.dtype, np.integer):
        return v.astype(np.int64)
    if np.issubdtype(v.dtype, np.floating):
        return v.astype(np.float64).view(np.int64)
    raise ValueError(f"cannot key time coordinate of dtype {v.dtype}; use datetimes or numbers")


def tie_draws(n_ties: np.ndarray, seed: int, keys: np.ndarray | None) -> np.ndarray:
    """Uniform integer draws in ``0 .. n_ties`` (inclusive), reproducible per time step.

    ``n_ties`` has the time steps on axis 0 when ``keys`` is given (one generator per step,
    seeded by ``SeedSequence([seed, key])``), else one generator for the whole array seeded by
    ``seed``.
    """
    n_ties = np.asarray(n_ties, dtype=np.int64)
    if keys is None:
        return np.random.default_rng(np.random.SeedSequence([int(seed) % 2**64, 0])).integers(0, n_ties + 1)
    out = np.empty(n_ties.shape, dtype=np.int64)
    for t, key in enumerate(np.asarray(keys, dtype=np.int64)):
        rng = np.random.default_rng(np.random.SeedSequence([int(seed) % 2**64, int(key) % 2**64]))
        out[t] = rng.integers(0, n_ties[t] + 1)
    return out


def _ranks_numpy(xv: np.ndarray, yv: np.ndarray, seed: int, keys) -> tuple[np.ndarray, np.ndarray]:
    """Ranks of ``yv`` (..., ) among ``xv`` (..., M) and the validity mask; time on axis 0 if keyed."""
    valid = np.isfinite(yv) & np.isfinite(xv).all(axis=-1)
    lt = np.sum(xv < yv[..., None], axis=-1)
    eq = np.sum(xv == yv[..., None], axis=-1)
    return lt + tie_draws(eq, seed, keys), valid


def _ranks_layout(members, truth, member_dim: str):
    x, y = _inputs(members, truth, member_dim)
    dims = [d for d in x.dims if d != member_dim]
    if TIME in dims:
        dims = [TIME] + [d for d in dims if d != TIME]
    y = y.broadcast_like(x.isel({member_dim: 0}, drop=True)).transpose(*dims)
    x = x.transpose(*dims, member_dim)
    return x, y, dims


def truth_ranks(members, truth, *, member_dim: str = MEMBER, seed: int = 0) -> xr.DataArray:
    """Rank of the truth among the members at each point, ties broken at random.

    ``rank = #(members < truth) + U``, ``U`` uniform on ``0 .. #(members == truth)``: the truth
    is placed at a random position among the members it ties with (Hamill 2001).  This matters
    for precipitation, where dry truth and dry members tie; without it a dry-biased ensemble and
    a calibrated one look alike.  Draws come from ``numpy.random.default_rng`` seeded by
    ``SeedSequence([seed, time key])`` per time step (see :func:`time_keys`), so the ranks of a
    time stamp do not depend on which other time steps are in the call (chunking over time is
    reproducible; chunking over space is not).

    Returns
    -------
    xarray.DataArray, dims of ``members`` without ``member_dim`` (time first)
        Rank in ``0 .. M`` as float64; NaN where truth or any member is NaN.
    """
    x, y, dims = _ranks_layout(members, truth, member_dim)
    keys = time_keys(y)
    r, valid = _ranks_numpy(np.asarray(x.values), np.asarray(y.values), seed, keys)
    out = xr.DataArray(np.where(valid, r, np.nan), dims=dims, coords=y.coords)
    out.attrs = {"units": "1", "long_name": "rank of truth among members (ties at random)", "seed": int(seed)}
    out.name = "rank"
    return out


def rank_histogram(members, truth, *, member_dim: str = MEMBER, seed: int = 0) -> xr.DataArray:
    """Rank histogram (Talagrand diagram) pooled over all points.

    Parameters
    ----------
    members : xarray.DataArray, dims (member, ...)
    truth : xarray.DataArray, dims (...)
    member_dim : str
    seed : int
        Seed of the tie-breaking draws (see :func:`truth_ranks`).

    Returns
    -------
    xarray.DataArray, dims ('rank',), int64
        Counts of the truth's rank ``0 .. M`` (M + 1 bins) over all valid points (NaN points are
        skipped).  Flat for a calibrated ensemble (including a perfect one, members == truth,
        whose ties spread uniformly); a zero-spread ensemble above the truth puts every count in
        rank 0, below it in rank M; a U shape means too little spread, a hump too much.
    """
    x, y, dims = _ranks_layout(members, truth, member_dim)
    m = x.sizes[member_dim]
    r, valid = _ranks_numpy(np.asarray(x.values), np.asarray(y.values), seed, time_keys(y))
    counts = np.bincount(r[valid].ravel(), minlength=m + 1).astype(np.int64)
    out = xr.DataArray(counts, dims="rank", coords={"rank": np.arange(m + 1)})
    out.attrs = {"units": "count", "long_name": "rank histogram", "seed": int(seed)}
    out.name = "rank_histogram"
    return out


def spread_skill_ratio(members, truth, *, member_dim: str = MEMBER, dims=None) -> xr.DataArray:
    """Spread-skill ratio ``sqrt((M+1)/M * mean(s**2)) / RMSE(ensemble mean)``.

    ``s**2`` is the unbiased (ddof=1) ensemble variance at each point and the RMSE is that of the
    ensemble mean against the truth.  For an ensemble whose members and truth are exchangeable
    draws from one distribution, ``E[(mean - y)**2] = (M+1)/M * E[s**2]`` (Fortin et al. 2014),
    so the ratio is 1; < 1 is under-dispersive, > 1 over-dispersive.

    Parameters
    ----------
    members : xarray.DataArray, dims (member, ...); at least 2 members.
    truth : xarray.DataArray, dims (...)
    dims : None, 'all', str or sequence of str
        Dims averaged (inside the square roots); None averages all (a scalar).

    Returns
    -------
    xarray.DataArray, the kept dims
        Dimensionless; NaN points skipped; inf where the ensemble mean is perfect but spread is
        not, NaN where both vanish.
    """
    x, y = _inputs(members, truth, member_dim)
    m = x.sizes[member_dim]
    if m < 2:
        raise ValueError(f"the spread-skill ratio needs at least 2 members, got {m}")
    valid = x.notnull().all(member_dim) & y.notnull()
    var = x.var(member_dim, ddof=1).where(valid)
    se = ((x.mean(member_dim) - y) ** 2).where(valid)
    dims = resolve_dims(se, dims, None)
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.sqrt(var.mean(dims) * (m + 1) / m) / np.sqrt(se.mean(dims))
    out.attrs = {"units": "1", "long_name": "spread-skill ratio sqrt((M+1)/M mean var) / RMSE(mean)"}
    out.name = "spread_skill_ratio"
    return out
