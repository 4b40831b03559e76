"""Power spectra of fields and how model spectra compare with the truth's.

Spectra come from :func:`ppviz.spectral.rapsd_xr` (ring-averaged periodogram density, see
:mod:`ppviz.spectral` for normalisation and Parseval); this module averages them and compares.

Contract shared by every function here
--------------------------------------
* Fields: ``xarray.DataArray`` with dims ``(..., lat, lon)`` in mm/h (e.g.
  ``(member, time, lat, lon)`` or ``(time, lat, lon)``); ``dx_km`` defaults to the latitude
  spacing (27.80 km at 0.25 deg).  **No NaN** (``rapsd`` raises): fill or crop first.
* Spectra: DataArrays with a ``wavenumber`` dim (cycles/km) and a ``wavelength_km``
  coordinate on it, in (mm/h)**2 km**2.  Two spectra compared must have the same wavenumbers.
* Dry cells are zeros like any other value (an all-dry field has zero power).  Ratios are NaN
  where the truth has zero power (0/0 included).
* Bands are closed wavelength intervals ``(lo_km, hi_km)``.  On the 0.25 deg grid the shortest
  resolved wavelength is the Nyquist 2 dx = 55.6 km, so a band such as 25-100 km holds only the
  bins between 55.6 and 100 km; a band that holds no bin raises ValueError.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import xarray as xr

from ppviz.metrics._common import TIME, resolve_dims
from ppviz.spectral import rapsd_xr

__all__ = [
    "DEFAULT_BANDS_KM", "band_label", "field_spectra", "log_spectral_distance", "mean_spectral_ratio",
    "mean_spectrum", "spectral_band_scores", "spectral_ratio",
]

#: Wavelength bands (km) of the band scores: the finest resolved scales, the scales the
#: downscaling adds below 1 deg (222 km), and the large scales the coarse input already holds.
DEFAULT_BANDS_KM = ((25.0, 100.0), (50.0, 200.0), (200.0, 1000.0))


def field_spectra(da: xr.DataArray, dx_km: float | None = None, *, window: str | None = None,
                  detrend: str | None = None) -> xr.DataArray:
    """RAPSD of every field: :func:`ppviz.spectral.rapsd_xr`.

    Parameters
    ----------
    da : xarray.DataArray, dims (..., lat, lon)
        mm/h, no NaN.
    dx_km, window, detrend : see :func:`ppviz.spectral.rapsd`.

    Returns
    -------
    xarray.DataArray, dims (..., wavenumber)
        (mm/h)**2 km**2 per field; coordinates ``wavenumber`` (cycles/km) and ``wavelength_km``.
    """
    return rapsd_xr(da, dx_km, window=window, detrend=detrend)


def mean_spectrum(da: xr.DataArray, dx_km: float | None = None, *, dims=None, window: str | None = None,
                  detrend: str | None = None) -> xr.DataArray:
    """Mean RAPSD over time (and, if asked, members).

    Parameters
    ----------
    da : xarray.DataArray, dims (..., lat, lon)
        mm/h, no NaN.
    dx_km, window, detrend : see :func:`ppviz.spectral.rapsd`.
    dims : None, str or sequence of str
        Non-spatial dims averaged; None averages ``time`` (if present), so an ensemble gives one
        spectrum per member; ``('member', 'time')`` gives the ensemble's pooled spectrum.

    Returns
    -------
    xarray.DataArray, dims (*kept dims, wavenumber)
        Mean power spectral density, (mm/h)**2 km**2.
    """
    psd = field_spectra(da, dx_km, window=window, detrend=detrend)
    dims = resolve_dims(psd, dims, (TIME,))
    if "wavenumber" in dims:
        raise ValueError("cannot average over 'wavenumber'")
    out = psd.mean(dims) if dims else psd
    out.attrs = {**psd.attrs, "averaged_dims": " ".join(dims)}
    out.name = psd.name
    return out


def _wavelength(spec: xr.DataArray) -> np.ndarray:
    if "wavenumber" not in spec.dims:
        raise ValueError(f"a spectrum needs a 'wavenumber' dim; dims are {spec.dims}")
    if "wavelength_km" in spec.coords:
        return np.asarray(spec["wavelength_km"].values, dtype=np.float64)
    return 1.0 / np.asarray(spec["wavenumber"].values, dtype=np.float64)


def _pair(model: xr.DataArray, truth: xr.DataArray) -> tuple[xr.DataArray, xr.DataArray]:
    wm, wt = _wavelength(model), _wavelength(truth)
    if wm.shape != wt.shape or not np.allclose(wm, wt, rtol=1e-9):
        raise ValueError("model and truth spectra have different wavenumbers (grids or dx_km differ)")
    coords = {c: truth[c] for c in ("wavenumber", "wavelength_km") if c in truth.coords}
    return model.assign_coords(coords), truth


def spectral_ratio(model: xr.DataArray, truth: xr.DataArray) -> xr.DataArray:
    """Power ratio ``model / truth`` per wavenumber.

    Parameters
    ----------
    model, truth : xarray.DataArray, dims (..., wavenumber)
        Spectra (e.g. :func:`mean_spectrum`), broadcast against each other.

    Returns
    -------
    xarray.DataArray, broadcast dims (..., wavenumber)
        Dimensionless; 1 where the model has the truth's power; NaN where the truth's power is
        0.  Keeps the ``wavelength_km`` coordinate.
    """
    m, t = _pair(model, truth)
    out = m / t.where(t != 0)
    out.attrs = {"units": "1", "long_name": "spectral ratio model/truth"}
    out.name = "spectral_ratio"
    return out


def _in_band(spec: xr.DataArray, band_km: Sequence[float]) -> xr.DataArray:
    lo, hi = (float(b) for b in band_km)
    if not (0 < lo < hi):
        raise ValueError(f"a band is (lo_km, hi_km) with 0 < lo < hi, got {band_km!r}")
    w = _wavelength(spec)
    mask = (w >= lo) & (w <= hi)
    if not mask.any():
        raise ValueError(f"no spectral bin has a wavelength in [{lo:g}, {hi:g}] km "
                         f"(resolved wavelengths: {w.min():.1f}-{w.max():.1f} km)")
    return xr.DataArray(mask, dims="wavenumber")


def band_label(band_km: Sequence[float]) -> str:
    """``'50-200 km'`` for ``(50, 200)``."""
    lo, hi = band_km
    return f"{lo:g}-{hi:g} km"


def log_spectral_distance(model: xr.DataArray, truth: xr.DataArray,
                          band_km: Sequence[float] = (50.0, 200.0)) -> xr.DataArray:
    """Log-spectral distance over a wavelength band, in dB.

    ``LSD = sqrt(mean over bins in band of (10 log10(P_model / P_truth))**2)``.

    Parameters
    ----------
    model, truth : xarray.DataArray, dims (..., wavenumber)
        Spectra; broadcast against each other.
    band_km : (lo_km, hi_km)
        Closed wavelength interval; bins with ``lo <= wavelength_km <= hi`` count.

    Returns
    -------
    xarray.DataArray, broadcast dims without wavenumber
        dB, >= 0; 0 for identical spectra; a constant power ratio ``r`` gives
        ``|10 log10 r|``.  Bins where both powers are 0 are skipped; a bin where exactly one is 0
        makes the distance inf.
    """
    m, t = _pair(model, truth)
    band = _in_band(t, band_km)
    with np.errstate(divide="ignore", invalid="ignore"):
        db = 10.0 * np.log10(m / t)
    sq = (db ** 2).where(band)
    out = np.sqrt(sq.mean("wavenumber", skipna=True))  # NaN (0/0) bins skipped, inf kept
    out.attrs = {"units": "dB", "long_name": f"log-spectral distance {band_label(band_km)}"}
    out.name = "lsd"
    return out


def mean_spectral_ratio(model: xr.DataArray, truth: xr.DataArray,
                        band_km: Sequence[float] = (50.0, 200.0)) -> xr.DataArray:
    """Arithmetic mean of :func:`spectral_ratio` over the bins of a wavelength band.

    Returns
    -------
    xarray.DataArray, broadcast dims without wavenumber
        Dimensionless; 1 for identical spectra, < 1 for too little power (too smooth).  Bins
        where the truth has no power are skipped.
    """
    r = spectral_ratio(model, truth)
    band = _in_band(r, band_km)
    out = r.where(band).mean("wavenumber", skipna=True)
    out.attrs = {"units": "1", "long_name": f"mean spectral ratio {band_label(band_km)}"}
    out.name = "mean_ratio"
    return out


def spectral_band_scores(model: xr.DataArray, truth: xr.DataArray,
                         bands: Sequence[Sequence[float]] = DEFAULT_BANDS_KM) -> xr.Dataset:
    """:func:`log_spectral_distance` and :func:`mean_spectral_ratio` for several bands.

    Returns
    -------
    xarray.Dataset, dims ('band', *broadcast dims without wavenumber)
        ``lsd_db`` (dB) and ``mean_ratio`` (1); coordinates ``band`` (labels like
        ``'50-200 km'``), ``band_lo_km``, ``band_hi_km``.  Bands without any bin are dropped.
    """
    lsd, ratio, kept = [], [], []
    w = _wavelength(truth)
    for b in bands:
        lo, hi = (float(v) for v in b)
        if not ((w >= lo) & (w <= hi)).any():
            continue
        kept.append((lo, hi))
        lsd.append(log_spectral_distance(model, truth, (lo, hi)))
        ratio.append(mean_spectral_ratio(model, truth, (lo, hi)))
    if not kept:
        raise ValueError(f"none of the bands {list(bands)} holds a spectral bin")
    coords = {"band": [band_label(b) for b in kept], "band_lo_km": ("band", [b[0] for b in kept]),
              "band_hi_km": ("band", [b[1] for b in kept])}
    ds = xr.Dataset({"lsd_db": xr.concat(lsd, "band"), "mean_ratio": xr.concat(ratio, "band")})
    ds = ds.assign_coords(coords)
    ds["lsd_db"].attrs = {"units": "dB", "long_name": "log-spectral distance"}
    ds["mean_ratio"].attrs = {"units": "1", "long_name": "mean spectral ratio model/truth"}
    return ds
