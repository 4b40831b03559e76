"""The first look (default region and rainiest hour) and the Downscale page's time span."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from ppviz.data.regions import Region
from ppviz.views import highlights as H
from ppviz.views import timeline as T


def _dataset(lat, lon, hours=6, wet_hour=3, wet_box=None):
    times = pd.date_range("2021-01-01", periods=hours, freq="h")
    tp = np.zeros((hours, lat.size, lon.size), np.float32)
    la, lo = np.meshgrid(lat, lon, indexing="ij")
    inside = np.ones_like(la, bool) if wet_box is None else \
        (la >= wet_box[0]) & (la <= wet_box[1]) & (lo >= wet_box[2]) & (lo <= wet_box[3])
    tp[wet_hour][inside] = 5.0
    return xr.Dataset({"tp": (("time", "lat", "lon"), tp), "vimd": (("time", "lat", "lon"), np.zeros_like(tp))},
                      coords={"time": times, "lat": lat, "lon": lon})


def test_default_view_is_the_rainiest_hour_of_a_region_inside_the_data():
    # the data cover 45-55N, 0-10E (the ERA5 sample box): the sample region fits
    ds = _dataset(np.arange(45.0, 55.0, 0.25), np.arange(0.0, 10.0, 0.25), wet_hour=4)
    t, region = H.default_view(ds)
    assert region == "sample" and t == pd.Timestamp("2021-01-01T04:00")


def test_default_region_skips_regions_outside_the_data():
    # the Alps box only: the sample box (45-55N, 0-10E) is not inside
    g = Region.parse("alps").fine_grid
    ds = _dataset(np.asarray(g.lat), np.asarray(g.lon), wet_hour=2)
    assert H.default_region(ds) == "alps"
    assert H.rainiest_hour(ds, "alps") == pd.Timestamp("2021-01-01T02:00")
    with pytest.raises(ValueError, match="does not contain region sample"):
        H.rainiest_hour(ds, "sample")


def test_default_request_carries_the_default_view():
    ds = _dataset(np.arange(45.0, 55.0, 0.25), np.arange(0.0, 10.0, 0.25), wet_hour=5)
    from ppviz.views.runs import default_request

    req = default_request(ds, "some-checkpoint")
    assert (req.time, req.region, req.members, req.steps) == ("2021-01-01T05:00", "sample", 4, 8)


def test_span_times_stop_at_the_end_of_the_data_and_refuse_bad_spans():
    ds = _dataset(np.arange(45.0, 47.0, 0.25), np.arange(0.0, 2.0, 0.25), hours=6)
    assert [t.hour for t in T.span_times(ds, "2021-01-01T03:00", 12)] == [3, 4, 5]
    assert len(T.span_times(ds, "2021-01-01T00:00", 2)) == 2
    with pytest.raises(ValueError, match="allowed: 1 to 72"):
        T.span_times(ds, "2021-01-01T00:00", 0)
    with pytest.raises(ValueError, match="outside the data"):
        T.span_times(ds, "2021-02-01T00:00", 3)


def _run(hour, members, truth):
    ens = SimpleNamespace(tp_members=np.asarray(members, np.float32), baselines={"bicubic": truth * 0.5},
                          inputs=SimpleNamespace(truth_tp=truth))
    return SimpleNamespace(ensemble=ens, time=pd.Timestamp("2021-01-01") + pd.Timedelta(hours=hour))


def test_cell_series_and_accumulation_of_known_runs():
    truth = np.arange(4, dtype=np.float32).reshape(2, 2)
    runs = [_run(h, [np.full((2, 2), h), np.full((2, 2), h + 2.0)], truth + h) for h in range(3)]
    s = T.cell_series(runs, 1, 0)
    np.testing.assert_allclose(s["mean"], [1, 2, 3])
    np.testing.assert_allclose(s["lo"], [0, 1, 2])
    np.testing.assert_allclose(s["hi"], [2, 3, 4])
    np.testing.assert_allclose(s["truth"], [2, 3, 4])
    np.testing.assert_allclose(s["bicubic"], [1, 1.5, 2])
    acc = T.accumulate(runs)
    assert acc["hours"] == 3
    np.testing.assert_allclose(acc["members"][0], np.full((2, 2), 3.0))  # 0 + 1 + 2 mm
    np.testing.assert_allclose(acc["mean"], np.full((2, 2), 6.0))  # (3 + 9) / 2
    np.testing.assert_allclose(acc["truth"], 3 * truth + 3)
    with pytest.raises(ValueError, match="no computed hours"):
        T.accumulate([])


def test_cell_index_finds_the_cell_and_refuses_points_outside():
    region = Region.parse("sample")
    i, j = T.cell_index(region, 50.1, 5.1)
    g = region.fine_grid
    assert abs(g.lat[i] - 50.1) <= 0.125 and abs(g.lon[j] - 5.1) <= 0.125
    with pytest.raises(ValueError, match="outside the region"):
        T.cell_index(region, 60.0, 5.0)


@pytest.mark.parametrize("name, log_every, records", [("edm-pp-v1", 50, 40), ("edm-pp-v2", 100, 48)])
def test_the_default_checkpoint_ships_its_evaluation_and_training_curves(name, log_every, records):
    """pretrained/edm-pp-v2 (the default) and edm-pp-v1 carry a held-out `ppviz evaluate`
    directory and their training logs."""
    from ppviz.checkpoints import default_checkpoint
    from ppviz.views import curves as C
    from ppviz.views import evaluation as E

    assert default_checkpoint("diffusion") == "edm-pp-v2"
    res = E.shipped_evaluation(name)
    assert res is not None and "shipped with the checkpoint" in res.source
    assert res.scalars["n_times"] == 6 and res.scalars["n_members"] == 4
    assert res.settings["region"] == "sample"
    assert {"spectrum", "rank_histogram"} <= set(res.curves.data_vars)
    log = C.training_curves(name)
    assert log["step"][0] == log_every and log["step"].size == records
    assert log["loss"][-1] < log["loss"][0] / 2  # it learned
    assert "lr" not in log and "seconds" not in log


def test_inputs_of_an_hour_are_computed_once_and_kept_per_dataset_hour_region():
    """Pages of a new session ask for the same hour's inputs: the second ask is the kept object;
    another hour, region or dataset object is computed anew."""
    from ppviz.views import cache as M

    ds = M.dataset()
    region = M.parse_region(M.first_region(ds))
    t0, t1 = ds.time.values[5], ds.time.values[6]
    a = M.inputs(ds, t0, region)
    assert M.inputs(ds, t0, region) is a
    assert M.inputs(ds, t1, region) is not a
    other = ds.copy()  # same values, another dataset object: not served from the first one's entry
    b = M.inputs(other, t0, region)
    assert b is not a
    np.testing.assert_array_equal(b.coarse_pp, a.coarse_pp)
