"""The noise schedule of a diffusion checkpoint: what it was trained on and how it is sampled.

A :class:`Schedule` is stored in a diffusion checkpoint's ``config.json`` (``config.schedule``)
and read by every door into the sampler (CLI, pipeline, pages), so that a checkpoint is sampled
with the noise levels it knows, not EDM's image defaults:

- ``sigma_min``, ``sigma_max``, ``rho``: the Karras et al. (2022, EDM eq. 5) sampling levels
  (:func:`ppviz.diffusion.samplers.karras_sigmas`), in the units of the generated target;
- ``P_mean``, ``P_std``: the training noise distribution ``ln sigma ~ N(P_mean, P_std^2)``
  (EDM Table 1) the checkpoint was (or is to be) trained with;
- ``min_steps``: per sampler name, the fewest steps known to give sound members for this
  checkpoint (measured, see the model card); fewer are refused with a message naming it. A
  sampler not listed gets the largest listed value (conservative);
- ``sampler``, ``default_steps``: the sampler and step count the CLI and the app use when none
  is given;
- ``grids`` (optional): explicit noise levels per allowed step count, ``{steps: [sigma_0, ...,
  0]}``, for a checkpoint that was trained for those levels only (a few-step student of
  :mod:`ppviz.training.distill`). Such a schedule allows exactly those step counts of its
  ``sampler`` and refuses any other count or sampler with a message naming the allowed ones;
  :func:`ppviz.diffusion.samplers.schedule_sigmas` returns the stored levels instead of Karras's.

EDM's image defaults (``sigma_max = 80``) put the first level hundreds of ``sigma_data`` above
anything a residual target with ``sigma_data ~ 0.3`` is trained on; few steps then leave the
network far outside its training range and the members blow up (issue 11). A config without a
``schedule`` key (older checkpoints) gets :data:`LEGACY` (EDM's defaults), with a conservative
``min_steps``.

No torch here: pages and the request read it from ``config.json``.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

__all__ = ["LEGACY", "SAMPLER_NAMES", "Schedule", "check_sampler", "schedule_from_config"]

#: The samplers of :data:`ppviz.diffusion.samplers.SAMPLERS`, by name (here without torch, for
#: the request and the pages; a test keeps the two equal).
SAMPLER_NAMES: tuple[str, ...] = ("dpmpp_2m", "euler", "euler_maruyama", "heun")
#: How the pages and reports name each sampler.
SAMPLER_LABELS: dict[str, str] = {"dpmpp_2m": "DPM-Solver++(2M)", "euler": "Euler", "euler_maruyama": "Euler-Maruyama",
                                  "heun": "Heun"}


def check_sampler(name: str) -> str:
    """``name`` if it is a sampler of :data:`SAMPLER_NAMES`; ValueError listing them otherwise."""
    if name not in SAMPLER_NAMES:
        raise ValueError(f"unknown sampler {name!r}; valid samplers: {list(SAMPLER_NAMES)}")
    return name


@dataclass(frozen=True)
class Schedule:
    """Sampling and training noise levels of one diffusion checkpoint (see the module docstring).

    Parameters
    ----------
    sigma_min, sigma_max : float
        Smallest and largest sampling noise level (data units), ``0 < sigma_min < sigma_max``.
    rho : float
        Karras warping exponent, > 0.
    P_mean, P_std : float
        Training ``ln sigma ~ N(P_mean, P_std^2)``; ``P_std > 0``.
    min_steps : dict of str to int
        Fewest steps allowed per sampler name (each >= 2); unlisted samplers get the largest.
    sampler : str
        The default sampler (a key of ``min_steps``).
    default_steps : int
        Steps of the default sampler when none are given (>= its ``min_steps``).
    grids : dict of int to sequence of float, optional
        Explicit noise levels per allowed step count (see the module docstring): each strictly
        decreasing, ``steps + 1`` long, ending with 0. With grids, ``min_steps`` may be 1 and must
        be ``{sampler: min(grids)}``, and ``default_steps`` must be one of the grids' counts.
    """

    sigma_min: float = 0.002
    sigma_max: float = 80.0
    rho: float = 7.0
    P_mean: float = -1.2
    P_std: float = 1.2
    min_steps: dict = field(default_factory=lambda: {"heun": 2})
    sampler: str = "heun"
    default_steps: int = 18
    grids: dict | None = None

    def __post_init__(self):
        if not 0 < self.sigma_min < self.sigma_max:
            raise ValueError(f"schedule needs 0 < sigma_min < sigma_max, got {self.sigma_min}, {self.sigma_max}")
        if not self.rho > 0:
            raise ValueError(f"schedule rho must be > 0, got {self.rho}")
        if not self.P_std > 0:
            raise ValueError(f"schedule P_std must be > 0, got {self.P_std}")
        if not isinstance(self.min_steps, dict) or not self.min_steps:
            raise ValueError(f"schedule min_steps must be a non-empty {{sampler: steps}} object, got {self.min_steps!r}")
        object.__setattr__(self, "min_steps", {str(k): int(v) for k, v in sorted(self.min_steps.items())})
        if self.grids is not None:
            self._check_grids()
        elif any(v < 2 for v in self.min_steps.values()):
            raise ValueError(f"schedule min_steps must all be >= 2, got {self.min_steps}")
        unknown = sorted(set(self.min_steps) - set(SAMPLER_NAMES))
        if unknown:
            raise ValueError(f"schedule min_steps names unknown samplers {unknown}; valid: {list(SAMPLER_NAMES)}")
        if self.sampler not in self.min_steps:
            raise ValueError(f"schedule sampler {self.sampler!r} has no min_steps (listed: {sorted(self.min_steps)})")
        if not self.min_steps[self.sampler] <= int(self.default_steps):
            raise ValueError(f"schedule needs min_steps[{self.sampler!r}] <= default_steps, got "
                             f"{self.min_steps[self.sampler]}, {self.default_steps}")

    def _check_grids(self) -> None:
        # Normalise {steps: levels} (JSON keys are strings) and check what the docstring promises.
        if not isinstance(self.grids, dict) or not self.grids:
            raise ValueError(f"schedule grids must be a non-empty {{steps: [sigma, ..., 0]}} object, got {self.grids!r}")
        grids = {}
        for k, levels in self.grids.items():
            try:
                n, lv = int(k), tuple(float(v) for v in levels)
            except (TypeError, ValueError):
                raise ValueError(f"schedule grid {k!r} must be a step count with a list of noise levels") from None
            if n < 1 or len(lv) != n + 1:
                raise ValueError(f"schedule grid for {k} steps must have {int(k) + 1} levels (>= 1 step), got {len(lv)}")
            if lv[-1] != 0 or any(b >= a for a, b in zip(lv, lv[1:])):
                raise ValueError(f"schedule grid for {n} steps must be strictly decreasing and end with 0, got {list(lv)}")
            grids[n] = lv
        object.__setattr__(self, "grids", dict(sorted(grids.items())))
        want = {self.sampler: min(grids)}
        if self.min_steps != want:
            raise ValueError(f"a schedule with grids needs min_steps {want} (its sampler, the fewest grid steps), "
                             f"got {self.min_steps}")
        if int(self.default_steps) not in grids:
            raise ValueError(f"schedule default_steps {self.default_steps} is not one of its grids' step counts "
                             f"{list(grids)}")

    def __hash__(self):
        return hash(tuple((k, v) for k, v in self.to_dict().items() if k not in ("min_steps", "grids"))
                    + tuple(self.min_steps.items()) + tuple((self.grids or {}).items()))

    @property
    def allowed_steps(self) -> tuple[int, ...] | None:
        """The step counts a schedule with ``grids`` allows (sorted); None: any from ``min_steps`` up."""
        return None if self.grids is None else tuple(self.grids)

    def min_steps_for(self, sampler: str | None = None) -> int:
        """Fewest allowed steps of ``sampler`` (None: the default sampler)."""
        sampler = sampler or self.sampler
        return self.min_steps.get(sampler, max(self.min_steps.values()))

    def check_steps(self, steps: int, checkpoint: str = "this checkpoint", sampler: str | None = None) -> None:
        """ValueError when ``steps`` is below :meth:`min_steps_for` ``sampler``, naming the smallest good value."""
        sampler = sampler or self.sampler
        if self.grids is not None:
            allowed = list(self.grids)
            if sampler != self.sampler or int(steps) not in self.grids:
                raise ValueError(
                    f"{steps} {sampler} steps are not allowed for {checkpoint}: it is a few-step student that "
                    f"samples only with the {self.sampler} sampler on its stored noise levels, with steps "
                    f"in {allowed} (default: {self.default_steps})")
            return
        low = self.min_steps_for(sampler)
        if int(steps) < low:
            raise ValueError(
                f"{steps} {sampler} steps are too few for {checkpoint}: its members are not sound below "
                f"{low} steps (measured, see its model card); use at least {low} "
                f"(default: {self.default_steps} {self.sampler} steps)")

    def grid(self, steps: int) -> list[float] | None:
        """The stored noise levels of ``steps`` steps (None: no grids, use Karras's); ValueError
        when the schedule has grids but none for ``steps``."""
        if self.grids is None:
            return None
        if int(steps) not in self.grids:
            raise ValueError(f"no stored noise levels for {steps} steps; allowed steps: {list(self.grids)}")
        return list(self.grids[int(steps)])

    def to_dict(self) -> dict:
        """JSON-able dict; inverse of :meth:`from_dict` (``grids`` only when there are grids, so
        older schedules write what they always wrote)."""
        d = {**dataclasses.asdict(self), "min_steps": dict(self.min_steps)}
        if self.grids is None:
            d.pop("grids")
        else:
            d["grids"] = {str(k): list(v) for k, v in self.grids.items()}
        return d

    @classmethod
    def from_dict(cls, d: dict | None) -> "Schedule":
        """From :meth:`to_dict` output (None: :data:`LEGACY`); unknown keys raise ValueError."""
        if d is None:
            return LEGACY
        if isinstance(d, Schedule):
            return d
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"unknown schedule keys {unknown}; known: {sorted(known)}")
        return cls(**d)


#: The schedule of a checkpoint that records none: EDM's image defaults, where fewer than 8 Heun
#: steps were measured to fail on edm-pp-v1 (issue 11).
LEGACY = Schedule(min_steps={"heun": 8}, default_steps=18)


def schedule_from_config(doc: dict) -> Schedule:
    """The :class:`Schedule` of a diffusion checkpoint's ``config.json`` document (or its ``config``)."""
    config = doc.get("config", doc) if isinstance(doc, dict) else {}
    return Schedule.from_dict(config.get("schedule"))
