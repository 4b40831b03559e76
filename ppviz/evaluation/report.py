"""The printed summary of an evaluation: one row per forecast (:func:`summary_rows`), the table
``ppviz evaluate`` prints (:func:`format_table`); the figures are :mod:`ppviz.evaluation.figures`."""

from __future__ import annotations

import math

__all__ = ["format_table", "summary_rows"]


def _get(d: dict, *keys, default=float("nan")):
    for k in keys:
        if not isinstance(d, dict) or k not in d:
            return default
        d = d[k]
    return d


def summary_rows(scalars: dict, *, reference: str = "bicubic") -> list[dict]:
    """One row per source (truth first) of the headline numbers of ``EnsembleMetrics.scalars``.

    Keys: ``forecast``; ``crps`` (mm/h: fair CRPS of the ensemble, MAE of a deterministic
    forecast); ``crpss_<reference>`` (``1 - crps / crps_reference``); ``lsd_25_100`` and
    ``lsd_50_200`` (log-spectral distance to the truth, dB); ``p99``/``p999`` (pooled quantiles,
    mm/h) and ``p99_ratio``/``p999_ratio`` (to the truth's); ``wet_0.1``, ``wet_1``, ``wet_5``
    (fraction of values >= 0.1, 1, 5 mm/h). NaN where not defined (e.g. the truth's CRPS).
    """
    nan = float("nan")
    crps = scalars.get("crps", {})
    ref = crps.get(reference, nan)
    tq = scalars.get("quantiles", {}).get("truth", {})
    rows = []
    for src in ["truth", *crps]:
        q = scalars.get("quantiles", {}).get(src, {})
        wet = scalars.get("wet_frequency", {}).get(src, {})
        c = crps.get(src, nan) if src != "truth" else nan
        row = {
            "forecast": src,
            "crps": c,
            f"crpss_{reference}": (1.0 - c / ref) if (src != "truth" and ref == ref and ref > 0) else nan,
            "lsd_25_100": _get(scalars, "lsd_db", src, "25-100 km"),
            "lsd_50_200": _get(scalars, "lsd_db", src, "50-200 km"),
            "p99": q.get("0.99", nan),
            "p999": q.get("0.999", nan),
        }
        row["p99_ratio"] = row["p99"] / tq["0.99"] if tq.get("0.99") else nan
        row["p999_ratio"] = row["p999"] / tq["0.999"] if tq.get("0.999") else nan
        for t in ("0.1", "1", "5"):
            row[f"wet_{t}"] = wet.get(t, nan)
        rows.append(row)
    return rows


def _f(v, fmt):
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        width = "".join(ch for ch in fmt.split(".")[0] if ch.isdigit())
        return "-".rjust(int(width or 1))
    return format(v, fmt)


def format_table(scalars: dict, gibbs: dict | None = None, *, reference: str = "bicubic") -> str:
    """The short table ``ppviz evaluate`` prints (see :func:`summary_rows`), plus spread-skill and Gibbs lines."""
    rows = summary_rows(scalars, reference=reference)
    head = (f"{'forecast':14s} {'CRPS/MAE':>9s} {'CRPSS':>7s} {'LSD25-100':>9s} {'LSD50-200':>9s} "
            f"{'p99':>6s} {'p99.9':>6s} {'r99':>6s} {'r99.9':>6s} {'wet0.1':>7s} {'wet1':>7s} {'wet5':>7s}")
    lines = [f"CRPS (mm/h; MAE for deterministic), CRPSS vs {reference}, log-spectral distance (dB), "
             "pooled p99/p99.9 (mm/h) and ratio r to the truth, wet-hour frequency (>= 0.1/1/5 mm/h)", head]
    for r in rows:
        lines.append(
            f"{r['forecast']:14s} {_f(r['crps'], '9.4f')} {_f(r[f'crpss_{reference}'], '7.3f')} "
            f"{_f(r['lsd_25_100'], '9.2f')} {_f(r['lsd_50_200'], '9.2f')} {_f(r['p99'], '6.2f')} "
            f"{_f(r['p999'], '6.2f')} {_f(r['p99_ratio'], '6.2f')} {_f(r['p999_ratio'], '6.2f')} "
            f"{_f(r['wet_0.1'], '7.4f')} {_f(r['wet_1'], '7.4f')} {_f(r['wet_5'], '7.5f')}")
    lines.append(f"spread-skill ratio {_f(scalars.get('spread_skill_ratio'), '.3f')} (spread "
                 f"{_f(scalars.get('spread'), '.4f')} mm/h, RMSE of the ensemble mean {_f(scalars.get('rmse'), '.4f')} mm/h)")
    if gibbs:
        if "skipped" in gibbs:
            lines.append(f"Gibbs comparison skipped: {gibbs['skipped']}")
        else:
            a, b = gibbs["tp_truncated"], gibbs["pp_truncated_decoded"]
            lines.append(
                f"Gibbs (truth, {gibbs.get('times', '?')} times, cutoff {gibbs['cutoff_km']:.0f} km): negative cells "
                f"TP-truncated {100 * a['negative_fraction']:.2f} % vs PP-truncated-decoded "
                f"{100 * b['negative_fraction']:.2f} %; spurious drizzle {100 * a['spurious_drizzle_fraction']:.2f} % "
                f"vs {100 * b['spurious_drizzle_fraction']:.2f} %; min {a['min_value']:.3f} vs {b['min_value']:.3f} mm/h")
    return "\n".join(lines)
