"""Static geography on a lat/lon grid: a land-sea mask and a smooth orography, no downloads.

Land-sea mask
-------------
Rasterised from Natural Earth land polygons (public domain) when a Natural Earth directory in
cartopy's layout (``shapefiles/natural_earth/physical/ne_50m_land.shp``) can be found by
:mod:`ppviz.data.naturalearth` (the same lookup as the coastlines of the maps; never downloads).

Without one, an embedded approximate mask is used: :data:`_FALLBACK_LAND`, a dozen polygons for
Europe's land masses (Douglas-Peucker simplified, 0.4 deg tolerance, from Natural Earth 50m
land clipped to 32-74N, 15W-47E, rounded to 0.1 deg). It agrees with the Natural Earth mask on
about 97% of the EUROPE grid cells; :func:`land_sea_mask_source` says which one was used.

A cell is land (1) when its centre lies on land, else sea (0).

Orography
---------
An analytic, smooth approximation (m above sea level): the main ranges as Gaussian ridges along
polylines (Alps ~2500 m, Pyrenees, Carpathians, Scandinavian mountains, Dinaric Alps,
Apennines, Atlas, Caucasus, ...) and broad plateaus (Iberian Meseta, Anatolia), combined by a
maximum, then set to 0 over sea. It has the right places and rough heights, not real terrain:
good enough to leave an orographic trace in the synthetic climate.
"""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np
import xarray as xr

from ppviz.data.grid import EUROPE, Grid
from ppviz.data.naturalearth import ENV, natural_earth_file

NATURAL_EARTH_ENV = ENV

