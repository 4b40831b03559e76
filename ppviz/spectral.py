"""Spectra and spectral truncation of precipitation fields on a regular grid.

Three tools, all batched over leading dimensions (one FFT call, no Python loop over fields):

* :func:`rapsd` / :func:`rapsd_xr` -- radially averaged power spectral density (RAPSD).
* :func:`truncate` -- sharp spectral low-pass on the same grid (periodic FFT or DCT-II).
* :func:`gibbs_diagnostics` -- how much a truncation rings (negative rain, overshoot, drizzle).

Conventions (DESIGN.md, item 7)
-------------------------------
Grid spacing ``dx_km`` is the same along both axes (the meridional spacing of the lat/lon grid;
0.25 deg = 27.80 km).  Wavenumbers are in cycles/km, wavelengths in km.  Along an axis of ``n``
points the discrete frequencies are ``np.fft.fftfreq(n, dx_km)``; the isotropic wavenumber is
``|k| = sqrt(kx**2 + ky**2)``.

Normalisation and Parseval.  With ``F = fft2(g)`` (unnormalised, numpy convention) of a field
``g`` of ``N = ny * nx`` cells, the 2-D periodogram density is
``S(kx, ky) = |F|**2 * dx_km**2 / N``  [(field units)**2 km**2], so that
``sum(S) * dkx * dky = mean(g**2)`` with ``dkx = 1/(nx dx)``, ``dky = 1/(ny dx)``.  :func:`rapsd`
returns the *ring average* of ``S`` (white noise of variance s**2 is flat at ``s**2 dx**2``; a
field with 2-D power ~ k**-beta has slope -beta), and Parseval reads, exactly::

    sum(psd * area, axis=-1) + mean(g)**2 + corner_power(g) == mean(g**2)

where ``area = radial_bins(shape, dx_km).area`` is the k-plane area covered by each bin
(``count * dkx * dky`` in cycles**2/km**2, close to ``2 pi k dk``; a ring average cannot also
satisfy ``sum(psd * dk) == variance``) and ``corner_power`` is the power of the diagonal modes
beyond the last bin (see :func:`radial_bins`; 1 - pi/4 = 21 % of the variance for white noise,
little for red precipitation spectra).  Hence ``sum(psd * area)`` is the spatial variance
(ddof=0) of a field without corner power.
"""

from __future__ import annotations

import functools
import math
from typing import NamedTuple

import numpy as np
import scipy.fft
import scipy.sparse
from scipy.signal import windows as _windows

from ppviz.constants import FINE_DX_KM, KM_PER_DEG
from ppviz.data.grid import grid_spacing_km

__all__ = ["DEFAULT_CUTOFF_KM", "RadialBins", "gibbs_diagnostics", "preprocess", "radial_bins", "rapsd", "rapsd_xr",
           "truncate"]

#: Default truncation wavelength: the 1 deg scale, ``2 * 111.195 km`` = 222.39 km.  This is the
#: Nyquist wavelength (two grid lengths) of a 1 deg grid, i.e. the shortest wave the coarse
#: 1 deg model can represent; truncating the 0.25 deg field there mimics the coarse input.
DEFAULT_CUTOFF_KM = 2.0 * KM_PER_DEG

WINDOWS = (None, "hann", "tukey")
DETRENDS = (None, "mean", "linear")
BINNINGS = ("isotropic", "pysteps")
TRUNCATE_METHODS = ("fft", "dct")
#: Taper fraction of the ``'tukey'`` window (cosine tapers over 12.5 % of each edge).
TUKEY_ALPHA = 0.25


class RadialBins(NamedTuple):
    """Radial binning of the ``rfft2`` modes of a ``(ny, nx)`` grid (see :func:`radial_bins`)."""

    wavenumber: np.ndarray  #: (nbins,) bin centres, cycles/km
    dk: float  #: bin width, cycles/km
    counts: np.ndarray  #: (nbins,) number of full-plane Fourier modes in each bin
    area: np.ndarray  #: (nbins,) k-plane area of each bin, counts*dkx*dky, cycles**2/km**2
    matrix: scipy.sparse.csr_array  #: (ny*(nx//2+1), nbins) ring-averaging weights


def _check_choice(name: str, value: object, allowed: tuple) -> None:
    if value not in allowed:
        raise ValueError(f"{name}={value!r} is not supported; allowed values: {list(allowed)}")


