"""ERA5 readers, VIMD from levels, the ARCO-ERA5 reader and dataset preparation.

Most tests run on the real ERA5 sample in ``../shared/era5-sample`` (beside the repository);
without it they skip (fail on CI). Known-answer tests (divergence on the sphere, column
integrals, ARCO layout) use synthetic data and always run.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

from ppviz.data.arco import open_arco
from ppviz.data.canonical import validate_canonical, write_dataset
from ppviz.data.era5 import read_single_level
from ppviz.data.grid import EUROPE, Grid
from ppviz.data.prepare import compute_vimd_file, prepare_dataset
from ppviz.constants import EARTH_RADIUS_M
from ppviz.constants import STANDARD_GRAVITY as G
from ppviz.data.levels import model_level_thickness, open_level_file, pressure_level_thickness, read_levels_table
from ppviz.data.vimd import (
    moisture_flux,
    spherical_divergence,
    vertical_integral,
    vimd_from_levels,
)

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "era5-sample"
L137 = SHARED / "era5_L137_model_levels.csv"
DAYS = {"2020-01-01": "pl", "2022-08-31": "ml"}


@pytest.fixture(scope="module")
def sample() -> Path:
    if not (SHARED / "ERA5_2020-01-01_tp.nc").exists():
        msg = f"ERA5 sample not found at {SHARED}"
        if os.environ.get("CI") == "true":
            pytest.fail(msg)
        pytest.skip(msg)
    return SHARED


def _f(sample: Path, day: str, what: str) -> Path:
    kind = DAYS[day]
    return sample / (f"ERA5_{day}_{kind}_{what}.nc" if what in "quv" else f"ERA5_{day}_{what}.nc")


def _levels(sample, day):
    return [open_level_file(_f(sample, day, x), x) for x in ("q", "u", "v", "sp")]


@pytest.fixture(scope="module")
def computed(sample):
    """tp, vimd (from levels) and total column water vapour for each sample day."""
    out = {}
    for day in DAYS:
        q, u, v, sp = _levels(sample, day)
        out[day] = {
            "tp": read_single_level(_f(sample, day, "tp"), "tp"),
            "vimd": vimd_from_levels(q, u, v, sp, L137),
            "tcwv": vertical_integral(q, sp, L137),
        }
    return out


def _copy(ds: xr.Dataset) -> xr.Dataset:
    """A loaded copy without the source's int16 packing (so modified values survive writing)."""
    ds = ds.load().copy()
    for name in ds.variables:
        ds[name].encoding = {}
    return ds


def _open(path) -> xr.Dataset:
    with xr.open_dataset(path) as ds:
        return _copy(ds)


# --------------------------------------------------------------------------- single level


@pytest.mark.parametrize("day", list(DAYS))
def test_read_tp_shape_units_magnitudes(sample, day):
    tp = read_single_level(_f(sample, day, "tp"), "tp")
    assert tp.dims == ("time", "lat", "lon")
    assert tp.shape == (24, 41, 41)
    assert np.all(np.diff(tp.lat.values) > 0)
    assert tp.lat.values[0] == 45.0 and tp.lon.values[-1] == 10.0
    assert tp.attrs["units"] == "mm h-1"
    assert tp.dtype == np.float32
    values = tp.values
    assert not np.isnan(values).any()
    assert values.min() >= 0.0 and values.max() <= 50.0
    assert values.max() > 0.5  # it rains somewhere (max 1.18 mm/h on 2020-01-01, 6.33 on 2022-08-31)
    # the reader's x1000 agrees with the raw file (metres of water in the hour)
    raw = _open(_f(sample, day, "tp")).tp.isel(latitude=slice(None, None, -1)).values * 1000
    np.testing.assert_allclose(values, np.clip(raw, 0, None), rtol=1e-6, atol=1e-6)


