"""The dataset, device and checkpoints the dashboard works with, loaded once per process."""

from __future__ import annotations

import os
import threading
from collections import OrderedDict

import numpy as np
import pandas as pd
import xarray as xr

from ppviz.data.regions import NAMED_REGIONS, Region

DEFAULT_DIFFUSION_ENV = "PPVIZ_DEFAULT_DIFFUSION"
DEFAULT_PP_ENV = "PPVIZ_DEFAULT_PP"
CUSTOM = "custom"

_lock = threading.RLock()
_datasets: dict[str, tuple] = {}  # registry name -> (path, dataset)
_models: dict[tuple, object] = {}
_pp: dict[str, object] = {}


def dataset(name: str | None = None) -> xr.Dataset:
    """The dataset ``name`` of :mod:`ppviz.data.registry` (None: its default), opened once.

    ValueError naming the allowed names for an unknown one. The data are read lazily, so a file
    that vanishes while the app runs would surface as an obscure read error deep in a plot;
    instead every call checks the file is still there and raises FileNotFoundError saying so
    (the page shows it). Once the file is back it is reopened.
    """
    from ppviz.data import registry

    name = registry.default_name() if name is None else registry.check_name(name)
    with _lock:
        held = _datasets.get(name)
        if held is not None and not held[0].exists():
            del _datasets[name]
            raise FileNotFoundError(
                f"the data file {held[0]} has gone away while the app was running; "
                "restore it (or restart the app) and try again"
            )
        if held is None:
            from ppviz.data.canonical import open_dataset

            path = registry.dataset_path(name)
            held = _datasets[name] = (path, open_dataset(path))
        return held[1]


def dataset_choices() -> dict[str, str]:
    """``{title: name}`` of the datasets the app offers (:func:`ppviz.data.registry.dataset_titles`)."""
    from ppviz.data.registry import dataset_titles

    return dataset_titles()


def check_dataset_name(name: str) -> str:
    """``name`` when the app offers it; ValueError naming the allowed names otherwise."""
    from ppviz.data.registry import check_name

    return check_name(name)


def default_dataset_name() -> str:
    from ppviz.data.registry import default_name

    return default_name()


def dataset_title(name: str) -> str:
    """The title of the dataset ``name`` in the app's choice (``Synthetic Europe``, ...); the name
    itself for a name the registry does not know. A lookup, no file checks: the Downscale status
    asks on every hour shown."""
    from ppviz.data.registry import TITLES

    return TITLES.get(name, name)


def dataset_label(ds: xr.Dataset) -> str:
    """What the header says about ``ds``: real ERA5 with its attribution line, or its source."""
    from ppviz.data.registry import is_real_era5

    if is_real_era5(ds):
        return f"real ERA5 ({ds.attrs.get('licence', '')})"
    return str(ds.attrs.get("source", "?"))


def time_bounds(ds: xr.Dataset) -> tuple[pd.Timestamp, pd.Timestamp]:
    """First and last time step of ``ds``."""
    t = pd.DatetimeIndex(ds.time.values)
    return t[0], t[-1]


def default_time(ds: xr.Dataset) -> pd.Timestamp:
    """The hour to show first: the rainiest hour of the default region
    (:func:`ppviz.views.highlights.default_view`)."""
    from ppviz.views.highlights import default_view

    return default_view(ds)[0]


def device_label() -> str:
    """``GPU (<name>)`` when the pipeline will run on CUDA, else ``CPU``."""
    from ppviz.pipeline import default_device

    dev = default_device()
    if dev.type == "cuda":
        import torch

        try:
            return f"GPU ({torch.cuda.get_device_name(dev)})"
        except Exception:  # noqa: BLE001
            return "GPU"
    return dev.type.upper()


# -- checkpoints -----------------------------------------------------------------------------


def checkpoint_names(kind: str) -> list[str]:
    """Loadable (by name) checkpoints of ``kind``, in lookup order."""
    from ppviz.checkpoints import list_checkpoints

    return [i.name for i in list_checkpoints(kind) if i.ok and i.kind == kind and i.shadowed_by is None]


def checkpoint_labels(kind: str) -> dict[str, str]:
    """``{label: name}`` for a picker; the label adds the summary and marks the default."""
    from ppviz.checkpoints import list_checkpoints

    out = {}
    for i in list_checkpoints(kind):
        if not (i.ok and i.kind == kind and i.shadowed_by is None):
            continue
        label = i.name + (" (default)" if i.default else "")
        if i.summary:
            label += f": {i.summary[:60]}"
        out[label] = i.name
    return out


