"""Curves and summary fields of one ensemble run: spectra, quantiles (QQ), mean/spread, CRPS.

Everything takes an :class:`ppviz.pipeline.Ensemble` and an optional selection of members
(indices; None = all) and returns plain numpy arrays, so a page can plot them directly.
Spectra are :func:`ppviz.spectral.rapsd` (isotropic bins, (mm/h)^2 km^2, wavelengths in km);
quantiles are :func:`ppviz.metrics.pooled_quantiles` over the region's cells (and the selected
members); CRPS is :func:`ppviz.metrics.crps_ensemble` (fair) for the ensemble and the mean
absolute error for deterministic baselines (the CRPS of a one-member forecast).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import xarray as xr

#: Quantile levels of the QQ panels: the wet tail (most cells are dry below ~0.8).
QQ_LEVELS = tuple(np.unique(np.round(np.concatenate([np.linspace(0.80, 0.99, 20),
                                                      1.0 - np.logspace(-2, -4, 9)]), 6)).tolist())
BASELINE_LABELS = {"bicubic": "bicubic", "nearest": "nearest", "pp_bicubic": "PP bicubic"}


def selected(ens, members: Sequence[int] | None = None) -> list[int]:
    """Valid member indices of ``members`` (None or empty: all), sorted, de-duplicated."""
    m = ens.tp_members.shape[0]
    if not members:
        return list(range(m))
    sel = sorted({int(k) for k in members if 0 <= int(k) < m})
    return sel or list(range(m))


def mean_and_spread(ens, members: Sequence[int] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Ensemble mean and standard deviation (ddof=1; zeros for one member) of tp, mm/h, (H, W)."""
    x = ens.tp_members[selected(ens, members)].astype(np.float64)
    mean = x.mean(0)
    spread = x.std(0, ddof=1) if x.shape[0] > 1 else np.zeros_like(mean)
    return mean.astype(np.float32), spread.astype(np.float32)


def _dx(ens) -> float:
    return float(ens.inputs.region.fine_grid.dx_km)


def spectra(ens, members: Sequence[int] | None = None, *, each_member: bool = True) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Power spectra of the tp fields: ``{name: (wavelength_km, psd)}``.

    Names: ``truth`` (when known), the baselines, ``member k`` for each selected member (when
    ``each_member``), ``members (mean)`` (the mean of the member spectra) and
    ``ensemble mean`` (the spectrum of the mean field, smoother than any member).
    """
    from ppviz.spectral import rapsd

    sel = selected(ens, members)
    dx = _dx(ens)
    out: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    named = {}
    if ens.inputs.truth_tp is not None:
        named["truth"] = ens.inputs.truth_tp
    for k, v in ens.baselines.items():
        named[BASELINE_LABELS.get(k, k)] = v
    mean, _ = mean_and_spread(ens, sel)
    named["ensemble mean"] = mean
    stack = np.stack([np.asarray(v, np.float64) for v in named.values()])
    _, psd, wl = rapsd(stack, dx, return_wavelength=True)
    for name, p in zip(named, psd):
        out[name] = (wl, p)
    _, mpsd = rapsd(ens.tp_members[sel].astype(np.float64), dx)
    out["members (mean)"] = (wl, mpsd.mean(0))
    if each_member:
        for k, p in zip(sel, mpsd):
            out[f"member {k}"] = (wl, p)
    return out


def quantiles(ens, members: Sequence[int] | None = None, levels: Sequence[float] = QQ_LEVELS) -> dict[str, np.ndarray]:
    """Pooled tp quantiles (mm/h) at ``levels`` over the region: ``{name: values}``.

    Names: ``truth`` (when known), the baselines, ``members`` (the selected members pooled).
    """
    from ppviz.metrics import pooled_quantiles

    sel = selected(ens, members)
    out = {}
    if ens.inputs.truth_tp is not None:
        out["truth"] = pooled_quantiles(ens.inputs.truth_tp, levels).values
    for k, v in ens.baselines.items():
        out[BASELINE_LABELS.get(k, k)] = pooled_quantiles(v, levels).values
    out["members"] = pooled_quantiles(ens.tp_members[sel].reshape(-1), levels).values
    return out


def crps_scores(ens, members: Sequence[int] | None = None) -> dict[str, float]:
    """Mean CRPS (mm/h) over the region against the truth: the ensemble (fair CRPS; the MAE for
    one member) and each baseline (MAE). Empty when there is no truth."""
    from ppviz.metrics import crps_ensemble

    truth = ens.inputs.truth_tp
    if truth is None:
        return {}
    sel = selected(ens, members)
    y = xr.DataArray(truth.astype(np.float64), dims=("lat", "lon"))
    x = xr.DataArray(ens.tp_members[sel].astype(np.float64), dims=("member", "lat", "lon"))
    out = {}
    if len(sel) >= 2:
        out["ensemble (fair CRPS)"] = float(crps_ensemble(x, y).mean())
    else:
        out["ensemble (1 member: MAE)"] = float(np.abs(x.values[0] - truth).mean())
    for k, v in ens.baselines.items():
        out[f"{BASELINE_LABELS.get(k, k)} (MAE)"] = float(np.abs(v.astype(np.float64) - truth).mean())
    return out


def trajectory_pp_range(traj) -> float:
    """A symmetric colour limit for trajectory frames: the 99th percentile of |denoised|."""
    if traj is None or len(traj) == 0:
        return 3.0
    return float(np.nanpercentile(np.abs(traj.denoised), 99)) or 3.0


TRAINING_LOG = "training_log.jsonl"
_NOT_LOSSES = ("step", "lr", "seconds", "epoch")


def training_curves(name: str) -> dict[str, np.ndarray] | None:
    """The training log of the registered checkpoint ``name`` as curves: ``step`` (n,) and each
    logged loss term (n,) (``loss`` first; ``lr``, ``seconds`` left out); None when the
    checkpoint has no ``training_log.jsonl``. Lines that are not JSON objects with a step, and
    event lines (snapshots, a time-limit stop), are skipped; a term missing on a line is NaN there."""
    import json

    from ppviz.checkpoints import resolve_checkpoint

    path = resolve_checkpoint(name, allow_paths=False) / TRAINING_LOG
    if not path.is_file():
        return None
    rows = []
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        try:
            row = json.loads(line)
        except ValueError:
            continue
        if isinstance(row, dict) and isinstance(row.get("step"), (int, float)) and not {"event", "stopped"} & set(row):
            rows.append(row)
    if not rows:
        return None
    keys = sorted({k for r in rows for k, v in r.items() if k not in _NOT_LOSSES and isinstance(v, (int, float))},
                  key=lambda k: (k != "loss", k))
    out = {"step": np.array([float(r["step"]) for r in rows])}
    for k in keys:
        out[k] = np.array([float(r[k]) if isinstance(r.get(k), (int, float)) else np.nan for r in rows])
    return out
