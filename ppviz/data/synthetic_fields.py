"""Building blocks of the synthetic generator (:mod:`ppviz.data.synthetic`): spectral Lagrangian
AR(1) random fields, storm objects (spawned per day, rendered per hour) and the keyed random streams.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
import scipy.fft


# ----- spectral Lagrangian AR(1) random fields ------------------------------------------------------


@dataclass
class _SpectralField:
    """A Gaussian random field on a padded periodic grid, advanced hour by hour in Fourier space.

    ``X_k(t+1) = phi_k exp(-2 pi i k.D) X_k(t) + sqrt(1 - phi_k**2) A_k eps``: stationary with
    2-D power ``A_k**2``, Lagrangian lag-1 correlation ``phi_k = exp(-1 h / tau_k)``, and the
    whole field moved by ``D`` km per hour.
    """

    amp: np.ndarray  # (ny, nx//2+1) float32
    prop: np.ndarray  # complex64: phi * shift
    innov: np.ndarray  # float32: sqrt(1 - phi^2) * amp
    shape: tuple[int, int]
    state: np.ndarray | None = None

    @classmethod
    def build(cls, shape, dy_km, dx_km, power, tau, uv_ms) -> "_SpectralField":
        ny, nx = shape
        ky = np.fft.fftfreq(ny, dy_km)[:, None]
        kx = np.fft.rfftfreq(nx, dx_km)[None, :]
        k = np.hypot(ky, kx)
        k[0, 0] = np.inf  # no mean: the field has zero mean
        p = np.where(np.isfinite(k), power(k), 0.0)
        weight = np.full(kx.shape, 2.0)
        weight[:, 0] = 1.0
        if nx % 2 == 0:
            weight[:, -1] = 1.0
        p = p / np.sum(p * weight)  # unit variance (irfft2 with norm='forward')
        amp = np.sqrt(p)
        lam = 1.0 / k
        phi = np.exp(-1.0 / np.maximum(tau(lam), 0.5))
        dx_h, dy_h = uv_ms[0] * 3.6, uv_ms[1] * 3.6  # km per hour
        shift = np.exp(-2j * np.pi * (kx * dx_h + ky * dy_h))
        return cls(
            amp=amp.astype(np.float32),
            prop=(phi * shift).astype(np.complex64),
            innov=(np.sqrt(1.0 - phi**2) * amp).astype(np.float32),
            shape=(ny, nx),
        )

    def _noise(self, rng: np.random.Generator, n: int) -> np.ndarray:
        z = rng.standard_normal((n, 2) + self.amp.shape, dtype=np.float32)
        return (z[:, 0] + 1j * z[:, 1]) * np.float32(math.sqrt(0.5))

    def init(self, rng: np.random.Generator) -> None:
        self.state = (self._noise(rng, 1)[0] * self.amp).astype(np.complex64)

    def advance(self, rng: np.random.Generator, hours: int, crop: tuple[int, int]) -> np.ndarray:
        """The next ``hours`` fields, cropped to ``crop`` = (nlat, nlon); float32."""
        eps = self._noise(rng, hours)
        spec = np.empty((hours,) + self.amp.shape, dtype=np.complex64)
        x = self.state
        for h in range(hours):
            x = self.prop * x + self.innov * eps[h]
            spec[h] = x
        self.state = x
        out = scipy.fft.irfft2(spec, s=self.shape, axes=(-2, -1), norm="forward", workers=-1)
        return out[:, : crop[0], : crop[1]].astype(np.float32, copy=False)


def _power_law(beta: float, l0: float, lc: float | None = None):
    k0 = 1.0 / l0

    def power(k):
        p = (k * k + k0 * k0) ** (-beta / 2.0)
        if lc is not None:  # suppress the scales longer than lc
            p = p * (1.0 - np.exp(-((k * lc) ** 4)))
        return p

    return power


# ----- storms ------------------------------------------------------------------------------------------

_STORM_FIELDS = ("t0", "life", "lon0", "lat0", "u", "v", "amp", "radius", "front_len", "front_w", "tilt", "bend")


def _season(times: pd.DatetimeIndex) -> np.ndarray:
    """+1 in mid-January (winter), -1 in mid-July (summer)."""
    doy = times.day_of_year.values + times.hour.values / 24.0
    return np.cos(2.0 * np.pi * (doy - 20.0) / 365.25)


def _storms_of_day(seed: int, day: pd.Timestamp, hour0: float, p) -> np.ndarray:
    """Cyclones spawned on calendar ``day`` (rows of _STORM_FIELDS; ``t0`` in hours since start);
    ``p`` is the generator's :class:`ppviz.data.synthetic.SynthParams`."""
    rng = _rng(seed, _KEY_STORMS, day)
    s = float(_season(pd.DatetimeIndex([day + pd.Timedelta(hours=12)]))[0])
    winter = 0.5 * (1.0 + s)
    rows = []
    n_atl = rng.poisson(p.storm_rate_summer + (p.storm_rate_winter - p.storm_rate_summer) * winter)
    track = p.storm_track_lat_summer + (p.storm_track_lat_winter - p.storm_track_lat_summer) * winter
    for _ in range(n_atl):
        rows.append(
            (
                hour0 + rng.uniform(0, 24),
                rng.uniform(60, 120),
                rng.uniform(-40.0, -12.0),
                track + rng.normal(0.0, 5.0),
                rng.uniform(10.0, 17.0),
                rng.normal(1.0, 1.5),
                p.storm_amp * (0.6 + 0.4 * winter) * rng.lognormal(0.0, 0.35),
                rng.uniform(300.0, 600.0),
                rng.uniform(800.0, 1600.0),
                rng.uniform(70.0, 140.0),
                rng.uniform(0.2, 0.6),
                rng.uniform(0.0, 0.5),
            )
        )
    n_med = rng.poisson(p.med_rate_winter * winter)
    for _ in range(n_med):  # Genoa / western-Mediterranean lows drifting east-south-east
        rows.append(
            (
                hour0 + rng.uniform(0, 24),
                rng.uniform(36, 72),
                rng.uniform(2.0, 12.0),
                rng.uniform(38.0, 45.0),
                rng.uniform(5.0, 10.0),
                rng.normal(-1.0, 1.0),
                p.storm_amp * 0.8 * rng.lognormal(0.0, 0.3),
                rng.uniform(200.0, 400.0),
                rng.uniform(400.0, 800.0),
                rng.uniform(60.0, 120.0),
                rng.uniform(0.1, 0.4),
                rng.uniform(0.0, 0.3),
            )
        )
    return np.asarray(rows, dtype=float).reshape(-1, len(_STORM_FIELDS))


