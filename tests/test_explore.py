"""The computations behind the dashboard (ppviz.views, ppviz.views.figures) on a tiny untrained model."""

from __future__ import annotations

import json

import numpy as np
import pytest
import xarray as xr

from ppviz.jobs import CANCELLED, DONE, JobQueue, ResultCache
from ppviz.request import DownscaleRequest

T = "2021-01-02T06:00"


@pytest.fixture(scope="module")
def run(tiny):
    from ppviz.views.runs import run_ensemble

    return run_ensemble(DownscaleRequest(tiny, T, "sample", members=3, steps=4, seed=1))


def test_parse_region_and_box_text():
    from ppviz.views.cache import box_text, parse_region

    assert parse_region("alps").name == "alps"
    from ppviz.data.regions import Region

    assert parse_region("custom", "44,48,5,12") == Region.parse("44,48,5,12")
    with pytest.raises(ValueError, match="covers only 1 x 1 coarse cells"):
        parse_region("custom", "45,46,5,6")
    with pytest.raises(ValueError, match="enter a custom box"):
        parse_region("custom", " ")
    assert box_text(12.0, 48.5, 5.0, 44.25) == "44.25,48.5,5,12"


def test_checkpoint_names_refuse_paths(tiny):
    from ppviz.checkpoints import check_checkpoint
    from ppviz.views.cache import preferred_checkpoint

    assert check_checkpoint(tiny, "diffusion") == tiny
    with pytest.raises(ValueError, match="paths are not accepted"):
        check_checkpoint("/etc", "diffusion")
    with pytest.raises(ValueError, match="no pp checkpoint chosen|no diffusion checkpoint chosen"):
        check_checkpoint("", "diffusion")
    assert preferred_checkpoint("pp")


def test_inputs_without_a_diffusion_model():
    from ppviz.views.cache import dataset, inputs, parse_region

    inp = inputs(dataset(), T, parse_region("sample"))
    assert inp.coarse_tp.shape == (10, 10) and inp.truth_tp.shape == (40, 40)
    assert np.isfinite(inp.coarse_pp).all()


def test_run_request_validates_and_keys():
    r = DownscaleRequest("x", T, "sample", members=2, steps=3)
    assert r.key == DownscaleRequest("x", "2021-01-02 06:00", "Sample", members=2, steps=3).key
    with pytest.raises(ValueError, match="members must be"):
        DownscaleRequest("x", T, "sample", members=0).validate()
    with pytest.raises(ValueError, match="steps must be"):
        DownscaleRequest("x", T, "sample", steps=0).validate()  # 1 is allowed: a student's


def test_run_has_trajectory_and_dataset(run):
    ens, traj = run.ensemble, run.trajectory
    assert ens.tp_members.shape == (3, 40, 40)
    assert len(traj) == 4 and traj.x.shape == traj.denoised.shape == traj.tp.shape == (4, 40, 40)
    assert traj.sigma[-1] == 0.0 and (np.diff(traj.sigma) < 0).all()
    ds = run.to_dataset()
    assert ds["tp"].dims == ("member", "time", "lat", "lon") and ds.attrs["members"] == 3


def test_curves(run):
    from ppviz.views import curves as C

    ens = run.ensemble
    sp = C.spectra(ens, [0, 2])
    assert {"truth", "bicubic", "members (mean)", "ensemble mean", "member 0", "member 2"} <= set(sp)
    assert "member 1" not in sp
    wl, p = sp["truth"]
    assert (np.diff(wl) < 0).all() and np.isfinite(p).all()
    q = C.quantiles(ens)
    assert set(q) >= {"truth", "members", "bicubic"} and (np.diff(q["truth"]) >= 0).all()
    mean, spread = C.mean_and_spread(ens, [1])
    np.testing.assert_allclose(mean, ens.tp_members[1], rtol=1e-6)
    assert (spread == 0).all()
    scores = C.crps_scores(ens)
    assert "ensemble (fair CRPS)" in scores and all(v >= -1e-9 for v in scores.values())
    assert C.selected(ens, [5, -1]) == [0, 1, 2]  # nothing valid: all


def test_submit_caches_and_cancels(tiny):
    from ppviz.views.runs import submit

    queue, cache = JobQueue(1), ResultCache(4)
    try:
        req = DownscaleRequest(tiny, T, "sample", members=2, steps=3, seed=7)
        run, job = submit(req, queue=queue, cache=cache)
        assert run is None and job.wait(120) and job.status == DONE
        run, job = submit(req, queue=queue, cache=cache)
        assert job is None and run.request == req
        long = DownscaleRequest(tiny, T, "europe", members=8, steps=400, seed=7)
        _, job = submit(long, queue=queue, cache=cache)
        for _ in range(600):
            if job.progress > 0:
                break
            job.wait(0.1)
        job.cancel()
        assert job.wait(120) and job.status == CANCELLED and long.key not in cache
    finally:
        queue.shutdown()


