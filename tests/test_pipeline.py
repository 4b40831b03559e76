"""The downscaling pipeline and its CLI: shapes, seeds, references, provenance, dask."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import xarray as xr

from ppviz.checkpoints import save_checkpoint
from ppviz.cli import main
from ppviz.data.grid import coarsen_blocks
from ppviz.data.regions import Region
from ppviz.data.source import load_dataset
from ppviz.diffusion import Downscaler, DownscalerConfig
from ppviz.models.pp import PPAutoencoder, PPConfig, encode_numpy
from ppviz.models.unet import UNetConfig
from ppviz.pipeline import Models, coarse_input, downscale, downscale_time, member_seed
from ppviz.request import DownscaleRequest

REGION = "alps"  # 44-48N, 5-16E after snapping: not a multiple of the U-Net's size, so it pads


@pytest.fixture(scope="module")
def ckpt_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("ckpts")
    torch.manual_seed(0)
    pp = PPAutoencoder(PPConfig(hidden=8, depth=1))
    save_checkpoint(pp, d / "test-pp", kind="pp", architecture="pp-mlp")
    dif = Downscaler(DownscalerConfig(unet=UNetConfig(base_channels=8, channel_mult=(1, 2), blocks_per_level=1),
                                      sigma_data=0.5))
    save_checkpoint(dif, d / "test-edm", kind="diffusion", architecture="edm-unet",
                    config=dif.config.to_dict(), extra={"pp_checkpoint": "test-pp"})
    return d


@pytest.fixture
def models(ckpt_dir, monkeypatch):
    monkeypatch.setenv("PPVIZ_CHECKPOINTS", str(ckpt_dir))
    return Models.load("test-edm", "test-pp", "cpu")


@pytest.fixture(scope="module")
def ds():
    return load_dataset(None)


def _t(ds, i=5):
    return ds.time.values[i]


def test_one_time_shapes_references_and_dataset(models, ds):
    region = Region.parse(REGION)
    ens = downscale_time(models, ds, _t(ds), region, members=3, steps=3, seed=1)
    H, W = region.fine_grid.shape
    assert ens.pp_members.shape == ens.tp_members.shape == (3, H, W)
    assert ens.inputs.coarse_tp.shape == ens.inputs.coarse_pp.shape == (H // 4, W // 4)
    assert (ens.tp_members >= 0).all() and np.isfinite(ens.pp_members).all()
    assert set(ens.baselines) == {"bicubic", "nearest", "pp_bicubic"}
    for b in ens.baselines.values():
        assert b.shape == (H, W) and (b >= 0).all()
    # nearest keeps block means exactly
    np.testing.assert_allclose(coarsen_blocks(ens.baselines["nearest"], region.fine_grid.lat), ens.inputs.coarse_tp,
                               rtol=1e-5, atol=1e-6)
    out = ens.to_dataset()
    assert out["tp"].dims == ("member", "time", "lat", "lon") and out.sizes["member"] == 3
    assert out["tp"].attrs["units"] == "mm h-1" and out["tp_truth"].dims == ("time", "lat", "lon")
    assert out["tp_coarse"].dims == ("time", "lat_coarse", "lon_coarse")
    assert all(out[v].dtype == np.float32 for v in ("tp", "pp", "tp_truth", "tp_bicubic"))


def test_coarse_pp_is_the_block_mean_of_the_fine_pp_as_in_training(models, ds):
    region = Region.parse(REGION)
    inp = coarse_input(models, ds, _t(ds), region, "fine")
    fine = region.subset(ds.sel(time=_t(ds)))
    pp = encode_numpy(models.pp, fine["tp"].values, fine["vimd"].values)
    np.testing.assert_allclose(inp.coarse_pp, coarsen_blocks(pp, region.fine_grid.lat), rtol=1e-5, atol=1e-6)
    other = coarse_input(models, ds, _t(ds), region, "coarse")
    assert other.coarse_pp.shape == inp.coarse_pp.shape and not np.allclose(other.coarse_pp, inp.coarse_pp)


def test_same_seed_same_members_and_members_independent_of_the_count(models, ds):
    region = Region.parse(REGION)
    a = downscale_time(models, ds, _t(ds), region, members=2, steps=3, seed=7)
    b = downscale_time(models, ds, _t(ds), region, members=3, steps=3, seed=7, max_batch=1)
    c = downscale_time(models, ds, _t(ds), region, members=2, steps=3, seed=8)
    np.testing.assert_allclose(a.pp_members, b.pp_members[:2], rtol=1e-5, atol=1e-5)
    assert not np.allclose(a.pp_members, c.pp_members)
    assert not np.allclose(a.pp_members[0], a.pp_members[1])
    assert a.seeds == [member_seed(7, _t(ds), k) for k in range(2)]
    assert member_seed(7, _t(ds), 0) != member_seed(7, _t(ds, 6), 0)  # dates get their own noise


@pytest.mark.parametrize("kw, msg", [
    ({"members": 0}, "members must be 1..64"),
    ({"steps": 0}, "steps must be 1..1000"),
    ({"coarse_from": "x"}, "coarse_from must be one of"),
])
def test_bad_requests_are_refused(models, ds, kw, msg):
    with pytest.raises(ValueError, match=msg):
        downscale_time(models, ds, _t(ds), Region.parse(REGION), **{"members": 2, "steps": 3, **kw})


def test_time_outside_the_data_is_refused(models, ds):
    with pytest.raises(ValueError, match="outside the data"):
        downscale_time(models, ds, "1990-01-01", Region.parse(REGION), members=2, steps=3)


def test_downscale_many_times_in_process(models, ds, ckpt_dir):
    job = DownscaleRequest(data=None, region=REGION, checkpoint="test-edm", pp_checkpoint="test-pp", members=2, steps=3)
    out = downscale(job, [_t(ds, 3), _t(ds, 4)], progress=False, command="test")
    assert out.sizes["time"] == 2 and out["tp"].dims == ("member", "time", "lat", "lon")
    assert out.attrs["Conventions"] == "CF-1.8" and len(out.attrs["diffusion_checkpoint_sha256"]) == 64
    assert out.attrs["pp_checkpoint"] == "test-pp" and out.attrs["steps"] == 3


def _cli(args, capsys):
    code = main(args)
    cap = capsys.readouterr()
    return code, cap.out, cap.err


def test_cli_downscale_one_date_writes_cf_netcdf(models, ds, tmp_path, capsys):
    out = tmp_path / "alps.nc"
    t = str(np.datetime_as_string(_t(ds), unit="h"))
    code, stdout, err = _cli(["downscale", "--start", t, "--region", REGION, "--members", "2", "--steps", "3",
                              "--checkpoint", "test-edm", "--pp-checkpoint", "test-pp", "--out", str(out)], capsys)
    assert code == 0, err
    res = xr.open_dataset(out)
    assert res["tp"].shape[:2] == (2, 1) and "tp_truth" in res and "tp_bicubic" in res and "member_seed" in res
    assert res.attrs["region"] == REGION and "sha256" in " ".join(res.attrs)
    assert not list(tmp_path.glob(".alps.nc*"))  # atomic write left no temporary behind


def test_cli_multi_date_on_a_local_cluster_equals_in_process(models, ds, tmp_path, capsys):
    t0, t1 = (str(np.datetime_as_string(_t(ds, i), unit="h")) for i in (3, 4))
    common = ["downscale", "--start", t0, "--end", t1, "--region", REGION, "--members", "2", "--steps", "3",
              "--checkpoint", "test-edm", "--pp-checkpoint", "test-pp"]
    code, stdout, err = _cli(common + ["--workers", "2", "--out", str(tmp_path / "dask.nc")], capsys)
    assert code == 0, err
    assert "LocalCluster with 2 workers" in stdout
    code, _, err = _cli(common + ["--workers", "0", "--out", str(tmp_path / "serial.zarr")], capsys)
    assert code == 0, err
    a = xr.open_dataset(tmp_path / "dask.nc")
    b = xr.open_zarr(tmp_path / "serial.zarr")
    assert a.sizes["time"] == 2 and a.attrs["scheduler"] == "dask.distributed"
    np.testing.assert_allclose(a["pp"].values, b["pp"].values, rtol=1e-5, atol=1e-5)


def test_cli_encode(models, tmp_path, capsys, ds):
    t = str(np.datetime_as_string(_t(ds), unit="h"))
    code, stdout, err = _cli(["encode", "--start", t, "--pp-checkpoint", "test-pp", "--out", str(tmp_path / "e.nc")], capsys)
    assert code == 0, err
    res = xr.open_dataset(tmp_path / "e.nc")
    assert {"tp", "vimd", "pp", "tp_decoded"} <= set(res.data_vars) and res.sizes["time"] == 1


@pytest.mark.parametrize("extra, msg", [
    (["--region", "45,46,5,6"], "at least 4 x 4"),
    (["--region", "atlantis"], "unknown region"),
    (["--members", "100"], "members must be 1..64"),
    (["--steps", "0"], "steps must be 1..1000"),
    (["--steps", "1"], "use at least 2"),  # 1 step: only a few-step student (tests/test_distill.py)
    (["--start", "1990-01-01"], "outside the data"),
    (["--out", "x.txt"], "must end in .nc"),
    (["--checkpoint", "no-such-model"], "no-such-model"),
])
def test_cli_bad_inputs_exit_2_with_one_line(models, ds, tmp_path, capsys, extra, msg):
    t = str(np.datetime_as_string(_t(ds), unit="h"))
    args = ["downscale", "--start", t, "--region", REGION, "--members", "2", "--steps", "3",
            "--checkpoint", "test-edm", "--pp-checkpoint", "test-pp", "--out", str(tmp_path / "o.nc")]
    for i in range(0, len(extra), 2):
        args[args.index(extra[i]) + 1] = extra[i + 1]
    code, _, err = _cli(args, capsys)
    assert code == 2 and err.count("\n") == 1 and msg in err, err
