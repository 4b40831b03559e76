"""The embedded synthetic Europe: determinism, the canonical contract, speed, geography, and its
calibration against the real ERA5 sample (run ``pytest -s tests/test_synthetic.py`` to see the
real-vs-synthetic table)."""

from __future__ import annotations

import math
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from ppviz.data.canonical import VARIABLE_ATTRS, validate_canonical
from ppviz.data.geography import land_sea_mask, orography, static_fields
from ppviz.data.grid import EUROPE
from ppviz.metrics.calibration import REAL_SAMPLE_TARGETS, calibration_statistics
from ppviz.data.source import default_dataset_path, ensure_default_dataset, load_default_dataset
from ppviz.data.synthetic import GENERATOR_VERSION, synthesize

#: The real ERA5 sample, beside the checkout (the conftest's ``era5_sample`` fixture skips when it
#: is missing, and fails when CI=true).
SAMPLE = Path(__file__).resolve().parents[1].parent / "shared" / "era5-sample"
SAMPLE_BOX = dict(lat=slice(45.0, 55.0), lon=slice(0.0, 10.0))


# ----- determinism and contract ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def one_day():
    return synthesize(days=1, seed=3)


def test_same_seed_same_bytes_different_seed_different(one_day):
    again = synthesize(days=1, seed=3)
    other = synthesize(days=1, seed=4)
    for v in ("tp", "vimd"):
        assert one_day[v].values.tobytes() == again[v].values.tobytes()
        assert not np.array_equal(one_day[v].values, other[v].values)
    assert one_day.attrs == again.attrs


def test_shorter_span_is_a_prefix_of_a_longer_one(one_day):
    two = synthesize(days=2, seed=3)
    for v in ("tp", "vimd"):
        np.testing.assert_array_equal(two[v].values[:24], one_day[v].values)


def test_canonical_contract_and_synthetic_labels(one_day):
    ds = one_day
    validate_canonical(ds)
    assert set(ds.data_vars) == {"tp", "vimd"}
    for v in ("tp", "vimd"):
        assert ds[v].dims == ("time", "lat", "lon")
        assert ds[v].dtype == np.float32
        assert ds[v].attrs["units"] == "mm h-1" == VARIABLE_ATTRS[v]["units"]
        assert np.isfinite(ds[v].values).all()
    assert ds.sizes == {"time": 24, "lat": EUROPE.nlat, "lon": EUROPE.nlon}
    np.testing.assert_allclose(ds.lat.values, EUROPE.lat)
    np.testing.assert_allclose(ds.lon.values, EUROPE.lon)
    times = pd.DatetimeIndex(ds.time.values)
    assert times[0] == pd.Timestamp("2021-01-01") and (np.diff(times.values) == np.timedelta64(1, "h")).all()
    assert ds.attrs["source"] == "synthetic"
    text = " ".join(str(v) for v in ds.attrs.values()).lower()
    assert "synthetic" in text and "not era5" in text
    assert ds.attrs["generator_version"] == GENERATOR_VERSION
    assert ds.attrs["seed"] == "3"
    assert "45-55N" in ds.attrs["calibration_target"]
    tp = ds.tp.values
    assert tp.min() >= 0.0
    assert (tp == 0).mean() > 0.5, "dry cells must be exactly zero and make up most cells"


def test_generation_speed_short_span():
    t0 = time.perf_counter()
    ds = synthesize(days=2, seed=1)
    elapsed = time.perf_counter() - t0
    print(f"\nsynthesize(days=2): {elapsed:.2f} s ({2 * 24 * EUROPE.nlat * EUROPE.nlon / elapsed / 1e6:.1f} M cells/s)")
    assert ds.sizes["time"] == 48
    # ~0.25 s per day on 2 cores; 60 days take ~15 s. Generous bound for loaded CI machines.
    assert elapsed < 15.0


