"""Known-answer tests of ppviz.metrics: each property below can fail if the metric is wrong."""

from __future__ import annotations

import json
import math
import pickle

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from scipy import stats

from ppviz import metrics as M
from ppviz.metrics.accumulate import ExactSum, QuantileHistogramAccumulator
from ppviz.constants import KM_PER_DEG

DX_KM = float(np.deg2rad(0.25) * 6371.0)


def _zero_inflated(rng, shape, wet=0.3):
    """Precipitation-like values: exact zeros (dry) and gamma-distributed rain."""
    return rng.gamma(0.6, 1.5, shape) * (rng.random(shape) < wet)


def _coords(t, y, x):
    return {"time": pd.date_range("2021-07-01", periods=t, freq="h"),
            "lat": 45.0 + 0.25 * np.arange(y), "lon": 5.0 + 0.25 * np.arange(x)}


def _case(seed=0, t=12, y=20, x=28, m=6, wet=0.3):
    """Members and truth drawn independently from one zero-inflated distribution, plus a baseline."""
    rng = np.random.default_rng(seed)
    c = _coords(t, y, x)
    truth = xr.DataArray(_zero_inflated(rng, (t, y, x), wet), dims=("time", "lat", "lon"), coords=c, name="tp")
    members = xr.DataArray(_zero_inflated(rng, (m, t, y, x), wet), dims=("member", "time", "lat", "lon"),
                           coords={**c, "member": np.arange(m)})
    baseline = truth.rolling(lon=3, center=True, min_periods=1).mean()
    return members, truth, baseline


def _chi2_p(counts):
    counts = np.asarray(counts, dtype=float)
    return stats.chisquare(counts).pvalue


# ----------------------------------------------------------------------------------------- CRPS
def test_crps_perfect_ensemble_is_zero():
    _, truth, _ = _case()
    members = xr.concat([truth] * 5, "member")
    for method in ("fair", "ecdf"):
        crps = M.crps_ensemble(members, truth, method=method)
        assert crps.dims == ("time", "lat", "lon")
        assert float(abs(crps).max()) == 0.0


def test_crps_known_values():
    # members {0, 2}, truth 1: mean |x - y| = 1, sum_ij |x_i - x_j| = 4
    members, truth = np.array([[0.0], [2.0]]), np.array([1.0])
    assert M.crps_ensemble(members, truth, method="fair").item() == pytest.approx(1 - 4 / (2 * 2))  # 0
    assert M.crps_ensemble(members, truth, method="ecdf").item() == pytest.approx(1 - 4 / (2 * 4))  # 0.5
    with pytest.raises(ValueError, match="at least 2 members"):
        M.crps_ensemble(np.ones((1, 3)), np.ones(3))


@pytest.mark.parametrize("m", [2, 3, 7, 20])
@pytest.mark.parametrize("method", ["fair", "ecdf"])
def test_crps_vectorised_equals_brute_force(m, method):
    members, truth, _ = _case(seed=m, t=3, y=9, x=11, m=m)  # zero-inflated: many ties
    fast = M.crps_ensemble(members, truth, method=method)
    brute = M.crps_ensemble_pairwise(members, truth, method=method)
    np.testing.assert_allclose(fast.values, brute.values, rtol=1e-12, atol=1e-14)
    assert float(fast.std()) > 0


def test_crps_matches_scores_library():
    members, truth, _ = _case(seed=3, t=4, y=10, x=12, m=8)
    for method in ("fair", "ecdf"):
        ours = M.crps_ensemble(members, truth, method=method)
        theirs = M.crps_ensemble_scores(members, truth, method=method)
        np.testing.assert_allclose(ours.values, theirs.transpose(*ours.dims).values, rtol=1e-12, atol=1e-14)
    pooled = M.crps_ensemble_scores(members, truth, reduce_dims="all")
    assert float(pooled) == pytest.approx(float(M.crps_ensemble(members, truth).mean()), rel=1e-12)


