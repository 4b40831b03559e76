"""The ppviz command line, end to end, on the real ERA5 sample and the embedded synthetic data."""

import json
import subprocess
import sys

import numpy as np
import pytest
import xarray as xr

from ppviz.cli import main
from ppviz.data.canonical import open_dataset


def run_cli(capsys, *argv):
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


def test_python_dash_m_and_help():
    res = subprocess.run([sys.executable, "-m", "ppviz", "--help"], capture_output=True, text=True)
    assert res.returncode == 0 and "gibbs" in res.stdout and "data" in res.stdout


def test_regions_lists_named_regions(capsys):
    code, out, _ = run_cli(capsys, "regions")
    assert code == 0 and "british-isles" in out and "alps" in out


def test_data_info_defaults_to_embedded_synthetic(capsys):
    code, out, _ = run_cli(capsys, "data", "info")
    assert code == 0
    assert "synthetic" in out.lower() and "mm h-1" in out and "160 x 240" in out


def test_data_synth_writes_dataset(tmp_path, capsys):
    code, out, _ = run_cli(capsys, "data", "synth", "--days", "1", "--seed", "3", "--out", str(tmp_path))
    assert code == 0
    ds = open_dataset(out.strip().splitlines()[-1])
    assert ds.sizes["time"] == 24 and ds.attrs["source"] == "synthetic"


@pytest.fixture(scope="module")
def prepared(era5_sample, tmp_path_factory):
    """Both sample days through `ppviz data prepare`: pressure levels to zarr, model levels to netCDF."""
    out = tmp_path_factory.mktemp("prepared")
    s = era5_sample
    pl = out / "2020-01-01.zarr"
    ml = out / "2022-08-31.nc"
    assert main(["data", "prepare", "--tp", str(s / "ERA5_2020-01-01_tp.nc"),
                 "--q", str(s / "ERA5_2020-01-01_pl_q.nc"), "--u", str(s / "ERA5_2020-01-01_pl_u.nc"),
                 "--v", str(s / "ERA5_2020-01-01_pl_v.nc"), "--sp", str(s / "ERA5_2020-01-01_sp.nc"),
                 "--out", str(pl)]) == 0
    assert main(["data", "prepare", "--tp", str(s / "ERA5_2022-08-31_tp.nc"),
                 "--q", str(s / "ERA5_2022-08-31_ml_q.nc"), "--u", str(s / "ERA5_2022-08-31_ml_u.nc"),
                 "--v", str(s / "ERA5_2022-08-31_ml_v.nc"), "--sp", str(s / "ERA5_2022-08-31_sp.nc"),
                 "--levels", str(s / "era5_L137_model_levels.csv"), "--out", str(ml)]) == 0
    return {"pl": pl, "ml": ml}


def test_prepare_both_days_both_level_types(prepared):
    for key in ("pl", "ml"):
        ds = open_dataset(prepared[key])
        assert ds.tp.shape == (24, 41, 41) and ds.vimd.shape == (24, 41, 41)
        assert ds.tp.dtype == np.float32 and ds.tp.attrs["units"] == "mm h-1"
        assert np.all(np.diff(ds.lat.values) > 0)
        assert "ERA5" in ds.attrs["source"]
        assert float(ds.tp.max()) > 0.5 and float(ds.tp.min()) >= 0


def test_data_vimd_command(era5_sample, tmp_path, capsys):
    s = era5_sample
    out = tmp_path / "vimd.nc"
    code, text, _ = run_cli(capsys, "data", "vimd", "--q", str(s / "ERA5_2022-08-31_ml_q.nc"),
                            "--u", str(s / "ERA5_2022-08-31_ml_u.nc"), "--v", str(s / "ERA5_2022-08-31_ml_v.nc"),
                            "--sp", str(s / "ERA5_2022-08-31_sp.nc"),
                            "--levels", str(s / "era5_L137_model_levels.csv"), "--out", str(out))
    assert code == 0 and out.exists()
    v = xr.open_dataset(out)["vimd"]
    assert v.attrs["units"] == "mm h-1" and v.shape == (24, 41, 41) and np.isfinite(v.values).all()


def test_data_info_on_prepared(prepared, capsys):
    code, out, _ = run_cli(capsys, "data", "info", str(prepared["pl"]))
    assert code == 0 and "2020-01-01 00:00 .. 2020-01-01 23:00" in out and "41 x 41" in out


def test_gibbs_command_on_real_day(prepared, tmp_path, capsys):
    out = tmp_path / "gibbs.json"
    code, text, _ = run_cli(capsys, "gibbs", "--data", str(prepared["ml"]), "--time", "2022-08-31T12",
                            "--region", "sample", "--method", "fft", "--out", str(out))
    assert code == 0, text
    report = json.loads(out.read_text())
    d = report["diagnostics"]
    assert report["region"] == "sample" and report["method"] == "fft"
    # truncating real, patchy rain rings: some negative cells and some spurious drizzle
    assert d["negative_fraction"] > 0 and d["min_value"] < 0
    assert "negative cells" in text


@pytest.mark.parametrize(
    "argv, fragment",
    [
        (["gibbs", "--time", "1990-01-01", "--out", "x.json"], "outside the data"),
        (["gibbs", "--time", "not-a-date", "--out", "x.json"], "not a date"),
        (["gibbs", "--time", "2021-01-01T05", "--region", "atlantis", "--out", "x.json"], "unknown region"),
        (["gibbs", "--time", "2021-01-01T05", "--region", "45,46,0,1", "--out", "x.json"], "at least 4 x 4"),
        (["gibbs", "--time", "2021-01-01T05", "--cutoff-km", "-5", "--out", "x.json"], "positive"),
        (["data", "info", "/nonexistent/data.zarr"], "no dataset at"),
        (["data", "synth", "--days", "0"], "out of range"),
        (["data", "prepare", "--tp", "x.nc", "--out", "y.zarr"], "either --vimd"),
    ],
)
def test_bad_input_exits_2_with_one_line(argv, fragment, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, out, err = run_cli(capsys, *argv)
    assert code == 2
    assert err.startswith("ppviz: error:") and fragment in err and err.count("\n") == 1
    assert not (tmp_path / "x.json").exists()


def test_not_a_netcdf_file(tmp_path, capsys):
    bad = tmp_path / "fake.nc"
    bad.write_text("this is not netCDF")
    code, _, err = run_cli(capsys, "data", "info", str(bad))
    assert code == 2 and "not a readable netCDF" in err
