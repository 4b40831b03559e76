"""Training the PP encoder-decoder on cells drawn from one or more canonical datasets.

Held-out split (by time, so held-out weather is unseen): a dataset spanning at least 10 days
holds out whole days spread evenly through it (every k-th day, ``k = round(1 / holdout_fraction)``,
starting with day k - 1), so the held-out days sample the same mix of weather regimes and
seasons as the training days; a shorter one (the two-day ERA5 sample) holds out the last
``holdout_fraction`` of the hours of each day.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import xarray as xr

from ppviz.metrics.pp import pp_scores
from ppviz.models.pp import PPAutoencoder, PPConfig, decode_numpy, encode_numpy, pp_loss


@dataclass(frozen=True)
class PPTrainConfig:
    """Optimisation settings of ``ppviz train pp``."""

    steps: int = 4000
    batch: int = 16384
    lr: float = 3e-3
    seed: int = 0
    #: leading share of the steps that train the encoder on the ordering term alone
    warmup_fraction: float = 0.1
    #: the ordering weight falls linearly from ``model.w_order`` after the warm-up to this
    #: fraction of it at the end: it sets PP's orientation and dry-cell order early, then lets the
    #: quantile term make PP normal (the ordering key jumps at tp = 0, which a smooth encoder
    #: cannot follow exactly, so a strong ordering term to the end costs normality)
    order_final_fraction: float = 1.0
    holdout_fraction: float = 0.2
    #: share of each batch drawn from each dataset, in the order given; None = in proportion to size
    shares: tuple[float, ...] | None = None
    #: weight of each dataset's quantile and ordering terms (None = its share). ``(1, 0, 0)``
    #: makes PP standard normal on the first dataset only, while the others still teach the
    #: decoder through the reconstruction term: one encoder cannot make two climates both N(0, 1),
    #: and trying shifts both
    distribution_weights: tuple[float, ...] | None = None
    model: PPConfig = field(default_factory=PPConfig)

    def to_dict(self) -> dict:
        return asdict(self)


def split_times(times, holdout_fraction: float) -> tuple[np.ndarray, np.ndarray]:
    """Indices of training and held-out time steps (see the module docstring)."""
    if not 0.0 < holdout_fraction < 1.0:
        raise ValueError(f"holdout fraction {holdout_fraction} must lie strictly between 0 and 1")
    t = pd.DatetimeIndex(times)
    days = t.normalize()
    unique_days = days.unique()
    held = np.zeros(t.size, dtype=bool)
    if unique_days.size >= 10:
        k = max(2, int(round(1.0 / holdout_fraction)))
        held = days.isin(unique_days[k - 1 :: k])
    else:
        for d in unique_days:
            idx = np.flatnonzero(days == d)
            n_hold = max(1, int(round(holdout_fraction * idx.size)))
            held[idx[-n_hold:]] = True
    return np.flatnonzero(~held), np.flatnonzero(held)


@dataclass
class CellPool:
    """Flattened (tp, vimd) cells of one dataset's training or held-out steps (float32, no NaN)."""

    name: str
    tp: np.ndarray
    vimd: np.ndarray

    @classmethod
    def from_dataset(cls, name: str, ds: xr.Dataset, time_index) -> "CellPool":
        sub = ds.isel(time=np.asarray(time_index))
        tp = np.asarray(sub["tp"].values, dtype=np.float32).ravel()
        vimd = np.asarray(sub["vimd"].values, dtype=np.float32).ravel()
        ok = np.isfinite(tp) & np.isfinite(vimd)
        return cls(name, tp[ok], vimd[ok])

    @classmethod
    def from_hours(cls, name: str, data, time_index, *, workers: int = 2) -> "CellPool":
        """The cells of ``time_index`` (hours of the dataset at path ``data``; None: the default),
        read hour by hour by ``workers`` processes (:func:`ppviz.training.stream.read_hours`) into
        preallocated arrays: peak memory is the pool plus a few hours, not the dataset's span."""
        from ppviz.training.stream import read_hours

        idx = np.asarray(time_index)
        tp = vimd = None
        for k, (a, b) in enumerate(read_hours(data, idx, workers)):
            if tp is None:
                tp = np.empty((idx.size, a.size), np.float32)
                vimd = np.empty_like(tp)
            tp[k], vimd[k] = np.ravel(a), np.ravel(b)
        if tp is None:
            return cls(name, np.empty(0, np.float32), np.empty(0, np.float32))
        tp, vimd = tp.ravel(), vimd.ravel()
        ok = np.isfinite(tp) & np.isfinite(vimd)
        return cls(name, tp[ok], vimd[ok])

    def __len__(self) -> int:
        return self.tp.size


