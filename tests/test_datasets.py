"""The shipped ERA5 sample, the dataset registry, and the data's extent as the default region."""

from __future__ import annotations

import json

import numpy as np
import pytest
import xarray as xr

from ppviz.cli import main
from ppviz.data import registry
from ppviz.data.canonical import write_dataset
from ppviz.data.regions import Region, data_extent, regions_inside
from ppviz.data.sample import build_era5_sample, write_era5_sample
from ppviz.data.source import load_dataset
from ppviz.resources import ASSETS_DIR

SHIPPED = ASSETS_DIR / "era5-sample.nc"


def test_shipped_sample_equals_what_the_script_makes(era5_sample, tmp_path):
    """assets/era5-sample.nc is exactly what assets/make_era5_sample.py writes from ../shared/era5-sample
    (build_era5_sample + write_era5_sample): values, coordinates and attributes."""
    made = write_era5_sample(build_era5_sample(era5_sample), tmp_path / "made.nc")
    with xr.open_dataset(SHIPPED, engine="h5netcdf") as shipped, xr.open_dataset(made, engine="h5netcdf") as new:
        xr.testing.assert_identical(shipped.load(), new.load())


def test_shipped_sample_is_small_real_era5_with_attribution():
    assert SHIPPED.stat().st_size < 600 * 1024
    ds = load_dataset("era5-sample")
    assert dict(ds.sizes) == {"time": 48, "lat": 41, "lon": 41}
    assert ds.tp.dtype == np.float32 and ds.vimd.dtype == np.float32
    assert ds.tp.attrs["units"] == "mm h-1" and ds.vimd.attrs["units"] == "mm h-1"
    assert ds.attrs["licence"] == "Generated using Copernicus Climate Change Service information"
    assert "pressure levels" in ds.attrs["vimd_method"] and "model levels" in ds.attrs["vimd_method"]
    assert registry.is_real_era5(ds)
    days = sorted({str(t)[:10] for t in ds.time.values})
    assert days == ["2020-01-01", "2022-08-31"]
    # real rain: 2022-08-31 has hourly totals above 1 mm/h somewhere, tp is never negative
    assert float(ds.tp.min()) >= 0 and float(ds.tp.sel(time="2022-08-31").max()) > 1.0


def test_registry_names_paths_and_errors(monkeypatch):
    monkeypatch.delenv("PPVIZ_DATA", raising=False)
    assert registry.dataset_names() == ["synthetic", "era5-sample"]
    assert registry.default_name() == "synthetic"
    assert registry.dataset_path("era5-sample") == SHIPPED
    with pytest.raises(ValueError, match=r"unknown dataset 'nope'; allowed: synthetic, era5-sample"):
        registry.check_name("nope")
    with pytest.raises(ValueError, match="PPVIZ_DATA is not set"):
        registry.dataset_path("configured")
    monkeypatch.setenv("PPVIZ_DATA", str(SHIPPED))
    assert registry.dataset_names() == ["synthetic", "era5-sample", "configured"]
    assert registry.default_name() == "configured" and registry.dataset_path("configured") == SHIPPED
    monkeypatch.setenv("PPVIZ_DATA", "era5-sample")
    assert registry.default_name() == "era5-sample" and "configured" not in registry.dataset_names()
    assert load_dataset(None).sizes["lat"] == 41


def test_data_extent_names_known_boxes_and_fits_any_domain():
    sample = load_dataset("era5-sample")
    assert data_extent(sample).name == "sample"
    assert [r.name for r in regions_inside(sample)] == ["benelux-rhine", "sample"]
    synth = load_dataset("synthetic")
    assert data_extent(synth).name == "europe"
    # a 7 x 7 deg piece: the whole coarse cells inside it, which subset the data exactly
    piece = sample.isel(lat=slice(0, 30), lon=slice(3, 35))
    ext = data_extent(piece)
    assert ext.slug_or_box == "44.875,51.875,0.875,7.875"
    assert ext.subset(piece).sizes["lat"] == 28 and Region.parse(ext.slug_or_box) == ext
    with pytest.raises(ValueError, match=r"only 3 x 3 whole 1 deg cells.*at least 4 x 4"):
        data_extent(sample.isel(lat=slice(0, 12), lon=slice(0, 12)))


def test_cli_gibbs_without_region_takes_the_data_extent(tmp_path, capsys):
    """The issue's case: `ppviz gibbs --data <10 x 10 deg dataset> --time ...` with no --region."""
    path = write_dataset(load_dataset("era5-sample").load(), tmp_path / "small.nc")
    out = tmp_path / "g.json"
    assert main(["gibbs", "--data", str(path), "--time", "2022-08-31T12", "--out", str(out)]) == 0
    report = json.loads(out.read_text())
    assert report["region"] == "sample"
    assert report["bounds_deg"] == {"lat0": 44.875, "lat1": 54.875, "lon0": -0.125, "lon1": 9.875}
    # by name as well
    assert main(["gibbs", "--data", "era5-sample", "--time", "2020-01-01T06", "--out", str(out)]) == 0
    assert json.loads(out.read_text())["source"].startswith("ERA5")
    capsys.readouterr()
    assert main(["gibbs", "--data", "era5-sample", "--time", "2020-01-01T06", "--region", "alps",
                 "--out", str(out)]) == 2
    assert "does not contain region alps" in capsys.readouterr().err


def test_cli_downscale_without_region_runs_over_the_data_extent(tiny, tmp_path):
    out = tmp_path / "ens.nc"
    assert main(["downscale", "--data", "era5-sample", "--start", "2022-08-31T15", "--members", "2", "--steps", "2",
                 "--checkpoint", tiny, "--workers", "0", "--device", "cpu", "--out", str(out)]) == 0
    with xr.open_dataset(out) as ds:
        assert ds.attrs["region"] == "sample"
        assert ds.sizes["member"] == 2 and ds.sizes["lat"] == 40 and ds.sizes["lon"] == 40
        assert float(ds.lat.min()) == 45.0 and float(ds.lon.max()) == 9.75