#: Approximate land polygons (lon,lat pairs), used when no Natural Earth directory is found.
#: Simplified from Natural Earth 50m land (public domain); see the module docstring.
_FALLBACK_LAND = {
    "eurasia": (
        "18.4,59.2 16.2,58.6 16.9,58.5 15.9,56.2 12.9,55.4 13,55.7 12.5,56.3 12.9,56.6 10.6,59.8 8.2,58.1 "
        "5.6,58.6 6.4,59.5 5.2,59.2 5.2,59.6 7,60.5 5.1,59.6 5.6,60.7 5,61 7,61 7.6,61.2 5.3,61.1 "
        "4.9,61.8 5,61.9 6,61.8 6.7,61.9 5.1,62 8.1,62.7 6.7,62.7 7.6,63.1 8.6,62.8 8.2,63.2 8.6,63.6 "
        "10,63.4 11.4,63.8 9.6,63.7 12.9,65.3 12.1,65.3 13,66 12.8,66.1 14,66.3 13.1,66.2 13.2,66.6 "
        "15.7,67.5 14.8,67.8 17.6,68.4 16.5,68.5 18.1,69.2 18.3,69.5 19.6,69.4 20.3,69.9 20.1,69.3 "
        "22.7,70.4 23.4,70 24.7,71 25.8,70.9 25,70.1 28.1,71 28.2,70.2 28.8,70.9 31,70.3 28.8,70.1 "
        "29.7,69.7 32,70 33.5,69.4 33.1,69.1 35.9,69.2 41,67.7 41.2,66.8 38.7,66.1 34.5,66.6 32.9,67.1 "
        "31.9,67.2 34.7,66 34.4,65.4 35,64.4 37.4,63.8 38.1,64.1 36.6,64.8 36.9,65.2 39.8,64.6 40.4,64.8 "
        "39.8,65.6 42.2,66.5 44.1,66 44.2,68.3 43.3,68.7 46.7,68 44.9,67.4 47,66.9 47,32 34.7,32 36,34.5 "
        "36.1,36.9 32.8,36 30.6,36.9 29.7,36.2 29,36.7 27.5,36.7 28.2,37 27.3,37 27.2,38 26.3,38.3 "
        "27.1,38.5 26.2,40 29.8,40.7 29.1,41.2 31.3,41.1 35,42.1 38.4,40.9 41.4,41.4 41.4,42.7 36.6,45.2 "
        "37.6,45.4 38.5,46.1 37.8,46.6 39.2,47.3 35.2,46.4 35,45.7 36.4,45.1 33.9,44.4 32.5,45.4 "
        "33.6,46.1 31.8,46.3 32.6,46.6 31.8,47.2 31.9,46.6 30.8,46.6 29.6,45.7 29.6,44.8 28.9,45 "
        "28.6,43.5 27.5,42.5 29,41 27.5,41 26.2,40.1 26.8,40.6 24.5,40.9 23.8,40.7 24.3,40.1 23.6,39.9 "
        "22.6,40.5 23.3,39.2 22.6,38.9 24,38.1 24,37.7 23.5,38 23,37.9 23.5,37.4 22.7,37.5 23.2,36.4 "
        "21.9,36.7 21.1,37.9 23.1,38.2 21.2,38.3 21.1,39 19.4,40.3 19.6,41.8 16.9,43.4 16,43.5 15.2,44.2 "
        "15.5,44.3 14.6,45.3 14.3,45.3 13.9,44.8 13.6,45.8 12.3,45.4 12.4,44.2 14.5,42.2 16.2,41.9 "
        "15.9,41.5 18.5,40.2 18.3,39.8 16.9,40.5 16.5,39.7 17.2,39 16.1,37.9 15.7,40 11.1,42.4 10.2,43.9 "
        "8.8,44.4 6.1,43.1 4.1,43.6 3.3,43.2 3.2,41.9 0.7,40.8 -0.3,39.5 0.2,38.8 -2.1,36.8 -4.4,36.7 "
        "-5.6,36 -6.9,37.3 -9,37 -8.7,38.4 -9.3,38.7 -9,38.7 -8.8,39.1 -9.5,38.8 -8.7,42.3 -9.2,43.2 "
        "-7.7,43.8 -2,43.3 -1.1,45.5 -0.8,45.4 -0.7,45.1 -0.5,45 -1.1,46.3 -2.1,46.9 -1.7,47.2 -4.3,47.8 "
        "-4.7,48.5 -1.4,48.7 -1.9,49.7 0.4,49.4 1.8,50.9 4.2,51.4 3.4,51.5 4.3,51.5 4,51.9 5.5,53.3 "
        "9.8,53.6 8.6,54.3 9,54.5 8.6,55.4 8.1,55.6 8.2,56.6 9.2,56.7 8.3,56.8 8.6,57.1 10.6,57.7 "
        "10.3,56.6 10.9,56.4 9.6,55.5 9.9,54.5 11.4,53.9 13,54.4 14,53.8 14.6,53.6 13.8,54.1 18.1,54.8 "
        "19.4,54.4 21.1,55.6 20.6,55 21.2,54.9 21,56.6 21.7,57.6 24.4,57.3 24.5,58.4 23.8,58.4 23.5,59.2 "
        "30.2,60 28.5,60.7 23,59.8 22.6,60.4 21.4,60.6 21.1,62.6 21.5,63.2 25.4,65 24.6,65.9 22.4,65.9 "
        "21.4,65.3 21.5,64.5 20.8,63.9 17.4,62.5 17.3,60.7 19,59.8 18,59.4 "
    ),
    "maghreb": (
        "-9.3,32.1 -8.5,33.3 -6.9,34 -5.9,35.8 -1.9,35.1 1.3,36.5 9.7,37.3 11.1,36.9 10.5,36.2 11.1,35.2 "
        "10.2,33.9 15.4,32 "
    ),
    "great-britain": (
        "-3.9,57.8 -1.9,57.6 -3.3,56.4 -2.7,56.3 -3.8,56.1 -1.7,55.6 -0.1,54.1 0.1,53.6 -0.3,53.7 "
        "-0.7,53.7 0.3,53.3 0,52.9 1.7,52.8 0.4,51.5 1.4,51.2 -3,50.7 -5.7,50.1 -4.2,51.2 -3.1,51.2 "
        "-2.4,51.7 -5.3,51.9 -4.1,52.3 -4.1,52.9 -4.7,52.8 -4.3,53.1 -2.7,53.3 -3.6,54.6 -3,55 -4.9,54.7 "
        "-4.6,55.9 -5.1,56.2 -5.7,55.3 -5.2,56.8 -6.1,56.7 -5.7,56.9 -5,58.6 -3.1,58.6 "
    ),
    "ireland": (
        "-7.4,55.4 -5.5,54.5 -6.3,54 -6.3,52.2 -9.3,51.5 -10.3,51.8 -8.8,52.7 -9.9,52.6 -8.9,53.2 "
        "-10.1,53.4 -9.6,53.8 -10.1,54.3 -8.5,54.2 -8.1,54.6 -8.7,54.7 "
    ),
    "sicily": (
        "15.6,38.3 14.8,36.7 12.4,37.8 "
    ),
    "sardinia": (
        "9.6,39.3 8.6,39 8.2,40.9 9.6,41 "
    ),
    "cyrenaica": (
        "20,32 21.7,32.9 24.4,32 "
    ),
    "iceland-east": (
        "-15,66.1 -13.6,65.1 -15,64.3 "
    ),
    "zealand": (
        "12.6,56.1 11.9,54.8 11,55.7 "
    ),
    "corsica": (
        "9.3,41.6 8.6,42.4 9.4,43 9.6,42.2 "
    ),
    "cyprus": (
        "34.6,35.7 32.7,34.6 32.3,35.1 "
    ),
    "crete": (
        "23.5,35.4 25.8,35.1 26.3,35.3 26.2,35 24.8,34.9 "
    ),
}