def _render_storms(storms: np.ndarray, hours: np.ndarray, lat: np.ndarray, lon: np.ndarray) -> np.ndarray:
    """Sum of the storms' convergence patterns at ``hours`` on the (lat, lon) grid; float32."""
    out = np.zeros((hours.size, lat.size, lon.size), dtype=np.float32)
    km = 111.195
    for st in storms:
        t0, life, lon0, lat0, u, v, amp, radius, flen, fw, tilt, bend = st
        age = hours - t0
        live = (age > 0) & (age < life)
        if not live.any():
            continue
        a = age[live]
        clat = lat0 + v * 3.6 * a / km
        clon = lon0 + u * 3.6 * a / (km * np.cos(np.deg2rad(clat)))
        env = (amp * np.sin(np.pi * a / life) ** 1.5).astype(np.float32)
        y = ((lat[None, :] - clat[:, None]) * km).astype(np.float32)[:, :, None]  # (h, lat, 1)
        x = ((lon[None, :] - clon[:, None]) * km)[:, None, :] * np.cos(np.deg2rad(lat))[None, :, None]
        x = x.astype(np.float32)  # (h, lat, lon)
        # comma head around and north-west of the low
        r2 = (x + 0.3 * radius) ** 2 + (y - 0.3 * radius) ** 2
        f = 0.9 * np.exp(-0.5 * r2 / radius**2)
        # cold front trailing south(-west), bending west further south
        yn = y / flen
        xf = tilt * y - bend * flen * yn * yn
        along = np.exp(-0.5 * yn * yn) * 0.5 * (1.0 - np.tanh(y / 120.0))
        f += np.exp(-0.5 * ((x - xf) / fw) ** 2) * along
        # warm front to the east-south-east, weaker and broader
        xw = x / (0.6 * flen)
        yf = -0.35 * x
        f += 0.6 * np.exp(-0.5 * ((y - yf) / (1.6 * fw)) ** 2) * np.exp(-0.5 * xw * xw) * 0.5 * (1.0 + np.tanh(x / 120.0))
        # dry, subsiding air behind the cold front
        f -= 0.35 * np.exp(-0.5 * ((x - xf + 3.5 * fw) / (2.0 * fw)) ** 2) * along
        out[live] += env[:, None, None] * f
    return out


# ----- random streams -----------------------------------------------------------------------------------

_KEY_INIT, _KEY_SYN, _KEY_CONV, _KEY_NOISE, _KEY_STORMS, _KEY_WIND, _KEY_MESO = range(7)


def _rng(seed: int, key: int, day: pd.Timestamp | None = None) -> np.random.Generator:
    """A PCG64 stream keyed by (seed, component, calendar day)."""
    extra = (int(day.toordinal()),) if day is not None else ()
    ss = np.random.SeedSequence(int(seed), spawn_key=(key,) + extra)
    return np.random.Generator(np.random.PCG64(ss))
