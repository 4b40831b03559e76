"""Dry hours: a tp threshold against false drizzle, calibrated on training hours (issue 11).

Members show faint rain (>= 0.1 mm/h) where the truth is dry. :func:`calibrate_threshold` picks a
decoder-side threshold ``thr`` (mm/h, >= the wet threshold) such that, on training hours, the
ensemble's wet fraction after setting member tp below ``thr`` to 0 equals the truth's wet
fraction: ``thr = max(wet, Q_members(1 - f_truth))``, quantile matching of the wet area. When the
members are not too wet it returns ``wet`` itself, which changes nothing (a member cell below
0.1 mm/h is not wet either way). ``benchmarks/bench_steps.py --drizzle-threshold auto`` measures
false drizzle and wet hits on held-out hours with and without it.
"""

from __future__ import annotations

import numpy as np

from ppviz.data.regions import Region
from ppviz.pipeline import downscale_time

WET = 0.1  # mm/h


def calibrate_threshold(models, ds, times, *, region: str = "europe", hours: int = 6, members: int = 3,
                        seed: int = 0, wet: float = WET) -> float:
    """The tp threshold (mm/h) matching the ensemble's wet fraction to the truth's on ``times``.

    Parameters
    ----------
    models : ppviz.pipeline.Models
    ds : xarray.Dataset
        The data (with fine truth).
    times : array of datetime64
        Training hours; ``hours`` of them, evenly spread, are sampled with the checkpoint's
        default sampler and steps.
    region : str
        Region sampled.
    hours, members, seed : int
    wet : float
        Wet threshold (mm/h).

    Returns
    -------
    float
        ``max(wet, quantile of member tp at 1 - truth wet fraction)``.
    """
    times = np.asarray(times)
    if times.size == 0:
        raise ValueError("calibrate_threshold needs at least one training hour")
    pick = times[np.linspace(0, times.size - 1, min(hours, times.size)).round().astype(int)]
    reg = Region.parse(region)
    member_values, truth_wet = [], []
    for t in pick:
        ens = downscale_time(models, ds, t, reg, members=members, seed=seed)
        truth = np.asarray(ens.inputs.truth_tp)
        member_values.append(np.asarray(ens.tp_members).ravel())
        truth_wet.append(truth.ravel() >= wet)
    f_truth = float(np.concatenate(truth_wet).mean())
    q = float(np.quantile(np.concatenate(member_values), 1.0 - f_truth))
    return max(wet, q)