# ----- Natural Earth lookup ------------------------------------------------------------------------


def natural_earth_land_file(resolution: str = "50m") -> Path | None:
    """The Natural Earth land shapefile at ``resolution`` ('50m' or '110m'), or None if none is found.

    Looked up by :func:`ppviz.data.naturalearth.natural_earth_file`, the lookup of the coastlines too.
    """
    return natural_earth_file("physical", "land", resolution)


def _read_polygons(path: Path):
    """Shapely geometries of a shapefile (cartopy's reader, or pyshp directly)."""
    try:
        from cartopy.io import shapereader

        return list(shapereader.Reader(str(path)).geometries())
    except ImportError:  # pragma: no cover - cartopy is a dependency, pyshp is its reader
        import shapefile
        from shapely.geometry import shape

        with shapefile.Reader(str(path)) as reader:
            return [shape(s.__geo_interface__) for s in reader.shapes()]


def _fallback_polygons():
    from shapely.geometry import Polygon

    polys = []
    for text in _FALLBACK_LAND.values():
        pts = [tuple(float(v) for v in pair.split(",")) for pair in "".join(text).split()]
        polys.append(Polygon(pts))
    return polys


# ----- land-sea mask -------------------------------------------------------------------------------


@functools.lru_cache(maxsize=16)
def _mask_cached(grid: Grid, shp: str | None) -> np.ndarray:
    import shapely
    from shapely.geometry import box

    lon0, lon1 = grid.lon_edges
    lat0, lat1 = grid.lat_edges
    bbox = box(lon0 - 1.0, lat0 - 1.0, lon1 + 1.0, lat1 + 1.0)
    polys = _read_polygons(Path(shp)) if shp else _fallback_polygons()
    polys = [p for p in polys if p.intersects(bbox)]
    land = shapely.union_all(polys).intersection(bbox) if polys else box(0, 0, 0, 0)
    shapely.prepare(land)
    lon2, lat2 = np.meshgrid(grid.lon, grid.lat)
    mask = shapely.contains_xy(land, lon2, lat2).astype(np.float32)
    mask.setflags(write=False)
    return mask


def land_sea_mask_source() -> str:
    """Where :func:`land_sea_mask` takes its polygons from now (a path, or 'embedded approximation')."""
    shp = natural_earth_land_file()
    return str(shp) if shp else "embedded approximation (simplified Natural Earth 50m, 0.4 deg)"


def land_sea_mask(grid: Grid = EUROPE, *, natural_earth: bool = True) -> np.ndarray:
    """Land-sea mask on ``grid``: 1 where the cell centre is land, 0 over sea.

    Parameters
    ----------
    grid : Grid
        Target grid (default: the 0.25 deg Europe domain).
    natural_earth : bool
        Use Natural Earth land polygons when a directory is found (see module docstring); False
        forces the embedded approximation.

    Returns
    -------
    np.ndarray, float32, shape (grid.nlat, grid.nlon), latitude ascending
        A fresh copy; values exactly 0 or 1.
    """
    shp = natural_earth_land_file() if natural_earth else None
    return _mask_cached(grid, str(shp) if shp else None).copy()


