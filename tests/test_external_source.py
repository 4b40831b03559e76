"""Predictions made elsewhere as a source of the Downscale views and the A/B (ppviz.views.external).

The fixtures' members are the truth plus known offsets c_k = 0, 0.5, 1, 1.5 mm/h, so the answers are
known: the ensemble mean is the truth + 0.75, every member's power spectrum is the truth's (the
spectra leave out the mean, k = 0), the fair CRPS is mean(c) - sum|c_i - c_j| / (2 M (M - 1)) = 1/3
everywhere, and the pooled quantiles are those of the offset fields computed directly.
"""

from __future__ import annotations

import re
from types import SimpleNamespace

import netCDF4
import numpy as np
import pandas as pd
import pytest
import xarray as xr

from ppviz.data.regions import Region
from ppviz.metrics import field_spectra, pooled_quantiles
from ppviz.views import curves as C
from ppviz.views import external as X

OFFSETS = np.array([0.0, 0.5, 1.0, 1.5], np.float32)
FAIR_CRPS = 1.0 / 3.0  # 0.75 - 10 / 24
LAT = np.arange(45.0, 48.76, 0.25)  # 16 points on the data's 0.25 deg grid: 4 x 4 whole 1 deg cells
LON = np.arange(5.0, 8.76, 0.25)


def _truth(t, lat=LAT, lon=LON, seed=5):
    rng = np.random.default_rng(seed)
    x = rng.gamma(0.6, 1.5, size=(t, lat.size, lon.size))
    return np.where(rng.random(x.shape) < 0.3, 0.0, x).astype(np.float32)


def write_corrdiff(path, times, lat=LAT, lon=LON, truth=None):
    """A CorrDiff generate.py file (groups, 2-D lat/lon, int hours since 1990, kg m-2 s-1 without units)
    whose members are the truth + :data:`OFFSETS` (mm/h). Returns the truth (T, Y, X) in mm/h."""
    truth = _truth(len(times), lat, lon) if truth is None else truth
    pred = truth[None] + OFFSETS[:, None, None, None]
    hours = (pd.DatetimeIndex(times) - pd.Timestamp("1990-01-01")) // pd.Timedelta(hours=1)
    with netCDF4.Dataset(path, "w") as f:
        for d, n in (("time", None), ("ensemble", OFFSETS.size), ("y", lat.size), ("x", lon.size)):
            f.createDimension(d, n)
        lat2, lon2 = np.meshgrid(lat, lon, indexing="ij")
        f.createVariable("lat", "f4", ("y", "x"))[:] = lat2
        f.createVariable("lon", "f4", ("y", "x"))[:] = lon2
        tv = f.createVariable("time", "i8", ("time",))
        tv.units, tv.calendar = "hours since 1990-01-01", "standard"
        tv[:] = np.asarray(hours)
        for g, data, dims in (("truth", truth, ("time", "y", "x")), ("prediction", pred, ("ensemble", "time", "y", "x"))):
            f.createGroup(g).createVariable("precip", "f4", dims)[:] = data / 3600.0
    return truth


def write_cf(path, times, lat=LAT, lon=LON, truth=True, values=None):
    """A CF file: ``pr`` (realization, time, lat, lon) in kg m-2 s-1 (+ ``pr_truth``); members = truth + offsets
    (the truth: ``values`` (T, Y, X) mm/h, default random)."""
    t = _truth(len(times), lat, lon) if values is None else values
    attrs = {"units": "kg m-2 s-1", "standard_name": "precipitation_flux"}
    v = {"pr": (("realization", "time", "lat", "lon"), (t[None] + OFFSETS[:, None, None, None]) / 3600.0, attrs)}
    if truth:
        v["pr_truth"] = (("time", "lat", "lon"), t / 3600.0, attrs)
    xr.Dataset(v, coords={"realization": np.arange(1, 5), "time": times, "lat": lat, "lon": lon}).to_netcdf(path)
    return t


