"""Snapshots with held-out scores during training, the run log as a timeline, promotion to a
checkpoint, and the bad inputs: a half-written snapshot, a log with a broken line."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from ppviz.checkpoints import load_checkpoint
from ppviz.cli import main
from ppviz.data.canonical import write_dataset
from ppviz.data.grid import Grid
from ppviz.data.synthetic import synthesize
from ppviz.training.snapshots import is_inside, list_snapshots, promote_snapshot, read_run_log, snapshot_dir

SCORES = {"crps_fair", "lsd_db", "p99_ratio", "wet_fraction", "wet_fraction_truth"}


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("snap")
    data = write_dataset(synthesize(days=1, seed=0, grid=Grid(45.0, 0.0, 0.25, 32, 32)), root / "small.zarr")
    code = main(["train", "diffusion", "--data", str(data), "--out", str(root / "ck"), "--state-dir",
                 str(root / "runs" / "r1"), "--steps", "4", "--batch", "2", "--crop", "16", "--base-channels", "8",
                 "--channel-mult", "1,2", "--eval-dates", "0", "--workers", "0", "--log-every", "1",
                 "--snapshot-every", "2", "--snapshot-hours", "2", "--eval-members", "2", "--eval-region",
                 "46,50,1,5", "--holdout", "0.25"])
    assert code == 0
    return root / "runs" / "r1"


def test_snapshots_and_scores_make_a_timeline(run):
    assert list_snapshots(run) == [2, 4]
    records, problems = read_run_log(run / "train_log.jsonl")
    assert problems == []
    assert [r["step"] for r in records if "loss" in r] == [1, 2, 3, 4]
    snaps = [r for r in records if r.get("event") == "snapshot"]
    assert [r["step"] for r in snaps] == [2, 4]
    for r in snaps:
        s = r["scores"]
        assert SCORES <= set(s) and all(np.isfinite(s[k]) for k in SCORES)
        assert s["crps_fair"] > 0 and s["lsd_db"] >= 0 and 0 <= s["wet_fraction"] <= 1
    # the same hours and seeds for every snapshot
    assert snaps[0]["scores"]["times"] == snaps[1]["scores"]["times"] and len(snaps[0]["scores"]["times"]) == 2
    ck = load_checkpoint(snapshot_dir(run, 4), kind="diffusion")
    assert ck.extra["snapshot_step"] == 4 and ck.extra["pp_checkpoint"]


def test_promote_registers_a_snapshot_with_its_card(run, tmp_path, capsys):
    out = tmp_path / "reg" / "edm-r1-step4"
    assert main(["checkpoints", "promote", str(run), "--step", "4", "--out", str(out)]) == 0
    ck = load_checkpoint(out, kind="diffusion")
    assert ck.extra["promoted_from"] == "r1@4"
    card = (out / "MODEL_CARD.md").read_text()
    assert "step 4" in card and "crps_fair" in card
    # bad inputs: one line, exit 2
    capsys.readouterr()
    assert main(["checkpoints", "promote", str(run), "--step", "3", "--out", str(tmp_path / "x")]) == 2
    assert "has no snapshot at step 3; snapshots: 2, 4" in capsys.readouterr().err
    assert main(["checkpoints", "promote", str(run), "--step", "4", "--out", str(out)]) == 2
    assert "exists" in capsys.readouterr().err


def test_half_written_snapshot_and_broken_log_line(run, tmp_path):
    import shutil

    copy = tmp_path / "r2"
    shutil.copytree(run, copy)
    half = snapshot_dir(copy, 6)
    shutil.copytree(snapshot_dir(copy, 4), half)
    w = half / "model.safetensors"
    w.write_bytes(w.read_bytes()[:100])  # cut short
    with pytest.raises(ValueError, match="snapshot step 6 of .* is incomplete or damaged"):
        promote_snapshot(copy, 6, tmp_path / "y")
    assert not (tmp_path / "y").exists()
    log = copy / "train_log.jsonl"
    with open(log, "a") as f:
        f.write('{"step": 5, "loss": 0.9')  # a line being written
    records, problems = read_run_log(log)
    assert len(records) == len(read_run_log(run / "train_log.jsonl")[0])  # nothing else lost
    assert problems == ["train_log.jsonl line 7 is not JSON (being written, or damaged); skipped"]


def test_is_inside_roots(tmp_path):
    root = tmp_path / "runs"
    (root / "a").mkdir(parents=True)
    (tmp_path / "outside").mkdir()
    (root / "link").symlink_to(tmp_path / "outside")
    assert is_inside(root / "a", [root])
    assert not is_inside(tmp_path / "outside", [root])
    assert not is_inside(root / "link", [root])  # a symlink out of the root
    assert not is_inside(root / ".." / "outside", [root]) and not is_inside(root, [root])


def test_training_runs_view_lists_runs_below_the_roots_only(run, tmp_path, monkeypatch):
    from ppviz.views.training_runs import list_runs, open_run, snapshots, timeline

    roots = [run.parent]
    assert list_runs(roots) == [run.resolve()]
    loss, scores, problems = timeline(run, roots)
    assert list(loss["step"]) == [1, 2, 3, 4] and list(scores["step"]) == [2, 4] and problems == []
    assert scores["crps_fair"].notna().all()
    assert snapshots(run, roots) == [2, 4]
    monkeypatch.delenv("PPVIZ_RUNS", raising=False)
    with pytest.raises(ValueError, match="no training-run roots are configured; set PPVIZ_RUNS"):
        open_run(run)
    monkeypatch.setenv("PPVIZ_RUNS", str(tmp_path))
    with pytest.raises(ValueError, match="is not below the training-run roots"):
        open_run(run)
    assert list_runs() == []
