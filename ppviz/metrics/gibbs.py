"""Gibbs comparison: truncate TP directly vs truncate PP, then decode it to TP.

The paper's claim (DESIGN.md): spectral truncation of the sparse, discontinuous TP field rings
(negative rain, spurious drizzle at rain edges), while truncating the smooth PP field and
decoding the result does not.  This module measures both routes with the existing
:func:`ppviz.spectral.truncate` and :func:`ppviz.spectral.gibbs_diagnostics` (no new
definitions of ringing here).

Contract
--------
* ``tp`` and ``pp``: arrays (or DataArrays) of the same shape ``(..., ny, nx)`` on one regular
  grid, fine resolution; ``tp`` in mm/h (>= 0, dry = 0), ``pp`` dimensionless.  No NaN
  (``truncate`` raises).
* ``decode``: callable mapping a PP array to a TP array of the same shape in mm/h, e.g.
  ``functools.partial(ppviz.models.pp.decode_numpy, model)``.
* Both routes are scored against the same reference, the original ``tp``: dry cells are those
  with ``tp <= 0``.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from ppviz.constants import FINE_DX_KM
from ppviz.data.grid import grid_spacing_km
from ppviz.spectral import DEFAULT_CUTOFF_KM, gibbs_diagnostics, truncate

__all__ = ["gibbs_comparison"]

def _dx_from(a) -> float | None:
    dims = getattr(a, "dims", None)
    if not dims or len(dims) < 2 or dims[-2] not in getattr(a, "coords", {}):
        return None
    return grid_spacing_km(a[dims[-2]].values)


def gibbs_comparison(tp, pp, decode: Callable[[np.ndarray], np.ndarray], *,
                     cutoff_km: float = DEFAULT_CUTOFF_KM, method: str = "dct", dx_km: float | None = None,
                     drizzle_threshold: float = 0.1, return_fields: bool = False) -> dict:
    """Ringing of "truncated TP" against "truncated-then-decoded PP".

    Parameters
    ----------
    tp : array_like or xarray.DataArray, shape (..., ny, nx)
        Fine precipitation, mm/h, no NaN.
    pp : array_like or xarray.DataArray, same shape
        Fine PP (the encoding of ``tp``), no NaN.
    decode : callable
        ``decode(pp_array) -> tp_array`` (mm/h, same shape).
    cutoff_km : float
        Shortest wavelength kept, km; default the 1 deg scale (222.39 km).
    method : {'fft', 'dct'}
        See :func:`ppviz.spectral.truncate`; 'dct' (default) avoids wrap-around ringing at the
        borders, so what remains is the ringing of the field itself.
    dx_km : float or None
        Grid spacing; None derives it from a DataArray's latitude coordinate, else
        :data:`ppviz.constants.FINE_DX_KM` (0.25 deg = 27.80 km).
    drizzle_threshold : float
        mm/h, passed to :func:`ppviz.spectral.gibbs_diagnostics`.
    return_fields : bool
        Also return the two truncated TP fields under ``'fields'`` (numpy arrays; the rest of the
        dict stays JSON-ready).

    Returns
    -------
    dict
        ``cutoff_km``, ``method``, ``dx_km``, ``drizzle_threshold`` and three diagnostics dicts
        of :func:`ppviz.spectral.gibbs_diagnostics` (negative_fraction, min_value, overshoot,
        overshoot_relative, spurious_drizzle_fraction, dry_fraction), each against ``tp``:

        ``tp_truncated``
            ``truncate(tp)``: the Gibbs route.
        ``pp_truncated_decoded``
            ``decode(truncate(pp))``: the PP route.
        ``pp_decoded``
            ``decode(pp)`` without truncation: the decoder's own share of the PP route's
            differences (what truncation did not cause).

        For a smooth field band-limited below the cutoff, truncation is the identity and all
        ringing terms vanish (to rounding, ~1e-15 mm/h in ``overshoot``).
    """
    dx = dx_km if dx_km is not None else (_dx_from(tp) or _dx_from(pp) or FINE_DX_KM)
    t = np.asarray(getattr(tp, "values", tp), dtype=np.float64)
    p = np.asarray(getattr(pp, "values", pp), dtype=np.float64)
    if t.shape != p.shape:
        raise ValueError(f"tp and pp shapes differ: {t.shape} vs {p.shape}")

    def _decode(x: np.ndarray) -> np.ndarray:
        y = np.asarray(decode(x), dtype=np.float64)
        if y.shape != x.shape:
            raise ValueError(f"decode returned shape {y.shape} for input {x.shape}")
        return y

    tp_trunc = truncate(t, cutoff_km=cutoff_km, dx_km=dx, method=method)
    pp_route = _decode(truncate(p, cutoff_km=cutoff_km, dx_km=dx, method=method))
    out = {
        "cutoff_km": float(cutoff_km),
        "method": method,
        "dx_km": float(dx),
        "drizzle_threshold": float(drizzle_threshold),
        "tp_truncated": gibbs_diagnostics(t, tp_trunc, drizzle_threshold=drizzle_threshold),
        "pp_truncated_decoded": gibbs_diagnostics(t, pp_route, drizzle_threshold=drizzle_threshold),
        "pp_decoded": gibbs_diagnostics(t, _decode(p), drizzle_threshold=drizzle_threshold),
    }
    if return_fields:
        out["fields"] = {"tp_truncated": tp_trunc, "pp_truncated_decoded": pp_route}
    return out
