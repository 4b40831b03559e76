"""Rows of docs/robustness.md not covered elsewhere: bad data files and interrupted writes.

Every row of the table names its test; ``test_every_row_names_a_test_that_exists`` keeps the
table and the tests in step.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

from ppviz.cli import main
from ppviz.data.canonical import write_dataset
from ppviz.data.source import load_dataset

REPO = Path(__file__).resolve().parents[1]


def _cli(capsys, *argv):
    code = main(list(argv))
    cap = capsys.readouterr()
    return code, cap.out, cap.err


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    """Two hours of the embedded data over the Alps, as a canonical netCDF."""
    ds = load_dataset(None).isel(time=slice(0, 2)).sel(lat=slice(43, 49), lon=slice(4, 17)).load()
    path = tmp_path_factory.mktemp("data") / "alps.nc"
    write_dataset(ds, path)
    return path, ds


def _downscale(capsys, data, out, extra=()):
    return _cli(capsys, "downscale", "--data", str(data), "--start", "2021-01-01T00", "--region", "alps",
                "--members", "2", "--steps", "4", "--workers", "0", "--out", str(out), *extra)


def test_dataset_with_a_missing_variable_is_refused(small, tmp_path, capsys):
    path, ds = small
    bad = tmp_path / "novimd.nc"
    ds.drop_vars("vimd").to_netcdf(bad)
    code, _, err = _downscale(capsys, bad, tmp_path / "o.nc")
    assert code == 2 and "vimd" in err and err.count("\n") == 1, err


def test_dataset_with_wrong_units_is_refused(small, tmp_path, capsys):
    path, ds = small
    bad = tmp_path / "units.nc"
    odd = ds.copy()
    odd["tp"].attrs["units"] = "m"
    odd.to_netcdf(bad)
    code, _, err = _downscale(capsys, bad, tmp_path / "o.nc")
    assert code == 2 and "mm h-1" in err and "'m'" in err, err


def test_nan_inside_the_region_is_refused_with_the_time(small, tmp_path, capsys):
    path, ds = small
    bad = tmp_path / "nan.nc"
    holed = ds.copy(deep=True)
    holed["tp"][0, 5, 5] = np.nan
    holed.to_netcdf(bad)
    code, _, err = _downscale(capsys, bad, tmp_path / "o.nc")
    assert code == 2 and "NaN" in err and "2021-01-01 00:00" in err, err
    assert not (tmp_path / "o.nc").exists()


def test_a_zarr_that_is_not_a_dataset_is_refused(tmp_path, capsys):
    fake = tmp_path / "fake.zarr"
    fake.mkdir()
    (fake / "junk.txt").write_text("not zarr")
    code, _, err = _cli(capsys, "data", "info", str(fake))
    assert code == 2 and "not a readable netCDF file or zarr store" in err, err


def test_region_outside_the_data_is_refused(small, tmp_path, capsys):
    path, _ = small
    code, _, err = _cli(capsys, "downscale", "--data", str(path), "--start", "2021-01-01T00", "--region",
                        "scandinavia", "--members", "2", "--steps", "4", "--workers", "0", "--out", str(tmp_path / "o.nc"))
    assert code == 2 and "does not contain region" in err, err


@pytest.mark.parametrize("suffix", [".nc", ".zarr"])
def test_interrupted_dataset_write_leaves_nothing(small, tmp_path, monkeypatch, suffix):
    _, ds = small
    target = tmp_path / f"out{suffix}"
    method = "to_zarr" if suffix == ".zarr" else "to_netcdf"
    real = getattr(xr.Dataset, method)

    def half_then_fail(self, path, *a, **k):
        real(self, path, *a, **k)  # the data reach the temporary path...
        raise KeyboardInterrupt  # ...and the process dies before the rename

    monkeypatch.setattr(xr.Dataset, method, half_then_fail)
    with pytest.raises(KeyboardInterrupt):
        write_dataset(ds, target)
    assert not target.exists()
    assert list(tmp_path.iterdir()) == []  # no temporary left behind either


def test_interrupted_overwrite_keeps_the_old_file(small, tmp_path, monkeypatch):
    _, ds = small
    target = tmp_path / "out.nc"
    write_dataset(ds, target)
    before = target.read_bytes()

    def fail(self, *a, **k):
        raise OSError("disk full")

    monkeypatch.setattr(xr.Dataset, "to_netcdf", fail)
    with pytest.raises(OSError):
        write_dataset(ds.isel(time=0), target)
    assert target.read_bytes() == before


def test_every_row_names_a_test_that_exists():
    table = (REPO / "docs" / "robustness.md").read_text()
    refs = re.findall(r"`(tests/[\w/]+\.py)::(\w+)`", table)
    assert len(refs) >= 20, "the table should back each row with a test"
    missing = []
    for path, name in refs:
        text = (REPO / path).read_text() if (REPO / path).exists() else ""
        if not re.search(rf"def {name}\(", text):
            missing.append(f"{path}::{name}")
    assert not missing, f"docs/robustness.md names tests that do not exist: {missing}"
