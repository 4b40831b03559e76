"""The embedded default data: a SYNTHETIC hourly (tp, vimd) climate over Europe, calibrated to ERA5.

This is not ERA5 and not a weather model. It is a fast stochastic generator whose statistics
were tuned to those of the real ERA5 sample (45-55N, 0-10E, 2020-01-01 and 2022-08-31; see
:data:`ppviz.metrics.calibration.REAL_SAMPLE_TARGETS`), so that the whole pipeline can run, and be tested, on a machine
without ERA5 and without a GPU.

The model
---------
Everything is built from one latent *moisture-convergence* field ``C`` (dimensionless,
positive = moisture converges, rain is likely) on the 0.25 deg grid, hour by hour:

``C = clim + a_s Z_s + storms + a_c Z_c + k_oro O * moist + k_elev h * moist``

- ``Z_s``: synoptic Gaussian random field, 2-D power spectrum ~ ``k**-beta_s`` (the real
  sample's VIMD slope), evolving in Fourier space as a Lagrangian AR(1) process: every mode is
  advected by the westerly mean flow (an exact phase shift) and decorrelates with a lifetime
  that grows with its wavelength (``tau ~ L**0.8``), so hour-to-hour coherence is high.
- ``storms``: extratropical cyclones (Atlantic, and Mediterranean lows in winter) that spawn
  west of the domain, travel west to east and grow and decay over 2-5 days; each is a comma
  head around its low, a trailing cold front and a warm front (Gaussian bands in km).
- ``Z_c``: convective random field, small scales only, short-lived; strong over land in summer
  afternoons (diurnal cycle in local solar time), over the warm sea in winter.
- ``O``: orographic lifting, the upslope component of the (slowly veering, mostly
  west-south-westerly) low-level wind on :func:`ppviz.data.geography.orography`; ``h`` the height.
  Both are weighted by ``moist``, a sigmoid of the synoptic convergence anomaly ``a_s Z_s +
  storms`` (rain needs moist, rising air). The embedded land mask is used (not Natural Earth),
  so the data do not depend on what is installed beside the checkout.
- ``clim``: land/sea and seasonal climatology (wet sea in winter, wet land and dry Mediterranean
  in summer).

The outputs (mm/h):

- ``tp = tp_scale * (C - c0) ** tp_power`` where ``C > c0``, exactly 0 elsewhere: rain where
  moisture converges, sharp edges (about three quarters of all cells are exactly 0), a drizzle
  fringe and a heavy right tail (``tp_power`` ~ 2.6 on a latent field whose upper tail is
  heavier than Gaussian because of the storms); ``c0``, ``tp_scale`` and ``tp_power`` were fitted
  so that the 0.9, 0.99 and 0.999 quantiles and the wet fraction match the ERA5 sample;
- ``vimd = -s_v(t) * (k C_s + a_n Z_n + a_m Z_m + ...)``: minus the synoptic convergence (so
  vimd < 0 where it rains) plus independent random fields (``Z_n`` synoptic, ``Z_m`` short-lived
  mesoscale noise in summer), because hourly vimd and tp are only loosely related in the ERA5
  sample (rank correlation ~0.1; vimd is much noisier in summer than in winter).

The default span (60 days from 2021-01-01, 160 x 240 cells, 55 M cells per variable) takes
about 15 s and under 2 GB on two CPU cores.

Randomness comes from ``numpy.random.PCG64`` streams keyed by (seed, component, calendar day), so
a run is reproducible bit for bit (same numpy/scipy on the same platform), and a shorter span is a prefix of a longer one with the same
start (only the storms spawned before the start are drawn as spin-up).

:func:`ppviz.metrics.calibration.calibration_statistics` measures the statistics the generator is tuned to; it is used on
both the real sample and the synthetic data (``tests/test_synthetic.py`` prints both).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd
import scipy.fft
import xarray as xr
from scipy.ndimage import gaussian_filter

from ppviz.data.canonical import canonical_dataset
from ppviz.data.geography import land_sea_mask, orography
from ppviz.data.grid import EUROPE, Grid
from ppviz.data.synthetic_fields import (
    _SpectralField, _power_law, _season, _storms_of_day, _render_storms, _rng, _KEY_INIT, _KEY_SYN, _KEY_CONV, _KEY_NOISE, _KEY_WIND, _KEY_MESO,
)

GENERATOR_VERSION = "1.1"  # 1.1: vimd is the hour mean, like ERA5
DEFAULT_DAYS = 60
DEFAULT_SEED = 0
DEFAULT_START = "2021-01-01"

SYNTHETIC_NOTE = (
    "SYNTHETIC data from ppviz's stochastic generator, NOT ERA5 and not a weather model: "
    "statistics calibrated to a small real ERA5 sample (45-55N, 0-10E, 2020-01-01 and 2022-08-31)"
)



@dataclass(frozen=True)
class SynthParams:
    """Tuning constants of the generator (defaults: calibrated to :data:`ppviz.metrics.calibration.REAL_SAMPLE_TARGETS`).

    Lengths in km, times in hours, speeds in m/s; ``C`` is dimensionless.
    """

    # synoptic random field Z_s
    beta_s: float = 4.0  # 2-D power spectrum exponent
    l0_s: float = 1500.0  # roll-off wavelength (km) of the large scales
    tau_s: float = 30.0  # lifetime (h) of a 1000 km wave
    tau_exp: float = 0.8  # tau ~ wavelength ** tau_exp
    u_s: float = 9.0  # steering flow (m/s), eastward
    v_s: float = 1.0  # northward
    a_s: float = 0.9
    # convective random field Z_c
    beta_c: float = 4.0
    lc_c: float = 400.0  # wavelengths longer than this are suppressed (km)
    tau_c: float = 4.0  # lifetime (h) of a 200 km wave
    u_c: float = 6.0
    conv_land_summer: float = 1.0
    conv_sea_winter: float = 0.5
    conv_base: float = 0.45
    diurnal: float = 0.6  # relative amplitude of the afternoon maximum over land
    # vimd noise field Z_n
    beta_n: float = 4.2
    tau_n: float = 5.0
    # short-lived mesoscale vimd noise Z_m (summer)
    beta_m: float = 4.0
    tau_m: float = 0.8  # lifetime (h) of a 200 km wave
    vimd_meso: float = 2.0
    # storms
    storm_rate_winter: float = 0.9  # Atlantic cyclones per day
    storm_rate_summer: float = 0.45
    med_rate_winter: float = 0.25
    storm_amp: float = 1.8
    storm_track_lat_winter: float = 55.0
    storm_track_lat_summer: float = 60.0
    # geography and climatology
    k_oro: float = 1.0  # per unit upslope index
    k_elev: float = 0.5  # per km of height
    clim0: float = -1.2
    land_winter: float = -0.25
    land_summer: float = 0.1
    sea_winter: float = 0.35
    sea_summer: float = -0.3
    med_summer_dry: float = 0.9
    # rain transform
    c0: float = 0.08
    tp_scale: float = 0.07
    tp_power: float = 2.6
    tp_max: float = 80.0
    # vimd
    vimd_winter: float = 0.25
    vimd_summer: float = 0.42
    vimd_couple: float = 0.3
    vimd_noise: float = 1.2
    vimd_conv: float = 0.1
    vimd_sea_offset: float = 0.03

    def to_json_dict(self) -> dict:
        return asdict(self)


# ----- the generator --------------------------------------------------------------------------------------


def _linear_interp_matrix(x_out: np.ndarray, x_in: np.ndarray) -> np.ndarray:
    """Matrix W with W @ f(x_in) = linear interpolation of f at x_out (constant beyond the ends)."""
    w = np.zeros((x_out.size, x_in.size), dtype=np.float32)
    j = np.clip(np.searchsorted(x_in, x_out) - 1, 0, x_in.size - 2)
    t = np.clip((x_out - x_in[j]) / (x_in[j + 1] - x_in[j]), 0.0, 1.0)
    w[np.arange(x_out.size), j] = 1.0 - t
    w[np.arange(x_out.size), j + 1] = t
    return w


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def synthesize(
    days: int = DEFAULT_DAYS,
    seed: int = DEFAULT_SEED,
    start: str = DEFAULT_START,
    grid: Grid = EUROPE,
    *,
    params: SynthParams | None = None,
    progress: bool = False,
) -> xr.Dataset:
    """Generate ``days`` of hourly SYNTHETIC ``tp`` and ``vimd`` (mm/h) on ``grid``.

    Parameters
    ----------
    days : int
        Length in days (>= 1); ``24 * days`` hourly steps starting at ``start`` 00:00.
    seed : int
        Random seed (>= 0). The same (seed, start, days, grid, params) gives identical bytes.
    start : str or datetime-like
        First day; sets the season (and which calendar days' random streams are used).
    grid : Grid
        Target grid (default the 0.25 deg Europe domain, 160 x 240).
    params : SynthParams, optional
        Tuning constants; default :class:`SynthParams` (calibrated to the ERA5 sample).
    progress : bool
        Show a tqdm progress bar over days (on stderr).

    Returns
    -------
    xr.Dataset
        Canonical (:func:`ppviz.data.canonical.canonical_dataset`): ``tp`` >= 0 and ``vimd``,
        float32, dims (time, lat, lon), ``attrs['source'] == 'synthetic'`` and attributes naming
        the generator version, seed, parameters and calibration target.
    """
    days = int(days)
    seed = int(seed)
    if days < 1:
        raise ValueError(f"days must be >= 1; got {days}")
    if seed < 0:
        raise ValueError(f"seed must be >= 0; got {seed}")
    p = params or SynthParams()
    t_start = pd.Timestamp(start).normalize()
    nlat, nlon = grid.shape
    lat = grid.lat.astype(float)
    lon = grid.lon.astype(float)

    # ---- static geography
    # climate varies smoothly across coasts: a land fraction blurred over ~50 km, and the
    # orography smoothed before its slopes are taken (no cliffs at the coast)
    # (the embedded land mask, not Natural Earth, so the data are the same on every machine)
    lsm = gaussian_filter(land_sea_mask(grid, natural_earth=False).astype(np.float64), 2.0, mode="nearest")
    h_km = orography(grid, natural_earth=False).astype(np.float64) / 1000.0
    dy_km = grid.dx_km
    dx_km_lat = dy_km * np.cos(np.deg2rad(lat))[:, None]
    h_smooth = gaussian_filter(h_km, 1.5, mode="nearest")
    gy = np.gradient(h_smooth, axis=0) / dy_km
    gx = np.gradient(h_smooth, axis=1) / dx_km_lat
    sea = 1.0 - lsm
    south = _sigmoid((44.0 - lat) / 1.5)[:, None] * np.ones((1, nlon))
    north = _sigmoid((lat - 62.0) / 2.0)[:, None] * np.ones((1, nlon))

    # ---- random fields on a padded periodic grid (isotropic in km at 50N)
    pad = (_next_fast(nlat + max(16, nlat // 5)), _next_fast(nlon + max(32, nlon // 3)))
    dx_km = dy_km * math.cos(math.radians(50.0))
    syn = _SpectralField.build(
        pad, dy_km, dx_km, _power_law(p.beta_s, p.l0_s),
        lambda lam: p.tau_s * (lam / 1000.0) ** p.tau_exp, (p.u_s, p.v_s),
    )
    conv = _SpectralField.build(
        pad, dy_km, dx_km, _power_law(p.beta_c, p.l0_s, p.lc_c),
        lambda lam: p.tau_c * (lam / 200.0) ** p.tau_exp, (p.u_c, 0.0),
    )
    noise = _SpectralField.build(
        pad, dy_km, dx_km, _power_law(p.beta_n, p.l0_s),
        lambda lam: p.tau_n * (lam / 1000.0) ** p.tau_exp, (p.u_s, p.v_s),
    )
    meso = _SpectralField.build(
        pad, dy_km, dx_km, _power_law(p.beta_m, p.l0_s, 2.0 * p.lc_c),
        lambda lam: p.tau_m * (lam / 200.0) ** p.tau_exp, (p.u_c, 0.0),
    )
    rng0 = _rng(seed, _KEY_INIT, t_start)
    for f in (syn, conv, noise, meso):
        f.init(rng0)
    wind_state = float(rng0.standard_normal())

    # ---- storms: spin-up (spawned up to 6 days before the start) and the span itself
    spin = 6
    storms = np.concatenate(
        [_storms_of_day(seed, t_start + pd.Timedelta(days=d), 24.0 * d, p) for d in range(-spin, 0)]
    )
    # storms rendered on a half-resolution grid, then linearly interpolated
    slat, slon = lat[::2], lon[::2]
    wy = _linear_interp_matrix(lat, slat)
    wx = _linear_interp_matrix(lon, slon).T.copy()

    tp_out = np.empty((24 * days, nlat, nlon), dtype=np.float32)
    vimd_out = np.empty((24 * days, nlat, nlon), dtype=np.float32)
    times = pd.date_range(t_start, periods=24 * days, freq="h")

    iterator = range(days)
    if progress:
        from tqdm.auto import tqdm

        iterator = tqdm(iterator, desc="synthetic days", unit="day")
    theta0 = math.radians(20.0)  # mean low-level wind from the WSW (blowing towards ENE)
    phi_w = math.exp(-1.0 / 48.0)
    last_vimd = None
    for d in iterator:
        day = t_start + pd.Timedelta(days=d)
        storms = np.concatenate([storms, _storms_of_day(seed, day, 24.0 * d, p)])
        storms = storms[storms[:, 0] + storms[:, 1] > 24.0 * d]  # drop dead ones
        hours = 24.0 * d + np.arange(24.0)
        tt = times[24 * d : 24 * d + 24]
        s = _season(tt)[:, None, None].astype(np.float32)
        winter = 0.5 * (1.0 + s)
        summer = 1.0 - winter

        z_s = syn.advance(_rng(seed, _KEY_SYN, day), 24, (nlat, nlon))
        z_c = conv.advance(_rng(seed, _KEY_CONV, day), 24, (nlat, nlon))
        z_n = noise.advance(_rng(seed, _KEY_NOISE, day), 24, (nlat, nlon))
        z_m = meso.advance(_rng(seed, _KEY_MESO, day), 24, (nlat, nlon))
        st = _render_storms(storms, hours, slat, slon)
        st = np.matmul(np.matmul(wy, st), wx)

        # climatology: land/sea by season, dry Mediterranean summer, drier Arctic
        clim = (
            p.clim0
            + lsm * (p.land_winter * winter + p.land_summer * summer)
            + sea * (p.sea_winter * winter + p.sea_summer * summer)
            - p.med_summer_dry * summer * south
            - 0.3 * north
        )
        c_syn = clim + p.a_s * z_s + st

        # convection: summer land afternoons (local solar time), winter over the warm sea
        local = (tt.hour.values[:, None, None] + lon[None, None, :] / 15.0) % 24.0
        diurnal = 1.0 + p.diurnal * np.cos(2.0 * np.pi * (local - 15.0) / 24.0)
        a_c = (p.conv_land_summer * summer * diurnal) * lsm + p.conv_sea_winter * winter * sea + p.conv_base
        a_c = a_c * (1.0 - 0.7 * north)

        # orographic lifting by the slowly veering low-level wind
        wrng = _rng(seed, _KEY_WIND, day)
        theta = np.empty(24)
        for h in range(24):
            wind_state = phi_w * wind_state + math.sqrt(1.0 - phi_w**2) * float(wrng.standard_normal())
            theta[h] = theta0 + 0.7 * wind_state
        upslope = np.cos(theta)[:, None, None] * gx + np.sin(theta)[:, None, None] * gy
        oro = np.maximum(upslope, 0.0) / 0.01 - 0.5 * np.maximum(-upslope, 0.0) / 0.01  # lee drying
        moist = _sigmoid(1.5 * (p.a_s * z_s + st))  # moist, rising air: synoptic anomaly
        c = c_syn + a_c * z_c + (p.k_oro * oro + p.k_elev * h_km) * moist

        # rain: exactly zero below c0, a power of the excess above it
        excess = c - p.c0
        tp = p.tp_scale * np.maximum(excess, 0.0) ** p.tp_power
        tp_out[24 * d : 24 * d + 24] = np.minimum(tp, p.tp_max)

        # vimd: minus the convergence, plus a partly independent field (mm/h)
        v_scale = p.vimd_winter * winter + p.vimd_summer * summer
        vimd = -v_scale * (
            p.vimd_couple * (c_syn - p.clim0 + p.k_oro * oro * moist)
            + p.vimd_conv * a_c * z_c
            + p.vimd_noise * z_n
            + p.vimd_meso * summer * z_m
        ) + p.vimd_sea_offset * (sea - lsm)
        # like ERA5's vimd (and ppviz's VIMD from levels): the mean over the hour ending at each
        # stamp, here the trapezoid of consecutive instantaneous fields; the first hour stays as is
        prev = np.concatenate([vimd[:1] if last_vimd is None else last_vimd[None], vimd[:-1]])
        last_vimd = vimd[-1].copy()
        vimd_out[24 * d : 24 * d + 24] = 0.5 * (vimd + prev)

    coords = {"time": times, "lat": lat, "lon": lon}
    dims = ("time", "lat", "lon")
    return canonical_dataset(
        xr.DataArray(tp_out, dims=dims, coords=coords),
        xr.DataArray(vimd_out, dims=dims, coords=coords),
        source="synthetic",
        title="SYNTHETIC hourly precipitation (tp) and VIMD over Europe -- not ERA5",
        comment=SYNTHETIC_NOTE,
        generator="ppviz.data.synthetic",
        generator_version=GENERATOR_VERSION,
        seed=seed,
        start=f"{t_start:%Y-%m-%d}",
        days=days,
        calibration_target=(
            "ERA5 sample 45-55N 0-10E, 2020-01-01 and 2022-08-31 (../shared/era5-sample): wet "
            "fraction, tp quantiles, vimd spread, tp-vimd relation, spectral slopes, lag-1h "
            "correlation; see ppviz.metrics.calibration.REAL_SAMPLE_TARGETS"
        ),
        generator_params=_params_text(p),
        geography=(
            "embedded approximate land-sea mask and analytic orography (ppviz.data.geography, "
            "natural_earth=False)"
        ),
    )


def _params_text(p: SynthParams) -> str:
    import json

    return json.dumps(p.to_json_dict(), sort_keys=True)


def _next_fast(n: int) -> int:
    return int(scipy.fft.next_fast_len(int(n), real=True))