def train_pp(pools: list[CellPool], config: PPTrainConfig = PPTrainConfig(), *, progress=True,
             log_path=None, callback=None) -> tuple[PPAutoencoder, list[dict]]:
    """Train a :class:`PPAutoencoder` on batches drawn from ``pools``.

    Returns the trained model (eval mode) and the training history (one dict per logged step).
    """
    if not pools or any(len(p) == 0 for p in pools):
        raise ValueError("every training dataset needs at least one finite cell")
    rng = np.random.default_rng(config.seed)
    torch.manual_seed(config.seed)
    sizes = np.array([len(p) for p in pools], dtype=float)
    shares = np.asarray(config.shares if config.shares is not None else sizes / sizes.sum(), dtype=float)
    if shares.size != len(pools) or np.any(shares < 0) or shares.sum() <= 0:
        raise ValueError(f"shares {config.shares} must be {len(pools)} non-negative numbers")
    shares = shares / shares.sum()
    counts = np.floor(shares * config.batch).astype(int)
    counts[np.argmax(shares)] += config.batch - counts.sum()
    bounds = np.concatenate([[0], np.cumsum(counts)])
    dw = shares if config.distribution_weights is None else np.asarray(config.distribution_weights, dtype=float)
    if dw.size != len(pools) or np.any(dw < 0) or dw.sum() <= 0:
        raise ValueError(f"distribution weights {config.distribution_weights} must be {len(pools)} non-negative numbers")
    groups = [(int(bounds[i]), int(bounds[i + 1]), float(dw[i])) for i in range(len(pools)) if counts[i] > 0 and dw[i] > 0]
    vimd_all = np.concatenate([p.vimd[:: max(1, len(p) // 1_000_000)] for p in pools])
    model_cfg = PPConfig(**{**asdict(config.model), "vimd_scale": float(np.std(vimd_all))})
    model = PPAutoencoder(model_cfg)
    opt = torch.optim.Adam(model.parameters(), lr=config.lr)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=config.lr, total_steps=config.steps, pct_start=0.1)
    history: list[dict] = []
    log = open(log_path, "w") if log_path else None
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=config.steps, desc="train pp", unit="step")
    warmup_steps = int(config.warmup_fraction * config.steps)
    t0 = time.perf_counter()
    try:
        for step in range(1, config.steps + 1):
            tps, vis = [], []
            for pool, n in zip(pools, counts):
                if n == 0:
                    continue
                idx = rng.integers(0, len(pool), n)
                tps.append(pool.tp[idx])
                vis.append(pool.vimd[idx])
            tp = torch.from_numpy(np.concatenate(tps))
            vimd = torch.from_numpy(np.concatenate(vis))
            progress_frac = max(0.0, (step - warmup_steps) / max(1, config.steps - warmup_steps))
            w_order = config.model.w_order * (1.0 - (1.0 - config.order_final_fraction) * progress_frac)
            loss, parts = pp_loss(model, tp, vimd, warmup=step <= warmup_steps, groups=groups,
                                  order_weight=w_order)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            if step % 50 == 0 or step == config.steps:
                row = {"step": step, "loss": float(loss.detach()), **parts, "lr": sched.get_last_lr()[0],
                       "seconds": round(time.perf_counter() - t0, 2)}
                history.append(row)
                if log:
                    log.write(json.dumps(row) + "\n")
                    log.flush()
                if bar:
                    bar.set_postfix(loss=f"{row['loss']:.4f}")
                if callback:
                    callback(row)
            if bar:
                bar.update(1)
    finally:
        if bar:
            bar.close()
        if log:
            log.close()
    model.eval()
    return model, history


def evaluate_pp(model: PPAutoencoder, pool: CellPool) -> dict:
    """:func:`ppviz.metrics.pp.pp_scores` of ``model`` on a pool of held-out cells."""
    pp = encode_numpy(model, pool.tp, pool.vimd)
    dec = decode_numpy(model, pp)
    return pp_scores(pool.tp, pool.vimd, pp, dec)


def save_history(history: list[dict], path) -> Path:
    path = Path(path)
    path.write_text("".join(json.dumps(r) + "\n" for r in history))
    return path
