"""Offline coastlines and borders from Natural Earth shapefiles (cartopy's layout).

Nothing here downloads. The Natural Earth directory is the one of the land-sea mask,
:func:`ppviz.data.naturalearth.natural_earth_dir` (``$PPVIZ_NATURAL_EARTH`` first). When no files are
found, maps draw without coastlines and :func:`map_features` says why in its ``message``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np

from ppviz.data.naturalearth import ENV, natural_earth_dir, natural_earth_file

_FILES = {
    "coastline": ("physical", "coastline"),
    "borders": ("cultural", "admin_0_boundary_lines_land"),
}


def configure_cartopy() -> Path | None:
    """Point cartopy's ``pre_existing_data_dir`` at our Natural Earth root (no downloads needed)."""
    root = natural_earth_dir()
    if root is not None:
        import cartopy

        cartopy.config["pre_existing_data_dir"] = str(root)
    return root


@dataclass
class MapFeatures:
    """Line geometry for a map, as NaN-separated coordinate arrays (lon, lat in degrees)."""

    lines: dict[str, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)
    message: str = ""

    @property
    def available(self) -> bool:
        return bool(self.lines)


@lru_cache(maxsize=16)
def map_features(bounds: tuple[float, float, float, float], resolution: str = "50m") -> MapFeatures:
    """Coastlines and borders clipped to ``bounds = (lat0, lat1, lon0, lon1)``.

    Returns empty lines and an explanatory ``message`` (never raises, never downloads) when the
    Natural Earth files are missing or unreadable.
    """
    root = natural_earth_dir()
    if root is None:
        return MapFeatures(
            message=f"coastlines unavailable: no Natural Earth files found (set {ENV} to a directory "
            "holding shapefiles/natural_earth/...)"
        )
    try:
        import shapely
        from cartopy.io import shapereader
        from shapely.geometry import box

        lat0, lat1, lon0, lon1 = bounds
        clip = box(lon0, lat0, lon1, lat1)
        lines = {}
        for name, (category, stem) in _FILES.items():
            path = natural_earth_file(category, stem, resolution)
            if path is None:
                continue
            xs, ys = [], []
            for geom in shapereader.Reader(str(path)).geometries():
                if not geom.intersects(clip):
                    continue
                part = geom.intersection(clip)
                for line in shapely.get_parts(part):
                    if line.geom_type not in ("LineString", "LinearRing"):
                        continue
                    c = np.asarray(line.coords)
                    xs.extend([*c[:, 0], np.nan])
                    ys.extend([*c[:, 1], np.nan])
            lines[name] = (np.asarray(xs), np.asarray(ys))
        if not lines:
            return MapFeatures(message=f"coastlines unavailable: no ne_{resolution} shapefiles under {root}")
        return MapFeatures(lines=lines, message=f"coastlines and borders: Natural Earth {resolution} ({root})")
    except Exception as exc:  # a broken file must not break the map
        return MapFeatures(message=f"coastlines unavailable: {type(exc).__name__}: {exc}")