# ----- orography -------------------------------------------------------------------------------------

#: Mountain ranges as Gaussian ridges: name -> (peak height m, half-width sigma in degrees of
#: latitude, crest polyline as (lon, lat) vertices). Heights are typical crest levels, not summits.
RIDGES: dict[str, tuple[float, float, tuple[tuple[float, float], ...]]] = {
    "alps": (2500.0, 0.45, ((5.8, 44.2), (6.8, 45.3), (7.5, 46.0), (9.0, 46.4), (10.8, 46.7), (12.8, 47.1), (15.0, 47.4))),
    "pyrenees": (2000.0, 0.3, ((-1.6, 43.0), (0.5, 42.7), (2.6, 42.5))),
    "cantabrian": (1500.0, 0.3, ((-7.2, 42.9), (-4.5, 43.1), (-2.8, 43.0))),
    "iberian-central": (1500.0, 0.3, ((-7.0, 40.2), (-4.5, 40.5), (-3.2, 41.0))),
    "iberian-system": (1300.0, 0.4, ((-3.0, 41.9), (-1.5, 40.8), (-0.8, 40.0))),
    "betic": (1800.0, 0.35, ((-5.2, 36.8), (-3.3, 37.1), (-1.8, 37.8))),
    "massif-central": (900.0, 0.6, ((2.5, 44.6), (3.0, 45.6))),
    "jura-vosges-black-forest": (900.0, 0.3, ((5.8, 46.5), (7.0, 47.8), (8.1, 48.3))),
    "german-uplands": (700.0, 0.7, ((7.0, 50.5), (10.5, 50.7), (13.0, 50.5), (16.0, 50.5))),
    "apennines": (1500.0, 0.35, ((8.8, 44.4), (11.0, 44.1), (13.3, 42.5), (15.3, 40.8), (16.2, 39.0))),
    "dinaric": (1500.0, 0.5, ((14.8, 45.5), (16.8, 43.8), (19.0, 42.6), (20.6, 40.8), (21.5, 39.2))),
    "balkan": (1400.0, 0.35, ((22.5, 43.4), (25.0, 42.8), (27.0, 42.7))),
    "rhodopes": (1500.0, 0.45, ((23.0, 41.8), (25.0, 41.6))),
    "carpathians": (1600.0, 0.45, ((17.5, 48.6), (20.0, 49.3), (23.5, 48.6), (25.3, 47.2), (25.7, 45.6), (22.5, 45.3))),
    "scandinavian": (1500.0, 0.7, ((6.8, 59.0), (7.8, 61.5), (9.5, 62.6), (13.5, 65.0), (16.5, 68.0), (20.5, 69.3))),
    "scottish-highlands": (800.0, 0.6, ((-5.5, 56.5), (-4.0, 57.3))),
    "pennines-wales": (500.0, 0.4, ((-3.7, 52.0), (-2.2, 54.5))),
    "atlas-rif": (1800.0, 0.4, ((-5.6, 35.1), (-3.8, 35.1))),
    "middle-atlas": (2000.0, 0.5, ((-5.8, 33.0), (-3.8, 34.0))),
    "tell-atlas": (1600.0, 0.5, ((-1.0, 35.0), (3.0, 36.0), (7.0, 36.2), (9.5, 36.4))),
    "caucasus": (3000.0, 0.45, ((37.8, 44.6), (40.5, 43.5), (43.0, 42.8), (45.8, 41.9))),
    "pontic": (1800.0, 0.45, ((31.0, 41.0), (36.0, 41.0), (41.5, 40.6))),
    "taurus": (2000.0, 0.45, ((29.0, 37.0), (32.0, 36.9), (35.5, 37.5), (38.5, 38.3))),
    "corsica-sardinia": (1400.0, 0.3, ((9.1, 42.6), (9.2, 40.5))),
    "sicily-calabria": (1200.0, 0.3, ((13.5, 37.8), (15.0, 37.8), (16.2, 38.6))),
    "crete": (1500.0, 0.2, ((23.7, 35.3), (25.8, 35.1))),
    "urals-timan": (400.0, 1.0, ((44.5, 63.0), (45.8, 66.0))),
}

