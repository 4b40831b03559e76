"""Offline coastlines: found from ../shared, absent without files (with a message), never a download."""

import time

import numpy as np

from ppviz import maps
from ppviz.data import naturalearth


def test_coastlines_from_shared_natural_earth(natural_earth, monkeypatch):
    monkeypatch.setenv(maps.ENV, str(natural_earth))
    maps.map_features.cache_clear()
    f = maps.map_features((45.0, 55.0, 0.0, 10.0))
    assert f.available and "Natural Earth" in f.message
    lon, lat = f.lines["coastline"]
    ok = np.isfinite(lon)
    # clipped to the box (Channel and North Sea coasts lie inside 45-55N, 0-10E)
    assert ok.sum() > 50 and lon[ok].min() >= 0 - 1e-9 and lat[ok].max() <= 55 + 1e-9
    assert "borders" in f.lines


def test_no_files_no_network_still_answers_quickly(tmp_path, monkeypatch):
    monkeypatch.setenv(maps.ENV, str(tmp_path / "nowhere"))
    monkeypatch.setattr(naturalearth, "SHARED_NATURAL_EARTH", tmp_path / "also-nowhere")
    monkeypatch.delenv("CARTOPY_DATA_DIR", raising=False)
    import cartopy

    monkeypatch.setitem(cartopy.config, "pre_existing_data_dir", "")
    maps.map_features.cache_clear()
    t0 = time.perf_counter()
    f = maps.map_features((45.0, 55.0, 0.0, 10.0))
    assert time.perf_counter() - t0 < 2.0
    assert not f.available and "coastlines unavailable" in f.message and maps.ENV in f.message
    maps.map_features.cache_clear()


def test_broken_shapefile_gives_message_not_exception(tmp_path, monkeypatch):
    phys = tmp_path / "shapefiles" / "natural_earth" / "physical"
    phys.mkdir(parents=True)
    (phys / "ne_50m_coastline.shp").write_bytes(b"not a shapefile")
    monkeypatch.setenv(maps.ENV, str(tmp_path))
    maps.map_features.cache_clear()
    f = maps.map_features((45.0, 55.0, 0.0, 10.0))
    assert not f.available and "coastlines unavailable" in f.message
    maps.map_features.cache_clear()


def test_configure_cartopy_points_at_local_files(natural_earth, monkeypatch):
    import cartopy

    monkeypatch.setenv(maps.ENV, str(natural_earth))
    monkeypatch.setitem(cartopy.config, "pre_existing_data_dir", "")
    assert maps.configure_cartopy() == natural_earth
    assert cartopy.config["pre_existing_data_dir"] == str(natural_earth)
    # cartopy itself now finds the coastline without any download
    from cartopy.io import shapereader

    path = shapereader.natural_earth(resolution="110m", category="physical", name="coastline")
    assert str(natural_earth) in str(path)
