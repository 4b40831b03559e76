"""Predictions made elsewhere: CorrDiff, Earth2Studio, CF and cfgrib layouts read as they are and scored.

Each fixture is written here from the published description of its layout (issue 13). The CRPS
that ``ppviz evaluate --predictions`` reports is checked against a fair CRPS computed in the test
by a double loop over the members.
"""

from __future__ import annotations

import json

import netCDF4
import numpy as np
import pandas as pd
import pytest
import xarray as xr

from ppviz.cli import main
from ppviz.data.predictions import open_predictions

LAT = np.arange(44.0, 46.01, 0.25)  # 9 points
LON = np.arange(6.0, 8.76, 0.25)  # 12 points
RNG = np.random.default_rng(13)


def _field(*shape):
    """Gamma-distributed rates, mm/h, with dry points."""
    x = RNG.gamma(0.6, 1.5, size=shape)
    return np.where(RNG.random(shape) < 0.3, 0.0, x)


def brute_fair_crps(members: np.ndarray, truth: np.ndarray) -> float:
    """Mean fair CRPS over every point: members (M, T, Y, X), truth (T, Y, X), by a double loop over members."""
    m = members.shape[0]
    skill = np.zeros(truth.shape)
    pairs = np.zeros(truth.shape)
    for i in range(m):
        skill += np.abs(members[i] - truth)
        for j in range(m):
            pairs += np.abs(members[i] - members[j])
    return float(np.mean(skill / m - pairs / (2.0 * m * (m - 1))))


def _score(tmp_path, args) -> dict:
    out = tmp_path / "report"
    code = main(["evaluate", *[str(a) for a in args], "--out", str(out), "--max-map-dates", "0"])
    assert code == 0
    return json.loads((out / "metrics.json").read_text())


def _scores_like_brute_force(tmp_path, ds, args, time_step=None) -> dict:
    """``ppviz evaluate`` on ``args``: its ensemble CRPS equals :func:`brute_fair_crps` of the read ``ds``."""
    doc = _score(tmp_path, args)
    want = brute_fair_crps(ds.tp.values.astype(np.float64), ds.tp_truth.values.astype(np.float64))
    assert doc["scalars"]["crps"]["ensemble"] == pytest.approx(want, rel=1e-5)
    if time_step is not None:
        assert doc["info"]["time_step"] == time_step
    return doc


@pytest.fixture()
def corrdiff(tmp_path):
    """PhysicsNeMo CorrDiff generate.py: root time/ensemble/y/x, 2-D lat/lon, groups input/truth/prediction."""
    m, t = 4, 3
    pred, truth = _field(m, t, LAT.size, LON.size), _field(t, LAT.size, LON.size)
    path = tmp_path / "corrdiff.nc"
    with netCDF4.Dataset(path, "w") as f:
        for d, n in (("time", None), ("ensemble", m), ("y", LAT.size), ("x", LON.size)):
            f.createDimension(d, n)
        lat2, lon2 = np.meshgrid(LAT[::-1], LON, indexing="ij")  # north first, as CorrDiff's grids often are
        f.createVariable("lat", "f4", ("y", "x"))[:] = lat2
        f.createVariable("lon", "f4", ("y", "x"))[:] = lon2
        tv = f.createVariable("time", "i8", ("time",))
        tv.units, tv.calendar = "hours since 1990-01-01", "standard"
        tv[:] = np.array([271752, 271753, 271754])  # 2021-01-01 00..02
        for g, data, dims in (("input", truth * 0.5, ("time", "y", "x")), ("truth", truth, ("time", "y", "x")),
                              ("prediction", pred, ("ensemble", "time", "y", "x"))):
            f.createGroup(g).createVariable("precip", "f4", dims)[:] = (data[..., ::-1, :] / 3600.0)  # kg m-2 s-1
    return path, pred.astype(np.float32), truth.astype(np.float32)


