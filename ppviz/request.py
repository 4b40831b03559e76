"""One downscaling request: what a run depends on, validated in one place.

A :class:`DownscaleRequest` is used by every door into the sampler: ``ppviz downscale`` (the CLI
builds one from its arguments), :func:`ppviz.pipeline.downscale` (it is the picklable description a
dask worker gets), the dashboard's queue and cache (:mod:`ppviz.views.runs`: its :attr:`key` is the
cache key) and the pages (the Downscale, Checkpoints and Evaluation pages build one from their
widgets). It is light: importing it imports no torch.

``time`` is the hour (or the first hour of a range ending at ``end``, inclusive); ``region`` a
slug of :data:`ppviz.data.regions.NAMED_REGIONS` or ``lat0,lat1,lon0,lon1``; ``checkpoint`` and
``pp_checkpoint`` checkpoint names (None: the default, and the PP model the diffusion checkpoint was
trained with); ``data`` a dataset path (None: the default dataset); ``device`` e.g. ``cpu``.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import pandas as pd

from ppviz.checkpoints.schedule import SAMPLER_NAMES

__all__ = ["SAMPLER_NAMES", "COARSE_FROM", "MAX_MEMBERS", "MAX_STEPS", "DownscaleRequest", "check_request", "checkpoint_schedule"]

COARSE_FROM = ("fine", "coarse")
MAX_MEMBERS = 64
MAX_STEPS = 1000
MAX_CHURN = 100.0


def check_request(members: int, steps: int | None, sampler: str | None = None, churn: float = 0.0) -> None:
    """ValueError naming the allowed range when members or steps are out of bounds (steps None:
    the checkpoint's default, always allowed), the sampler is unknown (None: the checkpoint's) or
    churn is asked of a sampler other than Heun."""
    from ppviz.checkpoints.schedule import check_sampler

    if sampler is not None:
        check_sampler(sampler)
        if float(churn) > 0 and sampler != "heun":
            raise ValueError(f"churn applies to the heun sampler only, not {sampler!r}; use churn 0")
    if not 1 <= int(members) <= MAX_MEMBERS:
        raise ValueError(f"members must be 1..{MAX_MEMBERS}, got {members}")
    if steps is not None and not 1 <= int(steps) <= MAX_STEPS:  # 1: a few-step student; each checkpoint's
        raise ValueError(f"steps must be 1..{MAX_STEPS}, got {steps}")  # schedule refuses what it cannot do


def checkpoint_schedule(checkpoint: str | None):
    """The :class:`ppviz.checkpoints.schedule.Schedule` of a diffusion checkpoint (None: the
    default one), read from its ``config.json`` without loading the weights."""
    from ppviz.checkpoints import default_checkpoint, read_config, resolve_checkpoint
    from ppviz.checkpoints.schedule import schedule_from_config

    path = resolve_checkpoint(checkpoint or default_checkpoint("diffusion"), "diffusion")
    return schedule_from_config(read_config(path, str(path.name)))


@dataclass(frozen=True)
class DownscaleRequest:
    """What one downscaling run depends on (see the module docstring)."""

    checkpoint: str | None = None
    time: str | None = None
    region: str | None = None
    members: int = 4
    #: sampler steps; None: the checkpoint's ``schedule.default_steps`` (:mod:`ppviz.checkpoints.schedule`)
    steps: int | None = None
    seed: int = 0
    churn: float = 0.0
    pp_checkpoint: str | None = None
    end: str | None = None
    coarse_from: str = "fine"
    data: str | None = None
    device: str | None = None
    #: sampler name (:data:`ppviz.checkpoints.schedule.SAMPLER_NAMES`); None: the checkpoint's
    sampler: str | None = None

    @property
    def start(self) -> str | None:
        """The first hour of a range (the same as :attr:`time`)."""
        return self.time

    def check(self):
        """The :class:`ppviz.data.regions.Region`, after checking every field (no file is read).

        ValueError naming what is wrong: members/steps out of bounds, seed, churn, ``coarse_from``,
        a time that is no date, an end before the start, a missing or unknown region.
        """
        from ppviz.data.regions import Region
        from ppviz.data.source import parse_time

        check_request(self.members, self.steps, self.sampler, self.churn)
        if not 0 <= int(self.seed) < 2**63:
            raise ValueError(f"seed must be 0..2**63-1, got {self.seed}")
        if not 0.0 <= float(self.churn) <= MAX_CHURN:
            raise ValueError(f"churn must be 0..{MAX_CHURN:g}, got {self.churn}")
        if self.coarse_from not in COARSE_FROM:
            raise ValueError(f"coarse_from must be one of {list(COARSE_FROM)}, got {self.coarse_from!r}")
        if self.time is not None:
            t0 = parse_time(self.time)
            if self.end is not None:
                t1 = parse_time(self.end)
                if t1 < t0:
                    raise ValueError(f"end {t1:%Y-%m-%d %H:%M} is before start {t0:%Y-%m-%d %H:%M}")
        if not self.region:
            raise ValueError("no region given; use a name (e.g. alps) or lat0,lat1,lon0,lon1")
        return Region.parse(str(self.region))

    def validate(self):
        """:meth:`check`, and the checkpoints named are registered ones (names, never paths: a
        request may come from a browser). Returns the Region; ValueError naming what is wrong."""
        from ppviz.checkpoints import check_checkpoint

        region = self.check()
        name = check_checkpoint(self.checkpoint, "diffusion")
        if self.steps is not None:
            checkpoint_schedule(name).check_steps(int(self.steps), name, self.sampler)
        if self.pp_checkpoint is not None:
            check_checkpoint(self.pp_checkpoint, "pp")
        return region

    def times(self, ds) -> list[pd.Timestamp]:
        """The data's hours from :attr:`time` to :attr:`end` (inclusive; just :attr:`time` without an end)."""
        from ppviz.data.source import select_times

        return select_times(ds, self.time, self.end)

    @property
    def key(self) -> DownscaleRequest:
        """The cache key: this request in normal form (times as ``YYYY-mm-ddTHH:MM``, the region's
        slug or snapped box, plain numbers), equal for requests that give the same result."""
        from ppviz.data.regions import Region

        def hour(t):
            return None if t is None else pd.Timestamp(t).strftime("%Y-%m-%dT%H:%M")

        return replace(self, time=hour(self.time), end=hour(self.end), region=Region.parse(str(self.region)).slug_or_box,
                       members=int(self.members),
                       steps=None if self.steps is None else int(self.steps), seed=int(self.seed), churn=float(self.churn))

    @property
    def label(self) -> str:
        t = pd.Timestamp(self.time)
        return (f"{self.checkpoint} {t:%Y-%m-%d %H:%M} {self.region}: {self.members} members x "
                f"{'default' if self.steps is None else self.steps}{' ' + self.sampler if self.sampler else ''} steps, "
                f"seed {self.seed}")