def test_crps_nan_policy():
    members, truth, _ = _case(t=2, y=6, x=7, m=4)
    members = members.copy()
    members[1, 0, 2, 3] = np.nan
    truth = truth.copy()
    truth[1, 4, 4] = np.nan
    crps = M.crps_ensemble(members, truth)
    assert np.isnan(crps[0, 2, 3]) and np.isnan(crps[1, 4, 4])
    assert int(crps.isnull().sum()) == 2


def test_crps_skill_score():
    members, truth, baseline = _case(seed=5)
    perfect = xr.concat([truth] * 4, "member")
    assert float(M.crps_skill_score(perfect, truth, baseline)) == pytest.approx(1.0)
    # an ensemble of copies of the baseline has CRPS = MAE of the baseline (ecdf) -> skill 0
    copies = xr.concat([baseline] * 4, "member")
    assert float(M.crps_skill_score(copies, truth, baseline, method="ecdf")) == pytest.approx(0.0, abs=1e-12)
    # a perfect baseline leaves no room for skill
    assert np.isnan(float(M.crps_skill_score(members, truth, truth)))
    css_map = M.crps_skill_score(members, truth, baseline, dims="time")
    assert css_map.dims == ("lat", "lon")


# ------------------------------------------------------------------------------ rank histogram
def test_rank_histogram_perfect_ensemble_is_flat():
    # members == truth: every member ties with the truth; random tie-breaking spreads the ranks
    _, truth, _ = _case(t=20)
    m = 5
    hist = M.rank_histogram(xr.concat([truth] * m, "member"), truth, seed=1)
    assert hist.dims == ("rank",) and hist.sizes["rank"] == m + 1
    assert int(hist.sum()) == truth.size
    assert _chi2_p(hist) > 0.01


@pytest.mark.parametrize("offset, rank", [(1.0, 0), (-1.0, "M")])
def test_rank_histogram_zero_spread_ensemble_is_degenerate(offset, rank):
    # zero spread, not equal to the truth: every rank at one extreme
    _, truth, _ = _case()
    m = 4
    hist = M.rank_histogram(xr.concat([truth + offset] * m, "member"), truth).values
    k = m if rank == "M" else rank
    assert hist[k] == truth.size and hist.sum() == truth.size


@pytest.mark.parametrize("wet", [1.0, 0.3])  # continuous; zero-inflated (ties between dry values)
def test_rank_histogram_exchangeable_ensemble_is_flat(wet):
    members, truth, _ = _case(seed=11, t=10, m=7, wet=wet)
    hist = M.rank_histogram(members, truth, seed=0)
    assert _chi2_p(hist) > 0.01
    if wet < 1:  # without random tie-breaking the dry ties would all pile at rank 0
        lt = (members < truth).sum("member")
        assert _chi2_p(np.bincount(lt.values.ravel(), minlength=8)) < 1e-6


def test_rank_histogram_reproducible_and_time_chunk_invariant():
    members, truth, _ = _case(seed=2, t=12, m=5)
    whole = M.rank_histogram(members, truth, seed=7)
    a = M.rank_histogram(members.isel(time=slice(0, 5)), truth.isel(time=slice(0, 5)), seed=7)
    b = M.rank_histogram(members.isel(time=slice(5, None)), truth.isel(time=slice(5, None)), seed=7)
    np.testing.assert_array_equal(whole.values, (a + b).values)
    np.testing.assert_array_equal(whole.values, M.rank_histogram(members, truth, seed=7).values)
    assert not np.array_equal(whole.values, M.rank_histogram(members, truth, seed=8).values)


def test_spread_skill_ratio():
    members, truth, _ = _case(seed=4, t=40, m=6, wet=1.0)
    ssr = float(M.spread_skill_ratio(members, truth))
    assert ssr == pytest.approx(1.0, abs=0.05)
    assert float(M.spread_skill_ratio(members * 0 + truth + 1.0, truth)) == pytest.approx(0.0, abs=1e-12)
    assert float(M.spread_skill_ratio(members * 0.3, truth)) < 0.6  # under-dispersive