def preferred_checkpoint(kind: str) -> str | None:
    """The checkpoint a page starts with: ``$PPVIZ_DEFAULT_DIFFUSION`` / ``$PPVIZ_DEFAULT_PP``
    when it names an available one, else the registry's default, else the first; None if none."""
    from ppviz.checkpoints import CheckpointError, default_checkpoint

    names = checkpoint_names(kind)
    want = os.environ.get(DEFAULT_DIFFUSION_ENV if kind == "diffusion" else DEFAULT_PP_ENV, "").strip()
    if want in names:
        return want
    try:
        return default_checkpoint(kind)
    except CheckpointError:
        return names[0] if names else None


def checkpoint_schedule(checkpoint: str | None):
    """The :class:`ppviz.checkpoints.schedule.Schedule` of a registered diffusion checkpoint
    (its ``min_steps`` and ``default_steps`` bound the pages' step widgets); the legacy schedule
    when there is none or it cannot be read (the request says what is wrong when it is run)."""
    from ppviz.checkpoints.schedule import LEGACY
    from ppviz.request import checkpoint_schedule as read

    if not checkpoint:
        return LEGACY
    try:
        return read(checkpoint)
    except ValueError:
        return LEGACY


def load_models(checkpoint: str, pp_checkpoint: str | None = None):
    """:class:`ppviz.pipeline.Models` for registered names, loaded once per process."""
    from ppviz.pipeline import Models

    from ppviz.checkpoints import check_checkpoint

    checkpoint = check_checkpoint(checkpoint, "diffusion")
    if pp_checkpoint is not None:
        pp_checkpoint = check_checkpoint(pp_checkpoint, "pp")
    key = (checkpoint, pp_checkpoint)
    with _lock:
        if key not in _models:
            _models[key] = Models.load(checkpoint, pp_checkpoint)
        return _models[key]


def load_pp(name: str | None = None):
    """The PP checkpoint ``name`` (default: :func:`preferred_checkpoint`), loaded once."""
    from ppviz.checkpoints import load_checkpoint

    from ppviz.checkpoints import check_checkpoint

    name = check_checkpoint(name or preferred_checkpoint("pp"), "pp")
    with _lock:
        if name not in _pp:
            _pp[name] = load_checkpoint(name, kind="pp", allow_paths=False)
        return _pp[name]


def read_model_card(name: str) -> str:
    """The MODEL_CARD.md of a registered checkpoint (a note when it has none)."""
    from ppviz.checkpoints import CARD_FILE, resolve_checkpoint

    root = resolve_checkpoint(name, allow_paths=False)
    path = root / CARD_FILE
    if not path.is_file():
        return f"*{name} has no {CARD_FILE}.*"
    if not path.resolve().is_relative_to(root.resolve()):  # a card is read only from inside its checkpoint
        return f"*{name}'s {CARD_FILE} is a link leading outside the checkpoint directory; not shown.*"
    return path.read_text(encoding="utf-8", errors="replace")


# -- regions ---------------------------------------------------------------------------------


def region_choices(ds: xr.Dataset | None = None) -> dict[str, str]:
    """``{title: slug}`` of the named regions (with ``ds``: those inside it, and its whole extent
    as a box when that is no named region), plus the custom box."""
    if ds is None:
        named = {v[0]: k for k, v in NAMED_REGIONS.items()}
    else:
        from ppviz.data.regions import data_extent, regions_inside

        named = {r.title: r.name for r in regions_inside(ds)}
        try:
            ext = data_extent(ds)
        except ValueError:
            ext = None
        if ext is not None and ext.name == CUSTOM:
            named = {f"Whole data ({ext.slug_or_box})": ext.slug_or_box, **named}
    return {**named, "Custom box (lat0,lat1,lon0,lon1)": CUSTOM}


def first_region(ds: xr.Dataset) -> str:
    """The region a page starts on for ``ds``: ``sample`` when the data hold it, else the data's extent."""
    choices = list(region_choices(ds).values())
    return "sample" if "sample" in choices else choices[0]


def parse_region(region: str, box: str = "") -> Region:
    """The region a page shows: a named one, or the custom ``box`` when ``region`` is 'custom'.

    Raises ValueError with :meth:`Region.parse`'s message (too small, outside, inverted, ...).
    """
    if str(region).strip().lower() == CUSTOM:
        if not str(box).strip():
            raise ValueError("enter a custom box as lat0,lat1,lon0,lon1 in degrees (e.g. 44,48,5,12), "
                             "or draw one on the overview map")
        return Region.parse(box)
    return Region.parse(region)


