"""Every file ppviz writes passes the IOOS compliance-checker's CF suite for the version it declares.

The checker (``compliance-checker``, test extra) runs through its Python API on the files the
commands write: ``downscale``, ``encode``, ``data synth``, ``data vimd``, ``data prepare``,
``evaluate``'s ``metrics.nc`` (of a ppviz ensemble and of predictions made elsewhere) and the
Downscale page's netCDF export. No high- or medium-priority message may remain.
zarr stores (``data synth``) are checked through a netCDF copy with the same arrays, data types
and attributes (a zarr v3 array's ``fill_value`` is intrinsic, not an attribute).
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import xarray as xr

from ppviz.cli import main
from ppviz.data.canonical import write_dataset
from ppviz.data.cf_out import CONVENTIONS, cf_ready, restore_labels

FILES = ("downscale.nc", "encode.nc", "synth.nc", "vimd.nc", "prepare.nc", "evaluate/metrics.nc",
         "predictions-eval/metrics.nc", "page-export.nc")


def cf_messages(path, tmp_path) -> tuple[str, list[str]]:
    """(checked suite, high- and medium-priority messages) of compliance-checker on ``path``."""
    from compliance_checker.runner import CheckSuite, ComplianceChecker

    with xr.open_dataset(path) as d:
        conventions = d.attrs["Conventions"]
    suite = "cf:" + conventions.removeprefix("CF-")
    CheckSuite.load_all_available_checkers()
    report = tmp_path / (path.name + ".json")
    ComplianceChecker.run_checker(str(path), [suite], 0, "normal", output_filename=str(report),
                                  output_format="json")
    doc = json.loads(report.read_text())[suite]
    msgs = [f"{pri}: {item['name']}: {m}" for pri in ("high_priorities", "medium_priorities")
            for item in doc[pri] for m in item["msgs"]]
    return suite, msgs


def _zarr_as_netcdf(store, out):
    ds = xr.open_zarr(store, decode_cf=False)
    for v in ds.variables:
        ds[v].attrs.pop("_FillValue", None)
        ds[v].encoding = {}
    ds.to_netcdf(out, encoding={v: {"_FillValue": None} for v in ds.variables})
    return out


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    """Small untrained PP and diffusion checkpoints (finite outputs), registered for the module."""
    import torch

    from ppviz.checkpoints import save_checkpoint
    from ppviz.diffusion import Downscaler, DownscalerConfig
    from ppviz.models.pp import PPAutoencoder, PPConfig
    from ppviz.models.unet import UNetConfig

    d = tmp_path_factory.mktemp("ckpts")
    torch.manual_seed(0)
    save_checkpoint(PPAutoencoder(PPConfig(hidden=8, depth=1)), d / "cf-pp", kind="pp", architecture="pp-mlp")
    dif = Downscaler(DownscalerConfig(unet=UNetConfig(base_channels=8, channel_mult=(1, 2), blocks_per_level=1),
                                      sigma_data=0.5))
    save_checkpoint(dif, d / "cf-edm", kind="diffusion", architecture="edm-unet", config=dif.config.to_dict(),
                    extra={"pp_checkpoint": "cf-pp"})
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("PPVIZ_CHECKPOINTS", str(d))
        yield "cf-edm"


@pytest.fixture(scope="module")
def written(tmp_path_factory, checkpoints, era5_sample):
    """Every kind of file ppviz writes, made by its command."""
    from ppviz.request import DownscaleRequest
    from ppviz.views.runs import run_ensemble

    tiny = checkpoints
    d = tmp_path_factory.mktemp("cf")

    def run(*args):
        assert main([str(a) for a in args]) == 0, args

    run("downscale", "--region", "alps", "--checkpoint", tiny, "--pp-checkpoint", "cf-pp", "--start", "2021-01-01T03", "--end",
        "2021-01-01T05", "--members", "3", "--steps", "2", "--workers", "0", "--out", d / "downscale.nc")
    run("encode", "--pp-checkpoint", "cf-pp", "--start", "2021-01-01T03", "--out", d / "encode.nc")
    run("data", "synth", "--days", "1", "--out", d / "synth-dir")
    (store,) = (d / "synth-dir").glob("*.zarr")
    _zarr_as_netcdf(store, d / "synth.nc")
    s = era5_sample
    run("data", "vimd", "--q", s / "ERA5_2020-01-01_pl_q.nc", "--u", s / "ERA5_2020-01-01_pl_u.nc",
        "--v", s / "ERA5_2020-01-01_pl_v.nc", "--sp", s / "ERA5_2020-01-01_sp.nc", "--out", d / "vimd.nc")
    run("data", "prepare", "--tp", s / "ERA5_2020-01-01_tp.nc", "--vimd", d / "vimd.nc", "--out", d / "prepare.nc")
    run("evaluate", "--ensemble", d / "downscale.nc", "--out", d / "evaluate", "--max-map-dates", "0")
    run("evaluate", "--predictions", d / "downscale.nc", "--out", d / "predictions-eval", "--max-map-dates", "0")
    from ppviz.data.source import load_dataset

    t = str(load_dataset(None).time.values[3])[:13]
    ens = run_ensemble(DownscaleRequest(tiny, t, "alps", pp_checkpoint="cf-pp", members=2, steps=2, seed=1), trajectory=False)
    write_dataset(ens.to_dataset(), d / "page-export.nc")  # what the Downscale page's download writes
    return d


@pytest.mark.parametrize("name", FILES)
def test_written_file_passes_compliance_checker(written, name, tmp_path):
    path = written / name
    suite, msgs = cf_messages(path, tmp_path)
    assert suite == "cf:" + CONVENTIONS.removeprefix("CF-")
    assert msgs == []


def test_checker_finds_what_cf_ready_fixes(tmp_path):
    """The check can fail: the same data written raw (int64 time, fills on coordinates, an invented name) is flagged."""
    ds = xr.Dataset({"tp": (("time", "lat"), np.ones((2, 3), np.float32),
                            {"units": "mm h-1", "standard_name": "precipitation_flux_expressed_as_rate"}),
                     "seed": ("time", np.array([2**40, 3], np.int64))},
                    coords={"time": np.array(["2021-01-01T00", "2021-01-01T01"], "datetime64[ns]"),
                            "lat": [44.0, 44.25, 44.5]}, attrs={"Conventions": CONVENTIONS})
    raw = tmp_path / "raw.nc"
    ds.to_netcdf(raw, encoding={"time": {"dtype": "int64", "units": "hours since 1970-01-01"}})
    _, msgs = cf_messages(raw, tmp_path)
    text = "\n".join(msgs)
    assert "datatype is int64" in text and "_FillValue" in text and "precipitation_flux_expressed_as_rate" in text
    ds["tp"].attrs["standard_name"] = "lwe_precipitation_rate"
    clean = write_dataset(ds, tmp_path / "clean.nc")
    assert cf_messages(clean, tmp_path)[1] == []
    with xr.open_dataset(clean) as back:  # values unchanged
        np.testing.assert_array_equal(back.time.values, ds.time.values)
        assert back.seed.values.astype(str).tolist() == [str(2**40), "3"]


def test_string_dims_round_trip_through_labels():
    ds = xr.Dataset({"crps": (("forecast",), [0.1, 0.2])}, coords={"forecast": ["ensemble", "bicubic"]})
    out, _ = cf_ready(ds)
    assert "forecast" not in out.coords and out["forecast_label"].values.tolist() == ["ensemble", "bicubic"]
    back = restore_labels(out)
    assert back.forecast.values.tolist() == ["ensemble", "bicubic"]