# -------------------------------------------------------------------------------- distribution
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_pooled_quantiles_equal_numpy(dtype):
    members, truth, _ = _case(seed=6, t=30, m=5)
    members = members.astype(dtype)
    levels = M.DEFAULT_QUANTILE_LEVELS
    assert levels[-1] == 0.9999 and {0.5, 0.9, 0.95, 0.99, 0.999} <= set(levels)
    q = M.pooled_quantiles(members)
    assert q.dims == ("quantile",)
    np.testing.assert_array_equal(q.values, np.quantile(members.values, levels))
    per_member = M.pooled_quantiles(members, dims=("time", "lat", "lon"))
    assert per_member.dims == ("quantile", "member")
    np.testing.assert_array_equal(per_member.values,
                                  np.quantile(members.values.reshape(5, -1), levels, axis=1))
    holed = members.where(members.lat > 46)  # NaN in the south
    np.testing.assert_array_equal(M.pooled_quantiles(holed).values, np.nanquantile(holed.values, levels))
    np.testing.assert_allclose(M.pooled_quantiles(holed, dims=("time", "lat", "lon")).values,
                               np.nanquantile(holed.values.reshape(5, -1), levels, axis=1), rtol=1e-6)


def test_percentile_maps_and_ratio():
    members, truth, _ = _case(seed=8, t=40)
    pm = M.percentile_maps(members)
    assert pm.dims == ("percentile", "lat", "lon")
    np.testing.assert_array_equal(pm.percentile.values, [95.0, 99.0, 99.9])
    np.testing.assert_allclose(pm.values, np.percentile(members.values, [95, 99, 99.9], axis=(0, 1)), rtol=1e-12)
    holed = truth.where(truth.time > truth.time[3])
    np.testing.assert_allclose(M.percentile_maps(holed).values,
                               np.nanpercentile(holed.values, [95, 99, 99.9], axis=0), rtol=1e-12)
    # ratio to itself is 1, except NaN where the truth's percentile is 0 (an always-dry cell)
    dry = truth.copy()
    dry[:, 0, 0] = 0.0
    r = M.percentile_ratio_maps(dry, dry)
    assert np.isnan(r[:, 0, 0]).all()
    ok = M.percentile_maps(dry) > 0
    np.testing.assert_allclose(r.where(ok).values[ok.values], 1.0)
    assert int(r.isnull().sum()) == int((~ok).sum())


def test_wet_frequency_known_values():
    v = np.array([0.0, 0.05, 0.1, 0.5, 1.0, 4.9, 5.0, 12.0, np.nan, 0.0])
    da = xr.DataArray(v.reshape(1, 2, 5), dims=("time", "lat", "lon"))
    f = M.wet_frequency(da)
    assert f.dims == ("threshold",)
    np.testing.assert_allclose(f.values, [6 / 9, 4 / 9, 2 / 9])  # >= 0.1, >= 1, >= 5 of 9 valid
    maps = M.wet_frequency(da, dims="time")
    assert maps.dims == ("threshold", "lat", "lon") and np.isnan(maps[0, 1, 3])


# ------------------------------------------------------------------------------------- errors
def test_bias_map():
    members, truth, _ = _case()
    b = M.bias_map(members * 0 + truth + 0.5, truth)
    assert b.dims == ("lat", "lon")
    np.testing.assert_allclose(b.values, 0.5)
    holed = truth.where(truth.time != truth.time[0])
    np.testing.assert_allclose(M.bias_map(holed + 0.25, truth).values, 0.25)
    assert float(M.bias_map(members, truth, dims="all")) == pytest.approx(float(members.mean() - truth.mean()))


def test_fss_perfect_forecast_is_one():
    members, truth, _ = _case(seed=9)
    f = M.fss(truth, truth, thresholds=(0.1, 1.0), scales=(1, 3, 9))
    assert f.dims == ("threshold", "scale")
    np.testing.assert_array_equal(f.values, 1.0)
    assert float(M.fss(members, truth, scales=(1,)).min()) < 0.9