def test_valid_time_layout_new_cds(sample, tmp_path):
    """New CDS files: valid_time, a scalar `number`, an `expver` coordinate along time."""
    ds = _open(_f(sample, "2020-01-01", "tp")).rename(time="valid_time")
    ds = ds.assign_coords(number=0, expver=("valid_time", np.array(["0001"] * 24)))
    path = tmp_path / "new_cds.nc"
    ds.to_netcdf(path)
    new = read_single_level(path, "tp")
    old = read_single_level(_f(sample, "2020-01-01", "tp"), "tp")
    xr.testing.assert_identical(new.drop_attrs(), old.drop_attrs())


def test_expver_dimension_is_combined(sample, tmp_path):
    """Old CDS ERA5/ERA5T mixes: two expver slices, each NaN where the other has data."""
    ds = _open(_f(sample, "2020-01-01", "tp"))
    first = ds.tp.where(ds.time < ds.time[16])
    second = ds.tp.where(ds.time >= ds.time[16])
    mixed = xr.concat([first, second], dim=xr.DataArray([1, 5], dims="expver", name="expver"))
    mixed = mixed.transpose("time", "expver", "latitude", "longitude")
    mixed.to_dataset(name="tp").to_netcdf(tmp_path / "expver.nc")
    got = read_single_level(tmp_path / "expver.nc", "tp")
    want = read_single_level(_f(sample, "2020-01-01", "tp"), "tp")
    np.testing.assert_array_equal(got.values, want.values)


def test_mean_rate_and_long_names(sample, tmp_path):
    ds = _open(_f(sample, "2022-08-31", "tp"))
    want = read_single_level(_f(sample, "2022-08-31", "tp"), "tp")
    # mtpr: kg m-2 s-1 (tp in m per hour * 1000 kg m-3 / 3600 s)
    rate = (ds.tp * 1000.0 / 3600.0).assign_attrs(units="kg m**-2 s**-1")
    rate.to_dataset(name="mtpr").to_netcdf(tmp_path / "mtpr.nc")
    got = read_single_level(tmp_path / "mtpr.nc", "tp")
    np.testing.assert_allclose(got.values, want.values, rtol=1e-5, atol=1e-6)
    # long CDS names; vimd in kg m-2 (hourly accumulation) and as a mean rate
    ds.rename(tp="total_precipitation").to_netcdf(tmp_path / "long.nc")
    np.testing.assert_allclose(read_single_level(tmp_path / "long.nc", "tp").values, want.values)
    acc = xr.DataArray(np.full((2, 3, 4), -1.5), dims=("time", "latitude", "longitude"),
                       coords={"time": ds.time.values[:2], "latitude": [46.0, 45.75, 45.5],
                               "longitude": [0.0, 0.25, 0.5, 0.75]}, attrs={"units": "kg m**-2"})
    acc.to_dataset(name="vertically_integrated_moisture_divergence").to_netcdf(tmp_path / "vimd.nc")
    np.testing.assert_allclose(read_single_level(tmp_path / "vimd.nc", "vimd").values, -1.5)
    (acc / 3600).assign_attrs(units="kg m**-2 s**-1").to_dataset(name="mvimd").to_netcdf(tmp_path / "mvimd.nc")
    np.testing.assert_allclose(read_single_level(tmp_path / "mvimd.nc", "vimd").values, -1.5, rtol=1e-6)


def test_tiny_negative_tp_clipped_and_nan_kept(sample, tmp_path):
    ds = _open(_f(sample, "2020-01-01", "tp"))
    tp = ds.tp.values.copy()
    tp[0, 0, 0] = -1e-10
    tp[0, 0, 1] = np.nan
    ds["tp"] = (ds.tp.dims, tp, ds.tp.attrs)
    ds.to_netcdf(tmp_path / "neg.nc")
    got = read_single_level(tmp_path / "neg.nc", "tp")
    assert got.isel(time=0, lat=-1, lon=0) == 0.0  # the file's first row is the northernmost
    assert np.isnan(got.isel(time=0, lat=-1, lon=1))
    assert np.nanmin(got.values) == 0.0