HOURS = pd.date_range("2021-01-01T06:00", periods=3, freq="h")
#: where and when the 3-day synthetic data rain (85 % of the cells wet): the A/B's cells and hours
WET_LAT, WET_LON = np.arange(49.0, 52.76, 0.25), np.arange(1.0, 4.76, 0.25)
WET_HOURS = pd.date_range("2021-01-03T21:00", periods=3, freq="h")


def data_truth(hours=WET_HOURS, lat=WET_LAT, lon=WET_LON) -> np.ndarray:
    """The default dataset's tp (T, Y, X) mm/h at ``hours`` on ``lat`` x ``lon`` (points of its grid)."""
    from ppviz.views import cache as M

    tp = M.dataset().tp.sel(time=hours.values).sel(lat=lat, lon=lon, method="nearest", tolerance=1e-3)
    return np.asarray(tp.values, np.float32)


@pytest.fixture()
def roots(tmp_path, monkeypatch):
    monkeypatch.setenv("PPVIZ_EVAL_ROOTS", str(tmp_path))
    return tmp_path


def test_corrdiff_members_mean_spectra_qq_crps_known_answers(roots):
    truth = write_corrdiff(roots / "corrdiff.nc", HOURS)
    src = X.PredictionsSource(str(roots / "corrdiff.nc"), units="kg m-2 s-1")
    run = X.external_run(src, "2021-01-01T07:00")
    ens = run.ensemble
    assert ens.tp_members.shape == (4, LAT.size, LON.size) and run.time == HOURS[1]
    np.testing.assert_allclose(ens.inputs.truth_tp, truth[1], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(ens.tp_members, truth[1][None] + OFFSETS[:, None, None], rtol=1e-5, atol=1e-5)
    mean, spread = C.mean_and_spread(ens)
    np.testing.assert_allclose(mean, truth[1] + 0.75, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(spread, np.full(truth[1].shape, OFFSETS.std(ddof=1)), rtol=1e-4)
    # spectra: the views' curves are the metrics' spectra of the same fields, and the members' equal the truth's
    dx = float(np.deg2rad(0.25) * 6371.0)
    sp = C.spectra(ens)
    direct = field_spectra(xr.DataArray(ens.tp_members.astype(np.float64), dims=("member", "lat", "lon")), dx)
    truth_direct = field_spectra(xr.DataArray(truth[1].astype(np.float64), dims=("lat", "lon")), dx)
    np.testing.assert_allclose(sp["members (mean)"][1], direct.mean("member").values, rtol=1e-10)
    np.testing.assert_allclose(sp["truth"][1], truth_direct.values, rtol=1e-4)
    np.testing.assert_allclose(sp["members (mean)"][1], truth_direct.values, rtol=1e-3)
    np.testing.assert_allclose(sp["truth"][0], truth_direct["wavelength_km"].values, rtol=1e-3)
    # QQ: pooled quantiles of the members and the truth, as the metrics compute them
    q = C.quantiles(ens)
    np.testing.assert_allclose(q["members"], pooled_quantiles(ens.tp_members.reshape(-1), C.QQ_LEVELS).values)
    np.testing.assert_allclose(q["truth"], pooled_quantiles(truth[1], C.QQ_LEVELS).values, rtol=1e-5)
    assert set(q) == {"truth", "members"}  # no baselines in this source
    assert C.crps_scores(ens)["ensemble (fair CRPS)"] == pytest.approx(FAIR_CRPS, rel=1e-4)
    # what only ppviz's chain makes is absent, not invented
    assert ens.inputs.coarse_tp is None and ens.inputs.truth_pp is None and ens.pp_members is None
    assert run.trajectory is None and run.info["time_step"] == "hourly" and run.label == "corrdiff.nc: prediction/precip"
    out = run.to_dataset()
    assert out.tp.dims == ("member", "time", "lat", "lon") and "tp_truth" in out


def test_cf_daily_without_truth_and_a_region_part(roots):
    days = pd.date_range("2021-01-01", periods=3, freq="D")
    write_cf(roots / "cf.nc", days, truth=False)
    src = X.PredictionsSource(str(roots / "cf.nc"))
    ds = X.open_source(src)
    assert list(X.time_options(ds)) == ["2021-01-01 00:00", "2021-01-02 00:00", "2021-01-03 00:00"]
    assert ds.attrs["time_step"] == "daily"
    run = X.external_run(src, "")  # the first time
    assert run.ensemble.inputs.truth_tp is None and run.time == days[0]
    assert C.crps_scores(run.ensemble) == {} and "truth" not in C.spectra(run.ensemble)
    # the part inside a region: 45..48.75 x 5..8.75 in a box 46.875..50.875 x 6.875..10.875 -> 8 x 8 points
    part = X.external_run(src, days[2], Region.parse("46.9,51,6.9,11"))
    assert part.ensemble.tp_members.shape == (4, 8, 8)
    np.testing.assert_allclose(part.region.fine_grid.lat, LAT[8:])
    np.testing.assert_allclose(part.region.fine_grid.lon, LON[8:])
    full = X.external_run(src, days[2])
    np.testing.assert_array_equal(part.ensemble.tp_members, full.ensemble.tp_members[:, 8:, 8:])


@pytest.mark.parametrize("case, match", [
    ("outside", "outside the directories evaluations may be read from"),
    ("missing", r"missing\.nc: no such file"),
    ("unreadable", r"garbage\.nc is not a netCDF or zarr dataset"),
    ("hour", r"time 2021-01-05 00:00 is not in .*cf\.nc: its 3 hourly times are 2021-01-01 06:00 \.\. 2021-01-01 08:00"),
    ("region", r"region Iberia .* holds 0 x 0 points of the predictions' grid \(lat 45\.\.48\.75 \(16 points"),
    ("steps", r"latitude step of 0\.25 deg and a longitude step of 0\.5 deg"),
    ("nan", r"cf\.nc: the members at 2021-01-01 06:00 has 1 missing \(NaN\) values in the region"),
])
def test_bad_sources_are_refused_with_a_message(roots, case, match):
    write_cf(roots / "cf.nc", HOURS)
    src = X.PredictionsSource(str(roots / "cf.nc"))
    when, region = "2021-01-01T06:00", None
    if case == "outside":
        src = X.PredictionsSource("/etc/hosts")
    elif case == "missing":
        src = X.PredictionsSource(str(roots / "missing.nc"))
    elif case == "unreadable":
        (roots / "garbage.nc").write_bytes(b"not a netCDF file at all")
        src = X.PredictionsSource(str(roots / "garbage.nc"))
    elif case == "hour":
        when = "2021-01-05"
    elif case == "region":
        region = Region.parse("iberia")
    elif case == "nan":
        with xr.open_dataset(roots / "cf.nc") as f:
            ds = f.load()
        ds["pr"][2, 0, 3, 4] = np.nan
        ds.to_netcdf(roots / "cf.nc")
    elif case == "steps":
        write_cf(roots / "wide.nc", HOURS, lon=np.arange(5.0, 12.6, 0.5))
        src = X.PredictionsSource(str(roots / "wide.nc"))
    with pytest.raises(ValueError, match=match):
        X.external_run(src, when, region)


def test_ab_plan_region_hour_and_refusals(roots):
    from ppviz.views import cache as M

    data = M.dataset()  # the synthetic default: 3 days from 2021-01-01 on the 0.25 deg Europe grid
    write_cf(roots / "cf.nc", HOURS)
    src = X.PredictionsSource(str(roots / "cf.nc"))
    t, reg = X.ab_plan(src, "2021-01-01T07:00", Region.parse("sample"), data)
    assert t == HOURS[1] and reg.bounds == (44.875, 48.875, 4.875, 8.875)
    np.testing.assert_allclose(reg.fine_grid.lat, LAT)
    a_inputs = SimpleNamespace(time=t, region=reg, truth_tp=np.ones(reg.fine_grid.shape, np.float32))
    b = X.ab_run(src, t, reg, SimpleNamespace(ensemble=SimpleNamespace(inputs=a_inputs)))
    assert b.ensemble.inputs is a_inputs and b.own_truth is not None
    assert C.crps_scores(b.ensemble)  # scored against the data's truth (the A run's)
    cases = [
        (src, "2021-01-05T00:00", "sample", data, r"time 2021-01-05 00:00 is not in"),
        (src, "2021-01-01T07:00", "iberia", data, r"region Iberia .* does not overlap the predictions"),
        (src, "2021-01-01T07:00", "sample", data.sel(lat=slice(50, 60)), r"the data cover lat 50\.\.60.* does not "
                                                                      r"contain region"),
    ]
    write_cf(roots / "fine.nc", HOURS, lat=np.arange(45.0, 48.8, 0.1), lon=np.arange(5.0, 8.8, 0.1))
    cases.append((X.PredictionsSource(str(roots / "fine.nc")), "2021-01-01T07:00", "sample", data,
                  r"the grids differ: predictions lat 45\.\.48\.7 \(38 points, step 0\.1\).* points at 33 \+ k x 0\.25"))
    write_cf(roots / "small.nc", HOURS, lat=np.arange(45.0, 46.01, 0.25))
    cases.append((X.PredictionsSource(str(roots / "small.nc")), "2021-01-01T07:00", "sample", data,
                  r"points inside region Sample box .*\(lat 45\.\.46, lon 5\.\.8\.75\) hold only 1 x 4 whole 1 deg "
                  r"cells"))
    write_cf(roots / "daily.nc", pd.date_range("2021-01-01", periods=3, freq="D"))
    cases.append((X.PredictionsSource(str(roots / "daily.nc")), "2021-01-01", "sample", data,
                  r"daily.nc holds daily predictions \(rates over 24 h\); an A/B .* needs hourly predictions"))
    for source, when, region, d, match in cases:
        with pytest.raises(ValueError, match=match):
            X.ab_plan(source, when, Region.parse(region), d)


def _wait(jobs, seconds=180):
    """Poll a page's JobView until its runs are done."""
    import time

    deadline = time.time() + seconds
    while jobs.busy:
        assert time.time() < deadline, "the run did not finish"
        time.sleep(0.1)
        jobs.poll()


def test_downscale_page_shows_a_predictions_source_and_refuses_bad_values(roots):
    """The page's Source: the file's members, mean and truth drawn; each bad value a message, the page serving."""
    import panel as pn
    from bokeh.document import Document
    from panel.io.state import set_curdoc

    from pages import downscale_fields as F
    from pages.common import SharedState
    from pages.downscale import DownscalePage
    from ppviz.views import cache as M

    truth = write_corrdiff(roots / "corrdiff.nc", HOURS)
    doc = Document()
    with set_curdoc(doc):
        page = DownscalePage(SharedState(M.dataset(), time="2021-01-01T07:00", region="sample"))
        doc.add_root(pn.panel(page).get_root(doc))
        page.source.param.update(source="predictions", path=str(roots / "corrdiff.nc"), units="kg m-2 s-1")
        v = page._view
        assert F.is_external(v) and v.run.time == HOURS[1]  # the page's hour, which the file has
        np.testing.assert_allclose(F.field("mean", v)[0], truth[1] + 0.75, rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(F.field("truth_tp", v)[0], truth[1], rtol=1e-5, atol=1e-6)
        for name in ("coarse_tp", "coarse_pp", "truth_pp", "member_pp"):
            values, _, _, title = F.field(name, v)
            assert title.endswith("not in this source") and np.isnan(values).all()
        assert "prediction/precip" in page._status.object and "4 members" in page._status.object
        assert page.source._time.label == "Time of the predictions (hourly)"
        assert "0.3333" in page._scores.object  # the fair CRPS of the offsets
        page.source.when = "2021-01-01T08:00"
        assert page._view.run.time == HOURS[2]
        with xr.open_dataset(page._netcdf()) as nc:  # the export: the shown members and truth, CF
            assert nc.tp.dims == ("member", "time", "lat", "lon") and str(nc.time.values[0]).startswith("2021-01-01T08")
            np.testing.assert_allclose(nc.tp_truth.values[0], truth[2], rtol=1e-5, atol=1e-6)
        assert page._png_bytes().getvalue()[:4] == b"\x89PNG"
        for change, match in ((dict(when="2021-01-05T00:00"), r"time 2021\\-01\\-05 00\\:00 is not in"),
                              (dict(path="/etc/hosts"), "is outside the directories evaluations may be read from"),
                              (dict(path=str(roots / "none.nc")), r"none\\.nc\\: no such file"),
                              (dict(units=""), r"has no units attribute")):
            before = {k: getattr(page.source, k) for k in change}
            page.source.param.update(**change)
            assert re.search(match, page._messages.objects[0].object), page._messages.objects[0].object
            assert "Showing the last valid view" in page._status.object  # the page keeps serving
            page.source.param.update(**before)
        page.source.crop = True  # the region 'sample' holds the whole grid: same view
        assert page._view.run.ensemble.tp_members.shape == (4, LAT.size, LON.size)
        page._on_run()  # nothing to run for a file
        assert "shown as it is" in page._messages.objects[0].object
        page.source.source = "checkpoint"  # back to today's view
        assert not F.is_external(page._view) and page._view.inputs.coarse_tp is not None


def test_checkpoints_page_ab_checkpoint_against_predictions(roots, monkeypatch):
    """A = a tiny checkpoint on the predictions' hour and cells, B = the file's members, both vs the data's truth."""
    import panel as pn
    from bokeh.document import Document
    from panel.io.state import set_curdoc

    from pages.checkpoints import CheckpointsPage
    from pages.common import SharedState
    from ppviz.diffusion.tiny import save_tiny_diffusion
    from ppviz.views import cache as M

    save_tiny_diffusion(roots / "ckpts", "tiny-ab", seed=0)
    monkeypatch.setenv("PPVIZ_CHECKPOINTS", str(roots / "ckpts"))
    monkeypatch.setenv("PPVIZ_DEFAULT_DIFFUSION", "tiny-ab")
    write_cf(roots / "cf.nc", WET_HOURS, lat=WET_LAT, lon=WET_LON, values=data_truth())
    write_cf(roots / "fine.nc", WET_HOURS, lat=np.arange(49.0, 52.8, 0.1), lon=np.arange(1.0, 4.8, 0.1))
    doc = Document()
    with set_curdoc(doc):
        page = CheckpointsPage(SharedState(M.dataset(), time="2021-01-03T22:00", region="sample"), members=2, steps=4,
                               ckpt_a="tiny-ab")
        doc.add_root(pn.panel(page).get_root(doc))
        page.b_source.param.update(source="predictions", path=str(roots / "cf.nc"))
        page._on_compare()
        _wait(page._ab.jobs)
        a, b = page._ab.runs["A"], page._ab.runs["B"]
        assert a.region.bounds == (48.875, 52.875, 0.875, 4.875) and a.time == WET_HOURS[1]
        assert b.ensemble.tp_members.shape == (4, 16, 16) and b.ensemble.inputs is a.ensemble.inputs
        assert "B: cf\\.nc\\: pr" in page._ab.scores.object and "against the data's truth" in page._ab.scores.object
        assert C.crps_scores(b.ensemble)["ensemble (fair CRPS)"] == pytest.approx(FAIR_CRPS, rel=1e-4)
        assert "| 0.3333 |" in page._ab.scores.object  # B against the data's truth, which is the file's
        assert np.abs(b.own_truth - a.ensemble.inputs.truth_tp).max() < 1e-5
        page.b_source.path = str(roots / "fine.nc")
        page._on_compare()
        assert "the grids differ" in page._messages.objects[0].object
        page.state.time = "2021-01-02T07:00"
        page.b_source.path = str(roots / "cf.nc")
        page._on_compare()
        assert re.search(r"time 2021\\-01\\-02 07\\:00 is not in", page._messages.objects[0].object)
        page.state.time = "2021-01-03T22:00"
        page.b_source.source = "checkpoint"  # back to two checkpoints
        assert page._requests().keys() == {"A", "B"} and page._plan is None