def test_fss_shifted_single_cell():
    # one event cell, forecast one cell east: n x n windows overlap in n(n-1) cells -> FSS = 1 - 1/n
    truth = np.zeros((1, 21, 21))
    truth[0, 10, 10] = 2.0
    forecast = np.roll(truth, 1, axis=-1)
    f = M.fss(forecast, truth, thresholds=(1.0,), scales=(1, 3, 5, 7))
    np.testing.assert_allclose(f.values[0], [0.0, 2 / 3, 0.8, 6 / 7], atol=1e-12)
    assert np.isnan(M.fss(forecast * 0, truth * 0, thresholds=(1.0,), scales=(3,))).all()


# ------------------------------------------------------------------------------------ spectra
def test_spectra_identical_fields_ratio_one_lsd_zero():
    members, truth, _ = _case(seed=10, y=32, x=40)
    st = M.mean_spectrum(truth)
    assert st.dims == ("wavenumber",) and "wavelength_km" in st.coords
    ratio = M.spectral_ratio(st, st)
    np.testing.assert_array_equal(ratio.values, 1.0)
    for band in [(25, 100), (50, 200), (200, 1000)]:
        assert float(M.log_spectral_distance(st, st, band)) == 0.0
        assert float(M.mean_spectral_ratio(st, st, band)) == 1.0
    # doubling a field quadruples its power: ratio 4, LSD = 10 log10 4 dB in every band
    s2 = M.mean_spectrum(2 * truth)
    np.testing.assert_allclose(M.spectral_ratio(s2, st).values, 4.0)
    scores = M.spectral_band_scores(s2, st)
    np.testing.assert_allclose(scores["lsd_db"].values, 10 * np.log10(4.0))
    np.testing.assert_allclose(scores["mean_ratio"].values, 4.0)
    # per member and pooled
    sm = M.mean_spectrum(members)
    assert sm.dims == ("member", "wavenumber")
    np.testing.assert_allclose(M.mean_spectrum(members, dims=("member", "time")).values, sm.mean("member").values)
    assert M.log_spectral_distance(sm, st).dims == ("member",)
    with pytest.raises(ValueError, match="no spectral bin"):
        M.log_spectral_distance(st, st, (10, 20))  # below the Nyquist wavelength 2 dx = 55.6 km


# -------------------------------------------------------------------------------------- Gibbs
def _bandlimited(ny, nx, method):
    """A smooth field of a few long waves (>= 400 km), exactly representable by ``method``."""
    j, i = np.meshgrid(np.arange(nx), np.arange(ny))
    if method == "fft":  # periodic modes
        return np.cos(2 * np.pi * 2 * i / ny) + 0.7 * np.sin(2 * np.pi * (i / ny + 3 * j / nx))
    # DCT-II modes (the mirror extension of the field is smooth)
    return np.cos(np.pi * 2 * (2 * i + 1) / (2 * ny)) * np.cos(np.pi * 3 * (2 * j + 1) / (2 * nx)) \
        + 0.5 * np.cos(np.pi * 1 * (2 * j + 1) / (2 * nx))


@pytest.mark.parametrize("method", ["fft", "dct"])
def test_gibbs_zero_for_smooth_bandlimited_field(method):
    pp = _bandlimited(48, 64, method)
    tp = 2.0 + pp  # positive everywhere, smooth, band-limited
    out = M.gibbs_comparison(tp, pp, lambda p: 2.0 + p, method=method, dx_km=DX_KM)
    assert out["cutoff_km"] == pytest.approx(2 * KM_PER_DEG)
    for route in ("tp_truncated", "pp_truncated_decoded", "pp_decoded"):
        d = out[route]
        assert d["negative_fraction"] == 0.0 and d["min_value"] == 0.0
        assert d["spurious_drizzle_fraction"] == 0.0
        assert d["overshoot"] == pytest.approx(0.0, abs=1e-9)
    json.dumps(out)