def test_bad_arguments():
    with pytest.raises(ValueError, match="days"):
        synthesize(days=0)
    with pytest.raises(ValueError, match="seed"):
        synthesize(days=1, seed=-1)


def test_default_dataset_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("PPVIZ_DATA_DIR", str(tmp_path))
    path = default_dataset_path(1, 0)
    assert path == tmp_path / "synthetic-europe-d1-s0.zarr"
    assert default_dataset_path(2, 5, data_dir=tmp_path / "x") == tmp_path / "x" / "synthetic-europe-d2-s5.zarr"
    assert ensure_default_dataset(days=1, seed=0) == path and path.is_dir()
    stamp = path.stat().st_mtime_ns
    assert ensure_default_dataset(days=1, seed=0) == path
    assert path.stat().st_mtime_ns == stamp, "an up-to-date store is reused, not rewritten"
    ds = load_default_dataset(days=1)
    assert ds.tp.chunks is not None, "the default dataset opens lazily"
    assert ds.attrs["source"] == "synthetic"
    np.testing.assert_array_equal(ds.tp.values, synthesize(days=1, seed=0).tp.values)
    assert [p.name for p in tmp_path.iterdir()] == [path.name], "no temporary leftovers"


# ----- geography ------------------------------------------------------------------------------------


def test_static_fields_shapes_and_known_places():
    lsm, oro = land_sea_mask(), orography()
    assert lsm.shape == oro.shape == EUROPE.shape and lsm.dtype == oro.dtype == np.float32
    assert set(np.unique(lsm)) == {0.0, 1.0}
    assert 0.4 < lsm.mean() < 0.65
    assert (oro[lsm == 0] == 0).all() and oro.min() >= 0
    for name, (lat, lon), land in [
        ("Alps", (46.5, 10.0), 1), ("Paris basin", (48.75, 2.5), 1), ("Sweden", (60.0, 15.0), 1),
        ("North Sea", (55.0, 4.0), 0), ("Balearic Sea", (40.0, 5.0), 0), ("Black Sea", (43.0, 34.0), 0),
        ("Bay of Biscay", (45.0, -4.0), 0), ("Sahara edge", (33.5, 5.0), 1),
    ]:
        i, j = EUROPE.index_of(lat, lon)
        assert lsm[i, j] == land, name
    assert oro[EUROPE.index_of(46.5, 10.0)] > 2000  # Alps
    assert oro[EUROPE.index_of(61.5, 8.0)] > 1000  # Scandinavian mountains
    assert oro[EUROPE.index_of(52.5, 10.0)] < 300  # North German plain
    ds = static_fields()
    assert ds.lsm.attrs["units"] == "1" and ds.orography.attrs["units"] == "m"
    assert ds.orography.attrs["standard_name"] == "surface_altitude"


def test_embedded_mask_agrees_with_natural_earth(natural_earth):
    fine, coarse = land_sea_mask(), land_sea_mask(natural_earth=False)
    assert (fine == coarse).mean() > 0.95
    fine[:] = 7
    assert land_sea_mask().max() == 1.0, "callers get copies of the cached mask"


def _box_mean(field, lsm, lat0, lat1, lon0, lon1):
    sel = ((EUROPE.lat >= lat0) & (EUROPE.lat <= lat1))[:, None] & ((EUROPE.lon >= lon0) & (EUROPE.lon <= lon1))[None, :]
    return float(field[sel & (lsm > 0)].mean())


