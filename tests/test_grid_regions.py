import numpy as np
import pytest
import xarray as xr

from ppviz.data.grid import EUROPE, EUROPE_COARSE, Grid, coarsen_blocks, coarsen_dataset
from ppviz.data.regions import NAMED_REGIONS, Region, list_regions, slugify


def test_europe_domain_covers_required_box():
    (s, n), (w, e) = EUROPE.lat_edges, EUROPE.lon_edges
    assert s <= 34 and n >= 72 and w <= -12 and e >= 44
    assert EUROPE.res == 0.25 and EUROPE_COARSE.res == 1.0
    assert EUROPE_COARSE.shape == (EUROPE.nlat // 4, EUROPE.nlon // 4)
    # grid points on ERA5's multiples of 0.25
    assert np.allclose(EUROPE.lat * 4, np.round(EUROPE.lat * 4))


def test_coarse_centres_are_block_centres():
    assert EUROPE_COARSE.lat[0] == pytest.approx(EUROPE.lat[:4].mean())
    assert EUROPE_COARSE.lon[-1] == pytest.approx(EUROPE.lon[-4:].mean())


def test_coarsen_is_area_weighted_block_mean_bruteforce():
    rng = np.random.default_rng(0)
    g = Grid(44.0, 0.0, 0.25, 8, 12)
    f = rng.random((3, 8, 12)).astype(np.float64)
    got = coarsen_blocks(f, g.lat)
    w = np.cos(np.deg2rad(g.lat))
    for t in range(3):
        for i in range(2):
            for j in range(3):
                blk = f[t, 4 * i : 4 * i + 4, 4 * j : 4 * j + 4]
                ww = np.repeat(w[4 * i : 4 * i + 4, None], 4, axis=1)
                assert got[t, i, j] == pytest.approx((blk * ww).sum() / ww.sum())
    # a constant stays constant; NaN propagates to its block only
    assert np.allclose(coarsen_blocks(np.full((8, 12), 2.5), g.lat), 2.5)
    f[0, 0, 0] = np.nan
    c = coarsen_blocks(f, g.lat)
    assert np.isnan(c[0, 0, 0]) and np.isfinite(c[0, 1:, :]).all()


def test_coarsen_rejects_indivisible():
    with pytest.raises(ValueError, match="not divisible"):
        coarsen_blocks(np.zeros((6, 8)), np.arange(6))


def test_coarsen_dataset_keeps_attrs_and_coords():
    g = Grid(44.0, 0.0, 0.25, 8, 8)
    ds = xr.Dataset({"tp": (("time", "lat", "lon"), np.ones((2, 8, 8), np.float32), {"units": "mm h-1"})},
                    coords={"time": [0, 1], **g.coords()})
    c = coarsen_dataset(ds)
    assert c.tp.shape == (2, 2, 2) and c.tp.attrs["units"] == "mm h-1"
    assert np.allclose(c.lat, g.coarsen().lat)


def test_grid_from_coords_rejects_irregular():
    with pytest.raises(ValueError, match="not a regular ascending grid"):
        Grid.from_coords([0, 0.25, 0.75], [0, 0.25, 0.5])


def test_at_least_ten_named_regions_plus_domain():
    names = set(NAMED_REGIONS)
    for n in ["british-isles", "iberia", "france", "benelux-rhine", "alps", "italy", "central-europe",
              "scandinavia", "balkans", "eastern-europe", "europe"]:
        assert n in names
    for r in list_regions():
        # whole coarse cells, at least 4 x 4 of them
        assert r.i0 % 4 == 0 and r.i1 % 4 == 0 and r.j0 % 4 == 0 and r.j1 % 4 == 0
        assert r.coarse_grid.nlat >= 4 and r.coarse_grid.nlon >= 4
        assert 0 <= r.i0 < r.i1 <= EUROPE.nlat and 0 <= r.j0 < r.j1 <= EUROPE.nlon


@pytest.mark.parametrize("text", ["Alps", "ALPS", "alps", " British Isles ", "british_isles"])
def test_names_are_case_insensitive_slugs(text):
    assert Region.parse(text).name in ("alps", "british-isles")


def test_custom_box_snaps_to_coarse_cells():
    r = Region.parse("45,55,0,10")
    assert r.coarse_grid.shape == (10, 10)
    assert r.fine_grid.lat[0] == 45.0 and r.fine_grid.lon[-1] == 9.75
    r2 = Region.parse("45.2,54.9,0.1,9.6")
    assert r2.bounds == r.bounds


@pytest.mark.parametrize(
    "text, fragment",
    [
        ("80,85,0,10", "outside the domain"),
        ("50,45,0,10", "inverted"),
        ("45,55,10,0", "inverted"),
        ("45,46,0,1", "at least 4 x 4"),
        ("atlantis", "unknown region"),
        ("1,2,3", "four numbers"),
        ("a,b,c,d", "four numbers"),
        ("nan,50,0,10", "finite"),
    ],
)
def test_bad_regions_name_the_problem_and_allowed_range(text, fragment):
    with pytest.raises(ValueError, match=fragment) as err:
        Region.parse(text)
    msg = str(err.value)
    if "unknown" in fragment:
        assert "alps" in msg and "lat0,lat1,lon0,lon1" in msg
    elif "four numbers" not in fragment and "finite" not in fragment:
        assert "allowed: lat" in msg


def test_subset_matches_index_ranges():
    g = EUROPE
    da = xr.DataArray(np.arange(g.nlat * g.nlon).reshape(g.shape), dims=("lat", "lon"), coords=g.coords())
    r = Region.parse("alps")
    sub = r.subset(da)
    assert sub.shape == (r.i1 - r.i0, r.j1 - r.j0)
    assert np.array_equal(sub.values, da.values[r.i0 : r.i1, r.j0 : r.j1])


def test_slugify():
    assert slugify("Benelux & Rhine") == "benelux-rhine"


def test_subset_refuses_data_that_do_not_cover_the_region():
    g = Grid(45.0, 0.0, 0.25, 41, 41)  # the ERA5 sample box
    da = xr.DataArray(np.zeros(g.shape), dims=("lat", "lon"), coords=g.coords())
    assert Region.parse("sample").subset(da).shape == (40, 40)
    with pytest.raises(ValueError, match="does not contain region alps"):
        Region.parse("alps").subset(da)
