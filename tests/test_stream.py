"""Streaming training data (ppviz.training.stream) and ARCO-ERA5-layout stores read as they are.

The ARCO store is made here from the real ERA5 sample (tp in m, latitude descending, longitude
0..360) with a western strip at 352..359.75 deg so that the grid crosses longitude 0 as Europe
does; its vimd (kg m-2 per hour) is synthesised from tp. Training runs through the CLI, with
DataLoader workers, from that store and from a canonical zarr.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import xarray as xr

from ppviz.cli import main
from ppviz.data.canonical import write_dataset
from ppviz.data.grid import Grid
from ppviz.data.source import load_dataset
from ppviz.diffusion.downscaler import static_channels
from ppviz.training.stream import CropSource, CropStream, read_window, sample_fields, stream_batches

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def sample(era5_sample) -> Path:
    return era5_sample


def _arco_from_sample(sample: Path, path: Path) -> Path:
    """ARCO layout: lat 55..45.25 descending (40), lon 352..359.75 + 0..9.75 (72), tp in m, vimd
    in kg m-2; two real days (48 hours). The western strip mirrors the real 0..8 deg columns."""
    days = [xr.open_dataset(sample / f"ERA5_{d}_tp.nc") for d in ("2020-01-01", "2022-08-31")]
    tp = xr.concat([d.tp for d in days], "time").sel(latitude=slice(55.0, 45.25), longitude=slice(0.0, 9.75))
    m = np.clip(tp.values, 0, None)  # (48, 40, 40), m
    west = m[:, :, 1:33][:, :, ::-1]  # 32 columns for 352..359.75
    lon = np.concatenate([np.arange(0.0, 10.0, 0.25), np.arange(352.0, 360.0, 0.25)])
    data = np.concatenate([m, west], axis=2)
    vimd = -1000.0 * data + 0.05 * np.sin(np.arange(lon.size) / 5.0)[None, None, :]  # kg m-2 (per hour)
    ds = xr.Dataset(
        {"total_precipitation": (("time", "latitude", "longitude"), data.astype(np.float32), {"units": "m"}),
         "vertically_integrated_moisture_divergence": (("time", "latitude", "longitude"),
                                                       vimd.astype(np.float32), {"units": "kg m**-2"})},
        coords={"time": tp.time.values, "latitude": tp.latitude.values.astype(np.float64), "longitude": lon},
    )
    ds.to_zarr(path, mode="w", zarr_format=2)
    return path


@pytest.fixture(scope="module")
def arco(sample, tmp_path_factory) -> Path:
    return _arco_from_sample(sample, tmp_path_factory.mktemp("arco") / "era5-arco.zarr")


def test_arco_store_is_read_as_canonical(arco, sample):
    ds = load_dataset(arco)
    assert dict(ds.sizes) == {"time": 48, "lat": 40, "lon": 72}
    assert np.all(np.diff(ds.lat.values) > 0) and ds.lat.values[0] == 45.25
    np.testing.assert_allclose(ds.lon.values[[0, 31, 32, -1]], [-8.0, -0.25, 0.0, 9.75])
    raw = xr.open_dataset(sample / "ERA5_2020-01-01_tp.nc").tp  # m, latitude descending
    want = 1000.0 * np.clip(raw.sel(latitude=45.25, longitude=5.0).values, 0, None)
    np.testing.assert_allclose(ds.tp.sel(lat=45.25, lon=5.0).values[:24], want, rtol=1e-5, atol=1e-6)
    # the western strip: 358 deg (wrapped to -2) holds the real column at +2 deg
    np.testing.assert_allclose(ds.tp.sel(lon=-2.0).values, ds.tp.sel(lon=2.0).values)
    np.testing.assert_allclose(ds.vimd.values, -ds.tp.values + 0.05 * np.sin(
        np.concatenate([np.arange(40, 72), np.arange(40)]) / 5.0)[None, None, :], atol=1e-4)
    assert ds.tp.attrs["units"] == "mm h-1" and "ARCO" in ds.attrs["source"]


def _source(data, ds, times, scale=1.0):
    grid = Grid.from_coords(ds.lat.values, ds.lon.values)
    return CropSource(str(data), times, grid, static_channels(grid), lambda tp, vimd: scale * tp - vimd)


def test_stream_batch_is_the_crop_of_the_data(arco):
    ds = load_dataset(arco)
    times = np.arange(0, 48, 2)
    src = _source(arco, ds, times)
    stream = CropStream(src, crop=16, batch_size=3, factor=4, seed=5)
    fine, coarse, stat = stream.batch(7)
    assert fine.shape == (3, 16, 16) and coarse.shape == (3, 4, 4) and stat.shape == (3, 6, 16, 16)
    tp, vimd = ds.tp.values, ds.vimd.values
    for b, (t, i, j) in enumerate(stream.picks(7)):
        assert t in times and i % 4 == 0 and j % 4 == 0
        np.testing.assert_allclose(fine[b].numpy(), (tp - vimd)[t, i : i + 16, j : j + 16], rtol=1e-6)
        np.testing.assert_allclose(stat[b].numpy(), src.static[:, i : i + 16, j : j + 16])
    # same step, same batch; the two ranks of world 2 take samples 0, 2 and 1
    np.testing.assert_array_equal(CropStream(src, 16, 3, 4, 5).batch(7)[0], fine)
    r0 = CropStream(src, 16, 3, 4, 5, rank=0, world=2).batch(7)[0]
    r1 = CropStream(src, 16, 3, 4, 5, rank=1, world=2).batch(7)[0]
    np.testing.assert_array_equal(torch.cat([r0[:1], r1[:1], r0[1:]]), fine)


def test_stream_workers_keep_step_order_and_skip_heldout(arco, tmp_path):
    ds = load_dataset(arco).load()
    held = np.arange(1, 48, 3)
    bad = ds.copy(deep=True)
    bad["tp"][dict(time=held)] = np.nan  # any read of a held-out hour would raise
    path = write_dataset(bad, tmp_path / "holes.zarr")
    train = np.setdiff1d(np.arange(48), held)
    stream = CropStream(_source(path, bad, train), crop=16, batch_size=2, factor=4, seed=1, start_step=10)
    it = stream_batches(stream, workers=2)
    got = [next(it)[0] for _ in range(5)]
    del it
    for k, g in enumerate(got):
        np.testing.assert_array_equal(g, stream.batch(10 + k)[0])
    with pytest.raises(ValueError, match="NaN or infinite tp/vimd at 2020-01-01T01"):
        read_window(_source(path, bad, train), 1, 0, 0, 4, 4)
    assert sample_fields(_source(path, bad, train), 8).shape == (8, 40, 72)


def _train(capsys, data, out, *extra):
    code = main(["train", "diffusion", "--data", str(data), "--out", str(out), "--steps", "6", "--batch", "2",
                 "--crop", "16", "--base-channels", "8", "--channel-mult", "1,2", "--eval-dates", "0",
                 "--workers", "1", *extra])
    assert code == 0, capsys.readouterr().err
    state = out.parent / f".{out.name}.train"
    log = [json.loads(x) for x in (state / "train_log.jsonl").read_text().splitlines()]
    assert log[-1]["step"] == 6 and np.isfinite(log[-1]["loss"])
    assert (out / "model.safetensors").is_file()
    return json.loads((state / "train_config.json").read_text()), log


def test_train_diffusion_from_arco_store(arco, tmp_path, capsys):
    cfg, log = _train(capsys, arco, tmp_path / "from-arco")
    assert cfg["data"]["times"] == 38  # 48 hours, 5 held out at the end of each day (split_times)


def test_train_diffusion_from_canonical_zarr_and_memory_loader(arco, tmp_path, capsys):
    canon = write_dataset(load_dataset(arco).load(), tmp_path / "canonical.zarr")
    cfg_s, _ = _train(capsys, canon, tmp_path / "stream")
    cfg_m, _ = _train(capsys, canon, tmp_path / "memory", "--loader", "memory")
    assert cfg_s["data"]["times"] == cfg_m["data"]["times"] == 38
    # both estimate sigma_data from whole training hours of the same data
    assert cfg_s["model_config"]["sigma_data"] == pytest.approx(cfg_m["model_config"]["sigma_data"], rel=0.5)


def test_data_commands_read_the_arco_store_as_it_is(arco, tmp_path, capsys):
    assert main(["data", "info", str(arco)]) == 0
    out = capsys.readouterr().out
    assert "ARCO" in out and "40 x 72 points, lat 45.25..55, lon -8..9.75" in out and "mm h-1" in out
    enc = tmp_path / "enc.nc"
    assert main(["encode", "--data", str(arco), "--start", "2020-01-01T05", "--end", "2020-01-01T06",
                 "--out", str(enc)]) == 0, capsys.readouterr().err
    got = xr.open_dataset(enc)
    assert got.sizes["time"] == 2 and got.sizes["lon"] == 72
    assert main(["gibbs", "--data", str(arco), "--time", "2022-08-31T12", "--region", "46,54,-7,9",
                 "--out", str(tmp_path / "g.json")]) == 0, capsys.readouterr().err


def test_pp_cell_pool_from_hours_matches_the_loaded_data(arco):
    from ppviz.training.pp import CellPool

    ds = load_dataset(arco)
    hours = np.array([3, 0, 40, 17])
    pool = CellPool.from_hours("arco", arco, hours, workers=2)
    ref = CellPool.from_dataset("arco", ds, hours)
    np.testing.assert_array_equal(pool.tp, ref.tp)
    np.testing.assert_array_equal(pool.vimd, ref.vimd)
    assert len(pool) == 4 * 40 * 72


def test_train_pp_from_arco_store(arco, tmp_path, capsys):
    out = tmp_path / "pp-arco"
    assert main(["train", "pp", "--data", str(arco), "--out", str(out), "--steps", "60", "--batch", "256",
                 "--hidden", "8", "--depth", "1"]) == 0, capsys.readouterr().err
    text = capsys.readouterr().out
    assert "held-out" in text and (out / "model.safetensors").is_file()
    assert "era5-arco.zarr (ERA5 (ARCO-ERA5 zarr" in (out / "MODEL_CARD.md").read_text()


def test_stream_training_resumes_bit_for_bit(arco, tmp_path):
    from ppviz.diffusion.tiny import tiny_downscaler
    from ppviz.training.diffusion_loop import DiffusionTrainConfig, train_diffusion_stream

    ds = load_dataset(arco)
    src = _source(arco, ds, np.arange(0, 48, 2), scale=0.5)
    cfg = tiny_downscaler().config
    full = DiffusionTrainConfig(crop=16, batch_size=2, steps=4, lr_warmup_steps=1, ema_halflife_steps=2, seed=3)
    a = train_diffusion_stream(src, full, tmp_path / "a", model_config=cfg, progress=False, workers=1)
    half = DiffusionTrainConfig(**{**full.to_dict(), "steps": 2})
    train_diffusion_stream(src, half, tmp_path / "b", model_config=cfg, progress=False, workers=0)
    b = train_diffusion_stream(src, full, tmp_path / "b", model_config=cfg, progress=False, resume=True, workers=2)
    for (k, x), y in zip(a.state_dict().items(), b.state_dict().values()):
        assert torch.equal(x, y), k
    steps = [json.loads(x)["step"] for x in (tmp_path / "b" / "train_log.jsonl").read_text().splitlines()]
    assert steps == [2, 4]  # log lines at the end of each run (log_every 50)


def test_bad_arco_store_and_bad_training_hours_are_refused(arco, tmp_path, capsys):
    raw = xr.open_zarr(arco)
    gap = raw.isel(longitude=[k for k in range(raw.sizes["longitude"]) if k != 10])
    for v in gap.variables.values():
        v.encoding = {}
    gap.to_zarr(tmp_path / "gap.zarr", zarr_format=2)
    assert main(["data", "info", str(tmp_path / "gap.zarr")]) == 2
    err = capsys.readouterr().err
    assert "do not form a regular grid" in err and err.count("\n") == 1
    ds = load_dataset(arco).load()
    ds["vimd"][dict(time=4)] = np.inf  # a training hour (held out: the last 5 of each day)
    bad = write_dataset(ds, tmp_path / "inf.zarr")
    assert main(["train", "diffusion", "--data", str(bad), "--out", str(tmp_path / "x"), "--steps", "40",
                 "--batch", "4", "--crop", "16", "--base-channels", "8", "--channel-mult", "1,2",
                 "--eval-dates", "0", "--workers", "1"]) == 2
    err = capsys.readouterr().err
    assert "NaN or infinite tp/vimd at 2020-01-01T04" in err and err.count("\n") == 1
    assert not (tmp_path / "x").exists()
    # the same from a DataLoader worker: one line, not the worker's traceback
    it = stream_batches(CropStream(_source(bad, ds, np.array([4])), 16, 2, 4, 0), workers=1)
    with pytest.raises(ValueError, match=r"^the training data have NaN or infinite tp/vimd at 2020-01-01T04[^\n]*$"):
        next(it)


def test_window_reader_serves_a_short_span_from_memory_with_the_same_values(arco, tmp_path):
    """A span within the cache budget is decoded once per chunk of hours; its windows equal the
    uncached reads and the canonical view (ARCO: descending latitude, longitude across 0)."""
    from ppviz.data.source import open_any
    from ppviz.data.windows import WindowReader

    canon = write_dataset(load_dataset(arco).load(), tmp_path / "canonical.zarr")
    rng = np.random.default_rng(0)
    for path in (arco, canon):
        view = open_any(path)
        tp, vimd = view.tp.values, view.vimd.values
        fast, slow = WindowReader(path, view, cache_mb=64), WindowReader(path, view, cache_mb=0)
        assert fast.cached and not slow.cached
        assert not WindowReader(path, view, cache_mb=1).cached  # 48 h x 40 x 72 x 2 fields x 4 B = 1.05 MiB
        for _ in range(12):
            t, i, j = int(rng.integers(48)), int(rng.integers(0, 40 - 8)), int(rng.integers(0, 72 - 20))
            a, b = fast.read(t, i, j, 8, 20), slow.read(t, i, j, 8, 20)
            for x, y, ref in zip(a, b, (tp, vimd)):
                np.testing.assert_array_equal(x, y)
                np.testing.assert_allclose(x, ref[t, i : i + 8, j : j + 20], rtol=1e-6, atol=1e-7)
                assert x.flags.c_contiguous and x.dtype == np.float32
        assert len(fast._blocks) >= 1
