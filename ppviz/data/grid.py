"""Regular latitude/longitude grids: the 0.25 deg fine grid and its exact 1 deg coarse grid.

Conventions
-----------
- Grid points sit on multiples of the resolution, like ERA5 (45.0, 45.25, ...), so real ERA5
  subsets align with our grid without interpolation.
- Latitude is ascending (south to north) everywhere in ppviz; readers normalise to this.
- The coarse grid is an exact ``factor x factor`` block aggregation of the fine grid, using an
  area-weighted (cos latitude) mean. Coarse cell centres are the block centres, so a 1 deg cell
  built from fine points 45.0..45.75 is centred at 45.375.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import xarray as xr

from ppviz.constants import EARTH_RADIUS_KM, FINE_RES_DEG

COARSE_FACTOR = 4


def grid_spacing_km(lat) -> float | None:
    """Spacing (km, along a meridian) of a regular latitude coordinate in degrees; None if irregular."""
    d = np.diff(np.asarray(lat, dtype=np.float64))
    if d.size == 0 or not np.allclose(d, d[0], rtol=1e-6, atol=1e-9) or d[0] == 0:
        return None
    return float(np.deg2rad(abs(d[0])) * EARTH_RADIUS_KM)

@dataclass(frozen=True)
class Grid:
    """A regular lat/lon grid described by its first point, resolution and size.

    Parameters
    ----------
    lat_start, lon_start : float
        Centre of the south-west cell, degrees.
    res : float
        Spacing in degrees (both directions).
    nlat, nlon : int
        Number of points along latitude (ascending) and longitude.
    """

    lat_start: float
    lon_start: float
    res: float
    nlat: int
    nlon: int

    @property
    def lat(self) -> np.ndarray:
        """Cell-centre latitudes, ascending, degrees north."""
        return np.round(self.lat_start + self.res * np.arange(self.nlat), 6)

    @property
    def lon(self) -> np.ndarray:
        """Cell-centre longitudes, ascending, degrees east."""
        return np.round(self.lon_start + self.res * np.arange(self.nlon), 6)

    @property
    def shape(self) -> tuple[int, int]:
        return (self.nlat, self.nlon)

    @property
    def lat_edges(self) -> tuple[float, float]:
        """South and north cell edges of the whole grid."""
        return (float(self.lat[0] - self.res / 2), float(self.lat[-1] + self.res / 2))

    @property
    def lon_edges(self) -> tuple[float, float]:
        """West and east cell edges of the whole grid."""
        return (float(self.lon[0] - self.res / 2), float(self.lon[-1] + self.res / 2))

    @property
    def dx_km(self) -> float:
        """Nominal grid spacing in km (meridional; the spectral toolkit's ``dx_km``)."""
        return float(np.deg2rad(self.res) * EARTH_RADIUS_KM)

    def coarsen(self, factor: int = COARSE_FACTOR) -> "Grid":
        """The grid of ``factor x factor`` block means (block centres)."""
        if self.nlat % factor or self.nlon % factor:
            raise ValueError(
                f"grid {self.nlat}x{self.nlon} is not divisible into {factor}x{factor} blocks"
            )
        offset = self.res * (factor - 1) / 2
        return Grid(
            lat_start=round(self.lat_start + offset, 6),
            lon_start=round(self.lon_start + offset, 6),
            res=self.res * factor,
            nlat=self.nlat // factor,
            nlon=self.nlon // factor,
        )

    def coords(self) -> dict[str, xr.DataArray]:
        """CF coordinate variables for an xarray object on this grid."""
        return {
            "lat": xr.DataArray(
                self.lat.astype(np.float64),
                dims="lat",
                attrs={"units": "degrees_north", "standard_name": "latitude", "long_name": "latitude"},
            ),
            "lon": xr.DataArray(
                self.lon.astype(np.float64),
                dims="lon",
                attrs={"units": "degrees_east", "standard_name": "longitude", "long_name": "longitude"},
            ),
        }

    def index_of(self, lat: float, lon: float) -> tuple[int, int]:
        """Nearest (row, column) of a point."""
        return (
            int(round((lat - self.lat_start) / self.res)),
            int(round((lon - self.lon_start) / self.res)),
        )

    @classmethod
    def from_coords(cls, lat, lon) -> "Grid":
        """The grid of ascending, regular coordinate arrays; ValueError if they are not."""
        lat = np.asarray(lat, dtype=float)
        lon = np.asarray(lon, dtype=float)
        if lat.size < 2 or lon.size < 2:
            raise ValueError("a grid needs at least 2 points along lat and lon")
        res = float(lat[1] - lat[0])
        for name, c in (("lat", lat), ("lon", lon)):
            d = np.diff(c)
            if not np.allclose(d, res, atol=1e-6):
                raise ValueError(
                    f"{name} is not a regular ascending grid with spacing {res} deg "
                    f"(spacings range {d.min():g}..{d.max():g})"
                )
        return cls(float(lat[0]), float(lon[0]), res, lat.size, lon.size)


#: The fine 0.25 deg Europe domain: points 33.0..72.75N, 14.0W..45.75E (160 x 240). Its cells
#: cover 32.875-72.875N, 14.125W-45.875E, i.e. at least 34-72N, 12W-44E; 40 x 60 coarse cells.
EUROPE = Grid(lat_start=33.0, lon_start=-14.0, res=FINE_RES_DEG, nlat=160, nlon=240)
EUROPE_COARSE = EUROPE.coarsen(COARSE_FACTOR)


def area_weights(lat) -> np.ndarray:
    """Relative cell areas on a regular grid: cos(latitude)."""
    return np.cos(np.deg2rad(np.asarray(lat, dtype=float)))


def coarsen_blocks(field: np.ndarray, lat, factor: int = COARSE_FACTOR) -> np.ndarray:
    """Area-weighted mean over ``factor x factor`` blocks of the last two axes.

    Parameters
    ----------
    field : array, shape (..., nlat, nlon)
        Fine field; nlat and nlon must be multiples of ``factor``.
    lat : array, shape (nlat,)
        Fine latitudes (degrees), for cos(lat) weights.

    Returns
    -------
    array, shape (..., nlat // factor, nlon // factor)
        Block means, weighted by cell area; NaN propagates.
    """
    field = np.asarray(field)
    *lead, ny, nx = field.shape
    if ny % factor or nx % factor:
        raise ValueError(f"field {ny}x{nx} is not divisible into {factor}x{factor} blocks")
    w = area_weights(lat).reshape(ny // factor, factor, 1)
    blocks = field.reshape(*lead, ny // factor, factor, nx // factor, factor)
    num = (blocks * w[..., None]).sum(axis=(-3, -1))
    den = w.sum(axis=-2)[..., 0] * factor  # shape (ny // factor,)
    return (num / den[:, None]).astype(field.dtype, copy=False)


def coarsen_dataset(ds: xr.Dataset, factor: int = COARSE_FACTOR) -> xr.Dataset:
    """Coarsen every (..., lat, lon) variable of a canonical dataset to block means."""
    grid = Grid.from_coords(ds.lat.values, ds.lon.values)
    coarse = grid.coarsen(factor)
    out = xr.Dataset(coords={**{k: v for k, v in ds.coords.items() if k not in ("lat", "lon")}, **coarse.coords()})
    for name, da in ds.data_vars.items():
        if da.dims[-2:] != ("lat", "lon"):
            continue
        data = coarsen_blocks(da.values, ds.lat.values, factor)
        out[name] = (da.dims, data, dict(da.attrs))
    out.attrs = dict(ds.attrs)
    out.attrs["coarsened"] = f"area-weighted {factor}x{factor} block mean of the {grid.res} deg grid"
    return out
