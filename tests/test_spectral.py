"""Known-answer tests of ppviz.spectral: spectra (RAPSD), spectral truncation, Gibbs diagnostics."""

from __future__ import annotations

import contextlib
import io
from fractions import Fraction

import numpy as np
import pytest

from ppviz import spectral as sp

DX = 27.8
SHAPES = [(31, 64), (64, 64), (65, 47), (32, 48), (47, 47)]


def _rng(seed=0):
    return np.random.default_rng(seed)


def _k_grid(shape, dx):
    """Full-plane isotropic wavenumber |k| (cycles/km) of fft2 modes."""
    ny, nx = shape
    return np.hypot(np.fft.fftfreq(ny, dx)[:, None], np.fft.fftfreq(nx, dx)[None, :])


def _exact_bin(iy, ix, ny, nx):
    """Bin b with (b - 1/2)**2 <= (|k|/dk)**2 < (b + 1/2)**2, in exact rational arithmetic."""
    L = max(ny, nx)
    r2 = Fraction(iy * L, ny) ** 2 + Fraction(ix * L, nx) ** 2
    b = 0
    while r2 >= Fraction(2 * b + 1, 2) ** 2:
        b += 1
    return b


def _brute_rapsd(field, dx):
    """Reference: full fft2, exact per-mode bins, a Python loop over bins (documented binning)."""
    ny, nx = field.shape
    L = max(ny, nx)
    dk = 1.0 / (L * dx)
    nbins = min(_exact_bin(ny // 2, 0, ny, nx), _exact_bin(0, nx // 2, ny, nx))
    bin_of = np.array(
        [[_exact_bin(abs(i if i <= ny // 2 else i - ny), abs(j if j <= nx // 2 else j - nx), ny, nx)
          for j in range(nx)] for i in range(ny)]
    )
    power = np.abs(np.fft.fft2(field)) ** 2
    density = power * dx * dx / field.size  # 2-D periodogram density
    psd = np.array([density[bin_of == b].mean() for b in range(1, nbins + 1)])
    corner = power[bin_of > nbins].sum() / field.size**2
    dc = power[0, 0] / field.size**2
    return np.arange(1, nbins + 1) * dk, psd, corner, dc


def _slope(k, psd):
    return np.polyfit(np.log(k), np.log(psd), 1)[0]


def _powerlaw_fields(n, shape, beta, dx, rng):
    noise = rng.standard_normal((n,) + shape)
    kk = _k_grid(shape, dx)
    kk[0, 0] = np.inf
    return np.fft.ifft2(np.fft.fft2(noise) * kk ** (-beta / 2)).real


# ---------------------------------------------------------------- rapsd: known answers


def test_white_noise_is_flat():
    fields = _rng(1).standard_normal((16, 128, 128))
    k, psd = sp.rapsd(fields, DX)
    mean_psd = psd.mean(axis=0)
    assert abs(_slope(k, mean_psd)) < 0.1
    # flat at the level sigma**2 dx**2 (2-D periodogram density of unit white noise)
    np.testing.assert_allclose(np.median(mean_psd), DX**2, rtol=0.05)


@pytest.mark.parametrize("beta", [2.0, 3.0])
def test_power_law_keeps_its_slope(beta):
    fields = _powerlaw_fields(8, (128, 128), beta, DX, _rng(2))
    k, psd = sp.rapsd(fields, DX)
    assert abs(_slope(k, psd.mean(axis=0)) + beta) < 0.1


def test_power_law_slope_on_non_square_grid():
    fields = _powerlaw_fields(8, (96, 160), 3.0, DX, _rng(3))
    k, psd = sp.rapsd(fields, DX)
    assert abs(_slope(k, psd.mean(axis=0)) + 3.0) < 0.1


@pytest.mark.parametrize("shape", SHAPES)
def test_cosine_peaks_in_its_bin(shape):
    ny, nx = shape
    p, q = 5, 3  # cycles per domain along x and y
    y, x = np.mgrid[0:ny, 0:nx]
    field = np.cos(2 * np.pi * (p * x / nx + q * y / ny) + 0.3)
    k, psd, wl = sp.rapsd(field, DX, return_wavelength=True)
    k0 = np.hypot(p / (nx * DX), q / (ny * DX))
    dk = 1.0 / (max(shape) * DX)
    assert np.argmax(psd) == int(np.floor(k0 / dk + 0.5)) - 1
    # all of the variance (1/2) sits in that bin
    area = sp.radial_bins(shape, DX).area
    np.testing.assert_allclose((psd * area)[np.argmax(psd)], 0.5, rtol=1e-10)
    np.testing.assert_allclose(wl, 1.0 / k)
    np.testing.assert_allclose(np.diff(k), dk)


@pytest.mark.parametrize("shape", SHAPES)
def test_matches_brute_force_and_parseval_is_exact(shape):
    field = _rng(4).standard_normal(shape) + 3.0
    k, psd = sp.rapsd(field, DX)
    kb, psd_b, corner, dc = _brute_rapsd(field, DX)
    np.testing.assert_allclose(k, kb, rtol=1e-12)
    np.testing.assert_allclose(psd, psd_b, rtol=1e-10)
    # Parseval, accounting for DC and the corner modes beyond the last (Nyquist) bin
    area = sp.radial_bins(shape, DX).area
    lhs = np.sum(psd * area) + dc + corner
    np.testing.assert_allclose(lhs, np.mean(field**2), rtol=1e-10)
    np.testing.assert_allclose(dc, field.mean() ** 2, rtol=1e-10)


@pytest.mark.parametrize("shape", SHAPES)
def test_parseval_without_corner_power_gives_the_variance(shape):
    # band-limited well inside the shorter-axis Nyquist: no corner power, so the binned
    # spectrum alone integrates to the spatial variance (ddof=0)
    kmax = min((n // 2) / (n * DX) for n in shape)
    field = sp.truncate(_rng(5).standard_normal(shape) + 2.0, cutoff_km=1.0 / (0.7 * kmax), dx_km=DX)
    area = sp.radial_bins(shape, DX).area
    _, psd = sp.rapsd(field, DX)
    np.testing.assert_allclose(np.sum(psd * area), field.var(), rtol=1e-6)
    _, psd_m = sp.rapsd(field, DX, detrend="mean")
    np.testing.assert_allclose(np.sum(psd_m * area), field.var(), rtol=1e-6)


@pytest.mark.parametrize("window", [None, "hann", "tukey"])
@pytest.mark.parametrize("detrend", [None, "mean", "linear"])
def test_parseval_holds_for_the_preprocessed_field(window, detrend):
    shape = (31, 64)
    field = _rng(6).standard_normal(shape) + np.linspace(0, 5, 64)
    g = sp.preprocess(field, window=window, detrend=detrend)
    _, psd = sp.rapsd(field, DX, window=window, detrend=detrend)
    _, psd_b, corner, dc = _brute_rapsd(g, DX)
    np.testing.assert_allclose(psd, psd_b, rtol=1e-10)
    area = sp.radial_bins(shape, DX).area
    np.testing.assert_allclose(np.sum(psd * area) + dc + corner, np.mean(g**2), rtol=1e-10)


def test_nyquist_bin():
    # even square grid: (-1)**x sits exactly at the Nyquist wavenumber -> last bin
    y, x = np.mgrid[0:64, 0:64]
    k, psd = sp.rapsd((-1.0) ** x, DX)
    np.testing.assert_allclose(k[-1], 1 / (2 * DX))
    assert np.argmax(psd) == len(k) - 1
    area = sp.radial_bins((64, 64), DX).area
    np.testing.assert_allclose(np.sum(psd * area), 1.0, rtol=1e-12)
    # the checkerboard is a pure corner mode (|k| = sqrt(2) Nyquist): not in any bin
    _, psd_c = sp.rapsd((-1.0) ** (x + y), DX)
    assert np.all(psd_c < 1e-20)
    # odd shorter axis (31 rows): its highest frequency 15/31 cycles per cell -> last bin
    y, x = np.mgrid[0:31, 0:64]
    k, psd = sp.rapsd(np.cos(2 * np.pi * 15 * y / 31), DX)
    assert np.argmax(psd) == len(k) - 1
    np.testing.assert_allclose(np.sum(psd * sp.radial_bins((31, 64), DX).area), 0.5, rtol=1e-12)


def test_batched_equals_one_at_a_time():
    fields = _rng(7).standard_normal((3, 2, 31, 64))
    k, psd = sp.rapsd(fields, DX, window="hann", detrend="linear")
    assert psd.shape == (3, 2, len(k))
    for i in range(3):
        for j in range(2):
            _, one = sp.rapsd(fields[i, j], DX, window="hann", detrend="linear")
            np.testing.assert_allclose(psd[i, j], one, rtol=1e-12)


def test_linear_detrend_removes_a_plane_and_matches_lstsq():
    ny, nx = 33, 40
    y, x = np.mgrid[0:ny, 0:nx]
    plane = 2.0 + 0.3 * y - 0.7 * x
    _, psd = sp.rapsd(plane, DX, detrend="linear")
    assert np.all(psd < 1e-20)
    field = plane + _rng(8).standard_normal((ny, nx))
    A = np.column_stack([np.ones(y.size), y.ravel(), x.ravel()])
    coef, *_ = np.linalg.lstsq(A, field.ravel(), rcond=None)
    resid = field - (A @ coef).reshape(ny, nx)
    np.testing.assert_allclose(sp.preprocess(field, detrend="linear"), resid, atol=1e-12)


def test_float32_and_lists_are_accepted():
    field = _rng(9).standard_normal((16, 20))
    k1, p1 = sp.rapsd(field.astype(np.float32), DX)
    k2, p2 = sp.rapsd(field.tolist(), DX)
    assert p1.dtype == np.float64
    np.testing.assert_allclose(p1, p2, rtol=1e-5)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"window": "hamming"}, r"window='hamming'.*allowed values: \[None, 'hann', 'tukey'\]"),
        ({"detrend": "quadratic"}, r"detrend='quadratic'.*allowed values: \[None, 'mean', 'linear'\]"),
        ({"bins": "log"}, r"bins='log'.*allowed values"),
    ],
)
def test_rapsd_bad_options(kwargs, match):
    with pytest.raises(ValueError, match=match):
        sp.rapsd(np.zeros((8, 8)), DX, **kwargs)


def test_rapsd_bad_input():
    f = np.zeros((8, 8))
    f[2, 3] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        sp.rapsd(f, DX)
    with pytest.raises(ValueError, match="at least 2 dims"):
        sp.rapsd(np.zeros(16), DX)
    with pytest.raises(ValueError, match="at least 4x4"):
        sp.rapsd(np.zeros((3, 8)), DX)
    with pytest.raises(ValueError, match="dx_km"):
        sp.rapsd(np.zeros((8, 8)), 0.0)


def test_rapsd_xr():
    import xarray as xr
    lat = 60.0 - 0.25 * np.arange(40)
    lon = -10.0 + 0.25 * np.arange(48)
    data = _rng(10).standard_normal((3, 40, 48))
    da = xr.DataArray(
        data, dims=("time", "lat", "lon"),
        coords={"time": np.arange(3), "lat": lat, "lon": lon}, attrs={"units": "mm/h"},
    )
    out = sp.rapsd_xr(da)
    dx = np.deg2rad(0.25) * 6371.0
    k, psd, wl = sp.rapsd(data, dx, return_wavelength=True)
    assert out.dims == ("time", "wavenumber")
    np.testing.assert_array_equal(out["time"].values, np.arange(3))
    np.testing.assert_allclose(out["wavenumber"].values, k)
    np.testing.assert_allclose(out["wavelength_km"].values, wl)
    np.testing.assert_allclose(out.values, psd)
    assert out.attrs["units"] == "(mm/h)^2 km^2" and "long_name" in out.attrs
    np.testing.assert_allclose(out.attrs["dx_km"], 27.7987, rtol=1e-4)
    lazy = sp.rapsd_xr(da.chunk({"time": 1}), dx_km=dx)
    np.testing.assert_allclose(lazy.compute().values, psd)


@pytest.mark.bench
def test_agrees_with_pysteps_up_to_dx_squared():
    # pysteps is the benchmark-only extra: this test is not part of the default suite (tests/conftest.py
    # deselects `bench` tests unless -m asks for them); `make bench` installs pysteps and runs it
    # (pytest -m bench), and the benchmark script checks the same equality on 64 full-domain fields.
    with contextlib.redirect_stdout(io.StringIO()):
        try:
            from pysteps.utils import spectral
        except ImportError:
            pytest.fail("pysteps is not installed: pip install -c constraints.txt -e '.[bench]' (make bench)")
    for shape in [(48, 72), (47, 47), (64, 64)]:
        field = _powerlaw_fields(1, shape, 3.0, DX, _rng(11))[0]
        ref, freq = spectral.rapsd(field, fft_method=np.fft, return_freq=True, d=DX, normalize=False)
        k, psd = sp.rapsd(field, DX, bins="pysteps")
        np.testing.assert_allclose(k, freq[1:], rtol=1e-12)
        np.testing.assert_allclose(psd, DX**2 * ref[1:], rtol=1e-10)
        if shape[0] == shape[1]:  # square: pysteps bins are the isotropic ones minus Nyquist
            k_iso, psd_iso = sp.rapsd(field, DX)
            n = len(k)
            np.testing.assert_allclose(psd_iso[:n], psd, rtol=1e-12)


def test_default_cutoff_is_one_degree_nyquist():
    assert sp.DEFAULT_CUTOFF_KM == pytest.approx(2 * 111.195, abs=1e-3)


# ---------------------------------------------------------------- truncate


def _cos_sum_periodic(ny, nx, modes):
    y, x = np.mgrid[0:ny, 0:nx]
    return sum(a * np.cos(2 * np.pi * (p * x / nx + q * y / ny) + ph) for a, p, q, ph in modes)


def test_fft_truncation_keeps_band_limited_field():
    ny, nx = 64, 96
    modes = [(1.0, 1, 0, 0.2), (0.5, 2, 3, 1.0), (0.8, 0, 4, -0.4), (0.3, 5, -2, 2.0), (0.2, 12, 0, 0.0)]
    field = 2.0 + _cos_sum_periodic(ny, nx, modes)
    for a, p, q, ph in modes:  # all kept: wavelength >= 1 deg scale (p=12 is exactly 222.4 km)
        assert np.hypot(p / (nx * DX), q / (ny * DX)) <= 1 / sp.DEFAULT_CUTOFF_KM * (1 + 1e-6)
    out = sp.truncate(field, dx_km=DX, method="fft")
    np.testing.assert_allclose(out, field, atol=1e-5)
    # and a mode just above the cutoff is removed entirely
    bump = _cos_sum_periodic(ny, nx, [(1.0, 13, 0, 0.0)])
    np.testing.assert_allclose(sp.truncate(field + bump, dx_km=DX), field, atol=1e-5)


def test_dct_truncation_keeps_dct_basis_functions():
    ny, nx = 64, 96
    j, i = np.mgrid[0:ny, 0:nx]

    def basis(my, mx):
        return np.cos(np.pi * my * (j + 0.5) / ny) * np.cos(np.pi * mx * (i + 0.5) / nx)

    # frequency of index m is m / (2 n dx); kept while hypot <= 1/cutoff (m <= 16 along y, 24 along x)
    field = 1.0 + basis(0, 3) + 0.5 * basis(5, 7) - 0.7 * basis(10, 0) + 0.2 * basis(0, 24)
    np.testing.assert_allclose(sp.truncate(field, dx_km=DX, method="dct"), field, atol=1e-5)
    np.testing.assert_allclose(
        sp.truncate(field + basis(0, 25), dx_km=DX, method="dct"), field, atol=1e-5
    )


def test_truncate_is_batched_and_keeps_float_dtype():
    fields = _rng(12).standard_normal((2, 3, 40, 50)).astype(np.float32)
    for method in ("fft", "dct"):
        out = sp.truncate(fields, cutoff_km=150.0, dx_km=DX, method=method)
        assert out.dtype == np.float32 and out.shape == fields.shape
        one = sp.truncate(fields[1, 2], cutoff_km=150.0, dx_km=DX, method=method)
        np.testing.assert_allclose(out[1, 2], one, atol=1e-5)
    assert sp.truncate(np.ones((8, 8), dtype=int), dx_km=DX).dtype == np.float64


def _step(ny=16, nx=512):
    field = np.zeros((ny, nx))
    field[:, nx // 4 : 3 * nx // 4] = 1.0  # constant along y, steps of height 1 along x
    return field


def test_fft_truncation_of_a_step_overshoots_by_gibbs_9_percent():
    field = _step()
    out = sp.truncate(field, cutoff_km=16.0, dx_km=1.0, method="fft")
    jump = 1.0
    assert 0.07 <= (out.max() - 1.0) / jump <= 0.11
    assert 0.07 <= -out.min() / jump <= 0.11


def test_dct_has_no_wraparound_ringing_at_the_borders():
    ny, nx = 32, 256
    ramp = np.broadcast_to(np.linspace(0.0, 10.0, nx), (ny, nx))  # smooth, not periodic
    err = {m: np.abs(sp.truncate(ramp, cutoff_km=16.0, dx_km=1.0, method=m) - ramp) for m in ("fft", "dct")}
    border = np.r_[0:8, nx - 8 : nx]
    fft_b, dct_b = err["fft"][:, border].max(), err["dct"][:, border].max()
    assert fft_b > 2.0  # the periodic wrap-around sees a jump of 10 and rings
    assert dct_b < 0.05 * fft_b
    interior = slice(64, nx - 64)
    assert err["dct"][:, interior].max() < 1e-2


def test_truncate_bad_input():
    with pytest.raises(ValueError, match=r"method='spline'.*allowed values: \['fft', 'dct'\]"):
        sp.truncate(np.zeros((8, 8)), method="spline")
    f = np.zeros((8, 8))
    f[0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        sp.truncate(f)
    with pytest.raises(ValueError, match="cutoff_km"):
        sp.truncate(np.zeros((8, 8)), cutoff_km=-1.0)


# ---------------------------------------------------------------- gibbs_diagnostics


def test_gibbs_diagnostics_known_values():
    original = np.array([[0.0, 0.0, 2.0, 2.0], [0.0, 0.0, 2.0, 2.0]])
    truncated = np.array([[-0.1, 0.2, 2.3, 1.9], [0.05, -0.3, 2.0, 2.1]])
    d = sp.gibbs_diagnostics(original, truncated)
    assert set(d) == {
        "negative_fraction", "min_value", "overshoot", "overshoot_relative",
        "spurious_drizzle_fraction", "dry_fraction",
    }
    assert all(type(v) is float for v in d.values())
    assert d["negative_fraction"] == pytest.approx(2 / 8)
    assert d["min_value"] == pytest.approx(-0.3)
    assert d["overshoot"] == pytest.approx(0.3)
    assert d["overshoot_relative"] == pytest.approx(0.15)
    assert d["spurious_drizzle_fraction"] == pytest.approx(1 / 8)  # only 0.2 > 0.1 among dry cells
    assert d["dry_fraction"] == pytest.approx(0.5)
    d2 = sp.gibbs_diagnostics(original, truncated, drizzle_threshold=0.01)
    assert d2["spurious_drizzle_fraction"] == pytest.approx(2 / 8)


def test_gibbs_diagnostics_floors_and_zero_field():
    z = np.zeros((4, 4))
    d = sp.gibbs_diagnostics(z + 1.0, z + 0.5)
    assert d["overshoot"] == 0.0 and d["min_value"] == 0.0 and d["negative_fraction"] == 0.0
    d = sp.gibbs_diagnostics(z, z + 0.2)
    assert d["overshoot_relative"] == 0.0 and d["dry_fraction"] == 1.0
    assert d["spurious_drizzle_fraction"] == 1.0
    with pytest.raises(ValueError, match="shapes differ"):
        sp.gibbs_diagnostics(z, np.zeros((4, 5)))


def test_gibbs_diagnostics_on_a_truncated_step():
    field = 3.0 * _step()  # 3 mm/h band over a dry background
    d = sp.gibbs_diagnostics(field, sp.truncate(field, cutoff_km=16.0, dx_km=1.0, method="fft"))
    assert 0.07 <= d["overshoot_relative"] <= 0.11
    assert d["overshoot"] == pytest.approx(3.0 * d["overshoot_relative"])
    assert d["min_value"] < -0.07 * 3.0
    assert 0.0 < d["negative_fraction"] < 0.5
    assert d["dry_fraction"] == pytest.approx(0.5)
    assert 0.0 < d["spurious_drizzle_fraction"] < d["dry_fraction"]
