"""Named European subregions and custom boxes, snapped to whole 1 deg (coarse) cells.

A region is a box in degrees. Each side is snapped to the nearest edge of a coarse cell, so that its fine (0.25 deg) part is an exact union of 4 x 4 blocks and coarsening inside the
region equals the region of the coarsened field.

Names are case-insensitive slugs (``alps``, ``british-isles``); ``Region.parse`` also takes a custom
box ``lat0,lat1,lon0,lon1``.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

import xarray as xr

from ppviz.data.grid import COARSE_FACTOR, EUROPE, Grid

MIN_COARSE_CELLS = 4

#: (title, lat0, lat1, lon0, lon1) in degrees; boxes are snapped to coarse cells on use.
NAMED_REGIONS: dict[str, tuple[str, float, float, float, float]] = {
    "europe": ("Europe (whole domain)", -90.0, 90.0, -180.0, 180.0),
    "british-isles": ("British Isles", 49.5, 61.0, -11.0, 2.5),
    "iberia": ("Iberia", 35.5, 44.0, -10.0, 4.5),
    "france": ("France", 42.0, 51.5, -5.0, 8.5),
    "benelux-rhine": ("Benelux and Rhine", 49.0, 54.0, 2.5, 10.0),
    "alps": ("Alps", 43.5, 48.5, 5.0, 16.5),
    "italy": ("Italy", 36.5, 47.5, 6.5, 19.0),
    "central-europe": ("Central Europe", 46.0, 55.0, 8.0, 20.0),
    "scandinavia": ("Scandinavia", 55.0, 71.0, 4.0, 31.0),
    "balkans": ("Balkans", 39.0, 47.0, 13.0, 30.0),
    "eastern-europe": ("Eastern Europe", 45.0, 56.0, 20.0, 40.0),
    "sample": ("Sample box (45-55N, 0-10E)", 45.0, 55.0, 0.0, 10.0),  # the ERA5 sample's extent; any data
}


@dataclass(frozen=True)
class Region:
    """A box on a fine grid, as whole coarse cells.

    Attributes
    ----------
    name : str
        Slug (``alps``) or ``custom``.
    title : str
        Human-readable name.
    i0, i1, j0, j1 : int
        Fine-grid index ranges ``[i0, i1)`` along lat and ``[j0, j1)`` along lon; multiples of the
        coarse factor.
    grid : Grid
        The fine grid the indices refer to.
    """

    name: str
    title: str
    i0: int
    i1: int
    j0: int
    j1: int
    grid: Grid = EUROPE
    factor: int = COARSE_FACTOR

    # ----- construction -------------------------------------------------------------------------
    @classmethod
    def from_box(
        cls,
        lat0: float,
        lat1: float,
        lon0: float,
        lon1: float,
        *,
        grid: Grid = EUROPE,
        name: str = "custom",
        title: str | None = None,
        clip: bool = False,
        factor: int = COARSE_FACTOR,
    ) -> "Region":
        """Snap the box ``lat0..lat1, lon0..lon1`` (degrees) outwards to whole coarse cells.

        Raises ValueError, naming the problem and the allowed range, if the box is inverted, lies
        (partly, unless ``clip``) outside the grid, or covers fewer than 4 x 4 coarse cells.
        """
        values = (lat0, lat1, lon0, lon1)
        if any(not math.isfinite(v) for v in values):
            raise ValueError(f"region bounds must be finite numbers, got {values}")
        (la0, la1), (lo0, lo1) = grid.lat_edges, grid.lon_edges
        allowed = f"allowed: lat {la0:g}..{la1:g}, lon {lo0:g}..{lo1:g}"
        if lat0 >= lat1:
            raise ValueError(f"region is inverted: lat0={lat0:g} must be south of lat1={lat1:g} ({allowed})")
        if lon0 >= lon1:
            raise ValueError(f"region is inverted: lon0={lon0:g} must be west of lon1={lon1:g} ({allowed})")
        if clip:
            lat0, lat1, lon0, lon1 = max(lat0, la0), min(lat1, la1), max(lon0, lo0), min(lon1, lo1)
            if lat0 >= lat1 or lon0 >= lon1:
                raise ValueError(f"region {values} does not overlap the domain ({allowed})")
        elif lat0 < la0 - 1e-9 or lat1 > la1 + 1e-9 or lon0 < lo0 - 1e-9 or lon1 > lo1 + 1e-9:
            raise ValueError(
                f"region lat {lat0:g}..{lat1:g}, lon {lon0:g}..{lon1:g} lies outside the domain ({allowed})"
            )
        block = grid.res * factor
        # Coarse cell k covers [edge0 + k*block, edge0 + (k+1)*block); snap each side to the
        # nearest coarse edge (half-way rounds outwards), so 45..55N gives ten 1 deg cells.
        ci0 = math.floor((lat0 - la0) / block + 0.5 - 1e-9)
        ci1 = math.ceil((lat1 - la0) / block - 0.5 + 1e-9)
        cj0 = math.floor((lon0 - lo0) / block + 0.5 - 1e-9)
        cj1 = math.ceil((lon1 - lo0) / block - 0.5 + 1e-9)
        ny, nx = ci1 - ci0, cj1 - cj0
        if ny < MIN_COARSE_CELLS or nx < MIN_COARSE_CELLS:
            raise ValueError(
                f"region lat {lat0:g}..{lat1:g}, lon {lon0:g}..{lon1:g} covers only {ny} x {nx} coarse "
                f"cells of {block:g} deg; at least {MIN_COARSE_CELLS} x {MIN_COARSE_CELLS} are needed "
                f"(a box of at least {MIN_COARSE_CELLS * block:g} x {MIN_COARSE_CELLS * block:g} deg; {allowed})"
            )
        return cls(
            name=name,
            title=title or f"{lat0:g}-{lat1:g}N, {lon0:g}-{lon1:g}E",
            i0=ci0 * factor,
            i1=ci1 * factor,
            j0=cj0 * factor,
            j1=cj1 * factor,
            grid=grid,
            factor=factor,
        )

    @classmethod
    def named(cls, name: str, grid: Grid = EUROPE) -> "Region":
        """A named region by case-insensitive slug; ValueError lists the names on a miss."""
        slug = slugify(name)
        if slug not in NAMED_REGIONS:
            raise ValueError(
                f"unknown region {name!r}; choose one of: {', '.join(NAMED_REGIONS)} "
                f"or a box 'lat0,lat1,lon0,lon1'"
            )
        title, lat0, lat1, lon0, lon1 = NAMED_REGIONS[slug]
        return cls.from_box(lat0, lat1, lon0, lon1, grid=grid, name=slug, title=title, clip=True)

    @classmethod
    def parse(cls, text: str, grid: Grid = EUROPE) -> "Region":
        """A region from a slug (``alps``) or a box ``lat0,lat1,lon0,lon1`` (degrees)."""
        text = str(text).strip()
        if "," in text:
            parts = [p.strip() for p in text.split(",")]
            try:
                values = [float(p) for p in parts]
            except ValueError:
                values = []
            if len(values) != 4:
                raise ValueError(
                    f"custom region {text!r} must be four numbers 'lat0,lat1,lon0,lon1' in degrees, "
                    f"e.g. '44,48,5,12'"
                )
            return cls.from_box(*values, grid=grid)
        return cls.named(text, grid=grid)

    # ----- geometry -----------------------------------------------------------------------------
    @property
    def fine_grid(self) -> Grid:
        """The fine grid restricted to this region."""
        return Grid(
            lat_start=float(self.grid.lat[self.i0]),
            lon_start=float(self.grid.lon[self.j0]),
            res=self.grid.res,
            nlat=self.i1 - self.i0,
            nlon=self.j1 - self.j0,
        )

    @property
    def coarse_grid(self) -> Grid:
        return self.fine_grid.coarsen(self.factor)

    @property
    def bounds(self) -> tuple[float, float, float, float]:
        """Cell-edge box (lat0, lat1, lon0, lon1) in degrees after snapping."""
        g = self.fine_grid
        return (*g.lat_edges, *g.lon_edges)

    @property
    def slug_or_box(self) -> str:
        """What to type on the command line to get this region back."""
        if self.name != "custom":
            return self.name
        return ",".join(f"{v:g}" for v in self.bounds)

    def subset(self, obj: xr.Dataset | xr.DataArray):
        """The part of a fine-grid (…, lat, lon) object inside the region, by coordinates.

        Raises ValueError if ``obj`` does not cover the whole region (e.g. a dataset over a smaller
        box), naming what the data cover.
        """
        g = self.fine_grid
        tol = g.res / 4
        out = obj.sel(
            lat=slice(g.lat[0] - tol, g.lat[-1] + tol), lon=slice(g.lon[0] - tol, g.lon[-1] + tol)
        )
        if (out.sizes.get("lat"), out.sizes.get("lon")) != g.shape:
            lat, lon = obj["lat"].values, obj["lon"].values
            raise ValueError(
                f"the data cover lat {lat.min():g}..{lat.max():g}, lon {lon.min():g}..{lon.max():g}, "
                f"which does not contain region {self.slug_or_box} (lat {g.lat[0]:g}..{g.lat[-1]:g}, "
                f"lon {g.lon[0]:g}..{g.lon[-1]:g}); choose a region inside the data"
            )
        return out


def data_extent(ds, grid: Grid = EUROPE) -> Region:
    """The largest region of whole coarse cells of ``grid`` inside the data ``ds`` (its lat/lon).

    Used wherever no region is given (the CLI without ``--region``, the app's choice for a
    dataset). A named region with exactly these bounds is returned by its name (``europe`` for
    the synthetic domain, ``sample`` for the ERA5 sample box). ValueError when the data hold
    fewer than 4 x 4 whole coarse cells of ``grid``.
    """
    lat, lon = ds["lat"].values, ds["lon"].values
    half = grid.res / 2
    block = grid.res * COARSE_FACTOR
    (la0, la1), (lo0, lo1) = grid.lat_edges, grid.lon_edges
    # whole coarse cells between the data's cell edges, clipped to the grid
    ci0 = math.ceil((max(float(lat.min()) - half, la0) - la0) / block - 1e-9)
    ci1 = math.floor((min(float(lat.max()) + half, la1) - la0) / block + 1e-9)
    cj0 = math.ceil((max(float(lon.min()) - half, lo0) - lo0) / block - 1e-9)
    cj1 = math.floor((min(float(lon.max()) + half, lo1) - lo0) / block + 1e-9)
    if ci1 - ci0 < MIN_COARSE_CELLS or cj1 - cj0 < MIN_COARSE_CELLS:
        raise ValueError(
            f"the data (lat {lat.min():g}..{lat.max():g}, lon {lon.min():g}..{lon.max():g}) hold only "
            f"{max(ci1 - ci0, 0)} x {max(cj1 - cj0, 0)} whole {block:g} deg cells of the grid; at least "
            f"{MIN_COARSE_CELLS} x {MIN_COARSE_CELLS} are needed"
        )
    box = (la0 + ci0 * block, la0 + ci1 * block, lo0 + cj0 * block, lo0 + cj1 * block)
    extent = Region.from_box(*box, grid=grid)
    for r in list_regions(grid):
        if r.bounds == extent.bounds:
            return r
    return extent


def regions_inside(ds, grid: Grid = EUROPE) -> list[Region]:
    """The named regions that lie wholly inside the data ``ds`` (what a page offers for it)."""
    try:
        ext = data_extent(ds, grid)
    except ValueError:
        return []
    return [r for r in list_regions(grid) if ext.i0 <= r.i0 and r.i1 <= ext.i1 and ext.j0 <= r.j0 and r.j1 <= ext.j1]


def slugify(name: str) -> str:
    """``'British Isles'`` -> ``'british-isles'``."""
    return re.sub(r"[^a-z0-9]+", "-", str(name).strip().lower()).strip("-")


def list_regions(grid: Grid = EUROPE) -> list[Region]:
    """Every named region on ``grid``."""
    return [Region.named(n, grid) for n in NAMED_REGIONS]