def test_geography_leaves_a_trace_in_the_climate():
    lsm = land_sea_mask()
    winter = synthesize(days=12, seed=0, start="2021-01-01")
    summer = synthesize(days=12, seed=0, start="2021-07-01")
    mean_tp = 0.5 * (winter.tp.mean("time").values + summer.tp.mean("time").values)
    alps = _box_mean(mean_tp, lsm, 45.5, 47.5, 6.5, 13.5)
    lowlands = np.mean(
        [
            _box_mean(mean_tp, lsm, 44.5, 45.5, 8.0, 12.5),  # Po plain
            _box_mean(mean_tp, lsm, 45.0, 47.0, 3.5, 5.0),  # Saone-Rhone lowland
            _box_mean(mean_tp, lsm, 46.0, 47.5, 17.5, 20.5),  # Pannonian plain
        ]
    )
    norway = _box_mean(mean_tp, lsm, 59.0, 63.0, 5.0, 7.5)  # windward west coast
    sweden = _box_mean(mean_tp, lsm, 59.0, 63.0, 14.0, 17.5)  # lee of the mountains
    print(f"\nmean tp (mm/h) Alps {alps:.3f} vs surrounding lowlands {lowlands:.3f}; "
          f"west Norway {norway:.3f} vs Swedish lee {sweden:.3f}")
    assert alps > 1.3 * lowlands
    assert norway > 1.3 * sweden
    for ds, season in ((winter, "winter"), (summer, "summer")):
        wet = (ds.tp > 0.1).mean("time").values
        land, sea = float(wet[lsm > 0].mean()), float(wet[lsm == 0].mean())
        print(f"{season}: wet fraction land {land:.3f}, sea {sea:.3f}")
        assert abs(land - sea) > 0.15 * max(land, sea)
        assert (sea > land) if season == "winter" else (land > sea)  # showers over the warm sea / summer convection


# ----- calibration against the real ERA5 sample -----------------------------------------------------


@pytest.fixture(scope="module")
def real_stats(era5_sample):
    """calibration_statistics of both sample days (tp from the files, VIMD computed from levels)."""
    from ppviz.data.prepare import prepare_dataset

    assert era5_sample == SAMPLE
    s = era5_sample
    days = [("2020-01-01", "pl"), ("2022-08-31", "ml")]
    parts = [
        prepare_dataset(
            s / f"ERA5_{d}_tp.nc",
            q=s / f"ERA5_{d}_{k}_q.nc",
            u=s / f"ERA5_{d}_{k}_u.nc",
            v=s / f"ERA5_{d}_{k}_v.nc",
            sp=s / f"ERA5_{d}_sp.nc",
            levels=s / "era5_L137_model_levels.csv",
        )
        for d, k in days
    ]
    return calibration_statistics(xr.concat(parts, "time"))


@pytest.fixture(scope="module")
def synthetic_spans():
    """Synthetic weather at the real sample's calendar dates: 3 seeds x (winter, late summer) x 4 days."""
    parts = []
    for i, seed in enumerate((0, 1, 2)):
        parts.append(synthesize(days=4, seed=seed, start=f"{2019 + i}-12-30"))
        parts.append(synthesize(days=4, seed=seed, start=f"{2020 + i}-08-29"))
    return xr.concat(parts, "time")


# (statistic, kind, tolerance on the sample box, tolerance on the full domain; None = not checked)
# kinds: 'factor' -> within [real / tol, real * tol]; 'abs' -> |synthetic - real| <= tol.
TOLERANCES = [
    ("wet_fraction", "factor", 1.5, 2.0),
    ("tp_q90", "factor", 3.0, None),  # drizzle regime: 0.019 vs 0.109 mm/h on the two real days
    ("tp_q99", "factor", 2.0, 2.5),
    ("tp_q999", "factor", 2.0, 2.5),
    ("vimd_std", "factor", 1.5, 1.5),
    ("spearman_tp_negvimd", "abs", 0.2, 0.2),
    ("tp_slope", "abs", 0.5, 0.5),
    ("vimd_slope", "abs", 0.5, 0.5),
    ("tp_lag1", "abs", 0.1, 0.15),
    ("vimd_lag1", "abs", 0.1, 0.15),
]
SHOWN = ["wet_fraction", "zero_fraction", "tp_q50", "tp_q90", "tp_q99", "tp_q999", "vimd_mean", "vimd_std",
         "vimd_mean_where_tp_gt1", "spearman_tp_negvimd", "tp_slope", "vimd_slope", "tp_lag1", "vimd_lag1", "hours"]