#: Broad plateaus as round Gaussians: name -> (height m, sigma deg, lon, lat).
PLATEAUS: dict[str, tuple[float, float, float, float]] = {
    "iberian-meseta": (700.0, 2.0, -4.0, 40.3),
    "anatolia": (1100.0, 2.5, 34.5, 39.0),
    "armenian-highlands": (1800.0, 1.8, 43.5, 39.5),
    "bohemian-massif": (500.0, 1.0, 14.5, 49.5),
    "dinaric-interior": (700.0, 1.5, 19.0, 43.5),
    "middle-atlas-plateau": (1000.0, 1.2, -3.0, 33.3),
    "zagros-edge": (1500.0, 1.5, 46.5, 34.5),
}


def _distance_to_polyline_deg(lon2, lat2, pts) -> np.ndarray:
    """Distance (degrees of latitude, lon scaled by cos lat) from grid points to a polyline."""
    pts = np.asarray(pts, dtype=float)
    coslat = np.cos(np.deg2rad(pts[:, 1].mean()))
    x = lon2 * coslat
    y = lat2
    best = np.full(lon2.shape, np.inf)
    for (ax, ay), (bx, by) in zip(pts[:-1], pts[1:]):
        ax, bx = ax * coslat, bx * coslat
        dx, dy = bx - ax, by - ay
        t = np.clip(((x - ax) * dx + (y - ay) * dy) / (dx * dx + dy * dy), 0.0, 1.0)
        d = np.hypot(x - (ax + t * dx), y - (ay + t * dy))
        best = np.minimum(best, d)
    return best


@functools.lru_cache(maxsize=16)
def _orography_cached(grid: Grid, shp: str | None) -> np.ndarray:
    lon2, lat2 = np.meshgrid(grid.lon.astype(float), grid.lat.astype(float))
    h = np.zeros(lon2.shape)
    for height, sigma, pts in RIDGES.values():
        d = _distance_to_polyline_deg(lon2, lat2, pts)
        h = np.maximum(h, height * np.exp(-0.5 * (d / sigma) ** 2))
    for height, sigma, lon, lat in PLATEAUS.values():
        d2 = ((lon2 - lon) * np.cos(np.deg2rad(lat))) ** 2 + (lat2 - lat) ** 2
        h = np.maximum(h, height * np.exp(-0.5 * d2 / sigma**2))
    h *= _mask_cached(grid, shp)
    out = h.astype(np.float32)
    out.setflags(write=False)
    return out


def orography(grid: Grid = EUROPE, *, natural_earth: bool = True) -> np.ndarray:
    """Smooth analytic surface height on ``grid`` (m above sea level, 0 over sea).

    Returns
    -------
    np.ndarray, float32, shape (grid.nlat, grid.nlon), latitude ascending
        A fresh copy; Gaussian ridges for the main European ranges (see :data:`RIDGES`,
        :data:`PLATEAUS`), masked with :func:`land_sea_mask`.
    """
    shp = natural_earth_land_file() if natural_earth else None
    return _orography_cached(grid, str(shp) if shp else None).copy()


def static_fields(grid: Grid = EUROPE, *, natural_earth: bool = True) -> xr.Dataset:
    """``lsm`` (1 land, 0 sea) and ``orography`` (m) on ``grid`` as a CF dataset (lat, lon)."""
    lsm = land_sea_mask(grid, natural_earth=natural_earth)
    oro = orography(grid, natural_earth=natural_earth)
    source = land_sea_mask_source() if natural_earth else "embedded approximation"
    return xr.Dataset(
        {
            "lsm": (
                ("lat", "lon"),
                lsm,
                {"units": "1", "standard_name": "land_binary_mask", "long_name": "land-sea mask (1 land, 0 sea)"},
            ),
            "orography": (
                ("lat", "lon"),
                oro,
                {
                    "units": "m",
                    "standard_name": "surface_altitude",
                    "long_name": "smooth analytic orography (Gaussian ridges; approximate)",
                },
            ),
        },
        coords=grid.coords(),
        attrs={
            "Conventions": "CF-1.8",
            "source": "ppviz.data.geography",
            "land_sea_mask_source": source,
            "orography_source": "analytic Gaussian ridges and plateaus (approximate, not real terrain)",
        },
    )
