"""The datasets ppviz knows by name, and how each is opened: one registry for the CLI and the app.

=============== ==================================================================================
name            what
=============== ==================================================================================
``synthetic``   the embedded synthetic Europe (:mod:`ppviz.data.synthetic`), written to the cache
                directory on first use (:func:`ensure_default_dataset`)
``era5-sample`` two real ERA5 days over 45-55N, 0-10E shipped with ppviz (:mod:`ppviz.data.sample`;
                ``assets/era5-sample.nc``)
``configured``  the dataset at ``$PPVIZ_DATA`` (only offered when that is set)
=============== ==================================================================================

:func:`dataset_path` gives a name's file (ValueError naming the allowed names otherwise);
:func:`ppviz.data.source.load_dataset` accepts these names wherever it accepts a path, so
``ppviz gibbs --data era5-sample`` works too.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import xarray as xr

from ppviz.data.canonical import open_dataset, write_dataset
from ppviz.data.sample import SAMPLE_FILE
from ppviz.data.synthetic import DEFAULT_DAYS, DEFAULT_SEED, GENERATOR_VERSION, SynthParams, _params_text, synthesize
from ppviz.env import env_int
from ppviz.resources import ASSETS_DIR

SYNTHETIC = "synthetic"
ERA5_SAMPLE = "era5-sample"
CONFIGURED = "configured"
DATA_ENV = "PPVIZ_DATA"

#: name -> title shown in the app's dataset choice
TITLES = {
    SYNTHETIC: "Synthetic Europe",
    ERA5_SAMPLE: "ERA5 sample (real, 2 days)",
    CONFIGURED: "Configured dataset (PPVIZ_DATA)",
}


def _configured() -> str:
    """``$PPVIZ_DATA`` when it is a path ('' when unset, 'default' or one of the built-in names)."""
    value = os.environ.get(DATA_ENV, "").strip()
    return "" if value in ("", "default", SYNTHETIC, ERA5_SAMPLE, CONFIGURED) else value


def dataset_names() -> list[str]:
    """The names offered now: ``synthetic``, ``era5-sample`` and, when ``$PPVIZ_DATA`` is set,
    ``configured``."""
    return [SYNTHETIC, ERA5_SAMPLE] + ([CONFIGURED] if _configured() else [])


def dataset_titles() -> dict[str, str]:
    """``{title: name}`` of :func:`dataset_names` for a picker."""
    return {TITLES[n]: n for n in dataset_names()}


def default_name() -> str:
    """The dataset opened when none is named: ``configured`` when ``$PPVIZ_DATA`` is a path, the
    name in ``$PPVIZ_DATA`` when it is ``synthetic`` or ``era5-sample``, else ``synthetic``."""
    value = os.environ.get(DATA_ENV, "").strip()
    if value in (SYNTHETIC, ERA5_SAMPLE):
        return value
    return CONFIGURED if _configured() else SYNTHETIC


def is_dataset_name(text) -> bool:
    """True when ``text`` is one of the registry's names (known at all, offered or not)."""
    return str(text).strip() in TITLES


def check_name(name) -> str:
    """``name`` when it is offered now; ValueError naming the allowed names otherwise."""
    text = str(name).strip()
    if text not in dataset_names():
        why = " (PPVIZ_DATA is not set)" if text == CONFIGURED else ""
        raise ValueError(f"unknown dataset {text!r}{why}; allowed: {', '.join(dataset_names())}")
    return text


def dataset_path(name: str) -> Path | str:
    """The file or store of dataset ``name`` (the synthetic one is generated on first use)."""
    name = check_name(name)
    if name == ERA5_SAMPLE:
        return ASSETS_DIR / SAMPLE_FILE
    if name == CONFIGURED:
        c = _configured()
        return c if c.startswith(URL_PREFIXES) else Path(c).expanduser()
    return Path(ensure_default_dataset(days=default_days(), seed=DEFAULT_SEED))