def test_gibbs_pp_route_avoids_ringing():
    # PP smooth and band-limited, TP = decode(PP) sparse with sharp rain edges: TP rings, PP does not
    pp = _bandlimited(48, 64, "dct")

    def decode(p):
        return 3.0 * np.maximum(p - 0.3, 0.0)

    tp = decode(pp)
    assert (tp == 0).mean() > 0.3
    out = M.gibbs_comparison(tp, pp, decode, method="dct", dx_km=DX_KM, return_fields=True)
    assert out["tp_truncated"]["negative_fraction"] > 0.01
    assert out["tp_truncated"]["min_value"] < -0.01
    pp_route = out["pp_truncated_decoded"]
    assert pp_route["negative_fraction"] == 0.0 and pp_route["spurious_drizzle_fraction"] == 0.0
    assert pp_route["overshoot"] == pytest.approx(0.0, abs=1e-9)
    assert out["fields"]["tp_truncated"].shape == tp.shape


# ---------------------------------------------------------------------------------- streaming
def test_exact_sum_is_order_independent():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((200, 3)) * 10.0 ** rng.integers(-8, 9, (200, 3))
    one = ExactSum(3)
    one.add_steps(x)
    parts = []
    for sl in (slice(0, 17), slice(17, 120), slice(120, 200)):
        p = ExactSum(3)
        p.add_steps(x[sl])
        parts.append(p)
    merged = ExactSum(3)
    for p in parts[::-1]:
        merged.merge(p)
    np.testing.assert_array_equal(one.value, merged.value)
    np.testing.assert_array_equal(one.value, [math.fsum(x[:, k]) for k in range(3)])


def _dataset(seed=0, t=14, m=5, nan=True):
    members, truth, baseline = _case(seed=seed, t=t, y=20, x=28, m=m)
    if nan:
        truth = truth.copy()
        truth[3, 5, 7] = np.nan  # one missing cell: that point is skipped, spectra skip the step
    return M.ensemble_dataset(members, truth, {"smooth": baseline, "zero": truth * 0})


def _same(a, b):
    assert a.scalars == b.scalars
    xr.testing.assert_identical(a.gridded, b.gridded)
    xr.testing.assert_identical(a.curves, b.curves)


def test_accumulate_merge_equals_one_pass():
    ds = _dataset()
    cfg = dict(fss_scales=(1, 5), seed=3)
    one = M.EnsembleAccumulator(**cfg).accumulate(ds)
    parts = [M.EnsembleAccumulator(**cfg).accumulate(ds.isel(time=sl))
             for sl in (slice(0, 3), slice(3, 9), slice(9, 10), slice(10, None))]
    parts = [pickle.loads(pickle.dumps(p)) for p in parts]  # as if returned by dask workers
    merged = M.EnsembleAccumulator(**cfg)
    for p in (parts[2], parts[0], parts[3], parts[1]):
        merged.merge(p)
    r1, r2 = one.compute(), merged.compute()
    _same(r1, r2)
    s = r1.scalars
    assert s["n_times"] == 14 and s["n_members"] == 5 and s["baselines"] == ["smooth", "zero"]
    assert s["n_points"] == 14 * 20 * 28 - 1
    assert sum(s["rank_histogram"]) == s["n_points"]
    assert r1.curves["spectrum"].attrs["n_steps_skipped"] == 1
    json.dumps(s)
    with pytest.raises(ValueError, match="cannot merge"):
        merged.merge(M.EnsembleAccumulator(seed=4))


