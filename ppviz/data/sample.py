"""The ERA5 sample shipped with ppviz: two real days, prepared from the raw ERA5 files.

``assets/era5-sample.nc`` (in a wheel: ``ppviz/assets/era5-sample.nc``) holds hourly ``tp`` and
``vimd`` (mm/h, float32, canonical layout) over 45-55N, 0-10E for 2020-01-01 (VIMD from q, u, v on
20 pressure levels) and 2022-08-31 (VIMD from 22 model levels with the L137 table), both computed
by :func:`ppviz.data.prepare.prepare_dataset`. :func:`build_era5_sample` makes it from the raw
files (``ERA5_<day>_{tp,sp}.nc``, ``ERA5_<day>_{pl,ml}_{q,u,v}.nc``, ``era5_L137_model_levels.csv``);
``python assets/make_era5_sample.py [RAW_DIR]`` writes it.
"""

from __future__ import annotations

from pathlib import Path

import xarray as xr

from ppviz.data.canonical import write_dataset
from ppviz.data.prepare import LICENCE, prepare_dataset

#: (day, level kind) of the raw sample: ``pl`` pressure levels, ``ml`` model levels.
SAMPLE_DAYS = (("2020-01-01", "pl"), ("2022-08-31", "ml"))
LEVELS_TABLE = "era5_L137_model_levels.csv"
CITATION = "Hersbach et al. (2020), The ERA5 global reanalysis, QJRMS 146:1999-2049"
SAMPLE_FILE = "era5-sample.nc"


def raw_files(raw_dir) -> list[Path]:
    """Every raw file the sample is made from (FileNotFoundError naming the first missing one)."""
    raw = Path(raw_dir)
    names = [LEVELS_TABLE]
    for day, kind in SAMPLE_DAYS:
        names += [f"ERA5_{day}_tp.nc", f"ERA5_{day}_sp.nc"] + [f"ERA5_{day}_{kind}_{v}.nc" for v in "quv"]
    paths = [raw / n for n in names]
    missing = [p for p in paths if not p.is_file()]
    if missing:
        raise FileNotFoundError(f"the raw ERA5 sample lacks {missing[0]} ({len(missing)} file(s) missing in {raw})")
    return paths


def build_era5_sample(raw_dir) -> xr.Dataset:
    """The canonical two-day ERA5 sample from the raw files in ``raw_dir``.

    Returns
    -------
    xr.Dataset
        ``tp``, ``vimd`` (time=48, lat=41, lon=41) float32 mm/h; attributes ``source``,
        ``vimd_method`` (per day), ``licence`` (the Copernicus attribution), ``citation``,
        ``title`` and ``history``.
    """
    raw = Path(raw_dir)
    raw_files(raw)
    parts, methods = [], []
    for day, kind in SAMPLE_DAYS:
        f = {v: raw / f"ERA5_{day}_{kind}_{v}.nc" for v in "quv"}
        ds = prepare_dataset(raw / f"ERA5_{day}_tp.nc", q=f["q"], u=f["u"], v=f["v"], sp=raw / f"ERA5_{day}_sp.nc",
                             levels=raw / LEVELS_TABLE if kind == "ml" else None)
        parts.append(ds)
        methods.append(f"{day}: {ds.attrs['vimd_method']}")
    out = xr.concat(parts, dim="time", join="exact", combine_attrs="drop_conflicts")
    out.attrs = {
        "Conventions": "CF-1.8",
        "title": "ERA5 sample: hourly tp and VIMD over 45-55N, 0-10E on 2020-01-01 and 2022-08-31",
        "source": "ERA5 hourly reanalysis (ECMWF); tp from the single-level tp files, VIMD computed by ppviz",
        "vimd_method": "; ".join(methods),
        "licence": LICENCE,
        "attribution": f"{LICENCE} (Copernicus licence to use Copernicus products)",
        "citation": CITATION,
        "history": "ppviz.data.sample.build_era5_sample (python assets/make_era5_sample.py) from "
                   + ", ".join(p.name for p in raw_files(raw)),
    }
    return out


def write_era5_sample(ds: xr.Dataset, path) -> Path:
    """Write the sample as compressed netCDF (zlib 9 with shuffle; float32 values unchanged)."""
    return write_dataset(ds, path, complevel=9, shuffle=True)
