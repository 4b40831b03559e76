"""Coarse input -> PP -> diffusion ensemble -> fine tp: the whole downscaling chain.

One time step (:func:`downscale_time`) goes:

1. **Coarse PP.** How the 1 deg PP is made must match how the diffusion model was trained
   (``ppviz train diffusion`` coarsens the *fine* PP: area-weighted 4 x 4 block means). So with
   ``coarse_from="fine"`` (the default, for 0.25 deg data) the fine tp and vimd are encoded and
   the PP is block-averaged; the coarse tp shown beside it is the block mean of the fine tp. For
   users who only have 1 deg data, ``coarse_from="coarse"`` encodes the coarse tp and vimd
   directly (a 1 deg dataset always takes this path; with fine data it block-averages tp and vimd
   first). The encoder is nonlinear, so the two coarse PP fields differ somewhat; the model card
   of the diffusion checkpoint says which one it saw in training.
2. **Ensemble.** :meth:`ppviz.diffusion.Downscaler.sample` turns the coarse PP into ``members``
   fine PP fields (Heun, ``steps`` steps), member ``k`` seeded by :func:`member_seed`.
3. **Decode.** Each fine PP member goes through the PP decoder to tp (mm/h, exactly 0 when dry).
4. **References.** The truth (fine tp and its PP) when the data are fine, and the baselines of
   :mod:`ppviz.baselines` (bicubic, nearest and PP-bicubic).

A diffusion checkpoint trained with ``--target tp`` (``extra.target == "tp"``, the no-PP control
of :mod:`ppviz.tp_target`) skips PP in steps 1-3: its conditioning is the block mean of the
transformed fine tp, and its members are decoded with the inverse transform. The PP model is then
used only for the references (PP of the truth, PP-bicubic), and the generated latent is written as
``tp_z`` instead of ``pp``.

:func:`downscale` runs many times, serially or on dask.distributed (each worker loads the models
once), and returns a CF-style :class:`xarray.Dataset` with dims ``(member, time, lat, lon)``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np
import pandas as pd
import torch
import xarray as xr

import ppviz
from ppviz import baselines
from ppviz.constants import FINE_RES_DEG
from ppviz.data.grid import COARSE_FACTOR, Grid, coarsen_blocks
from ppviz.data.regions import Region
from ppviz.request import COARSE_FROM, DownscaleRequest, check_request

TP_ATTRS = {"units": "mm h-1", "standard_name": "lwe_precipitation_rate",
            "long_name": "total precipitation rate"}
PP_ATTRS = {"units": "1", "long_name": "pseudo-precipitation (standard normal latent)"}


# -- seeds -------------------------------------------------------------------------------------


def member_seed(seed: int, time, member: int) -> int:
    """The sampler seed of one member at one time: a 63-bit hash of ``(seed, hour, member)``.

    Depends only on its arguments, so a member is the same whether computed alone, in a batch,
    on a worker or on the GPU's host, and different dates get independent noise.
    """
    hour = int(pd.Timestamp(time).value // 3_600_000_000_000)
    ss = np.random.SeedSequence([int(seed) & (2**63 - 1), hour & (2**63 - 1), int(member)])
    return int(ss.generate_state(1, np.uint64)[0] >> 1)


# -- models ------------------------------------------------------------------------------------


def default_device() -> torch.device:
    """CUDA when present, else CPU (``PPVIZ_DEVICE`` overrides, e.g. ``cpu``)."""
    want = os.environ.get("PPVIZ_DEVICE")
    if want:
        return torch.device(want)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


@dataclass
class Models:
    """The PP encoder-decoder and the diffusion downscaler, loaded from checkpoints."""

    pp: torch.nn.Module
    diffusion: torch.nn.Module
    pp_name: str
    pp_sha256: str
    diffusion_name: str
    diffusion_sha256: str
    diffusion_extra: dict = field(default_factory=dict)
    device: torch.device = torch.device("cpu")
    #: the tp transform of a tp-target diffusion model (:mod:`ppviz.tp_target`); None: PP target
    transform: object | None = None

    @classmethod
    def load(cls, checkpoint: str | None = None, pp_checkpoint: str | None = None,
             device: str | torch.device | None = None) -> "Models":
        """Load by name or directory; None means the default (shipped) checkpoint of each kind.

        With no ``pp_checkpoint``, the PP model the diffusion checkpoint was trained on (its
        ``extra.pp_checkpoint``) is used when it is available, else the default PP checkpoint.
        """
        from ppviz.checkpoints import default_checkpoint, load_checkpoint, resolve_checkpoint

        dev = torch.device(device) if device is not None else default_device()
        dif = load_checkpoint(checkpoint or default_checkpoint("diffusion"), device=dev, kind="diffusion")
        if pp_checkpoint is None:
            trained_with = dif.extra.get("pp_checkpoint")
            try:
                pp_checkpoint = str(resolve_checkpoint(trained_with, "pp")) if trained_with else None
            except ValueError:
                pp_checkpoint = None
            pp_checkpoint = pp_checkpoint or default_checkpoint("pp")
        pp = load_checkpoint(pp_checkpoint, device="cpu", kind="pp")  # pointwise: CPU is fast enough
        from ppviz.tp_target import transform_from_extra

        return cls(pp=pp.model, diffusion=dif.model, pp_name=pp.name, pp_sha256=pp.sha256,
                   diffusion_name=dif.name, diffusion_sha256=dif.sha256, diffusion_extra=dif.extra,
                   device=dev, transform=transform_from_extra(dif.extra))

    @property
    def target(self) -> str:
        """What the diffusion model generates: ``"pp"`` or ``"tp"`` (a transform of tp, no PP)."""
        return "pp" if self.transform is None else "tp"

    def encode(self, tp, vimd) -> np.ndarray:
        from ppviz.models.pp import encode_numpy

        return encode_numpy(self.pp, tp, vimd)

    def decode(self, pp) -> np.ndarray:
        from ppviz.models.pp import decode_numpy

        return decode_numpy(self.pp, pp)

    @property
    def provenance(self) -> dict:
        return {
            "ppviz_version": ppviz.__version__,
            "diffusion_checkpoint": self.diffusion_name,
            "diffusion_checkpoint_sha256": self.diffusion_sha256,
            "pp_checkpoint": self.pp_name,
            "pp_checkpoint_sha256": self.pp_sha256,
            "diffusion_target": self.target,
            **({"tp_transform": json.dumps(self.transform.to_dict())} if self.transform is not None else {}),
            "device": str(self.device),
        }


@lru_cache(maxsize=32)
def _static(grid: Grid) -> np.ndarray:
    from ppviz.diffusion.downscaler import static_channels

    return static_channels(grid)


# -- inputs ------------------------------------------------------------------------------------


def is_coarse_dataset(ds: xr.Dataset) -> bool:
    """True for data on the 1 deg grid (no truth to compare with)."""
    res = float(ds.lat.values[1] - ds.lat.values[0])
    return abs(res - FINE_RES_DEG * COARSE_FACTOR) < 1e-6


@dataclass
class CoarseInput:
    """The inputs of one time step over one region."""

    time: pd.Timestamp
    region: Region
    coarse_tp: np.ndarray  # (h, w) mm/h
    coarse_pp: np.ndarray  # (h, w)
    truth_tp: np.ndarray | None = None  # (H, W) mm/h
    truth_pp: np.ndarray | None = None  # (H, W)
    truth_vimd: np.ndarray | None = None  # (H, W) mm/h
    #: the diffusion conditioning when it is not ``coarse_pp`` (tp target: coarse transformed tp)
    coarse_cond: np.ndarray | None = None  # (h, w)

    @property
    def conditioning(self) -> np.ndarray:
        """What the diffusion model is conditioned on: ``coarse_cond`` if set, else ``coarse_pp``."""
        return self.coarse_pp if self.coarse_cond is None else self.coarse_cond


def coarse_input(models: Models, ds: xr.Dataset, time, region: Region, coarse_from: str = "fine") -> CoarseInput:
    """Coarse tp and PP (and the fine truth where known) of ``ds`` at ``time`` over ``region``."""
    from ppviz.data.source import select_time

    if coarse_from not in COARSE_FROM:
        raise ValueError(f"coarse_from must be one of {list(COARSE_FROM)}, got {coarse_from!r}")
    step = select_time(ds, time)
    ts = pd.Timestamp(step.time.values)
    if is_coarse_dataset(ds):
        cg = region.coarse_grid
        tol = cg.res / 4
        sub = step.sel(lat=slice(cg.lat[0] - tol, cg.lat[-1] + tol), lon=slice(cg.lon[0] - tol, cg.lon[-1] + tol))
        if (sub.sizes["lat"], sub.sizes["lon"]) != cg.shape:
            raise ValueError(f"the 1 deg data do not cover region {region.slug_or_box}")
        tp = np.asarray(sub["tp"].values, dtype=np.float32)
        vimd = np.asarray(sub["vimd"].values, dtype=np.float32)
        _check_finite(tp, vimd, ts)
        cond = None if models.transform is None else models.transform.forward(tp)
        return CoarseInput(ts, region, tp, models.encode(tp, vimd), coarse_cond=cond)
    sub = region.subset(step)
    tp = np.asarray(sub["tp"].values, dtype=np.float32)
    vimd = np.asarray(sub["vimd"].values, dtype=np.float32)
    _check_finite(tp, vimd, ts)
    lat = region.fine_grid.lat
    pp = models.encode(tp, vimd)
    ctp = coarsen_blocks(tp, lat, region.factor)
    if coarse_from == "fine":
        cpp = coarsen_blocks(pp, lat, region.factor)
    else:
        cpp = models.encode(ctp, coarsen_blocks(vimd, lat, region.factor))
    cond = None
    if models.transform is not None:  # tp target: block mean of the transformed fine tp, as in training
        cond = (coarsen_blocks(models.transform.forward(tp), lat, region.factor) if coarse_from == "fine"
                else models.transform.forward(ctp))
    return CoarseInput(ts, region, ctp, cpp, tp, pp, vimd, coarse_cond=cond)


def _check_finite(tp, vimd, ts) -> None:
    if not (np.isfinite(tp).all() and np.isfinite(vimd).all()):
        raise ValueError(f"the data have NaN or infinite tp/vimd at {ts:%Y-%m-%d %H:%M} inside the region; "
                         "choose another time or region, or fill the gaps")


# -- one time step -----------------------------------------------------------------------------


@dataclass
class Ensemble:
    """The result of one time step (arrays; see :meth:`to_dataset`)."""

    inputs: CoarseInput
    pp_members: np.ndarray  # (M, H, W)
    tp_members: np.ndarray  # (M, H, W) mm/h
    seeds: list[int]
    baselines: dict[str, np.ndarray]  # name -> (H, W) mm/h
    settings: dict

    def to_dataset(self) -> xr.Dataset:
        """CF-style dataset with dims (member, time=1, lat, lon) and the references."""
        inp = self.inputs
        fg, cg = inp.region.fine_grid, inp.region.coarse_grid
        m = self.tp_members.shape[0]
        coords = {
            "member": ("member", np.arange(m, dtype=np.int32), {"long_name": "ensemble member"}),
            "time": ("time", [np.datetime64(inp.time, "ns")], {"standard_name": "time"}),
            **fg.coords(),
            "lat_coarse": ("lat_coarse", cg.lat, {"units": "degrees_north", "long_name": "latitude of 1 deg cells"}),
            "lon_coarse": ("lon_coarse", cg.lon, {"units": "degrees_east", "long_name": "longitude of 1 deg cells"}),
        }
        f4 = ("member", "time", "lat", "lon")
        latent = ("pp", {**PP_ATTRS, "long_name": "downscaled pseudo-precipitation"})
        if self.settings.get("target") == "tp":
            latent = ("tp_z", {"units": "1", "long_name": "downscaled transformed tp (the tp-target model's latent, not PP)",
                               "comment": self.settings.get("tp_transform", "")})
        v = {
            "tp": (f4, self.tp_members[:, None], {**TP_ATTRS, "long_name": "downscaled total precipitation rate"}),
            latent[0]: (f4, self.pp_members[:, None], latent[1]),
            "tp_coarse": (("time", "lat_coarse", "lon_coarse"), inp.coarse_tp[None],
                          {**TP_ATTRS, "long_name": "coarse (1 deg) total precipitation rate, the input"}),
            "pp_coarse": (("time", "lat_coarse", "lon_coarse"), inp.coarse_pp[None],
                          {**PP_ATTRS, "long_name": "coarse (1 deg) pseudo-precipitation, the conditioning"}),
            "member_seed": (("member", "time"), np.asarray(self.seeds, dtype=np.int64)[:, None],
                            {"long_name": "sampler seed of each member", "comment": "ppviz.pipeline.member_seed"}),
        }
        if inp.coarse_cond is not None:
            v["tp_z_coarse"] = (("time", "lat_coarse", "lon_coarse"), inp.coarse_cond[None],
                                {"units": "1", "long_name": "coarse transformed tp, the tp-target model's conditioning"})
        if inp.truth_tp is not None:
            v["tp_truth"] = (("time", "lat", "lon"), inp.truth_tp[None], {**TP_ATTRS, "long_name": "ERA5-grid truth, total precipitation rate"})
            v["pp_truth"] = (("time", "lat", "lon"), inp.truth_pp[None], {**PP_ATTRS, "long_name": "pseudo-precipitation of the truth"})
        for name, arr in self.baselines.items():
            v[f"tp_{name}"] = (("time", "lat", "lon"), arr[None], {**TP_ATTRS, "long_name": f"{name} baseline, total precipitation rate"})
        ds = xr.Dataset({k: xr.Variable(*spec) for k, spec in v.items()}, coords=coords)
        for name in ds.data_vars:
            if ds[name].dtype.kind == "f":
                ds[name] = ds[name].astype(np.float32)
        return ds


def downscale_time(
    models: Models,
    ds: xr.Dataset,
    time,
    region: Region,
    *,
    members: int = 4,
    steps: int = 18,
    seed: int = 0,
    churn: float = 0.0,
    coarse_from: str = "fine",
    callback: Callable[[dict], None] | None = None,
    max_batch: int | None = None,
) -> Ensemble:
    """Downscale one time step over one region into ``members`` fine tp fields.

    ``callback`` is called after every sampler step with the sampler's dict (``i``, ``sigma``,
    ``x`` and ``denoised`` as full fine PP fields, ``members``), for progress bars and
    trajectory views. Raises ValueError for a time outside the data, a region outside it, or
    members/steps out of bounds (:func:`ppviz.request.check_request`).
    """
    check_request(members, steps)
    inp = coarse_input(models, ds, time, region, coarse_from)
    seeds = [member_seed(seed, inp.time, k) for k in range(members)]
    static = _static(region.fine_grid)
    pp = models.diffusion.sample(inp.conditioning, static, seeds, sampler="heun", num_steps=steps,
                                 churn=churn, callback=callback, max_batch=max_batch)
    pp = pp.float().cpu().numpy()  # PP members, or transformed-tp members of a tp-target model
    tp = models.decode(pp) if models.transform is None else models.transform.inverse(pp)
    refs = {
        "bicubic": baselines.bicubic_tp(inp.coarse_tp, region.factor),
        "nearest": baselines.nearest_tp(inp.coarse_tp, region.factor),
        "pp_bicubic": baselines.pp_bicubic_tp(inp.coarse_pp, models.decode, region.factor),
    }
    settings = {"members": members, "steps": steps, "seed": seed, "churn": churn, "coarse_from": coarse_from,
                "target": models.target}
    if models.transform is not None:
        settings["tp_transform"] = json.dumps(models.transform.to_dict())
    return Ensemble(inp, pp, tp, seeds, refs, settings)


# -- many time steps ---------------------------------------------------------------------------


_WORKER_MODELS: dict[tuple, Models] = {}
_WORKER_DATA: dict[str | None, xr.Dataset] = {}


def _worker_models(job: DownscaleRequest) -> Models:
    # One load per process (a dask worker keeps this module and its caches between tasks).
    key = (job.checkpoint, job.pp_checkpoint, job.device)
    if key not in _WORKER_MODELS:
        _WORKER_MODELS[key] = Models.load(job.checkpoint, job.pp_checkpoint, job.device)
    return _WORKER_MODELS[key]


def _worker_data(path: str | None) -> xr.Dataset:
    from ppviz.data.source import load_dataset

    if path not in _WORKER_DATA:
        _WORKER_DATA[path] = load_dataset(path)
    return _WORKER_DATA[path]


def run_job_time(job: DownscaleRequest, time) -> xr.Dataset:
    """One time step of ``job`` as a dataset (runs on a dask worker or in-process)."""
    models = _worker_models(job)
    ds = _worker_data(job.data)
    region = Region.parse(job.region)
    ens = downscale_time(models, ds, time, region, members=job.members, steps=job.steps, seed=job.seed,
                         churn=job.churn, coarse_from=job.coarse_from)
    out = ens.to_dataset()
    out.attrs = models.provenance  # the checkpoints this worker really used
    return out


def downscale(
    job: DownscaleRequest,
    times: Sequence,
    *,
    client=None,
    progress: bool = True,
    command: str | None = None,
) -> xr.Dataset:
    """Downscale every time of ``times``; returns one dataset with dims (member, time, lat, lon).

    Parameters
    ----------
    job : ppviz.request.DownscaleRequest
        Data, region, checkpoints and sampler settings (its time fields are not used: ``times`` are).
    times : sequence of timestamps
        Steps of the data (see :func:`ppviz.data.source.select_times`).
    client : dask.distributed.Client, optional
        Run the times as tasks on this cluster (each worker loads the models once). None: in this
        process, one after another.
    progress : bool
        A tqdm bar over the time steps.
    command : str, optional
        Recorded in the ``history`` attribute.
    """
    from tqdm.auto import tqdm

    job.check()  # fail early, before any worker starts
    parts: list[xr.Dataset] = []
    if client is None:
        for t in tqdm(list(times), desc="downscale", unit="time", disable=not progress):
            parts.append(run_job_time(job, t))
    else:
        from distributed import as_completed

        futures = client.map(run_job_time, [job] * len(times), list(times), pure=False)
        with tqdm(total=len(futures), desc="downscale", unit="time", disable=not progress) as bar:
            for fut in as_completed(futures):
                parts.append(fut.result())
                bar.update(1)
    out = xr.concat(parts, dim="time", data_vars="minimal", coords="minimal", compat="override",
                    join="override") if len(parts) > 1 else parts[0]
    out = out.sortby("time")
    out.attrs = provenance_attrs(job, parts[0].attrs, command, client)
    return out


def provenance_attrs(job: DownscaleRequest, models_provenance: dict, command: str | None, client=None) -> dict:
    """CF global attributes and provenance (checkpoint hashes, sampler, seeds) of a run."""
    region = Region.parse(job.region)
    now = pd.Timestamp.now("UTC").strftime("%Y-%m-%dT%H:%M:%SZ")
    return {
        "Conventions": "CF-1.8",
        "title": f"ppviz PP-diffusion downscaling over {region.title}",
        "institution": "ppviz",
        "source": (f"ppviz {ppviz.__version__}: coarse PP -> EDM diffusion ensemble -> PP decoder"
                   if models_provenance.get("diffusion_target", "pp") == "pp" else
                   f"ppviz {ppviz.__version__}: coarse transformed tp -> EDM diffusion ensemble -> inverse "
                   "transform (tp-target control, no PP)"),
        "history": f"{now}: {command or 'ppviz.pipeline.downscale'}",
        "references": "Continuous latent representations for modeling precipitation with deep learning, arXiv:2412.14620",
        "data": str(job.data or "default (embedded synthetic Europe)"),
        "region": region.slug_or_box,
        "region_bounds": list(region.bounds),
        "sampler": "heun (EDM Algorithm 2), Karras sigmas sigma_min=0.002 sigma_max=80 rho=7",
        "steps": job.steps,
        "churn": job.churn,
        "members": job.members,
        "seed": job.seed,
        "seed_rule": "member_seed(seed, time, member) = SeedSequence([seed, hours since 1970, member]) (ppviz.pipeline)",
        "coarse_from": job.coarse_from,
        "scheduler": "dask.distributed" if client is not None else "in-process",
        **{k: v for k, v in models_provenance.items() if k not in ("device",)},
        "device": models_provenance.get("device", "?"),
    }


def local_client(n_workers: int | None = None, threads_per_worker: int = 1):
    """A dask LocalCluster client with one torch thread per worker thread (call under ``__main__``)."""
    from distributed import Client, LocalCluster

    n = n_workers or max(1, min(4, os.cpu_count() or 1))
    cluster = LocalCluster(n_workers=n, threads_per_worker=threads_per_worker, processes=True,
                           dashboard_address=None, silence_logs=40)
    client = Client(cluster)
    client.run(torch.set_num_threads, threads_per_worker)
    return client
