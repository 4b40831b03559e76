"""The Gibbs page: truncate TP and PP at a cutoff, mark the ringing, a profile across a rain edge.

The numbers come from :func:`ppviz.metrics.gibbs_comparison` (which uses
:func:`ppviz.spectral.truncate` and :func:`ppviz.spectral.gibbs_diagnostics`); this module adds
what a page needs to *show* them: masks of negative and spurious-drizzle cells, the row of the
sharpest rain edge for a profile, and spectra of the three fields.
"""

from __future__ import annotations

import functools

import numpy as np

DIAGNOSTIC_LABELS = {
    "negative_fraction": "negative cells (fraction)",
    "min_value": "most negative value (mm/h)",
    "overshoot": "overshoot above max (mm/h)",
    "overshoot_relative": "overshoot / max",
    "spurious_drizzle_fraction": "spurious drizzle (fraction of cells)",
    "dry_fraction": "dry in the original (fraction)",
}
ROUTE_LABELS = {"tp_truncated": "truncated TP", "pp_truncated_decoded": "truncated PP, decoded",
                "pp_decoded": "PP decoded (no truncation)"}


def rain_edge_row(tp: np.ndarray) -> int:
    """Row index of the sharpest rain edge: the largest jump between a dry and a wet neighbour
    along a row (ties and all-dry fields: the middle row)."""
    t = np.asarray(tp, dtype=np.float64)
    jump = np.abs(np.diff(t, axis=1))
    edge = ((t[:, 1:] <= 0) ^ (t[:, :-1] <= 0)) * jump
    score = edge.max(axis=1)
    if not np.isfinite(score).any() or score.max() <= 0:
        return t.shape[0] // 2
    return int(np.argmax(score))


def gibbs_fields(ds, time, region, *, cutoff_km: float, method: str = "dct", pp_name: str | None = None,
                 drizzle_threshold: float = 0.1, negative_threshold: float = -0.01) -> dict:
    """Everything the Gibbs page shows for one hour and region.

    Returns
    -------
    dict
        ``tp``, ``pp``, ``tp_truncated``, ``pp_route`` (truncated PP decoded), (H, W) arrays;
        ``negative`` and ``drizzle`` boolean masks of the truncated TP (``< negative_threshold``,
        -0.01 mm/h by default, so rounding-level ringing is not marked; dry originally but
        ``> drizzle_threshold``); ``negative_pp_route``/``drizzle_pp_route`` the same for the PP
        route; the diagnostics count every value below 0; ``lat``, ``lon``; ``edge_row``; ``diagnostics`` (:func:`gibbs_comparison`
        without the fields); ``spectra`` ``{name: (wavelength_km, psd)}``; ``dx_km``.
    """
    import pandas as pd

    from ppviz.views.cache import load_pp, region_fields
    from ppviz.metrics import gibbs_comparison
    from ppviz.models.pp import decode_numpy, encode_numpy
    from ppviz.spectral import rapsd

    cutoff = float(cutoff_km)
    if not np.isfinite(cutoff) or cutoff <= 0:
        raise ValueError(f"the cutoff must be a positive number of km, got {cutoff_km}")
    model = load_pp(pp_name).model
    step, tp, vimd = region_fields(ds, time, region, dtype=np.float64)
    dx = float(region.fine_grid.dx_km)
    pp = encode_numpy(model, tp.astype(np.float32), vimd.astype(np.float32)).astype(np.float64)
    decode = functools.partial(decode_numpy, model)
    res = gibbs_comparison(tp, pp, decode, cutoff_km=cutoff, method=method, dx_km=dx,
                           drizzle_threshold=drizzle_threshold, return_fields=True)
    f = res.pop("fields")
    tt, pr = f["tp_truncated"], f["pp_truncated_decoded"]
    dry = tp <= 0
    _, psd, wl = rapsd(np.stack([tp, tt, pr]), dx, return_wavelength=True)
    return {
        "tp": tp, "pp": pp, "tp_truncated": tt, "pp_route": pr,
        "negative": tt < negative_threshold, "drizzle": dry & (tt > drizzle_threshold),
        "negative_pp_route": pr < negative_threshold, "drizzle_pp_route": dry & (pr > drizzle_threshold),
        "lat": step["lat"].values, "lon": step["lon"].values, "time": pd.Timestamp(step.time.values),
        "edge_row": rain_edge_row(tp), "diagnostics": res, "dx_km": dx,
        "spectra": {"TP": (wl, psd[0]), "truncated TP": (wl, psd[1]), "truncated PP, decoded": (wl, psd[2])},
    }


def diagnostics_rows(diag: dict) -> list[dict]:
    """The diagnostics as table rows: one per statistic, one column per route."""
    rows = []
    for key, label in DIAGNOSTIC_LABELS.items():
        row = {"statistic": label}
        for route, rlabel in ROUTE_LABELS.items():
            if route in diag:
                row[rlabel] = float(diag[route][key])
        rows.append(row)
    return rows
