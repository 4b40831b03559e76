"""``torchrun --nproc-per-node 2 -m ppviz train diffusion`` on the CPU (gloo): one writer, resume,
and the loss of a 2-process run against a 1-process one with the same global batch.

Small on purpose (the test machine has 2 cores): a 1-day synthetic dataset on a 32 x 32 grid, a
tiny U-Net, batch 4, 16 x 16 crops, no DataLoader workers.

Tolerance. Both runs draw the same crops at every step (:class:`ppviz.training.stream.CropStream`
depends only on seed and step) and DistributedDataParallel averages the two shards' gradients, so
the updates differ only through the diffusion noise, which each rank draws from its own stream.
The mean loss over the 6 steps of the two runs must agree within 25% (measured: 0.945 and 0.873);
a bug in the sharding (both ranks on the same half) or in the gradient averaging (no sync: the
ranks drift apart, rank 0 writing half-batch updates) fails it or the weight check below.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from ppviz.data.canonical import write_dataset
from ppviz.data.grid import Grid
from ppviz.data.synthetic import synthesize

REPO = Path(__file__).resolve().parents[1]
TRAIN = ["train", "diffusion", "--steps", "6", "--batch", "4", "--crop", "16", "--base-channels", "8",
         "--channel-mult", "1,2", "--eval-dates", "0", "--workers", "0", "--log-every", "1", "--ckpt-every", "3",
         "--holdout", "0.25"]


@pytest.fixture(scope="module")
def small(tmp_path_factory) -> Path:
    ds = synthesize(days=1, seed=0, grid=Grid(45.0, 0.0, 0.25, 32, 32))
    return write_dataset(ds, tmp_path_factory.mktemp("dist") / "small.zarr")


def _run(args, nproc=1, timeout=300):
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    if nproc == 1:
        cmd = [sys.executable, "-m", "ppviz", *args]
    else:
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={nproc}",
               "-m", "ppviz", *args]
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)


def _log(state: Path) -> list[dict]:
    return [json.loads(x) for x in (state / "train_log.jsonl").read_text().splitlines()]


def test_torchrun_two_processes_one_writer_resume_and_loss(small, tmp_path):
    one = _run([*TRAIN, "--data", str(small), "--out", str(tmp_path / "one")])
    assert one.returncode == 0, one.stderr[-3000:]
    half = [a if a != "6" else "3" for a in TRAIN]  # --steps 3
    two = _run([*half, "--data", str(small), "--out", str(tmp_path / "two")], nproc=2)
    assert two.returncode == 0, two.stderr[-3000:]
    state = tmp_path / ".two.train"
    log = _log(state)
    assert [r["step"] for r in log] == [1, 2, 3]  # one writer: each step logged once
    assert sorted(p.name for p in state.iterdir()) == ["train_config.json", "train_log.jsonl",
                                                      "train_state.json", "train_state.safetensors"]
    meta = json.loads((state / "train_state.json").read_text())
    assert meta["step"] == 3 and meta["world_size"] == 2
    # resume with 2 processes up to step 6
    more = _run([*TRAIN, "--data", str(small), "--out", str(tmp_path / "two"), "--resume", "--overwrite"], nproc=2)
    assert more.returncode == 0, more.stderr[-3000:]
    log = _log(state)
    assert [r["step"] for r in log] == [1, 2, 3, 4, 5, 6]
    assert json.loads((state / "train_state.json").read_text())["step"] == 6
    assert (tmp_path / "two" / "model.safetensors").is_file()
    ref = _log(tmp_path / ".one.train")
    l1 = np.mean([r["loss"] for r in ref])
    l2 = np.mean([r["loss"] for r in log])
    print(f"mean loss over 6 steps: 1 process {l1:.4f}, 2 processes {l2:.4f}")
    assert abs(l2 - l1) < 0.25 * l1, (l1, l2)


def test_torchrun_time_limit_stops_every_rank_at_the_same_logging_step(small, tmp_path):
    """Under torchrun the ranks ask each other about the time limit on logging steps only: both stop
    at the first one past it (step 2 with --log-every 2), no rank waits in a collective, rank 0
    writes the checkpoint of that step."""
    args = [a if a != "1" else "2" for a in TRAIN]  # --log-every 2
    run = _run([*args, "--data", str(small), "--out", str(tmp_path / "cut"), "--max-minutes", "0.00001"], nproc=2)
    assert run.returncode == 0, run.stderr[-3000:]
    log = _log(tmp_path / ".cut.train")
    assert log[-1]["stopped"] == "time limit" and log[-1]["step"] == 2
    assert json.loads((tmp_path / ".cut.train" / "train_state.json").read_text())["step"] == 2
    training = json.loads((tmp_path / "cut" / "config.json").read_text())["extra"]["training"]
    assert training["steps"] == 2 and training["planned_steps"] == 6


def test_torchrun_world_size_change_and_unsplittable_batch(small, tmp_path):
    first = _run([*[a if a != "6" else "2" for a in TRAIN], "--data", str(small), "--out", str(tmp_path / "a")],
                 nproc=2)
    assert first.returncode == 0, first.stderr[-3000:]
    # resumed by one process: continues, says so once
    res = _run([*[a if a != "6" else "3" for a in TRAIN], "--data", str(small), "--out", str(tmp_path / "a"),
                "--resume", "--overwrite"])
    assert res.returncode == 0, res.stderr[-3000:]
    assert res.stderr.count("(saved by 2 process(es)) with 1: the batches are the same") == 1
    assert [r["step"] for r in _log(tmp_path / ".a.train")] == [1, 2, 3]
    # a global batch two processes cannot share: one line per rank, exit 2, nothing written
    bad = _run([*[a if a != "4" else "3" for a in TRAIN], "--data", str(small), "--out", str(tmp_path / "b")],
               nproc=2)
    assert bad.returncode != 0
    assert "ppviz: error: batch 3 cannot be split evenly over 2 processes" in bad.stderr
    assert not (tmp_path / "b").exists() and not (tmp_path / ".b.train").exists()


def test_compile_needs_cuda(small, tmp_path):
    import torch

    from ppviz.diffusion.downscaler import static_channels
    from ppviz.diffusion.tiny import tiny_downscaler
    from ppviz.training.diffusion_loop import DiffusionTrainConfig, train_diffusion_stream
    from ppviz.training.stream import CropSource

    if torch.cuda.is_available():
        pytest.skip("the refusal is for CPU-only machines")
    g = Grid(45.0, 0.0, 0.25, 32, 32)
    src = CropSource(str(small), np.arange(10), g, static_channels(g), lambda tp, vimd: tp)
    with pytest.raises(ValueError, match="--compile needs a CUDA device"):
        train_diffusion_stream(src, DiffusionTrainConfig(crop=16, batch_size=2, steps=1), tmp_path / "c",
                               model_config=tiny_downscaler().config, compile=True)
    assert not (tmp_path / "c").exists()