def _check_dx(dx_km: float) -> float:
    dx = float(dx_km)
    if not np.isfinite(dx) or dx <= 0:
        raise ValueError(f"dx_km must be a positive number of km, got {dx_km!r}")
    return dx


def _check_fields(fields, name: str = "fields", min_size: int = 4) -> np.ndarray:
    x = np.asarray(fields)
    if x.ndim < 2:
        raise ValueError(f"{name} must have at least 2 dims (..., ny, nx), got shape {x.shape}")
    if min(x.shape[-2:]) < min_size:
        raise ValueError(f"{name} must be at least {min_size}x{min_size} in its last two dims, "
                         f"got {x.shape[-2:]}")
    if np.iscomplexobj(x):
        raise ValueError(f"{name} must be real, got dtype {x.dtype}")
    # float32 stays float32 (our data are float32; a float32 FFT is ~2x faster and its rounding,
    # ~1e-7 of the total power, is far below any spectral feature we measure); all else -> float64.
    x = x.astype(np.float32 if x.dtype == np.float32 else np.float64, copy=False)
    if not np.isfinite(x).all():  # one pass in the common case
        n_nan = int(np.isnan(x).sum())
        if n_nan:
            raise ValueError(
                f"{name} contains {n_nan} NaN values; NaNs are not allowed "
                "(fill or crop missing cells before spectral analysis)"
            )
        raise ValueError(f"{name} contains infinite values")
    return x


