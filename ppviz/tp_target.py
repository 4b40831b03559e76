"""The TP-target experiment: the same diffusion downscaler trained on a transform of tp, no PP.

The paper's central claim is that diffusion downscaling works better on the smooth latent PP than
on precipitation itself. To test it, ``ppviz train diffusion --target tp`` trains the *same*
model (architecture, crops, steps, sampler) on a fixed invertible transform of tp instead of PP:

.. math::

    z = (\\log(1 + tp / c) - \\mu) / \\sigma, \\qquad tp = \\max(0,\\ c\\,(\\exp(\\sigma z + \\mu) - 1))

with ``c = 0.1 mm/h`` (the PP model's own ``tp_scale``: linear below ~0.1 mm/h, logarithmic above),
and ``mu``, ``sigma`` the mean and standard deviation of ``log1p(tp / c)`` over the training
cells (dry cells included), stored in the checkpoint's ``extra.tp_transform``. Dry cells map to
the constant ``z_dry = -mu / sigma``; the inverse sets everything below it (and any rate below
1e-6 mm/h) to exactly 0 mm/h. There is no other dry/wet decision: a generated ``z`` a little above
``z_dry`` is drizzle.

Everything else is as for PP (:mod:`ppviz.training.diffusion`, :mod:`ppviz.pipeline`): the coarse
conditioning is the area-weighted 4 x 4 block mean of the *transformed fine* field (as the coarse
PP is the block mean of the fine PP), the model generates the residual on its bilinear upsampling,
and each member is decoded with the inverse transform instead of the PP decoder. The pipeline
still loads a PP checkpoint for its references (PP of the truth, the PP-bicubic baseline), never
for the tp-target model's own path.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import xarray as xr

#: Diffusion targets of ``ppviz train diffusion --target``.
TARGETS = ("pp", "tp")
#: mm/h: the offset ``c`` of ``log1p(tp / c)`` (as ``PPConfig.tp_scale``).
TP_OFFSET = 0.1
#: mm/h: inverse-transformed rates below this are 0 (as ``PPConfig.dry_threshold``).
DRY_TP = 1e-6
FORMULA = ("z = (log1p(tp / offset) - mu) / sd; tp = offset * expm1(sd * z + mu), "
           "set to 0 below 1e-6 mm/h (so z <= z_dry = -mu / sd is dry)")


@dataclass(frozen=True)
class LogTPTransform:
    """``z = (log1p(tp / offset) - mu) / sd`` and its inverse clipped at 0 mm/h.

    Parameters
    ----------
    mu, sd : float
        Mean and standard deviation of ``log1p(tp / offset)`` on the training data.
    offset : float
        mm/h.
    """

    mu: float
    sd: float
    offset: float = TP_OFFSET

    def __post_init__(self):
        if not (math.isfinite(self.mu) and math.isfinite(self.sd) and self.sd > 0 and self.offset > 0):
            raise ValueError(f"tp transform needs finite mu, sd > 0 and offset > 0; got {self}")

    def forward(self, tp) -> np.ndarray:
        """tp (mm/h, any shape; negatives count as 0) -> z, float32."""
        a = np.log1p(np.maximum(np.asarray(tp, dtype=np.float64), 0.0) / self.offset)
        return ((a - self.mu) / self.sd).astype(np.float32)

    def inverse(self, z) -> np.ndarray:
        """z (any shape) -> tp in mm/h, float32; exactly 0 where ``z <= z_dry``.

        Rates below :data:`DRY_TP` (1e-6 mm/h, the PP model's ``dry_threshold``) are set to 0 as
        well, so a dry cell survives a float32 round trip ``inverse(forward(0)) == 0``.
        """
        zz = np.asarray(z, dtype=np.float64)
        tp = self.offset * np.expm1(np.minimum(zz * self.sd + self.mu, 50.0))
        return np.where(tp < DRY_TP, 0.0, tp).astype(np.float32)

    @property
    def z_dry(self) -> float:
        """The value of a dry cell (``tp = 0``)."""
        return -self.mu / self.sd

    def to_dict(self) -> dict:
        return {"name": "log1p", "formula": FORMULA, "offset": self.offset, "mu": self.mu, "sd": self.sd,
                "units_of_offset": "mm/h"}

    @classmethod
    def from_dict(cls, d: dict) -> "LogTPTransform":
        if d.get("name", "log1p") != "log1p":
            raise ValueError(f"unknown tp transform {d.get('name')!r}; known: ['log1p']")
        return cls(mu=float(d["mu"]), sd=float(d["sd"]), offset=float(d.get("offset", TP_OFFSET)))

    @classmethod
    def fit(cls, tp, offset: float = TP_OFFSET) -> "LogTPTransform":
        """Mean and std of ``log1p(tp / offset)`` over every finite value of ``tp``."""
        a = np.log1p(np.maximum(np.asarray(tp, dtype=np.float64), 0.0) / offset)
        a = a[np.isfinite(a)]
        if a.size == 0:
            raise ValueError("no finite tp to fit the transform on")
        return cls(mu=float(a.mean()), sd=float(a.std()), offset=offset)


def target_of(extra: dict | None) -> str:
    """The target a diffusion checkpoint was trained on (``extra.target``; old checkpoints: pp)."""
    t = (extra or {}).get("target", "pp")
    if t not in TARGETS:
        raise ValueError(f"diffusion checkpoint target {t!r} is unknown; known: {list(TARGETS)}")
    return t


def transform_from_extra(extra: dict | None) -> LogTPTransform | None:
    """The tp transform of a tp-target checkpoint, None for a PP-target one."""
    if target_of(extra) != "tp":
        return None
    if "tp_transform" not in extra:
        raise ValueError("a tp-target diffusion checkpoint needs extra.tp_transform (mu, sd, offset)")
    return LogTPTransform.from_dict(extra["tp_transform"])


def fit_transform(ds: xr.Dataset, time_index, *, max_values: float = 2e7) -> LogTPTransform:
    """Fit :class:`LogTPTransform` on the tp of the training steps (every k-th step if many)."""
    idx = np.asarray(time_index)
    stride = max(1, int(np.ceil(idx.size * ds.sizes["lat"] * ds.sizes["lon"] / max_values)))
    return LogTPTransform.fit(np.asarray(ds["tp"].isel(time=idx[::stride]).values, dtype=np.float32))


def encode_fine_z(transform: LogTPTransform, ds: xr.Dataset, time_index, *, chunk: int = 48,
                  progress: bool = True) -> np.ndarray:
    """Transformed fine tp of the chosen steps, float32 ``(T, lat, lon)`` (cf. ``encode_fine_pp``)."""
    from tqdm.auto import tqdm

    idx = np.asarray(time_index)
    out = np.empty((idx.size, ds.sizes["lat"], ds.sizes["lon"]), dtype=np.float32)
    for a in tqdm(range(0, idx.size, chunk), desc="transform tp", unit="chunk", disable=not progress):
        tp = np.asarray(ds["tp"].isel(time=idx[a : a + chunk]).values, dtype=np.float32)
        if not np.isfinite(tp).all():
            raise ValueError("the training data have NaN or infinite tp; fill or drop those times first")
        out[a : a + chunk] = transform.forward(tp)
    return out


def tp_target_model_card(pp_card: str, name: str, transform: LogTPTransform) -> str:
    """The model card of a tp-target checkpoint: the PP card with its PP-specific parts rewritten."""
    t = transform
    head = f"""# {name}: TP-target diffusion downscaler (EDM), the no-PP control

**An experiment, not the production model.** The same EDM downscaler, data, crops, steps and
sampler as the PP model, but trained on a fixed transform of tp instead of on pseudo-precipitation,
to test the paper's central claim (arXiv 2412.14620) that PP is the better space to downscale in.

## What it generates

- space: `{FORMULA}` with `offset = {t.offset:g} mm/h`, `mu = {t.mu:.5f}`, `sd = {t.sd:.5f}` (mean and
  std of `log1p(tp / offset)` over the training cells, dry ones included); dry cells sit at
  `z_dry = {t.z_dry:.4f}`; the inverse sets everything below it (and rates below 1e-6 mm/h) to
  exactly 0 mm/h; there is no other dry/wet decision.
- target: the residual `fine z - bilinear(coarse z)`; coarse z = area-weighted 4 x 4 block mean
  of the transformed fine tp (as coarse PP is the block mean of fine PP for the PP model).
- conditioning: the coarse z upsampled bilinearly plus the same static channels as the PP model.
- decode: the inverse transform (no PP decoder). `ppviz downscale --checkpoint {name}` writes
  the generated latent as `tp_z` (instead of `pp`); the PP variables in the output (`pp_truth`,
  `pp_coarse`, baseline `tp_pp_bicubic`) are references made with the PP checkpoint named below.
"""
    body = pp_card.split("## Architecture", 1)[1] if "## Architecture" in pp_card else ""
    body = body.replace("## Held-out scores", "## Held-out scores (tp target)")
    note = ("\nThe PP checkpoint named in `extra.pp_checkpoint` is used only for references "
            "(PP of the truth, PP-bicubic baseline), never by this model.\n")
    return head + "\n## Architecture" + body.rstrip() + "\n" + note
