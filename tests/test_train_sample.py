"""Training on the shipped ERA5 sample (41 x 41 fine cells: not whole 4 x 4 blocks).

``ppviz train diffusion`` trains and scores on the largest block-aligned part of the data, the
region inference uses for it (:func:`ppviz.data.regions.data_extent`): 40 x 40 cells here. Both
loaders write a checkpoint that loads and samples; crops that do not fit are refused naming the
sizes. Uses only ``assets/era5-sample.nc`` (shipped), no ``../shared``.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from ppviz.cli import main
from ppviz.data.canonical import write_dataset
from ppviz.data.regions import data_extent
from ppviz.data.source import load_dataset
from ppviz.diffusion.downscaler import static_channels
from ppviz.resources import ASSETS_DIR
from ppviz.training.stream import CropSource, CropStream

pytestmark = pytest.mark.usefixtures("one_thread")

SHIPPED = ASSETS_DIR / "era5-sample.nc"
TRIMMED = "40 x 40 cells, lat 45..54.75, lon 0..9.75 (region sample)"


def _train(data, out, *extra):
    return main(["train", "diffusion", "--data", str(data), "--out", str(out), "--steps", "4", "--batch", "2",
                 "--crop", "16", "--base-channels", "8", "--channel-mult", "1,2", "--eval-dates", "1",
                 "--eval-members", "2", "--workers", "0", *extra])


@pytest.mark.parametrize("loader", ["stream", "memory"])
def test_train_on_the_shipped_sample_uses_its_block_aligned_part(loader, tmp_path, capsys):
    from ppviz.data.regions import Region
    from ppviz.pipeline import Models, downscale_time

    assert SHIPPED.is_file()
    ds = load_dataset(SHIPPED)
    assert (ds.sizes["lat"], ds.sizes["lon"]) == (41, 41)
    out = tmp_path / f"edm-{loader}"
    # the stream loader also scores snapshots, by default on the same region (no --eval-region)
    snap = ["--snapshot-every", "4", "--snapshot-hours", "1"] if loader == "stream" else []
    code = _train(SHIPPED, out, "--loader", loader, *snap)
    cap = capsys.readouterr()
    assert code == 0, cap.err
    # said in the log and in the card
    assert "the data's 41 x 41 cells do not all lie in whole 4 x 4 blocks" in cap.out
    assert TRIMMED in cap.out and "held-out: 1 dates, 2 members, 18 Heun steps, region sample" in cap.out
    assert TRIMMED in (out / "MODEL_CARD.md").read_text()
    config = json.loads((out / "config.json").read_text())
    assert config["extra"]["grid"] == {"res": 0.25, "factor": 4, "cells": [40, 40], "region": "sample"}
    state = json.loads((tmp_path / f".edm-{loader}.train" / "train_config.json").read_text())
    assert state["data"]["grid"]["nlat"] == state["data"]["grid"]["nlon"] == 40
    assert state["data"]["grid"]["lat_start"] == 45.0 and state["data"]["grid"]["lon_start"] == 0.0
    if snap:
        log = (tmp_path / f".edm-{loader}.train" / "train_log.jsonl").read_text().splitlines()
        snaps = [r for r in map(json.loads, log) if r.get("event") == "snapshot"]
        assert [r["step"] for r in snaps] == [4] and snaps[0]["scores"]["region"] == "sample"
    # the checkpoint loads and samples on the sample's region
    models = Models.load(str(out), device="cpu")
    region = Region.named("sample")
    ens = downscale_time(models, ds, ds.time.values[30], region, members=2, steps=4, seed=0)
    assert ens.tp_members.shape[-2:] == (40, 40) and ens.tp_members.shape[0] == 2
    assert np.isfinite(ens.tp_members).all() and (ens.tp_members >= 0).all()


def test_stream_crops_of_a_trimmed_grid_come_from_its_place_in_the_data(tmp_path):
    # a dataset starting at 45.25N, 0.5E: its block-aligned part starts 3 rows and 2 columns in
    ds = load_dataset(SHIPPED).isel(lat=slice(1, None), lon=slice(2, None)).load()
    path = write_dataset(ds, tmp_path / "shifted.nc")
    extent = data_extent(ds)
    grid = extent.fine_grid
    assert (grid.lat[0], grid.lon[0], grid.shape) == (46.0, 1.0, (36, 36))
    sub = extent.subset(ds)
    src = CropSource(str(path), np.arange(0, 40), grid, static_channels(grid), lambda tp, vimd: tp - vimd,
                     origin=(3, 2))
    stream = CropStream(src, crop=16, batch_size=3, factor=4, seed=2)
    fine, _, _ = stream.batch(5)
    want = (sub.tp - sub.vimd).values
    for b, (t, i, j) in enumerate(stream.picks(5)):
        np.testing.assert_allclose(fine[b].numpy(), want[t, i : i + 16, j : j + 16], rtol=1e-6)


def test_crops_that_do_not_fit_the_trimmed_grid_are_refused(tmp_path, capsys):
    assert _train(SHIPPED, tmp_path / "big", "--crop", "48") == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and (
        "crop 48 does not fit the training grid 40 x 40 (the largest block-aligned part of the data's "
        "41 x 41 cells); the largest crop allowed is 40") in err
    assert _train(SHIPPED, tmp_path / "odd", "--crop", "18") == 2
    err = capsys.readouterr().err
    assert "crop 18 must be a multiple of the block factor 4 and of 2 (U-Net)" in err and "up to 40" in err
    assert not (tmp_path / "big").exists() and not (tmp_path / "odd").exists()


def test_max_minutes_writes_the_checkpoint_of_the_step_reached(tmp_path, capsys):
    out = tmp_path / "edm-cut"
    # a limit of 0.6 ms: the first step is past it (the stream loader's first batch takes longer)
    assert _train(SHIPPED, out, "--loader", "stream", "--steps", "40", "--max-minutes", "0.00001") == 0
    cap = capsys.readouterr()
    assert "time limit: stopped at step 1 of 40 (--resume continues)" in cap.out
    training = json.loads((out / "config.json").read_text())["extra"]["training"]
    assert training["steps"] == 1 and training["planned_steps"] == 40 and training["stopped"] == "time limit"
    for bad in ("0", "-1", "nan"):
        assert _train(SHIPPED, tmp_path / f"bad{bad}", "--max-minutes", bad) == 2
        assert f"--max-minutes {float(bad)} must be a number of minutes > 0" in capsys.readouterr().err
    card = (out / "MODEL_CARD.md").read_text()
    assert "stopped by the time limit (--max-minutes) at step 1 of the 40 planned" in card
    assert "on the CPU (" in card  # the hardware it trained on, not a fixed text