def test_latent_and_ringing_fields():
    from ppviz.views import latent as L
    from ppviz.views import ringing as G
    from ppviz.views.cache import dataset, load_pp, parse_region

    reg = parse_region("sample")
    f = L.pp_fields(dataset(), T, reg)
    assert f["pp"].shape == (40, 40) and "ks_normal" in f["scores"]
    n = L.normal_comparison(f["pp"])
    assert n["density"].size == 60 and np.isclose((n["density"] * np.diff(n["edges"])).sum(), 1.0)
    s = L.encoder_surface(load_pp().model, n_tp=5, n_vimd=4)
    assert s["pp"].shape == (4, 5) and s["pp_dry"].shape == (4,)
    pp, tp = L.decoder_curve(load_pp().model, n=50)
    assert (np.diff(tp) >= -1e-6).all() and tp[0] == 0.0
    g = G.gibbs_fields(dataset(), T, reg, cutoff_km=222, method="dct")
    assert g["negative"].shape == (40, 40) and 0 <= g["edge_row"] < 40
    assert g["diagnostics"]["pp_truncated_decoded"]["negative_fraction"] == 0.0
    assert len(G.diagnostics_rows(g["diagnostics"])) == 6
    with pytest.raises(ValueError, match="positive"):
        G.gibbs_fields(dataset(), T, reg, cutoff_km=-1)


def test_rain_edge_row():
    from ppviz.views.ringing import rain_edge_row

    tp = np.zeros((6, 8))
    tp[3, 4:] = 5.0
    tp[1, 2:] = 0.5
    assert rain_edge_row(tp) == 3
    assert rain_edge_row(np.zeros((5, 5))) == 2


def test_evaluation_round_trip_and_roots(tiny, tmp_path, monkeypatch):
    from ppviz.views import evaluation as E

    req = DownscaleRequest(tiny, "2021-01-02T06", "sample", members=2, steps=4, end="2021-01-02T07")
    res = E.evaluate_range(req)
    assert res.scalars["n_times"] == 2 and "spectrum" in res.curves
    assert res.maps["percentile_ratio"].dims == ("forecast", "percentile", "lat", "lon")
    assert res.settings["n_members"] == 2 and res.gibbs["pp_truncated_decoded"]["negative_fraction"] == 0.0
    out = E.save_evaluation(res, tmp_path / "ev")
    assert sorted(f.name for f in out.iterdir()) == ["metrics.json", "metrics.nc"]  # the ppviz evaluate layout
    assert json.loads((out / "metrics.json").read_text())["info"]["n_times"] == 2
    monkeypatch.setenv("PPVIZ_EVAL_ROOTS", str(tmp_path))
    back = E.load_evaluation(out)
    assert back.scalars["crps"].keys() == res.scalars["crps"].keys()
    xr.testing.assert_allclose(back.curves["spectrum"], res.curves["spectrum"])
    xr.testing.assert_allclose(back.maps["percentile_ratio"], res.maps["percentile_ratio"])
    assert "crps" in back.gridded and back.gibbs == json.loads((out / "metrics.json").read_text())["gibbs"]
    with pytest.raises(ValueError, match="outside the directories"):
        E.load_evaluation("/etc")
    with pytest.raises(ValueError, match="no metrics.json"):
        E.load_evaluation(tmp_path)
    with pytest.raises(ValueError, match="at least 2 members"):
        E.validate_evaluation(DownscaleRequest(tiny, "2021-01-02T06", "sample", members=1, end="2021-01-02T07"), None)
    with pytest.raises(ValueError, match="before start"):
        from ppviz.views.cache import dataset

        E.validate_evaluation(DownscaleRequest(tiny, "2021-01-02T07", "sample", end="2021-01-02T06"), dataset())


def test_ensemble_png(run):
    from ppviz.views.figures import ensemble_png

    png = ensemble_png(run, member=1, members=[0, 1])
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 20_000


def test_a_data_file_that_vanishes_gives_a_message_and_comes_back(tmp_path, monkeypatch):
    import ppviz.views.cache as em
    from ppviz.data.canonical import write_dataset
    from ppviz.data.source import load_dataset

    path = tmp_path / "data.nc"
    write_dataset(load_dataset(None).isel(time=slice(0, 2)).load(), path)
    monkeypatch.setenv("PPVIZ_DATA", str(path))
    monkeypatch.setattr(em, "_datasets", {})
    assert em.dataset().sizes["time"] == 2
    moved = tmp_path / "away.nc"
    path.rename(moved)
    with pytest.raises(FileNotFoundError, match="has gone away while the app was running"):
        em.dataset()
    with pytest.raises(FileNotFoundError, match="no dataset at"):
        em.dataset()  # still gone: the plain message, no crash
    moved.rename(path)
    assert em.dataset().sizes["time"] == 2  # back: reopened