def test_accumulator_agrees_with_functions():
    ds = _dataset(seed=1, nan=False)
    x, y, b = ds["members"], ds["truth"], ds["smooth"]
    acc = M.EnsembleAccumulator(fss_scales=(1, 3)).accumulate(ds)
    r = acc.compute()
    s = r.scalars
    assert s["crps"]["ensemble"] == pytest.approx(float(M.crps_ensemble(x, y).mean()), rel=1e-12)
    assert s["crps"]["smooth"] == pytest.approx(float(M.absolute_error(b, y).mean()), rel=1e-12)
    assert s["crps_skill_score"]["smooth"] == pytest.approx(float(M.crps_skill_score(x, y, b)), rel=1e-12)
    assert s["spread_skill_ratio"] == pytest.approx(float(M.spread_skill_ratio(x, y)), rel=1e-12)
    assert s["rank_histogram"] == M.rank_histogram(x, y).values.tolist()
    np.testing.assert_allclose(r.gridded["bias"].sel(forecast="ensemble").values, M.bias_map(x, y).values,
                               rtol=1e-10, atol=1e-14)
    np.testing.assert_allclose(r.gridded["wet_frequency"].sel(source="ensemble").values,
                               M.wet_frequency(x, dims=("member", "time")).values)
    np.testing.assert_allclose(r.curves["wet_frequency"].sel(source="truth").values, M.wet_frequency(y).values)
    np.testing.assert_allclose(r.curves["spectrum"].sel(source="truth").values, M.mean_spectrum(y).values,
                               rtol=1e-12)
    np.testing.assert_allclose(r.curves["member_spectrum"].values, M.mean_spectrum(x).values, rtol=1e-12)
    np.testing.assert_allclose(r.curves["fss"].sel(forecast="ensemble").values,
                               M.fss(x, y, scales=(1, 3)).values, rtol=1e-12)
    assert s["lsd_db"]["zero"]["50-200 km"] == math.inf  # no power at all


def test_histogram_quantiles_within_resolution():
    rng = np.random.default_rng(12)
    v = rng.lognormal(-1.0, 1.5, 200_000) * (rng.random(200_000) < 0.4)
    v[:50] = rng.uniform(0, 1e-4, 50)  # some values below the first log bin
    acc = QuantileHistogramAccumulator()
    for part in np.array_split(v, 7):
        acc.accumulate(part.reshape(1, 1, -1))
    levels = np.array([0.1, 0.5, 0.6, 0.9, 0.95, 0.99, 0.999, 0.9999, 1.0])
    est, exact = acc.quantiles(levels), np.quantile(v, levels)
    r = 1 + acc.resolution
    assert acc.resolution == pytest.approx(10 ** (7 / 2000) - 1)
    assert np.all(est >= exact / r - 1e-4) and np.all(est <= exact * r + 1e-4), (est, exact)
    assert est[0] == 0.0 and est[-1] == v.max()
    assert not np.allclose(est[3:-1], exact[3:-1], rtol=1e-6)  # an estimate, not the exact value


def test_evaluate_chunks_serial_and_distributed():
    import distributed  # a dependency (dask[distributed]), never optional
    ds = _dataset(seed=2, t=10)
    template = M.EnsembleAccumulator(fss_scales=(1, 3))
    serial = M.evaluate_chunks(ds, template, time_chunk=4)
    one = M.EnsembleAccumulator(fss_scales=(1, 3)).accumulate(ds)
    _same(serial.compute(), one.compute())
    with distributed.Client(processes=False, n_workers=1, threads_per_worker=2, dashboard_address=None) as client:
        dist = M.evaluate_chunks(ds.chunk(time=3), template, time_chunk=3, client=client)
    _same(dist.compute(), one.compute())
    assert template.n_steps == 0  # the template is not touched


def test_from_pipeline_layout():
    members, truth, baseline = _case(t=3, m=3)
    coarse = xr.DataArray(np.zeros((3, 5, 7)), dims=("time", "lat_coarse", "lon_coarse"))
    out = xr.Dataset({"tp": members.astype(np.float32), "pp": members, "tp_truth": truth, "pp_truth": truth,
                      "tp_bicubic": baseline, "tp_coarse": coarse})
    ds = M.from_pipeline(out)
    assert sorted(ds.data_vars) == ["bicubic", "members", "truth"]
    scalars = M.EnsembleAccumulator(fss=False).accumulate(ds).compute().scalars
    assert scalars["baselines"] == ["bicubic"] and scalars["n_members"] == 3
