"""The Gibbs experiment on one field: truncate TP spectrally and measure the ringing."""

from __future__ import annotations

import numpy as np

from ppviz.data.regions import Region, data_extent
from ppviz.data.source import load_dataset, select_time


def gibbs_report(data=None, time=None, *, region=None, cutoff_km=None, method="dct") -> dict:
    """Truncate TP at ``time`` over ``region`` to ``cutoff_km`` and return the diagnostics.

    Parameters
    ----------
    data : path or None
        Canonical dataset; None for the embedded synthetic one.
    time : str or Timestamp
        The hourly step; ValueError if the data has no such step.
    region : str, Region or None
        Slug, box ``lat0,lat1,lon0,lon1`` or a :class:`Region`; None: the extent of the data
        (:func:`ppviz.data.regions.data_extent`).
    cutoff_km : float or None
        Cutoff wavelength; None for the 1 deg scale (:data:`ppviz.spectral.DEFAULT_CUTOFF_KM`).
    method : {'fft', 'dct'}

    Returns
    -------
    dict
        JSON-ready: inputs (time, region, bounds, cutoff, method, grid spacing) and
        ``diagnostics`` from :func:`ppviz.spectral.gibbs_diagnostics`.
    """
    from ppviz import spectral

    cutoff = spectral.DEFAULT_CUTOFF_KM if cutoff_km is None else float(cutoff_km)
    if not np.isfinite(cutoff) or cutoff <= 0:
        raise ValueError(f"--cutoff-km must be a positive number of km, got {cutoff_km}")
    ds = load_dataset(data)
    if region is None:
        reg = data_extent(ds)
    else:
        reg = region if isinstance(region, Region) else Region.parse(region)
    step = reg.subset(select_time(ds, time))
    tp = step["tp"].values.astype(np.float64)
    if np.isnan(tp).any():
        raise ValueError(f"tp has {int(np.isnan(tp).sum())} missing (NaN) cells at {time} in {reg.slug_or_box}")
    dx_km = reg.fine_grid.dx_km
    truncated = spectral.truncate(tp, cutoff_km=cutoff, dx_km=dx_km, method=method)
    diag = spectral.gibbs_diagnostics(tp, truncated)
    return {
        "time": str(np.datetime_as_string(step.time.values, unit="m")),
        "region": reg.slug_or_box,
        "bounds_deg": dict(zip(("lat0", "lat1", "lon0", "lon1"), reg.bounds)),
        "cutoff_km": cutoff,
        "method": method,
        "dx_km": dx_km,
        "variable": "tp (mm/h)",
        "source": ds.attrs.get("source", "unknown"),
        "diagnostics": diag,
    }
