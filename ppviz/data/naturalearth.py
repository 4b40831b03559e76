"""The one Natural Earth lookup: the land-sea mask (a model input) and the map coastlines use it.

Nothing here downloads. The Natural Earth directory is the first of these that holds Natural
Earth shapefiles, in cartopy's layout (``shapefiles/natural_earth/{physical,cultural}/ne_<res>_*.shp``)
or flat (the ``.shp`` files in the folder itself):

1. ``$PPVIZ_NATURAL_EARTH``;
2. ``$CARTOPY_DATA_DIR``, then cartopy's ``pre_existing_data_dir`` and ``data_dir``;
3. ``<repo>/../shared/natural-earth`` (the layout of the ppviz development machines).

Every file (land polygons, coastlines, borders) comes from that one directory, so the land-sea
mask and the coastlines drawn over it always come from the same Natural Earth copy.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["ENV", "SHARED_NATURAL_EARTH", "candidate_dirs", "natural_earth_dir", "natural_earth_file"]

ENV = "PPVIZ_NATURAL_EARTH"
REPO_ROOT = Path(__file__).resolve().parents[2]
SHARED_NATURAL_EARTH = REPO_ROOT.parent / "shared" / "natural-earth"
_LAYOUT = ("shapefiles", "natural_earth")


def candidate_dirs() -> list[Path]:
    """The directories searched, in order (see the module docstring)."""
    dirs: list[Path] = []
    for env in (ENV, "CARTOPY_DATA_DIR"):
        value = os.environ.get(env)
        if value:
            dirs.append(Path(value).expanduser())
    try:  # cartopy's configured directories, if cartopy is importable; never triggers downloads
        import cartopy

        for key in ("pre_existing_data_dir", "data_dir"):
            value = cartopy.config.get(key)
            if value and str(value) not in ("", "."):
                dirs.append(Path(value).expanduser())
    except Exception:  # pragma: no cover - cartopy missing or broken: maps still draw without it
        pass
    dirs.append(SHARED_NATURAL_EARTH)
    return dirs


def natural_earth_dir() -> Path | None:
    """The Natural Earth directory in use, or None if there is none on this machine."""
    for d in candidate_dirs():
        if d.joinpath(*_LAYOUT).is_dir() or (d.is_dir() and any(d.glob("ne_*.shp"))):
            return d
    return None


def natural_earth_file(category: str, name: str, resolution: str = "50m") -> Path | None:
    """``ne_<resolution>_<name>.shp`` of ``category`` ('physical', 'cultural') in :func:`natural_earth_dir`.

    None when there is no Natural Earth directory or it lacks that file.
    """
    root = natural_earth_dir()
    if root is None:
        return None
    stem = f"ne_{resolution}_{name}.shp"
    for path in (root.joinpath(*_LAYOUT, category, stem), root / stem):
        if path.is_file():
            return path
    return None