def test_descending_and_ascending_latitude_agree(sample, tmp_path):
    ds = _open(_f(sample, "2020-01-01", "tp"))
    ds.isel(latitude=slice(None, None, -1)).to_netcdf(tmp_path / "ascending.nc")
    a = read_single_level(tmp_path / "ascending.nc", "tp")
    d = read_single_level(_f(sample, "2020-01-01", "tp"), "tp")
    xr.testing.assert_identical(a.drop_attrs(), d.drop_attrs())
    # VIMD from levels given south-to-north equals VIMD from the files' north-to-south order
    q, u, v, sp = _levels(sample, "2020-01-01")
    flipped = [x.isel(lat=slice(None, None, -1)) for x in (q, u, v, sp)]
    assert flipped[0].lat.values[0] > flipped[0].lat.values[-1]
    np.testing.assert_array_equal(vimd_from_levels(*flipped).values, vimd_from_levels(q, u, v, sp).values)


def test_error_messages(sample, tmp_path):
    ds = _open(_f(sample, "2020-01-01", "tp"))
    ds.tp.attrs["units"] = "furlongs"
    ds.to_netcdf(tmp_path / "odd.nc")
    with pytest.raises(ValueError, match=r"furlongs.*accepted units.*'m'"):
        read_single_level(tmp_path / "odd.nc", "tp")
    with pytest.raises(ValueError, match=r"no vimd variable.*it has: sp"):
        read_single_level(_f(sample, "2020-01-01", "sp"), "vimd")
    text = tmp_path / "notes.nc"
    text.write_text("these are not the data you are looking for\n")
    with pytest.raises(ValueError, match=r"notes\.nc is not a netCDF file"):
        read_single_level(text, "tp")
    grib = tmp_path / "era5.grib"
    grib.write_bytes(b"GRIB" + bytes(100))
    with pytest.raises(ValueError, match="GRIB"):
        read_single_level(grib, "tp")
    with pytest.raises(FileNotFoundError):
        read_single_level(tmp_path / "absent.nc", "tp")
    with pytest.raises(ValueError, match="'tp', 'vimd'|tp, vimd"):
        read_single_level(_f(sample, "2020-01-01", "tp"), "precip")


# --------------------------------------------------------------------------- VIMD on the sample


# Measured on the sample (fraction of cells with tp > 0.5 mm/h where the computed VIMD < 0):
# 2020-01-01, 20 pressure levels: 0.959 of 148 cells (frontal winter rain: convergence).
# 2022-08-31, 22 model levels:    0.545 of 1701 cells (summer convection: much of the rain falls
#   where the resolved, instantaneous flux barely converges; with VIMD one hour earlier 0.615).
# A sign error would give 0.04 / 0.45. The thresholds sit just below what the data give; the
# budget test below separates the signs more sharply on the summer day.
NEG_WHERE_RAIN = {"2020-01-01": 0.9, "2022-08-31": 0.5}


@pytest.mark.parametrize("day", list(DAYS))
def test_vimd_from_levels_sample(computed, day):
    vimd = computed[day]["vimd"]
    tp = computed[day]["tp"]
    assert vimd.dims == ("time", "lat", "lon") and vimd.shape == (24, 41, 41)
    assert np.all(np.diff(vimd.lat.values) > 0)
    assert vimd.attrs["units"] == "mm h-1"
    assert vimd.attrs["vertical_coordinate"] == {"pl": "pressure", "ml": "model"}[DAYS[day]]
    a = vimd.values
    assert np.isfinite(a).all()
    assert np.abs(a).max() < 20.0  # measured: -1.55..1.14 (2020-01-01), -8.9..4.9 (2022-08-31)
    assert abs(float(a.mean())) < 1.0  # measured: -0.07, +0.14
    assert a.std() > 0.1
    raining = tp.values > 0.5
    assert raining.sum() > 100
    assert (a[raining] < 0).mean() >= NEG_WHERE_RAIN[day]