def test_corrdiff_grouped_layout_reads_and_scores(corrdiff, tmp_path):
    path, pred, truth = corrdiff
    ds = open_predictions(path, units="kg m-2 s-1")
    assert ds.tp.dims == ("member", "time", "lat", "lon") and ds.sizes["member"] == 4
    np.testing.assert_allclose(ds.lat.values, LAT, atol=1e-5)  # turned ascending
    np.testing.assert_allclose(ds.tp.values, pred, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(ds.tp_truth.values, truth, rtol=1e-5, atol=1e-6)
    assert ds.attrs["predictions_var"] == "prediction/precip" and ds.attrs["truth_var"] == "truth/precip"
    assert ds.attrs["time_step"] == "hourly"
    assert str(ds.time.values[0]).startswith("2021-01-01T00")
    _scores_like_brute_force(tmp_path, ds, ["--predictions", path, "--units", "kg m-2 s-1"], "hourly")


def test_corrdiff_without_units_is_refused(corrdiff):
    with pytest.raises(ValueError, match=r"corrdiff\.nc: prediction/precip has no units attribute; needed --units"):
        open_predictions(corrdiff[0])


def _truth_file(tmp_path, times, truth, name="tp", units="mm h-1", lat=LAT, lon=LON):
    p = tmp_path / f"truth-{name}.nc"
    xr.Dataset({name: (("time", "lat", "lon"), truth, {"units": units})},
               coords={"time": times, "lat": lat, "lon": lon}).to_netcdf(p)
    return p


def test_earth2studio_time_sample_layout_in_metres(tmp_path):
    times = pd.date_range("2021-01-01", periods=3, freq="h").values
    pred, truth = _field(3, 5, LAT.size, LON.size), _field(3, LAT.size, LON.size)  # (time, sample, lat, lon)
    p = tmp_path / "e2s.nc"
    xr.Dataset({"tp": (("time", "sample", "lat", "lon"), pred / 1000.0, {"units": "m"}),
                "t2m": (("time", "sample", "lat", "lon"), pred + 270.0, {"units": "K"})},
               coords={"time": times, "sample": np.arange(5), "lat": LAT, "lon": LON}).to_netcdf(p)
    # the truth over a larger grid: the predictions' grid is cut out of it
    big_lat, big_lon = np.arange(40.0, 50.01, 0.25), np.arange(0.0, 12.01, 0.25)
    big = _field(3, big_lat.size, big_lon.size)
    i0, j0 = np.searchsorted(big_lat, LAT[0]), np.searchsorted(big_lon, LON[0])
    big[:, i0:i0 + LAT.size, j0:j0 + LON.size] = truth
    tfile = _truth_file(tmp_path, times, big, lat=big_lat, lon=big_lon)
    ds = open_predictions(p, truth=tfile)
    np.testing.assert_allclose(ds.tp.values, pred.transpose(1, 0, 2, 3), rtol=1e-5)  # m per hour -> mm/h
    np.testing.assert_allclose(ds.tp_truth.values, truth, rtol=1e-6)
    doc = _score(tmp_path, ["--predictions", p, "--truth", tfile])
    want = brute_fair_crps(pred.transpose(1, 0, 2, 3).astype(np.float32).astype(np.float64),
                           truth.astype(np.float32).astype(np.float64))
    assert doc["scalars"]["crps"]["ensemble"] == pytest.approx(want, rel=1e-5)


def test_earth2studio_lead_time_layout_zarr(tmp_path):
    """(ensemble, time, lead_time, sample, lat, lon), 6-hourly amounts in m: ensemble x sample members."""
    t0 = np.array(["2021-01-01T00"], dtype="datetime64[ns]")
    lead = np.array([0, 6, 12], dtype="timedelta64[h]").astype("timedelta64[ns]")
    rates = _field(2, 1, 3, 2, LAT.size, LON.size)
    p = tmp_path / "e2s.zarr"
    xr.Dataset({"tp": (("ensemble", "time", "lead_time", "sample", "lat", "lon"), rates * 6 / 1000.0, {"units": "m"})},
               coords={"ensemble": [0, 1], "time": t0, "lead_time": lead, "sample": [0, 1], "lat": LAT, "lon": LON}
               ).to_zarr(p)
    valid = t0[0] + lead
    truth = _field(3, LAT.size, LON.size)
    tfile = _truth_file(tmp_path, valid, truth * 6.0, units="mm")  # 6-hourly amounts, mm
    ds = open_predictions(p, truth=tfile)
    assert ds.sizes["member"] == 4 and ds.attrs["time_step"] == "6-hourly"
    np.testing.assert_array_equal(ds.time.values, valid)
    members = rates[:, 0].transpose(0, 2, 1, 3, 4).reshape(4, 3, LAT.size, LON.size)  # (ens*sample, lead, ...)
    np.testing.assert_allclose(np.sort(ds.tp.values, 0), np.sort(members, 0), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(ds.tp_truth.values, truth, rtol=1e-5)
    _scores_like_brute_force(tmp_path, ds, ["--predictions", p, "--truth", tfile], "6-hourly")


def test_cf_pr_flux_with_realization_daily(tmp_path):
    """CMIP/CORDEX style: ``precipitation`` found by standard_name, kg m-2 s-1, daily, realization dim, 0..360 lon."""
    times = pd.date_range("2021-01-01T12", periods=4, freq="D").values
    pred, truth = _field(3, 4, LAT.size, LON.size), _field(4, LAT.size, LON.size)  # mm/h
    lon360 = (LON + 360.0) % 360.0
    p = tmp_path / "pr_day.nc"
    xr.Dataset({"precipitation_of_run": (("realization", "time", "lat", "lon"), pred / 3600.0,
                                         {"units": "kg m-2 s-1", "standard_name": "precipitation_flux"}),
                "tas": (("realization", "time", "lat", "lon"), pred + 270.0,
                        {"units": "K", "standard_name": "air_temperature"})},
               coords={"realization": ("realization", [1, 2, 3], {"standard_name": "realization"}),
                       "time": times, "lat": LAT, "lon": lon360}).to_netcdf(p)
    tfile = tmp_path / "obs.nc"
    xr.Dataset({"pr": (("time", "lat", "lon"), truth / 3600.0, {"units": "kg m-2 s-1",
                                                                "standard_name": "precipitation_flux"})},
               coords={"time": times, "lat": LAT, "lon": lon360}).to_netcdf(tfile)
    ds = open_predictions(p, truth=tfile)
    assert ds.attrs["time_step"] == "daily" and ds.attrs["predictions_var"] == "precipitation_of_run"
    np.testing.assert_allclose(ds.tp.values, pred, rtol=1e-5)
    _scores_like_brute_force(tmp_path, ds, ["--predictions", p, "--truth", tfile], "daily")


def test_cfgrib_number_layout(tmp_path):
    """cfgrib: ``number`` (standard_name realization), ``latitude`` descending, tp in m, scalar ``step``."""
    times = pd.date_range("2021-01-01T06", periods=3, freq="h").values
    pred, truth = _field(4, 3, LAT.size, LON.size), _field(3, LAT.size, LON.size)
    p = tmp_path / "ens.nc"
    coords = {"number": ("number", np.arange(4), {"standard_name": "realization", "long_name": "ensemble member"}),
              "time": times, "step": np.timedelta64(0, "ns"),
              "latitude": ("latitude", LAT[::-1], {"units": "degrees_north", "standard_name": "latitude"}),
              "longitude": ("longitude", LON, {"units": "degrees_east", "standard_name": "longitude"})}
    xr.Dataset({"tp": (("number", "time", "latitude", "longitude"), pred[:, :, ::-1] / 1000.0,
                       {"units": "m", "standard_name": "unknown", "long_name": "Total precipitation"})},
               coords=coords).to_netcdf(p)
    tfile = _truth_file(tmp_path, times, truth)
    ds = open_predictions(p, truth=tfile)
    np.testing.assert_allclose(ds.tp.values, pred, rtol=1e-5)
    assert ds.attrs["member_dims"] == "number"
    _scores_like_brute_force(tmp_path, ds, ["--predictions", p, "--truth", tfile])


def _cf_file(tmp_path, name="x.nc", dims=("member", "time", "lat", "lon"), units="mm h-1", lat=LAT, **extra):
    times = pd.date_range("2021-01-01", periods=2, freq="h").values
    sizes = {"member": 3, "time": 2, "lat": lat.size, "lon": LON.size, **extra}
    data = {"tp": (dims, _field(*(sizes[d] for d in dims)), {"units": units} if units else {})}
    coords = {"time": times, "lat": lat, "lon": LON}
    p = tmp_path / name
    xr.Dataset(data, coords={k: v for k, v in coords.items() if k in dims}).to_netcdf(p)
    return p


@pytest.mark.parametrize("case, match", [
    ("no_members", r"x\.nc has no precipitation ensemble: variables root: tp\('time', 'lat', 'lon'\).*--member-dim"),
    ("bad_units", r"x\.nc: tp: units 'K' are neither a precipitation rate"),
    ("not_units", r"x\.nc: tp: units 'furlongs per' are not UDUNITS units"),
    ("no_var", r"x\.nc has no variable 'rain' \(--var\); variables: root: tp"),
    ("no_truth", r"x\.nc has no truth for 'tp': looked for 'tp_truth' or 'truth/tp'.*--truth FILE"),
    ("grid", r"the grids differ: predictions lat 44\.\.46 \(9 points, step 0\.25\).*truth .* lat 30\.\.32"),
    ("times", r"truth-tp\.nc: truth tp lacks 2 of the 2 prediction times"),
    ("amount_one_time", r"units 'm' are an amount, and the accumulation step is unknown"),
    ("member_dim", r"variable 'tp' has no dim 'ens' \(--member-dim\); its dims are"),
])
def test_bad_predictions_are_refused_naming_file_found_and_needed(tmp_path, case, match):
    kw = {}
    if case == "no_members":
        p = _cf_file(tmp_path, dims=("time", "lat", "lon"))
    elif case == "bad_units":
        p = _cf_file(tmp_path, units="K")
    elif case == "not_units":
        p, kw = _cf_file(tmp_path), {"units": "furlongs per"}
    elif case == "no_var":
        p, kw = _cf_file(tmp_path), {"var": "rain"}
    elif case == "no_truth":
        p = _cf_file(tmp_path)
    elif case == "grid":
        p = _cf_file(tmp_path)
        kw = {"truth": _truth_file(tmp_path, pd.date_range("2021-01-01", periods=2, freq="h").values,
                                   _field(2, LAT.size, LON.size), lat=LAT - 14.0)}
    elif case == "times":
        p = _cf_file(tmp_path)
        kw = {"truth": _truth_file(tmp_path, pd.date_range("2022-01-01", periods=2, freq="h").values,
                                   _field(2, LAT.size, LON.size))}
    elif case == "amount_one_time":
        p = _cf_file(tmp_path, units="m", dims=("member", "lat", "lon"))
    else:
        p, kw = _cf_file(tmp_path), {"var": "tp", "member_dim": "ens"}
    with pytest.raises(ValueError, match=match):
        open_predictions(p, **kw)


def test_curvilinear_grid_is_refused(tmp_path):
    lat2, lon2 = np.meshgrid(LAT, LON, indexing="ij")
    p = tmp_path / "curv.nc"
    xr.Dataset({"tp": (("member", "time", "y", "x"), _field(2, 1, LAT.size, LON.size), {"units": "mm h-1"})},
               coords={"lat": (("y", "x"), lat2 + 0.1 * lon2), "lon": (("y", "x"), lon2)}).to_netcdf(p)
    with pytest.raises(ValueError, match=r"curv\.nc: tp is on a curvilinear grid .*regular latitude-longitude"):
        open_predictions(p)


def test_cli_predictions_errors_are_one_line(tmp_path, capsys):
    p = _cf_file(tmp_path, dims=("time", "lat", "lon"))
    assert main(["evaluate", "--predictions", str(p), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("ppviz: error:") and "has no precipitation ensemble" in err and "\n" not in err
    assert main(["evaluate", "--out", str(tmp_path / "o")]) == 2
    assert "--ensemble or --predictions" in capsys.readouterr().err


def test_several_ensembles_need_var(tmp_path):
    times = pd.date_range("2021-01-01", periods=2, freq="h").values
    p = tmp_path / "two.nc"
    v = (("member", "time", "lat", "lon"), _field(2, 2, LAT.size, LON.size), {"units": "mm h-1"})
    xr.Dataset({"tp": v, "pr": v}, coords={"time": times, "lat": LAT, "lon": LON}).to_netcdf(p)
    with pytest.raises(ValueError, match=r"two\.nc has several precipitation ensembles \['tp', 'pr'\]; choose one"):
        open_predictions(p)
    assert open_predictions(p, var="pr", truth=_truth_file(tmp_path, times, _field(2, LAT.size, LON.size))
                            ).attrs["predictions_var"] == "pr"


def test_truth_with_another_step_is_refused(tmp_path):
    days = pd.date_range("2021-01-01", periods=2, freq="D").values
    p = tmp_path / "day.nc"
    xr.Dataset({"tp": (("member", "time", "lat", "lon"), _field(2, 2, LAT.size, LON.size), {"units": "mm day-1"})},
               coords={"time": days, "lat": LAT, "lon": LON}).to_netcdf(p)
    hours = pd.date_range("2021-01-01", periods=48, freq="h").values
    tfile = _truth_file(tmp_path, hours, _field(48, LAT.size, LON.size))
    with pytest.raises(ValueError, match=r"truth-tp\.nc: truth tp has hourly steps, the predictions daily steps"):
        open_predictions(p, truth=tfile)


def test_dashboard_scores_a_predictions_file_below_the_roots(corrdiff, tmp_path, monkeypatch):
    """The Evaluation page's source: same scores as the CLI; paths outside PPVIZ_EVAL_ROOTS refused."""
    import time

    import panel as pn
    from bokeh.document import Document
    from panel.io.state import set_curdoc

    from pages.common import SharedState
    from pages.evaluation import EvaluationPage
    from ppviz.views import cache as M
    from ppviz.views import evaluation as E

    path, _, _ = corrdiff
    monkeypatch.setenv("PPVIZ_EVAL_ROOTS", str(tmp_path))
    with pytest.raises(ValueError, match="outside the directories evaluations may be read from"):
        E.open_predictions_file("/etc/passwd")
    with pytest.raises(ValueError, match="outside the directories"):
        E.open_predictions_file(path, truth="/etc/hosts", units="kg m-2 s-1")
    with pytest.raises(ValueError, match=r"missing\.nc: no such file"):
        E.open_predictions_file(tmp_path / "missing.nc")
    ds = E.open_predictions_file(path, truth="", var="", units="kg m-2 s-1")
    res = E.evaluate_predictions(ds)
    want = brute_fair_crps(ds.tp.values.astype(np.float64), ds.tp_truth.values.astype(np.float64))
    assert res.scalars["crps"]["ensemble"] == pytest.approx(want, rel=1e-5)
    assert res.settings["time_step"] == "hourly" and res.source == str(path)

    doc = Document()
    with set_curdoc(doc):
        page = EvaluationPage(SharedState(M.dataset(), time="2021-01-02T06:00", region="sample"),
                              predictions=str(path), pred_units="kg m-2 s-1")
        doc.add_root(pn.panel(page).get_root(doc))
        page._on_predictions()
        deadline = time.time() + 120
        while page.result is None:
            assert time.time() < deadline, "scoring did not finish"
            time.sleep(0.1)
            page._jobs.poll()
        assert page.result.scalars["crps"]["ensemble"] == pytest.approx(want, rel=1e-5)
        assert "prediction/precip" in page._summary.object
        page.pred_units = ""
        page._on_predictions()  # a refusal is shown in the page, escaped
        shown = page._messages.objects[0].object
        assert "has no units attribute" in shown and r"needed \-\-units" in shown  # escaped Markdown


def test_dashboard_refuses_too_many_times_and_one_member(tmp_path, monkeypatch):
    from ppviz.views import evaluation as E

    monkeypatch.setenv("PPVIZ_EVAL_ROOTS", str(tmp_path))
    n = E.MAX_TIMES + 1
    times = pd.date_range("2021-01-01", periods=n, freq="h").values
    tfile = _truth_file(tmp_path, times, _field(n, LAT.size, LON.size))
    for name, m, t, match in (("long.nc", 2, n, rf"holds {n} time steps; the dashboard scores at most"),
                              ("one.nc", 1, 2, r"has 1 member; the ensemble scores need at least 2")):
        p = tmp_path / name
        xr.Dataset({"tp": (("member", "time", "lat", "lon"), _field(m, t, LAT.size, LON.size), {"units": "mm h-1"})},
                   coords={"time": times[:t], "lat": LAT, "lon": LON}).to_netcdf(p)
        with pytest.raises(ValueError, match=match):
            E.open_predictions_file(p, truth=tfile)


def test_data_prepare_reads_a_cf_pr_file(tmp_path, capsys):
    """``ppviz data prepare --tp`` on a CMIP/CORDEX-style ``pr`` (kg m-2 s-1) finds it by standard name."""
    times = pd.date_range("2021-01-01", periods=3, freq="h").values
    rate = _field(3, LAT.size, LON.size)  # mm/h
    pr = tmp_path / "pr_1hr.nc"
    xr.Dataset({"precipitation_1h": (("time", "lat", "lon"), rate / 3600.0,
                                     {"units": "kg m-2 s-1", "standard_name": "precipitation_flux"})},
               coords={"time": times, "lat": LAT, "lon": LON}).to_netcdf(pr)
    vimd = _truth_file(tmp_path, times, rate - 0.5, name="vimd")
    out = tmp_path / "prepared.nc"
    assert main(["data", "prepare", "--tp", str(pr), "--vimd", str(vimd), "--out", str(out)]) == 0
    with xr.open_dataset(out) as ds:
        np.testing.assert_allclose(ds.tp.values, rate, rtol=1e-5, atol=1e-6)
    daily = tmp_path / "pr_day.nc"
    xr.Dataset({"pr": (("time", "lat", "lon"), rate * 24.0, {"units": "mm day-1"})},
               coords={"time": times, "lat": LAT, "lon": LON}).to_netcdf(daily)
    assert main(["data", "prepare", "--tp", str(daily), "--vimd", str(vimd), "--out", str(out)]) == 0
    with xr.open_dataset(out) as ds:
        np.testing.assert_allclose(ds.tp.values, rate, rtol=1e-5, atol=1e-6)
    two = tmp_path / "two.nc"
    v = (("time", "lat", "lon"), rate, {"units": "mm h-1", "standard_name": "precipitation_flux"})
    xr.Dataset({"pr": v, "prc": v}, coords={"time": times, "lat": LAT, "lon": LON}).to_netcdf(two)
    assert main(["data", "prepare", "--tp", str(two), "--vimd", str(vimd), "--out", str(out)]) == 2
    assert "has several precipitation variables ['pr', 'prc']" in capsys.readouterr().err