def _agrees(kind, tol, real, synth):
    if tol is None:
        return True
    if kind == "factor":
        return real / tol <= synth <= real * tol
    return abs(synth - real) <= tol


def test_calibration_matches_the_real_sample(real_stats, synthetic_spans):
    box = calibration_statistics(synthetic_spans.sel(**SAMPLE_BOX))
    full = calibration_statistics(synthetic_spans)
    tol = {name: (kind, tb, tf) for name, kind, tb, tf in TOLERANCES}

    lines = [
        "",
        "calibration: ERA5 sample (45-55N 0-10E, 2020-01-01 + 2022-08-31) vs synthetic "
        "(same dates, 3 seeds x 2 x 4 days)",
        f"{'statistic':24s} {'ERA5':>9s} {'synth box':>10s} {'synth full':>10s} {'defaults':>9s}  tolerance (box / full)",
    ]
    failures = []
    for name in SHOWN:
        r, b, f = real_stats[name], box[name], full[name]
        ref = REAL_SAMPLE_TARGETS.get(name, float("nan"))
        note = ""
        if name in tol:
            kind, tb, tf = tol[name]
            unit = "x" if kind == "factor" else "+-"
            note = f"{unit}{tb:g} / " + (f"{unit}{tf:g}" if tf is not None else "-")
            ok_b, ok_f = _agrees(kind, tb, r, b), _agrees(kind, tf, r, f)
            note += "" if ok_b and ok_f else "   FAIL"
            if not ok_b:
                failures.append(f"box {name}: synthetic {b:.4g} vs ERA5 {r:.4g} (tolerance {unit}{tb:g})")
            if not ok_f:
                failures.append(f"full {name}: synthetic {f:.4g} vs ERA5 {r:.4g} (tolerance {unit}{tf:g})")
        lines.append(f"{name:24s} {r:9.4g} {b:10.4g} {f:10.4g} {ref:9.4g}  {note}")
    print("\n".join(lines))

    # rain falls where moisture converges, on both sides
    assert box["vimd_mean_where_tp_gt1"] < 0 and full["vimd_mean_where_tp_gt1"] < 0
    assert box["spearman_tp_negvimd"] > 0 and full["spearman_tp_negvimd"] > 0
    # most cells are exactly dry, and the median is zero, as in ERA5
    assert box["tp_q50"] == 0.0 and real_stats["tp_q50"] < 0.01
    assert box["zero_fraction"] > 0.5
    assert not failures, "synthetic statistics off the ERA5 sample:\n" + "\n".join(failures)

    # the constants in synthetic.py document the same sample
    for name, value in REAL_SAMPLE_TARGETS.items():
        assert math.isclose(real_stats[name], value, rel_tol=0.02, abs_tol=0.005), name


def test_calibration_statistics_contract():
    times = pd.date_range("2021-01-01", periods=4, freq="h").append(pd.date_range("2021-03-01", periods=4, freq="h"))
    rng = np.random.default_rng(0)
    tp = np.maximum(rng.normal(size=(8, 16, 16)), 0).astype(np.float32)
    ds = xr.Dataset(
        {"tp": (("time", "lat", "lon"), tp), "vimd": (("time", "lat", "lon"), -tp + 0.1)},
        coords={"time": times, "lat": 45 + 0.25 * np.arange(16), "lon": 0.25 * np.arange(16)},
    )
    s = calibration_statistics(ds)
    assert s["hours"] == 8 and s["cells"] == tp.size
    assert s["spearman_tp_negvimd"] == pytest.approx(1.0)
    assert s["wet_fraction"] == pytest.approx(float((tp > 0.1).mean()))
    assert -0.2 < s["tp_lag1"] < 0.2  # white noise in time; the 2-month gap is not a lag