@pytest.mark.parametrize("day", list(DAYS))
def test_vimd_closes_the_moisture_budget(computed, day):
    """P - E = -VIMD - dW/dt: the budget residual correlates with tp, and only with the right sign.

    Measured correlation with tp: 0.35 (2020-01-01) and 0.25 (2022-08-31); with VIMD's sign
    flipped -0.04 and 0.06. TCWV ``W`` is plausible: 0.9..18 kg m-2 in January, 8..43 in August.
    """
    tp, vimd, w = (computed[day][k].values for k in ("tp", "vimd", "tcwv"))
    assert 0.5 < w.min() and w.max() < 60.0
    dwdt = np.gradient(w, axis=0)  # kg m-2 per hour (hourly steps)
    inner = slice(1, -1)
    corr = np.corrcoef(tp[inner].ravel(), (-vimd - dwdt)[inner].ravel())[0, 1]
    flipped = np.corrcoef(tp[inner].ravel(), (vimd - dwdt)[inner].ravel())[0, 1]
    assert corr > 0.15
    assert corr > flipped + 0.15


def test_model_levels_need_a_table(sample):
    q, u, v, sp = _levels(sample, "2022-08-31")
    with pytest.raises(ValueError, match="--levels L137.csv"):
        vimd_from_levels(q, u, v, sp)


def test_level_kind_detection_and_override(sample):
    q, u, v, sp = _levels(sample, "2020-01-01")
    bare = [x.assign_coords(level=x.level.values) for x in (q, u, v)]  # no units/long_name
    with pytest.raises(ValueError, match="kind='pressure' or kind='model'"):
        vimd_from_levels(*bare, sp)
    got = vimd_from_levels(*bare, sp, kind="pressure")
    np.testing.assert_array_equal(got.values, vimd_from_levels(q, u, v, sp).values)
    renamed = [x.rename(level="pressure_level") for x in bare]
    np.testing.assert_array_equal(vimd_from_levels(*renamed, sp).values, got.values)


def test_read_levels_table(sample):
    table = read_levels_table(L137)
    assert table.nlev == 137
    ph = table.half_pressure(np.array(101325.0))
    assert ph[0] == 0.0 and ph[-1] == pytest.approx(101325.0)
    assert np.all(np.diff(ph) > 0)
    assert ph[60] == pytest.approx(table.a[60] + table.b[60] * 101325.0)


# --------------------------------------------------------------------------- known answers


def test_spherical_divergence_known_answer():
    """F = (A sin 2lam cos phi, B cos lam sin phi): div F = (2A cos 2lam cos phi + B cos lam cos 2phi) / (a cos phi)."""
    lat = np.arange(30.0, 70.0 + 1e-9, 0.25)
    lon = np.arange(-20.0, 40.0 + 1e-9, 0.25)
    phi, lam = np.meshgrid(np.deg2rad(lat), np.deg2rad(lon), indexing="ij")
    A, B = 3.0e3, 2.0e3
    fx = A * np.sin(2 * lam) * np.cos(phi)
    fy = B * np.cos(lam) * np.sin(phi)
    exact = (2 * A * np.cos(2 * lam) * np.cos(phi) + B * np.cos(lam) * np.cos(2 * phi)) / (
        EARTH_RADIUS_M * np.cos(phi)
    )
    div = spherical_divergence(fx, fy, lat, lon)
    scale = np.abs(exact).max()
    assert np.abs(div - exact)[1:-1, 1:-1].max() < 2e-5 * scale  # centred: O(dx^2)
    assert np.abs(div - exact).max() < 1e-2 * scale  # one-sided borders: O(dx)
    # latitude order does not matter
    np.testing.assert_allclose(spherical_divergence(fx[::-1], fy[::-1], lat[::-1], lon)[::-1], div, rtol=1e-12)
    # a global longitude axis is periodic: centred differences everywhere
    glon = np.arange(0.0, 360.0, 1.0)
    lamg = np.deg2rad(glon)[None, :]
    fx = np.sin(lamg) * np.ones((3, 1))
    div = spherical_divergence(fx, np.zeros_like(fx), [10.0, 11.0, 12.0], glon)
    exact = np.cos(lamg) / (EARTH_RADIUS_M * np.cos(np.deg2rad([10.0, 11.0, 12.0]))[:, None])
    assert np.abs(div - exact).max() < 1e-4 * np.abs(exact).max()