URL_PREFIXES = ("gs://", "s3://", "https://")  # remote stores (the public ARCO-ERA5 zarr)


def open_any(path) -> xr.Dataset:
    """Open a dataset path lazily as a canonical dataset: a canonical zarr/netCDF
    (:func:`ppviz.data.canonical.open_dataset`), or a zarr store in the ARCO-ERA5 layout
    (:func:`ppviz.data.arco.open_arco`: Europe, or a regional store's own points, with latitude
    ascending, longitude wrapped across 0 deg, tp from m and vimd from kg m-2 to mm/h)."""
    p = Path(path)
    if str(path).startswith(URL_PREFIXES):
        from ppviz.data.arco import open_arco

        return open_arco(str(path))
    if p.exists() and (p.is_dir() or p.suffix == ".zarr"):
        from ppviz.data.arco import is_arco_layout, open_arco

        try:
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", message="Consolidated metadata", category=UserWarning)
                raw = xr.open_zarr(p)
        except Exception:  # noqa: BLE001 - open_dataset gives the one-line message below
            raw = None
        if raw is not None and is_arco_layout(raw):
            return open_arco(p)
    return open_dataset(path)


def open_named(name: str):
    """The dataset ``name``, opened lazily and validated (:func:`open_any`: canonical or ARCO layout)."""
    return open_any(dataset_path(name))


def is_real_era5(ds) -> bool:
    """True for data prepared from ERA5 (its ``source`` starts with 'ERA5')."""
    return str(ds.attrs.get("source", "")).startswith("ERA5")


# -- the synthetic store in the cache directory ------------------------------------------------

DATA_DIR_ENV = "PPVIZ_DATA_DIR"


def cache_dir(data_dir: str | os.PathLike | None = None) -> Path:
    """The cache directory: ``data_dir``, else ``$PPVIZ_DATA_DIR``, else ``~/.cache/ppviz``."""
    if data_dir is not None:
        return Path(data_dir).expanduser()
    env = os.environ.get(DATA_DIR_ENV)
    return Path(env).expanduser() if env else Path.home() / ".cache" / "ppviz"


def default_dataset_path(
    days: int = DEFAULT_DAYS, seed: int = DEFAULT_SEED, data_dir: str | os.PathLike | None = None
) -> Path:
    """Where the synthetic dataset for (days, seed) lives: ``<dir>/synthetic-europe-d{days}-s{seed}.zarr``."""
    return cache_dir(data_dir) / f"synthetic-europe-d{int(days)}-s{int(seed)}.zarr"


DEFAULT_DAYS_ENV = "PPVIZ_SYNTH_DAYS"


def default_days() -> int:
    """Span of the embedded dataset in days (``$PPVIZ_SYNTH_DAYS``, default 60)."""
    days = env_int(DEFAULT_DAYS_ENV, 1, 3660, unit="days")
    return DEFAULT_DAYS if days is None else days



def ensure_default_dataset(
    days: int = DEFAULT_DAYS,
    seed: int = DEFAULT_SEED,
    *,
    data_dir: str | os.PathLike | None = None,
    progress: bool = False,
) -> Path:
    """Path of the default synthetic dataset, generating and writing it (atomically) on first use.

    An existing store is reused when it was written by this generator version with the default
    parameters; otherwise (stale or unreadable) it is regenerated and replaced.
    """
    path = default_dataset_path(days, seed, data_dir)
    if path.exists():
        try:
            ds = open_dataset(path)
            current = (
                ds.attrs.get("generator_version") == GENERATOR_VERSION
                and ds.attrs.get("generator_params") == _params_text(SynthParams())
                and ds.sizes["time"] == 24 * int(days)
            )
            if current:
                return path
        except (ValueError, OSError):
            pass  # unreadable or stale: regenerate below
    ds = synthesize(days=days, seed=seed, progress=progress)
    write_dataset(ds, path)
    return path