def _isotropic_bin(iy, ix, ny: int, nx: int):
    """Bin ``b`` with ``b - 1/2 <= |k|/dk < b + 1/2`` for integer mode indices, computed exactly.

    ``|k|/dk = L * hypot(iy/ny, ix/nx)``, ``L = max(ny, nx)``.  On non-square grids modes can lie
    exactly on a bin edge (e.g. 32x48: ``iy = 5`` gives 7.5); integer arithmetic makes such ties
    go to the upper bin deterministically.  Works element-wise on integer arrays.
    """
    L = max(ny, nx)
    gy, gx = math.gcd(L, ny), math.gcd(L, nx)
    py, qy, px, qx = L // gy, ny // gy, L // gx, nx // gx  # L/ny = py/qy, L/nx = px/qx
    q = qy * qx // math.gcd(qy, qx)
    a = np.asarray(iy, dtype=np.int64) * (py * (q // qy))
    c = np.asarray(ix, dtype=np.int64) * (px * (q // qx))
    s4 = 4 * (a * a + c * c)  # (2 q |k|/dk)**2, exact
    b = np.floor(np.sqrt(s4) / (2 * q) + 0.5).astype(np.int64)
    b = np.where(s4 < ((2 * b - 1) * q) ** 2, b - 1, b)
    return np.where(s4 >= ((2 * b + 1) * q) ** 2, b + 1, b)


@functools.lru_cache(maxsize=32)
def radial_bins(shape: tuple[int, int], dx_km: float, bins: str = "isotropic") -> RadialBins:
    """Radial wavenumber bins used by :func:`rapsd` for a ``(ny, nx)`` grid.

    Parameters
    ----------
    shape : (int, int)
        Grid shape ``(ny, nx)``.
    dx_km : float
        Grid spacing in km (both axes).
    bins : {'isotropic', 'pysteps'}
        ``'isotropic'`` (default): bin ``b = 1, 2, ...`` holds the modes with
        ``(b - 1/2) dk <= |k| < (b + 1/2) dk``, ``dk = 1 / (max(ny, nx) dx_km)``, where
        ``|k| = sqrt(kx**2 + ky**2)`` uses the true frequencies of each axis, so non-square
        grids are binned isotropically.  Bins go up to the bin holding ``k_max``, the highest
        frequency of the *shorter* axis (its Nyquist ``1/(2 dx)`` if that axis is even,
        ``(n-1)/(2 n dx)`` if odd); this last (Nyquist) bin is a full-width bin and includes the
        modes just past ``k_max`` on the diagonals.  A mode exactly on a bin edge (possible
        when ``ny != nx``) goes to the upper bin.  Modes beyond the last bin (the corners of the
        rectangle, partially sampled rings) are excluded: that is ``corner_power`` in the
        module-level Parseval identity.  The DC mode (k = 0) is always excluded.
        ``'pysteps'``: the binning of ``pysteps.utils.spectral.rapsd``, radius
        ``round(sqrt(iy**2 + ix**2))`` in integer mode indices and bins ``1 .. l//2 - 1``
        (``l//2`` if ``l`` is odd), ``l = max(ny, nx)``, wavenumber ``r / (l dx)``.  Identical
        to ``'isotropic'`` on square grids except that it drops the Nyquist bin of an even
        grid; on non-square grids it mixes different physical ``|k|`` (comparison only).

    Returns
    -------
    RadialBins
        ``wavenumber`` (nbins,) in cycles/km, ``dk`` in cycles/km, ``counts`` (nbins,) full-plane
        mode counts, ``area`` (nbins,) in cycles**2/km**2 and the sparse ``matrix`` that maps
        flattened ``rfft2`` power (ny*(nx//2+1),) to ring means (nbins,).  Arrays are read-only.
    """
    _check_choice("bins", bins, BINNINGS)
    ny, nx = (int(n) for n in shape)
    dx = _check_dx(dx_km)
    L = max(ny, nx)
    iy = np.minimum(np.arange(ny), ny - np.arange(ny))[:, None]  # |integer mode index|
    ix = np.arange(nx // 2 + 1)[None, :]
    if bins == "isotropic":
        b = _isotropic_bin(iy, ix, ny, nx)
        # bin of the shorter axis' highest frequency (its Nyquist if even)
        nbins = int(min(_isotropic_bin(ny // 2, 0, ny, nx), _isotropic_bin(0, nx // 2, ny, nx)))
    else:  # pysteps: integer-index radius, rounded (never a tie: sqrt(int) != m + 1/2)
        b = np.rint(np.hypot(iy, ix)).astype(np.int64)
        nbins = L // 2 - 1 if L % 2 == 0 else L // 2
    # rfft2 keeps kx >= 0: columns 0 < kx < nx/2 stand for two full-plane modes (F(-k) = F(k)*).
    w = np.full(ix.shape, 2.0)
    w[0, 0] = 1.0
    if nx % 2 == 0:
        w[0, -1] = 1.0
    w = np.broadcast_to(w, b.shape).ravel()
    b = b.ravel()
    keep = (b >= 1) & (b <= nbins)
    rows = np.flatnonzero(keep)
    cols = b[keep] - 1
    counts = np.bincount(cols, weights=w[keep], minlength=nbins)
    matrix = scipy.sparse.csr_array((w[keep] / counts[cols], (rows, cols)), shape=(b.size, nbins))
    dk = 1.0 / (L * dx)
    wavenumber = np.arange(1, nbins + 1) * dk
    area = counts / (ny * nx * dx * dx)
    for a in (wavenumber, counts, area):
        a.flags.writeable = False
    return RadialBins(wavenumber, dk, counts, area, matrix)


def _window2d(name: str, ny: int, nx: int) -> np.ndarray:
    """Separable periodic window over the last two axes, scaled to ``mean(w**2) == 1``."""
    if name == "hann":
        wy, wx = _windows.hann(ny, sym=False), _windows.hann(nx, sym=False)
    else:
        wy, wx = _windows.tukey(ny, TUKEY_ALPHA, sym=False), _windows.tukey(nx, TUKEY_ALPHA, sym=False)
    w = np.outer(wy, wx)
    return w / np.sqrt(np.mean(w * w))


def _detrend(x: np.ndarray, how: str | None) -> np.ndarray:
    """Remove the per-field mean or least-squares plane ``a + b y + c x`` (vectorised)."""
    if how is None:
        return x
    mean = x.mean(axis=(-2, -1), keepdims=True)
    if how == "mean":
        return x - mean
    ny, nx = x.shape[-2:]
    # Centred coordinates make 1, y and x orthogonal on the full grid, so the LS plane
    # coefficients are plain projections.
    y = np.arange(ny) - (ny - 1) / 2.0
    xx = np.arange(nx) - (nx - 1) / 2.0
    b = np.tensordot(x.mean(axis=-1), y, axes=([-1], [0])) / np.sum(y * y)
    c = np.tensordot(x.mean(axis=-2), xx, axes=([-1], [0])) / np.sum(xx * xx)
    return x - mean - b[..., None, None] * y[:, None] - c[..., None, None] * xx[None, :]


def preprocess(fields, *, window: str | None = None, detrend: str | None = None) -> np.ndarray:
    """The field ``g`` whose spectrum :func:`rapsd` returns: detrended, then windowed.

    Parameters
    ----------
    fields : array_like, shape (..., ny, nx)
        Real fields.
    window : {None, 'hann', 'tukey'}
        Separable periodic window (``'tukey'`` with ``alpha = TUKEY_ALPHA``), scaled so that
        ``mean(w**2) == 1`` (the expected variance of a stationary field is preserved).
    detrend : {None, 'mean', 'linear'}
        Subtract the per-field mean or the least-squares plane ``a + b*y + c*x``.

    Returns
    -------
    numpy.ndarray, shape (..., ny, nx), float64
    """
    _check_choice("window", window, WINDOWS)
    _check_choice("detrend", detrend, DETRENDS)
    x = _detrend(_check_fields(fields), detrend)
    if window is not None:
        x = x * _window2d(window, *x.shape[-2:])
    return x


def rapsd(fields, dx_km: float, *, window: str | None = None, detrend: str | None = None,
          return_wavelength: bool = False, bins: str = "isotropic"):
    """Radially averaged power spectral density of real 2-D fields, batched.

    One ``rfft2`` over the last two axes of the whole batch, then one sparse matrix product
    that averages the power over rings of ``|k|`` (no Python loop over fields).

    Parameters
    ----------
    fields : array_like, shape (..., ny, nx)
        Real fields on a regular grid, at least 4x4, no NaN; odd, even and ``ny != nx`` work.
    dx_km : float
        Grid spacing in km, the same along both axes.
    window : {None, 'hann', 'tukey'}
        Taper applied after detrending (see :func:`preprocess`).
    detrend : {None, 'mean', 'linear'}
        Remove the mean or a least-squares plane first (see :func:`preprocess`).
    return_wavelength : bool
        Also return ``wavelength_km = 1 / wavenumber``.
    bins : {'isotropic', 'pysteps'}
        Radial binning, see :func:`radial_bins`.  Default ``'isotropic'``: bins of width
        ``dk = 1/(max(ny, nx) dx_km)`` centred on ``b dk``, ``b = 1 ..`` up to the Nyquist of the
        shorter axis (the last bin is the Nyquist bin); k = 0 (DC) excluded.

    Returns
    -------
    wavenumber : numpy.ndarray, shape (nbins,)
        Bin centres in cycles/km.
    psd : numpy.ndarray, shape fields.shape[:-2] + (nbins,)
        Ring average of the 2-D periodogram density ``S = |fft2(g)|**2 dx_km**2 / (ny nx)`` in
        (field units)**2 km**2, ``g = preprocess(fields, window=window, detrend=detrend)``.
        Parseval, exact: ``sum(psd * radial_bins((ny, nx), dx_km).area, -1) + mean(g)**2 +
        corner_power == mean(g**2)``; ``corner_power`` is the power of the corner modes beyond
        the last bin (zero for fields band-limited to ``|k| <= k_max``).
    wavelength_km : numpy.ndarray, shape (nbins,)
        ``1 / wavenumber`` in km; only if ``return_wavelength``.

    Raises
    ------
    ValueError
        Fewer than 2 dims, smaller than 4x4, NaN or inf values, bad ``window``, ``detrend``,
        ``bins`` or ``dx_km``.

    Notes
    -----
    Relation to ``pysteps.utils.spectral.rapsd(field, fft_method=np.fft, d=dx_km,
    normalize=False)``, which returns the ring mean of ``|fft2|**2 / (ny nx)`` including the
    DC bin: with ``bins='pysteps'``, ``psd == dx_km**2 * pysteps_psd[1:]`` and
    ``wavenumber == pysteps_freq[1:]`` (to rounding; see ``benchmarks/bench_rapsd.py``).
    """
    _check_choice("bins", bins, BINNINGS)
    dx = _check_dx(dx_km)
    g = preprocess(fields, window=window, detrend=detrend)
    ny, nx = g.shape[-2:]
    rb = radial_bins((ny, nx), dx, bins)
    lead = g.shape[:-2]
    spec = scipy.fft.rfft2(g.reshape((-1, ny, nx)), axes=(-2, -1), workers=-1)
    v = spec.view(g.dtype)  # (re, im) pairs; square in place, then |F|**2 = re**2 + im**2
    np.square(v, out=v)
    power = (v[..., 0::2] + v[..., 1::2]).reshape(spec.shape[0], rb.matrix.shape[0])
    psd = np.asarray(power @ rb.matrix) * (dx * dx / (ny * nx))
    psd = psd.reshape(lead + (rb.wavenumber.size,))
    wavenumber = rb.wavenumber.copy()
    if return_wavelength:
        return wavenumber, psd, 1.0 / wavenumber
    return wavenumber, psd


def rapsd_xr(da, dx_km: float | None = None, *, window: str | None = None, detrend: str | None = None):
    """:func:`rapsd` of an ``xarray.DataArray`` with dims ``(..., lat, lon)``.

    Parameters
    ----------
    da : xarray.DataArray, dims (..., lat, lon)
        Real fields; the last two dims are the spatial ones (dask-backed arrays stay lazy as
        long as ``lat`` and ``lon`` are single chunks).
    dx_km : float or None
        Grid spacing in km; None takes it from the latitude spacing of ``da``'s second-to-last
        coordinate, ``dx_km = deg2rad(|dlat|) * 6371`` (27.80 km for 0.25 deg).  The grid is
        treated as having this spacing along both axes.
    window, detrend : see :func:`rapsd`.

    Returns
    -------
    xarray.DataArray, dims (..., wavenumber)
        Leading dims and their coordinates kept; coordinate ``wavenumber`` (cycles/km) and
        ``wavelength_km`` (km) on the new dim; attrs ``units`` and ``long_name``.
    """
    import xarray as xr

    if da.ndim < 2:
        raise ValueError(f"da must have dims (..., lat, lon), got {da.dims}")
    ydim, xdim = da.dims[-2:]
    if dx_km is None:
        if ydim not in da.coords:
            raise ValueError(f"dx_km is None and da has no coordinate for {ydim!r} to derive it")
        dx_km = grid_spacing_km(da[ydim].values)
        if dx_km is None:
            raise ValueError(f"{ydim!r} must be regularly spaced to derive dx_km; pass dx_km")
    if min(da.shape[-2:]) < 4:
        raise ValueError(f"da must be at least 4x4 in ({ydim}, {xdim}), got {da.shape[-2:]}")
    k = radial_bins(tuple(int(n) for n in da.shape[-2:]), _check_dx(dx_km)).wavenumber.copy()

    def _psd(x):
        return rapsd(x, dx_km, window=window, detrend=detrend)[1]

    out = xr.apply_ufunc(
        _psd,
        da,
        input_core_dims=[[ydim, xdim]],
        output_core_dims=[["wavenumber"]],
        dask="parallelized",
        output_dtypes=[np.float64],
        dask_gufunc_kwargs={"output_sizes": {"wavenumber": k.size}},
    )
    out = out.assign_coords(
        wavenumber=("wavenumber", k, {"units": "cycles/km", "long_name": "isotropic wavenumber"}),
        wavelength_km=("wavenumber", 1.0 / k, {"units": "km", "long_name": "wavelength"}),
    )
    field_units = da.attrs.get("units", "field units")
    out.attrs = {
        "units": f"({field_units})^2 km^2",
        "long_name": "radially averaged power spectral density",
        "dx_km": float(dx_km),
        "window": str(window),
        "detrend": str(detrend),
    }
    out.name = f"{da.name}_rapsd" if da.name is not None else "rapsd"
    return out


def _lowpass_mask_fft(ny: int, nx: int, dx: float, kc: float) -> np.ndarray:
    ky = np.fft.fftfreq(ny, dx)[:, None]
    kx = np.fft.rfftfreq(nx, dx)[None, :]
    return np.hypot(ky, kx) <= kc


def _lowpass_mask_dct(ny: int, nx: int, dx: float, kc: float) -> np.ndarray:
    ky = (np.arange(ny) / (2.0 * ny * dx))[:, None]
    kx = (np.arange(nx) / (2.0 * nx * dx))[None, :]
    return np.hypot(ky, kx) <= kc


def truncate(field, cutoff_km: float = DEFAULT_CUTOFF_KM, dx_km: float = FINE_DX_KM, method: str = "fft"):
    """Sharp spectral low-pass on the same grid: keep wavelengths >= ``cutoff_km``.

    Keeps the modes with ``|k| = sqrt(kx**2 + ky**2) <= 1 / cutoff_km`` (relative tolerance
    1e-9, so a wave of exactly ``cutoff_km`` is kept) and zeroes the rest; batched over leading
    dims.

    Parameters
    ----------
    field : array_like, shape (..., ny, nx)
        Real fields, e.g. precipitation in mm/h; at least 2x2, no NaN.
    cutoff_km : float
        Shortest wavelength kept, km.  Default :data:`DEFAULT_CUTOFF_KM` (1 deg scale, 222.39 km).
    dx_km : float
        Grid spacing in km (both axes).
    method : {'fft', 'dct'}
        ``'fft'``: ``rfft2``, frequencies ``fftfreq(n, dx_km)``; assumes the field is periodic,
        so a mismatch between opposite borders is a jump that rings (Gibbs) at the borders by
        wrap-around.  ``'dct'``: orthonormal DCT-II (``scipy.fft.dctn``, ``norm='ortho'``) over
        the last two axes, frequency of index ``m`` is ``m / (2 n dx_km)``; the implied even
        (mirror) extension is continuous at the borders, so there is no wrap-around ringing.

    Returns
    -------
    numpy.ndarray, shape field.shape
        Truncated field in the units of ``field``; dtype of ``field`` if floating, else float64.
        It can be negative and overshoot near sharp edges (see :func:`gibbs_diagnostics`).
    """
    _check_choice("method", method, TRUNCATE_METHODS)
    dx = _check_dx(dx_km)
    cut = float(cutoff_km)
    if not np.isfinite(cut) or cut <= 0:
        raise ValueError(f"cutoff_km must be a positive number of km, got {cutoff_km!r}")
    arr = np.asarray(field)
    out_dtype = arr.dtype if np.issubdtype(arr.dtype, np.floating) else np.dtype(np.float64)
    x = _check_fields(arr, name="field", min_size=2)
    ny, nx = x.shape[-2:]
    kc = (1.0 / cut) * (1.0 + 1e-9)
    axes = (-2, -1)
    if method == "fft":
        spec = scipy.fft.rfft2(x, axes=axes, workers=-1)
        spec *= _lowpass_mask_fft(ny, nx, dx, kc)
        y = scipy.fft.irfft2(spec, s=(ny, nx), axes=axes, workers=-1)
    else:
        coef = scipy.fft.dctn(x, type=2, norm="ortho", axes=axes, workers=-1)
        coef *= _lowpass_mask_dct(ny, nx, dx, kc)
        y = scipy.fft.idctn(coef, type=2, norm="ortho", axes=axes, workers=-1)
    return y.astype(out_dtype, copy=False)


def gibbs_diagnostics(original, truncated, *, drizzle_threshold: float = 0.1) -> dict[str, float]:
    """Ringing diagnostics of a truncated precipitation field against its original.

    All statistics pool every cell of the (possibly batched) arrays.

    Parameters
    ----------
    original : array_like, shape (..., ny, nx)
        Original precipitation, mm/h (>= 0; cells <= 0 count as dry).
    truncated : array_like, same shape
        Truncated (e.g. :func:`truncate`) precipitation, mm/h.
    drizzle_threshold : float
        Rate in mm/h above which a cell counts as raining, for ``spurious_drizzle_fraction``.

    Returns
    -------
    dict of str to float
        Plain Python floats (JSON-ready):

        ``negative_fraction``
            Fraction of cells with ``truncated < 0`` (unphysical negative rain), in [0, 1].
        ``min_value``
            Most negative value of ``truncated``, mm/h; 0.0 if none is negative.
        ``overshoot``
            ``max(truncated) - max(original)``, mm/h, floored at 0.
        ``overshoot_relative``
            ``overshoot / max(original)`` (0.0 if ``max(original) <= 0``); ~0.09 for a sharp
            cut of an isolated step (Gibbs).
        ``spurious_drizzle_fraction``
            Fraction of *all* cells that are dry in ``original`` (``<= 0``) but have
            ``truncated > drizzle_threshold``, in [0, 1].
        ``dry_fraction``
            Fraction of cells that are dry (``<= 0``) in ``original``, in [0, 1].

    Raises
    ------
    ValueError
        Shapes differ, arrays are empty or contain NaN.
    """
    o = np.asarray(original, dtype=np.float64)
    t = np.asarray(truncated, dtype=np.float64)
    if o.shape != t.shape:
        raise ValueError(f"original and truncated shapes differ: {o.shape} vs {t.shape}")
    if o.size == 0:
        raise ValueError("original and truncated are empty")
    if np.isnan(o).any() or np.isnan(t).any():
        raise ValueError("original or truncated contains NaN values; NaNs are not allowed")
    omax, tmax = float(o.max()), float(t.max())
    overshoot = max(tmax - omax, 0.0)
    dry = o <= 0
    return {
        "negative_fraction": float(np.mean(t < 0)),
        "min_value": min(float(t.min()), 0.0),
        "overshoot": overshoot,
        "overshoot_relative": overshoot / omax if omax > 0 else 0.0,
        "spurious_drizzle_fraction": float(np.mean(dry & (t > drizzle_threshold))),
        "dry_fraction": float(np.mean(dry)),
    }