def _column(levels, level_attrs, sp_values, name="level"):
    """Constant q = 0.01 kg/kg, u = 10 m/s, v = -5 m/s on levels, and sp (Pa) per column."""
    sp_values = np.asarray(sp_values, dtype=float)
    nt, ny, nx = 2, 3, sp_values.size
    coords = {"time": np.array(["2020-01-01T00", "2020-01-01T01"], dtype="datetime64[ns]"),
              name: xr.DataArray(np.asarray(levels), dims=name, attrs=level_attrs),
              "lat": [45.0, 45.25, 45.5], "lon": 0.25 * np.arange(nx)}
    dims = ("time", name, "lat", "lon")
    shape = (nt, len(levels), ny, nx)
    q = xr.DataArray(np.full(shape, 0.01), dims=dims, coords=coords, name="q", attrs={"units": "kg kg**-1"})
    u = xr.DataArray(np.full(shape, 10.0), dims=dims, coords=coords, name="u", attrs={"units": "m s**-1"})
    v = xr.DataArray(np.full(shape, -5.0), dims=dims, coords=coords, name="v", attrs={"units": "m s**-1"})
    sp = xr.DataArray(np.broadcast_to(sp_values, (nt, ny, nx)).copy(), dims=("time", "lat", "lon"),
                      coords={k: coords[k] for k in ("time", "lat", "lon")}, name="sp", attrs={"units": "Pa"})
    return q, u, v, sp


def test_constant_column_integral_pressure_levels():
    """Constant q V integrates to q V (sp - p_top) / g, whatever the levels below the surface."""
    levels = np.array([100, 200, 300, 500, 700, 850, 925, 1000])
    sp_values = [101325.0, 103000.0, 97000.0, 84000.0, 68000.0]  # above 1000 hPa, between, under 700
    q, u, v, sp = _column(levels, {"units": "millibars", "long_name": "pressure_level"}, sp_values)
    flux = moisture_flux(q, u, v, sp)
    want = 0.01 * (np.array(sp_values) - 10000.0) / G
    np.testing.assert_allclose(flux.fx.values, np.broadcast_to(10 * want, flux.fx.shape), rtol=1e-12)
    np.testing.assert_allclose(flux.fy.values, np.broadcast_to(-5 * want, flux.fy.shape), rtol=1e-12)
    dp, src = pressure_level_thickness(levels * 100.0, np.array(sp_values))
    np.testing.assert_allclose(dp.sum(axis=0), np.array(sp_values) - 10000.0)
    assert dp[-1, 3] == 0.0 and dp[-1, 0] > 0  # 1000 hPa is below ground at 840 hPa
    assert src[-1, 3] == 4 and src[5, 3] == 4  # 850, 1000 hPa filled from 700 hPa, the lowest above ground
    # a horizontally uniform column: zonal flux does not diverge; a uniform northward flux does on
    # the sphere, as meridians converge: div = -Fy tan(phi) / a
    sp1 = sp.isel(lon=[0] * sp.sizes["lon"]).assign_coords(lon=sp.lon)
    assert np.abs(vimd_from_levels(q, u, v * 0, sp1).values).max() < 1e-12
    fy = -5 * 0.01 * (101325.0 - 10000.0) / G
    want = -fy * np.tan(np.deg2rad(sp.lat.values)) / EARTH_RADIUS_M * 3600.0
    got = vimd_from_levels(q, u, v, sp1).values
    want = np.broadcast_to(want[None, :, None], got.shape)
    np.testing.assert_allclose(got[:, 1], want[:, 1], rtol=1e-5)  # centred
    np.testing.assert_allclose(got, want, rtol=5e-3)  # one-sided at the southern/northern rows


