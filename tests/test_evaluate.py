"""ppviz evaluate (metrics.json, metrics.nc, figures), the tp-target control model, bad inputs."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import xarray as xr

from ppviz.checkpoints import save_checkpoint
from ppviz.cli import main
from ppviz.data.canonical import write_dataset
from ppviz.data.grid import coarsen_blocks
from ppviz.data.regions import Region
from ppviz.data.source import load_dataset
from ppviz.diffusion import Downscaler, DownscalerConfig
from ppviz.models.pp import PPAutoencoder, PPConfig
from ppviz.models.unet import UNetConfig
from ppviz.pipeline import Models, downscale, downscale_time
from ppviz.request import DownscaleRequest
from ppviz.evaluation.figures import FIGURES
from ppviz.tp_target import LogTPTransform, target_of, transform_from_extra

REGION = "alps"
TRANSFORM = LogTPTransform(mu=0.12, sd=0.42)


def _tiny_downscaler():
    return Downscaler(DownscalerConfig(unet=UNetConfig(base_channels=8, channel_mult=(1, 2), blocks_per_level=1),
                                       sigma_data=0.5))


@pytest.fixture(scope="module")
def ckpt_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("ckpts")
    torch.manual_seed(0)
    pp = PPAutoencoder(PPConfig(hidden=8, depth=1))
    save_checkpoint(pp, d / "test-pp", kind="pp", architecture="pp-mlp")
    dif = _tiny_downscaler()
    save_checkpoint(dif, d / "test-edm", kind="diffusion", architecture="edm-unet",
                    config=dif.config.to_dict(), extra={"pp_checkpoint": "test-pp"})
    tp = _tiny_downscaler()
    save_checkpoint(tp, d / "test-edm-tp", kind="diffusion", architecture="edm-unet", config=tp.config.to_dict(),
                    extra={"pp_checkpoint": "test-pp", "target": "tp", "tp_transform": TRANSFORM.to_dict()})
    return d


@pytest.fixture(scope="module")
def env(ckpt_dir):
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("PPVIZ_CHECKPOINTS", str(ckpt_dir))
        yield ckpt_dir


@pytest.fixture(scope="module")
def ds():
    return load_dataset(None)


@pytest.fixture(scope="module")
def ens_file(env, ds, tmp_path_factory):
    """A small downscale output: 3 times x 3 members over the Alps, tiny untrained models."""
    job = DownscaleRequest(data=None, region=REGION, checkpoint="test-edm", pp_checkpoint="test-pp", members=3, steps=3)
    out = downscale(job, list(ds.time.values[[5, 11, 17]]), progress=False, command="test")
    path = tmp_path_factory.mktemp("ens") / "alps.nc"
    write_dataset(out, path)
    return path


def _cli(args, capsys):
    code = main([str(a) for a in args])
    cap = capsys.readouterr()
    return code, cap.out, cap.err


def test_evaluate_writes_metrics_json_nc_and_figures(env, ens_file, tmp_path, capsys):
    out = tmp_path / "report"
    code, stdout, err = _cli(["evaluate", "--ensemble", ens_file, "--out", out, "--max-map-dates", "2"], capsys)
    assert code == 0, err
    doc = json.loads((out / "metrics.json").read_text())
    s = doc["scalars"]
    assert s["n_times"] == 3 and s["n_members"] == 3
    assert set(s["crps"]) == {"ensemble", "bicubic", "nearest", "pp_bicubic", "ensemble_mean"}
    assert {"25-100 km", "50-200 km"} <= set(s["lsd_db"]["ensemble"])
    assert {"0.99", "0.999"} <= set(s["quantiles"]["truth"]) and set(s["wet_frequency"]["truth"]) == {"0.1", "1", "5"}
    assert [r["forecast"] for r in doc["table"]][:2] == ["truth", "ensemble"]
    g = doc["gibbs"]
    assert "skipped" not in g and g["pp_checkpoint"] == "test-pp" and g["times"] == 3
    assert 0.0 <= g["tp_truncated"]["negative_fraction"] <= 1.0
    nc = xr.open_dataset(out / "metrics.nc")
    assert nc["crps"].dims == ("forecast", "lat", "lon") and "spectrum" in nc
    assert nc["percentile_ratio"].dims == ("forecast", "percentile", "lat", "lon")
    for name in FIGURES.values():
        data = (out / name).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000, name
    assert not list(out.glob(".*"))  # atomic writes left no temporaries
    assert "CRPSS" in stdout and "spread-skill" in stdout and "Gibbs" in stdout


def test_evaluate_zarr_on_a_local_cluster_equals_serial(env, ens_file, tmp_path, capsys):
    z = tmp_path / "alps.zarr"
    write_dataset(xr.open_dataset(ens_file).load(), z)
    args = ["evaluate", "--ensemble", z, "--baselines", "bicubic", "--max-map-dates", "0", "--time-chunk", "1"]
    code, stdout, err = _cli(args + ["--workers", "2", "--out", tmp_path / "dask"], capsys)
    assert code == 0, err
    assert "LocalCluster with 2 workers" in stdout
    code, _, err = _cli(args + ["--out", tmp_path / "serial"], capsys)
    assert code == 0, err
    a = json.loads((tmp_path / "dask" / "metrics.json").read_text())["scalars"]
    b = json.loads((tmp_path / "serial" / "metrics.json").read_text())["scalars"]
    assert set(a["crps"]) == {"ensemble", "bicubic", "ensemble_mean"}
    assert a["crps"] == b["crps"] and a["rank_histogram"] == b["rank_histogram"]
    assert not (tmp_path / "serial" / FIGURES["maps"]).exists()


def test_tp_transform_round_trip():
    t = LogTPTransform.fit(np.r_[np.zeros(500), np.random.default_rng(0).gamma(0.5, 2.0, 500)])
    tp = np.array([0.0, 1e-4, 0.05, 0.1, 1.0, 7.5, 120.0])
    np.testing.assert_allclose(t.inverse(t.forward(tp)), tp, rtol=1e-5, atol=1e-6)
    assert t.inverse(t.forward(0.0)) == 0.0 and t.forward(0.0) == pytest.approx(t.z_dry)
    assert (t.inverse(np.array([t.z_dry - 0.5, -50.0])) == 0.0).all()  # below the dry value: exactly 0
    z = t.forward(np.r_[np.zeros(500), np.random.default_rng(0).gamma(0.5, 2.0, 500)])
    assert abs(z.mean()) < 1e-5 and abs(z.std() - 1) < 1e-5  # fitted: standardised on its data
    assert LogTPTransform.from_dict(t.to_dict()) == t
    assert target_of({}) == "pp" and transform_from_extra({"target": "pp"}) is None
    with pytest.raises(ValueError, match="target 'x' is unknown"):
        target_of({"target": "x"})
    with pytest.raises(ValueError, match="needs extra.tp_transform"):
        transform_from_extra({"target": "tp"})


def test_tp_target_model_skips_pp_in_the_pipeline(env, ds):
    models = Models.load("test-edm-tp", "test-pp", "cpu")
    assert models.target == "tp" and models.transform == TRANSFORM
    region = Region.parse(REGION)
    t = ds.time.values[5]
    ens = downscale_time(models, ds, t, region, members=2, steps=3, seed=1)
    inp = ens.inputs
    # conditioning: block mean of the transformed fine tp (as in training), not the coarse PP
    np.testing.assert_allclose(inp.coarse_cond, coarsen_blocks(TRANSFORM.forward(inp.truth_tp), region.fine_grid.lat),
                               rtol=1e-5, atol=1e-6)
    assert not np.allclose(inp.conditioning, inp.coarse_pp)
    # decode: the inverse transform of the generated members
    np.testing.assert_array_equal(ens.tp_members, TRANSFORM.inverse(ens.pp_members))
    assert (ens.tp_members >= 0).all() and np.isfinite(ens.tp_members).all()
    out = ens.to_dataset()
    assert "tp_z" in out and "pp" not in out and "tp_z_coarse" in out and "pp_truth" in out
    assert out["tp_z"].dims == ("member", "time", "lat", "lon")
    assert models.provenance["diffusion_target"] == "tp"
    # the PP model's path is unchanged
    pp_models = Models.load("test-edm", "test-pp", "cpu")
    assert pp_models.target == "pp" and "pp" in downscale_time(pp_models, ds, t, region, members=2, steps=3).to_dataset()


def test_tp_target_downscale_output_evaluates(env, ds, tmp_path, capsys):
    job = DownscaleRequest(data=None, region=REGION, checkpoint="test-edm-tp", pp_checkpoint="test-pp", members=2, steps=3)
    res = downscale(job, list(ds.time.values[[5, 6]]), progress=False)
    assert res.attrs["diffusion_target"] == "tp" and "inverse transform" in res.attrs["source"]
    write_dataset(res, tmp_path / "tp.nc")
    code, stdout, err = _cli(["evaluate", "--ensemble", tmp_path / "tp.nc", "--out", tmp_path / "r",
                              "--baselines", "bicubic,pp_bicubic", "--max-map-dates", "1"], capsys)
    assert code == 0, err
    assert json.loads((tmp_path / "r" / "metrics.json").read_text())["info"]["diffusion_target"] == "tp"


def test_bad_inputs_exit_2_with_one_line(env, ens_file, tmp_path, capsys):
    not_nc = tmp_path / "text.nc"
    not_nc.write_text("not a netCDF file\n")
    no_truth = tmp_path / "no_truth.nc"
    write_dataset(xr.open_dataset(ens_file).drop_vars("tp_truth").load(), no_truth)
    cases = [
        (tmp_path / "missing.nc", [], "no such file"),
        (not_nc, [], "is not a netCDF or zarr dataset"),
        (no_truth, [], "no 'tp_truth'"),
        (ens_file, ["--baselines", "bicubic,splines"], "baselines ['splines'] are not in the file"),
        (ens_file, ["--max-map-dates", "99"], "--max-map-dates 99 is out of range"),
    ]
    for path, extra, msg in cases:
        code, _, err = _cli(["evaluate", "--ensemble", path, "--out", tmp_path / "o", *extra], capsys)
        assert code == 2 and err.count("\n") == 1 and msg in err, (msg, err)