def box_text(x0: float, y0: float, x1: float, y1: float) -> str:
    """``lat0,lat1,lon0,lon1`` of a rectangle drawn on a lon/lat map (corners in any order)."""
    lat0, lat1 = sorted((float(y0), float(y1)))
    lon0, lon1 = sorted((float(x0), float(x1)))
    return ",".join(f"{v:.2f}".rstrip("0").rstrip(".") for v in (lat0, lat1, lon0, lon1))


# -- inputs without a diffusion model --------------------------------------------------------


def pp_only_models(pp_name: str | None = None):
    """A :class:`ppviz.pipeline.Models` holding only the PP model (no diffusion), for inputs."""
    from ppviz.pipeline import Models

    pp = load_pp(pp_name)
    return Models(pp=pp.model, diffusion=None, pp_name=pp.name, pp_sha256=pp.sha256, diffusion_name="",
                  diffusion_sha256="")


_inputs: "OrderedDict[tuple, tuple]" = OrderedDict()  # key -> (dataset, CoarseInput), least recent first
INPUTS_CACHED = 32


def inputs(ds: xr.Dataset, time, region: Region, checkpoint: str | None = None, pp_name: str | None = None,
           coarse_from: str = "fine"):
    """:class:`ppviz.pipeline.CoarseInput` (coarse tp and PP, fine truth) of one hour.

    With a diffusion ``checkpoint`` its models make the inputs (so they match what it is
    conditioned on); without, the PP model ``pp_name`` alone. The last :data:`INPUTS_CACHED`
    are kept (shared by the sessions, read only): every page of a new session asks for the
    same hour, and encoding it again cost a landing page ~0.4 s.
    """
    from ppviz.pipeline import coarse_input

    models = load_models(checkpoint, pp_name) if checkpoint else pp_only_models(pp_name)
    # the inputs depend on the PP model only (its weights, by hash), not on the diffusion model
    key = (id(ds), pd.Timestamp(time), region, models.pp_sha256, coarse_from)
    with _lock:
        held = _inputs.get(key)
        if held is not None and held[0] is ds:  # the same dataset object, not a reused id
            _inputs.move_to_end(key)
            return held[1]
    out = coarse_input(models, ds, time, region, coarse_from)
    with _lock:
        _inputs[key] = (ds, out)
        while len(_inputs) > INPUTS_CACHED:
            _inputs.popitem(last=False)
    return out


def region_fields(ds: xr.Dataset, time, region: Region, dtype=np.float32):
    """``(step, tp, vimd)``: the data at ``time`` over ``region`` and its tp and vimd arrays (mm/h);
    ValueError when a value is missing there."""
    from ppviz.data.source import select_time

    step = region.subset(select_time(ds, time))
    tp = np.asarray(step["tp"].values, dtype=dtype)
    vimd = np.asarray(step["vimd"].values, dtype=dtype)
    if not (np.isfinite(tp).all() and np.isfinite(vimd).all()):
        raise ValueError("the data have missing (NaN) tp or vimd in this region at this time; choose another")
    return step, tp, vimd


def coarse_overview(ds: xr.Dataset, time) -> xr.DataArray:
    """The whole domain's tp at ``time`` on the 1 deg grid (area-weighted block means)."""
    from ppviz.data.grid import COARSE_FACTOR, coarsen_blocks
    from ppviz.data.source import select_time

    step = select_time(ds, time)
    tp = np.asarray(step["tp"].values, dtype=np.float32)
    lat = step["lat"].values
    lon = step["lon"].values
    ny, nx = (tp.shape[0] // COARSE_FACTOR) * COARSE_FACTOR, (tp.shape[1] // COARSE_FACTOR) * COARSE_FACTOR
    c = coarsen_blocks(np.nan_to_num(tp[:ny, :nx]), lat[:ny], COARSE_FACTOR)
    clat = lat[:ny].reshape(-1, COARSE_FACTOR).mean(1)
    clon = lon[:nx].reshape(-1, COARSE_FACTOR).mean(1)
    return xr.DataArray(c, dims=("lat", "lon"), coords={"lat": clat, "lon": clon}, name="tp",
                        attrs={"units": "mm/h"})