def test_constant_column_integral_model_levels(sample):
    table = read_levels_table(L137)
    levels = np.array([20, 40, 60, 80, 90, 100, 110, 120, 130, 135, 136, 137])
    sp_values = [101325.0, 95000.0, 70000.0]
    q, u, v, sp = _column(levels, {"long_name": "model_level_number"}, sp_values)
    flux = moisture_flux(q, u, v, sp, table)
    want = 0.01 * np.array(sp_values) / G  # model levels reach from the top (0 Pa) to sp
    np.testing.assert_allclose(flux.fx.values, np.broadcast_to(10 * want, flux.fx.shape), rtol=1e-12)
    # all 137 levels: exactly the model layers
    full = np.arange(1, 138)
    dp = model_level_thickness(full, np.array(sp_values), table)
    np.testing.assert_allclose(dp, np.diff(table.half_pressure(np.array(sp_values)), axis=0))
    # adjacent levels use the true half level between them
    dp = model_level_thickness(levels, np.array(sp_values), table)
    ph = table.half_pressure(np.array(sp_values))
    np.testing.assert_allclose(dp[-1], ph[137] - ph[136])
    np.testing.assert_allclose(dp[-2], ph[136] - ph[135])


# --------------------------------------------------------------------------- ARCO-ERA5 layout


def _arco_store(path, vimd_name="vertically_integrated_moisture_divergence", vimd_units="kg m**-2"):
    """A small store in ARCO-ERA5 layout: lat 75..30 descending, lon 0..50 and 340..359.75."""
    lat = np.arange(75.0, 30.0 - 1e-9, -0.25)
    lon = np.concatenate([np.arange(0.0, 50.0 + 1e-9, 0.25), np.arange(340.0, 360.0 - 1e-9, 0.25)])
    time = np.array(["2020-01-01T00", "2020-01-01T01", "2020-01-01T02"], dtype="datetime64[ns]")
    lonw = ((lon + 180) % 360) - 180
    base = lat[None, :, None] + lonw[None, None, :] / 1000.0 + np.arange(3)[:, None, None] * 100.0
    ds = xr.Dataset(
        {
            "total_precipitation": (("time", "latitude", "longitude"), (base * 1e-3).astype(np.float32), {"units": "m"}),
            vimd_name: (("time", "latitude", "longitude"), (-base / (3600.0 if "s" in vimd_units else 1.0)).astype(np.float32), {"units": vimd_units}),
            "temperature": (("time", "level", "latitude", "longitude"), np.zeros((3, 2, lat.size, lon.size), np.float32)),
        },
        coords={"time": time, "latitude": lat, "longitude": lon, "level": [500, 850]},
    )
    ds.to_zarr(path, mode="w", zarr_format=2)  # ARCO-ERA5 stores are zarr v2, consolidated
    return path


def test_open_arco_europe_wraps_longitude(tmp_path):
    store = _arco_store(tmp_path / "arco.zarr")
    ds = open_arco(store, start="2020-01-01T01", end="2020-01-01T02")
    validate_canonical(ds)
    assert dict(ds.sizes) == {"time": 2, "lat": EUROPE.nlat, "lon": EUROPE.nlon}
    np.testing.assert_array_equal(ds.lat.values, EUROPE.lat)
    np.testing.assert_array_equal(ds.lon.values, EUROPE.lon)
    expect = EUROPE.lat[None, :, None] + EUROPE.lon[None, None, :] / 1000.0 + np.array([1, 2])[:, None, None] * 100.0
    np.testing.assert_allclose(ds.tp.values, expect, rtol=1e-6)  # m -> mm: x 1000
    np.testing.assert_allclose(ds.vimd.values, -expect, rtol=1e-6)  # kg m-2 per hour -> mm/h
    assert "ARCO" in ds.attrs["source"]


def test_open_arco_rate_variable_and_errors(tmp_path):
    store = _arco_store(tmp_path / "rate.zarr", "vertical_integral_of_divergence_of_moisture_flux", "kg m**-2 s**-1")
    ds = open_arco(store, end="2020-01-01T00")
    assert ds.sizes["time"] == 1
    np.testing.assert_allclose(ds.vimd.values, -ds.tp.values, rtol=1e-5)  # kg m-2 s-1 x 3600
    with pytest.raises(ValueError, match="does not cover the domain along longitude"):
        open_arco(store, domain=Grid(40.0, 60.0, 0.25, 8, 8))
    with pytest.raises(ValueError, match="no time steps"):
        open_arco(store, start="2021-01-01")


# --------------------------------------------------------------------------- prepare


def test_prepare_dataset_computed_and_read(sample, tmp_path):
    day = "2022-08-31"
    ds = prepare_dataset(
        _f(sample, day, "tp"), q=_f(sample, day, "q"), u=_f(sample, day, "u"), v=_f(sample, day, "v"),
        sp=_f(sample, day, "sp"), levels=L137,
    )
    validate_canonical(ds)
    assert ds.attrs["source"].startswith("ERA5")
    assert "ERA5_2022-08-31_tp.nc" in ds.attrs["source"] and "model levels" in ds.attrs["source"]
    vimd_ds = compute_vimd_file(*(_f(sample, day, x) for x in ("q", "u", "v", "sp")), levels=L137)
    assert list(vimd_ds.data_vars) == ["vimd"] and vimd_ds.vimd.attrs["units"] == "mm h-1"
    path = write_dataset(vimd_ds, tmp_path / "vimd.nc")
    again = prepare_dataset(_f(sample, day, "tp"), vimd_path=path)
    np.testing.assert_array_equal(again.vimd.values, ds.vimd.values)
    np.testing.assert_array_equal(again.tp.values, ds.tp.values)
    assert "read from vimd.nc" in again.attrs["source"]
    with pytest.raises(ValueError, match="not both"):
        prepare_dataset(_f(sample, day, "tp"), vimd_path=path, q=_f(sample, day, "q"))
    with pytest.raises(ValueError, match="missing: u, v"):
        prepare_dataset(_f(sample, day, "tp"), q=_f(sample, day, "q"), sp=_f(sample, day, "sp"))
    with pytest.raises(ValueError, match="--vimd"):
        prepare_dataset(_f(sample, day, "tp"))


def test_prepare_dataset_two_days(sample):
    """Lists of files concatenate along time (here both days' tp with each day's own VIMD file)."""
    ds = prepare_dataset([_f(sample, d, "tp") for d in DAYS][::-1],
                         q=_f(sample, "2020-01-01", "q"), u=_f(sample, "2020-01-01", "u"),
                         v=_f(sample, "2020-01-01", "v"), sp=_f(sample, "2020-01-01", "sp"))
    assert ds.sizes["time"] == 24  # only 2020-01-01 has VIMD
    assert "time_note" in ds.attrs


# ------------------------------------------------------------------- hour mean of computed VIMD


def test_hour_mean_is_trapezoid_over_hour_ending_at_stamp():
    from ppviz.data.prepare import hour_mean

    t = np.array(["2020-01-01T00", "2020-01-01T01", "2020-01-01T02", "2020-01-01T05"], dtype="datetime64[ns]")
    x = xr.DataArray(np.array([1.0, 3.0, 7.0, 9.0], np.float32)[:, None, None] * np.ones((1, 2, 2), np.float32),
                     dims=("time", "lat", "lon"), coords={"time": t, "lat": [0.0, 0.25], "lon": [0.0, 0.25]})
    m = hour_mean(x)
    # first step and the step after a gap keep their instantaneous value
    assert np.allclose(m.values[:, 0, 0], [1.0, 2.0, 5.0, 9.0]) and m.dtype == np.float32


def test_prepared_vimd_is_hour_mean_and_converges_where_it_rains(sample):
    from ppviz.data.prepare import prepare_dataset

    # measured with the hour mean: 0.966 (2020-01-01) and 0.589 (2022-08-31) of cells with tp > 0.5
    for day, kind, floor in (("2020-01-01", "pl", 0.93), ("2022-08-31", "ml", 0.56)):
        ds = prepare_dataset(
            _f(sample, day, "tp"), q=sample / f"ERA5_{day}_{kind}_q.nc", u=sample / f"ERA5_{day}_{kind}_u.nc",
            v=sample / f"ERA5_{day}_{kind}_v.nc", sp=_f(sample, day, "sp"),
            levels=sample / "era5_L137_model_levels.csv",
        )
        assert "averaged over the hour" in ds.attrs["source"]
        raining = ds.tp.values > 0.5
        assert (ds.vimd.values[raining] < 0).mean() >= floor
